#ifndef POSTBOTE_MTA_QUEUE_RECORD_H
#define POSTBOTE_MTA_QUEUE_RECORD_H

/*
 * One outbound message's state, as kept in the LMDB "queue" database under
 * its queue id (the message itself is the file DATA/queue/ID). The record
 * is the truth about what is left to do: the server's scheduler and the
 * `postbote queue` commands both read and write it, so a restart or a
 * kill -9 loses nothing and repeats nothing that was recorded as done.
 *
 * The encoding is versioned and every length is checked on the way in, so
 * a damaged record is reported, never trusted.
 */

#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/db.h"

#define QUEUE_ID_MAX 39
#define QUEUE_RCPTS_MAX 10000

enum queue_rcpt_state {
	QUEUE_RCPT_PENDING = 0,     /* not tried yet */
	QUEUE_RCPT_DEFERRED,        /* tried, temporary failure: try again */
	QUEUE_RCPT_DELIVERED,       /* the remote side said 250 */
	QUEUE_RCPT_FAILED,          /* permanent failure or expired: bounced */
};

struct queue_rcpt {
	char *address;
	char *orcpt;                /* "rfc822;a@b" or NULL */
	unsigned notify;            /* SMTP_NOTIFY_* bits, 0 = not given */
	enum queue_rcpt_state state;
	char *last_reply;           /* the remote reply or our reason, or NULL */
	char *remote_mta;           /* host that gave it, or NULL */
};

struct queue_entry {
	char id[QUEUE_ID_MAX + 1];
	char *sender;               /* "" = null reverse-path */
	char *envid;                /* NULL when not given */
	char *auth_user;            /* who submitted it, NULL for forwarded mail */
	int ret;                    /* enum smtp_ret */
	bool smtputf8, eightbit;
	bool warned;                /* a delay warning went out */
	int64_t arrival;            /* Unix seconds */
	int64_t next_attempt;       /* Unix seconds; 0 = now */
	int64_t last_attempt;       /* 0 = never */
	uint32_t attempts;
	uint64_t size;              /* octets of the file from body_offset on */
	uint64_t body_offset;       /* where the message starts in the file */
	struct queue_rcpt *rcpts;
	size_t n_rcpts;
};

void queue_entry_free(struct queue_entry *e);
/* How many recipients are still to be tried (pending or deferred). */
size_t queue_entry_open_rcpts(const struct queue_entry *e);
const char *queue_rcpt_state_name(enum queue_rcpt_state st);

void queue_record_encode(const struct queue_entry *e, struct buf *out);
/* Returns 0 with *e filled (free with queue_entry_free), or -1 when the
 * bytes are not a record of a version we know. */
int queue_record_decode(const void *data, size_t len, struct queue_entry *e);

/* LMDB access in the caller's transaction. get returns 0, 1 when absent,
 * -1 on error (*error_r, caller frees). */
int queue_db_put(MDB_txn *txn, struct db *db, const struct queue_entry *e, char **error_r);
int queue_db_get(MDB_txn *txn, struct db *db, const char *id, struct queue_entry *e, char **error_r);
int queue_db_del(MDB_txn *txn, struct db *db, const char *id, char **error_r);
/* Every entry in id order; cb returns non-zero to stop. Damaged records
 * are skipped with a log line. */
int queue_db_each(MDB_txn *txn, struct db *db, int (*cb)(const struct queue_entry *e, void *ctx), void *ctx,
		  char **error_r);

#endif
