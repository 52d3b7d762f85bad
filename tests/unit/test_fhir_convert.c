/*
 * Unit tests for fhir_convert: ADT and ORU Bundles (key fields, stable ids
 * across messages, references that point at entries of the same Bundle,
 * date precision, numeric quantities, gender, interpretation, ranges,
 * statuses), the date conversion table, the errors for an unsupported type
 * and a missing PID; then one sample per message type from tests/data/fhir
 * (the key fields of every resource, references, ADT event semantics, the
 * A40 merge links, order status updates, resends giving the same ids) and
 * the tables file (fhir_tables_load, overrides through fhir_options); one
 * converter reused across messages (the same text as fresh ones), also
 * after a 3 MB document; the number parsing against strtod.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <ctype.h>

#include "fhir/fhir_conv.h"
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

/* fhir_convert() with the Bundle as jansson (the assertions below read it
 * with jansson's accessors); also checks that ftree_write() gives what
 * json_dumps() gives for it. On failure *out is NULL. */
static fhir_status convert_json(const hl7_msg *m, const fhir_options *opt, json_t **out,
                                fhir_error *err)
{
    fhir_converter *cv = fhir_converter_new();
    ftree_node *bundle = (ftree_node *)1;
    fhir_status st = fhir_convert(cv, m, opt, &bundle, err);
    *out = NULL;
    if (st == FHIR_OK) {
        *out = ftree_to_json(bundle);
        tbuf text = TBUF_INIT;
        ftree_write(bundle, 17, &text);
        char *want = json_dumps(*out, JSON_COMPACT);
        assert_string_equal(tbuf_cstr(&text), want);
        free(want);
        tbuf_free(&text);
    } else {
        assert_null(bundle);
    }
    fhir_converter_free(cv);
    return st;
}

static json_t *convert(const char *text, fhir_status want)
{
    hl7_msg *m = hl7_msg_new(NULL);
    hl7_error perr;
    assert_int_equal(hl7_parse(m, text, strlen(text), &perr), HL7_OK);
    json_t *b = NULL;
    fhir_error err;
    assert_int_equal(convert_json(m, NULL, &b, &err), want);
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
    assert_int_equal(convert_json(m, NULL, &b, &err), FHIR_ERR_UNSUPPORTED);
    assert_null(b);
    assert_int_equal(err.code, FHIR_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.text, "ADT^A17 is not converted yet"));

    const char *nopid = "MSH|^~\\&|A|B|C|D|20240101||ADT^A04|X2|P|2.5\rPV1|1|O\r";
    assert_int_equal(hl7_parse(m, nopid, strlen(nopid), &perr), HL7_OK);
    assert_int_equal(convert_json(m, NULL, &b, &err), FHIR_ERR_MISSING);
    assert_non_null(strstr(err.text, "no PID"));
    assert_string_equal(fhir_strerror(FHIR_ERR_MISSING), "required segment missing");

    const char *two = "MSH|^~\\&|A|B|C|D|20240101||ORU^R01|X4|P|2.5\rPID|1||1^^^H^MR\r"
                      "OBX|1|NM|1^A^L||1\rPID|2||2^^^H^MR\rOBX|1|NM|1^A^L||2\r";
    assert_int_equal(hl7_parse(m, two, strlen(two), &perr), HL7_OK);
    assert_int_equal(convert_json(m, NULL, &b, &err), FHIR_ERR_UNSUPPORTED);
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
    assert_int_equal(convert_json(m, &opt, &b, NULL), FHIR_OK);
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

/* --- one sample message per type (tests/data/fhir) ---------------------------- */

static json_t *convert_file_opt(const char *name, const fhir_options *opt)
{
    char path[512];
    snprintf(path, sizeof path, "%s/tests/data/fhir/%s.hl7", TERN_SOURCE_DIR, name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char text[16384];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    hl7_msg *m = hl7_msg_new(NULL);
    hl7_error perr;
    assert_int_equal(hl7_parse(m, text, n, &perr), HL7_OK);
    json_t *b = NULL;
    fhir_error err;
    assert_int_equal(convert_json(m, opt, &b, &err), FHIR_OK);
    hl7_msg_free(m);
    return b;
}

static json_t *convert_file(const char *name)
{
    return convert_file_opt(name, NULL);
}

static size_t count(json_t *bundle, const char *type)
{
    size_t n = 0;
    while (nth(bundle, type, n))
        n++;
    return n;
}

/* Asserts that the reference at path names an entry of the Bundle of the
 * given type. */
static void assert_ref(json_t *bundle, json_t *res, const char *path, const char *type)
{
    const char *ref = str(res, path);
    assert_non_null(ref);
    assert_int_equal(strncmp(ref, type, strlen(type)), 0);
    assert_true(in_bundle(bundle, ref));
}

static json_t *by_code(json_t *bundle, const char *type, const char *path, const char *code)
{
    for (size_t i = 0; nth(bundle, type, i); i++) {
        const char *c = str(nth(bundle, type, i), path);
        if (c && !strcmp(c, code)) return nth(bundle, type, i);
    }
    return NULL;
}

static void test_adt_segments(void **state)
{
    json_t *b = convert_file("adt_a01");
    json_t *p = nth(b, "Patient", 0);
    assert_string_equal(str(p, "telecom.0.value"), "+1 217 5550142");
    assert_string_equal(str(p, "telecom.1.system"), "email");
    assert_string_equal(str(p, "maritalStatus.coding.0.code"), "M");
    assert_ref(b, p, "managingOrganization.reference", "Organization/");
    /* PV1-7 and PV1-17 name the same doctor: one Practitioner */
    assert_int_equal(count(b, "Practitioner"), 3);
    json_t *e = nth(b, "Encounter", 0);
    const char *roles[] = {"ATND", "REF", "CON", "ADM"};
    for (size_t i = 0; i < 4; i++) {
        char path[64];
        snprintf(path, sizeof path, "participant.%zu.type.0.coding.0.code", i);
        assert_string_equal(str(e, path), roles[i]);
        snprintf(path, sizeof path, "participant.%zu.individual.reference", i);
        assert_ref(b, e, path, "Practitioner/");
    }
    assert_string_equal(str(e, "participant.0.individual.reference"),
                        str(e, "participant.3.individual.reference"));
    assert_ref(b, e, "location.0.location.reference", "Location/");
    assert_string_equal(str(e, "location.0.status"), "active");
    assert_string_equal(str(nth(b, "Location", 0), "name"), "4WEST 412 B");
    assert_string_equal(str(nth(b, "Location", 0), "physicalType.coding.0.code"), "bd");
    assert_string_equal(str(e, "reasonCode.0.coding.0.code"), "R07.9");

    json_t *rp = nth(b, "RelatedPerson", 0);
    assert_string_equal(str(rp, "relationship.0.coding.0.code"), "SPS");
    assert_string_equal(str(rp, "relationship.0.coding.0.system"),
                        "http://terminology.hl7.org/CodeSystem/v3-RoleCode");
    assert_string_equal(str(rp, "relationship.1.coding.0.code"), "C");
    assert_string_equal(str(rp, "name.0.family"), "HARTLEY");
    assert_ref(b, rp, "patient.reference", "Patient/");

    assert_int_equal(count(b, "AllergyIntolerance"), 2);
    json_t *a = nth(b, "AllergyIntolerance", 0);
    assert_string_equal(str(a, "clinicalStatus.coding.0.code"), "active");
    assert_string_equal(str(a, "verificationStatus.coding.0.code"), "confirmed");
    assert_string_equal(str(a, "type"), "allergy");
    assert_string_equal(str(a, "category.0"), "medication");
    assert_string_equal(str(a, "criticality"), "high");
    assert_string_equal(str(a, "code.coding.0.system"),
                        "http://www.nlm.nih.gov/research/umls/rxnorm");
    assert_string_equal(str(a, "reaction.0.severity"), "severe");
    assert_string_equal(str(a, "reaction.0.manifestation.1.text"), "Shortness of breath");
    assert_string_equal(str(a, "onsetDateTime"), "2001-03-15");
    assert_string_equal(str(nth(b, "AllergyIntolerance", 1), "category.0"), "food");

    json_t *d = nth(b, "Condition", 0);
    assert_string_equal(str(d, "category.0.coding.0.code"), "encounter-diagnosis");
    assert_string_equal(str(d, "code.coding.0.code"), "I21.4");
    assert_string_equal(str(d, "code.coding.0.system"), "http://hl7.org/fhir/sid/icd-10-cm");
    assert_string_equal(str(d, "verificationStatus.coding.0.code"), "provisional");
    assert_ref(b, d, "encounter.reference", "Encounter/");
    assert_ref(b, d, "asserter.reference", "Practitioner/");

    json_t *cv = nth(b, "Coverage", 0);
    assert_string_equal(str(cv, "status"), "active");
    assert_string_equal(str(cv, "subscriberId"), "XKB448812907");
    assert_string_equal(str(cv, "relationship.coding.0.code"), "self");
    assert_string_equal(str(cv, "identifier.1.type.coding.0.code"), "MC");
    assert_string_equal(str(cv, "identifier.1.value"), "1EG4TE5MK72");
    assert_string_equal(str(cv, "identifier.2.type.coding.0.code"), "MA");
    assert_string_equal(str(cv, "class.0.value"), "GRP88123");
    assert_ref(b, cv, "payor.0.reference", "Organization/");
    assert_ref(b, cv, "beneficiary.reference", "Patient/");
    json_t *payer = by_code(b, "Organization", "name", "BLUE CROSS BLUE SHIELD OF ILLINOIS");
    assert_non_null(payer);
    assert_string_equal(str(payer, "identifier.0.value"), "BCBSIL");
    json_decref(b);
}

static void test_adt_events(void **state)
{
    json_t *a01 = convert_file("adt_a01");
    const char *enc_id = str(nth(a01, "Encounter", 0), "id");
    static const struct {
        const char *file, *status;
        bool end;
    } events[] = {{"adt_a02", "in-progress", false}, {"adt_a03", "finished", true},
                  {"adt_a11", "cancelled", false},   {"adt_a13", "in-progress", false},
                  {"adt_a08", "in-progress", false}};
    for (size_t i = 0; i < sizeof events / sizeof events[0]; i++) {
        json_t *b = convert_file(events[i].file);
        json_t *e = nth(b, "Encounter", 0);
        assert_string_equal(str(e, "status"), events[i].status);
        /* the same visit (PV1-19) updates one Encounter */
        assert_string_equal(str(e, "id"), enc_id);
        assert_int_equal(at(e, "period.end") != NULL, events[i].end);
        if (!strcmp(events[i].file, "adt_a02")) {
            assert_int_equal(count(b, "Location"), 2);
            assert_string_equal(str(e, "location.0.status"), "active");
            assert_string_equal(str(e, "location.1.status"), "completed");
            assert_ref(b, e, "location.1.location.reference", "Location/");
            assert_string_not_equal(str(e, "location.0.location.reference"),
                                    str(e, "location.1.location.reference"));
        }
        if (!strcmp(events[i].file, "adt_a03")) {
            assert_string_equal(str(e, "hospitalization.dischargeDisposition.coding.0.code"),
                                "01");
            assert_string_equal(str(e, "location.0.status"), "completed");
            assert_string_equal(str(nth(b, "Condition", 0), "verificationStatus.coding.0.code"),
                                "confirmed");
        }
        json_decref(b);
    }
    const char *patient_only[] = {"adt_a28", "adt_a31"};
    for (size_t i = 0; i < 2; i++) {
        json_t *b = convert_file(patient_only[i]);
        assert_null(nth(b, "Encounter", 0));
        assert_string_equal(str(nth(b, "Patient", 0), "id"), str(nth(a01, "Patient", 0), "id"));
        assert_non_null(nth(b, "AllergyIntolerance", 0));
        assert_non_null(nth(b, "RelatedPerson", 0));
        /* the same allergy of the same patient: the same resource */
        assert_string_equal(str(nth(b, "AllergyIntolerance", 0), "id"),
                            str(nth(a01, "AllergyIntolerance", 0), "id"));
        json_decref(b);
    }
    json_decref(a01);
}

static void test_adt_merge(void **state)
{
    json_t *b = convert_file("adt_a40");
    assert_int_equal(count(b, "Patient"), 2);
    json_t *survivor = nth(b, "Patient", 0), *old = nth(b, "Patient", 1);
    assert_string_equal(str(survivor, "identifier.0.value"), "MRN48213");
    assert_string_equal(str(old, "identifier.0.value"), "MRN50977");
    assert_true(json_is_false(at(old, "active")));
    assert_true(json_is_true(at(survivor, "active")));
    assert_string_equal(str(old, "link.0.type"), "replaced-by");
    assert_string_equal(str(survivor, "link.0.type"), "replaces");
    char ref[64];
    snprintf(ref, sizeof ref, "Patient/%s", str(survivor, "id"));
    assert_string_equal(str(old, "link.0.other.reference"), ref);
    snprintf(ref, sizeof ref, "Patient/%s", str(old, "id"));
    assert_string_equal(str(survivor, "link.0.other.reference"), ref);
    /* the old Patient keeps the id its own PID-3 gave it */
    char id[33];
    fhir_stable_id("Patient|urn:oid:2.16.840.1.113883.3.72.5.9.1|MRN50977", id);
    assert_string_equal(str(old, "id"), id);
    assert_string_equal(str(old, "name.0.family"), "HARTLEY");
    json_decref(b);

    /* MRG-1 naming the surviving patient itself: one Patient, no self link */
    const char *self = "MSH|^~\\&|A|B|C|D|20260120||ADT^A40|M2|P|2.5.1\r"
                       "PID|1||MRN7^^^H^MR||DOE^JANE\rMRG|MRN7^^^H^MR\r";
    hl7_msg *m = hl7_msg_new(NULL);
    hl7_error perr;
    assert_int_equal(hl7_parse(m, self, strlen(self), &perr), HL7_OK);
    assert_int_equal(convert_json(m, NULL, &b, NULL), FHIR_OK);
    assert_int_equal(count(b, "Patient"), 1);
    assert_null(at(nth(b, "Patient", 0), "link"));
    json_decref(b);
    hl7_msg_free(m);
}

static void test_orders(void **state)
{
    json_t *b = convert_file("orm_o01");
    json_t *sr = nth(b, "ServiceRequest", 0);
    assert_string_equal(str(sr, "status"), "active");
    assert_string_equal(str(sr, "intent"), "order");
    assert_string_equal(str(sr, "identifier.0.type.coding.0.code"), "PLAC");
    assert_string_equal(str(sr, "identifier.0.value"), "ORD55680");
    assert_string_equal(str(sr, "code.coding.0.code"), "24331-1");
    assert_string_equal(str(sr, "code.coding.0.system"), "http://loinc.org");
    assert_ref(b, sr, "requester.reference", "Practitioner/");
    assert_ref(b, sr, "subject.reference", "Patient/");
    assert_ref(b, sr, "encounter.reference", "Encounter/");
    assert_string_equal(str(sr, "authoredOn"), "2026-01-14T09:05:00-06:00");
    assert_string_equal(str(sr, "occurrenceDateTime"), "2026-01-14T10:00:00-06:00");
    assert_string_equal(str(sr, "reasonCode.0.coding.0.code"), "Z13.220");
    assert_string_equal(str(sr, "reasonCode.1.coding.0.code"), "E78.5");
    assert_ref(b, sr, "specimen.0.reference", "Specimen/");
    json_t *sp = nth(b, "Specimen", 0);
    assert_string_equal(str(sp, "type.coding.0.code"), "SER");
    assert_string_equal(str(sp, "collection.collectedDateTime"), "2026-01-14T09:50:00-06:00");
    assert_ref(b, sp, "request.0.reference", "ServiceRequest/");
    json_decref(b);

    b = convert_file("oml_o21");
    sr = nth(b, "ServiceRequest", 0);
    assert_string_equal(str(sr, "priority"), "stat");
    assert_string_equal(str(sr, "reasonCode.0.coding.0.code"), "D64.9");
    sp = nth(b, "Specimen", 0);
    assert_string_equal(str(sp, "identifier.0.value"), "SPC7781");
    assert_string_equal(str(sp, "identifier.1.value"), "LS40021");
    assert_string_equal(str(sp, "type.coding.0.system"), "http://snomed.info/sct");
    assert_string_equal(str(sp, "collection.bodySite.coding.0.code"), "LACF");
    assert_int_equal(json_integer_value(at(sp, "collection.quantity.value")), 3);
    assert_string_equal(str(sp, "receivedTime"), "2026-01-14T10:10:00-06:00");
    assert_ref(b, sr, "specimen.0.reference", "Specimen/");
    json_decref(b);
}

/* The same order arriving again (new MSH-10, a status change) updates the
 * same resources; a cancel (ORC-1 CA) revokes it. */
static void test_order_update(void **state)
{
    const char *head = "MSH|^~\\&|EHR|H|LAB|H|20260114091000||ORM^O01|%s|P|2.5.1\r"
                       "PID|1||MRN1^^^H^MR||DOE^JANE||19700101|F\r"
                       "PV1|1|O|||||||||||||||||V1^^^H^VN\r"
                       "ORC|%s|ORD1^EPIC|%s||%s\r"
                       "OBR|1|ORD1^EPIC||2345-7^Glucose^LN|||20260114090000\r";
    char text[1024];
    const char *want[] = {"active", "revoked", "completed"};
    const char *orc[][4] = {{"C1", "NW", "", ""}, {"C2", "CA", "", ""}, {"C3", "SC", "F77^LAB", "CM"}};
    char first[33] = "";
    hl7_msg *m = hl7_msg_new(NULL);
    for (size_t i = 0; i < 3; i++) {
        snprintf(text, sizeof text, head, orc[i][0], orc[i][1], orc[i][2], orc[i][3]);
        hl7_error perr;
        assert_int_equal(hl7_parse(m, text, strlen(text), &perr), HL7_OK);
        json_t *b;
        assert_int_equal(convert_json(m, NULL, &b, NULL), FHIR_OK);
        json_t *sr = nth(b, "ServiceRequest", 0);
        assert_string_equal(str(sr, "status"), want[i]);
        if (!first[0]) snprintf(first, sizeof first, "%s", str(sr, "id"));
        assert_string_equal(str(sr, "id"), first); /* a filler number arriving later too */
        json_decref(b);
    }
    hl7_msg_free(m);
}

static void test_rde(void **state)
{
    json_t *b = convert_file("rde_o11");
    json_t *mr = nth(b, "MedicationRequest", 0);
    assert_string_equal(str(mr, "status"), "active");
    assert_string_equal(str(mr, "intent"), "order");
    assert_ref(b, mr, "medicationReference.reference", "Medication/");
    json_t *med = nth(b, "Medication", 0);
    assert_string_equal(str(med, "code.coding.0.system"),
                        "http://www.nlm.nih.gov/research/umls/rxnorm");
    assert_string_equal(str(med, "code.coding.0.code"), "197361");
    assert_string_equal(str(med, "form.coding.0.code"), "TAB");
    char id[33];
    fhir_stable_id("Medication|RXNORM|197361", id);
    assert_string_equal(str(med, "id"), id);
    json_t *dose = at(mr, "dosageInstruction.0");
    assert_string_equal(str(dose, "route.coding.0.code"), "PO");
    assert_string_equal(str(dose, "route.coding.0.system"),
                        "http://terminology.hl7.org/CodeSystem/v2-0162");
    assert_int_equal(json_integer_value(at(dose, "doseAndRate.0.doseQuantity.value")), 5);
    assert_string_equal(str(dose, "doseAndRate.0.doseQuantity.code"), "mg");
    assert_string_equal(str(dose, "timing.repeat.boundsPeriod.start"), "2026-01-14T12:00:00-06:00");
    assert_string_equal(str(dose, "timing.code.text"), "QD");
    assert_string_equal(str(dose, "additionalInstruction.0.text"), "Take with water");
    assert_int_equal(json_integer_value(at(mr, "dispenseRequest.quantity.value")), 30);
    assert_int_equal(json_integer_value(at(mr, "dispenseRequest.numberOfRepeatsAllowed")), 2);
    assert_ref(b, mr, "requester.reference", "Practitioner/");
    json_decref(b);
}

static void test_vxu(void **state)
{
    json_t *b = convert_file("vxu_v04");
    json_t *im = nth(b, "Immunization", 0);
    assert_string_equal(str(im, "status"), "completed");
    assert_string_equal(str(im, "vaccineCode.coding.0.system"), "http://hl7.org/fhir/sid/cvx");
    assert_string_equal(str(im, "vaccineCode.coding.0.code"), "208");
    assert_string_equal(str(im, "occurrenceDateTime"), "2026-01-14T11:00:00-06:00");
    assert_string_equal(str(im, "lotNumber"), "FK9894");
    assert_string_equal(str(im, "expirationDate"), "2026-06-30");
    assert_true(json_is_true(at(im, "primarySource")));
    assert_string_equal(str(im, "identifier.0.value"), "IZ-783-A");
    assert_ref(b, im, "manufacturer.reference", "Organization/");
    json_t *mvx = by_code(b, "Organization", "identifier.0.value", "PFR");
    assert_non_null(mvx);
    assert_string_equal(str(mvx, "identifier.0.system"),
                        "http://terminology.hl7.org/CodeSystem/MVX");
    assert_string_equal(str(mvx, "name"), "Pfizer, Inc");
    assert_string_equal(json_real_value(at(im, "doseQuantity.value")) == 0.3 ? "ok" : "bad", "ok");
    assert_string_equal(str(im, "doseQuantity.code"), "mL");
    assert_string_equal(str(im, "route.coding.0.code"), "C28161");
    assert_string_equal(str(im, "site.coding.0.code"), "LD");
    assert_string_equal(str(im, "programEligibility.0.coding.0.code"), "V01");
    assert_string_equal(str(im, "performer.0.function.coding.0.code"), "AP");
    assert_string_equal(str(im, "performer.1.function.coding.0.code"), "OP");
    assert_ref(b, im, "performer.0.actor.reference", "Practitioner/");
    assert_int_equal(count(b, "Observation"), 2);
    char ref[64];
    snprintf(ref, sizeof ref, "Immunization/%s", str(im, "id"));
    assert_string_equal(str(nth(b, "Observation", 0), "partOf.0.reference"), ref);
    json_decref(b);

    /* refused: not-done with the reason */
    const char *msg = "MSH|^~\\&|A|B|C|D|20260114||VXU^V04|R1|P|2.5.1\r"
                      "PID|1||MRN1^^^H^MR||DOE^JANE||20200101|F\r"
                      "RXA|0|1|20260114||03^MMR^CVX|999||||||||||||00^Parental decision^NIP002||RE\r";
    hl7_msg *m = hl7_msg_new(NULL);
    hl7_error perr;
    assert_int_equal(hl7_parse(m, msg, strlen(msg), &perr), HL7_OK);
    assert_int_equal(convert_json(m, NULL, &b, NULL), FHIR_OK);
    im = nth(b, "Immunization", 0);
    assert_string_equal(str(im, "status"), "not-done");
    assert_string_equal(str(im, "statusReason.coding.0.code"), "00");
    assert_null(at(im, "doseQuantity")); /* 999: unknown amount */
    json_decref(b);
    hl7_msg_free(m);
}

static void test_mdm(void **state)
{
    json_t *b = convert_file("mdm_t02");
    json_t *d = nth(b, "DocumentReference", 0);
    assert_string_equal(str(d, "status"), "current");
    assert_string_equal(str(d, "docStatus"), "final");
    assert_string_equal(str(d, "masterIdentifier.value"), "DOC-2026-00871");
    assert_string_equal(str(d, "type.coding.0.code"), "DS");
    assert_string_equal(str(d, "category.0.coding.0.code"), "clinical-note");
    assert_string_equal(str(d, "date"), "2026-01-14T15:30:00-06:00");
    assert_ref(b, d, "author.0.reference", "Practitioner/");
    assert_ref(b, d, "context.encounter.0.reference", "Encounter/");
    assert_string_equal(str(d, "content.0.attachment.contentType"), "application/pdf");
    assert_string_equal(str(d, "content.0.attachment.data"),
                        "JVBERi0xLjQKJcOkw7zDtsOfCjIgMCBvYmoKPDwvTGVuZ3RoIDMgMCBSPj4Kc3RyZWFtCg==");
    assert_string_equal(str(d, "content.1.attachment.contentType"), "text/plain; charset=utf-8");
    unsigned char text[256];
    const char *b64 = str(d, "content.1.attachment.data");
    int n = EVP_DecodeBlock(text, (const unsigned char *)b64, (int)strlen(b64));
    assert_true(n > 0);
    text[n] = '\0';
    assert_non_null(strstr((char *)text, "Patient admitted with NSTEMI.\nTreated with heparin"));
    json_decref(b);
}

static void test_siu(void **state)
{
    json_t *b = convert_file("siu_s12");
    json_t *a = nth(b, "Appointment", 0);
    assert_string_equal(str(a, "status"), "booked");
    assert_string_equal(str(a, "identifier.0.value"), "SCHED-9931");
    assert_string_equal(str(a, "identifier.0.type.coding.0.code"), "FILL");
    assert_string_equal(str(a, "start"), "2026-01-28T09:30:00-06:00");
    assert_string_equal(str(a, "end"), "2026-01-28T10:00:00-06:00");
    assert_int_equal(json_integer_value(at(a, "minutesDuration")), 30);
    assert_string_equal(str(a, "serviceType.0.coding.0.code"), "93000");
    assert_string_equal(str(a, "appointmentType.coding.0.code"), "FU");
    assert_string_equal(str(a, "reasonCode.0.coding.0.code"), "FOLLOWUP");
    assert_ref(b, a, "participant.0.actor.reference", "Patient/");
    assert_string_equal(str(a, "participant.1.actor.display"), "ECG cart 2");
    assert_ref(b, a, "participant.2.actor.reference", "Location/");
    assert_ref(b, a, "participant.3.actor.reference", "Practitioner/");
    for (size_t i = 0; i < 4; i++) {
        char path[48];
        snprintf(path, sizeof path, "participant.%zu.status", i);
        assert_string_equal(str(a, path), "accepted");
    }
    assert_string_equal(str(nth(b, "Encounter", 0), "status"), "planned");
    json_decref(b);
}

/* Resending a message gives the same ids for every resource: updates. */
static void test_resend_same_ids(void **state)
{
    const char *files[] = {"adt_a01", "oru_r01", "orm_o01", "oml_o21", "rde_o11",
                           "vxu_v04", "mdm_t02", "siu_s12", "adt_a40"};
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        json_t *a = convert_file(files[f]), *b = convert_file(files[f]);
        json_t *ea = json_object_get(a, "entry"), *eb = json_object_get(b, "entry");
        assert_int_equal(json_array_size(ea), json_array_size(eb));
        for (size_t i = 0; i < json_array_size(ea); i++) {
            const char *url = str(json_array_get(ea, i), "request.url");
            assert_string_equal(url, str(json_array_get(eb, i), "request.url"));
            /* no two entries for one resource */
            for (size_t j = 0; j < i; j++)
                assert_string_not_equal(url, str(json_array_get(ea, j), "request.url"));
        }
        json_decref(a);
        json_decref(b);
    }
}

static void test_tables(void **state)
{
    char path[] = "/tmp/tern-fhir-tables-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs("{\"genders\": {\"F\": \"other\", \"X\": \"unknown\"},\n"
          " \"code_systems\": {\"LN\": \"urn:test:loinc\"},\n"
          " \"immunization_statuses\": {\"CP\": \"entered-in-error\"}}\n",
          f);
    fclose(f);
    fhir_tables *t = NULL;
    char err[256];
    assert_true(fhir_tables_load(path, &t, err, sizeof err));
    assert_string_equal(fhir_table_lookup(t, FHIR_TAB_GENDERS, "F"), "other");
    assert_string_equal(fhir_table_lookup(t, FHIR_TAB_GENDERS, "M"), "male"); /* built-in */
    assert_string_equal(fhir_table_lookup(NULL, FHIR_TAB_GENDERS, "F"), "female");
    assert_null(fhir_table_lookup(t, FHIR_TAB_GENDERS, "Q"));
    assert_null(fhir_table_lookup(t, FHIR_TAB_GENDERS, NULL));
    assert_string_equal(fhir_table_name(FHIR_TAB_UNITS), "units");
    fhir_options opt = {.tables = t};
    json_t *b = convert_file_opt("vxu_v04", &opt);
    assert_string_equal(str(nth(b, "Patient", 0), "gender"), "other");
    assert_string_equal(str(nth(b, "Immunization", 0), "status"), "entered-in-error");
    assert_string_equal(str(nth(b, "Observation", 0), "code.coding.0.system"), "urn:test:loinc");
    json_decref(b);
    fhir_tables_free(t);

    f = fopen(path, "w");
    fputs("{\"genders\": [\"F\"]}", f);
    fclose(f);
    assert_false(fhir_tables_load(path, &t, err, sizeof err));
    assert_null(t);
    assert_non_null(strstr(err, "table \"genders\" must be an object"));
    f = fopen(path, "w");
    fputs("{\"units\": {\"mg\": \"\"}}", f);
    fclose(f);
    assert_false(fhir_tables_load(path, &t, err, sizeof err));
    assert_non_null(strstr(err, "key \"mg\""));
    unlink(path);
    assert_false(fhir_tables_load(path, &t, err, sizeof err));
    assert_non_null(strstr(err, path));
    fhir_tables_free(NULL);
}

/* The compact text of m's Bundle made with cv ("" when it fails). */
static char *bundle_text(fhir_converter *cv, const hl7_msg *m)
{
    ftree_node *b = NULL;
    tbuf text = TBUF_INIT;
    if (fhir_convert(cv, m, NULL, &b, NULL) == FHIR_OK) ftree_write(b, 17, &text);
    return tbuf_detach(&text, NULL);
}

/* One converter for message after message (its arena cleared and reused,
 * a failure in between) writes what a fresh converter writes. */
static void test_converter_reuse(void **state)
{
    static const char *const files[] = {"oru_r01", "adt_a01", "mdm_t02", "vxu_v04",
                                        "siu_s12", "oru_r01", "adt_a40"};
    const char *bad = "MSH|^~\\&|A|B|C|D|20240101||ADT^A17|X1|P|2.5\rPID|1||1^^^H^MR\r";
    fhir_converter *reused = fhir_converter_new();
    hl7_msg *m = hl7_msg_new(NULL);
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/tests/data/fhir/%s.hl7", TERN_SOURCE_DIR, files[i]);
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        static char text[16384];
        size_t n = fread(text, 1, sizeof text, f);
        fclose(f);
        assert_int_equal(hl7_parse(m, text, n, NULL), HL7_OK);
        fhir_converter *fresh = fhir_converter_new();
        char *want = bundle_text(fresh, m), *got = bundle_text(reused, m);
        assert_true(strlen(want) > 100);
        assert_string_equal(got, want);
        free(want);
        free(got);
        fhir_converter_free(fresh);
        assert_int_equal(hl7_parse(m, bad, strlen(bad), NULL), HL7_OK);
        ftree_node *b = (ftree_node *)1;
        assert_int_equal(fhir_convert(reused, m, NULL, &b, NULL), FHIR_ERR_UNSUPPORTED);
        assert_null(b);
    }
    hl7_msg_free(m);
    fhir_converter_free(reused);
    fhir_converter_free(NULL);
}

/* A document of 3 MB (larger than the arena's blocks and the buffers a
 * converter keeps) converts right, twice with the same converter, and a
 * small message after it too. */
static void test_large_document(void **state)
{
    size_t size = 3u << 20;
    tbuf msg = TBUF_INIT;
    tbuf_puts(&msg, "MSH|^~\\&|A|B|C|D|20260114||MDM^T02|L1|P|2.5\rPID|1||7^^^H^MR||D^J\r"
                    "TXA|1|DS||20260114\rOBX|1|ED|1^X^LN||A^application^pdf^Base64^");
    for (size_t i = 0; i < size; i++)
        tbuf_putc(&msg, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[i % 64]);
    tbuf_puts(&msg, "||||||F\r");
    hl7_msg *m = hl7_msg_new(NULL);
    assert_int_equal(hl7_parse(m, msg.p, msg.len, NULL), HL7_OK);
    fhir_converter *cv = fhir_converter_new();
    for (int round = 0; round < 2; round++) {
        ftree_node *b = NULL;
        assert_int_equal(fhir_convert(cv, m, NULL, &b, NULL), FHIR_OK);
        const ftree_node *doc = NULL;
        for (const ftree_node *e = ftree_first(ftree_get(b, "entry")); e; e = ftree_next(e))
            doc = ftree_get(e, "resource");
        assert_string_equal(ftree_str(ftree_get(doc, "resourceType")), "DocumentReference");
        const ftree_node *data =
            ftree_get(ftree_get(ftree_first(ftree_get(doc, "content")), "attachment"), "data");
        assert_int_equal(ftree_strlen(data), size);
        assert_memory_equal(ftree_str(data), "ABCDEFGH", 8);
        tbuf text = TBUF_INIT;
        ftree_write(b, 17, &text);
        assert_true(text.len > size);
        tbuf_free(&text);
    }
    const char *small = "MSH|^~\\&|A|B|C|D|20260114||ADT^A04|S1|P|2.5\rPID|1||7^^^H^MR||D^J\r";
    assert_int_equal(hl7_parse(m, small, strlen(small), NULL), HL7_OK);
    fhir_converter *fresh = fhir_converter_new();
    char *want = bundle_text(fresh, m), *got = bundle_text(cv, m);
    assert_string_equal(got, want);
    free(want);
    free(got);
    fhir_converter_free(fresh);
    fhir_converter_free(cv);
    hl7_msg_free(m);
    tbuf_free(&msg);
}

/* fc_number as it was: strtod, the whole text, only sign, digits, point. */
static bool reference_number(const char *s, double *out)
{
    char *end;
    if (!s || !*s || isspace((unsigned char)*s)) return false;
    *out = strtod(s, &end);
    return end != s && *end == '\0' && strspn(s, "+-0123456789.") == strlen(s);
}

static uint64_t next_random(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

/* fc_number and fc_number_prefix read exactly what strtod reads: the same
 * answer and the same bits (-0, the rounding of 15 and 16 digits). */
static void test_numbers(void **state)
{
    static const char *const fixed[] = {"0",
                                        "-0",
                                        "+0",
                                        "1.",
                                        ".5",
                                        "-.5",
                                        ".",
                                        "-",
                                        "+",
                                        "1-2",
                                        "1.5e3",
                                        "0x10",
                                        "inf",
                                        "nan",
                                        " 1",
                                        "1 ",
                                        "1,5",
                                        "1..2",
                                        "1.2.3",
                                        "+-1",
                                        "007",
                                        "0.1",
                                        "0.30000000000000004",
                                        "123456789012345",
                                        "1234567890123456",
                                        "999999999999999.9",
                                        "9007199254740993",
                                        "-12.50",
                                        "70-99",
                                        "0.000001",
                                        "100000000000000000000",
                                        "4.35",
                                        "1e",
                                        "١٢"};
    double a, b;
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        bool want = reference_number(fixed[i], &a), got = fc_number(fixed[i], &b);
        assert_int_equal(got, want);
        if (want) assert_memory_equal(&a, &b, sizeof a);
        const char *end;
        char *want_end;
        b = fc_number_prefix(fixed[i], &end);
        a = strtod(fixed[i], &want_end);
        assert_ptr_equal(end, want_end);
        assert_memory_equal(&a, &b, sizeof a);
    }
    uint64_t seed = 0x2545F4914F6CDD1Dull;
    static const char pieces[] = "0123456789012345678901234567890123456789.-+e x";
    for (int i = 0; i < 200000; i++) {
        char s[32];
        size_t n = 1 + next_random(&seed) % 24;
        for (size_t k = 0; k < n; k++) {
            uint64_t r = next_random(&seed);
            s[k] = r % 8 ? "0123456789"[r % 10] : pieces[r % (sizeof pieces - 1)];
        }
        s[n] = '\0';
        bool want = reference_number(s, &a), got = fc_number(s, &b);
        assert_int_equal(got, want);
        if (want) assert_memory_equal(&a, &b, sizeof a);
        const char *end;
        char *want_end;
        b = fc_number_prefix(s, &end);
        a = strtod(s, &want_end);
        assert_ptr_equal(end, want_end);
        assert_memory_equal(&a, &b, sizeof a);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adt_patient),  cmocka_unit_test(test_adt_encounter),
        cmocka_unit_test(test_stable_ids),   cmocka_unit_test(test_birthdate_precision),
        cmocka_unit_test(test_oru),          cmocka_unit_test(test_datetime),
        cmocka_unit_test(test_errors),       cmocka_unit_test(test_options),
        cmocka_unit_test(test_adt_segments), cmocka_unit_test(test_adt_events),
        cmocka_unit_test(test_adt_merge),    cmocka_unit_test(test_orders),
        cmocka_unit_test(test_order_update), cmocka_unit_test(test_rde),
        cmocka_unit_test(test_vxu),          cmocka_unit_test(test_mdm),
        cmocka_unit_test(test_siu),          cmocka_unit_test(test_resend_same_ids),
        cmocka_unit_test(test_tables),       cmocka_unit_test(test_converter_reuse),
        cmocka_unit_test(test_numbers),      cmocka_unit_test(test_large_document),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
