/*
 * sec: the security context of one process (the engine, or one CLI
 * command): the configuration's security section, a handle on the security
 * database for authentication, and the audit writer (sec_audit.h) with the
 * audit key. Everything that both decides and records goes through here, so
 * that every refusal is audited the same way.
 *
 * A context is used from one thread (the engine's loop, or the CLI); the
 * audit writer has its own thread and database handle.
 */
#ifndef TERN_SEC_H
#define TERN_SEC_H

#include "engine/config.h"
#include "sec/sec_audit.h"
#include "sec/sec_auth.h"
#include "sec/sec_db.h"
#include "sec/sec_role.h"

typedef struct sec_ctx {
    const config_security *cfg; /* borrowed: outlives the context */
    sec_db *db;
    sec_audit *audit;
    bool has_key;                    /* the audit key was found: the trail is sealed */
    char key_problem[256];           /* why not, when !has_key */
    uint8_t key[SEC_AUDIT_KEY_MAX];
    size_t key_len;
    /* PHI at rest (sec/keys.h): when set, the patient of an audit record is
     * stored as its keyed hash (the token the message store indexes), so
     * the trail names patients without holding their identifiers; `tern
     * audit search --patient` looks the token up. Borrowed; NULL: clear. */
    struct keyring *keys;
    /* Tokens checked in the last SEC_AUTH_CACHE_MS (sec_http.c), so a busy
     * API does not look every request's token up in the database. */
    struct sec_auth_cache *auth_cache;
} sec_ctx;

/* Opens the database (creating it) and starts the audit writer. A missing
 * audit key is not an error (key_problem says so; the trail is chained but
 * not sealed); an unreadable or too short one is. */
sec_status sec_ctx_open(const config_security *cfg, sec_ctx **out, sec_error *err);
/* Flushes and seals the audit trail, then frees c (NULL is fine). */
sec_status sec_ctx_close(sec_ctx *c, sec_error *err);

/* Appends an audit record for principal p (NULL: anonymous). */
void sec_record_event(sec_ctx *c, const sec_principal *p, const char *action, const char *channel,
                      const char *patient, const char *source, const char *outcome,
                      const char *detail);

/* sec_allowed, and an audit record "denied" (with the action, the channel
 * and where from) when it says no. */
bool sec_check(sec_ctx *c, const sec_principal *p, sec_action a, const char *channel,
               const char *source);

/* Times in ms since the epoch, from the real-time clock. */
int64_t sec_now_ms(void);

#endif
