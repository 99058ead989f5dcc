/* inline.h — an inline command's line split into arguments as redis-server
 * splits it (its sdssplitargs): words between blanks; "double quotes" with
 * the escapes \n \r \t \b \a \" \\ and \xHH; 'single quotes' with \'; a
 * closing quote must be followed by a blank or the end. */
#ifndef RESP_INLINE_H
#define RESP_INLINE_H

#include <stddef.h>
#include <stdint.h>

#include "protogen/framing.h" /* pg_slice */

/* The arguments of the last line split, valid until the next split. Zero-
 * initialised is empty; memory grows with the longest line and stays. */
typedef struct resp_inline {
    uint8_t *text;  /* the arguments' bytes, unquoted */
    pg_slice *args;
    size_t count;
    size_t text_cap, args_cap;
} resp_inline;

/* Splits line (without its "\n"; a "\r" before it is a blank like any).
 * 0, -EINVAL for unbalanced quotes (redis: "Protocol error: unbalanced
 * quotes in request"), or -ENOMEM. */
int resp_inline_split(resp_inline *in, const uint8_t *line, size_t len);
void resp_inline_free(resp_inline *in);

#endif
