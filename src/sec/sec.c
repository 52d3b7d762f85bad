/*
 * sec: see sec.h.
 */
#include "sec/sec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/mem.h"
#include "sec/keys.h"
#include "sec/sec_http.h"

int64_t sec_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

sec_status sec_ctx_open(const config_security *cfg, sec_ctx **out, sec_error *err)
{
    *out = NULL;
    sec_ctx *c = xcalloc(1, sizeof *c);
    c->cfg = cfg;
    sec_error kerr = {0};
    sec_status st = sec_audit_key_load(cfg->audit_key_file, c->key, &c->key_len, &kerr);
    if (st == SEC_OK)
        c->has_key = true;
    else if (st == SEC_ERR_NO_KEY)
        snprintf(c->key_problem, sizeof c->key_problem, "%s", kerr.text);
    else {
        *err = kerr;
        free(c);
        return st;
    }
    sec_audit_options ao = {.seal_every = cfg->seal_every,
                            .seal_interval_ms = cfg->seal_interval_ms,
                            .queue = cfg->audit_queue,
                            .key = c->has_key ? c->key : NULL,
                            .key_len = c->key_len};
    if ((st = sec_db_open(cfg->db, &c->db, err)) != SEC_OK ||
        (st = sec_audit_open(cfg->db, &ao, &c->audit, err)) != SEC_OK) {
        sec_db_close(c->db);
        free(c);
        return st;
    }
    *out = c;
    return SEC_OK;
}

sec_status sec_ctx_close(sec_ctx *c, sec_error *err)
{
    if (!c) return SEC_OK;
    sec_http_cache_free(c);
    sec_status st = sec_audit_close(c->audit, err);
    sec_db_close(c->db);
    memset(c->key, 0, sizeof c->key);
    free(c);
    return st;
}

void sec_record_event(sec_ctx *c, const sec_principal *p, const char *action, const char *channel,
                      const char *patient, const char *source, const char *outcome,
                      const char *detail)
{
    char tok[KEYS_TOKEN_LEN + 1];
    if (c->keys && patient && *patient) {
        keys_token(c->keys, "patient", patient, tok);
        patient = tok;
    }
    sec_event ev = {.actor = p && p->name[0] ? p->name : "anonymous",
                    .role = p && p->kind == SEC_KIND_LOCAL ? "local"
                                                           : sec_role_name(p ? p->role : 0),
                    .action = action,
                    .channel = channel,
                    .patient = patient,
                    .source = source,
                    .outcome = outcome,
                    .detail = detail};
    sec_audit_add(c->audit, &ev);
}

bool sec_check(sec_ctx *c, const sec_principal *p, sec_action a, const char *channel,
               const char *source)
{
    if (sec_allowed(p, a, channel)) return true;
    char detail[160];
    snprintf(detail, sizeof detail, "refused: role %s may not %s%s%s",
             sec_role_name(p ? p->role : SEC_ROLE_NONE), sec_action_name(a),
             channel ? " on channel " : "", channel ? channel : "");
    sec_record_event(c, p, sec_action_name(a), channel, NULL, source, "denied", detail);
    return false;
}
