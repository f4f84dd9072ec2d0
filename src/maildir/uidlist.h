#ifndef POSTBOTE_MAILDIR_UIDLIST_H
#define POSTBOTE_MAILDIR_UIDLIST_H

/*
 * Dovecot's dovecot-uidlist file, so a Maildir taken over from Dovecot keeps
 * its UIDVALIDITY and UIDs, and a user can move back. Version 3, as Dovecot
 * 1.1 and later write it:
 *
 *   3 V1700000000 N43 G8f2c0e5a2b6d4e1f9a3b7c5d1e0f2a4b
 *   1 :1700000000.M20046P2137.host,S=1234,W=1256
 *   2 W2210 GA7d... :1700000100.M1P2.host
 *
 * The header is the version and space-separated fields, each a key letter
 * and its value: V the UIDVALIDITY, N the next UID, G the mailbox GUID (32
 * hex digits); other fields are kept as they are. Each message line is its
 * UID, optional extension fields (key 'A'..'Z' and a value: S size, W
 * vsize, G message GUID, P POP3 UIDL, O POP3 order), then ':' and the base
 * of its file name (the name without ":2,..."). UIDs ascend.
 *
 * Dovecot appends lines for new messages without rewriting the header, so
 * the next UID is max(N, last UID + 1). Version 1 ("1 <uidvalidity>
 * <next uid>", then "<uid> <file name>"; also Courier's courierimapuiddb)
 * is read too; writing always makes version 3.
 *
 * Changes are made under "dovecot-uidlist.lock", created with O_EXCL as
 * Dovecot's own lock is (a lock older than UIDLIST_LOCK_STALE_SECS is taken
 * as stale and replaced): a rewrite writes the lock file and renames it
 * over the list, an append holds it while appending.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define UIDLIST_NAME "dovecot-uidlist"
/* Dovecot's MAILDIR_UIDLIST_LOCK_STALE_TIMEOUT. */
#define UIDLIST_LOCK_STALE_SECS 120
/* Longest line accepted (a file name is at most 255 octets; the rest is
 * room for extension fields). */
#define UIDLIST_LINE_MAX 8192
/* Longest base: a file name is at most NAME_MAX octets. */
#define UIDLIST_BASE_MAX 255
/* Largest file uidlist_read() accepts (about two million messages). */
#define UIDLIST_FILE_MAX (256u * 1024 * 1024)

struct uidlist_entry {
	uint32_t uid;
	char *base;             /* file name up to its ':' (owned) */
	uint64_t size, vsize;   /* the S and W fields */
	bool has_size, has_vsize;
	/* Other extension fields (G, P, O, ...) verbatim, space-separated,
	 * or NULL (owned). Kept so a rewrite loses nothing Dovecot wrote. */
	char *ext;
};

struct uidlist {
	uint32_t uidvalidity;   /* 0 only in a list that was never set up */
	uint32_t next_uid;      /* always > the last entry's uid */
	char guid[33];          /* 32 hex digits, or "" when the file had none */
	struct uidlist_entry *entries;  /* ascending uid */
	size_t n, cap;
	char *extra_header;     /* unknown header fields verbatim, or NULL */
	unsigned version;       /* 1 or 3: the format the list was read from */

	/* Private: base -> entry hash index, built on first lookup. */
	size_t *index;          /* entry position + 1; 0 = empty slot */
	size_t index_cap;       /* power of two, or 0 when not built */
};

/* A fresh, empty list: the given uidvalidity (0: uidlist_new_uidvalidity()),
 * next_uid 1, a new random GUID. Free with uidlist_free(). */
void uidlist_init(struct uidlist *ul, uint32_t uidvalidity);

/* Free what the list owns and zero it (it may be initialised again). */
void uidlist_free(struct uidlist *ul);

/* A new UIDVALIDITY as Dovecot makes one: the current time in seconds. */
uint32_t uidlist_new_uidvalidity(void);

/* Fill guid_r with 32 random lowercase hex digits and a NUL. */
void uidlist_generate_guid(char guid_r[33]);

/* Parse the len octets of text (need not be NUL-terminated; never read
 * past len). Returns 0 with *ul filled (free with uidlist_free()), or -1
 * with *ul zeroed and *error_r = "line N: reason" (caller frees).
 *
 * Refused: an empty text or unknown version, a header without V or N (or
 * with 0 in either, or a G that is not 32 hex digits), a message line whose
 * uid is 0, not above the one before, or not a number, a line without
 * ':' and a file name (v3), a file name with '/' or (up to its ':')
 * longer than UIDLIST_BASE_MAX, a line longer than
 * UIDLIST_LINE_MAX, a NUL or CR anywhere.
 * Tolerated as Dovecot tolerates them: extension fields whose key is not
 * 'A'..'Z' (dropped), a malformed S or W value (dropped), a file name that
 * still carries its ":2,..." info (cut at the ':'), a base listed twice
 * (the later uid wins, as in Dovecot), and a last line without its LF (an
 * append torn by a crash: ignored, but next_uid is kept above its uid). */
int uidlist_parse(const char *text, size_t len, struct uidlist *ul, char **error_r);

/* Read and parse the file at path. A missing file is not an error: 0 with
 * *missing_r = true and *ul zeroed. Otherwise 0 with *missing_r = false,
 * or -1 with *error_r = "PATH: line N: reason" or "PATH: reason" (caller
 * frees). Files above UIDLIST_FILE_MAX are refused. Blocking. */
int uidlist_read(const char *path, struct uidlist *ul, bool *missing_r, char **error_r);

/* The list as version 3 text (header N = max(next_uid, last uid + 1)).
 * Returns a new string (caller frees), *len_r its length. */
char *uidlist_format(const struct uidlist *ul, size_t *len_r);

/* Replace the file at path with ul: create "PATH.lock" with O_EXCL, write
 * the list into it, fsync it when durable, rename it over path (and fsync
 * the directory when durable). The new file keeps the old one's mode
 * (0600 for a first one). Returns 0, or -1 with *error_r (caller frees);
 * errno is EWOULDBLOCK when another process holds a lock younger than
 * UIDLIST_LOCK_STALE_SECS (try again later). Refuses a list whose
 * uidvalidity is 0. Blocking. */
int uidlist_write(const char *path, const struct uidlist *ul, bool durable, char **error_r);

/* Append lines for n entries (ascending uids, bases as for uidlist_add())
 * to the file at path, holding "PATH.lock" meanwhile so a concurrent
 * rewrite cannot lose them. The cheap path at delivery: one write, no
 * rename. A missing or empty file is created with hdr's header (its
 * uidvalidity, next_uid, guid, extra header; not its entries). A last
 * line without LF (an earlier append torn by a crash, which readers
 * ignore) is cut off first so it cannot glue onto ours. The caller makes
 * sure the uids are above every uid already in the file and above a torn
 * line's (the next_uid of a fresh uidlist_read() is). fsyncs when
 * durable. Returns 0, or -1 with *error_r (caller frees), errno EWOULDBLOCK
 * as for uidlist_write(). Blocking. */
int uidlist_append(const char *path, const struct uidlist_entry *entries, size_t n, const struct uidlist *hdr,
		   bool durable, char **error_r);

/* Add an entry for the base_len octets of base (its part before any ':')
 * with uid, or with next_uid when uid is 0; next_uid moves past it.
 * Returns the new entry, whose size fields and ext the caller may then set
 * (ext must be xmalloc'd; space-separated "<A-Z><value>" fields without
 * ':', CR or LF), or NULL (nothing changed) when the uid is not above the
 * last entry's or is UINT32_MAX, or the base is empty, longer than
 * UIDLIST_BASE_MAX, holds '/', CR, LF or NUL, or is already listed. The
 * pointer stays valid until the next uidlist_add() or uidlist_remove_uid(). */
struct uidlist_entry *uidlist_add(struct uidlist *ul, uint32_t uid, const char *base, size_t base_len);

/* The entry whose base equals the part of base (len octets) before its
 * first ':', or NULL. Builds the hash index on first use, hence the
 * non-const list; then O(1). The pointer stays valid until the next
 * uidlist_add() or uidlist_remove_uid(). */
const struct uidlist_entry *uidlist_find_base(struct uidlist *ul, const char *base, size_t base_len);

/* The entry with uid, or NULL (binary search). */
const struct uidlist_entry *uidlist_find_uid(const struct uidlist *ul, uint32_t uid);

/* Remove the entry with uid. Returns 0, or -1 when there is none.
 * next_uid does not go down. O(n): later entries move down, and the base
 * index is rebuilt on the next uidlist_find_base() (remove a batch, then
 * look up). */
int uidlist_remove_uid(struct uidlist *ul, uint32_t uid);

/* Folder-internal (keywords.c uses it too): replace path with the len
 * octets of data through "PATH.lock" as uidlist_write() does. */
int maildir__lockfile_replace(const char *path, const char *data, size_t len, bool durable, char **error_r);

#endif
