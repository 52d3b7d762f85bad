/*
 * ftree: a JSON document built in an arena and written as compact text.
 *
 * The FHIR converter builds one Bundle per message: thousands of small
 * values that are written once and thrown away together. An ftree holds
 * such a document: every node and every string lives in the tree's arena
 * (a few large blocks), so building costs no malloc per value and
 * ftree_clear() drops the whole document at once, keeping the memory for
 * the next one. Objects keep their members in insertion order, as a list
 * (objects are small; lookups are linear, no hash table).
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

#include <stdbool.h>
#include <stddef.h>
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
 * clear; never NULL. */
void *ftree_alloc(ftree *t, size_t n);
/* A NUL-terminated copy of s[0..len) in t's arena; never NULL. */
char *ftree_strndup(ftree *t, const char *s, size_t len);

/* --- values (each new, not yet in a container) ----------------------------------------- */

ftree_node *ftree_object(ftree *t);
ftree_node *ftree_array(ftree *t);
/* Copies the C string s; NULL (nothing allocated) when s is not valid
 * UTF-8, as jansson's json_string() refuses it. */
ftree_node *ftree_string(ftree *t, const char *s);
/* Copies s[0..len), which the caller knows is valid UTF-8 (no check, like
 * json_stringn_nocheck); it may hold NUL bytes. */
ftree_node *ftree_stringn_nocheck(ftree *t, const char *s, size_t len);
/* Borrows s[0..len), which must outlive the tree (a string literal, or
 * memory from ftree_alloc), be valid UTF-8 (not checked) and be followed
 * by a NUL (s[len] == '\0'). */
ftree_node *ftree_string_borrowed(ftree *t, const char *s, size_t len);
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
 * in a container. */
void ftree_setn(ftree_node *obj, const char *key, size_t keylen, ftree_node *v);
static inline void ftree_set(ftree_node *obj, const char *key, ftree_node *v)
{
    ftree_setn(obj, key, strlen(key), v); /* strlen of a literal costs nothing */
}
/* The value of key in obj, or NULL (also when obj is not an object). */
ftree_node *ftree_getn(const ftree_node *obj, const char *key, size_t keylen);
static inline ftree_node *ftree_get(const ftree_node *obj, const char *key)
{
    return ftree_getn(obj, key, strlen(key));
}
/* Removes key from obj; false when it was not there. */
bool ftree_del(ftree_node *obj, const char *key);
/* Moves every member of src into dst as ftree_set() would, in src's order
 * (jansson's json_object_update); src is left empty. */
void ftree_take_members(ftree_node *dst, ftree_node *src);
/* Adds v at the end (append) or the front (prepend) of arr; v NULL:
 * nothing happens. v must not be in a container. */
void ftree_append(ftree_node *arr, ftree_node *v);
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

#endif
