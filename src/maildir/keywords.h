#ifndef POSTBOTE_MAILDIR_KEYWORDS_H
#define POSTBOTE_MAILDIR_KEYWORDS_H

/*
 * Dovecot's dovecot-keywords file: which IMAP keyword each info letter
 * a..z of a folder's file names stands for (see mdname.h). One line per
 * keyword in use, "<index> <name>", index 0..25 for letters 'a'..'z':
 *
 *   0 $Forwarded
 *   1 NonJunk
 *   3 $label1
 *
 * Reading is as forgiving as Dovecot's: lines it cannot use (no space, an
 * index outside 0..25, an empty name, a name longer than
 * KEYWORDS_NAME_MAX) are skipped, and the later of two lines for one index
 * wins. A name read from the file is kept as it is even when it is not an
 * IMAP atom, so its letter stays taken; check keywords_valid_name() before
 * sending one to a client.
 *
 * Keyword names compare case-insensitively (ASCII), as Dovecot and RFC 9051
 * 2.3.2 do; the first spelling is the one kept.
 */

#include <stdbool.h>
#include <stddef.h>

#define KEYWORDS_NAME "dovecot-keywords"
/* Letters 'a'..'z'. */
#define KEYWORDS_MAX 26
/* Longest keyword name accepted. */
#define KEYWORDS_NAME_MAX 255
/* Largest file keywords_read() accepts. */
#define KEYWORDS_FILE_MAX (64u * 1024)

struct keywords {
	char *names[KEYWORDS_MAX];  /* index i = letter 'a' + i; NULL = free (owned) */
	unsigned ignored_lines;     /* lines the last parse skipped */
};

/* Parse the len octets of text (need not be NUL-terminated; never read past
 * len) into *kw, which must be empty (zeroed or freed). Never fails: lines
 * it cannot use are skipped and counted in kw->ignored_lines, which is also
 * returned. Free with keywords_free(). */
unsigned keywords_parse(const char *text, size_t len, struct keywords *kw);

/* Read the file at path into *kw (zeroed first). A missing file is not an
 * error: 0 with *missing_r = true and an empty kw. Returns 0, or -1 with
 * *error_r (caller frees) and an empty kw. Refuses files above
 * KEYWORDS_FILE_MAX. Blocking. */
int keywords_read(const char *path, struct keywords *kw, bool *missing_r, char **error_r);

/* The file's text for kw (caller frees), *len_r its length. */
char *keywords_format(const struct keywords *kw, size_t *len_r);

/* Replace the file at path with kw, atomically: written to "PATH.lock"
 * (created with O_EXCL, taken over when stale, as for dovecot-uidlist),
 * fsynced when durable, renamed over path. Returns 0, or -1 with *error_r
 * (caller frees; errno EWOULDBLOCK when another process holds the lock).
 * Blocking. */
int keywords_write(const char *path, const struct keywords *kw, bool durable, char **error_r);

/* True if name may become a keyword: 1..KEYWORDS_NAME_MAX octets, all IMAP
 * atom characters (RFC 3501 9: no SP, CTL, non-ASCII, '(' ')' '{' '%' '*'
 * '"' '\' ']'); so no system flag ("\Seen") either. */
bool keywords_valid_name(const char *name);

/* The index (0..25, letter 'a' + index) of name, compared without regard to
 * ASCII case, or -1. The lowest index when a file listed it twice. */
int keywords_lookup(const struct keywords *kw, const char *name);

/* The index of name, giving it the lowest free index when it has none.
 * Returns -1 when name is not valid (keywords_valid_name()) or all 26
 * letters are taken. */
int keywords_add(struct keywords *kw, const char *name);

/* The name at index, or NULL when it is free or out of range. Valid until
 * the next keywords_parse/read/free of kw. */
const char *keywords_name(const struct keywords *kw, int index);

/* Free the names and zero kw. */
void keywords_free(struct keywords *kw);

#endif
