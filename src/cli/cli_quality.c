/*
 * cli_quality: `tern quality -c CONF [--channel NAME] [--since DURATION]`.
 *
 * Prints each channel's data quality over a period from the counts the
 * engine stores with every batch (store_quality_report): messages, the
 * share that passed every validation rule (the quality score), the shares
 * with warnings only and rejected by validation, and the completeness of
 * the key fields (present / messages whose segment is there), "-" when no
 * message had the segment.
 */
#include "cli/cli.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "engine/config.h"
#include "sec/sec.h"
#include "store/store.h"

static const char quality_usage[] =
    "usage: tern quality -c CONF [--channel NAME] [--since DURATION]\n"
    "\n"
    "Prints the data quality of each channel since DURATION ago (default 24h;\n"
    "e.g. 1h, 7d), counted by `tern serve` as messages arrive:\n"
    "  messages   messages validated\n"
    "  score      share that passed every rule (no error, no warning)\n"
    "  warnings   share that passed with warnings\n"
    "  rejected   share rejected (validation errors or unparseable)\n"
    "  PID-3 ...  completeness: share of the messages having the segment whose\n"
    "             field has a value (OBX-6: every numeric OBX has units);\n"
    "             - when no message had the segment\n"
    "\n"
    "options:\n"
    "  -c, --config FILE     the configuration (for the store's location)\n"
    "      --channel NAME    only this channel\n"
    "      --since DURATION  the period (default 24h)\n"
    "  -h, --help            show this help\n";

static double pct(uint64_t part, uint64_t whole)
{
    return whole ? 100.0 * (double)part / (double)whole : 0;
}

static bool print_row(void *ctx, const store_quality_row *r)
{
    int *rows = ctx;
    if ((*rows)++ == 0) {
        printf("%-24s %9s %7s %8s %8s", "channel", "messages", "score", "warnings", "rejected");
        for (int f = 0; f < STORE_QF_COUNT; f++)
            printf(" %6s", store_qf_name(f));
        printf("\n");
    }
    printf("%-24s %9llu %6.1f%% %7.1f%% %7.1f%%", r->channel, (unsigned long long)r->messages,
           pct(r->clean, r->messages), pct(r->warnings, r->messages), pct(r->errors, r->messages));
    for (int f = 0; f < STORE_QF_COUNT; f++) {
        if (!r->applicable[f])
            printf(" %6s", "-");
        else
            printf(" %5.1f%%", pct(r->present[f], r->applicable[f]));
    }
    printf("\n");
    return true;
}

int cli_quality(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"channel", required_argument, NULL, 'C'},
        {"since", required_argument, NULL, 's'},  {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *conf = NULL, *channel = NULL, *since = "24h";
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': conf = optarg; break;
        case 'C': channel = optarg; break;
        case 's': since = optarg; break;
        case 'h': fputs(quality_usage, stdout); return CLI_OK;
        default:
            return cli_usage_error("quality", "unknown or incomplete option '%s'",
                                   argv[optind - 1]);
        }
    }
    if (!conf) return cli_usage_error("quality", "give the configuration with -c FILE");
    if (optind < argc) return cli_usage_error("quality", "unexpected argument '%s'", argv[optind]);
    uint64_t ms;
    char why[160];
    if (config_parse_duration(since, &ms, why, sizeof why) != CONFIG_OK)
        return cli_usage_error("quality", "--since: %s", why);

    tern_config *cfg = cli_load_config("quality", conf);
    if (!cfg) return CLI_USAGE;
    /* counts only, no PHI; but the store is the store: a reader's role */
    sec_ctx *sec = NULL;
    sec_principal who = {0};
    if (cli_sec_gate("quality", &cfg->security, NULL, SEC_MESSAGE_READ, &sec, &who) != CLI_OK) {
        config_free(cfg);
        return CLI_INVALID;
    }
    sec_record_event(sec, &who, "quality.read", channel, NULL, "cli", "ok", NULL);
    sec_principal_clear(&who);
    cli_sec_close(sec);
    store *s = NULL;
    store_error serr;
    int rc = CLI_OK;
    if (store_open(cfg->store.path, NULL, &s, &serr) != STORE_OK) {
        fprintf(stderr, "tern quality: %s\n", serr.text);
        config_free(cfg);
        return CLI_INVALID;
    }
    int rows = 0;
    int64_t from = (int64_t)time(NULL) * 1000 - (int64_t)ms;
    if (store_quality_report(s, channel, from, print_row, &rows, &serr) != STORE_OK) {
        fprintf(stderr, "tern quality: %s\n", serr.text);
        rc = CLI_INVALID;
    } else if (!rows) {
        printf("no messages counted since %s ago%s%s\n", since, channel ? " in channel " : "",
               channel ? channel : "");
    }
    store_close(s);
    config_free(cfg);
    return rc;
}
