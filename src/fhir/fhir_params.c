/*
 * fhir_params: the search parameter table and index extraction (see the
 * header). A path is walked one element at a time; arrays at any step are
 * flattened, so "name.given" yields every given name of every name. The
 * value found at the end of a path is indexed according to the kind:
 * Identifier, CodeableConcept, Coding and plain codes for tokens; strings,
 * HumanName and Address for strings; date strings and Period for dates;
 * Reference for references.
 */
#include "fhir/fhir_params.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"

#include <openssl/rand.h>
#include <stdio.h>

#define T FHIR_PARAM_TOKEN
#define S FHIR_PARAM_STRING
#define D FHIR_PARAM_DATE
#define R FHIR_PARAM_REFERENCE

/* Grouped by type; every type also has _id (handled by the store). */
static const fhir_param_def PARAMS[] = {
    {"AllergyIntolerance", "patient", R, "patient", "Patient"},
    {"AllergyIntolerance", "code", T, "code", NULL},
    {"AllergyIntolerance", "clinical-status", T, "clinicalStatus", NULL},
    {"AllergyIntolerance", "date", D, "recordedDate", NULL},
    {"Condition", "patient", R, "subject", "Patient"},
    {"Condition", "subject", R, "subject", NULL},
    {"Condition", "code", T, "code", NULL},
    {"Condition", "category", T, "category", NULL},
    {"Condition", "clinical-status", T, "clinicalStatus", NULL},
    {"Condition", "onset-date", D, "onsetDateTime|onsetPeriod", NULL},
    {"DiagnosticReport", "patient", R, "subject", "Patient"},
    {"DiagnosticReport", "subject", R, "subject", NULL},
    {"DiagnosticReport", "code", T, "code", NULL},
    {"DiagnosticReport", "category", T, "category", NULL},
    {"DiagnosticReport", "status", T, "status", NULL},
    {"DiagnosticReport", "date", D, "effectiveDateTime|effectivePeriod", NULL},
    {"DiagnosticReport", "identifier", T, "identifier", NULL},
    {"Encounter", "patient", R, "subject", "Patient"},
    {"Encounter", "subject", R, "subject", NULL},
    {"Encounter", "status", T, "status", NULL},
    {"Encounter", "class", T, "class", NULL},
    {"Encounter", "type", T, "type", NULL},
    {"Encounter", "date", D, "period", NULL},
    {"Encounter", "identifier", T, "identifier", NULL},
    {"Immunization", "patient", R, "patient", "Patient"},
    {"Immunization", "vaccine-code", T, "vaccineCode", NULL},
    {"Immunization", "status", T, "status", NULL},
    {"Immunization", "date", D, "occurrenceDateTime", NULL},
    {"MedicationRequest", "patient", R, "subject", "Patient"},
    {"MedicationRequest", "subject", R, "subject", NULL},
    {"MedicationRequest", "code", T, "medicationCodeableConcept", NULL},
    {"MedicationRequest", "status", T, "status", NULL},
    {"MedicationRequest", "authoredon", D, "authoredOn", NULL},
    {"Observation", "patient", R, "subject", "Patient"},
    {"Observation", "subject", R, "subject", NULL},
    {"Observation", "encounter", R, "encounter", NULL},
    {"Observation", "code", T, "code", NULL},
    {"Observation", "category", T, "category", NULL},
    {"Observation", "status", T, "status", NULL},
    {"Observation", "date", D, "effectiveDateTime|effectivePeriod|effectiveInstant", NULL},
    {"Organization", "identifier", T, "identifier", NULL},
    {"Organization", "name", S, "name", NULL},
    {"Patient", "identifier", T, "identifier", NULL},
    {"Patient", "name", S, "name", NULL},
    {"Patient", "family", S, "name.family", NULL},
    {"Patient", "given", S, "name.given", NULL},
    {"Patient", "birthdate", D, "birthDate", NULL},
    {"Patient", "gender", T, "gender", NULL},
    {"Practitioner", "identifier", T, "identifier", NULL},
    {"Practitioner", "name", S, "name", NULL},
    {"ServiceRequest", "patient", R, "subject", "Patient"},
    {"ServiceRequest", "subject", R, "subject", NULL},
    {"ServiceRequest", "code", T, "code", NULL},
    {"ServiceRequest", "status", T, "status", NULL},
    {"ServiceRequest", "category", T, "category", NULL},
    {"ServiceRequest", "authored", D, "authoredOn", NULL},
    {"ServiceRequest", "identifier", T, "identifier", NULL},
};

#undef T
#undef S
#undef D
#undef R

static const char *const TYPES[] = {
    "AllergyIntolerance", "Appointment",       "Bundle",          "CarePlan",
    "CareTeam",           "Condition",         "Coverage",        "Device",
    "DiagnosticReport",   "DocumentReference", "Encounter",       "Goal",            "Group",
    "Immunization",       "Location",          "Medication",      "MedicationAdministration",
    "MedicationRequest",  "MedicationStatement", "Observation",   "Organization",
    "Patient",            "Practitioner",      "PractitionerRole", "Procedure",
    "Provenance",         "RelatedPerson",     "ServiceRequest",  "Specimen",
};

const char *fhir_param_kind_name(fhir_param_kind k)
{
    switch (k) {
    case FHIR_PARAM_TOKEN: return "token";
    case FHIR_PARAM_STRING: return "string";
    case FHIR_PARAM_DATE: return "date";
    case FHIR_PARAM_REFERENCE: return "reference";
    }
    return "?";
}

const fhir_param_def *fhir_param_find(const char *type, const char *name)
{
    for (size_t i = 0; i < sizeof PARAMS / sizeof PARAMS[0]; i++)
        if (!strcmp(PARAMS[i].type, type) && !strcmp(PARAMS[i].name, name)) return &PARAMS[i];
    return NULL;
}

const fhir_param_def *fhir_param_table(size_t *n)
{
    *n = sizeof PARAMS / sizeof PARAMS[0];
    return PARAMS;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

bool fhir_type_known(const char *type)
{
    return bsearch(&type, TYPES, sizeof TYPES / sizeof TYPES[0], sizeof TYPES[0], cmp_str) != NULL;
}

const char *const *fhir_type_list(size_t *n)
{
    *n = sizeof TYPES / sizeof TYPES[0];
    return TYPES;
}

bool fhir_id_valid(const char *id)
{
    size_t n = 0;
    for (const char *p = id; *p; p++, n++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.') return false;
    /* "." and ".." match FHIR's id pattern but are path segments: in a
     * Location or a reference they would name another resource */
    if (!strcmp(id, ".") || !strcmp(id, "..")) return false;
    return n >= 1 && n <= 64;
}

void fhir_new_id(char out[65])
{
    unsigned char b[16];
    if (RAND_bytes(b, sizeof b) != 1) {
        /* Without randomness no id is safe to hand out; a server cannot go on. */
        fprintf(stderr, "tern: the random generator failed\n");
        abort();
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 65,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

/* --- dates ---------------------------------------------------------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's method). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int days_in_month(int y, int m)
{
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : dm[m - 1];
}

/* Reads exactly n digits at *p. */
static bool digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i])) return false;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return true;
}

#define DAY_MS 86400000LL

bool fhir_date_range(const char *text, int64_t *lo, int64_t *hi)
{
    const char *p = text;
    int y, mo = 1, d = 1, h = 0, mi = 0, s = 0, ms = 0;
    if (!digits(&p, 4, &y)) return false;
    if (!*p) {
        *lo = days_from_civil(y, 1, 1) * DAY_MS;
        *hi = days_from_civil(y + 1, 1, 1) * DAY_MS - 1;
        return true;
    }
    if (*p++ != '-' || !digits(&p, 2, &mo) || mo < 1 || mo > 12) return false;
    if (!*p) {
        *lo = days_from_civil(y, (unsigned)mo, 1) * DAY_MS;
        *hi = *lo + days_in_month(y, mo) * DAY_MS - 1;
        return true;
    }
    if (*p++ != '-' || !digits(&p, 2, &d) || d < 1 || d > days_in_month(y, mo)) return false;
    int64_t day = days_from_civil(y, (unsigned)mo, (unsigned)d) * DAY_MS;
    if (!*p) {
        *lo = day;
        *hi = day + DAY_MS - 1;
        return true;
    }
    if (*p++ != 'T' || !digits(&p, 2, &h) || h > 23 || *p++ != ':' || !digits(&p, 2, &mi) ||
        mi > 59)
        return false;
    int64_t span = 60000;
    if (*p == ':') {
        p++;
        if (!digits(&p, 2, &s) || s > 60) return false;
        span = 1000;
        if (*p == '.') {
            p++;
            int n = 0, scale = 100;
            while (isdigit((unsigned char)*p)) {
                if (n < 3) ms += (*p - '0') * scale;
                scale /= 10;
                n++;
                p++;
            }
            if (!n) return false;
            span = 1;
        }
    }
    int64_t off = 0;
    if (*p == 'Z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1, oh, om;
        if (!digits(&p, 2, &oh) || *p++ != ':' || !digits(&p, 2, &om) || oh > 14 || om > 59)
            return false;
        off = sign * (oh * 3600000LL + om * 60000LL);
    }
    if (*p) return false;
    *lo = day + h * 3600000LL + mi * 60000LL + s * 1000LL + ms - off;
    *hi = *lo + span - 1;
    return true;
}

/* --- strings -------------------------------------------------------------------- */

/* U+00C0..U+00FF without their accents; '\0' for the two non-letters. */
static const char LATIN1[] = "aaaaaaaceeeeiiiidnooooo\0ouuuuyts"
                             "aaaaaaaceeeeiiiidnooooo\0ouuuuyty";

void fhir_normalize(const char *s, tbuf *out)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        if (p[0] == 0xC3 && p[1] >= 0x80 && p[1] <= 0xBF) {
            char c = LATIN1[p[1] - 0x80 + 0x00]; /* U+00C0 + (p[1] - 0x80) */
            if (c) tbuf_putc(out, c);
            p += 2;
        } else {
            tbuf_putc(out, (char)tolower(*p));
            p++;
        }
    }
    if (!out->p) tbuf_puts(out, "");
}

/* --- extraction ------------------------------------------------------------------ */

typedef struct extract {
    const fhir_param_def *def;
    fhir_index_rows *out;
    tbuf *err;
    const char *path; /* the alternative being walked, for messages */
} extract;

static fhir_index_row *add_row(extract *x)
{
    fhir_index_rows *r = x->out;
    r->v = xgrow(r->v, &r->cap, r->n + 1, sizeof(*r->v));
    fhir_index_row *row = &r->v[r->n++];
    memset(row, 0, sizeof(*row));
    row->param = x->def->name;
    return row;
}

static void add_token(extract *x, const char *sys, const char *code)
{
    if (!code || !*code) return;
    fhir_index_row *row = add_row(x);
    row->sys = sys ? xstrdup(sys) : NULL;
    row->value = xstrdup(code);
}

static void add_string(extract *x, const char *s)
{
    if (!s || !*s) return;
    tbuf b = TBUF_INIT;
    fhir_normalize(s, &b);
    fhir_index_row *row = add_row(x);
    row->value = tbuf_detach(&b, NULL);
}

/* "Patient/1", "https://h/fhir/Patient/1", "Patient/1/_history/2". */
static void add_reference(extract *x, const char *ref)
{
    if (!ref || !strncmp(ref, "urn:", 4) || ref[0] == '#') return;
    char *copy = xstrdup(ref);
    char *hist = strstr(copy, "/_history/");
    if (hist) *hist = '\0';
    char *slash = strrchr(copy, '/');
    if (slash && slash != copy) {
        *slash = '\0';
        const char *id = slash + 1;
        char *tslash = strrchr(copy, '/');
        const char *type = tslash ? tslash + 1 : copy;
        if (*id && fhir_type_known(type) && (!x->def->target || !strcmp(x->def->target, type))) {
            fhir_index_row *row = add_row(x);
            row->sys = xstrdup(type);
            row->value = xstrdup(id);
        }
    }
    free(copy);
}

static int add_date_text(extract *x, const char *s, bool low, bool high, int64_t *lo, int64_t *hi)
{
    int64_t a, b;
    if (!fhir_date_range(s, &a, &b)) {
        tbuf_printf(x->err, "%s: '%s' is not a valid FHIR date or dateTime", x->path, s);
        return -1;
    }
    if (low) *lo = a;
    if (high) *hi = b;
    return 0;
}

static int index_value(extract *x, const json_t *v)
{
    switch (x->def->kind) {
    case FHIR_PARAM_TOKEN:
        if (json_is_string(v)) {
            add_token(x, NULL, json_string_value(v));
        } else if (json_is_boolean(v)) {
            add_token(x, NULL, json_is_true(v) ? "true" : "false");
        } else if (json_is_object(v)) {
            const json_t *coding = json_object_get(v, "coding");
            const char *sys = json_string_value(json_object_get(v, "system"));
            if (json_is_array(coding)) {
                size_t i;
                const json_t *c;
                json_array_foreach(coding, i, c)
                    add_token(x, json_string_value(json_object_get(c, "system")),
                              json_string_value(json_object_get(c, "code")));
            } else if (json_object_get(v, "code")) {
                add_token(x, sys, json_string_value(json_object_get(v, "code")));
            } else {
                add_token(x, sys, json_string_value(json_object_get(v, "value")));
            }
        }
        return 0;
    case FHIR_PARAM_STRING:
        if (json_is_string(v)) {
            add_string(x, json_string_value(v));
        } else if (json_is_object(v)) {
            static const char *const parts[] = {"text", "family", "given", "prefix", "suffix",
                                                "line", "city", "state", "postalCode", "country"};
            for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
                const json_t *p = json_object_get(v, parts[i]);
                if (json_is_string(p)) add_string(x, json_string_value(p));
                size_t k;
                const json_t *e;
                if (json_is_array(p)) json_array_foreach(p, k, e) add_string(x, json_string_value(e));
            }
        }
        return 0;
    case FHIR_PARAM_DATE: {
        int64_t lo = INT64_MIN, hi = INT64_MAX;
        if (json_is_string(v)) {
            if (add_date_text(x, json_string_value(v), true, true, &lo, &hi) != 0) return -1;
        } else if (json_is_object(v)) {
            const json_t *start = json_object_get(v, "start"), *end = json_object_get(v, "end");
            if (!start && !end) return 0;
            if (json_is_string(start) &&
                add_date_text(x, json_string_value(start), true, false, &lo, &hi) != 0)
                return -1;
            if (json_is_string(end) &&
                add_date_text(x, json_string_value(end), false, true, &lo, &hi) != 0)
                return -1;
        } else {
            tbuf_printf(x->err, "%s: a date must be a string", x->path);
            return -1;
        }
        fhir_index_row *row = add_row(x);
        row->lo = lo;
        row->hi = hi;
        return 0;
    }
    case FHIR_PARAM_REFERENCE:
        if (json_is_object(v)) add_reference(x, json_string_value(json_object_get(v, "reference")));
        return 0;
    }
    return 0;
}

/* Walks path[0..len) from v; arrays are flattened at every step. */
static int walk(extract *x, const json_t *v, const char *path, size_t len)
{
    if (json_is_array(v)) {
        size_t i;
        const json_t *e;
        json_array_foreach(v, i, e) if (walk(x, e, path, len) != 0) return -1;
        return 0;
    }
    if (!len) return index_value(x, v);
    if (!json_is_object(v)) return 0;
    const char *dot = memchr(path, '.', len);
    size_t n = dot ? (size_t)(dot - path) : len;
    char key[64];
    if (n >= sizeof key) return 0;
    memcpy(key, path, n);
    key[n] = '\0';
    const json_t *child = json_object_get(v, key);
    if (!child) return 0;
    return walk(x, child, dot ? dot + 1 : path + len, dot ? len - n - 1 : 0);
}

int fhir_index_extract(const json_t *res, const char *type, fhir_index_rows *out, tbuf *err)
{
    for (size_t i = 0; i < sizeof PARAMS / sizeof PARAMS[0]; i++) {
        if (strcmp(PARAMS[i].type, type)) continue;
        extract x = {&PARAMS[i], out, err, NULL};
        for (const char *p = PARAMS[i].paths; *p;) {
            const char *bar = strchr(p, '|');
            size_t n = bar ? (size_t)(bar - p) : strlen(p);
            char path[96];
            snprintf(path, sizeof path, "%s.%.*s", type, (int)n, p);
            x.path = path;
            if (walk(&x, res, p, n) != 0) return -1;
            p += n + (bar ? 1 : 0);
        }
    }
    return 0;
}

void fhir_index_rows_free(fhir_index_rows *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->v[i].sys);
        free(r->v[i].value);
    }
    free(r->v);
    memset(r, 0, sizeof(*r));
}
