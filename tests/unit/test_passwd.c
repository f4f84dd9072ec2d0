#include <stdlib.h>
#include <string.h>

#include "auth/passwd.h"
#include "testutil.h"

/* Made outside postbote: python3 crypt (libxcrypt) and openssl passwd. */
#define PW "correct horse"
static const char *const known[] = {
	/* openssl passwd -6 -salt saltsalt 'correct horse' */
	"$6$saltsalt$hRM5XZ86KXEw9UOmjigeVqFgULtFB2sgpC9lXQDfMib3Zgw7mEiUvBJI2EplzfAqxL5Vvwp2scFtv/uamSo5z0",
	/* openssl passwd -5 -salt saltsaltsalt 'correct horse' (sha256crypt: legacy, still verifies) */
	"$5$saltsaltsalt$7axwV9kT3PvvGXgJl1FcfUCHLdLFhWk/dIFhzsbucLB",
	/* python3: crypt.crypt(PW, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=32)) */
	"$2b$05$9OO0ZWK78v5snlbIwDlDoe6sZS5PG22LhyOrEGsEiIChqcRniTV.e",
	/* python3: crypt.crypt(PW, "$y$j9T$F5Jx5fExrKuPp53xLKQ..1") */
	"$y$j9T$F5Jx5fExrKuPp53xLKQ..1$zwtVrjrUCmXcyLTs6oxLTQlzifSUkF8RHJ./tK5KU79",
};

START_TEST(known_hashes_verify)
{
	const char *h = known[_i];
	ck_assert_int_eq(passwd_verify(h, PW), 1);
	ck_assert_int_eq(passwd_verify(h, "correct horse "), 0);
	ck_assert_int_eq(passwd_verify(h, "Correct horse"), 0);
	ck_assert_int_eq(passwd_verify(h, ""), 0);
}
END_TEST

START_TEST(hash_and_verify_each_scheme)
{
	static const char *const schemes[] = { "yescrypt", "bcrypt", "sha512crypt", "$y$", "$2b$", "$6$" };
	static const char *const prefixes[] = { "$y$", "$2b$", "$6$", "$y$", "$2b$", "$6$" };
	char *hash = NULL, *hash2 = NULL, *error = NULL;
	const char *reason;

	ck_assert_int_eq(passwd_hash(schemes[_i], "s3cret pässword", &hash, &error), 0);
	ck_assert_ptr_null(error);
	ck_assert_msg(strncmp(hash, prefixes[_i], strlen(prefixes[_i])) == 0, "%s", hash);
	ck_assert_int_eq(passwd_hash_check(hash, &reason), 0);
	ck_assert_int_eq(passwd_verify(hash, "s3cret pässword"), 1);
	ck_assert_int_eq(passwd_verify(hash, "s3cret passwort"), 0);
	/* A fresh salt every time. */
	ck_assert_int_eq(passwd_hash(schemes[_i], "s3cret pässword", &hash2, &error), 0);
	ck_assert_str_ne(hash, hash2);
	free(hash);
	free(hash2);
}
END_TEST

START_TEST(hash_errors)
{
	char *hash = NULL, *error = NULL;
	char longpw[600];

	ck_assert_int_eq(passwd_hash("md5crypt", "x", &hash, &error), -1);
	ck_assert_ptr_null(hash);
	ck_assert_ptr_nonnull(strstr(error, "md5crypt"));
	free(error);
	error = NULL;

	memset(longpw, 'a', sizeof(longpw) - 1);
	longpw[sizeof(longpw) - 1] = '\0';
	ck_assert_int_eq(passwd_hash("sha512crypt", longpw, &hash, &error), -1);
	ck_assert_ptr_nonnull(strstr(error, "too long"));
	free(error);
	/* ... and such a password never matches anything. */
	ck_assert_int_eq(passwd_verify(known[0], longpw), 0);
}
END_TEST

START_TEST(malformed_hashes)
{
	static const char *const bad[] = {
		"",
		"*",
		"!",
		"!$6$saltsalt$hRM5XZ86KXEw9UOmjigeVqFgULtFB2sgpC9lXQDfMib3Zgw7mEiUvBJI2EplzfAqxL5Vvwp2scFtv/uamSo5z0",
		"plaintext",
		"{PLAIN}secret",
		"abgOeLfPimXQo",                 /* descrypt of "test": refused, truncates */
		"_J9..saltQ0Y2tHa2Z1Ww",        /* bsdicrypt */
		"$",
		"$99$abc$def",
		"$6",
	};
	/* A known method, but the rest is broken: passwd_hash_check looks
	 * only at the method (hashing to find out would cost a full hash),
	 * passwd_verify finds out. */
	static const char *const broken[] = {
		"$2b$05$short",
		"$2b$99$9OO0ZWK78v5snlbIwDlDoe6sZS5PG22LhyOrEGsEiIChqcRniTV.e",
		"$y$",
		"$y$j9T$",          /* a setting, not a hash */
		"$6$saltsalt$",
		"$6$rounds=abc$salt$hash",
		/* known[0] with junk after it */
		"$6$saltsalt$hRM5XZ86KXEw9UOmjigeVqFgULtFB2sgpC9lXQDfMib3Zgw7mEiUvBJI2EplzfAqxL5Vvwp2scFtv/uamSo5z0x",
	};
	const char *reason;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(passwd_verify(bad[i], PW) == -1, "verify accepted \"%s\"", bad[i]);
		ck_assert_msg(passwd_hash_check(bad[i], &reason) == -1, "check accepted \"%s\"", bad[i]);
		ck_assert_ptr_nonnull(reason);
	}
	for (size_t i = 0; i < sizeof(broken) / sizeof(broken[0]); i++)
		ck_assert_msg(passwd_verify(broken[i], PW) == -1, "verify accepted \"%s\"", broken[i]);
}
END_TEST

START_TEST(hash_check_levels)
{
	const char *reason;

	ck_assert_int_eq(passwd_hash_check(known[0], &reason), 0);
	ck_assert_int_eq(passwd_hash_check(known[1], &reason), 1); /* $5$ is legacy */
	ck_assert_int_eq(passwd_hash_check(known[2], &reason), 0);
	ck_assert_int_eq(passwd_hash_check(known[3], &reason), 0);
	ck_assert_int_eq(passwd_hash_check("$1$saltsalt$NuzA7WTAelpl95xgBGWN60", &reason), 1); /* md5crypt */
}
END_TEST

START_TEST(dummy_hash)
{
	const char *d = passwd_dummy_hash();
	const char *reason;

	ck_assert_ptr_nonnull(d);
	ck_assert_ptr_eq(passwd_dummy_hash(), d); /* made once */
	ck_assert(strncmp(d, "$y$", 3) == 0);
	ck_assert_int_eq(passwd_hash_check(d, &reason), 0);
	ck_assert_int_eq(passwd_verify(d, PW), 0);
	ck_assert_int_eq(passwd_verify(d, ""), 0);
}
END_TEST

static Suite *passwd_suite(void)
{
	Suite *s = suite_create("passwd");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, known_hashes_verify, 0, sizeof(known) / sizeof(known[0]));
	tcase_add_loop_test(tc, hash_and_verify_each_scheme, 0, 6);
	tcase_add_test(tc, hash_errors);
	tcase_add_test(tc, malformed_hashes);
	tcase_add_test(tc, hash_check_levels);
	tcase_add_test(tc, dummy_hash);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run(passwd_suite());
}
