/*
 * postbote reindex [ADDRESS...]
 *
 * Rebuild the mailbox index of some accounts (or all) from their Maildirs.
 * The index forgets the account in one transaction; each mailbox is then
 * rebuilt from its files and dovecot-uidlist, so UIDVALIDITY and UIDs stay
 * as clients know them. With the server stopped the rebuild happens here
 * and is reported; with the server running (it holds the delivery log) the
 * server rebuilds each mailbox the next time it is opened or delivered to.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "auth/userdb.h"
#include "cli/cli.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "maildir/index.h"
#include "maildir/store.h"

static void cli_reindex_usage(void)
{
	fprintf(stderr, "usage: postbote reindex [-c FILE] [ADDRESS...]\n"
			"Rebuilds the index of the given accounts (default: all) from their Maildirs.\n");
}

struct cli_reindex_list {
	char **addresses;
	size_t n;
};

static int cli_reindex_collect(const struct user *u, void *ctx)
{
	struct cli_reindex_list *l = ctx;
	l->addresses = xrealloc(l->addresses, (l->n + 1) * sizeof(*l->addresses));
	l->addresses[l->n++] = xstrdup(u->address);
	return 0;
}

static void cli_reindex_opened(struct store_open_req *r)
{
	*(bool *)r->ctx = true;
}

/* Open INBOX and every .Folder of the Maildir through the store, which
 * rebuilds each from its files; print what was found. */
static int cli_reindex_rebuild(struct store *st, uv_loop_t *loop, const char *account, const char *maildir)
{
	DIR *d = opendir(maildir);
	char **names = NULL;
	size_t n = 0;
	int ret = 0;

	names = xrealloc(names, sizeof(*names));
	names[n++] = xstrdup("INBOX");
	struct dirent *de;
	while (d != NULL && (de = readdir(d)) != NULL) {
		if (de->d_name[0] != '.' || strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		/* Maildir++ ".A.B" is the store's "A/B". */
		char *name = xstrdup(de->d_name + 1);
		for (char *p = name; *p; p++)
			if (*p == '.')
				*p = '/';
		names = xrealloc(names, (n + 1) * sizeof(*names));
		names[n++] = name;
	}
	if (d != NULL)
		closedir(d);
	for (size_t i = 0; i < n; i++) {
		bool done = false;
		struct store_open_req r = { .account = account, .maildir = maildir, .mailbox = names[i],
					    .cb = cli_reindex_opened, .ctx = &done };
		store_mailbox_open(st, &r);
		while (!done)
			uv_run(loop, UV_RUN_ONCE);
		if (r.result == STORE_OK)
			printf("%s %s: %u message%s, UIDVALIDITY %u, next UID %u\n", account, names[i], r.count,
			       r.count == 1 ? "" : "s", r.uidvalidity, r.uidnext);
		else if (r.result != STORE_NO_MAILBOX) {
			fprintf(stderr, "postbote: %s %s: %s\n", account, names[i], store_result_name(r.result));
			ret = -1;
		}
		free(names[i]);
	}
	free(names);
	return ret;
}

int cli_reindex_main(int argc, char **argv)
{
	struct cli cli;
	struct cli_reindex_list list = { 0 };
	char *error = NULL;
	int ret = cli_open(argc, argv, true, &cli);

	if (ret != 0) {
		if (ret == CLI_EXIT_USAGE)
			cli_reindex_usage();
		return ret;
	}
	for (int i = 0; i < cli.argc; i++) {
		char *key;
		const char *reason;
		if (cli.argv[i][0] == '-') {
			cli_reindex_usage();
			ret = CLI_EXIT_USAGE;
			goto out;
		}
		if (userdb_address_normalize(cli.argv[i], &key, &reason) < 0) {
			fprintf(stderr, "postbote: %s: %s\n", cli.argv[i], reason);
			ret = CLI_EXIT_DATAERR;
			goto out;
		}
		list.addresses = xrealloc(list.addresses, (list.n + 1) * sizeof(*list.addresses));
		list.addresses[list.n++] = key;
	}
	if (cli.argc == 0 && userdb_list(cli.db, cli_reindex_collect, &list, &error) < 0) {
		fprintf(stderr, "postbote: %s\n", error);
		ret = CLI_EXIT_IOERR;
		goto out;
	}

	/* Forget, account by account. */
	struct user *users = xcalloc(list.n ? list.n : 1, sizeof(*users));
	for (size_t i = 0; i < list.n && ret == 0; i++) {
		int rc = userdb_get(cli.db, list.addresses[i], &users[i], &error);
		if (rc == 1) {
			fprintf(stderr, "postbote: no account %s\n", list.addresses[i]);
			ret = CLI_EXIT_NOUSER;
			break;
		}
		if (rc < 0) {
			fprintf(stderr, "postbote: %s\n", error);
			ret = CLI_EXIT_IOERR;
			break;
		}
		MDB_txn *txn;
		if (mdb_txn_begin(cli.db->env, NULL, 0, &txn) != 0 ||
		    idx_account_forget(txn, cli.db, list.addresses[i], &error) < 0 || mdb_txn_commit(txn) != 0) {
			fprintf(stderr, "postbote: %s: cannot reset the index%s%s\n", list.addresses[i],
				error ? ": " : "", error ? error : "");
			ret = CLI_EXIT_IOERR;
		}
	}

	/* Rebuild here if no server holds the store. */
	if (ret == 0) {
		uv_loop_t loop;
		struct store *st;
		uv_loop_init(&loop);
		if (store_open(&loop, &cli.cfg, cli.db, &st, &error) < 0) {
			if (errno == EWOULDBLOCK)
				printf("postbote is running: it rebuilds each mailbox when it is next opened.\n");
			else {
				fprintf(stderr, "postbote: %s\n", error);
				ret = CLI_EXIT_IOERR;
			}
			free(error);
			error = NULL;
		} else {
			for (size_t i = 0; i < list.n; i++) {
				char *md = userdb_maildir_path(&cli.cfg, &users[i]);
				if (cli_reindex_rebuild(st, &loop, list.addresses[i], md) < 0)
					ret = CLI_EXIT_IOERR;
				free(md);
			}
			store_close(&st);
		}
		uv_run(&loop, UV_RUN_DEFAULT);
		uv_loop_close(&loop);
	}
	for (size_t i = 0; i < list.n; i++)
		user_free(&users[i]);
	free(users);
out:
	for (size_t i = 0; i < list.n; i++)
		free(list.addresses[i]);
	free(list.addresses);
	free(error);
	cli_close(&cli);
	return ret;
}
