/*
 * POP3 server session (see pop3_session.h for the protocol it speaks).
 *
 * Shape: a static command table names the states each command is allowed
 * in and how many arguments it takes; the dispatcher checks both before the
 * command runs (OpenSMTPD's check/proceed split), so every run function
 * starts from valid input in the right state.
 *
 * Three kinds of work do not finish inside one call:
 *  - the password check and the maildrop open: the session returns
 *    SESSION_EFFECT_WAIT and the backend's callback answers and resumes;
 *  - the deletions after QUIT (UPDATE state): the same;
 *  - long replies (RETR, TOP, LIST, UIDL): a "pump" writes at most
 *    POP3_PUMP_BUDGET octets, asks for session_wait_drain() and continues
 *    in proto->drained, like Dovecot's pop3 command continuations. A
 *    1 GiB message costs the same memory as a 1 KiB one.
 *
 * What it must never do: read a whole message (or the whole listing of a
 * large mailbox) into memory, answer a command while a previous one is
 * still being answered, or remove anything unless the client said QUIT.
 */
#include "pop3/pop3_session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/auth.h"
#include "auth/sasl.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "pop3/pop3_backend.h"

enum pop3_state {
	POP3_STATE_AUTHORIZATION = 0,
	POP3_STATE_TRANSACTION,
	POP3_STATE_UPDATE,
};

#define POP3_IN_AUTH  (1u << POP3_STATE_AUTHORIZATION)
#define POP3_IN_TRANS (1u << POP3_STATE_TRANSACTION)
#define POP3_IN_ANY   (POP3_IN_AUTH | POP3_IN_TRANS)

/* Arguments are split on spaces, except for commands that take the rest of
 * the line as it is (a password may contain spaces). */
#define POP3_ARGS_MAX 2
#define POP3_ARGS_RAW (-1)

/* A SASL response line may be as long as the base64 of the longest valid
 * PLAIN message, whatever pop3_line_max says (RFC 5034 4 lets responses
 * exceed the command limit). */
#define POP3_SASL_LINE_MAX (((SASL_ID_MAX * 2 + SASL_PASS_MAX + 2 + 2) / 3) * 4 + 2)

enum pop3_sasl {
	POP3_SASL_NONE = 0,
	POP3_SASL_PLAIN,            /* waiting for the PLAIN response */
	POP3_SASL_LOGIN,            /* in a LOGIN exchange */
};

enum pop3_pump_kind {
	POP3_PUMP_NONE = 0,
	POP3_PUMP_LIST,
	POP3_PUMP_UIDL,
	POP3_PUMP_MESSAGE,          /* RETR or TOP */
};

/* A long reply being written in pieces. */
struct pop3_pump {
	enum pop3_pump_kind kind;
	size_t next;                /* LIST, UIDL: the next message index */
	void *reader;               /* MESSAGE: the backend's reader */
	bool top;                   /* TOP: stop after top_lines body lines */
	uint64_t top_lines;
	uint64_t body_lines;
	bool in_headers;
	bool bol;                   /* at the beginning of a line */
	bool prev_cr;               /* the last byte copied was CR */
	size_t line_bytes;          /* bytes of the current line so far (saturating) */
};

struct pop3_session {
	struct session *s;
	const struct pop3_backend *be;
	enum pop3_state state;
	unsigned errors;

	/* AUTHORIZATION */
	char user[AUTH_USER_MAX + 1];   /* from USER; "" = none yet */
	enum pop3_sasl sasl;
	struct sasl_login *login;
	void *auth;                     /* password check in flight */

	/* From a successful login on. */
	char *account;
	struct pop3_maildrop *md;       /* opening, or open */
	bool *deleted;                  /* per message: marked by DELE */
	size_t n_deleted;
	uint64_t deleted_octets;
	unsigned retrieved;

	struct pop3_pump pump;
	size_t out_since_drain;         /* body and listing octets since the last drain */
};

struct pop3_args {
	const char *raw;            /* everything after "CMD " ("" when none) */
	size_t argc;
	char *argv[POP3_ARGS_MAX];
};

struct pop3_cmd {
	const char *name;
	unsigned states;
	int min_args, max_args;     /* max POP3_ARGS_RAW: the run takes args->raw */
	const char *syntax;
	enum session_effect (*run)(struct pop3_session *ps, const struct pop3_args *args);
};

/* ---------------------------------------------------------------- */
/* Replies                                                           */

/* An error caused by the client's input: counted, and past
 * max_bad_commands the session ends (contract 5). */
static enum session_effect pop3_error(struct pop3_session *ps, const char *reply)
{
	session_reply(ps->s, "-ERR %s\r\n", reply);
	if (++ps->errors >= session_config(ps->s)->max_bad_commands) {
		session_reply(ps->s, "-ERR Too many errors, closing connection\r\n");
		return SESSION_EFFECT_CLOSE;
	}
	return SESSION_EFFECT_NONE;
}

static bool pop3_login_allowed(const struct pop3_session *ps)
{
	/* Contract 7: passwords only under TLS, or from loopback when the
	 * config allows it. */
	return session_tls_active(ps->s) ||
	       (session_config(ps->s)->allow_plaintext_auth_loopback && session_peer_loopback(ps->s));
}

static void pop3_stat_live(const struct pop3_session *ps, size_t *count_r, uint64_t *octets_r)
{
	uint64_t octets = 0;

	for (size_t i = 0; i < ps->md->n; i++)
		octets += ps->md->msgs[i].vsize;
	*count_r = ps->md->n - ps->n_deleted;
	*octets_r = octets - ps->deleted_octets;
}

/* RFC 1939 7 leaves the UIDL format to the server: Dovecot's default
 * (%08Xu%08Xv) keeps the IDs of an adopted Dovecot Maildir. */
static void pop3_uidl(const struct pop3_session *ps, size_t i, char out[17])
{
	snprintf(out, 17, "%08X%08X", (unsigned)ps->md->msgs[i].uid, (unsigned)ps->md->uidvalidity);
}

/* ---------------------------------------------------------------- */
/* Long replies                                                      */

static void pop3_pump_end(struct pop3_session *ps)
{
	if (ps->pump.reader != NULL)
		ps->be->message_close(ps->pump.reader);
	memset(&ps->pump, 0, sizeof(ps->pump));
}

/* The conversion's buffers. Static rather than on the stack or per
 * session: a step runs start to end on the loop thread, so one pair serves
 * every session. Worst case out: every byte a line end, or "." + LF per
 * line: twice the input. */
static char pop3_chunk_in[POP3_READ_CHUNK];
static char pop3_chunk_out[2 * POP3_READ_CHUNK + 4];

/* Copy message bytes to the client: lone LF becomes CRLF, a "." at the
 * start of a line is doubled (RFC 1939 3), TOP stops after its lines.
 * Returns how many octets went out; *stop_r when TOP has all it wants. */
static size_t pop3_pump_convert(struct pop3_session *ps, const char *in, size_t len, bool *stop_r)
{
	char *out = pop3_chunk_out;
	struct pop3_pump *p = &ps->pump;
	const char *cur = in, *end = in + len;
	size_t o = 0;

	*stop_r = false;
	while (cur < end) {
		if (p->bol && *cur == '.')
			out[o++] = '.';
		const char *lf = memchr(cur, '\n', (size_t)(end - cur));
		size_t run = (size_t)((lf != NULL ? lf : end) - cur);
		if (run > 0) {
			memcpy(out + o, cur, run);
			o += run;
			p->prev_cr = cur[run - 1] == '\r';
			p->line_bytes = p->line_bytes + run < p->line_bytes ? SIZE_MAX : p->line_bytes + run;
			p->bol = false;
			cur += run;
		}
		if (lf == NULL)
			break;
		if (!p->prev_cr)
			out[o++] = '\r';
		out[o++] = '\n';
		cur++;
		bool empty = p->line_bytes == 0 || (p->line_bytes == 1 && p->prev_cr);
		p->bol = true;
		p->prev_cr = false;
		p->line_bytes = 0;
		if (p->top) {
			/* RFC 1939 7 (TOP): the headers, the blank line,
			 * then n lines of the body. */
			if (p->in_headers)
				p->in_headers = !empty;
			else
				p->body_lines++;
			if (!p->in_headers && p->body_lines >= p->top_lines) {
				*stop_r = true;
				break;
			}
		}
	}
	session_write_body(ps->s, out, o);
	return o;
}

/* One step of a message: returns 1 when it is all out, 0 for more, -1
 * when the file could not be read (the reply is cut: close). */
static int pop3_pump_message(struct pop3_session *ps)
{
	char *in = pop3_chunk_in;
	size_t written = 0;

	while (written < POP3_PUMP_BUDGET) {
		ssize_t n = ps->be->message_read(ps->pump.reader, in, sizeof(pop3_chunk_in));
		bool stop = false;
		if (n < 0) {
			log_error("pop3 %llu: %s: a message could not be read; closing mid-reply",
				  (unsigned long long)session_id(ps->s), ps->account);
			pop3_pump_end(ps);
			return -1;
		}
		if (n > 0)
			written += pop3_pump_convert(ps, in, (size_t)n, &stop);
		if (n == 0 || stop) {
			/* A last line without its line end gets one, so the
			 * terminator stands on a line of its own. */
			if (!ps->pump.bol)
				session_write_body(ps->s, ps->pump.prev_cr ? "\n" : "\r\n", ps->pump.prev_cr ? 1 : 2);
			session_reply(ps->s, ".\r\n");
			ps->out_since_drain += written;
			pop3_pump_end(ps);
			return 1;
		}
	}
	ps->out_since_drain += written;
	return 0;
}

/* One step of LIST or UIDL without an argument. */
static int pop3_pump_listing(struct pop3_session *ps)
{
	size_t written = 0;

	while (ps->pump.next < ps->md->n && written < POP3_PUMP_BUDGET) {
		size_t i = ps->pump.next++;
		char line[64];
		int n;
		if (ps->deleted[i])
			continue;
		if (ps->pump.kind == POP3_PUMP_LIST) {
			n = snprintf(line, sizeof(line), "%zu %llu\r\n", i + 1,
				     (unsigned long long)ps->md->msgs[i].vsize);
		} else {
			char uidl[17];
			pop3_uidl(ps, i, uidl);
			n = snprintf(line, sizeof(line), "%zu %s\r\n", i + 1, uidl);
		}
		/* A reply line (traced as such), not message content. */
		session_reply(ps->s, "%s", line);
		written += (size_t)n;
	}
	ps->out_since_drain += written;
	if (ps->pump.next < ps->md->n)
		return 0;
	session_reply(ps->s, ".\r\n");
	pop3_pump_end(ps);
	return 1;
}

static int pop3_pump_step(struct pop3_session *ps)
{
	switch (ps->pump.kind) {
	case POP3_PUMP_LIST:
	case POP3_PUMP_UIDL:
		return pop3_pump_listing(ps);
	case POP3_PUMP_MESSAGE:
		return pop3_pump_message(ps);
	default:
		return 1;
	}
}

/* Run the first step of a long reply. A reply that is done and small goes
 * on at once; otherwise the session waits until the output drains, so
 * pipelined commands cannot pile up replies without bound. */
static enum session_effect pop3_pump_start(struct pop3_session *ps)
{
	int r = pop3_pump_step(ps);

	if (r < 0)
		return SESSION_EFFECT_CLOSE;
	if (r > 0 && ps->out_since_drain < POP3_PUMP_BUDGET)
		return SESSION_EFFECT_NONE;
	session_wait_drain(ps->s);
	return SESSION_EFFECT_WAIT;
}

static void pop3_drained(void *state)
{
	struct pop3_session *ps = state;

	ps->out_since_drain = 0;
	int r = pop3_pump_step(ps);
	if (r < 0) {
		session_resume(ps->s, SESSION_EFFECT_CLOSE);
	} else if (r == 0 || ps->out_since_drain >= POP3_PUMP_BUDGET) {
		session_wait_drain(ps->s);
	} else {
		session_resume(ps->s, SESSION_EFFECT_NONE);
	}
}

/* ---------------------------------------------------------------- */
/* Arguments                                                         */

/* A message number (RFC 1939 3: decimal, 1-based) that names a message
 * not marked as deleted. Returns the index, or -1 after replying. */
static long pop3_msg_arg(struct pop3_session *ps, const char *arg, enum session_effect *effect_r)
{
	size_t len = strlen(arg), v = 0;

	*effect_r = SESSION_EFFECT_NONE;
	if (len == 0 || len > 10 || strspn(arg, "0123456789") != len) {
		*effect_r = pop3_error(ps, "Invalid message number");
		return -1;
	}
	for (size_t i = 0; i < len; i++)
		v = v * 10 + (size_t)(arg[i] - '0');
	if (v == 0 || v > ps->md->n) {
		*effect_r = pop3_error(ps, "No such message");
		return -1;
	}
	if (ps->deleted[v - 1]) {
		*effect_r = pop3_error(ps, "Message is marked as deleted");
		return -1;
	}
	return (long)(v - 1);
}

/* ---------------------------------------------------------------- */
/* AUTHORIZATION                                                     */

static enum session_effect pop3_cmd_capa(struct pop3_session *ps, const struct pop3_args *args)
{
	/* RFC 2449 5: what is offered now. USER and SASL only where a
	 * password would be taken; STLS only before TLS and before login. */
	session_reply(ps->s, "+OK Capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n"
			     "PIPELINING\r\n");
	if (ps->state == POP3_STATE_AUTHORIZATION) {
		if (pop3_login_allowed(ps))
			session_reply(ps->s, "USER\r\nSASL PLAIN LOGIN\r\n");
		if (session_starttls_allowed(ps->s))
			session_reply(ps->s, "STLS\r\n");
	}
	session_reply(ps->s, "IMPLEMENTATION postbote-%s\r\n.\r\n", POSTBOTE_VERSION);
	return SESSION_EFFECT_NONE;
}

static enum session_effect pop3_cmd_stls(struct pop3_session *ps, const struct pop3_args *args)
{
	if (!session_starttls_allowed(ps->s))
		return pop3_error(ps, "Command not permitted when TLS active");
	session_reply(ps->s, "+OK Begin TLS negotiation\r\n");
	return SESSION_EFFECT_STARTTLS;
}

static void pop3_auth_done(void *arg, enum auth_result result, const char *account);

/* Start the password check; the session waits for pop3_auth_done. */
static enum session_effect pop3_login_start(struct pop3_session *ps, const char *user, const char *password)
{
	if (ps->be == NULL) {
		session_reply(ps->s, "-ERR [SYS/PERM] Mailbox access is not available on this server\r\n");
		return SESSION_EFFECT_NONE;
	}
	ps->auth = ps->be->auth_start(ps->be->ctx, user, password, session_peer(ps->s), pop3_auth_done, ps);
	if (ps->auth == NULL)
		return pop3_error(ps, "[AUTH] Authentication failed");
	return SESSION_EFFECT_WAIT;
}

static enum session_effect pop3_plaintext_refused(struct pop3_session *ps)
{
	return pop3_error(ps, "[AUTH] Plaintext authentication disallowed on non-secure connections, use STLS");
}

static enum session_effect pop3_cmd_user(struct pop3_session *ps, const struct pop3_args *args)
{
	size_t len = strlen(args->raw);

	ps->user[0] = '\0';
	if (!pop3_login_allowed(ps))
		return pop3_plaintext_refused(ps);
	if (len == 0)
		return pop3_error(ps, "Syntax: USER name");
	if (len > AUTH_USER_MAX)
		return pop3_error(ps, "User name too long");
	memcpy(ps->user, args->raw, len + 1);
	session_reply(ps->s, "+OK Send your password\r\n");
	return SESSION_EFFECT_NONE;
}

static enum session_effect pop3_cmd_pass(struct pop3_session *ps, const struct pop3_args *args)
{
	char user[AUTH_USER_MAX + 1];

	if (!pop3_login_allowed(ps))
		return pop3_plaintext_refused(ps);
	if (ps->user[0] == '\0')
		return pop3_error(ps, "Send USER first");
	/* RFC 1939 7: a failed PASS returns to the start of AUTHORIZATION. */
	memcpy(user, ps->user, sizeof(user));
	ps->user[0] = '\0';
	return pop3_login_start(ps, user, args->raw);
}

static enum session_effect pop3_cmd_apop(struct pop3_session *ps, const struct pop3_args *args)
{
	/* APOP needs the plaintext password on the server; we keep hashes. */
	return pop3_error(ps, "APOP is not supported, use USER/PASS or AUTH over TLS");
}

static void pop3_sasl_end(struct pop3_session *ps)
{
	ps->sasl = POP3_SASL_NONE;
	sasl_login_free(&ps->login);
	session_set_line_max(ps->s, session_config(ps->s)->pop3_line_max);
}

static enum session_effect pop3_sasl_error(struct pop3_session *ps, enum sasl_error err)
{
	char reply[128];

	pop3_sasl_end(ps);
	if (err == SASL_ERR_CANCELLED)
		return pop3_error(ps, "Authentication cancelled");
	snprintf(reply, sizeof(reply), "[AUTH] Authentication failed: %s", sasl_strerror(err));
	return pop3_error(ps, reply);
}

/* Credentials are complete: check them, then wipe them. */
static enum session_effect pop3_sasl_login(struct pop3_session *ps, struct sasl_credentials *cred)
{
	enum session_effect e = pop3_login_start(ps, cred->user, cred->password);
	sasl_credentials_wipe(cred);
	return e;
}

static void pop3_sasl_challenge(struct pop3_session *ps, enum pop3_sasl mech, const char *challenge)
{
	size_t max = session_config(ps->s)->pop3_line_max;

	ps->sasl = mech;
	session_set_line_max(ps->s, max > POP3_SASL_LINE_MAX ? max : POP3_SASL_LINE_MAX);
	/* RFC 5034 4: "+" SP base64 challenge. */
	session_reply(ps->s, "+ %s\r\n", challenge);
}

static enum session_effect pop3_cmd_auth(struct pop3_session *ps, const struct pop3_args *args)
{
	if (!pop3_login_allowed(ps))
		return pop3_plaintext_refused(ps);
	ps->user[0] = '\0';
	if (args->argc == 0) {
		/* Not in RFC 5034, but what clients (Outlook) probe with:
		 * the mechanisms as a multi-line list. */
		session_reply(ps->s, "+OK\r\nPLAIN\r\nLOGIN\r\n.\r\n");
		return SESSION_EFFECT_NONE;
	}
	const char *initial = args->argc > 1 ? args->argv[1] : NULL;
	size_t ilen = initial != NULL ? strlen(initial) : 0;

	if (strcasecmp(args->argv[0], "PLAIN") == 0) {
		if (initial == NULL) {
			pop3_sasl_challenge(ps, POP3_SASL_PLAIN, "");
			return SESSION_EFFECT_NONE;
		}
		struct sasl_credentials cred;
		enum sasl_error err = sasl_plain_decode(initial, ilen, &cred);
		if (err != SASL_OK)
			return pop3_sasl_error(ps, err);
		return pop3_sasl_login(ps, &cred);
	}
	if (strcasecmp(args->argv[0], "LOGIN") == 0) {
		const char *challenge;
		enum sasl_error err = SASL_OK;
		ps->login = sasl_login_new();
		if (sasl_login_begin(ps->login, initial, ilen, &challenge, &err) != SASL_STEP_NEED_MORE)
			return pop3_sasl_error(ps, err);
		pop3_sasl_challenge(ps, POP3_SASL_LOGIN, challenge);
		return SESSION_EFFECT_NONE;
	}
	return pop3_error(ps, "Unsupported authentication mechanism");
}

/* A client response inside an AUTH exchange. */
static enum session_effect pop3_sasl_line(struct pop3_session *ps, const char *line, size_t len)
{
	if (ps->sasl == POP3_SASL_PLAIN) {
		struct sasl_credentials cred;
		enum sasl_error err = sasl_plain_decode(line, len, &cred);
		if (err != SASL_OK)
			return pop3_sasl_error(ps, err);
		pop3_sasl_end(ps);
		return pop3_sasl_login(ps, &cred);
	}
	const char *challenge;
	enum sasl_error err = SASL_OK;
	switch (sasl_login_feed(ps->login, line, len, &challenge, &err)) {
	case SASL_STEP_NEED_MORE:
		session_reply(ps->s, "+ %s\r\n", challenge);
		return SESSION_EFFECT_NONE;
	case SASL_STEP_DONE: {
		struct sasl_credentials cred = *sasl_login_credentials(ps->login);
		pop3_sasl_end(ps);
		return pop3_sasl_login(ps, &cred);
	}
	default:
		return pop3_sasl_error(ps, err);
	}
}

static void pop3_opened(void *arg, enum pop3_status status, struct pop3_maildrop *md);

static void pop3_auth_done(void *arg, enum auth_result result, const char *account)
{
	struct pop3_session *ps = arg;
	enum session_effect e = SESSION_EFFECT_NONE;

	ps->auth = NULL;
	switch (result) {
	case AUTH_OK: {
		enum pop3_status st = POP3_TEMPFAIL;
		ps->account = xstrdup(account);
		ps->md = ps->be->maildrop_open(ps->be->ctx, account, pop3_opened, ps, &st);
		if (ps->md != NULL)
			return; /* still waiting: pop3_opened resumes */
		pop3_opened(ps, st, NULL);
		return;
	}
	case AUTH_LOCKED:
		/* RFC 2449 8.1.2: the client should not try again soon. */
		e = pop3_error(ps, "[LOGIN-DELAY] Too many failed logins, try again later");
		break;
	case AUTH_TEMPFAIL:
		session_reply(ps->s, "-ERR [SYS/TEMP] Temporary server failure, try again later\r\n");
		break;
	default:
		e = pop3_error(ps, "[AUTH] Authentication failed");
		break;
	}
	session_resume(ps->s, e);
}

static void pop3_opened(void *arg, enum pop3_status status, struct pop3_maildrop *md)
{
	struct pop3_session *ps = arg;

	if (status != POP3_OK) {
		if (md != NULL)
			ps->be->maildrop_close(ps->be->ctx, md);
		ps->md = NULL;
		switch (status) {
		case POP3_IN_USE:
			log_info("pop3 %llu: %s: maildrop in use by another POP3 session",
				 (unsigned long long)session_id(ps->s), ps->account);
			session_reply(ps->s, "-ERR [IN-USE] Mailbox is locked by another POP3 session\r\n");
			break;
		case POP3_PERMFAIL:
			session_reply(ps->s, "-ERR [SYS/PERM] Mailbox cannot be opened\r\n");
			break;
		default:
			session_reply(ps->s, "-ERR [SYS/TEMP] Mailbox cannot be opened now, try again later\r\n");
			break;
		}
		free(ps->account);
		ps->account = NULL;
		session_resume(ps->s, SESSION_EFFECT_NONE);
		return;
	}
	size_t count;
	uint64_t octets;
	ps->state = POP3_STATE_TRANSACTION;
	ps->deleted = xcalloc(md->n ? md->n : 1, sizeof(*ps->deleted));
	pop3_stat_live(ps, &count, &octets);
	log_info("pop3 %llu: login account=%s messages=%zu octets=%llu", (unsigned long long)session_id(ps->s),
		 ps->account, count, (unsigned long long)octets);
	session_reply(ps->s, "+OK Logged in, %zu messages (%llu octets)\r\n", count, (unsigned long long)octets);
	session_resume(ps->s, SESSION_EFFECT_NONE);
}

/* ---------------------------------------------------------------- */
/* TRANSACTION                                                       */

static enum session_effect pop3_cmd_stat(struct pop3_session *ps, const struct pop3_args *args)
{
	size_t count;
	uint64_t octets;

	pop3_stat_live(ps, &count, &octets);
	session_reply(ps->s, "+OK %zu %llu\r\n", count, (unsigned long long)octets);
	return SESSION_EFFECT_NONE;
}

static enum session_effect pop3_cmd_list(struct pop3_session *ps, const struct pop3_args *args)
{
	enum session_effect e;

	if (args->argc == 1) {
		long i = pop3_msg_arg(ps, args->argv[0], &e);
		if (i >= 0)
			session_reply(ps->s, "+OK %ld %llu\r\n", i + 1, (unsigned long long)ps->md->msgs[i].vsize);
		return e;
	}
	size_t count;
	uint64_t octets;
	pop3_stat_live(ps, &count, &octets);
	session_reply(ps->s, "+OK %zu messages (%llu octets)\r\n", count, (unsigned long long)octets);
	ps->pump = (struct pop3_pump){ .kind = POP3_PUMP_LIST };
	return pop3_pump_start(ps);
}

static enum session_effect pop3_cmd_uidl(struct pop3_session *ps, const struct pop3_args *args)
{
	enum session_effect e;

	if (args->argc == 1) {
		long i = pop3_msg_arg(ps, args->argv[0], &e);
		if (i >= 0) {
			char uidl[17];
			pop3_uidl(ps, (size_t)i, uidl);
			session_reply(ps->s, "+OK %ld %s\r\n", i + 1, uidl);
		}
		return e;
	}
	session_reply(ps->s, "+OK Unique-ID listing follows\r\n");
	ps->pump = (struct pop3_pump){ .kind = POP3_PUMP_UIDL };
	return pop3_pump_start(ps);
}

static enum session_effect pop3_send_message(struct pop3_session *ps, size_t i, bool top, uint64_t lines)
{
	enum pop3_status st = POP3_TEMPFAIL;
	void *reader = ps->be->message_open(ps->be->ctx, ps->md, ps->md->msgs[i].uid, &st);

	if (reader == NULL) {
		/* Our trouble or another client's doing, not bad input:
		 * not counted as an error. */
		if (st == POP3_GONE)
			session_reply(ps->s, "-ERR Message %zu was removed by another client\r\n", i + 1);
		else
			session_reply(ps->s, "-ERR [SYS/TEMP] Message %zu cannot be read now, try again later\r\n",
				      i + 1);
		return SESSION_EFFECT_NONE;
	}
	if (top)
		session_reply(ps->s, "+OK Top of message follows\r\n");
	else
		session_reply(ps->s, "+OK %llu octets\r\n", (unsigned long long)ps->md->msgs[i].vsize);
	ps->pump = (struct pop3_pump){
		.kind = POP3_PUMP_MESSAGE, .reader = reader, .top = top, .top_lines = lines,
		.in_headers = true, .bol = true,
	};
	return pop3_pump_start(ps);
}

static enum session_effect pop3_cmd_retr(struct pop3_session *ps, const struct pop3_args *args)
{
	enum session_effect e;
	long i = pop3_msg_arg(ps, args->argv[0], &e);

	if (i < 0)
		return e;
	ps->retrieved++;
	return pop3_send_message(ps, (size_t)i, false, 0);
}

static enum session_effect pop3_cmd_top(struct pop3_session *ps, const struct pop3_args *args)
{
	enum session_effect e;
	const char *n = args->argv[1];
	size_t len = strlen(n);
	uint64_t lines = 0;

	long i = pop3_msg_arg(ps, args->argv[0], &e);
	if (i < 0)
		return e;
	/* RFC 1939 7: a non-negative number of lines; more than the body
	 * has is the whole body. */
	if (len == 0 || strspn(n, "0123456789") != len)
		return pop3_error(ps, "Invalid number of lines");
	for (size_t k = 0; k < len; k++) {
		uint64_t d = (uint64_t)(n[k] - '0');
		lines = lines > (UINT64_MAX - d) / 10 ? UINT64_MAX : lines * 10 + d;
	}
	return pop3_send_message(ps, (size_t)i, true, lines);
}

static enum session_effect pop3_cmd_dele(struct pop3_session *ps, const struct pop3_args *args)
{
	enum session_effect e;
	long i = pop3_msg_arg(ps, args->argv[0], &e);

	if (i < 0)
		return e;
	ps->deleted[i] = true;
	ps->n_deleted++;
	ps->deleted_octets += ps->md->msgs[i].vsize;
	session_reply(ps->s, "+OK Message %ld deleted\r\n", i + 1);
	return SESSION_EFFECT_NONE;
}

static enum session_effect pop3_cmd_noop(struct pop3_session *ps, const struct pop3_args *args)
{
	session_reply(ps->s, "+OK\r\n");
	return SESSION_EFFECT_NONE;
}

static enum session_effect pop3_cmd_rset(struct pop3_session *ps, const struct pop3_args *args)
{
	size_t count;
	uint64_t octets;

	memset(ps->deleted, 0, (ps->md->n ? ps->md->n : 1) * sizeof(*ps->deleted));
	ps->n_deleted = 0;
	ps->deleted_octets = 0;
	pop3_stat_live(ps, &count, &octets);
	session_reply(ps->s, "+OK Maildrop has %zu messages (%llu octets)\r\n", count, (unsigned long long)octets);
	return SESSION_EFFECT_NONE;
}

/* ---------------------------------------------------------------- */
/* QUIT and UPDATE                                                   */

static void pop3_log_logout(struct pop3_session *ps, const char *how, size_t removed)
{
	log_info("pop3 %llu: logout account=%s retrieved=%u deleted=%zu%s", (unsigned long long)session_id(ps->s),
		 ps->account, ps->retrieved, removed, how);
}

static void pop3_maildrop_release(struct pop3_session *ps)
{
	if (ps->md != NULL)
		ps->be->maildrop_close(ps->be->ctx, ps->md);
	ps->md = NULL;
}

static void pop3_committed(void *arg, enum pop3_status status, size_t removed)
{
	struct pop3_session *ps = arg;

	/* RFC 1939 6: release the lock, then answer. */
	pop3_maildrop_release(ps);
	if (status == POP3_OK) {
		pop3_log_logout(ps, "", removed);
		session_reply(ps->s, "+OK postbote signing off (%zu messages deleted)\r\n", removed);
	} else {
		pop3_log_logout(ps, " (deletions failed)", 0);
		session_reply(ps->s, "-ERR [SYS/TEMP] Some deleted messages were not removed\r\n");
	}
	session_resume(ps->s, SESSION_EFFECT_CLOSE);
}

static enum session_effect pop3_cmd_quit(struct pop3_session *ps, const struct pop3_args *args)
{
	if (ps->state != POP3_STATE_TRANSACTION || ps->n_deleted == 0) {
		if (ps->state == POP3_STATE_TRANSACTION)
			pop3_log_logout(ps, "", 0);
		pop3_maildrop_release(ps);
		session_reply(ps->s, "+OK postbote signing off\r\n");
		return SESSION_EFFECT_CLOSE;
	}
	/* RFC 1939 6: the UPDATE state removes every marked message. */
	uint32_t *uids = xmalloc(ps->n_deleted * sizeof(*uids));
	size_t n = 0;
	for (size_t i = 0; i < ps->md->n; i++) {
		if (ps->deleted[i])
			uids[n++] = ps->md->msgs[i].uid;
	}
	ps->state = POP3_STATE_UPDATE;
	int rc = ps->be->maildrop_commit(ps->be->ctx, ps->md, uids, n, pop3_committed, ps);
	free(uids);
	if (rc < 0) {
		pop3_maildrop_release(ps);
		session_reply(ps->s, "-ERR [SYS/TEMP] Some deleted messages were not removed\r\n");
		return SESSION_EFFECT_CLOSE;
	}
	return SESSION_EFFECT_WAIT;
}

/* ---------------------------------------------------------------- */
/* Dispatch                                                          */

static const struct pop3_cmd pop3_commands[] = {
	/* RFC 1939 4: AUTHORIZATION */
	{ "USER", POP3_IN_AUTH, 0, POP3_ARGS_RAW, "USER name", pop3_cmd_user },
	{ "PASS", POP3_IN_AUTH, 0, POP3_ARGS_RAW, "PASS password", pop3_cmd_pass },
	{ "APOP", POP3_IN_AUTH, 0, POP3_ARGS_RAW, "APOP name digest", pop3_cmd_apop },
	{ "AUTH", POP3_IN_AUTH, 0, 2, "AUTH [mechanism [initial-response]]", pop3_cmd_auth },
	{ "STLS", POP3_IN_AUTH, 0, 0, "STLS", pop3_cmd_stls },
	/* RFC 1939 5: TRANSACTION */
	{ "STAT", POP3_IN_TRANS, 0, 0, "STAT", pop3_cmd_stat },
	{ "LIST", POP3_IN_TRANS, 0, 1, "LIST [msg]", pop3_cmd_list },
	{ "RETR", POP3_IN_TRANS, 1, 1, "RETR msg", pop3_cmd_retr },
	{ "DELE", POP3_IN_TRANS, 1, 1, "DELE msg", pop3_cmd_dele },
	{ "NOOP", POP3_IN_TRANS, 0, 0, "NOOP", pop3_cmd_noop },
	{ "RSET", POP3_IN_TRANS, 0, 0, "RSET", pop3_cmd_rset },
	{ "TOP", POP3_IN_TRANS, 2, 2, "TOP msg lines", pop3_cmd_top },
	{ "UIDL", POP3_IN_TRANS, 0, 1, "UIDL [msg]", pop3_cmd_uidl },
	/* Both */
	{ "CAPA", POP3_IN_ANY, 0, 0, "CAPA", pop3_cmd_capa },
	{ "QUIT", POP3_IN_ANY, 0, 0, "QUIT", pop3_cmd_quit },
};

static const struct pop3_cmd *pop3_cmd_find(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof(pop3_commands) / sizeof(pop3_commands[0]); i++) {
		if (strlen(pop3_commands[i].name) == len && strncasecmp(name, pop3_commands[i].name, len) == 0)
			return &pop3_commands[i];
	}
	return NULL;
}

/* Split on runs of spaces; more than max words is an error. */
static int pop3_split(char *text, struct pop3_args *args, int max)
{
	char *p = text;

	args->argc = 0;
	for (;;) {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			return 0;
		if ((int)args->argc == max)
			return -1;
		args->argv[args->argc++] = p;
		while (*p != '\0' && *p != ' ')
			p++;
		if (*p == '\0')
			return 0;
		*p++ = '\0';
	}
}

static enum session_effect pop3_line(void *state, const char *line, size_t len)
{
	struct pop3_session *ps = state;
	size_t n = 0;

	if (ps->sasl != POP3_SASL_NONE)
		return pop3_sasl_line(ps, line, len);
	if (memchr(line, '\0', len) != NULL)
		return pop3_error(ps, "NUL byte in command");
	while (n < len && line[n] != ' ')
		n++;
	const struct pop3_cmd *cmd = pop3_cmd_find(line, n);
	if (cmd == NULL)
		return pop3_error(ps, "Unknown command");
	if (!(cmd->states & (1u << ps->state)))
		return pop3_error(ps, "Command not valid in this state");

	/* A copy we may cut into words; it may hold a password, so it is
	 * wiped before it is freed. */
	size_t alen = n < len ? len - n - 1 : 0;
	char *text = xstrndup(n < len ? line + n + 1 : "", alen);
	struct pop3_args args = { .raw = text };
	enum session_effect e;

	if (cmd->max_args == POP3_ARGS_RAW) {
		e = cmd->run(ps, &args);
	} else if (pop3_split(text, &args, cmd->max_args) < 0 || (int)args.argc < cmd->min_args) {
		char reply[96];
		snprintf(reply, sizeof(reply), "Syntax: %s", cmd->syntax);
		e = pop3_error(ps, reply);
	} else {
		e = cmd->run(ps, &args);
	}
	explicit_bzero(text, alen);
	free(text);
	return e;
}

static enum session_effect pop3_line_too_long(void *state)
{
	struct pop3_session *ps = state;

	if (ps->sasl != POP3_SASL_NONE) {
		pop3_sasl_end(ps);
		return pop3_error(ps, "[AUTH] Authentication failed: response too long");
	}
	return pop3_error(ps, "Line too long");
}

static enum session_effect pop3_tls_started(void *state)
{
	struct pop3_session *ps = state;

	/* RFC 2595 4: forget what the client said before TLS. */
	ps->user[0] = '\0';
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
	/* RFC 1939 3: an autologout timer closes without entering UPDATE. */
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
	const struct pop3_session *ps = state;

	/* A SASL response is all secret. */
	if (ps != NULL && ps->sasl != POP3_SASL_NONE)
		return 0;
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
	ps->be = session_backend(s);
	return ps;
}

static void pop3_destroy(void *state)
{
	struct pop3_session *ps = state;

	/* A connection that ends here never went through UPDATE: nothing
	 * marked is removed (RFC 1939 6). */
	if (ps->auth != NULL)
		ps->be->auth_cancel(ps->be->ctx, ps->auth);
	if (ps->md != NULL && ps->state == POP3_STATE_TRANSACTION)
		pop3_log_logout(ps, " (connection lost)", 0);
	pop3_pump_end(ps);
	pop3_maildrop_release(ps);
	sasl_login_free(&ps->login);
	explicit_bzero(ps->user, sizeof(ps->user));
	free(ps->account);
	free(ps->deleted);
	free(ps);
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
	.drained = pop3_drained,
	.trace_visible = pop3_trace_visible,
};
