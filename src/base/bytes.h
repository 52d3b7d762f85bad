/*
 * bytes: equality and hashing of short byte strings (codes, field texts)
 * on hot paths, inline so that a call does not cost more than the work.
 *
 * Both read in words: bytes_equal() compares 2, 4 or 8 bytes at a time with
 * the last word overlapping the ones before, bytes_hash() mixes eight bytes
 * at a time (the last eight overlapping, keys under eight bytes as two
 * halves or three bytes) with the length mixed in, so that overlaps do not
 * make keys alike. Neither reads outside [p, p + n). One hash serves every
 * table keyed by text (code maps, the transforms' memos, HL7 tables).
 */
#ifndef TERN_BASE_BYTES_H
#define TERN_BASE_BYTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* a[0..n) equals b[0..n). */
static inline bool bytes_equal(const char *a, const char *b, size_t n)
{
    uint16_t h2a, h2b, t2a, t2b;
    uint32_t ha, hb, ta, tb;
    uint64_t wa, wb;
    switch (n) {
    case 0: return true;
    case 1: return a[0] == b[0];
    case 2:
    case 3: /* the first two and the last two bytes */
        memcpy(&h2a, a, 2);
        memcpy(&h2b, b, 2);
        memcpy(&t2a, a + n - 2, 2);
        memcpy(&t2b, b + n - 2, 2);
        return h2a == h2b && t2a == t2b;
    case 4:
    case 5:
    case 6:
    case 7:
        memcpy(&ha, a, 4);
        memcpy(&hb, b, 4);
        memcpy(&ta, a + n - 4, 4);
        memcpy(&tb, b + n - 4, 4);
        return ha == hb && ta == tb;
    default:
        for (size_t i = 0; i + 8 <= n; i += 8) {
            memcpy(&wa, a + i, 8);
            memcpy(&wb, b + i, 8);
            if (wa != wb) return false;
        }
        memcpy(&wa, a + n - 8, 8);
        memcpy(&wb, b + n - 8, 8);
        return wa == wb;
    }
}

static inline uint64_t bytes_hash_mix(uint64_t h, uint64_t w)
{
    h = (h ^ w) * 0xff51afd7ed558ccdull;
    return h ^ (h >> 32);
}

/* The hash of s[0..len). */
static inline uint64_t bytes_hash(const char *s, size_t len)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ len;
    if (len >= 8) {
        uint64_t w;
        size_t i = 0;
        for (; len - i > 8; i += 8) {
            memcpy(&w, s + i, 8);
            h = bytes_hash_mix(h, w);
        }
        memcpy(&w, s + len - 8, 8);
        h = bytes_hash_mix(h, w);
    } else if (len >= 4) {
        uint32_t a, b;
        memcpy(&a, s, 4);
        memcpy(&b, s + len - 4, 4);
        h = bytes_hash_mix(h, (uint64_t)a << 32 | b);
    } else if (len) {
        const unsigned char *u = (const unsigned char *)s;
        h = bytes_hash_mix(h, (uint64_t)u[0] << 16 | (uint64_t)u[len / 2] << 8 | u[len - 1]);
    }
    return h ^ (h >> 29);
}

#endif
