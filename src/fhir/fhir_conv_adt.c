/*
 * fhir_conv_adt: the people, places and visit of a message (Patient,
 * Organization, Practitioner, Location, Encounter) and the ADT events.
 *
 * Every message type uses fc_sending_org, fc_patient and fc_encounter; the
 * ADT converter adds only the event semantics: the Encounter status of a
 * discharge (A03), a cancelled admission (A11) or a cancelled discharge
 * (A13), the prior location of a transfer (A02), no Encounter for the
 * patient-only events (A28, A31), and the two Patients of a merge (A40):
 * the one named by MRG-1 becomes inactive and `replaced-by` the survivor,
 * which `replaces` it. Ids follow docs/fhir.md ("Bundle shape and ids").
 */
#include "fhir/fhir_conv.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

/* --- Patient ---------------------------------------------------------------- */

/* US Core race (PID-10) or ethnicity (PID-22): ombCategory for CDC codes
 * (NNNN-N), text always (US Core requires it). */
static void us_core_ext(fc *c, long pid, uint32_t f, const char *name, ftree_node *p)
{
    uint32_t n = hl7_rep_count(c->m, (uint32_t)pid, f);
    ftree_node *ext = fc_obj(c);
    tbuf text = TBUF_INIT;
    for (uint32_t r = 1; r <= n; r++) {
        const char *code = fc_val(c, pid, f, r, 1, 1);
        const char *display = fc_val(c, pid, f, r, 2, 1);
        if (code && strlen(code) == 6 && isdigit((unsigned char)code[0]) && code[4] == '-' &&
            strspn(code, "0123456789") == 4 && isdigit((unsigned char)code[5])) {
            ftree_node *coding = fc_coding(c, "urn:oid:2.16.840.1.113883.6.238", code);
            fc_str(c, coding, "display", display);
            ftree_node *omb = fc_obj(c);
            fc_lit(c, omb, "url", "ombCategory");
            ftree_set(omb, "valueCoding", coding);
            fc_push(c, ext, "extension", omb);
        }
        if (!text.len && (display || code)) tbuf_puts(&text, display ? display : code);
    }
    if (text.len) {
        ftree_node *value = ftree_string(c->t, text.p);
        if (value) {
            ftree_node *t = fc_obj(c);
            fc_lit(c, t, "url", "text");
            ftree_set(t, "valueString", value);
            fc_push(c, ext, "extension", t);
        }
        tbuf_reset(&text);
        tbuf_printf(&text, US_CORE "%s", name);
        fc_const(c, ext, "url", text.p);
        fc_push(c, p, "extension", ext);
    }
    tbuf_free(&text);
}

/* Identifiers of the CX list at (seg, f) pushed to res; the first one's key
 * goes to key. */
static void cx_list(fc *c, long seg, uint32_t f, ftree_node *res, tbuf *key)
{
    uint32_t n = hl7_rep_count(c->m, (uint32_t)seg, f);
    for (uint32_t r = 1; r <= n; r++)
        fc_push(c, res, "identifier",
                fc_identifier(c, seg, f, r, 4, fc_val(c, seg, f, r, 5, 1), "Patient",
                              key->len ? NULL : key));
}

ftree_node *fc_patient(fc *c, long pid)
{
    ftree_node *ids = fc_obj(c);
    tbuf key = TBUF_INIT;
    cx_list(c, pid, 3, ids, &key);
    char id[33];
    fc_id_from(c, &key, "Patient", "PID", id);
    tbuf_free(&key);
    ftree_node *p = fc_resource(c, "Patient", id);
    ftree_take_members(p, ids);
    us_core_ext(c, pid, 10, "us-core-race", p);
    us_core_ext(c, pid, 22, "us-core-ethnicity", p);
    uint32_t n = hl7_rep_count(c->m, (uint32_t)pid, 5);
    for (uint32_t r = 1; r <= n; r++)
        fc_push(c, p, "name", fc_name(c, pid, 5, r, 1));
    fc_telecoms(c, pid, 13, "home", p);
    fc_telecoms(c, pid, 14, "work", p);
    fc_str(c, p, "gender", fc_lookup(c, FHIR_TAB_GENDERS, fc_val(c, pid, 8, 1, 1, 1)));
    fc_date(c, p, "birthDate", pid, 7, 0, FC_DATE);
    const char *dead = fc_val(c, pid, 30, 1, 1, 1);
    if (dead && !strcmp(dead, "Y")) {
        fc_date(c, p, "deceasedDateTime", pid, 29, 0, FC_DATETIME);
        if (!ftree_get(p, "deceasedDateTime"))
            ftree_set(p, "deceasedBoolean", ftree_bool(c->t, true));
    }
    n = hl7_rep_count(c->m, (uint32_t)pid, 11);
    for (uint32_t r = 1; r <= n; r++)
        fc_push(c, p, "address", fc_address(c, pid, 11, r));
    ftree_node *marital = fc_codeable(c, pid, 16, 1, 0);
    if (marital) ftree_set(p, "maritalStatus", marital);
    ftree_node *lang = fc_codeable(c, pid, 15, 1, 0);
    if (lang) {
        ftree_node *comm = fc_obj(c);
        ftree_set(comm, "language", lang);
        fc_push(c, p, "communication", comm);
    }
    if (c->org_ref[0]) ftree_set(p, "managingOrganization", fc_ref(c, c->org_ref));
    fc_ref_of(c->patient_ref, "Patient", id);
    fc_add(c, p, NULL);
    return p;
}

/* --- Organization, Practitioner, Location ------------------------------------ */

bool fc_organization(fc *c, const char *system, const char *value, const char *name,
                     char ref[FC_REF])
{
    if (!value && !name) return false;
    tbuf key = TBUF_INIT;
    if (value)
        fc_cat(&key, "Organization|", system ? system : "", "|", value, NULL);
    else
        fc_cat(&key, "Organization|name|", name, NULL);
    char id[33];
    fc_stable_id(c, key.p, id);
    tbuf_free(&key);
    ftree_node *o = fc_resource(c, "Organization", id);
    if (value) {
        ftree_node *ident = fc_obj(c);
        fc_str(c, ident, "system", system);
        fc_str(c, ident, "value", value);
        fc_push(c, o, "identifier", ident);
    }
    fc_str(c, o, "name", name);
    fc_add(c, o, ref);
    return true;
}

/* Organization for the sending facility MSH-4 (HD): identified by its OID
 * (urn:ietf:rfc:3986 urn:oid:...) or by its name. */
void fc_sending_org(fc *c)
{
    tbuf sys = TBUF_INIT;
    bool has_oid = fc_hd_system(c, 0, 4, 1, 0, &sys) && !strncmp(sys.p, "urn:oid:", 8);
    const char *name = fc_val(c, 0, 4, 1, 1, 1);
    if (has_oid)
        fc_organization(c, "urn:ietf:rfc:3986", sys.p, name, c->org_ref);
    else if (name)
        fc_organization(c, "urn:tern:facility", name, name, c->org_ref);
    tbuf_free(&sys);
}

bool fc_practitioner(fc *c, long seg, uint32_t f, uint32_t r, char ref[FC_REF])
{
    tbuf key = TBUF_INIT;
    ftree_node *ident =
        fc_identifier(c, seg, f, r, 9, fc_val(c, seg, f, r, 13, 1), "Practitioner", &key);
    ftree_node *name = fc_name(c, seg, f, r, 2);
    if (!ident && !name) return false;
    if (!key.len) { /* printf wrote "(null)" for no family name: kept, ids depend on it */
        const char *family = fc_val(c, seg, f, r, 2, 1);
        fc_cat(&key, "Practitioner|name|", family ? family : "(null)", NULL);
    }
    char id[33];
    fc_stable_id(c, key.p, id);
    tbuf_free(&key);
    ftree_node *p = fc_resource(c, "Practitioner", id);
    fc_push(c, p, "identifier", ident);
    fc_push(c, p, "name", name);
    fc_add(c, p, ref);
    return true;
}

bool fc_location(fc *c, long seg, uint32_t f, char ref[FC_REF])
{
    /* PL: 1 point of care, 2 room, 3 bed, 4 facility (HD), 7 building,
     * 8 floor, 9 description */
    char part[3][64] = {"", "", ""};
    for (uint32_t i = 0; i < 3; i++) {
        const char *v = fc_val(c, seg, f, 1, i + 1, 1);
        fc_copy(part[i], sizeof part[i], v);
    }
    if (!part[0][0] && !part[1][0] && !part[2][0]) return false;
    const char *facility = fc_val(c, seg, f, 1, 4, 1);
    tbuf key = TBUF_INIT, name = TBUF_INIT;
    fc_cat(&key, "Location|", facility ? facility : "", "|", part[0], "|", part[1], "|", part[2],
           NULL);
    char id[33];
    fc_stable_id(c, key.p, id);
    for (int i = 0; i < 3; i++)
        if (part[i][0]) fc_cat(&name, name.len ? " " : "", part[i], NULL);
    ftree_node *l = fc_resource(c, "Location", id);
    fc_lit(c, l, "status", "active");
    fc_str(c, l, "name", name.p);
    fc_str(c, l, "description", fc_val(c, seg, f, 1, 9, 1));
    fc_lit(c, l, "mode", "instance");
    const char *kind = part[2][0] ? "bd|Bed" : part[1][0] ? "ro|Room" : "wa|Ward";
    char code[8], display[8];
    fc_part(kind, 0, code, sizeof code);
    fc_part(kind, 1, display, sizeof display);
    ftree_set(l, "physicalType",
              fc_concept(c, "http://terminology.hl7.org/CodeSystem/location-physical-type", code,
                         display));
    fc_add(c, l, ref);
    tbuf_free(&key);
    tbuf_free(&name);
    return true;
}

/* --- Encounter ------------------------------------------------------------------- */

static void encounter_class(fc *c, long pv1, ftree_node *e)
{
    const char *cls = fc_lookup(c, FHIR_TAB_ENCOUNTER_CLASSES, fc_val(c, pv1, 2, 1, 1, 1));
    char code[32], display[64];
    if (!fc_part(cls, 0, code, sizeof code)) {
        ftree_node *unknown = fc_obj(c);
        fc_lit(c, unknown, "system", "http://terminology.hl7.org/CodeSystem/v3-NullFlavor");
        fc_lit(c, unknown, "code", "UNK");
        fc_lit(c, unknown, "display", "unknown");
        ftree_set(e, "class", unknown);
        return;
    }
    ftree_node *coding = fc_coding(c, SYS_ACTCODE, code);
    if (coding && fc_part(cls, 1, display, sizeof display)) fc_str(c, coding, "display", display);
    ftree_set(e, "class", coding);
}

/* PV1-7/8/9/17 (every repetition) as participants of their type. */
static void encounter_participants(fc *c, long pv1, ftree_node *e)
{
    static const struct {
        uint32_t field;
        const char *code, *display;
    } roles[] = {{7, "ATND", "attender"},
                 {8, "REF", "referrer"},
                 {9, "CON", "consultant"},
                 {17, "ADM", "admitter"}};
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++) {
        uint32_t n = hl7_rep_count(c->m, (uint32_t)pv1, roles[i].field);
        for (uint32_t r = 1; r <= n; r++) {
            char ref[FC_REF];
            if (!fc_practitioner(c, pv1, roles[i].field, r, ref)) continue;
            ftree_node *p = fc_obj(c);
            fc_push(c, p, "type",
                    fc_concept(c, SYS_PARTICIPATION, roles[i].code, roles[i].display));
            ftree_set(p, "individual", fc_ref(c, ref));
            fc_push(c, e, "participant", p);
        }
    }
}

static void encounter_location(fc *c, long pv1, uint32_t f, const char *status, ftree_node *e)
{
    char ref[FC_REF];
    if (!fc_location(c, pv1, f, ref)) return;
    ftree_node *l = fc_obj(c);
    ftree_set(l, "location", fc_ref(c, ref));
    fc_const(c, l, "status", status);
    fc_push(c, e, "location", l);
}

static const char *encounter_status(fc *c, long pv1)
{
    const char *t = c->trigger;
    if (!strcmp(t, "A03")) return "finished";
    if (!strcmp(t, "A11")) return "cancelled";
    if (!strcmp(t, "A13")) return "in-progress";
    if (!strcmp(t, "S12")) return "planned"; /* the visit of an appointment */
    return fc_val(c, pv1, 45, 1, 1, 1) ? "finished" : "in-progress";
}

void fc_encounter(fc *c, long pv1, const char *status)
{
    tbuf key = TBUF_INIT;
    ftree_node *ident = fc_identifier(c, pv1, 19, 1, 4, "VN", "Encounter", &key);
    char id[33];
    fc_id_from(c, &key, "Encounter", c->patient_ref, id);
    tbuf_free(&key);
    ftree_node *e = fc_resource(c, "Encounter", id);
    fc_push(c, e, "identifier", ident);
    if (!status) status = encounter_status(c, pv1);
    fc_const(c, e, "status", status);
    encounter_class(c, pv1, e);
    ftree_node *type = fc_codeable(c, pv1, 4, 1, 0);
    if (type) fc_push(c, e, "type", type);
    ftree_set(e, "subject", fc_ref(c, c->patient_ref));
    encounter_participants(c, pv1, e);
    ftree_node *period = fc_obj(c);
    fc_date(c, period, "start", pv1, 44, 0, FC_DATETIME);
    if (strcmp(c->trigger, "A13")) fc_date(c, period, "end", pv1, 45, 0, FC_DATETIME);
    fc_set_nonempty(e, "period", period);
    long pv2 = hl7_seg_find(c->m, "PV2", 1);
    ftree_node *reason = pv2 >= 0 ? fc_codeable(c, pv2, 3, 1, 0) : NULL;
    if (reason) fc_push(c, e, "reasonCode", reason);
    ftree_node *hosp = fc_obj(c);
    ftree_node *src = fc_codeable(c, pv1, 14, 1, 0);
    if (src) ftree_set(hosp, "admitSource", src);
    ftree_node *disp = fc_codeable(c, pv1, 36, 1, 0);
    if (disp) ftree_set(hosp, "dischargeDisposition", disp);
    fc_set_nonempty(e, "hospitalization", hosp);
    bool done = !strcmp(status, "finished") || !strcmp(status, "cancelled");
    encounter_location(c, pv1, 3, done ? "completed" : "active", e);
    if (!strcmp(c->trigger, "A02")) encounter_location(c, pv1, 6, "completed", e);
    if (c->org_ref[0]) ftree_set(e, "serviceProvider", fc_ref(c, c->org_ref));
    fc_ref_of(c->encounter_ref, "Encounter", id);
    fc_add(c, e, NULL);
}

/* --- context of every message ------------------------------------------------- */

void fc_context(fc *c)
{
    fc_patient(c, hl7_seg_find(c->m, "PID", 1));
    long pv1 = hl7_seg_find(c->m, "PV1", 1);
    if (pv1 >= 0) fc_encounter(c, pv1, NULL);
    fc_clinical_segments(c);
}

/* --- ADT events ------------------------------------------------------------------- */

void fc_convert_adt(fc *c)
{
    fc_sending_org(c);
    fc_patient(c, hl7_seg_find(c->m, "PID", 1));
    long pv1 = hl7_seg_find(c->m, "PV1", 1);
    bool patient_only = !strcmp(c->trigger, "A28") || !strcmp(c->trigger, "A31");
    if (pv1 >= 0 && !patient_only) fc_encounter(c, pv1, NULL);
    fc_clinical_segments(c);
}

static ftree_node *link(fc *c, const char *other, const char *type)
{
    ftree_node *l = fc_obj(c);
    ftree_set(l, "other", fc_ref(c, other));
    fc_const(c, l, "type", type);
    return l;
}

/* A40: PID is the surviving patient, MRG-1 the one merged into it. The old
 * Patient is written with its identifiers (MRG-1), prior name (MRG-7),
 * active false and a replaced-by link; its id is the one its own PID-3
 * gave it, so the existing resource is the one updated. */
void fc_convert_merge(fc *c)
{
    fc_sending_org(c);
    ftree_node *survivor = fc_patient(c, hl7_seg_find(c->m, "PID", 1));
    long mrg = hl7_seg_find(c->m, "MRG", 1);
    if (mrg < 0 || !fc_val(c, mrg, 1, 1, 1, 1)) return;
    ftree_node *old = fc_obj(c);
    tbuf key = TBUF_INIT;
    cx_list(c, mrg, 1, old, &key);
    char id[33], old_ref[FC_REF];
    fc_stable_id(c, key.p, id);
    tbuf_free(&key);
    fc_ref_of(old_ref, "Patient", id);
    if (!strcmp(old_ref, c->patient_ref)) return; /* MRG-1 names the survivor: nothing to merge */
    ftree_node *p = fc_resource(c, "Patient", id);
    ftree_take_members(p, old);
    ftree_set(p, "active", ftree_bool(c->t, false));
    fc_push(c, p, "name", fc_name(c, mrg, 7, 1, 1));
    fc_push(c, p, "link", link(c, c->patient_ref, "replaced-by"));
    fc_add(c, p, old_ref);
    fc_push(c, survivor, "link", link(c, old_ref, "replaces"));
    ftree_set(survivor, "active", ftree_bool(c->t, true));
}
