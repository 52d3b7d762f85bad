/*
 * store: the backend-independent half of the store interface (store.h).
 *
 * store_open() picks a backend from the location (a plain path or "sqlite:"
 * is SQLite; "postgres://" and "postgresql://" are known but not built yet;
 * any other "scheme://" is refused). Every public function then checks its
 * arguments here, so that backends can assume well-formed input and report
 * only what their database says, and calls the backend through s->ops.
 * Also here: state names, error formatting, the store_message arena and the
 * audit wording, so every backend stores and shows the same text; and the
 * encryption of PHI at rest (store_crypt.h), so that no backend sees PHI.
 */
#include "store/store.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "store/store_crypt.h"

static const char *const MSG_STATE_NAMES[] = {
    [STORE_MSG_NONE] = "",
    [STORE_MSG_RECEIVED] = "received",
    [STORE_MSG_REJECTED] = "rejected",
    [STORE_MSG_FILTERED] = "filtered",
    [STORE_MSG_DUPLICATE] = "duplicate",
};

static const char *const DLV_STATE_NAMES[] = {
    [STORE_DLV_NONE] = "",
    [STORE_DLV_QUEUED] = "queued",
    [STORE_DLV_SENT] = "sent",
    [STORE_DLV_ERROR] = "error",
    [STORE_DLV_FILTERED] = "filtered",
    [STORE_DLV_SUPERSEDED] = "superseded",
};

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

const char *store_strerror(store_status s)
{
    switch (s) {
    case STORE_OK:
        return "ok";
    case STORE_ERR_ARG:
        return "invalid argument";
    case STORE_ERR_UNSUPPORTED:
        return "backend not supported";
    case STORE_ERR_IO:
        return "I/O error";
    case STORE_ERR_BUSY:
        return "store busy";
    case STORE_ERR_FULL:
        return "disk full";
    case STORE_ERR_CORRUPT:
        return "store corrupt";
    case STORE_ERR_SCHEMA:
        return "schema too new";
    case STORE_ERR_KEY:
        return "encryption key missing or wrong";
    case STORE_ERR_NOT_FOUND:
        return "not found";
    case STORE_ERR_BACKEND:
        return "backend error";
    }
    return "unknown store status";
}

const char *store_msg_state_name(store_msg_state s)
{
    return (unsigned)s < COUNT_OF(MSG_STATE_NAMES) ? MSG_STATE_NAMES[s] : "";
}

const char *store_dlv_state_name(store_dlv_state s)
{
    return (unsigned)s < COUNT_OF(DLV_STATE_NAMES) ? DLV_STATE_NAMES[s] : "";
}

store_msg_state store_msg_state_from_name(const char *name)
{
    for (size_t i = 1; name && i < COUNT_OF(MSG_STATE_NAMES); i++)
        if (strcmp(name, MSG_STATE_NAMES[i]) == 0) return (store_msg_state)i;
    return STORE_MSG_NONE;
}

store_dlv_state store_dlv_state_from_name(const char *name)
{
    for (size_t i = 1; name && i < COUNT_OF(DLV_STATE_NAMES); i++)
        if (strcmp(name, DLV_STATE_NAMES[i]) == 0) return (store_dlv_state)i;
    return STORE_DLV_NONE;
}

store_status store_fail(store_error *err, store_status code, const char *fmt, ...)
{
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->text, sizeof err->text, fmt, ap);
    va_end(ap);
    return code;
}

static void clear_error(store_error *err)
{
    err->code = STORE_OK;
    err->text[0] = '\0';
}

/* Makes sure err says something whatever the backend left in it. */
static store_status finish(store_status st, store_error *err)
{
    if (st == STORE_OK) {
        clear_error(err);
    } else {
        err->code = st;
        if (!err->text[0]) snprintf(err->text, sizeof err->text, "%s", store_strerror(st));
    }
    return st;
}

static bool empty(const char *s)
{
    return !s || !*s;
}

/* --- opening ------------------------------------------------------------ */

static bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* "scheme://" at the front: a letter, then letters, digits, + - . */
static size_t url_scheme_len(const char *s)
{
    size_t i = 0;
    if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z'))) return 0;
    while (s[i] && (s[i] == '+' || s[i] == '-' || s[i] == '.' || (s[i] >= '0' && s[i] <= '9') ||
                    (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')))
        i++;
    return has_prefix(s + i, "://") ? i : 0;
}

store_status store_open(const char *location, const store_options *opt, store **out,
                        store_error *err)
{
    assert(out && err);
    *out = NULL;
    clear_error(err);
    if (empty(location))
        return store_fail(err, STORE_ERR_ARG, "no store location given (store.path)");

    const store_ops *ops = &store_sqlite_ops;
    const char *rest = location;
    if (has_prefix(location, "sqlite:")) {
        rest = location + strlen("sqlite:");
        if (has_prefix(rest, "//")) rest += 2; /* sqlite:///abs/path, sqlite://rel */
    } else if (has_prefix(location, "postgres://") || has_prefix(location, "postgresql://")) {
        return store_fail(err, STORE_ERR_UNSUPPORTED,
                          "store %s: the PostgreSQL backend is not built into this Tern; "
                          "use a file path for SQLite",
                          location);
    } else if (url_scheme_len(location) > 0) {
        return store_fail(err, STORE_ERR_UNSUPPORTED,
                          "store %s: unknown store type %.*s; use a file path or sqlite:PATH",
                          location, (int)url_scheme_len(location), location);
    }
    if (!*rest) return store_fail(err, STORE_ERR_ARG, "store %s: empty path", location);

    store_options defaults = {.busy_timeout_ms = 5000, .checkpoint_pages = STORE_CHECKPOINT_PAGES};
    if (opt && opt->busy_timeout_ms > 0) defaults.busy_timeout_ms = opt->busy_timeout_ms;
    if (opt && opt->checkpoint_pages) defaults.checkpoint_pages = opt->checkpoint_pages;
    if (opt) defaults.segment_bytes = opt->segment_bytes;
    if (opt) defaults.key_merge_rows = opt->key_merge_rows;
    if (opt) defaults.writer = opt->writer;
    store_status st = ops->open(rest, &defaults, out, err);
    if (st != STORE_OK) *out = NULL;
    if (st == STORE_OK && opt) (*out)->keys = opt->keys;
    if (st == STORE_OK && (*out)->keys) (*out)->crypt_pool = crypt_pool_new();
    return finish(st, err);
}

void store_close(store *s)
{
    if (!s) return;
    store_crypt_free(s);
    crypt_pool_free(s->crypt_pool);
    s->ops->close(s);
}

const char *store_backend(const store *s)
{
    return s->ops->name;
}

store_status store_checkpoint(store *s, store_error *err)
{
    assert(s && err);
    clear_error(err);
    return finish(s->ops->checkpoint(s, err), err);
}

/* --- argument checks ------------------------------------------------------ */

static store_status check_put(const store_put *p, size_t i, store_error *err)
{
    if (empty(p->channel)) return store_fail(err, STORE_ERR_ARG, "message %zu: no channel", i);
    if (p->raw_len && !p->raw)
        return store_fail(err, STORE_ERR_ARG, "message %zu: raw bytes missing", i);
    if (p->state <= STORE_MSG_NONE || p->state > STORE_MSG_DUPLICATE)
        return store_fail(err, STORE_ERR_ARG, "message %zu: invalid state %d", i, (int)p->state);
    if (p->n_dests && !p->dests)
        return store_fail(err, STORE_ERR_ARG, "message %zu: destinations missing", i);
    for (size_t d = 0; d < p->n_dests; d++) {
        const store_dest *dst = &p->dests[d];
        if (empty(dst->name))
            return store_fail(err, STORE_ERR_ARG, "message %zu: destination %zu has no name", i, d);
        if (dst->state != STORE_DLV_QUEUED && dst->state != STORE_DLV_FILTERED &&
            dst->state != STORE_DLV_ERROR)
            return store_fail(err, STORE_ERR_ARG,
                              "message %zu: destination %s must start queued, filtered or in "
                              "error",
                              i, dst->name);
        for (size_t e = 0; e < d; e++)
            if (strcmp(p->dests[e].name, dst->name) == 0)
                return store_fail(err, STORE_ERR_ARG, "message %zu: destination %s given twice", i,
                                  dst->name);
    }
    return STORE_OK;
}

static store_status check_queue(const char *channel, const char *dest, store_error *err)
{
    if (empty(channel) || empty(dest))
        return store_fail(err, STORE_ERR_ARG, "a queue needs a channel and a destination name");
    return STORE_OK;
}

static store_status check_audit(const store_audit *who, const char *action, store_error *err)
{
    if (!who || empty(who->who))
        return store_fail(err, STORE_ERR_ARG, "%s: say who is doing it (user name)", action);
    return STORE_OK;
}

static store_status check_names(const char *const *names, size_t n, const char *what,
                                store_error *err)
{
    if (n && !names) return store_fail(err, STORE_ERR_ARG, "%s: destination list missing", what);
    for (size_t i = 0; i < n; i++)
        if (empty(names[i]))
            return store_fail(err, STORE_ERR_ARG, "%s: destination %zu has no name", what, i);
    return STORE_OK;
}

static store_status check_reprocess(const store_reprocess_req *req, store_error *err)
{
    if (req->n_ids) {
        if (!req->ids) return store_fail(err, STORE_ERR_ARG, "reprocess: id list missing");
        for (size_t i = 0; i < req->n_ids; i++)
            if (req->ids[i] <= 0)
                return store_fail(err, STORE_ERR_ARG, "reprocess: invalid id %" PRId64,
                                  req->ids[i]);
    } else if (req->dlv_state <= STORE_DLV_NONE || req->dlv_state > STORE_DLV_SUPERSEDED) {
        return store_fail(err, STORE_ERR_ARG,
                          "reprocess: give message ids or a delivery state (e.g. error)");
    }
    return check_names(req->dests, req->n_dests, "reprocess", err);
}

/* --- dispatch --------------------------------------------------------------- */

store_status store_put_batch(store *s, const store_put *items, size_t n, int64_t *ids_out,
                             store_error *err)
{
    assert(s && err && (items || n == 0));
    clear_error(err);
    for (size_t i = 0; i < n; i++) {
        store_status st = check_put(&items[i], i, err);
        if (st != STORE_OK) return st;
    }
    if (n == 0) return STORE_OK;
    const store_put *stored;
    store_status st = crypt_puts(s, &s->crypt, items, n, &stored, err);
    if (st != STORE_OK) return finish(st, err);
    return finish(s->ops->put_batch(s, stored, n, ids_out, err), err);
}

store_status store_log_batch(store *s, const store_put *items, size_t n, store_logged **out,
                             store_error *err)
{
    assert(s && out && err && (items || n == 0));
    clear_error(err);
    *out = NULL;
    for (size_t i = 0; i < n; i++) {
        store_status st = check_put(&items[i], i, err);
        if (st != STORE_OK) return st;
    }
    store_logged *b = xcalloc(1, sizeof *b);
    b->n = n;
    b->crypt = crypt_pool_take(s->crypt_pool);
    store_status st = crypt_puts(s, &b->crypt, items, n, &b->items, err);
    if (st == STORE_OK && n && s->ops->log_batch) st = s->ops->log_batch(s, b, err);
    if (st != STORE_OK) {
        store_logged_free(s, b);
        return finish(st, err);
    }
    *out = b;
    return STORE_OK;
}

store_status store_index_batches(store *s, store_logged *const *batches, size_t nb,
                                 store_error *err)
{
    assert(s && err && (batches || nb == 0));
    clear_error(err);
    if (s->ops->index_batches) return finish(s->ops->index_batches(s, batches, nb, err), err);
    /* no log: all the batches' items in one put_batch, all or nothing */
    size_t n = 0;
    for (size_t i = 0; i < nb; i++) n += batches[i]->n;
    if (!n) return STORE_OK;
    store_put *all = xcalloc(n, sizeof *all);
    n = 0;
    for (size_t i = 0; i < nb; i++) {
        memcpy(all + n, batches[i]->items, batches[i]->n * sizeof *all);
        n += batches[i]->n;
    }
    store_status st = s->ops->put_batch(s, all, n, NULL, err);
    free(all);
    return finish(st, err);
}

void store_logged_free(store *s, store_logged *b)
{
    if (!b) return;
    if (b->backend && s->ops->logged_free) s->ops->logged_free(s, b);
    crypt_pool_give(s->crypt_pool, b->crypt);
    free(b);
}

store_status store_find_duplicate(store *s, const char *send_fac, const char *control_id,
                                  int64_t since, int64_t *id_out, store_error *err)
{
    assert(s && id_out && err);
    clear_error(err);
    *id_out = 0;
    if (empty(control_id)) return STORE_OK;
    if (empty(send_fac)) send_fac = NULL;
    return finish(s->ops->find_duplicate(s, send_fac, control_id, since, id_out, err), err);
}

void store_queue_batch_free(store_queue_batch *b)
{
    free(b->items);
    tbuf_free(&b->raw);
    *b = (store_queue_batch)STORE_QUEUE_BATCH_INIT;
}

store_status store_queue_next(store *s, const char *channel, const char *dest, int64_t after_id,
                              int64_t now, size_t max, store_queue_batch *out, store_error *err)
{
    assert(s && out && err);
    clear_error(err);
    out->n = 0;
    tbuf_reset(&out->raw);
    store_status st = check_queue(channel, dest, err);
    if (st != STORE_OK || max == 0) return st;
    st = s->ops->queue_next(s, channel, dest, after_id, now, max, out, err);
    if (st == STORE_OK) st = crypt_queue(s, out, err);
    if (st != STORE_OK) out->n = 0;
    return finish(st, err);
}

store_status store_queue_count(store *s, const char *channel, const char *dest, uint64_t *count_out,
                               store_error *err)
{
    assert(s && count_out && err);
    clear_error(err);
    *count_out = 0;
    store_status st = check_queue(channel, dest, err);
    if (st != STORE_OK) return st;
    return finish(s->ops->queue_count(s, channel, dest, count_out, err), err);
}

store_status store_mark_batch(store *s, const store_mark *marks, size_t n, int64_t now,
                              store_error *err)
{
    assert(s && err && (marks || n == 0));
    clear_error(err);
    for (size_t i = 0; i < n; i++) {
        store_status st = check_queue(marks[i].channel, marks[i].dest, err);
        if (st != STORE_OK) return st;
        if (marks[i].outcome < STORE_SENT || marks[i].outcome > STORE_FAILED)
            return store_fail(err, STORE_ERR_ARG, "mark %zu: invalid outcome %d", i,
                              (int)marks[i].outcome);
    }
    if (n == 0) return STORE_OK;
    const store_mark *stored;
    store_status st = crypt_marks(s, marks, n, &stored, err);
    if (st != STORE_OK) return finish(st, err);
    return finish(s->ops->mark_batch(s, stored, n, now, err), err);
}

static store_status check_filter(const store_filter *f, store_error *err)
{
    if (f->state < STORE_MSG_NONE || f->state > STORE_MSG_DUPLICATE)
        return store_fail(err, STORE_ERR_ARG, "list: invalid message state %d", (int)f->state);
    if (f->dlv_state < STORE_DLV_NONE || f->dlv_state > STORE_DLV_SUPERSEDED)
        return store_fail(err, STORE_ERR_ARG, "list: invalid delivery state %d", (int)f->dlv_state);
    return STORE_OK;
}

/* Opens each summary before the caller's callback sees it. */
typedef struct list_ctx {
    store *s;
    store_list_fn fn;
    void *ctx;
    store_status st;
    store_error *err;
} list_ctx;

static bool list_open(void *arg, const store_summary *m)
{
    list_ctx *l = arg;
    store_summary open;
    l->st = crypt_summary(l->s, m, &open, l->err);
    return l->st == STORE_OK && l->fn(l->ctx, &open);
}

store_status store_list(store *s, const store_filter *f, store_list_fn fn, void *ctx,
                        store_error *err)
{
    assert(s && f && fn && err);
    clear_error(err);
    store_status st = check_filter(f, err);
    if (st != STORE_OK) return st;
    store_filter tf;
    crypt_filter(s, f, &tf);
    list_ctx l = {s, fn, ctx, STORE_OK, err};
    st = s->ops->list(s, &tf, list_open, &l, err);
    return finish(st == STORE_OK ? l.st : st, err);
}

store_status store_list_plan(store *s, const store_filter *f, tbuf *out, store_error *err)
{
    assert(s && f && out && err);
    clear_error(err);
    store_status st = check_filter(f, err);
    if (st != STORE_OK) return st;
    store_filter tf;
    crypt_filter(s, f, &tf);
    return finish(s->ops->list_plan(s, &tf, out, err), err);
}

size_t store_message_add(store_message *m, const char *s, size_t len)
{
    if (!s) return 0;
    size_t ref = m->mem_.len + 1;
    tbuf_put(&m->mem_, s, len);
    tbuf_putc(&m->mem_, '\0');
    return ref;
}

const char *store_message_str(const store_message *m, size_t ref)
{
    assert(ref <= m->mem_.len);
    return ref ? m->mem_.p + ref - 1 : NULL;
}

void store_message_free(store_message *m)
{
    free(m->deliveries);
    tbuf_free(&m->mem_);
    *m = (store_message)STORE_MESSAGE_INIT;
}

store_status store_get(store *s, int64_t id, store_message *out, store_error *err)
{
    assert(s && out && err);
    clear_error(err);
    store_message_free(out);
    store_status st = s->ops->get(s, id, out, err);
    if (st == STORE_OK) st = crypt_message(s, out, err);
    if (st != STORE_OK) store_message_free(out);
    return finish(st, err);
}

/* --- operator actions ---------------------------------------------------------- */

static store_status reprocess(store *s, const store_reprocess_req *req, const store_audit *who,
                              int64_t now, bool dry_run, store_counts *out, store_error *err)
{
    assert(s && req && out && err);
    clear_error(err);
    *out = (store_counts){0, 0};
    store_status st = check_reprocess(req, err);
    if (st == STORE_OK && !dry_run) st = check_audit(who, "reprocess", err);
    if (st != STORE_OK) return st;
    return finish(s->ops->reprocess(s, req, who, now, dry_run, out, err), err);
}

store_status store_reprocess_count(store *s, const store_reprocess_req *req, store_counts *out,
                                   store_error *err)
{
    return reprocess(s, req, NULL, 0, true, out, err);
}

store_status store_reprocess(store *s, const store_reprocess_req *req, const store_audit *who,
                             int64_t now, store_counts *out, store_error *err)
{
    return reprocess(s, req, who, now, false, out, err);
}

store_status store_edit(store *s, int64_t id, const void *raw, size_t raw_len,
                        const store_meta *meta, const char *const *dests, size_t n_dests,
                        const store_audit *who, int64_t now, int64_t *new_id, size_t *requeued,
                        store_error *err)
{
    assert(s && meta && new_id && err);
    clear_error(err);
    *new_id = 0;
    size_t unused;
    if (!requeued) requeued = &unused;
    *requeued = 0;
    if (raw_len && !raw) return store_fail(err, STORE_ERR_ARG, "edit: raw bytes missing");
    store_status st = check_names(dests, n_dests, "edit", err);
    if (st == STORE_OK) st = check_audit(who, "edit", err);
    if (st != STORE_OK) return st;
    const void *sraw;
    size_t slen;
    store_meta smeta;
    st = crypt_edit(s, raw, raw_len, meta, &sraw, &slen, &smeta, err);
    if (st != STORE_OK) return finish(st, err);
    return finish(
        s->ops->edit(s, id, sraw, slen, &smeta, dests, n_dests, who, now, new_id, requeued, err),
        err);
}

store_status store_prune_channel(store *s, const char *channel, int64_t before,
                                 const store_audit *who, int64_t now, store_prune_result *out,
                                 store_error *err)
{
    assert(s && out && err);
    clear_error(err);
    *out = (store_prune_result){0, 0};
    store_status st = check_audit(who, "prune", err);
    if (st != STORE_OK) return st;
    return finish(s->ops->prune(s, channel, before, who, now, out, err), err);
}

store_status store_prune(store *s, int64_t before, const store_audit *who, int64_t now,
                         store_prune_result *out, store_error *err)
{
    return store_prune_channel(s, NULL, before, who, now, out, err);
}

store_status store_prune_count_channel(store *s, const char *channel, int64_t before,
                                       uint64_t *count_out, store_error *err)
{
    assert(s && count_out && err);
    clear_error(err);
    *count_out = 0;
    return finish(s->ops->prune_count(s, channel, before, count_out, err), err);
}

store_status store_prune_count(store *s, int64_t before, uint64_t *count_out, store_error *err)
{
    return store_prune_count_channel(s, NULL, before, count_out, err);
}

store_status store_audit_list(store *s, size_t limit, store_audit_fn fn, void *ctx,
                              store_error *err)
{
    assert(s && fn && err);
    clear_error(err);
    return finish(s->ops->audit_list(s, limit ? limit : 100, fn, ctx, err), err);
}

store_status store_quality_report(store *s, const char *channel, int64_t since,
                                  store_quality_fn fn, void *ctx, store_error *err)
{
    assert(s && fn && err);
    clear_error(err);
    return finish(s->ops->quality_report(s, channel, since, fn, ctx, err), err);
}

const char *store_qf_name(int field)
{
    static const char *const names[STORE_QF_COUNT] = {
        "PID-3", "PID-5", "PID-7", "PID-8", "PV1-2", "PV1-19", "OBR-4", "OBX-6"};
    return field >= 0 && field < STORE_QF_COUNT ? names[field] : NULL;
}

void store_describe_reprocess(const store_reprocess_req *req, const store_counts *c, tbuf *out)
{
    if (req->n_ids) {
        tbuf_puts(out, "ids ");
        for (size_t i = 0; i < req->n_ids; i++) {
            if (i == 8 && req->n_ids > 10) {
                tbuf_printf(out, ",... (%zu ids)", req->n_ids);
                break;
            }
            tbuf_printf(out, "%s%" PRId64, i ? "," : "", req->ids[i]);
        }
    } else {
        tbuf_printf(out, "deliveries in state %s", store_dlv_state_name(req->dlv_state));
        if (req->channel) tbuf_printf(out, " of channel %s", req->channel);
    }
    if (req->n_dests) {
        tbuf_puts(out, "; destinations ");
        for (size_t i = 0; i < req->n_dests; i++)
            tbuf_printf(out, "%s%s", i ? "," : "", req->dests[i]);
    } else {
        tbuf_puts(out, "; destinations that did not succeed");
    }
    tbuf_printf(out, ": %" PRIu64 " messages, %" PRIu64 " deliveries requeued", c->messages,
                c->deliveries);
}
