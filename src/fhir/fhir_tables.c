/*
 * fhir_tables: built-in conversion tables and their JSON overrides (see
 * fhir_tables.h).
 *
 * The built-ins are static NULL-terminated pair arrays indexed by
 * fhir_table_id; a loaded file is kept as the parsed jansson object (one
 * member per table) and consulted first. Tables are small (tens of
 * entries), so a linear scan is as fast as a hash here and keeps the
 * defaults readable.
 */
#include "fhir/fhir_tables.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/mem.h"

struct fhir_tables {
    json_t *root; /* object: table name -> object of string -> string */
};

typedef struct pair {
    const char *from, *to;
} pair;

static const pair authorities[] = {
    {"NPI", "http://hl7.org/fhir/sid/us-npi"},
    {"USSSA", "http://hl7.org/fhir/sid/us-ssn"},
    {"SSA", "http://hl7.org/fhir/sid/us-ssn"},
    {NULL, NULL},
};
static const pair code_systems[] = {
    {"LN", "http://loinc.org"},
    {"SCT", "http://snomed.info/sct"},
    {"SNM", "http://snomed.info/sct"},
    {"UCUM", "http://unitsofmeasure.org"},
    {"I10", "http://hl7.org/fhir/sid/icd-10"},
    {"I10C", "http://hl7.org/fhir/sid/icd-10-cm"},
    {"ICD10CM", "http://hl7.org/fhir/sid/icd-10-cm"},
    {"I9CDX", "http://hl7.org/fhir/sid/icd-9-cm"},
    {"RXNORM", "http://www.nlm.nih.gov/research/umls/rxnorm"},
    {"NDC", "http://hl7.org/fhir/sid/ndc"},
    {"CVX", "http://hl7.org/fhir/sid/cvx"},
    {"MVX", "http://terminology.hl7.org/CodeSystem/MVX"},
    {"C4", "http://www.ama-assn.org/go/cpt"},
    {"CPT", "http://www.ama-assn.org/go/cpt"},
    {"CDCREC", "urn:oid:2.16.840.1.113883.6.238"},
    {"NCIT", "http://ncimeta.nci.nih.gov"},
    {NULL, NULL},
};
static const pair genders[] = {
    {"F", "female"}, {"M", "male"},    {"O", "other"}, {"U", "unknown"},
    {"A", "other"},  {"N", "unknown"}, {NULL, NULL},
};
static const pair name_uses[] = {
    {"L", "official"}, {"D", "usual"},     {"M", "maiden"},
    {"N", "nickname"}, {"S", "anonymous"}, {NULL, NULL},
};
static const pair address_uses[] = {
    {"H", "home"}, {"B", "work"}, {"O", "work"}, {"C", "temp"}, {NULL, NULL},
};
static const pair telecom_systems[] = {
    {"PH", "phone"},    {"CP", "phone"}, {"FX", "fax"}, {"Internet", "email"},
    {"X.400", "email"}, {"BP", "pager"}, {NULL, NULL},
};
static const pair telecom_uses[] = {
    {"PRN", "home"}, {"ORN", "home"},   {"VHN", "home"},
    {"WPN", "work"}, {"PRS", "mobile"}, {NULL, NULL},
};
static const pair encounter_classes[] = {
    {"I", "IMP|inpatient encounter"},
    {"O", "AMB|ambulatory"},
    {"E", "EMER|emergency"},
    {"P", "PRENC|pre-admission"},
    {"R", "AMB|ambulatory"},
    {"B", "IMP|inpatient encounter"},
    {NULL, NULL},
};
static const pair obs_statuses[] = {
    {"F", "final"},
    {"P", "preliminary"},
    {"C", "corrected"},
    {"X", "cancelled"},
    {"D", "entered-in-error"},
    {"W", "entered-in-error"},
    {"R", "preliminary"},
    {"I", "registered"},
    {"S", "preliminary"},
    {"U", "final"},
    {NULL, NULL},
};
static const pair report_statuses[] = {
    {"F", "final"},      {"P", "preliminary"}, {"C", "corrected"}, {"X", "cancelled"},
    {"R", "partial"},    {"S", "partial"},     {"A", "partial"},   {"I", "registered"},
    {"O", "registered"}, {"M", "corrected"},   {NULL, NULL},
};
static const pair interpretations[] = {
    {"H", "High"},
    {"L", "Low"},
    {"N", "Normal"},
    {"A", "Abnormal"},
    {"HH", "Critical high"},
    {"LL", "Critical low"},
    {"AA", "Critical abnormal"},
    {"S", "Susceptible"},
    {"R", "Resistant"},
    {"I", "Intermediate"},
    {"<", "Off scale low"},
    {">", "Off scale high"},
    {NULL, NULL},
};
static const pair order_statuses[] = {
    /* HL7 table 0038 */
    {"A", "active"},   {"CA", "revoked"},          {"CM", "completed"},
    {"DC", "revoked"}, {"ER", "entered-in-error"}, {"HD", "on-hold"},
    {"IP", "active"},  {"RP", "revoked"},          {"SC", "active"},
    {NULL, NULL},
};
static const pair order_controls[] = {
    /* HL7 table 0119, used when ORC-5 is empty */
    {"NW", "active"},    {"OK", "active"},  {"SC", "active"},  {"XO", "active"},
    {"CA", "revoked"},   {"OC", "revoked"}, {"DC", "revoked"}, {"OD", "revoked"},
    {"HD", "on-hold"},   {"OH", "on-hold"}, {"RL", "active"},  {"CM", "completed"},
    {"RE", "completed"}, {NULL, NULL},
};
static const pair relationships[] = {
    /* HL7 table 0063 -> v3-RoleCode */
    {"SPO", "SPS"},    {"SEL", "ONESELF"}, {"CHD", "CHILD"},   {"PAR", "PRN"},
    {"MTH", "MTH"},    {"FTH", "FTH"},     {"SIB", "SIB"},     {"BRO", "BRO"},
    {"SIS", "SIS"},    {"GRP", "GRPRN"},   {"GRD", "GUARD"},   {"DOM", "DOMPART"},
    {"FND", "FRND"},   {"EMC", "ECON"},    {"EXF", "FAMMEMB"}, {"FCH", "CHLDFOST"},
    {"NCH", "NCHILD"}, {"SCH", "STPCHLD"}, {"OTH", "O"},       {"UNK", "U"},
    {NULL, NULL},
};
static const pair allergy_types[] = {
    /* HL7 table 0127 -> AllergyIntolerance type|category */
    {"DA", "allergy|medication"},
    {"FA", "allergy|food"},
    {"EA", "allergy|environment"},
    {"MA", "allergy|"},
    {"MC", "intolerance|"},
    {"AA", "allergy|environment"},
    {"PA", "allergy|environment"},
    {"LA", "allergy|environment"},
    {NULL, NULL},
};
static const pair allergy_severities[] = {
    /* HL7 table 0128 -> reaction.severity|criticality */
    {"SV", "severe|high"},      {"MO", "moderate|low"}, {"MI", "mild|low"},
    {"U", "|unable-to-assess"}, {NULL, NULL},
};
static const pair units[] = {
    {"mg/dl", "mg/dL"},   {"MG/DL", "mg/dL"}, {"g/dl", "g/dL"}, {"mmol/l", "mmol/L"},
    {"MMOL/L", "mmol/L"}, {"ml", "mL"},       {"ML", "mL"},     {"MG", "mg"},
    {"MCG", "ug"},        {"mcg", "ug"},      {"TAB", "{tbl}"}, {"tab", "{tbl}"},
    {"MIN", "min"},       {NULL, NULL},
};
static const pair immunization_statuses[] = {
    /* HL7 table 0322 */
    {"CP", "completed"}, {"PA", "completed"}, {"RE", "not-done"}, {"NA", "not-done"}, {NULL, NULL},
};
static const pair appointment_statuses[] = {
    /* HL7 table 0278 */
    {"Pending", "pending"},    {"Waitlist", "waitlist"},
    {"Booked", "booked"},      {"Started", "arrived"},
    {"Complete", "fulfilled"}, {"Cancelled", "cancelled"},
    {"Dc", "cancelled"},       {"Deleted", "entered-in-error"},
    {"Blocked", "booked"},     {"Overbook", "booked"},
    {"Noshow", "noshow"},      {NULL, NULL},
};
static const pair document_statuses[] = {
    /* HL7 table 0271 -> composition-status */
    {"AU", "final"},       {"LA", "final"},       {"DO", "final"},       {"DI", "preliminary"},
    {"IP", "preliminary"}, {"IN", "preliminary"}, {"PA", "preliminary"}, {"CA", "entered-in-error"},
    {NULL, NULL},
};
static const pair diagnosis_types[] = {
    /* DG1-6 (HL7 table 0052): every diagnosis of a visit is an encounter-diagnosis */
    {"A", "encounter-diagnosis"},
    {"W", "encounter-diagnosis"},
    {"F", "encounter-diagnosis"},
    {NULL, NULL},
};

static const struct {
    const char *name;
    const pair *builtin;
} tables[FHIR_TAB_COUNT] = {
    [FHIR_TAB_AUTHORITIES] = {"authorities", authorities},
    [FHIR_TAB_CODE_SYSTEMS] = {"code_systems", code_systems},
    [FHIR_TAB_GENDERS] = {"genders", genders},
    [FHIR_TAB_NAME_USES] = {"name_uses", name_uses},
    [FHIR_TAB_ADDRESS_USES] = {"address_uses", address_uses},
    [FHIR_TAB_TELECOM_SYSTEMS] = {"telecom_systems", telecom_systems},
    [FHIR_TAB_TELECOM_USES] = {"telecom_uses", telecom_uses},
    [FHIR_TAB_ENCOUNTER_CLASSES] = {"encounter_classes", encounter_classes},
    [FHIR_TAB_OBS_STATUSES] = {"observation_statuses", obs_statuses},
    [FHIR_TAB_REPORT_STATUSES] = {"report_statuses", report_statuses},
    [FHIR_TAB_INTERPRETATIONS] = {"interpretations", interpretations},
    [FHIR_TAB_ORDER_STATUSES] = {"order_statuses", order_statuses},
    [FHIR_TAB_ORDER_CONTROLS] = {"order_controls", order_controls},
    [FHIR_TAB_RELATIONSHIPS] = {"relationships", relationships},
    [FHIR_TAB_ALLERGY_TYPES] = {"allergy_types", allergy_types},
    [FHIR_TAB_ALLERGY_SEVERITIES] = {"allergy_severities", allergy_severities},
    [FHIR_TAB_UNITS] = {"units", units},
    [FHIR_TAB_IMMUNIZATION_STATUSES] = {"immunization_statuses", immunization_statuses},
    [FHIR_TAB_APPOINTMENT_STATUSES] = {"appointment_statuses", appointment_statuses},
    [FHIR_TAB_DOCUMENT_STATUSES] = {"document_statuses", document_statuses},
    [FHIR_TAB_DIAGNOSIS_TYPES] = {"diagnosis_types", diagnosis_types},
};

const char *fhir_table_name(fhir_table_id id)
{
    return (unsigned)id < FHIR_TAB_COUNT ? tables[id].name : "unknown";
}

/* a == b: the codes of the tables are a few bytes, so a loop beats a call */
static bool same(const char *a, const char *b)
{
    while (*a && *a == *b)
        a++, b++;
    return *a == *b;
}

const char *fhir_table_lookup(const fhir_tables *t, fhir_table_id id, const char *key)
{
    if (!key || (unsigned)id >= FHIR_TAB_COUNT) return NULL;
    if (t) {
        json_t *user = json_object_get(json_object_get(t->root, tables[id].name), key);
        if (user) return json_string_value(user);
    }
    for (const pair *p = tables[id].builtin; p->from; p++)
        if (same(p->from, key)) return p->to;
    return NULL;
}

const char *fhir_table_lookup_user(const fhir_tables *t, fhir_table_id id, const char *key)
{
    if (!t || !key || (unsigned)id >= FHIR_TAB_COUNT) return NULL;
    return json_string_value(json_object_get(json_object_get(t->root, tables[id].name), key));
}

const char *fhir_table_reverse(const fhir_tables *t, fhir_table_id id, const char *value)
{
    if (!value || (unsigned)id >= FHIR_TAB_COUNT) return NULL;
    if (t) {
        const char *key;
        json_t *v;
        json_object_foreach(json_object_get(t->root, tables[id].name), key, v)
        {
            if (!strcmp(json_string_value(v), value)) return key;
        }
    }
    for (const pair *p = tables[id].builtin; p->from; p++)
        if (!strcmp(p->to, value)) return p->from;
    return NULL;
}

static int table_index(const char *name)
{
    for (int i = 0; i < FHIR_TAB_COUNT; i++)
        if (!strcmp(tables[i].name, name)) return i;
    return -1;
}

/* Checks the shape of a loaded file; writes the first problem to err. */
static bool check_root(const char *path, json_t *root, char *err, size_t cap)
{
    if (!json_is_object(root)) {
        snprintf(err, cap, "%s: expected a JSON object of tables (\"genders\": {...})", path);
        return false;
    }
    const char *name, *key;
    json_t *table, *v;
    json_object_foreach(root, name, table)
    {
        if (table_index(name) < 0) {
            snprintf(err, cap, "%s: unknown table \"%s\" (docs/fhir.md lists the tables)", path,
                     name);
            return false;
        }
        if (!json_is_object(table)) {
            snprintf(err, cap, "%s: table \"%s\" must be an object of \"code\": \"value\"", path,
                     name);
            return false;
        }
        json_object_foreach(table, key, v)
        {
            if (!json_is_string(v) || !*json_string_value(v)) {
                snprintf(err, cap,
                         "%s: table \"%s\", key \"%s\": the value must be a non-empty "
                         "string",
                         path, name, key);
                return false;
            }
        }
    }
    return true;
}

bool fhir_tables_load(const char *path, fhir_tables **out, char *err, size_t err_cap)
{
    *out = NULL;
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        snprintf(err, err_cap, "%s: line %d column %d: %s", path, je.line, je.column, je.text);
        return false;
    }
    if (!check_root(path, root, err, err_cap)) {
        json_decref(root);
        return false;
    }
    fhir_tables *t = xmalloc(sizeof *t);
    t->root = root;
    *out = t;
    return true;
}

void fhir_tables_free(fhir_tables *t)
{
    if (!t) return;
    json_decref(t->root);
    free(t);
}
