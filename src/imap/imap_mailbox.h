#ifndef POSTBOTE_IMAP_IMAP_MAILBOX_H
#define POSTBOTE_IMAP_IMAP_MAILBOX_H

/*
 * The pure pieces of the mailbox and message-changing commands
 * (imap_mailbox.c, imap_list.c, imap_append.c, imap_modify.c), apart so
 * the unit tests can drive them without a session.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

struct imap;

/* The hierarchy delimiter of every mailbox name (RFC 3501 6.3.8). */
#define IMAP_DELIM '/'

/* Whether a LIST/LSUB pattern (RFC 3501 6.3.8: "*" matches anything, "%"
 * anything but the delimiter) matches name. The first inbox_len bytes of
 * the name are compared without regard to case (5 for "INBOX" and the
 * names under it, else 0), since INBOX is INBOX in any case. Time is
 * O(pattern * name), memory O(name). */
bool imap_list_match(const char *pattern, size_t plen, const char *name, size_t nlen, size_t inbox_len);

/* How many leading bytes of a mailbox name are the INBOX part that
 * matches without regard to case: 5 for "INBOX" and "INBOX/...", else 0. */
size_t imap_list_inbox_len(const char *name, size_t len);

/* The canonical pattern of LIST reference + pattern (RFC 3501 6.3.8):
 * their concatenation, with one delimiter dropped when the reference ends
 * in one and the pattern starts with one. Allocated. */
char *imap_list_join(const char *ref, size_t rlen, const char *pattern, size_t plen);

/* Parse an APPEND date-time (RFC 3501 9: "dd-Mon-yyyy hh:mm:ss +zzzz", the
 * day also as " d" or "d") into seconds since the epoch. Returns 0, or -1
 * when it is not a valid date and time. */
int imap_date_time_parse(const char *s, size_t len, int64_t *t_r);

/* Append the numbers in the order given as a compact set for COPYUID and
 * APPENDUID (RFC 4315 3): each run of consecutive ascending numbers as
 * "a:b", runs joined with ",". Returns 0, or -1 if the buffer is full. */
int imap_uidset_write(struct buf *out, const uint32_t *uids, size_t n);

/* The UIDs of the selected mailbox's messages that have \Deleted now (the
 * index's flags, not the view's copy, which may be behind another
 * session's STORE), among the view indexes idx[0..nidx) or all of the view
 * when idx is NULL; ascending. *uids_r is allocated (NULL when *n_r is 0).
 * For EXPUNGE, UID EXPUNGE and CLOSE (imap_modify.c). */
void imap__deleted_uids(struct imap *im, const uint32_t *idx, size_t nidx, uint32_t **uids_r, size_t *n_r);

#endif
