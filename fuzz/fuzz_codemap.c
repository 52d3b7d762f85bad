/*
 * Fuzz target for code maps (term/codemap.h): the input is parsed both as
 * CSV and as a FHIR ConceptMap (JSON). Properties beyond "no crash, no
 * leak, no undefined behaviour": a failure says why and where (a line from
 * 1); a map that loads answers lookups of codes taken from the input
 * without crashing, with found results that carry a target code.
 */
#include "term/codemap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void probe(const codemap *m, const char *text, size_t len)
{
    /* look up every comma- or quote-separated piece of the first 4 KB */
    size_t n = len > 4096 ? 4096 : len, start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && text[i] != ',' && text[i] != '\n' && text[i] != '"') continue;
        codemap_result r;
        if (codemap_lookup(m, NULL, text + start, i - start, &r) && !r.target_code) abort();
        if (codemap_lookup(m, "http://loinc.org", text + start, i - start, &r) && !r.target_code)
            abort();
        start = i + 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    codemap_options o;
    codemap_options_default(&o);
    for (int caseless = 0; caseless < 2; caseless++) {
        codemap_match_parse(caseless ? "caseless" : "exact", &o.match, NULL);
        codemap *m = NULL;
        codemap_error err;
        if (codemap_parse_csv(text, size, "fuzz.csv", "fuzz", &o, &m, &err) == CODEMAP_OK) {
            probe(m, text, size);
            codemap_free(m);
        } else if (!err.text[0] || m) {
            abort();
        }
        m = NULL;
        if (codemap_parse_conceptmap(text, size, "fuzz.json", "fuzz", &o, &m, &err) ==
            CODEMAP_OK) {
            probe(m, text, size);
            codemap_free(m);
        } else if (!err.text[0] || m) {
            abort();
        }
    }
    return 0;
}
