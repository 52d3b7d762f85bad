/*
 * fhir_tables: the lookup tables of the HL7 v2 -> FHIR conversion (code
 * system names, assigning authorities, HL7 table -> FHIR code maps), with
 * built-in defaults that a JSON file can extend or override without
 * recompiling (docs/fhir.md, "Tables file").
 *
 * A fhir_tables holds only the user's entries (a jansson object per table);
 * fhir_table_lookup() looks there first, then in the built-in table. A NULL
 * fhir_tables means "built-ins only". Loaded tables are immutable and may
 * be shared by threads.
 */
#ifndef TERN_FHIR_TABLES_H
#define TERN_FHIR_TABLES_H

#include <stdbool.h>
#include <stddef.h>

typedef enum fhir_table_id {
    FHIR_TAB_AUTHORITIES,           /* CX-4/HD namespace -> identifier system URI */
    FHIR_TAB_CODE_SYSTEMS,          /* CWE-3 coding system -> system URI */
    FHIR_TAB_GENDERS,               /* PID-8 -> administrative-gender */
    FHIR_TAB_NAME_USES,             /* XPN-7 -> name-use */
    FHIR_TAB_ADDRESS_USES,          /* XAD-7 -> address-use */
    FHIR_TAB_TELECOM_SYSTEMS,       /* XTN-3 -> contact-point-system */
    FHIR_TAB_TELECOM_USES,          /* XTN-2 -> contact-point-use */
    FHIR_TAB_ENCOUNTER_CLASSES,     /* PV1-2 -> "v3-ActCode code|display" */
    FHIR_TAB_OBS_STATUSES,          /* OBX-11 -> observation-status */
    FHIR_TAB_REPORT_STATUSES,       /* OBR-25 -> diagnostic-report-status */
    FHIR_TAB_INTERPRETATIONS,       /* OBX-8 -> v3-ObservationInterpretation display */
    FHIR_TAB_ORDER_STATUSES,        /* ORC-5 -> request-status */
    FHIR_TAB_ORDER_CONTROLS,        /* ORC-1 -> request-status */
    FHIR_TAB_RELATIONSHIPS,         /* NK1-3 -> v3-RoleCode code */
    FHIR_TAB_ALLERGY_TYPES,         /* AL1-2 -> "type|category" */
    FHIR_TAB_ALLERGY_SEVERITIES,    /* AL1-4 -> "reaction severity|criticality" */
    FHIR_TAB_UNITS,                 /* OBX-6/RXE-5/RXA-7 local unit -> UCUM code */
    FHIR_TAB_IMMUNIZATION_STATUSES, /* RXA-20 -> immunization-status */
    FHIR_TAB_APPOINTMENT_STATUSES,  /* SCH-25 -> appointmentstatus */
    FHIR_TAB_DOCUMENT_STATUSES,     /* TXA-17 -> composition-status (docStatus) */
    FHIR_TAB_DIAGNOSIS_TYPES,       /* DG1-6 -> condition-category code */
    FHIR_TAB_COUNT
} fhir_table_id;

typedef struct fhir_tables fhir_tables;

/* The table's name in the JSON file ("authorities", "genders", ...); never
 * NULL for a valid id. */
const char *fhir_table_name(fhir_table_id id);

/* The mapped value of key: the user's entry, else the built-in one, else
 * NULL. t may be NULL (built-ins only); key may be NULL (returns NULL). The
 * result lives as long as t (or forever for a built-in). */
const char *fhir_table_lookup(const fhir_tables *t, fhir_table_id id, const char *key);

/* Only the user's entry for key (NULL when t is NULL or has none): for
 * the places where a configured value must win over what the message says
 * but a built-in one must not (an assigning authority with an OID). */
const char *fhir_table_lookup_user(const fhir_tables *t, fhir_table_id id, const char *key);

/* The key that maps to value (FHIR -> HL7 v2): the user's entry first,
 * then the first built-in one; NULL when none. Lives as long as t. */
const char *fhir_table_reverse(const fhir_tables *t, fhir_table_id id, const char *value);

/* Reads a tables file: a JSON object whose members are table names, each an
 * object of string -> string. Unknown table names, non-string values and
 * empty values are errors. On success returns true and *out is a new
 * fhir_tables the caller frees with fhir_tables_free(); otherwise false,
 * *out NULL and err (size err_cap) says what and where. */
bool fhir_tables_load(const char *path, fhir_tables **out, char *err, size_t err_cap);

/* Frees t; NULL is fine. */
void fhir_tables_free(fhir_tables *t);

#endif
