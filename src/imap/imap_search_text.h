#ifndef POSTBOTE_IMAP_SEARCH_TEXT_H
#define POSTBOTE_IMAP_SEARCH_TEXT_H

/*
 * The text keys of SEARCH (RFC 3501 6.4.4: BODY, TEXT, HEADER and the
 * address and subject keys that are HEADER in disguise), matched while a
 * message streams through the MIME parser: never the whole message in
 * memory, and only for messages the cheap keys left undecided.
 *
 * Matching is a case-insensitive substring test on UTF-8: ASCII letters
 * and the Latin letters of U+00C0..U+017F are folded. Header values are
 * compared after RFC 2047 decoding, bodies after their transfer encoding
 * is undone and their charset converted. Used by imap_search.c only.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imap/imap_backend.h"

enum imap__stext_kind {
	IMAP__STEXT_HEADER,   /* field of the message's own header */
	IMAP__STEXT_BODY,     /* the decoded text of its text parts */
	IMAP__STEXT_TEXT,     /* header fields and body text */
};

struct imap__stext_key {
	enum imap__stext_kind kind;
	char *field;          /* HEADER: the field name (allocated) */
	char *needle;         /* folded (allocated); may be empty */
	size_t len;
	bool found;           /* the answer after imap__stext_run() */

	/* the needle's last len-1 bytes seen, for a match across pieces */
	char *join;           /* 2 * len bytes */
	size_t tlen;
};

/* Fold s in place (the result is never longer). */
void imap__fold(char *s, size_t len);

/* Set up key (takes over field, copies and folds the needle). */
void imap__stext_init(struct imap__stext_key *key, enum imap__stext_kind kind, char *field,
		      const char *needle, size_t len);
void imap__stext_free(struct imap__stext_key *key);

/* Read message uid and set found on each of the n keys. Returns IMAP_OK
 * or the status that kept the message from being read (GONE, TEMPFAIL). */
enum imap_status imap__stext_run(const struct imap_backend *be, struct imap_mailbox *mb, uint32_t uid,
				 struct imap__stext_key *keys, size_t n);

#endif
