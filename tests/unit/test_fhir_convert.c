/*
 * Unit tests for fhir_convert: ADT and ORU Bundles (key fields, stable ids
 * across messages, references that point at entries of the same Bundle,
 * date precision, numeric quantities, gender, interpretation, ranges,
 * statuses), the date conversion table, and the errors for an unsupported
 * type and a missing PID.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhir/fhir_convert.h"

#define ADT(ctl, pid7)                                                                             \
    "MSH|^~\\&|ADT1|GHH^2.16.840.1.113883.19.1^ISO|LAB|FAC|20240601083000-0500||ADT^A01|" ctl      \
    "|P|2.5.1\r"                                                                                   \
    "EVN|A01|20240601083000-0500\r"                                                                \
    "PID|1||PATID1234^^^GHH&2.16.840.1.113883.19.5&ISO^MR~123-45-6789^^^USSSA^SS||EVERYWOMAN^EVE^" \
    "E^JR^DR^^L||" pid7 "|F||2106-3^White^CDCREC|153 FERNWOOD "                                    \
    "DR.^^STATESVILLE^OH^35292^USA^H||(206)3345232^PRN^PH|(206)7525200^WPN^"                       \
    "PH||||||||2186-5^Not Hispanic or Latino^CDCREC\r"                                             \
    "PV1|1|I|2000^2012^01||||004777^ATTEND^AARON^A^^^^^NPI|||SUR||||ADM|A0||||V1001||||||||||||||" \
    "|||||||||||20240601110000\r"

#define ORU                                                                                        \
    "MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240601120000||ORU^R01^ORU_R01|R0001|P|2.5.1\r"                  \
    "PID|1||PATID1234^^^GHH&2.16.840.1.113883.19.5&ISO^MR||EVERYWOMAN^EVE||1962|M\r"               \
    "OBR|1|PL1^EHR|FL1^LAB|24331-1^Lipid panel^LN|||20240601090000-0500|||||||||||||||"            \
    "20240601100000-0500|||F\r"                                                                    \
    "OBX|1|NM|2093-3^Cholesterol^LN||196.5|mg/dL^mg/dL^UCUM|3.5-5.0|H|||F\r"                       \
    "OBX|2|NM|2571-8^Triglyceride^LN||245|mg/dL|<150|LL|||C|||20240601093000\r"                    \
    "OBX|3|SN|777-3^Platelets^LN||<^10|10*3/uL||A|||P\r"                                           \
    "OBX|4|CWE|883-9^ABO group^LN||A^Group A^SCT||||||X\r"                                         \
    "OBX|5|FT|8251-1^Comment^LN||Fasting\\.br\\ok||||||F\r"

static json_t *convert(const char *text, fhir_status want)
{
    hl7_msg *m = hl7_msg_new(NULL);
    hl7_error perr;
    assert_int_equal(hl7_parse(m, text, strlen(text), &perr), HL7_OK);
    json_t *b = NULL;
    fhir_error err;
    assert_int_equal(fhir_convert(m, NULL, &b, &err), want);
    hl7_msg_free(m);
    return b;
}

/* The n-th (0-based) resource of a type in the Bundle, or NULL. */
static json_t *nth(json_t *bundle, const char *type, size_t n)
{
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(bundle, "entry"), i, e)
    {
        json_t *r = json_object_get(e, "resource");
        if (!strcmp(json_string_value(json_object_get(r, "resourceType")), type) && n-- == 0)
            return r;
    }
    return NULL;
}

/* The value at a dotted path ("a.b.0.c"; numbers index arrays), or NULL. */
static json_t *at(json_t *j, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *save = NULL, *tok = strtok_r(buf, ".", &save); tok && j;
         tok = strtok_r(NULL, ".", &save))
        j = json_is_array(j) ? json_array_get(j, strtoul(tok, NULL, 10)) : json_object_get(j, tok);
    return j;
}

static const char *str(json_t *j, const char *path)
{
    return json_string_value(at(j, path));
}

/* True when ref ("Type/id") names a resource of the Bundle, and every entry
 * is PUT to its own Type/id. */
static bool in_bundle(json_t *bundle, const char *ref)
{
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(bundle, "entry"), i, e)
    {
        json_t *r = json_object_get(e, "resource");
        char url[128];
        snprintf(url, sizeof url, "%s/%s", str(r, "resourceType"), str(r, "id"));
        assert_string_equal(str(e, "request.method"), "PUT");
        assert_string_equal(str(e, "request.url"), url);
        if (!strcmp(url, ref)) return true;
    }
    return false;
}

static void test_adt_patient(void **state)
{
    json_t *b = convert(ADT("M1", "19620320"), FHIR_OK);
    assert_string_equal(str(b, "resourceType"), "Bundle");
    assert_string_equal(str(b, "type"), "transaction");
    json_t *p = nth(b, "Patient", 0);
    assert_non_null(p);
    assert_string_equal(str(p, "identifier.0.system"), "urn:oid:2.16.840.1.113883.19.5");
    assert_string_equal(str(p, "identifier.0.value"), "PATID1234");
    assert_string_equal(str(p, "identifier.0.type.coding.0.system"),
                        "http://terminology.hl7.org/CodeSystem/v2-0203");
    assert_string_equal(str(p, "identifier.0.type.coding.0.code"), "MR");
    assert_string_equal(str(p, "identifier.1.system"), "http://hl7.org/fhir/sid/us-ssn");
    assert_string_equal(str(p, "identifier.1.type.coding.0.code"), "SS");
    assert_string_equal(str(p, "name.0.family"), "EVERYWOMAN");
    assert_string_equal(str(p, "name.0.given.0"), "EVE");
    assert_string_equal(str(p, "name.0.given.1"), "E");
    assert_string_equal(str(p, "name.0.prefix.0"), "DR");
    assert_string_equal(str(p, "name.0.suffix.0"), "JR");
    assert_string_equal(str(p, "name.0.use"), "official");
    assert_string_equal(str(p, "gender"), "female");
    assert_string_equal(str(p, "birthDate"), "1962-03-20");
    assert_string_equal(str(p, "address.0.city"), "STATESVILLE");
    assert_string_equal(str(p, "address.0.use"), "home");
    assert_string_equal(str(p, "telecom.0.use"), "home");
    assert_string_equal(str(p, "telecom.1.use"), "work");
    assert_string_equal(str(p, "extension.0.url"),
                        "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race");
    assert_string_equal(str(p, "extension.0.extension.0.url"), "ombCategory");
    assert_string_equal(str(p, "extension.0.extension.0.valueCoding.code"), "2106-3");
    assert_string_equal(str(p, "extension.0.extension.1.valueString"), "White");
    assert_string_equal(str(p, "extension.1.url"),
                        "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity");
    json_t *org = nth(b, "Organization", 0);
    assert_string_equal(str(org, "identifier.0.system"), "urn:ietf:rfc:3986");
    assert_string_equal(str(org, "identifier.0.value"), "urn:oid:2.16.840.1.113883.19.1");
    assert_string_equal(str(org, "name"), "GHH");
    char ref[64];
    snprintf(ref, sizeof ref, "Organization/%s", str(org, "id"));
    assert_string_equal(str(p, "managingOrganization.reference"), ref);
    assert_true(in_bundle(b, ref));
    json_decref(b);
}

static void test_adt_encounter(void **state)
{
    json_t *b = convert(ADT("M1", "19620320"), FHIR_OK);
    json_t *p = nth(b, "Patient", 0), *e = nth(b, "Encounter", 0);
    char ref[64];
    snprintf(ref, sizeof ref, "Patient/%s", str(p, "id"));
    assert_string_equal(str(e, "subject.reference"), ref);
    assert_string_equal(str(e, "status"), "in-progress");
    assert_string_equal(str(e, "class.system"), "http://terminology.hl7.org/CodeSystem/v3-ActCode");
    assert_string_equal(str(e, "class.code"), "IMP");
    assert_string_equal(str(e, "identifier.0.value"), "V1001");
    /* no offset in PV1-44: the one of MSH-7 */
    assert_string_equal(str(e, "period.start"), "2024-06-01T11:00:00-05:00");
    assert_true(in_bundle(b, str(e, "participant.0.individual.reference")));
    json_t *doc = nth(b, "Practitioner", 0);
    assert_string_equal(str(doc, "name.0.family"), "ATTEND");
    assert_string_equal(str(doc, "identifier.0.value"), "004777");
    assert_string_equal(str(doc, "identifier.0.system"), "http://hl7.org/fhir/sid/us-npi");
    json_decref(b);
}

static void test_stable_ids(void **state)
{
    json_t *a = convert(ADT("M1", "19620320"), FHIR_OK);
    json_t *b = convert(ADT("M2", "1962"), FHIR_OK);
    json_t *c = convert(ORU, FHIR_OK);
    const char *id = str(nth(a, "Patient", 0), "id");
    assert_int_equal(strlen(id), 32);
    assert_string_equal(id, str(nth(b, "Patient", 0), "id"));
    assert_string_equal(id, str(nth(c, "Patient", 0), "id"));
    assert_string_equal(str(nth(a, "Encounter", 0), "id"), str(nth(b, "Encounter", 0), "id"));
    assert_string_equal(str(nth(a, "Practitioner", 0), "id"), str(nth(b, "Practitioner", 0), "id"));
    char want[33];
    fhir_stable_id("Patient|urn:oid:2.16.840.1.113883.19.5|PATID1234", want);
    assert_string_equal(id, want);
    json_decref(a);
    json_decref(b);
    json_decref(c);
}

static void test_birthdate_precision(void **state)
{
    static const char *const cases[][2] = {
        {"1962", "1962"},           {"196203", "1962-03"},
        {"19620320", "1962-03-20"}, {"19620320083000+0100", "1962-03-20"},
        {"1962032", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char msg[1024];
        snprintf(msg, sizeof msg, ADT("M1", "%s"), cases[i][0]);
        json_t *b = convert(msg, FHIR_OK);
        const char *got = str(nth(b, "Patient", 0), "birthDate");
        if (cases[i][1])
            assert_string_equal(got, cases[i][1]);
        else
            assert_null(got);
        json_decref(b);
    }
}

static void test_oru(void **state)
{
    json_t *b = convert(ORU, FHIR_OK);
    json_t *p = nth(b, "Patient", 0), *r = nth(b, "DiagnosticReport", 0);
    assert_string_equal(str(p, "gender"), "male");
    assert_string_equal(str(p, "birthDate"), "1962");
    assert_null(nth(b, "Encounter", 0));
    assert_string_equal(str(r, "status"), "final");
    assert_string_equal(str(r, "code.coding.0.code"), "24331-1");
    assert_string_equal(str(r, "effectiveDateTime"), "2024-06-01T09:00:00-05:00");
    assert_string_equal(str(r, "issued"), "2024-06-01T10:00:00-05:00");
    assert_string_equal(str(r, "identifier.0.value"), "FL1");
    assert_string_equal(str(r, "identifier.0.type.coding.0.code"), "FILL");
    assert_string_equal(str(r, "identifier.1.value"), "PL1");
    assert_int_equal(json_array_size(json_object_get(r, "result")), 5);
    char pref[64];
    snprintf(pref, sizeof pref, "Patient/%s", str(p, "id"));
    assert_string_equal(str(r, "subject.reference"), pref);
    for (size_t i = 0; i < 5; i++) {
        json_t *o = nth(b, "Observation", i);
        char ref[64];
        snprintf(ref, sizeof ref, "Observation/%s", str(o, "id"));
        char path[32];
        snprintf(path, sizeof path, "result.%zu.reference", i);
        assert_string_equal(str(r, path), ref);
        assert_true(in_bundle(b, ref));
        assert_string_equal(str(o, "subject.reference"), pref);
        assert_string_equal(str(o, "category.0.coding.0.code"), "laboratory");
    }
    json_t *chol = nth(b, "Observation", 0);
    assert_string_equal(str(chol, "code.coding.0.system"), "http://loinc.org");
    assert_true(json_is_number(at(chol, "valueQuantity.value")));
    assert_true(json_number_value(at(chol, "valueQuantity.value")) == 196.5);
    assert_string_equal(str(chol, "valueQuantity.system"), "http://unitsofmeasure.org");
    assert_string_equal(str(chol, "valueQuantity.code"), "mg/dL");
    assert_true(json_number_value(at(chol, "referenceRange.0.low.value")) == 3.5);
    assert_true(json_number_value(at(chol, "referenceRange.0.high.value")) == 5.0);
    assert_string_equal(str(chol, "interpretation.0.coding.0.code"), "H");
    assert_string_equal(str(chol, "interpretation.0.coding.0.system"),
                        "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation");
    assert_string_equal(str(chol, "status"), "final");
    assert_string_equal(str(chol, "effectiveDateTime"), "2024-06-01T09:00:00-05:00");

    json_t *trig = nth(b, "Observation", 1);
    assert_string_equal(str(trig, "status"), "corrected");
    assert_string_equal(str(trig, "interpretation.0.coding.0.code"), "LL");
    assert_null(at(trig, "referenceRange.0.low"));
    assert_true(json_number_value(at(trig, "referenceRange.0.high.value")) == 150);
    /* OBX-14 without offset: MSH-7 has none either: Z */
    assert_string_equal(str(trig, "effectiveDateTime"), "2024-06-01T09:30:00Z");

    json_t *plt = nth(b, "Observation", 2);
    assert_string_equal(str(plt, "status"), "preliminary");
    assert_string_equal(str(plt, "valueQuantity.comparator"), "<");
    assert_true(json_number_value(at(plt, "valueQuantity.value")) == 10);

    json_t *abo = nth(b, "Observation", 3);
    assert_string_equal(str(abo, "status"), "cancelled");
    assert_string_equal(str(abo, "valueCodeableConcept.coding.0.system"), "http://snomed.info/sct");
    assert_string_equal(str(abo, "valueCodeableConcept.coding.0.code"), "A");

    assert_string_equal(str(nth(b, "Observation", 4), "valueString"), "Fasting\nok");
    json_decref(b);
}

static void test_datetime(void **state)
{
    static const char *const cases[][3] = {
        /* HL7, default offset, FHIR (NULL: rejected) */
        {"20240101123045+0100", NULL, "2024-01-01T12:30:45+01:00"},
        {"20240101123045.25-0800", NULL, "2024-01-01T12:30:45.25-08:00"},
        {"202401011230", "+05:30", "2024-01-01T12:30:00+05:30"},
        {"2024010112", NULL, "2024-01-01T12:00:00Z"},
        {"20240101", "+01:00", "2024-01-01"},
        {"202401", NULL, "2024-01"},
        {"2024", NULL, "2024"},
        {"20241301", NULL, NULL},
        {"2024010", NULL, NULL},
        {"20240101123045+01", NULL, NULL},
        {"abcd", NULL, NULL},
        {"20240101.5", NULL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tbuf out = TBUF_INIT;
        bool ok = fhir_datetime(cases[i][0], cases[i][1], false, &out);
        if (cases[i][2]) {
            assert_true(ok);
            assert_string_equal(out.p, cases[i][2]);
        } else {
            assert_false(ok);
            assert_int_equal(out.len, 0);
        }
        tbuf_free(&out);
    }
}

static void test_errors(void **state)
{
    hl7_msg *m = hl7_msg_new(NULL);
    hl7_error perr;
    const char *orm = "MSH|^~\\&|A|B|C|D|20240101||ADT^A17|X1|P|2.5\rPID|1||1^^^H^MR\r";
    assert_int_equal(hl7_parse(m, orm, strlen(orm), &perr), HL7_OK);
    json_t *b = (json_t *)1;
    fhir_error err;
    assert_int_equal(fhir_convert(m, NULL, &b, &err), FHIR_ERR_UNSUPPORTED);
    assert_null(b);
    assert_int_equal(err.code, FHIR_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.text, "ADT^A17 is not converted yet"));

    const char *nopid = "MSH|^~\\&|A|B|C|D|20240101||ADT^A04|X2|P|2.5\rPV1|1|O\r";
    assert_int_equal(hl7_parse(m, nopid, strlen(nopid), &perr), HL7_OK);
    assert_int_equal(fhir_convert(m, NULL, &b, &err), FHIR_ERR_MISSING);
    assert_non_null(strstr(err.text, "no PID"));
    assert_string_equal(fhir_strerror(FHIR_ERR_MISSING), "required segment missing");

    const char *two = "MSH|^~\\&|A|B|C|D|20240101||ORU^R01|X4|P|2.5\rPID|1||1^^^H^MR\r"
                      "OBX|1|NM|1^A^L||1\rPID|2||2^^^H^MR\rOBX|1|NM|1^A^L||2\r";
    assert_int_equal(hl7_parse(m, two, strlen(two), &perr), HL7_OK);
    assert_int_equal(fhir_convert(m, NULL, &b, &err), FHIR_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.text, "2 PID segments"));
    hl7_msg_free(m);
}

static void test_options(void **state)
{
    const char *msg = "MSH|^~\\&|A|B|C|D|20240101||ADT^A03|X3|P|2.5\rPID|1||7^^^H^MR||D^J||"
                      "|Q\rPV1|1|E||||||||||||||||||||||||||||||||||||||||||202401010800|"
                      "202401011000\r";
    hl7_msg *m = hl7_msg_new(NULL);
    hl7_error perr;
    assert_int_equal(hl7_parse(m, msg, strlen(msg), &perr), HL7_OK);
    fhir_options opt = {.default_offset = "+02:00", .base_url = "https://fhir.example.org/r4"};
    json_t *b;
    assert_int_equal(fhir_convert(m, &opt, &b, NULL), FHIR_OK);
    json_t *e = nth(b, "Encounter", 0);
    assert_string_equal(str(e, "status"), "finished");
    assert_string_equal(str(e, "class.code"), "EMER");
    assert_string_equal(str(e, "period.start"), "2024-01-01T08:00:00+02:00");
    assert_string_equal(str(e, "period.end"), "2024-01-01T10:00:00+02:00");
    assert_null(str(nth(b, "Patient", 0), "gender"));
    char url[128];
    snprintf(url, sizeof url, "https://fhir.example.org/r4/Encounter/%s", str(e, "id"));
    assert_string_equal(str(b, "entry.2.fullUrl"), url);
    json_decref(b);
    hl7_msg_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adt_patient), cmocka_unit_test(test_adt_encounter),
        cmocka_unit_test(test_stable_ids),  cmocka_unit_test(test_birthdate_precision),
        cmocka_unit_test(test_oru),         cmocka_unit_test(test_datetime),
        cmocka_unit_test(test_errors),      cmocka_unit_test(test_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
