/*
 * The asynchronous password verifier: throttle on the loop, hash on the
 * threadpool, at most cfg->auth_max_hashing hashes at once.
 *
 * Requests move through: DELAYED (on the timer list, waiting out a
 * throttle delay) -> QUEUED (FIFO, waiting for a hashing slot) -> RUNNING
 * (uv_queue_work) -> DONE. A request answered without hashing (locked,
 * cancelled before it ran) goes to COMPLETING instead: it sits on the
 * timer list due now, so that its callback comes from the loop and never
 * from inside auth_verify(). One uv_timer serves every request; the list
 * is ordered by due time.
 *
 * What this must never do: call back synchronously, hash on the loop, log
 * or keep a password after its check, or answer an unknown user faster
 * than a known one.
 */
#include "auth/auth.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/passwd.h"
#include "auth/throttle.h"
#include "auth/userdb.h"
#include "core/log.h"
#include "core/xalloc.h"

enum auth_state {
	AUTH_STATE_IDLE = 0,
	AUTH_STATE_DELAYED,
	AUTH_STATE_COMPLETING,
	AUTH_STATE_QUEUED,
	AUTH_STATE_RUNNING,
	AUTH_STATE_DONE,
};

struct auth_list {
	struct auth_request *head, *tail;
};

struct auth {
	uv_loop_t *loop;
	const struct config *cfg;
	struct db *db;
	struct throttle *throttle;
	uv_timer_t timer;
	struct auth_list timed;     /* DELAYED and COMPLETING, by due_ms */
	struct auth_list queue;     /* QUEUED, first come first served */
	unsigned pending, delayed, queued, running;
	atomic_uint hashing;        /* on threadpool threads now */
	atomic_uint peak_hashing;
	atomic_ulong checks;
};

static void auth_timer_fired(uv_timer_t *timer);

/* ---- Lists ---- */

static void auth_list_remove(struct auth_list *l, struct auth_request *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		l->head = r->next;
	if (r->next)
		r->next->prev = r->prev;
	else
		l->tail = r->prev;
	r->prev = r->next = NULL;
}

static void auth_list_append(struct auth_list *l, struct auth_request *r)
{
	r->next = NULL;
	r->prev = l->tail;
	if (l->tail)
		l->tail->next = r;
	else
		l->head = r;
	l->tail = r;
}

/* Insert by due time, after requests due at the same time (FIFO). */
static void auth_list_insert_due(struct auth_list *l, struct auth_request *r)
{
	struct auth_request *after = l->tail;

	while (after != NULL && after->due_ms > r->due_ms)
		after = after->prev;
	r->prev = after;
	r->next = after ? after->next : l->head;
	if (r->next)
		r->next->prev = r;
	else
		l->tail = r;
	if (after)
		after->next = r;
	else
		l->head = r;
}

static void auth_timer_arm(struct auth *a)
{
	if (a->timed.head == NULL) {
		uv_timer_stop(&a->timer);
		return;
	}
	uint64_t now = uv_now(a->loop);
	uint64_t due = a->timed.head->due_ms;
	uv_timer_start(&a->timer, auth_timer_fired, due > now ? due - now : 0, 0);
}

/* Put r on the timer list, due after delay_ms. */
static void auth_schedule(struct auth *a, struct auth_request *r, enum auth_state state, uint64_t delay_ms)
{
	r->state = state;
	r->due_ms = uv_now(a->loop) + delay_ms;
	if (state == AUTH_STATE_DELAYED)
		a->delayed++;
	auth_list_insert_due(&a->timed, r);
	auth_timer_arm(a);
}

/* ---- Logging ---- */

void auth_log_escape(const char *s, char *buf, size_t size)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	if (size == 0)
		return;
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		bool plain = c > 0x20 && c < 0x7f && c != '"' && c != '\\';
		size_t need = plain ? 1 : 4;
		if (o + need + 4 > size) { /* keep room for "..." and the NUL */
			if (o + 4 <= size) {
				memcpy(buf + o, "...", 3);
				o += 3;
			}
			break;
		}
		if (plain) {
			buf[o++] = (char)c;
		} else {
			buf[o++] = '\\';
			buf[o++] = 'x';
			buf[o++] = hex[c >> 4];
			buf[o++] = hex[c & 15];
		}
	}
	buf[o] = '\0';
}

static void auth_log_failure(const struct auth_request *r)
{
	char user[AUTH_LOG_USER_MAX];

	auth_log_escape(r->user, user, sizeof(user));
	log_info("auth: failed ip=%s user=%s reason=%s", r->peer, user, r->reason ? r->reason : "password");
}

/* ---- Completion ---- */

static void auth_wipe(struct auth_request *r)
{
	explicit_bzero(r->password, sizeof(r->password));
}

static void auth_pump(struct auth *a);

/* Hand r back to its owner. Nothing of a may be used after the callback:
 * the owner may free the request and, with nothing pending, the auth. */
static void auth_finish(struct auth *a, struct auth_request *r, enum auth_result result)
{
	auth_wipe(r);
	free(r->error);
	r->error = NULL;
	r->state = AUTH_STATE_DONE;
	a->pending--;
	r->cb(r, result);
}

static void auth_after_work(uv_work_t *work, int status)
{
	struct auth_request *r = (struct auth_request *)work;
	struct auth *a = r->auth;
	enum auth_result result = r->result;

	a->running--;
	if (status == UV_ECANCELED) {
		r->cancelled = true;
		result = AUTH_FAIL;
	} else if (status != 0) {
		log_error("auth: threadpool job failed: %s", uv_strerror(status));
		result = AUTH_TEMPFAIL;
	} else if (result == AUTH_OK) {
		throttle_success(a->throttle, &r->ipkey, r->user);
		log_debug("auth: ok ip=%s user=%s", r->peer, r->user);
	} else if (result == AUTH_FAIL) {
		uint8_t fp[THROTTLE_FINGERPRINT_LEN];
		throttle_fingerprint(a->throttle, r->password, strlen(r->password), fp);
		throttle_failure(a->throttle, &r->ipkey, r->peer, r->user, fp, uv_now(a->loop));
		explicit_bzero(fp, sizeof(fp));
		auth_log_failure(r);
	} else if (result == AUTH_TEMPFAIL) {
		char user[AUTH_LOG_USER_MAX];
		auth_log_escape(r->user, user, sizeof(user));
		log_error("auth: tempfail ip=%s user=%s error=%s", r->peer, user, r->error ? r->error : "?");
	}
	auth_wipe(r);
	auth_pump(a);
	auth_finish(a, r, result);
}

/* On a threadpool thread: the check itself. Touches only r, the database
 * and the atomics of a. */
static void auth_work(uv_work_t *work)
{
	struct auth_request *r = (struct auth_request *)work;
	struct auth *a = r->auth;
	struct user u;
	char *error = NULL;

	unsigned now = atomic_fetch_add(&a->hashing, 1) + 1;
	unsigned peak = atomic_load(&a->peak_hashing);
	while (now > peak && !atomic_compare_exchange_weak(&a->peak_hashing, &peak, now))
		;
	atomic_fetch_add(&a->checks, 1);

	/* Made on the first check of any user, known or not, so that its
	 * one-off cost does not tell the two apart. */
	const char *dummy = passwd_dummy_hash();

	int rc = userdb_get(a->db, r->user, &u, &error);
	if (rc < 0) {
		r->result = AUTH_TEMPFAIL;
		r->error = error;
	} else if (rc == 1) {
		passwd_verify(dummy, r->password);
		r->result = AUTH_FAIL;
		r->reason = "unknown-user";
	} else {
		int v = passwd_verify(u.password_hash, r->password);
		if (v < 0) {
			/* An unusable stored hash: spend the usual time anyway. */
			passwd_verify(dummy, r->password);
			r->result = AUTH_FAIL;
			r->reason = "bad-hash";
		} else if (u.disabled) {
			r->result = AUTH_FAIL;
			r->reason = "disabled";
		} else if (v == 1) {
			r->result = AUTH_OK;
		} else {
			r->result = AUTH_FAIL;
			r->reason = "password";
		}
		user_free(&u);
	}
	atomic_fetch_sub(&a->hashing, 1);
}

/* Start queued requests while there are hashing slots. */
static void auth_pump(struct auth *a)
{
	unsigned max = a->cfg->auth_max_hashing ? a->cfg->auth_max_hashing : 1;

	while (a->running < max && a->queue.head != NULL) {
		struct auth_request *r = a->queue.head;
		auth_list_remove(&a->queue, r);
		a->queued--;
		r->state = AUTH_STATE_RUNNING;
		int rc = uv_queue_work(a->loop, &r->work, auth_work, auth_after_work);
		if (rc < 0) {
			log_error("auth: cannot queue a check: %s", uv_strerror(rc));
			r->result = AUTH_TEMPFAIL;
			auth_schedule(a, r, AUTH_STATE_COMPLETING, 0);
			continue;
		}
		a->running++;
	}
}

static void auth_enqueue(struct auth *a, struct auth_request *r)
{
	r->state = AUTH_STATE_QUEUED;
	auth_list_append(&a->queue, r);
	a->queued++;
	auth_pump(a);
}

static void auth_timer_fired(uv_timer_t *timer)
{
	struct auth *a = timer->data;
	uint64_t now = uv_now(a->loop);

	/* Take one request at a time off the head: a callback may add or
	 * cancel others. */
	while (a->timed.head != NULL && a->timed.head->due_ms <= now) {
		struct auth_request *r = a->timed.head;
		auth_list_remove(&a->timed, r);
		if (r->state == AUTH_STATE_DELAYED) {
			a->delayed--;
			auth_enqueue(a, r);
		} else {
			auth_finish(a, r, r->result);
		}
	}
	auth_timer_arm(a);
}

/* ---- The API ---- */

struct auth *auth_new(uv_loop_t *loop, const struct config *cfg, struct db *db)
{
	struct auth *a = xcalloc(1, sizeof(*a));

	a->loop = loop;
	a->cfg = cfg;
	a->db = db;
	a->throttle = throttle_new(cfg);
	uv_timer_init(loop, &a->timer);
	a->timer.data = a;
	atomic_init(&a->hashing, 0);
	atomic_init(&a->peak_hashing, 0);
	atomic_init(&a->checks, 0);
	return a;
}

static void auth_closed(uv_handle_t *h)
{
	struct auth *a = h->data;

	throttle_free(&a->throttle);
	free(a);
}

void auth_free(struct auth **ap)
{
	struct auth *a = *ap;

	if (a == NULL)
		return;
	*ap = NULL;
	if (a->pending != 0)
		log_error("auth: freed with %u requests pending", a->pending);
	uv_close((uv_handle_t *)&a->timer, auth_closed);
}

int auth_verify(struct auth *a, struct auth_request *req, const char *user, const char *password,
		const struct iplimit_key *ipkey, const char *peer, auth_cb cb)
{
	size_t ulen = strlen(user), plen = strlen(password);
	uint64_t delay = 0;

	if ((req->state != AUTH_STATE_IDLE && req->state != AUTH_STATE_DONE) || cb == NULL ||
	    ulen == 0 || ulen > AUTH_USER_MAX || plen > AUTH_PASSWORD_MAX)
		return -1;
	void *data = req->data;
	memset(req, 0, sizeof(*req));
	req->data = data;
	req->auth = a;
	req->cb = cb;
	req->ipkey = *ipkey;
	snprintf(req->peer, sizeof(req->peer), "%s", peer ? peer : "unknown");
	for (size_t i = 0; i < ulen; i++) {
		char c = user[i];
		req->user[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
	}
	memcpy(req->password, password, plen);
	a->pending++;

	if (throttle_check(a->throttle, ipkey, req->user, uv_now(a->loop), &delay) == THROTTLE_LOCKED) {
		req->result = AUTH_LOCKED;
		req->reason = "locked";
		auth_wipe(req);
		auth_log_failure(req);
		auth_schedule(a, req, AUTH_STATE_COMPLETING, 0);
		return 0;
	}
	if (delay > 0)
		auth_schedule(a, req, AUTH_STATE_DELAYED, delay);
	else
		auth_enqueue(a, req);
	return 0;
}

void auth_cancel(struct auth_request *req)
{
	struct auth *a = req->auth;

	switch ((enum auth_state)req->state) {
	case AUTH_STATE_DELAYED:
		auth_list_remove(&a->timed, req);
		a->delayed--;
		break;
	case AUTH_STATE_QUEUED:
		auth_list_remove(&a->queue, req);
		a->queued--;
		break;
	case AUTH_STATE_RUNNING:
		req->cancelled = true;
		/* Succeeds only while the job still waits for a thread; then
		 * auth_after_work sees UV_ECANCELED. Otherwise the check
		 * finishes and the flag tells the owner. */
		uv_cancel((uv_req_t *)&req->work);
		return;
	case AUTH_STATE_COMPLETING:
		req->cancelled = true;
		return;
	case AUTH_STATE_IDLE:
	case AUTH_STATE_DONE:
		return;
	}
	req->cancelled = true;
	req->result = AUTH_FAIL;
	auth_wipe(req);
	auth_schedule(a, req, AUTH_STATE_COMPLETING, 0);
}

void auth_get_stats(const struct auth *a, struct auth_stats *stats_r)
{
	stats_r->pending = a->pending;
	stats_r->delayed = a->delayed;
	stats_r->queued = a->queued;
	stats_r->running = a->running;
	stats_r->peak_hashing = atomic_load(&((struct auth *)a)->peak_hashing);
	stats_r->checks = atomic_load(&((struct auth *)a)->checks);
}

struct throttle *auth_throttle(struct auth *a)
{
	return a->throttle;
}
