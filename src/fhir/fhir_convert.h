/*
 * fhir_convert: one parsed HL7 v2 message -> one FHIR R4 transaction Bundle.
 *
 * Supported: ADT^A01 A02 A03 A04 A08 A11 A13 A28 A31 A40, ORU^R01,
 * ORM^O01, OML^O21, RDE^O11, VXU^V04, MDM^T02, SIU^S12 (fhir_supported_types()),
 * and in any of them NK1, AL1, DG1, IN1/IN2. docs/fhir.md has the
 * field-by-field mapping; the code maps are fhir_tables (overridable).
 *
 * Every entry is `request: PUT Type/<id>` with an id derived from business
 * identifiers (hex SHA-256 of "Type|system|value", 32 characters), so the
 * same patient, visit, order or result arriving twice updates the same
 * resource. References inside the Bundle are relative ("Patient/<id>") and
 * resolve against the server the Bundle is posted to. fullUrl is written
 * only when a base URL is given (R4 wants it absolute).
 *
 * The library never prints; problems come back as an fhir_error.
 */
#ifndef TERN_FHIR_CONVERT_H
#define TERN_FHIR_CONVERT_H

#include "fhir/fhir_tables.h"
#include "fhir/ftree.h"
#include "hl7/hl7.h"

typedef enum fhir_status {
    FHIR_OK = 0,
    FHIR_ERR_UNSUPPORTED, /* message type not converted (yet) */
    FHIR_ERR_MISSING,     /* a segment the conversion needs is absent (PID) */
} fhir_status;

/* Static name of a status; never NULL. */
const char *fhir_strerror(fhir_status s);

typedef struct fhir_error {
    fhir_status code;
    char text[224]; /* what was wrong, e.g. "ORM^O01 is not converted yet (...)" */
} fhir_error;

typedef struct fhir_options {
    /* Offset for HL7 times that carry none and whose message's MSH-7 carries
     * none either ("+01:00", "Z"); NULL means "Z". */
    const char *default_offset;
    /* Server base ("https://fhir.example.org/r4") for absolute fullUrls;
     * NULL: no fullUrl. */
    const char *base_url;
    /* Lookup tables loaded with fhir_tables_load(); NULL: the built-ins.
     * Borrowed for the conversion. */
    const fhir_tables *tables;
} fhir_options;

/* The supported message types as text ("ADT^A01 A02 ..., ORU^R01, ..."). */
const char *fhir_supported_types(void);

/* What conversions reuse from one message to the next: the arena the
 * Bundle is built in (an ftree), the digest context of the ids, scratch
 * buffers. Create one per thread and convert message after message with
 * it: after the first messages a conversion allocates nothing. */
typedef struct fhir_converter fhir_converter;

/* A new converter; never NULL. Free with fhir_converter_free(). */
fhir_converter *fhir_converter_new(void);
/* Frees cv and the last Bundle it made; NULL is fine. */
void fhir_converter_free(fhir_converter *cv);

/* Converts m with cv. On FHIR_OK *bundle is the Bundle, owned by cv and
 * valid until the next fhir_convert() with cv or fhir_converter_free():
 * write it with ftree_write(), or ftree_to_json() for jansson. Otherwise
 * *bundle is NULL and err (may be NULL) says why. opt may be NULL; it is
 * borrowed for the call. */
fhir_status fhir_convert(fhir_converter *cv, const hl7_msg *m, const fhir_options *opt,
                         ftree_node **bundle, fhir_error *err);

/* HL7 DTM/DT/TS text -> FHIR dateTime (date_only: FHIR date) appended to
 * out, keeping the precision (YYYY, YYYY-MM, YYYY-MM-DD, or a time to the
 * second with fraction and offset). offset is used when the value has none
 * and a time is present. Returns false (out unchanged) when the text is not
 * a valid DTM. */
bool fhir_datetime(const char *dtm, const char *offset, bool date_only, tbuf *out);

/* Writes the 32-hex-character id of "Type|system|value" style text. */
void fhir_stable_id(const char *key, char out[33]);

#endif
