/*
 * Crash test for contract 3: a child delivers in a loop and reports each
 * delivery the store acknowledged; it is SIGKILLed at a random moment, at
 * least 200 times. After each kill, recovery runs (store_open) and then:
 *   - every acknowledged message is present exactly once,
 *   - no message is present twice, acknowledged or not,
 *   - no partial file is visible in new/ or cur/,
 *   - the index lists exactly the files on disk.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/xalloc.h"
#include "storeutil.h"
#include "testutil.h"

#define ROUNDS 200
#define INFLIGHT 16
#define MAX_IDS ((ROUNDS + 2) * 1000)

static const char *const accounts[] = { "alice@test.example", "bob@test.example" };

struct child {
	struct tstore *t;
	int fd;
	unsigned round, seq;
	struct store_delivery d[INFLIGHT];
	struct store_rcpt r[INFLIGHT][2];
	char *spool[INFLIGHT];
	char *md[2];
};

static char *message_text(unsigned round, unsigned seq, size_t *len_r)
{
	/* A body long enough to span several writes, with a trailer that
	 * proves the file is complete. */
	size_t body = 200 + (seq * 7919u) % 6000;
	char *m = xmalloc(body + 256);
	int n = sprintf(m, "Message-ID: <%u.%u@crash>\nSubject: crash test\n\n", round, seq);
	for (size_t i = 0; i < body; i++)
		m[n + i] = i % 72 == 71 ? '\n' : (char)('a' + i % 26);
	n += (int)body;
	n += sprintf(m + n, "\nEND %u.%u\n", round, seq);
	*len_r = (size_t)n;
	return m;
}

static void child_start(struct child *c, int slot);

static void child_done(struct store_delivery *d)
{
	struct child *c = d->ctx;
	int slot = (int)(d - c->d);
	if (d->result == STORE_OK) {
		char line[32];
		unsigned round, seq;
		sscanf(strrchr(d->spool_path, '/') + 1, "s%u.%u", &round, &seq);
		int n = snprintf(line, sizeof(line), "%u.%u\n", round, seq);
		if (write(c->fd, line, (size_t)n) != n)
			_exit(3);
	}
	unlink(c->spool[slot]);
	free(c->spool[slot]);
	child_start(c, slot);
}

static void child_start(struct child *c, int slot)
{
	size_t len;
	unsigned seq = ++c->seq;
	char *text = message_text(c->round, seq, &len);
	char *path = xasprintf("%s/spool/s%u.%u", c->t->dir, c->round, seq);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, text, len) != (ssize_t)len)
		_exit(4);
	close(fd);
	free(text);
	c->spool[slot] = path;
	/* Every third message goes to both accounts (hard links). */
	size_t n = seq % 3 == 0 ? 2 : 1;
	for (size_t i = 0; i < n; i++)
		c->r[slot][i] = (struct store_rcpt){ .account = accounts[(seq + i) % 2], .maildir = c->md[(seq + i) % 2],
						     .mailbox = "INBOX" };
	c->d[slot] = (struct store_delivery){ .spool_path = path, .rcpts = c->r[slot], .n_rcpts = n,
					      .cb = child_done, .ctx = c };
	store_deliver(c->t->st, &c->d[slot]);
}

static void run_child(struct tstore *t, unsigned round, int fd)
{
	struct child c = { .t = t, .fd = fd, .round = round };
	tstore_reopen(t);
	c.md[0] = tstore_maildir(t, accounts[0]);
	c.md[1] = tstore_maildir(t, accounts[1]);
	for (int i = 0; i < INFLIGHT; i++)
		child_start(&c, i);
	for (;;)
		uv_run(&t->loop, UV_RUN_ONCE);
}

/* Count every message id found in new/ and cur/ of one Maildir. */
static void scan_maildir(const char *md, unsigned char *seen, unsigned round_max, size_t *files_r)
{
	static const char *const subs[] = { "new", "cur" };
	for (int s = 0; s < 2; s++) {
		char *dir = xasprintf("%s/%s", md, subs[s]);
		DIR *d = opendir(dir);
		struct dirent *de;
		while (d && (de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			char *p = xasprintf("%s/%s", dir, de->d_name);
			FILE *f = fopen(p, "rb");
			ck_assert_ptr_nonnull(f);
			char buf[8192];
			size_t n = fread(buf, 1, sizeof(buf) - 1, f);
			fclose(f);
			buf[n] = '\0';
			unsigned round, seq;
			ck_assert_msg(sscanf(buf, "Message-ID: <%u.%u@crash>", &round, &seq) == 2, "%s", p);
			char trailer[48];
			int tl = snprintf(trailer, sizeof(trailer), "\nEND %u.%u\n", round, seq);
			ck_assert_msg(n >= (size_t)tl && memcmp(buf + n - tl, trailer, (size_t)tl) == 0,
				      "partial file %s (%zu bytes)", p, n);
			ck_assert(round <= round_max && seq < 1000);
			unsigned idx = round * 1000 + seq;
			ck_assert_msg(seen[idx] < 255, "overflow");
			seen[idx]++;
			(*files_r)++;
			free(p);
		}
		if (d)
			closedir(d);
		free(dir);
	}
}

static int count_index(const struct idx_message *m, void *ctx)
{
	(void)m;
	(*(size_t *)ctx)++;
	return 0;
}

START_TEST(kill_during_deliveries)
{
	struct tstore t;
	unsigned char *acked = xcalloc(MAX_IDS, 1);
	unsigned total_acked = 0;

	tstore_open(&t);
	tstore_close(&t);
	char *spool = xasprintf("%s/spool", t.dir);
	mkdir(spool, 0700);
	srand((unsigned)time(NULL));

	for (unsigned round = 1; round <= ROUNDS; round++) {
		int pfd[2];
		ck_assert_int_eq(pipe(pfd), 0);
		pid_t pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			close(pfd[0]);
			run_child(&t, round, pfd[1]);
			_exit(0);
		}
		close(pfd[1]);
		/* Let it run for a random 1-40 ms, then kill it mid-flight. */
		struct timespec ts = { 0, (long)(1 + rand() % 40) * 1000000L };
		nanosleep(&ts, NULL);
		kill(pid, SIGKILL);
		int status;
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		ck_assert(WIFSIGNALED(status));

		/* Everything it acknowledged before dying is in the pipe. */
		FILE *in = fdopen(pfd[0], "r");
		unsigned r, seq;
		while (fscanf(in, "%u.%u\n", &r, &seq) == 2) {
			ck_assert_uint_eq(r, round);
			ck_assert(seq < 1000);
			acked[r * 1000 + seq] = 1;
			total_acked++;
		}
		fclose(in);

		/* Recovery, then the checks. */
		tstore_reopen(&t);
		unsigned char *seen = xcalloc(MAX_IDS, 1);
		size_t files = 0, indexed = 0;
		for (int a = 0; a < 2; a++) {
			char *md = tstore_maildir(&t, accounts[a]);
			scan_maildir(md, seen, round, &files);
			free(md);
			/* The index, as recovery left it (no reconciliation
			 * of our own here). */
			MDB_txn *txn;
			struct idx_mailbox mb;
			char *error = NULL;
			ck_assert_int_eq(mdb_txn_begin(t.db->env, NULL, MDB_RDONLY, &txn), 0);
			int rc = idx_mailbox_get(txn, t.db, accounts[a], "INBOX", &mb, &error);
			ck_assert_int_ge(rc, 0);
			if (rc == 0) {
				size_t n = 0;
				ck_assert_int_eq(idx_message_each(txn, t.db, mb.id, 1, count_index, &n, &error), 0);
				ck_assert_uint_eq(n, mb.count);
				indexed += n;
			}
			mdb_txn_abort(txn);
		}
		ck_assert_msg(indexed == files, "round %u: index has %zu messages, Maildirs %zu files", round,
			      indexed, files);
		/* Hard-linked deliveries count once per account: an id may be
		 * seen at most twice, and twice only for two-account ones. */
		for (unsigned i = 1000; i < (round + 1) * 1000; i++) {
			unsigned s = i % 1000;
			unsigned want_max = s % 3 == 0 ? 2 : 1;
			ck_assert_msg(seen[i] <= want_max, "message %u.%u present %u times", i / 1000, s, seen[i]);
			if (acked[i])
				ck_assert_msg(seen[i] == want_max, "acknowledged message %u.%u lost (%u of %u)",
					      i / 1000, s, seen[i], want_max);
		}
		free(seen);
		tstore_close(&t);
		char *cmd = xasprintf("rm -f '%s'/s*", spool);
		ck_assert_int_eq(system(cmd), 0);
		free(cmd);
	}
	printf("crash test: %d kills, %u acknowledged deliveries checked\n", ROUNDS, total_acked);
	ck_assert_uint_gt(total_acked, 100);
	free(spool);
	free(acked);
	tstore_reopen(&t);
	tstore_destroy(&t);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("store_crash");
	TCase *tc = tcase_create("crash");
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, kill_during_deliveries);
	suite_add_tcase(s, tc);
	return testutil_run(s);
}
