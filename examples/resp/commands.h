/* commands.h — the RESP example's command logic: a keyspace and the commands
 * PING, ECHO, SET, GET, DEL, EXISTS, INCR, QUIT and CONFIG GET, with replies
 * byte-identical to redis-server 7.0's (Debian 12) for these commands,
 * including its error replies.
 *
 * No I/O and nothing generated: a command arrives as its arguments (the
 * slices a RESP framer captured, multibulk or inline alike), its reply is
 * appended to a growable buffer that the caller writes with one call. The
 * buffer keeps its memory between commands, so small replies cost no
 * allocation; one buffer can serve every connection of a single-threaded
 * server when it is written and cleared after each command (or each read).
 *
 * Differences from redis-server, all outside what the example promises:
 * other commands (and CONFIG subcommands other than GET) get the unknown
 * command (subcommand) error; CONFIG GET knows only `save` ("") and
 * `appendonly` ("no"), as `redis-server --save '' --appendonly no` answers
 * them, answers other names (and glob patterns) with an empty array, and
 * lists several names in the order asked (redis-server: its hash order). */
#ifndef RESP_COMMANDS_H
#define RESP_COMMANDS_H

#include <stddef.h>
#include <stdint.h>

#include "protogen/framing.h" /* pg_slice */

#ifdef __cplusplus
extern "C" {
#endif

/* Replies, appended at data[len]. Zero-initialised (or resp_reply_init) is empty. */
typedef struct resp_reply {
    uint8_t *data;
    size_t len;
    size_t cap;
} resp_reply;

/* resp_reply_clear gives back a buffer grown above this (a large GET). */
#define RESP_REPLY_KEEP ((size_t)64 * 1024)

void resp_reply_init(resp_reply *r);
/* Empties the buffer (after the caller wrote it), keeping up to RESP_REPLY_KEEP. */
void resp_reply_clear(resp_reply *r);
void resp_reply_free(resp_reply *r);

/* The keyspace: binary-safe keys to binary-safe string values with optional
 * expiry times (SET EX/PX/EXAT/PXAT), expired lazily when touched. */
typedef struct resp_store resp_store;

/* NULL when out of memory. */
resp_store *resp_store_new(void);
void resp_store_free(resp_store *s);
/* Keys held, counting expired ones not yet touched. */
size_t resp_store_count(const resp_store *s);
/* The clock expiry times are compared with, in milliseconds since the Unix
 * epoch (redis' own unit); default: CLOCK_REALTIME. Tests set their own. */
void resp_store_set_clock(resp_store *s, int64_t (*now_ms)(void *ctx), void *ctx);

/* resp_execute's results. */
#define RESP_OK 0
#define RESP_CLOSE 1 /* QUIT: write the reply, then close the connection */

/* Runs one command, argv[0] its name (any case), and appends its reply to
 * out. argc 0 (an empty inline line, `*0`) appends nothing, as redis-server.
 * Returns RESP_OK, RESP_CLOSE, or -ENOMEM with out and the keyspace as they
 * were before the call. */
int resp_execute(resp_store *s, size_t argc, const pg_slice *argv, resp_reply *out);

#ifdef __cplusplus
}
#endif
#endif
