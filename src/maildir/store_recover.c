/*
 * Start-up recovery. Every delivery that was acknowledged is in the
 * delivery log (until a checkpoint made its files durable), so after a crash
 * each logged file is checked: present with the right size in new/ or (with
 * flags) in cur/ means done; missing or short means it is written again from
 * the log. Then the mailboxes involved are reconciled, which indexes
 * whatever the crash left out of the index, and a checkpoint ends the
 * round. A message is never written twice: the file name recorded in the
 * log is the one looked for.
 *
 * A client could expunge a message before the checkpoint after its
 * delivery; replaying it would bring it back. Operations that remove files
 * therefore checkpoint first when the log holds records (see store.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "maildir/layout.h"
#include "maildir/store_private.h"

struct recover_box {
	char *account, *maildir, *mailbox;
};

struct recover_ctx {
	struct store *st;
	struct recover_box *boxes;
	size_t n_boxes, cap_boxes;
	unsigned rewritten;
};

/* Is name (or name:2,FLAGS) in cur/ or new/ with the right size? */
static bool recover_present(const char *dir, const char *name, uint64_t size)
{
	struct stat sb;
	char *p = xasprintf("%s/new/%s", dir, name);
	bool ok = stat(p, &sb) == 0 && (uint64_t)sb.st_size == size;
	free(p);
	if (ok)
		return true;
	p = xasprintf("%s/cur", dir);
	DIR *d = opendir(p);
	free(p);
	if (d == NULL)
		return false;
	size_t n = strlen(name);
	struct dirent *de;
	while (!ok && (de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, name, n) != 0 || (de->d_name[n] != ':' && de->d_name[n] != '\0'))
			continue;
		p = xasprintf("%s/cur/%s", dir, de->d_name);
		ok = stat(p, &sb) == 0 && (uint64_t)sb.st_size == size;
		if (!ok)
			unlink(p); /* torn by a power cut: written again below */
		free(p);
	}
	closedir(d);
	return ok;
}

static int recover_write(const char *dir, const char *name, const char *data, size_t len)
{
	char *tmp = xasprintf("%s/tmp/%s", dir, name);
	char *final = xasprintf("%s/new/%s", dir, name);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int rc = -1;

	if (fd >= 0) {
		int written = fileio_write_all(fd, data, len);
		if (close(fd) == 0 && written == 0 && rename(tmp, final) == 0)
			rc = 0;
	}
	if (rc < 0) {
		log_error("store: recovery: %s: %s", final, strerror(errno));
		unlink(tmp);
	}
	free(tmp);
	free(final);
	return rc;
}

static void recover_note_box(struct recover_ctx *rc, const char *account, const char *maildir,
			     const char *mailbox)
{
	for (size_t i = 0; i < rc->n_boxes; i++)
		if (strcmp(rc->boxes[i].account, account) == 0 && strcmp(rc->boxes[i].maildir, maildir) == 0 &&
		    strcmp(rc->boxes[i].mailbox, mailbox) == 0)
			return;
	if (rc->n_boxes == rc->cap_boxes) {
		rc->cap_boxes = rc->cap_boxes ? rc->cap_boxes * 2 : 8;
		rc->boxes = xrealloc(rc->boxes, rc->cap_boxes * sizeof(*rc->boxes));
	}
	rc->boxes[rc->n_boxes++] = (struct recover_box){ xstrdup(account), xstrdup(maildir), xstrdup(mailbox) };
}

/* One record: message data, then the tail written by store_log_tail(). */
static int recover_record(const void *payload, size_t len, void *ctx)
{
	struct recover_ctx *rc = ctx;
	const char *p = payload;
	uint32_t tail_len, count;

	if (len < 20)
		return 0;
	memcpy(&tail_len, p + len - 4, 4);
	if (tail_len < 20 || tail_len > len)
		return 0;
	const char *tail = p + len - tail_len;
	size_t data_len = len - tail_len;
	memcpy(&count, tail, 4);
	const char *q = tail + 4, *end = p + len - 16;
	for (uint32_t i = 0; i < count; i++) {
		const char *f[4];
		for (int k = 0; k < 4; k++) {
			const char *nul = memchr(q, '\0', (size_t)(end - q));
			if (nul == NULL)
				return 0; /* malformed: the crc matched, so a bug; skip */
			f[k] = q;
			q = nul + 1;
		}
		char *dir = layout_mailbox_dir(f[1], f[2]);
		char *error = NULL;
		if (dir == NULL)
			continue;
		if (layout_ensure(dir, strcasecmp(f[2], "INBOX") != 0, &error) < 0) {
			log_error("store: recovery: %s", error);
			free(error);
			free(dir);
			return -1;
		}
		if (!recover_present(dir, f[3], data_len)) {
			if (recover_write(dir, f[3], p, data_len) < 0) {
				free(dir);
				return -1;
			}
			rc->rewritten++;
		}
		recover_note_box(rc, f[0], f[1], f[2]);
		free(dir);
	}
	return 0;
}

int store__recover(struct store *st, char **error_r)
{
	struct recover_ctx rc = { .st = st };
	int n = dlog_replay(st->log, recover_record, &rc, error_r);
	int ret = n < 0 ? -1 : 0;

	if (n > 0)
		log_info("store: recovery: %d logged deliveries checked, %u file(s) written again", n,
			 rc.rewritten);
	/* Index what the crash left out. */
	for (size_t i = 0; i < rc.n_boxes && ret == 0; i++) {
		MDB_txn *txn;
		int r = mdb_txn_begin(st->db->env, NULL, 0, &txn);
		if (r != 0) {
			*error_r = xasprintf("store: recovery: %s", mdb_strerror(r));
			ret = -1;
			break;
		}
		struct idx_mailbox mb;
		char *dir = NULL;
		enum store_result res = store__mailbox_ensure(st, txn, rc.boxes[i].account, rc.boxes[i].maildir,
							      rc.boxes[i].mailbox, true, &dir, &mb, error_r);
		if (res == STORE_OK)
			res = store__reconcile(st, txn, rc.boxes[i].account, rc.boxes[i].mailbox, dir, &mb,
					       true, error_r) < 0 ? STORE_TEMPFAIL : STORE_OK;
		if (res == STORE_OK && (r = mdb_txn_commit(txn)) != 0) {
			*error_r = xasprintf("store: recovery: %s", mdb_strerror(r));
			res = STORE_TEMPFAIL;
		} else if (res != STORE_OK) {
			mdb_txn_abort(txn);
		}
		if (dir != NULL)
			store__touch_dir(st, dir);
		free(dir);
		if (res != STORE_OK)
			ret = -1;
	}
	for (size_t i = 0; i < rc.n_boxes; i++) {
		free(rc.boxes[i].account);
		free(rc.boxes[i].maildir);
		free(rc.boxes[i].mailbox);
	}
	free(rc.boxes);
	if (ret == 0 && n > 0) {
		/* Files written during recovery may be on file systems the
		 * store has not touched yet: sync them all once. */
		sync();
		ret = dlog_reset(st->log, error_r);
	}
	return ret;
}

static void clean_tmp_dir(const char *tmp, time_t cutoff)
{
	DIR *d = opendir(tmp);
	struct dirent *de;

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		char *p = xasprintf("%s/%s", tmp, de->d_name);
		struct stat sb;
		if (lstat(p, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_mtime < cutoff && sb.st_atime < cutoff) {
			if (unlink(p) == 0)
				log_info("store: removed stale %s", p);
		}
		free(p);
	}
	closedir(d);
}

/* DATA/mail/DOMAIN/USER[/.Folder]/tmp: at most three levels down. */
static void clean_walk(const char *dir, int depth, time_t cutoff)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		char *p = xasprintf("%s/%s", dir, de->d_name);
		struct stat sb;
		if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode)) {
			if (strcmp(de->d_name, "tmp") == 0)
				clean_tmp_dir(p, cutoff);
			else if (depth < 3 && strcmp(de->d_name, "new") != 0 && strcmp(de->d_name, "cur") != 0)
				clean_walk(p, depth + 1, cutoff);
		}
		free(p);
	}
	closedir(d);
}

void store__clean_tmp(struct store *st, const char *root)
{
	(void)st;
	/* Maildir spec: a file in tmp/ untouched for 36 hours is a leftover;
	 * the issue asks for a day. */
	clean_walk(root, 0, time(NULL) - 24 * 3600);
}
