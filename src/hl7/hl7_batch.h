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
 * Counts include messages that failed to parse (the sender counted them). A
 * file whose messages sit directly in FHS..FTS (no BHS) may give either 0 or
 * its number of messages in FTS-1. The envelope segments' field separator is
 * their 4th byte; BTS/FTS must use the one of the latest FHS/BHS ('|' when
 * none was seen).
 *
 * Text that is neither a message nor an envelope segment where one should
 * start (a comment line, a segment without its MSH, binary junk) is
 * reported as HL7_ERR_NO_MSH and skipped up to the next line that starts
 * with MSH, FHS, BHS, BTS or FTS; so is a message that fails to parse,
 * after its parser error is reported. Blank lines (CR, LF, spaces, tabs)
 * between messages and a UTF-8 byte order mark at the start are skipped.
 *
 * A message is known to be complete only when the next message's first line
 * (or the end of input) has been read: the reader suits files and pipes
 * that end, not live feeds (use MLLP for those).
 */
#ifndef TERN_HL7_BATCH_H
#define TERN_HL7_BATCH_H

#include "hl7/hl7.h"

typedef struct hl7_reader hl7_reader;

/* Opens path for reading ("-" is stdin). Returns NULL and fills err (code
 * HL7_ERR_IO) when it cannot be opened or is a directory. lim NULL means
 * defaults; lim->max_message also bounds the stream buffer. */
hl7_reader *hl7_reader_open(const char *path, const hl7_limits *lim, hl7_error *err);
/* Reads from fd, from its current position, which is offset 0 of the input.
 * The reader borrows fd (does not close it). A regular file is mapped (it
 * must not be truncated while being read: that raises SIGBUS); anything
 * else is read in chunks. Never NULL. */
hl7_reader *hl7_reader_fd(int fd, const hl7_limits *lim);
/* Like hl7_reader_fd but always reads in chunks, never maps: for a server
 * reading files that someone else might truncate meanwhile (a mapped file
 * cut short raises SIGBUS; a read just sees the end). Never NULL. */
hl7_reader *hl7_reader_fd_stream(int fd, const hl7_limits *lim);
/* Reads from buf[0..len), which the reader borrows until freed. Never NULL. */
hl7_reader *hl7_reader_mem(const char *buf, size_t len, const hl7_limits *lim);
void hl7_reader_free(hl7_reader *r);

/* Reads the next message into m (m borrows the reader's buffer until the
 * next call). m's own limits apply to the message; the reader's bound its
 * buffer, and a message larger than the reader's max_message is reported as
 * HL7_ERR_TOO_LARGE whatever m allows. Returns:
 *   HL7_OK with *done false: m holds a message starting at *offset;
 *   HL7_OK with *done true: the input is exhausted (all checks passed);
 *   any error: err says what and where (err->offset is absolute in the
 *   input); the bad message or envelope segment has been skipped, and the
 *   next call continues with what follows. offset and err may be NULL. */
hl7_status hl7_reader_next(hl7_reader *r, hl7_msg *m, size_t *offset, bool *done, hl7_error *err);

/* Counters so far: messages returned (HL7_OK), errors returned, batches
 * (BHS) and files (FHS) seen, bytes consumed. */
typedef struct hl7_reader_stats {
    size_t messages;
    size_t errors;
    size_t batches;
    size_t files;
    size_t bytes; /* bytes consumed from the input */
} hl7_reader_stats;

void hl7_reader_stats_get(const hl7_reader *r, hl7_reader_stats *st);

/* The raw text (without terminator) of the FHS and BHS that are open, i.e.
 * that enclose the message hl7_reader_next() just returned; len 0 when none
 * is open (before any, or after its FTS/BTS). The reader owns the text;
 * valid until the next hl7_reader_next. */
hl7_span hl7_reader_fhs(const hl7_reader *r);
hl7_span hl7_reader_bhs(const hl7_reader *r);

#endif
