/* examples/echo's client fed its server's echo at every split. Its handlers
 * use the built-in loop (a hold timer, pg_loop_stop at the end), so this
 * program links protogen::protogen; the loop is made but never run: the
 * protocol itself runs on the manual host. */
#include <stdio.h>
#include <stdlib.h>

#include "echo_client.h"
#include "echo_client_app.h"
#include "split.h"

/* arg: how many payload bytes the client sends (and expects back). */
static void *client_new(const char *arg)
{
    struct echo_client_app *app = calloc(1, sizeof *app);
    if (app == NULL || pg_loop_new(&app->loop) < 0)
        abort();
    app->total = arg != NULL ? (size_t)strtoul(arg, NULL, 10) : 0;
    pg_timer_init(&app->hold_timer);
    return app;
}

static void client_report(void *context, split_text *out)
{
    struct echo_client_app *app = context;
    split_text_printf(out, "sent %zu received %zu mismatch %s\n", app->sent, app->received,
                      app->mismatch ? "yes" : "no");
    split_text_printf(out, "finished %s error %d\n", app->finished ? "yes" : "no", app->error);
}

static void client_free(void *context)
{
    struct echo_client_app *app = context;
    pg_loop_close(app->loop);
    free(app);
}

static const split_protocol protocols[] = {
    { "echo_client", PG_STREAM_CAN_WRITE_EOF, echo_client_protocol_factory, client_new, client_report, client_free },
};

int main(int argc, char **argv)
{
    return split_main(argc, argv, protocols, sizeof protocols / sizeof protocols[0]);
}
