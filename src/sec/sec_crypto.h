/*
 * sec_crypto: the small cryptographic helpers of the security modules, on
 * OpenSSL's libcrypto: random bytes, SHA-256, HMAC, hex and base32, and
 * TOTP (RFC 6238: HMAC-SHA1 over the 30-second step count, 6 digits).
 *
 * Nothing here keeps state; every function is safe on any thread. Secrets
 * passed in are borrowed; buffers written are the caller's.
 */
#ifndef TERN_SEC_CRYPTO_H
#define TERN_SEC_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SEC_SHA256_LEN 32
#define SEC_SHA256_HEX (2 * SEC_SHA256_LEN + 1) /* with the NUL */
#define SEC_TOKEN_BYTES 32                      /* 256-bit tokens */
#define SEC_TOTP_SECRET_BYTES 20                /* 160 bits, as RFC 4226 recommends */
#define SEC_TOTP_STEP_SECONDS 30
#define SEC_TOTP_DIGITS 6

/* Fills buf with n bytes from the operating system's generator; false when
 * it fails (never fill with weaker bytes). */
bool sec_random(void *buf, size_t n);

/* Lower-case hex of n bytes into out (2n + 1 bytes). Returns out. */
char *sec_hex(const void *data, size_t n, char *out);
/* Parses 2n hex digits into n bytes; false on any other input. */
bool sec_unhex(const char *hex, void *out, size_t n);

void sec_sha256(const void *data, size_t n, uint8_t out[SEC_SHA256_LEN]);
/* SHA-256 of a NUL-terminated string as lower-case hex (65 bytes). */
void sec_sha256_hex(const char *s, char out[SEC_SHA256_HEX]);
void sec_hmac_sha256(const void *key, size_t klen, const void *data, size_t n,
                     uint8_t out[SEC_SHA256_LEN]);
/* Compares n bytes in time that does not depend on where they differ. */
bool sec_equal(const void *a, const void *b, size_t n);

/* RFC 4648 base32 (A-Z2-7) without padding: writes the text and a NUL into
 * out (needs (n * 8 + 4) / 5 + 1 bytes). */
void sec_base32(const uint8_t *data, size_t n, char *out);
/* Decodes base32 (case, spaces and '=' ignored) into out (at most cap
 * bytes); returns the length, or -1 for a character outside the alphabet
 * or too long an input. */
int sec_base32_decode(const char *text, uint8_t *out, size_t cap);

/* The TOTP code (0..999999) of key at time step `step` (unix seconds / 30). */
uint32_t sec_totp_at(const uint8_t *key, size_t klen, uint64_t step);
/* True when code (6 digits) is the TOTP of the base32 secret at unix time
 * `now` or one step either side; *step_out is the step that matched. */
bool sec_totp_check(const char *secret_b32, const char *code, int64_t now, uint64_t *step_out);

#endif
