/*
 * Unit tests for src/quality/validate.c: the structure grammar and its
 * errors, field specs (required, datatype, table, length, repetitions,
 * ranges, conditions, occurrences), the baseline profile, each consistency
 * rule both ways, severities, formatting, ERR-segment inputs, reuse of a
 * result without allocation, and the data-driven cases under
 * tests/data/quality: valid/ and unusual/ must produce no problem at all,
 * invalid/NAME.hl7 must produce exactly the lines of invalid/NAME.expect.
 * Every case there is validated with data_validator() (see
 * tests/data/quality/README.md) at NOW.
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

#include "hl7/hl7.h"
#include "hl7/hl7_ack.h"
#include "quality/validate.h"

#define NOW ((time_t)1735689600) /* 2025-01-01T00:00:00Z */
#define MSH "MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240601120000||"
#define ORU_STRUCTURE "MSH PID [PV1] { [ORC] OBR [{NTE}] { OBX [{NTE}] } }"

static hl7_msg *parse_ok(const char *text)
{
    hl7_msg *m = hl7_msg_new(NULL);
    hl7_error err;
    hl7_status st = hl7_parse(m, text, strlen(text), &err);
    if (st != HL7_OK) fail_msg("unexpected parse error: %s", err.text);
    return m;
}

/* All problems of text under v, formatted one per line, in a static buffer. */
static const char *run(const validator *v, const char *text)
{
    static char out[8192];
    hl7_msg *m = parse_ok(text);
    validate_result r = VALIDATE_RESULT_INIT;
    validate_message(v, m, NOW, &r);
    tbuf b = TBUF_INIT;
    for (size_t i = 0; i < r.n; i++) {
        validate_problem_format(&r.v[i], &b);
        tbuf_putc(&b, '\n');
    }
    snprintf(out, sizeof(out), "%s", b.p ? b.p : "");
    tbuf_free(&b);
    validate_result_free(&r);
    hl7_msg_free(m);
    return out;
}

static validator *oru_validator(void)
{
    validator *v = validator_new(NULL);
    validate_error err;
    validate_profile *p = validate_profile_new("ORU^R01", &err);
    assert_non_null(p);
    assert_int_equal(validate_profile_set_structure(p, ORU_STRUCTURE, &err), VALIDATE_OK);
    assert_int_equal(validator_add_profile(v, p, &err), VALIDATE_OK);
    return v;
}

/* --- names and setup errors ------------------------------------------------------ */

static void test_names(void **state)
{
    (void)state;
    const char *ids[] = {"structure", "required", "datatype", "table", "length", "repetition",
                         "range", "birth-future", "death-before-birth", "before-birth",
                         "sex-specific", "age-restricted", "physiologic"};
    assert_int_equal(sizeof(ids) / sizeof(ids[0]), VALIDATE_RULE_COUNT_);
    for (int i = 0; i < VALIDATE_RULE_COUNT_; i++) {
        validate_rule r;
        assert_string_equal(validate_rule_name((validate_rule)i), ids[i]);
        assert_true(validate_rule_from_name(ids[i], &r));
        assert_int_equal(r, i);
    }
    validate_rule r;
    assert_false(validate_rule_from_name("nope", &r));
    validate_severity s;
    assert_true(validate_severity_from_name("warning", &s));
    assert_int_equal(s, VALIDATE_SEV_WARNING);
    assert_true(validate_severity_from_name("off", &s));
    assert_false(validate_severity_from_name("fatal", &s));
    assert_string_equal(validate_strerror(VALIDATE_ERR_STRUCTURE), "bad segment structure");
}

static void test_structure_grammar_errors(void **state)
{
    (void)state;
    struct {
        const char *g, *msg;
    } bad[] = {
        {"", "structure: no segments given"},
        {"MSH [PID", "structure: missing ']' at the end"},
        {"MSH PID]", "structure: unexpected ']' at character 8"},
        {"MSH { OBX ]", "structure: unexpected ']' at character 11"},
        {"MSH [{ OBX } PID", "structure: expected ']' to close '[{' opened at character 5"},
        {"MSH PIDX", "structure: 'PIDX' at character 5 is not a segment id (three upper-case "
                     "letters or digits)"},
        {"MSH pid", "structure: unexpected 'p' at character 5 (expected a segment id, '[' or '{')"},
        {"MSH [ ]", "structure: empty group at character 5"},
    };
    validate_profile *p = validate_profile_new("ORU^R01", NULL);
    validate_error err;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&err, 0, sizeof(err));
        assert_int_equal(validate_profile_set_structure(p, bad[i].g, &err), VALIDATE_ERR_STRUCTURE);
        assert_string_equal(err.text, bad[i].msg);
    }
    assert_int_equal(validate_profile_set_structure(p, "MSH, PID?, PV1*, {OBR OBX+}, NTE*", &err),
                     VALIDATE_OK);
    validate_profile_free(p);

    assert_null(validate_profile_new("", &err));
    assert_null(validate_profile_new("oru^R01", &err));
    assert_null(validate_profile_new("*^R01", &err));
    assert_string_equal(err.text, "message '*^R01': expected TYPE^EVENT (ORU^R01), TYPE (ORU) or *");
    p = validate_profile_new("ORU^*", &err);
    assert_non_null(p);
    validate_profile_free(p);
}

static void test_field_spec_errors(void **state)
{
    (void)state;
    validate_profile *p = validate_profile_new("*", NULL);
    validate_error err;
    validate_field_spec s = {.path = "PID"};
    assert_int_equal(validate_profile_add_field(p, &s, &err), VALIDATE_ERR_PATH);
    assert_string_equal(err.text, "path 'PID': name a field, e.g. PID-3");
    s.path = "PID-x";
    assert_int_equal(validate_profile_add_field(p, &s, &err), VALIDATE_ERR_PATH);
    s = (validate_field_spec){.path = "OBX-5", .when = "OBX2=NM"};
    assert_int_equal(validate_profile_add_field(p, &s, &err), VALIDATE_ERR_VALUE);
    s.when = "PID-2=NM";
    assert_int_equal(validate_profile_add_field(p, &s, &err), VALIDATE_ERR_VALUE);
    assert_string_equal(err.text,
                        "condition 'PID-2=NM': must name a field of OBX, the segment of the path");
    s = (validate_field_spec){.path = "OBX-5", .has_min = true, .has_max = true, .min = 5, .max = 1};
    assert_int_equal(validate_profile_add_field(p, &s, &err), VALIDATE_ERR_VALUE);
    s = (validate_field_spec){.path = "PID-8", .table = "NOPE"};
    assert_int_equal(validate_profile_add_field(p, &s, &err), VALIDATE_OK);
    validator *v = validator_new(NULL);
    assert_int_equal(validator_add_profile(v, p, &err), VALIDATE_ERR_TABLE);
    assert_string_equal(err.text, "profile *, PID-8: table 'NOPE' is not built in and was not "
                                  "loaded (add it under 'tables:')");
    assert_int_equal(validator_add_sex_rule(v, "X*", NULL, "Q", &err), VALIDATE_ERR_VALUE);
    assert_int_equal(validator_add_sex_rule(v, "*", NULL, "F", &err), VALIDATE_ERR_VALUE);
    assert_int_equal(validator_add_sex_rule(v, "A*B", NULL, "F", &err), VALIDATE_ERR_VALUE);
    assert_int_equal(validator_add_age_rule(v, "X", NULL, 10, 5, &err), VALIDATE_ERR_VALUE);
    assert_int_equal(validator_add_limit(v, "X", NULL, 10, 5, &err), VALIDATE_ERR_VALUE);
    validator_free(v);
}

/* --- structure ------------------------------------------------------------------- */

static void test_structure(void **state)
{
    (void)state;
    validator *v = oru_validator();
    validator_set_baseline(v, false);
    /* good: groups repeat, optional parts absent, Z segment anywhere */
    assert_string_equal(run(v, MSH "ORU^R01|1|P|2.5.1\rPID|1\rOBR|1\rOBX|1\rOBX|2\rZZZ|1\r"
                               "ORC|1\rOBR|2\rNTE|1\rOBX|1\rNTE|1\rNTE|2\r"),
                        "");
    /* missing required segment */
    assert_string_equal(run(v, MSH "ORU^R01|1|P|2.5.1\rOBR|1\rOBX|1\r"),
                        "PID: error: required segment PID missing (expected before OBR, ORU^R01 "
                        "structure)\n");
    /* missing required group at the end */
    assert_string_equal(run(v, MSH "ORU^R01|1|P|2.5.1\rPID|1\rPV1|1\r"),
                        "OBR: error: required segment OBR missing (expected at the end, ORU^R01 "
                        "structure)\n");
    /* too many repetitions of a non-repeating segment */
    assert_string_equal(run(v, MSH "ORU^R01|1|P|2.5.1\rPID|1\rPV1|1\rPV1|2\rOBR|1\rOBX|1\r"),
                        "PV1[2]: error: segment PV1 repeats, but the ORU^R01 structure allows one "
                        "here\n");
    /* wrong order, unknown segment */
    assert_string_equal(run(v, MSH "ORU^R01|1|P|2.5.1\rPID|1\rOBR|1\rOBX|1\rPV1|1\rAL1|1\r"),
                        "PV1: error: segment PV1 out of order after OBX (ORU^R01 structure)\n"
                        "AL1: error: segment AL1 is not in the ORU^R01 structure\n");
    /* another message type: the profile does not apply */
    assert_string_equal(run(v, MSH "ADT^A01|1|P|2.5.1\rAL1|1\r"), "");
    /* severity off turns it off */
    validator_set_severity(v, VALIDATE_RULE_STRUCTURE, VALIDATE_SEV_OFF);
    assert_string_equal(run(v, MSH "ORU^R01|1|P|2.5.1\rAL1|1\r"), "");
    validator_free(v);

    /* SEG? SEG+ SEG* suffixes and type-only profiles */
    v = validator_new(NULL);
    validator_set_baseline(v, false);
    validate_profile *p = validate_profile_new("ADT", NULL);
    assert_int_equal(validate_profile_set_structure(p, "MSH EVN PID PD1? NK1* PV1 DG1+", NULL),
                     VALIDATE_OK);
    assert_int_equal(validator_add_profile(v, p, NULL), VALIDATE_OK);
    assert_string_equal(run(v, MSH "ADT^A08|1|P|2.5\rEVN|A08\rPID|1\rNK1|1\rNK1|2\rPV1|1\r"
                               "DG1|1\rDG1|2\r"),
                        "");
    assert_string_equal(run(v, MSH "ADT^A08|1|P|2.5\rEVN|A08\rPID|1\rPD1|1\rPD1|1\rPV1|1\r"),
                        "PD1[2]: error: segment PD1 repeats, but the ADT structure allows one "
                        "here\nDG1: error: required segment DG1 missing (expected at the end, ADT "
                        "structure)\n");
    validator_free(v);
}

/* --- field specs ------------------------------------------------------------------ */

static void test_field_specs(void **state)
{
    (void)state;
    validator *v = validator_new(NULL);
    validator_set_baseline(v, false);
    validate_profile *p = validate_profile_new("ORU^R01", NULL);
    validate_field_spec specs[] = {
        {.path = "PID-3", .required = true, .type = HL7_TYPE_CX, .max_reps = 2},
        {.path = "PID-3.1", .max_len = 5},
        {.path = "PID-5[1].2", .required = true},
        {.path = "OBX-5", .type = HL7_TYPE_NM, .has_min = true, .has_max = true, .min = 0,
         .max = 1000, .when = "OBX-2=NM"},
        {.path = "OBX[2]-4", .required = true},
        {.path = "PID-8", .table = "0001"},
        {.path = "PV1-3.2", .type = HL7_TYPE_HD},
    };
    for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++)
        assert_int_equal(validate_profile_add_field(p, &specs[i], NULL), VALIDATE_OK);
    assert_int_equal(validator_add_profile(v, p, NULL), VALIDATE_OK);

    assert_string_equal(run(v, MSH "ORU^R01|1|P|2.5.1\rPID|1||1^^^H^MR||DOE^J||||F\r"
                               "OBX|1|NM|||5\rOBX|2|ST|||abc|\rOBX|3|NM|||1000\r"),
                        "OBX[2]-4: error: required field OBX-4 missing\n");
    assert_string_equal(
        run(v, MSH "ORU^R01|1|P|2.5.1\rPID|1||~^^^H^MR~123456~4||DOE|||Q\rPV1|1||W^x&1.02&ISO\r"
                   "OBX|1|NM|||abc\rOBX|2|NM||1|-1\rOBX|3|NM|||1000.5\rOBX|4|ST|||-5\r"),
        "PID-3: error: field repeats 4 times, at most 2 allowed\n"
        "PID-3[2].1: error: CX: ID number (CX-1) missing\n"
        "PID-3[3].1: error: too long: 6 characters, at most 5 allowed\n"
        "PID-5.2: error: required PID-5.2 missing\n"
        "PID-8: error: 'Q' is not in table 0001 (Administrative Sex)\n"
        "PV1-3.2.2: error: HD: universal ID '1.02' of type ISO is not an OID (digits and dots, e.g. "
        "2.16.840.1.113883)\n"
        "OBX-5: error: NM: not a number: 'abc'\n"
        "OBX[2]-5: error: -1 is below the minimum 0\n"
        "OBX[3]-5: error: 1000.5 is above the maximum 1000\n");
    /* missing required field entirely, explicit null "" counts as present */
    assert_string_equal(run(v, MSH "ORU^R01|1|P|2.5.1\rPID|1||\"\"||\"\"\r"), "");
    assert_string_equal(run(v, MSH "ORU^R01|1|P|2.5.1\rPID|1\r"),
                        "PID-3: error: required field PID-3 missing\n"
                        "PID-5.2: error: required field PID-5 missing\n");
    validator_free(v);
}

static void test_escapes_and_lengths(void **state)
{
    (void)state;
    validator *v = validator_new(NULL);
    validator_set_baseline(v, false);
    validate_profile *p = validate_profile_new("*", NULL);
    validate_field_spec s1 = {.path = "NTE-3", .max_len = 5};
    validate_field_spec s2 = {.path = "PID-8", .table = "0001"};
    assert_int_equal(validate_profile_add_field(p, &s1, NULL), VALIDATE_OK);
    assert_int_equal(validate_profile_add_field(p, &s2, NULL), VALIDATE_OK);
    assert_int_equal(validator_add_profile(v, p, NULL), VALIDATE_OK);
    /* \T\ decodes to one character: "a&b" is 3 long; "F" written as \X46\ is found */
    assert_string_equal(run(v, MSH "ADT^A08|1|P|2.5\rPID|1||||||||\\X46\\\rNTE|1||a\\T\\b\r"), "");
    assert_string_equal(run(v, MSH "ADT^A08|1|P|2.5\rNTE|1||abc\\T\\def\r"),
                        "NTE-3: error: too long: 7 characters, at most 5 allowed\n");
    validator_free(v);
}

/* --- baseline ---------------------------------------------------------------------- */

static void test_baseline(void **state)
{
    (void)state;
    validator *v = validator_new(NULL);
    assert_string_equal(run(v, MSH "ADT^A01|1|P|2.5.1\rPID|1||1^^^H^MR||DOE^J||19800101|M\r"
                               "PV1|1|I\rOBX|1|NM|X||7||||||F\r"),
                        "");
    assert_string_equal(
        run(v, "MSH|^~\\&|A|B|C|D|2024||FOO^Z99|1|X|9.9\rPID|1||^^^H^XX||^J||1980013|Y\r"
               "PV1|1|Q\rOBX|1|NM|X||12,5||||||Z\rOBX|2|XX|X||y|||N~BAD|||F\r"),
        "MSH-9.1: error: 'FOO' is not in table 0076 (Message Type)\n"
        "MSH-9.2: error: 'Z99' is not in table 0003 (Event Type)\n"
        "MSH-11: error: 'X' is not in table 0103 (Processing ID)\n"
        "MSH-12: error: '9.9' is not in table 0104 (Version ID)\n"
        "PID-3.1: error: CX: ID number (CX-1) missing\n"
        "PID-5.1: error: XPN: family name (XPN-1) missing\n"
        "PID-7: error: TS: not a date/time (YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]): "
        "'1980013'\n"
        "PID-8: error: 'Y' is not in table 0001 (Administrative Sex)\n"
        "PV1-2: error: 'Q' is not in table 0004 (Patient Class)\n"
        "OBX-5: error: NM: not a number: '12,5'\n"
        "OBX-11: error: 'Z' is not in table 0085 (Observation Result Status)\n"
        "OBX[2]-2: error: 'XX' is not in table 0125 (Value Type)\n"
        "OBX[2]-8[2]: error: 'BAD' is not in table 0078 (Abnormal Flags)\n");
    /* the CX-5 table check inside PID-3 counts as the table rule */
    assert_string_equal(run(v, MSH "ADT^A01|1|P|2.5.1\rPID|1||1^^^H^ZZ\r"),
                        "PID-3.5: error: CX: 'ZZ' is not in table 0203 (Identifier Type)\n");
    assert_string_equal(run(v, "MSH|^~\\&|A|B|C|D|||ADT^A01||P|2.5\r"),
                        "MSH-7: error: required field MSH-7 missing\n"
                        "MSH-10: error: required field MSH-10 missing\n");
    validator_set_baseline(v, false);
    assert_string_equal(run(v, "MSH|^~\\&|A|B|C|D|||ADT^A01||P|2.5\r"), "");
    validator_free(v);
}

/* --- consistency rules ------------------------------------------------------------ */

static void test_birth_and_death(void **state)
{
    (void)state;
    validator *v = validator_new(NULL);
    /* NOW is 2025-01-01T00:00Z */
    assert_string_equal(run(v, MSH "ADT^A01|1|P|2.5\rPID|1||1||D^J||20241231\r"), "");
    assert_string_equal(run(v, MSH "ADT^A01|1|P|2.5\rPID|1||1||D^J||2025\r"), "");
    assert_string_equal(run(v, MSH "ADT^A01|1|P|2.5\rPID|1||1||D^J||20250102\r"),
                        "PID-7: error: birth date 20250102 is in the future\n");
    /* with an offset the instant counts: 2025-01-01T00:30+0100 is 2024-12-31T23:30Z */
    assert_string_equal(run(v, MSH "ADT^A01|1|P|2.5\rPID|1||1||D^J||202501010030+0100\r"), "");
    assert_string_equal(run(v, MSH "ADT^A01|1|P|2.5\rPID|1||1||D^J||202501010030+0000\r"),
                        "PID-7: error: birth date 202501010030+0000 is in the future\n");
    /* local offset of the validator for values without one */
    validator_set_local_offset(v, 120);
    assert_string_equal(run(v, MSH "ADT^A01|1|P|2.5\rPID|1||1||D^J||202501010130\r"), "");
    validator_set_local_offset(v, 0);

    assert_string_equal(run(v, MSH "ADT^A03|1|P|2.5\rPID|1||1||D^J||19800101|F"
                                   "|||||||||||||||||||||19800101\r"),
                        "");
    assert_string_equal(run(v, MSH "ADT^A03|1|P|2.5\rPID|1||1||D^J||19800101|F"
                                   "|||||||||||||||||||||1979\r"),
                        "PID-29: error: death date 1979 is before the birth date 19800101\n");
    validator_set_severity(v, VALIDATE_RULE_DEATH_BEFORE_BIRTH, VALIDATE_SEV_WARNING);
    assert_string_equal(run(v, MSH "ADT^A03|1|P|2.5\rPID|1||1||D^J||19800101|F"
                                   "|||||||||||||||||||||1979\r"),
                        "PID-29: warning: death date 1979 is before the birth date 19800101\n");
    validator_free(v);
}

static void test_before_birth(void **state)
{
    (void)state;
    validator *v = validator_new(NULL);
    const char *msg = MSH "ORU^R01|1|P|2.5\rPID|1||1||D^J||20240501\r"
                          "PV1|1|I||||||||||||||||||||||||||||||||||||||||||20240430\r"
                          "OBR|1||||||20240501\rOBX|1|ST|X||a||||||F|||20240415\r"
                          "PID|2||2||D^K||2020\rOBX|1|ST|X||a||||||F|||20240415\r";
    assert_string_equal(run(v, msg),
                        "PV1-44: error: admission date 20240430 is before the birth date 20240501\n"
                        "OBX-14: error: observation date 20240415 is before the birth date "
                        "20240501\n");
    validator_set_severity(v, VALIDATE_RULE_BEFORE_BIRTH, VALIDATE_SEV_OFF);
    assert_string_equal(run(v, msg), "");
    validator_free(v);
}

static void test_sex_specific(void **state)
{
    (void)state;
    validator *v = validator_new(NULL);
    const char *male_o80 = MSH "ADT^A01|1|P|2.5\rPID|1||1||D^J||1980|M\rDG1|1||O80^x^I10\r";
    assert_string_equal(run(v, male_o80),
                        "DG1-3.1: warning: code O80 is specific to female patients, but PID-8 is M\n");
    /* F patient, unknown sex, other coding system: fine */
    assert_string_equal(run(v, MSH "ADT^A01|1|P|2.5\rPID|1||1||D^J||1980|F\rDG1|1||O80^x^I10\r"), "");
    assert_string_equal(run(v, MSH "ADT^A01|1|P|2.5\rPID|1||1||D^J||1980|U\rDG1|1||O80^x^I10\r"), "");
    assert_string_equal(run(v, MSH "ADT^A01|1|P|2.5\rPID|1||1||D^J||1980|M\rDG1|1||O80^x^L\r"), "");
    /* LOINC in OBX-3, alternate identifier */
    assert_string_equal(run(v, MSH "ORU^R01|1|P|2.5\rPID|1||1||D^J||1980|F\r"
                                   "OBX|1|NM|L1^PSA^L^2857-1^PSA^LN||1||||||F\r"),
                        "OBX-3.4: warning: code 2857-1 is specific to male patients, but PID-8 is "
                        "F\n");
    /* a configured list replaces the defaults */
    validator_clear_sex_rules(v);
    assert_string_equal(run(v, male_o80), "");
    assert_int_equal(validator_add_sex_rule(v, "PAP", "L", "F", NULL), VALIDATE_OK);
    assert_string_equal(run(v, MSH "ORU^R01|1|P|2.5\rPID|1||1||D^J||1980|M\r"
                                   "OBX|1|ST|PAP^Pap smear^L||x||||||F\r"),
                        "OBX-3.1: warning: code PAP is specific to female patients, but PID-8 is "
                        "M\n");
    validator_set_severity(v, VALIDATE_RULE_SEX_SPECIFIC, VALIDATE_SEV_ERROR);
    assert_string_equal(run(v, MSH "ORU^R01|1|P|2.5\rPID|1||1||D^J||1980|M\r"
                                   "OBX|1|ST|PAP^Pap smear^L||x||||||F\r"),
                        "OBX-3.1: error: code PAP is specific to female patients, but PID-8 is M\n");
    validator_free(v);
}

static void test_age_restricted(void **state)
{
    (void)state;
    validator *v = validator_new(NULL);
    assert_string_equal(run(v, MSH "ADT^A01|1|P|2.5\rPID|1||1||D^J||20210301|M\r"
                                   "DG1|1||N40.0^BPH^I10\r"),
                        "DG1-3.1: warning: diagnosis N40.0 is for ages 15 to 124, but the patient "
                        "is 3\n");
    assert_string_equal(run(v, MSH "ADT^A01|1|P|2.5\rPID|1||1||D^J||19500301|M\r"
                                   "DG1|1||N40.0^BPH^I10\r"),
                        "");
    /* DG1-5 is the reference date when valued */
    assert_string_equal(run(v, MSH "ADT^A01|1|P|2.5\rPID|1||1||D^J||20210301|M\r"
                                   "DG1|1||Z38.00^x^I10||20210305\rDG1|2||Z38.00^x^I10\r"),
                        "DG1[2]-3.1: warning: diagnosis Z38.00 is for ages 0 to 0, but the patient "
                        "is 3\n");
    validator_clear_age_rules(v);
    assert_int_equal(validator_add_age_rule(v, "R54", NULL, 50, 130, NULL), VALIDATE_OK);
    assert_string_equal(run(v, MSH "ADT^A01|1|P|2.5\rPID|1||1||D^J||2000|M\rDG1|1||R54\r"),
                        "DG1-3.1: warning: diagnosis R54 is for ages 50 to 130, but the patient is "
                        "24\n");
    validator_free(v);
}

static void test_physiologic(void **state)
{
    (void)state;
    validator *v = validator_new(NULL);
    assert_string_equal(run(v, MSH "ORU^R01|1|P|2.5\rOBX|1|NM|8867-4^HR^LN||72|/min||||F\r"
                                   "OBX|2|NM|8310-5^T^LN||98.6|[degF]||||F\r"
                                   "OBX|3|NM|8310-5^T^LN||37|Cel||||F\r"
                                   "OBX|4|ST|8867-4^HR^LN||900|/min||||F\r"
                                   "OBX|5|NM|8310-5^T^LN||900|K||||F\r"),
                        "");
    assert_string_equal(run(v, MSH "ORU^R01|1|P|2.5\rOBX|1|NM|8867-4^HR^LN||400|/min||||F\r"
                                   "OBX|2|NM|8310-5^T^LN||98.6|Cel||||F\r"
                                   "OBX|3|NM|29463-7^W^LN||1600|[lb_av]||||F\r"
                                   "OBX|4|NM|8480-6^SBP^LN||20|||||F\r"),
                        "OBX-5: warning: 8867-4 value 400 /min is outside the physiologic limits "
                        "20 to 300\n"
                        "OBX[2]-5: warning: 8310-5 value 98.6 Cel is outside the physiologic "
                        "limits 25 to 45\n"
                        "OBX[3]-5: warning: 29463-7 value 1600 [lb_av] is outside the physiologic "
                        "limits 0.5 to 1500\n"
                        "OBX[4]-5: warning: 8480-6 value 20 is outside the physiologic limits 40 "
                        "to 300\n");
    validator_clear_limits(v);
    assert_int_equal(validator_add_limit(v, "GLU", "mmol/L", 0.5, 60, NULL), VALIDATE_OK);
    assert_string_equal(run(v, MSH "ORU^R01|1|P|2.5\rOBX|1|NM|8867-4^HR^LN||400|/min||||F\r"
                                   "OBX|2|NM|GLU^Glucose^L||70|mmol/L||||F\r"
                                   "OBX|3|NM|GLU^Glucose^L||70|mg/dL||||F\r"),
                        "OBX[2]-5: warning: GLU value 70 mmol/L is outside the physiologic limits "
                        "0.5 to 60\n");
    validator_free(v);
}

/* The rule lists are looked up through a filter on the first two bytes of
 * a code: one-byte codes and patterns, one-byte prefixes and codes that
 * share only a first byte with a rule must come out as without it. */
static void test_code_rule_filter(void **state)
{
    (void)state;
    validator *v = validator_new(NULL);
    validator_clear_sex_rules(v);
    validator_clear_limits(v);
    const char *pats[] = {"X", "Q*", "AB*", "CD1"};
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(validator_add_sex_rule(v, pats[i], NULL, "F", NULL), VALIDATE_OK);
    assert_int_equal(validator_add_limit(v, "Z", NULL, 0, 1, NULL), VALIDATE_OK);
    assert_string_equal(run(v, MSH "ORU^R01|1|P|2.5\rPID|1||1||D^J||1980|M\r"
                                   "OBX|1|NM|X||0||||||F\rOBX|2|NM|XY||0||||||F\r"
                                   "OBX|3|NM|Q||0||||||F\rOBX|4|NM|QZZ||0||||||F\r"
                                   "OBX|5|NM|AB||0||||||F\rOBX|6|NM|ABC||0||||||F\r"
                                   "OBX|7|NM|AC||0||||||F\rOBX|8|NM|A||0||||||F\r"
                                   "OBX|9|NM|CD1||0||||||F\rOBX|10|NM|CD||0||||||F\r"
                                   "OBX|11|NM|CD12||0||||||F\rOBX|12|NM|x^y^L^AB9||0||||||F\r"
                                   "OBX|13|NM|Z||5||||||F\rOBX|14|NM|ZZ||5||||||F\r"),
                        "OBX-3.1: warning: code X is specific to female patients, but PID-8 is M\n"
                        "OBX[3]-3.1: warning: code Q is specific to female patients, but PID-8 is "
                        "M\n"
                        "OBX[4]-3.1: warning: code QZZ is specific to female patients, but PID-8 "
                        "is M\n"
                        "OBX[5]-3.1: warning: code AB is specific to female patients, but PID-8 is "
                        "M\n"
                        "OBX[6]-3.1: warning: code ABC is specific to female patients, but PID-8 "
                        "is M\n"
                        "OBX[9]-3.1: warning: code CD1 is specific to female patients, but PID-8 "
                        "is M\n"
                        "OBX[12]-3.4: warning: code AB9 is specific to female patients, but PID-8 "
                        "is M\n"
                        "OBX[13]-5: warning: Z value 5 is outside the physiologic limits 0 to 1\n");
    validator_free(v);
}

/* With a CWE rule on OBX-3 the field is split before the consistency rules
 * look at its codes: a code with a rule must still be found, in OBX-3.1 or
 * OBX-3.4 (and the rule's coding system still asked for). */
static void test_sex_specific_with_cwe_rule(void **state)
{
    (void)state;
    validator *v = validator_new(NULL);
    validate_error err;
    validate_profile *p = validate_profile_new("ORU^R01", &err);
    validate_field_spec f = {.path = "OBX-3", .required = true, .type = HL7_TYPE_CWE};
    assert_int_equal(validate_profile_add_field(p, &f, &err), VALIDATE_OK);
    assert_int_equal(validator_add_profile(v, p, &err), VALIDATE_OK);
    assert_string_equal(run(v, MSH "ORU^R01|1|P|2.5\rPID|1||1||D^J||1980|F\r"
                                   "OBX|1|NM|2345-7^GLU^LN||1||||||F\r"
                                   "OBX|2|NM|2857-1^PSA^LN||1||||||F\r"
                                   "OBX|3|NM|L1^PSA^L^2857-1^PSA^LN||1||||||F\r"
                                   "OBX|4|NM|2857-1^^LN||1||||||F\r"
                                   "OBX|5|NM|2857-1||1||||||F\r"),
                        "OBX[2]-3.1: warning: code 2857-1 is specific to male patients, but PID-8 "
                        "is F\n"
                        "OBX[3]-3.4: warning: code 2857-1 is specific to male patients, but PID-8 "
                        "is F\n"
                        "OBX[4]-3.1: warning: code 2857-1 is specific to male patients, but PID-8 "
                        "is F\n");
    validator_free(v);
}

/* --- output ---------------------------------------------------------------------- */

static void test_format_and_ack(void **state)
{
    (void)state;
    validator *v = validator_new(NULL);
    hl7_msg *m = parse_ok(MSH "ADT^A01|1|P|2.5.1\rPID|1||1^^^H^MR~^^^H^MR||D^J||20990101|X\r"
                              "DG1|1||O80^x^I10\r");
    validate_result r = VALIDATE_RESULT_INIT;
    assert_int_equal(validate_message(v, m, NOW, &r), 3);
    assert_int_equal(r.n, 3);
    assert_int_equal(r.nerrors, 3);
    assert_int_equal(r.nwarnings, 0); /* PID-8 X: no sex rule applies */
    const validate_problem *p = &r.v[0];
    assert_string_equal(p->path, "PID-3[2].1");
    assert_string_equal(p->where.seg, "PID");
    assert_int_equal(p->where.seg_occ, 1);
    assert_int_equal(p->where.field, 3);
    assert_int_equal(p->where.rep, 2);
    assert_int_equal(p->where.comp, 1);
    assert_int_equal(p->seg_index, 1);
    assert_int_equal(p->rule, VALIDATE_RULE_REQUIRED);
    assert_int_equal(p->code, HL7_ACK_ERR_REQUIRED_FIELD);
    assert_int_equal(r.v[1].code, HL7_ACK_ERR_TABLE_VALUE);
    assert_int_equal(r.v[2].rule, VALIDATE_RULE_BIRTH_FUTURE);
    assert_int_equal(r.v[2].code, HL7_ACK_ERR_INTERNAL);
    tbuf b = TBUF_INIT;
    validate_problem_format(&r.v[2], &b);
    assert_string_equal(b.p, "PID-7: error: birth date 20990101 is in the future");

    validator_set_severity(v, VALIDATE_RULE_TABLE, VALIDATE_SEV_WARNING);
    assert_int_equal(validate_message(v, m, NOW, &r), 2);
    hl7_ack_problem ap[4];
    assert_int_equal(validate_ack_problems(&r, ap, 4), 2);
    assert_int_equal(validate_ack_problems(&r, ap, 1), 2);
    assert_string_equal(ap[0].where.seg, "PID");
    assert_int_equal(ap[0].code, HL7_ACK_ERR_REQUIRED_FIELD);
    assert_int_equal(ap[0].severity, HL7_ACK_SEV_ERROR);
    assert_ptr_equal(ap[0].text, r.v[0].text);
    assert_int_equal(validate_ack_problems(&r, ap, 4), 2);
    assert_int_equal(ap[1].code, HL7_ACK_ERR_INTERNAL);

    /* the problems make a valid ACK */
    hl7_ack_opts o = {.problems = ap, .nproblems = 2, .timestamp = "20250101000000",
                      .control_id = "ACK1"};
    tbuf ack = TBUF_INIT;
    hl7_error err;
    assert_int_equal(hl7_ack_build(m, &o, &ack, &err), HL7_OK);
    assert_non_null(strstr(ack.p, "MSA|AE|1"));
    assert_non_null(strstr(ack.p, "ERR||PID^1^3^2^1|101^Required field missing^HL70357|E"));
    tbuf_free(&ack);

    /* a reused result does not grow */
    validate_problem *before = r.v;
    size_t cap = r.cap;
    for (int i = 0; i < 100; i++) validate_message(v, m, NOW, &r);
    assert_ptr_equal(r.v, before);
    assert_int_equal(r.cap, cap);
    tbuf_free(&b);
    validate_result_free(&r);
    hl7_msg_free(m);
    validator_free(v);
}

/* --- the shortcuts of the clean path ---------------------------------------------- */

/* Messages for the validator's shortcuts: fields read as delimiter masks
 * up to and across 16, 32 and 64 bytes; fields at the end of the message
 * and in segments shorter than 16 bytes; messages without an escape or a
 * repetition character; conditions asked only when a value is not clean;
 * long repeating composites; a table on a component; several problems in
 * one segment, reported in profile order; one-segment groups of a
 * structure; texts remembered around a wrong value. Each must give what
 * checking every spec the long way gives (recorded here). */
#define SC_MSH "MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240601120000||ORU^R01|1|P|2.5.1\r"
#define SC_PID "PID|1||1234566^^M10^HOSP&2.16.840.1.113883.3.72&ISO^MR||DOE^JANE||19800115|F\r"
#define SC_OBR "OBR|1|||24323-8^Panel^LN|||20240601080000\r"
#define SC_OBX(n, type, code, value, units, flag)                                                 \
    "OBX|" n "|" type "|" code "||" value "|" units "||" flag "|||F|||20240601080000\r"

static validator *shortcut_validator(void)
{
    static const validate_field_spec specs[] = {
        {.path = "OBX-3", .required = true, .type = HL7_TYPE_CWE},
        {.path = "OBX-5", .required = true, .type = HL7_TYPE_NM, .has_min = true, .min = 0,
         .has_max = true, .max = 1000, .when = "OBX-2=NM"},
        {.path = "PID-3", .type = HL7_TYPE_CX, .max_reps = 9},
        {.path = "PID-5", .required = true, .type = HL7_TYPE_XPN},
        {.path = "MSH-9.2", .required = true, .table = "0003"},
        {.path = "OBX-8", .table = "0078"},
        {.path = "OBX-14", .type = HL7_TYPE_TS},
        {.path = "NTE-3", .max_len = 20},
        {.path = "OBX-6", .type = HL7_TYPE_CE},
    };
    validator *v = oru_validator();
    validate_profile *p = validate_profile_new("*", NULL);
    for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++)
        assert_int_equal(validate_profile_add_field(p, &specs[i], NULL), VALIDATE_OK);
    assert_int_equal(validator_add_profile(v, p, NULL), VALIDATE_OK);
    return v;
}

static void test_shortcuts(void **state)
{
    (void)state;
    static const struct {
        const char *name, *msg, *expect;
    } cases[] = {
        {"clean",
         SC_MSH
         SC_PID
         SC_OBR
         SC_OBX("1", "NM", "2345-7^Glucose^LN", "112", "mg/dL", "N")
         SC_OBX("2", "NM", "2160-0^Creatinine^LN", "0.92", "mg/dL", "N")
         SC_OBX("3", "NM", "2345-7^Glucose^LN", "112", "mg/dL", "N"),
         ""},
        {"OBX-3 of 15 bytes",
         SC_MSH
         SC_PID
         SC_OBR
         SC_OBX("1", "NM", "99999999999^^LN", "112", "mg/dL", "N")
         SC_OBX("2", "NM", "9999999999^^L N", "112", "mg/dL", "N")
         SC_OBX("3", "NM", "9999999^T^^^^L!", "112", "mg/dL", "N")
         SC_OBX("4", "NM", "99999999999999^", "112", "mg/dL", "N"),
         "OBX[2]-3.3: error: CWE: coding system 'L N' is not a code (letters, digits, '-', '_', '.')\n"
         "OBX[3]-3.4: error: CWE: coding system 'L!' (CWE-6) given without an identifier (CWE-4)\n"},
        {"OBX-3 of 16 bytes",
         SC_MSH
         SC_PID
         SC_OBR
         SC_OBX("1", "NM", "999999999999^^LN", "112", "mg/dL", "N")
         SC_OBX("2", "NM", "99999999999^^L N", "112", "mg/dL", "N")
         SC_OBX("3", "NM", "99999999^T^^^^L!", "112", "mg/dL", "N")
         SC_OBX("4", "NM", "999999999999999^", "112", "mg/dL", "N"),
         "OBX[2]-3.3: error: CWE: coding system 'L N' is not a code (letters, digits, '-', '_', '.')\n"
         "OBX[3]-3.4: error: CWE: coding system 'L!' (CWE-6) given without an identifier (CWE-4)\n"},
        {"OBX-3 of 17 bytes",
         SC_MSH
         SC_PID
         SC_OBR
         SC_OBX("1", "NM", "9999999999999^^LN", "112", "mg/dL", "N")
         SC_OBX("2", "NM", "999999999999^^L N", "112", "mg/dL", "N")
         SC_OBX("3", "NM", "999999999^T^^^^L!", "112", "mg/dL", "N")
         SC_OBX("4", "NM", "9999999999999999^", "112", "mg/dL", "N"),
         "OBX[2]-3.3: error: CWE: coding system 'L N' is not a code (letters, digits, '-', '_', '.')\n"
         "OBX[3]-3.4: error: CWE: coding system 'L!' (CWE-6) given without an identifier (CWE-4)\n"},
        {"OBX-3 of 31 bytes",
         SC_MSH
         SC_PID
         SC_OBR
         SC_OBX("1", "NM", "999999999999999999999999999^^LN", "112", "mg/dL", "N")
         SC_OBX("2", "NM", "99999999999999999999999999^^L N", "112", "mg/dL", "N")
         SC_OBX("3", "NM", "99999999999999999999999^T^^^^L!", "112", "mg/dL", "N")
         SC_OBX("4", "NM", "999999999999999999999999999999^", "112", "mg/dL", "N"),
         "OBX[2]-3.3: error: CWE: coding system 'L N' is not a code (letters, digits, '-', '_', '.')\n"
         "OBX[3]-3.4: error: CWE: coding system 'L!' (CWE-6) given without an identifier (CWE-4)\n"},
        {"OBX-3 of 32 bytes",
         SC_MSH
         SC_PID
         SC_OBR
         SC_OBX("1", "NM", "9999999999999999999999999999^^LN", "112", "mg/dL", "N")
         SC_OBX("2", "NM", "999999999999999999999999999^^L N", "112", "mg/dL", "N")
         SC_OBX("3", "NM", "999999999999999999999999^T^^^^L!", "112", "mg/dL", "N")
         SC_OBX("4", "NM", "9999999999999999999999999999999^", "112", "mg/dL", "N"),
         "OBX[2]-3.3: error: CWE: coding system 'L N' is not a code (letters, digits, '-', '_', '.')\n"
         "OBX[3]-3.4: error: CWE: coding system 'L!' (CWE-6) given without an identifier (CWE-4)\n"},
        {"OBX-3 of 33 bytes",
         SC_MSH
         SC_PID
         SC_OBR
         SC_OBX("1", "NM", "99999999999999999999999999999^^LN", "112", "mg/dL", "N")
         SC_OBX("2", "NM", "9999999999999999999999999999^^L N", "112", "mg/dL", "N")
         SC_OBX("3", "NM", "9999999999999999999999999^T^^^^L!", "112", "mg/dL", "N")
         SC_OBX("4", "NM", "99999999999999999999999999999999^", "112", "mg/dL", "N"),
         "OBX[2]-3.3: error: CWE: coding system 'L N' is not a code (letters, digits, '-', '_', '.')\n"
         "OBX[3]-3.4: error: CWE: coding system 'L!' (CWE-6) given without an identifier (CWE-4)\n"},
        {"OBX-3 of 63 bytes",
         SC_MSH
         SC_PID
         SC_OBR
         SC_OBX("1", "NM", "99999999999999999999999999999999999999999999999999999999999^^LN", "112", "mg/dL", "N")
         SC_OBX("2", "NM", "9999999999999999999999999999999999999999999999999999999999^^L N", "112", "mg/dL", "N")
         SC_OBX("3", "NM", "9999999999999999999999999999999999999999999999999999999^T^^^^L!", "112", "mg/dL", "N")
         SC_OBX("4", "NM", "99999999999999999999999999999999999999999999999999999999999999^", "112", "mg/dL", "N"),
         "OBX[2]-3.3: error: CWE: coding system 'L N' is not a code (letters, digits, '-', '_', '.')\n"
         "OBX[3]-3.4: error: CWE: coding system 'L!' (CWE-6) given without an identifier (CWE-4)\n"},
        {"OBX-3 of 64 bytes",
         SC_MSH
         SC_PID
         SC_OBR
         SC_OBX("1", "NM", "999999999999999999999999999999999999999999999999999999999999^^LN", "112", "mg/dL", "N")
         SC_OBX("2", "NM", "99999999999999999999999999999999999999999999999999999999999^^L N", "112", "mg/dL", "N")
         SC_OBX("3", "NM", "99999999999999999999999999999999999999999999999999999999^T^^^^L!", "112", "mg/dL", "N")
         SC_OBX("4", "NM", "999999999999999999999999999999999999999999999999999999999999999^", "112", "mg/dL", "N"),
         "OBX[2]-3.3: error: CWE: coding system 'L N' is not a code (letters, digits, '-', '_', '.')\n"
         "OBX[3]-3.4: error: CWE: coding system 'L!' (CWE-6) given without an identifier (CWE-4)\n"},
        {"OBX-3 of 65 bytes",
         SC_MSH
         SC_PID
         SC_OBR
         SC_OBX("1", "NM", "9999999999999999999999999999999999999999999999999999999999999^^LN", "112", "mg/dL", "N")
         SC_OBX("2", "NM", "999999999999999999999999999999999999999999999999999999999999^^L N", "112", "mg/dL", "N")
         SC_OBX("3", "NM", "999999999999999999999999999999999999999999999999999999999^T^^^^L!", "112", "mg/dL", "N")
         SC_OBX("4", "NM", "9999999999999999999999999999999999999999999999999999999999999999^", "112", "mg/dL", "N"),
         "OBX[2]-3.3: error: CWE: coding system 'L N' is not a code (letters, digits, '-', '_', '.')\n"
         "OBX[3]-3.4: error: CWE: coding system 'L!' (CWE-6) given without an identifier (CWE-4)\n"},
        {"alternate codes",
         SC_MSH
         SC_PID
         SC_OBR
         SC_OBX("1", "NM", "^^LN", "112", "mg/dL", "N")
         SC_OBX("2", "NM", "A^^^^^LN", "112", "mg/dL", "N")
         SC_OBX("3", "NM", "A^^^B^^L:N.1-_", "112", "mg/dL", "N")
         SC_OBX("4", "NM", "^T", "112", "mg/dL", "N")
         SC_OBX("5", "NM", "^^^^T^LN", "112", "mg/dL", "N")
         SC_OBX("6", "NM", "^^^^^", "112", "mg/dL", "N"),
         "OBX-3.1: error: CWE: identifier (CWE-1) or text (CWE-2) required\n"
         "OBX[2]-3.4: error: CWE: coding system 'LN' (CWE-6) given without an identifier (CWE-4)\n"
         "OBX[5]-3.4: error: CWE: coding system 'LN' (CWE-6) given without an identifier (CWE-4)\n"
         "OBX[6]-3.1: error: CWE: identifier (CWE-1) or text (CWE-2) required\n"},
        {"fields at the end of the message",
         SC_MSH
         SC_PID
         SC_OBR
         "OBX|1|NM|A^B^LN||1\rOBX|2|NM|A^B^L N||x",
         "OBX[2]-5: error: NM: not a number: 'x'\n"
         "OBX[2]-3.3: error: CWE: coding system 'L N' is not a code (letters, digits, '-', '_', '.')\n"
         "OBX[2]-5: error: NM: not a number: 'x'\n"},
        {"segments under 16 bytes",
         SC_MSH
         SC_PID
         SC_OBR
         "OBX|1|NM|A||2\rNTE|1||ab^c",
         ""},
        {"no escape character",
         "MSH|^~|LAB|HOSP|EHR|HOSP|20240601120000||ORU^R01|1|P|2.5.1\r"
         SC_PID
         SC_OBR
         SC_OBX("1", "NM", "A\\B^x^LN", "1\\2", "mg/dL", "N")
         SC_OBX("2", "NM", "A~B^x^LN", "112", "mg/dL", "N")
         SC_OBX("3", "NM", "C^x^L\\N", "112", "mg/dL", "N"),
         "OBX-5: error: NM: not a number: '1\\2'\n"
         "OBX-5: error: NM: not a number: '1\\2'\n"
         "OBX[3]-3.3: error: CWE: coding system 'L\\N' is not a code (letters, digits, '-', '_', '.')\n"},
        {"no repetition character",
         "MSH|^|LAB|HOSP|EHR|HOSP|20240601120000||ORU^R01|1|P|2.5.1\r"
         SC_PID
         SC_OBR
         SC_OBX("1", "NM", "A~B^x^LN", "3~4", "mg/dL", "N")
         SC_OBX("2", "NM", "2345-7^G^LN", "112", "mg/dL", "N"),
         "OBX-5: error: NM: not a number: '3~4'\n"
         "OBX-5: error: NM: not a number: '3~4'\n"},
        {"conditions and ranges",
         SC_MSH
         SC_PID
         SC_OBR
         SC_OBX("1", "ST", "2345-7^Glucose^LN", "abc", "mg/dL", "N")
         SC_OBX("2", "NM", "2345-7^Glucose^LN", "abc", "mg/dL", "N")
         SC_OBX("3", "NM", "2345-7^Glucose^LN", "-1", "mg/dL", "N")
         SC_OBX("4", "NM", "2345-7^Glucose^LN", "1001", "mg/dL", "N")
         SC_OBX("5", "NM", "2345-7^Glucose^LN", "", "mg/dL", "N")
         SC_OBX("6", "NM", "2345-7^Glucose^LN", "\"\"", "mg/dL", "N")
         SC_OBX("7", "NM", "2345-7^Glucose^LN", "12.5", "mg/dL", "N")
         SC_OBX("8", "NM", "2345-7^Glucose^LN", ".", "mg/dL", "N")
         SC_OBX("9", "NM", "2345-7^Glucose^LN", "1\\.2", "mg/dL", "N"),
         "OBX[2]-5: error: NM: not a number: 'abc'\n"
         "OBX[2]-5: error: NM: not a number: 'abc'\n"
         "OBX[3]-5: error: -1 is below the minimum 0\n"
         "OBX[4]-5: error: 1001 is above the maximum 1000\n"
         "OBX[5]-5: error: required field OBX-5 missing\n"
         "OBX[8]-5: error: NM: not a number: '.'\n"
         "OBX[8]-5: error: NM: not a number: '.'\n"
         "OBX[9]-5: error: NM: not a number: '1\\.2'\n"
         "OBX[9]-5: error: NM: not a number: '1\\.2'\n"},
        {"nine repetitions past 64 bytes",
         SC_MSH
         "PID|1||1000^^^HOSP^MR~1001^^^HOSP^MR~1002^^^HOSP^MR~1003^^^HOSP^MR~1004^^^HOSP^MR~1005^^^HOSP^MR~1006^^^HOSP^MR~1007^^^HOSP^MR~^^^HOSP^MR||DOE^JANE||19800115|F\r"
         SC_OBR
         SC_OBX("1", "NM", "2345-7^Glucose^LN", "112", "mg/dL", "N"),
         "PID-3[9].1: error: CX: ID number (CX-1) missing\n"
         "PID-3[9].1: error: CX: ID number (CX-1) missing\n"},
        {"too many repetitions",
         SC_MSH
         "PID|1||1000^^^HOSP^MR~1001^^^HOSP^MR~1002^^^HOSP^MR~1003^^^HOSP^MR~1004^^^HOSP^MR~1005^^^HOSP^MR~1006^^^HOSP^MR~1007^^^HOSP^MR~1008^^^HOSP^MR~77^^^HOSP^XX~||DOE^JANE||19800115|F\r"
         SC_OBR
         SC_OBX("1", "NM", "2345-7^Glucose^LN", "112", "mg/dL", "N"),
         "PID-3: error: field repeats 11 times, at most 9 allowed\n"},
        {"XPN repetitions",
         SC_MSH
         "PID|1||1234566^^M10^HOSP&2.16.840.1.113883.3.72&ISO^MR||DOE^J~^JANE~~\"\"||19800115|F\r"
         SC_OBR
         SC_OBX("1", "NM", "2345-7^Glucose^LN", "112", "mg/dL", "N"),
         "PID-5[2].1: error: XPN: family name (XPN-1) missing\n"
         "PID-5[2].1: error: XPN: family name (XPN-1) missing\n"},
        {"MSH-9.2 missing",
         "MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240601120000||ORU|1|P|2.5.1\r"
         SC_PID
         SC_OBR
         SC_OBX("1", "NM", "2345-7^Glucose^LN", "112", "mg/dL", "N"),
         "MSH-9.2: error: required MSH-9.2 missing\n"},
        {"MSH-9.2 unknown",
         "MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240601120000||ORU^R99|1|P|2.5.1\r"
         SC_PID
         SC_OBR
         SC_OBX("1", "NM", "2345-7^Glucose^LN", "112", "mg/dL", "N"),
         "MSH-9.2: error: 'R99' is not in table 0003 (Event Type)\n"
         "MSH-9.2: error: 'R99' is not in table 0003 (Event Type)\n"},
        {"MSH-9.2 escaped",
         "MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240601120000||ORU^R\\T\\01|1|P|2.5.1\r"
         SC_PID
         SC_OBR
         SC_OBX("1", "NM", "2345-7^Glucose^LN", "112", "mg/dL", "N"),
         "MSH-9.2: error: 'R&01' is not in table 0003 (Event Type)\n"
         "MSH-9.2: error: 'R&01' is not in table 0003 (Event Type)\n"},
        {"OBX-8 shapes",
         SC_MSH
         SC_PID
         SC_OBR
         SC_OBX("1", "NM", "2345-7^Glucose^LN", "112", "mg/dL", "N~H")
         SC_OBX("2", "NM", "2345-7^Glucose^LN", "112", "mg/dL", "XX")
         SC_OBX("3", "NM", "2345-7^Glucose^LN", "112", "mg/dL", "N\\E\\")
         SC_OBX("4", "NM", "2345-7^Glucose^LN", "112", "mg/dL", "H")
         SC_OBX("5", "NM", "2345-7^Glucose^LN", "112", "mg/dL", "H"),
         "OBX[2]-8: error: 'XX' is not in table 0078 (Abnormal Flags)\n"
         "OBX[2]-8: error: 'XX' is not in table 0078 (Abnormal Flags)\n"
         "OBX[3]-8: error: 'N\\' is not in table 0078 (Abnormal Flags)\n"
         "OBX[3]-8: error: 'N\\' is not in table 0078 (Abnormal Flags)\n"},
        {"problems in profile order",
         SC_MSH
         SC_PID
         SC_OBR
         SC_OBX("1", "NM", "2345-7^Glucose^LN", "112", "mg/dL", "N")
         SC_OBX("2", "NM", "2345-7^Glucose^LN", "112", "mg/dL", "N")
         SC_OBX("3", "NM", "^^L N", "abc", "mg/dL", "ZZ")
         SC_OBX("4", "NM", "2345-7^Glucose^LN", "112", "mg/dL", "N")
         SC_OBX("5", "NM", "2345-7^Glucose^LN", "112", "^^L!", "N"),
         "OBX[3]-5: error: NM: not a number: 'abc'\n"
         "OBX[3]-8: error: 'ZZ' is not in table 0078 (Abnormal Flags)\n"
         "OBX[3]-3.1: error: CWE: identifier (CWE-1) or text (CWE-2) required\n"
         "OBX[3]-5: error: NM: not a number: 'abc'\n"
         "OBX[3]-8: error: 'ZZ' is not in table 0078 (Abnormal Flags)\n"
         "OBX[5]-6.1: error: CE: identifier (CE-1) or text (CE-2) required\n"},
        {"a one-segment group repeated",
         SC_MSH
         SC_PID
         "PV1|1|O\rPV1|2|O\r"
         SC_OBR
         SC_OBX("1", "NM", "2345-7^Glucose^LN", "112", "mg/dL", "N"),
         "PV1[2]: error: segment PV1 repeats, but the ORU^R01 structure allows one here\n"},
        {"rounds with notes and Z segments",
         SC_MSH
         SC_PID
         SC_OBR
         "NTE|1\rNTE|2\r"
         SC_OBX("1", "NM", "2345-7^Glucose^LN", "112", "mg/dL", "N")
         "NTE|1\r"
         SC_OBX("2", "NM", "2345-7^Glucose^LN", "112", "mg/dL", "N")
         "ZXY|1\r"
         SC_OBX("3", "NM", "2345-7^Glucose^LN", "112", "mg/dL", "N")
         SC_OBX("4", "NM", "2345-7^Glucose^LN", "112", "mg/dL", "N")
         "ZXY|2\r"
         SC_OBX("5", "NM", "2345-7^Glucose^LN", "112", "mg/dL", "N")
         SC_OBR
         SC_OBX("1", "NM", "2345-7^Glucose^LN", "112", "mg/dL", "N")
         "NTE|x\r",
         ""},
        {"a length checked the long way",
         SC_MSH
         SC_PID
         SC_OBR
         "NTE|1||short\rNTE|2||a comment longer than twenty\rNTE|3||short\r"
         SC_OBX("1", "NM", "2345-7^Glucose^LN", "112", "mg/dL", "N"),
         "NTE[2]-3: error: too long: 28 characters, at most 20 allowed\n"},
        {"a wrong value among repeated ones",
         SC_MSH
         SC_PID
         SC_OBR
         SC_OBX("1", "NM", "2345-7^Glucose^LN", "112", "mg/dL", "N")
         SC_OBX("2", "NM", "2345-7^Glucose^LN", "112", "mg/dL", "N")
         SC_OBX("3", "NM", "2345-7^Glucose^LN", "112", "mg/dL", "N")
         SC_OBX("4", "NM", "2345-7^Glucose^LN", "112", "mg/dL", "N")
         SC_OBX("5", "NM", "2345-7^Glucose^LN", "112", "mg/dL", "N")
         SC_OBX("6", "NM", "2345-7^Glucose^LN", "-5", "mg/dL", "N")
         SC_OBX("7", "NM", "2345-7^Glucose^LN", "112", "mg/dL", "N")
         SC_OBX("8", "NM", "2345-7^Glucose^LN", "112", "mg/dL", "N")
         SC_OBX("9", "NM", "2345-7^Glucose^LN", "112", "mg/dL", "N"),
         "OBX[6]-5: error: -5 is below the minimum 0\n"},
    };
    validator *v = shortcut_validator();
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *got = run(v, cases[i].msg);
        if (strcmp(got, cases[i].expect))
            fail_msg("%s:\n%s\nexpected:\n%s", cases[i].name, got, cases[i].expect);
    }
    validator_free(v);
}

/* --- data-driven cases ------------------------------------------------------------ */

/* The validator every file under tests/data/quality is checked with. */
static validator *data_validator(void)
{
    validator *v = oru_validator();
    validate_profile *p = validate_profile_new("ADT", NULL);
    assert_int_equal(validate_profile_set_structure(p, "MSH EVN PID [PV1] [{OBX}] [{DG1}] "
                                                       "[{NTE}] [{PID [PV1] [{OBX}] [{DG1}]}]",
                                                    NULL),
                     VALIDATE_OK);
    assert_int_equal(validator_add_profile(v, p, NULL), VALIDATE_OK);
    return v;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    tbuf b = TBUF_INIT;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) tbuf_put(&b, chunk, n);
    fclose(f);
    return tbuf_detach(&b, len);
}

static size_t run_dir(const char *sub, bool expect_problems)
{
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/tests/data/quality/%s", TERN_SOURCE_DIR, sub);
    DIR *d = opendir(dir);
    assert_non_null(d);
    validator *v = data_validator();
    hl7_msg *m = hl7_msg_new(NULL);
    validate_result r = VALIDATE_RESULT_INIT;
    struct dirent *de;
    size_t files = 0, failures = 0;
    while ((de = readdir(d)) != NULL) {
        size_t nl = strlen(de->d_name);
        if (nl < 5 || strcmp(de->d_name + nl - 4, ".hl7")) continue;
        char path[2048];
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        size_t len;
        char *buf = slurp(path, &len);
        assert_non_null(buf);
        hl7_error err;
        if (hl7_parse(m, buf, len, &err) != HL7_OK) fail_msg("%s: %s", path, err.text);
        validate_message(v, m, NOW, &r);
        tbuf got = TBUF_INIT;
        for (size_t i = 0; i < r.n; i++) {
            validate_problem_format(&r.v[i], &got);
            tbuf_putc(&got, '\n');
        }
        char *want = NULL;
        if (expect_problems) {
            snprintf(path + strlen(path) - 4, 8, ".expect");
            want = slurp(path, NULL);
            if (!want) fail_msg("%s is missing", path);
        }
        const char *g = got.p ? got.p : "";
        if (strcmp(g, want ? want : "")) {
            fprintf(stderr, "%s/%s: got\n%s---\nwanted\n%s---\n", sub, de->d_name, g,
                    want ? want : "");
            failures++;
        }
        if (expect_problems && r.n == 0) failures++;
        free(want);
        tbuf_free(&got);
        free(buf);
        files++;
    }
    closedir(d);
    validate_result_free(&r);
    hl7_msg_free(m);
    validator_free(v);
    assert_int_equal(failures, 0);
    return files;
}

static void test_data_valid(void **state)
{
    (void)state;
    assert_true(run_dir("valid", false) >= 3);
}

static void test_data_unusual(void **state)
{
    (void)state;
    assert_true(run_dir("unusual", false) >= 5);
}

static void test_data_invalid(void **state)
{
    (void)state;
    assert_true(run_dir("invalid", true) >= 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_structure_grammar_errors),
        cmocka_unit_test(test_field_spec_errors),
        cmocka_unit_test(test_structure),
        cmocka_unit_test(test_field_specs),
        cmocka_unit_test(test_escapes_and_lengths),
        cmocka_unit_test(test_baseline),
        cmocka_unit_test(test_birth_and_death),
        cmocka_unit_test(test_before_birth),
        cmocka_unit_test(test_sex_specific),
        cmocka_unit_test(test_age_restricted),
        cmocka_unit_test(test_physiologic),
        cmocka_unit_test(test_code_rule_filter),
        cmocka_unit_test(test_sex_specific_with_cwe_rule),
        cmocka_unit_test(test_format_and_ack),
        cmocka_unit_test(test_shortcuts),
        cmocka_unit_test(test_data_valid),
        cmocka_unit_test(test_data_unusual),
        cmocka_unit_test(test_data_invalid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
