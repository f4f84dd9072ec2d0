/*
 * POP3 server session. A static command table names the state each command
 * belongs to (RFC 1939 section 3: AUTHORIZATION, TRANSACTION, UPDATE).
 */
#include "pop3/pop3_session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/xalloc.h"

enum pop3_state {
	POP3_STATE_AUTHORIZATION = 0,
};

struct pop3_session {
	struct session *s;
	enum pop3_state state;
	unsigned bad_commands;
};

struct pop3_cmd {
	const char *name;
	enum session_effect (*run)(struct pop3_session *ps, const char *args);
};

static enum session_effect pop3_error(struct pop3_session *ps, const char *reply)
{
	session_reply(ps->s, "-ERR %s\r\n", reply);
	if (++ps->bad_commands >= session_config(ps->s)->max_bad_commands) {
		session_reply(ps->s, "-ERR Too many errors, closing connection\r\n");
		return SESSION_EFFECT_CLOSE;
	}
	return SESSION_EFFECT_NONE;
}

static enum session_effect pop3_cmd_capa(struct pop3_session *ps, const char *args)
{
	session_reply(ps->s, "+OK Capability list follows\r\n");
	if (session_starttls_allowed(ps->s))
		session_reply(ps->s, "STLS\r\n");
	session_reply(ps->s, "RESP-CODES\r\nPIPELINING\r\nIMPLEMENTATION postbote-%s\r\n.\r\n",
		      POSTBOTE_VERSION);
	return SESSION_EFFECT_NONE;
}

static enum session_effect pop3_cmd_stls(struct pop3_session *ps, const char *args)
{
	if (!session_starttls_allowed(ps->s))
		return pop3_error(ps, "Command not permitted when TLS active");
	session_reply(ps->s, "+OK Begin TLS negotiation\r\n");
	return SESSION_EFFECT_STARTTLS;
}

static enum session_effect pop3_cmd_quit(struct pop3_session *ps, const char *args)
{
	session_reply(ps->s, "+OK postbote signing off\r\n");
	return SESSION_EFFECT_CLOSE;
}

static enum session_effect pop3_cmd_login(struct pop3_session *ps, const char *args)
{
	return pop3_error(ps, "[SYS/PERM] Mailbox access is not available on this server yet");
}

static const struct pop3_cmd pop3_commands[] = {
	{ "CAPA", pop3_cmd_capa },
	{ "STLS", pop3_cmd_stls },
	{ "QUIT", pop3_cmd_quit },
	{ "USER", pop3_cmd_login },
	{ "PASS", pop3_cmd_login },
	{ "APOP", pop3_cmd_login },
	{ "AUTH", pop3_cmd_login },
};

static enum session_effect pop3_line(void *state, const char *line, size_t len)
{
	struct pop3_session *ps = state;
	char name[8];
	size_t n = 0;

	if (memchr(line, '\0', len) != NULL)
		return pop3_error(ps, "NUL byte in command");
	while (n < len && line[n] != ' ')
		n++;
	/* RFC 1939 3: keywords are three or four characters. */
	if (n < 3 || n > 4)
		return pop3_error(ps, "Unknown command");
	memcpy(name, line, n);
	name[n] = '\0';
	char *args = xstrndup(line + (n < len ? n + 1 : n), n < len ? len - n - 1 : 0);
	enum session_effect effect = SESSION_EFFECT_NONE;
	bool found = false;

	for (size_t i = 0; i < sizeof(pop3_commands) / sizeof(pop3_commands[0]); i++) {
		if (strcasecmp(name, pop3_commands[i].name) == 0) {
			effect = pop3_commands[i].run(ps, args);
			found = true;
			break;
		}
	}
	if (!found)
		effect = pop3_error(ps, "Unknown command");
	free(args);
	return effect;
}

static enum session_effect pop3_line_too_long(void *state)
{
	return pop3_error(state, "Line too long");
}

static enum session_effect pop3_tls_started(void *state)
{
	return SESSION_EFFECT_NONE;
}

static void pop3_greet(void *state)
{
	struct pop3_session *ps = state;
	session_reply(ps->s, "+OK postbote POP3 server ready\r\n");
}

static void pop3_timeout(void *state)
{
	struct pop3_session *ps = state;
	session_reply(ps->s, "-ERR Autologout; idle for too long\r\n");
}

static void pop3_shutdown(void *state)
{
	struct pop3_session *ps = state;
	session_reply(ps->s, "-ERR [SYS/TEMP] Server shutting down, try again later\r\n");
}

static void pop3_refuse(struct buf *out, enum session_refusal why, const char *hostname)
{
	buf_printf(out, "-ERR [SYS/TEMP] Too many connections%s, try again later\r\n",
		   why == SESSION_REFUSE_TOO_MANY_FROM_IP ? " from your address" : "");
}

static size_t pop3_trace_visible(void *state, const char *line, size_t len)
{
	/* PASS secret, AUTH MECH initial-response; SASL continuation lines
	 * arrive with the POP3 issue, which masks them whole. */
	if (len >= 5 && strncasecmp(line, "PASS ", 5) == 0)
		return 5;
	if (len > 5 && strncasecmp(line, "AUTH ", 5) == 0) {
		size_t n = 5;
		while (n < len && line[n] != ' ')
			n++;
		return n < len ? n + 1 : len;
	}
	return len;
}

static void *pop3_create(struct session *s)
{
	struct pop3_session *ps = xcalloc(1, sizeof(*ps));
	ps->s = s;
	return ps;
}

static void pop3_destroy(void *state)
{
	free(state);
}

const struct session_proto pop3_proto = {
	.name = "pop3",
	.create = pop3_create,
	.destroy = pop3_destroy,
	.greet = pop3_greet,
	.line = pop3_line,
	.line_too_long = pop3_line_too_long,
	.tls_started = pop3_tls_started,
	.timeout = pop3_timeout,
	.shutdown = pop3_shutdown,
	.refuse = pop3_refuse,
	.trace_visible = pop3_trace_visible,
};
