/*
 * arena: see arena.h. A block is a header and its bytes; the arena's list
 * runs from the block being filled to the oldest, the pool's is a stack.
 */
#include "base/arena.h"

#include <stdint.h>
#include <stdlib.h>

#include "base/mem.h"

struct arena_block {
    arena_block *next;
    size_t used, cap;
    _Alignas(8) unsigned char data[];
};

static size_t block_size(const arena_pool *pool)
{
    return pool->block ? pool->block : ARENA_BLOCK;
}

static arena_block *block_get(arena_pool *pool, size_t need)
{
    size_t std = block_size(pool);
    arena_block *b;
    if (need <= std && pool->spare) {
        b = pool->spare;
        pool->spare = b->next;
        pool->nspare--;
    } else {
        size_t cap = need <= std ? std : need;
        b = xmalloc(sizeof *b + cap);
        b->cap = cap;
    }
    b->used = 0;
    return b;
}

void *arena_alloc(arena *a, arena_pool *pool, size_t n)
{
    size_t need = (n + 7) & ~(size_t)7;
    if (need < n) abort(); /* overflow: no such request is meaningful */
    arena_block *b = a->head;
    if (!b || b->cap - b->used < need) {
        b = block_get(pool, need ? need : 8);
        /* an oversized block goes behind the one being filled, which
         * keeps its room for the next small requests */
        if (a->head && b->cap > block_size(pool)) {
            b->next = a->head->next;
            a->head->next = b;
        } else {
            b->next = a->head;
            a->head = b;
        }
    }
    void *p = b->data + b->used;
    b->used += need;
    return p;
}

void arena_release(arena *a, arena_pool *pool)
{
    size_t max = pool->max_spare ? pool->max_spare : ARENA_MAX_SPARE;
    for (arena_block *b = a->head, *next; b; b = next) {
        next = b->next;
        if (b->cap == block_size(pool) && pool->nspare < max) {
            b->next = pool->spare;
            pool->spare = b;
            pool->nspare++;
        } else {
            free(b);
        }
    }
    a->head = NULL;
}

void arena_pool_free(arena_pool *pool)
{
    for (arena_block *b = pool->spare, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    pool->spare = NULL;
    pool->nspare = 0;
}
