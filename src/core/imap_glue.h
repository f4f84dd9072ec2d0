#ifndef POSTBOTE_CORE_IMAP_GLUE_H
#define POSTBOTE_CORE_IMAP_GLUE_H

/*
 * The server's IMAP backend (imap/imap_backend.h): passwords through the
 * shared verifier, per-account session counts and \Recent bookkeeping in
 * memory, reads from the store's index and the Maildir files on the loop,
 * every change through the store's writer thread. It lives in core/
 * because it does what the IMAP session may not: files and the store's
 * threads.
 */

#include "imap/imap_backend.h"

struct services;

/* The server's backend over its verifier, user database and store. */
struct imap_backend *imap_backend_new(const struct services *svc);
/* Only after every session has gone and the store has finished its work
 * (store_close). */
void imap_backend_free(struct imap_backend **b);

#endif
