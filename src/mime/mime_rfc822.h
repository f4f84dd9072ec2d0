#ifndef POSTBOTE_MIME_RFC822_H
#define POSTBOTE_MIME_RFC822_H

/*
 * RFC 5322 / RFC 2045 lexical pieces shared by the Content-Type, parameter
 * and address parsers of this folder (not used outside it, hence mime__).
 *
 * Every function works on a cursor over one header value and returns what
 * the callers branch on: 1 = a token was read and more input follows,
 * 0 = a token was read and the input is at its end, -1 = syntax error
 * (the cursor is left where the error was found). The return values, and
 * the lenient corners (a backslash before CR/LF is literal, (CR)LF inside a
 * quoted string or comment is unfolded), are chosen to give the same
 * answers as Dovecot for the same bytes, because IMAP clients compare
 * BODYSTRUCTURE and ENVELOPE across servers.
 */

#include <stdbool.h>
#include <stddef.h>

/* A growable byte string for parser output, always NUL-terminated. Its size
 * is bounded by the input it is built from (one header value, which the
 * parser caps at MIME_HEADER_VALUE_MAX). */
struct mime__str {
	char *data;
	size_t len;
	size_t cap;
};

void mime__str_add(struct mime__str *s, const void *data, size_t len);
void mime__str_addc(struct mime__str *s, char c);
void mime__str_adds(struct mime__str *s, const char *cstr);
void mime__str_truncate(struct mime__str *s, size_t len);
void mime__str_free(struct mime__str *s);
/* "" when nothing was ever added. */
static inline const char *mime__str_c(const struct mime__str *s) { return s->data ? s->data : ""; }

struct mime__lex {
	const unsigned char *p;
	const unsigned char *end;
	/* When set, receives the text of the last comment skipped (emptied
	 * at the start of each comment). */
	struct mime__str *comment;
	/* Turn NUL bytes in quoted strings, comments and domain literals into
	 * U+FFFD (for values that become IMAP strings). */
	bool nul_repl;
};

static inline void mime__lex_init(struct mime__lex *lx, const void *data, size_t len)
{
	lx->p = data;
	lx->end = lx->p + len;
	lx->comment = NULL;
	lx->nul_repl = false;
}

static inline bool mime__lex_more(const struct mime__lex *lx) { return lx->p < lx->end; }
/* The byte under the cursor, or NUL at the end (callers test
 * mime__lex_more() where the difference matters). */
static inline unsigned char mime__lex_peek(const struct mime__lex *lx) { return lx->p < lx->end ? *lx->p : 0; }

/* RFC 5322 3.2.3 atext. */
bool mime__is_atext(unsigned char c);
/* RFC 2045 5.1 token characters (atext without "/", "=", "?"), plus '.'. */
bool mime__is_token(unsigned char c);

int mime__skip_comment(struct mime__lex *lx);
/* Skip whitespace (SP, HT, CR, LF) and comments. */
int mime__skip_lwsp(struct mime__lex *lx);
int mime__parse_atom(struct mime__lex *lx, struct mime__str *out);
int mime__parse_dot_atom(struct mime__lex *lx, struct mime__str *out);
/* Zero or more token characters; never fails except in a comment after. */
int mime__parse_token(struct mime__lex *lx, struct mime__str *out);
int mime__parse_quoted(struct mime__lex *lx, struct mime__str *out);
int mime__parse_phrase(struct mime__lex *lx, struct mime__str *out);
/* At '@': the domain after it (dot-atom or [literal]). */
int mime__parse_domain(struct mime__lex *lx, struct mime__str *out);
/* "type/subtype" into out; on failure out is left as it was. */
int mime__parse_content_type(struct mime__lex *lx, struct mime__str *out);
/* One ";" name "=" value; 0 at the end of input, 1 with *name and value
 * set, -1 on a broken parameter. */
int mime__parse_param(struct mime__lex *lx, struct mime__str *name, struct mime__str *value);

#endif
