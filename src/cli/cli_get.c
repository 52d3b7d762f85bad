/*
 * cli_get: `tern get FILE PATH...` prints the unescaped value at each path,
 * one line per path (an empty line when absent), for every message in FILE.
 * Values holding line breaks (\.br\) are printed with them. The explicit
 * null "" prints as "" so that it can be told from empty.
 */
#include "cli/cli.h"

#include "hl7/hl7_batch.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

static const char get_usage[] =
    "usage: tern get FILE PATH...\n"
    "\n"
    "Prints the value at each PATH, unescaped and in UTF-8, one line per path; an\n"
    "empty line when the message has nothing there, and \"\" for the explicit HL7\n"
    "null. When FILE holds several messages, the lines for each message follow\n"
    "one another. FILE may be - for standard input.\n"
    "\n"
    "PATH syntax: SEG[n]-F[r].C.S, numbers from 1, [n] and [r] default to 1:\n"
    "  PID-5.1  PID-3[2].1  OBX[3]-5  MSH-9.2  MSH-1 (field separator)\n"
    "\n"
    "Exit codes: 0 ok, 1 FILE is not a valid message, 2 usage (e.g. a bad path).\n";

int cli_get(int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        if (c == 'h') {
            fputs(get_usage, stdout);
            return CLI_OK;
        }
        return cli_usage_error("get", "unknown option '%s'", argv[optind - 1]);
    }
    if (argc - optind < 2) return cli_usage_error("get", "needs a FILE and at least one PATH");
    const char *file = argv[optind];
    int npaths = argc - optind - 1;
    hl7_path *paths = calloc((size_t)npaths, sizeof(*paths));
    hl7_error err;
    for (int i = 0; i < npaths; i++) {
        if (hl7_path_parse(argv[optind + 1 + i], &paths[i], &err) != HL7_OK) {
            free(paths);
            return cli_usage_error("get", "%s", err.text);
        }
    }
    hl7_reader *r = hl7_reader_open(file, NULL, &err);
    if (!r) {
        free(paths);
        fprintf(stderr, "tern get: %s\n", err.text);
        return CLI_INVALID;
    }
    hl7_msg *m = hl7_msg_new(NULL);
    tbuf out = TBUF_INIT;
    int rc = CLI_OK;
    size_t messages = 0;
    for (;;) {
        bool done = false;
        hl7_status st = hl7_reader_next(r, m, NULL, &done, &err);
        if (st != HL7_OK) {
            char where[128];
            fprintf(stderr, "tern get: %s: %s: %s\n", file, hl7_error_where(&err, where, sizeof(where)),
                    err.text);
            rc = CLI_INVALID;
            continue;
        }
        if (done) break;
        messages++;
        for (int i = 0; i < npaths; i++) {
            tbuf_reset(&out);
            hl7_presence pr = hl7_get(m, &paths[i], &out);
            if (pr == HL7_NULL_VALUE) tbuf_puts(&out, "\"\"");
            tbuf_putc(&out, '\n');
            fwrite(out.p, 1, out.len, stdout);
        }
    }
    if (messages == 0 && rc == CLI_OK) {
        fprintf(stderr, "tern get: %s: no HL7 message found\n", file);
        rc = CLI_INVALID;
    }
    tbuf_free(&out);
    hl7_msg_free(m);
    hl7_reader_free(r);
    free(paths);
    return rc;
}
