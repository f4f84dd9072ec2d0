/*
 * Delivery status notifications of the outbound queue (see
 * outbound_bounce.h): render in the thread pool, deliver on the loop.
 *
 * Why the notice is made durable before the record changes: the caller
 * marks recipients failed only after cb(ok = true). A crash in between
 * sends the notice twice at worst; the other order could lose it.
 */
#include "mta/outbound_bounce.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "auth/userdb.h"
#include "core/fileio.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "maildir/store.h"
#include "smtp/client_reply.h"
#include "mta/queue.h"

#define BOUNCE_RETURN_PATH "Return-Path: <>\n"

struct bounce {
	uv_work_t work;
	struct services svc;
	struct queue *q;
	struct queue_entry e;
	struct outbound_dsn_rcpt *dsn;
	time_t now, retry_until;
	char id[QUEUE_ID_MAX + 1];
	char *queue_path;
	char *spool_path;
	outbound_bounce_cb cb;
	void *arg;

	/* The rendering's result. */
	bool rendered;
	struct smtp_dsn_info info;

	/* Delivery. */
	int waiting;
	bool ok;
	struct store_delivery d;
	char **accounts, **maildirs;
	size_t n_accounts;
	struct queue_add_rcpt *ext;
	size_t n_ext;
};

static unsigned long bounce_counter;

size_t outbound_bounce_rcpts(const struct queue_entry *e, const struct outbound_dsn_rcpt *dsn, time_t retry_until,
			     struct smtp_dsn_rcpt *out, char **texts)
{
	size_t n = 0;

	for (size_t i = 0; i < e->n_rcpts; i++) {
		const struct queue_rcpt *r = &e->rcpts[i];
		if (dsn[i].dsn == OUTBOUND_DSN_NONE)
			continue;
		struct smtp_dsn_rcpt *o = &out[n];
		memset(o, 0, sizeof(*o));
		texts[n] = NULL;
		o->address = r->address;
		o->orcpt = r->orcpt;
		o->action = dsn[i].dsn == OUTBOUND_DSN_FAILED ? SMTP_DSN_FAILED : SMTP_DSN_DELAYED;
		o->status = dsn[i].status[0] != '\0' ? dsn[i].status : NULL;
		o->last_attempt = (time_t)e->last_attempt;
		if (o->action == SMTP_DSN_DELAYED)
			o->retry_until = retry_until;
		const char *reply = r->last_reply;
		if (reply != NULL && r->remote_mta != NULL) {
			/* The server's own words: Diagnostic-Code (RFC 3464 2.3.6). */
			o->remote_mta = r->remote_mta;
			o->diagnostic = reply;
		} else {
			/* Our reason, "451 4.4.1 connect to ... failed": the code
			 * and status are ours, so only the words are shown. */
			const char *words = reply;
			if (words != NULL && strlen(words) > 4 && words[3] == ' ') {
				struct smtp_esc esc;
				size_t k = smtp_esc_parse(words + 4, strlen(words + 4), &esc);
				words += 4 + k;
			}
			if (dsn[i].expired)
				texts[n] = xasprintf("gave up: the message was too long in the queue%s%s",
						     words ? "; the last problem was: " : "", words ? words : "");
			else if (words != NULL)
				texts[n] = xstrdup(words);
			o->text = texts[n];
		}
		n++;
	}
	return n;
}

/* ---- rendering, in the thread pool ---- */

struct bounce_src {
	int fd;
	uint64_t base, size;
};

static ssize_t bounce_read(void *ctx, uint64_t off, void *buf, size_t len)
{
	struct bounce_src *s = ctx;

	if (off >= s->size)
		return 0;
	if (len > s->size - off)
		len = (size_t)(s->size - off);
	for (;;) {
		ssize_t n = pread(s->fd, buf, len, (off_t)(s->base + off));
		if (n < 0 && errno == EINTR)
			continue;
		return n;
	}
}

static int bounce_write(void *ctx, const void *data, size_t len)
{
	return fileio_write_all(*(int *)ctx, data, len);
}

static void bounce_render_work(uv_work_t *w)
{
	struct bounce *b = w->data;
	struct queue_entry *e = &b->e;
	size_t n = 0;

	for (size_t i = 0; i < e->n_rcpts; i++)
		n += b->dsn[i].dsn != OUTBOUND_DSN_NONE;
	struct smtp_dsn_rcpt *rcpts = xcalloc(n, sizeof(*rcpts));
	char **texts = xcalloc(n, sizeof(char *));
	n = outbound_bounce_rcpts(e, b->dsn, b->retry_until, rcpts, texts);

	struct smtp_dsn d = {
		.reporting_mta = b->svc.cfg->hostname,
		.sender = e->sender,
		.unique = b->id,
		.now = b->now,
		.arrival = (time_t)e->arrival,
		.envid = e->envid,
		.ret = (enum smtp_ret)e->ret,
		.rcpts = rcpts,
		.n_rcpts = n,
		.original_size = e->size,
	};
	struct bounce_src src = { .fd = open(b->queue_path, O_RDONLY | O_CLOEXEC), .base = e->body_offset,
				  .size = e->size };
	if (src.fd < 0)
		log_warn("outbound %s: bounce without the original: %s: %s", e->id, b->queue_path, strerror(errno));
	int out = open(b->spool_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	const char *error = NULL;
	if (out < 0) {
		log_error("outbound %s: creating %s: %s", e->id, b->spool_path, strerror(errno));
	} else if (fileio_write_all(out, BOUNCE_RETURN_PATH, strlen(BOUNCE_RETURN_PATH)) < 0 ||
		   smtp_dsn_render(&d, src.fd >= 0 ? bounce_read : NULL, &src, bounce_write, &out, &b->info, &error) < 0) {
		log_error("outbound %s: rendering the notice into %s: %s", e->id, b->spool_path,
			  error ? error : strerror(errno));
	} else if (close(out) < 0) {
		out = -1;
		log_error("outbound %s: writing %s: %s", e->id, b->spool_path, strerror(errno));
	} else {
		out = -1;
		b->rendered = true;
	}
	if (out >= 0)
		close(out);
	if (src.fd >= 0)
		close(src.fd);
	for (size_t i = 0; i < n; i++)
		free(texts[i]);
	free(texts);
	free(rcpts);
}

/* ---- delivery, on the loop ---- */

static void bounce_free(struct bounce *b)
{
	queue_entry_free(&b->e);
	free(b->dsn);
	free(b->queue_path);
	free(b->spool_path);
	for (size_t i = 0; i < b->n_accounts; i++) {
		free(b->accounts[i]);
		free(b->maildirs[i]);
	}
	free(b->accounts);
	free(b->maildirs);
	free(b->d.rcpts);
	for (size_t i = 0; i < b->n_ext; i++)
		free((char *)b->ext[i].address);
	free(b->ext);
	free(b);
}

static void bounce_finish(struct bounce *b)
{
	if (--b->waiting > 0)
		return;
	unlink(b->spool_path);
	if (b->cb != NULL)
		b->cb(b->arg, b->ok);
	bounce_free(b);
}

static void bounce_stored(struct store_delivery *d)
{
	struct bounce *b = d->ctx;

	if (d->result == STORE_TEMPFAIL) {
		log_error("outbound %s: notice %s to <%s>: the store failed", b->e.id, b->id, b->e.sender);
		b->ok = false;
	} else {
		for (size_t i = 0; i < d->n_rcpts; i++)
			log_info("outbound %s: notice %s delivered to %s: %s", b->e.id, b->id, d->rcpts[i].account,
				 store_result_name(d->rcpts[i].result));
	}
	bounce_finish(b);
}

static void bounce_queued(void *arg, bool ok)
{
	struct bounce *b = arg;

	if (ok) {
		log_info("outbound %s: notice %s queued for <%s>", b->e.id, b->id, b->e.sender);
	} else {
		log_error("outbound %s: notice %s could not be queued", b->e.id, b->id);
		b->ok = false;
	}
	bounce_finish(b);
}

static void bounce_add_ext(struct bounce *b, const char *address)
{
	b->ext = xrealloc(b->ext, (b->n_ext + 1) * sizeof(*b->ext));
	b->ext[b->n_ext++] = (struct queue_add_rcpt){ .address = xstrdup(address) };
}

/* Who gets the notice: local accounts and external addresses. Returns 0,
 * or -1 on a database error. */
static int bounce_recipients(struct bounce *b)
{
	struct resolved r;
	char *error = NULL;

	if (userdb_resolve(b->svc.db, b->svc.cfg, b->e.sender, &r, &error) < 0) {
		log_error("outbound %s: looking up <%s> for its notice: %s", b->e.id, b->e.sender, error);
		free(error);
		return -1;
	}
	int rc = 0;
	if (r.status == RESOLVE_NOT_LOCAL) {
		bounce_add_ext(b, b->e.sender);
	} else if (r.status == RESOLVE_FOUND) {
		for (size_t i = 0; i < r.n_external; i++)
			bounce_add_ext(b, r.external[i]);
		for (size_t i = 0; i < r.n_accounts && rc == 0; i++) {
			struct user u;
			int got = userdb_get(b->svc.db, r.accounts[i], &u, &error);
			if (got < 0) {
				log_error("outbound %s: account <%s>: %s", b->e.id, r.accounts[i], error);
				free(error);
				error = NULL;
				rc = -1;
				break;
			}
			if (got > 0)
				continue; /* gone since the lookup */
			b->accounts = xrealloc(b->accounts, (b->n_accounts + 1) * sizeof(char *));
			b->maildirs = xrealloc(b->maildirs, (b->n_accounts + 1) * sizeof(char *));
			b->accounts[b->n_accounts] = xstrdup(r.accounts[i]);
			b->maildirs[b->n_accounts] = userdb_maildir_path(b->svc.cfg, &u);
			b->n_accounts++;
			user_free(&u);
		}
	} else {
		log_warn("outbound %s: notice %s dropped: the sender <%s> is in a local domain but reaches nobody",
			 b->e.id, b->id, b->e.sender);
	}
	resolved_free(&r);
	return rc;
}

static void bounce_render_done(uv_work_t *w, int status)
{
	struct bounce *b = w->data;

	b->waiting = 1; /* held until everything below has started */
	b->ok = true;
	if (status != 0 || !b->rendered || bounce_recipients(b) < 0) {
		b->ok = false;
		bounce_finish(b);
		return;
	}
	if (b->n_accounts > 0) {
		b->d.rcpts = xcalloc(b->n_accounts, sizeof(*b->d.rcpts));
		for (size_t i = 0; i < b->n_accounts; i++) {
			/* No quota for the notice: see outbound_bounce.h. */
			b->d.rcpts[i] = (struct store_rcpt){
				.account = b->accounts[i],
				.maildir = b->maildirs[i],
				.mailbox = "INBOX",
			};
		}
		b->d.n_rcpts = b->n_accounts;
		b->d.spool_path = b->spool_path;
		b->d.cb = bounce_stored;
		b->d.ctx = b;
		b->waiting++;
		store_deliver(b->svc.store, &b->d);
	}
	if (b->n_ext > 0) {
		char qid[QUEUE_ID_MAX + 1];
		snprintf(qid, sizeof(qid), "%s", b->id);
		struct smtp_envelope env = {
			.id = qid,
			.sender = "",
			.ret = SMTP_RET_UNSET,
			.smtputf8 = b->info.smtputf8,
			.eightbit = b->info.eightbit,
			.size = b->info.size,
		};
		b->waiting++;
		queue_add(b->q, b->spool_path, strlen(BOUNCE_RETURN_PATH), &env, b->ext, b->n_ext, bounce_queued, b);
	}
	bounce_finish(b);
}

void outbound_bounce_send(const struct services *svc, struct queue *q, const struct queue_entry *e,
			  const struct outbound_dsn_rcpt *dsn, time_t now, time_t retry_until, outbound_bounce_cb cb,
			  void *arg)
{
	struct bounce *b = xcalloc(1, sizeof(*b));
	struct timespec ts;

	b->svc = *svc;
	b->q = q;
	outbound__entry_copy(&b->e, e);
	b->dsn = xcalloc(e->n_rcpts, sizeof(*b->dsn));
	memcpy(b->dsn, dsn, e->n_rcpts * sizeof(*b->dsn));
	b->now = now;
	b->retry_until = retry_until;
	b->cb = cb;
	b->arg = arg;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	/* Unique within this process by the counter, across restarts by the
	 * clock; the spool file is made with O_EXCL all the same. */
	snprintf(b->id, sizeof(b->id), "%" PRIx64 ".dsn.%lu", ms, ++bounce_counter);
	b->queue_path = queue_file_path(svc->cfg, e->id);
	b->spool_path = xasprintf("%s/spool/%s", svc->cfg->data_dir, b->id);
	b->work.data = b;
	uv_queue_work(svc->loop, &b->work, bounce_render_work, bounce_render_done);
}
