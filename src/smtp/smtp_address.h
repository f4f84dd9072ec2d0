#ifndef POSTBOTE_SMTP_SMTP_ADDRESS_H
#define POSTBOTE_SMTP_SMTP_ADDRESS_H

/*
 * The arguments of MAIL FROM and RCPT TO (RFC 5321 4.1.2, 4.1.1.2-3): a
 * path in angle brackets, then ESMTP parameters.
 *
 * Parsing is strict by the grammar, because the open-relay tricks live in
 * its corners: a source route ("@a,@b:user@c", whose route RFC 5321 C says
 * to ignore), a quoted local part holding '@', an address literal, a domain
 * with a trailing dot. The result says which corners were used, and the
 * session decides. Lenient mode (submission only) accepts what real mail
 * clients send: a space after the colon, a path without angle brackets.
 */

#include <stdbool.h>
#include <stddef.h>

/* RFC 5321 4.5.3.1: local part 64, domain 255, path 256 with brackets. */
#define SMTP_LOCAL_MAX 64
#define SMTP_DOMAIN_MAX 255
#define SMTP_PATH_MAX 256

struct smtp_path {
	bool null;                     /* "<>" */
	char address[SMTP_PATH_MAX + 1];  /* local@domain, the domain lowercased */
	size_t local_len;              /* address[0..local_len) is the local part */
	bool quoted;                   /* the local part needs its quotes */
	bool routing_chars;            /* '%', '!' or '@' in the local part */
	bool address_literal;          /* user@[192.0.2.1] */
	bool utf8;                     /* bytes >= 0x80 anywhere */
	bool postmaster;               /* RCPT TO:<Postmaster> without a domain */
};

/* Parse "FROM:<path> params" (keyword "FROM:") or "TO:<path> params"
 * (keyword "TO:"). Returns 0 with *path_r filled and *params_r pointing at
 * the parameters (after spaces; "" when none), or -1 with a reply text
 * (without the code) in *error_r. allow_null: "<>" is allowed (MAIL).
 * smtputf8: UTF-8 may appear (RFC 6531). */
int smtp_parse_path(const char *args, const char *keyword, bool lenient, bool allow_null, bool smtputf8,
		    struct smtp_path *path_r, const char **params_r, const char **error_r);

/* Check an xtext (RFC 3461 4) and decode it into out (size bytes, NUL
 * terminated). Returns 0, or -1 when malformed or too long. */
int smtp_xtext_decode(const char *in, size_t len, char *out, size_t size);

/* Take the next "KEY[=VALUE]" of a parameter list: returns false at the
 * end, otherwise true with the pieces and *rest moved past them. */
bool smtp_param_next(const char **rest, const char **key_r, size_t *key_len_r, const char **value_r,
		     size_t *value_len_r);

#endif
