/*
 * mem: allocation with Tern's out-of-memory policy.
 *
 * Policy (docs/architecture.md): an allocation failure is not recoverable in
 * a meaningful way for an integration engine, so xmalloc and friends print a
 * message and abort(). Input-driven sizes are bounded before allocating (see
 * hl7_limits), so running out of memory means the machine, not the input, is
 * at fault. Functions therefore never return "no memory" errors.
 */
#ifndef TERN_MEM_H
#define TERN_MEM_H

#include <stddef.h>

/* Never return NULL. Sizes of zero allocate one byte. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
/* Grows an array to hold at least `need` elements of `size` bytes; doubles.
 * Returns the (possibly moved) array and updates *cap. */
void *xgrow(void *p, size_t *cap, size_t need, size_t size);
/* Returns a malloc'ed copy of the n bytes at s plus a NUL; caller frees. */
char *xstrndup(const char *s, size_t n);
char *xstrdup(const char *s);

#endif
