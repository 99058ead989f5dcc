/* What test_order.c and order_handlers.c share: the handlers' counts. */
#ifndef ORDER_TEST_H
#define ORDER_TEST_H

#include <stddef.h>

struct order_log {
    int made, data, eof, lost, pauses, resumes;
    size_t bytes;
};

#endif
