/* hello_server: a two-phase server over a Unix socket. Each connection starts
 * with the protocol from hello.spec (a one-line handshake) and is then handed
 * to the buffered protocol from sink.spec (asyncio's set_protocol).
 *
 *   hello_server --path PATH     listen on PATH ("@name": abstract socket)
 *   hello_server --inetd         serve the one connection on stdin (a socket
 *                                accepted by someone else: inetd, systemd
 *                                socket activation with Accept=yes, a test)
 *
 * Prints "listening on PATH" once it accepts connections; stops cleanly on
 * SIGINT or SIGTERM, and in --inetd mode when its connection ends. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../echo/options.h"
#include "handshake.h"
#include "hello.h"

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
    if (server->stop_when_idle && server->n_open == 0)
        pg_loop_stop(server->loop);
}

static void stop_loop(void *arg)
{
    pg_loop_stop(arg);
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    bool inetd = false;
    for (int i = 1; i < argc; i++) {
        if (option_string(argc, argv, &i, "--path", &path))
            continue;
        if (strcmp(argv[i], "--inetd") == 0) {
            inetd = true;
            continue;
        }
        path = NULL;
        break;
    }
    if ((path == NULL) == !inetd) {
        fprintf(stderr, "usage: %s --path PATH | --inetd\n", argv[0]);
        return 2;
    }

    struct handshake_server server = { .stop_when_idle = inetd };
    pg_server *listener = NULL;
    pg_transport *adopted = NULL; /* --inetd's connection, whichever protocol has it */
    int rc = pg_loop_new(&server.loop);
    if (rc == 0 && inetd) {
        hello_conn *conn;
        rc = hello_adopt(server.loop, STDIN_FILENO, &server, &conn);
        if (rc == 0)
            adopted = hello_transport(conn);
    } else if (rc == 0) {
        rc = hello_listen(server.loop, path, NULL, &server, &listener);
    }
    if (rc < 0) {
        fprintf(stderr, "hello_server: %s: %s\n", inetd ? "cannot adopt stdin" : path, strerror(-rc));
        if (server.loop != NULL)
            pg_loop_close(server.loop);
        return 1;
    }
    if (!inetd) {
        printf("listening on %s\n", path);
        fflush(stdout);
    }

    pg_loop_add_signal_handler(server.loop, SIGINT, stop_loop, server.loop);
    pg_loop_add_signal_handler(server.loop, SIGTERM, stop_loop, server.loop);
    rc = pg_loop_run(server.loop);

    /* Shut down: stop accepting (the socket file goes), abort what is open. */
    server.stop_when_idle = false;
    if (listener != NULL) {
        pg_server_close(listener);
        pg_server_abort_clients(listener);
    } else if (server.n_open > 0) {
        pg_transport_abort(adopted); /* still open: its handle is still its own */
    }
    while (server.n_open > 0 && rc == 0)
        rc = pg_loop_run_once(server.loop, -1);
    pg_loop_remove_signal_handler(server.loop, SIGINT);
    pg_loop_remove_signal_handler(server.loop, SIGTERM);
    pg_loop_close(server.loop);
    return rc == 0 ? 0 : 1;
}
