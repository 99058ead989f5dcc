/* serve_threads: an example server's main with one loop per thread
 * (--threads N), on serve.h. A program that includes it defines
 * _POSIX_C_SOURCE 200809L first (pthread_sigmask). */
#ifndef EXAMPLES_SERVE_THREADS_H
#define EXAMPLES_SERVE_THREADS_H

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "serve.h"

/* Every thread runs a loop of its own with a listener of its own on the same
 * port (reuse_port: the kernel spreads the connections). The signal-mask
 * rule of docs/runtime.md ("Threads"): SIGINT and SIGTERM are blocked before
 * any thread starts, the first loop (the main thread's) handles them and
 * asks every other loop to stop with pg_loop_call_soon_threadsafe. */

#define SERVE_MAX_THREADS 64

/* Makes worker i's listener on loop, with the example's per-thread state
 * (NAME_listen), and says where its open connections are counted. */
typedef int (*serve_listen_fn)(void *arg, long i, pg_loop *loop, const char *host, uint16_t port,
                               const pg_listen_options *opts, pg_server **listener,
                               const size_t **open_connections);

struct serve_worker {
    pg_loop *loop;
    pg_server *listener;
    const size_t *open_connections;
    pthread_t thread;
    int rc;
};

static struct serve_worker serve_workers[SERVE_MAX_THREADS];
static long serve_nthreads;
static bool serve_stopped; /* the main thread's: SIGINT or SIGTERM came */

static inline void serve_stop_worker(void *arg)
{
    pg_loop_stop(((struct serve_worker *)arg)->loop);
}

/* The main thread's loop got SIGINT or SIGTERM: every loop stops. */
static inline void serve_stop_all(void *arg)
{
    serve_stopped = true;
    for (long i = 1; i < serve_nthreads; i++)
        (void)pg_loop_call_soon_threadsafe(serve_workers[i].loop, serve_stop_worker, &serve_workers[i]);
    pg_loop_stop(arg);
}

/* After the run: stop accepting, abort what is still open, let
 * connection_lost run, close the loop. */
static inline int serve_shut_down(struct serve_worker *w, int rc)
{
    pg_server_close(w->listener);
    pg_server_abort_clients(w->listener);
    while (*w->open_connections > 0 && rc == 0)
        rc = pg_loop_run_once(w->loop, -1);
    if (pg_loop_close(w->loop) < 0 && rc == 0)
        rc = -EBUSY;
    return rc;
}

static inline void *serve_run_worker(void *arg)
{
    struct serve_worker *w = arg;
    w->rc = serve_shut_down(w, pg_loop_run(w->loop));
    return NULL;
}

static inline uint16_t serve_port_of(pg_server *listener)
{
    struct sockaddr_storage addr;
    socklen_t addrlen = sizeof addr;
    if (pg_server_sockname(listener, &addr, &addrlen) < 0)
        return 0;
    return ntohs(addr.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&addr)->sin6_port
                                            : ((struct sockaddr_in *)&addr)->sin_port);
}

/* Listens with nthreads loops (1..SERVE_MAX_THREADS; port 0: the first picks
 * a free one, the others share it), prints "listening on HOST:PORT", serves
 * until SIGINT or SIGTERM and shuts every loop down. run runs the main
 * thread's loop (NULL: pg_loop_run; it may watch serve_stopped). 0 on a
 * clean stop; a failure to listen is reported on stderr under name, 1. */
static inline int serve_threads(const char *name, const char *host, uint16_t port, pg_listen_options opts,
                                long nthreads, serve_listen_fn listen, void *arg, int (*run)(pg_loop *))
{
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL); /* before any thread: all inherit it */

    opts.reuse_port = opts.reuse_port || nthreads > 1;
    int rc = 0;
    long made = 0;
    for (; made < nthreads && rc == 0; made++) {
        struct serve_worker *w = &serve_workers[made];
        rc = pg_loop_new(&w->loop);
        if (rc == 0 && (rc = listen(arg, made, w->loop, host, port, &opts, &w->listener, &w->open_connections)) < 0)
            pg_loop_close(w->loop);
        if (rc == 0 && made == 0 && port == 0)
            port = serve_port_of(w->listener);
    }
    if (rc < 0) {
        fprintf(stderr, "%s: cannot listen on %s:%u: %s\n", name, host, port, strerror(-rc));
        for (long i = 0; i < made - 1; i++)
            serve_shut_down(&serve_workers[i], 0);
        return 1;
    }
    serve_nthreads = nthreads;
    serve_print_listening(serve_workers[0].listener);

    pg_loop *loop = serve_workers[0].loop;
    pg_loop_add_signal_handler(loop, SIGINT, serve_stop_all, loop);
    pg_loop_add_signal_handler(loop, SIGTERM, serve_stop_all, loop);
    long started = 1;
    for (; started < nthreads; started++) {
        if ((rc = -pthread_create(&serve_workers[started].thread, NULL, serve_run_worker, &serve_workers[started])) < 0) {
            fprintf(stderr, "%s: cannot start a thread: %s\n", name, strerror(-rc));
            for (long i = started; i < nthreads; i++)
                serve_workers[i].rc = serve_shut_down(&serve_workers[i], 0);
            serve_nthreads = started;
            serve_stop_all(loop);
            break;
        }
    }
    if (rc == 0)
        rc = run != NULL ? run(loop) : pg_loop_run(loop);
    pg_loop_remove_signal_handler(loop, SIGINT);
    pg_loop_remove_signal_handler(loop, SIGTERM);
    serve_workers[0].rc = serve_shut_down(&serve_workers[0], rc);
    for (long i = 1; i < started; i++)
        pthread_join(serve_workers[i].thread, NULL);
    int failed = 0;
    for (long i = 0; i < nthreads; i++)
        failed |= serve_workers[i].rc != 0;
    return failed ? 1 : 0;
}

#endif
