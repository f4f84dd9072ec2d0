#ifndef POSTBOTE_MAILDIR_INDEX_H
#define POSTBOTE_MAILDIR_INDEX_H

/*
 * The mailbox index in LMDB (contract 4: the Maildir is the truth, this is
 * the index; `postbote reindex` rebuilds it from the files and their
 * dovecot-uidlist).
 *
 * Records (all integers little-endian, fixed layout, a version byte first so
 * the format can grow):
 *
 *   mailboxes: key "ACCOUNT\0NAME"  (NAME: "INBOX", "Sent", "Archive/2024")
 *              -> struct idx_mailbox
 *   messages:  key mailbox id (8 bytes big-endian) + uid (4 bytes big-endian),
 *              so a cursor walks one mailbox in UID order
 *              -> struct idx_message fields + the file name
 *   meta:      "next_mailbox_id" -> u64;  "usage\0ACCOUNT" -> bytes, messages
 *   mimecache: the messages' key -> a message's MIME structure as
 *              mime/mime_serial.h writes it (opaque here)
 *
 * Functions take an open transaction; the caller decides when to commit (the
 * store's writer thread batches many changes into one commit). Read
 * functions work in read-only transactions too.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <lmdb.h>

#include "core/db.h"

/* Message flags, as in maildir/mdname.h's MDNAME_* bits. */
#define IDX_SEEN     0x01u
#define IDX_ANSWERED 0x02u
#define IDX_FLAGGED  0x04u
#define IDX_DELETED  0x08u
#define IDX_DRAFT    0x10u
#define IDX_PASSED   0x20u

/* Mailbox attributes. */
#define IDX_MBOX_SUBSCRIBED 0x01u
#define IDX_MBOX_SENT       0x02u  /* RFC 6154 special-use */
#define IDX_MBOX_DRAFTS     0x04u
#define IDX_MBOX_TRASH      0x08u
#define IDX_MBOX_JUNK       0x10u
#define IDX_MBOX_ARCHIVE    0x20u

struct idx_mailbox {
	uint64_t id;              /* stable across renames; keys the messages */
	uint32_t attrs;           /* IDX_MBOX_* */
	uint32_t uidvalidity;
	uint32_t uidnext;
	uint32_t count;
	uint32_t unseen;
	uint64_t modseq;          /* bumped by every change in the mailbox */
	uint64_t bytes;
	int64_t new_mtime_ns;     /* new/ and cur/ as last reconciled */
	int64_t cur_mtime_ns;
};

struct idx_message {
	uint32_t uid;
	uint32_t flags;           /* IDX_* */
	uint32_t keywords;        /* bit n = keyword letter 'a' + n */
	bool in_new;              /* file is in new/ (else cur/) */
	uint64_t modseq;
	uint64_t size;            /* octets as stored (",S=") */
	uint64_t vsize;           /* octets with CRLF line ends (",W=") */
	int64_t internal_date;    /* seconds since the epoch */
	char *name;               /* file name inside new/ or cur/ (owned) */
};

/* Mailboxes. get returns 0, 1 when absent, -1 on error (*error_r). */
int idx_mailbox_get(MDB_txn *txn, struct db *db, const char *account, const char *name,
		    struct idx_mailbox *mb_r, char **error_r);
int idx_mailbox_put(MDB_txn *txn, struct db *db, const char *account, const char *name,
		    const struct idx_mailbox *mb, char **error_r);
int idx_mailbox_del(MDB_txn *txn, struct db *db, const char *account, const char *name, char **error_r);
/* A fresh mailbox record with a new id and the given uidvalidity. */
int idx_mailbox_new(MDB_txn *txn, struct db *db, uint32_t uidvalidity, struct idx_mailbox *mb_r,
		    char **error_r);
/* Call fn for each mailbox of account in name order. fn returns 0 to go on. */
int idx_mailbox_each(MDB_txn *txn, struct db *db, const char *account,
		     int (*fn)(const char *name, const struct idx_mailbox *mb, void *ctx), void *ctx,
		     char **error_r);

/* Messages. get returns 0, 1 when absent, -1 on error. The name in *msg_r
 * is allocated; free with idx_message_clear(). */
int idx_message_get(MDB_txn *txn, struct db *db, uint64_t mailbox_id, uint32_t uid,
		    struct idx_message *msg_r, char **error_r);
int idx_message_put(MDB_txn *txn, struct db *db, uint64_t mailbox_id, const struct idx_message *msg,
		    char **error_r);
int idx_message_del(MDB_txn *txn, struct db *db, uint64_t mailbox_id, uint32_t uid, char **error_r);
/* Each message of a mailbox with uid >= first_uid in UID order; the record
 * passed to fn is valid during the call only. fn returns 0 to go on, 1 to
 * stop early, -1 for an error. */
int idx_message_each(MDB_txn *txn, struct db *db, uint64_t mailbox_id, uint32_t first_uid,
		     int (*fn)(const struct idx_message *msg, void *ctx), void *ctx, char **error_r);
/* Remove every message record of a mailbox. */
int idx_message_del_all(MDB_txn *txn, struct db *db, uint64_t mailbox_id, char **error_r);
/* idx_message_del() and idx_message_del_all() drop the messages' cached
 * MIME structures too, in the same transaction, so a cache entry never
 * outlives its message (UIDs are not reused, but a forgotten account's
 * mailbox ids are). */

/* The cached MIME structure of a message. get returns 0 with *val_r
 * pointing into the map (valid until the transaction ends), 1 when there is
 * none, -1 on error. */
int idx_mimecache_get(MDB_txn *txn, struct db *db, uint64_t mailbox_id, uint32_t uid, MDB_val *val_r,
		      char **error_r);
int idx_mimecache_put(MDB_txn *txn, struct db *db, uint64_t mailbox_id, uint32_t uid, const void *data,
		      size_t len, char **error_r);
void idx_message_clear(struct idx_message *msg);

/* Open the file of message uid of the mailbox whose directory is dir, for
 * reading, from where the index says it is now. A file renamed between
 * the look-up and the open (a flag change moves it from new/ to cur/ or
 * gives it a new ":2," info) is looked up once more. Returns 0 with *fd_r,
 * 1 when the message is gone (not in the index, or removed by another
 * program: the next open of the mailbox reconciles the index), -1 with
 * *error_r. Opens its own read transaction; blocking (page cache). */
int idx_message_open_file(struct db *db, uint64_t mailbox_id, const char *dir, uint32_t uid, int *fd_r,
			  char **error_r);

/* Forget everything the index knows of an account (its mailboxes, their
 * messages, its usage) so it is rebuilt from the files and their
 * dovecot-uidlist the next time each mailbox is opened. */
int idx_account_forget(MDB_txn *txn, struct db *db, const char *account, char **error_r);

/* Account usage for quotas: the sum over all of the account's mailboxes. */
int idx_usage_get(MDB_txn *txn, struct db *db, const char *account, uint64_t *bytes_r,
		  uint64_t *messages_r, char **error_r);
int idx_usage_add(MDB_txn *txn, struct db *db, const char *account, int64_t bytes, int64_t messages,
		  char **error_r);

#endif
