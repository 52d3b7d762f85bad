/*
 * cli_parse: `tern parse [--stats] [limits] [FILE|-]`.
 *
 * Reads one message, many, or HL7 batch files through hl7_reader (so input
 * of any size streams in bounded memory) and prints one JSON object per
 * message per line (see hl7_json.h), or with --stats only counts and
 * throughput: the command to time the parser with. Every error is reported on
 * stderr with its byte offset and reading goes on; the exit code is 1 when
 * any message or envelope was invalid.
 */
#include "cli/cli.h"

#include "hl7/hl7_batch.h"
#include "hl7/hl7_json.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static const char parse_usage[] =
    "usage: tern parse [options] [FILE|-]\n"
    "\n"
    "Parses HL7 v2 messages (one, many, or FHS/BHS batch files) and prints each\n"
    "message as one line of JSON. Without FILE, or with -, reads standard input.\n"
    "\n"
    "options:\n"
    "  --stats               print only counts and throughput (messages, segments,\n"
    "                        bytes, errors, seconds, MB/s with MB = 10^6 bytes, msg/s)\n"
    "  --max-field BYTES     reject fields longer than BYTES (default 16777216)\n"
    "  --max-message BYTES   reject messages longer than BYTES (default 67108864)\n"
    "  --max-segments N      reject messages with more than N segments (default 65535)\n"
    "  -h, --help            show this help\n"
    "\n"
    "JSON shape: {\"offset\":N,\"segments\":[{\"id\":\"PID\",\"fields\":[...]}]}; each field\n"
    "is an array of repetitions, a repetition is a string or an array of\n"
    "components, a component a string or an array of subcomponents.\n"
    "Exit codes: 0 all valid, 1 some input invalid (errors on stderr), 2 usage.\n";

static int parse_size(const char *cmd, const char *opt, const char *v, size_t *out)
{
    char *end;
    unsigned long long n = strtoull(v, &end, 10);
    if (*v == '\0' || *end != '\0' || n == 0 || v[0] == '-')
        return cli_usage_error(cmd, "%s needs a positive number, not '%s'", opt, v);
    *out = (size_t)n;
    return CLI_OK;
}

/* Parses the limit options shared by parse and get. Returns CLI_OK or
 * CLI_USAGE. */
static int limit_option(int c, const char *arg, hl7_limits *lim)
{
    size_t v = 0;
    int rc = CLI_OK;
    switch (c) {
    case 'F':
        rc = parse_size("parse", "--max-field", arg, &v);
        lim->max_field = v;
        break;
    case 'M':
        rc = parse_size("parse", "--max-message", arg, &v);
        lim->max_message = v;
        break;
    case 'S':
        rc = parse_size("parse", "--max-segments", arg, &v);
        lim->max_segments = v > 0xffffffffu ? 0xffffffffu : (uint32_t)v;
        break;
    }
    return rc;
}

static void report(const char *path, const hl7_error *e)
{
    char where[128];
    fprintf(stderr, "tern parse: %s: %s: %s\n", path, hl7_error_where(e, where, sizeof(where)),
            e->text);
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int run(const char *path, const hl7_limits *lim, bool stats)
{
    hl7_error err;
    double t0 = now_seconds();
    hl7_reader *r = hl7_reader_open(path, lim, &err);
    if (!r) {
        fprintf(stderr, "tern parse: %s\n", err.text);
        return CLI_INVALID;
    }
    hl7_msg *m = hl7_msg_new(lim);
    tbuf out = TBUF_INIT;
    size_t segments = 0, errors = 0;
    for (;;) {
        size_t offset = 0;
        bool done = false;
        hl7_status st = hl7_reader_next(r, m, &offset, &done, &err);
        if (st != HL7_OK) {
            errors++;
            report(path, &err);
            continue;
        }
        if (done) break;
        segments += hl7_seg_count(m);
        if (stats) continue;
        hl7_json_write(m, true, offset, &out);
        tbuf_putc(&out, '\n');
        if (out.len > (1u << 16)) {
            fwrite(out.p, 1, out.len, stdout);
            tbuf_reset(&out);
        }
    }
    double secs = now_seconds() - t0;
    hl7_reader_stats rs;
    hl7_reader_stats_get(r, &rs);
    if (stats) {
        if (secs <= 0) secs = 1e-9;
        printf("messages  %zu\nsegments  %zu\nbytes     %zu\nerrors    %zu\n"
               "seconds   %.4f\nMB/s      %.1f\nmsg/s     %.0f\n",
               rs.messages, segments, rs.bytes, errors, secs, (double)rs.bytes / 1e6 / secs,
               (double)rs.messages / secs);
    } else {
        fwrite(out.p, 1, out.len, stdout);
    }
    tbuf_free(&out);
    hl7_msg_free(m);
    hl7_reader_free(r);
    return errors ? CLI_INVALID : CLI_OK;
}

int cli_parse(int argc, char **argv)
{
    static const struct option opts[] = {
        {"stats", no_argument, NULL, 's'},         {"max-field", required_argument, NULL, 'F'},
        {"max-message", required_argument, NULL, 'M'},
        {"max-segments", required_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    hl7_limits lim;
    hl7_limits_default(&lim);
    bool stats = false;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        switch (c) {
        case 's': stats = true; break;
        case 'h': fputs(parse_usage, stdout); return CLI_OK;
        case 'F':
        case 'M':
        case 'S':
            if (limit_option(c, optarg, &lim) != CLI_OK) return CLI_USAGE;
            break;
        default:
            return cli_usage_error("parse", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (argc - optind > 1) return cli_usage_error("parse", "takes one FILE (or -), got %d", argc - optind);
    const char *path = optind < argc ? argv[optind] : "-";
    return run(path, &lim, stats);
}
