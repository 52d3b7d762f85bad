/*
 * fhir_rest: the FHIR R4 REST API (see fhir_rest.h, docs/fhir.md).
 *
 * Routing is by path segments after /fhir: "" (Bundle), "metadata", Type,
 * Type/id, Type/id/_history[/vid], Patient/id/$everything. Each interaction
 * is an op_* function that fills an op_result (status, version facts,
 * location, JSON body) without knowing HTTP, so single requests and Bundle
 * entries share them; send_result() turns one into an HTTP answer.
 *
 * Reads and searches never build JSON trees: the stored text of each
 * resource is copied once from the store into the answer. Writes parse the
 * body with jansson (the store stamps id and meta into it). Errors are
 * OperationOutcome resources with the status the spec asks for.
 */
#include "fhir/fhir_rest.h"

#include <assert.h>
#include <ctype.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <sys/queue.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "base/mem.h"
#include "fhir/fhir_params.h"
#include "store/fhir_store.h"

#define CT_FHIR "application/fhir+json;charset=utf-8"
#define DEFAULT_COUNT 20
#define MAX_COUNT 1000
#define EVERYTHING_MAX 1000

/* A committed write waiting to be told to the subscribers. */
typedef struct write_note {
    char type[64];
    char id[65];
    bool created;
    char *json; /* owned */
    size_t len;
} write_note;

typedef struct subscriber {
    fhir_rest_write_fn fn;
    void *arg;
} subscriber;

struct fhir_rest {
    fhir_store *st;
    char *capability; /* the CapabilityStatement, serialized once */
    subscriber *subs;
    size_t nsubs, subcap;
    /* Writes of the request being handled; only collected inside
     * fhir_rest_handle() while someone is subscribed. */
    bool collect;
    write_note *notes;
    size_t nnotes, notecap;
};

/* What one interaction produced. */
typedef struct op_result {
    int status;
    fhir_version v;     /* v.version > 0: ETag and Last-Modified */
    char location[160]; /* "Type/id/_history/N" or "" */
    const char *allow;  /* the Allow header of a 405 (static), or NULL */
    tbuf body;          /* JSON or empty */
} op_result;

static void note_write(fhir_rest *r, const char *type, const char *id, bool created,
                       const tbuf *json)
{
    if (!r->collect) return;
    r->notes = xgrow(r->notes, &r->notecap, r->nnotes + 1, sizeof(*r->notes));
    write_note *n = &r->notes[r->nnotes++];
    snprintf(n->type, sizeof n->type, "%s", type);
    snprintf(n->id, sizeof n->id, "%s", id);
    n->created = created;
    n->json = xmalloc(json->len + 1);
    memcpy(n->json, json->p ? json->p : "", json->len);
    n->json[json->len] = '\0';
    n->len = json->len;
}

/* Drops the notes from index keep on (a transaction rolled back). */
static void drop_notes(fhir_rest *r, size_t keep)
{
    while (r->nnotes > keep) free(r->notes[--r->nnotes].json);
}

static int64_t now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* --- OperationOutcome ------------------------------------------------------------ */

static void outcome(op_result *o, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void outcome(op_result *o, int status, const char *code, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    json_t *oo = json_pack("{s:s,s:[{s:s,s:s,s:s}]}", "resourceType", "OperationOutcome", "issue",
                           "severity", status >= 400 ? "error" : "information", "code", code,
                           "diagnostics", text);
    char *s = json_dumps(oo, JSON_COMPACT);
    json_decref(oo);
    o->status = status;
    tbuf_reset(&o->body);
    tbuf_puts(&o->body, s ? s : "{}");
    free(s);
}

/* The status and issue code of a store failure. */
static void store_outcome(op_result *o, const fhir_store_error *e)
{
    switch (e->code) {
    case FHIR_STORE_ERR_NOT_FOUND: outcome(o, 404, "not-found", "%s", e->text); return;
    case FHIR_STORE_ERR_GONE: outcome(o, 410, "deleted", "%s", e->text); return;
    case FHIR_STORE_ERR_CONFLICT: outcome(o, 412, "conflict", "%s", e->text); return;
    case FHIR_STORE_ERR_INVALID: outcome(o, 422, "invalid", "%s", e->text); return;
    case FHIR_STORE_ERR_ARG: outcome(o, 400, "invalid", "%s", e->text); return;
    case FHIR_STORE_ERR_BUSY:
        outcome(o, 503, "transient", "%s; try again", e->text);
        return;
    default: outcome(o, 500, "exception", "%s", e->text); return;
    }
}

/* --- small helpers --------------------------------------------------------------- */

static void http_date(int64_t ms, char out[40])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 40, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

static void instant(int64_t ms, char out[40])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char b[24];
    strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 40, "%s.%03dZ", b, (int)(ms % 1000));
}

/* Appends s as a JSON string (with quotes). */
static void put_json_str(tbuf *b, const char *s)
{
    tbuf_putc(b, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            tbuf_putc(b, '\\');
            tbuf_putc(b, (char)*p);
        } else if (*p < 0x20) {
            tbuf_printf(b, "\\u%04x", *p);
        } else {
            tbuf_putc(b, (char)*p);
        }
    }
    tbuf_putc(b, '"');
}

/* If-Match: W/"3", "3" or 3 -> 3; 0 when absent; -1 when unreadable. */
static int64_t parse_etag(const char *h)
{
    if (!h) return 0;
    if (!strncmp(h, "W/", 2)) h += 2;
    if (*h == '"') h++;
    char *end;
    long long v = strtoll(h, &end, 10);
    if (end == h || v <= 0 || (*end && *end != '"')) return -1;
    return v;
}

static bool prefer_has(const fhir_rest_request *req, const char *what)
{
    return req->prefer && strstr(req->prefer, what);
}

/* --- create, read, update, delete -------------------------------------------------- */

static void set_location(op_result *o, const char *type, const char *id, int64_t version)
{
    snprintf(o->location, sizeof o->location, "%s/%s/_history/%" PRId64, type, id, version);
}

static void op_read(fhir_rest *r, const char *type, const char *id, int64_t vid, op_result *o)
{
    fhir_store_error e;
    if (fhir_store_read(r->st, type, id, vid, &o->v, &o->body, &e) != FHIR_STORE_OK) {
        store_outcome(o, &e);
        if (e.code != FHIR_STORE_ERR_GONE) o->v.version = 0;
        return;
    }
    o->status = 200;
}

/* Parsed body of a create or update: an object of the right type. */
static json_t *parse_resource(const char *text, size_t len, const char *type, op_result *o)
{
    json_error_t je;
    json_t *j = json_loadb(text, len, 0, &je);
    if (!j) {
        outcome(o, 400, "structure", "the body is not valid JSON: %s (line %d, column %d)",
                je.text, je.line, je.column);
        return NULL;
    }
    const char *rt = json_string_value(json_object_get(j, "resourceType"));
    if (!json_is_object(j) || !rt) {
        outcome(o, 400, "structure", "the body is not a FHIR resource (no resourceType)");
    } else if (type && strcmp(rt, type)) {
        outcome(o, 400, "invalid", "the body is a %s but the URL names %s", rt, type);
    } else {
        return j;
    }
    json_decref(j);
    return NULL;
}

typedef struct search_req search_req;
static int search_count(fhir_rest *r, const char *type, const char *query, op_result *o,
                        char *match_id);

static void op_create(fhir_rest *r, const char *type, json_t *res, const char *if_none_exist,
                      bool want_body, op_result *o)
{
    if (if_none_exist) {
        char id[65] = "";
        int n = search_count(r, type, if_none_exist, o, id);
        if (n < 0) return;
        if (n > 1) {
            outcome(o, 412, "duplicate",
                    "If-None-Exist '%s' matches %d %s resources; make the criteria selective",
                    if_none_exist, n, type);
            return;
        }
        if (n == 1) {
            tbuf_reset(&o->body);
            op_read(r, type, id, 0, o);
            if (o->status == 200) set_location(o, type, id, o->v.version);
            if (!want_body) tbuf_reset(&o->body);
            return;
        }
    }
    fhir_write_result w;
    fhir_store_error e;
    if (fhir_store_put(r->st, type, NULL, res, 0, now_ms(), &w, &e) != FHIR_STORE_OK) {
        store_outcome(o, &e);
        return;
    }
    o->status = 201;
    o->v = w.v;
    set_location(o, type, w.id, w.v.version);
    note_write(r, type, w.id, true, &w.json);
    tbuf_reset(&o->body);
    if (want_body) tbuf_put(&o->body, w.json.p, w.json.len);
    tbuf_free(&w.json);
}

static void op_update(fhir_rest *r, const char *type, const char *id, json_t *res,
                      int64_t if_match, bool want_body, op_result *o)
{
    const char *bid = json_string_value(json_object_get(res, "id"));
    if (!bid || strcmp(bid, id)) {
        outcome(o, 400, "invalid", "the body's id is '%s' but the URL names %s/%s; they must agree",
                bid ? bid : "(none)", type, id);
        return;
    }
    fhir_write_result w;
    fhir_store_error e;
    if (fhir_store_put(r->st, type, id, res, if_match, now_ms(), &w, &e) != FHIR_STORE_OK) {
        store_outcome(o, &e);
        return;
    }
    o->status = w.created ? 201 : 200;
    o->v = w.v;
    set_location(o, type, w.id, w.v.version);
    note_write(r, type, w.id, w.created, &w.json);
    tbuf_reset(&o->body);
    if (want_body) tbuf_put(&o->body, w.json.p, w.json.len);
    tbuf_free(&w.json);
}

static void op_delete(fhir_rest *r, const char *type, const char *id, int64_t if_match,
                      op_result *o)
{
    fhir_write_result w;
    fhir_store_error e;
    if (fhir_store_delete(r->st, type, id, if_match, now_ms(), &w, &e) != FHIR_STORE_OK) {
        store_outcome(o, &e);
        return;
    }
    if (w.v.version)
        outcome(o, 200, "informational", "deleted %s/%s (version %" PRId64 ")", type, id,
                w.v.version);
    else
        outcome(o, 200, "informational", "%s/%s did not exist or was already deleted", type, id);
    o->v = w.v;
    o->v.deleted = false; /* an ETag of the tombstone version is still useful */
}

/* --- search -------------------------------------------------------------------------- */

#define MAX_CONDS 16
#define MAX_VALUES 64

struct search_req {
    const char *type;
    fhir_cond conds[MAX_CONDS];
    size_t nconds;
    fhir_match m[MAX_VALUES];
    size_t nm;
    char *owned[MAX_VALUES * 3];
    size_t nowned;
    size_t count;
    int64_t after;
    const char *include_param; /* reference parameter of type to include */
    struct evkeyvalq kv;
    bool kv_used;
};

static char *keep(search_req *s, const char *p, size_t n)
{
    char *c = xstrndup(p, n);
    if (s->nowned < sizeof s->owned / sizeof s->owned[0])
        s->owned[s->nowned++] = c;
    return c;
}

static void search_free(search_req *s)
{
    for (size_t i = 0; i < s->nowned; i++) free(s->owned[i]);
    if (s->kv_used) evhttp_clear_headers(&s->kv);
}

static bool parse_match(search_req *s, const fhir_param_def *def, bool exact, const char *v,
                        size_t n, fhir_match *m, op_result *o)
{
    memset(m, 0, sizeof(*m));
    char *text = keep(s, v, n);
    switch (def ? def->kind : FHIR_PARAM_TOKEN) {
    case FHIR_PARAM_TOKEN: {
        char *bar = strchr(text, '|');
        if (bar) {
            *bar = '\0';
            m->sys = text;
            m->code = bar[1] ? bar + 1 : NULL;
        } else {
            m->code = text;
        }
        return true;
    }
    case FHIR_PARAM_STRING: {
        tbuf b = TBUF_INIT;
        fhir_normalize(text, &b);
        m->code = keep(s, b.p ? b.p : "", b.len);
        tbuf_free(&b);
        m->exact = exact;
        return true;
    }
    case FHIR_PARAM_REFERENCE: {
        char *hist = strstr(text, "/_history/");
        if (hist) *hist = '\0';
        char *slash = strrchr(text, '/');
        if (slash) {
            *slash = '\0';
            char *ts = strrchr(text, '/');
            m->sys = ts ? ts + 1 : text;
            m->code = slash + 1;
        } else {
            m->sys = def->target;
            m->code = text;
        }
        return true;
    }
    case FHIR_PARAM_DATE: {
        static const char *const pfx[] = {"eq", "ne", "lt", "gt", "le", "ge", "sa", "eb"};
        const char *d = text;
        m->prefix = FHIR_PFX_EQ;
        if (isalpha((unsigned char)d[0])) {
            size_t k = 0;
            while (k < 8 && strncmp(d, pfx[k], 2)) k++;
            if (k == 8) {
                outcome(o, 400, "invalid",
                        "%s: unknown date prefix in '%s' (use eq ne lt gt le ge sa eb)",
                        def->name, text);
                return false;
            }
            m->prefix = (fhir_prefix)k;
            d += 2;
        }
        if (!fhir_date_range(d, &m->lo, &m->hi)) {
            outcome(o, 400, "invalid", "%s: '%s' is not a FHIR date (YYYY[-MM[-DD[Thh:mm:ss]]])",
                    def->name, d);
            return false;
        }
        return true;
    }
    }
    return false;
}

static bool parse_include(search_req *s, const char *v, bool lenient, op_result *o)
{
    const char *colon = strchr(v, ':');
    const fhir_param_def *def = NULL;
    if (colon && (size_t)(colon - v) == strlen(s->type) && !strncmp(v, s->type, strlen(s->type))) {
        char name[64];
        snprintf(name, sizeof name, "%s", colon + 1);
        char *c2 = strchr(name, ':');
        if (c2) *c2 = '\0';
        def = fhir_param_find(s->type, name);
    }
    if (!def || def->kind != FHIR_PARAM_REFERENCE) {
        if (lenient) return true;
        outcome(o, 400, "not-supported",
                "_include=%s is not supported; use %s:PARAM with a reference parameter of %s", v,
                s->type, s->type);
        return false;
    }
    s->include_param = def->name;
    return true;
}

/* Parses query (may be NULL) for a search of type (NULL: the compartment
 * search of $everything, where only _count is read). */
static bool parse_search(search_req *s, const char *type, const char *query, bool lenient,
                         op_result *o)
{
    memset(s, 0, sizeof(*s));
    s->type = type;
    s->count = DEFAULT_COUNT;
    TAILQ_INIT(&s->kv);
    s->kv_used = true;
    if (query && evhttp_parse_query_str(query, &s->kv) != 0) {
        outcome(o, 400, "invalid", "the query string cannot be parsed");
        return false;
    }
    struct evkeyval *kv;
    TAILQ_FOREACH(kv, &s->kv, next)
    {
        const char *key = kv->key, *val = kv->value;
        if (!strcmp(key, "_count")) {
            char *end;
            long n = strtol(val, &end, 10);
            if (*end || n < 1) {
                outcome(o, 400, "invalid", "_count=%s: give a number from 1 to %d", val,
                        MAX_COUNT);
                return false;
            }
            s->count = n > MAX_COUNT ? MAX_COUNT : (size_t)n;
            continue;
        }
        if (!strcmp(key, "_after")) {
            s->after = strtoll(val, NULL, 10);
            continue;
        }
        if (!strcmp(key, "_format")) {
            if (!strstr(val, "json")) {
                outcome(o, 406, "not-supported", "_format=%s: this server speaks JSON only", val);
                return false;
            }
            continue;
        }
        if (!strcmp(key, "_include") && type) {
            if (!parse_include(s, val, lenient, o)) return false;
            continue;
        }
        char name[64];
        snprintf(name, sizeof name, "%s", key);
        char *mod = strchr(name, ':');
        if (mod) *mod++ = '\0';
        const fhir_param_def *def = type ? fhir_param_find(type, name) : NULL;
        bool is_id = type && !strcmp(name, "_id");
        bool mod_ok = !mod || (def && def->kind == FHIR_PARAM_STRING && !strcmp(mod, "exact"));
        if ((!def && !is_id) || !mod_ok) {
            if (lenient) continue;
            outcome(o, 400, "not-supported",
                    "search parameter '%s' is not supported on %s (see /fhir/metadata); send "
                    "'Prefer: handling=lenient' to ignore unknown parameters",
                    key, type ? type : "this operation");
            return false;
        }
        if (s->nconds == MAX_CONDS) {
            outcome(o, 400, "too-costly", "at most %d search parameters", MAX_CONDS);
            return false;
        }
        fhir_cond *c = &s->conds[s->nconds++];
        c->param = is_id ? "_id" : def->name;
        c->kind = is_id ? FHIR_PARAM_TOKEN : def->kind;
        c->m = &s->m[s->nm];
        c->n = 0;
        for (const char *p = val;;) {
            const char *comma = strchr(p, ',');
            size_t n = comma ? (size_t)(comma - p) : strlen(p);
            if (s->nm == MAX_VALUES) {
                outcome(o, 400, "too-costly", "at most %d search values", MAX_VALUES);
                return false;
            }
            if (!parse_match(s, def, mod != NULL, p, n, &s->m[s->nm], o)) return false;
            s->nm++;
            c->n++;
            if (!comma) break;
            p = comma + 1;
        }
    }
    return true;
}

typedef struct page {
    tbuf *out;
    const char *base;
    const char *mode; /* "match" or "include" */
    size_t n;
    int64_t last_seq;
    int64_t *seqs; /* for _include */
    size_t nseqs, seqcap;
    bool keep_seqs;
    int64_t *included; /* seqs already added in include mode */
    size_t nincluded, inccap;
    char *first_id; /* search_count: the id of the first match */
    size_t first_id_size;
} page;

static int add_entry(void *ctx, int64_t seq, const char *type, const char *id,
                     const fhir_version *v, const char *json, size_t len)
{
    page *p = ctx;
    if (p->mode && !strcmp(p->mode, "include")) {
        for (size_t i = 0; i < p->nincluded; i++)
            if (p->included[i] == seq) return 0;
        p->included = xgrow(p->included, &p->inccap, p->nincluded + 1, sizeof(*p->included));
        p->included[p->nincluded++] = seq;
    } else {
        p->last_seq = seq;
    }
    if (p->first_id && !p->n) snprintf(p->first_id, p->first_id_size, "%s", id);
    if (p->keep_seqs) {
        p->seqs = xgrow(p->seqs, &p->seqcap, p->nseqs + 1, sizeof(*p->seqs));
        p->seqs[p->nseqs++] = seq;
    }
    if (p->out) {
        tbuf *b = p->out;
        tbuf_puts(b, p->n ? ",{\"fullUrl\":\"" : "{\"fullUrl\":\"");
        tbuf_printf(b, "%s/%s/%s\",\"resource\":", p->base, type, id);
        tbuf_put(b, json, len);
        tbuf_printf(b, ",\"search\":{\"mode\":\"%s\"}}", p->mode);
    }
    p->n++;
    return 0;
}

/* Number of type resources matching query (at most 2 counted), for
 * conditional create; the first match's id goes to match_id. -1 with the
 * outcome in o on a bad query. */
static int search_count(fhir_rest *r, const char *type, const char *query, op_result *o,
                        char *match_id)
{
    const char *q = strchr(query, '?');
    search_req s;
    int n = -1;
    if (!parse_search(&s, type, q ? q + 1 : query, false, o)) goto done;
    if (!s.nconds) {
        outcome(o, 412, "invalid", "If-None-Exist '%s' has no search criteria", query);
        goto done;
    }
    fhir_query fq = {type, s.conds, s.nconds, 0, 2};
    page p = {.first_id = match_id, .first_id_size = 65};
    bool more;
    fhir_store_error e;
    if (fhir_store_search(r->st, &fq, add_entry, &p, &more, &e) != FHIR_STORE_OK) {
        store_outcome(o, &e);
        goto done;
    }
    n = (int)p.n;
done:
    search_free(&s);
    return n;
}

/* The next-page URL: the request's parameters with _after replaced. */
static void next_url(tbuf *b, const char *base, const char *type, search_req *s, int64_t after)
{
    tbuf_printf(b, "%s/%s?", base, type);
    struct evkeyval *kv;
    TAILQ_FOREACH(kv, &s->kv, next)
    {
        if (!strcmp(kv->key, "_after")) continue;
        char *k = evhttp_encode_uri(kv->key), *v = evhttp_encode_uri(kv->value);
        tbuf_printf(b, "%s=%s&", k, v);
        free(k);
        free(v);
    }
    tbuf_printf(b, "_after=%" PRId64, after);
}

/* A Host header is echoed in Location and in links only when it looks like
 * a host name or address with an optional port: anything else (control
 * characters, quotes, slashes, '@') could forge a header or a link. */
static bool host_is_plain(const char *h)
{
    if (!h || !*h || strlen(h) > 255) return false;
    for (const char *p = h; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr(".-:[]_", *p)) return false;
    return true;
}

static void base_url(const fhir_rest_request *req, char out[300])
{
    snprintf(out, 300, "http://%s/fhir", host_is_plain(req->host) ? req->host : "localhost");
}

static void op_search(fhir_rest *r, const fhir_rest_request *req, const char *type,
                      const char *query, op_result *o)
{
    char base[300];
    base_url(req, base);
    search_req s;
    page p = {0};
    if (!parse_search(&s, type, query, prefer_has(req, "handling=lenient"), o)) goto done;
    tbuf *b = &o->body;
    tbuf_reset(b);
    tbuf_puts(b, "{\"resourceType\":\"Bundle\",\"type\":\"searchset\",\"entry\":[");
    fhir_query fq = {type, s.conds, s.nconds, s.after, s.count};
    p = (page){.out = b, .base = base, .mode = "match", .keep_seqs = s.include_param != NULL};
    bool more;
    fhir_store_error e;
    if (fhir_store_search(r->st, &fq, add_entry, &p, &more, &e) != FHIR_STORE_OK) {
        store_outcome(o, &e);
        goto done;
    }
    size_t matches = p.n;
    int64_t last = p.last_seq;
    p.mode = "include";
    p.keep_seqs = false;
    for (size_t i = 0; i < p.nseqs; i++)
        if (fhir_store_include(r->st, p.seqs[i], s.include_param, add_entry, &p, &e) !=
            FHIR_STORE_OK) {
            store_outcome(o, &e);
            goto done;
        }
    tbuf_puts(b, "],\"link\":[{\"relation\":\"self\",\"url\":");
    tbuf self = TBUF_INIT;
    tbuf_printf(&self, "%s/%s%s%s", base, type, query ? "?" : "", query ? query : "");
    put_json_str(b, tbuf_cstr(&self));
    tbuf_free(&self);
    tbuf_putc(b, '}');
    if (more) {
        tbuf next = TBUF_INIT;
        next_url(&next, base, type, &s, last);
        tbuf_puts(b, ",{\"relation\":\"next\",\"url\":");
        put_json_str(b, tbuf_cstr(&next));
        tbuf_putc(b, '}');
        tbuf_free(&next);
    }
    tbuf_putc(b, ']');
    if (!more && !s.after) tbuf_printf(b, ",\"total\":%zu", matches);
    tbuf_putc(b, '}');
    o->status = 200;
done:
    free(p.seqs);
    free(p.included);
    search_free(&s);
}

/* Patient/id/$everything: the patient, then every resource whose patient
 * search parameter points to it (at most EVERYTHING_MAX). */
static void op_everything(fhir_rest *r, const fhir_rest_request *req, const char *id,
                          op_result *o)
{
    char base[300];
    base_url(req, base);
    tbuf pat = TBUF_INIT;
    fhir_store_error e;
    if (fhir_store_read(r->st, "Patient", id, 0, NULL, &pat, &e) != FHIR_STORE_OK) {
        store_outcome(o, &e);
        tbuf_free(&pat);
        return;
    }
    tbuf *b = &o->body;
    tbuf_reset(b);
    tbuf_puts(b, "{\"resourceType\":\"Bundle\",\"type\":\"searchset\",\"entry\":[");
    page p = {.out = b, .base = base, .mode = "match"};
    fhir_version v = {0};
    add_entry(&p, 0, "Patient", id, &v, pat.p, pat.len);
    tbuf_free(&pat);
    fhir_match m = {"Patient", id, false, 0, 0, 0};
    fhir_cond c = {"patient", FHIR_PARAM_REFERENCE, &m, 1};
    fhir_query fq = {NULL, &c, 1, 0, EVERYTHING_MAX};
    bool more;
    if (fhir_store_search(r->st, &fq, add_entry, &p, &more, &e) != FHIR_STORE_OK) {
        store_outcome(o, &e);
        return;
    }
    tbuf_printf(b, "],\"total\":%zu}", p.n);
    o->status = 200;
}

/* --- history ----------------------------------------------------------------------- */

typedef struct hist {
    tbuf *b;
    const char *base;
    size_t n;
} hist;

static int add_version(void *ctx, int64_t seq, const char *type, const char *id,
                       const fhir_version *v, const char *json, size_t len)
{
    hist *h = ctx;
    tbuf *b = h->b;
    char when[40];
    instant(v->updated_ms, when);
    tbuf_puts(b, h->n++ ? ",{" : "{");
    tbuf_printf(b, "\"fullUrl\":\"%s/%s/%s\",", h->base, type, id);
    if (json) {
        tbuf_puts(b, "\"resource\":");
        tbuf_put(b, json, len);
        tbuf_putc(b, ',');
    }
    tbuf_printf(b,
                "\"request\":{\"method\":\"%s\",\"url\":\"%s/%s\"},"
                "\"response\":{\"status\":\"%s\",\"etag\":\"W/\\\"%" PRId64
                "\\\"\",\"lastModified\":\"%s\"}}",
                v->deleted ? "DELETE" : v->version == 1 ? "POST" : "PUT", type, id,
                v->deleted ? "204" : v->version == 1 ? "201" : "200", v->version, when);
    return 0;
}

static void op_history(fhir_rest *r, const fhir_rest_request *req, const char *type,
                       const char *id, op_result *o)
{
    char base[300];
    base_url(req, base);
    tbuf *b = &o->body;
    tbuf_reset(b);
    tbuf_puts(b, "{\"resourceType\":\"Bundle\",\"type\":\"history\",\"entry\":[");
    hist h = {b, base, 0};
    fhir_store_error e;
    if (fhir_store_history(r->st, type, id, 0, add_version, &h, &e) != FHIR_STORE_OK) {
        store_outcome(o, &e);
        return;
    }
    tbuf_printf(b, "],\"total\":%zu}", h.n);
    o->status = 200;
}

/* --- batch and transaction Bundles ------------------------------------------------ */

typedef struct entry {
    json_t *e; /* borrowed from the Bundle */
    const char *method;
    char type[64];
    char id[65];
    const char *query; /* after '?' in the url, or NULL */
    bool has_id;
    int order; /* DELETE 0, POST 1, PUT 2, GET 3 */
    op_result res;
} entry;

/* Splits "Type[/id][?query]" into the entry. */
static bool split_url(entry *en, const char *url, op_result *o, size_t i)
{
    const char *q = strchr(url, '?');
    size_t n = q ? (size_t)(q - url) : strlen(url);
    const char *slash = memchr(url, '/', n);
    size_t tn = slash ? (size_t)(slash - url) : n;
    if (tn == 0 || tn >= sizeof en->type) {
        outcome(o, 400, "invalid", "entry %zu: request.url '%s' does not name a resource type", i,
                url);
        return false;
    }
    memcpy(en->type, url, tn);
    en->type[tn] = '\0';
    if (slash) {
        size_t in = n - tn - 1;
        if (in == 0 || in >= sizeof en->id || memchr(slash + 1, '/', in)) {
            outcome(o, 400, "invalid", "entry %zu: request.url '%s' is not Type/id", i, url);
            return false;
        }
        memcpy(en->id, slash + 1, in);
        en->id[in] = '\0';
        en->has_id = true;
    }
    en->query = q ? q + 1 : NULL;
    if (!fhir_type_known(en->type)) {
        outcome(o, 404, "not-supported", "entry %zu: resource type '%s' is not supported", i,
                en->type);
        return false;
    }
    return true;
}

static void rewrite_refs(json_t *j, json_t *map)
{
    if (json_is_object(j)) {
        const char *k;
        json_t *v;
        json_object_foreach(j, k, v)
        {
            const char *to;
            if (!strcmp(k, "reference") && json_is_string(v) &&
                (to = json_string_value(json_object_get(map, json_string_value(v)))))
                json_string_set(v, to);
            else
                rewrite_refs(v, map);
        }
    } else if (json_is_array(j)) {
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v) rewrite_refs(v, map);
    }
}

/* Checks an entry and works out its identity; fullUrl -> "Type/id" goes to
 * map for the reference rewriting. */
static bool prepare_entry(fhir_rest *r, entry *en, size_t i, json_t *map, op_result *o)
{
    json_t *req = json_object_get(en->e, "request");
    en->method = json_string_value(json_object_get(req, "method"));
    const char *url = json_string_value(json_object_get(req, "url"));
    if (!en->method || !url) {
        outcome(o, 400, "required", "entry %zu: request.method and request.url are required", i);
        return false;
    }
    if (!split_url(en, url, o, i)) return false;
    json_t *res = json_object_get(en->e, "resource");
    const char *full = json_string_value(json_object_get(en->e, "fullUrl"));
    if (!strcmp(en->method, "POST") && !en->has_id && !en->query) {
        en->order = 1;
        const char *ine = json_string_value(json_object_get(req, "ifNoneExist"));
        char found[65] = "";
        int n = ine ? search_count(r, en->type, ine, o, found) : 0;
        if (n < 0) return false;
        if (n > 1) {
            outcome(o, 412, "duplicate", "entry %zu: ifNoneExist '%s' matches %d resources", i,
                    ine, n);
            return false;
        }
        if (n == 1) snprintf(en->id, sizeof en->id, "%s", found);
        else fhir_new_id(en->id);
        en->has_id = n == 1; /* an existing match: nothing is created */
    } else if (!strcmp(en->method, "PUT") && en->has_id && !en->query) {
        en->order = 2;
    } else if (!strcmp(en->method, "DELETE") && en->has_id && !en->query) {
        en->order = 0;
    } else if (!strcmp(en->method, "GET") && en->has_id && !en->query) {
        en->order = 3;
    } else {
        outcome(o, 400, "not-supported",
                "entry %zu: %s %s is not supported in a Bundle (POST Type, PUT/DELETE/GET "
                "Type/id; no conditional URLs)",
                i, en->method, url);
        return false;
    }
    if ((en->order == 1 || en->order == 2) && !json_is_object(res)) {
        outcome(o, 400, "required", "entry %zu: %s needs a resource", i, en->method);
        return false;
    }
    if (full && res) {
        char to[140];
        snprintf(to, sizeof to, "%s/%s", en->type, en->id);
        json_object_set_new(map, full, json_string(to));
    }
    return true;
}

static void run_entry(fhir_rest *r, entry *en)
{
    json_t *res = json_object_get(en->e, "resource");
    op_result *o = &en->res;
    if (res && (en->order == 1 || en->order == 2)) {
        const char *rt = json_string_value(json_object_get(res, "resourceType"));
        if (!rt || strcmp(rt, en->type)) {
            outcome(o, 400, "invalid", "the resource is a %s but request.url names %s",
                    rt ? rt : "(none)", en->type);
            return;
        }
    }
    int64_t if_match = parse_etag(json_string_value(
        json_object_get(json_object_get(en->e, "request"), "ifMatch")));
    switch (en->order) {
    case 0: op_delete(r, en->type, en->id, if_match, o); break;
    case 1:
        if (en->has_id) { /* ifNoneExist matched: report the existing one */
            op_read(r, en->type, en->id, 0, o);
            if (o->status == 200) set_location(o, en->type, en->id, o->v.version);
            tbuf_reset(&o->body);
        } else {
            fhir_write_result w;
            fhir_store_error e;
            if (fhir_store_put(r->st, en->type, en->id, res, 0, now_ms(), &w, &e) !=
                FHIR_STORE_OK) {
                store_outcome(o, &e);
                return;
            }
            o->status = 201;
            o->v = w.v;
            set_location(o, en->type, w.id, w.v.version);
            note_write(r, en->type, w.id, true, &w.json);
            tbuf_free(&w.json);
        }
        break;
    case 2:
        if (!json_object_get(res, "id")) json_object_set_new(res, "id", json_string(en->id));
        op_update(r, en->type, en->id, res, if_match, false, o);
        break;
    default: op_read(r, en->type, en->id, 0, o); break;
    }
}

static const char *reason(int status)
{
    switch (status) {
    case 200: return "200 OK";
    case 201: return "201 Created";
    case 204: return "204 No Content";
    case 400: return "400 Bad Request";
    case 404: return "404 Not Found";
    case 409: return "409 Conflict";
    case 410: return "410 Gone";
    case 412: return "412 Precondition Failed";
    case 422: return "422 Unprocessable Entity";
    default: return status < 400 ? "200 OK" : "500 Internal Server Error";
    }
}

static void entry_response(tbuf *b, const entry *en, bool with_body)
{
    tbuf_printf(b, "{\"response\":{\"status\":\"%s\"", reason(en->res.status));
    if (en->res.location[0]) tbuf_printf(b, ",\"location\":\"%s\"", en->res.location);
    if (en->res.v.version) {
        char when[40];
        instant(en->res.v.updated_ms, when);
        tbuf_printf(b, ",\"etag\":\"W/\\\"%" PRId64 "\\\"\",\"lastModified\":\"%s\"",
                    en->res.v.version, when);
    }
    if (en->res.status >= 400 && en->res.body.len) {
        tbuf_puts(b, ",\"outcome\":");
        tbuf_put(b, en->res.body.p, en->res.body.len);
    }
    tbuf_putc(b, '}');
    if (with_body && en->res.status == 200 && en->res.body.len) {
        tbuf_puts(b, ",\"resource\":");
        tbuf_put(b, en->res.body.p, en->res.body.len);
    }
    tbuf_putc(b, '}');
}

/* Runs a batch or transaction Bundle (borrowed; its references are
 * rewritten in place). */
static void run_bundle(fhir_rest *r, json_t *bundle, op_result *o)
{
    json_t *map = json_object();
    entry *ens = NULL;
    size_t n = 0, notes_before = r->nnotes;
    fhir_store_error e;
    bool tx = false, open = false;
    const char *rt = json_string_value(json_object_get(bundle, "resourceType"));
    const char *type = json_string_value(json_object_get(bundle, "type"));
    json_t *list = json_object_get(bundle, "entry");
    if (!rt) rt = "(none)";
    if (strcmp(rt, "Bundle") || !type || (strcmp(type, "batch") && strcmp(type, "transaction"))) {
        outcome(o, 400, "invalid",
                "POST /fhir takes a Bundle of type batch or transaction (got %s of type %s)", rt,
                type ? type : "(none)");
        goto done;
    }
    tx = !strcmp(type, "transaction");
    n = json_array_size(list);
    ens = xcalloc(n ? n : 1, sizeof(*ens));
    if (tx) {
        if (fhir_store_begin(r->st, &e) != FHIR_STORE_OK) {
            store_outcome(o, &e);
            goto done;
        }
        open = true;
    }
    for (size_t i = 0; i < n; i++) {
        ens[i].e = json_array_get(list, i);
        if (!prepare_entry(r, &ens[i], i, map, &ens[i].res)) {
            if (tx) {
                o->status = ens[i].res.status;
                tbuf_reset(&o->body);
                tbuf_put(&o->body, ens[i].res.body.p, ens[i].res.body.len);
                goto done;
            }
            ens[i].order = -1;
        }
    }
    if (tx) rewrite_refs(list, map);
    for (int order = 0; order <= 3; order++)
        for (size_t i = 0; i < n; i++) {
            if (ens[i].order != order) continue;
            if (!tx) fhir_store_begin(r->st, &e);
            run_entry(r, &ens[i]);
            if (!tx) {
                if (ens[i].res.status < 400 && fhir_store_commit(r->st, &e) != FHIR_STORE_OK)
                    store_outcome(&ens[i].res, &e);
                fhir_store_rollback(r->st);
            }
            if (tx && ens[i].res.status >= 400) {
                outcome(o, ens[i].res.status, "processing",
                        "transaction rolled back: entry %zu (%s %s/%s) failed: %.*s", i,
                        ens[i].method, ens[i].type, ens[i].id, (int)ens[i].res.body.len,
                        ens[i].res.body.p);
                goto done;
            }
        }
    if (tx) {
        open = false;
        if (fhir_store_commit(r->st, &e) != FHIR_STORE_OK) {
            store_outcome(o, &e);
            goto done;
        }
    }
    tbuf_reset(&o->body);
    tbuf_printf(&o->body, "{\"resourceType\":\"Bundle\",\"type\":\"%s-response\",\"entry\":[",
                type);
    for (size_t i = 0; i < n; i++) {
        if (i) tbuf_putc(&o->body, ',');
        entry_response(&o->body, &ens[i], true);
    }
    tbuf_puts(&o->body, "]}");
    o->status = 200;
done:
    if (open) fhir_store_rollback(r->st);
    if (tx && o->status != 200) drop_notes(r, notes_before);
    for (size_t i = 0; i < n && ens; i++) tbuf_free(&ens[i].res.body);
    free(ens);
    json_decref(map);
}

static void op_bundle(fhir_rest *r, const char *text, size_t len, op_result *o)
{
    json_t *bundle = parse_resource(text, len, NULL, o);
    if (!bundle) return;
    run_bundle(r, bundle, o);
    json_decref(bundle);
}

/* Appends v percent-encoded for a search parameter value ('|' kept). */
static void put_query_value(tbuf *q, const char *v)
{
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (isalnum(*p) || strchr("-._~:/|", *p))
            tbuf_putc(q, (char)*p);
        else
            tbuf_printf(q, "%%%02X", *p);
    }
}

/* The id of the one stored Patient with one of res's identifiers, other
 * than id; false when none or several match. */
static bool patient_by_identifier(fhir_rest *r, json_t *res, const char *id, char found[65])
{
    size_t i;
    json_t *ident;
    json_array_foreach(json_object_get(res, "identifier"), i, ident)
    {
        const char *sys = json_string_value(json_object_get(ident, "system"));
        const char *val = json_string_value(json_object_get(ident, "value"));
        if (!sys || !val) continue;
        tbuf q = TBUF_INIT;
        tbuf_puts(&q, "identifier=");
        put_query_value(&q, sys);
        tbuf_putc(&q, '|');
        put_query_value(&q, val);
        op_result o = {0};
        found[0] = '\0';
        int n = search_count(r, "Patient", tbuf_cstr(&q), &o, found);
        tbuf_free(&q);
        tbuf_free(&o.body);
        if (n == 1 && strcmp(found, id)) return true;
        if (n > 1) return false;
    }
    return false;
}

/* Points `PUT Patient/ID` entries for new IDs at the stored Patient with
 * the same identifier, and every reference to Patient/ID with them. */
static void link_patients(fhir_rest *r, json_t *bundle)
{
    json_t *list = json_object_get(bundle, "entry"), *map = json_object();
    size_t i;
    json_t *en;
    json_array_foreach(list, i, en)
    {
        json_t *req = json_object_get(en, "request"), *res = json_object_get(en, "resource");
        const char *method = json_string_value(json_object_get(req, "method"));
        const char *url = json_string_value(json_object_get(req, "url"));
        if (!method || strcmp(method, "PUT") || !url || strncmp(url, "Patient/", 8) ||
            strchr(url + 8, '/') || strchr(url + 8, '?'))
            continue;
        const char *id = url + 8;
        char found[65], to[80];
        tbuf existing = TBUF_INIT;
        bool exists = fhir_rest_read(r, "Patient", id, &existing);
        tbuf_free(&existing);
        if (exists || !patient_by_identifier(r, res, id, found)) continue;
        snprintf(to, sizeof to, "Patient/%s", found);
        json_object_set_new(map, url, json_string(to));
        json_object_set_new(res, "id", json_string(found));
        json_object_set_new(req, "url", json_string(to));
    }
    if (json_object_size(map)) rewrite_refs(list, map);
    json_decref(map);
}

fhir_apply_status fhir_rest_apply_bundle(fhir_rest *r, json_t *bundle, tbuf *err)
{
    op_result o = {0};
    link_patients(r, bundle);
    run_bundle(r, bundle, &o);
    fhir_apply_status st = FHIR_APPLY_OK;
    if (o.status >= 400) {
        st = o.status >= 500 ? FHIR_APPLY_RETRY : FHIR_APPLY_REJECTED;
        json_t *oo = json_loadb(o.body.p ? o.body.p : "", o.body.len, 0, NULL);
        const char *d = json_string_value(
            json_object_get(json_array_get(json_object_get(oo, "issue"), 0), "diagnostics"));
        tbuf_printf(err, "the FHIR store refused the Bundle (HTTP %d): %s", o.status,
                    d ? d : "no details");
        json_decref(oo);
    }
    tbuf_free(&o.body);
    return st;
}

/* --- CapabilityStatement ------------------------------------------------------------ */

static char *build_capability(void)
{
    json_t *resources = json_array();
    size_t ntypes, nparams;
    const char *const *types = fhir_type_list(&ntypes);
    const fhir_param_def *params = fhir_param_table(&nparams);
    for (size_t t = 0; t < ntypes; t++) {
        if (!strcmp(types[t], "Bundle")) continue;
        json_t *sp = json_array(), *inc = json_array();
        json_array_append_new(sp, json_pack("{s:s,s:s}", "name", "_id", "type", "token"));
        for (size_t i = 0; i < nparams; i++) {
            if (strcmp(params[i].type, types[t])) continue;
            json_array_append_new(sp, json_pack("{s:s,s:s}", "name", params[i].name, "type",
                                                fhir_param_kind_name(params[i].kind)));
            if (params[i].kind == FHIR_PARAM_REFERENCE) {
                char b[96];
                snprintf(b, sizeof b, "%s:%s", types[t], params[i].name);
                json_array_append_new(inc, json_string(b));
            }
        }
        json_t *ia = json_array();
        static const char *const codes[] = {"read",   "vread",          "update",
                                            "delete", "history-instance", "create",
                                            "search-type"};
        for (size_t k = 0; k < sizeof codes / sizeof codes[0]; k++)
            json_array_append_new(ia, json_pack("{s:s}", "code", codes[k]));
        json_t *res = json_pack("{s:s,s:o,s:s,s:b,s:b,s:b,s:b,s:o,s:o}", "type", types[t],
                                "interaction", ia, "versioning", "versioned", "readHistory", 1,
                                "updateCreate", 1, "conditionalCreate", 1, "conditionalUpdate",
                                0, "searchInclude", inc, "searchParam", sp);
        json_object_set_new(res, "conditionalDelete", json_string("not-supported"));
        if (!strcmp(types[t], "Patient"))
            json_object_set_new(
                res, "operation",
                json_pack("[{s:s,s:s}]", "name", "everything", "definition",
                          "http://hl7.org/fhir/OperationDefinition/Patient-everything"));
        json_array_append_new(resources, res);
    }
    json_t *cs = json_pack(
        "{s:s,s:s,s:s,s:s,s:s,s:s,s:{s:s,s:s},s:[s],s:[{s:s,s:o,s:[{s:s},{s:s}]}]}",
        "resourceType", "CapabilityStatement", "status", "active", "date", "2026-01-01", "kind",
        "instance", "fhirVersion", "4.0.1", "publisher", "Tern", "software", "name", "Tern",
        "version", TERN_VERSION, "format", "json", "rest", "mode", "server", "resource",
        resources, "interaction", "code", "transaction", "code", "batch");
    char *s = json_dumps(cs, JSON_COMPACT);
    json_decref(cs);
    return s;
}

/* --- HTTP --------------------------------------------------------------------------- */

fhir_rest *fhir_rest_new(const char *store_location, tbuf *err)
{
    fhir_rest *r = xcalloc(1, sizeof(*r));
    fhir_store_error e;
    if (fhir_store_open(store_location, &r->st, &e) != FHIR_STORE_OK) {
        tbuf_printf(err, "cannot open the FHIR store: %s (change fhir.store)", e.text);
        free(r);
        return NULL;
    }
    r->capability = build_capability();
    return r;
}

void fhir_rest_set_keys(fhir_rest *r, struct keyring *keys)
{
    fhir_store_set_keys(r->st, keys);

}

bool fhir_rest_read(fhir_rest *r, const char *type, const char *id, tbuf *out)
{
    fhir_store_error e;
    tbuf t = TBUF_INIT;
    bool ok = fhir_store_read(r->st, type, id, 0, NULL, &t, &e) == FHIR_STORE_OK;
    if (ok) tbuf_put(out, t.p, t.len);
    tbuf_free(&t);
    return ok;
}

bool fhir_rest_subscribe(fhir_rest *r, fhir_rest_write_fn fn, void *arg)
{
    for (size_t i = 0; i < r->nsubs; i++)
        if (r->subs[i].fn == fn && r->subs[i].arg == arg) return false;
    r->subs = xgrow(r->subs, &r->subcap, r->nsubs + 1, sizeof(*r->subs));
    r->subs[r->nsubs++] = (subscriber){fn, arg};
    return true;
}

void fhir_rest_unsubscribe(fhir_rest *r, fhir_rest_write_fn fn, void *arg)
{
    for (size_t i = 0; i < r->nsubs; i++)
        if (r->subs[i].fn == fn && r->subs[i].arg == arg) {
            r->subs[i] = r->subs[--r->nsubs];
            return;
        }
}

/* Tells the subscribers about the writes of the request just answered. A
 * subscriber may unsubscribe while called, so the list is read afresh. */
static void notify_writes(fhir_rest *r)
{
    for (size_t k = 0; k < r->nnotes; k++)
        for (size_t i = 0; i < r->nsubs; i++) {
            const write_note *n = &r->notes[k];
            r->subs[i].fn(r->subs[i].arg, n->type, n->id, n->created, n->json, n->len);
        }
    drop_notes(r, 0);
}

void fhir_rest_free(fhir_rest *r)
{
    if (!r) return;
    drop_notes(r, 0);
    free(r->notes);
    free(r->subs);
    fhir_store_close(r->st);
    free(r->capability);
    free(r);
}

bool fhir_rest_path_is_ours(const char *path)
{
    return path && !strncmp(path, "/fhir", 5) && (path[5] == '\0' || path[5] == '/');
}

static void not_allowed(const fhir_rest_request *req, op_result *o, const char *allow)
{
    (void)req;
    o->allow = allow;
    outcome(o, 405, "not-supported", "this method is not allowed here; allowed: %s", allow);
}

/* The request body, or NULL with 415 when it is not JSON. */
static const char *body_of(const fhir_rest_request *req, size_t *len, op_result *o)
{
    const char *ct = req->content_type;
    if (ct && !strstr(ct, "json")) {
        outcome(o, 415, "not-supported", "Content-Type %s: this server takes application/fhir+json",
                ct);
        return NULL;
    }
    *len = req->body ? req->body_len : 0;
    return req->body ? req->body : "";
}

static void type_request(fhir_rest *r, const fhir_rest_request *req, const char *type,
                         const char *query, op_result *o)
{
    if ((req->method == FHIR_METHOD_GET)) {
        op_search(r, req, type, query, o);
    } else if ((req->method == FHIR_METHOD_POST)) {
        size_t len;
        const char *text = body_of(req, &len, o);
        json_t *res = text ? parse_resource(text, len, type, o) : NULL;
        if (!res) return;
        op_create(r, type, res, req->if_none_exist, !prefer_has(req, "return=minimal"), o);
        json_decref(res);
    } else {
        not_allowed(req, o, "GET, POST");
    }
}

static void instance_request(fhir_rest *r, const fhir_rest_request *req, const char *type,
                             const char *id, op_result *o)
{
    const char *im = req->if_match;
    int64_t if_match = parse_etag(im);
    if (if_match < 0) {
        outcome(o, 412, "conflict", "If-Match '%s' is not a version ETag like W/\"3\"", im);
        return;
    }
    if ((req->method == FHIR_METHOD_GET)) {
        op_read(r, type, id, 0, o);
    } else if ((req->method == FHIR_METHOD_PUT)) {
        size_t len;
        const char *text = body_of(req, &len, o);
        json_t *res = text ? parse_resource(text, len, type, o) : NULL;
        if (!res) return;
        op_update(r, type, id, res, if_match, !prefer_has(req, "return=minimal"), o);
        json_decref(res);
    } else if ((req->method == FHIR_METHOD_DELETE)) {
        op_delete(r, type, id, if_match, o);
    } else {
        not_allowed(req, o, "GET, PUT, DELETE");
    }
}

static void route(fhir_rest *r, const fhir_rest_request *req, char **seg, size_t nseg,
                  const char *query, op_result *o)
{
    if (nseg == 0) {
        if (!(req->method == FHIR_METHOD_POST)) {
            not_allowed(req, o, "POST");
            return;
        }
        size_t len;
        const char *text = body_of(req, &len, o);
        if (text) op_bundle(r, text, len, o);
        return;
    }
    if (nseg == 1 && !strcmp(seg[0], "metadata")) {
        if (!(req->method == FHIR_METHOD_GET)) {
            not_allowed(req, o, "GET");
            return;
        }
        o->status = 200;
        tbuf_puts(&o->body, r->capability);
        return;
    }
    const char *type = seg[0];
    if (!fhir_type_known(type) || !strcmp(type, "Bundle")) {
        outcome(o, 404, "not-supported", "'%s' is not a resource type this server supports (see "
                "/fhir/metadata)", type);
        return;
    }
    if (nseg >= 2 && !fhir_id_valid(seg[1]) && seg[1][0] != '$') {
        outcome(o, 400, "invalid", "'%s' is not a valid FHIR id", seg[1]);
        return;
    }
    if (nseg == 1) {
        type_request(r, req, type, query, o);
    } else if (nseg == 2) {
        instance_request(r, req, type, seg[1], o);
    } else if (nseg == 3 && !strcmp(seg[2], "$everything") && !strcmp(type, "Patient")) {
        if ((req->method == FHIR_METHOD_GET))
            op_everything(r, req, seg[1], o);
        else
            not_allowed(req, o, "GET");
    } else if ((nseg == 3 || nseg == 4) && !strcmp(seg[2], "_history")) {
        if (!(req->method == FHIR_METHOD_GET)) {
            not_allowed(req, o, "GET");
            return;
        }
        if (nseg == 3) {
            op_history(r, req, type, seg[1], o);
            return;
        }
        char *end;
        long long vid = strtoll(seg[3], &end, 10);
        if (*end || vid < 1) {
            outcome(o, 404, "not-found", "'%s' is not a version number", seg[3]);
            return;
        }
        op_read(r, type, seg[1], vid, o);
    } else {
        outcome(o, 404, "not-supported", "no FHIR interaction at this path");
    }
}

/* The op_result of one interaction as the HTTP answer. */
static void to_response(const char *base, op_result *o, fhir_rest_response *out)
{
    out->status = o->status;
    out->allow = o->allow;
    if (o->v.version) {
        snprintf(out->etag, sizeof out->etag, "W/\"%" PRId64 "\"", o->v.version);
        http_date(o->v.updated_ms, out->last_modified);
    }
    if (o->location[0]) {
        snprintf(out->location, sizeof out->location, "%s/%s", base, o->location);
        out->location_header = o->status == 201 ? "Location" : "Content-Location";
    }
    out->body = o->body;
    o->body = (tbuf)TBUF_INIT;
}

void fhir_rest_answer(fhir_rest *r, const fhir_rest_request *req, fhir_rest_response *out)
{
    assert(r && req && req->path && out);
    *out = (fhir_rest_response){.body = TBUF_INIT};
    char base[300];
    base_url(req, base);
    op_result o = {0};
    r->collect = r->nsubs > 0;
    const char *path = fhir_rest_path_is_ours(req->path) ? req->path + 5 : ""; /* after "/fhir" */
    char *copy = xstrdup(path);
    char *seg[6];
    size_t nseg = 0;
    bool too_deep = false;
    for (char *save = NULL, *t = strtok_r(copy, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
        if (nseg == 6) {
            too_deep = true;
            break;
        }
        seg[nseg++] = t;
    }
    if (too_deep)
        outcome(&o, 404, "not-supported", "no FHIR interaction at this path");
    else
        route(r, req, seg, nseg, req->query, &o);
    if (!o.status) outcome(&o, 500, "exception", "no answer was produced");
    if (o.status >= 400) o.v.version = o.status == 410 ? o.v.version : 0;
    to_response(base, &o, out);
    r->collect = false;
    tbuf_free(&o.body);
    free(copy);
}

void fhir_rest_response_free(fhir_rest_response *rs)
{
    if (rs) tbuf_free(&rs->body);
}

static fhir_method method_of(struct evhttp_request *req)
{
    switch (evhttp_request_get_command(req)) {
    case EVHTTP_REQ_GET: return FHIR_METHOD_GET;
    case EVHTTP_REQ_POST: return FHIR_METHOD_POST;
    case EVHTTP_REQ_PUT: return FHIR_METHOD_PUT;
    case EVHTTP_REQ_DELETE: return FHIR_METHOD_DELETE;
    default: return FHIR_METHOD_OTHER;
    }
}

static void free_body(const void *data, size_t len, void *arg)
{
    (void)len, (void)arg;
    free((void *)data);
}

void fhir_rest_handle(fhir_rest *r, struct evhttp_request *req)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    struct evbuffer *body = evhttp_request_get_input_buffer(req);
    size_t body_len = evbuffer_get_length(body);
    fhir_rest_request rq = {
        .method = method_of(req),
        .path = evhttp_uri_get_path(uri),
        .query = evhttp_uri_get_query(uri),
        .host = evhttp_find_header(in, "Host"),
        .content_type = evhttp_find_header(in, "Content-Type"),
        .if_match = evhttp_find_header(in, "If-Match"),
        .if_none_exist = evhttp_find_header(in, "If-None-Exist"),
        .prefer = evhttp_find_header(in, "Prefer"),
        .body = body_len ? (const char *)evbuffer_pullup(body, -1) : NULL,
        .body_len = body_len,
    };
    fhir_rest_response rs;
    fhir_rest_answer(r, &rq, &rs);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    if (rs.body.len) evhttp_add_header(h, "Content-Type", CT_FHIR);
    if (rs.etag[0]) evhttp_add_header(h, "ETag", rs.etag);
    if (rs.last_modified[0]) evhttp_add_header(h, "Last-Modified", rs.last_modified);
    if (rs.location_header) evhttp_add_header(h, rs.location_header, rs.location);
    if (rs.allow) evhttp_add_header(h, "Allow", rs.allow);
    size_t len = rs.body.len;
    if (len) {
        char *p = tbuf_detach(&rs.body, NULL);
        evbuffer_add_reference(evhttp_request_get_output_buffer(req), p, len, free_body, NULL);
    }
    evhttp_send_reply(req, rs.status, NULL, NULL);
    fhir_rest_response_free(&rs);
    notify_writes(r); /* after the answer: the writes are durable and answered */
}
