/*
 * hl7_ack: acknowledgements (ACK messages) for HL7 v2 messages.
 *
 * An ACK answers one message: an MSH with the original's delimiters, the
 * sender and receiver swapped, processing id, version and character set
 * echoed, and MSH-9 ACK^<trigger>^ACK (ACK^<trigger> before v2.3.1, which
 * had no message structure component; ACK when there is no trigger); an MSA
 * with the acknowledgement code and the original MSH-10; one ERR segment per
 * problem. The ERR layout follows the version being answered: from v2.5 on,
 * ERR-2 (location), ERR-3 (table 0357 code), ERR-4 (severity) and ERR-8
 * (user message); before v2.5, ERR-1 (ELD), the only field those receivers
 * know.
 *
 * The ACK is written as wire text straight into a tbuf: segments end with CR
 * and there is no trailing newline. Every value taken from the caller is
 * escaped (delimiters, CR, LF and the other control characters, which could
 * break MLLP framing), and converted from UTF-8 to the character set the
 * original declared in MSH-18. Values echoed from the original are copied as
 * wire text, with control characters escaped.
 *
 * hl7_ack_build_nak() answers input that did not parse: it salvages what it
 * can from the MSH line, checking every value it uses, and never fails.
 *
 * Nothing here keeps state; all functions are safe to call from any thread
 * on distinct arguments. See docs/hl7-acks.md for the behaviour in HL7 terms.
 */
#ifndef TERN_HL7_ACK_H
#define TERN_HL7_ACK_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "base/tbuf.h"
#include "hl7/hl7.h"

/* --- modes and conditions -------------------------------------------------- */

/* Original mode: MSH-15 and MSH-16 both empty; the receiver answers with one
 * application acknowledgement (AA/AE/AR). Enhanced mode: either is valued; the
 * receiver answers with an accept (commit) acknowledgement (CA/CE/CR) when
 * MSH-15 asks for one, and later with an application acknowledgement when
 * MSH-16 asks for one. */
typedef enum hl7_ack_mode {
    HL7_ACK_MODE_ORIGINAL = 0,
    HL7_ACK_MODE_ENHANCED,
} hl7_ack_mode;

/* A value of MSH-15 or MSH-16 (HL7 table 0155). Matching ignores case and
 * surrounding spaces. */
typedef enum hl7_ack_cond {
    HL7_ACK_COND_EMPTY = 0, /* not valued (or the explicit null "") */
    HL7_ACK_COND_AL,        /* always */
    HL7_ACK_COND_NE,        /* never */
    HL7_ACK_COND_ER,        /* only on error or reject */
    HL7_ACK_COND_SU,        /* only on success */
    HL7_ACK_COND_OTHER,     /* a value not in table 0155 */
} hl7_ack_cond;

hl7_ack_mode hl7_ack_mode_of(const hl7_msg *m);
/* MSH-15 and MSH-16 of m. */
hl7_ack_cond hl7_ack_accept_cond(const hl7_msg *m);
hl7_ack_cond hl7_ack_app_cond(const hl7_msg *m);
/* Whether condition c asks for an acknowledgement when processing succeeded
 * (ok) or failed (!ok): AL always, NE never, ER only when !ok, SU only when
 * ok. EMPTY and OTHER count as AL: an acknowledgement the sender did not need
 * is cheaper than a sender waiting for one that never comes. */
bool hl7_ack_cond_wants(hl7_ack_cond c, bool ok);
/* Whether the receiver of m should send an accept (commit) acknowledgement:
 * never in original mode; in enhanced mode as MSH-15 says. */
bool hl7_ack_wants_accept(const hl7_msg *m, bool ok);
/* Whether the receiver of m should send an application acknowledgement:
 * always in original mode; in enhanced mode as MSH-16 says. */
bool hl7_ack_wants_app(const hl7_msg *m, bool ok);
/* True when m is itself an acknowledgement (MSH-9.1 is ACK), which must never
 * be acknowledged: two engines doing so would loop forever. */
bool hl7_ack_is_ack(const hl7_msg *m);

/* --- codes --------------------------------------------------------------- */

/* MSA-1 (HL7 table 0008). HL7_ACK_AUTO lets the builder choose, so that a
 * zeroed hl7_ack_opts is a sensible default. */
typedef enum hl7_ack_code {
    HL7_ACK_AUTO = 0,
    HL7_ACK_AA, /* application accept */
    HL7_ACK_AE, /* application error */
    HL7_ACK_AR, /* application reject */
    HL7_ACK_CA, /* commit accept (enhanced mode) */
    HL7_ACK_CE, /* commit error */
    HL7_ACK_CR, /* commit reject */
} hl7_ack_code;

/* What happened to a message, independent of the mode. */
typedef enum hl7_ack_outcome {
    HL7_ACK_OUTCOME_ACCEPT = 0, /* taken: AA / CA */
    HL7_ACK_OUTCOME_ERROR,      /* taken but something was wrong: AE / CE */
    HL7_ACK_OUTCOME_REJECT,     /* refused (unsupported, unreadable): AR / CR */
} hl7_ack_outcome;

/* "AA" ... "CR"; "" for HL7_ACK_AUTO and out-of-range values. Never NULL. */
const char *hl7_ack_code_name(hl7_ack_code c);
/* Reads "AA" ... "CR" (case-insensitive). On failure fills err (HL7_ERR_VALUE)
 * and leaves *out alone. */
hl7_status hl7_ack_code_parse(const char *s, hl7_ack_code *out, hl7_error *err);
/* The code of the acknowledgement a receiver sends first: application codes
 * (AA/AE/AR) in original mode, commit codes (CA/CE/CR) in enhanced mode. */
hl7_ack_code hl7_ack_code_for(hl7_ack_mode mode, hl7_ack_outcome o);

/* --- problems (ERR segments) ------------------------------------------------ */

/* HL7 table 0357, message error condition codes. Other numbers may be used
 * (locally defined codes); they are written without a description. */
typedef enum hl7_ack_errcode {
    HL7_ACK_ERR_ACCEPTED = 0,
    HL7_ACK_ERR_SEGMENT_SEQUENCE = 100,
    HL7_ACK_ERR_REQUIRED_FIELD = 101,
    HL7_ACK_ERR_DATA_TYPE = 102,
    HL7_ACK_ERR_TABLE_VALUE = 103,
    HL7_ACK_ERR_VALUE_TOO_LONG = 104,
    HL7_ACK_ERR_UNSUPPORTED_MESSAGE_TYPE = 200,
    HL7_ACK_ERR_UNSUPPORTED_EVENT = 201,
    HL7_ACK_ERR_UNSUPPORTED_PROCESSING_ID = 202,
    HL7_ACK_ERR_UNSUPPORTED_VERSION = 203,
    HL7_ACK_ERR_UNKNOWN_KEY = 204,
    HL7_ACK_ERR_DUPLICATE_KEY = 205,
    HL7_ACK_ERR_RECORD_LOCKED = 206,
    HL7_ACK_ERR_INTERNAL = 207,
} hl7_ack_errcode;

/* The table 0357 description ("Required field missing"), or NULL for a code
 * that is not in the table. */
const char *hl7_ack_errcode_text(hl7_ack_errcode c);

/* ERR-4 (HL7 table 0516). */
typedef enum hl7_ack_severity {
    HL7_ACK_SEV_ERROR = 0, /* E */
    HL7_ACK_SEV_WARNING,   /* W */
    HL7_ACK_SEV_INFO,      /* I */
} hl7_ack_severity;

/* "E", "W" or "I"; "E" for out-of-range values. */
const char *hl7_ack_severity_name(hl7_ack_severity s);

/* One problem, written as one ERR segment.
 * where: the location, as a path (hl7_path_parse fills it from "PID-3[2].1").
 *   where.seg "" means no location. seg_occ 0 means unknown occurrence;
 *   field 0 means the whole segment; rep, comp and sub 0 mean not given.
 * text: plain UTF-8 text for the reader (ERR-8, or the ELD text before v2.5);
 *   borrowed, NULL or "" for none. */
typedef struct hl7_ack_problem {
    hl7_path where;
    hl7_ack_errcode code;
    hl7_ack_severity severity;
    const char *text;
} hl7_ack_problem;

/* Describes a parse failure as a problem: the 0357 code that fits e->code
 * (segment id, batch/second message and missing MSH: 100; truncated MSH:
 * 101; NUL byte and bad delimiters: 102; field too long: 104; size limits
 * and non-parse errors: 207), severity E, the location e names, and
 * out->text = e->text (borrowed: valid while *e is).
 * raw/len, the buffer given to the hl7_parse() that failed (e->offset is
 * relative to it; may be NULL), let it count which occurrence of the segment
 * failed and name a segment whose id is not valid ("pid"); without them the
 * occurrence is known only for the MSH. */
void hl7_ack_problem_from_error(const hl7_error *e, const char *raw, size_t len,
                                hl7_ack_problem *out);

/* --- building -------------------------------------------------------------- */

/* What to put in the ACK. A zeroed struct is valid: automatic code, no text,
 * derived control id, current time. All strings are borrowed, plain UTF-8. */
typedef struct hl7_ack_opts {
    /* MSA-1. AUTO: hl7_ack_code_for(mode of the original, ERROR if a problem
     * has severity E, else ACCEPT); for a NAK, REJECT (AR / CR). */
    hl7_ack_code code;
    /* MSA-3, NULL for none. For a NAK, NULL means the parse error's text. */
    const char *text;
    /* MSH-10 of the ACK. NULL: hl7_ack_default_control_id(). */
    const char *control_id;
    /* MSH-7, an HL7 DTM (YYYY[MM[DD[HH[MM[SS[.S...]]]]]][+/-ZZZZ]). NULL: now,
     * in local time, as YYYYMMDDHHMMSS+ZZZZ. */
    const char *timestamp;
    /* Extra ERR segments, in order; problems may be NULL when nproblems is 0. */
    const hl7_ack_problem *problems;
    size_t nproblems;
} hl7_ack_opts;

/* Size of the buffers below, NUL included. */
#define HL7_ACK_TIME_SIZE 32
#define HL7_ACK_CONTROL_ID_SIZE 21

/* Writes t as YYYYMMDDHHMMSS+ZZZZ in local time (TZ applies). */
void hl7_ack_format_time(time_t t, char out[HL7_ACK_TIME_SIZE]);

/* The control id used when none is given: "ACK" followed by the last 17
 * letters, digits, '.', '-' or '_' of the original MSH-10 (other characters
 * are dropped), so at most 20 characters, the MSH-10 length before v2.7.
 * "ACK" alone when the original has none. */
void hl7_ack_default_control_id(const hl7_msg *orig, char out[HL7_ACK_CONTROL_ID_SIZE]);

/* Checks the options hl7_ack_build() would refuse: code out of range, an
 * empty control id, a timestamp that is not a DTM. HL7_ERR_VALUE and err
 * saying which, or HL7_OK. Lets a caller reject bad settings up front. */
hl7_status hl7_ack_opts_check(const hl7_ack_opts *o, hl7_error *err);

/* Appends the ACK for orig to out. o NULL means a zeroed hl7_ack_opts.
 * Fails, appending nothing, with HL7_ERR_NO_MSH when orig does not start
 * with an MSH, and HL7_ERR_VALUE when hl7_ack_opts_check() refuses o. */
hl7_status hl7_ack_build(const hl7_msg *orig, const hl7_ack_opts *o, tbuf *out, hl7_error *err);

/* Appends a negative ACK for raw[0..len), which failed to parse with *perr.
 * Delimiters, MSH-3..6, MSH-9 trigger, MSH-10, MSH-11, MSH-12, MSH-15/16 and
 * MSH-18 are salvaged from the first line when it is an MSH with usable
 * delimiters; a value is used only when it is short and free of control
 * characters (and, for MSH-12, looks like a version). Otherwise the ACK uses
 * |^~\&, an empty MSA-2, processing id P and version 2.5.1. The first ERR
 * describes *perr (hl7_ack_problem_from_error), then o->problems follow.
 * An invalid o->code or o->timestamp falls back to the automatic value and an
 * empty o->control_id to the default, so this never fails. o may be NULL. */
void hl7_ack_build_nak(const char *raw, size_t len, const hl7_error *perr, const hl7_ack_opts *o,
                       tbuf *out);

#endif
