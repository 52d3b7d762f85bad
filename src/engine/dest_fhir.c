/*
 * dest_fhir: the `fhir` destination. Each message is converted with
 * fhir_convert() (the engine's fhir.tables) into a transaction Bundle that
 * is POSTed to the base URL of an external FHIR R4 server, as
 * application/fhir+json, with `Authorization: Bearer` when a token is
 * configured. The HTTP side is dest_http's client (eng_http_post): same
 * slots, timeout, https and outcome rules, with the error text taken from
 * the server's OperationOutcome.
 *
 * Outcomes: 2xx sent; 408, 429, 5xx, timeouts and connection errors are
 * retried; any other status (a 4xx: the server refused the Bundle or the
 * token) goes to the error queue. A message that does not parse or convert
 * goes to the error queue at once, without a request. The token is read
 * once at open (token_env from the environment) and never logged.
 */
#include "engine/engine_int.h"

#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "fhir/fhir_convert.h"

#define CT_FHIR_JSON "application/fhir+json"

typedef struct fhir_post_dest {
    hl7_msg *msg;
    fhir_converter *cv;  /* holds the Bundle of the message at hand */
    tbuf body;           /* its compact JSON text */
    fhir_options opt;    /* borrows the engine's tables */
    char *authorization; /* owned; "Bearer <token>" or NULL */
    eng_http_post *http;
} fhir_post_dest;

static void fhir_post_free(fhir_post_dest *f)
{
    if (!f) return;
    eng_http_post_free(f->http);
    hl7_msg_free(f->msg);
    fhir_converter_free(f->cv);
    tbuf_free(&f->body);
    if (f->authorization) {
        memset(f->authorization, 0, strlen(f->authorization));
        free(f->authorization);
    }
    free(f);
}

/* The bearer token from token or token_env; NULL (no error) when neither
 * is configured; -1 with err when token_env names an unset variable. */
static int read_token(const config_destination *cfg, char **auth, tbuf *err)
{
    const char *tok = cfg->fhir.token;
    *auth = NULL;
    if (cfg->fhir.token_env) {
        tok = getenv(cfg->fhir.token_env);
        if (!tok || !*tok) {
            tbuf_printf(err,
                        "token_env: the environment variable %s that should hold the bearer "
                        "token is not set (or empty); set it before starting tern",
                        cfg->fhir.token_env);
            return -1;
        }
    }
    if (!tok) return 0;
    tbuf t = TBUF_INIT;
    tbuf_printf(&t, "Bearer %s", tok);
    *auth = tbuf_detach(&t, NULL);
    return 0;
}

static int fhir_post_open(eng_dest *d, tbuf *err)
{
    const config_destination *cfg = eng_dest_config(d);
    fhir_post_dest *f = xcalloc(1, sizeof(*f));
    if (read_token(cfg, &f->authorization, err) != 0) goto fail;
    f->msg = hl7_msg_new(NULL);
    f->cv = fhir_converter_new();
    f->opt.tables = eng_channel_fhir_tables(eng_dest_channel(d));
    eng_http_post_opts o = {.url = cfg->http.url,
                            .timeout_ms = cfg->http.timeout_ms,
                            .content_type = CT_FHIR_JSON,
                            .accept = CT_FHIR_JSON,
                            .authorization = f->authorization,
                            .fhir_outcome = true};
    if (!(f->http = eng_http_post_new(d, &o, err))) goto fail;
    eng_dest_set_impl(d, f);
    return 0;
fail:
    fhir_post_free(f);
    return -1;
}

static void fhir_post_deliver(eng_dest *d, const eng_delivery *dl)
{
    fhir_post_dest *f = eng_dest_impl(d);
    ftree_node *bundle = NULL;
    fhir_error ferr;
    tbuf why = TBUF_INIT;
    if (hl7_parse(f->msg, dl->raw, dl->len, NULL) != HL7_OK)
        tbuf_puts(&why, "the message does not parse as HL7 v2; it cannot be converted to FHIR");
    else if (fhir_convert(f->cv, f->msg, &f->opt, &bundle, &ferr) != FHIR_OK)
        tbuf_printf(&why, "FHIR conversion: %s", ferr.text);
    if (bundle) { /* compact, reals with 17 digits: json_dumps(JSON_COMPACT) */
        tbuf_reset(&f->body);
        ftree_write(bundle, 17, &f->body);
        eng_http_post_send(f->http, dl->id, f->body.p, f->body.len); /* copies it */
        if (f->body.cap > (1u << 20)) tbuf_free(&f->body);           /* keep no huge buffer */
    } else {
        eng_dest_result(d, dl->id, STORE_FAILED, tbuf_cstr(&why));
    }
    tbuf_free(&why);
}

static void fhir_post_close(eng_dest *d)
{
    fhir_post_free(eng_dest_impl(d));
    eng_dest_set_impl(d, NULL);
}

const eng_dest_ops eng_dest_fhir_ops = {fhir_post_open, fhir_post_deliver, fhir_post_close};
