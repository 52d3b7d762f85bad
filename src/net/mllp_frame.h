/*
 * mllp_frame: MLLP release 2 framing, and the MLLP layer's error type.
 *
 * A frame on the wire is 0x0B (start block), the payload, 0x1C 0x0D (end
 * block). The framer is pure: no I/O, no clock. The caller feeds it whatever
 * bytes arrived, in chunks of any size, and gets back complete frames one at
 * a time. It keeps one buffer for a frame that spans several chunks; the
 * buffer grows to the largest frame seen (never beyond max_frame) and is
 * reused, so the steady state does no allocation. A frame that lies wholly in
 * one chunk is handed out in place, without a copy.
 *
 * Forgiveness rules (docs/mllp.md says the same for interface analysts):
 *   - Bytes outside a frame are skipped and counted as garbage; CR and LF
 *     there are skipped without being counted (many senders add a newline
 *     after each frame).
 *   - 0x1C followed by 0x0B ends the frame (the CR is missing) and starts the
 *     next one. 0x1C followed by any other byte is payload: HL7 text never
 *     holds 0x1C, so ending the frame there could cut a message short and
 *     have its head acknowledged as if it were whole.
 *   - 0x0B inside a frame means the sender gave up on that frame and began
 *     again: the partial frame is dropped (counted) and a new one starts.
 *   - A frame longer than max_frame is reported once, as MLLP_FRAME_OVERSIZED
 *     with its first max_frame bytes (enough to read the MSH and answer with
 *     a reject), and the rest of it is skipped up to its end block or the
 *     next start block. The stream stays usable.
 *   - An empty frame (0x0B 0x1C 0x0D) is returned like any other, len 0.
 *
 * Not thread-safe; one framer per connection.
 */
#ifndef TERN_MLLP_FRAME_H
#define TERN_MLLP_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/tbuf.h"

#define MLLP_START_BLOCK 0x0B
#define MLLP_END_BLOCK 0x1C
#define MLLP_CR 0x0D

/* Default largest payload accepted: 16 MiB (a lab report with an embedded
 * PDF fits; a runaway sender does not take the machine's memory). */
#define MLLP_DEFAULT_MAX_FRAME (16u << 20)

/* --- the MLLP layer's error type (framer, server, client) ---------------- */

typedef enum mllp_status {
    MLLP_OK = 0,
    MLLP_ERR_ADDRESS,   /* host:port not usable (syntax, unknown host) */
    MLLP_ERR_LISTEN,    /* cannot listen on the address */
    MLLP_ERR_CONNECT,   /* cannot connect, or connecting took too long */
    MLLP_ERR_TIMEOUT,   /* no ACK within the ACK timeout */
    MLLP_ERR_CLOSED,    /* the connection ended before the ACK came */
    MLLP_ERR_TOO_LARGE, /* a frame exceeded the maximum frame size */
    MLLP_ERR_CANCELLED, /* the request was dropped (client freed) */
} mllp_status;

/* A static, human-readable name for a status; never NULL. */
const char *mllp_strerror(mllp_status s);

/* What failed and why: `text` names the peer or address and the cause in
 * words a user can act on. */
typedef struct mllp_error {
    mllp_status code;
    char text[256];
} mllp_error;

/* --- framing ----------------------------------------------------------------- */

typedef enum mllp_frame_kind {
    MLLP_FRAME_NONE = 0,  /* the input was used up without completing a frame */
    MLLP_FRAME_OK,        /* out holds a complete frame's payload */
    MLLP_FRAME_OVERSIZED, /* out holds the first max_frame bytes of a frame that
                             is too long; the rest is being skipped */
} mllp_frame_kind;

typedef struct mllp_frame {
    const char *data; /* payload without the block characters */
    size_t len;
} mllp_frame;

typedef struct mllp_framer_stats {
    uint64_t bytes;      /* bytes fed */
    uint64_t frames;     /* MLLP_FRAME_OK returned (empty ones included) */
    uint64_t empty;      /* of which had no payload */
    uint64_t oversized;  /* MLLP_FRAME_OVERSIZED returned */
    uint64_t garbage;    /* bytes outside frames, CR and LF not counted */
    uint64_t restarted;  /* partial frames dropped at a new start block */
    uint64_t missing_cr; /* frames ended by 0x1C 0x0B */
} mllp_framer_stats;

typedef struct mllp_framer mllp_framer;

/* max_frame: largest payload, 0 for MLLP_DEFAULT_MAX_FRAME. Never NULL. */
mllp_framer *mllp_framer_new(size_t max_frame);
void mllp_framer_free(mllp_framer *f);

/* Consumes data[0..len) up to the end of the next complete (or oversized)
 * frame and says how many bytes it took in *used. Returns:
 *   MLLP_FRAME_NONE: all len bytes were consumed (*used == len), no frame yet;
 *   MLLP_FRAME_OK / MLLP_FRAME_OVERSIZED: *out is filled; call again with
 *     data + *used for the rest of the chunk.
 * out->data points either into data or into the framer; it stays valid until
 * the next call on f and as long as data does. */
mllp_frame_kind mllp_framer_feed(mllp_framer *f, const void *data, size_t len, size_t *used,
                                 mllp_frame *out);

/* True when the framer is inside a frame (bytes of an unfinished frame have
 * been seen), e.g. to report a peer that hung up mid-message. */
bool mllp_framer_in_frame(const mllp_framer *f);
/* Drops any partial frame and returns to "between frames". */
void mllp_framer_reset(mllp_framer *f);

void mllp_framer_stats_get(const mllp_framer *f, mllp_framer_stats *st);

/* Appends payload[0..len) wrapped as one frame to out. The payload must not
 * hold 0x1C 0x0D or 0x0B (HL7 text never does). */
void mllp_frame_wrap(tbuf *out, const void *payload, size_t len);

#endif
