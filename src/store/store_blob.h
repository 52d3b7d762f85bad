/*
 * store_blob: the body log, append-only segment files that hold the raw
 * bytes of stored messages next to the SQLite database (store_sqlite.c).
 *
 * Why: a 3 KB message stored inside SQLite costs a whole page in the WAL,
 * written a second time at checkpoint, through two system calls per page.
 * Appending every body of a group commit with one writev and one fdatasync,
 * and storing only (segment, offset) in the row, halves the committer's work
 * (docs/store.md has the measurements).
 *
 * Layout: DIR/LOCK and DIR/NNNNNNNN.seg (decimal segment numbers from 1).
 * A record is a 24-byte header, the body, then the caller's metadata:
 *
 *     u32 magic "TBR1"  u32 body length  u32 meta length
 *     u32 CRC-32C of the body  u32 CRC-32C of the meta  u32 flags
 *
 * (little-endian; flags 0 = plain bytes, BLOB_WIPED = blanked by pruning;
 * a later encryption layer will set
 * a flag and a key id). A reader checks the header and the body's checksum
 * before trusting a body, so a damaged or truncated file is reported, never
 * returned.
 *
 * Durability: blob_append writes without waiting; blob_sync makes what was
 * appended durable (fdatasync, plus the directory when a segment was
 * created). The metadata makes the log a journal: the store writes in it
 * everything it needs to rebuild a message's rows, so that its database
 * need not sync every commit. After a crash, blob_recover hands back every
 * whole record after a given position and cuts a torn record off the end.
 *
 * Writers: one per log, enforced with flock on DIR/LOCK (blob_open with
 * write = true reports whether it got it). Readers need no lock. A batch
 * never spans two segments; the newest segment is never removed, so a
 * segment other than the newest no longer changes, and once no row points
 * into it blob_remove_unused may delete it (that is how pruning gives the
 * space back).
 */
#ifndef TERN_STORE_BLOB_H
#define TERN_STORE_BLOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/tbuf.h"
#include "store/store.h"

typedef struct blob_log blob_log;

/* Where a record starts. */
typedef struct blob_ref {
    int64_t seg;
    int64_t off;
} blob_ref;

/* One body to append, with its metadata (opaque here). */
typedef struct blob_body {
    const void *p;
    size_t len;
    const void *meta;
    size_t meta_len;
} blob_body;

#define BLOB_HEADER 24
#define BLOB_SEGMENT_BYTES (64 << 20) /* default size at which a new segment starts */
#define BLOB_MAX_BODY 0x7fffffffu

/* Opens the log in directory dir. With write, creates dir (0750) if needed
 * and tries to become its writer; *writer (may be NULL) says whether it did
 * (false: another handle or process writes it; the log is then read-only
 * here). segment_bytes 0 means BLOB_SEGMENT_BYTES. Without write, a missing
 * directory is fine: there is nothing to read yet. */
store_status blob_open(const char *dir, bool write, uint64_t segment_bytes, blob_log **out,
                       bool *writer, store_error *err);
void blob_close(blob_log *b);

/* Appends n bodies as consecutive records of one segment (starting a new one
 * when the current one is full) and fills refs[0..n). Not durable until
 * blob_sync. Only for the writer. */
store_status blob_append(blob_log *b, const blob_body *bodies, size_t n, blob_ref *refs,
                         store_error *err);

/* Starts making what was appended durable on a helper thread and returns at
 * once, so that the flush overlaps with other work; blob_sync then waits
 * for it (and syncs whatever was appended after). Optional. */
void blob_sync_start(blob_log *b);

/* Makes every appended record durable. */
store_status blob_sync(blob_log *b, store_error *err);

/* Drops what the last blob_append wrote (after a failed commit), so that
 * recovery will not bring it back; synced. Best effort. */
void blob_rollback(blob_log *b);

/* Writer: where the next record will go (after everything appended). */
blob_ref blob_end(const blob_log *b);
/* The writer: records blob_end() in DIR/LOCK (not synced) for readers in
 * other processes. blob_published: true, with that end, while a writer
 * holds the log and has published one. */
void blob_publish(blob_log *b);
bool blob_published(const char *dir, blob_ref *end);

/* Called by blob_recover for each whole record, in log order; next is where
 * the record after it starts. body and meta are valid for the call only. */
typedef store_status (*blob_record_fn)(void *ctx, blob_ref at, blob_ref next, const void *body,
                                       size_t len, const void *meta, size_t meta_len,
                                       store_error *err);

/* Writer, after a crash: calls fn for every whole record from position
 * `from` to the end of the log, then cuts off a torn or damaged tail of the
 * newest segment (synced) so that appending continues after the last good
 * record. A damaged record in an older segment is STORE_ERR_CORRUPT. */
store_status blob_recover(blob_log *b, blob_ref from, blob_record_fn fn, void *ctx,
                          store_error *err);

/* Appends the body of the record at ref, which must be len bytes long, to
 * out. STORE_ERR_CORRUPT when the header or checksum do not match,
 * STORE_ERR_IO when the segment cannot be read. */
store_status blob_read(blob_log *b, blob_ref ref, size_t len, tbuf *out, store_error *err);

/* Where the body of a deleted message lies, for blob_wipe. */
typedef struct blob_span {
    blob_ref ref;
    size_t len; /* the body's length, as the row said */
} blob_span;

/* Pruning: overwrites the body and metadata of each record in spans[0..n)
 * with zeros and marks it wiped (flags BLOB_WIPED, checksums of the zeros),
 * so that a deleted message's bytes do not outlive its rows in a segment
 * that still holds live records. A wiped record keeps its length (the log
 * stays walkable), blob_read reports it as damaged and blob_recover skips
 * it. Each touched segment is synced. A record that is not where and as
 * long as said is left alone. Any handle may wipe (no writer lock needed:
 * only bytes of dead records change). Call it only once the rows are gone
 * durably. */
#define BLOB_WIPED 1u
store_status blob_wipe(blob_log *b, const blob_span *spans, size_t n, store_error *err);

/* Is segment seg still referenced? Return true to keep it. */
typedef bool (*blob_in_use_fn)(void *ctx, int64_t seg);

/* Deletes every segment but the newest for which in_use says false, adding
 * the bytes freed to *bytes. */
store_status blob_remove_unused(blob_log *b, blob_in_use_fn in_use, void *ctx, uint64_t *bytes,
                                store_error *err);

#endif
