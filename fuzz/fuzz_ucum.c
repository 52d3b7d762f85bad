/*
 * Fuzz target for UCUM units (term/ucum.h). The input is split at the first
 * two newlines into a value, a FROM unit and a TO unit (missing parts are
 * empty). Properties checked, beyond "no crash, no leak, no undefined
 * behaviour":
 *   - every error explains itself and points inside the expression;
 *   - a unit that parses is finite and positive, and converts 1 to itself
 *     as 1 (within rounding) unless it is a special unit;
 *   - the value and range helpers either convert or leave the text as it
 *     was, and never print an exponent.
 */
#include "term/ucum.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_unit(const char *expr)
{
    ucum_unit u;
    ucum_error err;
    if (ucum_parse(expr, &u, &err) != UCUM_OK) {
        if (err.text[0] == '\0' || err.offset > strlen(expr)) abort();
        return;
    }
    if (!isfinite(u.factor) || u.factor <= 0) abort();
    char d[128];
    ucum_describe_dimension(&u, d, sizeof(d));
    double out;
    if (ucum_convert_units(1, &u, &u, 0, expr, expr, &out, &err) != UCUM_OK) abort();
    if (!u.special && fabs(out - 1) > 1e-9) abort();
}

static void check_text(const char *value, const char *from, const char *to, bool range)
{
    tbuf out = TBUF_INIT;
    bool converted;
    ucum_error err;
    ucum_status st = range ? ucum_convert_range(value, from, to, 180.156, &out, &converted, &err)
                           : ucum_convert_text(value, from, to, 180.156, &out, &converted, &err);
    if (st == UCUM_OK && !converted && strcmp(tbuf_cstr(&out), value)) abort();
    if (st == UCUM_OK && converted && strpbrk(out.p, "eE")) abort();
    if (st != UCUM_OK && err.text[0] == '\0') abort();
    tbuf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    char *from = strchr(s, '\n');
    char *to = NULL;
    if (from) {
        *from++ = '\0';
        to = strchr(from, '\n');
        if (to) *to++ = '\0';
    }
    if (!from) from = s;
    if (!to) to = from;
    check_unit(from);
    check_unit(to);
    check_text(s, from, to, false);
    check_text(s, from, to, true);
    free(s);
    return 0;
}
