/* The IMAP session core over the in-memory backend (test_imap_fake.h):
 * greeting and capabilities in every state, LOGIN and AUTHENTICATE in all
 * their forms and refusals, literals (synchronizing, LITERAL+, too big),
 * overlong lines, malformed commands and the bad-command limit, state
 * checks, IDLE, the trace masking, and the selected-mailbox view: updates
 * between two sessions, when EXPUNGE may be told, sequence sets, flags.
 * Dialogues are fed whole and one byte at a time, each piece at the end of
 * a guard page. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/session.h"
#include "core/trace.h"
#include "imap/imap_private.h"
#include "imap/imap_session.h"
#include "test_imap_fake.h"
#include "testutil.h"

static struct config cfg;

#define CAPS "IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE UIDPLUS MOVE SPECIAL-USE CHILDREN UNSELECT"
#define CAPS_LOOPBACK CAPS " STARTTLS AUTH=PLAIN AUTH=LOGIN"
#define GREETING "* OK [CAPABILITY " CAPS_LOOPBACK "] postbote ready\r\n"
#define LOGGED_IN "OK [CAPABILITY " CAPS "] Logged in\r\n"
#define AUTH_FAILED "NO [AUTHENTICATIONFAILED] Authentication failed\r\n"
#define LITERAL_GO "+ Ready for literal data\r\n"

/* base64 of "\0bob\0secret", "bob", "secret", "\0bob\0wrong". */
#define PLAIN_BOB "AGJvYgBzZWNyZXQ="
#define B64_BOB "Ym9i"
#define B64_SECRET "c2VjcmV0"
#define PLAIN_WRONG "AGJvYgB3cm9uZw=="

struct t {
	struct fake f;
	struct session *s;
	char *out;
	size_t len, cap;
};

static void setup(void)
{
	log_setup(LOG_LEVEL_ERROR, false, NULL);
	config_dev_setup(&cfg);
}

static void teardown(void)
{
	config_free(&cfg);
}

static void t_collect(struct t *t, struct session *s)
{
	struct buf *b = session_output(s);
	size_t n = buf_len(b);
	if (t->len + n + 1 > t->cap) {
		t->cap = (t->len + n + 1) * 2;
		t->out = xrealloc(t->out, t->cap);
	}
	memcpy(t->out + t->len, buf_ptr(b), n);
	t->len += n;
	t->out[t->len] = '\0';
	buf_reset(b);
}

/* Everything s said since the last take, as a string. */
static char *t_take_s(struct t *t, struct session *s)
{
	t_collect(t, s);
	char *r = xstrdup(t->out != NULL ? t->out : "");
	t->len = 0;
	return r;
}

static char *t_take(struct t *t)
{
	return t_take_s(t, t->s);
}

static struct session *t_session(struct t *t, enum listener_kind kind, const char *peer, bool loopback)
{
	struct session_params p = {
		.cfg = &cfg, .kind = kind, .id = 1, .peer = peer, .peer_loopback = loopback,
		.tls = listener_kind_implicit_tls(kind), .backend = &t->f.b,
	};
	struct session *s = session_new(&imap_proto, &p);
	if (p.tls)
		session_set_tls(s, "TLSv1.3", "TLS_AES_128_GCM_SHA256");
	session_start(s);
	return s;
}

static void t_open_kind(struct t *t, enum listener_kind kind, const char *peer, bool loopback)
{
	memset(t, 0, sizeof(*t));
	fake_init(&t->f);
	t->s = t_session(t, kind, peer, loopback);
	free(t_take(t));
}

static void t_open(struct t *t)
{
	t_open_kind(t, LISTENER_IMAP, "127.0.0.1", true);
}

static void t_close(struct t *t)
{
	session_free(&t->s);
	fake_run_all(&t->f);
	/* The session gave back everything it had. */
	ck_assert_uint_eq(t->f.accounts_open, 0);
	ck_assert_uint_eq(t->f.n_mbs, 0);
	ck_assert_uint_eq(t->f.readers_open, 0);
	fake_free(&t->f);
	free(t->out);
}

/* Carry out effects as the glue would: STARTTLS completes at once, waits
 * end when the fake's callbacks run or the output "drains". */
static enum session_effect t_settle(struct t *t, struct session *s, enum session_effect e)
{
	for (;;) {
		if (e == SESSION_EFFECT_NONE)
			e = session_continue(s);
		if (e == SESSION_EFFECT_STARTTLS) {
			e = session_tls_started(s, "TLSv1.3", "TLS_AES_128_GCM_SHA256");
			continue;
		}
		if (e != SESSION_EFFECT_WAIT)
			return e;
		if (session_resumed(s))
			e = session_continue(s);
		else if (session_wants_drain(s))
			session_drained(s);
		else if (!fake_run(&t->f))
			return SESSION_EFFECT_WAIT;
	}
}

static enum session_effect t_feed_s(struct t *t, struct session *s, const char *in, size_t len, bool bytewise)
{
	enum session_effect e = SESSION_EFFECT_NONE;

	if (!bytewise) {
		char *g = guard_copy(in, len);
		e = t_settle(t, s, session_feed(s, g, len));
		guard_free(g, len);
		return e;
	}
	for (size_t i = 0; i < len && e != SESSION_EFFECT_CLOSE; i++) {
		char *g = guard_copy(in + i, 1);
		e = t_settle(t, s, session_feed(s, g, 1));
		guard_free(g, 1);
	}
	return e;
}

static void t_expect_s(struct t *t, struct session *s, const char *in, bool bytewise, const char *want,
		       enum session_effect want_e)
{
	enum session_effect e = t_feed_s(t, s, in, strlen(in), bytewise);
	char *out = t_take_s(t, s);
	ck_assert_msg(strcmp(out, want) == 0, "input %s(bytewise=%d)\ngot:\n%s\nwant:\n%s", in, bytewise, out, want);
	ck_assert_msg(e == want_e, "input %s: effect %d, want %d", in, e, want_e);
	free(out);
}

static void t_expect(struct t *t, const char *in, bool bytewise, const char *want, enum session_effect want_e)
{
	t_expect_s(t, t->s, in, bytewise, want, want_e);
}

static void t_login_s(struct t *t, struct session *s)
{
	t_expect_s(t, s, "L LOGIN bob secret\r\n", false, "L " LOGGED_IN, SESSION_EFFECT_NONE);
}

/* A dialogue after the greeting (and a login), whole and byte by byte. */
static void dialogue_kind(enum listener_kind kind, const char *peer, bool loopback, bool login, const char *in,
			  const char *want, enum session_effect want_e)
{
	for (int bytewise = 0; bytewise < 2; bytewise++) {
		struct t t;
		t_open_kind(&t, kind, peer, loopback);
		if (login)
			t_login_s(&t, t.s);
		t_expect(&t, in, bytewise, want, want_e);
		t_close(&t);
	}
}

static void dialogue(bool login, const char *in, const char *want, enum session_effect want_e)
{
	dialogue_kind(LISTENER_IMAP, "127.0.0.1", true, login, in, want, want_e);
}

/* ---------------------------------------------------------------- */
/* Greeting and capabilities                                         */

START_TEST(greeting_and_capabilities)
{
	static const struct {
		enum listener_kind kind;
		bool loopback;
		const char *caps;
	} t[] = {
		{ LISTENER_IMAP, true, CAPS_LOOPBACK },
		{ LISTENER_IMAP, false, CAPS " STARTTLS LOGINDISABLED" },
		{ LISTENER_IMAPS, false, CAPS " AUTH=PLAIN AUTH=LOGIN" },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct t tt;
		char want[512];
		memset(&tt, 0, sizeof(tt));
		fake_init(&tt.f);
		tt.s = t_session(&tt, t[i].kind, t[i].loopback ? "127.0.0.1" : "192.0.2.7", t[i].loopback);
		char *g = t_take(&tt);
		snprintf(want, sizeof(want), "* OK [CAPABILITY %s] postbote ready\r\n", t[i].caps);
		ck_assert_str_eq(g, want);
		free(g);
		snprintf(want, sizeof(want), "* CAPABILITY %s\r\na OK CAPABILITY completed\r\n", t[i].caps);
		t_expect(&tt, "a CAPABILITY\r\n", false, want, SESSION_EFFECT_NONE);
		t_close(&tt);
	}
}
END_TEST

START_TEST(capabilities_after_starttls_and_login)
{
	for (int bytewise = 0; bytewise < 2; bytewise++) {
		struct t t;
		/* A remote client: LOGINDISABLED until TLS. */
		t_open_kind(&t, LISTENER_IMAP, "192.0.2.7", false);
		t_expect(&t, "a LOGIN bob secret\r\n", bytewise,
			 "a NO [PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure connections, use "
			 "STARTTLS\r\n",
			 SESSION_EFFECT_NONE);
		t_expect(&t, "b AUTHENTICATE PLAIN " PLAIN_BOB "\r\n", bytewise,
			 "b NO [PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure connections, use "
			 "STARTTLS\r\n",
			 SESSION_EFFECT_NONE);
		/* What is pipelined behind STARTTLS is never answered. */
		t_expect(&t, bytewise ? "c STARTTLS\r\n" : "c STARTTLS\r\nd NOOP\r\n", bytewise,
			 "c OK Begin TLS negotiation now\r\n", SESSION_EFFECT_NONE);
		t_expect(&t, "e CAPABILITY\r\n", bytewise,
			 "* CAPABILITY " CAPS " AUTH=PLAIN AUTH=LOGIN\r\ne OK CAPABILITY completed\r\n",
			 SESSION_EFFECT_NONE);
		t_expect(&t, "f STARTTLS\r\n", bytewise, "f BAD TLS is already active\r\n", SESSION_EFFECT_NONE);
		t_expect(&t, "g LOGIN bob secret\r\n", bytewise, "g " LOGGED_IN, SESSION_EFFECT_NONE);
		t_expect(&t, "h CAPABILITY\r\n", bytewise, "* CAPABILITY " CAPS "\r\nh OK CAPABILITY completed\r\n",
			 SESSION_EFFECT_NONE);
		t_close(&t);
	}
}
END_TEST

START_TEST(small_commands)
{
	dialogue(false,
		 "a NOOP\r\nb ID (\"name\" \"mutt\")\r\nc ID NIL\r\nd ID\r\ne LOGOUT\r\n",
		 "a OK NOOP completed\r\n* ID (\"name\" \"postbote\")\r\nb OK ID completed\r\n"
		 "* ID (\"name\" \"postbote\")\r\nc OK ID completed\r\n"
		 "d BAD Syntax: ID (\"name\" \"value\" ...) or ID NIL\r\n"
		 "* BYE postbote logging out\r\ne OK LOGOUT completed\r\n",
		 SESSION_EFFECT_CLOSE);
	dialogue(true, "a ENABLE CONDSTORE UTF8=ACCEPT\r\nb NAMESPACE\r\nc ENABLE\r\nd noop\r\n",
		 "* ENABLED\r\na OK ENABLE completed\r\n"
		 "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\nb OK NAMESPACE completed\r\n"
		 "c BAD Syntax: ENABLE capability ...\r\nd OK NOOP completed\r\n",
		 SESSION_EFFECT_NONE);
}
END_TEST

/* ---------------------------------------------------------------- */
/* Logging in                                                        */

START_TEST(login_variants)
{
	static const struct {
		const char *in, *want;
	} t[] = {
		{ "a LOGIN bob secret\r\n", "a " LOGGED_IN },
		{ "a login BOB@example.test \"secret\"\r\n", "a " LOGGED_IN },
		{ "a LOGIN \"bob\" {6}\r\nsecret\r\n", LITERAL_GO "a " LOGGED_IN },
		{ "a LOGIN {3}\r\nbob {6}\r\nsecret\r\n", LITERAL_GO LITERAL_GO "a " LOGGED_IN },
		{ "a LOGIN {3+}\r\nbob {6+}\r\nsecret\r\n", "a " LOGGED_IN },
		{ "a LOGIN bob wrong\r\n", "a " AUTH_FAILED },
		{ "a LOGIN nobody secret\r\n", "a " AUTH_FAILED },
		{ "a LOGIN bob locked\r\n", "a " AUTH_FAILED },
		{ "a LOGIN bob tempfail\r\n",
		  "a NO [UNAVAILABLE] Temporary authentication failure, try again later\r\n" },
		{ "a LOGIN bob \"\"\r\n", "a " AUTH_FAILED },
		{ "a LOGIN bob {7+}\r\nsec\0ret\r\n", "a " AUTH_FAILED },
		{ "a LOGIN bob\r\n", "a BAD Syntax: LOGIN user password\r\n" },
		{ "a LOGIN bob secret more\r\n", "a BAD Syntax: LOGIN user password\r\n" },
		{ "a LOGIN (bob) secret\r\n", "a BAD Syntax: LOGIN user password\r\n" },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		for (int bytewise = 0; bytewise < 2; bytewise++) {
			struct t tt;
			t_open(&tt);
			/* Inputs may hold a NUL: their length is up to the
			 * last CRLF. */
			size_t len = strlen(t[i].in);
			if (strstr(t[i].in, "{7+}") != NULL)
				len = strlen("a LOGIN bob {7+}\r\n") + 7 + 2;
			enum session_effect e = t_feed_s(&tt, tt.s, t[i].in, len, bytewise);
			char *out = t_take(&tt);
			ck_assert_msg(strcmp(out, t[i].want) == 0, "%s(bytewise %d): got %s", t[i].in, bytewise, out);
			ck_assert_int_eq(e, SESSION_EFFECT_NONE);
			free(out);
			t_close(&tt);
		}
	}
	/* Logged in, LOGIN is out of place. */
	dialogue(true, "b LOGIN bob secret\r\nc AUTHENTICATE PLAIN " PLAIN_BOB "\r\n",
		 "b BAD Already logged in\r\nc BAD Already logged in\r\n", SESSION_EFFECT_NONE);
}
END_TEST

START_TEST(authenticate_variants)
{
	static const struct {
		const char *in, *want;
	} t[] = {
		/* SASL-IR (RFC 4959) */
		{ "a AUTHENTICATE PLAIN " PLAIN_BOB "\r\n", "a " LOGGED_IN },
		{ "a AUTHENTICATE plain " PLAIN_WRONG "\r\n", "a " AUTH_FAILED },
		{ "a AUTHENTICATE LOGIN " B64_BOB "\r\n" B64_SECRET "\r\n", "+ UGFzc3dvcmQ6\r\na " LOGGED_IN },
		/* "=" is an empty initial response: no credentials in it. */
		{ "a AUTHENTICATE PLAIN =\r\n",
		  "a NO [AUTHENTICATIONFAILED] Authentication failed: malformed response\r\n" },
		/* Without an initial response: "+ " and an empty challenge. */
		{ "a AUTHENTICATE PLAIN\r\n" PLAIN_BOB "\r\n", "+ \r\na " LOGGED_IN },
		{ "a AUTHENTICATE LOGIN\r\n" B64_BOB "\r\n" B64_SECRET "\r\n",
		  "+ VXNlcm5hbWU6\r\n+ UGFzc3dvcmQ6\r\na " LOGGED_IN },
		/* Cancelled at every step. */
		{ "a AUTHENTICATE PLAIN\r\n*\r\n", "+ \r\na BAD Authentication cancelled\r\n" },
		{ "a AUTHENTICATE LOGIN\r\n*\r\n", "+ VXNlcm5hbWU6\r\na BAD Authentication cancelled\r\n" },
		{ "a AUTHENTICATE LOGIN\r\n" B64_BOB "\r\n*\r\n",
		  "+ VXNlcm5hbWU6\r\n+ UGFzc3dvcmQ6\r\na BAD Authentication cancelled\r\n" },
		{ "a AUTHENTICATE PLAIN\r\n!!!\r\n", "+ \r\na BAD Invalid base64 data\r\n" },
		{ "a AUTHENTICATE CRAM-MD5\r\n", "a NO [CANNOT] Unsupported authentication mechanism\r\n" },
		{ "a AUTHENTICATE\r\n", "a BAD Syntax: AUTHENTICATE mechanism [initial-response]\r\n" },
		{ "a AUTHENTICATE PLAIN \"x\"\r\n", "a BAD Syntax: AUTHENTICATE mechanism [initial-response]\r\n" },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		dialogue(false, t[i].in, t[i].want, SESSION_EFFECT_NONE);
	/* After a cancelled exchange, the session goes on. */
	dialogue(false, "a AUTHENTICATE PLAIN\r\n*\r\nb NOOP\r\n",
		 "+ \r\na BAD Authentication cancelled\r\nb OK NOOP completed\r\n", SESSION_EFFECT_NONE);
}
END_TEST

START_TEST(session_limit)
{
	struct t t;
	t_open(&t);
	t.f.session_limit = 1;
	t_login_s(&t, t.s);
	struct session *s2 = t_session(&t, LISTENER_IMAP, "127.0.0.1", true);
	free(t_take_s(&t, s2));
	t_expect_s(&t, s2, "x LOGIN carol secret\r\n", false,
		   "x NO [LIMIT] Too many sessions for this account\r\n", SESSION_EFFECT_NONE);
	session_free(&s2);
	t_close(&t);
}
END_TEST

/* A session that goes away during the password check cancels it. */
START_TEST(destroy_while_checking)
{
	struct t t;
	t_open(&t);
	ck_assert_int_eq(session_feed(t.s, "a LOGIN bob secret\r\n", 20), SESSION_EFFECT_WAIT);
	ck_assert_uint_eq(t.f.auth_started, 1);
	session_free(&t.s);
	ck_assert_uint_eq(t.f.auth_cancelled, 1);
	ck_assert_int_eq(fake_run(&t.f), 0); /* the callback never runs */
	t_close(&t);
}
END_TEST

/* ---------------------------------------------------------------- */
/* Lines and literals                                                */

START_TEST(literal_limits)
{
	cfg.imap_literal_max = 100;
	/* Synchronizing: refused before the continuation; the client then
	 * sends no bytes. */
	dialogue(false, "a LOGIN bob {101}\r\nb NOOP\r\n",
		 "a NO [TOOBIG] Literal is larger than 100 octets\r\nb OK NOOP completed\r\n", SESSION_EFFECT_NONE);
	/* Non-synchronizing: its bytes are skipped, then refused once. */
	char in[400];
	snprintf(in, sizeof(in), "a LOGIN bob {101+}\r\n%0101d more\r\nb NOOP\r\n", 0);
	dialogue(false, in, "a NO [TOOBIG] Literal is larger than 100 octets\r\nb OK NOOP completed\r\n",
		 SESSION_EFFECT_NONE);
	/* At the limit it is fine. */
	snprintf(in, sizeof(in), "a ID (\"x\" {100+}\r\n%0100d)\r\n", 0);
	dialogue(false, in, "* ID (\"name\" \"postbote\")\r\na OK ID completed\r\n", SESSION_EFFECT_NONE);
	/* A non-synchronizing literal of no sensible length: no way to stay
	 * in step. */
	dialogue(false, "a LOGIN bob {99999999999+}\r\nxx\r\n", "* BYE Literal length not understood, closing\r\n",
		 SESSION_EFFECT_CLOSE);
	/* A zero-length literal. */
	dialogue(false, "a LOGIN bob {0}\r\n\r\n", LITERAL_GO "a " AUTH_FAILED, SESSION_EFFECT_NONE);
}
END_TEST

START_TEST(line_too_long)
{
	cfg.imap_line_max = 1024;
	char *in = xmalloc(4096);
	memset(in, 'x', 2000);
	strcpy(in + 2000, "\r\na NOOP\r\n");
	dialogue(false, in, "* BAD Line too long\r\na OK NOOP completed\r\n", SESSION_EFFECT_NONE);
	/* In the middle of a command: its tag is known. */
	strcpy(in, "t LOGIN {3}\r\nbob ");
	memset(in + strlen(in), 'y', 2000);
	strcpy(in + strlen("t LOGIN {3}\r\nbob ") + 2000, "\r\nb NOOP\r\n");
	dialogue(false, in, LITERAL_GO "t BAD Line too long\r\nb OK NOOP completed\r\n", SESSION_EFFECT_NONE);
	/* A SASL response may be longer than a command line, but not
	 * without bound. */
	strcpy(in, "a AUTHENTICATE PLAIN\r\n");
	memset(in + strlen(in), 'A', 3000);
	strcpy(in + strlen("a AUTHENTICATE PLAIN\r\n") + 3000, "\r\nb NOOP\r\n");
	dialogue(false, in, "+ \r\na BAD Authentication response too long\r\nb OK NOOP completed\r\n",
		 SESSION_EFFECT_NONE);
	/* While idling, an overlong line ends IDLE. */
	strcpy(in, "i IDLE\r\n");
	memset(in + strlen(in), 'D', 2000);
	strcpy(in + strlen("i IDLE\r\n") + 2000, "\r\nb NOOP\r\n");
	dialogue(true, in, "+ idling\r\ni BAD Expected DONE to end IDLE\r\nb OK NOOP completed\r\n",
		 SESSION_EFFECT_NONE);
	free(in);
}
END_TEST

START_TEST(malformed_commands)
{
	dialogue(false,
		 "\r\n"
		 "a\r\n"
		 "a FROB\r\n"
		 "a NOOP extra\r\n"
		 "a  NOOP\r\n"
		 "a LOGIN \"bob secret\r\n"
		 "+ NOOP\r\n"
		 "a UID NOOP\r\n"
		 "b NOOP\r\n",
		 "* BAD Empty command line\r\n"
		 "* BAD Missing or invalid tag\r\n"
		 "a BAD Unknown command\r\n"
		 "a BAD NOOP takes no arguments\r\n"
		 "a BAD Missing or invalid command name\r\n"
		 "a BAD Unterminated quoted string\r\n"
		 "* BAD Missing or invalid tag\r\n"
		 "a BAD UID NOOP is not a command\r\n"
		 "b OK NOOP completed\r\n",
		 SESSION_EFFECT_NONE);
}
END_TEST

START_TEST(bad_command_limit)
{
	cfg.max_bad_commands = 3;
	dialogue(false, "a FROB\r\nb FROB\r\nc NOOP\r\nd FROB\r\ne NOOP\r\n",
		 "a BAD Unknown command\r\nb BAD Unknown command\r\nc OK NOOP completed\r\n"
		 "d BAD Unknown command\r\n* BYE Too many invalid commands\r\n",
		 SESSION_EFFECT_CLOSE);
}
END_TEST

START_TEST(wrong_state)
{
	dialogue(false, "a SELECT INBOX\r\nb FETCH 1 FLAGS\r\nc IDLE\r\nd UID FETCH 1 FLAGS\r\n",
		 "a BAD Log in first\r\nb BAD Log in first\r\nc BAD Log in first\r\nd BAD Log in first\r\n",
		 SESSION_EFFECT_NONE);
	dialogue(true, "a FETCH 1 FLAGS\r\nb STORE 1 +FLAGS \\Seen\r\nc CLOSE\r\nd EXPUNGE\r\ne STARTTLS\r\n",
		 "a BAD No mailbox selected\r\nb BAD No mailbox selected\r\nc BAD No mailbox selected\r\n"
		 "d BAD No mailbox selected\r\ne BAD Already logged in\r\n",
		 SESSION_EFFECT_NONE);
}
END_TEST

/* ---------------------------------------------------------------- */
/* IDLE                                                              */

START_TEST(idle_done_and_pipelining)
{
	/* iOS sends DONE and the next command in one packet. */
	dialogue(true, "a IDLE\r\nDONE\r\nb NOOP\r\n", "+ idling\r\na OK IDLE terminated\r\nb OK NOOP completed\r\n",
		 SESSION_EFFECT_NONE);
	dialogue(true, "a IDLE\r\ndone\r\n", "+ idling\r\na OK IDLE terminated\r\n", SESSION_EFFECT_NONE);
	dialogue(true, "a IDLE\r\nb NOOP\r\nc NOOP\r\n",
		 "+ idling\r\na BAD Expected DONE to end IDLE\r\nc OK NOOP completed\r\n", SESSION_EFFECT_NONE);
	dialogue(true, "a IDLE now\r\n", "a BAD IDLE takes no arguments\r\n", SESSION_EFFECT_NONE);
}
END_TEST

/* ---------------------------------------------------------------- */
/* The trace never shows a password                                  */

static char *trace_of(const char *in, size_t len)
{
	struct t t;
	fflush(stderr);
	int saved = dup(2);
	FILE *tmp = tmpfile();
	ck_assert_ptr_nonnull(tmp);
	dup2(fileno(tmp), 2);
	log_setup(LOG_LEVEL_INFO, false, NULL);
	trace_set_mode(TRACE_ON);
	t_open(&t);
	t_feed_s(&t, t.s, in, len, false);
	t_close(&t);
	trace_set_mode(TRACE_OFF);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	log_setup(LOG_LEVEL_ERROR, false, NULL);
	long size = ftell(tmp);
	char *text = xcalloc(1, (size_t)size + 1);
	rewind(tmp);
	ck_assert_uint_eq(fread(text, 1, (size_t)size, tmp), (size_t)size);
	fclose(tmp);
	return text;
}

START_TEST(trace_masks_secrets)
{
	static const char *const t[] = {
		"a LOGIN bob secret\r\n",
		"a LOGIN bob {6}\r\nsecret\r\n",
		"a LOGIN {3}\r\nbob secret\r\n",
		"a LOGIN {3+}\r\nbob \"secret\"\r\n",
		"a AUTHENTICATE PLAIN " PLAIN_BOB "\r\n",
		"a AUTHENTICATE PLAIN\r\n" PLAIN_BOB "\r\n",
		"a AUTHENTICATE LOGIN\r\n" B64_BOB "\r\n" B64_SECRET "\r\n",
		"a AUTHENTICATE LOGIN " B64_BOB "\r\n" B64_SECRET "\r\n",
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char *text = trace_of(t[i], strlen(t[i]));
		ck_assert_msg(strstr(text, "Logged in") != NULL, "%s: no login in\n%s", t[i], text);
		ck_assert_msg(strstr(text, "secret") == NULL && strstr(text, B64_SECRET) == NULL &&
				      strstr(text, PLAIN_BOB) == NULL,
			      "%s: the trace shows the password:\n%s", t[i], text);
		free(text);
	}
	/* Other commands are shown whole. */
	char *text = trace_of("a NOOP\r\n", 8);
	ck_assert_ptr_nonnull(strstr(text, "C: a NOOP"));
	free(text);
}
END_TEST

/* ---------------------------------------------------------------- */
/* The view, driven directly: two clients on one mailbox              */

/* A struct imap standing in for a session that has INBOX selected: its
 * output goes to a real session's buffer, its changes come from the fake. */
struct viewer {
	struct imap im;
	struct session *out;
};

static void viewer_selected(void *arg, enum imap_status status, struct imap_mailbox *mb,
			    struct imap_select_info *info)
{
	struct viewer *v = arg;
	ck_assert_int_eq(status, IMAP_OK);
	imap_view_open(&v->im, mb, "INBOX", false, info);
	v->im.state = IMAP_STATE_SELECTED;
}

static void viewer_open(struct t *t, struct viewer *v)
{
	memset(v, 0, sizeof(*v));
	v->out = t_session(t, LISTENER_IMAP, "127.0.0.1", true);
	free(t_take_s(t, v->out));
	v->im.s = v->out;
	v->im.be = &t->f.b;
	v->im.state = IMAP_STATE_AUTH;
	struct fake_acct acct = { "bob@example.test" };
	ck_assert_ptr_nonnull(t->f.b.mailbox_select(&t->f, (struct imap_account *)&acct, "INBOX", false,
						    imap_view_changed, &v->im, viewer_selected, v));
	ck_assert_int_eq(fake_run(&t->f), 1);
	ck_assert_int_eq(v->im.state, IMAP_STATE_SELECTED);
}

static void viewer_close(struct viewer *v)
{
	imap_view_close(&v->im);
	free(v->im.idle_tag);
	session_free(&v->out);
}

static void viewer_expect(struct t *t, struct viewer *v, enum imap_report allowed, const char *want)
{
	imap_view_report(&v->im, allowed);
	char *out = t_take_s(t, v->out);
	ck_assert_msg(strcmp(out, want) == 0, "got:\n%s\nwant:\n%s", out, want);
	free(out);
}

/* A change's callback: its status, plus one. */
static void noop_done(void *arg, enum imap_status status, uint32_t uidvalidity, const uint32_t *uids, size_t n)
{
	(void)uidvalidity;
	(void)uids;
	(void)n;
	*(int *)arg = (int)status + 1;
}

START_TEST(view_two_clients)
{
	struct t t;
	struct viewer a, b;
	int done = 0;

	t_open(&t);
	fake_deliver(&t.f, "bob@example.test", "INBOX", "Subject: 1\r\n\r\none\r\n");
	fake_deliver(&t.f, "bob@example.test", "INBOX", "Subject: 2\r\n\r\ntwo\r\n");
	fake_deliver(&t.f, "bob@example.test", "INBOX", "Subject: 3\r\n\r\nthree\r\n");
	viewer_open(&t, &a);
	viewer_open(&t, &b);
	ck_assert_uint_eq(a.im.view.n, 3);
	/* The first to select got \Recent. */
	ck_assert_uint_eq(a.im.view.recent, 3);
	ck_assert_uint_eq(b.im.view.recent, 0);
	viewer_expect(&t, &a, IMAP_REPORT_ALL, "");

	/* a stores \Seen on 2 (and updates its own view, as STORE does):
	 * only b hears of it. */
	uint32_t uid2 = a.im.view.msgs[1].uid;
	ck_assert_ptr_nonnull(t.f.b.flags(&t.f, a.im.view.mb, &uid2, 1, IMAP_FLAGS_ADD, IMAP_SEEN, NULL, 0, noop_done,
					  &done));
	ck_assert_int_eq(fake_run(&t.f), 1);
	ck_assert_int_eq(done, IMAP_OK + 1);
	a.im.view.msgs[1].flags |= IMAP_SEEN;
	viewer_expect(&t, &a, IMAP_REPORT_ALL, "");
	viewer_expect(&t, &b, IMAP_REPORT_NO_EXPUNGE, "* 2 FETCH (FLAGS (\\Seen))\r\n");
	/* Told once. */
	viewer_expect(&t, &b, IMAP_REPORT_ALL, "");

	/* A keyword new to the mailbox: FLAGS again, then the change. */
	const char *kw[] = { "$Label1" };
	uint32_t uid1 = a.im.view.msgs[0].uid;
	t.f.b.flags(&t.f, a.im.view.mb, &uid1, 1, IMAP_FLAGS_ADD, 0, kw, 1, noop_done, &done);
	fake_run(&t.f);
	a.im.view.msgs[0].keywords |= 1;
	viewer_expect(&t, &a, IMAP_REPORT_ALL,
		      "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1)\r\n"
		      "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1 \\*)] Flags "
		      "permitted\r\n");
	b.im.uid_cmd = true;
	viewer_expect(&t, &b, IMAP_REPORT_ALL,
		      "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1)\r\n"
		      "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1 \\*)] Flags "
		      "permitted\r\n"
		      "* 1 FETCH (UID 1 FLAGS ($Label1))\r\n");
	b.im.uid_cmd = false;

	/* b expunges 1 and 3: a is told only when EXPUNGE is allowed, and
	 * numbers stay right until then. */
	uint32_t gone[] = { a.im.view.msgs[0].uid, a.im.view.msgs[2].uid };
	t.f.b.expunge(&t.f, b.im.view.mb, gone, 2, noop_done, &done);
	fake_run(&t.f);
	viewer_expect(&t, &a, IMAP_REPORT_NO_EXPUNGE, "");
	ck_assert_uint_eq(a.im.view.n, 3);
	ck_assert_uint_eq(imap_view_seq(&a.im.view, gone[1]), 3);
	/* A delivery meanwhile is counted after the messages still shown. */
	fake_deliver(&t.f, "bob@example.test", "INBOX", "Subject: 4\r\n\r\nfour\r\n");
	viewer_expect(&t, &a, IMAP_REPORT_NO_EXPUNGE, "* 4 EXISTS\r\n* 4 RECENT\r\n");
	viewer_expect(&t, &a, IMAP_REPORT_ALL, "* 1 EXPUNGE\r\n* 2 EXPUNGE\r\n");
	ck_assert_uint_eq(a.im.view.n, 2);
	ck_assert_uint_eq(imap_view_seq(&a.im.view, 2), 1);
	ck_assert_uint_eq(imap_view_seq(&a.im.view, 4), 2);
	viewer_expect(&t, &b, IMAP_REPORT_ALL, "* 1 EXPUNGE\r\n* 2 EXPUNGE\r\n* 2 EXISTS\r\n");

	/* Another program removes the mailbox. */
	fake_run_all(&t.f);
	t.f.b.delete_(&t.f, (struct imap_account *)&(struct fake_acct){ "bob@example.test" }, "Archive", noop_done,
		      &done);
	fake_run(&t.f);
	ck_assert(!a.im.view.gone);
	viewer_close(&a);
	viewer_close(&b);
	t_close(&t);
}
END_TEST

START_TEST(view_idle_reports_at_once)
{
	struct t t;
	struct viewer a;

	t_open(&t);
	viewer_open(&t, &a);
	a.im.idle_tag = xstrdup("i");
	fake_deliver(&t.f, "bob@example.test", "INBOX", "Subject: x\r\n\r\nx\r\n");
	char *out = t_take_s(&t, a.out);
	ck_assert_str_eq(out, "* 1 EXISTS\r\n* 1 RECENT\r\n");
	free(out);
	fake_remove(&t.f, "bob@example.test", "INBOX", 1);
	out = t_take_s(&t, a.out);
	ck_assert_str_eq(out, "* 1 EXPUNGE\r\n");
	free(out);
	/* The mailbox goes away: BYE. */
	struct fake_acct acct = { "bob@example.test" };
	int done = 0;
	t.f.b.rename(&t.f, (struct imap_account *)&acct, "Junk", "Spam", noop_done, &done);
	fake_run(&t.f);
	out = t_take_s(&t, a.out);
	ck_assert_str_eq(out, "");
	free(out);
	t.f.b.delete_(&t.f, (struct imap_account *)&acct, "INBOX", noop_done, &done);
	fake_run(&t.f);
	ck_assert_int_eq(done, IMAP_CANNOT + 1);
	ck_assert(!a.im.view.gone); /* INBOX cannot be deleted */
	t.f.b.rename(&t.f, (struct imap_account *)&acct, "INBOX", "Old", noop_done, &done);
	fake_run(&t.f);
	ck_assert_int_eq(done, IMAP_OK + 1);
	ck_assert(!a.im.view.gone); /* renaming INBOX empties it */
	out = t_take_s(&t, a.out);
	ck_assert_str_eq(out, "");
	free(out);
	viewer_close(&a);

	viewer_open(&t, &a);
	a.im.idle_tag = xstrdup("i");
	fake_box_existing(&t.f, "bob@example.test", "INBOX")->exists = false;
	fake_notify(&t.f, fake_box_find(&t.f, "bob@example.test", "INBOX"), IMAP_CHANGE_GONE, 0, 0);
	out = t_take_s(&t, a.out);
	ck_assert_str_eq(out, "* BYE Selected mailbox was deleted or renamed, have to disconnect\r\n");
	free(out);
	fake_box_find(&t.f, "bob@example.test", "INBOX")->exists = true;
	viewer_close(&a);
	t_close(&t);
}
END_TEST

/* Many expunges at once: numbers as they are at each moment, the view
 * compacted, and flag changes told in ascending order. */
START_TEST(view_mass_changes)
{
	struct t t;
	struct viewer a, b;
	t_open(&t);
	for (int i = 0; i < 1000; i++)
		fake_deliver(&t.f, "bob@example.test", "INBOX", "x\r\n");
	viewer_open(&t, &a);
	viewer_open(&t, &b);
	free(t_take_s(&t, a.out));

	uint32_t uids[500];
	for (uint32_t i = 0; i < 500; i++)
		uids[i] = 2 * i + 1; /* the odd ones: numbers 1, 3, 5, ... */
	int done = 0;
	t.f.b.expunge(&t.f, b.im.view.mb, uids, 500, noop_done, &done);
	fake_run(&t.f);
	imap_view_report(&a.im, IMAP_REPORT_ALL);
	char *out = t_take_s(&t, a.out);
	/* Each removal shifts the rest down by one: 1, 2, 3, ... 500. */
	const char *p = out;
	for (unsigned k = 1; k <= 500; k++) {
		char line[32];
		snprintf(line, sizeof(line), "* %u EXPUNGE\r\n", k);
		ck_assert_msg(strncmp(p, line, strlen(line)) == 0, "removal %u: %.40s", k, p);
		p += strlen(line);
	}
	ck_assert_str_eq(p, "");
	free(out);
	ck_assert_uint_eq(a.im.view.n, 500);
	for (uint32_t i = 0; i < 500; i++)
		ck_assert_uint_eq(a.im.view.msgs[i].uid, 2 * i + 2);

	/* Flag changes noticed out of order are told in order. */
	fake_set_flags(&t.f, "bob@example.test", "INBOX", 10, IMAP_FLAGGED);
	fake_set_flags(&t.f, "bob@example.test", "INBOX", 4, IMAP_SEEN);
	fake_set_flags(&t.f, "bob@example.test", "INBOX", 10, IMAP_FLAGGED | IMAP_SEEN);
	viewer_expect(&t, &a, IMAP_REPORT_ALL,
		      "* 2 FETCH (FLAGS (\\Seen \\Recent))\r\n* 5 FETCH (FLAGS (\\Flagged \\Seen \\Recent))\r\n");
	viewer_close(&a);
	viewer_close(&b);
	t_close(&t);
}
END_TEST

/* ---------------------------------------------------------------- */
/* Sequence sets, flags                                              */

static void resolve_expect(const struct imap_view *v, const char *set, bool uid, const char *want)
{
	uint32_t *idx = NULL;
	size_t n = 0;
	const char *error = NULL;
	char got[256] = "";

	if (imap_view_resolve(v, set, strlen(set), uid, &idx, &n, &error) < 0) {
		snprintf(got, sizeof(got), "error: %s", error);
	} else {
		for (size_t i = 0; i < n; i++)
			snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%u", i ? " " : "", idx[i]);
	}
	free(idx);
	ck_assert_msg(strcmp(got, want) == 0, "%s (uid %d): got \"%s\", want \"%s\"", set, uid, got, want);
}

START_TEST(sequence_sets)
{
	struct imap_msg msgs[] = { { .uid = 3 }, { .uid = 5 }, { .uid = 9 } };
	struct imap_view v = { .msgs = msgs, .n = 3 };

	resolve_expect(&v, "1:*", false, "0 1 2");
	resolve_expect(&v, "2", false, "1");
	resolve_expect(&v, "*", false, "2");
	resolve_expect(&v, "3,1,1:2", false, "0 1 2");
	resolve_expect(&v, "*:2", false, "1 2");
	resolve_expect(&v, "4", false, "error: Invalid message number");
	resolve_expect(&v, "2:4", false, "error: Invalid message number");
	resolve_expect(&v, "0", false, "error: Invalid number 0 in sequence set");
	resolve_expect(&v, "1,,2", false, "error: Invalid character in sequence set");
	resolve_expect(&v, "5:*", true, "1 2");
	resolve_expect(&v, "4", true, "");
	resolve_expect(&v, "10:*", true, "2");
	resolve_expect(&v, "1:4,9", true, "0 2");
	resolve_expect(&v, "*", true, "2");
	resolve_expect(&v, "x", true, "error: Invalid character in sequence set");

	struct imap_view empty = { 0 };
	resolve_expect(&empty, "1", false, "error: Invalid message number");
	resolve_expect(&empty, "*", false, "error: Invalid message number");
	resolve_expect(&empty, "1:*", true, "");
}
END_TEST

START_TEST(flags_write_and_parse)
{
	struct t t;
	struct viewer a;
	t_open(&t);
	fake_deliver(&t.f, "bob@example.test", "INBOX", "x\r\n");
	struct fake_box *inbox = fake_box_existing(&t.f, "bob@example.test", "INBOX");
	inbox->keywords[0] = xstrdup("$Junk");
	inbox->keywords[2] = xstrdup("work");
	viewer_open(&t, &a);

	struct buf out;
	buf_init(&out, 1024);
	struct imap_msg m = { .uid = 1 };
	imap_write_flags(&a.im, &out, &m);
	m = (struct imap_msg){ .uid = 1, .flags = IMAP_SEEN | IMAP_DELETED | IMAP_ANSWERED | IMAP_FLAGGED | IMAP_DRAFT,
			       .recent = 1, .keywords = 0x7 };
	imap_write_flags(&a.im, &out, &m);
	buf_append(&out, "", 1);
	ck_assert_str_eq(buf_ptr(&out), "()(\\Answered \\Flagged \\Deleted \\Seen \\Draft \\Recent $Junk work)");
	buf_free(&out);
	viewer_close(&a);
	t_close(&t);

	/* Parsing: from a real command's arguments. */
	static const struct {
		const char *args;
		int rc;
		uint32_t flags;
		const char *names;     /* space-separated */
		const char *error;
	} p[] = {
		{ "(\\Seen \\deleted $Junk work $junk)", 0, IMAP_SEEN | IMAP_DELETED, "$Junk work", NULL },
		{ "\\Flagged", 0, IMAP_FLAGGED, "", NULL },
		{ "$Forwarded", 0, 0, "$Forwarded", NULL },
		{ "()", 0, 0, "", NULL },
		{ "(\\Answered \\Draft)", 0, IMAP_ANSWERED | IMAP_DRAFT, "", NULL },
		{ "(\\Recent)", -1, 0, "", "\\Recent cannot be changed" },
		{ "(\\Frob)", -1, 0, "", "Unknown system flag" },
		{ "(\\*)", -1, 0, "", "Unknown system flag" },
		{ "((\\Seen))", -1, 0, "", "Invalid flag" },
		{ "(\"quoted\")", -1, 0, "", "Invalid flag" },
		{ "(a]b)", -1, 0, "", "Invalid flag" },
	};
	for (size_t i = 0; i < sizeof(p) / sizeof(p[0]); i++) {
		struct imap_parser *parser = imap_parser_new(1000, 10000);
		char line[256];
		uint64_t n;
		bool sync;
		struct imap_command cmd;
		const char *error = NULL;
		snprintf(line, sizeof(line), "a STORE 1 FLAGS %s", p[i].args);
		ck_assert_int_eq(imap_parser_line(parser, line, strlen(line), &n, &sync), IMAP_PARSE_COMPLETE);
		ck_assert_int_eq(imap_parser_command(parser, &cmd, &error), 0);
		const struct imap_arg *a3 = imap_arg_next(imap_arg_next(cmd.args));
		uint32_t flags = 99;
		const char **names = NULL;
		size_t nn = 99;
		int rc = imap_parse_flags(a3, &flags, &names, &nn, &error);
		ck_assert_msg(rc == p[i].rc, "%s: rc %d", p[i].args, rc);
		if (rc == 0) {
			char got[128] = "";
			for (size_t k = 0; k < nn; k++)
				snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s", k ? " " : "", names[k]);
			ck_assert_uint_eq(flags, p[i].flags);
			ck_assert_str_eq(got, p[i].names);
		} else {
			ck_assert_str_eq(error, p[i].error);
		}
		free(names);
		imap_parser_free(&parser);
	}
}
END_TEST

/* ---------------------------------------------------------------- */
/* Sessions with a mailbox selected                                  */

/* Feed in and return what came out; the tagged line of tag must be there. */
static char *t_run_s(struct t *t, struct session *s, const char *in, const char *tagged)
{
	ck_assert_int_eq(t_feed_s(t, s, in, strlen(in), false), SESSION_EFFECT_NONE);
	char *out = t_take_s(t, s);
	ck_assert_msg(strstr(out, tagged) != NULL, "%s: no \"%s\" in\n%s", in, tagged, out);
	return out;
}

static void t_run_expect(struct t *t, struct session *s, const char *in, const char *want)
{
	ck_assert_int_eq(t_feed_s(t, s, in, strlen(in), false), SESSION_EFFECT_NONE);
	char *out = t_take_s(t, s);
	ck_assert_msg(strcmp(out, want) == 0, "%s: got\n%s\nwant\n%s", in, out, want);
	free(out);
}

static struct session *t_selected(struct t *t)
{
	struct session *s = t_session(t, LISTENER_IMAP, "127.0.0.1", true);
	free(t_take_s(t, s));
	t_login_s(t, s);
	free(t_run_s(t, s, "s SELECT INBOX\r\n", "s OK [READ-WRITE]"));
	return s;
}

START_TEST(idle_sees_delivery_at_once)
{
	for (int bytewise = 0; bytewise < 2; bytewise++) {
		struct t t;
		t_open(&t);
		fake_deliver(&t.f, "bob@example.test", "INBOX", "Subject: 1\r\n\r\none\r\n");
		session_free(&t.s);
		t.s = t_selected(&t);
		t_expect(&t, "i IDLE\r\n", bytewise, "+ idling\r\n", SESSION_EFFECT_NONE);
		fake_deliver(&t.f, "bob@example.test", "INBOX", "Subject: 2\r\n\r\ntwo\r\n");
		char *out = t_take(&t);
		ck_assert_str_eq(out, "* 2 EXISTS\r\n* 2 RECENT\r\n");
		free(out);
		/* A delivery to another mailbox is none of its business. */
		fake_deliver(&t.f, "bob@example.test", "Sent", "Subject: 3\r\n\r\nthree\r\n");
		out = t_take(&t);
		ck_assert_str_eq(out, "");
		free(out);
		t_expect(&t, "DONE\r\nn NOOP\r\n", bytewise, "i OK IDLE terminated\r\nn OK NOOP completed\r\n",
			 SESSION_EFFECT_NONE);
		t_close(&t);
	}
}
END_TEST

START_TEST(two_sessions_see_each_other)
{
	struct t t;
	t_open(&t);
	for (int i = 0; i < 3; i++)
		fake_deliver(&t.f, "bob@example.test", "INBOX", "Subject: m\r\n\r\nbody\r\n");
	session_free(&t.s);
	struct session *a = t_selected(&t), *b = t_selected(&t);

	/* b flags message 2; a hears of it at its next command, b (who
	 * was told by its STORE) does not hear it twice. */
	free(t_run_s(&t, b, "b1 STORE 2 +FLAGS (\\Flagged)\r\n", "b1 OK"));
	t_run_expect(&t, a, "a1 NOOP\r\n", "* 2 FETCH (FLAGS (\\Flagged \\Recent))\r\na1 OK NOOP completed\r\n");
	t_run_expect(&t, b, "b2 NOOP\r\n", "b2 OK NOOP completed\r\n");
	/* With a UID command the update names the UID. */
	free(t_run_s(&t, b, "b3 STORE 3 +FLAGS.SILENT (\\Seen)\r\n", "b3 OK"));
	char *out = t_run_s(&t, a, "a2 UID SEARCH UID 1\r\n", "a2 OK");
	ck_assert_msg(strstr(out, "* 3 FETCH (UID 3 FLAGS (\\Seen \\Recent))\r\n") != NULL, "%s", out);
	free(out);

	/* b expunges 1: a is not told during FETCH, STORE or SEARCH, where
	 * it may be matching numbers, but at NOOP. */
	free(t_run_s(&t, b, "b4 STORE 1 +FLAGS.SILENT (\\Deleted)\r\n", "b4 OK"));
	free(t_run_s(&t, b, "b5 EXPUNGE\r\n", "b5 OK"));
	out = t_run_s(&t, a, "a3 FETCH 3 (FLAGS)\r\n", "a3 ");
	ck_assert_msg(strstr(out, "EXPUNGE") == NULL, "%s", out);
	free(out);
	out = t_run_s(&t, a, "a4 SEARCH ALL\r\n", "a4 OK");
	ck_assert_msg(strstr(out, "EXPUNGE") == NULL && strstr(out, "* SEARCH 1 2 3\r\n") != NULL, "%s", out);
	free(out);
	out = t_run_s(&t, a, "a5 STORE 2 -FLAGS (\\Flagged)\r\n", "a5 OK");
	ck_assert_msg(strstr(out, "EXPUNGE") == NULL, "%s", out);
	free(out);
	t_run_expect(&t, a, "a6 NOOP\r\n", "* 1 EXPUNGE\r\na6 OK NOOP completed\r\n");
	out = t_run_s(&t, a, "a7 SEARCH ALL\r\n", "a7 OK");
	ck_assert_msg(strstr(out, "* SEARCH 1 2\r\n") != NULL, "%s", out);
	free(out);
	/* b hears of a's STORE. */
	t_run_expect(&t, b, "b6 NOOP\r\n", "* 1 FETCH (FLAGS ())\r\nb6 OK NOOP completed\r\n");

	session_free(&a);
	session_free(&b);
	t_close(&t);
}
END_TEST

/* The mailbox goes away under a session: BYE at its next command. */
START_TEST(selected_mailbox_gone)
{
	struct t t;
	t_open(&t);
	session_free(&t.s);
	struct session *a = t_session(&t, LISTENER_IMAP, "127.0.0.1", true);
	free(t_take_s(&t, a));
	t_login_s(&t, a);
	free(t_run_s(&t, a, "s SELECT Junk\r\n", "s OK"));
	struct session *b = t_selected(&t);
	free(t_run_s(&t, b, "d DELETE Junk\r\n", "d OK"));
	ck_assert_int_eq(t_feed_s(&t, a, "n NOOP\r\n", 8, false), SESSION_EFFECT_CLOSE);
	char *out = t_take_s(&t, a);
	ck_assert_str_eq(out, "* BYE Selected mailbox was deleted or renamed, have to disconnect\r\nn OK NOOP "
			      "completed\r\n");
	free(out);
	session_free(&a);
	session_free(&b);
	t_close(&t);
}
END_TEST

static Suite *imap_session_suite(void)
{
	Suite *s = suite_create("imap_session");
	TCase *tc = tcase_create("core");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, greeting_and_capabilities);
	tcase_add_test(tc, capabilities_after_starttls_and_login);
	tcase_add_test(tc, small_commands);
	tcase_add_test(tc, login_variants);
	tcase_add_test(tc, authenticate_variants);
	tcase_add_test(tc, session_limit);
	tcase_add_test(tc, destroy_while_checking);
	tcase_add_test(tc, literal_limits);
	tcase_add_test(tc, line_too_long);
	tcase_add_test(tc, malformed_commands);
	tcase_add_test(tc, bad_command_limit);
	tcase_add_test(tc, wrong_state);
	tcase_add_test(tc, idle_done_and_pipelining);
	tcase_add_test(tc, trace_masks_secrets);
	tcase_add_test(tc, view_two_clients);
	tcase_add_test(tc, view_idle_reports_at_once);
	tcase_add_test(tc, view_mass_changes);
	tcase_add_test(tc, sequence_sets);
	tcase_add_test(tc, flags_write_and_parse);
	tcase_add_test(tc, idle_sees_delivery_at_once);
	tcase_add_test(tc, two_sessions_see_each_other);
	tcase_add_test(tc, selected_mailbox_gone);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run(imap_session_suite());
}
