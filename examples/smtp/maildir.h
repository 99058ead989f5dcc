/* Delivery to a Maildir: each message written under tmp/, then moved into new/. */
#ifndef SMTP_MAILDIR_H
#define SMTP_MAILDIR_H

#include <stddef.h>
#include <stdint.h>

/* Makes DIR, DIR/tmp, DIR/new and DIR/cur as needed. 0 or a negative errno. */
int maildir_open(const char *dir);
/* Writes data[0..len) as a new message: a unique name in tmp/, written and
 * synced, then renamed into new/ (where readers look) — a reader never sees
 * a partial message. Its name in *name. 0 or a negative errno. */
int maildir_deliver(const char *dir, const uint8_t *data, size_t len, char *name, size_t name_size);

#endif
