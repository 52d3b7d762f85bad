/*
 * mllp_echo_server: a small MLLP receiver for tests and measurements. It
 * acknowledges every message it gets with an ACK built by hl7_ack (AA by
 * default, or the code given with --code), answers unparseable input and
 * oversized frames with a reject (hl7_ack_build_nak), and stores nothing.
 *
 *     mllp_echo_server [--listen ADDR] [--port-file FILE] [--code AE]
 *                      [--text TEXT] [--max-frame BYTES]
 *
 * It listens on 127.0.0.1:0 unless told otherwise, writes the port it got to
 * --port-file (written whole, then renamed, so a reader never sees half of
 * it) and to stdout, and stops gracefully on SIGTERM or SIGINT: no new
 * connections, pending replies written, exit 0.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "hl7/hl7.h"
#include "hl7/hl7_ack.h"
#include "net/mllp_server.h"

typedef struct echo {
    hl7_msg *msg;
    tbuf ack;
    hl7_ack_opts opts;
    struct event_base *base;
} echo;

static void on_frame(const mllp_inbound *in, mllp_reply *r, void *arg)
{
    echo *e = arg;
    hl7_error err;
    tbuf_reset(&e->ack);
    if (in->oversized) {
        memset(&err, 0, sizeof(err));
        err.code = HL7_ERR_TOO_LARGE;
        snprintf(err.text, sizeof(err.text), "the message is larger than %zu bytes", in->len);
        hl7_ack_build_nak(in->data, in->len, &err, NULL, &e->ack);
    } else if (hl7_parse(e->msg, in->data, in->len, &err) != HL7_OK) {
        hl7_ack_build_nak(in->data, in->len, &err, NULL, &e->ack);
    } else if (hl7_ack_build(e->msg, &e->opts, &e->ack, &err) != HL7_OK) {
        hl7_ack_build_nak(in->data, in->len, &err, NULL, &e->ack);
    }
    mllp_reply_send(r, e->ack.p, e->ack.len);
}

static void on_stopped(void *arg)
{
    echo *e = arg;
    event_base_loopexit(e->base, NULL);
}

typedef struct stopper {
    echo *e;
    mllp_server *srv;
} stopper;

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    stopper *st = arg;
    mllp_server_stop(st->srv, on_stopped, st->e);
}

static int usage(void)
{
    fprintf(stderr, "usage: mllp_echo_server [--listen ADDR] [--port-file FILE] [--code CODE] "
                    "[--text TEXT] [--max-frame BYTES]\n");
    return 2;
}

static int write_port_file(const char *path, unsigned port)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return -1;
    fprintf(f, "%u\n", port);
    if (fclose(f) != 0) return -1;
    return rename(tmp, path);
}

int main(int argc, char **argv)
{
    const char *listen = "127.0.0.1:0", *port_file = NULL, *code = NULL, *text = NULL;
    mllp_server_opts so = {0};
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) return usage();
        if (!strcmp(argv[i], "--listen"))
            listen = argv[++i];
        else if (!strcmp(argv[i], "--port-file"))
            port_file = argv[++i];
        else if (!strcmp(argv[i], "--code"))
            code = argv[++i];
        else if (!strcmp(argv[i], "--text"))
            text = argv[++i];
        else if (!strcmp(argv[i], "--max-frame"))
            so.max_frame = strtoul(argv[++i], NULL, 10);
        else
            return usage();
    }
    echo e = {.msg = hl7_msg_new(NULL), .base = event_base_new()};
    hl7_error herr;
    if (code && hl7_ack_code_parse(code, &e.opts.code, &herr) != HL7_OK) {
        fprintf(stderr, "mllp_echo_server: %s\n", herr.text);
        return 2;
    }
    e.opts.text = text;
    net_addr addr;
    net_error nerr;
    if (net_addr_parse(listen, &addr, &nerr) != NET_OK) {
        fprintf(stderr, "mllp_echo_server: %s\n", nerr.text);
        return 2;
    }
    net_ignore_sigpipe();
    mllp_error merr;
    mllp_server *srv = mllp_server_new(e.base, &addr, &so, on_frame, &e, &merr);
    if (!srv) {
        fprintf(stderr, "mllp_echo_server: %s\n", merr.text);
        return 1;
    }
    unsigned port = mllp_server_port(srv);
    printf("listening on port %u\n", port);
    fflush(stdout);
    if (port_file && write_port_file(port_file, port) != 0) {
        fprintf(stderr, "mllp_echo_server: cannot write %s\n", port_file);
        return 1;
    }
    stopper st = {&e, srv};
    struct event *term = evsignal_new(e.base, SIGTERM, on_signal, &st);
    struct event *intr = evsignal_new(e.base, SIGINT, on_signal, &st);
    event_add(term, NULL);
    event_add(intr, NULL);
    event_base_dispatch(e.base);
    mllp_server_stats ss;
    mllp_server_stats_get(srv, &ss);
    printf("stopped: %llu connections, %llu messages, %llu replies\n",
           (unsigned long long)ss.accepted, (unsigned long long)ss.frames,
           (unsigned long long)ss.replies);
    event_free(term);
    event_free(intr);
    mllp_server_free(srv);
    hl7_msg_free(e.msg);
    tbuf_free(&e.ack);
    event_base_free(e.base);
    return 0;
}
