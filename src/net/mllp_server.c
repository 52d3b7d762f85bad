/*
 * mllp_server: MLLP listener (see mllp_server.h).
 *
 * Per connection (sconn): a framer, a FIFO of reply slots (one per frame
 * handed to the handler, in frame order), an idle timer and a "kick" event.
 * The idle timer also bounds slow senders: bytes that have not made a whole
 * frame within the idle timeout of the first of them close the connection,
 * however often more bytes trickle in (slowloris), unless a reply is owed.
 * A slot is the reply handle itself. Answering the head slot writes it at
 * once, then every answered slot behind it; answering another slot stores
 * its bytes in the slot until the slots before it are answered.
 *
 * When a connection closes, answered slots are freed and unanswered ones are
 * detached (conn = NULL): the handler still owns them, and answering a
 * detached slot only frees it. So a handle never dangles.
 *
 * Re-entrancy: the handler may answer (or stop the server) from inside the
 * frame callback, which runs inside the read path. Answering never closes a
 * connection or reads input directly; work that could (resuming a paused
 * connection, closing a finished one) is deferred to the kick event, which
 * runs from the loop. Connections are only freed from loop callbacks.
 *
 * Backpressure: when a connection owes max_inflight replies, or when more
 * than OUTPUT_HIGH bytes of replies wait to be written because the peer
 * does not read them, reading stops (and bytes already buffered stay
 * unparsed) until a reply goes out or the output drains.
 */
#include "net/mllp_server.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "base/mem.h"

/* Replies waiting in the output buffer beyond which a connection stops
 * being read: a peer that sends without reading its ACKs gets no more. */
#define OUTPUT_HIGH (256u << 10)

typedef struct sconn sconn;

struct mllp_reply {
    sconn *conn; /* NULL once the connection is gone */
    mllp_reply *next;
    bool answered;
    bool has_data;
    tbuf data; /* a reply given before its turn */
};

struct sconn {
    mllp_server *srv;
    net_conn *nc;
    mllp_framer *fr;
    sconn *prev, *next;
    mllp_reply *head, *tail;
    unsigned owed; /* slots in the queue */
    struct event *idle;
    struct event *kick;
    struct timeval last;          /* last traffic either way */
    struct timeval pending_since; /* first byte not yet part of a whole frame */
    bool pending;
    uint64_t id, seq, replies;
    bool paused, eof, in_input;
    bool cert_read;      /* peer_cert below is known */
    char peer_cert[96];  /* the client certificate's fingerprint; "" when none */
};

struct mllp_server {
    struct event_base *base;
    net_listener *lst;
    mllp_server_opts o;
    mllp_handler_fn handler;
    void *arg;
    sconn *conns;
    uint64_t next_id;
    uint16_t port;
    bool stopping, freeing, done_called;
    void (*done)(void *arg);
    void *done_arg;
    struct event *stop_ev;
    mllp_server_stats st;
};

static void slog(mllp_server *s, const sconn *c, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void slog(mllp_server *s, const sconn *c, const char *fmt, ...)
{
    if (!s->o.log) return;
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    s->o.log(c ? c->id : 0, c ? net_conn_peer(c->nc) : "", text, s->o.log_arg);
}

static bool idle_enabled(const mllp_server *s)
{
    return s->o.idle_timeout_ms != UINT32_MAX;
}

static struct timeval ms_tv(unsigned ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    return tv;
}

static void touch(sconn *c)
{
    event_base_gettimeofday_cached(c->srv->base, &c->last);
}

static void kick(sconn *c)
{
    event_active(c->kick, 0, 1);
}

/* --- closing ------------------------------------------------------------------ */

static void close_conn(sconn *c, const char *reason)
{
    mllp_server *s = c->srv;
    mllp_framer_stats fs;
    mllp_framer_stats_get(c->fr, &fs);
    bool partial = mllp_framer_in_frame(c->fr);
    if (partial) s->st.partial++;
    s->st.garbage += fs.garbage;
    slog(s, c,
         "connection closed (%s): %llu frames, %llu replies, %llu bytes of garbage skipped, "
         "%llu oversized%s",
         reason, (unsigned long long)fs.frames, (unsigned long long)c->replies,
         (unsigned long long)fs.garbage, (unsigned long long)fs.oversized,
         partial ? "; it ended inside a frame, whose bytes were dropped" : "");
    for (mllp_reply *r = c->head, *next; r; r = next) {
        next = r->next;
        if (r->answered) {
            tbuf_free(&r->data);
            free(r);
        } else {
            r->conn = NULL; /* the handler still owns it */
            r->next = NULL;
        }
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    s->st.open--;
    event_free(c->idle);
    event_free(c->kick);
    net_conn_free(c->nc);
    mllp_framer_free(c->fr);
    free(c);
    if (s->stopping && !s->conns && !s->freeing) event_active(s->stop_ev, 0, 1);
}

/* Closes c when it has nothing left to do: the peer is done sending (or the
 * server stops), every reply is out of the queue and written. */
static void maybe_close(sconn *c)
{
    mllp_server *s = c->srv;
    if (!s->stopping && !c->eof) return;
    if (c->head || evbuffer_get_length(net_conn_output(c->nc)) > 0) return;
    if (!s->stopping && c->paused) return; /* complete frames still buffered */
    close_conn(c, s->stopping ? "server stopping" : "peer closed");
}

/* --- replies ------------------------------------------------------------------ */

static void write_frame(sconn *c, const char *data, size_t len)
{
    static const char start = MLLP_START_BLOCK, end[2] = {MLLP_END_BLOCK, MLLP_CR};
    struct iovec iov[3] = {{(void *)&start, 1}, {(void *)data, len}, {(void *)end, 2}};
    net_conn_writev(c->nc, iov, 3); /* one sendmsg when nothing is queued (net.h) */
    c->replies++;
    c->srv->st.replies++;
}

/* Writes and frees answered slots from the head of the queue. */
static void flush(sconn *c)
{
    bool popped = false;
    while (c->head && c->head->answered) {
        mllp_reply *r = c->head;
        if (r->has_data) write_frame(c, r->data.p, r->data.len);
        c->head = r->next;
        if (!c->head) c->tail = NULL;
        c->owed--;
        tbuf_free(&r->data);
        free(r);
        popped = true;
    }
    if (popped) {
        touch(c);
        kick(c); /* maybe resume reading, maybe close */
    }
}

static void answer(mllp_reply *r, const char *data, size_t len, bool send)
{
    assert(r && !r->answered);
    sconn *c = r->conn;
    r->answered = true;
    if (!c) {
        free(r);
        return;
    }
    if (send) {
        if (r == c->head) {
            write_frame(c, data, len); /* the common case: no copy */
        } else {
            tbuf_put(&r->data, data, len);
            r->has_data = true;
        }
    }
    flush(c);
}

void mllp_reply_send(mllp_reply *r, const char *data, size_t len)
{
    answer(r, data, len, true);
}

void mllp_reply_drop(mllp_reply *r)
{
    answer(r, NULL, 0, false);
}

bool mllp_reply_connected(const mllp_reply *r)
{
    return r->conn != NULL;
}

/* --- reading ------------------------------------------------------------------ */

static bool must_pause(sconn *c)
{
    return c->owed >= c->srv->o.max_inflight ||
           evbuffer_get_length(net_conn_output(c->nc)) > OUTPUT_HIGH;
}

static void pause_reading(sconn *c)
{
    c->paused = true;
    c->srv->st.paused++;
    net_conn_read_enable(c->nc, false);
}

static void deliver(sconn *c, const mllp_frame *fr, bool oversized)
{
    mllp_server *s = c->srv;
    c->pending = false;
    if (!oversized && fr->len == 0) {
        s->st.empty++;
        return;
    }
    mllp_reply *r = xcalloc(1, sizeof(*r));
    r->conn = c;
    if (c->tail)
        c->tail->next = r;
    else
        c->head = r;
    c->tail = r;
    c->owed++;
    c->seq++;
    s->st.frames++;
    if (oversized) {
        s->st.oversized++;
        slog(s, c,
             "frame %llu is larger than the maximum of %zu bytes; its head goes to the "
             "handler and the rest is skipped",
             (unsigned long long)c->seq, s->o.max_frame);
    }
    if (!c->cert_read) {
        c->cert_read = true;
        if (!net_conn_peer_fingerprint(c->nc, c->peer_cert, sizeof c->peer_cert))
            c->peer_cert[0] = '\0';
    }
    mllp_inbound in = {.data = fr->data,
                       .len = fr->len,
                       .oversized = oversized,
                       .conn_id = c->id,
                       .seq = c->seq,
                       .peer = net_conn_peer(c->nc),
                       .peer_cert = c->peer_cert[0] ? c->peer_cert : NULL};
    s->handler(&in, r, s->arg);
    if (!c->paused && must_pause(c)) pause_reading(c);
}

/* Hands every complete frame in the input buffer to the handler, until the
 * buffer is used up or the connection owes too many replies. */
static void process_input(sconn *c)
{
    mllp_server *s = c->srv;
    if (c->in_input || s->stopping) return;
    c->in_input = true;
    struct evbuffer *in = net_conn_input(c->nc);
    while (!c->paused && !s->stopping) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0) break;
        size_t off = 0;
        while (off < v.iov_len && !c->paused && !s->stopping) {
            mllp_frame fr;
            size_t used;
            mllp_frame_kind k = mllp_framer_feed(c->fr, (const char *)v.iov_base + off,
                                                 v.iov_len - off, &used, &fr);
            off += used;
            if (k == MLLP_FRAME_NONE) break;
            deliver(c, &fr, k == MLLP_FRAME_OVERSIZED);
        }
        evbuffer_drain(in, off);
        if (off < v.iov_len) break;
    }
    c->in_input = false;
}

static void on_read(net_conn *nc, void *arg)
{
    sconn *c = arg;
    touch(c);
    if (!c->pending) {
        c->pending = true;
        c->pending_since = c->last;
    }
    process_input(c);
}

static void on_drained(net_conn *nc, void *arg)
{
    sconn *c = arg;
    touch(c);
    if (c->paused) kick(c); /* paused for the output backlog? */
    maybe_close(c);
}

static void on_conn_event(net_conn *nc, net_event ev, const net_error *err, void *arg)
{
    sconn *c = arg;
    if (ev == NET_EV_EOF) {
        /* The sender may have only shut down its side and still wait for
         * ACKs: answer what was received, then close. */
        c->eof = true;
        maybe_close(c);
        return;
    }
    close_conn(c, err ? err->text : "connection failed");
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
    sconn *c = arg;
    mllp_server *s = c->srv;
    if (c->paused && !must_pause(c) && !s->stopping) {
        c->paused = false;
        process_input(c);
        if (!c->paused && !c->eof) net_conn_read_enable(c->nc, true);
    }
    maybe_close(c);
}

static void on_idle(evutil_socket_t fd, short what, void *arg)
{
    sconn *c = arg;
    mllp_server *s = c->srv;
    struct timeval now, elapsed, slow = {0, 0}, limit = ms_tv(s->o.idle_timeout_ms), rest;
    event_base_gettimeofday_cached(s->base, &now);
    evutil_timersub(&now, &c->last, &elapsed);
    /* bytes in, but no whole frame: how long since the first of them */
    bool pending = c->pending && !c->paused;
    if (pending) evutil_timersub(&now, &c->pending_since, &slow);
    bool idle = !evutil_timercmp(&elapsed, &limit, <);
    bool too_slow = pending && !evutil_timercmp(&slow, &limit, <);
    if (idle || too_slow) {
        if (!c->head) {
            char reason[96];
            snprintf(reason, sizeof(reason),
                     idle ? "idle for %u ms" : "no whole frame within %u ms (a slow sender)",
                     s->o.idle_timeout_ms);
            s->st.idle_closed++;
            close_conn(c, reason);
            return;
        }
        rest = limit; /* a reply is owed: the wait is ours, not the peer's */
    } else {
        evutil_timersub(&limit, &elapsed, &rest);
        struct timeval rest_slow;
        evutil_timersub(&limit, &slow, &rest_slow);
        if (pending && evutil_timercmp(&rest_slow, &rest, <)) rest = rest_slow;
    }
    evtimer_add(c->idle, &rest);
}

/* --- accepting ---------------------------------------------------------------- */

static void on_accept(net_conn *nc, void *arg)
{
    mllp_server *s = arg;
    if (s->st.open >= s->o.max_connections) {
        s->st.refused++;
        slog(s, NULL, "refused a connection from %s: %u connections are open, the maximum",
             net_conn_peer(nc), s->o.max_connections);
        net_conn_free(nc);
        return;
    }
    sconn *c = xcalloc(1, sizeof(*c));
    c->srv = s;
    c->nc = nc;
    c->fr = mllp_framer_new(s->o.max_frame);
    c->id = ++s->next_id;
    c->idle = evtimer_new(s->base, on_idle, c);
    c->kick = event_new(s->base, -1, 0, on_kick, c);
    if (!c->idle || !c->kick) {
        fprintf(stderr, "tern: out of memory (event)\n");
        abort();
    }
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    s->st.accepted++;
    s->st.open++;
    touch(c);
    if (idle_enabled(s)) {
        struct timeval tv = ms_tv(s->o.idle_timeout_ms);
        evtimer_add(c->idle, &tv);
    }
    net_conn_cbs cbs = {.on_read = on_read, .on_drained = on_drained, .on_event = on_conn_event};
    net_conn_set_cbs(nc, &cbs, c);
    slog(s, c, "connection accepted");
}

static void on_stop_ev(evutil_socket_t fd, short what, void *arg)
{
    mllp_server *s = arg;
    if (s->conns || s->done_called) return;
    s->done_called = true;
    if (s->done) s->done(s->done_arg);
}

mllp_server *mllp_server_new(struct event_base *base, const net_addr *addr,
                             const mllp_server_opts *opts, mllp_handler_fn handler, void *arg,
                             mllp_error *err)
{
    assert(base && addr && handler);
    mllp_server *s = xcalloc(1, sizeof(*s));
    s->base = base;
    if (opts) s->o = *opts;
    if (!s->o.max_frame) s->o.max_frame = MLLP_DEFAULT_MAX_FRAME;
    if (!s->o.idle_timeout_ms) s->o.idle_timeout_ms = MLLP_DEFAULT_IDLE_MS;
    if (!s->o.max_inflight) s->o.max_inflight = MLLP_DEFAULT_INFLIGHT;
    if (!s->o.max_connections) s->o.max_connections = MLLP_DEFAULT_MAX_CONNECTIONS;
    s->handler = handler;
    s->arg = arg;
    s->stop_ev = event_new(base, -1, 0, on_stop_ev, s);
    if (!s->stop_ev) {
        fprintf(stderr, "tern: out of memory (event)\n");
        abort();
    }
    net_error ne;
    s->lst = net_listen_tls(base, addr, s->o.tls, on_accept, s, &ne);
    if (!s->lst) {
        if (err) {
            err->code = ne.code == NET_ERR_LISTEN ? MLLP_ERR_LISTEN : MLLP_ERR_ADDRESS;
            snprintf(err->text, sizeof(err->text), "%s", ne.text);
        }
        goto fail;
    }
    s->port = net_listener_port(s->lst);
    return s;
fail:
    mllp_server_free(s);
    return NULL;
}

uint16_t mllp_server_port(const mllp_server *s)
{
    return s->port;
}

void mllp_server_stop(mllp_server *s, void (*done)(void *arg), void *arg)
{
    if (s->stopping) return;
    s->stopping = true;
    s->done = done;
    s->done_arg = arg;
    net_listener_free(s->lst);
    s->lst = NULL;
    for (sconn *c = s->conns; c; c = c->next) {
        net_conn_read_enable(c->nc, false);
        kick(c);
    }
    event_active(s->stop_ev, 0, 1);
}

void mllp_server_free(mllp_server *s)
{
    if (!s) return;
    s->freeing = true;
    while (s->conns)
        close_conn(s->conns, "server shut down");
    net_listener_free(s->lst);
    if (s->stop_ev) event_free(s->stop_ev);
    free(s);
}

void mllp_server_stats_get(const mllp_server *s, mllp_server_stats *st)
{
    *st = s->st;
    /* garbage of open connections too */
    for (const sconn *c = s->conns; c; c = c->next) {
        mllp_framer_stats fs;
        mllp_framer_stats_get(c->fr, &fs);
        st->garbage += fs.garbage;
    }
}
