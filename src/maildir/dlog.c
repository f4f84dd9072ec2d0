#include "maildir/dlog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/xalloc.h"

#define DLOG_HEADER_SIZE 4096
#define DLOG_FILE_MAGIC "PBDLOG1"
#define DLOG_REC_MAGIC 0x52444250u /* "PBDR" little-endian */

struct dlog_file_header {
	char magic[8];
	uint64_t generation;
	uint32_t crc;
	uint32_t pad;
};

struct dlog_rec_header {
	uint32_t magic;
	uint32_t crc;        /* crc32c over generation, len and the payload */
	uint64_t generation;
	uint64_t len;        /* payload bytes, before padding */
};

struct dlog {
	int fd;
	char *path;
	uint64_t size;       /* file size: the end of the usable area */
	uint64_t generation;
	uint64_t end;        /* where the next record goes */
};

static uint32_t dlog_crc_table[8][256];

static void dlog_crc_init(void)
{
	static bool done;
	if (done)
		return;
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
		dlog_crc_table[0][i] = c;
	}
	/* Slicing-by-8 tables: eight bytes per step for message-sized data. */
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			dlog_crc_table[t][i] = (dlog_crc_table[t - 1][i] >> 8) ^
					       dlog_crc_table[0][dlog_crc_table[t - 1][i] & 0xff];
	done = true;
}

uint32_t dlog_crc32c(uint32_t crc, const void *data, size_t len)
{
	const unsigned char *p = data;

	dlog_crc_init();
	crc = ~crc;
	while (len >= 8) {
		uint32_t lo, hi;
		memcpy(&lo, p, 4);
		memcpy(&hi, p + 4, 4);
		lo ^= crc;
		crc = dlog_crc_table[7][lo & 0xff] ^ dlog_crc_table[6][(lo >> 8) & 0xff] ^
		      dlog_crc_table[5][(lo >> 16) & 0xff] ^ dlog_crc_table[4][lo >> 24] ^
		      dlog_crc_table[3][hi & 0xff] ^ dlog_crc_table[2][(hi >> 8) & 0xff] ^
		      dlog_crc_table[1][(hi >> 16) & 0xff] ^ dlog_crc_table[0][hi >> 24];
		p += 8;
		len -= 8;
	}
	while (len--)
		crc = (crc >> 8) ^ dlog_crc_table[0][(crc ^ *p++) & 0xff];
	return ~crc;
}

static uint64_t dlog_pad8(uint64_t n)
{
	return (n + 7) & ~(uint64_t)7;
}

static int dlog_write_header(struct dlog *log, char **error_r)
{
	struct dlog_file_header h;

	memset(&h, 0, sizeof(h));
	memcpy(h.magic, DLOG_FILE_MAGIC, sizeof(h.magic));
	h.generation = log->generation;
	h.crc = dlog_crc32c(0, &h.generation, sizeof(h.generation));
	if (fileio_pwrite_all(log->fd, &h, sizeof(h), 0) < 0 || fdatasync(log->fd) < 0) {
		*error_r = xasprintf("%s: %s", log->path, strerror(errno));
		return -1;
	}
	return 0;
}

static int dlog_zero_fill(int fd, uint64_t from, uint64_t to)
{
	static const char zeros[64 * 1024];

	while (from < to) {
		size_t n = to - from < sizeof(zeros) ? (size_t)(to - from) : sizeof(zeros);
		if (fileio_pwrite_all(fd, zeros, n, from) < 0)
			return -1;
		from += n;
	}
	return 0;
}

int dlog_open(const char *path, uint64_t size, struct dlog **log_r, char **error_r)
{
	struct dlog *log = xcalloc(1, sizeof(*log));
	struct stat st;

	size = (size + DLOG_HEADER_SIZE - 1) / DLOG_HEADER_SIZE * DLOG_HEADER_SIZE;
	log->path = xstrdup(path);
	log->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (log->fd < 0 || fstat(log->fd, &st) < 0)
		goto fail_errno;
	/* One writer per log: a second process replaying or resetting it
	 * under a running server would lose that server's records. */
	if (flock(log->fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK) {
			*error_r = xasprintf("%s: in use by a running postbote", path);
			errno = EWOULDBLOCK;
			goto fail;
		}
		goto fail_errno;
	}
	if ((uint64_t)st.st_size < size) {
		/* Preallocate with real zeros, not just fallocate(): a write
		 * into an fallocated ("unwritten") extent converts it, which
		 * is a metadata change, so every fdatasync would commit the
		 * file system journal and stall other file creations behind
		 * it. Written blocks make a flush a data flush only. */
		if (dlog_zero_fill(log->fd, (uint64_t)st.st_size, size) < 0 || fsync(log->fd) < 0)
			goto fail_errno;
		st.st_size = (off_t)size;
	}
	log->size = (uint64_t)st.st_size;

	struct dlog_file_header h;
	if (fileio_pread_all(log->fd, &h, sizeof(h), 0) == 0 &&
	    memcmp(h.magic, DLOG_FILE_MAGIC, sizeof(h.magic)) == 0 &&
	    h.crc == dlog_crc32c(0, &h.generation, sizeof(h.generation))) {
		log->generation = h.generation;
	} else {
		/* New (or unreadable) log: nothing in it was ever
		 * acknowledged under this header, start at generation 1. */
		log->generation = 1;
		if (dlog_write_header(log, error_r) < 0)
			goto fail;
	}
	log->end = DLOG_HEADER_SIZE;
	*log_r = log;
	return 0;

fail_errno:
	*error_r = xasprintf("%s: %s", path, strerror(errno));
fail:
	if (log->fd >= 0)
		close(log->fd);
	free(log->path);
	free(log);
	return -1;
}

void dlog_close(struct dlog **logp)
{
	struct dlog *log = *logp;

	if (log == NULL)
		return;
	*logp = NULL;
	close(log->fd);
	free(log->path);
	free(log);
}

uint64_t dlog_room(const struct dlog *log)
{
	uint64_t used = log->end + sizeof(struct dlog_rec_header) + 8;
	return used >= log->size ? 0 : log->size - used;
}

bool dlog_dirty(const struct dlog *log)
{
	return log->end > DLOG_HEADER_SIZE;
}

int dlog_begin(struct dlog *log, uint64_t max_len, struct dlog_rec *rec)
{
	if (max_len > dlog_room(log))
		return 1;
	rec->start = log->end;
	rec->len = 0;
	rec->max_len = max_len;
	rec->crc = 0;
	return 0;
}

int dlog_write(struct dlog *log, struct dlog_rec *rec, const void *data, size_t len, char **error_r)
{
	if (rec->len + len > rec->max_len) {
		*error_r = xasprintf("%s: record longer than announced", log->path);
		return -1;
	}
	if (fileio_pwrite_all(log->fd, data, len, rec->start + sizeof(struct dlog_rec_header) + rec->len) < 0) {
		*error_r = xasprintf("%s: %s", log->path, strerror(errno));
		return -1;
	}
	rec->crc = dlog_crc32c(rec->crc, data, len);
	rec->len += len;
	return 0;
}

int dlog_end(struct dlog *log, struct dlog_rec *rec, char **error_r)
{
	struct dlog_rec_header rh;

	rh.magic = DLOG_REC_MAGIC;
	rh.generation = log->generation;
	rh.len = rec->len;
	/* The header fields are covered too: crc32c(header fields) combined
	 * with the payload's by hashing them after it. */
	rh.crc = dlog_crc32c(rec->crc, &rh.generation, sizeof(rh.generation) + sizeof(rh.len));
	if (fileio_pwrite_all(log->fd, &rh, sizeof(rh), rec->start) < 0) {
		*error_r = xasprintf("%s: %s", log->path, strerror(errno));
		return -1;
	}
	log->end = dlog_pad8(rec->start + sizeof(rh) + rec->len);
	return 0;
}

int dlog_append(struct dlog *log, const struct dlog_part *parts, size_t n_parts, char **error_r)
{
	struct dlog_rec rec;
	uint64_t len = 0;

	for (size_t i = 0; i < n_parts; i++)
		len += parts[i].len;
	if (dlog_begin(log, len, &rec) != 0)
		return 1;
	for (size_t i = 0; i < n_parts; i++)
		if (dlog_write(log, &rec, parts[i].data, parts[i].len, error_r) < 0)
			return -1;
	return dlog_end(log, &rec, error_r);
}

int dlog_sync(struct dlog *log, char **error_r)
{
	if (fdatasync(log->fd) < 0) {
		*error_r = xasprintf("%s: fdatasync: %s", log->path, strerror(errno));
		return -1;
	}
	return 0;
}

int dlog_reset(struct dlog *log, char **error_r)
{
	log->generation++;
	log->end = DLOG_HEADER_SIZE;
	return dlog_write_header(log, error_r);
}

int dlog_replay(struct dlog *log, int (*fn)(const void *payload, size_t len, void *ctx), void *ctx,
		char **error_r)
{
	uint64_t off = DLOG_HEADER_SIZE;
	int count = 0;
	char *payload = NULL;
	size_t cap = 0;

	for (;;) {
		struct dlog_rec_header rh;
		if (off + sizeof(rh) > log->size || fileio_pread_all(log->fd, &rh, sizeof(rh), off) < 0)
			break;
		if (rh.magic != DLOG_REC_MAGIC || rh.generation != log->generation ||
		    rh.len > log->size - off - sizeof(rh))
			break;
		if (rh.len > cap) {
			cap = rh.len;
			payload = xrealloc(payload, cap);
		}
		if (fileio_pread_all(log->fd, payload, rh.len, off + sizeof(rh)) < 0)
			break;
		uint32_t crc = dlog_crc32c(0, payload, rh.len);
		if (dlog_crc32c(crc, &rh.generation, sizeof(rh.generation) + sizeof(rh.len)) != rh.crc)
			break; /* torn write: never acknowledged */
		if (fn(payload, rh.len, ctx) < 0) {
			free(payload);
			*error_r = xasprintf("%s: replay of record %d failed", log->path, count + 1);
			return -1;
		}
		count++;
		off = dlog_pad8(off + sizeof(rh) + rh.len);
	}
	free(payload);
	log->end = off;
	return count;
}
