/*
 * fhir_to_v2: FHIR R4 -> HL7 v2, the other way from fhir_convert. Today one
 * mapping: a ServiceRequest (with the Patient and Practitioner it names)
 * becomes an order message, OML^O21 or ORM^O01, of segments
 * MSH PID PV1 ORC OBR (docs/fhir.md, "FHIR to HL7 v2: orders", has the
 * field table).
 *
 * Pure: referenced resources come through a caller's resolver, so the
 * module knows no store; code systems and identifier systems go back to
 * HL7 names through the same tables as the v2 -> FHIR direction
 * (fhir_table_reverse), so a round trip keeps them. Text is HL7-escaped
 * with the standard delimiters |^~\&. Output is the message's segments,
 * each ended by CR.
 */
#ifndef TERN_FHIR_TO_V2_H
#define TERN_FHIR_TO_V2_H

#include <jansson.h>

#include "base/tbuf.h"
#include "fhir/fhir_convert.h"
#include "fhir/fhir_tables.h"

typedef enum fhir_v2_message {
    FHIR_V2_OML_O21 = 0,
    FHIR_V2_ORM_O01,
} fhir_v2_message;

/* Returns the resource a reference ("Patient/123") names as a new jansson
 * value the caller json_decref()s, or NULL when it cannot be found. */
typedef json_t *(*fhir_v2_resolve_fn)(void *arg, const char *reference);

typedef struct fhir_v2_options {
    fhir_v2_message message;
    /* MSH-3..6; NULL: MSH-3 and MSH-4 "TERN", MSH-5 and MSH-6 empty. */
    const char *sending_application, *sending_facility;
    const char *receiving_application, *receiving_facility;
    const char *control_id;     /* MSH-10; required */
    const char *timestamp;      /* MSH-7 as HL7 DTM ("20260115101500+0000"); required */
    const char *order_control;  /* ORC-1; NULL: "NW" */
    const fhir_tables *tables;  /* NULL: the built-ins */
    fhir_v2_resolve_fn resolve; /* required: the subject must resolve to a Patient */
    void *resolve_arg;
} fhir_v2_options;

/* Appends the order message for the ServiceRequest sr to out. On anything
 * but FHIR_OK out is unchanged and err (may be NULL) says why: not a
 * ServiceRequest, no code, no subject, or a subject that does not
 * resolve to a Patient (FHIR_ERR_MISSING). */
fhir_status fhir_to_v2_order(const json_t *sr, const fhir_v2_options *opt, tbuf *out,
                             fhir_error *err);

/* FHIR date/dateTime/instant -> HL7 DTM appended to out ("2026-01-15T09:00:00Z"
 * -> "20260115090000+0000"); false (out unchanged) when not one. */
bool fhir_v2_datetime(const char *fhir, tbuf *out);

#endif
