/* resp_handlers.c — the RESP server's side of resp.spec: every command, multibulk
 * or inline (split by inline.c), goes to commands.c with its arguments, and its
 * reply is written back. The framing, the input buffering, pipelining and
 * back-pressure are the generated code's. */
#include <errno.h>
#include <string.h>

#include "resp.h"
#include "resp_server.h"

struct resp_session {
    int unused;
};

const size_t resp_session_size = sizeof(struct resp_session);

void resp_on_connection_made(resp_conn *conn, struct resp_session *session)
{
    (void)session;
    struct resp_server *server = resp_context(conn);
    server->open_connections++;
}

/* One command: its reply goes into the transport's buffer (the replies to a
 * read's pipelined commands leave in one write). */
static void run(resp_conn *conn, size_t argc, const pg_slice *argv)
{
    struct resp_server *server = resp_context(conn);
    int rc = resp_execute(server->store, argc, argv, &server->reply);
    if (rc < 0) {
        static const char oom[] = "-OOM command not allowed when used memory > 'maxmemory'.\r\n";
        resp_write(conn, oom, sizeof oom - 1);
    } else if (server->reply.len > 0) {
        resp_write(conn, server->reply.data, server->reply.len);
    }
    resp_reply_clear(&server->reply);
    if (rc == RESP_CLOSE)
        resp_close(conn); /* QUIT: after its +OK */
}

void resp_on_command(resp_conn *conn, struct resp_session *session, const resp_command_msg *msg)
{
    (void)session;
    run(conn, msg->arg_count, msg->arg);
}

/* Redis-server's error for a line it cannot split, after which it closes. */
static void unbalanced_quotes(resp_conn *conn)
{
    static const char err[] = "-ERR Protocol error: unbalanced quotes in request\r\n";
    resp_write(conn, err, sizeof err - 1);
    resp_close(conn);
}

void resp_on_inline_command(resp_conn *conn, struct resp_session *session, const resp_inline_command_msg *msg)
{
    (void)session;
    struct resp_server *server = resp_context(conn);
    int rc = resp_inline_split(&server->words, msg->line.data, msg->line.len);
    if (rc == -EINVAL)
        unbalanced_quotes(conn);
    else if (rc == 0)
        run(conn, server->words.count, server->words.args);
}

void resp_on_blank(resp_conn *conn, struct resp_session *session, const resp_blank_msg *msg)
{
    (void)conn;
    (void)session;
    (void)msg; /* an empty line: nothing to do, as redis-server */
}

/* Input that breaks the protocol: say so as redis-server does, then close. */
bool resp_on_protocol_error(resp_conn *conn, struct resp_session *session, int code, uint64_t pos, const char *reason)
{
    (void)session;
    (void)pos;
    const char *what = code == PG_FRAMING_ETOOBIG ? "invalid bulk length" : reason;
    char line[256];
    size_t n = 0;
    static const char head[] = "-ERR Protocol error: ";
    memcpy(line, head, sizeof head - 1);
    n = sizeof head - 1;
    size_t w = strlen(what);
    if (w > sizeof line - n - 2)
        w = sizeof line - n - 2;
    memcpy(line + n, what, w);
    n += w;
    line[n++] = '\r';
    line[n++] = '\n';
    resp_write(conn, line, n);
    return false; /* close once the reply is sent */
}

void resp_on_connection_lost(resp_conn *conn, struct resp_session *session, int error)
{
    (void)session;
    (void)error;
    struct resp_server *server = resp_context(conn);
    server->open_connections--;
}
