/*
 * fhir_rest: the FHIR R4 REST API (JSON only) under /fhir on the engine's
 * HTTP server, over the FHIR resource store (store/fhir_store.h).
 *
 * Every request below /fhir enters through fhir_rest_handle(): the one
 * place where authentication and audit of the API are to be added. It runs
 * on the engine's event loop thread and answers before returning; writes
 * are committed (fsynced) before the answer goes out. docs/fhir.md lists
 * the interactions, search parameters, status codes and what is missing.
 */
#ifndef TERN_FHIR_REST_H
#define TERN_FHIR_REST_H

#include <jansson.h>
#include <stdbool.h>

#include "base/tbuf.h"

struct evhttp_request;

typedef struct fhir_rest fhir_rest;

/* The maximum request body the API reads (a transaction Bundle). */
#define FHIR_REST_MAX_BODY (16u << 20)

/* Opens the FHIR store at store_location and returns the API over it, or
 * NULL with a message in err. The caller frees it with fhir_rest_free. */
fhir_rest *fhir_rest_new(const char *store_location, tbuf *err);
/* Closes the store; NULL allowed. */
void fhir_rest_free(fhir_rest *r);
/* Encrypts the FHIR store's PHI at rest with keys (fhir_store_set_keys;
 * borrowed). */
struct keyring;
void fhir_rest_set_keys(fhir_rest *r, struct keyring *keys);

/* Answers one HTTP request whose path starts with "/fhir" (checked by the
 * caller with fhir_rest_path_is_ours): fhir_rest_answer on the request's
 * parts, then the reply. */
void fhir_rest_handle(fhir_rest *r, struct evhttp_request *req);

typedef enum fhir_method {
    FHIR_METHOD_OTHER = 0, /* HEAD, PATCH...: answered 405 */
    FHIR_METHOD_GET,
    FHIR_METHOD_POST,
    FHIR_METHOD_PUT,
    FHIR_METHOD_DELETE,
} fhir_method;

/* One request, without libevent: everything the API looks at. Every
 * pointer is borrowed for the call; NULL means the header is absent. */
typedef struct fhir_rest_request {
    fhir_method method;
    const char *path;  /* decoded path without the query: "/fhir/Patient/1" */
    const char *query; /* the raw query string after '?', or NULL */
    const char *host, *content_type, *if_match, *if_none_exist, *prefer;
    const char *body; /* body_len bytes, not NUL-terminated; NULL: no body */
    size_t body_len;
} fhir_rest_request;

/* The answer: a status, the headers to send (each "" or NULL when absent)
 * and the body (application/fhir+json when not empty). */
typedef struct fhir_rest_response {
    int status;
    char etag[32];
    char last_modified[40];
    const char *location_header; /* "Location", "Content-Location" or NULL */
    char location[512];
    const char *allow; /* static text for a 405, or NULL */
    tbuf body;         /* owned: fhir_rest_response_free */
} fhir_rest_response;

/* Runs one request against the store and fills *out (overwritten; the
 * caller frees it with fhir_rest_response_free). Never fails: every problem
 * is an OperationOutcome with a 4xx/5xx status. Used by fhir_rest_handle
 * and by fuzz/fuzz_http.c. */
void fhir_rest_answer(fhir_rest *r, const fhir_rest_request *req, fhir_rest_response *out);
void fhir_rest_response_free(fhir_rest_response *rs);

typedef enum fhir_apply_status {
    FHIR_APPLY_OK = 0,
    FHIR_APPLY_RETRY,    /* the store failed (busy, I/O): try again later */
    FHIR_APPLY_REJECTED, /* the Bundle itself is wrong: trying again will not help */
} fhir_apply_status;

/* Applies a batch or transaction Bundle (borrowed; references in it are
 * rewritten) to the store, as POST /fhir would: for the fhir-store channel
 * destination. A Patient entry `PUT Patient/ID` for an ID not in the store
 * whose identifier (system and value) matches exactly one stored Patient
 * updates that Patient instead (every reference to Patient/ID in the
 * Bundle follows), so results for a patient created through the API land
 * on it. On failure err says why. */
fhir_apply_status fhir_rest_apply_bundle(fhir_rest *r, json_t *bundle, tbuf *err);

/* Reads the current version of type/id as JSON text appended to out;
 * false (out unchanged) when it does not exist, is deleted or the store
 * fails. For the FHIR source, which reads the Patient an order names. */
bool fhir_rest_read(fhir_rest *r, const char *type, const char *id, tbuf *out);

/* A write made through the REST API: type/id now holds json[0..len)
 * (borrowed for the call); created tells a create from an update. */
typedef void (*fhir_rest_write_fn)(void *arg, const char *type, const char *id, bool created,
                                   const char *json, size_t len);

/* Calls fn(arg, ...) for every create and update made through
 * fhir_rest_handle() once it is committed (after the answer is sent; a
 * transaction that rolled back notifies nothing). Writes of
 * fhir_rest_apply_bundle (HL7 feeds) are not notified, so an order that
 * comes back as HL7 cannot loop. Returns false if fn/arg is already
 * subscribed. */
bool fhir_rest_subscribe(fhir_rest *r, fhir_rest_write_fn fn, void *arg);
/* Removes fn/arg; unknown pairs are ignored. */
void fhir_rest_unsubscribe(fhir_rest *r, fhir_rest_write_fn fn, void *arg);

/* True when the request path (no query) belongs to the API: "/fhir" or
 * "/fhir/...". */
bool fhir_rest_path_is_ours(const char *path);

#endif
