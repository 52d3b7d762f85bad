/*
 * hl7: the HL7 v2 message model: parse, index, access by path, edit,
 * serialize.
 *
 * Parsing is zero-copy. hl7_parse() scans the caller's buffer once and builds
 * an index: one hl7_seg per segment and, per segment, the offsets at which its
 * fields start. Repetitions, components and subcomponents are found on access
 * by scanning the (short) field, and escape sequences are decoded only when a
 * value is asked for (hl7_get). The message borrows the input buffer until it
 * is parsed again or freed.
 *
 * Editing (hl7_set, hl7_seg_insert/remove) never writes to the input buffer:
 * an edited segment is re-rendered into memory the message owns, and its index
 * entry is pointed there. Untouched segments keep pointing into the input, and
 * each segment remembers the exact terminator bytes that followed it, so an
 * unchanged message serializes back byte for byte.
 *
 * Field numbering follows the standard: for MSH, MSH-1 is the field separator
 * and MSH-2 the encoding characters; for other segments field 1 is the first
 * one after the segment id. Occurrence, repetition, component and subcomponent
 * numbers are 1-based.
 *
 * An hl7_msg is reusable: parse into the same object again to avoid
 * allocations in a loop. It is not thread-safe; use one per thread.
 */
#ifndef TERN_HL7_H
#define TERN_HL7_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/tbuf.h"

typedef enum hl7_status {
    HL7_OK = 0,
    HL7_ERR_EMPTY,            /* no bytes, or only whitespace */
    HL7_ERR_NO_MSH,           /* does not start with an MSH segment */
    HL7_ERR_DELIMITERS,       /* MSH-1/MSH-2 unusable */
    HL7_ERR_TRUNCATED,        /* MSH ends before its required fields */
    HL7_ERR_SEGMENT_ID,       /* a segment id is not three upper-case letters/digits */
    HL7_ERR_NUL,              /* a NUL byte inside the message */
    HL7_ERR_FIELD_TOO_LONG,   /* a field exceeds hl7_limits.max_field */
    HL7_ERR_TOO_MANY_SEGMENTS,/* more than hl7_limits.max_segments */
    HL7_ERR_TOO_LARGE,        /* message exceeds hl7_limits.max_message */
    HL7_ERR_PATH,             /* a path does not follow SEG[n]-F[r].C.S */
    HL7_ERR_NOT_FOUND,        /* the path names a segment that is not there */
    HL7_ERR_VALUE,            /* a value cannot be stored (e.g. contains CR) */
    HL7_ERR_BATCH,            /* batch envelope problem or count mismatch */
    HL7_ERR_IO,               /* reading the input failed */
} hl7_status;

/* Returns a static, human-readable name for a status; never NULL. */
const char *hl7_strerror(hl7_status s);

/* Where and why something failed. Filled by every function that takes one;
 * `text` always says what was wrong in words a user can act on. */
typedef struct hl7_error {
    hl7_status code;
    size_t offset;   /* byte offset in the input where the problem was seen */
    uint32_t segment;/* 1-based segment index in the message, 0 if unknown */
    char seg_id[4];  /* id of that segment ("" if unknown) */
    uint32_t field;  /* field number, 0 if unknown */
    char text[224];
} hl7_error;

/* Writes "byte N, segment S (PID), field PID-5" (as much as is known) into
 * buf; returns buf. */
char *hl7_error_where(const hl7_error *e, char *buf, size_t size);

typedef struct hl7_limits {
    size_t max_message;    /* bytes in one message */
    size_t max_field;      /* bytes in one field */
    uint32_t max_segments; /* segments in one message */
} hl7_limits;

#define HL7_DEFAULT_MAX_MESSAGE (64u << 20)
#define HL7_DEFAULT_MAX_FIELD (16u << 20)
#define HL7_DEFAULT_MAX_SEGMENTS 65535u

void hl7_limits_default(hl7_limits *lim);

/* The delimiters of one message. A character that the sender did not declare
 * (a short MSH-2) is '\0' and never matches. */
typedef struct hl7_delims {
    char field, comp, rep, esc, sub, trunc;
} hl7_delims;

typedef enum hl7_charset {
    HL7_CS_DEFAULT = 0, /* MSH-18 empty: UTF-8 if valid, else treated as 8859/1 */
    HL7_CS_ASCII,
    HL7_CS_LATIN1,      /* 8859/1 */
    HL7_CS_LATIN9,      /* 8859/15 */
    HL7_CS_UTF8,        /* UNICODE UTF-8 */
    HL7_CS_OTHER,       /* declared but not converted: passed through */
} hl7_charset;

typedef struct hl7_span {
    const char *p;
    size_t len;
} hl7_span;

typedef struct hl7_seg {
    const char *p;      /* segment text (no terminator); input or owned memory */
    uint32_t len;
    uint32_t nfields;   /* highest field number present (MSH: counts MSH-1) */
    uint32_t fofs;      /* index into msg->fofs of piece 0 (the segment id) */
    uint32_t term_len;  /* terminator bytes that followed it (CR, LF, CRLF, ...) */
    const char *term;   /* those bytes; "\r" for segments built in memory */
    char id[4];         /* NUL-terminated segment id */
} hl7_seg;

typedef struct hl7_msg hl7_msg;

/* Returns a new empty message; lim NULL means hl7_limits_default(). Never NULL. */
hl7_msg *hl7_msg_new(const hl7_limits *lim);
void hl7_msg_free(hl7_msg *m);

/* Parses buf[0..len) into m (replacing what m held). m borrows buf until the
 * next hl7_parse or hl7_msg_free. A leading UTF-8 byte order mark and
 * trailing CR/LF are accepted. On failure m is empty and err says where. */
hl7_status hl7_parse(hl7_msg *m, const char *buf, size_t len, hl7_error *err);

/* Parses the first message at the front of buf and stops at the start of the
 * next line that begins a message or a batch envelope segment (MSH, FHS, BHS,
 * BTS, FTS); *used is the number of bytes the message took, its trailing
 * terminators and blank lines included. This is what batch readers loop on.
 * hl7_parse() is hl7_parse_prefix() that insists on using all of buf. */
hl7_status hl7_parse_prefix(hl7_msg *m, const char *buf, size_t len, size_t *used,
                            hl7_error *err);

/* True when the segment id at p (3 bytes readable) is MSH, FHS, BHS, BTS or
 * FTS: a line that starts a message or belongs to a batch envelope. */
bool hl7_is_boundary_id(const char *p);

/* Makes m a new message holding only an MSH with the given delimiters
 * (NULL: |^~\&). Fill it with hl7_set. */
void hl7_msg_init(hl7_msg *m, const hl7_delims *d);

/* --- inspection -------------------------------------------------------- */

const hl7_delims *hl7_delims_of(const hl7_msg *m);
hl7_charset hl7_charset_of(const hl7_msg *m);
uint32_t hl7_seg_count(const hl7_msg *m);
/* 0-based index; NULL when out of range. Valid until m changes. */
const hl7_seg *hl7_seg_at(const hl7_msg *m, uint32_t index);
/* All hl7_seg_count(m) segments as an array (NULL when there are none), for
 * loops over many segments. Valid until m changes. */
const hl7_seg *hl7_segs(const hl7_msg *m);
/* 0-based index of the n-th (1-based) segment with this id, or -1. */
long hl7_seg_find(const hl7_msg *m, const char *id, uint32_t n);
/* Number of segments with this id. */
uint32_t hl7_seg_occurrences(const hl7_msg *m, const char *id);

/* What is at a position. ABSENT: beyond what the message holds. EMPTY: there
 * but zero length. NULL_VALUE: the explicit null "" (delete in the receiver).
 * VALUE: anything else. */
typedef enum hl7_presence {
    HL7_ABSENT = 0,
    HL7_EMPTY,
    HL7_NULL_VALUE,
    HL7_VALUE,
} hl7_presence;

/* Raw (wire) text of one element of segment `index`. field >= 1; rep, comp
 * and sub are 1-based, or 0 for "the whole enclosing element" (comp 0 gives
 * the whole repetition, sub 0 the whole component). rep 0 means the whole
 * field with all its repetitions. MSH-1 and MSH-2 are returned whole and are
 * never split. *out points into the message. */
hl7_presence hl7_raw(const hl7_msg *m, uint32_t index, uint32_t field, uint32_t rep,
                     uint32_t comp, uint32_t sub, hl7_span *out);

/* First byte in [p, end) equal to a or b, or end: eight bytes at a time,
 * for the delimiter scans of field values. */
static inline const char *hl7_scan2(const char *p, const char *end, char a, char b)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    const uint64_t pa = ones * (unsigned char)a, pb = ones * (unsigned char)b;
    while (end - p >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        uint64_t xa = w ^ pa, xb = w ^ pb;
        /* A zero byte of xa or xb sets its high bit; bits above a zero byte may be
         * set too, so the lowest one is the first match. */
        uint64_t hit = (((xa - ones) & ~xa) | ((xb - ones) & ~xb)) & highs;
        if (hit) return p + (__builtin_ctzll(hit) >> 3);
        p += 8;
    }
#endif
    while (p < end && *p != a && *p != b)
        p++;
    return p;
}

/* Length of the longest prefix of p[0..len) made of ASCII bytes other
 * than esc ('\0': none): text that decoding (hl7_unescape) leaves as it is. */
static inline size_t hl7_plain_prefix(const char *p, size_t len, char esc)
{
    size_t i = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    const uint64_t pe = ones * (unsigned char)(esc ? esc : 0x80);
    for (; len - i >= 8; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        uint64_t x = w ^ pe;
        uint64_t hit = (((x - ones) & ~x) | w) & highs; /* esc bytes, then high bits */
        if (hit) return i + (size_t)(__builtin_ctzll(hit) >> 3);
    }
#endif
    while (i < len && (unsigned char)p[i] < 0x80 && (p[i] != esc || !esc))
        i++;
    return i;
}

/* hl7_scan2() for a span [p, end) inside memory readable up to limit
 * (the span's segment; an empty span may be anywhere): a short span is read
 * as one word, so that the position of the first delimiter costs no
 * hard-to-predict branch. */
static inline const char *hl7_scan2_in(const char *p, const char *end, const char *limit, char a,
                                       char b)
{
    if (p == end) return end; /* (an empty span may lie outside the segment) */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (end - p <= 8 && limit - p >= 8) {
        const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
        uint64_t w;
        memcpy(&w, p, 8);
        uint64_t xa = w ^ (ones * (unsigned char)a), xb = w ^ (ones * (unsigned char)b);
        uint64_t hit = (((xa - ones) & ~xa) | ((xb - ones) & ~xb)) & highs;
        size_t n = (size_t)(end - p);
        if (n < 8) hit &= ((uint64_t)1 << (8 * n)) - 1; /* bytes past the span */
        return hit ? p + (__builtin_ctzll(hit) >> 3) : end;
    }
#else
    (void)limit;
#endif
    return hl7_scan2(p, end, a, b);
}

/* The fields of one segment located once, for code that reads many of
 * them (validation, conversion): a cursor into the message's index.
 * Valid until m changes (hl7_set, hl7_seg_insert/remove, a new parse). */
typedef struct hl7_fields {
    const char *p;       /* segment text */
    const uint32_t *ofs; /* piece offsets (hl7_int.h), borrowed from m */
    uint32_t len;        /* bytes of segment text (readable from p) */
    uint32_t nfields;    /* as hl7_seg.nfields */
    uint32_t msh;        /* 1 for MSH (MSH-1 is the separator, field f is piece f - 1), else 0 */
} hl7_fields;

/* Fills f for segment `index` (0-based); false when out of range. */
bool hl7_fields_at(const hl7_msg *m, uint32_t index, hl7_fields *f);

/* Raw text of field `field` with all its repetitions, as hl7_raw(m, index,
 * field, 0, 0, 0, out); false (out untouched) when the field is absent. */
static inline bool hl7_fields_get(const hl7_fields *f, uint32_t field, hl7_span *out)
{
    if (field - 1 >= f->nfields) return false; /* 0 wraps around */
    if (field <= f->msh) {                     /* MSH-1 */
        out->p = f->p + 3;
        out->len = 1;
        return true;
    }
    const uint32_t *o = f->ofs + (field - f->msh);
    out->p = f->p + o[0];
    out->len = o[1] - 1 - o[0];
    return true;
}

/* Counts, for walking a structure: repetitions in a field, components in a
 * repetition, subcomponents in a component (0 when absent, 1 when empty). */
uint32_t hl7_rep_count(const hl7_msg *m, uint32_t index, uint32_t field);
uint32_t hl7_comp_count(const hl7_msg *m, uint32_t index, uint32_t field, uint32_t rep);
uint32_t hl7_sub_count(const hl7_msg *m, uint32_t index, uint32_t field, uint32_t rep,
                       uint32_t comp);

/* --- paths: SEG[n]-F[r].C.S -------------------------------------------- */

/* A parsed path. seg_occ and rep default to 1; field, comp and sub are 0
 * when not given (meaning "the whole segment / field / component"). */
typedef struct hl7_path {
    char seg[4];
    uint32_t seg_occ;
    uint32_t field;
    uint32_t rep;
    uint32_t comp;
    uint32_t sub;
} hl7_path;

/* Parses "PID-5.1", "PID-3[2].1", "OBX[3]-5", "MSH-9.2", "ZPD-1.2.3".
 * On failure err->text says what is wrong and err->offset where in the path. */
hl7_status hl7_path_parse(const char *s, hl7_path *p, hl7_error *err);
/* Writes the canonical text of p ("PID-3[2].1") into buf; returns buf. */
char *hl7_path_format(const hl7_path *p, char *buf, size_t size);

/* Raw text at a path (see hl7_raw). */
hl7_presence hl7_get_raw(const hl7_msg *m, const hl7_path *p, hl7_span *out);

/* Appends the value at path p to out, with escape sequences decoded and the
 * message's character set converted to UTF-8. A composite (a field or
 * component that holds deeper delimiters) comes back with its delimiters and
 * its escapes decoded. Returns what is there; appends nothing unless VALUE. */
hl7_presence hl7_get(const hl7_msg *m, const hl7_path *p, tbuf *out);

/* hl7_get_raw and hl7_get on segment `index` (0-based) itself: p->seg and
 * p->seg_occ are not used. ABSENT when index is out of range. */
hl7_presence hl7_get_raw_at(const hl7_msg *m, uint32_t index, const hl7_path *p, hl7_span *out);
hl7_presence hl7_get_at(const hl7_msg *m, uint32_t index, const hl7_path *p, tbuf *out);

/* --- escapes and character sets ------------------------------------------ */

/* Appends raw text decoded: \F\ \S\ \T\ \R\ \E\ \P\ \Xhh..\ and the
 * formatting escapes (\.br\ -> LF, \.sp n\ -> n LFs, \.in\/\.ti\/\.sk\ ->
 * spaces, \H\ \N\ and others dropped); bytes converted from cs to UTF-8.
 * Unknown or unterminated escapes are kept literally. */
void hl7_unescape(const hl7_delims *d, hl7_charset cs, const char *raw, size_t len, tbuf *out);
/* Appends plain UTF-8 text escaped so that it can be stored as one leaf value:
 * each delimiter becomes its escape sequence, CR becomes \X0D\, LF \.br\
 * (\X0A\ when the message uses "." as a delimiter). */
void hl7_escape(const hl7_delims *d, const char *text, size_t len, tbuf *out);
/* True when hl7_escape() would change text: it holds a delimiter of d, CR
 * or LF. */
bool hl7_needs_escape(const hl7_delims *d, const char *text, size_t len);
/* Maps an MSH-18 value to a charset. */
hl7_charset hl7_charset_from_name(const char *name, size_t len);

/* --- editing ------------------------------------------------------------- */

/* Stores plain text at p, escaping delimiters; creates the segment (at the
 * end of the message, or after the last one of that id) and any missing
 * fields, repetitions and components. p must name at least a field.
 * HL7_ERR_VALUE when the message has no escape character and the text holds
 * a delimiter or line break that therefore cannot be stored. */
hl7_status hl7_set(hl7_msg *m, const hl7_path *p, const char *text, size_t len,
                   hl7_error *err);
/* Like hl7_set, but the value is wire text stored as is: it may contain the
 * message's delimiters to set a whole composite; it must not contain CR/LF. */
hl7_status hl7_set_raw(hl7_msg *m, const hl7_path *p, const char *raw, size_t len,
                       hl7_error *err);
/* hl7_set and hl7_set_raw on segment `index` (0-based) itself, for callers
 * that hold the index: p->seg and p->seg_occ are not used, nothing is
 * searched or created. HL7_ERR_NOT_FOUND when index is out of range. */
hl7_status hl7_set_at(hl7_msg *m, uint32_t index, const hl7_path *p, const char *text, size_t len,
                      hl7_error *err);
hl7_status hl7_set_raw_at(hl7_msg *m, uint32_t index, const hl7_path *p, const char *raw,
                          size_t len, hl7_error *err);
/* Appends text to out as hl7_set() would store it (escaped), or fails as
 * hl7_set() would on it (no escape character to write a delimiter with, a
 * NUL byte), appending nothing. For callers that gather several values
 * for hl7_set_fields_raw_at(). */
hl7_status hl7_escape_for(const hl7_msg *m, const char *text, size_t len, tbuf *out,
                          hl7_error *err);

/* The first repetition of one field, as hl7_set_raw_at() with path
 * SEG-F (rep 1, no component) stores it. */
typedef struct hl7_field_edit {
    uint32_t field;
    const char *raw; /* wire text (borrowed), no CR/LF/NUL */
    size_t len;
} hl7_field_edit;

/* hl7_set_raw_at() of edits[0..n) on segment `index`, with the result of
 * those calls made in that order, but in one rewrite of the segment when
 * the fields are in increasing order and no value holds a field separator.
 * Every edit is checked first: on failure nothing is changed. */
hl7_status hl7_set_fields_raw_at(hl7_msg *m, uint32_t index, const hl7_field_edit *edits, size_t n,
                                 hl7_error *err);
/* Replaces the bytes `old` of segment `index`, a span of its current text
 * inside field `field` (as hl7_raw() or hl7_fields_get() gave it, since the
 * segment last changed), by the wire text raw[0..len), in one rewrite of the
 * segment: for callers that located the element themselves (a repetition,
 * a component). raw may not hold CR, LF, NUL or the field separator
 * (HL7_ERR_VALUE); MSH-1 and MSH-2 cannot be changed; a span outside the
 * field is HL7_ERR_VALUE. On failure nothing is changed. */
hl7_status hl7_splice_raw_at(hl7_msg *m, uint32_t index, uint32_t field, hl7_span old,
                             const char *raw, size_t len, hl7_error *err);
/* hl7_splice_raw_at() without its checks, for a caller that knows they
 * pass: index, field and old as it allows, and raw a text it accepted
 * before for a message with the same field separator (no CR, LF, NUL or
 * field separator). Only the cheap checks are asserted; raw is not scanned. */
void hl7_splice_clean_at(hl7_msg *m, uint32_t index, uint32_t field, hl7_span old,
                         const char *raw, size_t len);
/* Inserts a segment given as wire text ("NTE|1||text") before 0-based index
 * `index` (seg_count appends). MSH cannot be inserted. */
hl7_status hl7_seg_insert(hl7_msg *m, uint32_t index, const char *text, size_t len,
                          hl7_error *err);
/* Removes the segment at 0-based index (not MSH at 0). */
hl7_status hl7_seg_remove(hl7_msg *m, uint32_t index, hl7_error *err);

/* Appends the message in wire form to out: segments joined by the
 * terminators they had; edited and new ones end with CR. */
void hl7_serialize(const hl7_msg *m, tbuf *out);
/* Appends the message in the standard wire form whatever it was received
 * with: every segment followed by exactly one CR, blank lines dropped. This
 * is what is stored and sent on from files and HTTP bodies. */
void hl7_serialize_cr(const hl7_msg *m, tbuf *out);

#endif
