#ifndef POSTBOTE_MAILDIR_MDNAME_H
#define POSTBOTE_MAILDIR_MDNAME_H

/*
 * Maildir file names (cr.yp.to/proto/maildir.html, with the Maildir++ and
 * Dovecot conventions). Pure functions: no I/O, no allocation.
 *
 *   1700000000.M20046P2137Q3.mail.example.org,S=1234,W=1256:2,FSa
 *   \_____________________________________________________/ \____/
 *                       base                                 info
 *
 * - The base names the message for its whole life; it is what
 *   dovecot-uidlist records. It ends at the first ':' (as Dovecot reads it).
 * - Fields after the first ',' of the base are "KEY=VALUE": S= is the size
 *   in octets as stored, W= the size with CRLF line ends (Dovecot,
 *   Courier). Other fields (U= of mbsync, FMD5= of offlineimap) are
 *   tolerated and kept, since they are part of the base.
 * - The info ":2,LETTERS" holds the flags: uppercase letters for the system
 *   flags, lowercase a..z for up to 26 keywords per folder (Dovecot's
 *   scheme; dovecot-keywords, see keywords.h, says which letter is which
 *   keyword). Letters are written in ASCII order. ":1," is the spec's
 *   experimental info and carries no flags.
 * - Letters this module does not know (another program's flags) are kept
 *   in mdname_info.other, so renaming a file to change its flags never
 *   drops them.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* System flags; the same bits as IDX_* in index.h. */
enum {
	MDNAME_SEEN     = 1,   /* S */
	MDNAME_ANSWERED = 2,   /* R (replied) */
	MDNAME_FLAGGED  = 4,   /* F */
	MDNAME_DELETED  = 8,   /* T (trashed) */
	MDNAME_DRAFT    = 16,  /* D */
	MDNAME_PASSED   = 32,  /* P (forwarded) */
};
#define MDNAME_FLAGS_ALL    0x3fu
#define MDNAME_KEYWORDS_ALL 0x03ffffffu  /* bit n = letter 'a' + n */

/* Longest file name (NAME_MAX on Linux); no name longer is accepted or made. */
#define MDNAME_MAX 255
/* Longest host part mdname_new() writes, after escaping. */
#define MDNAME_HOST_MAX 64
/* Unknown info letters remembered by mdname_parse(). */
#define MDNAME_OTHER_MAX 16

/* What makes a new name unique: the time of delivery, the process and a
 * per-process counter (Dovecot's "Q"), and the host. */
struct mdname_unique {
	uint64_t sec;
	uint32_t usec;
	uint32_t pid;
	uint64_t counter;
	const char *host;   /* NUL-terminated; NULL or "" means "localhost" */
};

enum mdname_info_kind {
	MDNAME_INFO_NONE = 0,  /* no ':' (a file in new/) */
	MDNAME_INFO_2,         /* ":2,LETTERS" */
	MDNAME_INFO_1,         /* ":1,..." experimental, no flags */
	MDNAME_INFO_OTHER,     /* ':' followed by something else; no flags */
};

struct mdname_info {
	size_t base_len;            /* octets before the first ':' (the whole name without one) */
	enum mdname_info_kind info;
	bool has_size, has_vsize;
	uint64_t size;              /* ",S=" */
	uint64_t vsize;             /* ",W=" */
	unsigned flags;             /* MDNAME_* */
	uint32_t keywords;          /* bit n = letter 'a' + n */
	/* Other letters of ":2," in ascending byte order, each once,
	 * NUL-terminated. */
	char other[MDNAME_OTHER_MAX + 1];
	/* More than MDNAME_OTHER_MAX distinct unknown letters: other holds
	 * only the first (lowest) ones, and a rename would drop the rest. */
	bool other_overflow;
};

/* Build a new base name "SEC.M<usec>P<pid>Q<counter>.HOST,S=<size>,W=<vsize>"
 * into out (NUL-terminated). In HOST, '/' becomes "\057" and ':' "\072"
 * (the Maildir spec), and so does every other byte that would confuse a
 * reader (',' "\054", '\' "\134", space, control and non-ASCII bytes, as
 * "\ooo" octal); the escaped host is cut at MDNAME_HOST_MAX octets, never
 * inside an escape. Returns the length, or -1 if it does not fit in outlen
 * (or in MDNAME_MAX). */
int mdname_new(char *out, size_t outlen, const struct mdname_unique *u, uint64_t size, uint64_t vsize);

/* Parse the len octets of name (need not be NUL-terminated; never read past
 * len). Returns 0 and fills *r, or -1 if name is not a Maildir message name:
 * empty, longer than MDNAME_MAX, starting with '.', with an empty base, or
 * containing '/', NUL, CR or LF. A malformed or overflowing S=/W= value is
 * not an error; has_size / has_vsize stay false and the caller stats the
 * file instead. Repeated letters in the info count once. */
int mdname_parse(const char *name, size_t len, struct mdname_info *r);

/* Write "BASE:2,LETTERS" into out (NUL-terminated): BASE is the first
 * base_len octets of name (name may carry an old info after them, which is
 * replaced); LETTERS are the flags, the keywords and the letters of other
 * (NULL for none; '/', NUL, CR and LF in it are skipped), all in ascending
 * ASCII order, each once. out may be name itself. Returns the length, or
 * -1 if the base is empty or holds ':', '/' or NUL, or the result does not
 * fit in outlen (or in MDNAME_MAX). */
int mdname_with_info(char *out, size_t outlen, const char *name, size_t base_len, unsigned flags,
		     uint32_t keywords, const char *other);

/* The MDNAME_* flags named by the letters (D F P R S T; others ignored). */
unsigned mdname_flags_from_chars(const char *chars, size_t len);

/* Write the letters of flags in ASCII order into out (at least 7 octets),
 * NUL-terminated. Returns the number of letters. */
size_t mdname_flags_to_chars(unsigned flags, char *out);

#endif
