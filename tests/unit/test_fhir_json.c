/*
 * Unit tests for fhir_json_write: the text must be byte for byte what
 * jansson's json_dumps(JSON_COMPACT | JSON_REAL_PRECISION(p)) writes, for
 * hand-made values (escapes, control characters, UTF-8, reals and their
 * exponents, integer limits, empty containers) and for the Bundle of every
 * sample message under tests/data/fhir.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhir/fhir_convert.h"
#include "fhir/fhir_json.h"

static void assert_same(const json_t *j, int precision)
{
    char *want = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(precision) | JSON_ENCODE_ANY);
    assert_non_null(want);
    tbuf got = TBUF_INIT;
    fhir_json_write(j, precision, &got);
    assert_string_equal(tbuf_cstr(&got), want);
    tbuf_free(&got);
    free(want);
}

static void test_values(void **state)
{
    json_t *j = json_pack(
        "{s:s,s:s,s:s,s:I,s:I,s:I,s:b,s:b,s:n,s:[],s:{},s:[i,s,{s:i}]}", "plain", "abc", "escapes",
        "q\"b\\s/\b\f\n\r\t\x01\x1f\x7f"
        " end",
        "utf8",
        "Ren\xc3\xa9"
        "e \xe2\x82\xac \xf0\x9f\x98\x80",
        "zero", (json_int_t)0, "min", (json_int_t)INT64_MIN, "max", (json_int_t)INT64_MAX, "t", 1,
        "f", 0, "null", "empty_a", "empty_o", "nested", -42, "x", "k", 7);
    assert_non_null(j);
    json_object_set_new(j, "key \"quoted\"\n", json_string("v"));
    const double reals[] = {0.3,   196.5,     -0.0,  1e21,      1.5e-7, 123456789012345678.0,
                            1e300, -2.5e-300, 100.0, 0.1 + 0.2, 3.0};
    json_t *a = json_array();
    for (size_t i = 0; i < sizeof reals / sizeof reals[0]; i++)
        json_array_append_new(a, json_real(reals[i]));
    json_object_set_new(j, "reals", a);
    for (int p = 1; p <= 17; p++)
        assert_same(j, p);
    tbuf got = TBUF_INIT; /* 0 means jansson's default, 17 */
    fhir_json_write(j, 0, &got);
    char *want = json_dumps(j, JSON_COMPACT);
    assert_string_equal(tbuf_cstr(&got), want);
    free(want);
    tbuf_free(&got);
    json_decref(j);
}

static void test_bundles(void **state)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/tests/data/fhir", TERN_SOURCE_DIR);
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
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
        hl7_msg *m = hl7_msg_new(NULL);
        hl7_error perr;
        assert_int_equal(hl7_parse(m, text, size, &perr), HL7_OK);
        json_t *b = NULL;
        assert_int_equal(fhir_convert(m, NULL, &b, NULL), FHIR_OK);
        assert_same(b, 15);
        assert_same(b, 17);
        json_decref(b);
        hl7_msg_free(m);
        n++;
    }
    closedir(d);
    assert_true(n >= 17);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_bundles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
