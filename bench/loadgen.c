/* loadgen: an epoll load generator for echo servers, on loopback.
 *
 *   loadgen --port PORT [--host 127.0.0.1] --workload pingpong|stream|churn|idle
 *           [--conns N] [--size BYTES] [--window W] [--duration SEC] [--requests N]
 *           [--pid SERVER_PID] [--timeout SEC]
 *
 * Workloads (one thread, level-triggered epoll, every socket non-blocking):
 *   pingpong  N connections; each sends SIZE bytes and waits for all of them
 *             to come back before sending again (window 1).
 *   stream    the same engine with up to W messages of SIZE bytes in flight per
 *             connection (default 4): a continuous stream of writes.
 *   churn     N slots; each connects, sends SIZE bytes, reads them back,
 *             closes, and starts again.
 *   idle      a warm-up connection (one exchange, closed), then prints "warm"
 *             and waits for a line on stdin; opens N connections, each
 *             confirmed by a 1-byte exchange, prints "ready N" and waits for a
 *             line on stdin; then closes them all.
 *
 * Connections are opened at most 64 at a time, each confirmed by a 1-byte
 * exchange (the server has accepted it), before the measured interval starts.
 * The run stops after --duration seconds or --requests messages (connections
 * for churn), whichever comes first; --requests 0 only opens and closes the
 * connections. Messages in flight are then drained. --timeout bounds it all.
 *
 * Prints one line of key=value pairs: messages, bytes echoed, seconds, latency
 * percentiles (from the first byte sent to the last byte back), and with --pid
 * the server's CPU time and sleeps over the interval (proc_usage_of).
 * Exit status 0, or 1 when anything failed (errors=N says how many). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_WINDOW 64
#define MAX_CONNECTING 64
#define RECV_SIZE (256 * 1024)

enum workload { PINGPONG, STREAM, CHURN, IDLE };

static struct {
    const char *host;
    int port;
    enum workload workload;
    int conns;
    size_t size;
    int window;
    double duration;
    long long requests; /* -1: unlimited */
    long pid;
    double timeout;
} opt = { "127.0.0.1", 0, PINGPONG, 1, 64, 0, 3.0, -1, 0, 0 };

static struct sockaddr_in server_addr;
static uint8_t *send_buf;
static uint8_t recv_buf[RECV_SIZE];
static int epfd;
static long long errors;
static uint64_t hard_deadline;

/* ---- time, CPU ---------------------------------------------------------- */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* What the server spent over the interval, summed over its threads: time on
 * a CPU (/proc/PID/task/TID/schedstat, nanoseconds; utime + stime from
 * /proc/PID/stat, 10 ms ticks, where the kernel keeps no schedstat) and its
 * sleeps (voluntary context switches: a wait that blocked, then a wake-up,
 * which costs more than the system call itself). Fields are -1 when
 * unreadable. */
typedef struct {
    double cpu_s;
    long long sleeps;
} proc_usage;

static bool read_small_file(const char *path, char *text, size_t size)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    size_t n = fread(text, 1, size - 1, f);
    fclose(f);
    text[n] = '\0';
    return true;
}

static double proc_stat_cpu_seconds(long pid)
{
    char path[64], text[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    if (!read_small_file(path, text, sizeof text))
        return -1;
    char *p = strrchr(text, ')'); /* the command name may hold spaces */
    unsigned long long utime, stime;
    /* after ")": state(3) ... utime is field 14, stime 15 */
    if (p == NULL
        || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2)
        return -1;
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

static proc_usage proc_usage_of(long pid)
{
    proc_usage u = { 0, 0 };
    char path[300], text[4096];
    snprintf(path, sizeof path, "/proc/%ld/task", pid);
    DIR *d = opendir(path);
    if (d == NULL)
        return (proc_usage){ -1, -1 };
    bool schedstat = true;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        unsigned long long ns;
        snprintf(path, sizeof path, "/proc/%ld/task/%s/schedstat", pid, e->d_name);
        if (schedstat && read_small_file(path, text, sizeof text) && sscanf(text, "%llu", &ns) == 1)
            u.cpu_s += (double)ns / 1e9;
        else
            schedstat = false;
        snprintf(path, sizeof path, "/proc/%ld/task/%s/status", pid, e->d_name);
        const char *v = read_small_file(path, text, sizeof text) ? strstr(text, "\nvoluntary_ctxt_switches:") : NULL;
        if (v != NULL && u.sleeps >= 0)
            u.sleeps += atoll(v + strlen("\nvoluntary_ctxt_switches:"));
        else
            u.sleeps = -1;
    }
    closedir(d);
    if (!schedstat)
        u.cpu_s = proc_stat_cpu_seconds(pid);
    return u;
}

static double self_cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec
           + ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
}

/* ---- latency histogram: log-linear, 32 sub-buckets per power of two (<3%) */

#define HIST_BUCKETS (64 + 58 * 32)
static uint64_t hist[HIST_BUCKETS];
static uint64_t hist_count;

static int hist_index(uint64_t v)
{
    if (v < 64)
        return (int)v;
    int msb = 63 - __builtin_clzll(v);
    int shift = msb - 5; /* v >> shift is in [32, 63] */
    return 64 + (shift - 1) * 32 + (int)((v >> shift) - 32);
}

static double hist_value(int i)
{
    if (i < 64)
        return i;
    int shift = (i - 64) / 32 + 1;
    uint64_t low = (uint64_t)((i - 64) % 32 + 32) << shift;
    return (double)low + (double)(1ull << shift) / 2;
}

static void hist_add(uint64_t ns)
{
    hist[hist_index(ns)]++;
    hist_count++;
}

static double hist_percentile(double p)
{
    if (hist_count == 0)
        return 0;
    uint64_t rank = (uint64_t)(p * (double)hist_count), seen = 0;
    if (rank >= hist_count)
        rank = hist_count - 1;
    for (int i = 0; i < HIST_BUCKETS; i++) {
        seen += hist[i];
        if (seen > rank)
            return hist_value(i);
    }
    return 0;
}

/* ---- connections -------------------------------------------------------- */

enum state { CONNECTING, HANDSHAKE, ACTIVE, CLOSED };

struct conn {
    int fd;
    enum state state;
    uint32_t events;
    size_t send_off;      /* bytes of the message being sent */
    int send_pending;     /* messages started (or waiting to be) and not fully sent */
    int in_flight;        /* messages started and not fully echoed */
    size_t recv_bytes;    /* bytes of the oldest in-flight message received */
    uint64_t started[MAX_WINDOW]; /* a ring: start times of in-flight messages */
    int head;
};

static struct conn *conns;
static int connecting; /* in CONNECTING or HANDSHAKE */
static int active;     /* ACTIVE */

static void watch(struct conn *c, uint32_t events)
{
    if (events == c->events)
        return;
    struct epoll_event ev = { .events = events, .data.ptr = c };
    int op = c->events == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
    if (epoll_ctl(epfd, op, c->fd, &ev) < 0) {
        perror("loadgen: epoll_ctl");
        exit(1);
    }
    c->events = events;
}

static void conn_close(struct conn *c)
{
    if (c->state == CLOSED)
        return;
    if (c->state == ACTIVE)
        active--;
    else
        connecting--;
    close(c->fd); /* also leaves the epoll set */
    c->fd = -1;
    c->state = CLOSED;
    c->events = 0;
}

static void conn_fail(struct conn *c, const char *what, int err)
{
    if (errors < 5)
        fprintf(stderr, "loadgen: %s: %s\n", what, strerror(err));
    errors++;
    conn_close(c);
}

static void conn_open(struct conn *c)
{
    memset(c, 0, sizeof *c);
    c->state = CLOSED;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        errors++;
        fprintf(stderr, "loadgen: socket: %s\n", strerror(errno));
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->fd = fd;
    c->state = CONNECTING;
    connecting++;
    if (connect(fd, (struct sockaddr *)&server_addr, sizeof server_addr) < 0 && errno != EINPROGRESS) {
        conn_fail(c, "connect", errno);
        return;
    }
    watch(c, EPOLLOUT);
}

static bool may_start(long long *started)
{
    return opt.requests < 0 || *started < opt.requests;
}

static void conn_send(struct conn *c)
{
    while (c->send_pending > 0) {
        ssize_t n = send(c->fd, send_buf + c->send_off, opt.size - c->send_off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            conn_fail(c, "send", errno);
            return;
        }
        c->send_off += (size_t)n;
        if (c->send_off == opt.size) {
            c->send_off = 0;
            c->send_pending--;
        }
    }
    watch(c, c->send_pending > 0 ? EPOLLIN | EPOLLOUT : EPOLLIN);
}

/* ---- the run ------------------------------------------------------------ */

static bool stopping; /* no new messages or connections */
static long long started_msgs, done_msgs;
static unsigned long long echoed_bytes;
static uint64_t deadline;

/* Starts messages up to the window; sends what the socket takes. */
static void start_messages(struct conn *c)
{
    int window = opt.workload == STREAM ? opt.window : 1;
    bool any = false;
    while (!stopping && c->in_flight < window && may_start(&started_msgs)) {
        c->started[(c->head + c->in_flight) % MAX_WINDOW] = now_ns();
        c->in_flight++;
        c->send_pending++;
        started_msgs++;
        any = true;
    }
    if (any)
        conn_send(c);
}

/* Churn: a connection is a message, timed from the connect. */
static void churn_open(struct conn *c)
{
    conn_open(c);
    c->started[0] = now_ns();
    c->in_flight = 1;
    started_msgs++;
}

/* A connection is confirmed: the server echoed the handshake byte. */
static void conn_ready(struct conn *c)
{
    connecting--;
    active++;
    c->state = ACTIVE;
    watch(c, EPOLLIN);
}

static void on_event(struct conn *c, uint32_t events)
{
    if (c->state == CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
            conn_fail(c, "connect", err);
            return;
        }
        c->state = HANDSHAKE;
        if (opt.workload == CHURN) { /* the exchange is the message, started at connect */
            conn_ready(c);
            c->send_pending = 1;
            conn_send(c);
            return;
        }
        if (send(c->fd, "h", 1, MSG_NOSIGNAL) != 1) {
            conn_fail(c, "send", errno);
            return;
        }
        watch(c, EPOLLIN);
        return;
    }
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        ssize_t n = recv(c->fd, recv_buf, sizeof recv_buf, 0);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                conn_fail(c, "recv", errno);
            return;
        }
        if (n == 0) {
            conn_fail(c, "recv", ECONNRESET); /* the server closed: not expected */
            return;
        }
        if (c->state == HANDSHAKE) {
            conn_ready(c);
            return;
        }
        if (c->in_flight == 0) {
            conn_fail(c, "recv", EPROTO); /* more bytes than were sent */
            return;
        }
        size_t got = (size_t)n;
        echoed_bytes += got;
        uint64_t t = now_ns();
        while (got > 0 && c->in_flight > 0) {
            size_t need = opt.size - c->recv_bytes;
            size_t take = got < need ? got : need;
            c->recv_bytes += take;
            got -= take;
            if (c->recv_bytes == opt.size) {
                hist_add(t - c->started[c->head]);
                c->head = (c->head + 1) % MAX_WINDOW;
                c->in_flight--;
                c->recv_bytes = 0;
                done_msgs++;
            }
        }
        if (got > 0) {
            conn_fail(c, "recv", EPROTO);
            return;
        }
        if (opt.workload == CHURN && c->in_flight == 0) {
            conn_close(c);
            return;
        }
        start_messages(c);
        if (c->state == CLOSED)
            return;
    }
    if ((events & EPOLLOUT) && c->state == ACTIVE && c->send_pending > 0)
        conn_send(c);
}

/* One epoll wait, at most timeout_ms. */
static void poll_once(int timeout_ms)
{
    struct epoll_event evs[256];
    int n = epoll_wait(epfd, evs, 256, timeout_ms);
    if (n < 0 && errno != EINTR) {
        perror("loadgen: epoll_wait");
        exit(1);
    }
    for (int i = 0; i < n; i++)
        on_event(evs[i].data.ptr, evs[i].events);
}

static void check_hard_deadline(const char *phase)
{
    if (now_ns() > hard_deadline) {
        fprintf(stderr, "loadgen: timed out while %s\n", phase);
        printf("errors=%lld timeout=1\n", errors + 1);
        exit(1);
    }
}

/* Opens conns connections, at most MAX_CONNECTING at a time. */
static void open_all(int n)
{
    int opened = 0;
    while (opened < n || connecting > 0) {
        while (opened < n && connecting < MAX_CONNECTING)
            conn_open(&conns[opened++]);
        if (errors > 0)
            return;
        poll_once(100);
        check_hard_deadline("connecting");
    }
}

static void close_all(int n)
{
    for (int i = 0; i < n; i++)
        conn_close(&conns[i]);
}

static void wait_for_stdin_line(void)
{
    char line[64];
    struct pollfd p = { .fd = 0, .events = POLLIN };
    int left = (int)((hard_deadline - now_ns()) / 1000000);
    if (left <= 0 || poll(&p, 1, left) <= 0 || fgets(line, sizeof line, stdin) == NULL)
        check_hard_deadline("waiting for the driver");
}

static void usage(void)
{
    fprintf(stderr, "usage: loadgen --port PORT [--host A.B.C.D] --workload pingpong|stream|churn|idle\n"
                    "               [--conns N] [--size BYTES] [--window W] [--duration SEC]\n"
                    "               [--requests N] [--pid SERVER_PID] [--timeout SEC]\n");
    exit(2);
}

static void parse(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *name = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (val == NULL)
            usage();
        i++;
        if (strcmp(name, "--host") == 0)
            opt.host = val;
        else if (strcmp(name, "--port") == 0)
            opt.port = atoi(val);
        else if (strcmp(name, "--conns") == 0)
            opt.conns = atoi(val);
        else if (strcmp(name, "--size") == 0)
            opt.size = (size_t)atol(val);
        else if (strcmp(name, "--window") == 0)
            opt.window = atoi(val);
        else if (strcmp(name, "--duration") == 0)
            opt.duration = atof(val);
        else if (strcmp(name, "--requests") == 0)
            opt.requests = atoll(val);
        else if (strcmp(name, "--pid") == 0)
            opt.pid = atol(val);
        else if (strcmp(name, "--timeout") == 0)
            opt.timeout = atof(val);
        else if (strcmp(name, "--workload") == 0) {
            if (strcmp(val, "pingpong") == 0)
                opt.workload = PINGPONG;
            else if (strcmp(val, "stream") == 0)
                opt.workload = STREAM;
            else if (strcmp(val, "churn") == 0)
                opt.workload = CHURN;
            else if (strcmp(val, "idle") == 0)
                opt.workload = IDLE;
            else
                usage();
        } else
            usage();
    }
    if (opt.window == 0)
        opt.window = 4;
    if (opt.port <= 0 || opt.port > 65535 || opt.conns < 1 || opt.size < 1 || opt.window < 1
        || opt.window > MAX_WINDOW || opt.duration <= 0)
        usage();
    if (opt.timeout <= 0)
        opt.timeout = opt.duration + 60;
}

/* Enough descriptors for the connections: raise the soft limit up to the hard one. */
static void raise_fd_limit(int need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= (rlim_t)need)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > (rlim_t)need ? (rlim_t)need : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < (rlim_t)need) {
        fprintf(stderr, "loadgen: need %d descriptors, the limit is %llu\n", need,
                (unsigned long long)rl.rlim_cur);
        printf("errors=1 fd_limit=%llu\n", (unsigned long long)rl.rlim_cur);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    parse(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit(opt.conns + 64);
    server_addr.sin_family = AF_INET;
    server_addr.sin_port = htons((uint16_t)opt.port);
    if (inet_pton(AF_INET, opt.host, &server_addr.sin_addr) != 1)
        usage();
    send_buf = malloc(opt.size);
    conns = calloc((size_t)opt.conns, sizeof *conns);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (send_buf == NULL || conns == NULL || epfd < 0) {
        perror("loadgen");
        return 1;
    }
    for (size_t i = 0; i < opt.size; i++)
        send_buf[i] = (uint8_t)('a' + i % 26);
    hard_deadline = now_ns() + (uint64_t)(opt.timeout * 1e9);

    for (int i = 0; i < opt.conns; i++)
        conns[i].state = CLOSED;
    if (opt.workload == IDLE) {
        open_all(1);
        close_all(1);
        printf("warm\n");
        fflush(stdout);
        wait_for_stdin_line();
        open_all(opt.conns);
        printf("ready %d\n", active);
        fflush(stdout);
        wait_for_stdin_line();
        close_all(opt.conns);
        printf("conns=%d errors=%lld\n", opt.conns, errors);
        return errors == 0 ? 0 : 1;
    }

    if (opt.workload != CHURN)
        open_all(opt.conns);
    proc_usage srv0 = opt.pid > 0 ? proc_usage_of(opt.pid) : (proc_usage){ 0, 0 };
    double self0 = self_cpu_seconds();
    uint64_t t0 = now_ns();
    deadline = t0 + (uint64_t)(opt.duration * 1e9);
    if (opt.workload != CHURN)
        for (int i = 0; i < opt.conns; i++)
            start_messages(&conns[i]);
    while (errors == 0) {
        if (!stopping && now_ns() >= deadline)
            stopping = true;
        if (opt.workload == CHURN) {
            for (int i = 0; i < opt.conns && !stopping; i++) /* refill the finished slots */
                if (conns[i].state == CLOSED && may_start(&started_msgs))
                    churn_open(&conns[i]);
            if (active + connecting == 0)
                break;
        } else if (started_msgs == done_msgs && (stopping || !may_start(&started_msgs))) {
            break;
        }
        poll_once(10);
        check_hard_deadline("running");
    }
    uint64_t t1 = now_ns();
    proc_usage srv1 = opt.pid > 0 ? proc_usage_of(opt.pid) : (proc_usage){ 0, 0 };
    double self1 = self_cpu_seconds();
    close_all(opt.conns);
    double secs = (double)(t1 - t0) / 1e9;
    printf("messages=%lld bytes=%llu seconds=%.6f p50_us=%.2f p99_us=%.2f server_cpu_s=%.6f "
           "server_sleeps=%lld client_cpu_s=%.3f errors=%lld\n",
           done_msgs, echoed_bytes, secs, hist_percentile(0.50) / 1000, hist_percentile(0.99) / 1000,
           srv1.cpu_s - srv0.cpu_s, srv0.sleeps < 0 || srv1.sleeps < 0 ? -1 : srv1.sleeps - srv0.sleeps,
           self1 - self0, errors);
    return errors == 0 ? 0 : 1;
}
