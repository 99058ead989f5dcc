/* echo_server: a TCP echo server built on the protocol generated from echo.spec.
 *
 *   echo_server [--host HOST] [--port PORT] [--sndbuf BYTES] [--nest] [--threads N]
 *
 * Prints "listening on HOST:PORT" once it accepts connections (PORT 0 picks a
 * free port), and stops cleanly on SIGINT or SIGTERM. --sndbuf shrinks the
 * kernel's send buffer of each connection, so back-pressure shows with little
 * data. --nest runs the loop inside a poll() loop of the program's own
 * (pg_loop_backend_fd, pg_loop_backend_timeout), as a program with a loop of
 * its own would embed it. --threads N (default 1) runs one loop per thread,
 * each with a listener of its own on the same port (reuse_port: the kernel
 * spreads the connections); at exit it prints how many each thread served.
 *
 * The loops, their threads and the shutdown are serve_threads.h's (the
 * other example servers' too), which keeps docs/runtime.md's signal-mask
 * rule for threads. */
#define _POSIX_C_SOURCE 200809L /* pthread_sigmask */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "echo.h"
#include "echo_server.h"
#include "options.h"
#include "serve_threads.h"

static struct echo_server servers[SERVE_MAX_THREADS]; /* one per loop */

static int listen_worker(void *arg, long i, pg_loop *loop, const char *host, uint16_t port,
                         const pg_listen_options *opts, pg_server **listener, const size_t **open_connections)
{
    (void)arg;
    *open_connections = &servers[i].open_connections;
    return echo_listen(loop, host, port, opts, &servers[i], listener);
}

/* pg_loop_run(), the way an outer loop nests it: wait for the loop's fd as
 * long as it allows, then one iteration that does not wait. */
static int run_nested(pg_loop *loop)
{
    int rc = 0;
    int fd = pg_loop_backend_fd(loop);
    if (fd < 0)
        return fd;
    while (!serve_stopped && rc == 0) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, pg_loop_backend_timeout(loop)) < 0 && errno != EINTR)
            return -errno;
        rc = pg_loop_run_once(loop, 0);
    }
    return rc;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    long port = 7777, sndbuf = 0, nthreads = 1;
    bool nested = false;
    for (int i = 1; i < argc; i++) {
        if (option_string(argc, argv, &i, "--host", &host) || option_long(argc, argv, &i, "--port", 0, 65535, &port)
            || option_long(argc, argv, &i, "--sndbuf", 0, 1 << 30, &sndbuf)
            || option_long(argc, argv, &i, "--threads", 1, SERVE_MAX_THREADS, &nthreads))
            continue;
        if (strcmp(argv[i], "--nest") == 0) {
            nested = true;
            continue;
        }
        fprintf(stderr, "usage: %s [--host HOST] [--port PORT] [--sndbuf BYTES] [--nest] [--threads N]\n", argv[0]);
        return 2;
    }
    if (nested && nthreads > 1) {
        fprintf(stderr, "echo_server: --nest runs one loop: not with --threads\n");
        return 2;
    }
    pg_listen_options opts = { .send_buffer_size = (int)sndbuf };
    int rc = serve_threads("echo_server", host, (uint16_t)port, opts, nthreads, listen_worker, NULL,
                           nested ? run_nested : NULL);
    for (long i = 0; nthreads > 1 && i < nthreads; i++)
        printf("thread %ld served %zu connections\n", i, servers[i].accepted);
    return rc;
}
