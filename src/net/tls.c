/*
 * tls: OpenSSL contexts with Tern's fixed policy, allow lists and reload
 * (see tls.h).
 *
 * A tls_ctx keeps copies of its options and one current SSL_CTX, whose app
 * data points back at the tls_ctx so that the verify and info callbacks
 * reach the allow lists and the logger. Building an SSL_CTX (build()) is the
 * same code at start and on reload; a reload swaps the pointer only when the
 * new one is complete. File stamps (mtime, size, inode) taken at each build
 * tell the periodic check whether anything changed.
 *
 * Handshakes refused by this side are logged from the info callback (a fatal
 * alert we send), with the peer address read from the socket, so that every
 * user of the context (MLLP, evhttp) gets the same log line without having
 * to see the handshake itself.
 */
#include "net/tls.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "base/mem.h"

/* TLS 1.2: forward secrecy (ECDHE) and AEAD (GCM, ChaCha20-Poly1305) only.
 * TLS 1.3 keeps OpenSSL's default suites, which are all of that kind. */
#define TLS12_CIPHERS                                                                              \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                                   \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                                   \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

enum { F_CERT, F_KEY, F_CA, F_COUNT };

typedef struct file_stamp {
    bool present;
    time_t mtime;
    long mtime_ns;
    off_t size;
    ino_t ino;
} file_stamp;

struct tls_ctx {
    tls_role role;
    char *files[F_COUNT]; /* cert, key, ca; NULL when not given */
    char *server_name;
    bool no_verify;
    tls_client_cert client_cert;
    char **subjects;
    size_t nsubjects;
    unsigned char (*fingerprints)[32];
    size_t nfingerprints;
    tls_log_fn log;
    void *log_arg;
    SSL_CTX *cur;
    file_stamp stamps[F_COUNT];
    struct timespec last_check;
};

static const char *const file_keys[F_COUNT] = {"cert", "key", "ca"};

const char *tls_strerror(tls_status s)
{
    switch (s) {
    case TLS_OK:
        return "ok";
    case TLS_ERR_FILE:
        return "file not readable";
    case TLS_ERR_CERT:
        return "bad certificate";
    case TLS_ERR_KEY:
        return "bad private key";
    case TLS_ERR_CA:
        return "bad CA file";
    case TLS_ERR_CONFIG:
        return "bad TLS settings";
    }
    return "unknown TLS status";
}

static tls_status fail(tls_error *err, tls_status code, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static tls_status fail(tls_error *err, tls_status code, const char *key, const char *fmt, ...)
{
    if (!err) return code;
    va_list ap;
    va_start(ap, fmt);
    err->code = code;
    err->key = key;
    vsnprintf(err->text, sizeof(err->text), fmt, ap);
    va_end(ap);
    return code;
}

/* OpenSSL's reason for the last failure, and the queue emptied. */
static const char *ossl_reason(char *buf, size_t size)
{
    unsigned long e, last = 0;
    while ((e = ERR_get_error()) != 0)
        last = last ? last : e;
    const char *r = last ? ERR_reason_error_string(last) : NULL;
    snprintf(buf, size, "%s", r ? r : "unknown OpenSSL error");
    return buf;
}

static void tlog(const tls_ctx *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void tlog(const tls_ctx *t, const char *fmt, ...)
{
    if (!t->log) return;
    char text[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    t->log(text, t->log_arg);
}

/* --- fingerprints and names --------------------------------------------------- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* 64 hex digits, optionally in pairs separated by ':'. */
static bool parse_fingerprint(const char *s, unsigned char out[32])
{
    size_t n = 0;
    for (const char *p = s; *p;) {
        if (*p == ':') {
            p++;
            continue;
        }
        int hi = hexval((unsigned char)p[0]), lo = hi < 0 ? -1 : hexval((unsigned char)p[1]);
        if (hi < 0 || lo < 0 || n == 32) return false;
        out[n++] = (unsigned char)(hi << 4 | lo);
        p += 2;
    }
    return n == 32;
}

static void format_fingerprint(const unsigned char *md, char *buf, size_t size)
{
    size_t at = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < 32 && at + 3 < size; i++)
        at += (size_t)snprintf(buf + at, size - at, "%s%02X", i ? ":" : "", md[i]);
}

static void name_text(const X509_NAME *name, unsigned long flags, char *buf, size_t size)
{
    buf[0] = '\0';
    BIO *b = BIO_new(BIO_s_mem());
    if (!b) return;
    X509_NAME_print_ex(b, name, 0, flags);
    int n = BIO_read(b, buf, (int)size - 1);
    buf[n > 0 ? n : 0] = '\0';
    BIO_free(b);
}

/* The peer address: the SSL's app data when set (see tls_ssl_new()), else
 * read from its socket; "?" when unknown. */
static void peer_of(SSL *ssl, char *buf, size_t size)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char ip[INET6_ADDRSTRLEN] = "?";
    const char *known = SSL_get_app_data(ssl);
    int fd = SSL_get_fd(ssl);
    snprintf(buf, size, "%s", known && *known ? known : "?");
    if (known && *known) return;
    if (fd < 0 || getpeername(fd, (struct sockaddr *)&ss, &len) != 0) return;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
        snprintf(buf, size, "%s:%u", ip, ntohs(in->sin_port));
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
        snprintf(buf, size, "[%s]:%u", ip, ntohs(in6->sin6_port));
    }
}

/* True when the leaf certificate is on an allow list (or there are none). */
static bool cert_allowed(const tls_ctx *t, X509 *x, char *subject, size_t ssize, char *fp,
                         size_t fsize)
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    const X509_NAME *name = X509_get_subject_name(x);
    name_text(name, XN_FLAG_RFC2253, subject, ssize);
    X509_digest(x, EVP_sha256(), md, &mdlen);
    format_fingerprint(md, fp, fsize);
    if (t->nsubjects == 0 && t->nfingerprints == 0) return true;
    for (size_t i = 0; i < t->nfingerprints; i++)
        if (mdlen == 32 && !memcmp(md, t->fingerprints[i], 32)) return true;
    char oneline[512], cn[256] = "";
    name_text(name, XN_FLAG_ONELINE, oneline, sizeof(oneline));
    X509_NAME_get_text_by_NID((X509_NAME *)name, NID_commonName, cn, sizeof(cn));
    for (size_t i = 0; i < t->nsubjects; i++) {
        const char *s = t->subjects[i];
        if (!strcmp(s, subject) || !strcmp(s, oneline) || (cn[0] && !strcmp(s, cn))) return true;
    }
    return false;
}

/* --- callbacks ---------------------------------------------------------------- */

static int on_verify(int ok, X509_STORE_CTX *xs)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
    tls_ctx *t = ssl ? SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)) : NULL;
    if (!ok || !t || t->role != TLS_SERVER || X509_STORE_CTX_get_error_depth(xs) != 0) return ok;
    char subject[512], fp[100], peer[80];
    if (cert_allowed(t, X509_STORE_CTX_get_current_cert(xs), subject, sizeof(subject), fp,
                     sizeof(fp)))
        return 1;
    peer_of(ssl, peer, sizeof(peer));
    tlog(t,
         "refused the client certificate of %s: subject '%s' (SHA-256 %s) is in neither "
         "allow_subjects nor allow_fingerprints",
         peer, subject, fp);
    X509_STORE_CTX_set_error(xs, X509_V_ERR_APPLICATION_VERIFICATION);
    return 0;
}

/* Logs the fatal alerts this side sends: every refused handshake. */
static void on_info(const SSL *cssl, int where, int ret)
{
    SSL *ssl = (SSL *)cssl;
    if (!(where & SSL_CB_WRITE_ALERT) || ((ret >> 8) & 0xff) != 2 /* fatal */) return;
    tls_ctx *t = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    if (!t || !t->log) return;
    char peer[80], reason[160] = "";
    peer_of(ssl, peer, sizeof(peer));
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    long v = SSL_get_verify_result(ssl);
    if (r)
        snprintf(reason, sizeof(reason), ": %s", r);
    else if (v != X509_V_OK)
        snprintf(reason, sizeof(reason), ": %s", X509_verify_cert_error_string(v));
    tlog(t, "TLS handshake with %s refused (alert '%s')%s", peer, SSL_alert_desc_string_long(ret),
         reason);
}

/* --- building a context --------------------------------------------------------- */

static tls_status check_readable(const char *path, const char *key, tls_error *err)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return fail(err, TLS_ERR_FILE, key, "cannot read %s file %s: %s", key, path,
                    strerror(errno));
    fclose(f);
    return TLS_OK;
}

static void stamp(const char *path, file_stamp *s)
{
    struct stat st;
    memset(s, 0, sizeof(*s));
    if (!path || stat(path, &st) != 0) return;
    s->present = true;
    s->mtime = st.st_mtim.tv_sec;
    s->mtime_ns = st.st_mtim.tv_nsec;
    s->size = st.st_size;
    s->ino = st.st_ino;
}

static tls_status load_identity(SSL_CTX *ctx, const char *cert, const char *key, tls_error *err)
{
    char why[160];
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
        return fail(err, TLS_ERR_CERT, "cert", "cannot use certificate file %s: %s", cert,
                    ossl_reason(why, sizeof(why)));
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
        return fail(err, TLS_ERR_KEY, "key", "cannot use private key file %s: %s", key,
                    ossl_reason(why, sizeof(why)));
    if (SSL_CTX_check_private_key(ctx) != 1)
        return fail(err, TLS_ERR_KEY, "key",
                    "private key file %s does not match the certificate in %s: %s", key, cert,
                    ossl_reason(why, sizeof(why)));
    return TLS_OK;
}

static tls_status load_ca(SSL_CTX *ctx, const tls_ctx *t, tls_error *err)
{
    char why[160];
    const char *ca = t->files[F_CA];
    if (!ca) {
        if (t->role == TLS_CLIENT && SSL_CTX_set_default_verify_paths(ctx) != 1)
            return fail(err, TLS_ERR_CA, "ca", "cannot load the system's CA certificates: %s",
                        ossl_reason(why, sizeof(why)));
        return TLS_OK;
    }
    if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1)
        return fail(err, TLS_ERR_CA, "ca", "cannot use CA file %s: %s", ca,
                    ossl_reason(why, sizeof(why)));
    if (t->role == TLS_SERVER && t->client_cert != TLS_CLIENT_CERT_NONE) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca);
        if (!names)
            return fail(err, TLS_ERR_CA, "ca", "CA file %s holds no certificate: %s", ca,
                        ossl_reason(why, sizeof(why)));
        SSL_CTX_set_client_CA_list(ctx, names);
    }
    return TLS_OK;
}

/* A complete SSL_CTX from t's files, or NULL with err filled. */
static SSL_CTX *build(tls_ctx *t, tls_error *err)
{
    char why[160];
    for (int i = 0; i < F_COUNT; i++)
        if (t->files[i] && check_readable(t->files[i], file_keys[i], err) != TLS_OK) return NULL;
    for (int i = 0; i < F_COUNT; i++)
        stamp(t->files[i], &t->stamps[i]);
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(t->role == TLS_SERVER ? TLS_server_method() : TLS_client_method());
    if (!ctx) {
        fail(err, TLS_ERR_CONFIG, NULL, "cannot make a TLS context: %s",
             ossl_reason(why, sizeof(why)));
        return NULL;
    }
    SSL_CTX_set_app_data(ctx, t);
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1) {
        fail(err, TLS_ERR_CONFIG, NULL, "cannot set the TLS protocol policy: %s",
             ossl_reason(why, sizeof(why)));
        goto fail;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_info_callback(ctx, on_info);
    if (t->files[F_CERT] && load_identity(ctx, t->files[F_CERT], t->files[F_KEY], err) != TLS_OK)
        goto fail;
    if (load_ca(ctx, t, err) != TLS_OK) goto fail;
    int mode = SSL_VERIFY_NONE;
    if (t->role == TLS_CLIENT && !t->no_verify) mode = SSL_VERIFY_PEER;
    if (t->role == TLS_SERVER && t->client_cert != TLS_CLIENT_CERT_NONE)
        mode = SSL_VERIFY_PEER |
               (t->client_cert == TLS_CLIENT_CERT_REQUIRED ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0);
    SSL_CTX_set_verify(ctx, mode, mode == SSL_VERIFY_NONE ? NULL : on_verify);
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

static tls_status check_options(const tls_options *o, tls_error *err)
{
    if (o->role == TLS_SERVER && (!o->cert || !o->key))
        return fail(err, TLS_ERR_CONFIG, o->cert ? "key" : "cert",
                    "a TLS listener needs both 'cert' and 'key'");
    if (!o->cert != !o->key)
        return fail(err, TLS_ERR_CONFIG, o->cert ? "key" : "cert",
                    "'cert' and 'key' go together: give both or neither");
    if (o->role == TLS_SERVER && o->client_cert != TLS_CLIENT_CERT_NONE && !o->ca)
        return fail(err, TLS_ERR_CONFIG, "ca",
                    "checking client certificates needs 'ca' (the CA that issues them)");
    if (o->role == TLS_SERVER && o->client_cert == TLS_CLIENT_CERT_NONE &&
        (o->nallow_subjects || o->nallow_fingerprints))
        return fail(err, TLS_ERR_CONFIG, NULL,
                    "allow_subjects and allow_fingerprints need client_cert: required (or "
                    "optional)");
    unsigned char md[32];
    for (size_t i = 0; i < o->nallow_fingerprints; i++)
        if (!parse_fingerprint(o->allow_fingerprints[i], md))
            return fail(err, TLS_ERR_CONFIG, NULL,
                        "'%s' is not a SHA-256 fingerprint (64 hex digits, ':' between pairs "
                        "allowed); get one with openssl x509 -noout -fingerprint -sha256",
                        o->allow_fingerprints[i]);
    return TLS_OK;
}

tls_ctx *tls_ctx_new(const tls_options *o, tls_error *err)
{
    assert(o);
    if (check_options(o, err) != TLS_OK) return NULL;
    tls_ctx *t = xcalloc(1, sizeof(*t));
    t->role = o->role;
    const char *files[F_COUNT] = {o->cert, o->key, o->ca};
    for (int i = 0; i < F_COUNT; i++)
        t->files[i] = files[i] ? xstrdup(files[i]) : NULL;
    t->server_name = o->server_name ? xstrdup(o->server_name) : NULL;
    t->no_verify = o->no_verify;
    t->client_cert = o->client_cert;
    t->nsubjects = o->nallow_subjects;
    t->subjects = xcalloc(t->nsubjects ? t->nsubjects : 1, sizeof(*t->subjects));
    for (size_t i = 0; i < t->nsubjects; i++)
        t->subjects[i] = xstrdup(o->allow_subjects[i]);
    t->nfingerprints = o->nallow_fingerprints;
    t->fingerprints = xcalloc(t->nfingerprints ? t->nfingerprints : 1, sizeof(*t->fingerprints));
    for (size_t i = 0; i < t->nfingerprints; i++)
        parse_fingerprint(o->allow_fingerprints[i], t->fingerprints[i]);
    t->log = o->log;
    t->log_arg = o->log_arg;
    clock_gettime(CLOCK_MONOTONIC, &t->last_check);
    t->cur = build(t, err);
    if (!t->cur) {
        tls_ctx_free(t);
        return NULL;
    }
    return t;
}

void tls_ctx_free(tls_ctx *t)
{
    if (!t) return;
    SSL_CTX_free(t->cur);
    for (int i = 0; i < F_COUNT; i++)
        free(t->files[i]);
    free(t->server_name);
    for (size_t i = 0; i < t->nsubjects; i++)
        free(t->subjects[i]);
    free(t->subjects);
    free(t->fingerprints);
    free(t);
}

tls_role tls_ctx_role(const tls_ctx *t)
{
    return t->role;
}

tls_status tls_ctx_reload(tls_ctx *t, tls_error *err)
{
    clock_gettime(CLOCK_MONOTONIC, &t->last_check);
    SSL_CTX *ctx = build(t, err);
    if (!ctx) return err ? err->code : TLS_ERR_CONFIG;
    SSL_CTX_free(t->cur);
    t->cur = ctx;
    return TLS_OK;
}

static bool files_changed(const tls_ctx *t)
{
    for (int i = 0; i < F_COUNT; i++) {
        if (!t->files[i]) continue;
        file_stamp now;
        stamp(t->files[i], &now);
        const file_stamp *was = &t->stamps[i];
        if (now.present != was->present || now.mtime != was->mtime ||
            now.mtime_ns != was->mtime_ns || now.size != was->size || now.ino != was->ino)
            return true;
    }
    return false;
}

static void maybe_reload(tls_ctx *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (now.tv_sec - t->last_check.tv_sec < TLS_RELOAD_CHECK_S) return;
    t->last_check = now;
    if (!files_changed(t)) return;
    tls_error err;
    if (tls_ctx_reload(t, &err) == TLS_OK)
        tlog(t, "TLS certificates reloaded: %s changed",
             t->files[F_CERT] ? t->files[F_CERT]
             : t->files[F_CA] ? t->files[F_CA]
                              : "a file");
    else
        tlog(t, "TLS certificates changed but were not reloaded, the previous ones stay in use: %s",
             err.text);
}

static bool is_ip_literal(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

SSL *tls_ssl_new(tls_ctx *t, const char *host)
{
    maybe_reload(t);
    SSL *ssl = SSL_new(t->cur);
    if (!ssl) {
        fprintf(stderr, "tern: out of memory (SSL)\n");
        abort();
    }
    if (t->role != TLS_CLIENT) return ssl;
    const char *name = t->server_name ? t->server_name : host;
    if (!name || !*name) return ssl;
    if (is_ip_literal(name)) {
        if (!t->no_verify) X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name);
    } else {
        SSL_set_tlsext_host_name(ssl, name);
        if (!t->no_verify) {
            X509_VERIFY_PARAM_set_hostflags(SSL_get0_param(ssl),
                                            X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            X509_VERIFY_PARAM_set1_host(SSL_get0_param(ssl), name, 0);
        }
    }
    return ssl;
}

bool tls_peer_subject(SSL *ssl, char *buf, size_t size)
{
    buf[0] = '\0';
    X509 *x = ssl ? SSL_get1_peer_certificate(ssl) : NULL;
    if (!x) return false;
    name_text(X509_get_subject_name(x), XN_FLAG_RFC2253, buf, size);
    X509_free(x);
    return true;
}

bool tls_peer_fingerprint(SSL *ssl, char *buf, size_t size)
{
    buf[0] = '\0';
    X509 *x = ssl ? SSL_get1_peer_certificate(ssl) : NULL;
    if (!x) return false;
    unsigned char md[32];
    unsigned int n = 0;
    bool ok = X509_digest(x, EVP_sha256(), md, &n) == 1 && n == 32;
    if (ok) format_fingerprint(md, buf, size);
    X509_free(x);
    return ok;
}

void tls_failure_reason(SSL *ssl, const unsigned long *errs, size_t nerrs, char *buf, size_t size)
{
    size_t at = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < nerrs && at + 2 < size; i++) {
        const char *r = ERR_reason_error_string(errs[i]);
        if (!r) continue;
        at += (size_t)snprintf(buf + at, size - at, "%s%s", at ? "; " : "", r);
    }
    long v = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    if (v != X509_V_OK && at + 2 < size)
        snprintf(buf + at, size - at, "%s%s", at ? "; " : "", X509_verify_cert_error_string(v));
}
