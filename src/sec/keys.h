/*
 * keys: the keyring that encrypts PHI at rest (AES-256-GCM) and makes the
 * keyed hashes (HMAC-SHA256) that keep encrypted identifiers searchable.
 *
 * Three kinds of key:
 *
 *   master key   32 bytes from a key file (64 hex digits, or 32 raw bytes;
 *                mode 0600/0400) or an environment variable (64 hex
 *                digits). Never written anywhere by Tern. It only wraps the
 *                keys below.
 *   data keys    32 random bytes each, numbered 1, 2, ...; the newest seals
 *                new data, every one of them opens what it sealed. Stored
 *                wrapped (AES-256-GCM under the master key) in the keyring
 *                file beside the store, PATH-keys.json.
 *   index key    32 random bytes, wrapped the same way, for the keyed hashes
 *                ("tokens") stored in place of searchable identifiers.
 *
 * The keyring file also holds a check value (HMAC of a constant under the
 * master key) so that a wrong master key is reported as such, not as
 * thousands of failed decryptions. `tern keys rotate` re-wraps the data and
 * index keys under a new master key (nothing else is rewritten); `tern keys
 * rotate --data-key` adds a data key that seals from then on. The index key
 * never changes: tokens already stored would stop matching.
 *
 * Sealed bytes: "TSE1", u32 data key id, 16-byte session salt, 12-byte
 * nonce, ciphertext, 16-byte GCM tag (KEYS_OVERHEAD bytes more than the
 * plaintext). Each keyring handle draws a random session salt when it opens
 * and seals under HMAC-SHA256(data key, "tern-session" || salt) with a
 * 64-bit counter as the nonce, so a nonce never repeats under one session
 * key (no birthday bound on random nonces however many messages a key
 * seals). The caller's context string (what the bytes are: "body", "meta",
 * "text") is authenticated as additional data, so sealed values cannot be
 * swapped between kinds.
 *
 * Sealed text (for TEXT columns): KEYS_TEXT_PREFIX followed by the base64 of
 * the sealed bytes. A token: "~" and 32 hex digits of HMAC-SHA256(index
 * key, domain || NUL || value).
 *
 * A keyring handle is safe to share between threads: the counter is atomic
 * and the cache of session keys is behind a mutex. It keeps no global state.
 */
#ifndef TERN_KEYS_H
#define TERN_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/tbuf.h"

#define KEYS_LEN 32
#define KEYS_OVERHEAD (4 + 4 + 16 + 12 + 16)
#define KEYS_TOKEN_LEN 33 /* "~" + 32 hex digits */
#define KEYS_TEXT_PREFIX "~S1:"
#define KEYS_DEFAULT_ENV "TERN_MASTER_KEY"

typedef struct keyring keyring;

/* Reads the master key from key_file when it is not NULL, else from the
 * environment variable env (NULL: KEYS_DEFAULT_ENV). Refuses a key file that
 * group or others may read. Returns 0, or -1 with err saying why. */
int keys_load_master(const char *key_file, const char *env, unsigned char master[KEYS_LEN],
                     tbuf *err);

/* Writes a new random master key as 64 hex digits to path (mode 0600; the
 * file must not exist). */
int keys_generate_master(const char *path, tbuf *err);

/* The keyring file of the store at store_path: "STORE_PATH-keys.json";
 * caller frees. */
char *keys_ring_path(const char *store_path);

/* Opens the keyring file at path with master; with create, makes it (a data
 * key and an index key) when it does not exist yet. A wrong master key, a
 * damaged file or a missing one (without create) is -1 with err. */
int keyring_open(const char *path, const unsigned char master[KEYS_LEN], bool create,
                 keyring **out, tbuf *err);
void keyring_close(keyring *k);

/* Appends the sealed form of p[0..n) to out. ctx names what it is. */
int keys_seal(keyring *k, const char *ctx, const void *p, size_t n, tbuf *out, tbuf *err);
/* Is p[0..n) sealed bytes (by its magic)? */
bool keys_is_sealed(const void *p, size_t n);
/* Appends the plaintext of sealed p[0..n) to out (NUL-terminated). A key the
 * ring lacks, damage or a wrong ctx is -1 with err (out unchanged). */
int keys_open_sealed(keyring *k, const char *ctx, const void *p, size_t n, tbuf *out, tbuf *err);

/* Text columns: seal s as KEYS_TEXT_PREFIX + base64, and back. keys_open_text
 * of text that is not sealed appends it unchanged (rows stored before
 * encryption was turned on). */
int keys_seal_text(keyring *k, const char *s, tbuf *out, tbuf *err);
int keys_open_text(keyring *k, const char *s, tbuf *out, tbuf *err);
bool keys_is_sealed_text(const char *s);

/* The token of value in domain ("patient", "order"), NUL-terminated. */
void keys_token(keyring *k, const char *domain, const char *value, char out[KEYS_TOKEN_LEN + 1]);

/* Key management (tern keys). Each rewrites the keyring file atomically
 * under a lock, so that it never is half written. */
int keys_rotate_master(const char *path, const unsigned char old_master[KEYS_LEN],
                       const unsigned char new_master[KEYS_LEN], tbuf *err);
int keys_add_data_key(const char *path, const unsigned char master[KEYS_LEN], uint32_t *new_id,
                      tbuf *err);

/* What the keyring holds (tern keys status): one line per data key. */
int keys_describe(const char *path, const unsigned char master[KEYS_LEN], tbuf *out, tbuf *err);

#endif
