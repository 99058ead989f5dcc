/* Generated protocols fed at every split, linked against protogen::core
 * alone (protogen_generate(... CORE_ONLY)): examples/echo's server,
 * examples/handshake's hello and sink, the conformance suite's conform and
 * conform_buffered, examples/lines, resp, smtp and http, tests/generated's sw_line, sw_bulk,
 * sw_framed and the rules framing's kv, each with its
 * handlers unchanged. Here is only what their mains would give them: a
 * context, and what handshake.h asks its program for. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conform.h"
#include "conform_buffered.h"
#include "echo.h"
#include "echo_server.h"
#include "handshake.h"
#include "hello.h"
#include "kv.h"
#include "lines.h"
#include "lines_server.h"
#include "resp.h"
#include "resp_server.h"
#include "smtp.h"
#include "http.h"
#include "http_server.h"
#include "maildir.h"
#include "smtp_server.h"
#include "sw_framed.h"
#include "split.h"
#include "switch_test.h"

static void *zeroed(size_t size)
{
    void *p = calloc(1, size);
    if (p == NULL)
        abort();
    return p;
}

/* ---- echo ---------------------------------------------------------------- */

static void *echo_new(const char *arg)
{
    (void)arg;
    return zeroed(sizeof(struct echo_server));
}

static void echo_report(void *context, split_text *out)
{
    struct echo_server *server = context;
    split_text_printf(out, "open connections %zu\n", server->open_connections);
}

/* ---- handshake: hello, then sink ------------------------------------------- */

bool handshake_track(struct handshake_server *server)
{
    if (server->n_open == HANDSHAKE_MAX_CONNECTIONS)
        return false;
    server->n_open++;
    return true;
}

void handshake_untrack(struct handshake_server *server)
{
    server->n_open--;
}

static void *handshake_new(const char *arg)
{
    (void)arg;
    return zeroed(sizeof(struct handshake_server)); /* not stop_when_idle: there is no loop to stop */
}

static void handshake_report(void *context, split_text *out)
{
    struct handshake_server *server = context;
    split_text_printf(out, "tracked %zu\n", server->n_open);
}

/* ---- sw_line, then sw_bulk --------------------------------------------------- */

/* arg: the size of the buffer sw_bulk lends (small: pending bytes take several). */
static void *switch_new(const char *arg)
{
    struct switch_test *t = zeroed(sizeof *t);
    t->switch_on_newline = true;
    t->buffer_size = arg != NULL ? (size_t)strtoul(arg, NULL, 10) : 0;
    return t;
}

/* line_data (how many data_received) depends on the cut: not reported. */
static void switch_report(void *context, split_text *out)
{
    struct switch_test *t = context;
    split_text_printf(out, "line made %d lost %d switch %d\n", t->line_made, t->line_lost, t->switch_rc);
    split_text_printf(out, "bulk made %d eof %d lost %d\n", t->bulk_made, t->bulk_eof, t->bulk_lost);
    if (t->framed_made > 0)
        split_text_printf(out, "framed made %d messages %d lost %d\n", t->framed_made, t->framed_messages,
                          t->framed_lost);
    split_text_printf(out, "bulk got ");
    split_text_escaped(out, t->rx, t->rx_len);
    split_text_printf(out, "\n");
}

/* ---- lines ------------------------------------------------------------------ */

static void *lines_new(const char *arg)
{
    (void)arg;
    return zeroed(sizeof(struct lines_server));
}

static void lines_report(void *context, split_text *out)
{
    struct lines_server *server = context;
    split_text_printf(out, "open connections %zu\n", server->open_connections);
}

/* ---- resp: a keyspace per run ------------------------------------------------ */

static void *resp_new(const char *arg)
{
    (void)arg;
    struct resp_server *server = zeroed(sizeof *server);
    server->store = resp_store_new();
    if (server->store == NULL)
        abort();
    return server;
}

static void resp_report(void *context, split_text *out)
{
    struct resp_server *server = context;
    split_text_printf(out, "open connections %zu keys %zu\n", server->open_connections,
                      resp_store_count(server->store));
}

static void resp_free(void *context)
{
    struct resp_server *server = context;
    resp_store_free(server->store);
    resp_reply_free(&server->reply);
    resp_inline_free(&server->words);
    free(server);
}

/* ---- smtp: a Maildir of its own per run -------------------------------------- */

struct smtp_split {
    struct smtp_server server;
    char maildir[64];
};

static void *smtp_new(const char *arg)
{
    (void)arg;
    struct smtp_split *s = zeroed(sizeof *s);
    strcpy(s->maildir, "/tmp/protogen-split-smtp-XXXXXX");
    if (mkdtemp(s->maildir) == NULL || maildir_open(s->maildir) < 0)
        abort();
    s->server = (struct smtp_server){ .hostname = "split.example", .maildir = s->maildir,
                                      .idle_timeout_ms = 300000, .max_size = 1024 };
    return s;
}

static void smtp_report(void *context, split_text *out)
{
    struct smtp_split *s = context;
    split_text_printf(out, "open connections %zu delivered %zu\n", s->server.open_connections, s->server.delivered);
}

/* Removes the run's Maildir and what was delivered to it. */
static void smtp_free(void *context)
{
    struct smtp_split *s = context;
    const char *subdirs[] = { "tmp", "new", "cur" };
    for (size_t i = 0; i < 3; i++) {
        char path[128];
        snprintf(path, sizeof path, "%s/%s", s->maildir, subdirs[i]);
        DIR *d = opendir(path);
        for (struct dirent *e; d != NULL && (e = readdir(d)) != NULL;) {
            char file[512];
            if (e->d_name[0] != '.' && snprintf(file, sizeof file, "%s/%s", path, e->d_name) < (int)sizeof file)
                unlink(file);
        }
        if (d != NULL)
            closedir(d);
        rmdir(path);
    }
    rmdir(s->maildir);
    free(s);
}

/* ---- http: no files, the timeouts far away ------------------------------------ */

static void *http_new(const char *arg)
{
    (void)arg;
    struct http_server *server = zeroed(sizeof *server);
    server->header_timeout_ms = 600000;
    server->idle_timeout_ms = 600000;
    server->max_body = 4096;
    return server;
}

static void http_report(void *context, split_text *out)
{
    struct http_server *server = context;
    split_text_printf(out, "open connections %zu requests %zu\n", server->open_connections, server->requests);
}

static const split_protocol protocols[] = {
    { "echo", PG_STREAM_CAN_WRITE_EOF, echo_protocol_factory, echo_new, echo_report, free },
    { "hello", PG_STREAM_CAN_WRITE_EOF, hello_protocol_factory, handshake_new, handshake_report, free },
    { "conform", PG_STREAM_CAN_WRITE_EOF, conform_protocol_factory, NULL, NULL, NULL },
    { "conform_buffered", PG_STREAM_CAN_WRITE_EOF, conform_buffered_protocol_factory, NULL, NULL, NULL },
    { "sw_line", PG_STREAM_CAN_WRITE_EOF, sw_line_protocol_factory, switch_new, switch_report, free },
    { "kv", PG_STREAM_CAN_WRITE_EOF, kv_protocol_factory, NULL, NULL, NULL },
    { "lines", PG_STREAM_CAN_WRITE_EOF, lines_protocol_factory, lines_new, lines_report, free },
    { "resp", PG_STREAM_CAN_WRITE_EOF, resp_protocol_factory, resp_new, resp_report, resp_free },
    { "sw_framed", PG_STREAM_CAN_WRITE_EOF, sw_framed_protocol_factory, switch_new, switch_report, free },
    { "smtp", PG_STREAM_CAN_WRITE_EOF, smtp_protocol_factory, smtp_new, smtp_report, smtp_free },
    { "http", PG_STREAM_CAN_WRITE_EOF, http_protocol_factory, http_new, http_report, free },
};

int main(int argc, char **argv)
{
    return split_main(argc, argv, protocols, sizeof protocols / sizeof protocols[0]);
}
