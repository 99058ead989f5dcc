/* Signal handlers (asyncio's add_signal_handler): the signals are blocked in
 * the calling thread and read from one signalfd per loop, so handlers run
 * from the loop like any other callback, never in a signal context. */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "internal.h"

struct pg__signals {
    pg_loop *loop;
    pg__io io;
    sigset_t mask;        /* the signals this loop handles */
    sigset_t was_blocked; /* those the thread had blocked already: left blocked */
    pg__callback handlers[NSIG];
};

static void pg__signals_read(pg__io *io, uint32_t events)
{
    pg__signals *s = PG__CONTAINER_OF(io, pg__signals, io);
    (void)events;
    for (;;) {
        struct signalfd_siginfo si;
        ssize_t n;
        PG__RETRY_EINTR(n, read(io->fd, &si, sizeof si));
        if (n != (ssize_t)sizeof si)
            return; /* EAGAIN: drained */
        int signo = (int)si.ssi_signo;
        /* A handler may remove another one: look it up each time. */
        if (signo > 0 && signo < NSIG && s->handlers[signo].fn != NULL)
            s->handlers[signo].fn(s->handlers[signo].arg);
    }
}

static int pg__signals_get(pg_loop *loop, pg__signals **out)
{
    if (loop->signals == NULL) {
        pg__signals *s = calloc(1, sizeof *s);
        if (s == NULL)
            return -ENOMEM;
        s->loop = loop;
        sigemptyset(&s->mask);
        sigemptyset(&s->was_blocked);
        int fd = signalfd(-1, &s->mask, SFD_NONBLOCK | SFD_CLOEXEC);
        if (fd < 0) {
            int r = -errno;
            free(s);
            return r;
        }
        pg__io_init(&s->io, fd, pg__signals_read);
        int r = pg__io_start(loop, &s->io, PG__IO_READ);
        if (r < 0) {
            close(fd);
            free(s);
            return r;
        }
        loop->signals = s;
    }
    *out = loop->signals;
    return 0;
}

static int pg__signal_mask(int how, int signo)
{
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, signo);
    return -pthread_sigmask(how, &one, NULL);
}

/* Stops handling signo: a delivery still pending in the signalfd is consumed
 * first (no handler wants it now), else unblocking would run the signal's
 * default action, which for most signals ends the process. A signal the
 * thread had blocked before stays blocked. */
static int pg__signal_release(pg__signals *s, int signo)
{
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, signo);
    const struct timespec now = { 0, 0 };
    while (sigtimedwait(&one, NULL, &now) == signo)
        ;
    if (sigismember(&s->was_blocked, signo) == 1)
        return 0;
    return pg__signal_mask(SIG_UNBLOCK, signo);
}

int pg_loop_add_signal_handler(pg_loop *loop, int signo, pg_callback_fn cb, void *arg)
{
    if (loop == NULL || cb == NULL || signo <= 0 || signo >= NSIG || signo == SIGKILL || signo == SIGSTOP)
        return -EINVAL;
    pg__signals *s = NULL;
    int r = pg__signals_get(loop, &s);
    if (r < 0)
        return r;

    if (sigismember(&s->mask, signo) != 1) {
        sigset_t mask = s->mask;
        if (sigaddset(&mask, signo) < 0)
            return -EINVAL; /* reserved by the C library */
        /* Blocked first, so that no delivery slips in between. */
        sigset_t one, before;
        sigemptyset(&one);
        sigaddset(&one, signo);
        r = -pthread_sigmask(SIG_BLOCK, &one, &before);
        if (r < 0)
            return r;
        if (sigismember(&before, signo) == 1)
            sigaddset(&s->was_blocked, signo);
        else
            sigdelset(&s->was_blocked, signo);
        if (signalfd(s->io.fd, &mask, 0) < 0) {
            r = -errno;
            pg__signal_release(s, signo);
            return r;
        }
        s->mask = mask;
    }
    /* One handler per signal: a new one replaces the old, as in asyncio. */
    s->handlers[signo].fn = cb;
    s->handlers[signo].arg = arg;
    return 0;
}

int pg_loop_remove_signal_handler(pg_loop *loop, int signo)
{
    if (loop == NULL || signo <= 0 || signo >= NSIG)
        return -EINVAL;
    pg__signals *s = loop->signals;
    if (s == NULL || sigismember(&s->mask, signo) != 1)
        return -ENOENT;
    sigdelset(&s->mask, signo);
    s->handlers[signo].fn = NULL;
    s->handlers[signo].arg = NULL;
    int r = signalfd(s->io.fd, &s->mask, 0) < 0 ? -errno : 0;
    int u = pg__signal_release(s, signo);
    return r < 0 ? r : u;
}

void pg__signals_free(pg_loop *loop)
{
    pg__signals *s = loop->signals;
    if (s == NULL)
        return;
    for (int signo = 1; signo < NSIG; signo++)
        if (sigismember(&s->mask, signo) == 1)
            pg__signal_release(s, signo);
    pg__io_stop(loop, &s->io, PG__IO_READ);
    close(s->io.fd);
    free(s);
    loop->signals = NULL;
}
