/* The event loop: two backends behind a few static functions (epoll here,
 * io_uring in loop_uring.c, chosen by pg_loop_new), the ready queue and the
 * iteration itself (asyncio's BaseEventLoop._run_once). */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define PG__READY_INITIAL_CAP 64

static uint64_t pg__clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- backends ----------------------------------------------------------- *
 * epoll's code is here, io_uring's in loop_uring.c: each function branches
 * on loop->uring (a predictable branch on the per-message path). */

#ifdef PROTOGEN_HAVE_URING
#define PG__ON_URING(loop) ((loop)->uring != NULL)
#else
#define PG__ON_URING(loop) false
#endif

static int pg__backend_init_epoll(pg_loop *loop)
{
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    return loop->epfd < 0 ? -errno : 0;
}

/* PROTOGEN_BACKEND: unset or empty, epoll (until the io_uring backend does
 * its I/O through the ring it costs more per message than epoll: see
 * docs/runtime.md); auto: io_uring where the kernel allows it, else epoll;
 * epoll or io_uring: that one or an error. */
static int pg__backend_init(pg_loop *loop)
{
    const char *want = getenv("PROTOGEN_BACKEND");
    if (want == NULL || want[0] == '\0' || strcmp(want, "epoll") == 0)
        return pg__backend_init_epoll(loop);
    bool any = strcmp(want, "auto") == 0;
    if (!any && strcmp(want, "io_uring") != 0)
        return -EINVAL;
#ifdef PROTOGEN_HAVE_URING
    int r = pg__uring_new(&loop->uring);
    if (r == 0 || !any)
        return r; /* forced and refused: the kernel's error */
#else
    if (!any)
        return -ENOSYS; /* built without liburing */
#endif
    return pg__backend_init_epoll(loop);
}

static void pg__backend_free(pg_loop *loop)
{
#ifdef PROTOGEN_HAVE_URING
    pg__uring_free(loop->uring);
    loop->uring = NULL;
#endif
    if (loop->epfd >= 0)
        close(loop->epfd);
    loop->epfd = -1;
}

const char *pg_loop_backend(const pg_loop *loop)
{
    if (loop == NULL)
        return NULL;
    return PG__ON_URING(loop) ? "io_uring" : "epoll";
}

int pg__loop_backend_fd(pg_loop *loop)
{
#ifdef PROTOGEN_HAVE_URING
    if (PG__ON_URING(loop))
        return pg__uring_nest_fd(loop->uring);
#endif
    return loop->epfd;
}

void pg__loop_backend_flush(pg_loop *loop, bool settle)
{
#ifdef PROTOGEN_HAVE_URING
    if (PG__ON_URING(loop))
        pg__uring_flush(loop->uring, settle);
#else
    (void)loop;
    (void)settle;
#endif
}

static int pg__backend_set(pg_loop *loop, pg__io *io, uint32_t old_events, uint32_t new_events)
{
#ifdef PROTOGEN_HAVE_URING
    if (PG__ON_URING(loop))
        return pg__uring_set(loop->uring, io, old_events, new_events);
#endif
    struct epoll_event ev;
    int op;
    memset(&ev, 0, sizeof ev);
    ev.events = new_events;
    ev.data.ptr = io;
    if (new_events == 0)
        op = EPOLL_CTL_DEL;
    else if (old_events == 0)
        op = EPOLL_CTL_ADD;
    else
        op = EPOLL_CTL_MOD;
    return epoll_ctl(loop->epfd, op, io->fd, &ev) < 0 ? -errno : 0;
}

/* An epoll_wait that failed: -errno, or, cut short by a signal (EINTR),
 * waits again, unless a stop ends pg_loop_run, for what is left of a finite
 * timeout, counted from loop->now_ms (read just before such a wait:
 * pg__loop_iterate). A stop, whenever it came, has made the wake-up eventfd
 * readable: the wait returns at once (pg_loop_stop). */
static int pg__epoll_wait_failed(pg_loop *loop, int timeout_ms, bool stop_wakes)
{
    for (;;) {
        if (errno != EINTR)
            return -errno;
        if (stop_wakes && loop->stopping)
            return 0;
        if (timeout_ms > 0) {
            uint64_t spent = pg__clock_ms() - loop->now_ms;
            timeout_ms = spent >= (uint64_t)timeout_ms ? 0 : timeout_ms - (int)spent;
        }
        int n = epoll_wait(loop->epfd, loop->events, PG__MAX_EVENTS, timeout_ms);
        if (n >= 0)
            return n;
    }
}

/* Waits for events; the common infinite wait reads no clock. */
/* uring is PG__ON_URING(loop), a constant where pg_loop_run inlines it. */
PG__HOT_INLINE static inline int pg__backend_wait(pg_loop *loop, int timeout_ms, bool stop_wakes, bool uring)
{
    (void)uring; /* without liburing: always false */
#ifdef PROTOGEN_HAVE_URING
    if (uring)
        return pg__uring_wait(loop->uring, timeout_ms, stop_wakes ? &loop->stopping : NULL);
#endif
    int n = epoll_wait(loop->epfd, loop->events, PG__MAX_EVENTS, timeout_ms);
    if (PG__UNLIKELY(n < 0))
        return pg__epoll_wait_failed(loop, timeout_ms, stop_wakes);
    return n;
}

/* A watcher that left the epoll set during a batch: its events there are
 * turned over to this one, which wants none (pg__backend_forget). */
static pg__io pg__io_gone = { .fd = -1, .events = 0, .cb = NULL };

/* Errors and hang-ups wake whoever listens; the next syscall tells. */
static void pg__epoll_error_ready(pg__io *io)
{
    if (io->events != 0)
        io->cb(io, io->events); /* on epoll: PG__IO_READ, PG__IO_WRITE or both */
}

PG__HOT_INLINE static inline void pg__backend_dispatch(pg_loop *loop, bool uring)
{
    (void)uring;
#ifdef PROTOGEN_HAVE_URING
    if (uring) {
        pg__uring_dispatch(loop->uring);
        return;
    }
#endif
    /* nevents does not change during the batch (no iteration nests): read
     * again each turn rather than kept across the callbacks. */
    for (int i = 0; i < loop->nevents; i++) {
        pg__io *io = loop->events[i].data.ptr;
        uint32_t ev = loop->events[i].events;
        if (PG__UNLIKELY(ev & (EPOLLERR | EPOLLHUP))) {
            pg__epoll_error_ready(io);
            continue;
        }
        /* An earlier callback of this batch may have removed the interest
         * (on epoll, events holds PG__IO_READ and PG__IO_WRITE only). */
        ev &= io->events;
        if (ev != 0)
            io->cb(io, ev);
    }
    loop->nevents = 0;
}

/* A watcher leaving the epoll set may be freed before the batch that still
 * holds its events is dispatched: forget those events (they go to
 * pg__io_gone, which dispatch then skips without a test of its own). */
static void pg__backend_forget(pg_loop *loop, const pg__io *io)
{
    /* io_uring: its completions carry a generation that tells (loop_uring.c). */
    for (int i = 0; i < loop->nevents; i++)
        if (loop->events[i].data.ptr == io)
            loop->events[i].data.ptr = &pg__io_gone;
}

/* ---- fd watchers -------------------------------------------------------- */

void pg__io_init(pg__io *io, int fd, pg__io_cb cb)
{
    io->fd = fd;
    io->events = 0;
    io->cb = cb;
}

int pg__io_start(pg_loop *loop, pg__io *io, uint32_t events)
{
    uint32_t want = io->events | events;
    if (want == io->events)
        return 0;
    int r = pg__backend_set(loop, io, io->events, want);
    if (r < 0)
        return r;
    if (io->events == 0)
        loop->nwatched++;
    io->events = want;
    return 0;
}

int pg__io_stop(pg_loop *loop, pg__io *io, uint32_t events)
{
    uint32_t want = io->events & ~events;
    if (want == io->events)
        return 0;
    int r = pg__backend_set(loop, io, io->events, want);
    if (r < 0 && want != 0) {
        /* A failed MOD would leave the removed interest in the set: level-
         * triggered and masked out by dispatch, it would wake every wait at
         * once, for ever. Take the fd out altogether (DEL needs no memory)
         * and tell the owner, for whom it is an error of its transport. */
        want = 0;
        (void)pg__backend_set(loop, io, io->events, 0);
    }
    /* DEL only fails on a bad fd or a missing entry: a bug. */
    assert(r == 0 || want == 0);
    io->events = want;
    if (want == 0) {
        loop->nwatched--;
        pg__backend_forget(loop, io);
    }
    return r;
}

void pg__io_close(pg_loop *loop, pg__io *io)
{
    (void)pg__io_stop(loop, io, io->events);
#ifdef PROTOGEN_HAVE_URING
    if (PG__ON_URING(loop))
        pg__uring_close(loop->uring, io);
#endif
}

bool pg__loop_can_recv(pg_loop *loop)
{
#ifdef PROTOGEN_HAVE_URING
    return PG__ON_URING(loop) && pg__uring_can_recv(loop->uring);
#else
    (void)loop;
    return false;
#endif
}

ssize_t pg__loop_recv_result(const pg_loop *loop, const uint8_t **data)
{
#ifdef PROTOGEN_HAVE_URING
    return pg__uring_recv_result(loop->uring, data);
#else
    (void)loop;
    *data = NULL;
    return -ENOSYS;
#endif
}

bool pg__loop_can_send(const pg_loop *loop)
{
    return PG__ON_URING(loop);
}

bool pg__loop_sends_now(const pg_loop *loop, const pg__io *io)
{
#ifdef PROTOGEN_HAVE_URING
    return pg__uring_sends_now(loop->uring, io);
#else
    (void)loop, (void)io;
    return true;
#endif
}

ssize_t pg__loop_send(pg_loop *loop, pg__io *io, const struct iovec *iov, int iovcnt, size_t skip)
{
#ifdef PROTOGEN_HAVE_URING
    ssize_t n = pg__uring_send(loop->uring, io, iov, iovcnt, skip);
    if (n > 0 && !loop->running)
        pg__uring_flush(loop->uring, false); /* a write from outside the loop goes now */
    return n;
#else
    (void)loop, (void)io, (void)iov, (void)iovcnt, (void)skip;
    return -ENOSYS;
#endif
}

int pg__loop_send_result(const pg_loop *loop, size_t *len)
{
#ifdef PROTOGEN_HAVE_URING
    return pg__uring_send_result(loop->uring, len);
#else
    (void)loop;
    *len = 0;
    return -ENOSYS;
#endif
}

/* ---- the ready queue ---------------------------------------------------- */

static int pg__ready_grow(pg_loop *loop)
{
    size_t cap = loop->ready_cap ? loop->ready_cap * 2 : PG__READY_INITIAL_CAP;
    if (cap > SIZE_MAX / sizeof(pg__callback))
        return -ENOMEM;
    pg__callback *items = malloc(cap * sizeof *items);
    if (items == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < loop->ready_len; i++)
        items[i] = loop->ready[(loop->ready_head + i) & (loop->ready_cap - 1)];
    free(loop->ready);
    loop->ready = items;
    loop->ready_head = 0;
    loop->ready_cap = cap;
    return 0;
}

int pg__loop_reserve(pg_loop *loop)
{
    if (loop->ready_len + loop->ready_reserved + 1 > loop->ready_cap) {
        int r = pg__ready_grow(loop);
        if (r < 0)
            return r;
    }
    loop->ready_reserved++;
    return 0;
}

void pg__loop_unreserve(pg_loop *loop)
{
    assert(loop->ready_reserved > 0);
    loop->ready_reserved--;
}

void pg__loop_call_soon_reserved(pg_loop *loop, pg_callback_fn cb, void *arg)
{
    assert(loop->ready_reserved > 0);
    assert(loop->ready_len < loop->ready_cap);
    loop->ready_reserved--;
    pg__callback *c = &loop->ready[(loop->ready_head + loop->ready_len) & (loop->ready_cap - 1)];
    c->fn = cb;
    c->arg = arg;
    loop->ready_len++;
}

static void pg__nop(void *arg)
{
    (void)arg;
}

size_t pg__loop_cancel_queued(pg_loop *loop, pg_callback_fn cb, void *arg)
{
    size_t n = 0;
    for (size_t i = 0; i < loop->ready_len; i++) {
        pg__callback *c = &loop->ready[(loop->ready_head + i) & (loop->ready_cap - 1)];
        if (c->fn == cb && c->arg == arg) {
            c->fn = pg__nop;
            n++;
        }
    }
    return n;
}

int pg_loop_call_soon_cancel(pg_loop *loop, pg_callback_fn cb, void *arg)
{
    if (loop == NULL || cb == NULL)
        return -EINVAL;
    return pg__loop_cancel_queued(loop, cb, arg) > 0 ? 0 : -ENOENT;
}

int pg_loop_call_soon(pg_loop *loop, pg_callback_fn cb, void *arg)
{
    if (loop == NULL || cb == NULL)
        return -EINVAL;
    int r = pg__loop_reserve(loop);
    if (r < 0)
        return r;
    pg__loop_call_soon_reserved(loop, cb, arg);
    return 0;
}

/* Runs the first n queued callbacks; those they queue wait their turn. */
static void pg__ready_run(pg_loop *loop, size_t n)
{
    assert(n <= loop->ready_len);
    while (n-- > 0) {
        pg__callback c = loop->ready[loop->ready_head];
        loop->ready_head = (loop->ready_head + 1) & (loop->ready_cap - 1);
        loop->ready_len--;
        c.fn(c.arg);
    }
}

uint8_t *pg__loop_read_buffer_alloc(pg_loop *loop)
{
    loop->read_buf = malloc(PG__READ_BUFFER_SIZE);
    return loop->read_buf;
}

uint8_t *pg__loop_datagram_buffer(pg_loop *loop)
{
    if (loop->dgram_buf == NULL)
        loop->dgram_buf = malloc((size_t)PG__DGRAM_BATCH * PG__DGRAM_SLOT);
    return loop->dgram_buf;
}

/* ---- the loop ----------------------------------------------------------- */

/* Empties the wake-up eventfd: the stop it carried is in loop->stopping. */
static void pg__loop_read_wake(pg_loop *loop)
{
    uint64_t n;
    ssize_t r;
    PG__RETRY_EINTR(r, read(loop->wake.fd, &n, sizeof n));
    (void)r; /* EAGAIN: nothing was written */
}

/* For a stop's sake: what other threads queued keeps it readable. */
static void pg__loop_drain_wake(pg_loop *loop)
{
    pg__loop_read_wake(loop);
    if (PG__ON_URING(loop)) {
        /* Its poll may have completed already, and would wake the next
         * wait for nothing: a new one reports the fd as it is now. */
        (void)pg__io_stop(loop, &loop->wake, PG__IO_READ);
        (void)pg__io_start(loop, &loop->wake, PG__IO_READ); /* the SQ has room: a cancel just went in */
    }
    pg__threadsafe_rewake(loop);
}

static void pg__loop_woken(pg__io *io, uint32_t events)
{
    (void)events;
    pg_loop *loop = PG__CONTAINER_OF(io, pg_loop, wake);
    pg__loop_read_wake(loop);
    pg__threadsafe_run(loop); /* pg_loop_call_soon_threadsafe's callbacks */
}

int pg_loop_new(pg_loop **out)
{
    if (out == NULL)
        return -EINVAL;
    pg__trace_init();
    pg_loop *loop = calloc(1, sizeof *loop);
    if (loop == NULL)
        return -ENOMEM;
    loop->epfd = -1;
    pg__io_init(&loop->wake, -1, pg__loop_woken);
    pg_timer_queue_init(&loop->timers);
    loop->timerfd.fd = -1;
    int r = pg__backend_init(loop);
    if (r < 0)
        goto fail;
    r = pg__ready_grow(loop);
    if (r < 0)
        goto fail;
    loop->wake.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (loop->wake.fd < 0) {
        r = -errno;
        goto fail;
    }
    r = pg__io_start(loop, &loop->wake, PG__IO_READ);
    if (r < 0)
        goto fail;
    loop->now_ms = pg__clock_ms();
    pg__loop_host_init(loop);
    pg__threadsafe_init(loop); /* last: other threads may queue from now on */
    *out = loop;
    return 0;

fail:
    if (loop->wake.fd >= 0)
        close(loop->wake.fd);
    pg__backend_free(loop);
    free(loop->ready);
    free(loop);
    return r;
}

uint64_t pg_loop_time_ms(const pg_loop *loop)
{
    (void)loop;
    return pg__clock_ms();
}

/* Async-signal-safe: a flag and a write(2) to the eventfd, which wakes an
 * epoll_wait that a plain sigaction handler's EINTR would only restart, one
 * on another thread, and one still to come (a stop just before the wait).
 * Always written: a stop is rare, and the iteration then needs no flag of
 * its own to close that window (pg_loop_run drains it at its end). */
void pg_loop_stop(pg_loop *loop)
{
    int saved = errno;
    loop->stopping = 1;
    uint64_t one = 1;
    ssize_t r = write(loop->wake.fd, &one, sizeof one);
    (void)r; /* EAGAIN: a wake-up is pending already */
    errno = saved;
}

/* One iteration, in asyncio's order (BaseEventLoop._run_once): wait for I/O
 * (not at all when callbacks are ready), then run the callbacks queued before
 * the iteration, then the I/O handlers, then the timers that were due when the
 * wait ended. Whatever these queue runs in the next iteration. */
/* Inlined into pg_loop_run, whose loop then keeps its state in registers
 * across iterations instead of paying calls per message (bench/ counts). */
PG__HOT_INLINE static inline int pg__loop_iterate(pg_loop *loop, int timeout_ms, bool stop_wakes, bool uring)
{
    size_t queued = loop->ready_len;
    bool timed = loop->timers.len_ > 0;
    if (queued > 0) {
        timeout_ms = 0;
    } else if (timed) {
        /* Only timers need the clock: a loop without them never reads it. */
        uint64_t due;
        (void)pg__timer_queue_next(&loop->timers, &due);
        loop->now_ms = pg__clock_ms();
        uint64_t wait = due > loop->now_ms ? due - loop->now_ms : 0;
        if (wait > INT_MAX)
            wait = INT_MAX;
        if (timeout_ms < 0 || wait < (uint64_t)timeout_ms)
            timeout_ms = (int)wait;
    } else if (timeout_ms > 0) {
        loop->now_ms = pg__clock_ms(); /* where an EINTR'd wait counts from */
    }

    int n = pg__backend_wait(loop, timeout_ms < 0 ? -1 : timeout_ms, stop_wakes, uring);
    if (n < 0)
        return n;
    loop->nevents = n;
    /* The common iteration (one socket ready, nothing queued, no timer)
     * skips the empty queue runs and keeps no count of timers across the
     * I/O handlers: counted in bench/ per message. */
    if (!timed) {
        if (queued > 0)
            pg__ready_run(loop, queued);
        pg__backend_dispatch(loop, uring);
        return 0;
    }
    /* Due timers join the queue now, behind the earlier callbacks; they run
     * after the I/O handlers, which run directly. (No callback ran since
     * timed was read: the wait runs none.) */
    loop->now_ms = pg__clock_ms();
    size_t timers = pg_timer_queue_expire(&loop->timers, loop->now_ms);
    if (loop->timerfd.fd >= 0)
        pg__loop_nest_sync(loop); /* for the next timer now */
    if (queued > 0)
        pg__ready_run(loop, queued);
    pg__backend_dispatch(loop, uring);
    if (timers > 0)
        pg__ready_run(loop, timers);
    return 0;
}

/* Callbacks run only in here (and in pg_loop_close): a run or close from
 * one of them would free or reenter what the iteration still uses. asyncio
 * raises RuntimeError ("already running"); here -EBUSY. */
static int pg__loop_run_once(pg_loop *loop, int timeout_ms, bool stop_wakes)
{
    if (loop == NULL)
        return -EINVAL;
    if (loop->running)
        return -EBUSY;
    loop->running = true;
    int r = pg__loop_iterate(loop, timeout_ms, stop_wakes, PG__ON_URING(loop));
    loop->running = false;
    return r;
}

int pg_loop_run_once(pg_loop *loop, int timeout_ms)
{
    /* A stop is for pg_loop_run: it stays pending (stopping), but its
     * wake-up must not cut this wait short, nor every later one. */
    if (loop != NULL && loop->stopping && !loop->running)
        pg__loop_drain_wake(loop);
    int r = pg__loop_run_once(loop, timeout_ms, false); /* a stop does not end its wait */
    /* An outer loop waits on the ring's fd next: what this iteration queued
     * (re-armed polls) must be in the kernel by then, and what it closed
     * closed (loop_uring.c). */
    if (r == 0)
        pg__loop_backend_flush(loop, true);
    return r;
}

int pg_loop_run(pg_loop *loop)
{
    int r;
    if (loop == NULL)
        return -EINVAL;
    if (loop->running)
        return -EBUSY;
    /* Callbacks see the loop running for the whole run, as between the
     * iterations nothing else runs. */
    loop->running = true;
    /* A stop made before (its wake-up maybe drained by run_once): one
     * iteration, without waiting. Later stops wake the wait themselves. */
    int timeout_ms = loop->stopping ? 0 : -1;
    /* One copy of the iteration per backend: no test of it per message. */
    if (PG__ON_URING(loop)) {
        do
            r = pg__loop_iterate(loop, timeout_ms, true, true);
        while (r == 0 && !loop->stopping);
    } else {
        do
            r = pg__loop_iterate(loop, timeout_ms, true, false);
        while (r == 0 && !loop->stopping);
    }
    loop->running = false;
    loop->stopping = 0;
    pg__loop_drain_wake(loop); /* a stop from the last iteration: used up */
    if (r == 0)
        pg__loop_backend_flush(loop, true); /* what it closed, closed (loop_uring.c) */
    return r;
}

/* Something is attached that would outlive the loop: every transport,
 * server, connect and child holds a ready-queue reservation until its last
 * callback is queued (waiting timers hold one each, and do not count: they are
 * left inactive, as asyncio clears them), and a lookup still running keeps
 * its eventfd watched. The signalfd, the wake-up eventfd and the timerfd are
 * the loop's own. reserved and watched are held by what pg_loop_close may end
 * itself (pending connects), and do not count either. */
static bool pg__loop_busy(const pg_loop *loop, size_t reserved, size_t watched)
{
    size_t own = 1 + (loop->signals != NULL ? 1 : 0) + (loop->timerfd.fd >= 0 ? 1 : 0) + watched;
    return loop->ready_reserved > loop->timers.len_ + reserved || loop->nwatched > own;
}

static void pg__loop_drain(pg_loop *loop)
{
    loop->running = true;
    do {
        while (loop->ready_len > 0)
            pg__ready_run(loop, loop->ready_len);
    } while (pg__threadsafe_run(loop) > 0);
    loop->running = false;
}

int pg_loop_close(pg_loop *loop)
{
    if (loop == NULL)
        return 0;
    if (loop->running)
        return -EBUSY;
    size_t reserved, watched;
    pg__connects_held(loop, &reserved, &watched);
    if (pg__loop_busy(loop, reserved, watched))
        return -EBUSY;
    /* Pending connects are cancelled (asyncio.run cancels the tasks left);
     * their done, and the last callbacks (connection_lost of transports
     * closed just now) sit in the queue: run them, and what they queue.
     * Other threads can queue no more from here on (-EBADF). */
    pg__threadsafe_close(loop);
    pg__connects_cancel_all(loop);
    pg__loop_drain(loop);
    if (pg__loop_busy(loop, 0, 0)) {
        pg__threadsafe_reopen(loop);
        return -EBUSY; /* one of them opened something */
    }
    pg__servers_free(loop);
    pg__signals_free(loop);
    pg_timer_queue_free(&loop->timers);
    pg__loop_nest_free(loop);
    pg__io_stop(loop, &loop->wake, PG__IO_READ);
    close(loop->wake.fd);
    pg__backend_free(loop);
    free(loop->ready);
    pg__host_cleanup(&loop->host);
    free(loop->read_buf);
    free(loop->dgram_buf);
    pg__threadsafe_free(loop);
    free(loop);
    return 0;
}
