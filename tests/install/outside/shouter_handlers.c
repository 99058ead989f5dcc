/* shouter's handlers: every byte comes back upper-cased; EOF closes. */
#include <ctype.h>

#include "shouter.h"

struct shouter_session {
    size_t bytes_received;
};

const size_t shouter_session_size = sizeof(struct shouter_session);

void shouter_on_data_received(shouter_conn *conn, struct shouter_session *session, const uint8_t *data, size_t len)
{
    uint8_t loud[256];
    for (size_t done = 0; done < len;) {
        size_t n = len - done < sizeof loud ? len - done : sizeof loud;
        for (size_t i = 0; i < n; i++)
            loud[i] = (uint8_t)toupper(data[done + i]);
        (void)shouter_write(conn, loud, n);
        done += n;
    }
    session->bytes_received += len;
}

bool shouter_on_eof_received(shouter_conn *conn, struct shouter_session *session)
{
    (void)conn;
    (void)session;
    return false;
}
