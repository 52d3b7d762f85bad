/*
 * Fuzz target for the batch/stream reader: any input, read as a stream of
 * messages and batch envelopes, must terminate, report errors with offsets
 * inside the input, and give the same results through the memory path as
 * through a pipe-like chunked path would (the unit tests check the latter).
 */
#include "hl7/hl7_batch.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hl7_limits lim;
    hl7_limits_default(&lim);
    lim.max_field = 4096;
    lim.max_segments = 512;
    lim.max_message = 65536;
    hl7_reader *r = hl7_reader_mem((const char *)data, size, &lim);
    hl7_msg *m = hl7_msg_new(&lim);
    size_t rounds = 0;
    for (;;) {
        bool done = false;
        size_t off = 0;
        hl7_error err;
        hl7_status st = hl7_reader_next(r, m, &off, &done, &err);
        if (st != HL7_OK && (err.offset > size || err.text[0] == '\0')) abort();
        if (st == HL7_OK && done) break;
        if (st == HL7_OK && off > size) abort();
        if (++rounds > size + 16) abort(); /* must always make progress */
    }
    hl7_msg_free(m);
    hl7_reader_free(r);
    return 0;
}
