/*
 * Unit tests for the map step of declarative transforms (engine/transform.c)
 * where it keeps escaped targets from one value to the next: targets holding
 * delimiters come out escaped for each message's own delimiters, many rows
 * (more than the table of escaped targets holds) each map to their own
 * target, and a row without display or system keeps the message's.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/transform.h"
#include "term/codemap.h"

typedef struct fixture {
    codemap_registry *maps;
    transform_chain *chain;
} fixture;

static const config_transform STEPS[] = {
    {.kind = CONFIG_TX_MAP, .line = 1, .path = "OBX-3", .map = "codes"},
};

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    codemap_options o;
    codemap_options_default(&o);
    codemap *m = codemap_new("codes", &o);
    codemap_error ce;
    /* 300 rows: far more than the table of escaped targets has slots */
    for (int i = 0; i < 300; i++) {
        char src[16], dst[16], disp[32];
        snprintf(src, sizeof src, "L%d", i);
        snprintf(dst, sizeof dst, "T%d", i);
        snprintf(disp, sizeof disp, "Name %d", i);
        assert_int_equal(codemap_add(m, NULL, src, "http://loinc.org", dst, disp, &ce), CODEMAP_OK);
    }
    assert_int_equal(codemap_add(m, NULL, "ODD", "sys|a^b", "X&Y", "A^B|C~D", &ce), CODEMAP_OK);
    assert_int_equal(codemap_add(m, NULL, "BARE", NULL, "Z9", NULL, &ce), CODEMAP_OK);
    f->maps = codemap_registry_new();
    assert_int_equal(codemap_registry_add(f->maps, m, &ce), CODEMAP_OK);
    tbuf err = TBUF_INIT;
    f->chain = transform_compile(STEPS, 1, f->maps, &err);
    if (!f->chain) fail_msg("%s", tbuf_cstr(&err));
    tbuf_free(&err);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    transform_free(f->chain);
    codemap_registry_free(f->maps);
    free(f);
    return 0;
}

/* text through the chain; returns the OBX-3 (first repetition, raw) of
 * OBX number occ. */
static void apply(fixture *f, const char *text, hl7_msg *m)
{
    hl7_error he;
    assert_int_equal(hl7_parse(m, text, strlen(text), &he), HL7_OK);
    tbuf err = TBUF_INIT;
    if (transform_apply(f->chain, m, &err) != 0) fail_msg("%s", tbuf_cstr(&err));
    tbuf_free(&err);
}

static void obx3_is(const hl7_msg *m, uint32_t occ, const char *want)
{
    long idx = hl7_seg_find(m, "OBX", occ);
    assert_true(idx >= 0);
    hl7_span v;
    assert_int_equal(hl7_raw(m, (uint32_t)idx, 3, 1, 0, 0, &v), HL7_VALUE);
    char got[128];
    snprintf(got, sizeof got, "%.*s", (int)v.len, v.p);
    assert_string_equal(got, want);
}

static void many_rows(void **state)
{
    fixture *f = *state;
    hl7_msg *m = hl7_msg_new(NULL);
    tbuf t = TBUF_INIT;
    for (int round = 0; round < 2; round++) { /* the second round reads kept targets */
        tbuf_reset(&t);
        tbuf_puts(&t, "MSH|^~\\&|A|B|C|D|20260101||ORU^R01|1|P|2.5\r");
        for (int i = 0; i < 300; i++) tbuf_printf(&t, "OBX|%d|NM|L%d^Local^99L||1\r", i + 1, i);
        apply(f, tbuf_cstr(&t), m);
        for (int i = 0; i < 300; i++) {
            char want[64];
            snprintf(want, sizeof want, "T%d^Name %d^http://loinc.org", i, i);
            obx3_is(m, (uint32_t)i + 1, want);
        }
    }
    tbuf_free(&t);
    hl7_msg_free(m);
}

static void escaped_per_message_delimiters(void **state)
{
    fixture *f = *state;
    hl7_msg *m = hl7_msg_new(NULL);
    apply(f, "MSH|^~\\&|A|B|C|D|20260101||ORU^R01|1|P|2.5\rOBX|1|ST|ODD^x^99L||v\r", m);
    obx3_is(m, 1, "X\\T\\Y^A\\S\\B\\F\\C\\R\\D^sys\\F\\a\\S\\b");
    /* the same row with other delimiters: escaped for those */
    apply(f, "MSH#:*!%#A#B#C#D#20260101##ORU:R01#1#P#2.5\rOBX#1#ST#ODD:x:99L##v\r", m);
    obx3_is(m, 1, "X&Y:A^B|C~D:sys|a^b");
    apply(f, "MSH|^~\\&|A|B|C|D|20260101||ORU^R01|1|P|2.5\rOBX|1|ST|ODD^x^99L||v\r", m);
    obx3_is(m, 1, "X\\T\\Y^A\\S\\B\\F\\C\\R\\D^sys\\F\\a\\S\\b");
    hl7_msg_free(m);
}

static void row_without_display_or_system(void **state)
{
    fixture *f = *state;
    hl7_msg *m = hl7_msg_new(NULL);
    apply(f, "MSH|^~\\&|A|B|C|D|20260101||ORU^R01|1|P|2.5\rOBX|1|ST|BARE^Kept^LOCAL^alt||v\r", m);
    obx3_is(m, 1, "Z9^Kept^LOCAL^alt");
    hl7_msg_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(many_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(escaped_per_message_delimiters, setup, teardown),
        cmocka_unit_test_setup_teardown(row_without_display_or_system, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
