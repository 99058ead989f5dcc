/* What test_switch.c and the two protocols' handlers share. */
#ifndef SWITCH_TEST_H
#define SWITCH_TEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sw_bulk.h"
#include "sw_line.h"

struct switch_test {
    /* sw_line */
    sw_line_conn *line;
    int line_made, line_data, line_lost, line_pauses;
    bool switch_on_newline; /* switch from inside data_received at the first '\n' */
    int switch_rc;
    /* sw_framed (the split tests): a line framer that switches at "BULK" */
    int framed_made, framed_messages, framed_lost;
    /* sw_bulk */
    sw_bulk_conn *bulk;
    int bulk_made, bulk_eof, bulk_lost;
    int bulk_pauses, bulk_resumes; /* a switch while writing is paused hands the pause on */
    uint8_t rx[1024];
    size_t rx_len;
    size_t buffer_size; /* what get_buffer lends: small, so pending bytes take several */
};

#endif
