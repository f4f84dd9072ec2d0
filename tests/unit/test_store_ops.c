/* Mailbox operations of the store: flags, expunge, copy, move, create,
 * delete, rename, subscriptions, default folders. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/xalloc.h"
#include "maildir/layout.h"
#include "maildir/uidlist.h"
#include "storeutil.h"
#include "testutil.h"

#define ALICE "alice@test.example"

static const char msg1[] = "From: a@example.org\nSubject: one\n\nbody one\n";
static const char *const to_alice[] = { ALICE };

static void deliver_n(struct tstore *t, int n)
{
	for (int i = 0; i < n; i++)
		ck_assert_int_eq(tstore_deliver(t, msg1, to_alice, 1, 0, 0, NULL), STORE_OK);
}

static enum store_result run_op(struct tstore *t, enum store_op_kind kind, const char *mailbox,
				const char *target, const uint32_t *uids, size_t n, struct store_op *out)
{
	struct store_op op = { .kind = kind, .account = ALICE, .mailbox = mailbox, .target = target,
			       .uids = uids, .n_uids = n };
	enum store_result r = tstore_op(t, &op);
	if (out != NULL)
		*out = op;
	else
		store_op_clear(&op);
	return r;
}

static enum store_result flags_op(struct tstore *t, uint32_t uid, enum store_flags_mode mode, uint32_t flags,
				  uint32_t keywords, size_t *done_r)
{
	struct store_op op = { .kind = STORE_OP_FLAGS, .account = ALICE, .mailbox = "INBOX", .uids = &uid,
			       .n_uids = 1, .flags_mode = mode, .flags = flags, .keywords = keywords };
	enum store_result r = tstore_op(t, &op);
	if (done_r)
		*done_r = op.done;
	store_op_clear(&op);
	return r;
}

/* The file name of uid in account's mailbox, from the index. */
static char *name_of(struct tstore *t, const char *mailbox, uint32_t uid)
{
	struct store_open_req o;
	ck_assert_int_eq(tstore_open_mailbox(t, ALICE, mailbox, &o), STORE_OK);
	uint32_t *uids, *flags;
	char **names;
	size_t n = tstore_list(t, o.mailbox_id, &uids, &names, &flags);
	char *found = NULL;
	for (size_t i = 0; i < n; i++)
		if (uids[i] == uid)
			found = xstrdup(names[i]);
	tstore_free_list(n, uids, names, flags);
	return found;
}

static char *box_dir(struct tstore *t, const char *sub)
{
	char *md = tstore_maildir(t, ALICE);
	char *d = sub ? xasprintf("%s/%s", md, sub) : xstrdup(md);
	free(md);
	return d;
}

static bool path_exists(const char *dir, const char *sub, const char *name)
{
	char *p = xasprintf("%s/%s/%s", dir, sub, name);
	struct stat sb;
	bool ok = stat(p, &sb) == 0;
	free(p);
	return ok;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && strcmp(s + a - b, suffix) == 0;
}

static void usage(struct tstore *t, uint64_t *bytes, uint64_t *msgs)
{
	MDB_txn *txn;
	char *error = NULL;
	ck_assert_int_eq(mdb_txn_begin(t->db->env, NULL, MDB_RDONLY, &txn), 0);
	ck_assert_int_eq(idx_usage_get(txn, t->db, ALICE, bytes, msgs, &error), 0);
	mdb_txn_abort(txn);
}

static struct uidlist read_uidlist(const char *dir)
{
	char *p = xasprintf("%s/dovecot-uidlist", dir);
	struct uidlist ul;
	bool missing = true;
	char *err = NULL;
	ck_assert_msg(uidlist_read(p, &ul, &missing, &err) == 0, "%s", err ? err : "");
	ck_assert(!missing);
	free(p);
	return ul;
}

/* Watchers that write down what they hear. */
struct heard {
	struct store_watch w;
	int ev[64];
	uint32_t first[64], last[64];
	size_t n;
};

static void heard_fn(struct store_watch *w, enum store_event ev, uint32_t first, uint32_t last)
{
	struct heard *h = (struct heard *)w;
	ck_assert_uint_lt(h->n, 64);
	h->ev[h->n] = (int)ev;
	h->first[h->n] = first;
	h->last[h->n] = last;
	h->n++;
}

static void heard_watch(struct tstore *t, struct heard *h, const char *mailbox)
{
	memset(h, 0, sizeof(*h));
	h->w.account = ALICE;
	h->w.mailbox = mailbox;
	h->w.fn = heard_fn;
	store_watch(t->st, &h->w);
}

/* ---------------------------------------------------------------- */

START_TEST(flags_round_trip_through_file_names)
{
	struct tstore t;
	struct store_open_req o;
	struct heard h;
	size_t done;

	tstore_open(&t);
	deliver_n(&t, 1);
	char *md = box_dir(&t, NULL);
	char *name = name_of(&t, "INBOX", 1);
	ck_assert(path_exists(md, "new", name));
	heard_watch(&t, &h, "INBOX");

	ck_assert_int_eq(flags_op(&t, 1, STORE_FLAGS_ADD, IDX_SEEN | IDX_FLAGGED, 0, &done), STORE_OK);
	ck_assert_uint_eq(done, 1);
	ck_assert_uint_eq(h.n, 1);
	ck_assert_int_eq(h.ev[0], STORE_EVENT_FLAGS);
	ck_assert_uint_eq(h.first[0], 1);
	char *n2 = name_of(&t, "INBOX", 1);
	ck_assert_msg(ends_with(n2, ":2,FS"), "%s", n2);
	ck_assert(path_exists(md, "cur", n2));
	ck_assert_uint_eq(tstore_count_files(md, "new"), 0);
	ck_assert_int_eq(tstore_open_mailbox(&t, ALICE, "INBOX", &o), STORE_OK);
	ck_assert_uint_eq(o.unseen, 0);

	/* Unchanged: nothing done, nobody told. */
	ck_assert_int_eq(flags_op(&t, 1, STORE_FLAGS_ADD, IDX_SEEN, 0, &done), STORE_OK);
	ck_assert_uint_eq(done, 0);
	ck_assert_uint_eq(h.n, 1);

	ck_assert_int_eq(flags_op(&t, 1, STORE_FLAGS_REMOVE, IDX_SEEN | IDX_FLAGGED, 0, &done), STORE_OK);
	ck_assert_uint_eq(done, 1);
	char *n3 = name_of(&t, "INBOX", 1);
	ck_assert_msg(ends_with(n3, ":2,"), "%s", n3);
	ck_assert(path_exists(md, "cur", n3));
	ck_assert_int_eq(tstore_open_mailbox(&t, ALICE, "INBOX", &o), STORE_OK);
	ck_assert_uint_eq(o.unseen, 1);

	/* Keywords are the lowercase letters a..z. */
	ck_assert_int_eq(flags_op(&t, 1, STORE_FLAGS_SET, IDX_SEEN | IDX_ANSWERED, 0x5, &done), STORE_OK);
	char *n4 = name_of(&t, "INBOX", 1);
	ck_assert_msg(ends_with(n4, ":2,RSac"), "%s", n4);
	ck_assert_int_eq(flags_op(&t, 1, STORE_FLAGS_REMOVE, 0, 0x1, &done), STORE_OK);
	char *n5 = name_of(&t, "INBOX", 1);
	ck_assert_msg(ends_with(n5, ":2,RSc"), "%s", n5);
	ck_assert_uint_eq(tstore_count_files(md, "cur"), 1);

	/* A uid that is not there is skipped. */
	ck_assert_int_eq(flags_op(&t, 9, STORE_FLAGS_ADD, IDX_DELETED, 0, &done), STORE_OK);
	ck_assert_uint_eq(done, 0);

	/* The flags survive losing the index: they are in the name. */
	store_unwatch(t.st, &h.w);
	tstore_close(&t);
	char *cmd = xasprintf("rm -rf '%s/postbote.mdb'", t.dir);
	ck_assert_int_eq(system(cmd), 0);
	free(cmd);
	tstore_reopen(&t);
	ck_assert_int_eq(tstore_open_mailbox(&t, ALICE, "INBOX", &o), STORE_OK);
	uint32_t *uids, *flags;
	char **names;
	ck_assert_uint_eq(tstore_list(&t, o.mailbox_id, &uids, &names, &flags), 1);
	ck_assert_uint_eq(flags[0], IDX_SEEN | IDX_ANSWERED);
	tstore_free_list(1, uids, names, flags);

	free(name);
	free(n2);
	free(n3);
	free(n4);
	free(n5);
	free(md);
	tstore_destroy(&t);
}
END_TEST

START_TEST(flags_after_another_program_renamed_the_file)
{
	struct tstore t;
	struct store_open_req o;
	size_t done;

	tstore_open(&t);
	deliver_n(&t, 1);
	char *md = box_dir(&t, NULL);
	char *name = name_of(&t, "INBOX", 1);

	/* mutt moves it to cur/ as seen, within the same clock tick as far
	 * as the directory mtimes tell (they are put back). */
	char *newd = xasprintf("%s/new", md), *curd = xasprintf("%s/cur", md);
	struct stat sn, sc;
	ck_assert_int_eq(stat(newd, &sn), 0);
	ck_assert_int_eq(stat(curd, &sc), 0);
	char *from = xasprintf("%s/%s", newd, name), *to = xasprintf("%s/%s:2,S", curd, name);
	ck_assert_int_eq(rename(from, to), 0);
	struct timespec tn[2] = { sn.st_atim, sn.st_mtim }, tc[2] = { sc.st_atim, sc.st_mtim };
	ck_assert_int_eq(utimensat(AT_FDCWD, newd, tn, 0), 0);
	ck_assert_int_eq(utimensat(AT_FDCWD, curd, tc, 0), 0);

	ck_assert_int_eq(flags_op(&t, 1, STORE_FLAGS_ADD, IDX_FLAGGED, 0, &done), STORE_OK);
	ck_assert_uint_eq(done, 1);
	char *want = xasprintf("%s:2,FS", name);
	ck_assert(path_exists(md, "cur", want));
	ck_assert_uint_eq(tstore_count_files(md, "cur"), 1);
	ck_assert_uint_eq(tstore_count_files(md, "new"), 0);
	ck_assert_int_eq(tstore_open_mailbox(&t, ALICE, "INBOX", &o), STORE_OK);
	ck_assert_uint_eq(o.count, 1);
	ck_assert_uint_eq(o.unseen, 0);
	uint32_t *uids, *flags;
	char **names;
	ck_assert_uint_eq(tstore_list(&t, o.mailbox_id, &uids, &names, &flags), 1);
	ck_assert_uint_eq(uids[0], 1);
	ck_assert_uint_eq(flags[0], IDX_SEEN | IDX_FLAGGED);
	ck_assert_str_eq(names[0], want);
	tstore_free_list(1, uids, names, flags);

	free(want);
	free(from);
	free(to);
	free(newd);
	free(curd);
	free(name);
	free(md);
	tstore_destroy(&t);
}
END_TEST

START_TEST(expunge_removes_files_records_usage)
{
	struct tstore t;
	struct store_open_req o;
	struct store_op op;
	struct heard h;
	uint64_t bytes, msgs;

	tstore_open(&t);
	deliver_n(&t, 3);
	char *md = box_dir(&t, NULL);
	heard_watch(&t, &h, "INBOX");
	const uint32_t uids[] = { 1, 2, 7 };
	ck_assert_int_eq(run_op(&t, STORE_OP_EXPUNGE, "INBOX", NULL, uids, 3, &op), STORE_OK);
	ck_assert_uint_eq(op.done, 2);
	store_op_clear(&op);
	ck_assert_uint_eq(h.n, 2);
	ck_assert_int_eq(h.ev[0], STORE_EVENT_EXPUNGE);
	ck_assert_uint_eq(h.first[0], 1);
	ck_assert_uint_eq(h.first[1], 2);
	store_unwatch(t.st, &h.w);

	ck_assert_uint_eq(tstore_count_files(md, "new"), 1);
	ck_assert_int_eq(tstore_open_mailbox(&t, ALICE, "INBOX", &o), STORE_OK);
	ck_assert_uint_eq(o.count, 1);
	ck_assert_uint_eq(o.unseen, 1);
	ck_assert_uint_eq(o.bytes, sizeof(msg1) - 1);
	usage(&t, &bytes, &msgs);
	ck_assert_uint_eq(msgs, 1);
	ck_assert_uint_eq(bytes, sizeof(msg1) - 1);

	struct uidlist ul = read_uidlist(md);
	ck_assert_uint_eq(ul.n, 1);
	ck_assert_uint_eq(ul.entries[0].uid, 3);
	ck_assert_uint_ge(ul.next_uid, 4);
	uidlist_free(&ul);

	/* Expunge the newest: its UID is never given out again. */
	const uint32_t three = 3;
	ck_assert_int_eq(run_op(&t, STORE_OP_EXPUNGE, "INBOX", NULL, &three, 1, NULL), STORE_OK);
	ck_assert_uint_eq(tstore_count_files(md, "new"), 0);
	struct store_rcpt r;
	ck_assert_int_eq(tstore_deliver(&t, msg1, to_alice, 1, 0, 0, &r), STORE_OK);
	ck_assert_uint_eq(r.uid, 4);
	/* ... not even after losing the index. */
	tstore_close(&t);
	char *cmd = xasprintf("rm -rf '%s/postbote.mdb'", t.dir);
	ck_assert_int_eq(system(cmd), 0);
	free(cmd);
	tstore_reopen(&t);
	ck_assert_int_eq(tstore_open_mailbox(&t, ALICE, "INBOX", &o), STORE_OK);
	ck_assert_uint_eq(o.count, 1);
	ck_assert_uint_eq(o.uidnext, 5);

	free(md);
	tstore_destroy(&t);
}
END_TEST

static void copy_file(const char *from, const char *to)
{
	char *cmd = xasprintf("cp '%s' '%s'", from, to);
	ck_assert_int_eq(system(cmd), 0);
	free(cmd);
}

START_TEST(expunge_after_delivery_is_never_replayed)
{
	struct tstore t;
	struct store_open_req o;

	tstore_open(&t);
	deliver_n(&t, 1);
	const uint32_t one = 1;
	ck_assert_int_eq(run_op(&t, STORE_OP_EXPUNGE, "INBOX", NULL, &one, 1, NULL), STORE_OK);
	/* The log as a crash right now would leave it. */
	char *log = xasprintf("%s/delivery.log", t.dir), *saved = xasprintf("%s/saved.log", t.dir);
	copy_file(log, saved);
	tstore_close(&t);
	copy_file(saved, log);
	tstore_reopen(&t);

	char *md = box_dir(&t, NULL);
	ck_assert_uint_eq(tstore_count_files(md, "new") + tstore_count_files(md, "cur"), 0);
	ck_assert_int_eq(tstore_open_mailbox(&t, ALICE, "INBOX", &o), STORE_OK);
	ck_assert_uint_eq(o.count, 0);
	free(md);
	free(log);
	free(saved);
	tstore_destroy(&t);
}
END_TEST

START_TEST(copy_to_existing_folder)
{
	struct tstore t;
	struct store_open_req o, oa;
	struct store_op op;
	struct heard h;
	uint64_t bytes, msgs;

	tstore_open(&t);
	deliver_n(&t, 3);
	ck_assert_int_eq(run_op(&t, STORE_OP_CREATE, "Saved", NULL, NULL, 0, NULL), STORE_OK);
	ck_assert_int_eq(flags_op(&t, 2, STORE_FLAGS_ADD, IDX_SEEN, 0, NULL), STORE_OK);
	char *src0 = name_of(&t, "INBOX", 1);
	heard_watch(&t, &h, "Saved");

	const uint32_t uids[] = { 1, 2, 3 };
	ck_assert_int_eq(run_op(&t, STORE_OP_COPY, "INBOX", "Saved", uids, 3, &op), STORE_OK);
	ck_assert_int_eq(tstore_open_mailbox(&t, ALICE, "Saved", &oa), STORE_OK);
	ck_assert_uint_eq(op.done, 3);
	ck_assert_uint_eq(op.target_uidvalidity, oa.uidvalidity);
	ck_assert_uint_eq(op.new_uids[0], 1);
	ck_assert_uint_eq(op.new_uids[1], 2);
	ck_assert_uint_eq(op.new_uids[2], 3);
	store_op_clear(&op);
	ck_assert_uint_eq(h.n, 1);
	ck_assert_int_eq(h.ev[0], STORE_EVENT_NEW);
	ck_assert_uint_eq(h.first[0], 1);
	ck_assert_uint_eq(h.last[0], 3);
	store_unwatch(t.st, &h.w);

	ck_assert_uint_eq(oa.count, 3);
	ck_assert_uint_eq(oa.unseen, 2);
	ck_assert_uint_eq(oa.uidnext, 4);
	char *ad = box_dir(&t, ".Saved"), *md = box_dir(&t, NULL);
	/* Unflagged ones stay in new/ without info; the seen one in cur/. */
	ck_assert_uint_eq(tstore_count_files(ad, "new"), 2);
	ck_assert_uint_eq(tstore_count_files(ad, "cur"), 1);
	ck_assert_uint_eq(tstore_count_files(ad, "tmp"), 0);
	char *c2 = name_of(&t, "Saved", 2);
	ck_assert_msg(ends_with(c2, ":2,S"), "%s", c2);
	/* A hard link: the source file now has two names. */
	char *sp = xasprintf("%s/new/%s", md, src0);
	struct stat sb;
	ck_assert_int_eq(stat(sp, &sb), 0);
	ck_assert_uint_eq(sb.st_nlink, 2);
	/* The source is unchanged. */
	ck_assert_int_eq(tstore_open_mailbox(&t, ALICE, "INBOX", &o), STORE_OK);
	ck_assert_uint_eq(o.count, 3);
	ck_assert_uint_eq(tstore_count_files(md, "new") + tstore_count_files(md, "cur"), 3);
	usage(&t, &bytes, &msgs);
	ck_assert_uint_eq(msgs, 6);
	ck_assert_uint_eq(bytes, 6 * (sizeof(msg1) - 1));
	struct uidlist ul = read_uidlist(ad);
	ck_assert_uint_eq(ul.n, 3);
	ck_assert_uint_eq(ul.entries[2].uid, 3);
	uidlist_free(&ul);

	/* Again: COPYUID numbers go on ascending. */
	ck_assert_int_eq(run_op(&t, STORE_OP_COPY, "INBOX", "Saved", uids, 2, &op), STORE_OK);
	ck_assert_uint_eq(op.new_uids[0], 4);
	ck_assert_uint_eq(op.new_uids[1], 5);
	store_op_clear(&op);

	free(sp);
	free(c2);
	free(ad);
	free(md);
	free(src0);
	tstore_destroy(&t);
}
END_TEST

START_TEST(copy_refused)
{
	struct tstore t;
	struct store_op op;
	struct store_open_req oa;

	tstore_open(&t);
	deliver_n(&t, 2);
	const uint32_t uids[] = { 1, 2 };
	ck_assert_int_eq(run_op(&t, STORE_OP_COPY, "INBOX", "Nowhere", uids, 2, NULL), STORE_NO_MAILBOX);
	char *nd = box_dir(&t, ".Nowhere");
	struct stat sb;
	ck_assert_int_ne(stat(nd, &sb), 0);

	ck_assert_int_eq(run_op(&t, STORE_OP_CREATE, "Saved", NULL, NULL, 0, NULL), STORE_OK);
	/* Two messages in use; room for three. */
	op = (struct store_op){ .kind = STORE_OP_COPY, .account = ALICE, .mailbox = "INBOX", .target = "Saved",
				.uids = uids, .n_uids = 2, .quota_messages = 3 };
	ck_assert_int_eq(tstore_op(&t, &op), STORE_OVER_QUOTA);
	ck_assert_uint_eq(op.done, 0);
	store_op_clear(&op);
	op = (struct store_op){ .kind = STORE_OP_COPY, .account = ALICE, .mailbox = "INBOX", .target = "Saved",
				.uids = uids, .n_uids = 2, .quota_bytes = 3 * (sizeof(msg1) - 1) };
	ck_assert_int_eq(tstore_op(&t, &op), STORE_OVER_QUOTA);
	store_op_clear(&op);
	char *ad = box_dir(&t, ".Saved");
	ck_assert_uint_eq(tstore_count_files(ad, "new") + tstore_count_files(ad, "cur") +
			  tstore_count_files(ad, "tmp"), 0);
	ck_assert_int_eq(tstore_open_mailbox(&t, ALICE, "Saved", &oa), STORE_OK);
	ck_assert_uint_eq(oa.count, 0);
	/* Exactly at the limit fits. */
	op = (struct store_op){ .kind = STORE_OP_COPY, .account = ALICE, .mailbox = "INBOX", .target = "Saved",
				.uids = uids, .n_uids = 2, .quota_messages = 4 };
	ck_assert_int_eq(tstore_op(&t, &op), STORE_OK);
	store_op_clear(&op);
	free(ad);
	free(nd);
	tstore_destroy(&t);
}
END_TEST

START_TEST(move_between_folders)
{
	struct tstore t;
	struct store_open_req o, oa;
	struct store_op op;
	struct heard hi, ha;
	uint64_t bytes, msgs;

	tstore_open(&t);
	deliver_n(&t, 3);
	ck_assert_int_eq(run_op(&t, STORE_OP_CREATE, "Saved", NULL, NULL, 0, NULL), STORE_OK);
	ck_assert_int_eq(flags_op(&t, 1, STORE_FLAGS_ADD, IDX_FLAGGED, 0, NULL), STORE_OK);
	heard_watch(&t, &hi, "INBOX");
	heard_watch(&t, &ha, "Saved");
	const uint32_t uids[] = { 1, 3 };
	ck_assert_int_eq(run_op(&t, STORE_OP_MOVE, "INBOX", "Saved", uids, 2, &op), STORE_OK);
	ck_assert_uint_eq(op.done, 2);
	ck_assert_uint_eq(op.new_uids[0], 1);
	ck_assert_uint_eq(op.new_uids[1], 2);
	store_op_clear(&op);

	ck_assert_uint_eq(hi.n, 2);
	ck_assert_int_eq(hi.ev[0], STORE_EVENT_EXPUNGE);
	ck_assert_uint_eq(hi.first[0], 1);
	ck_assert_int_eq(hi.ev[1], STORE_EVENT_EXPUNGE);
	ck_assert_uint_eq(hi.first[1], 3);
	ck_assert_uint_eq(ha.n, 1);
	ck_assert_int_eq(ha.ev[0], STORE_EVENT_NEW);
	ck_assert_uint_eq(ha.first[0], 1);
	ck_assert_uint_eq(ha.last[0], 2);
	store_unwatch(t.st, &hi.w);
	store_unwatch(t.st, &ha.w);

	char *md = box_dir(&t, NULL), *ad = box_dir(&t, ".Saved");
	ck_assert_uint_eq(tstore_count_files(md, "new") + tstore_count_files(md, "cur"), 1);
	ck_assert_uint_eq(tstore_count_files(ad, "new"), 1);
	ck_assert_uint_eq(tstore_count_files(ad, "cur"), 1);
	ck_assert_int_eq(tstore_open_mailbox(&t, ALICE, "INBOX", &o), STORE_OK);
	ck_assert_uint_eq(o.count, 1);
	ck_assert_int_eq(tstore_open_mailbox(&t, ALICE, "Saved", &oa), STORE_OK);
	ck_assert_uint_eq(oa.count, 2);
	uint32_t *u, *f;
	char **names;
	ck_assert_uint_eq(tstore_list(&t, oa.mailbox_id, &u, &names, &f), 2);
	ck_assert_uint_eq(f[0], IDX_FLAGGED);
	ck_assert_msg(ends_with(names[0], ":2,F"), "%s", names[0]);
	tstore_free_list(2, u, names, f);
	ck_assert_uint_eq(tstore_list(&t, o.mailbox_id, &u, &names, &f), 1);
	ck_assert_uint_eq(u[0], 2);
	tstore_free_list(1, u, names, f);
	usage(&t, &bytes, &msgs);
	ck_assert_uint_eq(msgs, 3);
	struct uidlist ul = read_uidlist(md);
	ck_assert_uint_eq(ul.n, 1);
	ck_assert_uint_eq(ul.entries[0].uid, 2);
	uidlist_free(&ul);
	ul = read_uidlist(ad);
	ck_assert_uint_eq(ul.n, 2);
	uidlist_free(&ul);

	/* Into a folder that does not exist: nothing moves. */
	const uint32_t two = 2;
	ck_assert_int_eq(run_op(&t, STORE_OP_MOVE, "INBOX", "Nowhere", &two, 1, NULL), STORE_NO_MAILBOX);
	ck_assert_int_eq(tstore_open_mailbox(&t, ALICE, "INBOX", &o), STORE_OK);
	ck_assert_uint_eq(o.count, 1);

	free(md);
	free(ad);
	tstore_destroy(&t);
}
END_TEST

START_TEST(create_with_parents)
{
	struct tstore t;
	struct idx_mailbox mb;

	tstore_open(&t);
	ck_assert_int_eq(run_op(&t, STORE_OP_CREATE, "a/b/c", NULL, NULL, 0, NULL), STORE_OK);
	const char *names[] = { "a", "a/b", "a/b/c" };
	const char *dirs[] = { ".a", ".a.b", ".a.b.c" };
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(tstore_mailbox_get(&t, ALICE, names[i], &mb), 0);
		char *d = box_dir(&t, dirs[i]);
		ck_assert(path_exists(d, "cur", "."));
		ck_assert(path_exists(d, "new", "."));
		ck_assert(path_exists(d, "tmp", "."));
		ck_assert(path_exists(d, ".", "maildirfolder"));
		free(d);
	}
	ck_assert_int_eq(run_op(&t, STORE_OP_CREATE, "a/b", NULL, NULL, 0, NULL), STORE_EXISTS);
	ck_assert_int_eq(run_op(&t, STORE_OP_CREATE, "INBOX", NULL, NULL, 0, NULL), STORE_EXISTS);
	ck_assert_int_eq(run_op(&t, STORE_OP_CREATE, "inbox", NULL, NULL, 0, NULL), STORE_EXISTS);
	ck_assert_int_eq(run_op(&t, STORE_OP_CREATE, "bad.name", NULL, NULL, 0, NULL), STORE_NOT_ALLOWED);
	ck_assert_int_eq(run_op(&t, STORE_OP_CREATE, "a//b", NULL, NULL, 0, NULL), STORE_NOT_ALLOWED);
	/* A sibling under an existing parent. */
	ck_assert_int_eq(run_op(&t, STORE_OP_CREATE, "a/d", NULL, NULL, 0, NULL), STORE_OK);
	ck_assert_int_eq(tstore_mailbox_get(&t, ALICE, "a/d", &mb), 0);
	tstore_destroy(&t);
}
END_TEST

START_TEST(delete_folders)
{
	struct tstore t;
	struct store_open_req o;
	struct idx_mailbox mb;
	struct heard h;
	uint64_t bytes, msgs;

	tstore_open(&t);
	deliver_n(&t, 2);
	ck_assert_int_eq(run_op(&t, STORE_OP_CREATE, "Old", NULL, NULL, 0, NULL), STORE_OK);
	const uint32_t uids[] = { 1, 2 };
	ck_assert_int_eq(run_op(&t, STORE_OP_COPY, "INBOX", "Old", uids, 2, NULL), STORE_OK);
	usage(&t, &bytes, &msgs);
	ck_assert_uint_eq(msgs, 4);
	heard_watch(&t, &h, "Old");

	ck_assert_int_eq(run_op(&t, STORE_OP_DELETE, "Old", NULL, NULL, 0, NULL), STORE_OK);
	ck_assert_uint_eq(h.n, 1);
	ck_assert_int_eq(h.ev[0], STORE_EVENT_GONE);
	store_unwatch(t.st, &h.w);
	char *od = box_dir(&t, ".Old");
	struct stat sb;
	ck_assert_int_ne(stat(od, &sb), 0);
	ck_assert_int_eq(tstore_mailbox_get(&t, ALICE, "Old", &mb), 1);
	ck_assert_int_eq(tstore_open_mailbox(&t, ALICE, "Old", &o), STORE_NO_MAILBOX);
	usage(&t, &bytes, &msgs);
	ck_assert_uint_eq(msgs, 2);
	ck_assert_uint_eq(bytes, 2 * (sizeof(msg1) - 1));
	/* Nothing left behind in the Maildir root but the known folders. */
	char *md = box_dir(&t, NULL);
	DIR *d = opendir(md);
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		ck_assert_msg(strncmp(de->d_name, "..DELETED", 9) != 0, "%s left", de->d_name);
	closedir(d);
	/* The INBOX copies are still there (the files were links). */
	ck_assert_uint_eq(tstore_count_files(md, "new"), 2);

	ck_assert_int_eq(run_op(&t, STORE_OP_DELETE, "INBOX", NULL, NULL, 0, NULL), STORE_NOT_ALLOWED);
	ck_assert_int_eq(run_op(&t, STORE_OP_DELETE, "Old", NULL, NULL, 0, NULL), STORE_NO_MAILBOX);
	ck_assert_int_eq(run_op(&t, STORE_OP_CREATE, "p/q", NULL, NULL, 0, NULL), STORE_OK);
	ck_assert_int_eq(run_op(&t, STORE_OP_DELETE, "p", NULL, NULL, 0, NULL), STORE_NOT_ALLOWED);
	ck_assert_int_eq(run_op(&t, STORE_OP_DELETE, "p/q", NULL, NULL, 0, NULL), STORE_OK);
	ck_assert_int_eq(run_op(&t, STORE_OP_DELETE, "p", NULL, NULL, 0, NULL), STORE_OK);
	free(md);
	free(od);
	tstore_destroy(&t);
}
END_TEST

START_TEST(rename_folder_with_child)
{
	struct tstore t;
	struct store_open_req o;
	struct idx_mailbox mb, mb2;
	struct heard h;

	tstore_open(&t);
	deliver_n(&t, 2);
	ck_assert_int_eq(run_op(&t, STORE_OP_CREATE, "x/y", NULL, NULL, 0, NULL), STORE_OK);
	const uint32_t uids[] = { 1, 2 };
	ck_assert_int_eq(run_op(&t, STORE_OP_COPY, "INBOX", "x", uids, 2, NULL), STORE_OK);
	ck_assert_int_eq(run_op(&t, STORE_OP_COPY, "INBOX", "x/y", uids, 1, NULL), STORE_OK);
	ck_assert_int_eq(tstore_mailbox_get(&t, ALICE, "x", &mb), 0);
	heard_watch(&t, &h, "x");

	ck_assert_int_eq(run_op(&t, STORE_OP_RENAME, "x", "z", NULL, 0, NULL), STORE_OK);
	ck_assert_uint_eq(h.n, 1);
	ck_assert_int_eq(h.ev[0], STORE_EVENT_GONE);
	store_unwatch(t.st, &h.w);
	ck_assert_int_eq(tstore_mailbox_get(&t, ALICE, "x", &mb2), 1);
	ck_assert_int_eq(tstore_mailbox_get(&t, ALICE, "x/y", &mb2), 1);
	ck_assert_int_eq(tstore_mailbox_get(&t, ALICE, "z/y", &mb2), 0);
	ck_assert_int_eq(tstore_mailbox_get(&t, ALICE, "z", &mb2), 0);
	ck_assert_uint_eq(mb2.id, mb.id);
	ck_assert_uint_eq(mb2.uidvalidity, mb.uidvalidity);
	struct stat sb;
	char *xd = box_dir(&t, ".x"), *xyd = box_dir(&t, ".x.y"), *zd = box_dir(&t, ".z"),
	     *zyd = box_dir(&t, ".z.y");
	ck_assert_int_ne(stat(xd, &sb), 0);
	ck_assert_int_ne(stat(xyd, &sb), 0);
	ck_assert_uint_eq(tstore_count_files(zd, "new"), 2);
	ck_assert_uint_eq(tstore_count_files(zyd, "new"), 1);
	ck_assert_int_eq(tstore_open_mailbox(&t, ALICE, "z", &o), STORE_OK);
	ck_assert_uint_eq(o.count, 2);
	ck_assert_uint_eq(o.uidvalidity, mb.uidvalidity);
	ck_assert_int_eq(tstore_open_mailbox(&t, ALICE, "z/y", &o), STORE_OK);
	ck_assert_uint_eq(o.count, 1);
	ck_assert_int_eq(tstore_open_mailbox(&t, ALICE, "x", &o), STORE_NO_MAILBOX);

	ck_assert_int_eq(run_op(&t, STORE_OP_RENAME, "x", "w", NULL, 0, NULL), STORE_NO_MAILBOX);
	ck_assert_int_eq(run_op(&t, STORE_OP_CREATE, "w", NULL, NULL, 0, NULL), STORE_OK);
	ck_assert_int_eq(run_op(&t, STORE_OP_RENAME, "z", "w", NULL, 0, NULL), STORE_EXISTS);
	ck_assert_int_eq(run_op(&t, STORE_OP_RENAME, "z", "z/y/q", NULL, 0, NULL), STORE_NOT_ALLOWED);
	/* Missing parents of the new name are made. */
	ck_assert_int_eq(run_op(&t, STORE_OP_RENAME, "z/y", "m/n", NULL, 0, NULL), STORE_OK);
	ck_assert_int_eq(tstore_mailbox_get(&t, ALICE, "m", &mb2), 0);
	ck_assert_int_eq(tstore_open_mailbox(&t, ALICE, "m/n", &o), STORE_OK);
	ck_assert_uint_eq(o.count, 1);
	free(xd);
	free(xyd);
	free(zd);
	free(zyd);
	tstore_destroy(&t);
}
END_TEST

START_TEST(rename_inbox_moves_messages)
{
	struct tstore t;
	struct store_open_req o;
	struct store_op op;
	uint64_t bytes, msgs;

	tstore_open(&t);
	deliver_n(&t, 3);
	ck_assert_int_eq(run_op(&t, STORE_OP_RENAME, "INBOX", "Old/Mail", NULL, 0, &op), STORE_OK);
	ck_assert_uint_eq(op.done, 3);
	store_op_clear(&op);
	ck_assert_int_eq(tstore_open_mailbox(&t, ALICE, "INBOX", &o), STORE_OK);
	ck_assert_uint_eq(o.count, 0);
	ck_assert_uint_eq(o.uidnext, 4);
	ck_assert_int_eq(tstore_open_mailbox(&t, ALICE, "Old/Mail", &o), STORE_OK);
	ck_assert_uint_eq(o.count, 3);
	char *md = box_dir(&t, NULL), *od = box_dir(&t, ".Old.Mail");
	ck_assert_uint_eq(tstore_count_files(md, "new") + tstore_count_files(md, "cur"), 0);
	ck_assert_uint_eq(tstore_count_files(od, "new"), 3);
	usage(&t, &bytes, &msgs);
	ck_assert_uint_eq(msgs, 3);
	ck_assert_int_eq(run_op(&t, STORE_OP_RENAME, "INBOX", "Old/Mail", NULL, 0, NULL), STORE_EXISTS);
	/* INBOX goes on taking mail, with UIDs above the old ones. */
	struct store_rcpt r;
	ck_assert_int_eq(tstore_deliver(&t, msg1, to_alice, 1, 0, 0, &r), STORE_OK);
	ck_assert_uint_eq(r.uid, 4);
	free(md);
	free(od);
	tstore_destroy(&t);
}
END_TEST

START_TEST(subscriptions_round_trip)
{
	struct tstore t;
	char **names;
	size_t n;
	char *error = NULL;
	struct store_op op;

	tstore_open(&t);
	const char *who = "sub@test.example";
	char *md = tstore_maildir(&t, who);
	const char *seq[][2] = { { "s", "Foo" }, { "s", "Bar/Baz" }, { "s", "Foo" }, { "s", "Qux" },
				 { "u", "Foo" }, { "u", "Never" } };
	for (size_t i = 0; i < sizeof(seq) / sizeof(seq[0]); i++) {
		op = (struct store_op){ .kind = seq[i][0][0] == 's' ? STORE_OP_SUBSCRIBE : STORE_OP_UNSUBSCRIBE,
					.account = who, .mailbox = seq[i][1] };
		ck_assert_int_eq(tstore_op(&t, &op), STORE_OK);
		store_op_clear(&op);
	}
	op = (struct store_op){ .kind = STORE_OP_SUBSCRIBE, .account = who, .mailbox = "a.b" };
	ck_assert_int_eq(tstore_op(&t, &op), STORE_NOT_ALLOWED);
	ck_assert_int_eq(store_subscriptions_read(md, &names, &n, &error), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(names[0], "Bar/Baz");
	ck_assert_str_eq(names[1], "Qux");
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	/* One name a line, nothing else. */
	char *p = xasprintf("%s/subscriptions", md);
	FILE *f = fopen(p, "r");
	ck_assert_ptr_nonnull(f);
	char buf[256];
	size_t len = fread(buf, 1, sizeof(buf) - 1, f);
	buf[len] = '\0';
	fclose(f);
	ck_assert_str_eq(buf, "Bar/Baz\nQux\n");
	free(p);

	/* No file: an empty list. */
	ck_assert_int_eq(store_subscriptions_read(t.dir, &names, &n, &error), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_ptr_null(names);
	free(md);
	tstore_destroy(&t);
}
END_TEST

START_TEST(new_account_gets_default_folders)
{
	struct tstore t;
	struct idx_mailbox mb;
	char **names;
	size_t n;
	char *error = NULL;

	tstore_open(&t);
	deliver_n(&t, 1);
	const char *folders[] = { "Sent", "Drafts", "Trash", "Junk", "Archive" };
	const uint32_t attrs[] = { IDX_MBOX_SENT, IDX_MBOX_DRAFTS, IDX_MBOX_TRASH, IDX_MBOX_JUNK,
				   IDX_MBOX_ARCHIVE };
	for (int i = 0; i < 5; i++) {
		ck_assert_int_eq(tstore_mailbox_get(&t, ALICE, folders[i], &mb), 0);
		ck_assert_uint_eq(mb.attrs, attrs[i] | IDX_MBOX_SUBSCRIBED);
		char *sub = xasprintf(".%s", folders[i]);
		char *d = box_dir(&t, sub);
		ck_assert(path_exists(d, "new", "."));
		ck_assert(path_exists(d, ".", "maildirfolder"));
		free(d);
		free(sub);
	}
	char *md = box_dir(&t, NULL);
	ck_assert_int_eq(store_subscriptions_read(md, &names, &n, &error), 0);
	ck_assert_uint_eq(n, 5);
	for (size_t i = 0; i < n; i++) {
		ck_assert_str_eq(names[i], folders[i]);
		free(names[i]);
	}
	free(names);
	free(md);

	/* An adopted Maildir keeps its own Sent folder as it is. */
	const char *bob[] = { "bob@test.example" };
	char *bmd = tstore_maildir(&t, bob[0]);
	char *sent = xasprintf("%s/.Sent/cur", bmd);
	ck_assert_int_eq(layout_mkdirs(sent), 0);
	ck_assert_int_eq(tstore_deliver(&t, msg1, bob, 1, 0, 0, NULL), STORE_OK);
	ck_assert_int_eq(tstore_mailbox_get(&t, bob[0], "Sent", &mb), 1);
	ck_assert_int_eq(tstore_mailbox_get(&t, bob[0], "Trash", &mb), 0);
	ck_assert_uint_eq(mb.attrs, IDX_MBOX_TRASH | IDX_MBOX_SUBSCRIBED);
	ck_assert_int_eq(store_subscriptions_read(bmd, &names, &n, &error), 0);
	ck_assert_uint_eq(n, 4);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(sent);
	free(bmd);

	/* Creating them is idempotent: a second delivery changes nothing. */
	deliver_n(&t, 1);
	ck_assert_int_eq(tstore_mailbox_get(&t, ALICE, "Sent", &mb), 0);
	ck_assert_uint_eq(mb.attrs, IDX_MBOX_SENT | IDX_MBOX_SUBSCRIBED);
	tstore_destroy(&t);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("store_ops");
	TCase *tc = tcase_create("store_ops");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, flags_round_trip_through_file_names);
	tcase_add_test(tc, flags_after_another_program_renamed_the_file);
	tcase_add_test(tc, expunge_removes_files_records_usage);
	tcase_add_test(tc, expunge_after_delivery_is_never_replayed);
	tcase_add_test(tc, copy_to_existing_folder);
	tcase_add_test(tc, copy_refused);
	tcase_add_test(tc, move_between_folders);
	tcase_add_test(tc, create_with_parents);
	tcase_add_test(tc, delete_folders);
	tcase_add_test(tc, rename_folder_with_child);
	tcase_add_test(tc, rename_inbox_moves_messages);
	tcase_add_test(tc, subscriptions_round_trip);
	tcase_add_test(tc, new_account_gets_default_folders);
	suite_add_tcase(s, tc);
	return testutil_run(s);
}
