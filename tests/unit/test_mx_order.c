/* Unit tests for src/smtp/mx_order.c: MX ordering, null MX, the implicit
 * MX, our own name in the list, and the (host, address) order. */

#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>

#include "smtp/mx_order.h"
#include "testutil.h"

/* A random source that returns a fixed value. */
static uint32_t fixed_rng(void *ctx)
{
	return *(const uint32_t *)ctx;
}

/* xorshift32: deterministic, but spread enough to check the shuffle. */
static uint32_t xorshift(void *ctx)
{
	uint32_t *x = ctx;
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

static const char *hosts_of(const struct smtp_mx *mx, size_t n)
{
	static char out[512];
	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (i)
			strcat(out, " ");
		strcat(out, mx[i].host);
	}
	return out;
}

START_TEST(sort_by_preference)
{
	struct smtp_mx mx[] = { { 20, "b" }, { 10, "a" }, { 30, "d" }, { 20, "c" }, { 5, "z" } };
	uint32_t v = 0;

	smtp_mx_sort(mx, 5, fixed_rng, &v);
	ck_assert_uint_eq(mx[0].pref, 5);
	ck_assert_uint_eq(mx[1].pref, 10);
	ck_assert_uint_eq(mx[2].pref, 20);
	ck_assert_uint_eq(mx[3].pref, 20);
	ck_assert_uint_eq(mx[4].pref, 30);
	ck_assert_str_eq(mx[0].host, "z");
	ck_assert_str_eq(mx[4].host, "d");

	/* Nothing to sort, and one record. */
	smtp_mx_sort(mx, 0, fixed_rng, &v);
	smtp_mx_sort(mx, 1, NULL, NULL);
	ck_assert_str_eq(mx[0].host, "z");
}
END_TEST

START_TEST(equal_preferences_are_shuffled)
{
	/* Every order of three equal hosts shows up, about equally often;
	 * the lower and higher preferences never move. */
	int first[3] = { 0, 0, 0 };
	uint32_t seed = 12345;

	for (int run = 0; run < 3000; run++) {
		struct smtp_mx mx[] = { { 30, "last" }, { 10, "h0" }, { 10, "h1" }, { 10, "h2" }, { 5, "best" } };
		smtp_mx_sort(mx, 5, xorshift, &seed);
		ck_assert_str_eq(mx[0].host, "best");
		ck_assert_str_eq(mx[4].host, "last");
		ck_assert(mx[1].host[0] == 'h' && mx[2].host[0] == 'h' && mx[3].host[0] == 'h');
		ck_assert(strcmp(mx[1].host, mx[2].host) != 0 && strcmp(mx[2].host, mx[3].host) != 0 &&
			  strcmp(mx[1].host, mx[3].host) != 0);
		first[mx[1].host[1] - '0']++;
	}
	for (int i = 0; i < 3; i++)
		ck_assert_msg(first[i] > 800 && first[i] < 1200, "h%d first %d times of 3000", i, first[i]);

	/* With the default source too (no assertion on the order). */
	struct smtp_mx mx[] = { { 10, "a" }, { 10, "b" } };
	smtp_mx_sort(mx, 2, NULL, NULL);
	ck_assert_uint_eq(mx[0].pref, 10);
}
END_TEST

START_TEST(injected_rng_fixes_order)
{
	struct smtp_mx a[] = { { 10, "x" }, { 10, "y" } };
	struct smtp_mx b[] = { { 10, "x" }, { 10, "y" } };
	uint32_t zero = 0, one = 1;

	smtp_mx_sort(a, 2, fixed_rng, &zero); /* j = 0: swap */
	smtp_mx_sort(b, 2, fixed_rng, &one);  /* j = 1: stay */
	ck_assert_str_eq(hosts_of(a, 2), "y x");
	ck_assert_str_eq(hosts_of(b, 2), "x y");
}
END_TEST

START_TEST(implicit_mx)
{
	struct smtp_mx out[4];
	size_t n = 99;

	/* RFC 5321 5.1: no MX records, the domain itself at 0. */
	ck_assert_int_eq(smtp_mx_plan(NULL, 0, "example.org", NULL, NULL, NULL, out, 4, &n), SMTP_MX_IMPLICIT);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(out[0].host, "example.org");
	ck_assert_uint_eq(out[0].pref, 0);
	ck_assert_int_eq(smtp_mx_plan(NULL, 0, "example.org", NULL, NULL, NULL, out, 0, &n), SMTP_MX_IMPLICIT);
	ck_assert_uint_eq(n, 0);
}
END_TEST

START_TEST(null_mx)
{
	struct smtp_mx out[4];
	size_t n;
	uint32_t v = 0;

	/* RFC 7505: a single "." at 0. */
	struct smtp_mx dot[] = { { 0, "." } };
	ck_assert_int_eq(smtp_mx_plan(dot, 1, "example.org", NULL, fixed_rng, &v, out, 4, &n), SMTP_MX_NULL);
	ck_assert_uint_eq(n, 0);
	/* c-ares gives the root as "". */
	struct smtp_mx empty[] = { { 0, "" } };
	ck_assert_int_eq(smtp_mx_plan(empty, 1, "example.org", NULL, fixed_rng, &v, out, 4, &n), SMTP_MX_NULL);
	/* At another preference it names no host either. */
	struct smtp_mx dot10[] = { { 10, "." } };
	ck_assert_int_eq(smtp_mx_plan(dot10, 1, "example.org", NULL, fixed_rng, &v, out, 4, &n), SMTP_MX_NULL);
	/* Mixed with real hosts (a mistake RFC 7505 forbids): the hosts. */
	struct smtp_mx mixed[] = { { 0, "." }, { 10, "mx.example.org" } };
	ck_assert_int_eq(smtp_mx_plan(mixed, 2, "example.org", NULL, fixed_rng, &v, out, 4, &n), SMTP_MX_HOSTS);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(out[0].host, "mx.example.org");
}
END_TEST

START_TEST(plan_orders_and_dedups)
{
	struct smtp_mx rec[] = {
		{ 20, "mx2.example.org" }, { 10, "MX1.example.org." }, { 30, "mx1.example.org" }, { 5, "mx0.example.org" },
	};
	struct smtp_mx out[8];
	size_t n;
	uint32_t v = 0;

	ck_assert_int_eq(smtp_mx_plan(rec, 4, "example.org", NULL, fixed_rng, &v, out, 8, &n), SMTP_MX_HOSTS);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(hosts_of(out, n), "mx0.example.org MX1.example.org. mx2.example.org");
	ck_assert_uint_eq(out[1].pref, 10);
	/* Cut to max after ordering. */
	ck_assert_int_eq(smtp_mx_plan(rec, 4, "example.org", NULL, fixed_rng, &v, out, 2, &n), SMTP_MX_HOSTS);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(hosts_of(out, n), "mx0.example.org MX1.example.org.");
	/* The records are left as they were. */
	ck_assert_str_eq(rec[0].host, "mx2.example.org");
}
END_TEST

START_TEST(self_in_list)
{
	struct smtp_mx rec[] = {
		{ 10, "primary.example.org" }, { 20, "backup.example.net" }, { 20, "other.example.org" },
		{ 30, "last.example.org" },
	};
	struct smtp_mx out[8];
	size_t n;
	uint32_t v = 1;

	/* We are a backup MX: only the better one is tried. */
	ck_assert_int_eq(smtp_mx_plan(rec, 4, "example.org", "Backup.Example.NET.", fixed_rng, &v, out, 8, &n),
			 SMTP_MX_HOSTS);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(out[0].host, "primary.example.org");
	/* We are the best MX: a loop. */
	ck_assert_int_eq(smtp_mx_plan(rec, 4, "example.org", "primary.example.org", fixed_rng, &v, out, 8, &n),
			 SMTP_MX_LOOP);
	ck_assert_uint_eq(n, 0);
	/* Not in the list: everything. */
	ck_assert_int_eq(smtp_mx_plan(rec, 4, "example.org", "mail.example.com", fixed_rng, &v, out, 8, &n),
			 SMTP_MX_HOSTS);
	ck_assert_uint_eq(n, 4);
	/* The implicit MX is not checked against self (the glue compares
	 * addresses if it wants to). */
	ck_assert_int_eq(smtp_mx_plan(rec, 0, "example.org", "example.org", fixed_rng, &v, out, 8, &n),
			 SMTP_MX_IMPLICIT);
}
END_TEST

static struct in_addr v4(const char *s)
{
	struct in_addr a;
	ck_assert_int_eq(inet_pton(AF_INET, s, &a), 1);
	return a;
}

static struct in6_addr v6(const char *s)
{
	struct in6_addr a;
	ck_assert_int_eq(inet_pton(AF_INET6, s, &a), 1);
	return a;
}

/* "host=addr host=addr ..." */
static const char *targets_str(const struct smtp_mx_target *t, size_t n)
{
	static char out[1024];
	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		char a[INET6_ADDRSTRLEN];
		inet_ntop(t[i].addr.family, t[i].addr.family == AF_INET ? (const void *)&t[i].addr.u.v4
									 : (const void *)&t[i].addr.u.v6,
			  a, sizeof(a));
		if (i)
			strcat(out, " ");
		strcat(out, t[i].host);
		strcat(out, "=");
		strcat(out, a);
	}
	return out;
}

START_TEST(targets_order)
{
	struct in_addr a1[] = { v4("192.0.2.1"), v4("192.0.2.2") };
	struct in6_addr aaaa1[] = { v6("2001:db8::1"), v6("2001:db8::2") };
	struct in_addr a2[] = { v4("192.0.2.1"), v4("198.51.100.7") };
	struct in6_addr aaaa3[] = { v6("2001:db8::3") };
	struct smtp_mx_host hosts[] = {
		{ "mx1", a1, 2, aaaa1, 2 },
		{ "none", NULL, 0, NULL, 0 },     /* no address: skipped */
		{ "mx2", a2, 2, NULL, 0 },        /* 192.0.2.1 again: tried once */
		{ "mx3", NULL, 0, aaaa3, 1 },     /* IPv6 only */
	};
	struct smtp_mx_target t[16];
	size_t n;

	n = smtp_mx_targets(hosts, 4, 0, t, 16);
	ck_assert_str_eq(targets_str(t, n), "mx1=2001:db8::1 mx1=192.0.2.1 mx1=2001:db8::2 mx1=192.0.2.2 "
					    "mx2=198.51.100.7 mx3=2001:db8::3");
	n = smtp_mx_targets(hosts, 4, SMTP_MX_IPV4_FIRST, t, 16);
	ck_assert_str_eq(targets_str(t, n), "mx1=192.0.2.1 mx1=2001:db8::1 mx1=192.0.2.2 mx1=2001:db8::2 "
					    "mx2=198.51.100.7 mx3=2001:db8::3");
	n = smtp_mx_targets(hosts, 4, SMTP_MX_IPV4_ONLY, t, 16);
	ck_assert_str_eq(targets_str(t, n), "mx1=192.0.2.1 mx1=192.0.2.2 mx2=198.51.100.7");
	/* At most max. */
	n = smtp_mx_targets(hosts, 4, 0, t, 3);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(targets_str(t, n), "mx1=2001:db8::1 mx1=192.0.2.1 mx1=2001:db8::2");
	ck_assert_uint_eq(smtp_mx_targets(hosts, 4, 0, t, 0), 0);
	/* Only hosts without usable addresses. */
	ck_assert_uint_eq(smtp_mx_targets(hosts + 3, 1, SMTP_MX_IPV4_ONLY, t, 16), 0);
	ck_assert_uint_eq(smtp_mx_targets(hosts + 1, 1, 0, t, 16), 0);
}
END_TEST

START_TEST(plan_then_targets)
{
	/* The whole path: records -> plan -> addresses -> targets. */
	struct smtp_mx rec[] = { { 20, "backup" }, { 10, "primary" } };
	struct smtp_mx plan[4];
	size_t n;
	uint32_t v = 0;
	ck_assert_int_eq(smtp_mx_plan(rec, 2, "example.org", NULL, fixed_rng, &v, plan, 4, &n), SMTP_MX_HOSTS);
	struct in_addr ap[] = { v4("203.0.113.1") }, ab[] = { v4("203.0.113.2") };
	struct smtp_mx_host hosts[2];
	for (size_t i = 0; i < n; i++) {
		hosts[i].host = plan[i].host;
		bool primary = strcmp(plan[i].host, "primary") == 0;
		hosts[i].a = primary ? ap : ab;
		hosts[i].n_a = 1;
		hosts[i].aaaa = NULL;
		hosts[i].n_aaaa = 0;
	}
	struct smtp_mx_target t[4];
	size_t k = smtp_mx_targets(hosts, n, 0, t, 4);
	ck_assert_str_eq(targets_str(t, k), "primary=203.0.113.1 backup=203.0.113.2");
}
END_TEST

static Suite *mx_order_suite(void)
{
	Suite *s = suite_create("mx_order");
	TCase *tc = tcase_create("mx");

	tcase_add_test(tc, sort_by_preference);
	tcase_add_test(tc, equal_preferences_are_shuffled);
	tcase_add_test(tc, injected_rng_fixes_order);
	tcase_add_test(tc, implicit_mx);
	tcase_add_test(tc, null_mx);
	tcase_add_test(tc, plan_orders_and_dedups);
	tcase_add_test(tc, self_in_list);
	tcase_add_test(tc, targets_order);
	tcase_add_test(tc, plan_then_targets);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run(mx_order_suite());
}
