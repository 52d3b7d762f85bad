/*
 * Unit tests for the map step of declarative transforms (engine/transform.c)
 * where it keeps escaped targets from one value to the next: targets holding
 * delimiters come out escaped for each message's own delimiters, many rows
 * (more than the table of escaped targets holds) each map to their own
 * target, and a row without display or system keeps the message's.
 *
 * A coded value's code and system are looked up as they are in the message
 * when decoding would leave them so (ASCII without the escape character),
 * and the repetition is split in one pass of words. The tests below fail if
 * that shortcut is taken for a value holding an escape sequence or bytes of
 * another character set, or if the split misplaces a component, a
 * repetition or a message's own delimiters.
 *
 * What steps keep from one message to the next (a map step's rewrites of
 * values seen, a convert step's last reference range and its conversion)
 * is checked against a fresh chain on random messages, byte for byte and
 * error for error.
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
    /* rows found only when the message's code or system is decoded first */
    assert_int_equal(codemap_add(m, NULL, "A^B", "http://x", "AB", "Caret", &ce), CODEMAP_OK);
    assert_int_equal(codemap_add(m, NULL, "C1", "http://x", "X0", "No system", &ce), CODEMAP_OK);
    assert_int_equal(codemap_add(m, "S&Y", "C1", "http://x", "X1", "System S&Y", &ce), CODEMAP_OK);
    assert_int_equal(codemap_add(m, NULL, "\xc3\x89" "1", "http://x", "E1", "E acute", &ce),
                     CODEMAP_OK);
    /* a row whose target is what the message holds already */
    assert_int_equal(codemap_add(m, NULL, "SAME", "http://loinc.org", "SAME", "Same", &ce),
                     CODEMAP_OK);
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

#define MSH_STD "MSH|^~\\&|A|B|C|D|20260101||ORU^R01|1|P|2.5\r"
#define MSH_ODD "MSH#:*!%#A#B#C#D#20260101##ORU:R01#1#P#2.5\r"

/* OBX number occ's field 3 (every repetition, raw) is want. */
static void obx3_whole_is(const hl7_msg *m, uint32_t occ, const char *want)
{
    long idx = hl7_seg_find(m, "OBX", occ);
    assert_true(idx >= 0);
    hl7_span v;
    char got[256] = "";
    if (hl7_raw(m, (uint32_t)idx, 3, 0, 0, 0, &v) != HL7_ABSENT)
        snprintf(got, sizeof got, "%.*s", (int)v.len, v.p);
    assert_string_equal(got, want);
}

/* The message serialized is text (CR endings) again. */
static void unchanged(const hl7_msg *m, const char *text)
{
    tbuf out = TBUF_INIT;
    hl7_serialize(m, &out);
    assert_string_equal(tbuf_cstr(&out), text);
    tbuf_free(&out);
}

/* A code or system holding an escape sequence is looked up decoded; raw
 * bytes that are no escape for the message's delimiters are looked up as
 * they are. */
static void escaped_code_and_system(void **state)
{
    fixture *f = *state;
    hl7_msg *m = hl7_msg_new(NULL);
    apply(f, MSH_STD "OBX|1|ST|A\\S\\B^x^99L||v\r", m);
    obx3_is(m, 1, "AB^Caret^http://x");
    apply(f,
          MSH_STD "OBX|1|ST|C1^x^S\\T\\Y||v\rOBX|2|ST|C1^x^S&Y||v\rOBX|3|ST|C1^x^99L||v\r"
                  "OBX|4|ST|C1||v\r",
          m);
    obx3_is(m, 1, "X1^System S\\T\\Y^http://x"); /* S\T\Y decodes to S&Y */
    obx3_is(m, 2, "X1^System S\\T\\Y^http://x"); /* the component's text, & and all */
    obx3_is(m, 3, "X0^No system^http://x");  /* another system: the row without one */
    obx3_is(m, 4, "X0^No system^http://x");
    /* other delimiters: '^' and '&' are text, ':' in the target is escaped */
    apply(f,
          MSH_ODD "OBX#1#ST#A^B:x:99L##v\rOBX#2#ST#C1:x:S&Y##v\rOBX#3#ST#C1:x:S%Y##v\r"
                  "OBX#4#ST#C1:x:S!T!Y##v\r",
          m);
    obx3_is(m, 1, "AB:Caret:http!S!//x");
    obx3_is(m, 2, "X1:System S&Y:http!S!//x");
    obx3_is(m, 3, "X0:No system:http!S!//x"); /* S%Y: S, subcomponent Y */
    obx3_is(m, 4, "X0:No system:http!S!//x"); /* !T! is '%' here */
    hl7_msg_free(m);
}

/* A code in another character set is converted before the lookup. */
static void code_in_another_charset(void **state)
{
    fixture *f = *state;
    hl7_msg *m = hl7_msg_new(NULL);
    apply(f,
          "MSH|^~\\&|A|B|C|D|20260101||ORU^R01|1|P|2.5||||||8859/1\r"
          "OBX|1|ST|\xc9" "1^x^99L||v\r",
          m);
    obx3_is(m, 1, "E1^E acute^http://x");
    apply(f, MSH_STD "OBX|1|ST|\xc3\x89" "1^x^99L||v\r", m); /* UTF-8 */
    obx3_is(m, 1, "E1^E acute^http://x");
    hl7_msg_free(m);
}

/* Only the first repetition is rewritten, and components past the third
 * are kept; values with nothing to map are left alone. */
static void repetitions_and_missing_values(void **state)
{
    fixture *f = *state;
    hl7_msg *m = hl7_msg_new(NULL);
    apply(f,
          MSH_STD "OBX|1|ST|L1^Local^99L~L2^Other^99L||v\r"
                  "OBX|2|ST|L1^Local^99L^alt^Alt text^99X||v\r"
                  "OBX|3|ST|L1^Local^99L^^||v\r"
                  "OBX|4|ST|L1||v\r"
                  "OBX|5|ST|L1^^^^x~y||v\r",
          m);
    obx3_whole_is(m, 1, "T1^Name 1^http://loinc.org~L2^Other^99L");
    obx3_whole_is(m, 2, "T1^Name 1^http://loinc.org^alt^Alt text^99X");
    obx3_whole_is(m, 3, "T1^Name 1^http://loinc.org");
    obx3_whole_is(m, 4, "T1^Name 1^http://loinc.org");
    obx3_whole_is(m, 5, "T1^Name 1^http://loinc.org^^x~y");
    static const char quiet[] = MSH_STD "OBX|1|ST\rOBX|2|ST|\rOBX|3|ST|\"\"\r"
                                        "OBX|4|ST|^Text only^99L\rOBX|5|ST|~L1^x^99L\r"
                                        "OBX|6|ST|\"\"^x^99L||v\r";
    apply(f, quiet, m);
    unchanged(m, quiet);
    hl7_msg_free(m);
}

/* A value that already is the target costs no edit: the segment still
 * points into the input. */
static void already_the_target(void **state)
{
    fixture *f = *state;
    hl7_msg *m = hl7_msg_new(NULL);
    static const char text[] = MSH_STD "OBX|1|ST|SAME^Same^http://loinc.org||v\r"
                                       "OBX|2|ST|SAME^Same^http://loinc.org^alt||v\r"
                                       "OBX|3|ST|SAME^Other^LN||v\r";
    apply(f, text, m);
    for (uint32_t i = 1; i <= 2; i++) {
        const hl7_seg *s = hl7_seg_at(m, i);
        assert_true(s->p >= text && s->p < text + sizeof text);
    }
    obx3_is(m, 3, "SAME^Same^http://loinc.org");
    hl7_msg_free(m);
}

/* Codes and texts of every length around the word size, the value last
 * in a message without a final CR (the split must not read past it). */
static void split_at_every_offset(void **state)
{
    fixture *f = *state;
    hl7_msg *m = hl7_msg_new(NULL);
    tbuf t = TBUF_INIT;
    for (int code = 0; code < 300; code += 37)
        for (int dl = 0; dl <= 20; dl++)
            for (int tail = 0; tail < 3; tail++) {
                char disp[24];
                memset(disp, 'd', (size_t)dl);
                disp[dl] = '\0';
                tbuf_reset(&t);
                tbuf_printf(&t, MSH_STD "OBX|1|ST|L%d^%s^99L%s%s", code, disp,
                            tail == 1 ? "^c4" : "", tail == 2 ? "||v\r" : "");
                apply(f, tbuf_cstr(&t), m);
                char want[96];
                snprintf(want, sizeof want, "T%d^Name %d^http://loinc.org%s", code, code,
                         tail == 1 ? "^c4" : "");
                obx3_is(m, 1, want);
            }
    tbuf_free(&t);
    hl7_msg_free(m);
}

/* An unmapped code (policy error) fails the step, naming the decoded code
 * and system. */
static void unmapped_reports_decoded_values(void **state)
{
    fixture *f = *state;
    hl7_msg *m = hl7_msg_new(NULL);
    static const char *const texts[] = {
        MSH_STD "OBX|1|ST|NOPE^x^99L||v\r",
        MSH_STD "OBX|1|ST|N\\T\\P^x^9\\S\\9||v\r",
    };
    static const char *const want[] = {
        "(map codes): OBX-3.1: code 'NOPE' (system 99L) is not in the map",
        "(map codes): OBX-3.1: code 'N&P' (system 9^9) is not in the map",
    };
    for (size_t i = 0; i < 2; i++) {
        hl7_error he;
        assert_int_equal(hl7_parse(m, texts[i], strlen(texts[i]), &he), HL7_OK);
        tbuf err = TBUF_INIT;
        assert_int_equal(transform_apply(f->chain, m, &err), -1);
        if (!strstr(tbuf_cstr(&err), want[i])) fail_msg("got: %s", err.p);
        tbuf_free(&err);
    }
    hl7_msg_free(m);
}

/* A path naming a repetition or an occurrence maps only that one. */
static void repetition_and_occurrence_paths(void **state)
{
    fixture *f = *state;
    static const config_transform steps[] = {
        {.kind = CONFIG_TX_MAP, .line = 1, .path = "OBX-3[2]", .map = "codes"},
        {.kind = CONFIG_TX_MAP, .line = 2, .path = "OBX[2]-4", .map = "codes"},
    };
    tbuf err = TBUF_INIT;
    transform_chain *chain = transform_compile(steps, 2, f->maps, &err);
    if (!chain) fail_msg("%s", tbuf_cstr(&err));
    hl7_msg *m = hl7_msg_new(NULL);
    static const char text[] = MSH_STD "OBX|1|ST|L5^x^99L~L1^Local^99L|L2\r"
                                       "OBX|2|ST|L6|L2^y^99L~L3\r";
    hl7_error he;
    assert_int_equal(hl7_parse(m, text, strlen(text), &he), HL7_OK);
    if (transform_apply(chain, m, &err) != 0) fail_msg("%s", tbuf_cstr(&err));
    obx3_whole_is(m, 1, "L5^x^99L~T1^Name 1^http://loinc.org");
    obx3_whole_is(m, 2, "L6"); /* one repetition: nothing at [2] */
    long idx = hl7_seg_find(m, "OBX", 1);
    hl7_span v;
    assert_int_equal(hl7_raw(m, (uint32_t)idx, 4, 0, 0, 0, &v), HL7_VALUE);
    assert_int_equal(v.len, 2); /* OBX[1]-4 untouched */
    idx = hl7_seg_find(m, "OBX", 2);
    assert_int_equal(hl7_raw(m, (uint32_t)idx, 4, 0, 0, 0, &v), HL7_VALUE);
    char got[96];
    snprintf(got, sizeof got, "%.*s", (int)v.len, v.p);
    assert_string_equal(got, "T2^Name 2^http://loinc.org~L3");
    hl7_msg_free(m);
    transform_free(chain);
    tbuf_free(&err);
}

/* A small deterministic generator for the random messages below. */
static uint32_t next_rand(uint64_t *state)
{
    *state = *state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(*state >> 33);
}

/* One random message: OBX-3 values drawn from a small set (so that they
 * repeat from one message to the next), mapped, unmapped, escaped, empty,
 * with other repetitions and components, under one of four delimiter
 * sets (the third without an escape character; the fourth has a backslash
 * for field separator and no escape character, so a target needing an
 * escape cannot be spliced: such a rewrite, kept, is not "clean"). */
static void random_message(uint64_t *rs, tbuf *t)
{
    static const char *const codes[] = {"L1", "L2", "L299", "SAME", "ODD", "BARE", "C1",
                                        "A\\S\\B", "\xc3\x89" "1", "", "\"\"", "L7", "ZZ"};
    static const char *const rest[] = {"", "^Local", "^Local^99L", "^^S&Y", "^x^http://loinc.org",
                                       "^Same^http://loinc.org", "^a^b^c^d", "^^", "^\\T\\^LN",
                                       "~L3^Other^99L", "^Local^99L~L4"};
    static const char *const msh[] = {"MSH|^~\\&|A|B|C|D|20260101||ORU^R01|1|P|2.5\r",
                                      "MSH#:*!%#A#B#C#D#20260101##ORU:R01#1#P#2.5\r",
                                      "MSH|^~\\|A|B|C|D|20260101||ORU^R01|1|P|2.5\r",
                                      "MSH\\^~\\A\\B\\C\\D\\20260101\\\\ORU^R01\\1\\P\\2.5\r"};
    uint32_t k = next_rand(rs) % 4;
    tbuf_reset(t);
    tbuf_puts(t, msh[k]);
    uint32_t n = 1 + next_rand(rs) % 6;
    for (uint32_t i = 0; i < n; i++) {
        tbuf tmp = TBUF_INIT;
        tbuf_printf(&tmp, "OBX|%u|NM|%s%s||1\r", i + 1, codes[next_rand(rs) % 13],
                    rest[next_rand(rs) % 11]);
        for (size_t j = 0; j < tmp.len; j++) { /* the message's own delimiters */
            char c = tmp.p[j];
            if (k == 1) c = c == '|' ? '#' : c == '^' ? ':' : c == '~' ? '*' : c == '\\' ? '%' : c;
            if (k == 3 && c == '|') c = '\\';
            tbuf_putc(t, c);
        }
        tbuf_free(&tmp);
    }
}

/* What a step keeps from one value to the next (escaped targets, rewrites
 * of values seen) must give what a fresh chain gives: every message through
 * one long-lived chain and through a new one, compared byte for byte, with
 * the same errors. */
static void kept_rewrites_match_a_fresh_chain(void **state)
{
    fixture *f = *state;
    hl7_msg *a = hl7_msg_new(NULL), *b = hl7_msg_new(NULL);
    tbuf t = TBUF_INIT, ea = TBUF_INIT, eb = TBUF_INIT, sa = TBUF_INIT, sb = TBUF_INIT;
    uint64_t rs = 42;
    for (int round = 0; round < 3000; round++) {
        random_message(&rs, &t);
        hl7_error he;
        assert_int_equal(hl7_parse(a, t.p, t.len, &he), HL7_OK);
        assert_int_equal(hl7_parse(b, t.p, t.len, &he), HL7_OK);
        tbuf_reset(&ea);
        tbuf_reset(&eb);
        transform_chain *fresh = transform_compile(STEPS, 1, f->maps, &eb);
        assert_non_null(fresh);
        int ra = transform_apply(f->chain, a, &ea), rb = transform_apply(fresh, b, &eb);
        transform_free(fresh);
        assert_int_equal(ra, rb);
        assert_string_equal(tbuf_cstr(&ea), tbuf_cstr(&eb));
        tbuf_reset(&sa);
        tbuf_reset(&sb);
        hl7_serialize(a, &sa);
        hl7_serialize(b, &sb);
        assert_string_equal(tbuf_cstr(&sa), tbuf_cstr(&sb));
    }
    tbuf_free(&t);
    tbuf_free(&ea);
    tbuf_free(&eb);
    tbuf_free(&sa);
    tbuf_free(&sb);
    hl7_msg_free(a);
    hl7_msg_free(b);
}

/* Convert steps keep the parsed source unit and the last plain reference
 * range with its conversion from one OBX to the next: a long-lived chain
 * must give what a fresh chain gives, byte for byte and error for error,
 * over random OBX whose unit, value and range repeat, change, hold escapes
 * or do not convert. */
static void random_obx_message(uint64_t *rs, tbuf *t)
{
    static const char *const codes[] = {"2345-7", "718-7", "2160-0"};
    static const char *const units[] = {"mg/dL", "mg/dL", "g/L", "mmol/L", "m", "mg/dL^x^UCUM",
                                        "mg\\X2F\\dL", ""};
    static const char *const values[] = {"112", "98", "<5", "POS", "", "1.5e2", "70-99"};
    static const char *const ranges[] = {"70-99",   "70-99",    "70 - 99", "0.6-1.2", ">5",
                                         "70\\T\\99", "abc",      "",        "70-99~1-2",
                                         "-1--2",   "1e400-2"};
    /* the third delimiter set has '.' for a component separator: a
     * converted range then needs an escape */
    static const char *const msh[] = {"MSH|^~\\&|A|B|C|D|20260101||ORU^R01|1|P|2.5\r",
                                      "MSH#:*!%#A#B#C#D#20260101##ORU:R01#1#P#2.5\r",
                                      "MSH|.~\\&|A|B|C|D|20260101||ORU.R01|1|P|2.5\r"};
    uint32_t k = next_rand(rs) % 3;
    tbuf_reset(t);
    tbuf_puts(t, msh[k]);
    uint32_t n = 1 + next_rand(rs) % 4;
    for (uint32_t i = 0; i < n; i++) {
        tbuf tmp = TBUF_INIT;
        tbuf_printf(&tmp, "OBX|%u|NM|%s^Name^LN||%s|%s|%s|N\r", i + 1, codes[next_rand(rs) % 3],
                    values[next_rand(rs) % 7], units[next_rand(rs) % 8],
                    ranges[next_rand(rs) % 11]);
        for (size_t j = 0; j < tmp.len; j++) {
            char c = tmp.p[j];
            if (k == 1) c = c == '|' ? '#' : c == '^' ? ':' : c == '~' ? '*' : c == '\\' ? '%' : c;
            if (k == 3 && c == '|') c = '\\';
            if (k == 2 && c == '^') c = '.';
            tbuf_putc(t, c);
        }
        tbuf_free(&tmp);
    }
}

static void convert_keeps_match_a_fresh_chain(void **state)
{
    (void)state;
    static const config_transform steps[] = {
        {.kind = CONFIG_TX_CONVERT, .line = 1, .code = "2345-7", .unit = "mmol/L", .mw = 180.16},
        {.kind = CONFIG_TX_CONVERT, .line = 2, .code = "718-7", .unit = "g/L"},
        {.kind = CONFIG_TX_CONVERT, .line = 3, .code = "2160-0", .from = "mg/dL", .unit = "umol/L",
         .mw = 113.12},
    };
    tbuf t = TBUF_INIT, ea = TBUF_INIT, eb = TBUF_INIT, sa = TBUF_INIT, sb = TBUF_INIT;
    transform_chain *kept = transform_compile(steps, 3, NULL, &ea);
    assert_non_null(kept);
    hl7_msg *a = hl7_msg_new(NULL), *b = hl7_msg_new(NULL);
    uint64_t rs = 7;
    int converted = 0, failed = 0;
    for (int round = 0; round < 4000; round++) {
        random_obx_message(&rs, &t);
        hl7_error he;
        assert_int_equal(hl7_parse(a, t.p, t.len, &he), HL7_OK);
        assert_int_equal(hl7_parse(b, t.p, t.len, &he), HL7_OK);
        tbuf_reset(&ea);
        tbuf_reset(&eb);
        transform_chain *fresh = transform_compile(steps, 3, NULL, &eb);
        assert_non_null(fresh);
        int ra = transform_apply(kept, a, &ea), rb = transform_apply(fresh, b, &eb);
        transform_free(fresh);
        assert_int_equal(ra, rb);
        assert_string_equal(tbuf_cstr(&ea), tbuf_cstr(&eb));
        tbuf_reset(&sa);
        tbuf_reset(&sb);
        hl7_serialize(a, &sa);
        hl7_serialize(b, &sb);
        assert_string_equal(tbuf_cstr(&sa), tbuf_cstr(&sb));
        failed += ra != 0;
        converted += ra == 0 && strcmp(tbuf_cstr(&sa), t.p) != 0;
    }
    assert_true(converted > 500 && failed > 100); /* both kinds were seen */
    transform_free(kept);
    tbuf_free(&t);
    tbuf_free(&ea);
    tbuf_free(&eb);
    tbuf_free(&sa);
    tbuf_free(&sb);
    hl7_msg_free(a);
    hl7_msg_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(many_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(escaped_per_message_delimiters, setup, teardown),
        cmocka_unit_test_setup_teardown(row_without_display_or_system, setup, teardown),
        cmocka_unit_test_setup_teardown(escaped_code_and_system, setup, teardown),
        cmocka_unit_test_setup_teardown(code_in_another_charset, setup, teardown),
        cmocka_unit_test_setup_teardown(repetitions_and_missing_values, setup, teardown),
        cmocka_unit_test_setup_teardown(already_the_target, setup, teardown),
        cmocka_unit_test_setup_teardown(split_at_every_offset, setup, teardown),
        cmocka_unit_test_setup_teardown(unmapped_reports_decoded_values, setup, teardown),
        cmocka_unit_test_setup_teardown(repetition_and_occurrence_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(kept_rewrites_match_a_fresh_chain, setup, teardown),
        cmocka_unit_test(convert_keeps_match_a_fresh_chain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
