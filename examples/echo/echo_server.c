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
 * Signals and threads (docs/runtime.md, "Threads"): SIGINT and SIGTERM are
 * blocked before any thread starts, so every thread inherits the mask and
 * the main thread's loop alone takes them (its signalfd); it then asks each
 * other loop to shut down with pg_loop_call_soon_threadsafe. */
#define _POSIX_C_SOURCE 200809L /* pthread_sigmask */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "echo.h"
#include "echo_server.h"
#include "options.h"

#include <pthread.h>

#define MAX_THREADS 64

/* One per thread: a loop, its listener, its connections. */
struct worker {
    pg_loop *loop;
    pg_server *listener;
    struct echo_server server;
    pthread_t thread;
    int rc;
};

static struct worker workers[MAX_THREADS];
static long nthreads = 1;
static bool nested, stopped;

/* On the worker's own thread: the shutdown starts. */
static void stop_worker(void *arg)
{
    struct worker *w = arg;
    pg_loop_stop(w->loop);
}

/* The main thread's loop got SIGINT or SIGTERM: stop every loop. */
static void stop_loop(void *arg)
{
    stopped = true;
    for (long i = 1; i < nthreads; i++)
        (void)pg_loop_call_soon_threadsafe(workers[i].loop, stop_worker, &workers[i]);
    pg_loop_stop(arg);
}

/* pg_loop_run(), the way an outer loop nests it: wait for the loop's fd as
 * long as it allows, then one iteration that does not wait. */
static int run_nested(pg_loop *loop)
{
    int rc = 0;
    int fd = pg_loop_backend_fd(loop);
    if (fd < 0)
        return fd;
    while (!stopped && rc == 0) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, pg_loop_backend_timeout(loop)) < 0 && errno != EINTR)
            return -errno;
        rc = pg_loop_run_once(loop, 0);
    }
    return rc;
}

/* After the run: stop accepting, abort what is still open, let
 * connection_lost run, close the loop. */
static int shut_down(struct worker *w, int rc)
{
    pg_server_close(w->listener);
    pg_server_abort_clients(w->listener);
    while (w->server.open_connections > 0 && rc == 0)
        rc = pg_loop_run_once(w->loop, -1);
    if (pg_loop_close(w->loop) < 0 && rc == 0)
        rc = -EBUSY;
    return rc;
}

static void *run_worker(void *arg)
{
    struct worker *w = arg;
    w->rc = shut_down(w, pg_loop_run(w->loop));
    return NULL;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    long port = 7777, sndbuf = 0;
    for (int i = 1; i < argc; i++) {
        if (option_string(argc, argv, &i, "--host", &host) || option_long(argc, argv, &i, "--port", 0, 65535, &port)
            || option_long(argc, argv, &i, "--sndbuf", 0, 1 << 30, &sndbuf)
            || option_long(argc, argv, &i, "--threads", 1, MAX_THREADS, &nthreads))
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

    /* Before any thread: every thread inherits the mask, so no thread but
     * the loop that handles them can take these (its signalfd reads them). */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);

    /* Every loop and listener is made here; the first picks the port when
     * it is 0, the others share it. */
    pg_listen_options opts = { .send_buffer_size = (int)sndbuf, .reuse_port = nthreads > 1 };
    int rc = 0;
    long made = 0;
    for (; made < nthreads && rc == 0; made++) {
        struct worker *w = &workers[made];
        rc = pg_loop_new(&w->loop);
        if (rc == 0 && (rc = echo_listen(w->loop, host, (uint16_t)port, &opts, &w->server, &w->listener)) < 0)
            pg_loop_close(w->loop);
        struct sockaddr_storage addr;
        socklen_t addrlen = sizeof addr;
        if (rc == 0 && made == 0 && port == 0 && pg_server_sockname(w->listener, &addr, &addrlen) == 0)
            port = ntohs(addr.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&addr)->sin6_port
                                                    : ((struct sockaddr_in *)&addr)->sin_port);
    }
    if (rc < 0) {
        fprintf(stderr, "echo_server: cannot listen on %s:%ld: %s\n", host, port, strerror(-rc));
        for (long i = 0; i < made - 1; i++)
            shut_down(&workers[i], 0);
        return 1;
    }

    struct sockaddr_storage addr;
    socklen_t addrlen = sizeof addr;
    char where[128];
    if (pg_server_sockname(workers[0].listener, &addr, &addrlen) == 0
        && pg_format_address((struct sockaddr *)&addr, where, sizeof where) > 0)
        printf("listening on %s\n", where);
    fflush(stdout);

    pg_loop *loop = workers[0].loop;
    pg_loop_add_signal_handler(loop, SIGINT, stop_loop, loop);
    pg_loop_add_signal_handler(loop, SIGTERM, stop_loop, loop);
    long started = 1;
    for (; started < nthreads; started++) {
        if ((rc = -pthread_create(&workers[started].thread, NULL, run_worker, &workers[started])) < 0) {
            fprintf(stderr, "echo_server: cannot start a thread: %s\n", strerror(-rc));
            for (long i = started; i < nthreads; i++)
                workers[i].rc = shut_down(&workers[i], 0);
            stop_loop(loop);
            break;
        }
    }
    if (rc == 0)
        rc = nested ? run_nested(loop) : pg_loop_run(loop);
    pg_loop_remove_signal_handler(loop, SIGINT);
    pg_loop_remove_signal_handler(loop, SIGTERM);
    workers[0].rc = shut_down(&workers[0], rc);
    for (long i = 1; i < started; i++)
        pthread_join(workers[i].thread, NULL);

    int failed = 0;
    for (long i = 0; i < nthreads; i++) {
        if (nthreads > 1)
            printf("thread %ld served %zu connections\n", i, workers[i].server.accepted);
        failed |= workers[i].rc != 0;
    }
    return failed ? 1 : 0;
}
