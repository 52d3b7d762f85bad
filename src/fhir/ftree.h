/*
 * ftree: a JSON document built in an arena and written as compact text.
 *
 * The FHIR converter builds one Bundle per message: thousands of small
 * values that are written once and thrown away together. An ftree holds
 * such a document: every node and every string lives in the tree's arena
 * (a few large blocks), so building costs no malloc per value and
 * ftree_clear() drops the whole document at once, keeping the memory for
 * the next one. Objects keep their members in insertion order, as a list
 * (objects are small; lookups are linear, no hash table; a 64-bit mask of
 * the keys answers most lookups of a key that is not there). The hot
 * operations are inline (bottom of this file) so that a literal key's
 * length and checks fold at compile time.
 *
 * The text ftree_write() gives is byte for byte what jansson 2.14's
 * json_dumps(JSON_COMPACT | JSON_REAL_PRECISION(p)) gives for the same
 * document (ftree_to_json() builds it), so it can replace jansson on a hot
 * path without changing any output.
 *
 * Ownership: a node belongs to its tree and is valid until ftree_clear()
 * or ftree_free(); a node is in at most one container. Strings are copied
 * into the arena unless a function says it borrows. Out of memory aborts
 * (docs/architecture.md). Not thread-safe: one tree per thread.
 */
#ifndef TERN_FTREE_H
#define TERN_FTREE_H

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <jansson.h>

#include "base/tbuf.h"

typedef struct ftree ftree;
typedef struct ftree_node ftree_node;

typedef enum ftree_type {
    FTREE_OBJECT,
    FTREE_ARRAY,
    FTREE_STRING,
    FTREE_INTEGER,
    FTREE_REAL,
    FTREE_TRUE,
    FTREE_FALSE,
    FTREE_NULL,
} ftree_type;

/* --- the tree and its arena -------------------------------------------------------- */

/* A new empty tree; never NULL. Free with ftree_free(). */
ftree *ftree_new(void);
/* Frees t and every node in it; t may be NULL. */
void ftree_free(ftree *t);
/* Drops every node and string of t (all become invalid) and keeps up to
 * 1 MiB of the memory for the next document. */
void ftree_clear(ftree *t);
/* n bytes (aligned for any node) from t's arena, valid until the next
 * clear; never NULL. (Inline, below.) */
static inline void *ftree_alloc(ftree *t, size_t n);
/* A NUL-terminated copy of s[0..len) in t's arena; never NULL. (Inline.) */
static inline char *ftree_strndup(ftree *t, const char *s, size_t len);

/* --- values (each new, not yet in a container) ----------------------------------------- */

static inline ftree_node *ftree_object(ftree *t);
static inline ftree_node *ftree_array(ftree *t);
/* Copies the C string s; NULL (nothing allocated) when s is not valid
 * UTF-8, as jansson's json_string() refuses it. */
ftree_node *ftree_string(ftree *t, const char *s);
/* Copies s[0..len); NULL (nothing allocated) when it is not valid UTF-8. */
ftree_node *ftree_stringn(ftree *t, const char *s, size_t len);
/* Copies s[0..len), which the caller knows is valid UTF-8 (no check, like
 * json_stringn_nocheck); it may hold NUL bytes. plain: as for
 * ftree_string_borrowed. */
ftree_node *ftree_stringn_nocheck(ftree *t, const char *s, size_t len, bool plain);
/* Borrows s[0..len), which must outlive the tree (a string literal, or
 * memory from ftree_alloc), be valid UTF-8 (not checked) and be followed
 * by a NUL (s[len] == '\0'). plain: the caller knows s holds no byte JSON
 * escapes ('"', '\\', control characters), so the writer copies it as it
 * is; false when unknown. FTREE_PLAIN(s, len) tells, folded for a literal. */
static inline ftree_node *ftree_string_borrowed(ftree *t, const char *s, size_t len, bool plain);
/* A new string node with the text of the string s (which lives as long as
 * the tree: it is shared, not copied). */
static inline ftree_node *ftree_string_share(ftree *t, const ftree_node *s);
#define FTREE_PLAIN(s, len)                                                                        \
    (__builtin_constant_p(strcspn((s), FTREE_SPECIALS_)) ? strcspn((s), FTREE_SPECIALS_) == (len)  \
                                                         : ftree_plain_((s), (len)))
/* s[0..len) holds no byte JSON escapes (FTREE_PLAIN at run time). */
bool ftree_plain_(const char *s, size_t len);
ftree_node *ftree_integer(ftree *t, long long v);
/* v must be finite (JSON has no NaN or infinity; jansson's json_real
 * refuses them). */
ftree_node *ftree_real(ftree *t, double v);
ftree_node *ftree_bool(ftree *t, bool v);
ftree_node *ftree_null(ftree *t);
/* A deep copy of n (and its children) in t; never NULL. */
ftree_node *ftree_copy(ftree *t, const ftree_node *n);

/* --- containers ------------------------------------------------------------------------- */

/* obj[key] = v. key is borrowed (a string literal, or memory that outlives
 * the tree). A key already there keeps its place and gets v (the old value
 * is dropped); a new key goes last. v NULL: nothing happens. v must not be
 * in a container. (ftree_setn: key's length known, key[keylen] == '\0'.) */
static inline void ftree_setn(ftree_node *obj, const char *key, size_t keylen, ftree_node *v);
static inline void ftree_set(ftree_node *obj, const char *key, ftree_node *v);
/* The value of key in obj, or NULL (also when obj is not an object). */
static inline ftree_node *ftree_get(const ftree_node *obj, const char *key);
static inline ftree_node *ftree_getn(const ftree_node *obj, const char *key, size_t keylen);
/* Removes key from obj; false when it was not there. */
bool ftree_del(ftree_node *obj, const char *key);
/* Moves every member of src into dst as ftree_set() would, in src's order
 * (jansson's json_object_update); src is left empty. */
void ftree_take_members(ftree_node *dst, ftree_node *src);
/* Adds v at the end (append) or the front (prepend) of arr; v NULL:
 * nothing happens. v must not be in a container. */
static inline void ftree_append(ftree_node *arr, ftree_node *v);
void ftree_prepend(ftree_node *arr, ftree_node *v);

/* --- reading ------------------------------------------------------------------------------ */

ftree_type ftree_typeof(const ftree_node *n);
/* Members of an object, items of an array, 0 for other values. */
size_t ftree_size(const ftree_node *n);
/* The first member/item of a container, or NULL; then ftree_next(). */
ftree_node *ftree_first(const ftree_node *n);
ftree_node *ftree_next(const ftree_node *n);
/* The key of an object member (NULL for an array item). */
const char *ftree_key(const ftree_node *n);
/* The i-th (0-based) item of an array, or NULL. */
ftree_node *ftree_at(const ftree_node *arr, size_t i);
/* A string's bytes (NUL-terminated) and length; NULL / 0 for non-strings. */
const char *ftree_str(const ftree_node *n);
size_t ftree_strlen(const ftree_node *n);
/* An integer's or a real's value (0 for anything else). */
long long ftree_int(const ftree_node *n);
double ftree_real_value(const ftree_node *n);

/* --- output ----------------------------------------------------------------------------------- */

/* Appends the compact JSON text of n to out: what json_dumps(ftree_to_json(n),
 * JSON_COMPACT | JSON_REAL_PRECISION(real_precision) | JSON_ENCODE_ANY)
 * writes. real_precision: significant digits of reals, 1..17 (0 means 17,
 * jansson's default). */
void ftree_write(const ftree_node *n, int real_precision, tbuf *out);
/* The same document as a new jansson value (caller json_decref()s), for
 * code that needs jansson (the FHIR store, pretty printing, tests). */
json_t *ftree_to_json(const ftree_node *n);

/* --- internals ---------------------------------------------------------------------------
 * The layouts and fast paths of the hot functions, inline so that a
 * literal key's length and mask bit are folded where it is written. Use
 * the functions above, not these fields. */

#define FTREE_ALIGN_ 8u
#define FTREE_KEY_MAX_ UINT16_MAX
/* The bytes JSON escapes but NUL (strcspn stops there: a length check
 * catches it). */
#define FTREE_SPECIALS_                                                                            \
    "\"\\\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14\x15\x16" \
    "\x17"                                                                                         \
    "\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f"

enum {
    FTREE_PLAIN_KEY_ = 1, /* the key needs no escape */
    FTREE_PLAIN_STR_ = 2, /* the string value needs no escape */
};

struct ftree_node {
    ftree_node *next; /* next member or item of the container */
    const char *key;  /* member name inside an object */
    uint32_t len;     /* string bytes, or the number of children */
    uint16_t keylen;
    uint8_t type;
    uint8_t flags; /* FTREE_PLAIN_* */
    union {
        struct {
            ftree_node *first, *last;
        } kids;
        const char *s;
        long long i;
        double d;
    } u;
};

/* An object: its node, and a mask with one bit per key it holds (from the
 * key's length and end bytes): a key whose bit is clear is not there. */
typedef struct ftree_object_ {
    ftree_node n; /* first: an object's node is its address */
    uint64_t keys;
} ftree_object_;

struct ftree {
    struct ftree_block *blocks; /* newest first */
    char *ptr, *end;            /* free space of the newest block */
    size_t total;               /* sum of the blocks' sizes */
};

void *ftree_alloc_slow_(ftree *t, size_t n);
void ftree_set_slow_(ftree_node *obj, ftree_node *v);
ftree_node *ftree_get_slow_(const ftree_node *obj, const char *key, size_t len);

static inline void *ftree_alloc(ftree *t, size_t n)
{
    n = (n + FTREE_ALIGN_ - 1) & ~(size_t)(FTREE_ALIGN_ - 1);
    if ((size_t)(t->end - t->ptr) < n) return ftree_alloc_slow_(t, n);
    void *p = t->ptr;
    t->ptr += n;
    return p;
}

/* Most copies are a few bytes: whole words (overlapping at the end, never
 * reading s past len) beat a call to memcpy. */
static inline char *ftree_strndup(ftree *t, const char *s, size_t len)
{
    char *p = ftree_alloc(t, len + 1);
    if (len >= 8 && len <= 16) {
        uint64_t a, b;
        memcpy(&a, s, 8);
        memcpy(&b, s + len - 8, 8);
        memcpy(p, &a, 8);
        memcpy(p + len - 8, &b, 8);
    } else if (len >= 4 && len < 8) {
        uint32_t a, b;
        memcpy(&a, s, 4);
        memcpy(&b, s + len - 4, 4);
        memcpy(p, &a, 4);
        memcpy(p + len - 4, &b, 4);
    } else if (len < 4) {
        for (size_t i = 0; i < len; i++)
            p[i] = s[i];
    } else {
        memcpy(p, s, len);
    }
    p[len] = '\0';
    return p;
}

static inline ftree_node *ftree_node_(ftree *t, ftree_type type)
{
    ftree_node *n = ftree_alloc(t, sizeof(*n));
    *n = (ftree_node){.type = (uint8_t)type};
    return n;
}

static inline ftree_node *ftree_object(ftree *t)
{
    ftree_object_ *o = ftree_alloc(t, sizeof(*o));
    *o = (ftree_object_){.n.type = FTREE_OBJECT};
    return &o->n;
}

static inline ftree_node *ftree_array(ftree *t)
{
    return ftree_node_(t, FTREE_ARRAY);
}

static inline ftree_node *ftree_string_node_(ftree *t, const char *s, size_t len, bool plain)
{
    assert(len <= UINT32_MAX);
    ftree_node *n = ftree_alloc(t, sizeof(*n));
    *n = (ftree_node){.type = FTREE_STRING,
                      .flags = plain ? FTREE_PLAIN_STR_ : 0,
                      .len = (uint32_t)len,
                      .u.s = s};
    return n;
}

static inline ftree_node *ftree_string_borrowed(ftree *t, const char *s, size_t len, bool plain)
{
    assert(!s[len]);
    return ftree_string_node_(t, s, len, plain);
}

static inline ftree_node *ftree_string_share(ftree *t, const ftree_node *s)
{
    assert(s->type == FTREE_STRING);
    return ftree_string_node_(t, s->u.s, s->len, s->flags & FTREE_PLAIN_STR_);
}

static inline uint64_t ftree_key_bit_(const char *key, size_t len)
{
    unsigned h =
        len ? (unsigned)len * 7 + (unsigned char)key[0] * 3 + (unsigned char)key[len - 1] : 0;
    return 1ull << (h & 63);
}

static inline void ftree_link_last_(ftree_node *parent, ftree_node *v)
{
    v->next = NULL;
    if (parent->u.kids.last)
        parent->u.kids.last->next = v;
    else
        parent->u.kids.first = v;
    parent->u.kids.last = v;
    parent->len++;
}

static inline void ftree_setn(ftree_node *obj, const char *key, size_t len, ftree_node *v)
{
    assert(obj && obj->type == FTREE_OBJECT && key && len <= FTREE_KEY_MAX_);
    if (!v) return;
    v->key = key;
    v->keylen = (uint16_t)len;
    v->flags =
        (uint8_t)((v->flags & ~FTREE_PLAIN_KEY_) | (FTREE_PLAIN(key, len) ? FTREE_PLAIN_KEY_ : 0));
    uint64_t *mask = &((ftree_object_ *)obj)->keys, bit = ftree_key_bit_(key, len);
    if (*mask & bit) { /* maybe there: replace it, or append */
        ftree_set_slow_(obj, v);
        return;
    }
    *mask |= bit;
    ftree_link_last_(obj, v);
}

static inline void ftree_set(ftree_node *obj, const char *key, ftree_node *v)
{
    ftree_setn(obj, key, strlen(key), v);
}

static inline ftree_node *ftree_getn(const ftree_node *obj, const char *key, size_t len)
{
    assert(obj && key);
    if (obj->type != FTREE_OBJECT ||
        !(((const ftree_object_ *)obj)->keys & ftree_key_bit_(key, len)))
        return NULL;
    return ftree_get_slow_(obj, key, len);
}

static inline ftree_node *ftree_get(const ftree_node *obj, const char *key)
{
    return ftree_getn(obj, key, strlen(key));
}

static inline void ftree_append(ftree_node *arr, ftree_node *v)
{
    assert(arr && arr->type == FTREE_ARRAY);
    if (!v) return;
    v->key = NULL;
    ftree_link_last_(arr, v);
}

#endif
