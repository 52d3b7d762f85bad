/*
 * cli_config: `tern config check -c FILE` validates a configuration.
 *
 * On success it prints one line that summarizes what the engine would run,
 * "FILE: ok (N channels: NAME (SOURCE → DESTINATIONS), ...)", and exits 0.
 * Otherwise it prints every error the loader collected, one per line as
 * "FILE:LINE:COL: error: TEXT" (the format editors and CI jump to), and
 * exits 1. The checks themselves live in engine/config.c.
 */
#include "cli/cli.h"

#include "engine/config.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

static const char config_usage[] =
    "usage: tern config check -c FILE\n"
    "\n"
    "Works with Tern's configuration file (YAML; see docs/configuration.md).\n"
    "\n"
    "commands:\n"
    "  check     validate FILE and print a summary of its channels, or every\n"
    "            error as FILE:LINE:COL: error: TEXT\n"
    "\n"
    "Exit codes: 0 valid, 1 invalid (errors on stderr), 2 usage.\n";

static const char check_usage[] =
    "usage: tern config check -c FILE\n"
    "\n"
    "Loads FILE as the engine would and checks every key and value: unknown\n"
    "keys, wrong types, missing required keys, duplicate names, two sources on\n"
    "one port, bad ports, durations, sizes and filename templates. Every\n"
    "problem is reported, not only the first, as\n"
    "  FILE:LINE:COL: error: TEXT\n"
    "On success prints\n"
    "  FILE: ok (N channels: NAME (SOURCE → DESTINATIONS), ...)\n"
    "\n"
    "options:\n"
    "  -c, --config FILE   the configuration file to check\n"
    "  -h, --help          show this help\n"
    "\n"
    "Exit codes: 0 valid, 1 invalid (errors on stderr), 2 usage.\n";

static void put_addr(tbuf *out, const config_addr *a)
{
    if (strchr(a->host, ':'))
        tbuf_printf(out, "[%s]:%u", a->host, a->port);
    else
        tbuf_printf(out, "%s:%u", a->host, a->port);
}

static void put_source(tbuf *out, const tern_config *c, const config_channel *ch)
{
    const config_source *s = &ch->source;
    switch (s->type) {
    case CONFIG_SOURCE_MLLP:
        tbuf_puts(out, "mllp ");
        put_addr(out, &s->listen);
        break;
    case CONFIG_SOURCE_FILE:
        tbuf_printf(out, "file %s/%s", s->file.dir, s->file.glob);
        break;
    case CONFIG_SOURCE_HTTP:
        tbuf_puts(out, "http ");
        put_addr(out, s->listen.host ? &s->listen : &c->http.listen);
        tbuf_printf(out, "/channels/%s/messages", ch->name);
        break;
    case CONFIG_SOURCE_FHIR:
        tbuf_printf(out, "fhir %s as %s", s->fhir.nresources ? s->fhir.resources[0] : "-",
                    s->fhir.orm ? "ORM^O01" : "OML^O21");
        break;
    }
}

static void summarize(const tern_config *c, tbuf *out)
{
    tbuf_printf(out, "%s: ok (%zu channel%s", c->file, c->nchannels, c->nchannels == 1 ? "" : "s");
    for (size_t i = 0; i < c->nchannels; i++) {
        const config_channel *ch = &c->channels[i];
        tbuf_printf(out, "%s %s%s (", i ? "," : ":", ch->name, ch->enabled ? "" : " [disabled]");
        put_source(out, c, ch);
        tbuf_puts(out, " → ");
        if (!ch->ndestinations) tbuf_puts(out, "store only");
        for (size_t j = 0; j < ch->ndestinations; j++)
            tbuf_printf(out, "%s%s%s", j ? ", " : "", ch->destinations[j].name,
                        ch->destinations[j].enabled ? "" : " [disabled]");
        tbuf_putc(out, ')');
    }
    tbuf_puts(out, ")\n");
}

static int config_check(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *file = NULL;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+c:h", opts, NULL)) != -1) {
        if (c == 'h') {
            fputs(check_usage, stdout);
            return CLI_OK;
        }
        if (c == 'c') {
            file = optarg;
            continue;
        }
        if (optopt == 'c') return cli_usage_error("config check", "-c needs a FILE");
        return cli_usage_error("config check", "unknown option '%s'", argv[optind - 1]);
    }
    if (optind < argc)
        return cli_usage_error("config check", "unexpected argument '%s' (the file goes after -c)",
                               argv[optind]);
    if (!file) return cli_usage_error("config check", "needs -c FILE");

    tern_config *cfg = NULL;
    config_errors errs = CONFIG_ERRORS_INIT;
    tbuf out = TBUF_INIT;
    int rc = CLI_OK;
    if (config_load(file, &cfg, &errs) == CONFIG_OK) {
        summarize(cfg, &out);
        fputs(out.p, stdout);
    } else {
        for (size_t i = 0; i < errs.count; i++) {
            tbuf_reset(&out);
            config_error_format(&errs.items[i], &out);
            tbuf_putc(&out, '\n');
            fputs(out.p, stderr);
        }
        if (errs.dropped)
            fprintf(stderr, "%s: %zu more errors not shown; fix the ones above first\n", file,
                    errs.dropped);
        rc = CLI_INVALID;
    }
    tbuf_free(&out);
    config_errors_free(&errs);
    config_free(cfg);
    return rc;
}

int cli_config(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "check")) return config_check(argc - 1, argv + 1);
    if (argc >= 2 &&
        (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help"))) {
        fputs(config_usage, stdout);
        return CLI_OK;
    }
    if (argc < 2) return cli_usage_error("config", "needs a command: check");
    if (argv[1][0] == '-') return cli_usage_error("config", "unknown option '%s'", argv[1]);
    return cli_usage_error("config", "unknown command '%s'; the commands are: check", argv[1]);
}
