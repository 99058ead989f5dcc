/* TLS as a layer between a stream transport and the protocol (asyncio's
 * SSLProtocol, Lib/asyncio/sslproto.py), on OpenSSL through memory BIOs: it
 * moves no bytes itself, so it runs over every stream driver and host alike
 * (the built-in loop, libuv, the manual host).
 *
 * The layer is a protocol factory. Give pg_tls_protocol_factory and a
 * pg_tls_factory wherever a factory goes (pg_tcp_listen, pg_tcp_connect,
 * pg_uv_accept, pg_manual_stream_new, ...):
 *
 *   pg_tls_context *tls;
 *   pg_tls_config cfg = { .server = true, .cert_file = "cert.pem", .key_file = "key.pem" };
 *   pg_tls_context_new(&cfg, &tls, &err);
 *   pg_tls_factory tf = { .tls = tls, .factory = echo_protocol_factory, .arg = &ctx };
 *   pg_tcp_listen(loop, host, port, NULL, pg_tls_protocol_factory, &tf, &server);
 *
 * A generated protocol whose spec has a tls block needs none of that: its
 * NAME_tls_config fills the config, NAME_listen_tls, NAME_connect_tls and
 * NAME_start_tls take the context (docs/tls.md).
 *
 * Semantics, as asyncio's:
 *   - the handshake starts as soon as the connection is made; the protocol
 *     above is made (factory) and its connection_made called only once the
 *     handshake completed; a handshake that fails or times out (60 s by
 *     default) makes no protocol: pg_tls_factory.handshake_failed hears of it
 *     with the reason (asyncio raises it from create_connection, or logs it);
 *   - the transport above is a stream transport like any other (write buffer,
 *     watermarks of 512 KiB / 128 KiB by default, pause_reading, switching
 *     protocols) whose bytes are the plaintext; ciphertext back-pressure comes
 *     from the transport below, whose pause_writing stops encrypting;
 *   - close() sends close_notify once the buffer drained, waits for the
 *     peer's (or its EOF) for at most the shutdown timeout (30 s by default),
 *     then closes the connection below; connection_lost comes last. abort()
 *     sends no close_notify;
 *   - write_eof is not supported (can_write_eof false, write_eof -ENOTSUP);
 *     the peer's close_notify is eof_received, whose answer has no effect: the
 *     connection then closes, as asyncio's;
 *   - a peer that closes the connection without close_notify is an error
 *     (-ECONNRESET); so are TLS failures after the handshake (-EPROTO) and a
 *     shutdown that times out (-ETIMEDOUT). pg_tls_get_error() tells the
 *     reason from inside connection_lost;
 *   - renegotiation is refused (TLS 1.2); TLS 1.2 is the minimum by default.
 *
 * Integer results are 0 or a negative errno value. */
#ifndef PROTOGEN_TLS_H
#define PROTOGEN_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protogen/protocol.h"
#include "protogen/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pg_tls_error pg_tls_error;

/* Protocol versions (pg_tls_config.min_version). */
#define PG_TLS_VERSION_1_2 0x0303
#define PG_TLS_VERSION_1_3 0x0304

/* asyncio's defaults (constants.SSL_HANDSHAKE_TIMEOUT, SSL_SHUTDOWN_TIMEOUT,
 * FLOW_CONTROL_HIGH_WATER_SSL_WRITE). */
#define PG_TLS_DEFAULT_HANDSHAKE_TIMEOUT_MS 60000u
#define PG_TLS_DEFAULT_SHUTDOWN_TIMEOUT_MS 30000u
#define PG_TLS_DEFAULT_HIGH_WATER ((size_t)512 * 1024)

/* Zero-initialize, then fill what applies. A zero config of a client is
 * secure: the system's trust store, verification on. */
typedef struct pg_tls_config {
    bool server; /* false: a client */
    /* The certificate chain (PEM, the leaf first) and its private key: a
     * server's (required), a client's for client authentication (optional). */
    const char *cert_file;
    const char *key_file;
    /* Whom to trust (PEM): a client verifies the server against it (NULL: the
     * system's store); a server given one asks clients for a certificate. */
    const char *ca_file;
    /* A server with ca_file: refuse clients without a valid certificate
     * (false: ask, verify what is given, accept none). */
    bool require_client_cert;
    /* A client: the name sent for SNI and checked against the server's
     * certificate (a DNS name or an IP address); NULL checks no name. */
    const char *server_name;
    /* A client: true turns verification off (test setups only). */
    bool insecure_no_verify;
    /* ALPN, in order of preference ("h2", "http/1.1"); a server picks the
     * first of its own that the client offers, and goes on without ALPN when
     * none matches. */
    const char *const *alpn;
    size_t alpn_count;
    int min_version; /* PG_TLS_VERSION_*; 0: TLS 1.2 */
    int max_version; /* PG_TLS_VERSION_*; 0: the newest OpenSSL has */
    /* 0: the defaults above. */
    uint32_t handshake_timeout_ms;
    uint32_t shutdown_timeout_ms;
    size_t write_high_water; /* the transport above's high watermark; low = high/4 */
    /* Optional: a handshake failed on a connection whose pg_tls_factory has no
     * handshake_failed of its own (e.g. a server's, made by NAME_listen_tls). */
    void (*handshake_failed)(void *arg, const pg_tls_error *error);
    void *handshake_failed_arg;
} pg_tls_config;

/* Why a TLS connection failed. */
struct pg_tls_error {
    int error;        /* negative errno: -EKEYREJECTED (the peer's certificate
                         failed verification), -EPROTO (any other TLS failure,
                         an alert from the peer included), -ECONNRESET (closed
                         without close_notify), -ECONNABORTED (handshake timed
                         out), -ETIMEDOUT (shutdown timed out), or the
                         connection's own error */
    long verify_result; /* OpenSSL's X509_V_* of the peer's certificate (0: ok) */
    char reason[256]; /* e.g. "certificate verify failed: Hostname mismatch" */
};

/* The shared part: OpenSSL's context with the certificates loaded. Safe to
 * share between loops on several threads; free it whenever (connections keep
 * what they need). On error *out is NULL and err (if not NULL) says why. */
typedef struct pg_tls_context pg_tls_context;
int pg_tls_context_new(const pg_tls_config *config, pg_tls_context **out, pg_tls_error *err);
void pg_tls_context_free(pg_tls_context *tls);

/* The argument of pg_tls_protocol_factory; copied at each connection, so it
 * may go once the last connection was made. */
typedef struct pg_tls_factory {
    pg_tls_context *tls;
    pg_protocol_factory factory; /* the protocol above TLS */
    void *arg;
    /* Optional: a handshake failed (no protocol was made). */
    void (*handshake_failed)(void *arg, const pg_tls_error *error);
    void *handshake_failed_arg;
} pg_tls_factory;

/* A pg_tls_factory kept by tls (freed with it) for a listener, which needs
 * its factory for as long as it accepts, and tls anyway: handshake failures
 * go to the config's handshake_failed. NULL: out of memory, or tls or
 * factory NULL. What NAME_listen_tls uses. */
const pg_tls_factory *pg_tls_context_factory(pg_tls_context *tls, pg_protocol_factory factory, void *arg);

/* arg: a pg_tls_factory. Makes the TLS layer of one connection: the protocol
 * of the transport below. -ENOMEM. */
int pg_tls_protocol_factory(void *arg, pg_protocol *out);

/* asyncio's loop.start_tls (STARTTLS): the open transport t goes on in TLS,
 * the protocol the factory makes taking over once the handshake completed
 * (the current protocol gets no further callback). pending holds bytes
 * already read that belong to the TLS stream (e.g. a ClientHello that came
 * with the plaintext command): they are fed to TLS first. As
 * pg_transport_switch_protocol: -EINVAL, -EBUSY while writing is paused. */
int pg_tls_start(pg_transport *t, const pg_tls_factory *factory, const void *pending, size_t len);

/* get_extra_info's TLS keys (asyncio: peercert, cipher, version, ALPN), for
 * the transport above, after connection_made. */
typedef struct pg_tls_info {
    const char *version;  /* "TLSv1.3" */
    const char *cipher;   /* "TLS_AES_256_GCM_SHA384" */
    char alpn[256];       /* the protocol agreed on; "" for none */
    bool peer_cert;       /* the peer sent a certificate */
    char peer_subject[256]; /* its subject, RFC 2253 ("CN=localhost,O=test") */
    char peer_issuer[256];
} pg_tls_info;

/* -ENOTSUP for a transport that is not TLS's, -EBADF for a stale one. */
int pg_tls_get_info(const pg_transport *t, pg_tls_info *out);
/* Why the connection failed (out->error 0: it did not), e.g. from inside
 * connection_lost. -ENOTSUP, -EBADF as above. */
int pg_tls_get_error(const pg_transport *t, pg_tls_error *out);
/* OpenSSL's SSL * (asyncio's ssl_object), or NULL. */
void *pg_tls_ssl_object(const pg_transport *t);

#ifdef __cplusplus
}
#endif
#endif
