/*
 * bench_fhir: messages per second for HL7 v2 -> FHIR R4 conversion on one
 * thread (src/fhir/fhir_convert.c), next to parsing.
 *
 * One realistic ORU^R01 with 20 OBX (bench/common/oru20.c, shared with bench/quality: PID with two
 * CX identifiers, names, birth date, sex, address, phone; PV1, ORC, OBR,
 * NTE, 20 NM results with LOINC codes, UCUM units, ranges, flags and OBX-14
 * dates) goes through three cases, each timed as the median (and the best)
 * of `runs` runs of `iters` messages:
 *   (a) hl7_parse only
 *   (b) (a) + fhir_convert: the Bundle is built with a converter (its
 *       arena, digest context and buffers) reused from message to message,
 *       as `tern convert` and the FHIR destinations do
 *   (c) (b) + the Bundle written as compact JSON text into a reused buffer
 *       with ftree_write (the same bytes as jansson's dump), as
 *       `tern convert --compact` or the fhir destination sends it
 * The Bundle must hold 25 entries (Patient, Practitioner PV1-7, Location
 * PV1-3, Encounter, 20 Observations, one DiagnosticReport); the program fails
 * otherwise.
 *
 *     bench_fhir [-n ITERATIONS] [-r RUNS] [-c CASES]
 *
 * -c a letter set ("b", "bc") runs only those cases, e.g. under perf.
 * The (c) text is compared once at start with jansson's json_dumps of the
 * same Bundle (ftree_to_json): the program fails if they differ.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "base/tbuf.h"
#include "bench_util.h"
#include "oru20.h"
#include "fhir/fhir_convert.h"
#include "hl7/hl7.h"

/* --- one case ------------------------------------------------------------------------- */

#define BENCH_ENTRIES 25

enum { CASE_PARSE = 0, CASE_CONVERT, CASE_SERIALISE, NCASES };

typedef struct bench_input {
    const char *msg;
    size_t len;
    hl7_msg *m;
    fhir_converter *cv; /* the reused converter */
    ftree_node *bundle; /* the last Bundle */
    tbuf json;          /* (c): the reused output buffer */
    size_t last;        /* bytes of JSON of the last (c) message */
} bench_input;

static void run_once(int which, bench_input *in)
{
    hl7_error he;
    if (hl7_parse(in->m, in->msg, in->len, &he) != HL7_OK) {
        fprintf(stderr, "bench_fhir: parse: %s\n", he.text);
        exit(1);
    }
    if (which == CASE_PARSE) return;
    fhir_error fe;
    if (fhir_convert(in->cv, in->m, NULL, &in->bundle, &fe) != FHIR_OK) {
        fprintf(stderr, "bench_fhir: convert: %s\n", fe.text);
        exit(1);
    }
    if (ftree_size(ftree_get(in->bundle, "entry")) != BENCH_ENTRIES) {
        fprintf(stderr, "bench_fhir: the Bundle should hold %d entries\n", BENCH_ENTRIES);
        exit(1);
    }
    if (which == CASE_SERIALISE) {
        tbuf_reset(&in->json);
        ftree_write(in->bundle, 17, &in->json);
        in->last = in->json.len;
    }
}

static bench_timing measure(int which, bench_input *in, long iters, int runs)
{
    double *t = calloc((size_t)runs, sizeof(*t));
    if (!t) exit(1);
    for (long i = 0; i < iters / 10 + 1; i++) run_once(which, in); /* warm up */
    for (int k = 0; k < runs; k++) {
        double t0 = bench_now_ns();
        for (long i = 0; i < iters; i++) run_once(which, in);
        t[k] = (bench_now_ns() - t0) / (double)iters;
    }
    bench_timing tm = bench_summary(t, runs);
    free(t);
    return tm;
}

int main(int argc, char **argv)
{
    long iters = 5000;
    int runs = 7;
    const char *only = "abc";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-n")) iters = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "-r")) runs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-c")) only = argv[i + 1];
    }
    if (iters <= 0 || runs <= 0 || argc % 2 == 0) {
        fprintf(stderr, "usage: bench_fhir [-n ITERATIONS] [-r RUNS] [-c CASES]\n");
        return 2;
    }
    tbuf msg = TBUF_INIT;
    bench_oru20(&msg);
    bench_input in = {msg.p, msg.len, hl7_msg_new(NULL), fhir_converter_new(), NULL, TBUF_INIT, 0};
    run_once(CASE_SERIALISE, &in);
    json_t *j = ftree_to_json(in.bundle);
    char *jansson_text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (!jansson_text || strcmp(jansson_text, tbuf_cstr(&in.json))) {
        fprintf(stderr, "bench_fhir: ftree_write and jansson's json_dumps disagree\n");
        return 1;
    }
    free(jansson_text);
    uint32_t nseg = hl7_seg_count(in.m);

    static const char *const labels[] = {
        "(a) parse only",
        "(b) parse + fhir_convert",
        "(c) (b) + JSON text",
    };
    char jv[64];
    snprintf(jv, sizeof jv, "; jansson %s", jansson_version_str());
    bench_print_machine(jv);
    printf("input:    ORU^R01, %zu bytes, %u segments (MSH PID PV1 ORC OBR NTE, 20 OBX NM "
           "with LOINC codes)\n",
           msg.len, nseg);
    printf("output:   Bundle of %d entries (Patient, Practitioner, Location, Encounter, "
           "20 Observation, DiagnosticReport), %zu bytes compact JSON\n",
           BENCH_ENTRIES, in.last);
    printf("method:   median (and best) of %d runs x %ld messages per case (after %ld "
           "warm-up), one thread\n\n",
           runs, iters, iters / 10 + 1);
    printf("%-28s %12s %12s %12s %12s\n", "case", "msgs/s", "us/message", "best msgs/s",
           "best us/msg");
    for (int i = 0; i < NCASES; i++) {
        if (!strchr(only, 'a' + i)) continue;
        bench_timing t = measure(i, &in, iters, runs);
        printf("%-28s %12.0f %12.2f %12.0f %12.2f\n", labels[i], 1e9 / t.median, t.median / 1000,
               1e9 / t.best, t.best / 1000);
    }
    printf("\ntarget:   >= 20000 messages/s on one core for (c)\n");

    tbuf_free(&in.json);
    fhir_converter_free(in.cv);
    hl7_msg_free(in.m);
    tbuf_free(&msg);
    return 0;
}
