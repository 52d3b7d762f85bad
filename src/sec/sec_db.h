/*
 * sec_db: where identities, sessions and the audit trail are kept; one
 * small interface over backends, like store.h.
 *
 * The SQLite backend (sec_db_sqlite.c) keeps its own database file beside
 * the message store (config security.db, default var/tern-sec.db), in WAL
 * mode, so the engine and the CLI share it. A PostgreSQL backend implements
 * sec_db_ops the same way; sec_db_open picks the backend from the location.
 *
 * Secrets never stored in the clear: passwords as Argon2id encodings, API
 * and session tokens as SHA-256 hex. The TOTP secret is stored as given
 * (base32): it has to be read back to check codes; encryption at rest is
 * the store's (issue 7, PHI at rest).
 *
 * The audit table is append-only by contract: no op updates or deletes a
 * record. Chaining (which hash goes in prev/hash) is sec_audit's business;
 * the backend gives it a transaction in which the tail cannot move
 * (audit_begin takes the write lock), so several processes append to one
 * chain. A handle is used by one thread at a time.
 */
#ifndef TERN_SEC_DB_H
#define TERN_SEC_DB_H

#include <stdbool.h>
#include <stdint.h>

#include "sec/sec_crypto.h"
#include "sec/sec_role.h"

typedef enum sec_status {
    SEC_OK = 0,
    SEC_ERR_ARG,        /* a bad argument (empty name, unknown role) */
    SEC_ERR_IO,         /* the database cannot be opened, read or written */
    SEC_ERR_NOT_FOUND,  /* no such user, token or session */
    SEC_ERR_EXISTS,     /* the name is taken */
    SEC_ERR_DENIED,     /* authentication failed or the role does not allow it */
    SEC_ERR_LOCKED,     /* too many failed logins: locked for a while */
    SEC_ERR_CORRUPT,    /* not a Tern security database, or newer */
    SEC_ERR_CRYPTO,     /* hashing or the random generator failed */
    SEC_ERR_NO_KEY,     /* no audit key was configured */
} sec_status;

const char *sec_strerror(sec_status s);

typedef struct sec_error {
    sec_status code;
    char text[256];
} sec_error;

/* Sets err (which may be NULL) and returns code. */
sec_status sec_fail(sec_error *err, sec_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

typedef struct sec_user {
    char name[64];
    sec_role role;
    char pw_hash[160];    /* Argon2id encoded form */
    char totp_secret[64]; /* base32 */
    bool disabled;
    int failed;           /* failed logins in a row */
    int64_t locked_until; /* ms; 0: not locked */
    int64_t last_totp_step; /* a code is accepted once */
    int64_t created_at;
} sec_user;

typedef enum sec_ident_kind { SEC_IDENT_TOKEN = 1, SEC_IDENT_CERT } sec_ident_kind;

/* A system identity: an API token (hash) or a client certificate (subject
 * and SHA-256 fingerprint as lower-case hex). */
typedef struct sec_ident {
    int64_t id;
    char name[64];
    sec_ident_kind kind;
    sec_role role;
    char channels[1024]; /* comma-separated */
    char hash[SEC_SHA256_HEX]; /* token: SHA-256 of the token; cert: the fingerprint */
    char subject[256];         /* cert only */
    int64_t created_at, revoked_at, last_used_at;
} sec_ident;

typedef struct sec_session {
    char hash[SEC_SHA256_HEX];
    char user[64];
    int64_t created_at, last_used_at, expires_at;
} sec_session;

/* One audit record. Strings are borrowed; NULL is stored as "". */
typedef struct sec_record {
    int64_t seq; /* 1, 2, 3... with no gap */
    int64_t at;  /* ms since the epoch */
    const char *actor, *role, *action, *channel, *patient, *source, *outcome, *detail;
    char prev[SEC_SHA256_HEX]; /* hash of record seq - 1 ("" for seq 1: 64 zeros) */
    char hash[SEC_SHA256_HEX];
} sec_record;

typedef struct sec_seal {
    int64_t id;
    int64_t upto; /* the seq of the last record sealed */
    int64_t at;
    char hash[SEC_SHA256_HEX]; /* that record's hash */
    char mac[SEC_SHA256_HEX];  /* HMAC-SHA256 under the audit key */
} sec_seal;

/* What audit_scan selects; zero means any. */
typedef struct sec_audit_filter {
    const char *actor, *patient, *action;
    int64_t since; /* at >= since */
    int64_t limit; /* 0: everything */
} sec_audit_filter;

typedef struct sec_db sec_db;
typedef bool (*sec_user_fn)(void *ctx, const sec_user *u);
typedef bool (*sec_ident_fn)(void *ctx, const sec_ident *t);
typedef bool (*sec_record_fn)(void *ctx, const sec_record *r);
typedef bool (*sec_seal_fn)(void *ctx, const sec_seal *s);

typedef struct sec_db_ops {
    const char *name;
    sec_status (*open)(const char *location, sec_db **out, sec_error *err);
    void (*close)(sec_db *db);
    sec_status (*user_get)(sec_db *db, const char *name, sec_user *out, sec_error *err);
    sec_status (*user_add)(sec_db *db, const sec_user *u, sec_error *err);
    sec_status (*user_update)(sec_db *db, const sec_user *u, sec_error *err);
    sec_status (*user_list)(sec_db *db, sec_user_fn fn, void *ctx, sec_error *err);
    /* active (not disabled) users with role */
    sec_status (*user_count)(sec_db *db, sec_role role, int64_t *out, sec_error *err);
    sec_status (*ident_add)(sec_db *db, const sec_ident *t, sec_error *err);
    sec_status (*ident_find)(sec_db *db, sec_ident_kind kind, const char *hash, sec_ident *out,
                             sec_error *err);
    sec_status (*ident_list)(sec_db *db, sec_ident_fn fn, void *ctx, sec_error *err);
    sec_status (*ident_revoke)(sec_db *db, const char *name, int64_t now, sec_error *err);
    sec_status (*ident_touch)(sec_db *db, int64_t id, int64_t now, sec_error *err);
    sec_status (*session_add)(sec_db *db, const sec_session *s, sec_error *err);
    sec_status (*session_get)(sec_db *db, const char *hash, sec_session *out, sec_error *err);
    sec_status (*session_touch)(sec_db *db, const char *hash, int64_t now, sec_error *err);
    /* hash NULL: every session of user */
    sec_status (*session_delete)(sec_db *db, const char *hash, const char *user, sec_error *err);
    /* audit: begin takes the write lock; tail is seq 0 and 64 zeros when empty */
    sec_status (*audit_begin)(sec_db *db, int64_t *tail_seq, char tail_hash[SEC_SHA256_HEX],
                              sec_error *err);
    sec_status (*audit_insert)(sec_db *db, const sec_record *r, sec_error *err);
    sec_status (*seal_insert)(sec_db *db, const sec_seal *s, sec_error *err);
    sec_status (*audit_end)(sec_db *db, bool commit, sec_error *err);
    /* records in seq order */
    sec_status (*audit_scan)(sec_db *db, const sec_audit_filter *f, sec_record_fn fn, void *ctx,
                             sec_error *err);
    sec_status (*seal_scan)(sec_db *db, sec_seal_fn fn, void *ctx, sec_error *err);
} sec_db_ops;

struct sec_db {
    const sec_db_ops *ops; /* a backend embeds sec_db first */
};

extern const sec_db_ops sec_db_sqlite_ops;

/* Opens (creating the file and schema) the database at location: a path or
 * "sqlite:PATH". On failure *out is NULL and err says why. */
sec_status sec_db_open(const char *location, sec_db **out, sec_error *err);
void sec_db_close(sec_db *db); /* NULL is fine */

#endif
