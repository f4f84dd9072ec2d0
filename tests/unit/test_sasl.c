#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/base64.h"
#include "auth/sasl.h"
#include "testutil.h"

/* ---- helpers: every input goes through a guard page ---- */

static int b64_decode_guarded(const char *in, size_t len, void *out, size_t out_max, size_t *n_r)
{
	char *g = guard_copy(in, len);
	int rc = base64_decode(g, len, out, out_max, n_r);
	guard_free(g, len);
	return rc;
}

/* The base64 of len bytes of data, in a static buffer. */
static const char *b64(const void *data, size_t len)
{
	static char out[8192];
	ck_assert_uint_le(base64_encoded_len(len) + 1, sizeof(out));
	base64_encode(data, len, out);
	return out;
}

static enum sasl_error plain_raw(const char *response, struct sasl_credentials *c)
{
	size_t len = strlen(response);
	char *g = guard_copy(response, len);
	enum sasl_error e = sasl_plain_decode(g, len, c);
	guard_free(g, len);
	return e;
}

/* PLAIN of a message of len bytes (which may hold NULs). */
static enum sasl_error plain(const void *msg, size_t len, struct sasl_credentials *c)
{
	return plain_raw(b64(msg, len), c);
}

static bool all_zero(const void *p, size_t len)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < len; i++) {
		if (b[i] != 0)
			return false;
	}
	return true;
}

static enum sasl_step login_begin(struct sasl_login *l, const char *initial, const char **ch, enum sasl_error *e)
{
	if (initial == NULL)
		return sasl_login_begin(l, NULL, 0, ch, e);
	size_t len = strlen(initial);
	char *g = guard_copy(initial, len);
	enum sasl_step s = sasl_login_begin(l, g, len, ch, e);
	guard_free(g, len);
	return s;
}

static enum sasl_step login_feed(struct sasl_login *l, const char *line, const char **ch, enum sasl_error *e)
{
	size_t len = strlen(line);
	char *g = guard_copy(line, len);
	enum sasl_step s = sasl_login_feed(l, g, len, ch, e);
	guard_free(g, len);
	return s;
}

/* ---- base64 ---- */

START_TEST(base64_rfc4648_vectors)
{
	static const char *const plain_text[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
	static const char *const enc[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };
	char out[16];
	size_t n;

	for (size_t i = 0; i < 7; i++) {
		size_t len = strlen(plain_text[i]);
		ck_assert_uint_eq(base64_encode(plain_text[i], len, out), strlen(enc[i]));
		ck_assert_str_eq(out, enc[i]);
		ck_assert_uint_eq(base64_encoded_len(len), strlen(enc[i]));
		memset(out, 0, sizeof(out));
		ck_assert_int_eq(b64_decode_guarded(enc[i], strlen(enc[i]), out, sizeof(out), &n), 0);
		ck_assert_uint_eq(n, len);
		ck_assert(memcmp(out, plain_text[i], len) == 0);
	}
}
END_TEST

START_TEST(base64_round_trip_lengths)
{
	unsigned char data[64], back[64];
	char enc[100];
	size_t len = (size_t)_i, n = 999;

	/* Every byte value turns up across the lengths. */
	for (size_t i = 0; i < len; i++)
		data[i] = (unsigned char)(i * 37 + len * 11 + (i & 1 ? 0x80 : 0));
	size_t elen = base64_encode(data, len, enc);
	ck_assert_uint_eq(elen, base64_encoded_len(len));
	ck_assert_uint_eq(elen % 4, 0);
	ck_assert_uint_eq(strlen(enc), elen);
	ck_assert_int_eq(b64_decode_guarded(enc, elen, back, sizeof(back), &n), 0);
	ck_assert_uint_eq(n, len);
	ck_assert(memcmp(back, data, len) == 0);
	ck_assert_uint_ge(base64_decoded_max(elen), len);
	/* Exactly enough room works, one byte less does not. */
	ck_assert_int_eq(b64_decode_guarded(enc, elen, back, len, &n), 0);
	if (len > 0)
		ck_assert_int_eq(b64_decode_guarded(enc, elen, back, len - 1, &n), -1);
}
END_TEST

START_TEST(base64_all_bytes)
{
	unsigned char data[256], back[256];
	char enc[400];
	size_t n;

	for (int i = 0; i < 256; i++)
		data[i] = (unsigned char)i;
	size_t elen = base64_encode(data, sizeof(data), enc);
	ck_assert_int_eq(b64_decode_guarded(enc, elen, back, sizeof(back), &n), 0);
	ck_assert_uint_eq(n, 256);
	ck_assert(memcmp(back, data, 256) == 0);
}
END_TEST

START_TEST(base64_strict_rejects)
{
	static const char *const bad[] = {
		"Zg=",          /* not a multiple of four */
		"Zg",
		"Z",
		"Zm9v!",
		"Zm9vYmF!",
		"Zm9v YmFy",    /* whitespace */
		"Zm9vYmFy\r\n",
		"Zg==Zg==",     /* padding in the middle */
		"Zg=a",         /* data after '=' */
		"Z===",         /* three '=' */
		"====",
		"=Zg=",
		"Zh==",         /* non-zero bits under the padding (RFC 4648 3.5) */
		"Zm9=",
		"Zm-v",         /* base64url alphabet */
		"Zm_v",
		"Zm9v\xc3\xa4=",
	};
	unsigned char out[64];
	size_t n;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(b64_decode_guarded(bad[i], strlen(bad[i]), out, sizeof(out), &n) == -1,
			      "accepted \"%s\"", bad[i]);
	/* A NUL inside is just a bad character. */
	ck_assert_int_eq(b64_decode_guarded("Zm\0v", 4, out, sizeof(out), &n), -1);
}
END_TEST

/* ---- PLAIN ---- */

START_TEST(plain_valid)
{
	struct sasl_credentials c;

	ck_assert_int_eq(plain("\0alice@example.test\0s3cret pw", 29, &c), SASL_OK);
	ck_assert_str_eq(c.authzid, "");
	ck_assert_str_eq(c.user, "alice@example.test");
	ck_assert_str_eq(c.password, "s3cret pw");
	sasl_credentials_wipe(&c);
	ck_assert(all_zero(&c, sizeof(c)));

	/* authzid equal to authcid is acting as oneself: fine. */
	ck_assert_int_eq(plain("bob\0bob\0pw", 10, &c), SASL_OK);
	ck_assert_str_eq(c.authzid, "bob");
	ck_assert_str_eq(c.user, "bob");
	ck_assert_str_eq(c.password, "pw");
	/* ... also in another case. */
	ck_assert_int_eq(plain("Bob@Example.TEST\0bob@example.test\0pw", 36, &c), SASL_OK);
	ck_assert_str_eq(c.user, "bob@example.test");

	/* RFC 4616 4 example (without the authzid, which is refused here). */
	ck_assert_int_eq(plain_raw("AHRpbQB0YW5zdGFhZnRhbnN0YWFm", &c), SASL_OK);
	ck_assert_str_eq(c.user, "tim");
	ck_assert_str_eq(c.password, "tanstaaftanstaaf");
	/* UTF-8 passwords pass through. */
	ck_assert_int_eq(plain("\0u\0p\xc3\xa4ss", 8, &c), SASL_OK);
	ck_assert_str_eq(c.password, "p\xc3\xa4ss");
	sasl_credentials_wipe(&c);
}
END_TEST

START_TEST(plain_errors)
{
	struct sasl_credentials c;

	/* RFC 4616 4: "Ursel" acting as "Kurt": proxy login is refused. */
	ck_assert_int_eq(plain_raw("S3VydAB1c2VyAHBhc3M=", &c), SASL_ERR_AUTHZID);
	ck_assert(all_zero(&c, sizeof(c)));
	ck_assert_int_eq(plain("admin\0bob\0pw", 12, &c), SASL_ERR_AUTHZID);

	ck_assert_int_eq(plain_raw("*", &c), SASL_ERR_CANCELLED);
	ck_assert_int_eq(plain_raw("=", &c), SASL_ERR_FORMAT);   /* empty response */
	ck_assert_int_eq(plain_raw("", &c), SASL_ERR_FORMAT);
	ck_assert_int_eq(plain_raw("**", &c), SASL_ERR_BASE64);
	ck_assert_int_eq(plain_raw("AGFsaWNlAHB3", &c), SASL_OK);
	ck_assert_int_eq(plain_raw("AGFsaWNlAHB3!", &c), SASL_ERR_BASE64);
	ck_assert_int_eq(plain_raw("AGFsaWNlAHB3\r", &c), SASL_ERR_BASE64);
	ck_assert_int_eq(plain_raw("AGFsaWNlAHB", &c), SASL_ERR_BASE64);

	ck_assert_int_eq(plain("alice\0pw", 8, &c), SASL_ERR_FORMAT);        /* one NUL */
	ck_assert_int_eq(plain("alicepw", 7, &c), SASL_ERR_FORMAT);          /* none */
	ck_assert_int_eq(plain("\0alice\0pw\0", 10, &c), SASL_ERR_FORMAT);   /* three */
	ck_assert_int_eq(plain("\0a\0p\0w", 7, &c), SASL_ERR_FORMAT);
	ck_assert_int_eq(plain("\0\0pw", 4, &c), SASL_ERR_EMPTY_USER);
	ck_assert_int_eq(plain("\0alice\0", 7, &c), SASL_ERR_EMPTY_PASS);
	ck_assert_int_eq(plain("\0\0", 2, &c), SASL_ERR_EMPTY_USER);
	ck_assert(all_zero(&c, sizeof(c)));
}
END_TEST

START_TEST(plain_limits)
{
	struct sasl_credentials c;
	char msg[3000];
	size_t n;

	/* user of 255 octets, password of 1024: the largest allowed. */
	n = 0;
	msg[n++] = '\0';
	memset(msg + n, 'u', 255);
	n += 255;
	msg[n++] = '\0';
	memset(msg + n, 'p', 1024);
	n += 1024;
	ck_assert_int_eq(plain(msg, n, &c), SASL_OK);
	ck_assert_uint_eq(strlen(c.user), 255);
	ck_assert_uint_eq(strlen(c.password), 1024);

	/* and one more of either */
	n = 0;
	msg[n++] = '\0';
	memset(msg + n, 'u', 256);
	n += 256;
	msg[n++] = '\0';
	msg[n++] = 'p';
	ck_assert_int_eq(plain(msg, n, &c), SASL_ERR_TOO_LONG);
	ck_assert(all_zero(&c, sizeof(c)));

	n = 0;
	msg[n++] = '\0';
	msg[n++] = 'u';
	msg[n++] = '\0';
	memset(msg + n, 'p', 1025);
	n += 1025;
	ck_assert_int_eq(plain(msg, n, &c), SASL_ERR_TOO_LONG);

	/* authzid of 256 */
	n = 0;
	memset(msg, 'z', 256);
	n = 256;
	msg[n++] = '\0';
	msg[n++] = 'u';
	msg[n++] = '\0';
	msg[n++] = 'p';
	ck_assert_int_eq(plain(msg, n, &c), SASL_ERR_TOO_LONG);

	/* authzid 255 + user 255 + password 1024: the largest message. */
	n = 0;
	memset(msg, 'u', 255);
	n = 255;
	msg[n++] = '\0';
	memset(msg + n, 'u', 255);
	n += 255;
	msg[n++] = '\0';
	memset(msg + n, 'p', 1024);
	n += 1024;
	ck_assert_int_eq(plain(msg, n, &c), SASL_OK);
	msg[n++] = 'p';
	ck_assert_int_eq(plain(msg, n, &c), SASL_ERR_TOO_LONG);

	/* A response far over the limit is refused before decoding. */
	char *big = malloc(8001);
	memset(big, 'A', 8000);
	big[8000] = '\0';
	ck_assert_int_eq(plain_raw(big, &c), SASL_ERR_TOO_LONG);
	big[10] = '!';
	ck_assert_int_eq(plain_raw(big, &c), SASL_ERR_TOO_LONG);
	free(big);
	sasl_credentials_wipe(&c);
}
END_TEST

START_TEST(strerror_names)
{
	for (int e = SASL_OK; e <= SASL_ERR_CANCELLED; e++)
		ck_assert(strlen(sasl_strerror((enum sasl_error)e)) > 0);
	ck_assert_str_eq(sasl_strerror((enum sasl_error)99), "unknown error");
}
END_TEST

/* ---- LOGIN ---- */

START_TEST(login_without_initial)
{
	struct sasl_login *l = sasl_login_new();
	const char *ch;
	enum sasl_error e;

	ck_assert_ptr_null(sasl_login_credentials(l));
	ck_assert_int_eq(login_begin(l, NULL, &ch, &e), SASL_STEP_NEED_MORE);
	ck_assert_str_eq(ch, "VXNlcm5hbWU6");
	ck_assert_str_eq(ch, b64("Username:", 9));
	ck_assert_int_eq(login_feed(l, b64("alice@example.test", 18), &ch, &e), SASL_STEP_NEED_MORE);
	ck_assert_str_eq(ch, "UGFzc3dvcmQ6");
	ck_assert_str_eq(ch, b64("Password:", 9));
	ck_assert_ptr_null(sasl_login_credentials(l));
	ck_assert_int_eq(login_feed(l, b64("s3cret", 6), &ch, &e), SASL_STEP_DONE);
	ck_assert_int_eq(e, SASL_OK);
	const struct sasl_credentials *c = sasl_login_credentials(l);
	ck_assert_ptr_nonnull(c);
	ck_assert_str_eq(c->authzid, "");
	ck_assert_str_eq(c->user, "alice@example.test");
	ck_assert_str_eq(c->password, "s3cret");
	/* Nothing more after DONE. */
	ck_assert_int_eq(login_feed(l, b64("x", 1), &ch, &e), SASL_STEP_ERROR);
	ck_assert_int_eq(e, SASL_ERR_FORMAT);
	ck_assert_ptr_null(sasl_login_credentials(l));
	sasl_login_free(&l);
	ck_assert_ptr_null(l);
	sasl_login_free(&l);
}
END_TEST

START_TEST(login_with_initial)
{
	struct sasl_login *l = sasl_login_new();
	const char *ch;
	enum sasl_error e;

	ck_assert_int_eq(login_begin(l, b64("bob", 3), &ch, &e), SASL_STEP_NEED_MORE);
	ck_assert_str_eq(ch, SASL_LOGIN_CHALLENGE_PASS);
	ck_assert_int_eq(login_feed(l, b64("pw", 2), &ch, &e), SASL_STEP_DONE);
	ck_assert_str_eq(sasl_login_credentials(l)->user, "bob");
	ck_assert_str_eq(sasl_login_credentials(l)->password, "pw");
	/* begin is once only */
	ck_assert_int_eq(login_begin(l, NULL, &ch, &e), SASL_STEP_ERROR);
	sasl_login_free(&l);
}
END_TEST

/* Run a LOGIN exchange of initial (or NULL) and lines; the final step and
 * error. */
static enum sasl_step login_run(const char *initial, const char *const *lines, size_t n, enum sasl_error *e)
{
	struct sasl_login *l = sasl_login_new();
	const char *ch;
	enum sasl_step s = login_begin(l, initial, &ch, e);
	for (size_t i = 0; i < n && s == SASL_STEP_NEED_MORE; i++)
		s = login_feed(l, lines[i], &ch, e);
	if (s == SASL_STEP_ERROR)
		ck_assert_ptr_null(sasl_login_credentials(l));
	sasl_login_free(&l);
	return s;
}

START_TEST(login_errors)
{
	enum sasl_error e;
	char user256[400], pass1025[1500], raw[1100];

	ck_assert_int_eq(login_run("*", NULL, 0, &e), SASL_STEP_ERROR);
	ck_assert_int_eq(e, SASL_ERR_CANCELLED);
	ck_assert_int_eq(login_run(NULL, (const char *[]){ "*" }, 1, &e), SASL_STEP_ERROR);
	ck_assert_int_eq(e, SASL_ERR_CANCELLED);
	ck_assert_int_eq(login_run(NULL, (const char *[]){ "Ym9i", "*" }, 2, &e), SASL_STEP_ERROR);
	ck_assert_int_eq(e, SASL_ERR_CANCELLED);

	ck_assert_int_eq(login_run("Ym9i!", NULL, 0, &e), SASL_STEP_ERROR);
	ck_assert_int_eq(e, SASL_ERR_BASE64);
	ck_assert_int_eq(login_run(NULL, (const char *[]){ "Ym9" }, 1, &e), SASL_STEP_ERROR);
	ck_assert_int_eq(e, SASL_ERR_BASE64);
	ck_assert_int_eq(login_run(NULL, (const char *[]){ "Ym9i", "cHc=\r" }, 2, &e), SASL_STEP_ERROR);
	ck_assert_int_eq(e, SASL_ERR_BASE64);

	/* "=" and "" are empty answers. */
	ck_assert_int_eq(login_run("=", NULL, 0, &e), SASL_STEP_ERROR);
	ck_assert_int_eq(e, SASL_ERR_EMPTY_USER);
	ck_assert_int_eq(login_run(NULL, (const char *[]){ "" }, 1, &e), SASL_STEP_ERROR);
	ck_assert_int_eq(e, SASL_ERR_EMPTY_USER);
	ck_assert_int_eq(login_run(NULL, (const char *[]){ "Ym9i", "=" }, 2, &e), SASL_STEP_ERROR);
	ck_assert_int_eq(e, SASL_ERR_EMPTY_PASS);
	ck_assert_int_eq(login_run("Ym9i", (const char *[]){ "" }, 1, &e), SASL_STEP_ERROR);
	ck_assert_int_eq(e, SASL_ERR_EMPTY_PASS);

	/* A NUL inside a field. */
	ck_assert_int_eq(login_run(b64("b\0b", 3), NULL, 0, &e), SASL_STEP_ERROR);
	ck_assert_int_eq(e, SASL_ERR_FORMAT);
	ck_assert_int_eq(login_run("Ym9i", (const char *[]){ b64("p\0w", 3) }, 1, &e), SASL_STEP_ERROR);
	ck_assert_int_eq(e, SASL_ERR_FORMAT);

	/* Limits: 255 / 1024 octets. */
	memset(raw, 'u', 255);
	snprintf(user256, sizeof(user256), "%s", b64(raw, 255));
	memset(raw, 'p', 1024);
	snprintf(pass1025, sizeof(pass1025), "%s", b64(raw, 1024));
	ck_assert_int_eq(login_run(user256, (const char *[]){ pass1025 }, 1, &e), SASL_STEP_DONE);
	memset(raw, 'u', 256);
	snprintf(user256, sizeof(user256), "%s", b64(raw, 256));
	memset(raw, 'p', 1025);
	snprintf(pass1025, sizeof(pass1025), "%s", b64(raw, 1025));
	ck_assert_int_eq(login_run(user256, NULL, 0, &e), SASL_STEP_ERROR);
	ck_assert_int_eq(e, SASL_ERR_TOO_LONG);
	ck_assert_int_eq(login_run("Ym9i", (const char *[]){ pass1025 }, 1, &e), SASL_STEP_ERROR);
	ck_assert_int_eq(e, SASL_ERR_TOO_LONG);

	/* Feeding before begin. */
	struct sasl_login *l = sasl_login_new();
	const char *ch;
	ck_assert_int_eq(login_feed(l, "Ym9i", &ch, &e), SASL_STEP_ERROR);
	ck_assert_int_eq(e, SASL_ERR_FORMAT);
	sasl_login_free(&l);
}
END_TEST

static Suite *sasl_suite(void)
{
	Suite *s = suite_create("sasl");
	TCase *tc = tcase_create("base64");
	tcase_add_test(tc, base64_rfc4648_vectors);
	tcase_add_loop_test(tc, base64_round_trip_lengths, 0, 65);
	tcase_add_test(tc, base64_all_bytes);
	tcase_add_test(tc, base64_strict_rejects);
	suite_add_tcase(s, tc);

	tc = tcase_create("plain");
	tcase_add_test(tc, plain_valid);
	tcase_add_test(tc, plain_errors);
	tcase_add_test(tc, plain_limits);
	tcase_add_test(tc, strerror_names);
	suite_add_tcase(s, tc);

	tc = tcase_create("login");
	tcase_add_test(tc, login_without_initial);
	tcase_add_test(tc, login_with_initial);
	tcase_add_test(tc, login_errors);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run(sasl_suite());
}
