/*
 * fhir_conv_orders: results (ORU^R01 -> Observation + DiagnosticReport),
 * orders (ORM^O01, OML^O21 -> ServiceRequest + Specimen) and documents
 * (MDM^T02 -> DocumentReference).
 *
 * Segments are grouped by position: an ORU result group is an OBR with the
 * OBX up to the next OBR; an order is an ORC with what follows it up to the
 * next ORC (TQ1, OBR, DG1, SPM), or an OBR when the message has no ORC.
 * Orders are identified by the placer number (ORC-2, else OBR-2: the
 * placer exists from the start, a filler number may come later), results
 * by the filler number first (OBR-3, else OBR-2), as the lab re-sends them.
 */
#include "fhir/fhir_conv.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#define SYS_OBS_CAT "http://terminology.hl7.org/CodeSystem/observation-category"
#define SYS_INTERP "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"

/* --- Observation ------------------------------------------------------------- */

/* OBX-5 by its type OBX-2 (ST when none); unit: OBX-6. */
static void obs_value(fc *c, long obx, const fc_unit *unit, ftree_node *o)
{
    const char *t = fc_val(c, obx, 2, 1, 1, 1);
    const char *whole = fc_val(c, obx, 5, 1, 0, 0);
    if (!whole) return;
    if (!t) t = "ST";
    double v;
    if (!strcmp(t, "NM") && fc_number(whole, &v)) {
        ftree_set(o, "valueQuantity", fc_quantity(c, v, unit));
    } else if (!strcmp(t, "SN")) { /* comparator, number (a range or ratio is text) */
        const char *cmp = fc_val(c, obx, 5, 1, 1, 1);
        if (!cmp) cmp = "";
        bool simple = !fc_val(c, obx, 5, 1, 3, 1) && !fc_val(c, obx, 5, 1, 4, 1);
        bool cmp_ok = !cmp[0] || !strcmp(cmp, "<") || !strcmp(cmp, ">") || !strcmp(cmp, "<=") ||
                      !strcmp(cmp, ">=");
        if (simple && cmp_ok && fc_number(fc_val(c, obx, 5, 1, 2, 1), &v)) {
            ftree_node *q = fc_quantity(c, v, unit);
            fc_str(c, q, "comparator", cmp);
            ftree_set(o, "valueQuantity", q);
        } else {
            fc_str(c, o, "valueString", whole);
        }
    } else if (!strcmp(t, "CWE") || !strcmp(t, "CE") || !strcmp(t, "CNE")) {
        ftree_node *cc = fc_codeable(c, obx, 5, 1, 0);
        if (cc) ftree_set(o, "valueCodeableConcept", cc);
    } else if (!strcmp(t, "DT") || !strcmp(t, "DTM") || !strcmp(t, "TS")) {
        fc_date(c, o, "valueDateTime", obx, 5, 0, FC_DATETIME);
    } else {
        fc_str(c, o, "valueString", whole);
    }
}

/* OBX-7: "LOW-HIGH", "<X"/"<=X" (high), ">X"/">=X" (low), else text. */
static void obs_range(fc *c, long obx, const fc_unit *unit, ftree_node *o)
{
    const char *r = fc_val(c, obx, 7, 1, 0, 0);
    if (!r) return;
    ftree_node *rr = fc_obj(c);
    double lo, hi;
    const char *end;
    if (*r == '<' || *r == '>') {
        const char *num = r + 1 + (r[1] == '=');
        if (fc_number(num, &hi))
            ftree_set(rr, *r == '<' ? "high" : "low", fc_quantity(c, hi, unit));
    } else {
        lo = fc_number_prefix(r, &end);
        if (end != r && *end == '-' && fc_number(end + 1, &hi)) {
            ftree_set(rr, "low", fc_quantity(c, lo, unit));
            ftree_set(rr, "high", fc_quantity(c, hi, unit));
        }
    }
    if (!ftree_size(rr)) fc_str(c, rr, "text", r);
    fc_push(c, o, "referenceRange", rr);
}

static void obs_interpretation(fc *c, long obx, ftree_node *o)
{
    uint32_t n = hl7_rep_count(c->m, (uint32_t)obx, 8);
    for (uint32_t r = 1; r <= n; r++) {
        const char *code = fc_val(c, obx, 8, r, 1, 1);
        const char *display = fc_lookup(c, FHIR_TAB_INTERPRETATIONS, code);
        if (!code) continue;
        ftree_node *cc = fc_obj(c);
        if (display) {
            ftree_node *coding = fc_obj(c);
            fc_lit(c, coding, "system", SYS_INTERP);
            fc_str(c, coding, "code", code);
            fc_str(c, coding, "display", display);
            fc_push(c, cc, "coding", coding);
        } else {
            fc_str(c, cc, "text", code);
        }
        fc_push(c, o, "interpretation", cc);
    }
}

void fc_observation(fc *c, long obx, long obr, const char *order_key, unsigned n,
                    const char *category, const char *part_of, char ref[FC_REF])
{
    tbuf *key = &c->cv->text; /* Observation|order|n|code|sub-id */
    tbuf_reset(key);
    const char *code = fc_val(c, obx, 3, 1, 1, 1);
    const char *sub = fc_val(c, obx, 4, 1, 1, 1);
    tbuf_puts(key, "Observation|");
    tbuf_puts(key, order_key);
    tbuf_putc(key, '|');
    fc_put_uint(key, n);
    tbuf_putc(key, '|');
    tbuf_puts(key, code ? code : "");
    tbuf_putc(key, '|');
    tbuf_puts(key, sub ? sub : "");
    char id[33];
    fc_stable_id(c, key->p, id);
    ftree_node *o = fc_resource(c, "Observation", id);
    if (part_of) fc_push(c, o, "partOf", fc_ref(c, part_of));
    const char *st = fc_lookup(c, FHIR_TAB_OBS_STATUSES, fc_val(c, obx, 11, 1, 1, 1));
    fc_str(c, o, "status", st ? st : "unknown");
    if (category) {
        ftree_node *cat = fc_obj(c);
        fc_push(c, cat, "coding", fc_coding(c, SYS_OBS_CAT, category));
        fc_push(c, o, "category", cat);
    }
    ftree_set(o, "code", fc_codeable_req(c, obx, 3));
    ftree_set(o, "subject", fc_ref(c, c->patient_ref));
    if (c->encounter_ref[0]) ftree_set(o, "encounter", fc_ref(c, c->encounter_ref));
    fc_date(c, o, "effectiveDateTime", obx, 14, 0, FC_DATETIME);
    if (!ftree_get(o, "effectiveDateTime"))
        fc_date(c, o, "effectiveDateTime", obr, 7, 0, FC_DATETIME);
    fc_unit unit = fc_unit_at(c, obx, 6);
    obs_value(c, obx, &unit, o);
    obs_interpretation(c, obx, o);
    obs_range(c, obx, &unit, o);
    fc_add(c, o, ref);
}

/* --- DiagnosticReport and ORU ------------------------------------------------- */

void fc_order_key(fc *c, long seg, const uint32_t fields[2], const char *types[2], unsigned pos,
                  ftree_node *res, tbuf *key)
{
    for (size_t i = 0; i < 2 && seg >= 0; i++) {
        tbuf k = TBUF_INIT;
        ftree_node *id = fc_identifier(c, seg, fields[i], 1, 2, types[i], "Order", &k);
        if (res) fc_push(c, res, "identifier", id);
        if (id && !key->len) tbuf_puts(key, k.p);
        tbuf_free(&k);
    }
    if (!key->len) {
        const char *ctl = fc_val(c, 0, 10, 1, 1, 1);
        fc_cat(key, "Order|msh10|", ctl ? ctl : "", "|", NULL);
        fc_put_uint(key, pos);
    }
}

static void report(fc *c, long obr, unsigned pos, long first_obx, long end)
{
    static const uint32_t fields[2] = {3, 2};
    static const char *types[2] = {"FILL", "PLAC"};
    ftree_node *rep = fc_obj(c);
    tbuf key = TBUF_INIT;
    fc_order_key(c, obr, fields, types, pos, rep, &key);
    unsigned n = 0;
    for (long i = first_obx; i < end; i++) {
        if (!fc_is(c, i, "OBX")) continue;
        char ref[FC_REF];
        fc_observation(c, i, obr, key.p, ++n, "laboratory", NULL, ref);
        fc_push(c, rep, "result", fc_ref(c, ref));
    }
    if (obr < 0) { /* OBX without OBR: Observations only */
        tbuf_free(&key);
        return;
    }
    tbuf_puts(&key, "|report");
    char id[33];
    fc_stable_id(c, key.p, id);
    tbuf_free(&key);
    ftree_node *r = fc_resource(c, "DiagnosticReport", id);
    ftree_take_members(r, rep);
    const char *st = fc_lookup(c, FHIR_TAB_REPORT_STATUSES, fc_val(c, obr, 25, 1, 1, 1));
    fc_str(c, r, "status", st ? st : "unknown");
    ftree_node *cat = fc_obj(c);
    fc_push(c, cat, "coding", fc_coding(c, "http://terminology.hl7.org/CodeSystem/v2-0074", "LAB"));
    fc_push(c, r, "category", cat);
    ftree_set(r, "code", fc_codeable_req(c, obr, 4));
    ftree_set(r, "subject", fc_ref(c, c->patient_ref));
    if (c->encounter_ref[0]) ftree_set(r, "encounter", fc_ref(c, c->encounter_ref));
    fc_date(c, r, "effectiveDateTime", obr, 7, 0, FC_DATETIME);
    fc_date(c, r, "issued", obr, 22, 0, FC_INSTANT);
    fc_add(c, r, NULL);
}

/* Each OBR with the OBX that follow it up to the next OBR makes one
 * DiagnosticReport; OBX before any OBR make Observations only. */
void fc_convert_oru(fc *c)
{
    fc_context(c);
    uint32_t nseg = hl7_seg_count(c->m);
    long obr = -1, start = 0;
    unsigned pos = 0;
    for (uint32_t i = 1; i <= nseg; i++) {
        if (i < nseg && !fc_is(c, i, "OBR")) continue;
        report(c, obr, pos, start, i);
        obr = i;
        start = i + 1;
        pos++;
    }
}

/* --- ServiceRequest and Specimen ------------------------------------------------ */

/* The first segment named id in [from, end), or -1. */
static long in_range(fc *c, long from, long end, const char *id)
{
    for (long i = from; i < end; i++)
        if (fc_is(c, i, id)) return i;
    return -1;
}

/* Specimen from SPM (EIP SPM-2: placer id in SPM-2.1, filler in SPM-2.2). */
static void specimen_spm(fc *c, long spm, const char *order, unsigned n, const char *request,
                         char ref[FC_REF])
{
    tbuf key = TBUF_INIT;
    ftree_node *idents = ftree_array(c->t);
    for (uint32_t part = 1; part <= 2; part++) {
        const char *value = fc_val(c, spm, 2, 1, part, 1);
        if (!value) continue;
        ftree_node *ident = fc_obj(c);
        fc_str(c, ident, "value", value);
        const char *ns = fc_val(c, spm, 2, 1, part, 2);
        tbuf sys = TBUF_INIT;
        if (ns) {
            const char *known = fc_lookup(c, FHIR_TAB_AUTHORITIES, ns);
            if (known)
                tbuf_puts(&sys, known);
            else
                tbuf_printf(&sys, "urn:tern:id:%s", ns);
            for (char *p = sys.p + (known ? sys.len : 12); *p; p++)
                if (!isalnum((unsigned char)*p) && !strchr("-._~", *p)) *p = '_';
            fc_str(c, ident, "system", sys.p);
        }
        if (!key.len) {
            value = fc_val(c, spm, 2, 1, part, 1);
            tbuf_printf(&key, "Specimen|%s|%s", sys.len ? sys.p : "", value);
        }
        tbuf_free(&sys);
        ftree_append(idents, ident);
    }
    if (!key.len) tbuf_printf(&key, "Specimen|%s|%u", order, n);
    char id[33];
    fc_stable_id(c, key.p, id);
    tbuf_free(&key);
    ftree_node *s = fc_resource(c, "Specimen", id);
    fc_set_nonempty(s, "identifier", idents);
    ftree_node *type = fc_codeable(c, spm, 4, 1, 0);
    if (type) ftree_set(s, "type", type);
    ftree_set(s, "subject", fc_ref(c, c->patient_ref));
    fc_date(c, s, "receivedTime", spm, 18, 0, FC_DATETIME);
    if (request) fc_push(c, s, "request", fc_ref(c, request));
    ftree_node *coll = fc_obj(c);
    fc_date(c, coll, "collectedDateTime", spm, 17, 1, FC_DATETIME);
    ftree_node *site = fc_codeable(c, spm, 8, 1, 0);
    if (site) ftree_set(coll, "bodySite", site);
    double qty;
    if (fc_number(fc_val(c, spm, 12, 1, 1, 1), &qty)) {
        fc_unit unit = fc_unit_of(c, fc_val(c, spm, 12, 1, 2, 1), NULL);
        ftree_set(coll, "quantity", fc_quantity(c, qty, &unit));
    }
    fc_set_nonempty(s, "collection", coll);
    fc_add(c, s, ref);
}

/* Specimen from OBR-15 (SPS: source name as CWE subcomponents, body site in
 * component 4) collected at OBR-7. */
static bool specimen_obr(fc *c, long obr, const char *order, const char *request, char ref[FC_REF])
{
    ftree_node *type = fc_codeable(c, obr, 15, 1, 1);
    if (!type) return false;
    tbuf key = TBUF_INIT;
    tbuf_printf(&key, "Specimen|%s|obr15", order);
    char id[33];
    fc_stable_id(c, key.p, id);
    tbuf_free(&key);
    ftree_node *s = fc_resource(c, "Specimen", id);
    ftree_set(s, "type", type);
    ftree_set(s, "subject", fc_ref(c, c->patient_ref));
    if (request) fc_push(c, s, "request", fc_ref(c, request));
    ftree_node *coll = fc_obj(c);
    fc_date(c, coll, "collectedDateTime", obr, 7, 0, FC_DATETIME);
    ftree_node *site = fc_codeable(c, obr, 15, 1, 4);
    if (site) ftree_set(coll, "bodySite", site);
    fc_set_nonempty(s, "collection", coll);
    fc_add(c, s, ref);
    return true;
}

const char *fc_request_status(fc *c, long orc)
{
    const char *st = fc_lookup(c, FHIR_TAB_ORDER_STATUSES, fc_val(c, orc, 5, 1, 1, 1));
    if (!st) st = fc_lookup(c, FHIR_TAB_ORDER_CONTROLS, fc_val(c, orc, 1, 1, 1, 1));
    return st ? st : "unknown";
}

static const char *priority(const char *tq1_9)
{
    if (!tq1_9) return NULL;
    if (!strcmp(tq1_9, "S")) return "stat";
    if (!strcmp(tq1_9, "A")) return "asap";
    if (!strcmp(tq1_9, "R")) return "routine";
    return NULL;
}

/* One order: ORC (may be -1) with the segments in [from, end). */
static void service_request(fc *c, long orc, long from, long end, unsigned pos)
{
    long obr = in_range(c, from, end, "OBR");
    long tq1 = in_range(c, from, end, "TQ1");
    ftree_node *sr = fc_obj(c);
    tbuf key = TBUF_INIT;
    /* placer and filler numbers, from the ORC else the OBR */
    static const uint32_t fields[2] = {2, 3};
    static const char *types[2] = {"PLAC", "FILL"};
    long idseg = orc >= 0 && (fc_val(c, orc, 2, 1, 1, 1) || fc_val(c, orc, 3, 1, 1, 1)) ? orc : obr;
    fc_order_key(c, idseg, fields, types, pos, sr, &key);
    char order[FC_REF + 96];
    snprintf(order, sizeof order, "%s", key.p);
    tbuf_puts(&key, "|request");
    char id[33], self[FC_REF];
    fc_stable_id(c, key.p, id);
    tbuf_free(&key);
    fc_ref_of(self, "ServiceRequest", id);

    char spec[FC_REF] = "";
    unsigned nspm = 0;
    for (long i = from; i < end; i++)
        if (fc_is(c, i, "SPM")) {
            specimen_spm(c, i, order, ++nspm, self, spec);
        }
    if (!nspm && obr >= 0) specimen_obr(c, obr, order, self, spec);

    char doctor[FC_REF] = "";
    if (!(orc >= 0 && fc_practitioner(c, orc, 12, 1, doctor)) && obr >= 0)
        fc_practitioner(c, obr, 16, 1, doctor);

    ftree_node *r = fc_resource(c, "ServiceRequest", id);
    ftree_take_members(r, sr);
    fc_const(c, r, "status", orc >= 0 ? fc_request_status(c, orc) : "active");
    fc_lit(c, r, "intent", "order");
    const char *prio = priority(fc_val(c, tq1, 9, 1, 1, 1));
    if (prio) fc_const(c, r, "priority", prio);
    if (obr >= 0) ftree_set(r, "code", fc_codeable_req(c, obr, 4));
    ftree_set(r, "subject", fc_ref(c, c->patient_ref));
    if (c->encounter_ref[0]) ftree_set(r, "encounter", fc_ref(c, c->encounter_ref));
    fc_date(c, r, "occurrenceDateTime", tq1, 7, 0, FC_DATETIME);
    if (!ftree_get(r, "occurrenceDateTime"))
        fc_date(c, r, "occurrenceDateTime", obr, 27, 4, FC_DATETIME);
    if (!ftree_get(r, "occurrenceDateTime"))
        fc_date(c, r, "occurrenceDateTime", obr, 6, 0, FC_DATETIME);
    fc_date(c, r, "authoredOn", orc, 9, 0, FC_DATETIME);
    if (doctor[0]) ftree_set(r, "requester", fc_ref(c, doctor));
    uint32_t n = obr >= 0 ? hl7_rep_count(c->m, (uint32_t)obr, 31) : 0;
    for (uint32_t rep = 1; rep <= n; rep++)
        fc_push(c, r, "reasonCode", fc_codeable(c, obr, 31, rep, 0));
    for (long i = from; i < end; i++)
        if (fc_is(c, i, "DG1")) fc_push(c, r, "reasonCode", fc_codeable(c, i, 3, 1, 0));
    if (spec[0]) fc_push(c, r, "specimen", fc_ref(c, spec));
    fc_add(c, r, NULL);
}

/* ORM^O01 / OML^O21: one ServiceRequest per ORC (or per OBR without ORC). */
void fc_convert_order(fc *c)
{
    fc_context(c);
    uint32_t nseg = hl7_seg_count(c->m);
    const char *starter = hl7_seg_find(c->m, "ORC", 1) >= 0 ? "ORC" : "OBR";
    long start = -1;
    unsigned pos = 0;
    for (uint32_t i = 1; i <= nseg; i++) {
        if (i < nseg && !fc_is(c, i, starter)) continue;
        if (start >= 0) service_request(c, !strcmp(starter, "ORC") ? start : -1, start, i, ++pos);
        start = i;
    }
}

/* --- DocumentReference ------------------------------------------------------------ */

static ftree_node *attachment(fc *c, const char *content_type, const unsigned char *data,
                              size_t len, bool encoded)
{
    ftree_node *a = fc_obj(c);
    fc_str(c, a, "contentType", content_type);
    tbuf b64 = TBUF_INIT;
    if (encoded) { /* already base64: keep only its alphabet (line breaks go) */
        for (size_t i = 0; i < len; i++)
            if (isalnum(data[i]) || data[i] == '+' || data[i] == '/' || data[i] == '=')
                tbuf_putc(&b64, (char)data[i]);
    } else {
        tbuf_grow(&b64, 4 * ((len + 2) / 3) + 1);
        int n = EVP_EncodeBlock((unsigned char *)b64.p, data, (int)len);
        b64.len = n > 0 ? (size_t)n : 0;
        b64.p[b64.len] = '\0';
    }
    if (b64.len) fc_const(c, a, "data", b64.p);
    tbuf_free(&b64);
    return a;
}

/* MIME type of an ED (OBX-5: 2 type of data, 3 subtype). */
static void ed_mime(fc *c, long obx, char *out, size_t cap)
{
    const char *type = fc_val(c, obx, 5, 1, 2, 1);
    char t[32];
    snprintf(t, sizeof t, "%s", type ? type : "application");
    const char *sub = fc_val(c, obx, 5, 1, 3, 1);
    if (strchr(t, '/')) {
        snprintf(out, cap, "%s", t);
    } else {
        const char *major = !strcasecmp(t, "AP") || !strcasecmp(t, "application") ? "application"
                            : !strcasecmp(t, "IM") || !strcasecmp(t, "image")     ? "image"
                            : !strcasecmp(t, "TEXT") || !strcasecmp(t, "TX")      ? "text"
                            : !strcasecmp(t, "AU") || !strcasecmp(t, "audio")     ? "audio"
                                                                                  : "application";
        snprintf(out, cap, "%s/%s", major, sub ? sub : "octet-stream");
    }
    for (char *p = out; *p; p++)
        *p = (char)tolower((unsigned char)*p);
}

static void document_content(fc *c, ftree_node *d)
{
    tbuf text = TBUF_INIT;
    uint32_t nseg = hl7_seg_count(c->m);
    for (uint32_t i = 1; i < nseg; i++) {
        if (!fc_is(c, i, "OBX")) continue;
        const char *type = fc_val(c, i, 2, 1, 1, 1);
        if (type && (!strcmp(type, "ED") || !strcmp(type, "RP"))) {
            if (!strcmp(type, "RP")) continue;
            char mime[96];
            ed_mime(c, i, mime, sizeof mime);
            const char *enc = fc_val(c, i, 5, 1, 4, 1);
            bool b64 = enc && !strcasecmp(enc, "Base64");
            const char *data = fc_val(c, i, 5, 1, 5, 1);
            if (!data) continue;
            ftree_node *content = fc_obj(c);
            ftree_set(content, "attachment",
                      attachment(c, mime, (const unsigned char *)data, strlen(data), b64));
            fc_push(c, d, "content", content);
            continue;
        }
        uint32_t n = hl7_rep_count(c->m, i, 5);
        for (uint32_t r = 1; r <= n; r++) {
            const char *line = fc_val(c, i, 5, r, 0, 0);
            if (text.len) tbuf_putc(&text, '\n');
            if (line) tbuf_puts(&text, line);
        }
    }
    if (text.len) {
        ftree_node *content = fc_obj(c);
        ftree_set(content, "attachment",
                  attachment(c, "text/plain; charset=utf-8", (const unsigned char *)text.p,
                             text.len, false));
        fc_push(c, d, "content", content);
    }
    tbuf_free(&text);
}

/* MDM^T02: the TXA document with its OBX content. */
void fc_convert_mdm(fc *c)
{
    fc_context(c);
    long txa = hl7_seg_find(c->m, "TXA", 1);
    tbuf key = TBUF_INIT;
    ftree_node *ident = fc_identifier(c, txa, 12, 1, 2, NULL, "DocumentReference", &key);
    char id[33];
    fc_id_from(c, &key, "DocumentReference", "TXA", id);
    tbuf_free(&key);
    char author[FC_REF] = "";
    if (!fc_practitioner(c, txa, 9, 1, author)) fc_practitioner(c, txa, 5, 1, author);
    ftree_node *d = fc_resource(c, "DocumentReference", id);
    if (ident) ftree_set(d, "masterIdentifier", ftree_copy(c->t, ident));
    fc_push(c, d, "identifier", ident);
    fc_lit(c, d, "status", "current");
    fc_str(c, d, "docStatus",
           fc_lookup(c, FHIR_TAB_DOCUMENT_STATUSES, fc_val(c, txa, 17, 1, 1, 1)));
    ftree_node *type = fc_codeable(c, txa, 2, 1, 0);
    if (type) ftree_set(d, "type", type);
    fc_push(c, d, "category",
            fc_concept(c,
                       "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category",
                       "clinical-note", "Clinical Note"));
    ftree_set(d, "subject", fc_ref(c, c->patient_ref));
    fc_date(c, d, "date", txa, 4, 0, FC_INSTANT_MIN);
    if (!ftree_get(d, "date")) fc_date(c, d, "date", txa, 6, 0, FC_INSTANT_MIN);
    if (author[0]) fc_push(c, d, "author", fc_ref(c, author));
    document_content(c, d);
    if (!ftree_get(d, "content")) { /* content is required: say there is none */
        ftree_node *content = fc_obj(c);
        ftree_node *none = fc_obj(c);
        fc_lit(c, none, "title", "no content in the message");
        ftree_set(content, "attachment", none);
        fc_push(c, d, "content", content);
    }
    if (c->encounter_ref[0]) {
        ftree_node *ctx = fc_obj(c);
        fc_push(c, ctx, "encounter", fc_ref(c, c->encounter_ref));
        ftree_set(d, "context", ctx);
    }
    fc_add(c, d, NULL);
}
