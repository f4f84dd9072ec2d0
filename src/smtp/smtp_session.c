/*
 * SMTP server session. Commands are a static table (name, check, run), as in
 * OpenSMTPD's smtp_session.c: the table says in which states a command is
 * allowed, so each handler only does its own work.
 *
 * Until the SMTP issue adds the mail transaction, MAIL/RCPT/DATA/AUTH/... are
 * answered "502 5.5.1" (RFC 5321 4.2.4: command not implemented), which a
 * sending server reads as "do not send here" rather than a silent loss.
 */
#include "smtp/smtp_session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/xalloc.h"

enum smtp_state {
	SMTP_STATE_GREETED = 0,   /* before EHLO/HELO */
	SMTP_STATE_HELO,          /* after EHLO/HELO */
};

struct smtp_session {
	struct session *s;
	enum smtp_state state;
	bool esmtp;
	unsigned bad_commands;
};

struct smtp_cmd {
	const char *name;
	enum session_effect (*run)(struct smtp_session *sm, const char *args);
};

static const char *smtp_hostname(struct smtp_session *sm)
{
	return session_config(sm->s)->hostname;
}

/* Count a client error; past the limit the session ends (contract 5). */
static enum session_effect smtp_error(struct smtp_session *sm, const char *reply)
{
	session_reply(sm->s, "%s\r\n", reply);
	if (++sm->bad_commands >= session_config(sm->s)->max_bad_commands) {
		session_reply(sm->s, "421 4.7.0 %s Too many errors, closing connection\r\n",
			      smtp_hostname(sm));
		return SESSION_EFFECT_CLOSE;
	}
	return SESSION_EFFECT_NONE;
}

static enum session_effect smtp_cmd_ehlo(struct smtp_session *sm, const char *args)
{
	if (*args == '\0')
		return smtp_error(sm, "501 5.5.4 Syntax: EHLO hostname");
	sm->state = SMTP_STATE_HELO;
	sm->esmtp = true;
	/* RFC 5321 4.1.1.1: EHLO resets any transaction in progress. */
	session_reply(sm->s, "250-%s Hello %s\r\n", smtp_hostname(sm), args);
	if (session_starttls_allowed(sm->s))
		session_reply(sm->s, "250-STARTTLS\r\n");
	session_reply(sm->s, "250 ENHANCEDSTATUSCODES\r\n");
	return SESSION_EFFECT_NONE;
}

static enum session_effect smtp_cmd_helo(struct smtp_session *sm, const char *args)
{
	if (*args == '\0')
		return smtp_error(sm, "501 5.5.4 Syntax: HELO hostname");
	sm->state = SMTP_STATE_HELO;
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
	session_reply(sm->s, "250 2.0.0 OK\r\n");
	return SESSION_EFFECT_NONE;
}

static enum session_effect smtp_cmd_rset(struct smtp_session *sm, const char *args)
{
	if (*args != '\0')
		return smtp_error(sm, "501 5.5.4 Syntax: RSET");
	session_reply(sm->s, "250 2.0.0 OK\r\n");
	return SESSION_EFFECT_NONE;
}

static enum session_effect smtp_cmd_help(struct smtp_session *sm, const char *args)
{
	session_reply(sm->s, "214-2.0.0 This is postbote %s\r\n"
			     "214 2.0.0 Commands: EHLO HELO STARTTLS NOOP RSET HELP QUIT\r\n",
		      POSTBOTE_VERSION);
	return SESSION_EFFECT_NONE;
}

static enum session_effect smtp_cmd_vrfy(struct smtp_session *sm, const char *args)
{
	/* RFC 5321 3.5.3: 252 neither confirms nor denies; never a user list. */
	session_reply(sm->s, "252 2.1.5 Cannot VRFY user, but will accept message and attempt delivery\r\n");
	return SESSION_EFFECT_NONE;
}

static enum session_effect smtp_cmd_quit(struct smtp_session *sm, const char *args)
{
	session_reply(sm->s, "221 2.0.0 %s Bye\r\n", smtp_hostname(sm));
	return SESSION_EFFECT_CLOSE;
}

static enum session_effect smtp_cmd_unimplemented(struct smtp_session *sm, const char *args)
{
	return smtp_error(sm, "502 5.5.1 Command not implemented");
}

static const struct smtp_cmd smtp_commands[] = {
	{ "EHLO", smtp_cmd_ehlo },
	{ "HELO", smtp_cmd_helo },
	{ "STARTTLS", smtp_cmd_starttls },
	{ "NOOP", smtp_cmd_noop },
	{ "RSET", smtp_cmd_rset },
	{ "HELP", smtp_cmd_help },
	{ "VRFY", smtp_cmd_vrfy },
	{ "QUIT", smtp_cmd_quit },
	{ "MAIL", smtp_cmd_unimplemented },
	{ "RCPT", smtp_cmd_unimplemented },
	{ "DATA", smtp_cmd_unimplemented },
	{ "BDAT", smtp_cmd_unimplemented },
	{ "AUTH", smtp_cmd_unimplemented },
	{ "EXPN", smtp_cmd_unimplemented },
};

static enum session_effect smtp_line(void *state, const char *line, size_t len)
{
	struct smtp_session *sm = state;
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

	/* The line holds no NUL (checked above) and the reader left it in a
	 * buffer we may not write to, so copy the arguments to terminate them. */
	size_t a = n;
	while (a < len && line[a] == ' ')
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

static enum session_effect smtp_line_too_long(void *state)
{
	/* RFC 5321 4.5.3.1.4 and 4.2.2: 500 5.5.2 for an overlong command line. */
	return smtp_error(state, "500 5.5.2 Line too long");
}

static enum session_effect smtp_tls_started(void *state)
{
	struct smtp_session *sm = state;

	/* RFC 3207 4.2: forget everything learned before TLS; the client
	 * must say EHLO again. */
	sm->state = SMTP_STATE_GREETED;
	sm->esmtp = false;
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
	/* "AUTH PLAIN <secret>" / "AUTH LOGIN <secret>": keep the mechanism. */
	if (len > 5 && strncasecmp(line, "AUTH ", 5) == 0) {
		size_t n = 5;
		while (n < len && line[n] != ' ')
			n++;
		return n < len ? n + 1 : len;
	}
	return len;
}

static void *smtp_create(struct session *s)
{
	struct smtp_session *sm = xcalloc(1, sizeof(*sm));
	sm->s = s;
	return sm;
}

static void smtp_destroy(void *state)
{
	free(state);
}

const struct session_proto smtp_proto = {
	.name = "smtp",
	.create = smtp_create,
	.destroy = smtp_destroy,
	.greet = smtp_greet,
	.line = smtp_line,
	.line_too_long = smtp_line_too_long,
	.tls_started = smtp_tls_started,
	.timeout = smtp_timeout,
	.shutdown = smtp_shutdown,
	.refuse = smtp_refuse,
	.trace_visible = smtp_trace_visible,
};
