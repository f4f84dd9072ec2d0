#ifndef POSTBOTE_CORE_LINEREADER_H
#define POSTBOTE_CORE_LINEREADER_H

/*
 * A bounded line reader: bytes from the network go in, complete lines come
 * out. No I/O, no allocation beyond its own bounded buffer.
 *
 * - A line ends at LF. A CR directly before the LF is removed too; the
 *   line_bare_lf flag tells the protocol the line ended in a lone LF, which
 *   SMTP must treat specially (RFC 5321 2.3.8, the 2023 smuggling advisories).
 * - Lines may contain NUL bytes: every line is (pointer, length), never a C
 *   string. Protocols decide whether a NUL is an error.
 * - A line longer than line_max octets (counting its CRLF, as RFC 5321
 *   4.5.3.1.4 does) is reported as LINEREADER_TOO_LONG exactly once, before its
 *   newline has even arrived; its bytes are discarded up to and including the
 *   next LF, and reading goes on with the line after it. The protocol answers
 *   with its own error and the session goes on.
 * - linereader_take() reads exact byte counts (IMAP literals, BDAT chunks)
 *   from the same buffer, so a literal that arrives in the same packet as its
 *   command line is not lost.
 */

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"

enum linereader_status {
	LINEREADER_NEED_MORE = 0, /* no complete line buffered */
	LINEREADER_LINE,          /* *line_r, *len_r hold one line without its line end */
	LINEREADER_TOO_LONG,      /* a line passed line_max; it is being discarded */
};

struct linereader {
	struct buf in;
	size_t line_max;     /* octets per line, line end included */
	size_t scanned;      /* bytes at the front already searched for LF */
	bool skipping;       /* inside an overlong line, discarding to its LF */
	bool line_bare_lf;   /* the last line returned ended in LF without CR */
	bool prev_bare_lf;   /* the line end before that one (of a line
	                      * returned or skipped) was a lone LF */
	bool end_bare_lf;    /* the most recent line end consumed */
	bool skip_cr;        /* while skipping: the last byte dropped was CR */
};

/* Start a reader for lines of at most line_max octets (CRLF included) whose
 * buffer holds at most buffer_max octets (>= line_max: the excess is room for
 * pipelined input that arrives while the protocol is busy). */
void linereader_init(struct linereader *lr, size_t line_max, size_t buffer_max);
void linereader_free(struct linereader *lr);

/* Change the line limit (a protocol may allow longer lines in some states). */
void linereader_set_line_max(struct linereader *lr, size_t line_max);

/* Append bytes read from the peer. Returns 0, or -1 if they do not fit in the
 * buffer (nothing is appended): the caller did not stop reading while the
 * protocol was busy, or the peer floods; close the connection. */
int linereader_feed(struct linereader *lr, const void *data, size_t len);

/* Get the next line. On LINEREADER_LINE, *line_r and *len_r stay valid until the
 * next call of any linereader function. */
enum linereader_status linereader_next(struct linereader *lr, const char **line_r, size_t *len_r);

/* Take up to want buffered bytes verbatim (no line splitting). Returns how
 * many were taken (0 when none are buffered); *data_r stays valid until the
 * next call of any linereader function. */
size_t linereader_take(struct linereader *lr, size_t want, const char **data_r);

/* Bytes buffered and not yet returned. */
static inline size_t linereader_buffered(const struct linereader *lr) { return buf_len(&lr->in); }

/* Return the memory an earlier long line or large read left allocated;
 * what is buffered stays, in storage just big enough. Call it when the
 * connection goes quiet. */
void linereader_trim(struct linereader *lr);

/* Throw away everything buffered (STARTTLS: plaintext the client sent after
 * the command must never be read as if it came over TLS). */
void linereader_discard(struct linereader *lr);

#endif
