/*
 * The SEARCH key grammar (RFC 3501 6.4.4, 9 "search-key") into the key
 * tree of imap_search_private.h. Keys whose data costs something to get
 * (sizes and dates from the index, SENT* dates from the structure, text
 * from the message) are noted, so evaluation loads only what is asked.
 */
#include "imap/imap_search_private.h"

#include <string.h>
#include <strings.h>

#include "core/xalloc.h"

struct sparse {
	struct imap *im;
	struct imap_search *sr;
	const char *error;
};

static struct skey *new_key(struct imap_search *sr, enum skey_type type)
{
	if (sr->n == sr->cap) {
		sr->cap = sr->cap ? 2 * sr->cap : 16;
		sr->k = xrealloc(sr->k, sr->cap * sizeof(*sr->k));
	}
	struct skey *k = &sr->k[sr->n++];
	memset(k, 0, sizeof(*k));
	k->type = type;
	k->span = 1;
	imap_seqset_init(&k->set);
	return k;
}

/* The next sibling argument, or NULL (and the error) when none is left. */
static const struct imap_arg *take(struct sparse *sp, const struct imap_arg **cur, uint32_t *left)
{
	if (*left == 0) {
		sp->error = "Missing search argument";
		return NULL;
	}
	const struct imap_arg *a = *cur;
	*cur = imap_arg_next(a);
	(*left)--;
	return a;
}

static bool take_string(struct sparse *sp, const struct imap_arg **cur, uint32_t *left, const char **s_r,
			size_t *len_r)
{
	const struct imap_arg *a = take(sp, cur, left);

	if (a == NULL)
		return false;
	if (!imap_arg_astring(a, s_r, len_r)) {
		sp->error = "Invalid search string";
		return false;
	}
	return true;
}

static bool take_number(struct sparse *sp, const struct imap_arg **cur, uint32_t *left, uint64_t *n_r)
{
	const struct imap_arg *a = take(sp, cur, left);

	if (a == NULL)
		return false;
	if (a->type != IMAP_ARG_NUMBER) {
		sp->error = "Invalid number";
		return false;
	}
	*n_r = a->num;
	return true;
}

static bool take_date(struct sparse *sp, const struct imap_arg **cur, uint32_t *left, int64_t *day_r)
{
	const char *s;
	size_t len;

	if (!take_string(sp, cur, left, &s, &len))
		return false;
	if (imap__search_date(s, len, day_r) < 0) {
		sp->error = "Invalid date";
		return false;
	}
	return true;
}

static void add_text(struct sparse *sp, enum imap__stext_kind kind, const char *field, size_t flen,
		     const char *s, size_t len)
{
	struct imap_search *sr = sp->sr;
	struct skey *k = new_key(sr, SK_TEXT);

	k->text = sr->ntext;
	sr->text = xrealloc(sr->text, (sr->ntext + 1) * sizeof(*sr->text));
	imap__stext_init(&sr->text[sr->ntext++], kind, field ? xstrndup(field, flen) : NULL, s, len);
}

static int keyword_index(struct imap *im, const char *name)
{
	const char *const *names = im->be->mailbox_keywords(im->be->ctx, im->view.mb);

	for (int i = 0; names != NULL && i < IMAP_KEYWORDS_MAX; i++) {
		if (names[i] != NULL && strcasecmp(names[i], name) == 0)
			return i;
	}
	return -1;
}

static uint32_t system_flag(const char *name)
{
	static const struct {
		const char *name;
		uint32_t flag;
	} flags[] = { { "\\Seen", IMAP_SEEN },
		      { "\\Answered", IMAP_ANSWERED },
		      { "\\Flagged", IMAP_FLAGGED },
		      { "\\Deleted", IMAP_DELETED },
		      { "\\Draft", IMAP_DRAFT } };

	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		if (strcasecmp(name, flags[i].name) == 0)
			return flags[i].flag;
	}
	return 0;
}

static int parse_key(struct sparse *sp, const struct imap_arg **cur, uint32_t *left, unsigned depth);

/* keys ANDed: count siblings from cur. */
static int parse_and(struct sparse *sp, const struct imap_arg *cur, uint32_t left, unsigned depth)
{
	struct imap_search *sr = sp->sr;
	size_t at = sr->n;

	new_key(sr, SK_AND);
	uint32_t count = 0;
	while (left > 0) {
		if (parse_key(sp, &cur, &left, depth + 1) < 0)
			return -1;
		count++;
	}
	sr->k[at].count = count;
	sr->k[at].span = (uint32_t)(sr->n - at);
	return 0;
}

static const struct {
	const char *name;
	enum skey_type type;
	uint32_t mask;
} flag_keys[] = {
	{ "ALL", SK_ALL, 0 },
	{ "ANSWERED", SK_FLAGS_SET, IMAP_ANSWERED },
	{ "DELETED", SK_FLAGS_SET, IMAP_DELETED },
	{ "DRAFT", SK_FLAGS_SET, IMAP_DRAFT },
	{ "FLAGGED", SK_FLAGS_SET, IMAP_FLAGGED },
	{ "SEEN", SK_FLAGS_SET, IMAP_SEEN },
	{ "UNANSWERED", SK_FLAGS_UNSET, IMAP_ANSWERED },
	{ "UNDELETED", SK_FLAGS_UNSET, IMAP_DELETED },
	{ "UNDRAFT", SK_FLAGS_UNSET, IMAP_DRAFT },
	{ "UNFLAGGED", SK_FLAGS_UNSET, IMAP_FLAGGED },
	{ "UNSEEN", SK_FLAGS_UNSET, IMAP_SEEN },
	{ "NEW", SK_NEW, 0 },
	{ "OLD", SK_OLD, 0 },
	{ "RECENT", SK_RECENT, 0 },
};

static const struct {
	const char *name;
	enum skey_type type;
} date_keys[] = {
	{ "BEFORE", SK_BEFORE },         { "ON", SK_ON },         { "SINCE", SK_SINCE },
	{ "SENTBEFORE", SK_SENTBEFORE }, { "SENTON", SK_SENTON }, { "SENTSINCE", SK_SENTSINCE },
};

static const char *const header_keys[] = { "BCC", "CC", "FROM", "SUBJECT", "TO" };

static int parse_key(struct sparse *sp, const struct imap_arg **cur, uint32_t *left, unsigned depth)
{
	struct imap_search *sr = sp->sr;
	const struct imap_view *v = &sp->im->view;
	const struct imap_arg *a = take(sp, cur, left);
	const char *s, *f;
	size_t len, flen;

	if (a == NULL)
		return -1;
	if (depth > IMAP_PARSE_MAX_DEPTH * 4) {
		sp->error = "Search keys nested too deeply";
		return -1;
	}
	if (a->type == IMAP_ARG_LIST) {
		if (a->count == 0) {
			sp->error = "Empty search key list";
			return -1;
		}
		return parse_and(sp, a + 1, a->count, depth);
	}
	if (a->type != IMAP_ARG_ATOM && a->type != IMAP_ARG_NUMBER) {
		sp->error = "Invalid search key";
		return -1;
	}
	const char *name = a->str;
	if ((name[0] >= '0' && name[0] <= '9') || name[0] == '*') {
		/* RFC 3501 6.4.4: a sequence set */
		struct skey *k = new_key(sr, SK_SEQ);
		return imap_seqset_parse(&k->set, a->str, a->len, (uint32_t)v->n, &sp->error);
	}
	for (size_t i = 0; i < sizeof(flag_keys) / sizeof(flag_keys[0]); i++) {
		if (strcasecmp(name, flag_keys[i].name) == 0) {
			new_key(sr, flag_keys[i].type)->mask = flag_keys[i].mask;
			return 0;
		}
	}
	for (size_t i = 0; i < sizeof(date_keys) / sizeof(date_keys[0]); i++) {
		if (strcasecmp(name, date_keys[i].name) == 0) {
			int64_t day;
			if (!take_date(sp, cur, left, &day))
				return -1;
			new_key(sr, date_keys[i].type)->day = day;
			if (date_keys[i].type >= SK_SENTBEFORE)
				sr->need_sent = true;
			else
				sr->need_info = true;
			return 0;
		}
	}
	for (size_t i = 0; i < sizeof(header_keys) / sizeof(header_keys[0]); i++) {
		if (strcasecmp(name, header_keys[i]) == 0) {
			if (!take_string(sp, cur, left, &s, &len))
				return -1;
			add_text(sp, IMAP__STEXT_HEADER, header_keys[i], strlen(header_keys[i]), s, len);
			return 0;
		}
	}
	if (strcasecmp(name, "HEADER") == 0) {
		if (!take_string(sp, cur, left, &f, &flen) || !take_string(sp, cur, left, &s, &len))
			return -1;
		add_text(sp, IMAP__STEXT_HEADER, f, flen, s, len);
		return 0;
	}
	if (strcasecmp(name, "BODY") == 0 || strcasecmp(name, "TEXT") == 0) {
		if (!take_string(sp, cur, left, &s, &len))
			return -1;
		add_text(sp, strcasecmp(name, "BODY") == 0 ? IMAP__STEXT_BODY : IMAP__STEXT_TEXT, NULL, 0, s, len);
		return 0;
	}
	if (strcasecmp(name, "KEYWORD") == 0 || strcasecmp(name, "UNKEYWORD") == 0) {
		const struct imap_arg *kw = take(sp, cur, left);
		if (kw == NULL)
			return -1;
		enum skey_type type = strcasecmp(name, "KEYWORD") == 0 ? SK_KEYWORD : SK_UNKEYWORD;
		if (kw->type == IMAP_ARG_FLAG && system_flag(kw->str) != 0) {
			/* A system flag by its name: the same as SEEN &c. */
			new_key(sr, type == SK_KEYWORD ? SK_FLAGS_SET : SK_FLAGS_UNSET)->mask = system_flag(kw->str);
			return 0;
		}
		if (kw->type != IMAP_ARG_ATOM && kw->type != IMAP_ARG_NUMBER) {
			sp->error = "Invalid keyword";
			return -1;
		}
		new_key(sr, type)->kw = keyword_index(sp->im, kw->str);
		return 0;
	}
	if (strcasecmp(name, "LARGER") == 0 || strcasecmp(name, "SMALLER") == 0) {
		uint64_t num;
		if (!take_number(sp, cur, left, &num))
			return -1;
		new_key(sr, strcasecmp(name, "LARGER") == 0 ? SK_LARGER : SK_SMALLER)->num = num;
		sr->need_info = true;
		return 0;
	}
	if (strcasecmp(name, "UID") == 0) {
		const struct imap_arg *set = take(sp, cur, left);
		if (set == NULL)
			return -1;
		if (set->type != IMAP_ARG_ATOM && set->type != IMAP_ARG_NUMBER) {
			sp->error = "Invalid UID set";
			return -1;
		}
		struct skey *k = new_key(sr, SK_UID);
		return imap_seqset_parse(&k->set, set->str, set->len, v->n ? v->msgs[v->n - 1].uid : 0,
					 &sp->error);
	}
	if (strcasecmp(name, "NOT") == 0) {
		size_t at = sr->n;
		new_key(sr, SK_NOT);
		if (parse_key(sp, cur, left, depth + 1) < 0)
			return -1;
		sr->k[at].span = (uint32_t)(sr->n - at);
		return 0;
	}
	if (strcasecmp(name, "OR") == 0) {
		size_t at = sr->n;
		new_key(sr, SK_OR);
		if (parse_key(sp, cur, left, depth + 1) < 0 || parse_key(sp, cur, left, depth + 1) < 0)
			return -1;
		sr->k[at].span = (uint32_t)(sr->n - at);
		return 0;
	}
	sp->error = "Unknown search key";
	return -1;
}

int imap__search_parse(struct imap *im, struct imap_search *sr, const struct imap_arg *args, uint32_t n,
		       const char **error_r)
{
	struct sparse sp = { .im = im, .sr = sr, .error = NULL };

	if (parse_and(&sp, args, n, 0) < 0) {
		*error_r = sp.error ? sp.error : "Invalid search";
		return -1;
	}
	return 0;
}
