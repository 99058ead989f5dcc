/* For the datagram tests: a recording DatagramProtocol that asserts asyncio's
 * callback order on every call, and datagram socket helpers. */
#ifndef PG_DGRAM_RECORDER_H
#define PG_DGRAM_RECORDER_H

#include <sys/socket.h>

#include "testutil.h"

typedef struct dgram_rec dgram_rec;

/* Optional hooks, called after the event was recorded. */
typedef struct dgram_hooks {
    void (*made)(dgram_rec *r);
    void (*datagram)(dgram_rec *r, const uint8_t *data, size_t len, const struct sockaddr *addr,
                     socklen_t addrlen);
    void (*error)(dgram_rec *r, int error);
    void (*lost)(dgram_rec *r, int error);
    void (*pause)(dgram_rec *r);
    void (*resume)(dgram_rec *r);
} dgram_hooks;

#define DGRAM_REC_MAX_SEQS 4096

struct dgram_rec {
    pg_datagram_transport *transport; /* from connection_made until connection_lost */
    dgram_hooks hooks;
    bool pause_reading_in_made;
    void *user;

    int made, datagrams, errors, lost, pauses, resumes;
    int lost_error, last_error;
    bool paused; /* the protocol's view of flow control */
    size_t size_at_pause, size_at_resume;
    size_t bytes;

    /* The last datagram and its sender. */
    uint8_t last[256];
    size_t last_len;
    struct sockaddr_storage last_addr;
    socklen_t last_addrlen;

    /* The first byte of each datagram of at least one byte, in order. */
    uint8_t firsts[DGRAM_REC_MAX_SEQS];
    int nfirsts;

    /* The order of events, e.g. "made d5 d0 error:ECONNREFUSED pause resume lost:ok". */
    char log[1024];
};

extern const pg_datagram_protocol_ops dgram_rec_ops;

void dgram_rec_init(dgram_rec *r);
/* A pg_datagram_protocol_factory: arg is the recorder. */
int dgram_rec_factory(void *arg, pg_datagram_protocol *out);

/* Hooks many tests share: send every datagram back to where it came from;
 * send "ping" to a connected endpoint's peer. */
void dgram_rec_echo_to_sender(dgram_rec *r, const uint8_t *data, size_t len, const struct sockaddr *addr,
                              socklen_t addrlen);
void dgram_rec_send_ping(dgram_rec *r);

/* A Unix datagram socketpair (non-blocking); sndbuf > 0 shrinks sv[0]'s send
 * buffer, so that sends from it run out of room soon. */
void make_dgram_pair(int sv[2], int sndbuf);
/* Sends small datagrams from fd until the kernel takes no more; returns how many. */
int fill_dgram_socket(int fd);
/* Receives every datagram waiting on fd (non-blocking); returns how many. The
 * first byte of each lands in firsts (when not NULL, up to max). */
int drain_dgram_socket(int fd, uint8_t *firsts, int max);

/* A UDP socket bound to an ephemeral port of the loopback address of family
 * (AF_INET or AF_INET6), non-blocking; its address in *addr. */
int udp_socket_on_loopback(int family, struct sockaddr_storage *addr, socklen_t *len);
/* The port of a socket address. */
uint16_t address_port(const struct sockaddr_storage *addr);
/* A loopback UDP port nothing is bound to (bound, then closed). */
uint16_t closed_udp_port(int family);

#endif
