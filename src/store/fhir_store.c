/*
 * fhir_store: the front of the FHIR resource store (see fhir_store.h).
 *
 * A write is: read the current version facts, check If-Match, stamp id and
 * meta into the JSON tree, serialize it once (compact), extract its search
 * index rows, and hand text plus rows to the backend. A write outside a
 * caller's transaction is wrapped in one of its own, so the version read
 * and the version written cannot interleave with another writer.
 *
 * With a keyring (fhir_store_set_keys) the front also seals what the
 * backend stores and opens what it returns, and turns token and string
 * index values, and the searches for them, into keyed hashes; backends
 * never see PHI in clear (see fhir_store.h).
 */
#include "store/fhir_store.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/mem.h"
#include "sec/keys.h"

const char *fhir_store_strerror(fhir_store_status s)
{
    switch (s) {
    case FHIR_STORE_OK: return "ok";
    case FHIR_STORE_ERR_ARG: return "invalid argument";
    case FHIR_STORE_ERR_UNSUPPORTED: return "unsupported backend";
    case FHIR_STORE_ERR_IO: return "input/output error";
    case FHIR_STORE_ERR_BUSY: return "store busy";
    case FHIR_STORE_ERR_FULL: return "disk full";
    case FHIR_STORE_ERR_CORRUPT: return "store damaged";
    case FHIR_STORE_ERR_NOT_FOUND: return "not found";
    case FHIR_STORE_ERR_GONE: return "deleted";
    case FHIR_STORE_ERR_CONFLICT: return "version conflict";
    case FHIR_STORE_ERR_INVALID: return "invalid resource";
    case FHIR_STORE_ERR_BACKEND: return "backend error";
    }
    return "unknown error";
}

fhir_store_status fhir_store_fail(fhir_store_error *err, fhir_store_status code, const char *fmt,
                                  ...)
{
    if (!err) return code;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->text, sizeof err->text, fmt, ap);
    va_end(ap);
    return code;
}

static void clear(fhir_store_error *err)
{
    if (err) {
        err->code = FHIR_STORE_OK;
        err->text[0] = '\0';
    }
}

fhir_store_status fhir_store_open(const char *location, fhir_store **out, fhir_store_error *err)
{
    clear(err);
    *out = NULL;
    if (!location || !*location)
        return fhir_store_fail(err, FHIR_STORE_ERR_ARG, "no FHIR store location given (fhir.store)");
    if (!strncmp(location, "postgres://", 11) || !strncmp(location, "postgresql://", 13))
        return fhir_store_fail(err, FHIR_STORE_ERR_UNSUPPORTED,
                               "%s: the PostgreSQL FHIR store is not built yet; use a file path",
                               location);
    if (!strncmp(location, "sqlite:", 7)) location += 7;
    fhir_store_status st = fhir_store_sqlite_ops.open(location, out, err);
    if (st == FHIR_STORE_OK) (*out)->in_tx = false;
    return st;
}

void fhir_store_close(fhir_store *s)
{
    if (s) s->ops->close(s);
}

void fhir_store_set_keys(fhir_store *s, struct keyring *keys)
{
    s->keys = keys;
}

/* --- encryption at rest ------------------------------------------------------ */

#define SEAL_CTX "fhir"

/* Dates are indexed to the year only (a year alone does not identify
 * anyone); searches fetch the candidates of the years and keep those whose
 * exact dates, read from the decrypted resource, match (date_filter). */
static int64_t year_start(int64_t ms)
{
    time_t t = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    struct tm y = {.tm_year = tm.tm_year, .tm_mday = 1};
    return (int64_t)timegm(&y) * 1000;
}

static int64_t year_end(int64_t ms)
{
    time_t t = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    struct tm y = {.tm_year = tm.tm_year + 1, .tm_mday = 1};
    return (int64_t)timegm(&y) * 1000 - 1;
}

/* One date value against one index row's exact range, as the backend's
 * SQL compares them (fhir_store_sqlite.c match_sql). */
static bool date_matches(const fhir_match *m, int64_t lo, int64_t hi)
{
    switch (m->prefix) {
    case FHIR_PFX_EQ: return lo >= m->lo && hi <= m->hi;
    case FHIR_PFX_NE: return !(lo >= m->lo && hi <= m->hi);
    case FHIR_PFX_LT: return lo < m->lo;
    case FHIR_PFX_GT: return hi > m->hi;
    case FHIR_PFX_LE: return lo <= m->hi;
    case FHIR_PFX_GE: return hi >= m->lo;
    case FHIR_PFX_SA: return lo > m->hi;
    case FHIR_PFX_EB: return hi < m->lo;
    }
    return false;
}

static char *token_of(keyring *k, const char *domain, const char *v)
{
    char tok[KEYS_TOKEN_LEN + 1];
    keys_token(k, domain, v, tok);
    return xstrdup(tok);
}

/* The index rows as stored: token values and systems, and strings, as
 * keyed hashes (a string gets one row per prefix and one for the whole
 * value). */
static void seal_rows(keyring *k, const char *type, const fhir_index_rows *in,
                      fhir_index_rows *out)
{
    for (size_t i = 0; i < in->n; i++) {
        const fhir_index_row *r = &in->v[i];
        const fhir_param_def *d = fhir_param_find(type, r->param);
        fhir_param_kind kind = d ? d->kind : FHIR_PARAM_REFERENCE;
        out->v = xgrow(out->v, &out->cap, out->n + 1 + (r->value ? strlen(r->value) : 0) + 1,
                       sizeof *out->v);
        fhir_index_row c = {r->param, NULL, NULL, r->lo, r->hi};
        if (kind == FHIR_PARAM_TOKEN) {
            c.sys = r->sys ? token_of(k, "fhir-system", r->sys) : NULL;
            c.value = r->value ? token_of(k, "fhir-code", r->value) : NULL;
            out->v[out->n++] = c;
        } else if (kind == FHIR_PARAM_STRING && r->value) {
            size_t n = strlen(r->value), max = n < FHIR_SEAL_PREFIX_MAX ? n : FHIR_SEAL_PREFIX_MAX;
            char buf[FHIR_SEAL_PREFIX_MAX + 1];
            for (size_t len = 1; len <= max; len++) {
                memcpy(buf, r->value, len);
                buf[len] = '\0';
                out->v[out->n++] = (fhir_index_row){r->param, NULL, token_of(k, "fhir-prefix", buf), 0, 0};
            }
            out->v[out->n++] = (fhir_index_row){r->param, NULL, token_of(k, "fhir-exact", r->value), 0, 0};
        } else if (kind == FHIR_PARAM_DATE) {
            c.lo = year_start(r->lo);
            c.hi = year_end(r->hi);
            out->v[out->n++] = c;
        } else {
            c.sys = r->sys ? xstrdup(r->sys) : NULL;
            c.value = r->value ? xstrdup(r->value) : NULL;
            out->v[out->n++] = c;
        }
    }
}

/* Appends the plaintext of stored bytes (sealed or not) to out. */
static fhir_store_status open_json(fhir_store *s, const char *p, size_t n, tbuf *out,
                                   fhir_store_error *err)
{
    if (!keys_is_sealed(p, n)) {
        tbuf_put(out, p, n);
        return FHIR_STORE_OK;
    }
    if (!s->keys)
        return fhir_store_fail(err, FHIR_STORE_ERR_CORRUPT,
                               "the resource is encrypted at rest and no master key is configured "
                               "(TERN_MASTER_KEY or encryption.key_file)");
    tbuf why = TBUF_INIT;
    fhir_store_status st = FHIR_STORE_OK;
    if (keys_open_sealed(s->keys, SEAL_CTX, p, n, out, &why) != 0)
        st = fhir_store_fail(err, FHIR_STORE_ERR_CORRUPT, "%s", why.p);
    tbuf_free(&why);
    return st;
}

/* Row callbacks see plaintext. */
typedef struct open_ctx {
    fhir_store *s;
    fhir_store_row_fn fn;
    void *ctx;
    tbuf plain;
    fhir_store_status st;
    fhir_store_error *err;
} open_ctx;

static int open_row(void *arg, int64_t seq, const char *type, const char *id,
                    const fhir_version *v, const char *json, size_t len)
{
    open_ctx *o = arg;
    if (!json || !keys_is_sealed(json, len)) return o->fn(o->ctx, seq, type, id, v, json, len);
    tbuf_reset(&o->plain);
    o->st = open_json(o->s, json, len, &o->plain, o->err);
    if (o->st != FHIR_STORE_OK) return 1;
    return o->fn(o->ctx, seq, type, id, v, o->plain.p, o->plain.len);
}

/* The search as the index holds it: token and string values as keyed
 * hashes, matched by equality. *owned collects what to free. */
static void seal_query(keyring *k, const fhir_query *in, fhir_query *out, fhir_cond **conds,
                       fhir_match **matches, char ***owned, size_t *nowned)
{
    *out = *in;
    size_t total = 0;
    for (size_t i = 0; i < in->nconds; i++) total += in->conds[i].n;
    *conds = xcalloc(2 * in->nconds + 1, sizeof **conds);
    *matches = xcalloc(total + in->nconds + 1, sizeof **matches);
    *owned = xcalloc(2 * total + 1, sizeof **owned);
    *nowned = 0;
    size_t at = 0, nc = 0;
    for (size_t i = 0; i < in->nconds; i++) {
        const fhir_cond *c = &in->conds[i];
        if (c->kind == FHIR_PARAM_DATE) {
            /* a condition that every exact match also meets on the years */
            if (c->n != 1 || c->m[0].prefix == FHIR_PFX_NE) continue;
            fhir_match m = c->m[0];
            fhir_cond *oc = &(*conds)[nc++];
            *oc = *c;
            oc->m = &(*matches)[at];
            if (m.prefix == FHIR_PFX_EQ) { /* overlap: hi >= lo' and lo <= hi' */
                m.prefix = FHIR_PFX_GE;
                (*matches)[at++] = m;
                fhir_cond *oc2 = &(*conds)[nc++];
                *oc2 = *c;
                oc2->m = &(*matches)[at];
                m.prefix = FHIR_PFX_LE;
            } else if (m.prefix == FHIR_PFX_SA) {
                m.prefix = FHIR_PFX_GT;
            } else if (m.prefix == FHIR_PFX_EB) {
                m.prefix = FHIR_PFX_LT;
            }
            (*matches)[at++] = m;
            continue;
        }
        fhir_cond *oc = &(*conds)[nc++];
        *oc = *c;
        oc->m = &(*matches)[at];
        bool special = c->param[0] == '_';
        for (size_t j = 0; j < c->n; j++, at++) {
            fhir_match m = c->m[j];
            if (!special && c->kind == FHIR_PARAM_TOKEN) {
                if (m.code) m.code = (*owned)[(*nowned)++] = token_of(k, "fhir-code", m.code);
                if (m.sys && *m.sys) m.sys = (*owned)[(*nowned)++] = token_of(k, "fhir-system", m.sys);
            } else if (!special && c->kind == FHIR_PARAM_STRING && m.code) {
                char buf[FHIR_SEAL_PREFIX_MAX + 1];
                snprintf(buf, sizeof buf, "%s", m.code);
                m.code = (*owned)[(*nowned)++] =
                    token_of(k, m.exact ? "fhir-exact" : "fhir-prefix", m.exact ? m.code : buf);
                m.exact = true;
            }
            (*matches)[at] = m;
        }
    }
    out->conds = *conds;
    out->nconds = nc;
}

/* Search with exact date filtering: candidates come from the coarse index;
 * each is decrypted, its date index rows extracted again and every date
 * condition of the query checked exactly. Pages are refilled from the next
 * candidates until count resources pass, so the caller sees full pages. */
typedef struct date_ctx {
    open_ctx *o;
    const fhir_query *q; /* the caller's query */
    size_t delivered;
    int64_t last_seq;
    bool stopped;
} date_ctx;

static bool exact_dates(const fhir_query *q, const char *type, const char *json, size_t len)
{
    json_t *res = json_loadb(json, len, 0, NULL);
    fhir_index_rows rows = {0};
    tbuf why = TBUF_INIT;
    bool ok = res && fhir_index_extract(res, type, &rows, &why) == 0;
    for (size_t i = 0; ok && i < q->nconds; i++) {
        const fhir_cond *c = &q->conds[i];
        if (c->kind != FHIR_PARAM_DATE) continue;
        bool any = false;
        for (size_t r = 0; r < rows.n && !any; r++) {
            if (strcmp(rows.v[r].param, c->param)) continue;
            for (size_t k = 0; k < c->n && !any; k++)
                any = date_matches(&c->m[k], rows.v[r].lo, rows.v[r].hi);
        }
        ok = any;
    }
    fhir_index_rows_free(&rows);
    tbuf_free(&why);
    json_decref(res);
    return ok;
}

static int date_row(void *arg, int64_t seq, const char *type, const char *id,
                    const fhir_version *v, const char *json, size_t len)
{
    date_ctx *d = arg;
    open_ctx *o = d->o;
    d->last_seq = seq;
    if (d->delivered == d->q->count) {
        d->stopped = true; /* one more candidate: there may be another page */
        return 1;
    }
    if (!json) return 0;
    tbuf_reset(&o->plain);
    o->st = open_json(o->s, json, len, &o->plain, o->err);
    if (o->st != FHIR_STORE_OK) return 1;
    if (!exact_dates(d->q, type, o->plain.p, o->plain.len)) return 0;
    d->delivered++;
    return o->fn(o->ctx, seq, type, id, v, o->plain.p, o->plain.len) ? (d->stopped = true, 1) : 0;
}

static bool has_dates(const fhir_query *q)
{
    for (size_t i = 0; i < q->nconds; i++)
        if (q->conds[i].kind == FHIR_PARAM_DATE) return true;
    return false;
}

static fhir_store_status search_dates(fhir_store *s, const fhir_query *q, fhir_query *sq,
                                      open_ctx *o, bool *more, fhir_store_error *err)
{
    date_ctx d = {o, q, 0, q->after_seq, false};
    for (;;) {
        sq->after_seq = d.last_seq;
        sq->count = q->count - d.delivered + 1;
        bool page_more = false;
        int64_t before = d.last_seq;
        fhir_store_status st = s->ops->search(s, sq, date_row, &d, &page_more, err);
        if (st != FHIR_STORE_OK) return st;
        if (o->st != FHIR_STORE_OK) return o->st;
        if (d.stopped) {
            *more = true;
            return FHIR_STORE_OK;
        }
        if (!page_more || d.last_seq == before) {
            *more = false;
            return FHIR_STORE_OK;
        }
    }
}

fhir_store_status fhir_store_begin(fhir_store *s, fhir_store_error *err)
{
    clear(err);
    if (s->in_tx) return fhir_store_fail(err, FHIR_STORE_ERR_ARG, "a transaction is already open");
    fhir_store_status st = s->ops->begin(s, err);
    if (st == FHIR_STORE_OK) s->in_tx = true;
    return st;
}

fhir_store_status fhir_store_commit(fhir_store *s, fhir_store_error *err)
{
    clear(err);
    if (!s->in_tx) return fhir_store_fail(err, FHIR_STORE_ERR_ARG, "no transaction is open");
    fhir_store_status st = s->ops->commit(s, err);
    if (st != FHIR_STORE_OK) s->ops->rollback(s);
    s->in_tx = false;
    return st;
}

void fhir_store_rollback(fhir_store *s)
{
    if (!s->in_tx) return;
    s->ops->rollback(s);
    s->in_tx = false;
}

static bool type_ok(const char *type, fhir_store_error *err)
{
    if (type && fhir_type_known(type)) return true;
    fhir_store_fail(err, FHIR_STORE_ERR_ARG, "'%s' is not a resource type this server stores",
                    type ? type : "(none)");
    return false;
}

static bool id_ok(const char *id, fhir_store_error *err)
{
    if (id && fhir_id_valid(id)) return true;
    fhir_store_fail(err, FHIR_STORE_ERR_ARG,
                    "'%s' is not a valid FHIR id (1-64 letters, digits, '-' or '.')",
                    id ? id : "(none)");
    return false;
}

/* FHIR instant of ms since the epoch, UTC, with milliseconds. */
static void format_instant(int64_t ms, char out[32])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char base[24];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 32, "%s.%03dZ", base, (int)(ms % 1000));
}

static void stamp(json_t *res, const char *id, const fhir_version *v)
{
    json_object_set_new(res, "id", json_string(id));
    json_t *meta = json_object_get(res, "meta");
    if (!json_is_object(meta)) {
        meta = json_object();
        json_object_set_new(res, "meta", meta);
    }
    char num[24], when[32];
    snprintf(num, sizeof num, "%lld", (long long)v->version);
    format_instant(v->updated_ms, when);
    json_object_set_new(meta, "versionId", json_string(num));
    json_object_set_new(meta, "lastUpdated", json_string(when));
}

/* The next version of type/id: checks If-Match against the current one. */
static fhir_store_status next_version(fhir_store *s, const char *type, const char *id,
                                      int64_t if_match, int64_t now_ms, fhir_version *next,
                                      bool *created, fhir_store_error *err)
{
    fhir_version cur = {0};
    fhir_store_status st = s->ops->current(s, type, id, &cur, err);
    if (st == FHIR_STORE_ERR_NOT_FOUND) {
        clear(err);
        cur.version = 0;
        cur.deleted = true;
    } else if (st != FHIR_STORE_OK) {
        return st;
    }
    if (if_match > 0 && (cur.version != if_match || cur.deleted))
        return fhir_store_fail(err, FHIR_STORE_ERR_CONFLICT,
                               "%s/%s: If-Match asks for version %lld but the current version is "
                               "%lld%s; read it again and retry",
                               type, id, (long long)if_match, (long long)cur.version,
                               cur.deleted && cur.version ? " (deleted)" : "");
    next->version = cur.version + 1;
    next->updated_ms = now_ms;
    next->deleted = false;
    *created = cur.deleted;
    return FHIR_STORE_OK;
}

fhir_store_status fhir_store_put(fhir_store *s, const char *type, const char *id, json_t *res,
                                 int64_t if_match, int64_t now_ms, fhir_write_result *out,
                                 fhir_store_error *err)
{
    clear(err);
    assert(s && out);
    memset(out, 0, sizeof(*out));
    if (!type_ok(type, err)) return err ? err->code : FHIR_STORE_ERR_ARG;
    if (id && !id_ok(id, err)) return FHIR_STORE_ERR_ARG;
    if (!json_is_object(res))
        return fhir_store_fail(err, FHIR_STORE_ERR_ARG, "a resource must be a JSON object");
    const char *rt = json_string_value(json_object_get(res, "resourceType"));
    if (!rt || strcmp(rt, type))
        return fhir_store_fail(err, FHIR_STORE_ERR_ARG,
                               "the resource's resourceType is '%s', not '%s'", rt ? rt : "(none)",
                               type);
    if (id)
        snprintf(out->id, sizeof out->id, "%s", id);
    else
        fhir_new_id(out->id);

    fhir_index_rows rows = {0};
    tbuf why = TBUF_INIT;
    char *text = NULL;
    bool own_tx = !s->in_tx;
    fhir_store_status st = FHIR_STORE_OK;
    if (fhir_index_extract(res, type, &rows, &why) != 0) {
        st = fhir_store_fail(err, FHIR_STORE_ERR_INVALID, "%s", tbuf_cstr(&why));
        goto done;
    }
    if (own_tx && (st = fhir_store_begin(s, err)) != FHIR_STORE_OK) goto done;
    st = next_version(s, type, out->id, if_match, now_ms, &out->v, &out->created, err);
    if (st != FHIR_STORE_OK) goto done;
    stamp(res, out->id, &out->v);
    text = json_dumps(res, JSON_COMPACT);
    if (!text) {
        st = fhir_store_fail(err, FHIR_STORE_ERR_INVALID, "the resource cannot be serialized");
        goto done;
    }
    fhir_store_row row = {type, out->id, out->v, text, strlen(text), &rows};
    tbuf sealed = TBUF_INIT;
    fhir_index_rows srows = {0};
    if (s->keys) {
        if (keys_seal(s->keys, SEAL_CTX, text, row.len, &sealed, &why) != 0) {
            st = fhir_store_fail(err, FHIR_STORE_ERR_BACKEND, "%s", tbuf_cstr(&why));
            goto done;
        }
        seal_rows(s->keys, type, &rows, &srows);
        row.json = sealed.p;
        row.len = sealed.len;
        row.index = &srows;
    }
    st = s->ops->write(s, &row, err);
    tbuf_free(&sealed);
    fhir_index_rows_free(&srows);
    row.len = strlen(text);
    if (st == FHIR_STORE_OK && own_tx) st = fhir_store_commit(s, err);
    if (st == FHIR_STORE_OK) tbuf_put(&out->json, text, row.len);
done:
    if (st != FHIR_STORE_OK && own_tx) fhir_store_rollback(s);
    free(text);
    tbuf_free(&why);
    fhir_index_rows_free(&rows);
    return st;
}

fhir_store_status fhir_store_delete(fhir_store *s, const char *type, const char *id,
                                    int64_t if_match, int64_t now_ms, fhir_write_result *out,
                                    fhir_store_error *err)
{
    clear(err);
    assert(s && out);
    memset(out, 0, sizeof(*out));
    if (!type_ok(type, err)) return FHIR_STORE_ERR_ARG;
    if (!id_ok(id, err)) return FHIR_STORE_ERR_ARG;
    snprintf(out->id, sizeof out->id, "%s", id);
    bool own_tx = !s->in_tx;
    fhir_store_status st = FHIR_STORE_OK;
    if (own_tx && (st = fhir_store_begin(s, err)) != FHIR_STORE_OK) return st;
    fhir_version cur = {0};
    st = s->ops->current(s, type, id, &cur, err);
    if (st == FHIR_STORE_ERR_NOT_FOUND || (st == FHIR_STORE_OK && cur.deleted && !if_match)) {
        clear(err);
        st = FHIR_STORE_OK;
        goto done; /* nothing to delete: version 0 */
    }
    if (st != FHIR_STORE_OK) goto done;
    bool created;
    st = next_version(s, type, id, if_match, now_ms, &out->v, &created, err);
    if (st != FHIR_STORE_OK) goto done;
    out->v.deleted = true;
    fhir_index_rows none = {0};
    fhir_store_row row = {type, id, out->v, NULL, 0, &none};
    st = s->ops->write(s, &row, err);
    if (st == FHIR_STORE_OK && own_tx) st = fhir_store_commit(s, err);
done:
    if (own_tx) {
        if (st != FHIR_STORE_OK || s->in_tx) fhir_store_rollback(s);
    }
    return st;
}

fhir_store_status fhir_store_read(fhir_store *s, const char *type, const char *id, int64_t version,
                                  fhir_version *v, tbuf *json, fhir_store_error *err)
{
    clear(err);
    fhir_version tmp;
    if (!s->keys) return s->ops->read(s, type, id, version, v ? v : &tmp, json, err);
    tbuf raw = TBUF_INIT;
    fhir_store_status st = s->ops->read(s, type, id, version, v ? v : &tmp, &raw, err);
    if (st == FHIR_STORE_OK) st = open_json(s, raw.p ? raw.p : "", raw.len, json, err);
    tbuf_free(&raw);
    return st;
}

fhir_store_status fhir_store_history(fhir_store *s, const char *type, const char *id,
                                     size_t limit, fhir_store_row_fn fn, void *ctx,
                                     fhir_store_error *err)
{
    clear(err);
    open_ctx o = {s, fn, ctx, TBUF_INIT, FHIR_STORE_OK, err};
    fhir_store_status st = s->ops->history(s, type, id, limit, open_row, &o, err);
    tbuf_free(&o.plain);
    return st != FHIR_STORE_OK ? st : o.st;
}

fhir_store_status fhir_store_search(fhir_store *s, const fhir_query *q, fhir_store_row_fn fn,
                                    void *ctx, bool *more, fhir_store_error *err)
{
    clear(err);
    *more = false;
    if (!q->count)
        return fhir_store_fail(err, FHIR_STORE_ERR_ARG, "a search needs a page size above 0");
    open_ctx o = {s, fn, ctx, TBUF_INIT, FHIR_STORE_OK, err};
    if (!s->keys) return s->ops->search(s, q, fn, ctx, more, err);
    fhir_query sq;
    fhir_cond *conds;
    fhir_match *matches;
    char **owned;
    size_t nowned;
    seal_query(s->keys, q, &sq, &conds, &matches, &owned, &nowned);
    fhir_store_status st = has_dates(q) ? search_dates(s, q, &sq, &o, more, err)
                                        : s->ops->search(s, &sq, open_row, &o, more, err);
    for (size_t i = 0; i < nowned; i++) free(owned[i]);
    free(owned);
    free(matches);
    free(conds);
    tbuf_free(&o.plain);
    return st != FHIR_STORE_OK ? st : o.st;
}

fhir_store_status fhir_store_include(fhir_store *s, int64_t seq, const char *param,
                                     fhir_store_row_fn fn, void *ctx, fhir_store_error *err)
{
    clear(err);
    open_ctx o = {s, fn, ctx, TBUF_INIT, FHIR_STORE_OK, err};
    fhir_store_status st = s->ops->include(s, seq, param, open_row, &o, err);
    tbuf_free(&o.plain);
    return st != FHIR_STORE_OK ? st : o.st;
}
