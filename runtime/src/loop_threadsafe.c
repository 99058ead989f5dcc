/* pg_loop_call_soon_threadsafe (asyncio's call_soon_threadsafe): any thread
 * queues a callback for a loop; the loop runs it on its own thread.
 *
 * The queue is the loop's, under its mutex. A call that finds it empty writes
 * the loop's wake-up eventfd (the one pg_loop_stop writes: one way to wake a
 * loop); the loop empties the eventfd, then takes the whole queue at once and
 * runs it outside the lock, so a callback may queue more (they run on the next
 * wake-up, which their call makes). Nothing here allocates on the loop's side:
 * the caller grows the queue, and an allocation failure is its -ENOMEM.
 *
 * A loop's memory is freed by pg_loop_close, and a thread may hold its pointer
 * still. So callers find the loop in a registry of open loops first, under a
 * read lock that pg_loop_close's unregistering waits for: a call made once the
 * close has begun gets -EBADF (asyncio: RuntimeError "Event loop is closed"),
 * never a use after free. */
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"

#define PG__THREADSAFE_INITIAL_CAP 16

static pthread_rwlock_t pg__loops_lock;
static pthread_once_t pg__loops_once = PTHREAD_ONCE_INIT;
static pg_loop *pg__loops; /* the open loops, under pg__loops_lock */

/* Writers first: glibc's default lets a steady stream of callers (readers)
 * hold off pg_loop_new and pg_loop_close for as long as it lasts. */
static void pg__loops_lock_init(void)
{
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&pg__loops_lock, &attr);
    pthread_rwlockattr_destroy(&attr);
}

static void pg__loops_add(pg_loop *loop)
{
    pthread_once(&pg__loops_once, pg__loops_lock_init);
    pthread_rwlock_wrlock(&pg__loops_lock);
    loop->threadsafe.next = pg__loops;
    pg__loops = loop;
    pthread_rwlock_unlock(&pg__loops_lock);
}

static void pg__loops_remove(pg_loop *loop)
{
    pthread_rwlock_wrlock(&pg__loops_lock);
    for (pg_loop **p = &pg__loops; *p != NULL; p = &(*p)->threadsafe.next) {
        if (*p == loop) {
            *p = loop->threadsafe.next;
            break;
        }
    }
    loop->threadsafe.next = NULL;
    pthread_rwlock_unlock(&pg__loops_lock);
}

void pg__threadsafe_init(pg_loop *loop)
{
    pthread_mutex_init(&loop->threadsafe.lock, NULL);
    pg__loops_add(loop);
}

void pg__threadsafe_close(pg_loop *loop)
{
    pg__loops_remove(loop);
}

void pg__threadsafe_reopen(pg_loop *loop)
{
    pg__loops_add(loop);
}

void pg__threadsafe_free(pg_loop *loop)
{
    pg__threadsafe *ts = &loop->threadsafe;
    pthread_mutex_destroy(&ts->lock);
    free(ts->queue);
    free(ts->batch);
}

static void pg__wake(pg_loop *loop)
{
    uint64_t one = 1;
    ssize_t r = write(loop->wake.fd, &one, sizeof one);
    (void)r; /* EAGAIN: the counter is full, the loop is woken anyway */
}

/* Under the loop's mutex: appends cb(arg), writing the eventfd when the
 * queue was empty (a non-empty one has woken the loop already, or will be
 * taken whole by a run under way). */
static int pg__threadsafe_push(pg_loop *loop, pg_callback_fn cb, void *arg)
{
    pg__threadsafe *ts = &loop->threadsafe;
    if (ts->len == ts->cap) {
        size_t cap = ts->cap ? ts->cap * 2 : PG__THREADSAFE_INITIAL_CAP;
        if (cap > SIZE_MAX / sizeof(pg__callback))
            return -ENOMEM;
        pg__callback *q = realloc(ts->queue, cap * sizeof *q);
        if (q == NULL)
            return -ENOMEM;
        ts->queue = q;
        ts->cap = cap;
    }
    ts->queue[ts->len++] = (pg__callback){ cb, arg };
    if (ts->len == 1)
        pg__wake(loop);
    return 0;
}

int pg_loop_call_soon_threadsafe(pg_loop *loop, pg_callback_fn cb, void *arg)
{
    if (loop == NULL || cb == NULL)
        return -EINVAL;
    int r = -EBADF;
    pthread_once(&pg__loops_once, pg__loops_lock_init); /* a loop never made: -EBADF */
    pthread_rwlock_rdlock(&pg__loops_lock);
    pg_loop *l = pg__loops;
    while (l != NULL && l != loop)
        l = l->threadsafe.next;
    if (l != NULL) {
        /* Registered: its close waits for this read lock before it frees. */
        pthread_mutex_lock(&loop->threadsafe.lock);
        r = pg__threadsafe_push(loop, cb, arg);
        pthread_mutex_unlock(&loop->threadsafe.lock);
    }
    pthread_rwlock_unlock(&pg__loops_lock);
    return r;
}

size_t pg__threadsafe_run(pg_loop *loop)
{
    pg__threadsafe *ts = &loop->threadsafe;
    pthread_mutex_lock(&ts->lock);
    /* Swap the queue with the empty batch array: both keep their memory. */
    pg__callback *batch = ts->queue;
    size_t n = ts->len, cap = ts->cap;
    ts->queue = ts->batch;
    ts->cap = ts->batch_cap;
    ts->len = 0;
    pthread_mutex_unlock(&ts->lock);
    ts->batch = batch;
    ts->batch_cap = cap;
    for (size_t i = 0; i < n; i++)
        batch[i].fn(batch[i].arg);
    return n;
}

void pg__threadsafe_rewake(pg_loop *loop)
{
    pg__threadsafe *ts = &loop->threadsafe;
    pthread_mutex_lock(&ts->lock);
    if (ts->len > 0)
        pg__wake(loop);
    pthread_mutex_unlock(&ts->lock);
}
