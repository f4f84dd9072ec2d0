/*
 * The selected mailbox of the server's IMAP backend: SELECT and EXAMINE,
 * the store watch that becomes the session's on_change, \Recent, the
 * messages and keyword names from the index, message bytes from the
 * Maildir files, and the changes a session makes to the mailbox (flags,
 * copy and move, expunge), which go through the store's writer.
 *
 * \Recent (RFC 3501 2.3.2): one session is told a message is recent, the
 * first to see it. The backend keeps, per account and mailbox, the highest
 * uid any session has been told about; that lives as long as the process.
 * At the first SELECT after a start nothing is known, so the messages that
 * are still in new/ (no client has looked at them) are the recent ones.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/imap_glue_private.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "maildir/index.h"
#include "maildir/layout.h"

/* ---- keywords ---- */

/* Read dovecot-keywords into mb->kw, keeping the strings of names that
 * did not move, so pointers handed out before stay valid. */
static void mb_keywords_read(struct imap_mailbox *mb)
{
	struct keywords kw;
	bool missing = false;
	char *error = NULL;
	char *path = xasprintf("%s/" KEYWORDS_NAME, mb->dir);

	if (keywords_read(path, &kw, &missing, &error) < 0) {
		/* Keep what we had; the next change tries again. */
		log_warn("imap: %s: %s", mb->account, error);
		free(error);
		free(path);
		return;
	}
	free(path);
	for (int i = 0; i < IMAP_KEYWORDS_MAX; i++) {
		char *n = kw.names[i];
		if (n != NULL && !keywords_valid_name(n))
			n = NULL; /* its letter stays taken, but a client cannot see it */
		if (mb->kw[i] != NULL && n != NULL && strcmp(mb->kw[i], n) == 0)
			continue;
		free(mb->kw[i]);
		mb->kw[i] = n;
		if (n != NULL)
			kw.names[i] = NULL;
	}
	keywords_free(&kw);
	mb->kw_stale = false;
}

static const char *const *be_mailbox_keywords(void *ctx, struct imap_mailbox *mb)
{
	(void)ctx;
	if (mb->kw_stale)
		mb_keywords_read(mb);
	return (const char *const *)mb->kw;
}

/* ---- the watch ---- */

static void mb_watch_fn(struct store_watch *w, enum store_event ev, uint32_t first, uint32_t last)
{
	struct imap_mailbox *mb = w->ctx;

	switch (ev) {
	case STORE_EVENT_NEW:
		/* The index read at SELECT may already have had them: the
		 * commit happens before the loop hears of it. */
		if (first <= mb->known_max)
			first = mb->known_max + 1;
		if (first > last)
			return;
		/* A copy or move may bring letters this folder did not use. */
		mb->kw_stale = true;
		mb->on_change(mb->change_arg, IMAP_CHANGE_NEW, first, last);
		break;
	case STORE_EVENT_EXPUNGE:
		mb->on_change(mb->change_arg, IMAP_CHANGE_EXPUNGE, first, first);
		break;
	case STORE_EVENT_FLAGS:
		mb->kw_stale = true;
		mb->on_change(mb->change_arg, IMAP_CHANGE_FLAGS, first, first);
		break;
	case STORE_EVENT_GONE:
	default:
		mb->on_change(mb->change_arg, IMAP_CHANGE_GONE, 0, 0);
		break;
	}
}

/* ---- reading messages ---- */

struct msg_walk {
	struct imap_msg *v;
	size_t n, cap;
	uint32_t last;             /* 0: no upper bound */
	uint32_t seen_max;         /* recent above this ... */
	bool first_claim;          /* ... or, first claim after start, in new/ */
	bool claim;                /* false: read-only, nothing is recent */
	size_t recent;
	uint32_t max_uid;
};

static int msg_walk_one(const struct idx_message *m, void *ctx)
{
	struct msg_walk *w = ctx;

	if (w->last != 0 && m->uid > w->last)
		return 1;
	if (w->n == w->cap) {
		w->cap = w->cap ? w->cap * 2 : 16;
		w->v = xrealloc(w->v, w->cap * sizeof(*w->v));
	}
	bool recent = w->claim && (w->first_claim ? m->in_new : m->uid > w->seen_max);
	w->v[w->n++] = (struct imap_msg){
		.uid = m->uid, .flags = (uint8_t)(m->flags & 0x1f), .recent = recent, .keywords = m->keywords,
	};
	w->recent += recent;
	if (m->uid > w->max_uid)
		w->max_uid = m->uid;
	return 0;
}

/* Walk mb's messages from first to last (0: all) in one read transaction,
 * claiming \Recent unless read-only. Returns 0 or -1. */
static int mb_walk(struct imap_mailbox *mb, uint32_t first, struct msg_walk *w)
{
	struct imap_glue *be = mb->be;
	struct db *db = be->svc.db;
	struct imap_glue_recent *rec = imap_glue__recent_find(be, mb->account, mb->mailbox_id);
	char *error = NULL;
	MDB_txn *txn;

	w->claim = !mb->read_only;
	w->first_claim = rec == NULL;
	w->seen_max = rec ? rec->seen_max : 0;
	int rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn);
	if (rc != 0) {
		log_error("imap: %s: reading the index: %s", mb->account, db_strerror(rc));
		return -1;
	}
	rc = idx_message_each(txn, db, mb->mailbox_id, first, msg_walk_one, w, &error);
	mdb_txn_abort(txn);
	if (rc < 0) {
		log_error("imap: %s: reading the index: %s", mb->account, error);
		free(error);
		free(w->v);
		w->v = NULL;
		w->n = 0;
		return -1;
	}
	/* The session keeps the array as long as the mailbox is selected:
	 * give back what doubling left unused (an idle session's memory). */
	if (w->cap > w->n) {
		w->v = w->n ? xrealloc(w->v, w->n * sizeof(*w->v)) : (free(w->v), NULL);
		w->cap = w->n;
	}
	if (w->claim) {
		rec = imap_glue__recent_get(be, mb->account, mb->mailbox_id);
		if (w->max_uid > rec->seen_max)
			rec->seen_max = w->max_uid;
	}
	if (w->max_uid > mb->known_max)
		mb->known_max = w->max_uid;
	return 0;
}

static int be_mailbox_messages(void *ctx, struct imap_mailbox *mb, uint32_t first_uid, uint32_t last_uid,
			       struct imap_msg **v_r, size_t *n_r)
{
	struct msg_walk w = { .last = last_uid };
	(void)ctx;

	if (mb_walk(mb, first_uid ? first_uid : 1, &w) < 0)
		return -1;
	*v_r = w.v;
	*n_r = w.n;
	return 0;
}

static enum imap_status be_message_info(void *ctx, struct imap_mailbox *mb, uint32_t uid,
					struct imap_msg_info *info_r)
{
	struct db *db = mb->be->svc.db;
	struct idx_message m = { 0 };
	char *error = NULL;
	MDB_txn *txn;
	(void)ctx;

	int rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn);
	if (rc != 0) {
		log_error("imap: %s: reading the index: %s", mb->account, db_strerror(rc));
		return IMAP_TEMPFAIL;
	}
	rc = idx_message_get(txn, db, mb->mailbox_id, uid, &m, &error);
	mdb_txn_abort(txn);
	if (rc < 0) {
		log_error("imap: %s: reading the index: %s", mb->account, error);
		free(error);
		return IMAP_TEMPFAIL;
	}
	if (rc == 1)
		return IMAP_GONE;
	*info_r = (struct imap_msg_info){
		.uid = m.uid, .flags = m.flags & 0x1f, .keywords = m.keywords, .size = m.vsize,
		.internal_date = m.internal_date,
	};
	idx_message_clear(&m);
	return IMAP_OK;
}

/* ---- SELECT ---- */

static void mb_free(struct imap_mailbox *mb)
{
	for (int i = 0; i < IMAP_KEYWORDS_MAX; i++)
		free(mb->kw[i]);
	free(mb->account);
	free(mb->maildir);
	free(mb->name);
	free(mb->dir);
	free(mb);
}

static void select_opened(struct store_open_req *o)
{
	struct imap_glue_req *r = o->ctx;
	struct imap_glue *be = r->be;
	enum imap_status st = imap_glue__status(o->result);

	if (r->cancelled) {
		imap_glue__req_free(r);
		return;
	}
	if (st != IMAP_OK) {
		r->select_cb(r->arg, st, NULL, NULL);
		imap_glue__req_free(r);
		return;
	}
	struct imap_mailbox *mb = xcalloc(1, sizeof(*mb));
	mb->be = be;
	mb->account = xstrdup(r->account);
	mb->maildir = xstrdup(r->maildir);
	mb->name = xstrdup(r->mailbox);
	mb->dir = layout_mailbox_dir(r->maildir, r->mailbox);
	mb->mailbox_id = o->mailbox_id;
	mb->uidvalidity = o->uidvalidity;
	mb->quota_bytes = r->quota_bytes;
	mb->quota_messages = r->quota_messages;
	mb->read_only = r->read_only;
	mb->on_change = r->on_change;
	mb->change_arg = r->change_arg;

	struct imap_select_info info = { .uidvalidity = o->uidvalidity, .uidnext = o->uidnext };
	struct idx_mailbox rec;
	char *error = NULL;
	MDB_txn *txn;
	if (mdb_txn_begin(be->svc.db->env, NULL, MDB_RDONLY, &txn) == 0) {
		int rc = idx_mailbox_get(txn, be->svc.db, mb->account, mb->name, &rec, &error);
		mdb_txn_abort(txn);
		if (rc == 0) {
			info.special = 0;
			if (rec.attrs & IDX_MBOX_SENT)
				info.special |= IMAP_USE_SENT;
			if (rec.attrs & IDX_MBOX_DRAFTS)
				info.special |= IMAP_USE_DRAFTS;
			if (rec.attrs & IDX_MBOX_TRASH)
				info.special |= IMAP_USE_TRASH;
			if (rec.attrs & IDX_MBOX_JUNK)
				info.special |= IMAP_USE_JUNK;
			if (rec.attrs & IDX_MBOX_ARCHIVE)
				info.special |= IMAP_USE_ARCHIVE;
			if (rec.uidnext > info.uidnext)
				info.uidnext = rec.uidnext;
		}
		free(error);
	}
	struct msg_walk w = { 0 };
	if (mb_walk(mb, 1, &w) < 0) {
		mb_free(mb);
		r->select_cb(r->arg, IMAP_TEMPFAIL, NULL, NULL);
		imap_glue__req_free(r);
		return;
	}
	if (w.max_uid >= info.uidnext)
		info.uidnext = w.max_uid + 1;
	/* Below uidnext as read here, a NEW event tells of nothing the
	 * session lacks (it was loaded, or expunged before the read). */
	mb->known_max = info.uidnext - 1;
	info.msgs = w.v;
	info.n = w.n;
	info.recent = w.recent;
	mb_keywords_read(mb);

	mb->watch = (struct store_watch){ .account = mb->account, .mailbox = mb->name, .fn = mb_watch_fn, .ctx = mb };
	store_watch(be->svc.store, &mb->watch);
	r->select_cb(r->arg, IMAP_OK, mb, &info);
	imap_glue__req_free(r);
}

static void *be_mailbox_select(void *ctx, struct imap_account *acct, const char *mailbox, bool read_only,
			       imap_change_cb on_change, void *change_arg, imap_select_cb cb, void *arg)
{
	struct imap_glue *be = ctx;
	struct imap_glue_req *r = imap_glue__req_new(be, acct->name, acct->maildir, mailbox);

	r->select_cb = cb;
	r->arg = arg;
	r->read_only = read_only;
	r->on_change = on_change;
	r->change_arg = change_arg;
	r->quota_bytes = acct->quota_bytes;
	r->quota_messages = acct->quota_messages;
	r->open = (struct store_open_req){
		.account = r->account, .maildir = r->maildir, .mailbox = r->mailbox, .cb = select_opened, .ctx = r,
	};
	store_mailbox_open(be->svc.store, &r->open);
	return r;
}

static void be_mailbox_close(void *ctx, struct imap_mailbox *mb)
{
	struct imap_glue *be = ctx;

	if (mb == NULL)
		return;
	store_unwatch(be->svc.store, &mb->watch);
	mb_free(mb);
}

/* ---- message files ---- */

int imap_glue__message_fd(struct imap_mailbox *mb, uint32_t uid, enum imap_status *status_r)
{
	char *error = NULL;
	int fd = -1;
	int rc = idx_message_open_file(mb->be->svc.db, mb->mailbox_id, mb->dir, uid, &fd, &error);

	if (rc == 0)
		return fd;
	if (rc < 0) {
		log_error("imap: %s: message %u: %s", mb->account, uid, error);
		free(error);
	}
	*status_r = rc > 0 ? IMAP_GONE : IMAP_TEMPFAIL;
	return -1;
}

struct reader {
	int fd;
};

static void *be_message_open(void *ctx, struct imap_mailbox *mb, uint32_t uid, enum imap_status *status_r)
{
	(void)ctx;
	int fd = imap_glue__message_fd(mb, uid, status_r);
	if (fd < 0)
		return NULL;
	struct reader *r = xmalloc(sizeof(*r));
	r->fd = fd;
	*status_r = IMAP_OK;
	return r;
}

static ssize_t be_message_pread(void *reader, void *buf, size_t len, uint64_t offset)
{
	struct reader *r = reader;
	ssize_t n;

	do
		n = pread(r->fd, buf, len, (off_t)offset);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		log_error("imap: reading a message: %s", strerror(errno));
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

/* ---- changes ---- */

static struct imap_glue_req *mb_req(struct imap_mailbox *mb, const uint32_t *uids, size_t n, imap_done_cb cb, void *arg)
{
	struct imap_glue_req *r = imap_glue__req_new(mb->be, mb->account, mb->maildir, mb->name);

	r->done_cb = cb;
	r->arg = arg;
	if (n > 0) {
		r->uids = xmalloc(n * sizeof(*r->uids));
		memcpy(r->uids, uids, n * sizeof(*uids));
	}
	r->n_uids = n;
	return r;
}

static void *be_flags(void *ctx, struct imap_mailbox *mb, const uint32_t *uids, size_t n, enum imap_flags_mode mode,
		      uint32_t flags, const char *const *keywords, size_t nkeywords, imap_done_cb cb, void *arg)
{
	(void)ctx;
	struct imap_glue_req *r = mb_req(mb, uids, n, cb, arg);
	imap_glue__req_names(r, keywords, nkeywords);
	r->op = (struct store_op){
		.kind = STORE_OP_FLAGS,
		.flags_mode = mode == IMAP_FLAGS_SET ? STORE_FLAGS_SET :
			      mode == IMAP_FLAGS_ADD ? STORE_FLAGS_ADD : STORE_FLAGS_REMOVE,
		.flags = flags & 0x1f,
	};
	/* Names become letters in the writer, which adds the new ones to
	 * dovecot-keywords in the same op. */
	imap_glue__req_op(r, NULL);
	return r;
}

static void *be_copy(void *ctx, struct imap_mailbox *mb, const uint32_t *uids, size_t n, const char *target,
		     bool move, imap_done_cb cb, void *arg)
{
	(void)ctx;
	struct imap_glue_req *r = mb_req(mb, uids, n, cb, arg);
	r->target = xstrdup(imap_glue__mailbox_key(target));
	r->op = (struct store_op){
		.kind = move ? STORE_OP_MOVE : STORE_OP_COPY,
		.quota_bytes = mb->quota_bytes, .quota_messages = mb->quota_messages,
	};
	imap_glue__req_op(r, NULL);
	return r;
}

static void *be_expunge(void *ctx, struct imap_mailbox *mb, const uint32_t *uids, size_t n, imap_done_cb cb,
			void *arg)
{
	(void)ctx;
	struct imap_glue_req *r = mb_req(mb, uids, n, cb, arg);
	r->op = (struct store_op){ .kind = STORE_OP_EXPUNGE };
	imap_glue__req_op(r, NULL);
	return r;
}

void imap_glue__mailbox_init(struct imap_backend *b)
{
	b->mailbox_select = be_mailbox_select;
	b->mailbox_close = be_mailbox_close;
	b->mailbox_messages = be_mailbox_messages;
	b->mailbox_keywords = be_mailbox_keywords;
	b->message_info = be_message_info;
	b->message_tree = imap_glue__message_tree;
	b->message_open = be_message_open;
	b->message_pread = be_message_pread;
	b->message_close = be_message_close;
	b->flags = be_flags;
	b->copy = be_copy;
	b->expunge = be_expunge;
}
