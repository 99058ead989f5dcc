/* udp_echo_client_handlers.c — your side of the udp_echo_client protocol.
 *
 * protogen 0.1.0 wrote this skeleton once from udp_echo_client.spec; it is yours now and
 * protogen never overwrites it. Fill in the callbacks; everything you can do to an
 * endpoint is declared in udp_echo_client.h (udp_echo_client_sendto, udp_echo_client_close, ...). */
#include "udp_echo_client.h"

/* Per-endpoint state: protogen allocates it with each endpoint, zero-filled,
 * and passes it to every callback. Put your fields here. */
struct udp_echo_client_session {
    size_t datagrams_received;
};

const size_t udp_echo_client_session_size = sizeof(struct udp_echo_client_session);

/* The endpoint is ready. No datagram arrives before this returns. */
void udp_echo_client_on_connection_made(udp_echo_client_conn *conn, struct udp_echo_client_session *session)
{
    (void)conn;
    (void)session;
}

/* One whole datagram (len may be 0) and its sender's address, to reply to.
 * The memory is the loop's: copy what you keep.
 */
void udp_echo_client_on_datagram_received(udp_echo_client_conn *conn, struct udp_echo_client_session *session, const uint8_t *data, size_t len, const struct sockaddr *addr, socklen_t addrlen)
{
    (void)conn;
    (void)data;
    (void)len;
    (void)addr;
    (void)addrlen;
    session->datagrams_received++;
}

/* An OS error about a datagram sent or received: -ECONNREFUSED when nothing
 * listens on a connected endpoint's port, -EMSGSIZE, ... The endpoint stays open.
 */
void udp_echo_client_on_error_received(udp_echo_client_conn *conn, struct udp_echo_client_session *session, int error)
{
    (void)conn;
    (void)session;
    (void)error;
}

/* The endpoint is closed: error is 0, or a negative errno.
 * The endpoint and its state are freed when this returns.
 */
void udp_echo_client_on_connection_lost(udp_echo_client_conn *conn, struct udp_echo_client_session *session, int error)
{
    (void)conn;
    (void)session;
    (void)error;
}

/* The send queue went above the high watermark: stop sending. */
void udp_echo_client_on_pause_writing(udp_echo_client_conn *conn, struct udp_echo_client_session *session)
{
    (void)conn;
    (void)session;
}

/* The send queue drained to the low watermark: sending may go on. */
void udp_echo_client_on_resume_writing(udp_echo_client_conn *conn, struct udp_echo_client_session *session)
{
    (void)conn;
    (void)session;
}
