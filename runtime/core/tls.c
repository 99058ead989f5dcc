/* TLS between a stream transport and its protocol (protogen/tls.h): the
 * layer is the protocol of the transport below (ciphertext) and the driver
 * of a core stream transport above (plaintext), with OpenSSL in between
 * through two memory BIOs. No system call: bytes move through the
 * transports, the timeouts through the host's timers.
 *
 * It follows asyncio's SSLProtocol (Lib/asyncio/sslproto.py, 3.11) where
 * the states are the same: HANDSHAKE, WRAPPED, FLUSHING (close() called,
 * plaintext still waiting), SHUTDOWN (close_notify sent, waiting for the
 * peer's), then DONE (the connection below is being ended).
 *
 * Lifetime: the layer is freed once both the transport below has called its
 * connection_lost and the transport above (if it was made) has released its
 * driver; neither happens inside a call of the layer's own, so no callback
 * frees the layer under its caller. */
#include <arpa/inet.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protogen/machine.h" /* pg_transport_host */
#include "protogen/tls.h"

#include "core_internal.h"

/* Reading below stops while the protocol above does not read and this much
 * ciphertext waits (asyncio's FLOW_CONTROL_HIGH_WATER_SSL_READ), and starts
 * again at a quarter of it. */
#define PG__TLS_READ_HIGH ((size_t)256 * 1024)
/* Plaintext is encrypted and handed down in pieces of this size, so that the
 * transport below can pause us between two. */
#define PG__TLS_WRITE_PIECE ((size_t)64 * 1024)
/* Small gathers are encrypted as one record. */
#define PG__TLS_GATHER ((size_t)16 * 1024)
/* What one delivery to the protocol above holds at most. */
#define PG__TLS_DELIVER_MAX ((size_t)256 * 1024)

/* A pg_tls_factory the context keeps for a listener (pg_tls_context_factory). */
typedef struct pg__tls_kept {
    pg_tls_factory factory;
    struct pg__tls_kept *next;
} pg__tls_kept;

struct pg_tls_context {
    SSL_CTX *ctx;
    atomic_int refs; /* the caller's, and one per connection */
    _Atomic(pg__tls_kept *) kept; /* freed with the context */
    void (*handshake_failed)(void *arg, const pg_tls_error *error);
    void *handshake_failed_arg;
    bool server;
    bool verify;
    char *server_name;
    bool server_name_ip;
    unsigned char *alpn; /* wire format: length-prefixed names */
    size_t alpn_len;
    uint32_t handshake_ms;
    uint32_t shutdown_ms;
    size_t high;
};

typedef enum pg__tls_state {
    PG__TLS_NEW,       /* before the connection below is made */
    PG__TLS_HANDSHAKE,
    PG__TLS_WRAPPED,
    PG__TLS_FLUSHING,  /* close() above, its plaintext not all encrypted yet */
    PG__TLS_SHUTDOWN,  /* our close_notify sent, the peer's awaited */
    PG__TLS_DONE,      /* the connection below is being ended */
} pg__tls_state;

typedef struct pg__tls {
    pg_tls_context *tls;
    SSL *ssl;
    BIO *rbio; /* ciphertext from the peer, for OpenSSL */
    BIO *wbio; /* ciphertext from OpenSSL, for the peer */
    pg_host *host;
    pg_transport *lower; /* NULL before connection_made and after connection_lost */
    pg_transport *upper; /* NULL before the handshake completed and once released */
    pg_protocol_factory factory;
    void *arg;
    void (*handshake_failed)(void *arg, const pg_tls_error *error);
    void *handshake_failed_arg;
    uint8_t state;        /* pg__tls_state */
    bool upper_made;      /* the handshake completed and the protocol above exists */
    bool lower_lost;
    bool lower_eof;       /* the peer shut its side of the connection below */
    bool peer_closed;     /* the peer's close_notify came */
    bool lower_write_paused;
    bool lower_read_paused;
    bool app_reading;     /* the transport above wants plaintext */
    bool app_wants_write; /* the transport above waits for room */
    bool write_blocked;   /* SSL_write waits for a read (see pg__tls_encrypt) */
    bool pumping;         /* tls_pump is running: a nested call asks again instead */
    bool pump_again;
    pg_timer deadline; /* the handshake's or the shutdown's timeout */
    pg_timer kick;     /* work deferred out of a driver call of the core */
    /* Plaintext decrypted and not yet taken by the protocol above: bytes
     * [plain_head, plain_len) of plain. */
    uint8_t *plain;
    size_t plain_head;
    size_t plain_len;
    size_t plain_cap;
    pg_tls_error err;
} pg__tls;

static const pg__linger_driver_ops pg__tls_driver_ops;
static bool pg__tls_close_above(pg_transport *lower);

/* ---- contexts ----------------------------------------------------------- */

static void pg__tls_context_unref(pg_tls_context *tls)
{
    if (tls == NULL || atomic_fetch_sub(&tls->refs, 1) != 1)
        return;
    SSL_CTX_free(tls->ctx);
    for (pg__tls_kept *k = atomic_load(&tls->kept), *next; k != NULL; k = next) {
        next = k->next;
        free(k);
    }
    free(tls->server_name);
    free(tls->alpn);
    free(tls);
}

void pg_tls_context_free(pg_tls_context *tls)
{
    pg__tls_context_unref(tls);
}

const pg_tls_factory *pg_tls_context_factory(pg_tls_context *tls, pg_protocol_factory factory, void *arg)
{
    if (tls == NULL || factory == NULL)
        return NULL;
    pg__tls_kept *k = malloc(sizeof *k);
    if (k == NULL)
        return NULL;
    k->factory = (pg_tls_factory){ .tls = tls, .factory = factory, .arg = arg };
    /* Listeners on several threads may share the context: a lock-free push. */
    k->next = atomic_load(&tls->kept);
    while (!atomic_compare_exchange_weak(&tls->kept, &k->next, k))
        ;
    return &k->factory;
}

static void pg__tls_set_reason(pg_tls_error *e, int error, const char *fmt, ...)
{
    if (e == NULL)
        return;
    e->error = error;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->reason, sizeof e->reason, fmt, ap);
    va_end(ap);
}

/* The reason OpenSSL's error queue holds (then empties it). */
static void pg__tls_reason_from_queue(pg_tls_error *e, int error, const char *what)
{
    unsigned long code = ERR_peek_error();
    char buf[160];
    if (code != 0) {
        const char *reason = ERR_reason_error_string(code);
        if (reason == NULL) {
            ERR_error_string_n(code, buf, sizeof buf);
            reason = buf;
        }
        pg__tls_set_reason(e, error, "%s: %s", what, reason);
    } else {
        pg__tls_set_reason(e, error, "%s", what);
    }
    ERR_clear_error();
}

/* ALPN names in their wire format: a length byte before each. */
static int pg__tls_alpn_wire(const char *const *names, size_t count, unsigned char **out, size_t *len)
{
    size_t total = 0;
    for (size_t i = 0; i < count; i++) {
        size_t n = names[i] != NULL ? strlen(names[i]) : 0;
        if (n == 0 || n > 255)
            return -EINVAL;
        total += 1 + n;
    }
    unsigned char *p = malloc(total);
    if (p == NULL)
        return -ENOMEM;
    size_t at = 0;
    for (size_t i = 0; i < count; i++) {
        size_t n = strlen(names[i]);
        p[at++] = (unsigned char)n;
        memcpy(p + at, names[i], n);
        at += n;
    }
    *out = p;
    *len = total;
    return 0;
}

/* The server picks the first of its own names the client offers. */
static int pg__tls_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                               unsigned int inlen, void *arg)
{
    (void)ssl;
    const pg_tls_context *tls = arg;
    unsigned char *chosen = NULL;
    if (SSL_select_next_proto(&chosen, outlen, tls->alpn, (unsigned int)tls->alpn_len, in, inlen)
        != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK; /* go on without ALPN */
    *out = chosen;
    return SSL_TLSEXT_ERR_OK;
}

static bool pg__is_ip_address(const char *name)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

int pg_tls_context_new(const pg_tls_config *cfg, pg_tls_context **out, pg_tls_error *err)
{
    if (err != NULL)
        memset(err, 0, sizeof *err);
    if (out == NULL || cfg == NULL) {
        pg__tls_set_reason(err, -EINVAL, "no config");
        return -EINVAL;
    }
    *out = NULL;
    if (cfg->server && (cfg->cert_file == NULL || cfg->key_file == NULL)) {
        pg__tls_set_reason(err, -EINVAL, "a TLS server needs cert_file and key_file");
        return -EINVAL;
    }
    if ((cfg->cert_file == NULL) != (cfg->key_file == NULL) || (cfg->alpn_count > 0 && cfg->alpn == NULL)) {
        pg__tls_set_reason(err, -EINVAL, "cert_file and key_file go together; alpn_count needs alpn");
        return -EINVAL;
    }
    int min_version = cfg->min_version != 0 ? cfg->min_version : PG_TLS_VERSION_1_2;
    int max_version = cfg->max_version;
    if ((min_version != PG_TLS_VERSION_1_2 && min_version != PG_TLS_VERSION_1_3)
        || (max_version != 0 && max_version != PG_TLS_VERSION_1_2 && max_version != PG_TLS_VERSION_1_3)
        || (max_version != 0 && max_version < min_version)) {
        pg__tls_set_reason(err, -EINVAL, "min_version, max_version: TLS 1.2 or 1.3, min <= max");
        return -EINVAL;
    }
    pg_tls_context *tls = calloc(1, sizeof *tls);
    if (tls == NULL) {
        pg__tls_set_reason(err, -ENOMEM, "out of memory");
        return -ENOMEM;
    }
    atomic_init(&tls->refs, 1);
    atomic_init(&tls->kept, NULL);
    tls->handshake_failed = cfg->handshake_failed;
    tls->handshake_failed_arg = cfg->handshake_failed_arg;
    tls->server = cfg->server;
    tls->verify = cfg->server ? cfg->ca_file != NULL : !cfg->insecure_no_verify;
    tls->handshake_ms = cfg->handshake_timeout_ms != 0 ? cfg->handshake_timeout_ms : PG_TLS_DEFAULT_HANDSHAKE_TIMEOUT_MS;
    tls->shutdown_ms = cfg->shutdown_timeout_ms != 0 ? cfg->shutdown_timeout_ms : PG_TLS_DEFAULT_SHUTDOWN_TIMEOUT_MS;
    tls->high = cfg->write_high_water != 0 ? cfg->write_high_water : PG_TLS_DEFAULT_HIGH_WATER;
    int r = -ENOMEM;
    ERR_clear_error();
    tls->ctx = SSL_CTX_new(cfg->server ? TLS_server_method() : TLS_client_method());
    if (tls->ctx == NULL) {
        pg__tls_reason_from_queue(err, -ENOMEM, "SSL_CTX_new");
        goto fail;
    }
    SSL_CTX_set_min_proto_version(tls->ctx, min_version);
    SSL_CTX_set_max_proto_version(tls->ctx, max_version);
    /* Renegotiation is refused (TLS 1.2; TLS 1.3 has none). */
    SSL_CTX_set_options(tls->ctx, SSL_OP_NO_RENEGOTIATION);
    /* Idle connections give their record buffers back. */
    SSL_CTX_set_mode(tls->ctx, SSL_MODE_RELEASE_BUFFERS);
    /* A write OpenSSL could not finish is retried from the transport's buffer,
     * which may have moved. */
    SSL_CTX_set_mode(tls->ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    r = -EINVAL;
    if (cfg->cert_file != NULL) {
        if (SSL_CTX_use_certificate_chain_file(tls->ctx, cfg->cert_file) != 1) {
            pg__tls_reason_from_queue(err, -EINVAL, "cannot load the certificate chain");
            goto fail;
        }
        if (SSL_CTX_use_PrivateKey_file(tls->ctx, cfg->key_file, SSL_FILETYPE_PEM) != 1) {
            pg__tls_reason_from_queue(err, -EINVAL, "cannot load the private key");
            goto fail;
        }
        if (SSL_CTX_check_private_key(tls->ctx) != 1) {
            pg__tls_reason_from_queue(err, -EINVAL, "the private key does not match the certificate");
            goto fail;
        }
    }
    if (cfg->ca_file != NULL) {
        if (SSL_CTX_load_verify_locations(tls->ctx, cfg->ca_file, NULL) != 1) {
            pg__tls_reason_from_queue(err, -EINVAL, "cannot load the CA file");
            goto fail;
        }
    } else if (!cfg->server && tls->verify && SSL_CTX_set_default_verify_paths(tls->ctx) != 1) {
        pg__tls_reason_from_queue(err, -EINVAL, "cannot load the system's trust store");
        goto fail;
    }
    if (tls->verify) {
        int mode = SSL_VERIFY_PEER;
        if (cfg->server && cfg->require_client_cert)
            mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
        SSL_CTX_set_verify(tls->ctx, mode, NULL);
    } else {
        SSL_CTX_set_verify(tls->ctx, SSL_VERIFY_NONE, NULL);
    }
    if (!cfg->server && cfg->server_name != NULL && cfg->server_name[0] != '\0') {
        tls->server_name = strdup(cfg->server_name);
        if (tls->server_name == NULL) {
            r = -ENOMEM;
            pg__tls_set_reason(err, r, "out of memory");
            goto fail;
        }
        tls->server_name_ip = pg__is_ip_address(cfg->server_name);
    }
    if (cfg->alpn_count > 0) {
        r = pg__tls_alpn_wire(cfg->alpn, cfg->alpn_count, &tls->alpn, &tls->alpn_len);
        if (r < 0) {
            pg__tls_set_reason(err, r, "ALPN names are 1 to 255 bytes");
            goto fail;
        }
        if (cfg->server) {
            SSL_CTX_set_alpn_select_cb(tls->ctx, pg__tls_alpn_select, tls);
        } else if (SSL_CTX_set_alpn_protos(tls->ctx, tls->alpn, (unsigned int)tls->alpn_len) != 0) {
            r = -ENOMEM;
            pg__tls_reason_from_queue(err, r, "SSL_CTX_set_alpn_protos");
            goto fail;
        }
    }
    *out = tls;
    return 0;
fail:
    if (err != NULL && err->error == 0)
        pg__tls_set_reason(err, r, "cannot make the TLS context");
    pg__tls_context_unref(tls);
    return r;
}

/* ---- the layer's own plumbing ------------------------------------------- */

/* The plaintext buffer goes back to the host once empty (the host keeps
 * one for whichever transport needs one next): idle connections hold none. */
static void pg__tls_plain_release(pg__tls *c)
{
    c->plain_head = c->plain_len = 0;
    if (c->plain == NULL)
        return;
    if (c->host != NULL)
        pg__host_give_wbuf(c->host, c->plain, c->plain_cap);
    else
        free(c->plain);
    c->plain = NULL;
    c->plain_cap = 0;
}

static void pg__tls_free(pg__tls *c)
{
    pg_timer_cancel(&c->deadline);
    pg_timer_cancel(&c->kick);
    SSL_free(c->ssl); /* and its BIOs */
    pg__tls_context_unref(c->tls);
    pg__tls_plain_release(c);
    free(c);
}

/* The first error wins: what came after is its consequence. */
static void pg__tls_error(pg__tls *c, int error, const char *fmt, ...)
{
    if (c->err.error != 0)
        return;
    c->err.error = error;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err.reason, sizeof c->err.reason, fmt, ap);
    va_end(ap);
}

/* An SSL call failed for good: why, as the error queue and the certificate
 * check tell it. */
static void pg__tls_ssl_error(pg__tls *c, const char *what)
{
    if (c->err.error != 0) {
        ERR_clear_error();
        return;
    }
    unsigned long code = ERR_peek_error();
    int reason = ERR_GET_REASON(code);
    long verify = SSL_get_verify_result(c->ssl);
    c->err.verify_result = verify;
    if (reason == SSL_R_CERTIFICATE_VERIFY_FAILED && verify != X509_V_OK) {
        pg__tls_error(c, -EKEYREJECTED, "certificate verify failed: %s", X509_verify_cert_error_string(verify));
        ERR_clear_error();
    } else if (reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
        pg__tls_error(c, -EKEYREJECTED, "the peer sent no certificate");
        ERR_clear_error();
    } else {
        pg__tls_reason_from_queue(&c->err, -EPROTO, what);
    }
}

/* Hands what OpenSSL wrote to the transport below. */
static void pg__tls_flush_out(pg__tls *c)
{
    char *p;
    long n = BIO_get_mem_data(c->wbio, &p);
    if (n <= 0)
        return;
    if (c->lower != NULL)
        (void)pg_transport_write(c->lower, p, (size_t)n); /* fails only after write_eof, never called */
    (void)BIO_reset(c->wbio);
}

static void pg__tls_deadline_cb(void *arg);
static void pg__tls_kick_cb(void *arg);

/* Starts a timer; a host without timers has no timeouts (-ENOTSUP). */
static int pg__tls_timer(pg__tls *c, pg_timer *timer, uint32_t ms, pg_callback_fn cb)
{
    int r = pg_host_timer_start(c->host, timer, ms, cb, c);
    return r == -ENOTSUP && timer == &c->deadline ? 0 : r;
}

/* Ends the connection below after a failure (c->err says why): with the
 * alert OpenSSL wrote when graceful (closed once it left, aborted if it has
 * not within the shutdown timeout), else at once. The protocol above hears
 * of it first. */
static void pg__tls_fatal(pg__tls *c, bool graceful)
{
    if (c->state == PG__TLS_DONE)
        return;
    if (c->err.error == 0)
        pg__tls_error(c, -EPROTO, "TLS failure");
    if (c->state == PG__TLS_HANDSHAKE && c->lower != NULL)
        PG__TRACE_ERROR(pg__transport_trace_id(c->lower), "tls_handshake", c->err.error);
    c->state = PG__TLS_DONE;
    pg_timer_cancel(&c->kick);
    pg_timer_cancel(&c->deadline);
    if (c->upper != NULL)
        pg_stream_fail(c->upper, c->err.error);
    if (c->lower == NULL)
        return;
    if (graceful) {
        pg__tls_flush_out(c);
        pg_transport_close(c->lower);
        if (c->lower != NULL && pg__tls_timer(c, &c->deadline, c->tls->shutdown_ms, pg__tls_deadline_cb) < 0)
            pg_transport_abort(c->lower);
    } else {
        pg_transport_abort(c->lower);
    }
}

/* Work to do from the host's dispatch rather than inside a driver call. */
static void pg__tls_kick(pg__tls *c)
{
    if (c->state == PG__TLS_DONE || pg_timer_is_active(&c->kick))
        return;
    int r = pg__tls_timer(c, &c->kick, 0, pg__tls_kick_cb);
    if (r < 0) {
        pg__tls_error(c, r, "out of memory");
        pg__tls_fatal(c, false);
    }
}

/* The protocol above is open (not closing, not lost). */
static bool pg__tls_app_open(const pg__tls *c)
{
    return c->upper != NULL && !pg_transport_is_closing(c->upper);
}

/* Reading below stops while the protocol above does not read and
 * PG__TLS_READ_HIGH of ciphertext waits (asyncio's _control_ssl_reading). */
static void pg__tls_control_reading(pg__tls *c)
{
    if (c->lower == NULL || c->lower_eof || c->state == PG__TLS_DONE)
        return;
    bool held = c->state == PG__TLS_WRAPPED && pg__tls_app_open(c) && !c->app_reading;
    size_t pending = BIO_ctrl_pending(c->rbio);
    if (held && pending >= PG__TLS_READ_HIGH && !c->lower_read_paused) {
        c->lower_read_paused = true;
        pg_transport_pause_reading(c->lower);
    } else if (c->lower_read_paused && (!held || pending <= PG__TLS_READ_HIGH / 4)) {
        c->lower_read_paused = false;
        pg_transport_resume_reading(c->lower);
    }
}

/* ---- the handshake ------------------------------------------------------ */

static void pg__tls_handshake_done(pg__tls *c)
{
    pg_timer_cancel(&c->deadline);
    /* On the connection below's trace instance; the protocol above gets its own. */
    PG__TRACE_ERROR(pg__transport_trace_id(c->lower), "tls_handshake", 0);
    c->state = PG__TLS_WRAPPED;
    pg__stream *s = pg__stream_block_get(c->host);
    int r = s != NULL ? 0 : -ENOMEM;
    if (r == 0) {
        r = pg__stream_init(s, c->host, &pg__tls_driver_ops.base, c, PG__STREAM_OWNED | PG__STREAM_LINGER);
        if (r < 0)
            pg__stream_block_put(c->host, s);
    }
    if (r < 0) {
        pg__tls_error(c, r, "out of memory");
        pg__tls_fatal(c, false);
        return;
    }
    s->high = c->tls->high;
    s->low = c->tls->high / 4;
    /* Last, once nothing can fail: the protocol above. */
    pg_protocol protocol;
    r = pg__make_protocol(c->factory, c->arg, &protocol);
    if (r < 0) {
        pg__stream_discard(s);
        pg__stream_block_put(c->host, s);
        pg__tls_error(c, r, "the protocol factory refused the connection");
        pg__tls_fatal(c, false);
        return;
    }
    c->upper_made = true;
    /* connection_made, then the first want_read, come from the host. */
    c->upper = pg__stream_start(s, &protocol);
}

static void pg__tls_handshake(pg__tls *c)
{
    ERR_clear_error();
    int r = SSL_do_handshake(c->ssl);
    int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, r);
    pg__tls_flush_out(c);
    if (r == 1) {
        pg__tls_handshake_done(c);
    } else if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
        pg__tls_ssl_error(c, "TLS handshake failed");
        pg__tls_fatal(c, true); /* the alert tells the peer why */
    }
}

/* ---- reading ------------------------------------------------------------ */

/* Hands held plaintext to the protocol above: true once none is held. */
static bool pg__tls_deliver(pg__tls *c)
{
    while (c->plain_head < c->plain_len) {
        if (c->upper == NULL || c->state == PG__TLS_DONE) {
            break; /* nobody will read it */
        }
        if (pg__tls_app_open(c) && !c->app_reading)
            return false;
        size_t n = pg_stream_read(c->upper, c->plain + c->plain_head, c->plain_len - c->plain_head);
        c->plain_head += n;
        if (n == 0)
            return false;
    }
    pg__tls_plain_release(c);
    return true;
}

static int pg__tls_plain_room(pg__tls *c, size_t need)
{
    if (c->plain == NULL)
        c->plain = pg__host_take_wbuf(c->host, &c->plain_cap);
    if (c->plain_cap - c->plain_len >= need)
        return 0;
    size_t cap = c->plain_cap * 2 > c->plain_len + need ? c->plain_cap * 2 : c->plain_len + need;
    uint8_t *p = realloc(c->plain, cap);
    if (p == NULL)
        return -ENOMEM;
    c->plain = p;
    c->plain_cap = cap;
    return 0;
}

/* The peer's close_notify: eof_received, whose answer has no effect over
 * TLS (asyncio warns and shuts down), then our own close_notify. */
static void pg__tls_peer_closed(pg__tls *c)
{
    if (!pg__tls_app_open(c))
        return; /* already closing: SSL_shutdown will see it */
    pg_stream_read_eof(c->upper);
    if (pg__tls_app_open(c))
        pg_transport_close(c->upper);
}

/* WRAPPED or FLUSHING: decrypts what came, one delivery per batch
 * (asyncio's _do_read__copied joins the chunks of one read). */
static void pg__tls_read_app(pg__tls *c)
{
    if (!pg__tls_deliver(c))
        return;
    for (;;) {
        if (c->state == PG__TLS_SHUTDOWN) {
            c->pump_again = true; /* a close() from a callback: pg__tls_read_shutdown goes on */
            return;
        }
        if (c->state == PG__TLS_DONE || (pg__tls_app_open(c) && !c->app_reading))
            return;
        int e = SSL_ERROR_NONE;
        while (c->plain_len < PG__TLS_DELIVER_MAX) {
            if (pg__tls_plain_room(c, 16 * 1024) < 0) {
                pg__tls_error(c, -ENOMEM, "out of memory");
                pg__tls_fatal(c, false);
                return;
            }
            size_t n = 0;
            ERR_clear_error();
            int r = SSL_read_ex(c->ssl, c->plain + c->plain_len, c->plain_cap - c->plain_len, &n);
            if (r == 1) {
                c->plain_len += n;
                continue;
            }
            e = SSL_get_error(c->ssl, r);
            break;
        }
        pg__tls_flush_out(c); /* what OpenSSL answers (a key update, an alert) */
        if (e == SSL_ERROR_ZERO_RETURN)
            c->peer_closed = true;
        else if (e != SSL_ERROR_NONE && e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
            pg__tls_ssl_error(c, "TLS failure");
            pg__tls_fatal(c, true);
            return;
        }
        if (!pg__tls_deliver(c))
            return;
        if (c->peer_closed) {
            pg__tls_peer_closed(c);
            return;
        }
        if (e != SSL_ERROR_NONE)
            return; /* all read */
    }
}

static void pg__tls_shutdown_done(pg__tls *c)
{
    pg_timer_cancel(&c->deadline);
    pg_timer_cancel(&c->kick);
    c->state = PG__TLS_DONE;
    if (c->lower != NULL)
        pg_transport_close(c->lower); /* connection_lost above follows below's */
}

/* SHUTDOWN: what comes before the peer's close_notify is dropped (the
 * protocol above closed). */
static void pg__tls_read_shutdown(pg__tls *c)
{
    uint8_t sink[4096];
    for (;;) {
        size_t n = 0;
        ERR_clear_error();
        int r = SSL_read_ex(c->ssl, sink, sizeof sink, &n);
        if (r == 1)
            continue;
        int e = SSL_get_error(c->ssl, r);
        pg__tls_flush_out(c);
        if (e == SSL_ERROR_ZERO_RETURN) {
            c->peer_closed = true;
            pg__tls_shutdown_done(c);
        } else if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
            pg__tls_ssl_error(c, "TLS shutdown failed");
            pg__tls_fatal(c, false);
        }
        return;
    }
}

/* The peer shut the connection below: fine once our close_notify went
 * (asyncio), an error before. */
static void pg__tls_check_eof(pg__tls *c)
{
    if (!c->lower_eof || c->state == PG__TLS_DONE || BIO_ctrl_pending(c->rbio) > 0 || c->plain_head < c->plain_len)
        return;
    switch (c->state) {
    case PG__TLS_SHUTDOWN:
        pg__tls_shutdown_done(c);
        break;
    case PG__TLS_HANDSHAKE:
        pg__tls_error(c, -ECONNRESET, "the peer closed the connection during the TLS handshake");
        pg__tls_fatal(c, false);
        break;
    default:
        if (!c->peer_closed) {
            pg__tls_error(c, -ECONNRESET, "the peer closed the connection without close_notify");
            pg__tls_fatal(c, false);
        }
        break;
    }
}

/* Moves everything on as far as it goes now. A call from inside a running
 * one (a protocol callback that closes, say) runs once that one is done. */
static void pg__tls_pump(pg__tls *c)
{
    if (c->pumping) {
        c->pump_again = true;
        return;
    }
    c->pumping = true;
    do {
        c->pump_again = false;
        switch (c->state) {
        case PG__TLS_HANDSHAKE:
            pg__tls_handshake(c);
            break;
        case PG__TLS_WRAPPED:
        case PG__TLS_FLUSHING:
            pg__tls_read_app(c);
            break;
        case PG__TLS_SHUTDOWN:
            pg__tls_read_shutdown(c);
            break;
        default:
            break;
        }
        pg__tls_check_eof(c);
    } while (c->pump_again && c->state != PG__TLS_DONE);
    c->pumping = false;
    pg__tls_control_reading(c);
}

/* ---- timers ------------------------------------------------------------- */

static void pg__tls_deadline_cb(void *arg)
{
    pg__tls *c = arg;
    switch (c->state) {
    case PG__TLS_HANDSHAKE:
        /* asyncio: ConnectionAbortedError. */
        pg__tls_error(c, -ECONNABORTED, "TLS handshake timed out after %u ms", c->tls->handshake_ms);
        pg__tls_fatal(c, false);
        break;
    case PG__TLS_FLUSHING:
    case PG__TLS_SHUTDOWN:
        /* asyncio: TimeoutError('SSL shutdown timed out'). */
        pg__tls_error(c, -ETIMEDOUT, "TLS shutdown timed out after %u ms", c->tls->shutdown_ms);
        pg__tls_fatal(c, false);
        break;
    case PG__TLS_DONE:
        if (c->lower != NULL)
            pg_transport_abort(c->lower); /* the alert never left */
        break;
    default:
        break;
    }
}

static void pg__tls_kick_cb(void *arg)
{
    pg__tls *c = arg;
    if (c->upper != NULL && c->app_wants_write && !c->lower_write_paused)
        pg_stream_writable(c->upper);
    pg__tls_pump(c);
}

/* ---- the protocol of the transport below -------------------------------- */

static void pg__tls_connection_made(void *self, pg_transport *t)
{
    pg__tls *c = self;
    c->lower = t;
    c->host = pg_transport_host(t);
    if (c->host == NULL) {
        pg__tls_error(c, -ENOTSUP, "TLS runs over protogen's stream transports only");
        c->state = PG__TLS_DONE;
        pg_transport_abort(t);
        return;
    }
    c->state = PG__TLS_HANDSHAKE;
    int r = pg__tls_timer(c, &c->deadline, c->tls->handshake_ms, pg__tls_deadline_cb);
    if (r < 0) {
        pg__tls_error(c, r, "out of memory");
        pg__tls_fatal(c, false);
        return;
    }
    pg__tls_pump(c); /* a client's ClientHello goes now */
}

static void pg__tls_data_received(void *self, const uint8_t *data, size_t len)
{
    pg__tls *c = self;
    if (c->state == PG__TLS_DONE)
        return;
    if (len > INT_MAX || BIO_write(c->rbio, data, (int)len) != (int)len) {
        pg__tls_error(c, -ENOMEM, "out of memory");
        pg__tls_fatal(c, false);
        return;
    }
    pg__tls_pump(c);
    if (c->write_blocked && c->app_wants_write)
        pg__tls_kick(c); /* what came may let a blocked write through */
}

static bool pg__tls_eof_received(void *self)
{
    pg__tls *c = self;
    c->lower_eof = true;
    pg__tls_pump(c);
    return true; /* the layer ends the connection itself */
}

static void pg__tls_connection_lost(void *self, int error)
{
    pg__tls *c = self;
    c->lower = NULL;
    c->lower_lost = true;
    pg_timer_cancel(&c->deadline);
    pg_timer_cancel(&c->kick);
    if (!c->upper_made) {
        /* No protocol above was ever made: the handshake failed. */
        if (c->err.error == 0)
            pg__tls_error(c, error < 0 ? error : -ECONNRESET, "the connection closed during the TLS handshake");
        if (c->handshake_failed != NULL)
            c->handshake_failed(c->handshake_failed_arg, &c->err);
        pg__tls_free(c);
        return;
    }
    c->state = PG__TLS_DONE;
    if (c->err.error == 0 && error < 0)
        pg__tls_error(c, error, "the connection failed");
    if (c->upper != NULL)
        pg_stream_fail(c->upper, c->err.error); /* connection_lost above, from the host */
    else
        pg__tls_free(c);
}

static void pg__tls_pause_writing(void *self)
{
    ((pg__tls *)self)->lower_write_paused = true;
}

static void pg__tls_resume_writing(void *self)
{
    pg__tls *c = self;
    c->lower_write_paused = false;
    if (c->upper != NULL && c->app_wants_write)
        pg_stream_writable(c->upper);
}

static const pg_protocol_ops pg__tls_protocol_ops = {
    .connection_made = pg__tls_connection_made,
    .data_received = pg__tls_data_received,
    .eof_received = pg__tls_eof_received,
    .connection_lost = pg__tls_connection_lost,
    .pause_writing = pg__tls_pause_writing,
    .resume_writing = pg__tls_resume_writing,
};

int pg_tls_protocol_factory(void *arg, pg_protocol *out)
{
    const pg_tls_factory *f = arg;
    if (f == NULL || f->tls == NULL || f->factory == NULL)
        return -EINVAL;
    pg__tls *c = calloc(1, sizeof *c);
    if (c == NULL)
        return -ENOMEM;
    pg_timer_init(&c->deadline);
    pg_timer_init(&c->kick);
    ERR_clear_error();
    c->ssl = SSL_new(f->tls->ctx);
    c->rbio = BIO_new(BIO_s_mem());
    c->wbio = BIO_new(BIO_s_mem());
    if (c->ssl == NULL || c->rbio == NULL || c->wbio == NULL) {
        BIO_free(c->rbio);
        BIO_free(c->wbio);
        SSL_free(c->ssl);
        free(c);
        ERR_clear_error();
        return -ENOMEM;
    }
    SSL_set_bio(c->ssl, c->rbio, c->wbio);
    const pg_tls_context *tls = f->tls;
    int ok = 1;
    if (tls->server) {
        SSL_set_accept_state(c->ssl);
    } else {
        SSL_set_connect_state(c->ssl);
        if (tls->server_name != NULL && !tls->server_name_ip)
            ok &= SSL_set_tlsext_host_name(c->ssl, tls->server_name);
        if (tls->server_name != NULL && tls->verify) {
            if (tls->server_name_ip)
                ok &= X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), tls->server_name);
            else
                ok &= SSL_set1_host(c->ssl, tls->server_name);
        }
    }
    if (ok != 1) {
        SSL_free(c->ssl);
        free(c);
        ERR_clear_error();
        return -ENOMEM;
    }
    atomic_store_explicit(&pg__close_above, pg__tls_close_above, memory_order_relaxed);
    atomic_fetch_add(&f->tls->refs, 1);
    c->tls = f->tls;
    c->factory = f->factory;
    c->arg = f->arg;
    c->handshake_failed = f->handshake_failed != NULL ? f->handshake_failed : tls->handshake_failed;
    c->handshake_failed_arg = f->handshake_failed != NULL ? f->handshake_failed_arg : tls->handshake_failed_arg;
    c->state = PG__TLS_NEW;
    *out = (pg_protocol){ .ops = &pg__tls_protocol_ops, .self = c };
    return 0;
}

int pg_tls_start(pg_transport *t, const pg_tls_factory *factory, const void *pending, size_t len)
{
    if (t == NULL || factory == NULL)
        return -EINVAL;
    if (pg_transport_host(t) == NULL)
        return -ENOTSUP;
    return pg_transport_switch_protocol(t, pg_tls_protocol_factory, (void *)factory, pending, len);
}

/* ---- the driver of the transport above ---------------------------------- */

/* Encrypts len bytes and hands them down: 0, 1 when OpenSSL cannot write
 * before it read (a TLS 1.2 renegotiation we asked for through the SSL
 * object: the bytes wait above, and the next read tries again), or a
 * negative errno. */
static int pg__tls_encrypt(pg__tls *c, const void *data, size_t len)
{
    size_t written = 0;
    ERR_clear_error();
    int r = SSL_write_ex(c->ssl, data, len, &written);
    int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, r);
    pg__tls_flush_out(c);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        c->write_blocked = true;
        return 1;
    }
    if (r != 1) {
        pg__tls_ssl_error(c, "TLS write failed");
        pg__tls_fatal(c, false);
        return c->err.error;
    }
    return 0;
}

static ssize_t pg__tls_writev(void *self, const struct iovec *iov, int iovcnt)
{
    pg__tls *c = self;
    if (c->state != PG__TLS_WRAPPED && c->state != PG__TLS_FLUSHING)
        return c->err.error != 0 ? c->err.error : -EPIPE;
    if (c->lower_write_paused || c->lower == NULL)
        return 0;
    c->write_blocked = false;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    if (iovcnt > 1 && total <= PG__TLS_GATHER) {
        /* A header and its body: one record, not two. */
        uint8_t buf[PG__TLS_GATHER];
        size_t at = 0;
        for (int i = 0; i < iovcnt; i++) {
            memcpy(buf + at, iov[i].iov_base, iov[i].iov_len);
            at += iov[i].iov_len;
        }
        int r = pg__tls_encrypt(c, buf, total);
        return r < 0 ? r : r == 1 ? 0 : (ssize_t)total;
    }
    size_t taken = 0;
    for (int i = 0; i < iovcnt; i++) {
        const uint8_t *p = iov[i].iov_base;
        size_t left = iov[i].iov_len;
        while (left > 0) {
            if (c->lower_write_paused || c->lower == NULL)
                return (ssize_t)taken; /* the rest waits in the transport above */
            size_t n = left < PG__TLS_WRITE_PIECE ? left : PG__TLS_WRITE_PIECE;
            int r = pg__tls_encrypt(c, p, n);
            if (r < 0)
                return r;
            if (r == 1)
                return (ssize_t)taken;
            p += n;
            left -= n;
            taken += n;
        }
    }
    return (ssize_t)taken;
}

static int pg__tls_shutdown_write(void *self)
{
    (void)self;
    return -ENOTSUP; /* never called: no PG_STREAM_CAN_WRITE_EOF */
}

static int pg__tls_want_read(void *self, bool on)
{
    pg__tls *c = self;
    c->app_reading = on;
    if (on)
        pg__tls_kick(c); /* held plaintext and ciphertext, from the host */
    else
        pg__tls_control_reading(c);
    return 0;
}

static int pg__tls_want_write(void *self, bool on)
{
    pg__tls *c = self;
    c->app_wants_write = on;
    if (on && !c->lower_write_paused)
        pg__tls_kick(c);
    return 0;
}

/* close() above: close_notify once the plaintext is all encrypted. */
static void pg__tls_closing(void *self, bool drained)
{
    pg__tls *c = self;
    if (c->state != PG__TLS_WRAPPED && c->state != PG__TLS_FLUSHING)
        return;
    if (c->state == PG__TLS_WRAPPED) {
        c->state = PG__TLS_FLUSHING;
        int r = pg__tls_timer(c, &c->deadline, c->tls->shutdown_ms, pg__tls_deadline_cb);
        if (r < 0) {
            pg__tls_error(c, r, "out of memory");
            pg__tls_fatal(c, false);
            return;
        }
    }
    pg__tls_control_reading(c); /* the peer's close_notify must come in */
    if (!drained)
        return;
    c->state = PG__TLS_SHUTDOWN;
    ERR_clear_error();
    int r = SSL_shutdown(c->ssl);
    int e = r < 0 ? SSL_get_error(c->ssl, r) : SSL_ERROR_NONE;
    pg__tls_flush_out(c);
    if (r == 1) {
        pg__tls_shutdown_done(c); /* the peer's came first */
    } else if (r < 0 && e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
        pg__tls_ssl_error(c, "TLS shutdown failed");
        pg__tls_fatal(c, false);
    } else {
        pg__tls_kick(c); /* what already came, and the peer's EOF */
    }
}

static bool pg__tls_close_above(pg_transport *lower)
{
    pg__stream *s = pg__stream_of(lower);
    if (s->protocol.ops != &pg__tls_protocol_ops)
        return false;
    pg__tls *c = s->protocol.self;
    if (c->upper == NULL)
        return false; /* in its handshake (or done): nothing above to finish */
    pg_transport_close(c->upper); /* close_notify once drained, then the connection below */
    return true;
}

/* The transport above is done (after its connection_lost). */
static void pg__tls_driver_close(void *self)
{
    pg__tls *c = self;
    c->upper = NULL;
    if (c->lower_lost) {
        pg__tls_free(c);
        return;
    }
    if (c->state != PG__TLS_DONE) {
        /* abort() or a failure above: no close_notify. */
        c->state = PG__TLS_DONE;
        pg_timer_cancel(&c->kick);
        pg_timer_cancel(&c->deadline);
        pg_transport_abort(c->lower);
    }
}

static int pg__tls_get_extra_info(void *self, pg_extra_key key, pg_extra_info *out)
{
    pg__tls *c = self;
    return c->lower != NULL ? pg_transport_get_extra_info(c->lower, key, out) : -ENOENT;
}

static const pg__linger_driver_ops pg__tls_driver_ops = {
    .base = {
        .writev = pg__tls_writev,
        .shutdown_write = pg__tls_shutdown_write,
        .want_read = pg__tls_want_read,
        .want_write = pg__tls_want_write,
        .close = pg__tls_driver_close,
        .get_extra_info = pg__tls_get_extra_info,
    },
    .closing = pg__tls_closing,
};

/* ---- extra info --------------------------------------------------------- */

static int pg__tls_of(const pg_transport *t, pg__tls **out)
{
    if (t == NULL)
        return -EINVAL;
    void *drv;
    int r = pg__transport_driver(t, &pg__tls_driver_ops.base, &drv);
    *out = drv;
    return r;
}

static void pg__tls_name(X509_NAME *name, char *buf, size_t size)
{
    buf[0] = '\0';
    BIO *b = BIO_new(BIO_s_mem());
    if (b == NULL)
        return;
    if (X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253) >= 0) {
        int n = BIO_read(b, buf, (int)size - 1);
        buf[n > 0 ? n : 0] = '\0';
    }
    BIO_free(b);
}

int pg_tls_get_info(const pg_transport *t, pg_tls_info *out)
{
    pg__tls *c;
    int r = pg__tls_of(t, &c);
    if (r < 0)
        return r;
    if (out == NULL)
        return -EINVAL;
    memset(out, 0, sizeof *out);
    out->version = SSL_get_version(c->ssl);
    out->cipher = SSL_get_cipher_name(c->ssl);
    const unsigned char *alpn = NULL;
    unsigned int alpn_len = 0;
    SSL_get0_alpn_selected(c->ssl, &alpn, &alpn_len);
    if (alpn != NULL && alpn_len < sizeof out->alpn) {
        memcpy(out->alpn, alpn, alpn_len);
        out->alpn[alpn_len] = '\0';
    }
    X509 *peer = SSL_get1_peer_certificate(c->ssl);
    if (peer != NULL) {
        out->peer_cert = true;
        pg__tls_name(X509_get_subject_name(peer), out->peer_subject, sizeof out->peer_subject);
        pg__tls_name(X509_get_issuer_name(peer), out->peer_issuer, sizeof out->peer_issuer);
        X509_free(peer);
    }
    return 0;
}

int pg_tls_get_error(const pg_transport *t, pg_tls_error *out)
{
    pg__tls *c;
    int r = pg__tls_of(t, &c);
    if (r < 0)
        return r;
    if (out == NULL)
        return -EINVAL;
    *out = c->err;
    return 0;
}

void *pg_tls_ssl_object(const pg_transport *t)
{
    pg__tls *c;
    return pg__tls_of(t, &c) == 0 ? c->ssl : NULL;
}
