/* The outbound engine's decisions without a network: what one run's
 * results do to a queue record (outbound_apply), and which DSN fields a
 * notice gets (outbound_bounce_rcpts). */
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/xalloc.h"
#include "mta/outbound.h"
#include "mta/outbound_bounce.h"
#include "mta/queue_record.h"
#include "testutil.h"

#define NOW 1700000000
#define DAY 86400

/* sender, recipients by address; all pending, arrived at arrival. */
static void entry(struct queue_entry *e, const char *sender, int64_t arrival, size_t n, const char *const *rcpts)
{
	memset(e, 0, sizeof(*e));
	snprintf(e->id, sizeof(e->id), "id.1.1");
	e->sender = xstrdup(sender);
	e->arrival = arrival;
	e->size = 100;
	e->n_rcpts = n;
	e->rcpts = xcalloc(n, sizeof(*e->rcpts));
	for (size_t i = 0; i < n; i++)
		e->rcpts[i].address = xstrdup(rcpts[i]);
}

static void schedule(struct smtp_schedule *s)
{
	const char *err;
	smtp_schedule_default(s);
	ck_assert_int_eq(smtp_schedule_parse("1m 5m 1h", s, &err), 0);
	s->lifetime_s = 5 * DAY;
	s->delay_warning_s = 0;
}

static const char *const TWO[] = { "bob@remote.test", "nobody@remote.test" };

START_TEST(delivered_all_removes)
{
	struct queue_entry e;
	struct smtp_schedule s;
	struct outbound_dsn_rcpt dsn[2];
	struct outbound_verdict v;
	struct outbound_result r[2] = {
		{ OUTBOUND_DELIVERED, "250 2.0.0 Ok", NULL, "mx.remote.test" },
		{ OUTBOUND_DELIVERED, "250 2.0.0 Ok", NULL, "mx.remote.test" },
	};

	entry(&e, "alice@example.test", NOW, 2, TWO);
	schedule(&s);
	ck_assert_int_eq(outbound_apply(&e, r, 2, &s, NOW, 0, dsn, &v), 0);
	ck_assert(v.remove && !v.expired);
	ck_assert_uint_eq(v.delivered, 2);
	ck_assert_uint_eq(v.n_dsn_failed + v.n_dsn_delayed, 0);
	ck_assert_int_eq(e.rcpts[0].state, QUEUE_RCPT_DELIVERED);
	ck_assert_str_eq(e.rcpts[0].remote_mta, "mx.remote.test");
	ck_assert_uint_eq(e.attempts, 1);
	ck_assert_int_eq(e.last_attempt, NOW);
	queue_entry_free(&e);
}
END_TEST

START_TEST(deferred_waits_by_schedule)
{
	struct queue_entry e;
	struct smtp_schedule s;
	struct outbound_dsn_rcpt dsn[2];
	struct outbound_verdict v;
	struct outbound_result r[2] = {
		{ OUTBOUND_DEFERRED, "451 4.4.1 connect to mx.remote.test[192.0.2.1] failed", NULL, NULL },
		{ OUTBOUND_DEFERRED, "450 4.2.0 greylisted", "4.2.0", "mx.remote.test" },
	};

	entry(&e, "alice@example.test", NOW, 2, TWO);
	schedule(&s);
	ck_assert_int_eq(outbound_apply(&e, r, 2, &s, NOW, 0, dsn, &v), 0);
	ck_assert(!v.remove);
	ck_assert_uint_eq(v.deferred, 2);
	ck_assert_int_eq(e.next_attempt, NOW + 60);
	ck_assert_str_eq(e.rcpts[0].last_reply, "451 4.4.1 connect to mx.remote.test[192.0.2.1] failed");
	ck_assert_ptr_null(e.rcpts[0].remote_mta);
	ck_assert_str_eq(e.rcpts[1].remote_mta, "mx.remote.test");
	/* Second and third failures: 5 minutes, then the last wait repeats. */
	ck_assert_int_eq(outbound_apply(&e, r, 2, &s, NOW + 60, 0, dsn, &v), 0);
	ck_assert_int_eq(e.next_attempt, NOW + 60 + 300);
	ck_assert_int_eq(outbound_apply(&e, r, 2, &s, NOW + 400, 0, dsn, &v), 0);
	ck_assert_int_eq(outbound_apply(&e, r, 2, &s, NOW + 5000, 0, dsn, &v), 0);
	ck_assert_int_eq(e.next_attempt, NOW + 5000 + 3600);
	ck_assert_uint_eq(e.attempts, 4);
	ck_assert_uint_eq(v.n_dsn_failed + v.n_dsn_delayed, 0);
	queue_entry_free(&e);
}
END_TEST

START_TEST(failed_bounces_per_notify)
{
	static const char *const THREE[] = { "a@remote.test", "b@remote.test", "c@remote.test" };
	struct queue_entry e;
	struct smtp_schedule s;
	struct outbound_dsn_rcpt dsn[3];
	struct outbound_verdict v;
	struct outbound_result r[3] = {
		{ OUTBOUND_FAILED, "550 5.1.1 No such user here", "5.1.1", "mx.remote.test" },
		{ OUTBOUND_FAILED, "550 5.1.1 No such user here", "5.1.1", "mx.remote.test" },
		{ OUTBOUND_FAILED, "554 5.6.3 message has 8-bit content", NULL, NULL },
	};

	entry(&e, "alice@example.test", NOW, 3, THREE);
	e.rcpts[1].notify = SMTP_NOTIFY_NEVER;
	e.rcpts[2].notify = SMTP_NOTIFY_DELAY; /* not FAILURE */
	schedule(&s);
	ck_assert_int_eq(outbound_apply(&e, r, 3, &s, NOW, 0, dsn, &v), 0);
	ck_assert(v.remove);
	ck_assert_uint_eq(v.failed, 3);
	ck_assert_uint_eq(v.n_dsn_failed, 1);
	ck_assert_int_eq(dsn[0].dsn, OUTBOUND_DSN_FAILED);
	ck_assert_str_eq(dsn[0].status, "5.1.1");
	ck_assert(!dsn[0].expired);
	ck_assert_int_eq(dsn[1].dsn, OUTBOUND_DSN_NONE);
	ck_assert_int_eq(dsn[2].dsn, OUTBOUND_DSN_NONE);
	queue_entry_free(&e);

	/* The status comes from the reply when the result has none. */
	entry(&e, "alice@example.test", NOW, 1, THREE);
	ck_assert_int_eq(outbound_apply(&e, &r[2], 1, &s, NOW, 0, dsn, &v), 0);
	ck_assert_str_eq(dsn[0].status, "5.6.3");
	queue_entry_free(&e);
}
END_TEST

START_TEST(null_sender_never_bounces)
{
	struct queue_entry e;
	struct smtp_schedule s;
	struct outbound_dsn_rcpt dsn[2];
	struct outbound_verdict v;
	struct outbound_result r[2] = {
		{ OUTBOUND_FAILED, "550 5.1.1 No such user", "5.1.1", "mx.remote.test" },
		{ OUTBOUND_DEFERRED, "451 4.4.1 down", NULL, NULL },
	};

	entry(&e, "", NOW - 10 * DAY, 2, TWO);
	e.attempts = 5;
	schedule(&s);
	ck_assert_int_eq(outbound_apply(&e, r, 2, &s, NOW, 0, dsn, &v), 0);
	ck_assert(v.remove && v.expired);
	ck_assert_uint_eq(v.failed, 2);
	ck_assert_uint_eq(v.n_dsn_failed + v.n_dsn_delayed, 0);
	/* Even a hold cannot keep a notice-less failure. */
	queue_entry_free(&e);
	entry(&e, "", NOW, 2, TWO);
	ck_assert_int_eq(outbound_apply(&e, r, 2, &s, NOW, OUTBOUND_APPLY_HOLD_DSN, dsn, &v), 0);
	ck_assert_int_eq(e.rcpts[0].state, QUEUE_RCPT_FAILED);
	queue_entry_free(&e);
}
END_TEST

START_TEST(expiry_fails_open_rcpts)
{
	static const char *const THREE[] = { "a@remote.test", "b@remote.test", "c@remote.test" };
	struct queue_entry e;
	struct smtp_schedule s;
	struct outbound_dsn_rcpt dsn[3];
	struct outbound_verdict v;
	struct outbound_result r[3] = {
		{ OUTBOUND_DEFERRED, "451 4.4.1 connect to mx.remote.test[192.0.2.1] failed: connection refused", NULL,
		  NULL },
		{ OUTBOUND_DEFERRED, "450 greylisted, come back later", NULL, "mx.remote.test" },
		{ OUTBOUND_NOT_TRIED, NULL, NULL, NULL },
	};

	entry(&e, "alice@example.test", NOW - 5 * DAY, 3, THREE);
	e.attempts = 20;
	e.rcpts[1].state = QUEUE_RCPT_DEFERRED;
	schedule(&s);
	ck_assert_int_eq(outbound_apply(&e, r, 3, &s, NOW, 0, dsn, &v), 0);
	ck_assert(v.expired && v.remove);
	ck_assert_uint_eq(v.n_dsn_failed, 3);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(e.rcpts[i].state, QUEUE_RCPT_FAILED);
		ck_assert_int_eq(dsn[i].dsn, OUTBOUND_DSN_FAILED);
		ck_assert(dsn[i].expired);
	}
	/* RFC 3463 X.4.7: the actual problem's code when there is one. */
	ck_assert_str_eq(dsn[0].status, "4.4.1");
	ck_assert_str_eq(dsn[1].status, "4.4.7");
	ck_assert_str_eq(dsn[2].status, "4.4.7");
	queue_entry_free(&e);

	/* Just before the end: deferred, and the next attempt is the
	 * deadline itself. */
	entry(&e, "alice@example.test", NOW - 5 * DAY + 100, 3, THREE);
	e.attempts = 20;
	ck_assert_int_eq(outbound_apply(&e, r, 3, &s, NOW, 0, dsn, &v), 0);
	ck_assert(!v.expired && !v.remove);
	ck_assert_int_eq(e.next_attempt, NOW + 100);
	queue_entry_free(&e);
}
END_TEST

START_TEST(hold_keeps_failures_deferred)
{
	struct queue_entry e;
	struct smtp_schedule s;
	struct outbound_dsn_rcpt dsn[2];
	struct outbound_verdict v;
	struct outbound_result r[2] = {
		{ OUTBOUND_FAILED, "550 5.1.1 No such user", "5.1.1", "mx.remote.test" },
		{ OUTBOUND_DELIVERED, "250 ok", NULL, "mx.remote.test" },
	};

	entry(&e, "alice@example.test", NOW, 2, TWO);
	schedule(&s);
	ck_assert_int_eq(outbound_apply(&e, r, 2, &s, NOW, OUTBOUND_APPLY_HOLD_DSN, dsn, &v), 0);
	ck_assert(!v.remove);
	ck_assert_int_eq(e.rcpts[0].state, QUEUE_RCPT_DEFERRED);
	ck_assert_str_eq(e.rcpts[0].last_reply, "550 5.1.1 No such user");
	ck_assert_int_eq(e.rcpts[1].state, QUEUE_RCPT_DELIVERED);
	ck_assert_uint_eq(v.n_dsn_failed, 0);
	/* The schedule goes on as for any deferral. */
	ck_assert_int_eq(e.next_attempt, NOW + 60);
	queue_entry_free(&e);

	/* Expired and held: stays, tried again after the longest wait. */
	entry(&e, "alice@example.test", NOW - 6 * DAY, 2, TWO);
	e.attempts = 30;
	r[0].outcome = OUTBOUND_DEFERRED;
	ck_assert_int_eq(outbound_apply(&e, r, 2, &s, NOW, OUTBOUND_APPLY_HOLD_DSN, dsn, &v), 0);
	ck_assert(v.expired && !v.remove);
	ck_assert_int_eq(e.rcpts[0].state, QUEUE_RCPT_DEFERRED);
	ck_assert_int_eq(e.next_attempt, NOW + 3600);
	queue_entry_free(&e);
}
END_TEST

START_TEST(delay_warning_once)
{
	struct queue_entry e;
	struct smtp_schedule s;
	struct outbound_dsn_rcpt dsn[2];
	struct outbound_verdict v;
	struct outbound_result r[2] = {
		{ OUTBOUND_DEFERRED, "451 4.4.1 connect failed", NULL, NULL },
		{ OUTBOUND_DEFERRED, "421 service not available", NULL, "mx.remote.test" },
	};

	entry(&e, "alice@example.test", NOW, 2, TWO);
	e.rcpts[1].notify = SMTP_NOTIFY_FAILURE; /* no DELAY */
	schedule(&s);
	s.delay_warning_s = 4 * 3600;
	ck_assert_int_eq(outbound_apply(&e, r, 2, &s, NOW + 3600, 0, dsn, &v), 0);
	ck_assert_uint_eq(v.n_dsn_delayed, 0);
	ck_assert(!e.warned);
	/* A held notice does not count as sent. */
	ck_assert_int_eq(outbound_apply(&e, r, 2, &s, NOW + 5 * 3600, OUTBOUND_APPLY_HOLD_DSN, dsn, &v), 0);
	ck_assert(!e.warned);
	ck_assert_int_eq(outbound_apply(&e, r, 2, &s, NOW + 5 * 3600, 0, dsn, &v), 0);
	ck_assert(e.warned);
	ck_assert_uint_eq(v.n_dsn_delayed, 1);
	ck_assert_int_eq(dsn[0].dsn, OUTBOUND_DSN_DELAYED);
	ck_assert_str_eq(dsn[0].status, "4.4.1");
	ck_assert_int_eq(dsn[1].dsn, OUTBOUND_DSN_NONE);
	ck_assert_int_eq(outbound_apply(&e, r, 2, &s, NOW + 6 * 3600, 0, dsn, &v), 0);
	ck_assert_uint_eq(v.n_dsn_delayed, 0);
	queue_entry_free(&e);
}
END_TEST

START_TEST(decided_rcpts_never_change)
{
	struct queue_entry e;
	struct smtp_schedule s;
	struct outbound_dsn_rcpt dsn[2];
	struct outbound_verdict v;
	struct outbound_result r[2] = {
		{ OUTBOUND_FAILED, "550 5.1.1 nope", "5.1.1", "mx" },
		{ OUTBOUND_DELIVERED, "250 ok", NULL, "mx" },
	};

	entry(&e, "alice@example.test", NOW, 2, TWO);
	e.rcpts[0].state = QUEUE_RCPT_DELIVERED;
	e.rcpts[1].state = QUEUE_RCPT_FAILED;
	schedule(&s);
	ck_assert_int_eq(outbound_apply(&e, r, 2, &s, NOW, 0, dsn, &v), 0);
	ck_assert_int_eq(e.rcpts[0].state, QUEUE_RCPT_DELIVERED);
	ck_assert_int_eq(e.rcpts[1].state, QUEUE_RCPT_FAILED);
	ck_assert_ptr_null(e.rcpts[0].last_reply);
	ck_assert_uint_eq(v.n_dsn_failed, 0);
	ck_assert(v.remove);
	/* The record must match the results. */
	ck_assert_int_eq(outbound_apply(&e, r, 1, &s, NOW, 0, dsn, &v), -1);
	queue_entry_free(&e);
}
END_TEST

START_TEST(delivered_only_on_stop)
{
	struct queue_entry e;
	struct smtp_schedule s;
	struct outbound_dsn_rcpt dsn[2];
	struct outbound_verdict v;
	struct outbound_result r[2] = {
		{ OUTBOUND_DELIVERED, "250 ok", NULL, "mx" },
		{ OUTBOUND_FAILED, "550 5.1.1 nope", "5.1.1", "mx" },
	};

	entry(&e, "alice@example.test", NOW, 2, TWO);
	e.next_attempt = 0;
	schedule(&s);
	ck_assert_int_eq(outbound_apply(&e, r, 2, &s, NOW, OUTBOUND_APPLY_DELIVERED_ONLY, dsn, &v), 0);
	ck_assert_int_eq(e.rcpts[0].state, QUEUE_RCPT_DELIVERED);
	ck_assert_int_eq(e.rcpts[1].state, QUEUE_RCPT_PENDING);
	ck_assert_uint_eq(e.attempts, 0);
	ck_assert_int_eq(e.next_attempt, 0);
	ck_assert(!v.remove);
	ck_assert_uint_eq(v.n_dsn_failed, 0);
	queue_entry_free(&e);
}
END_TEST

START_TEST(bounce_fields)
{
	static const char *const THREE[] = { "a@remote.test", "b@remote.test", "c@remote.test" };
	struct queue_entry e;
	struct outbound_dsn_rcpt dsn[3];
	struct smtp_dsn_rcpt out[3];
	char *texts[3];

	entry(&e, "alice@example.test", NOW, 3, THREE);
	e.last_attempt = NOW;
	e.rcpts[0].last_reply = xstrdup("550 5.1.1 No such user here");
	e.rcpts[0].remote_mta = xstrdup("mx.remote.test");
	e.rcpts[0].orcpt = xstrdup("rfc822;A@remote.test");
	e.rcpts[1].last_reply = xstrdup("451 4.4.1 connect to mx.remote.test[192.0.2.1] failed");
	e.rcpts[2].last_reply = xstrdup("451 4.4.1 connect failed");
	memset(dsn, 0, sizeof(dsn));
	dsn[0] = (struct outbound_dsn_rcpt){ OUTBOUND_DSN_FAILED, "5.1.1", false };
	dsn[1] = (struct outbound_dsn_rcpt){ OUTBOUND_DSN_FAILED, "4.4.1", true };
	dsn[2] = (struct outbound_dsn_rcpt){ OUTBOUND_DSN_NONE, "", false };
	size_t n = outbound_bounce_rcpts(&e, dsn, NOW + DAY, out, texts);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(out[0].address, "a@remote.test");
	ck_assert_str_eq(out[0].orcpt, "rfc822;A@remote.test");
	ck_assert_str_eq(out[0].diagnostic, "550 5.1.1 No such user here");
	ck_assert_str_eq(out[0].remote_mta, "mx.remote.test");
	ck_assert_str_eq(out[0].status, "5.1.1");
	ck_assert_ptr_null(out[0].text);
	ck_assert_int_eq(out[0].action, SMTP_DSN_FAILED);
	ck_assert_int_eq(out[0].last_attempt, NOW);
	ck_assert_ptr_null(out[1].diagnostic);
	ck_assert_ptr_null(out[1].remote_mta);
	ck_assert_ptr_nonnull(strstr(out[1].text, "too long in the queue"));
	ck_assert_ptr_nonnull(strstr(out[1].text, "; the last problem was: connect to mx.remote.test[192.0.2.1] failed"));
	ck_assert_ptr_null(strstr(out[1].text, "451"));
	ck_assert_int_eq(out[1].retry_until, 0);
	for (size_t i = 0; i < n; i++)
		free(texts[i]);

	/* A delay warning carries Will-Retry-Until. */
	dsn[0].dsn = OUTBOUND_DSN_DELAYED;
	dsn[1].dsn = OUTBOUND_DSN_NONE;
	n = outbound_bounce_rcpts(&e, dsn, NOW + DAY, out, texts);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(out[0].action, SMTP_DSN_DELAYED);
	ck_assert_int_eq(out[0].retry_until, NOW + DAY);
	for (size_t i = 0; i < n; i++)
		free(texts[i]);
	queue_entry_free(&e);
}
END_TEST

START_TEST(schedule_from_config)
{
	struct config cfg;
	struct smtp_schedule s;

	config_defaults(&cfg);
	outbound_schedule_from_config(&cfg, &s);
	ck_assert_uint_eq(s.n, 5);
	ck_assert_uint_eq(s.interval_s[0], 60);
	ck_assert_uint_eq(s.lifetime_s, 5 * DAY);
	ck_assert_uint_eq(s.delay_warning_s, 0);
	free(cfg.queue_retry);
	cfg.queue_retry = xstrdup("1s 1s 2s");
	cfg.queue_lifetime_ms = 3500;
	cfg.queue_delay_warning_ms = 2000;
	outbound_schedule_from_config(&cfg, &s);
	ck_assert_uint_eq(s.n, 3);
	ck_assert_uint_eq(s.interval_s[2], 2);
	ck_assert_uint_eq(s.lifetime_s, 3);
	ck_assert_uint_eq(s.delay_warning_s, 2);
	free(cfg.queue_retry);
	cfg.queue_retry = xstrdup("soon");
	outbound_schedule_from_config(&cfg, &s);
	ck_assert_uint_eq(s.n, 5); /* the default */
	config_free(&cfg);
}
END_TEST

START_TEST(entry_copy_is_deep)
{
	struct queue_entry e, c;

	entry(&e, "alice@example.test", NOW, 2, TWO);
	e.envid = xstrdup("ENV");
	e.rcpts[1].last_reply = xstrdup("451 x");
	outbound__entry_copy(&c, &e);
	queue_entry_free(&e);
	ck_assert_str_eq(c.sender, "alice@example.test");
	ck_assert_str_eq(c.envid, "ENV");
	ck_assert_str_eq(c.rcpts[1].address, "nobody@remote.test");
	ck_assert_str_eq(c.rcpts[1].last_reply, "451 x");
	ck_assert_str_eq(c.id, "id.1.1");
	queue_entry_free(&c);
}
END_TEST

static Suite *outbound_suite(void)
{
	Suite *s = suite_create("outbound");
	TCase *tc = tcase_create("apply");
	tcase_add_test(tc, delivered_all_removes);
	tcase_add_test(tc, deferred_waits_by_schedule);
	tcase_add_test(tc, failed_bounces_per_notify);
	tcase_add_test(tc, null_sender_never_bounces);
	tcase_add_test(tc, expiry_fails_open_rcpts);
	tcase_add_test(tc, hold_keeps_failures_deferred);
	tcase_add_test(tc, delay_warning_once);
	tcase_add_test(tc, decided_rcpts_never_change);
	tcase_add_test(tc, delivered_only_on_stop);
	suite_add_tcase(s, tc);
	TCase *tb = tcase_create("bounce");
	tcase_add_test(tb, bounce_fields);
	tcase_add_test(tb, schedule_from_config);
	tcase_add_test(tb, entry_copy_is_deep);
	suite_add_tcase(s, tb);
	return s;
}

int main(void)
{
	return testutil_run(outbound_suite());
}
