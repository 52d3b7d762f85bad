/*
 * engine_tls: the set of the engine's TLS contexts (see engine_tls.h).
 *
 * A plain array of entries, each remembering the configuration block it was
 * made for (pointer identity) and an owned "who" string that is also the
 * log callback's argument, so it must not move: entries are allocated one
 * by one.
 */
#include "engine/engine_tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/mem.h"

typedef struct entry {
    const config_tls *cfg;
    bool server;
    tls_ctx *ctx;
    char *who;
} entry;

struct eng_tls_set {
    entry **v;
    size_t n, cap;
};

static void tls_log(const char *text, void *arg)
{
    char ts[32];
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S%z", &tm);
    fprintf(stderr, "%s %s: %s\n", ts, (const char *)arg, text);
}

eng_tls_set *eng_tls_set_new(void)
{
    return xcalloc(1, sizeof(eng_tls_set));
}

void eng_tls_set_free(eng_tls_set *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->n; i++) {
        tls_ctx_free(s->v[i]->ctx);
        free(s->v[i]->who);
        free(s->v[i]);
    }
    free(s->v);
    free(s);
}

tls_ctx *eng_tls_get(eng_tls_set *s, const config_tls *t, bool server, const char *who, tbuf *err)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i]->cfg == t && s->v[i]->server == server) return s->v[i]->ctx;
    entry *e = xcalloc(1, sizeof(*e));
    e->cfg = t;
    e->server = server;
    e->who = xstrdup(who);
    tls_options o;
    tls_error terr;
    config_tls_options(t, server, &o);
    o.log = tls_log;
    o.log_arg = e->who;
    e->ctx = tls_ctx_new(&o, &terr);
    if (!e->ctx) {
        tbuf_printf(err, "TLS for %s: %s", who, terr.text);
        free(e->who);
        free(e);
        return NULL;
    }
    s->v = xgrow(s->v, &s->cap, s->n + 1, sizeof(*s->v));
    s->v[s->n++] = e;
    return e->ctx;
}

int eng_tls_reload_all(eng_tls_set *s)
{
    int failed = 0;
    for (size_t i = 0; i < s->n; i++) {
        tls_error err;
        if (tls_ctx_reload(s->v[i]->ctx, &err) == TLS_OK) {
            tls_log(s->v[i]->server ? "TLS certificates reloaded (listener)"
                                    : "TLS certificates reloaded (sender)",
                    s->v[i]->who);
        } else {
            failed++;
            char text[700];
            snprintf(text, sizeof(text),
                     "TLS reload failed (%s), the previous certificates stay in use: %s",
                     s->v[i]->server ? "listener" : "sender", err.text);
            tls_log(text, s->v[i]->who);
        }
    }
    return failed;
}
