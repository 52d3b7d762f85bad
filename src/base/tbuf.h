/*
 * tbuf: a growable byte buffer (after git's strbuf).
 *
 * Invariant: when cap > 0, p[len] == '\0', so p is usable as a C string
 * whenever the content has no NUL. A zeroed tbuf (TBUF_INIT) is valid and
 * empty. Growth aborts on out-of-memory (see mem.h). The buffer owns p;
 * tbuf_detach() hands ownership to the caller.
 */
#ifndef TERN_TBUF_H
#define TERN_TBUF_H

#include <stdarg.h>
#include <stddef.h>
#include <string.h>

typedef struct tbuf {
    char *p;
    size_t len;
    size_t cap;
} tbuf;

#define TBUF_INIT {NULL, 0, 0}

/* Ensures room for `extra` more bytes plus the terminating NUL. */
void tbuf_grow(tbuf *b, size_t extra);
void tbuf_put(tbuf *b, const void *data, size_t n);
void tbuf_puts(tbuf *b, const char *s);
void tbuf_printf(tbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void tbuf_vprintf(tbuf *b, const char *fmt, va_list ap);
/* Empties the buffer, keeping its memory. */
void tbuf_reset(tbuf *b);
void tbuf_free(tbuf *b);
/* Returns the content (NUL-terminated, never NULL) and resets b to empty;
 * the caller frees the result. *len may be NULL. */
char *tbuf_detach(tbuf *b, size_t *len);
/* Returns a NUL-terminated view of the content, valid until the next change. */
const char *tbuf_cstr(tbuf *b);

static inline void tbuf_putc(tbuf *b, char c)
{
    if (b->len + 1 >= b->cap) tbuf_grow(b, 1);
    b->p[b->len++] = c;
    b->p[b->len] = '\0';
}

#endif
