/* The outbound queue's records (round trip, damaged input) and adding a
 * message durably: file in DATA/queue/, record in LMDB, orphans removed. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/services.h"
#include "core/xalloc.h"
#include "smtp/dkim_keys.h"
#include "mta/queue.h"
#include "mta/queue_record.h"
#include "storeutil.h"
#include "testutil.h"

static void sample_entry(struct queue_entry *e)
{
	memset(e, 0, sizeof(*e));
	snprintf(e->id, sizeof(e->id), "abc.1.1");
	e->sender = strdup("alice@example.test");
	e->envid = strdup("ENV-1");
	e->auth_user = NULL;
	e->ret = 2;
	e->smtputf8 = true;
	e->arrival = 1700000000;
	e->next_attempt = 1700000060;
	e->attempts = 3;
	e->size = 12345;
	e->body_offset = 31;
	e->n_rcpts = 2;
	e->rcpts = calloc(2, sizeof(*e->rcpts));
	e->rcpts[0].address = strdup("bob@remote.test");
	e->rcpts[0].orcpt = strdup("rfc822;bob@remote.test");
	e->rcpts[0].notify = 6;
	e->rcpts[0].state = QUEUE_RCPT_DEFERRED;
	e->rcpts[0].last_reply = strdup("451 4.7.1 greylisted");
	e->rcpts[0].remote_mta = strdup("mx.remote.test");
	e->rcpts[1].address = strdup("carol@remote.test");
	e->rcpts[1].state = QUEUE_RCPT_DELIVERED;
}

START_TEST(record_round_trip)
{
	struct queue_entry e, d;
	struct buf b;

	sample_entry(&e);
	buf_init(&b, 1 << 20);
	queue_record_encode(&e, &b);
	ck_assert_int_eq(queue_record_decode(buf_ptr(&b), buf_len(&b), &d), 0);
	ck_assert_str_eq(d.sender, "alice@example.test");
	ck_assert_str_eq(d.envid, "ENV-1");
	ck_assert_ptr_null(d.auth_user);
	ck_assert_int_eq(d.ret, 2);
	ck_assert(d.smtputf8 && !d.eightbit && !d.warned);
	ck_assert_int_eq(d.arrival, 1700000000);
	ck_assert_int_eq(d.next_attempt, 1700000060);
	ck_assert_uint_eq(d.attempts, 3);
	ck_assert_uint_eq(d.size, 12345);
	ck_assert_uint_eq(d.body_offset, 31);
	ck_assert_uint_eq(d.n_rcpts, 2);
	ck_assert_str_eq(d.rcpts[0].address, "bob@remote.test");
	ck_assert_str_eq(d.rcpts[0].orcpt, "rfc822;bob@remote.test");
	ck_assert_uint_eq(d.rcpts[0].notify, 6);
	ck_assert_int_eq(d.rcpts[0].state, QUEUE_RCPT_DEFERRED);
	ck_assert_str_eq(d.rcpts[0].last_reply, "451 4.7.1 greylisted");
	ck_assert_str_eq(d.rcpts[0].remote_mta, "mx.remote.test");
	ck_assert_ptr_null(d.rcpts[1].orcpt);
	ck_assert_int_eq(d.rcpts[1].state, QUEUE_RCPT_DELIVERED);
	ck_assert_uint_eq(queue_entry_open_rcpts(&d), 1);

	/* Every truncation and every single-byte change is either refused or
	 * decodes to something well-formed (never a crash, never a read past
	 * the end: guard_copy puts the bytes at the edge of a page). */
	for (size_t n = 0; n < buf_len(&b); n++) {
		char *g = guard_copy(buf_ptr(&b), n);
		struct queue_entry x;
		ck_assert_int_eq(queue_record_decode(g, n, &x), -1);
		guard_free(g, n);
	}
	for (size_t i = 0; i < buf_len(&b); i++) {
		char *g = guard_copy(buf_ptr(&b), buf_len(&b));
		g[i] ^= 0x5a;
		struct queue_entry x;
		if (queue_record_decode(g, buf_len(&b), &x) == 0)
			queue_entry_free(&x);
		guard_free(g, buf_len(&b));
	}
	queue_entry_free(&d);
	queue_entry_free(&e);
	buf_free(&b);
}
END_TEST

static bool added_called, added_ok;

static void added(void *arg, bool ok)
{
	(void)arg;
	added_called = true;
	added_ok = ok;
}

START_TEST(add_is_durable_and_listed)
{
	struct tstore t;
	struct queue *q;
	char *error = NULL;

	tstore_open(&t);
	struct services svc = { .loop = &t.loop, .cfg = &t.cfg, .db = t.db, .store = t.st };
	/* A file left by an enqueue that never committed. */
	char *qdir = xasprintf("%s/queue", t.dir);
	mkdir(qdir, 0700);
	char *orphan = xasprintf("%s/orphan.1.1", qdir);
	FILE *f = fopen(orphan, "w");
	fputs("x", f);
	fclose(f);
	ck_assert_int_eq(queue_open(&svc, &q, &error), 0);
	ck_assert_int_eq(access(orphan, F_OK), -1);

	static const char msg[] = "Return-Path: <alice@example.test>\nSubject: out\n\nbody\n";
	char *spool = tstore_spool(&t, msg, strlen(msg));
	struct smtp_rcpt r = { .address = "bob@remote.test" };
	struct smtp_envelope env = { .id = "m1.2.3", .sender = "alice@example.test", .rcpts = &r, .n_rcpts = 1,
				     .auth_user = "alice@example.test", .size = strlen(msg) - 34 };
	struct queue_add_rcpt add = { .address = "bob@remote.test", .notify = 4 };
	added_called = false;
	queue_add(q, spool, 34, &env, &add, 1, added, NULL);
	ck_assert(!added_called); /* never inside the call */
	while (!added_called)
		uv_run(&t.loop, UV_RUN_ONCE);
	ck_assert(added_ok);

	/* The spool can go: the queue holds its own link. */
	unlink(spool);
	char *path = queue_file_path(&t.cfg, "m1.2.3");
	char *content;
	size_t len;
	bool missing;
	ck_assert_int_eq(fileio_read_file(path, 1 << 20, &content, &len, &missing, &error), 0);
	ck_assert_uint_eq(len, strlen(msg));
	free(content);

	MDB_txn *txn;
	struct queue_entry e;
	ck_assert_int_eq(mdb_txn_begin(t.db->env, NULL, MDB_RDONLY, &txn), 0);
	ck_assert_int_eq(queue_db_get(txn, t.db, "m1.2.3", &e, &error), 0);
	mdb_txn_abort(txn);
	ck_assert_str_eq(e.sender, "alice@example.test");
	ck_assert_str_eq(e.auth_user, "alice@example.test");
	ck_assert_uint_eq(e.body_offset, 34);
	ck_assert_uint_eq(e.n_rcpts, 1);
	ck_assert_int_eq(e.rcpts[0].state, QUEUE_RCPT_PENDING);
	ck_assert_uint_eq(e.rcpts[0].notify, 4);
	queue_entry_free(&e);

	/* Reopening keeps a file that has its record. */
	queue_close(&q);
	ck_assert_int_eq(queue_open(&svc, &q, &error), 0);
	ck_assert_int_eq(access(path, F_OK), 0);
	queue_close(&q);
	free(path);
	free(spool);
	free(orphan);
	free(qdir);
	tstore_destroy(&t);
}
END_TEST

START_TEST(submitted_mail_is_dkim_signed)
{
	struct tstore t;
	struct queue *q;
	struct dkim_key key;
	char *error = NULL;
	bool exists;

	tstore_open(&t);
	t.cfg.domains = xcalloc(1, sizeof(char *));
	t.cfg.domains[0] = xstrdup("example.test");
	t.cfg.n_domains = 1;
	char *kpath = dkim_key_path(t.dir, "example.test", "sel");
	ck_assert_int_eq(dkim_key_generate(DKIM_KEY_ED25519, 0, "sel", &key, &error), 0);
	ck_assert_int_eq(dkim_key_write(&key, kpath, false, (uid_t)-1, (gid_t)-1, &exists, &error), 0);
	dkim_key_free(&key);
	struct services svc = { .loop = &t.loop, .cfg = &t.cfg, .db = t.db, .store = t.st };
	ck_assert_int_eq(queue_open(&svc, &q, &error), 0);

	static const char msg[] = "Return-Path: <alice@example.test>\nFrom: alice@example.test\nSubject: s\n\nbody\n";
	const char *ids[] = { "signed.1.1", "forwarded.1.2" };
	for (int i = 0; i < 2; i++) {
		char *spool = tstore_spool(&t, msg, strlen(msg));
		struct smtp_envelope env = { .id = ids[i], .sender = "alice@example.test",
					     .auth_user = i == 0 ? "alice@example.test" : NULL, .size = strlen(msg) - 34 };
		struct queue_add_rcpt add = { .address = "bob@remote.test" };
		added_called = false;
		queue_add(q, spool, 34, &env, &add, 1, added, NULL);
		while (!added_called)
			uv_run(&t.loop, UV_RUN_ONCE);
		ck_assert(added_ok);
		free(spool);
	}
	/* Submitted by a user: signed, our Return-Path gone. Passing
	 * through (no user): the file as it came. */
	char *path = queue_file_path(&t.cfg, "signed.1.1"), *content;
	size_t len;
	bool missing;
	ck_assert_int_eq(fileio_read_file(path, 1 << 20, &content, &len, &missing, &error), 0);
	ck_assert_msg(strncmp(content, "DKIM-Signature: v=1; a=ed25519-sha256;", 38) == 0, "%s", content);
	ck_assert_ptr_nonnull(strstr(content, "d=example.test"));
	ck_assert_ptr_null(strstr(content, "Return-Path"));
	ck_assert_ptr_nonnull(strstr(content, "\nFrom: alice@example.test\nSubject: s\n\nbody\n"));
	MDB_txn *txn;
	struct queue_entry e;
	ck_assert_int_eq(mdb_txn_begin(t.db->env, NULL, MDB_RDONLY, &txn), 0);
	ck_assert_int_eq(queue_db_get(txn, t.db, "signed.1.1", &e, &error), 0);
	ck_assert_uint_eq(e.body_offset, 0);
	ck_assert_uint_eq(e.size, len);
	queue_entry_free(&e);
	ck_assert_int_eq(queue_db_get(txn, t.db, "forwarded.1.2", &e, &error), 0);
	ck_assert_uint_eq(e.body_offset, 34);
	queue_entry_free(&e);
	mdb_txn_abort(txn);
	free(content);
	free(path);
	path = queue_file_path(&t.cfg, "forwarded.1.2");
	ck_assert_int_eq(fileio_read_file(path, 1 << 20, &content, &len, &missing, &error), 0);
	ck_assert_str_eq(content, msg);
	free(content);
	free(path);
	free(kpath);
	queue_close(&q);
	tstore_destroy(&t);
}
END_TEST

/* Keys added while the server runs are used after a reload (SIGHUP),
 * and a job already under way keeps the keys it started with. */
START_TEST(reload_picks_up_new_keys)
{
	struct tstore t;
	struct queue *q;
	struct dkim_key key;
	char *error = NULL, *content;
	size_t len;
	bool exists, missing;

	tstore_open(&t);
	t.cfg.domains = xcalloc(1, sizeof(char *));
	t.cfg.domains[0] = xstrdup("example.test");
	t.cfg.n_domains = 1;
	struct services svc = { .loop = &t.loop, .cfg = &t.cfg, .db = t.db, .store = t.st };
	ck_assert_int_eq(queue_open(&svc, &q, &error), 0);

	static const char msg[] = "Return-Path: <alice@example.test>\nFrom: alice@example.test\n\nhi\n";
	const char *ids[] = { "before.1.1", "during.1.2", "after.1.3" };
	for (int i = 0; i < 3; i++) {
		char *spool = tstore_spool(&t, msg, strlen(msg));
		struct smtp_envelope env = { .id = ids[i], .sender = "alice@example.test",
					     .auth_user = "alice@example.test", .size = strlen(msg) - 34 };
		struct queue_add_rcpt add = { .address = "bob@remote.test" };
		added_called = false;
		queue_add(q, spool, 34, &env, &add, 1, added, NULL);
		if (i == 1) {
			/* A key appears and the server reloads while this
			 * job is queued: it still holds the old (empty) set. */
			char *kpath = dkim_key_path(t.dir, "example.test", "sel");
			ck_assert_int_eq(dkim_key_generate(DKIM_KEY_ED25519, 0, "sel", &key, &error), 0);
			ck_assert_int_eq(dkim_key_write(&key, kpath, false, (uid_t)-1, (gid_t)-1, &exists, &error), 0);
			dkim_key_free(&key);
			free(kpath);
			queue_reload_keys(q);
		}
		while (!added_called)
			uv_run(&t.loop, UV_RUN_ONCE);
		ck_assert(added_ok);
		free(spool);
		char *path = queue_file_path(&t.cfg, ids[i]);
		ck_assert_int_eq(fileio_read_file(path, 1 << 20, &content, &len, &missing, &error), 0);
		bool signed_ = strncmp(content, "DKIM-Signature:", 15) == 0;
		ck_assert_msg(signed_ == (i == 2), "%s: %s", ids[i], content);
		free(content);
		free(path);
	}
	queue_close(&q);
	tstore_destroy(&t);
}
END_TEST

static Suite *queue_suite(void)
{
	Suite *s = suite_create("queue");
	TCase *tc = tcase_create("records");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, record_round_trip);
	tcase_add_test(tc, add_is_durable_and_listed);
	tcase_add_test(tc, submitted_mail_is_dkim_signed);
	tcase_add_test(tc, reload_picks_up_new_keys);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run(queue_suite());
}
