/* The loop's backend: io_uring where the kernel allows it, epoll otherwise
 * (a refused io_uring_setup falls back silently), PROTOGEN_BACKEND forcing
 * one, a forced one that is unavailable an error from pg_loop_new. The
 * refusal is the real one containers make: a seccomp filter on
 * io_uring_setup, in a child process. */
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

/* Does this kernel (and this process's filters) take io_uring_setup? */
static bool kernel_allows_io_uring(void)
{
#ifdef SYS_io_uring_setup
    unsigned char params[120]; /* struct io_uring_params: zeroed asks for the defaults */
    memset(params, 0, sizeof params);
    long fd = syscall(SYS_io_uring_setup, 4, params);
    if (fd < 0)
        return false;
    close((int)fd);
    return true;
#else
    return false;
#endif
}

static bool built_with_io_uring(void)
{
#ifdef PROTOGEN_HAVE_URING
    return true;
#else
    return false;
#endif
}

/* Data written to the peer comes in: the loop's backend watches sockets. */
static void assert_loop_reads(pg_loop *loop)
{
    int sv[2];
    make_socketpair(sv, 0);
    recorder r;
    recorder_init(&r);
    pg_transport *t;
    assert_int_equal(pg_stream_adopt_fd(loop, sv[0], recorder_factory, &r, &t), 0);
    assert_int_equal(write(sv[1], "ping", 4), 4);
    RUN_UNTIL(loop, r.rx_len == 4);
    assert_memory_equal(r.rx, "ping", 4);
    pg_transport_close(t);
    RUN_UNTIL(loop, r.lost == 1);
    close(sv[1]);
    recorder_free(&r);
}

static pg_loop *new_loop_on(const char *backend)
{
    if (backend == NULL)
        assert_int_equal(unsetenv("PROTOGEN_BACKEND"), 0);
    else
        assert_int_equal(setenv("PROTOGEN_BACKEND", backend, 1), 0);
    pg_loop *loop = NULL;
    assert_int_equal(pg_loop_new(&loop), 0);
    return loop;
}

/* No choice (unset, or empty) is epoll: io_uring costs more per message
 * until it does the I/O through the ring. */
static void test_default_is_epoll(void **state)
{
    (void)state;
    pg_loop *loop = new_loop_on(NULL);
    assert_string_equal(pg_loop_backend(loop), "epoll");
    assert_loop_reads(loop);
    assert_int_equal(pg_loop_close(loop), 0);
    loop = new_loop_on("");
    assert_string_equal(pg_loop_backend(loop), "epoll");
    assert_int_equal(pg_loop_close(loop), 0);
}

static void test_auto_prefers_io_uring(void **state)
{
    (void)state;
    pg_loop *loop = new_loop_on("auto");
    bool uring = built_with_io_uring() && kernel_allows_io_uring();
    assert_string_equal(pg_loop_backend(loop), uring ? "io_uring" : "epoll");
    assert_loop_reads(loop);
    assert_int_equal(pg_loop_close(loop), 0);
}

static void test_forced_epoll(void **state)
{
    (void)state;
    pg_loop *loop = new_loop_on("epoll");
    assert_string_equal(pg_loop_backend(loop), "epoll");
    assert_loop_reads(loop);
    assert_int_equal(pg_loop_close(loop), 0);
}

static void test_forced_io_uring(void **state)
{
    (void)state;
    assert_int_equal(setenv("PROTOGEN_BACKEND", "io_uring", 1), 0);
    pg_loop *loop = NULL;
    int r = pg_loop_new(&loop);
    if (!built_with_io_uring()) {
        assert_int_equal(r, -ENOSYS);
        assert_null(loop);
        return;
    }
    if (!kernel_allows_io_uring()) {
        assert_true(r < 0);
        assert_null(loop);
        return;
    }
    assert_int_equal(r, 0);
    assert_string_equal(pg_loop_backend(loop), "io_uring");
    assert_loop_reads(loop);
    assert_int_equal(pg_loop_close(loop), 0);
}

static void test_unknown_backend_is_einval(void **state)
{
    (void)state;
    const char *bad[] = { "kqueue", "EPOLL", "io_uring ", "uring" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(setenv("PROTOGEN_BACKEND", bad[i], 1), 0);
        pg_loop *loop = NULL;
        assert_int_equal(pg_loop_new(&loop), -EINVAL);
        assert_null(loop);
    }
    assert_null(pg_loop_backend(NULL));
}

/* io_uring_setup fails with err from here on, in this process (a child). */
static int refuse_io_uring(int err)
{
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((unsigned)err & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = { (unsigned short)(sizeof filter / sizeof filter[0]), filter };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return -errno;
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
        return -errno;
    return 0;
}

static void stop_loop(void *arg)
{
    pg_loop_stop(arg);
}

/* In a child with io_uring refused (err): auto falls back to epoll and
 * works; a forced io_uring is that error. Exit status: 0, or the step that
 * failed. */
static int refused_child(int err)
{
    if (refuse_io_uring(err) < 0)
        return 10;
    if (kernel_allows_io_uring())
        return 11; /* the filter did not take */
    setenv("PROTOGEN_BACKEND", "auto", 1);
    pg_loop *loop = NULL;
    if (pg_loop_new(&loop) != 0)
        return 12;
    if (strcmp(pg_loop_backend(loop), "epoll") != 0)
        return 13;
    /* It waits and wakes: a timer stops pg_loop_run through the wake-up fd. */
    pg_timer timer;
    pg_timer_init(&timer);
    if (pg_loop_call_later(loop, &timer, 5, stop_loop, loop) != 0 || pg_loop_run(loop) != 0)
        return 14;
    if (pg_timer_is_active(&timer))
        return 15;
    if (pg_loop_close(loop) != 0)
        return 15;
    setenv("PROTOGEN_BACKEND", "io_uring", 1);
    loop = NULL;
    int r = pg_loop_new(&loop);
    int want = built_with_io_uring() ? -err : -ENOSYS;
    if (r != want || loop != NULL)
        return 16;
    setenv("PROTOGEN_BACKEND", "epoll", 1);
    if (pg_loop_new(&loop) != 0 || strcmp(pg_loop_backend(loop), "epoll") != 0)
        return 17;
    pg_loop_close(loop);
    return 0;
}

static void test_refused_io_uring_falls_back(void **state)
{
    (void)state;
    /* Under valgrind the forked child's exit counts what the parent holds
     * as leaked: the same code runs in the plain and sanitizer builds. */
    if (under_valgrind()) {
        print_message("under valgrind: skipped\n");
        return;
    }
    /* ENOSYS: a seccomp profile that hides the call; EPERM: one that
     * forbids it, as kernel.io_uring_disabled does. */
    const int errs[] = { ENOSYS, EPERM };
    for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
            _exit(refused_child(errs[i]));
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_is_epoll),
        cmocka_unit_test(test_auto_prefers_io_uring),
        cmocka_unit_test(test_forced_epoll),
        cmocka_unit_test(test_forced_io_uring),
        cmocka_unit_test(test_unknown_backend_is_einval),
        cmocka_unit_test(test_refused_io_uring_falls_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
