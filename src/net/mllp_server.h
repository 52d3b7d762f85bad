/*
 * mllp_server: an MLLP listener on the caller's event_base.
 *
 * Accepts many connections, reads MLLP frames from each (mllp_frame.h) and
 * hands every frame to one handler callback together with a reply handle.
 * The handler answers through the handle, either before it returns or at any
 * later time (the engine answers only after the message is durably stored).
 * Replies go out in the order of the frames on their connection whatever the
 * order in which they are given: each frame takes a slot in its connection's
 * reply queue, and the queue is written out from its head as far as the
 * slots are answered.
 *
 * Limits: a maximum frame size (an oversized frame reaches the handler with
 * its head and `oversized` set, so it can be rejected, and the connection
 * goes on); a cap on replies still owed per connection (at the cap the
 * server stops reading from that connection until a reply goes out, so a
 * fast sender cannot queue unbounded work; likewise while 256 KiB of
 * replies wait for a peer that does not read them); an idle timeout (a connection
 * with no traffic and no reply owed is closed); a connection count.
 *
 * A reply handle is owned by the handler from the callback until it calls
 * mllp_reply_send() or mllp_reply_drop(), exactly once. It stays valid when
 * the connection closes or the server is freed meanwhile; replying then does
 * nothing but release it.
 *
 * mllp_server_stop() is the graceful stop: no new connections, no new frames
 * read, replies still owed are awaited and written out, then each connection
 * closes, then a callback says the server is stopped.
 *
 * Single-threaded: everything, including mllp_reply_*, must be called on the
 * event_base's thread. No threads are started.
 */
#ifndef TERN_MLLP_SERVER_H
#define TERN_MLLP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/mllp_frame.h"
#include "net/net.h"

struct event_base;

typedef struct mllp_server mllp_server;
typedef struct mllp_reply mllp_reply;

/* One inbound frame, as the handler sees it. Everything is borrowed for the
 * duration of the callback: copy what must outlive it. */
typedef struct mllp_inbound {
    const char *data; /* the frame payload (an HL7 message, or its head) */
    size_t len;
    bool oversized;   /* the frame exceeded max_frame: data is its first
                         max_frame bytes, the rest was skipped */
    uint64_t conn_id; /* 1, 2, ... in accept order, for logs */
    uint64_t seq;     /* 1, 2, ... per connection */
    const char *peer; /* "addr:port" */
    /* TLS with a client certificate: its SHA-256 fingerprint (64 lower-case
     * hex digits); NULL otherwise. Read once per connection. */
    const char *peer_cert;
} mllp_inbound;

/* Called for each non-empty frame. The handler owns `reply` from now on and
 * must pass it to mllp_reply_send() or mllp_reply_drop() exactly once, now or
 * later. Empty frames are skipped without a call and without a reply. */
typedef void (*mllp_handler_fn)(const mllp_inbound *in, mllp_reply *reply, void *arg);

/* Connection-level happenings for logs: opened, closed (with the reason and
 * counters), oversized frames, refused connections. text is a complete
 * sentence, borrowed for the call; conn_id 0 when no connection applies. */
typedef void (*mllp_log_fn)(uint64_t conn_id, const char *peer, const char *text, void *arg);

typedef struct mllp_server_opts {
    size_t max_frame;         /* bytes; 0: MLLP_DEFAULT_MAX_FRAME */
    unsigned idle_timeout_ms; /* 0: MLLP_DEFAULT_IDLE_MS; UINT32_MAX: never */
    unsigned max_inflight;    /* replies owed per connection; 0: MLLP_DEFAULT_INFLIGHT */
    unsigned max_connections; /* 0: MLLP_DEFAULT_MAX_CONNECTIONS */
    mllp_log_fn log;          /* may be NULL */
    void *log_arg;
    tls_ctx *tls; /* a TLS_SERVER context (borrowed, must outlive the
                     server); NULL: plain TCP */
} mllp_server_opts;

#define MLLP_DEFAULT_IDLE_MS (10u * 60u * 1000u)
#define MLLP_DEFAULT_INFLIGHT 64u
#define MLLP_DEFAULT_MAX_CONNECTIONS 1024u

/* Starts listening on addr (port 0: any free port, see mllp_server_port).
 * opts may be NULL (defaults). Returns NULL and fills err (MLLP_ERR_ADDRESS
 * or MLLP_ERR_LISTEN) on failure. */
mllp_server *mllp_server_new(struct event_base *base, const net_addr *addr,
                             const mllp_server_opts *opts, mllp_handler_fn handler, void *arg,
                             mllp_error *err);
/* The port listened on; after mllp_server_stop(), the port it had. */
uint16_t mllp_server_port(const mllp_server *s);

/* Graceful stop (see above). `done` (may be NULL) is called once, from the
 * loop, when the last connection has closed, even if there was none. May be
 * called from a handler. Calling it twice keeps the first callback. */
void mllp_server_stop(mllp_server *s, void (*done)(void *arg), void *arg);
/* Closes every connection at once and frees the server. Outstanding reply
 * handles stay valid (replying becomes a no-op). Not from within a handler or
 * log callback. NULL is a no-op. */
void mllp_server_free(mllp_server *s);

typedef struct mllp_server_stats {
    uint64_t accepted;    /* connections accepted */
    uint64_t refused;     /* connections closed at once: too many */
    uint64_t open;        /* connections open now */
    uint64_t frames;      /* frames handed to the handler */
    uint64_t empty;       /* empty frames skipped */
    uint64_t oversized;   /* of the frames, oversized ones */
    uint64_t replies;     /* replies written */
    uint64_t garbage;     /* bytes outside frames (CR/LF not counted) */
    uint64_t idle_closed; /* connections closed for idleness */
    uint64_t partial;     /* connections that ended inside a frame */
    uint64_t paused;      /* times reading was paused (backpressure) */
} mllp_server_stats;

void mllp_server_stats_get(const mllp_server *s, mllp_server_stats *st);

/* --- replies ------------------------------------------------------------------ */

/* Sends data (copied; framed by the server) as the reply to the handle's
 * frame, once every earlier frame of the connection has been answered, and
 * releases the handle. A no-op apart from the release when the connection
 * is gone. */
void mllp_reply_send(mllp_reply *r, const char *data, size_t len);
/* Releases the handle without replying; later replies on the connection are
 * no longer held up by this frame. */
void mllp_reply_drop(mllp_reply *r);
/* False once the connection of the handle has closed (replying is then
 * pointless, though harmless). */
bool mllp_reply_connected(const mllp_reply *r);

#endif
