/* backend_run BACKEND COMMAND [ARG...]: runs COMMAND with the loop's backend
 * forced to BACKEND (PROTOGEN_BACKEND), once a loop was made on it here;
 * exits 77 (ctest's skip, tests/backends.cmake) when the kernel refuses it,
 * as a container's seccomp profile may refuse io_uring. */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "protogen/loop.h"

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s BACKEND COMMAND [ARG...]\n", argv[0]);
        return 2;
    }
    if (setenv("PROTOGEN_BACKEND", argv[1], 1) != 0) {
        perror("setenv");
        return 2;
    }
    pg_loop *loop;
    int r = pg_loop_new(&loop);
    if (r < 0) {
        fprintf(stderr, "backend_run: no %s loop here (%s): skipped\n", argv[1], strerror(-r));
        return r == -EINVAL ? 2 : 77; /* EINVAL: no such backend, a mistake in the test's registration */
    }
    const char *got = pg_loop_backend(loop);
    if (strcmp(got, argv[1]) != 0) {
        fprintf(stderr, "backend_run: asked for %s, the loop runs on %s\n", argv[1], got);
        return 2;
    }
    pg_loop_close(loop);
    execvp(argv[2], argv + 2);
    fprintf(stderr, "backend_run: %s: %s\n", argv[2], strerror(errno));
    return 2;
}
