/* Listens on a free loopback port, runs the loop once, and shuts down. */
#include <stdio.h>
#include <string.h>

#include "greeter.h"

int main(void)
{
    pg_loop *loop;
    pg_server *server;
    int rc = pg_loop_new(&loop);
    if (rc < 0)
        return 1;
    rc = greeter_listen(loop, "127.0.0.1", 0, NULL, NULL, &server);
    if (rc < 0) {
        fprintf(stderr, "greeter: %s\n", strerror(-rc));
        pg_loop_close(loop);
        return 1;
    }
    pg_server_close(server);
    rc = pg_loop_run_once(loop, 0);
    pg_loop_close(loop);
    printf("greeter: built against protogen %s\n", PG_VERSION_STRING);
    return rc == 0 ? 0 : 1;
}
