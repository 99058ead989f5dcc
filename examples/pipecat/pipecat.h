/* What pipecat's two protocols share: each other's connection. */
#ifndef PIPECAT_H
#define PIPECAT_H

#include <stdbool.h>

#include <protogen/protogen.h>

#include "cat_in.h"
#include "cat_out.h"

struct pipecat {
    pg_loop *loop;
    cat_in_conn *in;   /* NULL once its connection_lost ran */
    cat_out_conn *out; /* NULL once its connection_lost ran */
    unsigned long long bytes;
    bool input_done; /* stdin reached EOF: stdout is being closed on purpose */
    int in_error, out_error;
};

#endif
