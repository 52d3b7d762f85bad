/*
 * codemap: code maps loaded from CSV or FHIR ConceptMap, looked up by hash.
 *
 * Every string of a map lives in one pool (a tbuf; offset 0 is a NUL that
 * stands for "absent"), rows refer to it by offset, so a 100k-row map is a
 * handful of allocations. The source code is normalised (per the map's
 * match mode) before it is stored and hashed; the hash covers the code only,
 * not the source system, so that a lookup without a system finds rows of any
 * system. The table is open addressing with linear probing, kept at most
 * half full; slots hold row index + 1 (0 = empty). The hash reads the key
 * eight bytes at a time. A row knows whether another row has its code (in
 * another system), so a lookup ends at the first row of a code it alone
 * has instead of probing on for a better system.
 *
 * The CSV reader is RFC 4180 (quoted fields may hold commas, quotes as "" and
 * line breaks) and remembers the line each record started on for errors.
 */
#include "term/codemap.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "base/bytes.h"
#include "base/mem.h"
#include "base/tbuf.h"

typedef struct codemap_row {
    uint64_t hash;
    uint32_t source_system, source_code; /* pool offsets; 0 = absent */
    uint32_t code_len;                   /* strlen of the source code */
    uint32_t target_system, target_code, display;
    uint32_t line;   /* where it came from (CSV line), 0 if unknown */
    uint32_t shared; /* 1: another row has the same code (in another system) */
} codemap_row;

struct codemap {
    char *name;
    codemap_options opt;
    tbuf pool;
    codemap_row *rows;
    size_t nrows, rowcap;
    uint32_t *slots;
    size_t nslots; /* power of two */
};

struct codemap_registry {
    codemap **maps;
    size_t n, cap;
};

const char *codemap_strerror(codemap_status s)
{
    switch (s) {
    case CODEMAP_OK:
        return "ok";
    case CODEMAP_ERR_IO:
        return "cannot read the map file";
    case CODEMAP_ERR_FORMAT:
        return "malformed code map";
    case CODEMAP_ERR_DUPLICATE:
        return "duplicate code";
    case CODEMAP_ERR_OPTION:
        return "unknown code map option";
    }
    return "unknown code map status";
}

static codemap_status fail(codemap_error *err, codemap_status code, uint32_t line, uint32_t column,
                           const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static codemap_status fail(codemap_error *err, codemap_status code, uint32_t line, uint32_t column,
                           const char *fmt, ...)
{
    if (!err) return code;
    err->code = code;
    err->line = line;
    err->column = column;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->text, sizeof(err->text), fmt, ap);
    va_end(ap);
    return code;
}

void codemap_options_default(codemap_options *opt)
{
    opt->unmapped = CODEMAP_UNMAPPED_ERROR;
    opt->match = CODEMAP_MATCH_EXACT;
}

codemap_status codemap_unmapped_parse(const char *s, codemap_unmapped *out, codemap_error *err)
{
    if (!strcmp(s, "error"))
        *out = CODEMAP_UNMAPPED_ERROR;
    else if (!strcmp(s, "warning"))
        *out = CODEMAP_UNMAPPED_WARNING;
    else if (!strcmp(s, "pass"))
        *out = CODEMAP_UNMAPPED_PASS;
    else
        return fail(err, CODEMAP_ERR_OPTION, 0, 0,
                    "unmapped policy '%s' is not one of error, warning, pass", s);
    return CODEMAP_OK;
}

codemap_status codemap_match_parse(const char *s, codemap_match *out, codemap_error *err)
{
    if (!strcmp(s, "exact"))
        *out = CODEMAP_MATCH_EXACT;
    else if (!strcmp(s, "caseless"))
        *out = CODEMAP_MATCH_CASELESS;
    else
        return fail(err, CODEMAP_ERR_OPTION, 0, 0, "match mode '%s' is not one of exact, caseless",
                    s);
    return CODEMAP_OK;
}

const char *codemap_unmapped_name(codemap_unmapped u)
{
    switch (u) {
    case CODEMAP_UNMAPPED_ERROR:
        return "error";
    case CODEMAP_UNMAPPED_WARNING:
        return "warning";
    case CODEMAP_UNMAPPED_PASS:
        return "pass";
    }
    return "?";
}

/* --- the map ------------------------------------------------------------- */

codemap *codemap_new(const char *name, const codemap_options *opt)
{
    codemap *m = xcalloc(1, sizeof(*m));
    m->name = xstrdup(name ? name : "");
    if (opt)
        m->opt = *opt;
    else
        codemap_options_default(&m->opt);
    tbuf_putc(&m->pool, '\0');
    m->nslots = 64;
    m->slots = xcalloc(m->nslots, sizeof(*m->slots));
    return m;
}

void codemap_free(codemap *m)
{
    if (!m) return;
    free(m->name);
    tbuf_free(&m->pool);
    free(m->rows);
    free(m->slots);
    free(m);
}

const char *codemap_name(const codemap *m)
{
    return m->name;
}

size_t codemap_size(const codemap *m)
{
    return m->nrows;
}

codemap_unmapped codemap_policy(const codemap *m)
{
    return m->opt.unmapped;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

/* Appends the key form of s[0..len) to out. */
static void normalize(codemap_match match, const char *s, size_t len, tbuf *out)
{
    if (match == CODEMAP_MATCH_EXACT) {
        tbuf_put(out, s, len);
        return;
    }
    bool pending_space = false;
    size_t start = out->len;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (is_space(c)) {
            pending_space = out->len > start;
            continue;
        }
        if (pending_space) tbuf_putc(out, ' ');
        pending_space = false;
        tbuf_putc(out, (char)tolower((unsigned char)c));
    }
}


static const char *pool_str(const codemap *m, uint32_t off)
{
    return off ? m->pool.p + off : NULL;
}

static bool pool_too_big(const codemap *m, size_t more)
{
    return m->pool.len + more + 1 > UINT32_MAX;
}

static uint32_t pool_add(codemap *m, const char *s)
{
    if (!s || !*s) return 0;
    uint32_t off = (uint32_t)m->pool.len;
    tbuf_put(&m->pool, s, strlen(s) + 1);
    return off;
}

static void table_grow(codemap *m)
{
    size_t n = m->nslots * 2;
    uint32_t *slots = xcalloc(n, sizeof(*slots));
    for (size_t r = 0; r < m->nrows; r++) {
        size_t i = m->rows[r].hash & (n - 1);
        while (slots[i])
            i = (i + 1) & (n - 1);
        slots[i] = (uint32_t)r + 1;
    }
    free(m->slots);
    m->slots = slots;
    m->nslots = n;
}

/* Whether the row system a (NULL: none) is sys[0..slen) (NULL: none). */
static bool same_system(const char *a, const char *sys, size_t slen)
{
    return a && sys && strncmp(a, sys, slen) == 0 && a[slen] == '\0';
}

/* Walks the rows whose normalised code equals key[0..klen). Returns the best
 * row for system[0..slen) (see codemap_lookup) or NULL; with exact_system,
 * only a row whose system is exactly that one (NULL: a row without one). */
static const codemap_row *find_row(const codemap *m, uint64_t h, const char *key, size_t klen,
                                   const char *system, size_t slen, bool exact_system)
{
    const codemap_row *fallback = NULL;
    for (size_t i = h & (m->nslots - 1); m->slots[i]; i = (i + 1) & (m->nslots - 1)) {
        const codemap_row *r = &m->rows[m->slots[i] - 1];
        if (r->hash != h) continue;
        const char *code = m->pool.p + r->source_code;
        if (r->code_len != klen || memcmp(code, key, klen)) continue;
        const char *rs = pool_str(m, r->source_system);
        if (exact_system) {
            if ((!rs && !system) || same_system(rs, system, slen)) return r;
            continue;
        }
        if (!system || same_system(rs, system, slen)) return r;
        if (!rs && !fallback) fallback = r;
        if (!r->shared) break; /* the only row of this code */
    }
    return fallback;
}

/* Marks the rows of code key[0..klen) as shared (one more is being added). */
static void mark_shared(codemap *m, uint64_t h, const char *key, size_t klen)
{
    for (size_t i = h & (m->nslots - 1); m->slots[i]; i = (i + 1) & (m->nslots - 1)) {
        codemap_row *r = &m->rows[m->slots[i] - 1];
        if (r->hash == h && r->code_len == klen && !memcmp(m->pool.p + r->source_code, key, klen))
            r->shared = 1;
    }
}

static codemap_status add_row(codemap *m, const char *ssys, const char *scode, const char *tsys,
                              const char *tcode, const char *display, uint32_t line,
                              codemap_error *err)
{
    if (!scode || !*scode) return fail(err, CODEMAP_ERR_FORMAT, line, 0, "empty source code");
    if (!tcode || !*tcode)
        return fail(err, CODEMAP_ERR_FORMAT, line, 0, "empty target code for source code '%s'",
                    scode);
    if (ssys && !*ssys) ssys = NULL;
    tbuf key = TBUF_INIT;
    normalize(m->opt.match, scode, strlen(scode), &key);
    codemap_status st = CODEMAP_OK;
    if (key.len == 0) {
        st = fail(err, CODEMAP_ERR_FORMAT, line, 0, "source code '%s' is blank", scode);
        goto done;
    }
    uint64_t h = bytes_hash(key.p, key.len);
    const codemap_row *dup = find_row(m, h, key.p, key.len, ssys, ssys ? strlen(ssys) : 0, true);
    if (dup) {
        if (dup->line)
            st = fail(err, CODEMAP_ERR_DUPLICATE, line, 0,
                      "source code '%s'%s%s is already mapped (line %u)", scode,
                      ssys ? " in system " : "", ssys ? ssys : "", dup->line);
        else
            st = fail(err, CODEMAP_ERR_DUPLICATE, line, 0, "source code '%s'%s%s is already mapped",
                      scode, ssys ? " in system " : "", ssys ? ssys : "");
        goto done;
    }
    size_t more = key.len + strlen(tcode) + (ssys ? strlen(ssys) : 0) + (tsys ? strlen(tsys) : 0) +
                  (display ? strlen(display) : 0) + 5;
    if (pool_too_big(m, more) || m->nrows >= UINT32_MAX - 1) {
        st = fail(err, CODEMAP_ERR_FORMAT, line, 0, "the map is too large (4 GiB of text)");
        goto done;
    }
    if ((m->nrows + 1) * 2 > m->nslots) table_grow(m);
    m->rows = xgrow(m->rows, &m->rowcap, m->nrows + 1, sizeof(*m->rows));
    bool shared = find_row(m, h, key.p, key.len, NULL, 0, false) != NULL;
    if (shared) mark_shared(m, h, key.p, key.len);
    codemap_row *r = &m->rows[m->nrows];
    r->shared = shared;
    r->hash = h;
    r->source_code = pool_add(m, tbuf_cstr(&key));
    r->code_len = (uint32_t)key.len;
    r->source_system = pool_add(m, ssys);
    r->target_system = pool_add(m, tsys);
    r->target_code = pool_add(m, tcode);
    r->display = pool_add(m, display);
    r->line = line;
    size_t i = h & (m->nslots - 1);
    while (m->slots[i])
        i = (i + 1) & (m->nslots - 1);
    m->slots[i] = (uint32_t)m->nrows + 1;
    m->nrows++;
done:
    tbuf_free(&key);
    return st;
}

codemap_status codemap_add(codemap *m, const char *source_system, const char *source_code,
                           const char *target_system, const char *target_code, const char *display,
                           codemap_error *err)
{
    return add_row(m, source_system, source_code, target_system, target_code, display, 0, err);
}

/* normalize() into a fixed buffer; returns the length, or SIZE_MAX when
 * it does not fit (the caller then uses a tbuf). */
static size_t normalize_small(codemap_match match, const char *s, size_t len, char *buf, size_t cap)
{
    size_t n = 0;
    bool pending_space = false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (is_space(c)) {
            pending_space = n > 0;
            continue;
        }
        if (n + 2 > cap) return SIZE_MAX;
        if (pending_space) buf[n++] = ' ';
        pending_space = false;
        buf[n++] = match == CODEMAP_MATCH_CASELESS ? (char)tolower((unsigned char)c) : c;
    }
    return n;
}

bool codemap_lookup(const codemap *m, const char *source_system, const char *code, size_t len,
                    codemap_result *out)
{
    return codemap_lookup_span(m, source_system, source_system ? strlen(source_system) : 0, code,
                               len, out);
}

/* The row for a caseless map: the code normalised first. */
static __attribute__((noinline)) const codemap_row *
find_normalized(const codemap *m, const char *system, size_t slen, const char *code, size_t len)
{
    char small[256];
    tbuf heap = TBUF_INIT;
    const char *key = small;
    size_t klen = normalize_small(m->opt.match, code, len, small, sizeof(small));
    if (klen == SIZE_MAX) {
        normalize(m->opt.match, code, len, &heap);
        key = heap.p ? heap.p : "";
        klen = heap.len;
    }
    const codemap_row *r = find_row(m, bytes_hash(key, klen), key, klen, system, slen, false);
    tbuf_free(&heap);
    return r;
}

bool codemap_lookup_span(const codemap *m, const char *source_system, size_t system_len,
                         const char *code, size_t len, codemap_result *out)
{
    if (!system_len) source_system = NULL;
    const codemap_row *r =
        m->opt.match == CODEMAP_MATCH_EXACT
            ? find_row(m, bytes_hash(code, len), code, len, source_system, system_len, false)
            : find_normalized(m, source_system, system_len, code, len);
    out->unmapped = m->opt.unmapped;
    out->found = r != NULL;
    out->row = r ? (uint32_t)(r - m->rows) : 0;
    out->target_system = r ? pool_str(m, r->target_system) : NULL;
    out->target_code = r ? pool_str(m, r->target_code) : NULL;
    out->target_display = r ? pool_str(m, r->display) : NULL;
    return out->found;
}

/* --- files ----------------------------------------------------------------- */

static codemap_status read_file(const char *path, tbuf *out, codemap_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) return fail(err, CODEMAP_ERR_IO, 0, 0, "%s: cannot open: %s", path, strerror(errno));
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        tbuf_put(out, chunk, n);
    bool bad = ferror(f);
    fclose(f);
    if (bad) return fail(err, CODEMAP_ERR_IO, 0, 0, "%s: read error", path);
    return CODEMAP_OK;
}

/* --- CSV ------------------------------------------------------------------- */

#define CSV_MAX_FIELDS 64

typedef struct csv_reader {
    const char *p, *end;
    const char *line_start;
    uint32_t line;
    const char *origin;
    tbuf text;                  /* the fields of the current record, NUL-separated */
    size_t off[CSV_MAX_FIELDS]; /* start of each field in text */
    size_t nf;
    uint32_t rec_line;
} csv_reader;

static uint32_t csv_col(const csv_reader *r)
{
    return (uint32_t)(r->p - r->line_start) + 1;
}

static void csv_newline(csv_reader *r)
{
    r->line++;
    r->line_start = r->p;
}

/* Reads one quoted field (r->p at the opening quote) into r->text. */
static codemap_status csv_quoted(csv_reader *r, codemap_error *err)
{
    uint32_t qline = r->line, qcol = csv_col(r);
    r->p++;
    for (;;) {
        if (r->p >= r->end)
            return fail(err, CODEMAP_ERR_FORMAT, qline, qcol,
                        "%s:%u:%u: quoted field is never closed (a \" is missing)", r->origin,
                        qline, qcol);
        char c = *r->p++;
        if (c == '"') {
            if (r->p < r->end && *r->p == '"') {
                tbuf_putc(&r->text, '"');
                r->p++;
                continue;
            }
            break;
        }
        tbuf_putc(&r->text, c);
        if (c == '\n') csv_newline(r);
    }
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t'))
        r->p++;
    if (r->p < r->end && *r->p != ',' && *r->p != '\r' && *r->p != '\n')
        return fail(err, CODEMAP_ERR_FORMAT, r->line, csv_col(r),
                    "%s:%u:%u: unexpected '%c' after a closing quote (write \"\" for a quote "
                    "inside a quoted field)",
                    r->origin, r->line, csv_col(r), *r->p);
    return CODEMAP_OK;
}

static void csv_unquoted(csv_reader *r)
{
    size_t start = r->text.len;
    while (r->p < r->end && *r->p != ',' && *r->p != '\r' && *r->p != '\n')
        tbuf_putc(&r->text, *r->p++);
    while (r->text.len > start &&
           (r->text.p[r->text.len - 1] == ' ' || r->text.p[r->text.len - 1] == '\t'))
        r->text.len--;
    if (r->text.p) r->text.p[r->text.len] = '\0';
}

/* Reads the next non-blank record. *got is false at the end of input. */
static codemap_status csv_record(csv_reader *r, bool *got, codemap_error *err)
{
    for (;;) {
        *got = false;
        if (r->p >= r->end) return CODEMAP_OK;
        tbuf_reset(&r->text);
        r->nf = 0;
        r->rec_line = r->line;
        bool quoted_any = false;
        for (;;) {
            if (r->nf == CSV_MAX_FIELDS)
                return fail(err, CODEMAP_ERR_FORMAT, r->line, csv_col(r),
                            "%s:%u: more than %d fields in a row", r->origin, r->line,
                            CSV_MAX_FIELDS);
            r->off[r->nf++] = r->text.len;
            while (r->p < r->end && (*r->p == ' ' || *r->p == '\t'))
                r->p++;
            if (r->p < r->end && *r->p == '"') {
                quoted_any = true;
                codemap_status st = csv_quoted(r, err);
                if (st != CODEMAP_OK) return st;
            } else {
                csv_unquoted(r);
            }
            tbuf_putc(&r->text, '\0');
            if (r->p < r->end && *r->p == ',') {
                r->p++;
                continue;
            }
            break;
        }
        if (r->p < r->end && *r->p == '\r') r->p++;
        if (r->p < r->end && *r->p == '\n') r->p++;
        csv_newline(r);
        if (r->nf == 1 && !quoted_any && r->text.p[0] == '\0') continue; /* blank line */
        *got = true;
        return CODEMAP_OK;
    }
}

static const char *csv_field(const csv_reader *r, int col)
{
    return col >= 0 ? r->text.p + r->off[col] : NULL;
}

enum { COL_SSYS, COL_SCODE, COL_TSYS, COL_TCODE, COL_DISPLAY, NCOLS };

static codemap_status csv_header(csv_reader *r, int cols[NCOLS], codemap_error *err)
{
    static const char *names[NCOLS] = {"source_system", "source_code", "target_system",
                                       "target_code", "target_display"};
    bool got;
    codemap_status st = csv_record(r, &got, err);
    if (st != CODEMAP_OK) return st;
    if (!got)
        return fail(err, CODEMAP_ERR_FORMAT, 1, 0,
                    "%s: empty file; the first line must name the columns "
                    "(source_code,target_code,...)",
                    r->origin);
    for (int c = 0; c < NCOLS; c++)
        cols[c] = -1;
    for (size_t f = 0; f < r->nf; f++) {
        const char *h = csv_field(r, (int)f);
        for (int c = 0; c < NCOLS; c++) {
            if (strcasecmp(h, names[c])) continue;
            if (cols[c] >= 0)
                return fail(err, CODEMAP_ERR_FORMAT, r->rec_line, 0,
                            "%s:%u: column '%s' is named twice in the header", r->origin,
                            r->rec_line, names[c]);
            cols[c] = (int)f;
        }
    }
    if (cols[COL_SCODE] < 0 || cols[COL_TCODE] < 0)
        return fail(err, CODEMAP_ERR_FORMAT, r->rec_line, 0,
                    "%s:%u: the header must name the columns source_code and target_code "
                    "(optional: source_system, target_system, target_display)",
                    r->origin, r->rec_line);
    return CODEMAP_OK;
}

codemap_status codemap_parse_csv(const char *text, size_t len, const char *origin, const char *name,
                                 const codemap_options *opt, codemap **out, codemap_error *err)
{
    *out = NULL;
    csv_reader r = {.p = text,
                    .end = text + len,
                    .line_start = text,
                    .line = 1,
                    .origin = origin ? origin : "(csv)"};
    if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3)) r.p += 3, r.line_start += 3;
    int cols[NCOLS];
    codemap *m = codemap_new(name, opt);
    codemap_status st = csv_header(&r, cols, err);
    if (st != CODEMAP_OK) goto done;
    size_t want = r.nf;
    for (;;) {
        bool got;
        st = csv_record(&r, &got, err);
        if (st != CODEMAP_OK || !got) break;
        if (r.nf != want) {
            st = fail(err, CODEMAP_ERR_FORMAT, r.rec_line, 0,
                      "%s:%u: %zu fields, but the header names %zu columns", r.origin, r.rec_line,
                      r.nf, want);
            break;
        }
        st = add_row(m, csv_field(&r, cols[COL_SSYS]), csv_field(&r, cols[COL_SCODE]),
                     csv_field(&r, cols[COL_TSYS]), csv_field(&r, cols[COL_TCODE]),
                     csv_field(&r, cols[COL_DISPLAY]), r.rec_line, err);
        if (st != CODEMAP_OK) {
            /* add_row says what; prefix where */
            if (err) {
                char what[sizeof(err->text)];
                snprintf(what, sizeof(what), "%s", err->text);
                fail(err, st, r.rec_line, 0, "%s:%u: %s", r.origin, r.rec_line, what);
            }
            break;
        }
    }
done:
    tbuf_free(&r.text);
    if (st != CODEMAP_OK)
        codemap_free(m);
    else
        *out = m;
    return st;
}

codemap_status codemap_load_csv(const char *path, const char *name, const codemap_options *opt,
                                codemap **out, codemap_error *err)
{
    *out = NULL;
    tbuf text = TBUF_INIT;
    codemap_status st = read_file(path, &text, err);
    if (st == CODEMAP_OK)
        st = codemap_parse_csv(text.p ? text.p : "", text.len, path, name, opt, out, err);
    tbuf_free(&text);
    return st;
}

/* --- FHIR ConceptMap ------------------------------------------------------- */

/* Optional string member: NULL when absent, error when not a string. */
static codemap_status json_str(json_t *obj, const char *key, const char **out, const char *where,
                               const char *origin, codemap_error *err)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v || json_is_null(v)) return CODEMAP_OK;
    if (!json_is_string(v))
        return fail(err, CODEMAP_ERR_FORMAT, 0, 0, "%s: %s.%s must be a string", origin, where,
                    key);
    *out = json_string_value(v);
    return CODEMAP_OK;
}

static bool target_usable(const char *equivalence, const char *relationship)
{
    if (equivalence && (!strcmp(equivalence, "unmatched") || !strcmp(equivalence, "disjoint")))
        return false;
    if (relationship && !strcmp(relationship, "not-related-to")) return false;
    return true;
}

static codemap_status cm_element(codemap *m, json_t *el, const char *ssys, const char *tsys,
                                 const char *where, const char *origin, codemap_error *err)
{
    if (!json_is_object(el))
        return fail(err, CODEMAP_ERR_FORMAT, 0, 0, "%s: %s must be an object", origin, where);
    const char *code;
    codemap_status st = json_str(el, "code", &code, where, origin, err);
    if (st != CODEMAP_OK) return st;
    if (!code || !*code)
        return fail(err, CODEMAP_ERR_FORMAT, 0, 0, "%s: %s has no code", origin, where);
    json_t *targets = json_object_get(el, "target");
    if (!targets) return CODEMAP_OK; /* listed but unmapped */
    if (!json_is_array(targets))
        return fail(err, CODEMAP_ERR_FORMAT, 0, 0, "%s: %s.target must be an array", origin, where);
    size_t i;
    json_t *t;
    json_array_foreach(targets, i, t)
    {
        char tw[160];
        snprintf(tw, sizeof(tw), "%s.target[%zu]", where, i);
        if (!json_is_object(t))
            return fail(err, CODEMAP_ERR_FORMAT, 0, 0, "%s: %s must be an object", origin, tw);
        const char *tcode, *display, *equiv, *rel;
        if ((st = json_str(t, "code", &tcode, tw, origin, err)) != CODEMAP_OK ||
            (st = json_str(t, "display", &display, tw, origin, err)) != CODEMAP_OK ||
            (st = json_str(t, "equivalence", &equiv, tw, origin, err)) != CODEMAP_OK ||
            (st = json_str(t, "relationship", &rel, tw, origin, err)) != CODEMAP_OK)
            return st;
        if (!target_usable(equiv, rel) || !tcode || !*tcode) continue;
        st = add_row(m, ssys, code, tsys, tcode, display, 0, err);
        if (st != CODEMAP_OK && err) {
            char what[sizeof(err->text)];
            snprintf(what, sizeof(what), "%s", err->text);
            fail(err, st, 0, 0, "%s: %s: %s", origin, where, what);
        }
        return st; /* the first usable target wins */
    }
    return CODEMAP_OK;
}

static codemap_status cm_group(codemap *m, json_t *g, size_t gi, const char *origin,
                               codemap_error *err)
{
    char where[96];
    snprintf(where, sizeof(where), "group[%zu]", gi);
    if (!json_is_object(g))
        return fail(err, CODEMAP_ERR_FORMAT, 0, 0, "%s: %s must be an object", origin, where);
    const char *ssys, *tsys;
    codemap_status st;
    if ((st = json_str(g, "source", &ssys, where, origin, err)) != CODEMAP_OK ||
        (st = json_str(g, "target", &tsys, where, origin, err)) != CODEMAP_OK)
        return st;
    json_t *els = json_object_get(g, "element");
    if (!json_is_array(els))
        return fail(err, CODEMAP_ERR_FORMAT, 0, 0, "%s: %s.element must be an array", origin,
                    where);
    size_t i;
    json_t *el;
    json_array_foreach(els, i, el)
    {
        char ew[128];
        snprintf(ew, sizeof(ew), "%s.element[%zu]", where, i);
        if ((st = cm_element(m, el, ssys, tsys, ew, origin, err)) != CODEMAP_OK) return st;
    }
    return CODEMAP_OK;
}

codemap_status codemap_parse_conceptmap(const char *text, size_t len, const char *origin,
                                        const char *name, const codemap_options *opt, codemap **out,
                                        codemap_error *err)
{
    *out = NULL;
    origin = origin ? origin : "(json)";
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return fail(err, CODEMAP_ERR_FORMAT, (uint32_t)(jerr.line > 0 ? jerr.line : 0),
                    (uint32_t)(jerr.column > 0 ? jerr.column : 0), "%s:%d:%d: invalid JSON: %s",
                    origin, jerr.line, jerr.column, jerr.text);
    codemap *m = codemap_new(name, opt);
    codemap_status st = CODEMAP_OK;
    json_t *rt = json_object_get(root, "resourceType");
    if (!json_is_string(rt) || strcmp(json_string_value(rt), "ConceptMap")) {
        st = fail(err, CODEMAP_ERR_FORMAT, 0, 0,
                  "%s: not a FHIR ConceptMap (resourceType must be \"ConceptMap\")", origin);
        goto done;
    }
    json_t *groups = json_object_get(root, "group");
    if (!json_is_array(groups)) {
        st = fail(err, CODEMAP_ERR_FORMAT, 0, 0, "%s: the ConceptMap has no group array", origin);
        goto done;
    }
    size_t gi;
    json_t *g;
    json_array_foreach(groups, gi, g)
    {
        if ((st = cm_group(m, g, gi, origin, err)) != CODEMAP_OK) break;
    }
done:
    json_decref(root);
    if (st != CODEMAP_OK)
        codemap_free(m);
    else
        *out = m;
    return st;
}

codemap_status codemap_load_conceptmap(const char *path, const char *name,
                                       const codemap_options *opt, codemap **out,
                                       codemap_error *err)
{
    *out = NULL;
    tbuf text = TBUF_INIT;
    codemap_status st = read_file(path, &text, err);
    if (st == CODEMAP_OK)
        st = codemap_parse_conceptmap(text.p ? text.p : "", text.len, path, name, opt, out, err);
    tbuf_free(&text);
    return st;
}

codemap_status codemap_load_file(const char *path, const char *name, const codemap_options *opt,
                                 codemap **out, codemap_error *err)
{
    size_t n = strlen(path);
    if (n >= 5 && !strcasecmp(path + n - 5, ".json"))
        return codemap_load_conceptmap(path, name, opt, out, err);
    return codemap_load_csv(path, name, opt, out, err);
}

/* --- registry -------------------------------------------------------------- */

codemap_registry *codemap_registry_new(void)
{
    return xcalloc(1, sizeof(codemap_registry));
}

void codemap_registry_free(codemap_registry *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->n; i++)
        codemap_free(r->maps[i]);
    free(r->maps);
    free(r);
}

codemap_status codemap_registry_add(codemap_registry *r, codemap *m, codemap_error *err)
{
    if (codemap_registry_get(r, m->name))
        return fail(err, CODEMAP_ERR_DUPLICATE, 0, 0, "a code map named '%s' is already loaded",
                    m->name);
    r->maps = xgrow(r->maps, &r->cap, r->n + 1, sizeof(*r->maps));
    r->maps[r->n++] = m;
    return CODEMAP_OK;
}

const codemap *codemap_registry_get(const codemap_registry *r, const char *name)
{
    for (size_t i = 0; i < r->n; i++)
        if (!strcmp(r->maps[i]->name, name)) return r->maps[i];
    return NULL;
}

size_t codemap_registry_count(const codemap_registry *r)
{
    return r->n;
}
