/*
 * sec_crypto: see sec_crypto.h. HMAC and digests go through OpenSSL's
 * one-shot functions (HMAC(), SHA256()), random bytes through RAND_bytes,
 * which reads the kernel's generator.
 */
#include "sec/sec_crypto.h"

#include <ctype.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

bool sec_random(void *buf, size_t n)
{
    return RAND_bytes(buf, (int)n) == 1;
}

char *sec_hex(const void *data, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    const uint8_t *p = data;
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
    return out;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

bool sec_unhex(const char *hex, void *out, size_t n)
{
    uint8_t *o = out;
    if (strlen(hex) != 2 * n) return false;
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return false;
        o[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

void sec_sha256(const void *data, size_t n, uint8_t out[SEC_SHA256_LEN])
{
    SHA256(data, n, out);
}

void sec_sha256_hex(const char *s, char out[SEC_SHA256_HEX])
{
    uint8_t d[SEC_SHA256_LEN];
    sec_sha256(s, strlen(s), d);
    sec_hex(d, sizeof d, out);
}

void sec_hmac_sha256(const void *key, size_t klen, const void *data, size_t n,
                     uint8_t out[SEC_SHA256_LEN])
{
    unsigned len = SEC_SHA256_LEN;
    HMAC(EVP_sha256(), key, (int)klen, data, n, out, &len);
}

bool sec_equal(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}

static const char B32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

void sec_base32(const uint8_t *data, size_t n, char *out)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        acc = acc << 8 | data[i];
        bits += 8;
        while (bits >= 5) {
            out[o++] = B32[(acc >> (bits - 5)) & 31];
            bits -= 5;
        }
    }
    if (bits > 0) out[o++] = B32[(acc << (5 - bits)) & 31];
    out[o] = '\0';
}

int sec_base32_decode(const char *text, uint8_t *out, size_t cap)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (const char *p = text; *p; p++) {
        if (*p == ' ' || *p == '=' || *p == '-') continue;
        const char *at = strchr(B32, toupper((unsigned char)*p));
        if (!at || !*at) return -1;
        acc = acc << 5 | (uint32_t)(at - B32);
        bits += 5;
        if (bits >= 8) {
            if (o == cap) return -1;
            out[o++] = (uint8_t)(acc >> (bits - 8));
            bits -= 8;
        }
    }
    return (int)o;
}

uint32_t sec_totp_at(const uint8_t *key, size_t klen, uint64_t step)
{
    uint8_t msg[8], mac[EVP_MAX_MD_SIZE];
    for (int i = 7; i >= 0; i--, step >>= 8)
        msg[i] = (uint8_t)step;
    unsigned len = sizeof mac;
    HMAC(EVP_sha1(), key, (int)klen, msg, sizeof msg, mac, &len);
    /* RFC 4226 dynamic truncation */
    unsigned off = mac[len - 1] & 15;
    uint32_t bin = (uint32_t)(mac[off] & 0x7f) << 24 | (uint32_t)mac[off + 1] << 16 |
                   (uint32_t)mac[off + 2] << 8 | mac[off + 3];
    return bin % 1000000u;
}

bool sec_totp_check(const char *secret_b32, const char *code, int64_t now, uint64_t *step_out)
{
    uint8_t key[64];
    int klen = sec_base32_decode(secret_b32, key, sizeof key);
    if (klen <= 0 || !code || strlen(code) != SEC_TOTP_DIGITS || now < 0) return false;
    uint32_t want = 0;
    for (const char *p = code; *p; p++) {
        if (*p < '0' || *p > '9') return false;
        want = want * 10 + (uint32_t)(*p - '0');
    }
    uint64_t step = (uint64_t)now / SEC_TOTP_STEP_SECONDS;
    bool ok = false;
    for (int d = -1; d <= 1; d++) {
        uint64_t s = step + (uint64_t)(int64_t)d;
        /* every candidate is computed, so the time taken says nothing */
        if (sec_totp_at(key, (size_t)klen, s) == want && !ok) {
            ok = true;
            if (step_out) *step_out = s;
        }
    }
    OPENSSL_cleanse(key, sizeof key);
    return ok;
}
