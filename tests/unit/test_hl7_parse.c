/*
 * Unit tests for the HL7 v2 parser, index and access (hl7_msg.c, hl7_path.c,
 * hl7_escape.c): delimiters, terminators, presence, paths, escapes, charsets
 * and every kind of bad input the issue names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl7/hl7.h"

#define ADT                                                                                         \
    "MSH|^~\\&|SENDAPP|SENDFAC|RECVAPP|RECVFAC|20260101120000+0100||ADT^A01^ADT_A01|MSG00001|P|2.5|" \
    "||AL|NE\r"                                                                                      \
    "EVN|A01|20260101120000\r"                                                                       \
    "PID|1||12345^^^HOSP^MR~67890^^^SSA^SS||DOE^JOHN^Q||19800101|M|||1 MAIN ST^^TOWN^ST^12345||"   \
    "\"\"|\r"                                                                                        \
    "OBX|1|NM|GLU^Glucose^LN||5.5|mmol/L^^UCUM|3.9-6.1|N|||F\r"                                      \
    "OBX|2|ST|NOTE||a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f||||||F\r"                                       \
    "OBX|3|FT|TXT||line1\\.br\\line2\\X41\\&sub2||||||F\r"

static hl7_msg *parse_ok(const char *text)
{
    hl7_msg *m = hl7_msg_new(NULL);
    hl7_error err;
    hl7_status st = hl7_parse(m, text, strlen(text), &err);
    if (st != HL7_OK) fprintf(stderr, "unexpected: %s\n", err.text);
    assert_int_equal(st, HL7_OK);
    return m;
}

static char *get(const hl7_msg *m, const char *path, hl7_presence *pr)
{
    static char buf[4096];
    hl7_path p;
    hl7_error err;
    assert_int_equal(hl7_path_parse(path, &p, &err), HL7_OK);
    tbuf out = TBUF_INIT;
    hl7_presence r = hl7_get(m, &p, &out);
    if (pr) *pr = r;
    snprintf(buf, sizeof(buf), "%s", out.p ? out.p : "");
    tbuf_free(&out);
    return buf;
}

static void test_basic_access(void **state)
{
    (void)state;
    hl7_msg *m = parse_ok(ADT);
    assert_int_equal(hl7_seg_count(m), 6);
    assert_string_equal(get(m, "MSH-1", NULL), "|");
    assert_string_equal(get(m, "MSH-2", NULL), "^~\\&");
    assert_string_equal(get(m, "MSH-3", NULL), "SENDAPP");
    assert_string_equal(get(m, "MSH-9.1", NULL), "ADT");
    assert_string_equal(get(m, "MSH-9.2", NULL), "A01");
    assert_string_equal(get(m, "MSH-10", NULL), "MSG00001");
    assert_string_equal(get(m, "MSH-12", NULL), "2.5");
    assert_string_equal(get(m, "PID-3.1", NULL), "12345");
    assert_string_equal(get(m, "PID-3[2].1", NULL), "67890");
    assert_string_equal(get(m, "PID-3[2].5", NULL), "SS");
    assert_string_equal(get(m, "PID-5", NULL), "DOE^JOHN^Q");
    assert_string_equal(get(m, "PID-5.2", NULL), "JOHN");
    assert_string_equal(get(m, "PID[1]-8", NULL), "M");
    assert_string_equal(get(m, "OBX[1]-5", NULL), "5.5");
    assert_string_equal(get(m, "OBX-3.2", NULL), "Glucose");
    assert_string_equal(get(m, "OBX[3]-1", NULL), "3");
    hl7_msg_free(m);
}

static void test_presence(void **state)
{
    (void)state;
    hl7_msg *m = parse_ok(ADT);
    hl7_presence pr;
    get(m, "PID-2", &pr);
    assert_int_equal(pr, HL7_EMPTY);
    get(m, "PID-13", &pr);
    assert_int_equal(pr, HL7_NULL_VALUE);
    get(m, "PID-14", &pr);
    assert_int_equal(pr, HL7_EMPTY); /* trailing separator: present, empty */
    get(m, "PID-15", &pr);
    assert_int_equal(pr, HL7_ABSENT);
    get(m, "PID-3[3]", &pr);
    assert_int_equal(pr, HL7_ABSENT);
    get(m, "PID-5.9", &pr);
    assert_int_equal(pr, HL7_ABSENT);
    get(m, "OBX[4]-1", &pr);
    assert_int_equal(pr, HL7_ABSENT);
    get(m, "ZZZ-1", &pr);
    assert_int_equal(pr, HL7_ABSENT);
    get(m, "PID-5.1", &pr);
    assert_int_equal(pr, HL7_VALUE);
    hl7_msg_free(m);
}

static void test_escapes(void **state)
{
    (void)state;
    hl7_msg *m = parse_ok(ADT);
    assert_string_equal(get(m, "OBX[2]-5", NULL), "a|b^c&d~e\\f");
    assert_string_equal(get(m, "OBX[3]-5.1.1", NULL), "line1\nline2A");
    assert_string_equal(get(m, "OBX[3]-5.1.2", NULL), "sub2");
    hl7_msg_free(m);

    hl7_delims d = {'|', '^', '~', '\\', '&', '#'};
    tbuf out = TBUF_INIT;
    const char *raw = "x\\P\\y\\.sp 2\\z\\H\\bold\\N\\\\.sk 3\\w\\Q\\v\\";
    hl7_unescape(&d, HL7_CS_DEFAULT, raw, strlen(raw), &out);
    assert_string_equal(out.p, "x#y\n\nzbold   w\\Q\\v\\");
    tbuf_reset(&out);
    /* unterminated escape is kept literally */
    hl7_unescape(&d, HL7_CS_DEFAULT, "ab\\F", 4, &out);
    assert_string_equal(out.p, "ab\\F");
    tbuf_reset(&out);
    /* escape round trip */
    const char *text = "a|b^c~d\\e&f#g\rh\ni";
    hl7_escape(&d, text, strlen(text), &out);
    assert_string_equal(out.p, "a\\F\\b\\S\\c\\R\\d\\E\\e\\T\\f\\P\\g\\X0D\\h\\.br\\i");
    tbuf dec = TBUF_INIT;
    hl7_unescape(&d, HL7_CS_DEFAULT, out.p, out.len, &dec);
    assert_string_equal(dec.p, text);
    tbuf_free(&dec);
    tbuf_free(&out);
}

static void test_charsets(void **state)
{
    (void)state;
    /* 8859/1 declared: E9 becomes U+00E9 */
    const char *latin = "MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5|||||| 8859/1\r"
                        "PID|1||1||Ren\xe9^J\\XE9\\\r";
    hl7_msg *m = parse_ok(latin);
    assert_int_equal(hl7_charset_of(m), HL7_CS_LATIN1);
    assert_string_equal(get(m, "PID-5.1", NULL), "Ren\xc3\xa9");
    assert_string_equal(get(m, "PID-5.2", NULL), "J\xc3\xa9");
    hl7_msg_free(m);
    /* UTF-8 declared: passed through; invalid bytes become U+FFFD */
    const char *utf = "MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5||||||UNICODE UTF-8\r"
                      "PID|1||1||M\xc3\xbcller^\xff\r";
    m = parse_ok(utf);
    assert_int_equal(hl7_charset_of(m), HL7_CS_UTF8);
    assert_string_equal(get(m, "PID-5.1", NULL), "M\xc3\xbcller");
    assert_string_equal(get(m, "PID-5.2", NULL), "\xef\xbf\xbd");
    hl7_msg_free(m);
    /* undeclared: valid UTF-8 passes, stray high bytes read as 8859/1 */
    const char *none = "MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5\r"
                       "PID|1||1||M\xc3\xbcller^Ren\xe9\r";
    m = parse_ok(none);
    assert_string_equal(get(m, "PID-5.1", NULL), "M\xc3\xbcller");
    assert_string_equal(get(m, "PID-5.2", NULL), "Ren\xc3\xa9");
    hl7_msg_free(m);
    /* 8859/15 euro sign */
    const char *l9 = "MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5||||||8859/15\r"
                     "NTE|1||\xa4 5\r";
    m = parse_ok(l9);
    assert_string_equal(get(m, "NTE-3", NULL), "\xe2\x82\xac 5");
    hl7_msg_free(m);
}

static void test_custom_delimiters(void **state)
{
    (void)state;
    const char *t = "MSH#!@%*#SENDER#FAC#RECV#FAC#20260301120000##ADT!A01#MSG007#P#2.5\n"
                    "PID#1##12345!!!MRN@999!!!SSN##DOE!JOHN*X!A##19800101#M\n";
    hl7_msg *m = parse_ok(t);
    const hl7_delims *d = hl7_delims_of(m);
    assert_int_equal(d->field, '#');
    assert_int_equal(d->comp, '!');
    assert_int_equal(d->rep, '@');
    assert_int_equal(d->esc, '%');
    assert_int_equal(d->sub, '*');
    assert_int_equal(d->trunc, 0);
    assert_string_equal(get(m, "MSH-1", NULL), "#");
    assert_string_equal(get(m, "MSH-2", NULL), "!@%*");
    assert_string_equal(get(m, "MSH-9.2", NULL), "A01");
    assert_string_equal(get(m, "PID-3[2].4", NULL), "SSN");
    assert_string_equal(get(m, "PID-5.2.2", NULL), "X");
    hl7_msg_free(m);
    /* five encoding characters (v2.7 truncation) */
    m = parse_ok("MSH|^~\\&#|A|B|C|D|20260101||ADT^A01|1|P|2.7\rNTE|1||cut\\P\\\r");
    assert_int_equal(hl7_delims_of(m)->trunc, '#');
    assert_string_equal(get(m, "NTE-3", NULL), "cut#");
    assert_string_equal(get(m, "MSH-2", NULL), "^~\\&#");
    hl7_msg_free(m);
}

static void test_terminators_roundtrip(void **state)
{
    (void)state;
    const char *cases[] = {
        "MSH|^~\\&|A|B|C|D|1||ADT^A01|1|P|2.5\rPID|1\r",
        "MSH|^~\\&|A|B|C|D|1||ADT^A01|1|P|2.5\r\nPID|1\r\n",
        "MSH|^~\\&|A|B|C|D|1||ADT^A01|1|P|2.5\nPID|1\n",
        "MSH|^~\\&|A|B|C|D|1||ADT^A01|1|P|2.5\rPID|1",
        "MSH|^~\\&|A|B|C|D|1||ADT^A01|1|P|2.5\r\r\nPID|1||||\r\n\r\n",
        "MSH|^~\\&|A|B|C|D|1||ADT^A01|1|P|2.5\rPID\rZZ1|a\r",
        "MSH|^~\\&|A|B|C|D|1||ADT^A01|1|P|2.5\rPID",
        "MSH|^~\\&|A|B|C|D|1||ADT^A01|1|P|2.5\rPID|1\r   \rPV1|1\r",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        hl7_msg *m = parse_ok(cases[i]);
        tbuf out = TBUF_INIT;
        hl7_serialize(m, &out);
        assert_int_equal(out.len, strlen(cases[i]));
        assert_memory_equal(out.p, cases[i], out.len);
        const hl7_seg *s = hl7_seg_at(m, 1);
        assert_string_equal(s->id, "PID");
        tbuf_free(&out);
        hl7_msg_free(m);
    }
    /* segments counted right, blank lines skipped */
    hl7_msg *m = parse_ok(cases[4]);
    assert_int_equal(hl7_seg_count(m), 2);
    hl7_msg_free(m);
    m = parse_ok(cases[7]);
    assert_int_equal(hl7_seg_count(m), 3);
    hl7_msg_free(m);
    m = parse_ok(cases[6]);
    assert_int_equal(hl7_seg_count(m), 2);
    assert_int_equal(hl7_seg_at(m, 1)->nfields, 0);
    hl7_msg_free(m);
    /* hl7_segs(): the same segments as hl7_seg_at(), as one array */
    m = parse_ok(cases[7]);
    const hl7_seg *all = hl7_segs(m);
    assert_non_null(all);
    for (uint32_t i = 0; i < hl7_seg_count(m); i++) assert_ptr_equal(&all[i], hl7_seg_at(m, i));
    assert_string_equal(all[1].id, "PID");
    hl7_msg_free(m);
    m = hl7_msg_new(NULL);
    assert_null(hl7_segs(m));
    hl7_msg_free(m);
}

static hl7_status parse_err(const char *t, size_t len, hl7_error *err)
{
    hl7_msg *m = hl7_msg_new(NULL);
    hl7_status st = hl7_parse(m, t, len, err);
    assert_int_equal(hl7_seg_count(m), st == HL7_OK ? hl7_seg_count(m) : 0);
    hl7_msg_free(m);
    return st;
}

static void test_bad_input(void **state)
{
    (void)state;
    hl7_error e;
    assert_int_equal(parse_err("", 0, &e), HL7_ERR_EMPTY);
    assert_int_equal(parse_err("\r\n  \n", 5, &e), HL7_ERR_EMPTY);
    assert_int_equal(parse_err("PID|1||x\r", 9, &e), HL7_ERR_NO_MSH);
    assert_int_equal(e.offset, 0);
    assert_int_equal(parse_err("MSHA^~\\&|x", 10, &e), HL7_ERR_DELIMITERS);
    assert_int_equal(parse_err("MSH|^^\\&|x", 10, &e), HL7_ERR_DELIMITERS);
    assert_int_equal(e.offset, 5);
    assert_int_equal(parse_err("MSH||x|", 7, &e), HL7_ERR_DELIMITERS);
    assert_int_equal(parse_err("MSH|^~\\&abc|", 12, &e), HL7_ERR_DELIMITERS);
    assert_int_equal(parse_err("MSH|^~\\&|A|B|C", 14, &e), HL7_ERR_TRUNCATED);
    assert_true(strstr(e.text, "MSH-9") != NULL);
    assert_int_equal(parse_err("MSH|^~", 6, &e), HL7_ERR_TRUNCATED);
    assert_int_equal(parse_err("MSH", 3, &e), HL7_ERR_TRUNCATED);

    const char nul[] = "MSH|^~\\&|A|B|C|D|1||ADT^A01|1|P|2.5\rPID|1||ab\0cd\r";
    assert_int_equal(parse_err(nul, sizeof(nul) - 1, &e), HL7_ERR_NUL);
    assert_int_equal(e.offset, 45);
    assert_int_equal(e.segment, 2);
    assert_string_equal(e.seg_id, "PID");
    assert_int_equal(e.field, 3);

    const char *badseg = "MSH|^~\\&|A|B|C|D|1||ADT^A01|1|P|2.5\rPIDX|1\r";
    assert_int_equal(parse_err(badseg, strlen(badseg), &e), HL7_ERR_SEGMENT_ID);
    assert_int_equal(e.offset, 36);
    assert_true(strstr(e.text, "PIDX") != NULL);
    const char *lower = "MSH|^~\\&|A|B|C|D|1||ADT^A01|1|P|2.5\rpid|1\r";
    assert_int_equal(parse_err(lower, strlen(lower), &e), HL7_ERR_SEGMENT_ID);
    const char *two = "MSH|^~\\&|A|B|C|D|1||ADT^A01|1|P|2.5\rPV\r";
    assert_int_equal(parse_err(two, strlen(two), &e), HL7_ERR_SEGMENT_ID);
    const char *second = "MSH|^~\\&|A|B|C|D|1||ADT^A01|1|P|2.5\rMSH|^~\\&|A|B|C|D|1||ADT^A01|2|P|2.5\r";
    assert_int_equal(parse_err(second, strlen(second), &e), HL7_ERR_BATCH);
    assert_int_equal(e.offset, 36);

    /* a following message with other delimiters still ends this one */
    const char *other = "MSH|^~\\&|A|B|C|D|1||ADT^A01|1|P|2.5\rPID|1\rMSH#^~\\&#A#B\r";
    hl7_msg *pm = hl7_msg_new(NULL);
    size_t used = 0;
    assert_int_equal(hl7_parse_prefix(pm, other, strlen(other), &used, &e), HL7_OK);
    assert_int_equal(used, 42);
    assert_int_equal(hl7_seg_count(pm), 2);
    assert_int_equal(hl7_parse_prefix(pm, "MSH|^~\\&|A|B|C|D|1||ADT^A01|1|P|2.5\rBTS#1", 42, &used, &e), HL7_OK);
    assert_int_equal(used, 36);
    hl7_msg_free(pm);

    /* binary junk never crashes and always errors or parses */
    unsigned char junk[4096];
    unsigned seed = 7;
    for (int round = 0; round < 200; round++) {
        for (size_t i = 0; i < sizeof(junk); i++) {
            seed = seed * 1103515245u + 12345u;
            junk[i] = (unsigned char)(seed >> 16);
        }
        if (round % 2) memcpy(junk, "MSH|^~\\&|", 9);
        hl7_status st = parse_err((const char *)junk, sizeof(junk), &e);
        assert_true(st != HL7_OK);
        assert_true(e.offset <= sizeof(junk));
        assert_true(e.text[0] != '\0');
    }
}

static void test_limits(void **state)
{
    (void)state;
    hl7_limits lim;
    hl7_limits_default(&lim);
    lim.max_field = 100;
    hl7_msg *m = hl7_msg_new(&lim);
    tbuf t = TBUF_INIT;
    tbuf_puts(&t, "MSH|^~\\&|A|B|C|D|1||ADT^A01|1|P|2.5\rOBX|1|ED|PDF||");
    for (int i = 0; i < 101; i++) tbuf_putc(&t, 'A');
    tbuf_puts(&t, "|F\r");
    hl7_error e;
    assert_int_equal(hl7_parse(m, t.p, t.len, &e), HL7_ERR_FIELD_TOO_LONG);
    assert_string_equal(e.seg_id, "OBX");
    assert_int_equal(e.field, 5);
    assert_int_equal(e.offset, 50);
    /* the same field at the end of the message, with no terminator */
    t.len -= 3;
    assert_int_equal(hl7_parse(m, t.p, t.len, &e), HL7_ERR_FIELD_TOO_LONG);
    hl7_msg_free(m);

    /* 100k segments: refused by the default limit, clearly */
    tbuf_reset(&t);
    tbuf_puts(&t, "MSH|^~\\&|A|B|C|D|1||ORU^R01|1|P|2.5\r");
    for (int i = 0; i < 100000; i++) tbuf_puts(&t, "OBX|1|NM|X||1\r");
    m = hl7_msg_new(NULL);
    assert_int_equal(hl7_parse(m, t.p, t.len, &e), HL7_ERR_TOO_MANY_SEGMENTS);
    assert_true(strstr(e.text, "65535") != NULL);
    assert_int_equal(e.segment, 65536);
    hl7_msg_free(m);
    /* ... and accepted when the limit allows it */
    lim.max_field = 1000;
    lim.max_segments = 200000;
    m = hl7_msg_new(&lim);
    assert_int_equal(hl7_parse(m, t.p, t.len, &e), HL7_OK);
    assert_int_equal(hl7_seg_count(m), 100001);
    hl7_msg_free(m);
    /* message size limit */
    lim.max_message = 1000;
    m = hl7_msg_new(&lim);
    assert_int_equal(hl7_parse(m, t.p, t.len, &e), HL7_ERR_TOO_LARGE);
    hl7_msg_free(m);
    tbuf_free(&t);
}

static void test_paths(void **state)
{
    (void)state;
    hl7_path p;
    hl7_error e;
    char buf[64];
    assert_int_equal(hl7_path_parse("PID-3[2].1", &p, &e), HL7_OK);
    assert_int_equal(p.field, 3);
    assert_int_equal(p.rep, 2);
    assert_int_equal(p.comp, 1);
    assert_string_equal(hl7_path_format(&p, buf, sizeof(buf)), "PID-3[2].1");
    assert_int_equal(hl7_path_parse("OBX[3]-5.1.2", &p, &e), HL7_OK);
    assert_int_equal(p.seg_occ, 3);
    assert_int_equal(p.sub, 2);
    assert_string_equal(hl7_path_format(&p, buf, sizeof(buf)), "OBX[3]-5.1.2");
    assert_int_equal(hl7_path_parse("PID", &p, &e), HL7_OK);
    assert_int_equal(p.field, 0);
    const char *bad[] = {"", "PI", "pid-5", "PID-", "PID-0", "PID-5.", "PID-5.0", "PID[0]-1",
                         "PID-5[", "PID-5[2", "PID.5", "PID-5.1.2.3", "PID-1000000", "PID-5x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(hl7_path_parse(bad[i], &p, &e), HL7_ERR_PATH);
        assert_true(strstr(e.text, "SEG[n]-F[r].C.S") != NULL);
    }
}

static void test_counts(void **state)
{
    (void)state;
    hl7_msg *m = parse_ok(ADT);
    long pid = hl7_seg_find(m, "PID", 1);
    assert_int_equal(pid, 2);
    assert_int_equal(hl7_rep_count(m, 2, 3), 2);
    assert_int_equal(hl7_comp_count(m, 2, 3, 1), 5);
    assert_int_equal(hl7_comp_count(m, 2, 5, 1), 3);
    assert_int_equal(hl7_sub_count(m, 2, 5, 1, 1), 1);
    assert_int_equal(hl7_rep_count(m, 2, 40), 0);
    assert_int_equal(hl7_seg_occurrences(m, "OBX"), 3);
    assert_int_equal(hl7_seg_at(m, 0)->nfields, 16);
    assert_int_equal(hl7_seg_at(m, 2)->nfields, 14);
    hl7_msg_free(m);
}

static void test_reuse(void **state)
{
    (void)state;
    hl7_msg *m = hl7_msg_new(NULL);
    hl7_error e;
    for (int i = 0; i < 1000; i++) {
        const char *t = i % 3 ? ADT : "MSH|^~\\&|A\r";
        hl7_status st = hl7_parse(m, t, strlen(t), &e);
        assert_int_equal(st, i % 3 ? HL7_OK : HL7_ERR_TRUNCATED);
    }
    hl7_msg_free(m);
}

static void test_bom_and_leading_blank(void **state)
{
    (void)state;
    hl7_msg *m = parse_ok("\xef\xbb\xbf\r\nMSH|^~\\&|A|B|C|D|1||ADT^A01|1|P|2.5\rPID|1\r");
    assert_string_equal(get(m, "MSH-3", NULL), "A");
    tbuf out = TBUF_INIT;
    hl7_serialize(m, &out);
    assert_string_equal(out.p, "MSH|^~\\&|A|B|C|D|1||ADT^A01|1|P|2.5\rPID|1\r");
    tbuf_free(&out);
    hl7_msg_free(m);
}

/* The field cursor reads what hl7_raw() reads, MSH included. */
static void test_field_cursor(void **state)
{
    (void)state;
    hl7_msg *m = parse_ok(ADT);
    hl7_fields f;
    for (uint32_t i = 0; i < hl7_seg_count(m); i++) {
        assert_true(hl7_fields_at(m, i, &f));
        assert_int_equal(f.len, hl7_seg_at(m, i)->len);
        assert_int_equal(f.msh, i == 0);
        for (uint32_t k = 0; k <= hl7_seg_at(m, i)->nfields + 2; k++) {
            hl7_span a = {"x", 1}, b;
            hl7_presence pr = k ? hl7_raw(m, i, k, 0, 0, 0, &b) : HL7_ABSENT;
            assert_int_equal(hl7_fields_get(&f, k, &a), pr != HL7_ABSENT);
            if (pr != HL7_ABSENT) assert_true(a.p == b.p && a.len == b.len);
        }
    }
    assert_false(hl7_fields_at(m, hl7_seg_count(m), &f));
    hl7_msg_free(m);
}

/* The word-at-a-time scans against byte loops, at every offset and length
 * (and with a readable limit right at the end, where no word may be read). */
static void test_scans(void **state)
{
    (void)state;
    char buf[64];
    uint64_t x = 12345;
    for (int it = 0; it < 20000; it++) {
        for (size_t i = 0; i < sizeof buf; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            const char pool[] = "ab^~\\|&\x80\xc3 0";
            buf[i] = pool[x % (sizeof pool - 1)];
        }
        size_t from = x % 24, len = (x >> 8) % 40;
        const char *p = buf + from, *end = p + len;
        const char *limit = (x >> 16) % 2 ? end : buf + sizeof buf;
        const char *want = p;
        while (want < end && *want != '^' && *want != '~')
            want++;
        assert_ptr_equal(hl7_scan2(p, end, '^', '~'), want);
        assert_ptr_equal(hl7_scan2_in(p, end, limit, '^', '~'), want);
        size_t plain = 0;
        while (plain < len && (unsigned char)p[plain] < 0x80 && p[plain] != '\\')
            plain++;
        assert_int_equal(hl7_plain_prefix(p, len, '\\'), plain);
        plain = 0;
        while (plain < len && (unsigned char)p[plain] < 0x80)
            plain++;
        assert_int_equal(hl7_plain_prefix(p, len, '\0'), plain);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic_access),
        cmocka_unit_test(test_presence),
        cmocka_unit_test(test_escapes),
        cmocka_unit_test(test_charsets),
        cmocka_unit_test(test_custom_delimiters),
        cmocka_unit_test(test_terminators_roundtrip),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_counts),
        cmocka_unit_test(test_reuse),
        cmocka_unit_test(test_bom_and_leading_blank),
        cmocka_unit_test(test_field_cursor),
        cmocka_unit_test(test_scans),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
