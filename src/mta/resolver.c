/*
 * DNS lookups for outbound mail with c-ares on the libuv loop.
 *
 * c-ares owns the sockets and the retry logic; this file only tells it
 * when to work. Its sock-state callback says which sockets it wants
 * watched: each gets a uv_poll_t, closed the moment c-ares says it is done
 * with the socket (before c-ares closes the descriptor, so a reused
 * descriptor number never meets a stale watcher). One uv_timer_t follows
 * ares_timeout() and drives retries and timeouts with ares_process_fd().
 *
 * A lookup (struct resolver_query) moves through: WAITING (FIFO, for one
 * of max_running slots) -> RUNNING (one or two ares_query() calls in
 * flight) -> DONE (result kept, on the done list) -> its callback, run from
 * a zero-delay "kick" timer. Callbacks are never run from inside c-ares
 * (a callback may call resolver_free(), and ares_destroy() must not run
 * inside ares_process_fd()), nor from inside resolver_mx()/resolver_addrs()
 * (ares_query() itself may call back at once, e.g. on a malformed name).
 *
 * A cancelled RUNNING lookup cannot be taken back from c-ares 1.18 (it
 * cancels only everything at once), so it stays allocated, flagged, until
 * c-ares calls back, and then is freed silently.
 *
 * What this must never do: block, read /etc/hosts or apply search domains
 * (only ares_query(), never ares_search() or ares_gethostbyname()), call a
 * callback twice or after cancel, or keep unbounded state for a peer's
 * answer (answers are capped as they are copied out).
 */
#include "mta/resolver.h"

#include <ares.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/xalloc.h"

#define RESOLVER_DEFAULT_TIMEOUT_MS 2000
#define RESOLVER_DEFAULT_TRIES 2
#define RESOLVER_MAX_TRIES 8

enum resolver_state {
	RESOLVER_STATE_WAITING = 1,
	RESOLVER_STATE_RUNNING,
	RESOLVER_STATE_DONE,
	RESOLVER_STATE_DELIVERING,
};

enum resolver_kind {
	RESOLVER_KIND_MX = 1,
	RESOLVER_KIND_ADDRS,
};

/* One DNS query of a lookup: what c-ares gets as its callback argument. */
struct resolver_sub {
	struct resolver_query *q;
	int type;         /* ns_t_mx, ns_t_a, ns_t_aaaa */
	int ares_status;  /* as c-ares reported it (after parsing) */
};

struct resolver_query {
	struct resolver *r;
	struct resolver_query *prev, *next;
	enum resolver_state state;
	enum resolver_kind kind;
	bool want_ipv6;
	bool cancelled;
	unsigned outstanding;         /* subs in flight in c-ares */
	struct resolver_sub sub[2];   /* MX, or A and AAAA */
	void *arg;
	union {
		resolver_mx_cb mx;
		resolver_addrs_cb addrs;
	} cb;
	/* Allocated when the first answer arrives (or at once when the
	 * lookup is answered without DNS); one of the two. */
	struct resolver_mx_result *mx;
	struct resolver_addrs_result *addrs;
	char name[RESOLVER_NAME_MAX + 2];
};

struct resolver_list {
	struct resolver_query *head, *tail;
	unsigned n;
};

/* A socket c-ares asked us to watch. */
struct resolver_sock {
	uv_poll_t poll;
	struct resolver *r;
	ares_socket_t fd;
	struct resolver_sock *next; /* on r->socks while open */
};

struct resolver {
	uv_loop_t *loop;
	ares_channel channel;
	bool closing;
	uv_timer_t timer;     /* ares_timeout() */
	uv_timer_t kick;      /* deliver results, start waiting lookups */
	unsigned handles_open;
	struct resolver_sock *socks;
	struct resolver_list waiting, running, done;
	unsigned pending;
	unsigned max_running, peak_running;
	unsigned long queries;
	unsigned nservers, timeout_ms, tries;
};

/* ---- Lists ---- */

static void resolver_list_remove(struct resolver_list *l, struct resolver_query *q)
{
	if (q->prev)
		q->prev->next = q->next;
	else
		l->head = q->next;
	if (q->next)
		q->next->prev = q->prev;
	else
		l->tail = q->prev;
	q->prev = q->next = NULL;
	l->n--;
}

static void resolver_list_append(struct resolver_list *l, struct resolver_query *q)
{
	q->next = NULL;
	q->prev = l->tail;
	if (l->tail)
		l->tail->next = q;
	else
		l->head = q;
	l->tail = q;
	l->n++;
}

static void resolver_query_free(struct resolver_query *q)
{
	free(q->mx);
	free(q->addrs);
	free(q);
}

static void resolver_list_free(struct resolver_list *l)
{
	while (l->head != NULL) {
		struct resolver_query *q = l->head;
		resolver_list_remove(l, q);
		resolver_query_free(q);
	}
}

/* ---- Names and servers ---- */

/* RFC 1035 2.3.4 and 2.3.1 (with '_', which mail meets in the wild). A
 * backslash would start a c-ares escape, so it is refused with the rest. */
static bool resolver_name_valid(const char *name)
{
	size_t len = strlen(name), label = 0;

	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len > RESOLVER_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
		      c == '_'))
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0;
}

static int resolver_parse_port(const char *s, int *port_r)
{
	char *end;
	unsigned long v;

	if (*s < '0' || *s > '9')
		return -1;
	v = strtoul(s, &end, 10);
	if (*end != '\0' || v == 0 || v > 65535)
		return -1;
	*port_r = (int)v;
	return 0;
}

/* "IP", "IP:PORT", "[IPv6]", "[IPv6]:PORT" or a bare IPv6 address. */
static int resolver_parse_server(const char *s, struct ares_addr_port_node *node)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *port = NULL;
	size_t hlen;

	node->udp_port = node->tcp_port = NS_DEFAULTPORT;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (close == NULL)
			return -1;
		hlen = (size_t)(close - s - 1);
		if (close[1] == ':')
			port = close + 2;
		else if (close[1] != '\0')
			return -1;
		if (hlen >= sizeof(host))
			return -1;
		memcpy(host, s + 1, hlen);
		host[hlen] = '\0';
		if (inet_pton(AF_INET6, host, &node->addr.addr6) != 1)
			return -1;
		node->family = AF_INET6;
	} else {
		const char *colon = strchr(s, ':');
		if (colon != NULL && strchr(colon + 1, ':') != NULL) {
			/* Two colons or more: a bare IPv6 address. */
			if (inet_pton(AF_INET6, s, &node->addr.addr6) != 1)
				return -1;
			node->family = AF_INET6;
		} else {
			hlen = colon ? (size_t)(colon - s) : strlen(s);
			if (hlen >= sizeof(host))
				return -1;
			memcpy(host, s, hlen);
			host[hlen] = '\0';
			if (inet_pton(AF_INET, host, &node->addr.addr4) != 1)
				return -1;
			node->family = AF_INET;
			if (colon)
				port = colon + 1;
		}
	}
	if (port != NULL) {
		int p;
		if (resolver_parse_port(port, &p) < 0)
			return -1;
		node->udp_port = node->tcp_port = p;
	}
	return 0;
}

/* ---- Results ---- */

static enum resolver_status resolver_status_of(int ares_status)
{
	switch (ares_status) {
	case ARES_SUCCESS:
		return RESOLVER_OK;
	case ARES_ENODATA:
		return RESOLVER_NODATA;
	case ARES_ENOTFOUND:
	case ARES_EBADNAME: /* names are checked first; c-ares refusing one is final */
		return RESOLVER_NXDOMAIN;
	default:
		/* ETIMEOUT, ESERVFAIL, EREFUSED, ECONNREFUSED, EFORMERR,
		 * ENOTIMP, EBADRESP, ENOMEM, ... */
		return RESOLVER_TEMPFAIL;
	}
}

static const char *resolver_error_of(int ares_status)
{
	enum resolver_status st = resolver_status_of(ares_status);
	return st == RESOLVER_TEMPFAIL || st == RESOLVER_NXDOMAIN ? ares_strerror(ares_status) : NULL;
}

/* Keep the RESOLVER_MAX_MX lowest preferences, equal ones in answer order. */
static void resolver_take_mx(struct resolver_query *q, const struct ares_mx_reply *list)
{
	struct resolver_mx_result *res = q->mx;

	for (const struct ares_mx_reply *m = list; m != NULL; m = m->next) {
		size_t hlen = strlen(m->host);
		if (hlen > 0 && m->host[hlen - 1] == '.')
			hlen--;
		if (hlen > RESOLVER_NAME_MAX) {
			res->truncated = true;
			continue;
		}
		if (res->count == RESOLVER_MAX_MX) {
			res->truncated = true;
			if (m->priority >= res->mx[RESOLVER_MAX_MX - 1].preference)
				continue;
			res->count--; /* the last (highest preference) gives way */
		}
		size_t at = res->count;
		while (at > 0 && res->mx[at - 1].preference > m->priority)
			at--;
		memmove(&res->mx[at + 1], &res->mx[at], (res->count - at) * sizeof(res->mx[0]));
		res->mx[at].preference = m->priority;
		if (hlen == 0) {
			/* The root, RFC 7505's null MX: c-ares spells it "". */
			strcpy(res->mx[at].host, ".");
		} else {
			memcpy(res->mx[at].host, m->host, hlen);
			res->mx[at].host[hlen] = '\0';
		}
		res->count++;
	}
	/* RFC 7505 3: a single MX with a zero-length exchange. */
	res->null_mx = res->count == 1 && !res->truncated && strcmp(res->mx[0].host, ".") == 0;
}

static void resolver_answer_mx(struct resolver_query *q, struct resolver_sub *s, unsigned char *abuf, int alen)
{
	struct ares_mx_reply *list = NULL;

	if (s->ares_status == ARES_SUCCESS) {
		s->ares_status = ares_parse_mx_reply(abuf, alen, &list);
		if (s->ares_status == ARES_SUCCESS)
			resolver_take_mx(q, list);
		if (list != NULL)
			ares_free_data(list);
	}
	q->mx->status = resolver_status_of(s->ares_status);
	q->mx->error = resolver_error_of(s->ares_status);
	if (q->mx->status == RESOLVER_OK && q->mx->count == 0) {
		/* Every record was too long to report. */
		q->mx->status = RESOLVER_TEMPFAIL;
		q->mx->error = "no usable MX record";
	}
	if (q->mx->status != RESOLVER_OK)
		q->mx->count = 0;
}

static void resolver_answer_addr(struct resolver_query *q, struct resolver_sub *s, unsigned char *abuf, int alen)
{
	struct resolver_addrs_result *res = q->addrs;
	/* One more than fits, to know whether there were more. */
	int n = RESOLVER_MAX_ADDRS + 1;

	if (s->ares_status != ARES_SUCCESS)
		return;
	if (s->type == ns_t_a) {
		struct ares_addrttl ttls[RESOLVER_MAX_ADDRS + 1];
		s->ares_status = ares_parse_a_reply(abuf, alen, NULL, ttls, &n);
		if (s->ares_status == ARES_SUCCESS && n > 0) {
			if (n > RESOLVER_MAX_ADDRS) {
				res->truncated = true;
				n = RESOLVER_MAX_ADDRS;
			}
			for (int i = 0; i < n; i++)
				res->a[i] = ttls[i].ipaddr;
			res->n_a = (size_t)n;
		}
	} else {
		struct ares_addr6ttl ttls[RESOLVER_MAX_ADDRS + 1];
		s->ares_status = ares_parse_aaaa_reply(abuf, alen, NULL, ttls, &n);
		if (s->ares_status == ARES_SUCCESS && n > 0) {
			if (n > RESOLVER_MAX_ADDRS) {
				res->truncated = true;
				n = RESOLVER_MAX_ADDRS;
			}
			for (int i = 0; i < n; i++)
				memcpy(&res->aaaa[i], &ttls[i].ip6addr, sizeof(res->aaaa[i]));
			res->n_aaaa = (size_t)n;
		}
	}
	/* An answer of only a CNAME: no address of this family. */
	if (s->ares_status == ARES_SUCCESS && n == 0)
		s->ares_status = ARES_ENODATA;
}

/* The status of an address lookup once every query has answered. */
static void resolver_finish_addrs(struct resolver_query *q)
{
	struct resolver_addrs_result *res = q->addrs;
	unsigned nsubs = q->want_ipv6 ? 2 : 1;
	bool all_nx = true;
	int tempfail = ARES_SUCCESS, nx = ARES_SUCCESS;

	if (res->n_a + res->n_aaaa > 0) {
		res->status = RESOLVER_OK;
		return;
	}
	for (unsigned i = 0; i < nsubs; i++) {
		int st = q->sub[i].ares_status;
		switch (resolver_status_of(st)) {
		case RESOLVER_TEMPFAIL:
			if (tempfail == ARES_SUCCESS)
				tempfail = st;
			all_nx = false;
			break;
		case RESOLVER_NXDOMAIN:
			nx = st;
			break;
		default:
			all_nx = false;
			break;
		}
	}
	if (tempfail != ARES_SUCCESS) {
		res->status = RESOLVER_TEMPFAIL;
		res->error = ares_strerror(tempfail);
	} else if (all_nx) {
		res->status = RESOLVER_NXDOMAIN;
		res->error = ares_strerror(nx);
	} else {
		res->status = RESOLVER_NODATA;
	}
}

/* ---- Scheduling ---- */

static void resolver_kick_fired(uv_timer_t *t);

static void resolver_kick(struct resolver *r)
{
	if (!r->closing)
		uv_timer_start(&r->kick, resolver_kick_fired, 0, 0);
}

static void resolver_done(struct resolver *r, struct resolver_query *q)
{
	q->state = RESOLVER_STATE_DONE;
	resolver_list_append(&r->done, q);
	resolver_kick(r);
}

static void resolver_timer_fired(uv_timer_t *t);

/* Follow c-ares's next deadline. */
static void resolver_timer_update(struct resolver *r)
{
	struct timeval tv, *next;

	if (r->closing)
		return;
	next = ares_timeout(r->channel, NULL, &tv);
	if (next == NULL) {
		uv_timer_stop(&r->timer);
		return;
	}
	uint64_t ms = (uint64_t)next->tv_sec * 1000 + ((uint64_t)next->tv_usec + 999) / 1000;
	uv_timer_start(&r->timer, resolver_timer_fired, ms, 0);
}

/* c-ares's answer to one query. Runs inside ares_query(), ares_process_fd()
 * or ares_destroy(): it must not call back the owner. */
static void resolver_answered(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct resolver_sub *s = arg;
	struct resolver_query *q = s->q;
	struct resolver *r = q->r;

	(void)timeouts;
	q->outstanding--;
	s->ares_status = status;
	if (!q->cancelled && !r->closing) {
		if (q->kind == RESOLVER_KIND_MX)
			resolver_answer_mx(q, s, abuf, alen);
		else
			resolver_answer_addr(q, s, abuf, alen);
	}
	if (q->outstanding > 0)
		return;
	resolver_list_remove(&r->running, q);
	if (q->cancelled || r->closing) {
		resolver_query_free(q);
		resolver_kick(r); /* a slot is free */
		return;
	}
	if (q->kind == RESOLVER_KIND_ADDRS)
		resolver_finish_addrs(q);
	resolver_done(r, q);
}

static void resolver_start(struct resolver *r, struct resolver_query *q)
{
	unsigned nsubs;

	q->state = RESOLVER_STATE_RUNNING;
	resolver_list_append(&r->running, q);
	if (r->running.n > r->peak_running)
		r->peak_running = r->running.n;
	if (q->kind == RESOLVER_KIND_MX) {
		q->mx = xcalloc(1, sizeof(*q->mx));
		q->sub[0].type = ns_t_mx;
		nsubs = 1;
	} else {
		q->addrs = xcalloc(1, sizeof(*q->addrs));
		q->sub[0].type = ns_t_a;
		q->sub[1].type = ns_t_aaaa;
		nsubs = q->want_ipv6 ? 2 : 1;
	}
	/* Count them all first: the first may be answered at once. */
	q->outstanding = nsubs;
	for (unsigned i = 0; i < nsubs; i++) {
		q->sub[i].q = q;
		r->queries++;
		ares_query(r->channel, q->name, ns_c_in, q->sub[i].type, resolver_answered, &q->sub[i]);
	}
}

/* Start waiting lookups while there are slots. */
static void resolver_pump(struct resolver *r)
{
	bool started = false;

	while (!r->closing && r->running.n < r->max_running && r->waiting.head != NULL) {
		struct resolver_query *q = r->waiting.head;
		resolver_list_remove(&r->waiting, q);
		resolver_start(r, q);
		started = true;
	}
	if (started)
		resolver_timer_update(r);
}

static void resolver_kick_fired(uv_timer_t *t)
{
	struct resolver *r = t->data;
	/* Only what is done now: results that a callback causes wait for
	 * the next turn of the loop. */
	unsigned n = r->done.n;

	while (n-- > 0 && r->done.head != NULL && !r->closing) {
		struct resolver_query *q = r->done.head;
		resolver_list_remove(&r->done, q);
		q->state = RESOLVER_STATE_DELIVERING;
		r->pending--;
		if (q->kind == RESOLVER_KIND_MX)
			q->cb.mx(q->arg, q->mx);
		else
			q->cb.addrs(q->arg, q->addrs);
		resolver_query_free(q);
	}
	if (r->closing)
		return;
	resolver_pump(r);
	if (r->done.head != NULL)
		resolver_kick(r);
}

/* ---- Sockets ---- */

static void resolver_handle_closed(uv_handle_t *h);

static void resolver_poll_fired(uv_poll_t *poll, int status, int events)
{
	struct resolver_sock *s = poll->data;
	struct resolver *r = s->r;
	ares_socket_t fd = s->fd;
	ares_socket_t rfd = ARES_SOCKET_BAD, wfd = ARES_SOCKET_BAD;

	/* On an error let c-ares read and write, to find it and move on. */
	if (status < 0 || (events & (UV_READABLE | UV_DISCONNECT)))
		rfd = fd;
	if (status < 0 || (events & UV_WRITABLE))
		wfd = fd;
	/* s may be closed (and its fd reused) inside. */
	ares_process_fd(r->channel, rfd, wfd);
	resolver_timer_update(r);
}

static struct resolver_sock *resolver_sock_find(struct resolver *r, ares_socket_t fd, struct resolver_sock ***link_r)
{
	struct resolver_sock **link = &r->socks;

	for (; *link != NULL; link = &(*link)->next) {
		if ((*link)->fd == fd) {
			if (link_r)
				*link_r = link;
			return *link;
		}
	}
	return NULL;
}

/* c-ares's sock-state callback: watch fd for what it wants, or stop and
 * close the watcher (synchronously, while fd is still open) when it wants
 * nothing: c-ares closes the descriptor right after. */
static void resolver_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct resolver *r = data;
	struct resolver_sock **link = NULL;
	struct resolver_sock *s = resolver_sock_find(r, fd, &link);

	if (!readable && !writable) {
		if (s != NULL) {
			*link = s->next;
			uv_close((uv_handle_t *)&s->poll, resolver_handle_closed);
		}
		return;
	}
	if (s == NULL) {
		s = xcalloc(1, sizeof(*s));
		s->r = r;
		s->fd = fd;
		int rc = uv_poll_init_socket(r->loop, &s->poll, fd);
		if (rc < 0) {
			/* The query on this socket then times out. */
			log_error("resolver: cannot watch a DNS socket: %s", uv_strerror(rc));
			free(s);
			return;
		}
		s->poll.data = s;
		r->handles_open++;
		s->next = r->socks;
		r->socks = s;
	}
	int events = (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0);
	int rc = uv_poll_start(&s->poll, events, resolver_poll_fired);
	if (rc < 0)
		log_error("resolver: cannot watch a DNS socket: %s", uv_strerror(rc));
}

static void resolver_timer_fired(uv_timer_t *t)
{
	struct resolver *r = t->data;

	ares_process_fd(r->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	resolver_timer_update(r);
}

/* ---- Life cycle ---- */

static void resolver_handle_closed(uv_handle_t *h)
{
	struct resolver *r;

	if (h->type == UV_POLL) {
		struct resolver_sock *s = h->data;
		r = s->r;
		free(s);
	} else {
		r = h->data;
	}
	if (--r->handles_open == 0 && r->closing) {
		ares_library_cleanup();
		free(r);
	}
}

int resolver_new(uv_loop_t *loop, const char *const *servers, size_t n_servers, unsigned timeout_ms,
		 unsigned tries, struct resolver **r_r, char **error_r)
{
	struct ares_addr_port_node nodes[RESOLVER_MAX_SERVERS];
	struct ares_options opts;
	int optmask, rc;

	if (n_servers > RESOLVER_MAX_SERVERS) {
		*error_r = xasprintf("too many DNS servers (at most %d)", RESOLVER_MAX_SERVERS);
		return -1;
	}
	memset(nodes, 0, sizeof(nodes));
	for (size_t i = 0; i < n_servers; i++) {
		if (resolver_parse_server(servers[i], &nodes[i]) < 0) {
			*error_r = xasprintf("bad DNS server \"%s\" (want IP, IP:PORT or [IPv6]:PORT)", servers[i]);
			return -1;
		}
		nodes[i].next = i + 1 < n_servers ? &nodes[i + 1] : NULL;
	}
	if (timeout_ms == 0)
		timeout_ms = RESOLVER_DEFAULT_TIMEOUT_MS;
	if (tries == 0)
		tries = RESOLVER_DEFAULT_TRIES;
	if (tries > RESOLVER_MAX_TRIES)
		tries = RESOLVER_MAX_TRIES;

	rc = ares_library_init(ARES_LIB_INIT_ALL);
	if (rc != ARES_SUCCESS) {
		*error_r = xasprintf("c-ares: %s", ares_strerror(rc));
		return -1;
	}
	struct resolver *r = xcalloc(1, sizeof(*r));
	r->loop = loop;
	r->max_running = RESOLVER_DEFAULT_MAX_RUNNING;
	r->timeout_ms = timeout_ms;
	r->tries = tries;

	memset(&opts, 0, sizeof(opts));
	/* Plain DNS queries only: no search list, no HOSTALIASES, no hosts
	 * file, servers in the order given. */
	opts.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
	opts.timeout = (int)timeout_ms;
	opts.tries = (int)tries;
	opts.lookups = (char *)"b";
	opts.sock_state_cb = resolver_sock_state;
	opts.sock_state_cb_data = r;
	optmask = ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_LOOKUPS | ARES_OPT_SOCK_STATE_CB |
		  ARES_OPT_NOROTATE;
	rc = ares_init_options(&r->channel, &opts, optmask);
	if (rc == ARES_SUCCESS && n_servers > 0)
		rc = ares_set_servers_ports(r->channel, nodes);
	if (rc != ARES_SUCCESS) {
		*error_r = xasprintf("c-ares: %s", ares_strerror(rc));
		if (r->channel != NULL)
			ares_destroy(r->channel);
		ares_library_cleanup();
		free(r);
		return -1;
	}
	if (n_servers > 0) {
		r->nservers = (unsigned)n_servers;
	} else {
		struct ares_addr_port_node *list = NULL;
		r->nservers = 0;
		if (ares_get_servers_ports(r->channel, &list) == ARES_SUCCESS) {
			for (struct ares_addr_port_node *n = list; n != NULL; n = n->next)
				r->nservers++;
			ares_free_data(list);
		}
		if (r->nservers == 0)
			r->nservers = 1;
	}
	uv_timer_init(loop, &r->timer);
	r->timer.data = r;
	uv_timer_init(loop, &r->kick);
	r->kick.data = r;
	r->handles_open = 2;
	*r_r = r;
	return 0;
}

void resolver_free(struct resolver **rp)
{
	struct resolver *r = *rp;

	if (r == NULL)
		return;
	*rp = NULL;
	r->closing = true;
	/* Calls resolver_answered() (ARES_EDESTRUCTION) for every running
	 * query, which frees it, and resolver_sock_state() for every socket,
	 * which closes its watcher. */
	ares_destroy(r->channel);
	while (r->socks != NULL) {
		struct resolver_sock *s = r->socks;
		r->socks = s->next;
		uv_close((uv_handle_t *)&s->poll, resolver_handle_closed);
	}
	resolver_list_free(&r->running); /* empty unless c-ares skipped one */
	resolver_list_free(&r->waiting);
	resolver_list_free(&r->done);
	r->pending = 0;
	uv_close((uv_handle_t *)&r->timer, resolver_handle_closed);
	uv_close((uv_handle_t *)&r->kick, resolver_handle_closed);
}

void resolver_set_max_running(struct resolver *r, unsigned max_running)
{
	r->max_running = max_running ? max_running : 1;
	resolver_kick(r);
}

uint64_t resolver_max_wait_ms(const struct resolver *r)
{
	/* c-ares 1.18 waits timeout << round on round 0 .. tries-1 over
	 * every server. */
	uint64_t rounds = ((uint64_t)1 << r->tries) - 1;
	return (uint64_t)r->nservers * r->timeout_ms * rounds + 100;
}

/* ---- Lookups ---- */

static struct resolver_query *resolver_query_new(struct resolver *r, enum resolver_kind kind, const char *name,
						 void *arg)
{
	struct resolver_query *q = xcalloc(1, sizeof(*q));

	q->r = r;
	q->kind = kind;
	q->arg = arg;
	snprintf(q->name, sizeof(q->name), "%s", name);
	r->pending++;
	return q;
}

/* Queue q for a slot, or answer it TEMPFAIL when the queue is full. */
static void resolver_submit(struct resolver *r, struct resolver_query *q)
{
	if (r->waiting.n >= RESOLVER_MAX_WAITING) {
		const char *why = "too many DNS lookups waiting";
		if (q->kind == RESOLVER_KIND_MX) {
			q->mx = xcalloc(1, sizeof(*q->mx));
			q->mx->status = RESOLVER_TEMPFAIL;
			q->mx->error = why;
		} else {
			q->addrs = xcalloc(1, sizeof(*q->addrs));
			q->addrs->status = RESOLVER_TEMPFAIL;
			q->addrs->error = why;
		}
		resolver_done(r, q);
		return;
	}
	q->state = RESOLVER_STATE_WAITING;
	resolver_list_append(&r->waiting, q);
	resolver_pump(r);
}

struct resolver_query *resolver_mx(struct resolver *r, const char *domain, resolver_mx_cb cb, void *arg)
{
	if (cb == NULL || r->closing || !resolver_name_valid(domain))
		return NULL;
	struct resolver_query *q = resolver_query_new(r, RESOLVER_KIND_MX, domain, arg);
	q->cb.mx = cb;
	resolver_submit(r, q);
	return q;
}

struct resolver_query *resolver_addrs(struct resolver *r, const char *host, bool want_ipv6,
				      resolver_addrs_cb cb, void *arg)
{
	struct in_addr in4;
	struct in6_addr in6;

	if (cb == NULL || r->closing)
		return NULL;
	bool is4 = inet_pton(AF_INET, host, &in4) == 1;
	bool is6 = !is4 && inet_pton(AF_INET6, host, &in6) == 1;
	if (!is4 && !is6 && !resolver_name_valid(host))
		return NULL;
	struct resolver_query *q = resolver_query_new(r, RESOLVER_KIND_ADDRS, is4 || is6 ? "" : host, arg);
	q->cb.addrs = cb;
	q->want_ipv6 = want_ipv6;
	if (is4 || is6) {
		/* A literal: no DNS, but still answered from the loop. */
		q->addrs = xcalloc(1, sizeof(*q->addrs));
		if (is6 && !want_ipv6) {
			q->addrs->status = RESOLVER_NODATA;
		} else {
			q->addrs->status = RESOLVER_OK;
			if (is4) {
				q->addrs->a[0] = in4;
				q->addrs->n_a = 1;
			} else {
				q->addrs->aaaa[0] = in6;
				q->addrs->n_aaaa = 1;
			}
		}
		resolver_done(r, q);
		return q;
	}
	resolver_submit(r, q);
	return q;
}

void resolver_cancel(struct resolver_query **qp)
{
	struct resolver_query *q = *qp;

	if (q == NULL)
		return;
	*qp = NULL;
	struct resolver *r = q->r;
	switch (q->state) {
	case RESOLVER_STATE_WAITING:
		resolver_list_remove(&r->waiting, q);
		break;
	case RESOLVER_STATE_DONE:
		resolver_list_remove(&r->done, q);
		break;
	case RESOLVER_STATE_RUNNING:
		/* Freed when c-ares is done with it (resolver_answered). */
		if (!q->cancelled) {
			q->cancelled = true;
			r->pending--;
		}
		return;
	case RESOLVER_STATE_DELIVERING:
		return;
	}
	r->pending--;
	resolver_query_free(q);
}

void resolver_get_stats(const struct resolver *r, struct resolver_stats *stats_r)
{
	stats_r->pending = r->pending;
	stats_r->waiting = r->waiting.n;
	stats_r->running = r->running.n;
	stats_r->peak_running = r->peak_running;
	stats_r->queries = r->queries;
}

const char *resolver_status_name(enum resolver_status status)
{
	switch (status) {
	case RESOLVER_OK:
		return "ok";
	case RESOLVER_NODATA:
		return "nodata";
	case RESOLVER_NXDOMAIN:
		return "nxdomain";
	case RESOLVER_TEMPFAIL:
		return "tempfail";
	}
	return "?";
}
