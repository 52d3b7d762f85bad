/*
 * cli_send: `tern send --host H --port P FILE...` sends HL7 messages over
 * MLLP and prints one line per ACK; with --count it is a load generator.
 *
 * Send mode: the files are read with hl7_reader (one message, many, or
 * batches; streamed, so any size works) and each message goes out over one
 * connection, one at a time, as the standard asks: the next message leaves
 * after the previous one's ACK. Segments are sent CR-terminated whatever the
 * file used. Output per ACK: "CONTROL_ID MSA-1 MSA-3" (MSH-10 of the message
 * sent, the ACK code, the ACK text with line breaks made spaces); problems
 * (no ACK, unreadable ACK, unreadable message) go to stderr.
 *
 * Load mode (--count N): every message of the files is read first and
 * turned into a template whose MSH-10 is replaced, per send, by a run id and
 * a sequence number, so every control id is unique. N messages go out
 * round-robin over the templates on C connections (one message in flight
 * per connection), paced at R messages/s in total or as fast as the peer
 * answers (R 0). At the end it prints the rate and the ACK latency
 * percentiles. With a rate, latency is counted from when each message was
 * due, not when it left, so a slow receiver cannot hide queueing delay.
 *
 * --tls sends over TLS (net/tls.h): the receiver's certificate is checked
 * against --ca (or the system's CAs) and the host name (or --server-name);
 * --cert/--key present a client certificate for mutual TLS. One TLS context
 * serves every connection.
 */
#include "cli/cli.h"

#include "hl7/hl7_batch.h"
#include "net/mllp_client.h"
#include "net/tls.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "base/mem.h"

static const char send_usage[] =
    "usage: tern send --port P [--host H] [options] FILE...\n"
    "\n"
    "Sends every HL7 v2 message in the FILEs (single messages, several per file,\n"
    "or FHS/BHS batch files; - is standard input) over MLLP, one at a time, and\n"
    "prints one line per ACK:\n"
    "\n"
    "    CONTROL_ID MSA-1 MSA-3\n"
    "\n"
    "that is the MSH-10 of the message sent, the acknowledgement code (AA, AE,\n"
    "AR, CA, CE, CR) and the acknowledgement text, if any. Messages without an\n"
    "ACK (timeout, connection lost) and unreadable input are reported on stderr.\n"
    "\n"
    "options:\n"
    "  --host H          receiver host name or address (default 127.0.0.1)\n"
    "  --port P          receiver port (required)\n"
    "  --timeout SEC     seconds to wait for the connection and for each ACK\n"
    "                    (default 10; fractions allowed)\n"
    "  -h, --help        show this help\n"
    "\n"
    "TLS (docs/tls.md):\n"
    "  --tls             send over TLS 1.2 or 1.3; the receiver's certificate must\n"
    "                    be valid for the host (or --server-name)\n"
    "  --ca FILE         CA certificates (PEM) to verify the receiver (default: the\n"
    "                    system's)\n"
    "  --cert FILE       client certificate chain (PEM), for mutual TLS\n"
    "  --key FILE        its private key (PEM)\n"
    "  --server-name N   the name expected in the receiver's certificate, sent as SNI\n"
    "\n"
    "load generator (no per-ACK lines; a summary at the end):\n"
    "  --count N         send N messages in total, cycling through the messages of\n"
    "                    the FILEs, each with a unique MSH-10\n"
    "  --concurrency C   over C connections at once (default 1)\n"
    "  --rate R          R messages per second in total (default 0: as fast as the\n"
    "                    receiver answers)\n"
    "The summary gives messages/s and the ACK latency p50, p95, p99 and max.\n"
    "\n"
    "Exit codes: 0 every message got AA or CA; 1 a message was not accepted, got\n"
    "no ACK, or could not be read or sent; 2 usage.\n"
    "\n"
    "example: tern send --host 10.1.2.3 --port 2575 adt_a01.hl7 lab_batch.hl7\n";

typedef struct send_cfg {
    net_addr addr;
    char where[NET_ADDR_TEXT_MAX];
    unsigned timeout_ms;
    unsigned long long count;
    unsigned concurrency;
    double rate;
    tls_ctx *tls; /* NULL: plain TCP */
} send_cfg;

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Appends m in wire form with CR after every segment. */
static void wire_of(const hl7_msg *m, tbuf *out)
{
    uint32_t n = hl7_seg_count(m);
    for (uint32_t i = 0; i < n; i++) {
        const hl7_seg *s = hl7_seg_at(m, i);
        tbuf_put(out, s->p, s->len);
        tbuf_putc(out, '\r');
    }
}

static bool has_block_chars(const tbuf *w)
{
    return memchr(w->p, MLLP_START_BLOCK, w->len) || memchr(w->p, MLLP_END_BLOCK, w->len);
}

/* Appends the value at path (escapes decoded) with line breaks and tabs made
 * spaces, so that it fits on one output line. */
static void one_line_value(const hl7_msg *m, const char *path, tbuf *out)
{
    hl7_path p;
    hl7_error err;
    if (hl7_path_parse(path, &p, &err) != HL7_OK) return;
    size_t from = out->len;
    hl7_get(m, &p, out);
    for (size_t i = from; i < out->len; i++)
        if (out->p[i] == '\r' || out->p[i] == '\n' || out->p[i] == '\t') out->p[i] = ' ';
}

static bool code_accepts(const char *code)
{
    return !strcasecmp(code, "AA") || !strcasecmp(code, "CA");
}

/* Reads MSA-1 (into code) and MSA-3 of an ACK. Returns false with a reason
 * in why when it is not a readable ACK. */
static bool read_ack(hl7_msg *ack, const char *data, size_t len, tbuf *code, tbuf *text,
                     tbuf *answers, char *why, size_t whylen)
{
    hl7_error err;
    if (hl7_parse(ack, data, len, &err) != HL7_OK) {
        char where[128];
        snprintf(why, whylen, "the ACK does not parse (%s: %s)",
                 hl7_error_where(&err, where, sizeof(where)), err.text);
        return false;
    }
    if (hl7_seg_find(ack, "MSA", 1) < 0) {
        snprintf(why, whylen, "the reply has no MSA segment, so it is not an ACK");
        return false;
    }
    one_line_value(ack, "MSA-1", code);
    one_line_value(ack, "MSA-3", text);
    if (answers) one_line_value(ack, "MSA-2", answers);
    if (code->len == 0) {
        snprintf(why, whylen, "the ACK has no acknowledgement code in MSA-1");
        return false;
    }
    return true;
}

/* --- send mode ------------------------------------------------------------------ */

typedef struct wait1 {
    bool done;
    mllp_status status;
    tbuf ack;
    mllp_error err;
} wait1;

static void wait1_done(const mllp_result *res, void *arg)
{
    wait1 *w = arg;
    w->done = true;
    w->status = res->status;
    if (res->status == MLLP_OK)
        tbuf_put(&w->ack, res->ack, res->ack_len);
    else
        w->err = *res->err;
}

/* Sends one message and reports its ACK. Returns CLI_OK when accepted,
 * CLI_INVALID otherwise; sets *stop when sending further is pointless. */
static int send_one(struct event_base *base, mllp_client *cl, const char *file, size_t index,
                    const tbuf *wire, const char *control_id, hl7_msg *ack, bool *stop)
{
    wait1 w = {0};
    int rc = CLI_INVALID;
    tbuf code = TBUF_INIT, text = TBUF_INIT, answers = TBUF_INIT;
    const char *shown = control_id[0] ? control_id : "-";
    mllp_client_send(cl, wire->p, wire->len, wait1_done, &w);
    while (!w.done)
        event_base_loop(base, EVLOOP_ONCE);
    if (w.status != MLLP_OK) {
        fprintf(stderr, "tern send: %s: message %zu (MSH-10 %s): %s\n", file, index, shown,
                w.err.text);
        if (w.status == MLLP_ERR_CONNECT || w.status == MLLP_ERR_ADDRESS) *stop = true;
        goto done;
    }
    char why[300];
    tbuf_puts(&code, "");
    tbuf_puts(&text, "");
    tbuf_puts(&answers, "");
    if (!read_ack(ack, w.ack.p ? w.ack.p : "", w.ack.len, &code, &text, &answers, why,
                  sizeof(why))) {
        fprintf(stderr, "tern send: %s: message %zu (MSH-10 %s): %s\n", file, index, shown, why);
        goto done;
    }
    if (strcmp(answers.p, control_id) != 0)
        fprintf(stderr,
                "tern send: %s: message %zu: warning: the ACK's MSA-2 is '%s', not the MSH-10 "
                "sent ('%s')\n",
                file, index, answers.p, control_id);
    printf("%s %s%s%s\n", shown, code.p, text.len ? " " : "", text.p);
    if (code_accepts(code.p)) rc = CLI_OK;
done:
    tbuf_free(&w.ack);
    tbuf_free(&code);
    tbuf_free(&text);
    tbuf_free(&answers);
    return rc;
}

static int run_send(const send_cfg *cfg, char **files, int nfiles)
{
    int rc = CLI_OK;
    struct event_base *base = event_base_new();
    mllp_client_opts co = {.connect_timeout_ms = cfg->timeout_ms,
                           .ack_timeout_ms = cfg->timeout_ms,
                           .tls = cfg->tls};
    mllp_client *cl = mllp_client_new(base, &cfg->addr, &co);
    hl7_msg *m = hl7_msg_new(NULL), *ack = hl7_msg_new(NULL);
    tbuf wire = TBUF_INIT, id = TBUF_INIT;
    bool stop = false;
    size_t sent = 0;
    for (int f = 0; f < nfiles && !stop; f++) {
        hl7_error err;
        hl7_reader *r = hl7_reader_open(files[f], NULL, &err);
        if (!r) {
            fprintf(stderr, "tern send: %s\n", err.text);
            rc = CLI_INVALID;
            continue;
        }
        size_t index = 0;
        while (!stop) {
            bool done = false;
            hl7_status st = hl7_reader_next(r, m, NULL, &done, &err);
            if (st != HL7_OK) {
                char where[128];
                fprintf(stderr, "tern send: %s: %s: %s; not sent\n", files[f],
                        hl7_error_where(&err, where, sizeof(where)), err.text);
                rc = CLI_INVALID;
                continue;
            }
            if (done) break;
            index++;
            tbuf_reset(&wire);
            tbuf_reset(&id);
            tbuf_puts(&id, "");
            wire_of(m, &wire);
            one_line_value(m, "MSH-10", &id);
            if (has_block_chars(&wire)) {
                fprintf(stderr,
                        "tern send: %s: message %zu (MSH-10 %s) holds a 0x0B or 0x1C byte, "
                        "which MLLP cannot carry; not sent\n",
                        files[f], index, id.p);
                rc = CLI_INVALID;
                continue;
            }
            sent++;
            if (send_one(base, cl, files[f], index, &wire, id.p, ack, &stop) != CLI_OK)
                rc = CLI_INVALID;
        }
        hl7_reader_free(r);
    }
    if (stop)
        fprintf(stderr,
                "tern send: stopped: the receiver at %s cannot be reached; check that it runs "
                "and listens on that address and port\n",
                cfg->where);
    else if (sent == 0 && rc == CLI_OK) {
        fprintf(stderr, "tern send: no HL7 message found in the input\n");
        rc = CLI_INVALID;
    }
    fflush(stdout);
    tbuf_free(&wire);
    tbuf_free(&id);
    hl7_msg_free(m);
    hl7_msg_free(ack);
    mllp_client_free(cl);
    event_base_free(base);
    return rc;
}

/* --- load mode ------------------------------------------------------------------ */

/* Latency histogram in microseconds: exact below 256, then 128 steps per
 * power of two (under 1% error), up to about 12 days. */
#define HIST_SUB 128
#define HIST_BUCKETS (256 + 40 * HIST_SUB)

typedef struct hist {
    uint64_t n[HIST_BUCKETS];
    uint64_t total, max;
} hist;

static size_t hist_index(uint64_t us)
{
    if (us < 256) return (size_t)us;
    int b = 63 - __builtin_clzll(us); /* 8.. */
    if (b > 47) return HIST_BUCKETS - 1;
    return 256 + (size_t)(b - 8) * HIST_SUB + (size_t)((us >> (b - 7)) & (HIST_SUB - 1));
}

static uint64_t hist_value(size_t i)
{
    if (i < 256) return i;
    size_t b = (i - 256) / HIST_SUB + 8, sub = (i - 256) % HIST_SUB;
    return (uint64_t)(HIST_SUB + sub) << (b - 7);
}

static void hist_add(hist *h, uint64_t us)
{
    h->n[hist_index(us)]++;
    h->total++;
    if (us > h->max) h->max = us;
}

static uint64_t hist_pct(const hist *h, double p)
{
    if (h->total == 0) return 0;
    double want = p * (double)h->total;
    uint64_t rank = (uint64_t)want, seen = 0;
    if ((double)rank < want || rank == 0) rank++;
    for (size_t i = 0; i < HIST_BUCKETS; i++) {
        seen += h->n[i];
        if (seen >= rank) return hist_value(i) < h->max ? hist_value(i) : h->max;
    }
    return h->max;
}

typedef struct tmpl {
    char *pre, *post; /* the message around its MSH-10 value */
    size_t npre, npost;
} tmpl;

typedef struct load load;

typedef struct lconn {
    load *L;
    mllp_client *cl;
    double t0; /* latency starts here */
} lconn;

struct load {
    const send_cfg *cfg;
    struct event_base *base;
    struct event *timer;
    tmpl *t;
    size_t nt;
    char runid[16];
    lconn *conns;
    lconn **idle; /* stack of connections with nothing in flight */
    unsigned nidle;
    uint64_t next, completed;
    double start, last;
    bool stop;
    hl7_msg *ack;
    tbuf code, text;
    uint64_t accepted, refused, noack;
    uint64_t unsent; /* of noack: never written (the receiver could not be reached) */
    mllp_error first_err;
    bool have_err;
    hist h;
};

#define PLACEHOLDER "TERNMSH10PLACEHOLDERX"

/* Reads every message of the files into templates. */
static int load_templates(load *L, char **files, int nfiles)
{
    hl7_msg *m = hl7_msg_new(NULL);
    tbuf wire = TBUF_INIT;
    hl7_path p10;
    hl7_error err;
    size_t cap = 0;
    int rc = CLI_OK;
    hl7_path_parse("MSH-10", &p10, &err);
    for (int f = 0; f < nfiles; f++) {
        hl7_reader *r = hl7_reader_open(files[f], NULL, &err);
        if (!r) {
            fprintf(stderr, "tern send: %s\n", err.text);
            rc = CLI_INVALID;
            goto done;
        }
        for (;;) {
            bool end = false;
            hl7_status st = hl7_reader_next(r, m, NULL, &end, &err);
            if (st != HL7_OK) {
                char where[128];
                fprintf(stderr, "tern send: %s: %s: %s\n", files[f],
                        hl7_error_where(&err, where, sizeof(where)), err.text);
                rc = CLI_INVALID;
                continue;
            }
            if (end) break;
            tbuf_reset(&wire);
            if (hl7_set(m, &p10, PLACEHOLDER, strlen(PLACEHOLDER), &err) != HL7_OK) {
                fprintf(stderr, "tern send: %s: cannot set MSH-10: %s\n", files[f], err.text);
                rc = CLI_INVALID;
                continue;
            }
            wire_of(m, &wire);
            const char *at = memmem(wire.p, wire.len, PLACEHOLDER, strlen(PLACEHOLDER));
            if (!at || has_block_chars(&wire)) {
                fprintf(stderr, "tern send: %s: a message cannot be used as a template%s\n",
                        files[f], at ? " (it holds a 0x0B or 0x1C byte)" : "");
                rc = CLI_INVALID;
                continue;
            }
            L->t = xgrow(L->t, &cap, L->nt + 1, sizeof(*L->t));
            tmpl *t = &L->t[L->nt++];
            t->npre = (size_t)(at - wire.p);
            t->pre = xstrndup(wire.p, t->npre);
            t->npost = wire.len - t->npre - strlen(PLACEHOLDER);
            t->post = xstrndup(at + strlen(PLACEHOLDER), t->npost);
        }
        hl7_reader_free(r);
    }
    if (rc == CLI_OK && L->nt == 0) {
        fprintf(stderr, "tern send: no HL7 message found in the input\n");
        rc = CLI_INVALID;
    }
done:
    tbuf_free(&wire);
    hl7_msg_free(m);
    return rc;
}

static void dispatch(load *L);

static void load_done(const mllp_result *res, void *arg)
{
    lconn *c = arg;
    load *L = c->L;
    double now = mono_now();
    L->completed++;
    L->last = now;
    if (res->status == MLLP_OK) {
        hist_add(&L->h, (uint64_t)((now - c->t0) * 1e6)); /* ACK latency: answered ones */
        char why[300];
        tbuf_reset(&L->code);
        tbuf_reset(&L->text);
        tbuf_puts(&L->code, "");
        bool readable =
            read_ack(L->ack, res->ack, res->ack_len, &L->code, &L->text, NULL, why, sizeof(why));
        if (readable && code_accepts(L->code.p)) {
            L->accepted++;
        } else {
            L->refused++;
            if (!L->have_err) {
                L->have_err = true;
                L->first_err.code = MLLP_OK;
                if (readable)
                    snprintf(L->first_err.text, sizeof(L->first_err.text),
                             "first message not accepted: %.8s %.200s", L->code.p,
                             L->text.len ? L->text.p : "");
                else
                    snprintf(L->first_err.text, sizeof(L->first_err.text),
                             "first unreadable ACK: %.220s", why);
            }
        }
    } else {
        L->noack++;
        if (!L->have_err) {
            L->have_err = true;
            L->first_err = *res->err;
        }
        if (res->status == MLLP_ERR_CONNECT || res->status == MLLP_ERR_ADDRESS) {
            L->stop = true;
            L->unsent++;
        }
    }
    L->idle[L->nidle++] = c;
    dispatch(L);
}

static void on_pace(evutil_socket_t fd, short what, void *arg)
{
    dispatch(arg);
}

/* Sends what may be sent now: a message per idle connection, as far as the
 * count and the rate allow. Ends the loop when everything is answered. */
static void dispatch(load *L)
{
    const send_cfg *cfg = L->cfg;
    double now = mono_now();
    while (L->nidle > 0 && !L->stop && L->next < cfg->count) {
        double due = now;
        if (cfg->rate > 0) {
            due = L->start + (double)L->next / cfg->rate;
            if (due > now) {
                double wait = due - now;
                struct timeval tv = {(time_t)wait,
                                     (suseconds_t)((wait - (double)(time_t)wait) * 1e6)};
                evtimer_add(L->timer, &tv);
                break;
            }
        }
        lconn *c = L->idle[--L->nidle];
        const tmpl *t = &L->t[L->next % L->nt];
        char seq[40];
        int n = snprintf(seq, sizeof(seq), "%s%llu", L->runid, (unsigned long long)L->next + 1);
        struct iovec parts[3] = {{t->pre, t->npre}, {seq, (size_t)n}, {t->post, t->npost}};
        c->t0 = due;
        L->next++;
        mllp_client_sendv(c->cl, parts, 3, load_done, c);
    }
    if (L->completed == L->next && (L->stop || L->next >= cfg->count))
        event_base_loopbreak(L->base);
}

static void fmt_ms(char *buf, size_t size, uint64_t us)
{
    snprintf(buf, size, "%.3f", (double)us / 1000.0);
}

static int run_load(const send_cfg *cfg, char **files, int nfiles)
{
    load *L = xcalloc(1, sizeof(*L));
    L->cfg = cfg;
    int rc = load_templates(L, files, nfiles);
    if (rc != CLI_OK) goto done;
    /* a short run id keeps MSH-10 within 20 characters (pre-2.7 limit) */
    unsigned long long r = ((unsigned long long)time(NULL) << 16) ^ (unsigned long long)getpid();
    static const char b36[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    L->runid[0] = 'L';
    for (int i = 1; i <= 5; i++, r /= 36)
        L->runid[i] = b36[r % 36];
    L->runid[6] = '\0';

    /* pacing needs sub-millisecond timers; without a rate, skip their cost */
    struct event_config *ec = event_config_new();
    if (cfg->rate > 0) event_config_set_flag(ec, EVENT_BASE_FLAG_PRECISE_TIMER);
    L->base = event_base_new_with_config(ec);
    event_config_free(ec);
    L->timer = evtimer_new(L->base, on_pace, L);
    L->ack = hl7_msg_new(NULL);
    L->conns = xcalloc(cfg->concurrency, sizeof(*L->conns));
    L->idle = xcalloc(cfg->concurrency, sizeof(*L->idle));
    mllp_client_opts co = {.connect_timeout_ms = cfg->timeout_ms,
                           .ack_timeout_ms = cfg->timeout_ms,
                           .tls = cfg->tls};
    for (unsigned i = 0; i < cfg->concurrency; i++) {
        L->conns[i].L = L;
        L->conns[i].cl = mllp_client_new(L->base, &cfg->addr, &co);
        L->idle[cfg->concurrency - 1 - i] = &L->conns[i];
    }
    L->nidle = cfg->concurrency;
    L->start = L->last = mono_now();
    dispatch(L);
    event_base_dispatch(L->base);

    double secs = L->last - L->start;
    char p50[32], p95[32], p99[32], pmax[32];
    fmt_ms(p50, sizeof(p50), hist_pct(&L->h, 0.50));
    fmt_ms(p95, sizeof(p95), hist_pct(&L->h, 0.95));
    fmt_ms(p99, sizeof(p99), hist_pct(&L->h, 0.99));
    fmt_ms(pmax, sizeof(pmax), L->h.max);
    uint64_t sent = L->completed - L->unsent;
    printf("sent %llu messages to %s over %u connection%s in %.3f s: %.0f messages/s\n",
           (unsigned long long)sent, cfg->where, cfg->concurrency, cfg->concurrency == 1 ? "" : "s",
           secs, secs > 0 ? (double)sent / secs : 0.0);
    printf("accepted %llu, not accepted %llu, no ACK %llu\n", (unsigned long long)L->accepted,
           (unsigned long long)L->refused, (unsigned long long)L->noack);
    printf("ACK latency ms: p50 %s p95 %s p99 %s max %s\n", p50, p95, p99, pmax);
    fflush(stdout);
    if (L->have_err) fprintf(stderr, "tern send: %s\n", L->first_err.text);
    if (L->stop)
        fprintf(stderr,
                "tern send: stopped after %llu of %llu messages: the receiver at %s "
                "cannot be reached\n",
                (unsigned long long)L->completed, cfg->count, cfg->where);
    if (L->accepted != cfg->count) rc = CLI_INVALID;
    for (unsigned i = 0; i < cfg->concurrency; i++)
        mllp_client_free(L->conns[i].cl);
done:
    for (size_t i = 0; i < L->nt; i++) {
        free(L->t[i].pre);
        free(L->t[i].post);
    }
    free(L->t);
    free(L->conns);
    free(L->idle);
    hl7_msg_free(L->ack);
    tbuf_free(&L->code);
    tbuf_free(&L->text);
    if (L->timer) event_free(L->timer);
    if (L->base) event_base_free(L->base);
    free(L);
    return rc;
}

/* --- options ------------------------------------------------------------------- */

static int parse_count(const char *opt, const char *v, unsigned long long max,
                       unsigned long long *out)
{
    char *end;
    unsigned long long n = strtoull(v, &end, 10);
    if (*v == '\0' || *end != '\0' || v[0] == '-' || n == 0 || n > max)
        return cli_usage_error("send", "%s needs a whole number from 1 to %llu, not '%s'", opt, max,
                               v);
    *out = n;
    return CLI_OK;
}

static int parse_seconds(const char *opt, const char *v, double min, double *out)
{
    char *end;
    double d = strtod(v, &end);
    if (*v == '\0' || *end != '\0' || !(d >= min) || d > 1e9)
        return cli_usage_error("send", "%s needs a number of at least %g, not '%s'", opt, min, v);
    *out = d;
    return CLI_OK;
}

int cli_send(int argc, char **argv)
{
    static const struct option opts[] = {{"host", required_argument, NULL, 'H'},
                                         {"port", required_argument, NULL, 'p'},
                                         {"timeout", required_argument, NULL, 't'},
                                         {"count", required_argument, NULL, 'n'},
                                         {"concurrency", required_argument, NULL, 'c'},
                                         {"rate", required_argument, NULL, 'r'},
                                         {"tls", no_argument, NULL, 'T'},
                                         {"ca", required_argument, NULL, 'A'},
                                         {"cert", required_argument, NULL, 'C'},
                                         {"key", required_argument, NULL, 'K'},
                                         {"server-name", required_argument, NULL, 'S'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    send_cfg cfg = {.timeout_ms = 10000, .concurrency = 1};
    const char *host = "127.0.0.1", *port = NULL;
    bool load_opts = false, use_tls = false;
    tls_options to = {.role = TLS_CLIENT};
    unsigned long long v;
    double d;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(send_usage, stdout);
            return CLI_OK;
        case 'H':
            host = optarg;
            break;
        case 'p':
            port = optarg;
            break;
        case 't':
            if (parse_seconds("--timeout", optarg, 0.001, &d) != CLI_OK) return CLI_USAGE;
            cfg.timeout_ms = (unsigned)(d * 1000 + 0.5);
            break;
        case 'n':
            if (parse_count("--count", optarg, 1000000000000ull, &cfg.count) != CLI_OK)
                return CLI_USAGE;
            break;
        case 'c':
            if (parse_count("--concurrency", optarg, 1000, &v) != CLI_OK) return CLI_USAGE;
            cfg.concurrency = (unsigned)v;
            load_opts = true;
            break;
        case 'r':
            if (parse_seconds("--rate", optarg, 0, &cfg.rate) != CLI_OK) return CLI_USAGE;
            load_opts = true;
            break;
        case 'T': use_tls = true; break;
        case 'A': to.ca = optarg; break;
        case 'C': to.cert = optarg; break;
        case 'K': to.key = optarg; break;
        case 'S': to.server_name = optarg; break;
        case ':':
            return cli_usage_error("send", "option '%s' needs a value", argv[optind - 1]);
        default:
            return cli_usage_error("send", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (!port) return cli_usage_error("send", "--port is required (the receiver's MLLP port)");
    if (optind >= argc) return cli_usage_error("send", "needs at least one FILE to send");
    if (load_opts && cfg.count == 0)
        return cli_usage_error("send", "--concurrency and --rate need --count");
    net_error ne;
    if (net_addr_from(host, port, &cfg.addr, &ne) != NET_OK)
        return cli_usage_error("send", "%s", ne.text);
    if (cfg.addr.port == 0 || cfg.addr.host[0] == '\0')
        return cli_usage_error("send", "needs a host and a port other than 0");
    net_addr_format(&cfg.addr, cfg.where, sizeof(cfg.where));
    if (!use_tls && (to.ca || to.cert || to.key || to.server_name))
        return cli_usage_error("send", "--ca, --cert, --key and --server-name need --tls");
    if (use_tls) {
        tls_error te;
        if (!(cfg.tls = tls_ctx_new(&to, &te))) {
            fprintf(stderr, "tern send: %s\n", te.text);
            return CLI_INVALID;
        }
    }
    net_ignore_sigpipe();
    int rc = cfg.count ? run_load(&cfg, argv + optind, argc - optind)
                       : run_send(&cfg, argv + optind, argc - optind);
    tls_ctx_free(cfg.tls);
    return rc;
}
