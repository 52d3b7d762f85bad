/*
 * Unit tests for base/arena.c: allocations are aligned and never overlap
 * (every byte written is read back), big requests get blocks of their own
 * without spoiling the block being filled, release gives standard blocks to
 * the pool up to its limit, and a later arena reuses them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/arena.h"

enum { N = 500 };

static void no_overlap(void **state)
{
    (void)state;
    arena_pool pool = {.block = 4096};
    arena a = ARENA_INIT;
    unsigned char *p[N];
    size_t len[N];
    for (int i = 0; i < N; i++) {
        len[i] = (size_t)(i * 37 % 900); /* 0..899 bytes, some bigger than... */
        if (i % 50 == 7) len[i] = 10000; /* ...and some bigger than a block */
        p[i] = arena_alloc(&a, &pool, len[i]);
        assert_non_null(p[i]);
        assert_int_equal((uintptr_t)p[i] % 8, 0);
        memset(p[i], i & 0xff, len[i]);
    }
    for (int i = 0; i < N; i++)
        for (size_t k = 0; k < len[i]; k++) assert_int_equal(p[i][k], i & 0xff);
    arena_release(&a, &pool);
    assert_null(a.head);
    arena_pool_free(&pool);
}

static void big_request_keeps_room(void **state)
{
    (void)state;
    arena_pool pool = {.block = 4096};
    arena a = ARENA_INIT;
    char *s1 = arena_alloc(&a, &pool, 100);
    char *big = arena_alloc(&a, &pool, 50000);
    char *s2 = arena_alloc(&a, &pool, 100);
    /* the small ones share the standard block, right after each other */
    assert_ptr_equal(s2, s1 + 104);
    memset(big, 1, 50000);
    arena_release(&a, &pool);
    assert_int_equal(pool.nspare, 1); /* the big block was freed, not kept */
    arena_pool_free(&pool);
}

static void pool_reuse_and_limit(void **state)
{
    (void)state;
    arena_pool pool = {.block = 1024, .max_spare = 3};
    arena a = ARENA_INIT;
    for (int i = 0; i < 5; i++) arena_alloc(&a, &pool, 1000); /* one block each */
    arena_release(&a, &pool);
    assert_int_equal(pool.nspare, 3); /* two freed: over the limit */
    arena b = ARENA_INIT;
    unsigned char *x = arena_alloc(&b, &pool, 10);
    assert_int_equal(pool.nspare, 2); /* taken from the pool */
    arena_release(&b, &pool);
    assert_int_equal(pool.nspare, 3);
    arena c = ARENA_INIT;
    assert_ptr_equal(arena_alloc(&c, &pool, 10), x); /* the same block again */
    arena_release(&c, &pool);
    arena_pool_free(&pool);
    assert_int_equal(pool.nspare, 0);
    assert_null(pool.spare);
}

static void zero_and_default_sizes(void **state)
{
    (void)state;
    arena_pool pool = ARENA_POOL_INIT;
    arena a = ARENA_INIT;
    void *z1 = arena_alloc(&a, &pool, 0), *z2 = arena_alloc(&a, &pool, 0);
    assert_non_null(z1);
    assert_non_null(z2);
    char *m = arena_alloc(&a, &pool, ARENA_BLOCK - 64); /* fits the default block */
    memset(m, 2, ARENA_BLOCK - 64);
    arena_release(&a, &pool);
    assert_true(pool.nspare >= 1 && pool.nspare <= 2);
    arena_pool_free(&pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(no_overlap),
        cmocka_unit_test(big_request_keeps_room),
        cmocka_unit_test(pool_reuse_and_limit),
        cmocka_unit_test(zero_and_default_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
