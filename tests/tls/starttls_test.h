/* What test_tls.c's STARTTLS test and starttls_handlers.c share. */
#ifndef STARTTLS_TEST_H
#define STARTTLS_TEST_H

#include "protogen/tls.h"
#include "starttls.h"

struct starttls_test {
    const pg_tls_factory *tls; /* what the connection goes on in */
    int lines;                 /* plaintext lines before STARTTLS */
    int switch_rc;             /* starttls_switch_protocol's result */
    bool switched;
};

#endif
