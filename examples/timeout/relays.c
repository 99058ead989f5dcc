/* relays.c — which of pgtimeout's own stdin, stdout and stderr are relayed
 * to and from the child's pipes (pipes, sockets and terminals, through pipe
 * transports: asyncio's connect_read_pipe / connect_write_pipe), and starting
 * those relays. A regular file or /dev/null is handed to the child as it is. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pgtimeout.h"

static void relay_failed(int fd, int error)
{
    static const char *const names[] = { "stdin", "stdout", "stderr" };
    fprintf(stderr, "pgtimeout: cannot relay %s: %s\n", names[fd], strerror(-error));
}

/* A copy of our fd for a transport to own: ours stays open, so that its
 * flags can be restored at exit. */
static int relay_fd(int fd)
{
    int copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (copy < 0)
        relay_failed(fd, -errno);
    return copy;
}

void pgtimeout_start_relays(struct pgtimeout *app)
{
    if (app->relayed[0]) {
        int fd = relay_fd(0);
        int rc = fd < 0 ? -1 : relay_in_connect_pipe(app->loop, fd, app, &app->in);
        if (rc < 0 && fd >= 0) {
            relay_failed(0, rc);
            close(fd);
        }
        if (rc < 0)
            (void)monitored_write_eof(app->child);
    }
    for (int out = 1; out <= 2; out++) {
        if (!app->relayed[out])
            continue;
        app->ends[out] = (struct relay_end){ .app = app, .fd = out };
        int fd = relay_fd(out);
        int rc = fd < 0 ? -1 : relay_out_connect_pipe(app->loop, fd, &app->ends[out], &app->out[out]);
        if (rc < 0 && fd >= 0) {
            relay_failed(out, rc);
            close(fd);
        }
        pg_transport *pipe = monitored_get_pipe_transport(app->child, out);
        if (rc < 0 && pipe != NULL)
            pg_transport_close(pipe); /* nobody to relay to: the child's writes fail */
    }
}

/* Whether fd can be relayed: a pipe, socket or terminal that epoll accepts. */
bool pgtimeout_can_relay(int fd, bool for_reading)
{
    struct stat st;
    if (fstat(fd, &st) < 0 || !(S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode) || S_ISCHR(st.st_mode)))
        return false;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        return false;
    struct epoll_event ev = { .events = for_reading ? EPOLLIN : EPOLLOUT };
    bool ok = epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0; /* EPERM for /dev/null and the like */
    close(ep);
    return ok;
}
