/* udp_echo_client_handlers.c — the client's side: numbered datagrams, a
 * window of them at a time, each echo checked.
 *
 * UDP may drop datagrams, so the client counts losses instead of assuming
 * none: at most `window` datagrams are out at once (so the kernel's buffers on
 * both sides never overflow on a quiet loopback), and one still unanswered
 * after the loss timeout is counted lost and its place in the window freed. */
#include <string.h>

#include "udp_echo_client.h"
#include "udp_echo_client_app.h"

struct udp_echo_client_session {
    char unused; /* all the client's state is in struct udp_echo_client_app */
};

const size_t udp_echo_client_session_size = sizeof(struct udp_echo_client_session);

enum { MAX_DATAGRAM = 65507 };

static void check_losses(void *arg);

static void finish(struct udp_echo_client_app *app, udp_echo_client_conn *conn)
{
    pg_timer_cancel(&app->loss_timer);
    app->finished = true;
    udp_echo_client_close(conn);
}

/* Frees the window's front while its datagrams are resolved. */
static void advance_base(struct udp_echo_client_app *app)
{
    while (app->base < app->next && !app->slots[app->base % app->window].waiting)
        app->base++;
}

static void send_more(struct udp_echo_client_app *app, udp_echo_client_conn *conn)
{
    static uint8_t datagram[MAX_DATAGRAM];
    while (!app->writing_paused && !app->finished && app->next < app->count && app->next < app->base + app->window) {
        uint64_t seq = app->next++;
        memcpy(datagram, &seq, sizeof seq);
        for (size_t i = 8; i < app->size; i++)
            datagram[i] = udp_echo_client_payload_byte(seq, i);
        struct udp_echo_client_slot *slot = &app->slots[seq % app->window];
        *slot = (struct udp_echo_client_slot){ .seq = seq, .sent_ms = pg_loop_time_ms(app->loop), .waiting = true };
        /* Connected: no address. May call pause_writing or error_received from inside. */
        (void)udp_echo_client_sendto(conn, datagram, app->size, NULL, 0);
    }
    if (app->base == app->count && !app->finished)
        finish(app, conn);
    else if (app->base < app->next && !pg_timer_is_active(&app->loss_timer))
        pg_loop_call_later(app->loop, &app->loss_timer, app->loss_timeout_ms / 4 + 1, check_losses, app);
}

/* Datagrams unanswered for longer than the loss timeout are lost. */
static void check_losses(void *arg)
{
    struct udp_echo_client_app *app = arg;
    uint64_t now = pg_loop_time_ms(app->loop);
    for (uint64_t seq = app->base; seq < app->next; seq++) {
        struct udp_echo_client_slot *slot = &app->slots[seq % app->window];
        if (slot->waiting && now - slot->sent_ms >= app->loss_timeout_ms) {
            slot->waiting = false;
            app->lost++;
        }
    }
    advance_base(app);
    if (app->conn != NULL)
        send_more(app, app->conn);
}

void udp_echo_client_on_connection_made(udp_echo_client_conn *conn, struct udp_echo_client_session *session)
{
    struct udp_echo_client_app *app = udp_echo_client_context(conn);
    (void)session;
    app->conn = conn;
    send_more(app, conn);
}

void udp_echo_client_on_datagram_received(udp_echo_client_conn *conn, struct udp_echo_client_session *session,
                                          const uint8_t *data, size_t len, const struct sockaddr *addr,
                                          socklen_t addrlen)
{
    struct udp_echo_client_app *app = udp_echo_client_context(conn);
    (void)session;
    (void)addr; /* a connected endpoint hears from its peer only */
    (void)addrlen;
    uint64_t seq;
    if (len < sizeof seq) {
        app->stray++;
        return;
    }
    memcpy(&seq, data, sizeof seq);
    struct udp_echo_client_slot *slot = &app->slots[seq % app->window];
    if (seq < app->base || seq >= app->next || slot->seq != seq || !slot->waiting) {
        app->stray++; /* echoed twice, or after it was counted lost */
        return;
    }
    slot->waiting = false;
    bool intact = len == app->size;
    for (size_t i = 8; intact && i < len; i++)
        intact = data[i] == udp_echo_client_payload_byte(seq, i);
    if (intact)
        app->echoed++;
    else
        app->corrupt++;
    advance_base(app);
    send_more(app, conn);
}

/* -ECONNREFUSED: nothing listens on the server's port. The endpoint would
 * stay open, but there is no one to talk to: give up. */
void udp_echo_client_on_error_received(udp_echo_client_conn *conn, struct udp_echo_client_session *session, int error)
{
    struct udp_echo_client_app *app = udp_echo_client_context(conn);
    (void)session;
    if (app->error == 0)
        app->error = error;
    if (!app->finished)
        finish(app, conn);
}

void udp_echo_client_on_connection_lost(udp_echo_client_conn *conn, struct udp_echo_client_session *session, int error)
{
    struct udp_echo_client_app *app = udp_echo_client_context(conn);
    (void)session;
    pg_timer_cancel(&app->loss_timer);
    app->conn = NULL;
    if (app->error == 0)
        app->error = error;
    app->finished = true;
    pg_loop_stop(app->loop);
}

void udp_echo_client_on_pause_writing(udp_echo_client_conn *conn, struct udp_echo_client_session *session)
{
    struct udp_echo_client_app *app = udp_echo_client_context(conn);
    (void)session;
    app->writing_paused = true;
}

void udp_echo_client_on_resume_writing(udp_echo_client_conn *conn, struct udp_echo_client_session *session)
{
    struct udp_echo_client_app *app = udp_echo_client_context(conn);
    (void)session;
    app->writing_paused = false;
    send_more(app, conn);
}
