/*
 * fhir_convert: HL7 v2 -> FHIR R4 transaction Bundle (see fhir_convert.h),
 * the core shared by the per-family files listed in fhir_conv.h.
 *
 * A conversion runs on one `fc` context: the message, the options and
 * tables, the converter (its ftree arena, digest context, buffers, kept
 * from message to message) and the Bundle's entry array. Resources are
 * built as ftree objects and added to the Bundle in dependency order
 * (Organization, Practitioner, Location, Patient, Encounter, then what the
 * message carries). Code maps come from fhir_tables (built-ins overridable
 * by a JSON file). Empty and "" (null) HL7 values produce no element. This
 * file holds the generic parts: field values, ids, entries, dates,
 * datatypes, and the table of message types.
 *
 * Field values (fc_val): the helpers read several components of one field
 * repetition in a row, so the last repetition read is split once (fc_rep,
 * 8 bytes at a time); a value that decodes to itself (ASCII without the
 * escape character) is copied to the arena as it is, while checking
 * whether JSON would escape it; the last values returned are remembered
 * (fc_recent), so setting one in the Bundle borrows it instead of copying
 * and checking it again. The hot helpers are inline in fhir_conv.h so that
 * their literal keys fold into the tree's fast paths.
 */
#include "fhir/fhir_conv.h"

#include <assert.h>
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "base/mem.h"

const char *fhir_strerror(fhir_status s)
{
    switch (s) {
    case FHIR_OK:
        return "ok";
    case FHIR_ERR_UNSUPPORTED:
        return "message type not converted";
    case FHIR_ERR_MISSING:
        return "required segment missing";
    }
    return "unknown error";
}

/* --- small utilities ------------------------------------------------------ */

static void hex32(const unsigned char *md, char out[33])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[32] = '\0';
}

void fhir_stable_id(const char *key, char out[33])
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)key, strlen(key), md);
    hex32(md, out);
}

/* fhir_stable_id() on the conversion's digest context (SHA256() fetches the
 * algorithm on every call, a tenth of the conversion's time): the same id. */
void fc_stable_id(fc *c, const char *key, char out[33])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!c->cv->md_ctx || !EVP_MD_CTX_copy_ex(c->cv->md_ctx, c->cv->md_init) ||
        !EVP_DigestUpdate(c->cv->md_ctx, key, strlen(key)) ||
        !EVP_DigestFinal_ex(c->cv->md_ctx, md, &n)) {
        fhir_stable_id(key, out);
        return;
    }
    hex32(md, out);
}

enum {
    RAW_CHANGES = 1, /* decoding may change it: a byte >= 0x80 or the escape character */
    RAW_SPECIAL = 2, /* it holds a byte JSON escapes: '"', '\\', a control character */
};

/* Folds the 8 bytes of v into the two masks (the classic exact "has a
 * byte equal to c / less than n" tests). */
static inline void scan8(uint64_t v, uint64_t esc, uint64_t *changes, uint64_t *special)
{
    const uint64_t ones = 0x0101010101010101ull;
    uint64_t x = v ^ esc, q = v ^ (ones * '"'), b = v ^ (ones * '\\');
    *changes |= v | ((x - ones) & ~x);
    *special |= ((v - ones * 0x20) & ~v) | ((q - ones) & ~q) | ((b - ones) & ~b);
}

/* RAW_* of raw text. Text without RAW_CHANGES decodes to itself: the
 * decoder copies ASCII unchanged whatever the charset. Eight bytes at a
 * time, the last chunk overlapping the one before it. */
static unsigned scan_raw(const char *p, size_t len, char esc)
{
    const uint64_t e = 0x0101010101010101ull * (unsigned char)esc;
    uint64_t changes = 0, special = 0, v;
    if (len >= 8) {
        for (size_t i = 0; i + 8 < len; i += 8) {
            memcpy(&v, p + i, 8);
            scan8(v, e, &changes, &special);
        }
        memcpy(&v, p + len - 8, 8);
    } else if (len >= 4) {
        uint32_t a, b;
        memcpy(&a, p, 4);
        memcpy(&b, p + len - 4, 4);
        v = (uint64_t)a | (uint64_t)b << 32;
    } else {
        v = 0x2020202020202020ull; /* spaces: plain, ASCII */
        for (size_t i = 0; i < len; i++)
            v = (v & ~(0xFFull << 8 * i)) | (uint64_t)(unsigned char)p[i] << 8 * i;
    }
    scan8(v, e, &changes, &special);
    const uint64_t highs = 0x8080808080808080ull;
    return (changes & highs ? RAW_CHANGES : 0) | (special & highs ? RAW_SPECIAL : 0);
}

/* The first ch in [p, end), or end. HL7 pieces are a few bytes long: a
 * loop beats memchr's setup. ch is never '\0' (no NUL in a message). */
static inline const char *find_char(const char *p, const char *end, char ch)
{
    while (p < end && *p != ch)
        p++;
    return p;
}

/* The n-th (1-based) piece of [*p, *p + *len) split at ch, as hl7_raw
 * counts them (an undeclared delimiter, '\0', leaves one piece); it
 * replaces *p and *len. Scalars, not an hl7_span: copies of a span just
 * stored stall store forwarding. */
static inline bool nth_piece(const char **p, size_t *len, char ch, uint32_t n)
{
    if (!ch) return n == 1;
    const char *s = *p, *end = s + *len;
    while (--n) {
        s = find_char(s, end, ch);
        if (s == end) return false;
        s++;
    }
    *p = s;
    *len = (size_t)(find_char(s, end, ch) - s);
    return true;
}

/* Adds the component [start, end) to k; false when k is full. */
static inline bool add_comp(fc_rep *k, const char *start, const char *end)
{
    if (k->n == FC_COMPS) {
        k->more = true;
        return false;
    }
    k->cp[k->n] = start;
    k->cl[k->n] = (uint32_t)(end - start);
    k->n++;
    return true;
}

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
/* The high bit of each byte of v that equals the byte in pattern (exact,
 * no false positives). */
static inline uint64_t eq_bytes(uint64_t v, uint64_t pattern)
{
    const uint64_t low7 = 0x7F7F7F7F7F7F7F7Full;
    uint64_t x = v ^ pattern;
    return ~(((x & low7) + low7) | x) & ~low7;
}

/* The n (1..8) bytes at p in the low bytes of a word: whole words where
 * they can be read without going past p + n. */
static inline uint64_t load_le(const char *p, size_t n)
{
    uint64_t v = 0;
    if (n == 8) {
        memcpy(&v, p, 8);
    } else if (n >= 4) {
        uint32_t a, b;
        memcpy(&a, p, 4);
        memcpy(&b, p + n - 4, 4);
        v = (uint64_t)a | (uint64_t)b << 8 * (n - 4); /* the overlap ORs equal bytes */
    } else {
        for (size_t i = 0; i < n; i++)
            v |= (uint64_t)(unsigned char)p[i] << 8 * i;
    }
    return v;
}

/* Splits the repetition starting at p (ending at the next rep or at end)
 * into components, noting which hold a subcomponent delimiter: eight bytes
 * at a time, so a field costs a few steps and few mispredicted branches. */
static void split_comps(fc_rep *k, const char *p, const char *end, char comp, char rep, char sub)
{
    const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
    const uint64_t mc = ones * (unsigned char)comp, mr = ones * (unsigned char)rep;
    const uint64_t ms = ones * (unsigned char)sub;
    const char *start = p;
    while (p < end) {
        size_t n = (size_t)(end - p) < 8 ? (size_t)(end - p) : 8;
        uint64_t v = load_le(p, n), valid = n == 8 ? high : high & ((1ull << 8 * n) - 1);
        uint64_t stops = (eq_bytes(v, mc) | eq_bytes(v, mr)) & valid;
        uint64_t subs = eq_bytes(v, ms) & valid;
        while (stops) {
            unsigned bit = (unsigned)__builtin_ctzll(stops);
            uint64_t before = (1ull << bit) - 1; /* the bytes before this stop */
            if ((subs & before) && k->n < 32) k->subs |= 1u << k->n;
            subs &= ~before;
            const char *at = p + bit / 8;
            if (!add_comp(k, start, at) || *at == rep) return;
            start = at + 1;
            stops &= stops - 1;
        }
        if (subs && k->n < 32) k->subs |= 1u << k->n;
        p += n;
    }
    add_comp(k, start, end);
}
#else
/* Splits the repetition starting at p (ending at the next rep or at end)
 * into components, noting which hold a subcomponent delimiter. */
static void split_comps(fc_rep *k, const char *p, const char *end, char comp, char rep, char sub)
{
    const char *start = p;
    for (;; p++) {
        if (p < end && *p != comp && *p != rep) {
            if (*p == sub && k->n < 32) k->subs |= 1u << k->n;
            continue;
        }
        if (!add_comp(k, start, p) || p == end || *p == rep) return;
        start = p + 1;
    }
}
#endif

/* Splits repetition r of field f of segment seg into c->rep. */
static void split_rep(fc *c, long seg, uint32_t f, uint32_t r)
{
    fc_rep *k = &c->rep;
    k->seg = seg;
    k->f = f;
    k->r = r;
    k->n = 0;
    k->more = false;
    k->subs = 0;
    hl7_span field;
    if (hl7_raw(c->m, (uint32_t)seg, f, 0, 0, 0, &field) == HL7_ABSENT) return;
    /* an undeclared delimiter ('\0') is replaced by the field separator,
     * which a field never holds: then it splits nothing */
    char rep = c->d->rep ? c->d->rep : c->d->field;
    char comp = c->d->comp ? c->d->comp : c->d->field;
    char sub = c->d->sub ? c->d->sub : c->d->field;
    const char *p = field.p, *end = field.p + field.len;
    for (uint32_t i = 1; i < r; i++) { /* to repetition r */
        p = find_char(p, end, rep);
        if (p == end) return;
        p++;
    }
    split_comps(k, p, end, comp, rep, sub);
}

/* hl7_raw(...) == HL7_VALUE, reading components through c->rep; the text
 * goes to *p and *len. */
static bool raw_value(fc *c, long seg, uint32_t f, uint32_t r, uint32_t comp, uint32_t sub,
                      const char **p, size_t *len)
{
    if (seg < 0) return false;
    if (comp && r && !(f <= 2 && fc_is(c, seg, "MSH"))) { /* MSH-1, MSH-2 are not split */
        const fc_rep *k = &c->rep;
        if (k->seg != seg || k->f != f || k->r != r) split_rep(c, seg, f, r);
        if (comp <= k->n) {
            *p = k->cp[comp - 1];
            *len = k->cl[comp - 1];
            if (sub > 1 || (sub == 1 && (k->subs >> (comp - 1) & 1)))
                if (!nth_piece(p, len, c->d->sub, sub)) return false;
            return *len && !(*len == 2 && (*p)[0] == '"' && (*p)[1] == '"');
        }
        if (!k->more) return false;
    }
    hl7_span s;
    if (hl7_raw(c->m, (uint32_t)seg, f, r, comp, sub, &s) != HL7_VALUE) return false;
    *p = s.p;
    *len = s.len;
    return true;
}

/* Remembers v (len bytes to its first NUL; plain: no byte JSON escapes)
 * for fc_text. */
static const char *recent(fc *c, const char *v, size_t len, bool plain)
{
    fc_recent *r = &c->recent;
    unsigned i = r->next++ % FC_RECENT;
    r->p[i] = v;
    r->len[i] = (uint32_t)len;
    r->plain[i] = plain;
    return v;
}

const char *fc_val(fc *c, long seg, uint32_t f, uint32_t r, uint32_t comp, uint32_t sub)
{
    const char *p;
    size_t len;
    if (!raw_value(c, seg, f, r, comp, sub, &p, &len)) return NULL;
    unsigned raw = scan_raw(p, len, c->d->esc);
    if (!(raw & RAW_CHANGES))
        return recent(c, ftree_strndup(c->t, p, len), len, !(raw & RAW_SPECIAL));
    tbuf *b = &c->cv->scratch;
    tbuf_reset(b);
    hl7_unescape(c->d, hl7_charset_of(c->m), p, len, b);
    if (!b->len) return NULL;
    const char *v = ftree_strndup(c->t, b->p, b->len);
    /* decoded text is valid UTF-8 (hl7_unescape's promise); a \X00\ ends it */
    return recent(c, v, strlen(v), false);
}

ftree_node *fc_text(fc *c, const char *s)
{
    const fc_recent *r = &c->recent;
    for (unsigned i = 0; i < FC_RECENT; i++)
        if (r->p[i] == s) return ftree_string_borrowed(c->t, s, r->len[i], r->plain[i]);
    return ftree_string(c->t, s);
}

const char *fc_lookup(fc *c, fhir_table_id t, const char *key)
{
    return fhir_table_lookup(c->tables, t, key);
}

bool fc_part(const char *v, int part, char *out, size_t cap)
{
    if (!v) return false;
    const char *bar = strchr(v, '|');
    const char *p = part == 0 ? v : bar ? bar + 1 : "";
    size_t n = part == 0 && bar ? (size_t)(bar - v) : strlen(p);
    size_t k = n < cap - 1 ? n : cap - 1;
    memcpy(out, p, k);
    out[k] = '\0';
    return n > 0;
}


ftree_node *fc_ref(fc *c, const char *ref)
{
    ftree_node *r = fc_obj(c);
    fc_plain(c, r, "reference", ref);
    return r;
}

ftree_node *fc_coding_(fc *c, ftree_node *system, const char *code)
{
    ftree_node *value = code ? ftree_string(c->t, code) : NULL;
    if (!value) return NULL;
    ftree_node *coding = fc_obj(c);
    ftree_set(coding, "system", system);
    ftree_set(coding, "code", value);
    return coding;
}

ftree_node *fc_concept_(fc *c, ftree_node *system, const char *code, const char *display)
{
    ftree_node *coding = fc_obj(c);
    ftree_set(coding, "system", system);
    fc_const(c, coding, "code", code);
    if (display) fc_const(c, coding, "display", display);
    ftree_node *cc = fc_obj(c);
    fc_push(c, cc, "coding", coding);
    return cc;
}

/* Appends s to out percent-encoding everything but RFC 3986 unreserved. */
static void uri_part(tbuf *out, const char *s)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (isalnum(ch) || strchr("-._~", ch))
            tbuf_putc(out, (char)ch);
        else
            tbuf_printf(out, "%%%02X", ch);
    }
}

static bool is_oid(const char *s)
{
    if (!s || !isdigit((unsigned char)*s)) return false;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s) && *s != '.') return false;
    return s[-1] != '.';
}

void fc_code_system(fc *c, const char *name, tbuf *out)
{
    const char *known = fc_lookup(c, FHIR_TAB_CODE_SYSTEMS, name);
    if (known) {
        tbuf_puts(out, known);
    } else if (!strncmp(name, "HL7", 3) && strlen(name) == 7) {
        tbuf_printf(out, "http://terminology.hl7.org/CodeSystem/v2-%s", name + 3);
    } else if (is_oid(name)) {
        tbuf_printf(out, "urn:oid:%s", name);
    } else {
        tbuf_puts(out, "urn:tern:cs:");
        uri_part(out, name);
    }
}

bool fc_is(fc *c, long i, const char *id)
{
    if (i < 0 || (uint32_t)i >= hl7_seg_count(c->m)) return false;
    return fc_id_is(hl7_seg_at(c->m, (uint32_t)i)->id, id);
}

/* --- dates ---------------------------------------------------------------- */

static bool digits(const char *s, int n)
{
    for (int i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i])) return false;
    return true;
}

static int num2(const char *s)
{
    return (s[0] - '0') * 10 + (s[1] - '0');
}

/* Parses a "+HHMM"/"-HHMM" offset into "+HH:MM" (8 bytes). */
static bool parse_offset(const char *s, char out[8])
{
    if ((*s != '+' && *s != '-') || strlen(s) != 5 || !digits(s + 1, 4)) return false;
    if (num2(s + 1) > 14 || num2(s + 3) > 59) return false;
    const char text[7] = {s[0], s[1], s[2], ':', s[3], s[4], '\0'};
    memcpy(out, text, sizeof text);
    return true;
}

/* Length of the start of s before any of '.', '+', '-' (strcspn). */
static size_t whole_len(const char *s)
{
    size_t n = 0;
    while (s[n] && s[n] != '.' && s[n] != '+' && s[n] != '-')
        n++;
    return n;
}

bool fhir_datetime(const char *dtm, const char *offset, bool date_only, tbuf *out)
{
    char tz[8] = "";
    size_t int_len = whole_len(dtm), n = int_len; /* n: up to the offset */
    while (dtm[n] && dtm[n] != '+' && dtm[n] != '-')
        n++;
    if (dtm[n] && !parse_offset(dtm + n, tz)) return false;
    if (int_len < 4 || int_len % 2 || int_len > 14 || !digits(dtm, (int)int_len)) return false;
    const char *frac = dtm[int_len] == '.' ? dtm + int_len + 1 : NULL;
    size_t frac_len = frac ? n - int_len - 1 : 0;
    if (frac && (frac_len == 0 || int_len != 14 || !digits(frac, (int)frac_len))) return false;
    if (int_len >= 6 && (num2(dtm + 4) < 1 || num2(dtm + 4) > 12)) return false;
    if (int_len >= 8 && (num2(dtm + 6) < 1 || num2(dtm + 6) > 31)) return false;
    if (int_len >= 10 && num2(dtm + 8) > 23) return false;
    if (int_len >= 12 && num2(dtm + 10) > 59) return false;
    if (int_len >= 14 && num2(dtm + 12) > 60) return false;
    if (!strncmp(dtm, "0000", 4)) return false;

    /* "YYYY-MM-DD", then "THH:MM:SS", fraction and zone for a time */
    const char *zone = tz[0] ? tz : offset && *offset ? offset : "Z";
    size_t zone_len = strlen(zone);
    tbuf_grow(out, 20 + frac_len + zone_len);
    char *p = out->p + out->len;
    memcpy(p, dtm, 4);
    p += 4;
    for (size_t i = 4; i < 8 && i < int_len; i += 2) {
        *p++ = '-';
        memcpy(p, dtm + i, 2);
        p += 2;
    }
    if (int_len > 8 && !date_only) {
        for (size_t i = 8; i < 14; i += 2) {
            *p++ = i == 8 ? 'T' : ':';
            memcpy(p, i < int_len ? dtm + i : "00", 2);
            p += 2;
        }
        if (frac) {
            *p++ = '.';
            memcpy(p, frac, frac_len);
            p += frac_len;
        }
        memcpy(p, zone, zone_len);
        p += zone_len;
    }
    out->len = (size_t)(p - out->p);
    out->p[out->len] = '\0';
    return true;
}

ftree_node *fc_date_node(fc *c, long seg, uint32_t f, uint32_t comp, int kind)
{
    const char *v = comp ? fc_val(c, seg, f, 1, comp, 1) : fc_val(c, seg, f, 1, 1, 1);
    if (!v) return NULL;
    size_t whole = whole_len(v);
    if (kind == FC_INSTANT && whole < 14) return NULL;
    if (kind == FC_INSTANT_MIN && whole < 12) return NULL;
    tbuf *date = &c->cv->date;
    tbuf_reset(date);
    if (!fhir_datetime(v, c->offset, kind == FC_DATE, date)) return NULL;
    /* never empty, and valid UTF-8 unless a configured offset is not: checked */
    return ftree_stringn(c->t, date->p, date->len);
}

/* --- data types ------------------------------------------------------------ */

static ftree_node *coding_at(fc *c, long seg, uint32_t f, uint32_t r, uint32_t comp, uint32_t first)
{
#define PART(i)                                                                                    \
    (comp ? fc_val(c, seg, f, r, comp, first + (i)) : fc_val(c, seg, f, r, first + (i), 1))
    const char *code = PART(0);
    if (!code) return NULL;
    ftree_node *coding = fc_obj(c);
    const char *sys = PART(2);
    if (sys) {
        tbuf *b = &c->cv->text;
        tbuf_reset(b);
        fc_code_system(c, sys, b);
        fc_str(c, coding, "system", b->p);
    }
    fc_str(c, coding, "code", code);
    fc_str(c, coding, "display", PART(1));
#undef PART
    return coding;
}

ftree_node *fc_codeable(fc *c, long seg, uint32_t f, uint32_t r, uint32_t comp)
{
    ftree_node *cc = fc_obj(c);
    fc_push(c, cc, "coding", coding_at(c, seg, f, r, comp, 1));
    fc_push(c, cc, "coding", coding_at(c, seg, f, r, comp, 4));
    const char *text = comp ? fc_val(c, seg, f, r, comp, 2) : fc_val(c, seg, f, r, 2, 1);
    if (!text) text = comp ? fc_val(c, seg, f, r, comp, 5) : fc_val(c, seg, f, r, 5, 1);
    fc_str(c, cc, "text", text);
    return ftree_size(cc) ? cc : NULL;
}

ftree_node *fc_codeable_req(fc *c, long seg, uint32_t f)
{
    ftree_node *cc = fc_codeable(c, seg, f, 1, 0);
    if (cc) return cc;
    cc = fc_obj(c);
    fc_lit(c, cc, "text", "unknown");
    return cc;
}

bool fc_hd_system(fc *c, long seg, uint32_t f, uint32_t r, uint32_t comp, tbuf *out)
{
    const char *ns = comp ? fc_val(c, seg, f, r, comp, 1) : fc_val(c, seg, f, r, 1, 1);
    const char *known = fhir_table_lookup_user(c->tables, FHIR_TAB_AUTHORITIES, ns);
    if (known) { /* a configured namespace wins over the OID the HD carries */
        tbuf_puts(out, known);
        return true;
    }
    known = fc_lookup(c, FHIR_TAB_AUTHORITIES, ns);
    const char *uid = comp ? fc_val(c, seg, f, r, comp, 2) : fc_val(c, seg, f, r, 2, 1);
    const char *type = comp ? fc_val(c, seg, f, r, comp, 3) : fc_val(c, seg, f, r, 3, 1);
    if (uid && (is_oid(uid) || (type && !strcmp(type, "ISO")))) {
        tbuf_puts(out, "urn:oid:");
        tbuf_puts(out, uid);
    } else if (uid && type && !strcmp(type, "UUID")) {
        tbuf_puts(out, "urn:uuid:");
        for (const char *p = uid; *p; p++)
            tbuf_putc(out, (char)tolower((unsigned char)*p));
    } else if (known) {
        tbuf_puts(out, known);
    } else if (ns || uid) {
        ns = comp ? fc_val(c, seg, f, r, comp, 1) : fc_val(c, seg, f, r, 1, 1);
        if (!ns) uid = comp ? fc_val(c, seg, f, r, comp, 2) : fc_val(c, seg, f, r, 2, 1);
        tbuf_puts(out, "urn:tern:id:");
        uri_part(out, ns ? ns : uid);
    } else {
        return false;
    }
    return true;
}

ftree_node *fc_identifier(fc *c, long seg, uint32_t f, uint32_t r, uint32_t hd_comp,
                          const char *type, const char *res_type, tbuf *key)
{
    const char *value = fc_val(c, seg, f, r, 1, 1);
    if (!value) return NULL;
    ftree_node *id = fc_obj(c);
    tbuf *sys = &c->cv->text;
    tbuf_reset(sys);
    if (type) {
        ftree_node *cc = fc_obj(c);
        fc_push(c, cc, "coding", fc_coding(c, SYS_V2_0203, type));
        ftree_set(id, "type", cc);
    }
    if (fc_hd_system(c, seg, f, r, hd_comp, sys)) fc_str(c, id, "system", sys->p);
    fc_str(c, id, "value", value);
    if (key) { /* res_type|system|value */
        tbuf_puts(key, res_type);
        tbuf_putc(key, '|');
        tbuf_put(key, sys->p, sys->len);
        tbuf_putc(key, '|');
        tbuf_puts(key, value);
    }
    return id;
}

ftree_node *fc_name(fc *c, long seg, uint32_t f, uint32_t r, uint32_t first)
{
    /* XPN: 1 family, 2 given, 3 middle, 4 suffix, 5 prefix, 6 degree, 7 use;
     * XCN is the same shifted by one (XCN-1 is the id). */
    uint32_t o = first - 1;
    ftree_node *name = fc_obj(c);
    fc_str(c, name, "family", fc_val(c, seg, f, r, o + 1, 1));
    for (uint32_t comp = 2; comp <= 3; comp++) {
        const char *g = fc_val(c, seg, f, r, o + comp, 1);
        if (g) fc_push(c, name, "given", fc_text(c, g));
    }
    const char *prefix = fc_val(c, seg, f, r, o + 5, 1);
    if (prefix) fc_push(c, name, "prefix", fc_text(c, prefix));
    for (uint32_t comp = 4; comp <= 6; comp += 2) {
        const char *s = fc_val(c, seg, f, r, o + comp, 1);
        if (s) fc_push(c, name, "suffix", fc_text(c, s));
    }
    if (!ftree_size(name)) return NULL;
    if (first == 1)
        fc_str(c, name, "use", fc_lookup(c, FHIR_TAB_NAME_USES, fc_val(c, seg, f, r, 7, 1)));
    return name;
}

ftree_node *fc_address(fc *c, long seg, uint32_t f, uint32_t r)
{
    ftree_node *a = fc_obj(c);
    for (uint32_t comp = 1; comp <= 2; comp++) {
        const char *line = fc_val(c, seg, f, r, comp, 1);
        if (line) fc_push(c, a, "line", fc_text(c, line));
    }
    fc_str(c, a, "city", fc_val(c, seg, f, r, 3, 1));
    fc_str(c, a, "state", fc_val(c, seg, f, r, 4, 1));
    fc_str(c, a, "postalCode", fc_val(c, seg, f, r, 5, 1));
    fc_str(c, a, "country", fc_val(c, seg, f, r, 6, 1));
    if (!ftree_size(a)) return NULL;
    fc_str(c, a, "use", fc_lookup(c, FHIR_TAB_ADDRESS_USES, fc_val(c, seg, f, r, 7, 1)));
    return a;
}

void fc_telecoms(fc *c, long seg, uint32_t f, const char *default_use, ftree_node *res)
{
    uint32_t n = seg < 0 ? 0 : hl7_rep_count(c->m, (uint32_t)seg, f);
    for (uint32_t r = 1; r <= n; r++) {
        const char *use = fc_val(c, seg, f, r, 2, 1);
        const char *equip = fc_val(c, seg, f, r, 3, 1);
        const char *value = fc_val(c, seg, f, r, 1, 1);
        const char *email = fc_val(c, seg, f, r, 4, 1);
        const char *system = fc_lookup(c, FHIR_TAB_TELECOM_SYSTEMS, equip);
        tbuf number = TBUF_INIT;
        if (!value && email) {
            value = email;
            system = "email";
        } else if (!value) { /* v2.5: XTN-5 country, XTN-6 area, XTN-7 number, XTN-8 ext. */
            for (uint32_t comp = 5; comp <= 8; comp++) {
                const char *part = fc_val(c, seg, f, r, comp, 1);
                if (!part) continue;
                if (comp == 8 && !number.len) break;
                tbuf_printf(&number, "%s%s%s", number.len ? " " : "",
                            comp == 5   ? "+"
                            : comp == 8 ? "ext. "
                                        : "",
                            part);
            }
            if (number.len) value = number.p;
        }
        if (!value) {
            tbuf_free(&number);
            continue;
        }
        ftree_node *t = fc_obj(c);
        fc_str(c, t, "system", system ? system : (use && !strcmp(use, "NET")) ? "email" : "phone");
        fc_str(c, t, "value", value);
        const char *u = fc_lookup(c, FHIR_TAB_TELECOM_USES, use);
        fc_str(c, t, "use", equip && !strcmp(equip, "CP") ? "mobile" : u ? u : default_use);
        fc_push(c, res, "telecom", t);
        tbuf_free(&number);
    }
}

/* The common "[+-]digits[.digits]" with at most 15 digits, read exactly as
 * strtod reads it: the digits make an integer m < 2^53 and 10^k (k <= 15)
 * is exact, so m / 10^k is one correctly rounded division (Clinger's fast
 * path). Returns where the number ends, or NULL when s is not of that form
 * or what follows could make strtod read on ("1e5", "0x1p3", "12345..."). */
static const char *simple_decimal(const char *s, double *out)
{
    const char *p = s;
    bool neg = *p == '-';
    if (*p == '-' || *p == '+') p++;
    uint64_t m = 0;
    int digits = 0, frac = 0;
    bool point = false;
    for (;; p++) {
        if (*p >= '0' && *p <= '9') {
            m = m * 10 + (uint64_t)(*p - '0');
            digits++;
            frac += point;
        } else if (*p == '.' && !point) {
            point = true;
        } else {
            break;
        }
    }
    if (!digits || digits > 15 || isalnum((unsigned char)*p)) return NULL;
    static const double pow10[] = {1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                   1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
    double v = (double)m / pow10[frac];
    *out = neg ? -v : v;
    return p;
}

bool fc_number(const char *s, double *out)
{
    char *end;
    if (!s || !*s || isspace((unsigned char)*s)) return false;
    const char *p = simple_decimal(s, out);
    if (p) return *p == '\0';
    *out = strtod(s, &end);
    return end != s && *end == '\0' && strspn(s, "+-0123456789.") == strlen(s);
}

double fc_number_prefix(const char *s, const char **end)
{
    double v;
    const char *p = simple_decimal(s, &v);
    if (p) {
        *end = p;
        return v;
    }
    char *e;
    v = strtod(s, &e);
    *end = e;
    return v;
}

/* An integer when v is one, else a real; NULL when v is not finite (a
 * value too large for a double), as jansson's json_real refused it. */
static ftree_node *number(fc *c, double v)
{
    if (!isfinite(v)) return NULL;
    if (v > -1e15 && v < 1e15 && v == (double)(long long)v)
        return ftree_integer(c->t, (long long)v);
    return ftree_real(c->t, v);
}

fc_unit fc_unit_of(fc *c, const char *text, const char *system)
{
    fc_unit u = {text, system, fc_lookup(c, FHIR_TAB_UNITS, text), NULL, NULL, false};
    if (!text) return u;
    /* what fc_str would set, made once */
    u.unit = *text ? fc_text(c, text) : NULL;
    u.ucum_system = !system || !strcmp(system, "UCUM") || !strcmp(system, "ISO+");
    const char *code = u.ucum ? u.ucum : text;
    if (u.ucum_system && *code) u.code = code == text ? u.unit : fc_text(c, code);
    return u;
}

fc_unit fc_unit_at(fc *c, long seg, uint32_t f)
{
    const char *text = fc_val(c, seg, f, 1, 1, 1);
    return fc_unit_of(c, text, fc_val(c, seg, f, 1, 3, 1));
}

ftree_node *fc_quantity(fc *c, double v, const fc_unit *u)
{
    ftree_node *q = fc_obj(c);
    ftree_set(q, "value", number(c, v));
    if (u->text) {
        if (u->unit) ftree_set(q, "unit", ftree_string_share(c->t, u->unit));
        if (u->ucum_system) {
            fc_lit(c, q, "system", SYS_UCUM);
            if (u->code) ftree_set(q, "code", ftree_string_share(c->t, u->code));
        }
    }
    return q;
}

/* --- resources and entries --------------------------------------------------- */

ftree_node *fc_resource_(fc *c, ftree_node *type, const char *id)
{
    ftree_node *r = fc_obj(c);
    ftree_set(r, "resourceType", type);
    fc_plain(c, r, "id", id);
    return r;
}

void fc_ref_of(char ref[FC_REF], const char *type, const char *id)
{
    size_t tl = strlen(type), il = strlen(id);
    if (tl > FC_REF - 1) tl = FC_REF - 1;
    memcpy(ref, type, tl);
    if (tl < FC_REF - 1) ref[tl++] = '/';
    if (il > FC_REF - 1 - tl) il = FC_REF - 1 - tl;
    memcpy(ref + tl, id, il);
    ref[tl + il] = '\0';
}

void fc_cat(tbuf *out, ...)
{
    va_list ap;
    va_start(ap, out);
    for (const char *s; (s = va_arg(ap, const char *));)
        tbuf_puts(out, s);
    va_end(ap);
}

void fc_copy(char *out, size_t cap, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n > cap - 1) n = cap - 1;
    memcpy(out, s ? s : "", n);
    out[n] = '\0';
}

void fc_put_uint(tbuf *out, unsigned n)
{
    char buf[16];
    char *p = buf + sizeof buf;
    do {
        *--p = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    tbuf_put(out, p, (size_t)(buf + sizeof buf - p));
}

void fc_add(fc *c, ftree_node *r, char *ref)
{
    const char *type = ftree_str(ftree_get(r, "resourceType"));
    const char *id = ftree_str(ftree_get(r, "id"));
    char *url = ftree_alloc(c->t, FC_REF);
    fc_ref_of(url, type, id);
    if (ref) memcpy(ref, url, FC_REF);
    uint64_t head; /* ids are hex digests: their first bytes are as good as a hash */
    memcpy(&head, id, 8);
    unsigned bit = (unsigned)(head ^ head >> 29 ^ head >> 43) & 1023;
    if (c->id_seen[bit / 64] >> (bit % 64) & 1) {
        for (size_t i = 0; i + 32 <= c->cv->ids.len; i += 32)
            if (!memcmp(c->cv->ids.p + i, id, 32)) return; /* r stays out of the Bundle */
    }
    c->id_seen[bit / 64] |= 1ull << (bit % 64);
    tbuf_put(&c->cv->ids, id, 32);
    ftree_node *e = fc_obj(c);
    if (c->opt && c->opt->base_url) {
        tbuf full = TBUF_INIT;
        tbuf_printf(&full, "%s/%s", c->opt->base_url, url);
        fc_str(c, e, "fullUrl", full.p);
        tbuf_free(&full);
    }
    ftree_set(e, "resource", r);
    ftree_node *req = fc_obj(c);
    fc_lit(c, req, "method", "PUT");
    ftree_set(req, "url", ftree_string_borrowed(c->t, url, strlen(url), true)); /* Type/hex */
    ftree_set(e, "request", req);
    ftree_append(c->entries, e);
}

void fc_id_from(fc *c, tbuf *key, const char *type, const char *label, char id[33])
{
    if (!key->len) {
        const char *ctl = fc_val(c, 0, 10, 1, 1, 1);
        fc_cat(key, type, "|msh10|", ctl ? ctl : "", "|", label, NULL);
    }
    fc_stable_id(c, key->p, id);
}

/* --- entry point ---------------------------------------------------------------- */

typedef struct converter {
    const char *type, *trigger;
    void (*run)(fc *c);
} converter;

static const converter converters[] = {
    {"ADT", "A01", fc_convert_adt},   {"ADT", "A02", fc_convert_adt},
    {"ADT", "A03", fc_convert_adt},   {"ADT", "A04", fc_convert_adt},
    {"ADT", "A08", fc_convert_adt},   {"ADT", "A11", fc_convert_adt},
    {"ADT", "A13", fc_convert_adt},   {"ADT", "A28", fc_convert_adt},
    {"ADT", "A31", fc_convert_adt},   {"ADT", "A40", fc_convert_merge},
    {"ORU", "R01", fc_convert_oru},   {"ORM", "O01", fc_convert_order},
    {"OML", "O21", fc_convert_order}, {"RDE", "O11", fc_convert_rde},
    {"VXU", "V04", fc_convert_vxu},   {"MDM", "T02", fc_convert_mdm},
    {"SIU", "S12", fc_convert_siu},
};
#define SUPPORTED                                                                                  \
    "ADT^A01 A02 A03 A04 A08 A11 A13 A28 A31 A40, ORU^R01, ORM^O01, OML^O21, RDE^O11, VXU^V04, "   \
    "MDM^T02, SIU^S12"

const char *fhir_supported_types(void)
{
    return SUPPORTED;
}

static fhir_status fail(fhir_error *err, fhir_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static fhir_status fail(fhir_error *err, fhir_status code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->text, sizeof err->text, fmt, ap);
        va_end(ap);
    }
    return code;
}

fhir_converter *fhir_converter_new(void)
{
    fhir_converter *cv = xcalloc(1, sizeof(*cv));
    cv->tree = ftree_new();
    cv->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    cv->md_init = cv->sha256 ? EVP_MD_CTX_new() : NULL;
    if (cv->md_init && EVP_DigestInit_ex2(cv->md_init, cv->sha256, NULL))
        cv->md_ctx = EVP_MD_CTX_new(); /* else NULL: fhir_stable_id() */
    return cv;
}

void fhir_converter_free(fhir_converter *cv)
{
    if (!cv) return;
    ftree_free(cv->tree);
    tbuf_free(&cv->scratch);
    tbuf_free(&cv->date);
    tbuf_free(&cv->ids);
    tbuf_free(&cv->text);
    EVP_MD_CTX_free(cv->md_ctx);
    EVP_MD_CTX_free(cv->md_init);
    EVP_MD_free(cv->sha256);
    free(cv);
}

fhir_status fhir_convert(fhir_converter *cv, const hl7_msg *m, const fhir_options *opt,
                         ftree_node **bundle, fhir_error *err)
{
    assert(cv && m && bundle);
    *bundle = NULL;
    ftree_clear(cv->tree);
    tbuf_reset(&cv->ids);
    fc c = {.cv = cv,
            .m = m,
            .d = hl7_delims_of(m),
            .opt = opt,
            .tables = opt ? opt->tables : NULL,
            .t = cv->tree,
            .rep.seg = -1};
    char type[16] = "", trigger[16] = "";
    const char *t = fc_val(&c, 0, 9, 1, 1, 1);
    fc_copy(type, sizeof type, t);
    t = fc_val(&c, 0, 9, 1, 2, 1);
    fc_copy(trigger, sizeof trigger, t);
    c.trigger = trigger;
    const converter *conv_fn = NULL;
    for (size_t i = 0; i < sizeof converters / sizeof converters[0]; i++)
        if (!strcmp(converters[i].type, type) && !strcmp(converters[i].trigger, trigger))
            conv_fn = &converters[i];
    if (!conv_fn)
        return fail(err, FHIR_ERR_UNSUPPORTED,
                    "%s^%s is not converted yet (supported: " SUPPORTED ")",
                    type[0] ? type : "(no MSH-9)", trigger);
    uint32_t npid = hl7_seg_occurrences(m, "PID");
    if (npid > 1)
        return fail(err, FHIR_ERR_UNSUPPORTED,
                    "a message with %u PID segments (several patients) is not converted yet", npid);
    if (hl7_seg_find(m, "PID", 1) < 0)
        return fail(err, FHIR_ERR_MISSING, "%s^%s has no PID segment: a Patient cannot be built",
                    type, trigger);
    const char *msh7 = fc_val(&c, 0, 7, 1, 1, 1);
    const char *off = msh7 ? msh7 + strcspn(msh7, "+-") : "";
    if (!*off || !parse_offset(off, c.offset))
        snprintf(c.offset, sizeof c.offset, "%s",
                 opt && opt->default_offset ? opt->default_offset : "Z");
    c.entries = ftree_array(c.t);
    conv_fn->run(&c);
    ftree_node *b = fc_obj(&c);
    fc_lit(&c, b, "resourceType", "Bundle");
    fc_lit(&c, b, "type", "transaction");
    ftree_set(b, "entry", c.entries);
    *bundle = b;
    /* a huge value (a document in an OBX) must not stay in a long-lived
     * converter: the scratch buffers keep at most 1 MiB, like the tree */
    tbuf *scratch[] = {&cv->scratch, &cv->date, &cv->ids, &cv->text};
    for (size_t i = 0; i < sizeof scratch / sizeof scratch[0]; i++)
        if (scratch[i]->cap > FC_KEEP) tbuf_free(scratch[i]);
    return FHIR_OK;
}
