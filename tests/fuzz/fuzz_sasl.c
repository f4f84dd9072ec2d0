/* Fuzz target for auth/sasl and auth/base64.
 *
 * Input: one selector byte, then the client's response(s).
 *   byte 0 even  PLAIN: the rest is one response for sasl_plain_decode()
 *   byte 0 odd   LOGIN: the rest is lines split at '\n'; with bit 1 of
 *                byte 0 set the first line is the initial response
 * Every input is also fed to base64_decode() as a whole.
 *
 * Each piece is copied to a buffer of its exact length, so an over-read is
 * caught by AddressSanitizer. Checks: a PLAIN success has a non-empty user
 * of at most 255 octets, a non-empty password of at most 1024, no NUL
 * inside, an authzid that is empty or the user, and re-encodes to the very
 * input (strict base64 has one encoding); a failure leaves the credentials
 * zeroed. base64 decoding succeeds only on canonical input, which
 * round-trips. LOGIN only ever asks for "Username:" then "Password:",
 * finishes with non-empty fields within the limits, and refuses anything
 * after DONE or ERROR. */

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/base64.h"
#include "auth/sasl.h"

#define CHECK(cond) do { if (!(cond)) { \
	fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
	abort(); } } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool all_zero(const void *p, size_t len)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < len; i++) {
		if (b[i] != 0)
			return false;
	}
	return true;
}

static void check_base64(const char *in, size_t len)
{
	uint8_t *out = malloc(len + 1);
	size_t n = 0;

	if (base64_decode(in, len, out, len, &n) == 0) {
		CHECK(n <= base64_decoded_max(len));
		CHECK(base64_encoded_len(n) == len);
		char *enc = malloc(len + 1);
		CHECK(base64_encode(out, n, enc) == len);
		CHECK(memcmp(enc, in, len) == 0);
		free(enc);
	}
	free(out);
}

static void check_plain(const char *in, size_t len)
{
	struct sasl_credentials c;
	enum sasl_error e = sasl_plain_decode(in, len, &c);

	if (e != SASL_OK) {
		CHECK(e > SASL_OK && e <= SASL_ERR_CANCELLED);
		CHECK(all_zero(&c, sizeof(c)));
		return;
	}
	size_t zl = strnlen(c.authzid, sizeof(c.authzid));
	size_t ul = strnlen(c.user, sizeof(c.user));
	size_t pl = strnlen(c.password, sizeof(c.password));
	CHECK(zl <= SASL_ID_MAX && ul >= 1 && ul <= SASL_ID_MAX && pl >= 1 && pl <= SASL_PASS_MAX);
	CHECK(zl == 0 || strcasecmp(c.authzid, c.user) == 0);
	/* Re-encode the message: strict base64 means the same text. */
	size_t mlen = zl + 1 + ul + 1 + pl;
	char *msg = malloc(mlen);
	memcpy(msg, c.authzid, zl);
	msg[zl] = '\0';
	memcpy(msg + zl + 1, c.user, ul);
	msg[zl + 1 + ul] = '\0';
	memcpy(msg + zl + 1 + ul + 1, c.password, pl);
	char *enc = malloc(base64_encoded_len(mlen) + 1);
	size_t elen = base64_encode(msg, mlen, enc);
	CHECK(elen == len && memcmp(enc, in, len) == 0);
	free(enc);
	free(msg);
	sasl_credentials_wipe(&c);
}

/* Feed one piece, copied to an exact-size buffer. */
static enum sasl_step login_piece(struct sasl_login *l, bool begin, const uint8_t *p, size_t len, bool none,
				  const char **ch, enum sasl_error *e)
{
	char *buf = malloc(len ? len : 1);
	memcpy(buf, p, len);
	enum sasl_step s = begin ? sasl_login_begin(l, none ? NULL : buf, len, ch, e)
				 : sasl_login_feed(l, buf, len, ch, e);
	free(buf);
	return s;
}

static void check_login(const uint8_t *p, size_t len, bool initial)
{
	struct sasl_login *l = sasl_login_new();
	const char *ch = NULL;
	enum sasl_error e = SASL_OK;
	size_t pos = 0;
	int asked_user = 0, asked_pass = 0;

	/* The first line is the initial response, or there is none. */
	const uint8_t *nl = memchr(p, '\n', len);
	size_t first = nl ? (size_t)(nl - p) : len;
	enum sasl_step s;
	if (initial) {
		s = login_piece(l, true, p, first, false, &ch, &e);
		pos = nl ? first + 1 : len;
	} else {
		s = login_piece(l, true, p, 0, true, &ch, &e);
		CHECK(s == SASL_STEP_NEED_MORE && strcmp(ch, SASL_LOGIN_CHALLENGE_USER) == 0);
	}
	while (s == SASL_STEP_NEED_MORE) {
		CHECK(ch != NULL && e == SASL_OK);
		if (strcmp(ch, SASL_LOGIN_CHALLENGE_USER) == 0) {
			CHECK(asked_user == 0 && asked_pass == 0);
			asked_user++;
		} else {
			CHECK(strcmp(ch, SASL_LOGIN_CHALLENGE_PASS) == 0 && asked_pass == 0);
			asked_pass++;
		}
		CHECK(sasl_login_credentials(l) == NULL);
		if (pos > len)
			break;
		nl = memchr(p + pos, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - (p + pos)) : len - pos;
		s = login_piece(l, false, p + pos, n, false, &ch, &e);
		pos += n + 1;
	}
	if (s == SASL_STEP_DONE) {
		const struct sasl_credentials *c = sasl_login_credentials(l);
		CHECK(c != NULL && asked_pass == 1 && e == SASL_OK);
		size_t ul = strnlen(c->user, sizeof(c->user));
		size_t pl = strnlen(c->password, sizeof(c->password));
		CHECK(c->authzid[0] == '\0');
		CHECK(ul >= 1 && ul <= SASL_ID_MAX && pl >= 1 && pl <= SASL_PASS_MAX);
	} else if (s == SASL_STEP_ERROR) {
		CHECK(e > SASL_OK && e <= SASL_ERR_CANCELLED);
		CHECK(sasl_login_credentials(l) == NULL);
	}
	if (s != SASL_STEP_NEED_MORE) {
		/* Nothing more is accepted. */
		s = login_piece(l, false, (const uint8_t *)"YQ==", 4, false, &ch, &e);
		CHECK(s == SASL_STEP_ERROR && e == SASL_ERR_FORMAT && sasl_login_credentials(l) == NULL);
	}
	sasl_login_free(&l);
	CHECK(l == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	uint8_t sel = data[0];
	const uint8_t *p = data + 1;
	size_t len = size - 1;

	char *copy = malloc(len ? len : 1);
	memcpy(copy, p, len);
	check_base64(copy, len);
	if ((sel & 1) == 0)
		check_plain(copy, len);
	free(copy);
	if (sel & 1)
		check_login(p, len, (sel & 2) != 0);
	return 0;
}
