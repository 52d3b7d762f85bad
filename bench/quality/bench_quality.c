/*
 * bench_quality: the per-message cost of data quality work on the engine's
 * hot path (validation and declarative transforms), next to parsing.
 *
 * A realistic ORU^R01 with 20 OBX (bench/common/oru20.c, shared with bench/fhir; PID-3 CX with
 * an M10 check digit and an HD assigning authority, PID-5/7/8, PV1, ORC,
 * OBR, NTE, 20 NM results with LOINC codes, UCUM units, ranges, flags and
 * OBX-14 dates) goes through six cases, each timed as the median of
 * `runs` runs of `iters` iterations, per message. The messages cycle through
 * `variants` versions of it (bench_oru20_vary: other patients, times, ids
 * and result values; the same panel of codes, units and ranges), as a lab
 * feed sends them, so that nothing measured is a memo that only a repeated
 * message would hit; -k 1 repeats the one message of earlier figures:
 *   (a) parse only
 *   (b) parse + baseline validation
 *   (c) parse + baseline + an ORU^R01 channel profile (structure and 7
 *       field rules)
 *   (d) (c) + declarative transforms (2 UCUM converts, a set, a copy)
 *   (e) (d) + a code map step (OBX-3 of all 20 OBX through a map of the 20
 *       LOINC codes, as a local-code map would be; each OBX-3 is rewritten, its system becoming
 *       http://loinc.org) and a Lua transform
 *       that walks the 20 OBX, reads OBX-3.1, OBX-5 and OBX-8, looks each
 *       code up with map() and sets OBX-18 on abnormal results.
 *   (f) (d) + the code map step alone: every declarative step, no Lua.
 * The table shows each case's µs/message and its cost over (a). Every case
 * must find no problem in the message (a sanity check that the message is
 * clean and the validator really ran); the program fails otherwise.
 *
 *     bench_quality [-n ITERATIONS] [-r RUNS] [-c CASES] [-k VARIANTS]
 *
 * -c a letter set ("c", "bc") runs only those cases, e.g. under perf.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/tbuf.h"
#include "bench_util.h"
#include "oru20.h"
#include "engine/config.h"
#include "engine/transform.h"
#include "hl7/hl7.h"
#include "quality/validate.h"
#include "term/codemap.h"

#include <unistd.h>

/* 2024-06-01 12:00:00 UTC: "now" for birth-future, fixed for reproducibility. */
#define BENCH_NOW ((time_t)1717243200)

/* --- the rule sets, as a channel would configure them --------------------------------- */

static validate_profile *oru_profile(void)
{
    static const validate_field_spec fields[] = {
        {.path = "PID-3", .required = true, .type = HL7_TYPE_CX, .max_reps = 5},
        {.path = "PID-5", .required = true, .type = HL7_TYPE_XPN},
        {.path = "PID-8", .required = true, .table = "0001"},
        {.path = "OBR-4", .required = true, .type = HL7_TYPE_CWE},
        {.path = "OBX-3", .required = true, .type = HL7_TYPE_CWE},
        {.path = "OBX-5", .required = true, .has_min = true, .min = 0, .when = "OBX-2=NM"},
        {.path = "OBX-11", .required = true, .table = "0085"},
    };
    validate_error err;
    validate_profile *p = validate_profile_new("ORU^R01", &err);
    if (!p || validate_profile_set_structure(
                  p, "MSH PID [PV1] { [ORC] OBR [{NTE}] { OBX [{NTE}] } }", &err) != VALIDATE_OK)
        goto fail;
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        if (validate_profile_add_field(p, &fields[i], &err) != VALIDATE_OK) goto fail;
    return p;
fail:
    fprintf(stderr, "bench_quality: profile: %s\n", err.text);
    exit(1);
}

static validator *make_validator(bool with_profile)
{
    validator *v = validator_new(NULL);
    validate_error err;
    if (with_profile && validator_add_profile(v, oru_profile(), &err) != VALIDATE_OK) {
        fprintf(stderr, "bench_quality: profile: %s\n", err.text);
        exit(1);
    }
    return v;
}

static const config_transform steps[] = {
    {.kind = CONFIG_TX_CONVERT, .line = 1, .code = "2345-7", .unit = "mmol/L", .mw = 180.16},
    {.kind = CONFIG_TX_CONVERT, .line = 2, .code = "2160-0", .unit = "umol/L", .mw = 113.12},
    {.kind = CONFIG_TX_SET, .line = 3, .path = "MSH-5", .value = "DWH"},
    {.kind = CONFIG_TX_COPY, .line = 4, .path = "OBR-2", .to = "ORC-2"},
};

/* (e): the Lua transform; written to a temporary file at start. */
static const char lua_src[] =
    "local abnormal = 0\n"
    "for obx in msg:segments(\"OBX\") do\n"
    "  local code = obx:get(\"3.1\")\n"
    "  local loinc = map(\"bench-loinc\", code)\n"
    "  local flag = obx:get(\"8\")\n"
    "  if loinc and flag and flag ~= \"N\" and obx:get(\"5\") then\n"
    "    obx:set(\"18\", \"ABNORMAL\")\n"
    "    abnormal = abnormal + 1\n"
    "  end\n"
    "end\n";

static codemap_registry *bench_maps(void)
{
    codemap_options o;
    codemap_options_default(&o);
    codemap *m = codemap_new("bench-loinc", &o);
    codemap_error ce;
    for (size_t i = 0; i < BENCH_PANEL; i++)
        if (codemap_add(m, NULL, bench_panel[i].code, "http://loinc.org", bench_panel[i].code, bench_panel[i].name, &ce) !=
            CODEMAP_OK) {
            fprintf(stderr, "bench_quality: map: %s\n", ce.text);
            exit(1);
        }
    codemap_registry *r = codemap_registry_new();
    if (codemap_registry_add(r, m, &ce) != CODEMAP_OK) {
        fprintf(stderr, "bench_quality: map: %s\n", ce.text);
        exit(1);
    }
    return r;
}

/* --- one case ------------------------------------------------------------------------- */

typedef struct bench_case {
    const char *label;
    validator *v;           /* NULL: no validation */
    transform_chain *chain; /* NULL: no transforms */
} bench_case;

typedef struct bench_input {
    tbuf *msgs; /* the variants, cycled through */
    size_t nmsgs, next;
    hl7_msg *m;
    validate_result r;
    tbuf err;
} bench_input;

/* Exits with the problems the validator found in a message that should be clean. */
static void __attribute__((noinline, noreturn)) unclean(const bench_case *c, const bench_input *in,
                                                        size_t k)
{
    tbuf s = TBUF_INIT;
    for (size_t i = 0; i < in->r.n; i++) {
        validate_problem_format(&in->r.v[i], &s);
        tbuf_puts(&s, "\n");
    }
    fprintf(stderr, "bench_quality: %s: message variant %zu should be clean, but:\n%.*s",
            c->label, k, (int)s.len, s.p);
    exit(1);
}

/* The next message through case c. Every message must be clean, which
 * checks that the message is right and that the validator really ran. */
static void run_once(const bench_case *c, bench_input *in)
{
    hl7_error he;
    size_t k = in->next;
    if (++in->next == in->nmsgs) in->next = 0;
    if (hl7_parse(in->m, in->msgs[k].p, in->msgs[k].len, &he) != HL7_OK) {
        fprintf(stderr, "bench_quality: parse: %s\n", he.text);
        exit(1);
    }
    if (c->v) {
        validate_message(c->v, in->m, BENCH_NOW, &in->r);
        if (in->r.n) unclean(c, in, k); /* warnings too */
    }
    if (c->chain) {
        tbuf_reset(&in->err);
        if (transform_apply(c->chain, in->m, &in->err) != 0) {
            fprintf(stderr, "bench_quality: transform: %.*s\n", (int)in->err.len, in->err.p);
            exit(1);
        }
    }
}

static bench_timing measure(const bench_case *c, bench_input *in, long iters, int runs)
{
    double *t = calloc((size_t)runs, sizeof(*t));
    for (long i = 0; i < iters / 10 + 1; i++) run_once(c, in); /* warm up */
    for (int k = 0; k < runs; k++) {
        double t0 = bench_now_ns();
        for (long i = 0; i < iters; i++) run_once(c, in);
        t[k] = (bench_now_ns() - t0) / (double)iters;
    }
    bench_timing tm = bench_summary(t, runs);
    free(t);
    return tm;
}

int main(int argc, char **argv)
{
    long iters = 20000;
    int runs = 7;
    long variants = 64;
    const char *only = "abcdef";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-n")) iters = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "-r")) runs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-c")) only = argv[i + 1];
        else if (!strcmp(argv[i], "-k")) variants = atol(argv[i + 1]);
    }
    if (iters <= 0 || runs <= 0 || variants <= 0 || variants > 100000 || argc % 2 == 0) {
        fprintf(stderr, "usage: bench_quality [-n ITERATIONS] [-r RUNS] [-c CASES] [-k VARIANTS]\n");
        return 2;
    }
    /* -k 1: the one message bench_oru20() writes; otherwise variants 0..k-1 */
    bench_input in = {calloc((size_t)variants, sizeof(tbuf)), (size_t)variants, 0,
                      hl7_msg_new(NULL), VALIDATE_RESULT_INIT, TBUF_INIT};
    size_t bytes = 0;
    for (size_t k = 0; k < in.nmsgs; k++) {
        if (in.nmsgs == 1)
            bench_oru20(&in.msgs[k]);
        else
            bench_oru20_vary(&in.msgs[k], (unsigned)k);
        bytes += in.msgs[k].len;
    }
    hl7_error he;
    if (hl7_parse(in.m, in.msgs[0].p, in.msgs[0].len, &he) != HL7_OK) {
        fprintf(stderr, "bench_quality: parse: %s\n", he.text);
        return 1;
    }
    uint32_t nseg = hl7_seg_count(in.m);

    validator *base = make_validator(false), *full = make_validator(true);
    tbuf err = TBUF_INIT;
    transform_chain *chain =
        transform_compile(steps, sizeof(steps) / sizeof(steps[0]), NULL, &err);
    char lua_path[] = "/tmp/bench_quality_XXXXXX";
    int lfd = mkstemp(lua_path);
    if (lfd < 0 || write(lfd, lua_src, sizeof lua_src - 1) != (ssize_t)(sizeof lua_src - 1)) {
        fprintf(stderr, "bench_quality: cannot write %s\n", lua_path);
        return 1;
    }
    close(lfd);
    codemap_registry *maps = bench_maps();
    config_transform steps_e[sizeof(steps) / sizeof(steps[0]) + 2];
    memcpy(steps_e, steps, sizeof steps);
    steps_e[4] = (config_transform){.kind = CONFIG_TX_MAP, .line = 5, .path = "OBX-3",
                                    .map = "bench-loinc"};
    steps_e[5] = (config_transform){.kind = CONFIG_TX_SCRIPT, .line = 6, .script = lua_path};
    transform_chain *chain_e =
        chain ? transform_compile(steps_e, sizeof steps_e / sizeof *steps_e, maps, &err) : NULL;
    /* (f): (e) without the Lua step: every declarative step */
    transform_chain *chain_f =
        chain_e ? transform_compile(steps_e, sizeof steps_e / sizeof *steps_e - 1, maps, &err)
                : NULL;
    unlink(lua_path);
    if (!chain || !chain_e || !chain_f) {
        fprintf(stderr, "bench_quality: %.*s\n", (int)err.len, err.p);
        return 1;
    }
    const bench_case cases[] = {
        {"(a) parse only", NULL, NULL},
        {"(b) parse + baseline validation", base, NULL},
        {"(c) (b) + ORU^R01 profile", full, NULL},
        {"(d) (c) + transforms", full, chain},
        {"(e) (d) + code map + Lua", full, chain_e},
        {"(f) (d) + code map, no Lua", full, chain_f},
    };
    size_t ncases = sizeof(cases) / sizeof(cases[0]);

    bench_print_machine("");
    printf("input:    ORU^R01, %zu bytes on average, %u segments (MSH PID PV1 ORC OBR NTE, 20 OBX "
           "NM with LOINC codes);\n          %s\n",
           bytes / in.nmsgs, nseg,
           in.nmsgs == 1 ? "the same message every time (-k 1)"
                         : "cycling through variants (other patients, ids, times, result values)");
    if (in.nmsgs > 1) printf("          variants: %zu\n", in.nmsgs);
    printf("rules:    baseline profile (20 field specs) + consistency rules; ORU^R01 profile: "
           "structure\n"
           "          \"MSH PID [PV1] { [ORC] OBR [{NTE}] { OBX [{NTE}] } }\", 7 field rules; "
           "transforms:\n"
           "          convert 2345-7 mg/dL->mmol/L, convert 2160-0 mg/dL->umol/L, set MSH-5, "
           "copy OBR-2->ORC-2;\n"
           "          (e) adds: map OBX-3 (20 OBX) through a 20-code map, and a Lua transform\n"
           "          walking the 20 OBX (get 3.1, 5, 8; map(); set 18 on abnormal ones)\n");
    printf("method:   median (and best) of %d runs x %ld messages per case (after %ld "
           "warm-up), one thread\n\n",
           runs, iters, iters / 10 + 1);
    printf("%-34s %13s %15s %11s %11s\n", "case", "us/message", "added over (a)", "best run",
           "best added");
    bench_timing parse = {0, 0};
    for (size_t i = 0; i < ncases; i++) {
        if (!strchr(only, (int)('a' + i)) && i > 0) continue;
        bench_timing t = measure(&cases[i], &in, iters, runs);
        if (i == 0) {
            parse = t;
            printf("%-34s %13.2f %15s %11.2f %11s\n", cases[i].label, t.median / 1000, "-",
                   t.best / 1000, "-");
        } else {
            printf("%-34s %13.2f %15.2f %11.2f %11.2f\n", cases[i].label, t.median / 1000,
                   (t.median - parse.median) / 1000, t.best / 1000, (t.best - parse.best) / 1000);
        }
    }
    printf("\ntargets:  added cost < 5 us for the declarative rules (c, d, f), < 20 us with Lua (e)\n");

    transform_free(chain);
    transform_free(chain_e);
    transform_free(chain_f);
    codemap_registry_free(maps);
    tbuf_free(&err);
    validator_free(base);
    validator_free(full);
    validate_result_free(&in.r);
    tbuf_free(&in.err);
    hl7_msg_free(in.m);
    for (size_t k = 0; k < in.nmsgs; k++) tbuf_free(&in.msgs[k]);
    free(in.msgs);
    return 0;
}
