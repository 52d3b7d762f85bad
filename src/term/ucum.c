/*
 * ucum: parser, unit table and converter for UCUM c/s expressions.
 *
 * The parser is recursive descent over the UCUM grammar
 *     term      := '/' component | term '.' component | term '/' component | component
 *     component := '(' term ')' | annotation | factor [annotation]
 *                | symbol [exponent] [annotation]
 * where '.' and '/' have equal precedence and associate to the left, as the
 * specification says (mg/kg.d is mg.d/kg). A symbol is a table atom with an
 * optional metric prefix; the table stores each atom directly in canonical
 * form (factor over the base units and a dimension vector), so there is no
 * recursive definition to resolve at run time. Expressions are bounded by
 * UCUM_MAX_EXPR bytes and UCUM_MAX_DEPTH parentheses, exponents by
 * UCUM_MAX_EXPONENT, and every product checks that the magnitude stays finite
 * and non-zero and the exponents fit a signed char, so no input can overflow.
 *
 * Special units (Cel, [degF]) carry an offset; any operation that combines
 * them with something else, a prefix or an exponent is refused.
 *
 * The text helpers convert lab values and reference ranges; formatting rules
 * are in format_number() and docs/units.md. Numbers are read without strtod
 * when their digits and power of ten are exact doubles, and printed from
 * base/dround.h (the digits printf's "%.*e" gives, correctly rounded).
 */
#include "term/ucum.h"

#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/dround.h"

#define UCUM_PI 3.14159265358979323846
#define UCUM_MAX_DIM 100 /* |exponent| of one dimension in a canonical unit */

const char *ucum_strerror(ucum_status s)
{
    switch (s) {
    case UCUM_OK:
        return "ok";
    case UCUM_ERR_SYNTAX:
        return "syntax error in unit";
    case UCUM_ERR_UNKNOWN_UNIT:
        return "unknown unit";
    case UCUM_ERR_LIMIT:
        return "unit expression too long or too deeply nested";
    case UCUM_ERR_RANGE:
        return "exponent or magnitude out of range";
    case UCUM_ERR_SPECIAL:
        return "special unit used in an expression";
    case UCUM_ERR_NOT_COMMENSURABLE:
        return "units are not commensurable";
    case UCUM_ERR_NEEDS_MOLAR_MASS:
        return "molar mass needed";
    case UCUM_ERR_VALUE:
        return "invalid value";
    }
    return "unknown status";
}

/* --- the table ----------------------------------------------------------- */

/* Kinds: each is its own dimension slot (UCUM_NBASE + index), so a unit of
 * one kind converts only to units of the same kind. */
enum {
    KIND_EQ,
    KIND_OSM,
    KIND_IU,
    KIND_ARB,
    KIND_USP,
    KIND_CFU,
    KIND_PFU,
    KIND_GPL,
    KIND_MPL,
    KIND_APL,
    KIND_BETH,
    KIND_AU,
    KIND_BAU,
    KIND_LF,
    KIND_FFU,
    KIND_COUNT
};

_Static_assert(UCUM_NBASE + KIND_COUNT <= UCUM_NDIMS, "UCUM_NDIMS too small for the kinds");

static const char *const kind_names[KIND_COUNT] = {
    [KIND_EQ] = "equivalents",
    [KIND_OSM] = "osmoles",
    [KIND_IU] = "international units [IU]",
    [KIND_ARB] = "arbitrary units [arb'U]",
    [KIND_USP] = "USP units",
    [KIND_CFU] = "colony forming units",
    [KIND_PFU] = "plaque forming units",
    [KIND_GPL] = "IgG anti-phospholipid units",
    [KIND_MPL] = "IgM anti-phospholipid units",
    [KIND_APL] = "IgA anti-phospholipid units",
    [KIND_BETH] = "Bethesda units",
    [KIND_AU] = "allergen units",
    [KIND_BAU] = "bioequivalent allergen units",
    [KIND_LF] = "limit of flocculation units",
    [KIND_FFU] = "focus forming units",
};

static const char *const base_names[UCUM_NBASE] = {
    "length",
    "mass",
    "time",
    "plane angle",
    "temperature",
    "electric charge",
    "luminous intensity",
    "amount of substance",
};

typedef struct atom {
    const char *sym;
    bool metric;   /* takes a prefix */
    double factor; /* in base units: m, g, s, rad, K, C, cd, mol */
    signed char dim[UCUM_NBASE];
    int kind; /* KIND_* or -1 */
    ucum_special special;
    double offset;
} atom;

/* Dimension vectors: length, mass, time, angle, temperature, charge,
 * luminosity, amount. */
#define D(l, m, t, a, k, q, f, n)                                                                  \
    {                                                                                              \
        l, m, t, a, k, q, f, n                                                                     \
    }
#define NONE D(0, 0, 0, 0, 0, 0, 0, 0)
#define VOL D(3, 0, 0, 0, 0, 0, 0, 0)
#define LEN D(1, 0, 0, 0, 0, 0, 0, 0)
#define MASS D(0, 1, 0, 0, 0, 0, 0, 0)
#define TIME D(0, 0, 1, 0, 0, 0, 0, 0)
#define PRESSURE D(-1, 1, -2, 0, 0, 0, 0, 0)
#define ENERGY D(2, 1, -2, 0, 0, 0, 0, 0)
#define DOSE D(2, 0, -2, 0, 0, 0, 0, 0)
#define PER_TIME D(0, 0, -1, 0, 0, 0, 0, 0)
#define CATALYTIC D(0, 0, -1, 0, 0, 0, 0, 1)
#define TEMP D(0, 0, 0, 0, 1, 0, 0, 0)
#define RATIO(sym, metric, factor, dim)                                                            \
    {                                                                                              \
        sym, metric, factor, dim, -1, UCUM_SPECIAL_NONE, 0                                         \
    }
#define KIND_ATOM(sym, metric, kind)                                                               \
    {                                                                                              \
        sym, metric, 1, NONE, kind, UCUM_SPECIAL_NONE, 0                                           \
    }

#define INCH 0.0254
#define POUND 453.59237
#define GALLON (231 * INCH * INCH * INCH)
#define JULIAN_YEAR (365.25 * 86400)
#define GREGORIAN_YEAR (365.2425 * 86400)
#define STD_GRAVITY 9.80665

static const atom atoms[] = {
    /* base units (mol is a base dimension here, see ucum.h) */
    RATIO("m", true, 1, LEN),
    RATIO("g", true, 1, MASS),
    RATIO("s", true, 1, TIME),
    RATIO("rad", true, 1, D(0, 0, 0, 1, 0, 0, 0, 0)),
    RATIO("K", true, 1, TEMP),
    RATIO("C", true, 1, D(0, 0, 0, 0, 0, 1, 0, 0)),
    RATIO("cd", true, 1, D(0, 0, 0, 0, 0, 0, 1, 0)),
    RATIO("mol", true, 1, D(0, 0, 0, 0, 0, 0, 0, 1)),
    /* dimensionless */
    RATIO("10*", false, 10, NONE),
    RATIO("10^", false, 10, NONE),
    RATIO("%", false, 1e-2, NONE),
    RATIO("[ppth]", false, 1e-3, NONE),
    RATIO("[ppm]", false, 1e-6, NONE),
    RATIO("[ppb]", false, 1e-9, NONE),
    RATIO("[pptr]", false, 1e-12, NONE),
    RATIO("[pi]", false, UCUM_PI, NONE),
    RATIO("sr", true, 1, D(0, 0, 0, 2, 0, 0, 0, 0)),
    RATIO("deg", false, UCUM_PI / 180, D(0, 0, 0, 1, 0, 0, 0, 0)),
    RATIO("bit", true, 1, NONE),
    RATIO("By", true, 8, NONE),
    /* volume */
    RATIO("L", true, 1e-3, VOL),
    RATIO("l", true, 1e-3, VOL),
    RATIO("[gal_us]", false, GALLON, VOL),
    RATIO("[qt_us]", false, GALLON / 4, VOL),
    RATIO("[pt_us]", false, GALLON / 8, VOL),
    RATIO("[cup_us]", false, GALLON / 16, VOL),
    RATIO("[foz_us]", false, GALLON / 128, VOL),
    RATIO("[tbs_us]", false, GALLON / 256, VOL),
    RATIO("[tsp_us]", false, GALLON / 768, VOL),
    RATIO("[drp]", false, 1e-6 / 20, VOL),
    /* length */
    RATIO("[in_i]", false, INCH, LEN),
    RATIO("[ft_i]", false, 12 * INCH, LEN),
    RATIO("[yd_i]", false, 36 * INCH, LEN),
    RATIO("[mi_i]", false, 5280 * 12 * INCH, LEN),
    RATIO("Ao", false, 1e-10, LEN),
    /* mass */
    RATIO("[lb_av]", false, POUND, MASS),
    RATIO("[oz_av]", false, POUND / 16, MASS),
    RATIO("[gr]", false, 0.06479891, MASS),
    RATIO("[st_av]", false, 14 * POUND, MASS),
    RATIO("t", true, 1e6, MASS),
    RATIO("u", true, 1.6605402e-24, MASS),
    /* time */
    RATIO("min", false, 60, TIME),
    RATIO("h", false, 3600, TIME),
    RATIO("d", false, 86400, TIME),
    RATIO("wk", false, 7 * 86400, TIME),
    RATIO("a", false, JULIAN_YEAR, TIME),
    RATIO("a_j", false, JULIAN_YEAR, TIME),
    RATIO("a_g", false, GREGORIAN_YEAR, TIME),
    RATIO("mo", false, JULIAN_YEAR / 12, TIME),
    RATIO("mo_j", false, JULIAN_YEAR / 12, TIME),
    RATIO("mo_g", false, GREGORIAN_YEAR / 12, TIME),
    /* mechanics (the base unit of mass is g, hence the factors of 1000) */
    RATIO("Hz", true, 1, PER_TIME),
    RATIO("N", true, 1000, D(1, 1, -2, 0, 0, 0, 0, 0)),
    RATIO("Pa", true, 1000, PRESSURE),
    RATIO("bar", true, 1e8, PRESSURE),
    RATIO("atm", false, 101325e3, PRESSURE),
    RATIO("m[Hg]", true, 133322e3, PRESSURE),
    RATIO("m[H2O]", true, 9806.65e3, PRESSURE),
    RATIO("[in_i'Hg]", false, 133322e3 * INCH, PRESSURE),
    RATIO("[psi]", false, POUND *STD_GRAVITY / (INCH * INCH), PRESSURE),
    RATIO("J", true, 1000, ENERGY),
    RATIO("cal", true, 4184, ENERGY),
    RATIO("[Cal]", false, 4184e3, ENERGY),
    RATIO("eV", true, 1.60217733e-16, ENERGY),
    RATIO("W", true, 1000, D(2, 1, -3, 0, 0, 0, 0, 0)),
    /* electricity */
    RATIO("A", true, 1, D(0, 0, -1, 0, 0, 1, 0, 0)),
    RATIO("V", true, 1000, D(2, 1, -2, 0, 0, -1, 0, 0)),
    RATIO("Ohm", true, 1000, D(2, 1, -1, 0, 0, -2, 0, 0)),
    /* temperature: Cel and [degF] are special, see ucum_convert_units */
    {"Cel", true, 1, TEMP, -1, UCUM_SPECIAL_CEL, 273.15},
    {"[degF]", false, 5.0 / 9.0, TEMP, -1, UCUM_SPECIAL_DEGF, 459.67},
    RATIO("[degR]", false, 5.0 / 9.0, TEMP),
    /* chemistry and lab */
    RATIO("kat", true, 1, CATALYTIC),
    RATIO("U", true, 1e-6 / 60, CATALYTIC),
    RATIO("g%", true, 1e4, D(-3, 1, 0, 0, 0, 0, 0, 0)),
    /* radiation */
    RATIO("Bq", true, 1, PER_TIME),
    RATIO("Ci", true, 3.7e10, PER_TIME),
    RATIO("Gy", true, 1, DOSE),
    RATIO("Sv", true, 1, DOSE),
    RATIO("RAD", true, 1e-2, DOSE),
    RATIO("REM", true, 1e-2, DOSE),
    /* kinds commensurable only with themselves */
    KIND_ATOM("eq", true, KIND_EQ),
    KIND_ATOM("osm", true, KIND_OSM),
    KIND_ATOM("[iU]", true, KIND_IU),
    KIND_ATOM("[IU]", true, KIND_IU),
    KIND_ATOM("[arb'U]", false, KIND_ARB),
    KIND_ATOM("[USP'U]", false, KIND_USP),
    KIND_ATOM("[CFU]", true, KIND_CFU),
    KIND_ATOM("[PFU]", true, KIND_PFU),
    KIND_ATOM("[GPL'U]", false, KIND_GPL),
    KIND_ATOM("[MPL'U]", false, KIND_MPL),
    KIND_ATOM("[APL'U]", false, KIND_APL),
    KIND_ATOM("[beth'U]", false, KIND_BETH),
    KIND_ATOM("[AU]", false, KIND_AU),
    KIND_ATOM("[BAU]", false, KIND_BAU),
    KIND_ATOM("[Lf]", false, KIND_LF),
    KIND_ATOM("[FFU]", false, KIND_FFU),
};

typedef struct prefix {
    const char *sym;
    double factor;
} prefix;

/* Two-letter prefixes first so that "daL" is deca-litre; the common lab
 * prefixes next so that case-insensitive suggestions prefer them. */
static const prefix prefixes[] = {
    {"da", 1e1}, {"Ki", 1024.0}, {"Mi", 1048576.0}, {"Gi", 1073741824.0}, {"Ti", 1099511627776.0},
    {"m", 1e-3}, {"u", 1e-6},    {"n", 1e-9},       {"p", 1e-12},         {"f", 1e-15},
    {"k", 1e3},  {"d", 1e-1},    {"c", 1e-2},       {"M", 1e6},           {"G", 1e9},
    {"T", 1e12}, {"h", 1e2},     {"a", 1e-18},      {"z", 1e-21},         {"y", 1e-24},
    {"P", 1e15}, {"E", 1e18},    {"Z", 1e21},       {"Y", 1e24},
};

/* Common non-UCUM spellings and what to write instead. `prefixable` hints
 * also apply after a prefix (mIU -> m[IU]). */
static const struct {
    const char *bad;
    const char *good;
    bool prefixable;
} hints[] = {
    {"IU", "[IU]", true},
    {"iu", "[IU]", true},
    {"Eq", "eq", true},
    {"mmHg", "mm[Hg]", false},
    {"cmH2O", "cm[H2O]", false},
    {"mcg", "ug", false},
    {"hr", "h", false},
    {"hrs", "h", false},
    {"sec", "s", false},
    {"degC", "Cel", false},
    {"\xC2\xB0"
     "C",
     "Cel", false},
    {"degF", "[degF]", false},
    {"\xC2\xB0"
     "F",
     "[degF]", false},
    {"lb", "[lb_av]", false},
    {"lbs", "[lb_av]", false},
    {"oz", "[oz_av]", false},
    {"in", "[in_i]", false},
    {"ft", "[ft_i]", false},
    {"cc", "mL", false},
    {"yr", "a", false},
    {"day", "d", false},
    {"days", "d", false},
    {"ppm", "[ppm]", false},
    {"ppb", "[ppb]", false},
    {"psi", "[psi]", false},
    {"CFU", "[CFU]", true},
    {"gal", "[gal_us]", false},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* A linear scan, but one that rejects most entries on their first byte and
 * never measures a string: unit lookups run for every converted value. */
static const atom *atom_find(const char *sym, size_t n, bool nocase)
{
    if (n == 0) return NULL;
    for (size_t i = 0; i < COUNT(atoms); i++) {
        const char *a = atoms[i].sym;
        if (nocase) {
            if (strncasecmp(a, sym, n) == 0 && a[n] == '\0') return &atoms[i];
        } else if (a[0] == sym[0] && strncmp(a, sym, n) == 0 && a[n] == '\0') {
            return &atoms[i];
        }
    }
    return NULL;
}

/* Finds prefix + metric atom; returns the atom and sets *pre, or NULL. */
static const atom *prefixed_find(const char *sym, size_t n, bool nocase, const prefix **pre)
{
    for (size_t i = 0; i < COUNT(prefixes); i++) {
        size_t pl = strlen(prefixes[i].sym);
        if (pl >= n) continue;
        if (nocase ? strncasecmp(prefixes[i].sym, sym, pl) : memcmp(prefixes[i].sym, sym, pl))
            continue;
        const atom *a = atom_find(sym + pl, n - pl, nocase);
        if (a && a->metric) {
            *pre = &prefixes[i];
            return a;
        }
    }
    return NULL;
}

/* Writes a suggestion for an unknown symbol into buf ("" when none). */
static void suggest(const char *sym, size_t n, char *buf, size_t size)
{
    buf[0] = '\0';
    for (size_t i = 0; i < COUNT(hints); i++) {
        size_t hl = strlen(hints[i].bad);
        if (hl == n && !memcmp(hints[i].bad, sym, n)) {
            snprintf(buf, size, "%s", hints[i].good);
            return;
        }
        for (size_t j = 0; hints[i].prefixable && j < COUNT(prefixes); j++) {
            size_t pl = strlen(prefixes[j].sym);
            if (pl + hl == n && !memcmp(prefixes[j].sym, sym, pl) &&
                !memcmp(hints[i].bad, sym + pl, hl)) {
                snprintf(buf, size, "%s%s", prefixes[j].sym, hints[i].good);
                return;
            }
        }
    }
    const atom *a = atom_find(sym, n, true);
    if (a) {
        snprintf(buf, size, "%s", a->sym);
        return;
    }
    const prefix *pre = NULL;
    a = prefixed_find(sym, n, true, &pre);
    if (a) snprintf(buf, size, "%s%s", pre->sym, a->sym);
}

/* --- canonical units ------------------------------------------------------ */

static void unit_one(ucum_unit *u)
{
    memset(u, 0, sizeof(*u));
    u->factor = 1;
}

bool ucum_commensurable(const ucum_unit *a, const ucum_unit *b)
{
    return memcmp(a->dim, b->dim, sizeof(a->dim)) == 0;
}

/* --- the parser ----------------------------------------------------------- */

typedef struct parser {
    const char *s;
    size_t len;
    size_t pos;
    ucum_error *err;
} parser;

static ucum_status fail(parser *p, ucum_status code, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static ucum_status fail(parser *p, ucum_status code, size_t at, const char *fmt, ...)
{
    char why[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    p->err->code = code;
    p->err->offset = at;
    int shown = p->len > 60 ? 60 : (int)p->len;
    snprintf(p->err->text, sizeof(p->err->text), "'%.*s%s': %s", shown, p->s,
             p->len > 60 ? "..." : "", why);
    return code;
}

static char peek(const parser *p)
{
    return p->pos < p->len ? p->s[p->pos] : '\0';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Describes the character at `at` for messages: 'x', or "byte 0xNN". */
static const char *char_name(const parser *p, size_t at, char *buf, size_t size)
{
    unsigned char c = at < p->len ? (unsigned char)p->s[at] : 0;
    if (at >= p->len)
        snprintf(buf, size, "the end");
    else if (c > 32 && c < 127)
        snprintf(buf, size, "'%c'", c);
    else if (c == ' ')
        snprintf(buf, size, "a space");
    else
        snprintf(buf, size, "byte 0x%02X", c);
    return buf;
}

/* A special unit with a prefix, an exponent or in a product; `what` says
 * which and where. */
static ucum_status special_misuse(parser *p, const ucum_unit *u, size_t at, const char *what)
{
    return fail(p, UCUM_ERR_SPECIAL, at,
                "%s is a special unit with an offset scale and can only be used alone (as in "
                "'37 Cel'), not with %s at position %zu",
                u->special == UCUM_SPECIAL_CEL ? "Cel" : "[degF]", what, at + 1);
}

/* a := a * b^sign; `at` is the operator's position, for messages. */
static ucum_status unit_combine(parser *p, ucum_unit *a, const ucum_unit *b, int sign, size_t at)
{
    if (a->special || b->special)
        return special_misuse(p, a->special ? a : b, at,
                              p->s[at] == '.' ? "a product '.'" : "a quotient '/'");
    double f = sign > 0 ? a->factor * b->factor : a->factor / b->factor;
    if (!isfinite(f) || f == 0)
        return fail(p, UCUM_ERR_RANGE, at,
                    "the magnitude of the unit is out of range at position %zu", at + 1);
    for (int i = 0; i < UCUM_NDIMS; i++) {
        int d = a->dim[i] + sign * b->dim[i];
        if (d > UCUM_MAX_DIM || d < -UCUM_MAX_DIM)
            return fail(p, UCUM_ERR_RANGE, at, "exponents too large at position %zu", at + 1);
        a->dim[i] = (signed char)d;
    }
    a->factor = f;
    return UCUM_OK;
}

static ucum_status unit_pow(parser *p, ucum_unit *u, int e, size_t at)
{
    double f = pow(u->factor, e);
    if (!isfinite(f) || f == 0)
        return fail(p, UCUM_ERR_RANGE, at,
                    "the magnitude of the unit is out of range at position %zu", at + 1);
    for (int i = 0; i < UCUM_NDIMS; i++) {
        int d = u->dim[i] * e;
        if (d > UCUM_MAX_DIM || d < -UCUM_MAX_DIM)
            return fail(p, UCUM_ERR_RANGE, at, "exponent too large at position %zu", at + 1);
        u->dim[i] = (signed char)d;
    }
    u->factor = f;
    return UCUM_OK;
}

/* Optional signed integer exponent. */
static ucum_status parse_exponent(parser *p, int *e, bool *had)
{
    size_t start = p->pos;
    int sign = 1;
    *had = false;
    *e = 1;
    if (peek(p) == '+' || peek(p) == '-') {
        sign = peek(p) == '-' ? -1 : 1;
        p->pos++;
        if (!is_digit(peek(p))) {
            char cn[16];
            return fail(p, UCUM_ERR_SYNTAX, p->pos,
                        "expected the digits of an exponent at position %zu, found %s", p->pos + 1,
                        char_name(p, p->pos, cn, sizeof(cn)));
        }
    }
    if (!is_digit(peek(p))) return UCUM_OK;
    int v = 0;
    while (is_digit(peek(p))) {
        if (v <= UCUM_MAX_EXPONENT) v = v * 10 + (p->s[p->pos] - '0');
        p->pos++;
    }
    if (v > UCUM_MAX_EXPONENT)
        return fail(p, UCUM_ERR_RANGE, start, "the exponent at position %zu is larger than %d",
                    start + 1, UCUM_MAX_EXPONENT);
    *had = true;
    *e = sign * v;
    return UCUM_OK;
}

/* {annotation}: any printable text but braces; ignored for the meaning. */
static ucum_status parse_annotation(parser *p)
{
    size_t start = p->pos++;
    while (p->pos < p->len && p->s[p->pos] != '}') {
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c == '{' || c < 32 || c == 127) {
            char cn[16];
            return fail(p, UCUM_ERR_SYNTAX, p->pos,
                        "%s at position %zu is not allowed inside the annotation that starts at "
                        "position %zu",
                        char_name(p, p->pos, cn, sizeof(cn)), p->pos + 1, start + 1);
        }
        p->pos++;
    }
    if (p->pos >= p->len)
        return fail(p, UCUM_ERR_SYNTAX, start,
                    "the annotation that starts at position %zu has no closing '}'", start + 1);
    p->pos++;
    return UCUM_OK;
}

/* Scans a symbol: up to '.', '/', '(', ')', '{', '}', a digit or a sign
 * outside brackets. */
static ucum_status scan_symbol(parser *p, size_t *n)
{
    size_t start = p->pos;
    while (p->pos < p->len) {
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c == '[') {
            size_t open = p->pos++;
            while (p->pos < p->len && p->s[p->pos] != ']' && p->s[p->pos] != '[' &&
                   (unsigned char)p->s[p->pos] > 32 && (unsigned char)p->s[p->pos] < 127)
                p->pos++;
            if (peek(p) != ']')
                return fail(p, UCUM_ERR_SYNTAX, open,
                            "the '[' at position %zu has no closing ']' (brackets hold no spaces "
                            "or braces)",
                            open + 1);
            p->pos++;
            continue;
        }
        if (strchr("./(){}]+-*^", c) || is_digit((char)c) || c <= 32 || c >= 127) break;
        p->pos++;
    }
    *n = p->pos - start;
    return UCUM_OK;
}

static ucum_status resolve_symbol(parser *p, size_t start, size_t n, ucum_unit *u, bool *prefixed)
{
    const char *sym = p->s + start;
    const prefix *pre = NULL;
    const atom *a = atom_find(sym, n, false);
    if (!a) a = prefixed_find(sym, n, false, &pre);
    if (!a) {
        char alt[48];
        suggest(sym, n, alt, sizeof(alt));
        int shown = n > 40 ? 40 : (int)n;
        if (alt[0])
            return fail(p, UCUM_ERR_UNKNOWN_UNIT, start,
                        "unknown unit '%.*s' at position %zu; did you mean '%s'? (UCUM is "
                        "case-sensitive)",
                        shown, sym, start + 1, alt);
        return fail(p, UCUM_ERR_UNKNOWN_UNIT, start, "unknown unit '%.*s' at position %zu", shown,
                    sym, start + 1);
    }
    unit_one(u);
    u->factor = a->factor * (pre ? pre->factor : 1);
    memcpy(u->dim, a->dim, sizeof(a->dim));
    if (a->kind >= 0) u->dim[UCUM_NBASE + a->kind] = 1;
    u->special = a->special;
    u->offset = a->offset;
    *prefixed = pre != NULL;
    return UCUM_OK;
}

static ucum_status parse_term(parser *p, int depth, ucum_unit *out);

/* digits: "10*"/"10^" (with an exponent) or a plain positive integer factor. */
static ucum_status parse_number_component(parser *p, ucum_unit *u)
{
    size_t start = p->pos;
    double v = 0;
    while (is_digit(peek(p)))
        v = v * 10 + (p->s[p->pos++] - '0');
    char c = peek(p);
    if (c == '*' || c == '^') {
        if (p->pos - start != 2 || p->s[start] != '1' || p->s[start + 1] != '0')
            return fail(p, UCUM_ERR_SYNTAX, start,
                        "only 10 can be raised to a power (10*3 or 10^3), at position %zu",
                        start + 1);
        p->pos++;
        int e;
        bool had;
        ucum_status st = parse_exponent(p, &e, &had);
        if (st) return st;
        unit_one(u);
        u->factor = 10;
        return unit_pow(p, u, e, start);
    }
    if (!isfinite(v) || v == 0)
        return fail(p, UCUM_ERR_RANGE, start,
                    "the factor at position %zu must be a positive number "
                    "of reasonable size",
                    start + 1);
    unit_one(u);
    u->factor = v;
    return UCUM_OK;
}

static ucum_status parse_component(parser *p, int depth, ucum_unit *u)
{
    size_t start = p->pos;
    char c = peek(p);
    char cn[16];
    ucum_status st;
    if (c == '(') {
        if (depth >= UCUM_MAX_DEPTH)
            return fail(p, UCUM_ERR_LIMIT, start,
                        "parentheses nested deeper than %d at position %zu", UCUM_MAX_DEPTH,
                        start + 1);
        p->pos++;
        if ((st = parse_term(p, depth + 1, u))) return st;
        if (peek(p) != ')')
            return fail(p, UCUM_ERR_SYNTAX, p->pos,
                        "expected ')' for the '(' at position %zu, found %s at position %zu",
                        start + 1, char_name(p, p->pos, cn, sizeof(cn)), p->pos + 1);
        p->pos++;
        return UCUM_OK;
    }
    if (c == '{') {
        unit_one(u);
        return parse_annotation(p);
    }
    if (is_digit(c)) {
        if ((st = parse_number_component(p, u))) return st;
        return peek(p) == '{' ? parse_annotation(p) : UCUM_OK;
    }
    size_t n = 0;
    if ((st = scan_symbol(p, &n))) return st;
    if (n == 0) {
        if (c == '^' || c == '*')
            return fail(p, UCUM_ERR_SYNTAX, start,
                        "unexpected '%c' at position %zu; exponents follow the symbol directly "
                        "(m2, s-1, 10*3)",
                        c, start + 1);
        return fail(p, UCUM_ERR_SYNTAX, start, "expected a unit at position %zu, found %s",
                    start + 1, char_name(p, start, cn, sizeof(cn)));
    }
    bool prefixed = false, had = false;
    int e;
    if ((st = resolve_symbol(p, start, n, u, &prefixed))) return st;
    if (u->special && prefixed) return special_misuse(p, u, start, "a prefix");
    size_t epos = p->pos;
    if ((st = parse_exponent(p, &e, &had))) return st;
    if (had && e != 1) {
        if (u->special) return special_misuse(p, u, epos, "an exponent");
        if ((st = unit_pow(p, u, e, epos))) return st;
    }
    if (peek(p) == '^' || peek(p) == '*')
        return fail(p, UCUM_ERR_SYNTAX, p->pos,
                    "unexpected '%c' at position %zu; exponents follow the symbol directly "
                    "(m2, s-1, 10*3)",
                    peek(p), p->pos + 1);
    return peek(p) == '{' ? parse_annotation(p) : UCUM_OK;
}

static ucum_status parse_term(parser *p, int depth, ucum_unit *out)
{
    ucum_status st;
    ucum_unit next;
    if (peek(p) == '/') {
        size_t at = p->pos++;
        unit_one(out);
        if ((st = parse_component(p, depth, &next))) return st;
        if ((st = unit_combine(p, out, &next, -1, at))) return st;
    } else if ((st = parse_component(p, depth, out))) {
        return st;
    }
    while (peek(p) == '.' || peek(p) == '/') {
        size_t at = p->pos++;
        if ((st = parse_component(p, depth, &next))) return st;
        if ((st = unit_combine(p, out, &next, p->s[at] == '.' ? 1 : -1, at))) return st;
    }
    return UCUM_OK;
}

ucum_status ucum_parse(const char *expr, ucum_unit *out, ucum_error *err)
{
    assert(err != NULL && out != NULL);
    parser p = {.s = expr ? expr : "", .err = err};
    p.len = strnlen(p.s, UCUM_MAX_EXPR + 1);
    memset(err, 0, sizeof(*err));
    if (p.len == 0)
        return fail(&p, UCUM_ERR_SYNTAX, 0, "empty unit; write 1 for a dimensionless unit");
    if (p.len > UCUM_MAX_EXPR)
        return fail(&p, UCUM_ERR_LIMIT, UCUM_MAX_EXPR, "longer than %d characters", UCUM_MAX_EXPR);
    ucum_status st = parse_term(&p, 0, out);
    if (st) return st;
    if (p.pos < p.len) {
        char cn[16];
        const char *what = p.s[p.pos] == ')' ? "; it has no matching '('" : "";
        return fail(&p, UCUM_ERR_SYNTAX, p.pos, "unexpected %s at position %zu%s%s",
                    char_name(&p, p.pos, cn, sizeof(cn)), p.pos + 1, what,
                    p.s[p.pos] == ' ' ? "; UCUM units contain no spaces" : "");
    }
    return UCUM_OK;
}

/* --- dimensions in words ---------------------------------------------------- */

static const struct {
    signed char dim[UCUM_NBASE];
    const char *name;
} named_dims[] = {
    {PRESSURE, "pressure"},
    {ENERGY, "energy"},
    {D(2, 1, -3, 0, 0, 0, 0, 0), "power"},
    {D(1, 1, -2, 0, 0, 0, 0, 0), "force"},
    {D(1, 0, -1, 0, 0, 0, 0, 0), "velocity"},
    {CATALYTIC, "catalytic activity"},
    {DOSE, "absorbed dose"},
};

/* Order in which dimensions are named: what is measured before length. */
static const int name_order[UCUM_NBASE] = {
    UCUM_DIM_MASS,        UCUM_DIM_AMOUNT, UCUM_DIM_LENGTH, UCUM_DIM_TIME,
    UCUM_DIM_TEMPERATURE, UCUM_DIM_CHARGE, UCUM_DIM_ANGLE,  UCUM_DIM_LUMINOSITY,
};

static void name_one(int dim, int e, tbuf *b)
{
    if (dim == UCUM_DIM_LENGTH && e == 2) {
        tbuf_puts(b, "area");
    } else if (dim == UCUM_DIM_LENGTH && e == 3) {
        tbuf_puts(b, "volume");
    } else {
        tbuf_puts(b, dim < UCUM_NBASE ? base_names[dim] : kind_names[dim - UCUM_NBASE]);
        if (e != 1) tbuf_printf(b, "^%d", e);
    }
}

/* Appends the dimensions with exponents of the given sign, joined by '*';
 * returns how many. */
static int name_side(const ucum_unit *u, int sign, tbuf *b)
{
    int n = 0;
    for (int i = 0; i < UCUM_NDIMS; i++) {
        int dim = i < UCUM_NBASE ? name_order[i] : i;
        int e = u->dim[dim] * sign;
        if (e <= 0) continue;
        if (n++) tbuf_putc(b, '*');
        name_one(dim, e, b);
    }
    return n;
}

char *ucum_describe_dimension(const ucum_unit *u, char *buf, size_t size)
{
    assert(u && buf && size > 0);
    tbuf b = TBUF_INIT, den = TBUF_INIT;
    bool only_base = true;
    for (int i = UCUM_NBASE; i < UCUM_NDIMS; i++)
        only_base &= u->dim[i] == 0;
    for (size_t i = 0; only_base && i < COUNT(named_dims) && !b.len; i++)
        if (!memcmp(named_dims[i].dim, u->dim, UCUM_NBASE)) tbuf_puts(&b, named_dims[i].name);
    if (!b.len) {
        int nnum = name_side(u, 1, &b);
        int nden = name_side(u, -1, &den);
        if (!nnum && !nden)
            tbuf_puts(&b, "dimensionless");
        else if (!nnum)
            tbuf_putc(&b, '1');
        if (nden) tbuf_printf(&b, nden > 1 ? "/(%s)" : "/%s", den.p);
    }
    snprintf(buf, size, "%s", b.p);
    tbuf_free(&b);
    tbuf_free(&den);
    return buf;
}

/* --- conversion ------------------------------------------------------------ */

/* The k for which from - to == k * (mass - amount), with k = +1 or -1;
 * 0 when the difference is anything else. */
static int mass_amount_step(const ucum_unit *from, const ucum_unit *to)
{
    int k = from->dim[UCUM_DIM_MASS] - to->dim[UCUM_DIM_MASS];
    if (k != 1 && k != -1) return 0;
    /* one mass traded for one amount, every other dimension the same */
    if (from->dim[UCUM_DIM_AMOUNT] - to->dim[UCUM_DIM_AMOUNT] != -k) return 0;
    const int lo = UCUM_DIM_MASS < UCUM_DIM_AMOUNT ? UCUM_DIM_MASS : UCUM_DIM_AMOUNT;
    const int hi = UCUM_DIM_MASS < UCUM_DIM_AMOUNT ? UCUM_DIM_AMOUNT : UCUM_DIM_MASS;
    const signed char *a = from->dim, *b = to->dim;
    bool same = !memcmp(a, b, (size_t)lo) &&
                !memcmp(a + lo + 1, b + lo + 1, (size_t)(hi - lo - 1)) &&
                !memcmp(a + hi + 1, b + hi + 1, (size_t)(UCUM_NDIMS - hi - 1));
    return same ? k : 0;
}

static ucum_status not_commensurable(const ucum_unit *from, const ucum_unit *to,
                                     const char *from_text, const char *to_text, int step,
                                     ucum_error *err) __attribute__((cold));
static ucum_status not_commensurable(const ucum_unit *from, const ucum_unit *to,
                                     const char *from_text, const char *to_text, int step,
                                     ucum_error *err)
{
    char df[96], dt[96];
    tbuf b = TBUF_INIT;
    ucum_describe_dimension(from, df, sizeof(df));
    ucum_describe_dimension(to, dt, sizeof(dt));
    tbuf_printf(&b, "%.40s (%s) and %.40s (%s) are not commensurable",
                from_text ? from_text : "the source unit", df,
                to_text ? to_text : "the target unit", dt);
    if (step)
        tbuf_printf(&b, "; give the analyte's molar mass to convert %s",
                    step > 0 ? "mass to moles" : "moles to mass");
    err->code = step ? UCUM_ERR_NEEDS_MOLAR_MASS : UCUM_ERR_NOT_COMMENSURABLE;
    err->offset = 0;
    size_t n = b.len < sizeof(err->text) - 1 ? b.len : sizeof(err->text) - 1;
    memcpy(err->text, b.p, n);
    err->text[n] = '\0';
    tbuf_free(&b);
    return err->code;
}

static ucum_status value_error(ucum_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), cold));

static ucum_status value_error(ucum_error *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err->code = UCUM_ERR_VALUE;
    err->offset = 0;
    vsnprintf(err->text, sizeof(err->text), fmt, ap);
    va_end(ap);
    return UCUM_ERR_VALUE;
}

/* A conversion between two parsed units, decided once for all the numbers
 * of a text: whether the dimensions agree, else the molar-mass step. */
typedef struct conv {
    const ucum_unit *from, *to;
    double mw;
    const char *from_text, *to_text; /* for messages (may be NULL) */
    bool same;                       /* commensurable */
    int step;                        /* when not: mass_amount_step() */
} conv;

static void conv_init(conv *c, const ucum_unit *from, const ucum_unit *to, double mw,
                      const char *from_text, const char *to_text)
{
    *c = (conv){from, to, mw, from_text, to_text, ucum_commensurable(from, to), 0};
    if (!c->same) c->step = mass_amount_step(from, to);
}

/* ucum_convert_units() of one value with the decisions of c made; err is
 * written only on failure. */
static ucum_status conv_apply(const conv *c, double value, double *out, ucum_error *err)
{
    if (!isfinite(value)) return value_error(err, "the value to convert is not a finite number");
    if (!isfinite(c->mw) || c->mw < 0)
        return value_error(err, "the molar mass must be a positive number of g/mol (0 for none)");
    double canonical = (value + c->from->offset) * c->from->factor;
    if (!c->same) {
        if (!c->step || c->mw == 0)
            return not_commensurable(c->from, c->to, c->from_text, c->to_text, c->step, err);
        canonical = c->step > 0 ? canonical / c->mw : canonical * c->mw;
    }
    double v = canonical / c->to->factor - c->to->offset;
    if (!isfinite(v)) return value_error(err, "the converted value is out of range");
    *out = v == 0 ? 0 : v; /* no "-0" */
    return UCUM_OK;
}

ucum_status ucum_convert_units(double value, const ucum_unit *from, const ucum_unit *to,
                               double molar_mass, const char *from_text, const char *to_text,
                               double *out, ucum_error *err)
{
    assert(from && to && out && err);
    err->code = UCUM_OK;
    err->offset = 0;
    err->text[0] = '\0';
    conv c;
    conv_init(&c, from, to, molar_mass, from_text, to_text);
    return conv_apply(&c, value, out, err);
}

/* Parses both units; an error names which one failed. */
static ucum_status parse_pair(const char *from, const char *to, ucum_unit *uf, ucum_unit *ut,
                              ucum_error *err)
{
    if (ucum_parse(from, uf, err)) return err->code;
    return ucum_parse(to, ut, err);
}

ucum_status ucum_convert(double value, const char *from, const char *to, double molar_mass,
                         double *out, ucum_error *err)
{
    ucum_unit uf, ut;
    if (parse_pair(from, to, &uf, &ut, err)) return err->code;
    return ucum_convert_units(value, &uf, &ut, molar_mass, from, to, out, err);
}

/* --- numbers as text ------------------------------------------------------- */

/* Digits printed at most: a double holds 15.9 decimal digits, and a few
 * operations cost the last two or three, which must never show. */
#define MAX_SIG 12

/* Length of the number at s ([+-]digits[.digits][(e|E)[+-]digits]), 0 if
 * none; *sig gets its significant digits (at least 1). */
static size_t scan_number(const char *s, int *sig)
{
    size_t i = 0;
    int ndigits = 0, nsig = 0;
    bool leading = true, point = false;
    if (s[i] == '+' || s[i] == '-') i++;
    for (; is_digit(s[i]) || s[i] == '.'; i++) {
        if (s[i] == '.') {
            if (point) break; /* a second point */
            point = true;
            continue;
        }
        ndigits++;
        if (s[i] != '0') leading = false;
        if (!leading) nsig++;
    }
    if (ndigits == 0) return 0;
    if ((s[i] == 'e' || s[i] == 'E')) {
        size_t j = i + 1;
        if (s[j] == '+' || s[j] == '-') j++;
        if (is_digit(s[j])) {
            while (is_digit(s[j]))
                j++;
            i = j;
        }
    }
    *sig = nsig ? nsig : 1;
    return i;
}

/* v in scientific notation with `digits` (1..MAX_SIG) significant digits,
 * as printf's "%.*e" gives it (correctly rounded, ties to even): the digit
 * characters into d[0..digits), the decimal exponent, the sign. */
typedef struct sci {
    char d[MAX_SIG];
    int exp10;
    bool neg;
} sci;

static void sci_of(double v, int digits, sci *out)
{
    out->neg = signbit(v);
    if (v == 0) {
        memset(out->d, '0', (size_t)digits);
        out->exp10 = 0;
        return;
    }
    char d[DROUND_MAX];
    out->exp10 = dround(v, digits, d);
    memcpy(out->d, d, (size_t)digits);
}

/* Significant digits of v when printed to MAX_SIG digits with trailing zeros
 * dropped: small when v is an exact short decimal (37, 310.15, 0.01). */
static int exact_digits(double v)
{
    sci x;
    sci_of(v, MAX_SIG, &x);
    int last = MAX_SIG;
    while (last > 1 && x.d[last - 1] == '0')
        last--;
    return last;
}

/* v with `digits` significant digits (as sci_of() rounds it) in fixed
 * notation. The usual sizes are written straight into out's memory. */
static void put_fixed(double v, int digits, tbuf *out)
{
    char d[DROUND_MAX];
    const int nd = digits;
    const bool neg = signbit(v), zero = v == 0; /* dround()'s digits are never all zeros */
    int exp10 = 0;
    if (zero)
        memset(d, '0', (size_t)nd);
    else
        exp10 = dround(v, nd, d);
    if (exp10 >= -8 && exp10 < 16) { /* at most 1 + 2 + 7 + MAX_SIG or 1 + 16 + 1 + MAX_SIG */
        tbuf_grow(out, 40);
        char *t = out->p + out->len, *w = t;
        if (neg && !zero) *w++ = '-';
        if (exp10 < 0) {
            *w++ = '0';
            *w++ = '.';
            for (int i = 0; i < -exp10 - 1; i++)
                *w++ = '0';
            for (int i = 0; i < nd; i++)
                *w++ = d[i];
        } else if (exp10 + 1 >= nd) {
            for (int i = 0; i < nd; i++)
                *w++ = d[i];
            for (int i = nd; i < exp10 + 1; i++)
                *w++ = '0';
        } else {
            for (int i = 0; i <= exp10; i++)
                *w++ = d[i];
            *w++ = '.';
            for (int i = exp10 + 1; i < nd; i++)
                *w++ = d[i];
        }
        *w = '\0';
        out->len += (size_t)(w - t);
        return;
    }
    if (neg && !zero) tbuf_putc(out, '-');
    if (exp10 < 0) {
        tbuf_puts(out, "0.");
        for (int i = 0; i < -exp10 - 1; i++)
            tbuf_putc(out, '0');
        tbuf_put(out, d, (size_t)nd);
        return;
    }
    int intlen = exp10 + 1;
    if (intlen >= nd) {
        tbuf_put(out, d, (size_t)nd);
        for (int i = nd; i < intlen; i++)
            tbuf_putc(out, '0');
        return;
    }
    tbuf_put(out, d, (size_t)intlen);
    tbuf_putc(out, '.');
    tbuf_put(out, d + intlen, (size_t)(nd - intlen));
}

/* The rule (docs/units.md): a result that is an exact decimal of at most
 * max(input digits, 6) significant digits is printed exactly, padded with
 * zeros to the input's significant digits; any other result (and any result
 * that went through a molar mass) is rounded to the input's significant
 * digits, at least 3 and at most MAX_SIG. */
static void format_number(double v, int in_digits, bool allow_exact, tbuf *out)
{
    if (in_digits > MAX_SIG) in_digits = MAX_SIG;
    if (in_digits < 0) in_digits = 0;
    if (!isfinite(v)) {
        tbuf_puts(out, isnan(v) ? "NaN" : v > 0 ? "Infinity" : "-Infinity");
        return;
    }
    int exact = allow_exact ? exact_digits(v) : MAX_SIG + 1;
    int digits;
    if (allow_exact && exact <= (in_digits > 6 ? in_digits : 6))
        digits = exact > in_digits ? exact : in_digits;
    else
        digits = in_digits > 3 ? in_digits : 3;
    put_fixed(v, digits, out);
}

void ucum_format_number(double v, int in_digits, tbuf *out)
{
    assert(out);
    format_number(v, in_digits, true, out);
}

static size_t skip_spaces(const char *s, size_t i)
{
    while (s[i] == ' ' || s[i] == '\t')
        i++;
    return i;
}

static size_t comparator_len(const char *s)
{
    if ((s[0] == '<' || s[0] == '>') && s[1] == '=') return 2;
    return s[0] == '<' || s[0] == '>' || s[0] == '=' ? 1 : 0;
}

/* The value of the number s[0..n) (as scan_number() found it) when it has
 * at most 15 significant digits and a decimal exponent within 22: then the
 * digits and the power of ten are exact doubles and one multiplication or
 * division rounds correctly, so the result is strtod's. false otherwise. */
static bool decimal_value(const char *s, size_t n, double *out)
{
    static const double pow10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    size_t i = 0;
    bool neg = s[0] == '-';
    if (s[0] == '+' || s[0] == '-') i++;
    uint64_t m = 0;
    int digits = 0, exp10 = 0;
    bool frac = false;
    for (; i < n && (is_digit(s[i]) || s[i] == '.'); i++) {
        if (s[i] == '.') {
            frac = true;
            continue;
        }
        if (m == 0 && s[i] == '0') { /* leading zeros count for nothing */
            if (frac) exp10--;
            continue;
        }
        if (++digits > 15) return false;
        m = m * 10 + (uint64_t)(s[i] - '0');
        if (frac) exp10--;
    }
    if (i < n) { /* e[+-]digits */
        i++;
        bool eneg = s[i] == '-';
        if (s[i] == '+' || s[i] == '-') i++;
        int e = 0;
        for (; i < n; i++) {
            if (e > 1000) return false;
            e = e * 10 + (s[i] - '0');
        }
        exp10 += eneg ? -e : e;
    }
    if (exp10 < -22 || exp10 > 22) return false;
    double v = exp10 < 0 ? (double)m / pow10[-exp10] : (double)m * pow10[exp10];
    *out = neg ? -v : v;
    return true;
}

/* Converts the number s[0..n) and appends it; UCUM_OK or an error. */
static ucum_status convert_number(const char *s, size_t n, int sig, const conv *c, tbuf *out,
                                  ucum_error *err)
{
    char buf[128];
    if (n >= sizeof(buf))
        return value_error(err, "the number '%.40s...' is longer than %zu characters", s,
                           sizeof(buf) - 1);
    double v, r;
    if (!decimal_value(s, n, &v)) {
        memcpy(buf, s, n);
        buf[n] = '\0';
        v = strtod(buf, NULL);
        if (!isfinite(v)) return value_error(err, "the number '%s' is out of range", buf);
    }
    ucum_status st = conv_apply(c, v, &r, err);
    if (st) return st;
    /* a molar mass is a measurement, not a definition: never exact */
    format_number(r, sig, c->same, out);
    return UCUM_OK;
}

/* Appends s with the number at [a, a+n) replaced by its conversion. */
static ucum_status replace_number(const char *s, size_t a, size_t n, int sig, const conv *c,
                                  tbuf *out, ucum_error *err)
{
    tbuf_put(out, s, a);
    ucum_status st = convert_number(s + a, n, sig, c, out, err);
    if (!st) tbuf_puts(out, s + a + n);
    return st;
}

/* A value: [spaces][comparator][spaces]number[spaces]. */
static bool match_value(const char *s, size_t *a, size_t *n, int *sig)
{
    size_t i = skip_spaces(s, 0);
    i = skip_spaces(s, i + comparator_len(s + i));
    *a = i;
    *n = scan_number(s + i, sig);
    return *n && s[skip_spaces(s, i + *n)] == '\0';
}

ucum_status ucum_convert_text(const char *value, const char *from, const char *to,
                              double molar_mass, tbuf *out, bool *converted, ucum_error *err)
{
    assert(value && out && converted && err);
    ucum_unit uf, ut;
    *converted = false;
    if (parse_pair(from, to, &uf, &ut, err)) return err->code;
    return ucum_convert_text_units(value, &uf, &ut, from, to, molar_mass, out, converted, err);
}

ucum_status ucum_convert_text_units(const char *value, const ucum_unit *uf, const ucum_unit *ut,
                                    const char *from, const char *to, double molar_mass,
                                    tbuf *out, bool *converted, ucum_error *err)
{
    assert(value && uf && ut && out && converted && err);
    size_t a, n, mark = out->len;
    int sig;
    *converted = false;
    if (!match_value(value, &a, &n, &sig)) {
        tbuf_puts(out, value);
        return UCUM_OK;
    }
    conv c;
    conv_init(&c, uf, ut, molar_mass, from, to);
    ucum_status st = replace_number(value, a, n, sig, &c, out, err);
    if (st) {
        out->len = mark;
        if (out->p) out->p[mark] = '\0';
        return st;
    }
    *converted = true;
    return UCUM_OK;
}

ucum_status ucum_convert_range(const char *range, const char *from, const char *to,
                               double molar_mass, tbuf *out, bool *converted, ucum_error *err)
{
    assert(range && out && converted && err);
    ucum_unit uf, ut;
    *converted = false;
    if (parse_pair(from, to, &uf, &ut, err)) return err->code;
    return ucum_convert_range_units(range, &uf, &ut, from, to, molar_mass, out, converted, err);
}

ucum_status ucum_convert_range_units(const char *range, const ucum_unit *ufp, const ucum_unit *utp,
                                     const char *from, const char *to, double molar_mass,
                                     tbuf *out, bool *converted, ucum_error *err)
{
    assert(range && ufp && utp && out && converted && err);
    size_t a, n, mark = out->len;
    int sig, sig2;
    if (match_value(range, &a, &n, &sig))
        return ucum_convert_text_units(range, ufp, utp, from, to, molar_mass, out, converted, err);
    *converted = false;
    /* low[spaces]-[spaces]high, both possibly negative */
    size_t lo = skip_spaces(range, 0);
    size_t nlo = scan_number(range + lo, &sig);
    size_t sep = lo + nlo, hi = skip_spaces(range, sep);
    size_t nhi = 0;
    if (nlo && range[hi] == '-') {
        hi = skip_spaces(range, hi + 1);
        nhi = scan_number(range + hi, &sig2);
    }
    if (!nhi || range[skip_spaces(range, hi + nhi)] != '\0') {
        tbuf_puts(out, range);
        return UCUM_OK;
    }
    tbuf_put(out, range, lo);
    conv c;
    conv_init(&c, ufp, utp, molar_mass, from, to);
    ucum_status st = convert_number(range + lo, nlo, sig, &c, out, err);
    if (!st) {
        tbuf_put(out, range + sep, hi - sep);
        st = convert_number(range + hi, nhi, sig2, &c, out, err);
        if (!st) tbuf_puts(out, range + hi + nhi);
    }
    if (st) {
        out->len = mark;
        if (out->p) out->p[mark] = '\0';
        return st;
    }
    *converted = true;
    return UCUM_OK;
}
