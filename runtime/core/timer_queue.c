/* Timers for every host (protogen/timer.h, core.h): the caller-owned record,
 * the host-table entry points and pg_timer_queue, a binary min-heap ordered
 * by (due, seq) so that timers due at the same time run in start order. Each
 * timer keeps its heap index: cancelling is O(log n).
 *
 * Due timers are not called from the queue: they move to the queue's list
 * of due timers, and one deferred call through the host runs that list,
 * behind what was deferred before (asyncio moves due timers to the end of
 * its ready queue). Cancelling a timer on that list empties its slot, so a
 * timer cancelled after it fell due is never delivered (gen_statem's rule),
 * and the deferred call never touches a record its owner may have freed. */
#include <stdlib.h>
#include <string.h>

#include "core_internal.h"

/* heap_index_ of a due timer, on the due list at position seq_. */
#define PG__TIMER_DUE (SIZE_MAX - 1)

static bool pg__timer_before(const pg_timer *a, const pg_timer *b)
{
    return a->due_ms_ < b->due_ms_ || (a->due_ms_ == b->due_ms_ && a->seq_ < b->seq_);
}

static void pg__heap_place(pg_timer_queue *q, size_t i, pg_timer *t)
{
    q->items_[i] = t;
    t->heap_index_ = i;
}

static void pg__heap_up(pg_timer_queue *q, size_t i)
{
    pg_timer *t = q->items_[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!pg__timer_before(t, q->items_[parent]))
            break;
        pg__heap_place(q, i, q->items_[parent]);
        i = parent;
    }
    pg__heap_place(q, i, t);
}

static void pg__heap_down(pg_timer_queue *q, size_t i)
{
    pg_timer *t = q->items_[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= q->len_)
            break;
        if (child + 1 < q->len_ && pg__timer_before(q->items_[child + 1], q->items_[child]))
            child++;
        if (!pg__timer_before(q->items_[child], t))
            break;
        pg__heap_place(q, i, q->items_[child]);
        i = child;
    }
    pg__heap_place(q, i, t);
}

/* Takes the item at index i out of the heap (its index: SIZE_MAX). */
static void pg__heap_remove(pg_timer_queue *q, size_t i)
{
    assert(i < q->len_);
    q->items_[i]->heap_index_ = SIZE_MAX;
    pg_timer *last = q->items_[--q->len_];
    if (i == q->len_)
        return;
    pg__heap_place(q, i, last);
    if (i > 0 && pg__timer_before(last, q->items_[(i - 1) / 2]))
        pg__heap_up(q, i);
    else
        pg__heap_down(q, i);
}

/* ---- the record --------------------------------------------------------- */

void pg_timer_init(pg_timer *timer)
{
    timer->host_ = NULL;
    timer->cb_ = NULL;
    timer->arg_ = NULL;
    timer->due_ms_ = 0;
    timer->seq_ = 0;
    timer->heap_index_ = SIZE_MAX;
}

bool pg_timer_is_active(const pg_timer *timer)
{
    return timer->heap_index_ != SIZE_MAX;
}

void pg_timer_cancel(pg_timer *timer)
{
    if (timer->heap_index_ == SIZE_MAX)
        return;
    pg_host *host = timer->host_;
    host->ops->timer_cancel(host->self, timer);
}

int pg_host_timer_start(pg_host *host, pg_timer *timer, uint64_t delay_ms, pg_callback_fn cb, void *arg)
{
    if (host == NULL || timer == NULL || cb == NULL)
        return -EINVAL;
    if (host->ops->timer_start == NULL)
        return -ENOTSUP;
    pg_timer_cancel(timer);
    timer->host_ = host;
    timer->cb_ = cb;
    timer->arg_ = arg;
    return host->ops->timer_start(host->self, timer, delay_ms);
}

/* ---- the queue ---------------------------------------------------------- */

void pg_timer_queue_init(pg_timer_queue *q)
{
    memset(q, 0, sizeof *q);
}

/* Room for n items in *items (capacity *cap). */
static int pg__grow(pg_timer ***items, size_t *cap, size_t n)
{
    if (n <= *cap)
        return 0;
    size_t c = *cap ? *cap : 16;
    while (c < n)
        c *= 2;
    if (c > SIZE_MAX / sizeof(pg_timer *))
        return -ENOMEM;
    pg_timer **p = realloc(*items, c * sizeof *p);
    if (p == NULL)
        return -ENOMEM;
    *items = p;
    *cap = c;
    return 0;
}

int pg_timer_queue_add(pg_timer_queue *q, pg_timer *timer, uint64_t due_ms)
{
    assert(timer->heap_index_ == SIZE_MAX && timer->host_ != NULL);
    /* Room now for every queued timer to fall due at once: expiring cannot fail. */
    int r = pg__grow(&q->items_, &q->cap_, q->len_ + 1);
    if (r == 0)
        r = pg__grow(&q->due_, &q->due_cap_, q->due_len_ + q->len_ + 1);
    if (r == 0)
        r = pg__host_reserve(timer->host_);
    if (r < 0)
        return r;
    timer->due_ms_ = due_ms;
    timer->seq_ = q->seq_++;
    q->items_[q->len_] = timer;
    pg__heap_up(q, q->len_++);
    return 0;
}

void pg_timer_queue_remove(pg_timer_queue *q, pg_timer *timer)
{
    if (timer->heap_index_ == SIZE_MAX)
        return;
    if (timer->heap_index_ == PG__TIMER_DUE) {
        q->due_[timer->seq_] = NULL; /* the due list's run skips it */
        timer->heap_index_ = SIZE_MAX;
        return;
    }
    assert(timer->heap_index_ < q->len_ && q->items_[timer->heap_index_] == timer);
    pg__heap_remove(q, timer->heap_index_);
    pg__host_unreserve(timer->host_);
}

bool pg_timer_queue_next(const pg_timer_queue *q, uint64_t *due_ms)
{
    return pg__timer_queue_next(q, due_ms);
}

/* The deferred call: runs the due list in order. */
static void pg__timers_run_due(void *arg)
{
    pg_timer_queue *q = arg;
    for (size_t i = 0; i < q->due_len_; i++) {
        pg_timer *timer = q->due_[i];
        if (timer == NULL)
            continue; /* cancelled after it fell due */
        /* Inactive before the callback, so that it may restart itself. */
        timer->heap_index_ = SIZE_MAX;
        timer->cb_(timer->arg_);
    }
    q->due_len_ = 0;
    q->due_queued_ = false;
}

size_t pg_timer_queue_expire(pg_timer_queue *q, uint64_t now_ms)
{
    size_t deferred = 0;
    while (q->len_ > 0 && q->items_[0]->due_ms_ <= now_ms) {
        pg_timer *timer = q->items_[0];
        pg__heap_remove(q, 0);
        timer->heap_index_ = PG__TIMER_DUE;
        timer->seq_ = q->due_len_;
        q->due_[q->due_len_++] = timer;
        /* The first due timer's reservation carries the one deferred call
         * (while it waits, later due timers join its list); the others' are
         * given back. */
        if (!q->due_queued_) {
            q->due_queued_ = true;
            pg__host_defer(timer->host_, pg__timers_run_due, q);
            deferred = 1;
        } else {
            pg__host_unreserve(timer->host_);
        }
    }
    return deferred;
}

void pg_timer_queue_free(pg_timer_queue *q)
{
    /* Timers still queued must stay valid (timer.h): inactive, a later
     * pg_timer_cancel() does not reach the host. */
    for (size_t i = 0; i < q->len_; i++) {
        q->items_[i]->heap_index_ = SIZE_MAX;
        pg__host_unreserve(q->items_[i]->host_);
    }
    for (size_t i = 0; i < q->due_len_; i++)
        if (q->due_[i] != NULL)
            q->due_[i]->heap_index_ = SIZE_MAX;
    free(q->items_);
    free(q->due_);
    pg_timer_queue_init(q);
}
