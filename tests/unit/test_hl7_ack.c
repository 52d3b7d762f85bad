/*
 * Unit tests for acknowledgements (hl7_ack.c): modes and conditions, every
 * code, the MSH of an ACK (swap, echo, MSH-9 by version, delimiters,
 * character sets), escaping, ERR layouts before and from v2.5, parse errors
 * as problems, the NAK for unparseable input, and a sweep over corrupted
 * inputs. Every ACK built here goes through check_ack(), which parses it
 * back with hl7_parse and reads MSA-1/MSA-2 with hl7_get.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hl7/hl7.h"
#include "hl7/hl7_ack.h"

#define TS "20250102030405+0100"

#define MSH25                                                                                      \
    "MSH|^~\\&|SND^1.2.3^ISO|SFAC|RCV|RFAC|20240101120000||ADT^A01^ADT_A01|MSG00001|P|2.5.1"
#define ADT25 MSH25 "\rEVN|A01|20240101120000\rPID|1||123^^^H^MR||DOE^JOHN\r"

static hl7_msg *parse_ok(const char *text)
{
    hl7_msg *m = hl7_msg_new(NULL);
    hl7_error err;
    hl7_status st = hl7_parse(m, text, strlen(text), &err);
    if (st != HL7_OK) fprintf(stderr, "unexpected: %s\n", err.text);
    assert_int_equal(st, HL7_OK);
    return m;
}

/* Decoded value at path, in a static buffer. */
static const char *get(const hl7_msg *m, const char *path)
{
    static char buf[4096];
    hl7_path p;
    hl7_error err;
    assert_int_equal(hl7_path_parse(path, &p, &err), HL7_OK);
    tbuf out = TBUF_INIT;
    hl7_get(m, &p, &out);
    snprintf(buf, sizeof(buf), "%s", out.p ? out.p : "");
    tbuf_free(&out);
    return buf;
}

static const char *get_raw(const hl7_msg *m, const char *path)
{
    static char buf[4096];
    hl7_path p;
    hl7_error err;
    hl7_span v = {"", 0};
    assert_int_equal(hl7_path_parse(path, &p, &err), HL7_OK);
    if (hl7_get_raw(m, &p, &v) == HL7_ABSENT) v.len = 0;
    snprintf(buf, sizeof(buf), "%.*s", (int)v.len, v.p);
    return buf;
}

/* The checks every ACK must pass: only CR as control character, CR after
 * each segment and no newline, parses, is an ACK, MSA-1 and raw MSA-2 as
 * expected (code NULL: any code). */
static void check_ack(const tbuf *ack, const char *code, const char *msa2)
{
    assert_non_null(ack->p);
    assert_true(ack->len > 0);
    assert_int_equal(ack->p[ack->len - 1], '\r');
    for (size_t i = 0; i < ack->len; i++) {
        unsigned char c = (unsigned char)ack->p[i];
        if (c != '\r' && (c < 0x20 || c == 0x7f)) fail_msg("control byte 0x%02x at %zu", c, i);
    }
    hl7_msg *m = hl7_msg_new(NULL);
    hl7_error err;
    hl7_status st = hl7_parse(m, ack->p, ack->len, &err);
    if (st != HL7_OK) fail_msg("ACK does not parse: %s\n%s", err.text, ack->p);
    assert_true(hl7_ack_is_ack(m));
    assert_string_equal(get(m, "MSH-9.1"), "ACK");
    assert_int_equal(hl7_seg_find(m, "MSA", 1), 1);
    if (code) assert_string_equal(get(m, "MSA-1"), code);
    if (msa2) assert_string_equal(get_raw(m, "MSA-2"), msa2);
    hl7_msg_free(m);
}

/* Builds the ACK for text with o (timestamp and control id fixed unless o
 * sets them); returns it malloc'ed. */
static char *ack_of(const char *text, const hl7_ack_opts *o)
{
    hl7_ack_opts opts = o ? *o : (hl7_ack_opts){0};
    if (!opts.timestamp) opts.timestamp = TS;
    if (!opts.control_id) opts.control_id = "C1";
    hl7_msg *m = parse_ok(text);
    tbuf out = TBUF_INIT;
    hl7_error err;
    hl7_status st = hl7_ack_build(m, &opts, &out, &err);
    if (st != HL7_OK) fail_msg("hl7_ack_build: %s", err.text);
    hl7_span id = {"", 0};
    hl7_raw(m, 0, 10, 0, 0, 0, &id);
    char want[256];
    snprintf(want, sizeof(want), "%.*s", (int)id.len, id.p);
    check_ack(&out, NULL, want);
    hl7_msg_free(m);
    return tbuf_detach(&out, NULL);
}

static char *nak_of(const char *raw, size_t len, const hl7_ack_opts *o, hl7_error *err)
{
    hl7_msg *m = hl7_msg_new(NULL);
    assert_int_not_equal(hl7_parse(m, raw, len, err), HL7_OK);
    hl7_msg_free(m);
    hl7_ack_opts opts = o ? *o : (hl7_ack_opts){0};
    if (!opts.timestamp) opts.timestamp = TS;
    if (!opts.control_id) opts.control_id = "C1";
    tbuf out = TBUF_INIT;
    hl7_ack_build_nak(raw, len, err, &opts, &out);
    check_ack(&out, NULL, NULL);
    return tbuf_detach(&out, NULL);
}

/* --- modes, conditions, codes ------------------------------------------- */

static void test_modes_and_conditions(void **state)
{
    (void)state;
    hl7_msg *m = parse_ok(MSH25 "\r");
    assert_int_equal(hl7_ack_mode_of(m), HL7_ACK_MODE_ORIGINAL);
    assert_int_equal(hl7_ack_accept_cond(m), HL7_ACK_COND_EMPTY);
    assert_false(hl7_ack_wants_accept(m, true));
    assert_false(hl7_ack_wants_accept(m, false));
    assert_true(hl7_ack_wants_app(m, true));
    assert_true(hl7_ack_wants_app(m, false));
    hl7_msg_free(m);

    static const struct {
        const char *f15, *f16;
        hl7_ack_cond c15, c16;
    } cases[] = {
        {"AL", "NE", HL7_ACK_COND_AL, HL7_ACK_COND_NE},
        {"", "er", HL7_ACK_COND_EMPTY, HL7_ACK_COND_ER},
        {" SU ", "", HL7_ACK_COND_SU, HL7_ACK_COND_EMPTY},
        {"XX", "\"\"", HL7_ACK_COND_OTHER, HL7_ACK_COND_EMPTY},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[256];
        snprintf(text, sizeof(text), MSH25 "|||%s|%s\r", cases[i].f15, cases[i].f16);
        m = parse_ok(text);
        assert_int_equal(hl7_ack_mode_of(m), HL7_ACK_MODE_ENHANCED);
        assert_int_equal(hl7_ack_accept_cond(m), cases[i].c15);
        assert_int_equal(hl7_ack_app_cond(m), cases[i].c16);
        for (int ok = 0; ok <= 1; ok++) {
            assert_int_equal(hl7_ack_wants_accept(m, ok), hl7_ack_cond_wants(cases[i].c15, ok));
            assert_int_equal(hl7_ack_wants_app(m, ok), hl7_ack_cond_wants(cases[i].c16, ok));
        }
        hl7_msg_free(m);
    }
    /* the table: AL always, NE never, ER on error, SU on success */
    assert_true(hl7_ack_cond_wants(HL7_ACK_COND_AL, true));
    assert_true(hl7_ack_cond_wants(HL7_ACK_COND_AL, false));
    assert_false(hl7_ack_cond_wants(HL7_ACK_COND_NE, true));
    assert_false(hl7_ack_cond_wants(HL7_ACK_COND_NE, false));
    assert_false(hl7_ack_cond_wants(HL7_ACK_COND_ER, true));
    assert_true(hl7_ack_cond_wants(HL7_ACK_COND_ER, false));
    assert_true(hl7_ack_cond_wants(HL7_ACK_COND_SU, true));
    assert_false(hl7_ack_cond_wants(HL7_ACK_COND_SU, false));
    assert_true(hl7_ack_cond_wants(HL7_ACK_COND_EMPTY, false));
    assert_true(hl7_ack_cond_wants(HL7_ACK_COND_OTHER, true));
}

static void test_codes(void **state)
{
    (void)state;
    static const char *const names[] = {"AA", "AE", "AR", "CA", "CE", "CR"};
    hl7_error err;
    for (int c = HL7_ACK_AA; c <= HL7_ACK_CR; c++) {
        assert_string_equal(hl7_ack_code_name((hl7_ack_code)c), names[c - 1]);
        hl7_ack_code got = HL7_ACK_AUTO;
        assert_int_equal(hl7_ack_code_parse(names[c - 1], &got, &err), HL7_OK);
        assert_int_equal(got, c);
        char lower[3] = {(char)(names[c - 1][0] + 32), (char)(names[c - 1][1] + 32), 0};
        assert_int_equal(hl7_ack_code_parse(lower, &got, &err), HL7_OK);
        assert_int_equal(got, c);
        /* every code can be sent, whatever the mode */
        hl7_ack_opts o = {.code = (hl7_ack_code)c};
        char *ack = ack_of(ADT25, &o);
        char want[32];
        snprintf(want, sizeof(want), "\rMSA|%s|MSG00001\r", names[c - 1]);
        assert_non_null(strstr(ack, want));
        free(ack);
    }
    assert_string_equal(hl7_ack_code_name(HL7_ACK_AUTO), "");
    assert_string_equal(hl7_ack_code_name((hl7_ack_code)42), "");
    hl7_ack_code keep = HL7_ACK_AE;
    assert_int_equal(hl7_ack_code_parse("AX", &keep, &err), HL7_ERR_VALUE);
    assert_int_equal(keep, HL7_ACK_AE);
    assert_non_null(strstr(err.text, "'AX'"));
    assert_int_equal(hl7_ack_code_parse("", &keep, &err), HL7_ERR_VALUE);

    assert_int_equal(hl7_ack_code_for(HL7_ACK_MODE_ORIGINAL, HL7_ACK_OUTCOME_ACCEPT), HL7_ACK_AA);
    assert_int_equal(hl7_ack_code_for(HL7_ACK_MODE_ORIGINAL, HL7_ACK_OUTCOME_ERROR), HL7_ACK_AE);
    assert_int_equal(hl7_ack_code_for(HL7_ACK_MODE_ORIGINAL, HL7_ACK_OUTCOME_REJECT), HL7_ACK_AR);
    assert_int_equal(hl7_ack_code_for(HL7_ACK_MODE_ENHANCED, HL7_ACK_OUTCOME_ACCEPT), HL7_ACK_CA);
    assert_int_equal(hl7_ack_code_for(HL7_ACK_MODE_ENHANCED, HL7_ACK_OUTCOME_ERROR), HL7_ACK_CE);
    assert_int_equal(hl7_ack_code_for(HL7_ACK_MODE_ENHANCED, HL7_ACK_OUTCOME_REJECT), HL7_ACK_CR);

    assert_string_equal(hl7_ack_errcode_text(HL7_ACK_ERR_REQUIRED_FIELD), "Required field missing");
    assert_string_equal(hl7_ack_errcode_text(HL7_ACK_ERR_INTERNAL), "Application internal error");
    assert_null(hl7_ack_errcode_text((hl7_ack_errcode)999));
    assert_string_equal(hl7_ack_severity_name(HL7_ACK_SEV_WARNING), "W");
    assert_string_equal(hl7_ack_severity_name(HL7_ACK_SEV_INFO), "I");
    assert_string_equal(hl7_ack_severity_name((hl7_ack_severity)9), "E");
}

/* --- the ACK ------------------------------------------------------------- */

static void test_original_mode_ack(void **state)
{
    (void)state;
    char *ack = ack_of(ADT25, NULL);
    assert_string_equal(ack,
                        "MSH|^~\\&|RCV|RFAC|SND^1.2.3^ISO|SFAC|" TS "||ACK^A01^ACK|C1|P|2.5.1\r"
                        "MSA|AA|MSG00001\r");
    free(ack);
    /* an application error code is chosen when a problem is an error ... */
    hl7_ack_problem p = {.code = HL7_ACK_ERR_INTERNAL};
    hl7_ack_opts o = {.problems = &p, .nproblems = 1};
    ack = ack_of(ADT25, &o);
    assert_non_null(strstr(ack, "\rMSA|AE|MSG00001\r"));
    free(ack);
    /* ... but not for a warning */
    p.severity = HL7_ACK_SEV_WARNING;
    ack = ack_of(ADT25, &o);
    assert_non_null(strstr(ack, "\rMSA|AA|MSG00001\r"));
    free(ack);
}

static void test_enhanced_mode_ack(void **state)
{
    (void)state;
    const char *msg = MSH25 "||||AL|NE\rPID|1\r";
    char *ack = ack_of(msg, NULL);
    /* CA by default; the ACK itself asks for no acknowledgement (MSH-15/16 empty) */
    assert_string_equal(ack, "MSH|^~\\&|RCV|RFAC|SND^1.2.3^ISO|SFAC|" TS
                             "||ACK^A01^ACK|C1|P|2.5.1\rMSA|CA|MSG00001\r");
    free(ack);
    hl7_ack_problem p = {.code = HL7_ACK_ERR_RECORD_LOCKED};
    hl7_ack_opts o = {.problems = &p, .nproblems = 1, .text = "try later"};
    ack = ack_of(msg, &o);
    assert_non_null(strstr(ack, "\rMSA|CE|MSG00001|try later\r"));
    free(ack);
    /* the application ack of enhanced mode: the caller says AA */
    o = (hl7_ack_opts){.code = HL7_ACK_AA};
    ack = ack_of(msg, &o);
    assert_non_null(strstr(ack, "\rMSA|AA|MSG00001\r"));
    free(ack);
}

static void test_swap_and_echo(void **state)
{
    (void)state;
    const char *msg = "MSH|^~\\&|APP^2.16.840.1.1^ISO|FAC~ALT|||20240101||ORU^R01^ORU_R01|"
                      "ID^7|T^A|2.6^USA^ISO||||||UNICODE UTF-8\rOBX|1\r";
    char *ack = ack_of(msg, NULL);
    hl7_msg *orig = parse_ok(msg);
    hl7_msg *m = parse_ok(ack);
    /* MSH-3/4 <- MSH-5/6 and back, composites and repetitions intact */
    static const char *const pairs[][2] = {
        {"MSH-3", "MSH-5"},   {"MSH-4", "MSH-6"},   {"MSH-5", "MSH-3"},  {"MSH-6", "MSH-4"},
        {"MSH-11", "MSH-11"}, {"MSH-12", "MSH-12"}, {"MSH-18", "MSH-18"}};
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        char want[256];
        snprintf(want, sizeof(want), "%s", get_raw(orig, pairs[i][1]));
        assert_string_equal(get_raw(m, pairs[i][0]), want);
    }
    assert_string_equal(get(m, "MSH-5.2"), "2.16.840.1.1");
    assert_string_equal(get(m, "MSH-6[2]"), "ALT");
    assert_string_equal(get(m, "MSH-9"), "ACK^R01^ACK");
    assert_string_equal(get(m, "MSA-2"), "ID^7");
    assert_string_equal(get(m, "MSH-7"), TS);
    assert_string_equal(get(m, "MSH-10"), "C1");
    assert_int_equal(hl7_charset_of(m), HL7_CS_UTF8);
    hl7_msg_free(m);
    hl7_msg_free(orig);
    free(ack);
}

static void test_msh9_by_version(void **state)
{
    (void)state;
    static const struct {
        const char *type, *version, *want;
    } cases[] = {
        {"ADT^A04", "2.3", "ACK^A04"}, /* no message structure before 2.3.1 */
        {"ADT^A04", "2.2", "ACK^A04"},
        {"ADT^A04", "2.3.1", "ACK^A04^ACK"},
        {"ADT^A04", "2.4", "ACK^A04^ACK"},
        {"ADT^A04", "2.8.2", "ACK^A04^ACK"},
        {"ADT^A04", "V2", "ACK^A04^ACK"}, /* unknown: current layout */
        {"ADT", "2.5", "ACK"},            /* no trigger */
        {"", "2.5", "ACK"},
        {"ADT^A04~ADT^A08", "2.5", "ACK^A04^ACK"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char msg[256], want[64];
        snprintf(msg, sizeof(msg), "MSH|^~\\&|A|B|C|D|20240101||%s|X|P|%s\r", cases[i].type,
                 cases[i].version);
        char *ack = ack_of(msg, NULL);
        snprintf(want, sizeof(want), "||%s|C1|P|%s\r", cases[i].want, cases[i].version);
        if (!strstr(ack, want)) fail_msg("case %zu: want %s in %s", i, want, ack);
        free(ack);
    }
}

static void test_custom_delimiters(void **state)
{
    (void)state;
    const char *msg = "MSH#!@%*#SND#SF#RCV#RF#20240101##ADT!A01#M#P#2.5\rPID#1##a!b\r";
    const char *text = "odd # ! @ % * | ^ ~ \\ & chars";
    hl7_ack_problem p = {
        .code = HL7_ACK_ERR_DATA_TYPE, .text = "bad #3", .where = {"PID", 1, 3, 1, 2, 0}};
    hl7_ack_opts o = {.text = text, .problems = &p, .nproblems = 1};
    char *ack = ack_of(msg, &o);
    assert_string_equal(ack, "MSH#!@%*#RCV#RF#SND#SF#" TS "##ACK!A01!ACK#C1#P#2.5\r"
                             "MSA#AE#M#odd %F% %S% %R% %E% %T% | ^ ~ \\ & chars\r"
                             "ERR##PID!1!3!1!2#102!Data type error!HL70357#E####bad %F%3\r");
    hl7_msg *m = parse_ok(ack);
    assert_string_equal(get(m, "MSA-3"), text);
    assert_string_equal(get(m, "ERR-8"), "bad #3");
    assert_string_equal(get(m, "ERR-2.5"), "2");
    hl7_msg_free(m);
    free(ack);
    /* a five-character MSH-2 (v2.7 truncation character) is kept */
    ack = ack_of("MSH|^~\\&#|A|B|C|D|20240101||ADT^A01|X|P|2.7\r", &(hl7_ack_opts){.text = "a#b"});
    assert_non_null(strstr(ack, "MSH|^~\\&#|C|D|A|B|"));
    assert_non_null(strstr(ack, "MSA|AA|X|a\\P\\b\r"));
    free(ack);
}

static void test_text_escaping(void **state)
{
    (void)state;
    /* delimiters, CR, LF and the MLLP framing bytes VT and FS */
    const char *text = "a|b^c~d\\e&f\rg\nh\x0bi\x1cj\tk\x7f";
    hl7_ack_problem p = {.code = 207, .text = text};
    hl7_ack_opts o = {.text = text, .problems = &p, .nproblems = 1, .control_id = "X|Y"};
    char *ack = ack_of(ADT25, &o);
    assert_non_null(strstr(ack, "\rMSA|AE|MSG00001|a\\F\\b\\S\\c\\R\\d\\E\\e\\T\\f\\X0D\\g\\.br\\h"
                                "\\X0B\\i\\X1C\\j\\X09\\k\\X7F\\\r"));
    assert_non_null(strstr(ack, "|ACK^A01^ACK|X\\F\\Y|"));
    hl7_msg *m = parse_ok(ack);
    assert_string_equal(get(m, "MSA-3"), text);
    assert_string_equal(get(m, "ERR-8"), text);
    assert_string_equal(get(m, "MSH-10"), "X|Y");
    assert_int_equal(hl7_seg_count(m), 3);
    hl7_msg_free(m);
    free(ack);
    /* control characters in echoed values are escaped too */
    const char odd[] = "MSH|^~\\&|A\x1c"
                       "B|F|R|RF|20240101||ADT^A01|ID\x0b|P|2.5\r";
    hl7_msg *orig = parse_ok(odd);
    tbuf out = TBUF_INIT;
    hl7_error err;
    assert_int_equal(
        hl7_ack_build(orig, &(hl7_ack_opts){.timestamp = TS, .control_id = "C"}, &out, &err),
        HL7_OK);
    check_ack(&out, "AA", "ID\\X0B\\");
    assert_non_null(strstr(out.p, "|R|RF|A\\X1C\\B|F|"));
    tbuf_free(&out);
    hl7_msg_free(orig);
}

static void test_charsets(void **state)
{
    (void)state;
    static const struct {
        const char *cs, *want;
    } cases[] = {
        {"", "M\xc3\xbcller \xe2\x82\xac \xe4\xb8\xad ?"},
        {"UNICODE UTF-8", "M\xc3\xbcller \xe2\x82\xac \xe4\xb8\xad ?"},
        {"8859/1", "M\xfcller ? ? ?"},
        {"8859/15", "M\xfcller \xa4 ? ?"},
        {"ASCII", "M?ller ? ? ?"},
    };
    /* ü, €, a CJK character and an invalid byte */
    const char *text = "M\xc3\xbcller \xe2\x82\xac \xe4\xb8\xad \xff";
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char msg[256], want[128];
        snprintf(msg, sizeof(msg), "MSH|^~\\&|A|B|C|D|20240101||ADT^A01|X|P|2.5||||||%s\r",
                 cases[i].cs);
        char *ack = ack_of(msg, &(hl7_ack_opts){.text = text});
        snprintf(want, sizeof(want), "\rMSA|AA|X|%s\r", cases[i].want);
        if (!strstr(ack, want)) fail_msg("charset '%s': want %s in %s", cases[i].cs, want, ack);
        free(ack);
    }
    /* 8859/15 has no currency sign: the Latin-1 character it replaced is lost */
    char *ack = ack_of("MSH|^~\\&|A|B|C|D|20240101||ADT^A01|X|P|2.5||||||8859/15\r",
                       &(hl7_ack_opts){.text = "\xc2\xa4"});
    assert_non_null(strstr(ack, "MSA|AA|X|?\r"));
    free(ack);
}

/* --- ERR ------------------------------------------------------------------ */

static void test_err_v25(void **state)
{
    (void)state;
    hl7_ack_problem p[5] = {
        {.code = HL7_ACK_ERR_REQUIRED_FIELD, .text = "PID-3 is required"},
        {.code = HL7_ACK_ERR_TABLE_VALUE, .severity = HL7_ACK_SEV_WARNING},
        {.code = HL7_ACK_ERR_ACCEPTED, .severity = HL7_ACK_SEV_INFO, .text = "fine"},
        {.code = (hl7_ack_errcode)501, .text = "local"},
        {.code = HL7_ACK_ERR_VALUE_TOO_LONG, .where = {"OBX", 0, 5, 0, 0, 0}},
    };
    hl7_error err;
    assert_int_equal(hl7_path_parse("PID-3", &p[0].where, &err), HL7_OK);
    assert_int_equal(hl7_path_parse("OBX[2]-5[3].1.2", &p[1].where, &err), HL7_OK);
    assert_int_equal(hl7_path_parse("PID", &p[3].where, &err), HL7_OK);
    char *ack = ack_of(ADT25, &(hl7_ack_opts){.problems = p, .nproblems = 5});
    const char *errs = strstr(ack, "\rERR");
    assert_non_null(errs);
    assert_string_equal(errs + 1,
                        "ERR||PID^1^3^1|101^Required field missing^HL70357|E||||PID-3 is required\r"
                        "ERR||OBX^2^5^3^1^2|103^Table value not found^HL70357|W\r"
                        "ERR|||0^Message accepted^HL70357|I||||fine\r"
                        "ERR||PID^1|501^^HL70357|E||||local\r"
                        "ERR||OBX^^5|104^Value too long^HL70357|E\r");
    hl7_msg *m = parse_ok(ack);
    assert_int_equal(hl7_seg_occurrences(m, "ERR"), 5);
    assert_string_equal(get(m, "ERR[2]-3.1"), "103");
    assert_string_equal(get(m, "ERR[2]-4"), "W");
    assert_string_equal(get(m, "ERR-8"), "PID-3 is required");
    hl7_msg_free(m);
    free(ack);
}

static void test_err_before_v25(void **state)
{
    (void)state;
    hl7_ack_problem p[2] = {
        {.code = HL7_ACK_ERR_REQUIRED_FIELD, .text = "PID-3 & more ^ missing"},
        {.code = HL7_ACK_ERR_UNSUPPORTED_EVENT},
    };
    hl7_error err;
    assert_int_equal(hl7_path_parse("PID[2]-3.1", &p[0].where, &err), HL7_OK);
    hl7_ack_opts o = {.problems = p, .nproblems = 2};
    const char *versions[] = {"2.4", "2.3.1", "2.3", "2.2", "2.1"};
    for (size_t i = 0; i < 5; i++) {
        char msg[128];
        snprintf(msg, sizeof(msg), "MSH|^~\\&|A|B|C|D|20240101||ADT^A01|X|P|%s\r", versions[i]);
        char *ack = ack_of(msg, &o);
        const char *errs = strstr(ack, "\rERR");
        assert_non_null(errs);
        assert_string_equal(errs + 1, "ERR|PID^2^3^101&PID-3 \\T\\ more \\S\\ missing&HL70357\r"
                                      "ERR|^^^201&Unsupported event code&HL70357\r");
        hl7_msg *m = parse_ok(ack);
        assert_string_equal(get(m, "ERR-1.4.2"), "PID-3 & more ^ missing");
        assert_string_equal(get(m, "ERR[2]-1.4.1"), "201");
        hl7_msg_free(m);
        free(ack);
    }
    /* a short MSH-2 without subcomponent separator: the code alone */
    char *ack = ack_of("MSH|^~\\|A|B|C|D|20240101||ADT^A01|X|P|2.4\r", &o);
    assert_non_null(strstr(ack, "\rERR|PID^2^3^101\rERR|^^^201\r"));
    free(ack);
}

/* --- defaults and options -------------------------------------------------- */

static void test_default_control_id(void **state)
{
    (void)state;
    static const struct {
        const char *id, *want;
    } cases[] = {
        {"MSG00001", "ACKMSG00001"},
        {"", "ACK"},
        {"12345678901234567890", "ACK45678901234567890"},
        {"ab c/d:e_f.g-h", "ACKabcde_f.g-h"},
        {"X^Y\\F\\Z", "ACKXYFZ"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char msg[256], cid[HL7_ACK_CONTROL_ID_SIZE];
        snprintf(msg, sizeof(msg), "MSH|^~\\&|A|B|C|D|20240101||ADT^A01|%s|P|2.5\r", cases[i].id);
        hl7_msg *m = parse_ok(msg);
        hl7_ack_default_control_id(m, cid);
        assert_string_equal(cid, cases[i].want);
        assert_true(strlen(cid) <= 20);
        tbuf out = TBUF_INIT;
        hl7_error err;
        assert_int_equal(hl7_ack_build(m, &(hl7_ack_opts){.timestamp = TS}, &out, &err), HL7_OK);
        hl7_msg *a = parse_ok(out.p);
        assert_string_equal(get(a, "MSH-10"), cases[i].want);
        hl7_msg_free(a);
        tbuf_free(&out);
        hl7_msg_free(m);
    }
}

static void test_timestamps(void **state)
{
    (void)state;
    const char *old = getenv("TZ");
    char *saved = old ? strdup(old) : NULL;
    char ts[HL7_ACK_TIME_SIZE];
    setenv("TZ", "UTC0", 1);
    tzset();
    hl7_ack_format_time(0, ts);
    assert_string_equal(ts, "19700101000000+0000");
    hl7_ack_format_time(1709209496, ts);
    assert_string_equal(ts, "20240229122456+0000");
    setenv("TZ", "EST5", 1);
    tzset();
    hl7_ack_format_time(0, ts);
    assert_string_equal(ts, "19691231190000-0500");

    /* no timestamp given: now, YYYYMMDDHHMMSS+/-ZZZZ */
    hl7_msg *m = parse_ok(ADT25);
    tbuf out = TBUF_INIT;
    hl7_error err;
    time_t before = time(NULL);
    assert_int_equal(hl7_ack_build(m, NULL, &out, &err), HL7_OK);
    check_ack(&out, "AA", "MSG00001");
    hl7_msg *a = parse_ok(out.p);
    const char *got = get(a, "MSH-7");
    assert_int_equal(strlen(got), 19);
    assert_int_equal(got[14], '-');
    char lo[HL7_ACK_TIME_SIZE], hi[HL7_ACK_TIME_SIZE];
    hl7_ack_format_time(before, lo);
    hl7_ack_format_time(time(NULL), hi);
    assert_true(strcmp(got, lo) >= 0 && strcmp(got, hi) <= 0);
    assert_string_equal(get(a, "MSH-10"), "ACKMSG00001");
    hl7_msg_free(a);
    tbuf_free(&out);
    hl7_msg_free(m);

    if (saved)
        setenv("TZ", saved, 1);
    else
        unsetenv("TZ");
    tzset();
    free(saved);
}

static void test_invalid_options(void **state)
{
    (void)state;
    hl7_msg *m = parse_ok(ADT25);
    hl7_error err;
    tbuf out = TBUF_INIT;
    static const char *const bad_ts[] = {"2024-01-01",
                                         "20240",
                                         "202401011",
                                         "",
                                         "20240101120000.12345",
                                         "20240101+01",
                                         "20240101.1",
                                         "20240101120000+0100x",
                                         "２０２４"};
    for (size_t i = 0; i < sizeof(bad_ts) / sizeof(bad_ts[0]); i++) {
        hl7_ack_opts o = {.timestamp = bad_ts[i]};
        assert_int_equal(hl7_ack_opts_check(&o, &err), HL7_ERR_VALUE);
        assert_int_equal(hl7_ack_build(m, &o, &out, &err), HL7_ERR_VALUE);
        assert_non_null(strstr(err.text, "timestamp"));
        assert_int_equal(out.len, 0);
    }
    static const char *const good_ts[] = {"2024",
                                          "202401",
                                          "20240101",
                                          "2024010112",
                                          "202401011230",
                                          "20240101123045.1",
                                          "20240101123045.1234-0500",
                                          "20240101+0100"};
    for (size_t i = 0; i < sizeof(good_ts) / sizeof(good_ts[0]); i++) {
        hl7_ack_opts o = {.timestamp = good_ts[i]};
        assert_int_equal(hl7_ack_opts_check(&o, &err), HL7_OK);
    }
    assert_int_equal(hl7_ack_build(m, &(hl7_ack_opts){.control_id = ""}, &out, &err),
                     HL7_ERR_VALUE);
    assert_non_null(strstr(err.text, "MSH-10"));
    assert_int_equal(hl7_ack_build(m, &(hl7_ack_opts){.code = (hl7_ack_code)7}, &out, &err),
                     HL7_ERR_VALUE);
    assert_int_equal(out.len, 0);
    hl7_msg_free(m);
    /* nothing to acknowledge */
    hl7_msg *empty = hl7_msg_new(NULL);
    assert_int_equal(hl7_ack_build(empty, NULL, &out, &err), HL7_ERR_NO_MSH);
    assert_int_equal(out.len, 0);
    assert_int_equal(hl7_ack_mode_of(empty), HL7_ACK_MODE_ORIGINAL);
    assert_false(hl7_ack_is_ack(empty));
    hl7_msg_free(empty);
    tbuf_free(&out);
}

static void test_is_ack(void **state)
{
    (void)state;
    hl7_msg *m = parse_ok(ADT25);
    assert_false(hl7_ack_is_ack(m));
    hl7_msg_free(m);
    m = parse_ok("MSH|^~\\&|A|B|C|D|20240101||ACK^A01^ACK|X|P|2.5\rMSA|AA|Y\r");
    assert_true(hl7_ack_is_ack(m));
    hl7_msg_free(m);
}

/* A message built in memory (hl7_msg_init + hl7_set) can be acknowledged. */
static void test_built_message(void **state)
{
    (void)state;
    hl7_delims d = {'|', '^', '~', '\\', '&', 0};
    hl7_msg *m = hl7_msg_new(NULL);
    hl7_msg_init(m, &d);
    hl7_error err;
    static const char *const sets[][2] = {{"MSH-3", "LAB"},   {"MSH-5", "HIS"}, {"MSH-9", "ORU"},
                                          {"MSH-9.2", "R01"}, {"MSH-10", "Q1"}, {"MSH-11", "P"},
                                          {"MSH-12", "2.5.1"}};
    for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++) {
        hl7_path p;
        assert_int_equal(hl7_path_parse(sets[i][0], &p, &err), HL7_OK);
        assert_int_equal(hl7_set(m, &p, sets[i][1], strlen(sets[i][1]), &err), HL7_OK);
    }
    tbuf out = TBUF_INIT;
    assert_int_equal(
        hl7_ack_build(m, &(hl7_ack_opts){.timestamp = TS, .control_id = "C"}, &out, &err), HL7_OK);
    assert_string_equal(out.p, "MSH|^~\\&|HIS||LAB||" TS "||ACK^R01^ACK|C|P|2.5.1\rMSA|AA|Q1\r");
    tbuf_free(&out);
    hl7_msg_free(m);
}

/* --- parse errors and the NAK ---------------------------------------------- */

typedef struct err_case {
    const char *name;
    const char *raw;
    size_t len; /* 0: strlen(raw) */
    hl7_limits lim;
    hl7_status status;
    hl7_ack_errcode code;
    const char *where; /* "SEG^occ^field" as the ERL would read, "" for none */
} err_case;

static void where_text(const hl7_path *p, char *buf, size_t size)
{
    if (!p->seg[0])
        snprintf(buf, size, "%s", "");
    else
        snprintf(buf, size, "%s^%u^%u", p->seg, p->seg_occ, p->field);
}

static void test_problem_from_error(void **state)
{
    (void)state;
    static const char nul_obx[] =
        "MSH|^~\\&|A|B|C|D|1||ORU^R01|X|P|2.5\rOBX|1|ST\rOBX|2|ST|C||a\0b\r";
    static const char nul_msh[] = "MSH|^~\\&|A\0|B|C|D|1||ADT^A01|X|P|2.5\r";
    err_case cases[] = {
        {"empty", "\r\n  ", 0, {0}, HL7_ERR_EMPTY, 100, ""},
        {"no msh", "PID|1||x\r", 0, {0}, HL7_ERR_NO_MSH, 100, "PID^1^0"},
        {"no msh text", "hello world", 0, {0}, HL7_ERR_NO_MSH, 100, ""},
        {"batch header", "FHS|^~\\&\r", 0, {0}, HL7_ERR_NO_MSH, 100, "FHS^1^0"},
        {"delimiters", "MSH|^~\\&^|A|B\r", 0, {0}, HL7_ERR_DELIMITERS, 102, "MSH^1^2"},
        {"field sep", "MSHA^~\\&|A\r", 0, {0}, HL7_ERR_DELIMITERS, 102, "MSH^1^1"},
        {"truncated early", "MSH|^~\\&|A|B\r", 0, {0}, HL7_ERR_TRUNCATED, 101, "MSH^1^9"},
        {"truncated late",
         "MSH|^~\\&|A|B|C|D|1||ADT^A01|X\rPID|1\r",
         0,
         {0},
         HL7_ERR_TRUNCATED,
         101,
         "MSH^1^11"},
        {"cut short", "MSH|", 0, {0}, HL7_ERR_TRUNCATED, 101, "MSH^1^9"},
        {"segment id",
         "MSH|^~\\&|A|B|C|D|1||ADT^A01|X|P|2.5\rOBX|1\rpid|1\rpid|2\r",
         0,
         {0},
         HL7_ERR_SEGMENT_ID,
         100,
         "pid^1^0"},
        {"long id",
         "MSH|^~\\&|A|B|C|D|1||ADT^A01|X|P|2.5\rPIDX|1\r",
         0,
         {0},
         HL7_ERR_SEGMENT_ID,
         100,
         ""},
        {"nul", nul_obx, sizeof(nul_obx) - 1, {0}, HL7_ERR_NUL, 102, "OBX^2^5"},
        {"nul in msh", nul_msh, sizeof(nul_msh) - 1, {0}, HL7_ERR_NUL, 102, "MSH^1^3"},
        {"too long",
         "MSH|^~\\&|A|B|C|D|1||ADT^A01|X|P|2.5\rPID|1\rPID|1||123456789012345\r",
         0,
         {1 << 20, 10, 100},
         HL7_ERR_FIELD_TOO_LONG,
         104,
         "PID^2^3"},
        {"too many",
         "MSH|^~\\&|A|B|C|D|1||ADT^A01|X|P|2.5\rNTE|1\rNTE|2\r",
         0,
         {1 << 20, 1000, 2},
         HL7_ERR_TOO_MANY_SEGMENTS,
         207,
         "NTE^2^0"},
        {"too large",
         "MSH|^~\\&|A|B|C|D|1||ADT^A01|X|P|2.5\rNTE|1|0123456789012345678901234567890123456789\r"
         "NTE|2|0123456789012345678901234567890123456789\r",
         0,
         {40, 40, 100},
         HL7_ERR_TOO_LARGE,
         207,
         ""},
        {"two messages",
         "MSH|^~\\&|A|B|C|D|1||ADT^A01|X|P|2.5\r\nMSH|^~\\&|A|B|C|D|1||ADT^A01|Y|P|2.5\r",
         0,
         {0},
         HL7_ERR_BATCH,
         100,
         "MSH^2^0"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        err_case *c = &cases[i];
        size_t len = c->len ? c->len : strlen(c->raw);
        hl7_msg *m = hl7_msg_new(c->lim.max_message ? &c->lim : NULL);
        hl7_error err;
        hl7_status st = hl7_parse(m, c->raw, len, &err);
        hl7_msg_free(m);
        if (st != c->status)
            fail_msg("%s: status %d, want %d (%s)", c->name, (int)st, (int)c->status, err.text);
        hl7_ack_problem p;
        hl7_ack_problem_from_error(&err, c->raw, len, &p);
        char where[64];
        where_text(&p.where, where, sizeof(where));
        if ((int)p.code != (int)c->code || strcmp(where, c->where))
            fail_msg("%s: got %u at '%s', want %u at '%s'", c->name, (unsigned)p.code, where,
                     (unsigned)c->code, c->where);
        assert_int_equal(p.severity, HL7_ACK_SEV_ERROR);
        assert_ptr_equal(p.text, err.text);
        /* the NAK for it is a valid ACK naming the same problem */
        tbuf nak = TBUF_INIT;
        hl7_ack_build_nak(c->raw, len, &err, NULL, &nak);
        check_ack(&nak, "AR", NULL);
        char code[16];
        snprintf(code, sizeof(code), "|%u^", (unsigned)c->code);
        if (!strstr(nak.p, code)) fail_msg("%s: %s not in NAK %s", c->name, code, nak.p);
        tbuf_free(&nak);
    }
    /* without the input the occurrence of a non-MSH segment is unknown */
    hl7_msg *m = hl7_msg_new(NULL);
    hl7_error err;
    assert_int_equal(hl7_parse(m, nul_obx, sizeof(nul_obx) - 1, &err), HL7_ERR_NUL);
    hl7_msg_free(m);
    hl7_ack_problem p;
    hl7_ack_problem_from_error(&err, NULL, 0, &p);
    assert_string_equal(p.where.seg, "OBX");
    assert_int_equal(p.where.seg_occ, 0);
    assert_int_equal(p.where.field, 5);
    /* success maps to 0, information */
    hl7_error ok = {.code = HL7_OK};
    hl7_ack_problem_from_error(&ok, NULL, 0, &p);
    assert_int_equal(p.code, HL7_ACK_ERR_ACCEPTED);
    assert_int_equal(p.severity, HL7_ACK_SEV_INFO);
}

static void test_nak_nothing_salvageable(void **state)
{
    (void)state;
    hl7_error err;
    char *nak = nak_of("hello world", 11, NULL, &err);
    assert_string_equal(nak, "MSH|^~\\&|||||" TS "||ACK|C1|P|2.5.1\r"
                             "MSA|AR||a message must start with an MSH segment; found 'hel'\r"
                             "ERR|||100^Segment sequence error^HL70357|E||||"
                             "a message must start with an MSH segment; found 'hel'\r");
    free(nak);
    /* no input at all, and binary junk with framing bytes */
    nak = nak_of("", 0, NULL, &err);
    assert_non_null(strstr(nak, "MSA|AR||the input is empty"));
    free(nak);
    nak = nak_of("\x0b\x1c\x0d\x01\x02|^", 7, NULL, &err);
    assert_non_null(strstr(nak, "||ACK|C1|P|2.5.1\rMSA|AR||"));
    free(nak);
    /* options: text, code, problems; a bad timestamp falls back to now */
    hl7_ack_problem extra = {.code = HL7_ACK_ERR_INTERNAL, .text = "extra"};
    hl7_ack_opts o = {.code = HL7_ACK_AE, .text = "garbage", .problems = &extra, .nproblems = 1};
    nak = nak_of("junk", 4, &o, &err);
    assert_non_null(strstr(nak, "\rMSA|AE||garbage\rERR|||100^"));
    assert_non_null(strstr(nak, "\rERR|||207^Application internal error^HL70357|E||||extra\r"));
    free(nak);
    tbuf out = TBUF_INIT;
    hl7_ack_build_nak("junk", 4, &err,
                      &(hl7_ack_opts){.timestamp = "yesterday", .control_id = "", .code = 99},
                      &out);
    check_ack(&out, "AR", "");
    assert_null(strstr(out.p, "yesterday"));
    assert_non_null(strstr(out.p, "||ACK|ACK|P|2.5.1\r"));
    tbuf_reset(&out);
    hl7_ack_build_nak("junk", 4, &err, NULL, &out);
    check_ack(&out, "AR", "");
    tbuf_free(&out);
}

static void test_nak_salvage(void **state)
{
    (void)state;
    hl7_error err;
    /* MSH is fine, a later segment is not: everything is salvaged */
    static const char nul_msg[] = "\xef\xbb\xbf\r\nMSH|^~\\&|SND|SF|RCV|RF|20240101||ORU^R01^ORU_"
                                  "R01|M42|T|2.4\rOBX|1|ST|C||a\0b\r";
    char *nak = nak_of(nul_msg, sizeof(nul_msg) - 1, NULL, &err);
    assert_string_equal(nak, "MSH|^~\\&|RCV|RF|SND|SF|" TS "||ACK^R01^ACK|C1|T|2.4\r"
                             "MSA|AR|M42|NUL byte (0x00) in OBX-5: HL7 text may not contain NUL; "
                             "the input is binary or corrupt\r"
                             "ERR|OBX^1^5^102&NUL byte (0x00) in OBX-5: HL7 text may not contain "
                             "NUL; the input is binary or corrupt&HL70357\r");
    free(nak);
    /* enhanced mode: CR; default control id from the salvaged MSH-10 */
    static const char enh[] =
        "MSH|^~\\&|SND|SF|RCV|RF|20240101||ADT^A01|M43|P|2.5.1||||AL|NE\rPID|1|\0\r";
    tbuf out = TBUF_INIT;
    hl7_msg *m = hl7_msg_new(NULL);
    assert_int_equal(hl7_parse(m, enh, sizeof(enh) - 1, &err), HL7_ERR_NUL);
    hl7_msg_free(m);
    hl7_ack_build_nak(enh, sizeof(enh) - 1, &err, &(hl7_ack_opts){.timestamp = TS}, &out);
    check_ack(&out, "CR", "M43");
    assert_non_null(strstr(out.p, "||ACK^A01^ACK|ACKM43|P|2.5.1\r"));
    assert_non_null(strstr(out.p, "\rERR||PID^1^2^1|102^Data type error^HL70357|E||||NUL byte"));
    tbuf_free(&out);
    /* a truncated MSH still gives what it has */
    nak = nak_of("MSH|^~\\&|SND|SF|RCV|RF|20240101||ADT^A08|M44", 44, NULL, &err);
    assert_string_equal(nak, "MSH|^~\\&|RCV|RF|SND|SF|" TS "||ACK^A08^ACK|C1|P|2.5.1\r"
                             "MSA|AR|M44|MSH ends after MSH-10: MSH-9 (message type), MSH-10 "
                             "(control id), MSH-11 (processing id) and MSH-12 (version) are "
                             "required; is the message truncated?\r"
                             "ERR||MSH^1^11^1|101^Required field missing^HL70357|E||||MSH ends "
                             "after MSH-10: MSH-9 (message type), MSH-10 (control id), MSH-11 "
                             "(processing id) and MSH-12 (version) are required; is the message "
                             "truncated?\r");
    free(nak);
    /* custom delimiters are kept */
    static const char custom[] = "MSH#!@%*#SND#SF#RCV#RF#20240101##ADT!A01#M45#P#2.3\rpid#1\r";
    nak = nak_of(custom, sizeof(custom) - 1, NULL, &err);
    assert_non_null(strstr(nak, "MSH#!@%*#RCV#RF#SND#SF#" TS "##ACK!A01#C1#P#2.3\rMSA#AR#M45#"));
    assert_non_null(strstr(nak, "\rERR#pid!1!!100*segment 2 has id 'pid'"));
    assert_non_null(strstr(nak, "separator '%F%'*HL70357\r"));
    free(nak);
}

static void test_nak_untrusted_values(void **state)
{
    (void)state;
    hl7_error err;
    char big[600];
    memset(big, 'X', sizeof(big));
    /* MSH-3 too long, MSH-10 with a framing byte, MSH-11 too long, MSH-12 not
     * a version, a trigger that is not one, MSH-18 too long: none is echoed */
    char raw[1024];
    int n = snprintf(raw, sizeof(raw),
                     "MSH|^~\\&|%.300s|SF|RCV|RF|20240101||ADT^A<1>|M\x1c"
                     "1|PPPPPPPPPPPPPPPPPP|2.5<x>|||||||%.100s",
                     big, big);
    memcpy(raw + n, "\rPID|\0\r", 7);
    char *nak = nak_of(raw, (size_t)n + 7, NULL, &err);
    assert_string_equal(nak,
                        "MSH|^~\\&|RCV|RF||SF|" TS "||ACK|C1|P|2.5.1\r"
                        "MSA|AR||NUL byte (0x00) in PID-1: HL7 text may not contain NUL; the "
                        "input is binary or corrupt\r"
                        "ERR||PID^1^1^1|102^Data type error^HL70357|E||||NUL byte (0x00) in "
                        "PID-1: HL7 text may not contain NUL; the input is binary or corrupt\r");
    free(nak);
    /* unusable delimiters: nothing is read past them */
    nak = nak_of("MSH|^^\\&|SND|SF|RCV|RF|1||ADT^A01|M9|P|2.3\r", 41, NULL, &err);
    assert_non_null(strstr(nak, "MSH|^~\\&|||||" TS "||ACK|C1|P|2.5.1\rMSA|AR||"));
    free(nak);
}

/* Every prefix and many one-byte corruptions of a message, and random junk:
 * whatever the input, the answer is a valid ACK. */
static void test_nak_sweep(void **state)
{
    (void)state;
    static const char base[] = "MSH|^~\\&|SND|SF|RCV|RF|20240101||ADT^A01^ADT_A01|M1|P|2.4||||AL|ER"
                               "\rPID|1||123^^^H~456||DOE^J\rOBX|1|ST|X||v\r";
    static const char bytes[] = {'\0', '\r', '\n',   '|',    '^',    '~',    '\\',
                                 '&',  'x',  '\x0b', '\x1c', '\x7f', '\xff', ' '};
    char buf[sizeof(base) + 64];
    memset(buf, 'x', sizeof(buf));
    hl7_msg *m = hl7_msg_new(NULL);
    tbuf out = TBUF_INIT;
    size_t naks = 0, acks = 0;
    const size_t blen = sizeof(base) - 1;
    for (size_t pos = 0; pos <= blen; pos++) {
        for (size_t b = 0; b <= sizeof(bytes); b++) {
            size_t len;
            memcpy(buf, base, blen);
            if (b == sizeof(bytes)) {
                len = pos; /* prefix */
            } else {
                if (pos == blen) continue;
                buf[pos] = bytes[b];
                len = blen;
            }
            hl7_error err;
            tbuf_reset(&out);
            if (hl7_parse(m, buf, len, &err) == HL7_OK) {
                hl7_ack_opts o = {.timestamp = TS};
                if (hl7_ack_build(m, &o, &out, &err) != HL7_OK) fail_msg("build: %s", err.text);
                acks++;
            } else {
                hl7_ack_build_nak(buf, len, &err, NULL, &out);
                naks++;
            }
            check_ack(&out, NULL, NULL);
        }
    }
    srand(7);
    for (int i = 0; i < 3000; i++) {
        size_t len = (size_t)rand() % sizeof(buf);
        memcpy(buf, base, len < blen ? len : blen);
        for (size_t k = 0; k < len; k++)
            if (rand() % 8 == 0)
                buf[k] = rand() % 2 ? bytes[(size_t)rand() % sizeof(bytes)] : (char)rand();
        hl7_error err;
        tbuf_reset(&out);
        if (hl7_parse(m, buf, len, &err) == HL7_OK) {
            if (hl7_ack_build(m, &(hl7_ack_opts){.timestamp = TS}, &out, &err) != HL7_OK)
                fail_msg("build: %s", err.text);
        } else {
            hl7_ack_build_nak(buf, len, &err, NULL, &out);
        }
        check_ack(&out, NULL, NULL);
    }
    assert_true(naks > 100 && acks > 100);
    tbuf_free(&out);
    hl7_msg_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_modes_and_conditions),
        cmocka_unit_test(test_codes),
        cmocka_unit_test(test_original_mode_ack),
        cmocka_unit_test(test_enhanced_mode_ack),
        cmocka_unit_test(test_swap_and_echo),
        cmocka_unit_test(test_msh9_by_version),
        cmocka_unit_test(test_custom_delimiters),
        cmocka_unit_test(test_text_escaping),
        cmocka_unit_test(test_charsets),
        cmocka_unit_test(test_err_v25),
        cmocka_unit_test(test_err_before_v25),
        cmocka_unit_test(test_default_control_id),
        cmocka_unit_test(test_timestamps),
        cmocka_unit_test(test_invalid_options),
        cmocka_unit_test(test_is_ack),
        cmocka_unit_test(test_built_message),
        cmocka_unit_test(test_problem_from_error),
        cmocka_unit_test(test_nak_nothing_salvageable),
        cmocka_unit_test(test_nak_salvage),
        cmocka_unit_test(test_nak_untrusted_values),
        cmocka_unit_test(test_nak_sweep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
