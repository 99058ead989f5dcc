/* shouter on the manual host, linked against protogen::core alone: the
 * program hands the bytes in and takes out what the protocol wrote. */
#include <stdio.h>
#include <string.h>

#include <protogen/manual.h>

#include "shouter.h"

int main(void)
{
    pg_manual_host *mh;
    pg_manual_stream *ms;
    if (pg_manual_host_new(&mh) < 0)
        return 1;
    if (pg_manual_stream_new(pg_manual_host_host(mh), PG_STREAM_CAN_WRITE_EOF, shouter_protocol_factory, NULL, &ms) < 0)
        return 1;
    pg_manual_host_run(mh); /* connection_made */
    if (pg_manual_stream_feed(ms, "hello, ", 7) != 7 || pg_manual_stream_feed(ms, "core", 4) != 4)
        return 1;
    pg_manual_stream_feed_eof(ms); /* eof_received says close */
    while (pg_manual_host_pending(mh))
        pg_manual_host_run(mh);
    size_t len;
    const uint8_t *out = pg_manual_stream_output(ms, &len);
    int ok = pg_manual_stream_closed(ms) && len == 11 && memcmp(out, "HELLO, CORE", 11) == 0;
    printf("shouter: %.*s on protogen::core %s\n", (int)len, (const char *)out, ok ? "ok" : "FAILED");
    pg_manual_stream_free(ms);
    pg_manual_host_free(mh);
    return ok ? 0 : 1;
}
