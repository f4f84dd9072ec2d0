#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "core/iplimit.h"
#include "testutil.h"

static void key4(const char *addr, struct iplimit_key *k)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	inet_pton(AF_INET, addr, &sin.sin_addr);
	iplimit_key_from((struct sockaddr *)&sin, k);
}

static void key6(const char *addr, struct iplimit_key *k)
{
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6 };
	inet_pton(AF_INET6, addr, &sin6.sin6_addr);
	iplimit_key_from((struct sockaddr *)&sin6, k);
}

START_TEST(limit_per_address)
{
	struct iplimit *t = iplimit_new();
	struct iplimit_key a, b;
	key4("192.0.2.1", &a);
	key4("192.0.2.2", &b);

	ck_assert(iplimit_acquire(t, &a, 2));
	ck_assert(iplimit_acquire(t, &a, 2));
	ck_assert(!iplimit_acquire(t, &a, 2));
	ck_assert(iplimit_acquire(t, &b, 2));
	ck_assert_uint_eq(iplimit_count(t, &a), 2);
	iplimit_release(t, &a);
	ck_assert(iplimit_acquire(t, &a, 2));
	iplimit_release(t, &a);
	iplimit_release(t, &a);
	ck_assert_uint_eq(iplimit_count(t, &a), 0);
	ck_assert(!iplimit_acquire(t, &a, 0));
	iplimit_free(&t);
	ck_assert_ptr_null(t);
}
END_TEST

START_TEST(ipv6_counts_per_64_and_mapped_v4)
{
	struct iplimit *t = iplimit_new();
	struct iplimit_key a, b, c, m, v4;
	key6("2001:db8:1:2::1", &a);
	key6("2001:db8:1:2:ffff::9", &b);
	key6("2001:db8:1:3::1", &c);
	key6("::ffff:192.0.2.7", &m);
	key4("192.0.2.7", &v4);

	ck_assert(iplimit_acquire(t, &a, 1));
	ck_assert(!iplimit_acquire(t, &b, 1)); /* same /64 */
	ck_assert(iplimit_acquire(t, &c, 1));
	ck_assert(iplimit_acquire(t, &v4, 1));
	ck_assert(!iplimit_acquire(t, &m, 1)); /* the same IPv4 host */
	iplimit_free(&t);
}
END_TEST

START_TEST(many_addresses)
{
	struct iplimit *t = iplimit_new();
	for (unsigned i = 0; i < 5000; i++) {
		struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x0a000000u + i) };
		struct iplimit_key k;
		iplimit_key_from((struct sockaddr *)&sin, &k);
		ck_assert(iplimit_acquire(t, &k, 1));
	}
	for (unsigned i = 0; i < 5000; i += 2) {
		struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x0a000000u + i) };
		struct iplimit_key k;
		iplimit_key_from((struct sockaddr *)&sin, &k);
		iplimit_release(t, &k);
		ck_assert_uint_eq(iplimit_count(t, &k), 0);
	}
	iplimit_free(&t); /* frees what is left */
}
END_TEST

int main(void)
{
	Suite *s = suite_create("iplimit");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, limit_per_address);
	tcase_add_test(tc, ipv6_counts_per_64_and_mapped_v4);
	tcase_add_test(tc, many_addresses);
	suite_add_tcase(s, tc);
	return testutil_run(s);
}
