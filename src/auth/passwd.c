/*
 * crypt(3) through libxcrypt's reentrant calls: crypt_gensalt_ra for a
 * salt from the kernel's entropy, crypt_rn with a heap struct crypt_data
 * that we wipe afterwards (it holds state derived from the password).
 * Nothing here logs; callers decide what a failure means.
 */
#include "auth/passwd.h"

#include <crypt.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/crypto.h>

#include "core/xalloc.h"

static const struct {
	const char *name;
	const char *prefix;
} passwd_schemes[] = {
	{ "yescrypt", "$y$" },
	{ "bcrypt", "$2b$" },
	{ "sha512crypt", "$6$" },
};

static const char *passwd_prefix(const char *scheme)
{
	for (size_t i = 0; i < sizeof(passwd_schemes) / sizeof(passwd_schemes[0]); i++) {
		if (strcmp(scheme, passwd_schemes[i].name) == 0 ||
		    strcmp(scheme, passwd_schemes[i].prefix) == 0)
			return passwd_schemes[i].prefix;
	}
	return NULL;
}

/* crypt_rn into a fresh heap struct; returns it (caller wipes and frees)
 * or NULL. The result is in data->output. */
static struct crypt_data *passwd_crypt(const char *password, const char *setting)
{
	struct crypt_data *data = xcalloc(1, sizeof(*data));

	if (crypt_rn(password, setting, data, (int)sizeof(*data)) == NULL ||
	    data->output[0] == '*') {
		explicit_bzero(data, sizeof(*data));
		free(data);
		return NULL;
	}
	return data;
}

static void passwd_crypt_free(struct crypt_data *data)
{
	explicit_bzero(data, sizeof(*data));
	free(data);
}

int passwd_hash(const char *scheme, const char *password, char **hash_r, char **error_r)
{
	const char *prefix = passwd_prefix(scheme);
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];

	if (prefix == NULL) {
		*error_r = xasprintf("unknown password scheme \"%.40s\" (yescrypt, bcrypt or sha512crypt)",
				     scheme);
		return -1;
	}
	if (strlen(password) >= CRYPT_MAX_PASSPHRASE_SIZE) {
		*error_r = xasprintf("password too long (at most %d octets)", CRYPT_MAX_PASSPHRASE_SIZE - 1);
		return -1;
	}
	/* count 0 = the method's default cost; rbytes NULL = the kernel's
	 * entropy (CRYPT_GENSALT_IMPLEMENTS_AUTO_ENTROPY). */
	if (crypt_gensalt_rn(prefix, 0, NULL, 0, setting, (int)sizeof(setting)) == NULL) {
		*error_r = xasprintf("cannot make a %s salt: %s", scheme, strerror(errno));
		return -1;
	}
	struct crypt_data *data = passwd_crypt(password, setting);
	if (data == NULL) {
		*error_r = xasprintf("%s hashing failed: %s", scheme, strerror(errno));
		return -1;
	}
	*hash_r = xstrdup(data->output);
	passwd_crypt_free(data);
	return 0;
}

/* The alphabet of crypt(3) salts and hashes. */
static const char passwd_crypt64[] =
	"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

int passwd_hash_check(const char *hash, const char **reason_r)
{
	*reason_r = NULL;
	if (hash[0] == '\0') {
		*reason_r = "empty hash";
		return -1;
	}
	if (hash[0] == '!' || hash[0] == '*') {
		*reason_r = "a locked or disabled account marker, not a hash";
		return -1;
	}
	if (strlen(hash) >= CRYPT_OUTPUT_SIZE) {
		*reason_r = "hash too long";
		return -1;
	}
	if (hash[0] != '$') {
		/* descrypt, bigcrypt, bsdicrypt: passwords cut to 8 characters.
		 * crypt_checksalt looks only at the salt, which any two
		 * alphanumerics make, so recognise the shape instead. */
		size_t n = strspn(hash, passwd_crypt64);
		bool des = (hash[n] == '\0' && n >= 13 && (n - 13) % 11 == 0) ||
			   (hash[0] == '_' && strlen(hash) == 20 && strspn(hash + 1, passwd_crypt64) == 19);
		*reason_r = des ? "DES-based crypt hash (truncates passwords); not accepted"
			       : "not a crypt(3) hash libxcrypt knows";
		return -1;
	}
	switch (crypt_checksalt(hash)) {
	case CRYPT_SALT_OK:
		return 0;
	case CRYPT_SALT_METHOD_LEGACY:
		return 1;
	case CRYPT_SALT_METHOD_DISABLED:
		*reason_r = "hash method disabled in libxcrypt";
		return -1;
	case CRYPT_SALT_TOO_CHEAP:
		*reason_r = "hash too cheap";
		return -1;
	default:
		*reason_r = "not a crypt(3) hash libxcrypt knows";
		return -1;
	}
}

int passwd_verify(const char *hash, const char *password)
{
	const char *reason;

	if (passwd_hash_check(hash, &reason) < 0)
		return -1;
	if (strlen(password) >= CRYPT_MAX_PASSPHRASE_SIZE)
		return 0;
	struct crypt_data *data = passwd_crypt(password, hash);
	if (data == NULL)
		return -1; /* checksalt liked the prefix but the rest is malformed */
	/* The output of a well-formed hash has the hash's own length; a
	 * setting without its hash part ("$6$salt$") or one with trailing
	 * junk is malformed, not a mismatch. */
	size_t len = strlen(hash);
	if (strlen(data->output) != len) {
		passwd_crypt_free(data);
		return -1;
	}
	int match = CRYPTO_memcmp(data->output, hash, len) == 0;
	passwd_crypt_free(data);
	return match;
}

static pthread_once_t passwd_dummy_once = PTHREAD_ONCE_INIT;
static char *passwd_dummy;

static void passwd_dummy_make(void)
{
	unsigned char rnd[24];
	char pw[2 * sizeof(rnd) + 1];
	char *error = NULL;

	/* A random password nobody knows; if even that fails, a fixed one is
	 * still safe because the hash is only ever compared, never matched
	 * against by a real account. */
	/* getentropy, not RAND_bytes: this runs on a threadpool thread, where
	 * OpenSSL would set up per-thread RNG state that outlives the job. */
	if (getentropy(rnd, sizeof(rnd)) != 0)
		memset(rnd, 0x5a, sizeof(rnd));
	for (size_t i = 0; i < sizeof(rnd); i++) {
		static const char hex[] = "0123456789abcdef";
		pw[2 * i] = hex[rnd[i] >> 4];
		pw[2 * i + 1] = hex[rnd[i] & 15];
	}
	pw[sizeof(pw) - 1] = '\0';
	if (passwd_hash("yescrypt", pw, &passwd_dummy, &error) < 0) {
		free(error);
		/* A valid yescrypt hash made offline, of a password that was
		 * thrown away. */
		passwd_dummy = xstrdup("$y$j9T$0b8fbe267a3288b5$8vwcKrC3iqaouhVmfHi/ZAsHRv7X4hWYx.eyylEYPT/");
	}
	explicit_bzero(pw, sizeof(pw));
	explicit_bzero(rnd, sizeof(rnd));
}

const char *passwd_dummy_hash(void)
{
	pthread_once(&passwd_dummy_once, passwd_dummy_make);
	return passwd_dummy;
}
