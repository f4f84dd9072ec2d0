/*
 * postbote queue list|show|flush|del
 *
 * The queue's records live in LMDB beside the accounts, so these commands
 * work on a running server the same way as on a stopped one: `flush` makes
 * entries due now (the server's scheduler looks at due entries every few
 * seconds), `del` removes an entry and its file without a bounce.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/xalloc.h"
#include "mta/queue.h"
#include "mta/queue_record.h"

static void cli_queue_usage(void)
{
	fprintf(stderr,
		"usage: postbote queue list\n"
		"       postbote queue show ID\n"
		"       postbote queue flush [ID]\n"
		"       postbote queue del ID\n"
		"\n"
		"list shows every queued message: id, age, sender, and each recipient with its\n"
		"state and last reply. flush retries now (one message or all), del removes a\n"
		"message without telling its sender. Every action takes -c FILE.\n");
}

static void cli_queue_age(int64_t since, char *out, size_t size)
{
	int64_t s = (int64_t)time(NULL) - since;
	if (s < 0)
		s = 0;
	if (s < 120)
		snprintf(out, size, "%" PRId64 "s", s);
	else if (s < 7200)
		snprintf(out, size, "%" PRId64 "m", s / 60);
	else if (s < 172800)
		snprintf(out, size, "%" PRId64 "h", s / 3600);
	else
		snprintf(out, size, "%" PRId64 "d", s / 86400);
}

static int cli_queue_print(const struct queue_entry *e, void *ctx)
{
	bool full = ctx != NULL;
	char age[32];

	cli_queue_age(e->arrival, age, sizeof(age));
	printf("%s  %s  <%s>  %zu recipient(s), %" PRIu64 " octets, %" PRIu32 " attempt(s)\n", e->id, age,
	       e->sender, e->n_rcpts, e->size, e->attempts);
	for (size_t i = 0; i < e->n_rcpts; i++) {
		const struct queue_rcpt *r = &e->rcpts[i];
		printf("    <%s> %s%s%s\n", r->address, queue_rcpt_state_name(r->state),
		       r->last_reply ? ": " : "", r->last_reply ? r->last_reply : "");
		if (full && r->remote_mta)
			printf("        remote: %s\n", r->remote_mta);
		if (full && r->orcpt)
			printf("        original recipient: %s\n", r->orcpt);
	}
	if (full) {
		char when[64] = "now";
		if (e->next_attempt > time(NULL)) {
			time_t t = (time_t)e->next_attempt;
			struct tm tm;
			localtime_r(&t, &tm);
			strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
		}
		printf("    next attempt: %s\n", when);
		if (e->auth_user)
			printf("    submitted by: %s\n", e->auth_user);
		if (e->envid)
			printf("    envelope id: %s\n", e->envid);
	}
	return 0;
}

/* Read-modify-write of one entry (or all, id == NULL) in one transaction. */
static int cli_queue_update(struct cli *cli, const char *id, bool del)
{
	MDB_txn *txn;
	char *error = NULL;
	int rc, found = 0;

	if ((rc = mdb_txn_begin(cli->db->env, NULL, 0, &txn)) != 0) {
		fprintf(stderr, "postbote: %s\n", mdb_strerror(rc));
		return CLI_EXIT_IOERR;
	}
	MDB_cursor *cur;
	MDB_val k, v;
	mdb_cursor_open(txn, cli->db->queue, &cur);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		char key[QUEUE_ID_MAX + 1];
		if (k.mv_size > QUEUE_ID_MAX)
			continue;
		memcpy(key, k.mv_data, k.mv_size);
		key[k.mv_size] = '\0';
		if (id != NULL && strcmp(key, id) != 0)
			continue;
		found++;
		if (del) {
			mdb_cursor_del(cur, 0);
			char *path = queue_file_path(&cli->cfg, key);
			unlink(path);
			free(path);
			printf("%s: deleted\n", key);
			continue;
		}
		struct queue_entry e;
		if (queue_record_decode(v.mv_data, v.mv_size, &e) < 0)
			continue;
		snprintf(e.id, sizeof(e.id), "%s", key);
		e.next_attempt = 0;
		if (queue_db_put(txn, cli->db, &e, &error) < 0) {
			queue_entry_free(&e);
			break;
		}
		queue_entry_free(&e);
		printf("%s: due now\n", key);
	}
	mdb_cursor_close(cur);
	if (error != NULL) {
		mdb_txn_abort(txn);
		fprintf(stderr, "postbote: %s\n", error);
		free(error);
		return CLI_EXIT_IOERR;
	}
	if ((rc = mdb_txn_commit(txn)) != 0) {
		fprintf(stderr, "postbote: %s\n", mdb_strerror(rc));
		return CLI_EXIT_IOERR;
	}
	if (id != NULL && found == 0) {
		fprintf(stderr, "postbote: %s: no such queued message\n", id);
		return CLI_EXIT_DATAERR;
	}
	return CLI_EXIT_OK;
}

int cli_queue_main(int argc, char **argv)
{
	struct cli cli;
	int rc = cli_open(argc, argv, true, &cli);

	if (rc != 0)
		return rc;
	const char *action = cli.argc > 0 ? cli.argv[0] : NULL;
	const char *id = cli.argc > 1 ? cli.argv[1] : NULL;
	if (action == NULL || cli.argc > 2) {
		cli_queue_usage();
		rc = CLI_EXIT_USAGE;
	} else if (strcmp(action, "list") == 0 && id == NULL) {
		MDB_txn *txn;
		char *error = NULL;
		if (mdb_txn_begin(cli.db->env, NULL, MDB_RDONLY, &txn) != 0 ||
		    queue_db_each(txn, cli.db, cli_queue_print, NULL, &error) < 0) {
			fprintf(stderr, "postbote: %s\n", error ? error : "cannot read the queue");
			rc = CLI_EXIT_IOERR;
		}
		free(error);
		mdb_txn_abort(txn);
	} else if (strcmp(action, "show") == 0 && id != NULL) {
		MDB_txn *txn;
		struct queue_entry e;
		char *error = NULL;
		int got = mdb_txn_begin(cli.db->env, NULL, MDB_RDONLY, &txn) == 0 ?
			queue_db_get(txn, cli.db, id, &e, &error) : -1;
		if (got == 0) {
			cli_queue_print(&e, &cli);
			queue_entry_free(&e);
		} else {
			fprintf(stderr, "postbote: %s: %s\n", id, got == 1 ? "no such queued message" : error);
			rc = got == 1 ? CLI_EXIT_DATAERR : CLI_EXIT_IOERR;
		}
		free(error);
		mdb_txn_abort(txn);
	} else if (strcmp(action, "flush") == 0) {
		rc = cli_queue_update(&cli, id, false);
	} else if (strcmp(action, "del") == 0 && id != NULL) {
		rc = cli_queue_update(&cli, id, true);
	} else {
		cli_queue_usage();
		rc = CLI_EXIT_USAGE;
	}
	cli_close(&cli);
	return rc;
}
