#ifndef POSTBOTE_STOREUTIL_H
#define POSTBOTE_STOREUTIL_H

/* A store in a temporary data directory, for the store's test suites. */

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "core/config.h"
#include "core/db.h"
#include "maildir/index.h"
#include "maildir/store.h"

struct tstore {
	char *dir;              /* the data directory */
	struct config cfg;
	uv_loop_t loop;
	struct db *db;
	struct store *st;
};

/* Make a data dir and open config, db and store in it. */
void tstore_open(struct tstore *t);
/* Reopen db and store (after close) on the same data dir. */
void tstore_reopen(struct tstore *t);
/* Close store and db (the data dir stays). */
void tstore_close(struct tstore *t);
/* Close and remove the data dir. */
void tstore_destroy(struct tstore *t);

/* Write a message file in the data dir and return its path (caller frees). */
char *tstore_spool(struct tstore *t, const char *content, size_t len);
/* The Maildir root of an account in the data dir (caller frees). */
char *tstore_maildir(struct tstore *t, const char *account);

/* Deliver content to n accounts' INBOX and run the loop until done.
 * rcpts_r (optional, n entries) receives the per-recipient results.
 * quota applies to every recipient. Returns the delivery's result. */
enum store_result tstore_deliver(struct tstore *t, const char *content, const char *const *accounts,
				 size_t n, uint64_t quota_bytes, uint64_t quota_messages,
				 struct store_rcpt *rcpts_r);

/* Open (reconcile) a mailbox and return its state. */
enum store_result tstore_open_mailbox(struct tstore *t, const char *account, const char *mailbox,
				      struct store_open_req *r_out);

/* Messages of a mailbox as (uid, name) pairs, via a read transaction.
 * Returns the count; *uids_r and *names_r are allocated (free with
 * tstore_free_list). */
size_t tstore_list(struct tstore *t, uint64_t mailbox_id, uint32_t **uids_r, char ***names_r,
		   uint32_t **flags_r);
void tstore_free_list(size_t n, uint32_t *uids, char **names, uint32_t *flags);

/* Run a mailbox operation and the loop until its callback. account and
 * maildir are filled in when NULL (maildir from account). Returns
 * op->result; the caller calls store_op_clear(). */
enum store_result tstore_op(struct tstore *t, struct store_op *op);

/* The index record of account's mailbox via a read transaction: 0, or 1
 * when there is none. */
int tstore_mailbox_get(struct tstore *t, const char *account, const char *mailbox, struct idx_mailbox *mb_r);

/* Number of regular files in DIR/sub. */
size_t tstore_count_files(const char *dir, const char *sub);

#endif
