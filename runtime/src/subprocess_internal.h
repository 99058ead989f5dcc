/* Between the built-in loop's subprocess driver (subprocess.c), spawning
 * (subprocess_spawn.c) and reaping (subprocess_reap.c). Not public. */
#ifndef PROTOGEN_SUBPROCESS_INTERNAL_H
#define PROTOGEN_SUBPROCESS_INTERNAL_H

#include <stdbool.h>
#include <sys/types.h>

#include "protogen/subprocess.h"

#include "internal.h"

/* ---- spawning (subprocess_spawn.c) -------------------------------------- */

/* The pipes to the child's stdin, stdout and stderr; -1 where there is none.
 * Every fd is close-on-exec and >= 3, so that placing the child's ends on
 * 0, 1 and 2 never overwrites another of them. */
typedef struct pg__stdio_pipes {
    int parent[3]; /* this process's ends, non-blocking */
    int child[3];  /* the child's ends, blocking, closed once it runs */
} pg__stdio_pipes;

/* -EINVAL for options that make no sense (no argv, PG_STDIO_STDOUT on stdin). */
int pg__spawn_check(const pg_subprocess_options *opts);
/* Makes the pipes opts asks for. On error none is left open. */
int pg__stdio_pipes_open(const pg_subprocess_options *opts, pg__stdio_pipes *pipes);
/* Closes the child's ends (ours stay) or all of them; -1 afterwards. */
void pg__stdio_pipes_close_child(pg__stdio_pipes *pipes);
void pg__stdio_pipes_close(pg__stdio_pipes *pipes);
/* Starts the child on the pipes' child ends. A program that cannot be run is
 * an error here (-ENOENT, -EACCES, ...), never a child that exits 127. */
int pg__spawn(const pg_subprocess_options *opts, const pg__stdio_pipes *pipes, pid_t *pid);

/* ---- reaping (subprocess_reap.c) ---------------------------------------- */

typedef struct pg__child pg__child;
typedef struct pg__sigchld pg__sigchld;

/* The child was reaped: returncode as pg_subprocess_get_returncode() says. */
typedef void (*pg__child_exit_cb)(pg__child *child, int returncode);

/* One child the loop waits for: through its pidfd (io), or, where there is
 * none, on SIGCHLD with the other children of the same loop (watcher). */
struct pg__child {
    pg_loop *loop;
    pid_t pid;
    pg__io io;            /* fd: the pidfd, or -1 */
    pg__child_exit_cb cb;
    pg__sigchld *watcher; /* set while on a SIGCHLD watcher's list */
    pg__child *next;
    int returncode;       /* once reaped */
};

/* Starts waiting for pid, a child this process just started and nobody has
 * waited for yet. On error (-ENOMEM, -EMFILE: neither a pidfd nor SIGCHLD
 * could be set up) nothing is watched. */
int pg__child_watch(pg_loop *loop, pg__child *child, pid_t pid, pg__child_exit_cb cb);

/* For a child that will not be watched after all: SIGKILL, then a blocking
 * waitpid, so that no zombie is left. */
void pg__child_kill_and_reap(pid_t pid);

/* Sends signo to the child, which has not been reaped yet. */
int pg__child_signal(const pg__child *child, int signo);

/* The pidfd, or -1 under SIGCHLD. */
int pg__child_pidfd(const pg__child *child);

/* Tests: when true, new children are reaped on SIGCHLD, as on a kernel
 * without pidfd_open. Atomic: loops on other threads read it. */
extern atomic_bool pg__child_force_sigchld;

#endif
