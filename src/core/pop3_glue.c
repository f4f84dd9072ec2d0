/*
 * The server's POP3 backend: passwords through the shared verifier, the
 * maildrop lock in memory, the snapshot from the store's index, message
 * bytes straight from the Maildir files, deletions through the store.
 *
 * Why the lock lives here and not in the store: it only has to keep two
 * POP3 sessions of one account apart (RFC 1939 section 8), and every
 * session lives in this process (contract 6). IMAP ignores it, as IMAP
 * clients expect; what IMAP expunges meanwhile a POP3 session finds gone
 * (POP3_GONE) when it asks for the file.
 *
 * Message files are read on the loop with read(2), one bounded chunk per
 * call: a file that was just delivered or read is in the page cache, and
 * the session never asks for more than it can send soon. Everything that
 * writes (the snapshot's reconciliation, the expunge) goes through the
 * store's writer thread; only LMDB read transactions run here.
 */
#include "core/pop3_glue.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/userdb.h"
#include "core/log.h"
#include "core/services.h"
#include "core/xalloc.h"
#include "maildir/index.h"
#include "maildir/layout.h"
#include "maildir/store.h"

struct pop3_backend_real {
	struct pop3_backend b;      /* first: the table handed to sessions */
	struct services svc;
	struct maildrop *locked;    /* every maildrop not yet freed holds its lock */
};

struct maildrop {
	struct pop3_maildrop pub;   /* first: what the session sees */
	struct pop3_backend_real *be;
	struct maildrop *prev, *next;
	char *account;
	char *maildir;              /* the account's Maildir++ root */
	char *dir;                  /* its INBOX directory */
	uint64_t mailbox_id;

	bool opening;               /* store_mailbox_open in flight */
	bool committing;            /* the expunge in flight */
	bool closed;                /* the session let go: free when idle */
	pop3_open_cb open_cb;
	pop3_commit_cb commit_cb;
	void *arg;

	struct store_open_req open_req;
	struct store_op op;
	uint32_t *uids;
};

struct reader {
	int fd;
};

static void *be_auth_start(void *ctx, const char *user, const char *password, const char *peer,
			   auth_login_cb cb, void *arg)
{
	struct pop3_backend_real *be = ctx;
	return auth_login_start(be->svc.auth, user, password, peer, cb, arg);
}

static void be_auth_cancel(void *ctx, void *handle)
{
	(void)ctx;
	auth_login_cancel(handle);
}

/* ---- The lock and the maildrop's life ---- */

static bool maildrop_locked(const struct pop3_backend_real *be, const char *account)
{
	for (const struct maildrop *md = be->locked; md != NULL; md = md->next) {
		if (strcmp(md->account, account) == 0)
			return true;
	}
	return false;
}

static void maildrop_free(struct maildrop *md)
{
	struct pop3_backend_real *be = md->be;

	if (md->prev != NULL)
		md->prev->next = md->next;
	else
		be->locked = md->next;
	if (md->next != NULL)
		md->next->prev = md->prev;
	free(md->account);
	free(md->maildir);
	free(md->dir);
	free(md->pub.msgs);
	free(md->uids);
	free(md);
}

struct snapshot {
	struct pop3_maildrop *pub;
	uint32_t uidnext;
	size_t cap;
};

static int snapshot_add(const struct idx_message *m, void *ctx)
{
	struct snapshot *sn = ctx;

	/* What arrived after the store reported the mailbox waits for the
	 * next login. */
	if (m->uid >= sn->uidnext)
		return 1;
	if (sn->pub->n == sn->cap) {
		sn->cap = sn->cap ? sn->cap * 2 : 256;
		sn->pub->msgs = xrealloc(sn->pub->msgs, sn->cap * sizeof(*sn->pub->msgs));
	}
	sn->pub->msgs[sn->pub->n++] = (struct pop3_message){ .uid = m->uid, .vsize = m->vsize };
	return 0;
}

/* Read the INBOX's messages from the index in one read transaction. */
static enum pop3_status maildrop_snapshot(struct maildrop *md, const struct store_open_req *r)
{
	struct db *db = md->be->svc.db;
	struct snapshot sn = { .pub = &md->pub, .uidnext = r->uidnext };
	char *error = NULL;
	MDB_txn *txn;
	int rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn);

	if (rc != 0) {
		log_error("pop3: %s: reading the index: %s", md->account, db_strerror(rc));
		return POP3_TEMPFAIL;
	}
	rc = idx_message_each(txn, db, r->mailbox_id, 1, snapshot_add, &sn, &error);
	mdb_txn_abort(txn);
	if (rc < 0) {
		log_error("pop3: %s: reading the index: %s", md->account, error);
		free(error);
		free(md->pub.msgs);
		md->pub.msgs = NULL;
		md->pub.n = 0;
		return POP3_TEMPFAIL;
	}
	md->pub.uidvalidity = r->uidvalidity;
	md->mailbox_id = r->mailbox_id;
	return POP3_OK;
}

static void maildrop_opened(struct store_open_req *r)
{
	struct maildrop *md = r->ctx;
	enum pop3_status st;

	md->opening = false;
	if (md->closed) {
		maildrop_free(md);
		return;
	}
	switch (r->result) {
	case STORE_OK:
		st = maildrop_snapshot(md, r);
		break;
	case STORE_NO_MAILBOX:
	case STORE_NOT_ALLOWED:
		log_error("pop3: %s: INBOX cannot be opened: %s", md->account, store_result_name(r->result));
		st = POP3_PERMFAIL;
		break;
	default:
		st = POP3_TEMPFAIL;
		break;
	}
	md->open_cb(md->arg, st, &md->pub);
}

static struct pop3_maildrop *be_maildrop_open(void *ctx, const char *account, pop3_open_cb cb, void *arg,
					      enum pop3_status *status_r)
{
	struct pop3_backend_real *be = ctx;
	struct user u;
	char *error = NULL;

	if (maildrop_locked(be, account)) {
		*status_r = POP3_IN_USE;
		return NULL;
	}
	int rc = userdb_get(be->svc.db, account, &u, &error);
	if (rc != 0) {
		/* The account went away between the password check and
		 * now, or the database failed. */
		if (rc < 0)
			log_error("pop3: looking up <%s>: %s", account, error);
		free(error);
		*status_r = rc < 0 ? POP3_TEMPFAIL : POP3_PERMFAIL;
		return NULL;
	}
	struct maildrop *md = xcalloc(1, sizeof(*md));
	md->be = be;
	md->account = xstrdup(account);
	md->maildir = userdb_maildir_path(be->svc.cfg, &u);
	user_free(&u);
	md->dir = layout_mailbox_dir(md->maildir, "INBOX");
	md->open_cb = cb;
	md->arg = arg;
	md->next = be->locked;
	if (be->locked != NULL)
		be->locked->prev = md;
	be->locked = md;

	md->opening = true;
	md->open_req = (struct store_open_req){
		.account = md->account, .maildir = md->maildir, .mailbox = "INBOX",
		.cb = maildrop_opened, .ctx = md,
	};
	store_mailbox_open(be->svc.store, &md->open_req);
	return &md->pub;
}

static void maildrop_committed(struct store_op *op)
{
	struct maildrop *md = op->ctx;
	enum pop3_status st = op->result == STORE_OK ? POP3_OK : POP3_TEMPFAIL;
	size_t removed = op->done;

	if (st != POP3_OK)
		log_error("pop3: %s: removing %zu message(s): %s", md->account, op->n_uids,
			  store_result_name(op->result));
	store_op_clear(op);
	md->committing = false;
	if (md->closed) {
		maildrop_free(md);
		return;
	}
	md->commit_cb(md->arg, st, removed);
}

static int be_maildrop_commit(void *ctx, struct pop3_maildrop *pub, const uint32_t *uids, size_t n,
			      pop3_commit_cb cb, void *arg)
{
	struct maildrop *md = (struct maildrop *)pub;
	(void)ctx;

	if (n == 0 || md->committing || md->opening || md->closed)
		return -1;
	md->uids = xmalloc(n * sizeof(*md->uids));
	memcpy(md->uids, uids, n * sizeof(*uids));
	md->commit_cb = cb;
	md->arg = arg;
	md->committing = true;
	md->op = (struct store_op){
		.kind = STORE_OP_EXPUNGE, .account = md->account, .maildir = md->maildir,
		.mailbox = "INBOX", .uids = md->uids, .n_uids = n, .cb = maildrop_committed, .ctx = md,
	};
	store_op(md->be->svc.store, &md->op);
	return 0;
}

static void be_maildrop_close(void *ctx, struct pop3_maildrop *pub)
{
	struct maildrop *md = (struct maildrop *)pub;
	(void)ctx;

	if (md == NULL)
		return;
	md->closed = true;
	md->open_cb = NULL;
	md->commit_cb = NULL;
	/* The store cannot be stopped mid-request; its callback frees. */
	if (!md->opening && !md->committing)
		maildrop_free(md);
}

/* ---- Messages ---- */

static void *be_message_open(void *ctx, struct pop3_maildrop *pub, uint32_t uid, enum pop3_status *status_r)
{
	struct maildrop *md = (struct maildrop *)pub;
	char *error = NULL;
	int fd = -1;
	(void)ctx;

	int rc = idx_message_open_file(md->be->svc.db, md->mailbox_id, md->dir, uid, &fd, &error);
	if (rc != 0) {
		if (rc < 0) {
			log_error("pop3: %s: message %u: %s", md->account, uid, error);
			free(error);
		}
		*status_r = rc > 0 ? POP3_GONE : POP3_TEMPFAIL;
		return NULL;
	}
	struct reader *r = xmalloc(sizeof(*r));
	r->fd = fd;
	return r;
}

static ssize_t be_message_read(void *reader, void *buf, size_t len)
{
	struct reader *r = reader;
	ssize_t n;

	do
		n = read(r->fd, buf, len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		log_error("pop3: reading a message: %s", strerror(errno));
	return n;
}

static void be_message_close(void *reader)
{
	struct reader *r = reader;

	if (r == NULL)
		return;
	close(r->fd);
	free(r);
}

struct pop3_backend *pop3_backend_new(const struct services *svc)
{
	struct pop3_backend_real *be = xcalloc(1, sizeof(*be));

	be->svc = *svc;
	be->b = (struct pop3_backend){
		.ctx = be,
		.auth_start = be_auth_start,
		.auth_cancel = be_auth_cancel,
		.maildrop_open = be_maildrop_open,
		.maildrop_commit = be_maildrop_commit,
		.maildrop_close = be_maildrop_close,
		.message_open = be_message_open,
		.message_read = be_message_read,
		.message_close = be_message_close,
	};
	return &be->b;
}

void pop3_backend_free(struct pop3_backend **bp)
{
	struct pop3_backend_real *be = (struct pop3_backend_real *)*bp;

	if (be == NULL)
		return;
	*bp = NULL;
	/* Sessions are gone and the store ran every callback, so nothing is
	 * left; a leftover would be a bug, but free it all the same. */
	while (be->locked != NULL)
		maildrop_free(be->locked);
	free(be);
}
