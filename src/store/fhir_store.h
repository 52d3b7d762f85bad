/*
 * fhir_store: the FHIR resource store behind Tern's FHIR REST API, one
 * interface over several backends (like store.h for messages).
 *
 * Per resource (type, id): the current version and every past version
 * (versionId 1, 2, ...; a delete writes a tombstone version). The stored
 * JSON text already carries id, meta.versionId and meta.lastUpdated, so a
 * read hands back the stored bytes as they are. Every write also replaces
 * the resource's rows in a search index (fhir_params.h), filled from the
 * resource at write time, so a search is an index lookup.
 *
 * fhir_store.c is the front: it checks arguments, stamps id and meta,
 * serializes, extracts index rows and then calls the backend (end of this
 * file; store/fhir_store_sqlite.c: WAL, synchronous=FULL). Backends see
 * text and rows only, never JSON trees.
 *
 * Invariants: a write outside fhir_store_begin/commit is committed durably
 * when it returns OK; inside, nothing is durable until fhir_store_commit,
 * and fhir_store_rollback undoes all of it. A failed write leaves nothing.
 * Times are ms since the epoch, given by the caller. A handle is used by one
 * thread at a time.
 */
#ifndef TERN_FHIR_STORE_H
#define TERN_FHIR_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/tbuf.h"
#include "fhir/fhir_params.h"

typedef enum fhir_store_status {
    FHIR_STORE_OK = 0,
    FHIR_STORE_ERR_ARG,         /* invalid argument (bad type, id, query) */
    FHIR_STORE_ERR_UNSUPPORTED, /* a backend this build does not have */
    FHIR_STORE_ERR_IO,          /* cannot create, open, read or write the files */
    FHIR_STORE_ERR_BUSY,        /* another process held the lock too long */
    FHIR_STORE_ERR_FULL,        /* disk full */
    FHIR_STORE_ERR_CORRUPT,     /* not a Tern FHIR store, or damaged */
    FHIR_STORE_ERR_NOT_FOUND,   /* no such resource or version */
    FHIR_STORE_ERR_GONE,        /* the resource (or that version) is deleted */
    FHIR_STORE_ERR_CONFLICT,    /* If-Match: the current version is another */
    FHIR_STORE_ERR_INVALID,     /* the resource has an invalid indexed value */
    FHIR_STORE_ERR_BACKEND,     /* anything else; text has the details */
} fhir_store_status;

/* Static name of a status; never NULL. */
const char *fhir_store_strerror(fhir_store_status s);

typedef struct fhir_store_error {
    fhir_store_status code;
    char text[256]; /* what was being done and what went wrong */
} fhir_store_error;

typedef struct fhir_store fhir_store;

/* Version facts of one resource version. */
typedef struct fhir_version {
    int64_t version;    /* versionId, from 1 */
    int64_t updated_ms; /* meta.lastUpdated */
    bool deleted;       /* a delete tombstone */
} fhir_version;

/* Opens (creating file, directories and schema) the store at location: a
 * path or "sqlite:PATH". On success *out is a new handle the caller closes. */
fhir_store_status fhir_store_open(const char *location, fhir_store **out, fhir_store_error *err);
/* Closes; NULL allowed. */
void fhir_store_close(fhir_store *s);

/* Encrypts PHI at rest with keys (sec/keys.h; borrowed, must outlive the
 * handle), as the message store does (docs/security-at-rest.md): the
 * resource JSON of every version is sealed (AES-256-GCM); token and string
 * search values are stored as keyed hashes (strings: one per prefix, up to
 * FHIR_SEAL_PREFIX_MAX characters, and one for the whole value), so that
 * searches keep working by equality; references and dates stay as they are
 * (ids are already pseudonyms; dates are ranges the index must compare).
 * Resources written in clear before stay readable. */
struct keyring;
void fhir_store_set_keys(fhir_store *s, struct keyring *keys);
#define FHIR_SEAL_PREFIX_MAX 64

/* Transactions: every write between begin and commit is applied at once or
 * not at all. No nesting. Rollback of no transaction is a no-op. */
fhir_store_status fhir_store_begin(fhir_store *s, fhir_store_error *err);
fhir_store_status fhir_store_commit(fhir_store *s, fhir_store_error *err);
void fhir_store_rollback(fhir_store *s);

/* What a write did. json (caller frees with tbuf_free) gets the stored
 * text, except for deletes. */
typedef struct fhir_write_result {
    char id[65];
    fhir_version v;
    bool created; /* no live version existed before */
    tbuf json;
} fhir_write_result;

/* Writes res (a JSON object whose resourceType is type; borrowed, but its
 * id and meta are set in place) as the next version of type/id. id NULL:
 * a new server-assigned id (create). if_match > 0: fails with CONFLICT
 * unless the current version is if_match. INVALID when an indexed value is
 * malformed (err says which). */
fhir_store_status fhir_store_put(fhir_store *s, const char *type, const char *id, json_t *res,
                                 int64_t if_match, int64_t now_ms, fhir_write_result *out,
                                 fhir_store_error *err);
/* Writes a delete tombstone for type/id. Deleting what does not exist or is
 * already deleted succeeds with out->v.version 0 and changes nothing. */
fhir_store_status fhir_store_delete(fhir_store *s, const char *type, const char *id,
                                    int64_t if_match, int64_t now_ms, fhir_write_result *out,
                                    fhir_store_error *err);

/* Reads type/id at version (0: current) and appends its stored JSON to json
 * (untouched on failure). NOT_FOUND when there is no such resource or
 * version; GONE (with *v filled) when it is a delete tombstone. v may be
 * NULL. */
fhir_store_status fhir_store_read(fhir_store *s, const char *type, const char *id, int64_t version,
                                  fhir_version *v, tbuf *json, fhir_store_error *err);

/* Called per row; json[0..len) is borrowed for the call (NULL for a
 * tombstone). Return nonzero to stop. */
typedef int (*fhir_store_row_fn)(void *ctx, int64_t seq, const char *type, const char *id,
                                 const fhir_version *v, const char *json, size_t len);

/* Every version of type/id, newest first (at most limit; 0: all). */
fhir_store_status fhir_store_history(fhir_store *s, const char *type, const char *id,
                                     size_t limit, fhir_store_row_fn fn, void *ctx,
                                     fhir_store_error *err);

/* --- search ------------------------------------------------------------------ */

typedef enum fhir_prefix {
    FHIR_PFX_EQ = 0, FHIR_PFX_NE, FHIR_PFX_LT, FHIR_PFX_GT,
    FHIR_PFX_LE, FHIR_PFX_GE, FHIR_PFX_SA, FHIR_PFX_EB,
} fhir_prefix;

/* One value of a condition; the values of a condition are ORed. */
typedef struct fhir_match {
    /* token: sys NULL = any system, "" = no system; code NULL = any code.
     * string: text normalized, matched as a prefix (exact: whole value).
     * reference: sys = target type or NULL, code = id. */
    const char *sys;
    const char *code;
    bool exact;         /* string:exact */
    fhir_prefix prefix; /* date */
    int64_t lo, hi;     /* date: the value's range */
} fhir_match;

/* One parameter of a search; conditions are ANDed. param "_id" matches
 * ids (code) on any type. */
typedef struct fhir_cond {
    const char *param;
    fhir_param_kind kind;
    const fhir_match *m;
    size_t n;
} fhir_cond;

typedef struct fhir_query {
    const char *type; /* NULL: every type (compartments) */
    const fhir_cond *conds;
    size_t nconds;
    int64_t after_seq; /* paging: rows with seq > after_seq */
    size_t count;      /* page size (> 0) */
} fhir_query;

/* Live resources matching q in seq order (stable: a resource keeps its seq
 * across updates), at most q->count. *more says whether another page
 * exists; the last row's seq is the next page's after_seq. */
fhir_store_status fhir_store_search(fhir_store *s, const fhir_query *q, fhir_store_row_fn fn,
                                    void *ctx, bool *more, fhir_store_error *err);

/* The live resources that reference param of the resource at seq points to
 * (for _include). */
fhir_store_status fhir_store_include(fhir_store *s, int64_t seq, const char *param,
                                     fhir_store_row_fn fn, void *ctx, fhir_store_error *err);

/* --- backend interface: for fhir_store.c and fhir_store_<backend>.c only -- */

/* A version to write, prepared by the front. */
typedef struct fhir_store_row {
    const char *type, *id;
    fhir_version v;
    const char *json; /* NULL for a tombstone */
    size_t len;
    const fhir_index_rows *index;
} fhir_store_row;

typedef struct fhir_store_ops {
    const char *name;
    fhir_store_status (*open)(const char *location, fhir_store **out, fhir_store_error *err);
    void (*close)(fhir_store *s);
    fhir_store_status (*begin)(fhir_store *s, fhir_store_error *err);
    fhir_store_status (*commit)(fhir_store *s, fhir_store_error *err);
    void (*rollback)(fhir_store *s);
    /* The current version facts; NOT_FOUND when none. */
    fhir_store_status (*current)(fhir_store *s, const char *type, const char *id,
                                 fhir_version *v, fhir_store_error *err);
    fhir_store_status (*write)(fhir_store *s, const fhir_store_row *row, fhir_store_error *err);
    fhir_store_status (*read)(fhir_store *s, const char *type, const char *id, int64_t version,
                              fhir_version *v, tbuf *json, fhir_store_error *err);
    fhir_store_status (*history)(fhir_store *s, const char *type, const char *id, size_t limit,
                                 fhir_store_row_fn fn, void *ctx, fhir_store_error *err);
    fhir_store_status (*search)(fhir_store *s, const fhir_query *q, fhir_store_row_fn fn,
                                void *ctx, bool *more, fhir_store_error *err);
    fhir_store_status (*include)(fhir_store *s, int64_t seq, const char *param,
                                 fhir_store_row_fn fn, void *ctx, fhir_store_error *err);
} fhir_store_ops;

struct fhir_store {
    const fhir_store_ops *ops; /* never NULL */
    bool in_tx;                /* the front's view: between begin and commit */
    struct keyring *keys;      /* fhir_store_set_keys; NULL: stored in clear */
};

extern const fhir_store_ops fhir_store_sqlite_ops;

/* Sets err->code, formats err->text; returns code. */
fhir_store_status fhir_store_fail(fhir_store_error *err, fhir_store_status code, const char *fmt,
                                  ...) __attribute__((format(printf, 3, 4)));

#endif
