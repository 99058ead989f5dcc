/* Writes that never raise SIGPIPE, for pipes and the trace file.
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
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include "core_internal.h"

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
