/*
 * tbuf: growable byte buffer; see tbuf.h for the invariants.
 */
#include "base/tbuf.h"

#include "base/mem.h"

#include <stdio.h>
#include <stdlib.h>

void tbuf_grow(tbuf *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    if (need <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap *= 2;
    b->p = xrealloc(b->p, cap);
    b->cap = cap;
    b->p[b->len] = '\0';
}

void tbuf_put(tbuf *b, const void *data, size_t n)
{
    tbuf_grow(b, n);
    if (n) memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void tbuf_puts(tbuf *b, const char *s)
{
    tbuf_put(b, s, strlen(s));
}

void tbuf_vprintf(tbuf *b, const char *fmt, va_list ap)
{
    va_list cp;
    va_copy(cp, ap);
    tbuf_grow(b, 64);
    int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, cp);
    va_end(cp);
    if (n < 0) return;
    if ((size_t)n >= b->cap - b->len) {
        tbuf_grow(b, (size_t)n);
        vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    }
    b->len += (size_t)n;
}

void tbuf_printf(tbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tbuf_vprintf(b, fmt, ap);
    va_end(ap);
}

void tbuf_reset(tbuf *b)
{
    b->len = 0;
    if (b->cap) b->p[0] = '\0';
}

void tbuf_free(tbuf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

char *tbuf_detach(tbuf *b, size_t *len)
{
    if (!b->cap) tbuf_grow(b, 0);
    char *p = b->p;
    if (len) *len = b->len;
    b->p = NULL;
    b->len = b->cap = 0;
    return p;
}

const char *tbuf_cstr(tbuf *b)
{
    if (!b->cap) tbuf_grow(b, 0);
    return b->p;
}
