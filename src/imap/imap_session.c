/*
 * IMAP server session (RFC 3501): lines and literals become commands in the
 * parser (imap_parse.h), a static table says in which states each command
 * may run, and the command files (imap_private.h) do the work.
 *
 * Ordering of responses: every command ends with one tagged response, and
 * the untagged updates about the selected mailbox that its kind allows
 * (RFC 3501 7.4.1) must come before it. So imap_ok/no/bad do not send the
 * tagged line at once; they hold it, and it goes out after the updates -
 * when the command returns (it finished at once) or in imap_done() (it
 * waited for the backend or for its output to drain). A command therefore
 * never has to think about where the updates go.
 *
 * What it must never do: answer a command before the previous one has
 * completed, send a continuation for a literal the parser will refuse, let
 * a password reach the trace, or report an EXPUNGE while the client may be
 * using message numbers (FETCH, STORE, SEARCH).
 */
#include "imap/imap_session.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/xalloc.h"
#include "imap/imap_private.h"

/* The whole command (lines, CRLFs, literals) may be this much larger than
 * the largest literal: room for APPEND's arguments around its message and
 * for ordinary commands that carry several small literals. */
#define IMAP_COMMAND_SLACK (1024 * 1024)
/* One tagged response (and a BYE behind it). Mostly short, but a COPYUID
 * of many scattered messages is long; the session's output takes 8 MiB. */
#define IMAP_HELD_MAX (4 * 1024 * 1024)

/* The session's private part; the command files only see struct imap. */
struct imap_session {
	struct imap im;             /* first: imap_session.c casts back */
	struct buf held;            /* the tagged completion, sent after the updates */
	bool close_after;           /* a BYE was held: close once it is out */
	bool cmd_open;              /* a command's lines are still arriving */
	bool secret_lines;          /* they belong to LOGIN or AUTHENTICATE */
};

static struct imap_session *imap__session(struct imap *im)
{
	return (struct imap_session *)im;
}

/* ---------------------------------------------------------------- */
/* Completion responses                                              */

static void imap_hold(struct imap *im, const char *status, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

static void imap_hold(struct imap *im, const char *status, const char *fmt, va_list ap)
{
	struct imap_session *is = imap__session(im);

	buf_printf(&is->held, "%s %s ", im->tag != NULL ? im->tag : "*", status);
	buf_vprintf(&is->held, fmt, ap);
	buf_append(&is->held, "\r\n", 2);
}

enum session_effect imap_ok(struct imap *im, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	imap_hold(im, "OK", fmt, ap);
	va_end(ap);
	return SESSION_EFFECT_NONE;
}

enum session_effect imap_no(struct imap *im, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	imap_hold(im, "NO", fmt, ap);
	va_end(ap);
	return SESSION_EFFECT_NONE;
}

enum session_effect imap_bad(struct imap *im, const char *fmt, ...)
{
	struct imap_session *is = imap__session(im);
	va_list ap;

	va_start(ap, fmt);
	imap_hold(im, "BAD", fmt, ap);
	va_end(ap);
	/* Contract 5: a client that keeps sending garbage is shown out. */
	if (++im->bad_commands >= session_config(im->s)->max_bad_commands) {
		buf_printf(&is->held, "* BYE Too many invalid commands\r\n");
		is->close_after = true;
		return SESSION_EFFECT_CLOSE;
	}
	return SESSION_EFFECT_NONE;
}

const char *imap_status_text(enum imap_status st)
{
	/* RFC 5530 response codes. */
	switch (st) {
	case IMAP_OK:
		return "Completed";
	case IMAP_NONEXISTENT:
		return "[NONEXISTENT] No such mailbox";
	case IMAP_ALREADYEXISTS:
		return "[ALREADYEXISTS] Mailbox already exists";
	case IMAP_CANNOT:
		return "[CANNOT] Operation not permitted";
	case IMAP_OVERQUOTA:
		return "[OVERQUOTA] Quota exceeded";
	case IMAP_LIMIT:
		return "[LIMIT] Too many sessions for this account";
	case IMAP_GONE:
		return "[EXPUNGEISSUED] The message was expunged";
	case IMAP_TEMPFAIL:
		break;
	}
	return "[UNAVAILABLE] Temporary server failure, try again later";
}

/* Send the updates the command allows, then its held tagged response. */
static void imap_flush(struct imap_session *is)
{
	struct imap *im = &is->im;

	if (buf_len(&is->held) == 0)
		return;
	if (im->state == IMAP_STATE_SELECTED && im->view.gone) {
		/* Dovecot does the same: nothing sensible is left to show. */
		session_reply(im->s, "* BYE Selected mailbox was deleted or renamed, have to disconnect\r\n");
		is->close_after = true;
	} else if (im->state == IMAP_STATE_SELECTED && im->view.mb != NULL && im->report != IMAP_REPORT_NONE) {
		imap_view_report(im, im->report);
	}
	session_reply(im->s, "%.*s", (int)buf_len(&is->held), buf_ptr(&is->held));
	buf_reset(&is->held);
}

/* A command returned: unless it waits, it is complete. */
static enum session_effect imap_finish(struct imap_session *is, enum session_effect e)
{
	if (e == SESSION_EFFECT_WAIT)
		return e;
	imap_flush(is);
	return is->close_after ? SESSION_EFFECT_CLOSE : e;
}

void imap_done(struct imap *im, enum session_effect then)
{
	struct imap_session *is = imap__session(im);

	im->pending = NULL;
	imap_flush(is);
	session_resume(im->s, is->close_after ? SESSION_EFFECT_CLOSE : then);
}

static bool imap_login_allowed(const struct imap *im)
{
	/* Contract 7: passwords only under TLS, or from loopback when the
	 * config allows it. */
	return session_tls_active(im->s) ||
	       (session_config(im->s)->allow_plaintext_auth_loopback && session_peer_loopback(im->s));
}

void imap_capabilities(struct imap *im, struct buf *out)
{
	buf_printf(out, "IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE UIDPLUS MOVE SPECIAL-USE CHILDREN "
			"UNSELECT");
	if (im->state != IMAP_STATE_NOT_AUTH)
		return;
	if (session_starttls_allowed(im->s))
		buf_printf(out, " STARTTLS");
	/* RFC 3501 6.2.3: LOGINDISABLED where LOGIN would be refused. */
	buf_printf(out, "%s", imap_login_allowed(im) ? " AUTH=PLAIN AUTH=LOGIN" : " LOGINDISABLED");
}

/* ---------------------------------------------------------------- */
/* Commands of any state                                             */

static enum session_effect imap_no_args(struct imap *im, const char *name)
{
	return imap_bad(im, "%s takes no arguments", name);
}

static enum session_effect imap_cmd_capability(struct imap *im)
{
	struct buf caps;

	if (im->cmd.nargs != 0)
		return imap_no_args(im, "CAPABILITY");
	buf_init(&caps, 1024);
	imap_capabilities(im, &caps);
	session_reply(im->s, "* CAPABILITY %.*s\r\n", (int)buf_len(&caps), buf_ptr(&caps));
	buf_free(&caps);
	return imap_ok(im, "CAPABILITY completed");
}

static enum session_effect imap_cmd_noop(struct imap *im)
{
	/* The updates the flush sends are the point of NOOP (RFC 3501 6.1.2). */
	if (im->cmd.nargs != 0)
		return imap_no_args(im, "NOOP");
	return imap_ok(im, "NOOP completed");
}

static enum session_effect imap_cmd_logout(struct imap *im)
{
	if (im->cmd.nargs != 0)
		return imap_no_args(im, "LOGOUT");
	im->report = IMAP_REPORT_NONE;
	im->state = IMAP_STATE_LOGOUT;
	session_reply(im->s, "* BYE postbote logging out\r\n");
	imap_ok(im, "LOGOUT completed");
	return SESSION_EFFECT_CLOSE;
}

static enum session_effect imap_cmd_id(struct imap *im)
{
	/* RFC 2971 3.1: one argument, a list of pairs or NIL; what the client
	 * says about itself changes nothing here. */
	if (im->cmd.nargs != 1 || (im->cmd.args[0].type != IMAP_ARG_LIST && im->cmd.args[0].type != IMAP_ARG_NIL))
		return imap_bad(im, "Syntax: ID (\"name\" \"value\" ...) or ID NIL");
	session_reply(im->s, "* ID (\"name\" \"postbote\")\r\n");
	return imap_ok(im, "ID completed");
}

/* ---------------------------------------------------------------- */
/* Not authenticated                                                 */

static enum session_effect imap_cmd_starttls(struct imap *im)
{
	if (im->cmd.nargs != 0)
		return imap_no_args(im, "STARTTLS");
	if (!session_starttls_allowed(im->s))
		return imap_bad(im, session_tls_active(im->s) ? "TLS is already active"
							     : "STARTTLS is not offered here");
	imap_ok(im, "Begin TLS negotiation now");
	return SESSION_EFFECT_STARTTLS;
}

/* ---------------------------------------------------------------- */
/* Authenticated                                                     */

static enum session_effect imap_cmd_enable(struct imap *im)
{
	/* RFC 5161 3.1: we know no extension that needs enabling, so the
	 * list of those enabled is empty. */
	if (im->cmd.nargs == 0)
		return imap_bad(im, "Syntax: ENABLE capability ...");
	for (size_t i = 0; i < im->cmd.ntokens; i++) {
		if (im->cmd.args[i].type != IMAP_ARG_ATOM)
			return imap_bad(im, "Syntax: ENABLE capability ...");
	}
	session_reply(im->s, "* ENABLED\r\n");
	return imap_ok(im, "ENABLE completed");
}

static enum session_effect imap_cmd_namespace(struct imap *im)
{
	/* RFC 2342 5: one personal namespace, "/" as the delimiter. */
	if (im->cmd.nargs != 0)
		return imap_no_args(im, "NAMESPACE");
	session_reply(im->s, "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n");
	return imap_ok(im, "NAMESPACE completed");
}

static enum session_effect imap_cmd_idle(struct imap *im)
{
	if (im->cmd.nargs != 0)
		return imap_no_args(im, "IDLE");
	if (im->state == IMAP_STATE_SELECTED && im->view.gone) {
		session_reply(im->s, "* BYE Selected mailbox was deleted or renamed, have to disconnect\r\n");
		return SESSION_EFFECT_CLOSE;
	}
	/* RFC 2177 3: the continuation, then updates as they happen. */
	im->idle_tag = xstrdup(im->tag);
	im->uid_cmd = false;
	session_reply(im->s, "+ idling\r\n");
	if (im->state == IMAP_STATE_SELECTED)
		imap_view_report(im, IMAP_REPORT_ALL);
	return SESSION_EFFECT_NONE;
}

/* A line while idling: "DONE" ends it, anything else is an error that
 * ends it too (the client is no longer in step with IDLE). */
static enum session_effect imap_idle_line(struct imap_session *is, const char *line, size_t len)
{
	struct imap *im = &is->im;
	enum session_effect e = SESSION_EFFECT_NONE;

	if (im->state == IMAP_STATE_SELECTED && im->view.gone)
		return SESSION_EFFECT_CLOSE; /* the BYE went out with the change */
	im->tag = im->idle_tag;
	im->report = im->state == IMAP_STATE_SELECTED ? IMAP_REPORT_ALL : IMAP_REPORT_NONE;
	im->uid_cmd = false;
	if (len == 4 && strncasecmp(line, "DONE", 4) == 0)
		imap_ok(im, "IDLE terminated");
	else
		e = imap_bad(im, "Expected DONE to end IDLE");
	e = imap_finish(is, e);
	free(im->idle_tag);
	im->idle_tag = NULL;
	im->tag = "*";
	return e;
}

/* ---------------------------------------------------------------- */
/* Dispatch                                                          */

#define IMAP_IN_NOT_AUTH (1u << IMAP_STATE_NOT_AUTH)
#define IMAP_IN_AUTH     (1u << IMAP_STATE_AUTH)
#define IMAP_IN_SELECTED (1u << IMAP_STATE_SELECTED)
#define IMAP_IN_LOGGED   (IMAP_IN_AUTH | IMAP_IN_SELECTED)
#define IMAP_IN_ANY      (IMAP_IN_NOT_AUTH | IMAP_IN_LOGGED)

#define IMAP_CMD_UID         0x1u   /* may follow "UID" */
#define IMAP_CMD_NO_EXPUNGE  0x2u   /* RFC 3501 7.4.1: no EXPUNGE at its end unless a UID command */

struct imap_cmd_def {
	const char *name;
	unsigned states;
	unsigned flags;
	enum session_effect (*run)(struct imap *im);
};

static const struct imap_cmd_def imap_commands[] = {
	/* RFC 3501 6.1: any state */
	{ "CAPABILITY", IMAP_IN_ANY, 0, imap_cmd_capability },
	{ "NOOP", IMAP_IN_ANY, 0, imap_cmd_noop },
	{ "LOGOUT", IMAP_IN_ANY, 0, imap_cmd_logout },
	{ "ID", IMAP_IN_ANY, 0, imap_cmd_id },                      /* RFC 2971 */
	/* 6.2: not authenticated */
	{ "STARTTLS", IMAP_IN_NOT_AUTH, 0, imap_cmd_starttls },
	{ "AUTHENTICATE", IMAP_IN_NOT_AUTH, 0, imap_cmd_authenticate },
	{ "LOGIN", IMAP_IN_NOT_AUTH, 0, imap_cmd_login },
	/* 6.3: authenticated (and selected) */
	{ "SELECT", IMAP_IN_LOGGED, 0, imap_cmd_select },
	{ "EXAMINE", IMAP_IN_LOGGED, 0, imap_cmd_select },
	{ "CREATE", IMAP_IN_LOGGED, 0, imap_cmd_create },
	{ "DELETE", IMAP_IN_LOGGED, 0, imap_cmd_delete },
	{ "RENAME", IMAP_IN_LOGGED, 0, imap_cmd_rename },
	{ "SUBSCRIBE", IMAP_IN_LOGGED, 0, imap_cmd_subscribe },
	{ "UNSUBSCRIBE", IMAP_IN_LOGGED, 0, imap_cmd_subscribe },
	{ "LIST", IMAP_IN_LOGGED, 0, imap_cmd_list },
	{ "LSUB", IMAP_IN_LOGGED, 0, imap_cmd_list },
	{ "STATUS", IMAP_IN_LOGGED, 0, imap_cmd_status },
	{ "APPEND", IMAP_IN_LOGGED, 0, imap_cmd_append },
	{ "NAMESPACE", IMAP_IN_LOGGED, 0, imap_cmd_namespace },    /* RFC 2342 */
	{ "IDLE", IMAP_IN_LOGGED, 0, imap_cmd_idle },              /* RFC 2177 */
	/* RFC 5161 wants ENABLE before SELECT; clients that send it later
	 * lose nothing, so it is not refused. */
	{ "ENABLE", IMAP_IN_LOGGED, 0, imap_cmd_enable },
	/* 6.4: selected */
	{ "CHECK", IMAP_IN_SELECTED, 0, imap_cmd_check },
	{ "CLOSE", IMAP_IN_SELECTED, 0, imap_cmd_close },
	{ "UNSELECT", IMAP_IN_SELECTED, 0, imap_cmd_close },       /* RFC 3691 */
	{ "EXPUNGE", IMAP_IN_SELECTED, IMAP_CMD_UID, imap_cmd_expunge },
	{ "SEARCH", IMAP_IN_SELECTED, IMAP_CMD_UID | IMAP_CMD_NO_EXPUNGE, imap_cmd_search },
	{ "FETCH", IMAP_IN_SELECTED, IMAP_CMD_UID | IMAP_CMD_NO_EXPUNGE, imap_cmd_fetch },
	{ "STORE", IMAP_IN_SELECTED, IMAP_CMD_UID | IMAP_CMD_NO_EXPUNGE, imap_cmd_store },
	{ "COPY", IMAP_IN_SELECTED, IMAP_CMD_UID, imap_cmd_copy },
	{ "MOVE", IMAP_IN_SELECTED, IMAP_CMD_UID, imap_cmd_copy }, /* RFC 6851 */
};

static const struct imap_cmd_def *imap_cmd_find(const struct imap_command *cmd)
{
	for (size_t i = 0; i < sizeof(imap_commands) / sizeof(imap_commands[0]); i++) {
		if (imap_command_is(cmd, imap_commands[i].name))
			return &imap_commands[i];
	}
	return NULL;
}

/* Why a command is out of place: what the client must do first. */
static const char *imap_state_error(const struct imap *im, const struct imap_cmd_def *def)
{
	if (im->state == IMAP_STATE_NOT_AUTH)
		return "Log in first";
	if (!(def->states & IMAP_IN_LOGGED))
		return "Already logged in";
	return "No mailbox selected";
}

/* The parser holds a complete command: tokenize it and run it. */
static enum session_effect imap_dispatch(struct imap_session *is)
{
	struct imap *im = &is->im;
	const char *error = NULL;

	im->have_cmd = true;
	im->report = IMAP_REPORT_NONE;
	im->uid_cmd = false;
	if (imap_parser_command(im->parser, &im->cmd, &error) < 0) {
		im->tag = im->cmd.tag != NULL ? im->cmd.tag : imap_parser_tag(im->parser);
		return imap_finish(is, imap_bad(im, "%s", error));
	}
	im->tag = im->cmd.tag;
	const struct imap_cmd_def *def = imap_cmd_find(&im->cmd);
	if (def == NULL)
		return imap_finish(is, imap_bad(im, "Unknown command"));
	if (im->cmd.uid && !(def->flags & IMAP_CMD_UID))
		return imap_finish(is, imap_bad(im, "UID %s is not a command", def->name));
	if (!(def->states & (1u << im->state))) {
		/* RFC 3501 6: a command in the wrong state is BAD. */
		return imap_finish(is, imap_bad(im, "%s", imap_state_error(im, def)));
	}
	im->uid_cmd = im->cmd.uid;
	im->silent = false;
	im->move = false;
	if (im->state == IMAP_STATE_SELECTED)
		im->report = (def->flags & IMAP_CMD_NO_EXPUNGE) && !im->cmd.uid ? IMAP_REPORT_NO_EXPUNGE
										  : IMAP_REPORT_ALL;
	return imap_finish(is, def->run(im));
}

/* The first line of a new command: forget the previous one now, not
 * earlier, so a command that waited could use its arguments. */
static void imap_command_begin(struct imap_session *is, const char *line, size_t len)
{
	struct imap *im = &is->im;

	if (im->have_cmd) {
		imap_parser_reset(im->parser);
		im->have_cmd = false;
	}
	memset(&im->cmd, 0, sizeof(im->cmd));
	im->tag = "*";
	is->cmd_open = true;
	/* "tag LOGIN ..." or "tag AUTHENTICATE ...": lines after a literal
	 * carry the password. */
	const char *sp = memchr(line, ' ', len);
	if (sp != NULL) {
		const char *name = sp + 1;
		size_t rest = len - (size_t)(name - line);
		is->secret_lines = (rest >= 5 && strncasecmp(name, "LOGIN", 5) == 0 && (rest == 5 || name[5] == ' ')) ||
				   (rest >= 12 && strncasecmp(name, "AUTHENTICATE", 12) == 0);
	} else {
		is->secret_lines = false;
	}
}

static enum session_effect imap_line(void *state, const char *line, size_t len)
{
	struct imap_session *is = state;
	struct imap *im = &is->im;
	uint64_t n = 0;
	bool sync = false;

	if (im->idle_tag != NULL)
		return imap_idle_line(is, line, len);
	if (im->sasl_step > 0)
		return imap_finish(is, imap_auth_line(im, line, len));
	if (!is->cmd_open)
		imap_command_begin(is, line, len);

	switch (imap_parser_line(im->parser, line, len, &n, &sync)) {
	case IMAP_PARSE_COMPLETE:
		is->cmd_open = false;
		is->secret_lines = false;
		return imap_dispatch(is);
	case IMAP_PARSE_LITERAL:
		/* RFC 3501 7.5; "+ " with its space, which some clients
		 * (Android's Gmail app) insist on. */
		if (sync)
			session_reply(im->s, "+ Ready for literal data\r\n");
		if (n > 0)
			session_expect_bytes(im->s, n);
		return SESSION_EFFECT_NONE;
	case IMAP_PARSE_SKIP:
	case IMAP_PARSE_MORE:
		if (n > 0)
			session_expect_bytes(im->s, n);
		return SESSION_EFFECT_NONE;
	case IMAP_PARSE_LITERAL_TOO_BIG:
		/* RFC 7889: the client may try a smaller message. */
		is->cmd_open = false;
		is->secret_lines = false;
		im->tag = imap_parser_tag(im->parser);
		im->report = IMAP_REPORT_NONE;
		imap_no(im, "[TOOBIG] Literal is larger than %zu octets", session_config(im->s)->imap_literal_max);
		return imap_finish(is, SESSION_EFFECT_NONE);
	case IMAP_PARSE_TOO_LONG:
		is->cmd_open = false;
		is->secret_lines = false;
		im->tag = imap_parser_tag(im->parser);
		im->report = IMAP_REPORT_NONE;
		return imap_finish(is, imap_bad(im, "Command is too long"));
	case IMAP_PARSE_FATAL:
		break;
	}
	session_reply(im->s, "* BYE Literal length not understood, closing\r\n");
	return SESSION_EFFECT_CLOSE;
}

static enum session_effect imap_bytes(void *state, const char *data, size_t len)
{
	struct imap_session *is = state;

	session_trace_client_body(is->im.s, len);
	imap_parser_bytes(is->im.parser, data, len);
	return SESSION_EFFECT_NONE;
}

static enum session_effect imap_line_too_long(void *state)
{
	struct imap_session *is = state;
	struct imap *im = &is->im;
	enum session_effect e;

	if (im->idle_tag != NULL)
		return imap_idle_line(is, "", 0);
	if (im->sasl_step > 0)
		return imap_finish(is, imap_auth_line(im, NULL, 0));
	if (is->cmd_open) {
		/* Part of a command came; the rest of it is lost. */
		im->tag = imap_parser_tag(im->parser);
		e = imap_bad(im, "Line too long");
		imap_parser_reset(im->parser);
		is->cmd_open = false;
		is->secret_lines = false;
	} else {
		/* Its tag was in the part that was dropped. */
		im->tag = "*";
		e = imap_bad(im, "Line too long");
	}
	im->report = IMAP_REPORT_NONE;
	return imap_finish(is, e);
}

static void imap_sasl_reset(struct imap *im)
{
	im->sasl_step = 0;
	if (im->sasl_user != NULL) {
		explicit_bzero(im->sasl_user, strlen(im->sasl_user));
		free(im->sasl_user);
		im->sasl_user = NULL;
	}
}

static enum session_effect imap_tls_started(void *state)
{
	struct imap_session *is = state;
	struct imap *im = &is->im;

	/* RFC 3501 6.2.1: nothing said before the handshake counts. */
	imap_parser_reset(im->parser);
	memset(&im->cmd, 0, sizeof(im->cmd));
	im->have_cmd = false;
	im->tag = "*";
	is->cmd_open = false;
	is->secret_lines = false;
	imap_sasl_reset(im);
	buf_reset(&is->held);
	return SESSION_EFFECT_NONE;
}

static void imap_greet(void *state)
{
	struct imap_session *is = state;
	struct buf caps;

	buf_init(&caps, 1024);
	imap_capabilities(&is->im, &caps);
	session_reply(is->im.s, "* OK [CAPABILITY %.*s] postbote ready\r\n", (int)buf_len(&caps), buf_ptr(&caps));
	buf_free(&caps);
}

static void imap_timeout(void *state)
{
	struct imap_session *is = state;
	session_reply(is->im.s, "* BYE Autologout; idle for too long\r\n");
}

static void imap_shutdown(void *state)
{
	struct imap_session *is = state;
	session_reply(is->im.s, "* BYE [UNAVAILABLE] Server shutting down\r\n");
}

static void imap_refuse(struct buf *out, enum session_refusal why, const char *hostname)
{
	buf_printf(out, "* BYE [UNAVAILABLE] Too many connections%s, try again later\r\n",
		   why == SESSION_REFUSE_TOO_MANY_FROM_IP ? " from your address" : "");
}

static void imap_drained(void *state)
{
	struct imap_session *is = state;

	if (is->im.fetch != NULL)
		imap_fetch_drained(&is->im);
	else if (is->im.search != NULL)
		imap_search_drained(&is->im);
}

static size_t imap_trace_visible(void *state, const char *line, size_t len)
{
	const struct imap_session *is = state;

	/* SASL responses, and the lines after a literal in LOGIN or
	 * AUTHENTICATE, are secret as a whole. */
	if (is != NULL && (is->im.sasl_step > 0 || (is->cmd_open && is->secret_lines)))
		return 0;
	/* "tag LOGIN user secret" and "tag AUTHENTICATE MECH initial": show
	 * up to the first argument after the command. */
	size_t sp = 0, words = 0;
	for (size_t i = 0; i < len; i++) {
		if (line[i] == ' ' && ++words == 2) {
			sp = i + 1;
			break;
		}
	}
	if (sp == 0)
		return len;
	if (sp >= 7 && strncasecmp(line + sp - 6, "LOGIN ", 6) == 0) {
		size_t u = sp;
		while (u < len && line[u] != ' ')
			u++;
		return u < len ? u + 1 : len;
	}
	if (sp >= 14 && strncasecmp(line + sp - 13, "AUTHENTICATE ", 13) == 0) {
		size_t m = sp;
		while (m < len && line[m] != ' ')
			m++;
		return m < len ? m + 1 : len;
	}
	return len;
}

static void *imap_create(struct session *s)
{
	struct imap_session *is = xcalloc(1, sizeof(*is));
	const struct config *cfg = session_config(s);

	is->im.s = s;
	is->im.be = session_backend(s);
	is->im.state = IMAP_STATE_NOT_AUTH;
	is->im.tag = "*";
	is->im.parser = imap_parser_new(cfg->imap_literal_max, cfg->imap_literal_max + IMAP_COMMAND_SLACK);
	buf_init(&is->held, IMAP_HELD_MAX);
	return is;
}

static void imap_destroy(void *state)
{
	struct imap_session *is = state;
	struct imap *im = &is->im;

	/* Nothing the backend still does may call back into freed memory. */
	if (im->pending != NULL)
		im->be->cancel(im->be->ctx, im->pending);
	if (im->auth_handle != NULL)
		im->be->auth_cancel(im->be->ctx, im->auth_handle);
	if (im->fetch != NULL)
		imap_fetch_free(im);
	if (im->search != NULL)
		imap_search_free(im);
	imap_view_close(im);
	if (im->acct != NULL)
		im->be->account_close(im->be->ctx, im->acct);
	imap_sasl_reset(im);
	imap_parser_free(&im->parser);
	free(im->account);
	free(im->idle_tag);
	free(im->uids);
	buf_free(&is->held);
	free(is);
}

const struct session_proto imap_proto = {
	.name = "imap",
	.create = imap_create,
	.destroy = imap_destroy,
	.greet = imap_greet,
	.line = imap_line,
	.line_too_long = imap_line_too_long,
	.bytes = imap_bytes,
	.tls_started = imap_tls_started,
	.timeout = imap_timeout,
	.shutdown = imap_shutdown,
	.refuse = imap_refuse,
	.drained = imap_drained,
	.trace_visible = imap_trace_visible,
};
