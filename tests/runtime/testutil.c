#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void rec_log(recorder *r, const char *word)
{
    size_t n = strlen(r->log);
    snprintf(r->log + n, sizeof r->log - n, "%s%s", n ? " " : "", word);
}

static void rec_made(void *self, pg_transport *t)
{
    recorder *r = self;
    assert_int_equal(r->made, 0);
    assert_int_equal(r->lost, 0);
    r->made++;
    r->transport = t;
    rec_log(r, "made");
    if (r->pause_reading_in_made)
        pg_transport_pause_reading(t);
    if (r->hooks.made)
        r->hooks.made(r);
}

static void rec_data(void *self, const uint8_t *data, size_t len)
{
    recorder *r = self;
    assert_int_equal(r->made, 1);
    assert_int_equal(r->eofs, 0);
    assert_int_equal(r->lost, 0);
    assert_true(len > 0);
    if (r->rx_len + len > r->rx_cap) {
        r->rx_cap = (r->rx_len + len) * 2;
        r->rx = realloc(r->rx, r->rx_cap);
        assert_non_null(r->rx);
    }
    memcpy(r->rx + r->rx_len, data, len);
    r->rx_len += len;
    size_t n = strlen(r->log);
    if (r->data_calls == 0 || n < 4 || strcmp(r->log + n - 4, "data") != 0)
        rec_log(r, "data");
    r->data_calls++;
    if (r->hooks.data)
        r->hooks.data(r, data, len);
}

static bool rec_eof(void *self)
{
    recorder *r = self;
    assert_int_equal(r->made, 1);
    assert_int_equal(r->eofs, 0);
    assert_int_equal(r->lost, 0);
    r->eofs++;
    rec_log(r, "eof");
    return r->hooks.eof ? r->hooks.eof(r) : r->eof_keep_open;
}

static void rec_lost(void *self, int error)
{
    recorder *r = self;
    assert_int_equal(r->made, 1);
    assert_int_equal(r->lost, 0);
    r->lost++;
    r->lost_error = error;
    char word[64];
    snprintf(word, sizeof word, "lost:%s", error == 0 ? "ok" : strerrorname_np(-error));
    rec_log(r, word);
    if (r->hooks.lost)
        r->hooks.lost(r, error);
    r->transport = NULL;
}

static void rec_pause(void *self)
{
    recorder *r = self;
    assert_int_equal(r->made, 1);
    assert_int_equal(r->lost, 0);
    assert_false(r->paused);
    r->paused = true;
    r->pauses++;
    r->size_at_pause = pg_transport_get_write_buffer_size(r->transport);
    rec_log(r, "pause");
    if (r->hooks.pause)
        r->hooks.pause(r);
}

static void rec_resume(void *self)
{
    recorder *r = self;
    assert_int_equal(r->made, 1);
    assert_int_equal(r->lost, 0);
    assert_true(r->paused);
    r->paused = false;
    r->resumes++;
    r->size_at_resume = pg_transport_get_write_buffer_size(r->transport);
    rec_log(r, "resume");
    if (r->hooks.resume)
        r->hooks.resume(r);
}

const pg_protocol_ops recorder_ops = {
    .connection_made = rec_made,
    .data_received = rec_data,
    .eof_received = rec_eof,
    .connection_lost = rec_lost,
    .pause_writing = rec_pause,
    .resume_writing = rec_resume,
};

void recorder_init(recorder *r)
{
    memset(r, 0, sizeof *r);
}

void recorder_free(recorder *r)
{
    free(r->rx);
    r->rx = NULL;
}

int recorder_factory(void *arg, pg_protocol *out)
{
    out->ops = &recorder_ops;
    out->self = arg;
    return 0;
}

void run_idle(pg_loop *loop, int n)
{
    for (int i = 0; i < n; i++)
        assert_int_equal(pg_loop_run_once(loop, 0), 0);
}

bool under_valgrind(void)
{
    const char *preload = getenv("LD_PRELOAD");
    return preload != NULL && strstr(preload, "vgpreload") != NULL;
}

void set_nonblocking(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    assert_true(fl >= 0);
    assert_int_equal(fcntl(fd, F_SETFL, fl | O_NONBLOCK), 0);
}

void make_socketpair(int sv[2], int sndbuf)
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    if (sndbuf > 0)
        assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf), 0);
}

size_t fill_socket(int fd)
{
    static const uint8_t chunk[1024];
    size_t total = 0;
    set_nonblocking(fd);
    for (;;) {
        ssize_t n = send(fd, chunk, sizeof chunk, MSG_NOSIGNAL);
        if (n < 0) {
            assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
            return total;
        }
        total += (size_t)n;
        assert_true(total < 64u * 1024 * 1024);
    }
}

size_t drain_socket(int fd, uint8_t *buf, size_t cap, bool *eof)
{
    uint8_t scratch[4096];
    size_t total = 0;
    for (;;) {
        uint8_t *dst = scratch;
        size_t room = sizeof scratch;
        if (buf != NULL) {
            dst = buf + total;
            room = cap - total;
            assert_true(room > 0);
        }
        ssize_t n = recv(fd, dst, room, MSG_DONTWAIT);
        if (n < 0) {
            assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
            return total;
        }
        if (n == 0) {
            if (eof)
                *eof = true;
            return total;
        }
        total += (size_t)n;
    }
}

void stream_fixture_start(stream_fixture *f, bool prefill)
{
    memset(f, 0, sizeof *f);
    assert_int_equal(pg_loop_new(&f->loop), 0);
    make_socketpair(f->sv, prefill ? 4096 : 0);
    set_nonblocking(f->sv[1]);
    if (prefill)
        f->prefill = fill_socket(f->sv[0]);
    recorder_init(&f->r);
    assert_int_equal(pg_stream_adopt_fd(f->loop, f->sv[0], recorder_factory, &f->r, &f->t), 0);
    assert_non_null(f->t);
    assert_int_equal(f->r.made, 0); /* connection_made comes from the loop */
    RUN_UNTIL(f->loop, f->r.made == 1);
    assert_ptr_equal(f->r.transport, f->t);
}

void stream_fixture_done(stream_fixture *f)
{
    if (f->r.made && !f->r.lost) {
        pg_transport_abort(f->t);
        RUN_UNTIL(f->loop, f->r.lost == 1);
    }
    if (f->sv[1] >= 0)
        close(f->sv[1]);
    recorder_free(&f->r);
    pg_loop_close(f->loop);
}
