/*
 * hl7_batch: the streaming message reader (see hl7_batch.h for what it
 * accepts and reports).
 *
 * Every source is seen through one window: data[0..len) holds input bytes,
 * data[pos..len) is what has not been consumed, and data[0] is byte `base`
 * of the input. For a caller's buffer and for a mapped file the window is
 * the whole input and `eof` is true from the start. For a stream, fill()
 * slides the window (moving the unconsumed bytes to the front of `buf`) and
 * grows it up to max_window; code that needs n bytes asks avail(r, n).
 *
 * Messages are parsed in place by hl7_parse_prefix(), which makes the only
 * pass over their bytes: no copy, no allocation per message. On a stream a
 * message is complete once the parser stopped at the next boundary line (and
 * the byte after its id is in the window) or at the end of input; otherwise
 * the window is at least doubled and the message parsed again, so the work
 * stays linear in the message size.
 *
 * Envelope segments (FHS, BHS, BTS, FTS) are read here, one line each. The
 * open FHS and BHS are copied, so they survive the window moving.
 *
 * Invariant: every call of hl7_reader_next() consumes input or closes an
 * open FHS/BHS, so a loop over it always ends. After an error inside a
 * message or junk, `skip` makes the next call resume at the next boundary
 * line (a line starting with MSH, FHS, BHS, BTS or FTS).
 */
#include "hl7/hl7_batch.h"

#include "hl7/hl7_int.h"

#include "base/mem.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* First size of a stream buffer; it grows only for a larger message. */
#define READ_CHUNK ((size_t)1 << 20)
/* Window room past max_message: the parser checks its limit once per 64
 * bytes and the reader looks 4 bytes past a boundary. */
#define WINDOW_SLACK ((size_t)4096)
/* A mapped file gives back consumed pages each time this much was read. */
#define RELEASE_EVERY ((size_t)16 << 20)
/* Bytes of unexpected text quoted in an error message. */
#define SHOW_BYTES 24

struct hl7_reader {
    hl7_limits lim;    /* max_message clamped as hl7_msg_new() does */
    size_t max_window; /* lim.max_message + WINDOW_SLACK */

    const char *data; /* the window (see the top of the file) */
    size_t len, pos, base;
    bool eof;     /* no byte will be added to the window */
    bool skip;    /* resume at the next boundary line */
    bool started; /* the byte order mark check was done */

    int fd; /* stream source, -1 for memory and mapped files */
    bool close_fd;
    int io_errno; /* a read error not reported yet */
    size_t io_at;
    char *buf; /* stream buffer, cap bytes */
    size_t cap;

    char *map; /* mapped file, map_len bytes; data points into it */
    size_t map_len;
    size_t released; /* bytes at the front of map given back */
    size_t page;

    char env_fs;   /* field separator of the latest FHS/BHS, or '|' */
    bool in_file;  /* an FHS is open */
    bool in_batch; /* a BHS is open */
    size_t fhs_at; /* absolute offsets of the open FHS and BHS */
    size_t bhs_at;
    size_t file_batches; /* BHS seen since the open FHS */
    size_t file_msgs;    /* messages since the open FHS */
    size_t batch_msgs;   /* messages since the open BHS */
    tbuf fhs, bhs;       /* their text, empty when not open */

    hl7_reader_stats st;
};

static inline bool is_blank(char c)
{
    return c == '\r' || c == '\n' || c == ' ' || c == '\t';
}

/* A character HL7 allows as a delimiter: printable, not a letter or digit. */
static bool is_delimiter(char ch)
{
    unsigned char c = (unsigned char)ch;
    return c > 0x20 && c < 0x7f && !(c >= '0' && c <= '9') && !(c >= 'A' && c <= 'Z') &&
           !(c >= 'a' && c <= 'z');
}

/* Writes up to SHOW_BYTES bytes of p[0..n), stopping at a line end, into out
 * with non-printable bytes as \xHH. */
static void show_bytes(const char *p, size_t n, char *out, size_t size)
{
    size_t k = 0;
    for (size_t i = 0; i < n && i < SHOW_BYTES && p[i] != '\r' && p[i] != '\n'; i++) {
        unsigned char c = (unsigned char)p[i];
        if (k + 5 > size) break;
        if (c >= 0x20 && c < 0x7f)
            out[k++] = (char)c;
        else
            k += (size_t)snprintf(out + k, size - k, "\\x%02x", c);
    }
    out[k] = '\0';
}

/* --- the window ---------------------------------------------------------- */

/* Streams only: reads until the window holds `want` unconsumed bytes or the
 * input ends. Moves the unconsumed bytes to the front first and grows the
 * buffer (doubling) when want does not fit. A read error ends the input and
 * is remembered for hl7_reader_next() to report. */
static void fill(hl7_reader *r, size_t want)
{
    assert(r->fd >= 0 && !r->eof && want <= r->max_window);
    if (r->pos > 0) {
        size_t keep = r->len - r->pos;
        memmove(r->buf, r->buf + r->pos, keep);
        r->base += r->pos;
        r->len = keep;
        r->pos = 0;
    }
    if (want > r->cap) {
        size_t cap = r->cap;
        while (cap < want)
            cap *= 2;
        if (cap > r->max_window) cap = r->max_window;
        r->buf = xrealloc(r->buf, cap);
        r->cap = cap;
        r->data = r->buf;
    }
    while (r->len < want) {
        ssize_t n = read(r->fd, r->buf + r->len, r->cap - r->len);
        if (n > 0) {
            r->len += (size_t)n;
        } else if (n == 0) {
            r->eof = true;
            return;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            struct pollfd p = {.fd = r->fd, .events = POLLIN};
            (void)poll(&p, 1, -1);
        } else if (errno != EINTR) {
            r->io_errno = errno;
            r->io_at = r->base + r->len;
            r->eof = true;
            return;
        }
    }
}

/* Makes `want` unconsumed bytes available if the input has them; returns
 * how many there are. */
static inline size_t avail(hl7_reader *r, size_t want)
{
    if (r->len - r->pos < want && !r->eof) fill(r, want);
    return r->len - r->pos;
}

/* How far to grow the window when a unit of `have` bytes is incomplete:
 * doubling keeps repeated parsing linear. */
static size_t grow_target(const hl7_reader *r, size_t have)
{
    return have < r->max_window / 2 ? 2 * have + 1 : r->max_window;
}

/* Mapped files: gives consumed pages back, so the resident size stays
 * around RELEASE_EVERY however large the file. The mapping is private and
 * read-only, so a page touched again is simply read again from the file. */
static void release_consumed(hl7_reader *r)
{
    if (!r->map) return;
    size_t consumed = (size_t)(r->data - r->map) + r->pos;
    if (consumed - r->released < RELEASE_EVERY) return;
    size_t upto = consumed & ~(r->page - 1);
    (void)madvise(r->map + r->released, upto - r->released, MADV_DONTNEED);
    r->released = upto;
}

static void skip_blanks(hl7_reader *r)
{
    if (!r->started) {
        r->started = true;
        if (avail(r, 3) >= 3 && !memcmp(r->data + r->pos, "\xEF\xBB\xBF", 3)) r->pos += 3;
    }
    for (;;) {
        size_t a = avail(r, 1);
        if (a == 0) return;
        const char *p = r->data + r->pos, *end = p + a;
        while (p < end && is_blank(*p))
            p++;
        r->pos = (size_t)(p - r->data);
        if (p < end) return;
    }
}

/* Moves pos to the start of the next line that begins with MSH, FHS, BHS,
 * BTS or FTS, or to the end of input. Scans a slice at a time so that a
 * mapped file keeps releasing pages and a stream keeps its window small. */
static void skip_to_boundary(hl7_reader *r)
{
    for (;;) {
        const char *d = r->data;
        size_t n = r->len;
        size_t stop = n - r->pos > RELEASE_EVERY ? r->pos + RELEASE_EVERY : n;
        size_t i = r->pos;
        for (; i < stop; i++) {
            if (d[i] != '\r' && d[i] != '\n') continue;
            if (n - i < 4) break; /* the id after this line end is not all in the window */
            if (hl7_is_boundary_id(d + i + 1)) {
                r->pos = i + 1;
                return;
            }
        }
        r->pos = i;
        if (i < stop) {
            if (r->eof) {
                r->pos = n; /* too close to the end to start anything */
                return;
            }
            fill(r, 4);
        } else if (i == n) {
            if (r->eof) return;
            fill(r, 1);
        } else {
            release_consumed(r);
        }
    }
}

/* --- errors --------------------------------------------------------------- */

/* Adds one problem to err: the first sets code and offset, later ones are
 * appended to the text. */
static void add_problem(hl7_error *err, bool *any, hl7_status code, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void add_problem(hl7_error *err, bool *any, hl7_status code, size_t at, const char *fmt, ...)
{
    char text[sizeof(err->text)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (!*any) {
        hl7_fail(err, code, at, "%s", text);
        *any = true;
        return;
    }
    size_t used = strlen(err->text);
    snprintf(err->text + used, sizeof(err->text) - used, "; %s", text);
}

static hl7_status reader_fail(hl7_reader *r, hl7_msg *m, hl7_error *err)
{
    hl7_msg_reset(m);
    r->st.errors++;
    return err->code;
}

/* Reports text at pos that cannot start anything and skips it. */
static hl7_status junk(hl7_reader *r, hl7_msg *m, hl7_error *err)
{
    char shown[SHOW_BYTES * 4 + 1];
    size_t a = avail(r, SHOW_BYTES);
    show_bytes(r->data + r->pos, a, shown, sizeof(shown));
    hl7_fail(err, HL7_ERR_NO_MSH, r->base + r->pos,
             "expected a message (MSH) or a batch segment (FHS, BHS, BTS, FTS) at the start of "
             "a line, found '%s'; skipping to the next such line",
             shown);
    r->pos++;
    r->skip = true;
    return reader_fail(r, m, err);
}

/* --- messages ------------------------------------------------------------ */

/* Whether p[from..have) holds a line that starts with MSH, FHS, BHS, BTS or
 * FTS and the byte after that id. */
static bool boundary_after(const char *p, size_t from, size_t have)
{
    for (size_t i = from; i + 4 < have; i++)
        if ((p[i] == '\r' || p[i] == '\n') && hl7_is_boundary_id(p + i + 1)) return true;
    return false;
}

/* Streams: 0 when parsing the window said something final about the
 * message, else how many unconsumed bytes the window needs before parsing
 * again. */
static size_t stream_want(const hl7_reader *r, hl7_status st, size_t used, const hl7_error *perr)
{
    size_t have = r->len - r->pos;
    const char *p = r->data + r->pos;
    if (st == HL7_OK) {
        if (used == have) return grow_target(r, have); /* may go on */
        /* Stopped at a boundary: the byte after its id must be seen too. */
        return have - used >= 4 ? 0 : used + 4;
    }
    if (st == HL7_ERR_TOO_LARGE) return 0;
    size_t at = perr->offset < have ? perr->offset : have;
    /* An MSH with too few fields (it has a second separator) is reported
     * after the whole message was scanned: final only when the scan is known
     * to have stopped at a boundary line, not at the end of the window. */
    if (st == HL7_ERR_TRUNCATED && at > 4 && memchr(p + 4, p[3], at - 4))
        return boundary_after(p, at, have) ? 0 : grow_target(r, have);
    /* Other errors are about the line they name; that line must be whole. */
    if (memchr(p + at, '\r', have - at) || memchr(p + at, '\n', have - at)) return 0;
    return grow_target(r, have);
}

static hl7_status read_message(hl7_reader *r, hl7_msg *m, size_t *offset, hl7_error *err)
{
    hl7_error perr;
    size_t used = 0;
    hl7_status st;
    for (;;) {
        size_t have = r->len - r->pos;
        st = hl7_parse_prefix(m, r->data + r->pos, have, &used, &perr);
        if (r->eof) break;
        size_t want = stream_want(r, st, used, &perr);
        if (want == 0) break;
        if (have >= r->max_window) {
            hl7_fail(&perr, HL7_ERR_TOO_LARGE, r->lim.max_message,
                     "message is larger than the limit of %zu bytes", r->lim.max_message);
            st = HL7_ERR_TOO_LARGE;
            break;
        }
        fill(r, want < r->max_window ? want : r->max_window);
    }
    size_t start = r->base + r->pos;
    if (r->in_batch) r->batch_msgs++;
    if (r->in_file) r->file_msgs++;
    if (st == HL7_OK) {
        r->pos += used;
        r->st.messages++;
        if (offset) *offset = start;
        return HL7_OK;
    }
    *err = perr;
    err->offset += start;
    r->pos += 3;
    r->skip = true;
    return reader_fail(r, m, err);
}

/* --- envelope segments --------------------------------------------------- */

/* Finds the end of the line at pos (its length, terminator excluded).
 * False when it is longer than max_message. */
static bool envelope_line(hl7_reader *r, size_t *len)
{
    size_t from = 3;
    for (;;) {
        size_t have = r->len - r->pos;
        const char *p = r->data + r->pos;
        for (size_t i = from; i < have; i++) {
            if (p[i] == '\r' || p[i] == '\n') {
                *len = i;
                return i <= r->lim.max_message;
            }
        }
        if (have > r->lim.max_message) return false;
        if (r->eof) {
            *len = have;
            return true;
        }
        from = have;
        fill(r, grow_target(r, have));
    }
}

/* Field 1 of an envelope segment whose 4th byte is its field separator. */
static hl7_span field1(const char *line, size_t len)
{
    hl7_span f = {line + len, 0};
    if (len <= 4) return f;
    const char *end = line + len;
    const char *q = memchr(line + 4, line[3], len - 4);
    f.p = line + 4;
    f.len = (size_t)((q ? q : end) - f.p);
    return f;
}

/* Parses an NM count; false when it is not a plain decimal number. */
static bool parse_count(hl7_span f, size_t *out)
{
    if (f.len == 0 || f.len > 18) return false;
    size_t v = 0;
    for (size_t i = 0; i < f.len; i++) {
        if (f.p[i] < '0' || f.p[i] > '9') return false;
        v = v * 10 + (size_t)(f.p[i] - '0');
    }
    *out = v;
    return true;
}

/* Checks field 1 of a BTS or FTS against the count the reader made. */
static void check_count(hl7_error *err, bool *any, const char *line, size_t len, size_t at,
                        size_t counted, size_t alt, const char *what)
{
    hl7_span f = field1(line, len);
    if (f.len == 0) return;
    char shown[SHOW_BYTES * 4 + 1];
    size_t n;
    if (!parse_count(f, &n)) {
        show_bytes(f.p, f.len, shown, sizeof(shown));
        add_problem(err, any, HL7_ERR_BATCH, at,
                    "%.3s-1 (%s count) is '%s', not a number; it must be empty or the count", line,
                    what, shown);
        return;
    }
    if (n == counted || n == alt) return;
    add_problem(err, any, HL7_ERR_BATCH, at,
                "%.3s-1 says %zu %s but %zu were read; the %s may have been cut or merged", line, n,
                what, counted, line[0] == 'B' ? "batch" : "file");
}

static void close_batch(hl7_reader *r)
{
    r->in_batch = false;
    tbuf_reset(&r->bhs);
}

static void close_file(hl7_reader *r)
{
    r->in_file = false;
    tbuf_reset(&r->fhs);
}

/* Reads the FHS, BHS, BTS or FTS line at pos and updates the envelope
 * state. Returns HL7_OK, or the problems found (the line is consumed either
 * way). */
static hl7_status read_envelope(hl7_reader *r, hl7_msg *m, hl7_error *err)
{
    size_t len;
    size_t at = r->base + r->pos;
    if (!envelope_line(r, &len)) {
        hl7_fail(err, HL7_ERR_TOO_LARGE, at,
                 "%.3s segment is longer than the message limit of %zu bytes without a line end",
                 r->data + r->pos, r->lim.max_message);
        r->pos += 3;
        r->skip = true;
        return reader_fail(r, m, err);
    }
    const char *line = r->data + r->pos;
    bool header = line[1] == 'H', file = line[0] == 'F';
    if (len > 3 && !is_delimiter(line[3])) return junk(r, m, err);
    bool any = false;
    if (header) {
        if (r->in_batch)
            add_problem(err, &any, HL7_ERR_BATCH, at,
                        "%.3s starts a new %s but the batch opened by BHS at byte %zu has no BTS",
                        line, file ? "file" : "batch", r->bhs_at);
        if (file && r->in_file)
            add_problem(err, &any, HL7_ERR_BATCH, at,
                        "FHS starts a new file but the file opened by FHS at byte %zu has no FTS",
                        r->fhs_at);
        if (len > 3) r->env_fs = line[3];
        close_batch(r);
        tbuf *copy = file ? &r->fhs : &r->bhs;
        tbuf_reset(copy);
        tbuf_put(copy, line, len);
        if (file) {
            r->in_file = true;
            r->fhs_at = at;
            r->file_batches = r->file_msgs = 0;
            r->st.files++;
        } else {
            r->in_batch = true;
            r->bhs_at = at;
            r->batch_msgs = 0;
            if (r->in_file) r->file_batches++;
            r->st.batches++;
        }
    } else if (len > 3 && line[3] != r->env_fs) {
        add_problem(err, &any, HL7_ERR_BATCH, at,
                    "%.3s uses field separator '%c' but the header declared '%c'; its count "
                    "was not checked",
                    line, line[3], r->env_fs);
        close_batch(r);
        if (file) close_file(r);
    } else if (!file) {
        if (!r->in_batch)
            add_problem(err, &any, HL7_ERR_BATCH, at,
                        "BTS without a batch: no BHS is open; add the missing BHS or remove "
                        "the BTS");
        else
            check_count(err, &any, line, len, at, r->batch_msgs, r->batch_msgs, "messages");
        close_batch(r);
    } else {
        if (!r->in_file) {
            add_problem(err, &any, HL7_ERR_BATCH, at,
                        "FTS without a file: no FHS is open; add the missing FHS or remove "
                        "the FTS");
        } else {
            if (r->in_batch)
                add_problem(err, &any, HL7_ERR_BATCH, at,
                            "FTS closes the file but the batch opened by BHS at byte %zu has "
                            "no BTS",
                            r->bhs_at);
            /* Messages straight inside FHS (no BHS) are often counted as
             * if each were a batch. */
            check_count(err, &any, line, len, at, r->file_batches,
                        r->file_batches ? r->file_batches : r->file_msgs, "batches");
        }
        close_batch(r);
        close_file(r);
    }
    r->pos += len;
    if (any) return reader_fail(r, m, err);
    return HL7_OK;
}

static hl7_status end_of_input(hl7_reader *r, hl7_msg *m, bool *done, hl7_error *err)
{
    size_t at = r->base + r->len;
    if (r->in_batch) {
        hl7_fail(err, HL7_ERR_BATCH, at,
                 "the input ends inside the batch opened by BHS at byte %zu: its BTS is "
                 "missing; the batch may be truncated",
                 r->bhs_at);
        close_batch(r);
        return reader_fail(r, m, err);
    }
    if (r->in_file) {
        hl7_fail(err, HL7_ERR_BATCH, at,
                 "the input ends inside the file opened by FHS at byte %zu: its FTS is missing; "
                 "the file may be truncated",
                 r->fhs_at);
        close_file(r);
        return reader_fail(r, m, err);
    }
    hl7_msg_reset(m);
    *done = true;
    return HL7_OK;
}

/* --- API ------------------------------------------------------------------ */

hl7_status hl7_reader_next(hl7_reader *r, hl7_msg *m, size_t *offset, bool *done, hl7_error *err)
{
    assert(r && m && done);
    hl7_error local;
    if (!err) err = &local;
    *done = false;
    if (offset) *offset = 0;
    release_consumed(r);
    for (;;) {
        if (r->io_errno) {
            hl7_fail(err, HL7_ERR_IO, r->io_at,
                     "reading the input failed: %s; the messages after this point are lost",
                     strerror(r->io_errno));
            r->io_errno = 0;
            return reader_fail(r, m, err);
        }
        if (r->skip) {
            r->skip = false;
            skip_to_boundary(r);
        }
        skip_blanks(r);
        size_t a = avail(r, 4);
        if (r->io_errno) continue;
        if (a == 0) return end_of_input(r, m, done, err);
        const char *p = r->data + r->pos;
        if (a >= 3 && p[0] == 'M' && p[1] == 'S' && p[2] == 'H')
            return read_message(r, m, offset, err);
        if (a < 3 || !hl7_is_boundary_id(p)) return junk(r, m, err);
        hl7_status st = read_envelope(r, m, err);
        if (st != HL7_OK) return st;
    }
}

static hl7_reader *reader_new(const hl7_limits *lim)
{
    hl7_reader *r = xcalloc(1, sizeof(*r));
    if (lim)
        r->lim = *lim;
    else
        hl7_limits_default(&r->lim);
    if (r->lim.max_message == 0 || r->lim.max_message > 0x7fffffffu)
        r->lim.max_message = 0x7fffffffu;
    r->max_window = r->lim.max_message + WINDOW_SLACK;
    r->fd = -1;
    r->env_fs = '|';
    r->data = "";
    return r;
}

hl7_reader *hl7_reader_mem(const char *buf, size_t len, const hl7_limits *lim)
{
    assert(buf || len == 0);
    hl7_reader *r = reader_new(lim);
    if (buf) r->data = buf;
    r->len = len;
    r->eof = true;
    return r;
}

/* Maps the regular file behind fd from its current position. False when
 * that is not possible (not a regular file, empty, or mmap refused): then
 * the file is streamed like a pipe. */
static bool map_file(hl7_reader *r, int fd)
{
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size <= 0) return false;
    off_t cur = lseek(fd, 0, SEEK_CUR);
    if (cur < 0 || cur >= sb.st_size) return false;
    size_t size = (size_t)sb.st_size;
    void *p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) return false;
    (void)madvise(p, size, MADV_SEQUENTIAL);
    r->map = p;
    r->map_len = size;
    r->data = r->map + cur;
    r->len = size - (size_t)cur;
    r->eof = true;
    long page = sysconf(_SC_PAGESIZE);
    r->page = page > 0 ? (size_t)page : 4096;
    return true;
}

static hl7_reader *stream_reader(int fd, hl7_reader *r)
{
    r->fd = fd;
    r->cap = READ_CHUNK < r->max_window ? READ_CHUNK : r->max_window;
    r->buf = xmalloc(r->cap);
    r->data = r->buf;
    return r;
}

hl7_reader *hl7_reader_fd(int fd, const hl7_limits *lim)
{
    assert(fd >= 0);
    hl7_reader *r = reader_new(lim);
    if (map_file(r, fd)) return r;
    return stream_reader(fd, r);
}

hl7_reader *hl7_reader_fd_stream(int fd, const hl7_limits *lim)
{
    assert(fd >= 0);
    return stream_reader(fd, reader_new(lim));
}

hl7_reader *hl7_reader_open(const char *path, const hl7_limits *lim, hl7_error *err)
{
    assert(path);
    if (!strcmp(path, "-")) return hl7_reader_fd(STDIN_FILENO, lim);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        hl7_fail(err, HL7_ERR_IO, 0, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat sb;
    if (fstat(fd, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        close(fd);
        hl7_fail(err, HL7_ERR_IO, 0, "cannot read %s: it is a directory; give a file", path);
        return NULL;
    }
    hl7_reader *r = hl7_reader_fd(fd, lim);
    if (r->map)
        close(fd);
    else
        r->close_fd = true;
    return r;
}

void hl7_reader_free(hl7_reader *r)
{
    if (!r) return;
    if (r->map) munmap(r->map, r->map_len);
    if (r->close_fd) close(r->fd);
    free(r->buf);
    tbuf_free(&r->fhs);
    tbuf_free(&r->bhs);
    free(r);
}

void hl7_reader_stats_get(const hl7_reader *r, hl7_reader_stats *st)
{
    *st = r->st;
    st->bytes = r->base + r->pos;
}

hl7_span hl7_reader_fhs(const hl7_reader *r)
{
    hl7_span s = {r->fhs.len ? r->fhs.p : "", r->fhs.len};
    return s;
}

hl7_span hl7_reader_bhs(const hl7_reader *r)
{
    hl7_span s = {r->bhs.len ? r->bhs.p : "", r->bhs.len};
    return s;
}
