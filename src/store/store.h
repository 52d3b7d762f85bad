/*
 * store: Tern's durable message store, one interface over several backends.
 *
 * Every message a channel receives is written here (raw bytes plus the header
 * fields people search by) before it is acknowledged, together with one
 * delivery row per destination. A destination's queue is nothing but its
 * delivery rows in state "queued", read in message-id order, so a restart
 * resumes every queue without any state kept in memory.
 *
 * The backend is chosen when the store is opened, from the location: a plain
 * path or "sqlite:PATH" selects SQLite (store_sqlite.c, WAL, synchronous=FULL);
 * "postgres://..." is reserved for the PostgreSQL backend. Backends implement
 * store_ops (end of this file); store.c validates arguments and dispatches.
 *
 * Invariants: a function that returns STORE_OK has committed durably what it
 * wrote; one that fails has written nothing (a batch is all or nothing),
 * except store_prune and store_reprocess by filter, which commit in chunks.
 * Raw bytes of a stored message never change: an edit adds a new revision.
 * All times are milliseconds since the Unix epoch, passed in by the caller
 * (the store reads no clock). A store handle is used by one thread at a time;
 * several processes may open the same location.
 */
#ifndef TERN_STORE_H
#define TERN_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/tbuf.h"

typedef enum store_status {
    STORE_OK = 0,
    STORE_ERR_ARG,         /* an argument is invalid (empty channel, unknown state, ...) */
    STORE_ERR_UNSUPPORTED, /* the location names a backend this build does not have */
    STORE_ERR_IO,          /* cannot create, open, read or write the files */
    STORE_ERR_BUSY,        /* another process held a lock beyond the busy timeout */
    STORE_ERR_FULL,        /* the disk is full */
    STORE_ERR_CORRUPT,     /* the file is not a Tern store or is damaged */
    STORE_ERR_SCHEMA,      /* the schema is newer than this Tern understands */
    STORE_ERR_NOT_FOUND,   /* no message with that id */
    STORE_ERR_BACKEND,     /* any other backend failure; text has the details */
    STORE_ERR_KEY,         /* encrypted data and no key, a wrong key, or it fails to open */
} store_status;

/* Returns a static name for a status ("disk full"); never NULL. */
const char *store_strerror(store_status s);

/* Filled by every function that takes one. `text` says what was being done
 * and what the backend reported, e.g. "storing a batch of 500 messages in
 * /var/tern.db: database or disk is full (SQLITE_FULL)". */
typedef struct store_error {
    store_status code;
    char text[256];
} store_error;

/* What happened to a message on arrival. NONE is "any" in filters and is
 * never stored. */
typedef enum store_msg_state {
    STORE_MSG_NONE = 0,
    STORE_MSG_RECEIVED,  /* accepted and routed */
    STORE_MSG_REJECTED,  /* invalid; NAKed; `error` says why */
    STORE_MSG_FILTERED,  /* accepted, but the channel filter dropped it */
    STORE_MSG_DUPLICATE, /* accepted, seen before within the duplicate window */
} store_msg_state;

/* Where one message stands for one destination. */
typedef enum store_dlv_state {
    STORE_DLV_NONE = 0,
    STORE_DLV_QUEUED,     /* waiting (possibly for a retry time) */
    STORE_DLV_SENT,       /* the destination accepted it */
    STORE_DLV_ERROR,      /* failed for good: the error queue */
    STORE_DLV_FILTERED,   /* routing decided not to send it there */
    STORE_DLV_SUPERSEDED, /* an edited revision took over this delivery */
} store_dlv_state;

/* Lower-case names as stored and shown ("received", "queued"); "" for NONE. */
const char *store_msg_state_name(store_msg_state s);
const char *store_dlv_state_name(store_dlv_state s);
/* The state with that name, or NONE when the name is unknown. */
store_msg_state store_msg_state_from_name(const char *name);
store_dlv_state store_dlv_state_from_name(const char *name);

typedef struct store store;

typedef struct store_options {
    int busy_timeout_ms; /* wait this long for another process's lock; 0: 5000 */
    /* Copy the write-ahead log into the main file once it holds this many
     * pages, inside the commit that crosses the mark (a stall of tens of ms).
     * 0: STORE_CHECKPOINT_PAGES; -1: never here, because another handle
     * calls store_checkpoint (e.g. on a thread the engine owns). */
    int checkpoint_pages;
    /* SQLite: start a new file of the body log (store_blob.h) past this
     * many bytes; 0: BLOB_SEGMENT_BYTES (64 MiB). Pruning frees whole files. */
    uint64_t segment_bytes;
    /* SQLite: rows stored before the patient index takes them in, sorted, in
     * one go (store_sqlite.c, merge_patient_keys); 0: STORE_KEY_MERGE_ROWS.
     * Searches by patient scan at most about this many recent rows. */
    uint32_t key_merge_rows;
    /* This handle stores the received messages (store_put_batch): take the
     * body log now, bringing back what a power loss took from the database,
     * rather than at the first batch. */
    bool writer;
    /* Encrypt PHI at rest with this keyring (sec/keys.h): bodies, patient
     * ids (searchable through keyed hashes), errors. Borrowed: it must
     * outlive the handle. NULL: stored as given (and encrypted rows written
     * by another handle cannot be read). */
    struct keyring *keys;
} store_options;

#define STORE_CHECKPOINT_PAGES 10000 /* about 40 MB of log */
#define STORE_KEY_MERGE_ROWS 16384

/* Opens (creating files, directories and schema as needed) the store at
 * `location`: a path, "sqlite:PATH", or "postgres://..." (not yet built:
 * STORE_ERR_UNSUPPORTED). opt may be NULL. On success *out is a new handle
 * the caller closes; on failure *out is NULL. */
store_status store_open(const char *location, const store_options *opt, store **out,
                        store_error *err);
/* Closes the handle; NULL is allowed. Nothing is lost: all writes committed. */
void store_close(store *s);
/* The backend's name ("sqlite"); never NULL. */
const char *store_backend(const store *s);

/* Moves committed data from the write-ahead log into the main file without
 * blocking writers in other handles or processes (SQLite: a PASSIVE
 * checkpoint; other backends: nothing to do). For a handle opened beside
 * one with checkpoint_pages = -1. */
store_status store_checkpoint(store *s, store_error *err);

/* --- writing received messages (group commit) ------------------------------ */

/* Header fields of a message, as extracted by the caller. NULL or "" means
 * absent (stored as NULL). */
typedef struct store_meta {
    const char *msh9;       /* MSH-9.1^MSH-9.2, e.g. "ADT^A01" */
    const char *control_id; /* MSH-10 */
    const char *send_app;   /* MSH-3 */
    const char *send_fac;   /* MSH-4 */
    const char *recv_app;   /* MSH-5 */
    const char *recv_fac;   /* MSH-6 */
    const char *patient_id; /* PID-3.1 */
    /* Placer and filler order numbers (ORC-2.1, ORC-3.1, OBR-2.1, OBR-3.1 of
     * every occurrence), searchable with store_filter.order_id. */
    const char *const *order_ids;
    size_t n_order_ids;
    /* Set by the store itself when it encrypts (store_options.keys): the
     * sealed text of the row's PHI. Callers leave it NULL; readers get the
     * opened values in the fields above instead. */
    const char *sealed;
} store_meta;

/* Data quality of one received message, aggregated per channel and hour by
 * the store (store_quality_report): how validation ended and, for the key
 * fields (STORE_QF_*), which ones applied (their segment is present) and
 * which of those held a value. Zero: not counted. */
typedef enum store_q_outcome {
    STORE_Q_NONE = 0,
    STORE_Q_CLEAN,    /* no problem at all */
    STORE_Q_WARNINGS, /* warnings only */
    STORE_Q_ERRORS,   /* rejected by validation */
} store_q_outcome;

enum {
    STORE_QF_PID3, /* patient identifier */
    STORE_QF_PID5, /* patient name */
    STORE_QF_PID7, /* birth date */
    STORE_QF_PID8, /* administrative sex */
    STORE_QF_PV12, /* patient class */
    STORE_QF_PV119, /* visit number */
    STORE_QF_OBR4, /* universal service id */
    STORE_QF_OBX6, /* units of every numeric OBX */
    STORE_QF_COUNT
};

/* "PID-3", ...; NULL out of range. */
const char *store_qf_name(int field);

typedef struct store_quality {
    store_q_outcome outcome;
    uint16_t applicable; /* bit STORE_QF_x: the field's segment is there */
    uint16_t present;    /* bit STORE_QF_x: ... and the field has a value */
} store_quality;

/* One destination of a new message and its first state: QUEUED, FILTERED,
 * or ERROR (straight to the error queue, e.g. when the channel's filter
 * script failed; last_error is then the message's error). */
typedef struct store_dest {
    const char *name;
    store_dlv_state state;
} store_dest;

/* One message to store. Everything is borrowed for the duration of the call. */
typedef struct store_put {
    const char *channel; /* required */
    const void *raw;     /* raw_len bytes as received; may hold NULs */
    size_t raw_len;
    int64_t received_at;
    store_meta meta;
    store_msg_state state;   /* required */
    const char *error;       /* why it was rejected; NULL otherwise */
    const store_dest *dests; /* n_dests entries with distinct names */
    size_t n_dests;
    store_quality quality;
} store_put;

/* Stores n messages in one transaction and one fsync, and writes their new
 * ids, in order, to ids_out (n entries; may be NULL). Returns only after the
 * batch is durable: ACK them afterwards. All or nothing. */
store_status store_put_batch(store *s, const store_put *items, size_t n, int64_t *ids_out,
                             store_error *err);

/* Two-phase storing, for a writer that acknowledges a batch once it is
 * durable and writes its rows afterwards, on another thread (the engine):
 *
 * store_log_batch() makes the batch durable in the body log (bodies and
 * everything the rows will hold) and sets *out to the logged batch, which
 * borrows items until it is freed. *durable false: this handle keeps no body
 * log (bodies live in the rows) and the batch becomes durable only when
 * indexed. Touches nothing of s but the body log and the keyring, so one
 * thread may log while another uses s for anything else.
 *
 * store_index_batches() writes the rows of nb logged batches, in the order
 * they were logged, in one transaction, all or nothing. On failure call it
 * again with the same batches: a batch must never be skipped, since the
 * rows record how far the body log is indexed. Logged messages are not seen
 * by lists, searches or queues until indexed; after a crash, opening the
 * writer indexes what was logged (recovery). */
typedef struct store_logged {
    const store_put *items;    /* as the backend stores them (sealed) */
    size_t n;
    bool durable;              /* in the body log, synced */
    void *backend;             /* the backend's record of where they are */
    struct store_crypt *crypt; /* owns the sealed copies */
} store_logged;

store_status store_log_batch(store *s, const store_put *items, size_t n, store_logged **out,
                             store_error *err);
store_status store_index_batches(store *s, store_logged *const *batches, size_t nb,
                                 store_error *err);
/* Frees a logged batch (NULL: nothing). */
void store_logged_free(store *s, store_logged *b);

/* Duplicate detection: *id_out is the id of the latest message from sending
 * facility send_fac (MSH-4; NULL matches an absent one) with control id
 * control_id (MSH-10), received at or after since, not rejected; 0 when there
 * is none or control_id is empty. Messages of a batch not yet stored are the
 * caller's to check. Indexed. */
store_status store_find_duplicate(store *s, const char *send_fac, const char *control_id,
                                  int64_t since, int64_t *id_out, store_error *err);

/* --- destination queues ------------------------------------------------------ */

/* One queued delivery. raw points into the batch's memory. */
typedef struct store_queue_item {
    int64_t message_id;
    int64_t received_at;
    int64_t next_attempt_at; /* 0 for a first attempt */
    int attempts;            /* attempts made so far */
    const char *raw;         /* not NUL-terminated; valid until the batch is reused or freed */
    size_t raw_len;
} store_queue_item;

/* A page of a queue. Zero-initialise (STORE_QUEUE_BATCH_INIT), reuse across
 * calls (memory is kept), release with store_queue_batch_free. */
typedef struct store_queue_batch {
    store_queue_item *items;
    size_t n;
    size_t cap;
    tbuf raw; /* owns the bytes items[].raw point to */
} store_queue_batch;

#define STORE_QUEUE_BATCH_INIT                                                                     \
    {                                                                                              \
        NULL, 0, 0, TBUF_INIT                                                                      \
    }

void store_queue_batch_free(store_queue_batch *b);

/* Fills out with at most max queued deliveries of destination dest of
 * channel, in message-id order, with message_id > after_id and
 * next_attempt_at <= now. Page through a backlog by passing the last id seen
 * as after_id; start again from 0 to pick up retries that came due. Only one
 * page is ever read. For strict in-order delivery pass now = INT64_MAX with
 * max 1 to get the head whatever its retry time, and wait for it. An unknown
 * destination has an empty queue. */
store_status store_queue_next(store *s, const char *channel, const char *dest, int64_t after_id,
                              int64_t now, size_t max, store_queue_batch *out, store_error *err);

/* Number of queued deliveries (due or not) for dest of channel. Costs a scan
 * of that queue's index entries: for metrics, not for every loop turn. */
store_status store_queue_count(store *s, const char *channel, const char *dest, uint64_t *count_out,
                               store_error *err);

typedef enum store_outcome {
    STORE_SENT = 1, /* -> sent */
    STORE_RETRY,    /* stays queued until next_attempt_at; error says why */
    STORE_FAILED,   /* -> error (the error queue); error says why */
} store_outcome;

/* The outcome of one delivery attempt. Every outcome counts one attempt.
 * RETRY and FAILED apply only while the delivery is queued (an edit may have
 * superseded it meanwhile); a delivery that no longer exists is skipped. */
typedef struct store_mark {
    const char *channel;
    const char *dest;
    int64_t message_id;
    store_outcome outcome;
    int64_t next_attempt_at; /* RETRY only */
    const char *error;       /* RETRY, FAILED: the ERR text, errno text, HTTP status... */
} store_mark;

/* Records n outcomes in one transaction (group commit, as for puts). */
store_status store_mark_batch(store *s, const store_mark *marks, size_t n, int64_t now,
                              store_error *err);

/* --- inspection (tern messages list/show) ----------------------------------- */

/* What `list` selects. Zero-initialise; unset fields match everything. */
typedef struct store_filter {
    const char *channel;
    store_msg_state state;     /* the message's own state */
    store_dlv_state dlv_state; /* messages with at least one delivery in this state */
    const char *msh9;          /* "ADT^A01"; "ADT" matches every ADT trigger */
    int64_t since;             /* received_at >= since; 0: no bound */
    const char *patient_id;    /* business keys: exact match, indexed */
    const char *order_id;      /* a placer or filler order number */
    const char *control_id;
    const char *send_fac;
    int64_t original_id; /* the revisions of this message (the id of its revision 1),
                            that one included: a revision chain; 0: no bound */
    int64_t before_id;   /* paging: only ids below this; 0: no bound */
    size_t limit;        /* 0: 100 */
} store_filter;

/* One message without its raw bytes. Strings may be NULL (absent). */
typedef struct store_summary {
    int64_t id;
    const char *channel;
    int64_t received_at;
    store_msg_state state;
    store_meta meta;
    const char *error;
    int revision;        /* 1 for a received message, 2.. for edits */
    int64_t original_id; /* id of revision 1; equals id for revision 1 */
    size_t raw_len;
} store_summary;

/* Called once per message, newest first. The summary's strings are borrowed
 * for the call only. Return false to stop early. */
typedef bool (*store_list_fn)(void *ctx, const store_summary *m);

store_status store_list(store *s, const store_filter *f, store_list_fn fn, void *ctx,
                        store_error *err);

/* Appends to out how the backend will answer f (SQLite: EXPLAIN QUERY PLAN,
 * one step per line), so an operator can see that a search uses an index. */
store_status store_list_plan(store *s, const store_filter *f, tbuf *out, store_error *err);

typedef struct store_delivery {
    const char *dest;
    store_dlv_state state;
    int attempts;
    int64_t next_attempt_at;
    const char *last_error; /* NULL when none */
    int64_t updated_at;
} store_delivery;

/* One message in full. Everything points into memory the struct owns;
 * release with store_message_free. Zero-initialise (STORE_MESSAGE_INIT). */
typedef struct store_message {
    store_summary sum;
    const char *raw; /* sum.raw_len bytes, followed by a NUL */
    store_delivery *deliveries;
    size_t n_deliveries;
    tbuf mem_; /* private */
} store_message;

#define STORE_MESSAGE_INIT                                                                         \
    {                                                                                              \
        {0}, NULL, NULL, 0, TBUF_INIT                                                              \
    }

/* Reads message id with its raw bytes and its deliveries (in destination
 * registration order) into out, replacing what out held. STORE_ERR_NOT_FOUND
 * when there is no such message. */
store_status store_get(store *s, int64_t id, store_message *out, store_error *err);
void store_message_free(store_message *m);

/* Messages per transaction in chunked operations (prune, reprocess by filter). */
#define STORE_CHUNK 1000

/* --- operator actions (audited) ----------------------------------------------- */

/* Who did it and why; recorded in the audit table with what was done. */
typedef struct store_audit {
    const char *who; /* required: user name */
    const char *why; /* the reason given; may be NULL */
} store_audit;

/* Which deliveries to send again. Either explicit ids (dlv_state and channel
 * are then ignored; unknown ids are skipped), or every message that has a
 * delivery in dlv_state (e.g. ERROR: the error queue), optionally of one
 * channel. Named destinations are requeued whatever their state (sent too);
 * with none named, only deliveries that did not succeed (error, queued) are.
 * Superseded deliveries are never touched: reprocess the edited revision. */
typedef struct store_reprocess_req {
    const int64_t *ids;
    size_t n_ids;
    store_dlv_state dlv_state; /* without ids: required */
    const char *channel;       /* without ids: NULL for every channel */
    const char *const *dests;
    size_t n_dests;
} store_reprocess_req;

typedef struct store_counts {
    uint64_t messages;   /* messages with at least one delivery touched */
    uint64_t deliveries; /* deliveries touched */
} store_counts;

/* Counts what store_reprocess would touch, changing nothing (the dry run the
 * CLI shows before --yes). */
store_status store_reprocess_count(store *s, const store_reprocess_req *req, store_counts *out,
                                   store_error *err);

/* Sets the selected deliveries back to queued with attempts 0, due at now,
 * and records an audit row. With ids, one transaction; by filter, chunks of
 * STORE_CHUNK messages, each committed (traffic keeps flowing). */
store_status store_reprocess(store *s, const store_reprocess_req *req, const store_audit *who,
                             int64_t now, store_counts *out, store_error *err);

/* Stores raw as a new revision of message id (same channel and received_at,
 * meta from the corrected bytes), leaving the original's bytes untouched, and
 * queues on the new revision the named dests (NULL/0: those of message id that
 * did not succeed). Those deliveries of message id that had not succeeded
 * become superseded; sent ones stay sent, as history. Naming dests is how a
 * rejected message, which has no deliveries, is routed once fixed. Writes
 * the new id to *new_id and the number of deliveries queued to *requeued
 * (may be NULL). One transaction, audited. */
store_status store_edit(store *s, int64_t id, const void *raw, size_t raw_len,
                        const store_meta *meta, const char *const *dests, size_t n_dests,
                        const store_audit *who, int64_t now, int64_t *new_id, size_t *requeued,
                        store_error *err);

typedef struct store_prune_result {
    uint64_t messages;    /* messages deleted */
    uint64_t bytes_freed; /* file space given back to the file system */
} store_prune_result;

/* Deletes messages received before `before` whose deliveries are all done
 * (none queued), STORE_CHUNK per transaction, then returns the freed pages to
 * the file system and truncates the write-ahead log. Audited. Deleted for
 * good: SQLite overwrites freed content (secure_delete) while pruning, and
 * the bodies of the deleted messages are blanked in the body log
 * (blob_wipe) once the deletion is durable; segments nobody points into
 * are removed. */
store_status store_prune(store *s, int64_t before, const store_audit *who, int64_t now,
                         store_prune_result *out, store_error *err);
/* The same for the messages of one channel (channel NULL: every channel),
 * for per-channel retention. */
store_status store_prune_channel(store *s, const char *channel, int64_t before,
                                 const store_audit *who, int64_t now, store_prune_result *out,
                                 store_error *err);

/* Counts the messages store_prune(s, before, ...) would delete now, changing
 * nothing (the preview before --yes). */
store_status store_prune_count(store *s, int64_t before, uint64_t *count_out, store_error *err);
store_status store_prune_count_channel(store *s, const char *channel, int64_t before,
                                       uint64_t *count_out, store_error *err);

/* Data quality of a channel over a period (store_quality_report). */
typedef struct store_quality_row {
    const char *channel;
    uint64_t messages, clean, warnings, errors;
    uint64_t applicable[STORE_QF_COUNT], present[STORE_QF_COUNT];
} store_quality_row;

typedef bool (*store_quality_fn)(void *ctx, const store_quality_row *row);

/* Sums the quality counts of every hour from `since` (ms; rounded down to
 * the hour), one row per channel (only `channel` when not NULL), by
 * channel name. */
store_status store_quality_report(store *s, const char *channel, int64_t since,
                                  store_quality_fn fn, void *ctx, store_error *err);

typedef struct store_audit_entry {
    int64_t id;
    int64_t at;
    const char *who;
    const char *why;    /* "" when none was given */
    const char *action; /* "reprocess", "edit", "prune" */
    const char *what;   /* readable description with counts */
} store_audit_entry;

typedef bool (*store_audit_fn)(void *ctx, const store_audit_entry *e);

/* Calls fn for at most limit (0: 100) audit entries, newest first; strings
 * are borrowed for the call. */
store_status store_audit_list(store *s, size_t limit, store_audit_fn fn, void *ctx,
                              store_error *err);

/* --- backend interface: for store.c and store_<backend>.c only ------------------
 *
 * A backend embeds `struct store` as the first member of its handle. store.c
 * has validated arguments (non-NULL pointers, known states, required strings,
 * err cleared) before calling an op, and fills err->code from the return value
 * when the op left it unset. */

typedef struct store_ops {
    const char *name;
    store_status (*open)(const char *location, const store_options *opt, store **out,
                         store_error *err);
    void (*close)(store *s);
    store_status (*checkpoint)(store *s, store_error *err);
    store_status (*put_batch)(store *s, const store_put *items, size_t n, int64_t *ids_out,
                              store_error *err);
    /* Optional (without them a logged batch is stored by put_batch when
     * indexed): log_batch sets b->durable and b->backend; index_batches
     * stores logged batches; logged_free frees b->backend. */
    store_status (*log_batch)(store *s, store_logged *b, store_error *err);
    store_status (*index_batches)(store *s, store_logged *const *b, size_t nb, store_error *err);
    void (*logged_free)(store *s, store_logged *b);
    store_status (*find_duplicate)(store *s, const char *send_fac, const char *control_id,
                                   int64_t since, int64_t *id_out, store_error *err);
    store_status (*queue_next)(store *s, const char *channel, const char *dest, int64_t after_id,
                               int64_t now, size_t max, store_queue_batch *out, store_error *err);
    store_status (*queue_count)(store *s, const char *channel, const char *dest,
                                uint64_t *count_out, store_error *err);
    store_status (*mark_batch)(store *s, const store_mark *marks, size_t n, int64_t now,
                               store_error *err);
    store_status (*list)(store *s, const store_filter *f, store_list_fn fn, void *ctx,
                         store_error *err);
    store_status (*list_plan)(store *s, const store_filter *f, tbuf *out, store_error *err);
    store_status (*get)(store *s, int64_t id, store_message *out, store_error *err);
    store_status (*reprocess)(store *s, const store_reprocess_req *req, const store_audit *who,
                              int64_t now, bool dry_run, store_counts *out, store_error *err);
    store_status (*edit)(store *s, int64_t id, const void *raw, size_t raw_len,
                         const store_meta *meta, const char *const *dests, size_t n_dests,
                         const store_audit *who, int64_t now, int64_t *new_id, size_t *requeued,
                         store_error *err);
    store_status (*prune)(store *s, const char *channel, int64_t before, const store_audit *who,
                          int64_t now, store_prune_result *out, store_error *err);
    store_status (*prune_count)(store *s, const char *channel, int64_t before,
                                uint64_t *count_out, store_error *err);
    store_status (*audit_list)(store *s, size_t limit, store_audit_fn fn, void *ctx,
                               store_error *err);
    store_status (*quality_report)(store *s, const char *channel, int64_t since,
                                   store_quality_fn fn, void *ctx, store_error *err);
} store_ops;

struct store {
    const store_ops *ops;  /* never NULL */
    struct keyring *keys;  /* store_options.keys; set by store_open */
    struct store_crypt *crypt; /* store_crypt.c's scratch, made on first use */
    struct store_crypt_pool *crypt_pool; /* scratches of logged batches, reused */
};

extern const store_ops store_sqlite_ops;

/* Sets err->code and formats err->text (truncated to fit); returns code. */
store_status store_fail(store_error *err, store_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The arena behind a store_message: store_message_add appends a copy of
 * s[0..len) plus a NUL to m's memory and returns a reference to it (0 for
 * s == NULL); store_message_str turns a reference into a pointer, valid once
 * everything has been added (the memory may move while adding). */
size_t store_message_add(store_message *m, const char *s, size_t len);
const char *store_message_str(const store_message *m, size_t ref);

/* Appends the audit description of a reprocess: "ids 1,2,3" or
 * "dlv_state=error channel=adt-in", the destinations, and the counts. */
void store_describe_reprocess(const store_reprocess_req *req, const store_counts *c, tbuf *out);

#endif
