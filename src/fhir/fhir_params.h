/*
 * fhir_params: the FHIR search parameters Tern indexes, and how a resource
 * turns into search index rows.
 *
 * The table of parameters (fhir_params.c) is data: resource type, name,
 * kind, the element paths it reads ("name.family", alternatives separated by
 * '|'), and for references the target type. The store (fhir_store.c) calls
 * fhir_index_extract() when it writes a resource, so a search is an index
 * lookup; the REST layer (fhir_rest.c) parses search URLs against the same
 * table, and the CapabilityStatement lists it.
 *
 * Index values: token -> (system, code) as written; string -> lower-case,
 * accent-free text (fhir_normalize), searched by prefix; date -> the
 * instants [lo, hi] covered by the value at its precision (ms since the
 * epoch, inclusive; a value without offset is UTC); reference -> (target
 * type, target id), relative or absolute URLs alike.
 */
#ifndef TERN_FHIR_PARAMS_H
#define TERN_FHIR_PARAMS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/tbuf.h"

typedef enum fhir_param_kind {
    FHIR_PARAM_TOKEN = 0,
    FHIR_PARAM_STRING,
    FHIR_PARAM_DATE,
    FHIR_PARAM_REFERENCE,
} fhir_param_kind;

/* Static name ("token", "string", "date", "reference"); never NULL. */
const char *fhir_param_kind_name(fhir_param_kind k);

typedef struct fhir_param_def {
    const char *type;  /* resource type */
    const char *name;  /* search parameter name */
    fhir_param_kind kind;
    const char *paths; /* element paths, '|' between alternatives */
    const char *target; /* REFERENCE: only references to this type; NULL: any */
} fhir_param_def;

/* The definition of `name` on `type`, or NULL. */
const fhir_param_def *fhir_param_find(const char *type, const char *name);
/* The whole table (n entries, grouped by type); never NULL. */
const fhir_param_def *fhir_param_table(size_t *n);

/* True for the resource types the API accepts (a fixed list of R4 types). */
bool fhir_type_known(const char *type);
/* The known types, n of them, sorted; never NULL. */
const char *const *fhir_type_list(size_t *n);

/* True when id is a valid FHIR id: 1-64 of [A-Za-z0-9-.], and not "." or "..". */
bool fhir_id_valid(const char *id);

/* Writes a new random id (a version 4 UUID, 36 characters) to out. */
void fhir_new_id(char out[65]);

/* One search index row. Strings owned by the row (fhir_index_rows_free). */
typedef struct fhir_index_row {
    const char *param; /* static: the table's name */
    char *sys;         /* token system / reference target type; NULL when none */
    char *value;       /* token code, normalized string, reference id; NULL for dates */
    int64_t lo, hi;    /* dates: inclusive instants in ms */
} fhir_index_row;

typedef struct fhir_index_rows {
    fhir_index_row *v;
    size_t n, cap;
} fhir_index_rows;

/* Appends the index rows of resource res (whose resourceType is type) to
 * out. Returns 0, or -1 with a message in err when an indexed element has
 * an invalid value (e.g. birthDate "1980-13-01"): the resource is invalid.
 * On -1, out may hold some rows (free it). */
int fhir_index_extract(const json_t *res, const char *type, fhir_index_rows *out, tbuf *err);
/* Frees the rows' strings and array and empties r. */
void fhir_index_rows_free(fhir_index_rows *r);

/* Parses a FHIR date, dateTime or instant (YYYY, YYYY-MM, YYYY-MM-DD,
 * YYYY-MM-DDThh:mm[:ss[.fff]][Z|+hh:mm]) into the inclusive range of
 * instants it covers. False when the text is not one. */
bool fhir_date_range(const char *text, int64_t *lo, int64_t *hi);

/* Appends s lower-cased, with Latin-1 accents removed (é -> e), to out. */
void fhir_normalize(const char *s, tbuf *out);

#endif
