#ifndef POSTBOTE_SMTP_SMTP_BACKEND_H
#define POSTBOTE_SMTP_SMTP_BACKEND_H

/*
 * What an SMTP session needs from the rest of the server, as a table of
 * functions: the session (smtp_session.c) decides every reply, the backend
 * looks up accounts, checks passwords, spools and delivers. The server's
 * backend (core/smtp_glue.c) uses the user database and the store; unit tests
 * give the session a fake one, so the whole dialogue is tested without
 * disks or threads.
 *
 * Asynchronous calls return a handle; cancelling it guarantees the callback
 * is never called (the session is going away), and the backend cleans up
 * whatever is still running.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/auth_login.h"

/* What RCPT learns about an address. */
enum smtp_rcpt_status {
	SMTP_RCPT_LOCAL,        /* an account or alias of ours: deliver here */
	SMTP_RCPT_REMOTE,       /* another domain: only for authenticated users */
	SMTP_RCPT_UNKNOWN,      /* our domain, nobody of that name: 550 5.1.1 */
	SMTP_RCPT_FORWARD,      /* our alias, but (partly) to other domains */
	SMTP_RCPT_FULL,         /* over quota: 452 4.2.2 */
	SMTP_RCPT_TEMPFAIL,     /* the database failed: 451 4.3.0 */
};

/* DSN parameters (RFC 3461), kept with the message for the queue. */
enum smtp_ret { SMTP_RET_UNSET = 0, SMTP_RET_FULL, SMTP_RET_HDRS };

#define SMTP_NOTIFY_NEVER   0x1
#define SMTP_NOTIFY_SUCCESS 0x2
#define SMTP_NOTIFY_FAILURE 0x4
#define SMTP_NOTIFY_DELAY   0x8

struct smtp_rcpt {
	char *address;          /* as accepted: domain lowercased */
	unsigned notify;        /* SMTP_NOTIFY_*, 0 = not given */
	char *orcpt;            /* "rfc822;user@example.org" (xtext decoded), or NULL */
	enum smtp_rcpt_status status;
};

/* One message as the session hands it over. */
struct smtp_envelope {
	const char *id;         /* our message id, for logs */
	const char *sender;     /* "" for the null reverse-path */
	struct smtp_rcpt *rcpts;
	size_t n_rcpts;
	enum smtp_ret ret;
	const char *envid;      /* NULL when not given */
	bool smtputf8;
	bool eightbit;          /* BODY=8BITMIME */
	const char *auth_user;  /* NULL on unauthenticated sessions */
	uint64_t size;          /* octets in the spool */
};

enum smtp_deliver_status {
	SMTP_DELIVERED,         /* durable for every recipient */
	SMTP_DELIVER_TEMPFAIL,  /* nothing delivered: 451 4.3.0 */
	SMTP_DELIVER_FULL,      /* a recipient went over quota meanwhile: 452 4.2.2 */
	SMTP_DELIVER_TOO_BIG,   /* bigger than a recipient's whole quota: 552 5.2.2 */
};

struct smtp_deliver_result {
	enum smtp_deliver_status status;
	uint64_t durable_ms;
	/* Per recipient of the envelope, for the log line: "delivered",
	 * "over-quota", "tempfail". */
	const char *const *outcomes;
};

typedef void (*smtp_deliver_cb)(void *arg, const struct smtp_deliver_result *r);

struct smtp_backend {
	void *ctx;

	/* Mail for other domains can be queued (the outbound queue runs).
	 * Until it does, such recipients are answered "try later". */
	bool (*can_relay)(void *ctx);
	/* Is the domain one of ours (compared without case)? */
	bool (*domain_is_local)(void *ctx, const char *domain);
	/* Look up a recipient whose domain is local or not. */
	enum smtp_rcpt_status (*rcpt_check)(void *ctx, const char *address);
	/* May this account send as address? 1 yes, 0 no, -1 database error. */
	int (*sender_owned)(void *ctx, const char *account, const char *address);

	/* Verify a password; see auth_login.h. NULL means a failed login. */
	void *(*auth_start)(void *ctx, const char *user, const char *password, const char *peer,
			    auth_login_cb cb, void *arg);
	void (*auth_cancel)(void *ctx, void *handle);

	/* A spool for one message's content, written in order. NULL, or
	 * spool_write < 0, is a local error (451 4.3.0). */
	void *(*spool_open)(void *ctx, const char *id);
	int (*spool_write)(void *spool, const void *data, size_t len);
	void (*spool_discard)(void *spool);

	/* Deliver the spooled message (the backend takes the spool, also on
	 * failure). The envelope is copied as needed. NULL: it could not
	 * even start (451 4.3.0), and cb is not called. */
	void *(*deliver_start)(void *ctx, void *spool, const struct smtp_envelope *env, smtp_deliver_cb cb,
			       void *arg);
	void (*deliver_cancel)(void *ctx, void *handle);
};


#endif
