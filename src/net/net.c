/*
 * net: addresses, listening and connecting over libevent bufferevents (see
 * net.h).
 *
 * A net_conn owns one bufferevent created by conn_new(), the single place
 * where the transport is chosen; the bufferevent's callbacks are trampolines
 * that call the net_conn's callbacks and touch nothing afterwards, so a
 * callback may free the connection. libevent keeps its own reference to a
 * bufferevent while running its callbacks, which makes freeing from inside
 * them safe.
 *
 * Plain TCP connections read outside the bufferevent (on_sock_read): one
 * readv() into the bufferevent's input buffer per readable event, then the
 * same callbacks, EOF and error reports. The socket bufferevent would ask
 * the kernel first how much is waiting (ioctl FIONREAD), a second system
 * call per message received. Writes and the connect stay with it.
 *
 * Outgoing connections make their own non-blocking socket and call
 * connect() themselves, so that the socket options are in place before the
 * first byte and an immediate refusal is reported with its real errno. The
 * resolved addresses are kept until the connection is established, to try
 * the next one when one fails.
 *
 * TLS (a tls_ctx given to net_listen_tls()/net_connect_tls()): an accepted
 * socket gets an OpenSSL bufferevent in accepting state at once; an
 * outgoing connection is made over a plain socket bufferevent as above and,
 * once TCP is up, its socket moves into an OpenSSL bufferevent in
 * connecting state (so the address fallback stays one code path). While
 * `handshaking`, failures are reported as TLS handshake failures with
 * OpenSSL's reason; only then does a client see NET_EV_CONNECTED. A server
 * connection's handshake completing is not reported: its user starts
 * reading at once and sees data only after the handshake.
 */
#include "net/net.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "base/mem.h"
#include "net/tls.h"

#include <openssl/ssl.h>

#define MAX_ALTS 8
/* A TLS handshake that has not completed by then is abandoned, so that a
 * peer that connects and stalls cannot hold a connection slot for the whole
 * idle timeout. */
#define TLS_HANDSHAKE_S 10

struct net_conn {
    struct bufferevent *bev;
    struct event *rd; /* plain TCP, once connected: reads (see on_sock_read) */
    bool read_on;     /* the user wants reads (net_conn_read_enable) */
    net_conn_cbs cbs;
    void *arg;
    bool connecting;
    tls_ctx *tls;     /* borrowed; NULL: plain TCP */
    bool handshaking; /* TLS: until the handshake completes */
    bool is_server;
    char host[NET_HOST_MAX]; /* client: the name connected to, for TLS */
    /* while connecting: the addresses still to try */
    struct sockaddr_storage alts[MAX_ALTS];
    socklen_t alt_len[MAX_ALTS];
    int nalts, alt;
    char peer[NET_ADDR_TEXT_MAX];
};

struct net_listener {
    struct evconnlistener *lev;
    struct event *resume;
    net_accept_fn cb;
    void *arg;
    uint16_t port;
    tls_ctx *tls; /* borrowed; NULL: plain TCP */
};

const char *net_strerror(net_status s)
{
    switch (s) {
    case NET_OK:
        return "ok";
    case NET_ERR_ADDRESS:
        return "bad address";
    case NET_ERR_RESOLVE:
        return "host not found";
    case NET_ERR_LISTEN:
        return "cannot listen";
    case NET_ERR_CONNECT:
        return "cannot connect";
    case NET_ERR_IO:
        return "connection failed";
    }
    return "unknown network status";
}

static net_status fail(net_error *err, net_status code, int sys, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static net_status fail(net_error *err, net_status code, int sys, const char *fmt, ...)
{
    if (!err) return code;
    va_list ap;
    va_start(ap, fmt);
    err->code = code;
    err->sys_errno = sys;
    vsnprintf(err->text, sizeof(err->text), fmt, ap);
    va_end(ap);
    return code;
}

/* --- addresses ---------------------------------------------------------------- */

net_status net_port_parse(const char *text, uint16_t *out, net_error *err)
{
    unsigned long v = 0;
    size_t n = strlen(text);
    if (n == 0 || n > 5) goto bad;
    for (size_t i = 0; i < n; i++) {
        if (text[i] < '0' || text[i] > '9') goto bad;
        v = v * 10 + (unsigned long)(text[i] - '0');
    }
    if (v > 65535) goto bad;
    *out = (uint16_t)v;
    return NET_OK;
bad:
    return fail(err, NET_ERR_ADDRESS, 0, "'%s' is not a port number (0 to 65535)", text);
}

static bool host_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == '_' || c == ':' || c == '%';
}

static net_status set_host(net_addr *out, const char *host, size_t n, const char *whole,
                           net_error *err)
{
    if (n >= sizeof(out->host))
        return fail(err, NET_ERR_ADDRESS, 0, "host name in '%s' is too long", whole);
    for (size_t i = 0; i < n; i++)
        if (!host_char_ok(host[i]))
            return fail(err, NET_ERR_ADDRESS, 0,
                        "'%s': the host holds '%c', which no host name has", whole, host[i]);
    memcpy(out->host, host, n);
    out->host[n] = '\0';
    return NET_OK;
}

net_status net_addr_parse(const char *text, net_addr *out, net_error *err)
{
    const char *host = text, *colon;
    size_t hlen;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':')
            return fail(err, NET_ERR_ADDRESS, 0, "'%s' is not [IPv6]:port (example: [::1]:2575)",
                        text);
        host = text + 1;
        hlen = (size_t)(close - host);
        if (hlen == 0 || !memchr(host, ':', hlen))
            return fail(err, NET_ERR_ADDRESS, 0, "'%s': brackets are for IPv6 addresses", text);
        colon = close + 1;
    } else {
        colon = strrchr(text, ':');
        if (!colon)
            return fail(err, NET_ERR_ADDRESS, 0,
                        "'%s' has no port (write host:port, e.g. 127.0.0.1:2575)", text);
        if (memchr(text, ':', (size_t)(colon - text)))
            return fail(err, NET_ERR_ADDRESS, 0,
                        "'%s': write IPv6 addresses in brackets, e.g. [::1]:2575", text);
        hlen = (size_t)(colon - text);
        if (hlen == 1 && text[0] == '*') hlen = 0;
    }
    net_status st = set_host(out, host, hlen, text, err);
    if (st != NET_OK) return st;
    if (net_port_parse(colon + 1, &out->port, NULL) != NET_OK)
        return fail(err, NET_ERR_ADDRESS, 0, "'%s': the port is not a number from 0 to 65535",
                    text);
    return NET_OK;
}

net_status net_addr_from(const char *host, const char *port, net_addr *out, net_error *err)
{
    size_t n = strlen(host);
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
        host++;
        n -= 2;
    }
    if (n == 1 && host[0] == '*') n = 0;
    net_status st = set_host(out, host, n, host, err);
    if (st != NET_OK) return st;
    return net_port_parse(port, &out->port, err);
}

char *net_addr_format(const net_addr *a, char *buf, size_t size)
{
    if (a->host[0] == '\0')
        snprintf(buf, size, "*:%u", a->port);
    else if (strchr(a->host, ':'))
        snprintf(buf, size, "[%s]:%u", a->host, a->port);
    else
        snprintf(buf, size, "%s:%u", a->host, a->port);
    return buf;
}

static void format_sockaddr(const struct sockaddr *sa, char *buf, size_t size)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        evutil_inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
        port = ntohs(in->sin_port);
        snprintf(buf, size, "%s:%u", ip, port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        evutil_inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
        port = ntohs(in6->sin6_port);
        snprintf(buf, size, "[%s]:%u", ip, port);
    } else {
        snprintf(buf, size, "(unknown address family %d)", sa->sa_family);
    }
}

/* Resolves a into at most max socket addresses. */
static net_status resolve(const net_addr *a, bool passive, struct sockaddr_storage *ss,
                          socklen_t *lens, int max, int *n, net_error *err)
{
    char port[8], text[NET_ADDR_TEXT_MAX];
    snprintf(port, sizeof(port), "%u", a->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0)};
    const char *node = a->host;
    if (node[0] == '\0') {
        if (!passive)
            return fail(err, NET_ERR_ADDRESS, 0, "no host given to connect to (port %u)", a->port);
        node = "0.0.0.0"; /* "any" means IPv4 any; listen on [::] for both */
    }
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(node, port, &hints, &res);
    if (rc != 0)
        return fail(err, NET_ERR_RESOLVE, rc == EAI_SYSTEM ? errno : 0, "cannot resolve '%s': %s",
                    net_addr_format(a, text, sizeof(text)), gai_strerror(rc));
    *n = 0;
    for (struct addrinfo *ai = res; ai && *n < max; ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof(ss[0])) continue;
        memcpy(&ss[*n], ai->ai_addr, ai->ai_addrlen);
        lens[*n] = (socklen_t)ai->ai_addrlen;
        (*n)++;
    }
    freeaddrinfo(res);
    if (*n == 0)
        return fail(err, NET_ERR_RESOLVE, 0, "'%s' has no usable address",
                    net_addr_format(a, text, sizeof(text)));
    return NET_OK;
}

static void set_sock_opts(evutil_socket_t fd)
{
    int one = 1;
    /* Best effort: a socket without them still works, only slower to notice
     * a dead peer or to send a small ACK. */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    (void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
}

/* --- connections -------------------------------------------------------------- */

static void no_memory(void)
{
    fprintf(stderr, "tern: out of memory (bufferevent)\n");
    abort();
}

static void on_bev_read(struct bufferevent *bev, void *ctx)
{
    net_conn *c = ctx;
    if (c->cbs.on_read) c->cbs.on_read(c, c->arg);
}

static void on_bev_write(struct bufferevent *bev, void *ctx)
{
    net_conn *c = ctx;
    if (c->cbs.on_drained) c->cbs.on_drained(c, c->arg);
}

static int start_connect(net_conn *c, int *sys);
static bool start_tls_client(net_conn *c);
static void conn_failed(net_conn *c, short what, int sys);

/* Plain TCP reads (see the top of the file): at most READ_CHUNK bytes per
 * readable event. The callbacks may free c. */
#define READ_CHUNK 16384

static void on_sock_read(evutil_socket_t fd, short what, void *ctx)
{
    net_conn *c = ctx;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    struct evbuffer_iovec v[2];
    evbuffer_unfreeze(in, 0); /* the bufferevent keeps its input's end frozen */
    int nv = evbuffer_reserve_space(in, READ_CHUNK, v, 2);
    if (nv < 1) no_memory();
    struct iovec iov[2];
    for (int i = 0; i < nv; i++) iov[i] = (struct iovec){v[i].iov_base, v[i].iov_len};
    ssize_t n = readv(fd, iov, nv);
    int sys = n < 0 ? errno : 0;
    if (n <= 0) evbuffer_freeze(in, 0);
    if (n < 0 && (sys == EAGAIN || sys == EWOULDBLOCK || sys == EINTR)) return;
    if (n <= 0) {
        event_del(c->rd);
        conn_failed(c, n == 0 ? (BEV_EVENT_READING | BEV_EVENT_EOF)
                              : (BEV_EVENT_READING | BEV_EVENT_ERROR), sys);
        return;
    }
    size_t left = (size_t)n;
    for (int i = 0; i < nv; i++) {
        size_t k = left < v[i].iov_len ? left : v[i].iov_len;
        v[i].iov_len = k;
        left -= k;
    }
    evbuffer_commit_space(in, v, nv);
    evbuffer_freeze(in, 0);
    if (c->cbs.on_read) c->cbs.on_read(c, c->arg);
}

/* A plain connection is up: reads go through on_sock_read from now on. */
static void plain_reads_start(net_conn *c)
{
    bufferevent_disable(c->bev, EV_READ);
    c->rd = event_new(bufferevent_get_base(c->bev), bufferevent_getfd(c->bev), EV_READ | EV_PERSIST,
                      on_sock_read, c);
    if (!c->rd) no_memory();
    if (c->read_on) event_add(c->rd, NULL);
}

/* The handshake failed (or the peer left during it): says why. */
static void handshake_failed(net_conn *c, short what, int sys)
{
    if (what & BEV_EVENT_TIMEOUT) {
        net_error err;
        c->handshaking = false;
        fail(&err, c->is_server ? NET_ERR_IO : NET_ERR_CONNECT, 0,
             "TLS handshake with %s failed: not completed within %d s", c->peer, TLS_HANDSHAKE_S);
        if (c->cbs.on_event) c->cbs.on_event(c, NET_EV_ERROR, &err, c->arg);
        return;
    }
    unsigned long errs[8];
    size_t n = 0;
    unsigned long e;
    while (n < 8 && (e = bufferevent_get_openssl_error(c->bev)) != 0)
        errs[n++] = e;
    char why[300];
    tls_failure_reason(bufferevent_openssl_get_ssl(c->bev), errs, n, why, sizeof(why));
    if (!why[0])
        snprintf(why, sizeof(why), "%s",
                 (what & BEV_EVENT_EOF) ? "the peer closed the connection"
                 : sys                  ? strerror(sys)
                                        : "unknown error");
    net_error err;
    c->handshaking = false;
    fail(&err, c->is_server ? NET_ERR_IO : NET_ERR_CONNECT, sys, "TLS handshake with %s failed: %s",
         c->peer, why);
    if (c->cbs.on_event) c->cbs.on_event(c, NET_EV_ERROR, &err, c->arg);
}

static void on_bev_event(struct bufferevent *bev, short what, void *ctx)
{
    net_conn *c = ctx;
    int sys = EVUTIL_SOCKET_ERROR();
    if (what & BEV_EVENT_CONNECTED) {
        if (c->connecting && c->tls) {
            c->connecting = false;
            if (!start_tls_client(c)) {
                net_error err;
                fail(&err, NET_ERR_CONNECT, 0, "cannot start TLS with %s", c->peer);
                if (c->cbs.on_event) c->cbs.on_event(c, NET_EV_ERROR, &err, c->arg);
            }
            return;
        }
        if (c->connecting && !c->tls) plain_reads_start(c);
        c->connecting = false;
        if (c->handshaking) bufferevent_set_timeouts(c->bev, NULL, NULL);
        c->handshaking = false;
        if (c->is_server) return;
        if (c->cbs.on_event) c->cbs.on_event(c, NET_EV_CONNECTED, NULL, c->arg);
        return;
    }
    if (c->handshaking) {
        handshake_failed(c, what, sys);
        return;
    }
    net_error err;
    if (c->connecting) {
        while (c->alt + 1 < c->nalts) {
            c->alt++;
            format_sockaddr((struct sockaddr *)&c->alts[c->alt], c->peer, sizeof(c->peer));
            if (start_connect(c, &sys) == 0) return;
        }
        fail(&err, NET_ERR_CONNECT, sys, "cannot connect to %s: %s", c->peer,
             sys ? strerror(sys) : "connection failed");
        c->connecting = false;
        if (c->cbs.on_event) c->cbs.on_event(c, NET_EV_ERROR, &err, c->arg);
        return;
    }
    conn_failed(c, what, sys);
}

/* An established connection ended: EOF, or an error with its reason. */
static void conn_failed(net_conn *c, short what, int sys)
{
    net_error err;
    if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR)) {
        fail(&err, NET_ERR_IO, 0, "%s closed the connection", c->peer);
        if (c->cbs.on_event) c->cbs.on_event(c, NET_EV_EOF, &err, c->arg);
        return;
    }
    char why[300] = "";
    if (c->tls) {
        unsigned long errs[8], e;
        size_t n = 0;
        while (n < 8 && (e = bufferevent_get_openssl_error(c->bev)) != 0)
            errs[n++] = e;
        tls_failure_reason(NULL, errs, n, why, sizeof(why));
    }
    fail(&err, NET_ERR_IO, sys, "connection with %s failed: %s", c->peer,
         why[0] ? why : sys ? strerror(sys) : "unknown error");
    if (c->cbs.on_event) c->cbs.on_event(c, NET_EV_ERROR, &err, c->arg);
}

/* The one place where a connection's transport is made (see net.h on TLS):
 * a plain socket bufferevent, or with tls (accepted sockets only) an
 * OpenSSL one that starts the server handshake. */
static net_conn *conn_new(struct event_base *base, evutil_socket_t fd, const struct sockaddr *sa,
                          tls_ctx *tls)
{
    net_conn *c = xcalloc(1, sizeof(*c));
    c->tls = tls;
    if (sa) format_sockaddr(sa, c->peer, sizeof(c->peer));
    if (tls) {
        SSL *ssl = tls_ssl_new(tls, NULL);
        SSL_set_app_data(ssl, c->peer); /* names the peer in tls's logs */
        c->is_server = true;
        c->handshaking = true;
        c->bev = bufferevent_openssl_socket_new(base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                                BEV_OPT_CLOSE_ON_FREE);
        if (c->bev) bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
        struct timeval limit = {TLS_HANDSHAKE_S, 0};
        if (c->bev) bufferevent_set_timeouts(c->bev, &limit, NULL);
    } else {
        c->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    }
    if (!c->bev) no_memory();
    bufferevent_setcb(c->bev, on_bev_read, on_bev_write, on_bev_event, c);
    if (!tls && fd >= 0) plain_reads_start(c); /* accepted: already connected */
    return c;
}

/* TCP is up: moves the socket from the plain bufferevent into an OpenSSL
 * one in connecting state, with the same callbacks and enabled events. */
static bool start_tls_client(net_conn *c)
{
    struct bufferevent *plain = c->bev;
    evutil_socket_t fd = bufferevent_getfd(plain);
    short enabled = bufferevent_get_enabled(plain);
    struct evbuffer *pending = evbuffer_new();
    if (!pending) no_memory();
    evbuffer_add_buffer(pending, bufferevent_get_output(plain));
    bufferevent_setfd(plain, -1); /* the socket moves; freeing must not close it */
    SSL *ssl = tls_ssl_new(c->tls, c->host);
    SSL_set_app_data(ssl, c->peer);
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        bufferevent_get_base(plain), fd, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_free(plain);
    if (!bev) {
        evbuffer_free(pending);
        close(fd);
        return false;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    struct timeval limit = {TLS_HANDSHAKE_S, 0};
    bufferevent_set_timeouts(bev, &limit, NULL);
    c->bev = bev;
    c->handshaking = true;
    bufferevent_setcb(bev, on_bev_read, on_bev_write, on_bev_event, c);
    evbuffer_add_buffer(bufferevent_get_output(bev), pending);
    evbuffer_free(pending);
    bufferevent_enable(bev, enabled | EV_READ | EV_WRITE);
    return true;
}

void net_conn_set_cbs(net_conn *c, const net_conn_cbs *cbs, void *arg)
{
    c->cbs = *cbs;
    c->arg = arg;
    if (c->tls) {
        bufferevent_enable(c->bev, EV_READ | EV_WRITE);
        return;
    }
    bufferevent_enable(c->bev, EV_WRITE);
    net_conn_read_enable(c, true);
}

struct evbuffer *net_conn_input(net_conn *c)
{
    return bufferevent_get_input(c->bev);
}

struct evbuffer *net_conn_output(net_conn *c)
{
    return bufferevent_get_output(c->bev);
}

/* Plain sockets with nothing queued are written to at once: a reply then
 * goes out in this loop turn, and the usual case (the whole reply fits in
 * the socket buffer) costs one send() instead of send() plus two epoll_ctl
 * calls to arm and disarm the write event. Whatever does not fit, and
 * anything once bytes are queued, goes through the bufferevent (in order). */
void net_conn_write(net_conn *c, const void *data, size_t len)
{
    struct iovec one = {(void *)data, len};
    net_conn_writev(c, &one, 1);
}

void net_conn_writev(net_conn *c, const struct iovec *iov, int n)
{
    size_t sent = 0;
    if (!c->connecting && !c->tls && evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
        evutil_socket_t fd = bufferevent_getfd(c->bev);
        struct msghdr mh = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)n};
        ssize_t w = fd >= 0 ? sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) : -1;
        if (w > 0) sent = (size_t)w;
    }
    for (int i = 0; i < n; i++) {
        if (sent >= iov[i].iov_len) {
            sent -= iov[i].iov_len;
            continue;
        }
        if (bufferevent_write(c->bev, (const char *)iov[i].iov_base + sent, iov[i].iov_len - sent)) {
            fprintf(stderr, "tern: out of memory (evbuffer)\n");
            abort();
        }
        sent = 0;
    }
}

void net_conn_read_enable(net_conn *c, bool on)
{
    if (c->tls) {
        if (on)
            bufferevent_enable(c->bev, EV_READ);
        else
            bufferevent_disable(c->bev, EV_READ);
        return;
    }
    c->read_on = on;
    if (!c->rd) return; /* still connecting: plain_reads_start adds it */
    if (on)
        event_add(c->rd, NULL);
    else
        event_del(c->rd);
}

const char *net_conn_peer(const net_conn *c)
{
    return c->peer;
}

bool net_conn_is_tls(const net_conn *c)
{
    return c->tls != NULL;
}

bool net_conn_peer_subject(net_conn *c, char *buf, size_t size)
{
    buf[0] = '\0';
    if (!c->tls || c->handshaking) return false;
    return tls_peer_subject(bufferevent_openssl_get_ssl(c->bev), buf, size);
}

bool net_conn_peer_fingerprint(net_conn *c, char *buf, size_t size)
{
    buf[0] = '\0';
    if (!c->tls || c->handshaking) return false;
    return tls_peer_fingerprint(bufferevent_openssl_get_ssl(c->bev), buf, size);
}

void net_conn_free(net_conn *c)
{
    if (!c) return;
    SSL *ssl = c->tls ? bufferevent_openssl_get_ssl(c->bev) : NULL;
    if (ssl) SSL_set_app_data(ssl, NULL); /* the bufferevent may outlive c */
    if (c->rd) event_free(c->rd);
    bufferevent_free(c->bev);
    free(c);
}

/* Makes a socket for the current alternative and starts connect(). Returns 0
 * when connecting is under way, -1 with *sys set when it failed at once. */
static int start_connect(net_conn *c, int *sys)
{
    const struct sockaddr *sa = (const struct sockaddr *)&c->alts[c->alt];
    evutil_socket_t old = bufferevent_getfd(c->bev);
    evutil_socket_t fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *sys = errno;
        return -1;
    }
    set_sock_opts(fd);
    if (connect(fd, sa, c->alt_len[c->alt]) != 0 && errno != EINPROGRESS) {
        *sys = errno;
        close(fd);
        return -1;
    }
    bufferevent_setfd(c->bev, fd);
    if (old >= 0) close(old);
    /* NULL address: the socket is already connecting; libevent waits for it */
    if (bufferevent_socket_connect(c->bev, NULL, 0) != 0) {
        *sys = EVUTIL_SOCKET_ERROR();
        return -1;
    }
    return 0;
}

net_conn *net_connect(struct event_base *base, const net_addr *addr, net_error *err)
{
    return net_connect_tls(base, addr, NULL, err);
}

net_conn *net_connect_tls(struct event_base *base, const net_addr *addr, tls_ctx *tls,
                          net_error *err)
{
    char text[NET_ADDR_TEXT_MAX];
    if (addr->port == 0) {
        fail(err, NET_ERR_ADDRESS, 0, "cannot connect to %s: port 0",
             net_addr_format(addr, text, sizeof(text)));
        return NULL;
    }
    net_conn *c = conn_new(base, -1, NULL, NULL);
    c->tls = tls;
    snprintf(c->host, sizeof(c->host), "%s", addr->host);
    c->connecting = true;
    if (resolve(addr, false, c->alts, c->alt_len, MAX_ALTS, &c->nalts, err) != NET_OK) goto fail;
    int sys = 0;
    for (c->alt = 0; c->alt < c->nalts; c->alt++) {
        format_sockaddr((struct sockaddr *)&c->alts[c->alt], c->peer, sizeof(c->peer));
        if (start_connect(c, &sys) == 0) return c;
    }
    fail(err, NET_ERR_CONNECT, sys, "cannot connect to %s: %s",
         net_addr_format(addr, text, sizeof(text)), strerror(sys));
fail:
    net_conn_free(c);
    return NULL;
}

/* --- listening ---------------------------------------------------------------- */

static void on_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *ctx)
{
    net_listener *l = ctx;
    set_sock_opts(fd);
    net_conn *c = conn_new(evconnlistener_get_base(lev), fd, sa, l->tls);
    l->cb(c, l->arg);
}

static void on_accept_error(struct evconnlistener *lev, void *ctx)
{
    net_listener *l = ctx;
    /* EMFILE and friends: the pending connection stays in the backlog and
     * the listener would fire again at once; wait for descriptors to free. */
    struct timeval pause = {0, 250000};
    evconnlistener_disable(lev);
    evtimer_add(l->resume, &pause);
}

static void on_resume(evutil_socket_t fd, short what, void *ctx)
{
    net_listener *l = ctx;
    evconnlistener_enable(l->lev);
}

net_listener *net_listen(struct event_base *base, const net_addr *addr, net_accept_fn cb, void *arg,
                         net_error *err)
{
    return net_listen_tls(base, addr, NULL, cb, arg, err);
}

net_listener *net_listen_tls(struct event_base *base, const net_addr *addr, tls_ctx *tls,
                             net_accept_fn cb, void *arg, net_error *err)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int n;
    char text[NET_ADDR_TEXT_MAX];
    if (resolve(addr, true, &ss, &len, 1, &n, err) != NET_OK) return NULL;
    net_listener *l = xcalloc(1, sizeof(*l));
    l->cb = cb;
    l->arg = arg;
    l->tls = tls;
    l->lev = evconnlistener_new_bind(
        base, on_accept, l, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 1024,
        (struct sockaddr *)&ss, (int)len);
    if (!l->lev) {
        int sys = errno;
        fail(err, NET_ERR_LISTEN, sys, "cannot listen on %s: %s",
             net_addr_format(addr, text, sizeof(text)), strerror(sys));
        goto fail;
    }
    evconnlistener_set_error_cb(l->lev, on_accept_error);
    l->resume = evtimer_new(base, on_resume, l);
    struct sockaddr_storage bound;
    socklen_t blen = sizeof(bound);
    if (getsockname(evconnlistener_get_fd(l->lev), (struct sockaddr *)&bound, &blen) == 0)
        l->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                    : ((struct sockaddr_in *)&bound)->sin_port);
    return l;
fail:
    net_listener_free(l);
    return NULL;
}

uint16_t net_listener_port(const net_listener *l)
{
    return l->port;
}

void net_listener_free(net_listener *l)
{
    if (!l) return;
    if (l->lev) evconnlistener_free(l->lev);
    if (l->resume) event_free(l->resume);
    free(l);
}

/* --- TLS for evhttp ----------------------------------------------------------- */

static struct bufferevent *https_bev(struct event_base *base, void *arg)
{
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        base, -1, tls_ssl_new(arg, NULL), BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    if (!bev) no_memory();
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

void net_http_use_tls(struct evhttp *http, tls_ctx *t)
{
    evhttp_set_bevcb(http, https_bev, t);
}

void net_http_limit(struct evhttp *http, uint64_t timeout_ms)
{
    struct timeval tv = {(time_t)(timeout_ms / 1000), (suseconds_t)(timeout_ms % 1000) * 1000};
    evhttp_set_timeout_tv(http, &tv);
    evhttp_set_max_headers_size(http, NET_HTTP_MAX_HEADERS);
}

struct bufferevent *net_tls_client_bev(struct event_base *base, tls_ctx *t, const char *host)
{
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        base, -1, tls_ssl_new(t, host), BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
    if (!bev) no_memory();
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

void net_ignore_sigpipe(void)
{
    signal(SIGPIPE, SIG_IGN);
}
