/*
 * cli_validate: `tern validate -c CONF --channel NAME FILE...`.
 *
 * Reads every message of every FILE (single messages, several per file,
 * batches) and checks it with the channel's validation: the baseline
 * profile, the channel's profiles, tables and severities, exactly as
 * `tern serve` would on arrival. Prints one line per problem,
 * `PATH: severity: text`, after a line naming the message
 * (`FILE: message N (MSH-10 ID)`), and a summary on stderr. Exit 1 when any
 * message has an error (or does not parse), 0 otherwise (warnings allowed).
 */
#include "cli/cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/config.h"
#include "hl7/hl7_batch.h"
#include "quality/quality_config.h"

static const char validate_usage[] =
    "usage: tern validate -c CONF --channel NAME FILE...\n"
    "\n"
    "Checks each message of each FILE (- is standard input) with the validation\n"
    "of channel NAME in CONF (the baseline profile unless turned off, the\n"
    "channel's profiles, tables and severities; docs/validation.md) and prints\n"
    "every problem as\n"
    "    PATH: severity: text\n"
    "under a line naming the message. Nothing is stored or sent.\n"
    "\n"
    "options:\n"
    "  -c, --config FILE   the configuration\n"
    "      --channel NAME  the channel whose rules apply\n"
    "  -q, --quiet         print only messages with problems\n"
    "  -h, --help          show this help\n"
    "\n"
    "Exit codes: 0 no errors (warnings allowed), 1 an error in some message or a\n"
    "file that cannot be read, 2 usage or configuration errors.\n";

typedef struct vrun {
    const validator *v;
    const hl7_limits *lim;
    bool quiet;
    size_t messages, with_errors, with_warnings, unreadable;
} vrun;

static void control_id(const hl7_msg *m, char *out, size_t cap)
{
    hl7_path p = {.seg = "MSH", .seg_occ = 1, .field = 10, .rep = 1};
    hl7_span s;
    out[0] = '\0';
    if (hl7_get_raw(m, &p, &s) == HL7_VALUE)
        snprintf(out, cap, "%.*s", (int)(s.len > 64 ? 64 : s.len), s.p);
}

static void check_one(vrun *vr, const char *path, const hl7_msg *m, size_t index,
                      validate_result *res, tbuf *line)
{
    validate_result_reset(res);
    validate_message(vr->v, m, time(NULL), res);
    vr->messages++;
    vr->with_errors += res->nerrors > 0;
    vr->with_warnings += res->nerrors == 0 && res->nwarnings > 0;
    if (vr->quiet && res->n == 0) return;
    char id[72];
    control_id(m, id, sizeof id);
    printf("%s: message %zu (MSH-10 %s): %s\n", path, index, id[0] ? id : "none",
           res->nerrors ? "errors" : res->nwarnings ? "warnings" : "ok");
    for (size_t i = 0; i < res->n; i++) {
        tbuf_reset(line);
        validate_problem_format(&res->v[i], line);
        printf("  %s\n", line->p);
    }
}

static int run_file(vrun *vr, const char *path)
{
    hl7_error err;
    hl7_reader *r = hl7_reader_open(path, vr->lim, &err);
    if (!r) {
        fprintf(stderr, "tern validate: %s\n", err.text);
        vr->unreadable++;
        return -1;
    }
    hl7_msg *m = hl7_msg_new(vr->lim);
    validate_result res = VALIDATE_RESULT_INIT;
    tbuf line = TBUF_INIT;
    size_t index = 0;
    for (;;) {
        size_t offset = 0;
        bool done = false;
        hl7_status st = hl7_reader_next(r, m, &offset, &done, &err);
        if (st != HL7_OK) {
            char where[128];
            index++;
            vr->messages++;
            vr->with_errors++;
            printf("%s: message %zu: errors\n  %s: error: %s\n", path, index,
                   hl7_error_where(&err, where, sizeof where), err.text);
            continue;
        }
        if (done) break;
        check_one(vr, path, m, ++index, &res, &line);
    }
    tbuf_free(&line);
    validate_result_free(&res);
    hl7_msg_free(m);
    hl7_reader_free(r);
    return 0;
}

static const config_channel *find_channel(const tern_config *c, const char *name)
{
    for (size_t i = 0; i < c->nchannels; i++)
        if (strcmp(c->channels[i].name, name) == 0) return &c->channels[i];
    return NULL;
}

int cli_validate(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"channel", required_argument, NULL, 'C'},
        {"quiet", no_argument, NULL, 'q'},        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *conf = NULL, *channel = NULL;
    bool quiet = false;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+c:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'c': conf = optarg; break;
        case 'C': channel = optarg; break;
        case 'q': quiet = true; break;
        case 'h': fputs(validate_usage, stdout); return CLI_OK;
        default:
            return cli_usage_error("validate", "unknown or incomplete option '%s'",
                                   argv[optind - 1]);
        }
    }
    if (!conf) return cli_usage_error("validate", "give the configuration with -c FILE");
    if (!channel) return cli_usage_error("validate", "name the channel with --channel NAME");
    if (optind >= argc) return cli_usage_error("validate", "give at least one FILE (or -)");

    tern_config *cfg = cli_load_config("validate", conf);
    if (!cfg) return CLI_USAGE;
    const config_channel *ch = find_channel(cfg, channel);
    if (!ch) {
        fprintf(stderr, "tern validate: %s has no channel named '%s'\n", conf, channel);
        config_free(cfg);
        return CLI_USAGE;
    }
    tbuf why = TBUF_INIT;
    unsigned line;
    quality_set *qs = quality_build(&ch->validation, &why, &line);
    if (!qs) {
        fprintf(stderr, "tern validate: %s:%u: %s\n", conf, line, why.p ? why.p : "invalid");
        tbuf_free(&why);
        config_free(cfg);
        return CLI_USAGE;
    }
    vrun vr = {.v = quality_validator(qs), .lim = &ch->limits, .quiet = quiet};
    for (int i = optind; i < argc; i++)
        run_file(&vr, argv[i]);
    fprintf(stderr,
            "tern validate: %zu messages: %zu with errors, %zu with warnings only%s\n",
            vr.messages, vr.with_errors, vr.with_warnings,
            vr.unreadable ? "; some files could not be read" : "");
    quality_free(qs);
    tbuf_free(&why);
    config_free(cfg);
    return vr.with_errors || vr.unreadable ? CLI_INVALID : CLI_OK;
}
