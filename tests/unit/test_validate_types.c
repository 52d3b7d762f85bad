/*
 * Unit tests for src/quality/hl7_types.c and hl7_tables.c: every datatype
 * with valid and invalid values (and the exact reason given), date/time
 * parsing, precision, offsets, comparison and ages, check digits, the
 * built-in tables (sorted, looked up) and CSV user tables with each kind of
 * malformed input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quality/hl7_tables.h"
#include "quality/hl7_types.h"

static bool ok_value(hl7_type t, const char *s)
{
    hl7_type_fault f;
    return hl7_type_check_value(t, s, strlen(s), NULL, &f);
}

/* The fault text for an invalid primitive (fails the test if it passes). */
static const char *why(hl7_type t, const char *s)
{
    static hl7_type_fault f;
    memset(&f, 0, sizeof(f));
    assert_false(hl7_type_check_value(t, s, strlen(s), NULL, &f));
    return f.text;
}

static bool ok_raw(hl7_type t, const hl7_tables *tables, const char *raw, hl7_type_fault *f)
{
    static const hl7_delims d = {'|', '^', '~', '\\', '&', '\0'};
    tbuf scratch = TBUF_INIT;
    hl7_type_ctx c = {&d, HL7_CS_UTF8, tables, &scratch, NULL};
    memset(f, 0, sizeof(*f));
    bool ok = hl7_type_check_raw(t, &c, raw, strlen(raw), NULL, f);
    /* The composite tables found once give the same answer. */
    hl7_type_tables found;
    hl7_type_tables_find(tables, &found);
    c.found = &found;
    hl7_type_fault again;
    memset(&again, 0, sizeof(again));
    assert_int_equal(hl7_type_check_raw(t, &c, raw, strlen(raw), NULL, &again), ok);
    assert_string_equal(again.text, f->text);
    tbuf_free(&scratch);
    return ok;
}

static void test_names(void **state)
{
    (void)state;
    hl7_type t;
    for (int i = 1; i < HL7_TYPE_COUNT_; i++) {
        assert_true(hl7_type_from_name(hl7_type_name((hl7_type)i), &t));
        assert_int_equal(t, i);
    }
    assert_false(hl7_type_from_name("XYZ", &t));
    assert_string_equal(hl7_type_name(HL7_TYPE_NONE), "");
    assert_true(hl7_type_is_composite(HL7_TYPE_CX));
    assert_false(hl7_type_is_composite(HL7_TYPE_NM));
}

static void test_strings(void **state)
{
    (void)state;
    assert_true(ok_value(HL7_TYPE_ST, "anything at all"));
    assert_true(ok_value(HL7_TYPE_TX, "text"));
    assert_true(ok_value(HL7_TYPE_FT, "formatted \\.br\\ text"));
    hl7_type_fault f;
    assert_true(hl7_type_check_length("abc", 3, 3, &f));
    assert_true(hl7_type_check_length("\xc3\xa9t\xc3\xa9", 5, 3, &f)); /* été: 3 characters */
    assert_false(hl7_type_check_length("abcd", 4, 3, &f));
    assert_string_equal(f.text, "4 characters, at most 3 allowed");
    assert_int_equal(f.code, HL7_ACK_ERR_VALUE_TOO_LONG);
    assert_true(hl7_type_check_length("abcd", 4, 0, &f));
}

static void test_nm(void **state)
{
    (void)state;
    const char *good[] = {"0", "12", "-3", "+4.5", "12.", ".5", "-0.001", "007"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) assert_true(ok_value(HL7_TYPE_NM, good[i]));
    assert_string_equal(why(HL7_TYPE_NM, "12,5"), "not a number: '12,5'");
    assert_string_equal(why(HL7_TYPE_NM, "1.2.3"), "not a number: '1.2.3'");
    assert_string_equal(why(HL7_TYPE_NM, "-"), "not a number: '-'");
    assert_string_equal(why(HL7_TYPE_NM, "1e5"), "not a number: '1e5'");
    assert_string_equal(why(HL7_TYPE_NM, " 12"), "not a number: ' 12'");
    assert_string_equal(why(HL7_TYPE_NM, "."), "not a number: '.'");
    double d;
    assert_true(hl7_nm_parse("-12.25", 6, &d, NULL));
    assert_true(d == -12.25);
    assert_true(ok_value(HL7_TYPE_NM, "")); /* empty: presence is another rule */
}

static void test_si(void **state)
{
    (void)state;
    assert_true(ok_value(HL7_TYPE_SI, "1"));
    assert_true(ok_value(HL7_TYPE_SI, "9999"));
    assert_non_null(strstr(why(HL7_TYPE_SI, "0"), "positive integer"));
    assert_non_null(strstr(why(HL7_TYPE_SI, "-1"), "'-1'"));
    why(HL7_TYPE_SI, "10000");
    why(HL7_TYPE_SI, "1.0");
}

static void test_dt(void **state)
{
    (void)state;
    assert_true(ok_value(HL7_TYPE_DT, "2024"));
    assert_true(ok_value(HL7_TYPE_DT, "202402"));
    assert_true(ok_value(HL7_TYPE_DT, "20240229"));
    assert_true(ok_value(HL7_TYPE_DT, "20000229"));
    assert_string_equal(why(HL7_TYPE_DT, "20230229"), "day 29 out of range for 2023-02 in '20230229'");
    assert_string_equal(why(HL7_TYPE_DT, "19000229"), "day 29 out of range for 1900-02 in '19000229'");
    assert_string_equal(why(HL7_TYPE_DT, "20241301"), "month 13 out of range in '20241301'");
    assert_string_equal(why(HL7_TYPE_DT, "20240431"), "day 31 out of range for 2024-04 in '20240431'");
    assert_string_equal(why(HL7_TYPE_DT, "2024-01-01"), "not a date (YYYY[MM[DD]]): '2024-01-01'");
    why(HL7_TYPE_DT, "202401011200");
    why(HL7_TYPE_DT, "20240100");
    why(HL7_TYPE_DT, "24");
    why(HL7_TYPE_DT, "2024011");
}

static void test_dtm(void **state)
{
    (void)state;
    const char *good[] = {"2024", "202406", "20240601", "2024060112", "202406011230",
                          "20240601123045", "20240601123045.1", "20240601123045.1234",
                          "20240601123045+0530", "20240601-0800", "2024+0000",
                          "20240601123045.12-1200", "20240601235959+1400"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (!ok_value(HL7_TYPE_DTM, good[i])) fail_msg("DTM '%s' refused", good[i]);
        assert_true(ok_value(HL7_TYPE_TS, good[i]));
    }
    assert_string_equal(why(HL7_TYPE_DTM, "20240601250000"), "hour 25 out of range in '20240601250000'");
    assert_string_equal(why(HL7_TYPE_DTM, "202406011260"), "minute 60 out of range in '202406011260'");
    assert_string_equal(why(HL7_TYPE_DTM, "20240601125960"), "second 60 out of range in '20240601125960'");
    assert_string_equal(why(HL7_TYPE_DTM, "20240601+2500"),
                        "time zone offset +2500 out of range (-1400 to +1400) in '20240601+2500'");
    assert_string_equal(why(HL7_TYPE_DTM, "20240601+1460"),
                        "time zone offset +1460 out of range (-1400 to +1400) in '20240601+1460'");
    assert_string_equal(why(HL7_TYPE_DTM, "20240601+05"),
                        "time zone offset '+05' is not +/-HHMM in '20240601+05'");
    assert_string_equal(why(HL7_TYPE_DTM, "202406011"),
                        "not a date/time (YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]): '202406011'");
    why(HL7_TYPE_DTM, "20240601123045.12345");
    why(HL7_TYPE_DTM, "202406011230.5");
    why(HL7_TYPE_DTM, "20240601123045.");
    why(HL7_TYPE_DTM, "2024060112304X");
    why(HL7_TYPE_DTM, "abc");
    /* digits are counted eight at a time: bytes next to '0'-'9', and bytes
     * whose +6 carries, around the eighth */
    const char *not_dtm[] = {"2024060:", "2024060/", "2024060\xff", "20240601\xfa" "0000",
                             "2024060112:045", "20240601123045\xfa", "\xfa" "0240601"};
    for (size_t i = 0; i < sizeof(not_dtm) / sizeof(not_dtm[0]); i++)
        if (ok_value(HL7_TYPE_DTM, not_dtm[i])) fail_msg("DTM '%s' accepted", not_dtm[i]);

    hl7_dtm t;
    assert_true(hl7_dtm_parse("20240601123045.12+0130", 22, &t, NULL));
    assert_int_equal(t.year, 2024);
    assert_int_equal(t.month, 6);
    assert_int_equal(t.day, 1);
    assert_int_equal(t.hour, 12);
    assert_int_equal(t.minute, 30);
    assert_int_equal(t.second, 45);
    assert_int_equal(t.frac, 1200);
    assert_int_equal(t.precision, HL7_DTM_FRACTION);
    assert_true(t.has_offset);
    assert_int_equal(t.offset_min, 90);
    assert_int_equal(t.epoch, 1717245045 - 90 * 60); /* 2024-06-01T12:30:45Z = 1717245045 */
    assert_true(hl7_dtm_parse("202406", 6, &t, NULL));
    assert_int_equal(t.precision, HL7_DTM_MONTH);
    assert_false(t.has_offset);
    assert_int_equal(t.epoch, 1717200000); /* 2024-06-01T00:00 */
}

static void test_tm(void **state)
{
    (void)state;
    assert_true(ok_value(HL7_TYPE_TM, "12"));
    assert_true(ok_value(HL7_TYPE_TM, "1230"));
    assert_true(ok_value(HL7_TYPE_TM, "123045.5-0500"));
    assert_string_equal(why(HL7_TYPE_TM, "2400"), "hour 24 out of range in '2400'");
    assert_string_equal(why(HL7_TYPE_TM, "123"), "not a time (HH[MM[SS[.S[S[S[S]]]]]][+/-ZZZZ]): '123'");
    why(HL7_TYPE_TM, "12:30");
    why(HL7_TYPE_TM, "1230+9999");
}

static void test_dtm_compare_age(void **state)
{
    (void)state;
    hl7_dtm a, b;
    assert_true(hl7_dtm_parse("20240615", 8, &a, NULL));
    assert_true(hl7_dtm_parse("2024", 4, &b, NULL));
    assert_int_equal(hl7_dtm_compare(&a, &b), 0); /* equal at year precision */
    assert_true(hl7_dtm_parse("20240614235959", 14, &b, NULL));
    assert_true(hl7_dtm_compare(&a, &b) > 0);
    /* 10:00+0200 is 08:00Z, before 09:00+0000 */
    assert_true(hl7_dtm_parse("202406011000+0200", 17, &a, NULL));
    assert_true(hl7_dtm_parse("202406010900+0000", 17, &b, NULL));
    assert_true(hl7_dtm_compare(&a, &b) < 0);
    /* without both offsets wall-clock parts are compared */
    assert_true(hl7_dtm_parse("202406010900", 12, &b, NULL));
    assert_true(hl7_dtm_compare(&a, &b) > 0);
    hl7_dtm now;
    hl7_dtm_from_time(1717245045, 120, &now);
    assert_int_equal(now.hour, 14);
    assert_int_equal(now.offset_min, 120);
    assert_int_equal(now.epoch, 1717245045);

    hl7_dtm birth, at;
    assert_true(hl7_dtm_parse("20210301", 8, &birth, NULL));
    assert_true(hl7_dtm_parse("20240229", 8, &at, NULL));
    assert_int_equal(hl7_dtm_age_years(&birth, &at), 2);
    assert_true(hl7_dtm_parse("20240301", 8, &at, NULL));
    assert_int_equal(hl7_dtm_age_years(&birth, &at), 3);
    assert_true(hl7_dtm_parse("2024", 4, &at, NULL));
    assert_int_equal(hl7_dtm_age_years(&birth, &at), 3);
    assert_true(hl7_dtm_parse("2020", 4, &at, NULL));
    assert_int_equal(hl7_dtm_age_years(&birth, &at), -1);
}

static void test_id_is_tables(void **state)
{
    (void)state;
    hl7_type_fault f;
    const hl7_table *sex = hl7_table_builtin("0001");
    assert_non_null(sex);
    assert_true(hl7_type_check_value(HL7_TYPE_ID, "F", 1, sex, &f));
    assert_false(hl7_type_check_value(HL7_TYPE_IS, "X", 1, sex, &f));
    assert_int_equal(f.code, HL7_ACK_ERR_TABLE_VALUE);
    assert_string_equal(f.text, "'X' is not in table 0001 (Administrative Sex)");
    assert_false(hl7_type_check_value(HL7_TYPE_ID, "f", 1, sex, &f)); /* case matters */
    assert_true(hl7_type_check_value(HL7_TYPE_ID, "anything", 8, NULL, &f));
}

static void test_cx(void **state)
{
    (void)state;
    hl7_tables *tabs = hl7_tables_new();
    hl7_type_fault f;
    assert_true(ok_raw(HL7_TYPE_CX, tabs, "123^^^HOSP^MR", &f));
    assert_true(ok_raw(HL7_TYPE_CX, tabs, "123", &f));
    assert_true(ok_raw(HL7_TYPE_CX, tabs, "", &f));
    assert_false(ok_raw(HL7_TYPE_CX, tabs, "^^^HOSP^MR", &f));
    assert_int_equal(f.comp, 1);
    assert_int_equal(f.code, HL7_ACK_ERR_REQUIRED_FIELD);
    assert_string_equal(f.text, "ID number (CX-1) missing");
    assert_false(ok_raw(HL7_TYPE_CX, tabs, "123^^^HOSP^ZZ", &f));
    assert_int_equal(f.comp, 5);
    assert_string_equal(f.text, "'ZZ' is not in table 0203 (Identifier Type)");
    /* check digits: the HL7 examples (M10: 12345 -> 5, 401 -> 0, 9999 -> 4) */
    assert_true(ok_raw(HL7_TYPE_CX, tabs, "12345^5^M10", &f));
    assert_true(ok_raw(HL7_TYPE_CX, tabs, "4010^^M10", &f));
    assert_true(ok_raw(HL7_TYPE_CX, tabs, "9999^4^M10", &f));
    assert_true(ok_raw(HL7_TYPE_CX, tabs, "99999999^8^M10", &f));
    assert_false(ok_raw(HL7_TYPE_CX, tabs, "12345^6^M10", &f));
    assert_int_equal(f.comp, 2);
    assert_string_equal(f.text, "check digit 6 does not match ID '12345' (M10 gives 5)");
    assert_true(ok_raw(HL7_TYPE_CX, tabs, "1234567893^^NPI", &f));
    assert_false(ok_raw(HL7_TYPE_CX, tabs, "1234567890^^NPI", &f));
    assert_true(ok_raw(HL7_TYPE_CX, tabs, "0123456^^M11", &f) ||
                strstr(f.text, "M11") != NULL);
    assert_true(ok_raw(HL7_TYPE_CX, tabs, "1234^3^M11", &f)); /* 4*2+3*3+2*4+1*5=30; 11-8=3 */
    assert_false(ok_raw(HL7_TYPE_CX, tabs, "12A4^3^M11", &f));
    assert_false(ok_raw(HL7_TYPE_CX, tabs, "1234^3^XYZ", &f));
    assert_int_equal(f.comp, 3);
    assert_string_equal(f.text, "'XYZ' is not in table 0061 (Check Digit Scheme)");
    /* assigning authority HD in subcomponents */
    assert_true(ok_raw(HL7_TYPE_CX, tabs, "1^^^HOSP&2.16.840.1.113883.19&ISO^MR", &f));
    assert_false(ok_raw(HL7_TYPE_CX, tabs, "1^^^HOSP&2.16.x&ISO^MR", &f));
    assert_int_equal(f.comp, 4);
    assert_int_equal(f.sub, 2);
    assert_false(ok_raw(HL7_TYPE_CX, tabs, "1^^^&2.16.840&^MR", &f));
    assert_int_equal(f.sub, 3);
    assert_string_equal(f.text, "universal ID type (HD-3) missing for universal ID '2.16.840'");
    /* no tables: no table checks inside */
    assert_true(ok_raw(HL7_TYPE_CX, NULL, "123^^^HOSP^ZZ", &f));
    /* escapes are decoded before table lookups */
    assert_true(ok_raw(HL7_TYPE_CX, tabs, "1\\S\\2^^^HOSP^MR", &f));
    hl7_tables_free(tabs);
}

static void test_hd(void **state)
{
    (void)state;
    hl7_tables *tabs = hl7_tables_new();
    hl7_type_fault f;
    assert_true(ok_raw(HL7_TYPE_HD, tabs, "HOSP", &f));
    assert_true(ok_raw(HL7_TYPE_HD, tabs, "^1.2.3^ISO", &f));
    assert_true(ok_raw(HL7_TYPE_HD, tabs, "^0f8fad5b-d9cb-469f-a165-70867728950e^UUID", &f));
    assert_true(ok_raw(HL7_TYPE_HD, tabs, "^lab.example.org^DNS", &f));
    assert_false(ok_raw(HL7_TYPE_HD, tabs, "^1.02.3^ISO", &f));
    assert_int_equal(f.comp, 2);
    /* OIDs: arcs of digits, none empty, none of several digits led by 0 */
    const char *oids[] = {"0.1", "1.0", "2.16.840.1.113883", "1.0.10", "10.0"};
    const char *not_oids[] = {"1", "0", ".1", "1.", "1..2", "01.2", "1.02", "1.2.", "1.a",
                              "1.2-3", "00.1", "1.00"};
    char hd[64];
    for (size_t i = 0; i < sizeof(oids) / sizeof(oids[0]); i++) {
        snprintf(hd, sizeof(hd), "^%s^ISO", oids[i]);
        if (!ok_raw(HL7_TYPE_HD, tabs, hd, &f)) fail_msg("%s: %s", hd, f.text);
    }
    for (size_t i = 0; i < sizeof(not_oids) / sizeof(not_oids[0]); i++) {
        snprintf(hd, sizeof(hd), "^%s^ISO", not_oids[i]);
        if (ok_raw(HL7_TYPE_HD, tabs, hd, &f)) fail_msg("%s passes", hd);
    }
    assert_false(ok_raw(HL7_TYPE_HD, tabs, "^xyz^UUID", &f));
    assert_false(ok_raw(HL7_TYPE_HD, tabs, "^1.2.3^OID", &f));
    assert_string_equal(f.text, "'OID' is not in table 0301 (Universal ID Type)");
    assert_false(ok_raw(HL7_TYPE_HD, tabs, "^^ISO", &f));
    assert_string_equal(f.text, "namespace ID (HD-1) or universal ID (HD-2) required");
    assert_false(ok_raw(HL7_TYPE_HD, tabs, "NS^^ISO", &f));
    assert_string_equal(f.text, "universal ID (HD-2) missing for universal ID type 'ISO'");
    hl7_tables_free(tabs);
}

static void test_xpn_xad_cwe_ts(void **state)
{
    (void)state;
    hl7_type_fault f;
    assert_true(ok_raw(HL7_TYPE_XPN, NULL, "DOE^JOHN^Q^JR^DR", &f));
    assert_true(ok_raw(HL7_TYPE_XPN, NULL, "DOE&VAN&DER^JOHN", &f));
    assert_true(ok_raw(HL7_TYPE_XPN, NULL, "", &f));
    assert_false(ok_raw(HL7_TYPE_XPN, NULL, "^JOHN", &f));
    assert_string_equal(f.text, "family name (XPN-1) missing");
    assert_int_equal(f.comp, 1);

    assert_true(ok_raw(HL7_TYPE_XAD, NULL, "1 MAIN ST^^SPRINGFIELD^IL^62701^USA^H", &f));
    assert_true(ok_raw(HL7_TYPE_XAD, NULL, "^^PARIS", &f));
    assert_false(ok_raw(HL7_TYPE_XAD, NULL, "^^^^^US", &f));
    assert_int_equal(f.comp, 6);
    assert_false(ok_raw(HL7_TYPE_XAD, NULL, "^^^^", &f));

    assert_true(ok_raw(HL7_TYPE_CWE, NULL, "8867-4^Heart rate^LN", &f));
    assert_true(ok_raw(HL7_TYPE_CWE, NULL, "^free text only", &f));
    assert_true(ok_raw(HL7_TYPE_CE, NULL, "^^^A1^Alt^99zzz", &f));
    assert_false(ok_raw(HL7_TYPE_CWE, NULL, "^^LN", &f));
    assert_string_equal(f.text, "identifier (CWE-1) or text (CWE-2) required");
    assert_false(ok_raw(HL7_TYPE_CE, NULL, "^text^LN", &f));
    assert_string_equal(f.text, "coding system 'LN' (CE-3) given without an identifier (CE-1)");
    assert_false(ok_raw(HL7_TYPE_CWE, NULL, "X^text^L N", &f));
    assert_int_equal(f.comp, 3);

    assert_true(ok_raw(HL7_TYPE_TS, NULL, "20240601^S", &f));
    assert_false(ok_raw(HL7_TYPE_TS, NULL, "20240631^D", &f));
    assert_int_equal(f.comp, 1);
    assert_false(ok_raw(HL7_TYPE_DT, NULL, "2024013^x", &f));
    assert_int_equal(f.comp, 1);
    assert_true(ok_raw(HL7_TYPE_NM, NULL, "12^extra", &f));
}

/* --- tables ------------------------------------------------------------------- */

static void test_builtin_tables(void **state)
{
    (void)state;
    const char *expected[] = {"0001", "0002", "0003", "0004", "0061", "0076", "0078",
                              "0085", "0103", "0104", "0123", "0125", "0203", "0301"};
    assert_int_equal(hl7_table_builtin_count(), sizeof(expected) / sizeof(expected[0]));
    for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++)
        assert_non_null(hl7_table_builtin(expected[i]));
    for (size_t i = 0; i < hl7_table_builtin_count(); i++) {
        const hl7_table *t = hl7_table_builtin_at(i);
        assert_true(t->n > 0);
        for (size_t k = 1; k < t->n; k++)
            if (strcmp(t->entries[k - 1].code, t->entries[k].code) >= 0)
                fail_msg("table %s not sorted at %s", t->name, t->entries[k].code);
        for (size_t k = 0; k < t->n; k++)
            assert_ptr_equal(hl7_table_lookup(t, t->entries[k].code, strlen(t->entries[k].code)),
                             &t->entries[k]);
    }
    assert_null(hl7_table_builtin_at(99));
    assert_null(hl7_table_builtin("9999"));
    const hl7_table *ev = hl7_table_builtin("0003");
    assert_true(hl7_table_has(ev, "A01", 3));
    assert_true(hl7_table_has(ev, "R01", 3));
    assert_false(hl7_table_has(ev, "A0", 2));
    assert_false(hl7_table_has(ev, "A011", 4));
    const hl7_table *flags = hl7_table_builtin("0078");
    assert_true(hl7_table_has(flags, "HH", 2));
    assert_true(hl7_table_has(flags, "POS", 3)); /* v2.7+ */
    assert_true(hl7_table_has(flags, "<", 1));
    assert_string_equal(hl7_table_lookup(hl7_table_builtin("0004"), "E", 1)->display, "Emergency");
    assert_true(hl7_table_has(hl7_table_builtin("0104"), "2.5.1", 5));
    assert_false(hl7_table_has(hl7_table_builtin("0104"), "2.5.2", 5));
}

/* The tables a registry hands out look codes up in a hash index: every code
 * of every built-in table is found there, and texts near them (prefixes,
 * extensions, other bytes) are found exactly when bisecting finds them. */
static void test_table_index(void **state)
{
    (void)state;
    hl7_tables *r = hl7_tables_new();
    for (size_t i = 0; i < hl7_table_builtin_count(); i++) {
        const hl7_table *b = hl7_table_builtin_at(i), *t = hl7_tables_find(r, b->name);
        assert_non_null(t);
        assert_non_null(t->slots);
        assert_null(b->slots);
        assert_int_equal(t->n, b->n);
        for (size_t k = 0; k < t->n; k++) {
            const char *c = t->entries[k].code;
            size_t len = strlen(c);
            assert_ptr_equal(hl7_table_lookup(t, c, len), &t->entries[k]);
            char near[40];
            snprintf(near, sizeof(near), "%sX", c);
            const char *tries[] = {c, near, "", "\x80", "A", "NM"};
            size_t lens[] = {len ? len - 1 : 0, len + 1, 0, 1, 1, 2};
            for (size_t j = 0; j < sizeof(tries) / sizeof(tries[0]); j++)
                assert_ptr_equal(hl7_table_lookup(t, tries[j], lens[j]),
                                 hl7_table_lookup(b, tries[j], lens[j]));
        }
    }
    hl7_tables_free(r);
}

static hl7_table_status add(hl7_tables *r, const char *text, hl7_table_error *err)
{
    memset(err, 0, sizeof(*err));
    return hl7_tables_add_csv(r, "LOCAL", text, strlen(text), "sex.csv", err);
}

static void test_csv_tables(void **state)
{
    (void)state;
    hl7_tables *r = hl7_tables_new();
    hl7_table_error err;
    assert_int_equal(add(r,
                         "\xEF\xBB\xBF"
                         "code,display\r\n"
                         "F,Female\r\n"
                         "\r\n"
                         "\"X,Y\",\"with, comma and \"\"quotes\"\"\"\n"
                         "D,Div\xc3\xa8rs\n"
                         "E,",
                         &err),
                     HL7_TABLE_OK);
    const hl7_table *t = hl7_tables_find(r, "LOCAL");
    assert_non_null(t);
    assert_int_equal(t->n, 4);
    assert_string_equal(hl7_table_lookup(t, "X,Y", 3)->display, "with, comma and \"quotes\"");
    assert_string_equal(hl7_table_lookup(t, "D", 1)->display, "Div\xc3\xa8rs");
    assert_string_equal(hl7_table_lookup(t, "E", 1)->display, "");
    assert_non_null(hl7_tables_find(r, "0001")); /* built-ins stay reachable */
    assert_null(hl7_tables_find(r, "NOPE"));

    struct {
        const char *text, *msg;
        size_t line;
    } bad[] = {
        {"", "sex.csv: empty: expected a header line \"code,display\" and rows", 0},
        {"code,display\nF,Female\nM\n", "sex.csv:3: expected 2 columns (code,display), found 1", 3},
        {"code,display\nF,Female,extra\n", "sex.csv:2: expected 2 columns (code,display), found 3", 2},
        {"code,display\n,Nothing\n", "sex.csv:2: empty code", 2},
        {"code,display\nF,\"Female\n", "sex.csv:2: unterminated quoted field (close it with '\"'; write a quote inside quotes as \"\")", 2},
        {"code,display\nF,\"Fem\"ale\n", "sex.csv:2: unexpected text after a closing quote", 2},
        {"code,display\nF,Fe\"male\n", "sex.csv:2: a quote inside an unquoted field (quote the whole field)", 2},
        {"code,display\nF,Female\nM,Male\nF,Again\n", "sex.csv:4: code 'F' already defined on line 2", 4},
        {"code,display\nF,Fem\xff\n", "sex.csv:2: not valid UTF-8 (save the file as UTF-8)", 2},
        {"code,display\nF,\xc0\xaf\n", "sex.csv:2: not valid UTF-8 (save the file as UTF-8)", 2},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(add(r, bad[i].text, &err), HL7_TABLE_ERR_CSV);
        assert_string_equal(err.text, bad[i].msg);
        assert_int_equal(err.line, bad[i].line);
    }
    /* failures left the good table in place */
    assert_int_equal(hl7_tables_find(r, "LOCAL")->n, 4);
    /* replacing a table, and overriding a built-in one */
    assert_int_equal(add(r, "code,display\nQ,Q\n", &err), HL7_TABLE_OK);
    assert_int_equal(hl7_tables_find(r, "LOCAL")->n, 1);
    assert_int_equal(hl7_tables_add_csv(r, "0001", "c,d\nZ,Zed\n", 10, NULL, &err), HL7_TABLE_OK);
    assert_true(hl7_table_has(hl7_tables_find(r, "0001"), "Z", 1));
    assert_false(hl7_table_has(hl7_tables_find(r, "0001"), "F", 1));
    assert_int_equal(hl7_tables_add_csv(r, "bad name", "c,d\n", 4, NULL, &err), HL7_TABLE_ERR_NAME);
    assert_int_equal(hl7_tables_add_csv(r, "", "c,d\n", 4, NULL, &err), HL7_TABLE_ERR_NAME);

    char path[512];
    snprintf(path, sizeof(path), "%s/tests/data/quality/tables/sex.csv", TERN_SOURCE_DIR);
    assert_int_equal(hl7_tables_load_csv(r, "LOCALSEX", path, &err), HL7_TABLE_OK);
    assert_true(hl7_table_has(hl7_tables_find(r, "LOCALSEX"), "X", 1));
    assert_int_equal(hl7_tables_load_csv(r, "MISSING", "/nonexistent/t.csv", &err),
                     HL7_TABLE_ERR_IO);
    assert_non_null(strstr(err.text, "/nonexistent/t.csv"));
    assert_string_equal(hl7_table_strerror(HL7_TABLE_ERR_CSV), "malformed table CSV");
    hl7_tables_free(r);
}

/* "now" as a date and time by arithmetic, as gmtime_r() gives it, over
 * years 0 to 9999 and time zone offsets of +-14 h; and the NM shapes read
 * in one pass equal the general reading. */
static void test_from_time_and_numbers(void **state)
{
    (void)state;
    uint64_t x = 99;
    for (long i = 0; i < 200000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        time_t t = (time_t)((int64_t)(x % 315569520000ull) - 62167219200LL);
        if (i % 3 == 0) t = (time_t)((int64_t)(x % 4000000000ull) - 2000000000LL);
        int off = (int)((x >> 40) % 1681) - 840;
        hl7_dtm a;
        hl7_dtm_from_time(t, off, &a);
        time_t local = t + (time_t)off * 60;
        struct tm tm;
        if (!gmtime_r(&local, &tm)) continue;
        assert_int_equal(a.year, tm.tm_year + 1900);
        assert_int_equal(a.month, tm.tm_mon + 1);
        assert_int_equal(a.day, tm.tm_mday);
        assert_int_equal(a.hour * 3600 + a.minute * 60 + a.second,
                         tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec);
        assert_int_equal(a.epoch, (int64_t)t);
    }
    const char *nums[] = {"0",
                          "7",
                          "112",
                          "0.92",
                          ".5",
                          "5.",
                          "000123.4500",
                          "123456789012345",
                          "1234567890123456",
                          "-3",
                          "+4.",
                          ".",
                          "1.2.3",
                          "",
                          "12a"};
    for (size_t i = 0; i < sizeof nums / sizeof *nums; i++) {
        double d = 0;
        bool ok = hl7_nm_parse(nums[i], strlen(nums[i]), &d, NULL);
        char *end;
        double want = strtod(nums[i], &end);
        if (ok)
            assert_true(d == want && *end == '\0');
        else
            assert_true(!nums[i][0] || *end != '\0' || !strcmp(nums[i], "."));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_nm),
        cmocka_unit_test(test_si),
        cmocka_unit_test(test_dt),
        cmocka_unit_test(test_dtm),
        cmocka_unit_test(test_tm),
        cmocka_unit_test(test_dtm_compare_age),
        cmocka_unit_test(test_id_is_tables),
        cmocka_unit_test(test_cx),
        cmocka_unit_test(test_hd),
        cmocka_unit_test(test_xpn_xad_cwe_ts),
        cmocka_unit_test(test_builtin_tables),
        cmocka_unit_test(test_table_index),
        cmocka_unit_test(test_csv_tables),
        cmocka_unit_test(test_from_time_and_numbers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
