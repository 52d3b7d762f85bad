/*
 * store_crypt: encryption of PHI at rest, between the store interface
 * (store.c) and every backend, so that no backend ever sees PHI in clear
 * and each stores and indexes only what it is given.
 *
 * With a keyring (store_options.keys), on the way in:
 *   raw bytes         sealed (sec/keys.h, context "body")
 *   patient id        its token (keyed hash): searchable by exact value
 *   order numbers     their tokens
 *   error texts       sealed text (message errors, delivery errors)
 *   meta.sealed       a sealed envelope "LEN\nPATIENT_ID": the body's
 *                     plaintext length and the patient id to show
 * and on the way out (get, list, queue) the opposite, so callers see what
 * they stored. Searches by patient id or order number look up the token.
 * Rows written without a keyring are read as they are; sealed data read
 * without a keyring, with a ring that lacks its key, or that fails
 * authentication is STORE_ERR_KEY, never returned as bytes.
 *
 * Channel names, message types, control ids and application/facility names
 * stay in clear: routing, duplicate detection and operators' searches need
 * them and they identify systems, not patients.
 *
 * The scratch memory each call needs lives in the handle (s->crypt) and is
 * reused; like the handle, it is for one thread at a time.
 */
#ifndef TERN_STORE_CRYPT_H
#define TERN_STORE_CRYPT_H

#include "store/store.h"

void store_crypt_free(store *s);
/* Frees a scratch made by crypt_puts in a slot of the caller's. */
void store_crypt_scratch_free(struct store_crypt *c);

/* A pool of scratches for logged batches (store_log_batch), shared by the
 * threads that log batches and free them (a mutex inside): a batch's
 * sealed copies are made in the memory of an earlier batch, with no
 * allocation per message once the pool is warm. take returns NULL when
 * the pool is empty (crypt_puts then makes a scratch); give keeps c or
 * frees it (too big, pool full). */
struct store_crypt_pool *crypt_pool_new(void);
void crypt_pool_free(struct store_crypt_pool *p);
struct store_crypt *crypt_pool_take(struct store_crypt_pool *p);
void crypt_pool_give(struct store_crypt_pool *p, struct store_crypt *c);

/* Sets *out to items as the backend must store them (items itself when the
 * handle has no keyring), in the scratch *slot (made on first use; &s->crypt
 * or one of the caller's, which then frees it with store_crypt_scratch_free);
 * valid until the next use of that scratch. Uses nothing else of s but its
 * keyring, so with its own slot it may run beside other calls on s. */
store_status crypt_puts(store *s, struct store_crypt **slot, const store_put *items, size_t n,
                        const store_put **out, store_error *err);
store_status crypt_marks(store *s, const store_mark *marks, size_t n, const store_mark **out,
                         store_error *err);
/* The edit's raw bytes and meta as stored. */
store_status crypt_edit(store *s, const void *raw, size_t raw_len, const store_meta *meta,
                        const void **raw_out, size_t *len_out, store_meta *meta_out,
                        store_error *err);
/* The filter with tokens in place of the patient id and order number. */
void crypt_filter(store *s, const store_filter *f, store_filter *out);

/* Opens what the backend returned, in place. */
store_status crypt_summary(store *s, const store_summary *in, store_summary *out,
                           store_error *err);
store_status crypt_message(store *s, store_message *m, store_error *err);
store_status crypt_queue(store *s, store_queue_batch *b, store_error *err);

#endif
