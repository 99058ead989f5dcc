/* Timers: one-shot, caller-owned records (no allocation per start), started
 * on a host (pg_host_timer_start, core.h) or on the built-in loop
 * (pg_loop_call_later, loop.h). Whichever started it, pg_timer_cancel()
 * cancels it.
 *
 * The rules, the same on every host:
 *   - timers due at the same time run in the order they were started
 *     (asyncio: by deadline, then insertion);
 *   - a timer's callback runs from the host's dispatch, after the deferred
 *     calls queued before it fell due;
 *   - a timer cancelled (or restarted) after it fell due but before its
 *     callback ran is never delivered (Erlang gen_statem's rule): cancelling
 *     is safe anywhere, from inside any callback;
 *   - the timer is inactive when its callback starts, which may restart it. */
#ifndef PROTOGEN_TIMER_H
#define PROTOGEN_TIMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef void (*pg_callback_fn)(void *arg);

struct pg_host;

/* Embed it in your own struct; it must stay valid while the timer is active.
 * Fields are private (a host of one's own keeps its state there through
 * pg_timer_queue, core.h). */
typedef struct pg_timer {
    struct pg_host *host_; /* the host that started it */
    pg_callback_fn cb_;
    void *arg_;
    uint64_t due_ms_;
    uint64_t seq_;
    size_t heap_index_; /* SIZE_MAX when inactive */
} pg_timer;

/* Prepares a timer for use; call once before its first start. */
void pg_timer_init(pg_timer *timer);

/* Cancels the timer if it is active; a no-op otherwise. Safe from inside
 * any callback, the timer's own included. */
void pg_timer_cancel(pg_timer *timer);

/* True from its start until its callback starts or it is cancelled. */
bool pg_timer_is_active(const pg_timer *timer);

#ifdef __cplusplus
}
#endif
#endif
