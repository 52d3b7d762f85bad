/*
 * net: Tern's one connection layer, a thin wrapper over libevent
 * bufferevents.
 *
 * It parses "host:port" addresses, listens, connects, and hands out net_conn
 * objects: a connection with an input and an output evbuffer and three
 * callbacks (data arrived, output drained, connected/closed/failed). Every
 * socket gets TCP_NODELAY (MLLP is request/response: Nagle would hold each
 * small ACK back) and SO_KEEPALIVE (to notice peers that vanished from a
 * long-idle link).
 *
 * Callers never see the bufferevent, so they do not know whether bytes go
 * over a plain socket or through TLS: a TLS context (net/tls.h) given to
 * net_listen_tls()/net_connect_tls() makes every connection an OpenSSL
 * bufferevent over the socket (made in conn_new() in net.c); code above this
 * layer keeps reading and writing evbuffers. A TLS handshake that fails is
 * reported as NET_EV_ERROR with OpenSSL's reason and the peer.
 *
 * Everything runs on the caller's event_base, on the caller's thread; the
 * layer starts no threads and keeps no global state. Host names are resolved
 * with getaddrinfo(), which blocks the loop while DNS answers; configure
 * addresses or names from /etc/hosts where that matters. When a name has
 * several addresses (localhost: ::1 and 127.0.0.1), net_connect() tries them
 * in order.
 *
 * Writing to a peer that has gone raises SIGPIPE on Linux; a process using
 * this layer must ignore it (net_ignore_sigpipe()).
 */
#ifndef TERN_NET_H
#define TERN_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct evbuffer;
typedef struct tls_ctx tls_ctx;

typedef enum net_status {
    NET_OK = 0,
    NET_ERR_ADDRESS, /* the address text is malformed */
    NET_ERR_RESOLVE, /* the host name does not resolve */
    NET_ERR_LISTEN,  /* bind/listen failed */
    NET_ERR_CONNECT, /* connecting failed (refused, unreachable, ...) */
    NET_ERR_IO,      /* an established connection failed */
} net_status;

/* A static, human-readable name for a status; never NULL. */
const char *net_strerror(net_status s);

/* What failed: the code, the system errno (0 if none) and a sentence that
 * names the address or peer and the cause. */
typedef struct net_error {
    net_status code;
    int sys_errno;
    char text[256];
} net_error;

/* --- addresses ---------------------------------------------------------------- */

#define NET_HOST_MAX 256
/* Room for any formatted address or peer name, NUL included. */
#define NET_ADDR_TEXT_MAX (NET_HOST_MAX + 8)

/* A host (name, IPv4 or IPv6 literal without brackets; "" means any
 * interface when listening) and a port (0: any free port, listening only). */
typedef struct net_addr {
    char host[NET_HOST_MAX];
    uint16_t port;
} net_addr;

/* Parses "host:port", "[v6]:port", "*:port" or ":port" (any interface).
 * An IPv6 literal needs brackets ("[::1]:2575"). On failure err says what is
 * wrong (NET_ERR_ADDRESS) and *out is unspecified. */
net_status net_addr_parse(const char *text, net_addr *out, net_error *err);
/* Builds an address from a separate host (brackets optional around IPv6) and
 * port text ("2575"). */
net_status net_addr_from(const char *host, const char *port, net_addr *out, net_error *err);
/* Parses a port number 0..65535. */
net_status net_port_parse(const char *text, uint16_t *out, net_error *err);
/* Writes "host:port" ("[::1]:2575" for IPv6, "*:2575" for any) into buf,
 * which should hold NET_ADDR_TEXT_MAX bytes; returns buf. */
char *net_addr_format(const net_addr *a, char *buf, size_t size);

/* --- connections -------------------------------------------------------------- */

typedef struct net_conn net_conn;

typedef enum net_event {
    NET_EV_CONNECTED, /* an outgoing connection is established */
    NET_EV_EOF,       /* the peer closed its side; no more input */
    NET_EV_ERROR,     /* connecting or the connection failed; err says why */
} net_event;

/* Callbacks run on the event loop. Any of them may call net_conn_free(c)
 * (and must not touch c afterwards); NULL members are not called. */
typedef struct net_conn_cbs {
    void (*on_read)(net_conn *c, void *arg);    /* new bytes in net_conn_input(c) */
    void (*on_drained)(net_conn *c, void *arg); /* the output buffer has been written out */
    /* err is NULL for NET_EV_CONNECTED; for EOF and ERROR it says what happened
     * (NET_ERR_CONNECT while connecting, else NET_ERR_IO). After EOF or ERROR
     * the connection can no longer read; after ERROR, nor write. */
    void (*on_event)(net_conn *c, net_event ev, const net_error *err, void *arg);
} net_conn_cbs;

/* Installs callbacks (copied) and starts reading. Until this is called an
 * accepted connection reads nothing. */
void net_conn_set_cbs(net_conn *c, const net_conn_cbs *cbs, void *arg);
/* The buffers; owned by c. Consume input with evbuffer_drain/remove. */
struct evbuffer *net_conn_input(net_conn *c);
struct evbuffer *net_conn_output(net_conn *c);
/* Queues bytes for sending (copied). */
void net_conn_write(net_conn *c, const void *data, size_t len);
/* The same for n pieces sent as one run of bytes, in order (copied). */
struct iovec;
void net_conn_writev(net_conn *c, const struct iovec *iov, int n);
/* Stops or resumes reading from the socket (backpressure). Bytes already in
 * the input buffer stay there. */
void net_conn_read_enable(net_conn *c, bool on);
/* The peer as "addr:port"; owned by c, never NULL. */
const char *net_conn_peer(const net_conn *c);
/* True when c runs over TLS. */
bool net_conn_is_tls(const net_conn *c);
/* The verified certificate of a TLS peer, once the handshake is done: its
 * subject (RFC 2253, "CN=lab,O=Hospital") and its SHA-256 fingerprint
 * ("AB:CD:..."), written into buf. False (and "") for plain connections, a
 * handshake still under way, or a peer without a certificate. */
bool net_conn_peer_subject(net_conn *c, char *buf, size_t size);
bool net_conn_peer_fingerprint(net_conn *c, char *buf, size_t size);
/* Closes at once (unsent output is discarded) and frees. NULL is a no-op. */
void net_conn_free(net_conn *c);

/* Starts connecting to addr (port must not be 0). Returns NULL and fills err
 * when the address does not resolve or no socket can be made; otherwise the
 * outcome arrives as NET_EV_CONNECTED or NET_EV_ERROR once the loop runs.
 * Call net_conn_set_cbs() before returning to the loop. Caller frees with
 * net_conn_free(); there is no timeout here (the caller keeps its own). */
net_conn *net_connect(struct event_base *base, const net_addr *addr, net_error *err);
/* Like net_connect(); with tls (a TLS_CLIENT context, borrowed: it must
 * outlive the connection) the TLS handshake follows the TCP connection and
 * NET_EV_CONNECTED comes after it. The server's certificate is checked
 * against addr->host unless the context names a server_name. */
net_conn *net_connect_tls(struct event_base *base, const net_addr *addr, tls_ctx *tls,
                          net_error *err);

/* --- listening ---------------------------------------------------------------- */

typedef struct net_listener net_listener;

/* Called for each accepted connection; the callee owns c and must either
 * net_conn_set_cbs() it or net_conn_free() it. */
typedef void (*net_accept_fn)(net_conn *c, void *arg);

/* Listens on addr. Returns NULL and fills err (NET_ERR_RESOLVE or
 * NET_ERR_LISTEN) on failure. When accept() fails (out of file descriptors)
 * the listener pauses for a quarter second instead of spinning. */
net_listener *net_listen(struct event_base *base, const net_addr *addr, net_accept_fn cb, void *arg,
                         net_error *err);
/* Like net_listen(); with tls (a TLS_SERVER context, borrowed: it must
 * outlive the listener and its connections) every accepted connection is
 * TLS. Its handshake runs before any input reaches on_read; a failed one
 * comes as NET_EV_ERROR and never stops the listener. */
net_listener *net_listen_tls(struct event_base *base, const net_addr *addr, tls_ctx *tls,
                             net_accept_fn cb, void *arg, net_error *err);
/* The port actually bound (useful after listening on port 0). */
uint16_t net_listener_port(const net_listener *l);
/* Stops listening and frees; accepted connections are not affected. NULL is a
 * no-op. */
void net_listener_free(net_listener *l);

/* --- TLS for evhttp ----------------------------------------------------------- */

struct evhttp;
struct bufferevent;

/* Makes every connection the evhttp server accepts a TLS one with t (a
 * TLS_SERVER context, borrowed: it must outlive the server). A failed
 * handshake is logged by t and only closes that connection. */
void net_http_use_tls(struct evhttp *http, tls_ctx *t);
/* The largest header block (request line and headers) an evhttp server of
 * Tern's reads; a larger one is refused with 400 and the connection closed. */
#define NET_HTTP_MAX_HEADERS (64u << 10)
/* Limits for hostile clients on an evhttp server: a connection that sends no
 * byte of its request (or takes no byte of the answer) for timeout_ms is
 * closed (slow senders), and header blocks stop at NET_HTTP_MAX_HEADERS. */
void net_http_limit(struct evhttp *http, uint64_t timeout_ms);
/* A new OpenSSL bufferevent, not yet connected, for an evhttp client
 * connection to host (evhttp_connection_base_bufferevent_new()); t is a
 * TLS_CLIENT context (borrowed). Never NULL. */
struct bufferevent *net_tls_client_bev(struct event_base *base, tls_ctx *t, const char *host);

/* Sets SIGPIPE to be ignored for the process (write errors then come back as
 * EPIPE). Call once at startup of any program that uses this layer. */
void net_ignore_sigpipe(void);

#endif
