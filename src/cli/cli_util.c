/*
 * cli_util: helpers shared by the subcommands (error reporting, input).
 */
#include "cli/cli.h"

#include "engine/config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "tern %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'tern %s --help'.\n", cmd);
    return CLI_USAGE;
}

int cli_read_file(const char *path, tbuf *out, char *err, size_t errlen)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) {
        snprintf(err, errlen, "cannot open '%s': %s", path, strerror(errno));
        return -1;
    }
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) tbuf_put(out, chunk, n);
    int bad = ferror(f);
    if (f != stdin) fclose(f);
    if (bad) {
        snprintf(err, errlen, "cannot read '%s'", path);
        return -1;
    }
    return 0;
}

tern_config *cli_load_config(const char *cmd, const char *path)
{
    config_errors errs = CONFIG_ERRORS_INIT;
    tern_config *cfg = NULL;
    if (config_load(path, &cfg, &errs) != CONFIG_OK) {
        tbuf line = TBUF_INIT;
        for (size_t i = 0; i < errs.count; i++) {
            tbuf_reset(&line);
            config_error_format(&errs.items[i], &line);
            fprintf(stderr, "%s\n", line.p);
        }
        fprintf(stderr, "tern %s: cannot use the configuration %s\n", cmd, path);
        tbuf_free(&line);
    }
    config_errors_free(&errs);
    return cfg;
}
