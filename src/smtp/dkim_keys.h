#ifndef POSTBOTE_SMTP_DKIM_KEYS_H
#define POSTBOTE_SMTP_DKIM_KEYS_H

/*
 * DKIM signing keys: where they live, how they are made and loaded, and the
 * DNS TXT record that publishes each one.
 *
 * Layout: DATA/dkim/DOMAIN/SELECTOR.key, one PEM private key per file
 * (PKCS#8, as `openssl genpkey` writes it; the traditional "RSA PRIVATE
 * KEY" form is read too). The key type comes from the key itself: RSA
 * (a=rsa-sha256, RFC 6376; at least 1024 bits, RFC 8301) or Ed25519
 * (a=ed25519-sha256, RFC 8463). Every key in a domain's folder signs the
 * domain's mail, so a domain may have one key of each type, or an old and a
 * new key during a rotation. Files whose names are not SELECTOR.key (such
 * as SELECTOR.key.off) are ignored.
 *
 * These functions block (they read and write files) and are meant for the
 * CLI and for start-up and reload, never for the loop thread.
 */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <openssl/evp.h>

enum dkim_key_type {
	DKIM_KEY_RSA = 0,
	DKIM_KEY_ED25519,
};

/* The smallest RSA key accepted (RFC 8301 3.2) and the size keygen makes. */
#define DKIM_RSA_BITS_MIN 1024
#define DKIM_RSA_BITS_DEFAULT 2048
#define DKIM_RSA_BITS_MAX 4096
/* A private key file larger than this is not a DKIM key. */
#define DKIM_KEY_FILE_MAX (64 * 1024)
/* DNS TXT character-strings are at most 255 octets (RFC 1035 3.3.14). */
#define DKIM_TXT_CHUNK 255

struct dkim_key {
	char *selector;
	enum dkim_key_type type;
	unsigned bits;          /* RSA modulus size; 256 for Ed25519 */
	EVP_PKEY *pkey;         /* owned */
};

/* The keys of one domain, sorted by selector. */
struct dkim_keyset {
	char *domain;           /* lower case */
	struct dkim_key *keys;
	size_t n_keys;
};

/* "rsa" / "ed25519": the k= value and the --type name. */
const char *dkim_key_type_name(enum dkim_key_type type);
/* "rsa-sha256" / "ed25519-sha256": the a= value. */
const char *dkim_key_algorithm(enum dkim_key_type type);
/* Returns 0 and the type for "rsa" or "ed25519", else -1. */
int dkim_key_type_parse(const char *name, enum dkim_key_type *type_r);

/* A selector is one or more DNS labels (letters, digits, '-', not at either
 * end of a label; labels of at most 63 octets; dots between them), at most
 * 63 octets in all here so that it is also a safe file name. */
bool dkim_selector_valid(const char *selector);
/* A domain name as the config accepts it (labels of letters, digits and
 * '-', at most 253 octets). */
bool dkim_domain_valid(const char *domain);

/* DATA/dkim/DOMAIN and DATA/dkim/DOMAIN/SELECTOR.key (caller frees). */
char *dkim_key_dir(const char *data_dir, const char *domain);
char *dkim_key_path(const char *data_dir, const char *domain, const char *selector);

/* Make a new key: RSA of bits bits (DKIM_RSA_BITS_MIN..MAX; 0 = default),
 * or Ed25519 (bits ignored). Returns 0 with *key_r filled (selector
 * copied), or -1 with *error_r (caller frees). */
int dkim_key_generate(enum dkim_key_type type, unsigned bits, const char *selector,
		      struct dkim_key *key_r, char **error_r);

/* Write the key's private half as PEM (PKCS#8) to path, mode 0600, through
 * a temporary file in the same directory, fsynced. Missing directories are
 * made: the key's folder and its parent 0700, levels above them 0750. An
 * existing file is replaced only when overwrite, else the call fails with
 * *exists_r = true. When
 * owner_uid is not (uid_t)-1 the file and the folders made are given to
 * that user and group. Returns 0, or -1 with *error_r (caller frees). */
int dkim_key_write(const struct dkim_key *key, const char *path, bool overwrite,
		   uid_t owner_uid, gid_t owner_gid, bool *exists_r, char **error_r);

/* Read a PEM private key from path and check that it can sign DKIM: RSA of
 * at least DKIM_RSA_BITS_MIN bits, or Ed25519. Returns 0 with *key_r
 * (selector copied), or -1 with *error_r naming the file. */
int dkim_key_load(const char *path, const char *selector, struct dkim_key *key_r, char **error_r);

/* As dkim_key_load(), from len octets of PEM text in memory (which need
 * not be NUL-terminated); *error_r does not name a file. */
int dkim_key_from_pem(const char *pem, size_t len, const char *selector, struct dkim_key *key_r,
		      char **error_r);

/* Load every DATA/dkim/DOMAIN/SELECTOR.key. A missing folder is no error:
 * the set is then empty. Any unreadable or unusable key file is an error
 * (-1 with *error_r naming it): a key the admin put there and that
 * silently did not sign would be worse. */
int dkim_keyset_load(const char *data_dir, const char *domain, struct dkim_keyset *set_r,
		     char **error_r);
void dkim_keyset_free(struct dkim_keyset *set);
void dkim_key_free(struct dkim_key *key);

/* The keys of every local domain, loaded once (at start, on reload) and
 * then only read: OpenSSL 3 lets several threads sign with one EVP_PKEY at
 * once, so worker threads may share a ring the loop thread does not
 * change while they run. */
struct dkim_keyring {
	struct dkim_keyset *sets;   /* only domains with at least one key */
	size_t n_sets;
};

/* dkim_keyset_load() for each of the domains. Returns 0, or -1 with
 * *error_r from the first domain that fails (the ring is then empty). */
int dkim_keyring_load(const char *data_dir, char *const *domains, size_t n_domains,
		      struct dkim_keyring *ring_r, char **error_r);
/* The keys of domain (compared case-insensitively), or NULL when it has
 * none. */
const struct dkim_keyset *dkim_keyring_find(const struct dkim_keyring *ring, const char *domain);
void dkim_keyring_free(struct dkim_keyring *ring);

/* The TXT record value that publishes the key at
 * SELECTOR._domainkey.DOMAIN (RFC 6376 3.6.1): "v=DKIM1; k=rsa; p=BASE64"
 * with the DER SubjectPublicKeyInfo of an RSA key, or "v=DKIM1;
 * k=ed25519; p=BASE64" with the raw 32-octet Ed25519 public key (RFC 8463
 * 4.2). NULL only when OpenSSL fails. Caller frees. */
char *dkim_key_txt_value(const struct dkim_key *key);

/* value as zone-file TXT data: character-strings of at most
 * DKIM_TXT_CHUNK octets, each in double quotes, separated by a blank
 * (resolvers join them again, RFC 7208 3.3 and RFC 6376 3.6.2.2). value
 * must not contain '"' or '\\'. Caller frees. */
char *dkim_txt_zone_strings(const char *value);

#endif
