/*
 * ftree: JSON documents in an arena (see ftree.h; the layouts and the hot
 * fast paths are inline there, this file has the rest).
 *
 * Arena: a list of blocks, the newest first, allocated from by bumping a
 * pointer; a block is 16 KiB to 1 MiB (doubling), or exactly the size of
 * one larger request. ftree_clear() frees them and keeps one block as
 * large as the document was (at most 1 MiB), so a converter that reuses
 * its tree stops calling malloc after the first message.
 *
 * Node: one struct for every value, with its sibling link and, inside an
 * object, its key and the key's length: a container is a singly linked
 * list (first, last) of its children, so append, prepend and
 * replace-in-place are O(1) once the position is found; a key lookup
 * compares lengths before bytes. An object also keeps a 64-bit mask of
 * the keys it holds (one bit per key, from its length and end bytes): a
 * key whose bit is not set is not there, so most sets append without a
 * scan and most failed lookups stop at once. Strings keep their length
 * and, when it is known, that they need no escape: literals (folded at
 * compile time), checked copies, text the caller vouches for.
 *
 * Writer: strings known to need no escape are copied as they are (whole
 * words, overlapping at the end); the others are copied 8 bytes at a time
 * while checking for bytes JSON escapes ('"', '\\', control characters),
 * and escaped byte by byte from the first chunk that has one. Reals are
 * formatted here, exactly as glibc's "%.*g" (digits from base/dround.h),
 * not with snprintf. The rules
 * are jansson 2.14's compact dump:
 * "," and ":" without spaces; only '"', '\\' and control characters
 * escaped (\b \f \n \r \t, else \u00XX; '/' and UTF-8 as they are);
 * integers in decimal; reals as "%.*g" with ".0" appended when the text
 * would read as an integer, and no '+' or leading zeros in the exponent.
 */
#include "fhir/ftree.h"

#include <assert.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/dround.h"
#include "base/mem.h"

#define BLOCK_MIN (16u << 10)
#define BLOCK_MAX (1u << 20)
#define ALIGN FTREE_ALIGN_

struct ftree_block {
    struct ftree_block *next;
    size_t size; /* bytes of data after the header */
};
typedef struct ftree_block block;

/* --- arena ----------------------------------------------------------------------------- */

static void add_block(ftree *t, size_t need)
{
    size_t size = t->blocks ? t->blocks->size * 2 : BLOCK_MIN;
    if (size > BLOCK_MAX) size = BLOCK_MAX;
    if (size < need) size = need;
    block *b = xmalloc(sizeof(block) + size);
    b->next = t->blocks;
    b->size = size;
    t->blocks = b;
    t->total += size;
    t->ptr = (char *)(b + 1);
    t->end = t->ptr + size;
}

ftree *ftree_new(void)
{
    return xcalloc(1, sizeof(ftree));
}

static void free_blocks(ftree *t)
{
    for (block *b = t->blocks, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    t->blocks = NULL;
    t->ptr = t->end = NULL;
    t->total = 0;
}

void ftree_free(ftree *t)
{
    if (!t) return;
    free_blocks(t);
    free(t);
}

void ftree_clear(ftree *t)
{
    assert(t);
    if (!t->blocks) return;
    if (t->blocks->next) { /* several blocks: one that holds them all next time */
        size_t keep = t->total < BLOCK_MAX ? t->total : BLOCK_MAX;
        free_blocks(t);
        add_block(t, keep);
        return;
    }
    t->ptr = (char *)(t->blocks + 1);
}

void *ftree_alloc_slow_(ftree *t, size_t n)
{
    add_block(t, n);
    void *p = t->ptr;
    t->ptr += n;
    return p;
}

/* --- values ---------------------------------------------------------------------------- */

typedef ftree_object_ object;

static uint64_t *key_mask(ftree_node *obj)
{
    assert(obj->type == FTREE_OBJECT);
    return &((object *)obj)->keys;
}

#define key_bit ftree_key_bit_
#define node ftree_node_

/* Bytes JSON writes as they are: all but '"', '\\' and control characters
 * (bytes >= 0x80 are UTF-8 and kept). */
static bool plain(unsigned char ch)
{
    return ch >= 0x20 && ch != '"' && ch != '\\';
}

/* Length of the UTF-8 sequence at p (1..4) or 0 when it is not valid:
 * jansson's rules (no overlong forms, no surrogates, nothing above
 * U+10FFFF). p is NUL-terminated, so a sequence cut short fails on the
 * NUL, which is not a continuation byte. */
static size_t utf8_len(const unsigned char *p)
{
    unsigned char c = p[0];
    if (c < 0x80) return 1;
    if (c < 0xC2 || c > 0xF4) return 0;
    if (c < 0xE0) return (p[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c < 0xF0) {
        if ((p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && p[1] < 0xA0) return 0; /* overlong */
        if (c == 0xED && p[1] > 0x9F) return 0; /* surrogate */
        return 3;
    }
    if ((p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80) return 0;
    if (c == 0xF0 && p[1] < 0x90) return 0; /* overlong */
    if (c == 0xF4 && p[1] > 0x8F) return 0; /* above U+10FFFF */
    return 4;
}

#define string_node ftree_string_node_

#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

static inline uint64_t special8(uint64_t v);

/* True when s[0..len) is valid UTF-8 (8 ASCII bytes at a time); *plain
 * tells whether it holds no byte JSON escapes. */
static bool valid_utf8(const char *s, size_t len, bool *is_plain)
{
    size_t i = 0;
    bool special = false;
    while (i < len) {
        uint64_t v;
        if (i + 8 <= len && (memcpy(&v, s + i, 8), !(v & HIGHS))) {
            special |= special8(v) != 0;
            i += 8;
            continue;
        }
        if ((unsigned char)s[i] < 0x80) {
            special |= !plain((unsigned char)s[i]);
            i++;
            continue;
        }
        size_t k = utf8_len((const unsigned char *)s + i);
        if (!k || k > len - i) return false;
        i += k;
    }
    *is_plain = !special;
    return true;
}

bool ftree_plain_(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!plain((unsigned char)s[i])) return false;
    return true;
}

ftree_node *ftree_string(ftree *t, const char *s)
{
    return ftree_stringn(t, s, strlen(s));
}

ftree_node *ftree_stringn(ftree *t, const char *s, size_t len)
{
    bool is_plain;
    if (!valid_utf8(s, len, &is_plain)) return NULL;
    return string_node(t, ftree_strndup(t, s, len), len, is_plain);
}

ftree_node *ftree_stringn_nocheck(ftree *t, const char *s, size_t len, bool plain)
{
    return string_node(t, ftree_strndup(t, s, len), len, plain);
}

ftree_node *ftree_integer(ftree *t, long long v)
{
    ftree_node *n = node(t, FTREE_INTEGER);
    n->u.i = v;
    return n;
}

ftree_node *ftree_real(ftree *t, double v)
{
    assert(isfinite(v));
    ftree_node *n = node(t, FTREE_REAL);
    n->u.d = v;
    return n;
}

ftree_node *ftree_bool(ftree *t, bool v)
{
    return node(t, v ? FTREE_TRUE : FTREE_FALSE);
}

ftree_node *ftree_null(ftree *t)
{
    return node(t, FTREE_NULL);
}

ftree_node *ftree_copy(ftree *t, const ftree_node *n)
{
    assert(n);
    if (n->type == FTREE_OBJECT) {
        ftree_node *c = ftree_object(t);
        for (const ftree_node *k = n->u.kids.first; k; k = k->next)
            ftree_setn(c, k->key, k->keylen, ftree_copy(t, k));
        return c;
    }
    ftree_node *c = node(t, (ftree_type)n->type);
    if (n->type == FTREE_ARRAY) {
        for (const ftree_node *k = n->u.kids.first; k; k = k->next)
            ftree_append(c, ftree_copy(t, k));
    } else if (n->type == FTREE_STRING) {
        c->u.s = ftree_strndup(t, n->u.s, n->len);
        c->len = n->len;
        c->flags = n->flags & FTREE_PLAIN_STR_;
    } else {
        c->u = n->u;
    }
    return c;
}

/* --- containers ------------------------------------------------------------------------- */

#define link_last ftree_link_last_

/* Puts v (its key set) in the place of the member with the same key;
 * false when there is none. */
static bool replace_member(ftree_node *obj, ftree_node *v)
{
    ftree_node *prev = NULL;
    for (ftree_node *k = obj->u.kids.first; k; prev = k, k = k->next) {
        if (k->keylen != v->keylen || (k->key != v->key && memcmp(k->key, v->key, v->keylen)))
            continue;
        v->next = k->next;
        if (prev)
            prev->next = v;
        else
            obj->u.kids.first = v;
        if (obj->u.kids.last == k) obj->u.kids.last = v;
        return true;
    }
    return false;
}

void ftree_set_slow_(ftree_node *obj, ftree_node *v)
{
    if (!replace_member(obj, v)) link_last(obj, v);
}

ftree_node *ftree_get_slow_(const ftree_node *obj, const char *key, size_t len)
{
    for (ftree_node *k = obj->u.kids.first; k; k = k->next)
        if (k->keylen == len && (k->key == key || !memcmp(k->key, key, len))) return k;
    return NULL;
}

bool ftree_del(ftree_node *obj, const char *key)
{
    assert(obj && obj->type == FTREE_OBJECT && key);
    size_t len = strlen(key);
    ftree_node *prev = NULL;
    for (ftree_node *k = obj->u.kids.first; k; prev = k, k = k->next) {
        if (k->keylen != len || (k->key != key && memcmp(k->key, key, len))) continue;
        if (prev)
            prev->next = k->next;
        else
            obj->u.kids.first = k->next;
        if (obj->u.kids.last == k) obj->u.kids.last = prev;
        obj->len--;
        return true;
    }
    return false;
}

void ftree_take_members(ftree_node *dst, ftree_node *src)
{
    assert(dst && src && dst->type == FTREE_OBJECT && src->type == FTREE_OBJECT && dst != src);
    ftree_node *k = src->u.kids.first;
    src->u.kids.first = src->u.kids.last = NULL;
    src->len = 0;
    *key_mask(src) = 0;
    while (k) {
        ftree_node *next = k->next;
        ftree_setn(dst, k->key, k->keylen, k);
        k = next;
    }
}

void ftree_prepend(ftree_node *arr, ftree_node *v)
{
    assert(arr && arr->type == FTREE_ARRAY);
    if (!v) return;
    v->key = NULL;
    v->next = arr->u.kids.first;
    arr->u.kids.first = v;
    if (!arr->u.kids.last) arr->u.kids.last = v;
    arr->len++;
}

/* --- reading ------------------------------------------------------------------------------ */

ftree_type ftree_typeof(const ftree_node *n)
{
    return (ftree_type)n->type;
}

static bool is_container(const ftree_node *n)
{
    return n->type == FTREE_OBJECT || n->type == FTREE_ARRAY;
}

size_t ftree_size(const ftree_node *n)
{
    return is_container(n) ? n->len : 0;
}

ftree_node *ftree_first(const ftree_node *n)
{
    return is_container(n) ? n->u.kids.first : NULL;
}

ftree_node *ftree_next(const ftree_node *n)
{
    return n->next;
}

const char *ftree_key(const ftree_node *n)
{
    return n->key;
}

ftree_node *ftree_at(const ftree_node *arr, size_t i)
{
    if (arr->type != FTREE_ARRAY) return NULL;
    ftree_node *k = arr->u.kids.first;
    while (k && i--)
        k = k->next;
    return k;
}

const char *ftree_str(const ftree_node *n)
{
    return n->type == FTREE_STRING ? n->u.s : NULL;
}

size_t ftree_strlen(const ftree_node *n)
{
    return n->type == FTREE_STRING ? n->len : 0;
}

long long ftree_int(const ftree_node *n)
{
    return n->type == FTREE_INTEGER ? n->u.i : 0;
}

double ftree_real_value(const ftree_node *n)
{
    return n->type == FTREE_REAL ? n->u.d : 0;
}

/* --- numbers ------------------------------------------------------------------------------ */

/* The text jansson writes for a real: "%.*g" (ties to even), ".0" when
 * that reads as an integer, the exponent without '+' or leading zeros.
 * buf holds at least 32 bytes; returns the length. */
static size_t format_real(double v, int prec, char *buf)
{
    char *p = buf;
    if (signbit(v)) *p++ = '-';
    if (v == 0) {
        memcpy(p, "0.0", 3);
        return (size_t)(p - buf) + 3;
    }
    char d[DROUND_MAX];
    int x = dround(v, prec, d);
    int n = prec;
    while (n > 1 && d[n - 1] == '0')
        n--;
    if (x < -4 || x >= prec) { /* d.ddde-x */
        *p++ = d[0];
        if (n > 1) {
            *p++ = '.';
            memcpy(p, d + 1, (size_t)n - 1);
            p += n - 1;
        }
        *p++ = 'e';
        if (x < 0) *p++ = '-';
        unsigned ax = (unsigned)(x < 0 ? -x : x);
        char e[8];
        int k = 0;
        do {
            e[k++] = (char)('0' + ax % 10);
            ax /= 10;
        } while (ax);
        while (k)
            *p++ = e[--k];
    } else if (x >= 0) { /* ddd.ddd */
        for (int i = 0; i <= x; i++)
            *p++ = i < n ? d[i] : '0';
        *p++ = '.';
        if (n > x + 1) {
            memcpy(p, d + x + 1, (size_t)(n - x - 1));
            p += n - x - 1;
        } else {
            *p++ = '0';
        }
    } else { /* 0.000ddd */
        *p++ = '0';
        *p++ = '.';
        for (int i = 0; i < -x - 1; i++)
            *p++ = '0';
        memcpy(p, d, (size_t)n);
        p += n;
    }
    return (size_t)(p - buf);
}

/* --- compact text ------------------------------------------------------------------------- */

/* Output position and limit; grows the tbuf as needed. */
typedef struct writer {
    char *p, *end;
    tbuf *out;
    int precision;
} writer;

/* Room for n more bytes at w->p. */
static inline void ensure(writer *w, size_t n)
{
    if ((size_t)(w->end - w->p) >= n) return;
    tbuf *out = w->out;
    out->len = (size_t)(w->p - out->p);
    tbuf_grow(out, n > out->cap ? n : out->cap); /* at least doubles */
    w->p = out->p + out->len;
    w->end = out->p + out->cap - 1; /* keep the byte for tbuf's NUL */
}

/* Nonzero when one of the bytes of v is a control character, '"' or '\\'
 * (the classic "has a byte less than n / equal to c" tests, exact about
 * whether there is one). */
static inline uint64_t special8(uint64_t v)
{
    uint64_t ctl = (v - ONES * 0x20) & ~v;
    uint64_t q = v ^ (ONES * '"');
    uint64_t b = v ^ (ONES * '\\');
    return (ctl | ((q - ONES) & ~q) | ((b - ONES) & ~b)) & HIGHS;
}

static inline uint32_t special4(uint32_t v)
{
    const uint32_t ones = (uint32_t)ONES, highs = (uint32_t)HIGHS;
    uint32_t ctl = (v - ones * 0x20) & ~v;
    uint32_t q = v ^ (ones * '"');
    uint32_t b = v ^ (ones * '\\');
    return (ctl | ((q - ones) & ~q) | ((b - ones) & ~b)) & highs;
}

/* Copies s[0..len) to dst when no byte needs an escape (false otherwise,
 * dst partly written): 8 or 4 bytes at a time, the last chunk overlapping
 * the one before it. */
__attribute__((always_inline)) static inline bool copy_plain(char *dst, const char *s, size_t len)
{
    if (len >= 8) {
        uint64_t v;
        for (size_t i = 0; i + 8 < len; i += 8) {
            memcpy(&v, s + i, 8);
            if (special8(v)) return false;
            memcpy(dst + i, &v, 8);
        }
        memcpy(&v, s + len - 8, 8);
        if (special8(v)) return false;
        memcpy(dst + len - 8, &v, 8);
        return true;
    }
    if (len >= 4) {
        uint32_t a, b;
        memcpy(&a, s, 4);
        memcpy(&b, s + len - 4, 4);
        if (special4(a) | special4(b)) return false;
        memcpy(dst, &a, 4);
        memcpy(dst + len - 4, &b, 4);
        return true;
    }
    for (size_t i = 0; i < len; i++) {
        if (!plain((unsigned char)s[i])) return false;
        dst[i] = s[i];
    }
    return true;
}

static void write_escaped(writer *w, const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    ensure(w, len + 2);
    *w->p++ = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        ensure(w, 7);
        if (plain(ch)) {
            *w->p++ = (char)ch;
            continue;
        }
        char e = ch == '"'    ? '"'
                 : ch == '\\' ? '\\'
                 : ch == '\b' ? 'b'
                 : ch == '\f' ? 'f'
                 : ch == '\n' ? 'n'
                 : ch == '\r' ? 'r'
                 : ch == '\t' ? 't'
                              : 0;
        *w->p++ = '\\';
        if (e) {
            *w->p++ = e;
        } else {
            memcpy(w->p, "u00", 3);
            w->p[3] = hex[ch >> 4];
            w->p[4] = hex[ch & 15];
            w->p += 5;
        }
    }
    *w->p++ = '"';
}

/* Copies s[0..len), known to need no escape, to dst: 8 or 4 bytes at a
 * time, the last chunk overlapping the one before it (s is not read past
 * its end: it may be a literal). */
__attribute__((always_inline)) static inline void copy_known(char *dst, const char *s, size_t len)
{
    if (len >= 8) {
        for (size_t i = 0; i + 8 < len; i += 8)
            memcpy(dst + i, s + i, 8);
        memcpy(dst + len - 8, s + len - 8, 8);
    } else if (len >= 4) {
        memcpy(dst, s, 4);
        memcpy(dst + len - 4, s + len - 4, 4);
    } else {
        for (size_t i = 0; i < len; i++)
            dst[i] = s[i];
    }
}

/* "s" at p (room for len + 2 bytes); returns the end, or NULL when s
 * needs an escape (then the caller writes it with write_escaped). known:
 * s is known to need none. */
__attribute__((always_inline)) static inline char *put_plain(char *p, const char *s, size_t len,
                                                             bool known)
{
    *p = '"';
    if (known)
        copy_known(p + 1, s, len);
    else if (!copy_plain(p + 1, s, len))
        return NULL;
    p[len + 1] = '"';
    return p + len + 2;
}

static void write_integer(writer *w, long long v)
{
    char buf[24];
    char *p = buf + sizeof buf;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) *--p = '-';
    size_t n = (size_t)(buf + sizeof buf - p);
    ensure(w, n);
    memcpy(w->p, p, n);
    w->p += n;
}

static void write_literal(writer *w, const char *s, size_t len)
{
    ensure(w, len);
    memcpy(w->p, s, len);
    w->p += len;
}

static void write_container(writer *w, const ftree_node *n);

/* A value that is not a string nor a container. */
static void write_scalar(writer *w, const ftree_node *n)
{
    switch ((ftree_type)n->type) {
    case FTREE_INTEGER:
        write_integer(w, n->u.i);
        break;
    case FTREE_REAL:
        ensure(w, 32);
        w->p += format_real(n->u.d, w->precision, w->p);
        break;
    case FTREE_TRUE:
        write_literal(w, "true", 4);
        break;
    case FTREE_FALSE:
        write_literal(w, "false", 5);
        break;
    case FTREE_NULL:
        write_literal(w, "null", 4);
        break;
    default:
        assert(!"not a scalar");
    }
}

/* The members or items of n between its brackets. Each one's comma, key
 * and string value (the common case) are written with one room check;
 * strings that need escapes take write_escaped. */
static void write_container(writer *w, const ftree_node *n)
{
    bool obj = n->type == FTREE_OBJECT;
    ensure(w, 2);
    *w->p++ = obj ? '{' : '[';
    for (const ftree_node *k = n->u.kids.first; k; k = k->next) {
        bool str = k->type == FTREE_STRING;
        ensure(w, (size_t)k->keylen + (str ? k->len : 0) + 8);
        char *p = w->p;
        if (k != n->u.kids.first) *p++ = ',';
        if (obj) {
            char *end = put_plain(p, k->key, k->keylen, k->flags & FTREE_PLAIN_KEY_);
            if (!end) {
                w->p = p;
                write_escaped(w, k->key, k->keylen);
                ensure(w, (str ? k->len : 0) + 4);
                end = w->p;
            }
            p = end;
            *p++ = ':';
        }
        if (str) {
            char *end = put_plain(p, k->u.s, k->len, k->flags & FTREE_PLAIN_STR_);
            if (!end) {
                w->p = p;
                write_escaped(w, k->u.s, k->len);
                continue;
            }
            w->p = end;
        } else {
            w->p = p;
            if (k->type == FTREE_OBJECT || k->type == FTREE_ARRAY)
                write_container(w, k);
            else
                write_scalar(w, k);
        }
    }
    ensure(w, 1);
    *w->p++ = obj ? '}' : ']';
}

/* n at the top: any value. */
static void write_top(writer *w, const ftree_node *n)
{
    if (n->type == FTREE_OBJECT || n->type == FTREE_ARRAY) {
        write_container(w, n);
    } else if (n->type == FTREE_STRING) {
        ensure(w, (size_t)n->len + 2);
        char *end = put_plain(w->p, n->u.s, n->len, n->flags & FTREE_PLAIN_STR_);
        if (end)
            w->p = end;
        else
            write_escaped(w, n->u.s, n->len);
    } else {
        write_scalar(w, n);
    }
}

void ftree_write(const ftree_node *n, int real_precision, tbuf *out)
{
    assert(n && out);
    tbuf_grow(out, 256);
    writer w = {out->p + out->len, out->p + out->cap - 1, out,
                real_precision <= 0 || real_precision > 17 ? 17 : real_precision};
    write_top(&w, n);
    out->len = (size_t)(w.p - out->p);
    out->p[out->len] = '\0';
}

/* --- jansson ----------------------------------------------------------------------------- */

json_t *ftree_to_json(const ftree_node *n)
{
    assert(n);
    json_t *j = NULL;
    switch ((ftree_type)n->type) {
    case FTREE_OBJECT:
        j = json_object();
        for (const ftree_node *k = n->u.kids.first; k; k = k->next)
            json_object_set_new_nocheck(j, k->key, ftree_to_json(k));
        break;
    case FTREE_ARRAY:
        j = json_array();
        for (const ftree_node *k = n->u.kids.first; k; k = k->next)
            json_array_append_new(j, ftree_to_json(k));
        break;
    case FTREE_STRING:
        j = json_stringn_nocheck(n->u.s, n->len);
        break;
    case FTREE_INTEGER:
        j = json_integer((json_int_t)n->u.i);
        break;
    case FTREE_REAL:
        j = json_real(n->u.d);
        break;
    case FTREE_TRUE:
        j = json_true();
        break;
    case FTREE_FALSE:
        j = json_false();
        break;
    case FTREE_NULL:
        j = json_null();
        break;
    }
    return j;
}
