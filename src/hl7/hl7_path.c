/*
 * hl7_path: the one path syntax of Tern, SEG[n]-F[r].C.S.
 *
 * SEG is a three-character segment id; [n] the 1-based occurrence of that
 * segment; F the field; [r] the 1-based repetition; C and S the component
 * and subcomponent. Everything after SEG is optional, but each part needs the
 * one before it: "PID", "PID-5", "PID-5.1", "PID-3[2].1", "OBX[3]-5",
 * "MSH-9.2", "ZPD-1.2.3". Numbers are 1-based and at most 99999.
 */
#include "hl7/hl7_int.h"

#include <stdio.h>

static bool read_num(const char *s, size_t *i, uint32_t *out)
{
    size_t k = *i;
    uint32_t v = 0;
    while (s[k] >= '0' && s[k] <= '9' && k - *i < 6) v = v * 10 + (uint32_t)(s[k++] - '0');
    if (k == *i || v == 0 || v > 99999 || (s[k] >= '0' && s[k] <= '9')) return false;
    *i = k;
    *out = v;
    return true;
}

static hl7_status bad(hl7_error *err, const char *s, size_t at, const char *what)
{
    return hl7_fail(err, HL7_ERR_PATH, at,
                    "path '%s': %s at character %zu (the syntax is SEG[n]-F[r].C.S, "
                    "e.g. PID-3[2].1)",
                    s, what, at + 1);
}

static bool bracket(const char *s, size_t *i, uint32_t *out)
{
    if (s[*i] != '[') return true;
    size_t k = *i + 1;
    if (!read_num(s, &k, out) || s[k] != ']') return false;
    *i = k + 1;
    return true;
}

hl7_status hl7_path_parse(const char *s, hl7_path *p, hl7_error *err)
{
    memset(p, 0, sizeof(*p));
    p->seg_occ = 1;
    p->rep = 1;
    size_t i = 0;
    for (; i < 3; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
            return bad(err, s, i, "a segment id is three upper-case letters or digits");
        p->seg[i] = c;
    }
    if (!bracket(s, &i, &p->seg_occ))
        return bad(err, s, i, "a segment occurrence is a number from 1 in brackets");
    if (s[i] == '\0') return HL7_OK;
    if (s[i] != '-') return bad(err, s, i, "expected '-' and a field number");
    i++;
    if (!read_num(s, &i, &p->field)) return bad(err, s, i, "expected a field number from 1");
    if (!bracket(s, &i, &p->rep))
        return bad(err, s, i, "a repetition is a number from 1 in brackets");
    if (s[i] == '\0') return HL7_OK;
    if (s[i] != '.') return bad(err, s, i, "expected '.' and a component number");
    i++;
    if (!read_num(s, &i, &p->comp)) return bad(err, s, i, "expected a component number from 1");
    if (s[i] == '\0') return HL7_OK;
    if (s[i] != '.') return bad(err, s, i, "expected '.' and a subcomponent number");
    i++;
    if (!read_num(s, &i, &p->sub)) return bad(err, s, i, "expected a subcomponent number from 1");
    if (s[i] != '\0') return bad(err, s, i, "unexpected text after the subcomponent");
    return HL7_OK;
}

char *hl7_path_format(const hl7_path *p, char *buf, size_t size)
{
    int n = snprintf(buf, size, "%.3s", p->seg);
    if (p->seg_occ > 1 && n >= 0 && (size_t)n < size)
        n += snprintf(buf + n, size - (size_t)n, "[%u]", p->seg_occ);
    if (p->field && n >= 0 && (size_t)n < size) {
        n += snprintf(buf + n, size - (size_t)n, "-%u", p->field);
        if (p->rep > 1 && (size_t)n < size) n += snprintf(buf + n, size - (size_t)n, "[%u]", p->rep);
        if (p->comp && (size_t)n < size) n += snprintf(buf + n, size - (size_t)n, ".%u", p->comp);
        if (p->comp && p->sub && (size_t)n < size)
            n += snprintf(buf + n, size - (size_t)n, ".%u", p->sub);
    }
    return buf;
}
