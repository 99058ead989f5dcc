/* udp_echo_handlers.c — the server's side of the udp_echo protocol.
 *
 * Started from the skeleton protogen wrote from udp_echo.spec. Every datagram
 * goes back to the address it came from. When replies queue up faster than
 * the kernel sends them, the send queue grows past the high watermark: we stop
 * reading until it drains, so memory stays bounded whatever the peers send. */
#include "udp_echo.h"
#include "udp_echo_server.h"

struct udp_echo_session {
    char unused; /* the server's counters are in struct udp_echo_server */
};

const size_t udp_echo_session_size = sizeof(struct udp_echo_session);

void udp_echo_on_connection_made(udp_echo_conn *conn, struct udp_echo_session *session)
{
    struct udp_echo_server *server = udp_echo_context(conn);
    (void)session;
    server->endpoint = conn;
}

void udp_echo_on_datagram_received(udp_echo_conn *conn, struct udp_echo_session *session, const uint8_t *data,
                                   size_t len, const struct sockaddr *addr, socklen_t addrlen)
{
    struct udp_echo_server *server = udp_echo_context(conn);
    (void)session;
    server->datagrams++;
    /* Errors sending the reply come to error_received. */
    (void)udp_echo_sendto(conn, data, len, addr, addrlen);
}

/* A bound endpoint hears of few errors (Linux reports ICMP errors to connected
 * sockets only); whatever comes, one peer's trouble is not the server's. */
void udp_echo_on_error_received(udp_echo_conn *conn, struct udp_echo_session *session, int error)
{
    (void)conn;
    (void)session;
    (void)error;
}

void udp_echo_on_connection_lost(udp_echo_conn *conn, struct udp_echo_session *session, int error)
{
    struct udp_echo_server *server = udp_echo_context(conn);
    (void)session;
    server->endpoint = NULL;
    server->lost = true;
    server->lost_error = error;
}

void udp_echo_on_pause_writing(udp_echo_conn *conn, struct udp_echo_session *session)
{
    (void)session;
    udp_echo_pause_reading(conn);
}

void udp_echo_on_resume_writing(udp_echo_conn *conn, struct udp_echo_session *session)
{
    (void)session;
    udp_echo_resume_reading(conn);
}
