/* resp_handlers.c — the RESP server's side of resp.spec: every command, multibulk
 * or inline (split by inline.c), goes to commands.c with its arguments, and its
 * reply is written back. The framing, the input buffering, pipelining and
 * back-pressure are the generated code's. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
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

/* A protocol error as redis-server words it ("-ERR Protocol error: what"),
 * after which it closes the connection. */
static void refuse(resp_conn *conn, const char *what)
{
    static const char head[] = "-ERR Protocol error: ";
    char line[128];
    size_t w = strlen(what);
    if (w > sizeof line - (sizeof head - 1) - 2)
        w = sizeof line - (sizeof head - 1) - 2;
    memcpy(line, head, sizeof head - 1);
    memcpy(line + sizeof head - 1, what, w);
    memcpy(line + sizeof head - 1 + w, "\r\n", 2);
    resp_write(conn, line, sizeof head - 1 + w + 2);
    resp_close(conn);
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

/* A bulk length with a leading zero ($01) passes the framer's uint but is no
 * number to redis-server: the byte before its shortest digits is not the "$". */
static bool zero_led_length(const resp_command_msg *msg)
{
    for (size_t i = 0; i < msg->arg_count; i++) {
        size_t digits = 1;
        for (uint64_t v = msg->len[i]; v >= 10; v /= 10)
            digits++;
        if (msg->arg[i].data[-(ptrdiff_t)(digits + 3)] != '$') /* $, digits, \r and one byte */
            return true;
    }
    return false;
}

void resp_on_command(resp_conn *conn, struct resp_session *session, const resp_command_msg *msg)
{
    (void)session;
    if (zero_led_length(msg))
        refuse(conn, "invalid bulk length");
    else
        run(conn, msg->arg_count, msg->arg);
}

void resp_on_inline_command(resp_conn *conn, struct resp_session *session, const resp_inline_command_msg *msg)
{
    (void)session;
    struct resp_server *server = resp_context(conn);
    int rc = resp_inline_split(&server->words, msg->raw.data, msg->raw.len - 1);
    if (rc == -EINVAL)
        refuse(conn, "unbalanced quotes in request");
    else if (rc == 0)
        run(conn, server->words.count, server->words.args);
}

void resp_on_blank(resp_conn *conn, struct resp_session *session, const resp_blank_msg *msg)
{
    (void)conn;
    (void)session;
    (void)msg; /* an empty line: nothing to do, as redis-server */
}

/* *-N: a negative count is no command to redis-server, as *0, when it is a
 * 64-bit number; *-, then "\r" and the byte after it, around the digits. */
void resp_on_negative_count(resp_conn *conn, struct resp_session *session, const resp_negative_count_msg *msg)
{
    (void)session;
    static const char least[] = "9223372036854775808"; /* -least: the smallest long long */
    const char *digits = (const char *)msg->raw.data + 2;
    size_t n = msg->raw.len - 4;
    if (n > sizeof least - 1 || (n == sizeof least - 1 && memcmp(digits, least, n) > 0))
        refuse(conn, "invalid multibulk length");
}

/* *0N, *-0N: a count with a leading zero is no number to redis-server. */
void resp_on_zero_led_count(resp_conn *conn, struct resp_session *session, const resp_zero_led_count_msg *msg)
{
    (void)session;
    (void)msg;
    refuse(conn, "invalid multibulk length");
}

/* Where in a command the framer found in[at] wrong, as redis-server tells it:
 * in the count's line, at a bulk string's "$", or in its length's line. The
 * bytes before in[at] passed the framer, so they are a count line and whole
 * bulk strings (the spec's shapes, which redis-server reads alike: a line ends
 * at its \r and takes one byte more). */
static const char *command_error(const uint8_t *in, size_t len, size_t at, int code, char *got, size_t got_size)
{
    const uint8_t *cr = memchr(in, '\r', at < len ? at : len);
    if (cr == NULL && code == PG_FRAMING_ETOOBIG)
        return "too big mbulk count string"; /* no end in token_max */
    if (cr == NULL || (at == (size_t)(cr - in) + 2 && code == PG_FRAMING_ETOOBIG))
        return "invalid multibulk length"; /* in it, or too many (a count above INT_MAX) */
    size_t head = (size_t)(cr - in) + 2; /* a bulk string's first byte */
    for (;;) {
        if (at == head) {
            /* redis-server formats the byte with %c and turns \r and \n into blanks */
            uint8_t c = at < len ? in[at] : ' ';
            snprintf(got, got_size, "expected '$', got '%c'", c == '\r' || c == '\n' ? ' ' : c);
            return got;
        }
        cr = memchr(in + head, '\r', at - head);
        if (cr == NULL && code == PG_FRAMING_ETOOBIG)
            return "too big bulk count string"; /* no end in token_max */
        if (cr == NULL || at <= (size_t)(cr - in) + 2)
            return "invalid bulk length"; /* in it, or above the framing's max */
        uint64_t size = 0;
        for (const uint8_t *d = in + head + 1; d < cr; d++)
            size = size * 10 + (uint64_t)(*d - '0');
        head = (size_t)(cr - in) + 2 + (size_t)size + 2;
    }
}

/* Input that breaks the protocol: say so as redis-server does, then close.
 * A command the client's end cut short gets no reply, as from redis-server. */
bool resp_on_protocol_error(resp_conn *conn, struct resp_session *session, int code, uint64_t pos, const char *reason)
{
    (void)session;
    (void)pos;
    (void)reason;
    if (code == PG_FRAMING_ETRUNCATED)
        return false;
    size_t len, at;
    const uint8_t *in = resp_error_input(conn, &len, &at);
    char got[64];
    /* An inline line breaks the framing only by its length (token_max) */
    const char *what = in != NULL && len > 0 && in[0] == '*' ? command_error(in, len, at, code, got, sizeof got)
                                                             : "too big inline request";
    refuse(conn, what);
    return true; /* refuse closed it, once the reply is sent */
}

void resp_on_connection_lost(resp_conn *conn, struct resp_session *session, int error)
{
    (void)session;
    (void)error;
    struct resp_server *server = resp_context(conn);
    server->open_connections--;
}
