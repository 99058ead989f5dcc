/* The manual host and stream (protogen/manual.h): the core driven by a loop
 * the user owns, and by protogen's tests with no kernel at all. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "protogen/manual.h"

#include "core_internal.h"

/* ---- the host: a FIFO of deferred calls with reservations ---------------- */

typedef struct pg__deferred {
    pg_callback_fn fn;
    void *arg;
} pg__deferred;

struct pg_manual_host {
    pg_host host;
    pg__deferred *ring; /* cap entries, a power of two */
    size_t head;
    size_t len;
    size_t cap;
    size_t reserved; /* invariant: len + reserved <= cap */
    uint64_t (*now_ms)(void *arg);
    void *now_arg;
    pg_timer_queue timers;
};

static int pg__mh_grow(pg_manual_host *mh)
{
    size_t cap = mh->cap ? mh->cap * 2 : 16;
    if (cap > SIZE_MAX / sizeof(pg__deferred))
        return -ENOMEM;
    pg__deferred *ring = malloc(cap * sizeof *ring);
    if (ring == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < mh->len; i++)
        ring[i] = mh->ring[(mh->head + i) & (mh->cap - 1)];
    free(mh->ring);
    mh->ring = ring;
    mh->head = 0;
    mh->cap = cap;
    return 0;
}

static int pg__mh_reserve(void *self)
{
    pg_manual_host *mh = self;
    if (mh->len + mh->reserved + 1 > mh->cap) {
        int r = pg__mh_grow(mh);
        if (r < 0)
            return r;
    }
    mh->reserved++;
    return 0;
}

static void pg__mh_unreserve(void *self)
{
    pg_manual_host *mh = self;
    assert(mh->reserved > 0);
    mh->reserved--;
}

static void pg__mh_defer(void *self, pg_callback_fn fn, void *arg)
{
    pg_manual_host *mh = self;
    assert(mh->reserved > 0 && mh->len < mh->cap);
    mh->reserved--;
    mh->ring[(mh->head + mh->len) & (mh->cap - 1)] = (pg__deferred){ fn, arg };
    mh->len++;
}

static uint64_t pg__monotonic_ms(void *arg)
{
    (void)arg;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t pg__mh_now_ms(void *self)
{
    pg_manual_host *mh = self;
    return mh->now_ms(mh->now_arg);
}

static int pg__mh_timer_start(void *self, pg_timer *timer, uint64_t delay_ms)
{
    pg_manual_host *mh = self;
    uint64_t now = pg__mh_now_ms(mh);
    return pg_timer_queue_add(&mh->timers, timer, delay_ms > UINT64_MAX - now ? UINT64_MAX : now + delay_ms);
}

static void pg__mh_timer_cancel(void *self, pg_timer *timer)
{
    pg_timer_queue_remove(&((pg_manual_host *)self)->timers, timer);
}

static const pg_host_ops pg__manual_host_ops = {
    .reserve = pg__mh_reserve,
    .unreserve = pg__mh_unreserve,
    .defer = pg__mh_defer,
    .now_ms = pg__mh_now_ms,
    .timer_start = pg__mh_timer_start,
    .timer_cancel = pg__mh_timer_cancel,
};

int pg_manual_host_new(pg_manual_host **out)
{
    if (out == NULL)
        return -EINVAL;
    pg_manual_host *mh = calloc(1, sizeof *mh);
    if (mh == NULL)
        return -ENOMEM;
    if (pg__mh_grow(mh) < 0) {
        free(mh);
        return -ENOMEM;
    }
    pg__host_init(&mh->host, &pg__manual_host_ops, mh);
    pg_timer_queue_init(&mh->timers);
    mh->now_ms = pg__monotonic_ms;
    *out = mh;
    return 0;
}

void pg_manual_host_free(pg_manual_host *mh)
{
    if (mh == NULL)
        return;
    pg_timer_queue_free(&mh->timers);
    pg__host_cleanup(&mh->host);
    free(mh->ring);
    free(mh);
}

pg_host *pg_manual_host_host(pg_manual_host *mh)
{
    return &mh->host;
}

size_t pg_manual_host_run(pg_manual_host *mh)
{
    /* Timers due now join the queue behind the calls deferred before. */
    if (mh->timers.len_ > 0)
        pg_timer_queue_expire(&mh->timers, pg__mh_now_ms(mh));
    size_t n = mh->len;
    for (size_t i = 0; i < n; i++) {
        pg__deferred d = mh->ring[mh->head];
        mh->head = (mh->head + 1) & (mh->cap - 1);
        mh->len--;
        d.fn(d.arg);
    }
    return n;
}

bool pg_manual_host_pending(const pg_manual_host *mh)
{
    return mh->len > 0;
}

bool pg_manual_host_next_deadline(const pg_manual_host *mh, uint64_t *due_ms)
{
    return pg_timer_queue_next(&mh->timers, due_ms);
}

int pg_manual_host_timeout(pg_manual_host *mh)
{
    if (mh->len > 0)
        return 0;
    uint64_t due;
    if (!pg_timer_queue_next(&mh->timers, &due))
        return -1;
    uint64_t now = pg__mh_now_ms(mh);
    if (due <= now)
        return 0;
    return due - now > INT_MAX ? INT_MAX : (int)(due - now);
}

void pg_manual_host_set_clock(pg_manual_host *mh, uint64_t (*now_ms)(void *arg), void *arg)
{
    mh->now_ms = now_ms != NULL ? now_ms : pg__monotonic_ms;
    mh->now_arg = now_ms != NULL ? arg : NULL;
}

/* ---- a stream: the output is the driver's "send buffer" ------------------ */

#define PG__MANUAL_DEFAULT_CAPACITY ((size_t)256 * 1024)

struct pg_manual_stream {
    pg_transport *transport; /* NULL once closed */
    uint8_t *out;            /* bytes [out_head, out_len) wait to be sent */
    size_t out_head;
    size_t out_len;
    size_t out_cap; /* allocated */
    size_t capacity;
    bool reading;
    bool writing; /* the core waits for room */
    bool shut;    /* shutdown_write called */
    bool closed;
    bool free_on_close;
    pg_manual_sender sender; /* NULL: writes go to the output */
    void *sender_arg; /* freed by the user while the transport still ran */
};

static size_t pg__ms_pending(const pg_manual_stream *ms)
{
    return ms->out_len - ms->out_head;
}

static ssize_t pg__ms_writev(void *self, const struct iovec *iov, int iovcnt)
{
    pg_manual_stream *ms = self;
    if (ms->sender != NULL)
        return ms->sender(ms->sender_arg, iov, iovcnt);
    size_t room = ms->capacity > pg__ms_pending(ms) ? ms->capacity - pg__ms_pending(ms) : 0;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    size_t take = total < room ? total : room;
    if (take == 0)
        return 0;
    if (ms->out_len + take > ms->out_cap) {
        size_t used = pg__ms_pending(ms);
        if (used > 0)
            memmove(ms->out, ms->out + ms->out_head, used);
        ms->out_head = 0;
        ms->out_len = used;
        if (used + take > ms->out_cap) {
            size_t cap = ms->out_cap * 2 > used + take ? ms->out_cap * 2 : used + take;
            uint8_t *p = realloc(ms->out, cap);
            if (p == NULL)
                return -ENOMEM;
            ms->out = p;
            ms->out_cap = cap;
        }
    }
    size_t left = take;
    for (int i = 0; i < iovcnt && left > 0; i++) {
        size_t k = iov[i].iov_len < left ? iov[i].iov_len : left;
        memcpy(ms->out + ms->out_len, iov[i].iov_base, k);
        ms->out_len += k;
        left -= k;
    }
    return (ssize_t)take;
}

static int pg__ms_shutdown_write(void *self)
{
    pg_manual_stream *ms = self;
    ms->shut = true;
    return 0;
}

static int pg__ms_want_read(void *self, bool on)
{
    ((pg_manual_stream *)self)->reading = on;
    return 0;
}

static int pg__ms_want_write(void *self, bool on)
{
    ((pg_manual_stream *)self)->writing = on;
    return 0;
}

static void pg__ms_close(void *self)
{
    pg_manual_stream *ms = self;
    ms->transport = NULL;
    ms->reading = ms->writing = false;
    ms->closed = true;
    if (ms->free_on_close) {
        free(ms->out);
        free(ms);
    }
}

static const pg_stream_driver_ops pg__manual_stream_ops = {
    .writev = pg__ms_writev,
    .shutdown_write = pg__ms_shutdown_write,
    .want_read = pg__ms_want_read,
    .want_write = pg__ms_want_write,
    .close = pg__ms_close,
    .get_extra_info = NULL,
};

int pg_manual_stream_new(pg_host *host, unsigned flags, pg_protocol_factory factory, void *arg,
                         pg_manual_stream **out)
{
    if (out == NULL)
        return -EINVAL;
    pg_manual_stream *ms = calloc(1, sizeof *ms);
    if (ms == NULL)
        return -ENOMEM;
    ms->capacity = PG__MANUAL_DEFAULT_CAPACITY;
    int r = pg_stream_new(host, &pg__manual_stream_ops, ms, flags, factory, arg, &ms->transport);
    if (r < 0) {
        free(ms);
        return r;
    }
    *out = ms;
    return 0;
}

void pg_manual_stream_free(pg_manual_stream *ms)
{
    if (ms == NULL)
        return;
    if (!ms->closed) {
        /* Still running: abort it; connection_lost comes at the next run. */
        ms->free_on_close = true;
        pg_stream_fail(ms->transport, 0);
        return;
    }
    free(ms->out);
    free(ms);
}

pg_transport *pg_manual_stream_transport(pg_manual_stream *ms)
{
    return ms->transport;
}

size_t pg_manual_stream_feed(pg_manual_stream *ms, const void *data, size_t len)
{
    if (ms->closed || len == 0)
        return len;
    if (!ms->reading)
        return 0;
    return pg_stream_read(ms->transport, data, len);
}

void pg_manual_stream_feed_eof(pg_manual_stream *ms)
{
    if (!ms->closed)
        pg_stream_read_eof(ms->transport);
}

void pg_manual_stream_fail(pg_manual_stream *ms, int error)
{
    if (!ms->closed)
        pg_stream_fail(ms->transport, error);
}

bool pg_manual_stream_wants_read(const pg_manual_stream *ms)
{
    return ms->reading;
}

const uint8_t *pg_manual_stream_output(const pg_manual_stream *ms, size_t *len)
{
    *len = pg__ms_pending(ms);
    return *len > 0 ? ms->out + ms->out_head : NULL; /* out may be NULL: no arithmetic on it */
}

/* Room in the output: the core may send what it buffered. */
static void pg__ms_room(pg_manual_stream *ms)
{
    if (ms->writing && !ms->closed && pg__ms_pending(ms) < ms->capacity)
        pg_stream_writable(ms->transport);
}

void pg_manual_stream_consume(pg_manual_stream *ms, size_t n)
{
    assert(n <= pg__ms_pending(ms));
    if (n > pg__ms_pending(ms))
        n = pg__ms_pending(ms);
    ms->out_head += n;
    if (ms->out_head == ms->out_len)
        ms->out_head = ms->out_len = 0;
    if (n > 0)
        pg__ms_room(ms);
}

void pg_manual_stream_set_capacity(pg_manual_stream *ms, size_t capacity)
{
    ms->capacity = capacity;
    pg__ms_room(ms);
}

void pg_manual_stream_set_sender(pg_manual_stream *ms, pg_manual_sender sender, void *arg)
{
    ms->sender = sender;
    ms->sender_arg = arg;
}

bool pg_manual_stream_wants_write(const pg_manual_stream *ms)
{
    return ms->writing;
}

void pg_manual_stream_writable(pg_manual_stream *ms)
{
    if (ms->writing && !ms->closed)
        pg_stream_writable(ms->transport);
}

bool pg_manual_stream_output_shut(const pg_manual_stream *ms)
{
    return ms->shut && pg__ms_pending(ms) == 0;
}

bool pg_manual_stream_closed(const pg_manual_stream *ms)
{
    return ms->closed;
}

/* ---- a datagram endpoint: the output is the driver's "send buffer" ------- */

#define PG__MANUAL_DEFAULT_DATAGRAMS 64

struct pg_manual_datagram {
    pg_datagram_transport *transport; /* NULL once closed */
    pg__dgram_run out;                /* datagrams sent, not yet consumed */
    size_t capacity;                  /* datagrams out holds */
    int send_error;                   /* the next send fails with it */
    bool reading;
    bool writing; /* the core waits for room */
    bool closed;
    bool free_on_close;
};

static int pg__md_send(void *self, const pg_datagram_out *msgs, int n)
{
    pg_manual_datagram *md = self;
    if (md->send_error != 0) {
        int error = md->send_error;
        md->send_error = 0;
        return error;
    }
    int i = 0;
    for (; i < n && md->out.count < md->capacity; i++) {
        int r = pg__run_push(&md->out, msgs[i].data, msgs[i].len, msgs[i].addr, msgs[i].addrlen, 0);
        if (r < 0)
            return i > 0 ? i : r;
    }
    return i;
}

static int pg__md_want_read(void *self, bool on)
{
    ((pg_manual_datagram *)self)->reading = on;
    return 0;
}

static int pg__md_want_write(void *self, bool on)
{
    ((pg_manual_datagram *)self)->writing = on;
    return 0;
}

static void pg__md_close(void *self)
{
    pg_manual_datagram *md = self;
    md->transport = NULL;
    md->reading = md->writing = false;
    md->closed = true;
    if (md->free_on_close) {
        pg__run_clear(&md->out);
        free(md);
    }
}

static const pg_datagram_driver_ops pg__manual_datagram_ops = {
    .send = pg__md_send,
    .want_read = pg__md_want_read,
    .want_write = pg__md_want_write,
    .close = pg__md_close,
    .get_extra_info = NULL,
};

int pg_manual_datagram_new(pg_host *host, const struct sockaddr *peer, socklen_t peerlen,
                           pg_datagram_protocol_factory factory, void *arg, pg_manual_datagram **out)
{
    if (out == NULL)
        return -EINVAL;
    pg_manual_datagram *md = calloc(1, sizeof *md);
    if (md == NULL)
        return -ENOMEM;
    md->capacity = PG__MANUAL_DEFAULT_DATAGRAMS;
    int r = pg_datagram_new(host, &pg__manual_datagram_ops, md, peer, peerlen, factory, arg, &md->transport);
    if (r < 0) {
        free(md);
        return r;
    }
    *out = md;
    return 0;
}

void pg_manual_datagram_free(pg_manual_datagram *md)
{
    if (md == NULL)
        return;
    if (!md->closed) {
        /* Still running: abort it; connection_lost comes at the next run. */
        md->free_on_close = true;
        pg_datagram_fail(md->transport, 0);
        return;
    }
    pg__run_clear(&md->out);
    free(md);
}

pg_datagram_transport *pg_manual_datagram_transport(pg_manual_datagram *md)
{
    return md->transport;
}

void pg_manual_datagram_feed(pg_manual_datagram *md, const void *data, size_t len, const struct sockaddr *addr,
                             socklen_t addrlen)
{
    if (!md->closed)
        pg_datagram_received(md->transport, data, len, addr, addrlen);
}

void pg_manual_datagram_feed_error(pg_manual_datagram *md, int error)
{
    if (!md->closed && error < 0)
        pg_datagram_receive_error(md->transport, error);
}

void pg_manual_datagram_fail(pg_manual_datagram *md, int error)
{
    if (!md->closed)
        pg_datagram_fail(md->transport, error);
}

bool pg_manual_datagram_wants_read(const pg_manual_datagram *md)
{
    return md->reading;
}

const uint8_t *pg_manual_datagram_output(const pg_manual_datagram *md, size_t *len, const struct sockaddr **addr,
                                         socklen_t *addrlen)
{
    if (md->out.count == 0) {
        *len = 0;
        *addr = NULL;
        *addrlen = 0;
        return NULL;
    }
    pg__dgram_view v;
    pg__run_peek(&md->out, md->out.head, &v);
    *len = v.len;
    *addr = v.addr;
    *addrlen = v.addrlen;
    return v.data;
}

size_t pg_manual_datagram_output_count(const pg_manual_datagram *md)
{
    return md->out.count;
}

/* Room in the output: the core may send what it queued. */
static void pg__md_room(pg_manual_datagram *md)
{
    /* The core sends a bounded batch per writable event: again while room
     * is left and datagrams went. */
    while (md->writing && !md->closed && md->out.count < md->capacity) {
        size_t before = md->out.count;
        pg_datagram_writable(md->transport);
        if (md->out.count == before)
            break;
    }
}

void pg_manual_datagram_consume(pg_manual_datagram *md)
{
    assert(md->out.count > 0);
    if (md->out.count == 0)
        return;
    pg__dgram_view v;
    pg__run_peek(&md->out, md->out.head, &v);
    pg__run_pop(&md->out, v.size);
    pg__md_room(md);
}

void pg_manual_datagram_set_capacity(pg_manual_datagram *md, size_t datagrams)
{
    md->capacity = datagrams;
    pg__md_room(md);
}

void pg_manual_datagram_fail_next_send(pg_manual_datagram *md, int error)
{
    md->send_error = error < 0 ? error : -EIO;
}

bool pg_manual_datagram_wants_write(const pg_manual_datagram *md)
{
    return md->writing;
}

bool pg_manual_datagram_closed(const pg_manual_datagram *md)
{
    return md->closed;
}

/* ---- a process: its pipes are manual streams ------------------------------ */

#define PG__MANUAL_SIGNALS 16

struct pg_manual_process {
    pg_subprocess *proc; /* held until pg_manual_process_free */
    pg_manual_stream *pipes[3];
    int signals[PG__MANUAL_SIGNALS];
    size_t nsignals;
    bool closed;
};

static int pg__mp_send_signal(void *self, int signo)
{
    pg_manual_process *mp = self;
    if (mp->nsignals < PG__MANUAL_SIGNALS)
        mp->signals[mp->nsignals] = signo;
    mp->nsignals++;
    return 0;
}

static void pg__mp_close(void *self)
{
    ((pg_manual_process *)self)->closed = true;
}

static const pg_process_driver_ops pg__manual_process_ops = {
    .send_signal = pg__mp_send_signal,
    .close = pg__mp_close,
    .get_extra_info = NULL,
};

static void pg__mp_free_pipes(pg_manual_process *mp)
{
    for (int fd = 0; fd < 3; fd++) {
        if (mp->pipes[fd] != NULL) {
            free(mp->pipes[fd]->out);
            free(mp->pipes[fd]);
        }
    }
}

int pg_manual_process_new(pg_host *host, pid_t pid, unsigned pipes, const pg_subprocess_protocol *protocol,
                          pg_manual_process **out)
{
    if (out == NULL || (pipes & ~7u) != 0)
        return -EINVAL;
    pg_manual_process *mp = calloc(1, sizeof *mp);
    if (mp == NULL)
        return -ENOMEM;
    void *drivers[3] = { NULL, NULL, NULL };
    for (int fd = 0; fd < 3; fd++) {
        if (!(pipes & PG_MANUAL_PIPE(fd)))
            continue;
        mp->pipes[fd] = calloc(1, sizeof *mp->pipes[fd]);
        if (mp->pipes[fd] == NULL) {
            pg__mp_free_pipes(mp);
            free(mp);
            return -ENOMEM;
        }
        mp->pipes[fd]->capacity = PG__MANUAL_DEFAULT_CAPACITY;
        drivers[fd] = mp->pipes[fd];
    }
    int r = pg_subprocess_new(host, &pg__manual_process_ops, mp, pid, &pg__manual_stream_ops, drivers, protocol,
                              &mp->proc);
    if (r < 0) {
        pg__mp_free_pipes(mp);
        free(mp);
        return r;
    }
    for (int fd = 0; fd < 3; fd++)
        if (mp->pipes[fd] != NULL)
            mp->pipes[fd]->transport = pg_subprocess_get_pipe_transport(mp->proc, fd);
    *out = mp;
    return 0;
}

void pg_manual_process_free(pg_manual_process *mp)
{
    if (mp == NULL)
        return;
    assert(mp->closed && "pg_manual_process_free before connection_lost");
    pg_subprocess_release(mp->proc);
    pg__mp_free_pipes(mp); /* closed with the transport: each pipe's connection_lost came first */
    free(mp);
}

pg_subprocess *pg_manual_process_transport(pg_manual_process *mp)
{
    return mp->proc;
}

pg_manual_stream *pg_manual_process_pipe(pg_manual_process *mp, int fd)
{
    return fd >= 0 && fd <= 2 ? mp->pipes[fd] : NULL;
}

void pg_manual_process_exit(pg_manual_process *mp, int returncode)
{
    pg_subprocess_exited(mp->proc, returncode);
}

size_t pg_manual_process_signals(const pg_manual_process *mp, const int **signals)
{
    *signals = mp->signals;
    return mp->nsignals;
}

bool pg_manual_process_closed(const pg_manual_process *mp)
{
    return mp->closed;
}
