/*
 * store_journal: see store_journal.h for the format. Decoding trusts
 * nothing: every length is checked against what is left, every string must
 * end with its NUL, and states must be known ones.
 */
#include "store/store_journal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"

#define VERSION 2 /* 2 added the sealed envelope; 1 is still read */

static void put_u32(tbuf *out, uint32_t v)
{
    unsigned char b[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 24)};
    tbuf_put(out, b, 4);
}

static void put_str(tbuf *out, const char *s)
{
    if (!s) {
        put_u32(out, 0);
        return;
    }
    size_t n = strlen(s) + 1;
    put_u32(out, (uint32_t)n);
    tbuf_put(out, s, n);
}

static void put_u16(tbuf *out, size_t v)
{
    unsigned char b[2] = {(unsigned char)v, (unsigned char)(v >> 8)};
    tbuf_put(out, b, 2);
}

void journal_encode(const store_put *p, tbuf *out)
{
    unsigned char head[10] = {VERSION, (unsigned char)p->state};
    uint64_t at = (uint64_t)p->received_at;
    for (int i = 0; i < 8; i++)
        head[2 + i] = (unsigned char)(at >> (8 * i));
    tbuf_put(out, head, sizeof head);
    const store_meta *m = &p->meta;
    const char *strs[] = {p->channel,   p->error,       m->msh9,     m->control_id, m->send_app,
                          m->send_fac,  m->recv_app,    m->recv_fac, m->patient_id};
    for (size_t i = 0; i < sizeof strs / sizeof *strs; i++)
        put_str(out, strs[i]);
    size_t n_orders = m->n_order_ids > 0xffff ? 0xffff : m->n_order_ids;
    put_u16(out, n_orders);
    for (size_t i = 0; i < n_orders; i++)
        put_str(out, m->order_ids[i]);
    size_t n_dests = p->n_dests > 0xffff ? 0xffff : p->n_dests;
    put_u16(out, n_dests);
    for (size_t i = 0; i < n_dests; i++) {
        tbuf_putc(out, (char)p->dests[i].state);
        put_str(out, p->dests[i].name);
    }
    tbuf_putc(out, (char)p->quality.outcome);
    put_u16(out, p->quality.applicable);
    put_u16(out, p->quality.present);
    put_str(out, m->sealed);
}

void journal_scratch_free(journal_scratch *s)
{
    free(s->order_ids);
    free(s->dests);
    *s = (journal_scratch){0};
}

typedef struct reader {
    const unsigned char *p;
    size_t left;
    bool ok;
} reader;

static uint64_t get_n(reader *r, int bytes)
{
    if (!r->ok || r->left < (size_t)bytes) {
        r->ok = false;
        return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v |= (uint64_t)r->p[i] << (8 * i);
    r->p += bytes;
    r->left -= (size_t)bytes;
    return v;
}

static const char *get_str(reader *r)
{
    uint64_t n = get_n(r, 4);
    if (!r->ok || n == 0) return NULL;
    if (n > r->left || r->p[n - 1] != '\0' || memchr(r->p, '\0', n) != r->p + n - 1) {
        r->ok = false;
        return NULL;
    }
    const char *s = (const char *)r->p;
    r->p += n;
    r->left -= n;
    return s;
}

bool journal_decode(const void *bytes, size_t len, store_put *p, journal_scratch *sc)
{
    reader r = {bytes, len, true};
    memset(p, 0, sizeof *p);
    uint64_t version = get_n(&r, 1);
    if (version != 1 && version != VERSION) return false;
    p->state = (store_msg_state)get_n(&r, 1);
    p->received_at = (int64_t)get_n(&r, 8);
    const char **strs[] = {&p->channel,        &p->error,         &p->meta.msh9,
                           &p->meta.control_id, &p->meta.send_app, &p->meta.send_fac,
                           &p->meta.recv_app,  &p->meta.recv_fac, &p->meta.patient_id};
    for (size_t i = 0; i < sizeof strs / sizeof *strs; i++)
        *strs[i] = get_str(&r);
    size_t n = (size_t)get_n(&r, 2);
    sc->order_ids = xgrow(sc->order_ids, &sc->cap_orders, n + 1, sizeof *sc->order_ids);
    for (size_t i = 0; i < n; i++)
        sc->order_ids[i] = get_str(&r);
    p->meta.order_ids = sc->order_ids;
    p->meta.n_order_ids = n;
    n = (size_t)get_n(&r, 2);
    sc->dests = xgrow(sc->dests, &sc->cap_dests, n + 1, sizeof *sc->dests);
    for (size_t i = 0; i < n; i++) {
        sc->dests[i].state = (store_dlv_state)get_n(&r, 1);
        sc->dests[i].name = get_str(&r);
        if (!sc->dests[i].name || (sc->dests[i].state != STORE_DLV_QUEUED &&
                                   sc->dests[i].state != STORE_DLV_FILTERED &&
                                   sc->dests[i].state != STORE_DLV_ERROR))
            r.ok = false;
    }
    p->dests = sc->dests;
    p->n_dests = n;
    p->quality.outcome = (store_q_outcome)get_n(&r, 1);
    p->quality.applicable = (uint16_t)get_n(&r, 2);
    p->quality.present = (uint16_t)get_n(&r, 2);
    if (version >= 2) p->meta.sealed = get_str(&r);
    if (p->quality.outcome > STORE_Q_ERRORS) r.ok = false;
    if (!p->channel || p->state < STORE_MSG_RECEIVED || p->state > STORE_MSG_DUPLICATE)
        r.ok = false;
    return r.ok && r.left == 0;
}
