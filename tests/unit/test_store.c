/* The store: delivery, UIDs, reconciliation with the files, quotas. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/xalloc.h"
#include "maildir/uidlist.h"
#include "storeutil.h"
#include "testutil.h"

static const char msg1[] = "From: a@example.org\nTo: b@test.example\nSubject: one\n\nbody one\n";
static const char msg2[] = "Subject: two\r\n\r\nbody two\r\n";

static char *read_file(const char *path, size_t *len_r)
{
	FILE *f = fopen(path, "rb");
	ck_assert_ptr_nonnull(f);
	char *buf = xmalloc(1 << 16);
	size_t n = fread(buf, 1, 1 << 16, f);
	fclose(f);
	buf[n] = '\0';
	*len_r = n;
	return buf;
}

/* The one file in DIR/new (asserts there is exactly one). */
static char *only_file(const char *dir, const char *sub)
{
	char *p = xasprintf("%s/%s", dir, sub);
	DIR *d = opendir(p);
	ck_assert_ptr_nonnull(d);
	struct dirent *de;
	char *found = NULL;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		ck_assert_ptr_null(found);
		found = xasprintf("%s/%s", p, de->d_name);
	}
	closedir(d);
	free(p);
	ck_assert_ptr_nonnull(found);
	return found;
}

START_TEST(deliver_three_recipients)
{
	struct tstore t;
	const char *to[] = { "alice@test.example", "bob@test.example", "carol@test.example" };
	struct store_rcpt r[3];

	tstore_open(&t);
	ck_assert_int_eq(tstore_deliver(&t, msg1, to, 3, 0, 0, r), STORE_OK);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(r[i].result, STORE_OK);
		ck_assert_uint_eq(r[i].uid, 1);
		char *md = tstore_maildir(&t, to[i]);
		char *f = only_file(md, "new");
		size_t len;
		char *content = read_file(f, &len);
		ck_assert_uint_eq(len, sizeof(msg1) - 1);
		ck_assert(memcmp(content, msg1, len) == 0);
		/* ,S= is the size, ,W= the size with CRLF (5 LFs). */
		char *want = xasprintf(",S=%zu,W=%zu", len, len + 5);
		ck_assert_msg(strstr(f, want) != NULL, "%s lacks %s", f, want);
		ck_assert_uint_eq(tstore_count_files(md, "tmp"), 0);
		/* The uid list has the message. */
		char *ulp = xasprintf("%s/dovecot-uidlist", md);
		struct uidlist ul;
		bool missing;
		char *err = NULL;
		ck_assert_int_eq(uidlist_read(ulp, &ul, &missing, &err), 0);
		ck_assert(!missing);
		ck_assert_uint_eq(ul.n, 1);
		ck_assert_uint_eq(ul.entries[0].uid, 1);
		ck_assert_uint_eq(ul.uidvalidity, r[i].uidvalidity);
		uidlist_free(&ul);
		free(ulp);
		free(want);
		free(content);
		free(f);
		free(md);
	}
	tstore_destroy(&t);
}
END_TEST

START_TEST(uids_ascend_and_survive_expunge)
{
	struct tstore t;
	const char *to[] = { "alice@test.example" };
	struct store_rcpt r;

	tstore_open(&t);
	for (uint32_t i = 1; i <= 5; i++) {
		ck_assert_int_eq(tstore_deliver(&t, msg2, to, 1, 0, 0, &r), STORE_OK);
		ck_assert_uint_eq(r.uid, i);
	}
	/* Remove the newest message's file by hand: reconciliation drops
	 * it, and its UID is never given out again. */
	char *md = tstore_maildir(&t, to[0]);
	struct store_open_req o;
	ck_assert_int_eq(tstore_open_mailbox(&t, to[0], "INBOX", &o), STORE_OK);
	uint32_t *uids, *flags;
	char **names;
	size_t n = tstore_list(&t, o.mailbox_id, &uids, &names, &flags);
	ck_assert_uint_eq(n, 5);
	char *victim = xasprintf("%s/new/%s", md, names[4]);
	ck_assert_int_eq(unlink(victim), 0);
	free(victim);
	tstore_free_list(n, uids, names, flags);

	ck_assert_int_eq(tstore_open_mailbox(&t, to[0], "INBOX", &o), STORE_OK);
	ck_assert_uint_eq(o.count, 4);
	ck_assert_uint_eq(o.uidnext, 6);
	ck_assert_int_eq(tstore_deliver(&t, msg2, to, 1, 0, 0, &r), STORE_OK);
	ck_assert_uint_eq(r.uid, 6);
	free(md);
	tstore_destroy(&t);
}
END_TEST

START_TEST(uids_survive_losing_the_index)
{
	struct tstore t;
	const char *to[] = { "alice@test.example" };
	struct store_rcpt r;
	struct store_open_req o;

	tstore_open(&t);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(tstore_deliver(&t, msg1, to, 1, 0, 0, &r), STORE_OK);
	uint32_t uidvalidity = r.uidvalidity;
	ck_assert_int_eq(tstore_open_mailbox(&t, to[0], "INBOX", &o), STORE_OK);
	uint32_t *uids, *flags;
	char **names;
	size_t n = tstore_list(&t, o.mailbox_id, &uids, &names, &flags);
	ck_assert_uint_eq(n, 3);
	tstore_close(&t);

	char *cmd = xasprintf("rm -rf '%s/postbote.mdb'", t.dir);
	ck_assert_int_eq(system(cmd), 0);
	free(cmd);
	tstore_reopen(&t);

	ck_assert_int_eq(tstore_open_mailbox(&t, to[0], "INBOX", &o), STORE_OK);
	ck_assert_uint_eq(o.uidvalidity, uidvalidity);
	ck_assert_uint_eq(o.count, 3);
	ck_assert_uint_eq(o.uidnext, 4);
	uint32_t *uids2, *flags2;
	char **names2;
	size_t n2 = tstore_list(&t, o.mailbox_id, &uids2, &names2, &flags2);
	ck_assert_uint_eq(n2, 3);
	for (size_t i = 0; i < n; i++) {
		ck_assert_uint_eq(uids2[i], uids[i]);
		ck_assert_str_eq(names2[i], names[i]);
	}
	tstore_free_list(n, uids, names, flags);
	tstore_free_list(n2, uids2, names2, flags2);
	ck_assert_int_eq(tstore_deliver(&t, msg1, to, 1, 0, 0, &r), STORE_OK);
	ck_assert_uint_eq(r.uid, 4);
	tstore_destroy(&t);
}
END_TEST

START_TEST(files_added_renamed_removed_by_hand)
{
	struct tstore t;
	const char *to[] = { "alice@test.example" };
	struct store_rcpt r;
	struct store_open_req o;

	tstore_open(&t);
	ck_assert_int_eq(tstore_deliver(&t, msg1, to, 1, 0, 0, &r), STORE_OK);
	char *md = tstore_maildir(&t, to[0]);

	/* Another program drops a file into new/ ... */
	char *dropped = xasprintf("%s/new/1700000000.M1P1.other", md);
	int fd = open(dropped, O_WRONLY | O_CREAT, 0600);
	ck_assert_int_eq(write(fd, "Subject: x\n\nhi\n", 15), 15);
	close(fd);
	ck_assert_int_eq(tstore_open_mailbox(&t, to[0], "INBOX", &o), STORE_OK);
	ck_assert_uint_eq(o.count, 2);
	ck_assert_uint_eq(o.uidnext, 3);
	ck_assert_uint_eq(o.unseen, 2);

	/* ... moves the first message to cur/ as seen and flagged (mutt)... */
	uint32_t *uids, *flags;
	char **names;
	size_t n = tstore_list(&t, o.mailbox_id, &uids, &names, &flags);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(uids[0], 1);
	char *from = xasprintf("%s/new/%s", md, names[0]);
	char *to_cur = xasprintf("%s/cur/%s:2,FS", md, names[0]);
	ck_assert_int_eq(rename(from, to_cur), 0);
	tstore_free_list(n, uids, names, flags);
	ck_assert_int_eq(tstore_open_mailbox(&t, to[0], "INBOX", &o), STORE_OK);
	ck_assert_uint_eq(o.count, 2);
	ck_assert_uint_eq(o.unseen, 1);
	n = tstore_list(&t, o.mailbox_id, &uids, &names, &flags);
	ck_assert_uint_eq(uids[0], 1); /* same UID after the rename */
	ck_assert_uint_eq(flags[0], IDX_SEEN | IDX_FLAGGED);
	ck_assert_msg(strstr(names[0], ":2,FS") != NULL, "%s", names[0]);
	ck_assert_uint_eq(uids[1], 2);
	tstore_free_list(n, uids, names, flags);

	/* ... and deletes the dropped one. */
	ck_assert_int_eq(unlink(dropped), 0);
	ck_assert_int_eq(tstore_open_mailbox(&t, to[0], "INBOX", &o), STORE_OK);
	ck_assert_uint_eq(o.count, 1);
	ck_assert_uint_eq(o.uidnext, 3);
	free(dropped);
	free(from);
	free(to_cur);
	free(md);
	tstore_destroy(&t);
}
END_TEST

START_TEST(adopt_dovecot_maildir)
{
	struct tstore t;
	const char *acct = "dave@test.example";

	tstore_open(&t);
	char *md = tstore_maildir(&t, acct);
	char *cmd = xasprintf("mkdir -p '%s/cur' '%s/new' '%s/tmp'", md, md, md);
	ck_assert_int_eq(system(cmd), 0);
	free(cmd);
	/* Two messages and the uid list Dovecot left: UIDs 7 and 9, next 12. */
	const char *files[] = { "1600000000.M1P1.old,S=15,W=18:2,S", "1600000001.M2P1.old,S=15,W=18" };
	for (int i = 0; i < 2; i++) {
		char *p = xasprintf("%s/cur/%s", md, files[i]);
		int fd = open(p, O_WRONLY | O_CREAT, 0600);
		ck_assert_int_eq(write(fd, "Subject: x\n\nhi\n", 15), 15);
		close(fd);
		free(p);
	}
	char *ulp = xasprintf("%s/dovecot-uidlist", md);
	FILE *f = fopen(ulp, "w");
	fprintf(f, "3 V1234567 N12 G0123456789abcdef0123456789abcdef\n"
		   "7 :1600000000.M1P1.old,S=15,W=18\n9 W18 :1600000001.M2P1.old,S=15,W=18\n");
	fclose(f);

	struct store_open_req o;
	ck_assert_int_eq(tstore_open_mailbox(&t, acct, "INBOX", &o), STORE_OK);
	ck_assert_uint_eq(o.uidvalidity, 1234567);
	ck_assert_uint_eq(o.count, 2);
	ck_assert_uint_eq(o.uidnext, 12);
	uint32_t *uids, *flags;
	char **names;
	size_t n = tstore_list(&t, o.mailbox_id, &uids, &names, &flags);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(uids[0], 7);
	ck_assert_uint_eq(flags[0], IDX_SEEN);
	ck_assert_uint_eq(uids[1], 9);
	tstore_free_list(n, uids, names, flags);

	const char *to[] = { acct };
	struct store_rcpt r;
	ck_assert_int_eq(tstore_deliver(&t, msg1, to, 1, 0, 0, &r), STORE_OK);
	ck_assert_uint_eq(r.uid, 12);
	ck_assert_uint_eq(r.uidvalidity, 1234567);
	free(ulp);
	free(md);
	tstore_destroy(&t);
}
END_TEST

START_TEST(quota_boundaries)
{
	struct tstore t;
	const char *to[] = { "alice@test.example", "bob@test.example" };
	struct store_rcpt r[2];
	uint64_t size = sizeof(msg1) - 1;

	tstore_open(&t);
	/* Exactly two messages fit. */
	ck_assert_int_eq(tstore_deliver(&t, msg1, to, 1, 2 * size, 0, r), STORE_OK);
	ck_assert_int_eq(tstore_deliver(&t, msg1, to, 1, 2 * size, 0, r), STORE_OK);
	ck_assert_int_eq(tstore_deliver(&t, msg1, to, 1, 2 * size, 0, r), STORE_OVER_QUOTA);
	ck_assert_int_eq(r[0].result, STORE_OVER_QUOTA);
	/* Bigger than the whole quota: permanent. */
	ck_assert_int_eq(tstore_deliver(&t, msg1, to + 1, 1, size - 1, 0, r), STORE_TOO_BIG_FOR_QUOTA);
	/* Message count limit; a full recipient does not stop the other. */
	ck_assert_int_eq(tstore_deliver(&t, msg1, to, 2, 0, 2, r), STORE_OK);
	ck_assert_int_eq(r[0].result, STORE_OVER_QUOTA);
	ck_assert_int_eq(r[1].result, STORE_OK);
	char *md = tstore_maildir(&t, to[0]);
	ck_assert_uint_eq(tstore_count_files(md, "new"), 2);
	ck_assert_uint_eq(tstore_count_files(md, "tmp"), 0);
	free(md);
	tstore_destroy(&t);
}
END_TEST

struct many {
	unsigned done;
};

static void many_done(struct store_delivery *d)
{
	((struct many *)d->ctx)->done++;
}

START_TEST(concurrent_deliveries_group_commit)
{
	struct tstore t;
	enum { N = 200 };
	struct store_delivery d[N];
	struct store_rcpt r[N];
	char *spools[N];
	struct many m = { 0 };

	tstore_open(&t);
	char *md = tstore_maildir(&t, "alice@test.example");
	for (int i = 0; i < N; i++) {
		spools[i] = tstore_spool(&t, msg1, sizeof(msg1) - 1);
		r[i] = (struct store_rcpt){ .account = "alice@test.example", .maildir = md, .mailbox = "INBOX" };
		d[i] = (struct store_delivery){ .spool_path = spools[i], .rcpts = &r[i], .n_rcpts = 1,
						.cb = many_done, .ctx = &m };
		store_deliver(t.st, &d[i]);
	}
	while (m.done < N)
		uv_run(&t.loop, UV_RUN_ONCE);
	bool seen[N + 1] = { false };
	for (int i = 0; i < N; i++) {
		ck_assert_int_eq(d[i].result, STORE_OK);
		ck_assert(r[i].uid >= 1 && r[i].uid <= N);
		ck_assert(!seen[r[i].uid]);
		seen[r[i].uid] = true;
		unlink(spools[i]);
		free(spools[i]);
	}
	ck_assert_uint_eq(tstore_count_files(md, "new"), N);
	free(md);
	tstore_destroy(&t);
}
END_TEST

START_TEST(large_message_bypasses_log)
{
	struct tstore t;
	const char *to[] = { "alice@test.example", "bob@test.example" };
	struct store_rcpt r[2];

	tstore_open(&t);
	size_t len = 2 << 20; /* above delivery_log_size / 4 = 1 MiB */
	char *big = xmalloc(len + 1);
	for (size_t i = 0; i < len; i++)
		big[i] = i % 80 == 79 ? '\n' : 'x';
	big[len] = '\0';
	ck_assert_int_eq(tstore_deliver(&t, big, to, 2, 0, 0, r), STORE_OK);
	ck_assert_int_eq(r[1].result, STORE_OK);
	char *md = tstore_maildir(&t, to[1]);
	char *f = only_file(md, "new");
	struct stat sb;
	ck_assert_int_eq(stat(f, &sb), 0);
	ck_assert_uint_eq((size_t)sb.st_size, len);
	free(f);
	free(md);
	free(big);
	tstore_destroy(&t);
}
END_TEST

START_TEST(missing_spool_is_tempfail)
{
	struct tstore t;
	tstore_open(&t);
	char *md = tstore_maildir(&t, "alice@test.example");
	struct store_rcpt r = { .account = "alice@test.example", .maildir = md, .mailbox = "INBOX" };
	struct many m = { 0 };
	struct store_delivery d = { .spool_path = "/nonexistent/spool", .rcpts = &r, .n_rcpts = 1,
				    .cb = many_done, .ctx = &m };
	store_deliver(t.st, &d);
	while (m.done < 1)
		uv_run(&t.loop, UV_RUN_ONCE);
	ck_assert_int_eq(d.result, STORE_TEMPFAIL);
	free(md);
	tstore_destroy(&t);
}
END_TEST

START_TEST(folder_needs_create)
{
	struct tstore t;
	tstore_open(&t);
	char *md = tstore_maildir(&t, "alice@test.example");
	char *spool = tstore_spool(&t, msg1, sizeof(msg1) - 1);
	struct store_rcpt r = { .account = "alice@test.example", .maildir = md, .mailbox = "Archive/2024" };
	struct many m = { 0 };
	struct store_delivery d = { .spool_path = spool, .rcpts = &r, .n_rcpts = 1, .cb = many_done, .ctx = &m };
	store_deliver(t.st, &d);
	while (m.done < 1)
		uv_run(&t.loop, UV_RUN_ONCE);
	ck_assert_int_eq(r.result, STORE_NO_MAILBOX);
	r.create_mailbox = true;
	store_deliver(t.st, &d);
	while (m.done < 2)
		uv_run(&t.loop, UV_RUN_ONCE);
	ck_assert_int_eq(r.result, STORE_OK);
	char *folder = xasprintf("%s/.Archive.2024", md);
	ck_assert_uint_eq(tstore_count_files(folder, "new"), 1);
	char *mf = xasprintf("%s/maildirfolder", folder);
	ck_assert_int_eq(access(mf, F_OK), 0);
	free(mf);
	free(folder);
	unlink(spool);
	free(spool);
	free(md);
	tstore_destroy(&t);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("store");
	TCase *tc = tcase_create("store");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, deliver_three_recipients);
	tcase_add_test(tc, uids_ascend_and_survive_expunge);
	tcase_add_test(tc, uids_survive_losing_the_index);
	tcase_add_test(tc, files_added_renamed_removed_by_hand);
	tcase_add_test(tc, adopt_dovecot_maildir);
	tcase_add_test(tc, quota_boundaries);
	tcase_add_test(tc, concurrent_deliveries_group_commit);
	tcase_add_test(tc, large_message_bypasses_log);
	tcase_add_test(tc, missing_spool_is_tempfail);
	tcase_add_test(tc, folder_needs_create);
	suite_add_tcase(s, tc);
	return testutil_run(s);
}
