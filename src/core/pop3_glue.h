#ifndef POSTBOTE_CORE_POP3_GLUE_H
#define POSTBOTE_CORE_POP3_GLUE_H

/*
 * The server's POP3 backend (pop3/pop3_backend.h): passwords through the
 * shared verifier, the maildrop lock in memory, snapshots from the store's
 * index, message bytes from the Maildir files and deletions through the
 * store. It lives in core/ because it does what the POP3 session may not:
 * files and the store's threads.
 */

#include "pop3/pop3_backend.h"

struct services;

/* The server's backend over its verifier, user database and store. */
struct pop3_backend *pop3_backend_new(const struct services *svc);
/* Only after every session has gone and the store has finished its work
 * (store_close). */
void pop3_backend_free(struct pop3_backend **b);

#endif
