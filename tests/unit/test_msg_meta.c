/*
 * Unit tests for the search fields of a message (engine/msg_meta.c): the
 * MSH fields and PID-3.1 decoded (escapes resolved), "TYPE^EVENT" and a type
 * alone, absent values as NULL, order numbers from ORC/OBR once each, and a
 * message without PID.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "engine/msg_meta.h"

static void extract(const char *text, msg_meta *mm)
{
    hl7_msg *m = hl7_msg_new(NULL);
    hl7_error e;
    assert_int_equal(hl7_parse(m, text, strlen(text), &e), HL7_OK);
    msg_meta_extract(m, mm);
    hl7_msg_free(m); /* the strings are the meta's own */
}

static void header_fields(void **state)
{
    (void)state;
    msg_meta mm;
    extract("MSH|^~\\&|LAB\\T\\X|HOSP^1.2.3^ISO|EHR|WARD\\F\\1|20260101||ORU^R01^ORU_R01|C\\S\\1|P|2.5\r"
            "PID|1||12\\E\\3^^^H^MR~999^^^S||DOE^JOHN\r",
            &mm);
    assert_string_equal(mm.msh9, "ORU^R01");
    assert_string_equal(mm.control_id, "C^1");
    assert_string_equal(mm.send_app, "LAB&X");
    assert_string_equal(mm.send_fac, "HOSP^1.2.3^ISO");
    assert_string_equal(mm.recv_app, "EHR");
    assert_string_equal(mm.recv_fac, "WARD|1");
    assert_string_equal(mm.patient_id, "12\\3");
    assert_int_equal(mm.norders, 0);
    assert_null(mm.orders);
    store_meta v = msg_meta_view(&mm);
    assert_string_equal(v.control_id, "C^1");
    msg_meta_free(&mm);
    assert_null(mm.msh9);
}

static void absent_values(void **state)
{
    (void)state;
    msg_meta mm;
    extract("MSH|^~\\&||FAC|||20260101||ADT|\"\"|P|2.5\r", &mm);
    assert_string_equal(mm.msh9, "ADT");
    assert_null(mm.control_id); /* the explicit null is no value */
    assert_null(mm.send_app);
    assert_string_equal(mm.send_fac, "FAC");
    assert_null(mm.recv_app);
    assert_null(mm.recv_fac);
    assert_null(mm.patient_id);
    msg_meta_free(&mm);

    extract("MSH|^~\\&|A|B|C|D|20260101||^A04|7|P|2.5\r", &mm);
    assert_null(mm.msh9); /* an event without a type says nothing searchable */
    assert_string_equal(mm.control_id, "7");
    msg_meta_free(&mm);
}

static void order_numbers(void **state)
{
    (void)state;
    msg_meta mm;
    extract("MSH|^~\\&|A|B|C|D|20260101||ORM^O01|9|P|2.5\r"
            "PID|1||P1\r"
            "ORC|NW|PL-1^EHR|FL-1^LAB\r"
            "OBR|1|PL-1^EHR|FL-2^LAB|CBC\r"
            "ORC|NW|PL\\T\\2||\r"
            "OBR|2|PL&2\r",
            &mm);
    assert_int_equal(mm.norders, 4);
    assert_string_equal(mm.orders[0], "PL-1");
    assert_string_equal(mm.orders[1], "FL-1");
    assert_string_equal(mm.orders[2], "FL-2");
    assert_string_equal(mm.orders[3], "PL&2");
    assert_string_equal(mm.patient_id, "P1");
    store_meta v = msg_meta_view(&mm);
    assert_int_equal(v.n_order_ids, 4);
    assert_string_equal(v.order_ids[3], "PL&2");
    msg_meta_free(&mm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(header_fields),
        cmocka_unit_test(absent_values),
        cmocka_unit_test(order_numbers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
