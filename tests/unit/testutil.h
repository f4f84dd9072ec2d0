#ifndef POSTBOTE_TESTUTIL_H
#define POSTBOTE_TESTUTIL_H

/* Helpers shared by the Check suites. */

#include <stddef.h>
#include <check.h>

/* Copy len bytes so that they end exactly at an unreadable page: a parser
 * that reads one byte too far crashes the test (picohttpparser's trick).
 * Free with guard_free(). */
char *guard_copy(const void *data, size_t len);
void guard_free(char *p, size_t len);

/* Run one suite and return the exit status for main(). */
int testutil_run(Suite *s);

#endif
