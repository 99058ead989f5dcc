/* smtp_handlers.c — the SMTP receiver's replies (smtp.spec says when each
 * handler runs: the order of commands, the DATA body's framing, the idle
 * timeout and the close are the generated code's).
 *
 * What is left here is SMTP's own content: the replies, the arguments'
 * checks, the envelope, DATA's dot-unstuffing and the size limit, and the
 * delivery to the Maildir. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "maildir.h"
#include "smtp.h"
#include "smtp_server.h"

enum { MAX_RECIPIENTS = 100 };

/* The current transaction: the envelope and the message as it arrives. */
struct smtp_session {
    char client[256];      /* the HELO/EHLO domain */
    char sender[256];
    size_t recipients;
    uint8_t *message;      /* the unstuffed body, LF line ends (Maildir's) */
    size_t message_len;
    size_t message_cap;
    bool too_big;          /* above --max-size: read on, then 552 */
};

const size_t smtp_session_size = sizeof(struct smtp_session);

static void reply(smtp_conn *conn, const char *text)
{
    (void)smtp_write(conn, text, strlen(text));
}

static void copy_slice(char *to, size_t size, pg_slice s)
{
    size_t n = s.len < size - 1 ? s.len : size - 1;
    memcpy(to, s.data, n);
    to[n] = '\0';
}

static void reset_transaction(struct smtp_session *session)
{
    session->sender[0] = '\0';
    session->recipients = 0;
    session->message_len = 0;
    session->too_big = false;
}

static bool append(struct smtp_session *session, const uint8_t *data, size_t len, size_t max)
{
    if (session->too_big || session->message_len + len > max) {
        session->too_big = true;
        return false;
    }
    if (len == 0)
        return true; /* an empty line: the message may not be allocated yet */
    if (session->message_len + len > session->message_cap) {
        size_t cap = session->message_cap ? session->message_cap : 4096;
        while (cap < session->message_len + len)
            cap *= 2;
        uint8_t *grown = realloc(session->message, cap);
        if (grown == NULL) {
            session->too_big = true;
            return false;
        }
        session->message = grown;
        session->message_cap = cap;
    }
    memcpy(session->message + session->message_len, data, len);
    session->message_len += len;
    return true;
}

/* The arguments of MAIL FROM and RCPT TO: "<path>" then optional parameters. */
static bool path_closed(pg_slice rest)
{
    return rest.len > 0 && rest.data[0] == '>';
}

/* SIZE=n among MAIL FROM's parameters (RFC 1870). */
static unsigned long long declared_size(pg_slice rest)
{
    for (size_t i = 0; i + 5 <= rest.len; i++)
        if ((i == 0 || rest.data[i - 1] == ' ') && strncasecmp((const char *)rest.data + i, "SIZE=", 5) == 0) {
            unsigned long long n = 0;
            for (size_t j = i + 5; j < rest.len && rest.data[j] >= '0' && rest.data[j] <= '9'; j++)
                n = n * 10 + (unsigned long long)(rest.data[j] - '0');
            return n;
        }
    return 0;
}

void smtp_on_connection_made(smtp_conn *conn, struct smtp_session *session)
{
    struct smtp_server *server = smtp_context(conn);
    (void)session;
    server->open_connections++;
    (void)smtp_set_idle_timeout(conn, server->idle_timeout_ms);
    char line[512];
    snprintf(line, sizeof line, "220 %s ESMTP protogen\r\n", server->hostname);
    reply(conn, line);
}

void smtp_on_connection_lost(smtp_conn *conn, struct smtp_session *session, int error)
{
    struct smtp_server *server = smtp_context(conn);
    (void)error;
    free(session->message);
    server->open_connections--;
}

/* Only a line over 1000 bytes (-EMSGSIZE) can break the framing, or the end
 * of the stream inside a line: every other line is some message, 'other' at
 * worst. The reply goes out, then the close. */
bool smtp_on_protocol_error(smtp_conn *conn, struct smtp_session *session, int code, uint64_t pos,
                            const char *reason)
{
    (void)session;
    (void)pos;
    (void)reason;
    if (code == PG_FRAMING_ETRUNCATED)
        return false; /* the client's end cut a line short: nobody to answer */
    reply(conn, code == -EMSGSIZE ? "500 5.5.0 Line too long\r\n" : "500 5.5.0 Syntax error\r\n");
    return false;
}

static void greet(smtp_conn *conn, struct smtp_session *session, pg_slice domain, bool extended)
{
    struct smtp_server *server = smtp_context(conn);
    if (domain.len == 0) {
        reply(conn, "501 5.5.4 A domain is needed\r\n");
        if (smtp_current_state(conn) == SMTP_STATE_CONNECTED)
            (void)smtp_next_state(conn, SMTP_STATE_CONNECTED); /* still not greeted */
        return;
    }
    reset_transaction(session);
    copy_slice(session->client, sizeof session->client, domain);
    char line[640];
    if (extended)
        snprintf(line, sizeof line, "250-%s\r\n250-PIPELINING\r\n250-SIZE %zu\r\n250 8BITMIME\r\n",
                 server->hostname, server->max_size);
    else
        snprintf(line, sizeof line, "250 %s\r\n", server->hostname);
    reply(conn, line);
}

void smtp_on_helo(smtp_conn *conn, struct smtp_session *session, const smtp_helo_msg *msg)
{
    greet(conn, session, msg->domain, false);
}

void smtp_on_ehlo(smtp_conn *conn, struct smtp_session *session, const smtp_ehlo_msg *msg)
{
    greet(conn, session, msg->domain, true);
}

void smtp_on_mail(smtp_conn *conn, struct smtp_session *session, const smtp_mail_msg *msg)
{
    struct smtp_server *server = smtp_context(conn);
    if (!path_closed(msg->rest)) {
        reply(conn, "501 5.5.4 Syntax: MAIL FROM:<address>\r\n");
        (void)smtp_next_state(conn, SMTP_STATE_GREETED);
        return;
    }
    if (declared_size(msg->rest) > server->max_size) {
        reply(conn, "552 5.3.4 Message size exceeds fixed limit\r\n");
        (void)smtp_next_state(conn, SMTP_STATE_GREETED);
        return;
    }
    reset_transaction(session);
    copy_slice(session->sender, sizeof session->sender, msg->path);
    reply(conn, "250 2.1.0 Ok\r\n");
}

void smtp_on_rcpt(smtp_conn *conn, struct smtp_session *session, const smtp_rcpt_msg *msg)
{
    bool first = smtp_current_state(conn) == SMTP_STATE_SENDER;
    if (!path_closed(msg->rest) || msg->path.len == 0) {
        reply(conn, "501 5.5.4 Syntax: RCPT TO:<address>\r\n");
    } else if (session->recipients == MAX_RECIPIENTS) {
        reply(conn, "452 4.5.3 Too many recipients\r\n");
    } else {
        session->recipients++;
        reply(conn, "250 2.1.5 Ok\r\n");
        return; /* the first one: on to 'recipients' */
    }
    if (first)
        (void)smtp_next_state(conn, SMTP_STATE_SENDER); /* none accepted yet */
}

void smtp_on_data(smtp_conn *conn, struct smtp_session *session, const smtp_data_msg *msg)
{
    (void)msg;
    session->message_len = 0;
    session->too_big = false;
    reply(conn, "354 End data with <CR><LF>.<CR><LF>\r\n");
}

static void deliver(smtp_conn *conn, struct smtp_session *session)
{
    struct smtp_server *server = smtp_context(conn);
    char head[1024];
    int n = snprintf(head, sizeof head, "Return-Path: <%s>\nReceived: from %s by %s with SMTP\n", session->sender,
                     session->client, server->hostname);
    size_t head_len = n > 0 && (size_t)n < sizeof head ? (size_t)n : 0;
    uint8_t *whole = malloc(head_len + session->message_len + 1);
    char name[512];
    int rc = whole != NULL ? 0 : -ENOMEM;
    if (rc == 0) {
        memcpy(whole, head, head_len);
        if (session->message_len > 0)
            memcpy(whole + head_len, session->message, session->message_len);
        rc = maildir_deliver(server->maildir, whole, head_len + session->message_len, name, sizeof name);
    }
    free(whole);
    if (rc < 0) {
        reply(conn, "451 4.3.0 Cannot store the message\r\n");
        return;
    }
    server->delivered++;
    char line[64];
    snprintf(line, sizeof line, "250 2.0.0 Ok: queued as %zu\r\n", server->delivered); /* the file: name */
    reply(conn, line);
}

/* One line of the body, CRLF removed: "." ends it; a leading dot was doubled
 * by the client (dot-stuffing, RFC 5321 4.5.2). */
void smtp_on_body_line(smtp_conn *conn, struct smtp_session *session, const uint8_t *data, size_t len)
{
    struct smtp_server *server = smtp_context(conn);
    if (len == 1 && data[0] == '.') {
        if (session->too_big)
            reply(conn, "552 5.3.4 Message size exceeds fixed limit\r\n");
        else
            deliver(conn, session);
        reset_transaction(session);
        (void)smtp_next_state(conn, SMTP_STATE_GREETED);
        return;
    }
    if (len > 0 && data[0] == '.') {
        data++;
        len--;
    }
    if (append(session, data, len, server->max_size))
        (void)append(session, (const uint8_t *)"\n", 1, server->max_size);
}

void smtp_on_rset(smtp_conn *conn, struct smtp_session *session, const smtp_rset_msg *msg)
{
    (void)msg;
    reset_transaction(session);
    reply(conn, "250 2.0.0 Ok\r\n");
}

void smtp_on_noop(smtp_conn *conn, struct smtp_session *session, const smtp_noop_msg *msg)
{
    (void)session;
    (void)msg;
    reply(conn, "250 2.0.0 Ok\r\n");
}

void smtp_on_quit(smtp_conn *conn, struct smtp_session *session, const smtp_quit_msg *msg)
{
    (void)session;
    (void)msg;
    reply(conn, "221 2.0.0 Bye\r\n"); /* 'done' is final: the connection closes once this is out */
}

/* A line that is no command: a known verb with bad arguments (501), or none (500). */
void smtp_on_other(smtp_conn *conn, struct smtp_session *session, const smtp_other_msg *msg)
{
    static const char *const verbs[] = { "HELO", "EHLO", "MAIL", "RCPT", "DATA", "RSET", "NOOP", "QUIT" };
    (void)session;
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        if (msg->raw.len >= 4 && strncasecmp((const char *)msg->raw.data, verbs[i], 4) == 0
            && (msg->raw.len == 4 || strchr(" \r\n:", msg->raw.data[4]) != NULL)) {
            reply(conn, "501 5.5.4 Syntax error in parameters or arguments\r\n");
            return;
        }
    reply(conn, "500 5.5.2 Syntax error, command unrecognized\r\n");
}

void smtp_on_out_of_sequence(smtp_conn *conn, struct smtp_session *session, enum smtp_message_id message, pg_slice raw)
{
    (void)session;
    (void)message;
    (void)raw;
    reply(conn, "503 5.5.1 Bad sequence of commands\r\n");
}

void smtp_on_idle(smtp_conn *conn, struct smtp_session *session)
{
    struct smtp_server *server = smtp_context(conn);
    (void)session;
    char line[512];
    snprintf(line, sizeof line, "421 4.4.2 %s Error: timeout exceeded\r\n", server->hostname);
    reply(conn, line);
}
