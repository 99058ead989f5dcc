/* uv_echo: the same echo job on libuv (Debian's libuv1-dev), written as libuv's
 * own examples do, with the fast path a careful libuv user takes.
 *
 *   uv_echo [--host A.B.C.D] [--port PORT]
 *
 * Prints "listening on HOST:PORT" (PORT 0 picks a free port); SIGINT or SIGTERM
 * ends it. Reads go to one shared 256 KiB buffer; uv_try_write sends them back
 * at once, and only what the kernel does not take is copied into a uv_write
 * request, with reading stopped until it is written (back-pressure).
 * Connections get TCP_NODELAY, as protogen's and asyncio's do. */
#define _GNU_SOURCE /* uv.h needs the POSIX types that strict C11 hides */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <uv.h>

#define READ_SIZE (256 * 1024)

static char buf[READ_SIZE];
static uv_loop_t *loop;

struct write_req {
    uv_write_t req;
    uv_buf_t data;
};

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *out)
{
    (void)handle;
    (void)suggested;
    *out = uv_buf_init(buf, sizeof buf);
}

static void on_close(uv_handle_t *handle)
{
    free(handle);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *b);

static void on_write(uv_write_t *req, int status)
{
    struct write_req *w = (struct write_req *)req;
    uv_stream_t *stream = req->handle;
    free(w->data.base);
    free(w);
    if (status < 0) {
        if (!uv_is_closing((uv_handle_t *)stream))
            uv_close((uv_handle_t *)stream, on_close);
        return;
    }
    if (stream->write_queue_size == 0 && !uv_is_closing((uv_handle_t *)stream))
        uv_read_start(stream, on_alloc, on_read);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *b)
{
    if (nread == 0)
        return; /* EAGAIN */
    if (nread < 0) {
        uv_close((uv_handle_t *)stream, on_close); /* EOF or error; nothing is pending while we read */
        return;
    }
    uv_buf_t data = uv_buf_init(b->base, (unsigned)nread);
    int sent = uv_try_write(stream, &data, 1);
    if (sent == nread)
        return;
    if (sent == UV_EAGAIN)
        sent = 0;
    struct write_req *w = sent < 0 ? NULL : malloc(sizeof *w);
    char *rest = w == NULL ? NULL : malloc((size_t)(nread - sent));
    if (rest == NULL) {
        free(w);
        uv_close((uv_handle_t *)stream, on_close);
        return;
    }
    memcpy(rest, b->base + sent, (size_t)(nread - sent));
    w->data = uv_buf_init(rest, (unsigned)(nread - sent));
    uv_read_stop(stream);
    if (uv_write(&w->req, stream, &w->data, 1, on_write) < 0) {
        free(rest);
        free(w);
        uv_close((uv_handle_t *)stream, on_close);
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status < 0)
        return;
    uv_tcp_t *client = malloc(sizeof *client);
    if (client == NULL)
        return;
    uv_tcp_init(loop, client);
    if (uv_accept(server, (uv_stream_t *)client) < 0) {
        uv_close((uv_handle_t *)client, on_close);
        return;
    }
    uv_tcp_nodelay(client, 1);
    uv_read_start((uv_stream_t *)client, on_alloc, on_read);
}

static void on_signal(uv_signal_t *handle, int signo)
{
    (void)signo;
    uv_stop(handle->loop);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 7777;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--host") == 0)
            host = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--port") == 0)
            port = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--host A.B.C.D] [--port PORT]\n", argv[0]);
            return 2;
        }
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    loop = uv_default_loop();
    uv_tcp_t server;
    struct sockaddr_in addr;
    int r = uv_ip4_addr(host, port, &addr);
    if (r == 0)
        r = uv_tcp_init(loop, &server);
    if (r == 0)
        r = uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0);
    if (r == 0)
        r = uv_listen((uv_stream_t *)&server, 128, on_connection);
    if (r < 0) {
        fprintf(stderr, "uv_echo: cannot listen on %s:%d: %s\n", host, port, uv_strerror(r));
        return 1;
    }
    int len = sizeof addr;
    uv_tcp_getsockname(&server, (struct sockaddr *)&addr, &len);
    printf("listening on %s:%d\n", host, ntohs(addr.sin_port));
    fflush(stdout);

    uv_signal_t sigint, sigterm;
    uv_signal_init(loop, &sigint);
    uv_signal_init(loop, &sigterm);
    uv_signal_start(&sigint, on_signal, SIGINT);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_run(loop, UV_RUN_DEFAULT);
    return 0;
}
