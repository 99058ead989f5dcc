/* lenp_handlers.c — the length-prefixed echo of test_length.c: each message
 * is logged, then written back with its header (NAME_message_header). */
#include <stdio.h>

#include "lenp.h"
#include "lenp_test.h"

struct lenp_session {
    int unused;
};

const size_t lenp_session_size = sizeof(struct lenp_session);

void lenp_on_message_received(lenp_conn *conn, struct lenp_session *session, const uint8_t *data, size_t len)
{
    (void)session;
    struct lenp_log *log = lenp_context(conn);
    int n = snprintf(log->text + log->used, sizeof log->text - log->used, "%zu@%llu|", len,
                     (unsigned long long)lenp_message_position(conn));
    if (n > 0 && (size_t)n < sizeof log->text - log->used)
        log->used += (size_t)n;
    log->payload_bytes += len;
    size_t hlen;
    const uint8_t *header = lenp_message_header(conn, &hlen);
    const struct iovec iov[2] = { { (void *)header, hlen }, { (void *)data, len } };
    (void)lenp_writelines(conn, iov, 2);
}
