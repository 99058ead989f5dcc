/* The event loop: single-threaded, asyncio-like, on io_uring or epoll.
 *
 * All functions return 0 or a negative errno value. Nothing here prints or
 * exits. A loop and everything attached to it must be used from one thread;
 * other threads may only call pg_loop_call_soon_threadsafe() and
 * pg_loop_stop() (docs/runtime.md, "Threads"). */
#ifndef PROTOGEN_LOOP_H
#define PROTOGEN_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protogen/timer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pg_loop pg_loop;
typedef void (*pg_callback_fn)(void *arg);

/* Creates a loop. Its backend is epoll unless the environment variable
 * PROTOGEN_BACKEND says otherwise (docs/runtime.md, Backends): auto is
 * io_uring when the kernel allows it (and libprotogen was built with
 * liburing), epoll otherwise, falling back silently; epoll or io_uring
 * forces one: a forced io_uring that is unavailable is an error (the
 * kernel's, e.g. -ENOSYS or -EPERM; -ENOSYS when built without liburing),
 * another value is -EINVAL. */
int pg_loop_new(pg_loop **out);

/* The backend the loop runs on: "io_uring" or "epoll" (NULL for a NULL
 * loop). A static string. */
const char *pg_loop_backend(const pg_loop *loop);

/* Runs until pg_loop_stop() is called. Returns 0 when stopped; -EBUSY,
 * doing nothing, when called from one of the loop's callbacks (asyncio:
 * "This event loop is already running"). */
int pg_loop_run(pg_loop *loop);

/* Runs one iteration: waits at most timeout_ms for I/O (-1: until something
 * happens; 0: poll), then runs due timers and ready callbacks. -EBUSY, doing
 * nothing, from one of the loop's callbacks. */
int pg_loop_run_once(pg_loop *loop, int timeout_ms);

/* Nesting the loop in another one (libuv's uv_backend_fd/uv_backend_timeout):
 * instead of pg_loop_run(), the outer loop (poll, select, another epoll, a
 * GUI toolkit's fd watch) waits until pg_loop_backend_fd() is readable, at
 * most pg_loop_backend_timeout() milliseconds, then calls
 * pg_loop_run_once(loop, 0); again. No tick, no busy polling: I/O and timers
 * (a timerfd in the loop's epoll set, made on the first call) make the fd
 * readable.
 *
 *     int fd = pg_loop_backend_fd(loop);
 *     for (;;) {
 *         struct pollfd p = { .fd = fd, .events = POLLIN };
 *         poll(&p, 1, pg_loop_backend_timeout(loop));    // with the outer loop's own fds
 *         pg_loop_run_once(loop, 0);
 *     }
 *
 * The fd (the loop's epoll fd; on io_uring an eventfd its ring signals) belongs to the loop: watch it for reading,
 * never read, close or change it. A negative errno when the timerfd cannot
 * be made. */
int pg_loop_backend_fd(pg_loop *loop);

/* Milliseconds until the loop has work: 0 when callbacks are ready (or a
 * timer is due), the time to the next timer, -1 when there is neither (wait
 * for the fd alone; -EINVAL for a NULL loop). Callbacks queued from outside
 * the loop (pg_loop_call_soon between iterations) do not make the fd
 * readable: ask again after them. */
int pg_loop_backend_timeout(pg_loop *loop);

/* Makes pg_loop_run() return after the current iteration, waking a loop
 * that waits for I/O (an eventfd write). Safe from callbacks, from other
 * threads (while the loop is not closed), and async-signal-safe: it may be
 * called from a plain sigaction() handler. */
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

/* asyncio's call_soon_threadsafe: schedules cb(arg) from any thread (the
 * loop's own too), to run on the loop's thread. A loop waiting for I/O is
 * woken (its wake-up eventfd, as for pg_loop_stop). Callbacks queued from
 * other threads run in the order they were queued, in the iteration the
 * wake-up ends, among its I/O handlers (one that queues another makes it
 * run in a later iteration); those still queued when pg_loop_close()
 * closes the loop run inside the close. 0; -ENOMEM; -EBADF once
 * pg_loop_close() has begun to close the loop (asyncio: RuntimeError
 * "Event loop is closed"): a thread racing with the close gets an error,
 * never a use of freed memory. (A pointer to a closed loop that malloc gave
 * to a new loop reaches the new one: hand threads the loop's life too.)
 * Not async-signal-safe (it takes locks and may allocate): from a signal
 * handler, pg_loop_stop() or pg_loop_add_signal_handler(). */
int pg_loop_call_soon_threadsafe(pg_loop *loop, pg_callback_fn cb, void *arg);

/* Cancels what pg_loop_call_soon(loop, cb, arg) scheduled and has not run yet
 * (asyncio's Handle.cancel): every such call of cb(arg) still waiting is
 * dropped, also from inside a callback of the same iteration. 0, or -ENOENT
 * when none was waiting (it ran already, or was never scheduled). */
int pg_loop_call_soon_cancel(pg_loop *loop, pg_callback_fn cb, void *arg);

/* The loop's monotonic clock, in milliseconds (asyncio's loop.time()). */
uint64_t pg_loop_time_ms(const pg_loop *loop);

/* Schedules cb(arg) in delay_ms milliseconds (asyncio's call_later) on a
 * caller-owned pg_timer (protogen/timer.h: init, cancel, is_active). A timer
 * that is already active is rescheduled. Timers due at the same time fire in
 * the order they were scheduled. */
int pg_loop_call_later(pg_loop *loop, pg_timer *timer, uint64_t delay_ms,
                       pg_callback_fn cb, void *arg);

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
