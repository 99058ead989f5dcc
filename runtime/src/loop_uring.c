/* The io_uring backend of the loop: readiness through the ring.
 *
 * Every watched fd has a poll request (IORING_OP_POLL_ADD) in the ring for
 * its interests; the loop submits what changed and waits for completions in
 * one io_uring_enter per iteration. The polls are one-shot and re-armed
 * after their event was dispatched: a one-shot poll armed on an fd that is
 * still ready completes at once, which gives exactly the level-triggered
 * semantics of the epoll backend that the drivers rely on (one bounded read,
 * accept batch, recvmmsg or write per event). A multishot poll only reports
 * new wake-ups, and would leave data unread after a read that filled its
 * buffer.
 *
 * Requests are tagged with the fd and a generation that changes whenever the
 * fd's poll is armed or cancelled: a completion whose generation is not the
 * fd's current one belongs to a poll cancelled since (its watcher may be
 * freed, its fd reused) and is dropped. A cancelled poll's completion still
 * comes, and the kernel holds the file until then: an fd's close takes
 * effect only once its poll's cancel has completed, which with
 * DEFER_TASKRUN happens inside an io_uring_enter that takes completions (at
 * most 20 a call on recent kernels). The next iteration's wait does that; a
 * loop that hands control back (a run returning) first waits for them
 * (pg__uring_flush), or a peer would not see the close until the loop ran
 * again. */
#include <liburing.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* The kernel fills a receive's buffer, which memcheck does not see: the
 * bytes are marked written (a no-op when not under valgrind). */
#if defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define PG__KERNEL_WROTE(p, n) VALGRIND_MAKE_MEM_DEFINED((p), (n))
#endif
#endif
#ifndef PG__KERNEL_WROTE
#define PG__KERNEL_WROTE(p, n) ((void)(p), (void)(n))
#endif

/* liburing maps and unmaps the rings with its own system calls, which
 * ThreadSanitizer does not see: a ring mapped where another thread's closed
 * ring was would look like that thread's memory. A closing ring releases
 * its mappings' addresses and a new one acquires them, which orders the
 * old ring's last use before the new one's first. */
#if defined(__SANITIZE_THREAD__)
#define PG__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define PG__TSAN 1
#endif
#endif
#ifdef PG__TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
static void pg__uring_tsan(struct io_uring *ring, void (*sync)(void *))
{
    sync(ring->sq.ring_ptr);
    sync(ring->cq.ring_ptr);
    sync(ring->sq.sqes);
}
#define pg__uring_tsan_new(ring) pg__uring_tsan((ring), __tsan_acquire)
#define pg__uring_tsan_gone(ring) pg__uring_tsan((ring), __tsan_release)
#else
#define pg__uring_tsan_new(ring) ((void)(ring))
#define pg__uring_tsan_gone(ring) ((void)(ring))
#endif

#define PG__URING_ENTRIES 256
/* The tag of requests whose completion is of no interest (cancels). */
#define PG__URING_IGNORE UINT64_MAX
/* Tags: the generation in the high half, the fd shifted left by one in the
 * low half; this bit marks a receive (PG__IO_RECV), whose generation is the
 * slot's rgen. A send's tag is its record's address with bit 0 set (the fd
 * tags keep it clear; records are malloc'd, so even). */
#define PG__URING_RECV_BIT 0x80000000u
#define PG__URING_SEND_BIT 1u
/* The receive buffers the kernel picks from (a provided buffer ring, group
 * 0): each receive takes one and it comes back once the callback returns.
 * 128 × 16 KiB: more receives than that completing between two iterations
 * get -ENOBUFS and are asked again. */
#define PG__URING_BUFS 128u
#define PG__URING_BUF_SIZE PG__RECV_BUFFER_SIZE

/* A send in the ring (PG__IO_SENT): a copy of the bytes, which the kernel
 * reads until the send completes; owned by the ring, so that a connection
 * that ends meanwhile forgets it (io NULL) and the completion frees it. */
typedef struct pg__uring_sendrec pg__uring_sendrec;
struct pg__uring_sendrec {
    pg__uring_sendrec *next, **prev; /* in flight: the ring's list; free: the cache */
    pg__io *io;     /* the watcher its completion goes to; NULL: forgotten */
    int fd;
    bool settles;   /* forgotten by a close: counted in cancelled */
    uint32_t off;   /* sent so far (the kernel may send a part) */
    uint32_t len;
    uint32_t cap;
    uint32_t seq;   /* the dispatch it was submitted in (pg__uring.dispatches) */
    uint8_t data[];
};

/* Records come in two sizes, both kept for reuse (a few of the large): a
 * send takes at most PG__URING_SEND_MAX, a read's worth (the loop's read
 * buffer), so that an echo of bulk data is one send per read; the rest
 * waits in the write buffer for the completion. (64 KiB sends halved the
 * streaming rate: a round trip through the ring per 64 KiB.) A connection
 * stuck behind a slow reader holds up to that much in flight. */
#define PG__URING_SEND_SMALL 4096u
#define PG__URING_SEND_MAX ((uint32_t)256 * 1024)
#define PG__URING_SMALL_CACHE 64u
#define PG__URING_LARGE_CACHE 8u
/* How long a wait that submitted sends waits for one more completion than
 * those sends before it takes what came: the sends' own completions (which
 * mostly come at once) would otherwise end the wait, and each round of
 * replies would pay a second io_uring_enter for them (IORING_FEAT_MIN_TIMEOUT,
 * Linux 6.12; without it, no batching). */
#define PG__URING_BATCH_USEC 50u
/* Only a busy loop batches: one whose last dispatch had two completions or
 * more besides its sends' and cancels' (many connections, or a stream of
 * data). There the completion waited for is mostly there already; a quiet
 * loop (one ping-pong, one connection at a time) sleeps in every wait, and a
 * sleep under the minimum wait's timer costs more than the system call it
 * saves (timed, one 64 B ping-pong: 1.15-1.2x the server CPU of two calls a
 * message; connection churn 1.2x; on a virtual machine, where arming a timer
 * may exit to the hypervisor: bench/README.md). */
#define PG__URING_BUSY 2u
#ifndef IORING_FEAT_MIN_TIMEOUT
#define IORING_FEAT_MIN_TIMEOUT (1U << 15)
#endif

typedef struct pg__uring_slot {
    pg__io *io;     /* the fd's watcher; NULL: none */
    uint32_t gen;   /* the current poll's generation */
    uint32_t armed; /* the interests its poll waits for; 0: none in the ring */
    pg__io *rio;    /* the watcher a receive delivers to, from its first until pg__uring_close */
    uint32_t rgen;  /* the receive's generation: changed when the fd closes */
    bool rflight;   /* a receive is in the ring */
    pg__uring_sendrec *send; /* the send in the ring for the watcher; NULL: none */
    bool slow_sends; /* its last send did not complete by the next iteration (a peer slow to read) */
    uint16_t cancels; /* its requests cancelled whose completion has not come */
    uint16_t closing; /* of those, the ones cancelled before the fd's close (pg__uring_close) */
} pg__uring_slot;

struct pg__uring {
    struct io_uring ring;
    unsigned flags;       /* the setup flags the kernel took */
    bool enabled;         /* created disabled: enabled by the first submit (SINGLE_ISSUER) */
    bool skip_success;    /* IOSQE_CQE_SKIP_SUCCESS: successful cancels post nothing */
    unsigned cancelled;   /* requests of closed fds cancelled whose completion has not been seen */
    pg__uring_slot *slots; /* by fd */
    size_t nslots;
    int nest_fd; /* for an outer loop: an eventfd the ring signals; -1 until asked for */
    /* The receive buffers: set up at the first receive; recv_state 0 not
     * yet, 1 ready, -errno the kernel refused (receives then poll). */
    struct io_uring_buf_ring *br;
    uint8_t *bufs;
    int recv_state;
    /* During a receive's callback: its bytes and result (pg__uring_recv_result). */
    const uint8_t *recv_data;
    ssize_t recv_res;
    /* Sends: in flight (freed with the ring), cached records, the sends
     * queued since the last submit (pg__uring_wait), during a send's
     * callback its length and result (pg__uring_send_result). */
    pg__uring_sendrec *sends;
    pg__uring_sendrec *cache[2]; /* small, large */
    unsigned cached[2];
    unsigned sends_queued; /* of those, on fds whose sends complete at once */
    uint32_t dispatches;   /* iterations dispatched: tells a send that completed at once */
    bool min_timeout; /* IORING_FEAT_MIN_TIMEOUT */
    bool busy;        /* the last dispatch had PG__URING_BUSY completions besides sends' and cancels' */
    size_t sent_len;
    int sent_res;
};

/* Flags in the order they are given up when the kernel refuses them:
 * DEFER_TASKRUN (6.1) needs SINGLE_ISSUER (6.0); R_DISABLED lets the thread
 * that runs the loop, not the one that made it, become its single issuer. */
static const unsigned pg__uring_flag_sets[] = {
    IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED,
    IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_R_DISABLED,
    IORING_SETUP_COOP_TASKRUN,
    0,
};

int pg__uring_new(pg__uring **out)
{
    pg__uring *u = calloc(1, sizeof *u);
    if (u == NULL)
        return -ENOMEM;
    int r = -EINVAL;
    for (size_t i = 0; i < sizeof pg__uring_flag_sets / sizeof pg__uring_flag_sets[0]; i++) {
        struct io_uring_params p;
        memset(&p, 0, sizeof p);
        p.flags = pg__uring_flag_sets[i];
        r = io_uring_queue_init_params(PG__URING_ENTRIES, &u->ring, &p);
        if (r == 0 && (p.features & (IORING_FEAT_NODROP | IORING_FEAT_EXT_ARG)) !=
                          (IORING_FEAT_NODROP | IORING_FEAT_EXT_ARG)) {
            /* Before 5.11: completions may be dropped, a timed wait costs a
             * request of its own. Not worth it: epoll. */
            io_uring_queue_exit(&u->ring);
            r = -ENOSYS;
            break;
        }
        if (r == 0) {
            pg__uring_tsan_new(&u->ring);
            u->flags = p.flags;
            u->enabled = !(p.flags & IORING_SETUP_R_DISABLED);
            u->skip_success = (p.features & IORING_FEAT_CQE_SKIP) != 0;
            u->min_timeout = (p.features & IORING_FEAT_MIN_TIMEOUT) != 0;
            break;
        }
        if (r != -EINVAL)
            break; /* not a flag it refuses: io_uring itself is (ENOSYS, EPERM) or memory is short */
    }
    if (r < 0) {
        free(u);
        return r;
    }
    u->nest_fd = -1;
    *out = u;
    return 0;
}

void pg__uring_free(pg__uring *u)
{
    if (u == NULL)
        return;
    /* The cancels of polls on fds closed since the last iteration go in
     * first: the kernel holds those files until then, and a close must
     * reach the peer now, not when the ring's teardown gets to it. */
    if (u->enabled && io_uring_sq_ready(&u->ring) > 0)
        (void)io_uring_submit(&u->ring); /* fails on another thread than the issuer: teardown then */
    pg__uring_tsan_gone(&u->ring);
    io_uring_queue_exit(&u->ring); /* cancels what is still in the ring */
    if (u->nest_fd >= 0)
        close(u->nest_fd);
    if (u->br != NULL)
        munmap(u->br, PG__URING_BUFS * sizeof(struct io_uring_buf));
    for (pg__uring_sendrec *q = u->sends, *next; q != NULL; q = next) {
        next = q->next;
        free(q);
    }
    for (int i = 0; i < 2; i++)
        for (pg__uring_sendrec *q = u->cache[i], *next; q != NULL; q = next) {
            next = q->next;
            free(q);
        }
    free(u->bufs);
    free(u->slots);
    free(u);
}

/* The ring's own fd is not woken by completions that wait for the loop's
 * thread (DEFER_TASKRUN runs them only inside io_uring_enter): an outer loop
 * waits on an eventfd the kernel signals for each instead. */
int pg__uring_nest_fd(pg__uring *u)
{
    if (u->nest_fd >= 0)
        return u->nest_fd;
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    int r = io_uring_register_eventfd(&u->ring, fd);
    if (r < 0) {
        close(fd);
        return r;
    }
    u->nest_fd = fd;
    return fd;
}

static int pg__uring_enable(pg__uring *u)
{
    if (u->enabled)
        return 0;
    /* The system call itself: Debian's liburing.so.2.3 does not export
     * io_uring_enable_rings. */
    if (syscall(__NR_io_uring_register, u->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0) < 0)
        return -errno;
    u->enabled = true;
    return 0;
}

static int pg__uring_submit(pg__uring *u)
{
    int r = pg__uring_enable(u);
    if (r < 0)
        return r;
    u->sends_queued = 0;
    r = io_uring_submit(&u->ring);
    return r < 0 ? r : 0;
}

/* A free submission entry; a full queue is submitted first. */
PG__HOT_INLINE static inline struct io_uring_sqe *pg__uring_sqe(pg__uring *u)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
    if (sqe == NULL && pg__uring_submit(u) == 0)
        sqe = io_uring_get_sqe(&u->ring);
    return sqe;
}

static uint64_t pg__uring_tag(int fd, uint32_t gen)
{
    return (uint64_t)gen << 32 | (uint32_t)fd << 1;
}

/* The fd of a poll's or a receive's tag. */
static size_t pg__uring_tag_fd(uint64_t tag)
{
    return ((uint32_t)tag & ~PG__URING_RECV_BIT) >> 1;
}

static bool pg__uring_is_send(uint64_t tag)
{
    return (tag & PG__URING_SEND_BIT) && tag != PG__URING_IGNORE;
}

static pg__uring_sendrec *pg__uring_send_of(uint64_t tag)
{
    return (pg__uring_sendrec *)(uintptr_t)(tag & ~(uint64_t)PG__URING_SEND_BIT);
}

static int pg__uring_slot_of(pg__uring *u, int fd, pg__uring_slot **out)
{
    size_t need = (size_t)fd + 1;
    if (need > u->nslots) {
        size_t n = u->nslots ? u->nslots : 64;
        while (n < need)
            n *= 2;
        pg__uring_slot *s = realloc(u->slots, n * sizeof *s);
        if (s == NULL)
            return -ENOMEM;
        memset(s + u->nslots, 0, (n - u->nslots) * sizeof *s);
        u->slots = s;
        u->nslots = n;
    }
    *out = &u->slots[fd];
    return 0;
}

PG__HOT_INLINE static inline int pg__uring_arm(pg__uring *u, pg__uring_slot *slot, int fd, uint32_t events)
{
    struct io_uring_sqe *sqe = pg__uring_sqe(u);
    if (sqe == NULL)
        return -ENOMEM;
    slot->gen++;
    slot->armed = events;
    io_uring_prep_poll_add(sqe, fd, events);
    io_uring_sqe_set_data64(sqe, pg__uring_tag(fd, slot->gen));
    return 0;
}

/* Cancels the fd's poll, if one is in the ring; its completion, whenever it
 * comes, is then stale. */
static int pg__uring_disarm(pg__uring *u, pg__uring_slot *slot, int fd)
{
    if (slot->armed == 0)
        return 0;
    struct io_uring_sqe *sqe = pg__uring_sqe(u);
    if (sqe == NULL)
        return -ENOMEM;
    io_uring_prep_poll_remove(sqe, pg__uring_tag(fd, slot->gen));
    io_uring_sqe_set_data64(sqe, PG__URING_IGNORE);
    if (u->skip_success)
        sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    slot->gen++;
    slot->armed = 0;
    if (slot->cancels < UINT16_MAX)
        slot->cancels++;
    return 0;
}

/* ---- receives (PG__IO_RECV) --------------------------------------------- *
 * A socket's bytes come in a completion (IORING_OP_RECV into a buffer the
 * kernel picks from the ring): no recv system call of their own. One receive
 * per fd is in the ring at a time, asked again after its bytes were
 * delivered. Stopping (pause_reading) leaves the one in the ring: its bytes,
 * whenever they come, reach the watcher, which holds them; only the fd's
 * close (pg__uring_close) cancels it. */

/* A receive buffer goes back to the kernel's ring. */
static void pg__uring_recycle(pg__uring *u, const struct io_uring_cqe *cqe)
{
    if (!(cqe->flags & IORING_CQE_F_BUFFER))
        return;
    unsigned short bid = (unsigned short)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
    io_uring_buf_ring_add(u->br, u->bufs + (size_t)bid * PG__URING_BUF_SIZE, PG__URING_BUF_SIZE, bid,
                          io_uring_buf_ring_mask(PG__URING_BUFS), 0);
    io_uring_buf_ring_advance(u->br, 1);
}

static uint64_t pg__uring_rtag(int fd, uint32_t rgen)
{
    return (uint64_t)rgen << 32 | PG__URING_RECV_BIT | (uint32_t)fd << 1;
}

bool pg__uring_can_recv(pg__uring *u)
{
    if (u->recv_state != 0)
        return u->recv_state > 0;
    size_t ring_size = PG__URING_BUFS * sizeof(struct io_uring_buf);
    int r = pg__uring_enable(u);
    void *br = MAP_FAILED;
    if (r == 0) {
        u->bufs = malloc(PG__URING_BUFS * PG__URING_BUF_SIZE); /* its pages are touched as receives use them */
        br = mmap(NULL, ring_size, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
        r = u->bufs == NULL || br == MAP_FAILED ? -ENOMEM : 0;
    }
    if (r == 0) {
        struct io_uring_buf_reg reg;
        memset(&reg, 0, sizeof reg);
        reg.ring_addr = (uint64_t)(uintptr_t)br;
        reg.ring_entries = PG__URING_BUFS;
        reg.bgid = 0;
        r = io_uring_register_buf_ring(&u->ring, &reg, 0); /* Linux 5.19 */
    }
    if (r < 0) {
        if (br != MAP_FAILED)
            munmap(br, ring_size);
        free(u->bufs);
        u->bufs = NULL;
        u->recv_state = r; /* receives poll for readiness, as on epoll */
        return false;
    }
    u->br = br;
    io_uring_buf_ring_init(u->br);
    for (unsigned i = 0; i < PG__URING_BUFS; i++)
        io_uring_buf_ring_add(u->br, u->bufs + i * PG__URING_BUF_SIZE, PG__URING_BUF_SIZE, (unsigned short)i,
                              io_uring_buf_ring_mask(PG__URING_BUFS), (int)i);
    io_uring_buf_ring_advance(u->br, PG__URING_BUFS);
    u->recv_state = 1;
    return true;
}

static int pg__uring_arm_recv(pg__uring *u, pg__uring_slot *slot, int fd)
{
    struct io_uring_sqe *sqe = pg__uring_sqe(u);
    if (sqe == NULL)
        return -ENOMEM;
    io_uring_prep_recv(sqe, fd, NULL, PG__URING_BUF_SIZE, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = 0;
    io_uring_sqe_set_data64(sqe, pg__uring_rtag(fd, slot->rgen));
    slot->rflight = true;
    return 0;
}

/* ---- sends (PG__IO_SENT) -------------------------------------------------- *
 * A socket's writes go into the ring (IORING_OP_SEND of a copy): submitted
 * with the iteration's wait, in one io_uring_enter, instead of a send system
 * call each. One send per fd is in flight at a time; its completion tells
 * the watcher how much went (the core counts it as buffered until then). */

static pg__uring_sendrec *pg__uring_send_take(pg__uring *u, size_t len)
{
    int large = len > PG__URING_SEND_SMALL;
    pg__uring_sendrec *q = u->cache[large];
    if (q != NULL) {
        u->cache[large] = q->next;
        u->cached[large]--;
        return q;
    }
    uint32_t cap = large ? PG__URING_SEND_MAX : PG__URING_SEND_SMALL;
    q = malloc(sizeof *q + cap);
    if (q != NULL)
        q->cap = cap;
    return q;
}

/* Off the in-flight list, and kept for the next send while few are. */
static void pg__uring_send_release(pg__uring *u, pg__uring_sendrec *q)
{
    *q->prev = q->next;
    if (q->next != NULL)
        q->next->prev = q->prev;
    int large = q->cap > PG__URING_SEND_SMALL;
    if (u->cached[large] < (large ? PG__URING_LARGE_CACHE : PG__URING_SMALL_CACHE)) {
        q->next = u->cache[large];
        u->cache[large] = q;
        u->cached[large]++;
        return;
    }
    free(q);
}

static int pg__uring_send_submit(pg__uring *u, pg__uring_sendrec *q)
{
    struct io_uring_sqe *sqe = pg__uring_sqe(u);
    if (sqe == NULL)
        return -ENOMEM;
    io_uring_prep_send(sqe, q->fd, q->data + q->off, q->len - q->off, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)q | PG__URING_SEND_BIT);
    q->seq = u->dispatches;
    /* Only sends expected to complete at once make the wait wait for one
     * more: one stuck behind a slow reader would hold every other
     * connection's completions up to PG__URING_BATCH_USEC. */
    if (!u->slots[q->fd].slow_sends)
        u->sends_queued++;
    return 0;
}

/* A quiet loop (not PG__URING_BUSY) sends with a system call of its own,
 * as epoll's writes do, unless a send of the fd's is in flight (order) or
 * its peer reads slowly. Through the ring the same send costs as much: its
 * completion ends the next wait at once, and only the wait after sleeps;
 * and it costs a copy and a loop iteration to take that completion (timed,
 * one 64 B ping-pong: bench/README.md). */
bool pg__uring_sends_now(const pg__uring *u, const pg__io *io)
{
    if (u->busy)
        return false;
    if ((size_t)io->fd >= u->nslots)
        return true;
    const pg__uring_slot *slot = &u->slots[io->fd];
    return slot->send == NULL && !slot->slow_sends;
}

ssize_t pg__uring_send(pg__uring *u, pg__io *io, const struct iovec *iov, int iovcnt, size_t skip)
{
    pg__uring_slot *slot = (size_t)io->fd < u->nslots ? &u->slots[io->fd] : NULL;
    int r = slot != NULL ? 0 : pg__uring_slot_of(u, io->fd, &slot);
    if (r < 0)
        return r;
    if (slot->send != NULL)
        return 0; /* one at a time: the rest waits for its completion */
    size_t len = 0;
    for (int i = 0; i < iovcnt && len < skip + PG__URING_SEND_MAX; i++)
        len += iov[i].iov_len;
    len = len < skip ? 0 : len - skip;
    if (len > PG__URING_SEND_MAX)
        len = PG__URING_SEND_MAX;
    if (len == 0)
        return 0;
    pg__uring_sendrec *q = pg__uring_send_take(u, len);
    if (q == NULL)
        return -ENOMEM;
    size_t copied = 0;
    for (int i = 0; copied < len; i++) {
        size_t k = iov[i].iov_len;
        if (skip >= k) { /* an empty entry (which may have no base) too */
            skip -= k;
            continue;
        }
        k -= skip;
        if (k > len - copied)
            k = len - copied;
        memcpy(q->data + copied, (const uint8_t *)iov[i].iov_base + skip, k);
        skip = 0;
        copied += k;
    }
    q->io = io;
    q->fd = io->fd;
    q->settles = false;
    q->off = 0;
    q->len = (uint32_t)len;
    q->next = u->sends;
    if (q->next != NULL)
        q->next->prev = &q->next;
    q->prev = &u->sends;
    u->sends = q;
    r = pg__uring_send_submit(u, q);
    if (r < 0) {
        pg__uring_send_release(u, q);
        return r;
    }
    slot->send = q;
    return (ssize_t)len;
}

int pg__uring_send_result(const pg__uring *u, size_t *len)
{
    *len = u->sent_len;
    return u->sent_res;
}

/* A live send's completion: the watcher is told (PG__IO_SENT) how much
 * went, or why the rest failed. A part that went (the peer reads slowly)
 * is told as it goes, and the rest sent again: the write buffer's size
 * drains in steps, as with send(). */
static void pg__uring_on_send(pg__uring *u, const struct io_uring_cqe *cqe)
{
    pg__uring_sendrec *q = pg__uring_send_of(cqe->user_data);
    pg__io *io = q->io;
    uint32_t left = q->len - q->off;
    int res = cqe->res == 0 ? -EPIPE : cqe->res; /* nothing went of a send of some: broken */
    u->slots[q->fd].slow_sends = q->seq + 1 != u->dispatches || (res > 0 && (uint32_t)res < left);
    if (res > 0 && (uint32_t)res < left) {
        q->off += (uint32_t)res;
        u->sent_len = (size_t)res;
        u->sent_res = pg__uring_send_submit(u, q);
        if (u->sent_res == 0) {
            io->cb(io, PG__IO_SENT);
            return;
        }
        left -= (uint32_t)res;
        res = u->sent_res;
    }
    u->slots[q->fd].send = NULL;
    u->sent_len = res > 0 ? (size_t)res : left;
    u->sent_res = res > 0 ? 0 : res;
    pg__uring_send_release(u, q);
    io->cb(io, PG__IO_SENT);
}

void pg__uring_close(pg__uring *u, pg__io *io)
{
    if (io->fd < 0 || (size_t)io->fd >= u->nslots)
        return;
    pg__uring_slot *slot = &u->slots[io->fd];
    if (slot->rio == io && slot->rflight) {
        struct io_uring_sqe *sqe = pg__uring_sqe(u);
        if (sqe != NULL) { /* else it ends when the socket has bytes or an end: the file waits until then */
            io_uring_prep_cancel64(sqe, pg__uring_rtag(io->fd, slot->rgen), 0);
            io_uring_sqe_set_data64(sqe, PG__URING_IGNORE);
            if (u->skip_success)
                sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
        }
        if (slot->cancels < UINT16_MAX)
            slot->cancels++; /* its completion is stale from here on (pg__uring_drop) */
        slot->rflight = false;
    }
    if (slot->rio == io) {
        slot->rgen++;
        slot->rio = NULL;
    }
    slot->slow_sends = false; /* the fd's next connection starts afresh */
    pg__uring_sendrec *q = slot->send;
    if (q != NULL && q->io == io) {
        /* Aborted with a send in flight (a close waits for it): cancelled,
         * the record freed by its completion, which a run that returns
         * waits for too (the file is held until then). */
        struct io_uring_sqe *sqe = pg__uring_sqe(u);
        if (sqe != NULL) {
            io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)q | PG__URING_SEND_BIT, 0);
            io_uring_sqe_set_data64(sqe, PG__URING_IGNORE);
            if (u->skip_success)
                sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
        }
        q->io = NULL;
        q->settles = true;
        u->cancelled++;
        slot->send = NULL;
    }
    /* What was cancelled of the fd's requests holds its file until it
     * completes: a run waits for that before it returns (pg__uring_settle).
     * Only closes count: a cancel on an fd that stays open (an interest
     * changed) holds nothing, and a few kinds of fd (eventfds, signalfds)
     * were seen never to complete a cancelled poll while open. */
    u->cancelled += (unsigned)(slot->cancels - slot->closing);
    slot->closing = slot->cancels;
}

ssize_t pg__uring_recv_result(const pg__uring *u, const uint8_t **data)
{
    *data = u->recv_data;
    return u->recv_res;
}

/* A live receive's completion: its bytes, end or error to the watcher, then
 * the next receive while the watcher still wants them. */
static void pg__uring_on_recv(pg__uring *u, const struct io_uring_cqe *cqe)
{
    int fd = (int)pg__uring_tag_fd(cqe->user_data);
    pg__uring_slot *slot = &u->slots[fd];
    pg__io *io = slot->rio;
    slot->rflight = false;
    int res = cqe->res;
    bool again = res > 0 || res == -ENOBUFS; /* -ENOBUFS: every buffer was taken: asked again */
    if (res != -ENOBUFS && res != -ECANCELED) {
        u->recv_data = (cqe->flags & IORING_CQE_F_BUFFER)
                           ? u->bufs + (size_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT) * PG__URING_BUF_SIZE
                           : NULL;
        u->recv_res = res;
        if (res > 0)
            PG__KERNEL_WROTE(u->recv_data, (size_t)res);
        io->cb(io, PG__IO_RECV);
        u->recv_data = NULL;
    }
    pg__uring_recycle(u, cqe);
    slot = &u->slots[fd]; /* the table may have grown */
    if (again && slot->rio == io && !slot->rflight && (io->events & PG__IO_RECV))
        (void)pg__uring_arm_recv(u, slot, fd); /* fails only when a submit does */
}

int pg__uring_set(pg__uring *u, pg__io *io, uint32_t old_events, uint32_t new_events)
{
    pg__uring_slot *slot;
    int r = pg__uring_slot_of(u, io->fd, &slot);
    if (r < 0)
        return r;
    if ((new_events & PG__IO_RECV) && !(old_events & PG__IO_RECV)) {
        slot->rio = io;
        if (!slot->rflight && (r = pg__uring_arm_recv(u, slot, io->fd)) < 0)
            return r;
    }
    uint32_t polls = new_events & (PG__IO_READ | PG__IO_WRITE);
    if (polls == 0) {
        r = pg__uring_disarm(u, slot, io->fd);
        if (r < 0)
            return r;
        slot->io = NULL;
        return 0;
    }
    slot->io = io;
    if (slot->armed == polls)
        return 0;
    r = pg__uring_disarm(u, slot, io->fd);
    if (r == 0)
        r = pg__uring_arm(u, slot, io->fd, polls);
    return r;
}

PG__HOT_INLINE static inline bool pg__uring_is_live(const pg__uring *u, const struct io_uring_cqe *cqe)
{
    uint64_t tag = cqe->user_data;
    uint32_t low = (uint32_t)tag;
    if (tag == PG__URING_IGNORE)
        return false;
    if (tag & PG__URING_SEND_BIT)
        return pg__uring_send_of(tag)->io != NULL;
    size_t fd = pg__uring_tag_fd(tag);
    if (fd >= u->nslots)
        return false;
    const pg__uring_slot *slot = &u->slots[fd];
    if (low & PG__URING_RECV_BIT)
        return slot->rgen == (uint32_t)(tag >> 32) && slot->rio != NULL;
    return slot->gen == (uint32_t)(tag >> 32) && slot->armed != 0;
}

/* A completion that is not live: a cancel's own (a failed one), or the last
 * of a cancelled poll or of a receive whose fd closed, whose file the kernel
 * has let go of now (a receive's buffer goes back). */
PG__HOT_INLINE static inline void pg__uring_drop(pg__uring *u, const struct io_uring_cqe *cqe)
{
    if (cqe->user_data == PG__URING_IGNORE)
        return;
    if (pg__uring_is_send(cqe->user_data)) {
        pg__uring_sendrec *q = pg__uring_send_of(cqe->user_data);
        if (q->settles && u->cancelled > 0)
            u->cancelled--;
        pg__uring_send_release(u, q);
        return;
    }
    if ((uint32_t)cqe->user_data & PG__URING_RECV_BIT)
        pg__uring_recycle(u, cqe);
    size_t fd = pg__uring_tag_fd(cqe->user_data);
    if (fd >= u->nslots)
        return;
    pg__uring_slot *slot = &u->slots[fd];
    if (slot->cancels > 0)
        slot->cancels--;
    if (slot->closing > 0) {
        slot->closing--;
        if (u->cancelled > 0)
            u->cancelled--;
    }
}

/* Drops the completions of cancelled polls at the head of the queue; true
 * when one for a watcher is left. */
PG__HOT_INLINE static inline bool pg__uring_live(pg__uring *u)
{
    unsigned head = *u->ring.cq.khead;
    unsigned tail = io_uring_smp_load_acquire(u->ring.cq.ktail);
    unsigned start = head;
    while (head != tail && !pg__uring_is_live(u, &u->ring.cq.cqes[head & u->ring.cq.ring_mask]))
        pg__uring_drop(u, &u->ring.cq.cqes[head++ & u->ring.cq.ring_mask]);
    if (head != start)
        io_uring_smp_store_release(u->ring.cq.khead, head);
    return head != tail;
}

/* Submits what is queued and waits, as io_uring_submit_and_wait_timeout
 * does (ts NULL: no timeout), but for one completion more than the sends
 * it submits, taking what came once PG__URING_BATCH_USEC passed: a busy
 * loop's replies and the next requests then cost one io_uring_enter
 * (liburing 2.3 has no call for IORING_FEAT_MIN_TIMEOUT: the system call
 * itself, with the SQ tail published as liburing does). */
static int pg__uring_enter_batch(pg__uring *u, const struct __kernel_timespec *ts)
{
    struct io_uring_sq *sq = &u->ring.sq;
    unsigned tail = sq->sqe_tail;
    if (sq->sqe_head != tail) {
        sq->sqe_head = tail;
        io_uring_smp_store_release(sq->ktail, tail);
    }
    unsigned submit = tail - io_uring_smp_load_acquire(sq->khead);
    struct {
        uint64_t sigmask;
        uint32_t sigmask_sz;
        uint32_t min_wait_usec;
        uint64_t ts;
    } arg = { 0, _NSIG / 8, PG__URING_BATCH_USEC, (uint64_t)(uintptr_t)ts };
    unsigned wait = u->sends_queued + 1;
    u->sends_queued = 0;
    long r = syscall(__NR_io_uring_enter, u->ring.ring_fd, submit, wait, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG,
                     &arg, sizeof arg);
    if (r < 0)
        return errno == ETIME ? 0 : -errno;
    return (int)r;
}

/* Whether this wait batches: it submits sends that complete at once, the
 * kernel has the minimum wait, and the loop is busy (PG__URING_BUSY). */
static bool pg__uring_batches(const pg__uring *u)
{
    return u->sends_queued > 0 && u->min_timeout && u->busy;
}

/* Waits for completions, submitting what is queued in the same call, as the
 * epoll backend waits (EINTR retried with what is left of the timeout,
 * unless *stopping ends the run). */
static int pg__uring_wait_long(pg__uring *u, int timeout_ms, const atomic_int *stopping)
{
    int r = pg__uring_enable(u);
    if (r < 0)
        return r;
    struct timespec start;
    if (timeout_ms > 0)
        clock_gettime(CLOCK_MONOTONIC, &start);
    if (u->nest_fd >= 0) {
        /* Emptied first: completions from here on signal it again. */
        uint64_t n;
        ssize_t got;
        PG__RETRY_EINTR(got, read(u->nest_fd, &n, sizeof n));
        (void)got; /* EAGAIN: nothing came */
    }
    int left = timeout_ms;
    for (;;) {
        struct __kernel_timespec ts = { left / 1000, (long long)(left % 1000) * 1000000 };
        if (left != 0 && pg__uring_batches(u)) {
            r = pg__uring_enter_batch(u, left < 0 ? NULL : &ts);
        } else if (left == 0) {
            u->sends_queued = 0;
            r = io_uring_submit_and_get_events(&u->ring);
        } else if (left < 0) {
            u->sends_queued = 0;
            r = io_uring_submit_and_wait(&u->ring, 1);
        } else {
            struct io_uring_cqe *cqe;
            u->sends_queued = 0;
            r = io_uring_submit_and_wait_timeout(&u->ring, &cqe, 1, &ts, NULL);
            if (r == -ETIME)
                r = 0;
        }
        if (r >= 0) {
            /* Only cancelled polls' completions came: wait on. */
            if (left == 0 || pg__uring_live(u))
                return 0;
        } else if (r != -EINTR) {
            return r;
        } else if (stopping != NULL && atomic_load(stopping)) {
            return 0;
        }
        if (left > 0) {
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            int64_t spent = (int64_t)(now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
            left = spent >= timeout_ms ? 0 : timeout_ms - (int)spent;
        }
    }
}

void pg__uring_dispatch(pg__uring *u)
{
    /* The completions there are now: callbacks that submit (a full queue)
     * may add more, which the next iteration takes. */
    u->dispatches++;
    unsigned head = *u->ring.cq.khead;
    unsigned n = io_uring_smp_load_acquire(u->ring.cq.ktail) - head;
    if (n > PG__MAX_EVENTS)
        n = PG__MAX_EVENTS; /* as many as epoll's batch: the rest next iteration (its wait returns at once) */
    unsigned mask = u->ring.cq.ring_mask;
    unsigned others = 0; /* completions but sends' and cancels' (PG__URING_BUSY) */
    for (unsigned i = 0; i < n; i++) {
        const struct io_uring_cqe *cqe = &u->ring.cq.cqes[(head + i) & mask];
        if (!pg__uring_is_live(u, cqe)) {
            pg__uring_drop(u, cqe); /* a cancel's, or a poll cancelled since */
            continue;
        }
        if (pg__uring_is_send(cqe->user_data)) {
            pg__uring_on_send(u, cqe);
            continue;
        }
        others++;
        if ((uint32_t)cqe->user_data & PG__URING_RECV_BIT) {
            pg__uring_on_recv(u, cqe);
            continue;
        }
        int fd = (int)pg__uring_tag_fd(cqe->user_data);
        uint32_t ev = cqe->res < 0 ? PG__IO_READ | PG__IO_WRITE /* the poll failed: the next syscall tells */
                                   : (uint32_t)cqe->res;
        pg__uring_slot *slot = &u->slots[fd];
        slot->armed = 0;
        pg__io *io = slot->io;
        if (ev & (POLLERR | POLLHUP))
            ev |= PG__IO_READ | PG__IO_WRITE;
        ev &= io->events & (PG__IO_READ | PG__IO_WRITE);
        if (ev != 0)
            io->cb(io, ev);
        /* Armed again for what it still wants; unless the callback stopped
         * the watcher (the slot forgot it) or changed its interests (which
         * armed it). The table may have grown meanwhile. */
        slot = &u->slots[fd];
        if (slot->io == io && slot->armed == 0 && (io->events & (PG__IO_READ | PG__IO_WRITE)) != 0) /* io may be freed: tested first */
            (void)pg__uring_arm(u, slot, fd, io->events & (PG__IO_READ | PG__IO_WRITE)); /* fails only when a submit does */
    }
    io_uring_smp_store_release(u->ring.cq.khead, head + n);
    u->busy = others >= PG__URING_BUSY;
}

int pg__uring_wait(pg__uring *u, int timeout_ms, const atomic_int *stopping)
{
    /* The common wait, short: no timeout, not nested, nothing but a
     * watcher's completion ends it. */
    if (timeout_ms < 0 && u->enabled && u->nest_fd < 0) {
        int r;
        if (pg__uring_batches(u)) {
            r = pg__uring_enter_batch(u, NULL);
        } else {
            u->sends_queued = 0;
            r = io_uring_submit_and_wait(&u->ring, 1);
        }
        if (r >= 0 && pg__uring_live(u))
            return 0;
        if (r < 0 && r != -EINTR)
            return r;
        if (r == -EINTR && stopping != NULL && atomic_load(stopping))
            return 0;
    }
    return pg__uring_wait_long(u, timeout_ms, stopping);
}

/* A completion a settling run waits for: of a request of an fd closed since
 * it was cancelled (a poll, a receive, a forgotten send). */
static bool pg__uring_settles(const pg__uring *u, const struct io_uring_cqe *cqe)
{
    if (cqe->user_data == PG__URING_IGNORE || pg__uring_is_live(u, cqe))
        return false;
    if (pg__uring_is_send(cqe->user_data))
        return pg__uring_send_of(cqe->user_data)->settles;
    size_t fd = pg__uring_tag_fd(cqe->user_data);
    return fd < u->nslots && u->slots[fd].closing > 0;
}

/* What is queued, submitted, and the cancelled polls completed: the kernel
 * lets go of their files (the peers see the closes) before the loop hands
 * control back. Bounded: a cancel completes at once, the timeout is only a
 * guard. */
static void pg__uring_settle(pg__uring *u)
{
    if (u->cancelled > 0)
        (void)pg__uring_live(u); /* drops those at the head of the queue */
    unsigned head = *u->ring.cq.khead;
    unsigned tail = io_uring_smp_load_acquire(u->ring.cq.ktail);
    unsigned seen = 0; /* cancelled polls' completions behind a live one */
    for (unsigned i = head; i != tail && seen < u->cancelled; i++) {
        const struct io_uring_cqe *cqe = &u->ring.cq.cqes[i & u->ring.cq.ring_mask];
        seen += pg__uring_settles(u, cqe);
    }
    if (seen >= u->cancelled) {
        if (io_uring_sq_ready(&u->ring) > 0)
            (void)pg__uring_submit(u);
        return;
    }
    if (pg__uring_enable(u) < 0)
        return;
    /* Until the ring holds them too; nothing is taken off it. */
    struct __kernel_timespec ts = { 1, 0 };
    struct io_uring_cqe *cqe;
    u->sends_queued = 0;
    (void)io_uring_submit_and_wait_timeout(&u->ring, &cqe, (tail - head) + (u->cancelled - seen), &ts, NULL);
}

/* What is queued, submitted now. settle: the loop hands control back (a run
 * returns), to its caller or to an outer loop, which waits on the ring's fd
 * and never enters the ring itself. */
void pg__uring_flush(pg__uring *u, bool settle)
{
    if (!settle) {
        if (io_uring_sq_ready(&u->ring) > 0)
            (void)pg__uring_submit(u);
        return;
    }
    pg__uring_settle(u);
    if (u->nest_fd < 0)
        return;
    /* After an iteration: the eventfd tells whether the loop has work, as
     * the epoll fd would. Emptied, then what completed meanwhile is taken
     * in (and signals it again if there is any); completions from then on
     * signal it themselves. */
    uint64_t n = 1;
    ssize_t r;
    PG__RETRY_EINTR(r, read(u->nest_fd, &n, sizeof n));
    u->sends_queued = 0;
    if (pg__uring_enable(u) == 0 && io_uring_submit_and_get_events(&u->ring) >= 0 && pg__uring_live(u)) {
        n = 1;
        PG__RETRY_EINTR(r, write(u->nest_fd, &n, sizeof n));
    }
    (void)r;
}
