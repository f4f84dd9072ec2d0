/*
 * The store's writer thread and the delivery path.
 *
 * A batch, in the order that keeps contract 3 true:
 *   1. one LMDB write transaction for the whole batch;
 *   2. per delivery: find or create each recipient's mailbox, check quota,
 *      and stream the spool file once - into the delivery log record and
 *      into a tmp/ file (hard links for the other recipients);
 *      an error here fails that delivery with nothing visible;
 *   3. ONE fdatasync of the log for the batch (large messages that bypass
 *      the log were fsynced in step 2 instead);
 *   4. rename tmp/ -> new/, index records, dovecot-uidlist lines;
 *   5. commit, then hand the batch to the loop for the callbacks.
 * When the writer has been idle for a moment (or the log is full), a
 * checkpoint syncs the mail file systems and starts the log over.
 *
 * What this thread must never do: call anything of libuv but the
 * thread-safe uv_async_send and the mutex/cond, or touch loop-side state
 * (watches, callbacks).
 */
#include "maildir/store.h"

#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/fileio.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "maildir/dlog.h"
#include "maildir/index.h"
#include "maildir/layout.h"
#include "maildir/mdname.h"
#include "maildir/store_private.h"
#include "mime/mime_parse.h"
#include "mime/mime_serial.h"

/* The writer checkpoints after this much idleness (ms). */
#define STORE_IDLE_CHECKPOINT_MS 50
/* Spool data moves in chunks of this size. */
#define STORE_CHUNK (64 * 1024)
/* Messages up to this size get their MIME structure parsed while the
 * writer streams them anyway, and cached with the index record (IMAP
 * FETCH ENVELOPE/BODYSTRUCTURE then never opens the file). Larger ones are
 * parsed at their first FETCH instead, so a big attachment does not hold
 * up the batch behind it. */
#define STORE_CACHE_PARSE_MAX (64 * 1024)
/* Largest serialized structure stored with a delivery. */
#define STORE_CACHE_RECORD_MAX (1024 * 1024)

enum { STORE_JOB_DELIVERY = 1, STORE_JOB_OPEN, STORE_JOB_OP, STORE_JOB_CACHE };

#define STORE_CONTAINER(ptr, type, member) ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

const char *store_result_name(enum store_result r)
{
	switch (r) {
	case STORE_OK: return "delivered";
	case STORE_OVER_QUOTA: return "over quota";
	case STORE_TOO_BIG_FOR_QUOTA: return "larger than the quota";
	case STORE_TEMPFAIL: return "temporary failure";
	case STORE_NO_MAILBOX: return "no such mailbox";
	case STORE_EXISTS: return "mailbox exists";
	case STORE_NOT_ALLOWED: return "not allowed";
	}
	return "?";
}

static uint64_t store_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------------- */
/* Per-recipient work inside a batch                                 */

struct store_target {
	struct store_rcpt *r;
	char *dir;                 /* the mailbox directory */
	char *tmp_path;
	char *name;                /* final file name in new/ */
	struct idx_mailbox mb;
};

struct store_work {
	struct store_delivery *d;
	struct store_target *t;    /* one per recipient */
	bool direct;               /* too big for the log: fsynced files */
	bool logged;
	bool reserved;             /* quota counted for the accepted recipients */
	int fd;                    /* the unnamed message file, or -1 (tmp/ files) */
	struct buf tree;           /* the serialized MIME structure, or empty */
};

static void store_target_clear(struct store_target *t, bool unlink_tmp)
{
	if (unlink_tmp && t->tmp_path != NULL)
		unlink(t->tmp_path);
	free(t->dir);
	free(t->tmp_path);
	free(t->name);
	t->dir = t->tmp_path = t->name = NULL;
}

/* A Maildir unique name: time, then what makes it unique on this host
 * (microseconds, pid, a counter), then the host, then the sizes that save
 * POP3 and IMAP a stat() (Dovecot's ,S= and ,W=). */
char *store__unique_name(struct store *st, uint64_t size, uint64_t vsize)
{
	struct timeval tv;
	char name[MDNAME_MAX + 1];

	gettimeofday(&tv, NULL);
	struct mdname_unique u = {
		.sec = (uint64_t)tv.tv_sec, .usec = (uint32_t)tv.tv_usec, .pid = (uint32_t)getpid(),
		.counter = ++st->counter, .host = st->cfg->hostname,
	};
	if (mdname_new(name, sizeof(name), &u, size, vsize) < 0)
		abort(); /* MDNAME_MAX always fits: the host part is truncated */
	return xstrdup(name);
}

/* Remember the file system of a Maildir so the next checkpoint syncs it. */
void store__touch_dir(struct store *st, const char *dir)
{
	struct stat sb;
	if (stat(dir, &sb) < 0)
		return;
	for (size_t i = 0; i < st->n_fs; i++)
		if (st->fs[i].dev == sb.st_dev) {
			st->fs[i].dirty = true;
			return;
		}
	if (st->n_fs == STORE_MAX_FS) {
		st->fs_overflow = true; /* more file systems than slots: sync() */
		return;
	}
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	st->fs[st->n_fs].dev = sb.st_dev;
	st->fs[st->n_fs].fd = fd;
	st->fs[st->n_fs].dirty = true;
	st->n_fs++;
}

int store__checkpoint(struct store *st, char **error_r)
{
	if (!dlog_dirty(st->log) && !st->fs_overflow)
		return 0;
	/* syncfs() flushes every dirty file and directory of one file system
	 * in one call, and since Linux 5.8 reports writeback errors. */
	for (size_t i = 0; i < st->n_fs; i++) {
		if (!st->fs[i].dirty)
			continue;
		if (syncfs(st->fs[i].fd) < 0) {
			*error_r = xasprintf("checkpoint: syncfs: %s", strerror(errno));
			return -1;
		}
		st->fs[i].dirty = false;
	}
	if (st->fs_overflow) {
		sync();
		st->fs_overflow = false;
	}
	return dlog_reset(st->log, error_r);
}

/* Count the message: its size, and its size with every bare LF as CRLF
 * (what POP3 and IMAP report). */
static void store_count(const char *p, size_t n, uint64_t *vsize, char *prev)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\n' && *prev != '\r')
			(*vsize)++;
		*prev = p[i];
	}
}

/* Append the record's tail: which files this message became. Layout after
 * the message data: u32 count, then per recipient "account\0maildir\0
 * mailbox\0name\0", then u64 internal date, u32 flags, u32 tail length. */
static int store_log_tail(struct store *st, struct dlog_rec *rec, struct store_work *w, char **error_r)
{
	size_t cap = 64, len = 4;
	unsigned count = 0;
	char *tail = xmalloc(cap);

	for (size_t i = 0; i < w->d->n_rcpts; i++) {
		struct store_target *t = &w->t[i];
		if (t->r->result != STORE_OK)
			continue;
		const char *parts[4] = { t->r->account, t->r->maildir, t->r->mailbox, t->name };
		for (int k = 0; k < 4; k++) {
			size_t n = strlen(parts[k]) + 1;
			if (len + n + 16 > cap) {
				while (len + n + 16 > cap)
					cap *= 2;
				tail = xrealloc(tail, cap);
			}
			memcpy(tail + len, parts[k], n);
			len += n;
		}
		count++;
	}
	memcpy(tail, &count, 4);
	int64_t date = w->d->internal_date;
	memcpy(tail + len, &date, 8);
	memcpy(tail + len + 8, &w->d->flags, 4);
	len += 12;
	uint32_t tail_len = (uint32_t)len + 4;
	memcpy(tail + len, &tail_len, 4);
	len += 4;
	int rc = dlog_write(st->log, rec, tail, len, error_r);
	free(tail);
	return rc;
}

static void store_close_unnamed(struct store_work *w)
{
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
}

/* Count (or, with a negative size, uncount) a message against the
 * recipient's quota inside the batch's transaction. */
static int store_reserve(struct store *st, MDB_txn *txn, struct store_rcpt *r, int64_t size)
{
	char *error = NULL;
	if (idx_usage_add(txn, st->db, r->account, size, size < 0 ? -1 : 1, &error) < 0) {
		log_error("store: %s", error);
		free(error);
		r->result = STORE_TEMPFAIL;
		return -1;
	}
	return 0;
}

/* A delivery failed after its recipients were accepted: nothing of it may
 * stay - no tmp files, no quota counted. */
static void store_fail_work(struct store *st, MDB_txn *txn, struct store_work *w)
{
	for (size_t i = 0; i < w->d->n_rcpts; i++) {
		struct store_rcpt *r = &w->d->rcpts[i];
		if (r->result == STORE_OK) {
			if (w->reserved)
				store_reserve(st, txn, r, -(int64_t)w->d->size);
			r->result = STORE_TEMPFAIL;
		}
		store_target_clear(&w->t[i], true);
	}
	w->reserved = false;
	store_close_unnamed(w);
}

/* Open an unnamed file (O_TMPFILE) in the first recipient's new/, to be
 * given its names by linkat() once the batch is durable. That saves a
 * directory entry in tmp/ and a rename per message, and a crash leaves no
 * leftovers at all. Only when every recipient's Maildir is on the same file
 * system (hard links cannot cross). Returns the fd (also kept in w->fd), or
 * -1 to use tmp/. */
static int store_open_unnamed(struct store_work *w, struct store_target *first)
{
	struct stat a, b;

	w->fd = -1;
	if (stat(first->dir, &a) < 0)
		return -1;
	for (size_t i = 0; i < w->d->n_rcpts; i++) {
		struct store_target *t = &w->t[i];
		if (t->r->result == STORE_OK && t != first && (stat(t->dir, &b) < 0 || b.st_dev != a.st_dev))
			return -1;
	}
	char *newdir = xasprintf("%s/new", first->dir);
	w->fd = open(newdir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
	free(newdir);
	return w->fd;
}

/* Give the unnamed file of w its name in a recipient's new/. */
static int store_link_unnamed(struct store_work *w, const char *final)
{
	/* AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; /proc/self/fd works for
	 * anyone where /proc is mounted. */
	if (linkat(w->fd, "", AT_FDCWD, final, AT_EMPTY_PATH) == 0)
		return 0;
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", w->fd);
	return linkat(AT_FDCWD, proc, AT_FDCWD, final, AT_SYMLINK_FOLLOW);
}


/* Step 2 for one delivery: mailboxes, quota, tmp files and the log record. */
static void store_prepare(struct store *st, MDB_txn *txn, struct store_work *w, bool *log_full)
{
	struct store_delivery *d = w->d;
	char *error = NULL;
	int fd = open(d->spool_path, O_RDONLY | O_CLOEXEC);
	struct stat sb;

	if (fd < 0 || fstat(fd, &sb) < 0) {
		log_error("store: spool %s: %s", d->spool_path, strerror(errno));
		for (size_t i = 0; i < d->n_rcpts; i++)
			d->rcpts[i].result = STORE_TEMPFAIL;
		if (fd >= 0)
			close(fd);
		return;
	}
	d->size = (uint64_t)sb.st_size;
	if (d->internal_date == 0)
		d->internal_date = (int64_t)time(NULL);
	w->direct = d->size > st->cfg->delivery_log_size / 4;

	/* Mailboxes and quota, per recipient. */
	size_t ok = 0;
	for (size_t i = 0; i < d->n_rcpts; i++) {
		struct store_rcpt *r = &d->rcpts[i];
		struct store_target *t = &w->t[i];
		r->result = store__mailbox_ensure(st, txn, r->account, r->maildir, r->mailbox,
						  r->create_mailbox, &t->dir, &t->mb, &error);
		if (r->result != STORE_OK) {
			if (error != NULL)
				log_error("store: %s", error);
			free(error);
			error = NULL;
			continue;
		}
		uint64_t used_bytes, used_msgs;
		if (idx_usage_get(txn, st->db, r->account, &used_bytes, &used_msgs, &error) < 0) {
			log_error("store: %s", error);
			free(error);
			error = NULL;
			r->result = STORE_TEMPFAIL;
			continue;
		}
		if ((r->quota_bytes && d->size > r->quota_bytes))
			r->result = STORE_TOO_BIG_FOR_QUOTA;
		else if ((r->quota_bytes && used_bytes + d->size > r->quota_bytes) ||
			 (r->quota_messages && used_msgs + 1 > r->quota_messages))
			r->result = STORE_OVER_QUOTA;
		else if (store_reserve(st, txn, r, (int64_t)d->size) == 0)
			ok++; /* counted now, so the rest of the batch sees it */
	}
	if (ok == 0) {
		close(fd);
		return;
	}
	w->reserved = true;

	/* Stream the spool once: into the log record and into the first
	 * recipient's tmp/ file. */
	struct dlog_rec rec;
	w->logged = false;
	if (!w->direct) {
		/* The tail names each file: bounded by the strings plus a
		 * file name (at most 255 octets) per recipient. */
		uint64_t tail_max = 64;
		for (size_t i = 0; i < d->n_rcpts; i++)
			tail_max += strlen(d->rcpts[i].account) + strlen(d->rcpts[i].maildir) +
				    strlen(d->rcpts[i].mailbox) + 260;
		if (dlog_begin(st->log, d->size + tail_max, &rec) != 0) {
			*log_full = true;
			close(fd);
			/* Tried again in the next sub-batch: give the quota
			 * back, it is counted again then. */
			store_fail_work(st, txn, w);
			return;
		}
	}
	struct store_target *first = NULL;
	for (size_t i = 0; i < d->n_rcpts && first == NULL; i++)
		if (d->rcpts[i].result == STORE_OK)
			first = &w->t[i];
	int out = store_open_unnamed(w, first);
	if (out < 0) {
		/* No O_TMPFILE here (or recipients on several file systems):
		 * the classic Maildir way, tmp/ then rename. */
		char *tmp_name = store__unique_name(st, d->size, 0);
		first->tmp_path = xasprintf("%s/tmp/%s", first->dir, tmp_name);
		free(tmp_name);
		out = open(first->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	}
	uint64_t vsize = 0, done = 0;
	char prev = 0;
	char *chunk = st->chunk;
	bool failed = out < 0;
	struct mime_parser *parser = d->size <= STORE_CACHE_PARSE_MAX ? mime_parser_new(NULL) : NULL;
	if (failed)
		log_error("store: %s: %s", first->tmp_path ? first->tmp_path : first->dir, strerror(errno));
	while (!failed && done < d->size) {
		ssize_t n = pread(fd, chunk, STORE_CHUNK, (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			log_error("store: spool %s: %s", d->spool_path, n < 0 ? strerror(errno) : "shrank");
			failed = true;
			break;
		}
		store_count(chunk, (size_t)n, &vsize, &prev);
		if (parser != NULL)
			mime_parser_feed(parser, chunk, (size_t)n);
		if (fileio_write_all(out, chunk, (size_t)n) < 0) {
			/* ENOSPC, EDQUOT, EIO: a transient local error. */
			log_error("store: %s: %s", first->dir, strerror(errno));
			failed = true;
			break;
		}
		if (!w->direct && dlog_write(st->log, &rec, chunk, (size_t)n, &error) < 0) {
			log_error("store: %s", error);
			free(error);
			error = NULL;
			failed = true;
			break;
		}
		done += (uint64_t)n;
	}
	d->vsize = d->size + vsize;
	close(fd);
	if (parser != NULL && !failed) {
		struct mime_tree *tree = mime_parser_finish(&parser);
		buf_free(&w->tree);
		buf_init(&w->tree, STORE_CACHE_RECORD_MAX);
		if (mime_tree_serialize(tree, &w->tree) < 0)
			buf_free(&w->tree);
		mime_tree_free(&tree);
	}
	mime_parser_free(&parser);
	if (!failed && w->direct && fsync(out) < 0) {
		log_error("store: fsync in %s: %s", first->dir, strerror(errno));
		failed = true;
	}
	if (w->fd < 0 && out >= 0 && close(out) < 0 && !failed) {
		log_error("store: close %s: %s", first->tmp_path, strerror(errno));
		failed = true;
	}

	/* The other recipients share the file through hard links: made from
	 * the unnamed file at commit time, or here from the tmp/ file. */
	for (size_t i = 0; i < d->n_rcpts && !failed; i++) {
		struct store_target *t = &w->t[i];
		if (d->rcpts[i].result != STORE_OK)
			continue;
		t->name = store__unique_name(st, d->size, d->vsize);
		if (t == first || w->fd >= 0)
			continue;
		t->tmp_path = xasprintf("%s/tmp/%s", t->dir, t->name);
		if (link(first->tmp_path, t->tmp_path) < 0) {
			log_error("store: link %s: %s", t->tmp_path, strerror(errno));
			failed = true;
		}
	}
	if (!failed && !w->direct) {
		if (store_log_tail(st, &rec, w, &error) < 0 || dlog_end(st->log, &rec, &error) < 0) {
			log_error("store: %s", error);
			free(error);
			error = NULL;
			failed = true;
		} else {
			w->logged = true;
		}
	}
	if (failed)
		store_fail_work(st, txn, w);
}

/* Step 4 for one delivery: make the files visible and index them. */
static void store_commit_files(struct store *st, MDB_txn *txn, struct store_work *w)
{
	struct store_delivery *d = w->d;
	char *error = NULL;

	for (size_t i = 0; i < d->n_rcpts; i++) {
		struct store_rcpt *r = &d->rcpts[i];
		struct store_target *t = &w->t[i];
		if (r->result != STORE_OK)
			continue;
		char *final = xasprintf("%s/new/%s", t->dir, t->name);
		int rc = w->fd >= 0 ? store_link_unnamed(w, final) : rename(t->tmp_path, final);
		if (rc < 0) {
			log_error("store: rename %s: %s", final, strerror(errno));
			free(final);
			store_reserve(st, txn, r, -(int64_t)d->size);
			r->result = STORE_TEMPFAIL;
			store_target_clear(t, true);
			continue;
		}
		free(final);
		/* Our own change moves new/'s mtime: record it so the next
		 * delivery does not take it for another program's change
		 * and rescan the folder. */
		char *newdir_m = xasprintf("%s/new", t->dir);
		t->mb.new_mtime_ns = store__mtime_ns(newdir_m);
		free(newdir_m);
		if (w->direct) {
			char *newdir = xasprintf("%s/new", t->dir);
			int dfd = open(newdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (dfd < 0 || fsync(dfd) < 0)
				log_error("store: fsync %s: %s", newdir, strerror(errno));
			if (dfd >= 0)
				close(dfd);
			free(newdir);
		}
		store__touch_dir(st, t->dir);

		/* The message is delivered from here on, whatever the index
		 * says: if indexing fails, reconciliation adds it later. */
		struct idx_message m = {
			.uid = t->mb.uidnext,
			.flags = d->flags,
			.in_new = true,
			.modseq = t->mb.modseq + 1,
			.size = d->size,
			.vsize = d->vsize,
			.internal_date = d->internal_date,
			.name = t->name,
		};
		t->mb.uidnext++;
		t->mb.modseq++;
		t->mb.count++;
		t->mb.bytes += d->size;
		if (!(d->flags & IDX_SEEN))
			t->mb.unseen++;
		if (idx_message_put(txn, st->db, t->mb.id, &m, &error) < 0 ||
		    idx_mailbox_put(txn, st->db, r->account, r->mailbox, &t->mb, &error) < 0) {
			log_error("store: %s", error);
			free(error);
			error = NULL;
			st->index_failed = true;
			continue;
		}
		if (buf_len(&w->tree) > 0 &&
		    idx_mimecache_put(txn, st->db, t->mb.id, m.uid, buf_ptr(&w->tree), buf_len(&w->tree), &error) < 0) {
			log_error("store: %s", error);
			free(error);
			error = NULL;
			st->index_failed = true;
			continue;
		}
		r->uidvalidity = t->mb.uidvalidity;
		r->uid = m.uid;
		store__uidlist_note(st, t->dir, &t->mb, m.uid, t->name, d->size, d->vsize);
		/* Later deliveries of the same batch to this mailbox must see
		 * the new uidnext: refresh the others' copies. */
		for (struct store_work *o = st->batch; o < st->batch + st->batch_len; o++)
			for (size_t k = 0; k < o->d->n_rcpts; k++)
				if (o->t[k].dir != NULL && o->t[k].mb.id == t->mb.id && &o->t[k] != t)
					o->t[k].mb = t->mb;
	}
}

static void store_process(struct store *st, struct store_delivery *list)
{
	size_t n = 0;
	for (struct store_delivery *d = list; d; d = d->next)
		n++;
	struct store_work *works = xcalloc(n, sizeof(*works));
	size_t i = 0;
	for (struct store_delivery *d = list; d; d = d->next, i++) {
		works[i].d = d;
		works[i].t = xcalloc(d->n_rcpts ? d->n_rcpts : 1, sizeof(struct store_target));
		works[i].fd = -1;
		for (size_t k = 0; k < d->n_rcpts; k++)
			works[i].t[k].r = &d->rcpts[k];
	}

	/* Sub-batches: when the log fills up, finish what is in it,
	 * checkpoint, and go on with the rest. */
	size_t start = 0;
	while (start < n) {
		MDB_txn *txn = NULL;
		char *error = NULL;
		int rc = mdb_txn_begin(st->db->env, NULL, 0, &txn);
		if (rc != 0) {
			log_error("store: index: %s", mdb_strerror(rc));
			for (size_t k = start; k < n; k++)
				for (size_t j = 0; j < works[k].d->n_rcpts; j++)
					works[k].d->rcpts[j].result = STORE_TEMPFAIL;
			break;
		}
		st->batch = works + start;
		size_t end = start;
		bool log_full = false;
		while (end < n) {
			st->batch_len = end - start;
			store_prepare(st, txn, &works[end], &log_full);
			if (log_full)
				break;
			end++;
		}
		st->batch_len = end - start;
		if (end == start && log_full) {
			/* Not even one fits behind the records already there:
			 * checkpoint and try again - once, on an empty log. */
			mdb_txn_abort(txn);
			bool was_empty = !dlog_dirty(st->log);
			if (was_empty || store__checkpoint(st, &error) < 0) {
				log_error("store: %s", error ? error : "a delivery does not fit the empty log");
				free(error);
				error = NULL;
				for (size_t j = 0; j < works[start].d->n_rcpts; j++)
					works[start].d->rcpts[j].result = STORE_TEMPFAIL;
				start++;
			}
			continue;
		}
		bool synced = true;
		if (dlog_dirty(st->log) && dlog_sync(st->log, &error) < 0) {
			/* The state of the records is unknown: make sure they
			 * are never replayed, and fail them all. */
			log_error("store: %s", error);
			free(error);
			error = NULL;
			if (dlog_reset(st->log, &error) < 0) {
				log_error("store: %s", error);
				free(error);
				error = NULL;
			}
			synced = false;
		}
		for (size_t k = start; k < end; k++) {
			if (!synced && works[k].logged) {
				store_fail_work(st, txn, &works[k]);
				continue;
			}
			store_commit_files(st, txn, &works[k]);
			store_close_unnamed(&works[k]);
		}
		rc = mdb_txn_commit(txn);
		if (rc != 0) {
			/* Files are visible and durable (log or fsync); the
			 * index catches up by reconciliation. */
			log_error("store: index commit: %s; reconciling later", mdb_strerror(rc));
			st->index_failed = true;
			for (size_t k = start; k < end; k++)
				for (size_t j = 0; j < works[k].d->n_rcpts; j++)
					works[k].d->rcpts[j].uid = 0;
		}
		store__uidlist_flush(st);
		start = end;
		if (log_full && store__checkpoint(st, &error) < 0) {
			log_error("store: %s", error);
			free(error);
		}
	}

	for (size_t k = 0; k < n; k++) {
		struct store_delivery *d = works[k].d;
		bool any_ok = false, any_temp = false;
		for (size_t j = 0; j < d->n_rcpts; j++) {
			any_ok |= d->rcpts[j].result == STORE_OK;
			any_temp |= d->rcpts[j].result == STORE_TEMPFAIL;
			store_target_clear(&works[k].t[j], false);
		}
		store_close_unnamed(&works[k]);
		buf_free(&works[k].tree);
		d->result = any_temp ? STORE_TEMPFAIL : any_ok ? STORE_OK :
			    d->n_rcpts ? d->rcpts[0].result : STORE_OK;
		free(works[k].t);
	}
	st->batch = NULL;
	st->batch_len = 0;
	free(works);
}

/* Writer side of a mailbox open: one transaction, reconcile, report. */
static void store_run_open(struct store *st, struct store_open_req *r)
{
	MDB_txn *txn;
	char *error = NULL, *dir = NULL;
	struct idx_mailbox mb;
	int rc = mdb_txn_begin(st->db->env, NULL, 0, &txn);

	if (rc != 0) {
		log_error("store: index: %s", mdb_strerror(rc));
		r->result = STORE_TEMPFAIL;
		return;
	}
	r->result = store__mailbox_ensure(st, txn, r->account, r->maildir, r->mailbox, false, &dir, &mb, &error);
	if (r->result == STORE_OK && (rc = mdb_txn_commit(txn)) != 0) {
		log_error("store: index commit: %s", mdb_strerror(rc));
		r->result = STORE_TEMPFAIL;
	} else if (r->result != STORE_OK) {
		if (error != NULL)
			log_error("store: %s", error);
		mdb_txn_abort(txn);
	}
	free(error);
	free(dir);
	if (r->result == STORE_OK) {
		r->uidvalidity = mb.uidvalidity;
		r->uidnext = mb.uidnext;
		r->count = mb.count;
		r->unseen = mb.unseen;
		r->bytes = mb.bytes;
		r->mailbox_id = mb.id;
	}
}

/* Writer side of a cache put: one transaction for the batch. */
static void store_run_cache(struct store *st, struct store_cache_put *r)
{
	MDB_txn *txn;
	char *error = NULL;
	int rc = mdb_txn_begin(st->db->env, NULL, 0, &txn);

	r->written = 0;
	if (rc != 0) {
		log_error("store: index: %s", mdb_strerror(rc));
		return;
	}
	for (size_t i = 0; i < r->n; i++) {
		struct store_cache_entry *e = &r->entries[i];
		struct idx_message m = { 0 };
		rc = idx_message_get(txn, st->db, e->mailbox_id, e->uid, &m, &error);
		idx_message_clear(&m);
		if (rc == 0)
			rc = idx_mimecache_put(txn, st->db, e->mailbox_id, e->uid, e->data, e->len, &error);
		if (rc < 0) {
			log_error("store: %s", error);
			free(error);
			mdb_txn_abort(txn);
			r->written = 0;
			return;
		}
		if (rc == 0)
			r->written++;
	}
	if ((rc = mdb_txn_commit(txn)) != 0) {
		log_error("store: index commit: %s", mdb_strerror(rc));
		r->written = 0;
	}
}

/* Run a list of jobs in order; runs of deliveries go as one batch. */
static void store_run_jobs(struct store *st, struct store_job *jobs)
{
	while (jobs != NULL) {
		if (jobs->kind == STORE_JOB_OPEN) {
			store_run_open(st, STORE_CONTAINER(jobs, struct store_open_req, job));
			jobs = jobs->next;
			continue;
		}
		if (jobs->kind == STORE_JOB_OP) {
			store__run_op(st, STORE_CONTAINER(jobs, struct store_op, job));
			jobs = jobs->next;
			continue;
		}
		if (jobs->kind == STORE_JOB_CACHE) {
			store_run_cache(st, STORE_CONTAINER(jobs, struct store_cache_put, job));
			jobs = jobs->next;
			continue;
		}
		struct store_delivery *head = NULL, **tail = &head;
		while (jobs != NULL && jobs->kind == STORE_JOB_DELIVERY) {
			struct store_delivery *d = STORE_CONTAINER(jobs, struct store_delivery, job);
			d->next = NULL;
			*tail = d;
			tail = &d->next;
			jobs = jobs->next;
		}
		store_process(st, head);
	}
}

static void store_writer(void *arg)
{
	struct store *st = arg;
	char *error = NULL;

	uv_mutex_lock(&st->lock);
	for (;;) {
		if (st->pending == NULL) {
			if (st->stop)
				break;
			if (dlog_dirty(st->log)) {
				int rc = uv_cond_timedwait(&st->cond, &st->lock,
							   (uint64_t)STORE_IDLE_CHECKPOINT_MS * 1000000u);
				if (rc == UV_ETIMEDOUT && st->pending == NULL) {
					uv_mutex_unlock(&st->lock);
					if (store__checkpoint(st, &error) < 0) {
						log_error("store: %s", error);
						free(error);
						error = NULL;
					}
					uv_mutex_lock(&st->lock);
				}
			} else {
				uv_cond_wait(&st->cond, &st->lock);
			}
			continue;
		}
		struct store_job *batch = st->pending;
		st->pending = NULL;
		st->pending_tail = &st->pending;
		uv_mutex_unlock(&st->lock);

		store_run_jobs(st, batch);

		uv_mutex_lock(&st->lock);
		*st->done_tail = batch;
		while (*st->done_tail != NULL)
			st->done_tail = &(*st->done_tail)->next;
		uv_mutex_unlock(&st->lock);
		uv_async_send(&st->async);
		uv_mutex_lock(&st->lock);
	}
	uv_mutex_unlock(&st->lock);
	if (store__checkpoint(st, &error) < 0) {
		log_error("store: %s", error);
		free(error);
	}
}

/* On the loop: run the callbacks of finished jobs. */
static void store_done(uv_async_t *a)
{
	struct store *st = a->data;

	uv_mutex_lock(&st->lock);
	struct store_job *list = st->done;
	st->done = NULL;
	st->done_tail = &st->done;
	uv_mutex_unlock(&st->lock);

	uint64_t now = store_now_ms();
	while (list != NULL) {
		struct store_job *job = list;
		list = job->next;
		job->next = NULL;
		if (--st->busy == 0)
			uv_unref((uv_handle_t *)&st->async);
		if (job->kind == STORE_JOB_OPEN) {
			struct store_open_req *r = STORE_CONTAINER(job, struct store_open_req, job);
			r->cb(r);
			continue;
		}
		if (job->kind == STORE_JOB_OP) {
			struct store_op *op = STORE_CONTAINER(job, struct store_op, job);
			store__op_notify(st, op);
			op->cb(op);
			continue;
		}
		if (job->kind == STORE_JOB_CACHE) {
			struct store_cache_put *r = STORE_CONTAINER(job, struct store_cache_put, job);
			r->cb(r);
			continue;
		}
		struct store_delivery *d = STORE_CONTAINER(job, struct store_delivery, job);
		d->durable_ms = now - d->queued_ms;
		for (size_t i = 0; i < d->n_rcpts; i++)
			if (d->rcpts[i].result == STORE_OK && d->rcpts[i].uid != 0)
				store__notify(st, d->rcpts[i].account, d->rcpts[i].mailbox, STORE_EVENT_NEW,
					      d->rcpts[i].uid, d->rcpts[i].uid);
		d->cb(d);
	}
}

static void store_enqueue(struct store *st, struct store_job *job)
{
	job->next = NULL;
	if (st->busy++ == 0)
		uv_ref((uv_handle_t *)&st->async);
	uv_mutex_lock(&st->lock);
	*st->pending_tail = job;
	st->pending_tail = &job->next;
	uv_cond_signal(&st->cond);
	uv_mutex_unlock(&st->lock);
}

int store_deliver(struct store *st, struct store_delivery *d)
{
	d->result = STORE_TEMPFAIL;
	d->queued_ms = store_now_ms();
	for (size_t i = 0; i < d->n_rcpts; i++) {
		d->rcpts[i].result = STORE_TEMPFAIL;
		d->rcpts[i].uid = 0;
	}
	d->job.kind = STORE_JOB_DELIVERY;
	store_enqueue(st, &d->job);
	return 0;
}

int store_op(struct store *st, struct store_op *op)
{
	op->result = STORE_TEMPFAIL;
	op->new_uids = NULL;
	op->target_uidvalidity = 0;
	op->done = 0;
	op->job.kind = STORE_JOB_OP;
	store_enqueue(st, &op->job);
	return 0;
}

void store_op_clear(struct store_op *op)
{
	free(op->new_uids);
	op->new_uids = NULL;
}

int store_mailbox_open(struct store *st, struct store_open_req *r)
{
	r->result = STORE_TEMPFAIL;
	r->job.kind = STORE_JOB_OPEN;
	store_enqueue(st, &r->job);
	return 0;
}

int store_cache_put(struct store *st, struct store_cache_put *r)
{
	r->written = 0;
	r->job.kind = STORE_JOB_CACHE;
	store_enqueue(st, &r->job);
	return 0;
}

struct db *store_db(struct store *st)
{
	return st->db;
}

unsigned store_busy(const struct store *st)
{
	return st->busy;
}

void store_watch(struct store *st, struct store_watch *w)
{
	w->next = st->watches;
	st->watches = w;
}

void store_unwatch(struct store *st, struct store_watch *w)
{
	for (struct store_watch **p = &st->watches; *p; p = &(*p)->next) {
		if (*p == w) {
			*p = w->next;
			w->next = NULL;
			return;
		}
	}
}

void store__notify(struct store *st, const char *account, const char *mailbox, enum store_event ev,
		   uint32_t first, uint32_t last)
{
	for (struct store_watch *w = st->watches, *next; w; w = next) {
		next = w->next; /* a watcher may unwatch itself */
		if (strcasecmp(w->account, account) == 0 && strcmp(w->mailbox, mailbox) == 0)
			w->fn(w, ev, first, last);
	}
}

int store_open(uv_loop_t *loop, const struct config *cfg, struct db *db, struct store **st_r,
	       char **error_r)
{
	struct store *st = xcalloc(1, sizeof(*st));

	st->loop = loop;
	st->cfg = cfg;
	st->db = db;
	st->pending_tail = &st->pending;
	st->done_tail = &st->done;
	st->chunk = xmalloc(STORE_CHUNK);
	st->mail_root = xasprintf("%s/mail", cfg->data_dir);

	if (layout_mkdirs(st->mail_root) < 0) {
		*error_r = xasprintf("%s: %s", st->mail_root, strerror(errno));
		goto fail;
	}
	char *log_path = xasprintf("%s/delivery.log", cfg->data_dir);
	int rc = dlog_open(log_path, cfg->delivery_log_size, &st->log, error_r);
	free(log_path);
	if (rc < 0)
		goto fail;
	if (store__recover(st, error_r) < 0)
		goto fail;
	store__clean_tmp(st, st->mail_root);

	uv_mutex_init(&st->lock);
	uv_cond_init(&st->cond);
	uv_async_init(loop, &st->async, store_done);
	st->async.data = st;
	/* The store keeps the loop running only while it has work queued
	 * (see store_enqueue and store_done), so an idle store never holds
	 * up a shutdown. */
	uv_unref((uv_handle_t *)&st->async);
	if (uv_thread_create(&st->thread, store_writer, st) != 0) {
		*error_r = xstrdup("store: cannot start the writer thread");
		uv_close((uv_handle_t *)&st->async, NULL);
		goto fail;
	}
	*st_r = st;
	return 0;
fail:
	dlog_close(&st->log);
	free(st->chunk);
	free(st->mail_root);
	free(st);
	return -1;
}

static void store_async_closed(uv_handle_t *h)
{
	(void)h;
}

void store_close(struct store **stp)
{
	struct store *st = *stp;

	if (st == NULL)
		return;
	*stp = NULL;
	uv_mutex_lock(&st->lock);
	st->stop = true;
	uv_cond_signal(&st->cond);
	uv_mutex_unlock(&st->lock);
	uv_thread_join(&st->thread);
	store_done(&st->async); /* callbacks of the last batch */
	uv_close((uv_handle_t *)&st->async, store_async_closed);
	uv_run(st->loop, UV_RUN_NOWAIT);
	uv_mutex_destroy(&st->lock);
	uv_cond_destroy(&st->cond);
	for (size_t i = 0; i < st->n_fs; i++)
		close(st->fs[i].fd);
	store__uidlist_flush(st);
	free(st->notes);
	dlog_close(&st->log);
	free(st->chunk);
	free(st->mail_root);
	free(st);
}
