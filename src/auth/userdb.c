/*
 * Accounts and aliases in LMDB. Every call is one short transaction: a read
 * transaction for lookups (cheap, never blocks the writer), a write
 * transaction for changes (LMDB's writer lock is shared with other
 * processes, so the CLI and the server take turns). Records are decoded
 * into freshly allocated structs before the transaction ends, because
 * LMDB's pointers die with it.
 *
 * Resolution (userdb_resolve) runs in a single read transaction so that it
 * sees one consistent snapshot of users and aliases.
 */
#include "auth/userdb.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/log.h"
#include "core/xalloc.h"

#define USERDB_RECORD_VERSION 1
#define USERDB_ALIAS_VERSION 1
#define USERDB_FLAG_DISABLED 0x01
#define USERDB_HASH_MAX 1024
#define USERDB_MAILDIR_MAX 4095

/* ---- Addresses ---- */

static char userdb_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

bool userdb_domain_valid(const char *domain, size_t len)
{
	size_t label = 0;

	if (len == 0 || len > 253)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = domain[i];
		if (c == '.') {
			/* Empty labels (leading, doubled or trailing dots) and labels
			 * ending in '-' are not hostnames (RFC 1123 2.1). */
			if (label == 0 || domain[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
		if (!alnum && !(c == '-' && label > 0))
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0 && domain[len - 1] != '-';
}

static int userdb_local_valid(const char *s, size_t len, const char **reason_r)
{
	if (len == 0) {
		*reason_r = "empty local part";
		return -1;
	}
	if (len > USERDB_LOCAL_MAX) {
		*reason_r = "local part longer than 64 octets";
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f || c == ' ') {
			*reason_r = "control character or space in the address";
			return -1;
		}
		if (strchr("\"(),:;<>[\\]/", c) != NULL) {
			*reason_r = "character not allowed in a local part";
			return -1;
		}
		if (c == '.' && (i == 0 || i == len - 1 || s[i - 1] == '.')) {
			*reason_r = "leading, trailing or doubled dot in the local part";
			return -1;
		}
	}
	return 0;
}

/* Check "local@domain" (or "@domain" when catch_all) and lowercase it. */
static int userdb_normalize(const char *address, bool catch_all, char **key_r, const char **reason_r)
{
	size_t len = strlen(address);
	const char *at = strchr(address, '@');

	*key_r = NULL;
	if (len > USERDB_ADDRESS_MAX) {
		*reason_r = "address longer than 254 octets";
		return -1;
	}
	if (at == NULL) {
		*reason_r = "no '@' in the address";
		return -1;
	}
	if (strchr(at + 1, '@') != NULL) {
		*reason_r = "more than one '@' in the address";
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)address[i];
		if (c < 0x20 || c == 0x7f || c == ' ') {
			*reason_r = "control character or space in the address";
			return -1;
		}
	}
	size_t local_len = (size_t)(at - address);
	if (!(catch_all && local_len == 0) && userdb_local_valid(address, local_len, reason_r) < 0)
		return -1;
	if (at[1] == '\0') {
		*reason_r = "empty domain";
		return -1;
	}
	if (!userdb_domain_valid(at + 1, strlen(at + 1))) {
		*reason_r = "the domain is not a valid host name";
		return -1;
	}
	char *key = xstrdup(address);
	for (char *p = key; *p != '\0'; p++)
		*p = userdb_lower(*p);
	*key_r = key;
	return 0;
}

int userdb_address_normalize(const char *address, char **key_r, const char **reason_r)
{
	return userdb_normalize(address, false, key_r, reason_r);
}

int userdb_alias_normalize(const char *alias, char **key_r, const char **reason_r)
{
	return userdb_normalize(alias, true, key_r, reason_r);
}

const char *userdb_address_domain(const char *address)
{
	const char *at = strrchr(address, '@');
	return at ? at + 1 : address + strlen(address);
}

bool userdb_domain_is_local(const struct config *cfg, const char *domain)
{
	for (size_t i = 0; i < cfg->n_domains; i++) {
		if (strcasecmp(cfg->domains[i], domain) == 0)
			return true;
	}
	return false;
}

/* ---- Records ---- */

void user_free(struct user *u)
{
	free(u->address);
	if (u->password_hash != NULL) {
		explicit_bzero(u->password_hash, strlen(u->password_hash));
		free(u->password_hash);
	}
	free(u->maildir);
	memset(u, 0, sizeof(*u));
}

static void userdb_put_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void userdb_put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void userdb_put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t userdb_get_u16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t userdb_get_u32(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint64_t userdb_get_u64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

#define USERDB_FIXED_LEN (1 + 1 + 8 + 8 + 4)

/* Check the strings of a record before they are written. */
static int userdb_user_check(const struct user *u, char **error_r)
{
	if (u->password_hash == NULL || u->password_hash[0] == '\0' ||
	    strlen(u->password_hash) > USERDB_HASH_MAX) {
		*error_r = xstrdup("missing or overlong password hash");
		return -1;
	}
	for (const char *p = u->password_hash; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x21 || *p == 0x7f || *p == ':') {
			*error_r = xstrdup("control character, space or ':' in the password hash");
			return -1;
		}
	}
	if (u->maildir != NULL) {
		size_t len = strlen(u->maildir);
		if (len == 0 || len > USERDB_MAILDIR_MAX) {
			*error_r = xstrdup("empty or overlong maildir path");
			return -1;
		}
		for (const char *p = u->maildir; *p != '\0'; p++) {
			if ((unsigned char)*p < 0x20 || *p == 0x7f) {
				*error_r = xstrdup("control character in the maildir path");
				return -1;
			}
		}
	}
	return 0;
}

/* Encode u (checked) into a fresh buffer of *len_r bytes. */
static uint8_t *userdb_encode(const struct user *u, size_t *len_r)
{
	size_t hlen = strlen(u->password_hash);
	size_t mlen = u->maildir ? strlen(u->maildir) : 0;
	size_t len = USERDB_FIXED_LEN + 2 + hlen + 2 + mlen;
	uint8_t *b = xmalloc(len);
	uint8_t *p = b;

	*p++ = USERDB_RECORD_VERSION;
	*p++ = u->disabled ? USERDB_FLAG_DISABLED : 0;
	userdb_put_u64(p, (uint64_t)(u->created ? u->created : (int64_t)time(NULL)));
	p += 8;
	userdb_put_u64(p, u->quota_bytes);
	p += 8;
	userdb_put_u32(p, u->quota_messages);
	p += 4;
	userdb_put_u16(p, (uint16_t)hlen);
	p += 2;
	memcpy(p, u->password_hash, hlen);
	p += hlen;
	userdb_put_u16(p, (uint16_t)mlen);
	p += 2;
	if (mlen > 0)
		memcpy(p, u->maildir, mlen);
	*len_r = len;
	return b;
}

/* Decode a record of key into *u_r. Returns 0 or -1 with *error_r. */
static int userdb_decode(const MDB_val *key, const MDB_val *val, struct user *u_r, char **error_r)
{
	const uint8_t *p = val->mv_data;
	size_t len = val->mv_size;

	memset(u_r, 0, sizeof(*u_r));
	if (len < USERDB_FIXED_LEN + 2 || p[0] != USERDB_RECORD_VERSION) {
		*error_r = xasprintf("account %.*s: unreadable record (version %d, %zu bytes)",
				     (int)key->mv_size, (const char *)key->mv_data,
				     len > 0 ? p[0] : -1, len);
		return -1;
	}
	u_r->disabled = (p[1] & USERDB_FLAG_DISABLED) != 0;
	u_r->created = (int64_t)userdb_get_u64(p + 2);
	u_r->quota_bytes = userdb_get_u64(p + 10);
	u_r->quota_messages = userdb_get_u32(p + 18);
	size_t off = USERDB_FIXED_LEN;
	size_t hlen = userdb_get_u16(p + off);
	off += 2;
	if (hlen == 0 || off + hlen + 2 > len)
		goto truncated;
	u_r->password_hash = xstrndup((const char *)p + off, hlen);
	off += hlen;
	size_t mlen = userdb_get_u16(p + off);
	off += 2;
	if (off + mlen > len)
		goto truncated;
	if (mlen > 0)
		u_r->maildir = xstrndup((const char *)p + off, mlen);
	u_r->address = xstrndup(key->mv_data, key->mv_size);
	if (strlen(u_r->password_hash) != hlen || (u_r->maildir && strlen(u_r->maildir) != mlen))
		goto truncated;
	return 0;
truncated:
	*error_r = xasprintf("account %.*s: damaged record", (int)key->mv_size, (const char *)key->mv_data);
	user_free(u_r);
	return -1;
}

/* Alias targets: version byte, then NUL-terminated strings. */
static int alias_decode(const MDB_val *key, const MDB_val *val, char ***targets_r, size_t *n_r,
			char **error_r)
{
	const char *p = val->mv_data;
	size_t len = val->mv_size;
	size_t n = 0;

	*targets_r = NULL;
	*n_r = 0;
	if (len < 3 || (uint8_t)p[0] != USERDB_ALIAS_VERSION || p[len - 1] != '\0')
		goto bad;
	for (size_t i = 1; i < len; i++)
		n += p[i] == '\0';
	if (n > USERDB_ALIAS_TARGETS_MAX)
		goto bad;
	char **t = xcalloc(n + 1, sizeof(*t));
	size_t k = 0;
	for (size_t i = 1; i < len; k++) {
		size_t l = strlen(p + i);
		if (l == 0) {
			alias_targets_free(&t);
			goto bad;
		}
		t[k] = xstrndup(p + i, l);
		i += l + 1;
	}
	*targets_r = t;
	*n_r = n;
	return 0;
bad:
	*error_r = xasprintf("alias %.*s: damaged record", (int)key->mv_size, (const char *)key->mv_data);
	return -1;
}

static uint8_t *alias_encode(char *const *targets, size_t n, size_t *len_r)
{
	size_t len = 1;
	for (size_t i = 0; i < n; i++)
		len += strlen(targets[i]) + 1;
	uint8_t *b = xmalloc(len);
	size_t o = 1;
	b[0] = USERDB_ALIAS_VERSION;
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(targets[i]) + 1;
		memcpy(b + o, targets[i], l);
		o += l;
	}
	*len_r = len;
	return b;
}

void alias_targets_free(char ***targetsp)
{
	char **t = *targetsp;

	if (t == NULL)
		return;
	*targetsp = NULL;
	for (size_t i = 0; t[i] != NULL; i++)
		free(t[i]);
	free(t);
}

/* ---- Transactions ---- */

static int userdb_begin(struct db *db, bool write, MDB_txn **txn_r, char **error_r)
{
	int rc = mdb_txn_begin(db->env, NULL, write ? 0 : MDB_RDONLY, txn_r);
	if (rc != 0) {
		*error_r = xasprintf("database: %s", db_strerror(rc));
		return -1;
	}
	return 0;
}

static int userdb_commit(MDB_txn *txn, char **error_r)
{
	int rc = mdb_txn_commit(txn);
	if (rc != 0) {
		*error_r = xasprintf("database: commit: %s", db_strerror(rc));
		return -1;
	}
	return 0;
}

static int userdb_fail(MDB_txn *txn, int rc, const char *what, char **error_r)
{
	mdb_txn_abort(txn);
	*error_r = xasprintf("database: %s: %s", what, db_strerror(rc));
	return -1;
}

static MDB_val userdb_val(const char *s)
{
	MDB_val v = { .mv_size = strlen(s), .mv_data = (void *)s };
	return v;
}

/* Look up key in a transaction: 0 with *u_r, 1 not found, -1 error. */
static int userdb_get_txn(MDB_txn *txn, struct db *db, const char *key, struct user *u_r, char **error_r)
{
	MDB_val k = userdb_val(key), v;
	int rc = mdb_get(txn, db->users, &k, &v);

	memset(u_r, 0, sizeof(*u_r));
	if (rc == MDB_NOTFOUND)
		return 1;
	if (rc != 0) {
		*error_r = xasprintf("database: get %s: %s", key, db_strerror(rc));
		return -1;
	}
	return userdb_decode(&k, &v, u_r, error_r);
}

static int alias_get_txn(MDB_txn *txn, struct db *db, const char *key, char ***targets_r, size_t *n_r,
			 char **error_r)
{
	MDB_val k = userdb_val(key), v;
	int rc = mdb_get(txn, db->aliases, &k, &v);

	*targets_r = NULL;
	*n_r = 0;
	if (rc == MDB_NOTFOUND)
		return 1;
	if (rc != 0) {
		*error_r = xasprintf("database: get alias %s: %s", key, db_strerror(rc));
		return -1;
	}
	return alias_decode(&k, &v, targets_r, n_r, error_r);
}

/* Write u (checked, key normalized) in txn with the given put flags. */
static int userdb_put_txn(MDB_txn *txn, struct db *db, const char *key, const struct user *u,
			  unsigned flags)
{
	size_t len;
	uint8_t *rec = userdb_encode(u, &len);
	MDB_val k = userdb_val(key), v = { .mv_size = len, .mv_data = rec };
	int rc = mdb_put(txn, db->users, &k, &v, flags);
	free(rec);
	return rc;
}

/* Check u and write it over key in txn, then free u. Returns 0, or -1 with
 * *error_r and txn aborted. */
static int userdb_check_put_txn(MDB_txn *txn, struct db *db, const char *key, struct user *u, char **error_r)
{
	if (userdb_user_check(u, error_r) < 0) {
		mdb_txn_abort(txn);
		user_free(u);
		return -1;
	}
	int rc = userdb_put_txn(txn, db, key, u, 0);
	user_free(u);
	if (rc != 0)
		return userdb_fail(txn, rc, "put", error_r);
	return 0;
}

/* Normalize address (an alias, "@domain" allowed, when catch_all) into
 * *key_r and begin a transaction on it. Returns 0 with both (caller frees
 * the key), 1 when the address is invalid (so nothing can be stored under
 * it), or -1 with *error_r. */
static int userdb_begin_key(struct db *db, const char *address, bool catch_all, bool write, char **key_r,
			    MDB_txn **txn_r, char **error_r)
{
	const char *reason;

	if (userdb_normalize(address, catch_all, key_r, &reason) < 0)
		return 1;
	if (userdb_begin(db, write, txn_r, error_r) < 0) {
		free(*key_r);
		*key_r = NULL;
		return -1;
	}
	return 0;
}

/* Delete key from dbi and commit. Returns 0, 1 when there was no such key
 * (txn aborted), or -1 with *error_r (what names the step). */
static int userdb_del_commit(MDB_txn *txn, MDB_dbi dbi, const char *key, const char *what, char **error_r)
{
	MDB_val k = userdb_val(key);
	int rc = mdb_del(txn, dbi, &k, NULL);

	if (rc == MDB_NOTFOUND) {
		mdb_txn_abort(txn);
		return 1;
	}
	if (rc != 0)
		return userdb_fail(txn, rc, what, error_r);
	return userdb_commit(txn, error_r);
}

/* Walk every record of dbi in one read transaction, calling each() on it
 * until that returns non-zero: -1 is an error (with *error_r), 1 stops.
 * Returns 0, or -1 with *error_r ("database: WHAT: ..." when the walk
 * itself fails). */
static int userdb_walk(struct db *db, MDB_dbi dbi, const char *what,
		       int (*each)(const MDB_val *k, const MDB_val *v, void *ctx, char **error_r), void *ctx,
		       char **error_r)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	int rc, ret = 0;

	if (userdb_begin(db, false, &txn, error_r) < 0)
		return -1;
	if ((rc = mdb_cursor_open(txn, dbi, &cur)) != 0)
		return userdb_fail(txn, rc, "cursor", error_r);
	while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
		int r = each(&k, &v, ctx, error_r);
		if (r < 0)
			ret = -1;
		if (r != 0)
			break;
	}
	if (ret == 0 && rc != 0 && rc != MDB_NOTFOUND) {
		*error_r = xasprintf("database: %s: %s", what, db_strerror(rc));
		ret = -1;
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return ret;
}

/* ---- Accounts ---- */

int userdb_get(struct db *db, const char *address, struct user *u_r, char **error_r)
{
	char *key;
	MDB_txn *txn;
	int ret;

	memset(u_r, 0, sizeof(*u_r));
	if ((ret = userdb_begin_key(db, address, false, false, &key, &txn, error_r)) != 0)
		return ret;
	ret = userdb_get_txn(txn, db, key, u_r, error_r);
	mdb_txn_abort(txn);
	free(key);
	return ret;
}

static int userdb_store(struct db *db, const struct user *u, unsigned flags, char **error_r)
{
	char *key;
	const char *reason;
	MDB_txn *txn;

	if (u->address == NULL || userdb_address_normalize(u->address, &key, &reason) < 0) {
		*error_r = xasprintf("%s: %s", u->address ? u->address : "(none)",
				     u->address ? reason : "no address");
		return -1;
	}
	if (userdb_user_check(u, error_r) < 0 || userdb_begin(db, true, &txn, error_r) < 0) {
		free(key);
		return -1;
	}
	int rc = userdb_put_txn(txn, db, key, u, flags);
	if (rc == MDB_KEYEXIST) {
		mdb_txn_abort(txn);
		free(key);
		return 1;
	}
	if (rc != 0) {
		free(key);
		return userdb_fail(txn, rc, "put", error_r);
	}
	free(key);
	return userdb_commit(txn, error_r);
}

int userdb_put(struct db *db, const struct user *u, char **error_r)
{
	return userdb_store(db, u, 0, error_r);
}

int userdb_add(struct db *db, const struct user *u, char **error_r)
{
	return userdb_store(db, u, MDB_NOOVERWRITE, error_r);
}

int userdb_del(struct db *db, const char *address, char **error_r)
{
	char *key;
	MDB_txn *txn;
	int ret;

	if ((ret = userdb_begin_key(db, address, false, true, &key, &txn, error_r)) != 0)
		return ret;
	ret = userdb_del_commit(txn, db->users, key, "del", error_r);
	free(key);
	return ret;
}

int userdb_modify(struct db *db, const char *address, int (*fn)(struct user *u, void *ctx),
		  void *ctx, char **error_r)
{
	char *key;
	MDB_txn *txn;
	struct user u;
	int ret;

	if ((ret = userdb_begin_key(db, address, false, true, &key, &txn, error_r)) != 0)
		return ret;
	ret = userdb_get_txn(txn, db, key, &u, error_r);
	if (ret != 0) {
		mdb_txn_abort(txn);
		free(key);
		return ret;
	}
	if (fn(&u, ctx) != 0) {
		mdb_txn_abort(txn);
		user_free(&u);
		free(key);
		return 2;
	}
	ret = userdb_check_put_txn(txn, db, key, &u, error_r);
	free(key);
	if (ret < 0)
		return -1;
	return userdb_commit(txn, error_r);
}

int userdb_import(struct db *db, char *const *addresses, char *const *hashes, size_t n,
		  size_t *added_r, size_t *updated_r, char **error_r)
{
	MDB_txn *txn;
	size_t added = 0, updated = 0;

	*added_r = *updated_r = 0;
	if (userdb_begin(db, true, &txn, error_r) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		struct user u;
		char *key;
		const char *reason;
		if (userdb_address_normalize(addresses[i], &key, &reason) < 0) {
			mdb_txn_abort(txn);
			*error_r = xasprintf("%s: %s", addresses[i], reason);
			return -1;
		}
		int ret = userdb_get_txn(txn, db, key, &u, error_r);
		if (ret < 0) {
			mdb_txn_abort(txn);
			free(key);
			return -1;
		}
		if (ret == 1) {
			u.address = xstrdup(key);
			added++;
		} else {
			updated++;
		}
		free(u.password_hash);
		u.password_hash = xstrdup(hashes[i]);
		ret = userdb_check_put_txn(txn, db, key, &u, error_r);
		free(key);
		if (ret < 0)
			return -1;
	}
	if (userdb_commit(txn, error_r) < 0)
		return -1;
	*added_r = added;
	*updated_r = updated;
	return 0;
}

struct userdb_list_ctx {
	int (*cb)(const struct user *u, void *ctx);
	void *ctx;
};

static int userdb_list_one(const MDB_val *k, const MDB_val *v, void *ctx, char **error_r)
{
	struct userdb_list_ctx *c = ctx;
	struct user u;

	if (userdb_decode(k, v, &u, error_r) < 0)
		return -1;
	int stop = c->cb(&u, c->ctx);
	user_free(&u);
	return stop != 0;
}

int userdb_list(struct db *db, int (*cb)(const struct user *u, void *ctx), void *ctx, char **error_r)
{
	struct userdb_list_ctx c = { cb, ctx };

	return userdb_walk(db, db->users, "list", userdb_list_one, &c, error_r);
}

char *userdb_maildir_path(const struct config *cfg, const struct user *u)
{
	if (u->maildir != NULL && u->maildir[0] == '/')
		return xstrdup(u->maildir);
	if (u->maildir != NULL)
		return xasprintf("%s/%s", cfg->data_dir, u->maildir);
	const char *at = strrchr(u->address, '@');
	if (at == NULL)
		return xasprintf("%s/mail/%s", cfg->data_dir, u->address);
	return xasprintf("%s/mail/%s/%.*s", cfg->data_dir, at + 1, (int)(at - u->address), u->address);
}

uint64_t userdb_quota_bytes(const struct config *cfg, const struct user *u)
{
	if (u->quota_bytes == USERDB_QUOTA_UNLIMITED_BYTES)
		return 0;
	return u->quota_bytes != 0 ? u->quota_bytes : cfg->quota_bytes;
}

uint64_t userdb_quota_messages(const struct config *cfg, const struct user *u)
{
	if (u->quota_messages == USERDB_QUOTA_UNLIMITED_MESSAGES)
		return 0;
	return u->quota_messages != 0 ? u->quota_messages : cfg->quota_messages;
}

/* ---- Aliases ---- */

static int alias_keys(const char *alias, const char *target, char **akey_r, char **tkey_r, char **error_r)
{
	const char *reason;

	*akey_r = *tkey_r = NULL;
	if (userdb_alias_normalize(alias, akey_r, &reason) < 0) {
		*error_r = xasprintf("alias %s: %s", alias, reason);
		return -1;
	}
	if (target != NULL && userdb_address_normalize(target, tkey_r, &reason) < 0) {
		*error_r = xasprintf("target %s: %s", target, reason);
		free(*akey_r);
		*akey_r = NULL;
		return -1;
	}
	return 0;
}

/* Write the n targets of key (none: delete it) and commit. Returns 0, or
 * -1 with *error_r and txn ended. */
static int alias_write_commit(MDB_txn *txn, struct db *db, const char *key, char *const *targets, size_t n,
			      char **error_r)
{
	MDB_val k = userdb_val(key);
	int rc;

	if (n == 0) {
		rc = mdb_del(txn, db->aliases, &k, NULL);
	} else {
		size_t len;
		uint8_t *rec = alias_encode(targets, n, &len);
		MDB_val v = { .mv_size = len, .mv_data = rec };
		rc = mdb_put(txn, db->aliases, &k, &v, 0);
		free(rec);
	}
	if (rc != 0)
		return userdb_fail(txn, rc, "put alias", error_r);
	return userdb_commit(txn, error_r);
}

int alias_add(struct db *db, const char *alias, const char *target, char **error_r)
{
	char *akey, *tkey;
	char **t = NULL;
	size_t n = 0;
	MDB_txn *txn;
	int ret;

	if (alias_keys(alias, target, &akey, &tkey, error_r) < 0)
		return -1;
	if (strcmp(akey, tkey) == 0) {
		*error_r = xasprintf("alias %s: cannot point to itself", akey);
		ret = -1;
		goto out;
	}
	if ((ret = userdb_begin(db, true, &txn, error_r)) < 0)
		goto out;
	ret = alias_get_txn(txn, db, akey, &t, &n, error_r);
	if (ret < 0) {
		mdb_txn_abort(txn);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (strcmp(t[i], tkey) == 0) {
			mdb_txn_abort(txn);
			ret = 1;
			goto out;
		}
	}
	if (n >= USERDB_ALIAS_TARGETS_MAX) {
		mdb_txn_abort(txn);
		*error_r = xasprintf("alias %s: already has %d targets", akey, USERDB_ALIAS_TARGETS_MAX);
		ret = -1;
		goto out;
	}
	t = xrealloc(t, (n + 2) * sizeof(*t));
	t[n++] = tkey;
	t[n] = NULL;
	tkey = NULL;
	ret = alias_write_commit(txn, db, akey, t, n, error_r);
out:
	alias_targets_free(&t);
	free(akey);
	free(tkey);
	return ret;
}

int alias_del(struct db *db, const char *alias, const char *target, char **error_r)
{
	char *akey, *tkey;
	char **t = NULL;
	size_t n = 0;
	MDB_txn *txn;
	int ret;

	if (alias_keys(alias, target, &akey, &tkey, error_r) < 0)
		return -1;
	if ((ret = userdb_begin(db, true, &txn, error_r)) < 0)
		goto out;
	if (tkey == NULL) {
		ret = userdb_del_commit(txn, db->aliases, akey, "del alias", error_r);
		goto out;
	}
	ret = alias_get_txn(txn, db, akey, &t, &n, error_r);
	if (ret != 0) {
		mdb_txn_abort(txn);
		goto out;
	}
	size_t i = 0;
	while (i < n && strcmp(t[i], tkey) != 0)
		i++;
	if (i == n) {
		mdb_txn_abort(txn);
		ret = 1;
		goto out;
	}
	free(t[i]);
	memmove(t + i, t + i + 1, (n - i) * sizeof(*t)); /* includes the NULL */
	n--;
	ret = alias_write_commit(txn, db, akey, t, n, error_r);
out:
	alias_targets_free(&t);
	free(akey);
	free(tkey);
	return ret;
}

int alias_get(struct db *db, const char *alias, char ***targets_r, size_t *n_r, char **error_r)
{
	char *key;
	MDB_txn *txn;
	int ret;

	*targets_r = NULL;
	*n_r = 0;
	if ((ret = userdb_begin_key(db, alias, true, false, &key, &txn, error_r)) != 0)
		return ret;
	ret = alias_get_txn(txn, db, key, targets_r, n_r, error_r);
	mdb_txn_abort(txn);
	free(key);
	return ret;
}

struct alias_list_ctx {
	int (*cb)(const char *alias, const char *const *targets, size_t n, void *ctx);
	void *ctx;
};

static int alias_list_one(const MDB_val *k, const MDB_val *v, void *ctx, char **error_r)
{
	struct alias_list_ctx *c = ctx;
	char **t;
	size_t n;

	if (alias_decode(k, v, &t, &n, error_r) < 0)
		return -1;
	char *name = xstrndup(k->mv_data, k->mv_size);
	int stop = c->cb(name, (const char *const *)t, n, c->ctx);
	free(name);
	alias_targets_free(&t);
	return stop != 0;
}

int alias_list(struct db *db, int (*cb)(const char *alias, const char *const *targets, size_t n, void *ctx),
	       void *ctx, char **error_r)
{
	struct alias_list_ctx c = { cb, ctx };

	return userdb_walk(db, db->aliases, "list aliases", alias_list_one, &c, error_r);
}

/* ---- Resolution ---- */

struct resolver {
	struct db *db;
	const struct config *cfg;
	MDB_txn *txn;
	struct resolved *r;
	char **visited;         /* aliases expanded (or being expanded) */
	bool *active;           /* ... and whether still on the current path */
	size_t n_visited;
	bool loop;
	char **error_r;
};

static void resolve_push(char ***list, size_t *n, const char *s)
{
	for (size_t i = 0; i < *n; i++) {
		if (strcmp((*list)[i], s) == 0)
			return;
	}
	*list = xrealloc(*list, (*n + 1) * sizeof(**list));
	(*list)[(*n)++] = xstrdup(s);
}

static int resolve_target(struct resolver *rs, const char *target, int depth);

/* An account or alias of exactly key. Returns 1 when one exists (even if
 * it contributed nothing new), 0 when neither does, -1 on error. */
static int resolve_exact(struct resolver *rs, const char *key, int depth)
{
	MDB_val k = userdb_val(key), v;
	int rc = mdb_get(rs->txn, rs->db->users, &k, &v);

	if (rc == 0) {
		resolve_push(&rs->r->accounts, &rs->r->n_accounts, key);
		return 1;
	}
	if (rc != MDB_NOTFOUND) {
		*rs->error_r = xasprintf("database: get %s: %s", key, db_strerror(rc));
		return -1;
	}
	char **t;
	size_t n;
	int ret = alias_get_txn(rs->txn, rs->db, key, &t, &n, rs->error_r);
	if (ret != 0)
		return ret == 1 ? 0 : -1;

	size_t slot = rs->n_visited;
	for (size_t i = 0; i < rs->n_visited; i++) {
		if (strcmp(rs->visited[i], key) == 0) {
			/* Expanded before: a cycle if it is still on our path,
			 * else a diamond whose results are already in. */
			if (rs->active[i])
				rs->loop = true;
			alias_targets_free(&t);
			return 1;
		}
	}
	if (depth >= USERDB_ALIAS_DEPTH_MAX) {
		log_warn("userdb: alias %s is more than %d aliases deep; not expanded", key,
			 USERDB_ALIAS_DEPTH_MAX);
		rs->loop = true;
		alias_targets_free(&t);
		return 1;
	}
	rs->visited = xrealloc(rs->visited, (slot + 1) * sizeof(*rs->visited));
	rs->active = xrealloc(rs->active, (slot + 1) * sizeof(*rs->active));
	rs->visited[slot] = xstrdup(key);
	rs->active[slot] = true;
	rs->n_visited++;
	ret = 1;
	for (size_t i = 0; i < n && ret >= 0; i++) {
		if (resolve_target(rs, t[i], depth + 1) < 0)
			ret = -1;
	}
	rs->active[slot] = false;
	alias_targets_free(&t);
	return ret;
}

/* "local+tag@domain" -> "local@domain", or NULL when there is no tag. */
static char *resolve_strip_tag(const struct config *cfg, const char *key)
{
	const char *delim = cfg->recipient_delimiter;
	const char *at = strrchr(key, '@');

	if (delim == NULL || delim[0] == '\0' || at == NULL)
		return NULL;
	const char *d = memchr(key, delim[0], (size_t)(at - key));
	if (d == NULL || d == key)
		return NULL;
	return xasprintf("%.*s%s", (int)(d - key), key, at);
}

/* Account, alias, then the same without the "+tag". */
static int resolve_local(struct resolver *rs, const char *key, int depth)
{
	int ret = resolve_exact(rs, key, depth);
	if (ret != 0)
		return ret;
	char *base = resolve_strip_tag(rs->cfg, key);
	if (base == NULL)
		return 0;
	ret = resolve_exact(rs, base, depth);
	free(base);
	return ret;
}

static int resolve_target(struct resolver *rs, const char *target, int depth)
{
	if (!userdb_domain_is_local(rs->cfg, userdb_address_domain(target))) {
		resolve_push(&rs->r->external, &rs->r->n_external, target);
		return 0;
	}
	int ret = resolve_local(rs, target, depth);
	if (ret == 0)
		log_warn("userdb: alias target %s is no account or alias; skipped", target);
	return ret < 0 ? -1 : 0;
}

void resolved_free(struct resolved *r)
{
	for (size_t i = 0; i < r->n_accounts; i++)
		free(r->accounts[i]);
	for (size_t i = 0; i < r->n_external; i++)
		free(r->external[i]);
	free(r->accounts);
	free(r->external);
	memset(r, 0, sizeof(*r));
}

int userdb_resolve(struct db *db, const struct config *cfg, const char *address, struct resolved *r,
		   char **error_r)
{
	struct resolver rs = { .db = db, .cfg = cfg, .r = r, .error_r = error_r };
	char *key;
	const char *reason;

	memset(r, 0, sizeof(*r));
	if (userdb_address_normalize(address, &key, &reason) < 0) {
		r->status = RESOLVE_INVALID;
		return 0;
	}
	const char *domain = userdb_address_domain(key);
	if (!userdb_domain_is_local(cfg, domain)) {
		r->status = RESOLVE_NOT_LOCAL;
		free(key);
		return 0;
	}
	r->local = true;
	if (userdb_begin(db, false, &rs.txn, error_r) < 0) {
		free(key);
		return -1;
	}
	int ret = resolve_local(&rs, key, 0);
	if (ret == 0) {
		char *catch_all = xasprintf("@%s", domain);
		ret = resolve_exact(&rs, catch_all, 0);
		free(catch_all);
	}
	mdb_txn_abort(rs.txn);
	for (size_t i = 0; i < rs.n_visited; i++)
		free(rs.visited[i]);
	free(rs.visited);
	free(rs.active);
	free(key);
	if (ret < 0) {
		resolved_free(r);
		return -1;
	}
	if (r->n_accounts + r->n_external > 0)
		r->status = RESOLVE_FOUND;
	else if (rs.loop)
		r->status = RESOLVE_LOOP;
	else
		r->status = RESOLVE_NOT_FOUND;
	r->local = true;
	return 0;
}
