/*
 * mllp_client: asynchronous MLLP sender (see mllp_client.h).
 *
 * Requests live in two FIFOs: `waiting` (not yet written) and `sent`
 * (written, ACK not yet read). A request is one allocation holding the
 * framed bytes. State: IDLE (no connection), CONNECTING, UP.
 *
 * One timer serves both timeouts: while CONNECTING it is the connect
 * deadline, while UP it is (at the latest) the ACK deadline of the oldest
 * sent request.
 * A "kick" event does the work that send() must not do inline (connecting,
 * writing behind others), so that completion callbacks never run inside
 * send(); on an established connection with nothing waiting, send() writes
 * at once, since a write completes no request. All
 * completions happen in loop callbacks (read, connection events, timer,
 * kick); a completion callback may queue new requests, which only touches
 * the waiting FIFO and schedules a kick.
 */
#include "net/mllp_client.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "base/mem.h"

typedef struct creq creq;
struct creq {
    creq *next;
    mllp_done_fn done;
    void *arg;
    struct timeval deadline; /* ACK deadline once written */
    size_t len;
    char frame[]; /* 0x0B message 0x1C 0x0D */
};

typedef struct rqueue {
    creq *head, *tail;
    size_t n;
} rqueue;

enum { C_IDLE, C_CONNECTING, C_UP };

struct mllp_client {
    struct event_base *base;
    net_addr addr;
    char name[NET_ADDR_TEXT_MAX];
    mllp_client_opts o;
    net_conn *nc;
    int state;
    mllp_framer *fr;
    rqueue waiting, sent;
    struct event *timer;
    struct event *kick;
    mllp_client_stats st;
};

static void q_push(rqueue *q, creq *r)
{
    r->next = NULL;
    if (q->tail)
        q->tail->next = r;
    else
        q->head = r;
    q->tail = r;
    q->n++;
}

static creq *q_pop(rqueue *q)
{
    creq *r = q->head;
    if (!r) return NULL;
    q->head = r->next;
    if (!q->head) q->tail = NULL;
    q->n--;
    r->next = NULL;
    return r;
}

/* Takes the whole queue, leaving it empty. */
static rqueue q_take(rqueue *q)
{
    rqueue all = *q;
    q->head = q->tail = NULL;
    q->n = 0;
    return all;
}

static struct timeval ms_tv(unsigned ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    return tv;
}

static void complete_ok(mllp_client *c, creq *r, const char *ack, size_t len)
{
    c->st.acked++;
    mllp_result res = {.status = MLLP_OK, .ack = ack, .ack_len = len, .err = NULL};
    r->done(&res, r->arg);
    free(r);
}

static void complete_err(mllp_client *c, creq *r, const mllp_error *err)
{
    c->st.failed++;
    mllp_result res = {.status = err->code, .ack = NULL, .ack_len = 0, .err = err};
    r->done(&res, r->arg);
    free(r);
}

static void make_err(mllp_error *err, mllp_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void make_err(mllp_error *err, mllp_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err->code = code;
    vsnprintf(err->text, sizeof(err->text), fmt, ap);
    va_end(ap);
}

/* Fails every request of a detached queue. */
static void fail_all(mllp_client *c, rqueue q, const mllp_error *err)
{
    creq *r;
    while ((r = q_pop(&q)) != NULL)
        complete_err(c, r, err);
}

static void drop_conn(mllp_client *c)
{
    net_conn_free(c->nc);
    c->nc = NULL;
    c->state = C_IDLE;
    mllp_framer_reset(c->fr);
    evtimer_del(c->timer);
}

/* Makes sure the timer fires no later than the oldest sent request's
 * deadline. Lazy: a timer already pending for an earlier deadline is left
 * alone (deadlines only grow along the queue), and when it fires early
 * on_timer re-arms it; so the steady state costs no timer update per
 * message. */
static void arm_ack_timer(mllp_client *c)
{
    if (!c->sent.head || evtimer_pending(c->timer, NULL)) return;
    struct timeval now, rest;
    event_base_gettimeofday_cached(c->base, &now);
    if (evutil_timercmp(&c->sent.head->deadline, &now, >))
        evutil_timersub(&c->sent.head->deadline, &now, &rest);
    else
        rest = (struct timeval){0, 0};
    evtimer_add(c->timer, &rest);
}

/* Writes waiting requests while the window allows. */
/* r was just written: it waits for its ACK until the ACK timeout. */
static void on_wire(mllp_client *c, creq *r)
{
    struct timeval now, wait = ms_tv(c->o.ack_timeout_ms);
    event_base_gettimeofday_cached(c->base, &now);
    evutil_timeradd(&now, &wait, &r->deadline);
    q_push(&c->sent, r);
    c->st.sent++;
}

static void pump(mllp_client *c)
{
    if (c->state != C_UP) return;
    while (c->waiting.head && c->sent.n < c->o.window) {
        creq *r = q_pop(&c->waiting);
        net_conn_write(c->nc, r->frame, r->len);
        on_wire(c, r);
    }
    arm_ack_timer(c);
}

/* The connection is gone (or must go): requests on the wire fail with err,
 * waiting ones go out on the next connection. */
static void lose_conn(mllp_client *c, const mllp_error *err)
{
    drop_conn(c);
    fail_all(c, q_take(&c->sent), err);
    if (c->waiting.head) event_active(c->kick, 0, 1);
}

static void on_read(net_conn *nc, void *arg)
{
    mllp_client *c = arg;
    struct evbuffer *in = net_conn_input(nc);
    for (;;) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0) break;
        size_t off = 0;
        while (off < v.iov_len) {
            mllp_frame fr;
            size_t used;
            mllp_frame_kind k = mllp_framer_feed(c->fr, (const char *)v.iov_base + off,
                                                 v.iov_len - off, &used, &fr);
            off += used;
            if (k == MLLP_FRAME_NONE) break;
            creq *r = q_pop(&c->sent);
            if (!r) {
                c->st.unexpected++;
                continue;
            }
            if (k == MLLP_FRAME_OVERSIZED) {
                mllp_error err;
                make_err(&err, MLLP_ERR_TOO_LARGE, "%s answered with a frame larger than %zu bytes",
                         c->name, c->o.max_frame);
                complete_err(c, r, &err);
            } else {
                complete_ok(c, r, fr.data, fr.len);
            }
        }
        evbuffer_drain(in, off);
    }
    arm_ack_timer(c);
    pump(c);
}

static void on_event(net_conn *nc, net_event ev, const net_error *nerr, void *arg)
{
    mllp_client *c = arg;
    mllp_error err;
    if (ev == NET_EV_CONNECTED) {
        c->state = C_UP;
        c->st.connects++;
        evtimer_del(c->timer);
        pump(c);
        return;
    }
    if (c->state == C_CONNECTING) {
        make_err(&err, MLLP_ERR_CONNECT, "%s", nerr->text);
        drop_conn(c);
        fail_all(c, q_take(&c->waiting), &err);
        return;
    }
    if (ev == NET_EV_EOF)
        make_err(&err, MLLP_ERR_CLOSED, "%s closed the connection before sending the ACK", c->name);
    else
        make_err(&err, MLLP_ERR_CLOSED, "%s; no ACK", nerr->text);
    lose_conn(c, &err);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    mllp_client *c = arg;
    mllp_error err;
    if (c->state == C_CONNECTING) {
        make_err(&err, MLLP_ERR_CONNECT, "cannot connect to %s: no answer within %u ms", c->name,
                 c->o.connect_timeout_ms);
        drop_conn(c);
        fail_all(c, q_take(&c->waiting), &err);
        return;
    }
    if (c->state != C_UP || !c->sent.head) return;
    struct timeval now;
    event_base_gettimeofday_cached(c->base, &now);
    if (evutil_timercmp(&c->sent.head->deadline, &now, >)) {
        arm_ack_timer(c); /* fired for a request answered since */
        return;
    }
    make_err(&err, MLLP_ERR_TIMEOUT, "no ACK from %s within %u ms", c->name, c->o.ack_timeout_ms);
    creq *r = q_pop(&c->sent);
    drop_conn(c);
    complete_err(c, r, &err);
    make_err(&err, MLLP_ERR_CLOSED,
             "connection to %s reset after an earlier message's ACK timed out; no ACK", c->name);
    lose_conn(c, &err);
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
    mllp_client *c = arg;
    if (c->state == C_UP) {
        pump(c);
        return;
    }
    if (c->state != C_IDLE || !c->waiting.head) return;
    net_error ne;
    c->nc = net_connect_tls(c->base, &c->addr, c->o.tls, &ne);
    if (!c->nc) {
        mllp_error err;
        make_err(&err, ne.code == NET_ERR_CONNECT ? MLLP_ERR_CONNECT : MLLP_ERR_ADDRESS, "%s",
                 ne.text);
        fail_all(c, q_take(&c->waiting), &err);
        return;
    }
    net_conn_cbs cbs = {.on_read = on_read, .on_event = on_event};
    net_conn_set_cbs(c->nc, &cbs, c);
    c->state = C_CONNECTING;
    struct timeval tv = ms_tv(c->o.connect_timeout_ms);
    evtimer_add(c->timer, &tv);
}

mllp_client *mllp_client_new(struct event_base *base, const net_addr *addr,
                             const mllp_client_opts *opts)
{
    assert(base && addr);
    mllp_client *c = xcalloc(1, sizeof(*c));
    c->base = base;
    c->addr = *addr;
    net_addr_format(addr, c->name, sizeof(c->name));
    if (opts) c->o = *opts;
    if (!c->o.connect_timeout_ms) c->o.connect_timeout_ms = MLLP_CLIENT_DEFAULT_CONNECT_MS;
    if (!c->o.ack_timeout_ms) c->o.ack_timeout_ms = MLLP_CLIENT_DEFAULT_ACK_MS;
    if (!c->o.max_frame) c->o.max_frame = MLLP_DEFAULT_MAX_FRAME;
    if (!c->o.window) c->o.window = 1;
    c->fr = mllp_framer_new(c->o.max_frame);
    c->timer = evtimer_new(base, on_timer, c);
    c->kick = event_new(base, -1, 0, on_kick, c);
    if (!c->timer || !c->kick) {
        fprintf(stderr, "tern: out of memory (event)\n");
        abort();
    }
    return c;
}

void mllp_client_free(mllp_client *c)
{
    if (!c) return;
    if (c->nc) drop_conn(c);
    mllp_error err;
    make_err(&err, MLLP_ERR_CANCELLED, "request to %s cancelled: the client was closed", c->name);
    fail_all(c, q_take(&c->sent), &err);
    fail_all(c, q_take(&c->waiting), &err);
    event_free(c->timer);
    event_free(c->kick);
    mllp_framer_free(c->fr);
    free(c);
}

/* Most parts of a message mllp_client_sendv writes at once (with the two
 * frame marks); more go through a copy. */
#define SEND_PARTS 8

void mllp_client_sendv(mllp_client *c, const struct iovec *parts, int nparts, mllp_done_fn done,
                       void *arg)
{
    assert(c && (parts || nparts == 0) && nparts >= 0 && done);
    if (c->state == C_UP && !c->waiting.head && c->sent.n < c->o.window &&
        nparts <= SEND_PARTS) {
        /* idle connection: the parts go to the socket (what it does not
         * take is copied to the output buffer), and the request, waiting
         * for its ACK only, needs no copy of the frame */
        static const char start = MLLP_START_BLOCK, end[2] = {MLLP_END_BLOCK, MLLP_CR};
        struct iovec iov[SEND_PARTS + 2];
        iov[0] = (struct iovec){(void *)&start, 1};
        for (int i = 0; i < nparts; i++) iov[i + 1] = parts[i];
        iov[nparts + 1] = (struct iovec){(void *)end, 2};
        creq *r = xmalloc(sizeof(*r));
        r->done = done;
        r->arg = arg;
        r->len = 0;
        net_conn_writev(c->nc, iov, nparts + 2);
        on_wire(c, r);
        arm_ack_timer(c);
        return;
    }
    size_t len = 0;
    for (int i = 0; i < nparts; i++) len += parts[i].iov_len;
    creq *r = xmalloc(sizeof(*r) + len + 3);
    r->done = done;
    r->arg = arg;
    r->len = len + 3;
    r->frame[0] = MLLP_START_BLOCK;
    size_t at = 1;
    for (int i = 0; i < nparts; i++) {
        if (parts[i].iov_len) memcpy(r->frame + at, parts[i].iov_base, parts[i].iov_len);
        at += parts[i].iov_len;
    }
    r->frame[at] = MLLP_END_BLOCK;
    r->frame[at + 1] = MLLP_CR;
    q_push(&c->waiting, r);
    event_active(c->kick, 0, 1);
}

void mllp_client_send(mllp_client *c, const char *msg, size_t len, mllp_done_fn done, void *arg)
{
    assert(c && (msg || len == 0) && done);
    struct iovec one = {(void *)msg, len};
    mllp_client_sendv(c, &one, 1, done, arg);
}

size_t mllp_client_pending(const mllp_client *c)
{
    return c->waiting.n + c->sent.n;
}

bool mllp_client_connected(const mllp_client *c)
{
    return c->state == C_UP;
}

void mllp_client_stats_get(const mllp_client *c, mllp_client_stats *st)
{
    *st = c->st;
}
