#ifndef POSTBOTE_MIME_IMAPSTR_H
#define POSTBOTE_MIME_IMAPSTR_H

/*
 * Writing byte strings as IMAP4rev1 strings (RFC 3501 4.3, 9 "string"):
 * quoted when that is possible and short, otherwise a literal
 * "{n}\r\n" + bytes. Used by the ENVELOPE and BODYSTRUCTURE renderers and
 * meant for the IMAP server's responses too.
 *
 * A quoted string may only hold 7-bit characters other than NUL, CR and LF
 * (TEXT-CHAR), with '"' and '\' escaped; anything else needs a literal. A
 * literal may not hold NUL either (only literal8 may), so NUL bytes are
 * sent as 0x80, which is what Dovecot does and what clients expect.
 *
 * Every function either appends the whole item and returns 0, or returns
 * -1 and leaves the buffer unchanged (it did not fit below the buffer's
 * maximum).
 */

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"

/* The string, quoted or as a literal. */
int imapstr_write(struct buf *out, const void *data, size_t len);
/* NIL for NULL, else the string. */
int imapstr_write_nstring(struct buf *out, const char *s);
/* An atom when the string is a non-empty run of ASTRING-CHARs other than
 * "NIL", else the string (for mailbox names, flags, capabilities). */
int imapstr_write_astring(struct buf *out, const void *data, size_t len);
/* NIL for NULL, else the string with its line breaks removed: a CR or LF
 * is dropped, and one followed by something other than white space leaves
 * a space so words do not run together (BODYSTRUCTURE's Content-ID,
 * -Description, -MD5 and -Location are sent so). */
int imapstr_write_nolf(struct buf *out, const char *s);
/* The string cleaned for a person to read (ENVELOPE subject and display
 * names): every run of white space (SP, HT, CR, LF) becomes one space,
 * leading and trailing white space goes, NUL becomes 0x80. */
int imapstr_write_human(struct buf *out, const void *data, size_t len);

/* Whether a byte may appear in a quoted string (RFC 3501 TEXT-CHAR). */
static inline bool imapstr_is_text_char(unsigned char c)
{
	return c != 0 && c < 0x80 && c != '\r' && c != '\n';
}

#endif
