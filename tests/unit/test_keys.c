/*
 * Unit tests for the keyring (sec/keys.c): sealing round trips, tampering
 * and context mix-ups detected, nonces never repeated, sealed text, tokens,
 * master key sources (file mode, hex, environment), a wrong master key,
 * master rotation and data keys, and a second handle reading what the
 * first sealed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sec/keys.h"

typedef struct fx {
    char dir[64];
    char ring[128];
    unsigned char master[KEYS_LEN];
    keyring *k;
} fx;

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/tern-keys-XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    snprintf(f->ring, sizeof f->ring, "%s/sub/store.db-keys.json", f->dir);
    for (int i = 0; i < KEYS_LEN; i++) f->master[i] = (unsigned char)(0xA0 + i);
    tbuf err = TBUF_INIT;
    if (keyring_open(f->ring, f->master, true, &f->k, &err) != 0) {
        fprintf(stderr, "%s\n", err.p);
        return -1;
    }
    tbuf_free(&err);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    keyring_close(f->k);
    nftw(f->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static void test_seal_round_trip_and_tamper(void **state)
{
    fx *f = *state;
    const char *msg = "MSH|^~\\&|A|B\rPID|1||MRN1||DOE^JANE\r";
    tbuf sealed = TBUF_INIT, plain = TBUF_INIT, err = TBUF_INIT;
    assert_int_equal(keys_seal(f->k, "body", msg, strlen(msg), &sealed, &err), 0);
    assert_int_equal(sealed.len, strlen(msg) + KEYS_OVERHEAD);
    assert_true(keys_is_sealed(sealed.p, sealed.len));
    assert_null(memmem(sealed.p, sealed.len, "DOE", 3));
    assert_int_equal(keys_open_sealed(f->k, "body", sealed.p, sealed.len, &plain, &err), 0);
    assert_string_equal(plain.p, msg);

    /* another context, a flipped bit anywhere, a cut: refused */
    tbuf_reset(&plain);
    assert_int_equal(keys_open_sealed(f->k, "text", sealed.p, sealed.len, &plain, &err), -1);
    assert_non_null(strstr(err.p, "fails authentication"));
    for (size_t at = 8; at < sealed.len; at += 7) {
        sealed.p[at] ^= 0x01;
        assert_int_equal(keys_open_sealed(f->k, "body", sealed.p, sealed.len, &plain, &err), -1);
        sealed.p[at] ^= 0x01;
    }
    assert_int_equal(keys_open_sealed(f->k, "body", sealed.p, sealed.len - 1, &plain, &err), -1);
    assert_int_equal(plain.len, 0); /* nothing leaked on failure */

    /* the same plaintext twice: different bytes (nonce never repeats) */
    tbuf again = TBUF_INIT;
    assert_int_equal(keys_seal(f->k, "body", msg, strlen(msg), &again, &err), 0);
    assert_int_not_equal(memcmp(again.p + 28, sealed.p + 28, again.len - 28), 0);
    tbuf_free(&again);
    tbuf_free(&sealed);
    tbuf_free(&plain);
    tbuf_free(&err);
}

static void test_text_and_tokens(void **state)
{
    fx *f = *state;
    tbuf t = TBUF_INIT, back = TBUF_INIT, err = TBUF_INIT;
    assert_int_equal(keys_seal_text(f->k, "PID-5: DOE is too long", &t, &err), 0);
    assert_true(keys_is_sealed_text(t.p));
    assert_null(strstr(t.p, "DOE"));
    assert_int_equal(keys_open_text(f->k, t.p, &back, &err), 0);
    assert_string_equal(back.p, "PID-5: DOE is too long");
    tbuf_reset(&back);
    assert_int_equal(keys_open_text(f->k, "written in clear", &back, &err), 0);
    assert_string_equal(back.p, "written in clear");
    tbuf_reset(&back);
    t.p[10] = t.p[10] == 'A' ? 'B' : 'A';
    assert_int_equal(keys_open_text(f->k, t.p, &back, &err), -1);

    char a[KEYS_TOKEN_LEN + 1], b[KEYS_TOKEN_LEN + 1], c[KEYS_TOKEN_LEN + 1];
    keys_token(f->k, "patient", "MRN1", a);
    keys_token(f->k, "patient", "MRN1", b);
    keys_token(f->k, "order", "MRN1", c);
    assert_int_equal(strlen(a), KEYS_TOKEN_LEN);
    assert_string_equal(a, b);       /* searchable: the same value, the same token */
    assert_string_not_equal(a, c);   /* domains apart */
    assert_null(strstr(a, "MRN1"));
    tbuf_free(&t);
    tbuf_free(&back);
    tbuf_free(&err);
}

static void test_second_handle_and_wrong_master(void **state)
{
    fx *f = *state;
    tbuf sealed = TBUF_INIT, plain = TBUF_INIT, err = TBUF_INIT;
    assert_int_equal(keys_seal(f->k, "body", "hello", 5, &sealed, &err), 0);
    keyring *other;
    assert_int_equal(keyring_open(f->ring, f->master, false, &other, &err), 0);
    assert_int_equal(keys_open_sealed(other, "body", sealed.p, sealed.len, &plain, &err), 0);
    assert_string_equal(plain.p, "hello");
    keyring_close(other);

    unsigned char wrong[KEYS_LEN];
    memcpy(wrong, f->master, KEYS_LEN);
    wrong[0] ^= 1;
    assert_int_equal(keyring_open(f->ring, wrong, false, &other, &err), -1);
    assert_non_null(strstr(err.p, "master key is not the one"));

    char missing[160];
    snprintf(missing, sizeof missing, "%s/none-keys.json", f->dir);
    assert_int_equal(keyring_open(missing, f->master, false, &other, &err), -1);
    assert_non_null(strstr(err.p, "does not exist"));
    tbuf_free(&sealed);
    tbuf_free(&plain);
    tbuf_free(&err);
}

static void test_rotation(void **state)
{
    fx *f = *state;
    tbuf old = TBUF_INIT, plain = TBUF_INIT, err = TBUF_INIT;
    assert_int_equal(keys_seal(f->k, "body", "before", 6, &old, &err), 0);
    unsigned char fresh[KEYS_LEN];
    memset(fresh, 0x5A, sizeof fresh);
    assert_int_equal(keys_rotate_master(f->ring, f->master, fresh, &err), 0);
    keyring *k2;
    assert_int_equal(keyring_open(f->ring, f->master, false, &k2, &err), -1);
    uint32_t id = 0;
    assert_int_equal(keys_add_data_key(f->ring, fresh, &id, &err), 0);
    assert_int_equal(id, 2);
    assert_int_equal(keyring_open(f->ring, fresh, false, &k2, &err), 0);
    /* old data (data key 1) still opens; new data is sealed with key 2 */
    assert_int_equal(keys_open_sealed(k2, "body", old.p, old.len, &plain, &err), 0);
    assert_string_equal(plain.p, "before");
    tbuf now = TBUF_INIT;
    assert_int_equal(keys_seal(k2, "body", "after", 5, &now, &err), 0);
    assert_int_equal((unsigned char)now.p[4], 2);
    /* the first handle does not know key 2 yet: a clear error */
    tbuf_reset(&plain);
    assert_int_equal(keys_open_sealed(f->k, "body", now.p, now.len, &plain, &err), -1);
    assert_non_null(strstr(err.p, "data key 2"));
    tbuf out = TBUF_INIT;
    assert_int_equal(keys_describe(f->ring, fresh, &out, &err), 0);
    assert_non_null(strstr(out.p, "data key 2"));
    keyring_close(k2);
    tbuf_free(&old);
    tbuf_free(&now);
    tbuf_free(&out);
    tbuf_free(&plain);
    tbuf_free(&err);
}

static void test_master_sources(void **state)
{
    fx *f = *state;
    char path[160];
    snprintf(path, sizeof path, "%s/master.key", f->dir);
    tbuf err = TBUF_INIT;
    unsigned char k1[KEYS_LEN], k2[KEYS_LEN];
    assert_int_equal(keys_generate_master(path, &err), 0);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(keys_generate_master(path, &err), -1); /* never overwritten */
    assert_int_equal(keys_load_master(path, NULL, k1, &err), 0);
    chmod(path, 0644);
    assert_int_equal(keys_load_master(path, NULL, k2, &err), -1);
    assert_non_null(strstr(err.p, "chmod 600"));
    chmod(path, 0600);

    setenv("TERN_TEST_MASTER", "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF", 1);
    assert_int_equal(keys_load_master(NULL, "TERN_TEST_MASTER", k2, &err), 0);
    assert_int_equal(k2[1], 0x11);
    assert_int_equal(k2[31], 0xFF);
    setenv("TERN_TEST_MASTER", "not hex", 1);
    assert_int_equal(keys_load_master(NULL, "TERN_TEST_MASTER", k2, &err), -1);
    unsetenv("TERN_TEST_MASTER");
    assert_int_equal(keys_load_master(NULL, "TERN_TEST_MASTER", k2, &err), -1);
    assert_non_null(strstr(err.p, "tern keys init"));
    tbuf_free(&err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_seal_round_trip_and_tamper, setup, teardown),
        cmocka_unit_test_setup_teardown(test_text_and_tokens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_handle_and_wrong_master, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_master_sources, setup, teardown),
    };
    return cmocka_run_group_tests_name("keys", tests, NULL, NULL);
}
