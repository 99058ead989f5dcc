/* A faulty kernel and allocator for a whole program: linked with
 * -Wl,--wrap=<call> for each call below, it makes the calls of the program's
 * own objects (the runtime, the generated protocol, its handlers) fail at a
 * seeded rate, with the errnos the kernel really gives, or transfer less than
 * asked. libc's own calls and the sanitizers' are untouched.
 *
 *   PROTOGEN_FAULT_SEED   the seed (default 1): a run is reproducible
 *   PROTOGEN_FAULT_RATE   faults per 1000 calls (default 20)
 *   PROTOGEN_FAULT_CALLS  which calls fail, comma-separated (default: all of
 *                         malloc,accept4,epoll_ctl,send,recv,datagram)
 *
 * Faults start with the first accept4 or recvmmsg (the program serves by
 * then), so start-up is not what is tested. At exit the counts of injected
 * faults go to stderr, one line, for the driver to report. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

void *__real_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t size);
int __real_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags);
int __real_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev);
ssize_t __real_send(int fd, const void *buf, size_t len, int flags);
ssize_t __real_sendmsg(int fd, const struct msghdr *msg, int flags);
ssize_t __real_recv(int fd, void *buf, size_t len, int flags);
int __real_recvmmsg(int fd, struct mmsghdr *msgs, unsigned int vlen, int flags, struct timespec *timeout);
int __real_sendmmsg(int fd, struct mmsghdr *msgs, unsigned int vlen, int flags);
ssize_t __real_sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *addr,
                      socklen_t addrlen);

enum { F_MALLOC, F_ACCEPT, F_EPOLL, F_SEND, F_RECV, F_DGRAM, F_KINDS };
static const char *const kind_names[F_KINDS] = { "malloc", "accept4", "epoll_ctl", "send", "recv", "datagram" };

static struct {
    bool configured, armed;
    bool enabled[F_KINDS];
    unsigned rate; /* per 1000 */
    uint64_t rng;
    unsigned long injected[F_KINDS], shortened;
} shim;

static void shim_report(void)
{
    fprintf(stderr, "fault_shim: injected");
    for (int k = 0; k < F_KINDS; k++)
        fprintf(stderr, " %s=%lu", kind_names[k], shim.injected[k]);
    fprintf(stderr, " short=%lu\n", shim.shortened);
}

static void shim_configure(void)
{
    if (shim.configured)
        return;
    shim.configured = true;
    const char *seed = getenv("PROTOGEN_FAULT_SEED"), *rate = getenv("PROTOGEN_FAULT_RATE");
    const char *calls = getenv("PROTOGEN_FAULT_CALLS");
    shim.rng = (seed != NULL ? strtoull(seed, NULL, 10) : 1) * 0x9E3779B97F4A7C15ull + 1;
    shim.rate = rate != NULL ? (unsigned)strtoul(rate, NULL, 10) : 20;
    for (int k = 0; k < F_KINDS; k++)
        shim.enabled[k] = calls == NULL || strstr(calls, kind_names[k]) != NULL;
    atexit(shim_report);
}

static uint64_t shim_random(void)
{
    /* xorshift64*: small, and the same sequence for the same seed. */
    shim.rng ^= shim.rng >> 12;
    shim.rng ^= shim.rng << 25;
    shim.rng ^= shim.rng >> 27;
    return shim.rng * 0x2545F4914F6CDD1Dull;
}

static void shim_arm(void)
{
    shim_configure();
    shim.armed = true;
}

/* True when this call of that kind is to fail (or be short). */
static bool shim_fault(int kind)
{
    if (!shim.armed || !shim.enabled[kind])
        return false;
    if (shim_random() % 1000 >= shim.rate)
        return false;
    shim.injected[kind]++;
    return true;
}

/* One of the errnos given, chosen at random; returns -1 for the caller. */
static int shim_errno(const int *errnos, size_t n)
{
    errno = errnos[shim_random() % n];
    return -1;
}
#define SHIM_FAIL(...) shim_errno((const int[]){ __VA_ARGS__ }, sizeof((const int[]){ __VA_ARGS__ }) / sizeof(int))

/* Half the faults of a transfer are short transfers instead of errors
 * (counted as short, not as errors of that kind). */
static bool shim_short(int kind, size_t *len)
{
    if (*len <= 1 || shim_random() % 2 == 0)
        return false;
    *len = 1 + (size_t)(shim_random() % (*len - 1));
    shim.injected[kind]--;
    shim.shortened++;
    return true;
}

void *__wrap_malloc(size_t size)
{
    if (shim_fault(F_MALLOC)) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_malloc(size);
}

void *__wrap_calloc(size_t n, size_t size)
{
    if (shim_fault(F_MALLOC)) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t size)
{
    if (shim_fault(F_MALLOC)) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_realloc(p, size);
}

int __wrap_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    shim_arm();
    if (shim_fault(F_ACCEPT)) {
        if (shim_random() % 2 == 0) {
            /* The peer gave up before we took it: accepted and gone. */
            int c = __real_accept4(fd, addr, len, flags);
            if (c < 0)
                return c;
            close(c);
            errno = ECONNABORTED;
            return -1;
        }
        /* Out of fds or memory costs the server a second's pause (as
         * asyncio's): rarer, so that a run stays short. */
        if (shim_random() % 8 == 0)
            return SHIM_FAIL(EMFILE, ENFILE, ENOBUFS, ENOMEM);
        return SHIM_FAIL(EPROTO, EINTR, ECONNABORTED);
    }
    return __real_accept4(fd, addr, len, flags);
}

int __wrap_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    /* ADD and MOD can run out of memory or of watches; DEL cannot fail. */
    if (op != EPOLL_CTL_DEL && shim_fault(F_EPOLL))
        return op == EPOLL_CTL_ADD ? SHIM_FAIL(ENOMEM, ENOSPC) : SHIM_FAIL(ENOMEM);
    return __real_epoll_ctl(epfd, op, fd, ev);
}

ssize_t __wrap_send(int fd, const void *buf, size_t len, int flags)
{
    if (shim_fault(F_SEND) && !shim_short(F_SEND, &len))
        return SHIM_FAIL(EINTR, EAGAIN, ENOBUFS, ECONNRESET, EPIPE);
    return __real_send(fd, buf, len, flags);
}

ssize_t __wrap_sendmsg(int fd, const struct msghdr *msg, int flags)
{
    if (shim_fault(F_SEND)) {
        size_t len = msg->msg_iovlen > 0 ? msg->msg_iov[0].iov_len : 0;
        if (!shim_short(F_SEND, &len))
            return SHIM_FAIL(EINTR, EAGAIN, ENOBUFS, ECONNRESET, EPIPE);
        /* Short: part of the first buffer only. */
        struct iovec one = { msg->msg_iov[0].iov_base, len };
        struct msghdr m = *msg;
        m.msg_iov = &one;
        m.msg_iovlen = 1;
        return __real_sendmsg(fd, &m, flags);
    }
    return __real_sendmsg(fd, msg, flags);
}

ssize_t __wrap_recv(int fd, void *buf, size_t len, int flags)
{
    if (shim_fault(F_RECV) && !shim_short(F_RECV, &len))
        return SHIM_FAIL(EINTR, EAGAIN, ECONNRESET, ENOMEM);
    return __real_recv(fd, buf, len, flags);
}

int __wrap_recvmmsg(int fd, struct mmsghdr *msgs, unsigned int vlen, int flags, struct timespec *timeout)
{
    shim_arm();
    if (shim_fault(F_DGRAM)) {
        if (vlen > 1 && shim_random() % 2 == 0)
            vlen = 1 + (unsigned)(shim_random() % (vlen - 1)); /* fewer than there are */
        else
            return SHIM_FAIL(EINTR, EAGAIN, ENOMEM, ECONNREFUSED);
    }
    return __real_recvmmsg(fd, msgs, vlen, flags, timeout);
}

int __wrap_sendmmsg(int fd, struct mmsghdr *msgs, unsigned int vlen, int flags)
{
    if (shim_fault(F_DGRAM)) {
        if (vlen > 1 && shim_random() % 2 == 0)
            vlen = 1 + (unsigned)(shim_random() % (vlen - 1)); /* the kernel took fewer */
        else
            return SHIM_FAIL(EINTR, EAGAIN, ENOBUFS, ECONNREFUSED);
    }
    return __real_sendmmsg(fd, msgs, vlen, flags);
}

ssize_t __wrap_sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *addr,
                      socklen_t addrlen)
{
    if (shim_fault(F_DGRAM))
        return SHIM_FAIL(EINTR, EAGAIN, ENOBUFS, ECONNREFUSED);
    return __real_sendto(fd, buf, len, flags, addr, addrlen);
}
