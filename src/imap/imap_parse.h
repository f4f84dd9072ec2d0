#ifndef POSTBOTE_IMAP_PARSE_H
#define POSTBOTE_IMAP_PARSE_H

/*
 * The IMAP4rev1 command parser (RFC 3501 section 9), sans-I/O.
 *
 * It works in two steps. First it accumulates one command as the session
 * driver delivers it: a line (without its CRLF), and when that line ends in a
 * literal announcement "{n}" or "{n+}" (LITERAL+, RFC 7888), the n literal
 * bytes (session_expect_bytes(), possibly in several pieces), then the rest
 * of the line, and so on. The command is kept in its wire form (lines joined
 * with CRLF, literals in place) in one owned, bounded buffer. Second, once
 * complete, imap_parser_command() tokenizes it: tag, command name and an
 * argument tree whose strings are NUL-terminated copies owned by the parser.
 *
 * Limits: a literal may not be larger than literal_max and the whole command
 * (lines, CRLFs and literals) not larger than command_max. A synchronizing
 * literal over a limit is refused before the continuation is sent; the bytes
 * of a non-synchronizing one over a limit are skipped, the rest of the
 * command is dropped and the refusal comes once at its end, so the dialogue
 * stays in step.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct imap_parser;

enum imap_parse_status {
	/* The command is complete: call imap_parser_command(), then
	 * imap_parser_reset() before the next line. */
	IMAP_PARSE_COMPLETE = 0,
	/* The line ended in a literal announcement: *n_r bytes come next
	 * (session_expect_bytes(n), each piece to imap_parser_bytes()). When
	 * *sync_r is true the client waits for a continuation request ("+ "
	 * and text) first. With n == 0 no bytes come: the next line follows
	 * (after the continuation, if sync). */
	IMAP_PARSE_LITERAL,
	/* More is needed: the rest of a literal, or (after the last literal
	 * byte) the next line. */
	IMAP_PARSE_MORE,
	/* A non-synchronizing literal over a limit: *n_r bytes must be
	 * skipped (session_expect_bytes(n), given to imap_parser_bytes(),
	 * which drops them), then lines go on to the parser, which drops
	 * them until the command ends and then reports
	 * IMAP_PARSE_LITERAL_TOO_BIG or IMAP_PARSE_TOO_LONG. */
	IMAP_PARSE_SKIP,
	/* A literal larger than literal_max: answer the tag
	 * (imap_parser_tag()) with "NO [TOOBIG]" (RFC 4469 5, RFC 7889) or
	 * BAD, without a continuation. The parser has been reset. */
	IMAP_PARSE_LITERAL_TOO_BIG,
	/* The command is longer than command_max: answer the tag with BAD.
	 * The parser has been reset. */
	IMAP_PARSE_TOO_LONG,
	/* A non-synchronizing literal whose length is not a 32-bit number:
	 * there is no way to stay in step; answer BYE and close. */
	IMAP_PARSE_FATAL,
};

enum imap_arg_type {
	IMAP_ARG_ATOM = 0,  /* a run of atom characters (also "*", "%", "]", ":" ...) */
	IMAP_ARG_NUMBER,    /* an atom of digits only that fits 64 bits: num */
	IMAP_ARG_NIL,       /* the atom NIL, any case; str holds "NIL" */
	IMAP_ARG_QUOTED,    /* a quoted string, unescaped */
	IMAP_ARG_LITERAL,   /* a literal's bytes (may hold NUL, CR, LF) */
	IMAP_ARG_FLAG,      /* "\" atom or "\*": str includes the backslash */
	IMAP_ARG_LIST,      /* "(" ... ")": count children follow */
	IMAP_ARG_SECTION,   /* BODY[...]<o.l> and friends, see below */
};

/* One token. Arguments are a flat array in document order: a LIST or
 * SECTION is followed by its children (a section's are its header-list
 * names), and span counts the entries of its subtree including itself, so
 * the next sibling of a is a + a->span (imap_arg_next()). */
struct imap_arg {
	enum imap_arg_type type;
	const char *str;    /* a copy owned by the parser, NUL-terminated
			     * (a literal may hold NULs too: use len) */
	size_t len;
	uint64_t num;       /* IMAP_ARG_NUMBER */
	uint32_t count;     /* LIST, SECTION: direct children */
	uint32_t span;      /* entries of the subtree, itself included */
	/* IMAP_ARG_SECTION (RFC 3501 6.4.5, 9 "section"; RFC 3516 BINARY):
	 * str/len is the whole token, "BODY.PEEK[1.2.HEADER.FIELDS (A B)]<0.100>";
	 * the sec_ pointers are into it and not NUL-terminated. */
	const char *sec_name;   /* "BODY.PEEK" as sent */
	size_t sec_name_len;
	const char *sec_part;   /* "1.2", "" for none */
	size_t sec_part_len;
	const char *sec_text;   /* "HEADER.FIELDS", "TEXT", "MIME", "" */
	size_t sec_text_len;
	bool has_partial;       /* <origin> or <origin.length> */
	bool has_partial_len;
	uint32_t partial_origin;
	uint32_t partial_len;
};

static inline const struct imap_arg *imap_arg_next(const struct imap_arg *a)
{
	return a + a->span;
}

struct imap_command {
	const char *tag;        /* NUL-terminated; NULL if none could be read
				 * (answer with imap_parser_tag() then) */
	const char *name;       /* NUL-terminated, as sent (compare with
				 * imap_command_is()); after "UID" the next
				 * word, with uid set */
	bool uid;
	const struct imap_arg *args;   /* top-level and nested, in order */
	size_t nargs;                  /* top-level arguments */
	size_t ntokens;                /* entries in args */
};

/* A parser with the given limits (octets). Allocation aborts on failure;
 * the command buffer grows only with the client's input, up to
 * command_max. */
struct imap_parser *imap_parser_new(size_t literal_max, size_t command_max);
void imap_parser_free(struct imap_parser **p);
/* Forget the command being accumulated (after COMPLETE, after the session
 * dropped an overlong line, after STARTTLS). Invalidates every pointer
 * into the previous command. */
void imap_parser_reset(struct imap_parser *p);

/* One line from the client without its line end. Returns COMPLETE,
 * LITERAL (*n_r, *sync_r), SKIP (*n_r), LITERAL_TOO_BIG, TOO_LONG or
 * FATAL. Must not be called while literal bytes are expected. */
enum imap_parse_status imap_parser_line(struct imap_parser *p, const char *line, size_t len,
					uint64_t *n_r, bool *sync_r);
/* Literal bytes (at most what is still expected). Returns MORE, whether
 * the literal still wants bytes or the next line is due; the caller
 * knows from its session_expect_bytes() count which. */
enum imap_parse_status imap_parser_bytes(struct imap_parser *p, const void *data, size_t len);
/* Bytes of the current literal still expected (or still to skip). */
uint64_t imap_parser_literal_left(const struct imap_parser *p);

/* The tag of the command being accumulated or just refused, for the
 * answer: NUL-terminated, never NULL; "*" when the line had no usable tag
 * (the answer is then an untagged BAD). Valid until the next call. */
const char *imap_parser_tag(const struct imap_parser *p);

/* Tokenize the complete command (RFC 3501 9). Returns 0 and fills cmd_r
 * (valid until imap_parser_reset() or free), or -1 with *error_r a short
 * text for a BAD response; cmd_r->tag is then set if a tag was read.
 * Bounds: lists nest at most IMAP_PARSE_MAX_DEPTH deep; token strings
 * take at most three times the command's size. Calling it again on the
 * same command gives the same result. Strict about spacing: exactly one SP
 * between arguments, none at the end of the line. */
#define IMAP_PARSE_MAX_DEPTH 16
int imap_parser_command(struct imap_parser *p, struct imap_command *cmd_r, const char **error_r);

/* Whether the command name is name (ASCII, case-insensitive). */
bool imap_command_is(const struct imap_command *cmd, const char *name);

/* An astring (RFC 3501 9): atom, number, NIL as the word "NIL", quoted or
 * literal. Returns true and sets *s_r, *len_r. */
bool imap_arg_astring(const struct imap_arg *a, const char **s_r, size_t *len_r);

#endif
