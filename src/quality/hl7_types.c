/*
 * hl7_types: datatype checks and date/time parsing; see hl7_types.h.
 *
 * Composite values are split on the stack into the pieces their type's
 * check reads (parts_needed(), at most MAXPARTS); pieces beyond that are
 * not looked at. Common date/time shapes take a one-pass parse. Leaf
 * values are decoded into the caller's scratch buffer only when they hold
 * the escape character, one leaf at a time.
 */
#include "quality/hl7_types.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* memchr for the short spans of HL7 values, where a call costs more than
 * the scan. */
static inline const char *scan_for(const char *p, size_t len, char ch)
{
    for (const char *end = p + len; p < end; p++)
        if (*p == ch) return p;
    return NULL;
}

#define MAXPARTS HL7_TYPE_MAXPARTS
#define SHOW 40 /* characters of a value quoted in a message */

static const char *const type_names[HL7_TYPE_COUNT_] = {
    "", "ST", "TX", "FT", "NM", "SI", "DT", "DTM", "TS", "TM", "ID", "IS",
    "CX", "XPN", "XAD", "CWE", "CE", "HD",
};

const char *hl7_type_name(hl7_type t)
{
    return (unsigned)t < HL7_TYPE_COUNT_ ? type_names[t] : "";
}

bool hl7_type_from_name(const char *name, hl7_type *out)
{
    for (int t = 1; t < HL7_TYPE_COUNT_; t++)
        if (!strcmp(type_names[t], name)) {
            *out = (hl7_type)t;
            return true;
        }
    return false;
}

bool hl7_type_is_composite(hl7_type t)
{
    return t == HL7_TYPE_TS || t >= HL7_TYPE_CX;
}

static bool fault(hl7_type_fault *f, uint32_t comp, uint32_t sub, hl7_ack_errcode code,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6), cold));
static bool fault(hl7_type_fault *f, uint32_t comp, uint32_t sub, hl7_ack_errcode code,
                  const char *fmt, ...)
{
    if (!f) return false;
    va_list ap;
    va_start(ap, fmt);
    f->comp = comp;
    f->sub = sub;
    f->code = code;
    vsnprintf(f->text, sizeof(f->text), fmt, ap);
    va_end(ap);
    return false;
}

/* printf arguments quoting at most SHOW bytes of a value. */
#define Q(s, len) (int)((len) < SHOW ? (len) : SHOW), (s)

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool all_digits(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!is_digit(s[i])) return false;
    return len > 0;
}

static int num(const char *s, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) v = v * 10 + (s[i] - '0');
    return v;
}

/* --- numbers ------------------------------------------------------------------- */

/* The value of a well-formed NM (len < 64). Up to 15 digits the mantissa
 * and 10^frac (frac <= 15) are exact doubles and one division rounds
 * correctly, so the result is strtod's; longer numbers go to strtod. */
static double nm_value(const char *s, size_t len, size_t digits)
{
    static const double pow10[16] = {1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
    if (digits <= 15) {
        size_t i = s[0] == '+' || s[0] == '-';
        uint64_t m = 0;
        int frac = -1;
        for (; i < len; i++) {
            if (s[i] == '.') {
                frac = 0;
                continue;
            }
            m = m * 10 + (uint64_t)(s[i] - '0');
            if (frac >= 0) frac++;
        }
        double v = (double)m / pow10[frac > 0 ? frac : 0];
        return s[0] == '-' ? -v : v;
    }
    char buf[64];
    memcpy(buf, s, len);
    buf[len] = '\0';
    return strtod(buf, NULL);
}

/* hl7_nm_parse() of up to 15 digits with no sign and at most one point,
 * the common shape, in one pass; false when s has another shape. */
static bool nm_simple(const char *s, size_t len, double *out)
{
    static const double pow10[16] = {1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
    if (len == 0 || len > 16) return false;
    uint64_t m = 0;
    size_t dot = len; /* position of the point */
    for (size_t i = 0; i < len; i++) {
        unsigned d = (unsigned)(unsigned char)s[i] - '0';
        if (d < 10) {
            m = m * 10 + d;
        } else if (s[i] == '.' && dot == len) {
            dot = i;
        } else {
            return false;
        }
    }
    size_t digits = dot == len ? len : len - 1, frac = dot == len ? 0 : len - 1 - dot;
    if (digits == 0 || digits > 15) return false;
    if (out) *out = (double)m / pow10[frac];
    return true;
}

bool hl7_nm_parse(const char *s, size_t len, double *out, hl7_type_fault *f)
{
    if (nm_simple(s, len, out)) return true;
    size_t i = 0, digits = 0, dots = 0;
    if (len && (s[0] == '+' || s[0] == '-')) i++;
    for (; i < len; i++) {
        if (is_digit(s[i]))
            digits++;
        else if (s[i] == '.' && dots == 0)
            dots++;
        else
            return fault(f, 0, 0, HL7_ACK_ERR_DATA_TYPE, "not a number: '%.*s'", Q(s, len));
    }
    if (digits == 0)
        return fault(f, 0, 0, HL7_ACK_ERR_DATA_TYPE, "not a number: '%.*s'", Q(s, len));
    if (len >= 64)
        return fault(f, 0, 0, HL7_ACK_ERR_DATA_TYPE, "number too long (%zu characters)", len);
    if (out) *out = nm_value(s, len, digits);
    return true;
}

/* --- dates and times ---------------------------------------------------------- */

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static bool leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int month_days(int y, int m)
{
    static const int d[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && leap(y) ? 29 : d[m - 1];
}

static int64_t epoch_at(const hl7_dtm *t, hl7_dtm_precision p, bool utc)
{
    int64_t e = days_from_civil(t->year, p >= HL7_DTM_MONTH ? t->month : 1,
                                p >= HL7_DTM_DAY ? t->day : 1) * 86400;
    if (p >= HL7_DTM_HOUR) e += t->hour * 3600;
    if (p >= HL7_DTM_MINUTE) e += t->minute * 60;
    if (p >= HL7_DTM_SECOND) e += t->second;
    if (utc && t->has_offset) e -= t->offset_min * 60;
    return e;
}

/* [+/-]HHMM at s[0..len) (len 5). */
static bool parse_offset(const char *s, size_t len, const char *all, size_t alen, hl7_dtm *out,
                         hl7_type_fault *f)
{
    if (len != 5 || !all_digits(s + 1, 4))
        return fault(f, 0, 0, HL7_ACK_ERR_DATA_TYPE,
                     "time zone offset '%.*s' is not +/-HHMM in '%.*s'", Q(s, len), Q(all, alen));
    int hh = num(s + 1, 2), mm = num(s + 3, 2);
    if (hh > 14 || mm > 59 || hh * 60 + mm > 14 * 60)
        return fault(f, 0, 0, HL7_ACK_ERR_DATA_TYPE,
                     "time zone offset %.5s out of range (-1400 to +1400) in '%.*s'", s,
                     Q(all, alen));
    out->has_offset = true;
    out->offset_min = (s[0] == '-' ? -1 : 1) * (hh * 60 + mm);
    return true;
}

/* Parses HH[MM[SS[.S{1,4}]]] at s[0..len) into out (date parts untouched). */
static bool parse_clock(const char *s, size_t len, const char *all, size_t alen, hl7_dtm *out,
                        hl7_type_fault *f)
{
    const char *dot = memchr(s, '.', len);
    size_t n = dot ? (size_t)(dot - s) : len;
    if (!all_digits(s, n) || (n != 2 && n != 4 && n != 6) || (dot && n != 6))
        return false;
    out->hour = num(s, 2);
    out->precision = HL7_DTM_HOUR;
    if (n >= 4) out->minute = num(s + 2, 2), out->precision = HL7_DTM_MINUTE;
    if (n >= 6) out->second = num(s + 4, 2), out->precision = HL7_DTM_SECOND;
    if (dot) {
        size_t fl = len - n - 1;
        if (fl < 1 || fl > 4 || !all_digits(dot + 1, fl)) return false;
        out->frac = num(dot + 1, fl);
        for (size_t k = fl; k < 4; k++) out->frac *= 10;
        out->precision = HL7_DTM_FRACTION;
    }
    if (out->hour > 23)
        return fault(f, 0, 0, HL7_ACK_ERR_DATA_TYPE, "hour %d out of range in '%.*s'", out->hour,
                     Q(all, alen));
    if (out->minute > 59)
        return fault(f, 0, 0, HL7_ACK_ERR_DATA_TYPE, "minute %d out of range in '%.*s'",
                     out->minute, Q(all, alen));
    if (out->second > 59)
        return fault(f, 0, 0, HL7_ACK_ERR_DATA_TYPE, "second %d out of range in '%.*s'",
                     out->second, Q(all, alen));
    return true;
}

/* Splits off a trailing +ZZZZ/-ZZZZ starting at or after `from`. */
static size_t offset_start(const char *s, size_t len, size_t from)
{
    for (size_t i = from; i < len; i++)
        if (s[i] == '+' || s[i] == '-') return i;
    return len;
}

static bool parse_date_part(const char *s, size_t n, const char *all, size_t alen, hl7_dtm *out,
                            hl7_type_fault *f)
{
    out->year = num(s, 4);
    out->month = out->day = 1;
    out->precision = HL7_DTM_YEAR;
    if (n >= 6) out->month = num(s + 4, 2), out->precision = HL7_DTM_MONTH;
    if (n >= 8) out->day = num(s + 6, 2), out->precision = HL7_DTM_DAY;
    if (out->month < 1 || out->month > 12)
        return fault(f, 0, 0, HL7_ACK_ERR_DATA_TYPE, "month %d out of range in '%.*s'",
                     out->month, Q(all, alen));
    if (out->day < 1 || out->day > month_days(out->year, out->month))
        return fault(f, 0, 0, HL7_ACK_ERR_DATA_TYPE,
                     "day %d out of range for %04d-%02d in '%.*s'", out->day, out->year,
                     out->month, Q(all, alen));
    return true;
}

static int two(const char *s)
{
    return (s[0] - '0') * 10 + (s[1] - '0');
}

/* The common shapes (an even number of digits, then at most +/-ZZZZ) in
 * one pass, with the same result as the full parse below; false for every
 * other shape and every value out of range, which the full parse then
 * describes. */
static bool parse_dtm_fast(const char *s, size_t len, hl7_dtm *out, bool date_only)
{
    size_t n = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    /* eight bytes at a time: a byte is a digit when its high nibble is 3
     * and adding 6 keeps it so (a carry rises only from a non-digit) */
    const uint64_t hi = 0xF0F0F0F0F0F0F0F0ull, threes = 0x3030303030303030ull;
    while (len - n >= 8) {
        uint64_t w;
        memcpy(&w, s + n, 8);
        uint64_t bad = ((w & hi) ^ threes) | (((w + 0x0606060606060606ull) & hi) ^ threes);
        if (bad) {
            n += (size_t)__builtin_ctzll(bad) >> 3;
            goto counted;
        }
        n += 8;
    }
    if (n < len && len >= 8) { /* the rest: the last eight bytes, those before n dropped */
        uint64_t w;
        memcpy(&w, s + len - 8, 8);
        uint64_t bad = ((w & hi) ^ threes) | (((w + 0x0606060606060606ull) & hi) ^ threes);
        bad >>= 8 * (8 - (len - n)); /* (digits before n carry nothing) */
        n += bad ? (size_t)__builtin_ctzll(bad) >> 3 : len - n;
        goto counted;
    }
#endif
    while (n < len && is_digit(s[n])) n++;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
counted:
#endif
    if (n < 4 || n > (date_only ? 8u : 14u) || (n & 1)) return false;
    bool zone = n < len;
    if (zone && (date_only || len - n != 5 || (s[n] != '+' && s[n] != '-') ||
                 !all_digits(s + n + 1, 4)))
        return false;
    memset(out, 0, sizeof(*out));
    out->year = two(s) * 100 + two(s + 2);
    out->month = n >= 6 ? two(s + 4) : 1;
    out->day = n >= 8 ? two(s + 6) : 1;
    if (n >= 10) out->hour = two(s + 8);
    if (n >= 12) out->minute = two(s + 10);
    if (n >= 14) out->second = two(s + 12);
    out->precision = (hl7_dtm_precision)(HL7_DTM_YEAR + (n - 4) / 2);
    if (out->month < 1 || out->month > 12 || out->day < 1 ||
        out->day > month_days(out->year, out->month) || out->hour > 23 || out->minute > 59 ||
        out->second > 59)
        return false;
    if (zone) {
        int hh = two(s + n + 1), mm = two(s + n + 3);
        if (hh > 14 || mm > 59 || hh * 60 + mm > 14 * 60) return false;
        out->has_offset = true;
        out->offset_min = (s[n] == '-' ? -1 : 1) * (hh * 60 + mm);
    }
    out->epoch = epoch_at(out, HL7_DTM_SECOND, true);
    return true;
}

static bool parse_dtm(const char *s, size_t len, hl7_dtm *out, bool date_only, hl7_type_fault *f)
{
    if (parse_dtm_fast(s, len, out, date_only)) return true;
    static const char shape_dtm[] = "YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]";
    const char *shape = date_only ? "YYYY[MM[DD]]" : shape_dtm;
    memset(out, 0, sizeof(*out));
    size_t k = offset_start(s, len, 4);
    const char *dot = memchr(s, '.', k);
    size_t n = dot ? (size_t)(dot - s) : k;
    bool shape_ok = len >= 4 && all_digits(s, n) && (n == 4 || n == 6 || n == 8 || n == 10 ||
                                                     n == 12 || n == 14);
    if (date_only && (n > 8 || dot || k < len)) shape_ok = false;
    if (dot && n != 14) shape_ok = false;
    for (size_t i = k + 1; i < len; i++) /* "2024-06-01" is no offset */
        if (!is_digit(s[i])) shape_ok = false;
    if (!shape_ok)
        return fault(f, 0, 0, HL7_ACK_ERR_DATA_TYPE, "not a %s (%s): '%.*s'",
                     date_only ? "date" : "date/time", shape, Q(s, len));
    if (!parse_date_part(s, n, s, len, out, f)) return false;
    if (k > 8) {
        hl7_dtm_precision p = out->precision;
        if (!parse_clock(s + 8, k - 8, s, len, out, f)) {
            if (f && f->text[0] && out->precision != p) return false;
            return fault(f, 0, 0, HL7_ACK_ERR_DATA_TYPE, "not a date/time (%s): '%.*s'", shape,
                         Q(s, len));
        }
    }
    if (k < len && !parse_offset(s + k, len - k, s, len, out, f)) return false;
    out->epoch = epoch_at(out, HL7_DTM_SECOND, true);
    return true;
}

bool hl7_dtm_parse(const char *s, size_t len, hl7_dtm *out, hl7_type_fault *f)
{
    if (f) f->text[0] = '\0';
    return parse_dtm(s, len, out, false, f);
}

bool hl7_dt_parse(const char *s, size_t len, hl7_dtm *out, hl7_type_fault *f)
{
    if (f) f->text[0] = '\0';
    return parse_dtm(s, len, out, true, f);
}

bool hl7_tm_parse(const char *s, size_t len, hl7_dtm *out, hl7_type_fault *f)
{
    memset(out, 0, sizeof(*out));
    if (f) f->text[0] = '\0';
    size_t k = offset_start(s, len, 0);
    if (!parse_clock(s, k, s, len, out, f)) {
        if (f && f->text[0]) return false;
        return fault(f, 0, 0, HL7_ACK_ERR_DATA_TYPE,
                     "not a time (HH[MM[SS[.S[S[S[S]]]]]][+/-ZZZZ]): '%.*s'", Q(s, len));
    }
    if (k < len && !parse_offset(s + k, len - k, s, len, out, f)) return false;
    out->epoch = out->hour * 3600 + out->minute * 60 + out->second -
                 (out->has_offset ? out->offset_min * 60 : 0);
    return true;
}

/* The civil date of day z since 1970-01-01 (the inverse of
 * days_from_civil(); what gmtime_r() finds, without its locks). */
static void civil_from_days(int64_t z, int *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

void hl7_dtm_from_time(time_t t, int offset_min, hl7_dtm *out)
{
    memset(out, 0, sizeof(*out));
    time_t local = t + (time_t)offset_min * 60;
    /* years 0 to 9999 by arithmetic, beyond by gmtime_r() */
    if (local >= (time_t)-62167219200 && local <= (time_t)253402300799) {
        int64_t days = (int64_t)local / 86400, secs = (int64_t)local % 86400;
        if (secs < 0) secs += 86400, days--;
        civil_from_days(days, &out->year, &out->month, &out->day);
        out->hour = (int)(secs / 3600);
        out->minute = (int)(secs / 60 % 60);
        out->second = (int)(secs % 60);
    } else {
        struct tm tm;
        gmtime_r(&local, &tm);
        out->year = tm.tm_year + 1900;
        out->month = tm.tm_mon + 1;
        out->day = tm.tm_mday;
        out->hour = tm.tm_hour;
        out->minute = tm.tm_min;
        out->second = tm.tm_sec;
    }
    out->precision = HL7_DTM_SECOND;
    out->has_offset = true;
    out->offset_min = offset_min;
    out->epoch = (int64_t)t;
}

/* Parts down to precision p compared in order. Without offsets to apply
 * this orders as epoch_at(p) does (every part is in its range, so a later
 * day always has a later epoch) and costs no calendar arithmetic. */
static int compare_parts(const hl7_dtm *a, const hl7_dtm *b, hl7_dtm_precision p)
{
    const int pa[6] = {a->year, a->month, a->day, a->hour, a->minute, a->second};
    const int pb[6] = {b->year, b->month, b->day, b->hour, b->minute, b->second};
    int upto = p >= HL7_DTM_SECOND ? 6 : p > HL7_DTM_YEAR ? (int)p : 1; /* YEAR is 1 */
    for (int i = 0; i < upto; i++)
        if (pa[i] != pb[i]) return pa[i] < pb[i] ? -1 : 1;
    return 0;
}

int hl7_dtm_compare(const hl7_dtm *a, const hl7_dtm *b)
{
    hl7_dtm_precision p = a->precision < b->precision ? a->precision : b->precision;
    bool utc = a->has_offset && b->has_offset && p > HL7_DTM_DAY;
    if (!utc) {
        int c = compare_parts(a, b, p);
        if (c) return c;
        if (p == HL7_DTM_FRACTION && a->frac != b->frac) return a->frac < b->frac ? -1 : 1;
        return 0;
    }
    int64_t x = epoch_at(a, p, utc), y = epoch_at(b, p, utc);
    if (x != y) return x < y ? -1 : 1;
    if (p == HL7_DTM_FRACTION && a->frac != b->frac) return a->frac < b->frac ? -1 : 1;
    return 0;
}

int hl7_dtm_age_years(const hl7_dtm *birth, const hl7_dtm *at)
{
    int years = at->year - birth->year;
    hl7_dtm_precision p = birth->precision < at->precision ? birth->precision : at->precision;
    if (p >= HL7_DTM_MONTH) {
        int md_at = at->month * 100 + (p >= HL7_DTM_DAY ? at->day : 1);
        int md_birth = birth->month * 100 + (p >= HL7_DTM_DAY ? birth->day : 1);
        if (md_at < md_birth) years--;
    }
    return years;
}

/* --- primitives ----------------------------------------------------------------- */

bool hl7_type_check_length(const char *s, size_t len, uint32_t max, hl7_type_fault *f)
{
    size_t chars = 0;
    for (size_t i = 0; i < len; i++) chars += ((unsigned char)s[i] & 0xC0) != 0x80;
    if (max && chars > max)
        return fault(f, 0, 0, HL7_ACK_ERR_VALUE_TOO_LONG, "%zu characters, at most %u allowed",
                     chars, max);
    return true;
}

static bool check_table(const char *s, size_t len, const hl7_table *table, uint32_t comp,
                        uint32_t sub, hl7_type_fault *f)
{
    if (!table || len == 0 || hl7_table_has(table, s, len)) return true;
    return fault(f, comp, sub, HL7_ACK_ERR_TABLE_VALUE, "'%.*s' is not in table %s (%s)",
                 Q(s, len), table->name, table->title);
}

bool hl7_type_check_value(hl7_type t, const char *s, size_t len, const hl7_table *table,
                          hl7_type_fault *f)
{
    hl7_dtm dtm;
    if (len == 0) return true;
    switch (t) {
    case HL7_TYPE_NM: return hl7_nm_parse(s, len, NULL, f);
    case HL7_TYPE_SI:
        if (!all_digits(s, len) || len > 4 || num(s, len) == 0)
            return fault(f, 0, 0, HL7_ACK_ERR_DATA_TYPE,
                         "not a sequence ID (a positive integer of at most 4 digits): '%.*s'",
                         Q(s, len));
        return true;
    case HL7_TYPE_DT: return hl7_dt_parse(s, len, &dtm, f);
    case HL7_TYPE_DTM:
    case HL7_TYPE_TS: return hl7_dtm_parse(s, len, &dtm, f);
    case HL7_TYPE_TM: return hl7_tm_parse(s, len, &dtm, f);
    case HL7_TYPE_ID:
    case HL7_TYPE_IS:
    case HL7_TYPE_CWE:
    case HL7_TYPE_CE: return check_table(s, len, table, 0, 0, f);
    default: return true;
    }
}

/* --- composites ------------------------------------------------------------------- */

/* Splits into out[0..want) (want <= MAXPARTS), the pieces past the last
 * one empty; returns the number of pieces, counted up to want + 1 (enough
 * to tell a composite from a single value). */
static size_t split(const char *p, size_t len, char ch, hl7_span *out, size_t want)
{
    size_t n = 0;
    const char *end = p + len;
    if (ch == '\0') {
        out[n++] = (hl7_span){p, len};
    } else {
        for (;;) {
            if (n == want) { /* a separator was seen: one more piece */
                n++;
                break;
            }
            const char *q = scan_for(p, (size_t)(end - p), ch);
            out[n++] = (hl7_span){p, (size_t)((q ? q : end) - p)};
            if (!q) break;
            p = q + 1;
        }
    }
    for (size_t i = n; i < want; i++) out[i] = (hl7_span){"", 0};
    return n;
}

/* Components a check of type t looks at. */
static size_t parts_needed(hl7_type t)
{
    switch (t) {
    case HL7_TYPE_CX: return 5;
    case HL7_TYPE_CWE:
    case HL7_TYPE_CE: return 6;
    case HL7_TYPE_XAD: return 9;
    case HL7_TYPE_HD: return 3;
    case HL7_TYPE_XPN: return MAXPARTS;
    default: return 1;
    }
}

size_t hl7_type_parts(hl7_type t)
{
    return parts_needed(t);
}

/* Leaf value decoded: into c->scratch when it holds the escape character. */
static hl7_span leaf(const hl7_type_ctx *c, hl7_span v)
{
    if (!c->scratch || !c->d || !c->d->esc || !scan_for(v.p, v.len, c->d->esc)) return v;
    tbuf_reset(c->scratch);
    hl7_unescape(c->d, c->cs, v.p, v.len, c->scratch);
    return (hl7_span){c->scratch->p ? c->scratch->p : "", c->scratch->len};
}

static const hl7_table *table_of(const hl7_type_ctx *c, const char *name)
{
    return c->tables ? hl7_tables_find(c->tables, name) : NULL;
}

void hl7_type_tables_find(const hl7_tables *tables, hl7_type_tables *out)
{
    hl7_type_ctx c = {NULL, HL7_CS_UTF8, tables, NULL, NULL};
    out->id_type = table_of(&c, "0061");
    out->cx_type = table_of(&c, "0203");
    out->hd_type = table_of(&c, "0301");
}

/* Composite table `member` of hl7_type_tables, named `name`. */
#define COMPOSITE_TABLE(c, member, name) ((c)->found ? (c)->found->member : table_of((c), (name)))

static bool is_oid(const char *s, size_t len)
{
    /* digits and dots; arcs not empty, none of several digits starting with 0; a dot */
    size_t arc = 0; /* where the arc in hand starts */
    bool dot = false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.') {
            if (i == arc) return false;
            dot = true;
            arc = i + 1;
        } else if ((unsigned)(c - '0') > 9) {
            return false;
        } else if (c == '0' && i == arc && i + 1 < len && s[i + 1] != '.') {
            return false; /* an arc of several digits starting with 0 */
        }
    }
    return dot && arc < len;
}

static bool is_uuid(const char *s, size_t len)
{
    if (len != 36) return false;
    for (size_t i = 0; i < len; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        char ch = s[i];
        bool hex = is_digit(ch) || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
        if (dash ? ch != '-' : !hex) return false;
    }
    return true;
}

/* HD in pieces p[0..2]; comp/sub locate it for the fault: an HD field has
 * its parts in components (sub 0), one inside CX-4 in subcomponents. */
static bool check_hd(const hl7_type_ctx *c, const hl7_span *p, uint32_t comp, bool in_sub,
                     hl7_type_fault *f)
{
#define AT(k) (in_sub ? comp : (k)), (in_sub ? (k) : 0)
    if (!p[0].len && !p[1].len && !p[2].len) return true;
    if (!p[0].len && !p[1].len)
        return fault(f, AT(1), HL7_ACK_ERR_REQUIRED_FIELD,
                     "namespace ID (HD-1) or universal ID (HD-2) required");
    if (p[1].len && !p[2].len)
        return fault(f, AT(3), HL7_ACK_ERR_REQUIRED_FIELD,
                     "universal ID type (HD-3) missing for universal ID '%.*s'",
                     Q(p[1].p, p[1].len));
    if (!p[1].len && p[2].len)
        return fault(f, AT(2), HL7_ACK_ERR_REQUIRED_FIELD,
                     "universal ID (HD-2) missing for universal ID type '%.*s'",
                     Q(p[2].p, p[2].len));
    if (!p[2].len) return true;
    hl7_span type = p[2], id = p[1];
    if (!check_table(type.p, type.len, COMPOSITE_TABLE(c, hd_type, "0301"), AT(3), f)) return false;
    if (type.len == 3 && !memcmp(type.p, "ISO", 3) && !is_oid(id.p, id.len))
        return fault(f, AT(2), HL7_ACK_ERR_DATA_TYPE,
                     "universal ID '%.*s' of type ISO is not an OID (digits and dots, e.g. "
                     "2.16.840.1.113883)",
                     Q(id.p, id.len));
    if (((type.len == 4 && !memcmp(type.p, "UUID", 4)) ||
         (type.len == 4 && !memcmp(type.p, "GUID", 4))) &&
        !is_uuid(id.p, id.len))
        return fault(f, AT(2), HL7_ACK_ERR_DATA_TYPE,
                     "universal ID '%.*s' of type %.4s is not a UUID", Q(id.p, id.len), type.p);
    return true;
#undef AT
}

/* Luhn sum over digits s[0..len) as payload (check digit to be appended). */
static int luhn_digit(const char *prefix, const char *s, size_t len)
{
    int sum = 0;
    size_t plen = strlen(prefix), n = plen + len;
    for (size_t i = 0; i < n; i++) {
        char ch = i < plen ? prefix[i] : s[i - plen];
        int d = ch - '0';
        if ((n - i) % 2 == 1) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
        sum += d;
    }
    return (10 - sum % 10) % 10;
}

/* Mod 11 with weights 2..7 from the right; -1 when no digit fits. */
static int mod11_digit(const char *s, size_t len)
{
    int sum = 0, w = 2;
    for (size_t i = len; i-- > 0;) {
        sum += (s[i] - '0') * w;
        w = w == 7 ? 2 : w + 1;
    }
    int d = 11 - sum % 11;
    return d == 11 ? 0 : d == 10 ? -1 : d;
}

static bool check_digit(const hl7_span *p, hl7_type_fault *f)
{
    hl7_span id = p[0], cd = p[1], sc = p[2];
    bool m10 = sc.len == 3 && !memcmp(sc.p, "M10", 3), m11 = sc.len == 3 && !memcmp(sc.p, "M11", 3);
    bool npi = sc.len == 3 && !memcmp(sc.p, "NPI", 3);
    if (!m10 && !m11 && !npi) return true;
    if (!cd.len) {
        if (id.len < 2)
            return fault(f, 1, 0, HL7_ACK_ERR_DATA_TYPE,
                         "ID '%.*s' too short to carry a %.3s check digit", Q(id.p, id.len), sc.p);
        cd = (hl7_span){id.p + id.len - 1, 1};
        id.len--;
    }
    if (!all_digits(id.p, id.len) || cd.len != 1 || !is_digit(cd.p[0]))
        return fault(f, cd.p == p[1].p ? 2 : 1, 0, HL7_ACK_ERR_DATA_TYPE,
                     "ID '%.*s' with check digit '%.*s' is not numeric, as %.3s needs",
                     Q(id.p, id.len), Q(cd.p, cd.len), sc.p);
    if (npi && id.len != 9)
        return fault(f, 1, 0, HL7_ACK_ERR_DATA_TYPE, "NPI '%.*s' does not have 10 digits",
                     Q(p[0].p, p[0].len));
    int want = m11 ? mod11_digit(id.p, id.len) : luhn_digit(npi ? "80840" : "", id.p, id.len);
    if (want < 0)
        return fault(f, 1, 0, HL7_ACK_ERR_DATA_TYPE,
                     "ID '%.*s' cannot carry an M11 check digit (remainder 1)", Q(id.p, id.len));
    if (cd.p[0] - '0' != want)
        return fault(f, p[1].len ? 2 : 1, 0, HL7_ACK_ERR_DATA_TYPE,
                     "check digit %c does not match ID '%.*s' (%.3s gives %d)", cd.p[0],
                     Q(id.p, id.len), sc.p, want);
    return true;
}

static bool check_cx(const hl7_type_ctx *c, const hl7_span *p, hl7_type_fault *f)
{
    if (!p[0].len)
        return fault(f, 1, 0, HL7_ACK_ERR_REQUIRED_FIELD, "ID number (CX-1) missing");
    if (p[2].len) {
        if (!check_table(p[2].p, p[2].len, COMPOSITE_TABLE(c, id_type, "0061"), 3, 0, f)) return false;
        if (!check_digit(p, f)) return false;
    }
    if (p[3].len) {
        hl7_span hd[MAXPARTS];
        split(p[3].p, p[3].len, c->d ? c->d->sub : '&', hd, parts_needed(HL7_TYPE_HD));
        if (!check_hd(c, hd, 4, true, f)) return false;
    }
    hl7_span type = leaf(c, p[4]);
    return check_table(type.p, type.len, COMPOSITE_TABLE(c, cx_type, "0203"), 5, 0, f);
}

static bool check_xpn(const hl7_span *p, hl7_type_fault *f)
{
    for (size_t i = 1; i < MAXPARTS; i++)
        if (p[i].len && !p[0].len)
            return fault(f, 1, 0, HL7_ACK_ERR_REQUIRED_FIELD, "family name (XPN-1) missing");
    return true;
}

static bool is_alpha(char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z');
}

static bool check_xad(const hl7_span *p, size_t n, hl7_type_fault *f)
{
    bool any = false;
    for (size_t i = 0; i < 9; i++) any |= p[i].len > 0;
    if (!any && n > 1)
        return fault(f, 0, 0, HL7_ACK_ERR_DATA_TYPE,
                     "address has no street, city, state, postal code or country");
    hl7_span cc = p[5];
    if (cc.len && (cc.len != 3 || !is_alpha(cc.p[0]) || !is_alpha(cc.p[1]) || !is_alpha(cc.p[2])))
        return fault(f, 6, 0, HL7_ACK_ERR_DATA_TYPE,
                     "country '%.*s' is not an ISO 3166 three-letter code (table 0399, e.g. USA)",
                     Q(cc.p, cc.len));
    return true;
}

static bool is_code_system(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (!(is_alpha(ch) || is_digit(ch) || ch == '-' || ch == '_' || ch == '.' || ch == ':'))
            return false;
    }
    return true;
}

static bool check_cwe(hl7_type t, const hl7_type_ctx *c, const hl7_span *p, const hl7_table *table,
                      hl7_type_fault *f)
{
    const char *tn = hl7_type_name(t);
    if (!p[0].len && !p[1].len && !p[3].len && !p[4].len)
        return fault(f, 1, 0, HL7_ACK_ERR_REQUIRED_FIELD,
                     "identifier (%s-1) or text (%s-2) required", tn, tn);
    for (uint32_t k = 0; k <= 3; k += 3) {
        if (p[k + 2].len && !p[k].len)
            return fault(f, k + 1, 0, HL7_ACK_ERR_REQUIRED_FIELD,
                         "coding system '%.*s' (%s-%u) given without an identifier (%s-%u)",
                         Q(p[k + 2].p, p[k + 2].len), tn, k + 3, tn, k + 1);
        if (p[k + 2].len && !is_code_system(p[k + 2].p, p[k + 2].len))
            return fault(f, k + 3, 0, HL7_ACK_ERR_DATA_TYPE,
                         "coding system '%.*s' is not a code (letters, digits, '-', '_', '.')",
                         Q(p[k + 2].p, p[k + 2].len));
    }
    if (!table) return true; /* nothing to decode the identifier for */
    hl7_span id = leaf(c, p[0]);
    return check_table(id.p, id.len, table, 1, 0, f);
}

bool hl7_type_check_split(hl7_type t, const hl7_type_ctx *c, const hl7_span *p, size_t n,
                          const hl7_table *table, hl7_type_fault *f)
{
    bool empty = n == 1 && p[0].len == 0;
    switch (t) {
    case HL7_TYPE_TS: {
        hl7_span v = leaf(c, p[0]);
        if (!hl7_type_check_value(HL7_TYPE_DTM, v.p, v.len, NULL, f)) {
            if (f && n > 1) f->comp = 1;
            return false;
        }
        return true;
    }
    case HL7_TYPE_CX:
        return empty || check_cx(c, p, f);
    case HL7_TYPE_XPN: return check_xpn(p, f);
    case HL7_TYPE_XAD:
        return empty || check_xad(p, n, f);
    case HL7_TYPE_CWE:
    case HL7_TYPE_CE:
        return empty || check_cwe(t, c, p, table, f);
    case HL7_TYPE_HD: return check_hd(c, p, 0, false, f);
    default: {
        hl7_span v = leaf(c, p[0]);
        if (!hl7_type_check_value(t, v.p, v.len, table, f)) {
            if (f && n > 1 && f->comp == 0) f->comp = 1;
            return false;
        }
        return true;
    }
    }
}

bool hl7_type_check_raw(hl7_type t, const hl7_type_ctx *c, const char *raw, size_t len,
                        const hl7_table *table, hl7_type_fault *f)
{
    hl7_span p[MAXPARTS];
    char comp = c->d ? c->d->comp : '^';
    size_t n = split(raw, len, comp, p, parts_needed(t));
    return hl7_type_check_split(t, c, p, n, table, f);
}
