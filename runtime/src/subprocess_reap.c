/* Reaping children without races or zombies.
 *
 * Each child gets a pidfd (pidfd_open, Linux 5.3), which becomes readable
 * when the child exits; then waitid(P_PIDFD) reaps exactly that child. The
 * pidfd also makes signals race-free: pidfd_send_signal can never reach
 * another process that reuses the pid.
 *
 * Where there is no pidfd (an older kernel, a seccomp filter, no fd left),
 * the loop handles SIGCHLD and, on each one, waitpid(pid, WNOHANG)s each of
 * its own children by pid, like asyncio's SafeChildWatcher. Never
 * waitpid(-1): the loop reaps no child it did not start.
 *
 * A child that something else in the process reaped first (a waitpid(-1)
 * elsewhere, SIGCHLD set to SIG_IGN) is reported with return code 255, as
 * asyncio does, instead of being waited for forever. */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "subprocess_internal.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

/* What asyncio reports when "child process pid %d exit status already read". */
#define PG__RETURNCODE_UNKNOWN 255

atomic_bool pg__child_force_sigchld = false;

/* ---- return codes ------------------------------------------------------- */

static int pg__returncode_of_status(int status)
{
    if (WIFSIGNALED(status))
        return -WTERMSIG(status);
    return WEXITSTATUS(status);
}

static int pg__returncode_of_siginfo(const siginfo_t *info)
{
    if (info->si_code == CLD_KILLED || info->si_code == CLD_DUMPED)
        return -info->si_status;
    return info->si_status;
}

/* 1 and *returncode when the child was reaped (by us or, for 255, by someone
 * else), 0 while it runs. */
static int pg__child_try_reap(pg__child *child, int *returncode)
{
    int r;
    if (child->io.fd >= 0) {
        siginfo_t info;
        info.si_pid = 0;
        PG__RETRY_EINTR(r, waitid((idtype_t)P_PIDFD, (id_t)child->io.fd, &info, WEXITED | WNOHANG));
        if (r == 0) {
            if (info.si_pid == 0)
                return 0;
            *returncode = pg__returncode_of_siginfo(&info);
            return 1;
        }
        if (errno != EINVAL)
            goto gone;
        /* A kernel with pidfd_open but no P_PIDFD (5.3): by pid, which
         * stays ours until we reap it. */
    }
    int status;
    pid_t pid;
    PG__RETRY_EINTR(pid, waitpid(child->pid, &status, WNOHANG));
    if (pid == 0)
        return 0;
    if (pid < 0)
        goto gone;
    *returncode = pg__returncode_of_status(status);
    return 1;

gone:
    /* ECHILD: reaped elsewhere. Nothing else can be waited for either. */
    *returncode = PG__RETURNCODE_UNKNOWN;
    return 1;
}

/* ---- pidfd -------------------------------------------------------------- */

static int pg__pidfd_open(pid_t pid)
{
#ifdef SYS_pidfd_open
    if (pg__child_force_sigchld)
        return -ENOSYS;
    long fd = syscall(SYS_pidfd_open, pid, 0);
    return fd < 0 ? -errno : (int)fd;
#else
    (void)pid;
    return -ENOSYS;
#endif
}

static void pg__child_pidfd_ready(pg__io *io, uint32_t events)
{
    pg__child *child = PG__CONTAINER_OF(io, pg__child, io);
    int returncode;
    (void)events;
    if (!pg__child_try_reap(child, &returncode))
        return; /* not yet: the pidfd stays readable until it is */
    pg__io_stop(child->loop, &child->io, PG__IO_READ);
    close(child->io.fd);
    child->io.fd = -1;
    child->cb(child, returncode); /* last: it may free the child */
}

/* ---- SIGCHLD ------------------------------------------------------------ */

/* One per loop that has children to reap this way; found through a short
 * global list, as it is only the fallback. */
struct pg__sigchld {
    pg_loop *loop;
    pg__child *children;
    pg__sigchld *next;
};

static pthread_mutex_t pg__sigchld_lock = PTHREAD_MUTEX_INITIALIZER;
static pg__sigchld *pg__sigchld_watchers;

static void pg__sigchld_unlink(pg__sigchld *w)
{
    pthread_mutex_lock(&pg__sigchld_lock);
    for (pg__sigchld **p = &pg__sigchld_watchers; *p != NULL; p = &(*p)->next) {
        if (*p == w) {
            *p = w->next;
            break;
        }
    }
    pthread_mutex_unlock(&pg__sigchld_lock);
}

static void pg__sigchld_check(void *arg);

static void pg__sigchld_free(pg__sigchld *w)
{
    pg_loop_remove_signal_handler(w->loop, SIGCHLD);
    pg__loop_cancel_queued(w->loop, pg__sigchld_check, w);
    pg__sigchld_unlink(w);
    free(w);
}

/* Reaps the children of this loop that have exited, then reports them, once
 * none of them is on the list any more: a report may start a new child, or
 * end the last one and with it the watcher. */
static void pg__sigchld_check(void *arg)
{
    pg__sigchld *w = arg;
    pg__child *done = NULL, **tail = &done;
    for (pg__child **p = &w->children; *p != NULL;) {
        pg__child *child = *p;
        if (!pg__child_try_reap(child, &child->returncode)) {
            p = &child->next;
            continue;
        }
        *p = child->next;
        child->watcher = NULL;
        child->next = NULL;
        *tail = child;
        tail = &child->next;
    }
    if (w->children == NULL)
        pg__sigchld_free(w);
    while (done != NULL) {
        pg__child *child = done;
        done = child->next;
        child->next = NULL;
        child->cb(child, child->returncode);
    }
}

static int pg__sigchld_get(pg_loop *loop, pg__sigchld **out)
{
    pthread_mutex_lock(&pg__sigchld_lock);
    pg__sigchld *w = pg__sigchld_watchers;
    while (w != NULL && w->loop != loop)
        w = w->next;
    pthread_mutex_unlock(&pg__sigchld_lock);
    if (w == NULL) {
        w = calloc(1, sizeof *w);
        if (w == NULL)
            return -ENOMEM;
        w->loop = loop;
        int r = pg_loop_add_signal_handler(loop, SIGCHLD, pg__sigchld_check, w);
        if (r < 0) {
            free(w);
            return r;
        }
        pthread_mutex_lock(&pg__sigchld_lock);
        w->next = pg__sigchld_watchers;
        pg__sigchld_watchers = w;
        pthread_mutex_unlock(&pg__sigchld_lock);
    }
    *out = w;
    return 0;
}

/* ---- watching ----------------------------------------------------------- */

int pg__child_watch(pg_loop *loop, pg__child *child, pid_t pid, pg__child_exit_cb cb)
{
    child->loop = loop;
    child->pid = pid;
    child->cb = cb;
    child->watcher = NULL;
    child->next = NULL;
    pg__io_init(&child->io, -1, pg__child_pidfd_ready);

    int fd = pg__pidfd_open(pid);
    if (fd >= 0) {
        child->io.fd = fd;
        int r = pg__io_start(loop, &child->io, PG__IO_READ);
        if (r == 0)
            return 0;
        close(fd);
        child->io.fd = -1;
    }

    /* The fallback. SIGCHLD is blocked and read from the signalfd before the
     * first check, so an exit between the spawn and now is not missed. */
    pg__sigchld *w;
    int r = pg__sigchld_get(loop, &w);
    if (r < 0)
        return r;
    child->watcher = w;
    child->next = w->children;
    w->children = child;
    /* It may have exited already, its SIGCHLD discarded before we listened. */
    r = pg_loop_call_soon(loop, pg__sigchld_check, w);
    if (r < 0) {
        w->children = child->next;
        child->watcher = NULL;
        if (w->children == NULL)
            pg__sigchld_free(w);
    }
    return r;
}

int pg__child_signal(const pg__child *child, int signo)
{
#ifdef SYS_pidfd_send_signal
    if (child->io.fd >= 0)
        return syscall(SYS_pidfd_send_signal, child->io.fd, signo, NULL, 0) < 0 ? -errno : 0;
#endif
    /* Not reaped yet, so the pid is still this child's (a zombie keeps it). */
    return kill(child->pid, signo) < 0 ? -errno : 0;
}

int pg__child_pidfd(const pg__child *child)
{
    return child->io.fd;
}

void pg__child_kill_and_reap(pid_t pid)
{
    int status;
    pid_t r;
    kill(pid, SIGKILL);
    PG__RETRY_EINTR(r, waitpid(pid, &status, 0));
    (void)r;
}
