/* Pipe transports (asyncio's connect_read_pipe / connect_write_pipe): the
 * stream transport in one direction; writes go through pg__write_nosigpipe
 * (core/nosigpipe.c), which never raises SIGPIPE. */
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "protogen/pipe.h"

#include "internal.h"


/* asyncio accepts pipes, sockets and character devices, nothing else. */
static int pg__pipe_check(int fd, struct stat *st)
{
    if (fstat(fd, st) < 0)
        return -errno;
    if (!S_ISFIFO(st->st_mode) && !S_ISSOCK(st->st_mode) && !S_ISCHR(st->st_mode))
        return -EINVAL;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

int pg_pipe_connect_read(pg_loop *loop, int fd, pg_protocol_factory factory, void *arg, pg_transport **out)
{
    if (loop == NULL || fd < 0 || factory == NULL)
        return -EINVAL;
    struct stat st;
    int r = pg__pipe_check(fd, &st);
    if (r < 0)
        return r;
    unsigned flags = PG__STREAM_READ_PIPE | (S_ISSOCK(st.st_mode) ? PG__STREAM_SOCKET : 0);
    return pg__fdstream_open(loop, fd, flags, factory, arg, out);
}

int pg_pipe_connect_write(pg_loop *loop, int fd, pg_protocol_factory factory, void *arg, pg_transport **out)
{
    if (loop == NULL || fd < 0 || factory == NULL)
        return -EINVAL;
    struct stat st;
    int r = pg__pipe_check(fd, &st);
    if (r < 0)
        return r;
    unsigned flags = PG__STREAM_WRITE_PIPE | PG__STREAM_CAN_WRITE_EOF;
    if (S_ISSOCK(st.st_mode))
        flags |= PG__STREAM_SOCKET;
    /* asyncio: pipes and sockets tell when their reader goes away (they
     * become readable, or fail); character devices do not. */
    if (S_ISSOCK(st.st_mode) || S_ISFIFO(st.st_mode))
        flags |= PG__STREAM_WATCH_READER;
    return pg__fdstream_open(loop, fd, flags, factory, arg, out);
}
