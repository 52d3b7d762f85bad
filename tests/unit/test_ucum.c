/*
 * Unit tests for UCUM units (term/ucum.c): parsing and canonical forms, the
 * conversions docs/units.md promises (each within 1e-9 relative), error
 * codes, positions and texts, special units, molar mass, the text helpers
 * for lab values and reference ranges with their significant-digit rule, and
 * robustness against garbage, long, deeply nested and huge-exponent input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "term/ucum.h"

#define GLUCOSE 180.156

static void assert_close(double got, double want, const char *what)
{
    double tol = 1e-9 * fabs(want);
    if (!(fabs(got - want) <= (tol > 1e-300 ? tol : 1e-300))) {
        fprintf(stderr, "%s: got %.17g, want %.17g\n", what, got, want);
        fail();
    }
}

static double conv(double v, const char *from, const char *to, double mw)
{
    double out = NAN;
    ucum_error err;
    ucum_status st = ucum_convert(v, from, to, mw, &out, &err);
    if (st != UCUM_OK) fprintf(stderr, "%g %s -> %s: %s\n", v, from, to, err.text);
    assert_int_equal(st, UCUM_OK);
    return out;
}

static void check_conv(double v, const char *from, const char *to, double mw, double want)
{
    char what[128];
    snprintf(what, sizeof(what), "%g %s -> %s", v, from, to);
    assert_close(conv(v, from, to, mw), want, what);
}

/* Parses expr expecting code; returns the error for further checks. */
static ucum_error parse_fails(const char *expr, ucum_status code)
{
    ucum_unit u;
    ucum_error err;
    ucum_status st = ucum_parse(expr, &u, &err);
    if (st != code) fprintf(stderr, "'%s': got %d (%s), want %d\n", expr, st, err.text, code);
    assert_int_equal(st, code);
    assert_int_equal(err.code, code);
    assert_true(err.text[0] != '\0');
    return err;
}

static const char *describe(const char *expr)
{
    static char buf[128];
    ucum_unit u;
    ucum_error err;
    if (ucum_parse(expr, &u, &err) != UCUM_OK) fprintf(stderr, "%s\n", err.text);
    assert_int_equal(ucum_parse(expr, &u, &err), UCUM_OK);
    return ucum_describe_dimension(&u, buf, sizeof(buf));
}

static void test_parse_valid(void **state)
{
    (void)state;
    static const char *ok[] = {
        "m",         "m2",       "s-1",      "s+2",       "10*3",      "10^3",      "10*-3",
        "10*",       "1000",     "1",        "/min",      "/uL",       "{score}",   "{cells}/uL",
        "mL{total}", "m2{skin}", "kg.m/s2",  "(mg/dL)",   "mg/(kg.d)", "mm[Hg]",    "cm[H2O]",
        "[in_i]",    "[ft_i]",   "[lb_av]",  "[oz_av]",   "[degF]",    "Cel",       "Cel{oral}",
        "(Cel)",     "%",        "[ppm]",    "[ppb]",     "U/L",       "[iU]/L",    "[IU]/mL",
        "m[IU]/L",   "kat",      "ukat/L",   "Bq",        "Gy",        "cGy",       "mSv",
        "g%",        "mg%",      "eq",       "meq/L",     "mosm/kg",   "mol",       "mmol/L",
        "atm",       "bar",      "kPa",      "J",         "kcal",      "W",         "N",
        "Hz",        "h",        "d",        "wk",        "mo",        "a",         "daL",
        "KiBy",      "MiBy",     "[arb'U]",  "[CFU]/mL",  "10*9/L",    "10{cells}", "((m))",
        "cd",        "[gal_us]", "[tsp_us]", "[drp]/min", "L",         "l",         "dL",
        "fL",        "pg",       "ng/mL",    "umol/L",
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        ucum_unit u;
        ucum_error err;
        ucum_status st = ucum_parse(ok[i], &u, &err);
        if (st != UCUM_OK) fprintf(stderr, "'%s': %s\n", ok[i], err.text);
        assert_int_equal(st, UCUM_OK);
        assert_true(isfinite(u.factor) && u.factor > 0);
    }
}

static void test_canonical_forms(void **state)
{
    (void)state;
    ucum_unit u;
    ucum_error err;
    assert_int_equal(ucum_parse("10*3/uL", &u, &err), UCUM_OK);
    assert_close(u.factor, 1e12, "10*3/uL factor");
    assert_int_equal(u.dim[UCUM_DIM_LENGTH], -3);
    assert_int_equal(ucum_parse("kg.m/s2", &u, &err), UCUM_OK);
    assert_close(u.factor, 1000, "kg.m/s2 factor");
    assert_int_equal(u.dim[UCUM_DIM_MASS], 1);
    assert_int_equal(u.dim[UCUM_DIM_LENGTH], 1);
    assert_int_equal(u.dim[UCUM_DIM_TIME], -2);
    assert_int_equal(ucum_parse("Cel", &u, &err), UCUM_OK);
    assert_int_equal(u.special, UCUM_SPECIAL_CEL);
    assert_int_equal(ucum_parse("{score}", &u, &err), UCUM_OK);
    ucum_unit one;
    assert_int_equal(ucum_parse("1", &one, &err), UCUM_OK);
    assert_true(ucum_commensurable(&u, &one));
    assert_close(u.factor, 1, "{score}");

    assert_string_equal(describe("mg/dL"), "mass/volume");
    assert_string_equal(describe("mmol/L"), "amount of substance/volume");
    assert_string_equal(describe("/min"), "1/time");
    assert_string_equal(describe("1"), "dimensionless");
    assert_string_equal(describe("%"), "dimensionless");
    assert_string_equal(describe("kPa"), "pressure");
    assert_string_equal(describe("mm[Hg]"), "pressure");
    assert_string_equal(describe("U/L"), "amount of substance/(volume*time)");
    assert_string_equal(describe("ukat"), "catalytic activity");
    assert_string_equal(describe("mg/(kg.d)"), "1/time");
    assert_string_equal(describe("m2"), "area");
    assert_string_equal(describe("meq/L"), "equivalents/volume");
    assert_string_equal(describe("[IU]/L"), "international units [IU]/volume");
    assert_string_equal(describe("Cel"), "temperature");
    assert_string_equal(describe("m4"), "length^4");
}

/* Left to right, '.' and '/' of equal precedence, as UCUM specifies. */
static void test_associativity(void **state)
{
    (void)state;
    check_conv(1, "mg/kg.d", "mg.d/kg", 0, 1);
    check_conv(1, "mg/kg/d", "mg/(kg.d)", 0, 1);
    check_conv(1, "m/s/s", "m/s2", 0, 1);
}

static void test_required_examples(void **state)
{
    (void)state;
    check_conv(1, "10*3/uL", "10*9/L", 0, 1);
    check_conv(1, "mg/dL", "g/L", 0, 0.01);
    check_conv(1, "[lb_av]", "g", 0, 453.59237);
    check_conv(98.6, "[degF]", "Cel", 0, 37);
    check_conv(37, "Cel", "K", 0, 310.15);
    check_conv(5.55, "mmol/L", "mg/dL", GLUCOSE, 5.55 * GLUCOSE / 10);
    check_conv(100, "mg/dL", "mmol/L", GLUCOSE, 1000 / GLUCOSE);
    check_conv(1, "mm[Hg]", "kPa", 0, 0.133322);
    check_conv(1, "/min", "Hz", 0, 1.0 / 60);
    check_conv(1, "h", "min", 0, 60);
    check_conv(1, "ug/mL", "mg/L", 0, 1);
    check_conv(1, "%", "1", 0, 0.01);
    check_conv(1, "{cells}/uL", "/L", 0, 1e6);
}

static void test_more_conversions(void **state)
{
    (void)state;
    check_conv(1, "[ft_i]", "cm", 0, 30.48);
    check_conv(1, "[in_i]", "mm", 0, 25.4);
    check_conv(1, "[oz_av]", "g", 0, 28.349523125);
    check_conv(1, "L", "l", 0, 1);
    check_conv(1, "kcal", "kJ", 0, 4.184);
    check_conv(60, "U/L", "ukat/L", 0, 1);
    check_conv(1, "g%", "g/dL", 0, 1);
    check_conv(1, "a", "d", 0, 365.25);
    check_conv(1, "wk", "d", 0, 7);
    check_conv(1, "mo", "d", 0, 30.4375);
    check_conv(1, "atm", "kPa", 0, 101.325);
    check_conv(1, "bar", "kPa", 0, 100);
    check_conv(1, "cm[H2O]", "Pa", 0, 98.0665);
    check_conv(1, "[psi]", "kPa", 0, 6.894757293168361);
    check_conv(1, "10*-3", "1", 0, 0.001);
    check_conv(1, "10^6", "1", 0, 1e6);
    check_conv(1, "[ppm]", "[ppb]", 0, 1000);
    check_conv(100, "Cel", "[degF]", 0, 212);
    check_conv(-40, "Cel", "[degF]", 0, -40);
    check_conv(0, "K", "Cel", 0, -273.15);
    check_conv(1, "[gal_us]", "L", 0, 3.785411784);
    check_conv(1, "Gy", "Sv", 0, 1);
    check_conv(1, "[IU]", "[iU]", 0, 1);
    check_conv(1, "m[IU]/mL", "[IU]/L", 0, 1);
    check_conv(1, "meq/L", "ueq/mL", 0, 1);
    check_conv(2, "1000", "1", 0, 2000);
    check_conv(1, "KiBy", "By", 0, 1024);
    check_conv(1, "daL", "L", 0, 10);
    /* same dimension: the molar mass is not used */
    check_conv(1, "mg/dL", "g/L", GLUCOSE, 0.01);
}

static void test_molar_mass(void **state)
{
    (void)state;
    double out;
    ucum_error err;
    assert_int_equal(ucum_convert(100, "mg/dL", "mmol/L", 0, &out, &err),
                     UCUM_ERR_NEEDS_MOLAR_MASS);
    assert_string_equal(err.text, "mg/dL (mass/volume) and mmol/L (amount of substance/volume) "
                                  "are not commensurable; give the analyte's molar mass to "
                                  "convert mass to moles");
    assert_int_equal(ucum_convert(1, "mmol/L", "mg/dL", 0, &out, &err), UCUM_ERR_NEEDS_MOLAR_MASS);
    assert_non_null(strstr(err.text, "moles to mass"));
    /* mass vs amount plus something else: a molar mass does not help */
    assert_int_equal(ucum_convert(1, "mg/dL", "mmol", GLUCOSE, &out, &err),
                     UCUM_ERR_NOT_COMMENSURABLE);
    assert_int_equal(ucum_convert(1, "mg", "s", GLUCOSE, &out, &err), UCUM_ERR_NOT_COMMENSURABLE);
    assert_string_equal(err.text, "mg (mass) and s (time) are not commensurable");
    check_conv(1, "mol", "g", GLUCOSE, GLUCOSE);
    check_conv(GLUCOSE, "g", "mol", GLUCOSE, 1);
    /* eq, osm and arbitrary units stand apart */
    assert_int_equal(ucum_convert(1, "meq/L", "mmol/L", 1, &out, &err), UCUM_ERR_NOT_COMMENSURABLE);
    assert_int_equal(ucum_convert(1, "mosm/kg", "mmol/kg", 1, &out, &err),
                     UCUM_ERR_NOT_COMMENSURABLE);
    assert_int_equal(ucum_convert(1, "[arb'U]", "[IU]", 0, &out, &err), UCUM_ERR_NOT_COMMENSURABLE);
    assert_int_equal(ucum_convert(1, "[IU]/L", "ug/L", 0, &out, &err), UCUM_ERR_NOT_COMMENSURABLE);
    /* bad numbers */
    assert_int_equal(ucum_convert(NAN, "g", "mg", 0, &out, &err), UCUM_ERR_VALUE);
    assert_int_equal(ucum_convert(INFINITY, "g", "mg", 0, &out, &err), UCUM_ERR_VALUE);
    assert_int_equal(ucum_convert(1, "g", "mol", -5, &out, &err), UCUM_ERR_VALUE);
    assert_int_equal(ucum_convert(1, "g", "mol", NAN, &out, &err), UCUM_ERR_VALUE);
    assert_int_equal(ucum_convert(1e300, "Ym", "ym", 0, &out, &err), UCUM_ERR_VALUE);
}

static void test_unknown_units(void **state)
{
    (void)state;
    ucum_error err = parse_fails("mg/xyz", UCUM_ERR_UNKNOWN_UNIT);
    assert_int_equal(err.offset, 3);
    assert_string_equal(err.text, "'mg/xyz': unknown unit 'xyz' at position 4");
    err = parse_fails("mEq/L", UCUM_ERR_UNKNOWN_UNIT);
    assert_non_null(strstr(err.text, "did you mean 'meq'?"));
    err = parse_fails("mIU/mL", UCUM_ERR_UNKNOWN_UNIT);
    assert_non_null(strstr(err.text, "did you mean 'm[IU]'?"));
    err = parse_fails("MG", UCUM_ERR_UNKNOWN_UNIT);
    assert_non_null(strstr(err.text, "did you mean 'mg'?"));
    err = parse_fails("mmHg", UCUM_ERR_UNKNOWN_UNIT);
    assert_non_null(strstr(err.text, "'mm[Hg]'"));
    parse_fails("[foo]", UCUM_ERR_UNKNOWN_UNIT);
    parse_fails("hmin", UCUM_ERR_UNKNOWN_UNIT); /* min takes no prefix */
    parse_fails("k[lb_av]", UCUM_ERR_UNKNOWN_UNIT);
    parse_fails("mmm", UCUM_ERR_UNKNOWN_UNIT); /* one prefix only */
    err = parse_fails("g/10*3.qq", UCUM_ERR_UNKNOWN_UNIT);
    assert_int_equal(err.offset, 7);
}

static void test_syntax_errors(void **state)
{
    (void)state;
    static const struct {
        const char *expr;
        size_t offset;
    } cases[] = {
        {"", 0},      {"m//s", 2},     {"mg/", 3},     {"(m", 2},   {"m)", 1},    {"m^2", 1},
        {"m2.", 3},   {".m", 0},       {"m+", 2},      {"{abc", 0}, {"[in_i", 0}, {"m g", 1},
        {"2mg", 1},   {"100*3", 0},    {"m{a{b}}", 3}, {"()", 1},   {"m.(", 3},   {"*", 0},
        {"m\x01", 1}, {"\xC3\xA9", 0}, {"m-", 2},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ucum_error err = parse_fails(cases[i].expr, UCUM_ERR_SYNTAX);
        if (err.offset != cases[i].offset)
            fprintf(stderr, "'%s': offset %zu, want %zu (%s)\n", cases[i].expr, err.offset,
                    cases[i].offset, err.text);
        assert_int_equal(err.offset, cases[i].offset);
        assert_non_null(strstr(err.text, "position") ? err.text : strstr(err.text, "empty"));
    }
    ucum_error err = parse_fails("m g", UCUM_ERR_SYNTAX);
    assert_non_null(strstr(err.text, "no spaces"));
    err = parse_fails("m^2", UCUM_ERR_SYNTAX);
    assert_non_null(strstr(err.text, "m2, s-1"));
}

static void test_special_units(void **state)
{
    (void)state;
    static const char *bad[] = {"Cel/h",   "Cel2",     "mCel",  "2.Cel",   "/Cel",
                                "Cel.Cel", "[degF]/s", "K/Cel", "(Cel).m", "Cel-1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ucum_error err = parse_fails(bad[i], UCUM_ERR_SPECIAL);
        assert_non_null(strstr(err.text, "can only be used alone"));
    }
    check_conv(37, "(Cel)", "K", 0, 310.15);
    check_conv(37, "Cel{oral}", "K", 0, 310.15);
    check_conv(1, "Cel1", "K", 0, 274.15);
    /* a ratio temperature unit may combine */
    check_conv(1, "K/h", "K/min", 0, 1.0 / 60);
    check_conv(9, "[degR]", "K", 0, 5);
    double out;
    ucum_error err;
    assert_int_equal(ucum_convert(1, "Cel", "m", 0, &out, &err), UCUM_ERR_NOT_COMMENSURABLE);
    assert_non_null(strstr(err.text, "(temperature)"));
}

static char *text(const char *value, const char *from, const char *to, double mw, bool range,
                  bool want_converted)
{
    tbuf out = TBUF_INIT;
    bool converted = !want_converted;
    ucum_error err;
    ucum_status st = range ? ucum_convert_range(value, from, to, mw, &out, &converted, &err)
                           : ucum_convert_text(value, from, to, mw, &out, &converted, &err);
    if (st != UCUM_OK) fprintf(stderr, "'%s': %s\n", value, err.text);
    assert_int_equal(st, UCUM_OK);
    assert_int_equal(converted, want_converted);
    return tbuf_detach(&out, NULL);
}

#define TEXT_IS(want, ...)                                                                         \
    do {                                                                                           \
        char *got_ = text(__VA_ARGS__);                                                            \
        assert_string_equal(got_, want);                                                           \
        free(got_);                                                                                \
    } while (0)

static void test_value_text(void **state)
{
    (void)state;
    TEXT_IS("5.55", "100", "mg/dL", "mmol/L", GLUCOSE, false, true);
    TEXT_IS("0.052", "5.2", "mg/dL", "g/L", 0, false, true);
    TEXT_IS("<0.05", "<5", "mg/dL", "g/L", 0, false, true);
    TEXT_IS(">2.00", ">200", "mg/dL", "g/L", 0, false, true);
    TEXT_IS("<=0.03", "<=3", "mg/dL", "g/L", 0, false, true);
    TEXT_IS("12", "1.2E3", "mg/dL", "g/L", 0, false, true);
    TEXT_IS(" >= 12 ", " >= 1.2e3 ", "mg/dL", "g/L", 0, false, true);
    TEXT_IS("-40", "-40", "Cel", "[degF]", 0, false, true);
    TEXT_IS("37.0", "98.6", "[degF]", "Cel", 0, false, true);
    TEXT_IS("310.15", "37", "Cel", "K", 0, false, true);
    TEXT_IS("454", "1", "[lb_av]", "g", 0, false, true);
    TEXT_IS("90.1", "5.0", "mmol/L", "mg/dL", GLUCOSE, false, true);
    TEXT_IS("5.0", "5.0", "mmol/L", "mmol/L", 0, false, true);
    TEXT_IS("0.00500", "5.00", "mmol/L", "mol/L", 0, false, true);
    /* not numbers: unchanged, not converted, not an error */
    static const char *words[] = {"POS", "Negative", "",   "1:40", "5.2 H", "--5",
                                  "<",   "5..2",     "1e", "0x10", "+-3",   "5-7"};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        TEXT_IS(words[i], words[i], "mg/dL", "g/L", 0, false, false);
    /* but a bad unit is reported even when the value is not a number */
    tbuf out = TBUF_INIT;
    bool converted = true;
    ucum_error err;
    assert_int_equal(ucum_convert_text("POS", "mg/dL", "xx", 0, &out, &converted, &err),
                     UCUM_ERR_UNKNOWN_UNIT);
    assert_false(converted);
    assert_int_equal(ucum_convert_text("5", "mg/dL", "mmol/L", 0, &out, &converted, &err),
                     UCUM_ERR_NEEDS_MOLAR_MASS);
    assert_int_equal(out.len, 0);
    assert_int_equal(ucum_convert_text("1e999", "g", "mg", 0, &out, &converted, &err),
                     UCUM_ERR_VALUE);
    /* appends to what is there */
    tbuf_puts(&out, "x=");
    assert_int_equal(ucum_convert_text("1", "g", "mg", 0, &out, &converted, &err), UCUM_OK);
    assert_string_equal(out.p, "x=1000");
    tbuf_free(&out);
}

static void test_range_text(void **state)
{
    (void)state;
    TEXT_IS("63.1-90.1", "3.5-5.0", "mmol/L", "mg/dL", GLUCOSE, true, true);
    TEXT_IS("63.1 - 90.1", "3.5 - 5.0", "mmol/L", "mg/dL", GLUCOSE, true, true);
    TEXT_IS("0.035-0.050", "3.5-5.0", "mg/dL", "g/L", 0, true, true);
    TEXT_IS("<0.05", "<5", "mg/dL", "g/L", 0, true, true);
    TEXT_IS(">0.10", ">10", "mg/dL", "g/L", 0, true, true);
    TEXT_IS("-0.010--0.0050", "-1.0--0.50", "mg/dL", "g/L", 0, true, true);
    TEXT_IS("-1000 - -500", "-1 - -0.5", "g", "mg", 0, true, true);
    TEXT_IS("0.05", "5", "mg/dL", "g/L", 0, true, true);
    TEXT_IS("36.1-37.2", "97.0-99.0", "[degF]", "Cel", 0, true, true);
    static const char *words[] = {
        "", "abc", "3.5-", "-", "3.5-5.0-6", "3.5 to 5.0", "3.5--", "Negative", "3.5-5.0 mmol/L"};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        TEXT_IS(words[i], words[i], "mg/dL", "g/L", 0, true, false);
    tbuf out = TBUF_INIT;
    bool converted;
    ucum_error err;
    assert_int_equal(ucum_convert_range("1-2", "mg/dL", "mmol/L", 0, &out, &converted, &err),
                     UCUM_ERR_NEEDS_MOLAR_MASS);
    assert_int_equal(out.len, 0);
    tbuf_free(&out);
}

static void format_is(double v, int digits, const char *want)
{
    tbuf out = TBUF_INIT;
    ucum_format_number(v, digits, &out);
    if (strcmp(out.p, want)) fprintf(stderr, "%.17g/%d: got %s, want %s\n", v, digits, out.p, want);
    assert_string_equal(out.p, want);
    tbuf_free(&out);
}

static void test_format(void **state)
{
    (void)state;
    format_is(1000 / GLUCOSE, 3, "5.55");
    format_is(1000 / GLUCOSE, 1, "5.55");
    format_is(1000 / GLUCOSE, 5, "5.5507");
    format_is(5.550000000001, 3, "5.55");
    format_is(37.000000000000057, 3, "37.0");
    format_is(310.15, 2, "310.15");
    format_is(0.0055, 3, "0.00550");
    format_is(5.55e-7 * 1.0000001, 3, "0.000000555");
    format_is(1.2345678e20, 3, "123000000000000000000");
    format_is(0, 3, "0.00");
    format_is(-0.0, 1, "0");
    format_is(9.99961234, 3, "10.0");
    format_is(-2.5, 2, "-2.5");
    format_is(123456.7891234, 3, "123000");
    format_is(1.0 / 3, 20, "0.333333333333");
}

/* Numbers are printed from exact integer arithmetic, no longer from
 * printf's "%.*e": the reference below is the printf way, and both must
 * agree digit for digit on many values (ties, powers of ten, huge and tiny
 * ones, negative zero), at every precision. */
static void ref_format(double v, int in_digits, tbuf *out)
{
    enum { MAX_SIG = 12 };
    if (in_digits > MAX_SIG) in_digits = MAX_SIG;
    if (in_digits < 0) in_digits = 0;
    if (!isfinite(v)) {
        tbuf_puts(out, isnan(v) ? "NaN" : v > 0 ? "Infinity" : "-Infinity");
        return;
    }
    char m[64];
    snprintf(m, sizeof m, "%.*e", MAX_SIG - 1, v);
    int n = 0, last = 0;
    for (const char *c = m; *c && *c != 'e'; c++)
        if (*c >= '0' && *c <= '9' && ++n && *c != '0') last = n;
    int exact = last ? last : 1, digits;
    if (exact <= (in_digits > 6 ? in_digits : 6))
        digits = exact > in_digits ? exact : in_digits;
    else
        digits = in_digits > 3 ? in_digits : 3;
    snprintf(m, sizeof m, "%.*e", digits - 1, v);
    char d[MAX_SIG + 1];
    int nd = 0;
    const char *c = m + (m[0] == '-');
    for (; *c && *c != 'e'; c++)
        if (*c >= '0' && *c <= '9' && nd < MAX_SIG) d[nd++] = *c;
    int exp10 = *c == 'e' ? atoi(c + 1) : 0;
    bool zero = true;
    for (int i = 0; i < nd; i++)
        zero &= d[i] == '0';
    if (m[0] == '-' && !zero) tbuf_putc(out, '-');
    if (exp10 < 0) {
        tbuf_puts(out, "0.");
        for (int i = 0; i < -exp10 - 1; i++)
            tbuf_putc(out, '0');
        tbuf_put(out, d, (size_t)nd);
    } else if (exp10 + 1 >= nd) {
        tbuf_put(out, d, (size_t)nd);
        for (int i = nd; i < exp10 + 1; i++)
            tbuf_putc(out, '0');
    } else {
        tbuf_put(out, d, (size_t)(exp10 + 1));
        tbuf_putc(out, '.');
        tbuf_put(out, d + exp10 + 1, (size_t)(nd - exp10 - 1));
    }
}

static void test_format_matches_printf(void **state)
{
    (void)state;
    uint64_t x = 88172645463325252ull;
    tbuf got = TBUF_INIT, want = TBUF_INIT;
    for (long i = 0; i < 200000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        double v;
        switch (i % 6) {
        case 0:
            memcpy(&v, &x, sizeof v);
            break; /* any bit pattern */
        case 1:
            v = (double)(int64_t)(x % 2000001) / pow(10, (double)(x >> 40 & 15));
            break;
        case 2:
            v = ((double)(x % 100000) + 0.5) / pow(10, (double)(x >> 40 & 7));
            break; /* ties */
        case 3:
            v = pow(10, (double)((int)(x >> 40 & 63) - 31)) * ((x & 1) ? 1 : -1);
            break;
        case 4:
            v = (double)(x % 1000) / 8.0 - 60;
            break;
        default:
            v = (double)(x >> 11) / 9007199254740992.0 * 180.16 / 113.12;
            break;
        }
        if (!isfinite(v)) continue;
        int digits = (int)((x >> 50) % 16) - 1;
        tbuf_reset(&got);
        tbuf_reset(&want);
        ucum_format_number(v, digits, &got);
        ref_format(v, digits, &want);
        if (strcmp(got.p, want.p))
            fprintf(stderr, "%.17g/%d: %s vs %s\n", v, digits, got.p, want.p);
        assert_string_equal(got.p, want.p);
    }
    tbuf_free(&got);
    tbuf_free(&want);
}

/* Numbers are read without strtod when that is exact: converting them by a
 * power of ten must give what strtod's value gives. */
static void test_read_numbers(void **state)
{
    (void)state;
    uint64_t x = 1234567;
    char text[64];
    tbuf got = TBUF_INIT, want = TBUF_INIT;
    ucum_error err;
    bool converted;
    for (long i = 0; i < 20000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int len = 0, nd = 1 + (int)(x % 18), dot = (int)((x >> 8) % (uint64_t)(nd + 2)) - 1;
        if (x >> 16 & 1) text[len++] = "+-"[x >> 17 & 1];
        for (int k = 0; k < nd; k++) {
            if (k == dot) text[len++] = '.';
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            text[len++] = (char)('0' + (x % 4 ? x % 10 : 0));
        }
        if (x >> 20 & 1) len += snprintf(text + len, 8, "e%d", (int)((x >> 24) % 30) - 15);
        text[len] = '\0';
        tbuf_reset(&got);
        tbuf_reset(&want);
        assert_int_equal(ucum_convert_text(text, "mg", "g", 0, &got, &converted, &err), UCUM_OK);
        int sig = 0;
        bool lead = true;
        for (const char *c = text; *c && *c != 'e'; c++)
            if (*c >= '0' && *c <= '9' && (*c != '0' || !lead)) lead = false, sig++;
        double r;
        assert_int_equal(ucum_convert(strtod(text, NULL), "mg", "g", 0, &r, &err), UCUM_OK);
        ucum_format_number(r, sig ? sig : 1, &want);
        assert_string_equal(got.p, want.p);
    }
    tbuf_free(&got);
    tbuf_free(&want);
}

/* Deterministic garbage: every input yields a status, and every error a text
 * and an offset inside the input. */
static void test_garbage(void **state)
{
    (void)state;
    static const char alphabet[] = "mgLs/.()[]{}0123456789*^+-%'_ kMuCelHgd\x80\xff";
    uint32_t seed = 12345;
    char buf[64];
    for (int iter = 0; iter < 200000; iter++) {
        size_t n = 0, len = (seed >> 8) % (sizeof(buf) - 1);
        for (; n < len; n++) {
            seed = seed * 1103515245u + 12345u;
            buf[n] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
        }
        buf[n] = '\0';
        seed = seed * 1103515245u + 12345u;
        ucum_unit u;
        ucum_error err;
        ucum_status st = ucum_parse(buf, &u, &err);
        if (st == UCUM_OK) {
            assert_true(isfinite(u.factor) && u.factor > 0);
            char d[128];
            ucum_describe_dimension(&u, d, sizeof(d));
        } else {
            assert_true(err.text[0] != '\0');
            assert_true(err.offset <= n);
        }
    }
}

static void test_limits(void **state)
{
    (void)state;
    char buf[UCUM_MAX_EXPR * 4];
    /* too long */
    memset(buf, 'm', sizeof(buf) - 1);
    buf[sizeof(buf) - 1] = '\0';
    parse_fails(buf, UCUM_ERR_LIMIT);
    /* exactly the limit parses as far as the grammar goes */
    tbuf b = TBUF_INIT;
    for (int i = 0; i < UCUM_MAX_EXPR / 4; i++)
        tbuf_puts(&b, i ? ".{x}" : "{xx}");
    assert_int_equal(b.len, UCUM_MAX_EXPR);
    ucum_unit u;
    ucum_error err;
    assert_int_equal(ucum_parse(b.p, &u, &err), UCUM_OK);
    tbuf_putc(&b, 'm');
    parse_fails(b.p, UCUM_ERR_LIMIT);
    /* nesting */
    tbuf_reset(&b);
    for (int i = 0; i < UCUM_MAX_DEPTH; i++)
        tbuf_putc(&b, '(');
    tbuf_putc(&b, 'm');
    for (int i = 0; i < UCUM_MAX_DEPTH; i++)
        tbuf_putc(&b, ')');
    assert_int_equal(ucum_parse(b.p, &u, &err), UCUM_OK);
    tbuf_reset(&b);
    for (int i = 0; i < 200; i++)
        tbuf_putc(&b, '(');
    parse_fails(b.p, UCUM_ERR_LIMIT);
    /* exponents and magnitudes */
    parse_fails("m100", UCUM_ERR_RANGE);
    parse_fails("m99999999999999999999999", UCUM_ERR_RANGE);
    parse_fails("s-2147483648", UCUM_ERR_RANGE);
    parse_fails("m99.m99", UCUM_ERR_RANGE);
    parse_fails("10*99.10*99.10*99.10*99", UCUM_ERR_RANGE);
    parse_fails("10*-99.10*-99.10*-99.10*-99", UCUM_ERR_RANGE);
    parse_fails("Ym99", UCUM_ERR_RANGE);
    parse_fails("0", UCUM_ERR_RANGE);
    parse_fails("0.m", UCUM_ERR_RANGE);
    tbuf_reset(&b);
    for (int i = 0; i < 250; i++)
        tbuf_putc(&b, '9');
    assert_int_equal(ucum_parse(b.p, &u, &err), UCUM_OK); /* 1e250 is finite */
    tbuf_puts(&b, ".10*99");
    parse_fails(b.p, UCUM_ERR_RANGE);
    tbuf_reset(&b);
    for (int i = 0; i < 120; i++)
        tbuf_puts(&b, "m.");
    tbuf_putc(&b, 'm');
    parse_fails(b.p, UCUM_ERR_RANGE);
    assert_int_equal(ucum_parse(NULL, &u, &err), UCUM_ERR_SYNTAX);
    tbuf_free(&b);
    /* long value text */
    tbuf out = TBUF_INIT, v = TBUF_INIT;
    bool converted;
    for (int i = 0; i < 1000; i++)
        tbuf_putc(&v, '1');
    assert_int_equal(ucum_convert_text(v.p, "g", "mg", 0, &out, &converted, &err), UCUM_ERR_VALUE);
    tbuf_free(&out);
    tbuf_free(&v);
}

static void test_strerror(void **state)
{
    (void)state;
    for (int s = UCUM_OK; s <= UCUM_ERR_VALUE; s++)
        assert_non_null(ucum_strerror(s));
    assert_string_equal(ucum_strerror(UCUM_ERR_UNKNOWN_UNIT), "unknown unit");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_valid),
        cmocka_unit_test(test_canonical_forms),
        cmocka_unit_test(test_associativity),
        cmocka_unit_test(test_required_examples),
        cmocka_unit_test(test_more_conversions),
        cmocka_unit_test(test_molar_mass),
        cmocka_unit_test(test_unknown_units),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_special_units),
        cmocka_unit_test(test_value_text),
        cmocka_unit_test(test_range_text),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_format_matches_printf),
        cmocka_unit_test(test_read_numbers),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_strerror),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
