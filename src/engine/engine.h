/*
 * engine: `tern serve`, the running integration engine.
 *
 * One engine runs every channel of a configuration on one libevent loop (no
 * threads). A channel has one source and any number of destinations:
 *
 *   source -> eng_submit -> parse, filter, duplicate check, build ACK
 *          -> pending batch -> store_put_batch (one transaction, one fsync,
 *             at the end of the loop turn: group commit) -> ACKs go out
 *   per destination: a queue worker reads its queued deliveries from the
 *          store in id order, hands them to the destination driver, records
 *          the outcome (sent / retry at a time / failed -> error queue) in
 *          the next group commit.
 *
 * Nothing is acknowledged before it is durable, and the queues live only in
 * the store, so a kill -9 at any moment loses nothing acknowledged and a
 * restart resumes every queue where it was. Memory stays bounded: workers
 * read one page of their queue at a time.
 */
#ifndef TERN_ENGINE_H
#define TERN_ENGINE_H

#include <stdbool.h>

#include "base/tbuf.h"
#include "engine/config.h"

struct event_base;
typedef struct engine engine;

/* Event priorities the engine uses when base has them: give a new base
 * event_base_priority_init(base, ENGINE_PRIORITIES) before engine_new. The
 * committer's "batch done" then runs first in its loop turn, ahead of the
 * socket reads that arrived with it (other events keep the default). A base
 * without priorities works too, only with a longer pause between batches
 * under load. */
#define ENGINE_PRIORITIES 2

/* Builds an engine for cfg (borrowed: it must outlive the engine) on base.
 * Opens the store and binds every listener; on failure returns NULL and
 * appends the reason to err. Nothing runs until the loop does. */
engine *engine_new(const tern_config *cfg, struct event_base *base, tbuf *err);

/* Graceful stop: stop accepting, finish in-flight work (commit what was
 * received and send its ACKs, let deliveries in flight finish), then call
 * done(arg) from the loop. */
void engine_stop(engine *e, void (*done)(void *arg), void *arg);

/* Frees the engine (after engine_stop's callback, or at once on error). */
void engine_free(engine *e);

/* The keyring that encrypts the store's PHI at rest, per cfg->encryption:
 * *out is NULL when encryption is turned off, else a new keyring (opened
 * with the master key from encryption.key_file or the environment; with
 * create, made beside the store the first time). Returns 0, or -1 with err
 * saying why (no master key, a wrong one, a damaged keyring). */
struct keyring;
int engine_open_keyring(const tern_config *cfg, bool create, struct keyring **out, tbuf *err);

/* Reloads the certificates of every TLS listener and sender from their
 * files (SIGHUP); new connections use them, open ones keep theirs. A bad
 * new file keeps the old certificate and is logged. Returns how many
 * contexts failed to reload. */
int engine_reload_tls(engine *e);

/* A one-line status per channel and destination (counts), for logs. */
void engine_describe(const engine *e, tbuf *out);

#endif
