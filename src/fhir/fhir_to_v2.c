/*
 * fhir_to_v2: ServiceRequest -> OML^O21 / ORM^O01 (see fhir_to_v2.h).
 *
 * Each segment is built in a tbuf field by field; values pass through
 * hl7_escape() one leaf at a time, so a '^' in a name cannot shift a
 * component. Trailing empty fields are not written. The identifier and
 * code system mapping reverses fhir_convert's: a system the tables know
 * goes back to its HL7 name, urn:oid:X to an ISO universal id, and
 * urn:tern:id:NS / urn:tern:cs:NAME (what the converter makes of unknown
 * names) to the name itself; any other URI is written as it is.
 */
#include "fhir/fhir_to_v2.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "hl7/hl7.h"

static const hl7_delims DELIMS = {'|', '^', '~', '\\', '&', '#'};

static void err_set(fhir_error *err, fhir_status code, const char *text)
{
    if (!err) return;
    err->code = code;
    snprintf(err->text, sizeof err->text, "%s", text);
}

static const char *str(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* Appends text escaped as one leaf; NULL appends nothing. */
static void put(tbuf *b, const char *text)
{
    if (text) hl7_escape(&DELIMS, text, strlen(text), b);
}

/* Drops trailing field separators of the segment being built (from start). */
static void end_segment(tbuf *b, size_t start)
{
    while (b->len > start && b->p[b->len - 1] == '|')
        b->len--;
    tbuf_putc(b, '\r');
}

bool fhir_v2_datetime(const char *fhir, tbuf *out)
{
    if (!fhir || strlen(fhir) < 4) return false;
    tbuf t = TBUF_INIT;
    bool time = false, ok = true;
    for (const char *p = fhir; *p && ok; p++) {
        if (isdigit((unsigned char)*p) || *p == '.')
            tbuf_putc(&t, *p);
        else if (*p == 'T' && !time)
            time = true;
        else if (*p == '-' && !time)
            continue;
        else if (*p == ':' && time)
            continue;
        else if ((*p == '+' || *p == '-') && time)
            tbuf_putc(&t, *p);
        else if (*p == 'Z' && time && !p[1])
            tbuf_puts(&t, "+0000");
        else
            ok = false;
    }
    if (ok) tbuf_put(out, t.p, t.len);
    tbuf_free(&t);
    return ok;
}

/* The HL7 name of an identifier system: CX-4/EI namespace (or, for an OID,
 * "&OID&ISO" as HD subcomponents, written raw). */
static void put_authority(tbuf *b, const fhir_tables *t, const char *system)
{
    const char *name = fhir_table_reverse(t, FHIR_TAB_AUTHORITIES, system);
    if (name)
        put(b, name);
    else if (!strncmp(system, "urn:oid:", 8))
        tbuf_printf(b, "&%s&ISO", system + 8);
    else if (!strncmp(system, "urn:tern:id:", 12))
        put(b, system + 12);
    else
        put(b, system);
}

static void put_code_system(tbuf *b, const fhir_tables *t, const char *system)
{
    const char *name = fhir_table_reverse(t, FHIR_TAB_CODE_SYSTEMS, system);
    static const char v2[] = "http://terminology.hl7.org/CodeSystem/v2-";
    if (name)
        put(b, name);
    else if (!strncmp(system, v2, sizeof v2 - 1))
        tbuf_printf(b, "HL7%s", system + sizeof v2 - 1);
    else if (!strncmp(system, "urn:oid:", 8))
        put(b, system + 8);
    else if (!strncmp(system, "urn:tern:cs:", 12))
        put(b, system + 12);
    else
        put(b, system);
}

/* CX: value^^^authority^type, one repetition per identifier with a value. */
static void put_cx_list(tbuf *b, const json_t *res, const fhir_tables *t)
{
    size_t i, n = 0;
    json_t *id;
    json_array_foreach(json_object_get(res, "identifier"), i, id)
    {
        const char *value = str(id, "value"), *system = str(id, "system");
        if (!value) continue;
        if (n++) tbuf_putc(b, '~');
        put(b, value);
        tbuf_puts(b, "^^^");
        if (system) put_authority(b, t, system);
        const char *type =
            str(json_array_get(json_object_get(json_object_get(id, "type"), "coding"), 0), "code");
        if (type) {
            tbuf_putc(b, '^');
            put(b, type);
        }
    }
    if (!n && str(res, "id")) { /* no identifier: the FHIR id stands in */
        put(b, str(res, "id"));
        tbuf_puts(b, "^^^FHIR^RI");
    }
}

/* The name to write: the official one, else the first. */
static const json_t *pick_name(const json_t *res)
{
    size_t i;
    json_t *n;
    json_t *names = json_object_get(res, "name");
    json_array_foreach(names, i,
                       n) if (str(n, "use") && !strcmp(str(n, "use"), "official")) return n;
    return json_array_get(names, 0);
}

/* XPN/XCN name part: family^given^second given (from component `first`). */
static void put_name(tbuf *b, const json_t *name)
{
    const json_t *given = json_object_get(name, "given");
    put(b, str(name, "family"));
    tbuf_putc(b, '^');
    put(b, json_string_value(json_array_get(given, 0)));
    if (json_array_size(given) > 1) {
        tbuf_putc(b, '^');
        put(b, json_string_value(json_array_get(given, 1)));
    }
    if (!str(name, "family") && !json_array_size(given) && str(name, "text")) {
        b->len -= 1; /* the '^' after an empty family */
        put(b, str(name, "text"));
    }
}

/* EI: value^namespace of the order's identifier: the one typed PLAC, else
 * the first; the ServiceRequest id (namespace FHIR) when it has none. */
static void put_placer(tbuf *b, const json_t *sr, const fhir_tables *t)
{
    const json_t *pick = NULL;
    size_t i;
    json_t *id;
    json_array_foreach(json_object_get(sr, "identifier"), i, id)
    {
        if (!str(id, "value")) continue;
        const char *type =
            str(json_array_get(json_object_get(json_object_get(id, "type"), "coding"), 0), "code");
        if (type && !strcmp(type, "PLAC")) {
            pick = id;
            break;
        }
        if (!pick) pick = id;
    }
    if (pick) {
        put(b, str(pick, "value"));
        if (str(pick, "system")) {
            tbuf_putc(b, '^');
            put_authority(b, t, str(pick, "system"));
        }
    } else {
        put(b, str(sr, "id"));
        tbuf_puts(b, "^FHIR");
    }
}

/* CWE: code^display^system of the first coding; text alone without one. */
static void put_cwe(tbuf *b, const json_t *cc, const fhir_tables *t)
{
    const json_t *c = json_array_get(json_object_get(cc, "coding"), 0);
    if (!c) {
        tbuf_putc(b, '^');
        put(b, str(cc, "text"));
        return;
    }
    put(b, str(c, "code"));
    tbuf_putc(b, '^');
    put(b, str(c, "display") ? str(c, "display") : str(cc, "text"));
    if (str(c, "system")) {
        tbuf_putc(b, '^');
        put_code_system(b, t, str(c, "system"));
    }
}

/* XCN of the requester: identifier^family^given, or ^display. */
static void put_requester(tbuf *b, const json_t *sr, const fhir_v2_options *opt)
{
    const json_t *ref = json_object_get(sr, "requester");
    if (!ref) return;
    json_t *pr =
        str(ref, "reference") ? opt->resolve(opt->resolve_arg, str(ref, "reference")) : NULL;
    const json_t *id = json_array_get(json_object_get(pr, "identifier"), 0);
    const json_t *name = pick_name(pr);
    if (!id) id = json_object_get(ref, "identifier");
    put(b, str(id, "value"));
    tbuf_putc(b, '^');
    if (name)
        put_name(b, name);
    else
        put(b, str(ref, "display"));
    if (str(id, "system")) {
        tbuf_puts(b, "^^^^^^");
        size_t at = b->len;
        put_authority(b, opt->tables, str(id, "system"));
        if (b->len == at) b->len -= 6;
    }
    json_decref(pr);
}

static void put_msh(tbuf *b, const fhir_v2_options *opt)
{
    size_t start = b->len;
    tbuf_puts(b, "MSH|^~\\&|");
    put(b, opt->sending_application ? opt->sending_application : "TERN");
    tbuf_putc(b, '|');
    put(b, opt->sending_facility ? opt->sending_facility : "TERN");
    tbuf_putc(b, '|');
    put(b, opt->receiving_application);
    tbuf_putc(b, '|');
    put(b, opt->receiving_facility);
    tbuf_putc(b, '|');
    put(b, opt->timestamp);
    tbuf_puts(b, opt->message == FHIR_V2_ORM_O01 ? "||ORM^O01^ORM_O01|" : "||OML^O21^OML_O21|");
    put(b, opt->control_id);
    tbuf_puts(b, "|P|2.5.1");
    end_segment(b, start);
}

static void put_pid(tbuf *b, const json_t *pat, const fhir_tables *t)
{
    size_t start = b->len;
    tbuf_puts(b, "PID|1||");
    put_cx_list(b, pat, t);
    tbuf_puts(b, "||");
    const json_t *name = pick_name(pat);
    if (name) put_name(b, name);
    tbuf_puts(b, "||");
    fhir_v2_datetime(str(pat, "birthDate"), b);
    tbuf_putc(b, '|');
    const char *g = fhir_table_reverse(t, FHIR_TAB_GENDERS, str(pat, "gender"));
    put(b, g);
    end_segment(b, start);
}

/* The date of the order: occurrenceDateTime, else authoredOn. */
static const char *order_date(const json_t *sr)
{
    const char *d = str(sr, "occurrenceDateTime");
    return d ? d : str(sr, "authoredOn");
}

static void put_orc(tbuf *b, const json_t *sr, const fhir_v2_options *opt)
{
    size_t start = b->len;
    tbuf_puts(b, "ORC|");
    put(b, opt->order_control ? opt->order_control : "NW");
    tbuf_putc(b, '|');
    put_placer(b, sr, opt->tables);
    tbuf_puts(b, "|||||||");
    fhir_v2_datetime(str(sr, "authoredOn"), b); /* ORC-9 */
    tbuf_puts(b, "|||");
    put_requester(b, sr, opt); /* ORC-12 */
    end_segment(b, start);
}

static void put_obr(tbuf *b, const json_t *sr, const fhir_v2_options *opt)
{
    size_t start = b->len;
    tbuf_puts(b, "OBR|1|");
    put_placer(b, sr, opt->tables);
    tbuf_puts(b, "||");
    put_cwe(b, json_object_get(sr, "code"), opt->tables); /* OBR-4 */
    tbuf_puts(b, "|||");
    fhir_v2_datetime(order_date(sr), b); /* OBR-7 */
    tbuf_puts(b, "|||||||||");
    put_requester(b, sr, opt); /* OBR-16 */
    end_segment(b, start);
}

/* The Patient the subject names, or NULL with err set. */
static json_t *subject_patient(const json_t *sr, const fhir_v2_options *opt, fhir_error *err)
{
    const char *ref = str(json_object_get(sr, "subject"), "reference");
    char text[200];
    if (!ref || strncmp(ref, "Patient/", 8)) {
        err_set(err, FHIR_ERR_MISSING,
                "the ServiceRequest has no subject.reference to a Patient (Patient/ID); an HL7 "
                "order needs the patient for PID");
        return NULL;
    }
    json_t *pat = opt->resolve(opt->resolve_arg, ref);
    const char *rt = str(pat, "resourceType");
    if (!rt || strcmp(rt, "Patient")) {
        snprintf(text, sizeof text,
                 "the ServiceRequest's subject %.80s is not a Patient in the store; create the "
                 "Patient first",
                 ref);
        err_set(err, FHIR_ERR_MISSING, text);
        json_decref(pat);
        return NULL;
    }
    return pat;
}

fhir_status fhir_to_v2_order(const json_t *sr, const fhir_v2_options *opt, tbuf *out,
                             fhir_error *err)
{
    const char *rt = str(sr, "resourceType");
    if (!rt || strcmp(rt, "ServiceRequest")) {
        err_set(err, FHIR_ERR_UNSUPPORTED, "only a ServiceRequest becomes an HL7 v2 order");
        return FHIR_ERR_UNSUPPORTED;
    }
    if (!json_object_get(sr, "code")) {
        err_set(err, FHIR_ERR_MISSING,
                "the ServiceRequest has no code: OBR-4 (universal service id) needs one");
        return FHIR_ERR_MISSING;
    }
    json_t *pat = subject_patient(sr, opt, err);
    if (!pat) return FHIR_ERR_MISSING;
    tbuf b = TBUF_INIT;
    put_msh(&b, opt);
    put_pid(&b, pat, opt->tables);
    tbuf_puts(&b, "PV1|1|U\r"); /* unknown class: the order says nothing of a visit */
    put_orc(&b, sr, opt);
    put_obr(&b, sr, opt);
    tbuf_put(out, b.p, b.len);
    tbuf_free(&b);
    json_decref(pat);
    if (err) err->code = FHIR_OK;
    return FHIR_OK;
}
