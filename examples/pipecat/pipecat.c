/* pipecat: copies stdin to stdout through a read pipe transport and a write
 * pipe transport (asyncio's connect_read_pipe / connect_write_pipe), with
 * flow control between them: memory stays bounded however slow the reader
 * of stdout is.
 *
 *   producer | pipecat | consumer
 *
 * stdin and stdout must be pipes, FIFOs, sockets or terminals (not regular
 * files: they are always "ready", as asyncio refuses them too). Exits 0 after
 * copying everything; 1 with a message when stdout's reader went away first
 * (EPIPE: no SIGPIPE kills it) or on another error. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "pipecat.h"

int main(void)
{
    struct pipecat cat = { 0 };
    int rc = pg_loop_new(&cat.loop);
    if (rc == 0)
        rc = cat_out_connect_pipe(cat.loop, STDOUT_FILENO, &cat, &cat.out);
    if (rc == 0) {
        rc = cat_in_connect_pipe(cat.loop, STDIN_FILENO, &cat, &cat.in);
        if (rc < 0)
            cat_out_close(cat.out);
    }
    if (rc < 0) {
        fprintf(stderr, "pipecat: %s\n", strerror(-rc));
        if (cat.out != NULL)
            while (cat.out != NULL && pg_loop_run_once(cat.loop, -1) == 0)
                ;
        if (cat.loop != NULL)
            pg_loop_close(cat.loop);
        return 1;
    }
    rc = pg_loop_run(cat.loop);
    pg_loop_close(cat.loop);
    if (rc < 0 || cat.in_error < 0 || cat.out_error < 0) {
        int err = rc < 0 ? rc : cat.out_error < 0 ? cat.out_error : cat.in_error;
        fprintf(stderr, "pipecat: %s after %llu bytes\n", strerrorname_np(-err), cat.bytes);
        return 1;
    }
    return 0;
}
