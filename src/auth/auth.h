#ifndef POSTBOTE_AUTH_AUTH_H
#define POSTBOTE_AUTH_AUTH_H

/*
 * The asynchronous password check that protocol glue runs when a session
 * asks to verify credentials (AUTH, USER/PASS, LOGIN, AUTHENTICATE).
 *
 * Order of events for one request:
 *  1. on the loop, the throttle (auth/throttle.h) is asked: a locked
 *     address or account is answered AUTH_LOCKED without hashing; an
 *     address or account with recent failures waits its delay on a timer;
 *  2. the request waits in a FIFO until fewer than cfg->auth_max_hashing
 *     checks are running (hashing must not starve the file jobs that share
 *     libuv's threadpool);
 *  3. on the threadpool: userdb_get, then passwd_verify against the
 *     account's hash, or against passwd_dummy_hash() when there is no such
 *     account (so an unknown user costs what a wrong password costs). A
 *     disabled account is verified all the same and then fails like a
 *     wrong password;
 *  4. on the loop: the throttle learns the outcome, a failure is logged
 *     (info level, one line, never the password):
 *       auth: failed ip=PEER user=USER reason=password|unknown-user|disabled|bad-hash|locked
 *     a database error as
 *       auth: tempfail ip=PEER user=USER error=...
 *     the password is wiped, and the callback runs.
 *
 * The callback runs exactly once for every auth_verify() that returned 0,
 * always from the loop and never inside auth_verify() itself (libuv's
 * rule), also after auth_cancel(). The owner keeps the request alive
 * until then; it may free it inside the callback.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <uv.h>

#include "auth/sasl.h"
#include "core/config.h"
#include "core/db.h"
#include "core/iplimit.h"

#define AUTH_USER_MAX SASL_ID_MAX
#define AUTH_PASSWORD_MAX SASL_PASS_MAX
/* Room for a user name escaped for a log line (auth_log_escape). */
#define AUTH_LOG_USER_MAX 192

enum auth_result {
	AUTH_OK = 0,      /* the password matches an enabled account */
	AUTH_FAIL,        /* wrong password, unknown user or disabled account
	                   * (the client is not told which) */
	AUTH_LOCKED,      /* refused without checking: too many failures, try later */
	AUTH_TEMPFAIL,    /* the database could not be read: try later */
};

struct auth;
struct auth_request;

typedef void (*auth_cb)(struct auth_request *req, enum auth_result result);

/* Embed in (or allocate beside) the session's state. The fields above
 * "private" may be read by the owner; the rest belong to auth.c. */
struct auth_request {
	uv_work_t work;                   /* first: the threadpool job */
	void *data;                       /* the owner's, never touched */
	/* The user name as given, lowercased: after AUTH_OK, the account. */
	char user[AUTH_USER_MAX + 1];
	/* True when auth_cancel() was called: the owner has moved on and
	 * should only release what it holds for the request. */
	bool cancelled;

	/* private */
	struct auth *auth;
	auth_cb cb;
	struct auth_request *prev, *next;
	uint64_t due_ms;
	int state;
	enum auth_result result;
	const char *reason;
	char *error;
	struct iplimit_key ipkey;
	char peer[INET6_ADDRSTRLEN];
	char password[AUTH_PASSWORD_MAX + 1];
};

/* A verifier on loop, reading accounts from db with the settings of cfg
 * (auth_* keys); cfg and db must outlive it. Never fails. */
struct auth *auth_new(uv_loop_t *loop, const struct config *cfg, struct db *db);

/* Close the verifier. Only when no request is pending (auth_stats().pending
 * == 0; a running threadpool job cannot be recalled). The memory is freed
 * in a close callback, so the loop must run once more. */
void auth_free(struct auth **a);

/* Check user and password (copied into req; the password is wiped once
 * checked). req must be zeroed before its first use (req->data may be set);
 * it may be used again once its callback has run. ipkey and peer (text, for
 * logs) name the client. cb runs later with the result (see above). Returns
 * 0, or -1 without calling cb when req is still in use, user is empty or
 * longer than AUTH_USER_MAX, or the password is longer than
 * AUTH_PASSWORD_MAX. */
int auth_verify(struct auth *a, struct auth_request *req, const char *user, const char *password,
		const struct iplimit_key *ipkey, const char *peer, auth_cb cb);

/* The session that made req has gone: drop it from the delay timer or the
 * queue, or try to recall its threadpool job (uv_cancel). The callback
 * still runs, soon, with req->cancelled set; a check that already ran is
 * still counted by the throttle. A no-op for a request not pending. */
void auth_cancel(struct auth_request *req);

struct auth_stats {
	unsigned pending;        /* accepted, callback not yet run */
	unsigned delayed;        /* waiting out a throttle delay */
	unsigned queued;         /* waiting for a hashing slot */
	unsigned running;        /* handed to the threadpool */
	unsigned peak_hashing;   /* most checks seen on threadpool threads at once */
	unsigned long checks;    /* checks run on the threadpool so far */
};

void auth_get_stats(const struct auth *a, struct auth_stats *stats_r);

/* The throttle, for protocols that count other failures (e.g. a bad
 * response to a SASL challenge) or for tests. */
struct throttle *auth_throttle(struct auth *a);

/* Copy s into buf (size bytes, NUL-terminated) for a log line: bytes
 * outside printable ASCII, spaces, '"' and '\' become \xNN; a copy that
 * does not fit ends in "...". */
void auth_log_escape(const char *s, char *buf, size_t size);

#endif
