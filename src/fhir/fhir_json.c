/*
 * fhir_json: compact JSON writer for jansson trees (see fhir_json.h).
 *
 * Mirrors jansson 2.14's dump rules so the output is interchangeable:
 * objects in insertion order, "," and ":" without spaces, strings with
 * only '"', '\\' and control characters escaped (\b \f \n \r \t, else
 * \u00XX; '/' and non-ASCII UTF-8 kept as they are), integers in decimal,
 * reals with "%.*g" plus ".0" when the text would read as an integer and
 * no '+' or leading zeros in the exponent.
 */
#include "fhir/fhir_json.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* Characters written as they are: printable ASCII but '"' and '\\', and
 * every byte >= 0x80 (UTF-8, already validated by jansson). */
static bool plain(unsigned char ch)
{
    return ch >= 0x20 && ch != '"' && ch != '\\';
}

static void write_string(const char *s, size_t len, tbuf *out)
{
    tbuf_grow(out, len + 2);
    tbuf_putc(out, '"');
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (plain(ch)) continue;
        tbuf_put(out, s + start, i - start);
        start = i + 1;
        switch (ch) {
        case '"':
            tbuf_put(out, "\\\"", 2);
            break;
        case '\\':
            tbuf_put(out, "\\\\", 2);
            break;
        case '\b':
            tbuf_put(out, "\\b", 2);
            break;
        case '\f':
            tbuf_put(out, "\\f", 2);
            break;
        case '\n':
            tbuf_put(out, "\\n", 2);
            break;
        case '\r':
            tbuf_put(out, "\\r", 2);
            break;
        case '\t':
            tbuf_put(out, "\\t", 2);
            break;
        default:
            tbuf_printf(out, "\\u%04X", ch);
        }
    }
    tbuf_put(out, s + start, len - start);
    tbuf_putc(out, '"');
}

static void write_integer(json_int_t v, tbuf *out)
{
    char buf[24];
    char *p = buf + sizeof buf;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) *--p = '-';
    tbuf_put(out, p, (size_t)(buf + sizeof buf - p));
}

/* jansson's jsonp_dtostr: "%.*g", ".0" when neither '.' nor 'e', exponent
 * without '+' and leading zeros. */
static void write_real(double v, int precision, tbuf *out)
{
    char buf[64];
    int n = snprintf(buf, sizeof buf, "%.*g", precision, v);
    if (n < 0 || (size_t)n >= sizeof buf) return;
    char *e = strchr(buf, 'e');
    if (!strchr(buf, '.') && !e) {
        memcpy(buf + n, ".0", 3);
        n += 2;
    }
    if (e) {
        char *p = e + 1, *q = p;
        if (*q == '-')
            q++, p++;
        else if (*q == '+')
            q++;
        while (*q == '0' && q[1])
            q++;
        memmove(p, q, strlen(q) + 1);
        n = (int)strlen(buf);
    }
    tbuf_put(out, buf, (size_t)n);
}

static void write_value(const json_t *j, int precision, tbuf *out)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        tbuf_putc(out, '{');
        bool first = true;
        for (void *it = json_object_iter((json_t *)j); it;
             it = json_object_iter_next((json_t *)j, it)) {
            if (!first) tbuf_putc(out, ',');
            first = false;
            const char *key = json_object_iter_key(it);
            write_string(key, strlen(key), out);
            tbuf_putc(out, ':');
            write_value(json_object_iter_value(it), precision, out);
        }
        tbuf_putc(out, '}');
        break;
    }
    case JSON_ARRAY: {
        tbuf_putc(out, '[');
        size_t n = json_array_size(j);
        for (size_t i = 0; i < n; i++) {
            if (i) tbuf_putc(out, ',');
            write_value(json_array_get(j, i), precision, out);
        }
        tbuf_putc(out, ']');
        break;
    }
    case JSON_STRING:
        write_string(json_string_value(j), json_string_length(j), out);
        break;
    case JSON_INTEGER:
        write_integer(json_integer_value(j), out);
        break;
    case JSON_REAL:
        write_real(json_real_value(j), precision, out);
        break;
    case JSON_TRUE:
        tbuf_put(out, "true", 4);
        break;
    case JSON_FALSE:
        tbuf_put(out, "false", 5);
        break;
    case JSON_NULL:
        tbuf_put(out, "null", 4);
        break;
    }
}

void fhir_json_write(const json_t *j, int real_precision, tbuf *out)
{
    if (real_precision <= 0 || real_precision > 17) real_precision = 17;
    write_value(j, real_precision, out);
}
