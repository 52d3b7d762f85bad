/*
 * cli_convert: `tern convert FILE...` prints, for every message of every
 * FILE (single messages, several per file, batches), the FHIR R4
 * transaction Bundle that fhir_convert() makes of it, as pretty JSON, one
 * Bundle after another. A message that does not parse or is not converted
 * is reported on stderr (FILE: message N (MSH-10 ID): reason) and makes the
 * exit code 1; the others are still printed. One converter (with the
 * Bundle's arena) and one text buffer serve every message. --compact writes the tree
 * directly (ftree_write); the indented form goes through jansson.
 */
#include "cli/cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhir/fhir_convert.h"
#include "hl7/hl7_batch.h"

static const char convert_usage[] =
    "usage: tern convert [options] FILE...\n"
    "\n"
    "Converts each HL7 v2 message of each FILE (- is standard input; batches and\n"
    "files with several messages are read message by message) to a FHIR R4\n"
    "transaction Bundle and prints it as JSON. Supported: ADT^A01 A02 A03 A04\n"
    "A08 A11 A13 A28 A31 A40, ORU^R01, ORM^O01, OML^O21, RDE^O11, VXU^V04,\n"
    "MDM^T02, SIU^S12 (docs/fhir.md has the mapping).\n"
    "\n"
    "options:\n"
    "      --offset TZ     offset for times that have none (nor in MSH-7),\n"
    "                      e.g. +01:00; default Z (UTC)\n"
    "      --base URL      server base for absolute entry fullUrls\n"
    "      --tables FILE   JSON file of lookup tables that extend or override\n"
    "                      the built-in ones (docs/fhir.md, \"Tables file\")\n"
    "      --compact       one Bundle per line instead of indented JSON\n"
    "  -h, --help          show this help\n"
    "\n"
    "Exit codes: 0 every message converted, 1 a message could not be read or\n"
    "converted (reason on stderr), 2 usage error.\n";

typedef struct crun {
    fhir_options opt;
    bool compact;
    size_t failed;
    fhir_converter *cv; /* holds the Bundle of the message at hand */
    tbuf text;          /* its text */
} crun;

static void message_id(const hl7_msg *m, char *out, size_t cap)
{
    hl7_span s;
    out[0] = '\0';
    if (hl7_raw(m, 0, 10, 1, 1, 1, &s) == HL7_VALUE)
        snprintf(out, cap, "%.*s", (int)(s.len > 64 ? 64 : s.len), s.p);
}

static void convert_one(crun *cr, const char *path, const hl7_msg *m, size_t index)
{
    ftree_node *bundle = NULL;
    fhir_error err;
    if (fhir_convert(cr->cv, m, &cr->opt, &bundle, &err) != FHIR_OK) {
        char id[72];
        message_id(m, id, sizeof id);
        fprintf(stderr, "tern convert: %s: message %zu (MSH-10 %s): %s\n", path, index,
                id[0] ? id : "none", err.text);
        cr->failed++;
        return;
    }
    if (cr->compact) { /* the same bytes as json_dumps(JSON_COMPACT | JSON_REAL_PRECISION(15)) */
        tbuf_reset(&cr->text);
        ftree_write(bundle, 15, &cr->text);
        tbuf_putc(&cr->text, '\n');
        fwrite(cr->text.p, 1, cr->text.len, stdout);
    } else {
        json_t *j = ftree_to_json(bundle);
        char *text = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(15));
        puts(text);
        free(text);
        json_decref(j);
    }
}

static void run_file(crun *cr, const char *path)
{
    hl7_error err;
    hl7_reader *r = hl7_reader_open(path, NULL, &err);
    if (!r) {
        fprintf(stderr, "tern convert: %s\n", err.text);
        cr->failed++;
        return;
    }
    hl7_msg *m = hl7_msg_new(NULL);
    size_t index = 0;
    for (;;) {
        bool done = false;
        hl7_status st = hl7_reader_next(r, m, NULL, &done, &err);
        if (st != HL7_OK) {
            char where[128];
            fprintf(stderr, "tern convert: %s: message %zu: %s: %s\n", path, ++index,
                    hl7_error_where(&err, where, sizeof where), err.text);
            cr->failed++;
            continue;
        }
        if (done) break;
        convert_one(cr, path, m, ++index);
    }
    hl7_msg_free(m);
    hl7_reader_free(r);
}

int cli_convert(int argc, char **argv)
{
    static const struct option opts[] = {
        {"offset", required_argument, NULL, 'o'},
        {"base", required_argument, NULL, 'b'},
        {"tables", required_argument, NULL, 't'},
        {"compact", no_argument, NULL, 'C'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    crun cr = {.compact = false};
    const char *tables_path = NULL;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        switch (c) {
        case 'o':
            cr.opt.default_offset = optarg;
            break;
        case 'b':
            cr.opt.base_url = optarg;
            break;
        case 't':
            tables_path = optarg;
            break;
        case 'C':
            cr.compact = true;
            break;
        case 'h':
            fputs(convert_usage, stdout);
            return CLI_OK;
        default:
            return cli_usage_error("convert", "unknown or incomplete option '%s'",
                                   argv[optind - 1]);
        }
    }
    if (cr.opt.default_offset) {
        tbuf probe = TBUF_INIT;
        bool ok = !strcmp(cr.opt.default_offset, "Z") ||
                  (strlen(cr.opt.default_offset) == 6 && cr.opt.default_offset[3] == ':' &&
                   fhir_datetime("202401011200", cr.opt.default_offset, false, &probe));
        tbuf_free(&probe);
        if (!ok)
            return cli_usage_error("convert", "--offset '%s': expected Z or +HH:MM / -HH:MM",
                                   cr.opt.default_offset);
    }
    if (optind >= argc) return cli_usage_error("convert", "give at least one FILE (or -)");
    fhir_tables *tables = NULL;
    if (tables_path) {
        char err[512];
        if (!fhir_tables_load(tables_path, &tables, err, sizeof err))
            return cli_usage_error("convert", "--tables %s", err);
        cr.opt.tables = tables;
    }
    cr.cv = fhir_converter_new();
    for (int i = optind; i < argc; i++)
        run_file(&cr, argv[i]);
    fhir_converter_free(cr.cv);
    tbuf_free(&cr.text);
    fhir_tables_free(tables);
    return cr.failed ? CLI_INVALID : CLI_OK;
}
