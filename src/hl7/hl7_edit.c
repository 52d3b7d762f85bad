/*
 * hl7_edit: changing a parsed or built message.
 *
 * An edit re-renders the one segment it touches into memory the message owns
 * (hl7_own) and gives it a new run of field offsets: the old offsets copied
 * and shifted past the changed field (a full re-index only when the new
 * text holds field separators); the input buffer is never written. Several
 * first repetitions of one segment can change in one rewrite
 * (hl7_set_fields_raw_at), and a span the caller located inside a field can
 * be replaced without finding it again (hl7_splice_raw_at, or
 * hl7_splice_clean_at for a text the caller knows a splice accepts: no
 * check, no scan); these keep
 * the segment's pieces, so they shift its own run of offsets in place (the
 * fields written all existing, for the first). Setting a
 * value deeper than the message holds pads with empty fields, repetitions or
 * components, as a receiving system would expect ("PID-5.3" on "PID|1" gives
 * "PID|1|||||^^X"... with the separators needed and no more).
 */
#include "hl7/hl7_int.h"

#include "base/mem.h"

#include <assert.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* Appends src with its n-th piece (split by ch) replaced by val, adding
 * empty pieces when src has fewer than n. */
static void replace_nth(tbuf *out, const char *src, size_t len, char ch, uint32_t n,
                        const char *val, size_t vlen)
{
    const char *end = src + len;
    const char *p = src;
    uint32_t k = 1;
    while (k < n) {
        const char *q = p ? memchr(p, ch, (size_t)(end - p)) : NULL;
        if (!q) {
            /* fewer pieces than n: copy all and pad */
            if (p) tbuf_put(out, p, (size_t)(end - p));
            p = NULL;
            tbuf_putc(out, ch);
        } else {
            tbuf_put(out, p, (size_t)(q - p + 1));
            p = q + 1;
        }
        k++;
    }
    tbuf_put(out, val, vlen);
    if (p) {
        const char *q = memchr(p, ch, (size_t)(end - p));
        if (q) tbuf_put(out, q, (size_t)(end - q));
    }
}

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
/* Whether the eight bytes at p may hold a CR, LF or NUL: true when one is
 * below 0x0E (CR), which text other than tabs and form feeds never is. */
static inline bool word_has_break(const char *p)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    uint64_t w;
    memcpy(&w, p, 8);
    return ((w - ones * 0x0E) & ~w & highs) != 0;
}
#endif

static inline bool is_break(char c)
{
    return c == '\r' || c == '\n' || c == '\0';
}

/* Index of the first CR, LF or NUL in raw[0..len), or len: eight bytes at a
 * time (a word that may hold one is looked at byte by byte), the last
 * (partial) eight as the overlapping last word. */
static size_t find_break(const char *raw, size_t len)
{
    size_t i = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    for (; len - i >= 8; i += 8)
        if (word_has_break(raw + i))
            for (size_t k = i; k < i + 8; k++)
                if (is_break(raw[k])) return k;
    if (i < len && len >= 8 && !word_has_break(raw + len - 8)) return len;
#endif
    while (i < len && !is_break(raw[i]))
        i++;
    return i;
}

static hl7_status check_raw(const char *raw, size_t len, hl7_error *err)
{
    size_t i = find_break(raw, len);
    if (i < len)
        return hl7_fail(err, HL7_ERR_VALUE, i,
                        "a value may not contain CR, LF or NUL (byte %zu); "
                        "set it as text so it is escaped",
                        i);
    return HL7_OK;
}

static void replace_segment(hl7_msg *m, uint32_t idx, const char *text, size_t len)
{
    hl7_seg *s = &m->segs[idx];
    char *own = hl7_own(m, text, len);
    s->p = own;
    s->len = (uint32_t)len;
    s->fofs = hl7_index_segment(m, own, (uint32_t)len, &s->nfields);
}

/* Index of occurrence p->seg_occ of p->seg, creating missing occurrences
 * after the last existing one (or at the end). */
static uint32_t find_or_create(hl7_msg *m, const hl7_path *p)
{
    uint32_t occ = p->seg_occ ? p->seg_occ : 1;
    for (;;) {
        long idx = hl7_seg_find(m, p->seg, occ);
        if (idx >= 0) return (uint32_t)idx;
        uint32_t have = hl7_seg_occurrences(m, p->seg);
        long last = have ? hl7_seg_find(m, p->seg, have) : -1;
        uint32_t at = last >= 0 ? (uint32_t)last + 1 : (uint32_t)m->nsegs;
        hl7_seg_insert(m, at, p->seg, 3, NULL);
    }
}

/* to[k] = from[k] + delta for k in [k0, n), four at a time; to may be
 * from (a shift in place: each group of four is read before it is
 * written). */
static void shift_offsets(uint32_t *to, const uint32_t *from, uint32_t k0, uint32_t n,
                          uint32_t delta)
{
    uint32_t k = k0;
#if defined(__GNUC__)
    typedef uint32_t v4 __attribute__((vector_size(16)));
    const v4 dv = {delta, delta, delta, delta};
    for (; k + 4 <= n; k += 4) {
        v4 x;
        memcpy(&x, from + k, sizeof x);
        x += dv;
        memcpy(to + k, &x, sizeof x);
    }
#endif
    for (; k < n; k++)
        to[k] = from[k] + delta;
}

/* of[k] += delta for k in [k0, n). */
static inline void shift_in_place(uint32_t *of, uint32_t k0, uint32_t n, uint32_t delta)
{
    shift_offsets(of, of, k0, n, delta);
}

/* Segment idx with piece `piece` (0 is the id) replaced by fv[0..fvlen),
 * padded with field separators when it has fewer pieces. The new text goes
 * to owned memory; its offsets are the old run shifted in place when the
 * pieces stay the same, a new run when padding adds some, and a scan when
 * fv holds a field separator (set_raw of a text with several fields). */
static void replace_piece(hl7_msg *m, uint32_t idx, uint32_t piece, const char *fv, size_t fvlen)
{
    hl7_seg *s = &m->segs[idx];
    const uint32_t npieces = hl7_seg_pieces(s);
    const char fs = m->d.field;
    size_t head, tail, pad = 0; /* kept bytes before and after the piece; separators added */
    if (piece < npieces) {
        const uint32_t *of = m->fofs + s->fofs;
        head = of[piece];
        tail = s->len - (of[piece + 1] - 1);
    } else {
        head = s->len;
        tail = 0;
        pad = piece - npieces + 1;
    }
    size_t len = head + pad + fvlen + tail;
    char *t = hl7_own_reserve(m, len);
    memcpy(t, s->p, head);
    if (pad) memset(t + head, fs, pad);
    memcpy(t + head + pad, fv, fvlen);
    memcpy(t + head + pad + fvlen, s->p + s->len - tail, tail);
    if (memchr(fv, fs, fvlen)) {
        s->p = t;
        s->len = (uint32_t)len;
        s->fofs = hl7_index_segment(m, t, (uint32_t)len, &s->nfields);
        return;
    }
    if (piece < npieces) { /* the same pieces: those after this one move */
        shift_in_place(m->fofs + s->fofs, piece + 1, npieces + 1, (uint32_t)(len - s->len));
        s->p = t;
        s->len = (uint32_t)len;
        return;
    }
    /* new pieces (padding and this one): a new run */
    const uint32_t pieces = piece + 1;
    hl7_fofs_reserve(m, pieces + 1);
    const uint32_t *of = m->fofs + s->fofs; /* after the reserve: it may move */
    uint32_t *nf = m->fofs + m->nfofs;
    uint32_t first = (uint32_t)m->nfofs;
    memcpy(nf, of, npieces * sizeof(*nf));
    for (uint32_t j = 0; j < pad; j++)
        nf[npieces + j] = (uint32_t)(head + 1 + j);
    nf[pieces] = (uint32_t)len + 1;
    m->nfofs += pieces + 1;
    s->p = t;
    s->len = (uint32_t)len;
    s->fofs = first;
    s->nfields = !memcmp(s->id, "MSH", 3) ? pieces : pieces - 1;
}

/* Stores wire text at p (its field and below) in segment idx. */
static void set_in(hl7_msg *m, uint32_t idx, const hl7_path *p, const char *raw, size_t len)
{
    const hl7_seg *s = &m->segs[idx];
    bool msh = !memcmp(s->id, "MSH", 3);
    hl7_span f = {"", 0};
    if (p->field <= s->nfields && !(msh && p->field == 1)) { /* hl7_field_span() inline */
        const uint32_t *of = m->fofs + s->fofs + (p->field - msh);
        f = (hl7_span){s->p + of[0], of[1] - 1 - of[0]};
    } else if (!hl7_field_span(m, s, p->field, &f)) {
        f.len = 0;
    }
    uint32_t rep = p->rep ? p->rep : 1;
    const char *val = raw;
    size_t vlen = len;
    /* The new field text: the value itself when it replaces the whole of a
     * field with one repetition, else the field with its part replaced. */
    if (p->comp || rep > 1 || (m->d.rep && memchr(f.p, m->d.rep, f.len))) {
        tbuf *a = &m->ed[0], *b = &m->ed[1], *field = &m->ed[2];
        tbuf_reset(a);
        tbuf_reset(b);
        tbuf_reset(field);
        if (p->comp) {
            hl7_span r = {"", 0}, c = {"", 0};
            if (!hl7_nth(f.p, f.len, m->d.rep, rep, &r)) r.len = 0, r.p = "";
            if (p->sub) {
                if (!hl7_nth(r.p, r.len, m->d.comp, p->comp, &c)) c.len = 0, c.p = "";
                replace_nth(a, c.p, c.len, m->d.sub, p->sub, val, vlen);
                val = a->p;
                vlen = a->len;
            }
            replace_nth(b, r.p, r.len, m->d.comp, p->comp, val, vlen);
            val = b->p;
            vlen = b->len;
        }
        replace_nth(field, f.p, f.len, m->d.rep, rep, val, vlen);
        val = field->p;
        vlen = field->len;
    }
    replace_piece(m, idx, msh ? p->field - 1 : p->field, val ? val : "", vlen);
}

/* The checks of hl7_set_raw() on the path and value; idx the segment, or
 * -1 when it is still to be found or made. */
static hl7_status check_set(const hl7_msg *m, long idx, const hl7_path *p, const char *raw,
                            size_t len, hl7_error *err)
{
    char pb[48];
    hl7_status st = check_raw(raw, len, err);
    if (st != HL7_OK) return st;
    const char *seg = idx >= 0 ? m->segs[idx].id : p->seg;
    if (p->field == 0) {
        hl7_path shown = *p;
        memcpy(shown.seg, seg, 4);
        return hl7_fail(err, HL7_ERR_PATH, 0, "path '%s' names a whole segment; name a field",
                        hl7_path_format(&shown, pb, sizeof(pb)));
    }
    bool msh = !memcmp(seg, "MSH", 3);
    if (msh && p->field <= 2)
        return hl7_fail(err, HL7_ERR_VALUE, 0,
                        "MSH-1 and MSH-2 hold the delimiters and cannot be set");
    if (msh && idx < 0 && p->seg_occ > 1)
        return hl7_fail(err, HL7_ERR_PATH, 0, "a message has exactly one MSH");
    if (p->field > 9999)
        return hl7_fail(err, HL7_ERR_PATH, 0, "field number %u is too large", p->field);
    return HL7_OK;
}

hl7_status hl7_set_raw(hl7_msg *m, const hl7_path *p, const char *raw, size_t len, hl7_error *err)
{
    hl7_status st = check_set(m, -1, p, raw, len, err);
    if (st != HL7_OK) return st;
    set_in(m, find_or_create(m, p), p, raw, len);
    return HL7_OK;
}

hl7_status hl7_set_raw_at(hl7_msg *m, uint32_t index, const hl7_path *p, const char *raw,
                          size_t len, hl7_error *err)
{
    if (index >= m->nsegs)
        return hl7_fail(err, HL7_ERR_NOT_FOUND, 0,
                        "no segment at position %u (the message has %zu)", index + 1, m->nsegs);
    hl7_status st = check_set(m, (long)index, p, raw, len, err);
    if (st != HL7_OK) return st;
    set_in(m, index, p, raw, len);
    return HL7_OK;
}

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
/* word_has_break(), or the eight bytes at p hold fs. */
static inline bool word_has_break_or(const char *p, char fs)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    uint64_t w, x;
    memcpy(&w, p, 8);
    x = w ^ (ones * (unsigned char)fs);
    return ((((w - ones * 0x0E) & ~w) | ((x - ones) & ~x)) & highs) != 0;
}
#endif

/* Index of the first CR, LF, NUL or fs in raw[0..len), or len: find_break()
 * with the field separator. With SSE2, sixteen bytes at a time (the last
 * sixteen overlapping the ones before, which held none). */
static size_t find_break_or(const char *raw, size_t len, char fs)
{
    size_t i = 0;
#if defined(__SSE2__)
    if (len >= 16) {
        const __m128i vfs = _mm_set1_epi8(fs), vcr = _mm_set1_epi8('\r');
        const __m128i vlf = _mm_set1_epi8('\n'), vz = _mm_setzero_si128();
        for (;; i += 16) {
            if (len - i < 16) i = len - 16;
            __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(raw + i));
            __m128i e = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, vfs), _mm_cmpeq_epi8(x, vcr)),
                                     _mm_or_si128(_mm_cmpeq_epi8(x, vlf), _mm_cmpeq_epi8(x, vz)));
            unsigned hit = (unsigned)_mm_movemask_epi8(e);
            if (hit) return i + (size_t)__builtin_ctz(hit);
            if (len - i <= 16) return len;
        }
    }
#endif
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    for (; len - i >= 8; i += 8)
        if (word_has_break_or(raw + i, fs)) break; /* byte by byte below */
    if (i < len && len >= 8 && len - i < 8 && !word_has_break_or(raw + len - 8, fs)) return len;
#endif
    while (i < len && !is_break(raw[i]) && raw[i] != fs)
        i++;
    return i;
}

/* hl7_set_fields_raw_at() in one rewrite: the edits' fields are distinct,
 * in increasing order, and no value holds a field separator (so no edit
 * moves another's field). Each edited piece becomes the value followed by
 * the field's repetitions after the first; the bytes between edited pieces
 * are copied in runs and their offsets shifted. */
static void set_fields_at_once(hl7_msg *m, uint32_t idx, const hl7_field_edit *e, size_t n)
{
    hl7_seg *s = &m->segs[idx];
    const uint32_t msh = !memcmp(s->id, "MSH", 3);
    const uint32_t npieces = hl7_seg_pieces(s);
    const char fs = m->d.field, rep = m->d.rep;
    const uint32_t last = e[n - 1].field - msh; /* the highest edited piece */
    const uint32_t pieces = last < npieces ? npieces : last + 1;
    hl7_fofs_reserve(m, pieces + 1);
    const uint32_t *of = m->fofs + s->fofs; /* after the reserve: it may move */
    /* Where each edited field's kept rest (repetitions after the first) starts. */
    size_t len = s->len + (pieces - npieces);
    const char *rest[8];
    bool small = n <= sizeof rest / sizeof *rest;
    for (size_t i = 0; i < n; i++) {
        uint32_t k = e[i].field - msh;
        len += e[i].len;
        if (k >= npieces) continue;
        const char *f = s->p + of[k], *fend = s->p + of[k + 1] - 1;
        const char *r = rep ? memchr(f, rep, (size_t)(fend - f)) : NULL;
        if (!r) r = fend;
        if (small) rest[i] = r;
        len -= (size_t)(r - f);
    }
    char *t = hl7_own_reserve(m, len);
    uint32_t *nf = m->fofs + m->nfofs, first = (uint32_t)m->nfofs;
    size_t src = 0, dst = 0; /* copied so far from the old text, written to the new */
    uint32_t k0 = 0;         /* pieces below k0 have their offsets */
    for (size_t i = 0; i < n; i++) {
        uint32_t k = e[i].field - msh;
        uint32_t upto = k < npieces ? k : npieces; /* old pieces before this one */
        size_t run = (k < npieces ? of[k] : s->len) - src;
        memcpy(t + dst, s->p + src, run);
        uint32_t delta = (uint32_t)(dst - src);
        if (k0 < upto) {
            shift_offsets(nf, of, k0, upto, delta);
            k0 = upto;
        }
        dst += run;
        src += run;
        for (; k0 < k; k0++) { /* padding: empty pieces */
            t[dst++] = fs;
            nf[k0] = (uint32_t)dst;
        }
        if (k >= npieces) {
            t[dst++] = fs;
        }
        nf[k0++] = (uint32_t)dst;
        memcpy(t + dst, e[i].raw, e[i].len);
        dst += e[i].len;
        if (k < npieces) {
            const char *f = s->p + of[k], *fend = s->p + of[k + 1] - 1;
            const char *r = small ? rest[i] : rep ? memchr(f, rep, (size_t)(fend - f)) : NULL;
            if (!r) r = fend;
            memcpy(t + dst, r, (size_t)(fend - r));
            dst += (size_t)(fend - r);
            src = (size_t)(fend - s->p);
        }
    }
    memcpy(t + dst, s->p + src, s->len - src);
    uint32_t delta = (uint32_t)(dst - src);
    if (k0 < npieces) shift_offsets(nf, of, k0, npieces, delta);
    dst += s->len - src;
    assert(dst == len);
    nf[pieces] = (uint32_t)len + 1;
    m->nfofs += pieces + 1;
    s->p = t;
    s->len = (uint32_t)len;
    s->fofs = first;
    s->nfields = msh ? pieces : pieces - 1;
}

/* set_fields_at_once() when every edited field exists and there are at most
 * SET_IN_PLACE edits: the pieces stay the same, so the segment's offsets
 * are shifted where they are (each run between two edited fields by the
 * growth so far) instead of copied to a new run. */
#define SET_IN_PLACE 8
static void set_fields_in_place(hl7_msg *m, uint32_t idx, const hl7_field_edit *e, size_t n)
{
    hl7_seg *s = &m->segs[idx];
    const uint32_t msh = !memcmp(s->id, "MSH", 3), npieces = hl7_seg_pieces(s);
    const char rep = m->d.rep;
    uint32_t *of = m->fofs + s->fofs;
    size_t cut[SET_IN_PLACE], rest[SET_IN_PLACE]; /* the old first repetition [cut, rest) */
    size_t len = s->len;
    assert(n <= SET_IN_PLACE && e[n - 1].field - msh < npieces);
    for (size_t i = 0; i < n; i++) {
        const uint32_t k = e[i].field - msh;
        const char *f = s->p + of[k], *fend = s->p + of[k + 1] - 1;
        const char *r = rep ? memchr(f, rep, (size_t)(fend - f)) : NULL;
        cut[i] = (size_t)(f - s->p);
        rest[i] = (size_t)((r ? r : fend) - s->p);
        len = len + e[i].len - (rest[i] - cut[i]);
    }
    char *t = hl7_own_reserve(m, len);
    size_t src = 0, dst = 0;
    uint32_t delta = 0; /* modulo 2^32 */
    for (size_t i = 0; i < n; i++) {
        memcpy(t + dst, s->p + src, cut[i] - src);
        dst += cut[i] - src;
        memcpy(t + dst, e[i].raw, e[i].len);
        dst += e[i].len;
        src = rest[i];
        delta += (uint32_t)(e[i].len - (rest[i] - cut[i]));
        const uint32_t k = e[i].field - msh, next = i + 1 < n ? e[i + 1].field - msh : npieces;
        shift_in_place(of, k + 1, next + 1, delta); /* up to the next edited piece's start */
    }
    memcpy(t + dst, s->p + src, s->len - src);
    assert(dst + s->len - src == len);
    s->p = t;
    s->len = (uint32_t)len;
}

hl7_status hl7_set_fields_raw_at(hl7_msg *m, uint32_t index, const hl7_field_edit *edits, size_t n,
                                 hl7_error *err)
{
    if (index >= m->nsegs)
        return hl7_fail(err, HL7_ERR_NOT_FOUND, 0,
                        "no segment at position %u (the message has %zu)", index + 1, m->nsegs);
    const hl7_seg *s = &m->segs[index];
    const uint32_t msh = !memcmp(s->id, "MSH", 3);
    bool at_once = n > 0;
    for (size_t i = 0; i < n; i++) {
        /* check_set() only for an edit it might refuse: a value with CR, LF,
         * NUL or the field separator (which alone is fine, but not at once),
         * or a field it does not allow */
        const uint32_t field = edits[i].field;
        bool fs = find_break_or(edits[i].raw, edits[i].len, m->d.field) < edits[i].len;
        if (fs || field == 0 || field > 9999 || (msh && field <= 2)) {
            hl7_path p = {.field = field, .rep = 1};
            hl7_status st = check_set(m, (long)index, &p, edits[i].raw, edits[i].len, err);
            if (st != HL7_OK) return st;
        }
        if (fs || (i && field <= edits[i - 1].field)) at_once = false;
    }
    if (at_once && n <= SET_IN_PLACE && edits[n - 1].field - msh < hl7_seg_pieces(s)) {
        set_fields_in_place(m, index, edits, n);
        return HL7_OK;
    }
    if (at_once) {
        set_fields_at_once(m, index, edits, n);
        return HL7_OK;
    }
    for (size_t i = 0; i < n; i++) {
        hl7_path p = {.field = edits[i].field, .rep = 1};
        set_in(m, index, &p, edits[i].raw, edits[i].len);
    }
    return HL7_OK;
}

/* Segment s (at index in m) with the bytes old, inside piece k, replaced
 * by raw[0..len): one copy into owned memory, the pieces after k (and the
 * sentinel) moved where they are; the arguments already checked. */
static inline void splice_in(hl7_msg *m, hl7_seg *s, uint32_t k, hl7_span old, const char *raw,
                             size_t len)
{
    const uint32_t npieces = hl7_seg_pieces(s);
    const size_t head = (size_t)(old.p - s->p), tail = s->len - head - old.len;
    const size_t nlen = head + len + tail;
    char *t = hl7_own_reserve(m, nlen);
    memcpy(t, s->p, head);
    memcpy(t + head, raw, len);
    memcpy(t + head + len, old.p + old.len, tail);
    shift_in_place(m->fofs + s->fofs, k + 1, npieces + 1, (uint32_t)(len - old.len));
    s->p = t;
    s->len = (uint32_t)nlen;
}

hl7_status hl7_splice_raw_at(hl7_msg *m, uint32_t index, uint32_t field, hl7_span old,
                             const char *raw, size_t len, hl7_error *err)
{
    if (index >= m->nsegs)
        return hl7_fail(err, HL7_ERR_NOT_FOUND, 0,
                        "no segment at position %u (the message has %zu)", index + 1, m->nsegs);
    hl7_seg *s = &m->segs[index];
    const uint32_t msh = !memcmp(s->id, "MSH", 3);
    if (field == 0 || field > s->nfields || field <= 2 * msh)
        return hl7_fail(err, HL7_ERR_VALUE, 0, "field %u of %s cannot be spliced into", field,
                        s->id);
    const uint32_t k = field - msh;
    const uint32_t *of = m->fofs + s->fofs;
    const char *fp = s->p + of[k], *fend = s->p + of[k + 1] - 1;
    if (old.p < fp || old.p > fend || old.len > (size_t)(fend - old.p))
        return hl7_fail(err, HL7_ERR_VALUE, 0, "the span to replace is not inside %s-%u", s->id,
                        field);
    size_t bad = find_break_or(raw, len, m->d.field);
    if (bad < len)
        return hl7_fail(err, HL7_ERR_VALUE, bad,
                        "a value may not contain CR, LF, NUL or the field separator (byte %zu)",
                        bad);
    splice_in(m, s, k, old, raw, len);
    return HL7_OK;
}

void hl7_splice_clean_at(hl7_msg *m, uint32_t index, uint32_t field, hl7_span old,
                         const char *raw, size_t len)
{
    assert(index < m->nsegs);
    hl7_seg *s = &m->segs[index];
    const uint32_t msh = !memcmp(s->id, "MSH", 3);
    assert(field > 2 * msh && field <= s->nfields);
    const uint32_t k = field - msh;
    assert(old.p >= s->p && old.len <= s->len - (size_t)(old.p - s->p)); /* in the segment */
    /* raw is not scanned (that is the point); tests compare it with the checked splice */
    splice_in(m, s, k, old, raw, len);
}

/* Without an escape character a delimiter in the text cannot be written
 * without changing the structure. */
static hl7_status check_unescapable(const hl7_msg *m, const char *text, size_t len, hl7_error *err)
{
    const hl7_delims *d = &m->d;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (c == d->field || (c && (c == d->comp || c == d->rep || c == d->sub || c == d->trunc)) ||
            c == '\r' || c == '\n')
            return hl7_fail(err, HL7_ERR_VALUE, i,
                            "the message declares no escape character (MSH-2), so the "
                            "delimiter or line break at byte %zu of the value cannot be "
                            "stored",
                            i);
    }
    return HL7_OK;
}

/* The text escaped for storing: the text itself when nothing in it needs
 * an escape, else m's scratch buffer. */
static hl7_span escaped(hl7_msg *m, const char *text, size_t len)
{
    if (!hl7_needs_escape(&m->d, text, len)) return (hl7_span){text, len};
    tbuf *e = &m->ed[4];
    tbuf_reset(e);
    hl7_escape(&m->d, text, len, e);
    return (hl7_span){e->p ? e->p : "", e->len};
}

hl7_status hl7_set(hl7_msg *m, const hl7_path *p, const char *text, size_t len, hl7_error *err)
{
    if (!m->d.esc) {
        hl7_status st = check_unescapable(m, text, len, err);
        if (st != HL7_OK) return st;
    }
    hl7_span e = escaped(m, text, len);
    return hl7_set_raw(m, p, e.p, e.len, err);
}

hl7_status hl7_escape_for(const hl7_msg *m, const char *text, size_t len, tbuf *out, hl7_error *err)
{
    if (!m->d.esc) {
        hl7_status st = check_unescapable(m, text, len, err);
        if (st != HL7_OK) return st;
    }
    size_t from = out->len;
    hl7_escape(&m->d, text, len, out);
    hl7_status st = check_raw(out->p ? out->p + from : "", out->len - from, err);
    if (st != HL7_OK) {
        out->len = from;
        if (out->p) out->p[from] = '\0';
    }
    return st;
}

hl7_status hl7_set_at(hl7_msg *m, uint32_t index, const hl7_path *p, const char *text, size_t len,
                      hl7_error *err)
{
    if (!m->d.esc) {
        hl7_status st = check_unescapable(m, text, len, err);
        if (st != HL7_OK) return st;
    }
    hl7_span e = escaped(m, text, len);
    return hl7_set_raw_at(m, index, p, e.p, e.len, err);
}

hl7_status hl7_seg_insert(hl7_msg *m, uint32_t index, const char *text, size_t len,
                          hl7_error *err)
{
    if (index == 0 || index > m->nsegs)
        return hl7_fail(err, HL7_ERR_VALUE, 0,
                        "cannot insert a segment at position %u (the message has %zu; "
                        "MSH stays first)",
                        index + 1, m->nsegs);
    if (len < 3)
        return hl7_fail(err, HL7_ERR_SEGMENT_ID, 0, "a segment needs a three-character id");
    for (int i = 0; i < 3; i++)
        if (!((text[i] >= 'A' && text[i] <= 'Z') || (text[i] >= '0' && text[i] <= '9')))
            return hl7_fail(err, HL7_ERR_SEGMENT_ID, (size_t)i,
                            "segment id '%.3s' is not three upper-case letters or digits", text);
    if (len > 3 && text[3] != m->d.field)
        return hl7_fail(err, HL7_ERR_SEGMENT_ID, 3,
                        "the segment id must be followed by the field separator '%c'",
                        m->d.field);
    if (!memcmp(text, "MSH", 3))
        return hl7_fail(err, HL7_ERR_VALUE, 0, "a message has exactly one MSH");
    hl7_status st = check_raw(text, len, err);
    if (st != HL7_OK) return st;
    if (m->nsegs >= m->lim.max_segments)
        return hl7_fail(err, HL7_ERR_TOO_MANY_SEGMENTS, 0,
                        "message already has %zu segments (the configured limit)", m->nsegs);
    m->segs = xgrow(m->segs, &m->segcap, m->nsegs + 1, sizeof(*m->segs));
    memmove(&m->segs[index + 1], &m->segs[index], (m->nsegs - index) * sizeof(*m->segs));
    m->nsegs++;
    hl7_seg *s = &m->segs[index];
    memset(s, 0, sizeof(*s));
    memcpy(s->id, text, 3);
    s->term = "\r";
    s->term_len = 1;
    replace_segment(m, index, text, len);
    /* A segment appended after a last segment that had no terminator: the
     * previous one now needs one, and the new last one should not add any. */
    if (index == m->nsegs - 1 && m->segs[index - 1].term_len == 0) {
        m->segs[index - 1].term = "\r";
        m->segs[index - 1].term_len = 1;
        s->term_len = 0;
    }
    return HL7_OK;
}

hl7_status hl7_seg_remove(hl7_msg *m, uint32_t index, hl7_error *err)
{
    if (index == 0)
        return hl7_fail(err, HL7_ERR_VALUE, 0, "MSH cannot be removed");
    if (index >= m->nsegs)
        return hl7_fail(err, HL7_ERR_NOT_FOUND, 0, "no segment at position %u (the message has %zu)",
                        index + 1, m->nsegs);
    /* Removing the last segment: the one before becomes last and keeps the
     * removed one's ending, so a message without a final CR stays so. */
    if (index == m->nsegs - 1) {
        m->segs[index - 1].term = m->segs[index].term;
        m->segs[index - 1].term_len = m->segs[index].term_len;
    }
    memmove(&m->segs[index], &m->segs[index + 1], (m->nsegs - index - 1) * sizeof(*m->segs));
    m->nsegs--;
    return HL7_OK;
}

void hl7_serialize(const hl7_msg *m, tbuf *out)
{
    for (size_t i = 0; i < m->nsegs; i++) {
        const hl7_seg *s = &m->segs[i];
        tbuf_put(out, s->p, s->len);
        if (s->term_len)
            tbuf_put(out, s->term, s->term_len);
        else if (i + 1 < m->nsegs)
            tbuf_putc(out, '\r');
    }
}

void hl7_serialize_cr(const hl7_msg *m, tbuf *out)
{
    for (size_t i = 0; i < m->nsegs; i++) {
        tbuf_put(out, m->segs[i].p, m->segs[i].len);
        tbuf_putc(out, '\r');
    }
}

void hl7_msg_init(hl7_msg *m, const hl7_delims *d)
{
    hl7_msg_reset(m);
    hl7_delims std = {'|', '^', '~', '\\', '&', 0};
    m->d = d ? *d : std;
    char text[9];
    size_t n = 0;
    memcpy(text, "MSH", 3);
    n = 3;
    text[n++] = m->d.field;
    const char enc[5] = {m->d.comp, m->d.rep, m->d.esc, m->d.sub, m->d.trunc};
    for (int i = 0; i < 5 && enc[i]; i++) text[n++] = enc[i];
    m->segs = xgrow(m->segs, &m->segcap, 1, sizeof(*m->segs));
    hl7_seg *s = &m->segs[0];
    memset(s, 0, sizeof(*s));
    memcpy(s->id, "MSH", 4);
    s->term = "\r";
    s->term_len = 1;
    m->nsegs = 1;
    replace_segment(m, 0, text, n);
}
