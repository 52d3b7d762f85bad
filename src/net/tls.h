/*
 * tls: TLS contexts for Tern's listeners and senders (OpenSSL).
 *
 * A tls_ctx is built from configuration (certificate chain, key, CA file,
 * client-certificate policy, allow lists) and owns the current OpenSSL
 * SSL_CTX. The policy is fixed, not configurable: TLS 1.2 minimum and 1.3
 * maximum, ECDHE key exchange with AEAD ciphers only for 1.2 (OpenSSL's
 * default 1.3 suites), no compression, no renegotiation, no session tickets
 * that outlive a reload. docs/tls.md says why.
 *
 * Servers may require (or accept) a client certificate issued by the CA
 * file and then allow only listed subjects (the whole DN in OpenSSL's
 * one-line RFC 2253 form, or just the CN) or SHA-256 fingerprints. Clients
 * verify the server's chain against the CA file (or the system store) and
 * its host name (or IP address), and send SNI.
 *
 * Reload: tls_ctx_reload() builds a new SSL_CTX from the same files; when
 * that fails the old one stays in use and the error says why. tls_ssl_new()
 * (one per connection) also looks at the files' mtimes, at most every
 * TLS_RELOAD_CHECK_S seconds, and reloads when they changed. Connections
 * already open keep the SSL_CTX they started with (OpenSSL counts
 * references), so nothing is cut off by a reload.
 *
 * The tls_ctx is single-threaded (used from its event loop's thread). It
 * holds no global state; OpenSSL initializes itself.
 */
#ifndef TERN_TLS_H
#define TERN_TLS_H

#include <stdbool.h>
#include <stddef.h>

typedef struct ssl_st SSL;

typedef enum tls_status {
    TLS_OK = 0,
    TLS_ERR_FILE,   /* a file is missing or unreadable */
    TLS_ERR_CERT,   /* the certificate cannot be used */
    TLS_ERR_KEY,    /* the key cannot be read or does not match the certificate */
    TLS_ERR_CA,     /* the CA file cannot be used */
    TLS_ERR_CONFIG, /* the options contradict each other */
} tls_status;

/* A static, human-readable name for a status; never NULL. */
const char *tls_strerror(tls_status s);

typedef struct tls_error {
    tls_status code;
    const char *key; /* the option at fault: "cert", "key", "ca", or NULL */
    char text[512];  /* names the file and OpenSSL's reason */
} tls_error;

typedef enum tls_role {
    TLS_SERVER = 0,
    TLS_CLIENT,
} tls_role;

typedef enum tls_client_cert {
    TLS_CLIENT_CERT_NONE = 0, /* not asked for */
    TLS_CLIENT_CERT_OPTIONAL, /* asked for; checked when sent */
    TLS_CLIENT_CERT_REQUIRED, /* a connection without one is refused */
} tls_client_cert;

/* Receives one complete sentence (borrowed for the call). */
typedef void (*tls_log_fn)(const char *text, void *arg);

/* Everything is borrowed during tls_ctx_new() and copied. */
typedef struct tls_options {
    tls_role role;
    const char *cert; /* PEM chain, leaf first; required for servers */
    const char *key;  /* PEM private key; required with cert */
    const char *ca;   /* PEM CA certificates to verify the peer; NULL: for a
                         client, the system store; for a server, no client
                         certificates can be checked */
    /* server */
    tls_client_cert client_cert;
    const char *const *allow_subjects; /* DN or CN; none: any from the CA */
    size_t nallow_subjects;
    const char *const *allow_fingerprints; /* SHA-256, hex, ':' optional */
    size_t nallow_fingerprints;
    /* client */
    bool no_verify;          /* accept any server certificate (tests only) */
    const char *server_name; /* checked against the certificate and sent as
                                SNI; NULL: the host connected to */
    tls_log_fn log;          /* refused handshakes, reloads; may be NULL */
    void *log_arg;
} tls_options;

typedef struct tls_ctx tls_ctx;

#define TLS_RELOAD_CHECK_S 3

/* Loads the files and makes the context. Returns NULL and fills err (which
 * names the file and OpenSSL's reason) on failure. Caller frees. */
tls_ctx *tls_ctx_new(const tls_options *o, tls_error *err);
/* NULL is a no-op. Connections using the context may outlive it. */
void tls_ctx_free(tls_ctx *t);
tls_role tls_ctx_role(const tls_ctx *t);

/* Reloads the files now. On failure the previous certificates stay in use,
 * err says why and TLS_OK is not returned. */
tls_status tls_ctx_reload(tls_ctx *t, tls_error *err);

/* A new SSL for one connection (checks the files' mtimes first, see above).
 * For a client, host is what is being connected to (used for the name check
 * and SNI unless server_name was given). Never NULL (aborts when out of
 * memory); the caller owns it (usually handing it to a bufferevent). The
 * caller may set the SSL's app data (SSL_set_app_data) to the peer's
 * address text, which must then outlive the SSL; logs name the peer with
 * it (else with the socket's peer address, when still known). */
SSL *tls_ssl_new(tls_ctx *t, const char *host);

/* The verified peer certificate, once the handshake is done: its subject in
 * RFC 2253 form and its SHA-256 fingerprint as upper-case hex pairs joined
 * by ':'. Both are "" when the peer sent no certificate. Return false then. */
bool tls_peer_subject(SSL *ssl, char *buf, size_t size);
bool tls_peer_fingerprint(SSL *ssl, char *buf, size_t size);

/* Writes why a handshake or TLS connection failed into buf: the OpenSSL
 * error codes given (e.g. from bufferevent_get_openssl_error()), then the
 * certificate verification result when it is not "ok". Writes "" when
 * there is nothing to say. */
void tls_failure_reason(SSL *ssl, const unsigned long *errs, size_t nerrs, char *buf, size_t size);

#endif
