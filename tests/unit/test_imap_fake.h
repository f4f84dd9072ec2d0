#ifndef POSTBOTE_TEST_IMAP_FAKE_H
#define POSTBOTE_TEST_IMAP_FAKE_H

/*
 * An IMAP backend in memory (struct imap_backend), for the session's unit
 * tests, the command tests and the fuzz target: accounts with mailboxes of
 * messages held as strings, a password table, a per-account session limit,
 * and changes that wait in a queue until fake_run() - as the real ones wait
 * for the store's writer thread - never running inside the call that
 * started them.
 *
 * Accounts: user "bob" (or "bob@example.test") and "carol"; password
 * "secret" logs in, "locked" is answered AUTH_LOCKED, "tempfail"
 * AUTH_TEMPFAIL, anything else AUTH_FAIL, and an empty one cannot even be
 * checked (NULL, as auth_login_start does). Each account starts with INBOX,
 * Sent, Drafts, Trash, Junk and Archive (with their special-use
 * attributes), INBOX and Sent subscribed.
 *
 * Changes (flags, copy, move, expunge, append, and what the test helpers
 * fake_deliver / fake_remove do) are applied when their turn comes in
 * fake_run(); then every session that has the mailbox selected hears of it
 * through its on_change, and only then the starter's callback runs, as
 * imap_backend.h promises. A cancelled change is still applied (the
 * writer had it already), only its callback is dropped.
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
#include "imap/imap_backend.h"
#include "mime/mime_parse.h"
#include "mime/mime_tree.h"

#define FAKE_FN static __attribute__((unused))

#define FAKE_NAME_MAX 128
#define FAKE_PENDING_MAX 256

struct fake_msg {
	uint32_t uid;
	uint32_t flags;         /* IMAP_* */
	uint32_t keywords;      /* bit n: the box's keyword n */
	int64_t date;
	char *data;
	size_t len;
	bool gone;              /* the file went away: message_* say IMAP_GONE */
};

struct fake_box {
	char account[64];
	char name[FAKE_NAME_MAX];
	uint32_t special;       /* IMAP_USE_* */
	bool exists;            /* false: deleted, or only subscribed */
	bool subscribed;
	uint32_t uidvalidity, uidnext;
	uint32_t recent_upto;   /* uids up to here have had their \Recent */
	struct fake_msg *msgs;  /* ascending uid */
	size_t n, cap;
	char *keywords[IMAP_KEYWORDS_MAX];
};

/* A selected mailbox (struct imap_mailbox for the session). */
struct fake_mb {
	struct fake *f;
	struct fake_box *box;
	bool read_only;
	imap_change_cb on_change;
	void *change_arg;
};

struct fake_acct {
	char name[64];
};

enum fake_op_kind {
	FAKE_OP_AUTH = 1,
	FAKE_OP_SELECT,
	FAKE_OP_STATUS,
	FAKE_OP_CREATE,
	FAKE_OP_DELETE,
	FAKE_OP_RENAME,
	FAKE_OP_SUBSCRIBE,
	FAKE_OP_APPEND,
	FAKE_OP_FLAGS,
	FAKE_OP_COPY,
	FAKE_OP_EXPUNGE,
};

/* One queued piece of work, with copies of everything it needs. */
struct fake_op {
	enum fake_op_kind kind;
	bool cancelled;
	void *arg;
	auth_login_cb auth_cb;
	imap_done_cb done_cb;
	imap_status_cb status_cb;
	imap_select_cb select_cb;
	imap_change_cb on_change;
	void *change_arg;

	enum auth_result auth_result;
	char account[64];
	char name[FAKE_NAME_MAX], name2[FAKE_NAME_MAX];
	bool flag;                      /* read_only, subscribe on, move */
	struct fake_box *box;           /* the selected box (the session's handle may go first) */
	uint32_t *uids;
	size_t n;
	enum imap_flags_mode mode;
	uint32_t flags;
	char **keywords;
	size_t nkeywords;
	char *data;
	size_t len;
	int64_t date;
};

struct fake_reader {
	struct fake *f;
	char *data;
	size_t len;
};

#define FAKE_BOXES_MAX 64
#define FAKE_MBS_MAX 32

struct fake {
	struct imap_backend b;
	struct fake_box *boxes[FAKE_BOXES_MAX];  /* never freed before fake_free: handles point here */
	size_t n_boxes;
	struct fake_mb *mbs[FAKE_MBS_MAX];       /* selected, until mailbox_close */
	size_t n_mbs;
	struct fake_op *pending[FAKE_PENDING_MAX];
	size_t n_pending;

	unsigned session_limit;         /* account_open past it: IMAP_LIMIT */
	enum imap_status fail;          /* not IMAP_OK: every change, select and status fails so */
	uint32_t next_uidvalidity;
	int64_t now;                    /* the internal date of an APPEND without one */

	/* What happened. */
	unsigned auth_started, auth_cancelled, cancels;
	unsigned accounts_open, readers_open;
};

/* ---------------------------------------------------------------- */
/* Mailboxes                                                         */

FAKE_FN struct fake_box *fake_box_find(struct fake *f, const char *account, const char *name)
{
	for (size_t i = 0; i < f->n_boxes; i++) {
		struct fake_box *b = f->boxes[i];
		if (strcmp(b->account, account) == 0 && strcmp(b->name, name) == 0 && (b->exists || b->subscribed))
			return b;
	}
	return NULL;
}

FAKE_FN struct fake_box *fake_box_existing(struct fake *f, const char *account, const char *name)
{
	struct fake_box *b = fake_box_find(f, account, name);
	return b != NULL && b->exists ? b : NULL;
}

FAKE_FN struct fake_box *fake_box_add(struct fake *f, const char *account, const char *name, uint32_t special)
{
	if (f->n_boxes == FAKE_BOXES_MAX)
		abort();
	struct fake_box *b = xcalloc(1, sizeof(*b));
	snprintf(b->account, sizeof(b->account), "%s", account);
	snprintf(b->name, sizeof(b->name), "%s", name);
	b->special = special;
	b->exists = true;
	b->uidvalidity = f->next_uidvalidity++;
	b->uidnext = 1;
	f->boxes[f->n_boxes++] = b;
	return b;
}

FAKE_FN void fake_box_clear(struct fake_box *b)
{
	for (size_t i = 0; i < b->n; i++)
		free(b->msgs[i].data);
	free(b->msgs);
	b->msgs = NULL;
	b->n = b->cap = 0;
	for (size_t i = 0; i < IMAP_KEYWORDS_MAX; i++) {
		free(b->keywords[i]);
		b->keywords[i] = NULL;
	}
}

FAKE_FN struct fake_msg *fake_msg_find(struct fake_box *b, uint32_t uid)
{
	for (size_t i = 0; i < b->n; i++) {
		if (b->msgs[i].uid == uid)
			return &b->msgs[i];
	}
	return NULL;
}

/* The keyword's bit in the box, adding the name if there is room (-1
 * when not: past IMAP_KEYWORDS_MAX names are dropped). */
FAKE_FN int fake_keyword_bit(struct fake_box *b, const char *name, bool add)
{
	for (int i = 0; i < IMAP_KEYWORDS_MAX; i++) {
		if (b->keywords[i] != NULL && strcasecmp(b->keywords[i], name) == 0)
			return i;
	}
	if (!add)
		return -1;
	for (int i = 0; i < IMAP_KEYWORDS_MAX; i++) {
		if (b->keywords[i] == NULL) {
			b->keywords[i] = xstrdup(name);
			return i;
		}
	}
	return -1;
}

/* Tell every session with b selected. */
FAKE_FN void fake_notify(struct fake *f, struct fake_box *b, enum imap_change what, uint32_t first, uint32_t last)
{
	/* A watcher may close its mailbox from on_change (a BYE): walk a
	 * copy of the list. */
	struct fake_mb *mbs[FAKE_MBS_MAX];
	size_t n = f->n_mbs;
	memcpy(mbs, f->mbs, n * sizeof(*mbs));
	for (size_t i = 0; i < n; i++) {
		bool still_open = false;
		for (size_t k = 0; k < f->n_mbs; k++)
			still_open |= f->mbs[k] == mbs[i];
		if (still_open && mbs[i]->box == b)
			mbs[i]->on_change(mbs[i]->change_arg, what, first, last);
	}
}

/* Add a message to b: the uid it got. */
FAKE_FN uint32_t fake_box_append(struct fake *f, struct fake_box *b, const char *data, size_t len, uint32_t flags,
				 uint32_t keywords, int64_t date)
{
	if (b->n == b->cap) {
		b->cap = b->cap ? b->cap * 2 : 16;
		b->msgs = xrealloc(b->msgs, b->cap * sizeof(*b->msgs));
	}
	struct fake_msg *m = &b->msgs[b->n++];
	memset(m, 0, sizeof(*m));
	m->uid = b->uidnext++;
	m->flags = flags;
	m->keywords = keywords;
	m->date = date != 0 ? date : f->now;
	m->data = xmalloc(len ? len : 1);
	memcpy(m->data, data, len);
	m->len = len;
	return m->uid;
}

FAKE_FN void fake_box_remove(struct fake *f, struct fake_box *b, uint32_t uid)
{
	for (size_t i = 0; i < b->n; i++) {
		if (b->msgs[i].uid == uid) {
			free(b->msgs[i].data);
			memmove(&b->msgs[i], &b->msgs[i + 1], (b->n - i - 1) * sizeof(*b->msgs));
			b->n--;
			fake_notify(f, b, IMAP_CHANGE_EXPUNGE, uid, uid);
			return;
		}
	}
}

/* ---------------------------------------------------------------- */
/* Test helpers                                                      */

/* A delivery: the message lands in the box (account "bob@example.test",
 * say) and its watchers hear CHANGE_NEW at once. Returns the uid. */
FAKE_FN uint32_t fake_deliver(struct fake *f, const char *account, const char *box, const char *data)
{
	struct fake_box *b = fake_box_existing(f, account, box);
	if (b == NULL)
		abort();
	uint32_t uid = fake_box_append(f, b, data, strlen(data), 0, 0, 0);
	fake_notify(f, b, IMAP_CHANGE_NEW, uid, uid);
	return uid;
}

/* Another program removed a message: watchers hear CHANGE_EXPUNGE. */
FAKE_FN void fake_remove(struct fake *f, const char *account, const char *box, uint32_t uid)
{
	struct fake_box *b = fake_box_existing(f, account, box);
	if (b == NULL)
		abort();
	fake_box_remove(f, b, uid);
}

/* The message's file vanished: the index still lists it, reading it says
 * IMAP_GONE. */
FAKE_FN void fake_make_gone(struct fake *f, const char *account, const char *box, uint32_t uid)
{
	struct fake_box *b = fake_box_existing(f, account, box);
	struct fake_msg *m = b != NULL ? fake_msg_find(b, uid) : NULL;
	if (m == NULL)
		abort();
	m->gone = true;
}

/* Another program changed a message's flags: watchers hear CHANGE_FLAGS. */
FAKE_FN void fake_set_flags(struct fake *f, const char *account, const char *box, uint32_t uid, uint32_t flags)
{
	struct fake_box *b = fake_box_existing(f, account, box);
	struct fake_msg *m = b != NULL ? fake_msg_find(b, uid) : NULL;
	if (m == NULL)
		abort();
	m->flags = flags;
	fake_notify(f, b, IMAP_CHANGE_FLAGS, uid, uid);
}

/* ---------------------------------------------------------------- */
/* The queue                                                         */

FAKE_FN struct fake_op *fake_op_new(struct fake *f, enum fake_op_kind kind, void *arg)
{
	if (f->n_pending == FAKE_PENDING_MAX)
		abort();
	struct fake_op *op = xcalloc(1, sizeof(*op));
	op->kind = kind;
	op->arg = arg;
	f->pending[f->n_pending++] = op;
	return op;
}

FAKE_FN void fake_op_free(struct fake_op *op)
{
	free(op->uids);
	for (size_t i = 0; i < op->nkeywords; i++)
		free(op->keywords[i]);
	free(op->keywords);
	free(op->data);
	free(op);
}

FAKE_FN void fake_op_keywords(struct fake_op *op, const char *const *keywords, size_t n)
{
	op->keywords = xcalloc(n ? n : 1, sizeof(*op->keywords));
	for (size_t i = 0; i < n; i++)
		op->keywords[i] = xstrdup(keywords[i]);
	op->nkeywords = n;
}

FAKE_FN void fake_op_uids(struct fake_op *op, const uint32_t *uids, size_t n)
{
	for (size_t i = 1; i < n; i++) {
		if (uids[i - 1] >= uids[i])
			abort(); /* the contract: ascending */
	}
	op->uids = xmalloc((n ? n : 1) * sizeof(*uids));
	memcpy(op->uids, uids, n * sizeof(*uids));
	op->n = n;
}

/* ---------------------------------------------------------------- */
/* The backend's functions                                           */

static void *fake_auth_start(void *ctx, const char *user, const char *password, const char *peer,
			     auth_login_cb cb, void *arg)
{
	struct fake *f = ctx;
	(void)peer;
	if (user[0] == '\0' || password[0] == '\0' || strlen(user) > 255)
		return NULL;
	struct fake_op *op = fake_op_new(f, FAKE_OP_AUTH, arg);
	op->auth_cb = cb;
	const char *account = NULL;
	if (strcasecmp(user, "bob") == 0 || strcasecmp(user, "bob@example.test") == 0)
		account = "bob@example.test";
	else if (strcasecmp(user, "carol") == 0)
		account = "carol@example.test";
	if (strcmp(password, "locked") == 0)
		op->auth_result = AUTH_LOCKED;
	else if (strcmp(password, "tempfail") == 0)
		op->auth_result = AUTH_TEMPFAIL;
	else if (account != NULL && strcmp(password, "secret") == 0)
		op->auth_result = AUTH_OK;
	else
		op->auth_result = AUTH_FAIL;
	snprintf(op->account, sizeof(op->account), "%s", account ? account : user);
	f->auth_started++;
	return op;
}

static void fake_auth_cancel(void *ctx, void *handle)
{
	struct fake *f = ctx;
	((struct fake_op *)handle)->cancelled = true;
	f->auth_cancelled++;
}

static struct imap_account *fake_account_open(void *ctx, const char *account, enum imap_status *status_r)
{
	struct fake *f = ctx;
	if (f->accounts_open >= f->session_limit) {
		*status_r = IMAP_LIMIT;
		return NULL;
	}
	struct fake_acct *a = xcalloc(1, sizeof(*a));
	snprintf(a->name, sizeof(a->name), "%s", account);
	f->accounts_open++;
	return (struct imap_account *)a;
}

static void fake_account_close(void *ctx, struct imap_account *acct)
{
	struct fake *f = ctx;
	f->accounts_open--;
	free(acct);
}

static int fake_name_cmp(const void *a, const void *b)
{
	return strcmp(((const struct imap_mailbox_info *)a)->name, ((const struct imap_mailbox_info *)b)->name);
}

static int fake_list(void *ctx, struct imap_account *acct, struct imap_mailbox_info **v_r, size_t *n_r)
{
	struct fake *f = ctx;
	const char *account = ((struct fake_acct *)acct)->name;
	struct imap_mailbox_info *v = xcalloc(f->n_boxes + 1, sizeof(*v));
	size_t n = 0;

	if (f->fail != IMAP_OK) {
		free(v);
		return -1;
	}
	for (size_t i = 0; i < f->n_boxes; i++) {
		struct fake_box *b = f->boxes[i];
		if (strcmp(b->account, account) != 0 || (!b->exists && !b->subscribed))
			continue;
		/* A deleted box and a new one of the same name: list it once. */
		bool dup = false;
		for (size_t k = 0; k < n; k++)
			dup |= strcmp(v[k].name, b->name) == 0;
		if (dup)
			continue;
		size_t nl = strlen(b->name);
		bool children = false;
		for (size_t k = 0; k < f->n_boxes; k++) {
			struct fake_box *c = f->boxes[k];
			children |= c->exists && strcmp(c->account, account) == 0 &&
				    strncmp(c->name, b->name, nl) == 0 && c->name[nl] == '/';
		}
		struct fake_box *live = fake_box_existing(f, account, b->name);
		struct fake_box *sub = fake_box_find(f, account, b->name);
		v[n++] = (struct imap_mailbox_info){
			.name = xstrdup(b->name),
			.special = live != NULL ? live->special : 0,
			.subscribed = sub != NULL && sub->subscribed,
			.exists = live != NULL,
			.has_children = children,
		};
	}
	qsort(v, n, sizeof(*v), fake_name_cmp);
	*v_r = v;
	*n_r = n;
	return 0;
}

static void *fake_status(void *ctx, struct imap_account *acct, const char *mailbox, imap_status_cb cb, void *arg)
{
	struct fake_op *op = fake_op_new(ctx, FAKE_OP_STATUS, arg);
	op->status_cb = cb;
	snprintf(op->account, sizeof(op->account), "%s", ((struct fake_acct *)acct)->name);
	snprintf(op->name, sizeof(op->name), "%s", mailbox);
	return op;
}

static void *fake_name_op(struct fake *f, enum fake_op_kind kind, struct imap_account *acct, const char *name,
			  const char *name2, imap_done_cb cb, void *arg)
{
	struct fake_op *op = fake_op_new(f, kind, arg);
	op->done_cb = cb;
	snprintf(op->account, sizeof(op->account), "%s", ((struct fake_acct *)acct)->name);
	snprintf(op->name, sizeof(op->name), "%s", name);
	snprintf(op->name2, sizeof(op->name2), "%s", name2 != NULL ? name2 : "");
	return op;
}

static void *fake_create(void *ctx, struct imap_account *acct, const char *mailbox, imap_done_cb cb, void *arg)
{
	return fake_name_op(ctx, FAKE_OP_CREATE, acct, mailbox, NULL, cb, arg);
}

static void *fake_delete(void *ctx, struct imap_account *acct, const char *mailbox, imap_done_cb cb, void *arg)
{
	return fake_name_op(ctx, FAKE_OP_DELETE, acct, mailbox, NULL, cb, arg);
}

static void *fake_rename(void *ctx, struct imap_account *acct, const char *from, const char *to, imap_done_cb cb,
			 void *arg)
{
	return fake_name_op(ctx, FAKE_OP_RENAME, acct, from, to, cb, arg);
}

static void *fake_subscribe(void *ctx, struct imap_account *acct, const char *mailbox, bool on, imap_done_cb cb,
			    void *arg)
{
	struct fake_op *op = fake_name_op(ctx, FAKE_OP_SUBSCRIBE, acct, mailbox, NULL, cb, arg);
	op->flag = on;
	return op;
}

static void *fake_append(void *ctx, struct imap_account *acct, const char *mailbox, const void *data, size_t len,
			 uint32_t flags, const char *const *keywords, size_t nkeywords, int64_t internal_date,
			 imap_done_cb cb, void *arg)
{
	struct fake_op *op = fake_name_op(ctx, FAKE_OP_APPEND, acct, mailbox, NULL, cb, arg);
	op->data = xmalloc(len ? len : 1);
	memcpy(op->data, data, len);
	op->len = len;
	op->flags = flags;
	op->date = internal_date;
	fake_op_keywords(op, keywords, nkeywords);
	return op;
}

static void *fake_mailbox_select(void *ctx, struct imap_account *acct, const char *mailbox, bool read_only,
				 imap_change_cb on_change, void *change_arg, imap_select_cb cb, void *arg)
{
	struct fake_op *op = fake_op_new(ctx, FAKE_OP_SELECT, arg);
	op->select_cb = cb;
	op->on_change = on_change;
	op->change_arg = change_arg;
	op->flag = read_only;
	snprintf(op->account, sizeof(op->account), "%s", ((struct fake_acct *)acct)->name);
	snprintf(op->name, sizeof(op->name), "%s", mailbox);
	return op;
}

static void fake_mailbox_close(void *ctx, struct imap_mailbox *pub)
{
	struct fake *f = ctx;
	struct fake_mb *mb = (struct fake_mb *)pub;
	for (size_t i = 0; i < f->n_mbs; i++) {
		if (f->mbs[i] == mb) {
			f->mbs[i] = f->mbs[--f->n_mbs];
			break;
		}
	}
	free(mb);
}

/* Copies of messages [first, last] as a session keeps them; \Recent for
 * those no session has seen yet, unless read-only. */
FAKE_FN void fake_msgs_copy(struct fake_box *b, bool read_only, uint32_t first, uint32_t last,
			    struct imap_msg **v_r, size_t *n_r)
{
	struct imap_msg *v = xcalloc(b->n ? b->n : 1, sizeof(*v));
	size_t n = 0;
	for (size_t i = 0; i < b->n; i++) {
		const struct fake_msg *m = &b->msgs[i];
		if (m->uid < first || m->uid > last)
			continue;
		v[n] = (struct imap_msg){ .uid = m->uid, .flags = (uint8_t)m->flags, .keywords = m->keywords };
		if (!read_only && m->uid > b->recent_upto) {
			v[n].recent = 1;
			b->recent_upto = m->uid;
		}
		n++;
	}
	*v_r = v;
	*n_r = n;
}

static int fake_mailbox_messages(void *ctx, struct imap_mailbox *pub, uint32_t first_uid, uint32_t last_uid,
				 struct imap_msg **v_r, size_t *n_r)
{
	struct fake_mb *mb = (struct fake_mb *)pub;
	(void)ctx;
	if (!mb->box->exists)
		return -1;
	fake_msgs_copy(mb->box, mb->read_only, first_uid, last_uid, v_r, n_r);
	return 0;
}

static const char *const *fake_mailbox_keywords(void *ctx, struct imap_mailbox *pub)
{
	(void)ctx;
	return (const char *const *)((struct fake_mb *)pub)->box->keywords;
}

/* Octets with every lone LF counted as CRLF: RFC822.SIZE. */
FAKE_FN uint64_t fake_crlf_size(const char *data, size_t len)
{
	uint64_t v = len;
	for (size_t i = 0; i < len; i++) {
		if (data[i] == '\n' && (i == 0 || data[i - 1] != '\r'))
			v++;
	}
	return v;
}

FAKE_FN struct fake_msg *fake_readable(struct fake_mb *mb, uint32_t uid, enum imap_status *status_r)
{
	struct fake_msg *m = fake_msg_find(mb->box, uid);
	if (m == NULL || m->gone) {
		*status_r = IMAP_GONE;
		return NULL;
	}
	return m;
}

static enum imap_status fake_message_info(void *ctx, struct imap_mailbox *pub, uint32_t uid,
					  struct imap_msg_info *info_r)
{
	enum imap_status st = IMAP_OK;
	struct fake_msg *m = fake_readable((struct fake_mb *)pub, uid, &st);
	(void)ctx;
	if (m == NULL)
		return st;
	*info_r = (struct imap_msg_info){
		.uid = m->uid, .flags = m->flags, .keywords = m->keywords,
		.size = fake_crlf_size(m->data, m->len), .internal_date = m->date,
	};
	return IMAP_OK;
}

static struct mime_tree *fake_message_tree(void *ctx, struct imap_mailbox *pub, uint32_t uid,
					   enum imap_status *status_r)
{
	struct fake_msg *m = fake_readable((struct fake_mb *)pub, uid, status_r);
	(void)ctx;
	return m != NULL ? mime_parse(m->data, m->len) : NULL;
}

static void *fake_message_open(void *ctx, struct imap_mailbox *pub, uint32_t uid, enum imap_status *status_r)
{
	struct fake *f = ctx;
	struct fake_msg *m = fake_readable((struct fake_mb *)pub, uid, status_r);
	if (m == NULL)
		return NULL;
	/* A copy: the message may be expunged while the reader is open. */
	struct fake_reader *r = xcalloc(1, sizeof(*r));
	r->f = f;
	r->data = xmalloc(m->len ? m->len : 1);
	memcpy(r->data, m->data, m->len);
	r->len = m->len;
	f->readers_open++;
	return r;
}

static ssize_t fake_message_pread(void *reader, void *buf, size_t len, uint64_t offset)
{
	struct fake_reader *r = reader;
	if (offset >= r->len)
		return 0;
	size_t n = r->len - (size_t)offset < len ? r->len - (size_t)offset : len;
	memcpy(buf, r->data + offset, n);
	return (ssize_t)n;
}

static void fake_message_close(void *reader)
{
	struct fake_reader *r = reader;
	r->f->readers_open--;
	free(r->data);
	free(r);
}

static void *fake_flags(void *ctx, struct imap_mailbox *pub, const uint32_t *uids, size_t n, enum imap_flags_mode mode,
			uint32_t flags, const char *const *keywords, size_t nkeywords, imap_done_cb cb, void *arg)
{
	struct fake_op *op = fake_op_new(ctx, FAKE_OP_FLAGS, arg);
	op->done_cb = cb;
	op->box = ((struct fake_mb *)pub)->box;
	fake_op_uids(op, uids, n);
	op->mode = mode;
	op->flags = flags;
	fake_op_keywords(op, keywords, nkeywords);
	return op;
}

static void *fake_copy(void *ctx, struct imap_mailbox *pub, const uint32_t *uids, size_t n, const char *target,
		       bool move, imap_done_cb cb, void *arg)
{
	struct fake_op *op = fake_op_new(ctx, FAKE_OP_COPY, arg);
	op->done_cb = cb;
	op->box = ((struct fake_mb *)pub)->box;
	fake_op_uids(op, uids, n);
	snprintf(op->name, sizeof(op->name), "%s", target);
	op->flag = move;
	return op;
}

static void *fake_expunge(void *ctx, struct imap_mailbox *pub, const uint32_t *uids, size_t n, imap_done_cb cb,
			  void *arg)
{
	struct fake_op *op = fake_op_new(ctx, FAKE_OP_EXPUNGE, arg);
	op->done_cb = cb;
	op->box = ((struct fake_mb *)pub)->box;
	fake_op_uids(op, uids, n);
	return op;
}

static void fake_cancel(void *ctx, void *handle)
{
	struct fake *f = ctx;
	((struct fake_op *)handle)->cancelled = true;
	f->cancels++;
}

/* ---------------------------------------------------------------- */
/* Running queued work                                               */

FAKE_FN bool fake_name_ok(const char *name)
{
	size_t len = strlen(name);
	return len > 0 && name[0] != '/' && name[len - 1] != '/' && strstr(name, "//") == NULL;
}

/* The changes: each returns the status for the callback. */

FAKE_FN enum imap_status fake_do_create(struct fake *f, struct fake_op *op)
{
	if (strcasecmp(op->name, "INBOX") == 0 || fake_box_existing(f, op->account, op->name) != NULL)
		return IMAP_ALREADYEXISTS;
	if (!fake_name_ok(op->name))
		return IMAP_CANNOT;
	struct fake_box *sub = fake_box_find(f, op->account, op->name);
	struct fake_box *b = fake_box_add(f, op->account, op->name, 0);
	if (sub != NULL) {
		/* The subscription moves over to the new box. */
		b->subscribed = sub->subscribed;
		sub->subscribed = false;
	}
	return IMAP_OK;
}

FAKE_FN enum imap_status fake_do_delete(struct fake *f, struct fake_op *op)
{
	if (strcmp(op->name, "INBOX") == 0)
		return IMAP_CANNOT;
	struct fake_box *b = fake_box_existing(f, op->account, op->name);
	if (b == NULL)
		return IMAP_NONEXISTENT;
	b->exists = false;
	fake_box_clear(b);
	fake_notify(f, b, IMAP_CHANGE_GONE, 0, 0);
	return IMAP_OK;
}

FAKE_FN enum imap_status fake_do_rename(struct fake *f, struct fake_op *op)
{
	struct fake_box *from = fake_box_existing(f, op->account, op->name);
	if (from == NULL)
		return IMAP_NONEXISTENT;
	if (strcasecmp(op->name2, "INBOX") == 0 || fake_box_existing(f, op->account, op->name2) != NULL)
		return IMAP_ALREADYEXISTS;
	if (!fake_name_ok(op->name2))
		return IMAP_CANNOT;
	if (strcmp(op->name, "INBOX") == 0) {
		/* RFC 3501 6.3.5: renaming INBOX moves its messages and
		 * leaves it empty. */
		struct fake_box *to = fake_box_add(f, op->account, op->name2, 0);
		while (from->n > 0) {
			struct fake_msg *m = &from->msgs[0];
			fake_box_append(f, to, m->data, m->len, m->flags, 0, m->date);
			fake_box_remove(f, from, m->uid);
		}
		return IMAP_OK;
	}
	/* The box and its children get new names; sessions that had one
	 * selected lose it. */
	size_t nl = strlen(op->name);
	for (size_t i = 0; i < f->n_boxes; i++) {
		struct fake_box *b = f->boxes[i];
		if (!b->exists || strcmp(b->account, op->account) != 0 || strncmp(b->name, op->name, nl) != 0 ||
		    (b->name[nl] != '\0' && b->name[nl] != '/'))
			continue;
		char renamed[FAKE_NAME_MAX];
		snprintf(renamed, sizeof(renamed), "%s%s", op->name2, b->name + nl);
		struct fake_box *nb = fake_box_add(f, op->account, renamed, b->special);
		nb->msgs = b->msgs;
		nb->n = b->n;
		nb->cap = b->cap;
		nb->uidnext = b->uidnext;
		memcpy(nb->keywords, b->keywords, sizeof(nb->keywords));
		memset(b->keywords, 0, sizeof(b->keywords));
		b->msgs = NULL;
		b->n = b->cap = 0;
		b->exists = false;
		fake_notify(f, b, IMAP_CHANGE_GONE, 0, 0);
	}
	return IMAP_OK;
}

FAKE_FN enum imap_status fake_do_subscribe(struct fake *f, struct fake_op *op)
{
	struct fake_box *b = fake_box_find(f, op->account, op->name);
	if (b == NULL) {
		if (!op->flag)
			return IMAP_OK;
		/* RFC 3501 6.3.6: a name may be subscribed without a box. */
		b = fake_box_add(f, op->account, op->name, 0);
		b->exists = false;
	}
	b->subscribed = op->flag;
	return IMAP_OK;
}

FAKE_FN enum imap_status fake_do_append(struct fake *f, struct fake_op *op, uint32_t *uid_r, uint32_t *uidvalidity_r)
{
	struct fake_box *b = fake_box_existing(f, op->account, op->name);
	if (b == NULL)
		return IMAP_NONEXISTENT;
	uint32_t keywords = 0;
	for (size_t i = 0; i < op->nkeywords; i++) {
		int bit = fake_keyword_bit(b, op->keywords[i], true);
		if (bit >= 0)
			keywords |= 1u << bit;
	}
	*uid_r = fake_box_append(f, b, op->data, op->len, op->flags, keywords, op->date);
	*uidvalidity_r = b->uidvalidity;
	fake_notify(f, b, IMAP_CHANGE_NEW, *uid_r, *uid_r);
	return IMAP_OK;
}

FAKE_FN enum imap_status fake_do_flags(struct fake *f, struct fake_op *op)
{
	struct fake_box *b = op->box;
	uint32_t keywords = 0;
	if (!b->exists)
		return IMAP_NONEXISTENT;
	for (size_t i = 0; i < op->nkeywords; i++) {
		int bit = fake_keyword_bit(b, op->keywords[i], op->mode != IMAP_FLAGS_REMOVE);
		if (bit >= 0)
			keywords |= 1u << bit;
	}
	for (size_t i = 0; i < op->n; i++) {
		struct fake_msg *m = fake_msg_find(b, op->uids[i]);
		if (m == NULL)
			continue;
		uint32_t fl = m->flags, kw = m->keywords;
		switch (op->mode) {
		case IMAP_FLAGS_SET:
			fl = op->flags;
			kw = keywords;
			break;
		case IMAP_FLAGS_ADD:
			fl |= op->flags;
			kw |= keywords;
			break;
		case IMAP_FLAGS_REMOVE:
			fl &= ~op->flags;
			kw &= ~keywords;
			break;
		}
		if (fl != m->flags || kw != m->keywords) {
			m->flags = fl;
			m->keywords = kw;
			fake_notify(f, b, IMAP_CHANGE_FLAGS, m->uid, m->uid);
		}
	}
	return IMAP_OK;
}

/* COPY or MOVE: out[i] the target uid of uids[i], 0 when it was gone. */
FAKE_FN enum imap_status fake_do_copy(struct fake *f, struct fake_op *op, uint32_t *out, uint32_t *uidvalidity_r)
{
	struct fake_box *src = op->box;
	struct fake_box *dst = fake_box_existing(f, src->account, op->name);
	if (!src->exists)
		return IMAP_NONEXISTENT;
	if (dst == NULL)
		return IMAP_NONEXISTENT;
	uint32_t first = 0, last = 0;
	for (size_t i = 0; i < op->n; i++) {
		struct fake_msg *m = fake_msg_find(src, op->uids[i]);
		out[i] = 0;
		if (m == NULL)
			continue;
		uint32_t keywords = 0;
		for (int k = 0; k < IMAP_KEYWORDS_MAX; k++) {
			if ((m->keywords & (1u << k)) && src->keywords[k] != NULL) {
				int bit = fake_keyword_bit(dst, src->keywords[k], true);
				if (bit >= 0)
					keywords |= 1u << bit;
			}
		}
		/* Appending may move src's array when src is dst: copy the
		 * fields first. */
		struct fake_msg copy = *m;
		out[i] = fake_box_append(f, dst, copy.data, copy.len, copy.flags, keywords, copy.date);
		if (first == 0)
			first = out[i];
		last = out[i];
	}
	*uidvalidity_r = dst->uidvalidity;
	if (first != 0)
		fake_notify(f, dst, IMAP_CHANGE_NEW, first, last);
	if (op->flag && src != dst) {
		for (size_t i = 0; i < op->n; i++) {
			if (out[i] != 0)
				fake_box_remove(f, src, op->uids[i]);
		}
	}
	return IMAP_OK;
}

FAKE_FN enum imap_status fake_do_expunge(struct fake *f, struct fake_op *op)
{
	if (!op->box->exists)
		return IMAP_NONEXISTENT;
	for (size_t i = 0; i < op->n; i++)
		fake_box_remove(f, op->box, op->uids[i]);
	return IMAP_OK;
}

FAKE_FN void fake_run_select(struct fake *f, struct fake_op *op)
{
	struct fake_box *b = fake_box_existing(f, op->account, op->name);
	enum imap_status st = f->fail != IMAP_OK ? f->fail : b == NULL ? IMAP_NONEXISTENT : IMAP_OK;
	if (st != IMAP_OK) {
		op->select_cb(op->arg, st, NULL, NULL);
		return;
	}
	if (f->n_mbs == FAKE_MBS_MAX)
		abort();
	struct fake_mb *mb = xcalloc(1, sizeof(*mb));
	mb->f = f;
	mb->box = b;
	mb->read_only = op->flag;
	mb->on_change = op->on_change;
	mb->change_arg = op->change_arg;
	struct imap_select_info info = { .uidvalidity = b->uidvalidity, .uidnext = b->uidnext, .special = b->special };
	fake_msgs_copy(b, op->flag, 1, UINT32_MAX, &info.msgs, &info.n);
	for (size_t i = 0; i < info.n; i++)
		info.recent += info.msgs[i].recent;
	op->select_cb(op->arg, IMAP_OK, (struct imap_mailbox *)mb, &info);
	/* Watched from now on (imap_backend.h). The session took msgs. */
	f->mbs[f->n_mbs++] = mb;
	free(info.msgs);
}

FAKE_FN void fake_run_status(struct fake *f, struct fake_op *op)
{
	struct fake_box *b = fake_box_existing(f, op->account, op->name);
	enum imap_status st = f->fail != IMAP_OK ? f->fail : b == NULL ? IMAP_NONEXISTENT : IMAP_OK;
	struct imap_status_info info = { 0 };
	if (st == IMAP_OK) {
		info.messages = (uint32_t)b->n;
		info.uidnext = b->uidnext;
		info.uidvalidity = b->uidvalidity;
		for (size_t i = 0; i < b->n; i++) {
			info.recent += b->msgs[i].uid > b->recent_upto;
			info.unseen += !(b->msgs[i].flags & IMAP_SEEN);
		}
	}
	op->status_cb(op->arg, st, st == IMAP_OK ? &info : NULL);
}

/* Run the oldest queued work and its callback (a cancelled one is still
 * carried out, but without its callback). Returns 1 when a callback ran,
 * 0 when the queue is empty. */
FAKE_FN int fake_run(struct fake *f)
{
	while (f->n_pending > 0) {
		struct fake_op *op = f->pending[0];
		memmove(f->pending, f->pending + 1, (f->n_pending - 1) * sizeof(*f->pending));
		f->n_pending--;

		enum imap_status st = f->fail;
		uint32_t uidvalidity = 0, one = 0;
		uint32_t *uids = NULL;
		size_t n = 0;
		bool ran = !op->cancelled;

		switch (op->kind) {
		case FAKE_OP_AUTH:
			if (ran)
				op->auth_cb(op->arg, op->auth_result, op->auth_result == AUTH_OK ? op->account : NULL);
			fake_op_free(op);
			if (ran)
				return 1;
			continue;
		case FAKE_OP_SELECT:
			if (ran)
				fake_run_select(f, op);
			fake_op_free(op);
			if (ran)
				return 1;
			continue;
		case FAKE_OP_STATUS:
			if (ran)
				fake_run_status(f, op);
			fake_op_free(op);
			if (ran)
				return 1;
			continue;
		case FAKE_OP_CREATE:
			st = st != IMAP_OK ? st : fake_do_create(f, op);
			break;
		case FAKE_OP_DELETE:
			st = st != IMAP_OK ? st : fake_do_delete(f, op);
			break;
		case FAKE_OP_RENAME:
			st = st != IMAP_OK ? st : fake_do_rename(f, op);
			break;
		case FAKE_OP_SUBSCRIBE:
			st = st != IMAP_OK ? st : fake_do_subscribe(f, op);
			break;
		case FAKE_OP_APPEND:
			st = st != IMAP_OK ? st : fake_do_append(f, op, &one, &uidvalidity);
			if (st == IMAP_OK) {
				uids = &one;
				n = 1;
			}
			break;
		case FAKE_OP_FLAGS:
			st = st != IMAP_OK ? st : fake_do_flags(f, op);
			break;
		case FAKE_OP_COPY:
			uids = xcalloc(op->n ? op->n : 1, sizeof(*uids));
			st = st != IMAP_OK ? st : fake_do_copy(f, op, uids, &uidvalidity);
			n = st == IMAP_OK ? op->n : 0;
			break;
		case FAKE_OP_EXPUNGE:
			st = st != IMAP_OK ? st : fake_do_expunge(f, op);
			break;
		}
		if (ran)
			op->done_cb(op->arg, st, uidvalidity, n > 0 ? uids : NULL, n);
		if (uids != &one)
			free(uids);
		fake_op_free(op);
		if (ran)
			return 1;
	}
	return 0;
}

/* Run until nothing is queued. */
FAKE_FN void fake_run_all(struct fake *f)
{
	while (fake_run(f))
		;
}

FAKE_FN void fake_init(struct fake *f)
{
	static const struct {
		const char *name;
		uint32_t special;
		bool subscribed;
	} boxes[] = {
		{ "INBOX", 0, true },
		{ "Sent", IMAP_USE_SENT, true },
		{ "Drafts", IMAP_USE_DRAFTS, false },
		{ "Trash", IMAP_USE_TRASH, false },
		{ "Junk", IMAP_USE_JUNK, false },
		{ "Archive", IMAP_USE_ARCHIVE, false },
	};
	static const char *const accounts[] = { "bob@example.test", "carol@example.test" };

	memset(f, 0, sizeof(*f));
	f->session_limit = 10;
	f->next_uidvalidity = 1000;
	f->now = 1700000000;
	for (size_t a = 0; a < 2; a++) {
		for (size_t i = 0; i < sizeof(boxes) / sizeof(boxes[0]); i++)
			fake_box_add(f, accounts[a], boxes[i].name, boxes[i].special)->subscribed = boxes[i].subscribed;
	}
	f->b = (struct imap_backend){
		.ctx = f,
		.auth_start = fake_auth_start,
		.auth_cancel = fake_auth_cancel,
		.account_open = fake_account_open,
		.account_close = fake_account_close,
		.list = fake_list,
		.status = fake_status,
		.create = fake_create,
		.delete_ = fake_delete,
		.rename = fake_rename,
		.subscribe = fake_subscribe,
		.append = fake_append,
		.mailbox_select = fake_mailbox_select,
		.mailbox_close = fake_mailbox_close,
		.mailbox_messages = fake_mailbox_messages,
		.mailbox_keywords = fake_mailbox_keywords,
		.message_info = fake_message_info,
		.message_tree = fake_message_tree,
		.message_open = fake_message_open,
		.message_pread = fake_message_pread,
		.message_close = fake_message_close,
		.flags = fake_flags,
		.copy = fake_copy,
		.expunge = fake_expunge,
		.cancel = fake_cancel,
	};
}

/* Run what is queued (sessions are gone: only frees), then free it all. */
FAKE_FN void fake_free(struct fake *f)
{
	fake_run_all(f);
	while (f->n_mbs > 0)
		fake_mailbox_close(f, (struct imap_mailbox *)f->mbs[0]);
	for (size_t i = 0; i < f->n_boxes; i++) {
		fake_box_clear(f->boxes[i]);
		free(f->boxes[i]);
	}
	memset(f, 0, sizeof(*f));
}

#endif
