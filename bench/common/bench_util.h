/*
 * bench_util: what the C benchmarks (bench/quality, bench/fhir) share
 * besides their input: a monotonic clock, the median and best of a series
 * of runs, and the machine line every benchmark prints first.
 */
#ifndef TERN_BENCH_UTIL_H
#define TERN_BENCH_UTIL_H

typedef struct bench_timing {
    double median, best; /* over runs, of the mean ns/message in a run */
} bench_timing;

/* Nanoseconds on the monotonic clock. */
double bench_now_ns(void);

/* Sorts t[0..runs) and returns its median and its smallest value. */
bench_timing bench_summary(double *t, int runs);

/* Prints "machine:  MODEL, N logical cores; compiler VERSION" and then
 * extra (e.g. "; jansson 2.14"; may be ""), from /proc/cpuinfo. */
void bench_print_machine(const char *extra);

#endif
