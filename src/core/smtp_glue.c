/*
 * The server's SMTP backend: recipients and senders from the user database,
 * passwords through the shared verifier, message content into a spool file
 * in DATA/spool/, delivery through the store's group commit.
 *
 * The spool is written on the loop with plain write(2): the bytes land in
 * the page cache, and durability comes later from the store's delivery log
 * flush (contract 3), so nothing here waits for the disk.
 */
#include "core/smtp_glue.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/userdb.h"
#include "core/fileio.h"
#include "core/log.h"
#include "core/services.h"
#include "core/xalloc.h"
#include "maildir/index.h"
#include "maildir/store.h"
#include "mta/queue.h"

/* Content is gathered this much before each write(2). */
#define SPOOL_CHUNK (32 * 1024)

struct smtp_backend_real {
	struct smtp_backend b;      /* first: the table handed to sessions */
	struct services svc;
	char *spool_dir;
	struct queue *queue;        /* NULL until outbound delivery runs */
	void (*queued)(void *arg);
	void *queued_arg;
};

struct spool {
	int fd;
	char *path;
	uint64_t written;           /* octets so far */
	uint64_t trace_len;         /* our Return-Path line, not sent on by the queue */
	size_t n;                   /* bytes in buf */
	char buf[SPOOL_CHUNK];
};

struct delivery {
	struct store_delivery d;
	struct smtp_backend_real *be;
	struct spool *spool;
	smtp_deliver_cb cb;         /* NULL once cancelled */
	void *arg;
	size_t n_env_rcpts;
	int waiting;                /* store and queue parts not done yet */
	bool store_started;
	bool queue_failed;
	struct queue_add_rcpt *remote;  /* addresses for the queue */
	char **remote_owned;
	size_t n_remote;
	size_t **rcpt_of;           /* per envelope recipient: its store rcpts */
	size_t *n_rcpt_of;
	const char **outcomes;
	char **accounts;            /* owned strings behind d.rcpts */
	char **maildirs;
};

static bool be_can_relay(void *ctx)
{
	struct smtp_backend_real *be = ctx;
	return be->queue != NULL;
}

static bool be_domain_is_local(void *ctx, const char *domain)
{
	struct smtp_backend_real *be = ctx;
	return userdb_domain_is_local(be->svc.cfg, domain);
}

/* Whether an account is at or over its quota already (a message that
 * would pass it is caught again by the store, which knows the size). */
static int be_account_full(struct smtp_backend_real *be, const char *account)
{
	struct user u;
	char *error = NULL;
	int rc = userdb_get(be->svc.db, account, &u, &error);

	if (rc != 0) {
		free(error);
		return rc < 0 ? -1 : 0;
	}
	uint64_t qb = userdb_quota_bytes(be->svc.cfg, &u), qm = userdb_quota_messages(be->svc.cfg, &u);
	user_free(&u);
	if (qb == 0 && qm == 0)
		return 0;

	MDB_txn *txn;
	uint64_t bytes = 0, messages = 0;
	if (mdb_txn_begin(be->svc.db->env, NULL, MDB_RDONLY, &txn) != 0)
		return -1;
	rc = idx_usage_get(txn, be->svc.db, account, &bytes, &messages, &error);
	mdb_txn_abort(txn);
	if (rc < 0) {
		free(error);
		return -1;
	}
	return (qb != 0 && bytes >= qb) || (qm != 0 && messages >= qm);
}

static enum smtp_rcpt_status be_rcpt_check(void *ctx, const char *address)
{
	struct smtp_backend_real *be = ctx;
	struct resolved r;
	char *error = NULL;

	if (userdb_resolve(be->svc.db, be->svc.cfg, address, &r, &error) < 0) {
		log_error("smtp: looking up <%s>: %s", address, error);
		free(error);
		return SMTP_RCPT_TEMPFAIL;
	}
	enum smtp_rcpt_status st;
	switch (r.status) {
	case RESOLVE_FOUND:
		st = r.n_external > 0 ? SMTP_RCPT_FORWARD : SMTP_RCPT_LOCAL;
		for (size_t i = 0; i < r.n_accounts && st == SMTP_RCPT_LOCAL; i++) {
			int full = be_account_full(be, r.accounts[i]);
			if (full != 0)
				st = full < 0 ? SMTP_RCPT_TEMPFAIL : SMTP_RCPT_FULL;
		}
		break;
	case RESOLVE_NOT_LOCAL:
		st = SMTP_RCPT_REMOTE;
		break;
	default:
		st = r.local ? SMTP_RCPT_UNKNOWN : SMTP_RCPT_REMOTE;
		break;
	}
	resolved_free(&r);
	return st;
}

static int be_sender_owned(void *ctx, const char *account, const char *address)
{
	struct smtp_backend_real *be = ctx;
	struct resolved r;
	char *error = NULL;

	if (strcasecmp(account, address) == 0)
		return 1;
	/* Resolving the sender finds what mail to it reaches: the account
	 * itself with a +tag, an alias of it, its domain's catch-all. */
	if (userdb_resolve(be->svc.db, be->svc.cfg, address, &r, &error) < 0) {
		log_error("smtp: looking up sender <%s>: %s", address, error);
		free(error);
		return -1;
	}
	int owned = 0;
	for (size_t i = 0; r.status == RESOLVE_FOUND && i < r.n_accounts; i++) {
		if (strcasecmp(r.accounts[i], account) == 0)
			owned = 1;
	}
	resolved_free(&r);
	return owned;
}

static void *be_auth_start(void *ctx, const char *user, const char *password, const char *peer,
			   auth_login_cb cb, void *arg)
{
	struct smtp_backend_real *be = ctx;
	return auth_login_start(be->svc.auth, user, password, peer, cb, arg);
}

static void be_auth_cancel(void *ctx, void *handle)
{
	(void)ctx;
	auth_login_cancel(handle);
}

/* ---- Spool ---- */

static void *be_spool_open(void *ctx, const char *id)
{
	struct smtp_backend_real *be = ctx;
	struct spool *sp = xcalloc(1, sizeof(*sp));

	sp->path = xasprintf("%s/%s", be->spool_dir, id);
	sp->fd = open(sp->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (sp->fd < 0) {
		log_error("smtp: creating spool file %s: %s", sp->path, strerror(errno));
		free(sp->path);
		free(sp);
		return NULL;
	}
	return sp;
}

static int spool_flush(struct spool *sp)
{
	if (sp->n == 0)
		return 0;
	if (fileio_write_all(sp->fd, sp->buf, sp->n) < 0) {
		log_error("smtp: writing spool file %s: %s", sp->path, strerror(errno));
		return -1;
	}
	sp->n = 0;
	return 0;
}

static int be_spool_write(void *spool, const void *data, size_t len)
{
	struct spool *sp = spool;
	const char *p = data;

	if (sp->written == 0 && len > 12 && memcmp(data, "Return-Path:", 12) == 0) {
		const char *lf = memchr(data, '\n', len);
		sp->trace_len = lf ? (uint64_t)(lf - p) + 1 : 0;
	}
	sp->written += len;
	while (len > 0) {
		size_t room = sizeof(sp->buf) - sp->n;
		size_t n = len < room ? len : room;
		memcpy(sp->buf + sp->n, p, n);
		sp->n += n;
		p += n;
		len -= n;
		if (sp->n == sizeof(sp->buf) && spool_flush(sp) < 0)
			return -1;
	}
	return 0;
}

static void spool_free(struct spool *sp, bool remove)
{
	if (sp == NULL)
		return;
	if (sp->fd >= 0)
		close(sp->fd);
	if (remove)
		unlink(sp->path);
	free(sp->path);
	free(sp);
}

static void be_spool_discard(void *spool)
{
	spool_free(spool, true);
}

/* ---- Delivery ---- */

static void delivery_free(struct delivery *dv)
{
	spool_free(dv->spool, true);
	for (size_t i = 0; i < dv->d.n_rcpts; i++) {
		free(dv->accounts[i]);
		free(dv->maildirs[i]);
	}
	free(dv->accounts);
	free(dv->maildirs);
	free(dv->d.rcpts);
	for (size_t i = 0; i < dv->n_env_rcpts; i++)
		free(dv->rcpt_of[i]);
	free(dv->rcpt_of);
	free(dv->n_rcpt_of);
	free(dv->outcomes);
	for (size_t i = 0; i < dv->n_remote; i++)
		free(dv->remote_owned[i]);
	free(dv->remote_owned);
	free(dv->remote);
	free(dv);
}

static const char *delivery_outcome(enum store_result r)
{
	switch (r) {
	case STORE_OK: return "delivered";
	case STORE_OVER_QUOTA: return "over-quota";
	case STORE_TOO_BIG_FOR_QUOTA: return "too-big-for-quota";
	default: return "tempfail";
	}
}

/* Worse outcomes win: a retry (4xx) over a refusal over success. */
static int delivery_rank(enum store_result r)
{
	switch (r) {
	case STORE_OK: return 0;
	case STORE_TOO_BIG_FOR_QUOTA: return 1;
	case STORE_OVER_QUOTA: return 2;
	default: return 3;
	}
}

/* Both parts (local store, outbound queue) report here; the reply waits
 * for the last of them. */
static void delivery_finish(struct delivery *dv)
{
	struct store_delivery *d = &dv->d;
	struct smtp_deliver_result res = { .status = SMTP_DELIVERED, .durable_ms = d->durable_ms };
	int worst = dv->queue_failed ? 3 : 0;

	if (--dv->waiting > 0)
		return;
	for (size_t i = 0; i < dv->n_env_rcpts; i++) {
		enum store_result r = STORE_OK;
		int rank = 0;
		if (dv->outcomes[i] != NULL) {
			if (dv->queue_failed)
				dv->outcomes[i] = "tempfail";
			continue; /* queued for another domain */
		}
		for (size_t k = 0; k < dv->n_rcpt_of[i]; k++) {
			enum store_result rk = d->rcpts[dv->rcpt_of[i][k]].result;
			if (delivery_rank(rk) > rank) {
				rank = delivery_rank(rk);
				r = rk;
			}
		}
		if (dv->store_started && d->result == STORE_TEMPFAIL)
			r = STORE_TEMPFAIL;
		dv->outcomes[i] = dv->queue_failed ? "tempfail" : delivery_outcome(r);
		if (delivery_rank(r) > worst)
			worst = delivery_rank(r);
	}
	res.status = worst == 0 ? SMTP_DELIVERED : worst == 1 ? SMTP_DELIVER_TOO_BIG :
		     worst == 2 ? SMTP_DELIVER_FULL : SMTP_DELIVER_TEMPFAIL;
	res.outcomes = dv->outcomes;
	if (dv->cb != NULL)
		dv->cb(dv->arg, &res);
	if (res.status == SMTP_DELIVERED && dv->n_remote > 0 && dv->be->queued != NULL)
		dv->be->queued(dv->be->queued_arg);
	delivery_free(dv);
}

static void delivery_done(struct store_delivery *d)
{
	delivery_finish(d->ctx);
}

static void delivery_queued(void *arg, bool ok)
{
	struct delivery *dv = arg;

	if (!ok)
		dv->queue_failed = true;
	delivery_finish(dv);
}

static void delivery_add_remote(struct delivery *dv, const char *address, const struct smtp_rcpt *r)
{
	for (size_t i = 0; i < dv->n_remote; i++) {
		if (strcmp(dv->remote[i].address, address) == 0)
			return;
	}
	dv->remote = xrealloc(dv->remote, (dv->n_remote + 1) * sizeof(*dv->remote));
	dv->remote_owned = xrealloc(dv->remote_owned, (dv->n_remote + 1) * sizeof(char *));
	dv->remote_owned[dv->n_remote] = xstrdup(address);
	dv->remote[dv->n_remote] = (struct queue_add_rcpt){
		.address = dv->remote_owned[dv->n_remote],
		.orcpt = r ? r->orcpt : NULL,
		.notify = r ? r->notify : 0,
	};
	dv->n_remote++;
}

/* Add the accounts behind one recipient, once each across the message
 * (two aliases of one person get one copy). Returns -1 on a database
 * error or when the recipient no longer resolves to local accounts only. */
static int delivery_add_rcpt(struct delivery *dv, size_t idx, const char *address)
{
	struct smtp_backend_real *be = dv->be;
	struct resolved r;
	char *error = NULL;

	if (userdb_resolve(be->svc.db, be->svc.cfg, address, &r, &error) < 0) {
		log_error("smtp: looking up <%s>: %s", address, error);
		free(error);
		return -1;
	}
	bool relay = dv->be->queue != NULL;
	int rc = r.status == RESOLVE_FOUND && (r.n_external == 0 || relay) ? 0 : -1;
	for (size_t i = 0; rc == 0 && i < r.n_external; i++)
		delivery_add_remote(dv, r.external[i], NULL);
	if (rc == 0)
		dv->rcpt_of[idx] = xcalloc(r.n_accounts + 1, sizeof(size_t));
	for (size_t i = 0; rc == 0 && i < r.n_accounts; i++) {
		size_t k = 0;
		while (k < dv->d.n_rcpts && strcmp(dv->accounts[k], r.accounts[i]) != 0)
			k++;
		if (k == dv->d.n_rcpts) {
			struct user u;
			if (userdb_get(be->svc.db, r.accounts[i], &u, &error) != 0) {
				log_error("smtp: account <%s>: %s", r.accounts[i], error ? error : "gone");
				free(error);
				rc = -1;
				break;
			}
			dv->d.n_rcpts++;
			dv->accounts = xrealloc(dv->accounts, dv->d.n_rcpts * sizeof(char *));
			dv->maildirs = xrealloc(dv->maildirs, dv->d.n_rcpts * sizeof(char *));
			dv->d.rcpts = xrealloc(dv->d.rcpts, dv->d.n_rcpts * sizeof(*dv->d.rcpts));
			dv->accounts[k] = xstrdup(r.accounts[i]);
			dv->maildirs[k] = userdb_maildir_path(be->svc.cfg, &u);
			dv->d.rcpts[k] = (struct store_rcpt){
				.account = dv->accounts[k],
				.maildir = dv->maildirs[k],
				.mailbox = "INBOX",
				.quota_bytes = userdb_quota_bytes(be->svc.cfg, &u),
				.quota_messages = userdb_quota_messages(be->svc.cfg, &u),
			};
			user_free(&u);
		}
		dv->rcpt_of[idx][dv->n_rcpt_of[idx]++] = k;
	}
	resolved_free(&r);
	return rc;
}

static void *be_deliver_start(void *ctx, void *spool, const struct smtp_envelope *env, smtp_deliver_cb cb,
			      void *arg)
{
	struct smtp_backend_real *be = ctx;
	struct delivery *dv = xcalloc(1, sizeof(*dv));
	bool ok = true;

	dv->be = be;
	dv->spool = spool;
	dv->cb = cb;
	dv->arg = arg;
	dv->n_env_rcpts = env->n_rcpts;
	dv->rcpt_of = xcalloc(env->n_rcpts, sizeof(size_t *));
	dv->n_rcpt_of = xcalloc(env->n_rcpts, sizeof(size_t));
	dv->outcomes = xcalloc(env->n_rcpts, sizeof(char *));
	for (size_t i = 0; i < env->n_rcpts && ok; i++) {
		const struct smtp_rcpt *r = &env->rcpts[i];
		if (r->status == SMTP_RCPT_REMOTE && be->queue != NULL) {
			delivery_add_remote(dv, r->address, r);
			dv->outcomes[i] = "queued";
		}
		else if (r->status == SMTP_RCPT_LOCAL || (r->status == SMTP_RCPT_FORWARD && be->queue != NULL))
			ok = delivery_add_rcpt(dv, i, r->address) == 0;
		else
			ok = false;
	}
	/* The store and the queue read the file by name; our descriptor is done. */
	ok = ok && (dv->d.n_rcpts > 0 || dv->n_remote > 0) && spool_flush(dv->spool) == 0;
	if (dv->spool->fd >= 0 && close(dv->spool->fd) < 0)
		ok = false;
	dv->spool->fd = -1;
	if (!ok) {
		delivery_free(dv);
		return NULL;
	}
	dv->d.spool_path = dv->spool->path;
	dv->d.cb = delivery_done;
	dv->d.ctx = dv;
	/* Both parts are started before either can finish: callbacks never
	 * run inside these calls. */
	dv->waiting = (dv->d.n_rcpts > 0) + (dv->n_remote > 0);
	if (dv->n_remote > 0) {
		struct smtp_envelope qenv = *env;
		qenv.size = dv->spool->written - dv->spool->trace_len;
		queue_add(be->queue, dv->spool->path, dv->spool->trace_len, &qenv, dv->remote, dv->n_remote,
			  delivery_queued, dv);
	}
	if (dv->d.n_rcpts > 0) {
		dv->store_started = true;
		store_deliver(be->svc.store, &dv->d);
	}
	return dv;
}

static void be_deliver_cancel(void *ctx, void *handle)
{
	struct delivery *dv = handle;
	(void)ctx;
	/* The store cannot be stopped mid-batch, nor the queue mid-fsync;
	 * the message may still be delivered, and the client that went away
	 * will send it again. */
	dv->cb = NULL;
}

/* Files left in the spool by a crash belong to messages that were never
 * acknowledged: their clients will send them again. */
static void spool_clean(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	unsigned n = 0;

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] != '.' && unlinkat(dirfd(d), e->d_name, 0) == 0)
			n++;
	}
	closedir(d);
	if (n > 0)
		log_info("smtp: removed %u unfinished message(s) from %s", n, dir);
}

struct smtp_backend *smtp_backend_new(const struct services *svc)
{
	struct smtp_backend_real *be = xcalloc(1, sizeof(*be));

	be->svc = *svc;
	be->spool_dir = xasprintf("%s/spool", svc->cfg->data_dir);
	if (mkdir(be->spool_dir, 0700) < 0 && errno != EEXIST)
		log_error("smtp: creating %s: %s", be->spool_dir, strerror(errno));
	spool_clean(be->spool_dir);
	be->b = (struct smtp_backend){
		.ctx = be,
		.can_relay = be_can_relay,
		.domain_is_local = be_domain_is_local,
		.rcpt_check = be_rcpt_check,
		.sender_owned = be_sender_owned,
		.auth_start = be_auth_start,
		.auth_cancel = be_auth_cancel,
		.spool_open = be_spool_open,
		.spool_write = be_spool_write,
		.spool_discard = be_spool_discard,
		.deliver_start = be_deliver_start,
		.deliver_cancel = be_deliver_cancel,
	};
	return &be->b;
}

void smtp_backend_set_queue(struct smtp_backend *b, struct queue *q, void (*queued)(void *arg), void *arg)
{
	struct smtp_backend_real *be = (struct smtp_backend_real *)b;

	be->queue = q;
	be->queued = queued;
	be->queued_arg = arg;
}

void smtp_backend_free(struct smtp_backend **bp)
{
	struct smtp_backend_real *be = (struct smtp_backend_real *)*bp;

	if (be == NULL)
		return;
	*bp = NULL;
	free(be->spool_dir);
	free(be);
}
