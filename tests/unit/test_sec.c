/*
 * Unit tests for src/sec: TOTP against the RFC 6238 test vectors, base32,
 * Argon2id hashing and checking, login with lockout and one-time codes,
 * session idle and absolute expiry, API tokens (stored hashed, revoked,
 * bound to channels), the role table (for each role, what it may NOT do is
 * refused), and the audit chain: intact, then each kind of tampering
 * (changed, deleted, reordered, inserted record, rewritten chain, wrong
 * key, truncated end) detected at the right record.
 *
 * TERN_AUDIT_BENCH=N appends N records and prints the rate (run it in the
 * release build: TERN_AUDIT_BENCH=200000 build/tests/test_sec).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sec/sec.h"

#define T0 INT64_C(1767225600000) /* 2026-01-01T00:00:00Z */
#define KEY "0123456789abcdef0123456789abcdef"

static char dir[64];
static char dbpath[128];

static int setup(void **state)
{
    snprintf(dir, sizeof dir, "/tmp/tern-sec-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(dbpath, sizeof dbpath, "%s/sec.db", dir);
    return 0;
}

static int teardown(void **state)
{
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static config_security test_cfg(void)
{
    config_security c;
    config_security_default(&c, NULL);
    c.argon2_memory_kib = 64; /* fast tests; real costs are the defaults */
    c.argon2_iterations = 1;
    c.lockout_attempts = 3;
    c.lockout_ms = 60000;
    c.session_idle_ms = 10 * 60000;
    c.session_max_ms = 60 * 60000;
    return c;
}

/* --- TOTP ------------------------------------------------------------------------- */

static void test_totp_rfc6238_vectors(void **state)
{
    /* RFC 6238 appendix B, SHA-1 seed "12345678901234567890"; 6 digits are
     * the last 6 of the 8 the RFC prints */
    const uint8_t *key = (const uint8_t *)"12345678901234567890";
    struct {
        uint64_t t;
        uint32_t code;
    } v[] = {{59, 287082},         {1111111109, 81804}, {1111111111, 50471},
             {1234567890, 5924},   {2000000000, 279037}, {20000000000ull, 353130}};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        assert_int_equal(sec_totp_at(key, 20, v[i].t / 30), v[i].code);
    char b32[64];
    sec_base32(key, 20, b32);
    assert_string_equal(b32, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    uint64_t step = 0;
    assert_true(sec_totp_check(b32, "005924", 1234567890, &step));
    assert_int_equal(step, 1234567890 / 30);
    assert_true(sec_totp_check(b32, "005924", 1234567890 + 30, NULL));  /* one step late */
    assert_true(sec_totp_check(b32, "005924", 1234567890 - 30, NULL));  /* one step early */
    assert_false(sec_totp_check(b32, "005924", 1234567890 + 90, NULL)); /* too late */
    assert_false(sec_totp_check(b32, "5924", 1234567890, NULL));
    assert_false(sec_totp_check(b32, "00592x", 1234567890, NULL));
    uint8_t back[32];
    assert_int_equal(sec_base32_decode("gezd gnbv-gy3tqojqgezdgnbvgy3tqojq", back, sizeof back), 20);
    assert_memory_equal(back, key, 20);
    assert_int_equal(sec_base32_decode("GEZ1", back, sizeof back), -1);
}

/* --- passwords, login, lockout, sessions --------------------------------------------- */

static void code_now(const char *secret, int64_t now_ms, char out[8])
{
    uint8_t key[64];
    int n = sec_base32_decode(secret, key, sizeof key);
    assert_true(n > 0);
    snprintf(out, 8, "%06u", sec_totp_at(key, (size_t)n, (uint64_t)(now_ms / 1000) / 30));
}

static void test_argon2(void **state)
{
    config_security c = test_cfg();
    char h[160];
    assert_int_equal(sec_password_hash(&c, "correct horse battery", h, sizeof h, NULL), SEC_OK);
    assert_true(!strncmp(h, "$argon2id$v=19$m=64,t=1,p=1$", 28));
    assert_true(sec_password_check(h, "correct horse battery"));
    assert_false(sec_password_check(h, "correct horse batterx"));
    assert_false(sec_password_check("", "x"));
    char h2[160];
    assert_int_equal(sec_password_hash(&c, "correct horse battery", h2, sizeof h2, NULL), SEC_OK);
    assert_string_not_equal(h, h2); /* salted */
}

static void test_login_lockout_sessions(void **state)
{
    config_security c = test_cfg();
    sec_db *db;
    sec_error err;
    assert_int_equal(sec_db_open(dbpath, &db, &err), SEC_OK);
    char secret[64], token[SEC_TOKEN_TEXT], code[8];
    assert_int_equal(sec_user_create(db, &c, "ann", SEC_ROLE_ANALYST, "short", T0, secret, &err),
                     SEC_ERR_ARG);
    assert_int_equal(sec_user_create(db, &c, "an n", SEC_ROLE_ANALYST, "long enough pw", T0, secret,
                                     &err),
                     SEC_ERR_ARG);
    assert_int_equal(
        sec_user_create(db, &c, "ann", SEC_ROLE_ANALYST, "long enough pw", T0, secret, &err), SEC_OK);
    assert_int_equal(
        sec_user_create(db, &c, "ann", SEC_ROLE_ADMIN, "long enough pw", T0, secret, &err),
        SEC_ERR_EXISTS);
    sec_principal p = {0};
    int64_t now = T0 + 1000;
    code_now(secret, now, code);
    /* wrong password, right code: denied; unknown user: the same answer */
    assert_int_equal(sec_login(db, &c, "ann", "wrong password", code, now, token, &p, &err),
                     SEC_ERR_DENIED);
    assert_int_equal(sec_login(db, &c, "bob", "long enough pw", code, now, token, &p, &err),
                     SEC_ERR_DENIED);
    /* right password, wrong code */
    assert_int_equal(sec_login(db, &c, "ann", "long enough pw", "000000", now, token, &p, &err),
                     strcmp(code, "000000") ? SEC_ERR_DENIED : SEC_OK);
    /* success resets the count */
    assert_int_equal(sec_login(db, &c, "ann", "long enough pw", code, now, token, &p, &err),
                     SEC_OK);
    assert_int_equal(p.role, SEC_ROLE_ANALYST);
    assert_string_equal(p.name, "ann");
    assert_true(!strncmp(token, "ternses_", 8));
    /* the same code twice is refused (replay) */
    assert_int_equal(sec_login(db, &c, "ann", "long enough pw", code, now, token, &p, &err),
                     SEC_ERR_DENIED);
    /* three failures in a row lock the account, even for the right password */
    now += 31000;
    /* (the replayed code above was the first failure) */
    assert_int_equal(sec_login(db, &c, "ann", "bad password!", "123456", now, token, &p, &err),
                     SEC_ERR_DENIED);
    code_now(secret, now, code);
    assert_int_equal(sec_login(db, &c, "ann", "bad password!", code, now, token, &p, &err),
                     SEC_ERR_DENIED);
    assert_int_equal(sec_login(db, &c, "ann", "long enough pw", code, now, token, &p, &err),
                     SEC_ERR_LOCKED);
    assert_non_null(strstr(err.text, "locked"));
    /* after the lockout, it works again */
    now += 61000;
    code_now(secret, now, code);
    assert_int_equal(sec_login(db, &c, "ann", "long enough pw", code, now, token, &p, &err),
                     SEC_OK);
    /* the session authenticates; idle expiry */
    sec_principal q = {0};
    assert_int_equal(sec_authenticate(db, &c, token, now + 1000, &q, &err), SEC_OK);
    assert_int_equal(q.kind, SEC_KIND_USER);
    assert_int_equal(q.role, SEC_ROLE_ANALYST);
    sec_principal_clear(&q);
    assert_int_equal(sec_authenticate(db, &c, token, now + 9 * 60000, &q, &err), SEC_OK);
    sec_principal_clear(&q);
    /* used at +9 min, so still alive at +18 min, dead 10 min after the last use */
    assert_int_equal(sec_authenticate(db, &c, token, now + 18 * 60000, &q, &err), SEC_OK);
    sec_principal_clear(&q);
    assert_int_equal(sec_authenticate(db, &c, token, now + 29 * 60000, &q, &err), SEC_ERR_DENIED);
    /* absolute expiry: used every 5 minutes, still dead after session_max */
    now += 40 * 60000;
    code_now(secret, now, code);
    assert_int_equal(sec_login(db, &c, "ann", "long enough pw", code, now, token, &p, &err),
                     SEC_OK);
    int64_t t = now;
    for (; t < now + 60 * 60000; t += 5 * 60000) {
        assert_int_equal(sec_authenticate(db, &c, token, t, &q, &err), SEC_OK);
        sec_principal_clear(&q);
    }
    assert_int_equal(sec_authenticate(db, &c, token, now + 60 * 60000, &q, &err), SEC_ERR_DENIED);
    /* disabling ends sessions and refuses logins */
    now += 2 * 60 * 60000;
    code_now(secret, now, code);
    assert_int_equal(sec_login(db, &c, "ann", "long enough pw", code, now, token, &p, &err),
                     SEC_OK);
    assert_int_equal(sec_user_set_disabled(db, "ann", true, &err), SEC_OK);
    assert_int_equal(sec_authenticate(db, &c, token, now + 1, &q, &err), SEC_ERR_DENIED);
    now += 31000;
    code_now(secret, now, code);
    assert_int_equal(sec_login(db, &c, "ann", "long enough pw", code, now, token, &p, &err),
                     SEC_ERR_LOCKED);
    sec_principal_clear(&p);
    sec_db_close(db);
}

static void test_tokens(void **state)
{
    config_security c = test_cfg();
    sec_db *db;
    sec_error err;
    assert_int_equal(sec_db_open(dbpath, &db, &err), SEC_OK);
    char token[SEC_TOKEN_TEXT], hash[SEC_SHA256_HEX];
    assert_int_equal(sec_token_create(db, "lab", SEC_ROLE_SYSTEM, NULL, T0, token, &err),
                     SEC_ERR_ARG);
    assert_int_equal(sec_token_create(db, "lab", SEC_ROLE_SYSTEM, "lab-in,lab-2", T0, token, &err),
                     SEC_OK);
    assert_int_equal(strlen(token), 72);
    assert_true(!strncmp(token, "ternapi_", 8));
    /* only the hash is stored */
    sqlite3 *raw;
    assert_int_equal(sqlite3_open(dbpath, &raw), SQLITE_OK);
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_prepare_v2(raw, "SELECT hash FROM idents WHERE name = 'lab'", -1, &s,
                                        NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    sec_sha256_hex(token, hash);
    assert_string_equal((const char *)sqlite3_column_text(s, 0), hash);
    sqlite3_finalize(s);
    assert_int_equal(sqlite3_prepare_v2(raw, "SELECT count(*) FROM idents WHERE hash LIKE ?1 OR"
                                             " channels LIKE ?1 OR name LIKE ?1",
                                        -1, &s, NULL),
                     SQLITE_OK);
    char like[80];
    snprintf(like, sizeof like, "%%%s%%", token + 8);
    sqlite3_bind_text(s, 1, like, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(s, 0), 0);
    sqlite3_finalize(s);
    sqlite3_close(raw);

    sec_principal p = {0};
    assert_int_equal(sec_authenticate(db, &c, token, T0, &p, &err), SEC_OK);
    assert_int_equal(p.kind, SEC_KIND_TOKEN);
    assert_string_equal(p.name, "token:lab");
    assert_true(sec_allowed(&p, SEC_MESSAGE_POST, "lab-in"));
    assert_true(sec_allowed(&p, SEC_MESSAGE_POST, "lab-2"));
    assert_false(sec_allowed(&p, SEC_MESSAGE_POST, "lab"));
    assert_false(sec_allowed(&p, SEC_MESSAGE_POST, "adt-in"));
    assert_false(sec_allowed(&p, SEC_MESSAGE_POST, NULL));
    sec_principal_clear(&p);
    /* a token one character off is unknown */
    char bad[SEC_TOKEN_TEXT];
    memcpy(bad, token, sizeof bad);
    bad[20] = bad[20] == 'a' ? 'b' : 'a';
    assert_int_equal(sec_authenticate(db, &c, bad, T0, &p, &err), SEC_ERR_DENIED);
    assert_int_equal(sec_authenticate(db, &c, "ternapi_short", T0, &p, &err), SEC_ERR_DENIED);
    assert_int_equal(db->ops->ident_revoke(db, "lab", T0, &err), SEC_OK);
    assert_int_equal(sec_authenticate(db, &c, token, T0, &p, &err), SEC_ERR_DENIED);
    /* certificates: stored by fingerprint, bound to channels */
    const char *fp = "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:"
                     "CD:EF:01:23:45:67:89";
    assert_int_equal(sec_cert_create(db, "lis", fp, "CN=lis", "lab-in", T0, &err), SEC_OK);
    assert_int_equal(sec_authenticate_cert(db, fp, &p, &err), SEC_OK);
    assert_string_equal(p.name, "cert:lis");
    assert_true(sec_allowed(&p, SEC_MESSAGE_POST, "lab-in"));
    assert_false(sec_allowed(&p, SEC_MESSAGE_POST, "lab-2"));
    sec_principal_clear(&p);
    sec_db_close(db);
}

/* --- roles ------------------------------------------------------------------------- */

static void test_roles(void **state)
{
    /* what each role may do; everything else must be refused */
    const struct {
        sec_role role;
        const sec_action *may;
        size_t n;
    } table[] = {
        {SEC_ROLE_ENGINEER,
         (const sec_action[]){SEC_CONFIG_WRITE, SEC_MESSAGE_REPROCESS, SEC_MESSAGE_EDIT,
                              SEC_MESSAGE_READ},
         4},
        {SEC_ROLE_ANALYST, (const sec_action[]){SEC_MESSAGE_READ, SEC_MESSAGE_EXPORT, SEC_FHIR_READ},
         3},
        {SEC_ROLE_AUDITOR, (const sec_action[]){SEC_AUDIT_READ}, 1},
        {SEC_ROLE_SYSTEM, (const sec_action[]){SEC_MESSAGE_POST, SEC_FHIR_WRITE}, 2},
    };
    for (size_t r = 0; r < sizeof table / sizeof table[0]; r++) {
        sec_principal p = {.kind = SEC_KIND_USER, .role = table[r].role};
        if (p.role == SEC_ROLE_SYSTEM) p.channels = strdup("c1");
        for (int a = 0; a < SEC_ACTION_COUNT; a++) {
            bool may = false;
            for (size_t k = 0; k < table[r].n; k++)
                may = may || table[r].may[k] == (sec_action)a;
            bool got = sec_allowed(&p, (sec_action)a, "c1");
            if (got != may)
                fail_msg("role %s, action %s: expected %s", sec_role_name(p.role),
                         sec_action_name((sec_action)a), may ? "allowed" : "refused");
        }
        sec_principal_clear(&p);
    }
    sec_principal admin = {.kind = SEC_KIND_USER, .role = SEC_ROLE_ADMIN};
    for (int a = 0; a < SEC_ACTION_COUNT; a++)
        assert_true(sec_allowed(&admin, (sec_action)a, "any"));
    sec_principal anon = {0};
    for (int a = 0; a < SEC_ACTION_COUNT; a++)
        assert_false(sec_allowed(&anon, (sec_action)a, "any"));
    assert_false(sec_allowed(NULL, SEC_MESSAGE_READ, NULL));
    /* a system identity without channels may post nowhere */
    sec_principal sys = {.kind = SEC_KIND_TOKEN, .role = SEC_ROLE_SYSTEM};
    assert_false(sec_allowed(&sys, SEC_MESSAGE_POST, "c1"));
    assert_int_equal(sec_role_from_name("auditor"), SEC_ROLE_AUDITOR);
    assert_int_equal(sec_role_from_name("root"), SEC_ROLE_NONE);
}

/* --- the audit chain --------------------------------------------------------------------- */

/* A trail of n records, sealed every 5 records and at close. */
static void make_trail(int n)
{
    unlink(dbpath);
    sec_audit_options o = {.seal_every = 5, .key = (const uint8_t *)KEY, .key_len = strlen(KEY)};
    sec_audit *a;
    sec_error err;
    assert_int_equal(sec_audit_open(dbpath, &o, &a, &err), SEC_OK);
    for (int i = 1; i <= n; i++) {
        char patient[16];
        snprintf(patient, sizeof patient, "P%d", i);
        sec_event ev = {.at = T0 + i, .actor = i % 2 ? "ann" : "bob", .role = "analyst",
                        .action = "message.view", .patient = patient, .source = "cli",
                        .outcome = "ok"};
        sec_audit_add(a, &ev);
        if (i % 7 == 0) assert_int_equal(sec_audit_flush(a, &err), SEC_OK);
    }
    assert_int_equal(sec_audit_close(a, &err), SEC_OK);
}

static void sql(const char *q)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(dbpath, &db), SQLITE_OK);
    char *msg = NULL;
    if (sqlite3_exec(db, q, NULL, NULL, &msg) != SQLITE_OK) fail_msg("%s: %s", q, msg);
    sqlite3_close(db);
}

static sec_verify verify_with(const char *key)
{
    sec_db *db;
    sec_error err;
    assert_int_equal(sec_db_open(dbpath, &db, &err), SEC_OK);
    sec_verify v;
    assert_int_equal(sec_audit_verify(db, (const uint8_t *)key, key ? strlen(key) : 0, &v, &err),
                     SEC_OK);
    sec_db_close(db);
    return v;
}

static void expect_broken(const char *key, int64_t at, const char *words)
{
    sec_verify v = verify_with(key);
    if (v.ok) fail_msg("tampering not detected (expected at %lld: %s)", (long long)at, words);
    if ((at && v.broken_at != at) || !strstr(v.problem, words))
        fail_msg("expected a break at %lld (%s), got %lld: %s", (long long)at, words,
                 (long long)v.broken_at, v.problem);
}

static void test_audit_chain(void **state)
{
    make_trail(23);
    sec_verify v = verify_with(KEY);
    assert_true(v.ok);
    assert_int_equal(v.records, 23);
    assert_int_equal(v.sealed_upto, 23); /* sealed at close */
    assert_true(v.seals >= 4);

    /* changed */
    sql("UPDATE audit SET patient = 'P999' WHERE seq = 9");
    expect_broken(KEY, 9, "was changed");
    /* deleted */
    make_trail(23);
    sql("DELETE FROM audit WHERE seq = 12");
    expect_broken(KEY, 12, "missing (deleted)");
    /* deleted, and the rest renumbered to hide the gap */
    make_trail(23);
    sql("DELETE FROM audit WHERE seq = 12; UPDATE audit SET seq = seq - 1 WHERE seq > 12");
    expect_broken(KEY, 12, "does not follow record 11");
    /* reordered: records 14 and 15 swap places */
    make_trail(23);
    sql("UPDATE audit SET seq = -1 WHERE seq = 14; UPDATE audit SET seq = 14 WHERE seq = 15;"
        " UPDATE audit SET seq = 15 WHERE seq = -1");
    expect_broken(KEY, 14, "does not follow record 13");
    /* inserted in the middle, everything after moved up */
    make_trail(23);
    sql("UPDATE audit SET seq = seq + 1000 WHERE seq >= 6; UPDATE audit SET seq = seq - 999 WHERE"
        " seq >= 1006; INSERT INTO audit SELECT 6, at, 'mallory', role, action, channel, patient,"
        " source, outcome, detail, prev, hash FROM audit WHERE seq = 5");
    expect_broken(KEY, 6, "was changed");
    /* the end cut off: the last seal covers records that are gone */
    make_trail(23);
    sql("DELETE FROM audit WHERE seq > 20");
    expect_broken(KEY, 0, "but the trail ends at record 20: records at the end were deleted");
    /* the whole chain rewritten consistently from record 3 (no key needed
     * for SHA-256): the seals catch it */
    make_trail(23);
    {
        sec_db *db;
        sec_error err;
        assert_int_equal(sec_db_open(dbpath, &db, &err), SEC_OK);
        sql("UPDATE audit SET actor = 'mallory' WHERE seq = 3");
        sqlite3 *raw;
        assert_int_equal(sqlite3_open(dbpath, &raw), SQLITE_OK);
        for (int seq = 3; seq <= 23; seq++) {
            char q[200];
            sqlite3_stmt *s;
            snprintf(q, sizeof q,
                     "SELECT at, actor, role, action, channel, patient, source, outcome, detail,"
                     " (SELECT hash FROM audit WHERE seq = %d) FROM audit WHERE seq = %d",
                     seq - 1, seq);
            assert_int_equal(sqlite3_prepare_v2(raw, q, -1, &s, NULL), SQLITE_OK);
            assert_int_equal(sqlite3_step(s), SQLITE_ROW);
            sec_record r = {.seq = seq, .at = sqlite3_column_int64(s, 0)};
            const char **f[] = {&r.actor,   &r.role,   &r.action,  &r.channel,
                                &r.patient, &r.source, &r.outcome, &r.detail};
            for (int i = 0; i < 8; i++)
                *f[i] = (const char *)sqlite3_column_text(s, 1 + i);
            snprintf(r.prev, sizeof r.prev, "%s", (const char *)sqlite3_column_text(s, 9));
            sec_audit_hash(&r, r.hash);
            sqlite3_finalize(s);
            snprintf(q, sizeof q, "UPDATE audit SET prev = '%s', hash = '%s' WHERE seq = %d",
                     r.prev, r.hash, seq);
            assert_int_equal(sqlite3_exec(raw, q, NULL, NULL, NULL), SQLITE_OK);
        }
        sqlite3_close(raw);
        sec_db_close(db);
    }
    expect_broken(KEY, 0, "the chain up to it was rewritten");
    /* ... and a forged seal needs the key */
    sql("UPDATE seals SET hash = (SELECT hash FROM audit WHERE seq = seals.upto)");
    expect_broken(KEY, 0, "bad MAC");
    /* the wrong key */
    make_trail(23);
    expect_broken("another key, 32 bytes long......", 0, "bad MAC");
    /* without a key the chain is still checked, the seals are not */
    v = verify_with(NULL);
    assert_true(v.ok);
    assert_true(v.key_missing);
}

static void test_audit_two_writers(void **state)
{
    /* two writers on one trail (the engine and a CLI command) keep one chain */
    unlink(dbpath);
    sec_audit_options o = {.seal_every = 50, .key = (const uint8_t *)KEY, .key_len = strlen(KEY)};
    sec_audit *a, *b;
    sec_error err;
    assert_int_equal(sec_audit_open(dbpath, &o, &a, &err), SEC_OK);
    assert_int_equal(sec_audit_open(dbpath, &o, &b, &err), SEC_OK);
    for (int i = 0; i < 2000; i++) {
        sec_event ev = {.actor = i % 2 ? "a" : "b", .action = "x", .outcome = "ok"};
        sec_audit_add(i % 2 ? a : b, &ev);
    }
    assert_int_equal(sec_audit_close(a, &err), SEC_OK);
    assert_int_equal(sec_audit_close(b, &err), SEC_OK);
    sec_verify v = verify_with(KEY);
    if (!v.ok) fail_msg("%s", v.problem);
    assert_int_equal(v.records, 2000);
    assert_int_equal(v.sealed_upto, 2000);
}

static void bench_audit(void **state)
{
    const char *n_env = getenv("TERN_AUDIT_BENCH");
    if (!n_env) skip();
    long n = atol(n_env);
    unlink(dbpath);
    sec_audit_options o = {.key = (const uint8_t *)KEY, .key_len = strlen(KEY)};
    sec_audit *a;
    sec_error err;
    assert_int_equal(sec_audit_open(dbpath, &o, &a, &err), SEC_OK);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < n; i++) {
        char patient[24];
        snprintf(patient, sizeof patient, "PAT%ld", i % 5000);
        sec_event ev = {.actor = "fhir-client", .role = "analyst", .action = "fhir.read",
                        .channel = "fhir", .patient = patient, .source = "10.0.0.7:51234",
                        .outcome = "ok", .detail = "GET Observation?patient=..."};
        sec_audit_add(a, &ev);
    }
    assert_int_equal(sec_audit_flush(a, &err), SEC_OK);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("audit: %ld records appended and committed in %.3f s: %.0f records/s\n", n, s,
           (double)n / s);
    assert_int_equal(sec_audit_close(a, &err), SEC_OK);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    sec_verify v = verify_with(KEY);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    assert_true(v.ok);
    printf("verify: %lld records in %.3f s\n", (long long)v.records, s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_totp_rfc6238_vectors),
        cmocka_unit_test(test_argon2),
        cmocka_unit_test_setup_teardown(test_login_lockout_sessions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tokens, setup, teardown),
        cmocka_unit_test(test_roles),
        cmocka_unit_test_setup_teardown(test_audit_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_two_writers, setup, teardown),
        cmocka_unit_test_setup_teardown(bench_audit, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
