/*
 * The outbound queue's durable half: adding messages (see queue.h).
 */
#include "mta/queue.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "core/log.h"
#include "core/xalloc.h"
#include "core/fileio.h"
#include "smtp/dkim_sign.h"
#include "mta/queue_record.h"

struct queue {
	struct services svc;
	char *dir;
	unsigned pending;
	struct keys *keys;          /* the DKIM keys new jobs sign with */
};

/* A loaded set of DKIM keys, shared by the jobs that sign with it. Worker
 * threads only read it; references are taken and dropped on the loop, so a
 * reload can swap in new keys while older jobs finish with the old ones. */
struct keys {
	struct dkim_keyring ring;
	unsigned refs;
};

static struct keys *keys_load(const struct config *cfg)
{
	struct keys *k = xcalloc(1, sizeof(*k));
	char *error = NULL;

	k->refs = 1;
	if (dkim_keyring_load(cfg->data_dir, cfg->domains, cfg->n_domains, &k->ring, &error) < 0) {
		/* A broken key must not stop mail: it goes out unsigned, and
		 * the log says why. */
		log_error("queue: DKIM keys not loaded, mail goes out unsigned: %s", error);
		free(error);
	}
	return k;
}

static void keys_unref(struct keys **kp)
{
	struct keys *k = *kp;

	*kp = NULL;
	if (k != NULL && --k->refs == 0) {
		dkim_keyring_free(&k->ring);
		free(k);
	}
}

struct queue_add_req {
	uv_work_t work;
	struct queue *q;
	struct keys *keys;          /* a reference, for the worker */
	struct queue_entry e;
	char *spool_path;
	queue_added_cb cb;          /* NULL once cancelled */
	void *arg;
	bool ok;
};

char *queue_file_path(const struct config *cfg, const char *id)
{
	return xasprintf("%s/queue/%s", cfg->data_dir, id);
}

static int fsync_path(const char *path, int flags)
{
	int fd = open(path, flags | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	int saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

/* Write the queue file as the DKIM-Signature fields followed by the
 * message (without our Return-Path line), fsynced. Returns 0 or -1. */
static int queue_write_signed(struct queue_add_req *r, const char *path, const char *fields)
{
	char *tmp = xasprintf("%s.tmp", path);
	int in = open(r->spool_path, O_RDONLY | O_CLOEXEC);
	int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	char chunk[64 * 1024];
	uint64_t off = r->e.body_offset, total = strlen(fields);
	int rc = in >= 0 && out >= 0 && fileio_write_all(out, fields, strlen(fields)) == 0 ? 0 : -1;

	while (rc == 0) {
		ssize_t n = pread(in, chunk, sizeof(chunk), (off_t)off);
		if (n < 0)
			rc = -1;
		if (n <= 0)
			break;
		off += (uint64_t)n;
		total += (uint64_t)n;
		if (fileio_write_all(out, chunk, (size_t)n) < 0)
			rc = -1;
	}
	if (rc == 0 && fsync(out) < 0)
		rc = -1;
	if (out >= 0 && close(out) < 0)
		rc = -1;
	if (in >= 0)
		close(in);
	if (rc == 0 && rename(tmp, path) < 0)
		rc = -1;
	if (rc < 0) {
		log_error("queue %s: writing %s: %s", r->e.id, path, strerror(errno));
		unlink(tmp);
	} else {
		r->e.body_offset = 0;
		r->e.size = total;
	}
	free(tmp);
	return rc;
}

static void queue_add_work(uv_work_t *w)
{
	struct queue_add_req *r = w->data;
	struct queue *q = r->q;
	char *path = queue_file_path(q->svc.cfg, r->e.id);
	char *error = NULL;
	MDB_txn *txn = NULL;
	int rc;

	r->ok = false;
	/* Mail our users submit is signed for the domain of its From
	 * (contract: DKIM as it enters the queue); a failure to sign sends
	 * it unsigned rather than not at all. */
	char *fields = NULL;
	if (r->e.auth_user != NULL && r->keys->ring.n_sets > 0 &&
	    dkim_sign_file(r->spool_path, r->e.body_offset, &r->keys->ring, NULL, time(NULL), "\n", &fields,
			   &error) < 0) {
		log_warn("queue %s: sent unsigned: %s", r->e.id, error);
		free(error);
		error = NULL;
	}
	if (fields != NULL) {
		rc = queue_write_signed(r, path, fields);
		free(fields);
		if (rc < 0)
			goto out;
	} else if (link(r->spool_path, path) < 0) {
		log_error("queue %s: link %s: %s", r->e.id, path, strerror(errno));
		goto out;
	}
	if (fsync_path(path, O_RDONLY) < 0 || fsync_path(q->dir, O_RDONLY | O_DIRECTORY) < 0) {
		log_error("queue %s: fsync: %s", r->e.id, strerror(errno));
		unlink(path);
		goto out;
	}
	if ((rc = mdb_txn_begin(q->svc.db->env, NULL, 0, &txn)) != 0) {
		log_error("queue %s: %s", r->e.id, mdb_strerror(rc));
		unlink(path);
		goto out;
	}
	if (queue_db_put(txn, q->svc.db, &r->e, &error) < 0 || (rc = mdb_txn_commit(txn)) != 0) {
		if (error == NULL)
			error = xasprintf("commit: %s", mdb_strerror(rc));
		else
			mdb_txn_abort(txn);
		log_error("queue %s: %s", r->e.id, error);
		free(error);
		unlink(path);
		goto out;
	}
	r->ok = true;
out:
	free(path);
}

static void queue_add_done(uv_work_t *w, int status)
{
	struct queue_add_req *r = w->data;

	r->q->pending--;
	if (status != 0)
		r->ok = false;
	if (r->ok)
		log_info("queue %s: queued from=<%s> rcpts=%zu size=%llu", r->e.id, r->e.sender, r->e.n_rcpts,
			 (unsigned long long)r->e.size);
	if (r->cb != NULL)
		r->cb(r->arg, r->ok);
	keys_unref(&r->keys);
	queue_entry_free(&r->e);
	free(r->spool_path);
	free(r);
}

void *queue_add(struct queue *q, const char *spool_path, uint64_t body_offset, const struct smtp_envelope *env,
		const struct queue_add_rcpt *rcpts, size_t n_rcpts, queue_added_cb cb, void *arg)
{
	struct queue_add_req *r = xcalloc(1, sizeof(*r));
	struct queue_entry *e = &r->e;

	r->q = q;
	r->keys = q->keys;
	r->keys->refs++;
	r->cb = cb;
	r->arg = arg;
	r->spool_path = xstrdup(spool_path);
	snprintf(e->id, sizeof(e->id), "%s", env->id);
	e->sender = xstrdup(env->sender);
	e->envid = env->envid ? xstrdup(env->envid) : NULL;
	e->auth_user = env->auth_user ? xstrdup(env->auth_user) : NULL;
	e->ret = env->ret;
	e->smtputf8 = env->smtputf8;
	e->eightbit = env->eightbit;
	e->arrival = time(NULL);
	e->size = env->size;
	e->body_offset = body_offset;
	e->rcpts = xcalloc(n_rcpts, sizeof(*e->rcpts));
	e->n_rcpts = n_rcpts;
	for (size_t i = 0; i < n_rcpts; i++) {
		e->rcpts[i].address = xstrdup(rcpts[i].address);
		e->rcpts[i].orcpt = rcpts[i].orcpt ? xstrdup(rcpts[i].orcpt) : NULL;
		e->rcpts[i].notify = rcpts[i].notify;
	}
	r->work.data = r;
	q->pending++;
	uv_queue_work(q->svc.loop, &r->work, queue_add_work, queue_add_done);
	return r;
}

void queue_add_cancel(void *handle)
{
	struct queue_add_req *r = handle;
	/* The message may still be queued; the client that went away will
	 * send it again (a duplicate is better than a loss). */
	if (r != NULL)
		r->cb = NULL;
}

/* Files in DATA/queue/ whose record was never committed: the enqueue did
 * not finish, so the message was never acknowledged. */
static void queue_clean_orphans(struct queue *q)
{
	DIR *d = opendir(q->dir);
	struct dirent *de;
	MDB_txn *txn;

	if (d == NULL || mdb_txn_begin(q->svc.db->env, NULL, MDB_RDONLY, &txn) != 0) {
		if (d != NULL)
			closedir(d);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		MDB_val k = { strlen(de->d_name), de->d_name }, v;
		if (mdb_get(txn, q->svc.db->queue, &k, &v) == MDB_NOTFOUND) {
			log_info("queue: removing %s, never acknowledged", de->d_name);
			unlinkat(dirfd(d), de->d_name, 0);
		}
	}
	mdb_txn_abort(txn);
	closedir(d);
}

int queue_open(const struct services *svc, struct queue **q_r, char **error_r)
{
	struct queue *q = xcalloc(1, sizeof(*q));

	q->svc = *svc;
	q->dir = xasprintf("%s/queue", svc->cfg->data_dir);
	if (mkdir(q->dir, 0700) < 0 && errno != EEXIST) {
		*error_r = xasprintf("%s: %s", q->dir, strerror(errno));
		free(q->dir);
		free(q);
		return -1;
	}
	queue_clean_orphans(q);
	q->keys = keys_load(svc->cfg);
	*q_r = q;
	return 0;
}

void queue_reload_keys(struct queue *q)
{
	keys_unref(&q->keys);
	q->keys = keys_load(q->svc.cfg);
	size_t n = 0;
	for (size_t i = 0; i < q->keys->ring.n_sets; i++)
		n += q->keys->ring.sets[i].n_keys;
	log_info("queue: %zu DKIM key(s) for %zu domain(s)", n, q->keys->ring.n_sets);
}

void queue_close(struct queue **qp)
{
	struct queue *q = *qp;

	if (q == NULL)
		return;
	*qp = NULL;
	keys_unref(&q->keys);
	free(q->dir);
	free(q);
}
