/*
 * The outbound engine (see outbound.h): scheduler, attempts, record
 * updates.
 *
 * A run moves through phases, each ending in a callback on the loop:
 *
 *   PREP     thread pool: open the queue file, measure it (lines for SIZE,
 *            8-bit octets for 8BITMIME), read route passwords;
 *   ATTEMPTS one attempt per recipient domain, each waiting for a slot
 *            (global and per domain), then DNS (c-ares on the loop), then
 *            connections one target at a time (outbound_conn.c);
 *   NOTICE   when someone gets a bounce or a delay warning: render and
 *            deliver it (outbound_bounce.c) before the record says so;
 *   COMMIT   thread pool: one LMDB write transaction for every run that is
 *            ready (group commit), re-reading each record and applying the
 *            results with outbound_apply(); deleting the entries that are
 *            done and their files.
 *
 * Why results are applied twice (on the loop to plan notices, in the
 * commit to write): the write transaction must start from the record as it
 * is now (`postbote queue flush|del` may have changed it meanwhile), and
 * outbound_apply() is a pure function of (record, results, now), so both
 * passes agree.
 *
 * What it must never do: write to LMDB or read a file on the loop; change a
 * record before the attempt's outcome is known; mark a recipient delivered
 * without the server's 2xx to the end of data (only the client decides
 * DELIVERED); send a notice about a message from the null sender.
 */
#include "mta/outbound.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "core/log.h"
#include "core/tls.h"
#include "core/xalloc.h"
#include "smtp/client.h"
#include "smtp/dsn.h"
#include "smtp/mx_order.h"
#include "mta/outbound_bounce.h"
#include "mta/outbound_conn.h"
#include "mta/queue.h"
#include "mta/resolver.h"
#include "smtp/route.h"

#define OB_RUN_BUCKETS 256
/* Connection targets of one host tried per attempt (after the resolver's
 * own limits), and addresses remembered to skip repeats across hosts. */
#define OB_TARGETS_MAX (2 * RESOLVER_MAX_ADDRS)
#define OB_TRIED_MAX 64
/* A failed commit pauses the scheduler this long (no hot loop on a broken
 * database). */
#define OB_PAUSE_S 60
/* Longest password read from a route's password_file. */
#define OB_PASSWORD_MAX 1024

enum ob_phase { OB_PREP, OB_ATTEMPTS, OB_NOTICE, OB_COMMIT };
enum ob_att_state { AT_WAITING, AT_DNS, AT_CONN, AT_DONE };

struct ob_domain {
	char *name;
	unsigned active, waiting;
	struct ob_domain *next;
};

struct ob_rres {
	enum outbound_outcome outcome;
	char *reply;
	char status[12];
	char *remote_mta;
};

struct ob_run;

struct ob_attempt {
	struct ob_run *run;
	struct ob_attempt *wnext;           /* the FIFO of attempts waiting for a slot */
	enum ob_att_state state;
	struct ob_domain *dom;
	char *domain;
	size_t *idx;                        /* recipients (indexes into run->e.rcpts) */
	size_t n_idx;
	struct smtp_client_rcpt *crcpts;

	/* Where to: a route, or the MX records. */
	bool routed;
	char *route_host;
	int port;
	enum smtp_client_tls tls;
	bool verify;
	char *user, *password_file, *password;
	const char *password_error;         /* static: why the password is missing */

	struct resolver_query *q;
	char **hosts;
	size_t n_hosts, host_i;
	bool implicit_mx;
	bool dns_tempfail;                  /* some address lookup failed for now */
	struct in_addr a[RESOLVER_MAX_ADDRS];
	struct in6_addr aaaa[RESOLVER_MAX_ADDRS];
	struct smtp_mx_target targets[OB_TARGETS_MAX];
	size_t n_targets, target_i;
	struct smtp_mx_addr tried[OB_TRIED_MAX];
	size_t n_tried;
	bool plaintext_retry;
	unsigned n_conns;

	struct outbound_conn *conn;
	struct smtp_client_params params;
	char server[RESOLVER_NAME_MAX + INET6_ADDRSTRLEN + 16];
	char addr_text[INET6_ADDRSTRLEN];
	char *last_reason;                  /* "451 4.4.3 ..." when no connection says more */
};

struct ob_run {
	struct outbound *ob;
	struct ob_run *hnext;               /* hash chain by id */
	struct ob_run *next, *prev;         /* every run */
	struct ob_run *cnext;               /* the commit batch */
	enum ob_phase phase;
	bool abandoned;                     /* stopping during PREP */
	uv_work_t work;

	struct queue_entry e;
	int fd;
	uint64_t wire_size;
	bool eightbit;
	char *prep_error;

	struct ob_attempt **att;
	size_t n_att, n_att_open;
	struct ob_rres *res;

	time_t now;
	unsigned apply_flags;
	struct outbound_dsn_rcpt *dsn;
	bool gone, removed, commit_failed;
	struct outbound_verdict v;
	int64_t next_attempt;
};

struct outbound {
	struct services svc;
	struct queue *q;
	struct resolver *resolver;
	struct tls_ctx *tls_noverify, *tls_verify;
	uv_timer_t timer;
	bool timer_closed;
	bool stopping;
	time_t paused_until;
	uint64_t last_scan_ms;              /* uv_now() of the last scan */

	struct ob_run *buckets[OB_RUN_BUCKETS];
	struct ob_run *runs;
	unsigned n_runs;
	unsigned n_active;                  /* attempts holding a slot */
	struct ob_attempt *wait_head, *wait_tail;
	struct ob_domain *domains;

	struct ob_run *commit_pending;      /* waiting for the next transaction */
	struct ob_run *commit_batch;        /* in the running transaction */
	bool commit_running;
	uv_work_t commit_work;
	unsigned busy;                      /* work that outbound_free() waits for */
};

static void ob_attempt_next_host(struct ob_attempt *at);
static void ob_attempt_next_target(struct ob_attempt *at);
static void ob_attempt_done(struct ob_attempt *at);
static void ob_run_finish(struct ob_run *run);
static void ob_commit_enqueue(struct ob_run *run, unsigned flags);
static void ob_schedule_scan(struct outbound *ob, uint64_t ms);
static void ob_notice_done(void *arg, bool ok);

/* ---- small helpers ---- */

void outbound__entry_copy(struct queue_entry *dst, const struct queue_entry *src)
{
	*dst = *src;
	dst->sender = xstrdup(src->sender);
	dst->envid = src->envid ? xstrdup(src->envid) : NULL;
	dst->auth_user = src->auth_user ? xstrdup(src->auth_user) : NULL;
	dst->rcpts = xcalloc(src->n_rcpts ? src->n_rcpts : 1, sizeof(*dst->rcpts));
	for (size_t i = 0; i < src->n_rcpts; i++) {
		const struct queue_rcpt *s = &src->rcpts[i];
		struct queue_rcpt *d = &dst->rcpts[i];
		*d = *s;
		d->address = xstrdup(s->address);
		d->orcpt = s->orcpt ? xstrdup(s->orcpt) : NULL;
		d->last_reply = s->last_reply ? xstrdup(s->last_reply) : NULL;
		d->remote_mta = s->remote_mta ? xstrdup(s->remote_mta) : NULL;
	}
}

static unsigned ob_hash(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h % OB_RUN_BUCKETS;
}

static struct ob_run *ob_run_find(struct outbound *ob, const char *id)
{
	for (struct ob_run *r = ob->buckets[ob_hash(id)]; r != NULL; r = r->hnext) {
		if (strcmp(r->e.id, id) == 0)
			return r;
	}
	return NULL;
}

static const char *ob_rcpt_domain(const char *address)
{
	const char *at = strrchr(address, '@');
	return at != NULL ? at + 1 : "";
}

static struct ob_domain *ob_domain_get(struct outbound *ob, const char *name, bool create)
{
	for (struct ob_domain *d = ob->domains; d != NULL; d = d->next) {
		if (strcasecmp(d->name, name) == 0)
			return d;
	}
	if (!create)
		return NULL;
	struct ob_domain *d = xcalloc(1, sizeof(*d));
	d->name = xstrdup(name);
	for (char *p = d->name; *p; p++)
		*p = (*p >= 'A' && *p <= 'Z') ? (char)(*p - 'A' + 'a') : *p;
	d->next = ob->domains;
	ob->domains = d;
	return d;
}

static void ob_domain_release(struct outbound *ob, struct ob_domain *dom)
{
	if (dom == NULL || dom->active > 0 || dom->waiting > 0)
		return;
	for (struct ob_domain **pp = &ob->domains; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == dom) {
			*pp = dom->next;
			free(dom->name);
			free(dom);
			return;
		}
	}
}

static void ob_wipe_free(char **s)
{
	if (*s != NULL) {
		explicit_bzero(*s, strlen(*s));
		free(*s);
		*s = NULL;
	}
}

/* "451 4.4.1 text" -> "4.4.1" into out (or "" when there is none). */
static void ob_reply_status(const char *reply, char out[12])
{
	struct smtp_esc esc;

	out[0] = '\0';
	if (reply == NULL || strlen(reply) < 5 || reply[3] != ' ')
		return;
	if (smtp_esc_parse(reply + 4, strlen(reply + 4), &esc) > 0)
		smtp_esc_format(&esc, out);
}

/* ---- the pure part ---- */

void outbound_schedule_from_config(const struct config *cfg, struct smtp_schedule *s)
{
	const char *error;

	smtp_schedule_default(s);
	if (cfg->queue_retry != NULL && smtp_schedule_parse(cfg->queue_retry, s, &error) < 0)
		log_warn("queue_retry \"%s\": %s; using \"%s\"", cfg->queue_retry, error, SMTP_SCHEDULE_DEFAULT);
	s->lifetime_s = cfg->queue_lifetime_ms / 1000;
	if (s->lifetime_s == 0)
		s->lifetime_s = 1;
	s->delay_warning_s = cfg->queue_delay_warning_ms / 1000;
}

static void ob_set_str(char **dst, const char *src)
{
	free(*dst);
	*dst = src != NULL ? xstrdup(src) : NULL;
}

int outbound_apply(struct queue_entry *e, const struct outbound_result *results, size_t n,
		   const struct smtp_schedule *s, time_t now, unsigned flags, struct outbound_dsn_rcpt *dsn_r,
		   struct outbound_verdict *v)
{
	bool hold = (flags & OUTBOUND_APPLY_HOLD_DSN) != 0;
	bool held = false;

	memset(v, 0, sizeof(*v));
	if (n != e->n_rcpts)
		return -1;
	memset(dsn_r, 0, n * sizeof(*dsn_r));
	for (size_t i = 0; i < n; i++) {
		struct queue_rcpt *r = &e->rcpts[i];
		const struct outbound_result *res = &results[i];
		if (res->outcome == OUTBOUND_NOT_TRIED)
			continue;
		if (r->state != QUEUE_RCPT_PENDING && r->state != QUEUE_RCPT_DEFERRED)
			continue; /* decided before: never undone */
		if ((flags & OUTBOUND_APPLY_DELIVERED_ONLY) && res->outcome != OUTBOUND_DELIVERED)
			continue;
		if (res->reply != NULL)
			ob_set_str(&r->last_reply, res->reply);
		ob_set_str(&r->remote_mta, res->remote_mta);
		switch (res->outcome) {
		case OUTBOUND_DELIVERED:
			r->state = QUEUE_RCPT_DELIVERED;
			break;
		case OUTBOUND_DEFERRED:
			r->state = QUEUE_RCPT_DEFERRED;
			break;
		case OUTBOUND_FAILED:
		default: {
			bool want = smtp_dsn_wanted(e->sender, r->notify, SMTP_DSN_FAILED);
			if (want && hold) {
				r->state = QUEUE_RCPT_DEFERRED;
				held = true;
				break;
			}
			r->state = QUEUE_RCPT_FAILED;
			if (want) {
				dsn_r[i].dsn = OUTBOUND_DSN_FAILED;
				if (res->status != NULL && res->status[0] != '\0')
					snprintf(dsn_r[i].status, sizeof(dsn_r[i].status), "%s", res->status);
				else
					ob_reply_status(res->reply, dsn_r[i].status);
			}
			break;
		}
		}
	}
	if (!(flags & OUTBOUND_APPLY_DELIVERED_ONLY)) {
		struct smtp_retry retry;
		e->attempts++;
		e->last_attempt = now;
		smtp_schedule_next(s, (time_t)e->arrival, e->attempts, now, &retry);
		e->next_attempt = retry.next;
		if (retry.expired) {
			v->expired = true;
			for (size_t i = 0; i < n; i++) {
				struct queue_rcpt *r = &e->rcpts[i];
				if (r->state != QUEUE_RCPT_PENDING && r->state != QUEUE_RCPT_DEFERRED)
					continue;
				bool want = smtp_dsn_wanted(e->sender, r->notify, SMTP_DSN_FAILED);
				if (want && hold) {
					held = true;
					continue;
				}
				r->state = QUEUE_RCPT_FAILED;
				if (!want)
					continue;
				dsn_r[i].dsn = OUTBOUND_DSN_FAILED;
				dsn_r[i].expired = true;
				/* RFC 3463 X.4.7: "the code for the actual problem
				 * found ... should be returned rather than this code" */
				ob_reply_status(r->last_reply, dsn_r[i].status);
				if (dsn_r[i].status[0] != '4')
					snprintf(dsn_r[i].status, sizeof(dsn_r[i].status), "4.4.7");
			}
		} else if (!e->warned && !hold) {
			time_t warn_at = smtp_schedule_delay_warning(s, (time_t)e->arrival);
			if (warn_at != 0 && now >= warn_at) {
				e->warned = true;
				for (size_t i = 0; i < n; i++) {
					struct queue_rcpt *r = &e->rcpts[i];
					if (r->state != QUEUE_RCPT_DEFERRED ||
					    !smtp_dsn_wanted(e->sender, r->notify, SMTP_DSN_DELAYED))
						continue;
					dsn_r[i].dsn = OUTBOUND_DSN_DELAYED;
					ob_reply_status(r->last_reply, dsn_r[i].status);
					if (dsn_r[i].status[0] != '4')
						snprintf(dsn_r[i].status, sizeof(dsn_r[i].status), "4.0.0");
				}
			}
		}
		if (held && (retry.expired || e->next_attempt <= now)) {
			/* The notice could not be sent: try again after the
			 * longest wait rather than at once. */
			uint64_t wait = s->n > 0 ? s->interval_s[s->n - 1] : 3600;
			e->next_attempt = now + (int64_t)wait;
		}
	}
	for (size_t i = 0; i < n; i++) {
		switch (e->rcpts[i].state) {
		case QUEUE_RCPT_DELIVERED: v->delivered++; break;
		case QUEUE_RCPT_FAILED: v->failed++; break;
		default: v->deferred++; break;
		}
		v->n_dsn_failed += dsn_r[i].dsn == OUTBOUND_DSN_FAILED;
		v->n_dsn_delayed += dsn_r[i].dsn == OUTBOUND_DSN_DELAYED;
	}
	v->remove = v->deferred == 0;
	return 0;
}

/* ---- runs ---- */

static void ob_attempt_free(struct ob_attempt *at)
{
	if (at == NULL)
		return;
	free(at->domain);
	free(at->idx);
	free(at->crcpts);
	free(at->route_host);
	free(at->user);
	free(at->password_file);
	ob_wipe_free(&at->password);
	for (size_t i = 0; i < at->n_hosts; i++)
		free(at->hosts[i]);
	free(at->hosts);
	free(at->last_reason);
	free(at);
}

static void ob_run_free(struct ob_run *run)
{
	struct outbound *ob = run->ob;

	struct ob_run **pp = &ob->buckets[ob_hash(run->e.id)];
	while (*pp != NULL && *pp != run)
		pp = &(*pp)->hnext;
	if (*pp == run)
		*pp = run->hnext;
	if (run->prev != NULL)
		run->prev->next = run->next;
	else
		ob->runs = run->next;
	if (run->next != NULL)
		run->next->prev = run->prev;
	ob->n_runs--;

	for (size_t i = 0; i < run->n_att; i++) {
		struct ob_attempt *at = run->att[i];
		if (at->dom != NULL) {
			/* Abandoned before its slot (a run stopped in PREP). */
			if (at->state == AT_WAITING)
				at->dom->waiting--;
			ob_domain_release(ob, at->dom);
		}
		ob_attempt_free(at);
	}
	free(run->att);
	if (run->res != NULL) {
		for (size_t i = 0; i < run->e.n_rcpts; i++) {
			free(run->res[i].reply);
			free(run->res[i].remote_mta);
		}
		free(run->res);
	}
	if (run->fd >= 0)
		close(run->fd);
	free(run->prep_error);
	free(run->dsn);
	queue_entry_free(&run->e);
	free(run);
}

static void ob_result_set(struct ob_run *run, size_t i, enum outbound_outcome o, const char *reply,
			  const char *status, const char *remote_mta)
{
	struct ob_rres *r = &run->res[i];

	r->outcome = o;
	free(r->reply);
	r->reply = reply != NULL ? xstrdup(reply) : NULL;
	snprintf(r->status, sizeof(r->status), "%s", status != NULL ? status : "");
	free(r->remote_mta);
	r->remote_mta = remote_mta != NULL ? xstrdup(remote_mta) : NULL;
}

/* Every recipient of the attempt gets the same outcome, for a reason of
 * our own ("451 4.4.3 text"). */
static void ob_attempt_all(struct ob_attempt *at, enum outbound_outcome o, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void ob_attempt_all(struct ob_attempt *at, enum outbound_outcome o, const char *fmt, ...)
{
	char text[SMTP_CLIENT_TEXT_MAX + 16], status[12];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	ob_reply_status(text, status);
	for (size_t k = 0; k < at->n_idx; k++)
		ob_result_set(at->run, at->idx[k], o, text, status, NULL);
	log_info("outbound %s: domain=%s %s: %s", at->run->e.id, at->domain,
		 o == OUTBOUND_FAILED ? "failed" : "deferred", text);
}

/* ---- slots ---- */

static bool ob_slot_free(struct outbound *ob, struct ob_domain *dom)
{
	return ob->n_active < ob->svc.cfg->outbound_max_connections &&
	       dom->active < ob->svc.cfg->outbound_max_per_domain;
}

static void ob_attempt_begin(struct ob_attempt *at);

/* Start waiting attempts that fit now, in order. */
static void ob_start_waiting(struct outbound *ob)
{
	struct ob_attempt **pp = &ob->wait_head, *prev = NULL;

	while (*pp != NULL && !ob->stopping && ob->n_active < ob->svc.cfg->outbound_max_connections) {
		struct ob_attempt *at = *pp;
		if (!ob_slot_free(ob, at->dom)) {
			prev = at;
			pp = &at->wnext;
			continue;
		}
		*pp = at->wnext;
		if (ob->wait_tail == at)
			ob->wait_tail = prev;
		at->wnext = NULL;
		at->dom->waiting--;
		ob_attempt_begin(at);
	}
}

/* Into the FIFO; the domain counted it as waiting since its run began. */
static void ob_attempt_enqueue(struct ob_attempt *at)
{
	struct outbound *ob = at->run->ob;

	at->state = AT_WAITING;
	if (ob->wait_tail != NULL)
		ob->wait_tail->wnext = at;
	else
		ob->wait_head = at;
	ob->wait_tail = at;
}

static void ob_wait_remove(struct outbound *ob, struct ob_attempt *at)
{
	struct ob_attempt *prev = NULL;
	for (struct ob_attempt **pp = &ob->wait_head; *pp != NULL; prev = *pp, pp = &(*pp)->wnext) {
		if (*pp == at) {
			*pp = at->wnext;
			if (ob->wait_tail == at)
				ob->wait_tail = prev;
			at->wnext = NULL;
			at->dom->waiting--;
			return;
		}
	}
}

/* ---- connections ---- */

static void ob_conn_done(void *arg, const struct smtp_client *client, const struct outbound_conn_info *info);

/* One line per connection: where, how, and every recipient's outcome with
 * the reply that decided it. */
static void ob_log_conn(struct ob_attempt *at, const struct smtp_client *client, const struct outbound_conn_info *info)
{
	struct buf line;

	buf_init(&line, 64 * 1024 + at->n_idx * (SMTP_CLIENT_TEXT_MAX + 600));
	for (size_t k = 0; k < at->n_idx; k++) {
		const struct smtp_client_result *r = smtp_client_rcpt_result(client, k);
		const char *o = r->outcome == SMTP_CLIENT_DELIVERED ? "delivered" :
				r->outcome == SMTP_CLIENT_FAILED ? "failed" : "deferred";
		if (r->remote)
			buf_printf(&line, "%s<%s>=%s (%s)", k ? ", " : "", at->crcpts[k].address, o,
				   r->text ? r->text : "-");
		else
			buf_printf(&line, "%s<%s>=%s (%u %s %s)", k ? ", " : "", at->crcpts[k].address, o, r->code,
				   r->status, r->text ? r->text : "-");
	}
	log_info("outbound %s: domain=%s host=%s[%s]:%d tls=%s%s%s auth=%s %.*s", at->run->e.id, at->domain,
		 at->targets[at->target_i].host, at->addr_text, at->port, info->tls_version ? info->tls_version : "no",
		 info->tls_version ? "/" : "", info->tls_cipher ? info->tls_cipher : "",
		 at->params.auth_user ? at->params.auth_user : "-", (int)buf_len(&line), buf_ptr(&line));
	buf_free(&line);
}

static void ob_connect(struct ob_attempt *at)
{
	struct ob_run *run = at->run;
	struct outbound *ob = run->ob;
	const struct smtp_mx_target *t = &at->targets[at->target_i];
	struct outbound_conn_params p;

	memset(&p, 0, sizeof(p));
	if (t->addr.family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&p.addr;
		s6->sin6_family = AF_INET6;
		s6->sin6_addr = t->addr.u.v6;
		s6->sin6_port = htons((uint16_t)at->port);
		inet_ntop(AF_INET6, &t->addr.u.v6, at->addr_text, sizeof(at->addr_text));
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&p.addr;
		s4->sin_family = AF_INET;
		s4->sin_addr = t->addr.u.v4;
		s4->sin_port = htons((uint16_t)at->port);
		inet_ntop(AF_INET, &t->addr.u.v4, at->addr_text, sizeof(at->addr_text));
	}
	snprintf(at->server, sizeof(at->server), "%s[%s]", t->host, at->addr_text);

	enum smtp_client_tls tls = at->plaintext_retry ? SMTP_CLIENT_TLS_NONE : at->tls;
	at->params = (struct smtp_client_params){
		.ehlo_name = ob->svc.cfg->hostname,
		.server = at->server,
		.tls = tls,
		.tls_verify = at->verify,
		.tls_active = tls == SMTP_CLIENT_TLS_IMPLICIT,
		.auth_user = at->password != NULL ? at->user : NULL,
		.auth_password = at->password != NULL ? at->password : NULL,
		.sender = run->e.sender,
		.rcpts = at->crcpts,
		.n_rcpts = at->n_idx,
		.size = run->wire_size,
		.eightbit = run->eightbit,
		.smtputf8 = run->e.smtputf8,
		.ret = (enum smtp_ret)run->e.ret,
		.envid = run->e.envid,
	};
	p.loop = ob->svc.loop;
	p.tls_ctx = tls == SMTP_CLIENT_TLS_NONE ? NULL : at->verify ? ob->tls_verify : ob->tls_noverify;
	p.tls_name = t->host;
	p.implicit_tls = tls == SMTP_CLIENT_TLS_IMPLICIT;
	p.connect_timeout_ms = OUTBOUND_CONNECT_TIMEOUT_MS;
	p.fd = run->fd;
	p.body_offset = run->e.body_offset;
	p.body_size = run->e.size;
	p.client = &at->params;
	char log_name[QUEUE_ID_MAX + RESOLVER_NAME_MAX + 8];
	snprintf(log_name, sizeof(log_name), "%s %s", run->e.id, at->domain);
	p.log_name = log_name;

	if (tls != SMTP_CLIENT_TLS_NONE && p.tls_ctx == NULL) {
		ob_attempt_all(at, OUTBOUND_DEFERRED, "451 4.7.5 no TLS client context for %s (see the log at start)",
			       at->server);
		ob_attempt_done(at);
		return;
	}
	const char *error = NULL;
	at->state = AT_CONN;
	at->n_conns++;
	at->conn = outbound_conn_start(&p, ob_conn_done, at, &error);
	if (at->conn == NULL) {
		if (errno == EINVAL)
			ob_attempt_all(at, OUTBOUND_FAILED, "550 5.6.0 the message cannot be sent: %s", error);
		else
			ob_attempt_all(at, OUTBOUND_DEFERRED, "451 4.3.0 local error: %s", error);
		ob_attempt_done(at);
	}
}

static void ob_conn_done(void *arg, const struct smtp_client *client, const struct outbound_conn_info *info)
{
	struct ob_attempt *at = arg;
	struct ob_run *run = at->run;
	struct smtp_client_summary sum;
	const char *host = at->targets[at->target_i].host;

	at->conn = NULL;
	smtp_client_summary(client, &sum);
	ob_log_conn(at, client, info);
	for (size_t k = 0; k < at->n_idx; k++) {
		const struct smtp_client_result *r = smtp_client_rcpt_result(client, k);
		enum outbound_outcome o = r->outcome == SMTP_CLIENT_DELIVERED ? OUTBOUND_DELIVERED :
					  r->outcome == SMTP_CLIENT_FAILED ? OUTBOUND_FAILED : OUTBOUND_DEFERRED;
		if (r->remote) {
			ob_result_set(run, at->idx[k], o, r->text, r->status, host);
		} else {
			char text[SMTP_CLIENT_TEXT_MAX + 32];
			snprintf(text, sizeof(text), "%u %s %s", r->code, r->status, r->text ? r->text : "");
			ob_result_set(run, at->idx[k], o, text, r->status, NULL);
		}
	}
	if (run->ob->stopping)
		return;
	if (sum.tls_failed && at->tls == SMTP_CLIENT_TLS_OPPORTUNISTIC && !at->plaintext_retry) {
		/* RFC 7435: opportunistic means plaintext rather than nothing. */
		log_info("outbound %s: domain=%s %s: TLS failed, trying again without it", run->e.id, at->domain,
			 at->server);
		at->plaintext_retry = true;
		ob_connect(at);
		return;
	}
	at->plaintext_retry = false;
	if (sum.site) {
		/* RFC 5321 5.1: this host would not take the mail at all:
		 * the next one may. */
		at->target_i++;
		ob_attempt_next_target(at);
		return;
	}
	ob_attempt_done(at);
}

static bool ob_tried(struct ob_attempt *at, const struct smtp_mx_addr *a)
{
	for (size_t i = 0; i < at->n_tried; i++) {
		const struct smtp_mx_addr *t = &at->tried[i];
		if (t->family != a->family)
			continue;
		if (a->family == AF_INET ? memcmp(&t->u.v4, &a->u.v4, sizeof(a->u.v4)) == 0
					 : memcmp(&t->u.v6, &a->u.v6, sizeof(a->u.v6)) == 0)
			return true;
	}
	return false;
}

static void ob_attempt_next_target(struct ob_attempt *at)
{
	while (at->target_i < at->n_targets && ob_tried(at, &at->targets[at->target_i].addr))
		at->target_i++;
	if (at->target_i >= at->n_targets) {
		at->host_i++;
		ob_attempt_next_host(at);
		return;
	}
	if (at->n_tried < OB_TRIED_MAX)
		at->tried[at->n_tried++] = at->targets[at->target_i].addr;
	ob_connect(at);
}

static void ob_addrs_done(void *arg, const struct resolver_addrs_result *res)
{
	struct ob_attempt *at = arg;
	const char *host = at->hosts[at->host_i];

	at->q = NULL;
	if (res->status != RESOLVER_OK) {
		if (res->status == RESOLVER_TEMPFAIL)
			at->dns_tempfail = true;
		free(at->last_reason);
		at->last_reason = xasprintf("451 4.4.3 no address for %s (%s%s%s)", host,
					    resolver_status_name(res->status), res->error ? ": " : "",
					    res->error ? res->error : "");
		at->host_i++;
		ob_attempt_next_host(at);
		return;
	}
	memcpy(at->a, res->a, res->n_a * sizeof(at->a[0]));
	memcpy(at->aaaa, res->aaaa, res->n_aaaa * sizeof(at->aaaa[0]));
	struct smtp_mx_host h = { .host = host, .a = at->a, .n_a = res->n_a, .aaaa = at->aaaa, .n_aaaa = res->n_aaaa };
	unsigned flags = at->run->ob->svc.cfg->outbound_ipv4_only ? SMTP_MX_IPV4_ONLY : 0;
	at->n_targets = smtp_mx_targets(&h, 1, flags, at->targets, OB_TARGETS_MAX);
	at->target_i = 0;
	ob_attempt_next_target(at);
}

/* Every host and address has been tried: what is left is deferred with
 * the last reason, unless nothing could ever be reached. */
static void ob_attempt_exhausted(struct ob_attempt *at)
{
	if (at->n_conns > 0) {
		ob_attempt_done(at); /* the last connection's outcomes stand */
		return;
	}
	if (at->implicit_mx && !at->dns_tempfail) {
		/* RFC 5321 5.1: no MX and no address: nowhere to deliver. */
		ob_attempt_all(at, OUTBOUND_FAILED, "550 5.4.4 %s has no mail server (no MX and no address record)",
			       at->domain);
	} else {
		ob_attempt_all(at, OUTBOUND_DEFERRED, "%s",
			       at->last_reason ? at->last_reason : "451 4.4.3 no host to deliver to");
	}
	ob_attempt_done(at);
}

static void ob_attempt_next_host(struct ob_attempt *at)
{
	struct outbound *ob = at->run->ob;

	if (at->host_i >= at->n_hosts) {
		ob_attempt_exhausted(at);
		return;
	}
	at->state = AT_DNS;
	at->q = resolver_addrs(ob->resolver, at->hosts[at->host_i], !ob->svc.cfg->outbound_ipv4_only, ob_addrs_done,
			       at);
	if (at->q == NULL) {
		free(at->last_reason);
		at->last_reason = xasprintf("451 4.4.3 host name \"%s\" is not valid", at->hosts[at->host_i]);
		at->host_i++;
		ob_attempt_next_host(at);
	}
}

static void ob_mx_done(void *arg, const struct resolver_mx_result *res)
{
	struct ob_attempt *at = arg;
	struct outbound *ob = at->run->ob;

	at->q = NULL;
	switch (res->status) {
	case RESOLVER_NXDOMAIN:
		ob_attempt_all(at, OUTBOUND_FAILED, "550 5.1.2 domain %s does not exist (DNS: %s)", at->domain,
			       res->error ? res->error : "NXDOMAIN");
		ob_attempt_done(at);
		return;
	case RESOLVER_TEMPFAIL:
		ob_attempt_all(at, OUTBOUND_DEFERRED, "451 4.4.3 MX lookup for %s failed: %s", at->domain,
			       res->error ? res->error : "temporary DNS failure");
		ob_attempt_done(at);
		return;
	default:
		break;
	}
	struct smtp_mx records[RESOLVER_MAX_MX], plan[RESOLVER_MAX_MX];
	size_t n = res->status == RESOLVER_OK ? res->count : 0, n_plan = 0;
	for (size_t i = 0; i < n; i++)
		records[i] = (struct smtp_mx){ .pref = res->mx[i].preference, .host = res->mx[i].host };
	enum smtp_mx_verdict verdict = smtp_mx_plan(records, n, at->domain, ob->svc.cfg->hostname, NULL, NULL, plan,
						    RESOLVER_MAX_MX, &n_plan);
	switch (verdict) {
	case SMTP_MX_NULL:
		/* RFC 7505 3: 556 5.1.10 */
		ob_attempt_all(at, OUTBOUND_FAILED, "556 5.1.10 domain %s accepts no mail (null MX)", at->domain);
		ob_attempt_done(at);
		return;
	case SMTP_MX_LOOP:
		ob_attempt_all(at, OUTBOUND_FAILED, "554 5.4.6 mail for %s loops back to myself (%s is its best MX)",
			       at->domain, ob->svc.cfg->hostname);
		ob_attempt_done(at);
		return;
	case SMTP_MX_IMPLICIT:
		at->implicit_mx = true;
		break;
	case SMTP_MX_HOSTS:
		break;
	}
	at->hosts = xcalloc(n_plan ? n_plan : 1, sizeof(char *));
	for (size_t i = 0; i < n_plan; i++)
		at->hosts[i] = xstrdup(plan[i].host);
	at->n_hosts = n_plan;
	at->host_i = 0;
	ob_attempt_next_host(at);
}

/* The attempt has its slot: look up where to go. */
static void ob_attempt_begin(struct ob_attempt *at)
{
	struct ob_run *run = at->run;
	struct outbound *ob = run->ob;

	ob->n_active++;
	at->dom->active++;
	at->state = AT_DNS;
	if (run->prep_error != NULL) {
		ob_attempt_all(at, OUTBOUND_DEFERRED, "451 4.3.0 local error: %s", run->prep_error);
		ob_attempt_done(at);
		return;
	}
	if (at->routed) {
		if (at->password_file != NULL && at->password == NULL) {
			ob_attempt_all(at, OUTBOUND_DEFERRED, "451 4.3.5 cannot read password_file %s: %s",
				       at->password_file, at->password_error ? at->password_error : "empty");
			ob_attempt_done(at);
			return;
		}
		at->hosts = xcalloc(1, sizeof(char *));
		at->hosts[0] = xstrdup(at->route_host);
		at->n_hosts = 1;
		ob_attempt_next_host(at);
		return;
	}
	at->q = resolver_mx(ob->resolver, at->domain, ob_mx_done, at);
	if (at->q == NULL) {
		ob_attempt_all(at, OUTBOUND_FAILED, "550 5.1.2 \"%s\" is not a valid domain name", at->domain);
		ob_attempt_done(at);
	}
}

static void ob_attempt_done(struct ob_attempt *at)
{
	struct ob_run *run = at->run;
	struct outbound *ob = run->ob;

	if (at->state == AT_DONE)
		return;
	at->state = AT_DONE;
	ob_wipe_free(&at->password);
	ob->n_active--;
	at->dom->active--;
	ob_domain_release(ob, at->dom);
	at->dom = NULL;
	if (--run->n_att_open == 0)
		ob_run_finish(run);
	ob_start_waiting(ob);
}

/* ---- run phases ---- */

/* PREP, in the thread pool. */
static void ob_prep_work(uv_work_t *w)
{
	struct ob_run *run = w->data;
	struct outbound *ob = run->ob;
	char *path = queue_file_path(ob->svc.cfg, run->e.id);
	struct stat st;

	run->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (run->fd < 0) {
		run->prep_error = xasprintf("%s: %s", path, strerror(errno));
	} else if (fstat(run->fd, &st) < 0 || (uint64_t)st.st_size < run->e.body_offset + run->e.size) {
		run->prep_error = xasprintf("%s: shorter than its record says", path);
	} else {
		/* RFC 1870 3: the size as sent, CRLF line ends. RFC 6152:
		 * only real 8-bit content needs 8BITMIME (client.h). */
		char buf[64 * 1024];
		uint64_t off = run->e.body_offset, end = off + run->e.size, lines = 0;
		bool eightbit = false;
		while (off < end) {
			size_t want = end - off < sizeof(buf) ? (size_t)(end - off) : sizeof(buf);
			ssize_t n = pread(run->fd, buf, want, (off_t)off);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				run->prep_error = xasprintf("%s: %s", path, n < 0 ? strerror(errno) : "unexpected end");
				break;
			}
			for (ssize_t i = 0; i < n; i++) {
				lines += buf[i] == '\n';
				eightbit = eightbit || (unsigned char)buf[i] >= 0x80;
			}
			off += (uint64_t)n;
		}
		run->wire_size = run->e.size + lines + 2;
		run->eightbit = eightbit;
	}
	free(path);
	/* Route passwords: read now, wiped when the attempt ends. */
	for (size_t i = 0; i < run->n_att; i++) {
		struct ob_attempt *at = run->att[i];
		if (at->password_file == NULL)
			continue;
		/* read(2) into our own buffer, not stdio's: every copy of the
		 * secret is one we can wipe. */
		int fd = open(at->password_file, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			at->password_error = errno == ENOENT ? "no such file" : errno == EACCES ? "permission denied"
											     : "cannot open";
			continue;
		}
		char line[OB_PASSWORD_MAX + 1];
		size_t len = 0;
		while (len < OB_PASSWORD_MAX) {
			ssize_t n = read(fd, line + len, OB_PASSWORD_MAX - len);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			len += (size_t)n;
		}
		close(fd);
		line[len] = '\0';
		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] != '\0')
			at->password = xstrdup(line);
		else
			at->password_error = "empty first line";
		explicit_bzero(line, sizeof(line));
	}
}

static void ob_prep_done(uv_work_t *w, int status)
{
	struct ob_run *run = w->data;
	struct outbound *ob = run->ob;

	ob->busy--;
	if (run->abandoned || status != 0) {
		ob_run_free(run);
		return;
	}
	run->phase = OB_ATTEMPTS;
	if (run->n_att == 0) {
		ob_run_finish(run);
		return;
	}
	for (size_t i = 0; i < run->n_att; i++)
		ob_attempt_enqueue(run->att[i]);
	ob_start_waiting(ob);
}

static enum smtp_client_tls ob_tls_mode(enum route_tls t)
{
	switch (t) {
	case ROUTE_TLS_NONE: return SMTP_CLIENT_TLS_NONE;
	case ROUTE_TLS_REQUIRE: return SMTP_CLIENT_TLS_REQUIRE;
	case ROUTE_TLS_IMPLICIT: return SMTP_CLIENT_TLS_IMPLICIT;
	case ROUTE_TLS_OPPORTUNISTIC:
	default: return SMTP_CLIENT_TLS_OPPORTUNISTIC;
	}
}

/* Start a run for a due entry: one attempt per domain of its open
 * recipients. */
static void ob_run_start(struct outbound *ob, const struct queue_entry *e)
{
	const struct config *cfg = ob->svc.cfg;
	struct ob_run *run = xcalloc(1, sizeof(*run));

	run->ob = ob;
	run->fd = -1;
	run->phase = OB_PREP;
	outbound__entry_copy(&run->e, e);
	run->res = xcalloc(e->n_rcpts ? e->n_rcpts : 1, sizeof(*run->res));
	unsigned h = ob_hash(run->e.id);
	run->hnext = ob->buckets[h];
	ob->buckets[h] = run;
	run->next = ob->runs;
	if (ob->runs != NULL)
		ob->runs->prev = run;
	ob->runs = run;
	ob->n_runs++;

	for (size_t i = 0; i < run->e.n_rcpts; i++) {
		const struct queue_rcpt *r = &run->e.rcpts[i];
		if (r->state != QUEUE_RCPT_PENDING && r->state != QUEUE_RCPT_DEFERRED)
			continue;
		const char *domain = ob_rcpt_domain(r->address);
		struct ob_attempt *at = NULL;
		for (size_t k = 0; k < run->n_att && at == NULL; k++) {
			if (strcasecmp(run->att[k]->domain, domain) == 0)
				at = run->att[k];
		}
		if (at == NULL) {
			at = xcalloc(1, sizeof(*at));
			at->run = run;
			at->domain = xstrdup(domain);
			at->dom = ob_domain_get(ob, domain, true);
			const struct route *rt = route_choose(cfg->transports, cfg->n_transports, cfg->smarthosts,
							      cfg->n_smarthosts, run->e.sender, domain);
			if (rt != NULL) {
				at->routed = true;
				at->route_host = xstrdup(rt->host);
				at->port = rt->port;
				at->tls = ob_tls_mode(rt->tls);
				at->verify = rt->verify;
				at->user = rt->user ? xstrdup(rt->user) : NULL;
				at->password_file = rt->password_file ? xstrdup(rt->password_file) : NULL;
			} else {
				at->port = (int)cfg->outbound_port;
				at->tls = strcmp(cfg->outbound_tls, "none") == 0 ? SMTP_CLIENT_TLS_NONE :
					  strcmp(cfg->outbound_tls, "require") == 0 ? SMTP_CLIENT_TLS_REQUIRE :
										      SMTP_CLIENT_TLS_OPPORTUNISTIC;
				at->verify = cfg->outbound_tls_verify;
			}
			at->idx = xcalloc(run->e.n_rcpts, sizeof(size_t));
			at->crcpts = xcalloc(run->e.n_rcpts, sizeof(*at->crcpts));
			run->att = xrealloc(run->att, (run->n_att + 1) * sizeof(*run->att));
			run->att[run->n_att++] = at;
		}
		at->crcpts[at->n_idx] = (struct smtp_client_rcpt){ .address = r->address, .notify = r->notify,
								   .orcpt = r->orcpt };
		at->idx[at->n_idx++] = i;
	}
	run->n_att_open = run->n_att;
	/* The domain counts include attempts still in PREP, so a scan does
	 * not pile up runs for a domain that is full. */
	for (size_t k = 0; k < run->n_att; k++)
		run->att[k]->dom->waiting++;
	run->work.data = run;
	ob->busy++;
	uv_queue_work(ob->svc.loop, &run->work, ob_prep_work, ob_prep_done);
}

/* Every attempt has ended: plan the notices, then commit. */
static void ob_run_finish(struct ob_run *run)
{
	struct outbound *ob = run->ob;
	struct smtp_schedule s;
	struct queue_entry copy;
	struct outbound_result *results = xcalloc(run->e.n_rcpts ? run->e.n_rcpts : 1, sizeof(*results));

	run->now = time(NULL);
	outbound_schedule_from_config(ob->svc.cfg, &s);
	for (size_t i = 0; i < run->e.n_rcpts; i++) {
		results[i] = (struct outbound_result){
			.outcome = run->res[i].outcome,
			.reply = run->res[i].reply,
			.status = run->res[i].status,
			.remote_mta = run->res[i].remote_mta,
		};
	}
	outbound__entry_copy(&copy, &run->e);
	run->dsn = xcalloc(run->e.n_rcpts ? run->e.n_rcpts : 1, sizeof(*run->dsn));
	outbound_apply(&copy, results, run->e.n_rcpts, &s, run->now, 0, run->dsn, &run->v);
	free(results);
	if (run->v.n_dsn_failed + run->v.n_dsn_delayed == 0) {
		queue_entry_free(&copy);
		ob_commit_enqueue(run, 0);
		return;
	}
	run->phase = OB_NOTICE;
	ob->busy++;
	outbound_bounce_send(&ob->svc, ob->q, &copy, run->dsn, run->now, smtp_schedule_expiry(&s, (time_t)copy.arrival),
			     ob_notice_done, run);
	queue_entry_free(&copy);
}

static void ob_notice_done(void *arg, bool ok)
{
	struct ob_run *run = arg;
	struct outbound *ob = run->ob;

	ob->busy--;
	if (!ok)
		log_warn("outbound %s: the notice to <%s> could not be sent; its recipients stay deferred",
			 run->e.id, run->e.sender);
	ob_commit_enqueue(run, ok ? 0 : OUTBOUND_APPLY_HOLD_DSN);
	outbound_kick(ob); /* a notice may have been queued */
}

/* ---- COMMIT ---- */

static void ob_commit_work(uv_work_t *w)
{
	struct outbound *ob = w->data;
	struct smtp_schedule s;
	MDB_txn *txn;
	char *error = NULL;
	int rc;

	outbound_schedule_from_config(ob->svc.cfg, &s);
	if ((rc = mdb_txn_begin(ob->svc.db->env, NULL, 0, &txn)) != 0) {
		log_error("outbound: queue update: %s", mdb_strerror(rc));
		for (struct ob_run *run = ob->commit_batch; run != NULL; run = run->cnext)
			run->commit_failed = true;
		return;
	}
	for (struct ob_run *run = ob->commit_batch; run != NULL && error == NULL; run = run->cnext) {
		struct queue_entry e;
		rc = queue_db_get(txn, ob->svc.db, run->e.id, &e, &error);
		if (rc == 1) {
			run->gone = true; /* `postbote queue del` meanwhile */
			continue;
		}
		if (rc < 0)
			break;
		struct outbound_result *results = xcalloc(e.n_rcpts ? e.n_rcpts : 1, sizeof(*results));
		struct outbound_dsn_rcpt *dsn = xcalloc(e.n_rcpts ? e.n_rcpts : 1, sizeof(*dsn));
		/* Match by position and address: the record is the same
		 * message, but trust nothing. */
		for (size_t i = 0; i < e.n_rcpts && i < run->e.n_rcpts; i++) {
			if (strcmp(e.rcpts[i].address, run->e.rcpts[i].address) != 0)
				continue;
			results[i] = (struct outbound_result){
				.outcome = run->res[i].outcome,
				.reply = run->res[i].reply,
				.status = run->res[i].status,
				.remote_mta = run->res[i].remote_mta,
			};
		}
		outbound_apply(&e, results, e.n_rcpts, &s, run->now, run->apply_flags, dsn, &run->v);
		run->next_attempt = e.next_attempt;
		if (run->v.remove) {
			run->removed = true;
			queue_db_del(txn, ob->svc.db, e.id, &error);
		} else {
			queue_db_put(txn, ob->svc.db, &e, &error);
		}
		free(results);
		free(dsn);
		queue_entry_free(&e);
	}
	if (error == NULL && (rc = mdb_txn_commit(txn)) != 0)
		error = xasprintf("commit: %s", mdb_strerror(rc));
	else if (error != NULL)
		mdb_txn_abort(txn);
	if (error != NULL) {
		log_error("outbound: queue update: %s", error);
		free(error);
		for (struct ob_run *run = ob->commit_batch; run != NULL; run = run->cnext)
			run->commit_failed = true;
		return;
	}
	/* The record is gone: its file follows. A crash before the unlink
	 * leaves a file without a record, which queue_open() removes. */
	for (struct ob_run *run = ob->commit_batch; run != NULL; run = run->cnext) {
		if (!run->removed)
			continue;
		char *path = queue_file_path(ob->svc.cfg, run->e.id);
		if (unlink(path) < 0 && errno != ENOENT)
			log_warn("outbound %s: removing %s: %s", run->e.id, path, strerror(errno));
		free(path);
	}
}

static void ob_commit_start(struct outbound *ob);

static void ob_log_final(struct ob_run *run)
{
	const char *mode = run->apply_flags & OUTBOUND_APPLY_DELIVERED_ONLY ? " (stopping: deliveries only)" : "";

	if (run->commit_failed) {
		log_error("outbound %s: the results could not be recorded; the entry will be tried again", run->e.id);
		return;
	}
	if (run->gone) {
		log_info("outbound %s: removed from the queue during the attempt%s", run->e.id, mode);
		return;
	}
	if (run->removed) {
		log_info("outbound %s: done: delivered=%zu failed=%zu%s, removed from the queue", run->e.id,
			 run->v.delivered, run->v.failed, run->v.expired ? " (expired)" : "");
		return;
	}
	long in = (long)(run->next_attempt - time(NULL));
	log_info("outbound %s: delivered=%zu deferred=%zu failed=%zu, next attempt in %lds%s", run->e.id,
		 run->v.delivered, run->v.deferred, run->v.failed, in < 0 ? 0 : in, mode);
}

static void ob_commit_done(uv_work_t *w, int status)
{
	struct outbound *ob = w->data;
	struct ob_run *batch = ob->commit_batch;
	bool failed = false;

	ob->busy--;
	ob->commit_batch = NULL;
	ob->commit_running = false;
	while (batch != NULL) {
		struct ob_run *run = batch;
		batch = run->cnext;
		if (status != 0)
			run->commit_failed = true;
		failed = failed || run->commit_failed;
		ob_log_final(run);
		ob_run_free(run);
	}
	if (failed)
		ob->paused_until = time(NULL) + OB_PAUSE_S;
	ob_commit_start(ob);
	outbound_kick(ob);
}

static void ob_commit_start(struct outbound *ob)
{
	if (ob->commit_running || ob->commit_pending == NULL)
		return;
	ob->commit_batch = ob->commit_pending;
	ob->commit_pending = NULL;
	ob->commit_running = true;
	ob->commit_work.data = ob;
	ob->busy++;
	uv_queue_work(ob->svc.loop, &ob->commit_work, ob_commit_work, ob_commit_done);
}

static void ob_commit_enqueue(struct ob_run *run, unsigned flags)
{
	struct outbound *ob = run->ob;

	run->phase = OB_COMMIT;
	run->apply_flags = flags;
	run->cnext = ob->commit_pending;
	ob->commit_pending = run;
	ob_commit_start(ob);
}

/* ---- the scheduler ---- */

struct ob_scan {
	struct outbound *ob;
	time_t now;
	int64_t next_due;          /* earliest future next_attempt, 0 = none */
	unsigned started;
	bool full;
};

static unsigned ob_max_runs(const struct outbound *ob)
{
	unsigned n = 4 * ob->svc.cfg->outbound_max_connections;
	return n < 16 ? 16 : n;
}

static int ob_scan_entry(const struct queue_entry *e, void *ctx)
{
	struct ob_scan *sc = ctx;
	struct outbound *ob = sc->ob;

	if (ob_run_find(ob, e->id) != NULL)
		return 0;
	if (e->next_attempt > sc->now) {
		if (sc->next_due == 0 || e->next_attempt < sc->next_due)
			sc->next_due = e->next_attempt;
		return 0;
	}
	if (ob->n_runs >= ob_max_runs(ob)) {
		sc->full = true;
		return 1;
	}
	/* Skip an entry whose every domain already has twice its share of
	 * attempts running or waiting: others get their turn first. */
	unsigned cap = 2 * ob->svc.cfg->outbound_max_per_domain;
	bool any_room = queue_entry_open_rcpts(e) == 0;
	for (size_t i = 0; i < e->n_rcpts && !any_room; i++) {
		const struct queue_rcpt *r = &e->rcpts[i];
		if (r->state != QUEUE_RCPT_PENDING && r->state != QUEUE_RCPT_DEFERRED)
			continue;
		struct ob_domain *d = ob_domain_get(ob, ob_rcpt_domain(r->address), false);
		any_room = d == NULL || d->active + d->waiting < cap;
	}
	if (!any_room) {
		sc->full = true;
		return 0;
	}
	ob_run_start(ob, e);
	sc->started++;
	return 0;
}

static void ob_scan(uv_timer_t *t)
{
	struct outbound *ob = t->data;
	struct ob_scan sc = { .ob = ob, .now = time(NULL) };
	MDB_txn *txn;
	char *error = NULL;
	int rc;

	if (ob->stopping)
		return;
	ob->last_scan_ms = uv_now(ob->svc.loop);
	if (sc.now < ob->paused_until) {
		ob_schedule_scan(ob, (uint64_t)(ob->paused_until - sc.now) * 1000);
		return;
	}
	/* A read transaction on the loop: cheap, and never waits for the
	 * writer (LMDB readers are lock-free). */
	if ((rc = mdb_txn_begin(ob->svc.db->env, NULL, MDB_RDONLY, &txn)) != 0) {
		log_error("outbound: reading the queue: %s", mdb_strerror(rc));
		ob_schedule_scan(ob, OUTBOUND_SCAN_MS);
		return;
	}
	if (queue_db_each(txn, ob->svc.db, ob_scan_entry, &sc, &error) < 0) {
		log_error("outbound: reading the queue: %s", error);
		free(error);
	}
	mdb_txn_abort(txn);
	uint64_t ms = OUTBOUND_SCAN_MS;
	if (!sc.full && sc.next_due != 0) {
		uint64_t due = (uint64_t)(sc.next_due - sc.now) * 1000;
		if (due < ms)
			ms = due;
	}
	ob_schedule_scan(ob, ms);
}

static void ob_schedule_scan(struct outbound *ob, uint64_t ms)
{
	if (ob->stopping)
		return;
	/* Only ever sooner: a kick must not postpone a due scan and a late
	 * scan must not push back a kick. */
	uint64_t due = uv_timer_get_due_in(&ob->timer);
	if (uv_is_active((uv_handle_t *)&ob->timer) && due <= ms)
		return;
	uv_timer_start(&ob->timer, ob_scan, ms, 0);
}

void outbound_kick(struct outbound *ob)
{
	if (ob == NULL || ob->stopping)
		return;
	/* Kicks coalesce, and a stream of them (a busy submission port)
	 * scans the queue at most every OUTBOUND_KICK_MIN_MS. */
	uint64_t since = uv_now(ob->svc.loop) - ob->last_scan_ms;
	ob_schedule_scan(ob, since >= OUTBOUND_KICK_MIN_MS ? 0 : OUTBOUND_KICK_MIN_MS - since);
}

void outbound_queued(void *ob)
{
	outbound_kick(ob);
}

/* ---- life cycle ---- */

int outbound_new(const struct services *svc, struct queue *q, struct outbound **ob_r, char **error_r)
{
	struct outbound *ob = xcalloc(1, sizeof(*ob));
	const char *servers[RESOLVER_MAX_SERVERS + 1];
	size_t n = 0;
	char *copy = xstrdup(svc->cfg->dns_servers ? svc->cfg->dns_servers : "");
	char *save = NULL;

	ob->svc = *svc;
	ob->q = q;
	for (char *w = strtok_r(copy, " \t,", &save); w != NULL; w = strtok_r(NULL, " \t,", &save)) {
		if (n == RESOLVER_MAX_SERVERS + 1)
			break;
		servers[n++] = w;
	}
	int rc = resolver_new(svc->loop, servers, n, 0, 0, &ob->resolver, error_r);
	free(copy);
	if (rc < 0) {
		char *e = *error_r;
		*error_r = xasprintf("dns_servers: %s", e);
		free(e);
		free(ob);
		return -1;
	}
	char *error = NULL;
	if (tls_ctx_new_client(false, NULL, &ob->tls_noverify, &error) < 0) {
		log_error("outbound: TLS client context: %s; outbound TLS is unavailable", error);
		free(error);
		error = NULL;
	}
	if (tls_ctx_new_client(true, NULL, &ob->tls_verify, &error) < 0) {
		log_warn("outbound: verifying TLS client context: %s; routes with verify=yes will defer", error);
		free(error);
	}
	uv_timer_init(svc->loop, &ob->timer);
	ob->timer.data = ob;
	ob_schedule_scan(ob, 0);
	*ob_r = ob;
	return 0;
}

static void ob_timer_closed(uv_handle_t *h)
{
	struct outbound *ob = h->data;
	ob->timer_closed = true;
}

void outbound_stop(struct outbound *ob)
{
	if (ob == NULL || ob->stopping)
		return;
	ob->stopping = true;
	uv_close((uv_handle_t *)&ob->timer, ob_timer_closed);
	for (struct ob_run *run = ob->runs, *next; run != NULL; run = next) {
		next = run->next;
		if (run->phase == OB_PREP) {
			run->abandoned = true;
			continue;
		}
		if (run->phase != OB_ATTEMPTS)
			continue; /* notices and commits finish */
		bool any_delivered = false;
		for (size_t i = 0; i < run->n_att; i++) {
			struct ob_attempt *at = run->att[i];
			if (at->state == AT_WAITING)
				ob_wait_remove(ob, at);
			resolver_cancel(&at->q);
			outbound_conn_abort(&at->conn);
			if (at->state != AT_WAITING && at->state != AT_DONE) {
				ob->n_active--;
				at->dom->active--;
			}
			if (at->dom != NULL)
				ob_domain_release(ob, at->dom);
			at->dom = NULL;
			at->state = AT_DONE;
		}
		for (size_t i = 0; i < run->e.n_rcpts; i++)
			any_delivered = any_delivered || run->res[i].outcome == OUTBOUND_DELIVERED;
		if (any_delivered) {
			/* Record what is certain, so a restart does not send
			 * it again. */
			run->now = time(NULL);
			ob_commit_enqueue(run, OUTBOUND_APPLY_DELIVERED_ONLY);
		} else {
			log_info("outbound %s: attempt abandoned (stopping); it is tried again after a restart",
				 run->e.id);
			ob_run_free(run);
		}
	}
	resolver_free(&ob->resolver);
}

void outbound_free(struct outbound **obp)
{
	struct outbound *ob = *obp;

	if (ob == NULL)
		return;
	*obp = NULL;
	outbound_stop(ob);
	while (ob->busy > 0 || !ob->timer_closed)
		uv_run(ob->svc.loop, UV_RUN_ONCE);
	/* The resolver's handles close in the next iterations. */
	uv_run(ob->svc.loop, UV_RUN_NOWAIT);
	while (ob->runs != NULL)
		ob_run_free(ob->runs);
	while (ob->domains != NULL) {
		struct ob_domain *d = ob->domains;
		ob->domains = d->next;
		free(d->name);
		free(d);
	}
	tls_ctx_unref(&ob->tls_noverify);
	tls_ctx_unref(&ob->tls_verify);
	free(ob);
}
