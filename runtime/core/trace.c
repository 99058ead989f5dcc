/* PROTOGEN_TRACE: one line per protocol callback, "<conn> <callback> [<detail>]",
 * each written whole with a single write(2) so that a crash loses no line and
 * concurrent writers never interleave within a line. */
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core_internal.h"

int pg__trace_fd = -1;

#define PG__TRACE_LINE_MAX 128

static bool pg__trace_owned; /* opened by us (not stderr) */
static atomic_uint_least32_t pg__trace_conns;
static pthread_once_t pg__trace_once = PTHREAD_ONCE_INIT;

static void pg__trace_open(void)
{
    const char *path = getenv("PROTOGEN_TRACE");
    if (path == NULL || path[0] == '\0')
        return;
    if (strcmp(path, "-") == 0) {
        pg__trace_fd = STDERR_FILENO;
        return;
    }
    int fd;
    PG__RETRY_EINTR(fd, open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644));
    if (fd < 0)
        return; /* tracing is best effort: never fail the program for it */
    pg__trace_fd = fd;
    pg__trace_owned = true;
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
    pg__trace_open();
}

uint32_t pg__trace_new_conn(void)
{
    if (pg__trace_fd < 0)
        return 0;
    return (uint32_t)atomic_fetch_add(&pg__trace_conns, 1) + 1;
}

static void pg__trace_line(char *line, int len)
{
    if (len <= 0)
        return;
    if (len >= PG__TRACE_LINE_MAX) { /* truncated: still one whole line */
        len = PG__TRACE_LINE_MAX;
        line[len - 1] = '\n';
    }
    ssize_t r;
    PG__RETRY_EINTR(r, write(pg__trace_fd, line, (size_t)len));
    (void)r;
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
