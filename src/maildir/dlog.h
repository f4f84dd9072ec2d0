#ifndef POSTBOTE_MAILDIR_DLOG_H
#define POSTBOTE_MAILDIR_DLOG_H

/*
 * The delivery log: how "250 OK" can mean durable without an fsync per
 * message (contract 3 of DESIGN.md).
 *
 * The log is one preallocated file (DATA/delivery.log). The store's writer
 * thread appends a record per delivery - the message and the names of the
 * Maildir files it will become - for a whole batch of concurrent
 * deliveries, then makes the batch durable with ONE fdatasync (about 0.3 ms,
 * against 1.3-2 ms per file for write+fsync+rename). Only then are the
 * Maildir files written, without fsync, and the deliveries acknowledged.
 *
 * A checkpoint (syncfs over the mail file system) later makes those files
 * durable, and the log starts over with a new generation number, so stale
 * records from earlier rounds are never read as current. After a crash,
 * dlog_replay() hands every record of the current generation back so the
 * store can write whatever files are missing or incomplete.
 *
 * Layout: a 4 KiB header block {magic, generation, crc}, then records, each
 * {magic, generation, length, crc32c of the rest} followed by the payload,
 * padded to 8 bytes. Because the file is preallocated, fdatasync does not
 * need to journal a size change. All functions block; only the writer thread
 * and start-up call them.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dlog;

/* Open or create the log at path with the given size (rounded up to 4 KiB;
 * an existing larger file keeps its size) and lock it for this process.
 * Returns 0, or -1 with *error_r; errno is EWOULDBLOCK when another process
 * (a running server) holds it. */
int dlog_open(const char *path, uint64_t size, struct dlog **log_r, char **error_r);
void dlog_close(struct dlog **log);

/* Room left for payloads, in bytes (record overhead already subtracted
 * for one record). */
uint64_t dlog_room(const struct dlog *log);
/* True when records were appended since the last reset. */
bool dlog_dirty(const struct dlog *log);

/* Append one record made of the concatenation of iov parts (not yet
 * durable). Returns 0, -1 with *error_r on an I/O error, or 1 if it does not
 * fit (checkpoint and reset, then try again, or bypass the log). */
struct dlog_part {
	const void *data;
	size_t len;
};
int dlog_append(struct dlog *log, const struct dlog_part *parts, size_t n_parts, char **error_r);

/* Streaming append, for message data read in chunks: begin with an upper
 * bound of the payload size (returns 1 if that does not fit), write the
 * payload in any number of pieces, end to seal the record. The record header
 * is written last, so a crash in between leaves nothing that replays. One
 * record at a time. */
struct dlog_rec {
	uint64_t start;      /* offset of the record header */
	uint64_t len;        /* payload bytes so far */
	uint64_t max_len;
	uint32_t crc;
};
int dlog_begin(struct dlog *log, uint64_t max_len, struct dlog_rec *rec);
int dlog_write(struct dlog *log, struct dlog_rec *rec, const void *data, size_t len, char **error_r);
int dlog_end(struct dlog *log, struct dlog_rec *rec, char **error_r);

/* Make every appended record durable (fdatasync). */
int dlog_sync(struct dlog *log, char **error_r);

/* Start a new generation: the records so far are no longer replayed. The
 * caller must have made everything they describe durable first. */
int dlog_reset(struct dlog *log, char **error_r);

/* Call fn for each record of the current generation, in order, with its
 * payload. fn returns 0 to go on, -1 to stop with an error. Records past a
 * torn or corrupt one are ignored (they were never acknowledged). Returns
 * the number of records, or -1. */
int dlog_replay(struct dlog *log, int (*fn)(const void *payload, size_t len, void *ctx), void *ctx,
		char **error_r);

/* CRC-32C (Castagnoli) of len bytes, continuing from crc (start with 0). */
uint32_t dlog_crc32c(uint32_t crc, const void *data, size_t len);

#endif
