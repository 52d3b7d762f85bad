/*
 * store_journal: a store_put (everything but the raw bytes) as bytes, and
 * back. The SQLite backend writes it beside each body in the body log
 * (store_blob.h), which makes the log a journal: after a power loss the
 * rows of messages whose last commits the database lost are rebuilt from
 * it, so the database itself need not be synced at every commit.
 *
 * Format (little-endian): u8 version (2; 1 is read too), u8 message state, i64
 * received_at, then strings, each a u32 length counting a final NUL
 * (0 = NULL) and that many bytes: channel, error, msh9, control_id,
 * send_app, send_fac, recv_app, recv_fac, patient_id; u16 number of order
 * ids and that many strings; u16 number of destinations, each a u8
 * delivery state and its name; the data quality: u8 outcome, u16
 * applicable and u16 present field bits; (version 2) the sealed envelope
 * (store_meta.sealed). Strings keep their NUL so that a decoded
 * put points straight into the bytes.
 */
#ifndef TERN_STORE_JOURNAL_H
#define TERN_STORE_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "base/tbuf.h"
#include "store/store.h"

/* Appends p's description to out. */
void journal_encode(const store_put *p, tbuf *out);

/* Scratch arrays a decoded put points into; reuse across calls, release
 * with journal_scratch_free. Zero-initialise. */
typedef struct journal_scratch {
    const char **order_ids;
    store_dest *dests;
    size_t cap_orders, cap_dests;
} journal_scratch;

void journal_scratch_free(journal_scratch *s);

/* Fills p from bytes[0..len) (p's strings point into bytes; raw is left
 * NULL). false when the bytes are not a well-formed description. */
bool journal_decode(const void *bytes, size_t len, store_put *p, journal_scratch *scratch);

#endif
