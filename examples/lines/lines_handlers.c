/* lines_handlers.c — the lines server's side of the lines protocol.
 *
 * Started from the skeleton protogen wrote from lines.spec. The framing
 * delivers whole lines: no input buffering here, and no back-pressure code
 * either (while the peer does not read our replies, the generated code holds
 * its further lines back). */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "lines.h"
#include "lines_server.h"

struct lines_session {
    lines_conn *conn;
    struct lines_session *prev, *next; /* in the server's list of open connections */
    bool raw;                        /* the next message is a RAW body */
};

const size_t lines_session_size = sizeof(struct lines_session);

void lines_on_connection_made(lines_conn *conn, struct lines_session *session)
{
    struct lines_server *server = lines_context(conn);
    session->conn = conn;
    session->next = server->connections;
    if (session->next != NULL)
        session->next->prev = session;
    server->connections = session;
    server->open_connections++;
}

static void reply(lines_conn *conn, const void *data, size_t len)
{
    const struct iovec iov[2] = { { (void *)data, len }, { "\r\n", 2 } };
    (void)lines_writelines(conn, iov, 2); /* cannot fail before write_eof, which we never call */
}

/* "RAW n": n from 1 to 65536, nothing else on the line. */
static bool raw_length(const uint8_t *data, size_t len, size_t *n)
{
    if (len < 5 || len > 9 || memcmp(data, "RAW ", 4) != 0)
        return false;
    size_t v = 0;
    for (size_t i = 4; i < len; i++) {
        if (!isdigit(data[i]))
            return false;
        v = v * 10 + (size_t)(data[i] - '0');
    }
    *n = v;
    return v >= 1 && v <= 65536;
}

void lines_on_message_received(lines_conn *conn, struct lines_session *session, const uint8_t *data, size_t len)
{
    size_t n;
    if (session->raw) {
        session->raw = false;
        reply(conn, data, len);
    } else if (len == 4 && memcmp(data, "QUIT", 4) == 0) {
        reply(conn, "BYE", 3);
        lines_close(conn);
    } else if (raw_length(data, len, &n)) {
        session->raw = lines_expect_raw(conn, n) == 0;
    } else {
        uint8_t upper[1024]; /* the framing's max */
        for (size_t i = 0; i < len; i++)
            upper[i] = (uint8_t)toupper(data[i]);
        reply(conn, upper, len);
    }
}

/* A line too long: tell the peer; returning false closes once this is sent. */
bool lines_on_protocol_error(lines_conn *conn, struct lines_session *session, int code, uint64_t pos, const char *reason)
{
    (void)session;
    (void)code;
    char text[128];
    int n = snprintf(text, sizeof text, "-ERR %s at byte %llu", reason, (unsigned long long)pos);
    reply(conn, text, (size_t)n);
    return false;
}

void lines_on_connection_lost(lines_conn *conn, struct lines_session *session, int error)
{
    struct lines_server *server = lines_context(conn);
    (void)error;
    if (session->prev != NULL)
        session->prev->next = session->next;
    else
        server->connections = session->next;
    if (session->next != NULL)
        session->next->prev = session->prev;
    server->open_connections--;
}

void lines_server_abort_all(struct lines_server *server)
{
    for (struct lines_session *s = server->connections; s != NULL; s = s->next)
        lines_abort(s->conn);
}
