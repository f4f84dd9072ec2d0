#ifndef POSTBOTE_MTA_QUEUE_H
#define POSTBOTE_MTA_QUEUE_H

/*
 * The outbound queue: messages for other domains wait here, durable, until
 * every recipient is delivered or has failed.
 *
 * Enqueueing keeps DESIGN contract 3 ("250 OK" means durable): the spooled
 * message is hard-linked into DATA/queue/ID, the file and the directory are
 * fsynced, and the record (queue_record.h) is committed to LMDB, all in the
 * thread pool, before the callback lets the session answer. The file is
 * written before the record, so after a crash a record always has its file;
 * a file without a record was never acknowledged and is removed at start.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/services.h"
#include "smtp/smtp_backend.h"

struct queue;

/* Open DATA/queue/, dropping files whose record never got committed.
 * Returns 0, or -1 with *error_r. */
int queue_open(const struct services *svc, struct queue **q_r, char **error_r);
/* Only when no enqueue is pending. */
void queue_close(struct queue **q);
/* Load the DKIM keys again (SIGHUP); jobs under way finish with the keys
 * they started with. */
void queue_reload_keys(struct queue *q);

/* One recipient for the queue. */
struct queue_add_rcpt {
	const char *address;
	const char *orcpt;          /* or NULL */
	unsigned notify;
};

typedef void (*queue_added_cb)(void *arg, bool ok);

/* Queue the message in spool_path (the message starts at body_offset:
 * what comes before is our Return-Path line, which is not sent on) for
 * the given recipients. cb runs on the loop once it is durable (ok) or
 * failed; never inside this call. Returns a handle for
 * queue_add_cancel(), after which cb is not called. */
void *queue_add(struct queue *q, const char *spool_path, uint64_t body_offset, const struct smtp_envelope *env,
		const struct queue_add_rcpt *rcpts, size_t n_rcpts, queue_added_cb cb, void *arg);
void queue_add_cancel(void *handle);

/* The path of a queued message's file (caller frees). */
char *queue_file_path(const struct config *cfg, const char *id);

#endif
