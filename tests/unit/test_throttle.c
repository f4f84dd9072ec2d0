#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "auth/throttle.h"
#include "core/config.h"
#include "core/log.h"
#include "testutil.h"

static struct config cfg;

static void setup(void)
{
	config_defaults(&cfg);
	cfg.auth_fail_delay_ms = 1000;
	cfg.auth_fail_delay_max_ms = 8000;
	cfg.auth_lockout_failures = 10;
	cfg.auth_lockout_ms = 60000;
}

static void teardown(void)
{
	config_free(&cfg);
}

static struct iplimit_key key4(const char *addr)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct iplimit_key k;
	ck_assert_int_eq(inet_pton(AF_INET, addr, &sin.sin_addr), 1);
	iplimit_key_from((struct sockaddr *)&sin, &k);
	return k;
}

static struct iplimit_key key6(const char *addr)
{
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6 };
	struct iplimit_key k;
	ck_assert_int_eq(inet_pton(AF_INET6, addr, &sin6.sin6_addr), 1);
	iplimit_key_from((struct sockaddr *)&sin6, &k);
	return k;
}

/* A fingerprint that differs for each n. */
static const uint8_t *fp(unsigned n)
{
	static uint8_t b[THROTTLE_FINGERPRINT_LEN];
	memset(b, 0, sizeof(b));
	memcpy(b, &n, sizeof(n));
	return b;
}

static uint64_t delay_of(struct throttle *t, const struct iplimit_key *ip, const char *user, uint64_t now)
{
	uint64_t d = 12345;
	ck_assert_int_eq(throttle_check(t, ip, user, now, &d), THROTTLE_OK);
	return d;
}

/* Capture what the log writes to stderr while fn runs. */
static char captured[4096];

static void capture_begin(int *saved)
{
	fflush(stderr);
	*saved = dup(2);
	FILE *f = tmpfile();
	ck_assert_ptr_nonnull(f);
	dup2(fileno(f), 2);
	fclose(f); /* fd 2 keeps it open */
}

static void capture_end(int saved)
{
	fflush(stderr);
	off_t len = lseek(2, 0, SEEK_CUR);
	lseek(2, 0, SEEK_SET);
	ssize_t n = read(2, captured, len < (off_t)sizeof(captured) - 1 ? (size_t)len : sizeof(captured) - 1);
	captured[n > 0 ? n : 0] = '\0';
	dup2(saved, 2);
	close(saved);
}

START_TEST(delays_double_up_to_max_and_reset)
{
	struct throttle *t = throttle_new(&cfg);
	struct iplimit_key ip = key4("192.0.2.1");
	static const uint64_t want[] = { 1000, 2000, 4000, 8000, 8000, 8000 };
	uint64_t now = 1000000;

	ck_assert_uint_eq(delay_of(t, &ip, "alice@example.test", now), 0);
	for (unsigned i = 0; i < 6; i++) {
		throttle_failure(t, &ip, "192.0.2.1", "alice@example.test", fp(i), now);
		ck_assert_uint_eq(delay_of(t, &ip, "alice@example.test", now), want[i]);
		/* The address alone and the account alone carry the same. */
		ck_assert_uint_eq(delay_of(t, &ip, NULL, now), want[i]);
		struct iplimit_key other = key4("198.51.100.7");
		ck_assert_uint_eq(delay_of(t, &other, "ALICE@example.test", now), want[i]);
		now += 10;
	}
	ck_assert_uint_eq(throttle_count(t), 2);
	throttle_success(t, &ip, "alice@example.test");
	ck_assert_uint_eq(delay_of(t, &ip, "alice@example.test", now), 0);
	ck_assert_uint_eq(throttle_count(t), 0);
	throttle_free(&t);
	ck_assert_ptr_null(t);
	throttle_free(&t);
}
END_TEST

START_TEST(same_password_counts_once)
{
	cfg.auth_fail_delay_max_ms = 1000000;
	struct throttle *t = throttle_new(&cfg);
	struct iplimit_key ip = key4("192.0.2.1");
	uint8_t a[THROTTLE_FINGERPRINT_LEN], a2[THROTTLE_FINGERPRINT_LEN], b[THROTTLE_FINGERPRINT_LEN];
	uint64_t now = 5000;

	throttle_fingerprint(t, "hunter2", 7, a);
	throttle_fingerprint(t, "hunter2", 7, a2);
	throttle_fingerprint(t, "hunter3", 7, b);
	ck_assert(memcmp(a, a2, sizeof(a)) == 0);
	ck_assert(memcmp(a, b, sizeof(a)) != 0);

	for (int i = 0; i < 20; i++)
		throttle_failure(t, &ip, NULL, "alice@example.test", a, now);
	ck_assert_uint_eq(delay_of(t, &ip, "alice@example.test", now), 1000);
	throttle_failure(t, &ip, NULL, "alice@example.test", b, now);
	ck_assert_uint_eq(delay_of(t, &ip, "alice@example.test", now), 2000);

	/* The memory holds the last four: a fifth pushes the first out. */
	throttle_failure(t, &ip, NULL, "alice@example.test", fp(1), now);
	throttle_failure(t, &ip, NULL, "alice@example.test", fp(2), now);
	ck_assert_uint_eq(delay_of(t, &ip, "alice@example.test", now), 8000);   /* 4 failures */
	throttle_failure(t, &ip, NULL, "alice@example.test", fp(3), now);    /* evicts a */
	ck_assert_uint_eq(delay_of(t, &ip, "alice@example.test", now), 16000);
	throttle_failure(t, &ip, NULL, "alice@example.test", fp(2), now);    /* still known */
	ck_assert_uint_eq(delay_of(t, &ip, "alice@example.test", now), 16000);
	throttle_failure(t, &ip, NULL, "alice@example.test", a, now);        /* counts again */
	ck_assert_uint_eq(delay_of(t, &ip, "alice@example.test", now), 32000);
	throttle_free(&t);

	/* One password sprayed over many accounts from one address counts
	 * once per account for the address. */
	t = throttle_new(&cfg);
	char user[64];
	for (int i = 0; i < 3; i++) {
		snprintf(user, sizeof(user), "user%d@example.test", i);
		throttle_failure(t, &ip, NULL, user, a, now);
		throttle_failure(t, &ip, NULL, user, a, now);
	}
	ck_assert_uint_eq(delay_of(t, &ip, NULL, now), 4000);
	ck_assert_uint_eq(delay_of(t, &ip, "user0@example.test", now), 4000);
	struct iplimit_key other = key4("198.51.100.1");
	ck_assert_uint_eq(delay_of(t, &other, "user0@example.test", now), 1000);
	throttle_free(&t);

	/* Keys differ per throttle (per process), so fingerprints do too. */
	struct throttle *t1 = throttle_new(&cfg), *t2 = throttle_new(&cfg);
	throttle_fingerprint(t1, "hunter2", 7, a);
	throttle_fingerprint(t2, "hunter2", 7, a2);
	ck_assert(memcmp(a, a2, sizeof(a)) != 0);
	throttle_free(&t1);
	throttle_free(&t2);
}
END_TEST

START_TEST(lockout_and_expiry)
{
	struct throttle *t;
	struct iplimit_key ip = key4("192.0.2.1");
	uint64_t now = 100000, d;
	int saved;

	cfg.auth_lockout_failures = 3;
	t = throttle_new(&cfg);
	throttle_failure(t, &ip, "192.0.2.1", "alice@example.test", fp(1), now);
	throttle_failure(t, &ip, "192.0.2.1", "alice@example.test", fp(2), now + 1);
	ck_assert_int_eq(throttle_check(t, &ip, "alice@example.test", now + 2, &d), THROTTLE_OK);

	log_setup(LOG_LEVEL_INFO, false, NULL);
	capture_begin(&saved);
	throttle_failure(t, &ip, "192.0.2.1", "alice@example.test", fp(3), now + 2);
	capture_end(saved);
	char *line = strstr(captured, "warn  auth: lockout ");
	ck_assert_msg(line != NULL, "no lockout line in [%s]", captured);
	ck_assert_msg(strncmp(line, "warn  auth: lockout ip=192.0.2.1 user=alice@example.test failures=3 until=", 74) == 0,
		      "%s", line);
	/* until=YYYY-MM-DDTHH:MM:SSZ and the end of the line */
	const char *until = line + 74;
	ck_assert_uint_ge(strlen(until), 21);
	ck_assert(until[4] == '-' && until[10] == 'T' && until[19] == 'Z' && until[20] == '\n');

	/* Locked: the address for anyone, the account from anywhere. */
	ck_assert_int_eq(throttle_check(t, &ip, "alice@example.test", now + 3, &d), THROTTLE_LOCKED);
	ck_assert_uint_eq(d, 0);
	ck_assert_int_eq(throttle_check(t, &ip, "bob@example.test", now + 3, &d), THROTTLE_LOCKED);
	ck_assert_int_eq(throttle_check(t, &ip, NULL, now + 3, &d), THROTTLE_LOCKED);
	struct iplimit_key other = key4("198.51.100.1");
	ck_assert_int_eq(throttle_check(t, &other, "alice@example.test", now + 3, &d), THROTTLE_LOCKED);
	ck_assert_int_eq(throttle_check(t, &other, "bob@example.test", now + 3, &d), THROTTLE_OK);
	ck_assert_uint_eq(d, 0);
	/* Still locked one millisecond before the end. */
	ck_assert_int_eq(throttle_check(t, &ip, NULL, now + 2 + 60000 - 1, &d), THROTTLE_LOCKED);
	/* Over: counting starts again from zero. */
	ck_assert_int_eq(throttle_check(t, &ip, "alice@example.test", now + 2 + 60000, &d), THROTTLE_OK);
	ck_assert_uint_eq(d, 0);
	throttle_failure(t, &ip, NULL, "alice@example.test", fp(1), now + 70000);
	ck_assert_uint_eq(delay_of(t, &ip, "alice@example.test", now + 70000), 1000);
	throttle_free(&t);
}
END_TEST

START_TEST(lockout_log_ipv6_prefix)
{
	struct iplimit_key ip = key6("2001:db8:1:2::99");
	struct throttle *t;
	int saved;

	cfg.auth_lockout_failures = 1;
	t = throttle_new(&cfg);
	log_setup(LOG_LEVEL_INFO, false, NULL);
	capture_begin(&saved);
	/* A user name with a space and a control character cannot forge
	 * fields in the log line. */
	throttle_failure(t, &ip, NULL, "x user=root\n", fp(1), 1000);
	capture_end(saved);
	ck_assert_msg(strstr(captured, "auth: lockout ip=2001:db8:1:2::/64 user=x\\x20user=root\\x0a failures=1 until=")
		      != NULL, "%s", captured);
	throttle_free(&t);
}
END_TEST

START_TEST(ipv6_grouped_per_64)
{
	struct throttle *t = throttle_new(&cfg);
	struct iplimit_key a = key6("2001:db8:1:2::1");
	struct iplimit_key b = key6("2001:db8:1:2:ffff:ffff:ffff:ffff");
	struct iplimit_key c = key6("2001:db8:1:3::1");
	struct iplimit_key m = key6("::ffff:192.0.2.9");
	struct iplimit_key v4 = key4("192.0.2.9");

	throttle_failure(t, &a, NULL, NULL, fp(1), 0);
	throttle_failure(t, &b, NULL, NULL, fp(2), 0);
	ck_assert_uint_eq(delay_of(t, &a, NULL, 0), 2000);
	ck_assert_uint_eq(delay_of(t, &b, NULL, 0), 2000);
	ck_assert_uint_eq(delay_of(t, &c, NULL, 0), 0);
	/* An IPv4-mapped address is the IPv4 host. */
	throttle_failure(t, &m, NULL, NULL, fp(1), 0);
	ck_assert_uint_eq(delay_of(t, &v4, NULL, 0), 1000);
	ck_assert_uint_eq(throttle_count(t), 2);
	throttle_free(&t);
}
END_TEST

START_TEST(bounded_memory)
{
	struct throttle *t = throttle_new(&cfg);
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct iplimit_key k;
	uint64_t now = 1000;

	for (uint32_t i = 0; i < 200000; i++) {
		sin.sin_addr.s_addr = htonl(0x0a000000u + i);
		iplimit_key_from((struct sockaddr *)&sin, &k);
		throttle_failure(t, &k, NULL, NULL, fp(1), now);
		ck_assert_uint_le(throttle_count(t), THROTTLE_ENTRIES_MAX);
	}
	ck_assert_uint_eq(throttle_count(t), THROTTLE_ENTRIES_MAX);
	/* The oldest went first: 10.0.0.0 is forgotten, the newest is not. */
	sin.sin_addr.s_addr = htonl(0x0a000000u);
	iplimit_key_from((struct sockaddr *)&sin, &k);
	ck_assert_uint_eq(delay_of(t, &k, NULL, now), 0);
	sin.sin_addr.s_addr = htonl(0x0a000000u + 199999);
	iplimit_key_from((struct sockaddr *)&sin, &k);
	ck_assert_uint_eq(delay_of(t, &k, NULL, now), 1000);

	/* Once stale (no failure for the lockout time), later calls prune
	 * them a few at a time. */
	now += cfg.auth_lockout_ms;
	for (int i = 0; i < 10000 && throttle_count(t) > 0; i++)
		delay_of(t, &k, NULL, now);
	ck_assert_uint_eq(throttle_count(t), 0);

	/* A smaller cap for the account names too. */
	throttle_set_max_entries(t, 1000);
	char user[64];
	for (int i = 0; i < 5000; i++) {
		snprintf(user, sizeof(user), "user%d@example.test", i);
		throttle_failure(t, &k, NULL, user, fp(1), now);
		ck_assert_uint_le(throttle_count(t), 1000);
	}
	throttle_free(&t);
}
END_TEST

START_TEST(no_delay_configured)
{
	cfg.auth_fail_delay_ms = 0;
	struct throttle *t = throttle_new(&cfg);
	struct iplimit_key ip = key4("192.0.2.1");

	throttle_failure(t, &ip, NULL, "a@example.test", fp(1), 0);
	ck_assert_uint_eq(delay_of(t, &ip, "a@example.test", 0), 0);
	/* and a reload takes new settings */
	cfg.auth_fail_delay_ms = 50;
	throttle_configure(t, &cfg);
	ck_assert_uint_eq(delay_of(t, &ip, "a@example.test", 0), 50);
	throttle_free(&t);
}
END_TEST

static Suite *throttle_suite(void)
{
	Suite *s = suite_create("throttle");
	TCase *tc = tcase_create("core");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, delays_double_up_to_max_and_reset);
	tcase_add_test(tc, same_password_counts_once);
	tcase_add_test(tc, lockout_and_expiry);
	tcase_add_test(tc, lockout_log_ipv6_prefix);
	tcase_add_test(tc, ipv6_grouped_per_64);
	tcase_add_test(tc, bounded_memory);
	tcase_add_test(tc, no_delay_configured);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run(throttle_suite());
}
