#ifndef POSTBOTE_AUTH_SASL_H
#define POSTBOTE_AUTH_SASL_H

/*
 * SASL mechanisms as sans-I/O codecs shared by SMTP AUTH (RFC 4954), POP3
 * AUTH (RFC 5034) and IMAP AUTHENTICATE (RFC 3501 6.2.2). A protocol hands
 * over the client's response line (without CRLF, still base64) and gets back
 * the credentials or a challenge to send; it never sees a decoded secret
 * except in struct sasl_credentials, which lives in fixed buffers so that
 * one explicit_bzero wipes it.
 *
 * Conventions of the protocols that these functions follow:
 *  - a response of exactly "*" cancels the exchange (RFC 4954 4, RFC 5034 4,
 *    RFC 3501 6.2.2): SASL_ERR_CANCELLED, which protocols answer with
 *    501 / -ERR / BAD rather than as a failed login;
 *  - an initial response of "=" is an empty response (RFC 4954 4).
 *
 * Limits (SASL_ERR_TOO_LONG): an authorization or authentication identity
 * of at most SASL_ID_MAX octets, a password of at most SASL_PASS_MAX. A
 * response longer than the base64 of the largest valid message is refused
 * before it is decoded.
 */

#include <stdbool.h>
#include <stddef.h>

#define SASL_ID_MAX 255
#define SASL_PASS_MAX 1024

/* The base64 of "Username:" and "Password:", the challenges of LOGIN. */
#define SASL_LOGIN_CHALLENGE_USER "VXNlcm5hbWU6"
#define SASL_LOGIN_CHALLENGE_PASS "UGFzc3dvcmQ6"

enum sasl_error {
	SASL_OK = 0,
	SASL_ERR_BASE64,      /* not strict base64 (RFC 4648) */
	SASL_ERR_FORMAT,      /* PLAIN: not exactly two NULs; LOGIN: a NUL inside a field */
	SASL_ERR_EMPTY_USER,  /* no authentication identity */
	SASL_ERR_EMPTY_PASS,  /* no password */
	SASL_ERR_AUTHZID,     /* authzid differs from authcid: no proxy login here */
	SASL_ERR_TOO_LONG,    /* a field or the response is over its limit */
	SASL_ERR_CANCELLED,   /* the client sent "*" */
};

/* A short English description of an error, e.g. for a protocol reply. */
const char *sasl_strerror(enum sasl_error err);

/* What a mechanism yields. Strings are NUL-terminated and contain no NUL;
 * authzid is empty when the client gave none (with PLAIN it is otherwise
 * equal to user, ignoring ASCII case). Wipe with sasl_credentials_wipe(). */
struct sasl_credentials {
	char authzid[SASL_ID_MAX + 1];
	char user[SASL_ID_MAX + 1];
	char password[SASL_PASS_MAX + 1];
};

/* Zero every byte of *cred with explicit_bzero. */
void sasl_credentials_wipe(struct sasl_credentials *cred);

/* ---- PLAIN (RFC 4616) ---- */

/* Decode a PLAIN response: base64 of [authzid] NUL authcid NUL passwd.
 * response[0..len) is read only within its bounds. Returns SASL_OK with
 * *cred_r filled, or an error with *cred_r wiped. "=" is an empty message
 * and so SASL_ERR_FORMAT; "*" is SASL_ERR_CANCELLED. Checks, in order:
 * cancel, overall length, base64, the two NULs, field lengths, empty user,
 * empty password, authzid. */
enum sasl_error sasl_plain_decode(const char *response, size_t len, struct sasl_credentials *cred_r);

/* ---- LOGIN (draft-murchison-sasl-login) ---- */

enum sasl_step {
	SASL_STEP_NEED_MORE = 0,  /* send *challenge_r (base64) and feed the answer */
	SASL_STEP_DONE,           /* sasl_login_credentials() holds user and password */
	SASL_STEP_ERROR,          /* *error_r says why; the exchange is over */
};

struct sasl_login;

/* A LOGIN exchange. Free with sasl_login_free(), which wipes it. */
struct sasl_login *sasl_login_new(void);
void sasl_login_free(struct sasl_login **login);

/* Start the exchange. initial is the client's initial response (the base64
 * of the user name; "=" for an empty one) or NULL when none was given.
 * Returns NEED_MORE with the next challenge ("Username:" without an initial
 * response, "Password:" with one) or ERROR. Call once. */
enum sasl_step sasl_login_begin(struct sasl_login *login, const char *initial, size_t len,
				const char **challenge_r, enum sasl_error *error_r);

/* Feed the client's answer to the last challenge (a line without CRLF, read
 * only within [line, line + len)). Returns NEED_MORE with the next
 * challenge, DONE once the password arrived, or ERROR. After DONE or ERROR
 * further calls return ERROR (SASL_ERR_FORMAT). *challenge_r points to a
 * static string. */
enum sasl_step sasl_login_feed(struct sasl_login *login, const char *line, size_t len,
			       const char **challenge_r, enum sasl_error *error_r);

/* The credentials after DONE (authzid is empty); valid until the exchange
 * is freed. NULL before DONE. */
const struct sasl_credentials *sasl_login_credentials(const struct sasl_login *login);

#endif
