/*
 * config: tern.yaml to a tern_config tree; see config.h for the contract and
 * docs/configuration.md for the schema.
 *
 * libyaml loads the file into a document (a node graph). A `reader` then
 * walks it top-down with the schema written as code: each mapping is opened
 * as a `map` (its pairs, with `<<` merge keys flattened and duplicate keys
 * reported), values are taken out by key with typed readers that record an
 * error at the value's position and leave the default in place, and closing
 * the map reports every key nobody asked for, with a "did you mean"
 * suggestion. Checks that span the whole file (two sources on one port, two
 * file sources on one directory) run after the walk. Errors go to one list;
 * the load succeeds only when the list stays empty.
 *
 * Aliases are references in libyaml's document, and an anchor can even
 * contain itself, so the walk is bounded twice: by the schema's depth and by
 * a budget of visited nodes that stops a "billion laughs" file.
 */
#include "engine/config.h"

#include "base/mem.h"

#include <yaml.h>

#include "engine/script.h"
#include "fhir/fhir_tables.h"
#include "net/tls.h"
#include "quality/quality_config.h"
#include "term/codemap.h"
#include "term/ucum.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FILE_BYTES (4u << 20)
#define MAX_VISITS 1000000u
#define MAX_MERGE_DEPTH 8
#define MAX_NAME 64
#define MAX_PATTERN 64
#define MAX_KNOWN 40
#define TEMPLATE_VALUE_MAX 64

#define KIB ((uint64_t)1024)
#define MIB (KIB * 1024)
#define GIB (MIB * 1024)
#define SEC ((uint64_t)1000)
#define MINUTE (60 * SEC)
#define HOUR (60 * MINUTE)
#define DAY (24 * HOUR)

/* Defaults, documented in docs/configuration.md. */
#define DEF_STORE_PATH "var/tern.db"
#define DEF_HTTP_HOST "127.0.0.1"
#define DEF_HTTP_PORT 8080
#define DEF_MAX_FRAME (16 * MIB)
#define DEF_IDLE_TIMEOUT HOUR
#define DEF_HTTP_READ_TIMEOUT (30 * SEC)
#define DEF_PRUNE_EVERY HOUR
#define DEF_MAX_CONNECTIONS 100
#define DEF_GLOB "*"
#define DEF_POLL SEC
#define DEF_SETTLE (2 * SEC)
#define DEF_MAX_BODY (16 * MIB)
#define DEF_DUP_WINDOW DAY
#define DEF_MAX_ATTEMPTS 10
#define DEF_BACKOFF_MIN SEC
#define DEF_BACKOFF_MAX (5 * MINUTE)
#define DEF_FILENAME "${ID}.hl7"
#define DEF_CONNECT_TIMEOUT (10 * SEC)
#define DEF_ACK_TIMEOUT (30 * SEC)
#define DEF_HTTP_TIMEOUT (30 * SEC)

static const char *const default_ignore_suffixes[] = {".tmp", ".part"};

static const char *const source_type_names[] = {NULL, "mllp", "file", "http", "fhir"};
static const char *const fhir_message_names[] = {"OML^O21", "ORM^O01"};
static const char *const dest_type_names[] = {NULL, "file", "mllp", "http", "fhir-store", "fhir"};
static const char *const ack_names[] = {"after_commit", "always"};
static const char *const after_names[] = {"move", "delete"};
static const char *const store_type_names[] = {"sqlite"};
static const char *const client_cert_names[] = {"none", "optional", "required"};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* --- status and error list -------------------------------------------- */

const char *config_strerror(config_status s)
{
    switch (s) {
    case CONFIG_OK:
        return "ok";
    case CONFIG_ERR_IO:
        return "cannot read the configuration file";
    case CONFIG_ERR_SYNTAX:
        return "the configuration is not valid YAML";
    case CONFIG_ERR_INVALID:
        return "the configuration has errors";
    }
    return "unknown configuration status";
}

static void errors_clear(config_errors *errs)
{
    for (size_t i = 0; i < errs->count; i++)
        free(errs->items[i].text);
    errs->count = 0;
    errs->dropped = 0;
}

void config_errors_free(config_errors *errs)
{
    if (!errs) return;
    errors_clear(errs);
    free(errs->items);
    free(errs->file);
    *errs = (config_errors)CONFIG_ERRORS_INIT;
}

static void errors_start(config_errors *errs, const char *file)
{
    errors_clear(errs);
    free(errs->file);
    errs->file = xstrdup(file);
}

static void errors_vadd(config_errors *errs, unsigned line, unsigned col, const char *fmt,
                        va_list ap)
{
    if (errs->count >= CONFIG_MAX_ERRORS) {
        errs->dropped++;
        return;
    }
    tbuf t = TBUF_INIT;
    tbuf_vprintf(&t, fmt, ap);
    errs->items = xgrow(errs->items, &errs->cap, errs->count + 1, sizeof(*errs->items));
    errs->items[errs->count++] = (config_error){errs->file, line, col, tbuf_detach(&t, NULL)};
}

static void errors_add(config_errors *errs, unsigned line, unsigned col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void errors_add(config_errors *errs, unsigned line, unsigned col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    errors_vadd(errs, line, col, fmt, ap);
    va_end(ap);
}

/* Stable insertion sort by position: the walk reports a missing key at its
 * mapping only after the mapping's children. */
static void errors_sort(config_errors *errs)
{
    for (size_t i = 1; i < errs->count; i++) {
        config_error e = errs->items[i];
        size_t j = i;
        while (j > 0 &&
               (errs->items[j - 1].line > e.line ||
                (errs->items[j - 1].line == e.line && errs->items[j - 1].column > e.column))) {
            errs->items[j] = errs->items[j - 1];
            j--;
        }
        errs->items[j] = e;
    }
}

void config_error_format(const config_error *e, tbuf *out)
{
    if (e->line)
        tbuf_printf(out, "%s:%u:%u: error: %s", e->file ? e->file : "", e->line, e->column,
                    e->text);
    else
        tbuf_printf(out, "%s: error: %s", e->file ? e->file : "", e->text);
}

/* --- value syntax -------------------------------------------------------- */

static void why_set(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void why_set(char *why, size_t whylen, const char *fmt, ...)
{
    if (!why || !whylen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
}

/* Reads decimal digits at *p into *v; false on none or overflow. */
static bool read_digits(const char **p, uint64_t *v)
{
    const char *s = *p;
    uint64_t n = 0;
    if (!isdigit((unsigned char)*s)) return false;
    for (; isdigit((unsigned char)*s); s++) {
        unsigned d = (unsigned)(*s - '0');
        if (n > (UINT64_MAX - d) / 10) return false;
        n = n * 10 + d;
    }
    *p = s;
    *v = n;
    return true;
}

config_status config_parse_duration(const char *s, uint64_t *ms, char *why, size_t whylen)
{
    static const struct {
        const char *unit;
        uint64_t ms;
    } units[] = {{"ms", 1}, {"s", SEC}, {"m", MINUTE}, {"h", HOUR}, {"d", DAY}};
    assert(s && ms);
    const char *p = s;
    uint64_t total = 0;
    if (!strcmp(s, "0")) {
        *ms = 0;
        return CONFIG_OK;
    }
    if (!*p) goto bad;
    while (*p) {
        uint64_t n;
        if (!read_digits(&p, &n)) goto bad;
        size_t u = 0, ulen = 0;
        for (size_t i = 0; i < COUNT(units); i++) {
            size_t l = strlen(units[i].unit);
            if (!strncmp(p, units[i].unit, l) && l > ulen) {
                u = i;
                ulen = l;
            }
        }
        if (!ulen) {
            if (!*p && strspn(s, "0123456789") == strlen(s))
                why_set(why, whylen, "'%s' has no unit; write e.g. %sms or %ss", s, s, s);
            else if (!*p)
                why_set(why, whylen, "'%s' is not a duration: its last number has no unit", s);
            else
                why_set(why, whylen,
                        "'%s' is not a duration: unknown unit '%s' (use ms, s, m, h or d, "
                        "e.g. 30s)",
                        s, p);
            return CONFIG_ERR_INVALID;
        }
        p += ulen;
        if (n > (UINT64_MAX - total) / units[u].ms) {
            why_set(why, whylen, "'%s' is too long a duration", s);
            return CONFIG_ERR_INVALID;
        }
        total += n * units[u].ms;
    }
    *ms = total;
    return CONFIG_OK;
bad:
    why_set(why, whylen,
            "'%s' is not a duration: write a number and a unit (ms, s, m, h or d), e.g. 500ms, "
            "10s, 5m, 1h, 30d",
            s);
    return CONFIG_ERR_INVALID;
}

config_status config_parse_size(const char *s, uint64_t *bytes, char *why, size_t whylen)
{
    static const struct {
        const char *unit;
        uint64_t mult;
    } units[] = {{"", 1},      {"B", 1},     {"KiB", KIB},    {"MiB", MIB},      {"GiB", GIB},
                 {"kB", 1000}, {"KB", 1000}, {"MB", 1000000}, {"GB", 1000000000}};
    assert(s && bytes);
    const char *p = s;
    uint64_t n;
    if (!read_digits(&p, &n)) goto bad;
    if (*p == ' ') p++;
    for (size_t i = 0; i < COUNT(units); i++) {
        if (strcmp(p, units[i].unit)) continue;
        if (units[i].mult > 1 && n > UINT64_MAX / units[i].mult) {
            why_set(why, whylen, "'%s' is too large a size", s);
            return CONFIG_ERR_INVALID;
        }
        *bytes = n * units[i].mult;
        return CONFIG_OK;
    }
bad:
    why_set(why, whylen,
            "'%s' is not a size: write bytes (65536) or a number and a unit (KiB, MiB, GiB, "
            "or kB, MB, GB), e.g. 64KiB",
            s);
    return CONFIG_ERR_INVALID;
}

char *config_format_duration(uint64_t ms, char *buf, size_t size)
{
    static const struct {
        const char *unit;
        uint64_t ms;
    } units[] = {{"d", DAY}, {"h", HOUR}, {"m", MINUTE}, {"s", SEC}, {"ms", 1}};
    size_t n = 0;
    if (size) buf[0] = '\0';
    if (ms == 0) {
        snprintf(buf, size, "0");
        return buf;
    }
    for (size_t i = 0; i < COUNT(units) && n < size; i++) {
        uint64_t q = ms / units[i].ms;
        if (!q) continue;
        ms -= q * units[i].ms;
        int w = snprintf(buf + n, size - n, "%" PRIu64 "%s", q, units[i].unit);
        if (w < 0) break;
        n += (size_t)w;
    }
    return buf;
}

/* --- "did you mean" ------------------------------------------------------ */

/* Optimal string alignment distance (a swap of two neighbours costs 1),
 * ignoring case; strings longer than MAX_NAME count as far apart. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > MAX_NAME || lb > MAX_NAME) return SIZE_MAX;
    size_t d[MAX_NAME + 1][MAX_NAME + 1];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            int ca = tolower((unsigned char)a[i - 1]), cb = tolower((unsigned char)b[j - 1]);
            size_t cost = ca == cb ? 0 : 1;
            size_t v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v) v = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < v) v = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && ca == tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) == cb && d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    }
    return d[la][lb];
}

/* The closest of `n` candidates (NULL entries skipped) to word, or NULL when
 * none is close enough to be a likely misspelling. */
static const char *suggest(const char *word, const char *const *cands, size_t n)
{
    const char *best = NULL;
    size_t bestd = SIZE_MAX;
    size_t len = strlen(word);
    size_t limit = len <= 4 ? 1 : len <= 8 ? 2 : 3;
    for (size_t i = 0; i < n; i++) {
        if (!cands[i]) continue;
        size_t dist = edit_distance(word, cands[i]);
        if (dist <= limit && dist < bestd) {
            best = cands[i];
            bestd = dist;
        }
    }
    return best;
}

static void list_names(tbuf *out, const char *const *names, size_t n)
{
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        if (!names[i]) continue;
        tbuf_printf(out, "%s%s", first ? "" : ", ", names[i]);
        first = false;
    }
}

/* --- the reader ---------------------------------------------------------- */

/* A listening socket or polled directory a source claims, for the checks
 * that span channels. */
typedef struct claim {
    const char *channel;
    const char *host; /* listen claims; NULL for directories */
    uint16_t port;
    const char *dir; /* directory claims */
    unsigned line, column;
} claim;

typedef struct reader {
    yaml_document_t *doc;
    config_errors *errs;
    const char *base_dir;    /* "" keeps relative paths as written */
    const config_http *http; /* read before the channels */
    size_t visits;
    claim *listens;
    size_t nlistens, listencap;
    const tern_config *cfg; /* what has been read so far (maps before channels) */
    claim *dirs;
    size_t ndirs, dircap;
} reader;

static void err_at(reader *r, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void err_at(reader *r, const yaml_node_t *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    errors_vadd(r->errs, (unsigned)n->start_mark.line + 1, (unsigned)n->start_mark.column + 1, fmt,
                ap);
    va_end(ap);
}

static unsigned line_of(const yaml_node_t *n)
{
    return (unsigned)n->start_mark.line + 1;
}

/* Counts a visited node; false (and one error) once the budget is spent. */
static bool budget(reader *r, const yaml_node_t *n)
{
    if (++r->visits == MAX_VISITS + 1)
        err_at(r, n,
               "the file expands to more than %u nodes through aliases; write the "
               "configuration out without nesting aliases this deeply",
               MAX_VISITS);
    return r->visits <= MAX_VISITS;
}

static yaml_node_t *node_at(reader *r, int index)
{
    return yaml_document_get_node(r->doc, index);
}

static bool is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *v = (const char *)n->data.scalar.value;
    return !*v || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") || !strcmp(v, "NULL");
}

/* How a node looks, for "found ..." in messages. */
static const char *describe(const yaml_node_t *n, char *buf, size_t size)
{
    if (n->type == YAML_SEQUENCE_NODE) return "a list";
    if (n->type == YAML_MAPPING_NODE) return "a mapping";
    if (is_null(n)) return "nothing";
    snprintf(buf, size, "'%.40s%s'", (const char *)n->data.scalar.value,
             n->data.scalar.length > 40 ? "..." : "");
    return buf;
}

/* The scalar text of n, or NULL after an error naming `key` and what was
 * expected. */
static const char *scalar_of(reader *r, yaml_node_t *n, const char *key, const char *expect)
{
    char b[64];
    if (n->type != YAML_SCALAR_NODE) {
        err_at(r, n, "'%s' must be %s, found %s", key, expect, describe(n, b, sizeof(b)));
        return NULL;
    }
    const char *v = (const char *)n->data.scalar.value;
    if (strlen(v) != n->data.scalar.length) {
        err_at(r, n, "'%s' contains a NUL character; remove it", key);
        return NULL;
    }
    return v;
}

/* --- mappings ------------------------------------------------------------ */

typedef struct map_entry {
    const char *key;
    yaml_node_t *knode;
    yaml_node_t *value;
    bool used;
} map_entry;

typedef struct map {
    reader *r;
    yaml_node_t *node; /* NULL when absent or not a mapping */
    char what[256];    /* "the source of channel 'adt-in'", for messages */
    map_entry *e;
    size_t n, cap;
    const char *known[MAX_KNOWN];
    size_t nknown;
} map;

static map_entry *map_find(map *m, const char *key)
{
    for (size_t i = 0; i < m->n; i++)
        if (!strcmp(m->e[i].key, key)) return &m->e[i];
    return NULL;
}

static void map_collect(map *m, yaml_node_t *node, int depth, bool merged);

static void map_merge(map *m, yaml_node_t *v, int depth)
{
    char b[64];
    if (depth >= MAX_MERGE_DEPTH) {
        err_at(m->r, v, "'<<' merges nest more than %d deep; flatten them", MAX_MERGE_DEPTH);
        return;
    }
    if (v->type == YAML_MAPPING_NODE) {
        map_collect(m, v, depth + 1, true);
        return;
    }
    if (v->type == YAML_SEQUENCE_NODE) {
        for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
             it++) {
            yaml_node_t *item = node_at(m->r, *it);
            if (!budget(m->r, item)) return;
            if (item->type == YAML_MAPPING_NODE)
                map_collect(m, item, depth + 1, true);
            else
                err_at(m->r, item, "'<<' merges mappings (e.g. <<: *defaults), found %s",
                       describe(item, b, sizeof(b)));
        }
        return;
    }
    err_at(m->r, v, "'<<' merges mappings (e.g. <<: *defaults), found %s",
           describe(v, b, sizeof(b)));
}

/* Adds the pairs of `node`: its own keys first, then those of its `<<`
 * merges that are not set already (YAML merge-key semantics). */
static void map_collect(map *m, yaml_node_t *node, int depth, bool merged)
{
    char b[64];
    yaml_node_pair_t *start = node->data.mapping.pairs.start, *top = node->data.mapping.pairs.top;
    for (yaml_node_pair_t *p = start; p < top; p++) {
        yaml_node_t *k = node_at(m->r, p->key), *v = node_at(m->r, p->value);
        if (k->type != YAML_SCALAR_NODE) {
            if (!merged)
                err_at(m->r, k, "a key in %s is %s; keys are plain names like 'name'", m->what,
                       describe(k, b, sizeof(b)));
            continue;
        }
        const char *key = (const char *)k->data.scalar.value;
        if (!strcmp(key, "<<") && k->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) continue;
        map_entry *old = map_find(m, key);
        if (old) {
            if (!merged)
                err_at(m->r, k, "'%s' appears twice in %s (first at line %u); keep only one", key,
                       m->what, line_of(old->knode));
            continue;
        }
        m->e = xgrow(m->e, &m->cap, m->n + 1, sizeof(*m->e));
        m->e[m->n++] = (map_entry){key, k, v, false};
    }
    for (yaml_node_pair_t *p = start; p < top; p++) {
        yaml_node_t *k = node_at(m->r, p->key);
        if (k->type == YAML_SCALAR_NODE && k->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
            !strcmp((const char *)k->data.scalar.value, "<<"))
            map_merge(m, node_at(m->r, p->value), depth);
    }
}

/* Opens node (may be NULL: absent) as a mapping described by the printf-style
 * `what`. Returns false, having reported it, when node is not a mapping; the
 * map is then empty but still must be closed. */
static bool map_open(reader *r, yaml_node_t *node, map *m, const char *example, const char *fmt,
                     ...) __attribute__((format(printf, 5, 6)));
static bool map_open(reader *r, yaml_node_t *node, map *m, const char *example, const char *fmt,
                     ...)
{
    char b[64];
    memset(m, 0, sizeof(*m));
    m->r = r;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->what, sizeof(m->what), fmt, ap);
    va_end(ap);
    if (!node || !budget(r, node)) return false;
    if (node->type != YAML_MAPPING_NODE) {
        err_at(r, node, "%s must be a mapping of keys to values (e.g. %s), found %s", m->what,
               example, describe(node, b, sizeof(b)));
        return false;
    }
    m->node = node;
    map_collect(m, node, 0, false);
    return true;
}

/* The value node for key (NULL when absent), marking it used. */
static yaml_node_t *map_lookup(map *m, const char *key)
{
    size_t i;
    for (i = 0; i < m->nknown && strcmp(m->known[i], key); i++) {
    }
    if (i == m->nknown && m->nknown < MAX_KNOWN) m->known[m->nknown++] = key;
    map_entry *e = map_find(m, key);
    if (!e) return NULL;
    e->used = true;
    return e->value;
}

/* The value for an optional key; NULL when absent or empty (~, null). */
static yaml_node_t *map_get(map *m, const char *key)
{
    yaml_node_t *v = map_lookup(m, key);
    return v && !is_null(v) ? v : NULL;
}

/* The value for a required key; reports a missing key at the mapping and an
 * empty one at its value. `example` completes "add e.g. KEY: ...". */
static yaml_node_t *map_need(map *m, const char *key, const char *example)
{
    yaml_node_t *v = map_lookup(m, key);
    if (!m->node) return NULL;
    if (!v)
        err_at(m->r, m->node, "%s has no '%s'; add it, e.g. %s: %s", m->what, key, key, example);
    else if (is_null(v))
        err_at(m->r, v, "'%s' in %s is empty; give it a value, e.g. %s: %s", key, m->what, key,
               example);
    else
        return v;
    return NULL;
}

/* A key that only some types (of source or destination) take. */
typedef struct typed_key {
    const char *key;
    unsigned types; /* bit (1 << type) per type that takes it */
} typed_key;

/* Reports every key nobody asked for. Keys in `typed` that belong to other
 * types than `type` get their own message; when type is 0 (unknown, already
 * reported) they are passed over silently. */
static void map_close(map *m, const typed_key *typed, size_t ntyped, int type,
                      const char *const *type_names, const char *kind)
{
    for (size_t i = 0; i < m->n; i++) {
        map_entry *e = &m->e[i];
        if (e->used) continue;
        const typed_key *tk = NULL;
        for (size_t j = 0; j < ntyped; j++)
            if (!strcmp(typed[j].key, e->key)) tk = &typed[j];
        if (tk && !type) continue;
        if (tk) {
            tbuf owners = TBUF_INIT;
            for (int t = 1; t < 8; t++) {
                if (!(tk->types & (1u << t))) continue;
                tbuf_printf(&owners, "%s%s", owners.len ? " and " : "", type_names[t]);
            }
            err_at(m->r, e->knode,
                   "'%s' does not apply to %s %s %s (it is for %s %ss); remove it or change "
                   "'type'",
                   e->key, strchr("mh", type_names[type][0]) ? "an" : "a", type_names[type], kind,
                   owners.p, kind);
            tbuf_free(&owners);
            continue;
        }
        const char *s = suggest(e->key, m->known, m->nknown);
        if (typed && !type)
            err_at(m->r, e->knode,
                   "unknown key '%s' in %s; fix 'type' first to see which keys "
                   "apply",
                   e->key, m->what);
        else if (s)
            err_at(m->r, e->knode, "unknown key '%s' in %s; did you mean '%s'?", e->key, m->what,
                   s);
        else {
            tbuf known = TBUF_INIT;
            list_names(&known, m->known, m->nknown);
            err_at(m->r, e->knode, "unknown key '%s' in %s; the keys here are: %s", e->key, m->what,
                   known.p ? known.p : "(none)");
            tbuf_free(&known);
        }
    }
    free(m->e);
    m->e = NULL;
    m->n = m->cap = 0;
}

static void map_close_plain(map *m)
{
    map_close(m, NULL, 0, 0, NULL, NULL);
}

/* --- typed values -------------------------------------------------------- */

static bool parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
    for (size_t i = 0; i < COUNT(yes); i++) {
        if (!strcasecmp(s, yes[i])) return *out = true, true;
        if (!strcasecmp(s, no[i])) return *out = false, true;
    }
    return false;
}

static void read_bool(map *m, const char *key, bool *out)
{
    yaml_node_t *v = map_get(m, key);
    if (!v) return;
    const char *s = scalar_of(m->r, v, key, "true or false");
    if (s && !parse_bool(s, out)) err_at(m->r, v, "'%s' must be true or false, not '%s'", key, s);
}

/* A plain decimal in [min, max]. */
static bool scalar_uint(reader *r, yaml_node_t *v, const char *key, uint64_t min, uint64_t max,
                        uint64_t *out)
{
    const char *s = scalar_of(r, v, key, "a whole number");
    if (!s) return false;
    const char *p = s;
    uint64_t n;
    if (!read_digits(&p, &n) || *p) {
        err_at(r, v, "'%s' must be a whole number from %" PRIu64 " to %" PRIu64 ", not '%s'", key,
               min, max, s);
        return false;
    }
    if (n < min || n > max) {
        err_at(r, v, "'%s' must be from %" PRIu64 " to %" PRIu64 ", not %" PRIu64, key, min, max,
               n);
        return false;
    }
    *out = n;
    return true;
}

static void read_u32(map *m, const char *key, uint32_t min, uint32_t max, uint32_t *out)
{
    yaml_node_t *v = map_get(m, key);
    uint64_t n;
    if (v && scalar_uint(m->r, v, key, min, max, &n)) *out = (uint32_t)n;
}

static bool scalar_port(reader *r, yaml_node_t *v, const char *key, uint16_t *out)
{
    const char *s = scalar_of(r, v, key, "a port number");
    if (!s) return false;
    const char *p = s;
    uint64_t n;
    if (!read_digits(&p, &n) || *p || n < 1 || n > 65535) {
        err_at(r, v, "'%s' must be a port number from 1 to 65535, not '%s'", key, s);
        return false;
    }
    *out = (uint16_t)n;
    return true;
}

static void read_duration(map *m, const char *key, uint64_t min, uint64_t max, uint64_t *out)
{
    yaml_node_t *v = map_get(m, key);
    if (!v) return;
    const char *s = scalar_of(m->r, v, key, "a duration like 30s");
    if (!s) return;
    char why[256], a[32], b[32];
    uint64_t ms;
    if (config_parse_duration(s, &ms, why, sizeof(why)) != CONFIG_OK)
        err_at(m->r, v, "'%s': %s", key, why);
    else if (ms < min || ms > max)
        err_at(m->r, v, "'%s' must be from %s to %s, not %s", key,
               config_format_duration(min, a, sizeof(a)), config_format_duration(max, b, sizeof(b)),
               s);
    else
        *out = ms;
}

static void format_size(uint64_t n, char *buf, size_t size)
{
    if (n >= GIB && n % GIB == 0)
        snprintf(buf, size, "%" PRIu64 "GiB", n / GIB);
    else if (n >= MIB && n % MIB == 0)
        snprintf(buf, size, "%" PRIu64 "MiB", n / MIB);
    else if (n >= KIB && n % KIB == 0)
        snprintf(buf, size, "%" PRIu64 "KiB", n / KIB);
    else
        snprintf(buf, size, "%" PRIu64, n);
}

static void read_size(map *m, const char *key, uint64_t min, uint64_t max, size_t *out)
{
    yaml_node_t *v = map_get(m, key);
    if (!v) return;
    const char *s = scalar_of(m->r, v, key, "a size like 1MiB");
    if (!s) return;
    char why[256], a[32], b[32];
    uint64_t n;
    if (config_parse_size(s, &n, why, sizeof(why)) != CONFIG_OK) {
        err_at(m->r, v, "'%s': %s", key, why);
    } else if (n < min || n > max) {
        format_size(min, a, sizeof(a));
        format_size(max, b, sizeof(b));
        err_at(m->r, v, "'%s' must be from %s to %s, not %s", key, a, b, s);
    } else {
        *out = (size_t)n;
    }
}

/* One of names[] (NULL entries skipped); *out is its index. */
static bool scalar_enum(reader *r, yaml_node_t *v, const char *key, const char *noun,
                        const char *const *names, size_t n, int *out)
{
    const char *s = scalar_of(r, v, key, noun);
    if (!s) return false;
    for (size_t i = 0; i < n; i++) {
        if (names[i] && !strcmp(names[i], s)) {
            *out = (int)i;
            return true;
        }
    }
    tbuf all = TBUF_INIT;
    list_names(&all, names, n);
    const char *sug = suggest(s, names, n);
    const char *art = strchr("aeiou", noun[0]) ? "an" : "a";
    if (sug)
        err_at(r, v, "'%s' is not %s %s; did you mean '%s'? (one of: %s)", s, art, noun, sug,
               all.p);
    else
        err_at(r, v, "'%s' is not %s %s; use one of: %s", s, art, noun, all.p);
    tbuf_free(&all);
    return false;
}

static void read_enum(map *m, const char *key, const char *noun, const char *const *names, size_t n,
                      int *out)
{
    yaml_node_t *v = map_get(m, key);
    if (v) scalar_enum(m->r, v, key, noun, names, n, out);
}

/* An owned copy of a non-empty string value, or NULL. */
static char *scalar_string(reader *r, yaml_node_t *v, const char *key)
{
    const char *s = scalar_of(r, v, key, "text");
    if (!s) return NULL;
    if (!*s) {
        err_at(r, v, "'%s' is empty; give it a value or remove the key", key);
        return NULL;
    }
    return xstrdup(s);
}

static void read_string(map *m, const char *key, char **out)
{
    yaml_node_t *v = map_get(m, key);
    if (v) {
        char *s = scalar_string(m->r, v, key);
        if (s) {
            free(*out);
            *out = s;
        }
    }
}

static char *resolve_path(reader *r, const char *p)
{
    if (p[0] == '/') return xstrdup(p);
    while (p[0] == '.' && p[1] == '/') {
        p += 2;
        while (*p == '/')
            p++;
    }
    if (!*p || !strcmp(p, ".")) return xstrdup(r->base_dir[0] ? r->base_dir : ".");
    if (!r->base_dir[0]) return xstrdup(p);
    tbuf t = TBUF_INIT;
    size_t bl = strlen(r->base_dir);
    tbuf_printf(&t, "%s%s%s", r->base_dir, r->base_dir[bl - 1] == '/' ? "" : "/", p);
    return tbuf_detach(&t, NULL);
}

/* A path value, resolved against the configuration's directory, with
 * trailing slashes dropped. */
static char *scalar_path(reader *r, yaml_node_t *v, const char *key)
{
    char *s = scalar_string(r, v, key);
    if (!s) return NULL;
    char *p = resolve_path(r, s);
    free(s);
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/')
        p[--n] = '\0';
    return p;
}

static bool valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > MAX_NAME || !isalnum((unsigned char)s[0])) return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("._-", s[i])) return false;
    return true;
}

static char *scalar_name(reader *r, yaml_node_t *v, const char *what)
{
    const char *s = scalar_of(r, v, "name", "a name");
    if (!s) return NULL;
    if (!valid_name(s)) {
        err_at(r, v,
               "'%s' is not a valid %s name: use 1 to %d letters, digits, '.', '_' or '-', "
               "starting with a letter or digit (e.g. adt-in)",
               s, what, MAX_NAME);
        return NULL;
    }
    return xstrdup(s);
}

/* A host name, IPv4 or IPv6 address (without brackets). */
static bool valid_host(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 253) return false;
    if (strchr(s, ':')) return strspn(s, "0123456789abcdefABCDEF:.") == n;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr(".-_", s[i])) return false;
    return true;
}

static bool is_wildcard(const char *host)
{
    return !strcmp(host, "0.0.0.0") || !strcmp(host, "::");
}

/* "HOST:PORT", "[V6]:PORT", ":PORT", "*:PORT" or "PORT" (the last three:
 * every interface). */
static bool parse_listen(const char *s, config_addr *out, char *why, size_t whylen)
{
    const char *colon, *host;
    size_t hostlen;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':') {
            why_set(why, whylen, "'%s' is not HOST:PORT; write IPv6 as [::1]:2575", s);
            return false;
        }
        host = s + 1;
        hostlen = (size_t)(close - host);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon && strchr(s, ':') != colon) {
            why_set(why, whylen, "'%s': write an IPv6 address in brackets, e.g. [::1]:2575", s);
            return false;
        }
        host = s;
        hostlen = colon ? (size_t)(colon - s) : 0;
    }
    const char *port = colon ? colon + 1 : s;
    const char *p = port;
    uint64_t n;
    if (!read_digits(&p, &n) || *p) {
        why_set(why, whylen, "'%s' is not HOST:PORT, e.g. 127.0.0.1:2575 or 0.0.0.0:2575", s);
        return false;
    }
    if (n < 1 || n > 65535) {
        why_set(why, whylen, "'%s': the port must be from 1 to 65535", s);
        return false;
    }
    char *h = xstrndup(host, hostlen);
    if (!*h || !strcmp(h, "*")) {
        free(h);
        h = xstrdup("0.0.0.0");
    }
    if (!valid_host(h)) {
        why_set(why, whylen, "'%s': '%s' is not a host name or IP address", s, h);
        free(h);
        return false;
    }
    out->host = h;
    out->port = (uint16_t)n;
    return true;
}

static bool read_listen(map *m, yaml_node_t *v, config_addr *out)
{
    const char *s = scalar_of(m->r, v, "listen", "HOST:PORT");
    char why[256];
    if (!s) return false;
    config_addr a = {0};
    if (!parse_listen(s, &a, why, sizeof(why))) {
        err_at(m->r, v, "'listen': %s", why);
        return false;
    }
    free(out->host);
    *out = a;
    return true;
}

/* --- strings lists, filter patterns ------------------------------------ */

typedef bool (*item_check)(reader *r, yaml_node_t *v, const char *key, const char *s);

/* A list of strings; a single string counts as a list of one. */
static void read_strings(map *m, const char *key, item_check check, char ***out, size_t *nout)
{
    yaml_node_t *v = map_get(m, key);
    if (!v) return;
    size_t n = 1;
    yaml_node_item_t *items = NULL;
    if (v->type == YAML_SEQUENCE_NODE) {
        items = v->data.sequence.items.start;
        n = (size_t)(v->data.sequence.items.top - items);
    } else if (v->type == YAML_MAPPING_NODE) {
        err_at(m->r, v, "'%s' must be a list, e.g. %s: [a, b], found a mapping", key, key);
        return;
    }
    char **list = xcalloc(n ? n : 1, sizeof(*list));
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = items ? node_at(m->r, items[i]) : v;
        if (!budget(m->r, item)) break;
        const char *s = scalar_of(m->r, item, key, "a list of text values");
        if (s && check(m->r, item, key, s)) list[k++] = xstrdup(s);
    }
    for (size_t i = 0; i < *nout; i++)
        free((*out)[i]);
    free(*out);
    *out = list;
    *nout = k;
}

static bool pattern_part_ok(const char *p, size_t n)
{
    if (n == 0) return false;
    for (size_t i = 0; i < n; i++)
        if (!isupper((unsigned char)p[i]) && !isdigit((unsigned char)p[i]) && !strchr("_*?", p[i]))
            return false;
    return true;
}

static bool check_pattern(reader *r, yaml_node_t *v, const char *key, const char *s)
{
    const char *caret = strchr(s, '^');
    size_t n = strlen(s);
    if (caret && strchr(caret + 1, '^')) {
        err_at(r, v,
               "'%s' in '%s': filter on TYPE^EVENT (MSH-9.1^MSH-9.2) only, e.g. ADT^A01; drop "
               "the message structure",
               s, key);
        return false;
    }
    size_t tl = caret ? (size_t)(caret - s) : n;
    bool ok = n <= MAX_PATTERN && pattern_part_ok(s, tl) &&
              (!caret || pattern_part_ok(caret + 1, n - tl - 1));
    if (!ok) {
        bool lower = false;
        for (const char *p = s; *p; p++)
            lower |= islower((unsigned char)*p) != 0;
        err_at(r, v,
               "'%s' in '%s' is not a message type pattern: write TYPE^EVENT in upper case with "
               "* and ? as wildcards, e.g. ADT^A01, ADT^A0?, ADT^*%s",
               s, key, lower ? " (HL7 message types are upper case)" : "");
        return false;
    }
    return true;
}

static bool check_suffix(reader *r, yaml_node_t *v, const char *key, const char *s)
{
    if (!*s || strchr(s, '/')) {
        err_at(r, v, "'%s' entries are file name endings like .tmp; '%s' is not one", key, s);
        return false;
    }
    return true;
}

/* --- filename templates -------------------------------------------------- */

static void tpl_add(config_template *t, config_tpl_kind kind, const char *text, size_t len,
                    const hl7_path *path)
{
    if (kind == CONFIG_TPL_TEXT && t->nparts && t->parts[t->nparts - 1].kind == CONFIG_TPL_TEXT) {
        config_tpl_part *last = &t->parts[t->nparts - 1];
        size_t old = strlen(last->text);
        last->text = xrealloc(last->text, old + len + 1);
        memcpy(last->text + old, text, len);
        last->text[old + len] = '\0';
        return;
    }
    t->parts = xrealloc(t->parts, (t->nparts + 1) * sizeof(*t->parts));
    config_tpl_part *p = &t->parts[t->nparts++];
    memset(p, 0, sizeof(*p));
    p->kind = kind;
    if (kind == CONFIG_TPL_TEXT) p->text = xstrndup(text, len);
    if (path) p->path = *path;
}

static void free_template(config_template *t)
{
    for (size_t i = 0; i < t->nparts; i++)
        free(t->parts[i].text);
    free(t->parts);
    free(t->source);
    memset(t, 0, sizeof(*t));
}

/* Parses and checks s into t; reports problems at v. */
static bool parse_template(reader *r, yaml_node_t *v, const char *s, config_template *t)
{
    static const struct {
        const char *name;
        config_tpl_kind kind;
    } words[] = {{"CHANNEL", CONFIG_TPL_CHANNEL},
                 {"ID", CONFIG_TPL_ID},
                 {"DATE", CONFIG_TPL_DATE},
                 {"TIME", CONFIG_TPL_TIME}};
    config_template nt = {0};
    bool ok = true;
    if (s[0] == '/') {
        err_at(r, v, "filename '%s' must be relative to 'dir'; remove the leading '/'", s);
        ok = false;
    }
    const char *p = s;
    /* What the current path component holds so far: nothing, only literal
     * dots, or something else (a placeholder renders at least one byte that
     * is not a leading '.'). */
    size_t comp_len = 0;
    bool comp_dots = true;
    while (ok && *p) {
        if (p[0] == '$' && p[1] == '{') {
            const char *close = strchr(p + 2, '}');
            if (!close) {
                err_at(r, v, "filename '%s' has a '${' without its closing '}'", s);
                ok = false;
                break;
            }
            char name[64];
            size_t nl = (size_t)(close - p - 2);
            snprintf(name, sizeof(name), "%.*s", (int)(nl < 63 ? nl : 63), p + 2);
            bool found = false;
            for (size_t i = 0; i < COUNT(words) && !found; i++) {
                if (!strcmp(name, words[i].name)) {
                    tpl_add(&nt, words[i].kind, NULL, 0, NULL);
                    found = true;
                } else if (!strcasecmp(name, words[i].name)) {
                    err_at(r, v, "filename '%s': write ${%s} in capitals", s, words[i].name);
                    ok = false;
                    found = true;
                }
            }
            if (!found) {
                hl7_path hp;
                hl7_error he;
                if (nl >= 63 || hl7_path_parse(name, &hp, &he) != HL7_OK) {
                    err_at(r, v,
                           "filename '%s': '${%s}' is neither an HL7 path like ${MSH-10} nor "
                           "one of ${CHANNEL}, ${ID}, ${DATE}, ${TIME}%s%s",
                           s, name, nl < 63 ? ": " : "", nl < 63 ? he.text : "");
                    ok = false;
                } else if (hp.field == 0) {
                    err_at(r, v,
                           "filename '%s': '${%s}' is neither one of ${CHANNEL}, ${ID}, ${DATE}, "
                           "${TIME} nor the path of an HL7 field; name a field, e.g. ${%s-3.1}",
                           s, name, hp.seg);
                    ok = false;
                } else {
                    tpl_add(&nt, CONFIG_TPL_PATH, NULL, 0, &hp);
                }
            }
            comp_len++;
            comp_dots = false;
            p = close + 1;
            continue;
        }
        if (p[0] == '.' && p[1] == '.') {
            err_at(r, v, "filename '%s' must not contain '..'; it could leave 'dir'", s);
            ok = false;
        } else if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            err_at(r, v, "filename '%s' contains a control character; remove it", s);
            ok = false;
        } else if (*p == '/' && comp_len == 0 && p != s) {
            err_at(r, v, "filename '%s' has an empty directory level ('//'); remove the extra '/'",
                   s);
            ok = false;
        } else if (*p == '/' && comp_dots && p != s) {
            err_at(r, v, "filename '%s' has a '.' directory level; remove it", s);
            ok = false;
        } else if (*p == '/') {
            comp_len = 0;
            comp_dots = true;
        } else {
            comp_len++;
            comp_dots = comp_dots && *p == '.';
        }
        tpl_add(&nt, CONFIG_TPL_TEXT, p, 1, NULL);
        p++;
    }
    if (ok && !*s) {
        err_at(r, v, "'filename' is empty; give a template, e.g. filename: \"${MSH-10}.hl7\"");
        ok = false;
    } else if (ok && comp_len == 0) {
        err_at(r, v, "filename '%s' ends with '/'; it must end with a file name", s);
        ok = false;
    } else if (ok && comp_dots) {
        err_at(r, v, "filename '%s' ends in '.'; it must end with a file name", s);
        ok = false;
    }
    if (!ok) {
        free_template(&nt);
        return false;
    }
    nt.source = xstrdup(s);
    free_template(t);
    *t = nt;
    return true;
}

/* --- sections ------------------------------------------------------------ */

static const typed_key source_keys[] = {
    {"listen", 1u << CONFIG_SOURCE_MLLP | 1u << CONFIG_SOURCE_HTTP},
    {"max_frame", 1u << CONFIG_SOURCE_MLLP},
    {"idle_timeout", 1u << CONFIG_SOURCE_MLLP},
    {"max_connections", 1u << CONFIG_SOURCE_MLLP},
    {"ack", 1u << CONFIG_SOURCE_MLLP},
    {"dir", 1u << CONFIG_SOURCE_FILE},
    {"glob", 1u << CONFIG_SOURCE_FILE},
    {"after", 1u << CONFIG_SOURCE_FILE},
    {"move_to", 1u << CONFIG_SOURCE_FILE},
    {"poll", 1u << CONFIG_SOURCE_FILE},
    {"settle", 1u << CONFIG_SOURCE_FILE},
    {"ignore_suffixes", 1u << CONFIG_SOURCE_FILE},
    {"max_body", 1u << CONFIG_SOURCE_HTTP},
    {"tls", 1u << CONFIG_SOURCE_MLLP | 1u << CONFIG_SOURCE_HTTP},
    {"resources", 1u << CONFIG_SOURCE_FHIR},
    {"message", 1u << CONFIG_SOURCE_FHIR},
    {"sending_application", 1u << CONFIG_SOURCE_FHIR},
    {"sending_facility", 1u << CONFIG_SOURCE_FHIR},
    {"receiving_application", 1u << CONFIG_SOURCE_FHIR},
    {"receiving_facility", 1u << CONFIG_SOURCE_FHIR},
};

static const typed_key dest_keys[] = {
    {"dir", 1u << CONFIG_DEST_FILE},
    {"filename", 1u << CONFIG_DEST_FILE},
    {"host", 1u << CONFIG_DEST_MLLP},
    {"port", 1u << CONFIG_DEST_MLLP},
    {"connect_timeout", 1u << CONFIG_DEST_MLLP},
    {"ack_timeout", 1u << CONFIG_DEST_MLLP},
    {"url", 1u << CONFIG_DEST_HTTP | 1u << CONFIG_DEST_FHIR},
    {"headers", 1u << CONFIG_DEST_HTTP},
    {"timeout", 1u << CONFIG_DEST_HTTP | 1u << CONFIG_DEST_FHIR},
    {"token", 1u << CONFIG_DEST_FHIR},
    {"token_env", 1u << CONFIG_DEST_FHIR},
    {"tls", 1u << CONFIG_DEST_MLLP | 1u << CONFIG_DEST_HTTP | 1u << CONFIG_DEST_FHIR},
};

void config_tls_options(const config_tls *t, bool server, struct tls_options *o)
{
    memset(o, 0, sizeof(*o));
    o->role = server ? TLS_SERVER : TLS_CLIENT;
    o->cert = t->cert;
    o->key = t->key;
    o->ca = t->ca;
    if (server) {
        o->client_cert = (tls_client_cert)t->client_cert;
        o->allow_subjects = (const char *const *)t->allow_subjects;
        o->nallow_subjects = t->nallow_subjects;
        o->allow_fingerprints = (const char *const *)t->allow_fingerprints;
        o->nallow_fingerprints = t->nallow_fingerprints;
    } else {
        o->server_name = t->server_name;
        o->no_verify = !t->verify;
    }
}

static bool any_text(reader *r, yaml_node_t *v, const char *key, const char *s)
{
    if (*s) return true;
    err_at(r, v, "'%s' holds an empty entry; remove it", key);
    return false;
}

/* A `tls:` block for a listener (server) or a sender. The files are loaded
 * once here, as the engine will, so that a missing file, a bad certificate
 * or a key that does not match is reported at the line that names it. */
static void read_tls(reader *r, yaml_node_t *node, config_tls *t, bool server, const char *what)
{
    static const char *const file_keys[] = {"cert", "key", "ca"};
    map m;
    yaml_node_t *files[3] = {NULL, NULL, NULL};
    char **outs[3] = {&t->cert, &t->key, &t->ca};
    size_t errs_before = r->errs->count + r->errs->dropped;
    t->enabled = true;
    t->line = line_of(node);
    t->verify = true;
    if (map_open(r, node, &m,
                 server ? "{ cert: tls/server.pem, key: tls/server.key }" : "{ ca: tls/ca.pem }",
                 "the tls block of %s", what)) {
        for (int i = 0; i < 3; i++)
            if ((files[i] = map_get(&m, file_keys[i])))
                *outs[i] = scalar_path(r, files[i], file_keys[i]);
        if (server) {
            int cc = t->ca ? CONFIG_CLIENT_CERT_REQUIRED : CONFIG_CLIENT_CERT_NONE;
            read_enum(&m, "client_cert", "value for 'client_cert'", client_cert_names,
                      COUNT(client_cert_names), &cc);
            t->client_cert = (config_client_cert)cc;
            read_strings(&m, "allow_subjects", any_text, &t->allow_subjects, &t->nallow_subjects);
            read_strings(&m, "allow_fingerprints", any_text, &t->allow_fingerprints,
                         &t->nallow_fingerprints);
        } else {
            read_string(&m, "server_name", &t->server_name);
            read_bool(&m, "verify", &t->verify);
        }
    }
    map_close_plain(&m);
    if (!m.node || r->errs->count + r->errs->dropped != errs_before) return;
    tls_options o;
    tls_error e;
    config_tls_options(t, server, &o);
    tls_ctx *ctx = tls_ctx_new(&o, &e);
    if (ctx) {
        tls_ctx_free(ctx);
        return;
    }
    yaml_node_t *at = node;
    for (int i = 0; i < 3; i++)
        if (e.key && !strcmp(e.key, file_keys[i]) && files[i]) at = files[i];
    err_at(r, at, "%s (tls of %s)", e.text, what);
}

static void free_strv(char **v, size_t n);

static void free_tls(config_tls *t)
{
    free(t->cert);
    free(t->key);
    free(t->ca);
    free(t->server_name);
    free_strv(t->allow_subjects, t->nallow_subjects);
    free_strv(t->allow_fingerprints, t->nallow_fingerprints);
}

static void add_claim(claim **arr, size_t *n, size_t *cap, claim c)
{
    *arr = xgrow(*arr, cap, *n + 1, sizeof(**arr));
    (*arr)[(*n)++] = c;
}

/* The resource types a fhir source can turn into HL7 v2. */
static bool check_fhir_resource(reader *r, yaml_node_t *v, const char *key, const char *s)
{
    if (!strcmp(s, "ServiceRequest")) return true;
    err_at(r, v,
           "'%s': '%s' cannot be turned into HL7 v2 yet; the fhir source takes ServiceRequest "
           "(an order, sent as OML^O21 or ORM^O01)",
           key, s);
    return false;
}

static void read_fhir_source(reader *r, map *m, config_source *s, const config_channel *ch)
{
    s->fhir.resources = xcalloc(1, sizeof(char *));
    s->fhir.resources[0] = xstrdup("ServiceRequest");
    s->fhir.nresources = 1;
    read_strings(m, "resources", check_fhir_resource, &s->fhir.resources, &s->fhir.nresources);
    int msg = 0;
    read_enum(m, "message", "message type", fhir_message_names, COUNT(fhir_message_names), &msg);
    s->fhir.orm = msg == 1;
    read_string(m, "sending_application", &s->fhir.sending_application);
    read_string(m, "sending_facility", &s->fhir.sending_facility);
    read_string(m, "receiving_application", &s->fhir.receiving_application);
    read_string(m, "receiving_facility", &s->fhir.receiving_facility);
    if (!r->http->enabled && ch->enabled)
        err_at(r, m->node,
               "%s takes resources written through the FHIR API, which is served on the http "
               "listener, and that is disabled (http: { enabled: false }); enable http",
               m->what);
}

/* label names the channel in messages; ch->name (NULL when the name was
 * unusable) owns the claims the source makes. */
static void read_source(reader *r, yaml_node_t *node, config_source *s, const config_channel *ch,
                        const char *label)
{
    map m;
    int type = 0;
    if (!map_open(r, node, &m, "{ type: mllp, listen: 0.0.0.0:2575 }", "the source of %s", label))
        goto done;
    yaml_node_t *v = map_need(&m, "type", "mllp");
    if (v && scalar_enum(r, v, "type", "source type", source_type_names, COUNT(source_type_names),
                         &type))
        s->type = (config_source_type)type;
    switch (type) {
    case CONFIG_SOURCE_MLLP:
        s->mllp.max_frame = DEF_MAX_FRAME;
        s->mllp.idle_timeout_ms = DEF_IDLE_TIMEOUT;
        s->mllp.max_connections = DEF_MAX_CONNECTIONS;
        s->mllp.ack = CONFIG_ACK_AFTER_COMMIT;
        if ((v = map_need(&m, "listen", "0.0.0.0:2575")) && read_listen(&m, v, &s->listen) &&
            ch->enabled && ch->name)
            add_claim(&r->listens, &r->nlistens, &r->listencap,
                      (claim){ch->name, s->listen.host, s->listen.port, NULL, line_of(v),
                              (unsigned)v->start_mark.column + 1});
        read_size(&m, "max_frame", KIB, GIB, &s->mllp.max_frame);
        read_duration(&m, "idle_timeout", 0, 365 * DAY, &s->mllp.idle_timeout_ms);
        read_u32(&m, "max_connections", 1, 100000, &s->mllp.max_connections);
        int ack = (int)s->mllp.ack;
        read_enum(&m, "ack", "ack mode", ack_names, COUNT(ack_names), &ack);
        s->mllp.ack = (config_ack_mode)ack;
        if ((v = map_get(&m, "tls"))) read_tls(r, v, &s->tls, true, label);
        break;
    case CONFIG_SOURCE_FILE: {
        s->file.glob = xstrdup(DEF_GLOB);
        s->file.after = CONFIG_AFTER_MOVE;
        s->file.poll_ms = DEF_POLL;
        s->file.settle_ms = DEF_SETTLE;
        s->file.nignore_suffixes = COUNT(default_ignore_suffixes);
        s->file.ignore_suffixes = xcalloc(COUNT(default_ignore_suffixes), sizeof(char *));
        for (size_t i = 0; i < COUNT(default_ignore_suffixes); i++)
            s->file.ignore_suffixes[i] = xstrdup(default_ignore_suffixes[i]);
        yaml_node_t *dirv = map_need(&m, "dir", "./var/in/lab");
        if (dirv) s->file.dir = scalar_path(r, dirv, "dir");
        if ((v = map_get(&m, "glob"))) {
            char *g = scalar_string(r, v, "glob");
            if (g && strchr(g, '/')) {
                err_at(r, v,
                       "'glob' matches file names in 'dir' and cannot contain '/'; put the "
                       "directory in 'dir'");
                free(g);
            } else if (g) {
                free(s->file.glob);
                s->file.glob = g;
            }
        }
        int after = (int)s->file.after;
        read_enum(&m, "after", "value for 'after'", after_names, COUNT(after_names), &after);
        s->file.after = (config_after)after;
        yaml_node_t *mv = map_get(&m, "move_to");
        if (s->file.after == CONFIG_AFTER_MOVE) {
            if (mv)
                s->file.move_to = scalar_path(r, mv, "move_to");
            else if (m.node)
                err_at(r, m.node,
                       "%s moves each file it has read (after: move, the default) and so needs "
                       "'move_to'; add e.g. move_to: ./var/done, or set after: delete",
                       m.what);
        } else if (mv) {
            err_at(r, mv,
                   "'move_to' has no effect with after: delete; remove it or set after: "
                   "move");
        }
        if (s->file.dir && s->file.move_to && !strcmp(s->file.dir, s->file.move_to))
            err_at(r, mv,
                   "'move_to' is the polled directory itself, so files would be read "
                   "again; move them elsewhere, e.g. move_to: ./var/done");
        read_duration(&m, "poll", 10, DAY, &s->file.poll_ms);
        read_duration(&m, "settle", 0, HOUR, &s->file.settle_ms);
        read_strings(&m, "ignore_suffixes", check_suffix, &s->file.ignore_suffixes,
                     &s->file.nignore_suffixes);
        if (s->file.dir && ch->enabled && ch->name)
            add_claim(&r->dirs, &r->ndirs, &r->dircap,
                      (claim){ch->name, NULL, 0, s->file.dir, line_of(dirv),
                              (unsigned)dirv->start_mark.column + 1});
        break;
    }
    case CONFIG_SOURCE_HTTP:
        s->http.max_body = DEF_MAX_BODY;
        if (!(v = map_get(&m, "listen")) && !r->http->enabled && ch->enabled)
            err_at(r, m.node,
                   "%s has no 'listen' of its own and so is served on the http listener, which "
                   "is disabled (http: { enabled: false }); give it a listen address or enable "
                   "http",
                   m.what);
        if (v && read_listen(&m, v, &s->listen) && ch->enabled && ch->name)
            add_claim(&r->listens, &r->nlistens, &r->listencap,
                      (claim){ch->name, s->listen.host, s->listen.port, NULL, line_of(v),
                              (unsigned)v->start_mark.column + 1});
        read_size(&m, "max_body", KIB, GIB, &s->http.max_body);
        if ((v = map_get(&m, "tls"))) {
            if (!s->listen.host)
                err_at(r, v,
                       "'tls' applies to an HTTP source with a listen of its own; this one is "
                       "served on the shared http listener, so configure http.tls instead");
            else
                read_tls(r, v, &s->tls, true, label);
        }
        break;
    case CONFIG_SOURCE_FHIR:
        read_fhir_source(r, &m, s, ch);
        break;
    default:
        break;
    }
done:
    map_close(&m, source_keys, COUNT(source_keys), type, source_type_names, "source");
}

/* Compiles a Lua script once so that `config check` reports a missing file
 * or a syntax error (with the script's line) at the key that names it. */
static void check_script(reader *r, yaml_node_t *v, const char *path)
{
    script *s = NULL;
    script_error e;
    if (script_load(path, NULL, NULL, &s, &e) != SCRIPT_OK)
        err_at(r, v, "the script cannot be used: %s", e.text);
    script_free(s);
}

/* maps: [{ name, file, unmapped, match }]; each file is loaded once here
 * so that a bad row is reported now, with its line. */
static void read_map(reader *r, yaml_node_t *node, config_map *cm, const tern_config *c, size_t i)
{
    map m;
    cm->line = line_of(node);
    if (!map_open(r, node, &m, "{ name: lab-loinc, file: ./maps/lab_loinc.csv }", "a code map"))
        goto done;
    yaml_node_t *v, *fv;
    if ((v = map_need(&m, "name", "lab-loinc")) && (cm->name = scalar_name(r, v, "code map"))) {
        for (size_t k = 0; k < i; k++)
            if (c->maps[k].name && !strcmp(c->maps[k].name, cm->name))
                err_at(r, v, "there is already a code map named '%s' (line %u)", cm->name,
                       c->maps[k].line);
    }
    if ((fv = map_need(&m, "file", "./maps/lab_loinc.csv"))) cm->file = scalar_path(r, fv, "file");
    read_string(&m, "unmapped", &cm->unmapped);
    read_string(&m, "match", &cm->match);
    codemap_options o;
    codemap_options_default(&o);
    codemap_error ce;
    if ((v = map_get(&m, "unmapped")) && cm->unmapped &&
        codemap_unmapped_parse(cm->unmapped, &o.unmapped, &ce) != CODEMAP_OK)
        err_at(r, v, "'unmapped' is error, warning or pass, not '%s'", cm->unmapped);
    if ((v = map_get(&m, "match")) && cm->match &&
        codemap_match_parse(cm->match, &o.match, &ce) != CODEMAP_OK)
        err_at(r, v, "'match' is exact or caseless, not '%s'", cm->match);
    if (cm->name && cm->file && fv) {
        codemap *cmap = NULL;
        if (codemap_load_file(cm->file, cm->name, &o, &cmap, &ce) != CODEMAP_OK)
            err_at(r, fv, "code map '%s': %s", cm->name, ce.text);
        codemap_free(cmap);
    }
done:
    map_close_plain(&m);
}

static void read_maps(reader *r, yaml_node_t *v, tern_config *c)
{
    char b[64];
    if (v->type != YAML_SEQUENCE_NODE) {
        err_at(r, v, "'maps' must be a list of code maps, found %s", describe(v, b, sizeof(b)));
        return;
    }
    size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    c->maps = xcalloc(n ? n : 1, sizeof(*c->maps));
    c->nmaps = n;
    for (size_t i = 0; i < n; i++)
        read_map(r, node_at(r, v->data.sequence.items.start[i]), &c->maps[i], c, i);
}

static void read_filter(reader *r, yaml_node_t *node, config_filter *f, const char *label)
{
    map m;
    if (map_open(r, node, &m, "{ types: [ADT^A01, ADT^A04] }", "the filter of %s", label)) {
        read_strings(&m, "types", check_pattern, &f->types, &f->ntypes);
        read_strings(&m, "exclude", check_pattern, &f->exclude, &f->nexclude);
        yaml_node_t *v = map_get(&m, "script");
        if (v && (f->script = scalar_path(r, v, "script"))) check_script(r, v, f->script);
    }
    map_close_plain(&m);
}

/* An HL7 path (PID-3[2].1, OBX[3]-5) in a scalar; NULL after an error. */
static char *scalar_hl7_path(reader *r, yaml_node_t *v, const char *key)
{
    char *s = scalar_string(r, v, key);
    hl7_path p;
    hl7_error e;
    if (s && hl7_path_parse(s, &p, &e) != HL7_OK) {
        err_at(r, v, "'%s' is not an HL7 path (%s); write it like PID-3.1 or OBX[2]-5", s, e.text);
        free(s);
        return NULL;
    }
    return s;
}

static void read_convert(reader *r, yaml_node_t *v, config_transform *t, const char *label)
{
    map m;
    if (map_open(r, v, &m, "{ code: 2345-7, to: mmol/L, mw: 180.156 }", "a unit conversion of %s",
                 label)) {
        yaml_node_t *x;
        if ((x = map_need(&m, "code", "2345-7"))) t->code = scalar_string(r, x, "code");
        if ((x = map_need(&m, "to", "mmol/L"))) t->unit = scalar_string(r, x, "to");
        ucum_unit u;
        ucum_error ue;
        if (t->unit && ucum_parse(t->unit, &u, &ue) != UCUM_OK)
            err_at(r, x, "'to: %s' is not a UCUM unit: %s", t->unit, ue.text);
        read_string(&m, "from", &t->from);
        if ((x = map_get(&m, "mw"))) {
            const char *s = scalar_of(r, x, "mw", "a molar mass in g/mol, like 180.156");
            char *end = NULL;
            t->mw = s ? strtod(s, &end) : 0;
            if (s && (end == s || *end || !(t->mw > 0) || t->mw > 1e7))
                err_at(r, x, "'mw' must be a molar mass in g/mol greater than 0, like 180.156");
        }
    }
    map_close_plain(&m);
}

/* One step of `transform`: a map with exactly one of set, copy, delete,
 * convert (and the keys that go with it). */
static void read_transform(reader *r, yaml_node_t *node, config_transform *t, const char *label)
{
    map m;
    t->line = line_of(node);
    if (!map_open(r, node, &m, "{ set: PID-8, value: U }", "a transform step of %s", label))
        goto done;
    yaml_node_t *v;
    int kinds = 0;
    if ((v = map_get(&m, "set"))) {
        kinds++;
        t->kind = CONFIG_TX_SET;
        free(t->path); /* a step with several kinds is an error, reported below */
        t->path = scalar_hl7_path(r, v, "set");
        yaml_node_t *x = map_need(&m, "value", "U");
        if (x) t->value = scalar_string(r, x, "value");
    }
    if ((v = map_get(&m, "copy"))) {
        kinds++;
        t->kind = CONFIG_TX_COPY;
        free(t->path); /* a step with several kinds is an error, reported below */
        t->path = scalar_hl7_path(r, v, "copy");
        yaml_node_t *x = map_need(&m, "to", "PID-2");
        if (x) t->to = scalar_hl7_path(r, x, "to");
    }
    if ((v = map_get(&m, "delete"))) {
        kinds++;
        t->kind = CONFIG_TX_DELETE;
        free(t->path); /* a step with several kinds is an error, reported below */
        t->path = scalar_string(r, v, "delete");
        const char *s = t->path;
        if (s && !(strlen(s) == 3 && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") == 3 &&
                   strcmp(s, "MSH") != 0))
            err_at(r, v, "'delete' takes a segment id other than MSH, like ZPI; found '%s'", s);
    }
    if ((v = map_get(&m, "convert"))) {
        kinds++;
        t->kind = CONFIG_TX_CONVERT;
        read_convert(r, v, t, label);
    }
    if ((v = map_get(&m, "map"))) {
        kinds++;
        t->kind = CONFIG_TX_MAP;
        free(t->path);
        t->path = scalar_hl7_path(r, v, "map");
        yaml_node_t *x = map_need(&m, "with", "lab-loinc");
        if (x && (t->map = scalar_string(r, x, "with"))) {
            bool known = false;
            for (size_t i = 0; r->cfg && i < r->cfg->nmaps; i++)
                known = known || (r->cfg->maps[i].name && !strcmp(r->cfg->maps[i].name, t->map));
            if (!known)
                err_at(r, x, "there is no code map named '%s'; define it under 'maps:'", t->map);
        }
    }
    if ((v = map_get(&m, "script"))) {
        kinds++;
        t->kind = CONFIG_TX_SCRIPT;
        if ((t->script = scalar_path(r, v, "script"))) check_script(r, v, t->script);
        read_u32(&m, "max_instructions", 1000, 2000000000u, &t->max_instructions);
        read_size(&m, "max_memory", 256 * KIB, GIB, &t->max_memory);
    }
    if (kinds != 1)
        err_at(r, node,
               "a transform step of %s needs exactly one of 'set', 'copy', 'delete', 'convert', "
               "'map' or 'script' (found %d)",
               label, kinds);
done:
    map_close_plain(&m);
}

static void read_transforms(reader *r, yaml_node_t *v, config_channel *ch, const char *label)
{
    char b[64];
    if (v->type != YAML_SEQUENCE_NODE) {
        err_at(r, v, "'transform' of %s must be a list of steps, found %s", label,
               describe(v, b, sizeof(b)));
        return;
    }
    size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    ch->transforms = xcalloc(n ? n : 1, sizeof(*ch->transforms));
    ch->ntransforms = n;
    for (size_t i = 0; i < n; i++)
        read_transform(r, node_at(r, v->data.sequence.items.start[i]), &ch->transforms[i], label);
}

/* --- validation (docs/validation.md) ---------------------------------------- */

static bool read_double(reader *r, yaml_node_t *v, const char *key, double *out)
{
    const char *s = scalar_of(r, v, key, "a number");
    char *end = NULL;
    if (!s) return false;
    *out = strtod(s, &end);
    if (end == s || *end || *out != *out) {
        err_at(r, v, "'%s' must be a number, found '%s'", key, s);
        return false;
    }
    return true;
}

static void read_vfield(reader *r, yaml_node_t *node, config_vfield *f, const char *label)
{
    map m;
    f->line = line_of(node);
    if (map_open(r, node, &m, "{ path: PID-3, required: true, type: CX }",
                 "a field rule of a profile of %s", label)) {
        yaml_node_t *v;
        if ((v = map_need(&m, "path", "PID-3"))) f->path = scalar_hl7_path(r, v, "path");
        read_bool(&m, "required", &f->required);
        read_string(&m, "type", &f->type);
        read_u32(&m, "max_length", 1, 1u << 30, &f->max_len);
        read_u32(&m, "max_repeats", 1, 1u << 20, &f->max_reps);
        read_string(&m, "table", &f->table);
        read_string(&m, "when", &f->when);
        if ((v = map_get(&m, "min"))) f->has_min = read_double(r, v, "min", &f->min);
        if ((v = map_get(&m, "max"))) f->has_max = read_double(r, v, "max", &f->max);
    }
    map_close_plain(&m);
}

static void read_vprofile(reader *r, yaml_node_t *node, config_vprofile *p, const char *label)
{
    map m;
    char b[64];
    p->line = line_of(node);
    if (map_open(r, node, &m, "{ message: ORU^R01, segments: \"MSH PID { OBR { OBX } }\" }",
                 "a validation profile of %s", label)) {
        yaml_node_t *v;
        if ((v = map_need(&m, "message", "ORU^R01"))) p->message = scalar_string(r, v, "message");
        read_string(&m, "segments", &p->segments);
        if ((v = map_get(&m, "fields"))) {
            if (v->type != YAML_SEQUENCE_NODE) {
                err_at(r, v, "'fields' of a profile must be a list, found %s",
                       describe(v, b, sizeof(b)));
            } else {
                size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
                p->fields = xcalloc(n ? n : 1, sizeof(*p->fields));
                p->nfields = n;
                for (size_t i = 0; i < n; i++)
                    read_vfield(r, node_at(r, v->data.sequence.items.start[i]), &p->fields[i],
                                label);
            }
        }
    }
    map_close_plain(&m);
}

typedef enum vrule_kind { VR_SEX, VR_AGE, VR_LIMIT } vrule_kind;

static void read_vrule(reader *r, yaml_node_t *node, config_vrule *e, vrule_kind kind)
{
    static const char *const examples[] = {"{ code: \"O*\", system: I10, sex: F }",
                                           "{ code: \"N40*\", min: 15, max: 124 }",
                                           "{ code: 8867-4, min: 20, max: 300 }"};
    map m;
    e->line = line_of(node);
    if (map_open(r, node, &m, examples[kind], "an entry of a validation list")) {
        yaml_node_t *v;
        if ((v = map_need(&m, "code", "8867-4"))) e->code = scalar_string(r, v, "code");
        if (kind != VR_LIMIT) read_string(&m, "system", &e->system);
        if (kind == VR_SEX && (v = map_need(&m, "sex", "F"))) e->sex = scalar_string(r, v, "sex");
        if (kind == VR_LIMIT) read_string(&m, "units", &e->units);
        if (kind != VR_SEX) {
            if ((v = map_get(&m, "min"))) e->has_min = read_double(r, v, "min", &e->min);
            if ((v = map_get(&m, "max"))) e->has_max = read_double(r, v, "max", &e->max);
            if (!e->has_min && !e->has_max) err_at(r, node, "give 'min', 'max' or both");
        }
    }
    map_close_plain(&m);
}

static void read_vrules(reader *r, yaml_node_t *v, const char *key, config_vrules *out,
                        vrule_kind kind)
{
    char b[64];
    out->given = true;
    if (v->type != YAML_SEQUENCE_NODE) {
        err_at(r, v, "'%s' must be a list, found %s", key, describe(v, b, sizeof(b)));
        return;
    }
    size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    out->v = xcalloc(n ? n : 1, sizeof(*out->v));
    out->n = n;
    for (size_t i = 0; i < n; i++)
        read_vrule(r, node_at(r, v->data.sequence.items.start[i]), &out->v[i], kind);
}

static void free_vrules(config_vrules *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].code);
        free(l->v[i].system);
        free(l->v[i].sex);
        free(l->v[i].units);
    }
    free(l->v);
}

/* "+0100", "-0530": minutes east of UTC. */
static void read_offset(reader *r, yaml_node_t *v, int *out)
{
    const char *s = scalar_of(r, v, "local_offset", "an offset like +0100");
    if (!s) return;
    if (strlen(s) != 5 || (s[0] != '+' && s[0] != '-') || strspn(s + 1, "0123456789") != 4 ||
        (s[1] - '0') * 10 + (s[2] - '0') > 14 || (s[3] - '0') * 10 + (s[4] - '0') > 59) {
        err_at(r, v, "'local_offset' must be +HHMM or -HHMM (e.g. \"+0100\"), found '%s'", s);
        return;
    }
    int minutes = ((s[1] - '0') * 10 + (s[2] - '0')) * 60 + (s[3] - '0') * 10 + (s[4] - '0');
    *out = s[0] == '-' ? -minutes : minutes;
}

/* `tables: { NAME: path.csv }` and `severity: { rule: warning }`: free keys. */
static void read_pairs(reader *r, yaml_node_t *node, const char *key, bool paths, char ***names,
                       char ***values, unsigned **lines, size_t *n)
{
    map m;
    if (map_open(r, node, &m, paths ? "{ LOCALSEX: ./tables/sex.csv }" : "{ sex-specific: warning }",
                 "'%s'", key)) {
        *names = xcalloc(m.n + 1, sizeof(**names));
        *values = xcalloc(m.n + 1, sizeof(**values));
        *lines = xcalloc(m.n + 1, sizeof(**lines));
        for (size_t i = 0; i < m.n; i++) {
            m.e[i].used = true;
            char *val = paths ? scalar_path(r, m.e[i].value, m.e[i].key)
                              : scalar_string(r, m.e[i].value, m.e[i].key);
            if (!val) continue;
            (*names)[*n] = xstrdup(m.e[i].key);
            (*values)[*n] = val;
            (*lines)[*n] = line_of(m.e[i].knode);
            (*n)++;
        }
    }
    map_close_plain(&m);
}

static void read_validation(reader *r, yaml_node_t *node, config_validation *cv, const char *label)
{
    map m;
    char b[64];
    if (!map_open(r, node, &m, "{ baseline: true, profiles: [...] }", "the validation of %s",
                  label))
        goto done;
    read_bool(&m, "baseline", &cv->baseline);
    yaml_node_t *v;
    if ((v = map_get(&m, "local_offset"))) read_offset(r, v, &cv->local_offset);
    if ((v = map_lookup(&m, "sex_specific")))
        read_vrules(r, v, "sex_specific", &cv->sex_specific, VR_SEX);
    if ((v = map_lookup(&m, "age_restricted")))
        read_vrules(r, v, "age_restricted", &cv->age_restricted, VR_AGE);
    if ((v = map_lookup(&m, "physiologic")))
        read_vrules(r, v, "physiologic", &cv->physiologic, VR_LIMIT);
    char **names = NULL, **values = NULL;
    unsigned *lines = NULL;
    size_t n = 0;
    if ((v = map_get(&m, "tables"))) {
        read_pairs(r, v, "tables", true, &names, &values, &lines, &n);
        cv->tables = xcalloc(n + 1, sizeof(*cv->tables));
        for (size_t i = 0; i < n; i++)
            cv->tables[i] = (config_vtable){names[i], values[i], lines[i]};
        cv->ntables = n;
        free(names);
        free(values);
        free(lines);
    }
    names = values = NULL;
    lines = NULL;
    n = 0;
    if ((v = map_get(&m, "severity"))) {
        read_pairs(r, v, "severity", false, &names, &values, &lines, &n);
        cv->severity = xcalloc(n + 1, sizeof(*cv->severity));
        for (size_t i = 0; i < n; i++)
            cv->severity[i] = (config_vseverity){names[i], values[i], lines[i]};
        cv->nseverity = n;
        free(names);
        free(values);
        free(lines);
    }
    if ((v = map_get(&m, "profiles"))) {
        if (v->type != YAML_SEQUENCE_NODE) {
            err_at(r, v, "'profiles' of %s must be a list, found %s", label,
                   describe(v, b, sizeof(b)));
        } else {
            size_t np = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
            cv->profiles = xcalloc(np ? np : 1, sizeof(*cv->profiles));
            cv->nprofiles = np;
            for (size_t i = 0; i < np; i++)
                read_vprofile(r, node_at(r, v->data.sequence.items.start[i]), &cv->profiles[i],
                              label);
        }
    }
done:
    map_close_plain(&m);
}

/* Builds the channel's validator once, so that `config check` reports what
 * the engine would refuse (unknown rule, type or table, bad structure). */
static void check_validation(reader *r, const config_channel *ch, const char *label)
{
    tbuf why = TBUF_INIT;
    unsigned line = 0;
    quality_set *qs = quality_build(&ch->validation, &why, &line);
    if (!qs) errors_add(r->errs, line, 1, "validation of %s: %s", label, why.p ? why.p : "invalid");
    quality_free(qs);
    tbuf_free(&why);
}

static void read_duplicates(reader *r, yaml_node_t *node, config_duplicates *d, const char *label)
{
    map m;
    if (map_open(r, node, &m, "{ enabled: true, window: 24h }", "the duplicate detection of %s",
                 label)) {
        read_bool(&m, "enabled", &d->enabled);
        read_duration(&m, "window", SEC, 366 * DAY, &d->window_ms);
    }
    map_close_plain(&m);
}

static void read_limits(reader *r, yaml_node_t *node, hl7_limits *lim, const char *label)
{
    map m;
    if (map_open(r, node, &m, "{ max_message: 16MiB }", "the limits of %s", label)) {
        read_size(&m, "max_message", KIB, GIB, &lim->max_message);
        yaml_node_t *fv = map_get(&m, "max_field");
        read_size(&m, "max_field", 64, GIB, &lim->max_field);
        read_u32(&m, "max_segments", 1, 1000000, &lim->max_segments);
        if (fv && lim->max_field > lim->max_message)
            err_at(r, fv, "'max_field' is larger than 'max_message' (%zu > %zu bytes); lower it",
                   lim->max_field, lim->max_message);
    }
    map_close_plain(&m);
}

static void read_backoff(reader *r, yaml_node_t *v, config_retry *rt)
{
    const char *s = scalar_of(r, v, "backoff", "MIN..MAX, e.g. 1s..60s");
    if (!s) return;
    const char *dots = strstr(s, "..");
    char why[256];
    char *lo = dots ? xstrndup(s, (size_t)(dots - s)) : xstrdup(s);
    const char *hi = dots ? dots + 2 : s;
    uint64_t a, b;
    if (config_parse_duration(lo, &a, why, sizeof(why)) != CONFIG_OK ||
        config_parse_duration(hi, &b, why, sizeof(why)) != CONFIG_OK)
        err_at(r, v, "'backoff' is MIN..MAX (e.g. 1s..60s) or one fixed duration: %s", why);
    else if (a == 0)
        err_at(r, v, "'backoff' must start above 0, e.g. 1s..60s");
    else if (a > b)
        err_at(r, v, "'backoff' %s: the first duration must not exceed the second", s);
    else if (b > DAY)
        err_at(r, v, "'backoff' %s: waits longer than 1d between attempts are not supported", s);
    else {
        rt->backoff_min_ms = a;
        rt->backoff_max_ms = b;
    }
    free(lo);
}

static void read_retry(reader *r, yaml_node_t *node, config_retry *rt, const char *what)
{
    map m;
    if (map_open(r, node, &m, "{ max_attempts: 10, backoff: 1s..60s }", "the retry of %s", what)) {
        yaml_node_t *v = map_get(&m, "max_attempts");
        uint64_t n;
        if (v && v->type == YAML_SCALAR_NODE && !strcmp((char *)v->data.scalar.value, "forever"))
            rt->max_attempts = CONFIG_RETRY_FOREVER;
        else if (v && v->type == YAML_SCALAR_NODE &&
                 !isdigit((unsigned char)v->data.scalar.value[0]))
            err_at(r, v,
                   "'max_attempts' must be a number from 1 to 1000000 or 'forever', not "
                   "'%s'",
                   (char *)v->data.scalar.value);
        else if (v && scalar_uint(r, v, "max_attempts", 1, 1000000, &n))
            rt->max_attempts = (uint32_t)n;
        if ((v = map_get(&m, "backoff"))) read_backoff(r, v, rt);
    }
    map_close_plain(&m);
}

static bool header_name_ok(const char *s)
{
    if (!*s) return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("!#$%&'*+-.^_`|~", *s)) return false;
    return true;
}

static void read_headers(reader *r, yaml_node_t *node, config_destination *d, const char *what)
{
    map m;
    if (map_open(r, node, &m, "{ Authorization: \"Bearer ...\" }", "the headers of %s", what)) {
        d->http.headers = xcalloc(m.n ? m.n : 1, sizeof(*d->http.headers));
        for (size_t i = 0; i < m.n; i++) {
            map_entry *e = &m.e[i];
            e->used = true;
            const char *val = scalar_of(r, e->value, e->key, "text");
            if (!header_name_ok(e->key)) {
                err_at(r, e->knode,
                       "'%s' is not an HTTP header name (letters, digits and "
                       "-, e.g. X-Sender)",
                       e->key);
            } else if (!strcasecmp(e->key, "Content-Length") ||
                       !strcasecmp(e->key, "Transfer-Encoding") || !strcasecmp(e->key, "Host")) {
                err_at(r, e->knode, "header '%s' is set by Tern for each request; remove it",
                       e->key);
            } else if (val && strpbrk(val, "\r\n")) {
                err_at(r, e->value, "header '%s' has a line break in its value; remove it", e->key);
            } else if (val) {
                config_header *h = &d->http.headers[d->http.nheaders++];
                h->name = xstrdup(e->key);
                h->value = xstrdup(val);
            }
        }
    }
    map_close_plain(&m);
}

/* http:// or https://, a host (name, IPv4 or [IPv6]), an optional port, an
 * optional path; no credentials, no spaces. */
static bool check_url(reader *r, yaml_node_t *v, const char *s)
{
    const char *rest = NULL;
    if (!strncasecmp(s, "http://", 7))
        rest = s + 7;
    else if (!strncasecmp(s, "https://", 8))
        rest = s + 8;
    if (!rest) {
        err_at(r, v, "url '%s' must start with http:// or https://", s);
        return false;
    }
    for (const char *p = s; *p; p++) {
        if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
            err_at(r, v, "url '%s' contains a space or control character; encode it (%%20)", s);
            return false;
        }
    }
    size_t alen = strcspn(rest, "/?#");
    char *auth = xstrndup(rest, alen);
    bool ok = false;
    char *host = auth, *port = NULL;
    if (strchr(auth, '@')) {
        err_at(r, v,
               "url '%s' carries credentials; put them in 'headers' (e.g. Authorization) "
               "instead",
               s);
        goto done;
    }
    if (auth[0] == '[') {
        char *close = strchr(auth, ']');
        if (!close || (close[1] && close[1] != ':')) goto bad;
        *close = '\0';
        host = auth + 1;
        if (close[1] == ':') port = close + 2;
    } else if ((port = strchr(auth, ':'))) {
        *port++ = '\0';
    }
    if (!valid_host(host)) goto bad;
    if (port) {
        const char *p = port;
        uint64_t n;
        if (!read_digits(&p, &n) || *p || n < 1 || n > 65535) {
            err_at(r, v, "url '%s': the port must be a number from 1 to 65535", s);
            goto done;
        }
    }
    ok = true;
    goto done;
bad:
    err_at(r, v, "url '%s' has no valid host; write e.g. http://10.0.0.5:9000/results", s);
done:
    free(auth);
    return ok;
}

/* token or token_env (not both) of a fhir destination. */
static void read_fhir_token(reader *r, map *m, config_destination *d)
{
    yaml_node_t *tv = map_get(m, "token"), *ev = map_get(m, "token_env");
    if (tv && ev) {
        err_at(r, ev,
               "give either 'token' or 'token_env', not both (token_env names the environment "
               "variable that holds the token, which keeps it out of this file)");
        return;
    }
    if (tv && (d->fhir.token = scalar_string(r, tv, "token")) && !*d->fhir.token)
        err_at(r, tv, "'token' is empty; remove it or give the bearer token");
    if (ev && (d->fhir.token_env = scalar_string(r, ev, "token_env")) && !*d->fhir.token_env)
        err_at(r, ev, "'token_env' is empty; name the environment variable holding the token");
}

/* label names the channel in messages ("channel 'adt-in'"). */
static void read_destination(reader *r, yaml_node_t *node, config_channel *ch, size_t index,
                             const char *label)
{
    config_destination *d = &ch->destinations[index];
    map m;
    int type = 0;
    char what[192];
    d->line = line_of(node);
    d->enabled = true;
    d->parallel = 1;
    d->retry = (config_retry){DEF_MAX_ATTEMPTS, DEF_BACKOFF_MIN, DEF_BACKOFF_MAX};
    snprintf(what, sizeof(what), "destination %zu of %s", index + 1, label);
    if (!map_open(r, node, &m, "{ name: archive, type: file, dir: ./var/out }", "%s", what))
        goto done;
    yaml_node_t *v = map_need(&m, "name", "archive");
    if (v && (d->name = scalar_name(r, v, "destination"))) {
        snprintf(what, sizeof(what), "destination '%s' of %s", d->name, label);
        snprintf(m.what, sizeof(m.what), "%s", what);
        for (size_t i = 0; i < index && !r->errs->dropped; i++) {
            if (ch->destinations[i].name && !strcmp(ch->destinations[i].name, d->name)) {
                err_at(r, v,
                       "%s already has a destination named '%s' (line %u); give each "
                       "destination of a channel its own name",
                       label, d->name, ch->destinations[i].line);
                break;
            }
        }
    }
    if ((v = map_need(&m, "type", "file")) &&
        scalar_enum(r, v, "type", "destination type", dest_type_names, COUNT(dest_type_names),
                    &type))
        d->type = (config_dest_type)type;
    read_bool(&m, "enabled", &d->enabled);
    read_u32(&m, "parallel", 1, 64, &d->parallel);
    if ((v = map_get(&m, "retry"))) read_retry(r, v, &d->retry, what);
    switch (type) {
    case CONFIG_DEST_FILE: {
        if ((v = map_need(&m, "dir", "./var/out"))) d->file.dir = scalar_path(r, v, "dir");
        yaml_node_t *fv = map_get(&m, "filename");
        const char *s =
            fv ? scalar_of(r, fv, "filename", "a template like \"${MSH-10}.hl7\"") : NULL;
        if (s)
            parse_template(r, fv, s, &d->file.filename);
        else if (!fv)
            parse_template(r, m.node, DEF_FILENAME, &d->file.filename);
        break;
    }
    case CONFIG_DEST_MLLP:
        d->mllp.connect_timeout_ms = DEF_CONNECT_TIMEOUT;
        d->mllp.ack_timeout_ms = DEF_ACK_TIMEOUT;
        if ((v = map_need(&m, "host", "10.0.0.5")) &&
            (d->mllp.host = scalar_string(r, v, "host")) && !valid_host(d->mllp.host)) {
            err_at(r, v, "'host' must be a host name or IP address (no port, no scheme), not '%s'",
                   d->mllp.host);
        }
        if ((v = map_need(&m, "port", "2575"))) scalar_port(r, v, "port", &d->mllp.port);
        read_duration(&m, "connect_timeout", 10, HOUR, &d->mllp.connect_timeout_ms);
        read_duration(&m, "ack_timeout", 10, HOUR, &d->mllp.ack_timeout_ms);
        if ((v = map_get(&m, "tls"))) read_tls(r, v, &d->tls, false, what);
        break;
    case CONFIG_DEST_HTTP:
    case CONFIG_DEST_FHIR:
        d->http.timeout_ms = DEF_HTTP_TIMEOUT;
        d->tls.verify = true; /* https:// without a tls block: the system's CAs */
        if ((v = map_need(&m, "url", type == CONFIG_DEST_FHIR ? "https://fhir.example.org/r4"
                                                              : "http://10.0.0.5:9000/results")) &&
            (d->http.url = scalar_string(r, v, "url")) && !check_url(r, v, d->http.url)) {
            free(d->http.url);
            d->http.url = NULL;
        }
        if ((v = map_get(&m, "headers"))) read_headers(r, v, d, what);
        read_duration(&m, "timeout", 10, HOUR, &d->http.timeout_ms);
        if ((v = map_get(&m, "tls"))) {
            if (d->http.url && strncasecmp(d->http.url, "https://", 8))
                err_at(r, v, "'tls' applies to https:// urls; this url is %s", d->http.url);
            else
                read_tls(r, v, &d->tls, false, what);
        }
        if (type == CONFIG_DEST_FHIR) read_fhir_token(r, &m, d);
        break;
    default:
        break;
    }
done:
    map_close(&m, dest_keys, COUNT(dest_keys), type, dest_type_names, "destination");
}

static void read_channel(reader *r, yaml_node_t *node, tern_config *c, size_t index)
{
    config_channel *ch = &c->channels[index];
    map m;
    char fallback[48];
    ch->line = line_of(node);
    ch->enabled = true;
    hl7_limits_default(&ch->limits);
    ch->duplicates.window_ms = DEF_DUP_WINDOW;
    ch->retention_ms = c->retention_ms;
    snprintf(fallback, sizeof(fallback), "the channel at line %u", ch->line);
    if (!map_open(r, node, &m, "{ name: adt-in, source: {...}, destinations: [...] }", "%s",
                  fallback))
        goto done;
    yaml_node_t *v = map_need(&m, "name", "adt-in");
    if (v && (ch->name = scalar_name(r, v, "channel"))) {
        snprintf(m.what, sizeof(m.what), "channel '%s'", ch->name);
        /* Quadratic, so it stops once errors overflow (an alias flood). */
        for (size_t i = 0; i < index && !r->errs->dropped; i++) {
            if (c->channels[i].name && !strcmp(c->channels[i].name, ch->name)) {
                err_at(r, v,
                       "there is already a channel named '%s' (line %u); give each channel its "
                       "own name",
                       ch->name, c->channels[i].line);
                break;
            }
        }
    }
    /* Messages below name the channel; one without a usable name is named
     * by its line. */
    char label[MAX_NAME + 16];
    if (ch->name)
        snprintf(label, sizeof(label), "channel '%s'", ch->name);
    else
        snprintf(label, sizeof(label), "%s", fallback);
    read_bool(&m, "enabled", &ch->enabled);
    read_string(&m, "description", &ch->description);
    read_duration(&m, "retention", 0, 100 * 366 * DAY, &ch->retention_ms);
    if ((v = map_need(&m, "source", "{ type: mllp, listen: 0.0.0.0:2575 }")))
        read_source(r, v, &ch->source, ch, label);
    if ((v = map_get(&m, "filter"))) read_filter(r, v, &ch->filter, label);
    if ((v = map_get(&m, "duplicates"))) read_duplicates(r, v, &ch->duplicates, label);
    if ((v = map_get(&m, "limits"))) read_limits(r, v, &ch->limits, label);
    if ((v = map_get(&m, "transform"))) read_transforms(r, v, ch, label);
    ch->validation.baseline = true;
    if ((v = map_get(&m, "validation"))) read_validation(r, v, &ch->validation, label);
    if (!r->errs->count) check_validation(r, ch, label);
    if ((v = map_get(&m, "destinations"))) {
        char b[64];
        if (v->type != YAML_SEQUENCE_NODE) {
            err_at(r, v,
                   "'destinations' of %s must be a list (each item starts with "
                   "'- '), found %s",
                   label, describe(v, b, sizeof(b)));
        } else {
            size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
            ch->destinations = xcalloc(n ? n : 1, sizeof(*ch->destinations));
            ch->ndestinations = n;
            for (size_t i = 0; i < n; i++) {
                yaml_node_t *item = node_at(r, v->data.sequence.items.start[i]);
                read_destination(r, item, ch, i, label);
            }
        }
    }
done:
    map_close_plain(&m);
}

static void read_store(reader *r, yaml_node_t *node, config_store *s)
{
    map m;
    if (map_open(r, node, &m, "{ path: ./var/tern.db }", "'store'")) {
        yaml_node_t *v = map_get(&m, "type");
        int type = 0;
        if (v && v->type == YAML_SCALAR_NODE &&
            (!strcmp((char *)v->data.scalar.value, "postgres") ||
             !strcmp((char *)v->data.scalar.value, "postgresql")))
            err_at(r, v, "store type '%s' is not available in this version; use sqlite",
                   (char *)v->data.scalar.value);
        else if (v)
            scalar_enum(r, v, "type", "store type", store_type_names, COUNT(store_type_names),
                        &type);
        s->type = (config_store_type)type;
        if ((v = map_get(&m, "path"))) {
            char *p = scalar_path(r, v, "path");
            if (p) {
                free(s->path);
                s->path = p;
            }
        }
    }
    map_close_plain(&m);
}

static void read_encryption(reader *r, yaml_node_t *node, config_encryption *e)
{
    map m;
    if (map_open(r, node, &m, "{ key_file: ./var/master.key }", "'encryption'")) {
        read_bool(&m, "enabled", &e->enabled);
        yaml_node_t *v = map_get(&m, "key_file");
        if (v) {
            char *p = scalar_path(r, v, "key_file");
            if (p) {
                free(e->key_file);
                e->key_file = p;
            }
        }
        read_string(&m, "key_env", &e->key_env);
    }
    map_close_plain(&m);
}

static void read_http(reader *r, yaml_node_t *node, config_http *h)
{
    map m;
    if (map_open(r, node, &m, "{ listen: 127.0.0.1:8080 }", "'http'")) {
        read_bool(&m, "enabled", &h->enabled);
        yaml_node_t *v = map_get(&m, "listen");
        if (v && read_listen(&m, v, &h->listen) && h->enabled)
            add_claim(&r->listens, &r->nlistens, &r->listencap,
                      (claim){NULL, h->listen.host, h->listen.port, NULL, line_of(v),
                              (unsigned)v->start_mark.column + 1});
        if ((v = map_get(&m, "tls"))) read_tls(r, v, &h->tls, true, "'http'");
        read_duration(&m, "timeout", 100, HOUR, &h->timeout_ms);
    }
    map_close_plain(&m);
}

static void read_fhir(reader *r, yaml_node_t *node, config_fhir *f)
{
    map m;
    if (map_open(r, node, &m, "{ store: ./var/tern-fhir.db }", "'fhir'")) {
        yaml_node_t *v = map_get(&m, "store");
        char *p = v ? scalar_path(r, v, "store") : NULL;
        if (p) {
            free(f->store);
            f->store = p;
        }
        if ((v = map_get(&m, "tables")) && (f->tables = scalar_path(r, v, "tables"))) {
            fhir_tables *t = NULL;
            char why[512];
            if (!fhir_tables_load(f->tables, &t, why, sizeof why))
                err_at(r, v, "fhir.tables: %s", why);
            fhir_tables_free(t);
        }
    }
    map_close_plain(&m);
}

/* The security database beside the store: var/tern.db -> var/tern-sec.db. */
static char *default_security_db(const char *store_path)
{
    size_t n = strlen(store_path);
    tbuf t = TBUF_INIT;
    if (n > 3 && !strcmp(store_path + n - 3, ".db"))
        tbuf_printf(&t, "%.*s-sec.db", (int)(n - 3), store_path);
    else
        tbuf_printf(&t, "%s-sec.db", store_path);
    return tbuf_detach(&t, NULL);
}

void config_security_default(config_security *s, const char *store_path)
{
    *s = (config_security){.auth = true,
                           .lockout_attempts = 5,
                           .lockout_ms = 15 * MINUTE,
                           .session_idle_ms = 30 * MINUTE,
                           .session_max_ms = 12 * HOUR,
                           .argon2_memory_kib = 65536,
                           .argon2_iterations = 3,
                           .argon2_parallelism = 1,
                           .seal_every = 10000,
                           .seal_interval_ms = 60 * SEC,
                           .audit_queue = 65536};
    if (store_path) s->db = default_security_db(store_path);
}

static void read_security(reader *r, yaml_node_t *node, config_security *s)
{
    map m;
    if (map_open(r, node, &m, "{ auth: true, audit_key_file: ./keys/audit.key }", "'security'")) {
        read_bool(&m, "auth", &s->auth);
        yaml_node_t *v;
        if ((v = map_get(&m, "db"))) s->db = scalar_path(r, v, "db");
        if ((v = map_get(&m, "audit_key_file")))
            s->audit_key_file = scalar_path(r, v, "audit_key_file");
        read_u32(&m, "lockout_attempts", 1, 1000, &s->lockout_attempts);
        read_duration(&m, "lockout", SEC, 30 * DAY, &s->lockout_ms);
        read_duration(&m, "session_idle", SEC, 30 * DAY, &s->session_idle_ms);
        read_duration(&m, "session_max", SEC, 365 * DAY, &s->session_max_ms);
        read_u32(&m, "argon2_memory_kib", 8, 4u << 20, &s->argon2_memory_kib);
        read_u32(&m, "argon2_iterations", 1, 100, &s->argon2_iterations);
        read_u32(&m, "argon2_parallelism", 1, 64, &s->argon2_parallelism);
        read_u32(&m, "seal_every", 1, 100000000, &s->seal_every);
        read_duration(&m, "seal_interval", 100, DAY, &s->seal_interval_ms);
        read_u32(&m, "audit_queue", 16, 10000000, &s->audit_queue);
    }
    map_close_plain(&m);
}

/* store.path with "-fhir" before the extension of its file name. */
static char *default_fhir_store(const char *store_path)
{
    const char *slash = strrchr(store_path, '/');
    const char *dot = strrchr(slash ? slash + 1 : store_path, '.');
    size_t stem = dot && dot != (slash ? slash + 1 : store_path) ? (size_t)(dot - store_path)
                                                                  : strlen(store_path);
    size_t n = strlen(store_path) + 6;
    char *out = xmalloc(n);
    snprintf(out, n, "%.*s-fhir%s", (int)stem, store_path, store_path + stem);
    return out;
}

/* --- checks across channels ---------------------------------------------- */

static int claim_cmp_port(const void *a, const void *b)
{
    const claim *x = a, *y = b;
    if (x->port != y->port) return x->port < y->port ? -1 : 1;
    if (x->line != y->line) return x->line < y->line ? -1 : 1;
    return x->column < y->column ? -1 : x->column > y->column;
}

static int claim_cmp_dir(const void *a, const void *b)
{
    const claim *x = a, *y = b;
    int c = strcmp(x->dir, y->dir);
    if (c) return c;
    if (x->line != y->line) return x->line < y->line ? -1 : 1;
    return x->column < y->column ? -1 : x->column > y->column;
}

static void owner_text(const claim *c, char *buf, size_t size)
{
    if (c->channel)
        snprintf(buf, size, "channel '%s' (line %u)", c->channel, c->line);
    else
        snprintf(buf, size, "the http listener (line %u)", c->line);
}

static void check_claims(reader *r)
{
    char owner[128];
    if (r->nlistens > 1) qsort(r->listens, r->nlistens, sizeof(claim), claim_cmp_port);
    for (size_t i = 1; i < r->nlistens && !r->errs->dropped; i++) {
        const claim *c = &r->listens[i];
        for (size_t j = i; j-- > 0 && r->listens[j].port == c->port;) {
            const claim *o = &r->listens[j];
            bool same = !strcasecmp(o->host, c->host);
            if (!same && !is_wildcard(o->host) && !is_wildcard(c->host)) continue;
            owner_text(o, owner, sizeof(owner));
            if (same)
                errors_add(r->errs, c->line, c->column,
                           "%s:%u is already used by %s; give each listener its own port", c->host,
                           c->port, owner);
            else
                errors_add(r->errs, c->line, c->column,
                           "%s:%u%s overlaps %s:%u%s of %s; give each listener its own port",
                           c->host, c->port, is_wildcard(c->host) ? " (every interface)" : "",
                           o->host, o->port, is_wildcard(o->host) ? " (every interface)" : "",
                           owner);
            break;
        }
    }
    if (r->ndirs > 1) qsort(r->dirs, r->ndirs, sizeof(claim), claim_cmp_dir);
    for (size_t i = 1; i < r->ndirs && !r->errs->dropped; i++) {
        const claim *c = &r->dirs[i], *o = &r->dirs[i - 1];
        if (strcmp(c->dir, o->dir)) continue;
        errors_add(r->errs, c->line, c->column,
                   "directory '%s' is already polled by channel '%s' (line %u); two file "
                   "sources on one directory would take each other's files",
                   c->dir, o->channel, o->line);
    }
}

/* --- loading ------------------------------------------------------------- */

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void free_destination(config_destination *d)
{
    free(d->name);
    free(d->file.dir);
    free_template(&d->file.filename);
    free(d->mllp.host);
    free(d->http.url);
    free(d->fhir.token);
    free(d->fhir.token_env);
    for (size_t i = 0; i < d->http.nheaders; i++) {
        free(d->http.headers[i].name);
        free(d->http.headers[i].value);
    }
    free(d->http.headers);
    free_tls(&d->tls);
}

static void free_channel(config_channel *ch)
{
    free(ch->name);
    free(ch->description);
    config_source *s = &ch->source;
    free(s->listen.host);
    free(s->file.dir);
    free(s->file.glob);
    free(s->file.move_to);
    free_strv(s->file.ignore_suffixes, s->file.nignore_suffixes);
    free_strv(s->fhir.resources, s->fhir.nresources);
    free(s->fhir.sending_application);
    free(s->fhir.sending_facility);
    free(s->fhir.receiving_application);
    free(s->fhir.receiving_facility);
    free_tls(&s->tls);
    free_strv(ch->filter.types, ch->filter.ntypes);
    free_strv(ch->filter.exclude, ch->filter.nexclude);
    free(ch->filter.script);
    for (size_t i = 0; i < ch->ntransforms; i++) {
        config_transform *t = &ch->transforms[i];
        free(t->path);
        free(t->value);
        free(t->to);
        free(t->code);
        free(t->unit);
        free(t->from);
        free(t->map);
        free(t->script);
    }
    free(ch->transforms);
    config_validation *cv = &ch->validation;
    for (size_t i = 0; i < cv->ntables; i++) {
        free(cv->tables[i].name);
        free(cv->tables[i].path);
    }
    free(cv->tables);
    for (size_t i = 0; i < cv->nseverity; i++) {
        free(cv->severity[i].rule);
        free(cv->severity[i].severity);
    }
    free(cv->severity);
    for (size_t i = 0; i < cv->nprofiles; i++) {
        config_vprofile *p = &cv->profiles[i];
        for (size_t k = 0; k < p->nfields; k++) {
            free(p->fields[k].path);
            free(p->fields[k].type);
            free(p->fields[k].table);
            free(p->fields[k].when);
        }
        free(p->fields);
        free(p->message);
        free(p->segments);
    }
    free(cv->profiles);
    free_vrules(&cv->sex_specific);
    free_vrules(&cv->age_restricted);
    free_vrules(&cv->physiologic);
    for (size_t i = 0; i < ch->ndestinations; i++)
        free_destination(&ch->destinations[i]);
    free(ch->destinations);
}

void config_free(tern_config *c)
{
    if (!c) return;
    for (size_t i = 0; i < c->nchannels; i++)
        free_channel(&c->channels[i]);
    free(c->channels);
    for (size_t i = 0; i < c->nmaps; i++) {
        free(c->maps[i].name);
        free(c->maps[i].file);
        free(c->maps[i].unmapped);
        free(c->maps[i].match);
    }
    free(c->maps);
    free(c->store.path);
    free(c->encryption.key_file);
    free(c->encryption.key_env);
    free(c->fhir.store);
    free(c->fhir.tables);
    free(c->security.db);
    free(c->security.audit_key_file);
    free(c->http.listen.host);
    free_tls(&c->http.tls);
    free(c->file);
    free(c);
}

const config_channel *config_find_channel(const tern_config *c, const char *name)
{
    for (size_t i = 0; i < c->nchannels; i++)
        if (c->channels[i].name && !strcmp(c->channels[i].name, name)) return &c->channels[i];
    return NULL;
}

static void read_root(reader *r, yaml_node_t *root, tern_config *c)
{
    map m;
    c->store.path = resolve_path(r, DEF_STORE_PATH);
    c->encryption.enabled = true;
    c->encryption.key_env = xstrdup("TERN_MASTER_KEY");
    c->http.enabled = true;
    c->http.listen.host = xstrdup(DEF_HTTP_HOST);
    c->http.listen.port = DEF_HTTP_PORT;
    r->http = &c->http;
    config_security_default(&c->security, NULL);
    if (!map_open(r, root, &m, "store: ..., http: ..., channels: [...]",
                  "the top level of the file"))
        goto done;
    /* x-NAME keys hold anchors for the rest of the file (as in Compose). */
    for (size_t i = 0; i < m.n; i++)
        if (!strncmp(m.e[i].key, "x-", 2)) m.e[i].used = true;
    yaml_node_t *v;
    if ((v = map_get(&m, "store"))) read_store(r, v, &c->store);
    if ((v = map_get(&m, "encryption"))) read_encryption(r, v, &c->encryption);
    c->http.timeout_ms = DEF_HTTP_READ_TIMEOUT;
    if ((v = map_get(&m, "http"))) read_http(r, v, &c->http);
    if ((v = map_get(&m, "fhir"))) read_fhir(r, v, &c->fhir);
    if (!c->fhir.store && c->store.path) c->fhir.store = default_fhir_store(c->store.path);
    if ((v = map_get(&m, "security"))) read_security(r, v, &c->security);
    if (!c->security.db && c->store.path) c->security.db = default_security_db(c->store.path);
    if ((v = map_get(&m, "maps"))) read_maps(r, v, c);
    read_duration(&m, "retention", 0, 100 * 366 * DAY, &c->retention_ms);
    c->prune_every_ms = DEF_PRUNE_EVERY;
    read_duration(&m, "prune_every", 100, DAY, &c->prune_every_ms);
    v = map_lookup(&m, "channels");
    char b[64];
    if (!v) {
        err_at(r, root,
               "the configuration has no 'channels'; add a list of channels, e.g. "
               "channels: [{ name: adt-in, source: { type: mllp, listen: 0.0.0.0:2575 } }]");
    } else if (is_null(v)) {
        c->nchannels = 0;
    } else if (v->type != YAML_SEQUENCE_NODE) {
        err_at(r, v, "'channels' must be a list (each channel starts with '- '), found %s",
               describe(v, b, sizeof(b)));
    } else {
        size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
        c->channels = xcalloc(n ? n : 1, sizeof(*c->channels));
        c->nchannels = n;
        for (size_t i = 0; i < n; i++)
            read_channel(r, node_at(r, v->data.sequence.items.start[i]), c, i);
    }
    check_claims(r);
done:
    map_close_plain(&m);
}

/* 1-based line and column of byte offset off in text. */
static void position_of(const char *text, size_t len, size_t off, unsigned *line, unsigned *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off && i < len; i++) {
        if (text[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

static void syntax_error(config_errors *errs, const yaml_parser_t *p, const char *text, size_t len)
{
    unsigned line, col;
    if (p->error == YAML_READER_ERROR) {
        position_of(text, len, p->problem_offset, &line, &col);
        errors_add(errs, line, col, "%s; save the file as UTF-8",
                   p->problem ? p->problem : "cannot read the text");
        return;
    }
    line = (unsigned)p->problem_mark.line + 1;
    col = (unsigned)p->problem_mark.column + 1;
    const char *hint = "check the indentation, quoting and brackets here";
    size_t off = p->problem_mark.index;
    if (off < len && text[off] == '\t')
        hint = "YAML does not allow tabs for indentation; use spaces";
    else if ((p->problem && strstr(p->problem, "alias")) ||
             (p->context && strstr(p->context, "alias")))
        hint = "a value starting with '*' or '&' must be quoted, e.g. \"*\"";
    if (p->context)
        errors_add(errs, line, col, "YAML syntax: %s %s (line %u, column %u); %s",
                   p->problem ? p->problem : "error", p->context,
                   (unsigned)p->context_mark.line + 1, (unsigned)p->context_mark.column + 1, hint);
    else
        errors_add(errs, line, col, "YAML syntax: %s; %s", p->problem ? p->problem : "error", hint);
}

config_status config_load_buffer(const char *name, const char *text, size_t len, tern_config **out,
                                 config_errors *errs)
{
    yaml_parser_t parser;
    yaml_document_t doc, extra;
    bool have_doc = false, have_extra = false;
    config_status st = CONFIG_ERR_INVALID;
    tern_config *c = NULL;
    char *base = NULL;
    reader r = {0};

    assert(name && (text || !len) && out && errs);
    *out = NULL;
    errors_start(errs, name);
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        syntax_error(errs, &parser, text, len);
        st = CONFIG_ERR_SYNTAX;
        goto done;
    }
    have_doc = true;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root) {
        errors_add(errs, 0, 0,
                   "the file is empty; a configuration needs at least a 'channels' "
                   "list (see docs/configuration.md)");
        goto done;
    }
    if (!yaml_parser_load(&parser, &extra)) {
        syntax_error(errs, &parser, text, len);
        st = CONFIG_ERR_SYNTAX;
        goto done;
    }
    have_extra = true;
    yaml_node_t *second = yaml_document_get_root_node(&extra);
    if (second) {
        errors_add(errs, (unsigned)extra.start_mark.line + 1, (unsigned)extra.start_mark.column + 1,
                   "a second YAML document starts here; a configuration file holds one document, "
                   "so remove this '---' and what follows");
        goto done;
    }

    const char *slash = strrchr(name, '/');
    base = slash ? xstrndup(name, (size_t)(slash - name) + (slash == name)) : xstrdup("");
    r.doc = &doc;
    r.errs = errs;
    r.base_dir = base;
    c = xcalloc(1, sizeof(*c));
    c->file = xstrdup(name);
    r.cfg = c;
    read_root(&r, root, c);
    if (errs->count || errs->dropped) goto done;
    *out = c;
    c = NULL;
    st = CONFIG_OK;
done:
    errors_sort(errs);
    config_free(c);
    free(base);
    free(r.listens);
    free(r.dirs);
    if (have_extra) yaml_document_delete(&extra);
    if (have_doc) yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return st;
}

config_status config_load(const char *path, tern_config **out, config_errors *errs)
{
    tbuf text = TBUF_INIT;
    config_status st = CONFIG_ERR_IO;
    assert(path && out && errs);
    *out = NULL;
    errors_start(errs, path);
    FILE *f = fopen(path, "rb");
    if (!f) {
        errors_add(errs, 0, 0, "cannot open the configuration: %s", strerror(errno));
        goto done;
    }
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        tbuf_put(&text, chunk, n);
        if (text.len > MAX_FILE_BYTES) {
            errors_add(errs, 0, 0, "the file is larger than %u MiB; is it really a configuration?",
                       MAX_FILE_BYTES >> 20);
            goto done;
        }
    }
    if (ferror(f)) {
        errors_add(errs, 0, 0, "cannot read the configuration: %s", strerror(errno));
        goto done;
    }
    st = config_load_buffer(path, text.p ? text.p : "", text.len, out, errs);
done:
    if (f) fclose(f);
    tbuf_free(&text);
    return st;
}

/* --- run-time helpers ---------------------------------------------------- */

static bool part_match(const char *pat, size_t plen, const char *s)
{
    char p[MAX_PATTERN + 1];
    if (plen > MAX_PATTERN) return false;
    memcpy(p, pat, plen);
    p[plen] = '\0';
    return fnmatch(p, s, 0) == 0;
}

static bool pattern_match(const char *pat, const char *type, const char *event)
{
    const char *caret = strchr(pat, '^');
    if (!caret) return part_match(pat, strlen(pat), type);
    return part_match(pat, (size_t)(caret - pat), type) &&
           part_match(caret + 1, strlen(caret + 1), event);
}

bool config_filter_accepts(const config_filter *f, const char *type, const char *event)
{
    assert(f);
    type = type ? type : "";
    event = event ? event : "";
    bool in = f->ntypes == 0;
    for (size_t i = 0; i < f->ntypes && !in; i++)
        in = pattern_match(f->types[i], type, event);
    for (size_t i = 0; i < f->nexclude && in; i++)
        in = !pattern_match(f->exclude[i], type, event);
    return in;
}

uint64_t config_retry_delay(const config_retry *r, uint32_t attempt)
{
    assert(r && attempt >= 1 && r->backoff_min_ms <= r->backoff_max_ms);
    uint64_t d = r->backoff_min_ms;
    for (uint32_t i = 1; i < attempt && d < r->backoff_max_ms; i++)
        d *= 2;
    return d < r->backoff_max_ms ? d : r->backoff_max_ms;
}

static void put_safe(tbuf *out, const char *s, size_t n)
{
    if (n > TEMPLATE_VALUE_MAX) n = TEMPLATE_VALUE_MAX;
    if (n == 0) {
        tbuf_putc(out, '_');
        return;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = isalnum((unsigned char)c) || c == '_' || c == '-' || (c == '.' && i > 0);
        tbuf_putc(out, ok ? c : '_');
    }
}

void config_template_render(const config_template *t, const hl7_msg *m, const char *channel,
                            uint64_t id, time_t received, tbuf *out)
{
    assert(t && out);
    tbuf v = TBUF_INIT;
    char buf[32];
    struct tm tm;
    for (size_t i = 0; i < t->nparts; i++) {
        const config_tpl_part *p = &t->parts[i];
        switch (p->kind) {
        case CONFIG_TPL_TEXT:
            tbuf_puts(out, p->text);
            break;
        case CONFIG_TPL_PATH:
            tbuf_reset(&v);
            if (m) hl7_get(m, &p->path, &v);
            put_safe(out, v.p ? v.p : "", v.len);
            break;
        case CONFIG_TPL_CHANNEL:
            put_safe(out, channel ? channel : "", channel ? strlen(channel) : 0);
            break;
        case CONFIG_TPL_ID:
            tbuf_printf(out, "%" PRIu64, id);
            break;
        case CONFIG_TPL_DATE:
        case CONFIG_TPL_TIME:
            localtime_r(&received, &tm);
            strftime(buf, sizeof(buf), p->kind == CONFIG_TPL_DATE ? "%Y%m%d" : "%H%M%S", &tm);
            tbuf_puts(out, buf);
            break;
        }
    }
    tbuf_free(&v);
}
