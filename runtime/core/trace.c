/* PROTOGEN_TRACE: one line per protocol callback, "<conn> <callback> [<detail>]",
 * each written whole with a single write(2) so that a crash loses no line and
 * concurrent writers never interleave within a line.
 *
 * Tracing never blocks the loop: the trace is written without blocking, and a
 * line that cannot be written whole now (a pipe nobody drains, a full disk)
 * is dropped and counted. The next line that can be written is preceded by
 * "0 trace_dropped <n>": n lines are missing there (conn 0 is never a
 * protocol instance). */
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core_internal.h"

int pg__trace_fd = -1;

#define PG__TRACE_LINE_MAX 128

/* How a line is written without blocking and without SIGPIPE. */
typedef enum pg__trace_sink {
    PG__TRACE_SINK_WRITE,  /* a regular file, or an fd opened O_NONBLOCK */
    PG__TRACE_SINK_PIPE,   /* a pipe or FIFO: pg__write_nosigpipe */
    PG__TRACE_SINK_SOCKET, /* send(MSG_DONTWAIT | MSG_NOSIGNAL) */
} pg__trace_sink;

/* Written once, under pg__trace_once (pg_loop_new and every host's init
 * pass through it first), then only read, by the loops of every thread:
 * pthread_once orders the writes before those reads. pg__trace_reset, for
 * tests, must run with no other thread tracing. */
static bool pg__trace_owned; /* opened by us (not stderr) */
static pg__trace_sink pg__trace_how;
static bool pg__trace_poll_first; /* stderr that could not be made non-blocking */
static atomic_uint_least32_t pg__trace_conns;
static atomic_uint_least64_t pg__trace_dropped; /* since the last trace_dropped line */
static pthread_once_t pg__trace_once = PTHREAD_ONCE_INIT;

static void pg__trace_use(int fd, bool owned, bool poll_first)
{
    struct stat st;
    pg__trace_how = PG__TRACE_SINK_WRITE;
    if (fstat(fd, &st) == 0)
        pg__trace_how = S_ISSOCK(st.st_mode)   ? PG__TRACE_SINK_SOCKET
                        : S_ISFIFO(st.st_mode) ? PG__TRACE_SINK_PIPE
                                               : PG__TRACE_SINK_WRITE;
    pg__trace_fd = fd;
    pg__trace_owned = owned;
    pg__trace_poll_first = poll_first;
}

/* stderr, without blocking. Setting O_NONBLOCK on fd 2 would change it for
 * everyone who shares it (the shell, the program's own stdio), so a pipe,
 * FIFO or terminal is opened anew, non-blocking, through /proc. A file never
 * blocks; a socket is sent to with MSG_DONTWAIT. */
static void pg__trace_open_stderr(void)
{
    struct stat st;
    if (fstat(STDERR_FILENO, &st) < 0)
        return;
    if (S_ISREG(st.st_mode) || S_ISSOCK(st.st_mode)) {
        pg__trace_use(STDERR_FILENO, false, false);
        return;
    }
    int fd;
    PG__RETRY_EINTR(fd, open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_CLOEXEC));
    if (fd >= 0)
        pg__trace_use(fd, true, false);
    else
        pg__trace_use(STDERR_FILENO, false, true); /* no /proc: poll before each line */
}

static void pg__trace_open(void)
{
    const char *path = getenv("PROTOGEN_TRACE");
    if (path == NULL || path[0] == '\0')
        return;
    if (strcmp(path, "-") == 0) {
        pg__trace_open_stderr();
        return;
    }
    int fd;
    PG__RETRY_EINTR(fd, open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0644));
    if (fd < 0 && errno == ENXIO) {
        /* A FIFO nobody reads yet: hold its read end too, so that the lines
         * wait in the pipe for a reader that comes later (dropped once it is
         * full) instead of the program waiting for one. */
        PG__RETRY_EINTR(fd, open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK));
    }
    if (fd < 0)
        return; /* tracing is best effort: never fail the program for it */
    pg__trace_use(fd, true, false);
}

void pg__trace_init(void)
{
    pthread_once(&pg__trace_once, pg__trace_open);
}

void pg__trace_reset(void)
{
    pg__trace_init();
    if (pg__trace_owned)
        close(pg__trace_fd);
    pg__trace_fd = -1;
    pg__trace_owned = false;
    atomic_store(&pg__trace_conns, 0);
    atomic_store(&pg__trace_dropped, 0);
    pg__trace_open();
}

uint32_t pg__trace_new_conn(void)
{
    if (pg__trace_fd < 0)
        return 0;
    return (uint32_t)atomic_fetch_add(&pg__trace_conns, 1) + 1;
}

/* One write of the whole line, never blocking: true when all of it went. A
 * pipe takes a line this short whole or not at all (PIPE_BUF); a socket may
 * take part of one, which is then counted as dropped. */
static bool pg__trace_put(const char *line, size_t len)
{
    int fd = pg__trace_fd;
    ssize_t n;
    if (pg__trace_poll_first) {
        struct pollfd p = { .fd = fd, .events = POLLOUT };
        if (poll(&p, 1, 0) != 1 || !(p.revents & POLLOUT))
            return false;
    }
    switch (pg__trace_how) {
    case PG__TRACE_SINK_SOCKET:
        PG__RETRY_EINTR(n, send(fd, line, len, MSG_DONTWAIT | MSG_NOSIGNAL));
        break;
    case PG__TRACE_SINK_PIPE: {
        struct iovec iov = { .iov_base = (void *)line, .iov_len = len };
        n = pg__write_nosigpipe(fd, &iov, 1);
        break;
    }
    default:
        PG__RETRY_EINTR(n, write(fd, line, len));
        break;
    }
    return n == (ssize_t)len;
}

static void pg__trace_line(char *line, int len)
{
    if (len <= 0)
        return;
    if (len >= PG__TRACE_LINE_MAX) { /* truncated: still one whole line */
        len = PG__TRACE_LINE_MAX;
        line[len - 1] = '\n';
    }
    uint_least64_t dropped = atomic_load(&pg__trace_dropped);
    if (dropped > 0) {
        /* Say what is missing before the first line that makes it. */
        char note[64];
        int n = snprintf(note, sizeof note, "0 trace_dropped %" PRIuLEAST64 "\n", dropped);
        if (!pg__trace_put(note, (size_t)n)) {
            atomic_fetch_add(&pg__trace_dropped, 1);
            return;
        }
        atomic_fetch_sub(&pg__trace_dropped, dropped);
    }
    if (!pg__trace_put(line, (size_t)len))
        atomic_fetch_add(&pg__trace_dropped, 1);
}

void pg__trace_write(uint32_t conn, const char *callback)
{
    char line[PG__TRACE_LINE_MAX];
    pg__trace_line(line, snprintf(line, sizeof line, "%" PRIu32 " %s\n", conn, callback));
}

void pg__trace_write_size(uint32_t conn, const char *callback, size_t n)
{
    char line[PG__TRACE_LINE_MAX];
    pg__trace_line(line, snprintf(line, sizeof line, "%" PRIu32 " %s %zu\n", conn, callback, n));
}

void pg__trace_write_error(uint32_t conn, const char *callback, int error)
{
    char line[PG__TRACE_LINE_MAX];
    const char *name = error == 0 ? "ok" : strerrorname_np(-error);
    if (name != NULL)
        pg__trace_line(line, snprintf(line, sizeof line, "%" PRIu32 " %s %s\n", conn, callback, name));
    else
        pg__trace_line(line, snprintf(line, sizeof line, "%" PRIu32 " %s E%d\n", conn, callback, -error));
}

void pg__trace_write_text(uint32_t conn, const char *callback, const char *a, const char *b)
{
    char line[PG__TRACE_LINE_MAX];
    if (b != NULL)
        pg__trace_line(line, snprintf(line, sizeof line, "%" PRIu32 " %s %s %s\n", conn, callback, a, b));
    else
        pg__trace_line(line, snprintf(line, sizeof line, "%" PRIu32 " %s %s\n", conn, callback, a));
}

void pg__trace_write_protocol_error(uint32_t conn, int code, uint64_t pos)
{
    char line[PG__TRACE_LINE_MAX];
    const char *name = strerrorname_np(-code);
    if (name != NULL)
        pg__trace_line(line, snprintf(line, sizeof line, "%" PRIu32 " protocol_error %s %" PRIu64 "\n", conn, name, pos));
    else
        pg__trace_line(line, snprintf(line, sizeof line, "%" PRIu32 " protocol_error E%d %" PRIu64 "\n", conn, -code, pos));
}
