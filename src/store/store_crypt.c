/*
 * store_crypt: see store_crypt.h. The scratch is a set of reusable tbufs:
 * a pointer into one is taken only once that tbuf has stopped growing.
 */
#include "store/store_crypt.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "sec/keys.h"

#define BUFS_PER_PUT 4 /* body, envelope, error, tokens (patient, then orders) */

struct store_crypt {
    store_put *puts;
    size_t cap_puts;
    store_mark *marks;
    size_t cap_marks;
    tbuf *bufs;
    size_t n_bufs;
    const char **orders; /* token pointers of every put, in order */
    size_t cap_orders;
    char patient_tok[KEYS_TOKEN_LEN + 1], order_tok[KEYS_TOKEN_LEN + 1]; /* filters */
    tbuf plain, work;
};

/* Scratches of logged batches kept for the next batches (crypt_pool_take):
 * at most POOL_MAX, and none that holds more than POOL_KEEP_BYTES, so the
 * memory kept stays bounded whatever the messages' size. */
#define POOL_MAX 32
#define POOL_KEEP_BYTES (4u << 20)

struct store_crypt_pool {
    pthread_mutex_t mu;
    struct store_crypt *free[POOL_MAX];
    size_t n;
};

struct store_crypt_pool *crypt_pool_new(void)
{
    struct store_crypt_pool *p = xcalloc(1, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    return p;
}

void crypt_pool_free(struct store_crypt_pool *p)
{
    if (!p) return;
    for (size_t i = 0; i < p->n; i++) store_crypt_scratch_free(p->free[i]);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

struct store_crypt *crypt_pool_take(struct store_crypt_pool *p)
{
    struct store_crypt *c = NULL;
    if (!p) return NULL;
    pthread_mutex_lock(&p->mu);
    if (p->n) c = p->free[--p->n];
    pthread_mutex_unlock(&p->mu);
    return c;
}

static size_t scratch_bytes(const struct store_crypt *c)
{
    size_t n = c->n_bufs * sizeof *c->bufs + c->cap_puts * sizeof *c->puts;
    for (size_t i = 0; i < c->n_bufs; i++) n += c->bufs[i].cap;
    return n;
}

void crypt_pool_give(struct store_crypt_pool *p, struct store_crypt *c)
{
    if (!c) return;
    if (p && scratch_bytes(c) <= POOL_KEEP_BYTES) {
        pthread_mutex_lock(&p->mu);
        bool kept = p->n < POOL_MAX;
        if (kept) p->free[p->n++] = c;
        pthread_mutex_unlock(&p->mu);
        if (kept) return;
    }
    store_crypt_scratch_free(c);
}

static struct store_crypt *scratch_in(struct store_crypt **slot, size_t bufs)
{
    if (!*slot) *slot = xcalloc(1, sizeof **slot);
    struct store_crypt *c = *slot;
    if (c->n_bufs < bufs) {
        c->bufs = xrealloc(c->bufs, bufs * sizeof *c->bufs);
        memset(c->bufs + c->n_bufs, 0, (bufs - c->n_bufs) * sizeof *c->bufs);
        c->n_bufs = bufs;
    }
    for (size_t i = 0; i < bufs; i++) tbuf_reset(&c->bufs[i]);
    return c;
}

static struct store_crypt *scratch(store *s, size_t bufs)
{
    return scratch_in(&s->crypt, bufs);
}

void store_crypt_free(store *s)
{
    store_crypt_scratch_free(s->crypt);
    s->crypt = NULL;
}

void store_crypt_scratch_free(struct store_crypt *c)
{
    if (!c) return;
    for (size_t i = 0; i < c->n_bufs; i++) tbuf_free(&c->bufs[i]);
    free(c->bufs);
    free(c->puts);
    free(c->marks);
    free(c->orders);
    tbuf_free(&c->plain);
    tbuf_free(&c->work);
    free(c);
}

static store_status key_fail(store_error *err, const tbuf *why)
{
    return store_fail(err, STORE_ERR_KEY, "%s", why->p ? why->p : "encryption failed");
}

static bool has(const char *s)
{
    return s && *s;
}

/* --- the way in ------------------------------------------------------------------- */

/* Seals the body into bufs[0] and the envelope into bufs[1], writes the
 * patient token then the order-number tokens into bufs[3], and points
 * *raw_out, *len_out and m (a copy of meta) at them. */
static store_status seal_message(store *s, struct store_crypt *c, tbuf *bufs, const void *raw,
                                 size_t raw_len, const store_meta *meta, store_meta *m,
                                 const void **raw_out, size_t *len_out, const char ***orders,
                                 store_error *err)
{
    tbuf why = TBUF_INIT;
    tbuf_reset(&c->work);
    tbuf_printf(&c->work, "%zu\n%s", raw_len, has(meta->patient_id) ? meta->patient_id : "");
    int rc = keys_seal(s->keys, "body", raw_len ? raw : "", raw_len, &bufs[0], &why);
    if (rc == 0) rc = keys_seal_text(s->keys, c->work.p, &bufs[1], &why);
    memset(c->work.p, 0, c->work.len);
    if (rc != 0) {
        store_status st = key_fail(err, &why);
        tbuf_free(&why);
        return st;
    }
    *m = *meta;
    *raw_out = bufs[0].p;
    *len_out = bufs[0].len;
    m->sealed = bufs[1].p;
    char tok[KEYS_TOKEN_LEN + 1] = "";
    if (has(meta->patient_id)) keys_token(s->keys, "patient", meta->patient_id, tok);
    tbuf_put(&bufs[3], tok, strlen(tok) + 1);
    for (size_t i = 0; i < meta->n_order_ids; i++) {
        tok[0] = '\0';
        if (has(meta->order_ids[i])) keys_token(s->keys, "order", meta->order_ids[i], tok);
        tbuf_put(&bufs[3], tok, strlen(tok) + 1);
    }
    /* bufs[3] is complete: point into it */
    const char *t = bufs[3].p;
    m->patient_id = *t ? t : NULL;
    t += strlen(t) + 1;
    for (size_t i = 0; i < meta->n_order_ids; i++, t += strlen(t) + 1) (*orders)[i] = *t ? t : NULL;
    m->order_ids = meta->n_order_ids ? *orders : NULL;
    *orders += meta->n_order_ids;
    return STORE_OK;
}

static store_status seal_error(store *s, const char *error, tbuf *buf, const char **out,
                               store_error *err)
{
    *out = error;
    if (!has(error)) return STORE_OK;
    tbuf why = TBUF_INIT;
    if (keys_seal_text(s->keys, error, buf, &why) != 0) {
        store_status st = key_fail(err, &why);
        tbuf_free(&why);
        return st;
    }
    *out = buf->p;
    return STORE_OK;
}

store_status crypt_puts(store *s, struct store_crypt **slot, const store_put *items, size_t n,
                        const store_put **out, store_error *err)
{
    *out = items;
    if (!s->keys) return STORE_OK;
    struct store_crypt *c = scratch_in(slot, n * BUFS_PER_PUT);
    c->puts = xgrow(c->puts, &c->cap_puts, n, sizeof *c->puts);
    size_t n_orders = 0;
    for (size_t i = 0; i < n; i++) n_orders += items[i].meta.n_order_ids;
    c->orders = xgrow(c->orders, &c->cap_orders, n_orders + 1, sizeof *c->orders);
    const char **orders = c->orders;
    for (size_t i = 0; i < n; i++) {
        const store_put *p = &items[i];
        store_put *q = &c->puts[i];
        tbuf *b = &c->bufs[i * BUFS_PER_PUT];
        *q = *p;
        store_status st = seal_message(s, c, b, p->raw, p->raw_len, &p->meta, &q->meta, &q->raw,
                                       &q->raw_len, &orders, err);
        if (st == STORE_OK) st = seal_error(s, p->error, &b[2], &q->error, err);
        if (st != STORE_OK) return st;
    }
    *out = c->puts;
    return STORE_OK;
}

store_status crypt_marks(store *s, const store_mark *marks, size_t n, const store_mark **out,
                         store_error *err)
{
    *out = marks;
    if (!s->keys) return STORE_OK;
    struct store_crypt *c = scratch(s, n);
    c->marks = xgrow(c->marks, &c->cap_marks, n, sizeof *c->marks);
    for (size_t i = 0; i < n; i++) {
        c->marks[i] = marks[i];
        store_status st = seal_error(s, marks[i].error, &c->bufs[i], &c->marks[i].error, err);
        if (st != STORE_OK) return st;
    }
    *out = c->marks;
    return STORE_OK;
}

store_status crypt_edit(store *s, const void *raw, size_t raw_len, const store_meta *meta,
                        const void **raw_out, size_t *len_out, store_meta *meta_out,
                        store_error *err)
{
    *raw_out = raw;
    *len_out = raw_len;
    *meta_out = *meta;
    if (!s->keys) return STORE_OK;
    struct store_crypt *c = scratch(s, BUFS_PER_PUT);
    c->orders = xgrow(c->orders, &c->cap_orders, meta->n_order_ids + 1, sizeof *c->orders);
    const char **orders = c->orders;
    return seal_message(s, c, c->bufs, raw, raw_len, meta, meta_out, raw_out, len_out, &orders, err);
}

void crypt_filter(store *s, const store_filter *f, store_filter *out)
{
    *out = *f;
    if (!s->keys) return;
    if (!s->crypt) s->crypt = xcalloc(1, sizeof *s->crypt);
    if (has(f->patient_id)) {
        keys_token(s->keys, "patient", f->patient_id, s->crypt->patient_tok);
        out->patient_id = s->crypt->patient_tok;
    }
    if (has(f->order_id)) {
        keys_token(s->keys, "order", f->order_id, s->crypt->order_tok);
        out->order_id = s->crypt->order_tok;
    }
}

/* --- the way out ------------------------------------------------------------------ */

static store_status no_key(store_error *err, int64_t id, const char *what)
{
    return store_fail(err, STORE_ERR_KEY,
                      "message %" PRId64 ": the %s is encrypted at rest and no master key is "
                      "configured (TERN_MASTER_KEY or encryption.key_file)",
                      id, what);
}

/* Opens sealed text s (or copies plain text) into buf. */
static store_status open_text(store *s, int64_t id, const char *what, const char *text, tbuf *buf,
                              store_error *err)
{
    if (!keys_is_sealed_text(text)) {
        tbuf_puts(buf, text);
        return STORE_OK;
    }
    if (!s->keys) return no_key(err, id, what);
    tbuf why = TBUF_INIT;
    store_status st = STORE_OK;
    if (keys_open_text(s->keys, text, buf, &why) != 0)
        st = store_fail(err, STORE_ERR_KEY, "message %" PRId64 ": %s: %s", id, what, why.p);
    tbuf_free(&why);
    return st;
}

/* Parses an opened envelope "LEN\nPATIENT" in env. */
static store_status envelope(const char *env, int64_t id, size_t *len, const char **patient,
                             store_error *err)
{
    char *end;
    unsigned long long n = strtoull(env, &end, 10);
    if (end == env || *end != '\n')
        return store_fail(err, STORE_ERR_CORRUPT, "message %" PRId64 ": damaged envelope", id);
    *len = (size_t)n;
    *patient = end[1] ? end + 1 : NULL;
    return STORE_OK;
}

store_status crypt_summary(store *s, const store_summary *in, store_summary *out,
                           store_error *err)
{
    *out = *in;
    out->meta.sealed = NULL;
    bool sealed_err = keys_is_sealed_text(in->error);
    if (!in->meta.sealed && !sealed_err) return STORE_OK;
    struct store_crypt *c = scratch(s, 2);
    store_status st = STORE_OK;
    if (in->meta.sealed) {
        st = open_text(s, in->id, "patient id", in->meta.sealed, &c->bufs[0], err);
        if (st == STORE_OK)
            st = envelope(c->bufs[0].p, in->id, &out->raw_len, &out->meta.patient_id, err);
    }
    if (st == STORE_OK && sealed_err) {
        st = open_text(s, in->id, "error", in->error, &c->bufs[1], err);
        out->error = c->bufs[1].p;
    }
    return st;
}

/* store_message: pointers into m->mem_ as refs and back (the arena moves
 * when it grows). */
static size_t to_ref(const store_message *m, const char *p)
{
    return p ? (size_t)(p - m->mem_.p) + 1 : 0;
}

static const char *from_ref(const store_message *m, size_t ref)
{
    return ref ? m->mem_.p + ref - 1 : NULL;
}

/* If the string at ref is sealed text, adds its opened form to the arena
 * and moves ref to it. */
static store_status open_ref(store *s, store_message *m, size_t *ref, const char *what,
                             store_error *err)
{
    const char *p = from_ref(m, *ref);
    if (!keys_is_sealed_text(p)) return STORE_OK;
    struct store_crypt *c = s->crypt;
    tbuf_reset(&c->plain);
    store_status st = open_text(s, m->sum.id, what, p, &c->plain, err);
    if (st == STORE_OK) *ref = store_message_add(m, c->plain.p, c->plain.len);
    return st;
}

enum { R_CHANNEL, R_MSH9, R_CONTROL, R_SEND_APP, R_SEND_FAC, R_RECV_APP, R_RECV_FAC, R_PATIENT,
       R_ERROR, R_SEALED, R_RAW, R_FIXED };

static store_status open_body(store *s, store_message *m, size_t *refs, size_t *raw_len,
                              store_error *err)
{
    const char *raw = from_ref(m, refs[R_RAW]);
    if (!raw || !keys_is_sealed(raw, m->sum.raw_len)) return STORE_OK;
    struct store_crypt *c = s->crypt;
    tbuf why = TBUF_INIT;
    tbuf_reset(&c->work);
    store_status st = STORE_OK;
    if (keys_open_sealed(s->keys, "body", raw, m->sum.raw_len, &c->work, &why) != 0) {
        st = store_fail(err, STORE_ERR_KEY, "message %" PRId64 ": body: %s", m->sum.id, why.p);
    } else {
        *raw_len = c->work.len;
        refs[R_RAW] = store_message_add(m, c->work.p, c->work.len);
        memset(c->work.p, 0, c->work.len);
    }
    tbuf_free(&why);
    return st;
}

static store_status open_envelope(store *s, store_message *m, size_t *refs, store_error *err)
{
    const char *sealed = from_ref(m, refs[R_SEALED]);
    if (!sealed) return STORE_OK;
    struct store_crypt *c = s->crypt;
    tbuf_reset(&c->plain);
    store_status st = open_text(s, m->sum.id, "patient id", sealed, &c->plain, err);
    size_t len;
    const char *patient = NULL;
    if (st == STORE_OK) st = envelope(c->plain.p, m->sum.id, &len, &patient, err);
    if (st == STORE_OK) refs[R_PATIENT] = patient ? store_message_add(m, patient, strlen(patient)) : 0;
    refs[R_SEALED] = 0;
    return st;
}

store_status crypt_message(store *s, store_message *m, store_error *err)
{
    bool any = (m->raw && keys_is_sealed(m->raw, m->sum.raw_len)) || m->sum.meta.sealed ||
               keys_is_sealed_text(m->sum.error);
    for (size_t i = 0; i < m->n_deliveries && !any; i++)
        any = keys_is_sealed_text(m->deliveries[i].last_error);
    if (!any) return STORE_OK;
    if (!s->keys) return no_key(err, m->sum.id, "message");
    scratch(s, 0);
    /* every pointer as a ref first: adding strings moves the arena */
    store_summary *u = &m->sum;
    const char **ptrs[R_FIXED] = {
        [R_CHANNEL] = &u->channel,         [R_MSH9] = &u->meta.msh9,
        [R_CONTROL] = &u->meta.control_id, [R_SEND_APP] = &u->meta.send_app,
        [R_SEND_FAC] = &u->meta.send_fac,  [R_RECV_APP] = &u->meta.recv_app,
        [R_RECV_FAC] = &u->meta.recv_fac,  [R_PATIENT] = &u->meta.patient_id,
        [R_ERROR] = &u->error,             [R_SEALED] = &u->meta.sealed,
        [R_RAW] = &m->raw};
    size_t *refs = xcalloc(R_FIXED + 2 * m->n_deliveries, sizeof *refs);
    for (size_t i = 0; i < R_FIXED; i++) refs[i] = to_ref(m, *ptrs[i]);
    for (size_t i = 0; i < m->n_deliveries; i++) {
        refs[R_FIXED + 2 * i] = to_ref(m, m->deliveries[i].dest);
        refs[R_FIXED + 2 * i + 1] = to_ref(m, m->deliveries[i].last_error);
    }
    size_t raw_len = m->sum.raw_len;
    store_status st = open_body(s, m, refs, &raw_len, err);
    if (st == STORE_OK) st = open_ref(s, m, &refs[R_ERROR], "error", err);
    if (st == STORE_OK) st = open_envelope(s, m, refs, err);
    for (size_t i = 0; i < m->n_deliveries && st == STORE_OK; i++)
        st = open_ref(s, m, &refs[R_FIXED + 2 * i + 1], "delivery error", err);
    for (size_t i = 0; i < R_FIXED; i++) *ptrs[i] = from_ref(m, refs[i]);
    for (size_t i = 0; i < m->n_deliveries; i++) {
        m->deliveries[i].dest = from_ref(m, refs[R_FIXED + 2 * i]);
        m->deliveries[i].last_error = from_ref(m, refs[R_FIXED + 2 * i + 1]);
    }
    u->raw_len = raw_len;
    free(refs);
    return st;
}

store_status crypt_queue(store *s, store_queue_batch *b, store_error *err)
{
    bool any = false;
    for (size_t i = 0; i < b->n && !any; i++) any = keys_is_sealed(b->items[i].raw, b->items[i].raw_len);
    if (!any) return STORE_OK;
    if (!s->keys) return no_key(err, b->items[0].message_id, "body");
    struct store_crypt *c = scratch(s, 0);
    tbuf why = TBUF_INIT;
    tbuf_reset(&c->work);
    size_t *offs = xmalloc((b->n + 1) * sizeof *offs);
    store_status st = STORE_OK;
    for (size_t i = 0; i < b->n && st == STORE_OK; i++) {
        store_queue_item *it = &b->items[i];
        offs[i] = c->work.len;
        if (!keys_is_sealed(it->raw, it->raw_len)) {
            tbuf_put(&c->work, it->raw, it->raw_len);
        } else if (keys_open_sealed(s->keys, "body", it->raw, it->raw_len, &c->work, &why) != 0) {
            st = store_fail(err, STORE_ERR_KEY, "message %" PRId64 ": body: %s", it->message_id,
                            why.p);
        }
        it->raw_len = c->work.len - offs[i];
    }
    if (st == STORE_OK) {
        /* swap buffers: the batch owns the plaintext now */
        tbuf old = b->raw;
        b->raw = c->work;
        c->work = old;
        memset(c->work.p, 0, c->work.len);
        for (size_t i = 0; i < b->n; i++) b->items[i].raw = b->raw.p + offs[i];
    }
    free(offs);
    tbuf_free(&why);
    return st;
}
