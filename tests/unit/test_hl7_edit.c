/*
 * Unit tests for building and editing messages (hl7_edit.c): set at every
 * level with padding, escaping, segment insert/remove, building from scratch,
 * and that edits never disturb untouched bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "hl7/hl7.h"

static const char *BASE = "MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5\r\n"
                          "PID|1||123^^^H^MR~456^^^S||DOE^JOHN\r\n"
                          "PV1|1|I\r\n";

static hl7_msg *parse(const char *t)
{
    hl7_msg *m = hl7_msg_new(NULL);
    hl7_error e;
    assert_int_equal(hl7_parse(m, t, strlen(t), &e), HL7_OK);
    return m;
}

static void set(hl7_msg *m, const char *path, const char *v)
{
    hl7_path p;
    hl7_error e;
    assert_int_equal(hl7_path_parse(path, &p, &e), HL7_OK);
    hl7_status st = hl7_set(m, &p, v, strlen(v), &e);
    if (st != HL7_OK) fprintf(stderr, "%s\n", e.text);
    assert_int_equal(st, HL7_OK);
}

static void expect(const hl7_msg *m, const char *wire)
{
    tbuf out = TBUF_INIT;
    hl7_serialize(m, &out);
    assert_string_equal(out.p, wire);
    tbuf_free(&out);
}

static void test_set_levels(void **state)
{
    (void)state;
    hl7_msg *m = parse(BASE);
    set(m, "PID-5.2", "JANE");
    set(m, "PID-3[2].1", "999");
    set(m, "PID-8", "F");
    set(m, "PID-11.3", "TOWN");
    set(m, "PID-5.1.2", "sub");
    set(m, "MSH-10", "CTRL-2");
    expect(m, "MSH|^~\\&|A|B|C|D|20260101||ADT^A01|CTRL-2|P|2.5\r\n"
              "PID|1||123^^^H^MR~999^^^S||DOE&sub^JANE|||F|||^^TOWN\r\n"
              "PV1|1|I\r\n");
    hl7_msg_free(m);
}

static void test_set_escapes_and_reads_back(void **state)
{
    (void)state;
    hl7_msg *m = parse(BASE);
    const char *tricky = "A|B^C~D\\E&F\nG";
    set(m, "PV1-3", tricky);
    expect(m, "MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5\r\n"
              "PID|1||123^^^H^MR~456^^^S||DOE^JOHN\r\n"
              "PV1|1|I|A\\F\\B\\S\\C\\R\\D\\E\\E\\T\\F\\.br\\G\r\n");
    hl7_path p;
    hl7_error e;
    hl7_path_parse("PV1-3", &p, &e);
    tbuf out = TBUF_INIT;
    assert_int_equal(hl7_get(m, &p, &out), HL7_VALUE);
    assert_string_equal(out.p, tricky);
    tbuf_free(&out);
    hl7_msg_free(m);
}

static void test_set_creates_segments(void **state)
{
    (void)state;
    hl7_msg *m = parse(BASE);
    set(m, "PID[2]-1", "2");
    set(m, "ZXY-2.2", "z");
    expect(m, "MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5\r\n"
              "PID|1||123^^^H^MR~456^^^S||DOE^JOHN\r\n"
              "PID|2\r"
              "PV1|1|I\r\n"
              "ZXY||^z\r");
    hl7_msg_free(m);
}

static void test_set_rejects(void **state)
{
    (void)state;
    hl7_msg *m = parse(BASE);
    hl7_path p;
    hl7_error e;
    hl7_path_parse("MSH-2", &p, &e);
    assert_int_equal(hl7_set(m, &p, "x", 1, &e), HL7_ERR_VALUE);
    hl7_path_parse("PID", &p, &e);
    assert_int_equal(hl7_set(m, &p, "x", 1, &e), HL7_ERR_PATH);
    hl7_path_parse("PID-3", &p, &e);
    assert_int_equal(hl7_set_raw(m, &p, "a\rb", 3, &e), HL7_ERR_VALUE);
    /* raw composite is allowed */
    assert_int_equal(hl7_set_raw(m, &p, "9^^^X~8", 7, &e), HL7_OK);
    tbuf out = TBUF_INIT;
    hl7_path_parse("PID-3[2]", &p, &e);
    hl7_get(m, &p, &out);
    assert_string_equal(out.p, "8");
    tbuf_free(&out);
    hl7_msg_free(m);
}

static void test_insert_remove(void **state)
{
    (void)state;
    hl7_msg *m = parse("MSH|^~\\&|A|B|C|D|1||ADT^A01|1|P|2.5\rPID|1\rPV1|1");
    hl7_error e;
    assert_int_equal(hl7_seg_insert(m, 2, "NK1|1|DOE^JANE", 14, &e), HL7_OK);
    assert_int_equal(hl7_seg_insert(m, 4, "AL1|1", 5, &e), HL7_OK);
    expect(m, "MSH|^~\\&|A|B|C|D|1||ADT^A01|1|P|2.5\rPID|1\rNK1|1|DOE^JANE\rPV1|1\rAL1|1");
    assert_int_equal(hl7_seg_insert(m, 0, "ZZZ|1", 5, &e), HL7_ERR_VALUE);
    assert_int_equal(hl7_seg_insert(m, 1, "MSH|x", 5, &e), HL7_ERR_VALUE);
    assert_int_equal(hl7_seg_insert(m, 1, "Zz1|x", 5, &e), HL7_ERR_SEGMENT_ID);
    assert_int_equal(hl7_seg_insert(m, 1, "ZZ1^x", 5, &e), HL7_ERR_SEGMENT_ID);
    assert_int_equal(hl7_seg_remove(m, 0, &e), HL7_ERR_VALUE);
    assert_int_equal(hl7_seg_remove(m, 9, &e), HL7_ERR_NOT_FOUND);
    assert_int_equal(hl7_seg_remove(m, 4, &e), HL7_OK);
    assert_int_equal(hl7_seg_remove(m, 2, &e), HL7_OK);
    expect(m, "MSH|^~\\&|A|B|C|D|1||ADT^A01|1|P|2.5\rPID|1\rPV1|1");
    hl7_path p;
    hl7_path_parse("PV1-2", &p, &e);
    tbuf out = TBUF_INIT;
    assert_int_equal(hl7_get(m, &p, &out), HL7_ABSENT);
    tbuf_free(&out);
    hl7_msg_free(m);
}

static void test_build_from_scratch(void **state)
{
    (void)state;
    hl7_msg *m = hl7_msg_new(NULL);
    hl7_msg_init(m, NULL);
    set(m, "MSH-3", "TERN");
    set(m, "MSH-9.1", "ADT");
    set(m, "MSH-9.2", "A08");
    set(m, "MSH-10", "X1");
    set(m, "MSH-11", "P");
    set(m, "MSH-12", "2.5.1");
    set(m, "PID-5.1", "O'Brien");
    expect(m, "MSH|^~\\&|TERN||||||ADT^A08|X1|P|2.5.1\rPID|||||O'Brien\r");
    /* what was built parses back to the same */
    tbuf out = TBUF_INIT;
    hl7_serialize(m, &out);
    hl7_msg *m2 = parse(out.p);
    tbuf again = TBUF_INIT;
    hl7_serialize(m2, &again);
    assert_string_equal(again.p, out.p);
    tbuf_free(&again);
    tbuf_free(&out);
    hl7_msg_free(m2);
    /* custom delimiters */
    hl7_delims d = {'#', '!', '@', '%', '*', 0};
    hl7_msg_init(m, &d);
    set(m, "MSH-9.2", "A01");
    set(m, "NTE-3", "a#b");
    expect(m, "MSH#!@%*#######!A01\rNTE###a%F%b\r");
    hl7_msg_free(m);
}

static void test_untouched_bytes_survive(void **state)
{
    (void)state;
    /* odd terminators and blank lines elsewhere stay as they were */
    const char *t = "MSH|^~\\&|A|B|C|D|1||ADT^A01|1|P|2.5\n\nPID|1\r\nPV1|1|I\n";
    hl7_msg *m = parse(t);
    set(m, "PID-2", "x");
    expect(m, "MSH|^~\\&|A|B|C|D|1||ADT^A01|1|P|2.5\n\nPID|1|x\r\nPV1|1|I\n");
    hl7_msg_free(m);
}

static void test_no_escape_character(void **state)
{
    (void)state;
    /* MSH-2 without an escape character: delimiters cannot be stored */
    hl7_msg *m = parse("MSH|^~|A|B|C|D|1||ADT^A01|1|P|2.5\rPID|1\r");
    hl7_path p;
    hl7_error e;
    hl7_path_parse("PID-5", &p, &e);
    assert_int_equal(hl7_set(m, &p, "a^b", 3, &e), HL7_ERR_VALUE);
    assert_int_equal(e.offset, 1);
    assert_int_equal(hl7_set(m, &p, "a\\b", 3, &e), HL7_OK);
    hl7_msg_free(m);
    /* the size limit is exact, not rounded to the scan block */
    hl7_limits lim;
    hl7_limits_default(&lim);
    lim.max_message = 40;
    m = hl7_msg_new(&lim);
    const char *t = "MSH|^~\\&|A|B|C|D|1||ADT^A01|1|P|2.5\rPID|1\r"; /* 43 bytes */
    assert_int_equal(hl7_parse(m, t, strlen(t), &e), HL7_ERR_TOO_LARGE);
    lim.max_message = 43;
    hl7_msg_free(m);
    m = hl7_msg_new(&lim);
    assert_int_equal(hl7_parse(m, t, strlen(t), &e), HL7_OK);
    hl7_msg_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_levels),
        cmocka_unit_test(test_set_escapes_and_reads_back),
        cmocka_unit_test(test_set_creates_segments),
        cmocka_unit_test(test_set_rejects),
        cmocka_unit_test(test_insert_remove),
        cmocka_unit_test(test_build_from_scratch),
        cmocka_unit_test(test_untouched_bytes_survive),
        cmocka_unit_test(test_no_escape_character),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
