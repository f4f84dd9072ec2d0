/*
 * Mailbox commands (RFC 3501 6.3, 6.4.1-2; UNSELECT RFC 3691): SELECT,
 * EXAMINE, CLOSE, UNSELECT, CHECK, CREATE, DELETE, RENAME, SUBSCRIBE,
 * UNSUBSCRIBE and STATUS. LIST/LSUB are in imap_list.c, APPEND in
 * imap_append.c.
 *
 * Every change goes through the backend and answers later: the command
 * returns SESSION_EFFECT_WAIT and its callback writes the tagged response
 * and calls imap_done(). A callback reads its arguments again from
 * im->cmd, which stays valid until the command completes, so nothing
 * allocated here outlives the call that started the work. The backend
 * keeps copies of the names it is given: it has to anyway, since a session
 * may cancel and go away while the work is under way.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/xalloc.h"
#include "imap/imap_mailbox.h"
#include "imap/imap_private.h"
#include "mime/imapstr.h"

void imap_mailbox_info_free(struct imap_mailbox_info *v, size_t n)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i].name);
	free(v);
}

char *imap_mailbox_arg(const struct imap_arg *a, const char **error_r)
{
	const char *s;
	size_t len;

	if (!imap_arg_astring(a, &s, &len)) {
		*error_r = "Mailbox name expected";
		return NULL;
	}
	if (len == 0 || memchr(s, '\0', len) != NULL) {
		*error_r = "Invalid mailbox name";
		return NULL;
	}
	/* RFC 3501 5.1: INBOX in any case is the INBOX. */
	if (len == 5 && strncasecmp(s, "INBOX", 5) == 0)
		return xstrdup("INBOX");
	return xstrndup(s, len);
}

/* The command's name in capitals, for "CREATE completed". */
static void imap_mailbox_cmd_name(const struct imap *im, char *out, size_t size)
{
	size_t i = 0;

	for (; im->cmd.name[i] != '\0' && i + 1 < size; i++) {
		char c = im->cmd.name[i];
		out[i] = c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
	}
	out[i] = '\0';
}

/* The backend took the work (handle) or could not start it (NULL). */
static enum session_effect imap_mailbox_wait(struct imap *im, void *handle)
{
	if (handle == NULL)
		return imap_no(im, "%s", imap_status_text(IMAP_TEMPFAIL));
	im->pending = handle;
	return SESSION_EFFECT_WAIT;
}

/* CREATE DELETE RENAME SUBSCRIBE UNSUBSCRIBE: done, nothing else to say. */
static void imap_mailbox_done(void *arg, enum imap_status st, uint32_t uidvalidity, const uint32_t *uids, size_t n)
{
	struct imap *im = arg;
	char name[16];
	(void)uidvalidity;
	(void)uids;
	(void)n;

	im->pending = NULL;
	imap_mailbox_cmd_name(im, name, sizeof(name));
	if (st == IMAP_OK)
		imap_ok(im, "%s completed", name);
	else
		imap_no(im, "%s", imap_status_text(st));
	imap_done(im, SESSION_EFFECT_NONE);
}

/* ---------------------------------------------------------------- */
/* SELECT, EXAMINE                                                   */

/* The mailbox's keywords, each after a space; returns how many. */
static size_t imap_select_keywords(struct imap *im, struct buf *line)
{
	const char *const *kw = im->be->mailbox_keywords(im->be->ctx, im->view.mb);
	size_t n = 0;

	for (size_t i = 0; kw != NULL && i < IMAP_KEYWORDS_MAX; i++) {
		if (kw[i] != NULL) {
			buf_printf(line, " %s", kw[i]);
			n++;
		}
	}
	return n;
}

static void imap_select_done(void *arg, enum imap_status st, struct imap_mailbox *mb, struct imap_select_info *info)
{
	struct imap *im = arg;
	bool read_only = imap_command_is(&im->cmd, "EXAMINE");
	const char *error = NULL;

	im->pending = NULL;
	if (st != IMAP_OK || mb == NULL || info == NULL) {
		/* RFC 3501 6.3.1: a failed SELECT leaves no mailbox selected. */
		if (mb != NULL)
			im->be->mailbox_close(im->be->ctx, mb);
		imap_no(im, "%s", imap_status_text(st == IMAP_OK ? IMAP_TEMPFAIL : st));
		imap_done(im, SESSION_EFFECT_NONE);
		return;
	}
	char *name = imap_mailbox_arg(&im->cmd.args[0], &error);
	imap_view_open(im, mb, name != NULL ? name : "", read_only, info);
	free(name);
	im->state = IMAP_STATE_SELECTED;

	const struct imap_view *v = &im->view;
	struct buf line;
	buf_init(&line, 16 * 1024);
	/* RFC 3501 6.3.1 and 7.2.6: the flags, those that stick, the
	 * counts; keywords can be made up by any client (\*). */
	buf_printf(&line, "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft");
	/* The view tells FLAGS again once there are more keywords. */
	im->view.keywords_told = imap_select_keywords(im, &line);
	buf_printf(&line, ")\r\n* OK [PERMANENTFLAGS (");
	if (!read_only) {
		buf_printf(&line, "\\Answered \\Flagged \\Deleted \\Seen \\Draft");
		imap_select_keywords(im, &line);
		buf_printf(&line, " \\*");
	}
	buf_printf(&line, ")] %s\r\n", read_only ? "Read-only mailbox" : "Flags permitted");
	session_reply(im->s, "%.*s", (int)buf_len(&line), buf_ptr(&line));
	buf_free(&line);

	session_reply(im->s, "* %zu EXISTS\r\n* %zu RECENT\r\n", v->n, v->recent);
	for (size_t i = 0; i < v->n; i++) {
		if (!(v->msgs[i].flags & IMAP_SEEN)) {
			session_reply(im->s, "* OK [UNSEEN %zu] First unseen\r\n", i + 1);
			break;
		}
	}
	session_reply(im->s, "* OK [UIDVALIDITY %u] UIDs valid\r\n* OK [UIDNEXT %u] Predicted next UID\r\n",
		      v->uidvalidity, v->uidnext);
	imap_ok(im, "[%s] %s completed", read_only ? "READ-ONLY" : "READ-WRITE", read_only ? "EXAMINE" : "SELECT");
	imap_done(im, SESSION_EFFECT_NONE);
}

enum session_effect imap_cmd_select(struct imap *im)
{
	bool read_only = imap_command_is(&im->cmd, "EXAMINE");
	const char *error = NULL;

	if (im->cmd.nargs != 1)
		return imap_bad(im, "Syntax: %s mailbox", read_only ? "EXAMINE" : "SELECT");
	char *name = imap_mailbox_arg(&im->cmd.args[0], &error);
	if (name == NULL)
		return imap_bad(im, "%s", error);
	if (im->state == IMAP_STATE_SELECTED) {
		/* RFC 3501 6.3.1: the previous mailbox is closed first,
		 * without expunging; RFC 7162 3.2.11 gives this its code. */
		imap_view_close(im);
		im->state = IMAP_STATE_AUTH;
		session_reply(im->s, "* OK [CLOSED] Previous mailbox closed\r\n");
	}
	/* The new mailbox has nothing to report but its SELECT data. */
	im->report = IMAP_REPORT_NONE;
	void *h = im->be->mailbox_select(im->be->ctx, im->acct, name, read_only, imap_view_changed, im,
					 imap_select_done, im);
	free(name);
	return imap_mailbox_wait(im, h);
}

/* ---------------------------------------------------------------- */
/* CLOSE, UNSELECT, CHECK                                            */

static enum session_effect imap_close_now(struct imap *im)
{
	imap_view_close(im);
	im->state = IMAP_STATE_AUTH;
	im->report = IMAP_REPORT_NONE;
	return imap_ok(im, "%s completed", imap_command_is(&im->cmd, "UNSELECT") ? "UNSELECT" : "CLOSE");
}

static void imap_close_done(void *arg, enum imap_status st, uint32_t uidvalidity, const uint32_t *uids, size_t n)
{
	struct imap *im = arg;
	(void)uidvalidity;
	(void)uids;
	(void)n;

	im->pending = NULL;
	free(im->uids);
	im->uids = NULL;
	im->n_uids = 0;
	if (st != IMAP_OK) {
		/* Nothing was expunged, so the mailbox stays selected and the
		 * client may try again. */
		imap_no(im, "%s", imap_status_text(st));
	} else {
		imap_close_now(im);
	}
	imap_done(im, SESSION_EFFECT_NONE);
}

enum session_effect imap_cmd_close(struct imap *im)
{
	bool unselect = imap_command_is(&im->cmd, "UNSELECT");

	if (im->cmd.nargs != 0)
		return imap_bad(im, "%s takes no arguments", unselect ? "UNSELECT" : "CLOSE");
	if (unselect || im->view.read_only)
		return imap_close_now(im);

	/* RFC 3501 6.4.2: expunge silently, no EXPUNGE responses. */
	uint32_t *uids = NULL;
	size_t n = 0;
	imap__deleted_uids(im, NULL, 0, &uids, &n);
	if (n == 0) {
		free(uids);
		return imap_close_now(im);
	}
	free(im->uids);
	im->uids = uids;
	im->n_uids = n;
	im->report = IMAP_REPORT_NONE;
	void *h = im->be->expunge(im->be->ctx, im->view.mb, uids, n, imap_close_done, im);
	if (h == NULL) {
		free(im->uids);
		im->uids = NULL;
		im->n_uids = 0;
	}
	return imap_mailbox_wait(im, h);
}

enum session_effect imap_cmd_check(struct imap *im)
{
	/* RFC 3501 6.4.1: every change is on disk once it is answered, so
	 * there is nothing to do but report what happened. */
	if (im->cmd.nargs != 0)
		return imap_bad(im, "CHECK takes no arguments");
	return imap_ok(im, "CHECK completed");
}

/* ---------------------------------------------------------------- */
/* CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE                    */

/* Whether a new mailbox may have the name: 7-bit modified UTF-7 (RFC 3501
 * 5.1.3: "&" starts a run of modified BASE64 that "-" ends), no LIST
 * wildcards (RFC 3501 5.1: such a name could never be listed alone) and
 * no control characters, as Dovecot has it. */
static bool imap_mailbox_name_ok(const char *name)
{
	for (const unsigned char *p = (const unsigned char *)name; *p != '\0'; p++) {
		if (*p == '*' || *p == '%' || *p < 0x20 || *p >= 0x7f)
			return false;
		if (*p != '&')
			continue;
		p++;
		while ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '+' ||
		       *p == ',')
			p++;
		if (*p != '-')
			return false;
	}
	return true;
}

enum session_effect imap_cmd_create(struct imap *im)
{
	const char *error = NULL;

	if (im->cmd.nargs != 1)
		return imap_bad(im, "Syntax: CREATE mailbox");
	char *name = imap_mailbox_arg(&im->cmd.args[0], &error);
	if (name == NULL)
		return imap_bad(im, "%s", error);
	/* RFC 3501 6.3.3: a trailing delimiter only says that names will
	 * be made under this one. */
	size_t len = strlen(name);
	while (len > 0 && name[len - 1] == IMAP_DELIM)
		name[--len] = '\0';
	if (len == 0 || !imap_mailbox_name_ok(name)) {
		free(name);
		return imap_no(im, "[CANNOT] Invalid mailbox name");
	}
	if (strcasecmp(name, "INBOX") == 0) {
		free(name);
		return imap_no(im, "%s", imap_status_text(IMAP_ALREADYEXISTS));
	}
	void *h = im->be->create(im->be->ctx, im->acct, name, imap_mailbox_done, im);
	free(name);
	return imap_mailbox_wait(im, h);
}

enum session_effect imap_cmd_delete(struct imap *im)
{
	const char *error = NULL;

	if (im->cmd.nargs != 1)
		return imap_bad(im, "Syntax: DELETE mailbox");
	char *name = imap_mailbox_arg(&im->cmd.args[0], &error);
	if (name == NULL)
		return imap_bad(im, "%s", error);
	/* RFC 3501 6.3.4: INBOX cannot be deleted; the backend says so. */
	void *h = im->be->delete_(im->be->ctx, im->acct, name, imap_mailbox_done, im);
	free(name);
	return imap_mailbox_wait(im, h);
}

enum session_effect imap_cmd_rename(struct imap *im)
{
	const char *error = NULL;

	if (im->cmd.nargs != 2)
		return imap_bad(im, "Syntax: RENAME mailbox new-name");
	char *from = imap_mailbox_arg(&im->cmd.args[0], &error);
	if (from == NULL)
		return imap_bad(im, "%s", error);
	char *to = imap_mailbox_arg(imap_arg_next(&im->cmd.args[0]), &error);
	if (to == NULL) {
		free(from);
		return imap_bad(im, "%s", error);
	}
	/* INBOX always exists, so nothing can become it. Renaming INBOX
	 * moves its messages and leaves it empty (RFC 3501 6.3.5): the
	 * backend does that. */
	if (strcmp(to, "INBOX") == 0) {
		free(from);
		free(to);
		return imap_no(im, "%s", imap_status_text(IMAP_ALREADYEXISTS));
	}
	if (!imap_mailbox_name_ok(to)) {
		free(from);
		free(to);
		return imap_no(im, "[CANNOT] Invalid mailbox name");
	}
	void *h = im->be->rename(im->be->ctx, im->acct, from, to, imap_mailbox_done, im);
	free(from);
	free(to);
	return imap_mailbox_wait(im, h);
}

enum session_effect imap_cmd_subscribe(struct imap *im)
{
	bool on = imap_command_is(&im->cmd, "SUBSCRIBE");
	const char *error = NULL;

	if (im->cmd.nargs != 1)
		return imap_bad(im, "Syntax: %s mailbox", on ? "SUBSCRIBE" : "UNSUBSCRIBE");
	char *name = imap_mailbox_arg(&im->cmd.args[0], &error);
	if (name == NULL)
		return imap_bad(im, "%s", error);
	void *h = im->be->subscribe(im->be->ctx, im->acct, name, on, imap_mailbox_done, im);
	free(name);
	return imap_mailbox_wait(im, h);
}

/* ---------------------------------------------------------------- */
/* STATUS                                                            */

static const char *const imap_status_items[] = { "MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN" };

/* Which of imap_status_items the item is, or -1. */
static int imap_status_item(const struct imap_arg *a)
{
	if (a->type != IMAP_ARG_ATOM)
		return -1;
	for (size_t i = 0; i < sizeof(imap_status_items) / sizeof(imap_status_items[0]); i++) {
		if (strcasecmp(a->str, imap_status_items[i]) == 0)
			return (int)i;
	}
	return -1;
}

static void imap_status_done(void *arg, enum imap_status st, const struct imap_status_info *info)
{
	struct imap *im = arg;
	const char *error = NULL;

	im->pending = NULL;
	if (st != IMAP_OK || info == NULL) {
		imap_no(im, "%s", imap_status_text(st == IMAP_OK ? IMAP_TEMPFAIL : st));
		imap_done(im, SESSION_EFFECT_NONE);
		return;
	}
	char *name = imap_mailbox_arg(&im->cmd.args[0], &error);
	const struct imap_arg *list = imap_arg_next(&im->cmd.args[0]);
	const uint32_t values[] = { info->messages, info->recent, info->uidnext, info->uidvalidity, info->unseen };
	struct buf line;

	buf_init(&line, 64 * 1024);
	buf_printf(&line, "* STATUS ");
	imapstr_write_astring(&line, name != NULL ? name : "", name != NULL ? strlen(name) : 0);
	buf_printf(&line, " (");
	/* RFC 3501 7.2.4: the items in the order they were asked for. */
	const struct imap_arg *a = list + 1;
	for (uint32_t i = 0; i < list->count; i++, a = imap_arg_next(a)) {
		int k = imap_status_item(a);
		buf_printf(&line, "%s%s %u", i > 0 ? " " : "", imap_status_items[k], values[k]);
	}
	buf_printf(&line, ")");
	session_reply(im->s, "%.*s\r\n", (int)buf_len(&line), buf_ptr(&line));
	buf_free(&line);
	free(name);
	imap_ok(im, "STATUS completed");
	imap_done(im, SESSION_EFFECT_NONE);
}

enum session_effect imap_cmd_status(struct imap *im)
{
	const char *error = NULL;

	if (im->cmd.nargs != 2)
		return imap_bad(im, "Syntax: STATUS mailbox (items)");
	const struct imap_arg *list = imap_arg_next(&im->cmd.args[0]);
	if (list->type != IMAP_ARG_LIST || list->count == 0)
		return imap_bad(im, "Syntax: STATUS mailbox (items)");
	const struct imap_arg *a = list + 1;
	for (uint32_t i = 0; i < list->count; i++, a = imap_arg_next(a)) {
		if (imap_status_item(a) < 0)
			return imap_bad(im, "Unknown STATUS item");
	}
	char *name = imap_mailbox_arg(&im->cmd.args[0], &error);
	if (name == NULL)
		return imap_bad(im, "%s", error);
	void *h = im->be->status(im->be->ctx, im->acct, name, imap_status_done, im);
	free(name);
	return imap_mailbox_wait(im, h);
}
