/*
 * fhir_store_sqlite: the SQLite backend of the FHIR resource store
 * (fhir_store.h). One database file of its own, WAL mode, synchronous=FULL:
 * a write is durable when COMMIT returns. Tables:
 *
 *   fhir_current  one row per (type, id): the latest version's facts and
 *                 stored JSON (NULL for a tombstone). seq (INTEGER PRIMARY
 *                 KEY) is given once and kept across updates: it is the
 *                 search order and the paging cursor.
 *   fhir_history  every version, (type, id, version) unique.
 *   fhir_index    search rows of the current versions, keyed by seq:
 *                 (param, value, rtype) for tokens, strings and references,
 *                 (param, lo) for dates.
 *
 * Fixed statements are prepared once per handle; search SQL is built from
 * the query's shape and its statement kept in a small cache keyed by the SQL
 * text, so a repeated search shape is never prepared again. Reads copy the
 * JSON column straight into the caller's buffer.
 */
#include "store/fhir_store.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/mem.h"

#define SCHEMA_VERSION 1
#define STMT_CACHE 32

static const char SCHEMA[] =
    "CREATE TABLE fhir_current("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " type TEXT NOT NULL, id TEXT NOT NULL,"
    " version INTEGER NOT NULL, updated INTEGER NOT NULL, deleted INTEGER NOT NULL,"
    " json BLOB,"
    " UNIQUE(type, id));"
    "CREATE TABLE fhir_history("
    " type TEXT NOT NULL, id TEXT NOT NULL,"
    " version INTEGER NOT NULL, updated INTEGER NOT NULL, deleted INTEGER NOT NULL,"
    " json BLOB,"
    " UNIQUE(type, id, version));"
    "CREATE TABLE fhir_index("
    " seq INTEGER NOT NULL, rtype TEXT NOT NULL, param TEXT NOT NULL,"
    " sys TEXT, value TEXT, lo INTEGER, hi INTEGER);"
    "CREATE INDEX fhir_index_value ON fhir_index(param, value, rtype);"
    "CREATE INDEX fhir_index_date ON fhir_index(param, lo);"
    "CREATE INDEX fhir_index_seq ON fhir_index(seq);"
    "PRAGMA user_version = 1;";

enum {
    ST_CURRENT,
    ST_READ,
    ST_VREAD,
    ST_UPSERT,
    ST_HIST_ADD,
    ST_INDEX_DEL,
    ST_INDEX_ADD,
    ST_HISTORY,
    ST_INCLUDE,
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_COUNT
};

static const char *const STMT_SQL[ST_COUNT] = {
    [ST_CURRENT] = "SELECT version, updated, deleted FROM fhir_current WHERE type=?1 AND id=?2",
    [ST_READ] = "SELECT version, updated, deleted, json FROM fhir_current WHERE type=?1 AND id=?2",
    [ST_VREAD] = "SELECT version, updated, deleted, json FROM fhir_history"
                 " WHERE type=?1 AND id=?2 AND version=?3",
    [ST_UPSERT] = "INSERT INTO fhir_current(type, id, version, updated, deleted, json)"
                  " VALUES(?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(type, id) DO UPDATE SET"
                  " version=excluded.version, updated=excluded.updated,"
                  " deleted=excluded.deleted, json=excluded.json RETURNING seq",
    [ST_HIST_ADD] = "INSERT INTO fhir_history(type, id, version, updated, deleted, json)"
                    " VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
    [ST_INDEX_DEL] = "DELETE FROM fhir_index WHERE seq=?1",
    [ST_INDEX_ADD] = "INSERT INTO fhir_index(seq, rtype, param, sys, value, lo, hi)"
                     " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [ST_HISTORY] = "SELECT version, updated, deleted, json FROM fhir_history"
                   " WHERE type=?1 AND id=?2 ORDER BY version DESC LIMIT ?3",
    [ST_INCLUDE] = "SELECT c.seq, c.type, c.id, c.version, c.updated, c.json"
                   " FROM fhir_index i JOIN fhir_current c ON c.type=i.sys AND c.id=i.value"
                   " WHERE i.seq=?1 AND i.param=?2 AND c.deleted=0",
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
};

typedef struct cached {
    char *sql;
    sqlite3_stmt *st;
} cached;

typedef struct fsq {
    fhir_store base;
    sqlite3 *db;
    char *path;
    sqlite3_stmt *st[ST_COUNT];
    cached cache[STMT_CACHE];
    size_t cache_next; /* round-robin victim */
} fsq;

static fhir_store_status sq_fail(fsq *q, int rc, fhir_store_error *err, const char *doing)
{
    fhir_store_status code;
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED: code = FHIR_STORE_ERR_BUSY; break;
    case SQLITE_FULL: code = FHIR_STORE_ERR_FULL; break;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB: code = FHIR_STORE_ERR_CORRUPT; break;
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PERM: code = FHIR_STORE_ERR_IO; break;
    default: code = FHIR_STORE_ERR_BACKEND;
    }
    return fhir_store_fail(err, code, "%s in %s: %s", doing, q->path,
                           q->db ? sqlite3_errmsg(q->db) : sqlite3_errstr(rc));
}

static sqlite3_stmt *stmt(fsq *q, int which, fhir_store_error *err)
{
    if (!q->st[which]) {
        int rc = sqlite3_prepare_v3(q->db, STMT_SQL[which], -1, SQLITE_PREPARE_PERSISTENT,
                                    &q->st[which], NULL);
        if (rc != SQLITE_OK) {
            sq_fail(q, rc, err, "preparing a statement");
            return NULL;
        }
    }
    return q->st[which];
}

static void done_stmt(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

static void bind_str(sqlite3_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

static void sq_close(fhir_store *s)
{
    fsq *q = (fsq *)s;
    for (int i = 0; i < ST_COUNT; i++) sqlite3_finalize(q->st[i]);
    for (size_t i = 0; i < STMT_CACHE; i++) {
        sqlite3_finalize(q->cache[i].st);
        free(q->cache[i].sql);
    }
    sqlite3_close_v2(q->db);
    free(q->path);
    free(q);
}

static fhir_store_status make_parent_dirs(const char *path, fhir_store_error *err)
{
    char *dir = xstrdup(path);
    fhir_store_status st = FHIR_STORE_OK;
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        for (char *p = dir + 1;; p++) {
            bool last = *p == '\0';
            if (*p != '/' && !last) continue;
            *p = '\0';
            if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
                st = fhir_store_fail(err, FHIR_STORE_ERR_IO,
                                     "creating directory %s for the FHIR store: %s", dir,
                                     strerror(errno));
                break;
            }
            if (last) break;
            *p = '/';
        }
    }
    free(dir);
    return st;
}

static int exec(fsq *q, const char *sql)
{
    return sqlite3_exec(q->db, sql, NULL, NULL, NULL);
}

static fhir_store_status migrate(fsq *q, fhir_store_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(q->db, "PRAGMA user_version", -1, &st, NULL);
    int version = -1;
    if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (version < 0) return sq_fail(q, rc, err, "reading the schema version");
    if (version > SCHEMA_VERSION)
        return fhir_store_fail(err, FHIR_STORE_ERR_CORRUPT,
                               "%s has FHIR store schema %d; this Tern knows up to %d (upgrade "
                               "Tern)",
                               q->path, version, SCHEMA_VERSION);
    if (version == SCHEMA_VERSION) return FHIR_STORE_OK;
    rc = exec(q, "BEGIN IMMEDIATE");
    if (rc == SQLITE_OK) rc = exec(q, SCHEMA);
    if (rc == SQLITE_OK) rc = exec(q, "COMMIT");
    if (rc != SQLITE_OK) {
        fhir_store_status s = sq_fail(q, rc, err, "creating the FHIR store schema");
        exec(q, "ROLLBACK");
        return s;
    }
    return FHIR_STORE_OK;
}

static fhir_store_status sq_open(const char *path, fhir_store **out, fhir_store_error *err)
{
    fsq *q = xcalloc(1, sizeof(*q));
    q->base.ops = &fhir_store_sqlite_ops;
    q->path = xstrdup(path);
    fhir_store_status st = make_parent_dirs(path, err);
    if (st != FHIR_STORE_OK) goto fail;
    /* Owner-only permissions for a new file (it holds patient data). */
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
        close(fd);
    } else if (errno != EEXIST) {
        st = fhir_store_fail(err, FHIR_STORE_ERR_IO, "creating FHIR store file %s: %s", path,
                             strerror(errno));
        goto fail;
    }
    int rc = sqlite3_open_v2(path, &q->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_extended_result_codes(q->db, 1);
        sqlite3_busy_timeout(q->db, 5000);
        rc = exec(q, "PRAGMA journal_mode = WAL;"
                     "PRAGMA synchronous = FULL;"
                     "PRAGMA cache_size = -32768;"
                     "PRAGMA temp_store = MEMORY");
    }
    if (rc != SQLITE_OK) {
        st = sq_fail(q, rc, err, "opening the FHIR store");
        goto fail;
    }
    if ((st = migrate(q, err)) != FHIR_STORE_OK) goto fail;
    *out = &q->base;
    return FHIR_STORE_OK;
fail:
    sq_close(&q->base);
    return st;
}

static fhir_store_status run_simple(fsq *q, int which, const char *doing, fhir_store_error *err)
{
    sqlite3_stmt *st = stmt(q, which, err);
    if (!st) return err ? err->code : FHIR_STORE_ERR_BACKEND;
    int rc = sqlite3_step(st);
    done_stmt(st);
    return rc == SQLITE_DONE ? FHIR_STORE_OK : sq_fail(q, rc, err, doing);
}

static fhir_store_status sq_begin(fhir_store *s, fhir_store_error *err)
{
    return run_simple((fsq *)s, ST_BEGIN, "starting a transaction", err);
}

static fhir_store_status sq_commit(fhir_store *s, fhir_store_error *err)
{
    return run_simple((fsq *)s, ST_COMMIT, "committing", err);
}

static void sq_rollback(fhir_store *s)
{
    fsq *q = (fsq *)s;
    if (!sqlite3_get_autocommit(q->db)) run_simple(q, ST_ROLLBACK, "rolling back", NULL);
}

static void read_version(sqlite3_stmt *st, int col, fhir_version *v)
{
    v->version = sqlite3_column_int64(st, col);
    v->updated_ms = sqlite3_column_int64(st, col + 1);
    v->deleted = sqlite3_column_int(st, col + 2) != 0;
}

static fhir_store_status sq_current(fhir_store *s, const char *type, const char *id,
                                    fhir_version *v, fhir_store_error *err)
{
    fsq *q = (fsq *)s;
    sqlite3_stmt *st = stmt(q, ST_CURRENT, err);
    if (!st) return err ? err->code : FHIR_STORE_ERR_BACKEND;
    bind_str(st, 1, type);
    bind_str(st, 2, id);
    int rc = sqlite3_step(st);
    fhir_store_status r = FHIR_STORE_OK;
    if (rc == SQLITE_ROW)
        read_version(st, 0, v);
    else if (rc == SQLITE_DONE)
        r = fhir_store_fail(err, FHIR_STORE_ERR_NOT_FOUND, "%s/%s is not known", type, id);
    else
        r = sq_fail(q, rc, err, "reading a resource's version");
    done_stmt(st);
    return r;
}

static fhir_store_status step_done(fsq *q, sqlite3_stmt *st, const char *doing,
                                   fhir_store_error *err)
{
    int rc = sqlite3_step(st);
    done_stmt(st);
    return rc == SQLITE_DONE ? FHIR_STORE_OK : sq_fail(q, rc, err, doing);
}

static void bind_row(sqlite3_stmt *st, const fhir_store_row *row)
{
    bind_str(st, 1, row->type);
    bind_str(st, 2, row->id);
    sqlite3_bind_int64(st, 3, row->v.version);
    sqlite3_bind_int64(st, 4, row->v.updated_ms);
    sqlite3_bind_int(st, 5, row->v.deleted);
    if (row->json)
        sqlite3_bind_blob(st, 6, row->json, (int)row->len, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 6);
}

static fhir_store_status write_index(fsq *q, int64_t seq, const fhir_store_row *row,
                                     fhir_store_error *err)
{
    sqlite3_stmt *del = stmt(q, ST_INDEX_DEL, err), *add = stmt(q, ST_INDEX_ADD, err);
    if (!del || !add) return err ? err->code : FHIR_STORE_ERR_BACKEND;
    sqlite3_bind_int64(del, 1, seq);
    fhir_store_status r = step_done(q, del, "clearing search index rows", err);
    for (size_t i = 0; r == FHIR_STORE_OK && i < row->index->n; i++) {
        const fhir_index_row *ir = &row->index->v[i];
        sqlite3_bind_int64(add, 1, seq);
        bind_str(add, 2, row->type);
        bind_str(add, 3, ir->param);
        bind_str(add, 4, ir->sys);
        bind_str(add, 5, ir->value);
        if (ir->value) {
            sqlite3_bind_null(add, 6);
            sqlite3_bind_null(add, 7);
        } else {
            sqlite3_bind_int64(add, 6, ir->lo);
            sqlite3_bind_int64(add, 7, ir->hi);
        }
        r = step_done(q, add, "adding search index rows", err);
    }
    return r;
}

static fhir_store_status sq_write(fhir_store *s, const fhir_store_row *row, fhir_store_error *err)
{
    fsq *q = (fsq *)s;
    sqlite3_stmt *up = stmt(q, ST_UPSERT, err), *hist = stmt(q, ST_HIST_ADD, err);
    if (!up || !hist) return err ? err->code : FHIR_STORE_ERR_BACKEND;
    bind_row(up, row);
    int rc = sqlite3_step(up);
    int64_t seq = rc == SQLITE_ROW ? sqlite3_column_int64(up, 0) : 0;
    if (rc == SQLITE_ROW) rc = sqlite3_step(up);
    done_stmt(up);
    if (rc != SQLITE_DONE) return sq_fail(q, rc, err, "writing the current version");
    bind_row(hist, row);
    fhir_store_status r = step_done(q, hist, "writing the version history", err);
    if (r == FHIR_STORE_OK) r = write_index(q, seq, row, err);
    return r;
}

static fhir_store_status sq_read(fhir_store *s, const char *type, const char *id, int64_t version,
                                 fhir_version *v, tbuf *json, fhir_store_error *err)
{
    fsq *q = (fsq *)s;
    sqlite3_stmt *st = stmt(q, version ? ST_VREAD : ST_READ, err);
    if (!st) return err ? err->code : FHIR_STORE_ERR_BACKEND;
    bind_str(st, 1, type);
    bind_str(st, 2, id);
    if (version) sqlite3_bind_int64(st, 3, version);
    int rc = sqlite3_step(st);
    fhir_store_status r = FHIR_STORE_OK;
    if (rc == SQLITE_ROW) {
        read_version(st, 0, v);
        if (v->deleted) {
            r = fhir_store_fail(err, FHIR_STORE_ERR_GONE, "%s/%s was deleted (version %lld)",
                                type, id, (long long)v->version);
        } else {
            const void *p = sqlite3_column_blob(st, 3);
            tbuf_put(json, p, (size_t)sqlite3_column_bytes(st, 3));
        }
    } else if (rc == SQLITE_DONE) {
        r = version ? fhir_store_fail(err, FHIR_STORE_ERR_NOT_FOUND, "%s/%s has no version %lld",
                                      type, id, (long long)version)
                    : fhir_store_fail(err, FHIR_STORE_ERR_NOT_FOUND, "%s/%s is not known", type,
                                      id);
    } else {
        r = sq_fail(q, rc, err, "reading a resource");
    }
    done_stmt(st);
    return r;
}

static fhir_store_status sq_history(fhir_store *s, const char *type, const char *id, size_t limit,
                                    fhir_store_row_fn fn, void *ctx, fhir_store_error *err)
{
    fsq *q = (fsq *)s;
    sqlite3_stmt *st = stmt(q, ST_HISTORY, err);
    if (!st) return err ? err->code : FHIR_STORE_ERR_BACKEND;
    bind_str(st, 1, type);
    bind_str(st, 2, id);
    sqlite3_bind_int64(st, 3, limit ? (int64_t)limit : -1);
    int rc;
    size_t n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        fhir_version v;
        read_version(st, 0, &v);
        n++;
        const char *json = v.deleted ? NULL : sqlite3_column_blob(st, 3);
        if (fn(ctx, 0, type, id, &v, json, (size_t)sqlite3_column_bytes(st, 3))) {
            rc = SQLITE_DONE;
            break;
        }
    }
    done_stmt(st);
    if (rc != SQLITE_DONE) return sq_fail(q, rc, err, "reading a resource's history");
    if (!n) return fhir_store_fail(err, FHIR_STORE_ERR_NOT_FOUND, "%s/%s is not known", type, id);
    return FHIR_STORE_OK;
}

/* --- search ------------------------------------------------------------------ */

typedef struct bindv {
    bool is_int;
    const char *s;
    char *owned;
    int64_t i;
} bindv;

typedef struct sqlb {
    tbuf sql;
    bindv *b;
    size_t n, cap;
} sqlb;

static void bs(sqlb *q, const char *s)
{
    q->b = xgrow(q->b, &q->cap, q->n + 1, sizeof(*q->b));
    q->b[q->n++] = (bindv){false, s, NULL, 0};
    tbuf_puts(&q->sql, "?");
}

static void bi(sqlb *q, int64_t i)
{
    q->b = xgrow(q->b, &q->cap, q->n + 1, sizeof(*q->b));
    q->b[q->n++] = (bindv){true, NULL, NULL, i};
    tbuf_puts(&q->sql, "?");
}

static void match_sql(sqlb *q, const fhir_cond *c, const fhir_match *m)
{
    switch (c->kind) {
    case FHIR_PARAM_TOKEN:
    case FHIR_PARAM_REFERENCE:
        tbuf_puts(&q->sql, "(1");
        if (m->code) {
            tbuf_puts(&q->sql, " AND value=");
            bs(q, m->code);
        }
        if (m->sys && !*m->sys) {
            tbuf_puts(&q->sql, " AND sys IS NULL");
        } else if (m->sys) {
            tbuf_puts(&q->sql, " AND sys=");
            bs(q, m->sys);
        }
        tbuf_puts(&q->sql, ")");
        return;
    case FHIR_PARAM_STRING:
        if (m->exact) {
            tbuf_puts(&q->sql, "(value=");
            bs(q, m->code);
        } else {
            tbuf_puts(&q->sql, "(value>=");
            bs(q, m->code);
            tbuf_puts(&q->sql, " AND value<");
            size_t n = strlen(m->code);
            char *upper = xmalloc(n + 2);
            memcpy(upper, m->code, n);
            upper[n] = (char)0xff;
            upper[n + 1] = '\0';
            bs(q, upper);
            q->b[q->n - 1].owned = upper;
        }
        tbuf_puts(&q->sql, ")");
        return;
    case FHIR_PARAM_DATE: {
        static const char *const fmt[] = {
            [FHIR_PFX_EQ] = "(lo>=? AND hi<=?)", [FHIR_PFX_NE] = "NOT (lo>=? AND hi<=?)",
            [FHIR_PFX_LT] = "(lo<?)",            [FHIR_PFX_GT] = "(hi>?)",
            [FHIR_PFX_LE] = "(lo<=?)",           [FHIR_PFX_GE] = "(hi>=?)",
            [FHIR_PFX_SA] = "(lo>?)",            [FHIR_PFX_EB] = "(hi<?)",
        };
        /* Which bound of the search value each placeholder takes. */
        static const int use_hi[][2] = {
            [FHIR_PFX_EQ] = {0, 1}, [FHIR_PFX_NE] = {0, 1}, [FHIR_PFX_LT] = {0, -1},
            [FHIR_PFX_GT] = {1, -1}, [FHIR_PFX_LE] = {1, -1}, [FHIR_PFX_GE] = {0, -1},
            [FHIR_PFX_SA] = {1, -1}, [FHIR_PFX_EB] = {0, -1},
        };
        const char *f = fmt[m->prefix];
        int k = 0;
        for (; *f; f++) {
            if (*f != '?') {
                tbuf_putc(&q->sql, *f);
                continue;
            }
            bi(q, use_hi[m->prefix][k++] ? m->hi : m->lo);
        }
        return;
    }
    }
}

static void cond_sql(sqlb *q, const fhir_query *fq, const fhir_cond *c)
{
    if (!strcmp(c->param, "_id")) {
        tbuf_puts(&q->sql, " AND r.id IN (");
        for (size_t i = 0; i < c->n; i++) {
            if (i) tbuf_puts(&q->sql, ",");
            bs(q, c->m[i].code);
        }
        tbuf_puts(&q->sql, ")");
        return;
    }
    tbuf_puts(&q->sql, " AND r.seq IN (SELECT seq FROM fhir_index WHERE param=");
    bs(q, c->param);
    if (fq->type) {
        tbuf_puts(&q->sql, " AND rtype=");
        bs(q, fq->type);
    }
    tbuf_puts(&q->sql, " AND (");
    for (size_t i = 0; i < c->n; i++) {
        if (i) tbuf_puts(&q->sql, " OR ");
        match_sql(q, c, &c->m[i]);
    }
    tbuf_puts(&q->sql, "))");
}

/* The cached statement for sql, prepared on a miss. */
static sqlite3_stmt *cached_stmt(fsq *q, const char *sql, fhir_store_error *err)
{
    for (size_t i = 0; i < STMT_CACHE; i++)
        if (q->cache[i].sql && !strcmp(q->cache[i].sql, sql)) return q->cache[i].st;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v3(q->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
    if (rc != SQLITE_OK) {
        sq_fail(q, rc, err, "preparing a search");
        return NULL;
    }
    cached *c = &q->cache[q->cache_next];
    q->cache_next = (q->cache_next + 1) % STMT_CACHE;
    sqlite3_finalize(c->st);
    free(c->sql);
    c->sql = xstrdup(sql);
    c->st = st;
    return st;
}

static fhir_store_status run_rows(fsq *q, sqlite3_stmt *st, size_t max, fhir_store_row_fn fn,
                                  void *ctx, bool *more, const char *doing, fhir_store_error *err)
{
    int rc;
    size_t n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (max && n == max) {
            if (more) *more = true;
            rc = SQLITE_DONE;
            break;
        }
        n++;
        fhir_version v = {sqlite3_column_int64(st, 3), sqlite3_column_int64(st, 4), false};
        const char *json = sqlite3_column_blob(st, 5);
        if (fn(ctx, sqlite3_column_int64(st, 0), (const char *)sqlite3_column_text(st, 1),
               (const char *)sqlite3_column_text(st, 2), &v, json,
               (size_t)sqlite3_column_bytes(st, 5))) {
            rc = SQLITE_DONE;
            break;
        }
    }
    done_stmt(st);
    return rc == SQLITE_DONE ? FHIR_STORE_OK : sq_fail(q, rc, err, doing);
}

/* The SQL and bindings of a search. The type test is written +r.type so
 * that SQLite never drives the query from the (type, id) index: the
 * conditions' index lookups give the few candidate rows by seq, and
 * without conditions the table is read in seq order up to the LIMIT. */
static void search_sql(const fhir_query *fq, sqlb *b)
{
    tbuf_puts(&b->sql, "SELECT r.seq, r.type, r.id, r.version, r.updated, r.json"
                       " FROM fhir_current r WHERE r.deleted=0");
    if (fq->type) {
        tbuf_puts(&b->sql, " AND +r.type=");
        bs(b, fq->type);
    }
    if (fq->after_seq) {
        tbuf_puts(&b->sql, " AND r.seq>");
        bi(b, fq->after_seq);
    }
    for (size_t i = 0; i < fq->nconds; i++) cond_sql(b, fq, &fq->conds[i]);
    tbuf_puts(&b->sql, " ORDER BY r.seq LIMIT ");
    bi(b, (int64_t)fq->count + 1);
}

static void sqlb_free(sqlb *b)
{
    for (size_t i = 0; i < b->n; i++) free(b->b[i].owned);
    free(b->b);
    tbuf_free(&b->sql);
}

static fhir_store_status sq_search(fhir_store *s, const fhir_query *fq, fhir_store_row_fn fn,
                                   void *ctx, bool *more, fhir_store_error *err)
{
    fsq *q = (fsq *)s;
    sqlb b = {TBUF_INIT, NULL, 0, 0};
    search_sql(fq, &b);
    fhir_store_status r = FHIR_STORE_OK;
    sqlite3_stmt *st = cached_stmt(q, tbuf_cstr(&b.sql), err);
    if (!st) {
        r = err ? err->code : FHIR_STORE_ERR_BACKEND;
        goto done;
    }
    for (size_t i = 0; i < b.n; i++) {
        if (b.b[i].is_int)
            sqlite3_bind_int64(st, (int)i + 1, b.b[i].i);
        else
            sqlite3_bind_text(st, (int)i + 1, b.b[i].owned ? b.b[i].owned : b.b[i].s, -1,
                              SQLITE_STATIC);
    }
    r = run_rows(q, st, fq->count, fn, ctx, more, "searching", err);
done:
    sqlb_free(&b);
    return r;
}

static fhir_store_status sq_include(fhir_store *s, int64_t seq, const char *param,
                                    fhir_store_row_fn fn, void *ctx, fhir_store_error *err)
{
    fsq *q = (fsq *)s;
    sqlite3_stmt *st = stmt(q, ST_INCLUDE, err);
    if (!st) return err ? err->code : FHIR_STORE_ERR_BACKEND;
    sqlite3_bind_int64(st, 1, seq);
    bind_str(st, 2, param);
    return run_rows(q, st, 0, fn, ctx, NULL, "reading included resources", err);
}

const fhir_store_ops fhir_store_sqlite_ops = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .current = sq_current,
    .write = sq_write,
    .read = sq_read,
    .history = sq_history,
    .search = sq_search,
    .include = sq_include,
};
