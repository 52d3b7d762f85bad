/*
 * validate: checks a parsed HL7 v2 message against profiles and logical
 * consistency rules, and reports every problem with its location.
 *
 * Three objects:
 *   validate_profile  what one kind of message must look like: the message
 *                     it applies to ("ORU^R01", "ORU", "*"), a segment
 *                     structure ("MSH PID [PV1] { [ORC] OBR { OBX } }") and
 *                     field specs (validate_field_spec). Built by calls that
 *                     mirror the YAML shape in docs/validation.md one to one.
 *   validator         the compiled rule set: the built-in baseline profile
 *                     (unless switched off), the user profiles, the table
 *                     registry, a severity per rule, and the lists the
 *                     consistency rules use (sex-specific codes, age-restricted
 *                     diagnoses, physiologic limits), preloaded with defaults.
 *                     Paths, table names and conditions are resolved when a
 *                     profile is added, so checking a message parses nothing.
 *                     Immutable after setup; may be shared between threads.
 *   validate_result   the problems of one message. Reusable: validating into
 *                     the same result again reuses its memory, so the hot path
 *                     allocates nothing once buffers have grown.
 *
 * Problems carry a stable rule id (validate_rule_name), a severity (error,
 * warning, or the rule is off), an HL7 table 0357 code, the location as an
 * hl7_path plus the 0-based segment index, and a text. Nothing is printed.
 * The time "now" is an argument, so results are reproducible.
 */
#ifndef TERN_VALIDATE_H
#define TERN_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "base/tbuf.h"
#include "hl7/hl7.h"
#include "hl7/hl7_ack.h"
#include "quality/hl7_tables.h"
#include "quality/hl7_types.h"

typedef enum validate_status {
    VALIDATE_OK = 0,
    VALIDATE_ERR_PATH,      /* a field path does not parse or names no field */
    VALIDATE_ERR_STRUCTURE, /* a segment structure string does not parse */
    VALIDATE_ERR_TABLE,     /* a table name the registry does not know */
    VALIDATE_ERR_VALUE,     /* another bad argument (type, condition, range, code) */
} validate_status;

const char *validate_strerror(validate_status s);

/* Why setup failed; offset is the 0-based character in the string at fault
 * (structure grammar, path, condition), 0 when not about a string. */
typedef struct validate_error {
    validate_status code;
    size_t offset;
    char text[256];
} validate_error;

/* --- rules and severities ------------------------------------------------------ */

typedef enum validate_rule {
    VALIDATE_RULE_STRUCTURE = 0,      /* "structure": segment order and cardinality (100) */
    VALIDATE_RULE_REQUIRED,           /* "required": required field/component missing (101) */
    VALIDATE_RULE_DATATYPE,           /* "datatype": value does not fit its type (102) */
    VALIDATE_RULE_TABLE,              /* "table": value not in its table (103) */
    VALIDATE_RULE_LENGTH,             /* "length": value longer than allowed (104) */
    VALIDATE_RULE_REPETITION,         /* "repetition": field repeats too often (102) */
    VALIDATE_RULE_RANGE,              /* "range": number outside a profile's min/max (102) */
    VALIDATE_RULE_BIRTH_FUTURE,       /* "birth-future": PID-7 after now (207) */
    VALIDATE_RULE_DEATH_BEFORE_BIRTH, /* "death-before-birth": PID-29 before PID-7 (207) */
    VALIDATE_RULE_BEFORE_BIRTH,       /* "before-birth": OBX-14, OBR-7, PV1-44 before PID-7 (207) */
    VALIDATE_RULE_SEX_SPECIFIC,       /* "sex-specific": OBX-3/DG1-3 code vs PID-8 (207) */
    VALIDATE_RULE_AGE_RESTRICTED,     /* "age-restricted": DG1-3 code vs age (207) */
    VALIDATE_RULE_PHYSIOLOGIC,        /* "physiologic": OBX-5 outside physiologic limits (102) */
    VALIDATE_RULE_COUNT_
} validate_rule;

/* Stable id ("birth-future"); "" when out of range. Never NULL. */
const char *validate_rule_name(validate_rule r);
bool validate_rule_from_name(const char *name, validate_rule *out);

typedef enum validate_severity {
    VALIDATE_SEV_ERROR = 0,
    VALIDATE_SEV_WARNING,
    VALIDATE_SEV_OFF, /* rule not run */
} validate_severity;

/* "error", "warning", "off". */
const char *validate_severity_name(validate_severity s);
bool validate_severity_from_name(const char *name, validate_severity *out);

/* --- profiles ------------------------------------------------------------------ */

/* One entry of a profile's `fields:` list.
 * path: "PID-3", "PID-3.5", "PID-3[2].1", "OBX-5", "OBX[2]-5". A segment
 *   occurrence or repetition in brackets restricts the spec to it; without
 *   one, the spec applies to every occurrence and every repetition.
 * type: checked on each repetition (or on the component the path names).
 * table: a table name the validator's registry knows; the value looked up
 *   is the component the path names, or component 1 of each repetition.
 * min/max: the value (as for table) must be an NM within them.
 * when: "SEG-F[.C]=VALUE" on the same segment ("OBX-2=NM"); NULL: always.
 * All strings are borrowed for the duration of validate_profile_add_field. */
typedef struct validate_field_spec {
    const char *path;
    bool required;
    hl7_type type;     /* HL7_TYPE_NONE: no datatype check */
    uint32_t max_len;  /* 0: no limit */
    uint32_t max_reps; /* 0: no limit */
    const char *table; /* NULL: none */
    bool has_min, has_max;
    double min, max;
    const char *when;
} validate_field_spec;

typedef struct validate_profile validate_profile;

/* A profile for `message`: "TYPE^EVENT", "TYPE" (any event) or "*".
 * Returns NULL and fills err when message is malformed. */
validate_profile *validate_profile_new(const char *message, validate_error *err);
void validate_profile_free(validate_profile *p);

/* Sets the segment structure from the compact grammar:
 *   structure := item*          item := SEG [ '?' | '*' | '+' ] | '[' structure ']'
 *              | '{' structure '}' | '[{' structure '}]'
 * SEG is a segment id (3 upper-case letters/digits). [ ] optional, { }
 * repeating (one or more), [{ }] / {…}* optional repeating; SEG? optional,
 * SEG+ repeating, SEG* optional repeating. Commas and white space separate.
 * Z segments not named in the structure are allowed anywhere.
 * Example: "MSH PID [PV1] { [ORC] OBR { OBX } }". */
validate_status validate_profile_set_structure(validate_profile *p, const char *grammar,
                                               validate_error *err);

/* Adds a field spec (path and condition parsed now; table resolved when the
 * profile is added to a validator). */
validate_status validate_profile_add_field(validate_profile *p, const validate_field_spec *spec,
                                           validate_error *err);

/* --- validator ----------------------------------------------------------------------- */

typedef struct validator validator;

/* A validator using `tables` (borrowed; must outlive it; NULL: the built-in
 * tables only) with the baseline profile on, default severities and default
 * consistency lists. Never NULL. The tables it checks are found in `tables`
 * here and by validator_add_profile(): add no table to it afterwards. */
validator *validator_new(const hl7_tables *tables);
void validator_free(validator *v);

/* Turns the baseline profile (docs/validation.md) on or off. */
void validator_set_baseline(validator *v, bool on);
void validator_set_severity(validator *v, validate_rule r, validate_severity s);
validate_severity validator_severity(const validator *v, validate_rule r);
/* Minutes east of UTC of the local time in which date/times without an
 * offset are read, for comparisons with "now"; default 0. */
void validator_set_local_offset(validator *v, int minutes);

/* Adds a profile, taking ownership of p (freed even on failure): p is
 * complete by then, and is neither changed nor freed by the caller
 * afterwards. Fails with VALIDATE_ERR_TABLE when a field spec names a table
 * the registry lacks. */
validate_status validator_add_profile(validator *v, validate_profile *p, validate_error *err);

/* A code pattern is an exact code ("2857-1") or a prefix ending in '*'
 * ("O*", "C61*"). system, when not NULL/"", must equal the coding system
 * (component 3) of the coded value as well. */

/* Sex-specific codes, checked in OBX-3 and DG1-3 against PID-8 when PID-8 is
 * F or M. sex is "F" or "M". */
void validator_clear_sex_rules(validator *v);
validate_status validator_add_sex_rule(validator *v, const char *pattern, const char *system,
                                       const char *sex, validate_error *err);

/* Age-restricted diagnoses, checked in DG1-3: the age in completed years at
 * DG1-5 (else MSH-7, else now) must be within [min_years, max_years]. */
void validator_clear_age_rules(validator *v);
validate_status validator_add_age_rule(validator *v, const char *pattern, const char *system,
                                       int min_years, int max_years, validate_error *err);

/* Physiologic limits for OBX-5 when OBX-2 is NM and OBX-3.1 (or OBX-3.4)
 * equals code. units: "|"-separated OBX-6.1 values the limits are for
 * ("Cel|C|degC"); NULL or "" applies whatever the units. When several
 * entries name a code, the first whose units match is used; OBX-6.1 empty
 * matches only entries without units. */
void validator_clear_limits(validator *v);
validate_status validator_add_limit(validator *v, const char *code, const char *units, double min,
                                    double max, validate_error *err);

/* --- results ------------------------------------------------------------------------- */

typedef struct validate_problem {
    hl7_path where;      /* seg, seg_occ (1-based), field, rep, comp, sub; 0 = not applicable */
    uint32_t seg_index;  /* 0-based index in the message; UINT32_MAX for a missing segment */
    validate_rule rule;
    validate_severity severity; /* ERROR or WARNING */
    hl7_ack_errcode code;       /* HL7 table 0357 */
    char path[40];              /* where, formatted: "PID-7", "OBX[3]-5", "PID-3[2].4" */
    char text[200];
} validate_problem;

typedef struct validate_result {
    validate_problem *v;
    size_t n, cap;
    size_t nerrors, nwarnings;
    tbuf scratch; /* decoding buffer reused across checks */
} validate_result;

#define VALIDATE_RESULT_INIT {NULL, 0, 0, 0, 0, TBUF_INIT}

/* Empties r, keeping its memory. */
void validate_result_reset(validate_result *r);
void validate_result_free(validate_result *r);

/* Validates m into r (reset first): the baseline profile, every profile
 * whose message matches MSH-9, and the consistency rules. now is the
 * current time (for birth-future and ages). Returns the number of
 * error-severity problems. */
size_t validate_message(const validator *v, const hl7_msg *m, time_t now, validate_result *r);

/* Appends "PATH: severity: text" (no newline) to out. */
void validate_problem_format(const validate_problem *p, tbuf *out);

/* Writes the error-severity problems of r as ERR-segment inputs for
 * hl7_ack_opts.problems into out[0..cap); returns how many there are (may
 * exceed cap; only cap are written). Texts are borrowed from r. */
size_t validate_ack_problems(const validate_result *r, hl7_ack_problem *out, size_t cap);

#endif
