/*
 * SMTP server session (RFC 5321): dispatch and the commands outside the
 * mail transaction. Commands are a static table (name, run), as in
 * OpenSMTPD's smtp_session.c; the transaction is in smtp_txn.c and AUTH in
 * smtp_auth.c.
 *
 * One session type serves three listeners: smtp (25) receives mail for our
 * users from anyone and is strict about syntax; submission (587, STARTTLS)
 * and submissions (465, implicit TLS, RFC 8314) take mail from our users
 * after AUTH and forgive the quirks of real mail clients.
 */
#include "smtp/smtp_session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/xalloc.h"
#include "smtp/smtp_private.h"

struct smtp_cmd {
	const char *name;
	enum session_effect (*run)(struct smtp_session *sm, const char *args);
};

const char *smtp_hostname(struct smtp_session *sm)
{
	return session_config(sm->s)->hostname;
}

enum session_effect smtp_error(struct smtp_session *sm, const char *reply)
{
	session_reply(sm->s, "%s\r\n", reply);
	if (++sm->bad_commands >= session_config(sm->s)->max_bad_commands) {
		session_reply(sm->s, "421 4.7.0 %s Too many errors, closing connection\r\n",
			      smtp_hostname(sm));
		return SESSION_EFFECT_CLOSE;
	}
	return SESSION_EFFECT_NONE;
}

bool smtp_auth_allowed(struct smtp_session *sm)
{
	if (!sm->submission || sm->be == NULL)
		return false;
	return session_tls_active(sm->s) ||
	       (session_config(sm->s)->allow_plaintext_auth_loopback && session_peer_loopback(sm->s));
}

/* RFC 5321 4.1.1.1: the argument is a domain or an address literal; we
 * only insist that there is one word of printable characters. */
static bool smtp_helo_valid(const char *args)
{
	if (*args == '\0')
		return false;
	for (const unsigned char *p = (const unsigned char *)args; *p; p++) {
		if (*p <= ' ' || *p >= 0x7f)
			return *p == ' '; /* trailing words are tolerated */
	}
	return true;
}

static void smtp_set_helo(struct smtp_session *sm, const char *args)
{
	size_t n = strcspn(args, " ");
	if (n >= sizeof(sm->helo))
		n = sizeof(sm->helo) - 1;
	memcpy(sm->helo, args, n);
	sm->helo[n] = '\0';
}

static enum session_effect smtp_cmd_ehlo(struct smtp_session *sm, const char *args)
{
	const struct config *cfg = session_config(sm->s);

	if (!smtp_helo_valid(args))
		return smtp_error(sm, "501 5.5.4 Syntax: EHLO hostname");
	/* RFC 5321 4.1.4: EHLO resets any transaction in progress. */
	smtp_txn_reset(sm);
	smtp_set_helo(sm, args);
	sm->state = SMTP_STATE_READY;
	sm->esmtp = true;
	session_reply(sm->s, "250-%s Hello %s [%s]\r\n", smtp_hostname(sm), sm->helo, session_peer(sm->s));
	session_reply(sm->s, "250-PIPELINING\r\n250-SIZE %zu\r\n", cfg->message_size_max);
	if (session_starttls_allowed(sm->s))
		session_reply(sm->s, "250-STARTTLS\r\n");
	if (smtp_auth_allowed(sm) && sm->auth_user == NULL)
		session_reply(sm->s, "250-AUTH PLAIN LOGIN\r\n");
	session_reply(sm->s, "250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n"
			     "250-CHUNKING\r\n250 DSN\r\n");
	return SESSION_EFFECT_NONE;
}

static enum session_effect smtp_cmd_helo(struct smtp_session *sm, const char *args)
{
	if (!smtp_helo_valid(args))
		return smtp_error(sm, "501 5.5.4 Syntax: HELO hostname");
	smtp_txn_reset(sm);
	smtp_set_helo(sm, args);
	sm->state = SMTP_STATE_READY;
	sm->esmtp = false;
	session_reply(sm->s, "250 %s\r\n", smtp_hostname(sm));
	return SESSION_EFFECT_NONE;
}

static enum session_effect smtp_cmd_starttls(struct smtp_session *sm, const char *args)
{
	if (*args != '\0')
		return smtp_error(sm, "501 5.5.4 Syntax: STARTTLS");
	if (!session_starttls_allowed(sm->s))
		return smtp_error(sm, "503 5.5.1 TLS already active");
	session_reply(sm->s, "220 2.0.0 Ready to start TLS\r\n");
	return SESSION_EFFECT_STARTTLS;
}

static enum session_effect smtp_cmd_noop(struct smtp_session *sm, const char *args)
{
	(void)args;
	session_reply(sm->s, "250 2.0.0 OK\r\n");
	return SESSION_EFFECT_NONE;
}

static enum session_effect smtp_cmd_rset(struct smtp_session *sm, const char *args)
{
	if (*args != '\0')
		return smtp_error(sm, "501 5.5.4 Syntax: RSET");
	smtp_txn_reset(sm);
	session_reply(sm->s, "250 2.0.0 OK\r\n");
	return SESSION_EFFECT_NONE;
}

static enum session_effect smtp_cmd_help(struct smtp_session *sm, const char *args)
{
	(void)args;
	session_reply(sm->s, "214-2.0.0 This is postbote %s\r\n"
			     "214-2.0.0 Commands: EHLO HELO STARTTLS AUTH MAIL RCPT DATA BDAT\r\n"
			     "214 2.0.0 RSET NOOP VRFY HELP QUIT\r\n",
		      POSTBOTE_VERSION);
	return SESSION_EFFECT_NONE;
}

static enum session_effect smtp_cmd_vrfy(struct smtp_session *sm, const char *args)
{
	if (*args == '\0')
		return smtp_error(sm, "501 5.5.4 Syntax: VRFY address");
	/* RFC 5321 3.5.3: 252 neither confirms nor denies; never a user list. */
	session_reply(sm->s, "252 2.1.5 Cannot VRFY user, but will accept message and attempt delivery\r\n");
	return SESSION_EFFECT_NONE;
}

static enum session_effect smtp_cmd_expn(struct smtp_session *sm, const char *args)
{
	(void)args;
	/* RFC 5321 3.5.2 allows refusing; a list would leak addresses. */
	return smtp_error(sm, "502 5.5.1 EXPN not available");
}

static enum session_effect smtp_cmd_quit(struct smtp_session *sm, const char *args)
{
	(void)args;
	session_reply(sm->s, "221 2.0.0 %s Bye\r\n", smtp_hostname(sm));
	return SESSION_EFFECT_CLOSE;
}

static const struct smtp_cmd smtp_commands[] = {
	{ "EHLO", smtp_cmd_ehlo },
	{ "HELO", smtp_cmd_helo },
	{ "STARTTLS", smtp_cmd_starttls },
	{ "AUTH", smtp_cmd_auth },
	{ "MAIL", smtp_cmd_mail },
	{ "RCPT", smtp_cmd_rcpt },
	{ "DATA", smtp_cmd_data },
	{ "BDAT", smtp_cmd_bdat },
	{ "NOOP", smtp_cmd_noop },
	{ "RSET", smtp_cmd_rset },
	{ "HELP", smtp_cmd_help },
	{ "VRFY", smtp_cmd_vrfy },
	{ "EXPN", smtp_cmd_expn },
	{ "QUIT", smtp_cmd_quit },
};

static enum session_effect smtp_command(struct smtp_session *sm, const char *line, size_t len)
{
	char name[16];
	size_t n = 0;

	if (memchr(line, '\0', len) != NULL)
		return smtp_error(sm, "500 5.5.2 Syntax error, NUL byte in command");
	while (n < len && line[n] != ' ')
		n++;
	if (n == 0 || n >= sizeof(name))
		return smtp_error(sm, "500 5.5.2 Syntax error, command unrecognized");
	memcpy(name, line, n);
	name[n] = '\0';

	/* The reader's buffer is not ours to write a NUL into: copy the
	 * arguments. One space separates them; more are tolerated on the
	 * submission ports ("AUTH PLAIN  <response>"), where clients send them. */
	size_t a = n;
	if (a < len)
		a++;
	while (sm->submission && a < len && line[a] == ' ')
		a++;
	char *args = xstrndup(line + a, len - a);
	enum session_effect effect = SESSION_EFFECT_NONE;
	bool found = false;

	for (size_t i = 0; i < sizeof(smtp_commands) / sizeof(smtp_commands[0]); i++) {
		if (strcasecmp(name, smtp_commands[i].name) == 0) {
			effect = smtp_commands[i].run(sm, args);
			found = true;
			break;
		}
	}
	if (!found)
		effect = smtp_error(sm, "500 5.5.2 Syntax error, command unrecognized");
	free(args);
	return effect;
}

static enum session_effect smtp_line(void *state, const char *line, size_t len)
{
	struct smtp_session *sm = state;

	switch (sm->state) {
	case SMTP_STATE_DATA:
		return smtp_data_line(sm, line, len);
	case SMTP_STATE_AUTH:
		return smtp_auth_response(sm, line, len);
	default:
		return smtp_command(sm, line, len);
	}
}

static enum session_effect smtp_bytes(void *state, const char *data, size_t len)
{
	return smtp_bdat_bytes(state, data, len);
}

static enum session_effect smtp_line_too_long(void *state)
{
	struct smtp_session *sm = state;

	if (sm->state == SMTP_STATE_DATA)
		return smtp_data_too_long(sm);
	if (sm->state == SMTP_STATE_AUTH) {
		smtp_auth_reset(sm);
		sm->state = SMTP_STATE_READY;
	}
	/* RFC 5321 4.5.3.1.4 and 4.2.2: 500 5.5.2 for an overlong command line. */
	return smtp_error(sm, "500 5.5.2 Line too long");
}

static enum session_effect smtp_tls_started(void *state)
{
	struct smtp_session *sm = state;

	/* RFC 3207 4.2: forget everything learned before TLS; the client
	 * must say EHLO again. */
	smtp_txn_reset(sm);
	sm->state = SMTP_STATE_GREETED;
	sm->esmtp = false;
	sm->helo[0] = '\0';
	free(sm->auth_user);
	sm->auth_user = NULL;
	return SESSION_EFFECT_NONE;
}

static void smtp_greet(void *state)
{
	struct smtp_session *sm = state;
	session_reply(sm->s, "220 %s ESMTP postbote\r\n", smtp_hostname(sm));
}

static void smtp_timeout(void *state)
{
	struct smtp_session *sm = state;
	/* RFC 5321 4.5.3.2.7 server timeout, answered as 421 (4.4.2). */
	session_reply(sm->s, "421 4.4.2 %s Timeout, closing connection\r\n", smtp_hostname(sm));
}

static void smtp_shutdown(void *state)
{
	struct smtp_session *sm = state;
	session_reply(sm->s, "421 4.3.2 %s Service shutting down, try again later\r\n",
		      smtp_hostname(sm));
}

static void smtp_refuse(struct buf *out, enum session_refusal why, const char *hostname)
{
	buf_printf(out, "421 4.7.0 %s Too many connections%s, try again later\r\n", hostname,
		   why == SESSION_REFUSE_TOO_MANY_FROM_IP ? " from your address" : "");
}

static size_t smtp_trace_visible(void *state, const char *line, size_t len)
{
	struct smtp_session *sm = state;

	/* SASL responses are secrets, whatever they look like. */
	if (sm != NULL && sm->state == SMTP_STATE_AUTH)
		return 0;
	/* "AUTH PLAIN <secret>" / "AUTH LOGIN <secret>": keep the mechanism. */
	if (len > 5 && strncasecmp(line, "AUTH ", 5) == 0) {
		size_t n = 5;
		while (n < len && line[n] == ' ')
			n++;
		while (n < len && line[n] != ' ')
			n++;
		return n < len ? n + 1 : len;
	}
	return len;
}

static void *smtp_create(struct session *s)
{
	struct smtp_session *sm = xcalloc(1, sizeof(*sm));
	enum listener_kind kind = session_kind(s);

	sm->s = s;
	sm->be = session_backend(s);
	sm->submission = kind == LISTENER_SUBMISSION || kind == LISTENER_SUBMISSIONS;
	return sm;
}

static void smtp_destroy(void *state)
{
	struct smtp_session *sm = state;

	if (sm->deliver_handle != NULL)
		sm->be->deliver_cancel(sm->be->ctx, sm->deliver_handle);
	smtp_auth_reset(sm);
	smtp_txn_reset(sm);
	free(sm->auth_user);
	free(sm);
}

const struct session_proto smtp_proto = {
	.name = "smtp",
	.create = smtp_create,
	.destroy = smtp_destroy,
	.greet = smtp_greet,
	.line = smtp_line,
	.line_too_long = smtp_line_too_long,
	.bytes = smtp_bytes,
	.tls_started = smtp_tls_started,
	.timeout = smtp_timeout,
	.shutdown = smtp_shutdown,
	.refuse = smtp_refuse,
	.trace_visible = smtp_trace_visible,
};
