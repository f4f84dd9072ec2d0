/*
 * Folder operations on the writer thread: CREATE, DELETE, RENAME,
 * SUBSCRIBE and UNSUBSCRIBE, and the Maildir++ "subscriptions" file they
 * keep. They change whole mailbox directories and records rather than
 * messages, so they live apart from the message operations of store_ops.c,
 * whose dispatcher calls them and whose rules they keep (checkpoint before
 * a file the delivery log may name leaves its path; every undoable file
 * change goes on the op's undo list; no loop-side state touched).
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "core/fileio.h"
#include "core/xalloc.h"
#include "maildir/layout.h"
#include "maildir/store_ops_private.h"
#include "maildir/store_private.h"
#include "maildir/uidlist.h"

/* Largest subscriptions file read (a name is at most 512 octets). */
#define STORE_SUBS_MAX (4u * 1024 * 1024)
#define STORE_SUBS_NAME "subscriptions"

static bool op_is_inbox(const char *mailbox)
{
	return strcasecmp(mailbox, "INBOX") == 0;
}

/* ---------------------------------------------------------------- */
/* CREATE, DELETE, RENAME                                            */

static bool op_box_exists(struct store__op_ctx *c, const char *name, enum store_result *err_r)
{
	struct idx_mailbox mb;
	int rc = idx_mailbox_get(c->txn, c->st->db, c->op->account, store__op_key(name), &mb, &c->error);
	if (rc < 0) {
		*err_r = STORE_TEMPFAIL;
		return false;
	}
	if (rc == 0)
		return true;
	char *dir = layout_mailbox_dir(c->op->maildir, name);
	struct stat sb;
	bool on_disk = dir != NULL && stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode);
	free(dir);
	return on_disk;
}

/* Make name and every missing parent (RFC 3501 6.3.3: "a/b/c" creates
 * "a" and "a/b" too). Existing levels are left alone. */
static enum store_result op_create_levels(struct store__op_ctx *c, const char *name)
{
	size_t len = strlen(name);
	for (size_t i = 0; i <= len; i++) {
		if (name[i] != '/' && name[i] != '\0')
			continue;
		char *level = xstrndup(name, i);
		struct idx_mailbox mb;
		int rc = idx_mailbox_get(c->txn, c->st->db, c->op->account, level, &mb, &c->error);
		enum store_result r = rc < 0 ? STORE_TEMPFAIL : STORE_OK;
		if (rc == 1) {
			struct store__op_box b = { 0 };
			r = store__op_box_open(c, level, true, &b);
			store__op_box_free(&b);
		}
		free(level);
		if (r != STORE_OK)
			return r == STORE_NO_MAILBOX ? STORE_NOT_ALLOWED : r;
	}
	return STORE_OK;
}

enum store_result store__op_create(struct store__op_ctx *c)
{
	const char *name = c->op->mailbox;
	enum store_result err = STORE_OK;

	if (op_is_inbox(name))
		return STORE_EXISTS;
	if (!layout_name_valid(name))
		return STORE_NOT_ALLOWED;
	if (op_box_exists(c, name, &err))
		return STORE_EXISTS;
	if (err != STORE_OK)
		return err;
	return op_create_levels(c, name);
}

struct op_names {
	const char *prefix;        /* "NAME/" */
	size_t prefix_len;
	char **names;
	size_t n;
};

static int op_collect_children(const char *name, const struct idx_mailbox *mb, void *ctx)
{
	struct op_names *l = ctx;
	(void)mb;
	if (strncmp(name, l->prefix, l->prefix_len) == 0) {
		l->names = xrealloc(l->names, (l->n + 1) * sizeof(*l->names));
		l->names[l->n++] = xstrdup(name);
	}
	return 0;
}

static void op_names_free(struct op_names *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->names[i]);
	free(l->names);
	l->names = NULL;
	l->n = 0;
}

/* Directory entries of the Maildir root whose names start with prefix
 * (".A." for the children of A). */
static int op_disk_children(const char *root, const char *prefix, char ***names_r, size_t *n_r)
{
	DIR *d = opendir(root);
	size_t plen = strlen(prefix);
	*names_r = NULL;
	*n_r = 0;
	if (d == NULL)
		return errno == ENOENT ? 0 : -1;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, prefix, plen) != 0)
			continue;
		*names_r = xrealloc(*names_r, (*n_r + 1) * sizeof(**names_r));
		(*names_r)[(*n_r)++] = xstrdup(de->d_name);
	}
	closedir(d);
	return 0;
}

static void op_strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

enum store_result store__op_delete(struct store__op_ctx *c)
{
	struct store_op *op = c->op;
	const char *name = op->mailbox;
	struct store__op_box b = { 0 };

	if (op_is_inbox(name))
		return STORE_NOT_ALLOWED;
	if (!layout_name_valid(name))
		return STORE_NO_MAILBOX;
	enum store_result r = store__op_box_open(c, name, false, &b);
	if (r != STORE_OK)
		return r;
	r = STORE_TEMPFAIL;

	/* RFC 3501 6.3.4 lets a server refuse to delete a mailbox with
	 * inferior names; we do, rather than keep a \Noselect shell. */
	struct op_names kids = { .prefix = NULL };
	char *prefix = xasprintf("%s/", name);
	kids.prefix = prefix;
	kids.prefix_len = strlen(prefix);
	int rc = idx_mailbox_each(c->txn, c->st->db, op->account, op_collect_children, &kids, &c->error);
	size_t n_kids = kids.n;
	op_names_free(&kids);
	free(prefix);
	if (rc < 0)
		goto out;
	char *disk_prefix = xasprintf("%s.", store__op_dir_base(b.dir));
	char **disk = NULL;
	size_t n_disk = 0;
	rc = op_disk_children(op->maildir, disk_prefix, &disk, &n_disk);
	free(disk_prefix);
	op_strv_free(disk, n_disk);
	if (rc < 0) {
		c->error = xasprintf("%s: %s", op->maildir, strerror(errno));
		goto out;
	}
	if (n_kids > 0 || n_disk > 0) {
		r = STORE_NOT_ALLOWED;
		goto out;
	}

	/* Its files leave the paths the delivery log names. */
	if (store__checkpoint(c->st, &c->error) < 0)
		goto out;
	if (idx_message_del_all(c->txn, c->st->db, b.mb.id, &c->error) < 0 ||
	    idx_mailbox_del(c->txn, c->st->db, op->account, b.name, &c->error) < 0 ||
	    (b.mb.count > 0 &&
	     idx_usage_add(c->txn, c->st->db, op->account, -(int64_t)b.mb.bytes, -(int64_t)b.mb.count,
			   &c->error) < 0))
		goto out;

	/* One rename takes the folder away at once (no client ever sees it
	 * half deleted); the removal follows at leisure. */
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	char *trash = xasprintf("%s/..DELETED.%lld.%ld.%llu", op->maildir, (long long)ts.tv_sec, ts.tv_nsec,
				(unsigned long long)++c->st->counter);
	if (rename(b.dir, trash) < 0) {
		c->error = xasprintf("rename %s: %s", b.dir, strerror(errno));
		free(trash);
		goto out;
	}
	store__op_undo_add(c, b.dir, trash);
	if (store__op_fsync_dir(c, op->maildir, NULL) < 0) {
		free(trash);
		goto out;
	}
	free(trash);
	store__op_event(op, b.name, STORE_EVENT_GONE, 0, 0);
	r = STORE_OK;
out:
	store__op_box_free(&b);
	return r;
}

struct op_uids {
	uint32_t *v;
	size_t n, cap;
};

static int op_collect_uid(const struct idx_message *m, void *ctx)
{
	struct op_uids *l = ctx;
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
	}
	l->v[l->n++] = m->uid;
	return 0;
}

/* RFC 3501 6.3.5: renaming INBOX moves all of its messages to the new
 * name and leaves INBOX there, empty. */
static enum store_result op_rename_inbox(struct store__op_ctx *c)
{
	struct store_op *op = c->op;
	enum store_result err = STORE_OK;
	struct store__op_box b = { 0 };

	if (op_box_exists(c, op->target, &err))
		return STORE_EXISTS;
	if (err != STORE_OK)
		return err;
	enum store_result r = op_create_levels(c, op->target);
	if (r != STORE_OK)
		return r;
	r = store__op_box_open(c, "INBOX", false, &b);
	if (r != STORE_OK)
		return r;
	struct op_uids uids = { 0 };
	int rc = idx_message_each(c->txn, c->st->db, b.mb.id, 1, op_collect_uid, &uids, &c->error);
	store__op_box_free(&b);
	if (rc < 0) {
		free(uids.v);
		return STORE_TEMPFAIL;
	}
	uint32_t *new_uids = xcalloc(uids.n ? uids.n : 1, sizeof(*new_uids));
	uint32_t uidvalidity = 0;
	size_t done = 0;
	struct store__op_xfer x = {
		.uids = uids.v, .n = uids.n, .move = true, .new_uids = new_uids,
		.uidvalidity_r = &uidvalidity, .done_r = &done,
	};
	r = store__op_xfer(c, "INBOX", op->target, &x);
	op->done = done;
	free(new_uids);
	free(uids.v);
	return r;
}

struct op_pair {
	char *from, *to;
};

static void op_pairs_free(struct op_pair *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].from);
		free(v[i].to);
	}
	free(v);
}

enum store_result store__op_rename(struct store__op_ctx *c)
{
	struct store_op *op = c->op;
	const char *src = op->mailbox, *dst = op->target;
	enum store_result err = STORE_OK;

	if (dst == NULL || !layout_name_valid(dst))
		return STORE_NOT_ALLOWED;
	if (op_is_inbox(dst))
		return STORE_EXISTS;
	if (op_is_inbox(src))
		return op_rename_inbox(c);
	if (!layout_name_valid(src))
		return STORE_NO_MAILBOX;

	struct store__op_box b = { 0 };
	enum store_result r = store__op_box_open(c, src, false, &b);
	if (r != STORE_OK)
		return r;
	size_t src_len = strlen(src), dst_len = strlen(dst);
	if (strncmp(dst, src, src_len) == 0 && (dst[src_len] == '/' || dst[src_len] == '\0')) {
		store__op_box_free(&b);
		return strcmp(dst, src) == 0 ? STORE_EXISTS : STORE_NOT_ALLOWED; /* into itself */
	}
	if (op_box_exists(c, dst, &err)) {
		store__op_box_free(&b);
		return STORE_EXISTS;
	}
	if (err != STORE_OK) {
		store__op_box_free(&b);
		return err;
	}
	r = STORE_TEMPFAIL;

	/* The records: src and every "src/..." child. */
	struct op_names kids = { 0 };
	char *prefix = xasprintf("%s/", src);
	kids.prefix = prefix;
	kids.prefix_len = src_len + 1;
	struct op_pair *recs = NULL, *dirs = NULL;
	size_t n_recs = 0, n_dirs = 0;
	char **disk = NULL;
	size_t n_disk = 0;
	char *dst_dir = layout_mailbox_dir(op->maildir, dst);
	char *disk_prefix = xasprintf("%s.", store__op_dir_base(b.dir));
	const char *src_base = store__op_dir_base(b.dir), *dst_base = store__op_dir_base(dst_dir);

	if (idx_mailbox_each(c->txn, c->st->db, op->account, op_collect_children, &kids, &c->error) < 0)
		goto out;
	recs = xcalloc(kids.n + 1, sizeof(*recs));
	recs[n_recs++] = (struct op_pair){ xstrdup(src), xstrdup(dst) };
	for (size_t i = 0; i < kids.n; i++) {
		recs[n_recs].from = xstrdup(kids.names[i]);
		recs[n_recs].to = xasprintf("%.*s%s", (int)dst_len, dst, kids.names[i] + src_len);
		n_recs++;
	}
	for (size_t i = 1; i < n_recs; i++) {
		if (op_box_exists(c, recs[i].to, &err)) {
			r = STORE_EXISTS;
			goto out;
		}
		if (err != STORE_OK)
			goto out;
	}

	/* The directories: ".src" and every ".src.x" on disk, indexed or
	 * not (a folder another program made is a child all the same). */
	if (op_disk_children(op->maildir, disk_prefix, &disk, &n_disk) < 0) {
		c->error = xasprintf("%s: %s", op->maildir, strerror(errno));
		goto out;
	}
	dirs = xcalloc(n_disk + 1, sizeof(*dirs));
	dirs[n_dirs].from = xstrdup(b.dir);
	dirs[n_dirs].to = xstrdup(dst_dir);
	n_dirs++;
	for (size_t i = 0; i < n_disk; i++) {
		dirs[n_dirs].from = xasprintf("%s/%s", op->maildir, disk[i]);
		dirs[n_dirs].to = xasprintf("%s/%s%s", op->maildir, dst_base, disk[i] + strlen(src_base));
		struct stat sb;
		if (stat(dirs[n_dirs].to, &sb) == 0) {
			n_dirs++;
			r = STORE_EXISTS;
			goto out;
		}
		n_dirs++;
	}

	/* Files leave the paths the delivery log names. */
	if (store__checkpoint(c->st, &c->error) < 0)
		goto out;
	/* RFC 3501 6.3.5: missing superior names of the new name are made. */
	char *slash = strrchr(dst, '/');
	if (slash != NULL) {
		char *parent = xstrndup(dst, (size_t)(slash - dst));
		enum store_result pr = op_create_levels(c, parent);
		free(parent);
		if (pr != STORE_OK) {
			r = pr;
			goto out;
		}
	}
	for (size_t i = 0; i < n_dirs; i++) {
		if (rename(dirs[i].from, dirs[i].to) < 0) {
			c->error = xasprintf("rename %s: %s", dirs[i].from, strerror(errno));
			goto out;
		}
		store__op_undo_add(c, dirs[i].from, dirs[i].to);
	}
	if (store__op_fsync_dir(c, op->maildir, NULL) < 0)
		goto out;

	/* Re-key the records; messages are keyed by mailbox id and stay.
	 * UIDVALIDITY is kept: the UIDs still name the same messages. */
	for (size_t i = 0; i < n_recs; i++) {
		struct idx_mailbox mb;
		int rc = idx_mailbox_get(c->txn, c->st->db, op->account, recs[i].from, &mb, &c->error);
		if (rc < 0)
			goto out;
		if (rc == 1)
			continue;
		if (idx_mailbox_put(c->txn, c->st->db, op->account, recs[i].to, &mb, &c->error) < 0 ||
		    idx_mailbox_del(c->txn, c->st->db, op->account, recs[i].from, &c->error) < 0)
			goto out;
		store__op_event(op, recs[i].from, STORE_EVENT_GONE, 0, 0);
	}
	r = STORE_OK;
out:
	op_names_free(&kids);
	free(prefix);
	op_pairs_free(recs, n_recs);
	op_pairs_free(dirs, n_dirs);
	op_strv_free(disk, n_disk);
	free(disk_prefix);
	free(dst_dir);
	store__op_box_free(&b);
	return r;
}

/* ---------------------------------------------------------------- */
/* Subscriptions                                                     */

/* Split the subscriptions file's text into names (empty lines and CRs
 * dropped). */
static void op_subs_split(char *text, size_t len, char ***names_r, size_t *n_r)
{
	char *p = text, *end = text + len;
	*names_r = NULL;
	*n_r = 0;
	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		char *e = nl ? nl : end;
		size_t n = (size_t)(e - p);
		while (n > 0 && p[n - 1] == '\r')
			n--;
		if (n > 0 && memchr(p, '\0', n) == NULL) {
			*names_r = xrealloc(*names_r, (*n_r + 1) * sizeof(**names_r));
			(*names_r)[(*n_r)++] = xstrndup(p, n);
		}
		p = nl ? nl + 1 : end;
	}
}

int store_subscriptions_read(const char *maildir, char ***names_r, size_t *n_r, char **error_r)
{
	char *path = xasprintf("%s/" STORE_SUBS_NAME, maildir), *text = NULL;
	size_t len = 0;
	bool missing = false;
	int rc = fileio_read_file(path, STORE_SUBS_MAX, &text, &len, &missing, error_r);
	free(path);
	*names_r = NULL;
	*n_r = 0;
	if (rc < 0)
		return -1;
	if (!missing)
		op_subs_split(text, len, names_r, n_r);
	free(text);
	return 0;
}

int store__subscribe(const char *maildir, const char *name, bool add, char **error_r)
{
	char **names = NULL;
	size_t n = 0;

	if (layout_mkdirs(maildir) < 0) {
		*error_r = xasprintf("%s: %s", maildir, strerror(errno));
		return -1;
	}
	if (store_subscriptions_read(maildir, &names, &n, error_r) < 0)
		return -1;
	size_t cap = strlen(name) + 2, len = 0;
	for (size_t i = 0; i < n; i++)
		cap += strlen(names[i]) + 1;
	char *out = xmalloc(cap);
	bool found = false, changed = false;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(names[i], name) == 0) {
			if (found || !add) {
				changed = true;
				continue; /* once only; or the one removed */
			}
			found = true;
		}
		size_t k = strlen(names[i]);
		memcpy(out + len, names[i], k);
		out[len + k] = '\n';
		len += k + 1;
	}
	if (add && !found) {
		changed = true;
		size_t k = strlen(name);
		memcpy(out + len, name, k);
		out[len + k] = '\n';
		len += k + 1;
	}
	op_strv_free(names, n);
	if (!changed) {
		free(out);
		return 0;
	}
	char *path = xasprintf("%s/" STORE_SUBS_NAME, maildir);
	/* Through a temporary file and rename(): a reader sees the old list
	 * or the new one, never half of one. */
	int rc = maildir__lockfile_replace(path, out, len, true, error_r);
	free(path);
	free(out);
	return rc;
}

enum store_result store__op_subscribe(struct store__op_ctx *c, bool add)
{
	struct store_op *op = c->op;
	/* RFC 3501 6.3.6: the name need not exist, but must be one. */
	if (!layout_name_valid(op->mailbox) || strchr(op->mailbox, '\n') != NULL)
		return STORE_NOT_ALLOWED;
	const char *name = store__op_key(op->mailbox);
	if (store__subscribe(op->maildir, name, add, &c->error) < 0)
		return STORE_TEMPFAIL;
	/* Keep the record's attribute in step when there is one. */
	struct idx_mailbox mb;
	int rc = idx_mailbox_get(c->txn, c->st->db, op->account, name, &mb, &c->error);
	if (rc < 0)
		return STORE_TEMPFAIL;
	if (rc == 0) {
		uint32_t attrs = add ? mb.attrs | IDX_MBOX_SUBSCRIBED : mb.attrs & ~IDX_MBOX_SUBSCRIBED;
		if (attrs != mb.attrs) {
			mb.attrs = attrs;
			if (idx_mailbox_put(c->txn, c->st->db, op->account, name, &mb, &c->error) < 0)
				return STORE_TEMPFAIL;
		}
	}
	op->done = 1;
	return STORE_OK;
}
