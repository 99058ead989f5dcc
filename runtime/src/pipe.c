/* Pipe transports (asyncio's connect_read_pipe / connect_write_pipe): the
 * stream transport in one direction, and writes that never raise SIGPIPE.
 *
 * Sockets are written with MSG_NOSIGNAL; a pipe has no such flag, and a
 * write to a pipe whose reader is gone raises SIGPIPE, whose default action
 * kills the process. Python ignores SIGPIPE at start-up; a library must not
 * change the process's dispositions behind its user's back. So each pipe
 * write blocks SIGPIPE in the calling thread (pthread_sigmask), and if the
 * write failed with EPIPE, consumes the SIGPIPE it raised (sigtimedwait with
 * a zero timeout) before restoring the mask. A SIGPIPE that was already
 * pending before the write is someone else's and is left alone. SIGPIPE from
 * a write is thread-directed, so no other thread can take it meanwhile. The
 * cost, two or three extra system calls per pipe write, is paid by pipes only. */
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "protogen/pipe.h"

#include "internal.h"

ssize_t pg__write_nosigpipe(int fd, const struct iovec *iov, int iovcnt)
{
    sigset_t pipe_set, old, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    bool was_pending = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    ssize_t n;
    PG__RETRY_EINTR(n, writev(fd, iov, iovcnt));
    int saved = errno;
    if (n < 0 && saved == EPIPE && !was_pending) {
        static const struct timespec zero = { 0, 0 };
        int r;
        PG__RETRY_EINTR(r, sigtimedwait(&pipe_set, NULL, &zero));
        (void)r; /* EAGAIN: SIGPIPE was ignored, nothing to consume */
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = saved;
    return n;
}

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
