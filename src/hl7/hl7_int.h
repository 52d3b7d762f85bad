/*
 * hl7_int: the layout of hl7_msg, shared by the hl7 modules only (parse,
 * access, edit). Nothing outside src/hl7 includes this file.
 *
 * fofs holds, for every segment, the offsets (relative to seg->p) at which
 * its pieces start: piece 0 is the segment id, piece k the text after the
 * k-th field separator; one sentinel entry equal to len + 1 closes the list,
 * so piece k spans [fofs[k], fofs[k+1] - 1). A segment's run is its own.
 * An edited segment gets a fresh run of entries at the end of the array
 * (its old run is left unused until the message is reset), unless the edit
 * keeps its pieces: then its run is shifted in place.
 */
#ifndef TERN_HL7_INT_H
#define TERN_HL7_INT_H

#include "hl7/hl7.h"

struct hl7_msg {
    hl7_limits lim;
    const char *buf; /* borrowed input, NULL for a message built in memory */
    size_t len;
    hl7_delims d;
    hl7_charset cs;
    hl7_seg *segs;
    size_t nsegs, segcap;
    uint32_t *fofs;
    size_t nfofs, fofscap;
    /* Texts of edited or built segments: an arena of chunks (the last one
     * is filled up to own_used of own_cap); all but the first are freed on
     * reset, so a message reused for many edits stops allocating. */
    char **owned;
    size_t nowned, ownedcap;
    size_t own_used, own_cap, own_cap0;
    tbuf ed[5]; /* hl7_edit's scratch buffers, reused across edits */
};

/* Number of pieces (segment id included) of segment s. */
static inline uint32_t hl7_seg_pieces(const hl7_seg *s)
{
    return !memcmp(s->id, "MSH", 3) ? s->nfields : s->nfields + 1;
}

/* Drops all segments and owned memory; keeps allocated arrays. */
void hl7_msg_reset(hl7_msg *m);
/* Indexes segment text t[0..len) (owned by m) and returns its fofs start.
 * Sets *nfields. The text has no terminator. */
uint32_t hl7_index_segment(hl7_msg *m, const char *t, uint32_t len, uint32_t *nfields);
/* Copies n bytes into memory the message owns until reset. */
char *hl7_own(hl7_msg *m, const char *p, size_t n);
/* Starts a new chunk of owned memory with room for n + 1 bytes: the slow
 * path of hl7_own_reserve(). */
void hl7_own_chunk(hl7_msg *m, size_t n);
/* n + 1 bytes of memory the message owns until reset (the last one set to
 * NUL), to be filled by the caller. Inline: edits take some per segment. */
static inline char *hl7_own_reserve(hl7_msg *m, size_t n)
{
    if (!m->nowned || n + 1 > m->own_cap - m->own_used) hl7_own_chunk(m, n);
    char *c = m->owned[m->nowned - 1] + m->own_used;
    c[n] = '\0';
    m->own_used += n + 1;
    return c;
}
/* Makes room for `extra` more entries in m->fofs. */
void hl7_fofs_reserve(hl7_msg *m, size_t extra);
/* Presence of a raw span. */
hl7_presence hl7_presence_of(const char *p, size_t len);
/* Raw span of field `field` of segment s (see hl7_raw); false when absent. */
bool hl7_field_span(const hl7_msg *m, const hl7_seg *s, uint32_t field, hl7_span *out);
/* n-th (1-based) piece of span split by ch ('\0': no split); false if absent. */
bool hl7_nth(const char *p, size_t len, char ch, uint32_t n, hl7_span *out);
/* Fills err (which may be NULL) and returns code. */
hl7_status hl7_fail(hl7_error *err, hl7_status code, size_t offset, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
