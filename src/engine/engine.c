/*
 * engine: channels, group commit and destination queue workers (see
 * engine.h for the flow and engine_int.h for the source/driver contracts).
 *
 * Group commit, in two stages. eng_submit() parses the message, decides its
 * fate (received, rejected, filtered, duplicate), builds its ACK and appends
 * it to the pending batch. The batch goes to the committer thread, which
 * appends it to the body log and syncs it (store_log_batch): the messages
 * are then durable and the loop sends their ACKs. The committer queues the
 * batch for the indexer thread, which writes the rows of every batch
 * waiting (and the delivery outcomes gathered with them) in one transaction
 * (store_index_batches), letting batches gather for a few milliseconds
 * (longer under load) so that a transaction carries hundreds of messages
 * or more; only then are queue workers kicked and the batch freed. While a
 * batch is being logged the loop goes on reading, parsing and building
 * ACKs, and what it gathers becomes the next batch, so batches grow with the
 * load; the loop hands that next batch over before it sends the ACKs of the
 * one just logged, so its fsync overlaps with them. An ACK waits for one
 * append and one fsync, never for the database; a crash between the two
 * stages loses nothing: opening the store indexes what the log holds beyond
 * the rows (store.h). The indexer trails the committer by at most
 * BACKLOG_MAX messages, so memory stays bounded.
 *
 * Threads: the loop (everything else, with a read-only store handle), the
 * committer (the body log, on the writer handle), the indexer (all database
 * writes, on the same handle: store.h allows the two side by side) and the
 * checkpointer, which copies the write-ahead log into the database every
 * CHECKPOINT_MS on a third handle so that the indexer does not stall for it.
 * SQLite restarts the log only once a checkpoint has caught up with it, so
 * under a load that never lets the checkpointer catch up the indexer also
 * checkpoints inside the commit that crosses CHECKPOINT_PAGES. They share
 * only the job hand-offs, under one mutex.
 *
 * Queue workers. Each destination has one worker. With parallel = 1 it keeps
 * strict order: it looks at the head of its queue only (whatever its retry
 * time), waits until the head is due, delivers it, and does not look again
 * until the outcome is committed. With parallel = N it pages through due
 * deliveries with an id cursor, keeping up to N in flight. Workers hold one
 * page at most, so a backlog of millions costs no memory; a poll timer picks
 * up retries that came due and deliveries requeued by `tern messages`.
 */
#include "engine/engine_int.h"
#include "sec/keys.h"
#include "engine/engine_tls.h"
#include "net/net.h"

#include "engine/msg_meta.h"
#include "fhir/fhir_rest.h"
#include "fhir/fhir_tables.h"
#include "engine/transform.h"
#include "engine/script.h"
#include "quality/quality_config.h"
#include "term/codemap.h"

#include "base/arena.h"
#include "base/mem.h"
#include "hl7/hl7_ack.h"
#include "sec/sec_http.h"

#include <ctype.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/http.h>
#include <openssl/crypto.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <unistd.h>

#define POLL_MS 1000
/* The checkpointer's period, and the log size at which the committer
 * checkpoints itself (see above). */
#define CHECKPOINT_PAGES 8000
#define CHECKPOINT_MS 20

/* One submission waiting for the group commit. */
typedef struct pending {
    eng_channel *ch;
    char *raw;
    size_t len;
    msg_meta meta;
    store_msg_state state;
    char *error;
    store_quality quality;
    bool dlv_error; /* deliveries start in the error queue (filter script failed) */
    bool accepted;
    tbuf ack;
    eng_done_fn done;
    void *arg;
} pending;

typedef struct inflight {
    int64_t id;
    int attempts;
} inflight;

typedef struct worker {
    eng_dest *d;
    store_queue_batch page;
    size_t page_pos;    /* ordered mode: next item of page to deliver */
    int64_t cursor;     /* last id delivered (its outcome may be uncommitted) */
    bool await_retry;   /* ordered mode: the head failed; wait for its mark */
    uint32_t ninflight;
    uint32_t unmarked;  /* outcomes not yet committed */
    inflight *inflight; /* parallel slots */
    struct event *timer;
    bool running;
} worker;

struct eng_dest {
    const config_destination *cfg;
    eng_channel *ch;
    const eng_dest_ops *ops;
    void *impl;
    worker w;
    bool open;
    uint64_t sent, retried, failed;
};

struct eng_channel {
    engine *e;
    const config_channel *cfg;
    eng_source *src;
    const eng_source_ops *src_ops;
    eng_dest *dests;
    size_t ndests;
    hl7_msg *msg; /* scratch for parsing at submit */
    uint64_t received, rejected, filtered, duplicates;
    quality_set *quality;  /* the channel's validation (baseline at least) */
    validate_result vres;  /* scratch for validating at submit */
    uint64_t invalid, warned;
    script *filter;      /* the channel's Lua filter; NULL: none */
    script_host filter_host; /* borrowed by filter */
    bool filter_failed;  /* classify: the filter script failed on this message */
    transform_chain *tx; /* the channel's transform steps; NULL: none */
    hl7_msg *tx_msg;     /* scratch: the message being transformed */
    tbuf tx_out;         /* the transformed message, CR-terminated */
};

typedef struct commit_job commit_job;

/* Everything one commit writes: the submissions and delivery outcomes
 * gathered since the last one. Built and finished on the loop; logged on
 * the committer thread and indexed on the indexer thread (or both on the
 * loop, when stopping). */
struct commit_job {
    pending *pend;
    size_t npend;
    store_put *items;
    store_dest *dests;
    store_mark *marks;
    char **mark_texts;
    size_t nmarks;
    store_logged *logged;      /* the logged batch (NULL: none, or logging failed) */
    bool durable;              /* the ACKs may go: logged and synced */
    bool answered;             /* loop: the ACKs went */
    store_status put_st, mark_st, ix_st; /* logging, outcomes, rows */
    store_error put_err, mark_err, ix_err;
    int64_t logged_at;         /* now_ms() when logged */
    commit_job *lnext;         /* in the committer's done list */
    commit_job *inext;         /* in the indexer's queue, then its done list */
    arena raws;                /* the raw bytes of pend[] */
};

struct engine {
    const tern_config *cfg;
    struct event_base *base;
    store *st; /* the loop's handle: queue reads, duplicate checks */
    store *wr; /* the committer thread's handle: all writes */
    store *ck; /* the checkpointer thread's handle */
    struct keyring *keys; /* PHI at rest; NULL when encryption is off */
    codemap_registry *maps; /* the configuration's code maps */
    uint64_t commits, committed, commit_ns; /* committer statistics, under mu */
    char ack_time[HL7_ACK_TIME_SIZE];       /* MSH-7 of ACKs, for ack_time_at (the loop's) */
    time_t ack_time_at;
    uint64_t ix_runs, ix_msgs;              /* indexer statistics, under mu */
    pthread_t committer, indexer, checkpointer;
    pthread_cond_t ck_cv, ix_cv;
    bool threads;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    commit_job *job_in;              /* handed to the committer */
    commit_job *logged, **logged_end; /* committer -> loop: logged (ACK time) */
    commit_job *ix_head, **ix_end;   /* committer -> indexer: to index, in order */
    size_t ix_backlog;               /* messages logged, not yet indexed */
    bool ix_now;                     /* the loop waits for the rows: no gathering */
    commit_job *indexed, **indexed_end; /* indexer -> loop: done */
    bool job_busy;                   /* loop side: the committer has a job */
    commit_job **out;                /* loop side: jobs handed out, not yet finished */
    arena raws;                      /* loop side: the raw bytes of pend[] */
    arena_pool raw_pool;             /* loop side: blocks of finished jobs' raws */
    size_t nout, outcap;
    bool quit;
    int notify[2]; /* committer and indexer -> loop: look at the done lists */
    struct event *notify_ev;
    struct evhttp *http;
    fhir_rest *fhir; /* the FHIR REST API under /fhir on http */
    fhir_tables *fhir_tables; /* fhir.tables; NULL: the built-ins */
    sec_ctx *sec; /* identities and the audit trail (docs/security.md) */
    eng_channel *channels;
    size_t nchannels;
    pending *pend;
    size_t npend, pendcap;
    store_mark *marks;
    char **mark_texts; /* owned error texts of marks */
    size_t nmarks, markcap;
    struct event *commit_ev;
    struct event *poll_ev;
    bool stopping;
    size_t sources_running;
    void (*stop_done)(void *);
    void *stop_arg;
    struct event *stop_ev;
    eng_tls_set *tls; /* every TLS context of listeners and senders */
};

static int64_t now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

void eng_log(const eng_channel *ch, const char *fmt, ...)
{
    char ts[32];
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S%z", &tm);
    va_list ap;
    va_start(ap, fmt);
    char text[4096];
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    /* One record, one line: file names, peers' bytes and parse errors
     * quoted in the text must not forge log lines (CR, LF) or drive a
     * terminal (ESC). */
    for (char *p = text; *p; p++)
        if (iscntrl((unsigned char)*p) && *p != '\t') *p = '?';
    fprintf(stderr, "%s channel %s: %s\n", ts, ch ? ch->cfg->name : "-", text);
}

static void engine_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void engine_log(const char *fmt, ...)
{
    char ts[32];
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S%z", &tm);
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s tern: ", ts);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

const config_channel *eng_channel_config(const eng_channel *ch)
{
    return ch->cfg;
}

struct event_base *eng_channel_base(const eng_channel *ch)
{
    return ch->e->base;
}

struct evhttp *eng_channel_http(const eng_channel *ch)
{
    return ch->e->http;
}

struct fhir_rest *eng_channel_fhir(const eng_channel *ch)
{
    return ch->e->fhir;

}

const fhir_tables *eng_channel_fhir_tables(const eng_channel *ch)
{
    return ch->e->fhir_tables;

}

uint64_t eng_channel_http_timeout(const eng_channel *ch)
{
    return ch->e->cfg->http.timeout_ms;
}

sec_ctx *eng_channel_sec(const eng_channel *ch)
{
    return ch->e->sec;
}

/* The security context: the security database beside the store, the audit
 * writer, and POST /auth/login on the shared HTTP server. */
static int setup_security(engine *e, tbuf *err)
{
    sec_error serr = {0};
    if (sec_ctx_open(&e->cfg->security, &e->sec, &serr) != SEC_OK) {
        tbuf_printf(err, "cannot open the security database: %s", serr.text);
        return -1;
    }
    e->sec->keys = e->keys;
    if (!e->cfg->security.auth)
        engine_log("security.auth is off: HTTP requests are not authenticated");
    if (!e->sec->has_key)
        engine_log("the audit trail is chained but not sealed: %s", e->sec->key_problem);
    if (e->http && sec_http_register(e->sec, e->http, err) != 0) return -1;
    return 0;

}

tls_ctx *eng_channel_tls(const eng_channel *ch, const config_tls *t, bool server, tbuf *err)
{
    char who[96];
    snprintf(who, sizeof(who), "channel %s", ch->cfg->name);
    return eng_tls_get(ch->e->tls, t, server, who, err);
}

int engine_reload_tls(engine *e)
{
    return eng_tls_reload_all(e->tls);
}

const config_destination *eng_dest_config(const eng_dest *d)
{
    return d->cfg;
}

eng_channel *eng_dest_channel(const eng_dest *d)
{
    return d->ch;
}

void *eng_dest_impl(const eng_dest *d)
{
    return d->impl;
}

void eng_dest_set_impl(eng_dest *d, void *impl)
{
    d->impl = impl;
}

/* --- submit ------------------------------------------------------------------- */

/* Whether the channel's type filter takes m (MSH-9.1 and MSH-9.2 as sent). */
static bool type_filter_accepts(const eng_channel *ch, const hl7_msg *m)
{
    const config_filter *f = &ch->cfg->filter;
    if (!f->ntypes && !f->nexclude) return true;
    char *v[2] = {NULL, NULL};
    for (uint32_t c = 0; c < 2; c++) {
        hl7_span s;
        if (hl7_raw(m, 0, 9, 1, c + 1, 0, &s) == HL7_VALUE) v[c] = xstrndup(s.p, s.len);
    }
    bool in = config_filter_accepts(f, v[0] ? v[0] : "", v[1] ? v[1] : "");
    free(v[0]);
    free(v[1]);
    return in;
}

static bool same_key(const pending *q, const eng_channel *ch, const char *fac, const char *ctl)
{
    const msg_meta *mm = &q->meta;
    return q->ch == ch && q->state == STORE_MSG_RECEIVED && mm->control_id &&
           !strcmp(mm->control_id, ctl) &&
           ((!fac && !mm->send_fac) || (fac && mm->send_fac && !strcmp(fac, mm->send_fac)));
}

static bool is_duplicate(engine *e, eng_channel *ch, pending *p)
{
    const char *fac = p->meta.send_fac, *ctl = p->meta.control_id;
    if (!ch->cfg->duplicates.enabled || !ctl || !*ctl) return false;
    /* not yet searchable: gathered for the next commit, or out */
    for (size_t i = 0; i < e->npend; i++)
        if (same_key(&e->pend[i], ch, fac, ctl)) return true;
    for (size_t k = 0; k < e->nout; k++) /* logging, or logged and not yet indexed */
        for (size_t i = 0; i < e->out[k]->npend; i++)
            if (same_key(&e->out[k]->pend[i], ch, fac, ctl)) return true;
    int64_t id = 0;
    store_error err;
    int64_t since = now_ms() - (int64_t)ch->cfg->duplicates.window_ms;
    if (store_find_duplicate(e->st, fac, ctl, since, &id, &err) != STORE_OK) {
        eng_log(ch, "duplicate check failed, message accepted: %s", err.text);
        return false;
    }
    return id != 0;
}

#define MAX_ERR_SEGMENTS 32

/* Completeness of the key fields (store.h, STORE_QF_*) of a parsed message:
 * one lookup per key segment and one pass over the segments for OBX, by
 * index (a path would search the message again for every OBX). */
static void key_fields(const hl7_msg *m, store_quality *q)
{
    static const struct {
        char seg[4];
        uint32_t field, comp;
    } keys[STORE_QF_OBX6] = {{"PID", 3, 1}, {"PID", 5, 1}, {"PID", 7, 0},  {"PID", 8, 0},
                             {"PV1", 2, 0}, {"PV1", 19, 1}, {"OBR", 4, 1}};
    q->applicable = q->present = 0;
    hl7_span v;
    for (int f = 0; f < STORE_QF_OBX6; f++) {
        long idx = hl7_seg_find(m, keys[f].seg, 1);
        if (idx < 0) continue;
        q->applicable |= (uint16_t)(1u << f);
        uint32_t comp = keys[f].comp;
        if (hl7_raw(m, (uint32_t)idx, keys[f].field, 1, comp, 0, &v) == HL7_VALUE)
            q->present |= (uint16_t)(1u << f);
    }
    /* OBX-6: applies when there are numeric results; present when all have units */
    bool numeric = false, all = true;
    for (uint32_t i = 1, n = hl7_seg_count(m); i < n; i++) {
        if (memcmp(hl7_seg_at(m, i)->id, "OBX", 4) != 0) continue;
        if (hl7_raw(m, i, 2, 1, 0, 0, &v) != HL7_VALUE || v.len != 2 || memcmp(v.p, "NM", 2))
            continue;
        numeric = true;
        all = all && hl7_raw(m, i, 6, 1, 1, 0, &v) == HL7_VALUE;
    }
    if (numeric) q->applicable |= 1u << STORE_QF_OBX6;
    if (numeric && all) q->present |= 1u << STORE_QF_OBX6;
}

/* MSH-7 of the ACKs built now: formatted once a second, not per message. */
static const char *ack_now(engine *e)
{
    time_t t = time(NULL);
    if (t != e->ack_time_at) {
        hl7_ack_format_time(t, e->ack_time);
        e->ack_time_at = t;
    }
    return e->ack_time;
}

/* Validates the parsed message (ch->msg). With errors: rejected, stored
 * with every problem, and NAKed (AE/CE) with one ERR segment per error;
 * returns true. Warnings are kept in the message's error text, prefixed
 * "warning: ", and the message goes on. */
static bool validate(eng_channel *ch, pending *p)
{
    validate_result *r = &ch->vres;
    validate_result_reset(r);
    validate_message(quality_validator(ch->quality), ch->msg, time(NULL), r);
    key_fields(ch->msg, &p->quality);
    p->quality.outcome = r->nerrors ? STORE_Q_ERRORS : r->n ? STORE_Q_WARNINGS : STORE_Q_CLEAN;
    if (r->n == 0) return false;
    tbuf t = TBUF_INIT;
    for (size_t i = 0; i < r->n; i++) {
        if (r->nerrors && r->v[i].severity != VALIDATE_SEV_ERROR) continue;
        if (t.len) tbuf_puts(&t, "; ");
        if (!r->nerrors) tbuf_puts(&t, "warning: ");
        validate_problem_format(&r->v[i], &t);
    }
    free(p->error);
    p->error = tbuf_detach(&t, NULL);
    if (!r->nerrors) {
        ch->warned++;
        return false;
    }
    ch->invalid++;
    p->state = STORE_MSG_REJECTED;
    p->accepted = ch->cfg->source.mllp.ack == CONFIG_ACK_ALWAYS;
    hl7_ack_problem probs[MAX_ERR_SEGMENTS];
    size_t np = validate_ack_problems(r, probs, MAX_ERR_SEGMENTS);
    if (np > MAX_ERR_SEGMENTS) np = MAX_ERR_SEGMENTS; /* it counts them all */
    hl7_ack_opts o = {.code = p->accepted ? HL7_ACK_AA : HL7_ACK_AUTO,
                      .timestamp = ack_now(ch->e),
                      .problems = probs,
                      .nproblems = np};
    hl7_error aerr;
    tbuf_reset(&p->ack);
    if (hl7_ack_build(ch->msg, &o, &p->ack, &aerr) != HL7_OK)
        hl7_ack_build_nak(p->raw, p->len, &aerr, NULL, &p->ack);
    return true;
}

/* Runs the channel's Lua filter on ch->msg. false: filtered (the script's
 * reason, if any, becomes the message's error text). A failing script sets
 * ch->filter_failed: the message is accepted and stored, and every delivery
 * starts in the error queue with the script's file, line and error, so that
 * nothing is lost and it can be reprocessed once the script is fixed. */
static bool run_filter_script(eng_channel *ch, pending *p)
{
    bool pass = true;
    tbuf reason = TBUF_INIT;
    script_error se;
    if (script_run_filter(ch->filter, ch->msg, &pass, &reason, &se) != SCRIPT_OK) {
        ch->filter_failed = true;
        tbuf t = TBUF_INIT;
        tbuf_printf(&t, "filter script failed: %s", se.text);
        free(p->error);
        p->error = tbuf_detach(&t, NULL);
        eng_log(ch, "%s", p->error);
        tbuf_free(&reason);
        return true;
    }
    if (!pass && reason.len) {
        tbuf t = TBUF_INIT;
        tbuf_printf(&t, "filtered by script: %s", reason.p);
        free(p->error);
        p->error = tbuf_detach(&t, NULL);
    }
    tbuf_free(&reason);
    return pass;
}

/* Decides the fate of a parsed message and builds its ACK. */
static void classify(engine *e, eng_channel *ch, pending *p)
{
    hl7_error perr;
    hl7_msg *m = ch->msg;
    if (hl7_parse(m, p->raw, p->len, &perr) != HL7_OK) {
        p->state = STORE_MSG_REJECTED;
        p->quality.outcome = STORE_Q_ERRORS;
        char where[96];
        tbuf t = TBUF_INIT;
        tbuf_printf(&t, "%s: %s", hl7_error_where(&perr, where, sizeof(where)), perr.text);
        p->error = tbuf_detach(&t, NULL);
        hl7_ack_build_nak(p->raw, p->len, &perr, NULL, &p->ack);
        /* Keep what the MSH says, when it alone is readable, so that the
         * rejected message can be found by its control id and sender. */
        size_t line = strcspn(p->raw, "\r\n");
        if (hl7_parse(m, p->raw, line, NULL) == HL7_OK) msg_meta_extract(m, &p->meta);
        p->accepted = ch->cfg->source.mllp.ack == CONFIG_ACK_ALWAYS;
        if (p->accepted) {
            tbuf_reset(&p->ack);
            hl7_ack_opts o = {.code = HL7_ACK_AA};
            hl7_ack_build_nak(p->raw, p->len, &perr, &o, &p->ack);
        }
        return;
    }
    msg_meta_extract(m, &p->meta);
    if (validate(ch, p)) return;
    bool pass = type_filter_accepts(ch, m);
    ch->filter_failed = false;
    if (pass && ch->filter) pass = run_filter_script(ch, p);
    if (ch->filter_failed) {
        p->state = STORE_MSG_RECEIVED; /* deliveries go straight to the error queue */
        p->dlv_error = true;
    }
    else if (!pass)
        p->state = STORE_MSG_FILTERED;
    else if (is_duplicate(e, ch, p))
        p->state = STORE_MSG_DUPLICATE;
    else
        p->state = STORE_MSG_RECEIVED;
    p->accepted = true;
    hl7_error aerr;
    hl7_ack_opts o = {.timestamp = ack_now(e)};
    if (hl7_ack_build(m, &o, &p->ack, &aerr) != HL7_OK)
        hl7_ack_build_nak(p->raw, p->len, &aerr, NULL, &p->ack);
}

static void commit_soon(engine *e)
{
    if (!event_pending(e->commit_ev, EV_TIMEOUT, NULL)) event_active(e->commit_ev, EV_TIMEOUT, 1);
}

void eng_submit(eng_channel *ch, const char *raw, size_t len, eng_done_fn done, void *arg)
{
    engine *e = ch->e;
    e->pend = xgrow(e->pend, &e->pendcap, e->npend + 1, sizeof(*e->pend));
    pending *p = &e->pend[e->npend++];
    memset(p, 0, sizeof(*p));
    p->ch = ch;
    p->raw = arena_alloc(&e->raws, &e->raw_pool, len + 1);
    memcpy(p->raw, raw, len);
    p->raw[len] = '\0';
    p->len = len;
    p->done = done;
    p->arg = arg;
    classify(e, ch, p);
    commit_soon(e);
}

/* (p->raw is in its job's arena) */
static void pending_free(pending *p)
{
    msg_meta_free(&p->meta);
    free(p->error);
    tbuf_free(&p->ack);
}

static void worker_kick(eng_dest *d);
static void kick_all(engine *e);

/* --- group commit ------------------------------------------------------------------ */

static commit_job *job_take(engine *e)
{
    commit_job *j = xcalloc(1, sizeof(*j));
    j->pend = e->pend;
    j->npend = e->npend;
    j->raws = e->raws;
    e->raws = (arena)ARENA_INIT;
    e->pend = NULL;
    e->npend = e->pendcap = 0;
    j->marks = e->marks;
    j->mark_texts = e->mark_texts;
    j->nmarks = e->nmarks;
    e->marks = NULL;
    e->mark_texts = NULL;
    e->nmarks = e->markcap = 0;
    size_t n = j->npend, maxd = 1;
    for (size_t i = 0; i < e->nchannels; i++)
        if (e->channels[i].ndests > maxd) maxd = e->channels[i].ndests;
    j->items = xcalloc(n ? n : 1, sizeof(*j->items));
    j->dests = xcalloc((n ? n : 1) * maxd, sizeof(*j->dests));
    int64_t now = now_ms();
    for (size_t i = 0; i < n; i++) {
        pending *p = &j->pend[i];
        store_put *it = &j->items[i];
        it->channel = p->ch->cfg->name;
        it->raw = p->raw;
        it->raw_len = p->len;
        it->received_at = now;
        it->meta = msg_meta_view(&p->meta);
        it->state = p->state;
        it->error = p->error;
        it->quality = p->quality;
        if (p->state == STORE_MSG_REJECTED) continue;
        store_dest *ds = j->dests + i * maxd;
        for (size_t k = 0; k < p->ch->ndests; k++) {
            ds[k].name = p->ch->dests[k].cfg->name;
            ds[k].state = p->state == STORE_MSG_RECEIVED && p->ch->dests[k].cfg->enabled
                              ? (p->dlv_error ? STORE_DLV_ERROR : STORE_DLV_QUEUED)
                              : STORE_DLV_FILTERED;
        }
        it->dests = ds;
        it->n_dests = p->ch->ndests;
    }
    return j;
}

/* Most messages a group of logged jobs may hold when indexed together, and
 * most logged but not indexed before the committer waits for the indexer
 * (the memory they hold stays bounded). */
#define INDEX_MAX 8192
#define BACKLOG_MAX 32768
/* The indexer lets logged jobs gather before writing their rows: bigger
 * transactions write fewer pages per message (every random index, such as
 * the patient tokens', costs about a page per message in a small one).
 * Light traffic waits INDEX_WAIT_MS, so rows (searches, queue workers) lag
 * the ACKs by a few milliseconds; once a transaction has carried
 * INDEX_BUSY messages or more the engine is under load and jobs gather for
 * up to INDEX_BUSY_WAIT_MS, until traffic slows down again. */
#define INDEX_WAIT_MS 4
#define INDEX_BUSY 256
#define INDEX_BUSY_WAIT_MS 50

/* The committer's part: the batch into the body log, synced. */
static void job_log(store *wr, commit_job *j)
{
    j->put_st = STORE_OK;
    if (j->npend) j->put_st = store_log_batch(wr, j->items, j->npend, &j->logged, &j->put_err);
    j->durable = j->put_st == STORE_OK && (!j->logged || j->logged->durable);
}

/* The indexer's part: the rows of the jobs' logged batches in one
 * transaction, then each job's delivery outcomes. On failure nothing
 * changed: the same jobs are indexed again later. */
static store_status job_index(store *wr, commit_job **js, size_t n, store_error *err)
{
    store_logged **bs = xcalloc(n ? n : 1, sizeof *bs);
    size_t nb = 0;
    for (size_t i = 0; i < n; i++)
        if (js[i]->logged) bs[nb++] = js[i]->logged;
    store_status st = nb ? store_index_batches(wr, bs, nb, err) : STORE_OK;
    free(bs);
    if (st != STORE_OK) return st;
    for (size_t i = 0; i < n; i++) {
        commit_job *j = js[i];
        j->mark_st = j->nmarks ? store_mark_batch(wr, j->marks, j->nmarks, now_ms(), &j->mark_err)
                               : STORE_OK;
    }
    return STORE_OK;
}

static void answer(pending *p, store_status st, const store_error *err)
{
    eng_channel *ch = p->ch;
    if (st == STORE_OK) {
        switch (p->state) {
        case STORE_MSG_RECEIVED: ch->received++; break;
        case STORE_MSG_REJECTED: ch->rejected++; break;
        case STORE_MSG_FILTERED: ch->filtered++; break;
        case STORE_MSG_DUPLICATE: ch->duplicates++; break;
        default: break;
        }
        p->done(p->arg, true, p->accepted, p->ack.p, p->ack.len);
        return;
    }
    tbuf nak = TBUF_INIT;
    hl7_error perr = {.code = HL7_ERR_IO};
    snprintf(perr.text, sizeof(perr.text), "message not stored, send again: %.180s", err->text);
    hl7_ack_opts o = {.code = HL7_ACK_AE};
    hl7_ack_build_nak(p->raw, p->len, &perr, &o, &nak);
    p->done(p->arg, false, false, nak.p, nak.len);
    tbuf_free(&nak);
}

static eng_dest *find_dest(engine *e, const char *channel, const char *dest)
{
    for (size_t i = 0; i < e->nchannels; i++) {
        if (strcmp(e->channels[i].cfg->name, channel)) continue;
        for (size_t k = 0; k < e->channels[i].ndests; k++)
            if (!strcmp(e->channels[i].dests[k].cfg->name, dest)) return &e->channels[i].dests[k];
    }
    return NULL;
}

/* Back on the loop, once a job is durable or failed: its ACKs (or NAKs). */
static void job_answer(commit_job *j, store_status st, const store_error *err)
{
    if (j->answered) return;
    j->answered = true;
    if (st != STORE_OK)
        engine_log("storing %zu messages failed, not acknowledged: %s", j->npend, err->text);
    for (size_t i = 0; i < j->npend; i++) answer(&j->pend[i], st, err);
}

/* After logging: a durable job is answered now, a failed one refused now;
 * the others (no body log) once their rows are written. */
static void job_logged(commit_job *j)
{
    if (j->put_st != STORE_OK)
        job_answer(j, j->put_st, &j->put_err);
    else if (j->durable)
        job_answer(j, STORE_OK, &j->put_err);
}

static void out_remove(engine *e, commit_job *j)
{
    for (size_t k = 0; k < e->nout; k++)
        if (e->out[k] == j) {
            memmove(e->out + k, e->out + k + 1, (e->nout - k - 1) * sizeof *e->out);
            e->nout--;
            return;
        }
}

/* Back on the loop once a job is indexed: account for the outcomes, free. */
static void job_finish(engine *e, commit_job *j)
{
    store *s = e->wr;
    job_answer(j, j->ix_st, &j->ix_err);
    if (j->mark_st != STORE_OK)
        engine_log("recording %zu delivery outcomes failed (they will be sent again): %s",
                   j->nmarks, j->mark_err.text);
    for (size_t i = 0; i < j->npend; i++) pending_free(&j->pend[i]);
    arena_release(&j->raws, &e->raw_pool);
    for (size_t i = 0; i < j->nmarks; i++) {
        eng_dest *d = find_dest(e, j->marks[i].channel, j->marks[i].dest);
        if (d && d->w.unmarked) d->w.unmarked--;
        free(j->mark_texts[i]);
    }
    out_remove(e, j);
    store_logged_free(s, j->logged);
    free(j->pend);
    free(j->items);
    free(j->dests);
    free(j->marks);
    free(j->mark_texts);
    free(j);
    kick_all(e);
    if (e->stopping && e->stop_ev) event_active(e->stop_ev, EV_TIMEOUT, 1);
}

/* Hands what is pending to the committer unless it is busy; when it is, the
 * next job starts as soon as it is done, with everything gathered meanwhile
 * (so batches grow with the load). */
static void commit_start(engine *e)
{
    if (e->job_busy || (!e->npend && !e->nmarks)) return;
    commit_job *j = job_take(e);
    e->job_busy = true;
    e->out = xgrow(e->out, &e->outcap, e->nout + 1, sizeof *e->out);
    e->out[e->nout++] = j;
    pthread_mutex_lock(&e->mu);
    e->job_in = j;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

/* Retention: prunes each channel's messages older than its retention
 * (docs/configuration.md), on the checkpointer's handle and thread, in
 * small transactions like `tern messages prune`, so the committer keeps
 * going. Audited in the store as done by "tern serve". */
static void prune_by_retention(engine *e)
{
    int64_t now = now_ms();
    store_audit who = {"tern serve", "retention"};
    for (size_t i = 0; i < e->cfg->nchannels; i++) {
        const config_channel *ch = &e->cfg->channels[i];
        if (!ch->retention_ms) continue;
        store_prune_result res;
        store_error err;
        if (store_prune_channel(e->ck, ch->name, now - (int64_t)ch->retention_ms, &who, now, &res,
                                &err) != STORE_OK)
            engine_log("channel %s: pruning by retention: %s", ch->name, err.text);
        else if (res.messages)
            engine_log("channel %s: %" PRIu64 " messages past retention deleted", ch->name,
                       res.messages);
    }
}

static bool retention_wanted(const tern_config *c)
{
    for (size_t i = 0; i < c->nchannels; i++)
        if (c->channels[i].retention_ms) return true;
    return false;
}

/* pthread_cond_timedwait for at most ms milliseconds from now (mu held). */
static void wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)(ms * 1000000L);
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    pthread_cond_timedwait(cv, mu, &ts);
}

/* The indexer and the checkpointer do background work (rows for searches
 * and queues, WAL copies) that no ACK waits for: at a lower priority
 * (nice +BACKGROUND_NICE, which needs no privilege) they yield the CPU to
 * the event loop and the committer, whose latency is every ACK's. Measured
 * at 64 connections: group commits 0.57-0.71 ms instead of 0.75-0.93 ms,
 * and 30-33k messages/s instead of 25-31k. */
#define BACKGROUND_NICE 10

static void background_priority(void)
{
    if (setpriority(PRIO_PROCESS, (id_t)gettid(), BACKGROUND_NICE) != 0)
        engine_log("could not lower the priority of a background thread: %s", strerror(errno));
}

/* Copies the write-ahead log into the database every CHECKPOINT_MS on its
 * own handle and thread (a PASSIVE checkpoint: it never blocks the writer);
 * every prune_every, prunes by retention (first at start). */
static void *checkpointer_main(void *arg)
{
    pthread_setname_np(pthread_self(), "tern-checkpoint");
    background_priority();
    engine *e = arg;
    bool retention = retention_wanted(e->cfg);
    int64_t next_prune = now_ms();
    pthread_mutex_lock(&e->mu);
    while (!e->quit) {
        wait_ms(&e->ck_cv, &e->mu, CHECKPOINT_MS);
        if (e->quit) break;
        pthread_mutex_unlock(&e->mu);
        store_error err;
        if (store_checkpoint(e->ck, &err) != STORE_OK) engine_log("checkpoint: %s", err.text);
        if (retention && now_ms() >= next_prune) {
            prune_by_retention(e);
            next_prune = now_ms() + (int64_t)e->cfg->prune_every_ms;
        }
        pthread_mutex_lock(&e->mu);
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

static void notify_loop(engine *e)
{
    char c = 1;
    while (write(e->notify[1], &c, 1) < 0 && errno == EINTR) {
    }
}

/* Logs each job it is handed (the fsync that makes it durable), tells the
 * loop (ACKs), and queues it for the indexer; waits while the indexer is
 * BACKLOG_MAX messages behind. */
static void *committer_main(void *arg)
{
    pthread_setname_np(pthread_self(), "tern-commit");
    engine *e = arg;
    pthread_mutex_lock(&e->mu);
    for (;;) {
        while ((!e->job_in || e->ix_backlog > BACKLOG_MAX) && !e->quit)
            pthread_cond_wait(&e->cv, &e->mu);
        if (!e->job_in) break;
        commit_job *j = e->job_in;
        e->job_in = NULL;
        pthread_mutex_unlock(&e->mu);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        job_log(e->wr, j);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        pthread_mutex_lock(&e->mu);
        e->commits++;
        e->committed += j->npend;
        e->commit_ns += (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000000L + (t1.tv_nsec - t0.tv_nsec));
        j->logged_at = now_ms();
        *e->logged_end = j;
        e->logged_end = &j->lnext;
        *e->ix_end = j;
        e->ix_end = &j->inext;
        e->ix_backlog += j->npend;
        pthread_cond_signal(&e->ix_cv);
        notify_loop(e);
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

/* Takes jobs from the head of the queue, up to INDEX_MAX messages (one at
 * least); under mu. */
static size_t ix_take(engine *e, commit_job ***js, size_t *cap)
{
    size_t n = 0, msgs = 0;
    for (commit_job *j = e->ix_head; j && (n == 0 || msgs + j->npend <= INDEX_MAX); j = j->inext) {
        *js = xgrow(*js, cap, n + 1, sizeof **js);
        (*js)[n++] = j;
        msgs += j->npend;
    }
    return n;
}

/* Indexes logged jobs in order, as many together as are waiting; on a
 * failure (disk full...) says so and tries the same jobs again, since a
 * logged batch must never be skipped (store.h). */
static void *indexer_main(void *arg)
{
    pthread_setname_np(pthread_self(), "tern-index");
    background_priority();
    engine *e = arg;
    commit_job **js = NULL;
    size_t cap = 0;
    int64_t last_complaint = 0;
    bool busy = false; /* the last transaction carried INDEX_BUSY messages or more */
    pthread_mutex_lock(&e->mu);
    for (;;) {
        while (!e->ix_head && !e->quit) pthread_cond_wait(&e->ix_cv, &e->mu);
        if (!e->ix_head) break;
        int64_t due = e->ix_head->logged_at + (busy ? INDEX_BUSY_WAIT_MS : INDEX_WAIT_MS);
        if (e->ix_backlog < INDEX_MAX && now_ms() < due && !e->quit && !e->ix_now) {
            wait_ms(&e->ix_cv, &e->mu, due - now_ms());
            continue;
        }
        size_t n = ix_take(e, &js, &cap);
        pthread_mutex_unlock(&e->mu);
        store_error err;
        store_status st = job_index(e->wr, js, n, &err);
        pthread_mutex_lock(&e->mu);
        if (st != STORE_OK && !e->quit) {
            if (now_ms() - last_complaint > 10000) {
                engine_log("writing the rows of %zu logged batches failed, trying again (the "
                           "messages are safe in the body log): %s", n, err.text);
                last_complaint = now_ms();
            }
            wait_ms(&e->ix_cv, &e->mu, 200);
            continue;
        }
        /* indexed (or quitting: what failed is recovered from the log at
         * the next start) */
        size_t msgs = 0;
        for (size_t i = 0; i < n; i++) {
            commit_job *j = js[i];
            e->ix_head = j->inext;
            if (!e->ix_head) e->ix_end = &e->ix_head;
            j->inext = NULL;
            j->ix_st = st;
            if (st != STORE_OK) j->ix_err = err;
            *e->indexed_end = j;
            e->indexed_end = &j->inext;
            msgs += j->npend;
        }
        e->ix_backlog -= msgs;
        busy = msgs >= INDEX_BUSY;
        e->ix_runs++;
        e->ix_msgs += msgs;
        pthread_cond_broadcast(&e->cv); /* the committer may wait for the backlog */
        notify_loop(e);
    }
    pthread_mutex_unlock(&e->mu);
    free(js);
    return NULL;
}

/* The loop's side of the pipe: ACKs for what was logged, then the next job
 * to the committer (start_next), then what was indexed is finished. */
static void drain_done(engine *e, bool start_next)
{
    char buf[64];
    while (read(e->notify[0], buf, sizeof(buf)) > 0) {
    }
    pthread_mutex_lock(&e->mu);
    commit_job *logged = e->logged, *indexed = e->indexed;
    e->logged = NULL;
    e->logged_end = &e->logged;
    e->indexed = NULL;
    e->indexed_end = &e->indexed;
    pthread_mutex_unlock(&e->mu);
    if (logged) e->job_busy = false;
    /* the next batch first: its append and fsync overlap with these ACKs */
    if (start_next) commit_start(e);
    for (commit_job *j = logged, *next; j; j = next) {
        next = j->lnext;
        job_logged(j);
    }
    for (commit_job *j = indexed, *next; j; j = next) {
        next = j->inext;
        job_finish(e, j);
    }
}

static void on_job_done(evutil_socket_t fd, short what, void *arg)
{
    drain_done(arg, true);
}

/* Waits for the jobs out and commits what is pending, on the calling (loop)
 * thread: for stopping, when nothing may be left behind. */
static void commit_sync(engine *e)
{
    while (e->nout) {
        struct pollfd pfd = {.fd = e->notify[0], .events = POLLIN};
        (void)poll(&pfd, 1, 100);
        drain_done(e, false);
    }
    while (e->npend || e->nmarks) {
        commit_job *j = job_take(e);
        e->out = xgrow(e->out, &e->outcap, e->nout + 1, sizeof *e->out);
        e->out[e->nout++] = j;
        /* the threads are idle: the handle is ours */
        job_log(e->wr, j);
        job_logged(j);
        j->ix_st = job_index(e->wr, &j, 1, &j->ix_err);
        if (j->ix_st != STORE_OK)
            engine_log("writing the rows of %zu messages failed (recovered from the body log at "
                       "the next start): %s", j->npend, j->ix_err.text);
        job_finish(e, j);
    }
}

static void on_commit(evutil_socket_t fd, short what, void *arg)
{
    commit_start(arg);
}

static int take_inflight(worker *w, int64_t id)
{
    for (uint32_t i = 0; i < w->ninflight; i++)
        if (w->inflight[i].id == id) {
            int attempts = w->inflight[i].attempts;
            w->inflight[i] = w->inflight[--w->ninflight];
            return attempts;
        }
    return 0;
}

static void schedule(worker *w, int64_t delay_ms);

void eng_dest_result(eng_dest *d, int64_t id, store_outcome outcome, const char *error)
{
    engine *e = d->ch->e;
    worker *w = &d->w;
    int attempts = take_inflight(w, id);
    store_mark mk = {.channel = d->ch->cfg->name, .dest = d->cfg->name, .message_id = id,
                     .outcome = outcome};
    tbuf text = TBUF_INIT;
    if (outcome == STORE_RETRY) {
        uint32_t made = (uint32_t)attempts + 1;
        const config_retry *r = &d->cfg->retry;
        if (r->max_attempts != CONFIG_RETRY_FOREVER && made >= r->max_attempts) {
            mk.outcome = STORE_FAILED;
            tbuf_printf(&text, "gave up after %u attempts: %s", made, error ? error : "");
        } else {
            mk.next_attempt_at = now_ms() + (int64_t)config_retry_delay(r, made);
            tbuf_puts(&text, error ? error : "");
        }
    } else if (error) {
        tbuf_puts(&text, error);
    }
    switch (mk.outcome) {
    case STORE_SENT: d->sent++; break;
    case STORE_RETRY: d->retried++; break;
    case STORE_FAILED: d->failed++; break;
    }
    if (mk.outcome != STORE_SENT)
        eng_log(d->ch, "destination %s, message %lld: %s%s", d->cfg->name, (long long)id,
                mk.outcome == STORE_FAILED ? "moved to the error queue: " : "will retry: ",
                text.p ? text.p : "");
    bool ordered = d->cfg->parallel <= 1;
    if (ordered && mk.outcome == STORE_RETRY) {
        /* Strict order: nothing after the head goes before it. */
        w->await_retry = true;
        w->page.n = 0;
        w->page_pos = 0;
    } else if (ordered) {
        w->cursor = id;
    }
    e->marks = xgrow(e->marks, &e->markcap, e->nmarks + 1, sizeof(*e->marks));
    e->mark_texts = xrealloc(e->mark_texts, e->markcap * sizeof(*e->mark_texts));
    e->mark_texts[e->nmarks] = text.len ? tbuf_detach(&text, NULL) : NULL;
    mk.error = e->mark_texts[e->nmarks];
    e->marks[e->nmarks++] = mk;
    tbuf_free(&text);
    w->unmarked++;
    commit_soon(e);
    schedule(w, 0); /* go on from the loop, not from inside the driver */
    if (e->stopping && e->stop_ev) event_active(e->stop_ev, EV_TIMEOUT, 1);
}

/* --- queue workers ----------------------------------------------------------------- */

/* Applies the channel's transform steps to a copy of raw, into ch->tx_out.
 * 0, or -1 with the reason in err. */
static int transform_message(eng_channel *ch, const char *raw, size_t len, tbuf *err)
{
    hl7_error he;
    if (hl7_parse(ch->tx_msg, raw, len, &he) != HL7_OK) {
        tbuf_printf(err, "transform: the stored message does not parse: %s", he.text);
        return -1;
    }
    if (transform_apply(ch->tx, ch->tx_msg, err) != 0) return -1;
    tbuf_reset(&ch->tx_out);
    hl7_serialize_cr(ch->tx_msg, &ch->tx_out);
    return 0;
}

static void deliver_item(eng_dest *d, const store_queue_item *it)
{
    worker *w = &d->w;
    eng_channel *ch = d->ch;
    w->inflight[w->ninflight++] = (inflight){it->message_id, it->attempts};
    eng_delivery dl = {.id = it->message_id, .raw = it->raw, .len = it->raw_len,
                       .received_at = it->received_at, .attempts = it->attempts};
    if (ch->tx) {
        /* A step that cannot be applied will not apply on a retry either:
         * straight to the error queue, with the reason. */
        tbuf why = TBUF_INIT;
        if (transform_message(ch, it->raw, it->raw_len, &why) != 0) {
            eng_dest_result(d, it->message_id, STORE_FAILED, why.p);
            tbuf_free(&why);
            return;
        }
        tbuf_free(&why);
        dl.raw = ch->tx_out.p;
        dl.len = ch->tx_out.len;
    }
    d->ops->deliver(d, &dl);
}

static void schedule(worker *w, int64_t delay_ms)
{
    struct timeval tv = {(time_t)(delay_ms / 1000), (suseconds_t)((delay_ms % 1000) * 1000)};
    evtimer_add(w->timer, &tv);
}

#define ORDERED_PAGE 64

/* Strict order: deliver the queue head, one at a time. */
static void run_ordered(eng_dest *d)
{
    worker *w = &d->w;
    engine *e = d->ch->e;
    store_error err;
    if (w->ninflight) return;
    if (w->await_retry) {
        if (w->unmarked) return;
        w->await_retry = false;
    }
    if (w->page_pos >= w->page.n) {
        w->page_pos = 0;
        if (store_queue_next(e->st, d->ch->cfg->name, d->cfg->name, w->cursor, INT64_MAX,
                             ORDERED_PAGE, &w->page, &err) != STORE_OK) {
            eng_log(d->ch, "reading the queue of %s failed: %s", d->cfg->name, err.text);
            w->page.n = 0;
            return;
        }
        if (w->page.n == 0) return;
    }
    const store_queue_item *it = &w->page.items[w->page_pos];
    int64_t now = now_ms();
    if (it->next_attempt_at > now) {
        schedule(w, it->next_attempt_at - now);
        return;
    }
    w->page_pos++;
    deliver_item(d, it);
}

/* Any order: keep up to `parallel` deliveries in flight. */
static void run_parallel(eng_dest *d, uint32_t parallel)
{
    worker *w = &d->w;
    engine *e = d->ch->e;
    store_error err;
    while (w->ninflight < parallel) {
        if (store_queue_next(e->st, d->ch->cfg->name, d->cfg->name, w->cursor, now_ms(),
                             parallel - w->ninflight, &w->page, &err) != STORE_OK) {
            eng_log(d->ch, "reading the queue of %s failed: %s", d->cfg->name, err.text);
            return;
        }
        if (w->page.n == 0) return;
        for (size_t i = 0; i < w->page.n; i++) {
            w->cursor = w->page.items[i].message_id;
            deliver_item(d, &w->page.items[i]);
        }
    }
}

static void worker_run(eng_dest *d)
{
    worker *w = &d->w;
    if (!d->open || d->ch->e->stopping || w->running) return;
    w->running = true;
    uint32_t parallel = d->cfg->parallel ? d->cfg->parallel : 1;
    if (parallel == 1)
        run_ordered(d);
    else
        run_parallel(d, parallel);
    w->running = false;
}

static void worker_kick(eng_dest *d)
{
    worker_run(d);
}

static void on_worker_timer(evutil_socket_t fd, short what, void *arg)
{
    worker_run(arg);
}

/* Every POLL_MS: look at every queue from its head again once it is idle, to
 * pick up retries that came due and deliveries requeued from the CLI. */
static void on_poll(evutil_socket_t fd, short what, void *arg)
{
    engine *e = arg;
    for (size_t i = 0; i < e->nchannels; i++)
        for (size_t k = 0; k < e->channels[i].ndests; k++) {
            eng_dest *d = &e->channels[i].dests[k];
            worker *w = &d->w;
            if (w->ninflight == 0 && w->unmarked == 0) {
                w->cursor = 0;
                w->page.n = 0;
                w->page_pos = 0;
            }
            worker_run(d);
        }
}

/* --- lifecycle ---------------------------------------------------------------------- */

static const eng_dest_ops *dest_ops_for(config_dest_type t)
{
    switch (t) {
    case CONFIG_DEST_FILE: return &eng_dest_file_ops;
    case CONFIG_DEST_MLLP: return &eng_dest_mllp_ops;
    case CONFIG_DEST_HTTP: return &eng_dest_http_ops;
    case CONFIG_DEST_FHIR_STORE: return &eng_dest_fhir_store_ops;
    case CONFIG_DEST_FHIR: return &eng_dest_fhir_ops;
    }
    return NULL;
}

static const eng_source_ops *source_ops_for(config_source_type t)
{
    switch (t) {
    case CONFIG_SOURCE_MLLP: return &eng_source_mllp_ops;
    case CONFIG_SOURCE_FILE: return &eng_source_file_ops;
    case CONFIG_SOURCE_HTTP: return &eng_source_http_ops;
    case CONFIG_SOURCE_FHIR: return &eng_source_fhir_ops;
    }
    return NULL;
}

/* script_log_fn: a script's log() lines go to the engine's log. */
static void script_log(void *ud, const char *path, script_log_level level, const char *text,
                       size_t len)
{
    static const char *const names[] = {"debug", "info", "warning", "error"};
    eng_log(ud, "%s: %s: %.*s", path, names[level <= SCRIPT_LOG_ERROR ? level : 0], (int)len,
            text);
}

/* Loads the configuration's code maps (config_load has checked them). */
static int load_maps(engine *e, tbuf *err)
{
    e->maps = codemap_registry_new();
    for (size_t i = 0; i < e->cfg->nmaps; i++) {
        const config_map *cm = &e->cfg->maps[i];
        codemap_options o;
        codemap_options_default(&o);
        codemap_error ce;
        codemap *m = NULL;
        if ((cm->unmapped && codemap_unmapped_parse(cm->unmapped, &o.unmapped, &ce) != CODEMAP_OK) ||
            (cm->match && codemap_match_parse(cm->match, &o.match, &ce) != CODEMAP_OK) ||
            codemap_load_file(cm->file, cm->name, &o, &m, &ce) != CODEMAP_OK ||
            codemap_registry_add(e->maps, m, &ce) != CODEMAP_OK) {
            tbuf_printf(err, "code map %s: %s", cm->name, ce.text);
            return -1;
        }
    }
    return 0;
}

static int setup_channel(engine *e, eng_channel *ch, const config_channel *cc, tbuf *err)
{
    ch->e = e;
    ch->cfg = cc;
    ch->msg = hl7_msg_new(&cc->limits);
    unsigned vline = 0;
    tbuf vwhy = TBUF_INIT;
    ch->quality = quality_build(&cc->validation, &vwhy, &vline);
    if (!ch->quality) {
        tbuf_printf(err, "channel %s: validation (line %u): %s", cc->name, vline,
                    vwhy.p ? vwhy.p : "invalid");
        tbuf_free(&vwhy);
        return -1;
    }
    tbuf_free(&vwhy);
    if (cc->filter.script) {
        ch->filter_host = (script_host){.maps = e->maps, .log = script_log, .log_ud = ch};
        script_error se;
        if (script_load(cc->filter.script, NULL, &ch->filter_host, &ch->filter, &se) !=
            SCRIPT_OK) {
            tbuf_printf(err, "channel %s: filter script: %s", cc->name, se.text);
            return -1;
        }
    }
    if (cc->ntransforms) {
        ch->tx = transform_compile(cc->transforms, cc->ntransforms, e->maps, err);
        if (!ch->tx) {
            tbuf_printf(err, " (channel %s)", cc->name);
            return -1;
        }
        ch->tx_msg = hl7_msg_new(&cc->limits);
    }
    ch->ndests = cc->ndestinations;
    ch->dests = xcalloc(ch->ndests ? ch->ndests : 1, sizeof(*ch->dests));
    for (size_t k = 0; k < ch->ndests; k++) {
        eng_dest *d = &ch->dests[k];
        d->cfg = &cc->destinations[k];
        d->ch = ch;
        d->ops = dest_ops_for(d->cfg->type);
        uint32_t parallel = d->cfg->parallel ? d->cfg->parallel : 1;
        d->w.inflight = xcalloc(parallel, sizeof(*d->w.inflight));
        d->w.timer = evtimer_new(e->base, on_worker_timer, d);
        if (!d->cfg->enabled) continue;
        tbuf why = TBUF_INIT;
        if (d->ops->open(d, &why) != 0) {
            tbuf_printf(err, "channel %s, destination %s: %s", cc->name, d->cfg->name,
                        why.p ? why.p : "cannot start");
            tbuf_free(&why);
            return -1;
        }
        tbuf_free(&why);
        d->open = true;
    }
    if (!cc->enabled) return 0;
    ch->src_ops = source_ops_for(cc->source.type);
    ch->src = ch->src_ops->start(ch, err);
    if (!ch->src) {
        tbuf_printf(err, " (channel %s)", cc->name);
        return -1;
    }
    e->sources_running++;
    return 0;
}

/* Every request no channel path took: /fhir/... goes to the FHIR API
 * (fhir_rest_handle, where its authentication and audit belong), the rest
 * is 404. */
/* The patient a FHIR request names, for the audit trail: "Patient/ID" for
 * a path under Patient/ID, else the value of a patient= or subject= search
 * parameter; "" when none. */
static void fhir_patient_of(const char *path, const char *query, char *out, size_t cap)
{
    out[0] = '\0';
    const char *p = path + 5; /* after "/fhir" */
    if (!strncmp(p, "/Patient/", 9) && p[9] && p[9] != '_' && p[9] != '$') {
        size_t n = strcspn(p + 1, "/");
        snprintf(out, cap, "%.*s", (int)n, p + 1);
        return;
    }
    for (const char *q = query; q && *q;) {
        size_t len = strcspn(q, "&");
        const char *eq = memchr(q, '=', len);
        if (eq && ((eq - q == 7 && !strncmp(q, "patient", 7)) ||
                   (eq - q == 7 && !strncmp(q, "subject", 7)))) {
            snprintf(out, cap, "%.*s", (int)(len - (size_t)(eq + 1 - q)), eq + 1);
            return;
        }
        q += len + (q[len] == '&');
    }
}

/* Every request no channel took. /fhir/...: authenticated and authorised
 * (fhir.read for GET/HEAD and _search, fhir.write otherwise; system tokens
 * need the pseudo-channel "fhir" in their list) and audited with the
 * patient it names, then the FHIR API; the CapabilityStatement is public. */
static void http_dispatch(struct evhttp_request *req, void *arg)
{
    engine *e = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = evhttp_uri_get_path(uri);
    if (!e->fhir || !fhir_rest_path_is_ours(path)) {
        evhttp_send_error(req, 404, "Not Found");
        return;
    }
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    size_t plen = strlen(path);
    bool read = cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD ||
                (plen >= 8 && !strcmp(path + plen - 8, "/_search"));
    if (strcmp(path, "/fhir/metadata") != 0) {
        char patient[160];
        fhir_patient_of(path, evhttp_uri_get_query(uri), patient, sizeof patient);
        sec_principal who = {0};
        if (!sec_http_gate(e->sec, req, read ? SEC_FHIR_READ : SEC_FHIR_WRITE, "fhir",
                           patient[0] ? patient : NULL, &who))
            return;
        sec_principal_clear(&who);
    }
    fhir_rest_handle(e->fhir, req);
}

/* The FHIR API and store, for the HTTP listener and fhir-store
 * destinations. */
static int setup_fhir(engine *e, tbuf *err)
{
    char why[512];
    if (e->cfg->fhir.tables &&
        !fhir_tables_load(e->cfg->fhir.tables, &e->fhir_tables, why, sizeof why)) {
        tbuf_printf(err, "fhir.tables: %s", why);
        return -1;
    }
    bool wanted = e->cfg->http.enabled;
    for (size_t i = 0; i < e->cfg->nchannels; i++)
        for (size_t k = 0; k < e->cfg->channels[i].ndestinations; k++)
            if (e->cfg->channels[i].destinations[k].type == CONFIG_DEST_FHIR_STORE) wanted = true;
    if (!wanted) return 0;
    e->fhir = fhir_rest_new(e->cfg->fhir.store, err);
    if (e->fhir) fhir_rest_set_keys(e->fhir, e->keys);
    return e->fhir ? 0 : -1;
}

static int setup_http(engine *e, tbuf *err)
{
    if (setup_fhir(e, err) != 0) return -1;
    if (!e->cfg->http.enabled) return 0;
    e->http = evhttp_new(e->base);
    evhttp_set_gencb(e->http, http_dispatch, e);
    evhttp_set_allowed_methods(e->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH);
    /* Bodies larger than every HTTP source on this server and the FHIR API allow are
     * refused by libevent before they are read in full. */
    size_t max_body = 0;
    for (size_t i = 0; i < e->cfg->nchannels; i++) {
        const config_source *src = &e->cfg->channels[i].source;
        if (src->type == CONFIG_SOURCE_HTTP && src->listen.port == 0 && src->http.max_body > max_body)
            max_body = src->http.max_body;
    }
    if (max_body < FHIR_REST_MAX_BODY) max_body = FHIR_REST_MAX_BODY;
    evhttp_set_max_body_size(e->http, (ev_ssize_t)max_body);
    net_http_limit(e->http, e->cfg->http.timeout_ms);
    const config_addr *a = &e->cfg->http.listen;
    if (evhttp_bind_socket(e->http, a->host, a->port) != 0) {
        tbuf_printf(err, "cannot listen for HTTP on %s:%u (in use, or not an address of this "
                         "machine); change http.listen",
                    a->host, a->port);
        return -1;
    }
    if (e->cfg->http.tls.enabled) {
        tls_ctx *t = eng_tls_get(e->tls, &e->cfg->http.tls, true, "http", err);
        if (!t) return -1;
        net_http_use_tls(e->http, t);
    }
    return 0;
}

static void kick_all(engine *e)
{
    for (size_t i = 0; i < e->nchannels; i++)
        for (size_t k = 0; k < e->channels[i].ndests; k++) worker_kick(&e->channels[i].dests[k]);
}

/* Three handles on the store: the committer thread writes, the loop reads,
 * the checkpointer copies the log into the database. */
int engine_open_keyring(const tern_config *cfg, bool create, struct keyring **out, tbuf *err)
{
    *out = NULL;
    const config_encryption *enc = &cfg->encryption;
    if (!enc->enabled) return 0;
    unsigned char master[KEYS_LEN];
    tbuf why = TBUF_INIT;
    int rc = keys_load_master(enc->key_file, enc->key_env, master, &why);
    if (rc == 0) {
        char *ring = keys_ring_path(cfg->store.path);
        rc = keyring_open(ring, master, create, out, &why);
        free(ring);
    }
    OPENSSL_cleanse(master, sizeof master);
    if (rc != 0)
        tbuf_printf(err, "%s (PHI is encrypted at rest unless encryption.enabled is false; "
                         "see docs/security-at-rest.md)",
                    why.p);
    tbuf_free(&why);
    return rc;
}

static int open_store(engine *e, tbuf *err)
{
    if (engine_open_keyring(e->cfg, true, &e->keys, err) != 0) return -1;
    store_options wo = {.checkpoint_pages = CHECKPOINT_PAGES, .writer = true, .keys = e->keys};
    store_options ro = {.checkpoint_pages = -1, .keys = e->keys};
    store_error serr;
    const char *path = e->cfg->store.path;
    if (store_open(path, &wo, &e->wr, &serr) != STORE_OK ||
        store_open(path, &ro, &e->st, &serr) != STORE_OK ||
        store_open(path, &ro, &e->ck, &serr) != STORE_OK) {
        tbuf_printf(err, "cannot open the store %s: %s", path, serr.text);
        return -1;
    }
    return 0;
}

static int start_threads(engine *e, tbuf *err)
{
    if (pipe2(e->notify, O_NONBLOCK | O_CLOEXEC) != 0) {
        tbuf_printf(err, "cannot create a pipe: %s", strerror(errno));
        e->notify[0] = e->notify[1] = -1;
        return -1;
    }
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    pthread_cond_init(&e->ck_cv, NULL);
    pthread_cond_init(&e->ix_cv, NULL);
    e->logged_end = &e->logged;
    e->ix_end = &e->ix_head;
    e->indexed_end = &e->indexed;
    if (pthread_create(&e->committer, NULL, committer_main, e) != 0) {
        tbuf_puts(err, "cannot start the committer thread");
        return -1;
    }
    const char *failed = NULL;
    if (pthread_create(&e->indexer, NULL, indexer_main, e) != 0)
        failed = "cannot start the indexer thread";
    else if (pthread_create(&e->checkpointer, NULL, checkpointer_main, e) != 0)
        failed = "cannot start the checkpointer thread";
    if (failed) {
        pthread_mutex_lock(&e->mu);
        e->quit = true;
        pthread_cond_broadcast(&e->cv);
        pthread_cond_broadcast(&e->ix_cv);
        pthread_mutex_unlock(&e->mu);
        pthread_join(e->committer, NULL);
        if (strcmp(failed, "cannot start the indexer thread")) pthread_join(e->indexer, NULL);
        tbuf_puts(err, failed);
        return -1;
    }
    e->threads = true;
    e->notify_ev = event_new(e->base, e->notify[0], EV_READ | EV_PERSIST, on_job_done, e);
    /* First in its loop turn when the base has priorities (engine.h): the
     * committer waits for the next batch until the loop has seen this. */
    event_priority_set(e->notify_ev, 0);
    event_add(e->notify_ev, NULL);
    return 0;
}

static void stop_threads(engine *e)
{
    if (!e->threads) return;
    pthread_mutex_lock(&e->mu);
    e->quit = true;
    pthread_cond_broadcast(&e->cv);
    pthread_cond_broadcast(&e->ck_cv);
    pthread_cond_broadcast(&e->ix_cv);
    pthread_mutex_unlock(&e->mu);
    pthread_join(e->committer, NULL);
    pthread_join(e->indexer, NULL);
    pthread_join(e->checkpointer, NULL);
    pthread_cond_destroy(&e->cv);
    pthread_cond_destroy(&e->ck_cv);
    pthread_cond_destroy(&e->ix_cv);
    pthread_mutex_destroy(&e->mu);
    e->threads = false;
}

engine *engine_new(const tern_config *cfg, struct event_base *base, tbuf *err)
{
    engine *e = xcalloc(1, sizeof(*e));
    e->cfg = cfg;
    e->base = base;
    e->notify[0] = e->notify[1] = -1;
    e->tls = eng_tls_set_new();
    if (open_store(e, err) != 0 || start_threads(e, err) != 0) goto fail;
    e->commit_ev = event_new(base, -1, 0, on_commit, e);
    e->poll_ev = event_new(base, -1, EV_PERSIST, on_poll, e);
    struct timeval tv = {POLL_MS / 1000, (POLL_MS % 1000) * 1000};
    event_add(e->poll_ev, &tv);
    if (setup_http(e, err) != 0 || setup_security(e, err) != 0 || load_maps(e, err) != 0)
        goto fail;
    e->channels = xcalloc(cfg->nchannels ? cfg->nchannels : 1, sizeof(*e->channels));
    for (size_t i = 0; i < cfg->nchannels; i++) {
        e->nchannels = i + 1;
        if (setup_channel(e, &e->channels[i], &cfg->channels[i], err) != 0) goto fail;
    }
    kick_all(e);
    return e;
fail:
    engine_free(e);
    return NULL;
}

static bool deliveries_in_flight(const engine *e)
{
    for (size_t i = 0; i < e->nchannels; i++)
        for (size_t k = 0; k < e->channels[i].ndests; k++)
            if (e->channels[i].dests[k].w.ninflight) return true;
    return false;
}

static void stop_check(evutil_socket_t fd, short what, void *arg)
{
    engine *e = arg;
    if (e->sources_running || deliveries_in_flight(e)) return;
    if (e->nout || e->npend || e->nmarks) {
        commit_start(e); /* job_finish comes back here */
        return;
    }
    if (e->stop_done) {
        void (*done)(void *) = e->stop_done;
        e->stop_done = NULL;
        done(e->stop_arg);
    }
}

static void source_stopped(void *arg)
{
    engine *e = arg;
    if (e->sources_running) e->sources_running--;
    event_active(e->stop_ev, EV_TIMEOUT, 1);
}

void engine_stop(engine *e, void (*done)(void *arg), void *arg)
{
    if (e->stopping) return;
    e->stopping = true;
    e->stop_done = done;
    e->stop_arg = arg;
    e->stop_ev = event_new(e->base, -1, 0, stop_check, e);
    event_del(e->poll_ev);
    size_t running = 0;
    for (size_t i = 0; i < e->nchannels; i++)
        if (e->channels[i].src) running++;
    if (!running) {
        event_active(e->stop_ev, EV_TIMEOUT, 1);
        return;
    }
    for (size_t i = 0; i < e->nchannels; i++)
        if (e->channels[i].src) e->channels[i].src_ops->stop(e->channels[i].src, source_stopped, e);
}

void engine_free(engine *e)
{
    if (!e) return;
    e->stopping = true; /* no new deliveries from here on */
    /* What was received is stored and answered while its source exists. */
    if (e->threads) commit_sync(e);
    for (size_t i = 0; i < e->nchannels; i++) {
        eng_channel *ch = &e->channels[i];
        if (ch->src) ch->src_ops->free(ch->src);
        ch->src = NULL;
        for (size_t k = 0; k < ch->ndests; k++) {
            eng_dest *d = &ch->dests[k];
            if (d->open) d->ops->close(d);
            d->open = false;
        }
    }
    if (e->threads) commit_sync(e); /* outcomes reported while closing */
    stop_threads(e);
    for (size_t i = 0; i < e->nchannels; i++) {
        eng_channel *ch = &e->channels[i];
        for (size_t k = 0; k < ch->ndests; k++) {
            eng_dest *d = &ch->dests[k];
            if (d->w.timer) event_free(d->w.timer);
            store_queue_batch_free(&d->w.page);
            free(d->w.inflight);
        }
        free(ch->dests);
        hl7_msg_free(ch->msg);
        hl7_msg_free(ch->tx_msg);
        quality_free(ch->quality);
        validate_result_free(&ch->vres);
        transform_free(ch->tx);
        script_free(ch->filter);
        tbuf_free(&ch->tx_out);
    }
    free(e->channels);
    arena_release(&e->raws, &e->raw_pool);
    arena_pool_free(&e->raw_pool);
    codemap_registry_free(e->maps);
    if (e->http) evhttp_free(e->http);
    fhir_rest_free(e->fhir);
    fhir_tables_free(e->fhir_tables);
    sec_error serr = {0};
    if (e->sec && sec_ctx_close(e->sec, &serr) != SEC_OK)
        engine_log("the audit trail lost records: %s", serr.text);
    if (e->commit_ev) event_free(e->commit_ev);
    if (e->poll_ev) event_free(e->poll_ev);
    if (e->stop_ev) event_free(e->stop_ev);
    if (e->notify_ev) event_free(e->notify_ev);
    if (e->notify[0] >= 0) close(e->notify[0]);
    if (e->notify[1] >= 0) close(e->notify[1]);
    free(e->pend);
    free(e->out);
    free(e->marks);
    free(e->mark_texts);
    store_close(e->st);
    store_close(e->wr);
    store_close(e->ck);
    keyring_close(e->keys);
    eng_tls_set_free(e->tls);
    free(e);
}

void engine_describe(const engine *e, tbuf *out)
{
    for (size_t i = 0; i < e->nchannels; i++) {
        const eng_channel *ch = &e->channels[i];
        tbuf_printf(out, "channel %s: received %llu, rejected %llu, filtered %llu, duplicates %llu",
                    ch->cfg->name, (unsigned long long)ch->received,
                    (unsigned long long)ch->rejected, (unsigned long long)ch->filtered,
                    (unsigned long long)ch->duplicates);
        for (size_t k = 0; k < ch->ndests; k++)
            tbuf_printf(out, "; %s: sent %llu, retried %llu, failed %llu", ch->dests[k].cfg->name,
                        (unsigned long long)ch->dests[k].sent,
                        (unsigned long long)ch->dests[k].retried,
                        (unsigned long long)ch->dests[k].failed);
        tbuf_putc(out, '\n');
    }
    if (e->commits)
        tbuf_printf(out,
                    "store: %llu messages in %llu group commits (%.1f per commit, %.2f ms per "
                    "commit on average)\n",
                    (unsigned long long)e->committed, (unsigned long long)e->commits,
                    (double)e->committed / (double)e->commits,
                    (double)e->commit_ns / 1e6 / (double)e->commits);
    if (e->ix_runs)
        tbuf_printf(out, "store: rows of %llu messages written in %llu transactions (%.1f per "
                         "transaction)\n",
                    (unsigned long long)e->ix_msgs, (unsigned long long)e->ix_runs,
                    (double)e->ix_msgs / (double)e->ix_runs);
}
