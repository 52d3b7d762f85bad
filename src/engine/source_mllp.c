/*
 * source_mllp: a channel's MLLP listener. Every frame is submitted to the
 * engine; its ACK goes back on the connection once the engine has stored the
 * message durably (mllp_server keeps ACKs in frame order per connection).
 * An oversized frame is answered at once with a negative ACK built from its
 * head and is not stored: it never fully arrived. A frame that is itself an
 * ACK is stored like any message but not answered (ACKs are not ACKed).
 *
 * Client certificates as identities (docs/security.md): with security.auth
 * on, a connection that presented a client certificate (mutual TLS) may post
 * to this channel only when the certificate's SHA-256 fingerprint is a
 * registered identity (`tern token create --cert`) bound to the channel.
 * Decided once per connection (a small cache keyed by connection id) and
 * audited; a refused connection's frames are answered AR and not stored.
 * Connections without a client certificate are governed by the listener's
 * TLS settings alone (MLLP carries no credentials of its own).
 */
#include "engine/engine_int.h"

#include "base/mem.h"
#include "hl7/hl7_ack.h"
#include "net/mllp_server.h"
#include "sec/sec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CERT_SLOTS 64

typedef struct cert_decision {
    uint64_t conn_id; /* 0: empty */
    bool allowed;
    char why[160];
} cert_decision;

struct eng_source {
    eng_channel *ch;
    mllp_server *srv;
    void (*done)(void *);
    void *done_arg;
    cert_decision certs[CERT_SLOTS];
};

/* May this connection's client certificate post to the channel? */
static const cert_decision *cert_allowed(eng_source *s, const mllp_inbound *in)
{
    cert_decision *d = &s->certs[in->conn_id % CERT_SLOTS];
    if (d->conn_id == in->conn_id) return d;
    d->conn_id = in->conn_id;
    d->allowed = false;
    const char *channel = eng_channel_config(s->ch)->name;
    sec_ctx *sec = eng_channel_sec(s->ch);
    sec_principal p = {0};
    sec_error err = {0};
    if (!sec || !sec->cfg->auth) {
        d->allowed = true;
    } else if (sec_authenticate_cert(sec->db, in->peer_cert, &p, &err) != SEC_OK) {
        snprintf(d->why, sizeof d->why,
                 "client certificate %.16s... is not a registered identity (tern token create "
                 "--cert)", in->peer_cert);
        sec_record_event(sec, NULL, "message.post", channel, NULL, in->peer, "denied", d->why);
    } else if (!sec_check(sec, &p, SEC_MESSAGE_POST, channel, in->peer)) {
        snprintf(d->why, sizeof d->why, "client certificate %s may not post to channel %s",
                 p.name, channel);
    } else {
        d->allowed = true;
        sec_record_event(sec, &p, "message.post", channel, NULL, in->peer, "ok",
                         "client certificate");
    }
    sec_principal_clear(&p);
    return d;
}

typedef struct reply_ctx {
    mllp_reply *reply;
    bool is_ack;
} reply_ctx;

static bool looks_like_ack(const char *data, size_t len)
{
    /* MSH-9.1 == "ACK": cheap check on the first line only */
    hl7_msg *m = hl7_msg_new(NULL);
    const char *end = memchr(data, '\r', len);
    size_t n = end ? (size_t)(end - data) : len;
    bool is_ack = hl7_parse(m, data, n, NULL) == HL7_OK && hl7_ack_is_ack(m);
    hl7_msg_free(m);
    return is_ack;
}

static void on_stored(void *arg, bool stored, bool accepted, const char *ack, size_t ack_len)
{
    reply_ctx *rc = arg;
    if (rc->is_ack && stored)
        mllp_reply_drop(rc->reply);
    else
        mllp_reply_send(rc->reply, ack, ack_len);
    free(rc);
}

static void on_frame(const mllp_inbound *in, mllp_reply *reply, void *arg)
{
    eng_source *s = arg;
    if (in->oversized) {
        const config_channel *cc = eng_channel_config(s->ch);
        hl7_error e = {.code = HL7_ERR_TOO_LARGE};
        snprintf(e.text, sizeof(e.text),
                 "MLLP frame larger than the channel's limit of %zu bytes; not stored",
                 cc->source.mllp.max_frame);
        tbuf nak = TBUF_INIT;
        hl7_ack_build_nak(in->data, in->len, &e, NULL, &nak);
        mllp_reply_send(reply, nak.p, nak.len);
        tbuf_free(&nak);
        eng_log(s->ch, "connection %llu from %s: %s", (unsigned long long)in->conn_id, in->peer,
                e.text);
        return;
    }
    const cert_decision *d = in->peer_cert ? cert_allowed(s, in) : NULL;
    if (d && !d->allowed) {
        hl7_error e = {.code = HL7_ERR_IO};
        snprintf(e.text, sizeof(e.text), "not authorized: %s; not stored", d->why);
        tbuf nak = TBUF_INIT;
        hl7_ack_build_nak(in->data, in->len, &e, NULL, &nak);
        mllp_reply_send(reply, nak.p, nak.len);
        tbuf_free(&nak);
        if (in->seq == 1)
            eng_log(s->ch, "connection %llu from %s: %s", (unsigned long long)in->conn_id,
                    in->peer, e.text);
        return;
    }
    reply_ctx *rc = xcalloc(1, sizeof(*rc));
    rc->reply = reply;
    rc->is_ack = in->len >= 8 && looks_like_ack(in->data, in->len);
    eng_submit(s->ch, in->data, in->len, on_stored, rc);
}

static eng_source *mllp_start(eng_channel *ch, tbuf *err)
{
    const config_channel *cc = eng_channel_config(ch);
    eng_source *s = xcalloc(1, sizeof(*s));
    s->ch = ch;
    net_addr addr;
    net_error nerr;
    char port[8];
    snprintf(port, sizeof(port), "%u", cc->source.listen.port);
    if (net_addr_from(cc->source.listen.host, port, &addr, &nerr) != NET_OK) {
        tbuf_printf(err, "bad MLLP listen address: %s", nerr.text);
        free(s);
        return NULL;
    }
    mllp_server_opts o = {
        .max_frame = cc->source.mllp.max_frame,
        .idle_timeout_ms = cc->source.mllp.idle_timeout_ms == 0 ? UINT32_MAX
                           : cc->source.mllp.idle_timeout_ms > UINT32_MAX - 1
                               ? UINT32_MAX - 1
                               : (unsigned)cc->source.mllp.idle_timeout_ms,
        .max_connections = cc->source.mllp.max_connections,
    };
    if (cc->source.tls.enabled &&
        !(o.tls = eng_channel_tls(ch, &cc->source.tls, true, err))) {
        free(s);
        return NULL;
    }
    mllp_error merr;
    s->srv = mllp_server_new(eng_channel_base(ch), &addr, &o, on_frame, s, &merr);
    if (!s->srv) {
        tbuf_printf(err, "cannot listen for MLLP on %s:%u: %s", cc->source.listen.host,
                    cc->source.listen.port, merr.text);
        free(s);
        return NULL;
    }
    eng_log(ch, "listening for MLLP%s on %s:%u", o.tls ? " over TLS" : "", cc->source.listen.host,
            mllp_server_port(s->srv));
    return s;
}

static void mllp_stopped(void *arg)
{
    eng_source *s = arg;
    if (s->done) s->done(s->done_arg);
}

static void mllp_stop(eng_source *s, void (*done)(void *), void *arg)
{
    s->done = done;
    s->done_arg = arg;
    mllp_server_stop(s->srv, mllp_stopped, s);
}

static void mllp_free(eng_source *s)
{
    mllp_server_free(s->srv);
    free(s);
}

const eng_source_ops eng_source_mllp_ops = {mllp_start, mllp_stop, mllp_free};
