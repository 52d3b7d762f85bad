/*
 * Fuzz target for validation (quality/validate.h), which runs on every
 * message a channel receives. The input is an HL7 message; when it parses,
 * it is validated by the baseline profile plus an ORU^R01 and an ADT
 * profile with field rules (types, tables, ranges, a condition), at a fixed
 * "now". Properties beyond "no crash, no leak, no undefined behaviour":
 * every problem has a path, a text and a known rule; the error count is
 * the number of error-severity problems; formatting each problem and
 * building ACK inputs from them works (the count of ACK problems is the
 * error count, however many fit); a second run gives the same result.
 */
#include "quality/validate.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void add_field(validate_profile *p, const char *path, hl7_type t, const char *table,
                      bool required)
{
    validate_field_spec s = {.path = path, .type = t, .table = table, .required = required};
    if (validate_profile_add_field(p, &s, NULL) != VALIDATE_OK) abort();
}

static validator *make_validator(void)
{
    validator *v = validator_new(NULL);
    validate_profile *oru = validate_profile_new("ORU^R01", NULL);
    if (!oru || validate_profile_set_structure(
                    oru, "MSH PID [PV1] { [ORC] OBR [{NTE}] { OBX [{NTE}] } }", NULL) != VALIDATE_OK)
        abort();
    add_field(oru, "PID-3", HL7_TYPE_CX, NULL, true);
    add_field(oru, "OBX-3", HL7_TYPE_CWE, NULL, true);
    validate_field_spec range = {.path = "OBX-5", .type = HL7_TYPE_NM, .has_min = true,
                                 .min = 0, .has_max = true, .max = 1e6, .when = "OBX-2=NM"};
    if (validate_profile_add_field(oru, &range, NULL) != VALIDATE_OK) abort();
    if (validator_add_profile(v, oru, NULL) != VALIDATE_OK) abort();
    validate_profile *adt = validate_profile_new("ADT", NULL);
    if (!adt || validate_profile_set_structure(adt, "MSH EVN PID [PV1] [{OBX}] [{DG1}]", NULL) !=
                    VALIDATE_OK)
        abort();
    add_field(adt, "PID-8", HL7_TYPE_NONE, "0001", false);
    add_field(adt, "PV1-2", HL7_TYPE_NONE, "0004", true);
    add_field(adt, "PID-5", HL7_TYPE_XPN, NULL, true);
    if (validator_add_profile(v, adt, NULL) != VALIDATE_OK) abort();
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hl7_msg *m = hl7_msg_new(NULL);
    if (hl7_parse(m, (const char *)data, size, NULL) != HL7_OK) {
        hl7_msg_free(m);
        return 0;
    }
    validator *v = make_validator();
    validate_result r = VALIDATE_RESULT_INIT, r2 = VALIDATE_RESULT_INIT;
    time_t now = (time_t)1717243200;
    size_t nerr = validate_message(v, m, now, &r);
    size_t count = 0;
    tbuf line = TBUF_INIT;
    for (size_t i = 0; i < r.n; i++) {
        const validate_problem *p = &r.v[i];
        if (!p->path[0] || !p->text[0] || p->rule >= VALIDATE_RULE_COUNT_) abort();
        count += p->severity == VALIDATE_SEV_ERROR;
        tbuf_reset(&line);
        validate_problem_format(p, &line);
        if (!line.len) abort();
    }
    if (count != nerr || r.nerrors != nerr) abort();
    hl7_ack_problem probs[64];
    size_t np = validate_ack_problems(&r, probs, 64);
    if (np != nerr) abort(); /* every error counted, at most 64 written */
    if (validate_message(v, m, now, &r2) != nerr || r2.n != r.n) abort();
    for (size_t i = 0; i < r.n; i++)
        if (strcmp(r.v[i].text, r2.v[i].text) || strcmp(r.v[i].path, r2.v[i].path)) abort();
    tbuf_free(&line);
    validate_result_free(&r);
    validate_result_free(&r2);
    validator_free(v);
    hl7_msg_free(m);
    return 0;
}
