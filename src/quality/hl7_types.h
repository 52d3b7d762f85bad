/*
 * hl7_types: checks of HL7 v2 datatypes on single values, and a parsed
 * date/time for the rules that compare dates.
 *
 * Primitive types (ST TX FT NM SI DT DTM TM ID IS) are checked on decoded
 * text: escape sequences already resolved. Composite types (TS CX XPN XAD
 * CWE CE HD) are checked on one repetition in wire form, split here with the
 * message's delimiters; their leaf values are decoded only when they contain
 * the escape character, into a scratch buffer the caller owns and reuses, so
 * a check allocates nothing once that buffer has grown.
 *
 * A check either passes or fills an hl7_type_fault: which component (and
 * subcomponent) failed, the HL7 table 0357 code that fits (102 data type,
 * 103 table value, 101 required component missing) and a precise reason
 * ("month 13 out of range", "not a number: '12,5'"). Nothing is printed and
 * nothing is kept between calls.
 */
#ifndef TERN_HL7_TYPES_H
#define TERN_HL7_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "base/tbuf.h"
#include "hl7/hl7.h"
#include "hl7/hl7_ack.h"
#include "quality/hl7_tables.h"

typedef enum hl7_type {
    HL7_TYPE_NONE = 0, /* no datatype check */
    HL7_TYPE_ST,
    HL7_TYPE_TX,
    HL7_TYPE_FT,
    HL7_TYPE_NM,
    HL7_TYPE_SI,
    HL7_TYPE_DT,
    HL7_TYPE_DTM,
    HL7_TYPE_TS,
    HL7_TYPE_TM,
    HL7_TYPE_ID,
    HL7_TYPE_IS,
    HL7_TYPE_CX,
    HL7_TYPE_XPN,
    HL7_TYPE_XAD,
    HL7_TYPE_CWE,
    HL7_TYPE_CE,
    HL7_TYPE_HD,
    HL7_TYPE_COUNT_
} hl7_type;

/* "ST", "CX", ...; "" for NONE. Never NULL. */
const char *hl7_type_name(hl7_type t);
/* Reads a type name (upper case, as in the standard); false if unknown. */
bool hl7_type_from_name(const char *name, hl7_type *out);
/* True for the types checked in wire form (TS CX XPN XAD CWE CE HD). */
bool hl7_type_is_composite(hl7_type t);

typedef struct hl7_type_fault {
    uint32_t comp, sub;  /* 1-based component/subcomponent at fault; 0: the whole value */
    hl7_ack_errcode code;/* 101, 102 or 103 */
    char text[160];
} hl7_type_fault;

/* The tables checked inside composites (CX-3 0061, CX-5 0203, HD-3 0301),
 * found once by hl7_type_tables_find(); NULL where `tables` has none. */
typedef struct hl7_type_tables {
    const hl7_table *id_type, *cx_type, *hd_type; /* 0061, 0203, 0301 */
} hl7_type_tables;

/* Fills out from tables (NULL: all NULL). The pointers borrow from tables
 * and hold while no table is added to it. */
void hl7_type_tables_find(const hl7_tables *tables, hl7_type_tables *out);

/* What composite checks need from the message. tables may be NULL (no
 * table checks inside composites: CX-3 0061, CX-5 0203, HD-3 0301). found
 * may be NULL, in which case those tables are looked up in `tables` by name
 * on each use; else it holds them, found in `tables`. scratch may be NULL,
 * in which case leaf values are checked in wire form. */
typedef struct hl7_type_ctx {
    const hl7_delims *d;
    hl7_charset cs;
    const hl7_tables *tables;
    tbuf *scratch;
    const hl7_type_tables *found;
} hl7_type_ctx;

/* Checks decoded text s[0..len) against primitive type t; table (may be
 * NULL) is the table of an ID or IS value. An empty value passes (presence
 * is the `required` rule's business). Composite types are checked on their
 * first component only; use hl7_type_check_raw for them. */
bool hl7_type_check_value(hl7_type t, const char *s, size_t len, const hl7_table *table,
                          hl7_type_fault *f);

/* Checks one repetition in wire form raw[0..len) against t. Primitives are
 * decoded (when they hold an escape) and passed to hl7_type_check_value. */
bool hl7_type_check_raw(hl7_type t, const hl7_type_ctx *c, const char *raw, size_t len,
                        const hl7_table *table, hl7_type_fault *f);

/* Components a composite check looks at, at most. */
#define HL7_TYPE_MAXPARTS 14

/* How many components the check of t reads (1 to HL7_TYPE_MAXPARTS). */
size_t hl7_type_parts(hl7_type t);

/* hl7_type_check_raw() of a repetition already split at c->d->comp:
 * part[0..hl7_type_parts(t)) holds its first components (empty past the
 * last one) and n how many components it has (at least 1; a count that
 * stops past hl7_type_parts(t) will do). For callers that split anyway. */
bool hl7_type_check_split(hl7_type t, const hl7_type_ctx *c, const hl7_span *part, size_t n,
                          const hl7_table *table, hl7_type_fault *f);

/* Checks that s[0..len) has at most max characters (UTF-8 code points). */
bool hl7_type_check_length(const char *s, size_t len, uint32_t max, hl7_type_fault *f);

/* --- numbers ---------------------------------------------------------------- */

/* Parses an NM: optional sign, digits, at most one decimal point, at least
 * one digit. false (and f filled when not NULL) otherwise. */
bool hl7_nm_parse(const char *s, size_t len, double *out, hl7_type_fault *f);

/* --- dates and times ------------------------------------------------------------ */

typedef enum hl7_dtm_precision {
    HL7_DTM_YEAR = 1,
    HL7_DTM_MONTH,
    HL7_DTM_DAY,
    HL7_DTM_HOUR,
    HL7_DTM_MINUTE,
    HL7_DTM_SECOND,
    HL7_DTM_FRACTION,
} hl7_dtm_precision;

/* A parsed DT, DTM or TM. Parts below the precision are their smallest
 * value (month 1, day 1, 0). frac is in 1/10000 s (HL7 allows four digits).
 * epoch: seconds since 1970-01-01T00:00 of the start of the value; in UTC
 * when has_offset, else the local wall-clock time counted as if it were UTC
 * (comparable with other local values). A TM has year 0. */
typedef struct hl7_dtm {
    int year, month, day, hour, minute, second;
    int frac;
    hl7_dtm_precision precision;
    bool has_offset;
    int offset_min; /* +0130 -> 90, -0500 -> -300 */
    int64_t epoch;
} hl7_dtm;

/* YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ], calendar checked. */
bool hl7_dtm_parse(const char *s, size_t len, hl7_dtm *out, hl7_type_fault *f);
/* YYYY[MM[DD]]. */
bool hl7_dt_parse(const char *s, size_t len, hl7_dtm *out, hl7_type_fault *f);
/* HH[MM[SS[.S[S[S[S]]]]]][+/-ZZZZ]. */
bool hl7_tm_parse(const char *s, size_t len, hl7_dtm *out, hl7_type_fault *f);

/* The instant t seen in a zone offset_min minutes east of UTC, with second
 * precision and that offset. */
void hl7_dtm_from_time(time_t t, int offset_min, hl7_dtm *out);

/* Orders a and b at the coarser of their two precisions (20240615 and 2024
 * compare equal). Instants are compared in UTC when both carry an offset and
 * the coarser precision is finer than a day; otherwise wall-clock parts are
 * compared. Returns <0, 0 or >0. */
int hl7_dtm_compare(const hl7_dtm *a, const hl7_dtm *b);

/* Completed years from birth to at (both at least year precision; missing
 * month/day count as the first). Negative when at is before birth. */
int hl7_dtm_age_years(const hl7_dtm *birth, const hl7_dtm *at);

#endif
