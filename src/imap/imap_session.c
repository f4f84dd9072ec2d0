/*
 * IMAP server session: "tag SP command [SP arguments]" lines, each answered
 * with untagged data and one tagged completion (RFC 3501 2.2.2).
 */
#include "imap/imap_session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/xalloc.h"

struct imap_session {
	struct session *s;
	unsigned bad_commands;
};

struct imap_cmd {
	const char *name;
	enum session_effect (*run)(struct imap_session *is, const char *tag);
};

static void imap_capability_list(struct imap_session *is, char *out, size_t outlen)
{
	snprintf(out, outlen, "IMAP4rev1%s", session_starttls_allowed(is->s) ? " STARTTLS" : "");
}

static enum session_effect imap_bad(struct imap_session *is, const char *tag, const char *text)
{
	session_reply(is->s, "%s BAD %s\r\n", tag, text);
	if (++is->bad_commands >= session_config(is->s)->max_bad_commands) {
		session_reply(is->s, "* BYE Too many errors, closing connection\r\n");
		return SESSION_EFFECT_CLOSE;
	}
	return SESSION_EFFECT_NONE;
}

static enum session_effect imap_cmd_capability(struct imap_session *is, const char *tag)
{
	char caps[128];

	imap_capability_list(is, caps, sizeof(caps));
	session_reply(is->s, "* CAPABILITY %s\r\n%s OK CAPABILITY completed\r\n", caps, tag);
	return SESSION_EFFECT_NONE;
}

static enum session_effect imap_cmd_noop(struct imap_session *is, const char *tag)
{
	session_reply(is->s, "%s OK NOOP completed\r\n", tag);
	return SESSION_EFFECT_NONE;
}

static enum session_effect imap_cmd_logout(struct imap_session *is, const char *tag)
{
	session_reply(is->s, "* BYE postbote logging out\r\n%s OK LOGOUT completed\r\n", tag);
	return SESSION_EFFECT_CLOSE;
}

static enum session_effect imap_cmd_starttls(struct imap_session *is, const char *tag)
{
	if (!session_starttls_allowed(is->s))
		return imap_bad(is, tag, "TLS is already active");
	session_reply(is->s, "%s OK Begin TLS negotiation now\r\n", tag);
	return SESSION_EFFECT_STARTTLS;
}

static enum session_effect imap_cmd_login(struct imap_session *is, const char *tag)
{
	session_reply(is->s, "%s NO [UNAVAILABLE] Mailbox access is not available on this server yet\r\n",
		      tag);
	return SESSION_EFFECT_NONE;
}

static const struct imap_cmd imap_commands[] = {
	{ "CAPABILITY", imap_cmd_capability },
	{ "NOOP", imap_cmd_noop },
	{ "LOGOUT", imap_cmd_logout },
	{ "STARTTLS", imap_cmd_starttls },
	{ "LOGIN", imap_cmd_login },
	{ "AUTHENTICATE", imap_cmd_login },
};

/* RFC 3501 9: tag = 1*<any ASTRING-CHAR except "+">. */
static bool imap_tag_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && c != '(' && c != ')' && c != '{' && c != '%' &&
	       c != '*' && c != '"' && c != '\\' && c != '+';
}

static enum session_effect imap_line(void *state, const char *line, size_t len)
{
	struct imap_session *is = state;
	size_t t = 0;

	while (t < len && imap_tag_char((unsigned char)line[t]))
		t++;
	if (t == 0 || t > 64 || t >= len || line[t] != ' ')
		return imap_bad(is, "*", "Missing or invalid tag");
	char *tag = xstrndup(line, t);

	size_t c = t + 1, n = c;
	while (n < len && line[n] != ' ')
		n++;
	char *name = xstrndup(line + c, n - c);
	enum session_effect effect = SESSION_EFFECT_NONE;
	bool found = false;

	for (size_t i = 0; i < sizeof(imap_commands) / sizeof(imap_commands[0]); i++) {
		if (strcasecmp(name, imap_commands[i].name) == 0) {
			effect = imap_commands[i].run(is, tag);
			found = true;
			break;
		}
	}
	if (!found)
		effect = imap_bad(is, tag, "Unknown command");
	free(name);
	free(tag);
	return effect;
}

static enum session_effect imap_line_too_long(void *state)
{
	return imap_bad(state, "*", "Line too long");
}

static enum session_effect imap_tls_started(void *state)
{
	return SESSION_EFFECT_NONE;
}

static void imap_greet(void *state)
{
	struct imap_session *is = state;
	char caps[128];

	imap_capability_list(is, caps, sizeof(caps));
	session_reply(is->s, "* OK [CAPABILITY %s] postbote ready\r\n", caps);
}

static void imap_timeout(void *state)
{
	struct imap_session *is = state;
	session_reply(is->s, "* BYE Autologout; idle for too long\r\n");
}

static void imap_shutdown(void *state)
{
	struct imap_session *is = state;
	session_reply(is->s, "* BYE [UNAVAILABLE] Server shutting down\r\n");
}

static void imap_refuse(struct buf *out, enum session_refusal why, const char *hostname)
{
	buf_printf(out, "* BYE [UNAVAILABLE] Too many connections%s, try again later\r\n",
		   why == SESSION_REFUSE_TOO_MANY_FROM_IP ? " from your address" : "");
}

static size_t imap_trace_visible(void *state, const char *line, size_t len)
{
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
	is->s = s;
	return is;
}

static void imap_destroy(void *state)
{
	free(state);
}

const struct session_proto imap_proto = {
	.name = "imap",
	.create = imap_create,
	.destroy = imap_destroy,
	.greet = imap_greet,
	.line = imap_line,
	.line_too_long = imap_line_too_long,
	.tls_started = imap_tls_started,
	.timeout = imap_timeout,
	.shutdown = imap_shutdown,
	.refuse = imap_refuse,
	.trace_visible = imap_trace_visible,
};
