/*
 * Unit tests for building and editing messages (hl7_edit.c): set at every
 * level with padding, escaping, segment insert/remove, building from scratch,
 * splices of located spans, and that edits never disturb untouched bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
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

/* --- edits against a reference ------------------------------------------------------
 * Edits write the new segment once and shift its offsets instead of
 * re-rendering it piece by piece and re-indexing it. The reference below is
 * that old way, in the test: the segment text with the n-th piece (of the
 * segment, the field, the repetition, the component) replaced, padded with
 * separators. After every edit the message must equal the reference text,
 * and every field read from the edited message must equal the same field
 * of a fresh parse of its serialization (the shifted offsets are right). */

static void ref_replace_nth(tbuf *out, const char *src, size_t len, char ch, uint32_t n,
                            const char *val, size_t vlen)
{
    const char *end = src + len, *p = src;
    for (uint32_t k = 1; k < n; k++) {
        const char *q = p ? memchr(p, ch, (size_t)(end - p)) : NULL;
        if (!q) {
            if (p) tbuf_put(out, p, (size_t)(end - p));
            p = NULL;
            tbuf_putc(out, ch);
        } else {
            tbuf_put(out, p, (size_t)(q - p + 1));
            p = q + 1;
        }
    }
    tbuf_put(out, val, vlen);
    if (p) {
        const char *q = memchr(p, ch, (size_t)(end - p));
        if (q) tbuf_put(out, q, (size_t)(end - q));
    }
}

/* The piece-th (1-based) piece of src split by ch, or "" */
static void ref_nth(const char *src, size_t len, char ch, uint32_t n, const char **p, size_t *plen)
{
    const char *end = src + len, *q = src;
    for (uint32_t k = 1; k < n; k++) {
        q = memchr(q, ch, (size_t)(end - q));
        if (!q) {
            *p = "";
            *plen = 0;
            return;
        }
        q++;
    }
    const char *e = memchr(q, ch, (size_t)(end - q));
    *p = q;
    *plen = (size_t)((e ? e : end) - q);
}

/* Segment text seg with raw stored at p, the old way. */
static void ref_set(const char *seg, size_t slen, const hl7_path *p, const char *raw, size_t rlen,
                    tbuf *out)
{
    bool msh = !memcmp(seg, "MSH", 3);
    uint32_t piece = msh ? p->field - 1 : p->field;
    const char *f, *r, *c;
    size_t flen, rlen2, clen;
    ref_nth(seg, slen, '|', piece + 1, &f, &flen);
    tbuf a = TBUF_INIT, b = TBUF_INIT, field = TBUF_INIT;
    const char *val = raw;
    size_t vlen = rlen;
    uint32_t rep = p->rep ? p->rep : 1;
    if (p->comp) {
        ref_nth(f, flen, '~', rep, &r, &rlen2);
        if (p->sub) {
            ref_nth(r, rlen2, '^', p->comp, &c, &clen);
            ref_replace_nth(&a, c, clen, '&', p->sub, val, vlen);
            val = a.p ? a.p : "";
            vlen = a.len;
        }
        ref_replace_nth(&b, r, rlen2, '^', p->comp, val, vlen);
        val = b.p ? b.p : "";
        vlen = b.len;
    }
    ref_replace_nth(&field, f, flen, '~', rep, val, vlen);
    ref_replace_nth(out, seg, slen, '|', piece + 1, field.p ? field.p : "", field.len);
    tbuf_free(&a);
    tbuf_free(&b);
    tbuf_free(&field);
}

/* Every field, repetition and component of segment 1 of m reads as in a
 * fresh parse of m's serialization. */
static void check_index(const hl7_msg *m)
{
    tbuf out = TBUF_INIT;
    hl7_serialize(m, &out);
    hl7_msg *fresh = parse(out.p);
    assert_int_equal(hl7_seg_count(fresh), hl7_seg_count(m));
    for (uint32_t i = 0; i < hl7_seg_count(m); i++) {
        assert_int_equal(hl7_seg_at(m, i)->nfields, hl7_seg_at(fresh, i)->nfields);
        hl7_fields fa, fb;
        assert_true(hl7_fields_at(m, i, &fa));
        assert_true(hl7_fields_at(fresh, i, &fb));
        assert_int_equal(fa.len, fb.len);
        for (uint32_t f = 1; f <= hl7_seg_at(m, i)->nfields + 1; f++) {
            hl7_span a, b;
            hl7_presence pa = hl7_raw(m, i, f, 0, 0, 0, &a), pb = hl7_raw(fresh, i, f, 0, 0, 0, &b);
            assert_int_equal(pa, pb);
            assert_int_equal(hl7_fields_get(&fa, f, &a), pa != HL7_ABSENT);
            if (pa == HL7_ABSENT) continue;
            assert_int_equal(a.len, b.len);
            assert_memory_equal(a.p, b.p, a.len);
            for (uint32_t r = 1; r <= 3; r++)
                for (uint32_t c = 1; c <= 3; c++) {
                    pa = hl7_raw(m, i, f, r, c, 0, &a);
                    pb = hl7_raw(fresh, i, f, r, c, 0, &b);
                    assert_int_equal(pa, pb);
                    if (pa != HL7_ABSENT) assert_true(a.len == b.len && !memcmp(a.p, b.p, a.len));
                }
        }
    }
    hl7_msg_free(fresh);
    tbuf_free(&out);
}

static uint64_t rnd_state = 88172645463325252ull;
static uint32_t rnd(uint32_t n)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return (uint32_t)(rnd_state % n);
}

static const char *const SEGS[] = {
    "PID|1||123^^^H^MR~456^^^S||DOE^JOHN",
    "OBX",
    "OBX|",
    "OBX|1|NM|2345-7^Glucose^LN||112|mg/dL^mg/dL^UCUM|70-99|H|||F",
    "ZZZ|a~b~c|^^^|&&|~||||x",
    ("NTE|1||a very long comment that goes on and on, well past a few words, to be sure "
     "the offsets of what follows move by much|tail"),
};
static const char *const VALUES[] = {
    "", "v", "abc^def", "x&y", "q~r", "p|q", "\"\"", "\\E\\", "12345678901234567890"};

/* Into text: MSH, one of SEGS picked at random, then tail. */
static const char *random_text(char *text, size_t cap, const char *tail)
{
    const char *seg = SEGS[rnd(sizeof SEGS / sizeof *SEGS)];
    snprintf(text, cap, "MSH|^~\\&|A|B|C|D|1||ORU^R01|1|P|2.5\r%s\r%s", seg, tail);
    return text;
}

static void test_edits_match_reference(void **state)
{
    (void)state;
    for (int it = 0; it < 3000; it++) {
        char text[512];
        hl7_msg *m = parse(random_text(text, sizeof text, "NTE|9\r"));
        for (int k = 0; k < 6; k++) {
            hl7_path p = {.seg_occ = 1, .field = 1 + rnd(14), .rep = 1 + rnd(3)};
            if (rnd(2)) p.comp = 1 + rnd(4);
            if (p.comp && rnd(3) == 0) p.sub = 1 + rnd(3);
            bool on_msh = rnd(8) == 0;
            uint32_t idx = on_msh ? 0 : 1;
            if (on_msh && p.field <= 2) p.field += 3;
            memcpy(p.seg, hl7_seg_at(m, idx)->id, 4);
            const char *v = VALUES[rnd(sizeof VALUES / sizeof *VALUES)];
            const hl7_seg *s = hl7_seg_at(m, idx);
            tbuf want = TBUF_INIT;
            ref_set(s->p, s->len, &p, v, strlen(v), &want);
            hl7_error e;
            hl7_status st = rnd(2) ? hl7_set_raw(m, &p, v, strlen(v), &e)
                                   : hl7_set_raw_at(m, idx, &p, v, strlen(v), &e);
            assert_int_equal(st, HL7_OK);
            s = hl7_seg_at(m, idx);
            assert_int_equal(s->len, want.len);
            assert_memory_equal(s->p, want.p, want.len);
            tbuf_free(&want);
            check_index(m);
        }
        hl7_msg_free(m);
    }
}

static void test_set_fields_matches_one_by_one(void **state)
{
    (void)state;
    for (int it = 0; it < 3000; it++) {
        char text[512];
        hl7_msg *a = parse(random_text(text, sizeof text, "")), *b = parse(text);
        /* up to 10 edits (past the 8 done in place), sometimes on MSH (whose
         * MSH-1 and MSH-2 are refused) or with a value that is refused */
        static const char *const refused[] = {"a\rb", "\n", "x|y\r"};
        hl7_field_edit ed[10];
        size_t n = 1 + rnd(rnd(4) == 0 ? 10 : 4);
        uint32_t idx = rnd(6) == 0 ? 0 : 1, f = idx == 0 ? rnd(4) : 0;
        for (size_t i = 0; i < n; i++) {
            f += rnd(5) == 0 ? 0 : 1 + rnd(4); /* sometimes the same field again */
            if (f == 0) f = 1;
            const char *v = rnd(40) == 0 ? refused[rnd(3)] : VALUES[rnd(sizeof VALUES / sizeof *VALUES)];
            ed[i] = (hl7_field_edit){f, v, strlen(v)};
        }
        hl7_error e, eb;
        hl7_status sa = hl7_set_fields_raw_at(a, idx, ed, n, &e), sb = HL7_OK;
        for (size_t i = 0; i < n && sb == HL7_OK; i++) {
            hl7_path p = {.field = ed[i].field, .rep = 1};
            sb = hl7_set_raw_at(b, idx, &p, ed[i].raw, ed[i].len, &eb);
        }
        assert_int_equal(sa, sb);
        if (sa != HL7_OK) { /* the same refusal (the checks do not depend on the edits) */
            assert_int_equal(e.offset, eb.offset);
            assert_string_equal(e.text, eb.text);
        }
        if (sa == HL7_OK) {
            tbuf ta = TBUF_INIT, tb = TBUF_INIT;
            hl7_serialize(a, &ta);
            hl7_serialize(b, &tb);
            assert_string_equal(ta.p, tb.p);
            tbuf_free(&ta);
            tbuf_free(&tb);
            check_index(a);
        }
        hl7_msg_free(a);
        hl7_msg_free(b);
    }
    /* a bad value: nothing changes */
    hl7_msg *m = parse(BASE);
    hl7_field_edit bad[2] = {{2, "ok", 2}, {3, "a\rb", 3}};
    hl7_error e;
    assert_int_equal(hl7_set_fields_raw_at(m, 1, bad, 2, &e), HL7_ERR_VALUE);
    expect(m, BASE);
    assert_int_equal(hl7_set_fields_raw_at(m, 9, bad, 1, &e), HL7_ERR_NOT_FOUND);
    hl7_msg_free(m);
}

static void test_escape_for(void **state)
{
    (void)state;
    hl7_msg *m = parse(BASE);
    tbuf out = TBUF_INIT;
    hl7_error e;
    assert_int_equal(hl7_escape_for(m, "a|b\n", 4, &out, &e), HL7_OK);
    assert_string_equal(out.p, "a\\F\\b\\.br\\");
    assert_true(hl7_needs_escape(hl7_delims_of(m), "a|b", 3));
    assert_false(hl7_needs_escape(hl7_delims_of(m), "plain text", 10));
    assert_int_equal(hl7_escape_for(m, "a\0b", 3, &out, &e), HL7_ERR_VALUE);
    assert_string_equal(out.p, "a\\F\\b\\.br\\"); /* nothing appended */
    hl7_msg_free(m);
    m = parse("MSH|^~|A|B|C|D|1||ADT^A01|1|P|2.5\rPID|1\r"); /* no escape character */
    assert_int_equal(hl7_escape_for(m, "a^b", 3, &out, &e), HL7_ERR_VALUE);
    assert_int_equal(e.offset, 1);
    hl7_msg_free(m);
    tbuf_free(&out);
}

/* A raw value with CR, LF or NUL anywhere is refused, whatever its length
 * (the check reads words and an overlapping last word), and so is a field
 * separator in a splice; other control bytes (tab, form feed, bytes below
 * CR) are stored. */
static void test_line_breaks_at_every_offset(void **state)
{
    (void)state;
    static const char breaks[] = {'\r', '\n', '\0'};
    static const char others[] = {'\t', '\f', '\v', '\x01', '\x0c', '\x0e', '\x1f'};
    hl7_msg *m = parse(BASE);
    hl7_path p;
    hl7_error e;
    assert_int_equal(hl7_path_parse("PV1-3", &p, &e), HL7_OK);
    char v[48];
    for (size_t len = 1; len <= 40; len++)
        for (size_t at = 0; at < len; at++) {
            memset(v, 'x', len);
            for (size_t b = 0; b < sizeof breaks; b++) {
                v[at] = breaks[b];
                assert_int_equal(hl7_set_raw(m, &p, v, len, &e), HL7_ERR_VALUE);
                assert_int_equal(e.offset, at);
            }
            for (size_t b = 0; b <= sizeof breaks; b++) { /* splices: the field separator too */
                hl7_span old;
                assert_int_equal(hl7_raw(m, 2, 2, 0, 0, 0, &old), HL7_VALUE); /* PV1-2 */
                v[at] = b < sizeof breaks ? breaks[b] : '|';
                assert_int_equal(hl7_splice_raw_at(m, 2, 2, old, v, len, &e), HL7_ERR_VALUE);
                assert_int_equal(e.offset, at);
                v[len - 1] = len - 1 > at ? '\n' : v[len - 1]; /* a later one: the first counts */
                assert_int_equal(hl7_splice_raw_at(m, 2, 2, old, v, len, &e), HL7_ERR_VALUE);
                assert_int_equal(e.offset, at);
                v[len - 1] = len - 1 > at ? 'x' : v[len - 1];
            }
            for (size_t o = 0; o < sizeof others; o++) {
                v[at] = others[o];
                assert_int_equal(hl7_set_raw(m, &p, v, len, &e), HL7_OK);
                hl7_span got, old;
                assert_int_equal(hl7_raw(m, 2, 2, 0, 0, 0, &old), HL7_VALUE);
                assert_int_equal(hl7_splice_raw_at(m, 2, 2, old, v, len, &e), HL7_OK);
                assert_int_equal(hl7_raw(m, 2, 2, 0, 0, 0, &got), HL7_VALUE);
                assert_int_equal(got.len, len);
                assert_memory_equal(got.p, v, len);
                assert_int_equal(hl7_raw(m, 2, 3, 0, 0, 0, &got), HL7_VALUE);
                assert_int_equal(got.len, len);
                assert_memory_equal(got.p, v, len);
            }
        }
    hl7_msg_free(m);
}

/* hl7_splice_clean_at() of a text hl7_splice_raw_at() accepts gives the
 * same message: two copies spliced at the same random spans, one each way,
 * compared segment by segment (text and field offsets) and serialized. */
static void test_splice_clean_matches_checked(void **state)
{
    (void)state;
    for (int it = 0; it < 2000; it++) {
        char text[512];
        random_text(text, sizeof text, "NTE|9\r");
        hl7_msg *a = parse(text), *b = parse(text);
        for (int k = 0; k < 6; k++) {
            uint32_t idx = rnd(6) == 0 ? 0 : 1;
            const hl7_seg *s = hl7_seg_at(a, idx);
            if (s->nfields == 0) break;
            uint32_t field = 1 + rnd(s->nfields);
            if (idx == 0 && field <= 2) field = 3;
            if (field > s->nfields) break;
            hl7_span fa, fb;
            assert_int_equal(hl7_raw(a, idx, field, 0, 0, 0, &fa) != HL7_ABSENT, true);
            assert_int_equal(hl7_raw(b, idx, field, 0, 0, 0, &fb) != HL7_ABSENT, true);
            size_t x = rnd((uint32_t)fa.len + 1), y = x + rnd((uint32_t)(fa.len - x) + 1);
            const char *v = VALUES[rnd(sizeof VALUES / sizeof *VALUES)];
            if (strchr(v, '|')) continue; /* refused: not a clean text */
            hl7_error e;
            assert_int_equal(hl7_splice_raw_at(a, idx, field, (hl7_span){fa.p + x, y - x}, v,
                                               strlen(v), &e),
                             HL7_OK);
            hl7_splice_clean_at(b, idx, field, (hl7_span){fb.p + x, y - x}, v, strlen(v));
            const hl7_seg *sa = hl7_seg_at(a, idx), *sb = hl7_seg_at(b, idx);
            assert_int_equal(sa->len, sb->len);
            assert_memory_equal(sa->p, sb->p, sa->len);
            assert_int_equal(sa->nfields, sb->nfields);
            for (uint32_t f = 1; f <= sa->nfields; f++) {
                hl7_span ra, rb;
                assert_int_equal(hl7_raw(a, idx, f, 0, 0, 0, &ra), hl7_raw(b, idx, f, 0, 0, 0, &rb));
                assert_int_equal(ra.len, rb.len);
                assert_int_equal(ra.p - sa->p, rb.p - sb->p);
            }
            check_index(b);
        }
        tbuf ta = TBUF_INIT, tb = TBUF_INIT;
        hl7_serialize(a, &ta);
        hl7_serialize(b, &tb);
        assert_int_equal(ta.len, tb.len);
        assert_memory_equal(ta.p, tb.p, ta.len);
        tbuf_free(&ta);
        tbuf_free(&tb);
        hl7_msg_free(a);
        hl7_msg_free(b);
    }
}

/* hl7_splice_raw_at() at random spans of random fields, against the text
 * spliced by hand; what it refuses leaves the message as it was. */
static void test_splice_matches_reference(void **state)
{
    (void)state;
    for (int it = 0; it < 3000; it++) {
        char text[512];
        hl7_msg *m = parse(random_text(text, sizeof text, "NTE|9\r"));
        for (int k = 0; k < 4; k++) {
            uint32_t idx = rnd(6) == 0 ? 0 : 1;
            const hl7_seg *s = hl7_seg_at(m, idx);
            if (s->nfields == 0) break;
            uint32_t field = 1 + rnd(s->nfields);
            if (idx == 0 && field <= 2) field = 3;
            hl7_span f;
            assert_int_equal(hl7_raw(m, idx, field, 0, 0, 0, &f) != HL7_ABSENT, true);
            size_t a = rnd((uint32_t)f.len + 1), b = a + rnd((uint32_t)(f.len - a) + 1);
            hl7_span old = {f.p + a, b - a};
            const char *v = VALUES[rnd(sizeof VALUES / sizeof *VALUES)];
            tbuf want = TBUF_INIT;
            tbuf_put(&want, s->p, (size_t)(old.p - s->p));
            tbuf_puts(&want, v);
            tbuf_put(&want, old.p + old.len, (size_t)(s->p + s->len - (old.p + old.len)));
            hl7_error e;
            hl7_status st = hl7_splice_raw_at(m, idx, field, old, v, strlen(v), &e);
            s = hl7_seg_at(m, idx);
            if (strchr(v, '|')) {
                assert_int_equal(st, HL7_ERR_VALUE);
            } else {
                assert_int_equal(st, HL7_OK);
                assert_int_equal(s->len, want.len);
                assert_memory_equal(s->p, want.p, want.len);
            }
            tbuf_free(&want);
            check_index(m);
        }
        hl7_msg_free(m);
    }
    hl7_msg *m = parse(BASE);
    hl7_span f;
    hl7_error e;
    assert_int_equal(hl7_raw(m, 1, 3, 0, 0, 0, &f), HL7_VALUE);
    hl7_span five = {f.p + f.len + 1, 3}; /* PID-5's text, not PID-3's */
    assert_int_equal(hl7_splice_raw_at(m, 1, 3, five, "x", 1, &e), HL7_ERR_VALUE);
    assert_int_equal(hl7_splice_raw_at(m, 1, 3, f, "a\nb", 3, &e), HL7_ERR_VALUE);
    assert_int_equal(e.offset, 1);
    assert_int_equal(hl7_splice_raw_at(m, 1, 3, f, "a|b", 3, &e), HL7_ERR_VALUE);
    assert_int_equal(hl7_splice_raw_at(m, 1, 99, f, "x", 1, &e), HL7_ERR_VALUE);
    assert_int_equal(hl7_splice_raw_at(m, 9, 3, f, "x", 1, &e), HL7_ERR_NOT_FOUND);
    assert_int_equal(hl7_raw(m, 0, 2, 0, 0, 0, &f), HL7_VALUE);
    assert_int_equal(hl7_splice_raw_at(m, 0, 2, f, "x", 1, &e), HL7_ERR_VALUE);
    expect(m, BASE);
    /* a span found before the segment changed is no longer inside it */
    assert_int_equal(hl7_raw(m, 1, 3, 1, 1, 0, &f), HL7_VALUE);
    assert_int_equal(hl7_splice_raw_at(m, 1, 3, f, "77", 2, &e), HL7_OK);
    assert_int_equal(hl7_splice_raw_at(m, 1, 3, f, "88", 2, &e), HL7_ERR_VALUE);
    expect(m, "MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5\r\n"
              "PID|1||77^^^H^MR~456^^^S||DOE^JOHN\r\n"
              "PV1|1|I\r\n");
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
        cmocka_unit_test(test_edits_match_reference),
        cmocka_unit_test(test_set_fields_matches_one_by_one),
        cmocka_unit_test(test_escape_for),
        cmocka_unit_test(test_line_breaks_at_every_offset),
        cmocka_unit_test(test_splice_matches_reference),
        cmocka_unit_test(test_splice_clean_matches_checked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
