#include "storeutil.h"

#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/xalloc.h"

static void tstore_open_parts(struct tstore *t)
{
	char *error = NULL;
	ck_assert_int_eq(uv_loop_init(&t->loop), 0);
	if (db_open(t->dir, t->cfg.index_map_size, &t->db, &error) < 0)
		ck_abort_msg("db_open: %s", error);
	if (store_open(&t->loop, &t->cfg, t->db, &t->st, &error) < 0)
		ck_abort_msg("store_open: %s", error);
}

void tstore_open(struct tstore *t)
{
	char tmpl[] = "/tmp/postbote-store-XXXXXX";
	memset(t, 0, sizeof(*t));
	ck_assert_ptr_nonnull(mkdtemp(tmpl));
	t->dir = xstrdup(tmpl);
	config_defaults(&t->cfg);
	free(t->cfg.data_dir);
	t->cfg.data_dir = xstrdup(t->dir);
	free(t->cfg.hostname);
	t->cfg.hostname = xstrdup("test.example");
	t->cfg.index_map_size = 64 << 20;
	t->cfg.delivery_log_size = 4 << 20;
	tstore_open_parts(t);
}

void tstore_reopen(struct tstore *t)
{
	tstore_open_parts(t);
}

void tstore_close(struct tstore *t)
{
	store_close(&t->st);
	db_close(&t->db);
	uv_run(&t->loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uv_loop_close(&t->loop), 0);
}

void tstore_destroy(struct tstore *t)
{
	tstore_close(t);
	char *cmd = xasprintf("rm -rf '%s'", t->dir);
	ck_assert_int_eq(system(cmd), 0);
	free(cmd);
	free(t->dir);
	config_free(&t->cfg);
}

char *tstore_spool(struct tstore *t, const char *content, size_t len)
{
	static unsigned n;
	char *path = xasprintf("%s/spool-%u", t->dir, ++n);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, content, len), (ssize_t)len);
	close(fd);
	return path;
}

char *tstore_maildir(struct tstore *t, const char *account)
{
	const char *at = strchr(account, '@');
	return xasprintf("%s/mail/%s/%.*s", t->dir, at + 1, (int)(at - account), account);
}

static void tstore_done(struct store_delivery *d)
{
	*(bool *)d->ctx = true;
}

enum store_result tstore_deliver(struct tstore *t, const char *content, const char *const *accounts,
				 size_t n, uint64_t quota_bytes, uint64_t quota_messages,
				 struct store_rcpt *rcpts_r)
{
	struct store_rcpt *rcpts = xcalloc(n, sizeof(*rcpts));
	char **maildirs = xcalloc(n, sizeof(*maildirs));
	bool done = false;
	for (size_t i = 0; i < n; i++) {
		maildirs[i] = tstore_maildir(t, accounts[i]);
		rcpts[i] = (struct store_rcpt){ .account = accounts[i], .maildir = maildirs[i], .mailbox = "INBOX",
						.quota_bytes = quota_bytes, .quota_messages = quota_messages };
	}
	char *spool = tstore_spool(t, content, strlen(content));
	struct store_delivery d = { .spool_path = spool, .rcpts = rcpts, .n_rcpts = n, .cb = tstore_done,
				    .ctx = &done };
	store_deliver(t->st, &d);
	while (!done)
		uv_run(&t->loop, UV_RUN_ONCE);
	unlink(spool);
	free(spool);
	if (rcpts_r)
		memcpy(rcpts_r, rcpts, n * sizeof(*rcpts));
	for (size_t i = 0; i < n; i++)
		free(maildirs[i]);
	free(maildirs);
	free(rcpts);
	return d.result;
}

static void tstore_opened(struct store_open_req *r)
{
	*(bool *)r->ctx = true;
}

enum store_result tstore_open_mailbox(struct tstore *t, const char *account, const char *mailbox,
				      struct store_open_req *r_out)
{
	bool done = false;
	char *maildir = tstore_maildir(t, account);
	struct store_open_req r = { .account = account, .maildir = maildir, .mailbox = mailbox,
				    .cb = tstore_opened, .ctx = &done };
	store_mailbox_open(t->st, &r);
	while (!done)
		uv_run(&t->loop, UV_RUN_ONCE);
	free(maildir);
	*r_out = r;
	return r.result;
}

struct list_ctx {
	size_t n;
	uint32_t *uids, *flags;
	char **names;
};

static int list_one(const struct idx_message *m, void *ctx)
{
	struct list_ctx *l = ctx;
	l->uids = xrealloc(l->uids, (l->n + 1) * sizeof(*l->uids));
	l->flags = xrealloc(l->flags, (l->n + 1) * sizeof(*l->flags));
	l->names = xrealloc(l->names, (l->n + 1) * sizeof(*l->names));
	l->uids[l->n] = m->uid;
	l->flags[l->n] = m->flags;
	l->names[l->n] = xstrdup(m->name);
	l->n++;
	return 0;
}

size_t tstore_list(struct tstore *t, uint64_t mailbox_id, uint32_t **uids_r, char ***names_r,
		   uint32_t **flags_r)
{
	MDB_txn *txn;
	char *error = NULL;
	struct list_ctx l = { 0 };
	ck_assert_int_eq(mdb_txn_begin(t->db->env, NULL, MDB_RDONLY, &txn), 0);
	ck_assert_int_eq(idx_message_each(txn, t->db, mailbox_id, 1, list_one, &l, &error), 0);
	mdb_txn_abort(txn);
	*uids_r = l.uids;
	*names_r = l.names;
	*flags_r = l.flags;
	return l.n;
}

void tstore_free_list(size_t n, uint32_t *uids, char **names, uint32_t *flags)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(uids);
	free(flags);
}

size_t tstore_count_files(const char *dir, const char *sub)
{
	char *p = xasprintf("%s/%s", dir, sub);
	DIR *d = opendir(p);
	size_t n = 0;
	struct dirent *de;
	free(p);
	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static void tstore_op_done(struct store_op *op)
{
	*(bool *)op->ctx = true;
}

enum store_result tstore_op(struct tstore *t, struct store_op *op)
{
	bool done = false;
	char *maildir = NULL;
	if (op->maildir == NULL)
		op->maildir = maildir = tstore_maildir(t, op->account);
	op->cb = tstore_op_done;
	op->ctx = &done;
	store_op(t->st, op);
	while (!done)
		uv_run(&t->loop, UV_RUN_ONCE);
	if (maildir != NULL) {
		op->maildir = NULL;
		free(maildir);
	}
	return op->result;
}

int tstore_mailbox_get(struct tstore *t, const char *account, const char *mailbox, struct idx_mailbox *mb_r)
{
	MDB_txn *txn;
	char *error = NULL;
	ck_assert_int_eq(mdb_txn_begin(t->db->env, NULL, MDB_RDONLY, &txn), 0);
	int rc = idx_mailbox_get(txn, t->db, account, mailbox, mb_r, &error);
	mdb_txn_abort(txn);
	ck_assert_msg(rc >= 0, "idx_mailbox_get: %s", error ? error : "?");
	return rc;
}
