/*
 * FETCH and UID FETCH (RFC 3501 6.4.5, 7.4.2).
 *
 * A FETCH can ask for gigabytes (BODY[] of every message) while the
 * session's output buffer has a hard maximum, so the command is a pump:
 * it writes one message after another, streams message bytes from the
 * backend's reader in bounded chunks, and once about FETCH_PUMP_BUDGET
 * octets went out since the last drain it waits (session_wait_drain) and
 * carries on from where it stopped in imap_fetch_drained(). The cursor is
 * a message index, an item index and, inside a literal, a byte position.
 *
 * Everything that can fail for a message (its index record, its tree, its
 * file) is looked up before the first byte of its response is written, so
 * a message expunged meanwhile is simply left out (RFC 5530 EXPUNGEISSUED
 * at the end) and never leaves a half-written response behind.
 *
 * Protocol text goes out with session_reply (traced line by line); message
 * content with session_write_body (traced as a summary).
 */
#include "imap/imap_fetch_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/xalloc.h"
#include "mime/mime_bodystructure.h"
#include "mime/mime_envelope.h"
#include "mime/mime_section.h"

/* Octets written between two drains (at most a quarter of the output
 * buffer's maximum). */
#define FETCH_PUMP_BUDGET (256 * 1024)

static void fetch_free_items(struct fetch_item *items, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(items[i].label);
	free(items);
}

static void fetch_msg_release(struct imap *im)
{
	struct imap_fetch *f = im->fetch;

	if (f->reader != NULL) {
		im->be->message_close(f->reader);
		f->reader = NULL;
	}
	mime_tree_free(&f->tree);
	f->st.active = false;
}

void imap_fetch_free(struct imap *im)
{
	struct imap_fetch *f = im->fetch;

	if (f == NULL)
		return;
	fetch_msg_release(im);
	fetch_free_items(f->items, f->nitems);
	free(f->idx);
	buf_free(&f->scratch);
	buf_free(&f->conv);
	buf_free(&f->mem);
	free(f->raw);
	free(f->seen);
	free(f);
	im->fetch = NULL;
}

/* ---- the item list ---- */

static bool atom_is(const struct imap_arg *a, const char *name)
{
	return (a->type == IMAP_ARG_ATOM || a->type == IMAP_ARG_NIL) && strcasecmp(a->str, name) == 0;
}

static struct fetch_item *add_item(struct fetch_item **items, size_t *n, enum fetch_kind kind)
{
	*items = xrealloc(*items, (*n + 1) * sizeof(**items));
	struct fetch_item *it = &(*items)[(*n)++];
	memset(it, 0, sizeof(*it));
	it->kind = kind;
	it->plen = UINT32_MAX;
	return it;
}

static void add_rfc822(struct fetch_item **items, size_t *n, const char *spec, const char *label, bool peek)
{
	struct fetch_item *it = add_item(items, n, FETCH_SECTION);
	it->spec = spec;
	it->spec_len = strlen(spec);
	it->label = xstrdup(label);
	it->peek = peek;
}

/* The label a section item is answered with: the name without .PEEK, the
 * specifier with its keywords in capitals and the header names as the
 * client sent them, and only the origin of a partial (RFC 3501 7.4.2). */
static char *section_label(const struct imap_arg *a, const char *spec, size_t spec_len)
{
	size_t cap = spec_len + 32;
	char *label = xmalloc(cap);
	size_t n = 0;

	memcpy(label, "BODY[", 5);
	n = 5;
	bool in_list = false;
	for (size_t i = 0; i < spec_len; i++) {
		char c = spec[i];
		if (c == '(')
			in_list = true;
		if (!in_list && c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		label[n++] = c;
	}
	label[n++] = ']';
	if (a->has_partial)
		n += (size_t)snprintf(label + n, cap - n, "<%u>", a->partial_origin);
	label[n] = '\0';
	return label;
}

static int parse_section_item(const struct imap_arg *a, struct fetch_item **items, size_t *n,
			      const char **error_r)
{
	bool peek;

	if (a->sec_name_len == 4 && strncasecmp(a->sec_name, "BODY", 4) == 0)
		peek = false;
	else if (a->sec_name_len == 9 && strncasecmp(a->sec_name, "BODY.PEEK", 9) == 0)
		peek = true;
	else {
		*error_r = "Invalid fetch attribute";
		return -1;
	}
	/* The specifier runs from after "[" to the last "]" (a partial has
	 * none). */
	const char *open = a->sec_part;
	const char *close = a->str + a->len;
	while (close > open && close[-1] != ']')
		close--;
	if (close == open) {
		*error_r = "Invalid section";
		return -1;
	}
	close--;
	struct fetch_item *it = add_item(items, n, FETCH_SECTION);
	it->spec = open;
	it->spec_len = (size_t)(close - open);
	it->peek = peek;
	it->partial = a->has_partial;
	it->origin = a->partial_origin;
	if (a->has_partial_len)
		it->plen = a->partial_len;
	it->label = section_label(a, it->spec, it->spec_len);

	/* Check the specifier's grammar now, against an empty message, so a
	 * bad one is a BAD before anything is sent. */
	struct mime_tree *t = mime_tree_new();
	struct mime_section sec;
	int r = mime_section_resolve(t, it->spec, it->spec_len, &sec, error_r);
	mime_section_free(&sec);
	mime_tree_free(&t);
	return r;
}

static int parse_one_item(const struct imap_arg *a, struct fetch_item **items, size_t *n,
			  const char **error_r)
{
	static const struct {
		const char *name;
		enum fetch_kind kind;
	} simple[] = {
		{ "UID", FETCH_UID },
		{ "FLAGS", FETCH_FLAGS },
		{ "INTERNALDATE", FETCH_INTERNALDATE },
		{ "RFC822.SIZE", FETCH_RFC822_SIZE },
		{ "ENVELOPE", FETCH_ENVELOPE },
		{ "BODY", FETCH_BODY },
		{ "BODYSTRUCTURE", FETCH_BODYSTRUCTURE },
	};

	if (a->type == IMAP_ARG_SECTION)
		return parse_section_item(a, items, n, error_r);
	if (a->type != IMAP_ARG_ATOM) {
		*error_r = "Invalid fetch attribute";
		return -1;
	}
	for (size_t i = 0; i < sizeof(simple) / sizeof(simple[0]); i++) {
		if (strcasecmp(a->str, simple[i].name) == 0) {
			add_item(items, n, simple[i].kind);
			return 0;
		}
	}
	if (strcasecmp(a->str, "RFC822") == 0)
		add_rfc822(items, n, "", "RFC822", false);
	else if (strcasecmp(a->str, "RFC822.HEADER") == 0)
		add_rfc822(items, n, "HEADER", "RFC822.HEADER", true);
	else if (strcasecmp(a->str, "RFC822.TEXT") == 0)
		add_rfc822(items, n, "TEXT", "RFC822.TEXT", false);
	else {
		*error_r = "Invalid fetch attribute";
		return -1;
	}
	return 0;
}

/* RFC 3501 6.4.5: a macro alone, one attribute, or a list of them. */
static int parse_items(struct imap_fetch *f, const struct imap_arg *a, bool uid, const char **error_r)
{
	struct fetch_item *items = NULL;
	size_t n = 0;
	int r = 0;

	if (uid)
		add_item(&items, &n, FETCH_UID);
	if (atom_is(a, "ALL") || atom_is(a, "FAST") || atom_is(a, "FULL")) {
		add_item(&items, &n, FETCH_FLAGS);
		add_item(&items, &n, FETCH_INTERNALDATE);
		add_item(&items, &n, FETCH_RFC822_SIZE);
		if (!atom_is(a, "FAST"))
			add_item(&items, &n, FETCH_ENVELOPE);
		if (atom_is(a, "FULL"))
			add_item(&items, &n, FETCH_BODY);
	} else if (a->type == IMAP_ARG_LIST) {
		if (a->count == 0) {
			*error_r = "Empty fetch attribute list";
			r = -1;
		}
		const struct imap_arg *c = a + 1;
		for (uint32_t i = 0; r == 0 && i < a->count; i++, c = imap_arg_next(c))
			r = parse_one_item(c, &items, &n, error_r);
	} else {
		r = parse_one_item(a, &items, &n, error_r);
	}
	if (r < 0) {
		fetch_free_items(items, n);
		return -1;
	}
	/* UID FETCH answers UID once, first. */
	for (size_t i = uid ? 1 : 0; uid && i < n; i++) {
		if (items[i].kind == FETCH_UID) {
			memmove(&items[i], &items[i + 1], (n - i - 1) * sizeof(*items));
			n--;
			i--;
		}
	}
	for (size_t i = 0; i < n; i++) {
		switch (items[i].kind) {
		case FETCH_INTERNALDATE:
		case FETCH_RFC822_SIZE:
			f->need_info = true;
			break;
		case FETCH_ENVELOPE:
		case FETCH_BODY:
		case FETCH_BODYSTRUCTURE:
			f->need_tree = true;
			break;
		case FETCH_SECTION:
			f->need_tree = f->need_reader = true;
			if (!items[i].peek)
				f->sets_seen = true;
			break;
		case FETCH_FLAGS:
			f->has_flags = true;
			break;
		case FETCH_UID:
			break;
		}
	}
	f->items = items;
	f->nitems = n;
	return 0;
}

/* ---- writing ---- */

/* Hand the protocol text gathered so far to the session. */
static void flush_scratch(struct imap *im)
{
	struct imap_fetch *f = im->fetch;
	size_t len = buf_len(&f->scratch);

	if (len == 0)
		return;
	session_reply(im->s, "%.*s", (int)len, buf_ptr(&f->scratch));
	f->since_drain += len;
	buf_reset(&f->scratch);
}

/* Room for the scratch text in the session's output. */
static bool scratch_fits(struct imap *im)
{
	struct imap_fetch *f = im->fetch;

	return buf_room(session_output(im->s)) >= buf_len(&f->scratch) + 2;
}

static void write_internaldate(struct buf *out, int64_t when)
{
	static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	time_t t = (time_t)when;
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL)
		memset(&tm, 0, sizeof(tm));
	buf_printf(out, "INTERNALDATE \"%02d-%s-%04d %02d:%02d:%02d +0000\"", tm.tm_mday,
		   months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* A structure that does not fit the scratch buffer is sent as NIL (only
 * a pathological message gets there, and the dialogue stays in step). */
static void write_structure(struct buf *out, int r)
{
	if (r < 0)
		buf_append(out, "NIL", 3);
}

/* Replace NUL by 0x80: a literal may not carry NUL (RFC 3501 4.3). */

static enum imap_status msg_prepare(struct imap *im, uint32_t uid)
{
	struct imap_fetch *f = im->fetch;
	enum imap_status st = IMAP_OK;

	if (f->need_info) {
		st = im->be->message_info(im->be->ctx, im->view.mb, uid, &f->info);
		if (st != IMAP_OK)
			return st;
	}
	if (f->need_tree) {
		f->tree = im->be->message_tree(im->be->ctx, im->view.mb, uid, &st);
		if (f->tree == NULL)
			return st == IMAP_OK ? IMAP_TEMPFAIL : st;
	}
	if (f->need_reader) {
		f->reader = im->be->message_open(im->be->ctx, im->view.mb, uid, &st);
		if (f->reader == NULL) {
			mime_tree_free(&f->tree);
			return st == IMAP_OK ? IMAP_TEMPFAIL : st;
		}
	}
	return IMAP_OK;
}

static void add_seen(struct imap_fetch *f, uint32_t uid)
{
	if ((f->n_seen & (f->n_seen + 1)) == 0 || f->seen == NULL)
		f->seen = xrealloc(f->seen, (2 * f->n_seen + 1) * sizeof(*f->seen));
	f->seen[f->n_seen++] = uid;
}

static void write_simple_item(struct imap *im, const struct fetch_item *it, struct imap_msg *m)
{
	struct imap_fetch *f = im->fetch;
	struct buf *out = &f->scratch;

	switch (it->kind) {
	case FETCH_UID:
		buf_printf(out, "UID %u", m->uid);
		break;
	case FETCH_FLAGS:
		buf_append(out, "FLAGS ", 6);
		imap_write_flags(im, out, m);
		break;
	case FETCH_INTERNALDATE:
		write_internaldate(out, f->info.internal_date);
		break;
	case FETCH_RFC822_SIZE:
		buf_printf(out, "RFC822.SIZE %llu", (unsigned long long)f->info.size);
		break;
	case FETCH_ENVELOPE:
		buf_append(out, "ENVELOPE ", 9);
		write_structure(out, mime_envelope_write(f->tree->root->envelope, out));
		break;
	case FETCH_BODY:
		buf_append(out, "BODY ", 5);
		write_structure(out, mime_bodystructure_write(f->tree->root, false, out));
		break;
	case FETCH_BODYSTRUCTURE:
		buf_append(out, "BODYSTRUCTURE ", 14);
		write_structure(out, mime_bodystructure_write(f->tree->root, true, out));
		break;
	case FETCH_SECTION:
		break;
	}
}

/* Write messages until done (true) or the output must drain (false). */
static bool fetch_pump(struct imap *im)
{
	struct imap_fetch *f = im->fetch;

	for (;;) {
		/* The text before a literal, a whole response, or a long
		 * run of items goes out first. */
		if (buf_len(&f->scratch) > 0 &&
		    (f->st.active || !f->in_msg || buf_len(&f->scratch) >= f->flush_at)) {
			if (!scratch_fits(im))
				return false;
			flush_scratch(im);
		}
		if (f->st.active && !imap__fetch_section_pump(im))
			return false;
		if (f->cur >= f->n)
			break;
		if (f->since_drain >= f->budget)
			return false;
		struct imap_msg *m = &im->view.msgs[f->idx[f->cur]];
		if (!f->in_msg) {
			enum imap_status st = msg_prepare(im, m->uid);
			if (st != IMAP_OK) {
				if (st == IMAP_GONE)
					f->gone = true;
				else
					f->tempfail = true;
				f->cur++;
				continue;
			}
			f->in_msg = true;
			f->item = 0;
			f->add_flags = false;
			if (f->sets_seen && !im->view.read_only && !(m->flags & IMAP_SEEN)) {
				/* RFC 3501 6.4.5: \Seen is set, and the
				 * response carries the new flags. */
				m->flags |= IMAP_SEEN;
				add_seen(f, m->uid);
				f->add_flags = !f->has_flags;
			}
			buf_printf(&f->scratch, "* %u FETCH (", f->idx[f->cur] + 1);
		}
		while (f->item < f->nitems && !f->st.active && buf_len(&f->scratch) < f->flush_at) {
			const struct fetch_item *it = &f->items[f->item++];
			if (f->item > 1)
				buf_append(&f->scratch, " ", 1);
			if (it->kind == FETCH_SECTION)
				imap__fetch_section_start(im, it);
			else
				write_simple_item(im, it, m);
		}
		if (f->st.active || f->item < f->nitems)
			continue;
		if (f->add_flags) {
			buf_append(&f->scratch, " FLAGS ", 7);
			imap_write_flags(im, &f->scratch, m);
		}
		buf_append(&f->scratch, ")\r\n", 3);
		fetch_msg_release(im);
		f->in_msg = false;
		f->cur++;
	}
	fetch_msg_release(im);
	return true;
}

/* ---- completion ---- */

static enum session_effect fetch_answer(struct imap *im)
{
	struct imap_fetch *f = im->fetch;
	bool gone = f->gone, tempfail = f->tempfail;

	imap_fetch_free(im);
	if (tempfail)
		return imap_no(im, "%s", imap_status_text(IMAP_TEMPFAIL));
	if (gone)
		return imap_no(im, "[EXPUNGEISSUED] Some messages were expunged");
	return imap_ok(im, "%sFETCH completed", im->uid_cmd ? "UID " : "");
}

static void fetch_seen_done(void *arg, enum imap_status status, uint32_t uidvalidity,
			    const uint32_t *uids, size_t n)
{
	struct imap *im = arg;

	(void)uidvalidity;
	(void)uids;
	(void)n;
	im->pending = NULL;
	enum session_effect e;
	if (status != IMAP_OK && status != IMAP_GONE) {
		imap_fetch_free(im);
		e = imap_no(im, "%s", imap_status_text(status));
	} else {
		e = fetch_answer(im);
	}
	imap_done(im, e);
}

/* All responses are out. Returns WAIT while \Seen is being stored, else
 * the effect of the tagged answer, which has been written. */
static enum session_effect fetch_finish(struct imap *im, bool *waiting_r)
{
	struct imap_fetch *f = im->fetch;

	*waiting_r = false;
	if (f->n_seen > 0) {
		im->pending = im->be->flags(im->be->ctx, im->view.mb, f->seen, f->n_seen, IMAP_FLAGS_ADD,
					    IMAP_SEEN, NULL, 0, fetch_seen_done, im);
		if (im->pending != NULL) {
			*waiting_r = true;
			return SESSION_EFFECT_WAIT;
		}
		imap_fetch_free(im);
		return imap_no(im, "%s", imap_status_text(IMAP_TEMPFAIL));
	}
	return fetch_answer(im);
}

void imap_fetch_drained(struct imap *im)
{
	struct imap_fetch *f = im->fetch;
	bool waiting;

	if (f == NULL)
		return;
	f->since_drain = 0;
	if (!fetch_pump(im)) {
		session_wait_drain(im->s);
		return;
	}
	enum session_effect e = fetch_finish(im, &waiting);
	if (!waiting)
		imap_done(im, e);
}

enum session_effect imap_cmd_fetch(struct imap *im)
{
	const struct imap_command *cmd = &im->cmd;
	const char *error = NULL;
	bool waiting;

	im->uid_cmd = cmd->uid;
	im->report = cmd->uid ? IMAP_REPORT_ALL : IMAP_REPORT_NO_EXPUNGE;
	if (cmd->nargs != 2 ||
	    (cmd->args[0].type != IMAP_ARG_ATOM && cmd->args[0].type != IMAP_ARG_NUMBER))
		return imap_bad(im, "Invalid arguments");

	if (im->state != IMAP_STATE_SELECTED)
		return imap_bad(im, "No mailbox selected");
	imap_fetch_free(im);
	struct imap_fetch *f = xcalloc(1, sizeof(*f));
	im->fetch = f;
	if (parse_items(f, imap_arg_next(&cmd->args[0]), cmd->uid, &error) < 0) {
		imap_fetch_free(im);
		return imap_bad(im, "%s", error);
	}
	if (imap_view_resolve(&im->view, cmd->args[0].str, cmd->args[0].len, cmd->uid, &f->idx, &f->n,
			      &error) < 0) {
		imap_fetch_free(im);
		return imap_bad(im, "%s", error);
	}

	size_t max = session_config(im->s)->write_buffer_max;
	f->budget = max / 4 < FETCH_PUMP_BUDGET ? max / 4 : FETCH_PUMP_BUDGET;
	f->chunk = max / 8 < FETCH_READ_CHUNK ? max / 8 : FETCH_READ_CHUNK;
	/* Many large items in one response must not fill the scratch
	 * buffer: past flush_at it goes out between two items. */
	f->flush_at = max / 8;
	buf_init(&f->scratch, max / 2 - 64);
	buf_init(&f->conv, 2 * FETCH_READ_CHUNK);
	buf_init(&f->mem, FETCH_FIELDS_MAX);
	if (f->need_reader)
		f->raw = xmalloc(FETCH_READ_CHUNK);

	if (!fetch_pump(im)) {
		session_wait_drain(im->s);
		return SESSION_EFFECT_WAIT;
	}
	return fetch_finish(im, &waiting);
}
