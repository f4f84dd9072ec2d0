/*
 * IMAP logins: LOGIN (RFC 3501 6.2.3) and AUTHENTICATE (6.2.2) with the
 * PLAIN and LOGIN mechanisms and their initial responses (SASL-IR, RFC
 * 4959). The SASL codecs are auth/sasl.c's, shared with SMTP and POP3.
 *
 * A password check runs off the loop: the command returns
 * SESSION_EFFECT_WAIT and imap_auth_done() answers through imap_done().
 * Decoded secrets live only in a struct sasl_credentials on the stack (or
 * in the parser's copy of the command, which the next command overwrites)
 * and are wiped as soon as the check has its own copy.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/sasl.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "imap/imap_private.h"

/* Where AUTHENTICATE waits for a client line (im->sasl_step). */
enum {
	IMAP_SASL_PLAIN = 1,        /* the PLAIN response */
	IMAP_SASL_LOGIN_USER,       /* LOGIN: the user name */
	IMAP_SASL_LOGIN_PASS,       /* LOGIN: the password; sasl_user holds the name's base64 */
};

/* A response may be as long as the base64 of the longest valid PLAIN
 * message, whatever imap_line_max says. */
#define IMAP_SASL_LINE_MAX (((SASL_ID_MAX * 2 + SASL_PASS_MAX + 2 + 2) / 3) * 4 + 2)

static bool imap_auth_allowed(const struct imap *im)
{
	/* Contract 7, as imap_capabilities() announces it. */
	return session_tls_active(im->s) ||
	       (session_config(im->s)->allow_plaintext_auth_loopback && session_peer_loopback(im->s));
}

static enum session_effect imap_privacy_required(struct imap *im)
{
	return imap_no(im, "[PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure connections, "
			   "use STARTTLS");
}

static void imap_auth_done(void *arg, enum auth_result result, const char *account)
{
	struct imap *im = arg;
	enum imap_status st = IMAP_TEMPFAIL;

	im->auth_handle = NULL;
	switch (result) {
	case AUTH_OK:
		im->acct = im->be->account_open(im->be->ctx, account, &st);
		if (im->acct == NULL) {
			log_info("imap %llu: %s: login refused (%s)", (unsigned long long)session_id(im->s), account,
				 st == IMAP_LIMIT ? "too many sessions" : "account unavailable");
			imap_no(im, "%s", imap_status_text(st == IMAP_LIMIT ? IMAP_LIMIT : IMAP_TEMPFAIL));
			break;
		}
		im->account = xstrdup(account);
		im->state = IMAP_STATE_AUTH;
		log_info("imap %llu: login account=%s", (unsigned long long)session_id(im->s), account);
		/* RFC 3501 6.2.3 allows, and clients use, the capabilities
		 * as they are now in the tagged OK. */
		struct buf caps;
		buf_init(&caps, 1024);
		imap_capabilities(im, &caps);
		imap_ok(im, "[CAPABILITY %.*s] Logged in", (int)buf_len(&caps), buf_ptr(&caps));
		buf_free(&caps);
		break;
	case AUTH_TEMPFAIL:
		imap_no(im, "[UNAVAILABLE] Temporary authentication failure, try again later");
		break;
	case AUTH_FAIL:
	case AUTH_LOCKED:
	default:
		/* A locked account looks like a wrong password: no hint
		 * for whoever is guessing. */
		imap_no(im, "[AUTHENTICATIONFAILED] Authentication failed");
		break;
	}
	imap_done(im, SESSION_EFFECT_NONE);
}

/* Start the password check; the session waits for imap_auth_done. */
static enum session_effect imap_login_start(struct imap *im, const char *user, const char *password)
{
	if (im->be == NULL)
		return imap_no(im, "[UNAVAILABLE] Mailbox access is not available on this server");
	im->auth_handle = im->be->auth_start(im->be->ctx, user, password, session_peer(im->s), imap_auth_done, im);
	if (im->auth_handle == NULL)
		return imap_no(im, "[AUTHENTICATIONFAILED] Authentication failed");
	return SESSION_EFFECT_WAIT;
}

enum session_effect imap_cmd_login(struct imap *im)
{
	const struct imap_arg *a = im->cmd.args;
	const char *user, *password;
	size_t ulen, plen;

	if (im->cmd.nargs != 2 || !imap_arg_astring(&a[0], &user, &ulen) ||
	    !imap_arg_astring(imap_arg_next(&a[0]), &password, &plen))
		return imap_bad(im, "Syntax: LOGIN user password");
	if (!imap_auth_allowed(im))
		return imap_privacy_required(im);
	/* A NUL inside a literal would cut the name short: refuse rather
	 * than check a different name. */
	if (strlen(user) != ulen || strlen(password) != plen)
		return imap_no(im, "[AUTHENTICATIONFAILED] Authentication failed");
	enum session_effect e = imap_login_start(im, user, password);
	/* The backend has its copy; the parser's stays until the next
	 * command otherwise. */
	explicit_bzero((char *)password, plen);
	return e;
}

static void imap_sasl_end(struct imap *im)
{
	im->sasl_step = 0;
	if (im->sasl_user != NULL) {
		explicit_bzero(im->sasl_user, strlen(im->sasl_user));
		free(im->sasl_user);
		im->sasl_user = NULL;
	}
	session_set_line_max(im->s, session_config(im->s)->imap_line_max);
}

static enum session_effect imap_sasl_error(struct imap *im, enum sasl_error err)
{
	imap_sasl_end(im);
	/* RFC 3501 6.2.2: a cancelled or malformed exchange is BAD, wrong
	 * credentials are NO. */
	if (err == SASL_ERR_CANCELLED)
		return imap_bad(im, "Authentication cancelled");
	if (err == SASL_ERR_BASE64)
		return imap_bad(im, "Invalid base64 data");
	return imap_no(im, "[AUTHENTICATIONFAILED] Authentication failed: %s", sasl_strerror(err));
}

static enum session_effect imap_sasl_login(struct imap *im, struct sasl_credentials *cred)
{
	imap_sasl_end(im);
	enum session_effect e = imap_login_start(im, cred->user, cred->password);
	sasl_credentials_wipe(cred);
	return e;
}

static void imap_sasl_challenge(struct imap *im, int step, const char *challenge)
{
	size_t max = session_config(im->s)->imap_line_max;

	im->sasl_step = step;
	session_set_line_max(im->s, max > IMAP_SASL_LINE_MAX ? max : IMAP_SASL_LINE_MAX);
	/* RFC 3501 7.5: "+" SP base64; an empty challenge keeps the space. */
	session_reply(im->s, "+ %s\r\n", challenge);
}

/* The name's base64 is valid: ask for the password. */
static enum session_effect imap_sasl_login_user(struct imap *im, const char *b64, size_t len)
{
	struct sasl_login *login = sasl_login_new();
	const char *challenge;
	enum sasl_error err = SASL_OK;
	enum sasl_step step = sasl_login_begin(login, b64, len, &challenge, &err);

	sasl_login_free(&login);
	if (step != SASL_STEP_NEED_MORE)
		return imap_sasl_error(im, err);
	free(im->sasl_user);
	im->sasl_user = xstrndup(b64, len);
	imap_sasl_challenge(im, IMAP_SASL_LOGIN_PASS, challenge);
	return SESSION_EFFECT_NONE;
}

enum session_effect imap_cmd_authenticate(struct imap *im)
{
	const struct imap_arg *a = im->cmd.args;
	const char *initial = NULL;
	size_t ilen = 0;

	if (im->cmd.nargs < 1 || im->cmd.nargs > 2 || a[0].type != IMAP_ARG_ATOM)
		return imap_bad(im, "Syntax: AUTHENTICATE mechanism [initial-response]");
	if (im->cmd.nargs == 2) {
		const struct imap_arg *ir = imap_arg_next(&a[0]);
		/* RFC 4959: base64 or "="; base64 is made of atom characters. */
		if (ir->type != IMAP_ARG_ATOM && ir->type != IMAP_ARG_NUMBER)
			return imap_bad(im, "Syntax: AUTHENTICATE mechanism [initial-response]");
		initial = ir->str;
		ilen = ir->len;
	}
	if (!imap_auth_allowed(im))
		return imap_privacy_required(im);

	if (strcasecmp(a[0].str, "PLAIN") == 0) {
		if (initial == NULL) {
			imap_sasl_challenge(im, IMAP_SASL_PLAIN, "");
			return SESSION_EFFECT_NONE;
		}
		struct sasl_credentials cred;
		enum sasl_error err = sasl_plain_decode(initial, ilen, &cred);
		explicit_bzero((char *)initial, ilen);
		if (err != SASL_OK)
			return imap_sasl_error(im, err);
		return imap_sasl_login(im, &cred);
	}
	if (strcasecmp(a[0].str, "LOGIN") == 0) {
		if (initial == NULL) {
			imap_sasl_challenge(im, IMAP_SASL_LOGIN_USER, SASL_LOGIN_CHALLENGE_USER);
			return SESSION_EFFECT_NONE;
		}
		return imap_sasl_login_user(im, initial, ilen);
	}
	return imap_no(im, "[CANNOT] Unsupported authentication mechanism");
}

enum session_effect imap_auth_line(struct imap *im, const char *line, size_t len)
{
	if (line == NULL) {
		/* The session dropped an overlong response. */
		imap_sasl_end(im);
		return imap_bad(im, "Authentication response too long");
	}
	if (im->sasl_step == IMAP_SASL_PLAIN) {
		struct sasl_credentials cred;
		enum sasl_error err = sasl_plain_decode(line, len, &cred);
		if (err != SASL_OK)
			return imap_sasl_error(im, err);
		return imap_sasl_login(im, &cred);
	}
	if (im->sasl_step == IMAP_SASL_LOGIN_USER)
		return imap_sasl_login_user(im, line, len);

	/* The password: replay the name into a fresh exchange, then feed it.
	 * Only the name's base64 is kept between lines. */
	struct sasl_login *login = sasl_login_new();
	const char *challenge;
	enum sasl_error err = SASL_OK;
	enum sasl_step step = SASL_STEP_ERROR;
	if (im->sasl_user != NULL &&
	    sasl_login_begin(login, im->sasl_user, strlen(im->sasl_user), &challenge, &err) == SASL_STEP_NEED_MORE)
		step = sasl_login_feed(login, line, len, &challenge, &err);
	if (step != SASL_STEP_DONE) {
		sasl_login_free(&login);
		return imap_sasl_error(im, step == SASL_STEP_NEED_MORE ? SASL_ERR_FORMAT : err);
	}
	struct sasl_credentials cred = *sasl_login_credentials(login);
	sasl_login_free(&login);
	return imap_sasl_login(im, &cred);
}
