/*
 * sec_audit: see sec_audit.h for the chain, the seals and the writer.
 *
 * The queue is a ring of pointers to pending records, each one malloc'ed
 * block holding the record's strings. The writer takes up to BATCH of them
 * under the mutex, then, without it, opens a write transaction (which reads
 * the chain's tail), chains and inserts them, adds a seal when one is due,
 * and commits. A failed commit is retried with the same records after a
 * pause, so a full disk delays the trail but never reorders or drops it.
 */
#include "sec/sec_audit.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "base/mem.h"

#define GATHER_MS 2 /* how long the writer lets records gather */
#define BATCH 4096
#define RETRY_MS 200
#define NFIELDS 8

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- keys, hashes, MACs --------------------------------------------------------------- */

sec_status sec_audit_key_load(const char *file, uint8_t key[SEC_AUDIT_KEY_MAX], size_t *len,
                              sec_error *err)
{
    char buf[SEC_AUDIT_KEY_MAX + 2];
    size_t n = 0;
    if (file) {
        FILE *f = fopen(file, "rb");
        if (!f)
            return sec_fail(err, errno == ENOENT ? SEC_ERR_NO_KEY : SEC_ERR_IO,
                            "cannot read the audit key file %s: %s (security.audit_key_file)",
                            file, strerror(errno));
        n = fread(buf, 1, sizeof buf, f);
        fclose(f);
    } else {
        const char *v = getenv("TERN_AUDIT_KEY");
        if (!v || !*v)
            return sec_fail(err, SEC_ERR_NO_KEY,
                            "no audit key: set security.audit_key_file or TERN_AUDIT_KEY");
        n = strlen(v);
        if (n > sizeof buf) n = sizeof buf;
        memcpy(buf, v, n);
    }
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    if (n > SEC_AUDIT_KEY_MAX)
        return sec_fail(err, SEC_ERR_ARG, "the audit key is longer than %d bytes",
                        SEC_AUDIT_KEY_MAX);
    if (n < SEC_AUDIT_KEY_MIN)
        return sec_fail(err, SEC_ERR_ARG,
                        "the audit key is %zu bytes; use at least %d random bytes (e.g. "
                        "openssl rand -hex 32)",
                        n, SEC_AUDIT_KEY_MIN);
    memcpy(key, buf, n);
    *len = n;
    return SEC_OK;
}

static void put_field(tbuf *b, const char *s)
{
    if (!s) s = "";
    tbuf_printf(b, "%zu:", strlen(s));
    tbuf_puts(b, s);
    tbuf_putc(b, ',');
}

static void encode(const sec_record *r, tbuf *b)
{
    char at[32];
    tbuf_puts(b, "tern-audit-v1,");
    snprintf(at, sizeof at, "%" PRId64, r->at);
    put_field(b, at);
    const char *v[NFIELDS] = {r->actor,  r->role,   r->action,  r->channel,
                              r->patient, r->source, r->outcome, r->detail};
    for (int i = 0; i < NFIELDS; i++)
        put_field(b, v[i]);
    put_field(b, r->prev);
}

void sec_audit_hash(const sec_record *r, char out[SEC_SHA256_HEX])
{
    tbuf b = TBUF_INIT;
    encode(r, &b);
    uint8_t d[SEC_SHA256_LEN];
    sec_sha256(b.p, b.len, d);
    sec_hex(d, sizeof d, out);
    tbuf_free(&b);
}

void sec_audit_seal_mac(const uint8_t *key, size_t klen, const sec_seal *s,
                        char out[SEC_SHA256_HEX])
{
    char msg[160];
    int n = snprintf(msg, sizeof msg, "tern-audit-seal-v1,%" PRId64 ",%s,%" PRId64, s->upto,
                     s->hash, s->at);
    uint8_t d[SEC_SHA256_LEN];
    sec_hmac_sha256(key, klen, msg, (size_t)n, d);
    sec_hex(d, sizeof d, out);
}

/* --- the writer ------------------------------------------------------------------------ */

typedef struct pending {
    int64_t at;
    const char *f[NFIELDS]; /* into the same block */
} pending;

struct sec_audit {
    sec_db *db;
    sec_audit_options opt;
    uint8_t key[SEC_AUDIT_KEY_MAX];
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t work;  /* writer waits: records or quit */
    pthread_cond_t room;  /* producers wait: space, or committed */
    pending **ring;
    size_t head, n;
    bool quit;
    uint64_t added, written;
    sec_error last_err; /* under mu */
    bool failing;
    /* writer thread only */
    uint64_t since_seal;
    int64_t last_seal_at;
};

static pending *pending_new(const sec_event *ev)
{
    const char *v[NFIELDS] = {ev->actor,  ev->role,   ev->action,  ev->channel,
                              ev->patient, ev->source, ev->outcome, ev->detail};
    size_t total = sizeof(pending);
    for (int i = 0; i < NFIELDS; i++)
        total += (v[i] ? strlen(v[i]) : 0) + 1;
    pending *p = xmalloc(total);
    char *at = (char *)(p + 1);
    p->at = ev->at ? ev->at : now_ms();
    for (int i = 0; i < NFIELDS; i++) {
        size_t n = v[i] ? strlen(v[i]) : 0;
        memcpy(at, v[i] ? v[i] : "", n);
        at[n] = '\0';
        p->f[i] = at;
        at += n + 1;
    }
    return p;
}

void sec_audit_add(sec_audit *a, const sec_event *ev)
{
    pending *p = pending_new(ev);
    pthread_mutex_lock(&a->mu);
    while (a->n == a->opt.queue)
        pthread_cond_wait(&a->room, &a->mu);
    a->ring[(a->head + a->n) % a->opt.queue] = p;
    a->n++;
    a->added++;
    pthread_cond_signal(&a->work);
    pthread_mutex_unlock(&a->mu);
}

/* Adds a seal over the tail (seq, hash) in the open transaction. */
static sec_status seal(sec_audit *a, int64_t seq, const char *hash, sec_error *err)
{
    sec_seal s = {.upto = seq, .at = now_ms()};
    snprintf(s.hash, sizeof s.hash, "%s", hash);
    sec_audit_seal_mac(a->opt.key, a->opt.key_len, &s, s.mac);
    return a->db->ops->seal_insert(a->db, &s, err);
}

/* One transaction: the records of batch, then a seal when due. */
static sec_status write_batch(sec_audit *a, pending **batch, size_t n, bool final, sec_error *err)
{
    int64_t seq;
    char prev[SEC_SHA256_HEX];
    sec_status st = a->db->ops->audit_begin(a->db, &seq, prev, err);
    if (st != SEC_OK) return st;
    for (size_t i = 0; i < n && st == SEC_OK; i++) {
        pending *p = batch[i];
        sec_record r = {.seq = ++seq, .at = p->at};
        const char **v[NFIELDS] = {&r.actor,   &r.role,   &r.action,  &r.channel,
                                   &r.patient, &r.source, &r.outcome, &r.detail};
        for (int k = 0; k < NFIELDS; k++)
            *v[k] = p->f[k];
        memcpy(r.prev, prev, sizeof prev);
        sec_audit_hash(&r, r.hash);
        st = a->db->ops->audit_insert(a->db, &r, err);
        memcpy(prev, r.hash, sizeof prev);
    }
    uint64_t since = a->since_seal + n;
    bool due = a->opt.key && since > 0 &&
               (final || since >= a->opt.seal_every ||
                now_ms() - a->last_seal_at >= (int64_t)a->opt.seal_interval_ms);
    if (st == SEC_OK && due && seq > 0) st = seal(a, seq, prev, err);
    if (st != SEC_OK) {
        a->db->ops->audit_end(a->db, false, NULL);
        return st;
    }
    st = a->db->ops->audit_end(a->db, true, err);
    if (st == SEC_OK) {
        a->since_seal = due ? 0 : since;
        if (due) a->last_seal_at = now_ms();
    }
    return st;
}

static void *writer_main(void *arg)
{
    pthread_setname_np(pthread_self(), "tern-audit");
    sec_audit *a = arg;
    pending **batch = xcalloc(BATCH, sizeof *batch);
    pthread_mutex_lock(&a->mu);
    for (;;) {
        while (a->n == 0 && !a->quit) {
            int64_t wait_ms = (int64_t)a->opt.seal_interval_ms;
            if (a->since_seal && a->opt.key)
                wait_ms = a->last_seal_at + (int64_t)a->opt.seal_interval_ms - now_ms();
            if (wait_ms <= 0 && a->since_seal && a->opt.key) break;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += wait_ms / 1000;
            ts.tv_nsec += (wait_ms % 1000) * 1000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&a->work, &a->mu, &ts);
        }
        /* Let a burst gather (bounded: records are committed within about
         * GATHER_MS of being added), so that a busy API costs one
         * transaction and one wake-up per burst, not per record. */
        if (!a->quit && a->n < BATCH / 2) {
            pthread_mutex_unlock(&a->mu);
            struct timespec gather = {0, GATHER_MS * 1000000L};
            nanosleep(&gather, NULL);
            pthread_mutex_lock(&a->mu);
        }
        size_t n = 0;
        while (n < BATCH && n < a->n) {
            batch[n] = a->ring[(a->head + n) % a->opt.queue];
            n++;
        }
        bool final = a->quit && n == a->n;
        pthread_mutex_unlock(&a->mu);
        sec_error err = {0};
        sec_status st = SEC_OK;
        bool need_seal = a->opt.key && a->since_seal > 0;
        if (n || need_seal) st = write_batch(a, batch, n, final, &err);
        pthread_mutex_lock(&a->mu);
        if (st != SEC_OK) {
            a->last_err = err;
            a->failing = true;
            if (a->quit) { /* give up: close reports it */
                for (size_t i = 0; i < a->n; i++)
                    free(a->ring[(a->head + i) % a->opt.queue]);
                a->head = a->n = 0;
                pthread_cond_broadcast(&a->room);
                break;
            }
            pthread_mutex_unlock(&a->mu);
            struct timespec pause = {0, RETRY_MS * 1000000L};
            nanosleep(&pause, NULL);
            pthread_mutex_lock(&a->mu);
            continue;
        }
        a->failing = false;
        for (size_t i = 0; i < n; i++)
            free(batch[i]);
        a->head = (a->head + n) % a->opt.queue;
        a->n -= n;
        a->written += n;
        pthread_cond_broadcast(&a->room);
        if (a->quit && a->n == 0 && (!a->opt.key || a->since_seal == 0)) break;
    }
    pthread_mutex_unlock(&a->mu);
    free(batch);
    return NULL;
}

sec_status sec_audit_open(const char *location, const sec_audit_options *opt, sec_audit **out,
                          sec_error *err)
{
    *out = NULL;
    sec_audit *a = xcalloc(1, sizeof *a);
    if (opt) a->opt = *opt;
    if (!a->opt.seal_every) a->opt.seal_every = 10000;
    if (!a->opt.seal_interval_ms) a->opt.seal_interval_ms = 60000;
    if (!a->opt.queue) a->opt.queue = 65536;
    if (a->opt.key) {
        if (a->opt.key_len > SEC_AUDIT_KEY_MAX) a->opt.key_len = SEC_AUDIT_KEY_MAX;
        memcpy(a->key, a->opt.key, a->opt.key_len);
        a->opt.key = a->key;
    }
    sec_status st = sec_db_open(location, &a->db, err);
    if (st != SEC_OK) {
        free(a);
        return st;
    }
    a->ring = xcalloc(a->opt.queue, sizeof *a->ring);
    a->last_seal_at = now_ms();
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->work, NULL);
    pthread_cond_init(&a->room, NULL);
    if (pthread_create(&a->thread, NULL, writer_main, a) != 0) {
        pthread_mutex_destroy(&a->mu);
        pthread_cond_destroy(&a->work);
        pthread_cond_destroy(&a->room);
        sec_db_close(a->db);
        free(a->ring);
        free(a);
        return sec_fail(err, SEC_ERR_IO, "cannot start the audit writer thread");
    }
    *out = a;
    return SEC_OK;
}

sec_status sec_audit_flush(sec_audit *a, sec_error *err)
{
    pthread_mutex_lock(&a->mu);
    uint64_t target = a->added;
    while (a->written < target && !(a->failing && a->quit))
        pthread_cond_wait(&a->room, &a->mu);
    sec_status st = SEC_OK;
    if (a->failing) {
        if (err) *err = a->last_err;
        st = a->last_err.code ? a->last_err.code : SEC_ERR_IO;
    }
    pthread_mutex_unlock(&a->mu);
    return st;
}

uint64_t sec_audit_written(sec_audit *a)
{
    pthread_mutex_lock(&a->mu);
    uint64_t n = a->written;
    pthread_mutex_unlock(&a->mu);
    return n;
}

sec_status sec_audit_close(sec_audit *a, sec_error *err)
{
    if (!a) return SEC_OK;
    pthread_mutex_lock(&a->mu);
    a->quit = true;
    pthread_cond_signal(&a->work);
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->thread, NULL);
    sec_status st = SEC_OK;
    if (a->failing) {
        if (err) *err = a->last_err;
        st = a->last_err.code ? a->last_err.code : SEC_ERR_IO;
    }
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->work);
    pthread_cond_destroy(&a->room);
    sec_db_close(a->db);
    free(a->ring);
    memset(a->key, 0, sizeof a->key);
    free(a);
    return st;
}

/* --- verify ----------------------------------------------------------------------------- */

typedef struct seals {
    sec_seal *v;
    size_t n, cap, next; /* next: the first seal not yet matched to a record */
} seals;

static bool collect_seal(void *ctx, const sec_seal *s)
{
    seals *x = ctx;
    x->v = xgrow(x->v, &x->cap, x->n + 1, sizeof *x->v);
    x->v[x->n++] = *s;
    return true;
}

typedef struct walk {
    sec_verify *out;
    seals *seals;
    const uint8_t *key;
    size_t klen;
    int64_t last_seq;
    char last_hash[SEC_SHA256_HEX];
} walk;

static bool broken(walk *w, int64_t at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool broken(walk *w, int64_t at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->out->problem, sizeof w->out->problem, fmt, ap);
    va_end(ap);
    w->out->ok = false;
    w->out->broken_at = at;
    return false;
}

/* Checks the seals that cover record r (r's hash is known good). */
static bool check_seals(walk *w, const sec_record *r)
{
    seals *s = w->seals;
    for (; s->next < s->n && s->v[s->next].upto <= r->seq; s->next++) {
        const sec_seal *x = &s->v[s->next];
        if (x->upto < r->seq)
            return broken(w, x->upto,
                          "seal %" PRId64 " covers record %" PRId64
                          ", which is missing: records were deleted",
                          x->id, x->upto);
        if (strcmp(x->hash, r->hash))
            return broken(w, r->seq,
                          "seal %" PRId64 " does not match record %" PRId64
                          ": the chain up to it was rewritten",
                          x->id, r->seq);
        if (w->key) {
            char mac[SEC_SHA256_HEX];
            sec_audit_seal_mac(w->key, w->klen, x, mac);
            if (!sec_equal(mac, x->mac, SEC_SHA256_HEX))
                return broken(w, r->seq,
                              "seal %" PRId64 " (records up to %" PRId64
                              ") has a bad MAC: the seal was forged or altered, or the audit "
                              "key is not the one it was made with",
                              x->id, r->seq);
        }
        w->out->sealed_upto = r->seq;
    }
    return true;
}

static bool verify_record(void *ctx, const sec_record *r)
{
    walk *w = ctx;
    w->out->records++;
    if (r->seq != w->last_seq + 1)
        return broken(w, w->last_seq + 1,
                      "record%s %" PRId64 "..%" PRId64 " missing (deleted) before record %" PRId64,
                      r->seq - w->last_seq > 2 ? "s" : "", w->last_seq + 1, r->seq - 1, r->seq);
    char h[SEC_SHA256_HEX];
    sec_audit_hash(r, h);
    if (strcmp(h, r->hash))
        return broken(w, r->seq,
                      "record %" PRId64 " was changed: its content does not match its hash",
                      r->seq);
    if (strcmp(r->prev, w->last_hash))
        return broken(w, r->seq,
                      "record %" PRId64 " does not follow record %" PRId64
                      " in the chain: a record was inserted, deleted or reordered here",
                      r->seq, w->last_seq);
    w->last_seq = r->seq;
    memcpy(w->last_hash, r->hash, sizeof w->last_hash);
    return check_seals(w, r);
}

sec_status sec_audit_verify(sec_db *db, const uint8_t *key, size_t klen, sec_verify *out,
                            sec_error *err)
{
    memset(out, 0, sizeof *out);
    out->ok = true;
    out->key_missing = key == NULL;
    seals s = {0};
    sec_status st = db->ops->seal_scan(db, collect_seal, &s, err);
    walk w = {.out = out, .seals = &s, .key = key, .klen = klen};
    memset(w.last_hash, '0', SEC_SHA256_HEX - 1);
    if (st == SEC_OK) st = db->ops->audit_scan(db, NULL, verify_record, &w, err);
    out->seals = (int64_t)s.n;
    if (st == SEC_OK && out->ok) {
        for (size_t i = 1; i < s.n && out->ok; i++)
            if (s.v[i].upto < s.v[i - 1].upto)
                broken(&w, s.v[i].id, "seal %" PRId64 " goes back in the chain: seals reordered",
                       s.v[i].id);
        if (out->ok && s.next < s.n)
            broken(&w, s.v[s.next].upto,
                   "seal %" PRId64 " covers record %" PRId64 " but the trail ends at record %" PRId64
                   ": records at the end were deleted",
                   s.v[s.next].id, s.v[s.next].upto, w.last_seq);
    }
    free(s.v);
    return st;
}

/* --- FHIR export ------------------------------------------------------------------------- */

typedef struct export_ctx {
    json_t *entries;
} export_ctx;

static void iso_time(int64_t ms, char *buf, size_t size)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char base[32];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, size, "%s.%03dZ", base, (int)(ms % 1000));
}

/* AuditEvent.type / subtype / action / outcome from Tern's action name:
 * DICOM audit types (110110 patient record, 110106 export, 110114 user
 * authentication, 110112 query) and FHIR REST interactions. */
static void fhir_codes(const char *action, const char **type, const char **type_display,
                       const char **crud)
{
    *type = "110110";
    *type_display = "Patient Record";
    *crud = "R";
    if (!strncmp(action, "login", 5) || !strcmp(action, "token.use")) {
        *type = "110114";
        *type_display = "User Authentication";
        *crud = "E";
    } else if (strstr(action, "export")) {
        *type = "110106";
        *type_display = "Export";
    } else if (strstr(action, "reprocess") || strstr(action, "edit") || strstr(action, "post") ||
               strstr(action, "write") || strstr(action, "admin") || strstr(action, "config")) {
        *crud = strstr(action, "post") ? "C" : "U";
    } else if (!strncmp(action, "message.list", 12) || strstr(action, "search")) {
        *type = "110112";
        *type_display = "Query";
        *crud = "E";
    }
}

static bool export_record(void *ctx, const sec_record *r)
{
    export_ctx *x = ctx;
    char when[40], id[32];
    iso_time(r->at, when, sizeof when);
    snprintf(id, sizeof id, "tern-audit-%" PRId64, r->seq);
    const char *type, *type_display, *crud;
    fhir_codes(r->action, &type, &type_display, &crud);
    /* 0 success, 4 minor failure (refused), 8 serious failure */
    const char *outcome = !strcmp(r->outcome, "ok") ? "0" : !strcmp(r->outcome, "denied") ? "4" : "8";
    json_t *agent = json_pack("{s:{s:s}, s:s, s:b}", "who", "display", r->actor, "altId", r->actor,
                              "requestor", 1);
    if (*r->role)
        json_object_set_new(agent, "role",
                            json_pack("[{s:s}]", "text", r->role));
    if (*r->source)
        json_object_set_new(agent, "network",
                            json_pack("{s:s, s:s}", "address", r->source, "type",
                                      strcmp(r->source, "cli") ? "2" : "1"));
    json_t *ev = json_pack(
        "{s:s, s:s, s:{s:s, s:s, s:s}, s:[{s:s, s:s}], s:s, s:s, s:s, s:s, s:[o], s:{s:{s:s}, "
        "s:[{s:s, s:s}]}}",
        "resourceType", "AuditEvent", "id", id, "type", "system",
        "http://dicom.nema.org/resources/ontology/DCM", "code", type, "display", type_display,
        "subtype", "system", "urn:tern:audit-action", "code", r->action, "action", crud,
        "recorded", when, "outcome", outcome, "outcomeDesc", r->outcome, "agent", agent, "source",
        "observer", "display", "Tern", "type", "system",
        "http://terminology.hl7.org/CodeSystem/security-source-type", "code", "4");
    json_t *entity = json_array();
    if (*r->patient)
        json_array_append_new(
            entity, json_pack("{s:{s:{s:s}}, s:{s:s, s:s, s:s}}", "what", "identifier", "value",
                              r->patient, "type", "system",
                              "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code",
                              "1", "display", "Person"));
    if (*r->channel || *r->detail) {
        json_t *e = json_pack("{s:s}", "name", *r->channel ? r->channel : "tern");
        if (*r->detail) json_object_set_new(e, "description", json_string(r->detail));
        json_array_append_new(entity, e);
    }
    if (json_array_size(entity))
        json_object_set_new(ev, "entity", entity);
    else
        json_decref(entity);
    char url[64];
    snprintf(url, sizeof url, "urn:tern:audit:%" PRId64, r->seq);
    json_array_append_new(x->entries, json_pack("{s:s, s:o}", "fullUrl", url, "resource", ev));
    return true;
}

sec_status sec_audit_export_fhir(sec_db *db, const sec_audit_filter *f, tbuf *out, sec_error *err)
{
    export_ctx x = {json_array()};
    sec_status st = db->ops->audit_scan(db, f, export_record, &x, err);
    if (st == SEC_OK) {
        char when[40];
        iso_time(now_ms(), when, sizeof when);
        json_t *bundle = json_pack("{s:s, s:s, s:s, s:o}", "resourceType", "Bundle", "type",
                                   "collection", "timestamp", when, "entry", x.entries);
        char *text = json_dumps(bundle, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
        tbuf_puts(out, text);
        tbuf_putc(out, '\n');
        free(text);
        json_decref(bundle);
    } else {
        json_decref(x.entries);
    }
    return st;
}
