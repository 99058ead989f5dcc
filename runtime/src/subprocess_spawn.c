/* Starting a child: its stdio pipes, then posix_spawn.
 *
 * posix_spawn (glibc: clone(CLONE_VM | CLONE_VFORK) and exec) reports a
 * failed exec as its return value, the way a CLOEXEC error pipe would with
 * fork/exec, and reaps that failed child itself: "no such program" is an
 * error for the caller, never a child that exits 127. It is also much cheaper
 * than fork for a large parent (no page tables to copy), which matters under
 * AddressSanitizer. */
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "subprocess_internal.h"

extern char **environ;

/* ---- options ------------------------------------------------------------ */

int pg__spawn_check(const pg_subprocess_options *opts)
{
    if (opts == NULL || opts->argv == NULL || opts->argv[0] == NULL)
        return -EINVAL;
    if (opts->file != NULL && opts->file[0] == '\0')
        return -EINVAL;
    for (int fd = 0; fd < 3; fd++) {
        switch (opts->stdio[fd]) {
        case PG_STDIO_PIPE:
        case PG_STDIO_INHERIT:
        case PG_STDIO_DEVNULL:
            break;
        case PG_STDIO_STDOUT:
            if (fd != 2)
                return -EINVAL; /* only stderr can go where stdout goes */
            break;
        default:
            return -EINVAL;
        }
    }
    return 0;
}

/* ---- pipes -------------------------------------------------------------- */

static void pg__close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

/* Moves fd to 3 or above (this process may have closed its own 0, 1 or 2). */
static int pg__fd_above_stdio(int *fd)
{
    if (*fd >= 3)
        return 0;
    int moved = fcntl(*fd, F_DUPFD_CLOEXEC, 3);
    if (moved < 0)
        return -errno;
    close(*fd);
    *fd = moved;
    return 0;
}

static int pg__set_nonblocking(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

void pg__stdio_pipes_close_child(pg__stdio_pipes *pipes)
{
    for (int fd = 0; fd < 3; fd++)
        pg__close_fd(&pipes->child[fd]);
}

void pg__stdio_pipes_close(pg__stdio_pipes *pipes)
{
    pg__stdio_pipes_close_child(pipes);
    for (int fd = 0; fd < 3; fd++)
        pg__close_fd(&pipes->parent[fd]);
}

int pg__stdio_pipes_open(const pg_subprocess_options *opts, pg__stdio_pipes *pipes)
{
    int r = 0;
    for (int fd = 0; fd < 3; fd++)
        pipes->parent[fd] = pipes->child[fd] = -1;
    for (int fd = 0; fd < 3; fd++) {
        if (opts->stdio[fd] != PG_STDIO_PIPE)
            continue;
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0) {
            r = -errno;
            goto fail;
        }
        /* p[0] reads, p[1] writes: the child reads its stdin, writes the others. */
        pipes->child[fd] = fd == 0 ? p[0] : p[1];
        pipes->parent[fd] = fd == 0 ? p[1] : p[0];
        if ((r = pg__fd_above_stdio(&pipes->child[fd])) < 0 ||
            (r = pg__fd_above_stdio(&pipes->parent[fd])) < 0 ||
            (r = pg__set_nonblocking(pipes->parent[fd])) < 0)
            goto fail;
    }
    return 0;

fail:
    pg__stdio_pipes_close(pipes);
    return r;
}

/* ---- spawning ----------------------------------------------------------- */

/* The file actions that give the child its stdin, stdout and stderr. The
 * child's pipe ends are all >= 3, so no dup2 here overwrites another's source. */
static int pg__stdio_actions(posix_spawn_file_actions_t *fa, const pg_subprocess_options *opts,
                             const pg__stdio_pipes *pipes)
{
    int r = 0;
    for (int fd = 0; fd < 3 && r == 0; fd++) {
        switch (opts->stdio[fd]) {
        case PG_STDIO_PIPE:
            r = posix_spawn_file_actions_adddup2(fa, pipes->child[fd], fd);
            break;
        case PG_STDIO_DEVNULL:
            r = posix_spawn_file_actions_addopen(fa, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0);
            break;
        case PG_STDIO_STDOUT: /* after stdout is in place: fd 2 is 1's copy */
            r = posix_spawn_file_actions_adddup2(fa, 1, 2);
            break;
        case PG_STDIO_INHERIT:
            break;
        }
    }
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    /* Python's close_fds=True: even an fd someone opened without O_CLOEXEC
     * does not leak into the child. */
    if (r == 0)
        r = posix_spawn_file_actions_addclosefrom_np(fa, 3);
#endif
    if (r == 0 && opts->cwd != NULL)
        r = posix_spawn_file_actions_addchdir_np(fa, opts->cwd);
    return r;
}

static int pg__spawn_attributes(posix_spawnattr_t *attr, const pg_subprocess_options *opts)
{
    /* The loop blocks the signals it handles (signalfd); the child must not
     * inherit that, or terminate() would do nothing to it. SIGPIPE and
     * SIGXFSZ go back to their default action, as Python's restore_signals. */
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    sigaddset(&defaults, SIGXFSZ);
    short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
    if (opts->new_process_group)
        flags |= POSIX_SPAWN_SETPGROUP;
    int r = posix_spawnattr_setflags(attr, flags);
    if (r == 0)
        r = posix_spawnattr_setsigmask(attr, &none);
    if (r == 0)
        r = posix_spawnattr_setsigdefault(attr, &defaults);
    if (r == 0 && opts->new_process_group)
        r = posix_spawnattr_setpgroup(attr, 0);
    return r;
}

/* argv for the shell: /bin/sh -c CMD [ARG0 ARGS...]; freed by the caller. */
static char **pg__shell_argv(const pg_subprocess_options *opts)
{
    size_t n = 0;
    while (opts->argv[n] != NULL)
        n++;
    char **argv = malloc((n + 3) * sizeof *argv);
    if (argv == NULL)
        return NULL;
    argv[0] = (char *)"/bin/sh";
    argv[1] = (char *)"-c";
    for (size_t i = 0; i <= n; i++) /* with the terminating NULL */
        argv[i + 2] = (char *)opts->argv[i];
    return argv;
}

int pg__spawn(const pg_subprocess_options *opts, const pg__stdio_pipes *pipes, pid_t *pid)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    char **shell_argv = NULL;
    char *const *argv = (char *const *)opts->argv;
    const char *file = opts->file;
    int r;

    if (opts->shell) {
        shell_argv = pg__shell_argv(opts);
        if (shell_argv == NULL)
            return -ENOMEM;
        argv = shell_argv;
        if (file == NULL)
            file = "/bin/sh";
    }
    if (file == NULL)
        file = argv[0];

    r = posix_spawn_file_actions_init(&fa);
    if (r != 0) {
        free(shell_argv);
        return -r;
    }
    r = posix_spawnattr_init(&attr);
    if (r != 0) {
        posix_spawn_file_actions_destroy(&fa);
        free(shell_argv);
        return -r;
    }
    r = pg__stdio_actions(&fa, opts, pipes);
    if (r == 0)
        r = pg__spawn_attributes(&attr, opts);
    if (r == 0) {
        char *const *envp = opts->env != NULL ? (char *const *)opts->env : environ;
        /* A name without '/' is looked up in PATH, as execvp does. */
        if (strchr(file, '/') == NULL)
            r = posix_spawnp(pid, file, &fa, &attr, argv, envp);
        else
            r = posix_spawn(pid, file, &fa, &attr, argv, envp);
    }
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    free(shell_argv);
    return -r;
}
