#ifndef POSTBOTE_MAILDIR_STORE_H
#define POSTBOTE_MAILDIR_STORE_H

/*
 * The store: Maildir++ files as the truth, the LMDB index beside them, and
 * one writer thread through which every change goes.
 *
 * Why one writer thread: LMDB has one writer anyway, and funnelling every
 * change through one queue lets the writer take whatever has piled up while
 * it was busy and commit it together - one delivery-log flush and one LMDB
 * commit for a whole batch of concurrent deliveries (group commit, contract
 * 3). The loop never blocks on any of it (contract 2): requests are queued,
 * and their callbacks run on the loop when they are done.
 *
 * A delivery is acknowledged only when its message is durable for every
 * recipient it reports as delivered: in the fsynced delivery log (small
 * messages) or in an fsynced Maildir file (large ones). The Maildir files of
 * logged deliveries are written at once without fsync, so they are visible
 * to POP3 and IMAP right away; a checkpoint makes them durable later and
 * the log is replayed after a crash (see dlog.h).
 */

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "core/config.h"
#include "core/db.h"

struct store;

/* Private: how requests of any kind wait in the writer's queue. */
struct store_job {
	int kind;
	struct store_job *next;
};

enum store_result {
	STORE_OK = 0,
	STORE_OVER_QUOTA,          /* would pass the quota: SMTP 452 4.2.2 */
	STORE_TOO_BIG_FOR_QUOTA,   /* bigger than the whole quota: 552 5.2.2 */
	STORE_TEMPFAIL,            /* disk or index trouble: 451 4.3.0, nothing delivered */
	STORE_NO_MAILBOX,          /* the target folder does not exist */
	STORE_EXISTS,              /* CREATE or RENAME onto an existing mailbox */
	STORE_NOT_ALLOWED,         /* DELETE INBOX, a name that cannot be a folder */
};

const char *store_result_name(enum store_result r);

/* One recipient of a delivery. The strings are owned by the caller and must
 * stay valid until the callback. */
struct store_rcpt {
	const char *account;       /* "alice@example.org" */
	const char *maildir;       /* the account's Maildir++ root */
	const char *mailbox;       /* "INBOX", or a folder such as "Sent" */
	uint64_t quota_bytes;      /* effective limits, 0 = none */
	uint64_t quota_messages;
	bool create_mailbox;       /* create a missing folder (INBOX always is) */

	/* Set by the store before the callback. */
	enum store_result result;
	uint32_t uidvalidity;
	uint32_t uid;
};

struct store_delivery {
	/* In: the message, already complete in a file the store only reads.
	 * The caller removes it after the callback. */
	const char *spool_path;
	int64_t internal_date;     /* seconds; 0 = now */
	uint32_t flags;            /* IDX_* flags for the new message (APPEND) */
	struct store_rcpt *rcpts;
	size_t n_rcpts;
	void (*cb)(struct store_delivery *d);
	void *ctx;

	/* Out: result is STORE_OK when at least one recipient got the
	 * message and none failed for a transient reason; per-recipient
	 * results are in rcpts[]. */
	enum store_result result;
	uint64_t size;             /* octets as stored */
	uint64_t vsize;            /* octets with CRLF line ends */
	uint64_t durable_ms;       /* from store_deliver() to durable, for the log */

	/* Private to the store. */
	struct store_job job;
	struct store_delivery *next;
	uint64_t queued_ms;
};

/* Open the store on the loop: recover from the delivery log (writing any
 * Maildir file a crash left missing), remove day-old leftovers in tmp/
 * directories under DATA/mail, and start the writer thread. Returns 0, or -1
 * with *error_r. db and cfg must outlive the store. */
int store_open(uv_loop_t *loop, const struct config *cfg, struct db *db, struct store **st_r,
	       char **error_r);

/* Finish queued work (every pending callback runs), checkpoint, stop the
 * thread and free. Runs the loop until the writer is idle. */
void store_close(struct store **st);

/* Queue a delivery. Always returns 0 and calls d->cb later on the loop. */
int store_deliver(struct store *st, struct store_delivery *d);

/* Open a mailbox for reading: fold in changes other programs made to its
 * files (reconciliation) and report its state. INBOX is created when
 * missing; other mailboxes give STORE_NO_MAILBOX. Always returns 0 and
 * calls r->cb later on the loop. */
struct store_open_req {
	const char *account;
	const char *maildir;
	const char *mailbox;
	void (*cb)(struct store_open_req *r);
	void *ctx;
	/* Out. */
	enum store_result result;
	uint32_t uidvalidity;
	uint32_t uidnext;
	uint32_t count;
	uint32_t unseen;
	uint64_t bytes;
	uint64_t mailbox_id;       /* for reading the index (maildir/index.h) */
	/* Private. */
	struct store_job job;
};
int store_mailbox_open(struct store *st, struct store_open_req *r);

/* The folders an account gets with its INBOX (the first open or delivery
 * that creates it), each subscribed and with its IDX_MBOX_* special-use
 * attribute; one already on disk (an adopted Maildir) is left as it is.
 * The list ends with a NULL name. */
struct store_default_folder {
	const char *name;
	uint32_t attr;
};
extern const struct store_default_folder store_default_folders[];

/* ---- mailbox operations (IMAP and POP3 changes), run by the writer ---- */

enum store_op_kind {
	STORE_OP_CREATE,           /* mailbox: create it (and missing parents) */
	STORE_OP_DELETE,           /* mailbox: delete it with its messages */
	STORE_OP_RENAME,           /* mailbox -> target (INBOX: moves its messages) */
	STORE_OP_SUBSCRIBE,        /* add mailbox to the subscriptions */
	STORE_OP_UNSUBSCRIBE,
	STORE_OP_FLAGS,            /* uids of mailbox: set/add/remove flags */
	STORE_OP_COPY,             /* uids of mailbox -> target */
	STORE_OP_MOVE,             /* uids of mailbox -> target (RFC 6851) */
	STORE_OP_EXPUNGE,          /* remove uids of mailbox */
};

enum store_flags_mode {
	STORE_FLAGS_SET,
	STORE_FLAGS_ADD,
	STORE_FLAGS_REMOVE,
};

struct store_op {
	enum store_op_kind kind;
	const char *account;
	const char *maildir;
	const char *mailbox;
	const char *target;        /* RENAME, COPY, MOVE */
	const uint32_t *uids;      /* FLAGS, COPY, MOVE, EXPUNGE: ascending */
	size_t n_uids;
	enum store_flags_mode flags_mode;
	uint32_t flags;            /* IDX_* */
	uint32_t keywords;         /* letters a..z of the mailbox's dovecot-keywords */
	/* FLAGS: keywords by name as well (IMAP STORE). The writer maps them
	 * to letters through the folder's dovecot-keywords, adding names it
	 * does not have yet (SET and ADD; at most 26, the rest are dropped)
	 * and ORs those letters into keywords. */
	const char *const *keyword_names;
	size_t n_keyword_names;
	/* COPY: the account's effective limits, 0 = none. The account's usage
	 * plus the size (and count) of everything copied must fit, or the op
	 * answers STORE_OVER_QUOTA and copies nothing. MOVE ignores them (it
	 * changes no usage). */
	uint64_t quota_bytes, quota_messages;
	void (*cb)(struct store_op *op);
	void *ctx;

	/* Out. result: STORE_OK, STORE_NO_MAILBOX, STORE_EXISTS,
	 * STORE_OVER_QUOTA (COPY), STORE_TEMPFAIL. For COPY and MOVE,
	 * new_uids[i] is the UID in target of uids[i] (0: it was already
	 * gone) and target_uidvalidity is the target's, for COPYUID (RFC
	 * 4315). done is how many uids were acted on. */
	enum store_result result;
	uint32_t *new_uids;        /* owned; freed by store_op_clear() */
	uint32_t target_uidvalidity;
	size_t done;

	/* Private: the writer records here what the op changed (mailbox,
	 * event, uid range; one entry per event), and store__op_notify()
	 * tells the watchers on the loop before op->cb, then frees them (so
	 * they are gone by the time op->cb runs). Only filled when the op's
	 * transaction committed; set up by the writer, not by the caller. */
	struct store_job job;
	struct store_op_event *events;
	size_t n_events, cap_events;
};

/* Private to the store: one recorded change of an operation. */
struct store_op_event {
	char *mailbox;
	int ev;                    /* enum store_event */
	uint32_t first, last;
};

/* Queue an operation. Each kind runs in one LMDB write transaction on
 * the writer thread:
 *  - FLAGS renames each changed message's file to cur/BASE:2,LETTERS
 *    (other programs' letters kept); done = number changed.
 *  - EXPUNGE unlinks the files, rewrites dovecot-uidlist; UIDs are never
 *    given out again.
 *  - COPY hard-links (or, across file systems, copies) into the target,
 *    which must exist (STORE_NO_MAILBOX: IMAP's NO [TRYCREATE]); the new
 *    files are fsynced before the answer, since clients expunge the source
 *    right after. MOVE renames the files into the target.
 *  - CREATE makes missing parents too (RFC 3501 6.3.3); INBOX or an
 *    existing name is STORE_EXISTS, an invalid name STORE_NOT_ALLOWED.
 *  - DELETE refuses INBOX and, as RFC 3501 6.3.4 permits, a mailbox that
 *    has children (STORE_NOT_ALLOWED) rather than leaving it \Noselect.
 *  - RENAME moves the folder and its children (UIDVALIDITY kept); renaming
 *    INBOX moves its messages into the new folder and leaves INBOX empty
 *    (RFC 3501 6.3.5). Renaming a folder into its own child is
 *    STORE_NOT_ALLOWED.
 *  - SUBSCRIBE / UNSUBSCRIBE edit the Maildir++ "subscriptions" file; the
 *    mailbox need not exist (RFC 3501 6.3.6).
 * Always returns 0 and calls op->cb later on the loop; watchers of the
 * mailboxes involved hear of the changes first. Removing files (EXPUNGE,
 * MOVE, DELETE, RENAME) first makes every logged delivery durable, so a
 * crash can never bring an expunged message back. */
int store_op(struct store *st, struct store_op *op);
void store_op_clear(struct store_op *op);

/* ---- cached MIME structures (IMAP FETCH), written by the writer ---- */

struct store_cache_entry {
	uint64_t mailbox_id;
	uint32_t uid;
	void *data;                /* mime_serial bytes, owned by the caller */
	size_t len;
};

/* Write a batch of cache entries in one transaction. An entry whose
 * message is gone by then (expunged meanwhile) is skipped, so the cache
 * never holds an entry without its message. Failures only log: the cache
 * is filled again on the next miss. Always returns 0 and calls r->cb later
 * on the loop. */
struct store_cache_put {
	struct store_cache_entry *entries;
	size_t n;
	void (*cb)(struct store_cache_put *r);
	void *ctx;
	/* Out: how many were written. */
	size_t written;
	/* Private. */
	struct store_job job;
};
int store_cache_put(struct store *st, struct store_cache_put *r);

/* The mailbox names in the "subscriptions" file of the Maildir++ root
 * maildir, in file order. A missing file is an empty list. Returns 0 with
 * *names_r (an array of n_r strings, each and the array to be freed by the
 * caller; NULL when empty), or -1 with *error_r (caller frees). Blocking:
 * call it off the loop. */
int store_subscriptions_read(const char *maildir, char ***names_r, size_t *n_r, char **error_r);

/* The LMDB environment, for read transactions over the index. */
struct db *store_db(struct store *st);

/* Requests queued or running (for a bounded wait on shutdown). */
unsigned store_busy(const struct store *st);

/* ---- change notifications (contract 6) ---- */

enum store_event {
	STORE_EVENT_NEW,           /* messages with uids [uid_first, uid_last] arrived */
	STORE_EVENT_EXPUNGE,       /* uid_first was removed */
	STORE_EVENT_FLAGS,         /* uid_first changed flags */
	STORE_EVENT_GONE,          /* the mailbox was deleted or renamed */
};

struct store_watch {
	const char *account;
	const char *mailbox;
	void (*fn)(struct store_watch *w, enum store_event ev, uint32_t uid_first, uint32_t uid_last);
	void *ctx;
	/* Private. */
	struct store_watch *next;
};

/* Hear about changes to one mailbox, on the loop, right after they are
 * committed. The watch (and its strings) must stay valid until
 * store_unwatch(). */
void store_watch(struct store *st, struct store_watch *w);
void store_unwatch(struct store *st, struct store_watch *w);

/* For the writer side (mailbox operations in other files of this folder):
 * tell the watchers of account/mailbox. Loop thread only. */
void store__notify(struct store *st, const char *account, const char *mailbox, enum store_event ev,
		   uint32_t first, uint32_t last);

#endif
