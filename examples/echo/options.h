/* Tiny command-line helpers shared by the example programs. */
#ifndef ECHO_OPTIONS_H
#define ECHO_OPTIONS_H

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* "--name VALUE": stores VALUE and advances *i. */
static inline bool option_string(int argc, char **argv, int *i, const char *name, const char **out)
{
    if (strcmp(argv[*i], name) != 0 || *i + 1 >= argc)
        return false;
    *out = argv[++*i];
    return true;
}

/* "--name NUMBER" with NUMBER in [min, max]. */
static inline bool option_long(int argc, char **argv, int *i, const char *name, long min, long max, long *out)
{
    if (strcmp(argv[*i], name) != 0 || *i + 1 >= argc)
        return false;
    char *end;
    errno = 0;
    long v = strtol(argv[*i + 1], &end, 10);
    if (errno != 0 || *end != '\0' || end == argv[*i + 1] || v < min || v > max)
        return false;
    *out = v;
    ++*i;
    return true;
}

#endif
