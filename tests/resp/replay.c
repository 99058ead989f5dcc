/* resp_replay: runs commands through examples/resp's resp_execute with no
 * server and no framer, so that tests/resp/conformance.py --replay can hold
 * the command logic's replies against a real redis-server's.
 *
 * stdin, records one after another (integers 4-byte little-endian):
 *   'C'                          a new connection
 *   'X' argc {len bytes}*argc    a command
 *   'F'                          end of a step: write the replies gathered
 * stdout, per 'F': len, the reply bytes, one byte 1 if QUIT closed the
 * connection (commands after it on that connection are not run). */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"

static bool read_exact(void *p, size_t n)
{
    return fread(p, 1, n, stdin) == n;
}

static bool read_u32(uint32_t *v)
{
    uint8_t b[4];
    if (!read_exact(b, 4))
        return false;
    *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    return true;
}

static void write_u32(uint32_t v)
{
    uint8_t b[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };
    fwrite(b, 1, 4, stdout);
}

static int fail(const char *why)
{
    fprintf(stderr, "resp_replay: %s\n", why);
    return 2;
}

int main(void)
{
    resp_store *s = resp_store_new();
    resp_reply out;
    resp_reply_init(&out);
    bool closed = false;
    int c;
    if (s == NULL)
        return fail("out of memory");
    while ((c = getchar()) != EOF) {
        if (c == 'C') {
            closed = false;
        } else if (c == 'F') {
            write_u32((uint32_t)out.len);
            fwrite(out.data, 1, out.len, stdout);
            putchar(closed);
            fflush(stdout);
            resp_reply_clear(&out);
        } else if (c == 'X') {
            uint32_t argc;
            if (!read_u32(&argc) || argc > 4096)
                return fail("bad argc");
            pg_slice *argv = calloc(argc ? argc : 1, sizeof *argv);
            for (uint32_t i = 0; i < argc; i++) {
                uint32_t len;
                uint8_t *p;
                if (!read_u32(&len) || (p = malloc(len ? len : 1)) == NULL || !read_exact(p, len))
                    return fail("bad argument");
                argv[i] = (pg_slice){ p, len };
            }
            if (!closed) {
                int rc = resp_execute(s, argc, argv, &out);
                if (rc < 0)
                    return fail(strerror(-rc));
                closed = rc == RESP_CLOSE;
            }
            for (uint32_t i = 0; i < argc; i++)
                free((void *)argv[i].data);
            free(argv);
        } else {
            return fail("bad record");
        }
    }
    resp_reply_free(&out);
    resp_store_free(s);
    return 0;
}
