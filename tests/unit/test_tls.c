/*
 * Unit tests for src/net/tls.c and the TLS path of src/net/net.c: error
 * paths of building a context (missing file, garbage, a key that does not
 * match its certificate, contradictory options), reload keeping the old
 * certificate when the new one is bad, and a real handshake over 127.0.0.1
 * whose server sees the client's verified subject and fingerprint through
 * net_conn_peer_subject()/net_conn_peer_fingerprint().
 *
 * Certificates are made once per run by tests/lib/tls_certs.sh (openssl
 * command line) in a temporary directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "net/net.h"
#include "net/tls.h"

static char dir[256];

static const char *path(const char *name)
{
    static char buf[16][512];
    static int i;
    i = (i + 1) % 16;
    snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, name);
    return buf[i];
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/tern-test-tls-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "sh -c '. \"%s/tests/lib/tls_certs.sh\" && make_certs \"%s\"'",
             TERN_SOURCE_DIR, dir);
    return system(cmd) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void copy(const char *from, const char *to)
{
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", from, to);
    assert_int_equal(system(cmd), 0);
}

static tls_ctx *server_ctx(const char *cert, const char *key, tls_error *err)
{
    tls_options o = {.role = TLS_SERVER, .cert = cert, .key = key};
    return tls_ctx_new(&o, err);
}

/* --- error paths ------------------------------------------------------------------ */

static void test_missing_file(void **state)
{
    (void)state;
    tls_error err;
    assert_null(server_ctx(path("nope.pem"), path("server.key"), &err));
    assert_int_equal(err.code, TLS_ERR_FILE);
    assert_string_equal(err.key, "cert");
    assert_non_null(strstr(err.text, path("nope.pem")));
    assert_non_null(strstr(err.text, "No such file"));

    tls_options o = {.role = TLS_CLIENT, .ca = path("nope-ca.pem")};
    assert_null(tls_ctx_new(&o, &err));
    assert_int_equal(err.code, TLS_ERR_FILE);
    assert_string_equal(err.key, "ca");
}

static void test_key_not_matching(void **state)
{
    (void)state;
    tls_error err;
    assert_null(server_ctx(path("server.pem"), path("client.key"), &err));
    assert_int_equal(err.code, TLS_ERR_KEY);
    assert_string_equal(err.key, "key");
    assert_non_null(strstr(err.text, path("client.key")));
    assert_non_null(strstr(err.text, "mismatch"));
}

static void test_garbage_files(void **state)
{
    (void)state;
    tls_error err;
    /* a key where the certificate should be */
    assert_null(server_ctx(path("server.key"), path("server.key"), &err));
    assert_int_equal(err.code, TLS_ERR_CERT);
    assert_non_null(strstr(err.text, path("server.key")));
    assert_non_null(strstr(err.text, "no start line"));
    /* a certificate where the key should be */
    assert_null(server_ctx(path("server.pem"), path("server.pem"), &err));
    assert_int_equal(err.code, TLS_ERR_KEY);
    /* a CA file without certificates */
    tls_options o = {.role = TLS_CLIENT, .ca = path("ca.key")};
    assert_null(tls_ctx_new(&o, &err));
    assert_int_equal(err.code, TLS_ERR_CA);
    assert_non_null(strstr(err.text, path("ca.key")));
}

static void test_contradictions(void **state)
{
    (void)state;
    tls_error err;
    tls_options o = {.role = TLS_SERVER, .cert = path("server.pem")};
    assert_null(tls_ctx_new(&o, &err));
    assert_int_equal(err.code, TLS_ERR_CONFIG);
    assert_string_equal(err.key, "key");

    o = (tls_options){.role = TLS_SERVER,
                      .cert = path("server.pem"),
                      .key = path("server.key"),
                      .client_cert = TLS_CLIENT_CERT_REQUIRED};
    assert_null(tls_ctx_new(&o, &err));
    assert_int_equal(err.code, TLS_ERR_CONFIG);
    assert_string_equal(err.key, "ca");

    const char *subj[] = {"lab-system"};
    o = (tls_options){.role = TLS_SERVER,
                      .cert = path("server.pem"),
                      .key = path("server.key"),
                      .allow_subjects = subj,
                      .nallow_subjects = 1};
    assert_null(tls_ctx_new(&o, &err));
    assert_non_null(strstr(err.text, "client_cert"));

    const char *fp[] = {"AB:CD"};
    o = (tls_options){.role = TLS_SERVER,
                      .cert = path("server.pem"),
                      .key = path("server.key"),
                      .ca = path("ca.pem"),
                      .client_cert = TLS_CLIENT_CERT_REQUIRED,
                      .allow_fingerprints = fp,
                      .nallow_fingerprints = 1};
    assert_null(tls_ctx_new(&o, &err));
    assert_non_null(strstr(err.text, "not a SHA-256 fingerprint"));
}

/* --- reload ------------------------------------------------------------------------ */

static long serial_of(tls_ctx *t)
{
    SSL *ssl = tls_ssl_new(t, NULL);
    X509 *x = SSL_get_certificate(ssl);
    long s = x ? ASN1_INTEGER_get(X509_get0_serialNumber(x)) : -1;
    SSL_free(ssl);
    return s;
}

static void test_reload_keeps_old_on_error(void **state)
{
    (void)state;
    copy(path("server.pem"), path("live.pem"));
    copy(path("server.key"), path("live.key"));
    tls_error err;
    tls_ctx *t = server_ctx(path("live.pem"), path("live.key"), &err);
    assert_non_null(t);
    assert_int_equal(serial_of(t), 0x1001);

    copy(path("server2.pem"), path("live.pem")); /* key not replaced yet */
    assert_int_not_equal(tls_ctx_reload(t, &err), TLS_OK);
    assert_int_equal(err.code, TLS_ERR_KEY);
    assert_int_equal(serial_of(t), 0x1001);

    copy(path("server2.key"), path("live.key"));
    assert_int_equal(tls_ctx_reload(t, &err), TLS_OK);
    assert_int_equal(serial_of(t), 0x2002);
    tls_ctx_free(t);
}

/* --- a handshake through net.c -------------------------------------------------------- */

typedef struct hs {
    struct event_base *base;
    net_conn *server_side, *client;
    char subject[256], fingerprint[128];
    bool got, client_failed;
    char client_err[300];
} hs;

static void srv_read(net_conn *c, void *arg)
{
    hs *h = arg;
    evbuffer_drain(net_conn_input(c), evbuffer_get_length(net_conn_input(c)));
    net_conn_peer_subject(c, h->subject, sizeof(h->subject));
    net_conn_peer_fingerprint(c, h->fingerprint, sizeof(h->fingerprint));
    h->got = true;
    event_base_loopbreak(h->base);
}

static void srv_event(net_conn *c, net_event ev, const net_error *err, void *arg)
{
    hs *h = arg;
    net_conn_free(c);
    h->server_side = NULL;
}

static void on_accept(net_conn *c, void *arg)
{
    hs *h = arg;
    h->server_side = c;
    net_conn_cbs cbs = {.on_read = srv_read, .on_event = srv_event};
    net_conn_set_cbs(c, &cbs, h);
}

static void cli_event(net_conn *c, net_event ev, const net_error *err, void *arg)
{
    hs *h = arg;
    if (ev == NET_EV_CONNECTED) {
        net_conn_write(c, "hello", 5);
        return;
    }
    h->client_failed = true;
    snprintf(h->client_err, sizeof(h->client_err), "%s", err ? err->text : "");
    event_base_loopbreak(h->base);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    event_base_loopbreak(arg);
}

/* Runs one connection from a client with the given certificate (NULL:
 * none) to a server that requires one from the test CA. */
static void handshake(hs *h, const char *cert, const char *key)
{
    memset(h, 0, sizeof(*h));
    h->base = event_base_new();
    tls_error err;
    tls_options so = {.role = TLS_SERVER,
                      .cert = path("server.pem"),
                      .key = path("server.key"),
                      .ca = path("ca.pem"),
                      .client_cert = TLS_CLIENT_CERT_REQUIRED};
    tls_ctx *st = tls_ctx_new(&so, &err);
    assert_non_null(st);
    tls_options co = {.role = TLS_CLIENT, .ca = path("ca.pem"), .cert = cert, .key = key};
    tls_ctx *ct = tls_ctx_new(&co, &err);
    assert_non_null(ct);
    net_addr a = {.host = "127.0.0.1", .port = 0};
    net_error ne;
    net_listener *l = net_listen_tls(h->base, &a, st, on_accept, h, &ne);
    assert_non_null(l);
    a.port = net_listener_port(l);
    h->client = net_connect_tls(h->base, &a, ct, &ne);
    assert_non_null(h->client);
    net_conn_cbs cbs = {.on_event = cli_event};
    net_conn_set_cbs(h->client, &cbs, h);
    struct event *limit = evtimer_new(h->base, on_timeout, h->base);
    struct timeval tv = {10, 0};
    evtimer_add(limit, &tv);
    event_base_dispatch(h->base);
    event_free(limit);
    net_conn_free(h->client);
    net_conn_free(h->server_side);
    net_listener_free(l);
    tls_ctx_free(ct);
    tls_ctx_free(st);
    event_base_free(h->base);
}

static void test_peer_identity(void **state)
{
    (void)state;
    hs h;
    handshake(&h, path("client.pem"), path("client.key"));
    assert_true(h.got);
    assert_string_equal(h.subject, "CN=lab-system,O=Lab");
    /* the fingerprint openssl x509 -fingerprint -sha256 gives */
    char cmd[600], want[128] = "";
    snprintf(cmd, sizeof(cmd), "openssl x509 -in '%s' -noout -fingerprint -sha256 | cut -d= -f2",
             path("client.pem"));
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    assert_non_null(fgets(want, sizeof(want), p));
    pclose(p);
    want[strcspn(want, "\n")] = '\0';
    assert_string_equal(h.fingerprint, want);
}

static void test_no_client_cert_refused(void **state)
{
    (void)state;
    hs h;
    handshake(&h, NULL, NULL);
    assert_false(h.got);
    assert_true(h.client_failed);
    assert_non_null(strstr(h.client_err, "certificate required"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_key_not_matching),
        cmocka_unit_test(test_garbage_files),
        cmocka_unit_test(test_contradictions),
        cmocka_unit_test(test_reload_keeps_old_on_error),
        cmocka_unit_test(test_peer_identity),
        cmocka_unit_test(test_no_client_cert_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
