/* Timers: a binary min-heap of caller-owned pg_timer, ordered by (due, seq)
 * so that timers due at the same time fire in the order they were scheduled.
 * Each timer keeps its heap index, so cancelling is O(log n).
 *
 * Every active timer holds one reserved ready-queue slot: moving it to the
 * ready queue when due can never fail. */
#include <stdlib.h>

#include "internal.h"

static bool pg__timer_before(const pg_timer *a, const pg_timer *b)
{
    return a->due_ms_ < b->due_ms_ || (a->due_ms_ == b->due_ms_ && a->seq_ < b->seq_);
}

static void pg__heap_place(pg__timer_heap *h, size_t i, pg_timer *t)
{
    h->items[i] = t;
    t->heap_index_ = i;
}

static void pg__heap_up(pg__timer_heap *h, size_t i)
{
    pg_timer *t = h->items[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!pg__timer_before(t, h->items[parent]))
            break;
        pg__heap_place(h, i, h->items[parent]);
        i = parent;
    }
    pg__heap_place(h, i, t);
}

static void pg__heap_down(pg__timer_heap *h, size_t i)
{
    pg_timer *t = h->items[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= h->len)
            break;
        if (child + 1 < h->len && pg__timer_before(h->items[child + 1], h->items[child]))
            child++;
        if (!pg__timer_before(h->items[child], t))
            break;
        pg__heap_place(h, i, h->items[child]);
        i = child;
    }
    pg__heap_place(h, i, t);
}

/* Removes the item at index i. */
static void pg__heap_remove(pg__timer_heap *h, size_t i)
{
    assert(i < h->len);
    h->items[i]->heap_index_ = SIZE_MAX;
    pg_timer *last = h->items[--h->len];
    if (i == h->len)
        return;
    pg__heap_place(h, i, last);
    if (i > 0 && pg__timer_before(last, h->items[(i - 1) / 2]))
        pg__heap_up(h, i);
    else
        pg__heap_down(h, i);
}

static void pg__timer_fire(void *arg)
{
    pg_timer *timer = arg;
    assert(timer->heap_index_ == PG__TIMER_QUEUED);
    /* Inactive before the callback, so that it may reschedule itself. */
    timer->heap_index_ = SIZE_MAX;
    timer->cb_(timer->arg_);
}

void pg_timer_init(pg_timer *timer)
{
    timer->loop_ = NULL;
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
    pg_loop *loop = timer->loop_;
    if (timer->heap_index_ == PG__TIMER_QUEUED) {
        /* Already moved to the ready queue: its slot turns into a no-op. */
        pg__loop_cancel_queued(loop, pg__timer_fire, timer);
        timer->heap_index_ = SIZE_MAX;
        return;
    }
    pg__heap_remove(&loop->timers, timer->heap_index_);
    pg__loop_unreserve(loop);
}

int pg_loop_call_later(pg_loop *loop, pg_timer *timer, uint64_t delay_ms, pg_callback_fn cb, void *arg)
{
    if (loop == NULL || timer == NULL || cb == NULL)
        return -EINVAL;
    pg_timer_cancel(timer);

    pg__timer_heap *h = &loop->timers;
    if (h->len == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 16;
        pg_timer **items = realloc(h->items, cap * sizeof *items);
        if (items == NULL)
            return -ENOMEM;
        h->items = items;
        h->cap = cap;
    }
    int r = pg__loop_reserve(loop);
    if (r < 0)
        return r;

    timer->loop_ = loop;
    timer->cb_ = cb;
    timer->arg_ = arg;
    uint64_t now = pg_loop_time_ms(loop);
    timer->due_ms_ = delay_ms > UINT64_MAX - now ? UINT64_MAX : now + delay_ms;
    timer->seq_ = h->seq++;
    h->items[h->len] = timer;
    pg__heap_up(h, h->len++);
    return 0;
}

bool pg__timers_next(const pg_loop *loop, uint64_t *due_ms)
{
    if (loop->timers.len == 0)
        return false;
    *due_ms = loop->timers.items[0]->due_ms_;
    return true;
}

size_t pg__timers_queue_due(pg_loop *loop)
{
    pg__timer_heap *h = &loop->timers;
    size_t n = 0;
    for (; h->len > 0 && h->items[0]->due_ms_ <= loop->now_ms; n++) {
        pg_timer *timer = h->items[0];
        pg__heap_remove(h, 0);
        timer->heap_index_ = PG__TIMER_QUEUED;
        pg__loop_call_soon_reserved(loop, pg__timer_fire, timer);
    }
    return n;
}

void pg__timers_free(pg_loop *loop)
{
    /* Timers still active must stay valid (see loop.h): mark them inactive so
     * that a later pg_timer_cancel() does not reach the freed loop. */
    for (size_t i = 0; i < loop->timers.len; i++)
        loop->timers.items[i]->heap_index_ = SIZE_MAX;
    free(loop->timers.items);
    loop->timers.items = NULL;
    loop->timers.len = loop->timers.cap = 0;
}
