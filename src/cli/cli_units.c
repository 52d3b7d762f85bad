/*
 * cli_units: `tern units VALUE FROM TO [--mw G/MOL] [--range]` converts a
 * value (or a reference range) between UCUM units with the same rules the
 * engine applies to OBX results (term/ucum.h), so an analyst can check a
 * conversion by hand.
 *
 * Arguments are read by a small loop rather than getopt because VALUE may be
 * negative ("-40"), which getopt would take for an option; anything that
 * starts with '-' and a digit or '.' is a value.
 */
#include "cli/cli.h"

#include "term/ucum.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char units_usage[] =
    "usage: tern units [options] VALUE FROM TO\n"
    "\n"
    "Converts VALUE from the UCUM unit FROM to the unit TO and prints the result\n"
    "and TO (\"5.55 mmol/L\"). Units are UCUM case-sensitive codes: mg/dL, mmol/L,\n"
    "10*9/L, /uL, mm[Hg], Cel, [degF], [lb_av], {cells}/uL, ... (docs/units.md).\n"
    "VALUE is a number with an optional comparator (5.2, <5, >=1.2E3); the result\n"
    "keeps the comparator and the value's significant digits (at least 3).\n"
    "\n"
    "options:\n"
    "  --mw G/MOL     the analyte's molar mass in g/mol, to convert between mass\n"
    "                 and amount of substance (mg/dL <-> mmol/L).\n"
    "  --range        VALUE is a reference range: 3.5-5.0, -1.0--0.5, <5, >10.\n"
    "  -h, --help     show this help.\n"
    "\n"
    "examples:\n"
    "  tern units 100 mg/dL mmol/L --mw 180.156     5.55 mmol/L (glucose)\n"
    "  tern units 98.6 [degF] Cel                   37.0 Cel\n"
    "  tern units --range 3.5-5.0 mmol/L mg/dL --mw 180.156\n"
    "\n"
    "Exit codes: 0 ok, 1 a unit is unknown or the units are not commensurable,\n"
    "2 usage (unknown option, missing argument, VALUE or --mw not a number).\n";

typedef struct units_args {
    const char *pos[3];
    int npos;
    double mw;
    bool range;
} units_args;

static bool looks_numeric(const char *s)
{
    return s[0] == '-' && ((s[1] >= '0' && s[1] <= '9') || s[1] == '.');
}

static int parse_mw(const char *s, double *mw)
{
    char *end;
    *mw = strtod(s, &end);
    if (end == s || *end || !isfinite(*mw) || *mw <= 0)
        return cli_usage_error("units",
                               "--mw '%s': expected a molar mass in g/mol, a positive "
                               "number such as 180.156",
                               s);
    return CLI_OK;
}

static int add_positional(units_args *a, const char *s)
{
    if (a->npos == 3)
        return cli_usage_error("units", "takes VALUE FROM TO; '%s' is one argument too many", s);
    a->pos[a->npos++] = s;
    return CLI_OK;
}

/* Returns CLI_OK, or the exit code to stop with (help printed: -1). */
static int parse_args(int argc, char **argv, units_args *a)
{
    bool only_positional = false;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        int rc = CLI_OK;
        if (only_positional || s[0] != '-' || s[1] == '\0' || looks_numeric(s)) {
            rc = add_positional(a, s);
        } else if (!strcmp(s, "--")) {
            only_positional = true;
        } else if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
            fputs(units_usage, stdout);
            return -1;
        } else if (!strcmp(s, "--range")) {
            a->range = true;
        } else if (!strncmp(s, "--mw=", 5)) {
            rc = parse_mw(s + 5, &a->mw);
        } else if (!strcmp(s, "--mw")) {
            if (i + 1 == argc) return cli_usage_error("units", "option '--mw' needs a value");
            rc = parse_mw(argv[++i], &a->mw);
        } else {
            rc = cli_usage_error("units", "unknown option '%s'", s);
        }
        if (rc != CLI_OK) return rc;
    }
    if (a->npos < 3)
        return cli_usage_error("units", "needs VALUE FROM TO (e.g. tern units 100 mg/dL g/L)");
    return CLI_OK;
}

int cli_units(int argc, char **argv)
{
    units_args a = {0};
    int rc = parse_args(argc, argv, &a);
    if (rc != CLI_OK) return rc < 0 ? CLI_OK : rc;
    const char *value = a.pos[0], *from = a.pos[1], *to = a.pos[2];
    tbuf out = TBUF_INIT;
    bool converted;
    ucum_error err;
    ucum_status st = a.range ? ucum_convert_range(value, from, to, a.mw, &out, &converted, &err)
                             : ucum_convert_text(value, from, to, a.mw, &out, &converted, &err);
    if (st != UCUM_OK) {
        fprintf(stderr, "tern units: %s%s\n", err.text,
                st == UCUM_ERR_NEEDS_MOLAR_MASS ? " (--mw G/MOL)" : "");
        rc = CLI_INVALID;
    } else if (!converted) {
        rc = cli_usage_error("units",
                             a.range ? "'%s' is not a range (LOW-HIGH, <X, >X or a number)"
                                     : "'%s' is not a number (optionally after <, >, <=, >=)",
                             value);
    } else {
        printf("%s %s\n", out.p, to);
    }
    tbuf_free(&out);
    return rc;
}
