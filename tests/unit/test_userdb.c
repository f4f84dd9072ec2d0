#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/userdb.h"
#include "core/config.h"
#include "core/db.h"
#include "testutil.h"

#define HASH6 "$6$saltsalt$hRM5XZ86KXEw9UOmjigeVqFgULtFB2sgpC9lXQDfMib3Zgw7mEiUvBJI2EplzfAqxL5Vvwp2scFtv/uamSo5z0"

static char tmpdir[64];
static struct config cfg;
static struct db *db;

static void setup_with(const char *extra)
{
	char *error = NULL;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/postbote-userdb-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	char *text;
	ck_assert_int_ge(asprintf(&text,
				  "data_dir = %s\n"
				  "domain = example.test\n"
				  "domain = Second.Example\n"
				  "listen = smtp 127.0.0.1:2525\n"
				  "index_map_size = 64M\n%s",
				  tmpdir, extra), 0);
	ck_assert_msg(config_parse("test.conf", text, strlen(text), &cfg, &error) == 0, "%s", error);
	free(text);
	ck_assert_msg(db_open(tmpdir, cfg.index_map_size, &db, &error) == 0, "%s", error);
}

static void setup(void)
{
	setup_with("");
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void teardown(void)
{
	db_close(&db);
	config_free(&cfg);
	nftw(tmpdir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

static void add_user(const char *address)
{
	struct user u = { .address = (char *)address, .password_hash = HASH6 };
	char *error = NULL;
	ck_assert_msg(userdb_add(db, &u, &error) == 0, "%s: %s", address, error ? error : "exists");
}

static void add_alias(const char *alias, const char *target)
{
	char *error = NULL;
	ck_assert_msg(alias_add(db, alias, target, &error) == 0, "%s -> %s: %s", alias, target,
		      error ? error : "exists");
}

/* Resolve address; check the status and the lists (space-separated,
 * order-insensitive). */
static void check_resolve(const char *address, enum resolve_status status, const char *accounts,
			  const char *external)
{
	struct resolved r;
	char *error = NULL;
	char want[1024], got[1024];

	ck_assert_msg(userdb_resolve(db, &cfg, address, &r, &error) == 0, "%s", error);
	ck_assert_msg(r.status == status, "%s: status %d, want %d", address, r.status, status);
	for (int list = 0; list < 2; list++) {
		const char *w = list == 0 ? accounts : external;
		char **items = list == 0 ? r.accounts : r.external;
		size_t n = list == 0 ? r.n_accounts : r.n_external;
		size_t wn = 0;
		snprintf(want, sizeof(want), "%s", w ? w : "");
		got[0] = '\0';
		for (size_t i = 0; i < n; i++) {
			snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s", i ? " " : "", items[i]);
			char needle[300];
			snprintf(needle, sizeof(needle), " %s ", items[i]);
			char padded[1100];
			snprintf(padded, sizeof(padded), " %s ", want);
			ck_assert_msg(strstr(padded, needle) != NULL, "%s: unexpected %s (got [%s], want [%s])",
				      address, items[i], got, want);
		}
		for (char *p = strtok(want, " "); p != NULL; p = strtok(NULL, " "))
			wn++;
		ck_assert_msg(wn == n, "%s: got [%s], want [%s]", address, got, w ? w : "");
	}
	ck_assert_int_eq(r.local, status != RESOLVE_NOT_LOCAL && status != RESOLVE_INVALID);
	resolved_free(&r);
}

/* ---- addresses ---- */

START_TEST(address_validation)
{
	static const char *const good[] = {
		"alice@example.test", "Alice.Smith+tag@Example.TEST", "a@b", "x_y-z!#$%&'*=?^`{|}~@host-1.example",
		"us\xc3\xa9r@example.test", "a@localhost", "a@0.example",
	};
	static const char *const bad[] = {
		"", "alice", "@example.test", "alice@", "a@@example.test", "a@b@example.test",
		"a b@example.test", "a\tb@example.test", "a\r@example.test", "a\x7f@example.test",
		"a@exa mple.test", "a@-example.test", "a@example-.test", "a@example..test", "a@.example.test",
		"a@example.test.", "a@exa_mple.test", "a@[192.0.2.1]", ".a@example.test", "a.@example.test",
		"a..b@example.test", "a/b@example.test", "../x@example.test", "a\"b@example.test",
		"a<b@example.test", "a,b@example.test", "a:b@example.test", "a\\b@example.test",
		"a@example.test\n",
	};
	char *key;
	const char *reason;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		ck_assert_msg(userdb_address_normalize(good[i], &key, &reason) == 0, "%s: %s", good[i], reason);
		free(key);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(userdb_address_normalize(bad[i], &key, &reason) == -1, "accepted \"%s\"", bad[i]);
		ck_assert_ptr_null(key);
		ck_assert_ptr_nonnull(reason);
	}
	ck_assert_int_eq(userdb_address_normalize("Alice.Smith+Tag@Example.TEST", &key, &reason), 0);
	ck_assert_str_eq(key, "alice.smith+tag@example.test");
	free(key);

	/* Lengths: local part 64, address 254. */
	char buf[400];
	memset(buf, 'l', 64);
	snprintf(buf + 64, sizeof(buf) - 64, "@example.test");
	ck_assert_int_eq(userdb_address_normalize(buf, &key, &reason), 0);
	free(key);
	memset(buf, 'l', 65);
	snprintf(buf + 65, sizeof(buf) - 65, "@example.test");
	ck_assert_int_eq(userdb_address_normalize(buf, &key, &reason), -1);
	/* 64 + 1 + 189 = 254 with labels of 63 */
	snprintf(buf, sizeof(buf), "%.64s@%.63s.%.63s.%.61s", "llllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllll",
		 "ddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd",
		 "ddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd",
		 "ddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd");
	ck_assert_uint_eq(strlen(buf), 254);
	ck_assert_int_eq(userdb_address_normalize(buf, &key, &reason), 0);
	free(key);
	strcat(buf, "d");
	ck_assert_int_eq(userdb_address_normalize(buf, &key, &reason), -1);
	/* A label of 64 */
	ck_assert_int_eq(userdb_address_normalize(
		"a@dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd.test", &key, &reason), -1);

	/* Catch-alls are aliases only. */
	ck_assert_int_eq(userdb_alias_normalize("@Example.Test", &key, &reason), 0);
	ck_assert_str_eq(key, "@example.test");
	free(key);
	ck_assert_int_eq(userdb_alias_normalize("@", &key, &reason), -1);
	ck_assert_int_eq(userdb_alias_normalize("@bad..domain", &key, &reason), -1);

	ck_assert(userdb_domain_is_local(&cfg, "EXAMPLE.test"));
	ck_assert(userdb_domain_is_local(&cfg, "second.example"));
	ck_assert(!userdb_domain_is_local(&cfg, "example.org"));
	ck_assert_str_eq(userdb_address_domain("a@b.c"), "b.c");
}
END_TEST

/* ---- accounts ---- */

START_TEST(add_get_del)
{
	struct user u = { 0 }, got;
	char *error = NULL;

	u.address = "Alice@Example.Test";
	u.password_hash = HASH6;
	u.quota_bytes = 1 << 20;
	u.quota_messages = 100;
	ck_assert_int_eq(userdb_add(db, &u, &error), 0);
	ck_assert_int_eq(userdb_add(db, &u, &error), 1);            /* exists */
	u.address = "ALICE@example.test";
	ck_assert_int_eq(userdb_add(db, &u, &error), 1);            /* case-insensitive */

	ck_assert_int_eq(userdb_get(db, "alice@EXAMPLE.TEST", &got, &error), 0);
	ck_assert_str_eq(got.address, "alice@example.test");
	ck_assert_str_eq(got.password_hash, HASH6);
	ck_assert(!got.disabled);
	ck_assert_ptr_null(got.maildir);
	ck_assert_uint_eq(got.quota_bytes, 1 << 20);
	ck_assert_uint_eq(got.quota_messages, 100);
	ck_assert_int_gt(got.created, 1600000000);
	user_free(&got);
	ck_assert_ptr_null(got.address);

	ck_assert_int_eq(userdb_get(db, "bob@example.test", &got, &error), 1);
	ck_assert_int_eq(userdb_get(db, "not an address", &got, &error), 1);

	/* put replaces */
	u.address = "alice@example.test";
	u.disabled = true;
	u.maildir = "/srv/mail/alice";
	u.created = 1234;
	ck_assert_int_eq(userdb_put(db, &u, &error), 0);
	ck_assert_int_eq(userdb_get(db, "alice@example.test", &got, &error), 0);
	ck_assert(got.disabled);
	ck_assert_str_eq(got.maildir, "/srv/mail/alice");
	ck_assert_int_eq(got.created, 1234);
	user_free(&got);

	ck_assert_int_eq(userdb_del(db, "ALICE@example.test", &error), 0);
	ck_assert_int_eq(userdb_del(db, "alice@example.test", &error), 1);
	ck_assert_int_eq(userdb_get(db, "alice@example.test", &got, &error), 1);

	/* Bad records are refused. */
	struct user bad = { .address = "x y@example.test", .password_hash = HASH6 };
	ck_assert_int_eq(userdb_put(db, &bad, &error), -1);
	ck_assert_ptr_nonnull(error);
	free(error);
	error = NULL;
	bad.address = "x@example.test";
	bad.password_hash = NULL;
	ck_assert_int_eq(userdb_put(db, &bad, &error), -1);
	free(error);
	error = NULL;
	bad.password_hash = "abc:def";
	ck_assert_int_eq(userdb_put(db, &bad, &error), -1);
	free(error);
	error = NULL;
	bad.password_hash = HASH6;
	bad.maildir = "a\nb";
	ck_assert_int_eq(userdb_put(db, &bad, &error), -1);
	free(error);
}
END_TEST

static int collect(const struct user *u, void *ctx)
{
	char *buf = ctx;
	strcat(buf, u->address);
	strcat(buf, u->disabled ? "(d) " : " ");
	return 0;
}

static int stop_after_one(const struct user *u, void *ctx)
{
	(void)u;
	(*(int *)ctx)++;
	return 1;
}

START_TEST(list_and_modify)
{
	char buf[512] = "";
	char *error = NULL;
	int calls = 0;

	ck_assert_int_eq(userdb_list(db, collect, buf, &error), 0);
	ck_assert_str_eq(buf, "");
	add_user("carol@example.test");
	add_user("Alice@example.test");
	add_user("bob@second.example");
	ck_assert_int_eq(userdb_list(db, collect, buf, &error), 0);
	ck_assert_str_eq(buf, "alice@example.test bob@second.example carol@example.test ");
	ck_assert_int_eq(userdb_list(db, stop_after_one, &calls, &error), 0);
	ck_assert_int_eq(calls, 1);
}
END_TEST

static int set_disabled(struct user *u, void *ctx)
{
	u->disabled = true;
	free(u->maildir);
	u->maildir = strdup((const char *)ctx);
	return 0;
}

static int refuse(struct user *u, void *ctx)
{
	(void)ctx;
	u->disabled = false;
	return 1;
}

START_TEST(modify_and_import)
{
	struct user got;
	char *error = NULL;

	add_user("alice@example.test");
	ck_assert_int_eq(userdb_modify(db, "Alice@Example.Test", set_disabled, "custom/alice", &error), 0);
	ck_assert_int_eq(userdb_modify(db, "nobody@example.test", set_disabled, "x", &error), 1);
	ck_assert_int_eq(userdb_modify(db, "alice@example.test", refuse, NULL, &error), 2);
	ck_assert_int_eq(userdb_get(db, "alice@example.test", &got, &error), 0);
	ck_assert(got.disabled);
	ck_assert_str_eq(got.maildir, "custom/alice");
	user_free(&got);

	char *addresses[] = { "alice@example.test", "new@example.test" };
	char *hashes[] = { "$2b$05$9OO0ZWK78v5snlbIwDlDoe6sZS5PG22LhyOrEGsEiIChqcRniTV.e", HASH6 };
	size_t added, updated;
	ck_assert_int_eq(userdb_import(db, addresses, hashes, 2, &added, &updated, &error), 0);
	ck_assert_uint_eq(added, 1);
	ck_assert_uint_eq(updated, 1);
	ck_assert_int_eq(userdb_get(db, "alice@example.test", &got, &error), 0);
	ck_assert_str_eq(got.password_hash, hashes[0]);
	ck_assert(got.disabled); /* the rest kept */
	ck_assert_str_eq(got.maildir, "custom/alice");
	user_free(&got);
	ck_assert_int_eq(userdb_get(db, "new@example.test", &got, &error), 0);
	user_free(&got);

	/* All or nothing. */
	char *addresses2[] = { "third@example.test", "bad address" };
	ck_assert_int_eq(userdb_import(db, addresses2, hashes, 2, &added, &updated, &error), -1);
	free(error);
	ck_assert_int_eq(userdb_get(db, "third@example.test", &got, &error), 1);
}
END_TEST

START_TEST(maildir_and_quota)
{
	struct user u = { .address = "alice@example.test", .password_hash = HASH6 };
	char *p = userdb_maildir_path(&cfg, &u);
	char want[256];

	snprintf(want, sizeof(want), "%s/mail/example.test/alice", tmpdir);
	ck_assert_str_eq(p, want);
	free(p);
	u.maildir = "/srv/mail/alice";
	p = userdb_maildir_path(&cfg, &u);
	ck_assert_str_eq(p, "/srv/mail/alice");
	free(p);
	u.maildir = "other/alice";
	p = userdb_maildir_path(&cfg, &u);
	snprintf(want, sizeof(want), "%s/other/alice", tmpdir);
	ck_assert_str_eq(p, want);
	free(p);

	cfg.quota_bytes = 1000;
	cfg.quota_messages = 10;
	ck_assert_uint_eq(userdb_quota_bytes(&cfg, &u), 1000);
	ck_assert_uint_eq(userdb_quota_messages(&cfg, &u), 10);
	u.quota_bytes = 5000;
	u.quota_messages = 50;
	ck_assert_uint_eq(userdb_quota_bytes(&cfg, &u), 5000);
	ck_assert_uint_eq(userdb_quota_messages(&cfg, &u), 50);
	u.quota_bytes = USERDB_QUOTA_UNLIMITED_BYTES;
	u.quota_messages = USERDB_QUOTA_UNLIMITED_MESSAGES;
	ck_assert_uint_eq(userdb_quota_bytes(&cfg, &u), 0);
	ck_assert_uint_eq(userdb_quota_messages(&cfg, &u), 0);
}
END_TEST

START_TEST(damaged_records)
{
	MDB_txn *txn;
	struct user u;
	char *error = NULL;
	char **t;
	size_t n;

	ck_assert_int_eq(mdb_txn_begin(db->env, NULL, 0, &txn), 0);
	MDB_val k = { 18, "alice@example.test" }, v = { 3, "\x01\x00\x00" };
	ck_assert_int_eq(mdb_put(txn, db->users, &k, &v, 0), 0);
	MDB_val k2 = { 16, "bob@example.test" }, v2 = { 30, "\x02xxxxxxxxxxxxxxxxxxxxxxxxxxxxx" };
	ck_assert_int_eq(mdb_put(txn, db->users, &k2, &v2, 0), 0);
	MDB_val k3 = { 18, "sales@example.test" }, v3 = { 3, "\x01" "ab" };   /* no final NUL */
	ck_assert_int_eq(mdb_put(txn, db->aliases, &k3, &v3, 0), 0);
	ck_assert_int_eq(mdb_txn_commit(txn), 0);

	ck_assert_int_eq(userdb_get(db, "alice@example.test", &u, &error), -1);
	ck_assert_ptr_nonnull(strstr(error, "alice@example.test"));
	free(error);
	error = NULL;
	ck_assert_int_eq(userdb_get(db, "bob@example.test", &u, &error), -1);
	free(error);
	error = NULL;
	ck_assert_int_eq(alias_get(db, "sales@example.test", &t, &n, &error), -1);
	free(error);
	error = NULL;
	struct resolved r;
	ck_assert_int_eq(userdb_resolve(db, &cfg, "sales@example.test", &r, &error), -1);
	free(error);
}
END_TEST

/* ---- aliases ---- */

static int collect_alias(const char *alias, const char *const *targets, size_t n, void *ctx)
{
	char *buf = ctx;
	strcat(buf, alias);
	strcat(buf, "=");
	for (size_t i = 0; i < n; i++) {
		strcat(buf, targets[i]);
		strcat(buf, i + 1 < n ? "," : " ");
	}
	return 0;
}

START_TEST(aliases)
{
	char *error = NULL;
	char **t;
	size_t n;
	char buf[1024] = "";

	add_alias("Sales@Example.Test", "alice@example.test");
	add_alias("sales@example.test", "Bob@Example.Test");
	add_alias("sales@example.test", "someone@elsewhere.example");
	ck_assert_int_eq(alias_add(db, "sales@example.test", "BOB@example.test", &error), 1); /* dup */
	ck_assert_int_eq(alias_add(db, "sales@example.test", "sales@example.test", &error), -1);
	free(error);
	error = NULL;
	ck_assert_int_eq(alias_add(db, "bad alias", "a@example.test", &error), -1);
	free(error);
	error = NULL;
	ck_assert_int_eq(alias_add(db, "x@example.test", "@example.test", &error), -1); /* target no catch-all */
	free(error);
	error = NULL;
	add_alias("@second.example", "alice@example.test");

	ck_assert_int_eq(alias_get(db, "SALES@example.test", &t, &n, &error), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(t[0], "alice@example.test");
	ck_assert_str_eq(t[1], "bob@example.test");
	ck_assert_str_eq(t[2], "someone@elsewhere.example");
	ck_assert_ptr_null(t[3]);
	alias_targets_free(&t);
	ck_assert_ptr_null(t);
	ck_assert_int_eq(alias_get(db, "nobody@example.test", &t, &n, &error), 1);

	ck_assert_int_eq(alias_list(db, collect_alias, buf, &error), 0);
	ck_assert_str_eq(buf, "@second.example=alice@example.test "
			 "sales@example.test=alice@example.test,bob@example.test,someone@elsewhere.example ");

	ck_assert_int_eq(alias_del(db, "sales@example.test", "bob@example.test", &error), 0);
	ck_assert_int_eq(alias_del(db, "sales@example.test", "bob@example.test", &error), 1);
	ck_assert_int_eq(alias_get(db, "sales@example.test", &t, &n, &error), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(t[1], "someone@elsewhere.example");
	alias_targets_free(&t);
	/* Removing the last target removes the alias. */
	ck_assert_int_eq(alias_del(db, "sales@example.test", "alice@example.test", &error), 0);
	ck_assert_int_eq(alias_del(db, "sales@example.test", "someone@elsewhere.example", &error), 0);
	ck_assert_int_eq(alias_get(db, "sales@example.test", &t, &n, &error), 1);
	ck_assert_int_eq(alias_del(db, "@second.example", NULL, &error), 0);
	ck_assert_int_eq(alias_del(db, "@second.example", NULL, &error), 1);
	buf[0] = '\0';
	ck_assert_int_eq(alias_list(db, collect_alias, buf, &error), 0);
	ck_assert_str_eq(buf, "");
}
END_TEST

START_TEST(alias_target_limit)
{
	char *error = NULL;
	char target[64];

	for (int i = 0; i < USERDB_ALIAS_TARGETS_MAX; i++) {
		snprintf(target, sizeof(target), "t%d@elsewhere.example", i);
		ck_assert_int_eq(alias_add(db, "big@example.test", target, &error), 0);
	}
	ck_assert_int_eq(alias_add(db, "big@example.test", "one-more@elsewhere.example", &error), -1);
	ck_assert_ptr_nonnull(error);
	free(error);
	error = NULL;
	ck_assert_int_eq(alias_add(db, "big@example.test", "t5@elsewhere.example", &error), 1);
	struct resolved r;
	ck_assert_int_eq(userdb_resolve(db, &cfg, "big@example.test", &r, &error), 0);
	ck_assert_int_eq(r.status, RESOLVE_FOUND);
	ck_assert_uint_eq(r.n_accounts, 0);
	ck_assert_uint_eq(r.n_external, USERDB_ALIAS_TARGETS_MAX);
	resolved_free(&r);
}
END_TEST

/* ---- resolution ---- */

START_TEST(resolve_accounts_and_aliases)
{
	add_user("alice@example.test");
	add_user("bob@example.test");
	add_user("carol@second.example");
	add_alias("team@example.test", "alice@example.test");
	add_alias("team@example.test", "bob@example.test");
	add_alias("team@example.test", "Friend@Elsewhere.Example");
	add_alias("all@example.test", "team@example.test");        /* alias -> alias */
	add_alias("all@example.test", "carol@second.example");
	add_alias("all@example.test", "alice@example.test");       /* duplicate via team */
	add_alias("ext@example.test", "x@elsewhere.example");
	add_alias("ghost@example.test", "nobody@example.test");    /* local target missing */

	check_resolve("alice@example.test", RESOLVE_FOUND, "alice@example.test", NULL);
	check_resolve("ALICE@Example.TEST", RESOLVE_FOUND, "alice@example.test", NULL);
	check_resolve("team@example.test", RESOLVE_FOUND, "alice@example.test bob@example.test",
		      "friend@elsewhere.example");
	check_resolve("all@example.test", RESOLVE_FOUND,
		      "alice@example.test bob@example.test carol@second.example", "friend@elsewhere.example");
	check_resolve("ext@example.test", RESOLVE_FOUND, NULL, "x@elsewhere.example");
	check_resolve("ghost@example.test", RESOLVE_NOT_FOUND, NULL, NULL);
	check_resolve("nobody@example.test", RESOLVE_NOT_FOUND, NULL, NULL);
	check_resolve("carol@SECOND.example", RESOLVE_FOUND, "carol@second.example", NULL);
	check_resolve("alice@example.org", RESOLVE_NOT_LOCAL, NULL, NULL);
	check_resolve("bad address@example.test", RESOLVE_INVALID, NULL, NULL);
	check_resolve("", RESOLVE_INVALID, NULL, NULL);

	/* An account wins over an alias of the same address. */
	add_alias("bob@example.test", "alice@example.test");
	check_resolve("bob@example.test", RESOLVE_FOUND, "bob@example.test", NULL);
}
END_TEST

START_TEST(resolve_plus_addressing)
{
	add_user("alice@example.test");
	add_alias("team@example.test", "alice@example.test");
	add_user("alice+exact@example.test");

	check_resolve("alice+news@example.test", RESOLVE_FOUND, "alice@example.test", NULL);
	check_resolve("Alice+News+More@example.test", RESOLVE_FOUND, "alice@example.test", NULL);
	check_resolve("team+x@example.test", RESOLVE_FOUND, "alice@example.test", NULL);
	/* An exact account with the delimiter in its name comes first. */
	check_resolve("alice+exact@example.test", RESOLVE_FOUND, "alice+exact@example.test", NULL);
	/* Nothing before the delimiter: no stripping. */
	check_resolve("+alice@example.test", RESOLVE_NOT_FOUND, NULL, NULL);
	check_resolve("bob+x@example.test", RESOLVE_NOT_FOUND, NULL, NULL);
	/* Alias targets with a tag resolve too. */
	add_alias("list@example.test", "alice+list@example.test");
	check_resolve("list@example.test", RESOLVE_FOUND, "alice@example.test", NULL);
}
END_TEST

START_TEST(resolve_without_delimiter)
{
	teardown();
	setup_with("recipient_delimiter =\n");
	ck_assert_ptr_null(cfg.recipient_delimiter);
	add_user("alice@example.test");
	check_resolve("alice+news@example.test", RESOLVE_NOT_FOUND, NULL, NULL);
	check_resolve("alice@example.test", RESOLVE_FOUND, "alice@example.test", NULL);
	teardown();

	setup_with("recipient_delimiter = -\n");
	add_user("alice@example.test");
	check_resolve("alice-news@example.test", RESOLVE_FOUND, "alice@example.test", NULL);
	check_resolve("alice+news@example.test", RESOLVE_NOT_FOUND, NULL, NULL);
}
END_TEST

START_TEST(resolve_catch_all)
{
	add_user("alice@example.test");
	add_user("postmaster@second.example");
	add_alias("@example.test", "alice@example.test");
	add_alias("sales@example.test", "bob@elsewhere.example");

	check_resolve("anything@example.test", RESOLVE_FOUND, "alice@example.test", NULL);
	check_resolve("any+thing@example.test", RESOLVE_FOUND, "alice@example.test", NULL);
	/* Exact accounts and aliases first. */
	check_resolve("sales@example.test", RESOLVE_FOUND, NULL, "bob@elsewhere.example");
	/* The catch-all is per domain. */
	check_resolve("anything@second.example", RESOLVE_NOT_FOUND, NULL, NULL);
	/* A catch-all forwarding elsewhere. */
	add_alias("@second.example", "archive@elsewhere.example");
	add_alias("@second.example", "alice@example.test");
	check_resolve("x@second.example", RESOLVE_FOUND, "alice@example.test", "archive@elsewhere.example");
	check_resolve("postmaster@second.example", RESOLVE_FOUND, "postmaster@second.example", NULL);
	/* Catch-alls do not apply to alias targets. */
	add_alias("fwd@example.test", "nobody@second.example");
	check_resolve("fwd@example.test", RESOLVE_NOT_FOUND, NULL, NULL);
}
END_TEST

START_TEST(resolve_loops)
{
	char a[64], b[64];

	add_user("alice@example.test");
	/* a <-> b, and nothing else: a loop. */
	add_alias("a@example.test", "b@example.test");
	add_alias("b@example.test", "a@example.test");
	check_resolve("a@example.test", RESOLVE_LOOP, NULL, NULL);
	check_resolve("b@example.test", RESOLVE_LOOP, NULL, NULL);
	/* A self-loop through plus addressing. */
	add_alias("self@example.test", "self+x@example.test");
	check_resolve("self@example.test", RESOLVE_LOOP, NULL, NULL);
	/* A loop beside a real target still delivers, once. */
	add_alias("c@example.test", "d@example.test");
	add_alias("c@example.test", "alice@example.test");
	add_alias("d@example.test", "c@example.test");
	add_alias("d@example.test", "alice@example.test");
	check_resolve("c@example.test", RESOLVE_FOUND, "alice@example.test", NULL);

	/* A chain of 8 aliases is expanded... */
	for (int i = 1; i < 8; i++) {
		snprintf(a, sizeof(a), "chain%d@example.test", i);
		snprintf(b, sizeof(b), "chain%d@example.test", i + 1);
		add_alias(a, b);
	}
	add_alias("chain8@example.test", "alice@example.test");
	check_resolve("chain1@example.test", RESOLVE_FOUND, "alice@example.test", NULL);
	/* ... one of 9 is not. */
	add_alias("chain0@example.test", "chain1@example.test");
	check_resolve("chain0@example.test", RESOLVE_LOOP, NULL, NULL);

	/* Diamonds: every path ends at alice, who gets the mail once. */
	for (int i = 0; i < 6; i++) {
		snprintf(a, sizeof(a), "w%d@example.test", i);
		snprintf(b, sizeof(b), "w%d@example.test", i + 1);
		add_alias(a, b);
		snprintf(b, sizeof(b), "v%d@example.test", i + 1);
		add_alias(a, b);
		snprintf(a, sizeof(a), "v%d@example.test", i);
		snprintf(b, sizeof(b), "w%d@example.test", i + 1);
		add_alias(a, b);
	}
	add_alias("w6@example.test", "alice@example.test");
	add_alias("v6@example.test", "alice@example.test");
	add_alias("v6@example.test", "x@elsewhere.example");
	check_resolve("w0@example.test", RESOLVE_FOUND, "alice@example.test", "x@elsewhere.example");
}
END_TEST

static Suite *userdb_suite(void)
{
	Suite *s = suite_create("userdb");
	TCase *tc = tcase_create("core");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, address_validation);
	tcase_add_test(tc, add_get_del);
	tcase_add_test(tc, list_and_modify);
	tcase_add_test(tc, modify_and_import);
	tcase_add_test(tc, maildir_and_quota);
	tcase_add_test(tc, damaged_records);
	tcase_add_test(tc, aliases);
	tcase_add_test(tc, alias_target_limit);
	tcase_add_test(tc, resolve_accounts_and_aliases);
	tcase_add_test(tc, resolve_plus_addressing);
	tcase_add_test(tc, resolve_without_delimiter);
	tcase_add_test(tc, resolve_catch_all);
	tcase_add_test(tc, resolve_loops);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run(userdb_suite());
}
