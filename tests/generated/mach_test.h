/* What test_machine.c reads of mach_handlers.c: the handlers' log. */
#ifndef MACH_TEST_H
#define MACH_TEST_H

#include <stdbool.h>

struct mach_log {
    char text[2048];
    bool choose_undeclared; /* bad's handler picks a state its transition does not declare */
    bool cancel_tick;       /* stay's handler cancels the timer tick */
};

#endif
