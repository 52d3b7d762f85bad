/*
 * hl7_batch: reading a stream of HL7 v2 messages one at a time.
 *
 * Input is a file (or any fd, or a memory buffer) holding one message, many
 * messages one after another (blank lines between them are common and
 * fine), or HL7 batches: FHS BHS msg... BTS FTS, possibly several BHS..BTS
 * batches in one FHS..FTS file. The reader hands out one parsed message at a
 * time, so memory stays bounded by the largest single message whatever the
 * size of the input (a 2 GB batch file needs a few MB).
 *
 * Regular files are memory-mapped and read sequentially; pages already
 * consumed are dropped (madvise) so the resident size stays small. Pipes and
 * other fds are read in chunks into a buffer that grows only as far as the
 * largest message (bounded by hl7_limits.max_message).
 *
 * Messages are split with hl7_parse_prefix(): a message runs from an MSH line
 * to the next line that starts with MSH, FHS, BHS, BTS or FTS.
 *
 * Envelope checks: BTS-1 (when present and not empty) must equal the number
 * of messages in its batch, FTS-1 the number of batches in the file; an FHS
 * or BHS must be closed by its FTS/BTS; a BTS/FTS without its header is an
 * error. These problems are reported as HL7_ERR_BATCH by hl7_reader_next()
 * at the point they are found; reading can continue after any error.
 */
#ifndef TERN_HL7_BATCH_H
#define TERN_HL7_BATCH_H

#include "hl7/hl7.h"

typedef struct hl7_reader hl7_reader;

/* Opens path for reading ("-" is stdin). Returns NULL and fills err (code
 * HL7_ERR_IO) when it cannot be opened. lim NULL means defaults. */
hl7_reader *hl7_reader_open(const char *path, const hl7_limits *lim, hl7_error *err);
/* Reads from fd, which the reader borrows (does not close). */
hl7_reader *hl7_reader_fd(int fd, const hl7_limits *lim);
/* Reads from buf[0..len), which the reader borrows until freed. */
hl7_reader *hl7_reader_mem(const char *buf, size_t len, const hl7_limits *lim);
void hl7_reader_free(hl7_reader *r);

/* Reads the next message into m (m borrows the reader's buffer until the
 * next call). Returns:
 *   HL7_OK with *done false: m holds a message starting at *offset;
 *   HL7_OK with *done true: the input is exhausted (all checks passed);
 *   any error: err says what and where (err->offset is absolute in the
 *   input); the bad message or envelope segment has been skipped, and the
 *   next call continues with what follows. offset may be NULL. */
hl7_status hl7_reader_next(hl7_reader *r, hl7_msg *m, size_t *offset, bool *done,
                           hl7_error *err);

/* Counters so far: messages returned, batches (BHS) and files (FHS) seen. */
typedef struct hl7_reader_stats {
    size_t messages;
    size_t errors;
    size_t batches;
    size_t files;
    size_t bytes; /* bytes consumed from the input */
} hl7_reader_stats;

void hl7_reader_stats_get(const hl7_reader *r, hl7_reader_stats *st);

/* The raw text of the most recent FHS and BHS segments (without
 * terminator), or len 0 when none; valid until the next hl7_reader_next. */
hl7_span hl7_reader_fhs(const hl7_reader *r);
hl7_span hl7_reader_bhs(const hl7_reader *r);

#endif
