#ifndef POSTBOTE_MAILDIR_STORE_PRIVATE_H
#define POSTBOTE_MAILDIR_STORE_PRIVATE_H

/* Shared between the files of the store (store.c, store_mailbox.c,
 * store_recover.c); nothing outside src/maildir includes this. */

#include <stdbool.h>
#include <sys/types.h>
#include <uv.h>

#include "maildir/dlog.h"
#include "maildir/index.h"
#include "maildir/store.h"

#define STORE_MAX_FS 8

struct store_work;

/* A dovecot-uidlist line waiting to be appended after the commit. */
struct store_uidnote {
	char *dir;
	uint32_t uidvalidity, next_uid;
	uint32_t uid;
	char *name;
	uint64_t size, vsize;
};

struct store {
	uv_loop_t *loop;
	const struct config *cfg;
	struct db *db;
	char *mail_root;            /* DATA/mail */
	struct dlog *log;

	/* Loop side. */
	uv_async_t async;
	struct store_watch *watches;
	unsigned busy;

	/* Shared, under lock. */
	uv_mutex_t lock;
	uv_cond_t cond;
	uv_thread_t thread;
	struct store_job *pending, **pending_tail;
	struct store_job *done, **done_tail;
	bool stop;

	/* Writer thread only. */
	char *chunk;
	uint64_t counter;
	struct store_work *batch;   /* the sub-batch being committed */
	size_t batch_len;
	bool index_failed;          /* an index write failed: reconcile later */
	struct { dev_t dev; int fd; bool dirty; } fs[STORE_MAX_FS];
	size_t n_fs;
	bool fs_overflow;
	struct store_uidnote *notes;
	size_t n_notes, cap_notes;
};

/* Find the mailbox record, creating the mailbox (directories and record)
 * when it is INBOX or create is set; a mailbox whose files changed outside
 * postbote is reconciled first. *dir_r is its directory (caller frees).
 * Returns STORE_OK, STORE_NO_MAILBOX, or STORE_TEMPFAIL with *error_r. */
enum store_result store__mailbox_ensure(struct store *st, MDB_txn *txn, const char *account,
					const char *maildir, const char *mailbox, bool create, char **dir_r,
					struct idx_mailbox *mb_r, char **error_r);

/* Fold changes made by other programs into the index: files added, removed
 * or renamed in new/ and cur/ since the directory mtimes were recorded.
 * Known files keep their UIDs; new ones get UIDs from the dovecot-uidlist
 * when it has them above uidnext, else fresh ones. With force the scan runs
 * even when the mtimes did not change. Returns 0 or -1. */
int store__reconcile(struct store *st, MDB_txn *txn, const char *account, const char *mailbox,
		     const char *dir, struct idx_mailbox *mb, bool force, char **error_r);

/* A file's or directory's mtime in nanoseconds, -1 if it cannot be read. */
int64_t store__mtime_ns(const char *path);

/* Remember a new message for dovecot-uidlist; written by store__uidlist_flush(). */
void store__uidlist_note(struct store *st, const char *dir, const struct idx_mailbox *mb, uint32_t uid,
			 const char *name, uint64_t size, uint64_t vsize);
void store__uidlist_flush(struct store *st);

/* Remember the file system of dir so the next checkpoint syncs it. */
void store__touch_dir(struct store *st, const char *dir);

/* Make every file written since the last checkpoint durable, then start
 * the delivery log over. */
int store__checkpoint(struct store *st, char **error_r);

/* At open: write the files of every logged delivery that a crash left
 * missing or incomplete, reconcile the mailboxes involved, checkpoint. */
int store__recover(struct store *st, char **error_r);

/* A fresh Maildir base name (unique on this host) carrying ,S=size and
 * ,W=vsize. Caller frees. Writer thread. */
char *store__unique_name(struct store *st, uint64_t size, uint64_t vsize);

/* Rewrite mailbox's dovecot-uidlist from the index as txn sees it (not
 * fsynced; the next checkpoint is). guid NULL keeps the GUID of the file
 * there. Returns 0, or -1 with *error_r. */
int store__uidlist_rewrite(struct store *st, MDB_txn *txn, const char *dir, const struct idx_mailbox *mb,
			   const char *guid, char **error_r);

/* Add name to (add) or remove it from the Maildir++ "subscriptions" file of
 * maildir, atomically (temporary file + rename). Returns 0, or -1 with
 * *error_r. Blocking. */
int store__subscribe(const char *maildir, const char *name, bool add, char **error_r);

/* Writer side of store_op() (store_ops.c): do the operation, filling the
 * op's results. */
void store__run_op(struct store *st, struct store_op *op);
/* Loop side: tell watchers what an operation changed, before its callback. */
void store__op_notify(struct store *st, struct store_op *op);

/* Remove files older than a day from every tmp/ under root (Maildir spec:
 * leftovers of interrupted deliveries). */
void store__clean_tmp(struct store *st, const char *root);

#endif
