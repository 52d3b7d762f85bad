/*
 * dest_mllp: sends each message over MLLP and reads the ACK.
 *
 * Outcome by MSA-1: AA or CA is success; AE or CE is an application error,
 * retried (the receiver may recover, e.g. a locked record) until the retry
 * policy gives up; AR or CR is a rejection, which no retry will change: the
 * message goes to the error queue at once. The ERR-8 / MSA-3 text (or ERR-1
 * before v2.5) is kept as the reason. No ACK (connection refused, timeout,
 * closed, an answer that is not an ACK) is transient and retried.
 *
 * `parallel` connections are kept, one message in flight on each.
 */
#include "engine/engine_int.h"

#include "base/mem.h"
#include "net/mllp_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct mllp_dest {
    eng_dest *d;
    mllp_client **clients;
    uint32_t nclients;
    uint32_t next;
    hl7_msg *ack;
} mllp_dest;

typedef struct send_ctx {
    mllp_dest *md;
    int64_t id;
} send_ctx;

static int mllp_dest_open(eng_dest *d, tbuf *err)
{
    const config_destination *c = eng_dest_config(d);
    net_addr addr;
    net_error nerr;
    char port[8];
    snprintf(port, sizeof(port), "%u", c->mllp.port);
    if (net_addr_from(c->mllp.host, port, &addr, &nerr) != NET_OK) {
        tbuf_printf(err, "bad MLLP address %s:%u: %s", c->mllp.host, c->mllp.port, nerr.text);
        return -1;
    }
    tls_ctx *tls = NULL;
    if (c->tls.enabled && !(tls = eng_channel_tls(eng_dest_channel(d), &c->tls, false, err)))
        return -1;
    mllp_dest *md = xcalloc(1, sizeof(*md));
    md->d = d;
    md->nclients = c->parallel ? c->parallel : 1;
    md->clients = xcalloc(md->nclients, sizeof(*md->clients));
    mllp_client_opts o = {
        .connect_timeout_ms = (unsigned)c->mllp.connect_timeout_ms,
        .ack_timeout_ms = (unsigned)c->mllp.ack_timeout_ms,
        .tls = tls,
    };
    for (uint32_t i = 0; i < md->nclients; i++)
        md->clients[i] = mllp_client_new(eng_channel_base(eng_dest_channel(d)), &addr, &o);
    md->ack = hl7_msg_new(NULL);
    eng_dest_set_impl(d, md);
    return 0;
}

static void get_text(hl7_msg *m, const char *path, tbuf *out)
{
    hl7_path p;
    if (hl7_path_parse(path, &p, NULL) == HL7_OK) hl7_get(m, &p, out);
}

/* Reads the ACK and decides. why receives the reason for a non-success. */
static store_outcome judge_ack(hl7_msg *m, const char *ack, size_t len, tbuf *why)
{
    if (hl7_parse(m, ack, len, NULL) != HL7_OK) {
        tbuf_puts(why, "the answer is not a valid HL7 message");
        return STORE_RETRY;
    }
    tbuf code = TBUF_INIT;
    get_text(m, "MSA-1", &code);
    const char *c = code.p ? code.p : "";
    store_outcome o;
    if (!strcmp(c, "AA") || !strcmp(c, "CA")) {
        o = STORE_SENT;
    } else {
        tbuf text = TBUF_INIT;
        get_text(m, "ERR-8", &text);
        if (!text.len) get_text(m, "MSA-3", &text);
        if (!text.len) get_text(m, "ERR-1.4.2", &text);
        tbuf_printf(why, "%s%s%s", *c ? c : "no MSA-1", text.len ? ": " : "",
                    text.p ? text.p : "");
        tbuf_free(&text);
        o = (!strcmp(c, "AR") || !strcmp(c, "CR")) ? STORE_FAILED : STORE_RETRY;
    }
    tbuf_free(&code);
    return o;
}

static void on_ack(const mllp_result *res, void *arg)
{
    send_ctx *sc = arg;
    mllp_dest *md = sc->md;
    if (res->status == MLLP_ERR_CANCELLED) { /* shutting down: stays queued */
        free(sc);
        return;
    }
    tbuf why = TBUF_INIT;
    store_outcome o;
    if (res->status != MLLP_OK) {
        tbuf_puts(&why, res->err ? res->err->text : "no ACK");
        o = STORE_RETRY;
    } else {
        o = judge_ack(md->ack, res->ack, res->ack_len, &why);
    }
    eng_dest_result(md->d, sc->id, o, why.len ? why.p : NULL);
    tbuf_free(&why);
    free(sc);
}

static void mllp_dest_deliver(eng_dest *d, const eng_delivery *dl)
{
    mllp_dest *md = eng_dest_impl(d);
    /* the least busy connection */
    uint32_t best = md->next++ % md->nclients;
    for (uint32_t i = 0; i < md->nclients; i++)
        if (mllp_client_pending(md->clients[i]) < mllp_client_pending(md->clients[best])) best = i;
    send_ctx *sc = xcalloc(1, sizeof(*sc));
    sc->md = md;
    sc->id = dl->id;
    mllp_client_send(md->clients[best], dl->raw, dl->len, on_ack, sc);
}

static void mllp_dest_close(eng_dest *d)
{
    mllp_dest *md = eng_dest_impl(d);
    if (!md) return;
    for (uint32_t i = 0; i < md->nclients; i++) mllp_client_free(md->clients[i]);
    free(md->clients);
    hl7_msg_free(md->ack);
    free(md);
    eng_dest_set_impl(d, NULL);
}

const eng_dest_ops eng_dest_mllp_ops = {mllp_dest_open, mllp_dest_deliver, mllp_dest_close};
