/* Nesting the whole loop in another one (libuv's uv_backend_fd trick): the
 * outer loop waits for the epoll fd (on io_uring: an eventfd the ring
 * signals) to be readable, at most
 * pg_loop_backend_timeout() ms, then calls pg_loop_run_once(loop, 0).
 *
 * The epoll fd is readable when one of its fds is, which covers I/O but not
 * timers, which the loop's own epoll_wait timeout serves. So the first
 * pg_loop_backend_fd() adds a timerfd to the set, armed from then on for the
 * earliest timer (absolute CLOCK_MONOTONIC, the loop's clock): a loop never
 * nested has no timerfd and pays nothing for it. */
#include <limits.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "internal.h"

/* It fired: empty it (the loop's iteration expires the timers). */
static void pg__timerfd_fired(pg__io *io, uint32_t events)
{
    (void)events;
    uint64_t n;
    ssize_t r;
    PG__RETRY_EINTR(r, read(io->fd, &n, sizeof n));
    (void)r; /* EAGAIN: re-armed since it fired */
}

void pg__loop_nest_sync(pg_loop *loop)
{
    uint64_t due;
    if (!pg_timer_queue_next(&loop->timers, &due))
        due = UINT64_MAX;
    /* Armed for the same time and not yet past: nothing to do. A time that
     * is past may have been read off already: arm again (it fires at once). */
    if (due == loop->timerfd_due && (due == UINT64_MAX || due > pg_loop_time_ms(loop)))
        return;
    struct itimerspec its = { { 0, 0 }, { 0, 0 } };
    if (due != UINT64_MAX) {
        its.it_value.tv_sec = (time_t)(due / 1000u);
        its.it_value.tv_nsec = (long)(due % 1000u) * 1000000L;
        if (due == 0)
            its.it_value.tv_nsec = 1; /* zero would disarm it */
    }
    /* Only fails on a bad fd or a time out of range (too far to matter). */
    if (timerfd_settime(loop->timerfd.fd, TFD_TIMER_ABSTIME, &its, NULL) == 0)
        loop->timerfd_due = due;
}

int pg_loop_backend_fd(pg_loop *loop)
{
    if (loop == NULL)
        return -EINVAL;
    if (loop->timerfd.fd < 0) {
        int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (fd < 0)
            return -errno;
        pg__io_init(&loop->timerfd, fd, pg__timerfd_fired);
        int r = pg__io_start(loop, &loop->timerfd, PG__IO_READ);
        if (r < 0) {
            close(fd);
            loop->timerfd.fd = -1;
            return r;
        }
        loop->timerfd_due = UINT64_MAX;
        pg__loop_nest_sync(loop);
    }
    int fd = pg__loop_backend_fd(loop);
    pg__loop_backend_flush(loop, false);
    return fd;
}

int pg_loop_backend_timeout(pg_loop *loop)
{
    if (loop == NULL)
        return -EINVAL;
    /* Asked right before the outer loop waits: what was queued for the
     * ring since the last iteration goes in now. */
    pg__loop_backend_flush(loop, false);
    if (loop->ready_len > 0)
        return 0;
    uint64_t due;
    if (!pg_timer_queue_next(&loop->timers, &due))
        return -1;
    uint64_t now = pg_loop_time_ms(loop);
    if (due <= now)
        return 0;
    return due - now > INT_MAX ? INT_MAX : (int)(due - now);
}

void pg__loop_nest_free(pg_loop *loop)
{
    if (loop->timerfd.fd < 0)
        return;
    pg__io_stop(loop, &loop->timerfd, PG__IO_READ);
    close(loop->timerfd.fd);
    loop->timerfd.fd = -1;
}
