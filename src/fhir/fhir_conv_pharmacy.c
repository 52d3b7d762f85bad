/*
 * fhir_conv_pharmacy: pharmacy orders (RDE^O11 -> MedicationRequest with its
 * Medication) and immunizations (VXU^V04 -> Immunization, the manufacturer
 * as an Organization, OBX as programEligibility / fundingSource or as
 * Observations partOf the Immunization).
 *
 * Like the other orders, an RDE order is an ORC with what follows it up to
 * the next ORC (RXE, TQ1, RXR). A VXU administration is an RXA with the
 * ORC before it and the RXR and OBX after it up to the next ORC or RXA.
 * Medication ids come from the drug code (RXE-2 system + code), so every
 * order of one drug shares one Medication; Immunization ids from the
 * filler number (ORC-3), else the patient, vaccine and date.
 */
#include "fhir/fhir_conv.h"

#include <stdio.h>
#include <string.h>

#define SYS_PERFORMER_FUNCTION "http://terminology.hl7.org/CodeSystem/v2-0443"

/* The first segment named id in [from, end), or -1. */
static long in_range(fc *c, long from, long end, const char *id)
{
    for (long i = from; i < end; i++)
        if (fc_is(c, i, id)) return i;
    return -1;
}

/* --- RDE ------------------------------------------------------------------------ */

static bool medication(fc *c, long rxe, char ref[FC_REF])
{
    json_t *code = fc_codeable(c, rxe, 2, 1, 0);
    if (!code) return false;
    const char *sys = fc_val(c, rxe, 2, 1, 3, 1);
    tbuf key = TBUF_INIT;
    tbuf_printf(&key, "Medication|%s|", sys ? sys : "");
    const char *v = fc_val(c, rxe, 2, 1, 1, 1);
    if (!v) v = fc_val(c, rxe, 2, 1, 2, 1);
    tbuf_puts(&key, v);
    char id[33];
    fc_stable_id(c, key.p, id);
    tbuf_free(&key);
    json_t *m = fc_resource("Medication", id);
    json_object_set_new(m, "code", code);
    json_t *form = fc_codeable(c, rxe, 6, 1, 0);
    if (form) json_object_set_new(m, "form", form);
    fc_add(c, m, ref);
    return true;
}

static json_t *dosage(fc *c, long rxe, long tq1, long rxr)
{
    json_t *d = json_object();
    json_t *instr = fc_codeable(c, rxe, 7, 1, 0);
    if (instr) fc_push(d, "additionalInstruction", instr);
    json_t *timing = json_object(), *repeat = json_object(), *bounds = json_object();
    if (tq1 >= 0) {
        fc_date(c, bounds, "start", tq1, 7, 0, FC_DATETIME);
        fc_date(c, bounds, "end", tq1, 8, 0, FC_DATETIME);
    } else {
        fc_date(c, bounds, "start", rxe, 1, 4, FC_DATETIME);
        fc_date(c, bounds, "end", rxe, 1, 5, FC_DATETIME);
    }
    fc_set_nonempty(repeat, "boundsPeriod", bounds);
    fc_set_nonempty(timing, "repeat", repeat);
    const char *pattern = tq1 >= 0 ? fc_val(c, tq1, 3, 1, 1, 1) : fc_val(c, rxe, 1, 1, 2, 1);
    if (pattern) {
        json_t *code = json_object();
        fc_str(code, "text", pattern);
        json_object_set_new(timing, "code", code);
    }
    fc_set_nonempty(d, "timing", timing);
    json_t *route = fc_codeable(c, rxr, 1, 1, 0);
    if (route) json_object_set_new(d, "route", route);
    json_t *site = fc_codeable(c, rxr, 2, 1, 0);
    if (site) json_object_set_new(d, "site", site);
    double lo, hi;
    const char *unit = NULL, *unit_sys = NULL;
    bool has_lo = fc_number(fc_val(c, rxe, 3, 1, 1, 1), &lo);
    bool has_hi = fc_number(fc_val(c, rxe, 4, 1, 1, 1), &hi);
    if (has_lo) {
        json_t *dr = json_object();
        unit = fc_val(c, rxe, 5, 1, 1, 1);
        unit_sys = fc_val(c, rxe, 5, 1, 3, 1);
        if (has_hi && hi != lo) {
            json_t *range = json_object();
            json_object_set_new(range, "low", fc_quantity(c, lo, unit, unit_sys));
            unit = fc_val(c, rxe, 5, 1, 1, 1);
            unit_sys = fc_val(c, rxe, 5, 1, 3, 1);
            json_object_set_new(range, "high", fc_quantity(c, hi, unit, unit_sys));
            json_object_set_new(dr, "doseRange", range);
        } else {
            json_object_set_new(dr, "doseQuantity", fc_quantity(c, lo, unit, unit_sys));
        }
        fc_push(d, "doseAndRate", dr);
    }
    return d;
}

static void medication_request(fc *c, long orc, long from, long end, unsigned pos)
{
    long rxe = in_range(c, from, end, "RXE");
    long tq1 = in_range(c, from, end, "TQ1");
    long rxr = in_range(c, from, end, "RXR");
    char med[FC_REF];
    if (rxe < 0 || !medication(c, rxe, med)) return; /* medication[x] is required */
    json_t *mr = json_object();
    tbuf key = TBUF_INIT;
    static const uint32_t fields[2] = {2, 3};
    static const char *types[2] = {"PLAC", "FILL"};
    fc_order_key(c, orc, fields, types, pos, mr, &key);
    tbuf_puts(&key, "|medication");
    char id[33];
    fc_stable_id(c, key.p, id);
    tbuf_free(&key);
    char doctor[FC_REF] = "";
    if (!(orc >= 0 && fc_practitioner(c, orc, 12, 1, doctor)))
        fc_practitioner(c, rxe, 13, 1, doctor);
    json_t *r = fc_resource("MedicationRequest", id);
    json_object_update(r, mr);
    json_decref(mr);
    fc_const(r, "status", orc >= 0 ? fc_request_status(c, orc) : "active");
    fc_const(r, "intent", "order");
    json_object_set_new(r, "medicationReference", fc_ref(med));
    json_object_set_new(r, "subject", fc_ref(c->patient_ref));
    if (c->encounter_ref[0]) json_object_set_new(r, "encounter", fc_ref(c->encounter_ref));
    fc_date(c, r, "authoredOn", orc, 9, 0, FC_DATETIME);
    if (doctor[0]) json_object_set_new(r, "requester", fc_ref(doctor));
    fc_push(r, "dosageInstruction", dosage(c, rxe, tq1, rxr));
    json_t *disp = json_object();
    double qty;
    if (fc_number(fc_val(c, rxe, 10, 1, 1, 1), &qty)) {
        const char *unit = fc_val(c, rxe, 11, 1, 1, 1);
        const char *unit_sys = fc_val(c, rxe, 11, 1, 3, 1);
        json_object_set_new(disp, "quantity", fc_quantity(c, qty, unit, unit_sys));
    }
    double refills;
    if (fc_number(fc_val(c, rxe, 12, 1, 1, 1), &refills) && refills >= 0 && refills < 1e6)
        json_object_set_new(disp, "numberOfRepeatsAllowed", json_integer((json_int_t)refills));
    fc_set_nonempty(r, "dispenseRequest", disp);
    const char *subst = fc_val(c, rxe, 9, 1, 1, 1);
    if (subst && (!strcmp(subst, "N") || !strcmp(subst, "G") || !strcmp(subst, "T")))
        json_object_set_new(r, "substitution",
                            json_pack("{s:b}", "allowedBoolean", strcmp(subst, "N") != 0));
    fc_add(c, r, NULL);
}

/* RDE^O11: one MedicationRequest per ORC. */
void fc_convert_rde(fc *c)
{
    fc_context(c);
    uint32_t nseg = hl7_seg_count(c->m);
    long start = -1;
    unsigned pos = 0;
    for (uint32_t i = 1; i <= nseg; i++) {
        if (i < nseg && !fc_is(c, i, "ORC")) continue;
        if (start >= 0) medication_request(c, start, start, i, ++pos);
        start = i;
    }
}

/* --- VXU -------------------------------------------------------------------------- */

static bool manufacturer(fc *c, long rxa, char ref[FC_REF])
{
    const char *code = fc_val(c, rxa, 17, 1, 1, 1);
    char value[64] = "";
    if (code) snprintf(value, sizeof value, "%s", code);
    const char *sys = fc_val(c, rxa, 17, 1, 3, 1);
    tbuf system = TBUF_INIT;
    if (sys) fc_code_system(c, sys, &system);
    const char *name = fc_val(c, rxa, 17, 1, 2, 1);
    bool ok = fc_organization(c, system.len ? system.p : NULL, value[0] ? value : NULL, name, ref);
    tbuf_free(&system);
    return ok;
}

static void performer(fc *c, long seg, uint32_t f, const char *function, const char *display,
                      json_t *imm)
{
    char ref[FC_REF];
    if (seg < 0 || !fc_practitioner(c, seg, f, 1, ref)) return;
    json_t *p = json_object();
    json_object_set_new(p, "function", fc_concept(SYS_PERFORMER_FUNCTION, function, display));
    json_object_set_new(p, "actor", fc_ref(ref));
    fc_push(imm, "performer", p);
}

static void immunization(fc *c, long orc, long rxa, long end)
{
    tbuf key = TBUF_INIT;
    json_t *ids = json_object();
    static const uint32_t fields[2] = {3, 2};
    static const char *types[2] = {"FILL", "PLAC"};
    if (orc >= 0 && (fc_val(c, orc, 3, 1, 1, 1) || fc_val(c, orc, 2, 1, 1, 1)))
        fc_order_key(c, orc, fields, types, 0, ids, &key);
    if (!key.len) {
        const char *cvx = fc_val(c, rxa, 5, 1, 1, 1);
        tbuf_printf(&key, "Immunization|%s|%s|", c->patient_ref, cvx ? cvx : "");
        const char *when = fc_val(c, rxa, 3, 1, 1, 1);
        tbuf_puts(&key, when ? when : "");
    }
    tbuf_puts(&key, "|immunization");
    char id[33], self[FC_REF], mvx[FC_REF];
    fc_stable_id(c, key.p, id);
    snprintf(self, sizeof self, "Immunization/%s", id);
    bool has_mvx = manufacturer(c, rxa, mvx);
    json_t *imm = fc_resource("Immunization", id);
    json_object_update(imm, ids);
    json_decref(ids);
    const char *st = fc_lookup(c, FHIR_TAB_IMMUNIZATION_STATUSES, fc_val(c, rxa, 20, 1, 1, 1));
    const char *action = fc_val(c, rxa, 21, 1, 1, 1);
    if (action && !strcmp(action, "D")) st = "entered-in-error";
    fc_const(imm, "status", st ? st : "completed");
    if (st && !strcmp(st, "not-done")) {
        json_t *reason = fc_codeable(c, rxa, 18, 1, 0);
        if (reason) json_object_set_new(imm, "statusReason", reason);
    }
    json_object_set_new(imm, "vaccineCode", fc_codeable_req(c, rxa, 5));
    json_object_set_new(imm, "patient", fc_ref(c->patient_ref));
    if (c->encounter_ref[0]) json_object_set_new(imm, "encounter", fc_ref(c->encounter_ref));
    fc_date(c, imm, "occurrenceDateTime", rxa, 3, 0, FC_DATETIME);
    if (!json_object_get(imm, "occurrenceDateTime")) fc_const(imm, "occurrenceString", "unknown");
    fc_date(c, imm, "recorded", rxa, 22, 0, FC_DATETIME);
    const char *source = fc_val(c, rxa, 9, 1, 1, 1);
    if (source) {
        bool primary = !strcmp(source, "00");
        json_object_set_new(imm, "primarySource", json_boolean(primary));
        json_t *origin = primary ? NULL : fc_codeable(c, rxa, 9, 1, 0);
        if (origin) json_object_set_new(imm, "reportOrigin", origin);
    }
    if (has_mvx) json_object_set_new(imm, "manufacturer", fc_ref(mvx));
    fc_str(imm, "lotNumber", fc_val(c, rxa, 15, 1, 1, 1));
    fc_date(c, imm, "expirationDate", rxa, 16, 0, FC_DATE);
    long rxr = -1;
    for (long i = rxa + 1; i < end && rxr < 0; i++)
        if (fc_is(c, i, "RXR")) rxr = i;
    json_t *site = fc_codeable(c, rxr, 2, 1, 0);
    if (site) json_object_set_new(imm, "site", site);
    json_t *route = fc_codeable(c, rxr, 1, 1, 0);
    if (route) json_object_set_new(imm, "route", route);
    double dose;
    if (fc_number(fc_val(c, rxa, 6, 1, 1, 1), &dose) && dose != 999) {
        const char *unit = fc_val(c, rxa, 7, 1, 1, 1);
        const char *unit_sys = fc_val(c, rxa, 7, 1, 3, 1);
        json_object_set_new(imm, "doseQuantity", fc_quantity(c, dose, unit, unit_sys));
    }
    performer(c, rxa, 10, "AP", "Administering Provider", imm);
    performer(c, orc, 12, "OP", "Ordering Provider", imm);
    unsigned n = 0;
    for (long i = rxa + 1; i < end; i++) {
        if (!fc_is(c, i, "OBX")) continue;
        const char *obs = fc_val(c, i, 3, 1, 1, 1);
        char code[32];
        snprintf(code, sizeof code, "%s", obs ? obs : "");
        json_t *v = fc_codeable(c, i, 5, 1, 0);
        if (v && !strcmp(code, "64994-7"))
            fc_push(imm, "programEligibility", v);
        else if (v && !strcmp(code, "30963-3") && !json_object_get(imm, "fundingSource"))
            json_object_set_new(imm, "fundingSource", v);
        else {
            json_decref(v);
            char ref[FC_REF];
            fc_observation(c, i, -1, key.p, ++n, NULL, self, ref);
        }
    }
    tbuf_free(&key);
    fc_add(c, imm, NULL);
}

/* VXU^V04: one Immunization per RXA. */
void fc_convert_vxu(fc *c)
{
    fc_context(c);
    uint32_t nseg = hl7_seg_count(c->m);
    long orc = -1;
    for (uint32_t i = 1; i < nseg; i++) {
        if (fc_is(c, i, "ORC")) orc = i;
        if (!fc_is(c, i, "RXA")) continue;
        long end = i + 1;
        while ((uint32_t)end < nseg && !fc_is(c, end, "ORC") && !fc_is(c, end, "RXA"))
            end++;
        immunization(c, orc, i, end);
        orc = -1;
    }
}
