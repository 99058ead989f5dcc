/* What the UDP echo server's main and its handlers share. */
#ifndef UDP_ECHO_SERVER_H
#define UDP_ECHO_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include <protogen/protogen.h>

struct udp_echo_conn;

struct udp_echo_server {
    pg_loop *loop;
    struct udp_echo_conn *endpoint; /* from connection_made until connection_lost */
    size_t datagrams;               /* echoed */
    int lost_error;                 /* connection_lost's error */
    bool lost;
};

#endif
