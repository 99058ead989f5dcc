/* The built-in loop as a host of the core: deferred calls are the ready
 * queue's reserved slots, so they keep asyncio's order with every other
 * call_soon of the loop. */
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

static const pg_host_ops pg__loop_host_ops = {
    .reserve = pg__lh_reserve,
    .unreserve = pg__lh_unreserve,
    .defer = pg__lh_defer,
    .now_ms = pg__lh_now_ms,
};

void pg__loop_host_init(pg_loop *loop)
{
    pg__host_init(&loop->host, &pg__loop_host_ops, loop);
}
