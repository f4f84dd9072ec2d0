#ifndef POSTBOTE_CORE_FILEIO_H
#define POSTBOTE_CORE_FILEIO_H

/*
 * Small blocking file helpers used by the store, the uid list and the CLI:
 * the read and write loops that every caller of read(2) and write(2) needs
 * (EINTR, short counts), written once. They block, so on the server they
 * run only in worker threads and at start-up, never on the loop thread.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Write all len octets of data to fd at its file offset, retrying after
 * EINTR and short writes. Returns 0, or -1 with errno (EIO when write()
 * makes no progress). On failure an unknown prefix may have been
 * written. */
int fileio_write_all(int fd, const void *data, size_t len);

/* As fileio_write_all(), at offset off with pwrite(); the file offset of fd
 * does not move. */
int fileio_pwrite_all(int fd, const void *data, size_t len, uint64_t off);

/* Read exactly len octets at offset off into data with pread(), retrying
 * after EINTR and short reads. Returns 0, or -1 on an error (errno) or when
 * the file ends before len octets (errno EIO); data then holds an unknown
 * part of them. */
int fileio_pread_all(int fd, void *data, size_t len, uint64_t off);

/* Read the whole file at path (at most max octets; max < SIZE_MAX).
 *
 * Returns 0 with *data_r (malloc'd, caller frees, NUL-terminated after
 * *len_r octets so text may be used as a string) and *missing_r = false;
 * or 0 with *missing_r = true, *data_r = NULL and *len_r = 0 when the file
 * does not exist (ENOENT: not an error, e.g. a folder never written to);
 * or -1 with *error_r (caller frees) naming the path — "PATH: strerror",
 * "PATH: fstat: ...", "PATH: read: ...", "PATH: larger than MAX octets"
 * (errno EFBIG), "PATH: out of memory" (ENOMEM) — and errno kept for the
 * caller. A file that grows while it is read is read to its end, as long
 * as it stays within max. The buffer fails soft (no abort) because the
 * file's size is not ours to choose. */
int fileio_read_file(const char *path, size_t max, char **data_r, size_t *len_r, bool *missing_r,
		     char **error_r);

#endif
