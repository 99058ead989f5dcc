/* What test_tls_spec.c and the tls_srv, tls_cli handlers share. */
#ifndef TLS_SPEC_TEST_H
#define TLS_SPEC_TEST_H

#include <stddef.h>

#include "tls_cli.h"
#include "tls_srv.h"

/* One side's record of its connections' callbacks. */
struct tls_side {
    int made;
    int eofs;
    int lost;
    int lost_error;
    size_t received;
    char tls_version[32]; /* pg_tls_get_info's, at connection_made */
};

#endif
