/*
 * SEARCH and UID SEARCH (RFC 3501 6.4.4).
 *
 * The keys become a small tree (an array in prefix order, like the
 * parser's arguments) that is evaluated per message with three-valued
 * logic: a key whose data is not loaded yet answers "maybe". Flags,
 * sequence numbers and UIDs come from the view; sizes and internal dates
 * need the message's index record; SENT* dates need its parsed structure;
 * text keys need the message itself. Each is loaded only while the answer
 * is still "maybe", so a search that the cheap keys decide reads no file.
 *
 * The result line can be long (a number per message), so it is written in
 * pieces that wait for the output to drain, like FETCH.
 */
#include "imap/imap_search_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/xalloc.h"

#define SEARCH_PUMP_BUDGET (256 * 1024)

/* What is known of the message being evaluated. */
struct seval {
	const struct imap_msg *m;
	uint32_t seq;
	bool have_info, have_sent, have_text;
	struct imap_msg_info info;
	bool sent_ok;        /* the Date header could be read */
	int64_t sent_day;
};

void imap_search_free(struct imap *im)
{
	struct imap_search *sr = im->search;

	if (sr == NULL)
		return;
	for (size_t i = 0; i < sr->n; i++)
		imap_seqset_free(&sr->k[i].set);
	for (size_t i = 0; i < sr->ntext; i++)
		imap__stext_free(&sr->text[i]);
	free(sr->k);
	free(sr->text);
	free(sr->hits);
	free(sr);
	im->search = NULL;
}

/* ---- evaluation ---- */

enum { S_NO = 0, S_YES = 1, S_MAYBE = 2 };

static int eval(const struct imap_search *sr, const struct skey *k, const struct seval *e)
{
	const struct imap_msg *m = e->m;

	switch (k->type) {
	case SK_AND: {
		int r = S_YES;
		const struct skey *c = k + 1;
		for (uint32_t i = 0; i < k->count; i++, c += c->span) {
			int x = eval(sr, c, e);
			if (x == S_NO)
				return S_NO;
			if (x == S_MAYBE)
				r = S_MAYBE;
		}
		return r;
	}
	case SK_OR: {
		const struct skey *b = k + 1 + k[1].span;
		int x = eval(sr, k + 1, e);
		if (x == S_YES)
			return S_YES;
		int y = eval(sr, b, e);
		if (y == S_YES)
			return S_YES;
		return x == S_NO && y == S_NO ? S_NO : S_MAYBE;
	}
	case SK_NOT: {
		int x = eval(sr, k + 1, e);
		return x == S_MAYBE ? S_MAYBE : !x;
	}
	case SK_ALL:
		return S_YES;
	case SK_FLAGS_SET:
		return (m->flags & k->mask) == k->mask;
	case SK_FLAGS_UNSET:
		return (m->flags & k->mask) == 0;
	case SK_KEYWORD:
		return k->kw >= 0 && (m->keywords & (1u << k->kw)) != 0;
	case SK_UNKEYWORD:
		return k->kw < 0 || (m->keywords & (1u << k->kw)) == 0;
	case SK_NEW:
		return m->recent && !(m->flags & IMAP_SEEN);
	case SK_OLD:
		return !m->recent;
	case SK_RECENT:
		return m->recent != 0;
	case SK_SEQ:
		return imap_seqset_contains(&k->set, e->seq);
	case SK_UID:
		return imap_seqset_contains(&k->set, m->uid);
	case SK_LARGER:
	case SK_SMALLER:
	case SK_BEFORE:
	case SK_ON:
	case SK_SINCE:
		if (!e->have_info)
			return S_MAYBE;
		if (k->type == SK_LARGER)
			return e->info.size > k->num;
		if (k->type == SK_SMALLER)
			return e->info.size < k->num;
		{
			int64_t day = imap__search_day_of(e->info.internal_date);
			return k->type == SK_BEFORE ? day < k->day : k->type == SK_ON ? day == k->day : day >= k->day;
		}
	case SK_SENTBEFORE:
	case SK_SENTON:
	case SK_SENTSINCE:
		if (!e->have_sent)
			return S_MAYBE;
		if (!e->sent_ok)
			return S_NO;
		return k->type == SK_SENTBEFORE ? e->sent_day < k->day
		       : k->type == SK_SENTON  ? e->sent_day == k->day
					       : e->sent_day >= k->day;
	case SK_TEXT:
		if (!e->have_text)
			return S_MAYBE;
		return sr->text[k->text].found;
	}
	return S_NO;
}

/* Whether view message i matches; loads what the keys need as long as the
 * answer is open. */
static bool search_match(struct imap *im, size_t i)
{
	struct imap_search *sr = im->search;
	struct seval e;

	memset(&e, 0, sizeof(e));
	e.m = &im->view.msgs[i];
	e.seq = (uint32_t)(i + 1);
	int r = eval(sr, sr->k, &e);
	if (r == S_MAYBE && sr->need_info) {
		if (im->be->message_info(im->be->ctx, im->view.mb, e.m->uid, &e.info) != IMAP_OK)
			return false;
		e.have_info = true;
		r = eval(sr, sr->k, &e);
	}
	if (r == S_MAYBE && sr->need_sent) {
		enum imap_status st;
		struct mime_tree *t = im->be->message_tree(im->be->ctx, im->view.mb, e.m->uid, &st);
		if (t == NULL)
			return false;
		const struct mime_envelope *env = t->root->envelope;
		e.sent_ok = env != NULL && env->date != NULL && imap__search_sent_day(env->date, &e.sent_day) == 0;
		e.have_sent = true;
		mime_tree_free(&t);
		r = eval(sr, sr->k, &e);
	}
	if (r == S_MAYBE && sr->ntext > 0) {
		if (imap__stext_run(im->be, im->view.mb, e.m->uid, sr->text, sr->ntext) != IMAP_OK)
			return false;
		e.have_text = true;
		r = eval(sr, sr->k, &e);
	}
	return r == S_YES;
}

/* ---- the answer ---- */

/* Write the result line in pieces; false while the output must drain. */
static bool search_pump(struct imap *im)
{
	struct imap_search *sr = im->search;
	char piece[4096];
	size_t cap = sr->budget < sizeof(piece) ? sr->budget : sizeof(piece);
	size_t n = 0;

	if (!sr->started) {
		n = (size_t)snprintf(piece, sizeof(piece), "* SEARCH");
		sr->started = true;
	}
	while (sr->pos < sr->nhits) {
		if (n + 16 > cap) {
			session_reply(im->s, "%.*s", (int)n, piece);
			sr->since_drain += n;
			n = 0;
			if (sr->since_drain >= sr->budget)
				return false;
		}
		n += (size_t)snprintf(piece + n, sizeof(piece) - n, " %u", sr->hits[sr->pos++]);
	}
	session_reply(im->s, "%.*s\r\n", (int)n, piece);
	return true;
}

static enum session_effect search_answer(struct imap *im)
{
	imap_search_free(im);
	return imap_ok(im, "%sSEARCH completed", im->uid_cmd ? "UID " : "");
}

void imap_search_drained(struct imap *im)
{
	struct imap_search *sr = im->search;

	if (sr == NULL)
		return;
	sr->since_drain = 0;
	if (!search_pump(im)) {
		session_wait_drain(im->s);
		return;
	}
	imap_done(im, search_answer(im));
}

enum session_effect imap_cmd_search(struct imap *im)
{
	const struct imap_command *cmd = &im->cmd;
	const struct imap_arg *cur = cmd->args;
	uint32_t left = (uint32_t)cmd->nargs;

	im->uid_cmd = cmd->uid;
	im->report = cmd->uid ? IMAP_REPORT_ALL : IMAP_REPORT_NO_EXPUNGE;
	if (im->state != IMAP_STATE_SELECTED)
		return imap_bad(im, "No mailbox selected");
	if (left >= 1 && cur->type == IMAP_ARG_ATOM && strcasecmp(cur->str, "CHARSET") == 0) {
		const char *cs;
		size_t cslen;
		if (left < 2 || !imap_arg_astring(imap_arg_next(cur), &cs, &cslen))
			return imap_bad(im, "Missing charset");
		/* RFC 3501 6.4.4: US-ASCII must be supported; the search
		 * strings are compared as UTF-8, of which it is a subset. */
		if (!((cslen == 5 && strncasecmp(cs, "UTF-8", 5) == 0) ||
		      (cslen == 8 && strncasecmp(cs, "US-ASCII", 8) == 0)))
			return imap_no(im, "[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset");
		cur = imap_arg_next(imap_arg_next(cur));
		left -= 2;
	}
	if (left == 0)
		return imap_bad(im, "Missing search keys");

	imap_search_free(im);
	struct imap_search *sr = xcalloc(1, sizeof(*sr));
	im->search = sr;
	const char *error;
	if (imap__search_parse(im, sr, cur, left, &error) < 0) {
		enum session_effect e = imap_bad(im, "%s", error);
		imap_search_free(im);
		return e;
	}

	for (size_t i = 0; i < im->view.n; i++) {
		if (search_match(im, i)) {
			if ((sr->nhits & (sr->nhits + 1)) == 0)
				sr->hits = xrealloc(sr->hits, (2 * sr->nhits + 1) * sizeof(*sr->hits));
			sr->hits[sr->nhits++] = im->uid_cmd ? im->view.msgs[i].uid : (uint32_t)(i + 1);
		}
	}
	size_t max = session_config(im->s)->write_buffer_max;
	sr->budget = max / 4 < SEARCH_PUMP_BUDGET ? max / 4 : SEARCH_PUMP_BUDGET;
	if (!search_pump(im)) {
		session_wait_drain(im->s);
		return SESSION_EFFECT_WAIT;
	}
	return search_answer(im);
}
