/*
 * DKIM keys on disk and in DNS.
 *
 * A key is a plain PEM file an admin can make with openssl, copy between
 * hosts or drop in from another signer (OpenDKIM's keys work as they are):
 * DATA/dkim/DOMAIN/SELECTOR.key. Private keys are written the way the
 * self-signed certificate's key is (src/core/tls_selfsigned.c): mode 0600
 * from the first byte, through a temporary file that is fsynced and then
 * linked into place, so a crash leaves the old key or the new one, never
 * half of one, and "do not overwrite" is decided atomically by link(2).
 * The PEM passes only through OpenSSL's secure heap, which is wiped.
 */
#include "smtp/dkim_keys.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "auth/base64.h"
#include "core/fileio.h"
#include "core/xalloc.h"

/* An error string with OpenSSL's reason appended. */
static char *dkim_ssl_error(const char *what)
{
	unsigned long e = ERR_get_error();
	char reason[256];

	ERR_clear_error();
	if (e == 0)
		return xasprintf("%s failed", what);
	ERR_error_string_n(e, reason, sizeof(reason));
	return xasprintf("%s: %s", what, reason);
}

const char *dkim_key_type_name(enum dkim_key_type type)
{
	return type == DKIM_KEY_ED25519 ? "ed25519" : "rsa";
}

const char *dkim_key_algorithm(enum dkim_key_type type)
{
	return type == DKIM_KEY_ED25519 ? "ed25519-sha256" : "rsa-sha256";
}

int dkim_key_type_parse(const char *name, enum dkim_key_type *type_r)
{
	if (strcmp(name, "rsa") == 0) {
		*type_r = DKIM_KEY_RSA;
		return 0;
	}
	if (strcmp(name, "ed25519") == 0) {
		*type_r = DKIM_KEY_ED25519;
		return 0;
	}
	return -1;
}

/* Labels of letters, digits and '-' (not first or last), 1-63 octets,
 * separated by single dots; max octets in all. */
static bool dkim_labels_valid(const char *s, size_t max)
{
	size_t len = strlen(s), label = 0;

	if (len == 0 || len > max)
		return false;
	for (size_t i = 0; i <= len; i++) {
		char c = s[i];
		if (c == '.' || c == '\0') {
			if (label == 0 || label > 63 || s[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-'))
			return false;
		if (c == '-' && label == 0)
			return false;
		label++;
	}
	return true;
}

bool dkim_selector_valid(const char *selector)
{
	/* RFC 6376 3.1: selector = sub-domain *( "." sub-domain ). Dots are
	 * fine in a file name; '/' and a leading '.' cannot occur. */
	return dkim_labels_valid(selector, 63);
}

bool dkim_domain_valid(const char *domain)
{
	return dkim_labels_valid(domain, 253);
}

char *dkim_key_dir(const char *data_dir, const char *domain)
{
	return xasprintf("%s/dkim/%s", data_dir, domain);
}

char *dkim_key_path(const char *data_dir, const char *domain, const char *selector)
{
	return xasprintf("%s/dkim/%s/%s.key", data_dir, domain, selector);
}

void dkim_key_free(struct dkim_key *key)
{
	free(key->selector);
	EVP_PKEY_free(key->pkey);
	memset(key, 0, sizeof(*key));
}

void dkim_keyset_free(struct dkim_keyset *set)
{
	for (size_t i = 0; i < set->n_keys; i++)
		dkim_key_free(&set->keys[i]);
	free(set->keys);
	free(set->domain);
	memset(set, 0, sizeof(*set));
}

/* Check that pkey can sign DKIM and fill *key_r; takes pkey in all cases. */
static int dkim_key_adopt(EVP_PKEY *pkey, const char *selector, struct dkim_key *key_r,
			  char **error_r)
{
	memset(key_r, 0, sizeof(*key_r));
	if (EVP_PKEY_is_a(pkey, "RSA")) {
		int bits = EVP_PKEY_get_bits(pkey);
		if (bits < DKIM_RSA_BITS_MIN) {
			/* RFC 8301 3.2: verifiers fail smaller keys. */
			*error_r = xasprintf("a %d-bit RSA key is too small for DKIM (at least %d bits)",
					     bits, DKIM_RSA_BITS_MIN);
			EVP_PKEY_free(pkey);
			return -1;
		}
		key_r->type = DKIM_KEY_RSA;
		key_r->bits = (unsigned)bits;
	} else if (EVP_PKEY_is_a(pkey, "ED25519")) {
		key_r->type = DKIM_KEY_ED25519;
		key_r->bits = 256;
	} else {
		*error_r = xasprintf("a %s key cannot sign DKIM (RSA or Ed25519 only)",
				     EVP_PKEY_get0_type_name(pkey) ? EVP_PKEY_get0_type_name(pkey) : "unknown");
		EVP_PKEY_free(pkey);
		return -1;
	}
	key_r->pkey = pkey;
	key_r->selector = xstrdup(selector);
	return 0;
}

int dkim_key_generate(enum dkim_key_type type, unsigned bits, const char *selector,
		      struct dkim_key *key_r, char **error_r)
{
	EVP_PKEY *pkey = NULL;

	memset(key_r, 0, sizeof(*key_r));
	ERR_clear_error();
	if (type == DKIM_KEY_RSA) {
		if (bits == 0)
			bits = DKIM_RSA_BITS_DEFAULT;
		if (bits < DKIM_RSA_BITS_MIN || bits > DKIM_RSA_BITS_MAX) {
			*error_r = xasprintf("RSA keys for DKIM have %d to %d bits", DKIM_RSA_BITS_MIN,
					     DKIM_RSA_BITS_MAX);
			return -1;
		}
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
	} else {
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	}
	if (pkey == NULL) {
		*error_r = dkim_ssl_error("key generation");
		return -1;
	}
	return dkim_key_adopt(pkey, selector, key_r, error_r);
}

/* mkdir, tolerating an existing directory; chown what we made. */
static int dkim_mkdir(const char *path, mode_t mode, uid_t uid, gid_t gid, char **error_r)
{
	if (mkdir(path, mode) == 0) {
		if (uid != (uid_t)-1 && chown(path, uid, gid) < 0) {
			*error_r = xasprintf("chown %s: %s", path, strerror(errno));
			return -1;
		}
		return 0;
	}
	if (errno == EEXIST)
		return 0;
	*error_r = xasprintf("cannot create %s: %s", path, strerror(errno));
	return -1;
}

/* mkdir -p for the parents of path (DATA/dkim/DOMAIN/SELECTOR.key): the
 * key's folder and the one above it (DATA/dkim) with 0700, the levels
 * above them (DATA and up) with 0750, as the CLI makes DATA. */
static int dkim_make_parents(const char *path, uid_t uid, gid_t gid, char **error_r)
{
	char *p = xstrdup(path);
	char *slash = strrchr(p, '/');
	int rc = 0;

	if (slash == NULL || slash == p) {
		free(p);
		return 0;
	}
	*slash = '\0';
	char *domain_slash = strrchr(p, '/');   /* DATA/dkim "/" DOMAIN */
	for (char *s = p + 1; ; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char c = *s;
		*s = '\0';
		bool private = domain_slash != NULL && s >= domain_slash;
		if (dkim_mkdir(p, private ? 0700 : 0750, uid, gid, error_r) < 0) {
			rc = -1;
			break;
		}
		*s = c;
		if (c == '\0')
			break;
	}
	free(p);
	return rc;
}

static int dkim_fsync_dir(const char *path, char **error_r)
{
	char *dir = xstrdup(path);
	char *slash = strrchr(dir, '/');

	if (slash != NULL)
		*slash = '\0';
	int fd = open(slash != NULL ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0) {
		*error_r = xasprintf("fsync %s: %s", dir, strerror(errno));
		if (fd >= 0)
			close(fd);
		free(dir);
		return -1;
	}
	close(fd);
	free(dir);
	return 0;
}

int dkim_key_write(const struct dkim_key *key, const char *path, bool overwrite,
		   uid_t owner_uid, gid_t owner_gid, bool *exists_r, char **error_r)
{
	BIO *mem = BIO_new(BIO_s_secmem());
	char *tmp = NULL, *data;
	int fd = -1, rc = -1;

	*exists_r = false;
	ERR_clear_error();
	if (mem == NULL || PEM_write_bio_PrivateKey(mem, key->pkey, NULL, NULL, 0, NULL, NULL) != 1) {
		*error_r = dkim_ssl_error("PEM encoding");
		goto out;
	}
	if (!overwrite && access(path, F_OK) == 0) {
		*exists_r = true;
		*error_r = xasprintf("%s exists already", path);
		goto out;
	}
	if (dkim_make_parents(path, owner_uid, owner_gid, error_r) < 0)
		goto out;
	tmp = xasprintf("%s.tmp", path);
	/* A leftover from an earlier crash is ours and never in use. */
	if (unlink(tmp) < 0 && errno != ENOENT) {
		*error_r = xasprintf("%s: %s", tmp, strerror(errno));
		goto out;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		*error_r = xasprintf("%s: %s", tmp, strerror(errno));
		goto out;
	}
	long len = BIO_get_mem_data(mem, &data);
	if (len <= 0 || fileio_write_all(fd, data, (size_t)len) < 0 || fsync(fd) < 0) {
		*error_r = xasprintf("%s: %s", tmp, len <= 0 ? "nothing to write" : strerror(errno));
		goto out;
	}
	if (owner_uid != (uid_t)-1 && fchown(fd, owner_uid, owner_gid) < 0) {
		*error_r = xasprintf("chown %s: %s", tmp, strerror(errno));
		goto out;
	}
	if (close(fd) < 0) {
		fd = -1;
		*error_r = xasprintf("%s: %s", tmp, strerror(errno));
		goto out;
	}
	fd = -1;
	if (overwrite) {
		if (rename(tmp, path) < 0) {
			*error_r = xasprintf("rename %s: %s", path, strerror(errno));
			goto out;
		}
	} else {
		/* link() refuses an existing name: no check-then-write race. */
		if (link(tmp, path) < 0) {
			if (errno == EEXIST) {
				*exists_r = true;
				*error_r = xasprintf("%s exists already", path);
			} else {
				*error_r = xasprintf("link %s: %s", path, strerror(errno));
			}
			goto out;
		}
		unlink(tmp);
	}
	free(tmp);
	tmp = NULL;
	if (dkim_fsync_dir(path, error_r) < 0)
		goto out;
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	if (tmp != NULL) {
		unlink(tmp);
		free(tmp);
	}
	BIO_free(mem);
	ERR_clear_error();
	return rc;
}

int dkim_key_from_pem(const char *pem, size_t len, const char *selector, struct dkim_key *key_r,
		      char **error_r)
{
	EVP_PKEY *pkey = NULL;

	memset(key_r, 0, sizeof(*key_r));
	if (len > DKIM_KEY_FILE_MAX) {
		*error_r = xasprintf("larger than %d octets: not a DKIM key", DKIM_KEY_FILE_MAX);
		return -1;
	}
	ERR_clear_error();
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	if (bio != NULL)
		pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (pkey == NULL) {
		*error_r = dkim_ssl_error("not a PEM private key");
		return -1;
	}
	ERR_clear_error();
	return dkim_key_adopt(pkey, selector, key_r, error_r);
}

int dkim_key_load(const char *path, const char *selector, struct dkim_key *key_r, char **error_r)
{
	char *data = NULL, *error = NULL;
	size_t len = 0;
	bool missing = false;

	memset(key_r, 0, sizeof(*key_r));
	if (fileio_read_file(path, DKIM_KEY_FILE_MAX, &data, &len, &missing, &error) < 0) {
		*error_r = error;
		return -1;
	}
	if (missing) {
		*error_r = xasprintf("%s: no such file", path);
		return -1;
	}
	int rc = dkim_key_from_pem(data, len, selector, key_r, &error);
	explicit_bzero(data, len);
	free(data);
	if (rc < 0) {
		*error_r = xasprintf("%s: %s", path, error);
		free(error);
		return -1;
	}
	return 0;
}

static int dkim_key_cmp(const void *a, const void *b)
{
	const struct dkim_key *x = a, *y = b;
	return strcmp(x->selector, y->selector);
}

int dkim_keyset_load(const char *data_dir, const char *domain, struct dkim_keyset *set_r,
		     char **error_r)
{
	size_t cap = 0;

	memset(set_r, 0, sizeof(*set_r));
	set_r->domain = xstrdup(domain);
	for (char *p = set_r->domain; *p; p++) {
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p + ('a' - 'A'));
	}
	char *dir = dkim_key_dir(data_dir, set_r->domain);
	DIR *d = opendir(dir);
	if (d == NULL) {
		if (errno == ENOENT) {
			free(dir);
			return 0;
		}
		*error_r = xasprintf("%s: %s", dir, strerror(errno));
		free(dir);
		dkim_keyset_free(set_r);
		return -1;
	}
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name);
		if (n <= 4 || strcmp(de->d_name + n - 4, ".key") != 0)
			continue;
		char *selector = xstrndup(de->d_name, n - 4);
		if (!dkim_selector_valid(selector)) {
			free(selector);
			continue;
		}
		if (set_r->n_keys == cap) {
			cap = cap ? cap * 2 : 4;
			set_r->keys = xrealloc(set_r->keys, cap * sizeof(*set_r->keys));
		}
		char *path = xasprintf("%s/%s", dir, de->d_name);
		int rc = dkim_key_load(path, selector, &set_r->keys[set_r->n_keys], error_r);
		free(path);
		free(selector);
		if (rc < 0) {
			closedir(d);
			free(dir);
			dkim_keyset_free(set_r);
			return -1;
		}
		set_r->n_keys++;
	}
	closedir(d);
	free(dir);
	if (set_r->n_keys > 1)
		qsort(set_r->keys, set_r->n_keys, sizeof(*set_r->keys), dkim_key_cmp);
	return 0;
}

int dkim_keyring_load(const char *data_dir, char *const *domains, size_t n_domains,
		      struct dkim_keyring *ring_r, char **error_r)
{
	memset(ring_r, 0, sizeof(*ring_r));
	for (size_t i = 0; i < n_domains; i++) {
		struct dkim_keyset set;
		if (dkim_keyset_load(data_dir, domains[i], &set, error_r) < 0) {
			dkim_keyring_free(ring_r);
			return -1;
		}
		if (set.n_keys == 0) {
			dkim_keyset_free(&set);
			continue;
		}
		ring_r->sets = xrealloc(ring_r->sets, (ring_r->n_sets + 1) * sizeof(*ring_r->sets));
		ring_r->sets[ring_r->n_sets++] = set;
	}
	return 0;
}

const struct dkim_keyset *dkim_keyring_find(const struct dkim_keyring *ring, const char *domain)
{
	for (size_t i = 0; ring != NULL && i < ring->n_sets; i++) {
		if (strcasecmp(ring->sets[i].domain, domain) == 0 && ring->sets[i].n_keys > 0)
			return &ring->sets[i];
	}
	return NULL;
}

void dkim_keyring_free(struct dkim_keyring *ring)
{
	for (size_t i = 0; i < ring->n_sets; i++)
		dkim_keyset_free(&ring->sets[i]);
	free(ring->sets);
	memset(ring, 0, sizeof(*ring));
}

char *dkim_key_txt_value(const struct dkim_key *key)
{
	unsigned char *der = NULL;
	size_t der_len = 0;

	ERR_clear_error();
	if (key->type == DKIM_KEY_RSA) {
		/* RFC 6376 3.6.1: p= is the DER SubjectPublicKeyInfo. */
		int n = i2d_PUBKEY(key->pkey, &der);
		if (n <= 0) {
			ERR_clear_error();
			return NULL;
		}
		der_len = (size_t)n;
	} else {
		/* RFC 8463 4.2: p= is the raw 32-octet public key. */
		if (EVP_PKEY_get_raw_public_key(key->pkey, NULL, &der_len) != 1) {
			ERR_clear_error();
			return NULL;
		}
		der = OPENSSL_malloc(der_len);
		if (der == NULL || EVP_PKEY_get_raw_public_key(key->pkey, der, &der_len) != 1) {
			OPENSSL_free(der);
			ERR_clear_error();
			return NULL;
		}
	}
	char *b64 = xmalloc(base64_encoded_len(der_len) + 1);
	base64_encode(der, der_len, b64);
	OPENSSL_free(der);
	char *value = xasprintf("v=DKIM1; k=%s; p=%s", dkim_key_type_name(key->type), b64);
	free(b64);
	return value;
}

char *dkim_txt_zone_strings(const char *value)
{
	size_t len = strlen(value);
	size_t chunks = len == 0 ? 1 : (len + DKIM_TXT_CHUNK - 1) / DKIM_TXT_CHUNK;
	char *out = xmalloc(len + chunks * 3 + 1);
	char *p = out;

	for (size_t i = 0; i < chunks; i++) {
		size_t off = i * DKIM_TXT_CHUNK;
		size_t n = len - off < DKIM_TXT_CHUNK ? len - off : DKIM_TXT_CHUNK;
		if (i > 0)
			*p++ = ' ';
		*p++ = '"';
		memcpy(p, value + off, n);
		p += n;
		*p++ = '"';
	}
	*p = '\0';
	return out;
}
