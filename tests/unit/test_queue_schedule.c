/* Unit tests for src/smtp/queue_schedule.c: parsing a retry schedule, the
 * next attempt, the lifetime and the delay warning. */

#include <string.h>

#include "smtp/queue_schedule.h"
#include "testutil.h"

static const time_t T0 = 1700000000; /* an arrival time */

START_TEST(defaults)
{
	struct smtp_schedule s;
	char text[64];

	smtp_schedule_default(&s);
	ck_assert_uint_eq(s.n, 5);
	ck_assert_uint_eq(s.interval_s[0], 60);
	ck_assert_uint_eq(s.interval_s[1], 300);
	ck_assert_uint_eq(s.interval_s[2], 900);
	ck_assert_uint_eq(s.interval_s[3], 1800);
	ck_assert_uint_eq(s.interval_s[4], 3600);
	ck_assert_uint_eq(s.lifetime_s, 5 * 86400);
	ck_assert_uint_eq(s.delay_warning_s, 0);
	ck_assert_uint_eq(smtp_schedule_format(&s, text, sizeof(text)), strlen(SMTP_SCHEDULE_DEFAULT));
	ck_assert_str_eq(text, SMTP_SCHEDULE_DEFAULT);

	/* The default text parses to the default waits. */
	struct smtp_schedule p;
	const char *err = NULL;
	memset(&p, 0, sizeof(p));
	ck_assert_int_eq(smtp_schedule_parse(SMTP_SCHEDULE_DEFAULT, &p, &err), 0);
	ck_assert_uint_eq(p.n, s.n);
	ck_assert_mem_eq(p.interval_s, s.interval_s, s.n * sizeof(s.interval_s[0]));
}
END_TEST

START_TEST(parse_forms)
{
	struct smtp_schedule s;
	const char *err = NULL;
	char text[128];

	smtp_schedule_default(&s);
	s.lifetime_s = 1234;
	ck_assert_int_eq(smtp_schedule_parse("  30s,2m ,\t1h,1d 90  ", &s, &err), 0);
	ck_assert_uint_eq(s.n, 5);
	ck_assert_uint_eq(s.interval_s[0], 30);
	ck_assert_uint_eq(s.interval_s[1], 120);
	ck_assert_uint_eq(s.interval_s[2], 3600);
	ck_assert_uint_eq(s.interval_s[3], 86400);
	ck_assert_uint_eq(s.interval_s[4], 90);
	ck_assert_uint_eq(s.lifetime_s, 1234); /* left alone */
	smtp_schedule_format(&s, text, sizeof(text));
	ck_assert_str_eq(text, "30s 2m 1h 1d 90s");
	/* Truncated formatting still reports the full length. */
	ck_assert_uint_eq(smtp_schedule_format(&s, text, 5), strlen("30s 2m 1h 1d 90s"));
	ck_assert_str_eq(text, "30s ");

	/* One wait only: it repeats. */
	ck_assert_int_eq(smtp_schedule_parse("10m", &s, &err), 0);
	ck_assert_uint_eq(s.n, 1);
	/* The limits themselves. */
	ck_assert_int_eq(smtp_schedule_parse("1s 30d", &s, &err), 0);
}
END_TEST

START_TEST(parse_errors)
{
	static const char *const bad[] = {
		"", "   ", ",,", "5x", "0s", "0", "31d", "-5m", "1.5h", "5 m", "m", "1h2m",
		"99999999999999999999999d", "123456789012345678901234567890s",
	};
	struct smtp_schedule s, before;
	const char *err;

	smtp_schedule_default(&s);
	before = s;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err = NULL;
		ck_assert_msg(smtp_schedule_parse(bad[i], &s, &err) == -1, "accepted [%s]", bad[i]);
		ck_assert_ptr_nonnull(err);
		ck_assert_mem_eq(&s, &before, sizeof(s)); /* unchanged */
	}
	/* 32 waits are fine, 33 are not. */
	char many[33 * 3 + 1];
	many[0] = '\0';
	for (int i = 0; i < 32; i++)
		strcat(many, "1m ");
	ck_assert_int_eq(smtp_schedule_parse(many, &s, &err), 0);
	ck_assert_uint_eq(s.n, 32);
	strcat(many, "1m");
	ck_assert_int_eq(smtp_schedule_parse(many, &s, &err), -1);
	ck_assert_str_eq(err, "too many retry intervals (at most 32; the last one repeats)");
}
END_TEST

START_TEST(next_attempt)
{
	struct smtp_schedule s;
	struct smtp_retry r;

	smtp_schedule_default(&s);
	/* Never tried: due at arrival, even long after the lifetime. */
	smtp_schedule_next(&s, T0, 0, T0 + 5, &r);
	ck_assert(!r.expired);
	ck_assert_int_eq(r.next, T0);
	smtp_schedule_next(&s, T0, 0, T0 + 10 * 86400, &r);
	ck_assert(!r.expired);
	ck_assert_int_eq(r.next, T0);

	/* Measured from the end of the last attempt. */
	smtp_schedule_next(&s, T0, 1, T0 + 7, &r);
	ck_assert(!r.expired);
	ck_assert_int_eq(r.next, T0 + 7 + 60);
	smtp_schedule_next(&s, T0, 2, T0 + 100, &r);
	ck_assert_int_eq(r.next, T0 + 100 + 300);
	smtp_schedule_next(&s, T0, 3, T0 + 1000, &r);
	ck_assert_int_eq(r.next, T0 + 1000 + 900);
	smtp_schedule_next(&s, T0, 4, T0 + 2000, &r);
	ck_assert_int_eq(r.next, T0 + 2000 + 1800);
	/* The last wait repeats. */
	smtp_schedule_next(&s, T0, 5, T0 + 5000, &r);
	ck_assert_int_eq(r.next, T0 + 5000 + 3600);
	smtp_schedule_next(&s, T0, 60, T0 + 86400, &r);
	ck_assert_int_eq(r.next, T0 + 86400 + 3600);

	/* The last attempt lands on the end of the lifetime. */
	time_t end = smtp_schedule_expiry(&s, T0);
	ck_assert_int_eq(end, T0 + 5 * 86400);
	smtp_schedule_next(&s, T0, 100, end - 600, &r);
	ck_assert(!r.expired);
	ck_assert_int_eq(r.next, end);
	/* A failure at or after the end: bounce. */
	smtp_schedule_next(&s, T0, 101, end, &r);
	ck_assert(r.expired);
	smtp_schedule_next(&s, T0, 101, end + 1, &r);
	ck_assert(r.expired);
	smtp_schedule_next(&s, T0, 101, end - 1, &r);
	ck_assert(!r.expired);
	ck_assert_int_eq(r.next, end);

	/* A zeroed schedule does not spin. */
	struct smtp_schedule z;
	memset(&z, 0, sizeof(z));
	z.lifetime_s = 86400;
	smtp_schedule_next(&z, T0, 3, T0 + 10, &r);
	ck_assert_int_eq(r.next, T0 + 10 + 3600);
}
END_TEST

START_TEST(whole_lifetime)
{
	/* Every attempt fails at once: the default schedule over 5 days is
	 * 1 + 4 growing waits (0, 1m, 6m, 21m, 51m), 119 hourly ones, and a
	 * last one at the very end: 125 attempts. */
	struct smtp_schedule s;
	struct smtp_retry r;
	time_t now = T0;
	unsigned attempts = 0;

	smtp_schedule_default(&s);
	smtp_schedule_next(&s, T0, 0, now, &r);
	for (;;) {
		ck_assert(!r.expired);
		ck_assert_int_ge(r.next, now);
		now = r.next;
		attempts++;
		smtp_schedule_next(&s, T0, attempts, now, &r);
		if (r.expired)
			break;
		ck_assert_uint_lt(attempts, 1000);
	}
	ck_assert_uint_eq(attempts, 125);
	ck_assert_int_eq(now, T0 + 5 * 86400);

	/* Attempts that take time push the schedule, never past the end. */
	smtp_schedule_parse("10m", &s, &(const char *){ NULL });
	s.lifetime_s = 3600;
	now = T0;
	attempts = 0;
	smtp_schedule_next(&s, T0, 0, now, &r);
	for (;;) {
		now = r.next + 125; /* each attempt takes a while */
		attempts++;
		smtp_schedule_next(&s, T0, attempts, now, &r);
		if (r.expired)
			break;
		ck_assert_int_le(r.next, T0 + 3600);
	}
	ck_assert_uint_eq(attempts, 6); /* at 0, 725, 1450, 2175, 2900, 3600 */
}
END_TEST

START_TEST(delay_warning)
{
	struct smtp_schedule s;

	smtp_schedule_default(&s);
	ck_assert_int_eq(smtp_schedule_delay_warning(&s, T0), 0); /* off by default */
	s.delay_warning_s = 4 * 3600;
	ck_assert_int_eq(smtp_schedule_delay_warning(&s, T0), T0 + 4 * 3600);
	s.delay_warning_s = s.lifetime_s;
	ck_assert_int_eq(smtp_schedule_delay_warning(&s, T0), 0); /* no earlier than the bounce */
	s.delay_warning_s = s.lifetime_s + 1;
	ck_assert_int_eq(smtp_schedule_delay_warning(&s, T0), 0);
	s.lifetime_s = 2 * 86400;
	s.delay_warning_s = 86400;
	ck_assert_int_eq(smtp_schedule_delay_warning(&s, T0), T0 + 86400);
	ck_assert_int_eq(smtp_schedule_expiry(&s, T0), T0 + 2 * 86400);
}
END_TEST

static Suite *queue_schedule_suite(void)
{
	Suite *s = suite_create("queue_schedule");
	TCase *tc = tcase_create("schedule");

	tcase_add_test(tc, defaults);
	tcase_add_test(tc, parse_forms);
	tcase_add_test(tc, parse_errors);
	tcase_add_test(tc, next_attempt);
	tcase_add_test(tc, whole_lifetime);
	tcase_add_test(tc, delay_warning);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run(queue_schedule_suite());
}
