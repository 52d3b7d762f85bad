/*
 * Unit tests for the MLLP server and client (src/net/mllp_server.c,
 * mllp_client.c) and the connection layer (src/net/net.c), all in one
 * process on one event_base, over 127.0.0.1 on ports the kernel picks.
 *
 * The peers are mllp_client instances and, where a test needs to misbehave
 * on purpose (1-byte writes, half a frame then gone, oversized frames,
 * silence), raw blocking sockets driven step by step while the loop runs.
 * Every wait is bounded (pump_until fails the test after 10 s).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "net/mllp_client.h"
#include "net/mllp_server.h"
#include "net/net.h"

#define MAX_HELD 64

/* --- fixture: one loop, one server ------------------------------------------ */

typedef enum { ECHO, DEFER, BIG } mode;

#define BIG_REPLY (64 << 10)

typedef struct fixture {
    struct event_base *base;
    struct event *tick;
    mllp_server *srv;
    uint16_t port;
    mode mode;
    int frames;    /* handler calls */
    int oversized; /* of which oversized */
    mllp_reply *held[MAX_HELD];
    char held_msg[MAX_HELD][64];
    int nheld;
    int stopped; /* stop callback calls */
    int logs;
} fixture;

static fixture F;

static void on_tick(evutil_socket_t fd, short what, void *arg) {}

static void echo(mllp_reply *r, const char *data, size_t len)
{
    char buf[256];
    int n = snprintf(buf, sizeof(buf), "ACK:%.*s", (int)(len > 200 ? 200 : len), data);
    mllp_reply_send(r, buf, (size_t)n);
}

static void handler(const mllp_inbound *in, mllp_reply *r, void *arg)
{
    fixture *f = arg;
    f->frames++;
    assert_true(in->conn_id > 0 && in->seq > 0 && in->peer[0]);
    if (in->oversized) {
        f->oversized++;
        char buf[64];
        int n = snprintf(buf, sizeof(buf), "TOO BIG:%zu", in->len);
        mllp_reply_send(r, buf, (size_t)n);
        return;
    }
    if (f->mode == ECHO) {
        echo(r, in->data, in->len);
        return;
    }
    if (f->mode == BIG) {
        static char big[BIG_REPLY];
        memset(big, 'y', sizeof(big));
        mllp_reply_send(r, big, sizeof(big));
        return;
    }
    assert_true(f->nheld < MAX_HELD);
    snprintf(f->held_msg[f->nheld], sizeof(f->held_msg[0]), "%.*s", (int)in->len, in->data);
    f->held[f->nheld++] = r;
}

static void answer_held(int i)
{
    echo(F.held[i], F.held_msg[i], strlen(F.held_msg[i]));
    F.held[i] = NULL;
}

static void on_log(uint64_t conn_id, const char *peer, const char *text, void *arg)
{
    F.logs++;
    assert_true(text[0] != '\0');
}

static void start_server(const mllp_server_opts *o)
{
    net_addr a;
    net_error ne;
    assert_int_equal(net_addr_parse("127.0.0.1:0", &a, &ne), NET_OK);
    mllp_server_opts opts = o ? *o : (mllp_server_opts){0};
    opts.log = on_log;
    mllp_error err;
    F.srv = mllp_server_new(F.base, &a, &opts, handler, &F, &err);
    if (!F.srv) fail_msg("server: %s", err.text);
    F.port = mllp_server_port(F.srv);
    assert_true(F.port > 0);
}

static int setup(void **state)
{
    memset(&F, 0, sizeof(F));
    F.base = event_base_new();
    F.tick = event_new(F.base, -1, EV_PERSIST, on_tick, NULL);
    struct timeval tv = {0, 2000};
    event_add(F.tick, &tv);
    return 0;
}

static int teardown(void **state)
{
    for (int i = 0; i < F.nheld; i++)
        if (F.held[i]) mllp_reply_drop(F.held[i]);
    mllp_server_free(F.srv);
    event_free(F.tick);
    event_base_free(F.base);
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs the loop until cond(arg) holds; fails after 10 s. */
static void pump_until(bool (*cond)(void *), void *arg, const char *what)
{
    double end = now_s() + 10;
    while (!cond(arg)) {
        if (now_s() > end) fail_msg("timed out waiting for %s", what);
        event_base_loop(F.base, EVLOOP_ONCE);
    }
}

/* Runs the loop for about ms milliseconds. */
static void pump_for(int ms)
{
    double end = now_s() + ms / 1000.0;
    while (now_s() < end)
        event_base_loop(F.base, EVLOOP_ONCE);
}

/* Runs the loop until the expression holds; fails the test after 10 s. */
#define PUMP_UNTIL(cond)                                                                           \
    do {                                                                                           \
        double end_ = now_s() + 10;                                                                \
        while (!(cond)) {                                                                          \
            if (now_s() > end_) fail_msg("timed out waiting for " #cond);                          \
            event_base_loop(F.base, EVLOOP_ONCE);                                                  \
        }                                                                                          \
    } while (0)
#define PUMP_UNTIL_GE(v, n) PUMP_UNTIL((v) >= (n))

static mllp_server_stats srv_stats(void)
{
    mllp_server_stats st;
    mllp_server_stats_get(F.srv, &st);
    return st;
}

/* --- raw peers --------------------------------------------------------------- */

/* A blocking socket connected to the server; rcvbuf > 0 caps its receive
 * buffer (set before connecting, so the TCP window follows). */
static int raw_connect_rcvbuf(uint16_t port, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    if (rcvbuf > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

static int raw_connect(uint16_t port)
{
    return raw_connect_rcvbuf(port, 0);
}

static void raw_send(int fd, const char *data, size_t len)
{
    while (len) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        assert_true(n > 0);
        data += n;
        len -= (size_t)n;
    }
}

static void raw_sends(int fd, const char *s)
{
    raw_send(fd, s, strlen(s));
}

typedef struct rawrx {
    int fd;
    tbuf got;
    size_t want;
    bool eof;
} rawrx;

static bool rawrx_done(void *arg)
{
    rawrx *rx = arg;
    char buf[4096];
    for (;;) {
        ssize_t n = recv(rx->fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0) {
            tbuf_put(&rx->got, buf, (size_t)n);
            continue;
        }
        if (n == 0 || (n < 0 && errno == ECONNRESET)) rx->eof = true;
        break;
    }
    return rx->got.len >= rx->want || rx->eof;
}

/* Pumps the loop until `fd` has received at least want bytes (or EOF);
 * returns them as a string with frames shown as [payload]. */
static char *raw_recv(int fd, size_t want, bool *eof)
{
    rawrx rx = {.fd = fd, .want = want};
    tbuf_puts(&rx.got, "");
    pump_until(rawrx_done, &rx, "bytes from the server");
    if (eof) *eof = rx.eof;
    tbuf out = TBUF_INIT;
    tbuf_puts(&out, "");
    for (size_t i = 0; i < rx.got.len; i++) {
        char c = rx.got.p[i];
        if (c == MLLP_START_BLOCK)
            tbuf_putc(&out, '[');
        else if (c == MLLP_END_BLOCK)
            tbuf_putc(&out, ']');
        else if (c != MLLP_CR || i == 0 || rx.got.p[i - 1] != MLLP_END_BLOCK)
            tbuf_putc(&out, c);
    }
    tbuf_free(&rx.got);
    return tbuf_detach(&out, NULL);
}

static size_t ack_len(const char *msg)
{
    return strlen(msg) + 4 + 3; /* "ACK:" and the block characters */
}

/* --- client bookkeeping ------------------------------------------------------ */

typedef struct req {
    char msg[64];
    int order; /* completion order, from 1 */
    mllp_status status;
    char ack[128];
    char err[256];
} req;

static int completions;

static void on_done(const mllp_result *res, void *arg)
{
    req *r = arg;
    r->order = ++completions;
    r->status = res->status;
    if (res->status == MLLP_OK)
        snprintf(r->ack, sizeof(r->ack), "%.*s", (int)res->ack_len, res->ack);
    else
        snprintf(r->err, sizeof(r->err), "%s", res->err->text);
}

static mllp_client *client(unsigned window, unsigned ack_ms)
{
    net_addr a;
    net_error ne;
    char text[32];
    snprintf(text, sizeof(text), "127.0.0.1:%u", F.port);
    assert_int_equal(net_addr_parse(text, &a, &ne), NET_OK);
    mllp_client_opts o = {.window = window, .ack_timeout_ms = ack_ms, .connect_timeout_ms = 5000};
    return mllp_client_new(F.base, &a, &o);
}

static void send_req(mllp_client *c, req *r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void send_req(mllp_client *c, req *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->msg, sizeof(r->msg), fmt, ap);
    va_end(ap);
    mllp_client_send(c, r->msg, strlen(r->msg), on_done, r);
}

/* --- tests ------------------------------------------------------------------- */

static void test_addr_parse(void **state)
{
    net_addr a;
    net_error e;
    char buf[NET_ADDR_TEXT_MAX];
    assert_int_equal(net_addr_parse("127.0.0.1:2575", &a, &e), NET_OK);
    assert_string_equal(a.host, "127.0.0.1");
    assert_int_equal(a.port, 2575);
    assert_int_equal(net_addr_parse("[::1]:2575", &a, &e), NET_OK);
    assert_string_equal(a.host, "::1");
    assert_string_equal(net_addr_format(&a, buf, sizeof(buf)), "[::1]:2575");
    assert_int_equal(net_addr_parse("[fe80::1%eth0]:1", &a, &e), NET_OK);
    assert_string_equal(a.host, "fe80::1%eth0");
    assert_int_equal(net_addr_parse("lab-gw.example.org:0", &a, &e), NET_OK);
    assert_int_equal(a.port, 0);
    assert_int_equal(net_addr_parse("*:2575", &a, &e), NET_OK);
    assert_string_equal(a.host, "");
    assert_string_equal(net_addr_format(&a, buf, sizeof(buf)), "*:2575");
    assert_int_equal(net_addr_parse(":2575", &a, &e), NET_OK);
    assert_string_equal(a.host, "");
    static const char *bad[] = {"127.0.0.1", "::1:2575", "[::1]",   "[::1]2575",
                                "[]:1",      "[host]:1", "host:",   "host:65536",
                                "host:12a",  "host:-1",  "ho st:1", "host:123456"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (net_addr_parse(bad[i], &a, &e) != NET_ERR_ADDRESS) fail_msg("accepted '%s'", bad[i]);
        assert_int_equal(e.code, NET_ERR_ADDRESS);
        assert_non_null(strstr(e.text, bad[i]));
    }
    assert_int_equal(net_addr_from("::1", "2575", &a, &e), NET_OK);
    assert_string_equal(a.host, "::1");
    assert_int_equal(net_addr_from("[::1]", "2575", &a, &e), NET_OK);
    assert_string_equal(a.host, "::1");
    assert_int_equal(net_addr_from("localhost", "x", &a, &e), NET_ERR_ADDRESS);
    for (int s = NET_OK; s <= NET_ERR_IO; s++)
        assert_true(net_strerror((net_status)s)[0]);
}

static void test_listen_errors(void **state)
{
    start_server(NULL);
    net_addr a;
    net_error ne;
    char text[32];
    snprintf(text, sizeof(text), "127.0.0.1:%u", F.port);
    assert_int_equal(net_addr_parse(text, &a, &ne), NET_OK);
    mllp_error err;
    mllp_server *again = mllp_server_new(F.base, &a, NULL, handler, &F, &err);
    assert_null(again);
    assert_int_equal(err.code, MLLP_ERR_LISTEN);
    assert_non_null(strstr(err.text, text));
    assert_int_equal(net_addr_parse("no-such-host.invalid:1", &a, &ne), NET_OK);
    assert_null(mllp_server_new(F.base, &a, NULL, handler, &F, &err));
    assert_int_equal(err.code, MLLP_ERR_ADDRESS);
}

#define NCLIENTS 16
#define NMSGS 50

static void test_many_connections_many_messages(void **state)
{
    start_server(NULL);
    static req reqs[NCLIENTS][NMSGS];
    memset(reqs, 0, sizeof(reqs));
    mllp_client *cl[NCLIENTS];
    completions = 0;
    for (int c = 0; c < NCLIENTS; c++) {
        cl[c] = client(c % 2 ? 8 : 1, 5000); /* half of them pipeline */
        for (int m = 0; m < NMSGS; m++)
            send_req(cl[c], &reqs[c][m], "MSH|client %d msg %d", c, m);
    }
    PUMP_UNTIL_GE(completions, NCLIENTS * NMSGS);
    for (int c = 0; c < NCLIENTS; c++) {
        int last = 0;
        for (int m = 0; m < NMSGS; m++) {
            req *r = &reqs[c][m];
            if (r->status != MLLP_OK) fail_msg("client %d msg %d: %s", c, m, r->err);
            char want[80];
            snprintf(want, sizeof(want), "ACK:%.64s", r->msg);
            assert_string_equal(r->ack, want);
            assert_true(r->order > last); /* per client, in order */
            last = r->order;
        }
        mllp_client_stats cs;
        mllp_client_stats_get(cl[c], &cs);
        assert_int_equal(cs.connects, 1);
        assert_int_equal(cs.acked, NMSGS);
        assert_int_equal(mllp_client_pending(cl[c]), 0);
        assert_true(mllp_client_connected(cl[c]));
        mllp_client_free(cl[c]);
    }
    mllp_server_stats st = srv_stats();
    assert_int_equal(st.accepted, NCLIENTS);
    assert_int_equal(st.frames, NCLIENTS * NMSGS);
    assert_int_equal(st.replies, NCLIENTS * NMSGS);
}

/* A message in pieces (mllp_client_sendv) arrives as one frame, whether
 * the pieces are written as they are (idle connection), copied because the
 * client is connecting or its window is full, or too many to write at once. */
static void sendv_req(mllp_client *c, req *r, int nparts)
{
    static const char *words[] = {"MSH|", "a", "", "bc", "|d", "e", "f", "g", "h", "i", "j"};
    struct iovec parts[11];
    r->msg[0] = '\0';
    for (int i = 0; i < nparts; i++) {
        parts[i] = (struct iovec){(void *)words[i], strlen(words[i])};
        strcat(r->msg, words[i]);
    }
    mllp_client_sendv(c, parts, nparts, on_done, r);
}

static void test_client_sendv_pieces(void **state)
{
    start_server(NULL);
    completions = 0;
    static req r[5];
    memset(r, 0, sizeof(r));
    mllp_client *c = client(1, 5000);
    sendv_req(c, &r[0], 5); /* not connected yet: copied and queued */
    PUMP_UNTIL_GE(completions, 1);
    sendv_req(c, &r[1], 6); /* idle: written as the pieces */
    sendv_req(c, &r[2], 3); /* window full: copied and queued */
    PUMP_UNTIL_GE(completions, 3);
    sendv_req(c, &r[3], 11); /* more pieces than are written at once */
    PUMP_UNTIL_GE(completions, 4);
    sendv_req(c, &r[4], 1);
    PUMP_UNTIL_GE(completions, 5);
    for (int i = 0; i < 5; i++) {
        if (r[i].status != MLLP_OK) fail_msg("message %d: %s", i, r[i].err);
        char want[80];
        snprintf(want, sizeof(want), "ACK:%.64s", r[i].msg);
        assert_string_equal(r[i].ack, want);
        assert_int_equal(r[i].order, i + 1);
    }
    assert_string_equal(r[3].msg, "MSH|abc|defghij");
    mllp_client_stats cs;
    mllp_client_stats_get(c, &cs);
    assert_int_equal(cs.connects, 1);
    assert_int_equal(cs.acked, 5);
    mllp_client_free(c);
    assert_int_equal(srv_stats().frames, 5);
}

static void test_one_byte_writes(void **state)
{
    start_server(NULL);
    int fd = raw_connect(F.port);
    static const char in[] = "\013MSH|one\r\034\r\013MSH|two\r\034\r";
    for (size_t i = 0; i < sizeof(in) - 1; i++) {
        raw_send(fd, in + i, 1);
        pump_for(1); /* let the server read each byte on its own */
    }
    char *got = raw_recv(fd, ack_len("MSH|one\r") * 2, NULL);
    assert_string_equal(got, "[ACK:MSH|one\r][ACK:MSH|two\r]");
    free(got);
    assert_int_equal(F.frames, 2);
    close(fd);
}

static void test_deferred_replies_in_order(void **state)
{
    start_server(NULL);
    F.mode = DEFER;
    mllp_client *c = client(8, 5000);
    static req reqs[5];
    memset(reqs, 0, sizeof(reqs));
    completions = 0;
    for (int i = 0; i < 5; i++)
        send_req(c, &reqs[i], "MSH|deferred %d", i);
    PUMP_UNTIL_GE(F.nheld, 5);
    /* answer the later ones first: nothing may go out before #0 */
    answer_held(4);
    answer_held(2);
    pump_for(50);
    assert_int_equal(completions, 0);
    answer_held(0);
    PUMP_UNTIL_GE(completions, 1);
    pump_for(20);
    assert_int_equal(completions, 1); /* #1 still owed, so #2 waits */
    answer_held(3);
    answer_held(1);
    PUMP_UNTIL_GE(completions, 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(reqs[i].status, MLLP_OK);
        assert_int_equal(reqs[i].order, i + 1);
        char want[80];
        snprintf(want, sizeof(want), "ACK:%.64s", reqs[i].msg);
        assert_string_equal(reqs[i].ack, want);
    }
    mllp_client_free(c);
}

static void test_idle_timeout(void **state)
{
    mllp_server_opts o = {.idle_timeout_ms = 150};
    start_server(&o);
    F.mode = DEFER;
    int quiet = raw_connect(F.port);
    int waiting = raw_connect(F.port);
    raw_sends(waiting, "\013MSH|slow\034\r");
    PUMP_UNTIL_GE(F.nheld, 1);
    bool eof = false;
    char *got = raw_recv(quiet, 1, &eof); /* the quiet one is closed */
    assert_true(eof);
    assert_string_equal(got, "");
    free(got);
    assert_int_equal(srv_stats().idle_closed, 1);
    /* a connection owed a reply is not idle: it waits for the handler */
    pump_for(400);
    assert_int_equal(srv_stats().open, 1);
    answer_held(0);
    got = raw_recv(waiting, ack_len("MSH|slow"), NULL);
    assert_string_equal(got, "[ACK:MSH|slow]");
    free(got);
    got = raw_recv(waiting, 1000, &eof); /* then it idles out too */
    assert_true(eof);
    free(got);
    assert_int_equal(srv_stats().idle_closed, 2);
    close(quiet);
    close(waiting);
}

static void test_client_vanishes_mid_frame(void **state)
{
    start_server(NULL);
    int gone = raw_connect(F.port);
    raw_sends(gone, "\013MSH|^~\\&|half a mess");
    mllp_client *c = client(1, 5000);
    static req reqs[20];
    memset(reqs, 0, sizeof(reqs));
    completions = 0;
    for (int i = 0; i < 10; i++)
        send_req(c, &reqs[i], "MSH|before %d", i);
    PUMP_UNTIL_GE(completions, 5);
    close(gone);
    for (int i = 10; i < 20; i++)
        send_req(c, &reqs[i], "MSH|after %d", i);
    PUMP_UNTIL_GE(completions, 20);
    for (int i = 0; i < 20; i++)
        assert_int_equal(reqs[i].status, MLLP_OK);
    PUMP_UNTIL(srv_stats().open == 1);
    mllp_server_stats st = srv_stats();
    assert_int_equal(st.partial, 1);
    assert_int_equal(st.frames, 20);
    mllp_client_free(c);
}

static void test_oversized_frame_skipped(void **state)
{
    mllp_server_opts o = {.max_frame = 64};
    start_server(&o);
    int fd = raw_connect(F.port);
    tbuf big = TBUF_INIT;
    tbuf_putc(&big, MLLP_START_BLOCK);
    for (int i = 0; i < 1000; i++)
        tbuf_putc(&big, (char)('a' + i % 26));
    tbuf_puts(&big, "\034\r\013MSH|small\034\r");
    raw_send(fd, big.p, big.len);
    tbuf_free(&big);
    char *got = raw_recv(fd, strlen("[TOO BIG:64]") + ack_len("MSH|small"), NULL);
    assert_string_equal(got, "[TOO BIG:64][ACK:MSH|small]");
    free(got);
    raw_sends(fd, "\013MSH|again\034\r");
    got = raw_recv(fd, ack_len("MSH|again"), NULL);
    assert_string_equal(got, "[ACK:MSH|again]");
    free(got);
    assert_int_equal(F.oversized, 1);
    assert_int_equal(srv_stats().oversized, 1);
    close(fd);
}

static void test_garbage_and_empty_frames(void **state)
{
    start_server(NULL);
    int fd = raw_connect(F.port);
    static const char in[] = "hello\r\n\013\034\r\013MSH|a\034\013MSH|b\034\r\n";
    raw_send(fd, in, sizeof(in) - 1);
    char *got = raw_recv(fd, ack_len("MSH|a") * 2, NULL);
    assert_string_equal(got, "[ACK:MSH|a][ACK:MSH|b]");
    free(got);
    mllp_server_stats st = srv_stats();
    assert_int_equal(st.empty, 1);
    assert_int_equal(st.garbage, 5);
    close(fd);
}

static void test_close_with_replies_pending(void **state)
{
    start_server(NULL);
    F.mode = DEFER;
    int fd = raw_connect(F.port);
    raw_sends(fd, "\013MSH|1\034\r\013MSH|2\034\r\013MSH|3\034\r");
    PUMP_UNTIL_GE(F.nheld, 3);
    answer_held(1); /* stored, waiting for #0 */
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)); /* vanish with a reset */
    close(fd);
    PUMP_UNTIL(srv_stats().open == 0);
    assert_false(mllp_reply_connected(F.held[0]));
    answer_held(0); /* no-ops that release the handles */
    mllp_reply_drop(F.held[2]);
    F.held[2] = NULL;
}

static void test_half_close_still_gets_acks(void **state)
{
    start_server(NULL);
    F.mode = DEFER;
    int fd = raw_connect(F.port);
    raw_sends(fd, "\013MSH|1\034\r\013MSH|2\034\r");
    PUMP_UNTIL_GE(F.nheld, 2);
    shutdown(fd, SHUT_WR); /* "that was all I have to send" */
    pump_for(20);
    answer_held(1);
    answer_held(0);
    bool eof = false;
    char *got = raw_recv(fd, 1 << 20, &eof); /* the ACKs, then the close */
    assert_string_equal(got, "[ACK:MSH|1][ACK:MSH|2]");
    assert_true(eof);
    free(got);
    PUMP_UNTIL(srv_stats().open == 0);
    close(fd);
}

static void test_backpressure(void **state)
{
    mllp_server_opts o = {.max_inflight = 2};
    start_server(&o);
    F.mode = DEFER;
    int fd = raw_connect(F.port);
    tbuf in = TBUF_INIT;
    for (int i = 0; i < 6; i++) {
        char m[16];
        snprintf(m, sizeof(m), "MSH|%d", i);
        mllp_frame_wrap(&in, m, strlen(m));
    }
    raw_send(fd, in.p, in.len);
    tbuf_free(&in);
    PUMP_UNTIL_GE(F.nheld, 2);
    pump_for(50);
    assert_int_equal(F.nheld, 2); /* the cap holds */
    assert_true(srv_stats().paused >= 1);
    answer_held(0);
    PUMP_UNTIL_GE(F.nheld, 3);
    pump_for(20);
    assert_int_equal(F.nheld, 3);
    answer_held(1);
    answer_held(2);
    PUMP_UNTIL_GE(F.nheld, 5);
    answer_held(3);
    answer_held(4);
    PUMP_UNTIL_GE(F.nheld, 6);
    answer_held(5);
    char *got = raw_recv(fd, ack_len("MSH|0") * 6, NULL);
    assert_string_equal(got, "[ACK:MSH|0][ACK:MSH|1][ACK:MSH|2][ACK:MSH|3][ACK:MSH|4][ACK:MSH|5]");
    free(got);
    close(fd);
}

static void test_peer_not_reading_acks(void **state)
{
    /* A sender that pipelines without reading its ACKs: once the replies pile
     * up (64 KiB each here, so the kernel buffers fill fast) the server must
     * stop reading instead of buffering replies without limit, and deliver
     * everything once the peer reads. */
    start_server(NULL);
    F.mode = BIG;
    int fd = raw_connect_rcvbuf(F.port, 256 << 10);
    enum { N = 300 };
    tbuf in = TBUF_INIT;
    for (int i = 0; i < N; i++)
        mllp_frame_wrap(&in, "MSH|x", 5);
    raw_send(fd, in.p, in.len);
    tbuf_free(&in);
    pump_for(300);
    assert_true(F.frames < N); /* it stopped reading ... */
    assert_true(srv_stats().paused >= 1);
    size_t want = (size_t)N * (BIG_REPLY + 3), got = 0;
    char *buf = malloc(1 << 20);
    double end = now_s() + 30;
    while (got < want) { /* ... and goes on as the peer reads */
        ssize_t n = recv(fd, buf, 1 << 20, MSG_DONTWAIT);
        if (n > 0)
            got += (size_t)n;
        else
            event_base_loop(F.base, EVLOOP_ONCE);
        if (now_s() > end)
            fail_msg("got %zu of %zu reply bytes; frames %d paused %llu replies %llu", got, want,
                     F.frames, (unsigned long long)srv_stats().paused,
                     (unsigned long long)srv_stats().replies);
    }
    free(buf);
    assert_int_equal(got, want);
    assert_int_equal(F.frames, N);
    close(fd);
}

static void on_stopped(void *arg)
{
    F.stopped++;
}

static void test_graceful_stop(void **state)
{
    start_server(NULL);
    F.mode = DEFER;
    mllp_client *c = client(1, 5000);
    mllp_client *idle = client(1, 5000);
    static req r, r0, late;
    memset(&r, 0, sizeof(r));
    memset(&r0, 0, sizeof(r0));
    memset(&late, 0, sizeof(late));
    completions = 0;
    send_req(idle, &r0, "MSH|idle one");
    PUMP_UNTIL_GE(F.nheld, 1);
    answer_held(0);
    PUMP_UNTIL_GE(completions, 1);
    send_req(c, &r, "MSH|in flight");
    PUMP_UNTIL_GE(F.nheld, 2);
    mllp_server_stop(F.srv, on_stopped, NULL);
    mllp_server_stop(F.srv, NULL, NULL); /* twice is harmless */
    pump_for(50);
    assert_int_equal(F.stopped, 0);        /* a reply is still owed */
    assert_int_equal(srv_stats().open, 1); /* the idle connection went at once */
    send_req(idle, &late, "MSH|too late");
    PUMP_UNTIL_GE(completions, 2);
    assert_int_equal(late.status, MLLP_ERR_CONNECT); /* no longer accepting */
    answer_held(1);
    PUMP_UNTIL_GE(F.stopped, 1);
    PUMP_UNTIL_GE(completions, 3);
    assert_int_equal(r.status, MLLP_OK);
    assert_string_equal(r.ack, "ACK:MSH|in flight");
    assert_int_equal(srv_stats().open, 0);
    mllp_client_free(c);
    mllp_client_free(idle);
}

static void test_stop_without_connections(void **state)
{
    start_server(NULL);
    mllp_server_stop(F.srv, on_stopped, NULL);
    assert_int_equal(F.stopped, 0); /* never from inside stop() */
    PUMP_UNTIL_GE(F.stopped, 1);
}

static void test_client_ack_timeout_and_reconnect(void **state)
{
    start_server(NULL);
    F.mode = DEFER;
    mllp_client *c = client(2, 100);
    static req a, b, again;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    memset(&again, 0, sizeof(again));
    completions = 0;
    send_req(c, &a, "MSH|first");
    send_req(c, &b, "MSH|second");
    PUMP_UNTIL_GE(completions, 2);
    assert_int_equal(a.status, MLLP_ERR_TIMEOUT);
    assert_non_null(strstr(a.err, "no ACK"));
    assert_int_equal(b.status, MLLP_ERR_CLOSED);
    assert_int_equal(a.order, 1);
    F.mode = ECHO;
    send_req(c, &again, "MSH|again");
    PUMP_UNTIL_GE(completions, 3);
    assert_int_equal(again.status, MLLP_OK);
    mllp_client_stats cs;
    mllp_client_stats_get(c, &cs);
    assert_int_equal(cs.connects, 2);
    assert_int_equal(cs.failed, 2);
    mllp_client_free(c);
}

static void test_client_reconnects_after_idle_close(void **state)
{
    mllp_server_opts o = {.idle_timeout_ms = 50};
    start_server(&o);
    mllp_client *c = client(1, 5000);
    static req a, b;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    completions = 0;
    send_req(c, &a, "MSH|one");
    PUMP_UNTIL_GE(completions, 1);
    PUMP_UNTIL(srv_stats().idle_closed >= 1);
    pump_for(20);
    send_req(c, &b, "MSH|two");
    PUMP_UNTIL_GE(completions, 2);
    assert_int_equal(a.status, MLLP_OK);
    assert_int_equal(b.status, MLLP_OK);
    mllp_client_free(c);
}

static void test_client_connect_refused(void **state)
{
    /* a port that was free a moment ago */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(sa);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    F.port = ntohs(sa.sin_port);
    close(fd);
    mllp_client *c = client(1, 1000);
    static req a, b;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    completions = 0;
    send_req(c, &a, "MSH|x");
    send_req(c, &b, "MSH|y");
    assert_int_equal(completions, 0); /* never from inside send() */
    PUMP_UNTIL_GE(completions, 2);
    assert_int_equal(a.status, MLLP_ERR_CONNECT);
    assert_int_equal(b.status, MLLP_ERR_CONNECT);
    assert_non_null(strstr(a.err, "refused"));
    mllp_client_free(c);
}

static void test_client_free_cancels(void **state)
{
    start_server(NULL);
    F.mode = DEFER;
    mllp_client *c = client(1, 5000);
    static req a, b;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    completions = 0;
    send_req(c, &a, "MSH|x");
    send_req(c, &b, "MSH|y");
    PUMP_UNTIL_GE(F.nheld, 1);
    mllp_client_free(c);
    assert_int_equal(completions, 2);
    assert_int_equal(a.status, MLLP_ERR_CANCELLED);
    assert_int_equal(b.status, MLLP_ERR_CANCELLED);
}

static void test_server_free_with_handles_out(void **state)
{
    start_server(NULL);
    F.mode = DEFER;
    mllp_client *c = client(1, 5000);
    static req a;
    memset(&a, 0, sizeof(a));
    completions = 0;
    send_req(c, &a, "MSH|x");
    PUMP_UNTIL_GE(F.nheld, 1);
    mllp_server_free(F.srv);
    F.srv = NULL;
    assert_false(mllp_reply_connected(F.held[0]));
    answer_held(0); /* harmless */
    PUMP_UNTIL_GE(completions, 1);
    assert_int_equal(a.status, MLLP_ERR_CLOSED);
    mllp_client_free(c);
}

static void test_connection_limit(void **state)
{
    mllp_server_opts o = {.max_connections = 2};
    start_server(&o);
    int a = raw_connect(F.port), b = raw_connect(F.port);
    PUMP_UNTIL(srv_stats().open == 2);
    int c = raw_connect(F.port);
    bool eof = false;
    char *got = raw_recv(c, 1, &eof);
    assert_true(eof);
    free(got);
    assert_int_equal(srv_stats().refused, 1);
    raw_sends(a, "\013MSH|a\034\r");
    got = raw_recv(a, ack_len("MSH|a"), NULL);
    assert_string_equal(got, "[ACK:MSH|a]");
    free(got);
    close(a);
    close(b);
    close(c);
}

static void test_ipv6_loopback(void **state)
{
    net_addr a;
    net_error ne;
    assert_int_equal(net_addr_parse("[::1]:0", &a, &ne), NET_OK);
    mllp_error err;
    F.srv = mllp_server_new(F.base, &a, NULL, handler, &F, &err);
    if (!F.srv) {
        print_message("IPv6 loopback not available (%s); skipped\n", err.text);
        skip();
    }
    F.port = mllp_server_port(F.srv);
    char text[32];
    snprintf(text, sizeof(text), "[::1]:%u", F.port);
    assert_int_equal(net_addr_parse(text, &a, &ne), NET_OK);
    mllp_client *c = mllp_client_new(F.base, &a, NULL);
    static req r;
    memset(&r, 0, sizeof(r));
    completions = 0;
    send_req(c, &r, "MSH|v6");
    PUMP_UNTIL_GE(completions, 1);
    assert_int_equal(r.status, MLLP_OK);
    assert_string_equal(r.ack, "ACK:MSH|v6");
    mllp_client_free(c);
}

int main(void)
{
    net_ignore_sigpipe();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addr_parse),
        cmocka_unit_test_setup_teardown(test_listen_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_connections_many_messages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_sendv_pieces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_byte_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deferred_replies_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_vanishes_mid_frame, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized_frame_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_and_empty_frames, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_with_replies_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_half_close_still_gets_acks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backpressure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer_not_reading_acks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_graceful_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_without_connections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_ack_timeout_and_reconnect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_reconnects_after_idle_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_connect_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_free_cancels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_free_with_handles_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ipv6_loopback, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
