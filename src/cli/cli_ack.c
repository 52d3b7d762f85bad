/*
 * cli_ack: `tern ack FILE` prints the acknowledgement Tern would send for the
 * message in FILE, so that an analyst can see (and a script can check) an ACK
 * without a live connection.
 *
 * A message that parses gets hl7_ack_build() with the options given; one that
 * does not gets the NAK of hl7_ack_build_nak(), the same bytes the MLLP
 * listener sends for unreadable input, plus the parse error on stderr and
 * exit 1. Segments end with CR on the wire; they are printed one per line
 * unless --raw asks for the exact bytes.
 */
#include "cli/cli.h"

#include "hl7/hl7_ack.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char ack_usage[] =
    "usage: tern ack [options] FILE\n"
    "\n"
    "Prints the acknowledgement (ACK) for the HL7 v2 message in FILE (- for\n"
    "standard input): MSH with sender and receiver swapped, MSA with the code and\n"
    "the original MSH-10, one ERR per --error/--warning. When FILE does not parse,\n"
    "prints the reject (AR, or CR in enhanced mode) naming the parse error, reports\n"
    "the error on stderr and exits 1.\n"
    "\n"
    "options:\n"
    "  --code CODE          MSA-1: AA AE AR (original mode) or CA CE CR (enhanced\n"
    "                       mode). Default: AA or CA by the message's MSH-15/16;\n"
    "                       AE or CE when an --error is given.\n"
    "  --text TEXT          MSA-3 text message.\n"
    "  --control-id ID      MSH-10 of the ACK. Default: ACK + the last 17 letters,\n"
    "                       digits, '.', '-', '_' of the original MSH-10.\n"
    "  --timestamp TS       MSH-7, YYYYMMDDHHMMSS[.SSSS][+/-ZZZZ]. Default: now.\n"
    "  --error SPEC         add an ERR of severity E; SPEC is CODE[:PATH[:TEXT]],\n"
    "                       CODE from HL7 table 0357 (101 required field missing,\n"
    "                       207 application internal error, ...), PATH where\n"
    "                       (PID-3, OBX[2]-5.1), TEXT for the user. Repeatable.\n"
    "  --warning SPEC       the same with severity W.\n"
    "  --raw                print the exact wire bytes (CR after each segment)\n"
    "                       instead of one segment per line.\n"
    "  -h, --help           show this help.\n"
    "\n"
    "example:\n"
    "  tern ack --error '101:PID-3:patient id missing' adt.hl7\n"
    "\n"
    "Exit codes: 0 ok, 1 FILE is not a valid message (or cannot be read),\n"
    "2 usage (unknown option, bad --code, --timestamp or --error).\n";

/* Everything the command line asked for. problems[].text and where point
 * into argv. */
typedef struct ack_args {
    hl7_ack_opts opts;
    hl7_ack_problem *problems;
    bool raw;
    const char *file;
} ack_args;

/* Parses CODE[:PATH[:TEXT]] into p; on failure writes why to why. */
static int parse_problem(const char *spec, hl7_ack_severity sev, hl7_ack_problem *p, char *why,
                         size_t whylen)
{
    memset(p, 0, sizeof(*p));
    p->severity = sev;
    char *end;
    unsigned long code = strtoul(spec, &end, 10);
    if (end == spec || spec[0] < '0' || spec[0] > '9' || code > 9999 || (*end && *end != ':')) {
        snprintf(why, whylen,
                 "'%s': expected CODE[:PATH[:TEXT]] with CODE a number from HL7 table 0357 "
                 "(e.g. 101:PID-3:patient id missing)",
                 spec);
        return -1;
    }
    p->code = (hl7_ack_errcode)code;
    if (!*end) return 0;
    const char *path = end + 1;
    const char *colon = strchr(path, ':');
    size_t plen = colon ? (size_t)(colon - path) : strlen(path);
    if (plen) {
        char buf[64];
        hl7_error err;
        if (plen >= sizeof(buf)) {
            snprintf(why, whylen, "'%s': the path is too long", spec);
            return -1;
        }
        memcpy(buf, path, plen);
        buf[plen] = '\0';
        if (hl7_path_parse(buf, &p->where, &err) != HL7_OK) {
            snprintf(why, whylen, "'%s': %s", spec, err.text);
            return -1;
        }
    }
    if (colon) p->text = colon + 1;
    return 0;
}

/* Returns CLI_OK, or the exit code to stop with (help printed: -1). */
static int parse_args(int argc, char **argv, ack_args *a)
{
    enum {
        OPT_CODE = 256,
        OPT_TEXT,
        OPT_CONTROL_ID,
        OPT_TIMESTAMP,
        OPT_ERROR,
        OPT_WARNING,
        OPT_RAW
    };
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {"code", required_argument, NULL, OPT_CODE},
        {"text", required_argument, NULL, OPT_TEXT},
        {"control-id", required_argument, NULL, OPT_CONTROL_ID},
        {"timestamp", required_argument, NULL, OPT_TIMESTAMP},
        {"error", required_argument, NULL, OPT_ERROR},
        {"warning", required_argument, NULL, OPT_WARNING},
        {"raw", no_argument, NULL, OPT_RAW},
        {NULL, 0, NULL, 0},
    };
    hl7_error err;
    char why[320];
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(ack_usage, stdout);
            return -1;
        case OPT_CODE:
            if (hl7_ack_code_parse(optarg, &a->opts.code, &err) != HL7_OK)
                return cli_usage_error("ack", "--code: %s", err.text);
            break;
        case OPT_TEXT:
            a->opts.text = optarg;
            break;
        case OPT_CONTROL_ID:
            a->opts.control_id = optarg;
            break;
        case OPT_TIMESTAMP:
            a->opts.timestamp = optarg;
            break;
        case OPT_ERROR:
        case OPT_WARNING:
            if (parse_problem(optarg, c == OPT_ERROR ? HL7_ACK_SEV_ERROR : HL7_ACK_SEV_WARNING,
                              &a->problems[a->opts.nproblems], why, sizeof(why)) < 0)
                return cli_usage_error("ack", "--%s %s", c == OPT_ERROR ? "error" : "warning", why);
            a->opts.nproblems++;
            break;
        case OPT_RAW:
            a->raw = true;
            break;
        case ':':
            return cli_usage_error("ack", "option '%s' needs a value", argv[optind - 1]);
        default:
            return cli_usage_error("ack", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (argc == optind) return cli_usage_error("ack", "needs a FILE (- for standard input)");
    if (argc - optind > 1)
        return cli_usage_error("ack", "takes one FILE, got %d arguments", argc - optind);
    a->file = argv[optind];
    a->opts.problems = a->problems;
    if (hl7_ack_opts_check(&a->opts, &err) != HL7_OK) return cli_usage_error("ack", "%s", err.text);
    return CLI_OK;
}

static void print_ack(const tbuf *ack, bool raw)
{
    for (size_t i = 0; i < ack->len; i++) {
        char ch = ack->p[i];
        putchar(ch == '\r' && !raw ? '\n' : ch);
    }
    fflush(stdout);
}

int cli_ack(int argc, char **argv)
{
    ack_args a = {.problems = calloc((size_t)argc + 1, sizeof(hl7_ack_problem))};
    tbuf in = TBUF_INIT, ack = TBUF_INIT;
    hl7_msg *m = NULL;
    char why[512];
    hl7_error err;
    int rc = parse_args(argc, argv, &a);
    if (rc != CLI_OK) {
        rc = rc < 0 ? CLI_OK : rc;
        goto done;
    }
    if (cli_read_file(a.file, &in, why, sizeof(why)) < 0) {
        fprintf(stderr, "tern ack: %s\n", why);
        rc = CLI_INVALID;
        goto done;
    }
    m = hl7_msg_new(NULL);
    if (hl7_parse(m, in.p ? in.p : "", in.len, &err) != HL7_OK) {
        hl7_ack_build_nak(in.p ? in.p : "", in.len, &err, &a.opts, &ack);
        print_ack(&ack, a.raw);
        fprintf(stderr, "tern ack: %s: %s (byte %zu)\n", a.file, err.text, err.offset);
        rc = CLI_INVALID;
        goto done;
    }
    if (hl7_ack_is_ack(m))
        fprintf(stderr,
                "tern ack: %s: note: the message is itself an ACK; an engine never "
                "acknowledges an acknowledgement\n",
                a.file);
    if (hl7_ack_build(m, &a.opts, &ack, &err) != HL7_OK) {
        fprintf(stderr, "tern ack: %s: %s\n", a.file, err.text);
        rc = CLI_INVALID;
        goto done;
    }
    print_ack(&ack, a.raw);
done:
    hl7_msg_free(m);
    tbuf_free(&in);
    tbuf_free(&ack);
    free(a.problems);
    return rc;
}
