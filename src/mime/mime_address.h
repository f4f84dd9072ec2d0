#ifndef POSTBOTE_MIME_ADDRESS_H
#define POSTBOTE_MIME_ADDRESS_H

/*
 * RFC 5322 3.4 address lists, parsed into the four-field form of an IMAP
 * ENVELOPE address (RFC 3501 7.4.2).
 *
 * Broken input never fails: what cannot be parsed is kept as well as it
 * can be, and a missing mailbox or domain is filled in with
 * "MISSING_MAILBOX" / "MISSING_DOMAIN" (an angle address that does not
 * parse gets domain "SYNTAX_ERROR", a route that does not parse
 * "INVALID_ROUTE"), which is what Dovecot shows, so clients that cache
 * envelopes see the same thing from either server. Groups become a start
 * entry (mailbox = group name, the rest NULL) and an end entry (all NULL).
 * Text inside comments, quoted strings and domain literals has NULs turned
 * into U+FFFD; a display name is taken from the last comment when an
 * addr-spec has no phrase ("user@host (Name)").
 */

#include <stddef.h>
#include <stdint.h>

#include "mime/mime_tree.h"

/* Parse len bytes of an address header value and append the entries to
 * the list in *list and *count (NULL and 0 for a new list): a field that
 * occurs twice (two Cc: lines) lists the addresses of both, as Dovecot
 * shows them. Entries are allocated from t and counted against its
 * kept-bytes budget; a list holds at most MIME_MAX_ADDRESSES. The array
 * is allocated in powers of two (at least 4): a list must only ever grow
 * through this function. */
void mime_address_parse(struct mime_tree *t, const void *value, size_t len,
			struct mime_address **list, uint32_t *count);

#endif
