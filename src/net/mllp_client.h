/*
 * mllp_client: an asynchronous MLLP sender on the caller's event_base.
 *
 * One client is one connection to one host:port. mllp_client_send() queues
 * a message; the client connects when it has something to send (and again
 * after the connection was lost: that is the reconnect), writes the message
 * as one frame and completes the request when the reply frame (the ACK)
 * arrives, or when something fails. Every request completes exactly once,
 * through its callback, always from the loop and never from inside
 * mllp_client_send().
 *
 * MLLP has no request ids: the n-th reply answers the n-th message. With
 * window 1 (the default and what most receivers expect) one message is on
 * the wire at a time. A larger window pipelines: up to `window` messages are
 * written before their ACKs come back, in order.
 *
 * Timeouts: connecting (all of the host's addresses) must finish within
 * connect_timeout_ms, and each ACK must arrive within ack_timeout_ms of its
 * message being written. An ACK timeout fails that request and closes the
 * connection, because a late ACK would otherwise be taken as the answer to
 * the next message; the requests behind it that were already written fail
 * with MLLP_ERR_CLOSED, those not yet written go out on a new connection.
 * A connection that fails while connecting fails every queued request with
 * MLLP_ERR_CONNECT: retrying with backoff is the caller's decision.
 *
 * The client checks nothing in the ACK: it returns the reply frame as is;
 * reading MSA is the caller's job (hl7_parse). A frame that arrives while no
 * message is outstanding is dropped and counted.
 *
 * Single-threaded; no threads started.
 */
#ifndef TERN_MLLP_CLIENT_H
#define TERN_MLLP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/mllp_frame.h"
#include "net/net.h"

struct event_base;

typedef struct mllp_client mllp_client;

typedef struct mllp_client_opts {
    unsigned connect_timeout_ms; /* 0: 10 s */
    unsigned ack_timeout_ms;     /* 0: 30 s */
    size_t max_frame;            /* largest reply accepted; 0: MLLP_DEFAULT_MAX_FRAME */
    unsigned window;             /* messages written ahead of their ACK; 0: 1 */
    tls_ctx *tls; /* a TLS_CLIENT context (borrowed, must outlive the client);
                     NULL: plain TCP. The handshake counts as connecting. */
} mllp_client_opts;

#define MLLP_CLIENT_DEFAULT_CONNECT_MS 10000u
#define MLLP_CLIENT_DEFAULT_ACK_MS 30000u

/* How a request ended. On MLLP_OK, ack/ack_len hold the reply frame's
 * payload (borrowed for the callback). Otherwise err says what failed
 * (MLLP_ERR_CONNECT, _TIMEOUT, _CLOSED, _TOO_LARGE, _CANCELLED), naming the
 * peer. */
typedef struct mllp_result {
    mllp_status status;
    const char *ack;
    size_t ack_len;
    const mllp_error *err; /* NULL on MLLP_OK */
} mllp_result;

/* May call mllp_client_send() (e.g. to send the next message); must not free
 * the client. */
typedef void (*mllp_done_fn)(const mllp_result *res, void *arg);

/* Makes a client for addr (nothing connects until the first send). opts may
 * be NULL. Never NULL. */
mllp_client *mllp_client_new(struct event_base *base, const net_addr *addr,
                             const mllp_client_opts *opts);
/* Completes every unfinished request with MLLP_ERR_CANCELLED (their
 * callbacks run before this returns), closes the connection and frees. Not
 * from within a callback of this client. NULL is a no-op. */
void mllp_client_free(mllp_client *c);

/* Queues msg[0..len) (copied; it must not hold 0x0B or 0x1C 0x0D) and starts
 * connecting if needed. done is called exactly once with the outcome. */
void mllp_client_send(mllp_client *c, const char *msg, size_t len, mllp_done_fn done, void *arg);
/* The same with the message in nparts pieces, sent as one frame (a load
 * generator's template around a fresh control id): on an idle connection
 * the pieces are written as they are, without a copy. */
void mllp_client_sendv(mllp_client *c, const struct iovec *parts, int nparts, mllp_done_fn done,
                       void *arg);

/* Requests queued or on the wire, not yet completed. */
size_t mllp_client_pending(const mllp_client *c);
/* True while a connection is established. */
bool mllp_client_connected(const mllp_client *c);

typedef struct mllp_client_stats {
    uint64_t connects;   /* connections established */
    uint64_t sent;       /* messages written */
    uint64_t acked;      /* requests completed with MLLP_OK */
    uint64_t failed;     /* requests completed otherwise */
    uint64_t unexpected; /* reply frames with no message outstanding */
} mllp_client_stats;

void mllp_client_stats_get(const mllp_client *c, mllp_client_stats *st);

#endif
