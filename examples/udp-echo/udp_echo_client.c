/* udp_echo_client: sends numbered datagrams to a UDP echo server and checks
 * every echo, counting the ones that never come back.
 *
 *   udp_echo_client [--host HOST] --port PORT [--count N] [--size BYTES]
 *                   [--window N] [--loss-timeout-ms MS]
 *
 * At most --window datagrams are out at once (default: 32, fewer for large
 * datagrams so that no more than 64 KiB is out: the kernel's receive buffers
 * then never overflow on a quiet loopback); one unanswered for
 * --loss-timeout-ms (default 1000) counts as lost. Prints
 *   echoed N datagrams of S bytes in T s: L lost, C corrupt, D stray
 * and exits 0 when every datagram came back intact, 1 otherwise. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "options.h"
#include "udp_echo_client.h"
#include "udp_echo_client_app.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    long port = -1, count = 1000, size = 64, window = 0, loss_timeout_ms = 1000;
    for (int i = 1; i < argc; i++) {
        if (option_string(argc, argv, &i, "--host", &host) || option_long(argc, argv, &i, "--port", 1, 65535, &port)
            || option_long(argc, argv, &i, "--count", 0, 1L << 40, &count)
            || option_long(argc, argv, &i, "--size", 8, 65507, &size)
            || option_long(argc, argv, &i, "--window", 1, 1 << 20, &window)
            || option_long(argc, argv, &i, "--loss-timeout-ms", 1, 3600000, &loss_timeout_ms))
            continue;
        port = -1;
        break;
    }
    if (port < 0) {
        fprintf(stderr,
                "usage: %s [--host HOST] --port PORT [--count N] [--size BYTES] [--window N] "
                "[--loss-timeout-ms MS]\n",
                argv[0]);
        return 2;
    }

    if (window == 0)
        window = size * 32 <= 64 * 1024 ? 32 : (64 * 1024 / size > 0 ? 64 * 1024 / size : 1);
    struct udp_echo_client_app app = {
        .count = (uint64_t)count,
        .size = (size_t)size,
        .window = (uint64_t)window,
        .loss_timeout_ms = (uint64_t)loss_timeout_ms,
    };
    pg_timer_init(&app.loss_timer);
    app.slots = calloc((size_t)window, sizeof *app.slots);
    int rc = app.slots == NULL ? -ENOMEM : pg_loop_new(&app.loop);
    double start = now_s();
    if (rc == 0)
        rc = udp_echo_client_connect(app.loop, host, (uint16_t)port, NULL, &app, NULL);
    if (rc == 0)
        rc = pg_loop_run(app.loop);
    double elapsed = now_s() - start;
    if (app.loop != NULL)
        pg_loop_close(app.loop);
    free(app.slots);
    if (rc < 0 || app.error < 0) {
        fprintf(stderr, "udp_echo_client: %s:%ld: %s\n", host, port, strerror(rc < 0 ? -rc : -app.error));
        return 1;
    }
    printf("echoed %llu datagrams of %zu bytes in %.3f s: %llu lost, %llu corrupt, %llu stray\n",
           (unsigned long long)app.echoed, app.size, elapsed, (unsigned long long)app.lost,
           (unsigned long long)app.corrupt, (unsigned long long)app.stray);
    return app.echoed == app.count && app.lost == 0 && app.corrupt == 0 ? 0 : 1;
}
