/*
 * mllp_frame: the MLLP release 2 framer (see mllp_frame.h for the rules).
 *
 * A five-state machine: SEEK (between frames), IN (inside a frame), END (a
 * 0x1C was seen inside a frame; the next byte decides whether it ends it),
 * SKIP and SKIP_END (the same two for a frame being skipped because it is
 * oversized).
 *
 * Within one call, the bytes of the current frame that are in the caller's
 * chunk are the range data[seg..i) (in state END, minus the 0x1C at i-1).
 * They are copied into the framer's buffer only when the chunk ends before
 * the frame does; a frame that starts and ends in one chunk is handed out in
 * place. `here` says whether the frame started in this chunk, i.e. whether
 * the buffer holds nothing of it yet. In state END on entry, the 0x1C belongs
 * to the previous chunk and is in neither place.
 *
 * Invariant: buf.len <= max; the buffer is grown only after the size check,
 * so a hostile sender cannot make it exceed max_frame.
 */
#include "net/mllp_frame.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"

/* A buffer that grew beyond this for one big frame is released at the next
 * frame, so that one large message does not pin memory per connection. */
#define FRAMER_KEEP (1u << 20)

enum { ST_SEEK, ST_IN, ST_END, ST_SKIP, ST_SKIP_END };

struct mllp_framer {
    size_t max;
    int state;
    char *buf;
    size_t len, cap;
    mllp_framer_stats st;
};

const char *mllp_strerror(mllp_status s)
{
    switch (s) {
    case MLLP_OK:
        return "ok";
    case MLLP_ERR_ADDRESS:
        return "bad address";
    case MLLP_ERR_LISTEN:
        return "cannot listen";
    case MLLP_ERR_CONNECT:
        return "cannot connect";
    case MLLP_ERR_TIMEOUT:
        return "timeout";
    case MLLP_ERR_CLOSED:
        return "connection closed";
    case MLLP_ERR_TOO_LARGE:
        return "frame too large";
    case MLLP_ERR_CANCELLED:
        return "cancelled";
    }
    return "unknown MLLP status";
}

mllp_framer *mllp_framer_new(size_t max_frame)
{
    mllp_framer *f = xcalloc(1, sizeof(*f));
    f->max = max_frame ? max_frame : MLLP_DEFAULT_MAX_FRAME;
    f->state = ST_SEEK;
    return f;
}

void mllp_framer_free(mllp_framer *f)
{
    if (!f) return;
    free(f->buf);
    free(f);
}

bool mllp_framer_in_frame(const mllp_framer *f)
{
    return f->state != ST_SEEK;
}

void mllp_framer_reset(mllp_framer *f)
{
    f->state = ST_SEEK;
    f->len = 0;
}

void mllp_framer_stats_get(const mllp_framer *f, mllp_framer_stats *st)
{
    *st = f->st;
}

/* Appends n bytes; the caller has checked that len + n <= max. */
static void buf_append(mllp_framer *f, const char *p, size_t n)
{
    assert(f->len + n <= f->max);
    if (n == 0) return;
    if (f->len + n > f->cap) {
        size_t cap = f->cap ? f->cap : 1024;
        while (cap < f->len + n)
            cap *= 2;
        if (cap > f->max) cap = f->max;
        f->buf = xrealloc(f->buf, cap);
        f->cap = cap;
    }
    memcpy(f->buf + f->len, p, n);
    f->len += n;
}

/* The buffer as frame data: "" rather than NULL before the first growth. */
static const char *buf_data(const mllp_framer *f)
{
    return f->buf ? f->buf : "";
}

static void frame_begin(mllp_framer *f)
{
    if (f->cap > FRAMER_KEEP) {
        free(f->buf);
        f->buf = NULL;
        f->cap = 0;
    }
    f->len = 0;
}

/* Index of the first 0x0B or 0x1C in p[from..len), or len. */
static size_t find_special(const char *p, size_t from, size_t len)
{
    const char *end = memchr(p + from, MLLP_END_BLOCK, len - from);
    size_t lim = end ? (size_t)(end - p) : len;
    const char *start = memchr(p + from, MLLP_START_BLOCK, lim - from);
    return start ? (size_t)(start - p) : lim;
}

static void count_garbage(mllp_framer *f, const char *p, size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (p[k] != '\r' && p[k] != '\n') f->st.garbage++;
}

mllp_frame_kind mllp_framer_feed(mllp_framer *f, const void *data, size_t len, size_t *used,
                                 mllp_frame *out)
{
    assert(f && used && out && (data || len == 0));
    const char *p = data;
    size_t i = 0, seg = 0;
    bool here = false;
    mllp_frame_kind kind = MLLP_FRAME_NONE;

    if (f->state == ST_END) {
        /* the 0x1C that ended the previous chunk decides now */
        if (len == 0) goto done;
        if (p[0] == MLLP_CR || p[0] == MLLP_START_BLOCK) {
            if (p[0] == MLLP_CR)
                i = 1;
            else
                f->st.missing_cr++;
            out->data = buf_data(f);
            out->len = f->len;
            f->state = ST_SEEK;
            kind = MLLP_FRAME_OK;
            goto done;
        }
        if (f->len + 1 > f->max) {
            out->data = buf_data(f);
            out->len = f->len;
            f->state = ST_SKIP;
            kind = MLLP_FRAME_OVERSIZED;
            goto done;
        }
        buf_append(f, "\x1c", 1); /* it was payload */
        f->state = ST_IN;
    }

    while (kind == MLLP_FRAME_NONE) {
        switch (f->state) {
        case ST_SEEK: {
            const char *sb = memchr(p + i, MLLP_START_BLOCK, len - i);
            size_t stop = sb ? (size_t)(sb - p) : len;
            count_garbage(f, p + i, stop - i);
            if (!sb) {
                i = len;
                goto done;
            }
            i = stop + 1;
            frame_begin(f);
            f->state = ST_IN;
            seg = i;
            here = true;
            break;
        }
        case ST_IN: {
            size_t stop = find_special(p, i, len);
            if (f->len + (stop - seg) > f->max) {
                size_t take = f->max - f->len;
                if (here) {
                    out->data = p + seg;
                } else {
                    buf_append(f, p + seg, take);
                    out->data = buf_data(f);
                }
                out->len = f->max;
                i = seg + take;
                f->state = ST_SKIP;
                kind = MLLP_FRAME_OVERSIZED;
                break;
            }
            if (stop == len) {
                buf_append(f, p + seg, len - seg);
                i = len;
                goto done;
            }
            i = stop + 1;
            if (p[stop] == MLLP_START_BLOCK) {
                f->st.restarted++;
                frame_begin(f);
                seg = i;
                here = true;
            } else {
                f->state = ST_END;
            }
            break;
        }
        case ST_END: {
            /* p[i-1] is the 0x1C; the payload is p[seg..i-1) after the buffer */
            if (i == len) {
                buf_append(f, p + seg, i - 1 - seg);
                goto done;
            }
            if (p[i] != MLLP_CR && p[i] != MLLP_START_BLOCK) {
                f->state = ST_IN; /* the 0x1C is payload; IN checks the size */
                break;
            }
            size_t n = i - 1 - seg;
            if (here) {
                out->data = p + seg;
                out->len = n;
            } else {
                buf_append(f, p + seg, n);
                out->data = buf_data(f);
                out->len = f->len;
            }
            if (p[i] == MLLP_CR)
                i++;
            else
                f->st.missing_cr++;
            f->state = ST_SEEK;
            kind = MLLP_FRAME_OK;
            break;
        }
        case ST_SKIP: {
            size_t stop = find_special(p, i, len);
            if (stop == len) {
                i = len;
                goto done;
            }
            if (p[stop] == MLLP_START_BLOCK) {
                i = stop;
                f->state = ST_SEEK;
            } else {
                i = stop + 1;
                f->state = ST_SKIP_END;
            }
            break;
        }
        case ST_SKIP_END:
            if (i == len) goto done;
            if (p[i] == MLLP_CR) {
                i++;
                f->state = ST_SEEK;
            } else if (p[i] == MLLP_START_BLOCK) {
                f->state = ST_SEEK;
            } else if (p[i] == MLLP_END_BLOCK) {
                i++;
            } else {
                f->state = ST_SKIP;
            }
            break;
        }
    }

done:
    *used = i;
    f->st.bytes += i;
    if (kind == MLLP_FRAME_OK) {
        f->st.frames++;
        if (out->len == 0) f->st.empty++;
    } else if (kind == MLLP_FRAME_OVERSIZED) {
        f->st.oversized++;
    }
    return kind;
}

void mllp_frame_wrap(tbuf *out, const void *payload, size_t len)
{
    tbuf_grow(out, len + 3);
    out->p[out->len++] = MLLP_START_BLOCK;
    memcpy(out->p + out->len, payload, len);
    out->len += len;
    out->p[out->len++] = MLLP_END_BLOCK;
    out->p[out->len++] = MLLP_CR;
    out->p[out->len] = '\0';
}
