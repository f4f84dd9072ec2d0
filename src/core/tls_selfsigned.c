/*
 * A self-signed certificate so that a fresh install speaks TLS at once
 * (STARTTLS, implicit TLS) before the admin brings a real certificate.
 *
 * The key must never exist half-written or readable by others: it is
 * serialised in memory, written to a new temporary file created with
 * O_EXCL and mode 0600, fsynced, and renamed into place; then the same for
 * the certificate, then the directory is fsynced (the maildir order: tmp,
 * fsync, rename, fsync dir). A crash leaves either the old state or the new
 * one; a stray temporary file is harmless and replaced next time.
 */

#include "core/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "core/xalloc.h"

#define SELFSIGNED_DAYS (10 * 365 + 3)  /* ten years, leap days included */
#define SELFSIGNED_CN_MAX 64            /* RFC 5280 ub-common-name */

static char *selfsigned_openssl_error(const char *what)
{
	char buf[256];
	unsigned long e = ERR_get_error();

	ERR_clear_error();
	if (e == 0)
		return xasprintf("%s: unknown error", what);
	ERR_error_string_n(e, buf, sizeof(buf));
	return xasprintf("%s: %s", what, buf);
}

/* mkdir -p; directories we create get mode 0700, existing ones are left
 * as they are. */
static int selfsigned_mkdirs(const char *dir, char **error_r)
{
	char *path = xstrdup(dir);
	size_t len = strlen(path);

	for (size_t i = 1; i <= len; i++) {
		if (path[i] != '/' && path[i] != '\0')
			continue;
		char saved = path[i];
		path[i] = '\0';
		if (mkdir(path, 0700) < 0 && errno != EEXIST) {
			/* EACCES or EROFS on a parent that is already there
			 * is no reason to stop. */
			int err = errno;
			struct stat st;
			if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
				*error_r = xasprintf("mkdir %s: %s", path, strerror(err));
				free(path);
				return -1;
			}
		}
		path[i] = saved;
	}
	free(path);

	struct stat st;
	if (stat(dir, &st) < 0) {
		*error_r = xasprintf("%s: %s", dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		*error_r = xasprintf("%s: not a directory", dir);
		return -1;
	}
	return 0;
}

/* 1 if path exists, 0 if not, -1 on another error. */
static int selfsigned_exists(const char *path, char **error_r)
{
	struct stat st;

	if (stat(path, &st) == 0)
		return 1;
	if (errno == ENOENT)
		return 0;
	*error_r = xasprintf("%s: %s", path, strerror(errno));
	return -1;
}

static bool selfsigned_is_localhost(const char *hostname)
{
	size_t len = strlen(hostname);

	if (strcasecmp(hostname, "localhost") == 0 ||
	    strcasecmp(hostname, "localhost.localdomain") == 0)
		return true;
	/* RFC 6761 6.3: names under .localhost are loopback too. */
	return len > 10 && strcasecmp(hostname + len - 10, ".localhost") == 0;
}

static int selfsigned_add_dns(GENERAL_NAMES *gens, const char *name)
{
	GENERAL_NAME *gen = GENERAL_NAME_new();
	ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();

	if (gen == NULL || ia5 == NULL || ASN1_STRING_set(ia5, name, -1) != 1) {
		GENERAL_NAME_free(gen);
		ASN1_IA5STRING_free(ia5);
		return -1;
	}
	GENERAL_NAME_set0_value(gen, GEN_DNS, ia5);
	if (sk_GENERAL_NAME_push(gens, gen) <= 0) {
		GENERAL_NAME_free(gen);
		return -1;
	}
	return 0;
}

static int selfsigned_add_ip(GENERAL_NAMES *gens, const char *addr)
{
	GENERAL_NAME *gen = GENERAL_NAME_new();
	ASN1_OCTET_STRING *ip = a2i_IPADDRESS(addr);

	if (gen == NULL || ip == NULL) {
		GENERAL_NAME_free(gen);
		ASN1_OCTET_STRING_free(ip);
		return -1;
	}
	GENERAL_NAME_set0_value(gen, GEN_IPADD, ip);
	if (sk_GENERAL_NAME_push(gens, gen) <= 0) {
		GENERAL_NAME_free(gen);
		return -1;
	}
	return 0;
}

static bool selfsigned_is_ip(const char *name)
{
	unsigned char addr[sizeof(struct in6_addr)];
	return inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1;
}

/* RFC 5280 4.2.1.6: the names clients check. Built as structures rather
 * than from a "DNS:..." config string, so that no hostname can smuggle in
 * extra entries. */
static int selfsigned_add_san(X509 *cert, const char *hostname)
{
	GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
	int rc = -1;

	if (gens == NULL)
		return -1;
	if (selfsigned_is_ip(hostname)) {
		if (selfsigned_add_ip(gens, hostname) < 0)
			goto out;
	} else if (selfsigned_add_dns(gens, hostname) < 0) {
		goto out;
	}
	if (selfsigned_is_localhost(hostname)) {
		if ((strcasecmp(hostname, "localhost") != 0 && selfsigned_add_dns(gens, "localhost") < 0) ||
		    selfsigned_add_ip(gens, "127.0.0.1") < 0 || selfsigned_add_ip(gens, "::1") < 0)
			goto out;
	}
	if (X509_add1_ext_i2d(cert, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) == 1)
		rc = 0;
out:
	GENERAL_NAMES_free(gens);
	return rc;
}

static int selfsigned_add_ext(X509 *cert, int nid, const char *value)
{
	X509V3_CTX v3;

	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, cert, cert, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
	if (ext == NULL)
		return -1;
	int ok = X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	return ok == 1 ? 0 : -1;
}

static X509 *selfsigned_make_cert(EVP_PKEY *pkey, const char *hostname)
{
	X509 *cert = X509_new();
	BIGNUM *serial = BN_new();

	if (cert == NULL || serial == NULL)
		goto fail;
	if (X509_set_version(cert, X509_VERSION_3) != 1)
		goto fail;
	/* RFC 5280 4.1.2.2: positive, at most 20 octets; random so that a
	 * regenerated certificate never repeats issuer+serial. */
	if (BN_rand(serial, 159, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
	    BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(cert)) == NULL)
		goto fail;
	/* An hour of slack for clients whose clocks run slow. */
	if (X509_gmtime_adj(X509_getm_notBefore(cert), -3600) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(cert), SELFSIGNED_DAYS, 0, NULL) == NULL)
		goto fail;

	X509_NAME *name = X509_get_subject_name(cert);
	const char *cn = strlen(hostname) <= SELFSIGNED_CN_MAX ? hostname : "postbote";
	if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn,
				       -1, -1, 0) != 1 ||
	    X509_set_issuer_name(cert, name) != 1)
		goto fail;
	if (X509_set_pubkey(cert, pkey) != 1)
		goto fail;

	/* An end-entity certificate that clients may pin or trust directly.
	 * No keyUsage: restricting it to digitalSignature would stop OpenSSL
	 * from treating the certificate as self-signed, and then trusting the
	 * file as its own CA would fail. */
	if (selfsigned_add_ext(cert, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
	    selfsigned_add_ext(cert, NID_ext_key_usage, "serverAuth") < 0 ||
	    selfsigned_add_ext(cert, NID_subject_key_identifier, "hash") < 0 ||
	    selfsigned_add_san(cert, hostname) < 0)
		goto fail;
	if (X509_sign(cert, pkey, EVP_sha256()) <= 0)
		goto fail;
	BN_free(serial);
	return cert;
fail:
	BN_free(serial);
	X509_free(cert);
	return NULL;
}

static int selfsigned_write_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, data, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Write data to DIR/.NAME.tmp (created new with mode), fsync it, and return
 * the temporary path for the caller to rename. */
static int selfsigned_write_tmp(const char *dir, const char *name, mode_t mode, BIO *mem,
				char **tmp_r, char **error_r)
{
	char *data;
	long len = BIO_get_mem_data(mem, &data);
	char *tmp = xasprintf("%s/.%s.tmp", dir, name);

	*tmp_r = NULL;
	/* A leftover from an earlier crash: ours, and never in use. */
	if (unlink(tmp) < 0 && errno != ENOENT) {
		*error_r = xasprintf("%s: %s", tmp, strerror(errno));
		free(tmp);
		return -1;
	}
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0) {
		*error_r = xasprintf("%s: %s", tmp, strerror(errno));
		free(tmp);
		return -1;
	}
	if (len <= 0 || selfsigned_write_all(fd, data, (size_t)len) < 0 || fsync(fd) < 0) {
		*error_r = xasprintf("%s: %s", tmp, len <= 0 ? "nothing to write" : strerror(errno));
		close(fd);
		unlink(tmp);
		free(tmp);
		return -1;
	}
	if (close(fd) < 0) {
		*error_r = xasprintf("%s: %s", tmp, strerror(errno));
		unlink(tmp);
		free(tmp);
		return -1;
	}
	*tmp_r = tmp;
	return 0;
}

static int selfsigned_fsync_dir(const char *dir, char **error_r)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0 || fsync(fd) < 0) {
		*error_r = xasprintf("fsync %s: %s", dir, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static int selfsigned_generate(const char *dir, const char *hostname, const char *cert_path,
			       const char *key_path, char **error_r)
{
	EVP_PKEY *pkey = NULL;
	X509 *cert = NULL;
	/* Secure memory BIO: the key's PEM is wiped when freed. */
	BIO *key_mem = BIO_new(BIO_s_secmem());
	BIO *cert_mem = BIO_new(BIO_s_mem());
	char *key_tmp = NULL, *cert_tmp = NULL;
	int rc = -1;

	ERR_clear_error();
	if (key_mem == NULL || cert_mem == NULL) {
		*error_r = selfsigned_openssl_error("BIO_new");
		goto out;
	}
	pkey = EVP_EC_gen("P-256");
	if (pkey == NULL) {
		*error_r = selfsigned_openssl_error("P-256 key generation");
		goto out;
	}
	cert = selfsigned_make_cert(pkey, hostname);
	if (cert == NULL) {
		*error_r = selfsigned_openssl_error("self-signed certificate");
		goto out;
	}
	if (PEM_write_bio_PrivateKey(key_mem, pkey, NULL, NULL, 0, NULL, NULL) != 1 ||
	    PEM_write_bio_X509(cert_mem, cert) != 1) {
		*error_r = selfsigned_openssl_error("PEM encoding");
		goto out;
	}
	if (selfsigned_write_tmp(dir, "key.pem", 0600, key_mem, &key_tmp, error_r) < 0 ||
	    selfsigned_write_tmp(dir, "cert.pem", 0644, cert_mem, &cert_tmp, error_r) < 0)
		goto out;
	/* Key first: cert.pem appearing is what marks the pair complete. */
	if (rename(key_tmp, key_path) < 0) {
		*error_r = xasprintf("rename %s: %s", key_path, strerror(errno));
		goto out;
	}
	free(key_tmp);
	key_tmp = NULL;
	if (rename(cert_tmp, cert_path) < 0) {
		*error_r = xasprintf("rename %s: %s", cert_path, strerror(errno));
		goto out;
	}
	free(cert_tmp);
	cert_tmp = NULL;
	if (selfsigned_fsync_dir(dir, error_r) < 0)
		goto out;
	rc = 0;
out:
	if (key_tmp != NULL) {
		unlink(key_tmp);
		free(key_tmp);
	}
	if (cert_tmp != NULL) {
		unlink(cert_tmp);
		free(cert_tmp);
	}
	X509_free(cert);
	EVP_PKEY_free(pkey);
	BIO_free(key_mem);
	BIO_free(cert_mem);
	ERR_clear_error();
	return rc;
}

int tls_selfsigned_ensure(const char *dir, const char *hostname, bool *created_r, char **error_r)
{
	*created_r = false;
	*error_r = NULL;
	if (hostname == NULL || hostname[0] == '\0') {
		*error_r = xstrdup("self-signed certificate: no hostname");
		return -1;
	}
	if (dir == NULL || dir[0] == '\0') {
		*error_r = xstrdup("self-signed certificate: no directory");
		return -1;
	}
	if (selfsigned_mkdirs(dir, error_r) < 0)
		return -1;

	char *cert_path = xasprintf("%s/cert.pem", dir);
	char *key_path = xasprintf("%s/key.pem", dir);
	int rc = -1;
	int have_cert = selfsigned_exists(cert_path, error_r);
	int have_key = have_cert < 0 ? -1 : selfsigned_exists(key_path, error_r);

	if (have_cert < 0 || have_key < 0)
		goto out;
	if (have_cert && have_key) {
		rc = 0;
		goto out;
	}
	/* Neither, or only one (an interrupted first run): make a new pair. */
	if (selfsigned_generate(dir, hostname, cert_path, key_path, error_r) < 0)
		goto out;
	*created_r = true;
	rc = 0;
out:
	free(cert_path);
	free(key_path);
	return rc;
}
