#ifndef POSTBOTE_TEST_POP3_FAKE_H
#define POSTBOTE_TEST_POP3_FAKE_H

/*
 * A POP3 backend in memory, for the session's unit tests and its fuzz
 * target: an INBOX of messages held as strings, a password table, an
 * account lock, and callbacks that wait in a queue until fake_run() (as
 * the real ones wait for the loop), never running inside the call that
 * started them.
 *
 * Accounts: user "bob" (or "bob@example.test") and "carol"; password
 * "secret" logs in, "locked" is answered AUTH_LOCKED, "tempfail"
 * AUTH_TEMPFAIL, anything else AUTH_FAIL, and an empty one cannot even be
 * checked (NULL, as auth_login_start does).
 *
 * Header-only (static functions) so that the fuzz target, which does not
 * link Check, can include it too.
 */

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/xalloc.h"
#include "pop3/pop3_backend.h"

#define FAKE_FN static __attribute__((unused))

struct fake_msg {
	uint32_t uid;
	char *data;
	size_t len;
	bool gone;          /* another client removed it: message_open says GONE */
	bool open_fail;     /* message_open says TEMPFAIL */
	bool read_fail;     /* message_read fails after the first chunk */
};

enum fake_kind { FAKE_AUTH = 1, FAKE_OPEN, FAKE_COMMIT };

struct fake;

struct fake_md {
	struct pop3_maildrop pub;   /* first */
	struct fake *f;
	char account[64];
	bool opening, committing, closed;
	uint32_t *uids;
	size_t n_uids;
};

struct fake_pending {
	enum fake_kind kind;
	bool cancelled;
	void *arg;
	auth_login_cb auth_cb;
	enum auth_result auth_result;
	char account[64];
	pop3_open_cb open_cb;
	pop3_commit_cb commit_cb;
	struct fake_md *md;
};

struct fake_reader {
	struct fake *f;
	struct fake_msg *m;
	size_t pos;
};

#define FAKE_PENDING_MAX 64
#define FAKE_MDS_MAX 16

struct fake {
	struct pop3_backend b;
	struct fake_msg *msgs;
	size_t n, cap;
	uint32_t uidvalidity, uidnext;

	size_t read_chunk;              /* most bytes one message_read returns; 0 = any */
	enum pop3_status open_status;   /* what a maildrop open reports */
	enum pop3_status commit_status;
	bool commit_start_fails;
	bool hold;                      /* the test runs callbacks itself */

	struct fake_pending *pending[FAKE_PENDING_MAX];
	size_t n_pending;
	struct fake_md *mds[FAKE_MDS_MAX];   /* not yet freed: each holds its lock */
	size_t n_mds;

	/* What happened. */
	unsigned auth_started, auth_cancelled, opens, closes, commits, readers;
	uint32_t *committed;
	size_t n_committed;
};

FAKE_FN void fake_add(struct fake *f, const char *data, size_t len)
{
	if (f->n == f->cap) {
		f->cap = f->cap ? f->cap * 2 : 16;
		f->msgs = xrealloc(f->msgs, f->cap * sizeof(*f->msgs));
	}
	struct fake_msg *m = &f->msgs[f->n++];
	memset(m, 0, sizeof(*m));
	m->uid = f->uidnext++;
	m->data = xmalloc(len ? len : 1);
	memcpy(m->data, data, len);
	m->len = len;
}

FAKE_FN uint64_t fake_vsize(const char *data, size_t len)
{
	uint64_t v = len;
	const char *end = data + len, *lf;
	for (const char *p = data; (lf = memchr(p, '\n', (size_t)(end - p))) != NULL; p = lf + 1) {
		if (lf == data || lf[-1] != '\r')
			v++;
	}
	return v;
}

FAKE_FN struct fake_msg *fake_find(struct fake *f, uint32_t uid)
{
	for (size_t i = 0; i < f->n; i++) {
		if (f->msgs[i].uid == uid)
			return &f->msgs[i];
	}
	return NULL;
}

FAKE_FN void fake_queue(struct fake *f, struct fake_pending *p)
{
	if (f->n_pending == FAKE_PENDING_MAX)
		abort();
	f->pending[f->n_pending++] = p;
}

FAKE_FN bool fake_locked(struct fake *f, const char *account)
{
	for (size_t i = 0; i < f->n_mds; i++) {
		if (strcmp(f->mds[i]->account, account) == 0)
			return true;
	}
	return false;
}

FAKE_FN void fake_md_free(struct fake_md *md)
{
	struct fake *f = md->f;
	for (size_t i = 0; i < f->n_mds; i++) {
		if (f->mds[i] == md) {
			f->mds[i] = f->mds[--f->n_mds];
			break;
		}
	}
	free(md->pub.msgs);
	free(md->uids);
	free(md);
}

static void *fake_auth_start(void *ctx, const char *user, const char *password, const char *peer,
			     auth_login_cb cb, void *arg)
{
	struct fake *f = ctx;
	(void)peer;
	if (user[0] == '\0' || password[0] == '\0' || strlen(user) > 255)
		return NULL;
	struct fake_pending *p = xcalloc(1, sizeof(*p));
	p->kind = FAKE_AUTH;
	p->auth_cb = cb;
	p->arg = arg;
	const char *account = NULL;
	if (strcasecmp(user, "bob") == 0 || strcasecmp(user, "bob@example.test") == 0)
		account = "bob@example.test";
	else if (strcasecmp(user, "carol") == 0)
		account = "carol@example.test";
	if (strcmp(password, "locked") == 0)
		p->auth_result = AUTH_LOCKED;
	else if (strcmp(password, "tempfail") == 0)
		p->auth_result = AUTH_TEMPFAIL;
	else if (account != NULL && strcmp(password, "secret") == 0)
		p->auth_result = AUTH_OK;
	else
		p->auth_result = AUTH_FAIL;
	snprintf(p->account, sizeof(p->account), "%s", account ? account : user);
	f->auth_started++;
	fake_queue(f, p);
	return p;
}

static void fake_auth_cancel(void *ctx, void *handle)
{
	struct fake *f = ctx;
	struct fake_pending *p = handle;
	p->cancelled = true;
	f->auth_cancelled++;
}

static struct pop3_maildrop *fake_maildrop_open(void *ctx, const char *account, pop3_open_cb cb, void *arg,
						enum pop3_status *status_r)
{
	struct fake *f = ctx;
	if (fake_locked(f, account)) {
		*status_r = POP3_IN_USE;
		return NULL;
	}
	if (f->n_mds == FAKE_MDS_MAX)
		abort();
	struct fake_md *md = xcalloc(1, sizeof(*md));
	md->f = f;
	snprintf(md->account, sizeof(md->account), "%s", account);
	md->opening = true;
	f->mds[f->n_mds++] = md;
	f->opens++;
	struct fake_pending *p = xcalloc(1, sizeof(*p));
	p->kind = FAKE_OPEN;
	p->open_cb = cb;
	p->arg = arg;
	p->md = md;
	fake_queue(f, p);
	return &md->pub;
}

static int fake_maildrop_commit(void *ctx, struct pop3_maildrop *pub, const uint32_t *uids, size_t n,
				pop3_commit_cb cb, void *arg)
{
	struct fake *f = ctx;
	struct fake_md *md = (struct fake_md *)pub;
	if (f->commit_start_fails || n == 0 || md->committing)
		return -1;
	for (size_t i = 1; i < n; i++) {
		if (uids[i - 1] >= uids[i])
			abort(); /* the contract: ascending */
	}
	md->uids = xmalloc(n * sizeof(*uids));
	memcpy(md->uids, uids, n * sizeof(*uids));
	md->n_uids = n;
	md->committing = true;
	f->commits++;
	struct fake_pending *p = xcalloc(1, sizeof(*p));
	p->kind = FAKE_COMMIT;
	p->commit_cb = cb;
	p->arg = arg;
	p->md = md;
	fake_queue(f, p);
	return 0;
}

static void fake_maildrop_close(void *ctx, struct pop3_maildrop *pub)
{
	struct fake *f = ctx;
	struct fake_md *md = (struct fake_md *)pub;
	f->closes++;
	md->closed = true;
	if (!md->opening && !md->committing)
		fake_md_free(md);
}

static void *fake_message_open(void *ctx, struct pop3_maildrop *md, uint32_t uid, enum pop3_status *status_r)
{
	struct fake *f = ctx;
	struct fake_msg *m = fake_find(f, uid);
	(void)md;
	if (m == NULL || m->gone) {
		*status_r = POP3_GONE;
		return NULL;
	}
	if (m->open_fail) {
		*status_r = POP3_TEMPFAIL;
		return NULL;
	}
	struct fake_reader *r = xcalloc(1, sizeof(*r));
	r->f = f;
	r->m = m;
	f->readers++;
	return r;
}

static ssize_t fake_message_read(void *reader, void *buf, size_t len)
{
	struct fake_reader *r = reader;
	if (r->m->read_fail && r->pos > 0)
		return -1;
	size_t n = r->m->len - r->pos;
	if (n > len)
		n = len;
	if (r->f->read_chunk != 0 && n > r->f->read_chunk)
		n = r->f->read_chunk;
	memcpy(buf, r->m->data + r->pos, n);
	r->pos += n;
	return (ssize_t)n;
}

static void fake_message_close(void *reader)
{
	struct fake_reader *r = reader;
	r->f->readers--;
	free(r);
}

/* Run the oldest queued callback (dropping cancelled ones). Returns 1 when
 * one ran, 0 when the queue is empty. */
FAKE_FN int fake_run(struct fake *f)
{
	while (f->n_pending > 0) {
		struct fake_pending *p = f->pending[0];
		memmove(f->pending, f->pending + 1, (f->n_pending - 1) * sizeof(*f->pending));
		f->n_pending--;
		struct fake_md *md = p->md;
		int ran = 0;
		switch (p->kind) {
		case FAKE_AUTH:
			if (!p->cancelled) {
				p->auth_cb(p->arg, p->auth_result, p->auth_result == AUTH_OK ? p->account : NULL);
				ran = 1;
			}
			break;
		case FAKE_OPEN:
			md->opening = false;
			if (md->closed) {
				fake_md_free(md);
				break;
			}
			if (f->open_status == POP3_OK) {
				/* The snapshot: what is there now. */
				md->pub.uidvalidity = f->uidvalidity;
				md->pub.msgs = xcalloc(f->n ? f->n : 1, sizeof(*md->pub.msgs));
				for (size_t i = 0; i < f->n; i++) {
					md->pub.msgs[md->pub.n++] = (struct pop3_message){
						.uid = f->msgs[i].uid,
						.vsize = fake_vsize(f->msgs[i].data, f->msgs[i].len),
					};
				}
			}
			p->open_cb(p->arg, f->open_status, &md->pub);
			ran = 1;
			break;
		case FAKE_COMMIT: {
			size_t removed = 0;
			md->committing = false;
			if (f->commit_status == POP3_OK) {
				for (size_t i = 0; i < md->n_uids; i++) {
					struct fake_msg *m = fake_find(f, md->uids[i]);
					f->committed = xrealloc(f->committed, (f->n_committed + 1) * sizeof(uint32_t));
					f->committed[f->n_committed++] = md->uids[i];
					if (m != NULL) {
						free(m->data);
						*m = f->msgs[--f->n];
						removed++;
					}
				}
				/* Keep UID order after the swap-removal. */
				for (size_t i = 1; i < f->n; i++) {
					for (size_t k = i; k > 0 && f->msgs[k - 1].uid > f->msgs[k].uid; k--) {
						struct fake_msg t = f->msgs[k];
						f->msgs[k] = f->msgs[k - 1];
						f->msgs[k - 1] = t;
					}
				}
			}
			if (md->closed) {
				fake_md_free(md);
			} else {
				p->commit_cb(p->arg, f->commit_status, removed);
				ran = 1;
			}
			break;
		}
		}
		free(p);
		if (ran)
			return 1;
	}
	return 0;
}

FAKE_FN void fake_init(struct fake *f)
{
	memset(f, 0, sizeof(*f));
	f->uidvalidity = 0x12345678;
	f->uidnext = 4;
	f->b = (struct pop3_backend){
		.ctx = f,
		.auth_start = fake_auth_start,
		.auth_cancel = fake_auth_cancel,
		.maildrop_open = fake_maildrop_open,
		.maildrop_commit = fake_maildrop_commit,
		.maildrop_close = fake_maildrop_close,
		.message_open = fake_message_open,
		.message_read = fake_message_read,
		.message_close = fake_message_close,
	};
}

/* Run what is queued (sessions are gone: only frees), then free it all. */
FAKE_FN void fake_free(struct fake *f)
{
	while (fake_run(f))
		;
	for (size_t i = 0; i < f->n_pending; i++)
		free(f->pending[i]);
	while (f->n_mds > 0)
		fake_md_free(f->mds[0]);
	for (size_t i = 0; i < f->n; i++)
		free(f->msgs[i].data);
	free(f->msgs);
	free(f->committed);
	memset(f, 0, sizeof(*f));
}

#endif
