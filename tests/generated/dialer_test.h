/* What dialer's handlers record, for test_connect_cancel.c. */
#ifndef DIALER_TEST_H
#define DIALER_TEST_H

struct dialer_log {
    int made, lost;   /* connection_made, connection_lost calls */
    int done, error;  /* dialer_connect's done calls, the last error */
    void *conn;       /* the last done's connection */
};

#endif
