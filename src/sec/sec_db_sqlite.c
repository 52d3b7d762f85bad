/*
 * sec_db_sqlite: the SQLite backend of sec_db.h.
 *
 * One file (WAL, synchronous=FULL, created 0600) with five tables: users,
 * idents (API tokens and client certificates), sessions, audit (seq is the
 * rowid: records are found in chain order by primary key) and seals. The
 * schema version is PRAGMA user_version, MIGRATIONS[v] taking v to v + 1,
 * as in store_sqlite.c. audit_begin is BEGIN IMMEDIATE, so two processes
 * appending to the chain take turns and each sees the other's tail.
 */
#include "sec/sec_db.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/mem.h"

static const char *const MIGRATIONS[] = {
    "CREATE TABLE users(name TEXT PRIMARY KEY, role TEXT NOT NULL, pw_hash TEXT NOT NULL,"
    " totp_secret TEXT NOT NULL, disabled INTEGER NOT NULL DEFAULT 0,"
    " failed INTEGER NOT NULL DEFAULT 0, locked_until INTEGER NOT NULL DEFAULT 0,"
    " last_totp_step INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL);"
    "CREATE TABLE idents(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
    " kind TEXT NOT NULL, role TEXT NOT NULL, channels TEXT NOT NULL, hash TEXT NOT NULL,"
    " subject TEXT NOT NULL, created_at INTEGER NOT NULL, revoked_at INTEGER NOT NULL DEFAULT 0,"
    " last_used_at INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX idents_hash ON idents(kind, hash);"
    "CREATE TABLE sessions(hash TEXT PRIMARY KEY, user TEXT NOT NULL,"
    " created_at INTEGER NOT NULL, last_used_at INTEGER NOT NULL,"
    " expires_at INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE INDEX sessions_user ON sessions(user);"
    "CREATE TABLE audit(seq INTEGER PRIMARY KEY, at INTEGER NOT NULL, actor TEXT NOT NULL,"
    " role TEXT NOT NULL, action TEXT NOT NULL, channel TEXT NOT NULL, patient TEXT NOT NULL,"
    " source TEXT NOT NULL, outcome TEXT NOT NULL, detail TEXT NOT NULL, prev TEXT NOT NULL,"
    " hash TEXT NOT NULL);"
    "CREATE INDEX audit_actor ON audit(actor, at);"
    "CREATE INDEX audit_patient ON audit(patient, at) WHERE patient <> '';"
    "CREATE INDEX audit_at ON audit(at);"
    "CREATE TABLE seals(id INTEGER PRIMARY KEY, upto INTEGER NOT NULL, at INTEGER NOT NULL,"
    " hash TEXT NOT NULL, mac TEXT NOT NULL);",
};
#define SCHEMA_VERSION ((int)(sizeof MIGRATIONS / sizeof MIGRATIONS[0]))

typedef struct sq_db {
    sec_db base;
    sqlite3 *db;
    char *path;
    sqlite3_stmt *ins_audit; /* hot: one per record */
} sq_db;

static sec_status sq_fail(sq_db *q, sec_error *err, const char *what)
{
    int rc = sqlite3_extended_errcode(q->db);
    sec_status st = (rc & 0xff) == SQLITE_CORRUPT || (rc & 0xff) == SQLITE_NOTADB
                        ? SEC_ERR_CORRUPT
                        : SEC_ERR_IO;
    return sec_fail(err, st, "%s in %s: %s", what, q->path, sqlite3_errmsg(q->db));
}

static sqlite3_stmt *prep(sq_db *q, const char *sql, sec_error *err)
{
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(q->db, sql, -1, &s, NULL) != SQLITE_OK) {
        sq_fail(q, err, "preparing a query");
        return NULL;
    }
    return s;
}

static void bind_text(sqlite3_stmt *s, int i, const char *v)
{
    sqlite3_bind_text(s, i, v ? v : "", -1, SQLITE_TRANSIENT);
}

static void col_copy(sqlite3_stmt *s, int i, char *out, size_t size)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    snprintf(out, size, "%s", t ? (const char *)t : "");
}

/* Steps a statement that returns no rows and finalizes it. */
static sec_status run(sq_db *q, sqlite3_stmt *s, sec_error *err, const char *what)
{
    if (!s) return err ? err->code : SEC_ERR_IO;
    int rc = sqlite3_step(s);
    sec_status st = SEC_OK;
    if (rc == SQLITE_CONSTRAINT) st = sec_fail(err, SEC_ERR_EXISTS, "%s: the name is taken", what);
    else if (rc != SQLITE_DONE) st = sq_fail(q, err, what);
    sqlite3_finalize(s);
    return st;
}

static sec_status migrate(sq_db *q, sec_error *err)
{
    if (sqlite3_exec(q->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return sq_fail(q, err, "opening the security database");
    sqlite3_stmt *s = prep(q, "PRAGMA user_version", err);
    if (!s) goto fail;
    int v = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int(s, 0) : 0;
    sqlite3_finalize(s);
    if (v > SCHEMA_VERSION) {
        sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
        return sec_fail(err, SEC_ERR_CORRUPT,
                        "%s has schema version %d; this Tern knows up to %d: use a newer Tern",
                        q->path, v, SCHEMA_VERSION);
    }
    for (; v < SCHEMA_VERSION; v++) {
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d", v + 1);
        if (sqlite3_exec(q->db, MIGRATIONS[v], NULL, NULL, NULL) != SQLITE_OK ||
            sqlite3_exec(q->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
            sq_fail(q, err, "creating the tables");
            goto fail;
        }
    }
    if (sqlite3_exec(q->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        sq_fail(q, err, "creating the tables");
        goto fail;
    }
    return SEC_OK;
fail:
    sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
    return err ? err->code : SEC_ERR_IO;
}

static void sq_close(sec_db *db)
{
    sq_db *q = (sq_db *)db;
    if (!q) return;
    sqlite3_finalize(q->ins_audit);
    sqlite3_close(q->db);
    free(q->path);
    free(q);
}

static sec_status sq_open(const char *location, sec_db **out, sec_error *err)
{
    *out = NULL;
    sq_db *q = xcalloc(1, sizeof *q);
    q->base.ops = &sec_db_sqlite_ops;
    q->path = xstrdup(location);
    /* Created 0600 (hashes and TOTP secrets are nobody else's to read;
     * SQLite gives -wal and -shm the same mode). An existing file is NOT
     * opened here: closing any descriptor of a database file drops every
     * POSIX lock this process holds on it, those of its other SQLite
     * handles included (the engine has two on this file), and another
     * process would then checkpoint and delete the WAL under them. */
    int fd = open(location, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno != EEXIST) {
        sec_fail(err, SEC_ERR_IO,
                 "cannot create the security database %s: %m; check the directory exists and "
                 "is writable (security.db)",
                 location);
        sq_close(&q->base);
        return SEC_ERR_IO;
    }
    if (fd >= 0) close(fd);
    sec_status st = SEC_OK;
    if (sqlite3_open_v2(location, &q->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
            SQLITE_OK ||
        sqlite3_busy_timeout(q->db, 10000) != SQLITE_OK ||
        sqlite3_exec(q->db,
                     "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;"
                     " PRAGMA foreign_keys = OFF",
                     NULL, NULL, NULL) != SQLITE_OK) {
        st = sq_fail(q, err, "opening the security database");
        goto fail;
    }
    if ((st = migrate(q, err)) != SEC_OK) goto fail;
    q->ins_audit = prep(q,
                        "INSERT INTO audit(seq, at, actor, role, action, channel, patient, source,"
                        " outcome, detail, prev, hash) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)",
                        err);
    if (!q->ins_audit) {
        st = err ? err->code : SEC_ERR_IO;
        goto fail;
    }
    *out = &q->base;
    return SEC_OK;
fail:
    sq_close(&q->base);
    return st;
}

/* --- users ------------------------------------------------------------------------ */

#define USER_COLS "name, role, pw_hash, totp_secret, disabled, failed, locked_until," \
                  " last_totp_step, created_at"

static void read_user(sqlite3_stmt *s, sec_user *u)
{
    memset(u, 0, sizeof *u);
    col_copy(s, 0, u->name, sizeof u->name);
    u->role = sec_role_from_name((const char *)sqlite3_column_text(s, 1));
    col_copy(s, 2, u->pw_hash, sizeof u->pw_hash);
    col_copy(s, 3, u->totp_secret, sizeof u->totp_secret);
    u->disabled = sqlite3_column_int(s, 4) != 0;
    u->failed = sqlite3_column_int(s, 5);
    u->locked_until = sqlite3_column_int64(s, 6);
    u->last_totp_step = sqlite3_column_int64(s, 7);
    u->created_at = sqlite3_column_int64(s, 8);
}

static sec_status sq_user_get(sec_db *db, const char *name, sec_user *out, sec_error *err)
{
    sq_db *q = (sq_db *)db;
    sqlite3_stmt *s = prep(q, "SELECT " USER_COLS " FROM users WHERE name = ?", err);
    if (!s) return err->code;
    bind_text(s, 1, name);
    int rc = sqlite3_step(s);
    sec_status st = SEC_OK;
    if (rc == SQLITE_ROW)
        read_user(s, out);
    else if (rc == SQLITE_DONE)
        st = sec_fail(err, SEC_ERR_NOT_FOUND, "there is no user '%s'", name);
    else
        st = sq_fail(q, err, "reading a user");
    sqlite3_finalize(s);
    return st;
}

static void bind_user(sqlite3_stmt *s, const sec_user *u)
{
    bind_text(s, 1, u->name);
    bind_text(s, 2, sec_role_name(u->role));
    bind_text(s, 3, u->pw_hash);
    bind_text(s, 4, u->totp_secret);
    sqlite3_bind_int(s, 5, u->disabled);
    sqlite3_bind_int(s, 6, u->failed);
    sqlite3_bind_int64(s, 7, u->locked_until);
    sqlite3_bind_int64(s, 8, u->last_totp_step);
    sqlite3_bind_int64(s, 9, u->created_at);
}

static sec_status sq_user_add(sec_db *db, const sec_user *u, sec_error *err)
{
    sq_db *q = (sq_db *)db;
    sqlite3_stmt *s = prep(q, "INSERT INTO users(" USER_COLS ") VALUES(?,?,?,?,?,?,?,?,?)", err);
    if (s) bind_user(s, u);
    return run(q, s, err, "adding a user");
}

static sec_status sq_user_update(sec_db *db, const sec_user *u, sec_error *err)
{
    sq_db *q = (sq_db *)db;
    sqlite3_stmt *s = prep(q,
                           "UPDATE users SET role = ?2, pw_hash = ?3, totp_secret = ?4,"
                           " disabled = ?5, failed = ?6, locked_until = ?7, last_totp_step = ?8,"
                           " created_at = ?9 WHERE name = ?1",
                           err);
    if (s) bind_user(s, u);
    sec_status st = run(q, s, err, "updating a user");
    if (st == SEC_OK && sqlite3_changes(q->db) == 0)
        st = sec_fail(err, SEC_ERR_NOT_FOUND, "there is no user '%s'", u->name);
    return st;
}

static sec_status sq_user_list(sec_db *db, sec_user_fn fn, void *ctx, sec_error *err)
{
    sq_db *q = (sq_db *)db;
    sqlite3_stmt *s = prep(q, "SELECT " USER_COLS " FROM users ORDER BY name", err);
    if (!s) return err->code;
    int rc;
    sec_user u;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        read_user(s, &u);
        if (!fn(ctx, &u)) break;
    }
    sec_status st = rc == SQLITE_ROW || rc == SQLITE_DONE ? SEC_OK : sq_fail(q, err, "listing users");
    sqlite3_finalize(s);
    return st;
}

static sec_status sq_user_count(sec_db *db, sec_role role, int64_t *out, sec_error *err)
{
    sq_db *q = (sq_db *)db;
    sqlite3_stmt *s = prep(q, "SELECT count(*) FROM users WHERE role = ? AND disabled = 0", err);
    if (!s) return err->code;
    bind_text(s, 1, sec_role_name(role));
    sec_status st = SEC_OK;
    if (sqlite3_step(s) == SQLITE_ROW)
        *out = sqlite3_column_int64(s, 0);
    else
        st = sq_fail(q, err, "counting users");
    sqlite3_finalize(s);
    return st;
}

/* --- system identities ---------------------------------------------------------- */

#define IDENT_COLS "id, name, kind, role, channels, hash, subject, created_at, revoked_at," \
                   " last_used_at"

static void read_ident(sqlite3_stmt *s, sec_ident *t)
{
    memset(t, 0, sizeof *t);
    t->id = sqlite3_column_int64(s, 0);
    col_copy(s, 1, t->name, sizeof t->name);
    const char *k = (const char *)sqlite3_column_text(s, 2);
    t->kind = k && !strcmp(k, "cert") ? SEC_IDENT_CERT : SEC_IDENT_TOKEN;
    t->role = sec_role_from_name((const char *)sqlite3_column_text(s, 3));
    col_copy(s, 4, t->channels, sizeof t->channels);
    col_copy(s, 5, t->hash, sizeof t->hash);
    col_copy(s, 6, t->subject, sizeof t->subject);
    t->created_at = sqlite3_column_int64(s, 7);
    t->revoked_at = sqlite3_column_int64(s, 8);
    t->last_used_at = sqlite3_column_int64(s, 9);
}

static sec_status sq_ident_add(sec_db *db, const sec_ident *t, sec_error *err)
{
    sq_db *q = (sq_db *)db;
    sqlite3_stmt *s = prep(q,
                           "INSERT INTO idents(name, kind, role, channels, hash, subject,"
                           " created_at) VALUES(?,?,?,?,?,?,?)",
                           err);
    if (s) {
        bind_text(s, 1, t->name);
        bind_text(s, 2, t->kind == SEC_IDENT_CERT ? "cert" : "token");
        bind_text(s, 3, sec_role_name(t->role));
        bind_text(s, 4, t->channels);
        bind_text(s, 5, t->hash);
        bind_text(s, 6, t->subject);
        sqlite3_bind_int64(s, 7, t->created_at);
    }
    return run(q, s, err, "adding a system identity");
}

static sec_status sq_ident_find(sec_db *db, sec_ident_kind kind, const char *hash, sec_ident *out,
                                sec_error *err)
{
    sq_db *q = (sq_db *)db;
    sqlite3_stmt *s = prep(q,
                           "SELECT " IDENT_COLS " FROM idents WHERE kind = ? AND hash = ?"
                           " AND revoked_at = 0",
                           err);
    if (!s) return err->code;
    bind_text(s, 1, kind == SEC_IDENT_CERT ? "cert" : "token");
    bind_text(s, 2, hash);
    int rc = sqlite3_step(s);
    sec_status st = SEC_OK;
    if (rc == SQLITE_ROW)
        read_ident(s, out);
    else if (rc == SQLITE_DONE)
        st = sec_fail(err, SEC_ERR_NOT_FOUND, "unknown or revoked token");
    else
        st = sq_fail(q, err, "looking up a token");
    sqlite3_finalize(s);
    return st;
}

static sec_status sq_ident_list(sec_db *db, sec_ident_fn fn, void *ctx, sec_error *err)
{
    sq_db *q = (sq_db *)db;
    sqlite3_stmt *s = prep(q, "SELECT " IDENT_COLS " FROM idents ORDER BY name", err);
    if (!s) return err->code;
    int rc;
    sec_ident t;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        read_ident(s, &t);
        if (!fn(ctx, &t)) break;
    }
    sec_status st =
        rc == SQLITE_ROW || rc == SQLITE_DONE ? SEC_OK : sq_fail(q, err, "listing tokens");
    sqlite3_finalize(s);
    return st;
}

static sec_status sq_ident_revoke(sec_db *db, const char *name, int64_t now, sec_error *err)
{
    sq_db *q = (sq_db *)db;
    sqlite3_stmt *s =
        prep(q, "UPDATE idents SET revoked_at = ? WHERE name = ? AND revoked_at = 0", err);
    if (s) {
        sqlite3_bind_int64(s, 1, now);
        bind_text(s, 2, name);
    }
    sec_status st = run(q, s, err, "revoking a token");
    if (st == SEC_OK && sqlite3_changes(q->db) == 0)
        st = sec_fail(err, SEC_ERR_NOT_FOUND, "there is no active token named '%s'", name);
    return st;
}

static sec_status sq_ident_touch(sec_db *db, int64_t id, int64_t now, sec_error *err)
{
    sq_db *q = (sq_db *)db;
    sqlite3_stmt *s = prep(q, "UPDATE idents SET last_used_at = ? WHERE id = ?", err);
    if (s) {
        sqlite3_bind_int64(s, 1, now);
        sqlite3_bind_int64(s, 2, id);
    }
    return run(q, s, err, "recording a token's use");
}

/* --- sessions --------------------------------------------------------------------- */

static sec_status sq_session_add(sec_db *db, const sec_session *x, sec_error *err)
{
    sq_db *q = (sq_db *)db;
    sqlite3_stmt *s = prep(q,
                           "INSERT INTO sessions(hash, user, created_at, last_used_at, expires_at)"
                           " VALUES(?,?,?,?,?)",
                           err);
    if (s) {
        bind_text(s, 1, x->hash);
        bind_text(s, 2, x->user);
        sqlite3_bind_int64(s, 3, x->created_at);
        sqlite3_bind_int64(s, 4, x->last_used_at);
        sqlite3_bind_int64(s, 5, x->expires_at);
    }
    return run(q, s, err, "starting a session");
}

static sec_status sq_session_get(sec_db *db, const char *hash, sec_session *out, sec_error *err)
{
    sq_db *q = (sq_db *)db;
    sqlite3_stmt *s = prep(q,
                           "SELECT hash, user, created_at, last_used_at, expires_at FROM sessions"
                           " WHERE hash = ?",
                           err);
    if (!s) return err->code;
    bind_text(s, 1, hash);
    int rc = sqlite3_step(s);
    sec_status st = SEC_OK;
    if (rc == SQLITE_ROW) {
        memset(out, 0, sizeof *out);
        col_copy(s, 0, out->hash, sizeof out->hash);
        col_copy(s, 1, out->user, sizeof out->user);
        out->created_at = sqlite3_column_int64(s, 2);
        out->last_used_at = sqlite3_column_int64(s, 3);
        out->expires_at = sqlite3_column_int64(s, 4);
    } else if (rc == SQLITE_DONE) {
        st = sec_fail(err, SEC_ERR_NOT_FOUND, "unknown or expired session");
    } else {
        st = sq_fail(q, err, "looking up a session");
    }
    sqlite3_finalize(s);
    return st;
}

static sec_status sq_session_touch(sec_db *db, const char *hash, int64_t now, sec_error *err)
{
    sq_db *q = (sq_db *)db;
    sqlite3_stmt *s = prep(q, "UPDATE sessions SET last_used_at = ? WHERE hash = ?", err);
    if (s) {
        sqlite3_bind_int64(s, 1, now);
        bind_text(s, 2, hash);
    }
    return run(q, s, err, "recording a session's use");
}

static sec_status sq_session_delete(sec_db *db, const char *hash, const char *user, sec_error *err)
{
    sq_db *q = (sq_db *)db;
    sqlite3_stmt *s = prep(q, hash ? "DELETE FROM sessions WHERE hash = ?"
                                   : "DELETE FROM sessions WHERE user = ?",
                           err);
    if (s) bind_text(s, 1, hash ? hash : user);
    return run(q, s, err, "ending sessions");
}

/* --- audit ----------------------------------------------------------------------- */

static sec_status sq_audit_begin(sec_db *db, int64_t *tail_seq, char tail_hash[SEC_SHA256_HEX],
                                 sec_error *err)
{
    sq_db *q = (sq_db *)db;
    if (sqlite3_exec(q->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return sq_fail(q, err, "appending to the audit trail");
    sqlite3_stmt *s = prep(q, "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", err);
    if (!s) goto fail;
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *tail_seq = sqlite3_column_int64(s, 0);
        col_copy(s, 1, tail_hash, SEC_SHA256_HEX);
    } else if (rc == SQLITE_DONE) {
        *tail_seq = 0;
        memset(tail_hash, '0', SEC_SHA256_HEX - 1);
        tail_hash[SEC_SHA256_HEX - 1] = '\0';
    } else {
        sqlite3_finalize(s);
        sq_fail(q, err, "reading the audit trail's tail");
        goto fail;
    }
    sqlite3_finalize(s);
    return SEC_OK;
fail:
    sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
    return err->code;
}

static sec_status sq_audit_insert(sec_db *db, const sec_record *r, sec_error *err)
{
    sq_db *q = (sq_db *)db;
    sqlite3_stmt *s = q->ins_audit;
    sqlite3_reset(s);
    sqlite3_bind_int64(s, 1, r->seq);
    sqlite3_bind_int64(s, 2, r->at);
    const char *v[] = {r->actor, r->role,    r->action, r->channel, r->patient,
                       r->source, r->outcome, r->detail, r->prev,    r->hash};
    for (int i = 0; i < 10; i++)
        sqlite3_bind_text(s, 3 + i, v[i] ? v[i] : "", -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return rc == SQLITE_DONE ? SEC_OK : sq_fail(q, err, "appending to the audit trail");
}

static sec_status sq_seal_insert(sec_db *db, const sec_seal *x, sec_error *err)
{
    sq_db *q = (sq_db *)db;
    sqlite3_stmt *s = prep(q, "INSERT INTO seals(upto, at, hash, mac) VALUES(?,?,?,?)", err);
    if (s) {
        sqlite3_bind_int64(s, 1, x->upto);
        sqlite3_bind_int64(s, 2, x->at);
        bind_text(s, 3, x->hash);
        bind_text(s, 4, x->mac);
    }
    return run(q, s, err, "sealing the audit trail");
}

static sec_status sq_audit_end(sec_db *db, bool commit, sec_error *err)
{
    sq_db *q = (sq_db *)db;
    if (commit && sqlite3_exec(q->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        sec_status st = sq_fail(q, err, "committing audit records");
        sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
        return st;
    }
    if (!commit) sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
    return SEC_OK;
}

static sec_status sq_audit_scan(sec_db *db, const sec_audit_filter *f, sec_record_fn fn, void *ctx,
                                sec_error *err)
{
    sq_db *q = (sq_db *)db;
    sqlite3_stmt *s = prep(q,
                           "SELECT seq, at, actor, role, action, channel, patient, source, outcome,"
                           " detail, prev, hash FROM audit WHERE (?1 IS NULL OR actor = ?1)"
                           " AND (?2 IS NULL OR patient = ?2) AND (?3 IS NULL OR action = ?3)"
                           " AND at >= ?4 ORDER BY seq LIMIT ?5",
                           err);
    if (!s) return err->code;
    sec_audit_filter none = {0};
    if (!f) f = &none;
    if (f->actor) sqlite3_bind_text(s, 1, f->actor, -1, SQLITE_STATIC);
    if (f->patient) sqlite3_bind_text(s, 2, f->patient, -1, SQLITE_STATIC);
    if (f->action) sqlite3_bind_text(s, 3, f->action, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, f->since);
    sqlite3_bind_int64(s, 5, f->limit > 0 ? f->limit : -1);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        sec_record r = {.seq = sqlite3_column_int64(s, 0), .at = sqlite3_column_int64(s, 1)};
        const char **v[] = {&r.actor,   &r.role,    &r.action,  &r.channel,
                            &r.patient, &r.source, &r.outcome, &r.detail};
        for (int i = 0; i < 8; i++) {
            const unsigned char *t = sqlite3_column_text(s, 2 + i);
            *v[i] = t ? (const char *)t : "";
        }
        col_copy(s, 10, r.prev, sizeof r.prev);
        col_copy(s, 11, r.hash, sizeof r.hash);
        if (!fn(ctx, &r)) break;
    }
    sec_status st =
        rc == SQLITE_ROW || rc == SQLITE_DONE ? SEC_OK : sq_fail(q, err, "reading the audit trail");
    sqlite3_finalize(s);
    return st;
}

static sec_status sq_seal_scan(sec_db *db, sec_seal_fn fn, void *ctx, sec_error *err)
{
    sq_db *q = (sq_db *)db;
    sqlite3_stmt *s = prep(q, "SELECT id, upto, at, hash, mac FROM seals ORDER BY id", err);
    if (!s) return err->code;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        sec_seal x = {.id = sqlite3_column_int64(s, 0),
                      .upto = sqlite3_column_int64(s, 1),
                      .at = sqlite3_column_int64(s, 2)};
        col_copy(s, 3, x.hash, sizeof x.hash);
        col_copy(s, 4, x.mac, sizeof x.mac);
        if (!fn(ctx, &x)) break;
    }
    sec_status st =
        rc == SQLITE_ROW || rc == SQLITE_DONE ? SEC_OK : sq_fail(q, err, "reading the seals");
    sqlite3_finalize(s);
    return st;
}

const sec_db_ops sec_db_sqlite_ops = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .user_get = sq_user_get,
    .user_add = sq_user_add,
    .user_update = sq_user_update,
    .user_list = sq_user_list,
    .user_count = sq_user_count,
    .ident_add = sq_ident_add,
    .ident_find = sq_ident_find,
    .ident_list = sq_ident_list,
    .ident_revoke = sq_ident_revoke,
    .ident_touch = sq_ident_touch,
    .session_add = sq_session_add,
    .session_get = sq_session_get,
    .session_touch = sq_session_touch,
    .session_delete = sq_session_delete,
    .audit_begin = sq_audit_begin,
    .audit_insert = sq_audit_insert,
    .seal_insert = sq_seal_insert,
    .audit_end = sq_audit_end,
    .audit_scan = sq_audit_scan,
    .seal_scan = sq_seal_scan,
};

/* --- the front: backend choice and errors ------------------------------------------ */

static const char *const STATUS_NAMES[] = {
    "ok", "invalid argument", "input/output error", "not found", "already exists",
    "denied", "locked", "corrupt or newer database", "cryptography failure", "no audit key",
};

const char *sec_strerror(sec_status s)
{
    return (unsigned)s < sizeof STATUS_NAMES / sizeof STATUS_NAMES[0] ? STATUS_NAMES[s]
                                                                       : "unknown error";
}

sec_status sec_fail(sec_error *err, sec_status code, const char *fmt, ...)
{
    if (err) {
        err->code = code;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->text, sizeof err->text, fmt, ap);
        va_end(ap);
    }
    return code;
}

sec_status sec_db_open(const char *location, sec_db **out, sec_error *err)
{
    *out = NULL;
    if (!location || !*location) return sec_fail(err, SEC_ERR_ARG, "no security database given");
    if (!strncmp(location, "sqlite:", 7)) location += 7;
    if (strstr(location, "://"))
        return sec_fail(err, SEC_ERR_ARG,
                        "the security database %s names a backend this build does not have; "
                        "use a file path (SQLite)",
                        location);
    return sec_db_sqlite_ops.open(location, out, err);
}

void sec_db_close(sec_db *db)
{
    if (db) db->ops->close(db);
}
