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
    ftree_node *code = fc_codeable(c, rxe, 2, 1, 0);
    if (!code) return false;
    const char *sys = fc_val(c, rxe, 2, 1, 3, 1);
    tbuf key = TBUF_INIT;
    tbuf_printf(&key, "Medication|%s|", sys ? sys : "");
    /* the code, else its text; the alternate ones (CWE-4, CWE-5) when only
     * they are there (that used to crash: tbuf_puts of NULL) */
    const char *v = fc_val(c, rxe, 2, 1, 1, 1);
    for (uint32_t comp = 2; !v && comp <= 5; comp += comp == 2 ? 2 : 1)
        v = fc_val(c, rxe, 2, 1, comp, 1);
    tbuf_puts(&key, v ? v : "");
    char id[33];
    fc_stable_id(c, key.p, id);
    tbuf_free(&key);
    ftree_node *m = fc_resource(c, "Medication", id);
    ftree_set(m, "code", code);
    ftree_node *form = fc_codeable(c, rxe, 6, 1, 0);
    if (form) ftree_set(m, "form", form);
    fc_add(c, m, ref);
    return true;
}

/* {"allowedBoolean": allowed} */
static ftree_node *substitution(fc *c, bool allowed)
{
    ftree_node *s = fc_obj(c);
    ftree_set(s, "allowedBoolean", ftree_bool(c->t, allowed));
    return s;
}

static ftree_node *dosage(fc *c, long rxe, long tq1, long rxr)
{
    ftree_node *d = fc_obj(c);
    ftree_node *instr = fc_codeable(c, rxe, 7, 1, 0);
    if (instr) fc_push(c, d, "additionalInstruction", instr);
    ftree_node *timing = fc_obj(c), *repeat = fc_obj(c), *bounds = fc_obj(c);
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
        ftree_node *code = fc_obj(c);
        fc_str(c, code, "text", pattern);
        ftree_set(timing, "code", code);
    }
    fc_set_nonempty(d, "timing", timing);
    ftree_node *route = fc_codeable(c, rxr, 1, 1, 0);
    if (route) ftree_set(d, "route", route);
    ftree_node *site = fc_codeable(c, rxr, 2, 1, 0);
    if (site) ftree_set(d, "site", site);
    double lo, hi;
    bool has_lo = fc_number(fc_val(c, rxe, 3, 1, 1, 1), &lo);
    bool has_hi = fc_number(fc_val(c, rxe, 4, 1, 1, 1), &hi);
    if (has_lo) {
        ftree_node *dr = fc_obj(c);
        fc_unit unit = fc_unit_at(c, rxe, 5);
        if (has_hi && hi != lo) {
            ftree_node *range = fc_obj(c);
            ftree_set(range, "low", fc_quantity(c, lo, &unit));
            ftree_set(range, "high", fc_quantity(c, hi, &unit));
            ftree_set(dr, "doseRange", range);
        } else {
            ftree_set(dr, "doseQuantity", fc_quantity(c, lo, &unit));
        }
        fc_push(c, d, "doseAndRate", dr);
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
    ftree_node *mr = fc_obj(c);
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
    ftree_node *r = fc_resource(c, "MedicationRequest", id);
    ftree_take_members(r, mr);
    fc_const(c, r, "status", orc >= 0 ? fc_request_status(c, orc) : "active");
    fc_lit(c, r, "intent", "order");
    ftree_set(r, "medicationReference", fc_ref(c, med));
    ftree_set(r, "subject", fc_ref(c, c->patient_ref));
    if (c->encounter_ref[0]) ftree_set(r, "encounter", fc_ref(c, c->encounter_ref));
    fc_date(c, r, "authoredOn", orc, 9, 0, FC_DATETIME);
    if (doctor[0]) ftree_set(r, "requester", fc_ref(c, doctor));
    fc_push(c, r, "dosageInstruction", dosage(c, rxe, tq1, rxr));
    ftree_node *disp = fc_obj(c);
    double qty;
    if (fc_number(fc_val(c, rxe, 10, 1, 1, 1), &qty)) {
        fc_unit unit = fc_unit_at(c, rxe, 11);
        ftree_set(disp, "quantity", fc_quantity(c, qty, &unit));
    }
    double refills;
    if (fc_number(fc_val(c, rxe, 12, 1, 1, 1), &refills) && refills >= 0 && refills < 1e6)
        ftree_set(disp, "numberOfRepeatsAllowed", ftree_integer(c->t, (long long)refills));
    fc_set_nonempty(r, "dispenseRequest", disp);
    const char *subst = fc_val(c, rxe, 9, 1, 1, 1);
    if (subst && (!strcmp(subst, "N") || !strcmp(subst, "G") || !strcmp(subst, "T")))
        ftree_set(r, "substitution", substitution(c, strcmp(subst, "N") != 0));
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
                      ftree_node *imm)
{
    char ref[FC_REF];
    if (seg < 0 || !fc_practitioner(c, seg, f, 1, ref)) return;
    ftree_node *p = fc_obj(c);
    ftree_set(p, "function", fc_concept(c, SYS_PERFORMER_FUNCTION, function, display));
    ftree_set(p, "actor", fc_ref(c, ref));
    fc_push(c, imm, "performer", p);
}

static void immunization(fc *c, long orc, long rxa, long end)
{
    tbuf key = TBUF_INIT;
    ftree_node *ids = fc_obj(c);
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
    fc_ref_of(self, "Immunization", id);
    bool has_mvx = manufacturer(c, rxa, mvx);
    ftree_node *imm = fc_resource(c, "Immunization", id);
    ftree_take_members(imm, ids);
    const char *st = fc_lookup(c, FHIR_TAB_IMMUNIZATION_STATUSES, fc_val(c, rxa, 20, 1, 1, 1));
    const char *action = fc_val(c, rxa, 21, 1, 1, 1);
    if (action && !strcmp(action, "D")) st = "entered-in-error";
    fc_const(c, imm, "status", st ? st : "completed");
    if (st && !strcmp(st, "not-done")) {
        ftree_node *reason = fc_codeable(c, rxa, 18, 1, 0);
        if (reason) ftree_set(imm, "statusReason", reason);
    }
    ftree_set(imm, "vaccineCode", fc_codeable_req(c, rxa, 5));
    ftree_set(imm, "patient", fc_ref(c, c->patient_ref));
    if (c->encounter_ref[0]) ftree_set(imm, "encounter", fc_ref(c, c->encounter_ref));
    fc_date(c, imm, "occurrenceDateTime", rxa, 3, 0, FC_DATETIME);
    if (!ftree_get(imm, "occurrenceDateTime")) fc_lit(c, imm, "occurrenceString", "unknown");
    fc_date(c, imm, "recorded", rxa, 22, 0, FC_DATETIME);
    const char *source = fc_val(c, rxa, 9, 1, 1, 1);
    if (source) {
        bool primary = !strcmp(source, "00");
        ftree_set(imm, "primarySource", ftree_bool(c->t, primary));
        ftree_node *origin = primary ? NULL : fc_codeable(c, rxa, 9, 1, 0);
        if (origin) ftree_set(imm, "reportOrigin", origin);
    }
    if (has_mvx) ftree_set(imm, "manufacturer", fc_ref(c, mvx));
    fc_str(c, imm, "lotNumber", fc_val(c, rxa, 15, 1, 1, 1));
    fc_date(c, imm, "expirationDate", rxa, 16, 0, FC_DATE);
    long rxr = -1;
    for (long i = rxa + 1; i < end && rxr < 0; i++)
        if (fc_is(c, i, "RXR")) rxr = i;
    ftree_node *site = fc_codeable(c, rxr, 2, 1, 0);
    if (site) ftree_set(imm, "site", site);
    ftree_node *route = fc_codeable(c, rxr, 1, 1, 0);
    if (route) ftree_set(imm, "route", route);
    double dose;
    if (fc_number(fc_val(c, rxa, 6, 1, 1, 1), &dose) && dose != 999) {
        fc_unit unit = fc_unit_at(c, rxa, 7);
        ftree_set(imm, "doseQuantity", fc_quantity(c, dose, &unit));
    }
    performer(c, rxa, 10, "AP", "Administering Provider", imm);
    performer(c, orc, 12, "OP", "Ordering Provider", imm);
    unsigned n = 0;
    for (long i = rxa + 1; i < end; i++) {
        if (!fc_is(c, i, "OBX")) continue;
        const char *obs = fc_val(c, i, 3, 1, 1, 1);
        char code[32];
        snprintf(code, sizeof code, "%s", obs ? obs : "");
        ftree_node *v = fc_codeable(c, i, 5, 1, 0);
        if (v && !strcmp(code, "64994-7"))
            fc_push(c, imm, "programEligibility", v);
        else if (v && !strcmp(code, "30963-3") && !ftree_get(imm, "fundingSource"))
            ftree_set(imm, "fundingSource", v);
        else {
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
