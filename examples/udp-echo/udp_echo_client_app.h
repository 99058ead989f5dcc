/* What the UDP echo client's main and its handlers share. */
#ifndef UDP_ECHO_CLIENT_APP_H
#define UDP_ECHO_CLIENT_APP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protogen/protogen.h>

struct udp_echo_client_conn;

/* One datagram sent and not yet resolved (echoed, or given up as lost). */
struct udp_echo_client_slot {
    uint64_t seq;
    uint64_t sent_ms;
    bool waiting;
};

struct udp_echo_client_app {
    pg_loop *loop;
    struct udp_echo_client_conn *conn;
    uint64_t count;   /* datagrams to send */
    size_t size;      /* bytes each, at least 8: the sequence number comes first */
    uint64_t window;  /* at most this many unresolved datagrams */
    uint64_t loss_timeout_ms;

    /* The window: datagrams base .. next-1 are out; slots[seq % window]. */
    struct udp_echo_client_slot *slots;
    uint64_t base, next;
    uint64_t echoed, lost, corrupt, stray; /* stray: a duplicate or a late echo */
    bool writing_paused;
    pg_timer loss_timer;

    int error;        /* error_received's or connection_lost's error */
    bool finished;
};

/* Byte i of datagram seq after its 8-byte sequence number. */
static inline uint8_t udp_echo_client_payload_byte(uint64_t seq, size_t i)
{
    return (uint8_t)((seq + i) % 251u);
}

#endif
