#ifndef POSTBOTE_SMTP_CLIENT_REPLY_H
#define POSTBOTE_SMTP_CLIENT_REPLY_H

/*
 * SMTP replies as the client reads them (RFC 5321 4.2), parsed
 * incrementally: the parser is fed the server's bytes in whatever pieces the
 * network delivers, and yields one complete reply at a time.
 *
 * Why it consumes at most one reply per call (picohttpparser's shape): the
 * caller must be able to stop right after a reply. After "220 Ready to start
 * TLS" every byte that follows in the same read was sent in plaintext before
 * the handshake, and must be thrown away, not parsed as a reply of the TLS
 * session (the response-injection attacks on STARTTLS clients).
 *
 * Why it is strict about codes and lenient about line ends: a reply code
 * decides what happens to a message, so "250" must be three digits with a
 * first digit 2-5 and a second 0-5, and every line of a multi-line reply
 * must carry the same code (a mismatch is a protocol error, not a guess).
 * Bare LF line ends, missing text and 8-bit text are common in the wild and
 * harmless; they are accepted.
 *
 * Limits (contract 5): a line of at most SMTP_REPLY_LINE_MAX octets including
 * its line end (RFC 5321 4.5.3.1.5 says 512; real servers send longer
 * lines, so we allow eight times that), at most SMTP_REPLY_LINES_MAX lines
 * and SMTP_REPLY_TEXT_MAX octets of text per reply. The limit is checked
 * before the line end arrives. Anything past a limit, a NUL byte, or a line
 * that does not start with a valid code is an error, and the parser stays in
 * the error state until reset: the SMTP client gives up on the connection.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SMTP_REPLY_LINE_MAX 4096
#define SMTP_REPLY_LINES_MAX 256
#define SMTP_REPLY_TEXT_MAX (64 * 1024)

/* An enhanced status code (RFC 3463, announced by ENHANCEDSTATUSCODES,
 * RFC 2034): class.subject.detail. cls == 0 means none. */
struct smtp_esc {
	uint8_t cls;          /* 2, 4 or 5 */
	uint16_t subject;     /* 0-999 */
	uint16_t detail;      /* 0-999 */
};

struct smtp_reply_line {
	/* The text after "250-" or "250 ", without the line end; NUL-terminated
	 * (it holds no NUL). May be empty. */
	const char *text;
	size_t len;
	/* The enhanced status code at the start of text, if there is one and
	 * its class equals the first digit of the reply code (RFC 2034 4);
	 * text[0..esc_len) is the code and the space after it. */
	struct smtp_esc esc;
	size_t esc_len;
};

struct smtp_reply {
	unsigned code;                        /* 200-559 */
	struct smtp_esc esc;                  /* the first line's that has one, else cls 0 */
	size_t n_lines;                       /* >= 1 */
	const struct smtp_reply_line *lines;
};

enum smtp_reply_status {
	SMTP_REPLY_NEED_MORE = 0,  /* all input consumed, no complete reply yet */
	SMTP_REPLY_DONE,           /* *reply_r holds a complete reply */
	SMTP_REPLY_ERROR,          /* a protocol error; *error_r says which */
};

struct smtp_reply_parser;

/* A parser for one connection. Free with smtp_reply_parser_free(). */
struct smtp_reply_parser *smtp_reply_parser_new(void);
void smtp_reply_parser_free(struct smtp_reply_parser **p);
/* Forget everything, including a partial reply and an error (after a TLS
 * handshake the parser starts afresh). */
void smtp_reply_parser_reset(struct smtp_reply_parser *p);

/* Parse data[0..len), read only within those bounds. Consumes bytes up to
 * and including the end of at most one reply and sets *consumed_r to how
 * many. Returns:
 *   NEED_MORE  everything was consumed (*consumed_r == len) and buffered;
 *   DONE       *reply_r is a complete reply; its pointers stay valid until
 *              the next call on this parser (or reset / free). Call again
 *              with data + *consumed_r for the next reply;
 *   ERROR      *error_r (static text) names the problem; every later call
 *              returns ERROR too, until smtp_reply_parser_reset().
 * error_r may be NULL. */
enum smtp_reply_status smtp_reply_parse(struct smtp_reply_parser *p, const char *data, size_t len,
					size_t *consumed_r, struct smtp_reply *reply_r, const char **error_r);

/* True when a reply is partly read (some bytes buffered, no DONE yet). */
bool smtp_reply_parser_partial(const struct smtp_reply_parser *p);

/* Find an enhanced status code at the start of text[0..len): "C.S.D" with C
 * one of 2, 4, 5, S and D of 1-3 digits, followed by a space or the end.
 * Returns the octets it takes with its following space (0 when there is
 * none) and fills *esc_r. */
size_t smtp_esc_parse(const char *text, size_t len, struct smtp_esc *esc_r);

/* Write "C.S.D" into out (at least 12 octets) or "" when esc->cls == 0.
 * Returns out. */
char *smtp_esc_format(const struct smtp_esc *esc, char out[12]);

/* One line for logs and bounces: "550 5.1.1 text of line 1 text of line 2",
 * lines joined by a space, the enhanced code left out of every line after
 * the first that repeats it. Bytes outside printable ASCII become '?', so
 * the result can go into a header or a log. Truncated to fit out[0..size),
 * always NUL-terminated (size > 0). Returns the length written. */
size_t smtp_reply_summary(const struct smtp_reply *r, char *out, size_t size);

/* ---- EHLO (RFC 5321 4.1.1.1) ---- */

#define SMTP_EHLO_AUTH_PLAIN 0x1u
#define SMTP_EHLO_AUTH_LOGIN 0x2u
#define SMTP_EHLO_AUTH_OTHER 0x4u  /* some mechanism we do not speak */

/* What a server announced in its EHLO reply. */
struct smtp_ehlo {
	bool pipelining;          /* RFC 2920 */
	bool size;                /* RFC 1870 */
	uint64_t size_max;        /* SIZE's value; 0 = none given or no fixed limit */
	bool eightbitmime;        /* RFC 6152 */
	bool smtputf8;            /* RFC 6531 */
	bool starttls;            /* RFC 3207 */
	bool auth;                /* RFC 4954, with the mechanisms in auth_mechs */
	unsigned auth_mechs;      /* SMTP_EHLO_AUTH_* */
	bool chunking;            /* RFC 3030 */
	bool dsn;                 /* RFC 3461 */
	bool enhancedstatuscodes; /* RFC 2034 */
};

/* Read the keywords of a 250 reply to EHLO into *ehlo_r (zeroed first).
 * The first line is the server's name and greeting and is skipped; every
 * other line is "KEYWORD [params]", matched without regard to case. The old
 * form "AUTH=PLAIN LOGIN" counts as AUTH. Unknown keywords are ignored, a
 * SIZE value that is not a number counts as no limit. */
void smtp_ehlo_parse(const struct smtp_reply *r, struct smtp_ehlo *ehlo_r);

#endif
