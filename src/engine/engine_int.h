/*
 * engine_int: what sources and destination drivers see of the engine.
 *
 * Sources (MLLP, file, HTTP) call eng_submit() for each received message and
 * get exactly one eng_done_fn callback once it is durably stored (or could
 * not be), carrying the ACK to answer with.
 *
 * Destination drivers (file, MLLP, HTTP) implement eng_dest_ops. The queue
 * worker calls deliver() for one message at a time per connection slot; the
 * driver reports the outcome, now or later, with eng_dest_result(). A driver
 * never touches the store.
 */
#ifndef TERN_ENGINE_INT_H
#define TERN_ENGINE_INT_H

#include <stdint.h>
#include <time.h>

#include "engine/engine.h"
#include "sec/sec.h"
#include "store/store.h"

struct evhttp;
struct fhir_rest;

typedef struct eng_channel eng_channel;
typedef struct eng_dest eng_dest;

/* stored: the message (accepted, rejected, filtered or duplicate) is
 * durable. accepted: the ACK is positive (AA/CA). ack/ack_len: the ACK wire
 * text, segments separated by CR; borrowed for the call. When storing failed,
 * stored is false and ack is a negative ACK saying so. */
typedef void (*eng_done_fn)(void *arg, bool stored, bool accepted, const char *ack,
                            size_t ack_len);

/* Hands one received message to the channel. raw is copied. done is called
 * exactly once, never from inside eng_submit. */
void eng_submit(eng_channel *ch, const char *raw, size_t len, eng_done_fn done, void *arg);

const config_channel *eng_channel_config(const eng_channel *ch);
struct event_base *eng_channel_base(const eng_channel *ch);
/* The shared admin/API HTTP server (config http.listen), or NULL when http
 * is disabled. HTTP sources without their own listen register their path
 * on it. */
struct evhttp *eng_channel_http(const eng_channel *ch);
/* The FHIR REST API and its store (fhir_rest.h), or NULL when neither the
 * HTTP listener nor a fhir-store destination asked for it. */
struct fhir_rest *eng_channel_fhir(const eng_channel *ch);
/* The conversion tables of fhir.tables, loaded once by the engine, or NULL
 * for the built-ins; borrowed until the engine is freed. */
typedef struct fhir_tables fhir_tables;
const fhir_tables *eng_channel_fhir_tables(const eng_channel *ch);
/* The engine's security context: HTTP sources authenticate through it
 * (sec_http_gate). Never NULL once the engine is built. */
sec_ctx *eng_channel_sec(const eng_channel *ch);
/* http.timeout, for HTTP servers of a channel's own (net_http_limit). */
uint64_t eng_channel_http_timeout(const eng_channel *ch);
/* The TLS context for a `tls:` block of this channel (a listener's when
 * server, else a sender's), owned by the engine (reloaded on SIGHUP) and
 * borrowed by the caller until the engine is freed. NULL with err (naming
 * the file and the reason) on failure. */
typedef struct tls_ctx tls_ctx;
tls_ctx *eng_channel_tls(const eng_channel *ch, const config_tls *t, bool server, tbuf *err);
/* Logs a line "channel NAME: text" to stderr with a timestamp. */
void eng_log(const eng_channel *ch, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* --- destinations ---------------------------------------------------------- */

typedef struct eng_delivery {
    int64_t id;        /* store message id */
    const char *raw;   /* borrowed for the deliver() call */
    size_t len;
    int64_t received_at;
    int attempts;      /* attempts made before this one */
} eng_delivery;

typedef struct eng_dest_ops {
    /* Prepares the driver (creates directories, clients). err on failure. */
    int (*open)(eng_dest *d, tbuf *err);
    /* Starts delivering one message; the driver copies what it keeps. */
    void (*deliver)(eng_dest *d, const eng_delivery *dl);
    /* Releases what open() made; deliveries in flight are abandoned (they
     * stay queued in the store and are sent again after a restart). */
    void (*close)(eng_dest *d);
} eng_dest_ops;

/* The outcome of one deliver(): STORE_SENT, STORE_RETRY (transient: the
 * retry policy decides when, or whether to give up) or STORE_FAILED
 * (permanent: straight to the error queue). error says why (NULL for SENT). */
void eng_dest_result(eng_dest *d, int64_t id, store_outcome outcome, const char *error);

const config_destination *eng_dest_config(const eng_dest *d);
eng_channel *eng_dest_channel(const eng_dest *d);
/* The driver's private state. */
void *eng_dest_impl(const eng_dest *d);
void eng_dest_set_impl(eng_dest *d, void *impl);

/* The HTTP POST client of the http and fhir destinations (dest_http.c):
 * `parallel` keep-alive connections, https through the destination's tls
 * block, the whole request bounded by timeout_ms. Each send reports its
 * outcome with eng_dest_result(): 2xx SENT; 408, 429, 5xx, no connection
 * or no answer RETRY; any other status FAILED, with the status, the URL
 * and the start of the body (with fhir_outcome, the diagnostics of an
 * OperationOutcome body instead). */
typedef struct eng_http_post eng_http_post;
typedef struct eng_http_post_opts {
    const char *url;          /* http:// or https:// */
    uint64_t timeout_ms;
    const config_header *headers; /* sent as given; a Content-Type here wins */
    size_t nheaders;
    const char *content_type; /* NULL: HL7 v2 (x-application/hl7-v2+er7) */
    const char *accept;       /* NULL: no Accept header */
    const char *authorization; /* NULL: no Authorization header */
    bool fhir_outcome;
} eng_http_post_opts;
/* o's strings are borrowed until eng_http_post_free. NULL with err on
 * failure (a bad URL, a TLS file). */
eng_http_post *eng_http_post_new(eng_dest *d, const eng_http_post_opts *o, tbuf *err);
/* POSTs body[0..len) (copied) for delivery id; at most `parallel` at once. */
void eng_http_post_send(eng_http_post *p, int64_t id, const char *body, size_t len);
/* Abandons requests in flight; NULL is fine. */
void eng_http_post_free(eng_http_post *p);

extern const eng_dest_ops eng_dest_file_ops;
extern const eng_dest_ops eng_dest_mllp_ops;
extern const eng_dest_ops eng_dest_http_ops;
extern const eng_dest_ops eng_dest_fhir_store_ops;
extern const eng_dest_ops eng_dest_fhir_ops;

/* --- sources ------------------------------------------------------------------ */

typedef struct eng_source eng_source;
typedef struct eng_source_ops {
    eng_source *(*start)(eng_channel *ch, tbuf *err);
    /* Stop taking new input; call done(arg) once in-flight submissions are
     * answered. */
    void (*stop)(eng_source *s, void (*done)(void *arg), void *arg);
    void (*free)(eng_source *s);
} eng_source_ops;

extern const eng_source_ops eng_source_mllp_ops;
extern const eng_source_ops eng_source_file_ops;
extern const eng_source_ops eng_source_http_ops;
extern const eng_source_ops eng_source_fhir_ops;

#endif
