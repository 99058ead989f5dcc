/* A recording subprocess protocol for the subprocess tests: it asserts
 * asyncio's order on every callback, keeps what each pipe delivered, and logs
 * the events, e.g. "made out1 out2 lost1:ok lost2:ok exited:0 lost:ok". */
#ifndef PG_SUBPROCESS_RECORDER_H
#define PG_SUBPROCESS_RECORDER_H

#include "testutil.h"

typedef struct subrec subrec;

/* Optional hooks, called after the event was recorded. */
typedef struct subrec_hooks {
    void (*made)(subrec *r);
    void (*data)(subrec *r, int fd, const uint8_t *data, size_t len);
    void (*pipe_lost)(subrec *r, int fd, int error);
    void (*exited)(subrec *r);
    void (*lost)(subrec *r);
    void (*pause)(subrec *r);
    void (*resume)(subrec *r);
} subrec_hooks;

struct subrec {
    pg_subprocess *proc; /* from connection_made until connection_lost */
    subrec_hooks hooks;
    bool discard_data;   /* count bytes, keep none */
    void *user;

    int made, exited, lost, pauses, resumes;
    bool paused;
    bool pipe_at_made[3]; /* which fds had a pipe at connection_made */
    int pipe_lost[3];
    int pipe_error[3];
    int returncode; /* at process_exited */
    uint8_t *out[3];
    size_t out_len[3], out_cap[3];
    size_t out_total[3];

    char log[1024];
};

extern const pg_subprocess_protocol_ops subrec_ops;

void subrec_init(subrec *r);
void subrec_free(subrec *r);
pg_subprocess_protocol subrec_protocol(subrec *r);

/* The bytes received on fd as a NUL-terminated string (fd 1 or 2). */
const char *subrec_text(subrec *r, int fd);

/* Spawns argv (NULL-terminated) with opts (may be NULL: three pipes),
 * recorded by r, held in *proc when proc is not NULL. Returns spawn's result. */
int subrec_spawn(pg_loop *loop, subrec *r, const char *const *argv, const pg_subprocess_options *opts,
                 pg_subprocess **proc);

/* Runs the loop until cond, for at most max_iterations (each waits at most 1 s). */
#define RUN_UNTIL_N(loop, cond, max_iterations)                  \
    do {                                                         \
        long run_i_ = 0;                                         \
        while (!(cond)) {                                        \
            assert_true(run_i_++ < (max_iterations));            \
            assert_int_equal(pg_loop_run_once((loop), 1000), 0); \
        }                                                        \
    } while (0)

/* The number of open fds of this process, from /proc/self/fd. */
int count_open_fds(void);
/* The number of this process's children that are zombies, from /proc. */
int count_zombie_children(void);
/* True when this process has no child at all, running or zombie. */
bool no_children_left(void);

/* True when the kernel (and whatever runs us) gives pidfds. */
bool have_pidfd(void);

#endif
