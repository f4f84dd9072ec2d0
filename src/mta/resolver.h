#ifndef POSTBOTE_MTA_RESOLVER_H
#define POSTBOTE_MTA_RESOLVER_H

/*
 * Asynchronous DNS for outbound mail: MX lookups (RFC 5321 5.1) and the
 * addresses of a host, with c-ares running on the libuv loop. Nothing here
 * blocks and nothing uses a thread (DESIGN.md contract 2).
 *
 * Every answer says which of four things happened, because the outbound
 * queue acts differently on each (RFC 5321 5.1):
 *   RESOLVER_OK        records found (see the result);
 *   RESOLVER_NODATA    the name exists but has no record of the type asked:
 *                      for MX, deliver to the domain's own A/AAAA ("implicit
 *                      MX");
 *   RESOLVER_NXDOMAIN  the name does not exist: a permanent failure;
 *   RESOLVER_TEMPFAIL  no usable answer: timeout, SERVFAIL, REFUSED, a
 *                      malformed reply, no reachable server, too many
 *                      lookups waiting. Try again later.
 *
 * Lookups go to DNS only. They are plain queries (ares_query): no search
 * domains, no ndots, no HOSTALIASES and no /etc/hosts, whatever
 * /etc/resolv.conf says. A smarthost that is known only from /etc/hosts
 * must be configured as an IP address; resolver_addrs() answers IP literals
 * itself without asking DNS.
 *
 * Callbacks run on the loop, never inside the call that started the lookup
 * (libuv's rule), and exactly once for a lookup that is neither cancelled
 * nor cut short by resolver_free(). A callback may start new lookups,
 * cancel others, or free the resolver.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <uv.h>

/* Longest domain name in presentation form, without a trailing dot
 * (RFC 1035 2.3.4: 255 octets on the wire). */
#define RESOLVER_NAME_MAX 253
/* Most MX records one answer reports: the lowest preferences win. */
#define RESOLVER_MAX_MX 32
/* Most addresses of each family one answer reports. */
#define RESOLVER_MAX_ADDRS 32
/* Most servers resolver_new() takes. */
#define RESOLVER_MAX_SERVERS 8
/* Lookups sent to DNS at once, unless resolver_set_max_running() says
 * otherwise; the rest wait in a FIFO. */
#define RESOLVER_DEFAULT_MAX_RUNNING 64
/* Lookups that may wait for a slot; past that a new lookup is answered
 * RESOLVER_TEMPFAIL (asynchronously, as always). */
#define RESOLVER_MAX_WAITING 4096

enum resolver_status {
	RESOLVER_OK = 0,
	RESOLVER_NODATA,
	RESOLVER_NXDOMAIN,
	RESOLVER_TEMPFAIL,
};

struct resolver_mx {
	uint16_t preference;
	/* Without a trailing dot; "." for the root (a null MX). */
	char host[RESOLVER_NAME_MAX + 1];
};

struct resolver_mx_result {
	enum resolver_status status;
	/* For RESOLVER_TEMPFAIL and RESOLVER_NXDOMAIN, a short reason for
	 * logs and bounces ("Timeout while contacting DNS servers"), a static
	 * string; otherwise NULL. */
	const char *error;
	/* RFC 7505: the answer is exactly one MX whose host is the root
	 * ("."), i.e. the domain accepts no mail. Reported, not acted on:
	 * the caller decides. */
	bool null_mx;
	/* More records came than RESOLVER_MAX_MX, or some had names longer
	 * than RESOLVER_NAME_MAX (those are left out). */
	bool truncated;
	/* Records by ascending preference; records of equal preference stay
	 * in the order of the answer (RFC 5321 5.1 says to randomize those:
	 * the caller does). count is 0 unless status is RESOLVER_OK. */
	size_t count;
	struct resolver_mx mx[RESOLVER_MAX_MX];
};

/* The two families apart, each in answer order, as smtp_mx_targets()
 * (smtp/mx_order.h) takes them: it interleaves them (RFC 8305 4). */
struct resolver_addrs_result {
	enum resolver_status status;
	const char *error; /* as in struct resolver_mx_result */
	bool truncated;    /* a family had more than RESOLVER_MAX_ADDRS */
	/* Both 0 unless status is RESOLVER_OK; n_aaaa is 0 without want_ipv6. */
	size_t n_a, n_aaaa;
	struct in_addr a[RESOLVER_MAX_ADDRS];
	struct in6_addr aaaa[RESOLVER_MAX_ADDRS];
};

struct resolver;
struct resolver_query;

/* res and everything in it is valid only during the call. */
typedef void (*resolver_mx_cb)(void *arg, const struct resolver_mx_result *res);
typedef void (*resolver_addrs_cb)(void *arg, const struct resolver_addrs_result *res);

/*
 * A resolver on loop. servers lists n_servers name servers as "IP",
 * "IP:PORT", "[IPv6]" or "[IPv6]:PORT" (a bare IPv6 address takes no
 * port); they are asked in order. With n_servers == 0 the servers come
 * from /etc/resolv.conf (c-ares falls back to 127.0.0.1 when it has
 * none). Tests and benchmarks always name their own servers.
 *
 * timeout_ms is how long the first try waits for a server (0: 2000);
 * tries is how many times each server is asked (0: 2). c-ares doubles the
 * wait on each round over the servers, so one lookup ends after at most
 * resolver_max_wait_ms() (a little more for TCP fallback on truncated
 * answers). An answer of SERVFAIL or REFUSED moves on to the next server
 * at once.
 *
 * Reads /etc/resolv.conf (even with servers given, for its options; the
 * servers given and the settings above win): call it at startup or on a
 * configuration reload, not per message.
 *
 * Returns 0, or -1 with *error_r (caller frees): a malformed server, too
 * many servers, or c-ares failed to start.
 */
int resolver_new(uv_loop_t *loop, const char *const *servers, size_t n_servers, unsigned timeout_ms,
		 unsigned tries, struct resolver **r_r, char **error_r);

/* Cancel every lookup (their callbacks never run), close c-ares's sockets
 * (ares_destroy) and the resolver's handles. The memory is freed in close
 * callbacks, so the loop must run once more (uv_run until it returns, as
 * for any libuv handle) before uv_loop_close(). May be called from inside a
 * resolver callback. NULL is a no-op; *r is set to NULL. */
void resolver_free(struct resolver **r);

/* How many lookups are sent to DNS at once (at least 1). Lowering it does
 * not stop lookups already running. */
void resolver_set_max_running(struct resolver *r, unsigned max_running);

/* The longest a lookup that reached c-ares can take before its callback:
 * servers × timeout × (2^tries − 1), plus a small margin. */
uint64_t resolver_max_wait_ms(const struct resolver *r);

/*
 * The MX records of domain (ASCII; an internationalized domain must be
 * given as A-labels, RFC 5890). cb(arg, result) runs later. Returns a
 * handle for resolver_cancel(), valid until cb starts or the lookup is
 * cancelled; or NULL without calling cb when cb is NULL or domain is not a
 * valid name: empty, longer than RESOLVER_NAME_MAX, an empty label or one
 * longer than 63 octets, or a character other than letters, digits, '-'
 * and '_' in a label (a trailing dot is allowed). For mail, an invalid
 * domain is a permanent failure.
 */
struct resolver_query *resolver_mx(struct resolver *r, const char *domain, resolver_mx_cb cb, void *arg);

/*
 * The addresses of host: A records, and AAAA records too when want_ipv6
 * (both queries run at once). The status is RESOLVER_OK when either
 * family has addresses (even if the other query failed); otherwise
 * RESOLVER_TEMPFAIL if a query failed, RESOLVER_NXDOMAIN if every query
 * said the name does not exist, else RESOLVER_NODATA. An IPv4 or IPv6
 * literal ("192.0.2.1", "2001:db8::1") is answered without DNS (an IPv6
 * literal with !want_ipv6 gives RESOLVER_NODATA). Returns a handle, or
 * NULL exactly as resolver_mx().
 */
struct resolver_query *resolver_addrs(struct resolver *r, const char *host, bool want_ipv6,
				      resolver_addrs_cb cb, void *arg);

/*
 * Drop the lookup: its callback will not run, and *q is set to NULL. A
 * lookup already sent to DNS keeps its slot (counted by max_running) until
 * c-ares finishes with it, at worst resolver_max_wait_ms(); its answer is
 * discarded. A no-op when *q is NULL, and from inside the lookup's own
 * callback. Once that callback has returned the handle is gone: the owner
 * forgets it (sets its pointer to NULL) first thing in the callback.
 */
void resolver_cancel(struct resolver_query **q);

struct resolver_stats {
	unsigned pending;       /* accepted, callback not yet run, not cancelled */
	unsigned waiting;       /* in the FIFO for a slot */
	unsigned running;       /* sent to c-ares (cancelled ones included) */
	unsigned peak_running;  /* most running at once so far */
	unsigned long queries;  /* DNS queries sent so far (an A+AAAA lookup is 2) */
};

void resolver_get_stats(const struct resolver *r, struct resolver_stats *stats_r);

/* "ok", "nodata", "nxdomain", "tempfail". */
const char *resolver_status_name(enum resolver_status status);

#endif
