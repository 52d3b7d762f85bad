/*
 * hl7_escape: HL7 escape sequences and character sets.
 *
 * Decoding turns a raw value into UTF-8 text: delimiter escapes become the
 * delimiter, \Xhh..\ becomes the bytes it names, formatting escapes become
 * line breaks or spaces, and bytes are converted from the message's declared
 * character set (MSH-18). The output is always valid UTF-8: bytes that are
 * not valid in the declared set are read as ISO 8859-1 when no set is
 * declared (the common case in real feeds) and as U+FFFD otherwise.
 *
 * Encoding is the inverse for one leaf value: every delimiter byte is replaced
 * by its escape so that the value can be stored without changing structure.
 */
#include "hl7/hl7_int.h"

#include <string.h>
#include <strings.h>

hl7_charset hl7_charset_from_name(const char *name, size_t len)
{
    static const struct {
        const char *name;
        hl7_charset cs;
    } names[] = {
        {"ASCII", HL7_CS_ASCII},          {"8859/1", HL7_CS_LATIN1},
        {"ISO-8859-1", HL7_CS_LATIN1},    {"ISO IR100", HL7_CS_LATIN1},
        {"8859/15", HL7_CS_LATIN9},       {"UNICODE UTF-8", HL7_CS_UTF8},
        {"UTF-8", HL7_CS_UTF8},           {"UNICODE", HL7_CS_UTF8},
        {"ISO_IR 192", HL7_CS_UTF8},
    };
    while (len && (name[len - 1] == ' ')) len--;
    while (len && *name == ' ') name++, len--;
    if (len == 0) return HL7_CS_DEFAULT;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strlen(names[i].name) == len && !strncasecmp(names[i].name, name, len))
            return names[i].cs;
    return HL7_CS_OTHER;
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 if invalid. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return n >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (n < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && p[1] < 0xA0) return 0;
        if (c == 0xED && p[1] > 0x9F) return 0;
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (n < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80)
            return 0;
        if (c == 0xF0 && p[1] < 0x90) return 0;
        if (c == 0xF4 && p[1] > 0x8F) return 0;
        return 4;
    }
    return 0;
}

static void put_cp(tbuf *out, unsigned cp)
{
    char b[4];
    if (cp < 0x80) {
        tbuf_putc(out, (char)cp);
        return;
    }
    if (cp < 0x800) {
        b[0] = (char)(0xC0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 0x3F));
        tbuf_put(out, b, 2);
        return;
    }
    b[0] = (char)(0xE0 | (cp >> 12));
    b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    b[2] = (char)(0x80 | (cp & 0x3F));
    tbuf_put(out, b, 3);
}

static unsigned latin9(unsigned char c)
{
    switch (c) {
    case 0xA4: return 0x20AC;
    case 0xA6: return 0x0160;
    case 0xA8: return 0x0161;
    case 0xB4: return 0x017D;
    case 0xB8: return 0x017E;
    case 0xBC: return 0x0152;
    case 0xBD: return 0x0153;
    case 0xBE: return 0x0178;
    default: return c;
    }
}

/* Appends bytes converted from cs to UTF-8. */
static void put_text(tbuf *out, hl7_charset cs, const char *p, size_t n)
{
    const unsigned char *u = (const unsigned char *)p;
    size_t i = 0, run = 0;
    /* Fast path: ASCII run. */
    while (run < n && u[run] < 0x80) run++;
    tbuf_put(out, p, run);
    i = run;
    while (i < n) {
        unsigned char c = u[i];
        if (c < 0x80) {
            tbuf_putc(out, (char)c);
            i++;
            continue;
        }
        switch (cs) {
        case HL7_CS_LATIN1: put_cp(out, c); i++; break;
        case HL7_CS_LATIN9: put_cp(out, latin9(c)); i++; break;
        case HL7_CS_UTF8: {
            size_t k = utf8_seq(u + i, n - i);
            if (k) {
                tbuf_put(out, p + i, k);
                i += k;
            } else {
                put_cp(out, 0xFFFD);
                i++;
            }
            break;
        }
        default: {
            size_t k = utf8_seq(u + i, n - i);
            if (k) {
                tbuf_put(out, p + i, k);
                i += k;
            } else {
                put_cp(out, c); /* undeclared: read as 8859/1 */
                i++;
            }
            break;
        }
        }
    }
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Optional small count after a formatting command (".sp 2"); default 1. */
static unsigned fmt_count(const char *p, size_t n, unsigned dflt)
{
    while (n && (*p == ' ' || *p == '+')) p++, n--;
    if (!n) return dflt;
    unsigned v = 0;
    for (size_t i = 0; i < n && v < 1000; i++) {
        if (p[i] < '0' || p[i] > '9') return dflt;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    return v > 100 ? 100 : v;
}

/* Decodes the escape body s[0..n) (between the escape characters). Returns
 * false when it is not a known escape (the caller keeps it literally). */
static bool decode_escape(const hl7_delims *d, hl7_charset cs, const char *s, size_t n, tbuf *out)
{
    if (n == 1) {
        char c;
        switch (s[0]) {
        case 'F': c = d->field; break;
        case 'S': c = d->comp; break;
        case 'T': c = d->sub; break;
        case 'R': c = d->rep; break;
        case 'E': c = d->esc; break;
        case 'P': c = d->trunc; break;
        case 'H':
        case 'N': return true; /* highlighting on/off: no meaning in plain text */
        default: return false;
        }
        if (!c) return false;
        tbuf_putc(out, c);
        return true;
    }
    if (s[0] == 'X') {
        if (n < 3 || (n - 1) % 2) return false;
        char bytes[64];
        size_t nb = 0;
        for (size_t i = 1; i < n; i += 2) {
            int hi = hexval(s[i]), lo = hexval(s[i + 1]);
            if (hi < 0 || lo < 0) return false;
        }
        for (size_t i = 1; i < n; i += 2) {
            bytes[nb++] = (char)(hexval(s[i]) << 4 | hexval(s[i + 1]));
            if (nb == sizeof(bytes)) {
                put_text(out, cs, bytes, nb);
                nb = 0;
            }
        }
        put_text(out, cs, bytes, nb);
        return true;
    }
    if (s[0] == '.' && n >= 3) {
        const char *arg = s + 3;
        size_t an = n - 3;
        if (!strncmp(s, ".br", 3) && an == 0) {
            tbuf_putc(out, '\n');
            return true;
        }
        if (!strncmp(s, ".sp", 3)) {
            unsigned k = fmt_count(arg, an, 1);
            for (unsigned i = 0; i < (k ? k : 1); i++) tbuf_putc(out, '\n');
            return true;
        }
        if (!strncmp(s, ".sk", 3)) {
            unsigned k = fmt_count(arg, an, 1);
            for (unsigned i = 0; i < k; i++) tbuf_putc(out, ' ');
            return true;
        }
        if (!strncmp(s, ".ce", 3) && an == 0) {
            tbuf_putc(out, '\n');
            return true;
        }
        if (!strncmp(s, ".in", 3) || !strncmp(s, ".ti", 3) ||
            ((!strncmp(s, ".fi", 3) || !strncmp(s, ".nf", 3)) && an == 0))
            return true;
    }
    return false;
}

void hl7_unescape(const hl7_delims *d, hl7_charset cs, const char *raw, size_t len, tbuf *out)
{
    size_t plain = hl7_plain_prefix(raw, len, d->esc);
    tbuf_put(out, raw, plain);
    if (plain == len) return;
    raw += plain;
    len -= plain;
    const char *end = raw + len;
    const char *p = raw;
    if (!d->esc) {
        put_text(out, cs, raw, len);
        return;
    }
    while (p < end) {
        const char *e = memchr(p, d->esc, (size_t)(end - p));
        if (!e) {
            put_text(out, cs, p, (size_t)(end - p));
            return;
        }
        put_text(out, cs, p, (size_t)(e - p));
        const char *close = memchr(e + 1, d->esc, (size_t)(end - e - 1));
        if (!close) {
            put_text(out, cs, e, (size_t)(end - e)); /* unterminated: literal */
            return;
        }
        if (close == e + 1 || !decode_escape(d, cs, e + 1, (size_t)(close - e - 1), out)) {
            /* Not an escape we know: keep the opening character and go on, so
             * that a stray backslash does not swallow the text after it. */
            put_text(out, cs, e, 1);
            p = e + 1;
            continue;
        }
        p = close + 1;
    }
}

/* The bytes hl7_escape() replaces: a table by byte value. The standard
 * delimiters (|^~\\&, no truncation character) have a constant one. */
static const uint8_t std_special[256] = {
    ['|'] = 1, ['^'] = 1, ['~'] = 1, ['\\'] = 1, ['&'] = 1, ['\r'] = 1, ['\n'] = 1,
};

static const uint8_t *special_bytes(const hl7_delims *d, uint8_t own[256])
{
    if (d->field == '|' && d->comp == '^' && d->rep == '~' && d->esc == '\\' && d->sub == '&' &&
        !d->trunc)
        return std_special;
    memset(own, 0, 256);
    own[(unsigned char)d->field] = 1; /* even NUL: hl7_escape() escapes it then */
    const char others[] = {d->comp, d->sub, d->rep, d->esc, d->trunc};
    for (size_t i = 0; i < sizeof others; i++)
        if (others[i]) own[(unsigned char)others[i]] = 1;
    own['\r'] = own['\n'] = 1;
    return own;
}

bool hl7_needs_escape(const hl7_delims *d, const char *text, size_t len)
{
    uint8_t own[256];
    const uint8_t *special = special_bytes(d, own);
    for (size_t i = 0; i < len; i++)
        if (special[(unsigned char)text[i]]) return true;
    return false;
}

void hl7_escape(const hl7_delims *d, const char *text, size_t len, tbuf *out)
{
    char esc = d->esc ? d->esc : '\\';
    bool dot_is_delim = esc == '.' || d->field == '.' || d->comp == '.' || d->rep == '.' || d->sub == '.' ||
                        d->trunc == '.';
    uint8_t own[256];
    const uint8_t *special = special_bytes(d, own);
    size_t i = 0;
    while (i < len) {
        size_t run = i;
        while (run < len && !special[(unsigned char)text[run]])
            run++;
        tbuf_put(out, text + i, run - i); /* the plain bytes up to the next special one */
        if (run == len) break;
        char c = text[run];
        char code = 0;
        if (c == d->field)
            code = 'F';
        else if (c == d->comp && c)
            code = 'S';
        else if (c == d->sub && c)
            code = 'T';
        else if (c == d->rep && c)
            code = 'R';
        else if (c == d->esc && c)
            code = 'E';
        else if (c == d->trunc && c)
            code = 'P';
        if (code) {
            char seq[3] = {esc, code, esc};
            tbuf_put(out, seq, 3);
        } else if (c == '\r') {
            tbuf_putc(out, esc);
            tbuf_puts(out, "X0D");
            tbuf_putc(out, esc);
        } else {
            /* \.br\ is the readable form, but not when '.' is a delimiter */
            tbuf_putc(out, esc);
            tbuf_puts(out, dot_is_delim ? "X0A" : ".br");
            tbuf_putc(out, esc);
        }
        i = run + 1;
    }
}
