/* The server's IMAP backend over a real store in a temporary data
 * directory: LIST with adopted folders and subscriptions, SELECT with
 * flags and keywords from file names, \Recent claimed by one session,
 * change notifications, the MIME structure cache, keyword names, APPEND,
 * COPY and MOVE with their UIDPLUS data, the per-account session limit and
 * cancelled requests. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auth/passwd.h"
#include "auth/userdb.h"
#include "core/imap_glue.h"
#include "core/log.h"
#include "core/services.h"
#include "core/xalloc.h"
#include "maildir/index.h"
#include "maildir/keywords.h"
#include "core/buf.h"
#include "mime/mime_parse.h"
#include "mime/mime_serial.h"
#include "mime/mime_tree.h"
#include "storeutil.h"
#include "testutil.h"

#define BOB "bob@example.test"

static const char *const contents[] = {
	"From: a@example.test\nSubject: one\n\nfirst\n",
	"Subject: two\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n",
	"Subject: three\n\nthird\n",
};

static struct tstore t;
static struct imap_backend *be;
static struct services svc;
static struct imap_account *ua;

/* What a change callback heard, in order. */
struct heard {
	enum imap_change what[64];
	uint32_t first[64], last[64];
	size_t n;
};

struct done {
	bool called;
	enum imap_status status;
	uint32_t uidvalidity;
	uint32_t uids[16];
	size_t n;
	size_t heard_before;       /* changes heard when the answer came */
	struct heard *h;
};

struct selected {
	bool called;
	enum imap_status status;
	struct imap_mailbox *mb;
	struct imap_select_info info;
};

static void add_user(const char *address, const char *password)
{
	struct user u = { .address = (char *)address };
	char *error = NULL;
	ck_assert_int_eq(passwd_hash("sha512crypt", password, &u.password_hash, &error), 0);
	ck_assert_msg(userdb_add(t.db, &u, &error) == 0, "%s", error ? error : "exists");
	free(u.password_hash);
}

static void deliver(const char *content)
{
	const char *rcpt[] = { BOB };
	ck_assert_int_eq(tstore_deliver(&t, content, rcpt, 1, 0, 0, NULL), STORE_OK);
}

static void setup(void)
{
	log_setup(LOG_LEVEL_WARN, false, NULL);
	tstore_open(&t);
	t.cfg.imap_max_sessions_per_account = 10;
	add_user(BOB, "bob pw");
	for (size_t i = 0; i < 3; i++)
		deliver(contents[i]);
	svc = (struct services){ .loop = &t.loop, .cfg = &t.cfg, .db = t.db, .store = t.st };
	be = imap_backend_new(&svc);
	enum imap_status st = IMAP_TEMPFAIL;
	ua = be->account_open(be->ctx, BOB, &st);
	ck_assert_ptr_nonnull(ua);
	ck_assert_int_eq(st, IMAP_OK);
}

static void teardown(void)
{
	if (ua != NULL)
		be->account_close(be->ctx, ua);
	ua = NULL;
	store_close(&t.st);
	imap_backend_free(&be);
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

static void run_until(bool *flag)
{
	while (!*flag)
		uv_run(&t.loop, UV_RUN_ONCE);
}

static void run_idle(void)
{
	while (store_busy(t.st) > 0)
		uv_run(&t.loop, UV_RUN_ONCE);
}

static void on_change(void *arg, enum imap_change what, uint32_t first, uint32_t last)
{
	struct heard *h = arg;
	ck_assert_uint_lt(h->n, 64);
	h->what[h->n] = what;
	h->first[h->n] = first;
	h->last[h->n] = last;
	h->n++;
}

static void on_done(void *arg, enum imap_status status, uint32_t uidvalidity, const uint32_t *uids, size_t n)
{
	struct done *d = arg;
	d->called = true;
	d->status = status;
	d->uidvalidity = uidvalidity;
	ck_assert_uint_le(n, 16);
	if (n > 0)
		memcpy(d->uids, uids, n * sizeof(*uids));
	d->n = n;
	d->heard_before = d->h ? d->h->n : 0;
}

static void on_select(void *arg, enum imap_status status, struct imap_mailbox *mb, struct imap_select_info *info)
{
	struct selected *s = arg;
	s->called = true;
	s->status = status;
	s->mb = mb;
	if (info != NULL)
		s->info = *info;
}

static struct imap_mailbox *select_mb(struct imap_account *a, const char *name, bool read_only, struct heard *h,
				      struct imap_select_info *info_r)
{
	struct selected s = { 0 };
	void *handle = be->mailbox_select(be->ctx, a, name, read_only, on_change, h, on_select, &s);
	ck_assert_ptr_nonnull(handle);
	ck_assert(!s.called); /* never from inside the call */
	run_until(&s.called);
	ck_assert_int_eq(s.status, IMAP_OK);
	ck_assert_ptr_nonnull(s.mb);
	*info_r = s.info;
	return s.mb;
}

static struct done wait_done(void *handle, struct done *d)
{
	ck_assert_ptr_nonnull(handle);
	ck_assert(!d->called);
	run_until(&d->called);
	return *d;
}

static size_t count_recent(const struct imap_msg *v, size_t n)
{
	size_t r = 0;
	for (size_t i = 0; i < n; i++)
		r += v[i].recent;
	return r;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
}

static void make_folder(const char *maildir, const char *dot_name)
{
	const char *subs[] = { "", "/cur", "/new", "/tmp" };
	for (size_t i = 0; i < 4; i++) {
		char *p = xasprintf("%s/%s%s", maildir, dot_name, subs[i]);
		ck_assert_int_eq(mkdir(p, 0700), 0);
		free(p);
	}
}

/* The mime cache entry of uid in mailbox_id: true when there is one. */
static bool cached(uint64_t mailbox_id, uint32_t uid)
{
	MDB_txn *txn;
	MDB_val val;
	char *error = NULL;
	ck_assert_int_eq(mdb_txn_begin(t.db->env, NULL, MDB_RDONLY, &txn), 0);
	int rc = idx_mimecache_get(txn, t.db, mailbox_id, uid, &val, &error);
	mdb_txn_abort(txn);
	ck_assert_int_ge(rc, 0);
	return rc == 0;
}

START_TEST(list_adopted_and_subscriptions)
{
	char *maildir = tstore_maildir(&t, BOB);
	struct done d = { 0 };

	/* A folder another server left ("Old/Sub", its parent not on disk)
	 * and a subscription to a name that does not exist. */
	make_folder(maildir, ".Old.Sub");
	wait_done(be->subscribe(be->ctx, ua, "Ghost", true, on_done, &d), &d);
	ck_assert_int_eq(d.status, IMAP_OK);

	struct imap_mailbox_info *v;
	size_t n;
	ck_assert_int_eq(be->list(be->ctx, ua, &v, &n), 0);
	const char *want[] = { "Archive", "Drafts", "Ghost", "INBOX", "Junk", "Old", "Old/Sub", "Sent", "Trash" };
	ck_assert_uint_eq(n, sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < n; i++) {
		ck_assert_str_eq(v[i].name, want[i]);
		bool exists = strcmp(want[i], "Ghost") != 0 && strcmp(want[i], "Old") != 0;
		ck_assert_msg(v[i].exists == exists, "%s exists", want[i]);
		ck_assert_msg(v[i].has_children == (strcmp(want[i], "Old") == 0), "%s children", want[i]);
	}
	ck_assert_uint_eq(v[0].special, IMAP_USE_ARCHIVE);
	ck_assert_uint_eq(v[1].special, IMAP_USE_DRAFTS);
	ck_assert_uint_eq(v[4].special, IMAP_USE_JUNK);
	ck_assert_uint_eq(v[7].special, IMAP_USE_SENT);
	ck_assert_uint_eq(v[8].special, IMAP_USE_TRASH);
	ck_assert_uint_eq(v[3].special, 0);
	/* New accounts' folders are subscribed; so is Ghost. */
	ck_assert(v[2].subscribed && v[0].subscribed && v[7].subscribed);
	ck_assert(!v[3].subscribed && !v[6].subscribed);
	imap_mailbox_info_free(v, n);

	/* The adopted folder can be selected, and is then in the index. */
	struct heard h = { 0 };
	struct imap_select_info info;
	struct imap_mailbox *mb = select_mb(ua, "Old/Sub", false, &h, &info);
	ck_assert_uint_eq(info.n, 0);
	free(info.msgs);
	be->mailbox_close(be->ctx, mb);
	free(maildir);
}
END_TEST

START_TEST(select_flags_keywords)
{
	char *maildir = tstore_maildir(&t, BOB);
	/* A message another program left in cur/ with \Seen and keyword
	 * letter a, which dovecot-keywords names. */
	char *kwpath = xasprintf("%s/dovecot-keywords", maildir);
	write_file(kwpath, "0 $label1\n2 Work\n");
	char *path = xasprintf("%s/cur/1700000000.M1P1.other,S=12:2,FSac", maildir);
	write_file(path, "Subject: x\n\n");

	struct heard h = { 0 };
	struct imap_select_info info;
	struct imap_mailbox *mb = select_mb(ua, "inbox", false, &h, &info);
	struct idx_mailbox rec;
	ck_assert_int_eq(tstore_mailbox_get(&t, BOB, "INBOX", &rec), 0);
	ck_assert_uint_eq(info.uidvalidity, rec.uidvalidity);
	ck_assert_uint_eq(info.n, 4);
	ck_assert_uint_eq(info.uidnext, 5);
	for (size_t i = 0; i < 3; i++) {
		ck_assert_uint_eq(info.msgs[i].uid, i + 1);
		ck_assert_uint_eq(info.msgs[i].flags, 0);
		ck_assert_uint_eq(info.msgs[i].keywords, 0);
	}
	ck_assert_uint_eq(info.msgs[3].uid, 4);
	ck_assert_uint_eq(info.msgs[3].flags, IMAP_SEEN | IMAP_FLAGGED);
	ck_assert_uint_eq(info.msgs[3].keywords, 0x5);
	const char *const *names = be->mailbox_keywords(be->ctx, mb);
	ck_assert_str_eq(names[0], "$label1");
	ck_assert_ptr_null(names[1]);
	ck_assert_str_eq(names[2], "Work");

	struct imap_msg_info mi;
	ck_assert_int_eq(be->message_info(be->ctx, mb, 1, &mi), IMAP_OK);
	ck_assert_uint_eq(mi.uid, 1);
	ck_assert_uint_eq(mi.size, strlen(contents[0]) + 4); /* 4 bare LFs */
	ck_assert_int_gt(mi.internal_date, 0);
	ck_assert_int_eq(be->message_info(be->ctx, mb, 99, &mi), IMAP_GONE);

	/* The bytes, from any offset. */
	enum imap_status st = IMAP_TEMPFAIL;
	void *rd = be->message_open(be->ctx, mb, 2, &st);
	ck_assert_ptr_nonnull(rd);
	char buf[128];
	ssize_t got = be->message_pread(rd, buf, sizeof(buf), 9);
	ck_assert_int_eq(got, (ssize_t)strlen(contents[1]) - 9);
	ck_assert(memcmp(buf, contents[1] + 9, (size_t)got) == 0);
	be->message_close(rd);
	ck_assert_ptr_null(be->message_open(be->ctx, mb, 99, &st));
	ck_assert_int_eq(st, IMAP_GONE);

	free(info.msgs);
	be->mailbox_close(be->ctx, mb);
	free(kwpath);
	free(path);
	free(maildir);
}
END_TEST

START_TEST(recent_claimed_once)
{
	/* Before any session: a client of another kind read message 1 (its
	 * file went to cur/), so only 2 and 3 are recent. */
	uint32_t one = 1;
	struct store_op op = { .kind = STORE_OP_FLAGS, .account = BOB, .mailbox = "INBOX", .uids = &one,
			       .n_uids = 1, .flags_mode = STORE_FLAGS_ADD, .flags = IDX_SEEN };
	ck_assert_int_eq(tstore_op(&t, &op), STORE_OK);
	store_op_clear(&op);

	/* An EXAMINE first claims nothing. */
	struct heard hc = { 0 }, ha = { 0 }, hb = { 0 };
	struct imap_select_info ic, ia, ib;
	struct imap_mailbox *mc = select_mb(ua, "INBOX", true, &hc, &ic);
	ck_assert_uint_eq(ic.recent, 0);
	ck_assert_uint_eq(count_recent(ic.msgs, ic.n), 0);
	struct imap_mailbox *ma = select_mb(ua, "INBOX", false, &ha, &ia);
	ck_assert_uint_eq(ia.n, 3);
	ck_assert_uint_eq(ia.recent, 2);
	ck_assert(!ia.msgs[0].recent && ia.msgs[1].recent && ia.msgs[2].recent);
	struct imap_mailbox *mbb = select_mb(ua, "INBOX", false, &hb, &ib);
	ck_assert_uint_eq(ib.recent, 0);

	/* A new message: everyone hears of it; B asks first and gets it. */
	deliver("Subject: four\n\n4\n");
	ck_assert_uint_eq(ha.n, 1);
	ck_assert_uint_eq(hb.n, 1);
	ck_assert_uint_eq(hc.n, 1);
	ck_assert_int_eq(hb.what[0], IMAP_CHANGE_NEW);
	ck_assert_uint_eq(hb.first[0], 4);
	ck_assert_uint_eq(hb.last[0], 4);
	struct imap_msg *v;
	size_t n;
	ck_assert_int_eq(be->mailbox_messages(be->ctx, mc, 4, 0, &v, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert(!v[0].recent);
	free(v);
	ck_assert_int_eq(be->mailbox_messages(be->ctx, mbb, 4, 0, &v, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(v[0].uid, 4);
	ck_assert(v[0].recent);
	free(v);
	ck_assert_int_eq(be->mailbox_messages(be->ctx, ma, 4, 0, &v, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert(!v[0].recent);
	free(v);

	/* STATUS counts what the next SELECT would get: nothing now. */
	deliver("Subject: five\n\n5\n");
	free(ia.msgs);
	free(ib.msgs);
	free(ic.msgs);
	be->mailbox_close(be->ctx, ma);
	be->mailbox_close(be->ctx, mbb);
	be->mailbox_close(be->ctx, mc);
	struct imap_mailbox *md = select_mb(ua, "INBOX", false, &ha, &ia);
	ck_assert_uint_eq(ia.n, 5);
	ck_assert_uint_eq(ia.recent, 1);
	ck_assert(ia.msgs[4].recent);
	free(ia.msgs);
	be->mailbox_close(be->ctx, md);
}
END_TEST

static void on_status(void *arg, enum imap_status status, const struct imap_status_info *info)
{
	struct done *d = arg;
	d->called = true;
	d->status = status;
	if (info != NULL) {
		d->uids[0] = info->messages;
		d->uids[1] = info->recent;
		d->uids[2] = info->uidnext;
		d->uids[3] = info->unseen;
		d->uidvalidity = info->uidvalidity;
	}
}

START_TEST(status_counts)
{
	struct done d = { 0 };
	wait_done(be->status(be->ctx, ua, "INBOX", on_status, &d), &d);
	ck_assert_int_eq(d.status, IMAP_OK);
	ck_assert_uint_eq(d.uids[0], 3);
	ck_assert_uint_eq(d.uids[1], 3); /* all still in new/ */
	ck_assert_uint_eq(d.uids[2], 4);
	ck_assert_uint_eq(d.uids[3], 3);
	memset(&d, 0, sizeof(d));
	wait_done(be->status(be->ctx, ua, "Nope", on_status, &d), &d);
	ck_assert_int_eq(d.status, IMAP_NONEXISTENT);
}
END_TEST

START_TEST(changes_are_told)
{
	struct heard h = { 0 };
	struct imap_select_info info;
	struct imap_mailbox *mb = select_mb(ua, "INBOX", false, &h, &info);
	free(info.msgs);

	deliver("Subject: new\n\nn\n");
	ck_assert_uint_eq(h.n, 1);
	ck_assert_int_eq(h.what[0], IMAP_CHANGE_NEW);
	ck_assert_uint_eq(h.first[0], 4);

	uint32_t uids[] = { 1, 2 };
	struct done d = { .h = &h };
	wait_done(be->flags(be->ctx, mb, uids, 2, IMAP_FLAGS_ADD, IMAP_SEEN, NULL, 0, on_done, &d), &d);
	ck_assert_int_eq(d.status, IMAP_OK);
	ck_assert_uint_eq(h.n, 3);
	ck_assert_uint_eq(d.heard_before, 3); /* told before the answer */
	ck_assert_int_eq(h.what[1], IMAP_CHANGE_FLAGS);
	ck_assert_uint_eq(h.first[1], 1);
	ck_assert_uint_eq(h.first[2], 2);
	struct imap_msg *v;
	size_t n;
	ck_assert_int_eq(be->mailbox_messages(be->ctx, mb, 1, 2, &v, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(v[0].flags, IMAP_SEEN);
	free(v);

	uint32_t three = 3;
	memset(&d, 0, sizeof(d));
	d.h = &h;
	wait_done(be->expunge(be->ctx, mb, &three, 1, on_done, &d), &d);
	ck_assert_int_eq(d.status, IMAP_OK);
	ck_assert_uint_eq(h.n, 4);
	ck_assert_int_eq(h.what[3], IMAP_CHANGE_EXPUNGE);
	ck_assert_uint_eq(h.first[3], 3);

	/* Deleted by another session: GONE. */
	struct done c = { 0 };
	wait_done(be->create(be->ctx, ua, "Tmp", on_done, &c), &c);
	ck_assert_int_eq(c.status, IMAP_OK);
	struct heard h2 = { 0 };
	struct imap_mailbox *tmp = select_mb(ua, "Tmp", false, &h2, &info);
	free(info.msgs);
	memset(&c, 0, sizeof(c));
	wait_done(be->delete_(be->ctx, ua, "Tmp", on_done, &c), &c);
	ck_assert_int_eq(c.status, IMAP_OK);
	ck_assert_uint_eq(h2.n, 1);
	ck_assert_int_eq(h2.what[0], IMAP_CHANGE_GONE);
	be->mailbox_close(be->ctx, tmp);
	be->mailbox_close(be->ctx, mb);
}
END_TEST

static void cache_put_done(struct store_cache_put *r)
{
	*(bool *)r->ctx = true;
}

START_TEST(mime_cache)
{
	/* Delivered messages are cached by the store as it writes them; one
	 * another program put in the Maildir is not. */
	char *maildir = tstore_maildir(&t, BOB);
	char *path = xasprintf("%s/new/1700000000.M2P2.other", maildir);
	write_file(path, contents[1]);
	char *path5 = xasprintf("%s/new/1700000001.M3P3.other", maildir);
	write_file(path5, contents[0]);
	struct heard h = { 0 };
	struct imap_select_info info;
	struct imap_mailbox *mb = select_mb(ua, "INBOX", false, &h, &info);
	ck_assert_uint_eq(info.n, 5);
	free(info.msgs);
	struct idx_mailbox rec;
	ck_assert_int_eq(tstore_mailbox_get(&t, BOB, "INBOX", &rec), 0);
	ck_assert(cached(rec.id, 1) && cached(rec.id, 2) && cached(rec.id, 3));
	ck_assert(!cached(rec.id, 4) && !cached(rec.id, 5));

	/* Asked again before the writer stored it (Thunderbird's
	 * BODY[n.MIME] right after BODYSTRUCTURE): not parsed again. */
	enum imap_status st5;
	struct mime_tree *t5 = be->message_tree(be->ctx, mb, 5, &st5);
	ck_assert_ptr_nonnull(t5);
	mime_tree_free(&t5);
	ck_assert_int_eq(unlink(path5), 0);
	t5 = be->message_tree(be->ctx, mb, 5, &st5);
	ck_assert_ptr_nonnull(t5);
	ck_assert_uint_eq(mime_tree_size(t5), strlen(contents[0]) + 4);
	mime_tree_free(&t5);
	free(path5);

	enum imap_status st = IMAP_TEMPFAIL;
	struct mime_tree *tr = be->message_tree(be->ctx, mb, 4, &st);
	ck_assert_ptr_nonnull(tr);
	ck_assert_uint_eq(tr->root->nchildren, 1);
	ck_assert_uint_eq(mime_tree_size(tr), strlen(contents[1]));
	mime_tree_free(&tr);
	run_idle();
	ck_assert(cached(rec.id, 4));

	/* A hit does not open the file: remove it and ask again. */
	ck_assert_int_eq(unlink(path), 0);
	tr = be->message_tree(be->ctx, mb, 4, &st);
	ck_assert_ptr_nonnull(tr);
	ck_assert_uint_eq(tr->root->nchildren, 1);
	mime_tree_free(&tr);
	/* The delivered one too, cached at delivery. */
	tr = be->message_tree(be->ctx, mb, 2, &st);
	ck_assert_ptr_nonnull(tr);
	ck_assert_uint_eq(tr->root->nchildren, 1);
	ck_assert_uint_eq(mime_tree_size(tr), strlen(contents[1]));
	mime_tree_free(&tr);

	/* A message that is gone. */
	ck_assert_ptr_null(be->message_tree(be->ctx, mb, 99, &st));
	ck_assert_int_eq(st, IMAP_GONE);

	/* Expunged: its entry goes in the same transaction. */
	uint32_t two = 2;
	struct done d = { 0 };
	wait_done(be->expunge(be->ctx, mb, &two, 1, on_done, &d), &d);
	ck_assert_int_eq(d.status, IMAP_OK);
	ck_assert(!cached(rec.id, 2));
	ck_assert(cached(rec.id, 1));

	/* Misses in a row go to the writer together. */
	MDB_txn *txn;
	char *error = NULL;
	ck_assert_int_eq(mdb_txn_begin(t.db->env, NULL, 0, &txn), 0);
	for (uint32_t uid = 1; uid <= 3; uid += 2) {
		unsigned char k[12] = { 0 };
		for (int i = 0; i < 8; i++)
			k[i] = (unsigned char)(rec.id >> (56 - 8 * i));
		k[11] = (unsigned char)uid;
		MDB_val key = { sizeof(k), k };
		ck_assert_int_eq(mdb_del(txn, t.db->mimecache, &key, NULL), 0);
	}
	ck_assert_int_eq(mdb_txn_commit(txn), 0);
	for (uint32_t uid = 1; uid <= 3; uid += 2) {
		tr = be->message_tree(be->ctx, mb, uid, &st);
		ck_assert_ptr_nonnull(tr);
		mime_tree_free(&tr);
	}
	run_idle();
	ck_assert(cached(rec.id, 1) && cached(rec.id, 3));

	/* The writer skips an entry whose message went meanwhile. */
	struct store_cache_entry e = { .mailbox_id = rec.id, .uid = 2, .data = "x", .len = 1 };
	bool written = false;
	struct store_cache_put put = { .entries = &e, .n = 1, .cb = cache_put_done, .ctx = &written };
	store_cache_put(t.st, &put);
	run_until(&written);
	ck_assert_uint_eq(put.written, 0);
	ck_assert(!cached(rec.id, 2));

	/* A record that does not read back is a miss, then replaced. */
	ck_assert_int_eq(mdb_txn_begin(t.db->env, NULL, 0, &txn), 0);
	ck_assert_int_eq(idx_mimecache_put(txn, t.db, rec.id, 3, "PBMT\x7f", 5, &error), 0);
	ck_assert_int_eq(mdb_txn_commit(txn), 0);
	tr = be->message_tree(be->ctx, mb, 3, &st);
	ck_assert_ptr_nonnull(tr);
	mime_tree_free(&tr);
	run_idle();
	MDB_val val;
	ck_assert_int_eq(mdb_txn_begin(t.db->env, NULL, MDB_RDONLY, &txn), 0);
	ck_assert_int_eq(idx_mimecache_get(txn, t.db, rec.id, 3, &val, &error), 0);
	ck_assert_uint_gt(val.mv_size, 5);
	mdb_txn_abort(txn);

	be->mailbox_close(be->ctx, mb);
	free(path);
	free(maildir);
}
END_TEST

START_TEST(mime_cache_forgotten)
{
	struct heard h = { 0 };
	struct imap_select_info info;
	struct imap_mailbox *mb = select_mb(ua, "INBOX", false, &h, &info);
	free(info.msgs);
	struct idx_mailbox rec;
	ck_assert_int_eq(tstore_mailbox_get(&t, BOB, "INBOX", &rec), 0);
	enum imap_status st;
	struct mime_tree *tr = be->message_tree(be->ctx, mb, 1, &st);
	mime_tree_free(&tr);
	run_idle();
	ck_assert(cached(rec.id, 1));
	be->mailbox_close(be->ctx, mb);

	/* reindex forgets the account: the cache goes with it. */
	MDB_txn *txn;
	char *error = NULL;
	ck_assert_int_eq(mdb_txn_begin(t.db->env, NULL, 0, &txn), 0);
	ck_assert_int_eq(idx_account_forget(txn, t.db, BOB, &error), 0);
	ck_assert_int_eq(mdb_txn_commit(txn), 0);
	ck_assert(!cached(rec.id, 1));
}
END_TEST

START_TEST(keyword_names)
{
	struct heard h = { 0 };
	struct imap_select_info info;
	struct imap_mailbox *mb = select_mb(ua, "INBOX", false, &h, &info);
	free(info.msgs);

	const char *const *names = be->mailbox_keywords(be->ctx, mb);
	for (int i = 0; i < IMAP_KEYWORDS_MAX; i++)
		ck_assert_ptr_null(names[i]);
	uint32_t uids[] = { 1, 3 };
	const char *kw[] = { "$label1", "Work" };
	struct done d = { 0 };
	wait_done(be->flags(be->ctx, mb, uids, 2, IMAP_FLAGS_ADD, IMAP_FLAGGED, kw, 2, on_done, &d), &d);
	ck_assert_int_eq(d.status, IMAP_OK);
	names = be->mailbox_keywords(be->ctx, mb);
	ck_assert_str_eq(names[0], "$label1");
	ck_assert_str_eq(names[1], "Work");
	const char *kept = names[0];

	struct imap_msg_info mi;
	ck_assert_int_eq(be->message_info(be->ctx, mb, 3, &mi), IMAP_OK);
	ck_assert_uint_eq(mi.keywords, 0x3);
	ck_assert_uint_eq(mi.flags, IMAP_FLAGGED);
	ck_assert_int_eq(be->message_info(be->ctx, mb, 2, &mi), IMAP_OK);
	ck_assert_uint_eq(mi.keywords, 0);

	/* The file: dovecot-keywords names them, file names carry letters. */
	char *maildir = tstore_maildir(&t, BOB);
	char *kwpath = xasprintf("%s/dovecot-keywords", maildir);
	struct keywords k;
	bool missing = true;
	char *error = NULL;
	ck_assert_int_eq(keywords_read(kwpath, &k, &missing, &error), 0);
	ck_assert(!missing);
	ck_assert_int_eq(keywords_lookup(&k, "work"), 1);
	keywords_free(&k);
	struct idx_mailbox rec;
	ck_assert_int_eq(tstore_mailbox_get(&t, BOB, "INBOX", &rec), 0);
	uint32_t *luids, *lflags;
	char **lnames;
	size_t n = tstore_list(&t, rec.id, &luids, &lnames, &lflags);
	ck_assert_uint_eq(n, 3);
	ck_assert_ptr_nonnull(strstr(lnames[0], ":2,Fab"));
	tstore_free_list(n, luids, lnames, lflags);

	/* Removing by a name, a known one case-insensitively; an unknown
	 * name removed is not added. Names handed out stay valid. */
	const char *rm[] = { "WORK", "Other" };
	memset(&d, 0, sizeof(d));
	wait_done(be->flags(be->ctx, mb, uids, 1, IMAP_FLAGS_REMOVE, 0, rm, 2, on_done, &d), &d);
	ck_assert_int_eq(d.status, IMAP_OK);
	ck_assert_int_eq(be->message_info(be->ctx, mb, 1, &mi), IMAP_OK);
	ck_assert_uint_eq(mi.keywords, 0x1);
	names = be->mailbox_keywords(be->ctx, mb);
	ck_assert_ptr_eq(names[0], kept);
	ck_assert_ptr_null(names[2]);

	be->mailbox_close(be->ctx, mb);
	free(kwpath);
	free(maildir);
}
END_TEST

START_TEST(append)
{
	static const char msg[] = "Subject: appended\r\n\r\nbody\r\n";
	const char *kw[] = { "Todo" };
	struct done d = { 0 };
	wait_done(be->append(be->ctx, ua, "Drafts", msg, strlen(msg), IMAP_SEEN | IMAP_DRAFT, kw, 1, 1000000000,
			     on_done, &d),
		  &d);
	ck_assert_int_eq(d.status, IMAP_OK);
	struct idx_mailbox rec;
	ck_assert_int_eq(tstore_mailbox_get(&t, BOB, "Drafts", &rec), 0);
	ck_assert_uint_eq(d.uidvalidity, rec.uidvalidity);
	ck_assert_uint_eq(d.n, 1);
	ck_assert_uint_eq(d.uids[0], 1);

	struct heard h = { 0 };
	struct imap_select_info info;
	struct imap_mailbox *mb = select_mb(ua, "Drafts", false, &h, &info);
	ck_assert_uint_eq(info.n, 1);
	ck_assert_uint_eq(info.msgs[0].flags, IMAP_SEEN | IMAP_DRAFT);
	ck_assert_uint_eq(info.msgs[0].keywords, 1);
	free(info.msgs);
	ck_assert_str_eq(be->mailbox_keywords(be->ctx, mb)[0], "Todo");
	struct imap_msg_info mi;
	ck_assert_int_eq(be->message_info(be->ctx, mb, 1, &mi), IMAP_OK);
	ck_assert_int_eq(mi.internal_date, 1000000000);
	ck_assert_uint_eq(mi.size, strlen(msg));
	/* The flags are in the file name, as the Maildir is the truth. */
	char *maildir = tstore_maildir(&t, BOB);
	char *drafts = xasprintf("%s/.Drafts", maildir);
	ck_assert_uint_eq(tstore_count_files(drafts, "cur"), 1);
	ck_assert_uint_eq(tstore_count_files(drafts, "new"), 0);
	be->mailbox_close(be->ctx, mb);

	/* No flags: stays in new/. Into a mailbox that is not there:
	 * NONEXISTENT (the session says TRYCREATE). */
	memset(&d, 0, sizeof(d));
	wait_done(be->append(be->ctx, ua, "Drafts", msg, strlen(msg), 0, NULL, 0, 0, on_done, &d), &d);
	ck_assert_int_eq(d.status, IMAP_OK);
	ck_assert_uint_eq(d.uids[0], 2);
	ck_assert_uint_eq(tstore_count_files(drafts, "new"), 1);
	memset(&d, 0, sizeof(d));
	wait_done(be->append(be->ctx, ua, "Nope", msg, strlen(msg), 0, NULL, 0, 0, on_done, &d), &d);
	ck_assert_int_eq(d.status, IMAP_NONEXISTENT);
	/* No spool files are left. */
	char *spool = xasprintf("%s/spool", t.dir);
	ck_assert_uint_eq(tstore_count_files(spool, "."), 0);
	free(spool);
	free(drafts);
	free(maildir);
}
END_TEST

START_TEST(copy_and_move)
{
	struct heard h = { 0 }, ht = { 0 };
	struct imap_select_info info, tinfo;
	struct imap_mailbox *mb = select_mb(ua, "INBOX", false, &h, &info);
	free(info.msgs);
	struct imap_mailbox *tb = select_mb(ua, "Archive", false, &ht, &tinfo);
	free(tinfo.msgs);
	struct idx_mailbox arch, trash;
	ck_assert_int_eq(tstore_mailbox_get(&t, BOB, "Archive", &arch), 0);

	/* Keyword letters are per folder: $a is INBOX's a, Archive's b. */
	char *maildir = tstore_maildir(&t, BOB);
	char *akw = xasprintf("%s/.Archive/dovecot-keywords", maildir);
	write_file(akw, "0 $b\n");
	free(akw);
	free(maildir);
	uint32_t uids[] = { 1, 2 };
	const char *kw[] = { "$a" };
	struct done d = { 0 };
	wait_done(be->flags(be->ctx, mb, uids, 1, IMAP_FLAGS_ADD, 0, kw, 1, on_done, &d), &d);
	ck_assert_int_eq(d.status, IMAP_OK);
	ck_assert_uint_eq(h.n, 1);
	h.n = 0;

	memset(&d, 0, sizeof(d));
	wait_done(be->copy(be->ctx, mb, uids, 2, "Archive", false, on_done, &d), &d);
	ck_assert_int_eq(d.status, IMAP_OK);
	ck_assert_uint_eq(d.uidvalidity, arch.uidvalidity);
	ck_assert_uint_eq(d.n, 2);
	ck_assert_uint_eq(d.uids[0], 1);
	ck_assert_uint_eq(d.uids[1], 2);
	ck_assert_uint_eq(ht.n, 1);
	ck_assert_int_eq(ht.what[0], IMAP_CHANGE_NEW);
	ck_assert_uint_eq(ht.first[0], 1);
	ck_assert_uint_eq(ht.last[0], 2);
	ck_assert_uint_eq(h.n, 0);
	struct imap_msg *v;
	size_t n;
	ck_assert_int_eq(be->mailbox_messages(be->ctx, tb, 1, 0, &v, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(v[0].keywords, 0x2);
	ck_assert_uint_eq(v[1].keywords, 0);
	free(v);
	const char *const *names = be->mailbox_keywords(be->ctx, tb);
	ck_assert_str_eq(names[0], "$b");
	ck_assert_str_eq(names[1], "$a");

	uint32_t three = 3;
	memset(&d, 0, sizeof(d));
	wait_done(be->copy(be->ctx, mb, &three, 1, "Trash", true, on_done, &d), &d);
	ck_assert_int_eq(d.status, IMAP_OK);
	ck_assert_int_eq(tstore_mailbox_get(&t, BOB, "Trash", &trash), 0);
	ck_assert_uint_eq(d.uidvalidity, trash.uidvalidity);
	ck_assert_uint_eq(d.uids[0], 1);
	ck_assert_uint_eq(h.n, 1);
	ck_assert_int_eq(h.what[0], IMAP_CHANGE_EXPUNGE);
	ck_assert_uint_eq(h.first[0], 3);

	memset(&d, 0, sizeof(d));
	wait_done(be->copy(be->ctx, mb, uids, 1, "Nope", false, on_done, &d), &d);
	ck_assert_int_eq(d.status, IMAP_NONEXISTENT);

	/* Over quota: nothing copied. */
	be->mailbox_close(be->ctx, mb);
	mb = NULL;
	struct user u;
	char *error = NULL;
	ck_assert_int_eq(userdb_get(t.db, BOB, &u, &error), 0);
	u.quota_messages = 5;
	ck_assert_int_eq(userdb_put(t.db, &u, &error), 0);
	user_free(&u);
	enum imap_status st;
	struct imap_account *a2 = be->account_open(be->ctx, BOB, &st);
	ck_assert_ptr_nonnull(a2);
	struct heard h2 = { 0 };
	mb = select_mb(a2, "INBOX", false, &h2, &info);
	free(info.msgs);
	memset(&d, 0, sizeof(d));
	wait_done(be->copy(be->ctx, mb, uids, 2, "Archive", false, on_done, &d), &d);
	ck_assert_int_eq(d.status, IMAP_OVERQUOTA);
	be->mailbox_close(be->ctx, mb);
	be->mailbox_close(be->ctx, tb);
	be->account_close(be->ctx, a2);
}
END_TEST

START_TEST(folders)
{
	struct done d = { 0 };
	wait_done(be->create(be->ctx, ua, "A/B", on_done, &d), &d);
	ck_assert_int_eq(d.status, IMAP_OK);
	memset(&d, 0, sizeof(d));
	wait_done(be->create(be->ctx, ua, "A", on_done, &d), &d);
	ck_assert_int_eq(d.status, IMAP_ALREADYEXISTS);
	memset(&d, 0, sizeof(d));
	wait_done(be->delete_(be->ctx, ua, "INBOX", on_done, &d), &d);
	ck_assert_int_eq(d.status, IMAP_CANNOT);
	memset(&d, 0, sizeof(d));
	wait_done(be->rename(be->ctx, ua, "A", "C", on_done, &d), &d);
	ck_assert_int_eq(d.status, IMAP_OK);
	memset(&d, 0, sizeof(d));
	wait_done(be->delete_(be->ctx, ua, "A", on_done, &d), &d);
	ck_assert_int_eq(d.status, IMAP_NONEXISTENT);

	struct imap_mailbox_info *v;
	size_t n;
	ck_assert_int_eq(be->list(be->ctx, ua, &v, &n), 0);
	bool c = false, cb = false;
	for (size_t i = 0; i < n; i++) {
		c |= strcmp(v[i].name, "C") == 0 && v[i].has_children && v[i].exists;
		cb |= strcmp(v[i].name, "C/B") == 0 && !v[i].has_children;
		ck_assert(strcmp(v[i].name, "A") != 0);
	}
	ck_assert(c && cb);
	imap_mailbox_info_free(v, n);
}
END_TEST

START_TEST(new_account)
{
	/* Nothing delivered yet: LIST right after login already shows the
	 * folders the store makes for a new account, and they are there for
	 * the next request. */
	enum imap_status st;
	add_user("dave@example.test", "dave pw");
	struct imap_account *a = be->account_open(be->ctx, "dave@example.test", &st);
	ck_assert_ptr_nonnull(a);
	struct imap_mailbox_info *v;
	size_t n;
	ck_assert_int_eq(be->list(be->ctx, a, &v, &n), 0);
	const char *want[] = { "Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash" };
	const uint32_t use[] = { IMAP_USE_ARCHIVE, IMAP_USE_DRAFTS, 0, IMAP_USE_JUNK, IMAP_USE_SENT, IMAP_USE_TRASH };
	ck_assert_uint_eq(n, 6);
	for (size_t i = 0; i < n; i++) {
		ck_assert_str_eq(v[i].name, want[i]);
		ck_assert_uint_eq(v[i].special, use[i]);
		ck_assert(v[i].exists);
	}
	imap_mailbox_info_free(v, n);
	struct heard h = { 0 };
	struct imap_select_info info;
	struct imap_mailbox *mb = select_mb(a, "Sent", false, &h, &info);
	ck_assert_uint_eq(info.special, IMAP_USE_SENT);
	free(info.msgs);
	be->mailbox_close(be->ctx, mb);
	ck_assert_int_eq(be->list(be->ctx, a, &v, &n), 0);
	ck_assert_uint_eq(n, 6);
	ck_assert_uint_eq(v[4].special, IMAP_USE_SENT);
	ck_assert(v[4].subscribed);
	imap_mailbox_info_free(v, n);
	be->account_close(be->ctx, a);
}
END_TEST

START_TEST(session_limit)
{
	struct imap_account *more[2];
	enum imap_status st;

	t.cfg.imap_max_sessions_per_account = 3;
	for (size_t i = 0; i < 2; i++) {
		more[i] = be->account_open(be->ctx, BOB, &st);
		ck_assert_ptr_nonnull(more[i]);
	}
	ck_assert_ptr_null(be->account_open(be->ctx, BOB, &st));
	ck_assert_int_eq(st, IMAP_LIMIT);
	/* Counted per account, case-insensitively. */
	ck_assert_ptr_null(be->account_open(be->ctx, "BOB@example.test", &st));
	ck_assert_int_eq(st, IMAP_LIMIT);
	be->account_close(be->ctx, more[0]);
	more[0] = be->account_open(be->ctx, BOB, &st);
	ck_assert_ptr_nonnull(more[0]);
	for (size_t i = 0; i < 2; i++)
		be->account_close(be->ctx, more[i]);
	/* An account that is not there. */
	ck_assert_ptr_null(be->account_open(be->ctx, "nobody@example.test", &st));
	ck_assert_int_eq(st, IMAP_TEMPFAIL);
}
END_TEST

START_TEST(cancelled)
{
	/* Every kind of request, cancelled at once: no callback, and the
	 * store still finishes each (the expunge happens). */
	struct done d = { 0 };
	struct selected s = { 0 };
	struct heard h = { 0 };
	struct imap_select_info info;
	struct imap_mailbox *mb = select_mb(ua, "INBOX", false, &h, &info);
	free(info.msgs);

	void *hs[6];
	uint32_t one = 1;
	static const char msg[] = "Subject: x\n\ny\n";
	const char *kw[] = { "K" };
	hs[0] = be->mailbox_select(be->ctx, ua, "INBOX", false, on_change, &h, on_select, &s);
	hs[1] = be->status(be->ctx, ua, "INBOX", on_status, &d);
	hs[2] = be->create(be->ctx, ua, "New", on_done, &d);
	hs[3] = be->append(be->ctx, ua, "INBOX", msg, strlen(msg), IMAP_SEEN, kw, 1, 0, on_done, &d);
	hs[4] = be->expunge(be->ctx, mb, &one, 1, on_done, &d);
	hs[5] = be->flags(be->ctx, mb, &one, 1, IMAP_FLAGS_ADD, IMAP_SEEN, kw, 1, on_done, &d);
	for (size_t i = 0; i < 6; i++) {
		ck_assert_ptr_nonnull(hs[i]);
		be->cancel(be->ctx, hs[i]);
	}
	be->mailbox_close(be->ctx, mb);
	run_idle();
	ck_assert(!d.called && !s.called);
	struct idx_mailbox rec;
	ck_assert_int_eq(tstore_mailbox_get(&t, BOB, "INBOX", &rec), 0);
	ck_assert_uint_eq(rec.count, 3); /* one expunged, one appended */
	ck_assert_int_eq(tstore_mailbox_get(&t, BOB, "New", &rec), 0);
}
END_TEST

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

START_TEST(select_large)
{
	/* 100,000 index records (their files are not needed to load them):
	 * SELECT reads them in one read transaction. */
	enum { N = 100000 };
	struct idx_mailbox rec;
	ck_assert_int_eq(tstore_mailbox_get(&t, BOB, "Archive", &rec), 0);
	MDB_txn *txn;
	char *error = NULL;
	ck_assert_int_eq(mdb_txn_begin(t.db->env, NULL, 0, &txn), 0);
	for (uint32_t uid = 1; uid <= N; uid++) {
		char name[64];
		snprintf(name, sizeof(name), "17000%05u.M1P1.test,S=100,W=104:2,%s", uid, uid % 3 ? "S" : "");
		struct idx_message m = {
			.uid = uid, .flags = uid % 3 ? IDX_SEEN : 0, .size = 100, .vsize = 104,
			.internal_date = 1700000000, .name = name,
		};
		ck_assert_int_eq(idx_message_put(txn, t.db, rec.id, &m, &error), 0);
	}
	rec.uidnext = N + 1;
	rec.count = N;
	ck_assert_int_eq(idx_mailbox_put(txn, t.db, BOB, "Archive", &rec, &error), 0);
	ck_assert_int_eq(mdb_txn_commit(txn), 0);

	struct heard h = { 0 };
	struct imap_select_info info;
	uint64_t start = now_ms();
	struct imap_mailbox *mb = select_mb(ua, "Archive", false, &h, &info);
	uint64_t took = now_ms() - start;
	ck_assert_uint_eq(info.n, N);
	ck_assert_uint_eq(info.uidnext, N + 1);
	ck_assert_uint_eq(info.msgs[N - 1].uid, N);
	ck_assert_uint_eq(info.msgs[2].flags, 0);
	ck_assert_uint_eq(info.msgs[3].flags, IMAP_SEEN);
	/* Well under a second on any machine that runs the suite; the
	 * bound is loose so a busy machine does not fail it. */
	ck_assert_msg(took < 1000, "SELECT of %d messages took %llu ms", N, (unsigned long long)took);
	free(info.msgs);

	/* FETCH 1:* (ENVELOPE BODYSTRUCTURE) on a cached folder: a record
	 * and a cached tree per message. The files do not exist, so every
	 * tree comes from the cache. */
	struct buf ser;
	buf_init(&ser, 1 << 20);
	struct mime_tree *tr = mime_parse(contents[1], strlen(contents[1]));
	ck_assert_int_eq(mime_tree_serialize(tr, &ser), 0);
	mime_tree_free(&tr);
	ck_assert_int_eq(mdb_txn_begin(t.db->env, NULL, 0, &txn), 0);
	for (uint32_t uid = 1; uid <= N; uid++)
		ck_assert_int_eq(idx_mimecache_put(txn, t.db, rec.id, uid, buf_ptr(&ser), buf_len(&ser), &error), 0);
	ck_assert_int_eq(mdb_txn_commit(txn), 0);
	buf_free(&ser);
	start = now_ms();
	for (uint32_t uid = 1; uid <= N; uid++) {
		struct imap_msg_info mi;
		enum imap_status st;
		ck_assert_int_eq(be->message_info(be->ctx, mb, uid, &mi), IMAP_OK);
		tr = be->message_tree(be->ctx, mb, uid, &st);
		ck_assert_ptr_nonnull(tr);
		mime_tree_free(&tr);
	}
	took = now_ms() - start;
	ck_assert_msg(took < 5000, "%d cached trees took %llu ms", N, (unsigned long long)took);
	be->mailbox_close(be->ctx, mb);
}
END_TEST

static Suite *imap_backend_suite(void)
{
	Suite *s = suite_create("imap_backend");
	TCase *tc = tcase_create("backend");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, list_adopted_and_subscriptions);
	tcase_add_test(tc, select_flags_keywords);
	tcase_add_test(tc, recent_claimed_once);
	tcase_add_test(tc, status_counts);
	tcase_add_test(tc, changes_are_told);
	tcase_add_test(tc, mime_cache);
	tcase_add_test(tc, mime_cache_forgotten);
	tcase_add_test(tc, keyword_names);
	tcase_add_test(tc, append);
	tcase_add_test(tc, copy_and_move);
	tcase_add_test(tc, folders);
	tcase_add_test(tc, new_account);
	tcase_add_test(tc, session_limit);
	tcase_add_test(tc, cancelled);
	tcase_add_test(tc, select_large);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run(imap_backend_suite());
}
