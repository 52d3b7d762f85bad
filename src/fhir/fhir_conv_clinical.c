/*
 * fhir_conv_clinical: segments converted in whatever message carries them:
 * NK1 -> RelatedPerson, AL1 -> AllergyIntolerance, DG1 -> Condition
 * (category encounter-diagnosis), IN1 (+ the IN2 that follows) -> Coverage
 * with the payer as an Organization.
 *
 * Each resource's id comes from its business identifier when the segment
 * has one (NK1-33, DG1-20, IN1-3 + IN1-36) and otherwise from the patient
 * (or visit) and what the segment is about (the allergen, the diagnosis
 * code, the relative's name), never from set ids or positions, so a resent
 * or reordered A08 updates the same resources.
 */
#include "fhir/fhir_conv.h"

#include <stdio.h>
#include <string.h>

#define SYS_ALLERGY_CLINICAL "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
#define SYS_ALLERGY_VERIF "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
#define SYS_CONDITION_CAT "http://terminology.hl7.org/CodeSystem/condition-category"
#define SYS_CONDITION_VERIF "http://terminology.hl7.org/CodeSystem/condition-ver-status"
#define SYS_ROLECODE "http://terminology.hl7.org/CodeSystem/v3-RoleCode"

/* --- NK1 ---------------------------------------------------------------------- */

static void related_person(fc *c, long nk1)
{
    tbuf key = TBUF_INIT;
    ftree_node *ident =
        fc_identifier(c, nk1, 33, 1, 4, fc_val(c, nk1, 33, 1, 5, 1), "RelatedPerson", &key);
    ftree_node *name = fc_name(c, nk1, 2, 1, 1);
    const char *rel = fc_val(c, nk1, 3, 1, 1, 1);
    if (!ident && !name) {
        tbuf_free(&key);
        return;
    }
    if (!key.len) {
        const char *family = fc_val(c, nk1, 2, 1, 1, 1);
        const char *given = fc_val(c, nk1, 2, 1, 2, 1);
        tbuf_printf(&key, "RelatedPerson|%s|%s|", c->patient_ref, family ? family : "");
        tbuf_printf(&key, "%s|", given ? given : "");
        rel = fc_val(c, nk1, 3, 1, 1, 1);
        tbuf_puts(&key, rel ? rel : "");
    }
    char id[33];
    fc_stable_id(c, key.p, id);
    tbuf_free(&key);
    ftree_node *p = fc_resource(c, "RelatedPerson", id);
    fc_push(c, p, "identifier", ident);
    ftree_set(p, "patient", fc_ref(c, c->patient_ref));
    rel = fc_val(c, nk1, 3, 1, 1, 1);
    const char *role = fc_lookup(c, FHIR_TAB_RELATIONSHIPS, rel);
    ftree_node *cc = fc_codeable(c, nk1, 3, 1, 0);
    ftree_node *codings = cc && role ? ftree_get(cc, "coding") : NULL;
    if (codings) ftree_prepend(codings, fc_coding(c, SYS_ROLECODE, role));
    fc_push(c, p, "relationship", cc);
    const char *contact = fc_val(c, nk1, 7, 1, 1, 1);
    if (contact) {
        ftree_node *cr = fc_obj(c);
        ftree_node *coding = fc_obj(c);
        fc_lit(c, coding, "system", "http://terminology.hl7.org/CodeSystem/v2-0131");
        fc_str(c, coding, "code", contact);
        fc_push(c, cr, "coding", coding);
        fc_push(c, p, "relationship", cr);
    }
    fc_push(c, p, "name", name);
    fc_telecoms(c, nk1, 5, "home", p);
    fc_telecoms(c, nk1, 6, "work", p);
    fc_str(c, p, "gender", fc_lookup(c, FHIR_TAB_GENDERS, fc_val(c, nk1, 15, 1, 1, 1)));
    fc_date(c, p, "birthDate", nk1, 16, 0, FC_DATE);
    fc_push(c, p, "address", fc_address(c, nk1, 4, 1));
    ftree_node *period = fc_obj(c);
    fc_date(c, period, "start", nk1, 8, 0, FC_DATETIME);
    fc_date(c, period, "end", nk1, 9, 0, FC_DATETIME);
    fc_set_nonempty(p, "period", period);
    fc_add(c, p, NULL);
}

/* --- AL1 ---------------------------------------------------------------------- */

static void allergy(fc *c, long al1)
{
    ftree_node *code = fc_codeable(c, al1, 3, 1, 0);
    if (!code) return;
    const char *what = fc_val(c, al1, 3, 1, 1, 1);
    if (!what) what = fc_val(c, al1, 3, 1, 2, 1);
    tbuf key = TBUF_INIT;
    tbuf_printf(&key, "AllergyIntolerance|%s|%s", c->patient_ref, what);
    char id[33];
    fc_stable_id(c, key.p, id);
    tbuf_free(&key);
    ftree_node *a = fc_resource(c, "AllergyIntolerance", id);
    ftree_set(a, "clinicalStatus", fc_concept(c, SYS_ALLERGY_CLINICAL, "active", "Active"));
    ftree_set(a, "verificationStatus", fc_concept(c, SYS_ALLERGY_VERIF, "confirmed", "Confirmed"));
    const char *kind = fc_lookup(c, FHIR_TAB_ALLERGY_TYPES, fc_val(c, al1, 2, 1, 1, 1));
    char part[32];
    if (fc_part(kind, 0, part, sizeof part)) fc_str(c, a, "type", part);
    if (fc_part(kind, 1, part, sizeof part)) fc_push(c, a, "category", ftree_string(c->t, part));
    const char *sev = fc_lookup(c, FHIR_TAB_ALLERGY_SEVERITIES, fc_val(c, al1, 4, 1, 1, 1));
    char severity[32] = "";
    fc_part(sev, 0, severity, sizeof severity);
    if (fc_part(sev, 1, part, sizeof part)) fc_str(c, a, "criticality", part);
    ftree_set(a, "code", code);
    ftree_set(a, "patient", fc_ref(c, c->patient_ref));
    fc_date(c, a, "onsetDateTime", al1, 6, 0, FC_DATETIME);
    ftree_node *reaction = fc_obj(c);
    uint32_t n = hl7_rep_count(c->m, (uint32_t)al1, 5);
    for (uint32_t r = 1; r <= n; r++) {
        const char *text = fc_val(c, al1, 5, r, 0, 0);
        if (!text) continue;
        ftree_node *m = fc_obj(c);
        fc_str(c, m, "text", text);
        fc_push(c, reaction, "manifestation", m);
    }
    if (ftree_get(reaction, "manifestation")) {
        fc_str(c, reaction, "severity", severity);
        fc_push(c, a, "reaction", reaction);
    }
    fc_add(c, a, NULL);
}

/* --- DG1 ---------------------------------------------------------------------- */

void fc_condition(fc *c, long dg1, char ref[FC_REF])
{
    tbuf key = TBUF_INIT;
    ftree_node *ident = fc_identifier(c, dg1, 20, 1, 2, NULL, "Condition", &key);
    if (!key.len) {
        const char *code = fc_val(c, dg1, 3, 1, 1, 1);
        if (!code) code = fc_val(c, dg1, 4, 1, 1, 1);
        tbuf_printf(&key, "Condition|%s|%s|",
                    c->encounter_ref[0] ? c->encounter_ref : c->patient_ref, code ? code : "");
        const char *type = fc_val(c, dg1, 6, 1, 1, 1);
        tbuf_puts(&key, type ? type : "");
    }
    char id[33];
    fc_stable_id(c, key.p, id);
    tbuf_free(&key);
    ftree_node *d = fc_resource(c, "Condition", id);
    fc_push(c, d, "identifier", ident);
    const char *type = fc_val(c, dg1, 6, 1, 1, 1);
    const char *verif = type && !strcmp(type, "F") ? "confirmed" : "provisional";
    ftree_set(d, "verificationStatus", fc_concept(c, SYS_CONDITION_VERIF, verif, NULL));
    const char *cat = fc_lookup(c, FHIR_TAB_DIAGNOSIS_TYPES, type);
    fc_push(c, d, "category",
            fc_concept(c, SYS_CONDITION_CAT, cat ? cat : "encounter-diagnosis", NULL));
    ftree_node *code = fc_codeable(c, dg1, 3, 1, 0);
    if (!code) {
        code = fc_obj(c);
        fc_str(c, code, "text", fc_val(c, dg1, 4, 1, 1, 1));
    }
    fc_set_nonempty(d, "code", code);
    ftree_set(d, "subject", fc_ref(c, c->patient_ref));
    if (c->encounter_ref[0]) ftree_set(d, "encounter", fc_ref(c, c->encounter_ref));
    fc_date(c, d, "onsetDateTime", dg1, 5, 0, FC_DATETIME);
    fc_date(c, d, "recordedDate", dg1, 19, 0, FC_DATETIME);
    char doctor[FC_REF];
    if (fc_practitioner(c, dg1, 16, 1, doctor)) ftree_set(d, "asserter", fc_ref(c, doctor));
    fc_add(c, d, ref);
}

/* --- IN1 / IN2 ------------------------------------------------------------------ */

static const char *subscriber_relationship(const char *hl7)
{
    if (!hl7) return NULL;
    if (!strcmp(hl7, "SEL") || !strcmp(hl7, "01")) return "self";
    if (!strcmp(hl7, "SPO") || !strcmp(hl7, "02")) return "spouse";
    if (!strcmp(hl7, "CHD") || !strcmp(hl7, "03")) return "child";
    return "other";
}

static void coverage(fc *c, long in1)
{
    tbuf sys = TBUF_INIT, key = TBUF_INIT;
    char payer[FC_REF] = "";
    const char *payer_id = fc_val(c, in1, 3, 1, 1, 1);
    char idbuf[128] = "";
    if (payer_id) {
        snprintf(idbuf, sizeof idbuf, "%s", payer_id);
        if (!fc_hd_system(c, in1, 3, 1, 4, &sys)) tbuf_puts(&sys, "urn:tern:payer");
    }
    const char *name = fc_val(c, in1, 4, 1, 1, 1);
    fc_organization(c, sys.len ? sys.p : NULL, idbuf[0] ? idbuf : NULL, name, payer);
    if (!payer[0]) { /* Coverage.payor is required */
        tbuf_free(&sys);
        return;
    }
    const char *policy = fc_val(c, in1, 36, 1, 1, 1);
    tbuf_printf(&key, "Coverage|%s|%s|", payer, c->patient_ref);
    if (policy)
        tbuf_puts(&key, policy);
    else {
        const char *plan = fc_val(c, in1, 2, 1, 1, 1);
        tbuf_puts(&key, plan ? plan : "");
    }
    char id[33];
    fc_stable_id(c, key.p, id);
    ftree_node *cv = fc_resource(c, "Coverage", id);
    policy = fc_val(c, in1, 36, 1, 1, 1);
    if (policy) {
        ftree_node *ident = fc_obj(c);
        ftree_set(ident, "type", fc_concept(c, SYS_V2_0203, "MB", "Member Number"));
        fc_str(c, ident, "value", policy);
        fc_push(c, cv, "identifier", ident);
        fc_str(c, cv, "subscriberId", policy);
    }
    long in2 = fc_is(c, in1 + 1, "IN2") ? in1 + 1 : -1;
    static const struct {
        uint32_t f;
        const char *type, *display;
    } in2_ids[] = {{6, "MC", "Patient's Medicare number"}, {8, "MA", "Patient Medicaid number"}};
    for (size_t i = 0; in2 >= 0 && i < 2; i++) {
        const char *v = fc_val(c, in2, in2_ids[i].f, 1, 1, 1);
        if (!v) continue;
        ftree_node *ident = fc_obj(c);
        ftree_set(ident, "type", fc_concept(c, SYS_V2_0203, in2_ids[i].type, in2_ids[i].display));
        fc_str(c, ident, "value", v);
        fc_push(c, cv, "identifier", ident);
    }
    fc_lit(c, cv, "status", "active");
    ftree_node *type = fc_codeable(c, in1, 15, 1, 0);
    if (type) ftree_set(cv, "type", type);
    ftree_set(cv, "beneficiary", fc_ref(c, c->patient_ref));
    const char *rel = subscriber_relationship(fc_val(c, in1, 17, 1, 1, 1));
    if (rel)
        ftree_set(cv, "relationship",
                  fc_concept(c, "http://terminology.hl7.org/CodeSystem/subscriber-relationship",
                             rel, NULL));
    ftree_node *period = fc_obj(c);
    fc_date(c, period, "start", in1, 12, 0, FC_DATETIME);
    fc_date(c, period, "end", in1, 13, 0, FC_DATETIME);
    fc_set_nonempty(cv, "period", period);
    fc_push(c, cv, "payor", fc_ref(c, payer));
    const char *group = fc_val(c, in1, 8, 1, 1, 1);
    if (group) {
        ftree_node *cls = fc_obj(c);
        ftree_set(cls, "type",
                  fc_concept(c, "http://terminology.hl7.org/CodeSystem/coverage-class", "group",
                             "Group"));
        fc_str(c, cls, "value", group);
        fc_str(c, cls, "name", fc_val(c, in1, 9, 1, 1, 1));
        fc_push(c, cv, "class", cls);
    }
    fc_add(c, cv, NULL);
    tbuf_free(&sys);
    tbuf_free(&key);
}

void fc_clinical_segments(fc *c)
{
    uint32_t n = hl7_seg_count(c->m);
    for (uint32_t i = 1; i < n; i++) {
        const char *id = hl7_seg_at(c->m, i)->id;
        if (fc_id_is(id, "NK1"))
            related_person(c, i);
        else if (fc_id_is(id, "AL1"))
            allergy(c, i);
        else if (fc_id_is(id, "DG1"))
            fc_condition(c, i, NULL);
        else if (fc_id_is(id, "IN1"))
            coverage(c, i);
    }
}
