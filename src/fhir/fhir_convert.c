/*
 * fhir_convert: HL7 v2 -> FHIR R4 transaction Bundle (see fhir_convert.h).
 *
 * A conversion runs on one `conv` context: the message, the options, the
 * Bundle's entry array and a small ring of scratch buffers that hold decoded
 * field values (a value returned by val() stays valid for the next
 * VAL_RING - 1 calls, enough to build one element). Resources are built
 * bottom-up as jansson objects and added to the Bundle in dependency order
 * (Organization, Practitioner, Patient, Encounter, Observation,
 * DiagnosticReport). Code systems, genders, encounter classes and statuses
 * are static tables. Empty and "" (null) HL7 values produce no element.
 */
#include "fhir/fhir_convert.h"

#include <assert.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#define VAL_RING 8

typedef struct conv {
    const hl7_msg *m;
    const fhir_options *opt;
    json_t *entries;
    char offset[8]; /* "+05:30", "Z": for times without their own offset */
    tbuf ring[VAL_RING];
    unsigned next;
    tbuf date; /* set_date's output, reused */
    /* SHA-256 fetched once per conversion: SHA256() fetches the algorithm
     * again on every call, a tenth of the conversion's time. NULL when
     * OpenSSL could not provide them (ids then come from SHA256()). */
    EVP_MD *sha256;
    EVP_MD_CTX *md_ctx;
    char patient_ref[48];   /* "Patient/<id>" */
    char encounter_ref[48]; /* "" when no PV1 */
} conv;

typedef struct pair {
    const char *from, *to;
} pair;

static const char *lookup(const pair *t, const char *key)
{
    if (!key) return NULL;
    for (; t->from; t++)
        if (!strcmp(t->from, key)) return t->to;
    return NULL;
}

static const pair code_systems[] = {
    {"LN", "http://loinc.org"},
    {"SCT", "http://snomed.info/sct"},
    {"SNM", "http://snomed.info/sct"},
    {"UCUM", "http://unitsofmeasure.org"},
    {"I10", "http://hl7.org/fhir/sid/icd-10"},
    {"I10C", "http://hl7.org/fhir/sid/icd-10-cm"},
    {"I9CDX", "http://hl7.org/fhir/sid/icd-9-cm"},
    {"RXNORM", "http://www.nlm.nih.gov/research/umls/rxnorm"},
    {"CDCREC", "urn:oid:2.16.840.1.113883.6.238"},
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
    /* PV1-2 -> v3-ActCode code|display */
    {"I", "IMP|inpatient encounter"},
    {"O", "AMB|ambulatory"},
    {"E", "EMER|emergency"},
    {"P", "PRENC|pre-admission"},
    {"R", "AMB|ambulatory"},
    {"B", "IMP|inpatient encounter"},
    {NULL, NULL},
};
static const pair obs_statuses[] = {
    /* OBX-11 */
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
    /* OBR-25 */
    {"F", "final"},      {"P", "preliminary"}, {"C", "corrected"}, {"X", "cancelled"},
    {"R", "partial"},    {"S", "partial"},     {"A", "partial"},   {"I", "registered"},
    {"O", "registered"}, {"M", "corrected"},   {NULL, NULL},
};
static const pair interpretations[] = {
    /* OBX-8 codes kept as v3 codes */
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

#define SYS_V2_0203 "http://terminology.hl7.org/CodeSystem/v2-0203"
#define SYS_ACTCODE "http://terminology.hl7.org/CodeSystem/v3-ActCode"
#define SYS_INTERP "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
#define SYS_OBS_CAT "http://terminology.hl7.org/CodeSystem/observation-category"
#define SYS_UCUM "http://unitsofmeasure.org"
#define US_CORE "http://hl7.org/fhir/us/core/StructureDefinition/"

const char *fhir_strerror(fhir_status s)
{
    switch (s) {
    case FHIR_OK:
        return "ok";
    case FHIR_ERR_UNSUPPORTED:
        return "message type not converted";
    case FHIR_ERR_MISSING:
        return "required segment missing";
    }
    return "unknown error";
}

/* --- small utilities ------------------------------------------------------ */

void fhir_stable_id(const char *key, char out[33])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)key, strlen(key), md);
    for (int i = 0; i < 16; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[32] = '\0';
}

/* fhir_stable_id() on the conversion's digest context: the same id. */
static void stable_id(conv *c, const char *key, char out[33])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!c->md_ctx || !EVP_DigestInit_ex2(c->md_ctx, c->sha256, NULL) ||
        !EVP_DigestUpdate(c->md_ctx, key, strlen(key)) ||
        !EVP_DigestFinal_ex(c->md_ctx, md, &n)) {
        fhir_stable_id(key, out);
        return;
    }
    for (int i = 0; i < 16; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[32] = '\0';
}

/* Decoded value at (seg index, field, rep, comp, sub), or NULL when empty,
 * absent or the explicit null "". comp/sub 0 = the whole element. */
static const char *val(conv *c, long seg, uint32_t f, uint32_t r, uint32_t comp, uint32_t sub)
{
    hl7_span s;
    if (seg < 0 || hl7_raw(c->m, (uint32_t)seg, f, r, comp, sub, &s) != HL7_VALUE) return NULL;
    tbuf *b = &c->ring[c->next++ % VAL_RING];
    tbuf_reset(b);
    hl7_unescape(hl7_delims_of(c->m), hl7_charset_of(c->m), s.p, s.len, b);
    return b->len ? tbuf_cstr(b) : NULL;
}

/* Keys are always string constants (valid UTF-8), so only values are
 * checked: a value that is not valid UTF-8 (a charset passed through
 * undecoded) produces no element, as json_string() refuses it. */
static void set_str(json_t *o, const char *key, const char *s)
{
    if (s && *s) json_object_set_new_nocheck(o, key, json_string(s));
}

/* Sets key to text known to be valid UTF-8: constants and ASCII built here
 * (ids, references). */
static void set_const(json_t *o, const char *key, const char *s)
{
    json_object_set_new_nocheck(o, key, json_string_nocheck(s));
}

static void push(json_t *o, const char *key, json_t *item)
{
    json_t *a = json_object_get(o, key);
    if (!a) {
        a = json_array();
        json_object_set_new_nocheck(o, key, a);
    }
    json_array_append_new(a, item);
}

static json_t *reference(const char *ref)
{
    json_t *r = json_object();
    set_const(r, "reference", ref);
    return r;
}

/* Appends s to out percent-encoding everything but RFC 3986 unreserved. */
static void uri_part(tbuf *out, const char *s)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (isalnum(ch) || strchr("-._~", ch))
            tbuf_putc(out, (char)ch);
        else
            tbuf_printf(out, "%%%02X", ch);
    }
}

static bool is_oid(const char *s)
{
    if (!s || !isdigit((unsigned char)*s)) return false;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s) && *s != '.') return false;
    return s[-1] != '.';
}

/* Appends the system URI for a coding-system name (CWE-3). */
static void code_system(const char *name, tbuf *out)
{
    const char *known = lookup(code_systems, name);
    if (known) {
        tbuf_puts(out, known);
    } else if (!strncmp(name, "HL7", 3) && strlen(name) == 7) {
        tbuf_printf(out, "http://terminology.hl7.org/CodeSystem/v2-%s", name + 3);
    } else {
        tbuf_puts(out, "urn:tern:cs:");
        uri_part(out, name);
    }
}

/* --- dates ---------------------------------------------------------------- */

static bool digits(const char *s, int n)
{
    for (int i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i])) return false;
    return true;
}

static int num2(const char *s)
{
    return (s[0] - '0') * 10 + (s[1] - '0');
}

/* Parses a "+HHMM"/"-HHMM" offset into "+HH:MM" (8 bytes). */
static bool parse_offset(const char *s, char out[8])
{
    if ((*s != '+' && *s != '-') || strlen(s) != 5 || !digits(s + 1, 4)) return false;
    if (num2(s + 1) > 14 || num2(s + 3) > 59) return false;
    snprintf(out, 8, "%c%.2s:%.2s", *s, s + 1, s + 3);
    return true;
}

bool fhir_datetime(const char *dtm, const char *offset, bool date_only, tbuf *out)
{
    char tz[8] = "";
    size_t n = strcspn(dtm, "+-");
    if (dtm[n] && !parse_offset(dtm + n, tz)) return false;
    size_t int_len = strcspn(dtm, ".+-");
    if (int_len > n) int_len = n;
    if (int_len < 4 || int_len % 2 || int_len > 14 || !digits(dtm, (int)int_len)) return false;
    const char *frac = dtm[int_len] == '.' ? dtm + int_len + 1 : NULL;
    size_t frac_len = frac ? n - int_len - 1 : 0;
    if (frac && (frac_len == 0 || int_len != 14 || !digits(frac, (int)frac_len))) return false;
    if (int_len >= 6 && (num2(dtm + 4) < 1 || num2(dtm + 4) > 12)) return false;
    if (int_len >= 8 && (num2(dtm + 6) < 1 || num2(dtm + 6) > 31)) return false;
    if (int_len >= 10 && num2(dtm + 8) > 23) return false;
    if (int_len >= 12 && num2(dtm + 10) > 59) return false;
    if (int_len >= 14 && num2(dtm + 12) > 60) return false;
    if (!strncmp(dtm, "0000", 4)) return false;

    char text[32]; /* "YYYY-MM-DDTHH:MM:SS": the fixed-width part */
    size_t len = 0;
    memcpy(text, dtm, 4);
    len = 4;
    for (size_t i = 4; i < 8 && i < int_len; i += 2) {
        text[len++] = '-';
        memcpy(text + len, dtm + i, 2);
        len += 2;
    }
    tbuf_put(out, text, len);
    if (int_len <= 8 || date_only) return true;
    len = 0;
    for (size_t i = 8; i < 14; i += 2) {
        text[len++] = i == 8 ? 'T' : ':';
        memcpy(text + len, i < int_len ? dtm + i : "00", 2);
        len += 2;
    }
    tbuf_put(out, text, len);
    if (frac) {
        tbuf_putc(out, '.');
        tbuf_put(out, frac, frac_len);
    }
    tbuf_puts(out, tz[0] ? tz : offset && *offset ? offset : "Z");
    return true;
}

/* Sets key to the FHIR form of the DTM at (seg, f); kind 0 dateTime,
 * 1 date, 2 instant (only when the value has seconds). */
static void set_date(conv *c, json_t *o, const char *key, long seg, uint32_t f, int kind)
{
    const char *v = val(c, seg, f, 1, 1, 1);
    if (!v) return;
    if (kind == 2 && strcspn(v, ".+-") < 14) return;
    tbuf_reset(&c->date);
    if (fhir_datetime(v, c->offset, kind == 1, &c->date)) set_str(o, key, c->date.p);
}

/* --- data types ------------------------------------------------------------ */

/* CWE/CE at (seg, f, rep): code, display, system. NULL when empty. */
static json_t *codeable(conv *c, long seg, uint32_t f, uint32_t r)
{
    const char *code = val(c, seg, f, r, 1, 1);
    const char *text = val(c, seg, f, r, 2, 1);
    const char *sys = val(c, seg, f, r, 3, 1);
    if (!code && !text) return NULL;
    json_t *cc = json_object();
    if (code) {
        json_t *coding = json_object();
        if (sys) {
            tbuf b = TBUF_INIT;
            code_system(sys, &b);
            set_str(coding, "system", b.p);
            tbuf_free(&b);
        }
        set_str(coding, "code", code);
        set_str(coding, "display", text);
        push(cc, "coding", coding);
    }
    set_str(cc, "text", text);
    return cc;
}

static json_t *codeable_or_unknown(conv *c, long seg, uint32_t f)
{
    json_t *cc = codeable(c, seg, f, 1);
    if (cc) return cc;
    cc = json_object();
    set_const(cc, "text", "unknown");
    return cc;
}

static const pair authorities[] = {
    /* well-known assigning authorities */
    {"NPI", "http://hl7.org/fhir/sid/us-npi"},
    {"USSSA", "http://hl7.org/fhir/sid/us-ssn"},
    {"SSA", "http://hl7.org/fhir/sid/us-ssn"},
    {NULL, NULL},
};

/* Identifier system from an HD, appended to out; false when there is none.
 * comp > 0: the HD is component comp (CX-4, XCN-9, EI-2) and its parts are
 * subcomponents; comp 0: the HD is the field itself (MSH-4). */
static bool hd_system(conv *c, long seg, uint32_t f, uint32_t r, uint32_t comp, tbuf *out)
{
    const char *ns = comp ? val(c, seg, f, r, comp, 1) : val(c, seg, f, r, 1, 1);
    const char *uid = comp ? val(c, seg, f, r, comp, 2) : val(c, seg, f, r, 2, 1);
    const char *type = comp ? val(c, seg, f, r, comp, 3) : val(c, seg, f, r, 3, 1);
    const char *known = lookup(authorities, ns);
    if (uid && (is_oid(uid) || (type && !strcmp(type, "ISO")))) {
        tbuf_printf(out, "urn:oid:%s", uid);
    } else if (uid && type && !strcmp(type, "UUID")) {
        tbuf_puts(out, "urn:uuid:");
        for (const char *p = uid; *p; p++)
            tbuf_putc(out, (char)tolower((unsigned char)*p));
    } else if (known) {
        tbuf_puts(out, known);
    } else if (ns || uid) {
        tbuf_puts(out, "urn:tern:id:");
        uri_part(out, ns ? ns : uid);
    } else {
        return false;
    }
    return true;
}

/* An Identifier from a value and the HD at `hd_comp`; type code optional.
 * key gets "Type|system|value" for stable ids. NULL when no value. */
static json_t *identifier(conv *c, long seg, uint32_t f, uint32_t r, uint32_t hd_comp,
                          const char *type, const char *res_type, tbuf *key)
{
    const char *value = val(c, seg, f, r, 1, 1);
    if (!value) return NULL;
    json_t *id = json_object();
    tbuf sys = TBUF_INIT;
    if (type) {
        json_t *cc = json_object();
        push(cc, "coding", json_pack("{s:s,s:s}", "system", SYS_V2_0203, "code", type));
        json_object_set_new(id, "type", cc);
    }
    if (hd_system(c, seg, f, r, hd_comp, &sys)) set_str(id, "system", sys.p);
    set_str(id, "value", value);
    if (key) tbuf_printf(key, "%s|%s|%s", res_type, sys.len ? sys.p : "", value);
    tbuf_free(&sys);
    return id;
}

static json_t *resource(const char *type, const char *id)
{
    json_t *r = json_object();
    set_const(r, "resourceType", type);
    set_const(r, "id", id);
    return r;
}

/* Adds r to the Bundle as PUT Type/id; steals r. */
static void add_entry(conv *c, json_t *r)
{
    const char *type = json_string_value(json_object_get(r, "resourceType"));
    const char *id = json_string_value(json_object_get(r, "id"));
    char url[128];
    snprintf(url, sizeof url, "%s/%s", type, id);
    json_t *e = json_object();
    if (c->opt && c->opt->base_url) {
        tbuf full = TBUF_INIT;
        tbuf_printf(&full, "%s/%s", c->opt->base_url, url);
        set_str(e, "fullUrl", full.p);
        tbuf_free(&full);
    }
    json_object_set_new_nocheck(e, "resource", r);
    json_t *req = json_object();
    set_const(req, "method", "PUT");
    set_const(req, "url", url);
    json_object_set_new_nocheck(e, "request", req);
    json_array_append_new(c->entries, e);
}

/* Derives the id from key, or from the message control id and a label when
 * key is empty (nothing identifies the resource: stable per message only). */
static void id_from(conv *c, tbuf *key, const char *type, const char *label, char id[33])
{
    if (!key->len) {
        const char *ctl = val(c, 0, 10, 1, 1, 1);
        tbuf_printf(key, "%s|msh10|%s|%s", type, ctl ? ctl : "", label);
    }
    stable_id(c, key->p, id);
}

/* --- Patient ---------------------------------------------------------------- */

static void patient_names(conv *c, long pid, json_t *p)
{
    uint32_t n = hl7_rep_count(c->m, (uint32_t)pid, 5);
    for (uint32_t r = 1; r <= n; r++) {
        json_t *name = json_object();
        set_str(name, "use", lookup(name_uses, val(c, pid, 5, r, 7, 1)));
        set_str(name, "family", val(c, pid, 5, r, 1, 1));
        for (uint32_t comp = 2; comp <= 3; comp++) {
            const char *g = val(c, pid, 5, r, comp, 1);
            if (g) push(name, "given", json_string(g));
        }
        const char *prefix = val(c, pid, 5, r, 5, 1);
        if (prefix) push(name, "prefix", json_string(prefix));
        for (uint32_t comp = 4; comp <= 6; comp += 2) {
            const char *s = val(c, pid, 5, r, comp, 1);
            if (s) push(name, "suffix", json_string(s));
        }
        if (json_object_size(name) > (json_object_get(name, "use") ? 1u : 0u))
            push(p, "name", name);
        else
            json_decref(name);
    }
}

static void patient_addresses(conv *c, long pid, json_t *p)
{
    uint32_t n = hl7_rep_count(c->m, (uint32_t)pid, 11);
    for (uint32_t r = 1; r <= n; r++) {
        json_t *a = json_object();
        for (uint32_t comp = 1; comp <= 2; comp++) {
            const char *line = val(c, pid, 11, r, comp, 1);
            if (line) push(a, "line", json_string(line));
        }
        set_str(a, "city", val(c, pid, 11, r, 3, 1));
        set_str(a, "state", val(c, pid, 11, r, 4, 1));
        set_str(a, "postalCode", val(c, pid, 11, r, 5, 1));
        set_str(a, "country", val(c, pid, 11, r, 6, 1));
        if (json_object_size(a)) {
            set_str(a, "use", lookup(address_uses, val(c, pid, 11, r, 7, 1)));
            push(p, "address", a);
        } else {
            json_decref(a);
        }
    }
}

static void patient_telecoms(conv *c, long pid, uint32_t f, const char *default_use, json_t *p)
{
    uint32_t n = hl7_rep_count(c->m, (uint32_t)pid, f);
    for (uint32_t r = 1; r <= n; r++) {
        const char *use = val(c, pid, f, r, 2, 1);
        const char *equip = val(c, pid, f, r, 3, 1);
        const char *value = val(c, pid, f, r, 1, 1);
        const char *email = val(c, pid, f, r, 4, 1);
        const char *system = lookup(telecom_systems, equip);
        if (!value && email) {
            value = email;
            system = "email";
        }
        if (!value) continue;
        json_t *t = json_object();
        set_str(t, "system", system ? system : (use && !strcmp(use, "NET")) ? "email" : "phone");
        set_str(t, "value", value);
        const char *u = lookup(telecom_uses, use);
        set_str(t, "use", equip && !strcmp(equip, "CP") ? "mobile" : u ? u : default_use);
        push(p, "telecom", t);
    }
}

/* US Core race (PID-10) or ethnicity (PID-22): ombCategory for CDC codes
 * (NNNN-N), text always (US Core requires it). */
static void us_core_ext(conv *c, long pid, uint32_t f, const char *name, json_t *p)
{
    uint32_t n = hl7_rep_count(c->m, (uint32_t)pid, f);
    json_t *ext = json_object();
    tbuf text = TBUF_INIT;
    for (uint32_t r = 1; r <= n; r++) {
        const char *code = val(c, pid, f, r, 1, 1);
        const char *display = val(c, pid, f, r, 2, 1);
        if (code && strlen(code) == 6 && digits(code, 4) && code[4] == '-' &&
            isdigit((unsigned char)code[5])) {
            json_t *coding =
                json_pack("{s:s,s:s}", "system", "urn:oid:2.16.840.1.113883.6.238", "code", code);
            set_str(coding, "display", display);
            push(ext, "extension",
                 json_pack("{s:s,s:o}", "url", "ombCategory", "valueCoding", coding));
        }
        if (!text.len && (display || code)) tbuf_puts(&text, display ? display : code);
    }
    if (text.len) {
        push(ext, "extension", json_pack("{s:s,s:s}", "url", "text", "valueString", text.p));
        tbuf_reset(&text);
        tbuf_printf(&text, US_CORE "%s", name);
        json_object_set_new(ext, "url", json_string(text.p));
        push(p, "extension", ext);
    } else {
        json_decref(ext);
    }
    tbuf_free(&text);
}

static void build_patient(conv *c, long pid, const char *org_ref)
{
    json_t *p = json_object();
    tbuf key = TBUF_INIT;
    uint32_t n = hl7_rep_count(c->m, (uint32_t)pid, 3);
    for (uint32_t r = 1; r <= n; r++) {
        json_t *id =
            identifier(c, pid, 3, r, 4, val(c, pid, 3, r, 5, 1), "Patient", key.len ? NULL : &key);
        if (id) push(p, "identifier", id);
    }
    char id[33];
    id_from(c, &key, "Patient", "PID", id);
    tbuf_free(&key);
    snprintf(c->patient_ref, sizeof c->patient_ref, "Patient/%s", id);
    json_t *r = resource("Patient", id);
    json_object_update(r, p);
    json_decref(p);
    us_core_ext(c, pid, 10, "us-core-race", r);
    us_core_ext(c, pid, 22, "us-core-ethnicity", r);
    patient_names(c, pid, r);
    patient_telecoms(c, pid, 13, "home", r);
    patient_telecoms(c, pid, 14, "work", r);
    set_str(r, "gender", lookup(genders, val(c, pid, 8, 1, 1, 1)));
    set_date(c, r, "birthDate", pid, 7, 1);
    patient_addresses(c, pid, r);
    if (org_ref) json_object_set_new(r, "managingOrganization", reference(org_ref));
    add_entry(c, r);
}

/* --- Organization, Practitioner, Encounter ------------------------------------ */

/* Organization for the sending facility MSH-4 (HD): identified by its OID
 * (urn:ietf:rfc:3986 urn:oid:...) or by its name; writes its reference. */
static bool build_organization(conv *c, char ref[48])
{
    tbuf sys = TBUF_INIT, key = TBUF_INIT;
    const char *name = val(c, 0, 4, 1, 1, 1);
    bool has_oid = hd_system(c, 0, 4, 1, 0, &sys) && !strncmp(sys.p, "urn:oid:", 8);
    if (!name && !has_oid) {
        tbuf_free(&sys);
        return false;
    }
    const char *system = has_oid ? "urn:ietf:rfc:3986" : "urn:tern:facility";
    const char *value = has_oid ? sys.p : name;
    tbuf_printf(&key, "Organization|%s|%s", system, value);
    char id[33];
    stable_id(c, key.p, id);
    json_t *o = resource("Organization", id);
    push(o, "identifier", json_pack("{s:s,s:s}", "system", system, "value", value));
    set_str(o, "name", name);
    add_entry(c, o);
    snprintf(ref, 48, "Organization/%s", id);
    tbuf_free(&key);
    tbuf_free(&sys);
    return true;
}

/* Practitioner from an XCN (PV1-7 first repetition); writes its reference. */
static bool build_practitioner(conv *c, long seg, uint32_t f, char ref[48])
{
    tbuf key = TBUF_INIT;
    json_t *ident = identifier(c, seg, f, 1, 9, NULL, "Practitioner", &key);
    const char *family = val(c, seg, f, 1, 2, 1);
    if (!ident && !family) return false;
    if (!key.len) tbuf_printf(&key, "Practitioner|name|%s", family);
    char id[33];
    stable_id(c, key.p, id);
    tbuf_free(&key);
    json_t *p = resource("Practitioner", id);
    if (ident) push(p, "identifier", ident);
    json_t *name = json_object();
    set_str(name, "family", family);
    const char *given = val(c, seg, f, 1, 3, 1);
    if (given) push(name, "given", json_string(given));
    const char *prefix = val(c, seg, f, 1, 6, 1);
    if (prefix) push(name, "prefix", json_string(prefix));
    if (json_object_size(name))
        push(p, "name", name);
    else
        json_decref(name);
    add_entry(c, p);
    snprintf(ref, 48, "Practitioner/%s", id);
    return true;
}

static void encounter_class(conv *c, long pv1, json_t *e)
{
    const char *cls = lookup(encounter_classes, val(c, pv1, 2, 1, 1, 1));
    if (!cls) {
        json_object_set_new(e, "class",
                            json_pack("{s:s,s:s,s:s}", "system",
                                      "http://terminology.hl7.org/CodeSystem/v3-NullFlavor", "code",
                                      "UNK", "display", "unknown"));
        return;
    }
    const char *bar = strchr(cls, '|');
    json_object_set_new(e, "class",
                        json_pack("{s:s,s:s#,s:s}", "system", SYS_ACTCODE, "code", cls,
                                  (int)(bar - cls), "display", bar + 1));
}

static void build_encounter(conv *c, long pv1, const char *trigger, const char *doctor,
                            const char *org)
{
    tbuf key = TBUF_INIT;
    json_t *ident = identifier(c, pv1, 19, 1, 4, "VN", "Encounter", &key);
    char id[33];
    id_from(c, &key, "Encounter", c->patient_ref, id);
    tbuf_free(&key);
    json_t *e = resource("Encounter", id);
    if (ident) push(e, "identifier", ident);
    bool ended = val(c, pv1, 45, 1, 1, 1) || (trigger && !strcmp(trigger, "A03"));
    set_str(e, "status", ended ? "finished" : "in-progress");
    encounter_class(c, pv1, e);
    json_object_set_new(e, "subject", reference(c->patient_ref));
    if (doctor)
        push(e, "participant",
             json_pack("{s:[{s:[{s:s,s:s,s:s}]}],s:o}", "type", "coding", "system",
                       "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code", "ATND",
                       "display", "attender", "individual", reference(doctor)));
    json_t *period = json_object();
    set_date(c, period, "start", pv1, 44, 0);
    set_date(c, period, "end", pv1, 45, 0);
    if (json_object_size(period))
        json_object_set_new(e, "period", period);
    else
        json_decref(period);
    if (org) json_object_set_new(e, "serviceProvider", reference(org));
    snprintf(c->encounter_ref, sizeof c->encounter_ref, "Encounter/%s", id);
    add_entry(c, e);
}

/* --- Observation ------------------------------------------------------------- */

/* Parses a whole decimal (optional sign); false if anything else. */
static bool parse_number(const char *s, double *out)
{
    char *end;
    if (!s || !*s || isspace((unsigned char)*s)) return false;
    *out = strtod(s, &end);
    return end != s && *end == '\0' && strspn(s, "+-0123456789.") == strlen(s);
}

static json_t *number(double v)
{
    if (v > -1e15 && v < 1e15 && v == (double)(long long)v) return json_integer((long long)v);
    return json_real(v);
}

static json_t *quantity(double v, const char *unit, const char *unit_sys)
{
    json_t *q = json_object();
    json_object_set_new(q, "value", number(v));
    if (unit) {
        set_str(q, "unit", unit);
        if (!unit_sys || !strcmp(unit_sys, "UCUM")) {
            set_str(q, "system", SYS_UCUM);
            set_str(q, "code", unit);
        }
    }
    return q;
}

static void obs_value(conv *c, long obx, json_t *o)
{
    const char *type = val(c, obx, 2, 1, 1, 1);
    const char *unit = val(c, obx, 6, 1, 1, 1);
    const char *unit_sys = val(c, obx, 6, 1, 3, 1);
    const char *whole = val(c, obx, 5, 1, 0, 0);
    if (!whole) return;
    type = type ? type : "ST";
    double v;
    if (!strcmp(type, "NM") && parse_number(whole, &v)) {
        json_object_set_new(o, "valueQuantity", quantity(v, unit, unit_sys));
    } else if (!strcmp(type, "SN")) {
        const char *cmp = val(c, obx, 5, 1, 1, 1);
        const char *n1 = val(c, obx, 5, 1, 2, 1);
        bool simple = !val(c, obx, 5, 1, 3, 1) && !val(c, obx, 5, 1, 4, 1);
        bool cmp_ok = !cmp || !strcmp(cmp, "<") || !strcmp(cmp, ">") || !strcmp(cmp, "<=") ||
                      !strcmp(cmp, ">=");
        if (simple && cmp_ok && parse_number(n1, &v)) {
            json_t *q = quantity(v, unit, unit_sys);
            set_str(q, "comparator", cmp);
            json_object_set_new(o, "valueQuantity", q);
        } else {
            set_str(o, "valueString", whole);
        }
    } else if (!strcmp(type, "CWE") || !strcmp(type, "CE") || !strcmp(type, "CNE")) {
        json_t *cc = codeable(c, obx, 5, 1);
        if (cc) json_object_set_new(o, "valueCodeableConcept", cc);
    } else if (!strcmp(type, "DT") || !strcmp(type, "DTM") || !strcmp(type, "TS")) {
        set_date(c, o, "valueDateTime", obx, 5, 0);
    } else {
        set_str(o, "valueString", whole);
    }
}

/* OBX-7: "LOW-HIGH", "<X"/"<=X" (high), ">X"/">=X" (low), else text. */
static void obs_range(conv *c, long obx, json_t *o)
{
    const char *r = val(c, obx, 7, 1, 0, 0);
    if (!r) return;
    const char *unit = val(c, obx, 6, 1, 1, 1), *unit_sys = val(c, obx, 6, 1, 3, 1);
    json_t *rr = json_object();
    double lo, hi;
    char *end;
    if (*r == '<' || *r == '>') {
        const char *num = r + 1 + (r[1] == '=');
        if (parse_number(num, &hi))
            json_object_set_new(rr, *r == '<' ? "high" : "low", quantity(hi, unit, unit_sys));
    } else {
        lo = strtod(r, &end);
        if (end != r && *end == '-' && parse_number(end + 1, &hi)) {
            json_object_set_new(rr, "low", quantity(lo, unit, unit_sys));
            json_object_set_new(rr, "high", quantity(hi, unit, unit_sys));
        }
    }
    if (!json_object_size(rr)) set_str(rr, "text", r);
    push(o, "referenceRange", rr);
}

static void obs_interpretation(conv *c, long obx, json_t *o)
{
    uint32_t n = hl7_rep_count(c->m, (uint32_t)obx, 8);
    for (uint32_t r = 1; r <= n; r++) {
        const char *code = val(c, obx, 8, r, 1, 1);
        const char *display = lookup(interpretations, code);
        if (!code) continue;
        json_t *cc = json_object();
        if (display) { /* code is one of the table's (ASCII) */
            json_t *coding = json_object();
            set_const(coding, "system", SYS_INTERP);
            set_const(coding, "code", code);
            set_const(coding, "display", display);
            push(cc, "coding", coding);
        }
        else
            set_str(cc, "text", code);
        push(o, "interpretation", cc);
    }
}

/* Builds the Observation for OBX at index obx; returns its reference in ref.
 * order_key identifies the order (filler/placer or message), n the OBX's
 * position under it. */
static void build_observation(conv *c, long obx, long obr, const char *order_key, unsigned n,
                              char ref[48])
{
    tbuf key = TBUF_INIT;
    const char *code = val(c, obx, 3, 1, 1, 1);
    const char *sub = val(c, obx, 4, 1, 1, 1);
    tbuf_printf(&key, "Observation|%s|%u|%s|%s", order_key, n, code ? code : "", sub ? sub : "");
    char id[33];
    stable_id(c, key.p, id);
    tbuf_free(&key);
    json_t *o = resource("Observation", id);
    const char *st = lookup(obs_statuses, val(c, obx, 11, 1, 1, 1));
    set_str(o, "status", st ? st : "unknown");
    json_t *lab = json_object();
    set_const(lab, "system", SYS_OBS_CAT);
    set_const(lab, "code", "laboratory");
    set_const(lab, "display", "Laboratory");
    json_t *category = json_object();
    push(category, "coding", lab);
    push(o, "category", category);
    json_object_set_new(o, "code", codeable_or_unknown(c, obx, 3));
    json_object_set_new(o, "subject", reference(c->patient_ref));
    if (c->encounter_ref[0]) json_object_set_new(o, "encounter", reference(c->encounter_ref));
    set_date(c, o, "effectiveDateTime", obx, 14, 0);
    if (!json_object_get(o, "effectiveDateTime")) set_date(c, o, "effectiveDateTime", obr, 7, 0);
    obs_value(c, obx, o);
    obs_interpretation(c, obx, o);
    obs_range(c, obx, o);
    snprintf(ref, 48, "Observation/%s", id);
    add_entry(c, o);
}

/* --- DiagnosticReport and ORU ------------------------------------------------- */

/* Key text for an order: filler EI (OBR-3) else placer (OBR-2) else the
 * message and the OBR's position. Adds the identifiers to report. */
static void order_key(conv *c, long obr, unsigned pos, json_t *report, tbuf *key)
{
    static const struct {
        uint32_t field;
        const char *type;
    } ids[] = {{3, "FILL"}, {2, "PLAC"}};
    for (size_t i = 0; i < 2 && obr >= 0; i++) {
        tbuf k = TBUF_INIT;
        json_t *id = identifier(c, obr, ids[i].field, 1, 2, ids[i].type, "Order", &k);
        if (id && report)
            push(report, "identifier", id);
        else
            json_decref(id);
        if (id && !key->len) tbuf_puts(key, k.p);
        tbuf_free(&k);
    }
    if (!key->len) {
        const char *ctl = val(c, 0, 10, 1, 1, 1);
        tbuf_printf(key, "Order|msh10|%s|%u", ctl ? ctl : "", pos);
    }
}

static void build_report(conv *c, long obr, unsigned pos, long first_obx, long end)
{
    json_t *rep = json_object();
    tbuf key = TBUF_INIT;
    order_key(c, obr, pos, rep, &key);
    unsigned n = 0;
    for (long i = first_obx; i < end; i++) {
        if (strcmp(hl7_seg_at(c->m, (uint32_t)i)->id, "OBX")) continue;
        char ref[48];
        build_observation(c, i, obr, key.p, ++n, ref);
        push(rep, "result", reference(ref));
    }
    if (obr < 0) { /* OBX without OBR: Observations only */
        json_decref(rep);
        tbuf_free(&key);
        return;
    }
    tbuf_puts(&key, "|report");
    char id[33];
    stable_id(c, key.p, id);
    tbuf_free(&key);
    json_t *r = resource("DiagnosticReport", id);
    json_object_update(r, rep);
    json_decref(rep);
    const char *st = lookup(report_statuses, val(c, obr, 25, 1, 1, 1));
    set_str(r, "status", st ? st : "unknown");
    json_object_set_new(r, "code", codeable_or_unknown(c, obr, 4));
    json_object_set_new(r, "subject", reference(c->patient_ref));
    if (c->encounter_ref[0]) json_object_set_new(r, "encounter", reference(c->encounter_ref));
    set_date(c, r, "effectiveDateTime", obr, 7, 0);
    set_date(c, r, "issued", obr, 22, 2);
    add_entry(c, r);
}

/* Groups the segments by OBR: each OBR with the OBX that follow it up to the
 * next OBR makes one DiagnosticReport; OBX before any OBR (group 0, obr -1)
 * make Observations only. */
static void convert_oru(conv *c, const char *trigger)
{
    long pv1 = hl7_seg_find(c->m, "PV1", 1);
    build_patient(c, hl7_seg_find(c->m, "PID", 1), NULL);
    if (pv1 >= 0) build_encounter(c, pv1, trigger, NULL, NULL);
    uint32_t nseg = hl7_seg_count(c->m);
    long obr = -1, start = 0;
    unsigned pos = 0;
    for (uint32_t i = 1; i <= nseg; i++) {
        if (i < nseg && strcmp(hl7_seg_at(c->m, i)->id, "OBR")) continue;
        build_report(c, obr, pos, start, i);
        obr = i;
        start = i + 1;
        pos++;
    }
}

static void convert_adt(conv *c, const char *trigger)
{
    char org[48] = "", doctor[48] = "";
    bool has_org = build_organization(c, org);
    long pv1 = hl7_seg_find(c->m, "PV1", 1);
    bool has_doctor = pv1 >= 0 && build_practitioner(c, pv1, 7, doctor);
    build_patient(c, hl7_seg_find(c->m, "PID", 1), has_org ? org : NULL);
    if (pv1 >= 0)
        build_encounter(c, pv1, trigger, has_doctor ? doctor : NULL, has_org ? org : NULL);
}

/* --- entry point ---------------------------------------------------------------- */

typedef struct converter {
    const char *type, *trigger;
    void (*run)(conv *c, const char *trigger);
} converter;

static const converter converters[] = {
    {"ADT", "A01", convert_adt}, {"ADT", "A03", convert_adt}, {"ADT", "A04", convert_adt},
    {"ADT", "A08", convert_adt}, {"ORU", "R01", convert_oru},
};
#define SUPPORTED "ADT^A01, ADT^A03, ADT^A04, ADT^A08, ORU^R01"

static fhir_status fail(fhir_error *err, fhir_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static fhir_status fail(fhir_error *err, fhir_status code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->text, sizeof err->text, fmt, ap);
        va_end(ap);
    }
    return code;
}

fhir_status fhir_convert(const hl7_msg *m, const fhir_options *opt, json_t **out, fhir_error *err)
{
    assert(m && out);
    *out = NULL;
    conv c = {.m = m, .opt = opt};
    fhir_status st = FHIR_OK;
    char type[16] = "", trigger[16] = "";
    const char *t = val(&c, 0, 9, 1, 1, 1);
    snprintf(type, sizeof type, "%s", t ? t : "");
    t = val(&c, 0, 9, 1, 2, 1);
    snprintf(trigger, sizeof trigger, "%s", t ? t : "");
    const converter *conv_fn = NULL;
    for (size_t i = 0; i < sizeof converters / sizeof converters[0]; i++)
        if (!strcmp(converters[i].type, type) && !strcmp(converters[i].trigger, trigger))
            conv_fn = &converters[i];
    if (!conv_fn) {
        st =
            fail(err, FHIR_ERR_UNSUPPORTED, "%s^%s is not converted yet (supported: " SUPPORTED ")",
                 type[0] ? type : "(no MSH-9)", trigger);
        goto done;
    }
    uint32_t npid = hl7_seg_occurrences(m, "PID");
    if (npid > 1) {
        st = fail(err, FHIR_ERR_UNSUPPORTED,
                  "a message with %u PID segments (several patients) is not converted yet", npid);
        goto done;
    }
    if (hl7_seg_find(m, "PID", 1) < 0) {
        st = fail(err, FHIR_ERR_MISSING, "%s^%s has no PID segment: a Patient cannot be built",
                  type, trigger);
        goto done;
    }
    const char *msh7 = val(&c, 0, 7, 1, 1, 1);
    const char *off = msh7 ? msh7 + strcspn(msh7, "+-") : "";
    if (!*off || !parse_offset(off, c.offset))
        snprintf(c.offset, sizeof c.offset, "%s",
                 opt && opt->default_offset ? opt->default_offset : "Z");
    c.sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    c.md_ctx = c.sha256 ? EVP_MD_CTX_new() : NULL;
    c.entries = json_array();
    conv_fn->run(&c, trigger);
    *out = json_pack("{s:s,s:s,s:o}", "resourceType", "Bundle", "type", "transaction", "entry",
                     c.entries);
done:
    for (int i = 0; i < VAL_RING; i++)
        tbuf_free(&c.ring[i]);
    tbuf_free(&c.date);
    EVP_MD_CTX_free(c.md_ctx);
    EVP_MD_free(c.sha256);
    return st;
}
