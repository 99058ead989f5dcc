/* For the libuv tests: turning a loop one iteration at a time, bounded. A
 * fixture has a uv_loop_t `loop` and an unreferenced uv_timer_t `guard`
 * (uv_guard_init) that only wakes a wait that would hang. */
#ifndef PG_UV_TESTUTIL_H
#define PG_UV_TESTUTIL_H

#include <uv.h>

#include "testutil.h"

static inline void uv_guard_fired(uv_timer_t *timer)
{
    (void)timer;
}

static inline void uv_guard_init(uv_loop_t *loop, uv_timer_t *guard)
{
    uv_timer_init(loop, guard);
    uv_unref((uv_handle_t *)guard);
}

/* One libuv iteration that may wait for an event (at most the guard's 5 s:
 * never, when the test is right). */
static inline void uv_turn(uv_loop_t *loop, uv_timer_t *guard)
{
    uv_timer_start(guard, uv_guard_fired, 5000, 0);
    uv_run(loop, UV_RUN_ONCE);
}

#define UV_TURN(f) uv_turn(&(f)->loop, &(f)->guard)

/* Turns until cond holds; fails the test after too many. */
#define UV_UNTIL(f, cond)                \
    do {                                 \
        int uv_i_ = 0;                   \
        while (!(cond)) {                \
            assert_true(uv_i_++ < 1000); \
            UV_TURN(f);                  \
        }                                \
    } while (0)

#endif
