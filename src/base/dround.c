/*
 * dround: see dround.h. The value is m * 2^e2 exactly; its digits are those
 * of the integer m * 2^e2 (e2 >= 0) or m * 5^-e2 scaled by 10^e2 (e2 < 0).
 */
#include "base/dround.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Bignums in 32-bit limbs: 84 limbs hold m * 5^1074, the largest case. */
#define LIMBS 84

typedef struct bignum {
    uint32_t limb[LIMBS]; /* least significant first */
    size_t n;             /* limbs in use; limb[n - 1] != 0 */
} bignum;

static void big_mul_small(bignum *b, uint32_t f)
{
    uint64_t carry = 0;
    for (size_t i = 0; i < b->n; i++) {
        uint64_t x = (uint64_t)b->limb[i] * f + carry;
        b->limb[i] = (uint32_t)x;
        carry = x >> 32;
    }
    if (carry) b->limb[b->n++] = (uint32_t)carry;
}

static void big_shift_left(bignum *b, unsigned bits)
{
    size_t words = bits / 32;
    unsigned r = bits % 32;
    if (r) {
        uint32_t carry = 0;
        for (size_t i = 0; i < b->n; i++) {
            uint32_t x = b->limb[i];
            b->limb[i] = x << r | carry;
            carry = x >> (32 - r);
        }
        if (carry) b->limb[b->n++] = carry;
    }
    if (words) {
        memmove(b->limb + words, b->limb, b->n * sizeof(uint32_t));
        memset(b->limb, 0, words * sizeof(uint32_t));
        b->n += words;
    }
}

/* Writes the decimal digits of b (destroyed) to d; returns how many. */
static size_t big_digits(bignum *b, char d[DROUND_MAX])
{
    char tmp[DROUND_MAX];
    size_t end = DROUND_MAX; /* tmp fills from the end, 9 digits per chunk */
    while (b->n) {
        uint64_t rem = 0;
        for (size_t i = b->n; i-- > 0;) {
            uint64_t cur = rem << 32 | b->limb[i];
            b->limb[i] = (uint32_t)(cur / 1000000000u);
            rem = cur % 1000000000u;
        }
        while (b->n && !b->limb[b->n - 1])
            b->n--;
        uint32_t chunk = (uint32_t)rem;
        for (int k = 0; k < 9; k++) {
            tmp[--end] = (char)('0' + chunk % 10);
            chunk /= 10;
        }
    }
    while (end < DROUND_MAX && tmp[end] == '0')
        end++;
    memcpy(d, tmp + end, DROUND_MAX - end);
    return DROUND_MAX - end;
}

__extension__ typedef unsigned __int128 u128;

/* dround for the common case, in 128-bit integers: with X the
 * decimal exponent of v and k = prec - 1 - X, v * 10^k = m * 5^k *
 * 2^(e2 + k) is an integer q (prec digits, or one more when the estimate
 * of X was one low) plus an exact binary fraction, which decides the
 * rounding. Needs 0 <= k <= 27 (5^k in 64 bits) and the fraction within
 * 127 bits; returns false otherwise (values far from 1: then bignums). */
static bool round_digits_fast(uint64_t m, int e2, int prec, char *d, int *exp10)
{
    static const uint64_t pow10[19] = {1ull,
                                       10ull,
                                       100ull,
                                       1000ull,
                                       10000ull,
                                       100000ull,
                                       1000000ull,
                                       10000000ull,
                                       100000000ull,
                                       1000000000ull,
                                       10000000000ull,
                                       100000000000ull,
                                       1000000000000ull,
                                       10000000000000ull,
                                       100000000000000ull,
                                       1000000000000000ull,
                                       10000000000000000ull,
                                       100000000000000000ull,
                                       1000000000000000000ull};
    int bits = 64 - __builtin_clzll(m);
    int e = e2 + bits - 1; /* 2^e <= v < 2^(e+1) */
    if (e < -200 || e > 200) return false;
    /* floor(e * log10(2)): X or X - 1 (checked below) */
    int x = e >= 0 ? (e * 78913) >> 18 : -((-e * 78913 + (1 << 18) - 1) >> 18);
    int k = prec - 1 - x;
    if (k < 0 || k > 27) return false;
    static const uint64_t pow5[28] = {1ull,
                                      5ull,
                                      25ull,
                                      125ull,
                                      625ull,
                                      3125ull,
                                      15625ull,
                                      78125ull,
                                      390625ull,
                                      1953125ull,
                                      9765625ull,
                                      48828125ull,
                                      244140625ull,
                                      1220703125ull,
                                      6103515625ull,
                                      30517578125ull,
                                      152587890625ull,
                                      762939453125ull,
                                      3814697265625ull,
                                      19073486328125ull,
                                      95367431640625ull,
                                      476837158203125ull,
                                      2384185791015625ull,
                                      11920928955078125ull,
                                      59604644775390625ull,
                                      298023223876953125ull,
                                      1490116119384765625ull,
                                      7450580596923828125ull};
    u128 big = (u128)m * pow5[k];
    int sh = e2 + k;
    u128 rem = 0, half = 0;
    if (sh >= 0) {
        if (sh > 12) return false;
        big <<= sh;
    } else {
        if (sh < -127) return false;
        rem = big & (((u128)1 << -sh) - 1);
        half = (u128)1 << (-sh - 1);
        big >>= -sh;
    }
    if (big >= pow10[prec + 1 > 18 ? 18 : prec + 1] || big < pow10[prec - 1]) return false;
    uint64_t q = (uint64_t)big;
    int above;              /* the dropped part against one half: -1 below, 0 equal, 1 above */
    if (q >= pow10[prec]) { /* one digit too many: drop it into the fraction */
        unsigned last = (unsigned)(q % 10);
        q /= 10;
        x++;
        above = last > 5 || (last == 5 && rem) ? 1 : last == 5 ? 0 : -1;
    } else {
        above = sh >= 0 ? -1 : rem > half ? 1 : rem == half ? 0 : -1;
    }
    if (above > 0 || (above == 0 && (q & 1))) {
        q++;
        if (q == pow10[prec]) { /* 9.99 -> 10.0 */
            q = pow10[prec - 1];
            x++;
        }
    }
    for (int i = prec - 1; i >= 0; i--) {
        d[i] = (char)('0' + q % 10);
        q /= 10;
    }
    *exp10 = x;
    return true;
}

int dround(double v, int prec, char d[DROUND_MAX])
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    uint64_t m = bits & ((1ull << 52) - 1);
    int biased = (int)(bits >> 52 & 0x7FF);
    int e2 = biased ? biased - 1075 : -1074;
    if (biased) m |= 1ull << 52;
    int zeros = __builtin_ctzll(m); /* m is not zero: v is finite and not zero */
    m >>= zeros;
    e2 += zeros;
    int fast;
    if (round_digits_fast(m, e2, prec, d, &fast)) return fast;
    bignum b = {{(uint32_t)m, (uint32_t)(m >> 32)}, m >> 32 ? 2 : 1};
    int scale = 0; /* v = digits * 10^-scale */
    if (e2 >= 0) {
        big_shift_left(&b, (unsigned)e2);
    } else {
        scale = -e2;
        int k = scale;
        for (; k >= 13; k -= 13)
            big_mul_small(&b, 1220703125u); /* 5^13 */
        uint32_t f = 1;
        while (k-- > 0)
            f *= 5;
        if (f > 1) big_mul_small(&b, f);
    }
    size_t n = big_digits(&b, d);
    int exp10 = (int)n - 1 - scale;
    if (n <= (size_t)prec) {
        memset(d + n, '0', (size_t)prec - n);
        return exp10;
    }
    bool sticky = false;
    for (size_t i = (size_t)prec + 1; i < n && !sticky; i++)
        sticky = d[i] != '0';
    char next = d[prec];
    bool up = next > '5' || (next == '5' && (sticky || (d[prec - 1] - '0') % 2));
    if (!up) return exp10;
    int i = prec - 1;
    while (i >= 0 && d[i] == '9')
        d[i--] = '0';
    if (i >= 0) {
        d[i]++;
        return exp10;
    }
    d[0] = '1'; /* 99.9 -> 100: one more digit before the point */
    return exp10 + 1;
}
