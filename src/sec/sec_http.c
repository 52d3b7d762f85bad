/*
 * sec_http: see sec_http.h. The login handler verifies the Argon2id hash on
 * the loop thread: one login costs one verification (about the configured
 * argon2 time), which is why lockout bounds how many a client gets.
 */
#include "sec/sec_http.h"

#include "base/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#define LOGIN_MAX_BODY 4096

const char *sec_http_peer(struct evhttp_request *req, char *buf, size_t size)
{
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    const char *addr = NULL;
    ev_uint16_t port = 0;
    if (conn) evhttp_connection_get_peer(conn, (char **)&addr, &port);
    snprintf(buf, size, "%s:%u", addr ? addr : "?", (unsigned)port);
    return buf;
}

static void reply(struct evhttp_request *req, int code, const char *reason, const char *ctype,
                  const char *text)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", ctype);
    evhttp_add_header(h, "Cache-Control", "no-store");
    struct evbuffer *b = evbuffer_new();
    evbuffer_add_printf(b, "%s\n", text);
    evhttp_send_reply(req, code, reason, b);
    evbuffer_free(b);
}

/* --- the cache of recently authenticated tokens ------------------------------------ */

#define CACHE_SLOTS 256 /* direct-mapped by the token's hash */

typedef struct cache_entry {
    char hash[SEC_SHA256_HEX]; /* "" when empty */
    int64_t until;
    sec_principal p; /* channels owned */
} cache_entry;

struct sec_auth_cache {
    cache_entry e[CACHE_SLOTS];
};

void sec_http_cache_free(sec_ctx *c)
{
    if (!c->auth_cache) return;
    for (size_t i = 0; i < CACHE_SLOTS; i++) sec_principal_clear(&c->auth_cache->e[i].p);
    free(c->auth_cache);
    c->auth_cache = NULL;
}

static void principal_copy(sec_principal *to, const sec_principal *from)
{
    *to = *from;
    to->channels = from->channels ? xstrdup(from->channels) : NULL;
}

static cache_entry *cache_slot(sec_ctx *c, const char *hash)
{
    if (!c->auth_cache) c->auth_cache = xcalloc(1, sizeof *c->auth_cache);
    unsigned h = 0;
    for (int i = 0; i < 8; i++) h = h * 16 + (unsigned)(hash[i] <= '9' ? hash[i] - '0' : hash[i] - 'a' + 10);
    return &c->auth_cache->e[h % CACHE_SLOTS];
}

/* sec_authenticate, or the principal of the same token seen less than
 * SEC_AUTH_CACHE_MS ago. */
static sec_status authenticate_cached(sec_ctx *c, const char *token, sec_principal *p,
                                      sec_error *err)
{
    int64_t now = sec_now_ms();
    char hash[SEC_SHA256_HEX];
    sec_sha256_hex(token, hash);
    cache_entry *e = cache_slot(c, hash);
    if (e->hash[0] && !strcmp(e->hash, hash) && now < e->until) {
        principal_copy(p, &e->p);
        return SEC_OK;
    }
    sec_status st = sec_authenticate(c->db, c->cfg, token, now, p, err);
    if (st == SEC_OK) {
        sec_principal_clear(&e->p);
        principal_copy(&e->p, p);
        memcpy(e->hash, hash, sizeof hash);
        e->until = now + SEC_AUTH_CACHE_MS;
    }
    return st;
}

sec_status sec_http_authenticate(sec_ctx *c, struct evhttp_request *req, sec_principal *p,
                                 sec_error *err)
{
    const char *h =
        evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (!h) return sec_fail(err, SEC_ERR_DENIED, "no credentials: send Authorization: Bearer TOKEN");
    if (strncasecmp(h, "Bearer ", 7))
        return sec_fail(err, SEC_ERR_DENIED, "only Authorization: Bearer TOKEN is accepted");
    h += 7;
    while (*h == ' ')
        h++;
    sec_status st = authenticate_cached(c, h, p, err);
    if (st != SEC_OK && st != SEC_ERR_DENIED)
        return sec_fail(err, SEC_ERR_DENIED, "cannot check credentials: %s", err->text);
    return st;
}

bool sec_http_gate(sec_ctx *c, struct evhttp_request *req, sec_action action, const char *channel,
                   const char *patient, sec_principal *p)
{
    if (!c->cfg->auth) {
        p->kind = SEC_KIND_LOCAL;
        p->role = SEC_ROLE_ADMIN;
        snprintf(p->name, sizeof p->name, "anonymous");
        return true;
    }
    char peer[80], detail[300];
    sec_http_peer(req, peer, sizeof peer);
    sec_error err = {0};
    if (sec_http_authenticate(c, req, p, &err) != SEC_OK) {
        snprintf(detail, sizeof detail, "401: %s", err.text);
        sec_record_event(c, NULL, sec_action_name(action), channel, patient, peer, "denied",
                         detail);
        evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
                          "Bearer realm=\"tern\"");
        reply(req, 401, "Unauthorized", "text/plain; charset=utf-8", err.text);
        return false;
    }
    if (!sec_check(c, p, action, channel, peer)) {
        snprintf(detail, sizeof detail, "%s (role %s) may not %s%s%s", p->name,
                 sec_role_name(p->role), sec_action_name(action), channel ? " on channel " : "",
                 channel ? channel : "");
        reply(req, 403, "Forbidden", "text/plain; charset=utf-8", detail);
        sec_principal_clear(p);
        return false;
    }
    sec_record_event(c, p, sec_action_name(action), channel, patient, peer, "ok", NULL);
    return true;
}

static const char *json_str(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

bool sec_http_login_parse(const char *body, size_t len, sec_login_body *out)
{
    *out = (sec_login_body){0};
    json_error_t jerr;
    /* JSON_REJECT_DUPLICATES: two "user" keys must not mean one thing to
     * the audit and another to the check */
    out->json = json_loadb(body ? body : "", body ? len : 0, JSON_REJECT_DUPLICATES, &jerr);
    if (!out->json) return false;
    out->user = json_str(out->json, "user");
    out->password = json_str(out->json, "password");
    out->totp = json_str(out->json, "totp");
    return out->user && out->password && out->totp;
}

void sec_login_body_free(sec_login_body *b)
{
    if (!b) return;
    json_decref(b->json);
    *b = (sec_login_body){0};
}

static void on_login(struct evhttp_request *req, void *arg)
{
    sec_ctx *c = arg;
    if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "POST");
        reply(req, 405, "Method Not Allowed", "application/json",
              "{\"error\": \"POST {\\\"user\\\", \\\"password\\\", \\\"totp\\\"} as JSON\"}");
        return;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    if (len > LOGIN_MAX_BODY) {
        reply(req, 413, "Payload Too Large", "application/json",
              "{\"error\": \"the login body is too large\"}");
        return;
    }
    sec_login_body body;
    if (!sec_http_login_parse(len ? (const char *)evbuffer_pullup(in, -1) : NULL, len, &body)) {
        reply(req, 400, "Bad Request", "application/json",
              "{\"error\": \"the body must be JSON with the strings user, password and totp\"}");
        sec_login_body_free(&body);
        return;
    }
    const char *user = body.user, *password = body.password, *totp = body.totp;
    char peer[80], token[SEC_TOKEN_TEXT];
    sec_http_peer(req, peer, sizeof peer);
    sec_principal p = {0};
    sec_error err = {0};
    sec_status st = sec_login(c->db, c->cfg, user, password, totp, sec_now_ms(), token, &p, &err);
    if (st == SEC_OK) {
        sec_record_event(c, &p, "login", NULL, NULL, peer, "ok", "session started");
        json_t *ans = json_pack("{s:s, s:I}", "token", token, "expires_in",
                                (json_int_t)(c->cfg->session_max_ms / 1000));
        char *text = json_dumps(ans, 0);
        reply(req, 200, "OK", "application/json", text);
        free(text);
        json_decref(ans);
    } else {
        sec_principal who = {0};
        snprintf(who.name, sizeof who.name, "%s", user);
        sec_record_event(c, &who, "login", NULL, NULL, peer, "failed", err.text);
        json_t *ans = json_pack("{s:s}", "error",
                                st == SEC_ERR_DENIED || st == SEC_ERR_LOCKED
                                    ? "wrong user name, password or code, or the account is "
                                      "locked"
                                    : "cannot log in now; try again");
        char *text = json_dumps(ans, 0);
        reply(req, st == SEC_ERR_DENIED || st == SEC_ERR_LOCKED ? 401 : 503,
              st == SEC_ERR_DENIED || st == SEC_ERR_LOCKED ? "Unauthorized"
                                                            : "Service Unavailable",
              "application/json", text);
        free(text);
        json_decref(ans);
    }
    memset(token, 0, sizeof token);
    sec_principal_clear(&p);
    sec_login_body_free(&body);
}

int sec_http_register(sec_ctx *c, struct evhttp *http, tbuf *err)
{
    if (evhttp_set_cb(http, "/auth/login", on_login, c) != 0) {
        tbuf_puts(err, "the path /auth/login is already served");
        return -1;
    }
    return 0;
}
