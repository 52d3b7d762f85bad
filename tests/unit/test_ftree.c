/*
 * Unit tests for ftree: the compact text must be byte for byte what
 * jansson's json_dumps(JSON_COMPACT | JSON_REAL_PRECISION(p)) writes for the
 * same document (ftree_to_json), for hand-made values (escapes in keys and
 * strings, control characters, UTF-8 kept as it is, integer limits, empty
 * and nested containers), for reals (random bit patterns, short decimals,
 * ties, every precision: the writer formats them itself) and for the Bundle
 * of every sample message under tests/data/fhir. Then UTF-8 validation
 * (what json_string refuses), the container operations (replace in place,
 * delete, prepend, take_members, copy) and the arena (strings larger than a
 * block, growth, clear and reuse). Includes ftree.c to see the arena.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhir/ftree.c"
#include "fhir/fhir_convert.h"

/* ftree_write(n, precision) equals jansson's dump of ftree_to_json(n). */
static void assert_same(const ftree_node *n, int precision)
{
    json_t *j = ftree_to_json(n);
    assert_non_null(j);
    size_t flags = JSON_COMPACT | JSON_ENCODE_ANY;
    if (precision) flags |= JSON_REAL_PRECISION(precision);
    char *want = json_dumps(j, flags);
    assert_non_null(want);
    tbuf got = TBUF_INIT;
    tbuf_puts(&got, "prefix "); /* ftree_write appends */
    ftree_write(n, precision, &got);
    assert_string_equal(tbuf_cstr(&got) + 7, want);
    assert_int_equal(got.len, 7 + strlen(want));
    tbuf_free(&got);
    free(want);
    json_decref(j);
}

static void test_values(void **state)
{
    ftree *t = ftree_new();
    ftree_node *o = ftree_object(t);
    ftree_set(o, "plain", ftree_string(t, "abc"));
    ftree_set(o, "escapes",
              ftree_string(t, "q\"b\\s/\b\f\n\r\t\x01\x1f\x7f end, and a longer tail \" here"));
    ftree_set(o, "utf8",
              ftree_string(t, "Ren\xc3\xa9"
                              "e \xe2\x82\xac \xf0\x9f\x98\x80"));
    ftree_set(o, "nul", ftree_stringn_nocheck(t, "a\0b", 3, false));
    ftree_set(o, "empty", ftree_string(t, ""));
    ftree_set(o, "borrowed",
              ftree_string_borrowed(t, "a literal of more than eight bytes",
                                    sizeof "a literal of more than eight bytes" - 1, true));
    ftree_set(o, "zero", ftree_integer(t, 0));
    ftree_set(o, "min", ftree_integer(t, INT64_MIN));
    ftree_set(o, "max", ftree_integer(t, INT64_MAX));
    ftree_set(o, "neg", ftree_integer(t, -42));
    ftree_set(o, "t", ftree_bool(t, true));
    ftree_set(o, "f", ftree_bool(t, false));
    ftree_set(o, "null", ftree_null(t));
    ftree_set(o, "empty_a", ftree_array(t));
    ftree_set(o, "empty_o", ftree_object(t));
    ftree_node *nested = ftree_array(t);
    ftree_append(nested, ftree_integer(t, -42));
    ftree_append(nested, ftree_string(t, "x"));
    ftree_node *inner = ftree_object(t);
    ftree_set(inner, "k", ftree_integer(t, 7));
    ftree_node *deep = ftree_array(t);
    ftree_append(deep, ftree_array(t));
    ftree_append(deep, ftree_object(t));
    ftree_set(inner, "deep", deep);
    ftree_append(nested, inner);
    ftree_set(o, "nested", nested);
    ftree_set(o, "key \"quoted\"\n", ftree_string(t, "v"));
    ftree_set(o, "k\x01", ftree_string(t, "control in a key"));
    const double reals[] = {0.3,    196.5,     -0.0,  0.0,       1e21, 1.5e-7,
                            1e300,  -2.5e-300, 100.0, 0.1 + 0.2, 3.0,  123456789012345678.0,
                            5e-324, DBL_MAX,   0.92,  -4.1,      1e-5, 12345.678};
    ftree_node *a = ftree_array(t);
    for (size_t i = 0; i < sizeof reals / sizeof reals[0]; i++)
        ftree_append(a, ftree_real(t, reals[i]));
    ftree_set(o, "reals", a);
    for (int p = 0; p <= 17; p++)
        assert_same(o, p);
    assert_same(ftree_string(t, "top-level \"string\""), 17);
    assert_same(ftree_integer(t, 5), 17);
    assert_same(ftree_real(t, 2.5), 17);
    assert_same(ftree_null(t), 17);
    ftree_free(t);
}

/* A deterministic generator (xorshift64*), so a failure can be replayed. */
static uint64_t next_random(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

/* Reals are formatted by ftree itself (exact digits, ties to even): every
 * precision against jansson (glibc's printf) on many values. */
static void test_reals(void **state)
{
    ftree *t = ftree_new();
    uint64_t seed = 0x9E3779B97F4A7C15ull;
    int checked = 0;
    for (int round = 0; round < 3000; round++) {
        ftree_node *a = ftree_array(t);
        for (int i = 0; i < 16; i++) {
            double v;
            uint64_t r = next_random(&seed);
            switch (i % 4) {
            case 0: /* any finite bit pattern */
                memcpy(&v, &r, sizeof v);
                if (!isfinite(v)) v = 1.0;
                break;
            case 1: /* a short decimal, as lab values are */
                v = (double)(r % 1000000) / pow(10, (double)((r >> 40) % 7));
                break;
            case 2: /* a dyadic fraction: exact ties at some precision */
                v = (double)(r % 100000) / (double)(1u << ((r >> 32) % 20));
                break;
            default: /* around powers of ten (carries: 9.99... -> 10) */
                v = pow(10, (double)((int)((r >> 8) % 60) - 30)) * (1 - (double)(r % 1000) * 1e-17);
            }
            if (r >> 63) v = -v;
            ftree_append(a, ftree_real(t, v));
        }
        assert_same(a, 1 + round % 17);
        checked += 16;
        ftree_clear(t);
    }
    assert_true(checked >= 48000);
    ftree_free(t);
}

/* ftree_string refuses exactly what json_string refuses. */
static void test_utf8(void **state)
{
    static const char *const cases[] = {"ascii",
                                        "\xc3\xa9",
                                        "\xc3",
                                        "\xc3(",
                                        "\xc0\xaf",
                                        "\xc1\xbf",
                                        "\xe0\x80\xaf",
                                        "\xe0\xa0\x80",
                                        "\xed\x9f\xbf",
                                        "\xed\xa0\x80",
                                        "\xef\xbf\xbf",
                                        "\xf0\x8f\xbf\xbf",
                                        "\xf0\x90\x80\x80",
                                        "\xf4\x8f\xbf\xbf",
                                        "\xf4\x90\x80\x80",
                                        "\xf5\x80\x80\x80",
                                        "\xff",
                                        "\x80",
                                        "abcdefgh\xe9",
                                        "abcdefghijklmnop\xe2\x82\xac",
                                        "abcdefghijklmnop\xe2\x82",
                                        "\xe2\x82\xac\xe2\x82\xac"};
    ftree *t = ftree_new();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *j = json_string(cases[i]);
        ftree_node *n = ftree_string(t, cases[i]);
        assert_int_equal(n != NULL, j != NULL);
        if (n) {
            assert_string_equal(ftree_str(n), cases[i]);
            assert_same(n, 17);
        }
        json_decref(j);
    }
    ftree_free(t);
}

static const char *keys_of(const ftree_node *o, char *buf, size_t cap)
{
    buf[0] = '\0';
    for (const ftree_node *k = ftree_first(o); k; k = ftree_next(k)) {
        strncat(buf, ftree_key(k), cap - strlen(buf) - 1);
        strncat(buf, ",", cap - strlen(buf) - 1);
    }
    return buf;
}

static void test_containers(void **state)
{
    ftree *t = ftree_new();
    char buf[256];
    ftree_node *o = ftree_object(t);
    ftree_set(o, "a", ftree_integer(t, 1));
    ftree_set(o, "b", ftree_integer(t, 2));
    ftree_set(o, "c", ftree_integer(t, 3));
    char key[] = "b";                        /* same text, another pointer */
    ftree_set(o, key, ftree_integer(t, 20)); /* replaced in place */
    assert_string_equal(keys_of(o, buf, sizeof buf), "a,b,c,");
    assert_int_equal(ftree_int(ftree_get(o, "b")), 20);
    assert_int_equal(ftree_size(o), 3);
    ftree_set(o, "c", ftree_integer(t, 30)); /* the last one: appends still go after it */
    ftree_set(o, "d", ftree_integer(t, 4));
    assert_string_equal(keys_of(o, buf, sizeof buf), "a,b,c,d,");
    ftree_set(o, "e", NULL); /* nothing */
    assert_null(ftree_get(o, "e"));
    assert_true(ftree_del(o, "a"));
    assert_true(ftree_del(o, "d"));
    assert_false(ftree_del(o, "zz"));
    ftree_set(o, "e", ftree_integer(t, 5));
    assert_string_equal(keys_of(o, buf, sizeof buf), "b,c,e,");
    assert_int_equal(ftree_size(o), 3);
    assert_true(ftree_del(o, "b"));
    assert_true(ftree_del(o, "c"));
    assert_true(ftree_del(o, "e"));
    assert_int_equal(ftree_size(o), 0);
    assert_null(ftree_first(o));
    ftree_set(o, "x", ftree_integer(t, 1));
    assert_string_equal(keys_of(o, buf, sizeof buf), "x,");

    /* take_members: new keys go last, existing ones keep their place */
    ftree_node *dst = ftree_object(t), *src = ftree_object(t);
    ftree_set(dst, "resourceType", ftree_string(t, "Patient"));
    ftree_set(dst, "id", ftree_string(t, "1"));
    ftree_set(src, "identifier", ftree_array(t));
    ftree_set(src, "id", ftree_string(t, "2"));
    ftree_take_members(dst, src);
    assert_string_equal(keys_of(dst, buf, sizeof buf), "resourceType,id,identifier,");
    assert_string_equal(ftree_str(ftree_get(dst, "id")), "2");
    assert_int_equal(ftree_size(src), 0);
    assert_null(ftree_first(src));

    /* arrays: append, prepend, at */
    ftree_node *a = ftree_array(t);
    ftree_prepend(a, ftree_integer(t, 2)); /* into an empty array */
    ftree_append(a, ftree_integer(t, 3));
    ftree_prepend(a, ftree_integer(t, 1));
    ftree_append(a, NULL);
    assert_int_equal(ftree_size(a), 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(ftree_int(ftree_at(a, (size_t)i)), i + 1);
    assert_null(ftree_at(a, 3));
    assert_same(a, 17);

    /* copy: equal text, independent nodes */
    ftree_set(dst, "list", a);
    ftree_node *copy = ftree_copy(t, dst);
    json_t *j1 = ftree_to_json(dst), *j2 = ftree_to_json(copy);
    assert_true(json_equal(j1, j2));
    json_decref(j1);
    json_decref(j2);
    ftree_append(ftree_get(copy, "list"), ftree_integer(t, 4));
    assert_int_equal(ftree_size(a), 3);
    assert_int_equal(ftree_size(ftree_get(copy, "list")), 4);

    /* reading */
    assert_int_equal(ftree_typeof(dst), FTREE_OBJECT);
    assert_null(ftree_str(a));
    assert_int_equal(ftree_strlen(a), 0);
    assert_int_equal(ftree_size(ftree_integer(t, 1)), 0);
    assert_true(ftree_real_value(ftree_real(t, 0.5)) == 0.5);
    assert_null(ftree_get(a, "x")); /* not an object */
    ftree_free(t);
}

static void test_arena(void **state)
{
    ftree *t = ftree_new();
    /* a string larger than the largest block */
    size_t big = 3u << 20;
    char *text = malloc(big + 1);
    assert_non_null(text);
    for (size_t i = 0; i < big; i++)
        text[i] = (char)('a' + i % 26);
    text[big] = '\0';
    text[big / 2] = '"'; /* escaped in the middle of a long string */
    ftree_node *o = ftree_object(t);
    ftree_set(o, "big", ftree_string(t, text));
    for (int i = 0; i < 20000; i++) { /* many nodes: several blocks */
        ftree_node *e = ftree_object(t);
        ftree_set(e, "i", ftree_integer(t, i));
        ftree_set(e, "s", ftree_string(t, "value"));
        if (i % 1000 == 0) ftree_set(o, i % 2000 ? "odd" : "even", e);
    }
    assert_non_null(t->blocks->next);
    assert_same(o, 17);
    assert_int_equal(ftree_strlen(ftree_get(o, "big")), big);
    free(text);

    /* clear: one block is kept, at most 1 MiB, and reused */
    ftree_clear(t);
    assert_non_null(t->blocks);
    assert_null(t->blocks->next);
    assert_int_equal(t->blocks->size, BLOCK_MAX);
    char *first = t->ptr;
    ftree_node *n = ftree_string(t, "again");
    assert_ptr_equal(ftree_str(n), first); /* the copy comes first, then the node */
    assert_same(n, 17);
    ftree_clear(t);
    ftree_clear(t);
    assert_ptr_equal(t->ptr, first);

    /* alloc is aligned; strndup terminates */
    for (size_t i = 1; i < 40; i++)
        assert_int_equal((uintptr_t)ftree_alloc(t, i) % ALIGN, 0);
    char *d = ftree_strndup(t, "abcdef", 3);
    assert_string_equal(d, "abc");
    ftree_free(t);
    ftree_free(NULL);

    ftree *empty = ftree_new(); /* clear before any allocation */
    ftree_clear(empty);
    ftree_free(empty);
}

/* The Bundles of the sample messages, at both precisions Tern writes. */
static void test_bundles(void **state)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/tests/data/fhir", TERN_SOURCE_DIR);
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    fhir_converter *cv = fhir_converter_new();
    hl7_msg *m = hl7_msg_new(NULL);
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".hl7")) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        static char text[16384];
        size_t size = fread(text, 1, sizeof text, f);
        fclose(f);
        hl7_error perr;
        assert_int_equal(hl7_parse(m, text, size, &perr), HL7_OK);
        ftree_node *b = NULL;
        assert_int_equal(fhir_convert(cv, m, NULL, &b, NULL), FHIR_OK);
        assert_same(b, 15);
        assert_same(b, 17);
        n++;
    }
    closedir(d);
    hl7_msg_free(m);
    fhir_converter_free(cv);
    assert_true(n >= 17);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values), cmocka_unit_test(test_reals),
        cmocka_unit_test(test_utf8),   cmocka_unit_test(test_containers),
        cmocka_unit_test(test_arena),  cmocka_unit_test(test_bundles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
