#include "subprocess_recorder.h"

#include <dirent.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void log_word(subrec *r, const char *word)
{
    size_t n = strlen(r->log);
    snprintf(r->log + n, sizeof r->log - n, "%s%s", n ? " " : "", word);
}

static const char *error_name(int error)
{
    return error == 0 ? "ok" : strerrorname_np(-error);
}

static void assert_not_lost(const subrec *r)
{
    assert_int_equal(r->made, 1);
    assert_int_equal(r->lost, 0);
}

static void rec_made(void *self, pg_subprocess *proc)
{
    subrec *r = self;
    assert_int_equal(r->made, 0);
    assert_int_equal(r->lost, 0);
    r->made++;
    r->proc = proc;
    for (int fd = 0; fd < 3; fd++)
        r->pipe_at_made[fd] = pg_subprocess_get_pipe_transport(proc, fd) != NULL;
    log_word(r, "made");
    if (r->hooks.made)
        r->hooks.made(r);
}

static void rec_data(void *self, int fd, const uint8_t *data, size_t len)
{
    subrec *r = self;
    assert_not_lost(r);
    assert_true(fd == 1 || fd == 2);
    assert_true(r->pipe_at_made[fd]);
    assert_int_equal(r->pipe_lost[fd], 0);
    assert_true(len > 0);
    if (!r->discard_data) {
        if (r->out_len[fd] + len + 1 > r->out_cap[fd]) {
            r->out_cap[fd] = (r->out_len[fd] + len + 1) * 2;
            r->out[fd] = realloc(r->out[fd], r->out_cap[fd]);
            assert_non_null(r->out[fd]);
        }
        memcpy(r->out[fd] + r->out_len[fd], data, len);
        r->out_len[fd] += len;
    }
    r->out_total[fd] += len;
    char word[8];
    snprintf(word, sizeof word, "out%d", fd);
    size_t n = strlen(r->log);
    if (n < 4 || strcmp(r->log + n - 4, word) != 0) /* runs merge */
        log_word(r, word);
    if (r->hooks.data)
        r->hooks.data(r, fd, data, len);
}

static void rec_pipe_lost(void *self, int fd, int error)
{
    subrec *r = self;
    assert_not_lost(r);
    assert_true(fd >= 0 && fd <= 2);
    assert_true(r->pipe_at_made[fd]);
    assert_int_equal(r->pipe_lost[fd], 0);
    r->pipe_lost[fd]++;
    r->pipe_error[fd] = error;
    assert_null(pg_subprocess_get_pipe_transport(r->proc, fd));
    char word[64];
    snprintf(word, sizeof word, "lost%d:%s", fd, error_name(error));
    log_word(r, word);
    if (r->hooks.pipe_lost)
        r->hooks.pipe_lost(r, fd, error);
}

static void rec_exited(void *self)
{
    subrec *r = self;
    assert_not_lost(r);
    assert_int_equal(r->exited, 0);
    r->exited++;
    assert_true(pg_subprocess_get_returncode(r->proc, &r->returncode));
    char word[32];
    snprintf(word, sizeof word, "exited:%d", r->returncode);
    log_word(r, word);
    if (r->hooks.exited)
        r->hooks.exited(r);
}

static void rec_lost(void *self, int error)
{
    subrec *r = self;
    assert_not_lost(r);
    assert_int_equal(error, 0);
    /* Only once the child is reaped and every pipe is closed. */
    assert_int_equal(r->exited, 1);
    for (int fd = 0; fd < 3; fd++)
        assert_int_equal(r->pipe_lost[fd], r->pipe_at_made[fd] ? 1 : 0);
    r->lost++;
    log_word(r, "lost:ok");
    if (r->hooks.lost)
        r->hooks.lost(r);
    r->proc = NULL;
}

static void rec_pause(void *self)
{
    subrec *r = self;
    assert_not_lost(r);
    assert_false(r->paused);
    assert_int_equal(r->pipe_lost[0], 0);
    r->paused = true;
    r->pauses++;
    if (r->hooks.pause)
        r->hooks.pause(r);
}

static void rec_resume(void *self)
{
    subrec *r = self;
    assert_not_lost(r);
    assert_true(r->paused);
    r->paused = false;
    r->resumes++;
    if (r->hooks.resume)
        r->hooks.resume(r);
}

const pg_subprocess_protocol_ops subrec_ops = {
    .connection_made = rec_made,
    .pipe_data_received = rec_data,
    .pipe_connection_lost = rec_pipe_lost,
    .process_exited = rec_exited,
    .connection_lost = rec_lost,
    .pause_writing = rec_pause,
    .resume_writing = rec_resume,
};

void subrec_init(subrec *r)
{
    memset(r, 0, sizeof *r);
}

void subrec_free(subrec *r)
{
    for (int fd = 0; fd < 3; fd++) {
        free(r->out[fd]);
        r->out[fd] = NULL;
    }
}

pg_subprocess_protocol subrec_protocol(subrec *r)
{
    pg_subprocess_protocol p = { .ops = &subrec_ops, .self = r };
    return p;
}

const char *subrec_text(subrec *r, int fd)
{
    if (r->out[fd] == NULL)
        return "";
    r->out[fd][r->out_len[fd]] = '\0';
    return (const char *)r->out[fd];
}

int subrec_spawn(pg_loop *loop, subrec *r, const char *const *argv, const pg_subprocess_options *opts,
                 pg_subprocess **proc)
{
    pg_subprocess_options o;
    if (opts != NULL)
        o = *opts;
    else
        memset(&o, 0, sizeof o);
    o.argv = argv;
    pg_subprocess_protocol protocol = subrec_protocol(r);
    return pg_subprocess_spawn(loop, &o, &protocol, proc);
}

int count_open_fds(void)
{
    DIR *dir = opendir("/proc/self/fd");
    assert_non_null(dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(dir);
    return n - 1; /* the directory's own fd */
}

int count_zombie_children(void)
{
    DIR *dir = opendir("/proc");
    assert_non_null(dir);
    int zombies = 0;
    pid_t self = getpid();
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char path[300], buf[512];
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "re");
        if (f == NULL)
            continue; /* gone meanwhile */
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        /* "pid (comm) state ppid ...": comm may hold spaces and parentheses. */
        char *close_paren = strrchr(buf, ')');
        char state;
        int ppid;
        if (close_paren != NULL && sscanf(close_paren + 1, " %c %d", &state, &ppid) == 2 && ppid == self &&
            state == 'Z')
            zombies++;
    }
    closedir(dir);
    return zombies;
}

bool no_children_left(void)
{
    int status;
    return waitpid(-1, &status, WNOHANG) == -1 && errno == ECHILD;
}

bool have_pidfd(void)
{
    long fd = syscall(SYS_pidfd_open, getpid(), 0);
    if (fd < 0)
        return false;
    close((int)fd);
    return true;
}
