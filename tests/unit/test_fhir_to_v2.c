/*
 * Unit tests of fhir_to_v2: ServiceRequest (+ Patient, Practitioner) ->
 * OML^O21 / ORM^O01, field by field against whole expected messages;
 * escaping; the errors; FHIR dates -> DTM; and the round trip through
 * fhir_convert (identifier and code systems come back the same).
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

#include "fhir/fhir_to_v2.h"
#include "hl7/hl7.h"

static const char PATIENT[] =
    "{\"resourceType\":\"Patient\",\"id\":\"p1\","
    "\"identifier\":[{\"system\":\"http://hosp.example.org/mrn\",\"value\":\"MRN-77\","
    "\"type\":{\"coding\":[{\"code\":\"MR\"}]}},"
    "{\"system\":\"urn:oid:2.16.840.1.113883.4.1\",\"value\":\"123-45-6789\"}],"
    "\"name\":[{\"use\":\"usual\",\"given\":[\"Evie\"]},"
    "{\"use\":\"official\",\"family\":\"Everywoman\",\"given\":[\"Eve\",\"E\"]}],"
    "\"gender\":\"female\",\"birthDate\":\"1962-03-20\"}";

static const char PRACTITIONER[] =
    "{\"resourceType\":\"Practitioner\",\"id\":\"dr1\","
    "\"identifier\":[{\"system\":\"http://hl7.org/fhir/sid/us-npi\",\"value\":\"1234567893\"}],"
    "\"name\":[{\"family\":\"House\",\"given\":[\"Greg\"]}]}";

static const char ORDER[] =
    "{\"resourceType\":\"ServiceRequest\",\"id\":\"sr1\",\"status\":\"active\","
    "\"intent\":\"order\","
    "\"identifier\":[{\"system\":\"urn:tern:id:OTHER\",\"value\":\"X9\"},"
    "{\"system\":\"http://hosp.example.org/orders\",\"value\":\"ORD-1001\","
    "\"type\":{\"coding\":[{\"code\":\"PLAC\"}]}}],"
    "\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"2093-3\","
    "\"display\":\"Cholesterol\"}]},"
    "\"subject\":{\"reference\":\"Patient/p1\"},"
    "\"requester\":{\"reference\":\"Practitioner/dr1\"},"
    "\"authoredOn\":\"2026-01-15T09:00:00-05:00\","
    "\"occurrenceDateTime\":\"2026-01-16T08:30:00Z\"}";

static json_t *resolve(void *arg, const char *ref)
{
    (void)arg;
    const char *text = !strcmp(ref, "Patient/p1")         ? PATIENT
                       : !strcmp(ref, "Practitioner/dr1") ? PRACTITIONER
                                                          : NULL;
    return text ? json_loads(text, 0, NULL) : NULL;
}

/* A tables file with the hospital's own systems; freed by the caller. */
static fhir_tables *hospital_tables(void)
{
    char path[] = "/tmp/tern-to-v2-tables-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char text[] = "{\"authorities\":{\"HOSP\":\"http://hosp.example.org/mrn\","
                        "\"HOSPORD\":\"http://hosp.example.org/orders\"}}";
    assert_int_equal(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
    close(fd);
    fhir_tables *t = NULL;
    char err[256];
    assert_true(fhir_tables_load(path, &t, err, sizeof err));
    unlink(path);
    return t;
}

static fhir_v2_options options(const fhir_tables *t)
{
    return (fhir_v2_options){.sending_application = "EHR",
                             .sending_facility = "GHH",
                             .receiving_application = "LAB",
                             .receiving_facility = "GHH LAB",
                             .control_id = "C1",
                             .timestamp = "20260115101500+0000",
                             .tables = t,
                             .resolve = resolve};
}

static char *order_of(const char *sr_text, const fhir_v2_options *o, fhir_status want)
{
    json_t *sr = json_loads(sr_text, 0, NULL);
    assert_non_null(sr);
    tbuf out = TBUF_INIT;
    fhir_error err;
    fhir_status st = fhir_to_v2_order(sr, o, &out, &err);
    if (st != want) fprintf(stderr, "status %d: %s\n", st, err.text);
    assert_int_equal(st, want);
    json_decref(sr);
    if (st != FHIR_OK) {
        assert_int_equal(out.len, 0);
        tbuf_free(&out);
        return strdup(err.text);
    }
    return tbuf_detach(&out, NULL);
}

static void expect_msg(const char *got, const char *want)
{
    if (strcmp(got, want)) {
        fprintf(stderr, "got:\n%s\nwant:\n%s\n", got, want);
        for (char *p = (char *)got; *p; p++)
            if (*p == '\r') *p = '\n';
        fail();
    }
}

static void test_oml(void **state)
{
    (void)state;
    fhir_tables *t = hospital_tables();
    fhir_v2_options o = options(t);
    char *m = order_of(ORDER, &o, FHIR_OK);
    expect_msg(
        m, "MSH|^~\\&|EHR|GHH|LAB|GHH LAB|20260115101500+0000||OML^O21^OML_O21|C1|P|2.5.1\r"
           "PID|1||MRN-77^^^HOSP^MR~123-45-6789^^^&2.16.840.1.113883.4.1&ISO||"
           "Everywoman^Eve^E||19620320|F\r"
           "PV1|1|U\r"
           "ORC|NW|ORD-1001^HOSPORD|||||||20260115090000-0500|||1234567893^House^Greg^^^^^^NPI\r"
           "OBR|1|ORD-1001^HOSPORD||2093-3^Cholesterol^LN|||20260116083000+0000|||||||||"
           "1234567893^House^Greg^^^^^^NPI\r");
    free(m);
    fhir_tables_free(t);
}

/* ORM, built-in tables, no order identifier (the id stands in), a
 * requester by display only, escaping, an update's order control. */
static void test_orm_and_escaping(void **state)
{
    (void)state;
    fhir_v2_options o = options(NULL);
    o.message = FHIR_V2_ORM_O01;
    o.order_control = "XO";
    o.sending_application = "A|B";
    char *m = order_of("{\"resourceType\":\"ServiceRequest\",\"id\":\"sr2\","
                       "\"code\":{\"coding\":[{\"system\":\"http://snomed.info/sct\","
                       "\"code\":\"26604007\",\"display\":\"Blood count ^ full\"}]},"
                       "\"subject\":{\"reference\":\"Patient/p1\"},"
                       "\"requester\":{\"display\":\"Dr. Who\"},\"authoredOn\":\"2026-02-01\"}",
                       &o, FHIR_OK);
    expect_msg(
        m,
        "MSH|^~\\&|A\\F\\B|GHH|LAB|GHH LAB|20260115101500+0000||ORM^O01^ORM_O01|C1|P|2.5.1\r"
        "PID|1||MRN-77^^^http://hosp.example.org/mrn^MR~123-45-6789^^^&2.16.840.1.113883.4.1&ISO||"
        "Everywoman^Eve^E||19620320|F\r"
        "PV1|1|U\r"
        "ORC|XO|sr2^FHIR|||||||20260201|||^Dr. Who\r"
        "OBR|1|sr2^FHIR||26604007^Blood count \\S\\ full^SCT|||20260201|||||||||^Dr. Who\r");
    free(m);
}

static void test_errors(void **state)
{
    (void)state;
    fhir_v2_options o = options(NULL);
    char *e = order_of("{\"resourceType\":\"Patient\"}", &o, FHIR_ERR_UNSUPPORTED);
    assert_non_null(strstr(e, "only a ServiceRequest"));
    free(e);
    e = order_of("{\"resourceType\":\"ServiceRequest\",\"subject\":{\"reference\":\"Patient/p1\"}}",
                 &o, FHIR_ERR_MISSING);
    assert_non_null(strstr(e, "no code"));
    free(e);
    e = order_of("{\"resourceType\":\"ServiceRequest\",\"code\":{\"text\":\"x\"}}", &o,
                 FHIR_ERR_MISSING);
    assert_non_null(strstr(e, "no subject"));
    free(e);
    e = order_of("{\"resourceType\":\"ServiceRequest\",\"code\":{\"text\":\"x\"},"
                 "\"subject\":{\"reference\":\"Patient/gone\"}}",
                 &o, FHIR_ERR_MISSING);
    assert_non_null(strstr(e, "Patient/gone is not a Patient in the store"));
    free(e);
}

static void test_datetime(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"2026", "2026"},
        {"2026-01", "202601"},
        {"2026-01-15", "20260115"},
        {"2026-01-15T09:00:00Z", "20260115090000+0000"},
        {"2026-01-15T09:00:00.125-05:00", "20260115090000.125-0500"},
        {"2026-01-15T09:00:00+01:00", "20260115090000+0100"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tbuf b = TBUF_INIT;
        assert_true(fhir_v2_datetime(cases[i][0], &b));
        assert_string_equal(tbuf_cstr(&b), cases[i][1]);
        tbuf_free(&b);
    }
    tbuf b = TBUF_INIT;
    assert_false(fhir_v2_datetime("yesterday", &b));
    assert_false(fhir_v2_datetime("2026-01-15T09:00Zx", &b));
    assert_false(fhir_v2_datetime(NULL, &b));
    assert_int_equal(b.len, 0);
    tbuf_free(&b);
}

static const char *system_of(json_t *bundle, const char *type, const char *field)
{
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(bundle, "entry"), i, e)
    {
        json_t *r = json_object_get(e, "resource");
        if (!strcmp(json_string_value(json_object_get(r, "resourceType")), type))
            return json_string_value(
                json_object_get(json_array_get(json_object_get(r, field), 0), "system"));
    }
    return NULL;
}

/* The order converted back to FHIR keeps the patient's and the order's
 * identifier systems and the code system. */
static void test_round_trip(void **state)
{
    (void)state;
    fhir_tables *t = hospital_tables();
    fhir_v2_options o = options(t);
    char *m = order_of(ORDER, &o, FHIR_OK);
    hl7_msg *msg = hl7_msg_new(NULL);
    assert_int_equal(hl7_parse(msg, m, strlen(m), NULL), HL7_OK);
    json_t *bundle = NULL;
    fhir_options fo = {.tables = t};
    fhir_error err;
    fhir_converter *cv = fhir_converter_new();
    ftree_node *root = NULL;
    fhir_status st = fhir_convert(cv, msg, &fo, &root, &err);
    if (st == FHIR_OK) bundle = ftree_to_json(root);
    fhir_converter_free(cv);
    if (st != FHIR_OK) fprintf(stderr, "%s\n", err.text);
    assert_int_equal(st, FHIR_OK);
    assert_string_equal(system_of(bundle, "Patient", "identifier"), "http://hosp.example.org/mrn");
    assert_string_equal(system_of(bundle, "ServiceRequest", "identifier"),
                        "http://hosp.example.org/orders");
    size_t i;
    json_t *e;
    bool code_seen = false;
    json_array_foreach(json_object_get(bundle, "entry"), i, e)
    {
        json_t *r = json_object_get(e, "resource");
        if (strcmp(json_string_value(json_object_get(r, "resourceType")), "ServiceRequest"))
            continue;
        json_t *c = json_array_get(json_object_get(json_object_get(r, "code"), "coding"), 0);
        assert_string_equal(json_string_value(json_object_get(c, "system")), "http://loinc.org");
        assert_string_equal(json_string_value(json_object_get(c, "code")), "2093-3");
        code_seen = true;
    }
    assert_true(code_seen);
    json_decref(bundle);
    hl7_msg_free(msg);
    free(m);
    fhir_tables_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_oml),        cmocka_unit_test(test_orm_and_escaping),
        cmocka_unit_test(test_errors),     cmocka_unit_test(test_datetime),
        cmocka_unit_test(test_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
