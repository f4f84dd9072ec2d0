/*
 * SASL PLAIN and LOGIN, no I/O. Decoded bytes only ever land in a fixed
 * buffer on the stack or in struct sasl_credentials, and every path out
 * wipes the scratch buffer, so a password leaves no copy behind.
 */
#include "auth/sasl.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/base64.h"
#include "core/xalloc.h"

/* The largest PLAIN message: authzid NUL authcid NUL passwd. */
#define SASL_PLAIN_MAX (SASL_ID_MAX + 1 + SASL_ID_MAX + 1 + SASL_PASS_MAX)

const char *sasl_strerror(enum sasl_error err)
{
	switch (err) {
	case SASL_OK: return "ok";
	case SASL_ERR_BASE64: return "invalid base64";
	case SASL_ERR_FORMAT: return "malformed response";
	case SASL_ERR_EMPTY_USER: return "empty user name";
	case SASL_ERR_EMPTY_PASS: return "empty password";
	case SASL_ERR_AUTHZID: return "authorization identity not allowed";
	case SASL_ERR_TOO_LONG: return "response too long";
	case SASL_ERR_CANCELLED: return "authentication cancelled";
	}
	return "unknown error";
}

void sasl_credentials_wipe(struct sasl_credentials *cred)
{
	explicit_bzero(cred, sizeof(*cred));
}

static bool sasl_is_cancel(const char *s, size_t len)
{
	return len == 1 && s[0] == '*';
}

/* Decode a response into buf, which holds limit + 2 bytes (a valid
 * encoding may decode to up to two bytes less than its length suggests).
 * "=" is the empty response. */
static enum sasl_error sasl_decode(const char *s, size_t len, uint8_t *buf, size_t limit, size_t *n_r)
{
	if (len == 1 && s[0] == '=') {
		*n_r = 0;
		return SASL_OK;
	}
	if (base64_decoded_max(len) > limit + 2)
		return SASL_ERR_TOO_LONG;
	if (base64_decode(s, len, buf, limit + 2, n_r) < 0)
		return SASL_ERR_BASE64;
	if (*n_r > limit)
		return SASL_ERR_TOO_LONG;
	return SASL_OK;
}

static bool sasl_ascii_caseeq(const char *a, const char *b)
{
	for (;; a++, b++) {
		unsigned char ca = (unsigned char)*a, cb = (unsigned char)*b;
		if (ca >= 'A' && ca <= 'Z')
			ca = (unsigned char)(ca - 'A' + 'a');
		if (cb >= 'A' && cb <= 'Z')
			cb = (unsigned char)(cb - 'A' + 'a');
		if (ca != cb)
			return false;
		if (ca == '\0')
			return true;
	}
}

enum sasl_error sasl_plain_decode(const char *response, size_t len, struct sasl_credentials *cred_r)
{
	uint8_t buf[SASL_PLAIN_MAX + 2];
	size_t n = 0;
	enum sasl_error err;

	sasl_credentials_wipe(cred_r);
	if (sasl_is_cancel(response, len))
		return SASL_ERR_CANCELLED;
	err = sasl_decode(response, len, buf, SASL_PLAIN_MAX, &n);
	if (err != SASL_OK)
		goto out;

	/* RFC 4616 2: message = [authzid] UTF8NUL authcid UTF8NUL passwd */
	const uint8_t *nul1 = memchr(buf, '\0', n);
	const uint8_t *nul2 = nul1 ? memchr(nul1 + 1, '\0', n - (size_t)(nul1 + 1 - buf)) : NULL;
	if (nul2 == NULL || memchr(nul2 + 1, '\0', n - (size_t)(nul2 + 1 - buf)) != NULL) {
		err = SASL_ERR_FORMAT;
		goto out;
	}
	size_t zlen = (size_t)(nul1 - buf);
	size_t ulen = (size_t)(nul2 - nul1 - 1);
	size_t plen = n - (size_t)(nul2 + 1 - buf);
	if (zlen > SASL_ID_MAX || ulen > SASL_ID_MAX || plen > SASL_PASS_MAX) {
		err = SASL_ERR_TOO_LONG;
		goto out;
	}
	if (ulen == 0) {
		err = SASL_ERR_EMPTY_USER;
		goto out;
	}
	if (plen == 0) {
		err = SASL_ERR_EMPTY_PASS;
		goto out;
	}
	memcpy(cred_r->authzid, buf, zlen);
	memcpy(cred_r->user, nul1 + 1, ulen);
	memcpy(cred_r->password, nul2 + 1, plen);
	/* RFC 4616 2: a server that does not allow the authcid to act as the
	 * authzid must fail the exchange. We allow only acting as oneself. */
	if (zlen > 0 && !sasl_ascii_caseeq(cred_r->authzid, cred_r->user))
		err = SASL_ERR_AUTHZID;
out:
	explicit_bzero(buf, sizeof(buf));
	if (err != SASL_OK)
		sasl_credentials_wipe(cred_r);
	return err;
}

/* ---- LOGIN ---- */

enum sasl_login_state {
	SASL_LOGIN_START = 0,
	SASL_LOGIN_WANT_USER,
	SASL_LOGIN_WANT_PASS,
	SASL_LOGIN_DONE,
	SASL_LOGIN_FAILED,
};

struct sasl_login {
	enum sasl_login_state state;
	struct sasl_credentials cred;
};

struct sasl_login *sasl_login_new(void)
{
	return xcalloc(1, sizeof(struct sasl_login));
}

void sasl_login_free(struct sasl_login **loginp)
{
	struct sasl_login *login = *loginp;

	if (login == NULL)
		return;
	*loginp = NULL;
	explicit_bzero(login, sizeof(*login));
	free(login);
}

/* Decode one LOGIN field (user or password) into dst (max octets + NUL). */
static enum sasl_error sasl_login_field(const char *s, size_t len, char *dst, size_t max,
					enum sasl_error empty_err)
{
	uint8_t buf[SASL_PASS_MAX + 2];
	size_t n = 0;
	enum sasl_error err = sasl_decode(s, len, buf, max, &n);

	if (err == SASL_OK) {
		if (n == 0)
			err = empty_err;
		else if (memchr(buf, '\0', n) != NULL)
			err = SASL_ERR_FORMAT;
		else {
			memcpy(dst, buf, n);
			dst[n] = '\0';
		}
	}
	explicit_bzero(buf, sizeof(buf));
	return err;
}

static enum sasl_step sasl_login_fail(struct sasl_login *login, enum sasl_error err,
				      enum sasl_error *error_r)
{
	login->state = SASL_LOGIN_FAILED;
	sasl_credentials_wipe(&login->cred);
	*error_r = err;
	return SASL_STEP_ERROR;
}

static enum sasl_step sasl_login_user(struct sasl_login *login, const char *s, size_t len,
				      const char **challenge_r, enum sasl_error *error_r)
{
	if (sasl_is_cancel(s, len))
		return sasl_login_fail(login, SASL_ERR_CANCELLED, error_r);
	enum sasl_error err = sasl_login_field(s, len, login->cred.user, SASL_ID_MAX, SASL_ERR_EMPTY_USER);
	if (err != SASL_OK)
		return sasl_login_fail(login, err, error_r);
	login->state = SASL_LOGIN_WANT_PASS;
	*challenge_r = SASL_LOGIN_CHALLENGE_PASS;
	*error_r = SASL_OK;
	return SASL_STEP_NEED_MORE;
}

enum sasl_step sasl_login_begin(struct sasl_login *login, const char *initial, size_t len,
				const char **challenge_r, enum sasl_error *error_r)
{
	*challenge_r = NULL;
	if (login->state != SASL_LOGIN_START)
		return sasl_login_fail(login, SASL_ERR_FORMAT, error_r);
	if (initial != NULL)
		return sasl_login_user(login, initial, len, challenge_r, error_r);
	login->state = SASL_LOGIN_WANT_USER;
	*challenge_r = SASL_LOGIN_CHALLENGE_USER;
	*error_r = SASL_OK;
	return SASL_STEP_NEED_MORE;
}

enum sasl_step sasl_login_feed(struct sasl_login *login, const char *line, size_t len,
			       const char **challenge_r, enum sasl_error *error_r)
{
	enum sasl_error err;

	*challenge_r = NULL;
	switch (login->state) {
	case SASL_LOGIN_WANT_USER:
		return sasl_login_user(login, line, len, challenge_r, error_r);
	case SASL_LOGIN_WANT_PASS:
		if (sasl_is_cancel(line, len))
			return sasl_login_fail(login, SASL_ERR_CANCELLED, error_r);
		err = sasl_login_field(line, len, login->cred.password, SASL_PASS_MAX, SASL_ERR_EMPTY_PASS);
		if (err != SASL_OK)
			return sasl_login_fail(login, err, error_r);
		login->state = SASL_LOGIN_DONE;
		*error_r = SASL_OK;
		return SASL_STEP_DONE;
	case SASL_LOGIN_START:
	case SASL_LOGIN_DONE:
	case SASL_LOGIN_FAILED:
		break;
	}
	return sasl_login_fail(login, SASL_ERR_FORMAT, error_r);
}

const struct sasl_credentials *sasl_login_credentials(const struct sasl_login *login)
{
	return login->state == SASL_LOGIN_DONE ? &login->cred : NULL;
}
