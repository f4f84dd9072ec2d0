#ifndef POSTBOTE_AUTH_PASSWD_H
#define POSTBOTE_AUTH_PASSWD_H

/*
 * Password hashes in crypt(3) form, made and checked with libxcrypt:
 * "$y$" yescrypt (the default), "$2b$" bcrypt and "$6$" sha512crypt for new
 * hashes, and whatever libxcrypt can still verify for imported ones.
 *
 * Every function here that hashes is deliberately slow (tens of
 * milliseconds and megabytes of memory for yescrypt): call it on the
 * threadpool, never on the loop (DESIGN.md contract 2). All are
 * thread-safe.
 */

#include <stdbool.h>

/* Hash password with a fresh random salt at the scheme's default cost.
 * scheme is a password_scheme name ("yescrypt", "bcrypt", "sha512crypt")
 * or a crypt prefix ("$y$", "$2b$", "$6$"). Returns 0 and a string the
 * caller frees in *hash_r, or -1 with *error_r (caller frees): unknown
 * scheme, a password longer than libxcrypt accepts (511 octets), or no
 * entropy. */
int passwd_hash(const char *scheme, const char *password, char **hash_r, char **error_r);

/* Check password against hash. Returns 1 when it matches, 0 when it does
 * not (including a password longer than any hash can hold), and -1 when
 * the hash is malformed (only a salt, trailing junk, bad parameters) or of
 * a method passwd_hash_check() refuses. The computed hash is compared in
 * constant time and wiped. */
int passwd_verify(const char *hash, const char *password);

/* Whether a stored or imported hash is of a method we verify. This looks
 * at the method and its prefix only (finding out more would cost a full
 * hash): passwd_verify() can still return -1 for a broken hash part.
 * Returns 0 for a
 * current method, 1 for a legacy method that still works but should be
 * replaced (sha256crypt, md5crypt, ...; crypt_checksalt's
 * CRYPT_SALT_METHOD_LEGACY), or -1 with a static reason in *reason_r: not a
 * hash libxcrypt knows, a disabled method, a hash too cheap to accept, or
 * one of the DES family (no leading '$'), which silently truncates
 * passwords to 8 characters. "!" or "*" prefixes (locked accounts) are not
 * hashes. */
int passwd_hash_check(const char *hash, const char **reason_r);

/* A fixed, valid yescrypt hash of a random password, made once at first
 * use (that first call takes as long as one hash). Verifying against it
 * costs what verifying a real account's yescrypt hash costs, so an unknown
 * user fails as slowly as a wrong password. Never matches a password. */
const char *passwd_dummy_hash(void);

#endif
