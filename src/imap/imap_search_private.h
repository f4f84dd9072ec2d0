#ifndef POSTBOTE_IMAP_SEARCH_PRIVATE_H
#define POSTBOTE_IMAP_SEARCH_PRIVATE_H

/*
 * SEARCH's pieces, shared by imap_search.c (evaluation and the answer),
 * imap_search_parse.c (the key grammar) and imap_search_date.c (the two
 * date formats). The keys are a tree kept as an array in prefix order,
 * like the parser's arguments: a node's children follow it and span
 * counts its subtree.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imap/imap_private.h"
#include "imap/imap_search_text.h"

enum skey_type {
	SK_AND,          /* count children */
	SK_OR,           /* two children */
	SK_NOT,          /* one child */
	SK_ALL,
	SK_FLAGS_SET,    /* every flag of mask set */
	SK_FLAGS_UNSET,  /* none of mask set */
	SK_KEYWORD,      /* kw: bit index, -1 for a name the mailbox lacks */
	SK_UNKEYWORD,
	SK_NEW,
	SK_OLD,
	SK_RECENT,
	SK_LARGER,
	SK_SMALLER,
	SK_BEFORE,       /* internal date's day */
	SK_ON,
	SK_SINCE,
	SK_SENTBEFORE,   /* Date header's day */
	SK_SENTON,
	SK_SENTSINCE,
	SK_SEQ,
	SK_UID,
	SK_TEXT,         /* text: index into keys */
};

struct skey {
	enum skey_type type;
	uint32_t span;       /* nodes in the subtree, itself included */
	uint32_t count;      /* SK_AND */
	uint32_t mask;
	int kw;
	uint64_t num;
	int64_t day;
	size_t text;
	struct imap_seqset set;
};

struct imap_search {
	struct skey *k;
	size_t n, cap;
	struct imap__stext_key *text;
	size_t ntext;
	bool need_info, need_sent;

	/* the answer */
	uint32_t *hits;
	size_t nhits;
	size_t pos;          /* hits written */
	bool started;        /* "* SEARCH" written */
	size_t since_drain;
	size_t budget;
};

/* Parse the search keys args[0..n) (siblings, ANDed) into sr: the root is
 * sr->k[0]. Returns 0, or -1 with *error_r (a static text for BAD). */
int imap__search_parse(struct imap *im, struct imap_search *sr, const struct imap_arg *args, uint32_t n,
		       const char **error_r);

/* RFC 3501 9 date ("1-Feb-1994") as days since 1970-01-01. Returns 0 or
 * -1. */
int imap__search_date(const char *s, size_t len, int64_t *day_r);
/* The day of an RFC 5322 3.3 Date header value as written there (time and
 * zone disregarded, RFC 3501 6.4.4), leniently (day name optional,
 * obsolete two-digit years). Returns 0 or -1 when it is no date. */
int imap__search_sent_day(const char *value, int64_t *day_r);
/* The UTC day of a time in seconds since the epoch. */
int64_t imap__search_day_of(int64_t t);

#endif
