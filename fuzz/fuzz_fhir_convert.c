/*
 * Fuzz target for the HL7 v2 -> FHIR conversion (fhir_convert) and the
 * arena tree it builds (ftree). Properties checked, beyond "no crash, no
 * leak, no undefined behaviour":
 *   - ftree_write's compact text is byte for byte what jansson's json_dumps
 *     writes for the same Bundle (ftree_to_json), at both precisions Tern
 *     writes (15 for tern convert, 17 for the fhir destination);
 *   - that text parses back as JSON;
 *   - a converter reused for the same message writes the same text again.
 */
#include "fhir/fhir_convert.h"
#include "hl7/hl7.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The text ftree_write gives must be jansson's. */
static void check_text(const ftree_node *bundle, int precision, tbuf *text)
{
    tbuf_reset(text);
    ftree_write(bundle, precision, text);
    json_t *j = ftree_to_json(bundle);
    char *want = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(precision));
    if (!want || strcmp(want, tbuf_cstr(text))) abort();
    free(want);
    json_decref(j);
    json_error_t err;
    json_t *back = json_loadb(text->p, text->len, 0, &err);
    if (!back) abort();
    json_decref(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hl7_msg *m = hl7_msg_new(NULL);
    fhir_converter *cv = fhir_converter_new();
    tbuf first = TBUF_INIT, again = TBUF_INIT;
    ftree_node *bundle = NULL;
    if (hl7_parse(m, (const char *)data, size, NULL) != HL7_OK) goto done;
    fhir_options opt = {.base_url = size % 2 ? "https://fhir.example.org/r4" : NULL};
    if (fhir_convert(cv, m, &opt, &bundle, NULL) != FHIR_OK) {
        if (bundle) abort();
        goto done;
    }
    check_text(bundle, 15, &first);
    check_text(bundle, 17, &first);
    if (fhir_convert(cv, m, &opt, &bundle, NULL) != FHIR_OK) abort();
    ftree_write(bundle, 17, &again);
    if (strcmp(tbuf_cstr(&first), tbuf_cstr(&again))) abort();
done:
    tbuf_free(&first);
    tbuf_free(&again);
    fhir_converter_free(cv);
    hl7_msg_free(m);
    return 0;
}
