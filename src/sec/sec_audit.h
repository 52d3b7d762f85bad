/*
 * sec_audit: the tamper-evident audit trail.
 *
 * Records (who, what, which patient, when, from where, outcome) are
 * appended to the sec_db audit table in a hash chain: each record stores
 * prev, the hash of the record before it, and hash = SHA-256 of its
 * canonical encoding (sec_audit_hash: a version tag, then every field as a
 * netstring LEN:BYTES, in a fixed order, prev last). Changing a record
 * breaks its hash; deleting, inserting or reordering breaks a prev link.
 * Periodically (every seal_every records or seal_interval, and at close) the
 * writer seals the chain: a row with the last record's seq and hash and an
 * HMAC-SHA256 of both under the audit key, which is read from a key file or
 * the environment and never stored in the database, so rewriting the whole
 * chain cannot produce valid seals.
 *
 * Appends never touch the database on the caller's thread: sec_audit_add
 * copies the record into a bounded queue and a writer thread commits what
 * has gathered in one transaction (group commit), computing the chain
 * inside the transaction so several processes may append to one trail.
 * When the queue is full, sec_audit_add waits for room (back-pressure: a
 * record is never dropped).
 */
#ifndef TERN_SEC_AUDIT_H
#define TERN_SEC_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/tbuf.h"
#include "sec/sec_db.h"

#define SEC_AUDIT_KEY_MAX 256
#define SEC_AUDIT_KEY_MIN 16

/* The audit key: the contents of file (trailing newline trimmed) or, with
 * file NULL, of the environment variable TERN_AUDIT_KEY. SEC_ERR_NO_KEY when
 * neither is there; SEC_ERR_ARG when it is shorter than SEC_AUDIT_KEY_MIN. */
sec_status sec_audit_key_load(const char *file, uint8_t key[SEC_AUDIT_KEY_MAX], size_t *len,
                              sec_error *err);

/* The hash of r (its prev included, its seq and hash not) as hex. */
void sec_audit_hash(const sec_record *r, char out[SEC_SHA256_HEX]);
/* The MAC of a seal (upto, hash, at) under key, as hex. */
void sec_audit_seal_mac(const uint8_t *key, size_t klen, const sec_seal *s,
                        char out[SEC_SHA256_HEX]);

typedef struct sec_audit_options {
    uint32_t seal_every;       /* 0: 10000 */
    uint64_t seal_interval_ms; /* 0: 60 s */
    uint32_t queue;            /* 0: 65536 */
    const uint8_t *key;        /* NULL: records are chained but never sealed */
    size_t key_len;
} sec_audit_options;

typedef struct sec_audit sec_audit;

/* Opens its own handle on the database at location and starts the writer.
 * opt is copied (the key too). */
sec_status sec_audit_open(const char *location, const sec_audit_options *opt, sec_audit **out,
                          sec_error *err);

/* One record to append; strings borrowed for the call (copied). at 0: now.
 * outcome is "ok", "denied", "failed"... */
typedef struct sec_event {
    int64_t at;
    const char *actor, *role, *action, *channel, *patient, *source, *outcome, *detail;
} sec_event;

void sec_audit_add(sec_audit *a, const sec_event *ev);
/* Waits until everything added so far is committed. SEC_OK, or the last
 * write error. */
sec_status sec_audit_flush(sec_audit *a, sec_error *err);
/* Commits what is queued, seals, stops the writer and frees a (NULL is
 * fine). Returns the last write error, if any. */
sec_status sec_audit_close(sec_audit *a, sec_error *err);
/* Records committed so far by this handle. */
uint64_t sec_audit_written(sec_audit *a);

/* --- reading --------------------------------------------------------------------- */

typedef struct sec_verify {
    bool ok;
    int64_t records, seals;
    int64_t sealed_upto;   /* seq covered by the last good seal; 0: none */
    int64_t broken_at;     /* the first record (or seal id) that is wrong; 0 when ok */
    bool key_missing;      /* seals could not be checked */
    char problem[512];     /* what is wrong and where, when !ok */
} sec_verify;

/* Walks the whole chain and every seal. key NULL: seals are not checked
 * (out->key_missing). out->ok is false at the first problem found, which
 * out->problem describes; the return value is an error only when the
 * database cannot be read. */
sec_status sec_audit_verify(sec_db *db, const uint8_t *key, size_t klen, sec_verify *out,
                            sec_error *err);

/* Appends the records f selects to out as a FHIR R4 Bundle (type
 * collection) of AuditEvent resources. */
sec_status sec_audit_export_fhir(sec_db *db, const sec_audit_filter *f, tbuf *out, sec_error *err);

#endif
