#ifndef POSTBOTE_MIME_PARSE_H
#define POSTBOTE_MIME_PARSE_H

/*
 * The streaming RFC 5322 + MIME parser. It is fed a message in chunks of
 * any size and split (a boundary, a CRLF, a header name may straddle two
 * chunks) and never holds more than one line prefix and one header field of
 * it; what it builds is a struct mime_tree (mime_tree.h) with the offsets
 * and sizes of every part and the header values IMAP needs.
 *
 * Malformed mail is parsed, never refused: a missing boundary or an
 * unterminated multipart leaves the rest of the message in the part that
 * was open, no blank line after the header means the whole message is
 * header, bare LFs and NULs are counted as they are, a header line without
 * a colon is a field whose name is the whole line. Where RFCs leave the
 * reading open, it is the one Dovecot uses (RFC 2046 5.1.1 boundaries match
 * as line prefixes, the innermost and longest first; the CRLF before a
 * boundary belongs to the boundary), so BODYSTRUCTURE, sizes and section
 * offsets agree with that server byte for byte.
 */

#include <stdbool.h>
#include <stddef.h>

#include "mime/mime_tree.h"

/* Optional taps for callers that want more than the structure (SEARCH
 * wants header values and body text, DKIM wants header fields). Either
 * pointer may be NULL. Pointers passed to them are valid during the call
 * only; the part is the one being parsed (its flags are final once its
 * body starts). */
struct mime_parse_hooks {
	/* A complete header field: name as written before the colon (blanks
	 * before the colon removed; the whole line for a line without colon;
	 * at most its first 256 bytes), value with the blanks after the colon
	 * skipped and folds joined by LF (CRs of the folds dropped), at most
	 * MIME_HEADER_VALUE_MAX bytes (truncated says whether it was cut). */
	void (*header)(void *ctx, const struct mime_part *part,
		       const char *name, size_t name_len,
		       const char *value, size_t value_len, bool truncated);
	/* Body bytes, in order, each byte once, given to the part that owns
	 * it: a multipart part also gets its preamble, boundary lines and
	 * epilogue, so a caller after content skips parts with
	 * MIME_PART_MULTIPART. */
	void (*body)(void *ctx, const struct mime_part *part, const void *data, size_t len);
	void *ctx;
};

struct mime_parser;

/* Start parsing one message. hooks may be NULL; it is copied. */
struct mime_parser *mime_parser_new(const struct mime_parse_hooks *hooks);
/* Feed the next len bytes. Never fails: limits (mime_tree.h) degrade the
 * structure instead. */
void mime_parser_feed(struct mime_parser *p, const void *data, size_t len);
/* End of message: finish all open parts, free the parser (*p becomes NULL)
 * and return the tree, which the caller frees with mime_tree_free(). */
struct mime_tree *mime_parser_finish(struct mime_parser **p);
/* Abandon a parse; frees everything. NULL is fine. */
void mime_parser_free(struct mime_parser **p);

/* Parse a message that is in memory as a whole. */
struct mime_tree *mime_parse(const void *data, size_t len);

#endif
