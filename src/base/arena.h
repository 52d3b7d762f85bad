/*
 * arena: memory handed out by bumping a pointer through blocks, given back
 * all at once, with the standard-size blocks kept in a pool for the next
 * arena.
 *
 * Why: the engine copies every message it receives (a few kilobytes) and
 * frees it once the message is stored and indexed, a batch at a time.
 * Through malloc, every such copy is a chunk too big for the allocator's
 * per-thread cache: each free coalesces neighbours and each malloc splits
 * them again, about a microsecond per message on the event loop. In an
 * arena a batch's messages sit end to end in blocks that go back to the
 * pool together, and a warm engine calls malloc for none of them.
 *
 * Ownership: an arena owns its blocks until arena_release gives them to
 * the pool (or frees those that are not of the standard size, or that the
 * full pool cannot keep). A pool owns its spare blocks until
 * arena_pool_free. Neither is thread-safe: one thread at a time.
 */
#ifndef TERN_ARENA_H
#define TERN_ARENA_H

#include <stddef.h>

typedef struct arena_block arena_block;

typedef struct arena_pool {
    arena_block *spare; /* blocks of `block` bytes, ready for reuse */
    size_t nspare;
    size_t max_spare;   /* kept at most; 0: ARENA_MAX_SPARE */
    size_t block;       /* standard block size; 0: ARENA_BLOCK */
} arena_pool;

#define ARENA_POOL_INIT {NULL, 0, 0, 0}
#define ARENA_BLOCK (64u << 10) /* under glibc's mmap threshold */
#define ARENA_MAX_SPARE 64

typedef struct arena {
    arena_block *head; /* the block being filled, then older ones */
} arena;

#define ARENA_INIT {NULL}

/* n bytes (aligned to 8) valid until arena_release; never NULL. Requests
 * bigger than the pool's block size get a block of their own. */
void *arena_alloc(arena *a, arena_pool *pool, size_t n);
/* Gives every block of a back (to pool when it has room, else freed); a is
 * then empty and may be used again. */
void arena_release(arena *a, arena_pool *pool);
void arena_pool_free(arena_pool *pool);

#endif
