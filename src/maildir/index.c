/*
 * LMDB record encoding for the mailbox index. Records are packed by hand
 * (little-endian, fixed offsets) rather than memcpy'd structs so the file
 * does not depend on the compiler's padding, and start with a version byte.
 */
#include "maildir/index.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/xalloc.h"

#define IDX_MAILBOX_VERSION 1
#define IDX_MESSAGE_VERSION 1
#define IDX_MAILBOX_RECLEN (1 + 8 + 4 * 6 + 8 * 4)
#define IDX_MESSAGE_FIXED (1 + 4 + 4 + 1 + 8 * 4)

static void put_u32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++)
		v |= (uint32_t)p[i] << (8 * i);
	return v;
}

static uint64_t get_u64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static int idx_fail(int rc, const char *what, char **error_r)
{
	*error_r = xasprintf("index: %s: %s", what, mdb_strerror(rc));
	return -1;
}

/* "ACCOUNT\0NAME" */
static char *idx_mailbox_key(const char *account, const char *name, size_t *len_r)
{
	size_t a = strlen(account), n = strlen(name);
	char *k = xmalloc(a + 1 + n);
	memcpy(k, account, a);
	k[a] = '\0';
	memcpy(k + a + 1, name, n);
	*len_r = a + 1 + n;
	return k;
}

static void idx_mailbox_encode(const struct idx_mailbox *mb, unsigned char *p)
{
	p[0] = IDX_MAILBOX_VERSION;
	put_u64(p + 1, mb->id);
	put_u32(p + 9, mb->attrs);
	put_u32(p + 13, mb->uidvalidity);
	put_u32(p + 17, mb->uidnext);
	put_u32(p + 21, mb->count);
	put_u32(p + 25, mb->unseen);
	put_u32(p + 29, 0);
	put_u64(p + 33, mb->modseq);
	put_u64(p + 41, mb->bytes);
	put_u64(p + 49, (uint64_t)mb->new_mtime_ns);
	put_u64(p + 57, (uint64_t)mb->cur_mtime_ns);
}

static int idx_mailbox_decode(const MDB_val *v, struct idx_mailbox *mb)
{
	const unsigned char *p = v->mv_data;
	if (v->mv_size < IDX_MAILBOX_RECLEN || p[0] != IDX_MAILBOX_VERSION)
		return -1;
	mb->id = get_u64(p + 1);
	mb->attrs = get_u32(p + 9);
	mb->uidvalidity = get_u32(p + 13);
	mb->uidnext = get_u32(p + 17);
	mb->count = get_u32(p + 21);
	mb->unseen = get_u32(p + 25);
	mb->modseq = get_u64(p + 33);
	mb->bytes = get_u64(p + 41);
	mb->new_mtime_ns = (int64_t)get_u64(p + 49);
	mb->cur_mtime_ns = (int64_t)get_u64(p + 57);
	return 0;
}

int idx_mailbox_get(MDB_txn *txn, struct db *db, const char *account, const char *name,
		    struct idx_mailbox *mb_r, char **error_r)
{
	size_t klen;
	char *k = idx_mailbox_key(account, name, &klen);
	MDB_val key = { klen, k }, val;
	int rc = mdb_get(txn, db->mailboxes, &key, &val);

	free(k);
	if (rc == MDB_NOTFOUND)
		return 1;
	if (rc != 0)
		return idx_fail(rc, "mailbox get", error_r);
	if (idx_mailbox_decode(&val, mb_r) < 0) {
		*error_r = xasprintf("index: mailbox %s of %s: unknown record format", name, account);
		return -1;
	}
	return 0;
}

int idx_mailbox_put(MDB_txn *txn, struct db *db, const char *account, const char *name,
		    const struct idx_mailbox *mb, char **error_r)
{
	unsigned char rec[IDX_MAILBOX_RECLEN];
	size_t klen;
	char *k = idx_mailbox_key(account, name, &klen);
	MDB_val key = { klen, k }, val = { sizeof(rec), rec };

	idx_mailbox_encode(mb, rec);
	int rc = mdb_put(txn, db->mailboxes, &key, &val, 0);
	free(k);
	return rc == 0 ? 0 : idx_fail(rc, "mailbox put", error_r);
}

int idx_mailbox_del(MDB_txn *txn, struct db *db, const char *account, const char *name, char **error_r)
{
	size_t klen;
	char *k = idx_mailbox_key(account, name, &klen);
	MDB_val key = { klen, k };
	int rc = mdb_del(txn, db->mailboxes, &key, NULL);
	free(k);
	return rc == 0 || rc == MDB_NOTFOUND ? 0 : idx_fail(rc, "mailbox del", error_r);
}

static int idx_meta_u64(MDB_txn *txn, struct db *db, const char *name, uint64_t *v_r, char **error_r)
{
	MDB_val key = { strlen(name), (void *)name }, val;
	int rc = mdb_get(txn, db->meta, &key, &val);
	if (rc == MDB_NOTFOUND) {
		*v_r = 0;
		return 0;
	}
	if (rc != 0)
		return idx_fail(rc, "meta get", error_r);
	*v_r = val.mv_size >= 8 ? get_u64(val.mv_data) : 0;
	return 0;
}

static int idx_meta_put_u64(MDB_txn *txn, struct db *db, const char *name, uint64_t v, char **error_r)
{
	unsigned char b[8];
	put_u64(b, v);
	MDB_val key = { strlen(name), (void *)name }, val = { 8, b };
	int rc = mdb_put(txn, db->meta, &key, &val, 0);
	return rc == 0 ? 0 : idx_fail(rc, "meta put", error_r);
}

int idx_mailbox_new(MDB_txn *txn, struct db *db, uint32_t uidvalidity, struct idx_mailbox *mb_r,
		    char **error_r)
{
	uint64_t next;

	if (idx_meta_u64(txn, db, "next_mailbox_id", &next, error_r) < 0)
		return -1;
	if (next == 0)
		next = 1;
	if (idx_meta_put_u64(txn, db, "next_mailbox_id", next + 1, error_r) < 0)
		return -1;
	memset(mb_r, 0, sizeof(*mb_r));
	mb_r->id = next;
	mb_r->uidvalidity = uidvalidity;
	mb_r->uidnext = 1;
	mb_r->modseq = 1;
	return 0;
}

int idx_mailbox_each(MDB_txn *txn, struct db *db, const char *account,
		     int (*fn)(const char *name, const struct idx_mailbox *mb, void *ctx), void *ctx,
		     char **error_r)
{
	size_t alen = strlen(account);
	MDB_cursor *cur;
	int rc = mdb_cursor_open(txn, db->mailboxes, &cur);

	if (rc != 0)
		return idx_fail(rc, "mailbox cursor", error_r);
	size_t klen;
	char *prefix = idx_mailbox_key(account, "", &klen);
	MDB_val key = { klen, prefix }, val;
	int ret = 0;

	for (rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
		if (key.mv_size < klen || memcmp(key.mv_data, prefix, klen) != 0)
			break;
		struct idx_mailbox mb;
		if (idx_mailbox_decode(&val, &mb) < 0)
			continue;
		char *name = xstrndup((const char *)key.mv_data + alen + 1, key.mv_size - alen - 1);
		int r = fn(name, &mb, ctx);
		free(name);
		if (r != 0) {
			ret = r < 0 ? -1 : 0;
			if (r < 0)
				*error_r = xstrdup("index: mailbox walk stopped");
			break;
		}
	}
	if (rc != 0 && rc != MDB_NOTFOUND)
		ret = idx_fail(rc, "mailbox walk", error_r);
	mdb_cursor_close(cur);
	free(prefix);
	return ret;
}

static void idx_message_key(uint64_t mailbox_id, uint32_t uid, unsigned char k[12])
{
	for (int i = 0; i < 8; i++)
		k[i] = (unsigned char)(mailbox_id >> (56 - 8 * i));
	for (int i = 0; i < 4; i++)
		k[8 + i] = (unsigned char)(uid >> (24 - 8 * i));
}

static int idx_message_decode(const MDB_val *key, const MDB_val *v, struct idx_message *m, bool copy_name)
{
	const unsigned char *k = key->mv_data, *p = v->mv_data;
	if (key->mv_size != 12 || v->mv_size < IDX_MESSAGE_FIXED || p[0] != IDX_MESSAGE_VERSION)
		return -1;
	m->uid = (uint32_t)k[8] << 24 | (uint32_t)k[9] << 16 | (uint32_t)k[10] << 8 | k[11];
	m->flags = get_u32(p + 1);
	m->keywords = get_u32(p + 5);
	m->in_new = p[9] != 0;
	m->modseq = get_u64(p + 10);
	m->size = get_u64(p + 18);
	m->vsize = get_u64(p + 26);
	m->internal_date = (int64_t)get_u64(p + 34);
	size_t nlen = v->mv_size - IDX_MESSAGE_FIXED;
	if (copy_name) {
		m->name = xstrndup((const char *)p + IDX_MESSAGE_FIXED, nlen);
	} else {
		/* Borrowed: LMDB values are not NUL-terminated, so the writer
		 * stores the terminator too. */
		m->name = (char *)p + IDX_MESSAGE_FIXED;
	}
	return 0;
}

int idx_message_get(MDB_txn *txn, struct db *db, uint64_t mailbox_id, uint32_t uid,
		    struct idx_message *msg_r, char **error_r)
{
	unsigned char k[12];
	idx_message_key(mailbox_id, uid, k);
	MDB_val key = { sizeof(k), k }, val;
	int rc = mdb_get(txn, db->messages, &key, &val);

	if (rc == MDB_NOTFOUND)
		return 1;
	if (rc != 0)
		return idx_fail(rc, "message get", error_r);
	if (idx_message_decode(&key, &val, msg_r, true) < 0) {
		*error_r = xstrdup("index: message record of unknown format");
		return -1;
	}
	return 0;
}

int idx_message_put(MDB_txn *txn, struct db *db, uint64_t mailbox_id, const struct idx_message *msg,
		    char **error_r)
{
	unsigned char k[12];
	size_t nlen = strlen(msg->name) + 1;
	unsigned char *p = xmalloc(IDX_MESSAGE_FIXED + nlen);

	idx_message_key(mailbox_id, msg->uid, k);
	p[0] = IDX_MESSAGE_VERSION;
	put_u32(p + 1, msg->flags);
	put_u32(p + 5, msg->keywords);
	p[9] = msg->in_new ? 1 : 0;
	put_u64(p + 10, msg->modseq);
	put_u64(p + 18, msg->size);
	put_u64(p + 26, msg->vsize);
	put_u64(p + 34, (uint64_t)msg->internal_date);
	memcpy(p + IDX_MESSAGE_FIXED, msg->name, nlen);
	MDB_val key = { sizeof(k), k }, val = { IDX_MESSAGE_FIXED + nlen, p };
	int rc = mdb_put(txn, db->messages, &key, &val, 0);
	free(p);
	return rc == 0 ? 0 : idx_fail(rc, "message put", error_r);
}

int idx_message_del(MDB_txn *txn, struct db *db, uint64_t mailbox_id, uint32_t uid, char **error_r)
{
	unsigned char k[12];
	idx_message_key(mailbox_id, uid, k);
	MDB_val key = { sizeof(k), k };
	int rc = mdb_del(txn, db->messages, &key, NULL);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return idx_fail(rc, "message del", error_r);
	rc = mdb_del(txn, db->mimecache, &key, NULL);
	return rc == 0 || rc == MDB_NOTFOUND ? 0 : idx_fail(rc, "mime cache del", error_r);
}

int idx_message_each(MDB_txn *txn, struct db *db, uint64_t mailbox_id, uint32_t first_uid,
		     int (*fn)(const struct idx_message *msg, void *ctx), void *ctx, char **error_r)
{
	unsigned char k[12];
	MDB_cursor *cur;
	int rc = mdb_cursor_open(txn, db->messages, &cur);
	int ret = 0;

	if (rc != 0)
		return idx_fail(rc, "message cursor", error_r);
	idx_message_key(mailbox_id, first_uid, k);
	MDB_val key = { sizeof(k), k }, val;
	for (rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
		if (key.mv_size != 12 || memcmp(key.mv_data, k, 8) != 0)
			break;
		struct idx_message m;
		if (idx_message_decode(&key, &val, &m, false) < 0)
			continue;
		int r = fn(&m, ctx);
		if (r != 0) {
			if (r < 0) {
				*error_r = xstrdup("index: message walk stopped");
				ret = -1;
			}
			break;
		}
	}
	if (rc != 0 && rc != MDB_NOTFOUND)
		ret = idx_fail(rc, "message walk", error_r);
	mdb_cursor_close(cur);
	return ret;
}

/* Delete every record of one mailbox from dbi (messages and mimecache
 * share the key layout). */
static int idx_del_mailbox_range(MDB_txn *txn, MDB_dbi dbi, uint64_t mailbox_id, char **error_r)
{
	unsigned char k[12];
	MDB_cursor *cur;
	int rc = mdb_cursor_open(txn, dbi, &cur);

	if (rc != 0)
		return idx_fail(rc, "message cursor", error_r);
	idx_message_key(mailbox_id, 0, k);
	MDB_val key = { sizeof(k), k }, val;
	for (rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
		if (key.mv_size != 12 || memcmp(key.mv_data, k, 8) != 0)
			break;
		if ((rc = mdb_cursor_del(cur, 0)) != 0)
			break;
	}
	mdb_cursor_close(cur);
	return rc == 0 || rc == MDB_NOTFOUND ? 0 : idx_fail(rc, "message del all", error_r);
}

int idx_message_del_all(MDB_txn *txn, struct db *db, uint64_t mailbox_id, char **error_r)
{
	if (idx_del_mailbox_range(txn, db->messages, mailbox_id, error_r) < 0)
		return -1;
	return idx_del_mailbox_range(txn, db->mimecache, mailbox_id, error_r);
}

int idx_mimecache_get(MDB_txn *txn, struct db *db, uint64_t mailbox_id, uint32_t uid, MDB_val *val_r,
		      char **error_r)
{
	unsigned char k[12];
	idx_message_key(mailbox_id, uid, k);
	MDB_val key = { sizeof(k), k };
	int rc = mdb_get(txn, db->mimecache, &key, val_r);
	if (rc == MDB_NOTFOUND)
		return 1;
	return rc == 0 ? 0 : idx_fail(rc, "mime cache get", error_r);
}

int idx_mimecache_put(MDB_txn *txn, struct db *db, uint64_t mailbox_id, uint32_t uid, const void *data,
		      size_t len, char **error_r)
{
	unsigned char k[12];
	idx_message_key(mailbox_id, uid, k);
	MDB_val key = { sizeof(k), k }, val = { len, (void *)data };
	int rc = mdb_put(txn, db->mimecache, &key, &val, 0);
	return rc == 0 ? 0 : idx_fail(rc, "mime cache put", error_r);
}

void idx_message_clear(struct idx_message *msg)
{
	free(msg->name);
	msg->name = NULL;
}

static char *idx_usage_key(const char *account, size_t *len_r)
{
	size_t a = strlen(account);
	char *k = xmalloc(6 + a);
	memcpy(k, "usage", 6); /* with its NUL as separator */
	memcpy(k + 6, account, a);
	*len_r = 6 + a;
	return k;
}

int idx_usage_get(MDB_txn *txn, struct db *db, const char *account, uint64_t *bytes_r,
		  uint64_t *messages_r, char **error_r)
{
	size_t klen;
	char *k = idx_usage_key(account, &klen);
	MDB_val key = { klen, k }, val;
	int rc = mdb_get(txn, db->meta, &key, &val);

	free(k);
	*bytes_r = *messages_r = 0;
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != 0)
		return idx_fail(rc, "usage get", error_r);
	if (val.mv_size >= 16) {
		*bytes_r = get_u64(val.mv_data);
		*messages_r = get_u64((const unsigned char *)val.mv_data + 8);
	}
	return 0;
}

int idx_usage_add(MDB_txn *txn, struct db *db, const char *account, int64_t bytes, int64_t messages,
		  char **error_r)
{
	uint64_t b, m;

	if (idx_usage_get(txn, db, account, &b, &m, error_r) < 0)
		return -1;
	/* Never wrap below zero: a usage drift after a manual change is
	 * corrected by reconciliation, not by an underflow. */
	b = bytes < 0 && (uint64_t)-bytes > b ? 0 : b + (uint64_t)bytes;
	m = messages < 0 && (uint64_t)-messages > m ? 0 : m + (uint64_t)messages;
	unsigned char rec[16];
	put_u64(rec, b);
	put_u64(rec + 8, m);
	size_t klen;
	char *k = idx_usage_key(account, &klen);
	MDB_val key = { klen, k }, val = { sizeof(rec), rec };
	int rc = mdb_put(txn, db->meta, &key, &val, 0);
	free(k);
	return rc == 0 ? 0 : idx_fail(rc, "usage put", error_r);
}

struct idx_forget {
	char **names;
	uint64_t *ids;
	size_t n;
};

static int idx_forget_collect(const char *name, const struct idx_mailbox *mb, void *ctx)
{
	struct idx_forget *f = ctx;
	f->names = xrealloc(f->names, (f->n + 1) * sizeof(*f->names));
	f->ids = xrealloc(f->ids, (f->n + 1) * sizeof(*f->ids));
	f->names[f->n] = xstrdup(name);
	f->ids[f->n] = mb->id;
	f->n++;
	return 0;
}

int idx_account_forget(MDB_txn *txn, struct db *db, const char *account, char **error_r)
{
	struct idx_forget f = { 0 };
	int ret = idx_mailbox_each(txn, db, account, idx_forget_collect, &f, error_r);

	for (size_t i = 0; i < f.n; i++) {
		if (ret == 0 && (idx_message_del_all(txn, db, f.ids[i], error_r) < 0 ||
				 idx_mailbox_del(txn, db, account, f.names[i], error_r) < 0))
			ret = -1;
		free(f.names[i]);
	}
	free(f.names);
	free(f.ids);
	if (ret == 0) {
		size_t klen;
		char *k = idx_usage_key(account, &klen);
		MDB_val key = { klen, k };
		int rc = mdb_del(txn, db->meta, &key, NULL);
		free(k);
		if (rc != 0 && rc != MDB_NOTFOUND)
			ret = idx_fail(rc, "usage del", error_r);
	}
	return ret;
}

/* Where uid's file is now: 0 with *path_r, 1 when the index has no such
 * message, -1 with *error_r. */
static int idx_message_path(struct db *db, uint64_t mailbox_id, const char *dir, uint32_t uid, char **path_r,
			    char **error_r)
{
	struct idx_message m = { 0 };
	MDB_txn *txn;
	int rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn);

	if (rc != 0)
		return idx_fail(rc, "read txn", error_r);
	rc = idx_message_get(txn, db, mailbox_id, uid, &m, error_r);
	mdb_txn_abort(txn);
	if (rc == 0)
		*path_r = xasprintf("%s/%s/%s", dir, m.in_new ? "new" : "cur", m.name);
	idx_message_clear(&m);
	return rc;
}

int idx_message_open_file(struct db *db, uint64_t mailbox_id, const char *dir, uint32_t uid, int *fd_r,
			  char **error_r)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		char *path = NULL;
		int rc = idx_message_path(db, mailbox_id, dir, uid, &path, error_r);
		if (rc != 0)
			return rc;
		*fd_r = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
		if (*fd_r >= 0) {
			free(path);
			return 0;
		}
		if (errno != ENOENT) {
			*error_r = xasprintf("opening %s: %s", path, strerror(errno));
			free(path);
			return -1;
		}
		free(path);
	}
	return 1;
}
