/*
 * oru20: the ORU^R01 with 20 OBX that the C benchmarks (bench/quality,
 * bench/fhir) time, so that their figures are about the same message: PID-3
 * CX identifiers (one with an M10 check digit) with an HD assigning
 * authority, PID-5/7/8/11/13, PV1, ORC, OBR, an NTE, and 20 NM results with
 * LOINC codes, UCUM units, ranges, flags and OBX-14 dates.
 *
 * bench_oru20_vary() makes the same message for another patient and
 * another run of the same panel, as a lab feed sends them: control id,
 * times, patient (identifier with its check digit, name, birth date, sex),
 * visit and order numbers, every result value and its abnormal flag change;
 * the codes, units, ranges and message layout stay. A benchmark that cycles
 * through several of them measures no memo that only a repeated message
 * would hit.
 */
#ifndef TERN_BENCH_ORU20_H
#define TERN_BENCH_ORU20_H

#include "base/tbuf.h"

typedef struct bench_obs {
    const char *code, *name, *value, *units, *range, *flag;
} bench_obs;

#define BENCH_PANEL 20
extern const bench_obs bench_panel[BENCH_PANEL];

/* Appends the message in wire form (segments end in CR) to out. */
void bench_oru20(tbuf *out);

/* Appends variant k (any k; the same k gives the same bytes) to out. */
void bench_oru20_vary(tbuf *out, unsigned k);

#endif
