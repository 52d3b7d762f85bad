/*
 * sec_http: authentication and authorization of HTTP requests, and the
 * login endpoint, for every handler on Tern's HTTP servers.
 *
 * sec_http_authenticate reads "Authorization: Bearer TOKEN" (an API token
 * or a session token) into a principal. sec_http_gate is the one call a
 * handler makes first: it authenticates, checks the role (sec_allowed) and,
 * when the request may not go on, answers 401 (no or bad credentials, with
 * WWW-Authenticate) or 403 (the role or channel does not allow it) and
 * audits the refusal; an allowed request with credentials is audited as
 * that action. With security.auth off every request passes as a local
 * principal and nothing is answered.
 *
 * POST /auth/login takes {"user", "password", "totp"} as JSON and answers
 * {"token", "expires_in"} (seconds) or 401; both are audited.
 */
#ifndef TERN_SEC_HTTP_H
#define TERN_SEC_HTTP_H

#include <stdbool.h>

#include "base/tbuf.h"
#include "sec/sec.h"

struct evhttp;
struct evhttp_request;

/* The peer of req as "ADDRESS:PORT" into buf. Returns buf. */
const char *sec_http_peer(struct evhttp_request *req, char *buf, size_t size);

/* A token that authenticated is trusted again without a database lookup for
 * this long: disabling a user, revoking a token or ending a session takes
 * effect within it. */
#define SEC_AUTH_CACHE_MS 2000
void sec_http_cache_free(sec_ctx *c);

/* SEC_OK and *p filled when the request carries a valid token;
 * SEC_ERR_DENIED (err says why) when it carries none or a bad one. */
sec_status sec_http_authenticate(sec_ctx *c, struct evhttp_request *req, sec_principal *p,
                                 sec_error *err);

/* True when the request may go on (p then holds the principal, cleared by
 * the caller); false when the gate has answered it. patient is recorded
 * when known (NULL otherwise). */
bool sec_http_gate(sec_ctx *c, struct evhttp_request *req, sec_action action, const char *channel,
                   const char *patient, sec_principal *p);

/* The parts of a POST /auth/login body: the three strings borrow from
 * json, which sec_login_body_free releases. */
typedef struct sec_login_body {
    struct json_t *json;
    const char *user, *password, *totp;
} sec_login_body;

/* True when body (len bytes, not NUL-terminated; NULL when len is 0) is a
 * JSON object with the strings user, password and totp; *out is filled
 * either way and must be freed with sec_login_body_free. */
bool sec_http_login_parse(const char *body, size_t len, sec_login_body *out);
void sec_login_body_free(sec_login_body *b);

/* Serves POST /auth/login on http. -1 with err when the path is taken. */
int sec_http_register(sec_ctx *c, struct evhttp *http, tbuf *err);

#endif
