/* http_handlers.c — HTTP/1.1's meaning for the messages http.spec frames:
 * the request head (its fields checked: version, Host, Content-Length,
 * Transfer-Encoding, Connection, Expect), the body (one raw message, or
 * chunks), the response and whether the connection is kept. When each
 * handler runs, keep-alive's order, pipelining and back-pressure, the body's
 * framing and the timeouts are the generated code's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http.h"
#include "http_server.h"
#include "routes.h"

enum { MAX_TARGET = 8 * 1024 };

/* The request being read. */
struct http_session {
    char method[16];
    char *target;          /* a copy: the head's memory goes with its handler */
    size_t target_len;
    bool keep_alive;
    bool http10;
    bool head;             /* HEAD: the response without its body */
    uint8_t *body;         /* a chunked body, gathered */
    size_t body_len;
    size_t body_cap;
    size_t chunk;          /* the chunk being read: its size */
};

const size_t http_session_size = sizeof(struct http_session);

static bool is(pg_slice s, const char *text)
{
    size_t n = strlen(text);
    return s.len == n && strncasecmp((const char *)s.data, text, n) == 0;
}

/* A field's value without the whitespace around it (RFC 9110 5.5). */
static pg_slice trimmed(pg_slice v)
{
    while (v.len > 0 && (v.data[v.len - 1] == ' ' || v.data[v.len - 1] == '\t'))
        v.len--;
    return v;
}

/* Whether a comma-separated list (Connection) holds token. */
static bool has_token(pg_slice list, const char *token)
{
    size_t n = strlen(token);
    for (size_t i = 0; i < list.len;) {
        while (i < list.len && (list.data[i] == ' ' || list.data[i] == ',' || list.data[i] == '\t'))
            i++;
        size_t start = i;
        while (i < list.len && list.data[i] != ',' && list.data[i] != ' ' && list.data[i] != '\t')
            i++;
        if (i - start == n && strncasecmp((const char *)list.data + start, token, n) == 0)
            return true;
    }
    return false;
}

static bool decimal(pg_slice s, size_t *out)
{
    if (s.len == 0 || s.len > 15)
        return false;
    size_t n = 0;
    for (size_t i = 0; i < s.len; i++) {
        if (s.data[i] < '0' || s.data[i] > '9')
            return false;
        n = n * 10 + (size_t)(s.data[i] - '0');
    }
    *out = n;
    return true;
}

/* A response head, built by appending (snprintf's format parsing was 2.5%
 * of the server's CPU under wrk); what would not fit is cut, which the
 * route table's short reasons and types never reach. */
typedef struct {
    char buf[256];
    size_t len;
} response_head;

static void put(response_head *h, const char *s, size_t n)
{
    if (n > sizeof h->buf - h->len)
        n = sizeof h->buf - h->len;
    memcpy(h->buf + h->len, s, n);
    h->len += n;
}

static void put_str(response_head *h, const char *s)
{
    put(h, s, strlen(s));
}

static void put_decimal(response_head *h, size_t v)
{
    char digits[20];
    size_t i = sizeof digits;
    do
        digits[--i] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    put(h, digits + i, sizeof digits - i);
}

/* Writes the status line, the fields and the body; the connection stays
 * open for the next request unless it is to close (then 'done', final). */
static void respond(http_conn *conn, struct http_session *session, int status, const char *reason,
                    const char *content_type, const uint8_t *body, size_t len, bool keep_alive)
{
    response_head h = { .len = 0 };
    put_str(&h, "HTTP/1.1 ");
    put_decimal(&h, (size_t)status);
    put_str(&h, " ");
    put_str(&h, reason);
    put_str(&h, "\r\nServer: protogen\r\nContent-Type: ");
    put_str(&h, content_type);
    put_str(&h, "\r\nContent-Length: ");
    put_decimal(&h, len);
    put_str(&h, !keep_alive ? "\r\nConnection: close\r\n\r\n"
                : session->http10 ? "\r\nConnection: keep-alive\r\n\r\n" : "\r\n\r\n");
    struct iovec iov[2] = { { h.buf, h.len }, { (void *)body, session->head ? 0 : len } };
    (void)http_writelines(conn, iov, iov[1].iov_len > 0 ? 2 : 1);
    if (!keep_alive)
        (void)http_next_state(conn, HTTP_STATE_DONE);
}

/* An error answered before the request is read whole: the connection closes. */
static void refuse(http_conn *conn, struct http_session *session, int status, const char *reason)
{
    char body[64];
    snprintf(body, sizeof body, "%d %s\n", status, reason);
    respond(conn, session, status, reason, "text/plain", (const uint8_t *)body, strlen(body), false);
}

/* The request is whole: its route's response, then the next request (or the close). */
static void complete(http_conn *conn, struct http_session *session, const uint8_t *body, size_t len)
{
    struct http_server *server = http_context(conn);
    struct http_response r;
    route(server->root, session->method, session->target, session->target_len, body, len, &r);
    respond(conn, session, r.status, r.reason, r.content_type, r.body, r.len, session->keep_alive);
    free(r.owned);
    free(session->target);
    session->target = NULL;
    session->body_len = 0;
    server->requests++;
    if (session->keep_alive) /* 'responded': on to 'waiting', the head timer anew */
        (void)http_start_timer(conn, HTTP_TIMER_HEAD, server->header_timeout_ms);
}

void http_on_connection_made(http_conn *conn, struct http_session *session)
{
    struct http_server *server = http_context(conn);
    (void)session;
    server->open_connections++;
    (void)http_set_idle_timeout(conn, server->idle_timeout_ms);
    (void)http_start_timer(conn, HTTP_TIMER_HEAD, server->header_timeout_ms);
}

void http_on_connection_lost(http_conn *conn, struct http_session *session, int error)
{
    struct http_server *server = http_context(conn);
    (void)error;
    free(session->target);
    free(session->body);
    server->open_connections--;
}

/* A head too big (431; 414 for the request line itself) or malformed (400).
 * A request the client's end cut short gets no answer (nginx's "client
 * prematurely closed connection"). */
bool http_on_protocol_error(http_conn *conn, struct http_session *session, int code, uint64_t pos, const char *reason)
{
    (void)pos;
    (void)reason;
    if (code == PG_FRAMING_ETRUNCATED)
        return false;
    if (http_current_state(conn) != HTTP_STATE_WAITING)
        refuse(conn, session, 400, "Bad Request"); /* a chunk size or trailer line */
    else if (code == -EMSGSIZE)
        refuse(conn, session, 431, "Request Header Fields Too Large");
    else
        refuse(conn, session, 400, "Bad Request");
    return false;
}

void http_on_request(http_conn *conn, struct http_session *session, const http_request_msg *msg)
{
    struct http_server *server = http_context(conn);
    session->http10 = msg->minor == 0;
    if (msg->major != 1 || msg->minor > 1) {
        refuse(conn, session, 505, "HTTP Version Not Supported");
        return;
    }
    if (msg->target.len > MAX_TARGET) {
        refuse(conn, session, 414, "URI Too Long");
        return;
    }
    if (msg->method.len >= sizeof session->method) {
        refuse(conn, session, 501, "Not Implemented");
        return;
    }
    memcpy(session->method, msg->method.data, msg->method.len);
    session->method[msg->method.len] = '\0';
    session->head = strcmp(session->method, "HEAD") == 0;

    bool host = false, chunked = false, close = false, keep = false, expect = false, has_length = false;
    size_t length = 0;
    for (size_t i = 0; i < msg->name_count; i++) {
        pg_slice name = msg->name[i], value = trimmed(msg->value[i]);
        size_t n;
        if (is(name, "Host")) {
            host = true;
        } else if (is(name, "Content-Length")) {
            if (!decimal(value, &n) || (has_length && n != length)) {
                refuse(conn, session, 400, "Bad Request");
                return;
            }
            has_length = true;
            length = n;
        } else if (is(name, "Transfer-Encoding")) {
            if (!is(value, "chunked")) {
                refuse(conn, session, 501, "Not Implemented");
                return;
            }
            chunked = true;
        } else if (is(name, "Connection")) {
            close = close || has_token(value, "close");
            keep = keep || has_token(value, "keep-alive");
        } else if (is(name, "Expect")) {
            expect = is(value, "100-continue");
        }
    }
    /* Both framings at once is how requests are smuggled (RFC 9112 6.3): refused. */
    if ((!host && !session->http10) || (chunked && has_length)) {
        refuse(conn, session, 400, "Bad Request");
        return;
    }
    session->keep_alive = session->http10 ? keep && !close : !close;
    session->target = malloc(msg->target.len + 1);
    if (session->target == NULL) {
        refuse(conn, session, 500, "Internal Server Error");
        return;
    }
    memcpy(session->target, msg->target.data, msg->target.len);
    session->target[msg->target.len] = '\0';
    session->target_len = msg->target.len;
    if (has_length && length > server->max_body) {
        refuse(conn, session, 413, "Content Too Large");
        return;
    }
    if ((chunked || length > 0) && expect && !session->http10)
        (void)http_write(conn, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    if (chunked) {
        session->body_len = 0;
        (void)http_next_state(conn, HTTP_STATE_CHUNK_SIZE);
    } else if (length > 0) {
        (void)http_expect_raw(conn, length); /* the body: one message */
        (void)http_next_state(conn, HTTP_STATE_BODY);
    } else {
        complete(conn, session, NULL, 0);
    }
}

/* The Content-Length body, whole. */
void http_on_message_received(http_conn *conn, struct http_session *session, const uint8_t *data, size_t len)
{
    if (http_current_state(conn) == HTTP_STATE_BODY) {
        complete(conn, session, data, len);
        return;
    }
    /* chunk_size: a chunk's bytes and its CRLF */
    struct http_server *server = http_context(conn);
    if (len < 2 || data[len - 2] != '\r' || data[len - 1] != '\n') {
        refuse(conn, session, 400, "Bad Request");
        return;
    }
    len -= 2;
    if (session->body_len + len > session->body_cap) {
        size_t cap = session->body_cap ? session->body_cap : 4096;
        while (cap < session->body_len + len)
            cap *= 2;
        uint8_t *grown = cap <= server->max_body * 2 + 4096 ? realloc(session->body, cap) : NULL;
        if (grown == NULL) {
            refuse(conn, session, 500, "Internal Server Error");
            return;
        }
        session->body = grown;
        session->body_cap = cap;
    }
    memcpy(session->body + session->body_len, data, len);
    session->body_len += len;
}

/* chunk-size [; extensions] */
void http_on_chunk_line(http_conn *conn, struct http_session *session, const uint8_t *data, size_t len)
{
    struct http_server *server = http_context(conn);
    size_t size = 0, i = 0;
    for (; i < len && i < 16; i++) {
        int c = data[i] | 0x20;
        int d = data[i] >= '0' && data[i] <= '9' ? data[i] - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0)
            break;
        size = size * 16 + (size_t)d;
    }
    if (i == 0 || (i < len && data[i] != ';' && data[i] != ' ' && data[i] != '\t')) {
        refuse(conn, session, 400, "Bad Request");
        return;
    }
    if (size == 0) {
        (void)http_next_state(conn, HTTP_STATE_TRAILER);
        return;
    }
    if (session->body_len + size > server->max_body) {
        refuse(conn, session, 413, "Content Too Large");
        return;
    }
    session->chunk = size;
    (void)http_expect_raw(conn, size + 2); /* the chunk's bytes, then its CRLF */
}

/* A trailer field, or the empty line that ends the request. */
void http_on_trailer_line(http_conn *conn, struct http_session *session, const uint8_t *data, size_t len)
{
    (void)data;
    if (len == 0) {
        (void)http_next_state(conn, HTTP_STATE_RESPONDED);
        complete(conn, session, session->body, session->body_len);
    }
}

/* A request (its head, or its body) not whole in time. */
void http_on_head(http_conn *conn, struct http_session *session)
{
    if (http_current_state(conn) == HTTP_STATE_WAITING && http_input_buffered(conn) == 0)
        return; /* nothing of a request came: closed without an answer */
    refuse(conn, session, 408, "Request Timeout");
}

void http_on_idle(http_conn *conn, struct http_session *session)
{
    (void)conn;
    (void)session; /* 'done': closed without a word, as keep-alive allows */
}
