/*
 * Durable deliveries per second through the store, beside the physical
 * limit of this disk: write + fsync + rename of a file of the same size,
 * one after the other (what a store that fsyncs every message must pay).
 *
 *   bench_deliver DIR MODE CONCURRENCY SECONDS [SIZE]
 *     MODE fsync   - the baseline: write, fsync, rename, fsync dir
 *     MODE store   - store_deliver() with CONCURRENCY deliveries in flight
 *
 * Prints one line: "MODE CONCURRENCY RATE/s COUNT". Bounded by SECONDS and
 * by a count cap, so it always ends.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "core/config.h"
#include "core/db.h"
#include "core/xalloc.h"
#include "maildir/store.h"

#define MAX_COUNT 2000000

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int bench_fsync(const char *dir, double seconds, size_t size)
{
	char *data = xmalloc(size);
	memset(data, 'x', size);
	char *tmpdir = xasprintf("%s/tmp", dir), *newdir = xasprintf("%s/new", dir);
	mkdir(tmpdir, 0700);
	mkdir(newdir, 0700);
	int dfd = open(newdir, O_RDONLY | O_DIRECTORY);
	double start = now_s(), end = start + seconds;
	unsigned long n = 0;
	while (now_s() < end && n < MAX_COUNT) {
		char tmp[512], final[512];
		snprintf(tmp, sizeof(tmp), "%s/%lu", tmpdir, n);
		snprintf(final, sizeof(final), "%s/%lu", newdir, n);
		int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd < 0 || write(fd, data, size) != (ssize_t)size || fsync(fd) < 0 || close(fd) < 0 ||
		    rename(tmp, final) < 0 || fsync(dfd) < 0) {
			perror("fsync bench");
			return 1;
		}
		n++;
	}
	double el = now_s() - start;
	printf("fsync 1 %.1f %lu\n", (double)n / el, n);
	close(dfd);
	free(data);
	free(tmpdir);
	free(newdir);
	return 0;
}

struct run {
	struct store *st;
	char *spool;
	char *maildir;
	double end;
	unsigned long started, done, failed;
	unsigned inflight;
};

struct slot {
	struct store_delivery d;
	struct store_rcpt r;
	struct run *run;
};

static void slot_start(struct slot *s);

static void slot_done(struct store_delivery *d)
{
	struct slot *s = d->ctx;
	struct run *run = s->run;
	run->done++;
	if (d->result != STORE_OK)
		run->failed++;
	run->inflight--;
	if (now_s() < run->end && run->started < MAX_COUNT)
		slot_start(s);
}

static void slot_start(struct slot *s)
{
	struct run *run = s->run;
	s->r = (struct store_rcpt){ .account = "bench@bench.example", .maildir = run->maildir, .mailbox = "INBOX" };
	s->d = (struct store_delivery){ .spool_path = run->spool, .rcpts = &s->r, .n_rcpts = 1, .cb = slot_done,
					.ctx = s };
	run->started++;
	run->inflight++;
	store_deliver(run->st, &s->d);
}

static int bench_store(const char *dir, unsigned conc, double seconds, size_t size)
{
	struct config cfg;
	struct db *db;
	struct store *st;
	char *error = NULL;
	uv_loop_t loop;

	config_defaults(&cfg);
	free(cfg.data_dir);
	cfg.data_dir = xstrdup(dir);
	uv_loop_init(&loop);
	if (db_open(dir, cfg.index_map_size, &db, &error) < 0 || store_open(&loop, &cfg, db, &st, &error) < 0) {
		fprintf(stderr, "bench: %s\n", error);
		return 1;
	}
	struct run run = { .st = st };
	run.spool = xasprintf("%s/spool.eml", dir);
	run.maildir = xasprintf("%s/mail/bench.example/bench", dir);
	char *data = xmalloc(size);
	for (size_t i = 0; i < size; i++)
		data[i] = i % 76 == 75 ? '\n' : 'a' + (char)(i % 26);
	int fd = open(run.spool, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, data, size) != (ssize_t)size)
		return 1;
	close(fd);

	struct slot *slots = xcalloc(conc, sizeof(*slots));
	double start = now_s();
	run.end = start + seconds;
	for (unsigned i = 0; i < conc; i++) {
		slots[i].run = &run;
		slot_start(&slots[i]);
	}
	while (run.inflight > 0)
		uv_run(&loop, UV_RUN_ONCE);
	double el = now_s() - start;
	printf("store %u %.1f %lu\n", conc, (double)run.done / el, run.done);
	store_close(&st);
	db_close(&db);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	config_free(&cfg);
	free(slots);
	free(data);
	free(run.spool);
	free(run.maildir);
	return run.failed ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: bench_deliver DIR fsync|store CONCURRENCY SECONDS [SIZE]\n");
		return 64;
	}
	unsigned conc = (unsigned)atoi(argv[3]);
	double seconds = atof(argv[4]);
	size_t size = argc > 5 ? (size_t)atol(argv[5]) : 4096;
	if (strcmp(argv[2], "fsync") == 0)
		return bench_fsync(argv[1], seconds, size);
	return bench_store(argv[1], conc ? conc : 1, seconds, size);
}
