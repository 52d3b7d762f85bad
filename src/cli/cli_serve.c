/*
 * cli_serve: `tern serve -c FILE` runs the engine until SIGTERM or SIGINT.
 *
 * The first signal is a graceful stop: listeners close, what was received is
 * stored and acknowledged, deliveries in flight finish (at most --grace
 * seconds), and the process exits 0. A second signal exits at once; nothing
 * acknowledged is lost either way, since acknowledged means stored.
 *
 * SIGHUP reloads the TLS certificates of every listener and sender from
 * their files (docs/tls.md); nothing else is re-read.
 */
#include "cli/cli.h"

#include "engine/engine.h"
#include "net/net.h"

#include <event2/event.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char serve_usage[] =
    "usage: tern serve -c FILE [--grace SECONDS]\n"
    "\n"
    "Runs the integration engine on the configuration FILE (see\n"
    "docs/configuration.md): every channel's source listens or polls, messages\n"
    "are stored durably before they are acknowledged, and each destination's\n"
    "queue is delivered with retries; what fails for good goes to the error\n"
    "queue (tern messages list --state error).\n"
    "\n"
    "options:\n"
    "  -c, --config FILE   the configuration (required)\n"
    "  --grace SECONDS     on SIGTERM, wait at most this long for deliveries in\n"
    "                      flight (default 30)\n"
    "  -h, --help          show this help\n"
    "\n"
    "SIGTERM or SIGINT stops gracefully and exits 0; a second one exits at once.\n"
    "SIGHUP reloads the TLS certificates and keys (docs/tls.md).\n"
    "Exit codes: 0 stopped cleanly, 1 the configuration or a listener failed, 2 usage.\n";

typedef struct serve_ctx {
    struct event_base *base;
    engine *e;
    int signals;
    struct event *grace_ev;
    long grace;
} serve_ctx;

static void stopped(void *arg)
{
    serve_ctx *c = arg;
    event_base_loopbreak(c->base);
}

static void on_grace(evutil_socket_t fd, short what, void *arg)
{
    serve_ctx *c = arg;
    fprintf(stderr, "tern: grace period over; deliveries still in flight stay queued\n");
    event_base_loopbreak(c->base);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    serve_ctx *c = arg;
    if (++c->signals > 1) {
        fprintf(stderr, "tern: second signal, exiting now\n");
        event_base_loopbreak(c->base);
        return;
    }
    fprintf(stderr, "tern: %s received, stopping (finishing in-flight work)\n",
            sig == SIGTERM ? "SIGTERM" : "SIGINT");
    struct timeval tv = {c->grace, 0};
    c->grace_ev = evtimer_new(c->base, on_grace, c);
    evtimer_add(c->grace_ev, &tv);
    engine_stop(c->e, stopped, c);
}

static void on_hup(evutil_socket_t sig, short what, void *arg)
{
    serve_ctx *c = arg;
    fprintf(stderr, "tern: SIGHUP received, reloading TLS certificates\n");
    engine_reload_tls(c->e);
}

static int report_config_errors(const char *file, config_errors *errs)
{
    tbuf out = TBUF_INIT;
    for (size_t i = 0; i < errs->count; i++) {
        tbuf_reset(&out);
        config_error_format(&errs->items[i], &out);
        fprintf(stderr, "%s\n", out.p);
    }
    if (errs->dropped) fprintf(stderr, "%s: %zu more errors not shown\n", file, errs->dropped);
    tbuf_free(&out);
    return CLI_INVALID;
}

int cli_serve(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"grace", required_argument, NULL, 'g'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *file = NULL;
    long grace = 30;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': file = optarg; break;
        case 'g': {
            char *end;
            grace = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end || grace < 0)
                return cli_usage_error("serve", "--grace needs a number of seconds, not '%s'",
                                       optarg);
            break;
        }
        case 'h': fputs(serve_usage, stdout); return CLI_OK;
        default:
            return cli_usage_error("serve", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (!file) return cli_usage_error("serve", "needs -c FILE (the configuration)");
    if (optind < argc) return cli_usage_error("serve", "unexpected argument '%s'", argv[optind]);

    tern_config *cfg = NULL;
    config_errors errs = CONFIG_ERRORS_INIT;
    if (config_load(file, &cfg, &errs) != CONFIG_OK) {
        int rc = report_config_errors(file, &errs);
        config_errors_free(&errs);
        return rc;
    }
    config_errors_free(&errs);
    net_ignore_sigpipe();
    serve_ctx ctx = {.base = event_base_new(), .grace = grace};
    if (ctx.base) event_base_priority_init(ctx.base, ENGINE_PRIORITIES);
    tbuf err = TBUF_INIT;
    ctx.e = engine_new(cfg, ctx.base, &err);
    if (!ctx.e) {
        fprintf(stderr, "tern serve: %s\n", err.p ? err.p : "cannot start");
        tbuf_free(&err);
        event_base_free(ctx.base);
        config_free(cfg);
        return CLI_INVALID;
    }
    struct event *sigterm = evsignal_new(ctx.base, SIGTERM, on_signal, &ctx);
    struct event *sigint = evsignal_new(ctx.base, SIGINT, on_signal, &ctx);
    evsignal_add(sigterm, NULL);
    evsignal_add(sigint, NULL);
    struct event *sighup = evsignal_new(ctx.base, SIGHUP, on_hup, &ctx);
    evsignal_add(sighup, NULL);
    fprintf(stderr, "tern: serving %zu channel%s from %s; store %s", cfg->nchannels,
            cfg->nchannels == 1 ? "" : "s", cfg->file, cfg->store.path);
    if (cfg->http.enabled)
        fprintf(stderr, "; HTTP on %s:%u", cfg->http.listen.host, cfg->http.listen.port);
    fprintf(stderr, "\n");
    event_base_dispatch(ctx.base);
    tbuf_reset(&err);
    engine_describe(ctx.e, &err);
    if (err.len) fprintf(stderr, "%s", err.p);
    engine_free(ctx.e);
    event_free(sigterm);
    event_free(sigint);
    event_free(sighup);
    if (ctx.grace_ev) event_free(ctx.grace_ev);
    event_base_free(ctx.base);
    config_free(cfg);
    tbuf_free(&err);
    fprintf(stderr, "tern: stopped\n");
    return CLI_OK;
}
