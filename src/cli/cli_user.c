/*
 * postbote user add|del|passwd|list|disable|enable|import
 *
 * Each action is one short LMDB transaction (import: one for the whole
 * file), so it is safe beside a running server. Arguments are checked
 * before the database is opened: a typo creates no data directory.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/passwd.h"
#include "auth/userdb.h"
#include "cli/cli.h"
#include "core/xalloc.h"

static void cli_user_usage(void)
{
	fprintf(stderr,
		"usage: postbote user add ADDRESS [--maildir PATH] [--quota SIZE] [--password-stdin]\n"
		"       postbote user del ADDRESS\n"
		"       postbote user passwd ADDRESS [--password-stdin]\n"
		"       postbote user list\n"
		"       postbote user disable ADDRESS\n"
		"       postbote user enable ADDRESS\n"
		"       postbote user import FILE      (lines \"address:crypt-hash\"; - = stdin)\n"
		"\n"
		"Every action takes -c FILE (default: the development setup in ./postbote-data).\n"
		"--maildir PATH is absolute or relative to the data directory; the default is\n"
		"DATA/mail/DOMAIN/USER. --quota SIZE takes a unit (500M, 2G); none = the default.\n"
		"--password-stdin reads the password as one line of standard input; otherwise\n"
		"it is asked for on the terminal.\n");
}

/* Normalize address and check that its domain is local; prints why not.
 * Returns 0 with the key, or an exit code. */
static int cli_user_address(const struct cli *cli, const char *address, char **key_r)
{
	const char *reason;

	if (userdb_address_normalize(address, key_r, &reason) < 0) {
		fprintf(stderr, "postbote: %s: %s\n", address, reason);
		return CLI_EXIT_DATAERR;
	}
	const char *domain = userdb_address_domain(*key_r);
	if (!userdb_domain_is_local(&cli->cfg, domain)) {
		fprintf(stderr, "postbote: %s: %s is not a local domain of this server (", address, domain);
		for (size_t i = 0; i < cli->cfg.n_domains; i++)
			fprintf(stderr, "%s%s", i ? ", " : "local domains: ", cli->cfg.domains[i]);
		fprintf(stderr, "); add \"domain = %s\" to the configuration first\n", domain);
		free(*key_r);
		*key_r = NULL;
		return CLI_EXIT_DATAERR;
	}
	return 0;
}

static int cli_user_dberror(char *error)
{
	fprintf(stderr, "postbote: %s\n", error);
	free(error);
	return CLI_EXIT_IOERR;
}

/* Open the database once the arguments are known to be good. */
static int cli_user_reopen(int argc, char **argv, struct cli *cli)
{
	cli_close(cli);
	return cli_open(argc, argv, true, cli);
}

static int cli_user_noaccount(const char *key)
{
	fprintf(stderr, "postbote: no account %s\n", key);
	return CLI_EXIT_NOUSER;
}

/* Ask for a password ("PROMPT for KEY: ") and hash it with the configured
 * scheme; the password is wiped. Returns 0 with *hash_r (caller frees), or
 * an exit code after saying why. */
static int cli_user_ask_hash(const struct cli *cli, const char *prompt, const char *key, char **hash_r)
{
	char *text = xasprintf("%s for %s: ", prompt, key);
	char *password = NULL, *error = NULL;
	int ret;

	*hash_r = NULL;
	ret = cli_read_password(cli, text, true, &password);
	free(text);
	if (ret < 0)
		return CLI_EXIT_DATAERR;
	ret = passwd_hash(cli->cfg.password_scheme, password, hash_r, &error);
	explicit_bzero(password, strlen(password));
	free(password);
	if (ret < 0) {
		fprintf(stderr, "postbote: %s\n", error);
		free(error);
		return CLI_EXIT_SOFTWARE;
	}
	return 0;
}

static int cli_user_add(int argc, char **argv, struct cli *cli)
{
	const char *address = NULL, *maildir = NULL, *quota = NULL;
	uint64_t quota_bytes = 0;
	char *key = NULL, *hash = NULL, *error = NULL;
	int ret;

	for (int i = 1; i < cli->argc; i++) {
		const char *a = cli->argv[i];
		if (strcmp(a, "--maildir") == 0 && i + 1 < cli->argc)
			maildir = cli->argv[++i];
		else if (strncmp(a, "--maildir=", 10) == 0)
			maildir = a + 10;
		else if (strcmp(a, "--quota") == 0 && i + 1 < cli->argc)
			quota = cli->argv[++i];
		else if (strncmp(a, "--quota=", 8) == 0)
			quota = a + 8;
		else if (strcmp(a, "--") == 0)
			continue;
		else if (a[0] == '-' && address == NULL && strcmp(cli->argv[i - 1], "--") != 0)
			goto usage;
		else if (address == NULL)
			address = a;
		else
			goto usage;
	}
	if (address == NULL)
		goto usage;
	if (maildir != NULL) {
		if (maildir[0] == '\0' || strlen(maildir) > 4095 || strpbrk(maildir, "\n\r\t") != NULL) {
			fprintf(stderr, "postbote: --maildir: an empty, overlong or unprintable path\n");
			return CLI_EXIT_DATAERR;
		}
	}
	if (quota != NULL && strcmp(quota, "none") != 0 && config_parse_size(quota, &quota_bytes) < 0) {
		fprintf(stderr, "postbote: --quota: \"%s\" is not a size (e.g. 500M, 2G, none)\n", quota);
		return CLI_EXIT_USAGE;
	}
	if ((ret = cli_user_address(cli, address, &key)) != 0)
		return ret;
	if ((ret = cli_user_reopen(argc, argv, cli)) != 0) {
		free(key);
		return ret;
	}

	struct user u = { 0 };
	ret = userdb_get(cli->db, key, &u, &error);
	user_free(&u);
	if (ret < 0) {
		free(key);
		return cli_user_dberror(error);
	}
	if (ret == 0) {
		fprintf(stderr, "postbote: %s already exists (change its password with \"postbote user passwd %s\")\n",
			key, key);
		free(key);
		return CLI_EXIT_DATAERR;
	}

	if ((ret = cli_user_ask_hash(cli, "Password", key, &hash)) != 0) {
		free(key);
		return ret;
	}

	u.address = key;
	u.password_hash = hash;
	u.maildir = maildir ? xstrdup(maildir) : NULL;
	u.quota_bytes = quota_bytes;
	ret = userdb_add(cli->db, &u, &error);
	if (ret < 0) {
		user_free(&u);
		return cli_user_dberror(error);
	}
	if (ret == 1) {
		fprintf(stderr, "postbote: %s already exists\n", key);
		user_free(&u);
		return CLI_EXIT_DATAERR;
	}
	char *path = userdb_maildir_path(&cli->cfg, &u);
	printf("added %s\nMaildir: %s\n", key, path);
	char **targets;
	size_t n;
	if (alias_get(cli->db, key, &targets, &n, &error) == 0) {
		fprintf(stderr, "postbote: note: an alias %s also exists; the account takes precedence\n", key);
		alias_targets_free(&targets);
	}
	free(error);
	free(path);
	user_free(&u);
	return CLI_EXIT_OK;
usage:
	cli_user_usage();
	return CLI_EXIT_USAGE;
}

/* The one ADDRESS argument of del, passwd, disable and enable. */
static const char *cli_user_one_address(const struct cli *cli)
{
	const char *address = NULL;

	for (int i = 1; i < cli->argc; i++) {
		if (strcmp(cli->argv[i], "--") == 0)
			continue;
		if (address != NULL || (cli->argv[i][0] == '-' && strcmp(cli->argv[i - 1], "--") != 0))
			return NULL;
		address = cli->argv[i];
	}
	return address;
}

/* The ADDRESS of del, passwd, disable and enable, normalized, and the
 * database opened. No local-domain check: an account of a domain that has
 * since been removed from the configuration must still be deletable (and
 * so on). Returns 0 with *key_r (caller frees), or an exit code after
 * saying why. */
static int cli_user_one_key(int argc, char **argv, struct cli *cli, char **key_r)
{
	const char *address = cli_user_one_address(cli);
	const char *reason;
	int ret;

	*key_r = NULL;
	if (address == NULL) {
		cli_user_usage();
		return CLI_EXIT_USAGE;
	}
	if (userdb_address_normalize(address, key_r, &reason) < 0) {
		fprintf(stderr, "postbote: %s: %s\n", address, reason);
		return CLI_EXIT_DATAERR;
	}
	if ((ret = cli_user_reopen(argc, argv, cli)) != 0) {
		free(*key_r);
		*key_r = NULL;
		return ret;
	}
	return 0;
}

/* Look up the account key into *u. Returns 0, or an exit code after saying
 * why (u is then empty). */
static int cli_user_get(const struct cli *cli, const char *key, struct user *u)
{
	char *error = NULL;
	int ret = userdb_get(cli->db, key, u, &error);

	if (ret < 0)
		return cli_user_dberror(error);
	if (ret == 1)
		return cli_user_noaccount(key);
	return 0;
}

static int cli_user_del(int argc, char **argv, struct cli *cli)
{
	char *key, *error = NULL;
	struct user u;
	int ret;

	if ((ret = cli_user_one_key(argc, argv, cli, &key)) != 0)
		return ret;
	if ((ret = cli_user_get(cli, key, &u)) != 0) {
		free(key);
		return ret;
	}
	char *path = userdb_maildir_path(&cli->cfg, &u);
	user_free(&u);
	ret = userdb_del(cli->db, key, &error);
	if (ret < 0) {
		free(path);
		free(key);
		return cli_user_dberror(error);
	}
	if (ret == 1) {
		ret = cli_user_noaccount(key);
		free(path);
		free(key);
		return ret;
	}
	printf("deleted %s (its Maildir %s is left in place)\n", key, path);
	free(path);
	free(key);
	return CLI_EXIT_OK;
}

struct cli_user_change {
	const char *hash;   /* new password hash, or NULL */
	int disabled;       /* 0/1 to set, -1 to leave */
	bool unchanged;     /* set by the callback: nothing to do */
};

static int cli_user_apply(struct user *u, void *ctx)
{
	struct cli_user_change *c = ctx;

	if (c->hash != NULL) {
		free(u->password_hash);
		u->password_hash = xstrdup(c->hash);
	}
	if (c->disabled >= 0) {
		if (u->disabled == (c->disabled != 0)) {
			c->unchanged = true;
			return 1;
		}
		u->disabled = c->disabled != 0;
	}
	return 0;
}

static int cli_user_change(struct cli *cli, const char *key, struct cli_user_change *c)
{
	char *error = NULL;
	int ret = userdb_modify(cli->db, key, cli_user_apply, c, &error);

	if (ret < 0)
		return cli_user_dberror(error);
	if (ret == 1)
		return cli_user_noaccount(key);
	return CLI_EXIT_OK;
}

static int cli_user_passwd(int argc, char **argv, struct cli *cli)
{
	char *key, *hash = NULL;
	struct user u;
	int ret;

	if ((ret = cli_user_one_key(argc, argv, cli, &key)) != 0)
		return ret;
	ret = cli_user_get(cli, key, &u);
	user_free(&u);
	if (ret == 0)
		ret = cli_user_ask_hash(cli, "New password", key, &hash);
	if (ret != 0) {
		free(key);
		return ret;
	}
	struct cli_user_change c = { .hash = hash, .disabled = -1 };
	ret = cli_user_change(cli, key, &c);
	if (ret == CLI_EXIT_OK)
		printf("changed the password of %s\n", key);
	free(hash);
	free(key);
	return ret;
}

static int cli_user_able(int argc, char **argv, struct cli *cli, bool disable)
{
	char *key;
	int ret;

	if ((ret = cli_user_one_key(argc, argv, cli, &key)) != 0)
		return ret;
	struct cli_user_change c = { .disabled = disable ? 1 : 0 };
	ret = cli_user_change(cli, key, &c);
	if (ret == CLI_EXIT_OK)
		printf("%s %s%s\n", key, c.unchanged ? "was already " : "", disable ? "disabled" : "enabled");
	free(key);
	return ret;
}

static int cli_user_list_one(const struct user *u, void *ctx)
{
	(void)ctx;
	printf("%s%s\n", u->address, u->disabled ? "\tdisabled" : "");
	return 0;
}

static int cli_user_list(int argc, char **argv, struct cli *cli)
{
	char *error = NULL;
	int ret;

	if (cli->argc != 1) {
		cli_user_usage();
		return CLI_EXIT_USAGE;
	}
	if ((ret = cli_user_reopen(argc, argv, cli)) != 0)
		return ret;
	if (userdb_list(cli->db, cli_user_list_one, NULL, &error) < 0)
		return cli_user_dberror(error);
	return CLI_EXIT_OK;
}

/* ---- import ---- */

struct cli_import {
	char **addresses;
	char **hashes;
	size_t *lines;
	size_t n;
	size_t errors;
	size_t legacy;
};

static void cli_import_free(struct cli_import *im)
{
	for (size_t i = 0; i < im->n; i++) {
		free(im->addresses[i]);
		free(im->hashes[i]);
	}
	free(im->addresses);
	free(im->hashes);
	free(im->lines);
}

/* One line of the file: "address:hash[:more fields]". */
static void cli_import_line(const struct cli *cli, const char *file, size_t lineno, char *line,
			    struct cli_import *im)
{
	const char *reason;
	char *key;

	size_t len = strlen(line);
	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		line[--len] = '\0';
	char *p = line;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '\0' || *p == '#')
		return;
	char *colon = strchr(p, ':');
	if (colon == NULL) {
		fprintf(stderr, "%s:%zu: expected \"address:hash\"\n", file, lineno);
		im->errors++;
		return;
	}
	*colon = '\0';
	char *hash = colon + 1;
	char *end = strchr(hash, ':');
	if (end != NULL)
		*end = '\0'; /* passwd-file and shadow fields after the hash */

	if (userdb_address_normalize(p, &key, &reason) < 0) {
		fprintf(stderr, "%s:%zu: %s: %s\n", file, lineno, p, reason);
		im->errors++;
		return;
	}
	if (!userdb_domain_is_local(&cli->cfg, userdb_address_domain(key))) {
		fprintf(stderr, "%s:%zu: %s: %s is not a local domain\n", file, lineno, key,
			userdb_address_domain(key));
		im->errors++;
		free(key);
		return;
	}
	/* Dovecot's "{SHA512-CRYPT}$6$..." and "{BLF-CRYPT}$2y$...": the
	 * scheme is implied by the crypt prefix, so it is dropped. */
	char scheme[64] = "";
	if (hash[0] == '{') {
		char *close = strchr(hash, '}');
		if (close == NULL || close - hash >= (long)sizeof(scheme)) {
			fprintf(stderr, "%s:%zu: %s: unterminated {SCHEME} prefix\n", file, lineno, key);
			im->errors++;
			free(key);
			return;
		}
		memcpy(scheme, hash, (size_t)(close - hash) + 1);
		scheme[close - hash + 1] = '\0';
		hash = close + 1;
	}
	int check = passwd_hash_check(hash, &reason);
	if (check < 0) {
		fprintf(stderr, "%s:%zu: %s: %s%s%s\n", file, lineno, key, scheme, scheme[0] ? ": " : "", reason);
		im->errors++;
		free(key);
		return;
	}
	if (check == 1) {
		fprintf(stderr, "%s:%zu: %s: note: a legacy hash method; ask the user to set a new password\n",
			file, lineno, key);
		im->legacy++;
	}
	for (size_t i = 0; i < im->n; i++) {
		if (strcmp(im->addresses[i], key) == 0) {
			fprintf(stderr, "%s:%zu: %s: already given on line %zu\n", file, lineno, key, im->lines[i]);
			im->errors++;
			free(key);
			return;
		}
	}
	im->addresses = xrealloc(im->addresses, (im->n + 1) * sizeof(*im->addresses));
	im->hashes = xrealloc(im->hashes, (im->n + 1) * sizeof(*im->hashes));
	im->lines = xrealloc(im->lines, (im->n + 1) * sizeof(*im->lines));
	im->addresses[im->n] = key;
	im->hashes[im->n] = xstrdup(hash);
	im->lines[im->n] = lineno;
	im->n++;
}

static int cli_user_import(int argc, char **argv, struct cli *cli)
{
	const char *file = NULL;
	struct cli_import im = { 0 };
	char *line = NULL, *error = NULL;
	size_t cap = 0, lineno = 0;
	int ret;

	for (int i = 1; i < cli->argc; i++) {
		if (strcmp(cli->argv[i], "--") == 0)
			continue;
		if (file != NULL) {
			cli_user_usage();
			return CLI_EXIT_USAGE;
		}
		file = cli->argv[i];
	}
	if (file == NULL) {
		cli_user_usage();
		return CLI_EXIT_USAGE;
	}
	FILE *f = strcmp(file, "-") == 0 ? stdin : fopen(file, "r");
	if (f == NULL) {
		fprintf(stderr, "postbote: %s: %s\n", file, strerror(errno));
		return CLI_EXIT_DATAERR;
	}
	const char *name = f == stdin ? "(stdin)" : file;
	while (getline(&line, &cap, f) >= 0)
		cli_import_line(cli, name, ++lineno, line, &im);
	bool read_error = ferror(f);
	if (f != stdin)
		fclose(f);
	free(line);
	if (read_error) {
		fprintf(stderr, "postbote: %s: read error\n", file);
		cli_import_free(&im);
		return CLI_EXIT_IOERR;
	}
	if (im.errors > 0) {
		fprintf(stderr, "postbote: %zu error%s in %s; nothing imported\n", im.errors,
			im.errors == 1 ? "" : "s", name);
		cli_import_free(&im);
		return CLI_EXIT_DATAERR;
	}
	if ((ret = cli_user_reopen(argc, argv, cli)) != 0) {
		cli_import_free(&im);
		return ret;
	}
	size_t added, updated;
	if (userdb_import(cli->db, im.addresses, im.hashes, im.n, &added, &updated, &error) < 0) {
		cli_import_free(&im);
		return cli_user_dberror(error);
	}
	printf("imported %zu account%s from %s: %zu added, %zu updated%s\n", im.n, im.n == 1 ? "" : "s", name,
	       added, updated, im.legacy ? " (some with legacy hashes, see above)" : "");
	cli_import_free(&im);
	return CLI_EXIT_OK;
}

int cli_user_main(int argc, char **argv)
{
	struct cli cli;
	int ret = cli_open(argc, argv, false, &cli);

	if (ret != 0) {
		if (ret == CLI_EXIT_USAGE)
			cli_user_usage();
		return ret;
	}
	const char *action = cli.argc > 0 ? cli.argv[0] : NULL;
	if (action == NULL) {
		cli_user_usage();
		ret = CLI_EXIT_USAGE;
	} else if (strcmp(action, "add") == 0) {
		ret = cli_user_add(argc, argv, &cli);
	} else if (strcmp(action, "del") == 0 || strcmp(action, "delete") == 0) {
		ret = cli_user_del(argc, argv, &cli);
	} else if (strcmp(action, "passwd") == 0 || strcmp(action, "password") == 0) {
		ret = cli_user_passwd(argc, argv, &cli);
	} else if (strcmp(action, "list") == 0) {
		ret = cli_user_list(argc, argv, &cli);
	} else if (strcmp(action, "disable") == 0) {
		ret = cli_user_able(argc, argv, &cli, true);
	} else if (strcmp(action, "enable") == 0) {
		ret = cli_user_able(argc, argv, &cli, false);
	} else if (strcmp(action, "import") == 0) {
		ret = cli_user_import(argc, argv, &cli);
	} else if (strcmp(action, "help") == 0 || strcmp(action, "--help") == 0 || strcmp(action, "-h") == 0) {
		cli_user_usage();
		ret = CLI_EXIT_OK;
	} else {
		fprintf(stderr, "postbote: unknown action \"user %s\"\n", action);
		cli_user_usage();
		ret = CLI_EXIT_USAGE;
	}
	cli_close(&cli);
	return ret;
}
