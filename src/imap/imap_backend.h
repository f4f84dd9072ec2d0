#ifndef POSTBOTE_IMAP_IMAP_BACKEND_H
#define POSTBOTE_IMAP_IMAP_BACKEND_H

/*
 * What an IMAP session needs from the rest of the server, as a table of
 * functions: the session (imap_*.c) decides every response; the backend
 * (core/imap_glue.c) checks passwords, counts an account's sessions, reads
 * the index and the message files, and sends every change through the
 * store. Unit tests and the fuzz target give the session a fake backend, so
 * the whole dialogue is tested without disks or threads.
 *
 * Calls are of two kinds. Reads (listing, a message's record, its parsed
 * structure, its bytes) answer at once: they are LMDB read transactions
 * and page-cache reads, which contract 2 allows on the loop. Changes
 * (create, flags, copy, append...) go through the store's writer thread and
 * answer through a callback that runs later on the loop, never inside the
 * call that started them; the session returns SESSION_EFFECT_WAIT meanwhile.
 * A session that goes away cancels what it started (imap_backend.cancel):
 * the callback is then never called.
 *
 * Change notifications: while a mailbox is selected the backend calls the
 * session's on_change for every change anybody (this session included)
 * commits to it, right after the commit and before the callback of the
 * operation that made it. The session records them and reports them to the
 * client when RFC 3501 5.2 and 7 allow it.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "auth/auth_login.h"
#include "mime/mime_tree.h"

enum imap_status {
	IMAP_OK = 0,
	IMAP_NONEXISTENT,    /* no such mailbox: NO [NONEXISTENT] (or [TRYCREATE] for COPY/MOVE/APPEND) */
	IMAP_ALREADYEXISTS,  /* CREATE/RENAME onto an existing name: NO [ALREADYEXISTS] */
	IMAP_CANNOT,         /* not allowed (DELETE INBOX, a bad name): NO [CANNOT] */
	IMAP_OVERQUOTA,      /* NO [OVERQUOTA] */
	IMAP_LIMIT,          /* too many sessions for the account: NO [LIMIT] */
	IMAP_GONE,           /* the message was expunged meanwhile */
	IMAP_TEMPFAIL,       /* disk or index trouble: NO [UNAVAILABLE] */
};

/* Message flags, the same bits as the index's IDX_* (maildir/index.h). */
#define IMAP_SEEN     0x01u
#define IMAP_ANSWERED 0x02u
#define IMAP_FLAGGED  0x04u
#define IMAP_DELETED  0x08u
#define IMAP_DRAFT    0x10u

/* RFC 6154 special-use attributes of a mailbox. */
#define IMAP_USE_SENT    0x01u
#define IMAP_USE_DRAFTS  0x02u
#define IMAP_USE_TRASH   0x04u
#define IMAP_USE_JUNK    0x08u
#define IMAP_USE_ARCHIVE 0x10u

/* At most this many keywords (custom flags) per mailbox: the Maildir info
 * letters a..z, as Dovecot has it. */
#define IMAP_KEYWORDS_MAX 26

/* One message as the session keeps it for a selected mailbox: small, since
 * a session holds one per message (100,000 messages: 1.2 MB). */
struct imap_msg {
	uint32_t uid;
	uint8_t flags;         /* IMAP_* */
	uint8_t recent;        /* \Recent in this session */
	uint16_t pad_;
	uint32_t keywords;     /* bit n: keyword n of the mailbox */
};

/* More of one message, read from the index when a FETCH or SEARCH wants it. */
struct imap_msg_info {
	uint32_t uid;
	uint32_t flags;
	uint32_t keywords;
	uint64_t size;         /* octets with CRLF line ends: RFC822.SIZE */
	int64_t internal_date; /* seconds since the epoch */
};

/* One mailbox for LIST and LSUB. */
struct imap_mailbox_info {
	char *name;            /* "INBOX", "Archive/2024": hierarchy delimiter '/' */
	uint32_t special;      /* IMAP_USE_* */
	bool subscribed;
	bool exists;           /* false: only in the subscriptions (\NonExistent) */
	bool has_children;
};

struct imap_status_info {
	uint32_t messages, recent, uidnext, uidvalidity, unseen;
};

/* What SELECT and EXAMINE learn. msgs (ascending UID) becomes the
 * session's: it keeps the array and free()s it. */
struct imap_select_info {
	uint32_t uidvalidity;
	uint32_t uidnext;
	uint32_t special;
	struct imap_msg *msgs;
	size_t n;
	size_t recent;         /* how many of msgs are \Recent for this session */
};

/* A selected mailbox, opened by mailbox_select. */
struct imap_mailbox;
/* A logged-in account: its sessions are counted against a limit. */
struct imap_account;

enum imap_change {
	IMAP_CHANGE_NEW,       /* messages with uids [first, last] arrived */
	IMAP_CHANGE_EXPUNGE,   /* uid first was removed */
	IMAP_CHANGE_FLAGS,     /* uid first changed flags or keywords */
	IMAP_CHANGE_GONE,      /* the mailbox was deleted or renamed away */
};

typedef void (*imap_change_cb)(void *arg, enum imap_change what, uint32_t first, uint32_t last);
/* The answer of a change. For COPY/MOVE/APPEND uidvalidity and uids are the
 * target's (uids[i] for the i-th source uid, 0 when it was already gone;
 * APPEND: one uid), for COPYUID/APPENDUID (RFC 4315); NULL otherwise. */
typedef void (*imap_done_cb)(void *arg, enum imap_status status, uint32_t uidvalidity,
			     const uint32_t *uids, size_t n);
typedef void (*imap_status_cb)(void *arg, enum imap_status status, const struct imap_status_info *info);
typedef void (*imap_select_cb)(void *arg, enum imap_status status, struct imap_mailbox *mb,
			       struct imap_select_info *info);

enum imap_flags_mode { IMAP_FLAGS_SET, IMAP_FLAGS_ADD, IMAP_FLAGS_REMOVE };

struct imap_backend {
	void *ctx;

	/* ---- logging in ---- */

	/* Verify a password; see auth_login.h. NULL means a failed login. */
	void *(*auth_start)(void *ctx, const char *user, const char *password, const char *peer,
			    auth_login_cb cb, void *arg);
	void (*auth_cancel)(void *ctx, void *handle);
	/* Begin a session of account (as the verifier named it). NULL with
	 * *status_r IMAP_LIMIT when the account has imap_max_sessions already,
	 * IMAP_TEMPFAIL when it cannot be used. */
	struct imap_account *(*account_open)(void *ctx, const char *account, enum imap_status *status_r);
	void (*account_close)(void *ctx, struct imap_account *acct);

	/* ---- mailboxes (authenticated state) ---- */

	/* Every mailbox of the account and every subscribed name, sorted by
	 * name; INBOX is always there. Returns 0 with *v_r (free with
	 * imap_mailbox_info_free), or -1 (IMAP_TEMPFAIL). */
	int (*list)(void *ctx, struct imap_account *acct, struct imap_mailbox_info **v_r, size_t *n_r);
	/* Counts of a mailbox (after folding in changes other programs made to
	 * its files). Returns a handle for cancel, or NULL if it could not
	 * start (cb not called). */
	void *(*status)(void *ctx, struct imap_account *acct, const char *mailbox, imap_status_cb cb,
			void *arg);
	/* CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE: cb(arg, status, 0, NULL, 0). */
	void *(*create)(void *ctx, struct imap_account *acct, const char *mailbox, imap_done_cb cb, void *arg);
	void *(*delete_)(void *ctx, struct imap_account *acct, const char *mailbox, imap_done_cb cb, void *arg);
	void *(*rename)(void *ctx, struct imap_account *acct, const char *from, const char *to,
			imap_done_cb cb, void *arg);
	void *(*subscribe)(void *ctx, struct imap_account *acct, const char *mailbox, bool on,
			   imap_done_cb cb, void *arg);
	/* APPEND the len bytes at data (CRLF or LF line ends) with flags,
	 * keywords by name and an internal date (0 = now). cb gets APPENDUID
	 * (one uid); IMAP_NONEXISTENT means NO [TRYCREATE]. */
	void *(*append)(void *ctx, struct imap_account *acct, const char *mailbox, const void *data,
			size_t len, uint32_t flags, const char *const *keywords, size_t nkeywords,
			int64_t internal_date, imap_done_cb cb, void *arg);

	/* ---- the selected mailbox ---- */

	/* Open mailbox for SELECT (read_only false) or EXAMINE: reconcile
	 * it, load its messages, watch it (on_change from the moment cb has
	 * run until mailbox_close). \Recent is given to messages no session
	 * has seen yet (unless read_only); the session that selects or hears
	 * of a message first gets it. mb is NULL unless status is IMAP_OK. */
	void *(*mailbox_select)(void *ctx, struct imap_account *acct, const char *mailbox, bool read_only,
				imap_change_cb on_change, void *change_arg, imap_select_cb cb, void *arg);
	void (*mailbox_close)(void *ctx, struct imap_mailbox *mb);
	/* Messages with uid >= first_uid as the index has them now (after a
	 * CHANGE_NEW or CHANGE_FLAGS): *v_r is allocated (free()), recent
	 * set on those this session is the first to see (unless read-only). */
	int (*mailbox_messages)(void *ctx, struct imap_mailbox *mb, uint32_t first_uid, uint32_t last_uid,
				struct imap_msg **v_r, size_t *n_r);
	/* The mailbox's keyword names: names[i] for bit i, NULL when unused.
	 * Valid until the next call that changes flags. */
	const char *const *(*mailbox_keywords)(void *ctx, struct imap_mailbox *mb);
	/* One message's index record: IMAP_OK, IMAP_GONE, IMAP_TEMPFAIL. */
	enum imap_status (*message_info)(void *ctx, struct imap_mailbox *mb, uint32_t uid,
					 struct imap_msg_info *info_r);
	/* The message's MIME structure: from the index's cache, or parsed
	 * from the file (and then cached). Caller frees with mime_tree_free.
	 * NULL with *status_r IMAP_GONE or IMAP_TEMPFAIL. */
	struct mime_tree *(*message_tree)(void *ctx, struct imap_mailbox *mb, uint32_t uid,
					  enum imap_status *status_r);
	/* Read the stored bytes of a message (LF or CRLF line ends, as the
	 * Maildir has them; offsets are those of the tree). */
	void *(*message_open)(void *ctx, struct imap_mailbox *mb, uint32_t uid, enum imap_status *status_r);
	ssize_t (*message_pread)(void *reader, void *buf, size_t len, uint64_t offset);
	void (*message_close)(void *reader);

	/* STORE: change flags and keywords (by name; new names are added to
	 * the mailbox's keywords, past IMAP_KEYWORDS_MAX they are dropped)
	 * of uids (ascending). cb(arg, status, 0, NULL, 0). */
	void *(*flags)(void *ctx, struct imap_mailbox *mb, const uint32_t *uids, size_t n,
		       enum imap_flags_mode mode, uint32_t flags, const char *const *keywords,
		       size_t nkeywords, imap_done_cb cb, void *arg);
	/* COPY / MOVE uids (ascending) to target; cb gets COPYUID data. */
	void *(*copy)(void *ctx, struct imap_mailbox *mb, const uint32_t *uids, size_t n, const char *target,
		      bool move, imap_done_cb cb, void *arg);
	/* Remove uids (ascending). */
	void *(*expunge)(void *ctx, struct imap_mailbox *mb, const uint32_t *uids, size_t n,
			 imap_done_cb cb, void *arg);

	/* A change or status request that has not answered yet: its
	 * callback will never be called. */
	void (*cancel)(void *ctx, void *handle);
};

void imap_mailbox_info_free(struct imap_mailbox_info *v, size_t n);

#endif
