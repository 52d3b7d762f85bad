/*
 * hl7_ack: building ACK messages (see hl7_ack.h for the contract and
 * docs/hl7-acks.md for the behaviour in HL7 terms).
 *
 * Both builders work in two steps. First the parts of the original that an
 * ACK echoes are gathered into an ack_src: wire spans of MSH-3..18, the
 * delimiters, the declared character set and the acknowledgement mode. For a
 * parsed message they come from hl7_raw(); for input that did not parse they
 * are salvaged from the first line, and a span is kept only if it is short
 * and free of control characters. Then one writer renders MSH, MSA and the
 * ERR segments from an ack_src, so a NAK and an ACK cannot drift apart.
 *
 * The writer appends wire text to the caller's tbuf directly instead of
 * building an hl7_msg: an ACK is small, is sent for every inbound message,
 * and needs no index. It only ever writes separators before a value, so
 * trailing empty fields and components never appear. Every byte it writes
 * is either a delimiter it chose, an echoed span with control characters
 * escaped, or caller text passed through put_text (converted to the declared
 * character set, delimiters escaped with hl7_escape, control characters
 * written as \Xhh\): nothing from outside can add a segment or break MLLP
 * framing (VT 0x0B, FS 0x1C).
 */
#include "hl7/hl7_ack.h"

#include "hl7/hl7_int.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Longest MSH value a NAK will echo from unparsed input (MSH-10 is 199
 * characters in v2.7). Anything longer is not trusted and left out. */
#define SALVAGE_MAX 199
/* Characters of the original MSH-10 kept in the default control id. */
#define CONTROL_ID_TAIL (HL7_ACK_CONTROL_ID_SIZE - 1 - 3)
/* Versions (major*10000 + minor*100 + patch) where the ACK layout changes. */
#define V231 20301u /* MSH-9.3 message structure */
#define V25 20500u  /* ERR-2..ERR-8 replace ERR-1 */

/* --- codes and conditions ---------------------------------------------- */

static const char *const code_names[] = {
    [HL7_ACK_AUTO] = "", [HL7_ACK_AA] = "AA", [HL7_ACK_AE] = "AE", [HL7_ACK_AR] = "AR",
    [HL7_ACK_CA] = "CA", [HL7_ACK_CE] = "CE", [HL7_ACK_CR] = "CR",
};

static bool code_valid(hl7_ack_code c)
{
    return (unsigned)c < sizeof(code_names) / sizeof(code_names[0]);
}

const char *hl7_ack_code_name(hl7_ack_code c)
{
    return code_valid(c) ? code_names[c] : "";
}

hl7_status hl7_ack_code_parse(const char *s, hl7_ack_code *out, hl7_error *err)
{
    for (unsigned c = HL7_ACK_AA; c <= HL7_ACK_CR; c++) {
        if (!strcasecmp(s, code_names[c])) {
            *out = (hl7_ack_code)c;
            return HL7_OK;
        }
    }
    return hl7_fail(err, HL7_ERR_VALUE, 0,
                    "'%s' is not an acknowledgement code: use AA, AE or AR (original mode) "
                    "or CA, CE or CR (enhanced mode)",
                    s);
}

hl7_ack_code hl7_ack_code_for(hl7_ack_mode mode, hl7_ack_outcome o)
{
    static const hl7_ack_code app[] = {HL7_ACK_AA, HL7_ACK_AE, HL7_ACK_AR};
    static const hl7_ack_code commit[] = {HL7_ACK_CA, HL7_ACK_CE, HL7_ACK_CR};
    unsigned i = (unsigned)o <= HL7_ACK_OUTCOME_REJECT ? (unsigned)o : HL7_ACK_OUTCOME_REJECT;
    return mode == HL7_ACK_MODE_ENHANCED ? commit[i] : app[i];
}

static hl7_ack_cond cond_of_span(hl7_span v)
{
    static const struct {
        const char *name;
        hl7_ack_cond cond;
    } names[] = {{"AL", HL7_ACK_COND_AL},
                 {"NE", HL7_ACK_COND_NE},
                 {"ER", HL7_ACK_COND_ER},
                 {"SU", HL7_ACK_COND_SU}};
    while (v.len && v.p[0] == ' ')
        v.p++, v.len--;
    while (v.len && v.p[v.len - 1] == ' ')
        v.len--;
    if (v.len == 0 || (v.len == 2 && v.p[0] == '"' && v.p[1] == '"')) return HL7_ACK_COND_EMPTY;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (v.len == 2 && !strncasecmp(v.p, names[i].name, 2)) return names[i].cond;
    return HL7_ACK_COND_OTHER;
}

static hl7_ack_cond msh_cond(const hl7_msg *m, uint32_t field)
{
    hl7_span v = {"", 0};
    if (hl7_seg_count(m) == 0 || hl7_raw(m, 0, field, 1, 1, 0, &v) == HL7_ABSENT)
        return HL7_ACK_COND_EMPTY;
    return cond_of_span(v);
}

hl7_ack_cond hl7_ack_accept_cond(const hl7_msg *m)
{
    return msh_cond(m, 15);
}

hl7_ack_cond hl7_ack_app_cond(const hl7_msg *m)
{
    return msh_cond(m, 16);
}

hl7_ack_mode hl7_ack_mode_of(const hl7_msg *m)
{
    return hl7_ack_accept_cond(m) == HL7_ACK_COND_EMPTY && hl7_ack_app_cond(m) == HL7_ACK_COND_EMPTY
               ? HL7_ACK_MODE_ORIGINAL
               : HL7_ACK_MODE_ENHANCED;
}

bool hl7_ack_cond_wants(hl7_ack_cond c, bool ok)
{
    switch (c) {
    case HL7_ACK_COND_NE:
        return false;
    case HL7_ACK_COND_ER:
        return !ok;
    case HL7_ACK_COND_SU:
        return ok;
    default:
        return true;
    }
}

bool hl7_ack_wants_accept(const hl7_msg *m, bool ok)
{
    return hl7_ack_mode_of(m) == HL7_ACK_MODE_ENHANCED &&
           hl7_ack_cond_wants(hl7_ack_accept_cond(m), ok);
}

bool hl7_ack_wants_app(const hl7_msg *m, bool ok)
{
    return hl7_ack_mode_of(m) == HL7_ACK_MODE_ORIGINAL ||
           hl7_ack_cond_wants(hl7_ack_app_cond(m), ok);
}

bool hl7_ack_is_ack(const hl7_msg *m)
{
    hl7_span v;
    return hl7_seg_count(m) > 0 && hl7_raw(m, 0, 9, 1, 1, 0, &v) == HL7_VALUE && v.len == 3 &&
           !memcmp(v.p, "ACK", 3);
}

const char *hl7_ack_errcode_text(hl7_ack_errcode c)
{
    switch (c) {
    case HL7_ACK_ERR_ACCEPTED:
        return "Message accepted";
    case HL7_ACK_ERR_SEGMENT_SEQUENCE:
        return "Segment sequence error";
    case HL7_ACK_ERR_REQUIRED_FIELD:
        return "Required field missing";
    case HL7_ACK_ERR_DATA_TYPE:
        return "Data type error";
    case HL7_ACK_ERR_TABLE_VALUE:
        return "Table value not found";
    case HL7_ACK_ERR_VALUE_TOO_LONG:
        return "Value too long";
    case HL7_ACK_ERR_UNSUPPORTED_MESSAGE_TYPE:
        return "Unsupported message type";
    case HL7_ACK_ERR_UNSUPPORTED_EVENT:
        return "Unsupported event code";
    case HL7_ACK_ERR_UNSUPPORTED_PROCESSING_ID:
        return "Unsupported processing id";
    case HL7_ACK_ERR_UNSUPPORTED_VERSION:
        return "Unsupported version id";
    case HL7_ACK_ERR_UNKNOWN_KEY:
        return "Unknown key identifier";
    case HL7_ACK_ERR_DUPLICATE_KEY:
        return "Duplicate key identifier";
    case HL7_ACK_ERR_RECORD_LOCKED:
        return "Application record locked";
    case HL7_ACK_ERR_INTERNAL:
        return "Application internal error";
    }
    return NULL;
}

const char *hl7_ack_severity_name(hl7_ack_severity s)
{
    switch (s) {
    case HL7_ACK_SEV_WARNING:
        return "W";
    case HL7_ACK_SEV_INFO:
        return "I";
    default:
        return "E";
    }
}

/* --- time and control ids ------------------------------------------------- */

void hl7_ack_format_time(time_t t, char out[HL7_ACK_TIME_SIZE])
{
    struct tm tm;
    if (localtime_r(&t, &tm) && strftime(out, HL7_ACK_TIME_SIZE, "%Y%m%d%H%M%S%z", &tm)) return;
    gmtime_r(&t, &tm);
    strftime(out, HL7_ACK_TIME_SIZE, "%Y%m%d%H%M%S+0000", &tm);
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alnum(char c)
{
    return is_digit(c) || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static size_t count_digits(const char *s)
{
    size_t n = 0;
    while (is_digit(s[n]))
        n++;
    return n;
}

/* An HL7 DTM: YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]. */
static bool is_dtm(const char *s)
{
    size_t n = count_digits(s);
    if (n < 4 || n > 14 || n % 2) return false;
    s += n;
    if (*s == '.') {
        size_t f = count_digits(s + 1);
        if (n != 14 || f < 1 || f > 4) return false;
        s += 1 + f;
    }
    if (*s == '+' || *s == '-') {
        if (count_digits(s + 1) != 4) return false;
        s += 5;
    }
    return *s == '\0';
}

static bool is_id_char(char c)
{
    return is_alnum(c) || c == '.' || c == '-' || c == '_';
}

static void control_id_from(hl7_span id, char out[HL7_ACK_CONTROL_ID_SIZE])
{
    char keep[CONTROL_ID_TAIL];
    size_t n = 0;
    /* Walk backwards so that the tail, where counters change, survives. */
    for (size_t i = id.len; i > 0 && n < CONTROL_ID_TAIL; i--)
        if (is_id_char(id.p[i - 1])) keep[CONTROL_ID_TAIL - 1 - n++] = id.p[i - 1];
    memcpy(out, "ACK", 3);
    memcpy(out + 3, keep + CONTROL_ID_TAIL - n, n);
    out[3 + n] = '\0';
}

void hl7_ack_default_control_id(const hl7_msg *orig, char out[HL7_ACK_CONTROL_ID_SIZE])
{
    hl7_span id = {"", 0};
    if (hl7_seg_count(orig) == 0 || hl7_raw(orig, 0, 10, 0, 0, 0, &id) == HL7_ABSENT) id.len = 0;
    control_id_from(id, out);
}

/* --- what an ACK echoes ---------------------------------------------------- */

/* The original's MSH as the ACK needs it. f[k] is the wire text of MSH-k
 * (k = 3..18) in the delimiters d; spans point into the original. */
typedef struct ack_src {
    hl7_delims d;
    hl7_charset cs;
    hl7_ack_mode mode;
    hl7_span f[19];
    hl7_span trigger; /* MSH-9.2 */
    hl7_span version; /* MSH-12.1 */
} ack_src;

static const hl7_delims std_delims = {'|', '^', '~', '\\', '&', 0};

static void src_from_msg(const hl7_msg *m, ack_src *src)
{
    memset(src, 0, sizeof(*src));
    src->d = *hl7_delims_of(m);
    src->cs = hl7_charset_of(m);
    src->mode = hl7_ack_mode_of(m);
    for (uint32_t k = 3; k <= 18; k++)
        if (hl7_raw(m, 0, k, 0, 0, 0, &src->f[k]) == HL7_ABSENT) src->f[k].len = 0;
    if (hl7_raw(m, 0, 9, 1, 2, 0, &src->trigger) == HL7_ABSENT) src->trigger.len = 0;
    if (hl7_raw(m, 0, 12, 1, 1, 0, &src->version) == HL7_ABSENT) src->version.len = 0;
}

/* Version as major*10000 + minor*100 + patch; 0 when it is not "N.N[.N]". */
static unsigned version_num(hl7_span v)
{
    unsigned part[3] = {0, 0, 0};
    size_t i = 0, k = 0;
    while (k < 3) {
        size_t start = i;
        while (i < v.len && is_digit(v.p[i]) && i - start < 2)
            part[k] = part[k] * 10 + (unsigned)(v.p[i++] - '0');
        if (i == start) return 0;
        k++;
        if (i == v.len) break;
        if (v.p[i++] != '.') return 0;
    }
    if (i != v.len || k < 2) return 0;
    return part[0] * 10000 + part[1] * 100 + part[2];
}

/* An unknown version is answered in the current layout. */
static bool version_at_least(const ack_src *src, unsigned v)
{
    unsigned have = version_num(src->version);
    return have == 0 || have >= v;
}

/* The parser's rule for delimiters, restricted to ASCII. */
static bool is_usable_delim(unsigned char c)
{
    return c >= 0x21 && c < 0x7f && !is_alnum((char)c);
}

/* A value from unparsed input is echoed only if short and printable. */
static bool plausible(hl7_span v, size_t max)
{
    if (v.len > max) return false;
    for (size_t i = 0; i < v.len; i++) {
        unsigned char c = (unsigned char)v.p[i];
        if (c < 0x20 || c == 0x7f) return false;
    }
    return true;
}

static bool all_chars(hl7_span v, bool (*ok)(char))
{
    for (size_t i = 0; i < v.len; i++)
        if (!ok(v.p[i])) return false;
    return v.len > 0;
}

static bool is_version_char(char c)
{
    return is_digit(c) || c == '.';
}

/* Start of the message proper: after a UTF-8 BOM and leading blank lines. */
static size_t skip_lead(const char *raw, size_t len)
{
    size_t pos = 0;
    if (len >= 3 && !memcmp(raw, "\xEF\xBB\xBF", 3)) pos = 3;
    while (pos < len &&
           (raw[pos] == '\r' || raw[pos] == '\n' || raw[pos] == ' ' || raw[pos] == '\t'))
        pos++;
    return pos;
}

/* Reads the delimiters of an MSH line starting at line[0]; false when they
 * are not usable. *used is the length of "MSH" + MSH-1 + MSH-2. */
static bool salvage_delims(const char *line, size_t n, hl7_delims *d, size_t *used)
{
    if (n < 5 || memcmp(line, "MSH", 3) || !is_usable_delim((unsigned char)line[3])) return false;
    char enc[5] = {0};
    size_t k = 0, i = 4;
    for (; i < n && line[i] != line[3]; i++) {
        unsigned char c = (unsigned char)line[i];
        if (k == 5 || !is_usable_delim(c) || memchr(enc, c, k)) return false;
        enc[k++] = (char)c;
    }
    if (k == 0) return false;
    *d = (hl7_delims){line[3], enc[0], enc[1], enc[2], enc[3], enc[4]};
    *used = i;
    return true;
}

/* Splits an MSH line at its field separators into f[3..18]; `at` is where
 * the separator after MSH-2 is. Fields the line does not reach keep p NULL. */
static void split_msh(const char *line, size_t n, size_t at, char fs, hl7_span f[19])
{
    for (uint32_t k = 3; k <= 18 && at < n; k++) {
        const char *p = line + at + 1;
        const char *q = memchr(p, fs, (size_t)(line + n - p));
        f[k] = (hl7_span){p, (size_t)((q ? q : line + n) - p)};
        at = (size_t)(f[k].p + f[k].len - line);
    }
}

/* Takes from the untrusted fields f what passes the checks. */
static void salvage_values(ack_src *src, const hl7_span f[19])
{
    hl7_span rep, v;
    for (uint32_t k = 3; k <= 18; k++)
        if (f[k].p && plausible(f[k], SALVAGE_MAX)) src->f[k] = f[k];
    if (!src->f[11].len || src->f[11].len > 16) src->f[11] = (hl7_span){"P", 1};
    src->f[12] = src->version;
    if (f[12].p && hl7_nth(f[12].p, f[12].len, src->d.comp, 1, &v) && v.len <= 16 &&
        all_chars(v, is_version_char) && version_num(v))
        src->version = src->f[12] = v;
    if (f[9].p && hl7_nth(f[9].p, f[9].len, src->d.rep, 1, &rep) &&
        hl7_nth(rep.p, rep.len, src->d.comp, 2, &v) && v.len <= 8 && all_chars(v, is_alnum))
        src->trigger = v;
    if (src->f[18].len > 64) src->f[18].len = 0;
    if (src->f[18].len && hl7_nth(src->f[18].p, src->f[18].len, src->d.rep, 1, &v))
        src->cs = hl7_charset_from_name(v.p, v.len);
    bool enhanced = cond_of_span(src->f[15]) != HL7_ACK_COND_EMPTY ||
                    cond_of_span(src->f[16]) != HL7_ACK_COND_EMPTY;
    src->mode = enhanced ? HL7_ACK_MODE_ENHANCED : HL7_ACK_MODE_ORIGINAL;
}

/* Fills src from the first line of unparsed input, keeping only what can be
 * trusted; defaults (|^~\&, processing id P, version 2.5.1) elsewhere. */
static void src_salvage(const char *raw, size_t len, ack_src *src)
{
    memset(src, 0, sizeof(*src));
    src->d = std_delims;
    src->f[11] = (hl7_span){"P", 1};
    src->version = src->f[12] = (hl7_span){"2.5.1", 5};
    size_t pos = raw ? skip_lead(raw, len) : 0;
    if (!raw || pos == len) return;
    const char *line = raw + pos;
    size_t n = 0, at;
    while (n < len - pos && line[n] != '\r' && line[n] != '\n' && line[n] != '\0')
        n++;
    if (!salvage_delims(line, n, &src->d, &at)) return;
    hl7_span f[19] = {{NULL, 0}};
    split_msh(line, n, at, src->d.field, f);
    salvage_values(src, f);
}

/* --- the writer ------------------------------------------------------------ */

typedef struct ackw {
    tbuf *out;
    const hl7_delims *d;
    hl7_charset cs;
    uint32_t field; /* field of the open segment the writer is at */
} ackw;

static void seg_open(ackw *w, const char *id)
{
    tbuf_put(w->out, id, 3);
    w->field = 0;
}

static void seg_open_msh(ackw *w)
{
    const hl7_delims *d = w->d;
    const char enc[5] = {d->comp, d->rep, d->esc, d->sub, d->trunc};
    tbuf_puts(w->out, "MSH");
    tbuf_putc(w->out, d->field);
    for (int i = 0; i < 5 && enc[i]; i++)
        tbuf_putc(w->out, enc[i]);
    w->field = 2;
}

static void seg_field(ackw *w, uint32_t field)
{
    while (w->field < field) {
        tbuf_putc(w->out, w->d->field);
        w->field++;
    }
}

static void seg_close(ackw *w)
{
    tbuf_putc(w->out, '\r');
}

/* A control character as \Xhh\, or '?' when the message has no escape
 * character to write it with. */
static void put_control(ackw *w, unsigned char c)
{
    if (!w->d->esc) {
        tbuf_putc(w->out, '?');
        return;
    }
    tbuf_printf(w->out, "%cX%02X%c", w->d->esc, c, w->d->esc);
}

/* Echoes wire text, escaping control characters. */
static bool is_control(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

static void put_raw(ackw *w, hl7_span v)
{
    size_t i = 0;
    while (i < v.len) {
        size_t run = i;
        while (run < v.len && !is_control((unsigned char)v.p[run])) run++;
        tbuf_put(w->out, v.p + i, run - i); /* the common case: all of it */
        if (run == v.len) break;
        put_control(w, (unsigned char)v.p[run]);
        i = run + 1;
    }
}

/* Undeclared delimiters are '\0' and must not match. */
static bool is_delim(const hl7_delims *d, char c)
{
    return c && (c == d->field || c == d->comp || c == d->rep || c == d->esc || c == d->sub ||
                 c == d->trunc);
}

/* Decodes one UTF-8 character at s[0..n); *cp is -1 for an invalid byte.
 * Returns the number of bytes used (at least 1). */
static size_t utf8_decode(const unsigned char *s, size_t n, long *cp)
{
    unsigned char c = s[0];
    size_t k = c < 0x80                 ? 1
               : c >= 0xC2 && c <= 0xDF ? 2
               : c >= 0xE0 && c <= 0xEF ? 3
               : c >= 0xF0 && c <= 0xF4 ? 4
                                        : 0;
    *cp = -1;
    if (k == 0 || k > n) return 1;
    long v = k == 1 ? c : c & (0x3F >> (k - 1));
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xC0) != 0x80) return 1;
        v = v << 6 | (s[i] & 0x3F);
    }
    static const long min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (v < min[k] || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 1;
    *cp = v;
    return k;
}

/* The byte for code point cp in a single-byte character set, or -1. */
static int single_byte(hl7_charset cs, long cp)
{
    static const struct {
        long cp;
        unsigned char b;
    } latin9[] = {{0x20AC, 0xA4}, {0x0160, 0xA6}, {0x0161, 0xA8}, {0x017D, 0xB4},
                  {0x017E, 0xB8}, {0x0152, 0xBC}, {0x0153, 0xBD}, {0x0178, 0xBE}};
    if (cs == HL7_CS_LATIN1) return cp <= 0xFF ? (int)cp : -1;
    if (cs != HL7_CS_LATIN9) return cp < 0x80 ? (int)cp : -1;
    for (size_t i = 0; i < sizeof(latin9) / sizeof(latin9[0]); i++) {
        if (latin9[i].cp == cp) return latin9[i].b;
        if (latin9[i].b == cp) return -1; /* replaced in 8859/15 */
    }
    return cp <= 0xFF ? (int)cp : -1;
}

/* Writes caller text (UTF-8) as one leaf value: converted to the message's
 * character set ('?' where it cannot be), delimiters escaped by hl7_escape,
 * CR/LF as hl7_escape writes them, other control characters as \Xhh\. */
static void put_text(ackw *w, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        size_t run = i; /* printable ASCII other than delimiters goes as it is */
        while (run < n && u[run] >= 0x20 && u[run] < 0x7f && !is_delim(w->d, (char)u[run])) run++;
        tbuf_put(w->out, s + i, run - i);
        if ((i = run) == n) break;
        long cp;
        size_t k = utf8_decode(u + i, n - i, &cp);
        if (cp < 0) {
            tbuf_putc(w->out, '?');
        } else if (cp == '\r' || cp == '\n' || (cp < 0x80 && is_delim(w->d, (char)cp))) {
            /* hl7_escape would fall back to a backslash that may be a delimiter */
            if (w->d->esc)
                hl7_escape(w->d, s + i, 1, w->out);
            else
                tbuf_putc(w->out, '?');
        } else if (cp < 0x20 || cp == 0x7f) {
            put_control(w, (unsigned char)cp);
        } else if (cp < 0x80) {
            tbuf_putc(w->out, (char)cp);
        } else if (w->cs == HL7_CS_DEFAULT || w->cs == HL7_CS_UTF8) {
            tbuf_put(w->out, s + i, k);
        } else {
            int b = single_byte(w->cs, cp);
            tbuf_putc(w->out, b < 0 ? '?' : (char)b);
        }
        i += k;
    }
}

static void put_cstr(ackw *w, const char *s)
{
    if (s) put_text(w, s, strlen(s));
}

static void put_num(ackw *w, uint32_t n)
{
    if (n) tbuf_printf(w->out, "%u", n);
}

/* --- segments ------------------------------------------------------------- */

/* The resolved contents of one ACK. */
typedef struct ack_spec {
    hl7_ack_code code;
    const char *text;
    const char *control_id;
    const char *timestamp;
    const hl7_ack_problem *first; /* the parse error of a NAK, or NULL */
    const hl7_ack_problem *problems;
    size_t nproblems;
} ack_spec;

static void write_msh(ackw *w, const ack_src *src, const ack_spec *spec)
{
    static const uint32_t echo[][2] = {{3, 5},   {4, 6},   {5, 3},  {6, 4},
                                       {11, 11}, {12, 12}, {18, 18}};
    seg_open_msh(w);
    for (size_t i = 0; i < 4; i++) {
        seg_field(w, echo[i][0]);
        put_raw(w, src->f[echo[i][1]]);
    }
    seg_field(w, 7);
    put_cstr(w, spec->timestamp);
    seg_field(w, 9);
    tbuf_puts(w->out, "ACK");
    if (src->trigger.len) {
        tbuf_putc(w->out, w->d->comp);
        put_raw(w, src->trigger);
        if (version_at_least(src, V231)) {
            tbuf_putc(w->out, w->d->comp);
            tbuf_puts(w->out, "ACK");
        }
    }
    seg_field(w, 10);
    put_cstr(w, spec->control_id);
    /* MSH-11 and MSH-12 are required: written even when the original left
     * them empty, so the ACK keeps the shape receivers check for. */
    for (size_t i = 4; i < sizeof(echo) / sizeof(echo[0]); i++) {
        if (echo[i][0] > 12 && !src->f[echo[i][1]].len) continue;
        seg_field(w, echo[i][0]);
        put_raw(w, src->f[echo[i][1]]);
    }
    seg_close(w);
}

static void write_msa(ackw *w, const ack_src *src, const ack_spec *spec)
{
    seg_open(w, "MSA");
    seg_field(w, 1);
    tbuf_puts(w->out, hl7_ack_code_name(spec->code));
    seg_field(w, 2);
    put_raw(w, src->f[10]);
    if (spec->text && *spec->text) {
        seg_field(w, 3);
        put_cstr(w, spec->text);
    }
    seg_close(w);
}

/* ERL (v2.5+ ERR-2): segment^sequence^field^repetition^component^subcomponent. */
static void put_erl(ackw *w, const hl7_path *at)
{
    uint32_t part[5] = {at->seg_occ, at->field, 0, 0, 0};
    if (at->field) {
        part[2] = at->rep;
        part[3] = at->comp;
        part[4] = at->comp ? at->sub : 0;
    }
    size_t last = 5;
    while (last > 0 && part[last - 1] == 0)
        last--;
    put_cstr(w, at->seg);
    for (size_t i = 0; i < last; i++) {
        tbuf_putc(w->out, w->d->comp);
        put_num(w, part[i]);
    }
}

static void write_err_v25(ackw *w, const hl7_ack_problem *p)
{
    const char *desc = hl7_ack_errcode_text(p->code);
    seg_open(w, "ERR");
    if (p->where.seg[0]) {
        seg_field(w, 2);
        put_erl(w, &p->where);
    }
    seg_field(w, 3);
    tbuf_printf(w->out, "%u%c", (unsigned)p->code, w->d->comp);
    put_cstr(w, desc);
    tbuf_printf(w->out, "%cHL70357", w->d->comp);
    seg_field(w, 4);
    tbuf_puts(w->out, hl7_ack_severity_name(p->severity));
    if (p->text && *p->text) {
        seg_field(w, 8);
        put_cstr(w, p->text);
    }
    seg_close(w);
}

/* ELD (ERR-1 before v2.5): segment^sequence^field^code&text&HL70357. The
 * text is the problem's own, which is what those receivers show. */
static void write_err_v2x(ackw *w, const hl7_ack_problem *p)
{
    const char *text = p->text && *p->text ? p->text : hl7_ack_errcode_text(p->code);
    char sub = w->d->sub;
    seg_open(w, "ERR");
    seg_field(w, 1);
    if (p->where.seg[0]) {
        put_cstr(w, p->where.seg);
        tbuf_putc(w->out, w->d->comp);
        put_num(w, p->where.seg_occ);
        tbuf_putc(w->out, w->d->comp);
        put_num(w, p->where.field);
        tbuf_putc(w->out, w->d->comp);
    } else {
        for (int i = 0; i < 3; i++)
            tbuf_putc(w->out, w->d->comp);
    }
    tbuf_printf(w->out, "%u", (unsigned)p->code);
    if (sub) {
        tbuf_putc(w->out, sub);
        put_cstr(w, text);
        tbuf_printf(w->out, "%cHL70357", sub);
    }
    seg_close(w);
}

static void write_err(ackw *w, const ack_src *src, const hl7_ack_problem *p)
{
    if (version_at_least(src, V25))
        write_err_v25(w, p);
    else
        write_err_v2x(w, p);
}

static void write_ack(const ack_src *src, const ack_spec *spec, tbuf *out)
{
    ackw w = {.out = out, .d = &src->d, .cs = src->cs};
    write_msh(&w, src, spec);
    write_msa(&w, src, spec);
    if (spec->first) write_err(&w, src, spec->first);
    for (size_t i = 0; i < spec->nproblems; i++)
        write_err(&w, src, &spec->problems[i]);
}

static bool has_errors(const hl7_ack_problem *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i].severity != HL7_ACK_SEV_WARNING && p[i].severity != HL7_ACK_SEV_INFO) return true;
    return false;
}

/* --- parse errors as problems --------------------------------------------- */

/* The segment id at raw[at..): the bytes before the field separator or the
 * end of the line when fs is known, else a run of letters and digits; ""
 * unless 1 to 3 printable characters. */
static void id_at(const char *raw, size_t len, size_t at, char fs, char id[4])
{
    size_t n = 0;
    while (at + n < len && n < 4) {
        char c = raw[at + n];
        if (fs ? c == fs || c == '\r' || c == '\n' : !is_alnum(c)) break;
        n++;
    }
    memset(id, 0, 4);
    hl7_span v = {raw + at, n};
    if (n >= 1 && n <= 3 && plausible(v, 3) && !memchr(v.p, ' ', n)) memcpy(id, v.p, n);
}

/* Which occurrence of segment `id` the line holding byte `at` is, counting
 * lines from the start of the message. */
static uint32_t occurrence(const char *raw, size_t len, size_t at, char fs, const char *id)
{
    size_t pos = skip_lead(raw, len);
    if (at > len) at = len;
    size_t line = at;
    while (line > pos && raw[line - 1] != '\r' && raw[line - 1] != '\n')
        line--;
    uint32_t n = 0;
    while (pos <= line) {
        char have[4];
        id_at(raw, len, pos, fs, have);
        if (have[0] && !strcmp(have, id)) n++;
        while (pos < len && raw[pos] != '\r' && raw[pos] != '\n')
            pos++;
        while (pos < len && (raw[pos] == '\r' || raw[pos] == '\n'))
            pos++;
        if (pos >= len) break;
    }
    return n;
}

static hl7_ack_errcode errcode_of(hl7_status s)
{
    switch (s) {
    case HL7_OK:
        return HL7_ACK_ERR_ACCEPTED;
    case HL7_ERR_EMPTY:
    case HL7_ERR_NO_MSH:
    case HL7_ERR_SEGMENT_ID:
    case HL7_ERR_BATCH:
        return HL7_ACK_ERR_SEGMENT_SEQUENCE;
    case HL7_ERR_TRUNCATED:
        return HL7_ACK_ERR_REQUIRED_FIELD;
    case HL7_ERR_DELIMITERS:
    case HL7_ERR_NUL:
        return HL7_ACK_ERR_DATA_TYPE;
    case HL7_ERR_FIELD_TOO_LONG:
        return HL7_ACK_ERR_VALUE_TOO_LONG;
    default:
        return HL7_ACK_ERR_INTERNAL;
    }
}

void hl7_ack_problem_from_error(const hl7_error *e, const char *raw, size_t len,
                                hl7_ack_problem *out)
{
    assert(e && out);
    memset(out, 0, sizeof(*out));
    out->code = errcode_of(e->code);
    out->severity = e->code == HL7_OK ? HL7_ACK_SEV_INFO : HL7_ACK_SEV_ERROR;
    out->text = e->text;
    size_t start = raw ? skip_lead(raw, len) : 0;
    char fs = raw && len - start > 3 && !memcmp(raw + start, "MSH", 3) ? raw[start + 3] : 0;
    hl7_path *at = &out->where;
    memcpy(at->seg, e->seg_id, 3);
    at->seg[3] = '\0';
    if (!at->seg[0] && raw && e->offset <= len) {
        if (e->code == HL7_ERR_SEGMENT_ID) id_at(raw, len, e->offset, fs, at->seg);
        if (e->code == HL7_ERR_NO_MSH) id_at(raw, len, e->offset, 0, at->seg);
    }
    if (!at->seg[0]) return;
    if (!strcmp(at->seg, "MSH") && e->segment <= 1)
        at->seg_occ = 1;
    else if (e->code == HL7_ERR_NO_MSH)
        at->seg_occ = 1;
    else if (raw)
        at->seg_occ = occurrence(raw, len, e->offset, fs, at->seg);
    at->field = e->field;
    if (e->code == HL7_ERR_TRUNCATED) /* name the first required field missing */
        at->field = e->field + 1 > 9 ? e->field + 1 : 9;
    at->rep = at->field ? 1 : 0;
}

/* --- building -------------------------------------------------------------- */

hl7_status hl7_ack_opts_check(const hl7_ack_opts *o, hl7_error *err)
{
    if (!code_valid(o->code))
        return hl7_fail(err, HL7_ERR_VALUE, 0, "acknowledgement code %d is out of range",
                        (int)o->code);
    if (o->control_id && !*o->control_id)
        return hl7_fail(
            err, HL7_ERR_VALUE, 0,
            "the ACK control id (MSH-10) is empty; give one or leave it to the default");
    if (o->timestamp && !is_dtm(o->timestamp))
        return hl7_fail(err, HL7_ERR_VALUE, 0,
                        "timestamp '%.64s' is not an HL7 date/time: use "
                        "YYYYMMDDHHMMSS[.SSSS][+/-ZZZZ] (shorter forms from YYYY are allowed)",
                        o->timestamp);
    return HL7_OK;
}

hl7_status hl7_ack_build(const hl7_msg *orig, const hl7_ack_opts *o, tbuf *out, hl7_error *err)
{
    static const hl7_ack_opts none = {0};
    if (!o) o = &none;
    assert(orig && out && (o->problems || o->nproblems == 0));
    const hl7_seg *msh = hl7_seg_at(orig, 0);
    if (!msh || strcmp(msh->id, "MSH"))
        return hl7_fail(err, HL7_ERR_NO_MSH, 0,
                        "cannot acknowledge a message that does not start with MSH");
    hl7_status st = hl7_ack_opts_check(o, err);
    if (st != HL7_OK) return st;
    ack_src src;
    src_from_msg(orig, &src);
    char now[HL7_ACK_TIME_SIZE], cid[HL7_ACK_CONTROL_ID_SIZE];
    ack_spec spec = {.code = o->code,
                     .text = o->text,
                     .control_id = o->control_id,
                     .timestamp = o->timestamp,
                     .problems = o->problems,
                     .nproblems = o->nproblems};
    if (spec.code == HL7_ACK_AUTO)
        spec.code = hl7_ack_code_for(src.mode, has_errors(o->problems, o->nproblems)
                                                   ? HL7_ACK_OUTCOME_ERROR
                                                   : HL7_ACK_OUTCOME_ACCEPT);
    if (!spec.control_id) {
        control_id_from(src.f[10], cid);
        spec.control_id = cid;
    }
    if (!spec.timestamp) {
        hl7_ack_format_time(time(NULL), now);
        spec.timestamp = now;
    }
    write_ack(&src, &spec, out);
    return HL7_OK;
}

void hl7_ack_build_nak(const char *raw, size_t len, const hl7_error *perr, const hl7_ack_opts *o,
                       tbuf *out)
{
    static const hl7_ack_opts none = {0};
    if (!o) o = &none;
    assert(perr && out && (raw || len == 0) && (o->problems || o->nproblems == 0));
    ack_src src;
    src_salvage(raw, len, &src);
    hl7_ack_problem first;
    hl7_ack_problem_from_error(perr, raw, len, &first);
    char now[HL7_ACK_TIME_SIZE], cid[HL7_ACK_CONTROL_ID_SIZE];
    ack_spec spec = {.code = o->code,
                     .text = o->text ? o->text : perr->text,
                     .control_id = o->control_id,
                     .timestamp = o->timestamp,
                     .first = &first,
                     .problems = o->problems,
                     .nproblems = o->nproblems};
    if (spec.code == HL7_ACK_AUTO || !code_valid(spec.code))
        spec.code = hl7_ack_code_for(src.mode, HL7_ACK_OUTCOME_REJECT);
    if (!spec.control_id || !*spec.control_id) {
        control_id_from(src.f[10], cid);
        spec.control_id = cid;
    }
    if (!spec.timestamp || !is_dtm(spec.timestamp)) {
        hl7_ack_format_time(time(NULL), now);
        spec.timestamp = now;
    }
    write_ack(&src, &spec, out);
}
