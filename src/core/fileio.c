/*
 * The blocking read and write loops, once. A read(2) or write(2) may stop
 * short or be interrupted by a signal, and code that forgets either works
 * in every test and loses data on a busy machine; hence one copy here that
 * the store, the uid list and the CLI share.
 *
 * What it must never do: loop forever (a write that makes no progress is
 * an error), or read more than the caller's maximum into memory.
 */

#include "core/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/xalloc.h"

/* The write loop of both: pwrite() at off when positional, else write(). */
static int fileio_write_loop(int fd, const char *p, size_t len, bool positional, uint64_t off)
{
	while (len > 0) {
		ssize_t n = positional ? pwrite(fd, p, len, (off_t)off) : write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0) {
			errno = EIO;  /* no progress: never loop forever */
			return -1;
		}
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int fileio_write_all(int fd, const void *data, size_t len)
{
	return fileio_write_loop(fd, data, len, false, 0);
}

int fileio_pwrite_all(int fd, const void *data, size_t len, uint64_t off)
{
	return fileio_write_loop(fd, data, len, true, off);
}

int fileio_pread_all(int fd, void *data, size_t len, uint64_t off)
{
	char *p = data;

	while (len > 0) {
		ssize_t n = pread(fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0) {
			errno = EIO;  /* the file ends before len */
			return -1;
		}
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int fileio_read_file(const char *path, size_t max, char **data_r, size_t *len_r, bool *missing_r,
		     char **error_r)
{
	struct stat st;
	char *buf = NULL;
	size_t len = 0, cap;
	int fd, saved;

	*data_r = NULL;
	*len_r = 0;
	*missing_r = false;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT) {
			*missing_r = true;
			return 0;
		}
		saved = errno;
		*error_r = xasprintf("%s: %s", path, strerror(saved));
		errno = saved;
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		saved = errno;
		*error_r = xasprintf("%s: fstat: %s", path, strerror(saved));
		goto fail;
	}
	/* Only a regular file's size means anything (a directory fails in
	 * read() below, with its own message). */
	uint64_t size = S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
	if (size > max)
		goto too_large;
	/* Room for what a writer adds while we read (Dovecot appends to its
	 * uid list without our lock) and for the NUL. The buffer never grows
	 * past max + 1: one octet over max is how a file too large shows. */
	cap = size + 4096 < (uint64_t)max + 1 ? (size_t)size + 4096 : max + 1;
	buf = malloc(cap);
	if (buf == NULL)
		goto no_memory;
	for (;;) {
		if (len == cap) {
			if (cap > max)
				goto too_large;
			size_t ncap = cap > (max + 1) / 2 ? max + 1 : cap * 2;
			char *nbuf = realloc(buf, ncap);
			if (nbuf == NULL)
				goto no_memory;
			buf = nbuf;
			cap = ncap;
		}
		ssize_t r = read(fd, buf + len, cap - len);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			saved = errno;
			*error_r = xasprintf("%s: read: %s", path, strerror(saved));
			goto fail;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	buf[len] = '\0';  /* len < cap: the last read() had room */
	*data_r = buf;
	*len_r = len;
	return 0;

too_large:
	saved = EFBIG;
	*error_r = xasprintf("%s: larger than %zu octets", path, max);
	goto fail;
no_memory:
	saved = ENOMEM;
	*error_r = xasprintf("%s: out of memory", path);
fail:
	close(fd);
	free(buf);
	errno = saved;
	return -1;
}
