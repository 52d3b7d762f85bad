/*
 * fhir_conv_sched: scheduling (SIU^S12 -> Appointment).
 *
 * SCH gives the appointment (ids, status, reason, times), the resource
 * segments its participants: the patient (PID), AIS the service
 * (serviceType), AIP practitioners, AIL locations, AIG other resources
 * (kept as a participant with a display and a type, as they name no FHIR
 * resource). Every participant is `accepted`: an S12 books them. The id
 * comes from the filler appointment id (SCH-2), else the placer's (SCH-1),
 * so the S13-S15 updates of one appointment can later update the same
 * resource.
 */
#include "fhir/fhir_conv.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static ftree_node *participant(fc *c, const char *ref, const char *display, ftree_node *type)
{
    ftree_node *p = fc_obj(c);
    if (type) fc_push(c, p, "type", type);
    ftree_node *actor = ref ? fc_ref(c, ref) : fc_obj(c);
    fc_str(c, actor, "display", display);
    ftree_set(p, "actor", actor);
    fc_lit(c, p, "status", "accepted");
    return p;
}

static void resources(fc *c, ftree_node *a)
{
    uint32_t nseg = hl7_seg_count(c->m);
    for (uint32_t i = 1; i < nseg; i++) {
        char ref[FC_REF];
        if (fc_is(c, i, "AIS")) {
            ftree_node *svc = fc_codeable(c, i, 3, 1, 0);
            if (svc) fc_push(c, a, "serviceType", svc);
            if (!ftree_get(a, "start")) fc_date(c, a, "start", i, 4, 0, FC_INSTANT_MIN);
        } else if (fc_is(c, i, "AIP") && fc_practitioner(c, i, 3, 1, ref)) {
            fc_push(c, a, "participant", participant(c, ref, NULL, fc_codeable(c, i, 4, 1, 0)));
        } else if (fc_is(c, i, "AIL") && fc_location(c, i, 3, ref)) {
            fc_push(c, a, "participant", participant(c, ref, NULL, fc_codeable(c, i, 4, 1, 0)));
        } else if (fc_is(c, i, "AIG")) {
            const char *name = fc_val(c, i, 3, 1, 2, 1);
            if (!name) name = fc_val(c, i, 3, 1, 1, 1);
            if (!name) continue;
            char display[128];
            snprintf(display, sizeof display, "%s", name);
            fc_push(c, a, "participant", participant(c, NULL, display, fc_codeable(c, i, 4, 1, 0)));
        }
    }
}

/* Minutes from a duration and its units (CNE: MIN, H/HR, D); 0 unknown. */
static long minutes(const char *n, const char *unit)
{
    double v;
    if (!fc_number(n, &v) || v <= 0 || v > 1e6) return 0;
    if (!unit || !strcasecmp(unit, "MIN") || !strcmp(unit, "m")) return (long)v;
    if (!strcasecmp(unit, "H") || !strcasecmp(unit, "HR") || !strcmp(unit, "h"))
        return (long)(v * 60);
    if (!strcasecmp(unit, "D") || !strcmp(unit, "d")) return (long)(v * 1440);
    return 0;
}

void fc_convert_siu(fc *c)
{
    fc_context(c);
    long sch = hl7_seg_find(c->m, "SCH", 1);
    ftree_node *ids = fc_obj(c);
    tbuf key = TBUF_INIT;
    static const uint32_t fields[2] = {2, 1};
    static const char *types[2] = {"FILL", "PLAC"};
    fc_order_key(c, sch, fields, types, 0, ids, &key);
    tbuf_puts(&key, "|appointment");
    char id[33];
    fc_stable_id(c, key.p, id);
    tbuf_free(&key);
    ftree_node *a = fc_resource(c, "Appointment", id);
    ftree_take_members(a, ids);
    const char *st = fc_lookup(c, FHIR_TAB_APPOINTMENT_STATUSES, fc_val(c, sch, 25, 1, 1, 1));
    fc_const(c, a, "status", st ? st : "booked");
    ftree_node *type = fc_codeable(c, sch, 8, 1, 0);
    if (type) ftree_set(a, "appointmentType", type);
    ftree_node *reason = fc_codeable(c, sch, 7, 1, 0);
    if (reason) fc_push(c, a, "reasonCode", reason);
    fc_date(c, a, "start", sch, 11, 4, FC_INSTANT_MIN);
    fc_date(c, a, "end", sch, 11, 5, FC_INSTANT_MIN);
    char dur[32] = "";
    const char *d = fc_val(c, sch, 9, 1, 1, 1);
    snprintf(dur, sizeof dur, "%s", d ? d : "");
    long mins = minutes(dur, fc_val(c, sch, 10, 1, 1, 1));
    resources(c, a);
    if (!mins) {
        long ais = hl7_seg_find(c->m, "AIS", 1);
        d = fc_val(c, ais, 7, 1, 1, 1);
        snprintf(dur, sizeof dur, "%s", d ? d : "");
        mins = minutes(dur, fc_val(c, ais, 8, 1, 1, 1));
    }
    if (mins) ftree_set(a, "minutesDuration", ftree_integer(c->t, mins));
    if (ftree_get(a, "end") && !ftree_get(a, "start")) ftree_del(a, "end");
    ftree_node *patient = participant(c, c->patient_ref, NULL, NULL);
    ftree_node *parts = ftree_get(a, "participant");
    if (parts)
        ftree_prepend(parts, patient);
    else
        fc_push(c, a, "participant", patient);
    fc_add(c, a, NULL);
}
