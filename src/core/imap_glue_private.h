#ifndef POSTBOTE_CORE_IMAP_GLUE_PRIVATE_H
#define POSTBOTE_CORE_IMAP_GLUE_PRIVATE_H

/*
 * Shared by the files of the server's IMAP backend:
 *
 *   imap_glue.c          the table, logging in, accounts, LIST, and the
 *                        requests that go through the store (STATUS,
 *                        CREATE ... APPEND, cancel)
 *   imap_glue_mailbox.c  the selected mailbox: SELECT, the watch, \Recent,
 *                        messages and keywords, message bytes, and the
 *                        changes made to it (flags, copy, expunge)
 *   imap_mimecache.c     message_tree: the MIME structure cache
 *
 * Nothing else includes this.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/services.h"
#include "imap/imap_backend.h"
#include "maildir/keywords.h"
#include "maildir/store.h"

struct imap_glue_recent;
struct imap_glue_cache;

struct imap_glue {
	struct imap_backend b;      /* first: the table handed to sessions */
	struct services svc;
	char *spool_dir;            /* DATA/spool, for APPEND */
	uint64_t spool_counter;
	struct imap_account *accounts;  /* every open account (session) */
	struct imap_glue_recent *recent;     /* per mailbox: the highest uid told */
	struct imap_glue_cache *cache;       /* imap_mimecache.c */
};

/* One session's account. */
struct imap_account {
	struct imap_glue *be;
	struct imap_account *prev, *next;
	char *name;                 /* as the verifier named it */
	char *maildir;              /* the account's Maildir++ root */
	uint64_t quota_bytes, quota_messages;
};

/* Per account and mailbox id: the highest uid some session was told
 * about. Messages above it are \Recent for the session that sees them
 * first. Kept for the life of the process. */
struct imap_glue_recent {
	struct imap_glue_recent *next;
	char *account;
	uint64_t mailbox_id;
	uint32_t seen_max;
};

/* A selected mailbox. */
struct imap_mailbox {
	struct imap_glue *be;
	char *account;
	char *maildir;
	char *name;                 /* store name: "INBOX" or "A/B" */
	char *dir;                  /* its Maildir directory */
	uint64_t mailbox_id;
	uint32_t uidvalidity;
	uint64_t quota_bytes, quota_messages;
	bool read_only;
	uint32_t known_max;         /* highest uid the session has */
	imap_change_cb on_change;
	void *change_arg;
	struct store_watch watch;
	/* Keyword names by letter, re-read from dovecot-keywords when stale.
	 * A name's string stays put while the file keeps it at its index, so
	 * what mailbox_keywords returned stays valid across re-reads. */
	char *kw[IMAP_KEYWORDS_MAX];
	bool kw_stale;
};

/* A request that goes through the store. The handle the session gets is
 * the request; cancel only marks it, since the store cannot be stopped
 * mid-request: its callback then frees instead of answering. The request
 * owns copies of every string the store reads. */
struct imap_glue_req {
	struct imap_glue *be;
	bool cancelled;
	imap_done_cb done_cb;
	imap_status_cb status_cb;
	imap_select_cb select_cb;
	void *arg;
	char *account, *maildir, *mailbox, *target;
	uint32_t *uids;
	size_t n_uids;
	char **names;              /* keyword names */
	size_t n_names;
	struct store_op op;
	struct store_open_req open;
	/* APPEND */
	struct store_delivery d;
	struct store_rcpt rcpt;
	char *spool;
	uint32_t flags;
	/* SELECT */
	bool read_only;
	imap_change_cb on_change;
	void *change_arg;
	uint64_t quota_bytes, quota_messages;
};

struct imap_glue_req *imap_glue__req_new(struct imap_glue *be, const char *account, const char *maildir,
					 const char *mailbox);
void imap_glue__req_free(struct imap_glue_req *r);
/* Copy keyword names into r. */
void imap_glue__req_names(struct imap_glue_req *r, const char *const *names, size_t n);
/* Start r->op (kind and its own fields set by the caller; the strings,
 * uids, names, cb and ctx are filled here from r). cb NULL: the answer
 * goes to r->done_cb, then r is freed. */
void imap_glue__req_op(struct imap_glue_req *r, void (*cb)(struct store_op *op));

/* How a store result reads for IMAP. */
enum imap_status imap_glue__status(enum store_result r);

/* \Recent: the state of account's mailbox, NULL when no session has
 * claimed anything in it since the start; imap_glue__recent_get creates it. */
struct imap_glue_recent *imap_glue__recent_find(struct imap_glue *be, const char *account, uint64_t mailbox_id);
struct imap_glue_recent *imap_glue__recent_get(struct imap_glue *be, const char *account, uint64_t mailbox_id);

/* The store's name of an IMAP mailbox name ("inbox" -> "INBOX"). */
const char *imap_glue__mailbox_key(const char *name);

/* imap_glue_mailbox.c: the selected-mailbox entries of the table. */
void imap_glue__mailbox_init(struct imap_backend *b);
/* imap_mimecache.c */
void imap_glue__cache_init(struct imap_glue *be);
void imap_glue__cache_free(struct imap_glue *be);
struct mime_tree *imap_glue__message_tree(void *ctx, struct imap_mailbox *mb, uint32_t uid, enum imap_status *status_r);

/* Open uid's file read-only (looking it up again once when another
 * session renamed it meanwhile): the fd, or -1 with *status_r. */
int imap_glue__message_fd(struct imap_mailbox *mb, uint32_t uid, enum imap_status *status_r);

#endif
