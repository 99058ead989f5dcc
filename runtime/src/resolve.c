/* Host names resolved without blocking the loop: getaddrinfo runs on a
 * short-lived helper thread, which hands its result back through an eventfd
 * the loop watches. The thread touches nothing of the loop's: it fills its own
 * job and writes the eventfd. The job has two owners, the loop and the
 * thread, and whichever lets go last frees it: so a lookup can be abandoned
 * (the connect timed out, was cancelled, or its loop closed) while getaddrinfo
 * still blocks, and the thread then ends on its own, touching nothing but its
 * job. (glibc's getaddrinfo_a would also do: it runs the same getaddrinfo on
 * threads of its own, but reports through a signal or a thread of its own
 * too, so an eventfd is needed either way.) */
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "internal.h"

#define PG__RESOLVE_MAX_ADDRS 16

/* Helper threads that have not ended yet, abandoned ones included. */
static atomic_size_t pg__resolve_threads;

size_t pg__resolve_in_flight(void)
{
    return atomic_load(&pg__resolve_threads);
}

struct pg__resolve {
    pg_loop *loop;
    pg__connect *connect;
    pg__io io; /* the eventfd */
    char *host;
    char port[8];
    /* Written by the thread, read by the loop after the eventfd fires. */
    pg__sockaddr addrs[PG__RESOLVE_MAX_ADDRS];
    size_t naddrs;
    int error;
    atomic_int owners; /* the loop and the thread: 2, then 1, then freed */
};

/* The loop or the thread lets go of the job; the last one frees it. The
 * loop has stopped watching the eventfd before it lets go. */
static void pg__resolve_release(pg__resolve *job)
{
    if (atomic_fetch_sub(&job->owners, 1) != 1)
        return;
    close(job->io.fd);
    free(job->host);
    free(job);
}

static int pg__gai_error(int rc)
{
    switch (rc) {
    case EAI_NONAME:
#ifdef EAI_NODATA
    case EAI_NODATA:
#endif
#ifdef EAI_ADDRFAMILY
    case EAI_ADDRFAMILY:
#endif
        return -ENOENT;
    case EAI_AGAIN:
        return -EAGAIN;
    case EAI_MEMORY:
        return -ENOMEM;
    case EAI_SYSTEM:
        return errno > 0 ? -errno : -EIO;
    default:
        return -EINVAL;
    }
}

static void *pg__resolve_thread(void *arg)
{
    pg__resolve *job = arg;
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    hints.ai_flags = AI_NUMERICSERV;
    int rc = getaddrinfo(job->host, job->port, &hints, &res);
    if (rc != 0) {
        job->error = pg__gai_error(rc);
    } else {
        for (struct addrinfo *ai = res; ai != NULL && job->naddrs < PG__RESOLVE_MAX_ADDRS; ai = ai->ai_next) {
            if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) || ai->ai_addrlen > sizeof(struct sockaddr_storage))
                continue;
            pg__sockaddr *a = &job->addrs[job->naddrs++];
            memcpy(&a->ss, ai->ai_addr, ai->ai_addrlen);
            a->len = ai->ai_addrlen;
        }
        freeaddrinfo(res);
        if (job->naddrs == 0)
            job->error = -ENOENT;
    }
    /* Told whether or not the loop still listens: an abandoned job's
     * eventfd is still open (the job holds it), merely unwatched. */
    uint64_t one = 1;
    ssize_t n;
    PG__RETRY_EINTR(n, write(job->io.fd, &one, sizeof one));
    assert(n == (ssize_t)sizeof one); /* an eventfd takes this write */
    (void)n;
    pg__resolve_release(job);
    atomic_fetch_sub(&pg__resolve_threads, 1);
    return NULL;
}

static void pg__resolve_on_io(pg__io *io, uint32_t events)
{
    pg__resolve *job = PG__CONTAINER_OF(io, pg__resolve, io);
    (void)events;
    uint64_t value;
    ssize_t n;
    PG__RETRY_EINTR(n, read(io->fd, &value, sizeof value));
    if (n < 0)
        return; /* spurious: the thread has not finished */
    pg__io_stop(job->loop, &job->io, PG__IO_READ);
    if (job->error < 0)
        pg__connect_fail(job->connect, job->error);
    else
        pg__connect_start(job->connect, job->addrs, job->naddrs); /* copies them */
    pg__resolve_release(job);
}

void pg__resolve_abandon(pg__resolve *job)
{
    pg__io_stop(job->loop, &job->io, PG__IO_READ);
    pg__resolve_release(job);
}

int pg__resolve_and_connect(pg__connect *c, pg_loop *loop, const char *host, uint16_t port)
{
    pg__resolve *job = calloc(1, sizeof *job);
    if (job == NULL)
        return -ENOMEM;
    job->loop = loop;
    job->connect = c;
    atomic_init(&job->owners, 2);
    snprintf(job->port, sizeof job->port, "%u", (unsigned)port);
    job->host = strdup(host);
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    int r = job->host == NULL ? -ENOMEM : efd < 0 ? -errno : 0;
    if (r < 0)
        goto fail;
    pg__io_init(&job->io, efd, pg__resolve_on_io);
    r = pg__io_start(loop, &job->io, PG__IO_READ);
    if (r < 0)
        goto fail;

    /* The helper thread blocks every signal: process signals stay with the
     * threads that expect them (signalfd handlers rely on that). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_attr_t attr;
    pthread_t thread;
    r = -pthread_attr_init(&attr);
    if (r < 0)
        goto fail_io;
    (void)pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    atomic_fetch_add(&pg__resolve_threads, 1);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    r = -pthread_create(&thread, &attr, pg__resolve_thread, job);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (r < 0) {
        atomic_fetch_sub(&pg__resolve_threads, 1);
        goto fail_io;
    }
    pg__connect_set_resolve(c, job);
    return 0;

fail_io:
    pg__io_stop(loop, &job->io, PG__IO_READ);
fail:
    if (efd >= 0)
        close(efd);
    free(job->host);
    free(job);
    return r;
}
