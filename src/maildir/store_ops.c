/*
 * Mailbox operations (IMAP and POP3 changes) on the writer thread.
 *
 * Each operation is one LMDB write transaction: the files are changed
 * first, the records beside them, and the transaction commits at the end.
 * When anything fails the transaction is aborted and the op answers
 * STORE_TEMPFAIL; the file changes that can be taken back (renames, new
 * links) are taken back, so the index and the files agree again. Those that
 * cannot (unlinks of EXPUNGE and DELETE) leave new/ and cur/ with mtimes the
 * index does not know, so the next open reconciles (contract 4).
 *
 * Rules this file must keep:
 *  - An operation that removes or moves a file the delivery log may name
 *    (EXPUNGE, MOVE, DELETE, RENAME) checkpoints first, or a replay after a
 *    crash would write the message back. COPY checkpoints too: a hard link
 *    shares the data of a logged delivery, which is not yet fsynced.
 *  - A COPY or MOVE that answers OK is durable: the target's directories
 *    are fsynced before the commit (clients expunge the source next).
 *  - UIDs only go up: expunged UIDs are never handed out again
 *    (dovecot-uidlist keeps N at uidnext).
 *  - Nothing here touches loop-side state; the changes are recorded in the
 *    op and told to watchers by store__op_notify() on the loop.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "maildir/layout.h"
#include "maildir/mdname.h"
#include "maildir/store_private.h"
#include "maildir/uidlist.h"

/* Largest subscriptions file read (a name is at most 512 octets). */
#define STORE_SUBS_MAX (4u * 1024 * 1024)
#define STORE_SUBS_NAME "subscriptions"

/* A file change to take back when the transaction does not commit:
 * rename to back to from, or (from NULL) unlink to. */
struct op_undo {
	char *from, *to;
};

struct op_ctx {
	struct store *st;
	MDB_txn *txn;
	struct store_op *op;
	struct op_undo *undo;
	size_t n_undo, cap_undo;
	char *error;
};

/* One mailbox an operation works on. */
struct op_box {
	const char *name;          /* index key: "INBOX" or the folder name */
	char *dir;
	struct idx_mailbox mb;
	bool reconciled;           /* forced once in this op already */
};

static const char *op_key(const char *mailbox)
{
	return strcasecmp(mailbox, "INBOX") == 0 ? "INBOX" : mailbox;
}

static bool op_is_inbox(const char *mailbox)
{
	return strcasecmp(mailbox, "INBOX") == 0;
}

static void op_event(struct store_op *op, const char *mailbox, enum store_event ev, uint32_t first,
		     uint32_t last)
{
	if (op->n_events == op->cap_events) {
		op->cap_events = op->cap_events ? op->cap_events * 2 : 16;
		op->events = xrealloc(op->events, op->cap_events * sizeof(*op->events));
	}
	op->events[op->n_events++] = (struct store_op_event){
		.mailbox = xstrdup(mailbox), .ev = (int)ev, .first = first, .last = last,
	};
}

static void op_events_free(struct store_op *op)
{
	for (size_t i = 0; i < op->n_events; i++)
		free(op->events[i].mailbox);
	free(op->events);
	op->events = NULL;
	op->n_events = op->cap_events = 0;
}

static void op_undo_add(struct op_ctx *c, const char *from, const char *to)
{
	if (c->n_undo == c->cap_undo) {
		c->cap_undo = c->cap_undo ? c->cap_undo * 2 : 16;
		c->undo = xrealloc(c->undo, c->cap_undo * sizeof(*c->undo));
	}
	c->undo[c->n_undo++] = (struct op_undo){ from ? xstrdup(from) : NULL, xstrdup(to) };
}

/* Take the file changes back, newest first. */
static void op_undo_run(struct op_ctx *c, bool run)
{
	for (size_t i = c->n_undo; i-- > 0;) {
		struct op_undo *u = &c->undo[i];
		if (run) {
			int rc = u->from ? rename(u->to, u->from) : unlink(u->to);
			if (rc < 0)
				log_error("store: undo %s: %s", u->to, strerror(errno));
		}
		free(u->from);
		free(u->to);
	}
	free(c->undo);
	c->undo = NULL;
	c->n_undo = c->cap_undo = 0;
}

static enum store_result op_box_open(struct op_ctx *c, const char *mailbox, bool create, struct op_box *b)
{
	b->name = op_key(mailbox);
	b->reconciled = false;
	return store__mailbox_ensure(c->st, c->txn, c->op->account, c->op->maildir, b->name, create, &b->dir,
				     &b->mb, &c->error);
}

static void op_box_free(struct op_box *b)
{
	free(b->dir);
	b->dir = NULL;
}

/* Our own renames and unlinks moved the mtimes of new/ and cur/: record
 * them so the next open does not rescan the folder for them. */
static int op_box_save(struct op_ctx *c, struct op_box *b)
{
	char *p = xasprintf("%s/new", b->dir);
	b->mb.new_mtime_ns = store__mtime_ns(p);
	free(p);
	p = xasprintf("%s/cur", b->dir);
	b->mb.cur_mtime_ns = store__mtime_ns(p);
	free(p);
	return idx_mailbox_put(c->txn, c->st->db, c->op->account, b->name, &b->mb, &c->error);
}

static char *op_msg_path(const struct op_box *b, const struct idx_message *m)
{
	return xasprintf("%s/%s/%s", b->dir, m->in_new ? "new" : "cur", m->name);
}

/* The file of uid was not where the index said: another program moved
 * it. Reconcile the mailbox (once per op) and look again. Returns 0 with
 * *m refreshed, 1 when the message is gone, -1 on error. */
static int op_refetch(struct op_ctx *c, struct op_box *b, uint32_t uid, struct idx_message *m)
{
	idx_message_clear(m);
	if (b->reconciled)
		return 1;
	b->reconciled = true;
	if (store__reconcile(c->st, c->txn, c->op->account, b->name, b->dir, &b->mb, true, &c->error) < 0)
		return -1;
	memset(m, 0, sizeof(*m));
	return idx_message_get(c->txn, c->st->db, b->mb.id, uid, m, &c->error);
}

static int op_fsync_dir(struct op_ctx *c, const char *dir, const char *sub)
{
	char *p = sub ? xasprintf("%s/%s", dir, sub) : xstrdup(dir);
	int fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = fd < 0 || fsync(fd) < 0 ? -1 : 0;
	if (rc < 0)
		c->error = xasprintf("fsync %s: %s", p, strerror(errno));
	if (fd >= 0)
		close(fd);
	free(p);
	return rc;
}

/* ---------------------------------------------------------------- */
/* FLAGS                                                             */

static void op_new_flags(const struct store_op *op, const struct idx_message *m, uint32_t *flags_r,
			 uint32_t *keywords_r)
{
	uint32_t f = op->flags & MDNAME_FLAGS_ALL, k = op->keywords & MDNAME_KEYWORDS_ALL;
	switch (op->flags_mode) {
	case STORE_FLAGS_SET:
		*flags_r = f;
		*keywords_r = k;
		break;
	case STORE_FLAGS_ADD:
		*flags_r = m->flags | f;
		*keywords_r = m->keywords | k;
		break;
	case STORE_FLAGS_REMOVE:
	default:
		*flags_r = m->flags & ~f;
		*keywords_r = m->keywords & ~k;
		break;
	}
}

/* Rename one message's file to carry flags and keywords (Maildir: a file
 * with info lives in cur/). Returns 0 done, 1 gone, -1 error. */
static int op_flags_one(struct op_ctx *c, struct op_box *b, uint32_t uid, struct idx_message *m)
{
	for (;;) {
		uint32_t nf, nk;
		op_new_flags(c->op, m, &nf, &nk);
		if (nf == m->flags && nk == m->keywords)
			return 1;
		struct mdname_info info;
		char name[MDNAME_MAX + 1];
		if (mdname_parse(m->name, strlen(m->name), &info) < 0 ||
		    mdname_with_info(name, sizeof(name), m->name, info.base_len, nf, nk, info.other) < 0) {
			c->error = xasprintf("%s: cannot name the file of uid %u", b->dir, uid);
			return -1;
		}
		char *from = op_msg_path(b, m);
		char *to = xasprintf("%s/cur/%s", b->dir, name);
		int rc = strcmp(from, to) == 0 ? 0 : rename(from, to);
		int err = errno;
		if (rc == 0 && strcmp(from, to) != 0)
			op_undo_add(c, from, to);
		if (rc < 0 && err != ENOENT)
			c->error = xasprintf("rename %s: %s", from, strerror(err));
		free(from);
		free(to);
		if (rc < 0 && err == ENOENT) {
			int g = op_refetch(c, b, uid, m);
			if (g != 0)
				return g;
			continue;
		}
		if (rc < 0)
			return -1;
		if ((m->flags & IDX_SEEN) && !(nf & IDX_SEEN))
			b->mb.unseen++;
		else if (!(m->flags & IDX_SEEN) && (nf & IDX_SEEN))
			b->mb.unseen--;
		free(m->name);
		m->name = xstrdup(name);
		m->in_new = false;
		m->flags = nf;
		m->keywords = nk;
		m->modseq = ++b->mb.modseq;
		if (idx_message_put(c->txn, c->st->db, b->mb.id, m, &c->error) < 0)
			return -1;
		return 0;
	}
}

static enum store_result op_flags(struct op_ctx *c)
{
	struct store_op *op = c->op;
	struct op_box b = { 0 };
	enum store_result r = op_box_open(c, op->mailbox, false, &b);
	if (r != STORE_OK)
		return r;
	r = STORE_TEMPFAIL;
	for (size_t i = 0; i < op->n_uids; i++) {
		struct idx_message m = { 0 };
		int rc = idx_message_get(c->txn, c->st->db, b.mb.id, op->uids[i], &m, &c->error);
		if (rc == 0)
			rc = op_flags_one(c, &b, op->uids[i], &m);
		idx_message_clear(&m);
		if (rc < 0)
			goto out;
		if (rc == 0) {
			op_event(op, b.name, STORE_EVENT_FLAGS, op->uids[i], op->uids[i]);
			op->done++;
		}
	}
	if (op_box_save(c, &b) < 0)
		goto out;
	r = STORE_OK;
out:
	op_box_free(&b);
	return r;
}

/* ---------------------------------------------------------------- */
/* EXPUNGE                                                           */

static enum store_result op_expunge(struct op_ctx *c)
{
	struct store_op *op = c->op;
	struct op_box b = { 0 };
	int64_t bytes = 0, msgs = 0;

	/* A replay must never bring an expunged message back. */
	if (store__checkpoint(c->st, &c->error) < 0)
		return STORE_TEMPFAIL;
	enum store_result r = op_box_open(c, op->mailbox, false, &b);
	if (r != STORE_OK)
		return r;
	r = STORE_TEMPFAIL;
	for (size_t i = 0; i < op->n_uids; i++) {
		uint32_t uid = op->uids[i];
		struct idx_message m = { 0 };
		int rc = idx_message_get(c->txn, c->st->db, b.mb.id, uid, &m, &c->error);
		while (rc == 0) {
			char *path = op_msg_path(&b, &m);
			int u = unlink(path), err = errno;
			if (u < 0 && err != ENOENT)
				c->error = xasprintf("unlink %s: %s", path, strerror(err));
			free(path);
			if (u == 0 || b.reconciled) {
				break; /* removed, or gone for good: drop the record */
			} else if (err != ENOENT) {
				rc = -1;
			} else {
				/* Renamed by another program (a flag change)?
				 * Reconcile and look again. */
				rc = op_refetch(c, &b, uid, &m);
				if (rc == 1)
					rc = 2; /* reconciliation dropped it, accounting too */
			}
		}
		if (rc < 0) {
			idx_message_clear(&m);
			goto out;
		}
		if (rc == 0) {
			if (idx_message_del(c->txn, c->st->db, b.mb.id, uid, &c->error) < 0) {
				idx_message_clear(&m);
				goto out;
			}
			b.mb.count--;
			if (!(m.flags & IDX_SEEN))
				b.mb.unseen--;
			b.mb.bytes -= m.size;
			b.mb.modseq++;
			bytes += (int64_t)m.size;
			msgs++;
			op->done++;
		}
		if (rc == 0 || rc == 2)
			op_event(op, b.name, STORE_EVENT_EXPUNGE, uid, uid);
		idx_message_clear(&m);
	}
	if (msgs > 0 && idx_usage_add(c->txn, c->st->db, op->account, -bytes, -msgs, &c->error) < 0)
		goto out;
	if (op_box_save(c, &b) < 0)
		goto out;
	if (msgs > 0) {
		char *err = NULL;
		if (store__uidlist_rewrite(c->st, c->txn, b.dir, &b.mb, NULL, &err) < 0) {
			/* The index has it right; the list is rewritten at
			 * the next reconciliation. */
			log_warn("store: %s", err);
			free(err);
		}
	}
	store__touch_dir(c->st, b.dir);
	r = STORE_OK;
out:
	op_box_free(&b);
	return r;
}

/* ---------------------------------------------------------------- */
/* COPY and MOVE                                                     */

/* Copy the bytes of from into a new file to (another file system: no
 * hard link possible), fsynced. */
static int op_copy_file(struct op_ctx *c, const char *from, const char *to)
{
	int in = open(from, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -1; /* errno kept: ENOENT retries */
	int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0) {
		c->error = xasprintf("%s: %s", to, strerror(errno));
		close(in);
		errno = EIO;
		return -1;
	}
	char *buf = c->st->chunk;
	ssize_t n;
	int rc = 0;
	while ((n = read(in, buf, 64 * 1024)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || fileio_write_all(out, buf, (size_t)n) < 0) {
			rc = -1;
			break;
		}
	}
	if (rc == 0 && fsync(out) < 0)
		rc = -1;
	if (rc < 0) {
		c->error = xasprintf("copy %s: %s", to, strerror(errno));
		unlink(to);
	}
	close(out);
	close(in);
	if (rc < 0)
		errno = EIO;
	return rc;
}

struct op_xfer {
	const uint32_t *uids;
	size_t n;
	bool move;
	bool quota;                /* COPY: check the account's quota */
	uint32_t *new_uids;        /* n entries, filled */
	uint32_t *uidvalidity_r;
	size_t *done_r;
};

/* Put one message m of s into t. Returns 0 (with *uid_r), 1 when it is
 * gone, -1 on error. */
static int op_xfer_one(struct op_ctx *c, struct op_box *s, struct op_box *t, bool move, uint32_t uid,
		       struct idx_message *m, uint32_t *uid_r)
{
	for (;;) {
		struct mdname_info info;
		char name[MDNAME_MAX + 1];
		if (mdname_parse(m->name, strlen(m->name), &info) < 0) {
			c->error = xasprintf("%s: bad file name for uid %u", s->dir, uid);
			return -1;
		}
		char *base = store__unique_name(c->st, m->size, m->vsize);
		/* Maildir: a file without info stays in new/, one with info
		 * goes to cur/. */
		bool to_new = m->in_new && info.info == MDNAME_INFO_NONE;
		if (to_new)
			snprintf(name, sizeof(name), "%s", base);
		else if (mdname_with_info(name, sizeof(name), base, strlen(base), m->flags, m->keywords,
					  info.other) < 0) {
			c->error = xasprintf("%s: cannot name a copy of uid %u", t->dir, uid);
			free(base);
			return -1;
		}
		char *from = op_msg_path(s, m);
		char *final = xasprintf("%s/%s/%s", t->dir, to_new ? "new" : "cur", name);
		int rc, err = 0;
		if (move) {
			rc = rename(from, final);
			err = errno;
			if (rc == 0)
				op_undo_add(c, from, final);
			else if (err != ENOENT)
				c->error = xasprintf("rename %s: %s", from, strerror(err));
		} else {
			char *tmp = xasprintf("%s/tmp/%s", t->dir, base);
			rc = link(from, tmp);
			err = errno;
			if (rc < 0 && (err == EXDEV || err == EPERM)) {
				rc = op_copy_file(c, from, tmp);
				err = errno;
			} else if (rc < 0 && err != ENOENT) {
				c->error = xasprintf("link %s: %s", tmp, strerror(err));
			}
			if (rc == 0) {
				if (rename(tmp, final) < 0) {
					c->error = xasprintf("rename %s: %s", final, strerror(errno));
					unlink(tmp);
					rc = -1;
					err = EIO;
				} else {
					op_undo_add(c, NULL, final);
				}
			}
			free(tmp);
		}
		free(from);
		free(final);
		if (rc < 0 && err == ENOENT && c->error == NULL) {
			free(base);
			int g = op_refetch(c, s, uid, m);
			if (g != 0)
				return g;
			continue;
		}
		if (rc < 0) {
			free(base);
			return -1;
		}

		struct idx_message n = {
			.uid = t->mb.uidnext,
			.flags = m->flags,
			.keywords = m->keywords,
			.in_new = to_new,
			.modseq = ++t->mb.modseq,
			.size = m->size,
			.vsize = m->vsize,
			.internal_date = m->internal_date,
			.name = name,
		};
		t->mb.uidnext++;
		t->mb.count++;
		t->mb.bytes += m->size;
		if (!(m->flags & IDX_SEEN))
			t->mb.unseen++;
		if (idx_message_put(c->txn, c->st->db, t->mb.id, &n, &c->error) < 0) {
			free(base);
			return -1;
		}
		/* A MOVE within one mailbox rewrites its whole list below. */
		if (s != t || !move)
			store__uidlist_note(c->st, t->dir, &t->mb, n.uid, base, m->size, m->vsize);
		free(base);
		*uid_r = n.uid;
		return 0;
	}
}

static enum store_result op_xfer(struct op_ctx *c, const char *src, const char *tgt, struct op_xfer *x)
{
	struct store_op *op = c->op;
	struct op_box sbox = { 0 }, tbox = { 0 };
	struct op_box *s = &sbox, *t = &tbox;
	int64_t bytes = 0, msgs = 0;
	uint32_t first = 0, last = 0;

	/* MOVE takes files away from paths the delivery log names; COPY
	 * links to data a logged delivery has not fsynced yet. */
	if (store__checkpoint(c->st, &c->error) < 0)
		return STORE_TEMPFAIL;
	enum store_result r = op_box_open(c, src, false, s);
	if (r != STORE_OK)
		return r;
	r = op_box_open(c, tgt, false, t);
	if (r != STORE_OK) {
		op_box_free(s);
		return r;
	}
	if (t->mb.id == s->mb.id) {
		op_box_free(t);
		t = s; /* into the same mailbox: one record to keep */
	}
	*x->uidvalidity_r = t->mb.uidvalidity;
	r = STORE_TEMPFAIL;

	if (x->quota && (op->quota_bytes || op->quota_messages)) {
		uint64_t total = 0, count = 0, used_bytes, used_msgs;
		for (size_t i = 0; i < x->n; i++) {
			struct idx_message m = { 0 };
			int rc = idx_message_get(c->txn, c->st->db, s->mb.id, x->uids[i], &m, &c->error);
			if (rc < 0)
				goto out;
			if (rc == 0) {
				total += m.size;
				count++;
			}
			idx_message_clear(&m);
		}
		if (idx_usage_get(c->txn, c->st->db, op->account, &used_bytes, &used_msgs, &c->error) < 0)
			goto out;
		if ((op->quota_bytes && used_bytes + total > op->quota_bytes) ||
		    (op->quota_messages && used_msgs + count > op->quota_messages)) {
			r = STORE_OVER_QUOTA;
			goto out;
		}
	}

	for (size_t i = 0; i < x->n; i++) {
		uint32_t uid = x->uids[i], nuid = 0;
		struct idx_message m = { 0 };
		int rc = idx_message_get(c->txn, c->st->db, s->mb.id, uid, &m, &c->error);
		if (rc == 0)
			rc = op_xfer_one(c, s, t, x->move, uid, &m, &nuid);
		if (rc < 0) {
			idx_message_clear(&m);
			goto out;
		}
		if (rc == 1) {
			idx_message_clear(&m);
			continue;
		}
		x->new_uids[i] = nuid;
		if (first == 0)
			first = nuid;
		last = nuid;
		(*x->done_r)++;
		if (x->move) {
			if (idx_message_del(c->txn, c->st->db, s->mb.id, uid, &c->error) < 0) {
				idx_message_clear(&m);
				goto out;
			}
			s->mb.count--;
			if (!(m.flags & IDX_SEEN))
				s->mb.unseen--;
			s->mb.bytes -= m.size;
			s->mb.modseq++;
			op_event(op, s->name, STORE_EVENT_EXPUNGE, uid, uid);
		} else {
			bytes += (int64_t)m.size;
			msgs++;
		}
		idx_message_clear(&m);
	}

	/* An OK must survive a crash: the client expunges the source next. */
	if (first != 0 && (op_fsync_dir(c, t->dir, "new") < 0 || op_fsync_dir(c, t->dir, "cur") < 0))
		goto out;
	if (first != 0 && x->move && s != t &&
	    (op_fsync_dir(c, s->dir, "new") < 0 || op_fsync_dir(c, s->dir, "cur") < 0))
		goto out;
	if (msgs > 0 && idx_usage_add(c->txn, c->st->db, op->account, bytes, msgs, &c->error) < 0)
		goto out;
	if (op_box_save(c, t) < 0 || (s != t && op_box_save(c, s) < 0))
		goto out;
	if (x->move && first != 0) {
		char *err = NULL;
		if (store__uidlist_rewrite(c->st, c->txn, s->dir, &s->mb, NULL, &err) < 0) {
			log_warn("store: %s", err);
			free(err);
		}
	}
	if (first != 0)
		op_event(op, t->name, STORE_EVENT_NEW, first, last);
	r = STORE_OK;
out:
	if (t != s)
		op_box_free(t);
	op_box_free(s);
	return r;
}

static enum store_result op_copy_move(struct op_ctx *c, bool move)
{
	struct store_op *op = c->op;
	if (op->target == NULL)
		return STORE_NO_MAILBOX;
	op->new_uids = xcalloc(op->n_uids ? op->n_uids : 1, sizeof(*op->new_uids));
	struct op_xfer x = {
		.uids = op->uids, .n = op->n_uids, .move = move, .quota = !move,
		.new_uids = op->new_uids, .uidvalidity_r = &op->target_uidvalidity, .done_r = &op->done,
	};
	return op_xfer(c, op->mailbox, op->target, &x);
}

/* ---------------------------------------------------------------- */
/* CREATE, DELETE, RENAME                                            */

static bool op_box_exists(struct op_ctx *c, const char *name, enum store_result *err_r)
{
	struct idx_mailbox mb;
	int rc = idx_mailbox_get(c->txn, c->st->db, c->op->account, op_key(name), &mb, &c->error);
	if (rc < 0) {
		*err_r = STORE_TEMPFAIL;
		return false;
	}
	if (rc == 0)
		return true;
	char *dir = layout_mailbox_dir(c->op->maildir, name);
	struct stat sb;
	bool on_disk = dir != NULL && stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode);
	free(dir);
	return on_disk;
}

/* Make name and every missing parent (RFC 3501 6.3.3: "a/b/c" creates
 * "a" and "a/b" too). Existing levels are left alone. */
static enum store_result op_create_levels(struct op_ctx *c, const char *name)
{
	size_t len = strlen(name);
	for (size_t i = 0; i <= len; i++) {
		if (name[i] != '/' && name[i] != '\0')
			continue;
		char *level = xstrndup(name, i);
		struct idx_mailbox mb;
		int rc = idx_mailbox_get(c->txn, c->st->db, c->op->account, level, &mb, &c->error);
		enum store_result r = rc < 0 ? STORE_TEMPFAIL : STORE_OK;
		if (rc == 1) {
			struct op_box b = { 0 };
			r = op_box_open(c, level, true, &b);
			op_box_free(&b);
		}
		free(level);
		if (r != STORE_OK)
			return r == STORE_NO_MAILBOX ? STORE_NOT_ALLOWED : r;
	}
	return STORE_OK;
}

static enum store_result op_create(struct op_ctx *c)
{
	const char *name = c->op->mailbox;
	enum store_result err = STORE_OK;

	if (op_is_inbox(name))
		return STORE_EXISTS;
	if (!layout_name_valid(name))
		return STORE_NOT_ALLOWED;
	if (op_box_exists(c, name, &err))
		return STORE_EXISTS;
	if (err != STORE_OK)
		return err;
	return op_create_levels(c, name);
}

struct op_names {
	const char *prefix;        /* "NAME/" */
	size_t prefix_len;
	char **names;
	size_t n;
};

static int op_collect_children(const char *name, const struct idx_mailbox *mb, void *ctx)
{
	struct op_names *l = ctx;
	(void)mb;
	if (strncmp(name, l->prefix, l->prefix_len) == 0) {
		l->names = xrealloc(l->names, (l->n + 1) * sizeof(*l->names));
		l->names[l->n++] = xstrdup(name);
	}
	return 0;
}

static void op_names_free(struct op_names *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->names[i]);
	free(l->names);
	l->names = NULL;
	l->n = 0;
}

/* Directory entries of the Maildir root whose names start with prefix
 * (".A." for the children of A). */
static int op_disk_children(const char *root, const char *prefix, char ***names_r, size_t *n_r)
{
	DIR *d = opendir(root);
	size_t plen = strlen(prefix);
	*names_r = NULL;
	*n_r = 0;
	if (d == NULL)
		return errno == ENOENT ? 0 : -1;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, prefix, plen) != 0)
			continue;
		*names_r = xrealloc(*names_r, (*n_r + 1) * sizeof(**names_r));
		(*names_r)[(*n_r)++] = xstrdup(de->d_name);
	}
	closedir(d);
	return 0;
}

static void op_strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Remove a directory tree (no symlinks followed). */
static int op_rm_rf(int parent, const char *name)
{
	int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return unlinkat(parent, name, 0) < 0 && errno != ENOENT ? -1 : 0;
	DIR *d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return -1;
	}
	int rc = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (op_rm_rf(dirfd(d), de->d_name) < 0)
			rc = -1;
	}
	closedir(d);
	if (unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		rc = -1;
	return rc;
}

/* The name of a mailbox's directory inside the Maildir root (".A.B"). */
static const char *op_dir_base(const char *dir)
{
	const char *s = strrchr(dir, '/');
	return s ? s + 1 : dir;
}

static enum store_result op_delete(struct op_ctx *c)
{
	struct store_op *op = c->op;
	const char *name = op->mailbox;
	struct op_box b = { 0 };

	if (op_is_inbox(name))
		return STORE_NOT_ALLOWED;
	if (!layout_name_valid(name))
		return STORE_NO_MAILBOX;
	enum store_result r = op_box_open(c, name, false, &b);
	if (r != STORE_OK)
		return r;
	r = STORE_TEMPFAIL;

	/* RFC 3501 6.3.4 lets a server refuse to delete a mailbox with
	 * inferior names; we do, rather than keep a \Noselect shell. */
	struct op_names kids = { .prefix = NULL };
	char *prefix = xasprintf("%s/", name);
	kids.prefix = prefix;
	kids.prefix_len = strlen(prefix);
	int rc = idx_mailbox_each(c->txn, c->st->db, op->account, op_collect_children, &kids, &c->error);
	size_t n_kids = kids.n;
	op_names_free(&kids);
	free(prefix);
	if (rc < 0)
		goto out;
	char *disk_prefix = xasprintf("%s.", op_dir_base(b.dir));
	char **disk = NULL;
	size_t n_disk = 0;
	rc = op_disk_children(op->maildir, disk_prefix, &disk, &n_disk);
	free(disk_prefix);
	op_strv_free(disk, n_disk);
	if (rc < 0) {
		c->error = xasprintf("%s: %s", op->maildir, strerror(errno));
		goto out;
	}
	if (n_kids > 0 || n_disk > 0) {
		r = STORE_NOT_ALLOWED;
		goto out;
	}

	/* Its files leave the paths the delivery log names. */
	if (store__checkpoint(c->st, &c->error) < 0)
		goto out;
	if (idx_message_del_all(c->txn, c->st->db, b.mb.id, &c->error) < 0 ||
	    idx_mailbox_del(c->txn, c->st->db, op->account, b.name, &c->error) < 0 ||
	    (b.mb.count > 0 &&
	     idx_usage_add(c->txn, c->st->db, op->account, -(int64_t)b.mb.bytes, -(int64_t)b.mb.count,
			   &c->error) < 0))
		goto out;

	/* One rename takes the folder away at once (no client ever sees it
	 * half deleted); the removal follows at leisure. */
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	char *trash = xasprintf("%s/..DELETED.%lld.%ld.%llu", op->maildir, (long long)ts.tv_sec, ts.tv_nsec,
				(unsigned long long)++c->st->counter);
	if (rename(b.dir, trash) < 0) {
		c->error = xasprintf("rename %s: %s", b.dir, strerror(errno));
		free(trash);
		goto out;
	}
	op_undo_add(c, b.dir, trash);
	if (op_fsync_dir(c, op->maildir, NULL) < 0) {
		free(trash);
		goto out;
	}
	free(trash);
	op_event(op, b.name, STORE_EVENT_GONE, 0, 0);
	r = STORE_OK;
out:
	op_box_free(&b);
	return r;
}

struct op_uids {
	uint32_t *v;
	size_t n, cap;
};

static int op_collect_uid(const struct idx_message *m, void *ctx)
{
	struct op_uids *l = ctx;
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
	}
	l->v[l->n++] = m->uid;
	return 0;
}

/* RFC 3501 6.3.5: renaming INBOX moves all of its messages to the new
 * name and leaves INBOX there, empty. */
static enum store_result op_rename_inbox(struct op_ctx *c)
{
	struct store_op *op = c->op;
	enum store_result err = STORE_OK;
	struct op_box b = { 0 };

	if (op_box_exists(c, op->target, &err))
		return STORE_EXISTS;
	if (err != STORE_OK)
		return err;
	enum store_result r = op_create_levels(c, op->target);
	if (r != STORE_OK)
		return r;
	r = op_box_open(c, "INBOX", false, &b);
	if (r != STORE_OK)
		return r;
	struct op_uids uids = { 0 };
	int rc = idx_message_each(c->txn, c->st->db, b.mb.id, 1, op_collect_uid, &uids, &c->error);
	op_box_free(&b);
	if (rc < 0) {
		free(uids.v);
		return STORE_TEMPFAIL;
	}
	uint32_t *new_uids = xcalloc(uids.n ? uids.n : 1, sizeof(*new_uids));
	uint32_t uidvalidity = 0;
	size_t done = 0;
	struct op_xfer x = {
		.uids = uids.v, .n = uids.n, .move = true, .new_uids = new_uids,
		.uidvalidity_r = &uidvalidity, .done_r = &done,
	};
	r = op_xfer(c, "INBOX", op->target, &x);
	op->done = done;
	free(new_uids);
	free(uids.v);
	return r;
}

struct op_pair {
	char *from, *to;
};

static void op_pairs_free(struct op_pair *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].from);
		free(v[i].to);
	}
	free(v);
}

static enum store_result op_rename(struct op_ctx *c)
{
	struct store_op *op = c->op;
	const char *src = op->mailbox, *dst = op->target;
	enum store_result err = STORE_OK;

	if (dst == NULL || !layout_name_valid(dst))
		return STORE_NOT_ALLOWED;
	if (op_is_inbox(dst))
		return STORE_EXISTS;
	if (op_is_inbox(src))
		return op_rename_inbox(c);
	if (!layout_name_valid(src))
		return STORE_NO_MAILBOX;

	struct op_box b = { 0 };
	enum store_result r = op_box_open(c, src, false, &b);
	if (r != STORE_OK)
		return r;
	size_t src_len = strlen(src), dst_len = strlen(dst);
	if (strncmp(dst, src, src_len) == 0 && (dst[src_len] == '/' || dst[src_len] == '\0')) {
		op_box_free(&b);
		return strcmp(dst, src) == 0 ? STORE_EXISTS : STORE_NOT_ALLOWED; /* into itself */
	}
	if (op_box_exists(c, dst, &err)) {
		op_box_free(&b);
		return STORE_EXISTS;
	}
	if (err != STORE_OK) {
		op_box_free(&b);
		return err;
	}
	r = STORE_TEMPFAIL;

	/* The records: src and every "src/..." child. */
	struct op_names kids = { 0 };
	char *prefix = xasprintf("%s/", src);
	kids.prefix = prefix;
	kids.prefix_len = src_len + 1;
	struct op_pair *recs = NULL, *dirs = NULL;
	size_t n_recs = 0, n_dirs = 0;
	char **disk = NULL;
	size_t n_disk = 0;
	char *dst_dir = layout_mailbox_dir(op->maildir, dst);
	char *disk_prefix = xasprintf("%s.", op_dir_base(b.dir));
	const char *src_base = op_dir_base(b.dir), *dst_base = op_dir_base(dst_dir);

	if (idx_mailbox_each(c->txn, c->st->db, op->account, op_collect_children, &kids, &c->error) < 0)
		goto out;
	recs = xcalloc(kids.n + 1, sizeof(*recs));
	recs[n_recs++] = (struct op_pair){ xstrdup(src), xstrdup(dst) };
	for (size_t i = 0; i < kids.n; i++) {
		recs[n_recs].from = xstrdup(kids.names[i]);
		recs[n_recs].to = xasprintf("%.*s%s", (int)dst_len, dst, kids.names[i] + src_len);
		n_recs++;
	}
	for (size_t i = 1; i < n_recs; i++) {
		if (op_box_exists(c, recs[i].to, &err)) {
			r = STORE_EXISTS;
			goto out;
		}
		if (err != STORE_OK)
			goto out;
	}

	/* The directories: ".src" and every ".src.x" on disk, indexed or
	 * not (a folder another program made is a child all the same). */
	if (op_disk_children(op->maildir, disk_prefix, &disk, &n_disk) < 0) {
		c->error = xasprintf("%s: %s", op->maildir, strerror(errno));
		goto out;
	}
	dirs = xcalloc(n_disk + 1, sizeof(*dirs));
	dirs[n_dirs].from = xstrdup(b.dir);
	dirs[n_dirs].to = xstrdup(dst_dir);
	n_dirs++;
	for (size_t i = 0; i < n_disk; i++) {
		dirs[n_dirs].from = xasprintf("%s/%s", op->maildir, disk[i]);
		dirs[n_dirs].to = xasprintf("%s/%s%s", op->maildir, dst_base, disk[i] + strlen(src_base));
		struct stat sb;
		if (stat(dirs[n_dirs].to, &sb) == 0) {
			n_dirs++;
			r = STORE_EXISTS;
			goto out;
		}
		n_dirs++;
	}

	/* Files leave the paths the delivery log names. */
	if (store__checkpoint(c->st, &c->error) < 0)
		goto out;
	/* RFC 3501 6.3.5: missing superior names of the new name are made. */
	char *slash = strrchr(dst, '/');
	if (slash != NULL) {
		char *parent = xstrndup(dst, (size_t)(slash - dst));
		enum store_result pr = op_create_levels(c, parent);
		free(parent);
		if (pr != STORE_OK) {
			r = pr;
			goto out;
		}
	}
	for (size_t i = 0; i < n_dirs; i++) {
		if (rename(dirs[i].from, dirs[i].to) < 0) {
			c->error = xasprintf("rename %s: %s", dirs[i].from, strerror(errno));
			goto out;
		}
		op_undo_add(c, dirs[i].from, dirs[i].to);
	}
	if (op_fsync_dir(c, op->maildir, NULL) < 0)
		goto out;

	/* Re-key the records; messages are keyed by mailbox id and stay.
	 * UIDVALIDITY is kept: the UIDs still name the same messages. */
	for (size_t i = 0; i < n_recs; i++) {
		struct idx_mailbox mb;
		int rc = idx_mailbox_get(c->txn, c->st->db, op->account, recs[i].from, &mb, &c->error);
		if (rc < 0)
			goto out;
		if (rc == 1)
			continue;
		if (idx_mailbox_put(c->txn, c->st->db, op->account, recs[i].to, &mb, &c->error) < 0 ||
		    idx_mailbox_del(c->txn, c->st->db, op->account, recs[i].from, &c->error) < 0)
			goto out;
		op_event(op, recs[i].from, STORE_EVENT_GONE, 0, 0);
	}
	r = STORE_OK;
out:
	op_names_free(&kids);
	free(prefix);
	op_pairs_free(recs, n_recs);
	op_pairs_free(dirs, n_dirs);
	op_strv_free(disk, n_disk);
	free(disk_prefix);
	free(dst_dir);
	op_box_free(&b);
	return r;
}

/* ---------------------------------------------------------------- */
/* Subscriptions                                                     */

/* Split the subscriptions file's text into names (empty lines and CRs
 * dropped). */
static void op_subs_split(char *text, size_t len, char ***names_r, size_t *n_r)
{
	char *p = text, *end = text + len;
	*names_r = NULL;
	*n_r = 0;
	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		char *e = nl ? nl : end;
		size_t n = (size_t)(e - p);
		while (n > 0 && p[n - 1] == '\r')
			n--;
		if (n > 0 && memchr(p, '\0', n) == NULL) {
			*names_r = xrealloc(*names_r, (*n_r + 1) * sizeof(**names_r));
			(*names_r)[(*n_r)++] = xstrndup(p, n);
		}
		p = nl ? nl + 1 : end;
	}
}

int store_subscriptions_read(const char *maildir, char ***names_r, size_t *n_r, char **error_r)
{
	char *path = xasprintf("%s/" STORE_SUBS_NAME, maildir), *text = NULL;
	size_t len = 0;
	bool missing = false;
	int rc = fileio_read_file(path, STORE_SUBS_MAX, &text, &len, &missing, error_r);
	free(path);
	*names_r = NULL;
	*n_r = 0;
	if (rc < 0)
		return -1;
	if (!missing)
		op_subs_split(text, len, names_r, n_r);
	free(text);
	return 0;
}

int store__subscribe(const char *maildir, const char *name, bool add, char **error_r)
{
	char **names = NULL;
	size_t n = 0;

	if (layout_mkdirs(maildir) < 0) {
		*error_r = xasprintf("%s: %s", maildir, strerror(errno));
		return -1;
	}
	if (store_subscriptions_read(maildir, &names, &n, error_r) < 0)
		return -1;
	size_t cap = strlen(name) + 2, len = 0;
	for (size_t i = 0; i < n; i++)
		cap += strlen(names[i]) + 1;
	char *out = xmalloc(cap);
	bool found = false, changed = false;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(names[i], name) == 0) {
			if (found || !add) {
				changed = true;
				continue; /* once only; or the one removed */
			}
			found = true;
		}
		size_t k = strlen(names[i]);
		memcpy(out + len, names[i], k);
		out[len + k] = '\n';
		len += k + 1;
	}
	if (add && !found) {
		changed = true;
		size_t k = strlen(name);
		memcpy(out + len, name, k);
		out[len + k] = '\n';
		len += k + 1;
	}
	op_strv_free(names, n);
	if (!changed) {
		free(out);
		return 0;
	}
	char *path = xasprintf("%s/" STORE_SUBS_NAME, maildir);
	/* Through a temporary file and rename(): a reader sees the old list
	 * or the new one, never half of one. */
	int rc = maildir__lockfile_replace(path, out, len, true, error_r);
	free(path);
	free(out);
	return rc;
}

static enum store_result op_subscribe(struct op_ctx *c, bool add)
{
	struct store_op *op = c->op;
	/* RFC 3501 6.3.6: the name need not exist, but must be one. */
	if (!layout_name_valid(op->mailbox) || strchr(op->mailbox, '\n') != NULL)
		return STORE_NOT_ALLOWED;
	const char *name = op_key(op->mailbox);
	if (store__subscribe(op->maildir, name, add, &c->error) < 0)
		return STORE_TEMPFAIL;
	/* Keep the record's attribute in step when there is one. */
	struct idx_mailbox mb;
	int rc = idx_mailbox_get(c->txn, c->st->db, op->account, name, &mb, &c->error);
	if (rc < 0)
		return STORE_TEMPFAIL;
	if (rc == 0) {
		uint32_t attrs = add ? mb.attrs | IDX_MBOX_SUBSCRIBED : mb.attrs & ~IDX_MBOX_SUBSCRIBED;
		if (attrs != mb.attrs) {
			mb.attrs = attrs;
			if (idx_mailbox_put(c->txn, c->st->db, op->account, name, &mb, &c->error) < 0)
				return STORE_TEMPFAIL;
		}
	}
	op->done = 1;
	return STORE_OK;
}

/* ---------------------------------------------------------------- */

static const char *op_kind_name(enum store_op_kind k)
{
	switch (k) {
	case STORE_OP_CREATE: return "CREATE";
	case STORE_OP_DELETE: return "DELETE";
	case STORE_OP_RENAME: return "RENAME";
	case STORE_OP_SUBSCRIBE: return "SUBSCRIBE";
	case STORE_OP_UNSUBSCRIBE: return "UNSUBSCRIBE";
	case STORE_OP_FLAGS: return "FLAGS";
	case STORE_OP_COPY: return "COPY";
	case STORE_OP_MOVE: return "MOVE";
	case STORE_OP_EXPUNGE: return "EXPUNGE";
	}
	return "?";
}

/* The notes a failed op left for dovecot-uidlist must not be written. */
static void op_notes_drop(struct store *st)
{
	for (size_t k = 0; k < st->n_notes; k++) {
		free(st->notes[k].dir);
		free(st->notes[k].name);
	}
	st->n_notes = 0;
}

void store__run_op(struct store *st, struct store_op *op)
{
	struct op_ctx c = { .st = st, .op = op };
	char *trash = NULL;

	op->events = NULL;
	op->n_events = op->cap_events = 0;
	op->done = 0;
	int rc = mdb_txn_begin(st->db->env, NULL, 0, &c.txn);
	if (rc != 0) {
		log_error("store: index: %s", mdb_strerror(rc));
		op->result = STORE_TEMPFAIL;
		return;
	}
	switch (op->kind) {
	case STORE_OP_FLAGS: op->result = op_flags(&c); break;
	case STORE_OP_EXPUNGE: op->result = op_expunge(&c); break;
	case STORE_OP_COPY: op->result = op_copy_move(&c, false); break;
	case STORE_OP_MOVE: op->result = op_copy_move(&c, true); break;
	case STORE_OP_CREATE: op->result = op_create(&c); break;
	case STORE_OP_DELETE: op->result = op_delete(&c); break;
	case STORE_OP_RENAME: op->result = op_rename(&c); break;
	case STORE_OP_SUBSCRIBE: op->result = op_subscribe(&c, true); break;
	case STORE_OP_UNSUBSCRIBE: op->result = op_subscribe(&c, false); break;
	default:
		log_error("store: operation %d is not implemented", (int)op->kind);
		op->result = STORE_NOT_ALLOWED;
		break;
	}
	if (op->kind == STORE_OP_DELETE && op->result == STORE_OK && c.n_undo > 0)
		trash = xstrdup(c.undo[c.n_undo - 1].to);
	if (op->result == STORE_OK && (rc = mdb_txn_commit(c.txn)) != 0) {
		log_error("store: %s %s: index commit: %s", op_kind_name(op->kind), op->mailbox, mdb_strerror(rc));
		op->result = STORE_TEMPFAIL;
		op_undo_run(&c, true);
		op_notes_drop(st);
	} else if (op->result != STORE_OK) {
		if (c.error != NULL)
			log_error("store: %s %s: %s", op_kind_name(op->kind), op->mailbox, c.error);
		mdb_txn_abort(c.txn);
		op_undo_run(&c, true);
		op_notes_drop(st);
	} else {
		op_undo_run(&c, false);
		store__uidlist_flush(st);
	}
	free(c.error);
	if (op->result != STORE_OK) {
		op_events_free(op);
		if (op->kind == STORE_OP_COPY || op->kind == STORE_OP_MOVE)
			for (size_t i = 0; op->new_uids != NULL && i < op->n_uids; i++)
				op->new_uids[i] = 0;
		op->done = 0;
	}
	/* A deleted folder was renamed away at once; its files go now. */
	if (trash != NULL) {
		if (op->result == STORE_OK) {
			const char *base = op_dir_base(trash);
			int dfd = open(op->maildir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (dfd < 0 || op_rm_rf(dfd, base) < 0)
				log_warn("store: removing %s: %s", trash, strerror(errno));
			if (dfd >= 0)
				close(dfd);
		}
		free(trash);
	}
}

void store__op_notify(struct store *st, struct store_op *op)
{
	for (size_t i = 0; i < op->n_events; i++) {
		struct store_op_event *e = &op->events[i];
		store__notify(st, op->account, e->mailbox, (enum store_event)e->ev, e->first, e->last);
	}
	op_events_free(op);
}
