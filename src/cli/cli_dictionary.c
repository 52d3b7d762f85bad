/*
 * cli_dictionary: `tern dictionary -c CONF [--format md|html] [-o FILE]`.
 *
 * Writes a data dictionary of a configuration: for each channel, where its
 * messages come from and go to, and a table of every field the channel
 * reads or writes, with what reads it (routing, search keys, file names),
 * the validation rules that apply to it (the baseline profile's, the
 * channel's profiles and lists), the transform steps that change it, and
 * the destinations that receive it. It is generated from the configuration
 * itself, so it never drifts from what runs.
 *
 * The rows are gathered into a small list per channel (field path, then
 * one text per column), merged by path and sorted by segment order of
 * appearance in a typical message (MSH first), then rendered as Markdown or
 * as one self-contained HTML page.
 */
#include "cli/cli.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "engine/config.h"

enum col { COL_READ, COL_RULES, COL_TRANSFORM, COL_NCOLS };

typedef struct drow {
    char path[48];
    tbuf col[COL_NCOLS];
} drow;

typedef struct dtable {
    drow *rows;
    size_t n, cap;
} dtable;

static drow *row_for(dtable *t, const char *path)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->rows[i].path, path) == 0) return &t->rows[i];
    t->rows = xgrow(t->rows, &t->cap, t->n + 1, sizeof *t->rows);
    drow *r = &t->rows[t->n++];
    memset(r, 0, sizeof *r);
    snprintf(r->path, sizeof r->path, "%s", path);
    return r;
}

static void add(dtable *t, const char *path, enum col c, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void add(dtable *t, const char *path, enum col c, const char *fmt, ...)
{
    drow *r = row_for(t, path);
    if (r->col[c].len) tbuf_puts(&r->col[c], "; ");
    va_list ap;
    va_start(ap, fmt);
    tbuf_vprintf(&r->col[c], fmt, ap);
    va_end(ap);
}

static void table_free(dtable *t)
{
    for (size_t i = 0; i < t->n; i++)
        for (int c = 0; c < COL_NCOLS; c++)
            tbuf_free(&t->rows[i].col[c]);
    free(t->rows);
}

/* Segment order for sorting: the usual order in ADT/ORU messages. */
static int seg_rank(const char *path)
{
    static const char *const order[] = {"MSH", "EVN", "PID", "PD1", "NK1", "PV1", "PV2", "ORC",
                                        "OBR", "OBX", "NTE", "DG1", "AL1", "IN1"};
    for (size_t i = 0; i < sizeof order / sizeof *order; i++)
        if (strncmp(path, order[i], 3) == 0) return (int)i;
    return 100;
}

static unsigned field_no(const char *path)
{
    const char *dash = strchr(path, '-');
    return dash ? (unsigned)strtoul(dash + 1, NULL, 10) : 0;
}

static int cmp_rows(const void *a, const void *b)
{
    const drow *x = a, *y = b;
    int ra = seg_rank(x->path), rb = seg_rank(y->path);
    if (ra != rb) return ra - rb;
    int s = strncmp(x->path, y->path, 3);
    if (s) return s;
    unsigned fa = field_no(x->path), fb = field_no(y->path);
    if (fa != fb) return fa < fb ? -1 : 1;
    return strcmp(x->path, y->path);
}

/* What the engine itself reads from every message (engine/msg_meta.c). */
static void engine_reads(dtable *t, const config_channel *ch)
{
    add(t, "MSH-3", COL_READ, "stored and searchable (sending application)");
    add(t, "MSH-4", COL_READ, "stored and searchable (sending facility)%s",
        ch->duplicates.enabled ? "; duplicate detection key" : "");
    add(t, "MSH-5", COL_READ, "stored (receiving application)");
    add(t, "MSH-6", COL_READ, "stored (receiving facility)");
    add(t, "MSH-9", COL_READ, "message type: stored, searchable%s",
        ch->filter.ntypes || ch->filter.nexclude ? ", channel filter" : "");
    add(t, "MSH-10", COL_READ, "control id: stored, searchable, echoed in MSA-2%s",
        ch->duplicates.enabled ? "; duplicate detection key" : "");
    add(t, "MSH-15", COL_READ, "accept acknowledgment type (enhanced mode)");
    add(t, "MSH-16", COL_READ, "application acknowledgment type (enhanced mode)");
    add(t, "PID-3.1", COL_READ, "patient id: stored, searchable");
    add(t, "ORC-2.1", COL_READ, "placer order number: searchable");
    add(t, "ORC-3.1", COL_READ, "filler order number: searchable");
    add(t, "OBR-2.1", COL_READ, "placer order number: searchable");
    add(t, "OBR-3.1", COL_READ, "filler order number: searchable");
    if (ch->filter.script)
        add(t, "(any)", COL_READ, "filter script %s (may read any field)", ch->filter.script);
}

/* The baseline profile (docs/validation.md, "Baseline profile"). */
static void baseline_rules(dtable *t)
{
    static const struct {
        const char *path, *rule;
    } rules[] = {
        {"MSH-7", "DTM"},
        {"MSH-9", "required; message type in table 0076, event in 0003"},
        {"MSH-10", "required"},
        {"MSH-11", "table 0103"},
        {"MSH-12", "required; table 0104"},
        {"PID-3", "CX (ID, check digit, assigning authority, type in 0203)"},
        {"PID-5", "XPN"},
        {"PID-7", "DTM; not in the future (birth-future)"},
        {"PID-8", "table 0001; sex-specific codes (sex-specific)"},
        {"PID-29", "DTM; not before PID-7 (death-before-birth)"},
        {"PV1-2", "table 0004"},
        {"PV1-44", "DTM; not before PID-7 (before-birth)"},
        {"OBR-7", "DTM; not before PID-7 (before-birth)"},
        {"OBX-2", "table 0125"},
        {"OBX-3", "sex-specific codes; physiologic limits by code"},
        {"OBX-5", "NM when OBX-2 is NM; physiologic limits (physiologic)"},
        {"OBX-8", "table 0078"},
        {"OBX-11", "table 0085"},
        {"OBX-14", "DTM; not before PID-7 (before-birth)"},
        {"DG1-3", "sex-specific and age-restricted diagnoses"},
    };
    for (size_t i = 0; i < sizeof rules / sizeof *rules; i++)
        add(t, rules[i].path, COL_RULES, "baseline: %s", rules[i].rule);
}

static void profile_rules(dtable *t, const config_validation *v)
{
    for (size_t i = 0; i < v->nprofiles; i++) {
        const config_vprofile *p = &v->profiles[i];
        for (size_t k = 0; k < p->nfields; k++) {
            const config_vfield *f = &p->fields[k];
            tbuf d = TBUF_INIT;
            if (f->required) tbuf_puts(&d, "required, ");
            if (f->type) tbuf_printf(&d, "%s, ", f->type);
            if (f->table) tbuf_printf(&d, "table %s, ", f->table);
            if (f->max_len) tbuf_printf(&d, "at most %u characters, ", f->max_len);
            if (f->max_reps) tbuf_printf(&d, "at most %u repetitions, ", f->max_reps);
            if (f->has_min) tbuf_printf(&d, "at least %g, ", f->min);
            if (f->has_max) tbuf_printf(&d, "at most %g, ", f->max);
            if (f->when) tbuf_printf(&d, "when %s, ", f->when);
            if (d.len >= 2) d.p[d.len -= 2] = '\0';
            add(t, f->path, COL_RULES, "profile %s (line %u): %s", p->message, f->line,
                d.len ? d.p : "checked");
            tbuf_free(&d);
        }
    }
}

static void transforms(dtable *t, const config_channel *ch)
{
    for (size_t i = 0; i < ch->ntransforms; i++) {
        const config_transform *x = &ch->transforms[i];
        unsigned n = (unsigned)i + 1;
        switch (x->kind) {
        case CONFIG_TX_SET:
            add(t, x->path, COL_TRANSFORM, "step %u: set to \"%s\"", n, x->value);
            break;
        case CONFIG_TX_COPY:
            add(t, x->path, COL_TRANSFORM, "step %u: copied to %s", n, x->to);
            add(t, x->to, COL_TRANSFORM, "step %u: copied from %s", n, x->path);
            break;
        case CONFIG_TX_DELETE:
            add(t, x->path, COL_TRANSFORM, "step %u: segment deleted", n);
            break;
        case CONFIG_TX_CONVERT:
            add(t, "OBX-3.1", COL_READ, "selects the OBX of unit conversions");
            add(t, "OBX-5", COL_TRANSFORM, "step %u: when OBX-3.1 = %s%s%s: converted to %s%s", n,
                x->code, x->from ? " and OBX-6.1 = " : "", x->from ? x->from : "", x->unit,
                x->mw > 0 ? " (molar mass given)" : "");
            add(t, "OBX-6", COL_TRANSFORM, "step %u: when OBX-3.1 = %s: set to %s^%s^UCUM", n,
                x->code, x->unit, x->unit);
            add(t, "OBX-7", COL_TRANSFORM, "step %u: when OBX-3.1 = %s: range converted to %s", n,
                x->code, x->unit);
            break;
        case CONFIG_TX_MAP:
            add(t, x->path, COL_TRANSFORM, "step %u: mapped through code map %s", n, x->map);
            break;
        case CONFIG_TX_SCRIPT:
            add(t, "(any)", COL_TRANSFORM, "step %u: Lua script %s (may read and write any field)",
                n, x->script);
            break;
        }
    }
}

static void filename_reads(dtable *t, const config_channel *ch)
{
    for (size_t i = 0; i < ch->ndestinations; i++) {
        const config_destination *d = &ch->destinations[i];
        if (d->type != CONFIG_DEST_FILE) continue;
        for (size_t k = 0; k < d->file.filename.nparts; k++) {
            const config_tpl_part *p = &d->file.filename.parts[k];
            if (p->kind != CONFIG_TPL_PATH) continue;
            char path[48];
            hl7_path_format(&p->path, path, sizeof path);
            add(t, path, COL_READ, "file name of destination %s", d->name);
        }
    }
}

static void describe_source(const config_channel *ch, tbuf *out)
{
    const config_source *s = &ch->source;
    switch (s->type) {
    case CONFIG_SOURCE_MLLP: tbuf_printf(out, "MLLP on %s:%u", s->listen.host, s->listen.port); break;
    case CONFIG_SOURCE_FILE: tbuf_printf(out, "files %s in %s", s->file.glob, s->file.dir); break;
    case CONFIG_SOURCE_HTTP: tbuf_printf(out, "HTTP POST /channels/%s/messages", ch->name); break;
    case CONFIG_SOURCE_FHIR: tbuf_printf(out, "FHIR API writes (%s)", s->fhir.orm ? "ORM^O01" : "OML^O21"); break;
    }
}

static void describe_dest(const config_destination *d, tbuf *out)
{
    switch (d->type) {
    case CONFIG_DEST_FILE:
        tbuf_printf(out, "%s: files %s/%s", d->name, d->file.dir, d->file.filename.source);
        break;
    case CONFIG_DEST_MLLP: tbuf_printf(out, "%s: MLLP %s:%u", d->name, d->mllp.host, d->mllp.port); break;
    case CONFIG_DEST_HTTP: tbuf_printf(out, "%s: HTTP POST %s", d->name, d->http.url); break;
    case CONFIG_DEST_FHIR_STORE: tbuf_printf(out, "%s: FHIR store (/fhir)", d->name); break;
    case CONFIG_DEST_FHIR: tbuf_printf(out, "%s: FHIR server %s", d->name, d->http.url); break;
    }
}

/* --- rendering ---------------------------------------------------------------- */

static void md_cell(tbuf *out, const tbuf *c)
{
    for (size_t i = 0; c->p && i < c->len; i++) {
        if (c->p[i] == '|') tbuf_puts(out, "\\|");
        else tbuf_putc(out, c->p[i]);
    }
}

static void html_text(tbuf *out, const char *s, size_t n)
{
    for (size_t i = 0; s && i < n; i++) {
        switch (s[i]) {
        case '<': tbuf_puts(out, "&lt;"); break;
        case '>': tbuf_puts(out, "&gt;"); break;
        case '&': tbuf_puts(out, "&amp;"); break;
        case '"': tbuf_puts(out, "&quot;"); break;
        default: tbuf_putc(out, s[i]);
        }
    }
}

static void html_str(tbuf *out, const char *s)
{
    html_text(out, s, s ? strlen(s) : 0);
}

static void render_channel(const config_channel *ch, bool html, tbuf *out)
{
    dtable t = {0};
    engine_reads(&t, ch);
    filename_reads(&t, ch);
    if (ch->validation.baseline) baseline_rules(&t);
    profile_rules(&t, &ch->validation);
    transforms(&t, ch);
    qsort(t.rows, t.n, sizeof *t.rows, cmp_rows);

    tbuf src = TBUF_INIT, dests = TBUF_INIT, filt = TBUF_INIT;
    describe_source(ch, &src);
    for (size_t i = 0; i < ch->ndestinations; i++) {
        if (i) tbuf_puts(&dests, "; ");
        describe_dest(&ch->destinations[i], &dests);
    }
    if (!ch->ndestinations) tbuf_puts(&dests, "none (stored only)");
    for (size_t i = 0; i < ch->filter.ntypes; i++)
        tbuf_printf(&filt, "%s%s", i ? ", " : "", ch->filter.types[i]);
    if (!filt.len) tbuf_puts(&filt, "every type");
    const char *heads[] = {"Field", "Read by", "Validation", "Transformations"};
    if (html) {
        tbuf_puts(out, "<h2>Channel ");
        html_str(out, ch->name);
        tbuf_puts(out, "</h2>\n<dl><dt>Source</dt><dd>");
        html_text(out, src.p, src.len);
        tbuf_puts(out, "</dd><dt>Accepts</dt><dd>");
        html_text(out, filt.p, filt.len);
        tbuf_puts(out, "</dd><dt>Destinations (each receives the transformed message)</dt><dd>");
        html_text(out, dests.p, dests.len);
        tbuf_puts(out, "</dd></dl>\n<table>\n<tr>");
        for (int c = 0; c < 4; c++)
            tbuf_printf(out, "<th>%s</th>", heads[c]);
        tbuf_puts(out, "</tr>\n");
        for (size_t i = 0; i < t.n; i++) {
            tbuf_puts(out, "<tr><td><code>");
            html_str(out, t.rows[i].path);
            tbuf_puts(out, "</code></td>");
            for (int c = 0; c < COL_NCOLS; c++) {
                tbuf_puts(out, "<td>");
                html_text(out, t.rows[i].col[c].p, t.rows[i].col[c].len);
                tbuf_puts(out, "</td>");
            }
            tbuf_puts(out, "</tr>\n");
        }
        tbuf_puts(out, "</table>\n");
    } else {
        tbuf_printf(out, "## Channel %s\n\n", ch->name);
        if (ch->description) tbuf_printf(out, "%s\n\n", ch->description);
        tbuf_printf(out, "- Source: %s\n- Accepts: %s\n- Destinations (each receives the "
                         "transformed message): %s\n\n",
                    src.p, filt.p, dests.p);
        tbuf_printf(out, "| %s | %s | %s | %s |\n|---|---|---|---|\n", heads[0], heads[1], heads[2],
                    heads[3]);
        for (size_t i = 0; i < t.n; i++) {
            tbuf_printf(out, "| `%s` |", t.rows[i].path);
            for (int c = 0; c < COL_NCOLS; c++) {
                tbuf_putc(out, ' ');
                md_cell(out, &t.rows[i].col[c]);
                tbuf_puts(out, " |");
            }
            tbuf_putc(out, '\n');
        }
        tbuf_putc(out, '\n');
    }
    tbuf_free(&src);
    tbuf_free(&dests);
    tbuf_free(&filt);
    table_free(&t);
}

static void render(const tern_config *cfg, bool html, tbuf *out)
{
    if (html) {
        tbuf_puts(out, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                       "<title>Tern data dictionary</title><style>"
                       "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
                       "td,th{border:1px solid #bbb;padding:4px 8px;vertical-align:top;"
                       "text-align:left}th{background:#eee}dt{font-weight:bold}"
                       "</style></head><body>\n<h1>Data dictionary: ");
        html_str(out, cfg->file);
        tbuf_puts(out, "</h1>\n");
    } else {
        tbuf_printf(out, "# Data dictionary: %s\n\n", cfg->file);
        tbuf_puts(out, "Generated by `tern dictionary` from the configuration. For each channel, "
                       "every field Tern reads or writes: what reads it, the validation rules "
                       "that apply to it, and the transform steps that change it.\n\n");
    }
    for (size_t i = 0; i < cfg->nchannels; i++)
        render_channel(&cfg->channels[i], html, out);
    if (html) tbuf_puts(out, "</body></html>\n");
}

static const char dictionary_usage[] =
    "usage: tern dictionary -c CONF [--format md|html] [-o FILE]\n"
    "\n"
    "Writes the data dictionary of a configuration: for each channel its source,\n"
    "filter and destinations, and a table of every field it reads or writes with\n"
    "what reads it, the validation rules that apply and the transform steps that\n"
    "change it.\n"
    "\n"
    "options:\n"
    "  -c, --config FILE   the configuration\n"
    "      --format F      md (Markdown, the default) or html (one page)\n"
    "  -o, --output FILE   write there instead of standard output\n"
    "  -h, --help          show this help\n";

int cli_dictionary(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"format", required_argument, NULL, 'f'},
        {"output", required_argument, NULL, 'o'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *conf = NULL, *format = "md", *output = NULL;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+c:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': conf = optarg; break;
        case 'f': format = optarg; break;
        case 'o': output = optarg; break;
        case 'h': fputs(dictionary_usage, stdout); return CLI_OK;
        default:
            return cli_usage_error("dictionary", "unknown or incomplete option '%s'",
                                   argv[optind - 1]);
        }
    }
    if (!conf) return cli_usage_error("dictionary", "give the configuration with -c FILE");
    if (strcmp(format, "md") != 0 && strcmp(format, "html") != 0)
        return cli_usage_error("dictionary", "--format is md or html, not '%s'", format);
    if (optind < argc)
        return cli_usage_error("dictionary", "unexpected argument '%s'", argv[optind]);
    tern_config *cfg = cli_load_config("dictionary", conf);
    if (!cfg) return CLI_USAGE;
    tbuf out = TBUF_INIT;
    render(cfg, strcmp(format, "html") == 0, &out);
    int rc = CLI_OK;
    FILE *f = output ? fopen(output, "w") : stdout;
    if (!f || fwrite(out.p, 1, out.len, f) != out.len || (output && fclose(f) != 0)) {
        fprintf(stderr, "tern dictionary: cannot write %s\n", output ? output : "the output");
        rc = CLI_INVALID;
    }
    tbuf_free(&out);
    config_free(cfg);
    return rc;
}
