/* kv_handlers.c — every message comes back as one line saying what was
 * captured, so that a test sees the fields the scanner found. */
#include <stdio.h>
#include <string.h>

#include "kv.h"

struct kv_session {
    int unused;
};

const size_t kv_session_size = sizeof(struct kv_session);

/* Appends "[bytes]" (bytes as they are) to the line at *at. */
static size_t put_slice(char *line, size_t at, size_t cap, pg_slice s)
{
    if (at + s.len + 3 > cap)
        return at;
    line[at++] = '[';
    memcpy(line + at, s.data, s.len);
    at += s.len;
    line[at++] = ']';
    return at;
}

void kv_on_command(kv_conn *conn, struct kv_session *session, const kv_command_msg *msg)
{
    (void)session;
    char line[8192];
    size_t at = (size_t)snprintf(line, sizeof line, "command %llu:", (unsigned long long)msg->argc);
    for (size_t i = 0; i < msg->arg_count; i++) {
        line[at++] = ' ';
        at = put_slice(line, at, sizeof line, msg->arg[i]);
    }
    at += (size_t)snprintf(line + at, sizeof line - at, " lens");
    for (size_t i = 0; i < msg->len_count; i++)
        at += (size_t)snprintf(line + at, sizeof line - at, " %llu", (unsigned long long)msg->len[i]);
    line[at++] = '\n';
    kv_write(conn, line, at);
}

void kv_on_set(kv_conn *conn, struct kv_session *session, const kv_set_msg *msg)
{
    (void)session;
    char line[8192];
    size_t at = (size_t)snprintf(line, sizeof line, "set ");
    at = put_slice(line, at, sizeof line, msg->key);
    at += (size_t)snprintf(line + at, sizeof line - at, " flags %llu exptime %llu size %llu data ",
                           (unsigned long long)msg->flags, (unsigned long long)msg->exptime,
                           (unsigned long long)msg->size);
    at = put_slice(line, at, sizeof line, msg->data);
    at += (size_t)snprintf(line + at, sizeof line - at, " (%zu bytes in all)\n", msg->raw.len);
    kv_write(conn, line, at);
}

void kv_on_words(kv_conn *conn, struct kv_session *session, const kv_words_msg *msg)
{
    (void)session;
    char line[8192];
    size_t at = (size_t)snprintf(line, sizeof line, "words %zu:", msg->word_count);
    for (size_t i = 0; i < msg->word_count; i++) {
        line[at++] = ' ';
        at = put_slice(line, at, sizeof line, msg->word[i]);
    }
    line[at++] = '\n';
    kv_write(conn, line, at);
}

/* Says what broke the framing, then lets the connection close. */
bool kv_on_protocol_error(kv_conn *conn, struct kv_session *session, int code, uint64_t pos, const char *reason)
{
    (void)session;
    char line[256];
    int n = snprintf(line, sizeof line, "error %d at %llu: %s\n", code, (unsigned long long)pos, reason);
    kv_write(conn, line, (size_t)n);
    return false;
}
