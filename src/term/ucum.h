/*
 * ucum: units of measure in UCUM case-sensitive (c/s) syntax: parse, compare,
 * convert numbers and the text of lab results (values and reference ranges).
 *
 * A parsed unit is its canonical form: a magnitude factor relative to the base
 * units (m, g, s, rad, K, C, cd, mol) and a vector of integer exponents, one
 * per base dimension plus one per "kind" that is commensurable only with
 * itself (arbitrary units such as [IU], and eq and osm, see docs/units.md).
 * Two units are commensurable when their vectors are equal; a value converts
 * by factor_from / factor_to. Cel and [degF] are special (offset) units and
 * carry an offset; they convert only when used alone.
 *
 * Deviation from UCUM, on purpose: mol is a base dimension (amount of
 * substance) rather than the number 6.0221367e23, so mmol/L is not
 * commensurable with /L; mass <-> amount conversions go through a molar mass.
 *
 * Everything here is reentrant: no global mutable state, no allocation except
 * in the tbuf the caller passes. Errors come back as a ucum_status and a
 * ucum_error whose text says what was wrong, where and what to do.
 */
#ifndef TERN_UCUM_H
#define TERN_UCUM_H

#include <stdbool.h>
#include <stddef.h>

#include "base/tbuf.h"

typedef enum ucum_status {
    UCUM_OK = 0,
    UCUM_ERR_SYNTAX,            /* the expression does not follow the UCUM grammar */
    UCUM_ERR_UNKNOWN_UNIT,      /* a unit symbol (or prefix + symbol) is not in the table */
    UCUM_ERR_LIMIT,             /* longer than UCUM_MAX_EXPR or nested deeper than UCUM_MAX_DEPTH */
    UCUM_ERR_RANGE,             /* an exponent or the unit's magnitude is out of range */
    UCUM_ERR_SPECIAL,           /* Cel/[degF] in a product, quotient, with prefix or exponent */
    UCUM_ERR_NOT_COMMENSURABLE, /* the two units measure different things */
    UCUM_ERR_NEEDS_MOLAR_MASS,  /* mass vs amount of substance, and no molar mass given */
    UCUM_ERR_VALUE,             /* a value or molar mass is not a finite number / out of range */
} ucum_status;

/* Returns a static, human-readable name for a status; never NULL. */
const char *ucum_strerror(ucum_status s);

typedef struct ucum_error {
    ucum_status code;
    size_t offset; /* 0-based byte offset in the expression at fault (0 if none) */
    char text[256];
} ucum_error;

/* Limits on one expression, so that hostile input costs bounded time and stack. */
#define UCUM_MAX_EXPR 256 /* bytes */
#define UCUM_MAX_DEPTH 16 /* nested parentheses */
#define UCUM_MAX_EXPONENT 99

/* Base dimensions, then kinds commensurable only with themselves. */
enum {
    UCUM_DIM_LENGTH,
    UCUM_DIM_MASS,
    UCUM_DIM_TIME,
    UCUM_DIM_ANGLE,
    UCUM_DIM_TEMPERATURE,
    UCUM_DIM_CHARGE,
    UCUM_DIM_LUMINOSITY,
    UCUM_DIM_AMOUNT,
    UCUM_NBASE,
    UCUM_NDIMS = UCUM_NBASE + 20
};

typedef enum ucum_special {
    UCUM_SPECIAL_NONE = 0,
    UCUM_SPECIAL_CEL,  /* degree Celsius: K = v + 273.15 */
    UCUM_SPECIAL_DEGF, /* degree Fahrenheit: K = (v + 459.67) * 5/9 */
} ucum_special;

/* A unit in canonical form. For a special unit, canonical = (v + offset) *
 * factor; for every other unit offset is 0. Plain data: copy freely. */
typedef struct ucum_unit {
    double factor;
    double offset;
    ucum_special special;
    signed char dim[UCUM_NDIMS];
} ucum_unit;

/* Parses a UCUM c/s expression ("mg/dL", "10*3/uL", "{cells}/uL", "Cel").
 * On failure fills err (code, offset, text) and returns its code; *out is
 * then unspecified. */
ucum_status ucum_parse(const char *expr, ucum_unit *out, ucum_error *err);

/* True when a and b measure the same thing (equal dimension vectors). */
bool ucum_commensurable(const ucum_unit *a, const ucum_unit *b);

/* Writes the dimension of u in words ("mass/volume", "amount of
 * substance/volume", "dimensionless") into buf (always NUL-terminated,
 * truncated to size); returns buf. */
char *ucum_describe_dimension(const ucum_unit *u, char *buf, size_t size);

/* Converts value from one unit to another. molar_mass is the analyte's molar
 * mass in g/mol, used only when the units differ exactly by mass vs amount of
 * substance (mg/dL -> mmol/L); 0 means none. Errors: a unit does not parse,
 * UCUM_ERR_NOT_COMMENSURABLE, UCUM_ERR_NEEDS_MOLAR_MASS, UCUM_ERR_VALUE (value
 * or molar mass not finite, negative molar mass, result out of range). */
ucum_status ucum_convert(double value, const char *from, const char *to, double molar_mass,
                         double *out, ucum_error *err);

/* The same for already parsed units; from_text and to_text only name the
 * units in error messages (may be NULL). */
ucum_status ucum_convert_units(double value, const ucum_unit *from, const ucum_unit *to,
                               double molar_mass, const char *from_text, const char *to_text,
                               double *out, ucum_error *err);

/* Converts the text of a lab value: an optional comparator (<, >, <=, >=, =)
 * and a number ("5.2", "<5", ">=1.2E3"), spaces around them allowed. The
 * number is replaced by the converted one, formatted by the significant-digit
 * rule in docs/units.md (never in exponent notation); comparator and spaces
 * are kept. Text that is not such a number ("POS", "Negative", "1:40", "")
 * is appended to out unchanged with *converted = false, and UCUM_OK: that is
 * not an error. Unit problems are errors even for non-numeric text, so a
 * caller learns about a bad unit at once. Appends to out (not reset). */
ucum_status ucum_convert_text(const char *value, const char *from, const char *to,
                              double molar_mass, tbuf *out, bool *converted, ucum_error *err);

/* The same for a reference range: "3.5-5.0", "3.5 - 5.0", "-1.0--0.5",
 * "<5", ">10", or a single number. Both bounds are converted; the separator
 * text is kept. Anything else is appended unchanged with *converted = false. */
ucum_status ucum_convert_range(const char *range, const char *from, const char *to,
                               double molar_mass, tbuf *out, bool *converted, ucum_error *err);

/* ucum_convert_text and ucum_convert_range with both units already parsed
 * (from and to are their texts, for messages): a caller converting many
 * values between the same units parses them once. */
ucum_status ucum_convert_text_units(const char *value, const ucum_unit *uf, const ucum_unit *ut,
                                    const char *from, const char *to, double molar_mass,
                                    tbuf *out, bool *converted, ucum_error *err);
ucum_status ucum_convert_range_units(const char *range, const ucum_unit *uf, const ucum_unit *ut,
                                     const char *from, const char *to, double molar_mass,
                                     tbuf *out, bool *converted, ucum_error *err);

/* Appends v in fixed notation (never 1E3) with the significant digits
 * docs/units.md describes for a number that had in_digits significant digits
 * in its input (0 when unknown): an exact short decimal as is (310.15), else
 * max(in_digits, 3) digits, at most 12. */
void ucum_format_number(double v, int in_digits, tbuf *out);

#endif
