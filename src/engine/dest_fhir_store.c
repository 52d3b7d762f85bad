/*
 * dest_fhir_store: the `fhir-store` destination. Each message is converted
 * with fhir_convert() into a transaction Bundle, which is applied to the
 * engine's own FHIR store as POST /fhir would (fhir_rest_apply_bundle), so
 * resources from HL7 feeds can be read and searched through the FHIR API.
 *
 * Outcomes: a message that does not parse, a type the converter does not
 * handle, or a Bundle the store rejects are permanent failures (the error
 * queue: sending again cannot help until the converter or the message is
 * changed); a store that is busy or failing is a transient one (retried).
 * Runs on the engine's loop thread, like the FHIR API, which shares the
 * store handle.
 */
#include "engine/engine_int.h"

#include <stdlib.h>

#include "base/mem.h"
#include "fhir/fhir_convert.h"
#include "fhir/fhir_rest.h"

typedef struct fhir_dest {
    hl7_msg *msg;
    fhir_converter *cv; /* holds the Bundle of the message at hand */
    fhir_rest *api; /* the engine's; borrowed */
    fhir_options opt; /* borrows the engine's tables (fhir.tables) */
} fhir_dest;

static int fhir_open(eng_dest *d, tbuf *err)
{
    fhir_rest *api = eng_channel_fhir(eng_dest_channel(d));
    if (!api) {
        tbuf_puts(err, "the FHIR store is not open (fhir.store)");
        return -1;
    }
    fhir_dest *f = xcalloc(1, sizeof(*f));
    f->msg = hl7_msg_new(NULL);
    f->cv = fhir_converter_new();
    f->api = api;
    f->opt.tables = eng_channel_fhir_tables(eng_dest_channel(d));
    eng_dest_set_impl(d, f);
    return 0;
}

static void fhir_deliver(eng_dest *d, const eng_delivery *dl)
{
    fhir_dest *f = eng_dest_impl(d);
    tbuf why = TBUF_INIT;
    ftree_node *bundle = NULL;
    json_t *json = NULL;
    fhir_error ferr;
    store_outcome outcome = STORE_FAILED;
    if (hl7_parse(f->msg, dl->raw, dl->len, NULL) != HL7_OK) {
        tbuf_puts(&why, "the message does not parse as HL7 v2; it cannot be converted to FHIR");
    } else if (fhir_convert(f->cv, f->msg, &f->opt, &bundle, &ferr) != FHIR_OK) {
        tbuf_printf(&why, "FHIR conversion: %s", ferr.text);
    } else { /* the store works on jansson values */
        json = ftree_to_json(bundle);
        fhir_apply_status st = fhir_rest_apply_bundle(f->api, json, &why);
        outcome = st == FHIR_APPLY_OK      ? STORE_SENT
                  : st == FHIR_APPLY_RETRY ? STORE_RETRY
                                           : STORE_FAILED;
    }
    json_decref(json);
    eng_dest_result(d, dl->id, outcome, outcome == STORE_SENT ? NULL : tbuf_cstr(&why));
    tbuf_free(&why);
}

static void fhir_close(eng_dest *d)
{
    fhir_dest *f = eng_dest_impl(d);
    if (!f) return;
    hl7_msg_free(f->msg);
    fhir_converter_free(f->cv);
    free(f);
    eng_dest_set_impl(d, NULL);
}

const eng_dest_ops eng_dest_fhir_store_ops = {fhir_open, fhir_deliver, fhir_close};
