/* The delivery log: records replay in order until a torn one, a reset
 * starts a new generation, and only one process may hold the log. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/xalloc.h"
#include "maildir/dlog.h"
#include "testutil.h"

struct seen {
	int n;
	char last[64];
};

static int collect(const void *payload, size_t len, void *ctx)
{
	struct seen *s = ctx;
	ck_assert_uint_lt(len, sizeof(s->last));
	memcpy(s->last, payload, len);
	s->last[len] = '\0';
	s->n++;
	return 0;
}

static char *log_path(char *dir_tmpl)
{
	ck_assert_ptr_nonnull(mkdtemp(dir_tmpl));
	return xasprintf("%s/delivery.log", dir_tmpl);
}

static void append(struct dlog *log, const char *a, const char *b)
{
	struct dlog_part parts[2] = { { a, strlen(a) }, { b, strlen(b) } };
	char *error = NULL;
	ck_assert_int_eq(dlog_append(log, parts, 2, &error), 0);
}

START_TEST(replay_reset_and_torn_records)
{
	char dir[] = "/tmp/postbote-dlog-XXXXXX";
	char *path = log_path(dir);
	struct dlog *log;
	char *error = NULL;
	struct seen s = { 0 };

	ck_assert_int_eq(dlog_open(path, 64 * 1024, &log, &error), 0);
	ck_assert(!dlog_dirty(log));
	append(log, "first ", "record");
	append(log, "second ", "record");
	append(log, "third", "");
	ck_assert(dlog_dirty(log));
	ck_assert_int_eq(dlog_sync(log, &error), 0);
	dlog_close(&log);

	/* A crash: reopen and replay everything of this generation. */
	ck_assert_int_eq(dlog_open(path, 64 * 1024, &log, &error), 0);
	ck_assert_int_eq(dlog_replay(log, collect, &s, &error), 3);
	ck_assert_str_eq(s.last, "third");
	dlog_close(&log);

	/* Corrupt the second record's payload: replay stops before it. */
	int fd = open(path, O_RDWR);
	ck_assert_int_ge(fd, 0);
	char buf[8192];
	ck_assert_int_eq(pread(fd, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
	char *hit = memmem(buf, sizeof(buf), "second", 6);
	ck_assert_ptr_nonnull(hit);
	ck_assert_int_eq(pwrite(fd, "X", 1, hit - buf), 1);
	close(fd);
	ck_assert_int_eq(dlog_open(path, 64 * 1024, &log, &error), 0);
	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(dlog_replay(log, collect, &s, &error), 1);
	ck_assert_str_eq(s.last, "first record");

	/* A reset starts a new generation: the old records never replay. */
	ck_assert_int_eq(dlog_reset(log, &error), 0);
	ck_assert(!dlog_dirty(log));
	dlog_close(&log);
	ck_assert_int_eq(dlog_open(path, 64 * 1024, &log, &error), 0);
	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(dlog_replay(log, collect, &s, &error), 0);

	/* Too big for the room left: refused with 1, nothing written. */
	char *big = xmalloc(128 * 1024);
	memset(big, 'b', 128 * 1024);
	struct dlog_part part = { big, 128 * 1024 };
	ck_assert_int_eq(dlog_append(log, &part, 1, &error), 1);
	ck_assert(!dlog_dirty(log));
	free(big);
	dlog_close(&log);
	unlink(path);
	rmdir(dir);
	free(path);
}
END_TEST

START_TEST(one_holder_at_a_time)
{
	char dir[] = "/tmp/postbote-dlog-XXXXXX";
	char *path = log_path(dir);
	struct dlog *a, *b;
	char *error = NULL;

	ck_assert_int_eq(dlog_open(path, 16 * 1024, &a, &error), 0);
	ck_assert_int_eq(dlog_open(path, 16 * 1024, &b, &error), -1);
	ck_assert_int_eq(errno, EWOULDBLOCK);
	ck_assert_ptr_nonnull(strstr(error, "in use"));
	free(error);
	dlog_close(&a);
	ck_assert_int_eq(dlog_open(path, 16 * 1024, &b, &error), 0);
	dlog_close(&b);
	unlink(path);
	rmdir(dir);
	free(path);
}
END_TEST

START_TEST(crc32c_known_value)
{
	/* RFC 3720 B.4: CRC-32C of 32 bytes of zeros is 0x8a9136aa. */
	char zeros[32] = { 0 };
	ck_assert_uint_eq(dlog_crc32c(0, zeros, sizeof(zeros)), 0x8a9136aau);
	ck_assert_uint_eq(dlog_crc32c(0, "123456789", 9), 0xe3069283u);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("dlog");
	TCase *tc = tcase_create("dlog");
	tcase_add_test(tc, replay_reset_and_torn_records);
	tcase_add_test(tc, one_holder_at_a_time);
	tcase_add_test(tc, crc32c_known_value);
	suite_add_tcase(s, tc);
	return testutil_run(s);
}
