/* inline.c — redis-server's rules for the arguments of an inline command. */
#include "inline.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

/* The blanks between words: C's isspace, as redis-server. */
static bool is_blank(uint8_t c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\v' || c == '\f';
}

static int hex_value(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int grow(resp_inline *in, size_t len)
{
    if (len > in->text_cap) { /* the unquoted text is never longer than the line */
        uint8_t *t = realloc(in->text, len);
        if (t == NULL)
            return -ENOMEM;
        in->text = t;
        in->text_cap = len;
    }
    size_t most = len / 2 + 1; /* words need a blank between them */
    if (most > in->args_cap) {
        pg_slice *a = realloc(in->args, most * sizeof *a);
        if (a == NULL)
            return -ENOMEM;
        in->args = a;
        in->args_cap = most;
    }
    return 0;
}

/* One argument from line[*at]: its bytes appended at text[*out]. */
static int split_one(const uint8_t *line, size_t len, size_t *at, uint8_t *text, size_t *out)
{
    size_t i = *at, o = *out;
    enum { PLAIN, DOUBLE, SINGLE } mode = PLAIN;
    for (;;) {
        if (i == len) {
            if (mode != PLAIN)
                return -EINVAL; /* unterminated quotes */
            break;
        }
        uint8_t c = line[i];
        if (mode == DOUBLE) {
            if (c == '\\' && i + 3 < len && line[i + 1] == 'x' && hex_value(line[i + 2]) >= 0
                && hex_value(line[i + 3]) >= 0) {
                text[o++] = (uint8_t)(hex_value(line[i + 2]) * 16 + hex_value(line[i + 3]));
                i += 4;
            } else if (c == '\\' && i + 1 < len) {
                uint8_t e = line[i + 1];
                text[o++] = e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t' : e == 'b' ? '\b' : e == 'a' ? '\a' : e;
                i += 2;
            } else if (c == '"') {
                if (i + 1 < len && !is_blank(line[i + 1]))
                    return -EINVAL; /* a closing quote must end the argument */
                i++;
                break;
            } else {
                text[o++] = c;
                i++;
            }
        } else if (mode == SINGLE) {
            if (c == '\\' && i + 1 < len && line[i + 1] == '\'') {
                text[o++] = '\'';
                i += 2;
            } else if (c == '\'') {
                if (i + 1 < len && !is_blank(line[i + 1]))
                    return -EINVAL;
                i++;
                break;
            } else {
                text[o++] = c;
                i++;
            }
        } else if (is_blank(c)) {
            break;
        } else if (c == '"' || c == '\'') {
            mode = c == '"' ? DOUBLE : SINGLE; /* a quote inside a word opens quotes too, as redis */
            i++;
        } else {
            text[o++] = c;
            i++;
        }
    }
    *at = i;
    *out = o;
    return 0;
}

int resp_inline_split(resp_inline *in, const uint8_t *line, size_t len)
{
    in->count = 0;
    int rc = grow(in, len);
    if (rc < 0)
        return rc;
    size_t at = 0, out = 0;
    for (;;) {
        while (at < len && is_blank(line[at]))
            at++;
        if (at == len)
            return 0;
        size_t start = out;
        rc = split_one(line, len, &at, in->text, &out);
        if (rc < 0) {
            in->count = 0;
            return rc;
        }
        in->args[in->count++] = (pg_slice){ in->text + start, out - start };
    }
}

void resp_inline_free(resp_inline *in)
{
    free(in->text);
    free(in->args);
    *in = (resp_inline){ 0 };
}
