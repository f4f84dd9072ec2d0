/*
 * Mailbox operations (IMAP and POP3 changes) on the writer thread: the
 * dispatcher store__run_op(), the helpers every operation shares, and the
 * message operations (FLAGS, EXPUNGE, COPY, MOVE). The folder operations
 * (CREATE, DELETE, RENAME, SUBSCRIBE) live in store_folders.c; what the
 * two files share is declared in store_ops_private.h.
 *
 * Each operation is one LMDB write transaction: the files are changed
 * first, the records beside them, and the transaction commits at the end.
 * When anything fails the transaction is aborted and the op answers
 * STORE_TEMPFAIL; the file changes that can be taken back (renames, new
 * links) are taken back, so the index and the files agree again. Those that
 * cannot (unlinks of EXPUNGE and DELETE) leave new/ and cur/ with mtimes the
 * index does not know, so the next open reconciles (contract 4).
 *
 * Rules this file and store_folders.c must keep:
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
#include <unistd.h>

#include "core/fileio.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "maildir/keywords.h"
#include "maildir/mdname.h"
#include "maildir/store_ops_private.h"
#include "maildir/store_private.h"

const char *store__op_key(const char *mailbox)
{
	return strcasecmp(mailbox, "INBOX") == 0 ? "INBOX" : mailbox;
}

void store__op_event(struct store_op *op, const char *mailbox, enum store_event ev, uint32_t first,
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

void store__op_undo_add(struct store__op_ctx *c, const char *from, const char *to)
{
	if (c->n_undo == c->cap_undo) {
		c->cap_undo = c->cap_undo ? c->cap_undo * 2 : 16;
		c->undo = xrealloc(c->undo, c->cap_undo * sizeof(*c->undo));
	}
	c->undo[c->n_undo++] = (struct store__op_undo){ from ? xstrdup(from) : NULL, xstrdup(to) };
}

/* Take the file changes back, newest first. */
static void op_undo_run(struct store__op_ctx *c, bool run)
{
	for (size_t i = c->n_undo; i-- > 0;) {
		struct store__op_undo *u = &c->undo[i];
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

enum store_result store__op_box_open(struct store__op_ctx *c, const char *mailbox, bool create,
				     struct store__op_box *b)
{
	b->name = store__op_key(mailbox);
	b->reconciled = false;
	return store__mailbox_ensure(c->st, c->txn, c->op->account, c->op->maildir, b->name, create, &b->dir,
				     &b->mb, &c->error);
}

void store__op_box_free(struct store__op_box *b)
{
	free(b->dir);
	b->dir = NULL;
}

/* Our own renames and unlinks moved the mtimes of new/ and cur/: record
 * them so the next open does not rescan the folder for them. */
static int op_box_save(struct store__op_ctx *c, struct store__op_box *b)
{
	char *p = xasprintf("%s/new", b->dir);
	b->mb.new_mtime_ns = store__mtime_ns(p);
	free(p);
	p = xasprintf("%s/cur", b->dir);
	b->mb.cur_mtime_ns = store__mtime_ns(p);
	free(p);
	return idx_mailbox_put(c->txn, c->st->db, c->op->account, b->name, &b->mb, &c->error);
}

static char *op_msg_path(const struct store__op_box *b, const struct idx_message *m)
{
	return xasprintf("%s/%s/%s", b->dir, m->in_new ? "new" : "cur", m->name);
}

/* The file of uid was not where the index said: another program moved
 * it. Reconcile the mailbox (once per op) and look again. Returns 0 with
 * *m refreshed, 1 when the message is gone, -1 on error. */
static int op_refetch(struct store__op_ctx *c, struct store__op_box *b, uint32_t uid, struct idx_message *m)
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

int store__op_fsync_dir(struct store__op_ctx *c, const char *dir, const char *sub)
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
const char *store__op_dir_base(const char *dir)
{
	const char *s = strrchr(dir, '/');
	return s ? s + 1 : dir;
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
static int op_flags_one(struct store__op_ctx *c, struct store__op_box *b, uint32_t uid, struct idx_message *m)
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
			store__op_undo_add(c, from, to);
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

/* Map the op's keyword names to the folder's letters (adding the names it
 * lacks unless the op removes them) and OR the letters into op->keywords.
 * The file is written before any message is renamed, so a letter in a
 * file name always has its name; should the op fail after that, the
 * folder merely knows a name no message carries yet. */
static int op_flags_keywords(struct store__op_ctx *c, const struct store__op_box *b)
{
	struct store_op *op = c->op;
	struct keywords kw;
	bool missing = false, added = false;
	char *path = xasprintf("%s/" KEYWORDS_NAME, b->dir);
	int rc = keywords_read(path, &kw, &missing, &c->error);

	if (rc == 0) {
		for (size_t i = 0; i < op->n_keyword_names; i++) {
			const char *name = op->keyword_names[i];
			int k = keywords_lookup(&kw, name);
			if (k < 0 && op->flags_mode != STORE_FLAGS_REMOVE) {
				k = keywords_add(&kw, name);
				added |= k >= 0;
			}
			if (k >= 0)
				op->keywords |= 1u << k;
		}
		if (added)
			rc = keywords_write(path, &kw, true, &c->error);
	}
	keywords_free(&kw);
	free(path);
	return rc;
}

static enum store_result op_flags(struct store__op_ctx *c)
{
	struct store_op *op = c->op;
	struct store__op_box b = { 0 };
	enum store_result r = store__op_box_open(c, op->mailbox, false, &b);
	if (r != STORE_OK)
		return r;
	r = STORE_TEMPFAIL;
	if (op->n_keyword_names > 0 && op_flags_keywords(c, &b) < 0)
		goto out;
	for (size_t i = 0; i < op->n_uids; i++) {
		struct idx_message m = { 0 };
		int rc = idx_message_get(c->txn, c->st->db, b.mb.id, op->uids[i], &m, &c->error);
		if (rc == 0)
			rc = op_flags_one(c, &b, op->uids[i], &m);
		idx_message_clear(&m);
		if (rc < 0)
			goto out;
		if (rc == 0) {
			store__op_event(op, b.name, STORE_EVENT_FLAGS, op->uids[i], op->uids[i]);
			op->done++;
		}
	}
	if (op_box_save(c, &b) < 0)
		goto out;
	r = STORE_OK;
out:
	store__op_box_free(&b);
	return r;
}

/* ---------------------------------------------------------------- */
/* EXPUNGE                                                           */

static enum store_result op_expunge(struct store__op_ctx *c)
{
	struct store_op *op = c->op;
	struct store__op_box b = { 0 };
	int64_t bytes = 0, msgs = 0;

	/* A replay must never bring an expunged message back. */
	if (store__checkpoint(c->st, &c->error) < 0)
		return STORE_TEMPFAIL;
	enum store_result r = store__op_box_open(c, op->mailbox, false, &b);
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
			store__op_event(op, b.name, STORE_EVENT_EXPUNGE, uid, uid);
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
	store__op_box_free(&b);
	return r;
}

/* ---------------------------------------------------------------- */
/* COPY and MOVE                                                     */

/* Copy the bytes of from into a new file to (another file system: no
 * hard link possible), fsynced. */
static int op_copy_file(struct store__op_ctx *c, const char *from, const char *to)
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

/* Keyword letters mean what each folder's dovecot-keywords says, so a
 * message copied to another folder gets the target's letters for its
 * names (the target learns the names it lacks). Letters the source does
 * not name are kept as they are, as another program's would be. */
struct op_kwmap {
	bool loaded;
	struct keywords src, tgt;
	char *tgt_path;
	int map[KEYWORDS_MAX];     /* target letter, -1 dropped, -2 not yet */
};

static int op_kwmap_apply(struct store__op_ctx *c, struct op_kwmap *k, const struct store__op_box *s,
			  const struct store__op_box *t, uint32_t *keywords)
{
	if (*keywords == 0 || s == t)
		return 0;
	if (!k->loaded) {
		bool missing;
		char *src_path = xasprintf("%s/" KEYWORDS_NAME, s->dir);
		k->tgt_path = xasprintf("%s/" KEYWORDS_NAME, t->dir);
		int rc = keywords_read(src_path, &k->src, &missing, &c->error);
		free(src_path);
		if (rc < 0 || keywords_read(k->tgt_path, &k->tgt, &missing, &c->error) < 0)
			return -1;
		for (int i = 0; i < KEYWORDS_MAX; i++)
			k->map[i] = -2;
		k->loaded = true;
	}
	uint32_t out = 0;
	bool added = false;
	for (int i = 0; i < KEYWORDS_MAX; i++) {
		if (!(*keywords & (1u << i)))
			continue;
		if (k->map[i] == -2) {
			const char *name = keywords_name(&k->src, i);
			int j = name ? keywords_lookup(&k->tgt, name) : i;
			if (j < 0) {
				j = keywords_add(&k->tgt, name);
				added |= j >= 0;
			}
			k->map[i] = j;
		}
		if (k->map[i] >= 0)
			out |= 1u << k->map[i];
	}
	/* Written before the file that carries the letters appears. */
	if (added && keywords_write(k->tgt_path, &k->tgt, true, &c->error) < 0)
		return -1;
	*keywords = out;
	return 0;
}

static void op_kwmap_free(struct op_kwmap *k)
{
	if (k->loaded) {
		keywords_free(&k->src);
		keywords_free(&k->tgt);
	}
	free(k->tgt_path);
}

/* Put one message m of s into t. Returns 0 (with *uid_r), 1 when it is
 * gone, -1 on error. */
static int op_xfer_one(struct store__op_ctx *c, struct store__op_box *s, struct store__op_box *t, bool move,
		       uint32_t uid, struct idx_message *m, struct op_kwmap *kw, uint32_t *uid_r)
{
	for (;;) {
		uint32_t keywords = m->keywords;
		if (op_kwmap_apply(c, kw, s, t, &keywords) < 0)
			return -1;
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
		else if (mdname_with_info(name, sizeof(name), base, strlen(base), m->flags, keywords,
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
				store__op_undo_add(c, from, final);
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
					store__op_undo_add(c, NULL, final);
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
			.keywords = keywords,
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

enum store_result store__op_xfer(struct store__op_ctx *c, const char *src, const char *tgt,
				 struct store__op_xfer *x)
{
	struct store_op *op = c->op;
	struct store__op_box sbox = { 0 }, tbox = { 0 };
	struct op_kwmap kwmap = { .loaded = false };
	struct store__op_box *s = &sbox, *t = &tbox;
	int64_t bytes = 0, msgs = 0;
	uint32_t first = 0, last = 0;

	/* MOVE takes files away from paths the delivery log names; COPY
	 * links to data a logged delivery has not fsynced yet. */
	if (store__checkpoint(c->st, &c->error) < 0)
		return STORE_TEMPFAIL;
	enum store_result r = store__op_box_open(c, src, false, s);
	if (r != STORE_OK)
		return r;
	r = store__op_box_open(c, tgt, false, t);
	if (r != STORE_OK) {
		store__op_box_free(s);
		return r;
	}
	if (t->mb.id == s->mb.id) {
		store__op_box_free(t);
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
			rc = op_xfer_one(c, s, t, x->move, uid, &m, &kwmap, &nuid);
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
			store__op_event(op, s->name, STORE_EVENT_EXPUNGE, uid, uid);
		} else {
			bytes += (int64_t)m.size;
			msgs++;
		}
		idx_message_clear(&m);
	}

	/* An OK must survive a crash: the client expunges the source next. */
	if (first != 0 && (store__op_fsync_dir(c, t->dir, "new") < 0 || store__op_fsync_dir(c, t->dir, "cur") < 0))
		goto out;
	if (first != 0 && x->move && s != t &&
	    (store__op_fsync_dir(c, s->dir, "new") < 0 || store__op_fsync_dir(c, s->dir, "cur") < 0))
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
		store__op_event(op, t->name, STORE_EVENT_NEW, first, last);
	r = STORE_OK;
out:
	op_kwmap_free(&kwmap);
	if (t != s)
		store__op_box_free(t);
	store__op_box_free(s);
	return r;
}

static enum store_result op_copy_move(struct store__op_ctx *c, bool move)
{
	struct store_op *op = c->op;
	if (op->target == NULL)
		return STORE_NO_MAILBOX;
	op->new_uids = xcalloc(op->n_uids ? op->n_uids : 1, sizeof(*op->new_uids));
	struct store__op_xfer x = {
		.uids = op->uids, .n = op->n_uids, .move = move, .quota = !move,
		.new_uids = op->new_uids, .uidvalidity_r = &op->target_uidvalidity, .done_r = &op->done,
	};
	return store__op_xfer(c, op->mailbox, op->target, &x);
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
	struct store__op_ctx c = { .st = st, .op = op };
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
	case STORE_OP_CREATE: op->result = store__op_create(&c); break;
	case STORE_OP_DELETE: op->result = store__op_delete(&c); break;
	case STORE_OP_RENAME: op->result = store__op_rename(&c); break;
	case STORE_OP_SUBSCRIBE: op->result = store__op_subscribe(&c, true); break;
	case STORE_OP_UNSUBSCRIBE: op->result = store__op_subscribe(&c, false); break;
	default:
		/* Every kind is handled above: only a caller's bad value gets here. */
		log_error("store: unknown operation kind %d", (int)op->kind);
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
			const char *base = store__op_dir_base(trash);
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
