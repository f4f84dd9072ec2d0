#ifndef POSTBOTE_MTA_OUTBOUND_H
#define POSTBOTE_MTA_OUTBOUND_H

/*
 * The outbound engine: makes queued mail (queue.h) leave.
 *
 * A scheduler on the loop reads the queue's records every few seconds (and
 * at once after outbound_kick()) and starts a *run* for every entry that is
 * due (next_attempt <= now) and not already running. A run tries each of
 * the entry's open recipients once: recipients of one domain share one
 * connection (an *attempt*: route or MX lookup, then host after host,
 * outbound_conn.h for each connection). When every attempt of the run has
 * ended, the results are written to the record in one LMDB write
 * transaction in the thread pool (outbound_apply() decides what changes),
 * newly failed recipients get a bounce first (outbound_bounce.h), and an
 * entry with nothing left to try is deleted with its file.
 *
 * Concurrency is bounded: cfg->outbound_max_connections attempts at once in
 * all, cfg->outbound_max_per_domain per recipient domain; an attempt holds
 * its slot from its DNS lookup to the close of its last connection. The
 * rest wait in order.
 *
 * Crash safety: nothing in a record changes before the attempt's results
 * are known, so an entry whose attempt was under way when the process died
 * is simply attempted again (a duplicate is possible, a loss is not). A
 * bounce is made durable (in the sender's Maildir or in the queue) before
 * the record says the recipient failed.
 */

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "core/services.h"
#include "mta/queue_record.h"
#include "smtp/queue_schedule.h"

struct outbound;
struct queue;

/* How often the queue is scanned without a kick, for `postbote queue
 * flush` from another process and for entries whose time has come. */
#define OUTBOUND_SCAN_MS 3000
/* The shortest time between two scans that kicks cause. */
#define OUTBOUND_KICK_MIN_MS 100
/* How long a TCP connect may take before the next address is tried. */
#define OUTBOUND_CONNECT_TIMEOUT_MS 30000

/* Start the engine on svc->loop over queue q (both must outlive it): make
 * the resolver (cfg->dns_servers) and the TLS client contexts, and scan at
 * once. Returns 0, or -1 with *error_r (caller frees). */
int outbound_new(const struct services *svc, struct queue *q, struct outbound **ob_r, char **error_r);

/* Something was queued: scan soon (coalesced with other kicks; never
 * inside this call). outbound_queued() is the same for callbacks that take
 * a void pointer (smtp_backend_set_queue()). */
void outbound_kick(struct outbound *ob);
void outbound_queued(void *ob);

/* Stop: no new attempts; attempts under way are abandoned (their
 * connections closed, their lookups cancelled) and their entries stay as
 * they were, to be attempted again after a restart - except that
 * recipients already delivered by an attempt that ended are recorded.
 * Record updates and bounces already started finish. Safe to call twice. */
void outbound_stop(struct outbound *ob);

/* Stop (if not yet), run the loop until the engine's own work is done
 * (record updates, bounces being delivered or queued), close its handles
 * and free it. The store and the queue must still be open. */
void outbound_free(struct outbound **ob);

/* ---- Deciding what an attempt changes (pure; exposed for tests) ---- */

enum outbound_outcome {
	OUTBOUND_NOT_TRIED = 0,     /* the run did not try this recipient */
	OUTBOUND_DELIVERED,
	OUTBOUND_DEFERRED,
	OUTBOUND_FAILED,
};

/* What happened to one recipient in a run. */
struct outbound_result {
	enum outbound_outcome outcome;
	/* "550 5.1.1 text" as the server said it (remote_mta set), or our
	 * own reason in the same shape, "451 4.4.1 connect to ... failed"
	 * (remote_mta NULL). Kept as the record's last_reply. */
	const char *reply;
	const char *status;         /* "5.1.1"; NULL: from reply, else by outcome */
	const char *remote_mta;     /* the host that answered, or NULL */
};

enum outbound_dsn {
	OUTBOUND_DSN_NONE = 0,
	OUTBOUND_DSN_FAILED,        /* a bounce: Action: failed */
	OUTBOUND_DSN_DELAYED,       /* the delay warning: Action: delayed */
};

/* Per recipient of the entry: which notice it gets, and its Status. */
struct outbound_dsn_rcpt {
	enum outbound_dsn dsn;
	char status[12];
	bool expired;               /* failed because the lifetime ran out */
};

#define OUTBOUND_APPLY_HOLD_DSN 0x1u     /* the notice could not be sent: fail nobody, warn nobody */
#define OUTBOUND_APPLY_DELIVERED_ONLY 0x2u /* record deliveries only (the engine is stopping) */

struct outbound_verdict {
	bool remove;                /* nothing left to try: delete the record and the file */
	bool expired;               /* the lifetime ran out in this run */
	size_t delivered, deferred, failed;  /* recipients in each state now */
	size_t n_dsn_failed, n_dsn_delayed;  /* notices to send (dsn_r) */
};

/*
 * Apply the results of one run (results[i] for e->rcpts[i], n == e->n_rcpts)
 * to the record e at time now, under schedule s:
 *  - a pending or deferred recipient takes its result's state, last_reply
 *    and remote_mta (a recipient already delivered or failed never
 *    changes; NOT_TRIED changes nothing);
 *  - attempts++, last_attempt = now, next_attempt from
 *    smtp_schedule_next(); when that says the lifetime is over, every
 *    recipient still pending or deferred fails ("expired"), its Status
 *    being the enhanced code of its last reply when that was temporary,
 *    else 4.4.7 (RFC 3463: the actual problem rather than "expired");
 *  - dsn_r[i] (n entries, zeroed first) says who gets a bounce (newly
 *    failed, smtp_dsn_wanted() by sender and NOTIFY) or, once per entry
 *    after cfg's delay (s->delay_warning_s), a delay warning (deferred,
 *    NOTIFY allows it; e->warned is set).
 * With OUTBOUND_APPLY_HOLD_DSN, recipients that would have failed with a
 * notice stay deferred (and no warning is marked sent), to be tried again;
 * with OUTBOUND_APPLY_DELIVERED_ONLY only deliveries are recorded and
 * nothing else changes. Returns -1 (changing nothing) when n does not match
 * e->n_rcpts, else 0.
 */
int outbound_apply(struct queue_entry *e, const struct outbound_result *results, size_t n,
		   const struct smtp_schedule *s, time_t now, unsigned flags, struct outbound_dsn_rcpt *dsn_r,
		   struct outbound_verdict *v);

/* The schedule cfg describes (queue_retry, queue_lifetime,
 * queue_delay_warning); an unusable queue_retry gives the default waits. */
void outbound_schedule_from_config(const struct config *cfg, struct smtp_schedule *s);

/* Folder-private: a deep copy of a queue entry (free with
 * queue_entry_free()). */
void outbound__entry_copy(struct queue_entry *dst, const struct queue_entry *src);

#endif
