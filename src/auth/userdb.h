#ifndef POSTBOTE_AUTH_USERDB_H
#define POSTBOTE_AUTH_USERDB_H

/*
 * Accounts and aliases in the shared LMDB environment (core/db.h): the
 * "users" and "aliases" databases, whose record formats this module owns.
 *
 * Keys are addresses, lowercased (ASCII only; UTF-8 octets are kept as
 * they are): "local@domain", and for a catch-all alias "@domain". An
 * address is valid when it has
 *  - at most 254 octets (RFC 5321 4.5.3.1.3 less the angle brackets),
 *  - exactly one '@', a local part of 1..64 octets (RFC 5321 4.5.3.1.1)
 *    with no control characters, spaces or the specials "(),:;<>[\]" and
 *    '"', no '/', and no leading, trailing or doubled '.' (the local part
 *    names a directory, DATA/mail/DOMAIN/LOCAL),
 *  - a domain that is a hostname: dot-separated labels of 1..63 letters,
 *    digits and '-' (not first or last), at most 253 octets, no trailing
 *    dot.
 *
 * Record of an account (users database), version 1, little-endian:
 *   u8  version = 1
 *   u8  flags: bit 0 = disabled; other bits zero
 *   u64 created, Unix time in seconds
 *   u64 quota_bytes (0 = the configured default, UINT64_MAX = unlimited)
 *   u32 quota_messages (0 = the configured default, UINT32_MAX = unlimited)
 *   u16 length, then the crypt(3) password hash (no NUL)
 *   u16 length, then the Maildir path (no NUL); length 0 = the default
 * Readers ignore bytes after these fields, so fields can be appended
 * without a new version; a record of another version is an error.
 *
 * Record of an alias (aliases database), version 1:
 *   u8 version = 1, then each target address followed by a NUL.
 * At least one and at most USERDB_ALIAS_TARGETS_MAX targets, in the order
 * they were added, no duplicates.
 *
 * Every function opens its own short transaction. The server calls those
 * that write (put, add, del, modify, alias_add, alias_del) only off the
 * loop; reads are cheap enough for either side. LMDB's one-writer lock
 * spans processes, so the CLI can run beside the server.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/db.h"

#define USERDB_ADDRESS_MAX 254
#define USERDB_LOCAL_MAX 64
#define USERDB_ALIAS_TARGETS_MAX 1000
/* How deep alias expansion goes (alias -> alias -> ... -> account). */
#define USERDB_ALIAS_DEPTH_MAX 8
#define USERDB_QUOTA_UNLIMITED_BYTES UINT64_MAX
#define USERDB_QUOTA_UNLIMITED_MESSAGES UINT32_MAX

struct user {
	char *address;          /* the key: lowercased local@domain */
	char *password_hash;    /* crypt(3) string */
	bool disabled;          /* may not log in; mail is still delivered */
	char *maildir;          /* NULL = DATA/mail/DOMAIN/LOCAL; else absolute or relative to DATA */
	uint64_t quota_bytes;   /* 0 = cfg->quota_bytes; USERDB_QUOTA_UNLIMITED_BYTES = none */
	uint32_t quota_messages;/* 0 = cfg->quota_messages; USERDB_QUOTA_UNLIMITED_MESSAGES = none */
	int64_t created;        /* Unix time; userdb_add/put set it when 0 */
};

/* Free what *u owns (wiping the hash) and zero it. NULL members are fine. */
void user_free(struct user *u);

/* Check an address and return its key: lowercased, in a string the caller
 * frees. Returns 0, or -1 with a static reason in *reason_r. */
int userdb_address_normalize(const char *address, char **key_r, const char **reason_r);

/* As userdb_address_normalize, but also accepts a catch-all "@domain". */
int userdb_alias_normalize(const char *alias, char **key_r, const char **reason_r);

/* Whether a hostname is valid as the domain of an address (rules above). */
bool userdb_domain_valid(const char *domain, size_t len);

/* Whether domain (any case) is one of cfg->domains. */
bool userdb_domain_is_local(const struct config *cfg, const char *domain);

/* The domain part of an address or alias key (after the '@'). */
const char *userdb_address_domain(const char *address);

/* ---- Accounts ---- */

/* Look up an account by address (any case). Returns 0 with *u_r filled
 * (free with user_free), 1 when there is no such account or the address is
 * invalid (*u_r zeroed), or -1 with *error_r (caller frees) on a database
 * error or an unreadable record. */
int userdb_get(struct db *db, const char *address, struct user *u_r, char **error_r);

/* Store an account under u->address (normalized here), replacing any
 * existing one. u->password_hash must be set. created = 0 becomes now.
 * Returns 0, or -1 with *error_r. */
int userdb_put(struct db *db, const struct user *u, char **error_r);

/* As userdb_put, but only when no account has that address: returns 0,
 * 1 when it exists (nothing changed), or -1 with *error_r. */
int userdb_add(struct db *db, const struct user *u, char **error_r);

/* Delete an account (its Maildir is left alone). Returns 0, 1 when there
 * is no such account, or -1 with *error_r. */
int userdb_del(struct db *db, const char *address, char **error_r);

/* Read, change and write back one account in a single write transaction.
 * fn gets the current record and changes it in place (it may replace
 * strings it frees with xstrdup'd ones; the address must stay); returning
 * non-zero aborts without writing. Returns 0, 1 when there is no such
 * account, 2 when fn aborted, or -1 with *error_r. */
int userdb_modify(struct db *db, const char *address, int (*fn)(struct user *u, void *ctx),
		  void *ctx, char **error_r);

/* Set the password hash of each addresses[i] to hashes[i], creating the
 * accounts that do not exist, all in one transaction (all or nothing).
 * Addresses must already be valid. Returns 0 and the counts, or -1 with
 * *error_r. */
int userdb_import(struct db *db, char *const *addresses, char *const *hashes, size_t n,
		  size_t *added_r, size_t *updated_r, char **error_r);

/* Call cb for every account in address order, inside one read transaction
 * (cb must not write to the database). The struct is valid only during
 * the call. cb returns 0 to go on, anything else to stop. Returns 0, or -1
 * with *error_r. */
int userdb_list(struct db *db, int (*cb)(const struct user *u, void *ctx), void *ctx, char **error_r);

/* The Maildir of an account as the server opens it: u->maildir when it is
 * absolute, DATA/u->maildir when relative, else DATA/mail/DOMAIN/LOCAL
 * (DATA = cfg->data_dir, itself absolute or relative to the working
 * directory). Returns a string the caller frees. */
char *userdb_maildir_path(const struct config *cfg, const struct user *u);

/* The limits that apply to an account: its own, else the configured
 * default. 0 = no limit. */
uint64_t userdb_quota_bytes(const struct config *cfg, const struct user *u);
uint64_t userdb_quota_messages(const struct config *cfg, const struct user *u);

/* ---- Aliases ---- */

/* Add target (an address, local or not) to alias (an address or
 * "@domain"). Returns 0, 1 when the target was already there, or -1 with
 * *error_r (invalid alias or target, too many targets, database error). */
int alias_add(struct db *db, const char *alias, const char *target, char **error_r);

/* Remove target from alias, or the whole alias when target is NULL.
 * Returns 0, 1 when there was no such alias or target, or -1 with
 * *error_r. */
int alias_del(struct db *db, const char *alias, const char *target, char **error_r);

/* The targets of an alias: 0 with a NULL-terminated array of n strings
 * (free with alias_targets_free), 1 when there is no such alias, or -1
 * with *error_r. */
int alias_get(struct db *db, const char *alias, char ***targets_r, size_t *n_r, char **error_r);
void alias_targets_free(char ***targets);

/* Call cb for every alias in key order ("@domain" catch-alls sort first),
 * inside one read transaction; the strings are valid only during the call.
 * cb returns 0 to go on, anything else to stop. Returns 0, or -1 with
 * *error_r. */
int alias_list(struct db *db, int (*cb)(const char *alias, const char *const *targets, size_t n, void *ctx),
	       void *ctx, char **error_r);

/* ---- Where mail for an address goes ---- */

enum resolve_status {
	RESOLVE_FOUND = 0,   /* accounts and/or external hold at least one address */
	RESOLVE_NOT_LOCAL,   /* the domain is not one of ours: relay (if allowed) */
	RESOLVE_NOT_FOUND,   /* our domain, but no account, alias or catch-all */
	RESOLVE_LOOP,        /* only alias loops or chains deeper than USERDB_ALIAS_DEPTH_MAX */
	RESOLVE_INVALID,     /* not an address userdb accepts */
};

struct resolved {
	enum resolve_status status;
	bool local;          /* the domain is local (FOUND, NOT_FOUND, LOOP) */
	char **accounts;     /* account addresses to deliver to, deduplicated */
	size_t n_accounts;
	char **external;     /* addresses outside our domains, for relay, deduplicated */
	size_t n_external;
};

/* Resolve a recipient address: lowercase it; if its domain is not local,
 * NOT_LOCAL. Otherwise, in order: an account of that address; an alias of
 * it; the same two with "+tag" stripped from the local part
 * (cfg->recipient_delimiter, when set and the local part does not start
 * with it); the domain's catch-all "@domain"; else NOT_FOUND. Alias
 * targets that are local are resolved the same way (account, alias,
 * delimiter; never a catch-all), down to USERDB_ALIAS_DEPTH_MAX levels,
 * each alias expanded at most once; targets in other domains are kept as
 * external. A local target that resolves to nothing is dropped (and
 * logged). Returns 0 with *r filled (free with resolved_free), or -1 with
 * *error_r on a database error (a temporary failure). */
int userdb_resolve(struct db *db, const struct config *cfg, const char *address, struct resolved *r,
		   char **error_r);
void resolved_free(struct resolved *r);

#endif
