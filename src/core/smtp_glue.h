#ifndef POSTBOTE_CORE_SMTP_GLUE_H
#define POSTBOTE_CORE_SMTP_GLUE_H

/*
 * The server's SMTP backend (smtp/smtp_backend.h): recipients and senders
 * from the user database, passwords through the shared verifier, content
 * spooled in DATA/spool/, delivery through the store's group commit, and
 * mail for other domains into the outbound queue (mta/queue.h). It lives in
 * core/ because it does what the SMTP session may not: files, threads and
 * the loop.
 */

#include "smtp/smtp_backend.h"

struct services;
struct queue;

struct smtp_backend *smtp_backend_new(const struct services *svc);
void smtp_backend_free(struct smtp_backend **b);
/* Hand mail for other domains to the outbound queue from now on; queued(arg)
 * runs after each message is queued, to wake the scheduler. */
void smtp_backend_set_queue(struct smtp_backend *b, struct queue *q, void (*queued)(void *arg), void *arg);

#endif
