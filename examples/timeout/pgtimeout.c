/* pgtimeout — runs a command with a time limit, like coreutils' timeout:
 *
 *   pgtimeout [--timeout SECS] [--grace SECS] [--foreground] -- CMD [ARGS...]
 *
 * The command runs with pipes for its stdin, stdout and stderr, relayed to and
 * from pgtimeout's own with flow control. After --timeout it gets SIGTERM,
 * and SIGKILL --grace later if it is still there. SIGINT, SIGTERM, SIGHUP and
 * SIGQUIT sent to pgtimeout go on to the command (and start the grace period).
 * The command runs in a process group of its own, which gets the signals too,
 * unless --foreground.
 *
 * Exit status, as coreutils' timeout: the command's own (128+N when signal N
 * killed it); 124 when the time ran out and SIGTERM ended it; 137 when it had
 * to be killed; 125 when pgtimeout itself fails; 126 when the command cannot
 * be run; 127 when it is not found. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgtimeout.h"

static const char usage[] =
    "usage: pgtimeout [--timeout SECS] [--grace SECS] [--foreground] -- CMD [ARGS...]\n"
    "  --timeout SECS  send SIGTERM to CMD after SECS (a number, with s, m, h or d: 1.5, 2m; 0: never)\n"
    "  --grace SECS    then SIGKILL if it is still running SECS later (default: never)\n"
    "  --foreground    do not run CMD in a process group of its own; signal CMD alone\n"
    "exit status: CMD's (128+N after signal N); 124 timed out; 137 killed; 125 pgtimeout failed;\n"
    "126 CMD cannot be run; 127 CMD not found\n";

/* ---- the command line ---- */

/* "1.5", "2m", "0.25h": milliseconds, rounded up; false if not a duration. */
static bool parse_duration(const char *text, uint64_t *ms)
{
    char *end;
    errno = 0;
    double secs = strtod(text, &end);
    if (end == text || errno != 0 || !isfinite(secs) || secs < 0)
        return false;
    static const struct { char suffix; double scale; } units[] = { { 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', 86400 } };
    if (*end != '\0') {
        size_t i = 0;
        while (i < sizeof units / sizeof units[0] && units[i].suffix != *end)
            i++;
        if (i == sizeof units / sizeof units[0] || end[1] != '\0')
            return false;
        secs *= units[i].scale;
    }
    double millis = ceil(secs * 1000.0);
    if (millis > 1e15) /* some 30000 years: never */
        millis = 0;
    *ms = (uint64_t)millis;
    return true;
}

/* The index of CMD in argv, or -1 after printing why not. */
static int parse_args(int argc, char **argv, struct pgtimeout *app)
{
    int i = 1;
    for (; i < argc; i++) {
        const char *arg = argv[i];
        uint64_t *target = NULL;
        if (strcmp(arg, "--") == 0)
            return i + 1 < argc ? i + 1 : (fprintf(stderr, "pgtimeout: no command given\n%s", usage), -1);
        if (strcmp(arg, "--help") == 0) {
            fputs(usage, stdout);
            exit(0);
        }
        if (strcmp(arg, "--foreground") == 0) {
            app->foreground = true;
            continue;
        }
        if (strcmp(arg, "--timeout") == 0)
            target = &app->timeout_ms;
        else if (strcmp(arg, "--grace") == 0)
            target = &app->grace_ms;
        if (target == NULL || i + 1 == argc || !parse_duration(argv[i + 1], target)) {
            fprintf(stderr, "pgtimeout: %s '%s'\n%s", target == NULL ? "unknown option" : "expected a duration after",
                    arg, usage);
            return -1;
        }
        i++;
    }
    fprintf(stderr, "pgtimeout: no command given (put it after --)\n%s", usage);
    return -1;
}

/* ---- signals and clocks ---- */

void pgtimeout_signal(struct pgtimeout *app, int signo)
{
    (void)pg_subprocess_send_signal(app->proc, signo); /* a no-op once it has exited */
    if (!app->foreground) /* whatever it started, as coreutils signals its group */
        (void)kill(-pg_subprocess_get_pid(app->proc), signo);
    if (signo != SIGKILL && signo != SIGCONT && !app->foreground)
        (void)kill(-pg_subprocess_get_pid(app->proc), SIGCONT); /* a stopped job could not die */
}

static void grace_over(void *arg)
{
    pgtimeout_signal(arg, SIGKILL);
}

static void start_grace(struct pgtimeout *app)
{
    if (app->grace_ms > 0 && !pg_timer_is_active(&app->grace_timer))
        (void)pg_loop_call_later(app->loop, &app->grace_timer, app->grace_ms, grace_over, app);
}

static void timeout_over(void *arg)
{
    struct pgtimeout *app = arg;
    if (!pg_subprocess_get_returncode(app->proc, NULL)) {
        app->timed_out = true;
        pgtimeout_signal(app, SIGTERM);
        start_grace(app);
        return;
    }
    /* The command exited in time, but something it started still holds its
     * pipes: stop waiting for it. */
    if (!app->foreground)
        (void)kill(-pg_subprocess_get_pid(app->proc), SIGTERM);
    pg_subprocess_close(app->proc);
}

/* SIGINT, SIGTERM, SIGHUP, SIGQUIT sent to pgtimeout: for the command, which
 * then gets the grace period too (as coreutils). If it has exited already
 * and only what it started holds its pipes, stop waiting for those. */
static const int forwarded[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };

struct forwarder {
    struct pgtimeout *app;
    int signo;
};

static void forward(void *arg)
{
    struct forwarder *f = arg;
    pgtimeout_signal(f->app, f->signo);
    start_grace(f->app);
    if (pg_subprocess_get_returncode(f->app->proc, NULL))
        pg_subprocess_close(f->app->proc);
}

static int add_signal_handlers(struct pgtimeout *app, struct forwarder *forwarders)
{
    for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++) {
        forwarders[i] = (struct forwarder){ .app = app, .signo = forwarded[i] };
        int rc = pg_loop_add_signal_handler(app->loop, forwarded[i], forward, &forwarders[i]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- running ---- */

void pgtimeout_maybe_finish(struct pgtimeout *app)
{
    if (app->child_done && app->in == NULL && app->out[1] == NULL && app->out[2] == NULL)
        pg_loop_stop(app->loop);
}

/* The status of a command that ran: coreutils' rules. */
static int exit_status(const struct pgtimeout *app)
{
    int rc;
    if (!pg_subprocess_get_returncode(app->proc, &rc))
        return PGTIMEOUT_FAILED;
    if (app->timed_out)
        return rc == -SIGKILL ? 128 + SIGKILL : PGTIMEOUT_TIMED_OUT;
    return rc >= 0 ? rc : 128 - rc;
}

/* Which spawn errors mean "the command cannot be run" rather than "we failed". */
static int spawn_failure_status(int error)
{
    switch (-error) {
    case ENOENT:
        return PGTIMEOUT_NOT_FOUND;
    case EACCES: case ENOEXEC: case EPERM: case EISDIR: case ENOTDIR: case ELOOP: case ENAMETOOLONG:
    case ETXTBSY: case E2BIG: case ELIBBAD:
        return PGTIMEOUT_CANNOT_RUN;
    default:
        return PGTIMEOUT_FAILED;
    }
}

int main(int argc, char **argv)
{
    struct pgtimeout app;
    memset(&app, 0, sizeof app);
    pg_timer_init(&app.timeout_timer);
    pg_timer_init(&app.grace_timer);
    int cmd = parse_args(argc, argv, &app);
    if (cmd < 0)
        return PGTIMEOUT_FAILED;

    pg_subprocess_options opts = {
        .argv = (const char *const *)&argv[cmd],
        .new_process_group = !app.foreground,
    };
    for (int fd = 0; fd < 3; fd++) {
        app.relayed[fd] = pgtimeout_can_relay(fd, fd == 0);
        opts.stdio[fd] = app.relayed[fd] ? PG_STDIO_PIPE : PG_STDIO_INHERIT;
        /* The relays make our fds non-blocking, for every process sharing them
         * (a terminal, the shell's pipe): put the flags back at exit. */
        app.saved_flags[fd] = app.relayed[fd] ? fcntl(fd, F_GETFL) : -1;
    }

    struct forwarder forwarders[sizeof forwarded / sizeof forwarded[0]];
    int rc = pg_loop_new(&app.loop);
    if (rc == 0)
        rc = add_signal_handlers(&app, forwarders);
    if (rc < 0) {
        fprintf(stderr, "pgtimeout: %s\n", strerror(-rc));
        if (app.loop != NULL)
            pg_loop_close(app.loop);
        return PGTIMEOUT_FAILED;
    }
    rc = monitored_spawn(app.loop, &opts, &app, &app.proc);
    if (rc < 0) {
        fprintf(stderr, "pgtimeout: failed to run command '%s': %s\n", argv[cmd], strerror(-rc));
        pg_loop_close(app.loop);
        return spawn_failure_status(rc);
    }
    if (app.timeout_ms > 0)
        (void)pg_loop_call_later(app.loop, &app.timeout_timer, app.timeout_ms, timeout_over, &app);

    rc = pg_loop_run(app.loop);
    int status = rc < 0 ? PGTIMEOUT_FAILED : exit_status(&app);
    if (rc < 0) { /* the loop failed: do not leave the command behind */
        fprintf(stderr, "pgtimeout: %s\n", strerror(-rc));
        pg_subprocess_close(app.proc);
    }
    pg_timer_cancel(&app.timeout_timer);
    pg_timer_cancel(&app.grace_timer);
    pg_subprocess_release(app.proc);
    pg_loop_close(app.loop);
    for (int fd = 0; fd < 3; fd++)
        if (app.saved_flags[fd] >= 0)
            (void)fcntl(fd, F_SETFL, app.saved_flags[fd]);
    return status;
}
