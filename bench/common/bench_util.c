/*
 * bench_util: see bench_util.h.
 */
#include "bench_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

bench_timing bench_summary(double *t, int runs)
{
    qsort(t, (size_t)runs, sizeof(*t), cmp_double);
    bench_timing tm = {runs % 2 ? t[runs / 2] : (t[runs / 2 - 1] + t[runs / 2]) / 2, t[0]};
    return tm;
}

void bench_print_machine(const char *extra)
{
    char line[512], model[256] = "unknown";
    int cores = 0;
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof(line), f)) {
        if (!strncmp(line, "processor", 9)) cores++;
        char *colon = strchr(line, ':');
        if (!strncmp(line, "model name", 10) && colon && !strcmp(model, "unknown")) {
            snprintf(model, sizeof(model), "%s", colon + 2);
            model[strcspn(model, "\n")] = '\0';
        }
    }
    if (f) fclose(f);
    printf("machine:  %s, %d logical cores; compiler %s%s\n", model, cores, __VERSION__, extra);
}
