/*
 * The SMTP client state machine (see client.h for the contract and the
 * decisions about greetings, 8-bit content and timeouts).
 *
 * Why it is shaped so: delivery is where mail gets lost or duplicated, so
 * every reply is matched to the command it answers (a FIFO index over
 * MAIL, RCPT 1..n, DATA, the same with and without PIPELINING), and every
 * recipient ends in exactly one of delivered / deferred / failed before the
 * client says it is done. Anything the client did not expect (garbage, a
 * reply while the body is going out, a 421) defers what is still in play:
 * a deferral costs a retry, a wrong "delivered" or "failed" costs a message.
 *
 * What it must never do: block, touch a socket or a file, send a secret to
 * the trace, or send a line start it did not dot-stuff.
 */
#include "smtp/client.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/base64.h"
#include "auth/sasl.h"
#include "core/xalloc.h"
#include "smtp/smtp_address.h"

#define EHLO_NAME_MAX 255
#define ENVID_MAX 100           /* RFC 3461 4.4 */
#define ORCPT_TYPE_MAX 32
#define ORCPT_MAX (SMTP_PATH_MAX + 32)

enum client_state {
	ST_GREETING = 0,
	ST_EHLO,
	ST_HELO,
	ST_STARTTLS,
	ST_TLS,            /* the glue runs the handshake */
	ST_AUTH_USER,      /* AUTH LOGIN sent, waiting for the 334 asking for the user */
	ST_AUTH_PASS,      /* user sent, waiting for the 334 asking for the password */
	ST_AUTH,           /* credentials sent, waiting for 235 */
	ST_TXN,            /* MAIL, RCPT..., DATA: replies matched by reply_idx */
	ST_BODY,           /* sending the content */
	ST_DOT,            /* "." sent, waiting for the final reply */
	ST_QUIT,
	ST_CLOSED,
};

static const char *const stage_names[] = {
	[ST_GREETING] = "greeting", [ST_EHLO] = "EHLO", [ST_HELO] = "HELO", [ST_STARTTLS] = "STARTTLS",
	[ST_TLS] = "TLS handshake", [ST_AUTH_USER] = "AUTH", [ST_AUTH_PASS] = "AUTH", [ST_AUTH] = "AUTH",
	[ST_TXN] = "MAIL", [ST_BODY] = "message body", [ST_DOT] = "end of data", [ST_QUIT] = "QUIT",
	[ST_CLOSED] = "closed",
};

struct rcpt_state {
	struct smtp_client_result res;
	bool accepted;           /* 2xx to RCPT: waits for the end of data */
};

struct smtp_client {
	struct smtp_client_params p;   /* strings borrowed */
	struct smtp_client_timeouts t;
	enum client_state state;
	struct smtp_reply_parser *parser;
	struct buf out;
	bool out_overflow;             /* a bug guard: output past its maximum */
	struct smtp_ehlo ehlo;
	bool tls_active;
	bool starttls_refused;         /* opportunistic: go on in plaintext */
	bool authenticated;

	/* The transaction. Reply reply_idx answers command reply_idx:
	 * 0 = MAIL, 1..n = RCPT, n + 1 = DATA. */
	bool pipelining;
	bool mail_ok;
	size_t reply_idx;
	size_t n_accepted;
	bool rcpt_replied;             /* some recipient got a reply of its own */
	bool dot_ignore;               /* "." only closes a DATA nobody needed */

	/* The body on its way out. */
	bool line_start;
	bool cr_pending;
	char *scratch;                 /* 2 * SMTP_CLIENT_BODY_CHUNK + 8 */

	bool finished;                 /* every recipient decided */
	bool site;
	bool tls_failed;
	char *reason;
	struct rcpt_state *rcpts;
};

void smtp_client_timeouts_default(struct smtp_client_timeouts *t)
{
	t->greeting_ms = 5 * 60 * 1000;
	t->command_ms = 5 * 60 * 1000;
	t->mail_ms = 5 * 60 * 1000;
	t->rcpt_ms = 5 * 60 * 1000;
	t->data_init_ms = 2 * 60 * 1000;
	t->data_block_ms = 3 * 60 * 1000;
	t->data_term_ms = 10 * 60 * 1000;
}

/* ---- checking the parameters ---- */

/* An address for "<...>": no control characters, spaces or brackets that
 * could end the path or the command line. */
static bool address_ok(const char *a, bool allow_empty)
{
	size_t n = strlen(a);

	if (n == 0)
		return allow_empty;
	if (n > SMTP_PATH_MAX)
		return false;
	for (const unsigned char *p = (const unsigned char *)a; *p; p++) {
		if (*p <= ' ' || *p == 0x7f || *p == '<' || *p == '>')
			return false;
	}
	return true;
}

static bool orcpt_ok(const char *o)
{
	const char *semi = strchr(o, ';');

	if (semi == NULL || semi == o || semi - o > ORCPT_TYPE_MAX || strlen(o) > ORCPT_MAX)
		return false;
	/* RFC 3461 4.2: addr-type is an atom. */
	for (const char *p = o; p < semi; p++) {
		char ch = *p;
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-'))
			return false;
	}
	return true;
}

static const char *params_check(const struct smtp_client_params *p)
{
	if (p->ehlo_name == NULL || p->ehlo_name[0] == '\0' || strlen(p->ehlo_name) > EHLO_NAME_MAX)
		return "EHLO name missing or too long";
	for (const unsigned char *q = (const unsigned char *)p->ehlo_name; *q; q++) {
		if (*q <= ' ' || *q >= 0x7f)
			return "EHLO name has a character outside printable ASCII";
	}
	if (p->sender == NULL || !address_ok(p->sender, true))
		return "sender address unusable";
	if (p->n_rcpts == 0 || p->rcpts == NULL)
		return "no recipients";
	for (size_t i = 0; i < p->n_rcpts; i++) {
		if (p->rcpts[i].address == NULL || !address_ok(p->rcpts[i].address, false))
			return "recipient address unusable";
		if (p->rcpts[i].orcpt != NULL && !orcpt_ok(p->rcpts[i].orcpt))
			return "ORCPT unusable";
	}
	if (p->envid != NULL && strlen(p->envid) > ENVID_MAX)
		return "ENVID longer than 100 characters";
	if ((p->auth_user == NULL) != (p->auth_password == NULL))
		return "AUTH needs both user and password";
	if (p->auth_user != NULL &&
	    (p->auth_user[0] == '\0' || strlen(p->auth_user) > SASL_ID_MAX || strlen(p->auth_password) > SASL_PASS_MAX))
		return "AUTH user or password empty or too long";
	return NULL;
}

struct smtp_client *smtp_client_new(const struct smtp_client_params *params, const char **error_r)
{
	const char *err = params_check(params);

	if (err != NULL) {
		if (error_r != NULL)
			*error_r = err;
		return NULL;
	}
	struct smtp_client *c = xcalloc(1, sizeof(*c));
	c->p = *params;
	if (c->p.server == NULL)
		c->p.server = "the server";
	smtp_client_timeouts_default(&c->t);
	const struct smtp_client_timeouts *u = &params->timeouts;
	if (u->greeting_ms) c->t.greeting_ms = u->greeting_ms;
	if (u->command_ms) c->t.command_ms = u->command_ms;
	if (u->mail_ms) c->t.mail_ms = u->mail_ms;
	if (u->rcpt_ms) c->t.rcpt_ms = u->rcpt_ms;
	if (u->data_init_ms) c->t.data_init_ms = u->data_init_ms;
	if (u->data_block_ms) c->t.data_block_ms = u->data_block_ms;
	if (u->data_term_ms) c->t.data_term_ms = u->data_term_ms;
	c->tls_active = params->tls_active;
	c->parser = smtp_reply_parser_new();
	c->rcpts = xcalloc(params->n_rcpts, sizeof(*c->rcpts));
	/* Our own output, so the bound is ours to size: the commands of the
	 * longest dialogue (AUTH PLAIN's base64, MAIL with every parameter,
	 * every RCPT with an xtext ORCPT in one pipelined write) plus one
	 * converted body chunk and the final dot. */
	size_t per_rcpt = 64 + SMTP_PATH_MAX + ORCPT_TYPE_MAX + 3 * ORCPT_MAX;
	buf_init(&c->out, 8192 + params->n_rcpts * per_rcpt + 2 * SMTP_CLIENT_BODY_CHUNK + 16);
	c->scratch = xmalloc(2 * SMTP_CLIENT_BODY_CHUNK + 8);
	c->state = ST_GREETING;
	return c;
}

void smtp_client_free(struct smtp_client **cp)
{
	struct smtp_client *c = *cp;

	if (c == NULL)
		return;
	/* The buffer may still hold AUTH's base64 (STYLE: secrets are wiped). */
	if (c->out.data != NULL)
		explicit_bzero(c->out.data, c->out.cap);
	buf_free(&c->out);
	smtp_reply_parser_free(&c->parser);
	for (size_t i = 0; i < c->p.n_rcpts; i++)
		free((char *)c->rcpts[i].res.text);
	free(c->rcpts);
	free(c->reason);
	free(c->scratch);
	free(c);
	*cp = NULL;
}

/* ---- output ---- */

static void out_printf(struct smtp_client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out_printf(struct smtp_client *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (buf_vprintf(&c->out, fmt, ap) < 0)
		c->out_overflow = true;
	va_end(ap);
}

/* RFC 3461 4: xtext, "+" and "=" and everything outside "!".."~" as +XX. */
static void out_xtext(struct smtp_client *c, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	char tmp[3 * ORCPT_MAX + 1];
	size_t o = 0;

	for (const unsigned char *p = (const unsigned char *)s; *p && o + 4 < sizeof(tmp); p++) {
		if (*p >= '!' && *p <= '~' && *p != '+' && *p != '=') {
			tmp[o++] = (char)*p;
		} else {
			tmp[o++] = '+';
			tmp[o++] = hex[*p >> 4];
			tmp[o++] = hex[*p & 15];
		}
	}
	if (buf_append(&c->out, tmp, o) < 0)
		c->out_overflow = true;
}

static void send_ehlo(struct smtp_client *c)
{
	out_printf(c, "EHLO %s\r\n", c->p.ehlo_name);
	c->state = ST_EHLO;
}

static void send_mail(struct smtp_client *c)
{
	out_printf(c, "MAIL FROM:<%s>", c->p.sender);
	if (c->ehlo.size)
		out_printf(c, " SIZE=%" PRIu64, c->p.size);
	if (c->p.eightbit)
		out_printf(c, " BODY=8BITMIME"); /* only reached when offered */
	if (c->p.smtputf8)
		out_printf(c, " SMTPUTF8");
	if (c->ehlo.dsn) {
		if (c->p.ret == SMTP_RET_FULL)
			out_printf(c, " RET=FULL");
		else if (c->p.ret == SMTP_RET_HDRS)
			out_printf(c, " RET=HDRS");
		if (c->p.envid != NULL) {
			out_printf(c, " ENVID=");
			out_xtext(c, c->p.envid);
		}
	}
	out_printf(c, "\r\n");
}

static void send_rcpt(struct smtp_client *c, size_t i)
{
	const struct smtp_client_rcpt *r = &c->p.rcpts[i];

	out_printf(c, "RCPT TO:<%s>", r->address);
	if (c->ehlo.dsn && r->notify != 0) {
		/* RFC 3461 4.1 */
		if (r->notify & SMTP_NOTIFY_NEVER) {
			out_printf(c, " NOTIFY=NEVER");
		} else {
			const char *sep = " NOTIFY=";
			if (r->notify & SMTP_NOTIFY_SUCCESS) {
				out_printf(c, "%sSUCCESS", sep);
				sep = ",";
			}
			if (r->notify & SMTP_NOTIFY_FAILURE) {
				out_printf(c, "%sFAILURE", sep);
				sep = ",";
			}
			if (r->notify & SMTP_NOTIFY_DELAY)
				out_printf(c, "%sDELAY", sep);
		}
	}
	if (c->ehlo.dsn && r->orcpt != NULL) {
		/* RFC 3461 4.2: ORCPT=addr-type ";" xtext */
		const char *semi = strchr(r->orcpt, ';');
		out_printf(c, " ORCPT=%.*s;", (int)(semi - r->orcpt), r->orcpt);
		out_xtext(c, semi + 1);
	}
	out_printf(c, "\r\n");
}

/* ---- outcomes ---- */

static void set_result(struct smtp_client *c, size_t i, enum smtp_client_outcome o, unsigned code,
		       const char *status, const char *text, bool remote)
{
	struct smtp_client_result *r = &c->rcpts[i].res;

	r->outcome = o;
	r->code = code;
	snprintf(r->status, sizeof(r->status), "%s", status);
	r->remote = remote;
	free((char *)r->text);
	r->text = xstrdup(text);
}

/* The enhanced status for a reply that means outcome o: the server's own
 * when it gave one, with its class made to agree with what we do (a 5xx
 * greeting defers, so "5.7.1" is reported as "4.7.1"); else "C.0.0". */
static void reply_status(const struct smtp_reply *r, enum smtp_client_outcome o, char out[12])
{
	struct smtp_esc esc = r->esc;

	if (esc.cls == 0) {
		esc.subject = 0;
		esc.detail = 0;
	}
	esc.cls = o == SMTP_CLIENT_DELIVERED ? 2 : o == SMTP_CLIENT_FAILED ? 5 : 4;
	smtp_esc_format(&esc, out);
}

/* Is recipient i still in play (no outcome yet)? */
static bool pending(const struct smtp_client *c, size_t i)
{
	return c->rcpts[i].res.outcome == SMTP_CLIENT_PENDING;
}

static void set_reason(struct smtp_client *c, const char *text)
{
	free(c->reason);
	c->reason = xstrdup(text);
}

/* Every recipient still in play gets outcome o. Deferring before any
 * recipient had a reply of its own is a site failure (next MX). */
static void decide_pending(struct smtp_client *c, enum smtp_client_outcome o, unsigned code, const char *status,
			   const char *text, bool remote)
{
	bool any = false;

	for (size_t i = 0; i < c->p.n_rcpts; i++) {
		if (pending(c, i)) {
			set_result(c, i, o, code, status, text, remote);
			any = true;
		}
	}
	if (any && o == SMTP_CLIENT_DEFERRED && !c->rcpt_replied)
		c->site = true;
	set_reason(c, text);
}

static void decide_pending_reply(struct smtp_client *c, enum smtp_client_outcome o, const struct smtp_reply *r)
{
	char text[SMTP_CLIENT_TEXT_MAX + 1], status[12];

	smtp_reply_summary(r, text, sizeof(text));
	reply_status(r, o, status);
	decide_pending(c, o, r->code, status, text, true);
}

static void decide_pending_local(struct smtp_client *c, enum smtp_client_outcome o, unsigned code,
				 const char *status, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void decide_pending_local(struct smtp_client *c, enum smtp_client_outcome o, unsigned code,
				 const char *status, const char *fmt, ...)
{
	char text[SMTP_CLIENT_TEXT_MAX + 1];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	decide_pending(c, o, code, status, text, false);
}

static void rcpt_from_reply(struct smtp_client *c, size_t i, enum smtp_client_outcome o, const struct smtp_reply *r)
{
	char text[SMTP_CLIENT_TEXT_MAX + 1], status[12];

	smtp_reply_summary(r, text, sizeof(text));
	reply_status(r, o, status);
	set_result(c, i, o, r->code, status, text, true);
}

/* A reply that is not success: 5xx fails, anything else defers. */
static enum smtp_client_outcome refusal(const struct smtp_reply *r)
{
	return r->code / 100 == 5 ? SMTP_CLIENT_FAILED : SMTP_CLIENT_DEFERRED;
}

/* ---- ending ---- */

static void finish(struct smtp_client *c)
{
	/* A safety net: every path decides everyone before it ends. */
	for (size_t i = 0; i < c->p.n_rcpts; i++) {
		if (pending(c, i)) {
			decide_pending_local(c, SMTP_CLIENT_DEFERRED, 451, "4.5.0",
					     "no outcome from %s (protocol error)", c->p.server);
			break;
		}
	}
	c->finished = true;
}

static enum smtp_client_action quit(struct smtp_client *c)
{
	finish(c);
	out_printf(c, "QUIT\r\n");
	c->state = ST_QUIT;
	return SMTP_CLIENT_ACTION_NONE;
}

static enum smtp_client_action close_now(struct smtp_client *c)
{
	finish(c);
	c->state = ST_CLOSED;
	return SMTP_CLIENT_ACTION_CLOSE;
}

/* Where the dialogue is, for texts: "after RCPT TO". */
static const char *stage_phrase(const struct smtp_client *c)
{
	switch (c->state) {
	case ST_GREETING: return "waiting for the greeting";
	case ST_EHLO: return "after EHLO";
	case ST_HELO: return "after HELO";
	case ST_STARTTLS: return "after STARTTLS";
	case ST_TLS: return "during the TLS handshake";
	case ST_AUTH_USER:
	case ST_AUTH_PASS:
	case ST_AUTH: return "after AUTH";
	case ST_TXN:
		if (c->reply_idx == 0)
			return "after MAIL FROM";
		return c->reply_idx <= c->p.n_rcpts ? "after RCPT TO" : "after DATA";
	case ST_BODY: return "while sending the message";
	case ST_DOT: return "after end of data";
	case ST_QUIT: return "after QUIT";
	case ST_CLOSED: break;
	}
	return "after the end";
}

static enum smtp_client_action current_action(struct smtp_client *c)
{
	if (c->out_overflow && c->state != ST_CLOSED) {
		/* Only a bug gets here: the bound is sized for the longest dialogue. */
		decide_pending_local(c, SMTP_CLIENT_DEFERRED, 451, "4.3.0", "local error: output buffer full");
		buf_reset(&c->out);
		return close_now(c);
	}
	switch (c->state) {
	case ST_TLS: return SMTP_CLIENT_ACTION_START_TLS;
	case ST_BODY: return SMTP_CLIENT_ACTION_NEED_BODY;
	case ST_CLOSED: return SMTP_CLIENT_ACTION_CLOSE;
	default: return SMTP_CLIENT_ACTION_NONE;
	}
}

/* The server refused us before any recipient: defer (next MX), QUIT. */
static enum smtp_client_action site_refused(struct smtp_client *c, const struct smtp_reply *r)
{
	decide_pending_reply(c, SMTP_CLIENT_DEFERRED, r);
	return quit(c);
}

/* ---- the dialogue ---- */

static enum smtp_client_action start_txn(struct smtp_client *c)
{
	size_t n = c->p.n_rcpts;

	c->pipelining = c->ehlo.pipelining;
	c->mail_ok = false;
	c->reply_idx = 0;
	c->n_accepted = 0;
	c->state = ST_TXN;
	send_mail(c);
	if (c->pipelining) {
		/* RFC 2920 3.1: MAIL, every RCPT and DATA in one group; DATA
		 * is the last command of the group. */
		for (size_t i = 0; i < n; i++)
			send_rcpt(c, i);
		out_printf(c, "DATA\r\n");
	}
	return SMTP_CLIENT_ACTION_NONE;
}

/* Before a secret goes into the output: give the buffer its full size now,
 * so it is never reallocated (leaving a copy in freed memory) while the
 * secret may be in it; smtp_client_free() wipes the whole storage. The
 * bound is ours and small (client.c sizes it), so this is cheap. */
static void secure_out_storage(struct smtp_client *c)
{
	struct buf *b = &c->out;

	if (b->cap < b->max) {
		b->data = xrealloc(b->data, b->max);
		b->cap = b->max;
	}
}

/* Append a line holding a secret without a printf (whose temporaries
 * would keep a copy): prefix, the base64 of data[0..len), CRLF. */
static void send_secret_line(struct smtp_client *c, const char *prefix, const void *data, size_t len)
{
	char line[16 + ((SASL_ID_MAX + SASL_PASS_MAX + 2 + 2) / 3) * 4 + 3];
	size_t n = strlen(prefix);

	secure_out_storage(c);
	memcpy(line, prefix, n);
	n += base64_encode(data, len, line + n);
	line[n++] = '\r';
	line[n++] = '\n';
	if (buf_append(&c->out, line, n) < 0)
		c->out_overflow = true;
	explicit_bzero(line, sizeof(line));
}

static void send_auth_plain(struct smtp_client *c)
{
	/* RFC 4616: [authzid] NUL authcid NUL passwd, as an initial response
	 * (RFC 4954 4). */
	char msg[SASL_ID_MAX + SASL_PASS_MAX + 2];
	size_t ul = strlen(c->p.auth_user), pl = strlen(c->p.auth_password), n = 0;

	msg[n++] = '\0';
	memcpy(msg + n, c->p.auth_user, ul);
	n += ul;
	msg[n++] = '\0';
	memcpy(msg + n, c->p.auth_password, pl);
	n += pl;
	send_secret_line(c, "AUTH PLAIN ", msg, n);
	explicit_bzero(msg, sizeof(msg));
	c->state = ST_AUTH;
}

/* EHLO or HELO succeeded: TLS, the checks, AUTH, then the transaction. */
static enum smtp_client_action after_hello(struct smtp_client *c)
{
	const struct smtp_client_params *p = &c->p;
	const struct smtp_ehlo *e = &c->ehlo;

	if (!c->tls_active && p->tls != SMTP_CLIENT_TLS_NONE && e->starttls && !c->starttls_refused) {
		out_printf(c, "STARTTLS\r\n");
		c->state = ST_STARTTLS;
		return SMTP_CLIENT_ACTION_NONE;
	}
	if (!c->tls_active && (p->tls == SMTP_CLIENT_TLS_REQUIRE || p->tls == SMTP_CLIENT_TLS_IMPLICIT)) {
		decide_pending_local(c, SMTP_CLIENT_DEFERRED, 451, "4.7.4",
				     "TLS is required, but %s did not offer STARTTLS", p->server);
		return quit(c);
	}
	/* RFC 1870 6.1: do not send what the server said it will refuse. */
	if (e->size && e->size_max > 0 && p->size > e->size_max) {
		decide_pending_local(c, SMTP_CLIENT_FAILED, 552, "5.3.4",
				     "message of %" PRIu64 " octets exceeds the limit of %" PRIu64
				     " octets announced by %s (SIZE)",
				     p->size, e->size_max, p->server);
		return quit(c);
	}
	/* RFC 6152 3: 8-bit content only to an 8BITMIME server; we bounce
	 * rather than convert (client.h). */
	if (p->eightbit && !e->eightbitmime) {
		decide_pending_local(c, SMTP_CLIENT_FAILED, 554, "5.6.3",
				     "message has 8-bit content and %s does not support 8BITMIME", p->server);
		return quit(c);
	}
	/* RFC 6531 3.2 */
	if (p->smtputf8 && !e->smtputf8) {
		decide_pending_local(c, SMTP_CLIENT_FAILED, 553, "5.6.7",
				     "message needs SMTPUTF8 and %s does not support it", p->server);
		return quit(c);
	}
	if (p->auth_user != NULL && !c->authenticated) {
		if (!c->tls_active && !p->auth_plaintext) {
			decide_pending_local(c, SMTP_CLIENT_DEFERRED, 451, "4.7.0",
					     "not sending credentials to %s without TLS", p->server);
			return quit(c);
		}
		if (e->auth_mechs & SMTP_EHLO_AUTH_PLAIN) {
			send_auth_plain(c);
			return SMTP_CLIENT_ACTION_NONE;
		}
		if (e->auth_mechs & SMTP_EHLO_AUTH_LOGIN) {
			out_printf(c, "AUTH LOGIN\r\n");
			c->state = ST_AUTH_USER;
			return SMTP_CLIENT_ACTION_NONE;
		}
		decide_pending_local(c, SMTP_CLIENT_DEFERRED, 451, "4.7.0",
				     "%s offers no AUTH PLAIN or LOGIN", p->server);
		return quit(c);
	}
	return start_txn(c);
}

static enum smtp_client_action on_txn(struct smtp_client *c, const struct smtp_reply *r)
{
	size_t n = c->p.n_rcpts;
	size_t idx = c->reply_idx;
	bool ok = r->code / 100 == 2;

	if (idx == 0) {
		/* MAIL (RFC 5321 4.1.1.2) */
		if (ok)
			c->mail_ok = true;
		else
			decide_pending_reply(c, refusal(r), r);
		c->reply_idx++;
		if (c->pipelining)
			return SMTP_CLIENT_ACTION_NONE;
		if (!c->mail_ok)
			return quit(c);
		send_rcpt(c, 0);
		return SMTP_CLIENT_ACTION_NONE;
	}
	if (idx <= n) {
		/* RCPT (RFC 5321 4.1.1.3): answers are per recipient. After a
		 * refused MAIL the pipelined RCPTs get 503s that mean nothing. */
		size_t i = idx - 1;
		if (c->mail_ok) {
			c->rcpt_replied = true;
			if (ok) {
				c->rcpts[i].accepted = true;
				c->n_accepted++;
			} else {
				rcpt_from_reply(c, i, refusal(r), r);
			}
		}
		c->reply_idx++;
		if (c->pipelining)
			return SMTP_CLIENT_ACTION_NONE;
		if (i + 1 < n) {
			send_rcpt(c, i + 1);
			return SMTP_CLIENT_ACTION_NONE;
		}
		if (c->n_accepted == 0)
			return quit(c); /* nobody to send to: no DATA */
		out_printf(c, "DATA\r\n");
		return SMTP_CLIENT_ACTION_NONE;
	}
	/* DATA (RFC 5321 4.1.1.4) */
	c->reply_idx++;
	if (r->code == 354) {
		if (c->mail_ok && c->n_accepted > 0) {
			c->state = ST_BODY;
			c->line_start = true;
			c->cr_pending = false;
			return SMTP_CLIENT_ACTION_NEED_BODY;
		}
		/* RFC 2920 3.1: a pipelined DATA accepted without recipients
		 * is closed with a lone dot. */
		out_printf(c, ".\r\n");
		c->dot_ignore = true;
		c->state = ST_DOT;
		return SMTP_CLIENT_ACTION_NONE;
	}
	if (c->mail_ok && c->n_accepted > 0)
		decide_pending_reply(c, refusal(r), r); /* a 2xx here is nonsense: defer */
	return quit(c);
}

static enum smtp_client_action on_dot(struct smtp_client *c, const struct smtp_reply *r)
{
	if (!c->dot_ignore) {
		/* RFC 5321 4.1.1.4: one reply for every accepted recipient. */
		enum smtp_client_outcome o = r->code / 100 == 2 ? SMTP_CLIENT_DELIVERED : refusal(r);
		decide_pending_reply(c, o, r);
	}
	return quit(c);
}

static enum smtp_client_action on_reply(struct smtp_client *c, const struct smtp_reply *r)
{
	unsigned cls = r->code / 100;

	if (c->state == ST_QUIT)
		return close_now(c);
	if (r->code == 421) {
		/* RFC 5321 3.8: the server is closing; nothing more will come. */
		decide_pending_reply(c, SMTP_CLIENT_DEFERRED, r);
		return close_now(c);
	}
	switch (c->state) {
	case ST_GREETING:
		/* RFC 5321 3.1, 4.3.2: 220 or 554; anything else is no service. */
		if (r->code != 220)
			return site_refused(c, r);
		send_ehlo(c);
		return SMTP_CLIENT_ACTION_NONE;
	case ST_EHLO:
		if (cls == 2) {
			smtp_ehlo_parse(r, &c->ehlo);
			return after_hello(c);
		}
		if (cls == 5) {
			/* RFC 5321 3.2: an old server; fall back to HELO. */
			out_printf(c, "HELO %s\r\n", c->p.ehlo_name);
			c->state = ST_HELO;
			return SMTP_CLIENT_ACTION_NONE;
		}
		return site_refused(c, r);
	case ST_HELO:
		if (cls != 2)
			return site_refused(c, r);
		memset(&c->ehlo, 0, sizeof(c->ehlo));
		return after_hello(c);
	case ST_STARTTLS:
		if (r->code == 220) {
			c->state = ST_TLS;
			return SMTP_CLIENT_ACTION_START_TLS;
		}
		if (c->p.tls == SMTP_CLIENT_TLS_REQUIRE || c->p.tls == SMTP_CLIENT_TLS_IMPLICIT)
			return site_refused(c, r);
		/* Opportunistic (RFC 7435): go on in plaintext. */
		c->starttls_refused = true;
		return after_hello(c);
	case ST_AUTH_USER:
	case ST_AUTH_PASS:
		if (r->code != 334)
			return site_refused(c, r);
		if (c->state == ST_AUTH_USER) {
			send_secret_line(c, "", c->p.auth_user, strlen(c->p.auth_user));
			c->state = ST_AUTH_PASS;
		} else {
			send_secret_line(c, "", c->p.auth_password, strlen(c->p.auth_password));
			c->state = ST_AUTH;
		}
		return SMTP_CLIENT_ACTION_NONE;
	case ST_AUTH:
		if (cls != 2)
			return site_refused(c, r); /* 535 and friends: defer, fix the config */
		c->authenticated = true;
		return start_txn(c);
	case ST_TXN:
		return on_txn(c, r);
	case ST_BODY:
		/* The server spoke while we were sending: it is not listening. */
		decide_pending_reply(c, SMTP_CLIENT_DEFERRED, r);
		return close_now(c);
	case ST_DOT:
		return on_dot(c, r);
	case ST_TLS:
	case ST_QUIT:
	case ST_CLOSED:
		break;
	}
	return close_now(c);
}

enum smtp_client_action smtp_client_feed(struct smtp_client *c, const void *data, size_t len)
{
	const char *d = data;
	size_t off = 0;

	if (c->state == ST_CLOSED || c->state == ST_TLS)
		return current_action(c);
	while (off < len && c->state != ST_CLOSED) {
		struct smtp_reply r;
		size_t used;
		const char *err;
		enum smtp_reply_status st = smtp_reply_parse(c->parser, d + off, len - off, &used, &r, &err);

		off += used;
		if (st == SMTP_REPLY_NEED_MORE)
			break;
		if (st == SMTP_REPLY_ERROR) {
			if (!c->finished)
				decide_pending_local(c, SMTP_CLIENT_DEFERRED, 451, "4.5.0", "protocol error from %s %s: %s",
						     c->p.server, stage_phrase(c), err);
			return close_now(c);
		}
		enum smtp_client_action a = on_reply(c, &r);
		if (a == SMTP_CLIENT_ACTION_START_TLS)
			return current_action(c); /* the rest was sent in plaintext: dropped */
	}
	return current_action(c);
}

enum smtp_client_action smtp_client_tls_done(struct smtp_client *c)
{
	if (c->state != ST_TLS)
		return current_action(c);
	/* RFC 3207 4.2: forget what the server said before TLS. */
	c->tls_active = true;
	smtp_reply_parser_reset(c->parser);
	memset(&c->ehlo, 0, sizeof(c->ehlo));
	send_ehlo(c);
	return current_action(c);
}

size_t smtp_client_body_want(const struct smtp_client *c)
{
	return c->state == ST_BODY ? SMTP_CLIENT_BODY_CHUNK : 0;
}

enum smtp_client_action smtp_client_body(struct smtp_client *c, const void *data, size_t len, bool eof)
{
	const unsigned char *in = data;
	char *o = c->scratch;
	size_t n = 0;

	if (c->state != ST_BODY)
		return current_action(c);
	if (len > SMTP_CLIENT_BODY_CHUNK || buf_room(&c->out) < 2 * len + 8) {
		decide_pending_local(c, SMTP_CLIENT_DEFERRED, 451, "4.3.0",
				     "local error: message data given faster than it can be sent");
		return close_now(c);
	}
	/* Each input octet makes at most two output octets (LF -> CRLF,
	 * "." -> ".." at a line start, CR x -> CRLF x), plus two for a CR
	 * left over from the previous chunk. */
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = in[i];
		if (c->cr_pending) {
			c->cr_pending = false;
			o[n++] = '\r';
			o[n++] = '\n';
			c->line_start = true;
			if (ch == '\n')
				continue; /* CRLF in the file */
			/* A lone CR ends a line (client.h). */
		}
		if (ch == '\r') {
			c->cr_pending = true;
			continue;
		}
		if (ch == '\n') {
			o[n++] = '\r';
			o[n++] = '\n';
			c->line_start = true;
			continue;
		}
		/* RFC 5321 4.5.2: transparency. */
		if (c->line_start && ch == '.')
			o[n++] = '.';
		o[n++] = (char)ch;
		c->line_start = false;
	}
	if (eof) {
		if (c->cr_pending || !c->line_start) {
			o[n++] = '\r';
			o[n++] = '\n';
		}
		c->cr_pending = false;
		o[n++] = '.';
		o[n++] = '\r';
		o[n++] = '\n';
	}
	if (buf_append(&c->out, o, n) < 0)
		c->out_overflow = true;
	if (eof)
		c->state = ST_DOT;
	return current_action(c);
}

enum smtp_client_action smtp_client_fail(struct smtp_client *c, enum smtp_client_failure why, const char *detail)
{
	const char *d = detail != NULL && *detail != '\0' ? detail : NULL;

	if (c->finished) {
		c->state = ST_CLOSED;
		return SMTP_CLIENT_ACTION_CLOSE;
	}
	switch (why) {
	case SMTP_CLIENT_FAIL_CONNECT:
		decide_pending_local(c, SMTP_CLIENT_DEFERRED, 451, "4.4.1", "connect to %s failed%s%s", c->p.server,
				     d ? ": " : "", d ? d : "");
		break;
	case SMTP_CLIENT_FAIL_TIMEOUT:
		decide_pending_local(c, SMTP_CLIENT_DEFERRED, 451, "4.4.2", "timeout %s with %s", stage_phrase(c),
				     c->p.server);
		break;
	case SMTP_CLIENT_FAIL_TLS:
		c->tls_failed = true;
		decide_pending_local(c, SMTP_CLIENT_DEFERRED, 451, "4.7.5", "TLS with %s failed%s%s", c->p.server,
				     d ? ": " : "", d ? d : "");
		break;
	case SMTP_CLIENT_FAIL_CLOSED:
	default:
		decide_pending_local(c, SMTP_CLIENT_DEFERRED, 451, "4.4.2", "lost connection with %s %s%s%s",
				     c->p.server, stage_phrase(c), d ? ": " : "", d ? d : "");
		break;
	}
	return close_now(c);
}

struct buf *smtp_client_output(struct smtp_client *c)
{
	return &c->out;
}

uint64_t smtp_client_timeout_ms(const struct smtp_client *c)
{
	switch (c->state) {
	case ST_GREETING: return c->t.greeting_ms;
	case ST_TXN:
		if (c->reply_idx == 0)
			return c->t.mail_ms;
		return c->reply_idx <= c->p.n_rcpts ? c->t.rcpt_ms : c->t.data_init_ms;
	case ST_BODY: return c->t.data_block_ms;
	case ST_DOT: return c->t.data_term_ms;
	case ST_CLOSED: return 0;
	default: return c->t.command_ms;
	}
}

bool smtp_client_done(const struct smtp_client *c)
{
	return c->finished;
}

const struct smtp_client_result *smtp_client_rcpt_result(const struct smtp_client *c, size_t i)
{
	return i < c->p.n_rcpts ? &c->rcpts[i].res : NULL;
}

void smtp_client_summary(const struct smtp_client *c, struct smtp_client_summary *s)
{
	memset(s, 0, sizeof(*s));
	s->done = c->finished;
	for (size_t i = 0; i < c->p.n_rcpts; i++) {
		switch (c->rcpts[i].res.outcome) {
		case SMTP_CLIENT_DELIVERED: s->delivered++; break;
		case SMTP_CLIENT_DEFERRED: s->deferred++; break;
		case SMTP_CLIENT_FAILED: s->failed++; break;
		case SMTP_CLIENT_PENDING: break;
		}
	}
	s->site = c->site && s->deferred > 0;
	s->tls = c->tls_active;
	s->tls_failed = c->tls_failed;
	s->authenticated = c->authenticated;
	s->text = c->reason;
}

const struct smtp_ehlo *smtp_client_ehlo(const struct smtp_client *c)
{
	return &c->ehlo;
}

const char *smtp_client_stage(const struct smtp_client *c)
{
	if (c->state == ST_TXN)
		return c->reply_idx == 0 ? "MAIL" : c->reply_idx <= c->p.n_rcpts ? "RCPT" : "DATA";
	return stage_names[c->state];
}

size_t smtp_client_trace_visible(const struct smtp_client *c, const char *line, size_t len)
{
	if (len > 5 && strncasecmp(line, "AUTH ", 5) == 0) {
		size_t n = 5;
		while (n < len && line[n] != ' ')
			n++;
		return n < len ? n + 1 : len;
	}
	/* LOGIN's answers, one base64 word each: the user while waiting for
	 * the password prompt, the password while waiting for 235. Lines
	 * with a space (an EHLO sent in the same output) are commands. */
	if ((c->state == ST_AUTH_PASS || c->state == ST_AUTH) && memchr(line, ' ', len) == NULL)
		return 0;
	return len;
}
