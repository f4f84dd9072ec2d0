/*
 * postbote alias add|del|list
 *
 * An alias forwards mail for one address (or, as "@domain", for every
 * address of a local domain that has no account or alias: a catch-all) to
 * one or more targets, local accounts or addresses elsewhere.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/userdb.h"
#include "cli/cli.h"
#include "core/xalloc.h"

static void cli_alias_usage(void)
{
	fprintf(stderr,
		"usage: postbote alias add ALIAS TARGET...\n"
		"       postbote alias del ALIAS [TARGET]\n"
		"       postbote alias list\n"
		"\n"
		"ALIAS is an address of a local domain, or @DOMAIN for a catch-all that takes\n"
		"mail for every address of DOMAIN without an account or alias of its own.\n"
		"TARGET is any address, local or not. Every action takes -c FILE (default: the\n"
		"development setup in ./postbote-data).\n");
}

/* The positional arguments (without "--"). */
static int cli_alias_args(const struct cli *cli, const char **args, int max)
{
	int n = 0;
	bool done = false;

	for (int i = 1; i < cli->argc; i++) {
		const char *a = cli->argv[i];
		if (!done && strcmp(a, "--") == 0) {
			done = true;
			continue;
		}
		if (!done && a[0] == '-' && a[1] != '\0')
			return -1;
		if (n == max)
			return -1;
		args[n++] = a;
	}
	return n;
}

static int cli_alias_key(const struct cli *cli, const char *alias, char **key_r)
{
	const char *reason;

	if (userdb_alias_normalize(alias, key_r, &reason) < 0) {
		fprintf(stderr, "postbote: %s: %s\n", alias, reason);
		return CLI_EXIT_DATAERR;
	}
	const char *domain = userdb_address_domain(*key_r);
	if (!userdb_domain_is_local(&cli->cfg, domain)) {
		fprintf(stderr, "postbote: %s: %s is not a local domain of this server; add \"domain = %s\" "
			"to the configuration first\n", alias, domain, domain);
		free(*key_r);
		*key_r = NULL;
		return CLI_EXIT_DATAERR;
	}
	return 0;
}

static int cli_alias_dberror(char *error)
{
	fprintf(stderr, "postbote: %s\n", error);
	free(error);
	return CLI_EXIT_IOERR;
}

static int cli_alias_reopen(int argc, char **argv, struct cli *cli)
{
	cli_close(cli);
	return cli_open(argc, argv, true, cli);
}

#define CLI_ALIAS_ARGS_MAX 1001

static int cli_alias_add(int argc, char **argv, struct cli *cli)
{
	const char **args = xcalloc(CLI_ALIAS_ARGS_MAX, sizeof(*args));
	char *key = NULL, *error = NULL;
	int n = cli_alias_args(cli, args, CLI_ALIAS_ARGS_MAX);
	int ret;

	if (n < 2) {
		free(args);
		cli_alias_usage();
		return CLI_EXIT_USAGE;
	}
	if ((ret = cli_alias_key(cli, args[0], &key)) != 0)
		goto out;
	for (int i = 1; i < n; i++) {
		char *t;
		const char *reason;
		if (userdb_address_normalize(args[i], &t, &reason) < 0) {
			fprintf(stderr, "postbote: target %s: %s\n", args[i], reason);
			ret = CLI_EXIT_DATAERR;
			goto out;
		}
		bool self = strcmp(t, key) == 0;
		free(t);
		if (self) {
			fprintf(stderr, "postbote: %s cannot be an alias of itself\n", key);
			ret = CLI_EXIT_DATAERR;
			goto out;
		}
	}
	if ((ret = cli_alias_reopen(argc, argv, cli)) != 0)
		goto out;
	struct user u;
	ret = userdb_get(cli->db, key, &u, &error);
	user_free(&u);
	if (ret < 0) {
		ret = cli_alias_dberror(error);
		goto out;
	}
	if (ret == 0)
		fprintf(stderr, "postbote: note: %s is also an account, which takes precedence over the alias\n",
			key);
	ret = CLI_EXIT_OK;
	for (int i = 1; i < n; i++) {
		int r = alias_add(cli->db, key, args[i], &error);
		if (r < 0) {
			fprintf(stderr, "postbote: %s\n", error);
			free(error);
			error = NULL;
			ret = CLI_EXIT_DATAERR;
			break;
		}
		printf("%s -> %s%s\n", key, args[i], r == 1 ? " (already there)" : "");
	}
out:
	free(key);
	free(args);
	return ret;
}

static int cli_alias_del(int argc, char **argv, struct cli *cli)
{
	const char *args[2];
	char *key = NULL, *error = NULL;
	int n = cli_alias_args(cli, args, 2);
	int ret;

	if (n < 1) {
		cli_alias_usage();
		return CLI_EXIT_USAGE;
	}
	/* No local-domain check: aliases of a domain that has left the
	 * configuration must still be removable. */
	const char *reason;
	if (userdb_alias_normalize(args[0], &key, &reason) < 0) {
		fprintf(stderr, "postbote: %s: %s\n", args[0], reason);
		return CLI_EXIT_DATAERR;
	}
	if (n > 1) {
		char *t;
		if (userdb_address_normalize(args[1], &t, &reason) < 0) {
			fprintf(stderr, "postbote: target %s: %s\n", args[1], reason);
			free(key);
			return CLI_EXIT_DATAERR;
		}
		free(t);
	}
	if ((ret = cli_alias_reopen(argc, argv, cli)) != 0) {
		free(key);
		return ret;
	}
	ret = alias_del(cli->db, key, n > 1 ? args[1] : NULL, &error);
	if (ret < 0) {
		free(key);
		return cli_alias_dberror(error);
	}
	if (ret == 1) {
		if (n > 1)
			fprintf(stderr, "postbote: %s is not a target of %s\n", args[1], key);
		else
			fprintf(stderr, "postbote: no alias %s\n", key);
		free(key);
		return CLI_EXIT_NOUSER;
	}
	if (n > 1)
		printf("removed %s from %s\n", args[1], key);
	else
		printf("deleted alias %s\n", key);
	free(key);
	return CLI_EXIT_OK;
}

static int cli_alias_list_one(const char *alias, const char *const *targets, size_t n, void *ctx)
{
	(void)ctx;
	printf("%s -> ", alias);
	for (size_t i = 0; i < n; i++)
		printf("%s%s", i ? ", " : "", targets[i]);
	printf("\n");
	return 0;
}

static int cli_alias_list(int argc, char **argv, struct cli *cli)
{
	char *error = NULL;
	int ret;

	if (cli->argc != 1) {
		cli_alias_usage();
		return CLI_EXIT_USAGE;
	}
	if ((ret = cli_alias_reopen(argc, argv, cli)) != 0)
		return ret;
	if (alias_list(cli->db, cli_alias_list_one, NULL, &error) < 0)
		return cli_alias_dberror(error);
	return CLI_EXIT_OK;
}

int cli_alias_main(int argc, char **argv)
{
	struct cli cli;
	int ret = cli_open(argc, argv, false, &cli);

	if (ret != 0) {
		if (ret == CLI_EXIT_USAGE)
			cli_alias_usage();
		return ret;
	}
	const char *action = cli.argc > 0 ? cli.argv[0] : NULL;
	if (action == NULL) {
		cli_alias_usage();
		ret = CLI_EXIT_USAGE;
	} else if (strcmp(action, "add") == 0) {
		ret = cli_alias_add(argc, argv, &cli);
	} else if (strcmp(action, "del") == 0 || strcmp(action, "delete") == 0) {
		ret = cli_alias_del(argc, argv, &cli);
	} else if (strcmp(action, "list") == 0) {
		ret = cli_alias_list(argc, argv, &cli);
	} else if (strcmp(action, "help") == 0 || strcmp(action, "--help") == 0 || strcmp(action, "-h") == 0) {
		cli_alias_usage();
		ret = CLI_EXIT_OK;
	} else {
		fprintf(stderr, "postbote: unknown action \"alias %s\"\n", action);
		cli_alias_usage();
		ret = CLI_EXIT_USAGE;
	}
	cli_close(&cli);
	return ret;
}
