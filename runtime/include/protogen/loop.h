/* The event loop: epoll-based, single-threaded, asyncio-like.
 *
 * All functions return 0 or a negative errno value. Nothing here prints or
 * exits. A loop and everything attached to it must be used from one thread. */
#ifndef PROTOGEN_LOOP_H
#define PROTOGEN_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pg_loop pg_loop;
typedef void (*pg_callback_fn)(void *arg);

/* Creates a loop. */
int pg_loop_new(pg_loop **out);

/* Runs until pg_loop_stop() is called. Returns 0 when stopped; -EBUSY,
 * doing nothing, when called from one of the loop's callbacks (asyncio:
 * "This event loop is already running"). */
int pg_loop_run(pg_loop *loop);

/* Runs one iteration: waits at most timeout_ms for I/O (-1: until something
 * happens; 0: poll), then runs due timers and ready callbacks. -EBUSY, doing
 * nothing, from one of the loop's callbacks. */
int pg_loop_run_once(pg_loop *loop, int timeout_ms);

/* Makes pg_loop_run() return after the current iteration, waking a loop
 * that waits for I/O (an eventfd write). Safe from callbacks, and
 * async-signal-safe: it may be called from a plain sigaction() handler. */
void pg_loop_stop(pg_loop *loop);

/* Cancels the connects still pending (their done gets -ECANCELED, as
 * asyncio.run cancels the tasks left; a lookup still running is abandoned,
 * its helper thread ends on its own), runs the callbacks that are still
 * queued, then frees the loop, its signal handlers (the signals are
 * unblocked) and closed servers; active timers are left inactive. 0 when the
 * loop is gone (NULL: a no-op). -EBUSY, with the loop and everything on it
 * left intact, when called from one of the loop's callbacks, or while a
 * server, transport or child process is still open: close those, let the
 * loop run until their connection_lost has come, and close again. */
int pg_loop_close(pg_loop *loop);

/* Schedules cb(arg) for the next iteration, where it runs before that
 * iteration's I/O handlers and timers (asyncio's order). Callbacks run in the
 * order they were scheduled. No allocation in the steady state. */
int pg_loop_call_soon(pg_loop *loop, pg_callback_fn cb, void *arg);

/* The loop's monotonic clock, in milliseconds (asyncio's loop.time()). */
uint64_t pg_loop_time_ms(const pg_loop *loop);

/* A one-shot timer. The caller owns the memory (embed it in your own
 * struct); it must stay valid while the timer is active. Fields are private. */
typedef struct pg_timer {
    pg_loop *loop_;
    pg_callback_fn cb_;
    void *arg_;
    uint64_t due_ms_;
    uint64_t seq_;
    size_t heap_index_; /* SIZE_MAX when not scheduled */
} pg_timer;

/* Prepares a timer for use; call once before pg_loop_call_later(). */
void pg_timer_init(pg_timer *timer);

/* Schedules cb(arg) in delay_ms milliseconds (asyncio's call_later). A timer
 * that is already active is rescheduled. Timers due at the same time fire in
 * the order they were scheduled. */
int pg_loop_call_later(pg_loop *loop, pg_timer *timer, uint64_t delay_ms,
                       pg_callback_fn cb, void *arg);

/* Cancels the timer if it is active; a no-op otherwise. */
void pg_timer_cancel(pg_timer *timer);

/* True while the timer is scheduled and has not fired or been cancelled. */
bool pg_timer_is_active(const pg_timer *timer);

/* Calls cb(arg) from the loop (not from a signal context) whenever signal
 * signo arrives (asyncio's add_signal_handler). The signal is blocked in the
 * calling thread and read from a signalfd. One handler per signal. */
int pg_loop_add_signal_handler(pg_loop *loop, int signo, pg_callback_fn cb, void *arg);

/* Removes the handler and unblocks the signal. -ENOENT if none was set. */
int pg_loop_remove_signal_handler(pg_loop *loop, int signo);

#ifdef __cplusplus
}
#endif
#endif
