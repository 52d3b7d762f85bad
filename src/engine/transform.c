/*
 * transform: compiled declarative steps; see transform.h.
 *
 * Compiling parses every path and unit once, so applying a step is a few
 * lookups in the parsed message plus the edit. Values are read into the
 * chain's scratch buffers (or a stack copy when short) before a write,
 * because an edit may move the bytes a span points at.
 *
 * A run of convert steps finds the message's OBX and their OBX-3.1 once;
 * a converted OBX gets its value, unit and range in one rewrite of the
 * segment (hl7_set_fields_raw_at), with texts that need no escape written
 * as they are. A map step on a coded field splits the repetition once,
 * looks the code and system up as they are in the message when decoding
 * would leave them so (ASCII without the escape character; decoded
 * otherwise) and splices the new components 1-3 over the old ones
 * (hl7_splice_raw_at). A step keeps what depends only on its configuration
 * and the message's delimiters (the parsed source unit by text, the
 * escaped unit^unit^UCUM text, a map row's escaped target by row index)
 * from one message to the next, and memos of what it did to texts that
 * repeat from message to message, each a function of the text, the
 * configuration and the delimiters alone: a map step's rewrite of a coded
 * value by its raw text (memo_row, with whether a splice took it: a hit
 * on such a row is spliced unchecked, hl7_splice_clean_at), a convert
 * step's conversion of the last reference range (same_range()). A value
 * is converted anew every time.
 */
#include "engine/transform.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/bytes.h"
#include "base/mem.h"
#include "engine/script.h"
#include "term/ucum.h"

typedef struct step {
    const config_transform *cfg;
    hl7_path path, to;
    ucum_unit unit;      /* CONVERT: the target */
    char *from_text;     /* CONVERT: the last source unit seen (owned), from_len bytes ... */
    size_t from_len;
    ucum_unit from_unit; /* ... parsed */
    tbuf unit_raw;       /* CONVERT: unit^unit^UCUM escaped with unit_d (kept per delimiters) */
    hl7_delims unit_d;
    tbuf range_in;       /* CONVERT: the last plain OBX-7 converted from from_unit ... */
    tbuf range_out;      /* ... its new raw text ... */
    hl7_delims range_d;  /* ... for these delimiters (range_in empty: none) */
    bool unit_made;
    const codemap *map;  /* MAP */
    struct esc_row *esc;   /* MAP: escaped targets of rows seen, ESC_SLOTS (owned) ... */
    struct memo *memo;     /* ... rewrites of coded values seen (owned) ... */
    hl7_delims esc_d;      /* ... for these delimiters */
    script *lua;         /* SCRIPT (owned) */
    script_host host;    /* SCRIPT: borrowed by lua, so it lives here */
} step;

/* MAP: a row's target code, display and system escaped for the step's
 * delimiters and joined by the component separator (an absent part left
 * empty), kept by the row's index (the map is const while the chain lives)
 * in a small direct-mapped table: a mapped value is then one lookup and one
 * copy, instead of escaping the target for every value. */
#define ESC_SLOTS 256
#define ESC_NONE UINT32_MAX
typedef struct esc_row {
    uint32_t row1;                        /* the row's index + 1; 0: an empty slot */
    uint32_t code_len, disp_len, sys_len; /* ESC_NONE: the row has no display, system */
    tbuf text;                            /* code^display^system, escaped */
} esc_row;

/* MAP: what the step does to a coded value (components 1-3 plain, see
 * split_coded()) by its raw text, kept in a small table: the rewrite is a
 * function of that text, the delimiters and the map alone, so a value seen
 * before (a feed sends its few hundred codes, with the same display and
 * system, again and again) is one hash, one comparison and the splice,
 * instead of a split, a map lookup and a rewrite. The table is set
 * associative (MEMO_WAYS rows per set, their hashes side by side), a new
 * value replacing an empty row or one its hash picks. Values longer than a
 * row, and values that are an error, are not kept. */
#define MEMO_SETS 64
#define MEMO_WAYS 4 /* memo_find() looks at four */
#define MEMO_TEXT 112
typedef struct memo_row {
    uint16_t raw_len, out_len; /* text[0..raw_len) the raw value, then its rewrite */
    bool same;                 /* the step leaves the value as it is */
    bool clean;                /* a splice took the rewrite: it needs no check */
    char text[MEMO_TEXT];
} memo_row;

typedef struct memo {
    uint64_t hash[MEMO_SETS][MEMO_WAYS]; /* of the raw text; 0: an empty row */
    memo_row row[MEMO_SETS][MEMO_WAYS];
} memo;

/* An OBX of the message and its OBX-3 as it was when the first of a run of
 * convert steps looked (converts change no OBX-3 and no segment count; the
 * text of an edited segment stays readable until the next parse). */
typedef struct obx_ref {
    uint32_t idx, occ;
    bool value;    /* OBX-3.1 (of the first repetition) has a value ... */
    bool plain;    /* ... without an escape ... */
    hl7_span code; /* ... which is this, raw */
} obx_ref;

struct transform_chain {
    step *steps;
    size_t n;
    obx_ref *obx; /* the OBX of the message for a run of converts; fresh when obx_fresh */
    size_t nobx, obxcap;
    bool obx_fresh;
    tbuf a, b, c, e, from; /* scratch */
};

static int compile_step(step *s, const config_transform *t, const codemap_registry *maps,
                        tbuf *err)
{
    hl7_error he;
    s->cfg = t;
    switch (t->kind) {
    case CONFIG_TX_SET:
    case CONFIG_TX_COPY:
        if (hl7_path_parse(t->path, &s->path, &he) != HL7_OK ||
            (t->kind == CONFIG_TX_COPY && hl7_path_parse(t->to, &s->to, &he) != HL7_OK)) {
            tbuf_printf(err, "transform at line %u: %s", t->line, he.text);
            return -1;
        }
        return 0;
    case CONFIG_TX_DELETE:
        return 0;
    case CONFIG_TX_CONVERT: {
        ucum_error ue;
        if (ucum_parse(t->unit, &s->unit, &ue) != UCUM_OK) {
            tbuf_printf(err, "transform at line %u: %s", t->line, ue.text);
            return -1;
        }
        return 0;
    }
    case CONFIG_TX_MAP:
        s->map = maps ? codemap_registry_get(maps, t->map) : NULL;
        if (!s->map || hl7_path_parse(t->path, &s->path, &he) != HL7_OK) {
            tbuf_printf(err, "transform at line %u: %s", t->line,
                        s->map ? he.text : "no such code map");
            return -1;
        }
        return 0;
    case CONFIG_TX_SCRIPT: {
        script_limits lim;
        script_limits_default(&lim);
        if (t->max_instructions) lim.max_instructions = t->max_instructions;
        if (t->max_memory) lim.max_memory = t->max_memory;
        s->host = (script_host){.maps = maps};
        script_error se;
        if (script_load(t->script, &lim, &s->host, &s->lua, &se) != SCRIPT_OK) {
            tbuf_printf(err, "transform at line %u: %s", t->line, se.text);
            return -1;
        }
        return 0;
    }
    }
    tbuf_printf(err, "transform at line %u: unknown kind", t->line);
    return -1;
}

transform_chain *transform_compile(const config_transform *steps, size_t n,
                                   const codemap_registry *maps, tbuf *err)
{
    transform_chain *c = xcalloc(1, sizeof *c);
    c->steps = xcalloc(n ? n : 1, sizeof *c->steps);
    c->n = n;
    for (size_t i = 0; i < n; i++) {
        if (compile_step(&c->steps[i], &steps[i], maps, err) != 0) {
            transform_free(c);
            return NULL;
        }
    }
    return c;
}

void transform_free(transform_chain *c)
{
    if (!c) return;
    for (size_t i = 0; i < c->n; i++) {
        script_free(c->steps[i].lua);
        free(c->steps[i].from_text);
        tbuf_free(&c->steps[i].unit_raw);
        tbuf_free(&c->steps[i].range_in);
        tbuf_free(&c->steps[i].range_out);
        if (c->steps[i].esc)
            for (size_t k = 0; k < ESC_SLOTS; k++) tbuf_free(&c->steps[i].esc[k].text);
        free(c->steps[i].esc);
        free(c->steps[i].memo);
    }
    free(c->steps);
    free(c->obx);
    tbuf_free(&c->a);
    tbuf_free(&c->b);
    tbuf_free(&c->c);
    tbuf_free(&c->e);
    tbuf_free(&c->from);
    free(c);
}

static int fail_hl7(const step *s, const hl7_error *he, tbuf *err)
{
    tbuf_printf(err, "transform at line %u (%s): %s", s->cfg->line,
                s->cfg->kind == CONFIG_TX_SET ? "set" : "copy", he->text);
    return -1;
}

static int apply_set(step *s, hl7_msg *m, tbuf *err)
{
    hl7_error he;
    if (hl7_set(m, &s->path, s->cfg->value, strlen(s->cfg->value), &he) != HL7_OK)
        return fail_hl7(s, &he, err);
    return 0;
}

static int apply_copy(transform_chain *c, step *s, hl7_msg *m, tbuf *err)
{
    hl7_span v;
    tbuf_reset(&c->a);
    if (hl7_get_raw(m, &s->path, &v) >= HL7_EMPTY) tbuf_put(&c->a, v.p, v.len);
    hl7_error he;
    if (hl7_set_raw(m, &s->to, c->a.p ? c->a.p : "", c->a.len, &he) != HL7_OK)
        return fail_hl7(s, &he, err);
    return 0;
}

static int apply_delete(step *s, hl7_msg *m, tbuf *err)
{
    for (uint32_t i = hl7_seg_count(m); i-- > 1;) {
        if (strcmp(hl7_seg_at(m, i)->id, s->cfg->path) != 0) continue;
        hl7_error he;
        if (hl7_seg_remove(m, i, &he) != HL7_OK) {
            tbuf_printf(err, "transform at line %u (delete %s): %s", s->cfg->line, s->cfg->path,
                        he.text);
            return -1;
        }
    }
    return 0;
}

/* The first repetition of field `field` (comp 0), or its first component
 * (comp 1), of the segment f (not MSH), raw; false when it has no value. */
static bool raw_at(const hl7_msg *m, const hl7_fields *f, uint32_t field, uint32_t comp,
                   hl7_span *out)
{
    hl7_span v;
    if (!hl7_fields_get(f, field, &v)) return false;
    const hl7_delims *d = hl7_delims_of(m);
    const char *end = v.p + v.len, *limit = f->p + f->len;
    if (d->rep) end = hl7_scan2_in(v.p, end, limit, d->rep, d->rep);
    if (comp && d->comp) end = hl7_scan2_in(v.p, end, limit, d->comp, d->comp);
    v.len = (size_t)(end - v.p);
    if (v.len == 0 || (v.len == 2 && v.p[0] == '"' && v.p[1] == '"')) return false;
    *out = v;
    return true;
}

/* A short value without escapes, copied out as a C string. */
typedef struct short_text {
    char p[32];
} short_text;

/* The decoded text of the raw value v (hl7_get_at()'s text) as a C string:
 * in *st when decoding leaves v as it is and it fits, else in out (reset
 * first). */
static const char *decoded(const hl7_msg *m, hl7_span v, const char *limit, short_text *st,
                           tbuf *out)
{
    const hl7_delims *d = hl7_delims_of(m);
    if (v.len < 8 && limit - v.p >= 8) { /* one word, its escapes and high bits found at once */
        const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
        uint64_t w, x;
        memcpy(&w, v.p, 8);
        x = w ^ (ones * (unsigned char)(d->esc ? d->esc : 0x80));
        uint64_t hit = (((x - ones) & ~x) | w) & highs & (((uint64_t)1 << (8 * v.len)) - 1);
        if (!hit) {
            memcpy(st->p, &w, 8);
            st->p[v.len] = '\0';
            return st->p;
        }
    } else if (v.len < sizeof st->p && hl7_plain_prefix(v.p, v.len, d->esc) == v.len) {
        memcpy(st->p, v.p, v.len);
        st->p[v.len] = '\0';
        return st->p;
    }
    tbuf_reset(out);
    hl7_unescape(d, hl7_charset_of(m), v.p, v.len, out);
    return tbuf_cstr(out); /* a C string even when decoding left nothing */
}

/* text as field text for an edit: text itself when nothing in it needs an
 * escape (what hl7_escape_for() would give), else escaped into spare. */
static hl7_status raw_text(const hl7_msg *m, const tbuf *text, tbuf *spare, hl7_span *out,
                           hl7_error *he)
{
    const hl7_delims *d = hl7_delims_of(m);
    if (d->esc && !hl7_needs_escape(d, text->p, text->len) && !memchr(text->p, '\0', text->len)) {
        *out = (hl7_span){text->p, text->len};
        return HL7_OK;
    }
    tbuf_reset(spare);
    hl7_status st = hl7_escape_for(m, text->p, text->len, spare, he);
    *out = (hl7_span){spare->p, spare->len};
    return st;
}

/* Whether the raw OBX-7 v is the step's last plain range (range_in), for
 * the same delimiters: then its new raw text is range_out. A lab sends an
 * analyte's reference range with every result, and the conversion of a
 * plain text (decoding leaves it as it is) from the step's source unit
 * depends on nothing else. */
static bool same_range(const step *s, const hl7_delims *d, hl7_span v)
{
    return s->range_in.len == v.len && memcmp(s->range_in.p, v.p, v.len) == 0 &&
           memcmp(&s->range_d, d, sizeof *d) == 0;
}

/* Keeps r7 as the new raw text of the range v when v is plain. */
static void keep_range(step *s, const hl7_delims *d, hl7_span v, hl7_span r7)
{
    tbuf_reset(&s->range_in);
    if (hl7_plain_prefix(v.p, v.len, d->esc) != v.len) return;
    tbuf_reset(&s->range_out);
    tbuf_put(&s->range_out, r7.p, r7.len);
    tbuf_put(&s->range_in, v.p, v.len);
    s->range_d = *d;
}

/* Converts the OBX at index idx (occurrence occ, for messages) from its
 * unit to the step's. */
static int convert_obx(transform_chain *c, step *s, hl7_msg *m, uint32_t idx, uint32_t occ,
                       tbuf *err)
{
    const config_transform *t = s->cfg;
    hl7_fields obx;
    hl7_fields_at(m, idx, &obx);
    hl7_span u, v;
    short_text su, sv; /* the unit's and a value's text when short */
    if (!raw_at(m, &obx, 6, 1, &u)) {
        tbuf_printf(err,
                    "transform at line %u (convert %s): OBX[%u]-6 has no unit to convert from",
                    t->line, t->code, occ);
        return -1;
    }
    const hl7_delims *d = hl7_delims_of(m);
    /* the source unit, parsed once per distinct text (feeds repeat theirs):
     * raw bytes without escapes that equal the last text are that text */
    const char *fu = s->from_text;
    if (!fu || u.len != s->from_len || hl7_plain_prefix(u.p, u.len, d->esc) != u.len ||
        memcmp(u.p, fu, u.len) != 0) {
        fu = decoded(m, u, obx.p + obx.len, &su, &c->from);
        if ((t->from && strcmp(fu, t->from) != 0) || strcmp(fu, t->unit) == 0) return 0;
        if (!s->from_text || strcmp(s->from_text, fu) != 0) {
            ucum_error ue;
            free(s->from_text);
            s->from_text = NULL;
            if (ucum_parse(fu, &s->from_unit, &ue) != UCUM_OK) {
                tbuf_printf(err, "transform at line %u (convert %s): OBX[%u]: %s", t->line, t->code,
                            occ, ue.text);
                return -1;
            }
            s->from_text = xstrdup(fu);
            s->from_len = strlen(fu);
            tbuf_reset(&s->range_in); /* converted from another unit */
        }
    } else if ((t->from && strcmp(fu, t->from) != 0) || strcmp(fu, t->unit) == 0) {
        return 0;
    }
    /* The new OBX-5 (value), OBX-7 (range) and OBX-6 (unit^unit^UCUM) are
     * made first, escaped, and stored in one rewrite of the segment. */
    ucum_error ue;
    bool converted;
    hl7_error he;
    tbuf *v5 = &c->b, *v7 = &c->c;
    hl7_span r5 = {"", 0}, r7 = {"", 0};
    tbuf_reset(v5);
    tbuf_reset(v7);
    if (raw_at(m, &obx, 5, 0, &v) &&
        ucum_convert_text_units(decoded(m, v, obx.p + obx.len, &sv, &c->a), &s->from_unit, &s->unit,
                                fu, t->unit, t->mw, v5, &converted, &ue) != UCUM_OK)
        goto unit_error;
    if (v5->len && raw_text(m, v5, &c->e, &r5, &he) != HL7_OK) goto hl7_failed;
    if (!raw_at(m, &obx, 7, 0, &v)) {
        /* no range */
    } else if (same_range(s, d, v)) {
        r7 = (hl7_span){s->range_out.p, s->range_out.len};
    } else {
        if (ucum_convert_range_units(decoded(m, v, obx.p + obx.len, &sv, &c->a), &s->from_unit,
                                     &s->unit, fu, t->unit, t->mw, v7, &converted, &ue) != UCUM_OK)
            goto unit_error;
        if (v7->len && raw_text(m, v7, &c->a, &r7, &he) != HL7_OK) goto hl7_failed;
        keep_range(s, d, v, r7);
    }
    if (!s->unit_made || memcmp(&s->unit_d, d, sizeof *d) != 0) {
        tbuf_reset(&s->unit_raw);
        hl7_escape(d, t->unit, strlen(t->unit), &s->unit_raw);
        tbuf_putc(&s->unit_raw, d->comp);
        hl7_escape(d, t->unit, strlen(t->unit), &s->unit_raw);
        tbuf_putc(&s->unit_raw, d->comp);
        tbuf_puts(&s->unit_raw, "UCUM");
        s->unit_d = *d;
        s->unit_made = true;
    }
    hl7_field_edit edits[3];
    size_t n = 0;
    if (r5.len) edits[n++] = (hl7_field_edit){5, r5.p, r5.len};
    edits[n++] = (hl7_field_edit){6, s->unit_raw.p, s->unit_raw.len};
    if (r7.len) edits[n++] = (hl7_field_edit){7, r7.p, r7.len};
    if (hl7_set_fields_raw_at(m, idx, edits, n, &he) != HL7_OK) goto hl7_failed;
    return 0;
unit_error:
    tbuf_printf(err, "transform at line %u (convert %s): OBX[%u]: %s", t->line, t->code, occ,
                ue.text);
    return -1;
hl7_failed:
    tbuf_printf(err, "transform at line %u (convert %s): OBX[%u]: %s", t->line, t->code, occ,
                he.text);
    return -1;
}

/* Whether OBX-3.1 of o is `code`: its raw bytes when it holds no escape,
 * else decoded. */
static bool code_is(transform_chain *c, const hl7_msg *m, const obx_ref *o, const char *code,
                    size_t code_len)
{
    if (!o->value) return false;
    if (o->plain) return o->code.len == code_len && bytes_equal(o->code.p, code, code_len);
    const hl7_delims *d = hl7_delims_of(m);
    tbuf_reset(&c->c);
    hl7_unescape(d, hl7_charset_of(m), o->code.p, o->code.len, &c->c);
    return c->c.len == code_len && memcmp(c->c.p, code, c->c.len) == 0;
}

/* Segments by index (an edit never adds or removes one here), counting OBX
 * occurrences for the messages. */
static int apply_convert(transform_chain *c, step *s, hl7_msg *m, tbuf *err)
{
    uint32_t occ = 0, n = hl7_seg_count(m);
    const char *code = s->cfg->code;
    size_t code_len = strlen(code);
    if (!c->obx_fresh) { /* the first of a run of converts: find the OBX */
        const hl7_delims *d = hl7_delims_of(m);
        char rep = d->rep ? d->rep : d->comp, comp = d->comp ? d->comp : rep;
        c->nobx = 0;
        c->obx = xgrow(c->obx, &c->obxcap, n, sizeof(*c->obx));
        const hl7_seg *segs = hl7_segs(m);
        for (uint32_t i = 1; i < n; i++) {
            hl7_fields f;
            if (memcmp(segs[i].id, "OBX", 3) != 0 || !hl7_fields_at(m, i, &f)) continue;
            obx_ref *o = &c->obx[c->nobx++];
            o->idx = i;
            o->occ = ++occ;
            o->value = false;
            hl7_span v;
            if (!hl7_fields_get(&f, 3, &v)) continue;
            const char *limit = f.p + f.len, *end = v.p + v.len;
            if (rep) end = hl7_scan2_in(v.p, end, limit, rep, comp);
            o->code = (hl7_span){v.p, (size_t)(end - v.p)};
            o->value = o->code.len && !(o->code.len == 2 && v.p[0] == '"' && v.p[1] == '"');
            o->plain = !d->esc || hl7_scan2_in(v.p, end, limit, d->esc, d->esc) == end;
        }
        c->obx_fresh = true;
    }
    for (size_t k = 0; k < c->nobx; k++) {
        const obx_ref *o = &c->obx[k];
        if (code_is(c, m, o, code, code_len) && convert_obx(c, s, m, o->idx, o->occ, err) != 0)
            return -1;
    }
    return 0;
}

/* The errors of map_one(), out of its way. */
static __attribute__((cold, noinline)) int map_unmapped(const config_transform *t,
                                                        const hl7_path *p, hl7_span code,
                                                        hl7_span system, tbuf *err)
{
    char where[48];
    tbuf_printf(err, "transform at line %u (map %s): %s: code '%.*s'%s%.*s%s is not in the map",
                t->line, t->map, hl7_path_format(p, where, sizeof where),
                (int)strnlen(code.p, code.len), code.p, system.p ? " (system " : "",
                (int)system.len, system.p ? system.p : "", system.p ? ")" : "");
    return -1;
}

static __attribute__((cold, noinline)) int map_failed(const config_transform *t, const hl7_path *p,
                                                      const hl7_error *he, tbuf *err)
{
    char where[48];
    tbuf_printf(err, "transform at line %u (map %s): %s: %s", t->line, t->map,
                hl7_path_format(p, where, sizeof where), he->text);
    return -1;
}

static uint32_t put_escaped(const hl7_msg *m, const char *v, tbuf *out)
{
    if (!v) return ESC_NONE;
    size_t before = out->len;
    hl7_escape(hl7_delims_of(m), v, strlen(v), out);
    return (uint32_t)(out->len - before);
}

/* A map step's tables (esc_row, memo_row) made, or emptied when m has other
 * delimiters than those they were made for. */
static void map_tables(step *s, const hl7_msg *m)
{
    const hl7_delims *d = hl7_delims_of(m);
    if (!s->esc) {
        s->esc = xcalloc(ESC_SLOTS, sizeof *s->esc);
        s->memo = xcalloc(1, sizeof *s->memo);
        s->esc_d = *d;
    } else if (memcmp(&s->esc_d, d, sizeof *d) != 0) {
        for (size_t k = 0; k < ESC_SLOTS; k++)
            s->esc[k].row1 = 0;
        memset(s->memo->hash, 0, sizeof s->memo->hash);
        s->esc_d = *d;
    }
}

/* The escaped target of the row r found (see esc_row; map_tables() done). */
static const esc_row *escaped_target(step *s, const hl7_msg *m, const codemap_result *r)
{
    const hl7_delims *d = hl7_delims_of(m);
    esc_row *e = &s->esc[r->row % ESC_SLOTS];
    if (e->row1 == r->row + 1) return e;
    tbuf_reset(&e->text);
    e->code_len = put_escaped(m, r->target_code, &e->text);
    tbuf_putc(&e->text, d->comp);
    e->disp_len = put_escaped(m, r->target_display, &e->text);
    tbuf_putc(&e->text, d->comp);
    e->sys_len = put_escaped(m, r->target_system, &e->text);
    e->row1 = r->row + 1;
    return e;
}

/* The first (up to) four components of v split at ch ('\0': none), as
 * hl7_raw() finds them; how many there are, up to 4. */
static uint32_t split_comps(hl7_span v, char ch, hl7_span comps[4])
{
    const char *p = v.p, *end = v.p + v.len;
    uint32_t n = 0;
    while (n < 4) {
        const char *q = ch ? hl7_scan2(p, end, ch, ch) : end;
        comps[n++] = (hl7_span){p, (size_t)(q - p)};
        if (q == end) break;
        p = q + 1;
    }
    return n;
}

/* split_comps() of v, a repetition in memory readable up to limit, and
 * whether components 1-3 are plain: ASCII without the escape character,
 * which decoding leaves as they are. comps[3], when there, starts
 * component 4 but runs to the end of v. */
static uint32_t split_coded(hl7_span v, const char *limit, const hl7_delims *d, hl7_span comps[4],
                            bool *plain)
{
    const char *p = v.p, *end = v.p + v.len;
    uint32_t n = 0;
    if (d->comp)
        while (n < 3) {
            const char *q = hl7_scan2_in(p, end, limit, d->comp, d->comp);
            if (q == end) break;
            comps[n++] = (hl7_span){p, (size_t)(q - p)};
            p = q + 1;
        }
    comps[n++] = (hl7_span){p, (size_t)(end - p)};
    size_t upto = (size_t)((n == 4 ? p - 1 : end) - v.p); /* components 1-3 */
    *plain = hl7_plain_prefix(v.p, upto, d->esc) == upto;
    return n;
}

static hl7_presence presence_of(hl7_span v)
{
    if (v.len == 0) return HL7_EMPTY;
    return v.len == 2 && v.p[0] == '"' && v.p[1] == '"' ? HL7_NULL_VALUE : HL7_VALUE;
}

/* Repetition `rep` of field `field` of segment idx (not MSH), raw, as
 * hl7_get_raw_at() finds it, and the end of the memory readable from it
 * (*limit); false when it is absent. */
static bool rep_raw(const hl7_msg *m, uint32_t idx, uint32_t field, uint32_t rep, hl7_span *out,
                    const char **limit)
{
    hl7_fields f;
    hl7_span v;
    if (rep != 1) {
        hl7_path rp = {.field = field, .rep = rep};
        if (hl7_get_raw_at(m, idx, &rp, out) < HL7_EMPTY) return false;
        *limit = out->p + out->len;
        return true;
    }
    if (!hl7_fields_at(m, idx, &f) || !hl7_fields_get(&f, field, &v)) return false;
    const char rc = hl7_delims_of(m)->rep;
    *limit = f.p + f.len;
    if (rc) v.len = (size_t)(hl7_scan2_in(v.p, v.p + v.len, *limit, rc, rc) - v.p);
    *out = v;
    return true;
}

/* The decoded text of the raw component v, into out. */
static hl7_span decoded_span(const hl7_msg *m, hl7_span v, tbuf *out)
{
    tbuf_reset(out);
    hl7_unescape(hl7_delims_of(m), hl7_charset_of(m), v.p, v.len, out);
    return (hl7_span){tbuf_cstr(out), out->len};
}

/* Writes at w the row's escaped part et[0..len), or when the row has none
 * (len ESC_NONE) the value's own component k if it has one; returns the
 * new end. */
static char *put_part(char *w, const char *et, uint32_t len, const hl7_span *comps,
                      uint32_t ncomps, uint32_t k)
{
    if (len != ESC_NONE) {
        memcpy(w, et, len);
        return w + len;
    }
    if (ncomps > k) {
        memcpy(w, comps[k].p, comps[k].len);
        return w + comps[k].len;
    }
    return w;
}

/* The coded value raw (a repetition split into comps[0..ncomps)) with
 * components 1-3 replaced by the row e's target, into out; the parts the
 * row does not have are kept, empty trailing components dropped. */
static void coded_target(const esc_row *e, char comp, hl7_span raw, const hl7_span *comps,
                         uint32_t ncomps, tbuf *out)
{
    out->len = 0;
    if (out->cap < e->text.len + raw.len + 3) tbuf_grow(out, e->text.len + raw.len + 2);
    char *w = out->p;
    if (e->disp_len != ESC_NONE && e->sys_len != ESC_NONE) {
        memcpy(w, e->text.p, e->text.len);
        w += e->text.len;
    } else {
        const char *et = e->text.p;
        memcpy(w, et, e->code_len);
        w += e->code_len;
        *w++ = comp;
        et += e->code_len + 1;
        w = put_part(w, et, e->disp_len, comps, ncomps, 1);
        et += (e->disp_len != ESC_NONE ? e->disp_len : 0) + 1;
        *w++ = comp;
        w = put_part(w, et, e->sys_len, comps, ncomps, 2);
    }
    if (ncomps >= 4) { /* the separator before component 4 and the rest */
        const char *c4 = comps[3].p - 1;
        memcpy(w, c4, (size_t)(raw.p + raw.len - c4));
        w += raw.p + raw.len - c4;
    }
    while (w > out->p && w[-1] == comp) /* no empty trailing parts */
        w--;
    out->len = (size_t)(w - out->p);
    *w = '\0';
}

/* Where a map step's value is, for its errors: the path with the
 * occurrence, component 1 for a coded field. */
static hl7_path map_where(const step *s, uint32_t occ)
{
    hl7_path p = s->path;
    p.seg_occ = occ;
    if (!p.comp) p.comp = 1;
    return p;
}

/* Writes text[0..len), the new repetition raw of segment idx; when a
 * splice takes it, notes in the memo row mr (if any) that it is clean. */
static int store_coded(const step *s, hl7_msg *m, uint32_t idx, uint32_t occ, hl7_span raw,
                       const char *text, size_t len, memo_row *mr, tbuf *err)
{
    hl7_error he;
    if (hl7_splice_raw_at(m, idx, s->path.field, raw, text, len, &he) == HL7_OK) {
        if (mr) mr->clean = true;
        return 0;
    }
    /* What a splice refuses (a value holding the field separator: an escape
     * written with a backslash that is the separator, in a message that
     * declares no escape character) goes the long way, as it always did. */
    hl7_path rp = {.field = s->path.field, .rep = s->path.rep};
    if (hl7_set_raw_at(m, idx, &rp, text, len, &he) == HL7_OK) return 0;
    hl7_path p = map_where(s, occ);
    return map_failed(s->cfg, &p, &he, err);
}

/* The memo's row for the raw value raw (its hash in *h): the one that holds
 * it, or NULL with the row to keep it in *put (NULL when it cannot be kept). */
static memo_row *memo_find(const step *s, hl7_span raw, uint64_t *h, memo_row **put)
{
    *put = NULL;
    if (raw.len > MEMO_TEXT / 2) return NULL;
    uint64_t hh = bytes_hash(raw.p, raw.len);
    hh = *h = hh ? hh : 1; /* 0: an empty row */
    memo *mo = s->memo;
    const size_t set = hh % MEMO_SETS;
    const uint64_t *hs = mo->hash[set];
    size_t w = hs[0] == hh ? 0 : hs[1] == hh ? 1 : hs[2] == hh ? 2 : hs[3] == hh ? 3 : MEMO_WAYS;
    if (w < MEMO_WAYS) {
        memo_row *r = &mo->row[set][w];
        if (r->raw_len == raw.len && bytes_equal(r->text, raw.p, raw.len)) return r;
    } else {
        w = (hh >> 32) % MEMO_WAYS;
        for (size_t k = 0; k < MEMO_WAYS; k++)
            if (!hs[k]) w = k;
    }
    mo->hash[set][w] = 0; /* until memo_keep() fills it */
    *put = &mo->row[set][w];
    return NULL;
}

/* Keeps in row r (from memo_find(), hash h) that the step rewrites raw to
 * out (NULL: leaves it as it is). */
static void memo_keep(const step *s, memo_row *r, uint64_t h, hl7_span raw, const tbuf *out)
{
    if (!r || (out && raw.len + out->len > MEMO_TEXT)) return;
    r->raw_len = (uint16_t)raw.len;
    memcpy(r->text, raw.p, raw.len);
    r->same = !out;
    r->clean = false; /* until store_coded() splices it */
    r->out_len = out ? (uint16_t)out->len : 0;
    if (out) memcpy(r->text + raw.len, out->p, out->len);
    size_t k = (size_t)(r - &s->memo->row[0][0]);
    s->memo->hash[k / MEMO_WAYS][k % MEMO_WAYS] = h;
}

/* A coded value's rewrite after its code was found (row r): components 1-3
 * of the repetition raw (a span of segment idx, split into comps) become
 * the row's target, spliced in its place, nothing done when that changes
 * nothing; kept in the memo row mr (hash h) when there is one. */
static int map_rewrite(transform_chain *c, step *s, hl7_msg *m, uint32_t idx, uint32_t occ,
                       hl7_span raw, const hl7_span *comps, uint32_t ncomps,
                       const codemap_result *r, memo_row *mr, uint64_t h, tbuf *err)
{
    const esc_row *e = escaped_target(s, m, r);
    coded_target(e, hl7_delims_of(m)->comp, raw, comps, ncomps, &c->c);
    bool same = c->c.len == raw.len && memcmp(c->c.p, raw.p, raw.len) == 0;
    memo_keep(s, mr, h, raw, same ? NULL : &c->c);
    return same ? 0 : store_coded(s, m, idx, occ, raw, c->c.p, c->c.len, mr, err);
}

/* Maps the coded field of the step's path (components 1-3 of a repetition)
 * in segment idx, not MSH, the occurrence occ of its id. The repetition is
 * split once: the code is its first component, the coding system the
 * third, looked up as they are in the message when decoding would not
 * change them; what the step does to a value so found is kept in the memo. */
static int map_coded(transform_chain *c, step *s, hl7_msg *m, uint32_t idx, uint32_t occ, tbuf *err)
{
    const hl7_delims *d = hl7_delims_of(m);
    hl7_span raw, comps[4], code, system = {NULL, 0};
    const char *limit;
    if (!rep_raw(m, idx, s->path.field, s->path.rep, &raw, &limit)) return 0; /* nothing to map */
    uint64_t h = 0;
    memo_row *mr, *hit = memo_find(s, raw, &h, &mr);
    if (hit) {
        if (hit->same) return 0;
        if (hit->clean) { /* spliced before with these delimiters: no check needed */
            hl7_splice_clean_at(m, idx, s->path.field, raw, hit->text + raw.len, hit->out_len);
            return 0;
        }
        return store_coded(s, m, idx, occ, raw, hit->text + raw.len, hit->out_len, NULL, err);
    }
    bool plain;
    uint32_t ncomps = split_coded(raw, limit, d, comps, &plain);
    if (!plain) mr = NULL; /* decoded with the message's character set: not kept */
    if (presence_of(comps[0]) != HL7_VALUE) {
        memo_keep(s, mr, h, raw, NULL);
        return 0;
    }
    code = plain ? comps[0] : decoded_span(m, comps[0], &c->a);
    if (ncomps >= 3 && presence_of(comps[2]) == HL7_VALUE) {
        system = plain ? comps[2] : decoded_span(m, comps[2], &c->b);
        if (!plain) system.len = strlen(system.p); /* as a C string */
    }
    codemap_result r;
    if (codemap_lookup_span(s->map, system.p, system.len, code.p, code.len, &r))
        return map_rewrite(c, s, m, idx, occ, raw, comps, ncomps, &r, mr, h, err);
    if (r.unmapped != CODEMAP_UNMAPPED_ERROR) {
        memo_keep(s, mr, h, raw, NULL);
        return 0;
    }
    hl7_path p = map_where(s, occ);
    return map_unmapped(s->cfg, &p, code, system, err);
}

/* Maps one value in segment idx, the occurrence occ of its id, in place:
 * a component (replaced by the target code), or the coded field of MSH
 * (read through hl7_get_at, as map_coded() does for other segments). */
static int map_one(transform_chain *c, step *s, hl7_msg *m, uint32_t idx, uint32_t occ, tbuf *err)
{
    hl7_path p = map_where(s, occ);
    bool coded = s->path.comp == 0;
    hl7_span code, system = {NULL, 0};
    tbuf_reset(&c->a);
    if (hl7_get_at(m, idx, &p, &c->a) != HL7_VALUE) return 0; /* nothing to map */
    code = (hl7_span){tbuf_cstr(&c->a), c->a.len};
    if (coded) {
        hl7_path sp = p;
        sp.comp = 3;
        tbuf_reset(&c->b);
        if (hl7_get_at(m, idx, &sp, &c->b) == HL7_VALUE)
            system = (hl7_span){c->b.p, strlen(c->b.p)};
    }
    codemap_result r;
    if (!codemap_lookup_span(s->map, system.p, system.len, code.p, code.len, &r)) {
        if (r.unmapped != CODEMAP_UNMAPPED_ERROR) return 0;
        return map_unmapped(s->cfg, &p, code, system, err);
    }
    if (coded) {
        hl7_path rp = p;
        rp.comp = 0;
        hl7_span raw, comps[4];
        if (hl7_get_raw_at(m, idx, &rp, &raw) < HL7_EMPTY) raw = (hl7_span){"", 0};
        uint32_t ncomps = split_comps(raw, hl7_delims_of(m)->comp, comps);
        return map_rewrite(c, s, m, idx, occ, raw, comps, ncomps, &r, NULL, 0, err);
    }
    if (strcmp(c->a.p, r.target_code) == 0) return 0;
    hl7_error he;
    if (hl7_set_at(m, idx, &p, r.target_code, strlen(r.target_code), &he) != HL7_OK)
        return map_failed(s->cfg, &p, &he, err);
    return 0;
}

/* Every occurrence of the path's segment in order, or only the one the
 * path names in brackets. */
static int apply_map(transform_chain *c, step *s, hl7_msg *m, tbuf *err)
{
    bool one = s->cfg->path[3] == '['; /* an explicit occurrence: only that one */
    uint32_t occ = 0, n = hl7_seg_count(m);
    const hl7_seg *segs = hl7_segs(m); /* a map edits, but adds and removes no segment */
    bool coded = s->path.comp == 0;    /* a coded field (MSH, at 0, the long way) */
    map_tables(s, m);
    for (uint32_t i = 0; i < n; i++) {
        if (memcmp(segs[i].id, s->path.seg, 3) != 0) continue;
        occ++;
        if (one && occ != s->path.seg_occ) continue;
        if ((coded && i > 0 ? map_coded(c, s, m, i, occ, err) : map_one(c, s, m, i, occ, err)) != 0)
            return -1;
        if (one) break;
    }
    return 0;
}

static int apply_script(step *s, hl7_msg *m, tbuf *err)
{
    script_error se;
    if (script_run_transform(s->lua, m, &se) != SCRIPT_OK) {
        tbuf_printf(err, "transform at line %u (script): %s", s->cfg->line, se.text);
        return -1;
    }
    return 0;
}

int transform_apply(transform_chain *c, hl7_msg *m, tbuf *err)
{
    c->obx_fresh = false;
    for (size_t i = 0; i < c->n; i++) {
        step *s = &c->steps[i];
        int rc = 0;
        if (s->cfg->kind != CONFIG_TX_CONVERT) c->obx_fresh = false;
        switch (s->cfg->kind) {
        case CONFIG_TX_SET: rc = apply_set(s, m, err); break;
        case CONFIG_TX_COPY: rc = apply_copy(c, s, m, err); break;
        case CONFIG_TX_DELETE: rc = apply_delete(s, m, err); break;
        case CONFIG_TX_CONVERT: rc = apply_convert(c, s, m, err); break;
        case CONFIG_TX_MAP: rc = apply_map(c, s, m, err); break;
        case CONFIG_TX_SCRIPT: rc = apply_script(s, m, err); break;
        }
        if (rc != 0) return -1;
    }
    return 0;
}
