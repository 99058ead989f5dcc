#include "dgram_recorder.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <unistd.h>

static void drec_log(dgram_rec *r, const char *word)
{
    size_t n = strlen(r->log);
    assert_true(n + strlen(word) + 2 < sizeof r->log); /* a test's log must fit */
    snprintf(r->log + n, sizeof r->log - n, "%s%s", n ? " " : "", word);
}

static void drec_made(void *self, pg_datagram_transport *t)
{
    dgram_rec *r = self;
    assert_int_equal(r->made, 0);
    assert_int_equal(r->lost, 0);
    r->made++;
    r->transport = t;
    drec_log(r, "made");
    if (r->pause_reading_in_made)
        pg_datagram_transport_pause_reading(t);
    if (r->hooks.made)
        r->hooks.made(r);
}

static void drec_datagram(void *self, const uint8_t *data, size_t len, const struct sockaddr *addr,
                          socklen_t addrlen)
{
    dgram_rec *r = self;
    assert_int_equal(r->made, 1);
    assert_int_equal(r->lost, 0);
    assert_true(len == 0 || data != NULL);
    r->datagrams++;
    r->bytes += len;
    r->last_len = len < sizeof r->last ? len : sizeof r->last;
    if (len > 0)
        memcpy(r->last, data, r->last_len);
    if (len > 0 && r->nfirsts < DGRAM_REC_MAX_SEQS)
        r->firsts[r->nfirsts++] = data[0];
    r->last_addrlen = addr != NULL ? addrlen : 0;
    if (addr != NULL) {
        assert_true(addrlen <= sizeof r->last_addr);
        memcpy(&r->last_addr, addr, addrlen);
    }
    if (r->datagrams <= 64) { /* long runs stay out of the log */
        char word[32];
        snprintf(word, sizeof word, "d%zu", len);
        drec_log(r, word);
    }
    if (r->hooks.datagram)
        r->hooks.datagram(r, data, len, addr, addrlen);
}

static void drec_error(void *self, int error)
{
    dgram_rec *r = self;
    assert_int_equal(r->made, 1);
    assert_int_equal(r->lost, 0);
    assert_true(error < 0);
    r->errors++;
    r->last_error = error;
    char word[64];
    snprintf(word, sizeof word, "error:%s", strerrorname_np(-error));
    drec_log(r, word);
    if (r->hooks.error)
        r->hooks.error(r, error);
}

static void drec_lost(void *self, int error)
{
    dgram_rec *r = self;
    assert_int_equal(r->made, 1);
    assert_int_equal(r->lost, 0);
    r->lost++;
    r->lost_error = error;
    char word[64];
    snprintf(word, sizeof word, "lost:%s", error == 0 ? "ok" : strerrorname_np(-error));
    drec_log(r, word);
    if (r->hooks.lost)
        r->hooks.lost(r, error);
    r->transport = NULL;
}

static void drec_pause(void *self)
{
    dgram_rec *r = self;
    assert_int_equal(r->made, 1);
    assert_int_equal(r->lost, 0);
    assert_false(r->paused);
    r->paused = true;
    r->pauses++;
    r->size_at_pause = pg_datagram_transport_get_write_buffer_size(r->transport);
    drec_log(r, "pause");
    if (r->hooks.pause)
        r->hooks.pause(r);
}

static void drec_resume(void *self)
{
    dgram_rec *r = self;
    assert_int_equal(r->made, 1);
    assert_int_equal(r->lost, 0);
    assert_true(r->paused);
    r->paused = false;
    r->resumes++;
    r->size_at_resume = pg_datagram_transport_get_write_buffer_size(r->transport);
    drec_log(r, "resume");
    if (r->hooks.resume)
        r->hooks.resume(r);
}

const pg_datagram_protocol_ops dgram_rec_ops = {
    .connection_made = drec_made,
    .datagram_received = drec_datagram,
    .error_received = drec_error,
    .connection_lost = drec_lost,
    .pause_writing = drec_pause,
    .resume_writing = drec_resume,
};

void dgram_rec_init(dgram_rec *r)
{
    memset(r, 0, sizeof *r);
}

int dgram_rec_factory(void *arg, pg_datagram_protocol *out)
{
    out->ops = &dgram_rec_ops;
    out->self = arg;
    return 0;
}

void make_dgram_pair(int sv[2], int sndbuf)
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
    if (sndbuf > 0)
        assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf), 0);
}

int fill_dgram_socket(int fd)
{
    static const uint8_t small[16];
    int n = 0;
    for (;;) {
        ssize_t r = send(fd, small, sizeof small, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (r < 0) {
            assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
            return n;
        }
        assert_true(++n < 1000000);
    }
}

int drain_dgram_socket(int fd, uint8_t *firsts, int max)
{
    static uint8_t buf[512 * 1024];
    int n = 0;
    for (;;) {
        ssize_t r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (r < 0) {
            assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
            return n;
        }
        if (firsts != NULL && r > 0 && n < max)
            firsts[n] = buf[0];
        n++;
    }
}

int udp_socket_on_loopback(int family, struct sockaddr_storage *addr, socklen_t *len)
{
    int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    memset(addr, 0, sizeof *addr);
    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)addr;
        sin->sin_family = AF_INET;
        sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        *len = sizeof *sin;
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)addr;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_addr = in6addr_loopback;
        *len = sizeof *sin6;
    }
    assert_int_equal(bind(fd, (struct sockaddr *)addr, *len), 0);
    *len = sizeof *addr;
    assert_int_equal(getsockname(fd, (struct sockaddr *)addr, len), 0);
    return fd;
}

uint16_t address_port(const struct sockaddr_storage *addr)
{
    if (addr->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)addr)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)addr)->sin6_port);
}

uint16_t closed_udp_port(int family)
{
    struct sockaddr_storage addr;
    socklen_t len;
    int fd = udp_socket_on_loopback(family, &addr, &len);
    close(fd);
    return address_port(&addr);
}

void dgram_rec_echo_to_sender(dgram_rec *r, const uint8_t *data, size_t len, const struct sockaddr *addr,
                              socklen_t addrlen)
{
    assert_non_null(addr);
    assert_int_equal(pg_datagram_transport_sendto(r->transport, data, len, addr, addrlen), 0);
}

void dgram_rec_send_ping(dgram_rec *r)
{
    assert_int_equal(pg_datagram_transport_sendto(r->transport, "ping", 4, NULL, 0), 0);
}
