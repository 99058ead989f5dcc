/* Subprocesses: asyncio's SubprocessTransport and SubprocessProtocol.
 *
 * pg_subprocess_spawn() starts a program with pipes to its stdin, stdout and
 * stderr (each one optional) and reports what happens to it through a
 * subprocess protocol, in asyncio's order:
 *
 *   connection_made
 *   per pipe fd: pipe_data_received*  pipe_connection_lost
 *   process_exited                    (anywhere after connection_made)
 *   connection_lost                   (last: once the child has been reaped
 *                                      AND every pipe is closed)
 *
 * with pause_writing/resume_writing (the stdin pipe's flow control)
 * alternating in between. Every child is reaped by the loop: through a pidfd
 * where the kernel has one, else on SIGCHLD. The loop never reaps a child it
 * did not start.
 *
 * Integer results are 0 or a negative errno value. */
#ifndef PROTOGEN_SUBPROCESS_H
#define PROTOGEN_SUBPROCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "protogen/loop.h"
#include "protogen/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pg_subprocess pg_subprocess;

typedef struct pg_subprocess_protocol_ops {
    /* The child runs and its pipes are ready. No other callback comes before. */
    void (*connection_made)(void *self, pg_subprocess *proc);
    /* Bytes the child wrote to its stdout (fd 1) or stderr (fd 2). The memory
     * belongs to the loop: copy what you keep. */
    void (*pipe_data_received)(void *self, int fd, const uint8_t *data, size_t len);
    /* The pipe to the child's fd (0, 1 or 2) is closed: error is 0, or a
     * negative errno (-EPIPE: the child stopped reading while bytes were
     * still buffered for its stdin). */
    void (*pipe_connection_lost)(void *self, int fd, int error);
    /* The child has exited and was reaped: pg_subprocess_get_returncode() tells how. */
    void (*process_exited)(void *self);
    /* Last: the child is reaped and every pipe is closed. error is always 0
     * (asyncio passes None). */
    void (*connection_lost)(void *self, int error);
    /* The stdin pipe's write buffer went above its high watermark. */
    void (*pause_writing)(void *self);
    /* The stdin pipe's write buffer drained to its low watermark or below. */
    void (*resume_writing)(void *self);
} pg_subprocess_protocol_ops;

/* A subprocess protocol instance: its callbacks (any may be NULL) and self. */
typedef struct pg_subprocess_protocol {
    const pg_subprocess_protocol_ops *ops;
    void *self;
} pg_subprocess_protocol;

/* What each of the child's stdin, stdout and stderr is. */
typedef enum pg_stdio {
    PG_STDIO_PIPE = 0, /* a pipe to this process (asyncio's subprocess.PIPE): the default */
    PG_STDIO_INHERIT,  /* the same as this process's (asyncio's None) */
    PG_STDIO_DEVNULL,  /* /dev/null (subprocess.DEVNULL) */
    PG_STDIO_STDOUT,   /* stderr only: into wherever stdout goes (subprocess.STDOUT) */
} pg_stdio;

typedef struct pg_subprocess_options {
    /* The program and its arguments, NULL-terminated; argv[0] is the program.
     * A name without '/' is looked up in this process's PATH. No shell is
     * involved unless shell is set. */
    const char *const *argv;
    /* With shell: argv[0] is a command line for /bin/sh -c, and argv[1], ...
     * become the shell's $0, $1, ... (Python's Popen(shell=True) with a list). */
    bool shell;
    /* The program to run, when it is not argv[0] (asyncio's executable=). */
    const char *file;
    /* The child's environment, "NAME=value" strings, NULL-terminated. NULL:
     * this process's environment. */
    const char *const *env;
    /* The child's working directory. NULL: this process's. */
    const char *cwd;
    /* The child leads a process group of its own (asyncio's process_group=0),
     * so that a signal can reach everything it starts: kill(-pid, sig). */
    bool new_process_group;
    /* stdin, stdout, stderr. Zero-filled options give three pipes. */
    pg_stdio stdio[3];
} pg_subprocess_options;

/* Starts the child described by opts. On success the child runs, protocol's
 * connection_made follows on the next iteration, and if out is not NULL
 * *out is the transport, which the caller then holds until it calls
 * pg_subprocess_release() (even after connection_lost, to read the return
 * code). Without out, the transport is valid from connection_made until
 * connection_lost returns. A handle used past that is stale: the call is
 * dropped (counted in the host's stale calls; debug builds assert) and never
 * reaches another subprocess (docs/subprocess.md, Lifetime).
 *
 * The child starts with no signal blocked, SIGPIPE and SIGXFSZ at their
 * default action, and no fd of this process but its stdin, stdout and
 * stderr. Errors, with no child left behind and no protocol callback ever:
 * -ENOENT (no such program, or no such cwd), -EACCES (not executable),
 * -ENOEXEC, -EINVAL (bad options), -EMFILE, -ENOMEM, -EAGAIN. */
int pg_subprocess_spawn(pg_loop *loop, const pg_subprocess_options *opts,
                        const pg_subprocess_protocol *protocol, pg_subprocess **out);

/* Drops the caller's hold taken by pg_subprocess_spawn(..., &out). The child
 * and the protocol carry on; the memory goes once connection_lost has
 * returned (so releasing from inside connection_lost is safe: the transport
 * stays valid until that callback returns). */
void pg_subprocess_release(pg_subprocess *proc);

/* The child's pid. -1 through a stale handle: check it before any kill(2) of
 * your own (kill(-1, ...) would signal every process you may signal); the
 * pg_subprocess_* signal functions are the safe way to signal the child. */
pid_t pg_subprocess_get_pid(const pg_subprocess *proc);

/* False while the child has not been reaped. Then *returncode is its exit
 * status (0-255), or -N when signal N killed it (-9 after kill(), -15 after
 * terminate()), or 255 when something else in this process reaped it first
 * (as asyncio reports it). */
bool pg_subprocess_get_returncode(const pg_subprocess *proc, int *returncode);

/* The pipe transport to the child's fd 0 (a write pipe with flow control),
 * 1 or 2 (read pipes), or NULL when that fd is not a pipe or its pipe is
 * closed already (after its pipe_connection_lost). */
pg_transport *pg_subprocess_get_pipe_transport(pg_subprocess *proc, int fd);

/* Sends signo to the child: through its pidfd, so never to another process
 * that reuses the pid. A no-op once the child has exited (as asyncio), also
 * inside connection_lost; -ESRCH once connection_lost has returned. */
int pg_subprocess_send_signal(pg_subprocess *proc, int signo);
/* SIGTERM. */
int pg_subprocess_terminate(pg_subprocess *proc);
/* SIGKILL. */
int pg_subprocess_kill(pg_subprocess *proc);

/* Closes every pipe (the stdin pipe flushes first) and, if the child has not
 * exited yet, kills it (SIGKILL). Does not wait: the callbacks follow, down
 * to connection_lost. Idempotent. */
void pg_subprocess_close(pg_subprocess *proc);
bool pg_subprocess_is_closing(const pg_subprocess *proc);

/* The pipes, as asyncio's get_pipe_transport(fd).method() (which keeps a
 * closed pipe object that drops writes and still answers).
 *
 * stdin: write, writelines and write_eof act on the stdin pipe; once that
 * pipe is closed (the child closed its stdin, or after write_eof or close)
 * writes are dropped and return 0, as asyncio's; -EPIPE when stdin is not a
 * pipe at all. The write buffer limits are the stdin pipe's (the last ones it
 * had once it is closed); -EPIPE when stdin is not a pipe. */
int pg_subprocess_write(pg_subprocess *proc, const void *data, size_t len);
int pg_subprocess_writelines(pg_subprocess *proc, const struct iovec *iov, int iovcnt);
int pg_subprocess_write_eof(pg_subprocess *proc);
/* 0 once the stdin pipe is closed, or when there is none. */
size_t pg_subprocess_get_write_buffer_size(const pg_subprocess *proc);
int pg_subprocess_get_write_buffer_limits(const pg_subprocess *proc, size_t *high, size_t *low);
int pg_subprocess_set_write_buffer_limits(pg_subprocess *proc, size_t high, size_t low);

/* stdout (fd 1) or stderr (fd 2): reading stops and restarts as a read pipe
 * transport's; no-ops for any other fd, or once that pipe is closed.
 * is_reading is false then. */
void pg_subprocess_pause_reading(pg_subprocess *proc, int fd);
void pg_subprocess_resume_reading(pg_subprocess *proc, int fd);
bool pg_subprocess_is_reading(const pg_subprocess *proc, int fd);

/* PG_EXTRA_SUBPROCESS: the child's pidfd in .fd, -1 once it is reaped or when
 * reaping falls back to SIGCHLD (asyncio gives the Popen object). -ENOENT for
 * any other key. */
int pg_subprocess_get_extra_info(const pg_subprocess *proc, pg_extra_key key, pg_extra_info *out);

#ifdef __cplusplus
}
#endif
#endif
