/*
 * Disk full: deliveries into a small file system fail with a clean
 * transient error (STORE_TEMPFAIL, SMTP 451 4.3.0) and leave nothing
 * partial: no file in tmp/, no short file in new/, every acknowledged
 * message whole. Once space is freed, deliveries work again.
 *
 * Uses a 3 MiB tmpfs when this process may mount one (root, as in CI);
 * otherwise RLIMIT_FSIZE makes every write past 256 KiB fail the same way.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/xalloc.h"
#include "storeutil.h"
#include "testutil.h"

static size_t check_new_files(const char *md, size_t size)
{
	char *dir = xasprintf("%s/new", md);
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;
	while (d && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		char *p = xasprintf("%s/%s", dir, de->d_name);
		struct stat sb;
		ck_assert_int_eq(stat(p, &sb), 0);
		ck_assert_msg((size_t)sb.st_size == size, "partial file %s: %lld of %zu bytes", p,
			      (long long)sb.st_size, size);
		free(p);
		n++;
	}
	if (d)
		closedir(d);
	free(dir);
	return n;
}

START_TEST(disk_full_is_clean_tempfail)
{
	struct tstore t;
	bool mounted = false;

	tstore_open(&t);
	tstore_close(&t);
	if (mount("tmpfs", t.dir, "tmpfs", 0, "size=3m,mode=0700") == 0) {
		mounted = true;
	} else {
		/* Not allowed to mount: cap file size instead. */
		signal(SIGXFSZ, SIG_IGN);
	}
	t.cfg.delivery_log_size = 1 << 20;
	t.cfg.index_map_size = 1 << 20 << 4;
	tstore_reopen(&t);
	if (!mounted) {
		struct rlimit rl = { 256 * 1024, 256 * 1024 };
		ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
	}

	/* 100 KiB messages, well below the log's direct-write threshold. */
	size_t size = 100 * 1024;
	char *msg = xmalloc(size + 1);
	for (size_t i = 0; i < size; i++)
		msg[i] = i % 64 == 63 ? '\n' : 'm';
	msg[size] = '\0';
	const char *to[] = { "alice@test.example" };
	struct store_rcpt r;
	unsigned ok = 0, fails = 0;
	for (int i = 0; i < 100 && fails < 3; i++) {
		enum store_result res = tstore_deliver(&t, msg, to, 1, 0, 0, &r);
		if (res == STORE_OK)
			ok++;
		else {
			ck_assert_int_eq(res, STORE_TEMPFAIL);
			fails++;
		}
	}
	ck_assert_msg(fails > 0, "the file system never filled up");
	ck_assert_uint_gt(ok, 0);

	char *md = tstore_maildir(&t, to[0]);
	ck_assert_uint_eq(tstore_count_files(md, "tmp"), 0);
	ck_assert_uint_eq(check_new_files(md, size), ok);

	/* Free space: deliveries work again and count on from there. */
	if (!mounted) {
		struct rlimit rl = { RLIM_INFINITY, RLIM_INFINITY };
		setrlimit(RLIMIT_FSIZE, &rl);
	} else {
		char *cmd = xasprintf("rm -f '%s'/new/*", md);
		ck_assert_int_eq(system(cmd), 0);
		free(cmd);
	}
	struct store_open_req o;
	ck_assert_int_eq(tstore_open_mailbox(&t, to[0], "INBOX", &o), STORE_OK);
	unsigned before = o.count;
	ck_assert_int_eq(tstore_deliver(&t, msg, to, 1, 0, 0, &r), STORE_OK);
	ck_assert_int_eq(tstore_open_mailbox(&t, to[0], "INBOX", &o), STORE_OK);
	ck_assert_uint_eq(o.count, before + 1);
	printf("disk full (%s): %u delivered, then a clean temporary failure\n",
	       mounted ? "3 MiB tmpfs" : "RLIMIT_FSIZE", ok);

	tstore_close(&t);
	if (mounted)
		ck_assert_int_eq(umount(t.dir), 0);
	tstore_reopen(&t);
	free(md);
	free(msg);
	tstore_destroy(&t);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("store_diskfull");
	TCase *tc = tcase_create("diskfull");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, disk_full_is_clean_tempfail);
	suite_add_tcase(s, tc);
	return testutil_run(s);
}
