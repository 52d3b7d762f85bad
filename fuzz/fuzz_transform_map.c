/*
 * Fuzz target for the map step of declarative transforms on a coded field
 * (engine/transform.c, `map: OBX-3`): the input is an HL7 message. Beyond
 * "no crash, no leak, no undefined behaviour", the step must give the
 * message byte for byte what a reference gives: the reference reads the
 * code and system decoded (hl7_get_raw_at, hl7_unescape), looks them up
 * with codemap_lookup() and writes components 1-3 with hl7_set_raw_at(),
 * the step's first way of working. The step itself looks raw bytes up when
 * they need no decoding, splits the repetition in one pass and splices the
 * new text in (hl7_splice_raw_at), so a difference is a bug in a shortcut.
 * The map holds codes with delimiters, escapes and non-ASCII bytes, rows
 * with and without display and system, and lets unmapped codes pass.
 */
#include "engine/transform.h"
#include "term/codemap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct {
    const char *sys, *code, *tsys, *tcode, *disp;
} ROWS[] = {
    {NULL, "A", "http://loinc.org", "1-8", "One"},
    {NULL, "B", NULL, "2-6", NULL},
    {"LN", "A", "http://loinc.org", "1-8", "One (LN)"},
    {"S&Y", "C", "sys|a^b", "X&Y", "A^B|C~D\\E"},
    {NULL, "C", NULL, "C0", "No system"},
    {NULL, "A^B", "x", "AB", NULL},
    {NULL, "A&B", NULL, "A&B", "Same&code"},
    {NULL, "\xc3\x89", "utf", "E", "E acute"},
    {NULL, "2345-7", "http://loinc.org", "2345-7", "Glucose"},
    {NULL, "SAME", "LN", "SAME", "Same"},
};

static codemap_registry *maps;
static transform_chain *chain;

static void setup(void)
{
    codemap_options o;
    codemap_options_default(&o);
    o.unmapped = CODEMAP_UNMAPPED_PASS;
    codemap *m = codemap_new("fuzz", &o);
    for (size_t i = 0; i < sizeof ROWS / sizeof *ROWS; i++)
        if (codemap_add(m, ROWS[i].sys, ROWS[i].code, ROWS[i].tsys, ROWS[i].tcode, ROWS[i].disp,
                        NULL) != CODEMAP_OK)
            abort();
    maps = codemap_registry_new();
    if (codemap_registry_add(maps, m, NULL) != CODEMAP_OK) abort();
    static const config_transform step = {
        .kind = CONFIG_TX_MAP, .line = 1, .path = "OBX-3", .map = "fuzz"};
    tbuf err = TBUF_INIT;
    chain = transform_compile(&step, 1, maps, &err);
    if (!chain) abort();
    tbuf_free(&err);
}

static void put_escaped(const hl7_delims *d, const char *text, tbuf *out)
{
    if (text) hl7_escape(d, text, strlen(text), out);
}

/* The map step done the long way on every OBX (not at index 0); -1 at the
 * first value that cannot be stored, as the step. */
static int reference(hl7_msg *m, const codemap *cm)
{
    int rc = 0;
    const hl7_delims *d = hl7_delims_of(m);
    tbuf code = TBUF_INIT, sys = TBUF_INIT, out = TBUF_INIT;
    uint32_t occ = 0;
    for (uint32_t i = 1; i < hl7_seg_count(m); i++) {
        if (memcmp(hl7_seg_at(m, i)->id, "OBX", 3) != 0) continue;
        occ++;
        hl7_path rp = {"OBX", occ, 3, 1, 0, 0};
        hl7_span raw, comps[4];
        if (hl7_get_raw_at(m, i, &rp, &raw) < HL7_EMPTY) continue;
        uint32_t n = 0;
        const char *p = raw.p, *end = raw.p + raw.len;
        while (n < 4) {
            const char *q = d->comp ? memchr(p, d->comp, (size_t)(end - p)) : NULL;
            comps[n++] = (hl7_span){p, (size_t)((q ? q : end) - p)};
            if (!q) break;
            p = q + 1;
        }
        if (!comps[0].len || (comps[0].len == 2 && !memcmp(comps[0].p, "\"\"", 2))) continue;
        tbuf_reset(&code);
        hl7_unescape(d, hl7_charset_of(m), comps[0].p, comps[0].len, &code);
        const char *system = NULL;
        if (n >= 3 && comps[2].len && !(comps[2].len == 2 && !memcmp(comps[2].p, "\"\"", 2))) {
            tbuf_reset(&sys);
            hl7_unescape(d, hl7_charset_of(m), comps[2].p, comps[2].len, &sys);
            system = tbuf_cstr(&sys);
        }
        codemap_result r;
        if (!codemap_lookup(cm, system, tbuf_cstr(&code), code.len, &r)) continue;
        tbuf_reset(&out);
        put_escaped(d, r.target_code, &out);
        tbuf_putc(&out, d->comp);
        if (r.target_display)
            put_escaped(d, r.target_display, &out);
        else if (n >= 2)
            tbuf_put(&out, comps[1].p, comps[1].len);
        tbuf_putc(&out, d->comp);
        if (r.target_system)
            put_escaped(d, r.target_system, &out);
        else if (n >= 3)
            tbuf_put(&out, comps[2].p, comps[2].len);
        if (n == 4) tbuf_put(&out, comps[3].p - 1, (size_t)(end - comps[3].p + 1));
        while (out.len && out.p[out.len - 1] == d->comp)
            out.len--;
        if (out.len == raw.len && !memcmp(out.p, raw.p, raw.len)) continue;
        hl7_error he;
        if (hl7_set_raw_at(m, i, &rp, out.p ? out.p : "", out.len, &he) != HL7_OK) {
            rc = -1;
            break;
        }
    }
    tbuf_free(&code);
    tbuf_free(&sys);
    tbuf_free(&out);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!chain) setup();
    hl7_msg *a = hl7_msg_new(NULL), *b = hl7_msg_new(NULL);
    hl7_error he;
    if (hl7_parse(a, (const char *)data, size, &he) == HL7_OK &&
        hl7_parse(b, (const char *)data, size, &he) == HL7_OK) {
        tbuf err = TBUF_INIT, ta = TBUF_INIT, tb = TBUF_INIT;
        int rc = transform_apply(chain, a, &err);
        if (rc != reference(b, codemap_registry_get(maps, "fuzz"))) abort();
        hl7_serialize(a, &ta);
        hl7_serialize(b, &tb);
        if (rc == 0 && (ta.len != tb.len || memcmp(ta.p, tb.p, ta.len) != 0)) abort();
        tbuf_free(&err);
        tbuf_free(&ta);
        tbuf_free(&tb);
    }
    hl7_msg_free(a);
    hl7_msg_free(b);
    return 0;
}
