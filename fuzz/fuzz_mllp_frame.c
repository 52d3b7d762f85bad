/*
 * Fuzz target for the MLLP framer. The first byte picks the maximum frame
 * size (small, so that oversized frames are common), the second seeds the
 * chunking; the rest is the byte stream. The stream is framed twice: in one
 * piece, and in pseudo-random chunks of 1 to 64 bytes. Properties checked,
 * beyond "no crash, no leak, no undefined behaviour":
 *   - the frames (and the counters) do not depend on the chunking;
 *   - the framer always consumes what it is given (NONE means all of it);
 *   - no frame is longer than the maximum, an oversized one is exactly the
 *     maximum, and a frame never holds a start block or an end block + CR.
 */
#include "net/mllp_frame.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_frame(mllp_frame_kind k, const mllp_frame *fr, size_t max)
{
    if (fr->len > max) abort();
    if (k == MLLP_FRAME_OVERSIZED && fr->len != max) abort();
    if (k == MLLP_FRAME_OK) {
        if (memchr(fr->data, MLLP_START_BLOCK, fr->len)) abort();
        for (size_t i = 0; i + 1 < fr->len; i++)
            if (fr->data[i] == MLLP_END_BLOCK && fr->data[i + 1] == MLLP_CR) abort();
    }
}

/* Frames data[0..len) in chunks (chunk_seed 0: one piece) and appends a
 * record of the frames to out. */
static void frame_all(const uint8_t *data, size_t len, size_t max, unsigned chunk_seed, tbuf *out,
                      mllp_framer_stats *st)
{
    mllp_framer *f = mllp_framer_new(max);
    uint32_t rng = chunk_seed * 2654435761u + 1;
    size_t pos = 0;
    while (pos < len) {
        size_t n = len - pos;
        if (chunk_seed) {
            rng = rng * 1103515245u + 12345u;
            size_t want = 1 + ((rng >> 16) % 64);
            if (want < n) n = want;
        }
        const char *chunk = (const char *)data + pos;
        size_t left = n;
        for (;;) {
            mllp_frame fr;
            size_t used = 0;
            mllp_frame_kind k = mllp_framer_feed(f, chunk, left, &used, &fr);
            if (used > left) abort();
            chunk += used;
            left -= used;
            if (k == MLLP_FRAME_NONE) {
                if (left != 0) abort();
                break;
            }
            check_frame(k, &fr, max);
            tbuf_putc(out, k == MLLP_FRAME_OK ? 'F' : 'O');
            tbuf_put(out, &fr.len, sizeof(fr.len));
            tbuf_put(out, fr.data, fr.len);
        }
        pos += n;
    }
    mllp_framer_stats_get(f, st);
    if (st->bytes != len) abort();
    mllp_framer_free(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    size_t max = 1 + (size_t)data[0] * 4;
    unsigned seed = 1u + data[1];
    data += 2;
    size -= 2;
    tbuf whole = TBUF_INIT, chunked = TBUF_INIT;
    mllp_framer_stats a, b;
    frame_all(data, size, max, 0, &whole, &a);
    frame_all(data, size, max, seed, &chunked, &b);
    if (whole.len != chunked.len || (whole.len && memcmp(whole.p, chunked.p, whole.len))) abort();
    if (memcmp(&a, &b, sizeof(a)) != 0) abort();
    tbuf_free(&whole);
    tbuf_free(&chunked);
    return 0;
}
