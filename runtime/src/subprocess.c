/* Subprocesses on the built-in loop: pg_subprocess_spawn and the fd process
 * driver. The child is started by subprocess_spawn.c and reaped by
 * subprocess_reap.c (pidfd, or SIGCHLD); its pipes are fd stream transports;
 * every rule of the transport is the core's (runtime/core/subprocess.c). */
#include <stdlib.h>

#include "subprocess_internal.h"

/* The driver's block: the child the loop waits for, and its transport. */
typedef struct pg__fdproc {
    pg__child child;
    pg_subprocess *proc;
} pg__fdproc;

static int pg__fdproc_send_signal(void *self, int signo)
{
    pg__fdproc *f = self;
    return pg__child_signal(&f->child, signo);
}

/* After connection_lost, so after the exit: the child was reaped and its
 * watcher is gone already. */
static void pg__fdproc_close(void *self)
{
    free(self);
}

static int pg__fdproc_get_extra_info(void *self, pg_extra_key key, pg_extra_info *out)
{
    pg__fdproc *f = self;
    (void)key;
    out->fd = pg__child_pidfd(&f->child);
    return 0;
}

static const pg_process_driver_ops pg__fdproc_ops = {
    .send_signal = pg__fdproc_send_signal,
    .close = pg__fdproc_close,
    .get_extra_info = pg__fdproc_get_extra_info,
};

static void pg__fdproc_exited(pg__child *child, int returncode)
{
    pg__fdproc *f = PG__CONTAINER_OF(child, pg__fdproc, child);
    pg_subprocess_exited(f->proc, returncode);
}

/* stdin's write pipe also notices its reader going away (an fd driver bit). */
static unsigned pg__fdproc_pipe_flags(int fd)
{
    return pg__subprocess_pipe_flags(fd) | (fd == 0 ? PG__STREAM_WATCH_READER : 0u);
}

int pg_subprocess_spawn(pg_loop *loop, const pg_subprocess_options *opts,
                        const pg_subprocess_protocol *protocol, pg_subprocess **out)
{
    if (loop == NULL || protocol == NULL || protocol->ops == NULL)
        return -EINVAL;
    int r = pg__spawn_check(opts);
    if (r < 0)
        return r;

    pg__fdproc *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -ENOMEM;
    pg_subprocess *p = NULL;
    pg__fdstream *streams[3] = { NULL, NULL, NULL };
    pg__stdio_pipes pipes;
    pid_t pid;

    if ((r = pg__subprocess_alloc(pg__loop_host(loop), &p)) < 0)
        goto fail;
    if ((r = pg__stdio_pipes_open(opts, &pipes)) < 0)
        goto fail;
    /* Everything that can fail before the child exists... */
    for (int fd = 0; fd < 3; fd++)
        if (pipes.parent[fd] >= 0 && (r = pg__fdstream_alloc(loop, pipes.parent[fd], pg__fdproc_pipe_flags(fd), &streams[fd])) < 0)
            goto fail_pipes;
    if ((r = pg__spawn(opts, &pipes, &pid)) < 0)
        goto fail_pipes;
    pg__stdio_pipes_close_child(&pipes);
    /* ...and the one thing after. */
    f->proc = p;
    if ((r = pg__child_watch(loop, &f->child, pid, pg__fdproc_exited)) < 0) {
        pg__child_kill_and_reap(pid);
        goto fail_pipes;
    }

    pg_transport *transports[3] = { NULL, NULL, NULL };
    for (int fd = 0; fd < 3; fd++) {
        if (streams[fd] != NULL) {
            pg_protocol adapter = pg__subprocess_pipe_protocol(p, fd);
            transports[fd] = pg__fdstream_start(streams[fd], &adapter);
        }
    }
    pg__subprocess_start(p, &pg__fdproc_ops, f, pid, transports, protocol, out != NULL);
    if (out != NULL)
        *out = p;
    return 0;

fail_pipes:
    for (int fd = 0; fd < 3; fd++)
        if (streams[fd] != NULL)
            pg__fdstream_discard(streams[fd]);
    pg__stdio_pipes_close(&pipes);
fail:
    if (p != NULL)
        pg__subprocess_discard(p);
    free(f);
    return r;
}
