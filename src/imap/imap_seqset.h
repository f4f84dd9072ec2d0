#ifndef POSTBOTE_IMAP_SEQSET_H
#define POSTBOTE_IMAP_SEQSET_H

/*
 * IMAP sequence sets (RFC 3501 9 "sequence-set"): "1,3:5,7:*,*" for
 * message sequence numbers or UIDs.
 *
 * Parsing resolves "*" against the largest number in use (the message
 * count, or the highest UID), so a set is plain ranges afterwards. A range
 * may be given in either order ("5:3" is "3:5", RFC 3501 9), which also makes
 * "n:*" with n above the largest number mean the last message, as the RFC
 * wants for UIDs. With max 0 (an empty mailbox) "*" stands for 0; a
 * command checks that itself (a range containing 0 matches nothing real).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct imap_seqrange {
	uint32_t lo, hi;        /* lo <= hi */
};

struct imap_seqset {
	struct imap_seqrange *r;  /* in the order given, or sorted and
				   * disjoint after imap_seqset_normalize() */
	size_t count;
	size_t cap;
	bool normalized;
};

/* An empty set; nothing allocated. */
void imap_seqset_init(struct imap_seqset *set);
void imap_seqset_free(struct imap_seqset *set);

/* Parse s[0..len) into set (replacing what it held), "*" meaning star.
 * Returns 0, or -1 with *error_r a short text for a BAD response ("0" is
 * not a message number, a number past 2^32-1, an empty part, another
 * character) and the set empty. The set holds at most len/2 + 1 ranges
 * (allocation aborts on failure). */
int imap_seqset_parse(struct imap_seqset *set, const char *s, size_t len, uint32_t star,
		      const char **error_r);

/* Sort the ranges and merge overlapping and adjacent ones. */
void imap_seqset_normalize(struct imap_seqset *set);

/* Whether n is in the set (a binary search once normalized). */
bool imap_seqset_contains(const struct imap_seqset *set, uint32_t n);

/* How many numbers the set holds (normalizes it first). */
uint64_t imap_seqset_size(struct imap_seqset *set);

/* Iterate in ascending order without repeats (normalizes it first):
 * start with *cursor = 0; each call sets *n_r and returns true, false at
 * the end. */
bool imap_seqset_next(struct imap_seqset *set, uint64_t *cursor, uint32_t *n_r);

#endif
