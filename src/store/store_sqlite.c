/*
 * store_sqlite: the SQLite backend of the store interface (store.h).
 *
 * One database file in WAL mode with synchronous=FULL: a transaction is
 * durable when COMMIT returns (the WAL is fsynced), and readers in other
 * processes (the CLI) never block the writer. Tables:
 *
 *   messages      one row per stored message or revision; raw bytes are
 *                 never updated. Indexed by id (rowid, AUTOINCREMENT so ids
 *                 are never reused after pruning), received_at, channel,
 *                 (control_id, send_fac, received_at), send_fac.
 *   patient_keys  (patient_id, message_id) of every row up to
 *                 key_marks.upto, merged in sorted bulk (merge_patient_keys)
 *                 rather than per insert; searches by patient add the rows
 *                 past the mark by scanning them.
 *   destinations  (channel, name) -> small integer id; rows are never
 *                 deleted, so the per-handle cache of them never goes stale.
 *   deliveries    (message_id, dest_id) -> state, attempts, retry time;
 *                 WITHOUT ROWID. A partial index over the queued rows,
 *                 (dest_id, message_id, next_attempt_at) WHERE state='queued',
 *                 is the queue: store_queue_next is one index range read from
 *                 a cursor, however many rows the table holds. A second
 *                 partial index holds the error queue.
 *   audit         who did what to which messages, and why.
 *
 * The schema version is PRAGMA user_version; MIGRATIONS[v] takes version v to
 * v + 1. Hot statements are prepared once per handle (stmt_get). Destinations
 * are created outside write transactions so that a rollback can never leave
 * an id in the cache that the database does not have.
 */
#include "store/store.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/mem.h"
#include "store/store_blob.h"
#include "store/store_journal.h"

/* --- schema ------------------------------------------------------------------ */

static const char *const MIGRATIONS[] = {
    /* 0 -> 1: the first schema */
    "CREATE TABLE messages("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " channel TEXT NOT NULL,"
    " received_at INTEGER NOT NULL,"
    " state TEXT NOT NULL,"
    " msh9 TEXT, control_id TEXT, send_app TEXT, send_fac TEXT,"
    " recv_app TEXT, recv_fac TEXT, patient_id TEXT,"
    " error TEXT,"
    " revision INTEGER NOT NULL DEFAULT 1,"
    " original_id INTEGER," /* NULL for revision 1 */
    " raw BLOB NOT NULL);"
    "CREATE INDEX messages_received ON messages(received_at);"
    "CREATE INDEX messages_channel ON messages(channel);"
    "CREATE INDEX messages_patient ON messages(patient_id);"
    "CREATE INDEX messages_control ON messages(control_id, send_fac, received_at);"
    "CREATE INDEX messages_send_fac ON messages(send_fac);"
    "CREATE INDEX messages_revisions ON messages(original_id) WHERE original_id IS NOT NULL;"
    "CREATE TABLE destinations("
    " id INTEGER PRIMARY KEY,"
    " channel TEXT NOT NULL,"
    " name TEXT NOT NULL,"
    " UNIQUE(channel, name));"
    "CREATE TABLE deliveries("
    " message_id INTEGER NOT NULL,"
    " dest_id INTEGER NOT NULL,"
    " state TEXT NOT NULL,"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " next_attempt_at INTEGER NOT NULL DEFAULT 0,"
    " last_error TEXT,"
    " updated_at INTEGER NOT NULL,"
    " PRIMARY KEY(message_id, dest_id)) WITHOUT ROWID;"
    "CREATE INDEX deliveries_queued ON deliveries(dest_id, message_id, next_attempt_at)"
    " WHERE state = 'queued';"
    "CREATE INDEX deliveries_error ON deliveries(message_id) WHERE state = 'error';"
    "CREATE TABLE audit("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " at INTEGER NOT NULL,"
    " who TEXT NOT NULL,"
    " why TEXT NOT NULL,"
    " action TEXT NOT NULL,"
    " what TEXT NOT NULL);",
    /* 1 -> 2: business keys a message may hold several of (placer and
     * filler order numbers), one row each, searchable by value */
    "CREATE TABLE message_keys("
    " message_id INTEGER NOT NULL,"
    " kind TEXT NOT NULL,"
    " value TEXT NOT NULL);"
    "CREATE INDEX message_keys_value ON message_keys(kind, value);"
    "CREATE INDEX message_keys_message ON message_keys(message_id);",
    /* 2 -> 3: bodies in the body log (store_blob.h): raw is then X'' and
     * (body_seg, body_off) say where the raw_len bytes are */
    "ALTER TABLE messages ADD COLUMN raw_len INTEGER;"
    "ALTER TABLE messages ADD COLUMN body_seg INTEGER;"
    "ALTER TABLE messages ADD COLUMN body_off INTEGER;"
    "CREATE INDEX messages_body_seg ON messages(body_seg) WHERE body_seg IS NOT NULL;"
    /* how far into the body log the rows go: recovery starts there */
    "CREATE TABLE body_log(id INTEGER PRIMARY KEY CHECK (id = 1), seg INTEGER NOT NULL,"
    " off INTEGER NOT NULL);"
    "INSERT INTO body_log VALUES(1, 1, 0);",
    /* 3 -> 4: data quality counts per channel and hour (store_quality_report) */
    "CREATE TABLE quality(channel TEXT NOT NULL, hour INTEGER NOT NULL,"
    " messages INTEGER NOT NULL, clean INTEGER NOT NULL, warnings INTEGER NOT NULL,"
    " errors INTEGER NOT NULL, PRIMARY KEY(channel, hour)) WITHOUT ROWID;"
    "CREATE TABLE quality_fields(channel TEXT NOT NULL, hour INTEGER NOT NULL,"
    " field INTEGER NOT NULL, applicable INTEGER NOT NULL, present INTEGER NOT NULL,"
    " PRIMARY KEY(channel, hour, field)) WITHOUT ROWID;",
    /* 4 -> 5: which message ids each body segment holds, in place of an
     * index on messages(body_seg) that cost every insert an index update
     * and served only pruning */
    "CREATE TABLE body_segments(seg INTEGER PRIMARY KEY, first_id INTEGER NOT NULL,"
    " last_id INTEGER NOT NULL);"
    "INSERT INTO body_segments SELECT body_seg, min(id), max(id) FROM messages"
    " WHERE body_seg IS NOT NULL GROUP BY body_seg;"
    "DROP INDEX messages_body_seg;",
    /* 5 -> 6: with encryption at rest (store.c, sec/keys.h), the sealed
     * envelope of a row's PHI: the patient id to show (patient_id then
     * holds its keyed hash) and the body's plaintext length */
    "ALTER TABLE messages ADD COLUMN sealed TEXT;",
    /* 6 -> 7: the patient index out of the insert path (merge_patient_keys):
     * patient ids (or their keyed hashes) are random, so an index on them
     * cost every insert about a page of writes; rows past key_marks.upto
     * are found by scanning them instead */
    "CREATE TABLE patient_keys(patient_id TEXT NOT NULL, message_id INTEGER NOT NULL,"
    " PRIMARY KEY(patient_id, message_id)) WITHOUT ROWID;"
    "INSERT INTO patient_keys SELECT patient_id, id FROM messages WHERE patient_id IS NOT NULL"
    " ORDER BY patient_id, id;"
    "CREATE TABLE key_marks(name TEXT PRIMARY KEY, upto INTEGER NOT NULL) WITHOUT ROWID;"
    "INSERT INTO key_marks VALUES('patient', coalesce((SELECT max(id) FROM messages), 0));"
    "DROP INDEX messages_patient;",
};

#define SCHEMA_VERSION ((int)(sizeof MIGRATIONS / sizeof MIGRATIONS[0]))

/* Columns of a store_summary, in read_summary's order. */
#define SUMMARY_COLS                                                                               \
    "m.id, m.channel, m.received_at, m.state, m.msh9, m.control_id, m.send_app, m.send_fac,"       \
    " m.recv_app, m.recv_fac, m.patient_id, m.error, m.revision, coalesce(m.original_id, m.id),"   \
    " coalesce(m.raw_len, length(m.raw)), m.sealed"
#define SUMMARY_NCOLS 16
/* Where the raw bytes are, after the summary columns of ST_GET_MSG. */
#define BODY_COLS "m.raw, m.body_seg, m.body_off"

/* What a delivery may be reset from when no destination is named. */
#define NOT_SUCCEEDED "('error', 'queued')"
#define REQUEUE_SET                                                                                \
    "state = 'queued', attempts = 0, next_attempt_at = ?2, last_error = NULL, updated_at = ?2"
#define NAMED_DEST                                                                                 \
    "dest_id = (SELECT t.id FROM destinations t, messages m"                                       \
    " WHERE m.id = ?1 AND t.channel = m.channel AND t.name = ?3)"

enum stmt_id {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_DEST_FIND,
    ST_DEST_ADD,
    ST_PUT_MSG,
    ST_PUT_MSGS,
    ST_PUT_DLV,
    ST_DUP,
    ST_QUEUE_NEXT,
    ST_QUEUE_COUNT,
    ST_MARK_SENT,
    ST_MARK_RETRY,
    ST_MARK_FAILED,
    ST_GET_MSG,
    ST_GET_DLV,
    ST_RP_COUNT_DEFAULT,
    ST_RP_COUNT_NAMED,
    ST_RP_DEFAULT,
    ST_RP_NAMED,
    ST_EDIT_ORIG,
    ST_EDIT_PUT,
    ST_EDIT_MOVE_DEFAULT,
    ST_EDIT_MOVE_NAMED,
    ST_EDIT_SUPERSEDE,
    ST_PRUNE_SELECT,
    ST_PRUNE_COUNT,
    ST_PRUNE_DLV,
    ST_PRUNE_MSG,
    ST_PUT_KEY,
    ST_PRUNE_KEYS,
    ST_PRUNE_PATIENT,
    ST_PK_UPTO,
    ST_PK_MERGE,
    ST_PK_MARK,
    ST_AUDIT_ADD,
    ST_AUDIT_LIST,
    ST_SEG_USED,
    ST_SEG_IDS,
    ST_LOG_GET,
    ST_LOG_SET,
    ST_Q_ADD,
    ST_QF_ADD,
    ST_Q_REPORT,
    ST_QF_REPORT,
    ST_COUNT
};

/* A message row: PUT_MSG_COLS values, bound by bind_row. */
#define PUT_MSG_INSERT                                                                             \
    "INSERT INTO messages(channel, received_at, state, msh9, control_id, send_app, send_fac,"      \
    " recv_app, recv_fac, patient_id, error, raw, raw_len, body_seg, body_off, sealed)"
#define PUT_MSG_COLS 16
/* Rows per multi-row INSERT (ST_PUT_MSGS): one statement for many rows
 * saves SQLite's per-statement work (the AUTOINCREMENT counter is written
 * once per statement) - about a microsecond per row. */
#define PUT_CHUNK 32

static const char *const SQL[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_DEST_FIND] = "SELECT id FROM destinations WHERE channel = ?1 AND name = ?2",
    [ST_DEST_ADD] = "INSERT INTO destinations(channel, name) VALUES(?1, ?2)"
                    " ON CONFLICT DO NOTHING",
    [ST_PUT_MSG] = PUT_MSG_INSERT " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12,"
                   " ?13, ?14, ?15, ?16)",
    /* [ST_PUT_MSGS]: PUT_CHUNK rows at once, built by put_msgs_sql */
    [ST_PUT_DLV] = "INSERT INTO deliveries(message_id, dest_id, state, updated_at, last_error)"
                   " VALUES(?1, ?2, ?3, ?4, ?5)",
    [ST_DUP] = "SELECT id FROM messages WHERE control_id = ?1 AND send_fac IS ?2"
               " AND received_at >= ?3 AND state <> 'rejected' ORDER BY id DESC LIMIT 1",
    [ST_QUEUE_NEXT] = "SELECT d.message_id, d.attempts, d.next_attempt_at, m.received_at, "
                      BODY_COLS ", coalesce(m.raw_len, length(m.raw))"
                      " FROM deliveries d JOIN messages m ON m.id = d.message_id"
                      " WHERE d.dest_id = ?1 AND d.state = 'queued' AND d.message_id > ?2"
                      " AND d.next_attempt_at <= ?3 ORDER BY d.message_id LIMIT ?4",
    [ST_QUEUE_COUNT] = "SELECT count(*) FROM deliveries WHERE dest_id = ?1 AND state = 'queued'",
    [ST_MARK_SENT] = "UPDATE deliveries SET state = 'sent', attempts = attempts + 1,"
                     " last_error = NULL, updated_at = ?1 WHERE message_id = ?2 AND dest_id = ?3",
    [ST_MARK_RETRY] = "UPDATE deliveries SET attempts = attempts + 1, next_attempt_at = ?4,"
                      " last_error = ?5, updated_at = ?1"
                      " WHERE message_id = ?2 AND dest_id = ?3 AND state = 'queued'",
    [ST_MARK_FAILED] = "UPDATE deliveries SET state = 'error', attempts = attempts + 1,"
                       " last_error = ?5, updated_at = ?1"
                       " WHERE message_id = ?2 AND dest_id = ?3 AND state = 'queued'",
    [ST_GET_MSG] = "SELECT " SUMMARY_COLS ", " BODY_COLS " FROM messages m WHERE m.id = ?1",
    [ST_GET_DLV] = "SELECT t.name, d.state, d.attempts, d.next_attempt_at, d.last_error,"
                   " d.updated_at FROM deliveries d JOIN destinations t ON t.id = d.dest_id"
                   " WHERE d.message_id = ?1 ORDER BY d.dest_id",
    [ST_RP_COUNT_DEFAULT] = "SELECT count(*) FROM deliveries WHERE message_id = ?1"
                            " AND state IN " NOT_SUCCEEDED,
    [ST_RP_COUNT_NAMED] = "SELECT count(*) FROM deliveries WHERE message_id = ?1"
                          " AND state <> 'superseded' AND " NAMED_DEST,
    [ST_RP_DEFAULT] = "UPDATE deliveries SET " REQUEUE_SET " WHERE message_id = ?1"
                      " AND state IN " NOT_SUCCEEDED,
    [ST_RP_NAMED] = "UPDATE deliveries SET " REQUEUE_SET " WHERE message_id = ?1"
                    " AND state <> 'superseded' AND " NAMED_DEST,
    [ST_EDIT_ORIG] = "SELECT channel, received_at, coalesce(original_id, id),"
                     " (SELECT max(revision) FROM messages r"
                     "  WHERE r.id = coalesce(m.original_id, m.id)"
                     "  OR r.original_id = coalesce(m.original_id, m.id))"
                     " FROM messages m WHERE id = ?1",
    [ST_EDIT_PUT] = "INSERT INTO messages(channel, received_at, state, msh9, control_id,"
                    " send_app, send_fac, recv_app, recv_fac, patient_id, raw, revision,"
                    " original_id, sealed) VALUES(?1, ?2, 'received', ?3, ?4, ?5, ?6, ?7, ?8,"
                    " ?9, ?10, ?11, ?12, ?13)",
    [ST_EDIT_MOVE_DEFAULT] = "INSERT INTO deliveries(message_id, dest_id, state,"
                             " next_attempt_at, updated_at)"
                             " SELECT ?1, dest_id, 'queued', ?2, ?2 FROM deliveries"
                             " WHERE message_id = ?3 AND state IN " NOT_SUCCEEDED,
    [ST_EDIT_MOVE_NAMED] = "INSERT INTO deliveries(message_id, dest_id, state,"
                           " next_attempt_at, updated_at) VALUES(?1, ?3, 'queued', ?2, ?2)"
                           " ON CONFLICT DO NOTHING",
    [ST_EDIT_SUPERSEDE] = "UPDATE deliveries SET state = 'superseded', updated_at = ?2,"
                          " last_error = 'superseded by message ' || ?1"
                          " WHERE message_id = ?3 AND state IN " NOT_SUCCEEDED
                          " AND dest_id IN (SELECT dest_id FROM deliveries WHERE message_id = ?1)",
    [ST_PRUNE_SELECT] = "SELECT id, received_at, body_seg, body_off, raw_len FROM messages m"
                        " WHERE received_at < ?1 AND (received_at, id) > (?2, ?3)"
                        " AND (?5 IS NULL OR m.channel = ?5)"
                        " AND NOT EXISTS (SELECT 1 FROM deliveries d"
                        "  WHERE d.message_id = m.id AND d.state = 'queued')"
                        " ORDER BY received_at, id LIMIT ?4",
    [ST_PRUNE_COUNT] = "SELECT count(*) FROM messages m WHERE received_at < ?1"
                       " AND (?2 IS NULL OR m.channel = ?2)"
                       " AND NOT EXISTS (SELECT 1 FROM deliveries d"
                       "  WHERE d.message_id = m.id AND d.state = 'queued')",
    [ST_PRUNE_DLV] = "DELETE FROM deliveries WHERE message_id = ?1",
    [ST_PRUNE_MSG] = "DELETE FROM messages WHERE id = ?1",
    [ST_PUT_KEY] = "INSERT INTO message_keys(message_id, kind, value) VALUES(?1, 'order', ?2)",
    [ST_PRUNE_KEYS] = "DELETE FROM message_keys WHERE message_id = ?1",
    [ST_PRUNE_PATIENT] = "DELETE FROM patient_keys WHERE message_id = ?1"
                         " AND patient_id = (SELECT patient_id FROM messages WHERE id = ?1)",
    [ST_PK_UPTO] = "SELECT (SELECT upto FROM key_marks WHERE name = 'patient'),"
                   " (SELECT max(id) FROM messages)",
    [ST_PK_MERGE] = "INSERT INTO patient_keys SELECT patient_id, id FROM messages"
                    " WHERE id > ?1 AND id <= ?2 AND patient_id IS NOT NULL"
                    " ORDER BY patient_id, id",
    [ST_PK_MARK] = "UPDATE key_marks SET upto = ?1 WHERE name = 'patient'",
    [ST_AUDIT_ADD] = "INSERT INTO audit(at, who, why, action, what) VALUES(?1, ?2, ?3, ?4, ?5)",
    [ST_AUDIT_LIST] = "SELECT id, at, who, why, action, what FROM audit ORDER BY id DESC LIMIT ?1",
    [ST_SEG_USED] = "SELECT 1 FROM body_segments s, messages m WHERE s.seg = ?1"
                    " AND m.id BETWEEN s.first_id AND s.last_id AND m.body_seg = ?1 LIMIT 1",
    [ST_SEG_IDS] = "INSERT INTO body_segments VALUES(?1, ?2, ?3) ON CONFLICT(seg) DO UPDATE"
                   " SET first_id = min(first_id, ?2), last_id = max(last_id, ?3)",
    [ST_LOG_GET] = "SELECT seg, off FROM body_log WHERE id = 1",
    [ST_LOG_SET] = "UPDATE body_log SET seg = ?1, off = ?2 WHERE id = 1",
    [ST_Q_ADD] = "INSERT INTO quality VALUES(?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO UPDATE SET"
                 " messages = messages + ?3, clean = clean + ?4, warnings = warnings + ?5,"
                 " errors = errors + ?6",
    [ST_QF_ADD] = "INSERT INTO quality_fields VALUES(?1, ?2, ?3, ?4, ?5) ON CONFLICT DO UPDATE"
                  " SET applicable = applicable + ?4, present = present + ?5",
    [ST_Q_REPORT] = "SELECT channel, sum(messages), sum(clean), sum(warnings), sum(errors)"
                    " FROM quality WHERE hour >= ?1 AND (?2 IS NULL OR channel = ?2)"
                    " GROUP BY channel ORDER BY channel",
    [ST_QF_REPORT] = "SELECT field, sum(applicable), sum(present) FROM quality_fields"
                     " WHERE channel = ?1 AND hour >= ?2 GROUP BY field",
};

/* --- the handle ------------------------------------------------------------------- */

typedef struct sq_dest {
    char *channel;
    char *name;
    int64_t id;
} sq_dest;

typedef struct sq_store {
    store base; /* first: a store * is an sq_store * */
    sqlite3 *db;
    char *path;
    sqlite3_stmt *stmt[ST_COUNT]; /* prepared on first use */
    sq_dest *dests;               /* cache of the destinations table */
    size_t n_dests, cap_dests;
    int64_t *scratch; /* dest ids of the batch being stored */
    size_t cap_scratch;
    /* The body log: opened on first use; writes go there only when this
     * handle won its writer lock, else bodies stay in the row (raw). */
    blob_log *blobs;
    enum { BODIES_UNTRIED, BODIES_WRITER, BODIES_INLINE } bodies;
    uint64_t segment_bytes;
    size_t recovered; /* messages recovery brought back (for tests, logs) */
    uint32_t key_merge_rows; /* merge_patient_keys once this many rows wait */
    uint32_t since_merge;    /* rows this handle stored since it last looked */
    struct q_agg *qagg; /* a batch's quality counts per (channel, hour) */
    size_t n_qagg, cap_qagg;
    tbuf body;    /* one body read back */
    /* the items of several logged batches end to end (flatten_logged) */
    store_put *flat_items;
    blob_ref *flat_refs;
    size_t n_flat, cap_flat_items, cap_flat_refs;
} sq_store;

static sq_store *sq(store *s)
{
    assert(s && s->ops == &store_sqlite_ops);
    return (sq_store *)s;
}

static store_status map_rc(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE:
        return STORE_OK;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return STORE_ERR_BUSY;
    case SQLITE_FULL:
        return STORE_ERR_FULL;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return STORE_ERR_CORRUPT;
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
    case SQLITE_READONLY:
    case SQLITE_AUTH:
        return STORE_ERR_IO;
    default:
        return STORE_ERR_BACKEND;
    }
}

/* Fills err with what was being done (fmt), the file, and SQLite's words. */
static store_status sq_fail(sq_store *q, int rc, store_error *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static store_status sq_fail(sq_store *q, int rc, store_error *err, const char *fmt, ...)
{
    char doing[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(doing, sizeof doing, fmt, ap);
    va_end(ap);
    const char *why = q->db ? sqlite3_errmsg(q->db) : sqlite3_errstr(rc);
    return store_fail(err, map_rc(rc), "%s in %s: %s (SQLite code %d)", doing, q->path, why, rc);
}

/* The text of ST_PUT_MSGS: PUT_MSG_INSERT with PUT_CHUNK rows of values. */
static void put_msgs_sql(tbuf *out)
{
    tbuf_puts(out, PUT_MSG_INSERT " VALUES");
    for (int r = 0; r < PUT_CHUNK; r++) {
        tbuf_puts(out, r ? ",(" : "(");
        for (int c = 0; c < PUT_MSG_COLS; c++) tbuf_puts(out, c ? ",?" : "?");
        tbuf_putc(out, ')');
    }
}

static store_status stmt_get(sq_store *q, enum stmt_id id, sqlite3_stmt **out, store_error *err)
{
    *out = NULL;
    if (!q->stmt[id]) {
        tbuf built = TBUF_INIT;
        if (id == ST_PUT_MSGS) put_msgs_sql(&built);
        int rc = sqlite3_prepare_v3(q->db, id == ST_PUT_MSGS ? built.p : SQL[id], -1,
                                    SQLITE_PREPARE_PERSISTENT, &q->stmt[id], NULL);
        tbuf_free(&built);
        if (rc != SQLITE_OK) {
            q->stmt[id] = NULL;
            return sq_fail(q, rc, err, "preparing statement %d", (int)id);
        }
    }
    *out = q->stmt[id];
    return STORE_OK;
}

/* Binds text, or NULL for NULL and "": absent header fields are stored NULL. */
static void bind_opt(sqlite3_stmt *st, int i, const char *s)
{
    if (s && *s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

static void bind_str(sqlite3_stmt *st, int i, const char *s)
{
    sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
}

/* Runs a statement that returns no rows and resets it; SQLITE_OK or the error. */
static int run(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

static int exec(sq_store *q, const char *sql)
{
    return sqlite3_exec(q->db, sql, NULL, NULL, NULL);
}

/* Runs a one-value query (a PRAGMA, a count) into *out. */
static int query_int(sq_store *q, const char *sql, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(q->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *out = sqlite3_column_int64(st, 0);
            rc = SQLITE_OK;
        } else if (rc == SQLITE_DONE) {
            *out = 0;
            rc = SQLITE_OK;
        }
    }
    sqlite3_finalize(st);
    return rc;
}

static store_status begin(sq_store *q, store_error *err, const char *doing)
{
    sqlite3_stmt *st;
    store_status s = stmt_get(q, ST_BEGIN, &st, err);
    if (s != STORE_OK) return s;
    int rc = run(st);
    return rc == SQLITE_OK ? STORE_OK : sq_fail(q, rc, err, "%s: starting a transaction", doing);
}

static store_status commit(sq_store *q, store_error *err, const char *doing)
{
    sqlite3_stmt *st;
    store_status s = stmt_get(q, ST_COMMIT, &st, err);
    if (s != STORE_OK) return s;
    int rc = run(st);
    return rc == SQLITE_OK ? STORE_OK : sq_fail(q, rc, err, "%s: committing", doing);
}

/* Undoes an open transaction, if any (SQLite rolls back by itself after
 * some errors). Keeps err, which already says what went wrong. */
static void rollback(sq_store *q)
{
    if (sqlite3_get_autocommit(q->db)) return;
    sqlite3_stmt *st;
    store_error ignored;
    if (stmt_get(q, ST_ROLLBACK, &st, &ignored) == STORE_OK) run(st);
}

/* --- destinations -------------------------------------------------------------------- */

/* Reads the id of (channel, name) from the table; 0 when absent. */
static store_status find_dest(sq_store *q, const char *channel, const char *name, int64_t *id,
                              store_error *err)
{
    sqlite3_stmt *st;
    store_status r = stmt_get(q, ST_DEST_FIND, &st, err);
    if (r != STORE_OK) return r;
    bind_str(st, 1, channel);
    bind_str(st, 2, name);
    int rc = sqlite3_step(st);
    *id = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return sq_fail(q, rc, err, "looking up destination %s of channel %s", name, channel);
    return STORE_OK;
}

/* Finds the id of (channel, name): cache, then table; with create, adds it
 * (never inside a transaction, see the top of the file). *id is 0 when it
 * does not exist and create is false. */
static store_status dest_id(sq_store *q, const char *channel, const char *name, bool create,
                            int64_t *id, store_error *err)
{
    for (size_t i = 0; i < q->n_dests; i++) {
        if (strcmp(q->dests[i].name, name) == 0 && strcmp(q->dests[i].channel, channel) == 0) {
            *id = q->dests[i].id;
            return STORE_OK;
        }
    }
    store_status r = find_dest(q, channel, name, id, err);
    if (r == STORE_OK && *id == 0 && create) {
        assert(sqlite3_get_autocommit(q->db));
        sqlite3_stmt *add;
        r = stmt_get(q, ST_DEST_ADD, &add, err);
        if (r != STORE_OK) return r;
        bind_str(add, 1, channel);
        bind_str(add, 2, name);
        int rc = run(add);
        if (rc != SQLITE_OK)
            return sq_fail(q, rc, err, "registering destination %s of channel %s", name, channel);
        r = find_dest(q, channel, name, id, err); /* another process may have won the race */
    }
    if (r == STORE_OK && *id) {
        q->dests = xgrow(q->dests, &q->cap_dests, q->n_dests + 1, sizeof *q->dests);
        q->dests[q->n_dests++] = (sq_dest){xstrdup(channel), xstrdup(name), *id};
    }
    return r;
}

/* --- the body log ------------------------------------------------------------------------ */

/* PATH-bodies, the body log's directory; malloc'ed, caller frees. */
static char *bodies_dir(const sq_store *q)
{
    char *dir = xmalloc(strlen(q->path) + sizeof "-bodies");
    strcpy(dir, q->path);
    strcat(dir, "-bodies");
    return dir;
}

static store_status recover_bodies(sq_store *q, store_error *err);

/* Opens the body log (PATH-bodies) if this handle has not yet: with write,
 * trying to become its writer (once; a handle that cannot keeps its bodies
 * in the rows). The writer first brings back the rows of records the
 * database lost, then stops syncing the database at every commit: the
 * body log's sync makes a batch durable (see the top of the file). */
static store_status blobs_open(sq_store *q, bool write, store_error *err)
{
    if (q->blobs && (!write || q->bodies != BODIES_UNTRIED)) return STORE_OK;
    char *dir = bodies_dir(q);
    blob_close(q->blobs);
    q->blobs = NULL;
    bool writer = false;
    store_status st = blob_open(dir, write, q->segment_bytes, &q->blobs, &writer, err);
    free(dir);
    if (st == STORE_OK && write) q->bodies = writer ? BODIES_WRITER : BODIES_INLINE;
    if (st == STORE_OK && q->bodies == BODIES_WRITER && write) {
        st = recover_bodies(q, err);
        int rc = st == STORE_OK ? exec(q, "PRAGMA synchronous = NORMAL") : SQLITE_OK;
        if (rc != SQLITE_OK) st = sq_fail(q, rc, err, "configuring the store");
        if (st != STORE_OK) q->bodies = BODIES_UNTRIED; /* try again next time */
    }
    return st;
}

/* Reads a body that the row at columns col.. describes (raw, body_seg,
 * body_off; raw_len bytes) into q->body, NUL-terminated. */
static store_status read_body(sq_store *q, sqlite3_stmt *st, int col, size_t raw_len,
                              int64_t id, store_error *err)
{
    tbuf_reset(&q->body);
    if (sqlite3_column_type(st, col + 1) == SQLITE_NULL) {
        const void *raw = sqlite3_column_blob(st, col);
        tbuf_put(&q->body, raw ? raw : "", (size_t)sqlite3_column_bytes(st, col));
        tbuf_grow(&q->body, 0);
        return STORE_OK;
    }
    blob_ref ref = {sqlite3_column_int64(st, col + 1), sqlite3_column_int64(st, col + 2)};
    store_status r = blobs_open(q, false, err);
    if (r == STORE_OK) r = blob_read(q->blobs, ref, raw_len, &q->body, err);
    if (r != STORE_OK) {
        char why[sizeof err->text];
        snprintf(why, sizeof why, "%s", err->text);
        store_fail(err, r, "message %" PRId64 ": %s", id, why);
    }
    return r;
}

/* --- open / close ----------------------------------------------------------------------- */

/* Fsyncs the directory that holds `path`, so that a newly created entry in
 * it survives a power loss like the data behind it. */
static void sync_parent(const char *path)
{
    char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    if (slash) *(slash == dir ? slash + 1 : slash) = '\0';
    int fd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(dir);
}

/* Creates every missing directory above the file `path` (0750: the store
 * holds patient data), each one made durable with sync_parent. */
static store_status make_parent_dirs(const char *path, store_error *err)
{
    char *dir = xstrdup(path);
    store_status st = STORE_OK;
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir) goto done;
    *slash = '\0';
    for (char *p = dir + 1;; p++) {
        bool last = *p == '\0';
        if (*p != '/' && !last) continue;
        *p = '\0';
        if (mkdir(dir, 0750) == 0) {
            sync_parent(dir);
        } else if (errno != EEXIST) {
            st = store_fail(err, STORE_ERR_IO, "creating directory %s for the store: %s", dir,
                            strerror(errno));
            goto done;
        }
        if (last) break;
        *p = '/';
    }
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        st = store_fail(err, STORE_ERR_IO, "store directory %s is not a directory", dir);
done:
    free(dir);
    return st;
}

/* Brings the schema to SCHEMA_VERSION under a write lock, so two processes
 * opening a new store at once do not both create it. */
static store_status migrate(sq_store *q, store_error *err)
{
    int64_t version = 0, tables = 0;
    int rc = query_int(q, "PRAGMA user_version", &version);
    if (rc != SQLITE_OK) return sq_fail(q, rc, err, "reading the schema version");
    if (version == SCHEMA_VERSION) return STORE_OK;

    store_status st = begin(q, err, "creating the schema");
    if (st != STORE_OK) return st;
    rc = query_int(q, "PRAGMA user_version", &version);
    if (rc == SQLITE_OK)
        rc = query_int(q, "SELECT count(*) FROM sqlite_schema WHERE type = 'table'", &tables);
    if (rc != SQLITE_OK) {
        st = sq_fail(q, rc, err, "reading the schema version");
        goto fail;
    }
    if (version > SCHEMA_VERSION) {
        st = store_fail(err, STORE_ERR_SCHEMA,
                        "%s has schema version %" PRId64 " but this Tern knows only up to %d; "
                        "upgrade Tern",
                        q->path, version, SCHEMA_VERSION);
        goto fail;
    }
    if (version == 0 && tables > 0) {
        st = store_fail(err, STORE_ERR_CORRUPT,
                        "%s is an SQLite database but not a Tern store; choose another path",
                        q->path);
        goto fail;
    }
    for (; version < SCHEMA_VERSION; version++) {
        char sql[64];
        rc = exec(q, MIGRATIONS[version]);
        snprintf(sql, sizeof sql, "PRAGMA user_version = %" PRId64, version + 1);
        if (rc == SQLITE_OK) rc = exec(q, sql);
        if (rc != SQLITE_OK) {
            st = sq_fail(q, rc, err, "migrating the schema to version %" PRId64, version + 1);
            goto fail;
        }
    }
    return commit(q, err, "creating the schema");
fail:
    rollback(q);
    return st;
}

static void sq_close(store *s);

#define CATCH_UP_MS 2000

/* Read-your-writes across processes: a running engine writes rows a few
 * milliseconds after it acknowledged their messages (store_log_batch,
 * store_index_batches). A handle opened while a writer runs waits, up to
 * CATCH_UP_MS, until the rows cover what the writer had logged by then, so
 * that `tern messages` after `tern send` sees every acknowledged message. */
static void catch_up(sq_store *q)
{
    char *dir = bodies_dir(q);
    blob_ref want;
    bool wait = blob_published(dir, &want);
    free(dir);
    sqlite3_stmt *st;
    store_error err;
    for (int ms = 0; wait && ms < CATCH_UP_MS; ms += 2) {
        if (stmt_get(q, ST_LOG_GET, &st, &err) != STORE_OK) return;
        bool behind = false;
        if (sqlite3_step(st) == SQLITE_ROW) {
            int64_t seg = sqlite3_column_int64(st, 0), off = sqlite3_column_int64(st, 1);
            behind = seg < want.seg || (seg == want.seg && off < want.off);
        }
        sqlite3_reset(st);
        if (!behind) return;
        struct timespec ts = {0, 2000000L};
        nanosleep(&ts, NULL);
    }
}

static store_status sq_open(const char *path, const store_options *opt, store **out,
                            store_error *err)
{
    sq_store *q = xcalloc(1, sizeof *q);
    q->base.ops = &store_sqlite_ops;
    q->path = xstrdup(path);
    q->segment_bytes = opt->segment_bytes;
    q->key_merge_rows = opt->key_merge_rows ? opt->key_merge_rows : STORE_KEY_MERGE_ROWS;
    q->since_merge = q->key_merge_rows; /* look at the first batch: rows may wait already */
    store_status st = make_parent_dirs(path, err);
    if (st != STORE_OK) goto fail;

    /* Created here so that it gets owner-only permissions; SQLite gives the
     * -wal and -shm files the same (and syncs the directory for the WAL).
     * An existing file is NOT opened here: closing any descriptor of the
     * database file drops every POSIX lock this process holds on it, those
     * of other SQLite handles included, and another process would then
     * checkpoint and delete the WAL under them (committed data lost). */
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
        sync_parent(path);
        close(fd);
    } else if (errno != EEXIST) {
        st = store_fail(err, STORE_ERR_IO, "creating store file %s: %s", path, strerror(errno));
        goto fail;
    }

    int rc = sqlite3_open_v2(path, &q->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        st = sq_fail(q, rc, err, "opening the store");
        goto fail;
    }
    sqlite3_extended_result_codes(q->db, 1);
    sqlite3_busy_timeout(q->db, opt->busy_timeout_ms);

    /* auto_vacuum only takes effect before the first table is created. */
    rc = exec(q, "PRAGMA auto_vacuum = INCREMENTAL");
    if (rc != SQLITE_OK) {
        st = sq_fail(q, rc, err, "opening the store");
        goto fail;
    }
    sqlite3_stmt *jm = NULL;
    rc = sqlite3_prepare_v2(q->db, "PRAGMA journal_mode = WAL", -1, &jm, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(jm);
    bool wal =
        rc == SQLITE_ROW && sqlite3_stricmp((const char *)sqlite3_column_text(jm, 0), "wal") == 0;
    sqlite3_finalize(jm);
    if (rc != SQLITE_ROW) {
        st = sq_fail(q, rc, err, "switching the store to WAL mode");
        goto fail;
    }
    if (!wal) {
        st = store_fail(err, STORE_ERR_IO,
                        "%s: the file system does not support WAL mode (shared memory); put "
                        "the store on a local disk",
                        path);
        goto fail;
    }
    /* FULL: fsync the WAL at every commit, so a committed batch survives
     * power loss, not only a crash of the process. */
    rc = exec(q, "PRAGMA synchronous = FULL;"
                 "PRAGMA cache_size = -32768;"
                 "PRAGMA journal_size_limit = 67108864;"
                 "PRAGMA temp_store = MEMORY");
    /* Large checkpoints: pages that many batches touch (the random-keyed
     * indexes) are then copied to the main file once, not once per batch. */
    if (rc == SQLITE_OK)
        rc = sqlite3_wal_autocheckpoint(q->db,
                                        opt->checkpoint_pages > 0 ? opt->checkpoint_pages : 0);
    if (rc != SQLITE_OK) {
        st = sq_fail(q, rc, err, "configuring the store");
        goto fail;
    }
    st = migrate(q, err);
    if (st == STORE_OK && opt->writer) st = blobs_open(q, true, err);
    if (st != STORE_OK) goto fail;
    if (!opt->writer) catch_up(q);
    *out = &q->base;
    return STORE_OK;
fail:
    sq_close(&q->base);
    return st;
}

static void sq_close(store *s)
{
    sq_store *q = sq(s);
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(q->stmt[i]);
    sqlite3_close(q->db);
    for (size_t i = 0; i < q->n_dests; i++) {
        free(q->dests[i].channel);
        free(q->dests[i].name);
    }
    free(q->dests);
    free(q->scratch);
    blob_close(q->blobs);
    free(q->qagg);
    free(q->flat_items);
    free(q->flat_refs);
    tbuf_free(&q->body);
    free(q->path);
    free(q);
}

static store_status sq_checkpoint(store *s, store_error *err)
{
    sq_store *q = sq(s);
    int rc = sqlite3_wal_checkpoint_v2(q->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    return rc == SQLITE_OK ? STORE_OK : sq_fail(q, rc, err, "checkpointing the write-ahead log");
}

/* --- storing received messages ----------------------------------------------------------- */

/* Writes the order numbers of message id (inside the caller's transaction). */
static store_status put_keys(sq_store *q, int64_t id, const store_meta *meta, store_error *err)
{
    if (!meta->n_order_ids) return STORE_OK;
    sqlite3_stmt *st;
    store_status r = stmt_get(q, ST_PUT_KEY, &st, err);
    for (size_t i = 0; r == STORE_OK && i < meta->n_order_ids; i++) {
        if (!meta->order_ids[i] || !*meta->order_ids[i]) continue;
        sqlite3_bind_int64(st, 1, id);
        bind_str(st, 2, meta->order_ids[i]);
        int rc = run(st);
        if (rc != SQLITE_OK) r = sq_fail(q, rc, err, "storing the order numbers of a message");
    }
    return r;
}

/* Binds the row of p (body at body, or in the row when NULL) to msg's
 * parameters base + 1 .. base + PUT_MSG_COLS. */
static void bind_row(sqlite3_stmt *msg, int base, const store_put *p, const blob_ref *body)
{
    bind_str(msg, base + 1, p->channel);
    sqlite3_bind_int64(msg, base + 2, p->received_at);
    bind_str(msg, base + 3, store_msg_state_name(p->state));
    bind_opt(msg, base + 4, p->meta.msh9);
    bind_opt(msg, base + 5, p->meta.control_id);
    bind_opt(msg, base + 6, p->meta.send_app);
    bind_opt(msg, base + 7, p->meta.send_fac);
    bind_opt(msg, base + 8, p->meta.recv_app);
    bind_opt(msg, base + 9, p->meta.recv_fac);
    bind_opt(msg, base + 10, p->meta.patient_id);
    bind_opt(msg, base + 11, p->error);
    if (body) {
        sqlite3_bind_blob64(msg, base + 12, "", 0, SQLITE_STATIC);
        sqlite3_bind_int64(msg, base + 14, body->seg);
        sqlite3_bind_int64(msg, base + 15, body->off);
    } else {
        sqlite3_bind_blob64(msg, base + 12, p->raw_len ? p->raw : "", p->raw_len, SQLITE_STATIC);
        sqlite3_bind_null(msg, base + 14);
        sqlite3_bind_null(msg, base + 15);
    }
    sqlite3_bind_int64(msg, base + 13, (int64_t)p->raw_len);
    bind_opt(msg, base + 16, p->meta.sealed);
}

/* What goes with the row of message id: its order numbers and its
 * deliveries (one per destination, ids in dest_ids). */
static store_status put_extras(sq_store *q, sqlite3_stmt *dlv, const store_put *p, int64_t id,
                               const int64_t *dest_ids, store_error *err)
{
    store_status ks = put_keys(q, id, &p->meta, err);
    if (ks != STORE_OK) return ks;
    for (size_t d = 0; d < p->n_dests; d++) {
        sqlite3_bind_int64(dlv, 1, id);
        sqlite3_bind_int64(dlv, 2, dest_ids[d]);
        bind_str(dlv, 3, store_dlv_state_name(p->dests[d].state));
        sqlite3_bind_int64(dlv, 4, p->received_at);
        bind_opt(dlv, 5, p->dests[d].state == STORE_DLV_ERROR ? p->error : NULL);
        int rc = run(dlv);
        if (rc != SQLITE_OK)
            return sq_fail(q, rc, err, "queueing a message for destination %s", p->dests[d].name);
    }
    return STORE_OK;
}

static store_status put_one(sq_store *q, sqlite3_stmt *msg, sqlite3_stmt *dlv, const store_put *p,
                            const blob_ref *body, const int64_t *dest_ids, int64_t *id,
                            store_error *err)
{
    *id = 0;
    bind_row(msg, 0, p, body);
    int rc = run(msg);
    if (rc != SQLITE_OK) return sq_fail(q, rc, err, "storing a message of channel %s", p->channel);
    *id = sqlite3_last_insert_rowid(q->db);
    return put_extras(q, dlv, p, *id, dest_ids, err);
}

/* PUT_CHUNK rows in one statement (ST_PUT_MSGS). Their ids are
 * consecutive: one statement of the only writer, each row taking the next
 * AUTOINCREMENT id; ids[0..PUT_CHUNK) gets them. */
static store_status put_chunk(sq_store *q, sqlite3_stmt *msgs, sqlite3_stmt *dlv,
                              const store_put *items, const blob_ref *refs, size_t *k,
                              int64_t *ids, store_error *err)
{
    for (int r = 0; r < PUT_CHUNK; r++)
        bind_row(msgs, r * PUT_MSG_COLS, &items[r], refs ? &refs[r] : NULL);
    int rc = run(msgs);
    if (rc != SQLITE_OK)
        return sq_fail(q, rc, err, "storing %d messages of channel %s", PUT_CHUNK,
                       items[0].channel);
    if (sqlite3_changes(q->db) != PUT_CHUNK)
        return store_fail(err, STORE_ERR_BACKEND, "storing %d messages in %s: %d rows written",
                          PUT_CHUNK, q->path, sqlite3_changes(q->db));
    int64_t last = sqlite3_last_insert_rowid(q->db);
    store_status st = STORE_OK;
    for (int r = 0; st == STORE_OK && r < PUT_CHUNK; r++) {
        ids[r] = last - (PUT_CHUNK - 1) + r;
        st = put_extras(q, dlv, &items[r], ids[r], &q->scratch[*k], err);
        *k += items[r].n_dests;
    }
    return st;
}

#define HOUR_MS INT64_C(3600000)

typedef struct q_agg {
    const char *channel; /* borrowed from the batch */
    int64_t hour;
    uint64_t messages, clean, warnings, errors;
    uint64_t applicable[STORE_QF_COUNT], present[STORE_QF_COUNT];
} q_agg;

static void q_count(sq_store *q, const store_put *p)
{
    if (p->quality.outcome == STORE_Q_NONE) return;
    int64_t hour = p->received_at / HOUR_MS * HOUR_MS;
    q_agg *a = NULL;
    for (size_t i = 0; i < q->n_qagg && !a; i++)
        if (q->qagg[i].hour == hour && strcmp(q->qagg[i].channel, p->channel) == 0)
            a = &q->qagg[i];
    if (!a) {
        q->qagg = xgrow(q->qagg, &q->cap_qagg, q->n_qagg + 1, sizeof *q->qagg);
        a = &q->qagg[q->n_qagg++];
        memset(a, 0, sizeof *a);
        a->channel = p->channel;
        a->hour = hour;
    }
    a->messages++;
    a->clean += p->quality.outcome == STORE_Q_CLEAN;
    a->warnings += p->quality.outcome == STORE_Q_WARNINGS;
    a->errors += p->quality.outcome == STORE_Q_ERRORS;
    for (int f = 0; f < STORE_QF_COUNT; f++) {
        a->applicable[f] += (p->quality.applicable >> f) & 1u;
        a->present[f] += (p->quality.applicable & p->quality.present) >> f & 1u;
    }
}

/* Adds the counts gathered in q->qagg (q_count) to the quality tables and
 * empties it: one upsert per channel and hour, however many messages. */
static store_status flush_quality(sq_store *q, store_error *err)
{
    if (!q->n_qagg) return STORE_OK;
    sqlite3_stmt *add, *fadd;
    store_status r = stmt_get(q, ST_Q_ADD, &add, err);
    if (r == STORE_OK) r = stmt_get(q, ST_QF_ADD, &fadd, err);
    int rc = SQLITE_OK;
    for (size_t i = 0; r == STORE_OK && rc == SQLITE_OK && i < q->n_qagg; i++) {
        const q_agg *a = &q->qagg[i];
        bind_str(add, 1, a->channel);
        sqlite3_bind_int64(add, 2, a->hour);
        sqlite3_bind_int64(add, 3, (int64_t)a->messages);
        sqlite3_bind_int64(add, 4, (int64_t)a->clean);
        sqlite3_bind_int64(add, 5, (int64_t)a->warnings);
        sqlite3_bind_int64(add, 6, (int64_t)a->errors);
        rc = run(add);
        for (int f = 0; rc == SQLITE_OK && f < STORE_QF_COUNT; f++) {
            if (!a->applicable[f]) continue;
            bind_str(fadd, 1, a->channel);
            sqlite3_bind_int64(fadd, 2, a->hour);
            sqlite3_bind_int(fadd, 3, f);
            sqlite3_bind_int64(fadd, 4, (int64_t)a->applicable[f]);
            sqlite3_bind_int64(fadd, 5, (int64_t)a->present[f]);
            rc = run(fadd);
        }
    }
    if (r == STORE_OK && rc != SQLITE_OK) r = sq_fail(q, rc, err, "counting data quality");
    q->n_qagg = 0;
    return r;
}

/* Adds the quality counts of items[0..n) inside the caller's transaction. */
static store_status put_quality(sq_store *q, const store_put *items, size_t n, store_error *err)
{
    q->n_qagg = 0;
    for (size_t i = 0; i < n; i++)
        q_count(q, &items[i]);
    return flush_quality(q, err);
}

static store_status sq_quality_report(store *s, const char *channel, int64_t since,
                                      store_quality_fn fn, void *ctx, store_error *err)
{
    sq_store *q = sq(s);
    sqlite3_stmt *st, *fst;
    store_status r = stmt_get(q, ST_Q_REPORT, &st, err);
    if (r == STORE_OK) r = stmt_get(q, ST_QF_REPORT, &fst, err);
    if (r != STORE_OK) return r;
    int64_t hour = since / HOUR_MS * HOUR_MS;
    sqlite3_bind_int64(st, 1, hour);
    bind_opt(st, 2, channel);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        store_quality_row row = {
            .channel = (const char *)sqlite3_column_text(st, 0),
            .messages = (uint64_t)sqlite3_column_int64(st, 1),
            .clean = (uint64_t)sqlite3_column_int64(st, 2),
            .warnings = (uint64_t)sqlite3_column_int64(st, 3),
            .errors = (uint64_t)sqlite3_column_int64(st, 4),
        };
        bind_str(fst, 1, row.channel);
        sqlite3_bind_int64(fst, 2, hour);
        int frc;
        while ((frc = sqlite3_step(fst)) == SQLITE_ROW) {
            int f = sqlite3_column_int(fst, 0);
            if (f < 0 || f >= STORE_QF_COUNT) continue;
            row.applicable[f] = (uint64_t)sqlite3_column_int64(fst, 1);
            row.present[f] = (uint64_t)sqlite3_column_int64(fst, 2);
        }
        sqlite3_reset(fst);
        if (frc != SQLITE_DONE) {
            rc = frc;
            break;
        }
        if (!fn(ctx, &row)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? STORE_OK : sq_fail(q, rc, err, "reading the data quality counts");
}

/* Records, inside the caller's transaction, that segment seg holds bodies
 * of messages first..last (what pruning reads instead of an index). */
static store_status note_segment(sq_store *q, int64_t seg, int64_t first, int64_t last,
                                 store_error *err)
{
    sqlite3_stmt *st;
    store_status r = stmt_get(q, ST_SEG_IDS, &st, err);
    if (r != STORE_OK) return r;
    sqlite3_bind_int64(st, 1, seg);
    sqlite3_bind_int64(st, 2, first);
    sqlite3_bind_int64(st, 3, last);
    int rc = run(st);
    return rc == SQLITE_OK ? STORE_OK : sq_fail(q, rc, err, "recording a body segment's ids");
}

/* Records, inside the caller's transaction, that the rows now cover the
 * body log up to end. */
static store_status set_log_end(sq_store *q, blob_ref end, store_error *err)
{
    sqlite3_stmt *st;
    store_status r = stmt_get(q, ST_LOG_SET, &st, err);
    if (r != STORE_OK) return r;
    sqlite3_bind_int64(st, 1, end.seg);
    sqlite3_bind_int64(st, 2, end.off);
    int rc = run(st);
    return rc == SQLITE_OK ? STORE_OK : sq_fail(q, rc, err, "recording the end of the body log");
}

typedef struct recovery {
    sq_store *q;
    journal_scratch sc;
    size_t n;
} recovery;

/* blob_record_fn: stores one record the database lost, with its own
 * transaction (recovery is rare and short). */
static store_status recover_record(void *ctx, blob_ref at, blob_ref next, const void *body,
                                   size_t len, const void *meta, size_t meta_len,
                                   store_error *err)
{
    recovery *rc = ctx;
    sq_store *q = rc->q;
    store_put p;
    if (!journal_decode(meta, meta_len, &p, &rc->sc))
        return store_fail(err, STORE_ERR_CORRUPT,
                          "the body log record at offset %" PRId64 " of segment %08" PRId64
                          " has unreadable metadata",
                          at.off, at.seg);
    p.raw = body;
    p.raw_len = len;
    q->scratch = xgrow(q->scratch, &q->cap_scratch, p.n_dests + 1, sizeof *q->scratch);
    sqlite3_stmt *msg, *dlv;
    store_status st = stmt_get(q, ST_PUT_MSG, &msg, err);
    if (st == STORE_OK) st = stmt_get(q, ST_PUT_DLV, &dlv, err);
    for (size_t d = 0; st == STORE_OK && d < p.n_dests; d++)
        st = dest_id(q, p.channel, p.dests[d].name, true, &q->scratch[d], err);
    if (st == STORE_OK) st = begin(q, err, "recovering a message from the body log");
    if (st != STORE_OK) return st;
    int64_t id;
    st = put_one(q, msg, dlv, &p, &at, q->scratch, &id, err);
    if (st == STORE_OK) st = note_segment(q, at.seg, id, id, err);
    if (st == STORE_OK) st = put_quality(q, &p, 1, err);
    if (st == STORE_OK) st = set_log_end(q, next, err);
    if (st == STORE_OK) st = commit(q, err, "recovering a message from the body log");
    if (st != STORE_OK) rollback(q);
    rc->n += st == STORE_OK;
    return st;
}

/* Writer: stores the messages of every body log record past the end the
 * rows cover (the commits a power loss took from the database). */
static store_status recover_bodies(sq_store *q, store_error *err)
{
    sqlite3_stmt *st;
    store_status r = stmt_get(q, ST_LOG_GET, &st, err);
    if (r != STORE_OK) return r;
    int rc = sqlite3_step(st);
    blob_ref from = {1, 0};
    if (rc == SQLITE_ROW) from = (blob_ref){sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1)};
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return sq_fail(q, rc, err, "reading the end of the body log");
    recovery ctx = {q, {0}, 0};
    r = blob_recover(q->blobs, from, recover_record, &ctx, err);
    journal_scratch_free(&ctx.sc);
    q->recovered = ctx.n;
    return r;
}

/* Appends the bodies of items[0..n) with their journal records (what
 * rebuilds their rows) to the body log; refs[i] says where item i went. Not
 * yet durable: blob_sync. Uses no scratch of the handle, so it may run on
 * the logging thread (store_log_batch). */
static store_status append_bodies(sq_store *q, const store_put *items, size_t n, blob_ref *refs,
                                  store_error *err)
{
    tbuf journal = TBUF_INIT;
    size_t *offs = xmalloc((n + 1) * sizeof *offs);
    blob_body *bodies = xmalloc((n ? n : 1) * sizeof *bodies);
    for (size_t i = 0; i < n; i++) {
        offs[i] = journal.len;
        journal_encode(&items[i], &journal);
    }
    offs[n] = journal.len;
    for (size_t i = 0; i < n; i++)
        bodies[i] = (blob_body){items[i].raw, items[i].raw_len, journal.p + offs[i],
                                offs[i + 1] - offs[i]};
    store_status st = blob_append(q->blobs, bodies, n, refs, err);
    free(bodies);
    free(offs);
    tbuf_free(&journal);
    return st;
}

/* The ids of every destination of items[0..n), created as needed, from
 * q->scratch[*k] on (outside any transaction, see the top of the file). */
static store_status dest_ids(sq_store *q, const store_put *items, size_t n, size_t *k,
                             store_error *err)
{
    store_status st = STORE_OK;
    for (size_t i = 0; st == STORE_OK && i < n; i++)
        for (size_t d = 0; st == STORE_OK && d < items[i].n_dests; d++)
            st = dest_id(q, items[i].channel, items[i].dests[d].name, true, &q->scratch[(*k)++],
                         err);
    return st;
}

/* The patient index, merged in bulk. Rows reach patient_keys not one by
 * one but key_merge_rows at a time, sorted, in the transaction of the
 * batch that crosses the mark: every page of the index is then written
 * once per merge instead of about once per message. Searches read
 * patient_keys and scan the rows past key_marks.upto (at most about
 * key_merge_rows, recent, in id order: milliseconds). */
static store_status merge_patient_keys(sq_store *q, size_t added, store_error *err)
{
    q->since_merge += (uint32_t)added;
    if (q->since_merge < q->key_merge_rows) return STORE_OK;
    sqlite3_stmt *st;
    store_status r = stmt_get(q, ST_PK_UPTO, &st, err);
    if (r != STORE_OK) return r;
    int rc = sqlite3_step(st);
    int64_t upto = sqlite3_column_int64(st, 0), last = sqlite3_column_int64(st, 1);
    sqlite3_reset(st);
    if (rc != SQLITE_ROW) return sq_fail(q, rc, err, "reading the patient index mark");
    if (last - upto < (int64_t)q->key_merge_rows) { /* others merged meanwhile */
        q->since_merge = (uint32_t)(last - upto);
        return STORE_OK;
    }
    sqlite3_stmt *merge, *mark;
    r = stmt_get(q, ST_PK_MERGE, &merge, err);
    if (r == STORE_OK) r = stmt_get(q, ST_PK_MARK, &mark, err);
    if (r != STORE_OK) return r;
    sqlite3_bind_int64(merge, 1, upto);
    sqlite3_bind_int64(merge, 2, last);
    rc = run(merge);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(mark, 1, last);
        rc = run(mark);
    }
    if (rc != SQLITE_OK) return sq_fail(q, rc, err, "merging the patient index");
    q->since_merge = 0;
    return STORE_OK;
}

/* Inside the caller's transaction: the rows of items[0..n) (bodies at
 * refs, or in the rows when refs is NULL), the destination ids from
 * q->scratch[*k] on and the segment they fill; their quality counts go to
 * q->qagg, for the caller's flush_quality. ids_out (may be NULL) gets
 * their ids. */
static store_status put_rows(sq_store *q, const store_put *items, size_t n, const blob_ref *refs,
                             size_t *k, int64_t *ids_out, store_error *err)
{
    sqlite3_stmt *msg, *msgs = NULL, *dlv;
    store_status st = stmt_get(q, ST_PUT_MSG, &msg, err);
    if (st == STORE_OK) st = stmt_get(q, ST_PUT_DLV, &dlv, err);
    if (st == STORE_OK && n >= PUT_CHUNK) st = stmt_get(q, ST_PUT_MSGS, &msgs, err);
    int64_t first = 0, last = 0; /* ids of the rows of segment refs[run] */
    size_t run = 0;
    for (size_t i = 0; st == STORE_OK && i < n;) {
        int64_t ids[PUT_CHUNK];
        size_t m = n - i >= PUT_CHUNK ? PUT_CHUNK : 1;
        if (m == PUT_CHUNK) {
            st = put_chunk(q, msgs, dlv, items + i, refs ? refs + i : NULL, k, ids, err);
        } else {
            st = put_one(q, msg, dlv, &items[i], refs ? &refs[i] : NULL, &q->scratch[*k], ids,
                         err);
            *k += items[i].n_dests;
        }
        for (size_t r = 0; st == STORE_OK && r < m; r++) {
            if (ids_out) ids_out[i + r] = ids[r];
            /* the items may come from several batches, so from two
             * segments (one batch never spans two, store_blob.h) */
            if (refs && refs[i + r].seg != refs[run].seg) {
                st = note_segment(q, refs[run].seg, first, last, err);
                run = i + r;
                first = 0;
            }
            if (!first) first = ids[r];
            last = ids[r];
        }
        i += m;
    }
    if (st == STORE_OK && refs && n) st = note_segment(q, refs[run].seg, first, last, err);
    if (st == STORE_OK) st = merge_patient_keys(q, n, err);
    if (st == STORE_OK)
        for (size_t i = 0; i < n; i++) q_count(q, &items[i]);
    return st;
}

static store_status sq_put_batch(store *s, const store_put *items, size_t n, int64_t *ids_out,
                                 store_error *err)
{
    sq_store *q = sq(s);
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += items[i].n_dests;
    q->scratch = xgrow(q->scratch, &q->cap_scratch, total + 1, sizeof *q->scratch);
    size_t k = 0;
    store_status st = dest_ids(q, items, n, &k, err);
    if (st == STORE_OK) st = blobs_open(q, true, err);
    if (st != STORE_OK) return st;

    /* Bodies first (not yet durable), rows next, then one sync of the
     * bodies before the commit makes the rows, which point at them, durable. */
    bool in_log = q->bodies == BODIES_WRITER;
    blob_ref *refs = in_log ? xmalloc((n ? n : 1) * sizeof *refs) : NULL;
    if (in_log) {
        st = append_bodies(q, items, n, refs, err);
        if (st != STORE_OK) {
            free(refs);
            return st;
        }
        blob_sync_start(q->blobs); /* the flush overlaps with the inserts below */
    }
    char doing[64];
    snprintf(doing, sizeof doing, "storing a batch of %zu messages", n);
    st = begin(q, err, doing);
    k = 0;
    q->n_qagg = 0;
    if (st == STORE_OK) st = put_rows(q, items, n, refs, &k, ids_out, err);
    if (st == STORE_OK) st = flush_quality(q, err);
    if (st == STORE_OK && in_log) st = set_log_end(q, blob_end(q->blobs), err);
    if (st == STORE_OK && in_log) st = blob_sync(q->blobs, err);
    if (st == STORE_OK) st = commit(q, err, doing);
    free(refs);
    if (st == STORE_OK) return STORE_OK;
    rollback(q);
    if (in_log) blob_rollback(q->blobs);
    return st;
}

/* --- two-phase storing (store_log_batch, store_index_batches) ----------------------------- */

/* Where a logged batch's bodies are: refs[i] for item i; end, the log's end
 * right after them (what the rows record once they are indexed). */
typedef struct sq_logged {
    blob_ref *refs;
    blob_ref end;
} sq_logged;

/* Runs on the logging thread: touches only the body log, never the
 * database or the handle's other scratch (store.h). */
static store_status sq_log_batch(store *s, store_logged *b, store_error *err)
{
    sq_store *q = sq(s);
    b->durable = false;
    if (q->bodies != BODIES_WRITER) return STORE_OK; /* bodies go into the rows */
    sq_logged *lg = xcalloc(1, sizeof *lg);
    lg->refs = xmalloc(b->n * sizeof *lg->refs);
    store_status st = append_bodies(q, b->items, b->n, lg->refs, err);
    if (st == STORE_OK) {
        st = blob_sync(q->blobs, err);
        if (st != STORE_OK) blob_rollback(q->blobs);
    }
    if (st != STORE_OK) {
        free(lg->refs);
        free(lg);
        return st;
    }
    lg->end = blob_end(q->blobs);
    blob_publish(q->blobs);
    b->backend = lg;
    b->durable = true;
    return STORE_OK;
}

static void sq_logged_free(store *s, store_logged *b)
{
    (void)s;
    sq_logged *lg = b->backend;
    free(lg->refs);
    free(lg);
    b->backend = NULL;
}

/* Copies the items and body refs of batches bs[0..nb) end to end into
 * q->flat_items and q->flat_refs, when every batch has its bodies in the
 * log (else false: the caller stores batch by batch). */
static bool flatten_logged(sq_store *q, store_logged *const *bs, size_t nb)
{
    size_t total = 0;
    for (size_t b = 0; b < nb; b++) {
        if (!bs[b]->backend) return false;
        total += bs[b]->n;
    }
    q->flat_items = xgrow(q->flat_items, &q->cap_flat_items, total, sizeof *q->flat_items);
    q->flat_refs = xgrow(q->flat_refs, &q->cap_flat_refs, total, sizeof *q->flat_refs);
    q->n_flat = 0;
    for (size_t b = 0; b < nb; b++) {
        const sq_logged *lg = bs[b]->backend;
        memcpy(q->flat_items + q->n_flat, bs[b]->items, bs[b]->n * sizeof *q->flat_items);
        memcpy(q->flat_refs + q->n_flat, lg->refs, bs[b]->n * sizeof *q->flat_refs);
        q->n_flat += bs[b]->n;
    }
    return true;
}

/* The rows of logged batches, in one transaction; the body log is never
 * rolled back here: what it holds is durable and acknowledged. */
static store_status sq_index_batches(store *s, store_logged *const *bs, size_t nb,
                                     store_error *err)
{
    sq_store *q = sq(s);
    size_t total = 0;
    for (size_t b = 0; b < nb; b++)
        for (size_t i = 0; i < bs[b]->n; i++) total += bs[b]->items[i].n_dests;
    q->scratch = xgrow(q->scratch, &q->cap_scratch, total + 1, sizeof *q->scratch);
    size_t k = 0;
    store_status st = STORE_OK;
    for (size_t b = 0; st == STORE_OK && b < nb; b++)
        st = dest_ids(q, bs[b]->items, bs[b]->n, &k, err);
    if (st != STORE_OK) return st;
    char doing[64];
    snprintf(doing, sizeof doing, "storing the rows of %zu logged batches", nb);
    st = begin(q, err, doing);
    k = 0;
    const sq_logged *last = NULL;
    q->n_qagg = 0; /* quality counts of all the batches, added once */
    if (st == STORE_OK && nb > 1 && flatten_logged(q, bs, nb)) {
        /* as one run of rows: multi-row statements across batch ends */
        st = put_rows(q, q->flat_items, q->n_flat, q->flat_refs, &k, NULL, err);
        last = bs[nb - 1]->backend;
    } else {
        for (size_t b = 0; st == STORE_OK && b < nb; b++) {
            const sq_logged *lg = bs[b]->backend;
            st = put_rows(q, bs[b]->items, bs[b]->n, lg ? lg->refs : NULL, &k, NULL, err);
            if (lg) last = lg;
        }
    }
    if (st == STORE_OK) st = flush_quality(q, err);
    if (st == STORE_OK && last) st = set_log_end(q, last->end, err);
    if (st == STORE_OK) st = commit(q, err, doing);
    if (st != STORE_OK) rollback(q);
    return st;
}

static store_status sq_find_duplicate(store *s, const char *send_fac, const char *control_id,
                                      int64_t since, int64_t *id_out, store_error *err)
{
    sq_store *q = sq(s);
    sqlite3_stmt *st;
    store_status r = stmt_get(q, ST_DUP, &st, err);
    if (r != STORE_OK) return r;
    bind_str(st, 1, control_id);
    bind_opt(st, 2, send_fac);
    sqlite3_bind_int64(st, 3, since);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) *id_out = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return sq_fail(q, rc, err, "looking for duplicates of control id %s", control_id);
    return STORE_OK;
}

/* --- queues ------------------------------------------------------------------------------- */

static store_status sq_queue_next(store *s, const char *channel, const char *dest, int64_t after_id,
                                  int64_t now, size_t max, store_queue_batch *out, store_error *err)
{
    sq_store *q = sq(s);
    int64_t did;
    sqlite3_stmt *st;
    store_status r = dest_id(q, channel, dest, false, &did, err);
    if (r != STORE_OK || did == 0) return r;
    r = stmt_get(q, ST_QUEUE_NEXT, &st, err);
    if (r != STORE_OK) return r;
    sqlite3_bind_int64(st, 1, did);
    sqlite3_bind_int64(st, 2, after_id);
    sqlite3_bind_int64(st, 3, now);
    sqlite3_bind_int64(st, 4, max > INT64_MAX ? INT64_MAX : (int64_t)max);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        out->items = xgrow(out->items, &out->cap, out->n + 1, sizeof *out->items);
        store_queue_item *it = &out->items[out->n++];
        it->message_id = sqlite3_column_int64(st, 0);
        it->attempts = sqlite3_column_int(st, 1);
        it->next_attempt_at = sqlite3_column_int64(st, 2);
        it->received_at = sqlite3_column_int64(st, 3);
        it->raw_len = (size_t)sqlite3_column_int64(st, 7);
        r = read_body(q, st, 4, it->raw_len, it->message_id, err);
        if (r != STORE_OK) break;
        tbuf_put(&out->raw, q->body.p, it->raw_len);
    }
    sqlite3_reset(st);
    if (r != STORE_OK) {
        out->n = 0;
        return r;
    }
    if (rc != SQLITE_DONE) {
        out->n = 0;
        return sq_fail(q, rc, err, "reading the queue of %s/%s", channel, dest);
    }
    /* The bytes are laid out back to back; point at them now that the
     * buffer has stopped moving. */
    size_t off = 0;
    for (size_t i = 0; i < out->n; i++) {
        out->items[i].raw = out->raw.p ? out->raw.p + off : "";
        off += out->items[i].raw_len;
    }
    return STORE_OK;
}

static store_status sq_queue_count(store *s, const char *channel, const char *dest,
                                   uint64_t *count_out, store_error *err)
{
    sq_store *q = sq(s);
    int64_t did;
    sqlite3_stmt *st;
    store_status r = dest_id(q, channel, dest, false, &did, err);
    if (r != STORE_OK || did == 0) return r;
    r = stmt_get(q, ST_QUEUE_COUNT, &st, err);
    if (r != STORE_OK) return r;
    sqlite3_bind_int64(st, 1, did);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) *count_out = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    if (rc != SQLITE_ROW) return sq_fail(q, rc, err, "counting the queue of %s/%s", channel, dest);
    return STORE_OK;
}

static store_status sq_mark_batch(store *s, const store_mark *marks, size_t n, int64_t now,
                                  store_error *err)
{
    static const enum stmt_id BY_OUTCOME[] = {
        [STORE_SENT] = ST_MARK_SENT,
        [STORE_RETRY] = ST_MARK_RETRY,
        [STORE_FAILED] = ST_MARK_FAILED,
    };
    sq_store *q = sq(s);
    char doing[64];
    snprintf(doing, sizeof doing, "recording %zu delivery outcomes", n);
    store_status st = begin(q, err, doing);
    if (st != STORE_OK) return st;
    for (size_t i = 0; i < n; i++) {
        const store_mark *m = &marks[i];
        int64_t did;
        sqlite3_stmt *up;
        st = dest_id(q, m->channel, m->dest, false, &did, err);
        if (st != STORE_OK) goto fail;
        if (did == 0) continue;
        st = stmt_get(q, BY_OUTCOME[m->outcome], &up, err);
        if (st != STORE_OK) goto fail;
        sqlite3_bind_int64(up, 1, now);
        sqlite3_bind_int64(up, 2, m->message_id);
        sqlite3_bind_int64(up, 3, did);
        if (m->outcome != STORE_SENT) {
            sqlite3_bind_int64(up, 4, m->next_attempt_at);
            bind_opt(up, 5, m->error);
        }
        int rc = run(up);
        if (rc != SQLITE_OK) {
            st = sq_fail(q, rc, err, "recording the outcome for message %" PRId64 " to %s",
                         m->message_id, m->dest);
            goto fail;
        }
    }
    st = commit(q, err, doing);
    if (st != STORE_OK) goto fail;
    return STORE_OK;
fail:
    rollback(q);
    return st;
}

/* --- list / get ------------------------------------------------------------------------------ */

/* Fills sum from a row of SUMMARY_COLS; strings are borrowed from the row. */
static void read_summary(sqlite3_stmt *st, store_summary *sum)
{
    sum->id = sqlite3_column_int64(st, 0);
    sum->channel = (const char *)sqlite3_column_text(st, 1);
    sum->received_at = sqlite3_column_int64(st, 2);
    sum->state = store_msg_state_from_name((const char *)sqlite3_column_text(st, 3));
    sum->meta.msh9 = (const char *)sqlite3_column_text(st, 4);
    sum->meta.control_id = (const char *)sqlite3_column_text(st, 5);
    sum->meta.send_app = (const char *)sqlite3_column_text(st, 6);
    sum->meta.send_fac = (const char *)sqlite3_column_text(st, 7);
    sum->meta.recv_app = (const char *)sqlite3_column_text(st, 8);
    sum->meta.recv_fac = (const char *)sqlite3_column_text(st, 9);
    sum->meta.patient_id = (const char *)sqlite3_column_text(st, 10);
    sum->error = (const char *)sqlite3_column_text(st, 11);
    sum->revision = sqlite3_column_int(st, 12);
    sum->original_id = sqlite3_column_int64(st, 13);
    sum->raw_len = (size_t)sqlite3_column_int64(st, 14);
    sum->meta.sealed = (const char *)sqlite3_column_text(st, 15);
}

typedef struct sq_bind {
    bool is_text;
    const char *text;
    int64_t num;
} sq_bind;

/* A query built from a filter: SQL text with anonymous parameters and the
 * values to bind to them, in order. */
typedef struct sq_query {
    tbuf sql;
    sq_bind binds[16];
    int n;
} sq_query;

static void q_text(sq_query *b, const char *sql, const char *v)
{
    assert(b->n < (int)(sizeof b->binds / sizeof b->binds[0]));
    tbuf_puts(&b->sql, sql);
    b->binds[b->n++] = (sq_bind){true, v, 0};
}

static void q_int(sq_query *b, const char *sql, int64_t v)
{
    assert(b->n < (int)(sizeof b->binds / sizeof b->binds[0]));
    tbuf_puts(&b->sql, sql);
    b->binds[b->n++] = (sq_bind){false, NULL, v};
}

/* Appends " AND <plus><cond>" binding a text value. */
static void q_cond(sq_query *b, const char *plus, const char *cond, const char *v)
{
    tbuf_printf(&b->sql, " AND %s", plus);
    q_text(b, cond, v);
}

/* Builds the list query. Without statistics SQLite cannot know that a
 * business key is more selective than a channel or a time, so the most
 * selective filter given is picked here to drive the search and the other
 * columns are written as "+col", which no index can serve. */
static void build_list(const store_filter *f, sq_query *b)
{
    enum {
        BY_REVISIONS,
        BY_ORDER,
        BY_CONTROL,
        BY_PATIENT,
        BY_FACILITY,
        BY_DELIVERY,
        BY_ANY
    } by = f->original_id                                                        ? BY_REVISIONS
           : f->order_id                                                         ? BY_ORDER
           : f->control_id                                                       ? BY_CONTROL
           : f->patient_id                                                       ? BY_PATIENT
           : f->send_fac                                                         ? BY_FACILITY
           : f->dlv_state == STORE_DLV_ERROR || f->dlv_state == STORE_DLV_QUEUED ? BY_DELIVERY
                                                                                 : BY_ANY;
    const char *plus = by == BY_ANY ? "" : "+";
    tbuf_puts(&b->sql, "SELECT " SUMMARY_COLS " FROM messages m WHERE 1");
    if (f->original_id) {
        /* revision 1 by rowid, the later ones through messages_revisions */
        q_int(b, " AND (m.id = ?", f->original_id);
        q_int(b, " OR m.original_id = ?)", f->original_id);
    }
    if (f->order_id)
        q_text(b, " AND m.id IN (SELECT message_id FROM message_keys WHERE kind = 'order'"
                  " AND value = ?)",
               f->order_id);
    if (f->control_id) q_cond(b, by == BY_CONTROL ? "" : "+", "m.control_id = ?", f->control_id);
    if (f->send_fac) q_cond(b, by == BY_FACILITY ? "" : "+", "m.send_fac = ?", f->send_fac);
    if (f->patient_id && by == BY_PATIENT) {
        /* the merged index, then the rows past its mark (merge_patient_keys) */
        q_text(b, " AND m.id IN (SELECT message_id FROM patient_keys WHERE patient_id = ?",
               f->patient_id);
        q_text(b, " UNION ALL SELECT id FROM messages WHERE id > (SELECT upto FROM key_marks"
                  " WHERE name = 'patient') AND patient_id = ?)",
               f->patient_id);
    } else if (f->patient_id) {
        q_cond(b, "+", "m.patient_id = ?", f->patient_id);
    }
    if (f->channel) q_cond(b, plus, "m.channel = ?", f->channel);
    if (f->state) q_cond(b, "", "m.state = ?", store_msg_state_name(f->state));
    if (f->msh9 && strchr(f->msh9, '^')) {
        q_cond(b, "", "m.msh9 = ?", f->msh9);
    } else if (f->msh9) {
        /* "ADT" matches "ADT" and every "ADT^..." */
        q_cond(b, "", "(m.msh9 = ?", f->msh9);
        q_int(b, " OR substr(m.msh9, 1, ?)", (int64_t)strlen(f->msh9) + 1);
        q_text(b, " = ? || '^')", f->msh9);
    }
    if (f->since) {
        tbuf_printf(&b->sql, " AND %s", plus);
        q_int(b, "m.received_at >= ?", f->since);
    }
    if (f->before_id) q_int(b, " AND m.id < ?", f->before_id);
    /* The state is a literal so that the partial indexes can serve it. */
    if (by == BY_DELIVERY)
        tbuf_printf(&b->sql, " AND m.id IN (SELECT message_id FROM deliveries WHERE state = '%s')",
                    store_dlv_state_name(f->dlv_state));
    else if (f->dlv_state)
        tbuf_printf(&b->sql,
                    " AND EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id = m.id"
                    " AND d.state = '%s')",
                    store_dlv_state_name(f->dlv_state));
    q_int(b, " ORDER BY m.id DESC LIMIT ?", f->limit ? (int64_t)f->limit : 100);
}

static store_status prepare_query(sq_store *q, sq_query *b, const char *prefix, sqlite3_stmt **out,
                                  store_error *err)
{
    tbuf sql = TBUF_INIT;
    tbuf_puts(&sql, prefix);
    tbuf_put(&sql, b->sql.p, b->sql.len);
    int rc = sqlite3_prepare_v2(q->db, sql.p, (int)sql.len, out, NULL);
    tbuf_free(&sql);
    if (rc != SQLITE_OK) return sq_fail(q, rc, err, "preparing the message search");
    for (int i = 0; i < b->n; i++) {
        if (b->binds[i].is_text)
            bind_str(*out, i + 1, b->binds[i].text);
        else
            sqlite3_bind_int64(*out, i + 1, b->binds[i].num);
    }
    return STORE_OK;
}

static store_status sq_list(store *s, const store_filter *f, store_list_fn fn, void *ctx,
                            store_error *err)
{
    sq_store *q = sq(s);
    sq_query b = {TBUF_INIT, {{0}}, 0};
    sqlite3_stmt *st = NULL;
    build_list(f, &b);
    store_status r = prepare_query(q, &b, "", &st, err);
    if (r != STORE_OK) goto done;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        store_summary sum;
        read_summary(st, &sum);
        if (!fn(ctx, &sum)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    if (rc != SQLITE_DONE) r = sq_fail(q, rc, err, "searching messages");
done:
    sqlite3_finalize(st);
    tbuf_free(&b.sql);
    return r;
}

static store_status sq_list_plan(store *s, const store_filter *f, tbuf *out, store_error *err)
{
    sq_store *q = sq(s);
    sq_query b = {TBUF_INIT, {{0}}, 0};
    sqlite3_stmt *st = NULL;
    build_list(f, &b);
    store_status r = prepare_query(q, &b, "EXPLAIN QUERY PLAN ", &st, err);
    if (r != STORE_OK) goto done;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        tbuf_puts(out, (const char *)sqlite3_column_text(st, 3));
        tbuf_putc(out, '\n');
    }
    if (rc != SQLITE_DONE) r = sq_fail(q, rc, err, "explaining the message search");
done:
    sqlite3_finalize(st);
    tbuf_free(&b.sql);
    return r;
}

static size_t add_column(store_message *m, sqlite3_stmt *st, int col)
{
    const char *s = (const char *)sqlite3_column_text(st, col);
    return store_message_add(m, s, s ? (size_t)sqlite3_column_bytes(st, col) : 0);
}

static store_status sq_get(store *s, int64_t id, store_message *out, store_error *err)
{
    sq_store *q = sq(s);
    sqlite3_stmt *msg, *dlv;
    store_status r = stmt_get(q, ST_GET_MSG, &msg, err);
    if (r == STORE_OK) r = stmt_get(q, ST_GET_DLV, &dlv, err);
    if (r != STORE_OK) return r;

    /* Strings are copied into out's arena first and pointed at at the end,
     * when the arena has stopped growing. */
    size_t refs[SUMMARY_NCOLS + 1] = {0};
    size_t *dlv_refs = NULL, dlv_cap = 0;
    sqlite3_bind_int64(msg, 1, id);
    int rc = sqlite3_step(msg);
    if (rc == SQLITE_ROW) {
        read_summary(msg, &out->sum);
        for (int c = 1; c < 12; c++)
            if (c != 2 && c != 3) refs[c] = add_column(out, msg, c);
        refs[15] = add_column(out, msg, 15); /* sealed */
        r = read_body(q, msg, SUMMARY_NCOLS, out->sum.raw_len, id, err);
        if (r == STORE_OK) refs[SUMMARY_NCOLS] = store_message_add(out, q->body.p, out->sum.raw_len);
    }
    sqlite3_reset(msg);
    if (r != STORE_OK) goto fail;
    if (rc == SQLITE_DONE) {
        r = store_fail(err, STORE_ERR_NOT_FOUND, "message %" PRId64 " does not exist in %s", id,
                       q->path);
        goto fail;
    }
    if (rc != SQLITE_ROW) {
        r = sq_fail(q, rc, err, "reading message %" PRId64, id);
        goto fail;
    }

    sqlite3_bind_int64(dlv, 1, id);
    size_t n = 0, cap = 0;
    while ((rc = sqlite3_step(dlv)) == SQLITE_ROW) {
        out->deliveries = xgrow(out->deliveries, &cap, n + 1, sizeof *out->deliveries);
        dlv_refs = xgrow(dlv_refs, &dlv_cap, 2 * (n + 1), sizeof *dlv_refs);
        store_delivery *d = &out->deliveries[n];
        d->state = store_dlv_state_from_name((const char *)sqlite3_column_text(dlv, 1));
        d->attempts = sqlite3_column_int(dlv, 2);
        d->next_attempt_at = sqlite3_column_int64(dlv, 3);
        d->updated_at = sqlite3_column_int64(dlv, 5);
        dlv_refs[2 * n] = add_column(out, dlv, 0);
        dlv_refs[2 * n + 1] = add_column(out, dlv, 4);
        n++;
    }
    sqlite3_reset(dlv);
    if (rc != SQLITE_DONE) {
        r = sq_fail(q, rc, err, "reading the deliveries of message %" PRId64, id);
        goto fail;
    }
    out->n_deliveries = n;

    store_summary *sum = &out->sum;
    sum->channel = store_message_str(out, refs[1]);
    sum->meta.msh9 = store_message_str(out, refs[4]);
    sum->meta.control_id = store_message_str(out, refs[5]);
    sum->meta.send_app = store_message_str(out, refs[6]);
    sum->meta.send_fac = store_message_str(out, refs[7]);
    sum->meta.recv_app = store_message_str(out, refs[8]);
    sum->meta.recv_fac = store_message_str(out, refs[9]);
    sum->meta.patient_id = store_message_str(out, refs[10]);
    sum->error = store_message_str(out, refs[11]);
    sum->meta.sealed = store_message_str(out, refs[15]);
    out->raw = store_message_str(out, refs[SUMMARY_NCOLS]);
    for (size_t i = 0; i < n; i++) {
        out->deliveries[i].dest = store_message_str(out, dlv_refs[2 * i]);
        out->deliveries[i].last_error = store_message_str(out, dlv_refs[2 * i + 1]);
    }
    free(dlv_refs);
    return STORE_OK;
fail:
    free(dlv_refs);
    store_message_free(out);
    return r;
}

/* --- operator actions ---------------------------------------------------------------------- */

static store_status audit_add(sq_store *q, const store_audit *who, int64_t now, const char *action,
                              const char *what, store_error *err)
{
    sqlite3_stmt *st;
    store_status r = stmt_get(q, ST_AUDIT_ADD, &st, err);
    if (r != STORE_OK) return r;
    sqlite3_bind_int64(st, 1, now);
    bind_str(st, 2, who->who);
    bind_str(st, 3, who->why ? who->why : "");
    bind_str(st, 4, action);
    bind_str(st, 5, what);
    int rc = run(st);
    return rc == SQLITE_OK ? STORE_OK
                           : sq_fail(q, rc, err, "recording the %s in the audit", action);
}

/* Counts (dry run) or requeues the selected deliveries of one message and
 * adds to *c. */
static store_status reprocess_one(sq_store *q, const store_reprocess_req *req, int64_t id,
                                  int64_t now, bool dry_run, store_counts *c, store_error *err)
{
    uint64_t touched = 0;
    size_t rounds = req->n_dests ? req->n_dests : 1;
    for (size_t i = 0; i < rounds; i++) {
        enum stmt_id which = dry_run ? (req->n_dests ? ST_RP_COUNT_NAMED : ST_RP_COUNT_DEFAULT)
                                     : (req->n_dests ? ST_RP_NAMED : ST_RP_DEFAULT);
        sqlite3_stmt *st;
        store_status r = stmt_get(q, which, &st, err);
        if (r != STORE_OK) return r;
        sqlite3_bind_int64(st, 1, id);
        if (!dry_run) sqlite3_bind_int64(st, 2, now);
        if (req->n_dests) bind_str(st, 3, req->dests[i]);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) touched += (uint64_t)sqlite3_column_int64(st, 0);
        if (rc == SQLITE_DONE) touched += (uint64_t)sqlite3_changes(q->db);
        sqlite3_reset(st);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE)
            return sq_fail(q, rc, err, "reprocessing message %" PRId64, id);
    }
    c->deliveries += touched;
    c->messages += touched > 0;
    return STORE_OK;
}

/* Reprocess by filter: walks the messages that have a delivery in
 * req->dlv_state in id order, STORE_CHUNK per transaction. */
static store_status reprocess_filter(sq_store *q, const store_reprocess_req *req, int64_t now,
                                     bool dry_run, store_counts *c, store_error *err)
{
    tbuf sql = TBUF_INIT;
    sqlite3_stmt *sel = NULL;
    int64_t *ids = NULL;
    size_t cap = 0;
    store_status r = STORE_OK;
    /* The state is a literal so that the partial indexes can serve it. */
    tbuf_printf(&sql,
                "SELECT DISTINCT message_id FROM deliveries WHERE state = '%s'"
                " AND message_id > ?1%s ORDER BY message_id LIMIT %d",
                store_dlv_state_name(req->dlv_state),
                req->channel ? " AND dest_id IN (SELECT id FROM destinations WHERE channel = ?2)"
                             : "",
                STORE_CHUNK);
    int rc = sqlite3_prepare_v2(q->db, sql.p, -1, &sel, NULL);
    if (rc != SQLITE_OK) {
        r = sq_fail(q, rc, err, "selecting messages to reprocess");
        goto done;
    }
    int64_t cursor = 0;
    for (;;) {
        if (!dry_run) {
            r = begin(q, err, "reprocessing");
            if (r != STORE_OK) goto done;
        }
        size_t n = 0;
        sqlite3_bind_int64(sel, 1, cursor);
        if (req->channel) bind_str(sel, 2, req->channel);
        while ((rc = sqlite3_step(sel)) == SQLITE_ROW) {
            ids = xgrow(ids, &cap, n + 1, sizeof *ids);
            ids[n++] = sqlite3_column_int64(sel, 0);
        }
        sqlite3_reset(sel);
        if (rc != SQLITE_DONE) {
            r = sq_fail(q, rc, err, "selecting messages to reprocess");
            goto done;
        }
        for (size_t i = 0; i < n && r == STORE_OK; i++)
            r = reprocess_one(q, req, ids[i], now, dry_run, c, err);
        if (r == STORE_OK && !dry_run) r = commit(q, err, "reprocessing");
        if (r != STORE_OK || n < STORE_CHUNK) goto done;
        cursor = ids[n - 1];
    }
done:
    if (r != STORE_OK) rollback(q);
    sqlite3_finalize(sel);
    free(ids);
    tbuf_free(&sql);
    return r;
}

static store_status sq_reprocess(store *s, const store_reprocess_req *req, const store_audit *who,
                                 int64_t now, bool dry_run, store_counts *out, store_error *err)
{
    sq_store *q = sq(s);
    tbuf what = TBUF_INIT;
    store_status r;
    if (!req->n_ids) {
        r = reprocess_filter(q, req, now, dry_run, out, err);
        if (r == STORE_OK && !dry_run) {
            store_describe_reprocess(req, out, &what);
            r = audit_add(q, who, now, "reprocess", what.p, err);
        }
        goto done;
    }
    r = dry_run ? STORE_OK : begin(q, err, "reprocessing");
    if (r != STORE_OK) goto done;
    for (size_t i = 0; i < req->n_ids && r == STORE_OK; i++)
        r = reprocess_one(q, req, req->ids[i], now, dry_run, out, err);
    if (r == STORE_OK && !dry_run) {
        store_describe_reprocess(req, out, &what);
        r = audit_add(q, who, now, "reprocess", what.p, err);
        if (r == STORE_OK) r = commit(q, err, "reprocessing");
    }
    if (r != STORE_OK) rollback(q);
done:
    tbuf_free(&what);
    return r;
}

static store_status sq_edit(store *s, int64_t id, const void *raw, size_t raw_len,
                            const store_meta *meta, const char *const *dests, size_t n_dests,
                            const store_audit *who, int64_t now, int64_t *new_id, size_t *requeued,
                            store_error *err)
{
    sq_store *q = sq(s);
    sqlite3_stmt *orig, *put, *move_default, *move_named, *supersede;
    int64_t *dids = NULL;
    char *channel = NULL;
    tbuf what = TBUF_INIT;
    store_status r = stmt_get(q, ST_EDIT_ORIG, &orig, err);
    if (r == STORE_OK) r = stmt_get(q, ST_EDIT_PUT, &put, err);
    if (r == STORE_OK) r = stmt_get(q, ST_EDIT_MOVE_DEFAULT, &move_default, err);
    if (r == STORE_OK) r = stmt_get(q, ST_EDIT_MOVE_NAMED, &move_named, err);
    if (r == STORE_OK) r = stmt_get(q, ST_EDIT_SUPERSEDE, &supersede, err);
    if (r != STORE_OK) return r;

    /* The channel is needed to register named destinations, which must
     * happen before the transaction; it never changes, so reading it
     * separately is safe. */
    int64_t received_at = 0, original_id = 0, revision = 0;
    sqlite3_bind_int64(orig, 1, id);
    int rc = sqlite3_step(orig);
    if (rc == SQLITE_ROW) {
        channel = xstrdup((const char *)sqlite3_column_text(orig, 0));
        received_at = sqlite3_column_int64(orig, 1);
        original_id = sqlite3_column_int64(orig, 2);
    }
    sqlite3_reset(orig);
    if (rc == SQLITE_DONE) {
        r = store_fail(err, STORE_ERR_NOT_FOUND, "edit: message %" PRId64 " does not exist in %s",
                       id, q->path);
        goto done;
    }
    if (rc != SQLITE_ROW) {
        r = sq_fail(q, rc, err, "edit: reading message %" PRId64, id);
        goto done;
    }
    dids = xcalloc(n_dests + 1, sizeof *dids);
    for (size_t i = 0; i < n_dests && r == STORE_OK; i++)
        r = dest_id(q, channel, dests[i], true, &dids[i], err);
    if (r != STORE_OK) goto done;

    r = begin(q, err, "storing an edited message");
    if (r != STORE_OK) goto done;
    sqlite3_bind_int64(orig, 1, id);
    rc = sqlite3_step(orig);
    if (rc == SQLITE_ROW) revision = sqlite3_column_int64(orig, 3);
    sqlite3_reset(orig);
    if (rc != SQLITE_ROW) {
        r = rc == SQLITE_DONE ? store_fail(err, STORE_ERR_NOT_FOUND,
                                           "edit: message %" PRId64 " was just pruned", id)
                              : sq_fail(q, rc, err, "edit: reading message %" PRId64, id);
        goto fail;
    }

    bind_str(put, 1, channel);
    sqlite3_bind_int64(put, 2, received_at);
    bind_opt(put, 3, meta->msh9);
    bind_opt(put, 4, meta->control_id);
    bind_opt(put, 5, meta->send_app);
    bind_opt(put, 6, meta->send_fac);
    bind_opt(put, 7, meta->recv_app);
    bind_opt(put, 8, meta->recv_fac);
    bind_opt(put, 9, meta->patient_id);
    sqlite3_bind_blob64(put, 10, raw_len ? raw : "", raw_len, SQLITE_STATIC);
    sqlite3_bind_int64(put, 11, revision + 1);
    sqlite3_bind_int64(put, 12, original_id);
    bind_opt(put, 13, meta->sealed);
    rc = run(put);
    if (rc != SQLITE_OK) {
        r = sq_fail(q, rc, err, "edit: storing the new revision of message %" PRId64, id);
        goto fail;
    }
    *new_id = sqlite3_last_insert_rowid(q->db);
    r = put_keys(q, *new_id, meta, err);
    if (r != STORE_OK) goto fail;

    for (size_t i = 0; i < (n_dests ? n_dests : 1); i++) {
        sqlite3_stmt *mv = n_dests ? move_named : move_default;
        sqlite3_bind_int64(mv, 1, *new_id);
        sqlite3_bind_int64(mv, 2, now);
        sqlite3_bind_int64(mv, 3, n_dests ? dids[i] : id);
        rc = run(mv);
        if (rc != SQLITE_OK) {
            r = sq_fail(q, rc, err, "edit: queueing the new revision of message %" PRId64, id);
            goto fail;
        }
        *requeued += (size_t)sqlite3_changes(q->db);
    }
    sqlite3_bind_int64(supersede, 1, *new_id);
    sqlite3_bind_int64(supersede, 2, now);
    sqlite3_bind_int64(supersede, 3, id);
    rc = run(supersede);
    if (rc != SQLITE_OK) {
        r = sq_fail(q, rc, err, "edit: updating the deliveries of message %" PRId64, id);
        goto fail;
    }
    tbuf_printf(&what,
                "message %" PRId64 " edited as message %" PRId64 " (revision %" PRId64
                "); %zu deliveries requeued",
                id, *new_id, revision + 1, *requeued);
    r = audit_add(q, who, now, "edit", what.p, err);
    if (r == STORE_OK) r = commit(q, err, "storing an edited message");
    if (r == STORE_OK) goto done;
fail:
    rollback(q);
    *new_id = 0;
    *requeued = 0;
done:
    tbuf_free(&what);
    free(dids);
    free(channel);
    return r;
}

/* The bodies of pruned messages, blanked in the body log at the end. */
typedef struct prune_spans {
    blob_span *v;
    size_t n, cap;
} prune_spans;

/* Deletes one chunk of prunable messages in one transaction; *n is how
 * many, *cursor moves past them; their bodies in the log are added to sp. */
static store_status prune_chunk(sq_store *q, const char *channel, int64_t before,
                                int64_t cursor[2], size_t *n, prune_spans *sp, store_error *err)
{
    sqlite3_stmt *sel, *del_dlv, *del_msg, *del_keys, *del_pat;
    store_status r = stmt_get(q, ST_PRUNE_SELECT, &sel, err);
    if (r == STORE_OK) r = stmt_get(q, ST_PRUNE_DLV, &del_dlv, err);
    if (r == STORE_OK) r = stmt_get(q, ST_PRUNE_MSG, &del_msg, err);
    if (r == STORE_OK) r = stmt_get(q, ST_PRUNE_KEYS, &del_keys, err);
    if (r == STORE_OK) r = stmt_get(q, ST_PRUNE_PATIENT, &del_pat, err);
    if (r == STORE_OK) r = begin(q, err, "pruning");
    if (r != STORE_OK) return r;
    *n = 0;
    sqlite3_bind_int64(sel, 1, before);
    sqlite3_bind_int64(sel, 2, cursor[0]);
    sqlite3_bind_int64(sel, 3, cursor[1]);
    sqlite3_bind_int64(sel, 4, STORE_CHUNK);
    if (channel)
        sqlite3_bind_text(sel, 5, channel, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(sel, 5);
    int rc;
    int64_t ids[STORE_CHUNK];
    size_t first_span = sp->n;
    while ((rc = sqlite3_step(sel)) == SQLITE_ROW) {
        ids[*n] = sqlite3_column_int64(sel, 0);
        cursor[0] = sqlite3_column_int64(sel, 1);
        cursor[1] = ids[(*n)++];
        if (sqlite3_column_type(sel, 2) != SQLITE_NULL) {
            sp->v = xgrow(sp->v, &sp->cap, sp->n + 1, sizeof *sp->v);
            sp->v[sp->n++] = (blob_span){
                {sqlite3_column_int64(sel, 2), sqlite3_column_int64(sel, 3)},
                (size_t)sqlite3_column_int64(sel, 4)};
        }
    }
    sqlite3_reset(sel);
    for (size_t i = 0; rc == SQLITE_DONE && i < *n; i++) {
        sqlite3_bind_int64(del_dlv, 1, ids[i]);
        sqlite3_bind_int64(del_msg, 1, ids[i]);
        sqlite3_bind_int64(del_keys, 1, ids[i]);
        sqlite3_bind_int64(del_pat, 1, ids[i]);
        rc = run(del_dlv);
        if (rc == SQLITE_OK) rc = run(del_keys);
        if (rc == SQLITE_OK) rc = run(del_pat);
        if (rc == SQLITE_OK) rc = run(del_msg);
        if (rc == SQLITE_OK) rc = SQLITE_DONE;
    }
    if (rc != SQLITE_DONE) {
        r = sq_fail(q, rc, err, "pruning messages");
        rollback(q);
        sp->n = first_span;
        return r;
    }
    r = commit(q, err, "pruning");
    if (r != STORE_OK) {
        rollback(q);
        sp->n = first_span;
    }
    return r;
}

/* Gives free pages back to the file system a slice at a time (each slice
 * is a short write transaction), then checkpoints and truncates the WAL so
 * the main file shrinks now rather than at the next checkpoint. */
static store_status give_back_space(sq_store *q, uint64_t *bytes, store_error *err)
{
    int64_t page_size = 0, before = 0, after = 0, free_pages = 0;
    int rc = query_int(q, "PRAGMA page_size", &page_size);
    if (rc == SQLITE_OK) rc = query_int(q, "PRAGMA page_count", &before);
    while (rc == SQLITE_OK) {
        rc = query_int(q, "PRAGMA freelist_count", &free_pages);
        if (rc != SQLITE_OK || free_pages == 0) break;
        int64_t unused;
        rc = query_int(q, "PRAGMA incremental_vacuum(2000)", &unused);
        int64_t left = 0;
        if (rc == SQLITE_OK) rc = query_int(q, "PRAGMA freelist_count", &left);
        if (rc == SQLITE_OK && left == free_pages) break; /* auto_vacuum is off */
    }
    if (rc == SQLITE_OK) rc = query_int(q, "PRAGMA page_count", &after);
    if (rc != SQLITE_OK) return sq_fail(q, rc, err, "giving disk space back after pruning");
    *bytes = before > after ? (uint64_t)((before - after) * page_size) : 0;
    return STORE_OK;
}

typedef struct seg_check {
    sq_store *q;
    sqlite3_stmt *st;
    int rc; /* the first SQLite failure, if any */
} seg_check;

/* blob_in_use_fn: a segment is in use while a row points into it (and
 * whenever that cannot be told). */
static bool segment_in_use(void *ctx, int64_t seg)
{
    seg_check *c = ctx;
    if (c->rc != SQLITE_OK) return true;
    sqlite3_bind_int64(c->st, 1, seg);
    int rc = sqlite3_step(c->st);
    sqlite3_reset(c->st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) c->rc = rc;
    return rc != SQLITE_DONE;
}

/* Deletes the body segments no message points into any more. */
static store_status remove_unused_bodies(sq_store *q, uint64_t *bytes, store_error *err)
{
    seg_check c = {q, NULL, SQLITE_OK};
    store_status r = stmt_get(q, ST_SEG_USED, &c.st, err);
    if (r == STORE_OK) r = blobs_open(q, false, err);
    if (r == STORE_OK) r = blob_remove_unused(q->blobs, segment_in_use, &c, bytes, err);
    if (r == STORE_OK && c.rc != SQLITE_OK)
        r = sq_fail(q, c.rc, err, "finding the body segments still in use");
    return r;
}

/* While pruning, SQLite overwrites deleted content with zeros
 * (secure_delete: no deleted row lingers in a page still in use, nor in the
 * WAL), and every commit is synced (synchronous FULL) so that the bodies are
 * blanked only once their rows are gone for good. on: saves the connection's
 * settings in saved[2]; off: restores them. */
static int prune_mode(sq_store *q, bool on, int64_t saved[2])
{
    char sql[64];
    if (!on) {
        snprintf(sql, sizeof sql, "PRAGMA secure_delete = %d", saved[0] ? 1 : 0);
        int rc = exec(q, sql);
        snprintf(sql, sizeof sql, "PRAGMA synchronous = %d", (int)saved[1]);
        int rc2 = exec(q, sql);
        return rc != SQLITE_OK ? rc : rc2;
    }
    int rc = query_int(q, "PRAGMA secure_delete", &saved[0]);
    if (rc == SQLITE_OK) rc = query_int(q, "PRAGMA synchronous", &saved[1]);
    if (rc == SQLITE_OK) rc = query_int(q, "PRAGMA secure_delete = 1", &(int64_t){0});
    if (rc == SQLITE_OK) rc = exec(q, "PRAGMA synchronous = FULL");
    return rc;
}

static store_status sq_prune(store *s, const char *channel, int64_t before,
                             const store_audit *who, int64_t now, store_prune_result *out,
                             store_error *err)
{
    sq_store *q = sq(s);
    int64_t cursor[2] = {INT64_MIN, INT64_MIN};
    int64_t saved[2] = {0, 2};
    prune_spans sp = {0};
    size_t n;
    int rc = prune_mode(q, true, saved);
    store_status r = rc == SQLITE_OK ? STORE_OK : sq_fail(q, rc, err, "preparing to prune");
    while (r == STORE_OK) {
        n = 0;
        r = prune_chunk(q, channel, before, cursor, &n, &sp, err);
        out->messages += n;
        if (n < STORE_CHUNK) break;
    }
    if (r == STORE_OK) r = give_back_space(q, &out->bytes_freed, err);
    if (r == STORE_OK) r = remove_unused_bodies(q, &out->bytes_freed, err);
    /* Chunks already deleted are audited even when a later one failed. */
    if (r == STORE_OK || out->messages) {
        char what[160];
        snprintf(what, sizeof what,
                 "messages received before %" PRId64 " without queued deliveries: %" PRIu64
                 " deleted, %" PRIu64 " bytes given back",
                 before, out->messages, out->bytes_freed);
        store_error audit_err;
        store_status ar = audit_add(q, who, now, "prune", what, &audit_err);
        if (r == STORE_OK && ar != STORE_OK) {
            *err = audit_err;
            r = ar;
        }
    }
    /* A reader in another process may keep the WAL from being truncated;
     * that is not an error, the space comes back at a later checkpoint. */
    if (r == STORE_OK)
        sqlite3_wal_checkpoint_v2(q->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    /* The rows are gone durably (synchronous FULL): blank the bodies still
     * sitting in segments that hold live messages too. Deleted chunks are
     * wiped even when a later step failed. */
    if (sp.n) {
        store_error wipe_err;
        store_status wr = blobs_open(q, false, &wipe_err);
        if (wr == STORE_OK) wr = blob_wipe(q->blobs, sp.v, sp.n, &wipe_err);
        if (r == STORE_OK && wr != STORE_OK) {
            *err = wipe_err;
            r = wr;
        }
    }
    free(sp.v);
    rc = prune_mode(q, false, saved);
    if (r == STORE_OK && rc != SQLITE_OK) r = sq_fail(q, rc, err, "after pruning");
    return r;
}

static store_status sq_prune_count(store *s, const char *channel, int64_t before,
                                   uint64_t *count_out, store_error *err)
{
    sq_store *q = sq(s);
    sqlite3_stmt *st;
    store_status r = stmt_get(q, ST_PRUNE_COUNT, &st, err);
    if (r != STORE_OK) return r;
    sqlite3_bind_int64(st, 1, before);
    if (channel)
        sqlite3_bind_text(st, 2, channel, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 2);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) *count_out = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? STORE_OK : sq_fail(q, rc, err, "counting messages to prune");
}

static store_status sq_audit_list(store *s, size_t limit, store_audit_fn fn, void *ctx,
                                  store_error *err)
{
    sq_store *q = sq(s);
    sqlite3_stmt *st;
    store_status r = stmt_get(q, ST_AUDIT_LIST, &st, err);
    if (r != STORE_OK) return r;
    sqlite3_bind_int64(st, 1, limit > INT64_MAX ? INT64_MAX : (int64_t)limit);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        store_audit_entry e = {
            .id = sqlite3_column_int64(st, 0),
            .at = sqlite3_column_int64(st, 1),
            .who = (const char *)sqlite3_column_text(st, 2),
            .why = (const char *)sqlite3_column_text(st, 3),
            .action = (const char *)sqlite3_column_text(st, 4),
            .what = (const char *)sqlite3_column_text(st, 5),
        };
        if (!fn(ctx, &e)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? STORE_OK : sq_fail(q, rc, err, "reading the audit");
}

const store_ops store_sqlite_ops = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .checkpoint = sq_checkpoint,
    .put_batch = sq_put_batch,
    .log_batch = sq_log_batch,
    .index_batches = sq_index_batches,
    .logged_free = sq_logged_free,
    .find_duplicate = sq_find_duplicate,
    .queue_next = sq_queue_next,
    .queue_count = sq_queue_count,
    .mark_batch = sq_mark_batch,
    .list = sq_list,
    .list_plan = sq_list_plan,
    .get = sq_get,
    .reprocess = sq_reprocess,
    .edit = sq_edit,
    .prune = sq_prune,
    .prune_count = sq_prune_count,
    .audit_list = sq_audit_list,
    .quality_report = sq_quality_report,
};
