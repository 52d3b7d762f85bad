/*
 * hl7_msg: parsing and indexing an HL7 v2 message, and reading it back.
 *
 * The parser makes one pass over the input. On x86-64 it looks at 64 bytes at
 * a time with SSE2 and gets a bit mask of the bytes that matter (the field
 * separator, CR, LF, NUL); only those bytes are visited, so the cost is
 * proportional to the number of fields, not bytes. Everything else
 * (components, repetitions, escapes) is left for access time. See hl7_int.h
 * for the index layout.
 *
 * Errors name the byte offset (relative to the start of the buffer given),
 * and the segment and field when known. A message never causes unbounded
 * work or memory: sizes are checked against hl7_limits as they are met.
 */
#include "hl7/hl7_int.h"

#include "base/mem.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

static const char *const status_names[] = {
    [HL7_OK] = "ok",
    [HL7_ERR_EMPTY] = "empty input",
    [HL7_ERR_NO_MSH] = "no MSH segment",
    [HL7_ERR_DELIMITERS] = "invalid delimiters",
    [HL7_ERR_TRUNCATED] = "truncated message",
    [HL7_ERR_SEGMENT_ID] = "invalid segment id",
    [HL7_ERR_NUL] = "NUL byte in message",
    [HL7_ERR_FIELD_TOO_LONG] = "field too long",
    [HL7_ERR_TOO_MANY_SEGMENTS] = "too many segments",
    [HL7_ERR_TOO_LARGE] = "message too large",
    [HL7_ERR_PATH] = "invalid path",
    [HL7_ERR_NOT_FOUND] = "not found",
    [HL7_ERR_VALUE] = "invalid value",
    [HL7_ERR_BATCH] = "batch error",
    [HL7_ERR_IO] = "input/output error",
};

const char *hl7_strerror(hl7_status s)
{
    if ((unsigned)s < sizeof(status_names) / sizeof(status_names[0]) && status_names[s])
        return status_names[s];
    return "unknown error";
}

hl7_status hl7_fail(hl7_error *err, hl7_status code, size_t offset, const char *fmt, ...)
{
    if (!err) return code;
    memset(err, 0, sizeof(*err));
    err->code = code;
    err->offset = offset;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->text, sizeof(err->text), fmt, ap);
    va_end(ap);
    return code;
}

static hl7_status fail_at(hl7_error *err, hl7_status code, size_t offset, uint32_t segno,
                          const char *id, uint32_t field, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

static hl7_status fail_at(hl7_error *err, hl7_status code, size_t offset, uint32_t segno,
                          const char *id, uint32_t field, const char *fmt, ...)
{
    if (!err) return code;
    memset(err, 0, sizeof(*err));
    err->code = code;
    err->offset = offset;
    err->segment = segno;
    if (id) memcpy(err->seg_id, id, 3);
    err->field = field;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->text, sizeof(err->text), fmt, ap);
    va_end(ap);
    return code;
}

char *hl7_error_where(const hl7_error *e, char *buf, size_t size)
{
    int n = snprintf(buf, size, "byte %zu", e->offset);
    if (e->segment && n >= 0 && (size_t)n < size) {
        n += snprintf(buf + n, size - (size_t)n, ", segment %u", e->segment);
        if (e->seg_id[0] && (size_t)n < size)
            n += snprintf(buf + n, size - (size_t)n, " (%s)", e->seg_id);
        if (e->field && (size_t)n < size)
            snprintf(buf + n, size - (size_t)n, ", field %s-%u", e->seg_id[0] ? e->seg_id : "",
                     e->field);
    }
    return buf;
}

void hl7_limits_default(hl7_limits *lim)
{
    lim->max_message = HL7_DEFAULT_MAX_MESSAGE;
    lim->max_field = HL7_DEFAULT_MAX_FIELD;
    lim->max_segments = HL7_DEFAULT_MAX_SEGMENTS;
}

hl7_msg *hl7_msg_new(const hl7_limits *lim)
{
    hl7_msg *m = xcalloc(1, sizeof(*m));
    if (lim)
        m->lim = *lim;
    else
        hl7_limits_default(&m->lim);
    /* Offsets are 32-bit: keep every message well inside that. */
    if (m->lim.max_message == 0 || m->lim.max_message > 0x7fffffffu)
        m->lim.max_message = 0x7fffffffu;
    if (m->lim.max_field == 0 || m->lim.max_field > m->lim.max_message)
        m->lim.max_field = m->lim.max_message;
    if (m->lim.max_segments == 0) m->lim.max_segments = HL7_DEFAULT_MAX_SEGMENTS;
    return m;
}

void hl7_msg_reset(hl7_msg *m)
{
    for (size_t i = 1; i < m->nowned; i++) free(m->owned[i]);
    if (m->nowned) m->nowned = 1;
    m->own_used = 0;
    m->own_cap = m->own_cap0;
    m->nsegs = 0;
    m->nfofs = 0;
    m->buf = NULL;
    m->len = 0;
    m->cs = HL7_CS_DEFAULT;
    memset(&m->d, 0, sizeof(m->d));
}

void hl7_msg_free(hl7_msg *m)
{
    if (!m) return;
    hl7_msg_reset(m);
    if (m->nowned) free(m->owned[0]);
    free(m->owned);
    for (size_t i = 0; i < sizeof m->ed / sizeof *m->ed; i++)
        tbuf_free(&m->ed[i]);
    free(m->segs);
    free(m->fofs);
    free(m);
}

#define OWN_CHUNK 16384

char *hl7_own(hl7_msg *m, const char *p, size_t n)
{
    char *c = hl7_own_reserve(m, n);
    memcpy(c, p, n);
    return c;
}

void hl7_own_chunk(hl7_msg *m, size_t n)
{
    size_t cap = n + 1 > OWN_CHUNK ? n + 1 : OWN_CHUNK;
    m->owned = xgrow(m->owned, &m->ownedcap, m->nowned + 1, sizeof(*m->owned));
    m->owned[m->nowned++] = xmalloc(cap);
    if (m->nowned == 1) m->own_cap0 = cap;
    m->own_used = 0;
    m->own_cap = cap;
}

/* Writes bytes for an error message: printable ASCII as is, others as \xHH. */
static void show_bytes(const char *p, size_t n, char *out, size_t size)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k + 5 < size; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c >= 0x20 && c < 0x7f)
            out[k++] = (char)c;
        else
            k += (size_t)snprintf(out + k, size - k, "\\x%02x", c);
    }
    out[k] = '\0';
}

static inline bool is_seg_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool hl7_is_boundary_id(const char *p)
{
    switch (p[0]) {
    case 'M': return p[1] == 'S' && p[2] == 'H';
    case 'F': return (p[1] == 'H' || p[1] == 'T') && p[2] == 'S';
    case 'B': return (p[1] == 'H' || p[1] == 'T') && p[2] == 'S';
    default: return false;
    }
}

/* Validates the delimiters at buf[pos..) where buf[pos] is just after "MSH".
 * Fills m->d. */
static hl7_status read_delims(hl7_msg *m, const char *buf, size_t len, size_t pos,
                              hl7_error *err)
{
    unsigned char fs = (unsigned char)buf[pos];
    if (fs < 0x21 || fs >= 0x7f || is_seg_char(fs) || (fs >= 'a' && fs <= 'z'))
        return fail_at(err, HL7_ERR_DELIMITERS, pos, 1, "MSH", 1,
                       "MSH-1 field separator 0x%02x is not a usable delimiter "
                       "(a printable character that is not a letter or digit)",
                       fs);
    char enc[5] = {0};
    size_t n = 0, i = pos + 1;
    for (; i < len && buf[i] != (char)fs && buf[i] != '\r' && buf[i] != '\n'; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (n == 5)
            return fail_at(err, HL7_ERR_DELIMITERS, i, 1, "MSH", 2,
                           "MSH-2 encoding characters are longer than 5 characters");
        if (c < 0x21 || c >= 0x7f || is_seg_char(c) || (c >= 'a' && c <= 'z'))
            return fail_at(err, HL7_ERR_DELIMITERS, i, 1, "MSH", 2,
                           "MSH-2 encoding character 0x%02x is not a usable delimiter", c);
        for (size_t k = 0; k < n; k++)
            if (enc[k] == (char)c)
                return fail_at(err, HL7_ERR_DELIMITERS, i, 1, "MSH", 2,
                               "MSH-2 encoding character '%c' appears twice", c);
        enc[n++] = (char)c;
    }
    if (n == 0)
        return fail_at(err, HL7_ERR_DELIMITERS, pos + 1, 1, "MSH", 2,
                       "MSH-2 encoding characters are missing (expected e.g. ^~\\&)");
    if (i >= len || buf[i] != (char)fs)
        return fail_at(err, HL7_ERR_TRUNCATED, i, 1, "MSH", 2,
                       "MSH ends after the encoding characters: MSH-9 (message type), "
                       "MSH-10 (control id), MSH-11 and MSH-12 are required");
    m->d.field = (char)fs;
    m->d.comp = enc[0];
    m->d.rep = enc[1];
    m->d.esc = enc[2];
    m->d.sub = enc[3];
    m->d.trunc = enc[4];
    return HL7_OK;
}

/* Parser state for one message. Offsets are absolute in buf. */
typedef struct scan {
    hl7_msg *m;
    const char *buf;
    size_t len;
    size_t start;       /* where the message starts */
    size_t seg_start;   /* start of the current segment */
    size_t field_start; /* start of the current piece */
    size_t in_term;     /* 1 + end of the terminator run being read, or 0 */
    hl7_seg *seg;       /* the segment being read */
    bool stop;          /* prefix mode: a boundary segment was met */
    bool prefix;
    size_t stop_at;
} scan;

static void ensure_fofs(hl7_msg *m, size_t extra)
{
    if (m->nfofs + extra > m->fofscap)
        m->fofs = xgrow(m->fofs, &m->fofscap, m->nfofs + extra, sizeof(*m->fofs));
}

void hl7_fofs_reserve(hl7_msg *m, size_t extra)
{
    ensure_fofs(m, extra);
}

/* Starts a segment at position p; validates its id. */
static hl7_status begin_segment(scan *s, size_t p, hl7_error *err)
{
    hl7_msg *m = s->m;
    const char *b = s->buf;
    size_t avail = s->len - p;
    /* A following message or envelope line ends this message whatever its
     * own delimiters are, so look for it before judging the id. */
    if (s->prefix && m->nsegs > 0 && avail >= 3 && hl7_is_boundary_id(b + p)) {
        s->stop = true;
        s->stop_at = p;
        return HL7_OK;
    }
    if (avail < 3 || !is_seg_char((unsigned char)b[p]) || !is_seg_char((unsigned char)b[p + 1]) ||
        !is_seg_char((unsigned char)b[p + 2]) ||
        (avail > 3 && b[p + 3] != m->d.field && b[p + 3] != '\r' && b[p + 3] != '\n')) {
        /* A line of blanks is treated as part of the terminator run. */
        size_t q = p;
        while (q < s->len && (b[q] == ' ' || b[q] == '\t')) q++;
        if (q > p && (q == s->len || b[q] == '\r' || b[q] == '\n')) return HL7_ERR_EMPTY;
        size_t idlen = 0;
        while (idlen < avail && idlen < 16 && b[p + idlen] != m->d.field && b[p + idlen] != '\r' &&
               b[p + idlen] != '\n')
            idlen++;
        char shown[48];
        show_bytes(b + p, idlen, shown, sizeof(shown));
        return fail_at(err, HL7_ERR_SEGMENT_ID, p, (uint32_t)m->nsegs + 1, NULL, 0,
                       "segment %zu has id '%s': a segment id is three upper-case letters or "
                       "digits followed by the field separator '%c'",
                       m->nsegs + 1, shown, m->d.field);
    }
    if (m->nsegs >= m->lim.max_segments)
        return fail_at(err, HL7_ERR_TOO_MANY_SEGMENTS, p, (uint32_t)m->nsegs + 1, b + p, 0,
                       "message has more than %u segments (the configured limit)",
                       m->lim.max_segments);
    if (m->nsegs == m->segcap) m->segs = xgrow(m->segs, &m->segcap, m->nsegs + 1, sizeof(*m->segs));
    hl7_seg *seg = &m->segs[m->nsegs++];
    seg->p = b + p;
    memcpy(seg->id, b + p, 3);
    seg->id[3] = '\0';
    seg->fofs = (uint32_t)m->nfofs;
    seg->term = NULL;
    seg->term_len = 0;
    ensure_fofs(m, 2);
    m->fofs[m->nfofs++] = 0;
    s->seg = seg;
    s->seg_start = p;
    s->field_start = p;
    return HL7_OK;
}

static hl7_status field_too_long(scan *s, size_t at, hl7_error *err)
{
    hl7_seg *seg = s->seg;
    uint32_t piece = (uint32_t)(s->m->nfofs - seg->fofs - 1);
    uint32_t field = !memcmp(seg->id, "MSH", 3) ? piece + 1 : piece;
    return fail_at(err, HL7_ERR_FIELD_TOO_LONG, s->field_start, (uint32_t)s->m->nsegs, seg->id,
                   field, "%s-%u is longer than the limit of %zu bytes (at least %zu bytes)",
                   seg->id, field, s->m->lim.max_field, at - s->field_start);
}

static hl7_status end_segment(scan *s, size_t at, hl7_error *err)
{
    hl7_msg *m = s->m;
    hl7_seg *seg = s->seg;
    if (at - s->field_start > m->lim.max_field) return field_too_long(s, at, err);
    size_t len = at - s->seg_start;
    ensure_fofs(m, 1);
    m->fofs[m->nfofs++] = (uint32_t)(len + 1);
    seg->len = (uint32_t)len;
    uint32_t pieces = (uint32_t)(m->nfofs - seg->fofs - 1);
    seg->nfields = !memcmp(seg->id, "MSH", 3) ? pieces : pieces - 1;
    s->seg = NULL;
    return HL7_OK;
}

/* Handles one interesting byte at position i. */
static inline hl7_status visit(scan *s, size_t i, hl7_error *err)
{
    const char *b = s->buf;
    char c = b[i];
    hl7_msg *m = s->m;
    if (s->in_term) {
        size_t tend = s->in_term - 1;
        if (i == tend && (c == '\r' || c == '\n')) {
            s->in_term = i + 2;
            return HL7_OK;
        }
        /* A new segment starts at tend. */
        s->m->segs[m->nsegs - 1].term_len = (uint32_t)(tend - (size_t)(m->segs[m->nsegs - 1].term - b));
        s->in_term = 0;
        hl7_status st = begin_segment(s, tend, err);
        if (st == HL7_ERR_EMPTY) {
            /* blank-looking line: swallow up to i and keep reading terminators */
            if (c == '\r' || c == '\n') {
                s->in_term = i + 2;
                return HL7_OK;
            }
            return begin_segment(s, i, err);
        }
        if (st != HL7_OK || s->stop) return st;
    }
    if (c == m->d.field) {
        if (i - s->field_start > m->lim.max_field) return field_too_long(s, i, err);
        m->fofs[m->nfofs++] = (uint32_t)(i + 1 - s->seg_start);
        s->field_start = i + 1;
        return HL7_OK;
    }
    if (c == '\r' || c == '\n') {
        hl7_status st = end_segment(s, i, err);
        if (st != HL7_OK) return st;
        m->segs[m->nsegs - 1].term = b + i;
        s->in_term = i + 2;
        return HL7_OK;
    }
    /* NUL */
    hl7_seg *seg = s->seg;
    uint32_t piece = (uint32_t)(m->nfofs - seg->fofs - 1);
    return fail_at(err, HL7_ERR_NUL, i, (uint32_t)m->nsegs, seg->id,
                   !memcmp(seg->id, "MSH", 3) ? piece + 1 : piece,
                   "NUL byte (0x00) in %s-%u: HL7 text may not contain NUL; the input is "
                   "binary or corrupt",
                   seg->id, !memcmp(seg->id, "MSH", 3) ? piece + 1 : piece);
}

/* Bytes of a block that matter: field separator, CR, LF, NUL. */
#if defined(__SSE2__)
static inline uint64_t block_mask(const char *p, __m128i vfs)
{
    const __m128i vcr = _mm_set1_epi8('\r');
    const __m128i vlf = _mm_set1_epi8('\n');
    const __m128i vz = _mm_setzero_si128();
    uint64_t mask = 0;
    for (int k = 0; k < 4; k++) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(p + 16 * k));
        __m128i e = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, vfs), _mm_cmpeq_epi8(x, vcr)),
                                 _mm_or_si128(_mm_cmpeq_epi8(x, vlf), _mm_cmpeq_epi8(x, vz)));
        mask |= (uint64_t)(uint16_t)_mm_movemask_epi8(e) << (16 * k);
    }
    return mask;
}
#endif

static inline uint64_t block_mask_scalar(const char *p, size_t n, char fs)
{
    uint64_t mask = 0;
    for (size_t k = 0; k < n; k++) {
        char c = p[k];
        if (c == fs || c == '\r' || c == '\n' || c == '\0') mask |= (uint64_t)1 << k;
    }
    return mask;
}

static hl7_status scan_body(scan *s, size_t from, hl7_error *err)
{
    hl7_msg *m = s->m;
    const char *b = s->buf;
    size_t len = s->len;
    size_t i = from;
    size_t limit = s->start + m->lim.max_message;
#if defined(__SSE2__)
    const __m128i vfs = _mm_set1_epi8(m->d.field);
#endif
    while (i < len) {
        size_t n = len - i < 64 ? len - i : 64;
        uint64_t mask;
#if defined(__SSE2__)
        mask = n == 64 ? block_mask(b + i, vfs) : block_mask_scalar(b + i, n, m->d.field);
#else
        mask = block_mask_scalar(b + i, n, m->d.field);
#endif
        if (i >= limit)
            return fail_at(err, HL7_ERR_TOO_LARGE, limit, (uint32_t)m->nsegs, NULL, 0,
                           "message is larger than the limit of %zu bytes", m->lim.max_message);
        ensure_fofs(m, 66);
        while (mask) {
            size_t at = i + (size_t)__builtin_ctzll(mask);
            mask &= mask - 1;
            hl7_status st = visit(s, at, err);
            if (st != HL7_OK) return st;
            if (s->stop) return HL7_OK;
        }
        i += n;
    }
    return HL7_OK;
}

static hl7_status finish(scan *s, hl7_error *err)
{
    hl7_msg *m = s->m;
    if (s->in_term) {
        hl7_seg *last = &m->segs[m->nsegs - 1];
        size_t tend = s->stop ? s->stop_at : s->in_term - 1;
        if (!s->stop && tend < s->len) {
            /* Bytes after the last terminator without any interesting byte:
             * a final segment with no fields and no terminator. */
            last->term_len = (uint32_t)(tend - (size_t)(last->term - s->buf));
            s->in_term = 0;
            hl7_status st = begin_segment(s, tend, err);
            if (st == HL7_ERR_EMPTY) {
                last->term_len = (uint32_t)(s->len - (size_t)(last->term - s->buf));
                return HL7_OK;
            }
            if (st != HL7_OK) return st;
            if (s->stop) return HL7_OK;
            return end_segment(s, s->len, err);
        }
        last->term_len = (uint32_t)(tend - (size_t)(last->term - s->buf));
        return HL7_OK;
    }
    if (s->seg) return end_segment(s, s->stop ? s->stop_at : s->len, err);
    return HL7_OK;
}

static hl7_status check_msh(hl7_msg *m, size_t start, hl7_error *err)
{
    hl7_seg *msh = &m->segs[0];
    if (msh->nfields < 12)
        return fail_at(err, HL7_ERR_TRUNCATED, start + msh->len, 1, "MSH", msh->nfields,
                       "MSH ends after MSH-%u: MSH-9 (message type), MSH-10 (control id), "
                       "MSH-11 (processing id) and MSH-12 (version) are required; "
                       "is the message truncated?",
                       msh->nfields);
    m->cs = HL7_CS_DEFAULT;
    if (msh->nfields >= 18) {
        hl7_span v;
        if (hl7_field_span(m, msh, 18, &v)) {
            hl7_span r;
            if (hl7_nth(v.p, v.len, m->d.rep, 1, &r)) m->cs = hl7_charset_from_name(r.p, r.len);
        }
    }
    return HL7_OK;
}

hl7_status hl7_parse_prefix(hl7_msg *m, const char *buf, size_t len, size_t *used,
                            hl7_error *err)
{
    hl7_msg_reset(m);
    if (used) *used = 0;
    size_t pos = 0;
    if (len >= 3 && (unsigned char)buf[0] == 0xEF && (unsigned char)buf[1] == 0xBB &&
        (unsigned char)buf[2] == 0xBF)
        pos = 3;
    while (pos < len && (buf[pos] == '\r' || buf[pos] == '\n' || buf[pos] == ' ' ||
                         buf[pos] == '\t'))
        pos++;
    if (pos == len)
        return hl7_fail(err, HL7_ERR_EMPTY, pos, "the input is empty: no HL7 message found");
    if (len - pos < 3 || memcmp(buf + pos, "MSH", 3) != 0) {
        if (len - pos >= 3 && (!memcmp(buf + pos, "FHS", 3) || !memcmp(buf + pos, "BHS", 3)))
            return hl7_fail(err, HL7_ERR_NO_MSH, pos,
                            "input starts with a batch header (%.3s); read it as a batch",
                            buf + pos);
        char shown[48];
        show_bytes(buf + pos, len - pos < 3 ? len - pos : 3, shown, sizeof(shown));
        return hl7_fail(err, HL7_ERR_NO_MSH, pos,
                        "a message must start with an MSH segment; found '%s'", shown);
    }
    if (len - pos < 5)
        return fail_at(err, HL7_ERR_TRUNCATED, len, 1, "MSH", 1,
                       "the MSH segment is cut short after %zu bytes", len - pos);
    hl7_status st = read_delims(m, buf, len, pos + 3, err);
    if (st != HL7_OK) return st;
    m->buf = buf;
    scan s = {.m = m, .buf = buf, .len = len, .start = pos, .prefix = true};
    st = begin_segment(&s, pos, err);
    if (st == HL7_OK) st = scan_body(&s, pos + 3, err);
    if (st == HL7_OK) st = finish(&s, err);
    if (st == HL7_OK) st = check_msh(m, pos, err);
    if (st != HL7_OK) {
        hl7_msg_reset(m);
        return st;
    }
    size_t end = s.stop ? s.stop_at : len;
    if (end - pos > m->lim.max_message) {
        hl7_msg_reset(m);
        return hl7_fail(err, HL7_ERR_TOO_LARGE, pos + m->lim.max_message,
                        "message is larger than the limit of %zu bytes", m->lim.max_message);
    }
    m->len = end - pos;
    m->buf = buf + pos;
    if (used) *used = end;
    return HL7_OK;
}

hl7_status hl7_parse(hl7_msg *m, const char *buf, size_t len, hl7_error *err)
{
    size_t used;
    hl7_status st = hl7_parse_prefix(m, buf, len, &used, err);
    if (st != HL7_OK) return st;
    if (used < len) {
        uint32_t n = (uint32_t)m->nsegs;
        hl7_msg_reset(m);
        return fail_at(err, HL7_ERR_BATCH, used, n + 1, buf + used, 0,
                       "a second message or batch segment (%.3s) starts at byte %zu: the input "
                       "holds more than one message; read it as a batch",
                       buf + used, used);
    }
    return HL7_OK;
}

/* --- access ------------------------------------------------------------- */

const hl7_delims *hl7_delims_of(const hl7_msg *m)
{
    return &m->d;
}

hl7_charset hl7_charset_of(const hl7_msg *m)
{
    return m->cs;
}

uint32_t hl7_seg_count(const hl7_msg *m)
{
    return (uint32_t)m->nsegs;
}

const hl7_seg *hl7_seg_at(const hl7_msg *m, uint32_t index)
{
    return index < m->nsegs ? &m->segs[index] : NULL;
}

const hl7_seg *hl7_segs(const hl7_msg *m)
{
    return m->nsegs ? m->segs : NULL;
}

long hl7_seg_find(const hl7_msg *m, const char *id, uint32_t n)
{
    if (n == 0) return -1;
    for (size_t i = 0; i < m->nsegs; i++)
        if (!memcmp(m->segs[i].id, id, 3) && --n == 0) return (long)i;
    return -1;
}

uint32_t hl7_seg_occurrences(const hl7_msg *m, const char *id)
{
    uint32_t n = 0;
    for (size_t i = 0; i < m->nsegs; i++)
        if (!memcmp(m->segs[i].id, id, 3)) n++;
    return n;
}

hl7_presence hl7_presence_of(const char *p, size_t len)
{
    if (len == 0) return HL7_EMPTY;
    if (len == 2 && p[0] == '"' && p[1] == '"') return HL7_NULL_VALUE;
    return HL7_VALUE;
}

bool hl7_field_span(const hl7_msg *m, const hl7_seg *s, uint32_t field, hl7_span *out)
{
    if (field == 0 || field > s->nfields) return false;
    uint32_t piece = field;
    if (!memcmp(s->id, "MSH", 3)) {
        if (field == 1) {
            out->p = s->p + 3;
            out->len = 1;
            return true;
        }
        piece = field - 1;
    }
    const uint32_t *f = m->fofs + s->fofs;
    out->p = s->p + f[piece];
    out->len = f[piece + 1] - 1 - f[piece];
    return true;
}

bool hl7_fields_at(const hl7_msg *m, uint32_t index, hl7_fields *f)
{
    if (index >= m->nsegs) return false;
    const hl7_seg *s = &m->segs[index];
    f->p = s->p;
    f->ofs = m->fofs + s->fofs;
    f->len = s->len;
    f->nfields = s->nfields;
    f->msh = !memcmp(s->id, "MSH", 3);
    return true;
}

bool hl7_nth(const char *p, size_t len, char ch, uint32_t n, hl7_span *out)
{
    if (n == 0) return false;
    if (ch == '\0') {
        if (n != 1) return false;
        out->p = p;
        out->len = len;
        return true;
    }
    const char *end = p + len;
    while (--n) {
        const char *q = hl7_scan2(p, end, ch, ch);
        if (q == end) return false;
        p = q + 1;
    }
    out->p = p;
    out->len = (size_t)(hl7_scan2(p, end, ch, ch) - p);
    return true;
}

static bool is_msh_fixed(const hl7_seg *s, uint32_t field)
{
    return field <= 2 && !memcmp(s->id, "MSH", 3);
}

hl7_presence hl7_raw(const hl7_msg *m, uint32_t index, uint32_t field, uint32_t rep,
                     uint32_t comp, uint32_t sub, hl7_span *out)
{
    const hl7_seg *s = hl7_seg_at(m, index);
    hl7_span v;
    if (!s) return HL7_ABSENT;
    if (field == 0) {
        out->p = s->p;
        out->len = s->len;
        return HL7_VALUE;
    }
    if (!hl7_field_span(m, s, field, &v)) return HL7_ABSENT;
    if (is_msh_fixed(s, field)) {
        if (rep > 1 || comp > 1 || sub > 1) return HL7_ABSENT;
        *out = v;
        return v.len ? HL7_VALUE : HL7_EMPTY;
    }
    if (rep && !hl7_nth(v.p, v.len, m->d.rep, rep, &v)) return HL7_ABSENT;
    if (rep && comp && !hl7_nth(v.p, v.len, m->d.comp, comp, &v)) return HL7_ABSENT;
    if (rep && comp && sub && !hl7_nth(v.p, v.len, m->d.sub, sub, &v)) return HL7_ABSENT;
    *out = v;
    return hl7_presence_of(v.p, v.len);
}

static uint32_t count_pieces(const char *p, size_t len, char ch)
{
    uint32_t n = 1;
    if (ch == '\0') return 1;
    const char *end = p + len;
    while ((p = memchr(p, ch, (size_t)(end - p))) != NULL) {
        n++;
        p++;
    }
    return n;
}

uint32_t hl7_rep_count(const hl7_msg *m, uint32_t index, uint32_t field)
{
    const hl7_seg *s = hl7_seg_at(m, index);
    hl7_span v;
    if (!s || !hl7_field_span(m, s, field, &v)) return 0;
    if (is_msh_fixed(s, field)) return 1;
    return count_pieces(v.p, v.len, m->d.rep);
}

uint32_t hl7_comp_count(const hl7_msg *m, uint32_t index, uint32_t field, uint32_t rep)
{
    hl7_span v;
    const hl7_seg *s = hl7_seg_at(m, index);
    if (!s || hl7_raw(m, index, field, rep ? rep : 1, 0, 0, &v) == HL7_ABSENT) return 0;
    if (is_msh_fixed(s, field)) return 1;
    return count_pieces(v.p, v.len, m->d.comp);
}

uint32_t hl7_sub_count(const hl7_msg *m, uint32_t index, uint32_t field, uint32_t rep,
                       uint32_t comp)
{
    hl7_span v;
    const hl7_seg *s = hl7_seg_at(m, index);
    if (!s || hl7_raw(m, index, field, rep ? rep : 1, comp ? comp : 1, 0, &v) == HL7_ABSENT)
        return 0;
    if (is_msh_fixed(s, field)) return 1;
    return count_pieces(v.p, v.len, m->d.sub);
}

hl7_presence hl7_get_raw_at(const hl7_msg *m, uint32_t index, const hl7_path *p, hl7_span *out)
{
    return hl7_raw(m, index, p->field, p->field ? (p->rep ? p->rep : 1) : 0, p->comp,
                   p->comp ? p->sub : 0, out);
}

hl7_presence hl7_get_raw(const hl7_msg *m, const hl7_path *p, hl7_span *out)
{
    long idx = hl7_seg_find(m, p->seg, p->seg_occ ? p->seg_occ : 1);
    if (idx < 0) return HL7_ABSENT;
    return hl7_get_raw_at(m, (uint32_t)idx, p, out);
}

hl7_presence hl7_get_at(const hl7_msg *m, uint32_t index, const hl7_path *p, tbuf *out)
{
    hl7_span v;
    hl7_presence pr = hl7_get_raw_at(m, index, p, &v);
    if (pr != HL7_VALUE) return pr;
    if (is_msh_fixed(&m->segs[index], p->field))
        tbuf_put(out, v.p, v.len);
    else
        hl7_unescape(&m->d, m->cs, v.p, v.len, out);
    return pr;
}

hl7_presence hl7_get(const hl7_msg *m, const hl7_path *p, tbuf *out)
{
    long idx = hl7_seg_find(m, p->seg, p->seg_occ ? p->seg_occ : 1);
    if (idx < 0) return HL7_ABSENT;
    return hl7_get_at(m, (uint32_t)idx, p, out);
}

uint32_t hl7_index_segment(hl7_msg *m, const char *t, uint32_t len, uint32_t *nfields)
{
    uint32_t first = (uint32_t)m->nfofs;
    ensure_fofs(m, 2);
    m->fofs[m->nfofs++] = 0;
    for (uint32_t i = 0; i < len; i++) {
        if (t[i] == m->d.field) {
            ensure_fofs(m, 2);
            m->fofs[m->nfofs++] = i + 1;
        }
    }
    m->fofs[m->nfofs++] = len + 1;
    uint32_t pieces = (uint32_t)(m->nfofs - first - 1);
    *nfields = !memcmp(t, "MSH", 3) ? pieces : pieces - 1;
    return first;
}
