/*
 * validate: the rule engine; see validate.h and docs/validation.md.
 *
 * A profile holds compiled field specs (fspec: the path already split into
 * segment/field/repetition/component, the condition split, the table
 * pointer resolved when the profile joins a validator) and a segment
 * structure as a tree of snode in one array (children linked by index).
 *
 * validate_message() walks the segments once for the field specs and the
 * consistency rules together, then once per structure. The field specs of
 * the baseline and of every profile are merged into one plan (plan_seg,
 * plan_field, plan_spec: by segment id, then by field), so that a segment's
 * specs are checked field by field, all specs reading a field together; a
 * segment in which one finds a problem is checked again spec by spec in
 * profile order, which is the order of its problems. The consistency rules
 * keep "the current patient" (the last PID seen) so that a message with
 * several patients is judged patient by patient; their code lists are
 * chained by the first byte of the code behind a filter on its first two
 * bytes (code_index), so an OBX-3 code is compared only with the entries
 * that can match it. All rules read the segment in hand through a segview:
 * the parser's field offsets (hl7_fields), each field located and split
 * (first repetition, first component; a field of up to 64 bytes as masks of
 * its delimiters, found 16 bytes at a time) once, a date/time or number
 * parsed once for every rule that reads it. The common kinds of specs (a
 * table, a number or range, a TS, a composite type) are shown clean inline
 * from the view (op_clean()), as field_clean() would, before check_field()
 * checks the long way.
 *
 * What a run learns is reused within the message, never across messages
 * (a validator stays read-only): per plan field, the last text every spec
 * reading it found clean (clean_text; a field that differs in every segment
 * stops comparing); per condition, whether it held on the text it reads;
 * valid composite values, date/time texts and table codes (known_code); the
 * structure matcher replays a repeating group's clean round on the same
 * segment ids. Each memo stands for a result the full check gives on the
 * same text, so no result changes. Values are read as raw spans into the
 * message and decoded into the result's scratch buffer only when they hold
 * an escape sequence. Problems are fixed-size records in the result's
 * reusable array, sorted at the end by segment and then by phase (field
 * specs, structure, consistency), which is the order users see.
 */
#include "quality/validate.h"

#include "base/bytes.h"
#include "base/mem.h"

#include <assert.h>
#include <stdarg.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* memchr for the short spans of HL7 values, where a call costs more than
 * the scan: eight bytes at a time (hl7_scan2). */
static inline const char *scan_for(const char *p, size_t len, char ch)
{
    const char *end = p + len, *q = hl7_scan2(p, end, ch, ch);
    return q < end ? q : NULL;
}

#define NONE UINT32_MAX

/* --- names --------------------------------------------------------------------- */

static const char *const rule_names[VALIDATE_RULE_COUNT_] = {
    "structure",    "required",           "datatype",     "table",        "length",
    "repetition",   "range",              "birth-future", "death-before-birth",
    "before-birth", "sex-specific",       "age-restricted", "physiologic",
};

const char *validate_rule_name(validate_rule r)
{
    return (unsigned)r < VALIDATE_RULE_COUNT_ ? rule_names[r] : "";
}

bool validate_rule_from_name(const char *name, validate_rule *out)
{
    for (int r = 0; r < VALIDATE_RULE_COUNT_; r++)
        if (!strcmp(rule_names[r], name)) {
            *out = (validate_rule)r;
            return true;
        }
    return false;
}

static const char *const sev_names[] = {"error", "warning", "off"};

const char *validate_severity_name(validate_severity s)
{
    return (unsigned)s <= VALIDATE_SEV_OFF ? sev_names[s] : "error";
}

bool validate_severity_from_name(const char *name, validate_severity *out)
{
    for (int s = 0; s <= VALIDATE_SEV_OFF; s++)
        if (!strcmp(sev_names[s], name)) {
            *out = (validate_severity)s;
            return true;
        }
    return false;
}

const char *validate_strerror(validate_status s)
{
    switch (s) {
    case VALIDATE_OK: return "ok";
    case VALIDATE_ERR_PATH: return "bad field path";
    case VALIDATE_ERR_STRUCTURE: return "bad segment structure";
    case VALIDATE_ERR_TABLE: return "unknown table";
    case VALIDATE_ERR_VALUE: return "bad value";
    }
    return "unknown validation error";
}

static validate_status fail(validate_error *err, validate_status code, size_t offset,
                            const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static validate_status fail(validate_error *err, validate_status code, size_t offset,
                            const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        err->offset = offset;
        vsnprintf(err->text, sizeof(err->text), fmt, ap);
        va_end(ap);
    }
    return code;
}

/* s equals the NUL-terminated lit (an inline loop: both are a few bytes). */
static bool span_is(hl7_span s, const char *lit)
{
    size_t i = 0;
    for (; i < s.len; i++)
        if (!lit[i] || lit[i] != s.p[i]) return false;
    return lit[i] == '\0';
}

/* a[0..n) equals b[0..n): memcmp inline, for the few bytes of codes (a
 * byte loop: cheaper here than bytes_equal()'s words for codes of one to
 * six bytes compared against many rules). */
static bool same_bytes(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i]) return false;
    return true;
}

static uint32_t id_key(const char *id)
{
    return (uint32_t)(unsigned char)id[0] << 16 | (uint32_t)(unsigned char)id[1] << 8 |
           (unsigned char)id[2];
}

#define SEG_KEY(a, b, c) ((uint32_t)(a) << 16 | (uint32_t)(b) << 8 | (uint32_t)(c))
#define MSH_KEY SEG_KEY('M', 'S', 'H')

/* --- profiles ------------------------------------------------------------------ */

typedef struct fspec {
    /* What every segment's check reads (check_spec(), field_clean()) first:
     * the spec's first cache line. */
    uint32_t seg_occ; /* 0: every occurrence */
    uint32_t field;
    bool has_when;
    bool whole_rep;   /* names whole repetitions of a field split as usual (no
                       * rep, comp, max_len; not MSH-1/2): field_clean() applies */
    bool type_shared; /* another spec checks the same type on the same values:
                       * worth remembering the values found valid */
    bool required;
    bool has_min, has_max;
    hl7_type type;
    uint32_t when_field, when_comp;
    const hl7_table *table;
    double min, max;
    uint32_t rep /* 0: every repetition */, comp, sub;
    uint32_t max_len, max_reps;
    uint32_t key; /* id_key(seg) */
    char seg[4];
    char *when_value;
    size_t when_len;
    char *table_name;
} fspec;

enum { NODE_SEG, NODE_GROUP };

#define FIRST_MAX 6 /* segment ids kept in snode.first */

typedef struct snode {
    int kind;
    char id[4];
    uint32_t key; /* id_key(id) */
    bool optional, repeating;
    bool recurs; /* it or an enclosing group repeats: may occur again later */
    uint32_t child, next; /* first child, next sibling; NONE */
    uint32_t single;      /* a group whose one child is a segment: that child; else NONE */
    /* The ids a segment that starts this node may have (first_has()):
     * nfirst of them in first[], or more when nfirst > FIRST_MAX. */
    uint32_t nfirst;
    uint32_t first[FIRST_MAX];
} snode;

struct validate_profile {
    char type[8], event[8]; /* "" matches anything */
    fspec *fields;
    size_t nfields, fcap;
    struct fgroup {
        uint32_t key; /* segment id as a number (id_key) */
        size_t start, end;
    } * groups; /* runs of fields with one segment id, rebuilt on add */
    size_t ngroups, gcap;
    snode *nodes; /* nodes[0] is the root group when nnodes > 0 */
    uint32_t skeys[16]; /* the distinct segment ids of the structure, when nskeys <= 16 */
    uint32_t nskeys;
    size_t nnodes, ncap;
    char name[24]; /* "ORU^R01" for messages */
};

validate_profile *validate_profile_new(const char *message, validate_error *err)
{
    validate_profile *p = xcalloc(1, sizeof(*p));
    const char *caret = strchr(message, '^');
    size_t tl = caret ? (size_t)(caret - message) : strlen(message);
    const char *ev = caret ? caret + 1 : "";
    bool star = tl == 1 && message[0] == '*';
    bool ok = tl > 0 && tl < sizeof(p->type) && strlen(ev) < sizeof(p->event) && !(star && caret);
    for (size_t i = 0; ok && !star && i < tl; i++)
        ok = (message[i] >= 'A' && message[i] <= 'Z') || (message[i] >= '0' && message[i] <= '9');
    if (!ok) {
        fail(err, VALIDATE_ERR_VALUE, 0,
             "message '%s': expected TYPE^EVENT (ORU^R01), TYPE (ORU) or *", message);
        free(p);
        return NULL;
    }
    if (!star) memcpy(p->type, message, tl);
    if (strcmp(ev, "*")) snprintf(p->event, sizeof(p->event), "%s", ev);
    snprintf(p->name, sizeof(p->name), "%s", message);
    return p;
}

void validate_profile_free(validate_profile *p)
{
    if (!p) return;
    for (size_t i = 0; i < p->nfields; i++) {
        free(p->fields[i].table_name);
        free(p->fields[i].when_value);
    }
    free(p->fields);
    free(p->groups);
    free(p->nodes);
    free(p);
}

/* "OBX-2=NM" or "OBX-2.1=NM": field of the same segment as the spec. */
static validate_status parse_when(const char *when, fspec *f, validate_error *err)
{
    const char *eq = strchr(when, '=');
    char lhs[32];
    size_t ll = eq ? (size_t)(eq - when) : 0;
    if (!eq || ll >= sizeof(lhs))
        return fail(err, VALIDATE_ERR_VALUE, 0,
                    "condition '%s': expected SEG-F[.C]=VALUE, e.g. OBX-2=NM", when);
    memcpy(lhs, when, ll);
    lhs[ll] = '\0';
    hl7_path p;
    hl7_error he;
    if (hl7_path_parse(lhs, &p, &he) != HL7_OK || !p.field || strchr(lhs, '[') || p.sub)
        return fail(err, VALIDATE_ERR_VALUE, 0,
                    "condition '%s': the left side must be SEG-F or SEG-F.C, e.g. OBX-2=NM", when);
    if (memcmp(p.seg, f->seg, 3))
        return fail(err, VALIDATE_ERR_VALUE, 0,
                    "condition '%s': must name a field of %s, the segment of the path", when,
                    f->seg);
    f->has_when = true;
    f->when_field = p.field;
    f->when_comp = p.comp;
    f->when_value = xstrdup(eq + 1);
    f->when_len = strlen(f->when_value);
    return VALIDATE_OK;
}

validate_status validate_profile_add_field(validate_profile *pr, const validate_field_spec *s,
                                           validate_error *err)
{
    hl7_path p;
    hl7_error he;
    if (!s->path || hl7_path_parse(s->path, &p, &he) != HL7_OK)
        return fail(err, VALIDATE_ERR_PATH, s->path ? he.offset : 0, "%s",
                    s->path ? he.text : "field spec without a path");
    if (!p.field)
        return fail(err, VALIDATE_ERR_PATH, 3, "path '%s': name a field, e.g. %s-3", s->path,
                    p.seg);
    const char *dash = strchr(s->path, '-');
    fspec f = {0};
    memcpy(f.seg, p.seg, 4);
    f.key = id_key(f.seg);
    f.seg_occ = memchr(s->path, '[', (size_t)(dash - s->path)) ? p.seg_occ : 0;
    f.rep = strchr(dash, '[') ? p.rep : 0;
    f.field = p.field;
    f.comp = p.comp;
    f.sub = p.sub;
    f.required = s->required;
    f.type = s->type;
    f.max_len = s->max_len;
    f.max_reps = s->max_reps;
    f.has_min = s->has_min;
    f.has_max = s->has_max;
    f.min = s->min;
    f.max = s->max;
    if ((unsigned)s->type >= HL7_TYPE_COUNT_)
        return fail(err, VALIDATE_ERR_VALUE, 0, "path '%s': unknown datatype", s->path);
    if (s->has_min && s->has_max && s->min > s->max)
        return fail(err, VALIDATE_ERR_VALUE, 0, "path '%s': min %g is above max %g", s->path,
                    s->min, s->max);
    if (s->when && parse_when(s->when, &f, err) != VALIDATE_OK) return err ? err->code : VALIDATE_ERR_VALUE;
    if (s->table) f.table_name = xstrdup(s->table);
    f.whole_rep = !f.rep && !f.comp && !f.max_len && !(f.key == MSH_KEY && f.field <= 2);
    /* Keep specs grouped by segment id: insert after the last one of its id. */
    pr->fields = xgrow(pr->fields, &pr->fcap, pr->nfields + 1, sizeof(*pr->fields));
    size_t at = pr->nfields;
    for (size_t i = pr->nfields; i-- > 0;)
        if (!memcmp(pr->fields[i].seg, f.seg, 3)) {
            at = i + 1;
            break;
        }
    memmove(&pr->fields[at + 1], &pr->fields[at], (pr->nfields - at) * sizeof(*pr->fields));
    pr->fields[at] = f;
    pr->nfields++;
    pr->ngroups = 0;
    for (size_t i = 0; i < pr->nfields; i++) {
        if (i > 0 && !memcmp(pr->fields[i].seg, pr->fields[i - 1].seg, 3)) {
            pr->groups[pr->ngroups - 1].end = i + 1;
            continue;
        }
        pr->groups = xgrow(pr->groups, &pr->gcap, pr->ngroups + 1, sizeof(*pr->groups));
        pr->groups[pr->ngroups++] = (struct fgroup){id_key(pr->fields[i].seg), i, i + 1};
    }
    return VALIDATE_OK;
}

/* --- structure grammar ---------------------------------------------------------- */

typedef struct gparser {
    const char *s;
    size_t i;
    validate_profile *p;
    validate_error *err;
    int depth;
} gparser;

static uint32_t new_node(validate_profile *p, int kind)
{
    p->nodes = xgrow(p->nodes, &p->ncap, p->nnodes + 1, sizeof(*p->nodes));
    snode *n = &p->nodes[p->nnodes];
    memset(n, 0, sizeof(*n));
    n->kind = kind;
    n->child = n->next = n->single = NONE;
    return (uint32_t)p->nnodes++;
}

static void skip_sep(gparser *g)
{
    while (g->s[g->i] == ' ' || g->s[g->i] == ',' || g->s[g->i] == '\t' || g->s[g->i] == '\n')
        g->i++;
}

static bool is_id_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static validate_status parse_items(gparser *g, uint32_t group, char close);

/* A group opened at g->s[open]; parses its items up to `close`. */
static validate_status parse_group(gparser *g, uint32_t *out, char close, size_t open)
{
    if (++g->depth > 16)
        return fail(g->err, VALIDATE_ERR_STRUCTURE, open,
                    "structure: groups nested deeper than 16 at character %zu", open + 1);
    uint32_t n = new_node(g->p, NODE_GROUP);
    validate_status st = parse_items(g, n, close);
    if (st != VALIDATE_OK) return st;
    if (g->p->nodes[n].child == NONE)
        return fail(g->err, VALIDATE_ERR_STRUCTURE, open,
                    "structure: empty group at character %zu", open + 1);
    g->depth--;
    *out = n;
    return VALIDATE_OK;
}

static validate_status parse_item(gparser *g, uint32_t *out)
{
    size_t at = g->i;
    char c = g->s[at];
    validate_status st;
    if (c == '[') {
        g->i++;
        skip_sep(g);
        bool rep = g->s[g->i] == '{';
        if (rep) g->i++;
        if ((st = parse_group(g, out, rep ? '}' : ']', at)) != VALIDATE_OK) return st;
        if (rep) {
            skip_sep(g);
            if (g->s[g->i] != ']')
                return fail(g->err, VALIDATE_ERR_STRUCTURE, g->i,
                            "structure: expected ']' to close '[{' opened at character %zu",
                            at + 1);
            g->i++;
        }
        g->p->nodes[*out].optional = true;
        g->p->nodes[*out].repeating = rep;
    } else if (c == '{') {
        g->i++;
        if ((st = parse_group(g, out, '}', at)) != VALIDATE_OK) return st;
        g->p->nodes[*out].repeating = true;
    } else if (is_id_char(c)) {
        size_t k = 0;
        while (is_id_char(g->s[at + k])) k++;
        if (k != 3)
            return fail(g->err, VALIDATE_ERR_STRUCTURE, at,
                        "structure: '%.*s' at character %zu is not a segment id (three "
                        "upper-case letters or digits)",
                        (int)k, g->s + at, at + 1);
        *out = new_node(g->p, NODE_SEG);
        memcpy(g->p->nodes[*out].id, g->s + at, 3);
        g->p->nodes[*out].key = id_key(g->s + at);
        g->i += 3;
    } else {
        return fail(g->err, VALIDATE_ERR_STRUCTURE, at,
                    "structure: unexpected '%c' at character %zu (expected a segment id, '[' "
                    "or '{')",
                    c, at + 1);
    }
    snode *n = &g->p->nodes[*out];
    c = g->s[g->i];
    if (c == '?' || c == '*' || c == '+') {
        if (c != '+') n->optional = true;
        if (c != '?') n->repeating = true;
        g->i++;
    }
    return VALIDATE_OK;
}

static validate_status parse_items(gparser *g, uint32_t group, char close)
{
    uint32_t last = NONE;
    for (;;) {
        skip_sep(g);
        char c = g->s[g->i];
        if (c == close && c != '\0') {
            g->i++;
            return VALIDATE_OK;
        }
        if (c == '\0') {
            if (close == '\0') return VALIDATE_OK;
            return fail(g->err, VALIDATE_ERR_STRUCTURE, g->i,
                        "structure: missing '%c' at the end", close);
        }
        if (c == ']' || c == '}')
            return fail(g->err, VALIDATE_ERR_STRUCTURE, g->i,
                        "structure: unexpected '%c' at character %zu", c, g->i + 1);
        uint32_t item;
        validate_status st = parse_item(g, &item);
        if (st != VALIDATE_OK) return st;
        if (last == NONE)
            g->p->nodes[group].child = item;
        else
            g->p->nodes[last].next = item;
        last = item;
    }
}

static void mark_recurs(validate_profile *p, uint32_t ni, bool inherited)
{
    snode *n = &p->nodes[ni];
    n->recurs = inherited || n->repeating;
    n->single = n->kind == NODE_GROUP && n->child != NONE && p->nodes[n->child].next == NONE &&
                        p->nodes[n->child].kind == NODE_SEG
                    ? n->child
                    : NONE;
    for (uint32_t c = n->child; c != NONE; c = p->nodes[c].next) mark_recurs(p, c, n->recurs);
}

static void add_first(snode *n, uint32_t key)
{
    for (uint32_t i = 0; i < n->nfirst && i < FIRST_MAX; i++)
        if (n->first[i] == key) return;
    if (n->nfirst < FIRST_MAX) n->first[n->nfirst] = key;
    if (n->nfirst <= FIRST_MAX) n->nfirst++;
}

/* Fills the first sets, children first: a segment's own id; for a group
 * the ids of its children up to and including the first required one. */
static void mark_first(validate_profile *p, uint32_t ni)
{
    snode *n = &p->nodes[ni];
    n->nfirst = 0;
    if (n->kind == NODE_SEG) {
        add_first(n, n->key);
        return;
    }
    bool open = true;
    for (uint32_t c = n->child; c != NONE; c = p->nodes[c].next) {
        mark_first(p, c);
        const snode *ch = &p->nodes[c];
        for (uint32_t i = 0; open && i < ch->nfirst && i < FIRST_MAX; i++)
            add_first(n, ch->first[i]);
        if (open && ch->nfirst > FIRST_MAX) n->nfirst = FIRST_MAX + 1;
        if (!ch->optional) open = false;
    }
}

/* Fills skeys (nskeys past 16: too many to list). */
static void list_keys(validate_profile *p)
{
    p->nskeys = 0;
    for (size_t i = 0; i < p->nnodes; i++) {
        if (p->nodes[i].kind != NODE_SEG) continue;
        bool seen = false;
        for (uint32_t k = 0; k < p->nskeys && k < 16 && !seen; k++)
            seen = p->skeys[k] == p->nodes[i].key;
        if (seen) continue;
        if (p->nskeys < 16) p->skeys[p->nskeys] = p->nodes[i].key;
        p->nskeys++;
    }
}

validate_status validate_profile_set_structure(validate_profile *p, const char *grammar,
                                               validate_error *err)
{
    p->nnodes = 0;
    gparser g = {grammar, 0, p, err, 0};
    uint32_t root = new_node(p, NODE_GROUP);
    validate_status st = parse_items(&g, root, '\0');
    if (st == VALIDATE_OK && p->nodes[root].child == NONE)
        st = fail(err, VALIDATE_ERR_STRUCTURE, 0, "structure: no segments given");
    if (st != VALIDATE_OK)
        p->nnodes = p->nskeys = 0;
    else
        mark_recurs(p, root, false), mark_first(p, root), list_keys(p);
    return st;
}

/* --- validator ------------------------------------------------------------------ */

typedef struct code_rule {
    char *pattern; /* without the trailing '*' */
    size_t plen;
    bool prefix;
    char *system;  /* "|"-separated alternatives; NULL: any */
    char sex;      /* sex rules */
    int min_years, max_years;
    uint32_t next; /* next rule with the same first byte (code_index), NONE */
} code_rule;

typedef struct limit_rule {
    char *code;
    size_t len;
    char *units; /* "|"-separated; NULL: any */
    double min, max;
    uint32_t next; /* next limit with the same first byte (code_index), NONE */
} limit_rule;

/* Rules of one list chained by the first byte of their code, in the order
 * they were added: a code is compared only with the rules that can match
 * it, and the first match in list order still wins. Before the chain, a
 * filter on the first two bytes turns away most codes that match no rule
 * (an OBX-3 LOINC code usually): a hashed set of the patterns' first two
 * bytes (a one-byte code with NUL as its second), and the first bytes of
 * one-byte prefixes (O*). */
typedef struct code_index {
    uint32_t head[256], tail[256]; /* NONE: no rule starts with that byte */
    uint64_t pairs[16];            /* 1024 bits, pair_bit() */
    uint64_t leads[4];             /* 256 bits */
} code_index;

static uint32_t pair_bit(unsigned char b0, unsigned char b1)
{
    return ((uint32_t)b0 * 31u + b1) & 1023u;
}

static void index_reset(code_index *ix)
{
    memset(ix->head, 0xff, sizeof(ix->head));
    memset(ix->tail, 0xff, sizeof(ix->tail));
    memset(ix->pairs, 0, sizeof(ix->pairs));
    memset(ix->leads, 0, sizeof(ix->leads));
}

/* Appends rule i, whose code (or prefix, when prefix) is code[0..len), len
 * >= 1; returns the rule before it in its chain (whose next becomes i),
 * NONE when i heads the chain. */
static uint32_t index_add(code_index *ix, uint32_t i, const char *code, size_t len, bool prefix)
{
    unsigned char b = (unsigned char)code[0];
    if (prefix && len == 1) {
        ix->leads[b >> 6] |= (uint64_t)1 << (b & 63);
    } else {
        uint32_t k = pair_bit(b, len > 1 ? (unsigned char)code[1] : 0);
        ix->pairs[k >> 6] |= (uint64_t)1 << (k & 63);
    }
    uint32_t prev = ix->tail[b];
    if (prev == NONE) ix->head[b] = i;
    ix->tail[b] = i;
    return prev;
}

/* The first rule that may match code, NONE when none can. */
static inline uint32_t index_first(const code_index *ix, hl7_span code)
{
    if (!code.len) return NONE;
    unsigned char b = (unsigned char)code.p[0];
    uint32_t k = pair_bit(b, code.len > 1 ? (unsigned char)code.p[1] : 0);
    if (!(ix->pairs[k >> 6] >> (k & 63) & 1) && !(ix->leads[b >> 6] >> (b & 63) & 1)) return NONE;
    return ix->head[b];
}

struct validator {
    const hl7_tables *tables;
    hl7_tables *own_tables;
    bool baseline;
    int local_offset;
    validate_severity sev[VALIDATE_RULE_COUNT_];
    validate_profile *base;
    validate_profile **profiles;
    size_t nprofiles, pcap;
    code_rule *sex, *age;
    size_t nsex, sexcap, nage, agecap;
    limit_rule *limits;
    size_t nlimits, limcap;
    code_index sex_ix, age_ix, limit_ix;
    hl7_type_tables composite_tables; /* found in `tables` once */
    /* The field specs of the baseline and all profiles by segment id and
     * field (build_plan()), which validate_message() walks. */
    struct plan_seg *psegs;
    struct plan_field *pfields;
    struct plan_spec *pspecs;
    size_t npsegs, npfields, npspecs;
    uint32_t nconds; /* distinct conditions (when) among the specs */
};

static validate_status resolve_tables(const validator *v, validate_profile *p, validate_error *err)
{
    for (size_t i = 0; i < p->nfields; i++) {
        fspec *f = &p->fields[i];
        if (!f->table_name) continue;
        f->table = hl7_tables_find(v->tables, f->table_name);
        if (!f->table)
            return fail(err, VALIDATE_ERR_TABLE, 0,
                        "profile %s, %s-%u: table '%s' is not built in and was not loaded "
                        "(add it under 'tables:')",
                        p->name, f->seg, f->field, f->table_name);
    }
    return VALIDATE_OK;
}

/* --- the plan: specs by segment id and field ----------------------------------------- */

/* validate_message() checks a segment's field specs field by field, every
 * spec of the baseline and the profiles that reads the field together, so
 * that a field text found clean before (in an earlier segment with this id)
 * is compared once for all of them. A spec's verdict depends on its field's
 * text alone once its occurrence and condition hold, so a text that every
 * spec of the field checked and found clean passes them all again. The
 * plan is built whenever a profile is added: profiles are complete by then. */
typedef struct plan_spec {
    const fspec *f;
    uint32_t prof; /* 0: the baseline; i + 1: profiles[i] */
    uint16_t cond; /* 1 + index of its condition among the distinct ones (at most
                    * COND_MEMO + 1); 0: none */
    uint16_t op;   /* how plan_segment() shows it clean (plan_op()) */
} plan_spec;

/* The common kinds of specs, which plan_segment() shows clean inline (as
 * field_clean() would) before it calls check_field() for the rest:
 * all name whole repetitions of a field below VIEW_FIELDS. */
enum {
    OP_CHECK = 0, /* anything else: check_field() */
    OP_PRESENT,   /* nothing but `required` (no max_reps): a non-empty field passes */
    OP_TABLE,     /* a table only */
    OP_NUM,       /* NM and/or a range, no table */
    OP_TS,        /* TS only */
    OP_COMPOSITE, /* a composite type (not TS) only */
    OP_COMP_TABLE, /* a table only, on a component (SEG-F.C) of each repetition */
};

static uint16_t plan_op(const fspec *f)
{
    bool range = f->has_min || f->has_max;
    if (f->field >= 64) return OP_CHECK;
    if (f->comp && !f->sub && !f->rep && !f->max_len && !f->max_reps && f->table &&
        f->type == HL7_TYPE_NONE && !range && !(f->key == MSH_KEY && f->field <= 2))
        return OP_COMP_TABLE;
    if (!f->whole_rep) return OP_CHECK;
    if (f->type == HL7_TYPE_NONE && !f->table && !range) return f->max_reps ? OP_CHECK : OP_PRESENT;
    if (f->type == HL7_TYPE_NONE && !range) return OP_TABLE;
    if ((f->type == HL7_TYPE_NM || f->type == HL7_TYPE_NONE) && !f->table) return OP_NUM;
    if (f->table || range) return OP_CHECK;
    if (f->type == HL7_TYPE_TS) return OP_TS;
    return hl7_type_is_composite(f->type) ? OP_COMPOSITE : OP_CHECK;
}

typedef struct plan_field {
    uint32_t field;
    uint32_t memo;       /* its slot in the run's clean-text memo (FIELD_MEMO: none) */
    uint32_t first, end; /* its specs: pspecs[first..end) */
} plan_field;

typedef struct plan_seg {
    uint32_t key;        /* segment id (id_key) */
    uint32_t first, end; /* its fields: pfields[first..end), by field number */
} plan_seg;

#define FIELD_MEMO 64 /* fields with a clean-text memo (the plan's first ones) */
#define COND_MEMO 32  /* distinct conditions remembered per segment and across them */

static bool same_cond(const fspec *a, const fspec *b)
{
    return a->when_field == b->when_field && a->when_comp == b->when_comp &&
           a->when_len == b->when_len && !memcmp(a->when_value, b->when_value, a->when_len);
}

static void build_plan(validator *v)
{
    size_t total = v->base->nfields;
    for (size_t i = 0; i < v->nprofiles; i++) total += v->profiles[i]->nfields;
    plan_spec *all = xcalloc(total ? total : 1, sizeof(*all));
    const fspec **conds = xcalloc(total ? total : 1, sizeof(*conds));
    size_t n = 0;
    uint32_t nconds = 0;
    for (size_t pi = v->baseline ? 0 : 1; pi <= v->nprofiles; pi++) {
        const validate_profile *p = pi ? v->profiles[pi - 1] : v->base;
        for (size_t i = 0; i < p->nfields; i++) {
            const fspec *f = &p->fields[i];
            uint32_t cond = 0;
            if (f->has_when) {
                for (uint32_t c = 0; c < nconds && !cond; c++)
                    if (same_cond(conds[c], f)) cond = c + 1;
                if (!cond) {
                    conds[nconds++] = f;
                    cond = nconds;
                }
            }
            if (cond > COND_MEMO) cond = COND_MEMO + 1; /* not remembered: asked each time */
            all[n++] = (plan_spec){f, (uint32_t)pi, (uint16_t)cond, plan_op(f)};
        }
    }
    /* Stable sort by (segment id, field): insertion sort, the lists are short. */
    for (size_t i = 1; i < n; i++) {
        plan_spec t = all[i];
        size_t k = i;
        while (k > 0 && (all[k - 1].f->key > t.f->key ||
                         (all[k - 1].f->key == t.f->key && all[k - 1].f->field > t.f->field))) {
            all[k] = all[k - 1];
            k--;
        }
        all[k] = t;
    }
    free(v->psegs);
    free(v->pfields);
    free(v->pspecs);
    v->pspecs = all;
    v->npspecs = n;
    v->psegs = xcalloc(n ? n : 1, sizeof(*v->psegs));
    v->pfields = xcalloc(n ? n : 1, sizeof(*v->pfields));
    v->npsegs = v->npfields = 0;
    for (size_t i = 0; i < n; i++) {
        const fspec *f = all[i].f;
        if (!i || all[i - 1].f->key != f->key)
            v->psegs[v->npsegs++] =
                (plan_seg){f->key, (uint32_t)v->npfields, (uint32_t)v->npfields};
        if (!i || all[i - 1].f->key != f->key || all[i - 1].f->field != f->field) {
            uint32_t k = (uint32_t)v->npfields;
            v->pfields[v->npfields++] =
                (plan_field){f->field, k < FIELD_MEMO ? k : FIELD_MEMO, (uint32_t)i, (uint32_t)i};
        }
        v->pfields[v->npfields - 1].end = (uint32_t)i + 1;
        v->psegs[v->npsegs - 1].end = (uint32_t)v->npfields;
    }
    free(conds);
    v->nconds = nconds;
}

/* The baseline profile: the fields a router reads (docs/validation.md). */
static validate_profile *baseline_profile(void)
{
    static const validate_field_spec specs[] = {
        {.path = "MSH-7", .required = true, .type = HL7_TYPE_TS},
        {.path = "MSH-9", .required = true},
        {.path = "MSH-9.1", .table = "0076"},
        {.path = "MSH-9.2", .table = "0003"},
        {.path = "MSH-10", .required = true},
        {.path = "MSH-11", .required = true, .table = "0103"},
        {.path = "MSH-12", .required = true, .table = "0104"},
        {.path = "PID-3", .type = HL7_TYPE_CX},
        {.path = "PID-5", .type = HL7_TYPE_XPN},
        {.path = "PID-7", .type = HL7_TYPE_TS},
        {.path = "PID-8", .table = "0001"},
        {.path = "PID-29", .type = HL7_TYPE_TS},
        {.path = "PV1-2", .table = "0004"},
        {.path = "PV1-44", .type = HL7_TYPE_TS},
        {.path = "OBR-7", .type = HL7_TYPE_TS},
        {.path = "OBX-2", .table = "0125"},
        {.path = "OBX-5", .type = HL7_TYPE_NM, .when = "OBX-2=NM"},
        {.path = "OBX-8", .table = "0078"},
        {.path = "OBX-11", .table = "0085"},
        {.path = "OBX-14", .type = HL7_TYPE_TS},
    };
    validate_profile *p = validate_profile_new("*", NULL);
    for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
        validate_status st = validate_profile_add_field(p, &specs[i], NULL);
        (void)st;
        assert(st == VALIDATE_OK);
    }
    return p;
}

/* Default lists; docs/validation.md explains each entry. */
#define ICD10 "I10|I10C|ICD10|ICD10CM|ICD-10|ICD-10-CM"

static const struct {
    const char *pattern, *system, *sex;
} default_sex[] = {
    {"O*", ICD10, "F"},   {"Z33*", ICD10, "F"}, {"Z34*", ICD10, "F"}, {"Z3A*", ICD10, "F"},
    {"C53*", ICD10, "F"}, {"C54*", ICD10, "F"}, {"C56*", ICD10, "F"}, {"C61*", ICD10, "M"},
    {"C62*", ICD10, "M"}, {"N40*", ICD10, "M"}, {"N41*", ICD10, "M"}, {"11778-8", "LN", "F"},
    {"2857-1", "LN", "M"},
};

static const struct {
    const char *pattern, *system;
    int min, max;
} default_age[] = {
    {"Z38*", ICD10, 0, 0},     {"O*", ICD10, 12, 55},     {"Z3A*", ICD10, 12, 55},
    {"N40*", ICD10, 15, 124},  {"C61*", ICD10, 15, 124},
};

static const struct {
    const char *code, *units;
    double min, max;
} default_limits[] = {
    {"8867-4", NULL, 20, 300},                     /* heart rate, /min */
    {"9279-1", NULL, 2, 100},                      /* respiratory rate, /min */
    {"8310-5", "Cel|C|degC", 25, 45},              /* body temperature */
    {"8310-5", "[degF]|F|degF", 77, 113},
    {"8480-6", NULL, 40, 300},                     /* systolic BP, mm[Hg] */
    {"8462-4", NULL, 10, 200},                     /* diastolic BP, mm[Hg] */
    {"29463-7", "kg", 0.2, 700},                   /* body weight */
    {"29463-7", "[lb_av]|lb|lbs", 0.5, 1500},
    {"29463-7", "g", 200, 700000},
    {"8302-2", "cm", 20, 280},                     /* body height */
    {"8302-2", "[in_i]|in", 8, 110},
    {"59408-5", NULL, 20, 100},                    /* SpO2 by pulse oximetry, % */
    {"2708-6", NULL, 20, 100},                     /* O2 saturation arterial, % */
};

static const validate_severity default_sev[VALIDATE_RULE_COUNT_] = {
    [VALIDATE_RULE_SEX_SPECIFIC] = VALIDATE_SEV_WARNING,
    [VALIDATE_RULE_AGE_RESTRICTED] = VALIDATE_SEV_WARNING,
    [VALIDATE_RULE_PHYSIOLOGIC] = VALIDATE_SEV_WARNING,
};

validator *validator_new(const hl7_tables *tables)
{
    validator *v = xcalloc(1, sizeof(*v));
    if (!tables) tables = v->own_tables = hl7_tables_new();
    v->tables = tables;
    hl7_type_tables_find(tables, &v->composite_tables);
    v->baseline = true;
    index_reset(&v->sex_ix);
    index_reset(&v->age_ix);
    index_reset(&v->limit_ix);
    memcpy(v->sev, default_sev, sizeof(v->sev));
    v->base = baseline_profile();
    validate_status st = resolve_tables(v, v->base, NULL);
    (void)st;
    assert(st == VALIDATE_OK);
    build_plan(v);
    for (size_t i = 0; i < sizeof(default_sex) / sizeof(default_sex[0]); i++)
        validator_add_sex_rule(v, default_sex[i].pattern, default_sex[i].system,
                               default_sex[i].sex, NULL);
    for (size_t i = 0; i < sizeof(default_age) / sizeof(default_age[0]); i++)
        validator_add_age_rule(v, default_age[i].pattern, default_age[i].system,
                               default_age[i].min, default_age[i].max, NULL);
    for (size_t i = 0; i < sizeof(default_limits) / sizeof(default_limits[0]); i++)
        validator_add_limit(v, default_limits[i].code, default_limits[i].units,
                            default_limits[i].min, default_limits[i].max, NULL);
    return v;
}

static void free_codes(code_rule *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(c[i].pattern);
        free(c[i].system);
    }
}

void validator_clear_sex_rules(validator *v)
{
    free_codes(v->sex, v->nsex);
    v->nsex = 0;
    index_reset(&v->sex_ix);
}

void validator_clear_age_rules(validator *v)
{
    free_codes(v->age, v->nage);
    v->nage = 0;
    index_reset(&v->age_ix);
}

void validator_clear_limits(validator *v)
{
    for (size_t i = 0; i < v->nlimits; i++) {
        free(v->limits[i].code);
        free(v->limits[i].units);
    }
    v->nlimits = 0;
    index_reset(&v->limit_ix);
}

void validator_free(validator *v)
{
    if (!v) return;
    validator_clear_sex_rules(v);
    validator_clear_age_rules(v);
    validator_clear_limits(v);
    free(v->sex);
    free(v->age);
    free(v->limits);
    validate_profile_free(v->base);
    for (size_t i = 0; i < v->nprofiles; i++) validate_profile_free(v->profiles[i]);
    free(v->profiles);
    free(v->psegs);
    free(v->pfields);
    free(v->pspecs);
    hl7_tables_free(v->own_tables);
    free(v);
}

void validator_set_baseline(validator *v, bool on)
{
    v->baseline = on;
    build_plan(v); /* with or without the baseline's specs */
}

void validator_set_severity(validator *v, validate_rule r, validate_severity s)
{
    if ((unsigned)r < VALIDATE_RULE_COUNT_ && (unsigned)s <= VALIDATE_SEV_OFF) v->sev[r] = s;
}

validate_severity validator_severity(const validator *v, validate_rule r)
{
    return (unsigned)r < VALIDATE_RULE_COUNT_ ? v->sev[r] : VALIDATE_SEV_OFF;
}

void validator_set_local_offset(validator *v, int minutes)
{
    v->local_offset = minutes;
}

static bool same_type_check(const fspec *a, const fspec *b)
{
    return a != b && a->type != HL7_TYPE_NONE && a->type == b->type && a->key == b->key &&
           a->field == b->field && a->comp == b->comp && a->sub == b->sub;
}

static void mark_pair(validate_profile *a, validate_profile *b)
{
    for (size_t i = 0; i < a->nfields; i++)
        for (size_t j = 0; j < b->nfields; j++)
            if (same_type_check(&a->fields[i], &b->fields[j]))
                a->fields[i].type_shared = b->fields[j].type_shared = true;
}

/* Marks the specs of p that check a type another spec checks on the same
 * values (in p, the baseline or an earlier profile). */
static void mark_shared_types(validator *v, validate_profile *p)
{
    mark_pair(p, v->base);
    for (size_t i = 0; i < v->nprofiles; i++)
        mark_pair(p, v->profiles[i]);
}

validate_status validator_add_profile(validator *v, validate_profile *p, validate_error *err)
{
    validate_status st = resolve_tables(v, p, err);
    if (st != VALIDATE_OK) {
        validate_profile_free(p);
        return st;
    }
    v->profiles = xgrow(v->profiles, &v->pcap, v->nprofiles + 1, sizeof(*v->profiles));
    v->profiles[v->nprofiles++] = p;
    mark_shared_types(v, p);
    build_plan(v);
    return VALIDATE_OK;
}

static validate_status make_code_rule(const char *pattern, const char *system, code_rule *out,
                                      validate_error *err)
{
    size_t n = pattern ? strlen(pattern) : 0;
    bool prefix = n && pattern[n - 1] == '*';
    if (n == 0 || (prefix && n == 1) || memchr(pattern, '*', n - prefix))
        return fail(err, VALIDATE_ERR_VALUE, 0,
                    "code pattern '%s': give a code (2857-1) or a prefix ending in '*' (O*)",
                    pattern ? pattern : "");
    memset(out, 0, sizeof(*out));
    out->pattern = xstrndup(pattern, n - prefix);
    out->plen = n - prefix;
    out->prefix = prefix;
    out->system = system && *system ? xstrdup(system) : NULL;
    out->next = NONE;
    return VALIDATE_OK;
}

validate_status validator_add_sex_rule(validator *v, const char *pattern, const char *system,
                                       const char *sex, validate_error *err)
{
    if (!sex || (strcmp(sex, "F") && strcmp(sex, "M")))
        return fail(err, VALIDATE_ERR_VALUE, 0, "sex-specific code '%s': sex must be F or M",
                    pattern ? pattern : "");
    code_rule c;
    validate_status st = make_code_rule(pattern, system, &c, err);
    if (st != VALIDATE_OK) return st;
    c.sex = sex[0];
    v->sex = xgrow(v->sex, &v->sexcap, v->nsex + 1, sizeof(*v->sex));
    uint32_t prev = index_add(&v->sex_ix, (uint32_t)v->nsex, c.pattern, c.plen, c.prefix);
    if (prev != NONE) v->sex[prev].next = (uint32_t)v->nsex;
    v->sex[v->nsex++] = c;
    return VALIDATE_OK;
}

validate_status validator_add_age_rule(validator *v, const char *pattern, const char *system,
                                       int min_years, int max_years, validate_error *err)
{
    if (min_years < 0 || max_years < min_years)
        return fail(err, VALIDATE_ERR_VALUE, 0,
                    "age-restricted code '%s': need 0 <= min (%d) <= max (%d)",
                    pattern ? pattern : "", min_years, max_years);
    code_rule c;
    validate_status st = make_code_rule(pattern, system, &c, err);
    if (st != VALIDATE_OK) return st;
    c.min_years = min_years;
    c.max_years = max_years;
    v->age = xgrow(v->age, &v->agecap, v->nage + 1, sizeof(*v->age));
    uint32_t prev = index_add(&v->age_ix, (uint32_t)v->nage, c.pattern, c.plen, c.prefix);
    if (prev != NONE) v->age[prev].next = (uint32_t)v->nage;
    v->age[v->nage++] = c;
    return VALIDATE_OK;
}

validate_status validator_add_limit(validator *v, const char *code, const char *units, double min,
                                    double max, validate_error *err)
{
    if (!code || !*code || min > max)
        return fail(err, VALIDATE_ERR_VALUE, 0,
                    "physiologic limit for '%s': need a code and min <= max", code ? code : "");
    v->limits = xgrow(v->limits, &v->limcap, v->nlimits + 1, sizeof(*v->limits));
    uint32_t prev = index_add(&v->limit_ix, (uint32_t)v->nlimits, code, strlen(code), false);
    if (prev != NONE) v->limits[prev].next = (uint32_t)v->nlimits;
    v->limits[v->nlimits++] = (limit_rule){
        xstrdup(code), strlen(code), units && *units ? xstrdup(units) : NULL, min, max, NONE};
    return VALIDATE_OK;
}

/* --- results ------------------------------------------------------------------- */

void validate_result_reset(validate_result *r)
{
    r->n = r->nerrors = r->nwarnings = 0;
}

void validate_result_free(validate_result *r)
{
    free(r->v);
    tbuf_free(&r->scratch);
    memset(r, 0, sizeof(*r));
}

/* The segment being checked. Every rule reads it through this view, so each
 * field is located once however many rules look at it, and a date/time read
 * by a datatype check and a consistency rule is parsed once. */
#define VIEW_FIELDS 64
#define VIEW_DTMS 4

typedef struct dtm_memo {
    uint32_t field; /* component 1 of the first repetition of this field */
    bool ok;        /* a present, valid DTM */
    hl7_dtm t;
    hl7_span text;
} dtm_memo;

/* One field: the whole raw text, its first repetition and that
 * repetition's first component, found in one scan. A field of up to
 * MASK_MAX bytes is scanned for all its delimiters at once: bit i of a mask
 * is set when whole.p[i] is that delimiter, so that splitting it or looking
 * for an escape costs no further scan. */
#define MASK_MAX 64
typedef struct fview {
    hl7_span whole, rep1, comp1;
    hl7_presence pres; /* of whole */
    bool masked;       /* whole.len <= MASK_MAX: the masks below are set */
    uint64_t comp_bits, rep_bits, esc_bits;
} fview;

#define REPS_MAX 8 /* repetitions of a long field whose bounds are kept */

typedef struct segview {
    uint32_t si;
    hl7_fields f;   /* the segment's field offsets */
    uint64_t known; /* bit f: field[f] is filled */
    fview field[VIEW_FIELDS];
    dtm_memo dtm[VIEW_DTMS], dtm_spare;
    uint32_t ndtm;
    uint32_t split_field;              /* split_rep1(): the field split last (0: none) ... */
    uint32_t nsplit;                   /* ... its component count (see hl7_type_check_split) */
    uint32_t nfilled;                  /* ... entries of split[] set (past nsplit: empty) */
    hl7_span split[HL7_TYPE_MAXPARTS]; /* ... and first components */
    const char *nm_p;                  /* nm_of(): the span last parsed (NULL: none) ... */
    size_t nm_len;
    bool nm_ok; /* ... whether it is a number, and which */
    double nm;
    uint32_t cond_known, cond_held; /* bit c: condition c + 1 evaluated, and held */
    uint32_t reps_field; /* field_reps(): the field whose repetitions ... (0: none) */
    uint32_t nreps;      /* ... it has ... */
    uint32_t rep_end[REPS_MAX]; /* ... and where the first ones end (offsets in its text) */
} segview;

/* A short code found in a table, kept (copied) so that the same code in the
 * next segments costs no table search: OBX-2, OBX-8 and OBX-11 repeat. The
 * slot of a code is chosen by its table, length and first byte. */
#define KNOWN_CODES 8 /* a power of two */
typedef struct known_code {
    const hl7_table *t;
    uint8_t len;
    char code[8];
} known_code;

/* A date/time text parsed in this message and its value: the OBX-14 and
 * OBR-7 of one panel usually carry the same time. */
#define DTM_TEXTS 2
typedef struct dtm_text {
    const char *p; /* a span of the message */
    size_t len;    /* 0: unused */
    hl7_dtm t;
} dtm_text;

#define MEMO_MISSES 3 /* a field that differs that often in a row is not compared */
#define KEYS_MAX 256  /* segment ids computed up front for messages up to this size */
typedef struct clean_text {
    const char *p; /* NULL: none yet */
    uint32_t len;
    uint32_t misses; /* compared in vain in a row (plan_segment() gives up at MEMO_MISSES) */
} clean_text;

/* A span of the message found a valid value of a composite type. */
#define TYPE_MEMO 8
typedef struct type_memo {
    const char *p;
    size_t len;
    hl7_type t;
    bool inner; /* read with subcomponents as its parts */
} type_memo;

/* What one validate_message() call works with. */
typedef struct vrun {
    const validator *v;
    const hl7_msg *m;
    validate_result *r;
    hl7_type_ctx tctx;
    const hl7_delims *d;
    char dcomp, drep, desc; /* the delimiters field_masks() finds (the field separator
                             * for one the message lacks) ... */
#if defined(__SSE2__)
    __m128i vcomp, vrep, vesc; /* ... in every byte */
#endif
    bool types_on, range_on;                   /* the datatype and range rules are not off */
    bool before_on, sex_on, physio_on, age_on; /* consistency rules on (and with lists) */
    hl7_dtm now;
    segview sv;
    known_code known[KNOWN_CODES]; /* t NULL: unused */
    dtm_text dtms[DTM_TEXTS];      /* a ring of valid date/times */
    uint32_t ndtms;
    /* Per field of the plan (plan_field.memo), the last text every spec
     * reading it found nothing wrong with: the same text in a later segment
     * passes at the cost of a comparison (OBX-2, OBX-11, OBX-14 repeat). */
    clean_text clean[FIELD_MEMO + 1]; /* the last: for the fields past them, never compared */
    /* Per condition (plan_spec.cond - 1), the text of the field it reads
     * last and whether it held on it. */
    clean_text cond_text[COND_MEMO];
    bool cond_was[COND_MEMO];
    uint64_t applies; /* bit p: plan_spec.prof p applies to the message (p < 64) */
    hl7_span type, event; /* MSH-9.1 and 9.2 */
    const uint32_t *keys;       /* id_key() of every segment; NULL: computed on use */
    const hl7_seg *segs;        /* the message's segments ... */
    const uint32_t *fofs;       /* ... and piece offsets (hl7_seg.fofs indexes them); NULL: none */
    type_memo types[TYPE_MEMO]; /* a ring, filled up to ntypes */
    uint32_t ntypes;
} vrun;

/* The id of segment i as a number (id_key). */
static inline uint32_t seg_key(const vrun *x, uint32_t i)
{
    return x->keys ? x->keys[i] : id_key(hl7_seg_at(x->m, i)->id);
}

static hl7_presence presence(hl7_span v)
{
    if (v.len == 0) return HL7_EMPTY;
    return v.len == 2 && v.p[0] == '"' && v.p[1] == '"' ? HL7_NULL_VALUE : HL7_VALUE;
}

static inline __attribute__((always_inline)) void view_segment(vrun *x, uint32_t si)
{
    x->sv.si = si;
    if (x->fofs) { /* hl7_fields_at(), inline */
        const hl7_seg *s = &x->segs[si];
        x->sv.f.p = s->p;
        x->sv.f.ofs = x->fofs + s->fofs;
        x->sv.f.len = s->len;
        x->sv.f.nfields = s->nfields;
        x->sv.f.msh = s->id[0] == 'M' && s->id[1] == 'S' && s->id[2] == 'H';
    } else {
        hl7_fields_at(x->m, si, &x->sv.f);
    }
    x->sv.known = 0;
    x->sv.ndtm = 0;
    x->sv.nm_p = NULL;
    x->sv.split_field = 0;
    x->sv.cond_known = 0;
    x->sv.reps_field = 0;
}

/* Bits of a mask below position n (n <= 64). */
static inline uint64_t below(size_t n)
{
    return n < 64 ? ((uint64_t)1 << n) - 1 : ~(uint64_t)0;
}

/* The delimiter masks of p[0..len), 0 < len <= MASK_MAX, a span of the
 * segment in view (see fview). Reads only the segment's bytes: a block that
 * would run past its end is read as the segment's last 16 bytes, shifted.
 * A delimiter the message lacks is matched as the field separator, which no
 * field holds. */
static inline void field_masks(const vrun *x, const char *p, size_t len, fview *fv)
{
    uint64_t c = 0, r = 0, e = 0;
#if defined(__SSE2__)
    const char *seg = x->sv.f.p, *limit = seg + x->sv.f.len;
    for (size_t k = 0; k < len; k += 16) {
        const char *q = p + k;
        __m128i v;
        unsigned shift = 0;
        if (limit - q >= 16) {
            v = _mm_loadu_si128((const __m128i *)(const void *)q);
        } else if (limit - seg >= 16) {
            v = _mm_loadu_si128((const __m128i *)(const void *)(limit - 16));
            shift = (unsigned)(16 - (limit - q));
        } else {
            char buf[16] = {0};
            memcpy(buf, q, (size_t)(limit - q));
            v = _mm_loadu_si128((const __m128i *)(const void *)buf);
        }
        c |= (uint64_t)((unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, x->vcomp)) >> shift) << k;
        r |= (uint64_t)((unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, x->vrep)) >> shift) << k;
        e |= (uint64_t)((unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, x->vesc)) >> shift) << k;
    }
#else
    for (size_t i = 0; i < len; i++) {
        c |= (uint64_t)(p[i] == x->dcomp) << i;
        r |= (uint64_t)(p[i] == x->drep) << i;
        e |= (uint64_t)(p[i] == x->desc) << i;
    }
#endif
    uint64_t in = below(len);
    fv->comp_bits = c & in;
    fv->rep_bits = r & in;
    fv->esc_bits = e & in;
}

/* field_masks() of a field of 1 to 32 bytes: one or two blocks. */
static inline void field_masks16(const vrun *x, const char *p, size_t len, fview *fv)
{
#if defined(__SSE2__)
    const char *seg = x->sv.f.p, *limit = seg + x->sv.f.len;
    if (len > 16) {
        if (limit - p < 32) {
            field_masks(x, p, len, fv);
            return;
        }
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        __m128i w = _mm_loadu_si128((const __m128i *)(const void *)(p + 16));
        uint32_t in = (uint32_t)(((uint64_t)1 << len) - 1);
        fv->comp_bits = ((uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v, x->vcomp)) |
                         (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(w, x->vcomp)) << 16) & in;
        fv->rep_bits = ((uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v, x->vrep)) |
                        (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(w, x->vrep)) << 16) & in;
        fv->esc_bits = ((uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v, x->vesc)) |
                        (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(w, x->vesc)) << 16) & in;
        return;
    }
    if (limit - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        uint32_t in = ((uint32_t)1 << len) - 1;
        fv->comp_bits = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v, x->vcomp)) & in;
        fv->rep_bits = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v, x->vrep)) & in;
        fv->esc_bits = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v, x->vesc)) & in;
        return;
    }
#endif
    field_masks(x, p, len, fv);
}

/* hl7_fields_get() of the segment in view, by value: "" when absent. */
static inline hl7_span field_text(const vrun *x, uint32_t field)
{
    const hl7_fields *f = &x->sv.f;
    if (field - 1 >= f->nfields) return (hl7_span){"", 0}; /* 0 wraps around */
    if (field <= f->msh) return (hl7_span){f->p + 3, 1};  /* MSH-1 */
    const uint32_t *o = f->ofs + (field - f->msh);
    return (hl7_span){f->p + o[0], o[1] - 1 - o[0]};
}

/* Field `field` of the segment in view, located and split: the first
 * repetition and its first component, found in one scan. */
static void load_field(const vrun *x, uint32_t field, fview *fv)
{
    if (hl7_fields_get(&x->sv.f, field, &fv->whole)) {
        fv->pres = presence(fv->whole);
    } else {
        fv->pres = HL7_ABSENT;
        fv->whole = (hl7_span){"", 0};
    }
    const char *p = fv->whole.p, *end = p + fv->whole.len, *comp_end;
    size_t len = fv->whole.len;
    if (len <= MASK_MAX && field > x->sv.f.msh) { /* (MSH-1 is the field separator) */
        fv->masked = true;
        if (!len) {
            fv->comp_bits = fv->rep_bits = fv->esc_bits = 0;
            fv->rep1 = fv->comp1 = fv->whole;
            return;
        }
        if (len <= 32)
            field_masks16(x, p, len, fv);
        else
            field_masks(x, p, len, fv);
        uint64_t r = fv->rep_bits, cr = fv->comp_bits | r;
        fv->rep1 = (hl7_span){p, r ? (size_t)__builtin_ctzll(r) : len};
        fv->comp1 = (hl7_span){p, cr ? (size_t)__builtin_ctzll(cr) : len};
        return;
    }
    fv->masked = false;
    char rep = x->d->rep, comp = x->d->comp;
    if (rep && comp) {
        const char *limit = x->sv.f.p + x->sv.f.len;
        p = hl7_scan2_in(p, end, limit, rep, comp);
        comp_end = p;
        if (p < end && *p != rep) p = hl7_scan2_in(p, end, limit, rep, rep);
    } else {
        comp_end = NULL;
        for (; p < end; p++) {
            if (*p == rep && rep) break;
            if (*p == comp && comp && !comp_end) comp_end = p;
        }
        if (!comp_end) comp_end = p;
    }
    fv->rep1 = (hl7_span){fv->whole.p, (size_t)(p - fv->whole.p)};
    fv->comp1 = (hl7_span){fv->whole.p, (size_t)(comp_end - fv->whole.p)};
}

/* Field `field` of the segment in view, loaded once (fields from
 * VIEW_FIELDS on: into *spare at each call). Never NULL. */
static const fview *view_field(vrun *x, uint32_t field, fview *spare)
{
    segview *sv = &x->sv;
    if (field >= VIEW_FIELDS) {
        load_field(x, field, spare);
        return spare;
    }
    fview *fv = &sv->field[field];
    uint64_t bit = (uint64_t)1 << field;
    if (!(sv->known & bit)) {
        sv->known |= bit;
        load_field(x, field, fv);
    }
    return fv;
}

/* The first repetition of field `field` (viewed as fv) split into its
 * components, as hl7_type_check_split() takes them, with entries up to
 * `want` set; the last split is remembered (OBX-3: a CWE check, then the
 * coded consistency rules). */
static const hl7_span *split_rep1(vrun *x, uint32_t field, const fview *fv, uint32_t want,
                                  uint32_t *n)
{
    segview *sv = &x->sv;
    if (sv->split_field != field) {
        const char *p = fv->rep1.p, *end = p + fv->rep1.len;
        const char *limit = x->sv.f.p + x->sv.f.len; /* fv is a field of the segment */
        char ch = x->d->comp;
        uint32_t k = 0;
        if (!ch) {
            sv->split[k++] = fv->rep1;
        } else if (fv->masked) {
            uint64_t bits = fv->comp_bits & below(fv->rep1.len);
            const char *s0 = fv->rep1.p;
            size_t from = 0;
            while (bits && k < HL7_TYPE_MAXPARTS) {
                size_t at = (size_t)__builtin_ctzll(bits);
                bits &= bits - 1;
                sv->split[k++] = (hl7_span){s0 + from, at - from};
                from = at + 1;
            }
            if (k < HL7_TYPE_MAXPARTS)
                sv->split[k++] = (hl7_span){s0 + from, fv->rep1.len - from};
            else /* a separator was seen: one more */
                k++;
        } else {
            sv->split[k++] = fv->comp1; /* found by load_field() */
            if (fv->comp1.len == fv->rep1.len) goto done;
            p += fv->comp1.len + 1;
            for (;;) {
                if (k == HL7_TYPE_MAXPARTS) { /* a separator was seen: one more */
                    k++;
                    break;
                }
                const char *q = hl7_scan2_in(p, end, limit, ch, ch);
                sv->split[k++] = (hl7_span){p, (size_t)(q - p)};
                if (q == end) break;
                p = q + 1;
            }
        }
    done:
        sv->nsplit = k;
        sv->nfilled = k < HL7_TYPE_MAXPARTS ? k : HL7_TYPE_MAXPARTS;
        sv->split_field = field;
    }
    for (; sv->nfilled < want; sv->nfilled++)
        sv->split[sv->nfilled] = (hl7_span){"", 0};
    *n = sv->nsplit;
    return sv->split;
}

/* Component 1 of raw, a repetition of field `field` of the segment in
 * view: from the field view when raw is its first repetition. */
static hl7_span first_comp(const vrun *x, uint32_t field, hl7_span raw)
{
    if (field < VIEW_FIELDS && (x->sv.known >> field & 1)) {
        const fview *fv = &x->sv.field[field];
        if (raw.p == fv->rep1.p && raw.len == fv->rep1.len) return fv->comp1;
    }
    const char *q = x->d->comp ? scan_for(raw.p, raw.len, x->d->comp) : NULL;
    if (q) raw.len = (size_t)(q - raw.p);
    return raw;
}

static bool rule_on(const vrun *x, validate_rule rule)
{
    return x->v->sev[rule] != VALIDATE_SEV_OFF;
}

static void add(vrun *x, validate_rule rule, hl7_ack_errcode code, uint32_t seg_index,
                const hl7_path *where, const char *fmt, ...)
    __attribute__((format(printf, 6, 7), cold));
static void add(vrun *x, validate_rule rule, hl7_ack_errcode code, uint32_t seg_index,
                const hl7_path *where, const char *fmt, ...)
{
    validate_severity sev = x->v->sev[rule];
    if (sev == VALIDATE_SEV_OFF) return;
    validate_result *r = x->r;
    r->v = xgrow(r->v, &r->cap, r->n + 1, sizeof(*r->v));
    validate_problem *p = &r->v[r->n++];
    p->where = *where;
    p->seg_index = seg_index;
    p->rule = rule;
    p->severity = sev;
    p->code = code;
    hl7_path_format(where, p->path, sizeof(p->path));
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->text, sizeof(p->text), fmt, ap);
    va_end(ap);
    if (sev == VALIDATE_SEV_ERROR)
        r->nerrors++;
    else
        r->nwarnings++;
}

static hl7_path at(const char *seg, uint32_t occ, uint32_t field, uint32_t rep, uint32_t comp,
                   uint32_t sub)
{
    hl7_path p = {{seg[0], seg[1], seg[2], '\0'}, occ, field, rep, comp, sub};
    return p;
}

static hl7_span decode_into_scratch(vrun *x, hl7_span v)
{
    tbuf_reset(&x->r->scratch);
    hl7_unescape(x->d, hl7_charset_of(x->m), v.p, v.len, &x->r->scratch);
    return (hl7_span){x->r->scratch.p ? x->r->scratch.p : "", x->r->scratch.len};
}

/* The value decoded when it holds an escape (into the scratch buffer). */
static inline hl7_span decoded(vrun *x, hl7_span v)
{
    if (!x->d->esc || !scan_for(v.p, v.len, x->d->esc)) return v;
    return decode_into_scratch(x, v);
}

/* The n-th (1-based) piece of v split by ch; false when there are fewer. */
static bool piece(hl7_span v, char ch, uint32_t n, hl7_span *out)
{
    if (ch == '\0') {
        *out = v;
        return n == 1;
    }
    const char *p = v.p, *end = v.p + v.len;
    for (uint32_t k = 1; k < n; k++) {
        const char *q = scan_for(p, (size_t)(end - p), ch);
        if (!q) return false;
        p = q + 1;
    }
    const char *q = scan_for(p, (size_t)(end - p), ch);
    *out = (hl7_span){p, q ? (size_t)(q - p) : (size_t)(end - p)};
    return true;
}

static uint32_t count_pieces(hl7_span v, char ch)
{
    uint32_t n = 1;
    if (ch == '\0') return 1;
    const char *p = v.p, *end = v.p + v.len;
    while ((p = hl7_scan2(p, end, ch, ch)) < end) {
        n++;
        p++;
    }
    return n;
}

/* Element comp/sub (0: the whole enclosing one) of one repetition's raw text. */
static hl7_presence inside(const vrun *x, hl7_span v, uint32_t comp, uint32_t sub,
                           hl7_span *out)
{
    if (comp && !piece(v, x->d->comp, comp, &v)) return HL7_ABSENT;
    if (comp && sub && !piece(v, x->d->sub, sub, &v)) return HL7_ABSENT;
    *out = v;
    return presence(v);
}

/* Element rep/comp/sub (0: the whole enclosing one) of a field's raw text. */
static hl7_presence element(const vrun *x, hl7_span field, uint32_t rep, uint32_t comp,
                            uint32_t sub, hl7_span *out)
{
    hl7_span v = field;
    if (!rep) {
        *out = v;
        return presence(v);
    }
    if (!piece(v, x->d->rep, rep, &v)) return HL7_ABSENT;
    return inside(x, v, comp, sub, out);
}

/* Component comp of the first repetition of field `field` of the segment in view. */
static hl7_presence comp_at(vrun *x, uint32_t field, uint32_t comp, hl7_span *out)
{
    fview spare;
    const fview *fv = view_field(x, field, &spare);
    if (fv->pres == HL7_ABSENT) return HL7_ABSENT;
    if (comp == 1) {
        *out = fv->comp1;
        return presence(fv->comp1);
    }
    if (!fv->masked) return inside(x, fv->rep1, comp, 0, out);
    uint64_t bits = fv->comp_bits & below(fv->rep1.len);
    size_t from = 0;
    for (uint32_t k = 1; k < comp; k++) {
        if (!bits) return HL7_ABSENT;
        from = (size_t)__builtin_ctzll(bits) + 1;
        bits &= bits - 1;
    }
    size_t to = bits ? (size_t)__builtin_ctzll(bits) : fv->rep1.len;
    *out = (hl7_span){fv->rep1.p + from, to - from};
    return presence(*out);
}

/* hl7_dtm_parse() without a fault, remembering the valid texts of the message. */
static bool parse_dtm_text(vrun *x, hl7_span s, hl7_dtm *out)
{
    for (uint32_t i = 0; i < DTM_TEXTS; i++) {
        const dtm_text *d = &x->dtms[i];
        if (d->len == s.len && s.len && bytes_equal(d->p, s.p, s.len)) {
            *out = d->t;
            return true;
        }
    }
    if (!hl7_dtm_parse(s.p, s.len, out, NULL)) return false;
    dtm_text *d = &x->dtms[x->ndtms++ % DTM_TEXTS];
    d->p = s.p;
    d->len = s.len;
    d->t = *out;
    return true;
}

/* The date/time of field `field` (component 1 of its first repetition) in
 * the segment in view: from the memo, else parsed now and remembered (when
 * the memo is full, into its spare entry, refilled at each call). Never
 * NULL; ok says whether there is a valid DTM. */
static const dtm_memo *dtm_parse_field(vrun *x, uint32_t field);

static inline const dtm_memo *dtm_at(vrun *x, uint32_t field)
{
    segview *sv = &x->sv;
    for (uint32_t i = 0; i < sv->ndtm; i++)
        if (sv->dtm[i].field == field) return &sv->dtm[i];
    return dtm_parse_field(x, field);
}

static const dtm_memo *dtm_parse_field(vrun *x, uint32_t field)
{
    segview *sv = &x->sv;
    dtm_memo *d = sv->ndtm < VIEW_DTMS ? &sv->dtm[sv->ndtm++] : &sv->dtm_spare;
    d->field = field;
    d->text = (hl7_span){"", 0};
    d->ok = comp_at(x, field, 1, &d->text) == HL7_VALUE && parse_dtm_text(x, d->text, &d->t);
    return d;
}

/* Component 1 of field `field` (first repetition) parsed as a DTM. */
static bool read_dtm(vrun *x, uint32_t field, hl7_dtm *out, hl7_span *text)
{
    const dtm_memo *d = dtm_at(x, field);
    if (d->ok) {
        *out = d->t;
        if (text) *text = d->text;
    }
    return d->ok;
}

/* A TS on the first repetition whose component 1 is a plain valid DTM:
 * what the full check says, without its cost. false: check the long way
 * (which also describes what is wrong). */
static bool check_ts_fast(vrun *x, const fspec *f, uint32_t rep)
{
    return f->type == HL7_TYPE_TS && !f->comp && rep == 1 && dtm_at(x, f->field)->ok;
}

#define SHOWN(s) (int)((s).len < 40 ? (s).len : 40), (s).p

/* in_table() when the code is not remembered: the table search. */
static bool in_table_search(known_code *k, const hl7_table *t, hl7_span v)
{
    if (!hl7_table_has(t, v.p, v.len)) return false;
    if (v.len <= sizeof(k->code)) {
        k->t = t;
        k->len = (uint8_t)v.len;
        memcpy(k->code, v.p, v.len);
    }
    return true;
}

/* hl7_table_has() of a non-empty value, remembering the codes found. */
static inline bool in_table(vrun *x, const hl7_table *t, hl7_span v)
{
    size_t slot = ((uintptr_t)t / 16 + v.len * 7 + (unsigned char)v.p[0]) & (KNOWN_CODES - 1);
    known_code *k = &x->known[slot];
    if (k->t == t && k->len == v.len && same_bytes(k->code, v.p, v.len)) return true;
    return in_table_search(k, t, v);
}

/* --- field specs ----------------------------------------------------------------- */

static validate_rule rule_of_fault(const hl7_type_fault *f)
{
    switch (f->code) {
    case HL7_ACK_ERR_REQUIRED_FIELD: return VALIDATE_RULE_REQUIRED;
    case HL7_ACK_ERR_TABLE_VALUE: return VALIDATE_RULE_TABLE;
    case HL7_ACK_ERR_VALUE_TOO_LONG: return VALIDATE_RULE_LENGTH;
    default: return VALIDATE_RULE_DATATYPE;
    }
}

/* Where a problem of spec f on repetition rep of occurrence occ is. */
static hl7_path spec_at(const fspec *f, uint32_t occ, uint32_t rep)
{
    return at(f->seg, occ, f->field, rep, f->comp, f->sub);
}

/* hl7_nm_parse() of a raw span of the segment in view, remembered for the
 * next check of the same span (OBX-5: a datatype check, then a range). */
/* hl7_nm_parse() of 1 to 4 bytes of digits with at most one point: its
 * value, computed as it does; false for any other text. */
static inline bool nm_short(const char *s, size_t len, double *out)
{
    static const double p10[4] = {1, 10, 100, 1000};
    if (len - 1 >= 4) return false;
    uint32_t m = 0;
    size_t dot = len;
    for (size_t i = 0; i < len; i++) {
        unsigned d = (unsigned)(unsigned char)s[i] - '0';
        if (d < 10)
            m = m * 10 + d;
        else if (s[i] == '.' && dot == len)
            dot = i;
        else
            return false;
    }
    if (dot == len) {
        *out = (double)m;
        return true;
    }
    if (len == 1) return false;
    *out = (double)m / p10[len - 1 - dot];
    return true;
}

static inline bool nm_of(vrun *x, hl7_span v, double *out)
{
    segview *sv = &x->sv;
    if (sv->nm_p != v.p || sv->nm_len != v.len) {
        sv->nm_p = v.p;
        sv->nm_len = v.len;
        sv->nm_ok = nm_short(v.p, v.len, &sv->nm) || hl7_nm_parse(v.p, v.len, &sv->nm, NULL);
    }
    *out = sv->nm;
    return sv->nm_ok;
}

/* The NM check of a whole repetition without escapes, from nm_of(): what
 * hl7_type_check_raw() says when it passes. false: check the long way. */
static bool check_nm_fast(vrun *x, const fspec *f, hl7_span raw)
{
    if (f->type != HL7_TYPE_NM || f->comp) return false;
    hl7_span c1 = first_comp(x, f->field, raw);
    if (x->d->esc && scan_for(c1.p, c1.len, x->d->esc)) return false;
    double d;
    return c1.len == 0 || nm_of(x, c1, &d);
}

/* Whether raw (a span of the message) was found a valid t before, read
 * with the message's delimiters (inner false) or with subcomponents as
 * parts (inner true): two specs often check one field (PID-3, PID-5). */
static bool type_known(const vrun *x, hl7_type t, bool inner, hl7_span raw)
{
    uint32_t n = x->ntypes < TYPE_MEMO ? x->ntypes : TYPE_MEMO;
    for (uint32_t i = 0; i < n; i++) {
        const type_memo *k = &x->types[i];
        if (k->p == raw.p && k->len == raw.len && k->t == t && k->inner == inner) return true;
    }
    return false;
}

static void type_remember(vrun *x, hl7_type t, bool inner, hl7_span raw)
{
    type_memo *k = &x->types[x->ntypes++ % TYPE_MEMO];
    *k = (type_memo){raw.p, raw.len, t, inner};
}

/* A coding system name: letters, digits, '-', '_', '.', ':' (the CWE check's
 * rule, hl7_types.c). */
static bool code_system(const char *s, size_t len)
{
    static const uint64_t ok[4] = {
        0x07ff600000000000ull, /* '-' '.' '0'-'9' ':' */
        0x07fffffe87fffffeull, /* 'A'-'Z' '_' 'a'-'z' */
        0, 0};
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!(ok[ch >> 6] >> (ch & 63) & 1)) return false;
    }
    return true;
}

/* hl7_type_check_split() of a CWE or CE without a table (as field specs
 * check them) on a repetition p[0..len), a value, whose component
 * separators are the bits of `bits`: its six components read from the
 * mask, nothing split. */
static bool cwe_clean(const char *p, size_t len, uint64_t bits)
{
#define NEXT_SEP(b) ((b) ? (size_t)__builtin_ctzll(b) : len)
    if (!bits) return len != 0; /* the identifier alone */
    size_t a = (size_t)__builtin_ctzll(bits); /* where component 1 ends */
    bits &= bits - 1;
    size_t b = NEXT_SEP(bits); /* ... component 2 (text) */
    bits &= bits - 1;
    bool id = a != 0, text = b > a + 1;
    if (b == len) return id || text;
    size_t c = NEXT_SEP(bits); /* ... component 3 (coding system) */
    bits &= bits - 1;
    if (c > b + 1 && (!id || !code_system(p + b + 1, c - b - 1))) return false;
    if (c == len) return id || text;
    size_t d = NEXT_SEP(bits); /* ... component 4 (alternate identifier) */
    bits &= bits - 1;
    bool alt = d > c + 1;
    if (d == len) return id || text || alt;
    size_t e = NEXT_SEP(bits); /* ... component 5 (alternate text) */
    bits &= bits - 1;
    if (!(id || text || alt || e > d + 1)) return false;
    if (e == len) return true;
    size_t f = NEXT_SEP(bits); /* ... component 6 (alternate coding system) */
    return f == e + 1 || (alt && code_system(p + e + 1, f - e - 1));
#undef NEXT_SEP
}

/* hl7_type_check_raw() of composite type t (not TS) on a repetition r, a
 * value, of the segment in view, whose component separators are the bits
 * of `bits` (r.len <= MASK_MAX), without a fault. */
static bool rep_type_ok(vrun *x, hl7_type t, hl7_span r, uint64_t bits)
{
    if (t == HL7_TYPE_CWE || t == HL7_TYPE_CE) return cwe_clean(r.p, r.len, bits);
    if (t == HL7_TYPE_XPN && !(bits & 1)) return true; /* a family name: nothing else to check */
    hl7_span part[HL7_TYPE_MAXPARTS];
    uint32_t want = (uint32_t)hl7_type_parts(t), n = 0;
    size_t from = 0;
    for (; n < want && bits; n++) {
        size_t at = (size_t)__builtin_ctzll(bits);
        bits &= bits - 1;
        part[n] = (hl7_span){r.p + from, at - from};
        from = at + 1;
    }
    if (n < want) {
        part[n++] = (hl7_span){r.p + from, r.len - from};
        for (uint32_t k = n; k < want; k++) part[k] = (hl7_span){"", 0};
    } else {
        n++; /* a separator was seen: one more */
    }
    return hl7_type_check_split(t, &x->tctx, part, n, NULL, NULL);
}

/* The repetitions of field `field` (viewed as fv, not masked) of the
 * segment in view, found once: how many; sv.rep_end holds where the first
 * REPS_MAX end. */
static uint32_t field_reps(vrun *x, uint32_t field, const fview *fv)
{
    segview *sv = &x->sv;
    if (sv->reps_field != field) {
        const char *p = fv->whole.p, *end = p + fv->whole.len;
        uint32_t n = 0;
        for (;;) {
            const char *q = x->d->rep ? hl7_scan2(p, end, x->d->rep, x->d->rep) : end;
            if (n < REPS_MAX) sv->rep_end[n] = (uint32_t)(q - fv->whole.p);
            n++;
            if (q == end) break;
            p = q + 1;
        }
        sv->nreps = n;
        sv->reps_field = field;
    }
    return sv->nreps;
}

/* hl7_type_check_raw() without a fault of composite type f->type (not TS)
 * on every repetition of the field viewed as fv (a value), remembered:
 * true when each passes. */
static bool reps_type_clean(vrun *x, const fspec *f, const fview *fv)
{
    const char *p = fv->whole.p, *end = p + fv->whole.len;
    uint64_t reps = fv->rep_bits;
    uint32_t nreps = fv->masked ? 0 : field_reps(x, f->field, fv);
    for (uint32_t k = 0;; k++) {
        const char *q;
        if (fv->masked)
            q = reps ? fv->whole.p + __builtin_ctzll(reps) : end;
        else if (k < REPS_MAX && k < nreps)
            q = fv->whole.p + x->sv.rep_end[k];
        else
            q = x->d->rep ? hl7_scan2(p, end, x->d->rep, x->d->rep) : end;
        hl7_span r = {p, (size_t)(q - p)};
        if (presence(r) == HL7_VALUE &&
            !(f->type_shared && type_known(x, f->type, false, r))) {
            size_t at = (size_t)(p - fv->whole.p);
            uint64_t bits;
            if (fv->masked) {
                bits = fv->comp_bits >> at & below(r.len);
            } else if (r.len <= MASK_MAX) {
                fview m;
                field_masks(x, r.p, r.len, &m);
                bits = m.comp_bits;
            } else {
                bits = 0;
            }
            bool ok = r.len <= MASK_MAX
                          ? rep_type_ok(x, f->type, r, bits)
                          : hl7_type_check_raw(f->type, &x->tctx, r.p, r.len, NULL, NULL);
            if (!ok) return false;
            if (f->type_shared) type_remember(x, f->type, false, r);
        }
        if (q == end) return true;
        p = q + 1;
        reps &= reps - 1;
    }
}

/* hl7_type_check_raw() without a fault (the parts of the first repetition
 * split once), remembered. */
static bool type_clean(vrun *x, const fspec *f, const fview *fv)
{
    if (f->type_shared && type_known(x, f->type, false, fv->whole)) return true;
    if (f->type == HL7_TYPE_XPN && fv->masked && fv->pres == HL7_VALUE && !(fv->comp_bits & 1))
        return true; /* a family name: nothing else to check (nothing to remember) */
    if ((f->type == HL7_TYPE_CWE || f->type == HL7_TYPE_CE) && fv->masked &&
        fv->pres == HL7_VALUE) {
        if (!cwe_clean(fv->rep1.p, fv->rep1.len, fv->comp_bits & below(fv->rep1.len)))
            return false;
    } else {
        uint32_t n;
        const hl7_span *part =
            split_rep1(x, f->field, fv, (uint32_t)hl7_type_parts(f->type), &n);
        if (!hl7_type_check_split(f->type, &x->tctx, part, n, NULL, NULL)) return false;
    }
    if (f->type_shared) type_remember(x, f->type, false, fv->whole);
    return true;
}

static void check_type(vrun *x, const fspec *f, uint32_t occ, uint32_t rep, hl7_span raw)
{
    if (check_ts_fast(x, f, rep) || check_nm_fast(x, f, raw)) return;
    bool in_comp = f->comp && !f->sub;
    if (f->type_shared && type_known(x, f->type, in_comp, raw)) return;
    hl7_type_ctx c = x->tctx;
    hl7_delims inner;
    if (in_comp) { /* a composite inside a component: parts are subcomponents */
        inner = *x->d;
        inner.comp = inner.sub;
        inner.sub = '\0';
        c.d = &inner;
    }
    hl7_type_fault flt;
    if (hl7_type_check_raw(f->type, &c, raw.p, raw.len, NULL, &flt)) {
        if (f->type_shared) type_remember(x, f->type, in_comp, raw);
        return;
    }
    hl7_path w = spec_at(f, occ, rep);
    if (!f->comp) {
        w.comp = flt.comp;
        w.sub = flt.comp ? flt.sub : 0;
    } else if (!f->sub) {
        w.sub = flt.comp;
    }
    add(x, rule_of_fault(&flt), flt.code, x->sv.si, &w, "%s: %s", hl7_type_name(f->type), flt.text);
}

static void check_range(vrun *x, const fspec *f, uint32_t occ, uint32_t rep, hl7_span val, bool raw)
{
    double d;
    bool ok = raw ? nm_of(x, val, &d) : hl7_nm_parse(val.p, val.len, &d, NULL);
    hl7_path where = spec_at(f, occ, rep);
    if (!ok) {
        if (f->type != HL7_TYPE_NM)
            add(x, VALIDATE_RULE_RANGE, HL7_ACK_ERR_DATA_TYPE, x->sv.si, &where,
                "not a number: '%.*s' (a range is set)", SHOWN(val));
    } else if (f->has_min && d < f->min) {
        add(x, VALIDATE_RULE_RANGE, HL7_ACK_ERR_DATA_TYPE, x->sv.si, &where,
            "%.*s is below the minimum %g", SHOWN(val), f->min);
    } else if (f->has_max && d > f->max) {
        add(x, VALIDATE_RULE_RANGE, HL7_ACK_ERR_DATA_TYPE, x->sv.si, &where,
            "%.*s is above the maximum %g", SHOWN(val), f->max);
    }
}

/* Checks one present value (a repetition, or the component the spec names). */
static void check_value(vrun *x, const fspec *f, uint32_t occ, uint32_t rep, hl7_span raw)
{
    if (f->type != HL7_TYPE_NONE && x->types_on) check_type(x, f, occ, rep, raw);
    if (!f->table && !f->max_len && !f->has_min && !f->has_max) return;
    hl7_span first = f->comp ? raw : first_comp(x, f->field, raw);
    hl7_span val = decoded(x, first);
    if (f->table && val.len && !in_table(x, f->table, val)) {
        hl7_path w = spec_at(f, occ, rep);
        if (!f->comp && first.len != raw.len) w.comp = 1;
        add(x, VALIDATE_RULE_TABLE, HL7_ACK_ERR_TABLE_VALUE, x->sv.si, &w,
            "'%.*s' is not in table %s (%s)", SHOWN(val), f->table->name, f->table->title);
    }
    if (f->max_len) {
        hl7_type_fault flt;
        hl7_span whole = f->comp ? val : decoded(x, raw);
        if (!hl7_type_check_length(whole.p, whole.len, f->max_len, &flt)) {
            hl7_path where = spec_at(f, occ, rep);
            add(x, VALIDATE_RULE_LENGTH, flt.code, x->sv.si, &where, "too long: %s", flt.text);
        }
        val = decoded(x, first);
    }
    if ((f->has_min || f->has_max) && val.len && rule_on(x, VALIDATE_RULE_RANGE))
        check_range(x, f, occ, rep, val, val.p == first.p);
}

static __attribute__((noinline)) bool when_holds(vrun *x, const fspec *f)
{
    hl7_span s;
    if (comp_at(x, f->when_field, f->when_comp ? f->when_comp : 1, &s) != HL7_VALUE)
        return false;
    return s.len == f->when_len && same_bytes(s.p, f->when_value, s.len);
}

/* One repetition (or the component the spec names in it). */
static void check_rep(vrun *x, const fspec *f, uint32_t occ, uint32_t rep, hl7_presence pr,
                      hl7_span val)
{
    if (pr == HL7_VALUE) {
        check_value(x, f, occ, rep, val);
    } else if (pr != HL7_NULL_VALUE && f->required && (f->comp || f->rep)) {
        hl7_path w = spec_at(f, occ, rep);
        char path[40];
        add(x, VALIDATE_RULE_REQUIRED, HL7_ACK_ERR_REQUIRED_FIELD, x->sv.si, &w,
            "required %s missing", hl7_path_format(&w, path, sizeof(path)));
    }
}

/* Component 1 of the first repetition of fv holds no escape. */
static inline __attribute__((always_inline)) bool field_plain(const vrun *x, const fview *fv)
{
    hl7_span c1 = fv->comp1;
    if (fv->masked) return !(fv->esc_bits & below(c1.len));
    const char *limit = x->sv.f.p + x->sv.f.len;
    return !x->d->esc ||
           hl7_scan2_in(c1.p, c1.p + c1.len, limit, x->d->esc, x->d->esc) == c1.p + c1.len;
}

/* True when spec f (whole_rep) finds nothing to report in a field of one
 * plain repetition, shown cheaply with the memos of the run; false when
 * that is not shown, and check_field() then checks the long way. */
static bool field_clean(vrun *x, const fspec *f, const fview *fv)
{
    if (fv->pres != HL7_VALUE || fv->rep1.len != fv->whole.len) return false;
    hl7_span c1 = fv->comp1;
    bool plain = field_plain(x, fv);
    double d;
    if (f->type != HL7_TYPE_NONE && x->types_on) {
        switch (f->type) {
        case HL7_TYPE_TS:
            if (c1.len && !(plain && dtm_at(x, f->field)->ok)) return false;
            break;
        case HL7_TYPE_NM:
            if (c1.len && !(plain && nm_of(x, c1, &d))) return false;
            break;
        default:
            if (!type_clean(x, f, fv)) return false;
        }
    }
    if (!c1.len) return true;
    if (f->table && !(plain && in_table(x, f->table, c1))) return false;
    if ((f->has_min || f->has_max) && x->range_on) {
        if (!plain || !nm_of(x, c1, &d)) return false;
        if ((f->has_min && d < f->min) || (f->has_max && d > f->max)) return false;
    }
    return true;
}

/* Spec f on the segment in view, whose occurrence and condition hold. */
static __attribute__((noinline)) void check_field(vrun *x, const fspec *f, uint32_t occ)
{
    fview spare;
    const fview *fv = view_field(x, f->field, &spare);
    if (f->whole_rep && field_clean(x, f, fv)) return;
    hl7_span whole = fv->whole;
    if (fv->pres == HL7_ABSENT || fv->pres == HL7_EMPTY) {
        if (f->required) {
            hl7_path w = at(f->seg, occ, f->field, f->rep, f->comp, f->sub);
            add(x, VALIDATE_RULE_REQUIRED, HL7_ACK_ERR_REQUIRED_FIELD, x->sv.si, &w,
                "required field %s-%u missing", f->seg, f->field);
        }
        return;
    }
    if (fv->pres == HL7_NULL_VALUE) return;
    /* MSH-1 and MSH-2 hold delimiters and are never split. */
    bool fixed = f->field <= 2 && f->key == MSH_KEY;
    if (f->max_reps) {
        uint32_t nreps = fixed ? 1 : count_pieces(whole, x->d->rep);
        if (nreps > f->max_reps) {
            hl7_path w = at(f->seg, occ, f->field, 0, 0, 0);
            add(x, VALIDATE_RULE_REPETITION, HL7_ACK_ERR_DATA_TYPE, x->sv.si, &w,
                "field repeats %u times, at most %u allowed", nreps, f->max_reps);
        }
    }
    if (fixed) {
        check_rep(x, f, occ, 1, presence(whole), whole);
    } else if (f->rep) {
        hl7_span val = whole;
        check_rep(x, f, occ, f->rep, element(x, whole, f->rep, f->comp, f->sub, &val), val);
    } else if (fv->rep1.len == whole.len) { /* one repetition */
        if (f->comp == 0) {
            check_value(x, f, occ, 1, whole); /* present: whole is a VALUE */
        } else if (f->comp == 1 && !f->sub) {
            check_rep(x, f, occ, 1, presence(fv->comp1), fv->comp1);
        } else {
            hl7_span val = whole;
            check_rep(x, f, occ, 1, inside(x, whole, f->comp, f->sub, &val), val);
        }
    } else { /* every repetition, in one pass over the field */
        const char *p = whole.p, *end = whole.p + whole.len;
        for (uint32_t rep = 1;; rep++) {
            const char *q = x->d->rep ? scan_for(p, (size_t)(end - p), x->d->rep) : NULL;
            hl7_span r = {p, (size_t)((q ? q : end) - p)}, val = r;
            check_rep(x, f, occ, rep, inside(x, r, f->comp, f->sub, &val), val);
            if (!q) break;
            p = q + 1;
        }
    }
}

static bool profile_matches(const validate_profile *p, hl7_span type, hl7_span event)
{
    if (p->type[0] && !span_is(type, p->type)) return false;
    return !p->event[0] || span_is(event, p->event);
}

/* Occurrence counters per segment id, for paths; falls back to a scan. */
typedef struct occ_table {
    uint32_t id[48], count[48];
    size_t n, last; /* entries; the one used last */
} occ_table;

static uint32_t next_occ(occ_table *t, const vrun *x, uint32_t si, uint32_t key)
{
    if (t->n && t->id[t->last] == key) return ++t->count[t->last]; /* a run of one id */
    for (size_t i = 0; i < t->n; i++)
        if (t->id[i] == key) {
            t->last = i;
            return ++t->count[i];
        }
    if (t->n < 48) {
        t->last = t->n;
        t->id[t->n] = key;
        t->count[t->n++] = 1;
        return 1;
    }
    uint32_t occ = 1;
    for (uint32_t i = 0; i < si; i++)
        occ += seg_key(x, i) == key;
    return occ;
}


/* The condition of spec ps (cond not 0) on the segment in view: once per
 * segment, and remembered across segments by the text of the field it
 * reads (OBX-2 repeats). */
static bool cond_holds(vrun *x, const plan_spec *ps)
{
    uint32_t c = ps->cond - 1;
    if (c >= COND_MEMO) return when_holds(x, ps->f);
    uint32_t bit = (uint32_t)1 << c;
    if (x->sv.cond_known & bit) return x->sv.cond_held & bit;
    hl7_span text = field_text(x, ps->f->when_field);
    clean_text *w = &x->cond_text[c];
    bool held;
    if (w->p && w->len == text.len && bytes_equal(w->p, text.p, text.len)) {
        held = x->cond_was[c];
    } else {
        w->p = text.p;
        w->len = (uint32_t)text.len;
        held = x->cond_was[c] = when_holds(x, ps->f);
    }
    x->sv.cond_known |= bit;
    if (held) x->sv.cond_held |= bit;
    return held;
}

/* Profile p of a plan (0: the baseline) applies to the message. */
static inline bool plan_applies(const vrun *x, uint32_t p)
{
    if (p < 64) return x->applies >> p & 1;
    return profile_matches(x->v->profiles[p - 1], x->type, x->event);
}

/* What field_clean() says of spec sp (op not OP_CHECK or OP_PRESENT) on
 * the field viewed as fv, by the kind of spec: true when it finds nothing to
 * report; false when check_field() must tell. */
static inline bool op_clean(vrun *x, const plan_spec *sp, const fview *fv)
{
    const fspec *f = sp->f;
    if (fv->pres != HL7_VALUE) /* missing: a problem only when required; "" never one */
        return fv->pres == HL7_NULL_VALUE || !f->required;
    if (sp->op == OP_COMP_TABLE) { /* one repetition, from the masks */
        if (!fv->masked || fv->rep_bits) return false;
        uint64_t bits = fv->comp_bits;
        size_t from = 0;
        for (uint32_t k = 1; k < f->comp; k++) {
            if (!bits) return !f->required; /* no such component */
            from = (size_t)__builtin_ctzll(bits) + 1;
            bits &= bits - 1;
        }
        size_t to = bits ? (size_t)__builtin_ctzll(bits) : fv->whole.len;
        hl7_span v = {fv->whole.p + from, to - from};
        if (presence(v) != HL7_VALUE) return !f->required || v.len;
        return !(fv->esc_bits & below(to) & ~below(from)) && in_table(x, f->table, v);
    }
    if (fv->rep1.len != fv->whole.len) { /* repetitions: a composite's are checked here */
        if (sp->op != OP_COMPOSITE) return false;
        if (f->max_reps) {
            uint32_t nreps = fv->masked ? 1 : field_reps(x, f->field, fv);
            for (uint64_t b = fv->masked ? fv->rep_bits : 0; b; b &= b - 1) nreps++;
            if (nreps > f->max_reps) return false;
        }
        return !x->types_on || reps_type_clean(x, f, fv);
    }
    hl7_span c1 = fv->comp1;
    switch (sp->op) {
    case OP_TABLE:
        return !c1.len || (field_plain(x, fv) && in_table(x, f->table, c1));
    case OP_NUM: {
        bool range = (f->has_min || f->has_max) && x->range_on;
        if (!c1.len || (!range && (!x->types_on || f->type == HL7_TYPE_NONE))) return true;
        double d;
        if (!field_plain(x, fv) || !nm_of(x, c1, &d)) return false;
        return !range || !((f->has_min && d < f->min) || (f->has_max && d > f->max));
    }
    case OP_TS:
        return !x->types_on || !c1.len || (field_plain(x, fv) && dtm_at(x, f->field)->ok);
    default: /* OP_COMPOSITE */
        return !x->types_on || type_clean(x, f, fv);
    }
}

/* The field specs of the segment in view, field by field (plan_seg):
 * false, with the result as it was, as soon as one finds a problem; the
 * segment is then checked in the order users see (check_in_order()). */
static bool plan_segment(vrun *x, const plan_seg *ps, uint32_t occ)
{
    const validator *v = x->v;
    size_t problems = x->r->n;
    for (uint32_t fi = ps->first; fi < ps->end; fi++) {
        const plan_field *pf = &v->pfields[fi];
        hl7_span text = {"", 0};
        clean_text *c = &x->clean[pf->memo];
        bool compared = c->misses < MEMO_MISSES; /* OBX-3 and OBX-5 differ in every OBX */
        if (compared) {
            text = field_text(x, pf->field);
            if (c->len == text.len && c->p && bytes_equal(c->p, text.p, text.len)) {
                c->misses = 0;
                continue;
            }
            if (c->p) c->misses++;
        }
        bool all = true; /* every spec of the field checked it */
        const fview *fv = NULL;
        for (uint32_t i = pf->first; i < pf->end; i++) {
            const plan_spec *sp = &v->pspecs[i];
            const fspec *f = sp->f;
            if (!plan_applies(x, sp->prof)) continue;
            if (f->seg_occ && f->seg_occ != occ) {
                all = false;
                continue;
            }
            /* A spec clean on the field passes whether its condition holds
             * or not: the condition is asked only when it is not. */
            if (sp->op == OP_PRESENT) {
                if (!f->required) continue;
                text = field_text(x, pf->field);
                if (text.len) continue;
            } else if (sp->op != OP_CHECK) {
                if (!fv) fv = view_field(x, pf->field, NULL);
                if (op_clean(x, sp, fv)) continue;
            }
            if (sp->cond && !cond_holds(x, sp)) {
                all = false;
                continue;
            }
            check_field(x, f, occ);
            if (x->r->n != problems) return false;
        }
        if (compared && all) {
            c->p = text.p;
            c->len = (uint32_t)text.len;
        }
    }
    return true;
}

/* The specs of p for segments with this id, or NULL. */
static const struct fgroup *find_group(const validate_profile *p, uint32_t key)
{
    for (size_t g = 0; g < p->ngroups; g++)
        if (p->groups[g].key == key) return &p->groups[g];
    return NULL;
}

/* The field specs of the segment in view in profile order (the baseline,
 * then each profile that applies; a profile's specs in the order given),
 * which is the order of their problems. */
static __attribute__((noinline)) void check_in_order(vrun *x, uint32_t key, uint32_t occ)
{
    const validator *v = x->v;
    for (size_t pi = 0; pi <= v->nprofiles; pi++) {
        if (!plan_applies(x, (uint32_t)pi)) continue;
        const validate_profile *p = pi ? v->profiles[pi - 1] : v->base;
        const struct fgroup *g = find_group(p, key);
        if (!g) continue;
        for (size_t i = g->start; i < g->end; i++) {
            const fspec *f = &p->fields[i];
            if (f->seg_occ && f->seg_occ != occ) continue;
            if (f->has_when && !when_holds(x, f)) continue;
            check_field(x, f, occ);
        }
    }
}

/* --- segment structure ------------------------------------------------------------ */

/* The matcher works on segment ids as numbers (id_key; 0 means "no more
 * segments") and looks the text up only to report. */
typedef struct smatch {
    vrun *x;
    const validate_profile *p;
    uint32_t pos, n;
    uint32_t last; /* last node a segment matched, NONE */
    uint32_t asked_key; /* the segment id in_structure() answered last (0: none) */
    bool asked_in;
    uint32_t cur_pos; /* cur_key() answered cur for this pos last (NONE: not yet) */
    uint32_t cur;
} smatch;

static bool key_in_structure(const validate_profile *p, uint32_t key)
{
    if (p->nskeys <= 16) {
        for (uint32_t k = 0; k < p->nskeys; k++)
            if (p->skeys[k] == key) return true;
        return false;
    }
    for (size_t i = 0; i < p->nnodes; i++)
        if (p->nodes[i].kind == NODE_SEG && p->nodes[i].key == key) return true;
    return false;
}

/* key_in_structure(), remembering the last answer: the matcher asks about
 * the segment at the cursor several times. */
static inline bool known_key(smatch *sm, uint32_t key)
{
    if (key != sm->asked_key) {
        sm->asked_key = key;
        sm->asked_in = key_in_structure(sm->p, key);
    }
    return sm->asked_in;
}

/* Id of the segment at the cursor, Z segments unknown to the structure
 * skipped; 0 at the end. */
static inline uint32_t cur_key(smatch *sm)
{
    if (sm->pos == sm->cur_pos) return sm->cur;
    uint32_t key = 0;
    for (; sm->pos < sm->n; sm->pos++) {
        uint32_t k = seg_key(sm->x, sm->pos);
        if ((k >> 16) != 'Z' || known_key(sm, k)) {
            key = k;
            break;
        }
    }
    sm->cur_pos = sm->pos;
    sm->cur = key;
    return key;
}

/* Text of the segment id at the cursor (cur_key() not 0). */
static const char *cur_text(const smatch *sm)
{
    return hl7_seg_at(sm->x->m, sm->pos)->id;
}

/* A segment with this id can start node ni. */
static inline bool first_has(const validate_profile *p, uint32_t ni, uint32_t key)
{
    const snode *n = &p->nodes[ni];
    if (n->nfirst <= FIRST_MAX) {
        for (uint32_t i = 0; i < n->nfirst; i++)
            if (n->first[i] == key) return true;
        return false;
    }
    for (uint32_t c = n->child; c != NONE; c = p->nodes[c].next) {
        if (first_has(p, c, key)) return true;
        if (!p->nodes[c].optional) return false;
    }
    return false;
}

/* The segment that must open a group: its first required segment. */
static const char *first_required(const validate_profile *p, uint32_t ni)
{
    const snode *n = &p->nodes[ni];
    if (n->kind == NODE_SEG) return n->id;
    for (uint32_t c = n->child; c != NONE; c = p->nodes[c].next)
        if (!p->nodes[c].optional) return first_required(p, c);
    return first_required(p, n->child);
}

static void missing_segment(smatch *sm, const char *id) __attribute__((cold));
static void missing_segment(smatch *sm, const char *id)
{
    hl7_path w = at(id, 0, 0, 0, 0, 0);
    if (cur_key(sm))
        add(sm->x, VALIDATE_RULE_STRUCTURE, HL7_ACK_ERR_SEGMENT_SEQUENCE, NONE, &w,
            "required segment %.3s missing (expected before %s, %s structure)", id, cur_text(sm),
            sm->p->name);
    else
        add(sm->x, VALIDATE_RULE_STRUCTURE, HL7_ACK_ERR_SEGMENT_SEQUENCE, NONE, &w,
            "required segment %.3s missing (expected at the end, %s structure)", id, sm->p->name);
}

/* Reports the segment at the cursor as misplaced and moves past it. */
static void report_stray(smatch *sm) __attribute__((cold));
static void report_stray(smatch *sm)
{
    vrun *x = sm->x;
    const validate_profile *p = sm->p;
    const char *id = cur_text(sm);
    uint32_t occ = 1;
    for (uint32_t i = 0; i < sm->pos; i++) occ += !memcmp(hl7_seg_at(x->m, i)->id, id, 3);
    hl7_path w = at(id, occ, 0, 0, 0, 0);
    const snode *last = sm->last != NONE ? &p->nodes[sm->last] : NULL;
    const char *prev = sm->pos ? hl7_seg_at(x->m, sm->pos - 1)->id : "";
    if (last && !memcmp(last->id, id, 3) && !last->recurs)
        add(x, VALIDATE_RULE_STRUCTURE, HL7_ACK_ERR_SEGMENT_SEQUENCE, sm->pos, &w,
            "segment %s repeats, but the %s structure allows one here", id, p->name);
    else if (key_in_structure(p, id_key(id)))
        add(x, VALIDATE_RULE_STRUCTURE, HL7_ACK_ERR_SEGMENT_SEQUENCE, sm->pos, &w,
            "segment %s out of order after %s (%s structure)", id, prev, p->name);
    else
        add(x, VALIDATE_RULE_STRUCTURE, HL7_ACK_ERR_SEGMENT_SEQUENCE, sm->pos, &w,
            "segment %s is not in the %s structure", id, p->name);
    sm->pos++;
}

/* Id at the cursor after skipping (and reporting) segments the structure
 * does not name, so that one stray segment does not cascade into "missing"
 * and "out of order" reports for everything after it. */
static inline uint32_t next_key(smatch *sm)
{
    uint32_t key;
    while ((key = cur_key(sm)) != 0 && !known_key(sm, key))
        report_stray(sm);
    return key;
}

/* A repeat of the segment matched last, which may occur only once. */
static bool is_repeat(const smatch *sm, uint32_t key)
{
    const snode *last = sm->last != NONE ? &sm->p->nodes[sm->last] : NULL;
    return last && !last->recurs && last->key == key;
}

static void match_group(smatch *sm, uint32_t gi);

/* A round of a repeating group that went without a problem: it used the
 * segments from start on (len of them, one more looked at) and left last
 * as the node matched last. The matcher reads nothing but segment ids, the
 * cursor and `last`, so a round starting on the same len + 1 ids does the
 * same again: then it is replayed instead of matched (a panel's OBX). */
typedef struct replay {
    uint32_t start, len; /* len 0: nothing to replay */
    uint32_t last;
    /* The id next_key() gave right after the round, at its end (no segment
     * skipped), with which another round began; 0: none. A replayed round
     * ends on that id again (replayed() compares it), so the same test
     * would pass: another round follows, at no cost. */
    uint32_t next;
} replay;

static void remember_round(smatch *sm, replay *rp, uint32_t start, size_t problems)
{
    rp->len = 0;
    rp->next = 0;
    if (sm->x->r->n != problems || sm->pos <= start || sm->pos >= sm->n || !sm->x->keys) return;
    rp->start = start;
    rp->len = sm->pos - start;
    rp->last = sm->last;
}

static bool replayed(smatch *sm, const replay *rp)
{
    if (!rp->len || sm->pos + rp->len >= sm->n) return false;
    const uint32_t *k = sm->x->keys;
    for (uint32_t i = 0; i <= rp->len; i++)
        if (k[sm->pos + i] != k[rp->start + i]) return false;
    sm->pos += rp->len;
    sm->last = rp->last;
    return true;
}

/* Matches child c at the cursor, where the segment id is key (0: none);
 * false when that segment cannot start it. */
static bool match_child(smatch *sm, uint32_t c, uint32_t key)
{
    const snode *n = &sm->p->nodes[c];
    if (!key) return false;
    if (n->kind == NODE_SEG) {
        if (key != n->key) return false;
        do {
            sm->pos++;
            sm->last = c;
        } while (n->repeating && next_key(sm) == n->key);
        return true;
    }
    if (n->single != NONE) { /* [SEG], {SEG}: as the segment, repeating if either does */
        const snode *sn = &sm->p->nodes[n->single];
        if (key != sn->key) return false;
        bool rep = sn->repeating || n->repeating;
        do {
            sm->pos++;
            sm->last = n->single;
        } while (rep && next_key(sm) == sn->key);
        return true;
    }
    if (!first_has(sm->p, c, key)) return false;
    replay rp = {0, 0, NONE, 0};
    for (;;) {
        uint32_t before = sm->pos;
        bool fresh = false;
        if (replayed(sm, &rp)) {
            if (rp.next) {
                sm->cur_pos = sm->pos;
                sm->cur = rp.next;
                continue;
            }
        } else {
            size_t problems = sm->x->r->n;
            match_group(sm, c);
            remember_round(sm, &rp, before, problems);
            fresh = rp.len != 0;
        }
        uint32_t end = sm->pos;
        if (sm->pos == before || !n->repeating || !(key = next_key(sm)) ||
            !first_has(sm->p, c, key))
            return true;
        if (fresh) rp.next = sm->pos == end ? key : 0;
    }
}

static void match_group(smatch *sm, uint32_t gi)
{
    const validate_profile *p = sm->p;
    for (uint32_t c = p->nodes[gi].child; c != NONE; c = p->nodes[c].next) {
        uint32_t key = next_key(sm);
        if (match_child(sm, c, key) || p->nodes[c].optional) continue;
        /* A required part does not fit: drop repeats of the last segment first. */
        bool matched = false;
        while (key && is_repeat(sm, key) && !matched) {
            report_stray(sm);
            key = next_key(sm);
            matched = match_child(sm, c, key);
        }
        if (!matched)
            missing_segment(sm, p->nodes[c].kind == NODE_SEG ? p->nodes[c].id
                                                             : first_required(p, c));
    }
}

static void check_structure(vrun *x, const validate_profile *p)
{
    smatch sm = {x, p, 0, hl7_seg_count(x->m), NONE, 0, false, NONE, 0};
    match_group(&sm, 0);
    while (cur_key(&sm))
        report_stray(&sm);
}
/* --- consistency rules --------------------------------------------------------------- */

/* Checked in the same walk as the field specs, on the segment in view.
 * "The current patient" is the last PID seen. */
typedef struct patient {
    bool has_birth;
    hl7_dtm birth;
    hl7_span birth_text;
    char sex; /* 'F', 'M' or 0 */
} patient;

/* The dates that check_before_birth() compares with the birth date. */
enum { DATE_PV1_44, DATE_OBR_7, DATE_OBX_14, DATE_KINDS };

typedef struct consistency {
    patient pt;
    bool has_msh_time; /* MSH-7, read with segment 0 */
    hl7_dtm msh_time;
    /* Per kind of date, the last field text found not before the birth of
     * the current patient (reset with the patient): a panel's OBX-14 repeat. */
    clean_text not_before[DATE_KINDS];
} consistency;

/* No patient and no date seen yet (a few stores: the struct is not cleared
 * whole). */
static void consistency_init(consistency *cs)
{
    cs->pt.has_birth = false;
    cs->pt.sex = 0;
    cs->has_msh_time = false;
    for (size_t i = 0; i < DATE_KINDS; i++)
        cs->not_before[i] = (clean_text){NULL, 0, 0};
}

static bool one_of(const char *alts, hl7_span v)
{
    const char *p = alts;
    for (;;) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == v.len && same_bytes(p, v.p, n)) return true;
        if (!bar) return false;
        p = bar + 1;
    }
}

static bool code_matches(const code_rule *c, hl7_span code, hl7_span system)
{
    if (code.len == 0 || code.p[0] != c->pattern[0]) return false;
    if (c->prefix ? code.len < c->plen : code.len != c->plen) return false;
    if (!same_bytes(code.p, c->pattern, c->plen)) return false;
    return !c->system || one_of(c->system, system);
}

/* The (identifier, coding system) pairs 1/3 and 4/6 of a CWE field. */
typedef struct coded {
    size_t n;
    hl7_span code[2], sys[2];
} coded;

static void coded_pairs(vrun *x, uint32_t field, coded *out)
{
    fview spare;
    const fview *fv = view_field(x, field, &spare);
    out->n = 0;
    if (fv->pres == HL7_ABSENT || presence(fv->rep1) != HL7_VALUE) return;
    uint32_t nparts;
    const hl7_span *part;
    hl7_span six[6];
    if (fv->masked) { /* the six components from the mask */
        uint64_t bits = fv->comp_bits & below(fv->rep1.len);
        size_t from = 0;
        for (nparts = 0; nparts < 6; nparts++) {
            size_t at = bits ? (size_t)__builtin_ctzll(bits) : fv->rep1.len;
            six[nparts] = (hl7_span){fv->rep1.p + from, at - from};
            if (!bits) {
                nparts++;
                break;
            }
            bits &= bits - 1;
            from = at + 1;
        }
        part = six;
    } else {
        part = split_rep1(x, field, fv, 6, &nparts);
    }
    for (uint32_t k = 0; k <= 3; k += 3) {
        size_t n = out->n;
        if (k >= nparts || presence(part[k]) != HL7_VALUE) continue;
        out->code[n] = part[k];
        out->sys[n] = k + 2 < nparts && presence(part[k + 2]) == HL7_VALUE ? part[k + 2]
                                                                           : (hl7_span){"", 0};
        out->n++;
    }
}

static void check_sex(vrun *x, const patient *pt, uint32_t occ, uint32_t field, const coded *cp)
{
    uint32_t si = x->sv.si;
    for (size_t k = 0; k < cp->n; k++)
        for (uint32_t i = index_first(&x->v->sex_ix, cp->code[k]); i != NONE;
             i = x->v->sex[i].next) {
            const code_rule *c = &x->v->sex[i];
            if (!code_matches(c, cp->code[k], cp->sys[k])) continue;
            if (c->sex != pt->sex) {
                hl7_path w = at(hl7_seg_at(x->m, si)->id, occ, field, 1, k ? 4 : 1, 0);
                add(x, VALIDATE_RULE_SEX_SPECIFIC, HL7_ACK_ERR_INTERNAL, si, &w,
                    "code %.*s is specific to %s patients, but PID-8 is %c", SHOWN(cp->code[k]),
                    c->sex == 'F' ? "female" : "male", pt->sex);
            }
            return;
        }
}

static void check_age(vrun *x, const consistency *cs, uint32_t occ, const coded *cp)
{
    for (size_t k = 0; k < cp->n; k++)
        for (uint32_t i = index_first(&x->v->age_ix, cp->code[k]); i != NONE;
             i = x->v->age[i].next) {
            const code_rule *c = &x->v->age[i];
            if (!code_matches(c, cp->code[k], cp->sys[k])) continue;
            hl7_dtm ref;
            if (!read_dtm(x, 5, &ref, NULL)) ref = cs->has_msh_time ? cs->msh_time : x->now;
            int age = hl7_dtm_age_years(&cs->pt.birth, &ref);
            if (age >= 0 && (age < c->min_years || age > c->max_years)) {
                hl7_path w = at("DG1", occ, 3, 1, k ? 4 : 1, 0);
                add(x, VALIDATE_RULE_AGE_RESTRICTED, HL7_ACK_ERR_INTERNAL, x->sv.si, &w,
                    "diagnosis %.*s is for ages %d to %d, but the patient is %d",
                    SHOWN(cp->code[k]), c->min_years, c->max_years, age);
            }
            return;
        }
}

static const limit_rule *find_limit(const validator *v, hl7_span code, hl7_span units)
{
    const limit_rule *any = NULL;
    for (uint32_t i = index_first(&v->limit_ix, code); i != NONE; i = v->limits[i].next) {
        const limit_rule *l = &v->limits[i];
        if (code.len != l->len || !same_bytes(code.p, l->code, l->len)) continue;
        if (!l->units) {
            if (!any) any = l;
        } else if (units.len && one_of(l->units, units)) {
            return l;
        }
    }
    return any;
}

/* Some limit is set for code (whatever the units). */
static bool has_limit(const validator *v, hl7_span code)
{
    for (uint32_t i = index_first(&v->limit_ix, code); i != NONE; i = v->limits[i].next)
        if (code.len == v->limits[i].len && same_bytes(code.p, v->limits[i].code, code.len))
            return true;
    return false;
}

/* The first code with limits decides; the value is parsed only then, and
 * OBX-2, 5 and 6 are read only for a code that has limits. */
static void check_physiologic(vrun *x, uint32_t occ, const coded *cp)
{
    hl7_span type, val, units;
    bool any = false;
    for (size_t k = 0; k < cp->n && !any; k++) any = has_limit(x->v, cp->code[k]);
    if (!any) return;
    if (comp_at(x, 2, 1, &type) != HL7_VALUE || !span_is(type, "NM") ||
        comp_at(x, 5, 1, &val) != HL7_VALUE)
        return;
    if (comp_at(x, 6, 1, &units) != HL7_VALUE) units = (hl7_span){"", 0};
    for (size_t k = 0; k < cp->n; k++) {
        const limit_rule *l = find_limit(x->v, cp->code[k], units);
        if (!l) continue;
        double d;
        if (!hl7_nm_parse(val.p, val.len, &d, NULL)) return;
        if (d < l->min || d > l->max) {
            hl7_path w = at("OBX", occ, 5, 1, 0, 0);
            add(x, VALIDATE_RULE_PHYSIOLOGIC, HL7_ACK_ERR_DATA_TYPE, x->sv.si, &w,
                "%.*s value %.*s%s%.*s is outside the physiologic limits %g to %g",
                SHOWN(cp->code[k]), SHOWN(val), units.len ? " " : "", SHOWN(units), l->min,
                l->max);
        }
        return;
    }
}

/* check_before_birth() once the field's text is not the one found clean last. */
static __attribute__((noinline)) void before_birth_date(vrun *x, consistency *cs, uint32_t occ,
                                                        uint32_t field, hl7_span text,
                                                        clean_text *c, const char *what)
{
    const patient *pt = &cs->pt;
    const dtm_memo *d = dtm_at(x, field);
    if (!d->ok || hl7_dtm_compare(&d->t, &pt->birth) >= 0) {
        c->p = text.p;
        c->len = (uint32_t)text.len;
    } else {
        hl7_path w = at(hl7_seg_at(x->m, x->sv.si)->id, occ, field, 1, 0, 0);
        add(x, VALIDATE_RULE_BEFORE_BIRTH, HL7_ACK_ERR_INTERNAL, x->sv.si, &w,
            "%s %.*s is before the birth date %.*s", what, SHOWN(d->text), SHOWN(pt->birth_text));
    }
}

/* The date of field `field` not before the current patient's birth: a
 * panel's dates repeat, so the text found clean last is compared first. */
static inline __attribute__((always_inline)) void
check_before_birth(vrun *x, consistency *cs, uint32_t occ, uint32_t field, int kind,
                   const char *what)
{
    if (!cs->pt.has_birth) return;
    clean_text *c = &cs->not_before[kind];
    hl7_span text = field_text(x, field);
    if (c->p && c->len == text.len && bytes_equal(c->p, text.p, text.len)) return;
    before_birth_date(x, cs, occ, field, text, c, what);
}

static void read_patient(vrun *x, uint32_t occ, patient *pt)
{
    uint32_t si = x->sv.si;
    memset(pt, 0, sizeof(*pt));
    pt->has_birth = read_dtm(x, 7, &pt->birth, &pt->birth_text);
    hl7_span sex;
    if (comp_at(x, 8, 1, &sex) == HL7_VALUE && sex.len == 1 &&
        (sex.p[0] == 'F' || sex.p[0] == 'M'))
        pt->sex = sex.p[0];
    if (pt->has_birth && rule_on(x, VALIDATE_RULE_BIRTH_FUTURE) &&
        hl7_dtm_compare(&pt->birth, &x->now) > 0) {
        hl7_path w = at("PID", occ, 7, 1, 0, 0);
        add(x, VALIDATE_RULE_BIRTH_FUTURE, HL7_ACK_ERR_INTERNAL, si, &w,
            "birth date %.*s is in the future", SHOWN(pt->birth_text));
    }
    hl7_dtm death;
    hl7_span dtext;
    if (pt->has_birth && rule_on(x, VALIDATE_RULE_DEATH_BEFORE_BIRTH) &&
        read_dtm(x, 29, &death, &dtext) && hl7_dtm_compare(&death, &pt->birth) < 0) {
        hl7_path w = at("PID", occ, 29, 1, 0, 0);
        add(x, VALIDATE_RULE_DEATH_BEFORE_BIRTH, HL7_ACK_ERR_INTERNAL, si, &w,
            "death date %.*s is before the birth date %.*s", SHOWN(dtext),
            SHOWN(pt->birth_text));
    }
}

/* false when no sex rule (sex) and no limit (physio) can match the codes of
 * OBX-3 in view: shown without splitting the field when its mask shows no
 * alternate identifier (OBX-3.4), so that OBX-3.1 is the only code. */
static bool may_have_rules(vrun *x, bool sex, bool physio)
{
    const fview *fv = view_field(x, 3, NULL);
    uint64_t seps = fv->masked ? fv->comp_bits & below(fv->rep1.len) : ~(uint64_t)0;
    seps &= seps - 1; /* OBX-3.4 follows a third separator */
    seps &= seps - 1;
    if (seps) return true;
    hl7_span code = fv->comp1;
    return (sex && index_first(&x->v->sex_ix, code) != NONE) ||
           (physio && index_first(&x->v->limit_ix, code) != NONE);
}

static void check_consistency(vrun *x, consistency *cs, uint32_t key, uint32_t occ)
{
    const patient *pt = &cs->pt;
    bool before = x->before_on;
    bool sex = x->sex_on && pt->sex;
    coded cp;
    switch (key) {
    case MSH_KEY:
        if (x->sv.si == 0) cs->has_msh_time = read_dtm(x, 7, &cs->msh_time, NULL);
        break;
    case SEG_KEY('P', 'I', 'D'):
        read_patient(x, occ, &cs->pt);
        memset(cs->not_before, 0, sizeof(cs->not_before));
        break;
    case SEG_KEY('P', 'V', '1'):
        if (before) check_before_birth(x, cs, occ, 44, DATE_PV1_44, "admission date");
        break;
    case SEG_KEY('O', 'B', 'R'):
        if (before) check_before_birth(x, cs, occ, 7, DATE_OBR_7, "observation date");
        break;
    case SEG_KEY('O', 'B', 'X'): {
        bool physio = x->physio_on;
        if (before) check_before_birth(x, cs, occ, 14, DATE_OBX_14, "observation date");
        if (!(sex || physio) || !may_have_rules(x, sex, physio)) break;
        coded_pairs(x, 3, &cp);
        if (sex) check_sex(x, pt, occ, 3, &cp);
        if (physio) check_physiologic(x, occ, &cp);
        break;
    }
    case SEG_KEY('D', 'G', '1'): {
        bool age = x->age_on && pt->has_birth;
        if (sex || age) coded_pairs(x, 3, &cp);
        if (sex) check_sex(x, pt, occ, 3, &cp);
        if (age) check_age(x, cs, occ, &cp);
        break;
    }
    default: break;
    }
}

/* --- entry points ----------------------------------------------------------------- */

/* Problems of one segment come in the order field specs, structure,
 * consistency rules, whatever order the checks ran in. */
static int phase_of(validate_rule r)
{
    if (r == VALIDATE_RULE_STRUCTURE) return 1;
    return r >= VALIDATE_RULE_BIRTH_FUTURE ? 2 : 0;
}

static bool sorts_before(const validate_problem *a, const validate_problem *b)
{
    if (a->seg_index != b->seg_index) return a->seg_index < b->seg_index;
    return phase_of(a->rule) < phase_of(b->rule);
}

/* Stable order by segment index (missing segments last), then phase;
 * usually sorted already. */
static void sort_problems(validate_result *r)
{
    for (size_t i = 1; i < r->n; i++) {
        if (!sorts_before(&r->v[i], &r->v[i - 1])) continue;
        validate_problem tmp = r->v[i];
        size_t k = i;
        while (k > 0 && sorts_before(&tmp, &r->v[k - 1])) {
            r->v[k] = r->v[k - 1];
            k--;
        }
        r->v[k] = tmp;
    }
}

size_t validate_message(const validator *v, const hl7_msg *m, time_t now, validate_result *r)
{
    assert(v && m && r);
    validate_result_reset(r);
    vrun x; /* not zeroed as a whole: the segment view is kilobytes, reset per segment */
    x.v = v;
    x.m = m;
    x.r = r;
    x.tctx = (hl7_type_ctx){hl7_delims_of(m), hl7_charset_of(m), v->tables, &r->scratch,
                            &v->composite_tables};
    x.d = hl7_delims_of(m);
    x.dcomp = x.d->comp ? x.d->comp : x.d->field;
    x.drep = x.d->rep ? x.d->rep : x.d->field;
    x.desc = x.d->esc ? x.d->esc : x.d->field;
#if defined(__SSE2__)
    x.vcomp = _mm_set1_epi8(x.dcomp);
    x.vrep = _mm_set1_epi8(x.drep);
    x.vesc = _mm_set1_epi8(x.desc);
#endif
    x.types_on = rule_on(&x, VALIDATE_RULE_DATATYPE);
    x.range_on = rule_on(&x, VALIDATE_RULE_RANGE);
    x.before_on = rule_on(&x, VALIDATE_RULE_BEFORE_BIRTH);
    x.sex_on = rule_on(&x, VALIDATE_RULE_SEX_SPECIFIC) && v->nsex;
    x.physio_on = rule_on(&x, VALIDATE_RULE_PHYSIOLOGIC) && v->nlimits;
    x.age_on = rule_on(&x, VALIDATE_RULE_AGE_RESTRICTED) && v->nage;
    /* Only what marks an entry unused is reset: small stores, where
     * clearing the arrays whole would cost more than the run saves. */
    for (size_t i = 0; i < KNOWN_CODES; i++)
        x.known[i].t = NULL;
    for (size_t i = 0; i < DTM_TEXTS; i++)
        x.dtms[i].len = 0;
    x.ndtms = 0;
    x.ntypes = 0; /* (types[] is read up to ntypes) */
    size_t nmemo = v->npfields < FIELD_MEMO ? v->npfields : FIELD_MEMO;
    for (size_t i = 0; i < nmemo; i++)
        x.clean[i] = (clean_text){NULL, 0, 0};
    x.clean[FIELD_MEMO] = (clean_text){NULL, 0, MEMO_MISSES};
    for (size_t i = 0; i < v->nconds && i < COND_MEMO; i++)
        x.cond_text[i] = (clean_text){NULL, 0, 0};
    x.segs = hl7_segs(m);
    x.fofs = NULL;
    if (hl7_seg_count(m)) {
        hl7_fields f0;
        hl7_fields_at(m, 0, &f0);
        x.fofs = f0.ofs - x.segs[0].fofs;
    }
    view_segment(&x, 0);
    hl7_dtm_from_time(now, v->local_offset, &x.now);
    x.type = x.event = (hl7_span){"", 0}; /* MSH-9.1 and 9.2, read through the view */
    if (hl7_seg_count(m) && comp_at(&x, 9, 1, &x.type) != HL7_ABSENT)
        comp_at(&x, 9, 2, &x.event);
    occ_table ot;
    ot.n = ot.last = 0;
    consistency cs;
    consistency_init(&cs);
    uint32_t n = hl7_seg_count(m);
    uint32_t keys[KEYS_MAX];
    x.keys = NULL;
    if (n <= KEYS_MAX) {
        const hl7_seg *segs = hl7_segs(m);
        for (uint32_t si = 0; si < n; si++)
            keys[si] = id_key(segs[si].id);
        x.keys = keys;
    }
    /* The profiles for this message (bit 0: the baseline, bit i + 1:
     * profiles[i]; past 63 asked each time). */
    x.applies = v->baseline;
    for (size_t i = 0; i < v->nprofiles && i < 63; i++)
        if (profile_matches(v->profiles[i], x.type, x.event)) x.applies |= (uint64_t)2 << i;
    /* The plan of the segment id in hand, found again only when the id
     * changes (OBX come in runs). */
    uint32_t run_key = 0;
    const plan_seg *ps = NULL;
    for (uint32_t si = 0; si < n; si++) {
        uint32_t key = seg_key(&x, si);
        uint32_t occ = next_occ(&ot, &x, si, key);
        view_segment(&x, si);
        if (key != run_key) {
            run_key = key;
            ps = NULL;
            for (size_t i = 0; i < v->npsegs && !ps; i++)
                if (v->psegs[i].key == key) ps = &v->psegs[i];
        }
        if (ps) {
            size_t n0 = r->n, e0 = r->nerrors, w0 = r->nwarnings;
            if (!plan_segment(&x, ps, occ)) {
                r->n = n0;
                r->nerrors = e0;
                r->nwarnings = w0;
                check_in_order(&x, key, occ);
            }
        }
        check_consistency(&x, &cs, key, occ);
    }
    if (rule_on(&x, VALIDATE_RULE_STRUCTURE))
        for (size_t i = 0; i < v->nprofiles; i++)
            if (v->profiles[i]->nnodes && plan_applies(&x, (uint32_t)i + 1))
                check_structure(&x, v->profiles[i]);
    sort_problems(r);
    return r->nerrors;
}

void validate_problem_format(const validate_problem *p, tbuf *out)
{
    tbuf_printf(out, "%s: %s: %s", p->path, validate_severity_name(p->severity), p->text);
}

size_t validate_ack_problems(const validate_result *r, hl7_ack_problem *out, size_t cap)
{
    size_t k = 0;
    for (size_t i = 0; i < r->n; i++) {
        const validate_problem *p = &r->v[i];
        if (p->severity != VALIDATE_SEV_ERROR) continue;
        if (k < cap) out[k] = (hl7_ack_problem){p->where, p->code, HL7_ACK_SEV_ERROR, p->text};
        k++;
    }
    return k;
}
