/*
 * The selected mailbox as the client knows it (RFC 3501 2.3.1.2, 5.2, 7.4.1).
 *
 * The client names messages by sequence number, and a number means the
 * same message until the server has told it otherwise. So changes that the
 * backend reports (imap_view_changed) are only recorded; imap_view_report
 * folds them into the view and tells the client in one go, at the end of a
 * command or at once while the client is idling. An EXPUNGE is held back
 * while a FETCH, STORE or SEARCH completes, because the client may be
 * matching their results to numbers.
 *
 * Flag changes are reported only when the flags the backend has now differ
 * from the view's copy: a session's own STORE updates the view itself and
 * is not told twice.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/xalloc.h"
#include "imap/imap_private.h"

void imap_view_open(struct imap *im, struct imap_mailbox *mb, const char *name, bool read_only,
		    struct imap_select_info *info)
{
	struct imap_view *v = &im->view;

	imap_view_close(im);
	v->mb = mb;
	v->name = xstrdup(name);
	v->read_only = read_only;
	v->uidvalidity = info->uidvalidity;
	v->uidnext = info->uidnext;
	v->msgs = info->msgs;
	v->n = v->cap = info->n;
	info->msgs = NULL;
	info->n = 0;
	size_t recent = 0;
	for (size_t i = 0; i < v->n; i++)
		recent += v->msgs[i].recent != 0;
	v->recent = recent;
}

void imap_view_close(struct imap *im)
{
	struct imap_view *v = &im->view;

	if (v->mb != NULL)
		im->be->mailbox_close(im->be->ctx, v->mb);
	free(v->name);
	free(v->msgs);
	free(v->expunged);
	free(v->changed);
	memset(v, 0, sizeof(*v));
}

static void imap_view_push(uint32_t **v, size_t *n, size_t *cap, uint32_t uid)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 16;
		*v = xrealloc(*v, *cap * sizeof(**v));
	}
	(*v)[(*n)++] = uid;
}

static int imap_view_cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* Sort v[0..n) and drop repeats; returns the new count. */
static size_t imap_view_unique(uint32_t *v, size_t n)
{
	size_t out = 0;

	qsort(v, n, sizeof(*v), imap_view_cmp_u32);
	for (size_t i = 0; i < n; i++) {
		if (out == 0 || v[out - 1] != v[i])
			v[out++] = v[i];
	}
	return out;
}

void imap_view_changed(void *arg, enum imap_change what, uint32_t first, uint32_t last)
{
	struct imap *im = arg;
	struct imap_view *v = &im->view;

	switch (what) {
	case IMAP_CHANGE_NEW:
		if (v->new_first == 0 || first < v->new_first)
			v->new_first = first;
		if (last > v->new_last)
			v->new_last = last;
		break;
	case IMAP_CHANGE_EXPUNGE:
		imap_view_push(&v->expunged, &v->n_expunged, &v->cap_expunged, first);
		break;
	case IMAP_CHANGE_FLAGS:
		/* One notice per uid is enough until it is reported. */
		for (size_t i = v->n_changed; i > 0 && i + 8 > v->n_changed; i--) {
			if (v->changed[i - 1] == first)
				return;
		}
		/* A client that stays silent while others change the same
		 * messages over and over must not make the list grow
		 * without bound: fold repeats once it is larger than the
		 * mailbox. */
		if (v->n_changed == v->cap_changed && v->n_changed > 2 * v->n + 64)
			v->n_changed = imap_view_unique(v->changed, v->n_changed);
		imap_view_push(&v->changed, &v->n_changed, &v->cap_changed, first);
		break;
	case IMAP_CHANGE_GONE:
		v->gone = true;
		break;
	}
	/* RFC 2177 3: while idling, updates go out as they happen. */
	if (im->idle_tag != NULL && im->state == IMAP_STATE_SELECTED) {
		if (v->gone)
			session_reply(im->s, "* BYE Selected mailbox was deleted or renamed, have to disconnect\r\n");
		else
			imap_view_report(im, IMAP_REPORT_ALL);
		session_poke(im->s);
	}
}

uint32_t imap_view_seq(const struct imap_view *v, uint32_t uid)
{
	size_t lo = 0, hi = v->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (v->msgs[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < v->n && v->msgs[lo].uid == uid ? (uint32_t)(lo + 1) : 0;
}

static size_t imap_view_count_recent(const struct imap_view *v)
{
	size_t recent = 0;

	for (size_t i = 0; i < v->n; i++)
		recent += v->msgs[i].recent != 0;
	return recent;
}

static size_t imap_view_keyword_count(struct imap *im)
{
	const char *const *names = im->be->mailbox_keywords(im->be->ctx, im->view.mb);
	size_t n = 0;

	for (size_t i = 0; names != NULL && i < IMAP_KEYWORDS_MAX; i++)
		n += names[i] != NULL;
	return n;
}

/* "* n EXPUNGE" for each recorded uid still in the view, each with the
 * number it has at that moment (RFC 3501 7.4.1): in ascending order the
 * k-th removal (from 0) has the number it had minus k. The view is
 * compacted in one pass, so a mass expunge costs O(n), not O(n^2). */
static bool imap_view_report_expunges(struct imap *im)
{
	struct imap_view *v = &im->view;
	size_t k = 0, out = 0, before = v->n;

	if (v->n_expunged == 0)
		return false;
	qsort(v->expunged, v->n_expunged, sizeof(*v->expunged), imap_view_cmp_u32);
	for (size_t i = 0; i < v->n; i++) {
		while (k < v->n_expunged && v->expunged[k] < v->msgs[i].uid)
			k++;
		if (k < v->n_expunged && v->expunged[k] == v->msgs[i].uid) {
			session_reply(im->s, "* %zu EXPUNGE\r\n", out + 1);
			continue;
		}
		v->msgs[out++] = v->msgs[i];
	}
	v->n = out;
	v->n_expunged = 0;
	return out != before;
}

/* Messages that arrived: appended in UID order after the known ones. */
static bool imap_view_report_new(struct imap *im)
{
	struct imap_view *v = &im->view;
	struct imap_msg *got = NULL;
	size_t n = 0;
	bool grew = false;

	if (v->new_first == 0)
		return false;
	uint32_t last_known = v->n > 0 ? v->msgs[v->n - 1].uid : 0;
	uint32_t from = v->new_first > last_known ? v->new_first : last_known + 1;
	if (from == 0) {
		/* The view ends at the largest uid: nothing can follow it. */
		v->new_first = v->new_last = 0;
		return false;
	}
	/* On failure the range stays recorded: the next report tries again. */
	if (im->be->mailbox_messages(im->be->ctx, v->mb, from, UINT32_MAX, &got, &n) < 0)
		return false;
	v->new_first = v->new_last = 0;
	for (size_t i = 0; i < n; i++) {
		if (got[i].uid <= last_known)
			continue;
		if (v->n == v->cap) {
			v->cap = v->cap ? v->cap * 2 : 16;
			v->msgs = xrealloc(v->msgs, v->cap * sizeof(*v->msgs));
		}
		v->msgs[v->n++] = got[i];
		last_known = got[i].uid;
		grew = true;
	}
	if (last_known >= v->uidnext)
		v->uidnext = last_known + 1;
	free(got);
	return grew;
}

/* "* n FETCH (FLAGS ...)" for m, which now has got's flags. */
static void imap_view_tell_flags(struct imap *im, uint32_t seq, struct imap_msg *m, const struct imap_msg *got)
{
	struct buf out;

	m->flags = got->flags;
	m->keywords = got->keywords;
	buf_init(&out, 64 * 1024);
	imap_write_flags(im, &out, m);
	if (im->uid_cmd)
		session_reply(im->s, "* %u FETCH (UID %u FLAGS %.*s)\r\n", seq, m->uid, (int)buf_len(&out),
			      buf_ptr(&out));
	else
		session_reply(im->s, "* %u FETCH (FLAGS %.*s)\r\n", seq, (int)buf_len(&out), buf_ptr(&out));
	buf_free(&out);
}

/* The FLAGS of the messages whose uids are in changed (ascending, no
 * repeats) and whose flags differ from the view's copy: read from the
 * backend in one call over their range. A uid that is gone from the
 * index (expunged, not yet told) is skipped. */
static void imap_view_report_flags(struct imap *im, const uint32_t *changed, size_t n_changed)
{
	struct imap_view *v = &im->view;
	struct imap_msg *got = NULL;
	size_t n = 0, g = 0;

	if (n_changed == 0 ||
	    im->be->mailbox_messages(im->be->ctx, v->mb, changed[0], changed[n_changed - 1], &got, &n) < 0)
		return;
	for (size_t i = 0; i < n_changed; i++) {
		uint32_t seq = imap_view_seq(v, changed[i]);
		while (g < n && got[g].uid < changed[i])
			g++;
		if (seq == 0 || g == n || got[g].uid != changed[i])
			continue;
		struct imap_msg *m = &v->msgs[seq - 1];
		if (got[g].flags != m->flags || got[g].keywords != m->keywords)
			imap_view_tell_flags(im, seq, m, &got[g]);
	}
	free(got);
}

/* RFC 3501 7.2.6: FLAGS again, with PERMANENTFLAGS, when a keyword was
 * added to the mailbox. */
static void imap_view_report_keywords(struct imap *im)
{
	struct imap_view *v = &im->view;
	size_t count = imap_view_keyword_count(im);

	if (count <= v->keywords_told)
		return;
	const char *const *names = im->be->mailbox_keywords(im->be->ctx, v->mb);
	struct buf kw;
	buf_init(&kw, 64 * 1024);
	for (size_t i = 0; names != NULL && i < IMAP_KEYWORDS_MAX; i++) {
		if (names[i] != NULL)
			buf_printf(&kw, " %s", names[i]);
	}
	session_reply(im->s, "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft%.*s)\r\n", (int)buf_len(&kw),
		      buf_ptr(&kw));
	if (v->read_only)
		session_reply(im->s, "* OK [PERMANENTFLAGS ()] Read-only mailbox\r\n");
	else
		session_reply(im->s, "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft%.*s \\*)] "
				     "Flags permitted\r\n",
			      (int)buf_len(&kw), buf_ptr(&kw));
	buf_free(&kw);
	v->keywords_told = count;
}

void imap_view_report(struct imap *im, enum imap_report allowed)
{
	struct imap_view *v = &im->view;

	if (allowed == IMAP_REPORT_NONE || v->mb == NULL || v->gone)
		return;
	bool shrank = allowed == IMAP_REPORT_ALL && imap_view_report_expunges(im);
	/* RFC 3501 7.3.2: RECENT comes with a new size (Dovecot sends it
	 * only then too; after an EXPUNGE clients count for themselves). */
	bool grew = imap_view_report_new(im);
	if (grew) {
		session_reply(im->s, "* %zu EXISTS\r\n", v->n);
		size_t recent = imap_view_count_recent(v);
		if (recent != v->recent)
			session_reply(im->s, "* %zu RECENT\r\n", recent);
	}
	if (grew || shrank)
		v->recent = imap_view_count_recent(v);
	/* Only a flag change or a new message can bring a new keyword. */
	if (grew || v->n_changed > 0)
		imap_view_report_keywords(im);
	/* The list is taken first: a report may not run twice over it. */
	uint32_t *changed = v->changed;
	size_t n_changed = v->n_changed, n = 0;
	v->changed = NULL;
	v->n_changed = v->cap_changed = 0;
	if (n_changed > 0)
		n = imap_view_unique(changed, n_changed);
	imap_view_report_flags(im, changed, n);
	free(changed);
}

int imap_view_resolve(const struct imap_view *v, const char *set, size_t len, bool uid, uint32_t **idx_r,
		      size_t *n_r, const char **error_r)
{
	struct imap_seqset ss;
	uint32_t star = uid ? (v->n > 0 ? v->msgs[v->n - 1].uid : 0) : (uint32_t)v->n;
	uint32_t *idx = NULL;
	size_t n = 0;

	*idx_r = NULL;
	*n_r = 0;
	imap_seqset_init(&ss);
	if (imap_seqset_parse(&ss, set, len, star, error_r) < 0) {
		imap_seqset_free(&ss);
		return -1;
	}
	imap_seqset_normalize(&ss);
	if (uid) {
		/* RFC 3501 6.4.8: UIDs that are not there are no error. */
		for (size_t i = 0; i < v->n; i++) {
			if (!imap_seqset_contains(&ss, v->msgs[i].uid))
				continue;
			if (idx == NULL)
				idx = xmalloc(v->n * sizeof(*idx));
			idx[n++] = (uint32_t)i;
		}
	} else {
		/* RFC 3501 9 seq-number: numbers the client cannot know are
		 * an error; the last range is the highest once normalized. */
		if (ss.count == 0 || ss.r[0].lo == 0 || ss.r[ss.count - 1].hi > v->n) {
			imap_seqset_free(&ss);
			*error_r = "Invalid message number";
			return -1;
		}
		uint64_t cursor = 0;
		uint32_t seq;
		idx = xmalloc((size_t)imap_seqset_size(&ss) * sizeof(*idx));
		while (imap_seqset_next(&ss, &cursor, &seq))
			idx[n++] = seq - 1;
	}
	imap_seqset_free(&ss);
	*idx_r = idx;
	*n_r = n;
	return 0;
}

void imap_write_flags(struct imap *im, struct buf *out, const struct imap_msg *m)
{
	static const struct {
		uint32_t bit;
		const char *name;
	} sys[] = {
		{ IMAP_ANSWERED, "\\Answered" }, { IMAP_FLAGGED, "\\Flagged" }, { IMAP_DELETED, "\\Deleted" },
		{ IMAP_SEEN, "\\Seen" },         { IMAP_DRAFT, "\\Draft" },
	};
	const char *sep = "";

	buf_append(out, "(", 1);
	for (size_t i = 0; i < sizeof(sys) / sizeof(sys[0]); i++) {
		if (m->flags & sys[i].bit) {
			buf_printf(out, "%s%s", sep, sys[i].name);
			sep = " ";
		}
	}
	if (m->recent) {
		buf_printf(out, "%s\\Recent", sep);
		sep = " ";
	}
	if (m->keywords != 0 && im->view.mb != NULL) {
		const char *const *names = im->be->mailbox_keywords(im->be->ctx, im->view.mb);
		for (size_t i = 0; names != NULL && i < IMAP_KEYWORDS_MAX; i++) {
			if ((m->keywords & (1u << i)) && names[i] != NULL) {
				buf_printf(out, "%s%s", sep, names[i]);
				sep = " ";
			}
		}
	}
	buf_append(out, ")", 1);
}

/* RFC 3501 9 flag-keyword = atom: no list wildcards or "]" either. */
static bool imap_keyword_ok(const char *s, size_t len)
{
	if (len == 0 || strlen(s) != len)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= 0x20 || c >= 0x7f || strchr("(){%*\"\\]", c) != NULL)
			return false;
	}
	return true;
}

static int imap_flag_one(const struct imap_arg *a, uint32_t *flags, const char ***names, size_t *n,
			 const char **error_r)
{
	static const struct {
		const char *name;
		uint32_t bit;
	} sys[] = {
		{ "\\Seen", IMAP_SEEN },       { "\\Answered", IMAP_ANSWERED }, { "\\Flagged", IMAP_FLAGGED },
		{ "\\Deleted", IMAP_DELETED }, { "\\Draft", IMAP_DRAFT },
	};

	if (a->type == IMAP_ARG_FLAG) {
		for (size_t i = 0; i < sizeof(sys) / sizeof(sys[0]); i++) {
			if (strcasecmp(a->str, sys[i].name) == 0) {
				*flags |= sys[i].bit;
				return 0;
			}
		}
		*error_r = strcasecmp(a->str, "\\Recent") == 0 ? "\\Recent cannot be changed" : "Unknown system flag";
		return -1;
	}
	if ((a->type != IMAP_ARG_ATOM && a->type != IMAP_ARG_NUMBER && a->type != IMAP_ARG_NIL) ||
	    !imap_keyword_ok(a->str, a->len)) {
		*error_r = "Invalid flag";
		return -1;
	}
	/* Keywords are case-insensitive (RFC 3501 2.3.2): one is enough. */
	for (size_t i = 0; i < *n; i++) {
		if (strcasecmp((*names)[i], a->str) == 0)
			return 0;
	}
	(*names)[(*n)++] = a->str;
	return 0;
}

int imap_parse_flags(const struct imap_arg *a, uint32_t *flags_r, const char ***names_r, size_t *n_r,
		     const char **error_r)
{
	size_t count = a->type == IMAP_ARG_LIST ? a->count : 1;
	const char **names = xmalloc((count ? count : 1) * sizeof(*names));
	uint32_t flags = 0;
	size_t n = 0;
	int rc = 0;

	if (a->type == IMAP_ARG_LIST) {
		const struct imap_arg *c = a + 1;
		for (uint32_t i = 0; i < a->count && rc == 0; i++, c = imap_arg_next(c)) {
			if (c->type == IMAP_ARG_LIST || c->type == IMAP_ARG_SECTION) {
				*error_r = "Invalid flag";
				rc = -1;
			} else {
				rc = imap_flag_one(c, &flags, &names, &n, error_r);
			}
		}
	} else {
		rc = imap_flag_one(a, &flags, &names, &n, error_r);
	}
	if (rc < 0) {
		free(names);
		*flags_r = 0;
		*names_r = NULL;
		*n_r = 0;
		return -1;
	}
	*flags_r = flags;
	*names_r = names;
	*n_r = n;
	return 0;
}
