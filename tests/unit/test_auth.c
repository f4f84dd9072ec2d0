#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <uv.h>

#include "auth/auth.h"
#include "auth/passwd.h"
#include "auth/throttle.h"
#include "auth/userdb.h"
#include "core/config.h"
#include "core/db.h"
#include "core/log.h"
#include "testutil.h"

static char tmpdir[64];
static struct config cfg;
static struct db *db;
static uv_loop_t loop;
static struct auth *auth;

/* A request and what its callback saw. */
struct treq {
	struct auth_request req;
	int called;
	enum auth_result result;
	bool cancelled;
	uint64_t started, finished;
};

static unsigned max_running_seen;

static void done_cb(struct auth_request *req, enum auth_result result)
{
	struct treq *t = req->data;
	struct auth_stats s;
	auth_get_stats(auth, &s);
	if (s.running > max_running_seen)
		max_running_seen = s.running;
	t->called++;
	t->result = result;
	t->cancelled = req->cancelled;
	t->finished = uv_now(&loop);
}

static struct iplimit_key key4(const char *addr)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct iplimit_key k;
	ck_assert_int_eq(inet_pton(AF_INET, addr, &sin.sin_addr), 1);
	iplimit_key_from((struct sockaddr *)&sin, &k);
	return k;
}

static void add_user(const char *address, const char *scheme, const char *password, bool disabled)
{
	char *hash = NULL, *error = NULL;
	ck_assert_int_eq(passwd_hash(scheme, password, &hash, &error), 0);
	struct user u = { .address = (char *)address, .password_hash = hash, .disabled = disabled };
	ck_assert_msg(userdb_put(db, &u, &error) == 0, "%s", error);
	free(hash);
}

static void setup(void)
{
	char *error = NULL;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/postbote-auth-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	char *text;
	ck_assert_int_ge(asprintf(&text, "data_dir = %s\ndomain = example.test\nlisten = smtp 127.0.0.1:2525\n"
				  "index_map_size = 64M\n", tmpdir), 0);
	ck_assert_msg(config_parse("test.conf", text, strlen(text), &cfg, &error) == 0, "%s", error);
	free(text);
	cfg.auth_fail_delay_ms = 50;
	cfg.auth_fail_delay_max_ms = 200;
	cfg.auth_lockout_failures = 10;
	cfg.auth_lockout_ms = 60000;
	cfg.auth_max_hashing = 2;
	ck_assert_msg(db_open(tmpdir, cfg.index_map_size, &db, &error) == 0, "%s", error);
	add_user("alice@example.test", "sha512crypt", "alice pw", false);
	add_user("dora@example.test", "sha512crypt", "dora pw", true);
	ck_assert_int_eq(uv_loop_init(&loop), 0);
	log_setup(LOG_LEVEL_WARN, false, NULL);
}

static void start_auth(void)
{
	auth = auth_new(&loop, &cfg, db);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void teardown(void)
{
	if (auth != NULL) {
		struct auth_stats s;
		auth_get_stats(auth, &s);
		ck_assert_uint_eq(s.pending, 0);
		auth_free(&auth);
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
	db_close(&db);
	config_free(&cfg);
	nftw(tmpdir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

static void verify(struct treq *t, const char *user, const char *password, const char *ip)
{
	struct iplimit_key k = key4(ip);
	memset(t, 0, sizeof(*t));
	t->req.data = t;
	t->started = uv_now(&loop);
	ck_assert_int_eq(auth_verify(auth, &t->req, user, password, &k, ip, done_cb), 0);
	/* Never called back from inside auth_verify. */
	ck_assert_int_eq(t->called, 0);
}

static void run_one(struct treq *t, const char *user, const char *password, const char *ip)
{
	verify(t, user, password, ip);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(t->called, 1);
}

/* Capture stderr (the log) around a stretch of code. */
static char captured[8192];
static int saved_fd;

static void capture_begin(void)
{
	fflush(stderr);
	saved_fd = dup(2);
	FILE *f = tmpfile();
	dup2(fileno(f), 2);
	fclose(f);
}

static void capture_end(void)
{
	fflush(stderr);
	off_t len = lseek(2, 0, SEEK_CUR);
	lseek(2, 0, SEEK_SET);
	ssize_t n = read(2, captured, len < (off_t)sizeof(captured) - 1 ? (size_t)len : sizeof(captured) - 1);
	captured[n > 0 ? n : 0] = '\0';
	dup2(saved_fd, 2);
	close(saved_fd);
}

START_TEST(verify_outcomes)
{
	struct treq t;

	start_auth();
	log_setup(LOG_LEVEL_INFO, false, NULL);
	capture_begin();
	run_one(&t, "Alice@Example.TEST", "alice pw", "192.0.2.1");
	ck_assert_int_eq(t.result, AUTH_OK);
	ck_assert_str_eq(t.req.user, "alice@example.test");
	ck_assert(!t.cancelled);

	run_one(&t, "alice@example.test", "wrong", "192.0.2.2");
	ck_assert_int_eq(t.result, AUTH_FAIL);
	run_one(&t, "nobody@example.test", "whatever", "192.0.2.3");
	ck_assert_int_eq(t.result, AUTH_FAIL);
	run_one(&t, "not an address", "whatever", "192.0.2.4");
	ck_assert_int_eq(t.result, AUTH_FAIL);
	/* Disabled: fails even with the right password. */
	run_one(&t, "dora@example.test", "dora pw", "192.0.2.5");
	ck_assert_int_eq(t.result, AUTH_FAIL);
	capture_end();

	ck_assert_msg(strstr(captured, "auth: failed ip=192.0.2.2 user=alice@example.test reason=password\n"),
		      "%s", captured);
	ck_assert(strstr(captured, "auth: failed ip=192.0.2.3 user=nobody@example.test reason=unknown-user\n"));
	ck_assert(strstr(captured, "auth: failed ip=192.0.2.4 user=not\\x20an\\x20address reason=unknown-user\n"));
	ck_assert(strstr(captured, "auth: failed ip=192.0.2.5 user=dora@example.test reason=disabled\n"));
	ck_assert(strstr(captured, "192.0.2.1") == NULL);
	/* Never a password. */
	ck_assert(strstr(captured, "wrong") == NULL && strstr(captured, "whatever") == NULL &&
		  strstr(captured, "pw") == NULL);

	struct auth_stats s;
	auth_get_stats(auth, &s);
	ck_assert_uint_eq(s.checks, 5);
	ck_assert_uint_eq(s.pending, 0);
	/* The password buffer is wiped. */
	for (size_t i = 0; i < sizeof(t.req.password); i++)
		ck_assert_int_eq(t.req.password[i], 0);
}
END_TEST

START_TEST(bad_arguments)
{
	struct treq t = { 0 };
	struct iplimit_key k = key4("192.0.2.1");
	char long_user[300], long_pw[1100];

	start_auth();
	memset(long_user, 'u', sizeof(long_user) - 1);
	long_user[sizeof(long_user) - 1] = '\0';
	memset(long_pw, 'p', sizeof(long_pw) - 1);
	long_pw[sizeof(long_pw) - 1] = '\0';
	t.req.data = &t;
	ck_assert_int_eq(auth_verify(auth, &t.req, "", "pw", &k, "192.0.2.1", done_cb), -1);
	ck_assert_int_eq(auth_verify(auth, &t.req, long_user, "pw", &k, "192.0.2.1", done_cb), -1);
	ck_assert_int_eq(auth_verify(auth, &t.req, "a@example.test", long_pw, &k, "192.0.2.1", done_cb), -1);
	ck_assert_int_eq(auth_verify(auth, &t.req, "a@example.test", "pw", &k, "192.0.2.1", NULL), -1);
	/* A request in use cannot be queued twice. */
	ck_assert_int_eq(auth_verify(auth, &t.req, "alice@example.test", "alice pw", &k, "192.0.2.1", done_cb), 0);
	ck_assert_int_eq(auth_verify(auth, &t.req, "alice@example.test", "alice pw", &k, "192.0.2.1", done_cb), -1);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(t.called, 1);
	ck_assert_int_eq(t.result, AUTH_OK);
	/* ... and is reusable once done. */
	ck_assert_int_eq(auth_verify(auth, &t.req, "alice@example.test", "alice pw", &k, "192.0.2.1", done_cb), 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(t.called, 2);
}
END_TEST

START_TEST(concurrency_cap)
{
	enum { N = 8 };
	struct treq t[N];
	char user[64], pw[64], ip[32];

	/* yescrypt, so that the checks overlap for real. */
	for (int i = 0; i < N; i++) {
		snprintf(user, sizeof(user), "u%d@example.test", i);
		snprintf(pw, sizeof(pw), "pw%d", i);
		add_user(user, "yescrypt", pw, false);
	}
	start_auth();
	max_running_seen = 0;
	for (int i = 0; i < N; i++) {
		snprintf(user, sizeof(user), "u%d@example.test", i);
		snprintf(pw, sizeof(pw), i % 2 ? "pw%d" : "bad%d", i);
		snprintf(ip, sizeof(ip), "192.0.2.%d", i + 1);
		verify(&t[i], user, pw, ip);
	}
	struct auth_stats s;
	auth_get_stats(auth, &s);
	ck_assert_uint_eq(s.pending, N);
	ck_assert_uint_eq(s.running, 2);
	ck_assert_uint_eq(s.queued, N - 2);
	uv_run(&loop, UV_RUN_DEFAULT);
	for (int i = 0; i < N; i++) {
		ck_assert_int_eq(t[i].called, 1);
		ck_assert_int_eq(t[i].result, i % 2 ? AUTH_OK : AUTH_FAIL);
	}
	auth_get_stats(auth, &s);
	ck_assert_uint_eq(s.checks, N);
	ck_assert_uint_eq(s.pending, 0);
	ck_assert_uint_le(s.peak_hashing, 2);
	ck_assert_uint_ge(s.peak_hashing, 1);
	ck_assert_uint_le(max_running_seen, 2);
}
END_TEST

START_TEST(throttled_delay)
{
	struct treq t;

	start_auth();
	run_one(&t, "alice@example.test", "wrong1", "192.0.2.1");
	ck_assert_int_eq(t.result, AUTH_FAIL);
	/* One failure: the next attempt waits 50 ms, even a right one. */
	run_one(&t, "alice@example.test", "wrong2", "192.0.2.1");
	ck_assert_int_eq(t.result, AUTH_FAIL);
	ck_assert_uint_ge(t.finished - t.started, 50);
	/* Two: 100 ms. */
	run_one(&t, "alice@example.test", "alice pw", "192.0.2.1");
	ck_assert_int_eq(t.result, AUTH_OK);
	ck_assert_uint_ge(t.finished - t.started, 100);
	/* The success reset both (asked directly: a hash under valgrind
	 * takes longer than the delay, so timing cannot tell). */
	uint64_t delay = 1;
	struct iplimit_key ip = key4("192.0.2.1");
	ck_assert_int_eq(throttle_check(auth_throttle(auth), &ip, "alice@example.test", uv_now(&loop), &delay),
			 THROTTLE_OK);
	ck_assert_uint_eq(delay, 0);
	struct auth_stats s;
	run_one(&t, "alice@example.test", "alice pw", "192.0.2.1");
	ck_assert_int_eq(t.result, AUTH_OK);
	auth_get_stats(auth, &s);
	ck_assert_uint_eq(s.delayed, 0);
	/* The account's failures delay other addresses too. */
	run_one(&t, "alice@example.test", "wrong3", "192.0.2.7");
	uv_update_time(&loop);
	run_one(&t, "alice@example.test", "wrong4", "198.51.100.1");
	ck_assert_uint_ge(t.finished - t.started, 50);
}
END_TEST

START_TEST(lockout)
{
	struct treq t;

	cfg.auth_lockout_failures = 2;
	cfg.auth_fail_delay_ms = 0;
	start_auth();
	run_one(&t, "alice@example.test", "wrong1", "192.0.2.1");
	run_one(&t, "alice@example.test", "wrong2", "192.0.2.1");
	ck_assert_int_eq(t.result, AUTH_FAIL);
	struct auth_stats s;
	auth_get_stats(auth, &s);
	unsigned long checks = s.checks;
	/* Locked now: even the right password, without hashing. */
	run_one(&t, "alice@example.test", "alice pw", "192.0.2.1");
	ck_assert_int_eq(t.result, AUTH_LOCKED);
	run_one(&t, "alice@example.test", "alice pw", "198.51.100.1");
	ck_assert_int_eq(t.result, AUTH_LOCKED);
	auth_get_stats(auth, &s);
	ck_assert_uint_eq(s.checks, checks);
	/* Other accounts from another address are fine. */
	add_user("bob@example.test", "sha512crypt", "bob pw", false);
	run_one(&t, "bob@example.test", "bob pw", "198.51.100.1");
	ck_assert_int_eq(t.result, AUTH_OK);
}
END_TEST

START_TEST(tempfail_on_damaged_record)
{
	MDB_txn *txn;
	struct treq t;

	ck_assert_int_eq(mdb_txn_begin(db->env, NULL, 0, &txn), 0);
	MDB_val k = { 18, "carl@example.test" }, v = { 2, "\x09x" };
	k.mv_size = strlen("carl@example.test");
	ck_assert_int_eq(mdb_put(txn, db->users, &k, &v, 0), 0);
	ck_assert_int_eq(mdb_txn_commit(txn), 0);
	start_auth();
	log_setup(LOG_LEVEL_ERROR, false, NULL);
	run_one(&t, "carl@example.test", "pw", "192.0.2.1");
	ck_assert_int_eq(t.result, AUTH_TEMPFAIL);
	/* Not counted as a failure. */
	uint64_t d;
	struct iplimit_key ip = key4("192.0.2.1");
	ck_assert_int_eq(throttle_check(auth_throttle(auth), &ip, "carl@example.test", uv_now(&loop), &d),
			 THROTTLE_OK);
	ck_assert_uint_eq(d, 0);
}
END_TEST

START_TEST(cancel)
{
	struct treq a, b, c, d;

	cfg.auth_max_hashing = 1;
	start_auth();
	/* One failure for 192.0.2.9, so its next attempt is delayed. */
	run_one(&d, "nobody@example.test", "x", "192.0.2.9");

	verify(&a, "alice@example.test", "alice pw", "192.0.2.1");   /* running */
	verify(&b, "alice@example.test", "alice pw", "192.0.2.2");   /* queued */
	verify(&c, "alice@example.test", "alice pw", "192.0.2.3");   /* queued */
	verify(&d, "alice@example.test", "alice pw", "192.0.2.9");   /* delayed */
	struct auth_stats s;
	auth_get_stats(auth, &s);
	ck_assert_uint_eq(s.running, 1);
	ck_assert_uint_eq(s.queued, 2);
	ck_assert_uint_eq(s.delayed, 1);
	unsigned long checks = s.checks;

	auth_cancel(&b.req);
	auth_cancel(&d.req);
	auth_cancel(&b.req); /* twice is harmless */
	/* Callbacks still come later, not from auth_cancel. */
	ck_assert_int_eq(b.called, 0);
	ck_assert_int_eq(d.called, 0);
	auth_cancel(&a.req); /* running: the flag only (or recalled) */
	uv_run(&loop, UV_RUN_DEFAULT);

	ck_assert_int_eq(b.called, 1);
	ck_assert(b.cancelled);
	ck_assert_int_eq(b.result, AUTH_FAIL);
	ck_assert_int_eq(d.called, 1);
	ck_assert(d.cancelled);
	ck_assert_int_eq(a.called, 1);
	ck_assert(a.cancelled);
	ck_assert_int_eq(c.called, 1);
	ck_assert(!c.cancelled);
	ck_assert_int_eq(c.result, AUTH_OK);
	auth_get_stats(auth, &s);
	ck_assert_uint_le(s.checks, checks + 2); /* b and d never ran; a may have */
	ck_assert_uint_ge(s.checks, checks + 1);
	ck_assert_uint_eq(s.pending, 0);
	/* Cancelling a finished request does nothing. */
	auth_cancel(&c.req);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(c.called, 1);
}
END_TEST

/* A callback that frees its own request and starts another. */
static struct treq *chained;

static void free_and_chain_cb(struct auth_request *req, enum auth_result result)
{
	struct treq *t = req->data;
	ck_assert_int_eq(result, AUTH_OK);
	free(t);
	if (chained == NULL) {
		chained = calloc(1, sizeof(*chained));
		struct iplimit_key k = key4("192.0.2.1");
		chained->req.data = chained;
		ck_assert_int_eq(auth_verify(auth, &chained->req, "alice@example.test", "alice pw", &k, "192.0.2.1",
					     done_cb), 0);
	}
}

START_TEST(callback_may_free_and_reenter)
{
	struct treq *t = calloc(1, sizeof(*t));
	struct iplimit_key k = key4("192.0.2.1");

	start_auth();
	chained = NULL;
	t->req.data = t;
	ck_assert_int_eq(auth_verify(auth, &t->req, "alice@example.test", "alice pw", &k, "192.0.2.1",
				     free_and_chain_cb), 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_ptr_nonnull(chained);
	ck_assert_int_eq(chained->called, 1);
	ck_assert_int_eq(chained->result, AUTH_OK);
	free(chained);
}
END_TEST

START_TEST(log_escape)
{
	char buf[32];

	auth_log_escape("alice@example.test", buf, sizeof(buf));
	ck_assert_str_eq(buf, "alice@example.test");
	auth_log_escape("a b\"c\\d\x01\xc3\xa4", buf, sizeof(buf));
	ck_assert_str_eq(buf, "a\\x20b\\x22c\\x5cd\\x01\\xc3\\xa4");
	auth_log_escape("0123456789012345678901234567890123456789", buf, sizeof(buf));
	ck_assert_uint_lt(strlen(buf), sizeof(buf));
	ck_assert(strcmp(buf + strlen(buf) - 3, "...") == 0);
	char tiny[4];
	auth_log_escape("abcdef", tiny, sizeof(tiny));
	ck_assert_uint_lt(strlen(tiny), sizeof(tiny));
}
END_TEST

static Suite *auth_suite(void)
{
	Suite *s = suite_create("auth");
	TCase *tc = tcase_create("core");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, verify_outcomes);
	tcase_add_test(tc, bad_arguments);
	tcase_add_test(tc, concurrency_cap);
	tcase_add_test(tc, throttled_delay);
	tcase_add_test(tc, lockout);
	tcase_add_test(tc, tempfail_on_damaged_record);
	tcase_add_test(tc, cancel);
	tcase_add_test(tc, callback_may_free_and_reenter);
	tcase_add_test(tc, log_escape);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run(auth_suite());
}
