#ifndef POSTBOTE_POP3_POP3_BACKEND_H
#define POSTBOTE_POP3_POP3_BACKEND_H

/*
 * What a POP3 session needs from the rest of the server, as a table of
 * functions: the session (pop3_session.c) decides every reply, the backend
 * checks passwords, locks and reads the maildrop and applies deletions. The
 * server's backend (pop3_backend.c) uses the verifier, the user database
 * and the store; unit tests and the fuzz target give the session a fake
 * one, so the whole dialogue is tested without disks or threads.
 *
 * The maildrop (RFC 1939 section 3) is the INBOX as it was at login: a list
 * of (UID, size with CRLF line ends) taken once, so that message numbers
 * mean the same thing for the whole session and mail that arrives meanwhile
 * waits for the next login. Only one POP3 session of an account has it at a
 * time (an in-memory lock, contract 6); IMAP is not blocked.
 *
 * Asynchronous calls return a handle; their callbacks run later on the
 * loop, never inside the call that started them (libuv's rule), and
 * cancelling guarantees the callback is never called.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "auth/auth_login.h"

enum pop3_status {
	POP3_OK = 0,
	POP3_IN_USE,        /* another POP3 session holds the maildrop: [IN-USE] */
	POP3_TEMPFAIL,      /* the index or the disk failed: [SYS/TEMP] */
	POP3_PERMFAIL,      /* the account or its INBOX cannot be opened: [SYS/PERM] */
	POP3_GONE,          /* message_open: another client removed it since login */
};

/* One message of the maildrop. */
struct pop3_message {
	uint32_t uid;
	uint64_t vsize;     /* octets with CRLF line ends (the ",W=" size) */
};

/* The snapshot taken at login. The backend's handle starts with it; the
 * session only reads these fields, and only after the open callback
 * reported POP3_OK. Valid until maildrop_close(). */
struct pop3_maildrop {
	uint32_t uidvalidity;
	size_t n;
	struct pop3_message *msgs;   /* n entries in ascending UID order */
};

/* The maildrop was opened (POP3_OK: md is filled in) or not (POP3_IN_USE,
 * POP3_TEMPFAIL, POP3_PERMFAIL). Either way the session still owns md and
 * must maildrop_close() it. */
typedef void (*pop3_open_cb)(void *arg, enum pop3_status status, struct pop3_maildrop *md);

/* The deletions were applied (POP3_OK; removed counts the messages that
 * were still there) or not (POP3_TEMPFAIL: nothing or only part removed). */
typedef void (*pop3_commit_cb)(void *arg, enum pop3_status status, size_t removed);

struct pop3_backend {
	void *ctx;

	/* Verify a password; see auth_login.h. NULL means a failed login. */
	void *(*auth_start)(void *ctx, const char *user, const char *password, const char *peer,
			    auth_login_cb cb, void *arg);
	void (*auth_cancel)(void *ctx, void *handle);

	/* Lock the maildrop of account (as the verifier named it) and take
	 * its snapshot; cb follows. Returns the handle, or NULL with
	 * *status_r (POP3_IN_USE, POP3_TEMPFAIL, POP3_PERMFAIL) when it
	 * cannot even start, and then cb is not called. */
	struct pop3_maildrop *(*maildrop_open)(void *ctx, const char *account, pop3_open_cb cb, void *arg,
					       enum pop3_status *status_r);
	/* Apply the deletions: uids (ascending, n > 0) are removed from the
	 * INBOX through the store, so IMAP sessions see them expunged. Once
	 * per maildrop. Returns 0 and calls cb later, or -1 (cb not called)
	 * when it cannot start. */
	int (*maildrop_commit)(void *ctx, struct pop3_maildrop *md, const uint32_t *uids, size_t n,
			       pop3_commit_cb cb, void *arg);
	/* The session is done with md: no callback of it runs any more and
	 * the lock is released - at once, or, when deletions are still being
	 * applied, as soon as they are (so the next login never sees a
	 * message that is on its way out). */
	void (*maildrop_close)(void *ctx, struct pop3_maildrop *md);

	/* Open one message of md for reading its stored bytes (LF or CRLF
	 * line ends, as the Maildir has them). Returns a reader, or NULL with
	 * *status_r: POP3_GONE when another client removed it, else
	 * POP3_TEMPFAIL. The reader must be closed before md. */
	void *(*message_open)(void *ctx, struct pop3_maildrop *md, uint32_t uid, enum pop3_status *status_r);
	/* Up to len bytes into buf: the count, 0 at the end, -1 on an error.
	 * Reads from the page cache on the loop, in chunks the session
	 * bounds. */
	ssize_t (*message_read)(void *reader, void *buf, size_t len);
	void (*message_close)(void *reader);
};


#endif
