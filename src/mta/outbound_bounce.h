#ifndef POSTBOTE_MTA_OUTBOUND_BOUNCE_H
#define POSTBOTE_MTA_OUTBOUND_BOUNCE_H

/*
 * Sending the outbound queue's delivery status notifications: a bounce
 * (Action: failed) or a delay warning (Action: delayed), rendered by
 * dsn.h from a queue entry and its original message.
 *
 *   1. thread pool: render into DATA/spool/ID ("Return-Path: <>" first,
 *      then the DSN), reading the original from DATA/queue/ID (RET
 *      honoured; without the file, the notice goes out without it);
 *   2. loop: deliver it. When the original sender resolves to local
 *      accounts, into their INBOX through the store (the notice is
 *      delivered even past a quota: telling a user that their own mail
 *      failed matters more than the limit, and the notice is bounded in
 *      size); addresses outside our domains (the sender itself, or the
 *      external targets of a local alias) get it through the queue with
 *      the null reverse-path, so it can never cause another notice. A
 *      sender in a local domain that resolves to nobody is logged and
 *      dropped - there is nobody to tell;
 *   3. the spool file is removed and cb(arg, ok) runs: ok once the notice
 *      is durable everywhere it goes (or was dropped on purpose), false
 *      when something failed and the caller should try again later.
 *
 * Never called for the null sender: the caller uses smtp_dsn_wanted(),
 * which says no for "" (RFC 3461 6.1, RFC 5321 4.5.5).
 */

#include <stdbool.h>
#include <time.h>

#include "core/services.h"
#include "smtp/dsn.h"
#include "mta/outbound.h"
#include "mta/queue_record.h"

struct queue;

typedef void (*outbound_bounce_cb)(void *arg, bool ok);

/* Render and deliver the notice for entry e (copied) whose recipients
 * dsn[0..e->n_rcpts) marks (at least one not OUTBOUND_DSN_NONE), at time
 * now; retry_until is the entry's expiry (for delay warnings). cb runs on
 * the loop, never inside this call. */
void outbound_bounce_send(const struct services *svc, struct queue *q, const struct queue_entry *e,
			  const struct outbound_dsn_rcpt *dsn, time_t now, time_t retry_until, outbound_bounce_cb cb,
			  void *arg);

/* Fill out[] with the DSN recipients for e and dsn (those not NONE, in
 * order); texts[] receives strings to free (one per recipient written,
 * may be NULL entries). Returns how many were written. Exposed for tests. */
size_t outbound_bounce_rcpts(const struct queue_entry *e, const struct outbound_dsn_rcpt *dsn, time_t retry_until,
			     struct smtp_dsn_rcpt *out, char **texts);

#endif
