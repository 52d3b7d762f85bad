/*
 * source_http: a channel's HTTP endpoint (eng_source_http_ops).
 *
 * `POST /channels/NAME/messages` with one message, several, or an HL7 batch
 * (FHS/BHS) as the body. The path is registered with evhttp_set_cb() on the
 * shared admin/API server (eng_channel_http) or, when the source has its
 * own `listen`, on an evhttp server of its own (where every other path is
 * 404). The body is split with hl7_reader over memory and every message is
 * handed to eng_submit(); the response goes out once all are answered, so a
 * 200 means everything in the body is durably stored.
 *
 * Response: status 200 when every message was accepted (AA; filtered and
 * duplicate messages are accepted too), 422 when any was rejected or part
 * of the body was not a message (skipped; header X-Tern-Skipped says what),
 * 503 when storing failed (send again), 400 for a body without any text,
 * 405 for another method, 413 beyond max_body. The body of a 200/422/503 is
 * the ACKs, one per message in body order, each segment ending in CR and
 * the ACKs following one another (a stream hl7 readers split at each MSH);
 * Content-Type x-application/hl7-v2+er7.
 *
 * Valid messages are submitted with CR after each segment; one that fails
 * to parse is submitted as its raw bytes (stored as rejected); a body with
 * no MSH at all is submitted whole, so it is stored as rejected and NAKed.
 *
 * A request whose client disconnects before its answer is still stored;
 * libevent drops the late reply. stop() answers 503 from then on and calls
 * back once the requests in flight are answered.
 *
 * Every POST passes sec_http_gate first (message.post on this channel): 401
 * without a valid token, 403 for a role or system identity that may not
 * post here, unless security.auth is off.
 */
#include "engine/engine_int.h"

#include "base/mem.h"
#include "hl7/hl7_batch.h"
#include "sec/sec_http.h"
#include "net/net.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#define HL7_CONTENT_TYPE "x-application/hl7-v2+er7"

struct eng_source {
    eng_channel *ch;
    const config_channel *cc;
    struct evhttp *server; /* own or shared */
    bool own;
    char *path;
    hl7_msg *msg;
    tbuf wire;
    size_t requests; /* waiting for answers */
    struct event *stop_ev;
    bool stopping;
    void (*done)(void *);
    void *done_arg;
};

typedef struct http_req http_req;

/* One submitted message of a request. */
typedef struct slot {
    http_req *hr;
    bool answered;
    tbuf ack;
} slot;

struct http_req {
    eng_source *s;
    struct evhttp_request *req;
    slot **slots;
    size_t n, cap, answered;
    bool not_stored, rejected;
    size_t skipped;
    char skipped_first[320];
};

static void reply_text(struct evhttp_request *req, int code, const char *reason, const char *text)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", "text/plain; charset=utf-8");
    struct evbuffer *b = evbuffer_new();
    evbuffer_add_printf(b, "%s\n", text);
    evhttp_send_reply(req, code, reason, b);
    evbuffer_free(b);
}

static void request_done(eng_source *s)
{
    assert(s->requests > 0);
    s->requests--;
    if (s->stopping && s->requests == 0) event_active(s->stop_ev, EV_TIMEOUT, 1);
}

/* Sends the response once every message is answered, and frees hr. */
static void respond(http_req *hr)
{
    eng_source *s = hr->s;
    int code = 200;
    const char *reason = "OK";
    if (hr->not_stored) {
        code = 503;
        reason = "Service Unavailable";
    } else if (hr->rejected || hr->skipped) {
        code = 422;
        reason = "Unprocessable Entity";
    }
    struct evkeyvalq *h = evhttp_request_get_output_headers(hr->req);
    evhttp_add_header(h, "Content-Type", HL7_CONTENT_TYPE);
    if (hr->skipped) {
        char text[400];
        snprintf(text, sizeof(text), "%zu part%s not a message; first: %s", hr->skipped,
                 hr->skipped == 1 ? " is" : "s are", hr->skipped_first);
        evhttp_add_header(h, "X-Tern-Skipped", text);
    }
    if (hr->not_stored) evhttp_add_header(h, "Retry-After", "5");
    struct evbuffer *b = evbuffer_new();
    for (size_t i = 0; i < hr->n; i++) {
        const tbuf *a = &hr->slots[i]->ack;
        if (!a->len) continue;
        evbuffer_add(b, a->p, a->len);
        if (a->p[a->len - 1] != '\r') evbuffer_add(b, "\r", 1);
    }
    evhttp_send_reply(hr->req, code, reason, b);
    evbuffer_free(b);
    for (size_t i = 0; i < hr->n; i++) {
        tbuf_free(&hr->slots[i]->ack);
        free(hr->slots[i]);
    }
    free(hr->slots);
    free(hr);
    request_done(s);
}

static void on_answer(void *arg, bool stored, bool accepted, const char *ack, size_t ack_len)
{
    slot *sl = arg;
    http_req *hr = sl->hr;
    assert(!sl->answered);
    sl->answered = true;
    if (ack && ack_len) tbuf_put(&sl->ack, ack, ack_len);
    if (!stored)
        hr->not_stored = true;
    else if (!accepted)
        hr->rejected = true;
    if (++hr->answered == hr->n) respond(hr);
}

static void submit(http_req *hr, const char *raw, size_t len)
{
    slot *sl = xcalloc(1, sizeof(*sl));
    sl->hr = hr;
    hr->slots = xgrow(hr->slots, &hr->cap, hr->n + 1, sizeof(*hr->slots));
    hr->slots[hr->n++] = sl;
    eng_submit(hr->s->ch, raw, len, on_answer, sl);
}

static bool is_blank(char c)
{
    return c == '\r' || c == '\n' || c == ' ' || c == '\t';
}

/* The raw bytes of a message that failed to parse: the reader has consumed
 * 3 bytes past its MSH; it runs to the next line that starts a message or
 * envelope segment (or the end of the body), trailing blanks trimmed. */
static bool bad_message_span(hl7_reader *r, const char *body, size_t len, size_t err_offset,
                             hl7_span *out)
{
    hl7_reader_stats st;
    hl7_reader_stats_get(r, &st);
    if (st.bytes < 3 || st.bytes - 3 > err_offset || st.bytes > len) return false;
    size_t start = st.bytes - 3, end = len;
    if (memcmp(body + start, "MSH", 3) != 0) return false;
    for (size_t i = start + 3; i + 3 < len; i++)
        if ((body[i] == '\r' || body[i] == '\n') && hl7_is_boundary_id(body + i + 1)) {
            end = i + 1;
            break;
        }
    while (end > start && is_blank(body[end - 1]))
        end--;
    out->p = body + start;
    out->len = end - start;
    return true;
}


static void skipped(http_req *hr, const hl7_error *err)
{
    if (hr->skipped++ == 0) {
        char where[96];
        snprintf(hr->skipped_first, sizeof(hr->skipped_first), "%.90s: %.224s",
                 hl7_error_where(err, where, sizeof(where)), err->text);
    }
}

/* Splits the body and submits every message; returns how many. */
static size_t submit_body(eng_source *s, http_req *hr, const char *body, size_t len)
{
    hl7_reader *r = hl7_reader_mem(body, len, &s->cc->limits);
    for (;;) {
        bool done = false;
        hl7_error err;
        hl7_status st = hl7_reader_next(r, s->msg, NULL, &done, &err);
        if (st == HL7_OK && done) break;
        if (st == HL7_OK) {
            tbuf_reset(&s->wire);
            hl7_serialize_cr(s->msg, &s->wire);
            submit(hr, s->wire.p, s->wire.len);
            continue;
        }
        hl7_span bad;
        switch (st) {
        case HL7_ERR_NO_MSH:
        case HL7_ERR_BATCH:
        case HL7_ERR_TOO_LARGE:
        case HL7_ERR_EMPTY:
        case HL7_ERR_IO:
            skipped(hr, &err);
            break;
        default:
            if (bad_message_span(r, body, len, err.offset, &bad))
                submit(hr, bad.p, bad.len);
            else
                skipped(hr, &err);
            break;
        }
    }
    hl7_reader_free(r);
    return hr->n;
}

static void on_request(struct evhttp_request *req, void *arg)
{
    eng_source *s = arg;
    if (s->stopping) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "5");
        reply_text(req, 503, "Service Unavailable",
                   "the channel is stopping; send again once it is back");
        return;
    }
    if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "POST");
        reply_text(req, 405, "Method Not Allowed",
                   "POST the HL7 message (or batch) as the request body");
        return;
    }
    /* a system identity posts only to its own channels (docs/security.md) */
    sec_principal who = {0};
    if (!sec_http_gate(eng_channel_sec(s->ch), req, SEC_MESSAGE_POST, s->cc->name, NULL, &who))
        return;
    sec_principal_clear(&who);
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    if (len > s->cc->source.http.max_body) {
        char text[160];
        snprintf(text, sizeof(text), "the body is %zu bytes; this channel takes at most %zu", len,
                 s->cc->source.http.max_body);
        reply_text(req, 413, "Payload Too Large", text);
        return;
    }
    const char *body = len ? (const char *)evbuffer_pullup(in, -1) : "";
    size_t text_at = 0;
    while (text_at < len && is_blank(body[text_at]))
        text_at++;
    if (text_at == len) {
        reply_text(req, 400, "Bad Request",
                   "the body is empty; POST one HL7 message or a batch as the body");
        return;
    }
    http_req *hr = xcalloc(1, sizeof(*hr));
    hr->s = s;
    hr->req = req;
    s->requests++;
    if (submit_body(s, hr, body, len) == 0) {
        if (hr->skipped == 0) {
            respond(hr); /* an empty batch: nothing to acknowledge */
            return;
        }
        /* nothing that even starts like a message: store it as rejected so
         * that the sender gets a NAK and a person can look at it */
        size_t end = len;
        while (end > text_at && is_blank(body[end - 1]))
            end--;
        hr->skipped = 0;
        submit(hr, body + text_at, end - text_at);
    }
}

/* --- lifecycle --------------------------------------------------------------------- */

static void on_stopped(evutil_socket_t fd, short what, void *arg)
{
    eng_source *s = arg;
    if (s->requests == 0 && s->done) {
        void (*done)(void *) = s->done;
        s->done = NULL;
        done(s->done_arg);
    }
}

static void http_free(eng_source *s)
{
    if (!s) return;
    if (s->server) {
        if (s->own)
            evhttp_free(s->server);
        else
            evhttp_del_cb(s->server, s->path);
    }
    if (s->stop_ev) event_free(s->stop_ev);
    hl7_msg_free(s->msg);
    tbuf_free(&s->wire);
    free(s->path);
    free(s);
}

static eng_source *http_start(eng_channel *ch, tbuf *err)
{
    const config_channel *cc = eng_channel_config(ch);
    const config_source *src = &cc->source;
    assert(src->type == CONFIG_SOURCE_HTTP);
    struct event_base *base = eng_channel_base(ch);
    eng_source *s = xcalloc(1, sizeof(*s));
    s->ch = ch;
    s->cc = cc;
    s->msg = hl7_msg_new(&cc->limits);
    s->stop_ev = event_new(base, -1, 0, on_stopped, s);
    tbuf p = TBUF_INIT;
    tbuf_printf(&p, "/channels/%s/messages", cc->name);
    s->path = tbuf_detach(&p, NULL);
    char where[300];
    if (src->listen.host && src->listen.port) {
        s->own = true;
        s->server = evhttp_new(base);
        if (!s->server ||
            !evhttp_bind_socket_with_handle(s->server, src->listen.host, src->listen.port)) {
            tbuf_printf(err,
                        "cannot listen for HTTP on %s:%u (in use, or not an address of this "
                        "machine); change source.listen",
                        src->listen.host, src->listen.port);
            goto fail;
        }
        evhttp_set_max_body_size(s->server, (ev_ssize_t)src->http.max_body);
        net_http_limit(s->server, eng_channel_http_timeout(ch));
        evhttp_set_allowed_methods(s->server, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                                  EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                                  EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
        if (src->tls.enabled) {
            tls_ctx *t = eng_channel_tls(ch, &src->tls, true, err);
            if (!t) goto fail;
            net_http_use_tls(s->server, t);
        }
        snprintf(where, sizeof(where), "%s:%u%s", src->listen.host, src->listen.port,
                 src->tls.enabled ? " (TLS)" : "");
    } else {
        s->server = eng_channel_http(ch);
        if (!s->server) {
            tbuf_printf(err, "the HTTP source has no listen of its own and http is disabled; "
                             "give source.listen or enable http");
            goto fail;
        }
        snprintf(where, sizeof(where), "the shared HTTP listener");
    }
    if (evhttp_set_cb(s->server, s->path, on_request, s) != 0) {
        tbuf_printf(err, "the path %s is already served", s->path);
        if (!s->own) s->server = NULL; /* not ours to free, and the path is not ours */
        goto fail;
    }
    eng_log(ch, "accepting POST %s on %s", s->path, where);
    return s;
fail:
    http_free(s);
    return NULL;
}

static void http_stop(eng_source *s, void (*done)(void *), void *arg)
{
    s->stopping = true;
    s->done = done;
    s->done_arg = arg;
    event_active(s->stop_ev, EV_TIMEOUT, 1);
}

const eng_source_ops eng_source_http_ops = {http_start, http_stop, http_free};
