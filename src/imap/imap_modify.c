/*
 * Commands that change messages of the selected mailbox: STORE (RFC 3501
 * 6.4.6), COPY (6.4.7) and MOVE (RFC 6851) with COPYUID (RFC 4315),
 * EXPUNGE (6.4.3) and UID EXPUNGE (RFC 4315 2.1).
 *
 * The work is the backend's; the session waits for its answer. Its change
 * notifications (EXPUNGE, new messages in the selected mailbox) arrive
 * before that answer and are reported by imap_done() as the command's kind
 * allows. STORE is different in one way: it reports the flags it set
 * itself (unless .SILENT), so it brings the view's copies up to date
 * first, and the view then sees nothing left to tell about them.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/xalloc.h"
#include "imap/imap_mailbox.h"
#include "imap/imap_private.h"

/* A COPYUID longer than this is left out of the tagged OK, which the
 * session holds in a bounded buffer (RFC 4315 lets a server omit it). */
#define IMAP_COPYUID_TAGGED_MAX 8192
/* The FETCH responses of one STORE stay below the session's output limit
 * (8 MiB), which a STORE 1:* on a very large mailbox could otherwise
 * reach and which would end the session; past it the remaining messages
 * are not told (RFC 3501 6.4.6 only says SHOULD; a FETCH shows them). */
#define IMAP_STORE_REPLY_MAX (6 * 1024 * 1024)

int imap_uidset_write(struct buf *out, const uint32_t *uids, size_t n)
{
	struct buf set;
	int rc = 0;

	/* Built apart so that a set that does not fit leaves out as it was. */
	buf_init(&set, buf_room(out));
	for (size_t i = 0; i < n && rc == 0;) {
		size_t j = i;
		while (j + 1 < n && uids[j] != UINT32_MAX && uids[j + 1] == uids[j] + 1)
			j++;
		rc = j == i ? buf_printf(&set, "%s%u", i > 0 ? "," : "", uids[i])
			    : buf_printf(&set, "%s%u:%u", i > 0 ? "," : "", uids[i], uids[j]);
		i = j + 1;
	}
	if (rc == 0)
		rc = buf_append(out, buf_ptr(&set), buf_len(&set));
	buf_free(&set);
	return rc;
}

/* The set argument (an atom such as "1:3,7:*" or a number) as view
 * indexes. Returns 0, or -1 with *error_r. */
static int imap_modify_set(struct imap *im, const struct imap_arg *a, uint32_t **idx_r, size_t *n_r,
			   const char **error_r)
{
	if (a->type != IMAP_ARG_ATOM && a->type != IMAP_ARG_NUMBER) {
		*error_r = "Invalid message set";
		return -1;
	}
	return imap_view_resolve(&im->view, a->str, a->len, im->cmd.uid, idx_r, n_r, error_r);
}

/* The UIDs of view indexes, kept in im->uids until the backend answers. */
static void imap_modify_keep_uids(struct imap *im, const uint32_t *idx, size_t n)
{
	free(im->uids);
	im->uids = xmalloc((n > 0 ? n : 1) * sizeof(*im->uids));
	for (size_t i = 0; i < n; i++)
		im->uids[i] = im->view.msgs[idx[i]].uid;
	im->n_uids = n;
}

static void imap_modify_drop_uids(struct imap *im)
{
	free(im->uids);
	im->uids = NULL;
	im->n_uids = 0;
}

static enum session_effect imap_modify_wait(struct imap *im, void *handle)
{
	if (handle == NULL) {
		imap_modify_drop_uids(im);
		return imap_no(im, "%s", imap_status_text(IMAP_TEMPFAIL));
	}
	im->pending = handle;
	return SESSION_EFFECT_WAIT;
}

/* The message with uid in v[0..n) (ascending), or NULL. */
static const struct imap_msg *imap_modify_find(const struct imap_msg *v, size_t n, uint32_t uid)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (v[mid].uid == uid)
			return &v[mid];
		if (v[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

void imap__deleted_uids(struct imap *im, const uint32_t *idx, size_t nidx, uint32_t **uids_r, size_t *n_r)
{
	const struct imap_view *v = &im->view;
	size_t count = idx != NULL ? nidx : v->n;
	struct imap_msg *now = NULL;
	size_t nnow = 0;

	*uids_r = NULL;
	*n_r = 0;
	if (count == 0)
		return;
	uint32_t first = v->msgs[idx != NULL ? idx[0] : 0].uid;
	uint32_t last = v->msgs[idx != NULL ? idx[nidx - 1] : v->n - 1].uid;
	/* Only UIDs the view holds: loading newer ones would claim their
	 * \Recent before the client has heard of them. */
	bool fresh = im->be->mailbox_messages(im->be->ctx, v->mb, first, last, &now, &nnow) == 0;
	uint32_t *uids = xmalloc(count * sizeof(*uids));
	size_t n = 0;
	for (size_t i = 0; i < count; i++) {
		const struct imap_msg *m = &v->msgs[idx != NULL ? idx[i] : i];
		if (fresh) {
			/* Gone already (another session expunged it): nothing
			 * left to remove. */
			m = imap_modify_find(now, nnow, m->uid);
			if (m == NULL)
				continue;
		}
		if (m->flags & IMAP_DELETED)
			uids[n++] = m->uid;
	}
	free(now);
	if (n == 0) {
		free(uids);
		uids = NULL;
	}
	*uids_r = uids;
	*n_r = n;
}

/* ---------------------------------------------------------------- */
/* STORE                                                             */

/* "FLAGS", "+FLAGS.SILENT"...: the mode and whether it is silent. */
static int imap_store_item(const struct imap_arg *a, enum imap_flags_mode *mode_r, bool *silent_r)
{
	const char *s = a->str;

	if (a->type != IMAP_ARG_ATOM)
		return -1;
	*mode_r = IMAP_FLAGS_SET;
	if (*s == '+' || *s == '-') {
		*mode_r = *s == '+' ? IMAP_FLAGS_ADD : IMAP_FLAGS_REMOVE;
		s++;
	}
	if (strcasecmp(s, "FLAGS") == 0)
		*silent_r = false;
	else if (strcasecmp(s, "FLAGS.SILENT") == 0)
		*silent_r = true;
	else
		return -1;
	return 0;
}

/* The flag arguments: one list, or flags separated by spaces (RFC 3501 9
 * store-att-flags). Returns 0, or -1 with *error_r. */
static int imap_store_flags(const struct imap_arg *a, size_t nargs, uint32_t *flags_r, const char ***names_r,
			    size_t *n_r, const char **error_r)
{
	*flags_r = 0;
	*names_r = NULL;
	*n_r = 0;
	for (size_t i = 0; i < nargs; i++, a = imap_arg_next(a)) {
		uint32_t f = 0;
		if (nargs > 1 && a->type == IMAP_ARG_LIST) {
			free(*names_r);
			*names_r = NULL;
			*n_r = 0;
			*error_r = "Flags must be one list or flags separated by spaces";
			return -1;
		}
		const char **names = NULL;
		size_t n = 0;
		if (imap_parse_flags(a, &f, &names, &n, error_r) < 0) {
			free(*names_r);
			*names_r = NULL;
			*n_r = 0;
			return -1;
		}
		*flags_r |= f;
		if (n > 0) {
			*names_r = xrealloc(*names_r, (*n_r + n) * sizeof(**names_r));
			memcpy(*names_r + *n_r, names, n * sizeof(*names));
			*n_r += n;
		}
		free(names);
	}
	return 0;
}

/* The index has the new flags: copy them into the view, and tell them. */
static void imap_store_report(struct imap *im)
{
	struct imap_view *v = &im->view;
	struct imap_msg *now = NULL;
	size_t nnow = 0;

	if (im->n_uids == 0)
		return;
	if (im->be->mailbox_messages(im->be->ctx, v->mb, im->uids[0], im->uids[im->n_uids - 1], &now, &nnow) == 0) {
		for (size_t i = 0; i < nnow; i++) {
			uint32_t seq = imap_view_seq(v, now[i].uid);
			if (seq == 0)
				continue;
			v->msgs[seq - 1].flags = now[i].flags;
			v->msgs[seq - 1].keywords = now[i].keywords;
		}
		free(now);
	}
	/* What else happened comes first: a FLAGS that names a new keyword
	 * before the FETCH that uses it. The view's copies are current, so
	 * this STORE's own changes are not among it. */
	imap_view_report(im, im->report);
	if (im->silent)
		return;

	/* One reply for them all; each line is whole (flags and 26
	 * keywords fit in a few KiB). */
	struct buf out, line;
	buf_init(&out, IMAP_STORE_REPLY_MAX);
	buf_init(&line, 16 * 1024);
	for (size_t i = 0; i < im->n_uids; i++) {
		uint32_t seq = imap_view_seq(v, im->uids[i]);
		if (seq == 0)
			continue;
		buf_reset(&line);
		if (im->uid_cmd)
			buf_printf(&line, "* %u FETCH (UID %u FLAGS ", seq, im->uids[i]);
		else
			buf_printf(&line, "* %u FETCH (FLAGS ", seq);
		imap_write_flags(im, &line, &v->msgs[seq - 1]);
		buf_printf(&line, ")\r\n");
		if (buf_append(&out, buf_ptr(&line), buf_len(&line)) < 0)
			break;
	}
	if (buf_len(&out) > 0)
		session_reply(im->s, "%.*s", (int)buf_len(&out), buf_ptr(&out));
	buf_free(&line);
	buf_free(&out);
}

static void imap_store_done(void *arg, enum imap_status st, uint32_t uidvalidity, const uint32_t *uids, size_t n)
{
	struct imap *im = arg;
	(void)uidvalidity;
	(void)uids;
	(void)n;

	im->pending = NULL;
	if (st == IMAP_OK) {
		imap_store_report(im);
		imap_ok(im, "STORE completed");
	} else {
		imap_no(im, "%s", imap_status_text(st));
	}
	imap_modify_drop_uids(im);
	imap_done(im, SESSION_EFFECT_NONE);
}

enum session_effect imap_cmd_store(struct imap *im)
{
	enum imap_flags_mode mode;
	bool silent = false;
	const char *error = NULL;

	if (im->cmd.nargs < 3)
		return imap_bad(im, "Syntax: STORE set [+|-]FLAGS[.SILENT] (flags)");
	const struct imap_arg *set = &im->cmd.args[0];
	const struct imap_arg *item = imap_arg_next(set);
	if (imap_store_item(item, &mode, &silent) < 0)
		return imap_bad(im, "Unknown STORE item");

	uint32_t flags = 0;
	const char **names = NULL;
	size_t nnames = 0;
	if (imap_store_flags(imap_arg_next(item), im->cmd.nargs - 2, &flags, &names, &nnames, &error) < 0)
		return imap_bad(im, "%s", error);

	uint32_t *idx = NULL;
	size_t n = 0;
	if (imap_modify_set(im, set, &idx, &n, &error) < 0) {
		free(names);
		return imap_bad(im, "%s", error);
	}
	if (im->view.read_only) {
		free(names);
		free(idx);
		return imap_no(im, "Mailbox is read-only");
	}
	if (n == 0) {
		free(names);
		free(idx);
		return imap_ok(im, "STORE completed");
	}
	imap_modify_keep_uids(im, idx, n);
	free(idx);
	im->silent = silent;
	void *h = im->be->flags(im->be->ctx, im->view.mb, im->uids, im->n_uids, mode, flags, names, nnames,
				imap_store_done, im);
	free(names);
	return imap_modify_wait(im, h);
}

/* ---------------------------------------------------------------- */
/* COPY, MOVE                                                        */

/* "[COPYUID v src dst]" for the pairs whose target uid is known. */
static void imap_copyuid(struct imap *im, struct buf *code, uint32_t uidvalidity, const uint32_t *dst, size_t n)
{
	uint32_t *a = xmalloc((n > 0 ? n : 1) * sizeof(*a));
	uint32_t *b = xmalloc((n > 0 ? n : 1) * sizeof(*b));
	size_t k = 0;

	for (size_t i = 0; i < n && i < im->n_uids; i++) {
		if (dst[i] != 0) {
			a[k] = im->uids[i];
			b[k] = dst[i];
			k++;
		}
	}
	if (k > 0) {
		buf_printf(code, "[COPYUID %u ", uidvalidity);
		if (imap_uidset_write(code, a, k) < 0 || buf_printf(code, " ") < 0 || imap_uidset_write(code, b, k) < 0 ||
		    buf_printf(code, "] ") < 0)
			buf_reset(code);
	}
	free(a);
	free(b);
}

static void imap_copy_done(void *arg, enum imap_status st, uint32_t uidvalidity, const uint32_t *uids, size_t n)
{
	struct imap *im = arg;

	im->pending = NULL;
	if (st == IMAP_OK) {
		struct buf code;
		buf_init(&code, 4 * 1024 * 1024);
		if (uids != NULL)
			imap_copyuid(im, &code, uidvalidity, uids, n);
		if (im->move) {
			/* RFC 6851 4.3: COPYUID untagged, before the EXPUNGEs
			 * that imap_done() sends ahead of the tagged OK. */
			if (buf_len(&code) > 0)
				session_reply(im->s, "* OK %.*sMoved UIDs\r\n", (int)buf_len(&code), buf_ptr(&code));
			imap_ok(im, "MOVE completed");
		} else {
			if (buf_len(&code) > IMAP_COPYUID_TAGGED_MAX)
				buf_reset(&code);
			imap_ok(im, "%.*sCOPY completed", (int)buf_len(&code), buf_ptr(&code));
		}
		buf_free(&code);
	} else if (st == IMAP_NONEXISTENT) {
		/* RFC 3501 6.4.7: the client may CREATE it and try again. */
		imap_no(im, "[TRYCREATE] Mailbox does not exist");
	} else {
		imap_no(im, "%s", imap_status_text(st));
	}
	imap_modify_drop_uids(im);
	imap_done(im, SESSION_EFFECT_NONE);
}

enum session_effect imap_cmd_copy(struct imap *im)
{
	bool move = imap_command_is(&im->cmd, "MOVE");
	const char *error = NULL;

	if (im->cmd.nargs != 2)
		return imap_bad(im, "Syntax: %s set mailbox", move ? "MOVE" : "COPY");
	uint32_t *idx = NULL;
	size_t n = 0;
	if (imap_modify_set(im, &im->cmd.args[0], &idx, &n, &error) < 0)
		return imap_bad(im, "%s", error);
	char *target = imap_mailbox_arg(imap_arg_next(&im->cmd.args[0]), &error);
	if (target == NULL) {
		free(idx);
		return imap_bad(im, "%s", error);
	}
	if (move && im->view.read_only) {
		free(idx);
		free(target);
		return imap_no(im, "Mailbox is read-only");
	}
	if (n == 0) {
		/* Nothing matched (UIDs that are gone): fine, and nothing to
		 * give a COPYUID for. */
		free(idx);
		free(target);
		return imap_ok(im, "%s completed", move ? "MOVE" : "COPY");
	}
	imap_modify_keep_uids(im, idx, n);
	free(idx);
	im->move = move;
	void *h = im->be->copy(im->be->ctx, im->view.mb, im->uids, im->n_uids, target, move, imap_copy_done, im);
	free(target);
	return imap_modify_wait(im, h);
}

/* ---------------------------------------------------------------- */
/* EXPUNGE, UID EXPUNGE                                              */

static void imap_expunge_done(void *arg, enum imap_status st, uint32_t uidvalidity, const uint32_t *uids, size_t n)
{
	struct imap *im = arg;
	(void)uidvalidity;
	(void)uids;
	(void)n;

	im->pending = NULL;
	imap_modify_drop_uids(im);
	if (st == IMAP_OK)
		imap_ok(im, "EXPUNGE completed");
	else
		imap_no(im, "%s", imap_status_text(st));
	imap_done(im, SESSION_EFFECT_NONE);
}

enum session_effect imap_cmd_expunge(struct imap *im)
{
	const char *error = NULL;
	uint32_t *idx = NULL;
	size_t nidx = 0;

	if (im->cmd.nargs != (im->cmd.uid ? 1u : 0u))
		return imap_bad(im, im->cmd.uid ? "Syntax: UID EXPUNGE set" : "EXPUNGE takes no arguments");
	if (im->cmd.uid && imap_modify_set(im, &im->cmd.args[0], &idx, &nidx, &error) < 0)
		return imap_bad(im, "%s", error);
	if (im->view.read_only) {
		free(idx);
		return imap_no(im, "Mailbox is read-only");
	}
	uint32_t *uids = NULL;
	size_t n = 0;
	/* RFC 4315 2.1: only those of the set; an empty set removes nothing. */
	if (!im->cmd.uid || nidx > 0)
		imap__deleted_uids(im, im->cmd.uid ? idx : NULL, nidx, &uids, &n);
	free(idx);
	if (n == 0)
		return imap_ok(im, "EXPUNGE completed");
	free(im->uids);
	im->uids = uids;
	im->n_uids = n;
	void *h = im->be->expunge(im->be->ctx, im->view.mb, uids, n, imap_expunge_done, im);
	return imap_modify_wait(im, h);
}
