/* pgtimeout: what its three parts share. pgtimeout.c parses the command line,
 * starts the child and keeps the clocks; monitored_handlers.c is the child's
 * protocol; relay_*_handlers.c and relays.c relay pgtimeout's own stdin, stdout and stderr
 * to and from the child's. */
#ifndef PGTIMEOUT_H
#define PGTIMEOUT_H

#include <stdbool.h>
#include <stdint.h>

#include "monitored.h"
#include "relay_in.h"
#include "relay_out.h"

/* coreutils timeout's exit statuses. */
enum {
    PGTIMEOUT_TIMED_OUT = 124, /* the time ran out and SIGTERM (or the command itself) ended it */
    PGTIMEOUT_FAILED = 125,    /* pgtimeout itself failed */
    PGTIMEOUT_CANNOT_RUN = 126,
    PGTIMEOUT_NOT_FOUND = 127,
};

struct pgtimeout;

/* The context of one of our own output relays. */
struct relay_end {
    struct pgtimeout *app;
    int fd; /* 1 or 2 */
};

struct pgtimeout {
    pg_loop *loop;
    pg_subprocess *proc;     /* held from the spawn until exit */
    monitored_conn *child;   /* from connection_made to connection_lost */
    bool child_done;         /* its connection_lost came */

    /* Our own stdin, stdout and stderr. A relayed one (a pipe, a socket, a
     * terminal) is read or written by a pipe transport; any other (a file,
     * /dev/null, closed) is given to the child as it is. */
    bool relayed[3];
    int saved_flags[3];      /* file status flags to restore at exit (-1: none) */
    relay_in_conn *in;       /* NULL when not relayed or closed */
    relay_out_conn *out[3];  /* [1] and [2]; NULL when not relayed or closed */
    struct relay_end ends[3];

    /* The clocks, as coreutils timeout: TERM after timeout_ms, then KILL
     * grace_ms later; 0 means never. */
    uint64_t timeout_ms, grace_ms;
    bool foreground;         /* the child stays in our process group: signal it alone */
    pg_timer timeout_timer, grace_timer;
    bool timed_out;          /* the timeout fired while the child ran */
};

/* Sends signo to the child and, unless foreground, to its process group. */
void pgtimeout_signal(struct pgtimeout *app, int signo);
/* Whether our fd can be relayed: a pipe, socket or terminal that epoll takes. */
bool pgtimeout_can_relay(int fd, bool for_reading);
/* Starts the relays of our own stdio (from the child's connection_made). */
void pgtimeout_start_relays(struct pgtimeout *app);
/* Stops the loop once the child is done and every relay has closed. */
void pgtimeout_maybe_finish(struct pgtimeout *app);

#endif
