/*
 * LIST and LSUB (RFC 3501 6.3.8, 6.3.9) with the CHILDREN (RFC 3348) and
 * SPECIAL-USE (RFC 6154) attributes.
 *
 * The backend gives every mailbox and every subscribed name at once; the
 * pattern is matched here against each, and the levels of hierarchy above
 * a listed name that match too are added as \Noselect when they are not
 * mailboxes (or, for LSUB, not subscribed) themselves, as both sections
 * want. The matcher keeps the set of name positions the pattern prefix can
 * reach, so no pattern, however many wildcards it has, makes it backtrack.
 */
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"
#include "imap/imap_mailbox.h"
#include "imap/imap_private.h"
#include "mime/imapstr.h"

static bool imap_list_char_eq(char a, char b, bool fold)
{
	if (a == b)
		return true;
	if (!fold)
		return false;
	unsigned char x = (unsigned char)a, y = (unsigned char)b;
	if (x >= 'a' && x <= 'z')
		x = (unsigned char)(x - 'a' + 'A');
	if (y >= 'a' && y <= 'z')
		y = (unsigned char)(y - 'a' + 'A');
	return x == y;
}

bool imap_list_match(const char *pattern, size_t plen, const char *name, size_t nlen, size_t inbox_len)
{
	/* reach[i]: the pattern so far can match name[0..i). */
	bool *reach = xcalloc(nlen + 1, sizeof(*reach));
	bool any = true;
	char last_wild = 0;

	reach[0] = true;
	for (size_t p = 0; p < plen && any; p++) {
		char c = pattern[p];
		if (c == '*' || c == '%') {
			/* "**", "*%" and "%%" match what the first alone
			 * does: skipping them keeps the work linear. */
			if (last_wild == '*' || (last_wild == '%' && c == '%'))
				continue;
			last_wild = c;
			bool on = false;
			for (size_t i = 0; i <= nlen; i++) {
				if (reach[i])
					on = true;
				reach[i] = on;
				if (c == '%' && i < nlen && name[i] == IMAP_DELIM)
					on = false;
			}
			continue;
		}
		last_wild = 0;
		any = false;
		for (size_t i = nlen; i > 0; i--) {
			reach[i] = reach[i - 1] && imap_list_char_eq(name[i - 1], c, i - 1 < inbox_len);
			any = any || reach[i];
		}
		reach[0] = false;
	}
	bool match = any && reach[nlen];
	free(reach);
	return match;
}

size_t imap_list_inbox_len(const char *name, size_t len)
{
	if (len >= 5 && memcmp(name, "INBOX", 5) == 0 && (len == 5 || name[5] == IMAP_DELIM))
		return 5;
	return 0;
}

char *imap_list_join(const char *ref, size_t rlen, const char *pattern, size_t plen)
{
	if (rlen > 0 && ref[rlen - 1] == IMAP_DELIM && plen > 0 && pattern[0] == IMAP_DELIM) {
		pattern++;
		plen--;
	}
	char *s = xmalloc(rlen + plen + 1);
	memcpy(s, ref, rlen);
	memcpy(s + rlen, pattern, plen);
	s[rlen + plen] = '\0';
	return s;
}

/* One line of the answer: a mailbox, or a level of hierarchy above one. */
struct imap_list_item {
	const char *name;
	size_t len;
	const struct imap_mailbox_info *info;   /* NULL: only a level above names */
};

static int imap_list_item_cmp(const void *a, const void *b)
{
	const struct imap_list_item *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->name, y->name, n);

	if (c != 0)
		return c;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	/* The mailbox itself sorts before a level of the same name, which
	 * then drops out. */
	return (x->info == NULL) - (y->info == NULL);
}

struct imap_list_out {
	struct imap_list_item *v;
	size_t n, cap;
};

static void imap_list_add(struct imap_list_out *o, const char *name, size_t len,
			  const struct imap_mailbox_info *info)
{
	if (o->n == o->cap) {
		o->cap = o->cap ? o->cap * 2 : 16;
		o->v = xrealloc(o->v, o->cap * sizeof(*o->v));
	}
	o->v[o->n++] = (struct imap_list_item){ name, len, info };
}

static bool imap_list_matches(const char *pattern, const char *name, size_t len)
{
	return imap_list_match(pattern, strlen(pattern), name, len, imap_list_inbox_len(name, len));
}

static void imap_list_attrs(struct buf *line, const struct imap_list_item *it, bool lsub)
{
	const struct imap_mailbox_info *e = it->info;
	static const struct {
		uint32_t bit;
		const char *name;
	} uses[] = {
		{ IMAP_USE_SENT, "\\Sent" },   { IMAP_USE_DRAFTS, "\\Drafts" },
		{ IMAP_USE_TRASH, "\\Trash" }, { IMAP_USE_JUNK, "\\Junk" },
		{ IMAP_USE_ARCHIVE, "\\Archive" },
	};
	const char *sep = "";

	buf_append(line, "(", 1);
	if (e == NULL) {
		/* RFC 3501 6.3.8/6.3.9: a level that matched but is no
		 * mailbox (LIST) or not subscribed (LSUB). */
		buf_printf(line, lsub ? "\\Noselect" : "\\Noselect \\HasChildren");
	} else if (lsub) {
		if (!e->exists)
			buf_printf(line, "\\NonExistent \\Noselect");
	} else {
		buf_printf(line, "%s", e->has_children ? "\\HasChildren" : "\\HasNoChildren");
		sep = " ";
		for (size_t i = 0; i < sizeof(uses) / sizeof(uses[0]); i++) {
			if (e->special & uses[i].bit)
				buf_printf(line, "%s%s", sep, uses[i].name);
		}
	}
	buf_append(line, ")", 1);
}

static enum session_effect imap_list_run(struct imap *im, const char *pattern, bool lsub)
{
	struct imap_mailbox_info *v = NULL;
	size_t n = 0;

	if (im->be->list(im->be->ctx, im->acct, &v, &n) < 0)
		return imap_no(im, "%s", imap_status_text(IMAP_TEMPFAIL));

	struct imap_list_out o = { 0 };
	for (size_t i = 0; i < n; i++) {
		const struct imap_mailbox_info *e = &v[i];
		size_t len = strlen(e->name);
		/* LIST shows mailboxes; LSUB shows subscriptions, whether
		 * the mailbox exists or not (RFC 3501 6.3.9). */
		if (lsub ? !e->subscribed : !e->exists)
			continue;
		bool match = imap_list_matches(pattern, e->name, len);
		if (match)
			imap_list_add(&o, e->name, len, e);
		/* RFC 3501 6.3.9: LSUB names a level above a subscription
		 * only when "%" stopped the pattern there. LIST names the
		 * levels always, so a client can draw the tree. */
		if (lsub && match)
			continue;
		for (size_t k = 1; k < len; k++) {
			if (e->name[k] == IMAP_DELIM && imap_list_matches(pattern, e->name, k))
				imap_list_add(&o, e->name, k, NULL);
		}
	}
	if (o.n > 1)
		qsort(o.v, o.n, sizeof(*o.v), imap_list_item_cmp);

	struct buf line;
	buf_init(&line, 64 * 1024);
	for (size_t i = 0; i < o.n; i++) {
		const struct imap_list_item *it = &o.v[i];
		if (i > 0 && it->len == o.v[i - 1].len && memcmp(it->name, o.v[i - 1].name, it->len) == 0)
			continue;
		buf_reset(&line);
		buf_printf(&line, "* %s ", lsub ? "LSUB" : "LIST");
		imap_list_attrs(&line, it, lsub);
		buf_printf(&line, " \"%c\" ", IMAP_DELIM);
		if (imapstr_write_astring(&line, it->name, it->len) < 0)
			continue;
		session_reply(im->s, "%.*s\r\n", (int)buf_len(&line), buf_ptr(&line));
	}
	buf_free(&line);
	free(o.v);
	imap_mailbox_info_free(v, n);
	return imap_ok(im, "%s completed", lsub ? "LSUB" : "LIST");
}

enum session_effect imap_cmd_list(struct imap *im)
{
	bool lsub = imap_command_is(&im->cmd, "LSUB");
	const char *ref, *pat;
	size_t rlen, plen;

	/* Selection and return options (RFC 5258) are not offered. */
	if (im->cmd.nargs != 2 || !imap_arg_astring(&im->cmd.args[0], &ref, &rlen) ||
	    !imap_arg_astring(imap_arg_next(&im->cmd.args[0]), &pat, &plen))
		return imap_bad(im, "Syntax: %s reference mailbox-pattern", lsub ? "LSUB" : "LIST");
	if (memchr(ref, '\0', rlen) != NULL || memchr(pat, '\0', plen) != NULL)
		return imap_bad(im, "Invalid mailbox name");
	if (plen == 0) {
		/* RFC 3501 6.3.8: the delimiter and the root of the
		 * hierarchy, which has no name here. */
		if (!lsub)
			session_reply(im->s, "* LIST (\\Noselect) \"%c\" \"\"\r\n", IMAP_DELIM);
		return imap_ok(im, "%s completed", lsub ? "LSUB" : "LIST");
	}
	char *pattern = imap_list_join(ref, rlen, pat, plen);
	enum session_effect e = imap_list_run(im, pattern, lsub);
	free(pattern);
	return e;
}
