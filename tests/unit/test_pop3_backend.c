/* The server's POP3 backend over a real store in a temporary data
 * directory: the snapshot, the in-memory lock (also while the store still
 * works for a session that has gone), message bytes from the files, the
 * expunge, and what another client's expunge or flag change leaves. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/auth.h"
#include "auth/passwd.h"
#include "auth/userdb.h"
#include "core/log.h"
#include "core/pop3_glue.h"
#include "core/services.h"
#include "core/xalloc.h"
#include "maildir/index.h"
#include "storeutil.h"
#include "testutil.h"

#define BOB "bob@example.test"
#define CAROL "carol@example.test"

static const char *const contents[] = {
	"Subject: one\n\nfirst\n.dot\n",
	"Subject: two\r\n\r\nsecond, with CRLF\r\n",
	"Subject: three\n\nthird\n",
};

static struct tstore t;
static struct pop3_backend *be;
static struct services svc;

struct result {
	bool called;
	enum pop3_status status;
	struct pop3_maildrop *md;
	size_t removed;
};

static void add_user(const char *address, const char *password)
{
	struct user u = { .address = (char *)address };
	char *error = NULL;
	ck_assert_int_eq(passwd_hash("sha512crypt", password, &u.password_hash, &error), 0);
	ck_assert_msg(userdb_add(t.db, &u, &error) == 0, "%s", error ? error : "exists");
	free(u.password_hash);
}

static void setup(void)
{
	log_setup(LOG_LEVEL_WARN, false, NULL);
	tstore_open(&t);
	add_user(BOB, "bob pw");
	add_user(CAROL, "carol pw");
	for (size_t i = 0; i < 3; i++) {
		const char *rcpt[] = { BOB };
		ck_assert_int_eq(tstore_deliver(&t, contents[i], rcpt, 1, 0, 0, NULL), STORE_OK);
	}
	svc = (struct services){ .loop = &t.loop, .cfg = &t.cfg, .db = t.db, .store = t.st };
	be = pop3_backend_new(&svc);
}

static void teardown(void)
{
	if (svc.auth != NULL) {
		auth_free(&svc.auth);
		uv_run(&t.loop, UV_RUN_DEFAULT);
	}
	/* The store finishes its requests first: their callbacks free what
	 * closed maildrops left. */
	store_close(&t.st);
	pop3_backend_free(&be);
	ck_assert_ptr_null(be);
	db_close(&t.db);
	uv_run(&t.loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uv_loop_close(&t.loop), 0);
	char *cmd = xasprintf("rm -rf '%s'", t.dir);
	ck_assert_int_eq(system(cmd), 0);
	free(cmd);
	free(t.dir);
	config_free(&t.cfg);
}

static void opened(void *arg, enum pop3_status status, struct pop3_maildrop *md)
{
	struct result *r = arg;
	r->called = true;
	r->status = status;
	r->md = md;
}

static void committed(void *arg, enum pop3_status status, size_t removed)
{
	struct result *r = arg;
	r->called = true;
	r->status = status;
	r->removed = removed;
}

static void run_until(bool *flag)
{
	while (!*flag)
		uv_run(&t.loop, UV_RUN_ONCE);
}

/* Open account's maildrop and wait for it: the handle (status OK). */
static struct pop3_maildrop *open_md(const char *account)
{
	struct result r = { 0 };
	enum pop3_status st = POP3_OK;
	struct pop3_maildrop *md = be->maildrop_open(be->ctx, account, opened, &r, &st);
	ck_assert_ptr_nonnull(md);
	ck_assert(!r.called); /* never from inside the call */
	run_until(&r.called);
	ck_assert_int_eq(r.status, POP3_OK);
	ck_assert_ptr_eq(r.md, md);
	return md;
}

static char *read_all(struct pop3_maildrop *md, uint32_t uid, size_t *len_r)
{
	enum pop3_status st = POP3_OK;
	void *rd = be->message_open(be->ctx, md, uid, &st);
	ck_assert_msg(rd != NULL, "message_open: %d", st);
	char *data = NULL;
	size_t len = 0;
	char chunk[7];
	ssize_t n;
	while ((n = be->message_read(rd, chunk, sizeof(chunk))) > 0) {
		data = xrealloc(data, len + (size_t)n + 1);
		memcpy(data + len, chunk, (size_t)n);
		len += (size_t)n;
	}
	ck_assert_int_eq(n, 0);
	be->message_close(rd);
	data = data ? data : xstrdup("");
	data[len] = '\0';
	*len_r = len;
	return data;
}

START_TEST(snapshot_and_content)
{
	struct pop3_maildrop *md = open_md(BOB);
	struct idx_mailbox mb;

	ck_assert_int_eq(tstore_mailbox_get(&t, BOB, "INBOX", &mb), 0);
	ck_assert_uint_eq(md->n, 3);
	ck_assert_uint_eq(md->uidvalidity, mb.uidvalidity);
	for (size_t i = 0; i < 3; i++) {
		size_t len, lf = 0;
		ck_assert_uint_eq(md->msgs[i].uid, i + 1);
		for (const char *p = contents[i]; *p; p++)
			lf += *p == '\n' && (p == contents[i] || p[-1] != '\r');
		ck_assert_uint_eq(md->msgs[i].vsize, strlen(contents[i]) + lf);
		char *data = read_all(md, md->msgs[i].uid, &len);
		ck_assert_str_eq(data, contents[i]);
		free(data);
	}
	/* Delivered after login: not in this snapshot. */
	const char *rcpt[] = { BOB };
	ck_assert_int_eq(tstore_deliver(&t, "Subject: late\n\nx\n", rcpt, 1, 0, 0, NULL), STORE_OK);
	ck_assert_uint_eq(md->n, 3);
	be->maildrop_close(be->ctx, md);
	md = open_md(BOB);
	ck_assert_uint_eq(md->n, 4);
	be->maildrop_close(be->ctx, md);
}
END_TEST

START_TEST(lock)
{
	struct pop3_maildrop *md = open_md(BOB);
	struct result r = { 0 };
	enum pop3_status st = POP3_OK;

	ck_assert_ptr_null(be->maildrop_open(be->ctx, BOB, opened, &r, &st));
	ck_assert_int_eq(st, POP3_IN_USE);
	/* Other accounts are not blocked. */
	struct pop3_maildrop *md2 = open_md(CAROL);
	ck_assert_uint_eq(md2->n, 0);
	be->maildrop_close(be->ctx, md2);
	be->maildrop_close(be->ctx, md);
	md = open_md(BOB);
	be->maildrop_close(be->ctx, md);

	/* An account that does not exist. */
	ck_assert_ptr_null(be->maildrop_open(be->ctx, "nobody@example.test", opened, &r, &st));
	ck_assert_int_eq(st, POP3_PERMFAIL);

	/* Closed while opening: no callback, and the lock goes once the
	 * store is done. */
	md = be->maildrop_open(be->ctx, BOB, opened, &r, &st);
	ck_assert_ptr_nonnull(md);
	be->maildrop_close(be->ctx, md);
	ck_assert_ptr_null(be->maildrop_open(be->ctx, BOB, opened, &r, &st));
	ck_assert_int_eq(st, POP3_IN_USE);
	while (store_busy(t.st) > 0)
		uv_run(&t.loop, UV_RUN_ONCE);
	ck_assert(!r.called);
	md = open_md(BOB);
	be->maildrop_close(be->ctx, md);
}
END_TEST

START_TEST(commit_expunges)
{
	struct pop3_maildrop *md = open_md(BOB);
	char *maildir = tstore_maildir(&t, BOB);
	const uint32_t uids[] = { 1, 3 };
	struct result r = { 0 };

	ck_assert_uint_eq(tstore_count_files(maildir, "new") + tstore_count_files(maildir, "cur"), 3);
	ck_assert_int_eq(be->maildrop_commit(be->ctx, md, uids, 2, committed, &r), 0);
	ck_assert(!r.called);
	run_until(&r.called);
	ck_assert_int_eq(r.status, POP3_OK);
	ck_assert_uint_eq(r.removed, 2);
	ck_assert_uint_eq(tstore_count_files(maildir, "new") + tstore_count_files(maildir, "cur"), 1);
	be->maildrop_close(be->ctx, md);
	md = open_md(BOB);
	ck_assert_uint_eq(md->n, 1);
	ck_assert_uint_eq(md->msgs[0].uid, 2);
	be->maildrop_close(be->ctx, md);

	/* Closed while the expunge runs (the client dropped after QUIT):
	 * it still happens, and the lock is held until it has. */
	md = open_md(BOB);
	const uint32_t two[] = { 2 };
	memset(&r, 0, sizeof(r));
	ck_assert_int_eq(be->maildrop_commit(be->ctx, md, two, 1, committed, &r), 0);
	be->maildrop_close(be->ctx, md);
	enum pop3_status st = POP3_OK;
	ck_assert_ptr_null(be->maildrop_open(be->ctx, BOB, opened, &r, &st));
	ck_assert_int_eq(st, POP3_IN_USE);
	while (store_busy(t.st) > 0)
		uv_run(&t.loop, UV_RUN_ONCE);
	ck_assert(!r.called);
	md = open_md(BOB);
	ck_assert_uint_eq(md->n, 0);
	be->maildrop_close(be->ctx, md);
	ck_assert_uint_eq(tstore_count_files(maildir, "new") + tstore_count_files(maildir, "cur"), 0);
	free(maildir);
}
END_TEST

START_TEST(other_clients_changes)
{
	struct pop3_maildrop *md = open_md(BOB);

	/* IMAP sets \Seen on 1 (its file moves to cur/ with a new name) and
	 * expunges 2 while the POP3 session holds its snapshot. */
	uint32_t one = 1, two = 2;
	struct store_op op = { .kind = STORE_OP_FLAGS, .account = BOB, .mailbox = "INBOX", .uids = &one,
			       .n_uids = 1, .flags_mode = STORE_FLAGS_ADD, .flags = IDX_SEEN };
	ck_assert_int_eq(tstore_op(&t, &op), STORE_OK);
	store_op_clear(&op);
	op = (struct store_op){ .kind = STORE_OP_EXPUNGE, .account = BOB, .mailbox = "INBOX", .uids = &two,
				.n_uids = 1 };
	ck_assert_int_eq(tstore_op(&t, &op), STORE_OK);
	store_op_clear(&op);

	size_t len;
	char *data = read_all(md, 1, &len);
	ck_assert_str_eq(data, contents[0]);
	free(data);
	enum pop3_status st = POP3_OK;
	ck_assert_ptr_null(be->message_open(be->ctx, md, 2, &st));
	ck_assert_int_eq(st, POP3_GONE);

	/* Deleting what is already gone is fine. */
	struct result r = { 0 };
	const uint32_t uids[] = { 1, 2 };
	ck_assert_int_eq(be->maildrop_commit(be->ctx, md, uids, 2, committed, &r), 0);
	run_until(&r.called);
	ck_assert_int_eq(r.status, POP3_OK);
	ck_assert_uint_eq(r.removed, 1);
	be->maildrop_close(be->ctx, md);
}
END_TEST

/* UIDL is made of UID and UIDVALIDITY: both survive the loss of the index
 * (postbote reindex), through dovecot-uidlist. */
START_TEST(uids_survive_reindex)
{
	struct pop3_maildrop *md = open_md(BOB);
	uint32_t uidvalidity = md->uidvalidity;
	be->maildrop_close(be->ctx, md);

	store_close(&t.st);
	MDB_txn *txn;
	char *error = NULL;
	ck_assert_int_eq(mdb_txn_begin(t.db->env, NULL, 0, &txn), 0);
	ck_assert_int_eq(idx_account_forget(txn, t.db, BOB, &error), 0);
	ck_assert_int_eq(mdb_txn_commit(txn), 0);
	ck_assert_int_eq(store_open(&t.loop, &t.cfg, t.db, &t.st, &error), 0);
	pop3_backend_free(&be);
	svc.store = t.st;
	be = pop3_backend_new(&svc);

	md = open_md(BOB);
	ck_assert_uint_eq(md->uidvalidity, uidvalidity);
	ck_assert_uint_eq(md->n, 3);
	for (size_t i = 0; i < 3; i++)
		ck_assert_uint_eq(md->msgs[i].uid, i + 1);
	be->maildrop_close(be->ctx, md);
}
END_TEST

struct auth_result_box {
	bool called;
	enum auth_result result;
	char account[64];
};

static void auth_done(void *arg, enum auth_result result, const char *account)
{
	struct auth_result_box *b = arg;
	b->called = true;
	b->result = result;
	snprintf(b->account, sizeof(b->account), "%s", account ? account : "");
}

START_TEST(auth_through_the_verifier)
{
	svc.auth = auth_new(&t.loop, &t.cfg, t.db);
	pop3_backend_free(&be);
	be = pop3_backend_new(&svc);
	struct auth_result_box b = { 0 };
	void *h = be->auth_start(be->ctx, "Bob@Example.Test", "bob pw", "127.0.0.1", auth_done, &b);
	ck_assert_ptr_nonnull(h);
	run_until(&b.called);
	ck_assert_int_eq(b.result, AUTH_OK);
	ck_assert_str_eq(b.account, BOB);

	/* Cancelled: no callback. */
	memset(&b, 0, sizeof(b));
	h = be->auth_start(be->ctx, BOB, "bob pw", "127.0.0.1", auth_done, &b);
	be->auth_cancel(be->ctx, h);
	for (int i = 0; i < 50; i++)
		uv_run(&t.loop, UV_RUN_NOWAIT);
	struct auth_stats st;
	do {
		uv_run(&t.loop, UV_RUN_ONCE);
		auth_get_stats(svc.auth, &st);
	} while (st.pending > 0);
	ck_assert(!b.called);
	/* A request that cannot even be made. */
	char *long_pw = xmalloc(AUTH_PASSWORD_MAX + 2);
	memset(long_pw, 'p', AUTH_PASSWORD_MAX + 1);
	long_pw[AUTH_PASSWORD_MAX + 1] = '\0';
	ck_assert_ptr_null(be->auth_start(be->ctx, BOB, long_pw, "127.0.0.1", auth_done, &b));
	free(long_pw);
}
END_TEST

static Suite *pop3_backend_suite(void)
{
	Suite *s = suite_create("pop3_backend");
	TCase *tc = tcase_create("backend");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, snapshot_and_content);
	tcase_add_test(tc, lock);
	tcase_add_test(tc, commit_expunges);
	tcase_add_test(tc, other_clients_changes);
	tcase_add_test(tc, uids_survive_reindex);
	tcase_add_test(tc, auth_through_the_verifier);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run(pop3_backend_suite());
}
