#ifndef POSTBOTE_SMTP_MX_ORDER_H
#define POSTBOTE_SMTP_MX_ORDER_H

/*
 * Which hosts to try, in which order, for a recipient domain (RFC 5321 5.1,
 * RFC 7505). The resolver glue (c-ares) looks up MX, then A and AAAA for
 * each chosen host; these functions only decide, so every rule is tested
 * without DNS:
 *
 *  1. smtp_mx_plan(): MX records -> an ordered list of host names, or a
 *     verdict: null MX (RFC 7505: fail at once, 5.1.10), no MX at all (the
 *     domain itself is the implicit MX, preference 0), or "we are the best
 *     MX ourselves" (a loop, 5.4.6).
 *  2. smtp_mx_targets(): the hosts' addresses -> the ordered (host,
 *     address) list the glue connects to, one after another.
 *
 * Equal preferences are tried in random order (RFC 5321 5.1: "SHOULD ...
 * randomize"), to spread load the way the domain asked; the random source
 * is a parameter so tests get a fixed order.
 *
 * What the glue decides, not these functions: an NXDOMAIN for the MX query
 * means "no such domain" (permanent, 5.1.2) and must not take the implicit
 * MX path; a SERVFAIL or timeout defers. smtp_mx_plan() with n == 0 means
 * the domain exists and has no MX records (NODATA).
 */

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct smtp_mx {
	uint16_t pref;          /* lower is preferred */
	const char *host;       /* borrowed; "" or "." is the root (null MX) */
};

/* Returns a uniformly distributed 32-bit value. */
typedef uint32_t (*smtp_mx_rng)(void *ctx);

enum smtp_mx_verdict {
	SMTP_MX_HOSTS = 0,      /* *n_r hosts in out[], best first */
	SMTP_MX_IMPLICIT,       /* no MX: out[0] is the domain itself, preference 0 */
	SMTP_MX_NULL,           /* null MX (RFC 7505 3): fail every recipient with 5.1.10 */
	SMTP_MX_LOOP,           /* self is the best MX: nothing to try (5.4.6) */
};

/* Sort mx[0..n) in place by preference, lowest first, in random order
 * among equal preferences (rng NULL: arc4random). */
void smtp_mx_sort(struct smtp_mx *mx, size_t n, smtp_mx_rng rng, void *rng_ctx);

/*
 * Decide what to try for domain from its MX records[0..n) (any order).
 *   - n == 0: SMTP_MX_IMPLICIT with out[0] = { 0, domain } (RFC 5321 5.1).
 *   - A root target ("" or ".") is not a host: one alone (or only such
 *     records) is a null MX, whatever its preference (RFC 7505 asks for 0,
 *     but a lone "." at 10 names no host either); next to real hosts it is
 *     ignored (RFC 7505 3 forbids the mix, so it is a mistake).
 *   - The same host twice (without case, a trailing dot ignored) is kept
 *     once, at its best preference.
 *   - self (our host name, NULL for none): if it is among the hosts, it and
 *     every host with the same or a higher preference are dropped (RFC 5321
 *     5.1); if that leaves nothing, SMTP_MX_LOOP.
 * out[] holds at most max entries (the rest is cut after ordering);
 * host pointers in out point into records[] or at domain. *n_r is the count.
 */
enum smtp_mx_verdict smtp_mx_plan(const struct smtp_mx *records, size_t n, const char *domain, const char *self,
				  smtp_mx_rng rng, void *rng_ctx, struct smtp_mx *out, size_t max, size_t *n_r);

/* An IPv4 or IPv6 address as the resolver gave it. */
struct smtp_mx_addr {
	int family;                      /* AF_INET or AF_INET6 */
	union {
		struct in_addr v4;
		struct in6_addr v6;
	} u;
};

/* One host of the plan with its A and AAAA answers (in resolver order). */
struct smtp_mx_host {
	const char *host;
	const struct in_addr *a;
	size_t n_a;
	const struct in6_addr *aaaa;
	size_t n_aaaa;
};

struct smtp_mx_target {
	const char *host;                /* points at smtp_mx_host.host */
	struct smtp_mx_addr addr;
};

#define SMTP_MX_IPV4_ONLY  0x1u      /* ignore AAAA (hosts without IPv6 routes) */
#define SMTP_MX_IPV4_FIRST 0x2u      /* start with IPv4 instead of IPv6 */

/* The connection order for hosts[0..n) (already in plan order): host by
 * host; within a host its addresses alternate between the families,
 * IPv6 first unless SMTP_MX_IPV4_FIRST (RFC 8305 4), so one broken family
 * does not stall a host. An address already listed for an earlier host is
 * skipped (two MX names for one machine). At most max targets are written
 * to out[]; returns how many. 0 means no host has a usable address. */
size_t smtp_mx_targets(const struct smtp_mx_host *hosts, size_t n, unsigned flags, struct smtp_mx_target *out,
		       size_t max);

#endif
