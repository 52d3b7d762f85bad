/*
 * dest_http: the HTTP POST destination driver (eng_dest_http_ops), and the
 * POST client under it (eng_http_post, engine_int.h) that the FHIR
 * destination (dest_fhir.c) shares: one client, two bodies.
 *
 * Each delivery is one POST of the stored message (segments CR-separated,
 * as stored) to the configured URL, over libevent's evhttp client. The
 * driver keeps `parallel` slots; a slot is one keep-alive evhttp_connection
 * (made on first use, reconnected by libevent after a failure) carrying at
 * most one request at a time, so the engine's at most `parallel` concurrent
 * deliver() calls each find a free slot.
 *
 * Outcome: 2xx is STORE_SENT; 408, 429, 5xx, no connection and no answer
 * within `timeout` are STORE_RETRY; any other status (4xx, 3xx: redirects
 * are not followed) is STORE_FAILED, since sending the same bytes again
 * cannot help. Error texts name the status or the cause and the URL, plus
 * the start of the response body.
 *
 * `timeout` covers the whole request (connect, send, answer): a slot timer
 * frees the connection when it fires, which abandons the request (evhttp's
 * own I/O timeout is set a second later so that it never fires first).
 * evhttp reports a failed connect without its cause, so while a request
 * waits for its connection the slot stands in for the connection's
 * bufferevent callbacks, notes errno on an error and hands every call on
 * to evhttp's. Response
 * bodies are streamed through a chunk callback that keeps only their first
 * bytes, so a large answer costs no memory.
 *
 * https:// URLs go over an OpenSSL bufferevent (net_tls_client_bev()) with
 * the destination's tls block (or the system's CAs). evhttp would reconnect
 * a closed connection over the same SSL object, which cannot start a second
 * handshake, so an https slot whose connection closed or failed is freed
 * and made anew on its next delivery.
 */
#include "engine/engine_int.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "base/mem.h"
#include "net/net.h"

/* Bytes of a response body quoted in an error text, and kept to find an
 * OperationOutcome's diagnostics in. */
#define BODY_SHOWN 160
#define BODY_KEPT 4096

#define DEFAULT_CONTENT_TYPE "x-application/hl7-v2+er7"

typedef struct eng_http_post http_dest;

typedef struct http_slot {
    http_dest *hd;
    struct evhttp_connection *conn; /* NULL until first used or after a timeout */
    struct event *timer;
    bool busy;
    bool stale; /* https: the connection closed; make a new one */
    int64_t id; /* the delivery in flight while busy */
    /* What the error callback saw for the request in flight. */
    bool failed;
    enum evhttp_request_error req_error;
    int sys_errno;
    char body[BODY_KEPT]; /* the start of the response body */
    size_t body_len;
    /* evhttp's own bufferevent callbacks, while on_bev_* stand in for them */
    bufferevent_data_cb bev_read, bev_write;
    bufferevent_event_cb bev_event;
    void *bev_arg;
} http_slot;

struct eng_http_post {
    eng_dest *d;
    eng_http_post_opts o; /* borrowed strings */
    struct event_base *base;
    char *host; /* to connect to: no brackets around IPv6 */
    uint16_t port;
    char *host_header; /* Host: as the URL gave it */
    char *target;      /* path and query, at least "/" */
    tls_ctx *tls;      /* https: borrowed from the engine; NULL: http */
    bool own_content_type;
    struct timeval timeout;
    http_slot *slots;
    size_t nslots;
};

static struct timeval tv_of_ms(uint64_t ms)
{
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    return tv;
}

/* Appends p[0..n) to out with bytes other than printable ASCII as \xHH. */
static void put_shown(tbuf *out, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c >= 0x20 && c < 0x7f)
            tbuf_putc(out, (char)c);
        else if (c == '\r' || c == '\n')
            tbuf_putc(out, ' ');
        else
            tbuf_printf(out, "\\x%02x", c);
    }
}

static const char *request_error_name(enum evhttp_request_error e)
{
    switch (e) {
    case EVREQ_HTTP_TIMEOUT:
        return "timed out";
    case EVREQ_HTTP_EOF:
        return "the connection was closed before a complete answer";
    case EVREQ_HTTP_INVALID_HEADER:
        return "the answer is not valid HTTP";
    case EVREQ_HTTP_BUFFER_ERROR:
        return "reading or writing the connection failed";
    case EVREQ_HTTP_REQUEST_CANCEL:
        return "the request was cancelled";
    case EVREQ_HTTP_DATA_TOO_LONG:
        return "the answer is too long";
    }
    return "unknown error";
}

/* --- one request ------------------------------------------------------------ */

static void on_error(enum evhttp_request_error e, void *arg)
{
    http_slot *s = arg;
    s->failed = true;
    s->req_error = e;
    if (s->sys_errno == 0) s->sys_errno = errno;
}

static void on_bev_read(struct bufferevent *bev, void *arg)
{
    http_slot *s = arg;
    s->bev_read(bev, s->bev_arg);
}

static void on_bev_write(struct bufferevent *bev, void *arg)
{
    http_slot *s = arg;
    s->bev_write(bev, s->bev_arg);
}

static void on_bev_event(struct bufferevent *bev, short what, void *arg)
{
    http_slot *s = arg;
    int e = errno;
    if ((what & BEV_EVENT_ERROR) && s->busy && s->sys_errno == 0) s->sys_errno = e;
    errno = e; /* evhttp looks at it too */
    s->bev_event(bev, what, s->bev_arg);
}

/* Puts the on_bev_* callbacks in front of evhttp's on the connection, and
 * turns Nagle off on its socket (request/response, like every Tern socket). */
static void listen_in(http_slot *s)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(s->conn);
    bufferevent_data_cb r, w;
    bufferevent_event_cb ev;
    void *arg;
    if (!bev) return;
    evutil_socket_t fd = bufferevent_getfd(bev);
    int one = 1;
    if (fd >= 0) (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    bufferevent_getcb(bev, &r, &w, &ev, &arg);
    if (ev == on_bev_event || !ev) return;
    s->bev_read = r;
    s->bev_write = w;
    s->bev_event = ev;
    s->bev_arg = arg;
    bufferevent_setcb(bev, r ? on_bev_read : NULL, w ? on_bev_write : NULL, on_bev_event, s);
}

static void on_body_chunk(struct evhttp_request *req, void *arg)
{
    http_slot *s = arg;
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t room = sizeof(s->body) - s->body_len;
    if (room > 0) s->body_len += (size_t)evbuffer_copyout(in, s->body + s->body_len, room);
}

/* Appends the diagnostics of an OperationOutcome body ("; "-separated);
 * false (why unchanged) when the body is not one. */
static bool put_outcome(const http_slot *s, tbuf *why)
{
    json_t *oo = json_loadb(s->body, s->body_len, 0, NULL);
    const char *rt = json_string_value(json_object_get(oo, "resourceType"));
    json_t *issues = json_object_get(oo, "issue");
    bool found = false;
    if (rt && !strcmp(rt, "OperationOutcome")) {
        size_t i;
        json_t *issue;
        json_array_foreach(issues, i, issue)
        {
            const char *d = json_string_value(json_object_get(issue, "diagnostics"));
            if (!d) d = json_string_value(json_object_get(json_object_get(issue, "details"), "text"));
            if (!d) continue;
            tbuf_puts(why, found ? "; " : ": ");
            put_shown(why, d, strlen(d));
            found = true;
        }
    }
    json_decref(oo);
    return found;
}

/* Classifies a complete answer; fills why for anything but SENT. */
static store_outcome classify(const http_slot *s, int code, const char *reason, tbuf *why)
{
    if (code >= 200 && code < 300) return STORE_SENT;
    tbuf_printf(why, "HTTP %d%s%s from %s", code, reason && *reason ? " " : "",
                reason ? reason : "", s->hd->o.url);
    if (s->body_len > 0 && !(s->hd->o.fhir_outcome && put_outcome(s, why))) {
        tbuf_puts(why, ": ");
        put_shown(why, s->body, s->body_len < BODY_SHOWN ? s->body_len : BODY_SHOWN);
    }
    if (code == 408 || code == 429 || code >= 500) return STORE_RETRY;
    tbuf_puts(why, code >= 400 ? " (a client error: not retried; fix the message or the "
                                 "destination and reprocess it)"
                               : " (not a success and not retried)");
    return STORE_FAILED;
}

static void on_response(struct evhttp_request *req, void *arg)
{
    http_slot *s = arg;
    http_dest *hd = s->hd;
    if (!s->busy) return; /* abandoned by the timer or close() */
    evtimer_del(s->timer);
    s->busy = false;
    int64_t id = s->id;
    int code = req ? evhttp_request_get_response_code(req) : 0;
    if (req && s->body_len < sizeof(s->body)) on_body_chunk(req, s);

    tbuf why = TBUF_INIT;
    store_outcome out;
    if (code == 0) {
        out = STORE_RETRY;
        if (hd->tls) s->stale = true;
        if (!s->failed) /* evhttp gives up connecting without calling on_error */
            tbuf_printf(&why, "cannot connect to %s: %s", hd->o.url,
                        s->sys_errno ? strerror(s->sys_errno) : "unknown cause");
        else if (s->sys_errno != 0 && s->req_error != EVREQ_HTTP_TIMEOUT)
            tbuf_printf(&why, "no answer from %s: %s (%s)", hd->o.url,
                        request_error_name(s->req_error), strerror(s->sys_errno));
        else
            tbuf_printf(&why, "no answer from %s: %s", hd->o.url,
                        request_error_name(s->req_error));
    } else {
        out = classify(s, code, evhttp_request_get_response_code_line(req), &why);
    }
    eng_dest_result(hd->d, id, out, out == STORE_SENT ? NULL : tbuf_cstr(&why));
    tbuf_free(&why);
}

static void on_close(struct evhttp_connection *conn, void *arg)
{
    http_slot *s = arg;
    s->stale = true;
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    http_slot *s = arg;
    http_dest *hd = s->hd;
    assert(s->busy);
    s->busy = false;
    /* Freeing the connection abandons the request (its callback is not
     * called, and would be ignored anyway as the slot is no longer busy). */
    evhttp_connection_free(s->conn);
    s->conn = NULL;
    char ms[32], why[512];
    snprintf(why, sizeof(why), "no answer from %s within %s", hd->o.url,
             config_format_duration(hd->o.timeout_ms, ms, sizeof(ms)));
    eng_dest_result(hd->d, s->id, STORE_RETRY, why);
}

void eng_http_post_send(eng_http_post *hd, int64_t id, const char *body, size_t len)
{
    eng_dest *d = hd->d;
    http_slot *s = NULL;
    for (size_t i = 0; i < hd->nslots && !s; i++)
        if (!hd->slots[i].busy) s = &hd->slots[i];
    if (!s) {
        eng_dest_result(d, id, STORE_RETRY,
                        "more deliveries at once than `parallel` allows (internal error)");
        return;
    }
    if (s->conn && s->stale) {
        evhttp_connection_free(s->conn);
        s->conn = NULL;
    }
    s->stale = false;
    if (!s->conn) {
        s->conn = hd->tls ? evhttp_connection_base_bufferevent_new(
                                hd->base, NULL, net_tls_client_bev(hd->base, hd->tls, hd->host),
                                hd->host, hd->port)
                          : evhttp_connection_base_new(hd->base, NULL, hd->host, hd->port);
        if (!s->conn) {
            char why[512];
            snprintf(why, sizeof(why), "cannot create a connection to %s", hd->o.url);
            eng_dest_result(d, id, STORE_RETRY, why);
            return;
        }
        struct timeval io = hd->timeout;
        io.tv_sec += 1;
        evhttp_connection_set_timeout_tv(s->conn, &io);
        if (hd->tls) evhttp_connection_set_closecb(s->conn, on_close, s);
    }
    struct evhttp_request *req = evhttp_request_new(on_response, s);
    evhttp_request_set_error_cb(req, on_error);
    evhttp_request_set_chunked_cb(req, on_body_chunk);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Host", hd->host_header);
    evhttp_add_header(h, "User-Agent", "tern/" TERN_VERSION);
    if (!hd->own_content_type)
        evhttp_add_header(h, "Content-Type",
                          hd->o.content_type ? hd->o.content_type : DEFAULT_CONTENT_TYPE);
    if (hd->o.accept) evhttp_add_header(h, "Accept", hd->o.accept);
    if (hd->o.authorization) evhttp_add_header(h, "Authorization", hd->o.authorization);
    for (size_t i = 0; i < hd->o.nheaders; i++)
        evhttp_add_header(h, hd->o.headers[i].name, hd->o.headers[i].value);
    evbuffer_add(evhttp_request_get_output_buffer(req), body, len);

    s->busy = true;
    s->id = id;
    s->failed = false;
    s->sys_errno = 0;
    s->body_len = 0;
    /* On failure libevent has freed req. */
    if (evhttp_make_request(s->conn, req, EVHTTP_REQ_POST, hd->target) != 0) {
        s->busy = false;
        char why[512];
        snprintf(why, sizeof(why), "cannot send a request to %s", hd->o.url);
        eng_dest_result(d, id, STORE_RETRY, why);
        return;
    }
    listen_in(s);
    evtimer_add(s->timer, &hd->timeout);
}

/* --- setup -------------------------------------------------------------------- */

void eng_http_post_free(eng_http_post *hd)
{
    if (!hd) return;
    for (size_t i = 0; i < hd->nslots; i++) {
        http_slot *s = &hd->slots[i];
        s->busy = false;
        if (s->conn) evhttp_connection_free(s->conn);
        if (s->timer) event_free(s->timer);
    }
    free(hd->slots);
    free(hd->host);
    free(hd->host_header);
    free(hd->target);
    free(hd);
}

/* Fills host, port, Host header and target from the URL; err on failure. */
static int parse_url(http_dest *hd, const char *url, tbuf *err)
{
    int rc = -1;
    struct evhttp_uri *u = evhttp_uri_parse_with_flags(url, 0);
    if (!u) {
        tbuf_printf(err, "cannot parse the URL '%s'", url);
        goto done;
    }
    const char *scheme = evhttp_uri_get_scheme(u);
    const char *host = evhttp_uri_get_host(u);
    bool https = scheme && !strcasecmp(scheme, "https");
    if (!scheme || (strcasecmp(scheme, "http") && !https) || !host || !*host) {
        tbuf_printf(err, "'%s' is not an http:// or https:// URL with a host", url);
        goto done;
    }
    size_t hlen = strlen(host);
    bool bracketed = hlen > 2 && host[0] == '[' && host[hlen - 1] == ']';
    hd->host = bracketed ? xstrndup(host + 1, hlen - 2) : xstrdup(host);
    bool v6 = strchr(hd->host, ':') != NULL;
    int port = evhttp_uri_get_port(u);
    hd->port = port > 0 ? (uint16_t)port : https ? 443 : 80;
    tbuf hh = TBUF_INIT;
    tbuf_printf(&hh, v6 ? "[%s]" : "%s", hd->host);
    if (port > 0) tbuf_printf(&hh, ":%d", port);
    hd->host_header = tbuf_detach(&hh, NULL);
    const char *path = evhttp_uri_get_path(u), *query = evhttp_uri_get_query(u);
    tbuf t = TBUF_INIT;
    tbuf_puts(&t, path && *path ? path : "/");
    if (query) tbuf_printf(&t, "?%s", query);
    hd->target = tbuf_detach(&t, NULL);
    rc = 0;
done:
    if (u) evhttp_uri_free(u);
    return rc;
}

eng_http_post *eng_http_post_new(eng_dest *d, const eng_http_post_opts *o, tbuf *err)
{
    assert(o->url);
    const config_destination *cfg = eng_dest_config(d);
    http_dest *hd = xcalloc(1, sizeof(*hd));
    hd->d = d;
    hd->o = *o;
    hd->base = eng_channel_base(eng_dest_channel(d));
    if (parse_url(hd, o->url, err) != 0) goto fail;
    if (!strncasecmp(o->url, "https://", 8) &&
        !(hd->tls = eng_channel_tls(eng_dest_channel(d), &cfg->tls, false, err)))
        goto fail;
    for (size_t i = 0; i < o->nheaders; i++)
        if (!strcasecmp(o->headers[i].name, "Content-Type")) hd->own_content_type = true;
    hd->timeout = tv_of_ms(o->timeout_ms);
    hd->nslots = cfg->parallel > 0 ? cfg->parallel : 1;
    hd->slots = xcalloc(hd->nslots, sizeof(*hd->slots));
    for (size_t i = 0; i < hd->nslots; i++) {
        hd->slots[i].hd = hd;
        hd->slots[i].timer = evtimer_new(hd->base, on_timeout, &hd->slots[i]);
        if (!hd->slots[i].timer) {
            tbuf_puts(err, "cannot create a timer");
            goto fail;
        }
    }
    return hd;
fail:
    eng_http_post_free(hd);
    return NULL;
}

/* --- the http destination ------------------------------------------------------ */

static int http_open(eng_dest *d, tbuf *err)
{
    const config_destination *cfg = eng_dest_config(d);
    assert(cfg->type == CONFIG_DEST_HTTP && cfg->http.url);
    eng_http_post_opts o = {.url = cfg->http.url,
                            .timeout_ms = cfg->http.timeout_ms,
                            .headers = cfg->http.headers,
                            .nheaders = cfg->http.nheaders};
    eng_http_post *hd = eng_http_post_new(d, &o, err);
    if (!hd) return -1;
    eng_dest_set_impl(d, hd);
    return 0;
}

static void http_deliver(eng_dest *d, const eng_delivery *dl)
{
    eng_http_post_send(eng_dest_impl(d), dl->id, dl->raw, dl->len);
}

static void http_close(eng_dest *d)
{
    eng_http_post_free(eng_dest_impl(d));
    eng_dest_set_impl(d, NULL);
}

const eng_dest_ops eng_dest_http_ops = {
    .open = http_open,
    .deliver = http_deliver,
    .close = http_close,
};
