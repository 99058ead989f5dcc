/* The built-in loop as a host of the core: deferred calls are the ready
 * queue's reserved slots, so they keep asyncio's order with every other
 * call_soon of the loop; timers are the loop's timer queue, which the
 * iteration expires (loop.c). */
#include "internal.h"

static int pg__lh_reserve(void *self)
{
    return pg__loop_reserve(self);
}

static void pg__lh_unreserve(void *self)
{
    pg__loop_unreserve(self);
}

static void pg__lh_defer(void *self, pg_callback_fn fn, void *arg)
{
    pg__loop_call_soon_reserved(self, fn, arg);
}

static uint64_t pg__lh_now_ms(void *self)
{
    return pg_loop_time_ms(self);
}

static int pg__lh_timer_start(void *self, pg_timer *timer, uint64_t delay_ms)
{
    pg_loop *loop = self;
    uint64_t now = pg_loop_time_ms(loop);
    int r = pg_timer_queue_add(&loop->timers, timer, delay_ms > UINT64_MAX - now ? UINT64_MAX : now + delay_ms);
    if (r == 0 && loop->timerfd.fd >= 0)
        pg__loop_nest_sync(loop);
    return r;
}

static void pg__lh_timer_cancel(void *self, pg_timer *timer)
{
    /* A nested loop's timerfd may stay armed for it: one early wake-up. */
    pg_timer_queue_remove(&((pg_loop *)self)->timers, timer);
}

static const pg_host_ops pg__loop_host_ops = {
    .reserve = pg__lh_reserve,
    .unreserve = pg__lh_unreserve,
    .defer = pg__lh_defer,
    .now_ms = pg__lh_now_ms,
    .timer_start = pg__lh_timer_start,
    .timer_cancel = pg__lh_timer_cancel,
};

void pg__loop_host_init(pg_loop *loop)
{
    pg__host_init(&loop->host, &pg__loop_host_ops, loop);
}

int pg_loop_call_later(pg_loop *loop, pg_timer *timer, uint64_t delay_ms, pg_callback_fn cb, void *arg)
{
    if (loop == NULL)
        return -EINVAL;
    return pg_host_timer_start(&loop->host, timer, delay_ms, cb, arg);
}
