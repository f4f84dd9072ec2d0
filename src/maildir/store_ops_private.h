#ifndef POSTBOTE_MAILDIR_STORE_OPS_PRIVATE_H
#define POSTBOTE_MAILDIR_STORE_OPS_PRIVATE_H

/* Shared between store_ops.c (dispatcher, helpers, message operations) and
 * store_folders.c (folder operations); nothing else includes this. All of
 * it runs on the writer thread, inside the one transaction of an op. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "maildir/index.h"
#include "maildir/store.h"
#include "maildir/store_private.h"

/* A file change to take back when the transaction does not commit:
 * rename to back to from, or (from NULL) unlink to. */
struct store__op_undo {
	char *from, *to;
};

/* The state of one operation, from store__run_op() to its commit. */
struct store__op_ctx {
	struct store *st;
	MDB_txn *txn;
	struct store_op *op;
	struct store__op_undo *undo;
	size_t n_undo, cap_undo;
	char *error;
};

/* One mailbox an operation works on. */
struct store__op_box {
	const char *name;          /* index key: "INBOX" or the folder name */
	char *dir;
	struct idx_mailbox mb;
	bool reconciled;           /* forced once in this op already */
};

/* What store__op_xfer() moves or copies, and where it puts the results. */
struct store__op_xfer {
	const uint32_t *uids;
	size_t n;
	bool move;
	bool quota;                /* COPY: check the account's quota */
	uint32_t *new_uids;        /* n entries, filled */
	uint32_t *uidvalidity_r;
	size_t *done_r;
};

/* The index key of mailbox: "INBOX" in any case folds to "INBOX", other
 * names are returned as they are (the pointer is mailbox itself). */
const char *store__op_key(const char *mailbox);

/* Record an event (mailbox is copied) for store__op_notify() to tell. */
void store__op_event(struct store_op *op, const char *mailbox, enum store_event ev, uint32_t first,
		     uint32_t last);

/* Remember a file change to take back if the op does not commit: rename
 * to back to from, or (from NULL) unlink to. Both are copied. */
void store__op_undo_add(struct store__op_ctx *c, const char *from, const char *to);

/* Open (with create: make) mailbox into *b; free it with
 * store__op_box_free(). Returns STORE_OK, STORE_NO_MAILBOX or
 * STORE_TEMPFAIL with c->error. */
enum store_result store__op_box_open(struct store__op_ctx *c, const char *mailbox, bool create,
				     struct store__op_box *b);

/* Free what store__op_box_open() put in b; b may be zeroed or freed. */
void store__op_box_free(struct store__op_box *b);

/* fsync the directory dir (or dir/sub when sub is set). Returns 0, or -1
 * with c->error. */
int store__op_fsync_dir(struct store__op_ctx *c, const char *dir, const char *sub);

/* The name of a mailbox's directory inside the Maildir root (".A.B"): a
 * pointer into dir. */
const char *store__op_dir_base(const char *dir);

/* Copy (x->move false) or move the messages x->uids of src into tgt, the
 * same mailbox or another, checkpointing first and fsyncing the target's
 * directories before returning STORE_OK. Returns STORE_OK, STORE_NO_MAILBOX,
 * STORE_OVER_QUOTA or STORE_TEMPFAIL with c->error. */
enum store_result store__op_xfer(struct store__op_ctx *c, const char *src, const char *tgt,
				 struct store__op_xfer *x);

/* The folder operations (store_folders.c), called by store__run_op() with
 * c->op of the matching kind; each returns the op's result. */
enum store_result store__op_create(struct store__op_ctx *c);
enum store_result store__op_delete(struct store__op_ctx *c);
enum store_result store__op_rename(struct store__op_ctx *c);
/* SUBSCRIBE (add) or UNSUBSCRIBE c->op->mailbox. */
enum store_result store__op_subscribe(struct store__op_ctx *c, bool add);

#endif
