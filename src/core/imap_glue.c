/*
 * The server's IMAP backend: the table, logging in, the accounts' session
 * counts, LIST, and the requests that go through the store for mailboxes
 * that are not selected (STATUS, CREATE, DELETE, RENAME, SUBSCRIBE,
 * APPEND). The selected mailbox is in imap_glue_mailbox.c, the MIME
 * structure cache in imap_mimecache.c.
 *
 * Why the counts live here: every session of an account lives in this
 * process (contract 6), so a list in memory is the whole truth, and it
 * goes away with the sessions.
 *
 * LIST reads the index and, on the loop, the Maildir root's directory and
 * its "subscriptions" file: both are small and were read recently by the
 * store, so they come from the page cache like a message file does.
 */
#include "core/imap_glue.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/userdb.h"
#include "core/fileio.h"
#include "core/imap_glue_private.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "maildir/index.h"
#include "maildir/layout.h"

enum imap_status imap_glue__status(enum store_result r)
{
	switch (r) {
	case STORE_OK: return IMAP_OK;
	case STORE_NO_MAILBOX: return IMAP_NONEXISTENT;
	case STORE_EXISTS: return IMAP_ALREADYEXISTS;
	case STORE_NOT_ALLOWED: return IMAP_CANNOT;
	case STORE_OVER_QUOTA:
	case STORE_TOO_BIG_FOR_QUOTA: return IMAP_OVERQUOTA;
	case STORE_TEMPFAIL:
	default: return IMAP_TEMPFAIL;
	}
}

const char *imap_glue__mailbox_key(const char *name)
{
	return strcasecmp(name, "INBOX") == 0 ? "INBOX" : name;
}

struct imap_glue_recent *imap_glue__recent_find(struct imap_glue *be, const char *account, uint64_t mailbox_id)
{
	for (struct imap_glue_recent *r = be->recent; r != NULL; r = r->next)
		if (r->mailbox_id == mailbox_id && strcasecmp(r->account, account) == 0)
			return r;
	return NULL;
}

struct imap_glue_recent *imap_glue__recent_get(struct imap_glue *be, const char *account, uint64_t mailbox_id)
{
	struct imap_glue_recent *r = imap_glue__recent_find(be, account, mailbox_id);
	if (r == NULL) {
		r = xcalloc(1, sizeof(*r));
		r->account = xstrdup(account);
		r->mailbox_id = mailbox_id;
		r->next = be->recent;
		be->recent = r;
	}
	return r;
}

/* ---- requests ---- */

struct imap_glue_req *imap_glue__req_new(struct imap_glue *be, const char *account, const char *maildir,
					 const char *mailbox)
{
	struct imap_glue_req *r = xcalloc(1, sizeof(*r));
	r->be = be;
	r->account = xstrdup(account);
	r->maildir = xstrdup(maildir);
	r->mailbox = mailbox ? xstrdup(imap_glue__mailbox_key(mailbox)) : NULL;
	return r;
}

void imap_glue__req_names(struct imap_glue_req *r, const char *const *names, size_t n)
{
	if (n == 0)
		return;
	r->names = xcalloc(n, sizeof(*r->names));
	for (size_t i = 0; i < n; i++)
		r->names[i] = xstrdup(names[i]);
	r->n_names = n;
}

void imap_glue__req_free(struct imap_glue_req *r)
{
	if (r == NULL)
		return;
	if (r->spool != NULL) {
		unlink(r->spool);
		free(r->spool);
	}
	for (size_t i = 0; i < r->n_names; i++)
		free(r->names[i]);
	free(r->names);
	free(r->uids);
	free(r->account);
	free(r->maildir);
	free(r->mailbox);
	free(r->target);
	free(r);
}

static void glue_op_done(struct store_op *op)
{
	struct imap_glue_req *r = op->ctx;

	/* The answers a client caused are its business; the rest is ours. */
	if (op->result == STORE_TEMPFAIL)
		log_warn("imap: %s: %s: %s", r->account, r->mailbox, store_result_name(op->result));
	if (!r->cancelled) {
		bool xfer = op->kind == STORE_OP_COPY || op->kind == STORE_OP_MOVE;
		if (xfer && op->result == STORE_OK)
			r->done_cb(r->arg, IMAP_OK, op->target_uidvalidity, op->new_uids, op->n_uids);
		else
			r->done_cb(r->arg, imap_glue__status(op->result), 0, NULL, 0);
	}
	store_op_clear(op);
	imap_glue__req_free(r);
}

void imap_glue__req_op(struct imap_glue_req *r, void (*cb)(struct store_op *op))
{
	r->op.account = r->account;
	r->op.maildir = r->maildir;
	r->op.mailbox = r->mailbox;
	r->op.target = r->target;
	r->op.uids = r->uids;
	r->op.n_uids = r->n_uids;
	r->op.keyword_names = (const char *const *)r->names;
	r->op.n_keyword_names = r->n_names;
	r->op.cb = cb != NULL ? cb : glue_op_done;
	r->op.ctx = r;
	store_op(r->be->svc.store, &r->op);
}

static void be_cancel(void *ctx, void *handle)
{
	(void)ctx;
	if (handle != NULL)
		((struct imap_glue_req *)handle)->cancelled = true;
}

/* ---- logging in ---- */

static void *be_auth_start(void *ctx, const char *user, const char *password, const char *peer,
			   auth_login_cb cb, void *arg)
{
	struct imap_glue *be = ctx;
	return auth_login_start(be->svc.auth, user, password, peer, cb, arg);
}

static void be_auth_cancel(void *ctx, void *handle)
{
	(void)ctx;
	auth_login_cancel(handle);
}

/* Whether the index has the account's INBOX: 0 yes, 1 no, -1 error. */
static int inbox_known(struct imap_glue *be, const char *account)
{
	struct idx_mailbox mb;
	char *error = NULL;
	MDB_txn *txn;
	int rc = mdb_txn_begin(be->svc.db->env, NULL, MDB_RDONLY, &txn);

	if (rc != 0)
		return -1;
	rc = idx_mailbox_get(txn, be->svc.db, account, "INBOX", &mb, &error);
	mdb_txn_abort(txn);
	free(error);
	return rc;
}

static void inbox_made(struct store_open_req *o)
{
	struct imap_glue_req *r = o->ctx;
	if (o->result != STORE_OK)
		log_warn("imap: %s: creating INBOX: %s", r->account, store_result_name(o->result));
	imap_glue__req_free(r);
}

/* A new account's first login: have the store create INBOX and the
 * default folders. The writer takes requests in order, so whatever the
 * session asks next finds them; LIST, which answers at once, shows them
 * meanwhile (list_defaults). */
static void inbox_make(struct imap_glue *be, struct imap_account *a)
{
	struct imap_glue_req *r = imap_glue__req_new(be, a->name, a->maildir, "INBOX");
	r->open = (struct store_open_req){
		.account = r->account, .maildir = r->maildir, .mailbox = r->mailbox, .cb = inbox_made, .ctx = r,
	};
	store_mailbox_open(be->svc.store, &r->open);
}

static struct imap_account *be_account_open(void *ctx, const char *account, enum imap_status *status_r)
{
	struct imap_glue *be = ctx;
	unsigned max = be->svc.cfg->imap_max_sessions_per_account, n = 0;

	for (struct imap_account *a = be->accounts; a != NULL; a = a->next)
		if (strcasecmp(a->name, account) == 0)
			n++;
	if (max > 0 && n >= max) {
		*status_r = IMAP_LIMIT;
		return NULL;
	}
	struct user u;
	char *error = NULL;
	int rc = userdb_get(be->svc.db, account, &u, &error);
	if (rc != 0) {
		/* Gone since the password check, or the database failed. */
		if (rc < 0)
			log_error("imap: looking up <%s>: %s", account, error);
		free(error);
		*status_r = IMAP_TEMPFAIL;
		return NULL;
	}
	struct imap_account *a = xcalloc(1, sizeof(*a));
	a->be = be;
	a->name = xstrdup(account);
	a->maildir = userdb_maildir_path(be->svc.cfg, &u);
	a->quota_bytes = userdb_quota_bytes(be->svc.cfg, &u);
	a->quota_messages = userdb_quota_messages(be->svc.cfg, &u);
	user_free(&u);
	a->next = be->accounts;
	if (be->accounts != NULL)
		be->accounts->prev = a;
	be->accounts = a;
	if (inbox_known(be, a->name) == 1)
		inbox_make(be, a);
	*status_r = IMAP_OK;
	return a;
}

static void account_free(struct imap_account *a)
{
	struct imap_glue *be = a->be;

	if (a->prev != NULL)
		a->prev->next = a->next;
	else
		be->accounts = a->next;
	if (a->next != NULL)
		a->next->prev = a->prev;
	free(a->name);
	free(a->maildir);
	free(a);
}

static void be_account_close(void *ctx, struct imap_account *a)
{
	(void)ctx;
	if (a != NULL)
		account_free(a);
}

/* ---- LIST ---- */

struct list_acc {
	struct imap_mailbox_info *v;
	size_t n, cap;
};

static void list_add(struct list_acc *l, const char *name, uint32_t special, bool exists, bool subscribed)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 32;
		l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
	}
	l->v[l->n++] = (struct imap_mailbox_info){
		.name = xstrdup(imap_glue__mailbox_key(name)), .special = special, .exists = exists,
		.subscribed = subscribed,
	};
}

static uint32_t special_of(uint32_t attrs)
{
	uint32_t s = 0;
	if (attrs & IDX_MBOX_SENT)
		s |= IMAP_USE_SENT;
	if (attrs & IDX_MBOX_DRAFTS)
		s |= IMAP_USE_DRAFTS;
	if (attrs & IDX_MBOX_TRASH)
		s |= IMAP_USE_TRASH;
	if (attrs & IDX_MBOX_JUNK)
		s |= IMAP_USE_JUNK;
	if (attrs & IDX_MBOX_ARCHIVE)
		s |= IMAP_USE_ARCHIVE;
	return s;
}

static int list_index_one(const char *name, const struct idx_mailbox *mb, void *ctx)
{
	list_add(ctx, name, special_of(mb->attrs), true, false);
	return 0;
}

/* Maildir++ folders on disk (".A.B" is "A/B"), indexed or not: an adopted
 * Maildir shows all its folders before any of them was opened. */
static void list_disk(struct list_acc *l, const char *maildir)
{
	DIR *d = opendir(maildir);
	struct dirent *de;

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] != '.' || de->d_name[1] == '\0' || strcmp(de->d_name, "..") == 0)
			continue;
		struct stat sb;
		if (fstatat(dirfd(d), de->d_name, &sb, 0) < 0 || !S_ISDIR(sb.st_mode))
			continue;
		char *name = xstrdup(de->d_name + 1);
		for (char *p = name; *p; p++)
			if (*p == '.')
				*p = '/';
		if (layout_name_valid(name) && strcasecmp(name, "INBOX") != 0)
			list_add(l, name, 0, true, false);
		free(name);
	}
	closedir(d);
}

/* The folders the store is about to give a new account (see inbox_make),
 * with their special use. The writer may be making them right now (on
 * disk, not yet in the index), so the disk cannot tell which it will
 * make; an adopted Maildir's own Sent, which the store leaves unmarked,
 * shows as \Sent until then. */
static void list_defaults(struct list_acc *l)
{
	for (const struct store_default_folder *f = store_default_folders; f->name != NULL; f++)
		list_add(l, f->name, special_of(f->attr), true, true);
}

static int info_cmp(const void *a, const void *b)
{
	const struct imap_mailbox_info *x = a, *y = b;
	return strcmp(x->name, y->name);
}

/* Sort and fold duplicates together. */
static void list_merge(struct list_acc *l)
{
	size_t out = 0;

	if (l->n > 1)
		qsort(l->v, l->n, sizeof(*l->v), info_cmp);
	for (size_t i = 0; i < l->n; i++) {
		if (out > 0 && strcmp(l->v[out - 1].name, l->v[i].name) == 0) {
			struct imap_mailbox_info *o = &l->v[out - 1];
			o->special |= l->v[i].special;
			o->exists |= l->v[i].exists;
			o->subscribed |= l->v[i].subscribed;
			free(l->v[i].name);
			continue;
		}
		l->v[out++] = l->v[i];
	}
	l->n = out;
}

static int be_list(void *ctx, struct imap_account *acct, struct imap_mailbox_info **v_r, size_t *n_r)
{
	struct imap_glue *be = ctx;
	struct list_acc l = { 0 };
	char *error = NULL;
	MDB_txn *txn;
	int rc = mdb_txn_begin(be->svc.db->env, NULL, MDB_RDONLY, &txn);

	if (rc != 0) {
		log_error("imap: %s: reading the index: %s", acct->name, db_strerror(rc));
		return -1;
	}
	rc = idx_mailbox_each(txn, be->svc.db, acct->name, list_index_one, &l, &error);
	mdb_txn_abort(txn);
	if (rc < 0) {
		log_error("imap: %s: reading the index: %s", acct->name, error);
		free(error);
		imap_mailbox_info_free(l.v, l.n);
		return -1;
	}
	bool no_inbox = true;
	for (size_t i = 0; i < l.n; i++)
		no_inbox &= strcmp(l.v[i].name, "INBOX") != 0;
	list_add(&l, "INBOX", 0, true, false);
	if (no_inbox)
		list_defaults(&l);
	list_disk(&l, acct->maildir);
	char **subs = NULL;
	size_t n_subs = 0;
	if (store_subscriptions_read(acct->maildir, &subs, &n_subs, &error) < 0) {
		log_warn("imap: %s: %s", acct->name, error);
		free(error);
	}
	for (size_t i = 0; i < n_subs; i++) {
		list_add(&l, subs[i], 0, false, true);
		free(subs[i]);
	}
	free(subs);
	list_merge(&l);

	/* A folder "A/B" whose parent "A" is neither on disk nor in the
	 * index still shows "A" (as \NonExistent) so "%" walks reach it. */
	size_t n = l.n;
	for (size_t i = 0; i < n; i++) {
		if (!l.v[i].exists)
			continue;
		for (const char *p = strchr(l.v[i].name, '/'); p != NULL; p = strchr(p + 1, '/')) {
			char *parent = xstrndup(l.v[i].name, (size_t)(p - l.v[i].name));
			list_add(&l, parent, 0, false, false);
			free(parent);
		}
	}
	list_merge(&l);
	for (size_t i = 0; i < l.n; i++) {
		size_t len = strlen(l.v[i].name);
		for (size_t j = i + 1; j < l.n && strncmp(l.v[j].name, l.v[i].name, len) == 0; j++) {
			if (l.v[j].name[len] == '/' && l.v[j].exists) {
				l.v[i].has_children = true;
				break;
			}
		}
	}
	*v_r = l.v;
	*n_r = l.n;
	return 0;
}

/* ---- STATUS ---- */

struct recent_count {
	uint32_t above;            /* count uids above this ... */
	bool in_new_only;          /* ... or (no claim yet) those in new/ */
	uint32_t n;
};

static int recent_count_one(const struct idx_message *m, void *ctx)
{
	struct recent_count *c = ctx;
	if (c->in_new_only ? m->in_new : m->uid > c->above)
		c->n++;
	return 0;
}

static void status_opened(struct store_open_req *o)
{
	struct imap_glue_req *r = o->ctx;
	struct imap_status_info info = { 0 };
	enum imap_status st = imap_glue__status(o->result);

	if (r->cancelled) {
		imap_glue__req_free(r);
		return;
	}
	if (st == IMAP_OK) {
		info.messages = o->count;
		info.uidnext = o->uidnext;
		info.uidvalidity = o->uidvalidity;
		info.unseen = o->unseen;
		/* \Recent as the next SELECT would give it. */
		struct imap_glue_recent *rec = imap_glue__recent_find(r->be, r->account, o->mailbox_id);
		struct recent_count c = { .above = rec ? rec->seen_max : 0, .in_new_only = rec == NULL };
		struct db *db = r->be->svc.db;
		char *error = NULL;
		MDB_txn *txn;
		if (mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn) == 0) {
			if (idx_message_each(txn, db, o->mailbox_id, c.in_new_only ? 1 : c.above + 1,
					     recent_count_one, &c, &error) < 0) {
				log_warn("imap: %s: %s", r->account, error);
				free(error);
			}
			mdb_txn_abort(txn);
		}
		info.recent = c.n;
	}
	r->status_cb(r->arg, st, st == IMAP_OK ? &info : NULL);
	imap_glue__req_free(r);
}

static void *be_status(void *ctx, struct imap_account *acct, const char *mailbox, imap_status_cb cb, void *arg)
{
	struct imap_glue *be = ctx;
	struct imap_glue_req *r = imap_glue__req_new(be, acct->name, acct->maildir, mailbox);

	r->status_cb = cb;
	r->arg = arg;
	r->open = (struct store_open_req){
		.account = r->account, .maildir = r->maildir, .mailbox = r->mailbox, .cb = status_opened, .ctx = r,
	};
	store_mailbox_open(be->svc.store, &r->open);
	return r;
}

/* ---- CREATE, DELETE, RENAME, SUBSCRIBE ---- */

static void *folder_op(struct imap_glue *be, struct imap_account *acct, enum store_op_kind kind, const char *mailbox,
		       const char *target, imap_done_cb cb, void *arg)
{
	struct imap_glue_req *r = imap_glue__req_new(be, acct->name, acct->maildir, mailbox);

	r->done_cb = cb;
	r->arg = arg;
	if (target != NULL)
		r->target = xstrdup(imap_glue__mailbox_key(target));
	r->op = (struct store_op){ .kind = kind };
	imap_glue__req_op(r, NULL);
	return r;
}

static void *be_create(void *ctx, struct imap_account *acct, const char *mailbox, imap_done_cb cb, void *arg)
{
	return folder_op(ctx, acct, STORE_OP_CREATE, mailbox, NULL, cb, arg);
}

static void *be_delete(void *ctx, struct imap_account *acct, const char *mailbox, imap_done_cb cb, void *arg)
{
	return folder_op(ctx, acct, STORE_OP_DELETE, mailbox, NULL, cb, arg);
}

static void *be_rename(void *ctx, struct imap_account *acct, const char *from, const char *to, imap_done_cb cb,
		       void *arg)
{
	return folder_op(ctx, acct, STORE_OP_RENAME, from, to, cb, arg);
}

static void *be_subscribe(void *ctx, struct imap_account *acct, const char *mailbox, bool on, imap_done_cb cb,
			  void *arg)
{
	return folder_op(ctx, acct, on ? STORE_OP_SUBSCRIBE : STORE_OP_UNSUBSCRIBE, mailbox, NULL, cb, arg);
}

/* ---- APPEND ---- */

static void append_flagged(struct store_op *op)
{
	struct imap_glue_req *r = op->ctx;
	enum imap_status st = imap_glue__status(op->result);

	if (st != IMAP_OK)
		log_warn("imap: %s: %s: flags of an appended message: %s", r->account, r->mailbox,
			 store_result_name(op->result));
	store_op_clear(op);
	/* The message is there either way; only its flags may be missing. */
	if (!r->cancelled)
		r->done_cb(r->arg, IMAP_OK, r->rcpt.uidvalidity, &r->rcpt.uid, 1);
	imap_glue__req_free(r);
}

static void append_delivered(struct store_delivery *d)
{
	struct imap_glue_req *r = d->ctx;
	enum imap_status st = imap_glue__status(r->rcpt.result);

	if (st == IMAP_OK && r->rcpt.uid == 0)
		st = IMAP_TEMPFAIL; /* stored, but the index missed it */
	if (st == IMAP_OK && (r->flags != 0 || r->n_names > 0)) {
		/* Flags go into the file name (the Maildir is the truth), so
		 * they are set by a flags op on the new uid, which moves the
		 * file to cur/ with its info. */
		unlink(r->spool);
		free(r->spool);
		r->spool = NULL;
		r->uids = xmalloc(sizeof(*r->uids));
		r->uids[0] = r->rcpt.uid;
		r->n_uids = 1;
		r->op = (struct store_op){ .kind = STORE_OP_FLAGS, .flags_mode = STORE_FLAGS_ADD, .flags = r->flags };
		imap_glue__req_op(r, append_flagged);
		return;
	}
	if (!r->cancelled) {
		if (st == IMAP_OK)
			r->done_cb(r->arg, IMAP_OK, r->rcpt.uidvalidity, &r->rcpt.uid, 1);
		else
			r->done_cb(r->arg, st, 0, NULL, 0);
	}
	imap_glue__req_free(r);
}

static void *be_append(void *ctx, struct imap_account *acct, const char *mailbox, const void *data, size_t len,
		       uint32_t flags, const char *const *keywords, size_t nkeywords, int64_t internal_date,
		       imap_done_cb cb, void *arg)
{
	struct imap_glue *be = ctx;
	struct imap_glue_req *r = imap_glue__req_new(be, acct->name, acct->maildir, mailbox);

	r->done_cb = cb;
	r->arg = arg;
	r->flags = flags & (IMAP_SEEN | IMAP_ANSWERED | IMAP_FLAGGED | IMAP_DELETED | IMAP_DRAFT);
	imap_glue__req_names(r, keywords, nkeywords);
	r->spool = xasprintf("%s/imap-%ld-%llu", be->spool_dir, (long)getpid(),
			     (unsigned long long)++be->spool_counter);
	/* Like SMTP's DATA: written on the loop, the store reads it back on
	 * its thread, and it is gone once the store answered. */
	int fd = open(r->spool, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || fileio_write_all(fd, data, len) < 0) {
		log_error("imap: spool file %s: %s", r->spool, strerror(errno));
		if (fd >= 0)
			close(fd);
		imap_glue__req_free(r);
		return NULL;
	}
	close(fd);
	r->rcpt = (struct store_rcpt){
		.account = r->account, .maildir = r->maildir, .mailbox = r->mailbox,
		.quota_bytes = acct->quota_bytes, .quota_messages = acct->quota_messages,
	};
	r->d = (struct store_delivery){
		.spool_path = r->spool, .internal_date = internal_date, .rcpts = &r->rcpt, .n_rcpts = 1,
		.cb = append_delivered, .ctx = r,
	};
	store_deliver(be->svc.store, &r->d);
	return r;
}

struct imap_backend *imap_backend_new(const struct services *svc)
{
	struct imap_glue *be = xcalloc(1, sizeof(*be));

	be->svc = *svc;
	be->spool_dir = xasprintf("%s/spool", svc->cfg->data_dir);
	if (mkdir(be->spool_dir, 0700) < 0 && errno != EEXIST)
		log_error("imap: creating %s: %s", be->spool_dir, strerror(errno));
	be->b = (struct imap_backend){
		.ctx = be,
		.auth_start = be_auth_start,
		.auth_cancel = be_auth_cancel,
		.account_open = be_account_open,
		.account_close = be_account_close,
		.list = be_list,
		.status = be_status,
		.create = be_create,
		.delete_ = be_delete,
		.rename = be_rename,
		.subscribe = be_subscribe,
		.append = be_append,
		.cancel = be_cancel,
	};
	imap_glue__mailbox_init(&be->b);
	imap_glue__cache_init(be);
	return &be->b;
}

void imap_backend_free(struct imap_backend **bp)
{
	struct imap_glue *be = (struct imap_glue *)*bp;

	if (be == NULL)
		return;
	*bp = NULL;
	/* Sessions are gone and the store ran every callback; leftovers
	 * would be a bug, but are freed all the same. */
	while (be->accounts != NULL)
		account_free(be->accounts);
	while (be->recent != NULL) {
		struct imap_glue_recent *r = be->recent;
		be->recent = r->next;
		free(r->account);
		free(r);
	}
	imap_glue__cache_free(be);
	free(be->spool_dir);
	free(be);
}
