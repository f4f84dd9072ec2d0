/*
 * postbote quota ADDRESS [SIZE [MESSAGES]]
 *
 * Without SIZE: the limits that apply to the account (its own, or the
 * configured default). With SIZE (and MESSAGES): set the account's own
 * limits; "none", "default" or 0 = use the configured default, "unlimited"
 * = no limit whatever the default says.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/userdb.h"
#include "cli/cli.h"
#include "core/xalloc.h"
#include "maildir/index.h"

static void cli_quota_usage(void)
{
	fprintf(stderr,
		"usage: postbote quota ADDRESS                    show the limits of an account\n"
		"       postbote quota ADDRESS SIZE [MESSAGES]    set them\n"
		"\n"
		"SIZE takes a unit (500M, 2G); MESSAGES is a count. For either, none (or 0)\n"
		"means the default of the configuration (quota_bytes, quota_messages) and\n"
		"unlimited means no limit. Without MESSAGES the message limit is unchanged.\n"
		"Takes -c FILE (default: the development setup in ./postbote-data).\n");
}

static bool cli_quota_is_default(const char *s)
{
	return strcmp(s, "none") == 0 || strcmp(s, "default") == 0 || strcmp(s, "0") == 0;
}

static int cli_quota_parse_bytes(const char *s, uint64_t *v_r)
{
	if (cli_quota_is_default(s)) {
		*v_r = 0;
		return 0;
	}
	if (strcmp(s, "unlimited") == 0) {
		*v_r = USERDB_QUOTA_UNLIMITED_BYTES;
		return 0;
	}
	if (config_parse_size(s, v_r) < 0 || *v_r == USERDB_QUOTA_UNLIMITED_BYTES)
		return -1;
	return 0;
}

static int cli_quota_parse_messages(const char *s, uint32_t *v_r)
{
	char *end;

	if (cli_quota_is_default(s)) {
		*v_r = 0;
		return 0;
	}
	if (strcmp(s, "unlimited") == 0) {
		*v_r = USERDB_QUOTA_UNLIMITED_MESSAGES;
		return 0;
	}
	if (s[0] < '0' || s[0] > '9')
		return -1;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v >= USERDB_QUOTA_UNLIMITED_MESSAGES)
		return -1;
	*v_r = (uint32_t)v;
	return 0;
}

/* "10M (10485760 bytes)" */
static void cli_quota_format_bytes(uint64_t v, char *buf, size_t size)
{
	static const char units[] = "KMGT";
	int u = -1;
	uint64_t x = v;

	while (x >= 1024 && x % 1024 == 0 && u < 3) {
		x /= 1024;
		u++;
	}
	if (u >= 0)
		snprintf(buf, size, "%" PRIu64 "%c (%" PRIu64 " bytes)", x, units[u], v);
	else
		snprintf(buf, size, "%" PRIu64 " bytes", v);
}

static void cli_quota_show(const struct cli *cli, const struct user *u)
{
	char buf[64];
	uint64_t bytes = userdb_quota_bytes(&cli->cfg, u);
	uint64_t messages = userdb_quota_messages(&cli->cfg, u);
	const char *bytes_from = u->quota_bytes == 0 ? "configured default" : "account setting";
	const char *messages_from = u->quota_messages == 0 ? "configured default" : "account setting";

	printf("%s\n", u->address);
	if (bytes == 0)
		snprintf(buf, sizeof(buf), "unlimited");
	else
		cli_quota_format_bytes(bytes, buf, sizeof(buf));
	printf("  storage:  %s, %s\n", buf, bytes_from);
	if (messages == 0)
		printf("  messages: unlimited, %s\n", messages_from);
	else
		printf("  messages: %" PRIu64 ", %s\n", messages, messages_from);

	/* What the account uses now, as the index counts it. */
	MDB_txn *txn;
	uint64_t used_bytes = 0, used_messages = 0;
	char *error = NULL;
	if (mdb_txn_begin(cli->db->env, NULL, MDB_RDONLY, &txn) == 0) {
		if (idx_usage_get(txn, cli->db, u->address, &used_bytes, &used_messages, &error) < 0) {
			fprintf(stderr, "postbote: %s\n", error);
			free(error);
		}
		mdb_txn_abort(txn);
	}
	cli_quota_format_bytes(used_bytes, buf, sizeof(buf));
	printf("  in use:   %s in %" PRIu64 " message%s\n", buf, used_messages, used_messages == 1 ? "" : "s");
}

struct cli_quota_set {
	uint64_t bytes;
	uint32_t messages;
	bool set_messages;
};

static int cli_quota_apply(struct user *u, void *ctx)
{
	const struct cli_quota_set *q = ctx;

	u->quota_bytes = q->bytes;
	if (q->set_messages)
		u->quota_messages = q->messages;
	return 0;
}

int cli_quota_main(int argc, char **argv)
{
	struct cli cli;
	struct cli_quota_set q = { 0 };
	const char *args[3];
	int n = 0;
	char *key = NULL, *error = NULL;
	const char *reason;
	int ret = cli_open(argc, argv, false, &cli);

	if (ret != 0) {
		if (ret == CLI_EXIT_USAGE)
			cli_quota_usage();
		return ret;
	}
	bool done = false;
	for (int i = 0; i < cli.argc; i++) {
		const char *a = cli.argv[i];
		if (!done && strcmp(a, "--") == 0) {
			done = true;
			continue;
		}
		if ((!done && a[0] == '-' && a[1] != '\0') || n == 3) {
			cli_quota_usage();
			ret = CLI_EXIT_USAGE;
			goto out;
		}
		args[n++] = a;
	}
	if (n == 0) {
		cli_quota_usage();
		ret = CLI_EXIT_USAGE;
		goto out;
	}
	if (n >= 2 && cli_quota_parse_bytes(args[1], &q.bytes) < 0) {
		fprintf(stderr, "postbote: \"%s\" is not a size (e.g. 500M, 2G, none, unlimited)\n", args[1]);
		ret = CLI_EXIT_USAGE;
		goto out;
	}
	if (n == 3) {
		if (cli_quota_parse_messages(args[2], &q.messages) < 0) {
			fprintf(stderr, "postbote: \"%s\" is not a message count (e.g. 10000, none, unlimited)\n",
				args[2]);
			ret = CLI_EXIT_USAGE;
			goto out;
		}
		q.set_messages = true;
	}
	if (userdb_address_normalize(args[0], &key, &reason) < 0) {
		fprintf(stderr, "postbote: %s: %s\n", args[0], reason);
		ret = CLI_EXIT_DATAERR;
		goto out;
	}
	cli_close(&cli);
	if ((ret = cli_open(argc, argv, true, &cli)) != 0) {
		free(key);
		return ret;
	}
	if (n >= 2) {
		ret = userdb_modify(cli.db, key, cli_quota_apply, &q, &error);
		if (ret < 0) {
			fprintf(stderr, "postbote: %s\n", error);
			free(error);
			ret = CLI_EXIT_IOERR;
			goto out;
		}
		if (ret == 1) {
			fprintf(stderr, "postbote: no account %s\n", key);
			ret = CLI_EXIT_NOUSER;
			goto out;
		}
	}
	struct user u;
	ret = userdb_get(cli.db, key, &u, &error);
	if (ret < 0) {
		fprintf(stderr, "postbote: %s\n", error);
		free(error);
		ret = CLI_EXIT_IOERR;
	} else if (ret == 1) {
		fprintf(stderr, "postbote: no account %s\n", key);
		ret = CLI_EXIT_NOUSER;
	} else {
		cli_quota_show(&cli, &u);
		user_free(&u);
		ret = CLI_EXIT_OK;
	}
out:
	free(key);
	cli_close(&cli);
	return ret;
}
