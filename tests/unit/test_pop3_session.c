/* The POP3 session over a fake backend (test_pop3_fake.h): every command in
 * every state, every error, login and its refusals, the maildrop lock,
 * UPDATE, long replies in bounded pieces, and the CRLF/dot-stuffing of
 * message content against a reference. Dialogues are fed whole and one
 * byte at a time, each byte at the end of a guard page. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/base64.h"
#include "core/log.h"
#include "core/session.h"
#include "pop3/pop3_session.h"
#include "test_pop3_fake.h"
#include "testutil.h"

static struct config cfg;

#define V POSTBOTE_VERSION
#define GREETING "+OK postbote POP3 server ready\r\n"
#define WRONG "-ERR Command not valid in this state\r\n"
#define UNKNOWN "-ERR Unknown command\r\n"
#define LOGIN_OK "+OK Send your password\r\n+OK Logged in, 3 messages (111 octets)\r\n"
#define CAPA_HEAD "+OK Capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n"
#define CAPA_TAIL "IMPLEMENTATION postbote-" V "\r\n.\r\n"
#define CAPA_AUTH CAPA_HEAD "USER\r\nSASL PLAIN LOGIN\r\nSTLS\r\n" CAPA_TAIL
#define CAPA_TRANS CAPA_HEAD CAPA_TAIL

/* The INBOX: LF line ends with a line to stuff; CRLF line ends; no line
 * end at the end. UIDs 4, 7, 9. Sizes with CRLF: 34, 27, 50. */
#define M1 "Subject: one\n\nHello\n.dot line\n"
#define M1_WIRE "Subject: one\r\n\r\nHello\r\n..dot line\r\n.\r\n"
#define M2 "Subject: two\r\n\r\nCRLF body\r\n"
#define M2_WIRE "Subject: two\r\n\r\nCRLF body\r\n.\r\n"
#define M3 "Subject: three\n\nline 1\nline 2\nno final newline"
#define M3_WIRE "Subject: three\r\n\r\nline 1\r\nline 2\r\nno final newline\r\n.\r\n"
#define UIDL_ALL "+OK Unique-ID listing follows\r\n1 0000000412345678\r\n2 0000000712345678\r\n" \
		 "3 0000000912345678\r\n.\r\n"
#define LIST_ALL "+OK 3 messages (111 octets)\r\n1 34\r\n2 27\r\n3 50\r\n.\r\n"

struct t {
	struct fake f;
	struct session *s;
	char *out;
	size_t len, cap;
	size_t step_max;       /* most output taken between two drains */
	unsigned drains;
};

static void setup(void)
{
	log_setup(LOG_LEVEL_WARN, false, NULL);
	config_dev_setup(&cfg);
}

static void teardown(void)
{
	config_free(&cfg);
}

static void fixture_msgs(struct fake *f)
{
	f->uidnext = 4;
	fake_add(f, M1, strlen(M1));
	f->uidnext = 7;
	fake_add(f, M2, strlen(M2));
	f->uidnext = 9;
	fake_add(f, M3, strlen(M3));
}

/* Move the session's output to t->out. */
static size_t t_collect(struct t *t)
{
	struct buf *b = session_output(t->s);
	size_t n = buf_len(b);
	if (t->len + n + 1 > t->cap) {
		t->cap = (t->len + n + 1) * 2;
		t->out = xrealloc(t->out, t->cap);
	}
	memcpy(t->out + t->len, buf_ptr(b), n);
	t->len += n;
	t->out[t->len] = '\0';
	buf_reset(b);
	return n;
}

/* Everything the output holds since the last take, as a string. */
static char *t_take(struct t *t)
{
	t_collect(t);
	char *s = xstrdup(t->out ? t->out : "");
	t->len = 0;
	if (t->out)
		t->out[0] = '\0';
	return s;
}

static void t_new_session(struct t *t, struct session **s_r, enum listener_kind kind, const char *peer,
			  bool loopback)
{
	struct session_params p = {
		.cfg = &cfg, .kind = kind, .id = 1, .peer = peer, .peer_loopback = loopback,
		.tls = listener_kind_implicit_tls(kind), .backend = &t->f.b,
	};
	*s_r = session_new(&pop3_proto, &p);
	if (p.tls)
		session_set_tls(*s_r, "TLSv1.3", "TLS_AES_128_GCM_SHA256");
	session_start(*s_r);
}

static void t_open_peer(struct t *t, enum listener_kind kind, const char *peer, bool loopback)
{
	memset(t, 0, sizeof(*t));
	fake_init(&t->f);
	fixture_msgs(&t->f);
	t_new_session(t, &t->s, kind, peer, loopback);
	char *g = t_take(t);
	ck_assert_str_eq(g, GREETING);
	free(g);
}

static void t_open(struct t *t)
{
	t_open_peer(t, LISTENER_POP3, "127.0.0.1", true);
}

static void t_close(struct t *t)
{
	session_free(&t->s);
	ck_assert_ptr_null(t->s);
	ck_assert_uint_eq(t->f.readers, 0);
	while (fake_run(&t->f))
		;
	/* No session holds a lock any more. */
	ck_assert_uint_eq(t->f.n_mds, 0);
	fake_free(&t->f);
	free(t->out);
}

/* Carry out effects as the glue would: STARTTLS completes at once, waits
 * end when the fake's callbacks run (unless the test holds them) or the
 * output "drains" (it is taken). */
static enum session_effect t_settle(struct t *t, struct session *s, enum session_effect e)
{
	for (;;) {
		if (e == SESSION_EFFECT_NONE)
			e = session_continue(s); /* WAIT if it is still waiting */
		if (s == t->s) {
			size_t n = t_collect(t);
			if (n > t->step_max)
				t->step_max = n;
		}
		if (e == SESSION_EFFECT_STARTTLS) {
			e = session_tls_started(s, "TLSv1.3", "TLS_AES_128_GCM_SHA256");
			continue;
		}
		if (e != SESSION_EFFECT_WAIT)
			return e;
		if (session_resumed(s)) {
			e = session_continue(s);
		} else if (session_wants_drain(s)) {
			t->drains++;
			session_drained(s);
		} else if (t->f.hold || !fake_run(&t->f)) {
			return SESSION_EFFECT_WAIT;
		}
	}
}

static enum session_effect t_feed_s(struct t *t, struct session *s, const char *in, size_t len, bool bytewise)
{
	char *g = guard_copy(in, len);
	enum session_effect e = SESSION_EFFECT_NONE;

	if (!bytewise) {
		e = t_settle(t, s, session_feed(s, g, len));
	} else {
		for (size_t i = 0; i < len && e != SESSION_EFFECT_CLOSE; i++)
			e = t_settle(t, s, session_feed(s, g + i, 1));
	}
	guard_free(g, len);
	return e;
}

static enum session_effect t_feed(struct t *t, const char *in, bool bytewise)
{
	return t_feed_s(t, t->s, in, strlen(in), bytewise);
}

static void t_expect(struct t *t, const char *in, bool bytewise, const char *want, enum session_effect want_e)
{
	enum session_effect e = t_feed(t, in, bytewise);
	char *out = t_take(t);
	ck_assert_msg(strcmp(out, want) == 0, "input %s(bytewise=%d)\ngot:\n%s\nwant:\n%s", in, bytewise, out, want);
	ck_assert_msg(e == want_e, "input %s: effect %d, want %d", in, e, want_e);
	free(out);
}

static void t_login(struct t *t, bool bytewise)
{
	t_expect(t, "USER bob\r\nPASS secret\r\n", bytewise, LOGIN_OK, SESSION_EFFECT_NONE);
}

/* Log in to a maildrop that is not the fixture's. */
static void t_login_any(struct t *t)
{
	ck_assert_int_eq(t_feed(t, "USER bob\r\nPASS secret\r\n", false), SESSION_EFFECT_NONE);
	char *out = t_take(t);
	ck_assert_msg(strstr(out, "+OK Logged in") != NULL, "%s", out);
	free(out);
}

/* A whole dialogue from the greeting on, whole and byte by byte. */
static void dialogue(bool login, const char *in, const char *want, enum session_effect want_e)
{
	for (int bytewise = 0; bytewise < 2; bytewise++) {
		struct t t;
		t_open(&t);
		if (login)
			t_login(&t, bytewise);
		t_expect(&t, in, bytewise, want, want_e);
		t_close(&t);
	}
}

/* ---------------------------------------------------------------- */

START_TEST(every_command_in_every_state)
{
	static const struct {
		const char *in;
		const char *auth, *trans;    /* the reply in AUTHORIZATION / TRANSACTION */
		enum session_effect auth_e, trans_e;
	} t[] = {
		{ "STAT", WRONG, "+OK 3 111\r\n", 0, 0 },
		{ "LIST", WRONG, LIST_ALL, 0, 0 },
		{ "LIST 2", WRONG, "+OK 2 27\r\n", 0, 0 },
		{ "RETR 1", WRONG, "+OK 34 octets\r\n" M1_WIRE, 0, 0 },
		{ "RETR 2", WRONG, "+OK 27 octets\r\n" M2_WIRE, 0, 0 },
		{ "RETR 3", WRONG, "+OK 50 octets\r\n" M3_WIRE, 0, 0 },
		{ "TOP 1 0", WRONG, "+OK Top of message follows\r\nSubject: one\r\n\r\n.\r\n", 0, 0 },
		{ "TOP 3 1", WRONG, "+OK Top of message follows\r\nSubject: three\r\n\r\nline 1\r\n.\r\n", 0, 0 },
		{ "TOP 3 99999999999999999999999", WRONG, "+OK Top of message follows\r\n" M3_WIRE, 0, 0 },
		{ "DELE 1", WRONG, "+OK Message 1 deleted\r\n", 0, 0 },
		{ "NOOP", WRONG, "+OK\r\n", 0, 0 },
		{ "RSET", WRONG, "+OK Maildrop has 3 messages (111 octets)\r\n", 0, 0 },
		{ "UIDL", WRONG, UIDL_ALL, 0, 0 },
		{ "UIDL 3", WRONG, "+OK 3 0000000912345678\r\n", 0, 0 },
		{ "USER bob", "+OK Send your password\r\n", WRONG, 0, 0 },
		{ "PASS secret", "-ERR Send USER first\r\n", WRONG, 0, 0 },
		{ "APOP bob 0123456789abcdef", "-ERR APOP is not supported, use USER/PASS or AUTH over TLS\r\n", WRONG,
		  0, 0 },
		{ "AUTH", "+OK\r\nPLAIN\r\nLOGIN\r\n.\r\n", WRONG, 0, 0 },
		/* The harness completes STARTTLS at once. */
		{ "STLS", "+OK Begin TLS negotiation\r\n", WRONG, 0, 0 },
		{ "CAPA", CAPA_AUTH, CAPA_TRANS, 0, 0 },
		{ "QUIT", "+OK postbote signing off\r\n", "+OK postbote signing off\r\n", SESSION_EFFECT_CLOSE,
		  SESSION_EFFECT_CLOSE },
		{ "XTND XMIT", UNKNOWN, UNKNOWN, 0, 0 },
		{ "quit", "+OK postbote signing off\r\n", "+OK postbote signing off\r\n", SESSION_EFFECT_CLOSE,
		  SESSION_EFFECT_CLOSE },
		{ "stat", WRONG, "+OK 3 111\r\n", 0, 0 },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		for (int trans = 0; trans < 2; trans++) {
			for (int bytewise = 0; bytewise < 2; bytewise++) {
				struct t x;
				char in[128];
				t_open(&x);
				if (trans)
					t_login(&x, bytewise);
				snprintf(in, sizeof(in), "%s\r\n", t[i].in);
				t_expect(&x, in, bytewise, trans ? t[i].trans : t[i].auth,
					 trans ? t[i].trans_e : t[i].auth_e);
				t_close(&x);
			}
		}
	}
}
END_TEST

START_TEST(unknown_and_malformed_commands)
{
	static const char in[] = "\r\nFOO\r\nST\r\nSTATS\r\nRETRX 1\r\n STAT\r\nST\x00T\r\nCAPA\r\n";
	for (int bytewise = 0; bytewise < 2; bytewise++) {
		struct t t;
		t_open(&t);
		t_feed_s(&t, t.s, in, sizeof(in) - 1, bytewise);
		char *out = t_take(&t);
		ck_assert_str_eq(out, UNKNOWN UNKNOWN UNKNOWN UNKNOWN UNKNOWN UNKNOWN "-ERR NUL byte in command\r\n"
			      CAPA_AUTH);
		free(out);
		t_close(&t);
	}
}
END_TEST

START_TEST(bad_arguments)
{
	dialogue(true,
		 "LIST x\r\nLIST 0\r\nLIST 4\r\nLIST 1 2\r\nRETR\r\nRETR -1\r\nRETR +1\r\nRETR 1a\r\n",
		 "-ERR Invalid message number\r\n-ERR No such message\r\n-ERR No such message\r\n"
		 "-ERR Syntax: LIST [msg]\r\n-ERR Syntax: RETR msg\r\n-ERR Invalid message number\r\n"
		 "-ERR Invalid message number\r\n-ERR Invalid message number\r\n",
		 SESSION_EFFECT_NONE);
	dialogue(true,
		 "RETR 99999999999\r\nRETR 4294967297\r\nTOP 1\r\nTOP 1 x\r\nTOP 1 -1\r\nTOP 0 1\r\n"
		 "STAT x\r\nNOOP 1\r\n",
		 "-ERR Invalid message number\r\n-ERR No such message\r\n-ERR Syntax: TOP msg lines\r\n"
		 "-ERR Invalid number of lines\r\n-ERR Invalid number of lines\r\n-ERR No such message\r\n"
		 "-ERR Syntax: STAT\r\n-ERR Syntax: NOOP\r\n",
		 SESSION_EFFECT_NONE);
	/* Extra spaces are tolerated; a tenth error closes. */
	dialogue(true, "LIST  2 \r\nUIDL 1 2\r\nDELE\r\nQUIT now\r\n",
		 "+OK 2 27\r\n-ERR Syntax: UIDL [msg]\r\n-ERR Syntax: DELE msg\r\n-ERR Syntax: QUIT\r\n",
		 SESSION_EFFECT_NONE);
}
END_TEST

START_TEST(deleted_messages)
{
	dialogue(true,
		 "DELE 2\r\nDELE 2\r\nRETR 2\r\nLIST 2\r\nUIDL 2\r\nTOP 2 0\r\nSTAT\r\nLIST\r\nUIDL\r\n"
		 "RSET\r\nLIST 2\r\nSTAT\r\n",
		 "+OK Message 2 deleted\r\n-ERR Message is marked as deleted\r\n-ERR Message is marked as deleted\r\n"
		 "-ERR Message is marked as deleted\r\n-ERR Message is marked as deleted\r\n"
		 "-ERR Message is marked as deleted\r\n+OK 2 84\r\n"
		 "+OK 2 messages (84 octets)\r\n1 34\r\n3 50\r\n.\r\n"
		 "+OK Unique-ID listing follows\r\n1 0000000412345678\r\n3 0000000912345678\r\n.\r\n"
		 "+OK Maildrop has 3 messages (111 octets)\r\n+OK 2 27\r\n+OK 3 111\r\n",
		 SESSION_EFFECT_NONE);
}
END_TEST

START_TEST(too_many_errors_close_and_delete_nothing)
{
	struct t t;
	t_open(&t);
	t_login(&t, false);
	t_expect(&t, "DELE 1\r\n", false, "+OK Message 1 deleted\r\n", SESSION_EFFECT_NONE);
	enum session_effect e = SESSION_EFFECT_NONE;
	unsigned n;
	for (n = 0; n < 100 && e == SESSION_EFFECT_NONE; n++)
		e = t_feed(&t, "BOGUS\r\n", false);
	ck_assert_int_eq(e, SESSION_EFFECT_CLOSE);
	ck_assert_uint_eq(n, cfg.max_bad_commands);
	char *out = t_take(&t);
	ck_assert_ptr_nonnull(strstr(out, UNKNOWN "-ERR Too many errors, closing connection\r\n"));
	free(out);
	session_free(&t.s);
	ck_assert_uint_eq(t.f.commits, 0);
	ck_assert_uint_eq(t.f.n, 3);
	t_close(&t);
}
END_TEST

START_TEST(login_failures)
{
	dialogue(false,
		 "PASS secret\r\nUSER bob\r\nPASS wrong\r\nPASS secret\r\nUSER bob\r\nPASS locked\r\n"
		 "USER bob\r\nPASS tempfail\r\nUSER nobody\r\nPASS secret\r\nUSER bob\r\nPASS\r\nUSER\r\n",
		 "-ERR Send USER first\r\n+OK Send your password\r\n-ERR [AUTH] Authentication failed\r\n"
		 "-ERR Send USER first\r\n+OK Send your password\r\n"
		 "-ERR [LOGIN-DELAY] Too many failed logins, try again later\r\n"
		 "+OK Send your password\r\n-ERR [SYS/TEMP] Temporary server failure, try again later\r\n"
		 "+OK Send your password\r\n-ERR [AUTH] Authentication failed\r\n"
		 "+OK Send your password\r\n-ERR [AUTH] Authentication failed\r\n-ERR Syntax: USER name\r\n",
		 SESSION_EFFECT_NONE);

	/* A user name over the limit. */
	char in[400];
	memset(in, 'u', sizeof(in));
	memcpy(in, "USER ", 5);
	strcpy(in + 300, "\r\n");
	dialogue(false, in, "-ERR User name too long\r\n", SESSION_EFFECT_NONE);
	/* A password with spaces is taken whole. */
	dialogue(false, "USER carol\r\nPASS  secret \r\n", "+OK Send your password\r\n-ERR [AUTH] Authentication failed\r\n",
		 SESSION_EFFECT_NONE);
}
END_TEST

START_TEST(plaintext_login_refused)
{
	static const char refused[] =
		"-ERR [AUTH] Plaintext authentication disallowed on non-secure connections, use STLS\r\n";
	char want[1024];

	snprintf(want, sizeof(want), "%s%s%s%s%s%s", CAPA_HEAD "STLS\r\n" CAPA_TAIL, refused, refused, refused,
		 refused, "+OK Begin TLS negotiation\r\n");
	for (int bytewise = 0; bytewise < 2; bytewise++) {
		/* Not loopback, no TLS: no USER or SASL in CAPA, no login. */
		struct t t;
		t_open_peer(&t, LISTENER_POP3, "192.0.2.7", false);
		t_expect(&t, "CAPA\r\nUSER bob\r\nPASS secret\r\nAUTH PLAIN AGJvYgBzZWNyZXQ=\r\nAUTH\r\nSTLS\r\n",
			 bytewise, want, SESSION_EFFECT_NONE);
		/* After STLS (done at once here) it is allowed. */
		t_expect(&t, "USER bob\r\nPASS secret\r\n", bytewise, LOGIN_OK, SESSION_EFFECT_NONE);
		t_close(&t);

		/* Loopback, but the config says no. */
		cfg.allow_plaintext_auth_loopback = false;
		t_open(&t);
		t_expect(&t, "USER bob\r\n", bytewise, refused, SESSION_EFFECT_NONE);
		t_close(&t);
		/* Implicit TLS from anywhere is fine. */
		t_open_peer(&t, LISTENER_POP3S, "192.0.2.7", false);
		t_expect(&t, "CAPA\r\n", bytewise, CAPA_HEAD "USER\r\nSASL PLAIN LOGIN\r\n" CAPA_TAIL,
			 SESSION_EFFECT_NONE);
		t_login(&t, bytewise);
		t_close(&t);
		cfg.allow_plaintext_auth_loopback = true;
	}
}
END_TEST

START_TEST(stls)
{
	/* Pipelined input after STLS is thrown away (whole feed only: byte
	 * by byte, the bytes arrive after the handshake). */
	struct t t;
	t_open(&t);
	t_expect(&t, "STLS\r\nUSER bob\r\nPASS secret\r\n", false, "+OK Begin TLS negotiation\r\n",
		 SESSION_EFFECT_NONE);
	t_expect(&t, "CAPA\r\nSTLS\r\n", false,
		 CAPA_HEAD "USER\r\nSASL PLAIN LOGIN\r\n" CAPA_TAIL "-ERR Command not permitted when TLS active\r\n",
		 SESSION_EFFECT_NONE);
	t_close(&t);

	for (int bytewise = 0; bytewise < 2; bytewise++) {
		/* A USER given before TLS is forgotten. */
		t_open(&t);
		t_expect(&t, "USER bob\r\nSTLS\r\n", bytewise, "+OK Send your password\r\n+OK Begin TLS negotiation\r\n",
			 SESSION_EFFECT_NONE);
		t_expect(&t, "PASS secret\r\n", bytewise, "-ERR Send USER first\r\n", SESSION_EFFECT_NONE);
		t_close(&t);
		/* pop3s has no STLS. */
		t_open_peer(&t, LISTENER_POP3S, "127.0.0.1", true);
		t_expect(&t, "STLS\r\n", bytewise, "-ERR Command not permitted when TLS active\r\n", SESSION_EFFECT_NONE);
		t_close(&t);
	}
}
END_TEST

static char *b64(const char *data, size_t len)
{
	size_t n = base64_encoded_len(len);
	char *out = xmalloc(n + 1);
	base64_encode(data, len, out);
	out[n] = '\0';
	return out;
}

START_TEST(sasl)
{
	char *plain = b64("\0bob\0secret", 11);
	char *plain_bad = b64("\0bob\0wrong", 10);
	char *plain_authz = b64("carol\0bob\0secret", 16);
	char in[512];

	snprintf(in, sizeof(in), "AUTH PLAIN %s\r\n", plain);
	dialogue(false, in, "+OK Logged in, 3 messages (111 octets)\r\n", SESSION_EFFECT_NONE);
	snprintf(in, sizeof(in), "auth plain\r\n%s\r\n", plain);
	dialogue(false, in, "+ \r\n+OK Logged in, 3 messages (111 octets)\r\n", SESSION_EFFECT_NONE);
	snprintf(in, sizeof(in), "AUTH PLAIN %s\r\nAUTH PLAIN %s\r\nAUTH PLAIN =\r\nAUTH PLAIN !!!!\r\n", plain_bad,
		 plain_authz);
	dialogue(false, in,
		 "-ERR [AUTH] Authentication failed\r\n"
		 "-ERR [AUTH] Authentication failed: authorization identity not allowed\r\n"
		 "-ERR [AUTH] Authentication failed: malformed response\r\n"
		 "-ERR [AUTH] Authentication failed: invalid base64\r\n",
		 SESSION_EFFECT_NONE);
	dialogue(false, "AUTH PLAIN\r\n*\r\nAUTH LOGIN\r\n*\r\nAUTH CRAM-MD5\r\nAUTH PLAIN a b c\r\nNOOP\r\n",
		 "+ \r\n-ERR Authentication cancelled\r\n+ VXNlcm5hbWU6\r\n-ERR Authentication cancelled\r\n"
		 "-ERR Unsupported authentication mechanism\r\n-ERR Syntax: AUTH [mechanism [initial-response]]\r\n"
		 WRONG,
		 SESSION_EFFECT_NONE);
	/* LOGIN, with and without the user name as initial response. */
	dialogue(false, "AUTH LOGIN\r\nYm9i\r\nc2VjcmV0\r\n",
		 "+ VXNlcm5hbWU6\r\n+ UGFzc3dvcmQ6\r\n+OK Logged in, 3 messages (111 octets)\r\n", SESSION_EFFECT_NONE);
	dialogue(false, "AUTH LOGIN Ym9i\r\nc2VjcmV0\r\n", "+ UGFzc3dvcmQ6\r\n+OK Logged in, 3 messages (111 octets)\r\n",
		 SESSION_EFFECT_NONE);
	dialogue(false, "AUTH LOGIN Ym9i\r\nd3Jvbmc=\r\nAUTH LOGIN\r\n!\r\n",
		 "+ UGFzc3dvcmQ6\r\n-ERR [AUTH] Authentication failed\r\n+ VXNlcm5hbWU6\r\n"
		 "-ERR [AUTH] Authentication failed: invalid base64\r\n",
		 SESSION_EFFECT_NONE);
	/* After login, AUTH is out of place. */
	snprintf(in, sizeof(in), "AUTH PLAIN %s\r\n", plain);
	dialogue(true, in, WRONG, SESSION_EFFECT_NONE);

	/* A SASL response may be longer than a command line, up to what
	 * the largest valid PLAIN message needs; longer ends the exchange. */
	char big[4200];
	memset(big, 'A', sizeof(big));
	memcpy(big + 4000, "\r\nNOOP\r\n", 9);
	struct t t;
	t_open(&t);
	t_expect(&t, "AUTH PLAIN\r\n", false, "+ \r\n", SESSION_EFFECT_NONE);
	t_expect(&t, big, false, "-ERR [AUTH] Authentication failed: response too long\r\n" WRONG, SESSION_EFFECT_NONE);
	t_close(&t);
	free(plain);
	free(plain_bad);
	free(plain_authz);
}
END_TEST

START_TEST(trace_masks_sasl)
{
	struct t t;
	t_open(&t);
	/* Drive a protocol state of our own, so trace_visible can be asked
	 * about it (the session's is private). */
	void *state = pop3_proto.create(t.s);
	ck_assert_uint_eq(pop3_proto.trace_visible(state, "PASS x y", 8), 5);
	ck_assert_uint_eq(pop3_proto.trace_visible(state, "AUTH LOGIN Ym9i", 15), 11);
	ck_assert_uint_eq(pop3_proto.trace_visible(state, "Ym9i", 4), 4);
	ck_assert_int_eq(pop3_proto.line(state, "AUTH LOGIN", 10), SESSION_EFFECT_NONE);
	/* Inside the exchange every line is secret. */
	ck_assert_uint_eq(pop3_proto.trace_visible(state, "Ym9i", 4), 0);
	ck_assert_int_eq(pop3_proto.line(state, "*", 1), SESSION_EFFECT_NONE);
	ck_assert_uint_eq(pop3_proto.trace_visible(state, "Ym9i", 4), 4);
	pop3_proto.destroy(state);
	free(t_take(&t));
	t_close(&t);
}
END_TEST

START_TEST(in_use)
{
	for (int bytewise = 0; bytewise < 2; bytewise++) {
		struct t t;
		struct session *s2;
		t_open(&t);
		t_login(&t, bytewise);
		t_new_session(&t, &s2, LISTENER_POP3, "127.0.0.1", true);
		buf_reset(session_output(s2));
		t_feed_s(&t, s2, "USER bob@example.test\r\nPASS secret\r\nUSER carol\r\nPASS secret\r\n",
			 strlen("USER bob@example.test\r\nPASS secret\r\nUSER carol\r\nPASS secret\r\n"), bytewise);
		struct buf *b = session_output(s2);
		char *out = xstrndup(buf_ptr(b), buf_len(b));
		buf_reset(b);
		/* Another account is not blocked. */
		ck_assert_str_eq(out, "+OK Send your password\r\n-ERR [IN-USE] Mailbox is locked by another POP3 session\r\n"
				      "+OK Send your password\r\n+OK Logged in, 3 messages (111 octets)\r\n");
		free(out);
		session_free(&s2);
		/* The first lets go: the second gets in. */
		t_expect(&t, "QUIT\r\n", bytewise, "+OK postbote signing off\r\n", SESSION_EFFECT_CLOSE);
		session_free(&t.s);
		t_new_session(&t, &t.s, LISTENER_POP3, "127.0.0.1", true);
		free(t_take(&t));
		t_login(&t, bytewise);
		t_close(&t);
	}
}
END_TEST

START_TEST(quit_applies_deletions)
{
	for (int bytewise = 0; bytewise < 2; bytewise++) {
		struct t t;
		t_open(&t);
		t_login(&t, bytewise);
		t.f.hold = true;
		t_expect(&t, "DELE 3\r\nDELE 1\r\nQUIT\r\nNOOP\r\n", bytewise,
			 "+OK Message 3 deleted\r\n+OK Message 1 deleted\r\n", SESSION_EFFECT_WAIT);
		/* UPDATE: the lock is still held while the store works. */
		ck_assert_uint_eq(t.f.commits, 1);
		ck_assert_uint_eq(t.f.n_mds, 1);
		t.f.hold = false;
		ck_assert_int_eq(t_settle(&t, t.s, SESSION_EFFECT_WAIT), SESSION_EFFECT_CLOSE);
		char *out = t_take(&t);
		ck_assert_str_eq(out, "+OK postbote signing off (2 messages deleted)\r\n");
		free(out);
		ck_assert_uint_eq(t.f.n_committed, 2);
		ck_assert_uint_eq(t.f.committed[0], 4);
		ck_assert_uint_eq(t.f.committed[1], 9);
		ck_assert_uint_eq(t.f.n, 1);
		ck_assert_uint_eq(t.f.n_mds, 0);
		t_close(&t);
	}
	/* The next login sees what is left. */
	struct t t;
	t_open(&t);
	t_login(&t, false);
	t_expect(&t, "DELE 2\r\nQUIT\r\n", false, "+OK Message 2 deleted\r\n+OK postbote signing off (1 messages deleted)\r\n",
		 SESSION_EFFECT_CLOSE);
	session_free(&t.s);
	t_new_session(&t, &t.s, LISTENER_POP3, "127.0.0.1", true);
	free(t_take(&t));
	t_expect(&t, "USER bob\r\nPASS secret\r\nLIST\r\n", false,
		 "+OK Send your password\r\n+OK Logged in, 2 messages (84 octets)\r\n"
		 "+OK 2 messages (84 octets)\r\n1 34\r\n2 50\r\n.\r\n",
		 SESSION_EFFECT_NONE);
	t_close(&t);

	/* DELE then RSET then QUIT removes nothing. */
	dialogue(true, "DELE 1\r\nDELE 2\r\nRSET\r\nQUIT\r\n",
		 "+OK Message 1 deleted\r\n+OK Message 2 deleted\r\n+OK Maildrop has 3 messages (111 octets)\r\n"
		 "+OK postbote signing off\r\n",
		 SESSION_EFFECT_CLOSE);
}
END_TEST

START_TEST(commit_failures)
{
	struct t t;
	t_open(&t);
	t_login(&t, false);
	t.f.commit_status = POP3_TEMPFAIL;
	t_expect(&t, "DELE 1\r\nQUIT\r\n", false,
		 "+OK Message 1 deleted\r\n-ERR [SYS/TEMP] Some deleted messages were not removed\r\n",
		 SESSION_EFFECT_CLOSE);
	ck_assert_uint_eq(t.f.n, 3);
	t_close(&t);

	t_open(&t);
	t_login(&t, false);
	t.f.commit_start_fails = true;
	t_expect(&t, "DELE 1\r\nQUIT\r\n", false,
		 "+OK Message 1 deleted\r\n-ERR [SYS/TEMP] Some deleted messages were not removed\r\n",
		 SESSION_EFFECT_CLOSE);
	t_close(&t);
}
END_TEST

START_TEST(dropped_connections_delete_nothing)
{
	struct t t;

	/* In TRANSACTION with messages marked. */
	t_open(&t);
	t_login(&t, false);
	t_expect(&t, "DELE 1\r\nDELE 2\r\n", false, "+OK Message 1 deleted\r\n+OK Message 2 deleted\r\n",
		 SESSION_EFFECT_NONE);
	session_free(&t.s);
	ck_assert_uint_eq(t.f.commits, 0);
	ck_assert_uint_eq(t.f.n_mds, 0);
	ck_assert_uint_eq(t.f.n, 3);
	t_close(&t);

	/* While the password is checked: the check is cancelled. */
	t_open(&t);
	t.f.hold = true;
	t_expect(&t, "USER bob\r\nPASS secret\r\n", false, "+OK Send your password\r\n", SESSION_EFFECT_WAIT);
	session_free(&t.s);
	ck_assert_uint_eq(t.f.auth_cancelled, 1);
	t_close(&t);

	/* While the maildrop opens: it is closed when the open ends. */
	t_open(&t);
	t.f.hold = true;
	t_expect(&t, "USER bob\r\nPASS secret\r\n", false, "+OK Send your password\r\n", SESSION_EFFECT_WAIT);
	ck_assert_int_eq(fake_run(&t.f), 1);
	ck_assert_uint_eq(t.f.opens, 1);
	session_free(&t.s);
	ck_assert_uint_eq(t.f.n_mds, 1);
	t_close(&t);

	/* While deletions are applied after QUIT: they finish, then the
	 * lock goes. */
	t_open(&t);
	t_login(&t, false);
	t.f.hold = true;
	t_expect(&t, "DELE 1\r\nQUIT\r\n", false, "+OK Message 1 deleted\r\n", SESSION_EFFECT_WAIT);
	session_free(&t.s);
	ck_assert_uint_eq(t.f.n_mds, 1);
	ck_assert_int_eq(fake_run(&t.f), 0);
	ck_assert_uint_eq(t.f.n_mds, 0);
	ck_assert_uint_eq(t.f.n, 2);
	t_close(&t);

	/* Timeout and shutdown in TRANSACTION remove nothing. */
	t_open(&t);
	t_login(&t, false);
	t_expect(&t, "DELE 1\r\n", false, "+OK Message 1 deleted\r\n", SESSION_EFFECT_NONE);
	session_timeout(t.s);
	session_shutdown(t.s);
	char *out = t_take(&t);
	ck_assert_str_eq(out, "-ERR Autologout; idle for too long\r\n"
			      "-ERR [SYS/TEMP] Server shutting down, try again later\r\n");
	free(out);
	session_free(&t.s);
	ck_assert_uint_eq(t.f.commits, 0);
	t_close(&t);
}
END_TEST

START_TEST(maildrop_open_failures)
{
	static const struct { enum pop3_status st; const char *reply; } t[] = {
		{ POP3_TEMPFAIL, "-ERR [SYS/TEMP] Mailbox cannot be opened now, try again later\r\n" },
		{ POP3_PERMFAIL, "-ERR [SYS/PERM] Mailbox cannot be opened\r\n" },
	};
	for (size_t i = 0; i < 2; i++) {
		struct t x;
		char want[256];
		t_open(&x);
		x.f.open_status = t[i].st;
		snprintf(want, sizeof(want), "+OK Send your password\r\n%s%s", t[i].reply, WRONG);
		t_expect(&x, "USER bob\r\nPASS secret\r\nSTAT\r\n", false, want, SESSION_EFFECT_NONE);
		/* And the login can be tried again. */
		x.f.open_status = POP3_OK;
		t_login(&x, false);
		t_close(&x);
	}
	/* No backend at all. */
	struct session_params p = { .cfg = &cfg, .kind = LISTENER_POP3, .id = 1, .peer = "127.0.0.1",
				    .peer_loopback = true };
	struct session *s = session_new(&pop3_proto, &p);
	session_start(s);
	ck_assert_int_eq(session_feed(s, "USER bob\r\nPASS secret\r\n", 23), SESSION_EFFECT_NONE);
	struct buf *b = session_output(s);
	ck_assert(strstr(buf_ptr(b), "-ERR [SYS/PERM] Mailbox access is not available") != NULL);
	session_free(&s);
}
END_TEST

START_TEST(snapshot_at_login)
{
	struct t t;
	t_open(&t);
	t_login(&t, false);
	/* Delivered during the session: not shown until the next login. */
	fake_add(&t.f, "Subject: late\n\nx\n", 17);
	t_expect(&t, "STAT\r\nLIST 4\r\n", false, "+OK 3 111\r\n-ERR No such message\r\n", SESSION_EFFECT_NONE);
	t_expect(&t, "QUIT\r\n", false, "+OK postbote signing off\r\n", SESSION_EFFECT_CLOSE);
	session_free(&t.s);
	t_new_session(&t, &t.s, LISTENER_POP3, "127.0.0.1", true);
	free(t_take(&t));
	t_expect(&t, "USER bob\r\nPASS secret\r\nLIST 4\r\n", false,
		 "+OK Send your password\r\n+OK Logged in, 4 messages (131 octets)\r\n+OK 4 20\r\n", SESSION_EFFECT_NONE);
	t_close(&t);
}
END_TEST

START_TEST(message_gone_or_unreadable)
{
	struct t t;
	t_open(&t);
	t_login(&t, false);
	t.f.msgs[0].gone = true;
	t.f.msgs[1].open_fail = true;
	t_expect(&t, "RETR 1\r\nTOP 2 0\r\nRETR 3\r\n", false,
		 "-ERR Message 1 was removed by another client\r\n"
		 "-ERR [SYS/TEMP] Message 2 cannot be read now, try again later\r\n"
		 "+OK 50 octets\r\n" M3_WIRE,
		 SESSION_EFFECT_NONE);
	/* A read error mid-reply cuts the connection (a -ERR cannot be told
	 * from content any more). */
	t.f.msgs[2].read_fail = true;
	t.f.read_chunk = 10;
	t_expect(&t, "RETR 3\r\nNOOP\r\n", false, "+OK 50 octets\r\nSubject: t", SESSION_EFFECT_CLOSE);
	t_close(&t);
}
END_TEST

START_TEST(empty_maildrop)
{
	struct t t;
	memset(&t, 0, sizeof(t));
	fake_init(&t.f);
	t_new_session(&t, &t.s, LISTENER_POP3, "127.0.0.1", true);
	free(t_take(&t));
	t_expect(&t, "USER bob\r\nPASS secret\r\nSTAT\r\nLIST\r\nUIDL\r\nLIST 1\r\nQUIT\r\n", true,
		 "+OK Send your password\r\n+OK Logged in, 0 messages (0 octets)\r\n+OK 0 0\r\n"
		 "+OK 0 messages (0 octets)\r\n.\r\n+OK Unique-ID listing follows\r\n.\r\n-ERR No such message\r\n"
		 "+OK postbote signing off\r\n",
		 SESSION_EFFECT_CLOSE);
	t_close(&t);
}
END_TEST

START_TEST(pipelining)
{
	dialogue(true, "STAT\r\nLIST\r\nRETR 1\r\nUIDL 2\r\nRETR 2\r\nTOP 3 0\r\nNOOP\r\n",
		 "+OK 3 111\r\n" LIST_ALL "+OK 34 octets\r\n" M1_WIRE "+OK 2 0000000712345678\r\n+OK 27 octets\r\n" M2_WIRE
		 "+OK Top of message follows\r\nSubject: three\r\n\r\n.\r\n+OK\r\n",
		 SESSION_EFFECT_NONE);
	/* Login pipelined with commands (RFC 2449 6.6). */
	dialogue(false, "USER bob\r\nPASS secret\r\nSTAT\r\nQUIT\r\n", LOGIN_OK "+OK 3 111\r\n+OK postbote signing off\r\n",
		 SESSION_EFFECT_CLOSE);
}
END_TEST

START_TEST(overlong_line)
{
	size_t n = cfg.pop3_line_max + 10;
	char *line = xmalloc(n + 16);
	memset(line, 'A', n);
	strcpy(line + n, "\r\nCAPA\r\n");
	dialogue(false, line, "-ERR Line too long\r\n" CAPA_AUTH, SESSION_EFFECT_NONE);
	memcpy(line, "LIST ", 5);
	dialogue(true, line, "-ERR Line too long\r\n" CAPA_TRANS, SESSION_EFFECT_NONE);
	free(line);
}
END_TEST

static char *ref_wire(const char *d, size_t len, bool top, uint64_t lines, size_t *len_r);

/* A big message goes out in bounded steps as the output drains. */
START_TEST(long_message_in_steps)
{
	size_t size = 3 << 20;
	char *msg = xmalloc(size);
	for (size_t i = 0; i < size; i++)
		msg[i] = i % 73 == 72 ? '\n' : (i % 73 == 0 ? '.' : (char)('a' + i % 26));
	msg[size - 1] = '\n';
	size_t wire_len;
	char *wire = ref_wire(msg, size, false, 0, &wire_len);
	char head[64];
	snprintf(head, sizeof(head), "+OK %llu octets\r\n", (unsigned long long)fake_vsize(msg, size));

	struct t t;
	t_open(&t);
	fake_add(&t.f, msg, size);
	t_login_any(&t);
	t.step_max = 0;
	t.drains = 0;
	ck_assert_int_eq(t_feed(&t, "RETR 4\r\nNOOP\r\n", false), SESSION_EFFECT_NONE);
	char *out = t_take(&t);
	ck_assert_uint_ge(t.drains, (3u << 20) / POP3_PUMP_BUDGET);
	ck_assert_uint_le(t.step_max, POP3_PUMP_BUDGET + 2 * POP3_READ_CHUNK + 64);
	ck_assert_uint_eq(strlen(out), strlen(head) + wire_len + 5);
	ck_assert(memcmp(out, head, strlen(head)) == 0);
	ck_assert(memcmp(out + strlen(head), wire, wire_len) == 0);
	ck_assert_str_eq(out + strlen(head) + wire_len, "+OK\r\n");
	free(out);

	/* Pipelined RETRs of big messages wait for the output too. */
	t.drains = 0;
	t.step_max = 0;
	char many[200] = "";
	for (int i = 0; i < 10; i++)
		strcat(many, "RETR 4\r\n");
	ck_assert_int_eq(t_feed(&t, many, false), SESSION_EFFECT_NONE);
	ck_assert_uint_ge(t.drains, 10);
	ck_assert_uint_le(t.step_max, POP3_PUMP_BUDGET + 2 * POP3_READ_CHUNK + 64);
	out = t_take(&t);
	ck_assert_uint_eq(strlen(out), 10 * (strlen(head) + wire_len));
	free(out);
	free(wire);
	free(msg);
	t_close(&t);
}
END_TEST

START_TEST(long_listing_in_steps)
{
	struct t t;
	memset(&t, 0, sizeof(t));
	fake_init(&t.f);
	for (int i = 0; i < 40000; i++)
		fake_add(&t.f, "x\n", 2);
	t_new_session(&t, &t.s, LISTENER_POP3, "127.0.0.1", true);
	free(t_take(&t));
	t_login_any(&t);
	t.drains = 0;
	t.step_max = 0;
	ck_assert_int_eq(t_feed(&t, "UIDL\r\nLIST\r\nSTAT\r\n", false), SESSION_EFFECT_NONE);
	char *out = t_take(&t);
	ck_assert_uint_ge(t.drains, 2);
	ck_assert_uint_le(t.step_max, POP3_PUMP_BUDGET + 128);
	ck_assert_ptr_nonnull(strstr(out, "\r\n40000 00009C4312345678\r\n.\r\n+OK 40000 messages (120000 octets)\r\n1 3\r\n"));
	static const char tail[] = "40000 3\r\n.\r\n+OK 40000 120000\r\n";
	ck_assert_str_eq(out + strlen(out) - strlen(tail), tail);
	free(out);
	t_close(&t);
}
END_TEST

/* The reference for RETR and TOP: split into lines, strip a CR before each
 * LF, stuff dots, end lines in CRLF. */
static char *ref_wire(const char *d, size_t len, bool top, uint64_t lines, size_t *len_r)
{
	char *out = xmalloc(2 * len + 8);
	size_t o = 0, i = 0;
	bool headers = true;
	uint64_t body = 0;

	while (i < len) {
		size_t start = i;
		while (i < len && d[i] != '\n')
			i++;
		size_t cl = i - start;
		if (cl > 0 && d[start + cl - 1] == '\r')
			cl--;
		if (i < len)
			i++;
		if (cl > 0 && d[start] == '.')
			out[o++] = '.';
		memcpy(out + o, d + start, cl);
		o += cl;
		out[o++] = '\r';
		out[o++] = '\n';
		if (top) {
			if (headers)
				headers = cl != 0;
			else
				body++;
			if (!headers && body >= lines)
				break;
		}
	}
	memcpy(out + o, ".\r\n", 3);
	*len_r = o + 3;
	return out;
}

START_TEST(conversion_matches_reference)
{
	static const char alphabet[] = "ab.\r\n\n";
	unsigned seed = 12345;

	for (int round = 0; round < 300; round++) {
		size_t len = (size_t)(rand_r(&seed) % 3000);
		char *msg = xmalloc(len + 1);
		for (size_t i = 0; i < len; i++)
			msg[i] = alphabet[rand_r(&seed) % (sizeof(alphabet) - 1)];
		struct t t;
		memset(&t, 0, sizeof(t));
		fake_init(&t.f);
		fake_add(&t.f, msg, len);
		t.f.read_chunk = 1 + (size_t)(rand_r(&seed) % 100);
		t_new_session(&t, &t.s, LISTENER_POP3, "127.0.0.1", true);
		t_login_any(&t);

		bool top = round % 2 == 1;
		uint64_t lines = (uint64_t)(rand_r(&seed) % 20);
		char cmd[64];
		snprintf(cmd, sizeof(cmd), top ? "TOP 1 %llu\r\n" : "RETR 1\r\n", (unsigned long long)lines);
		t_feed(&t, cmd, false);
		char *out = t_take(&t);
		size_t want_len;
		char *want = ref_wire(msg, len, top, lines, &want_len);
		char *body = strstr(out, "\r\n") + 2;
		ck_assert_msg(strlen(body) == want_len && memcmp(body, want, want_len) == 0,
			      "round %d (top=%d lines=%llu chunk=%zu) differs", round, top, (unsigned long long)lines,
			      t.f.read_chunk);
		if (!top) {
			char head[64];
			snprintf(head, sizeof(head), "+OK %llu octets\r\n", (unsigned long long)fake_vsize(msg, len));
			ck_assert_uint_eq(strncmp(out, head, strlen(head)), 0);
		}
		free(want);
		free(out);
		free(msg);
		t_close(&t);
	}
}
END_TEST

static Suite *pop3_suite(void)
{
	Suite *s = suite_create("pop3_session");
	TCase *tc = tcase_create("session");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, every_command_in_every_state);
	tcase_add_test(tc, unknown_and_malformed_commands);
	tcase_add_test(tc, bad_arguments);
	tcase_add_test(tc, deleted_messages);
	tcase_add_test(tc, too_many_errors_close_and_delete_nothing);
	tcase_add_test(tc, login_failures);
	tcase_add_test(tc, plaintext_login_refused);
	tcase_add_test(tc, stls);
	tcase_add_test(tc, sasl);
	tcase_add_test(tc, trace_masks_sasl);
	tcase_add_test(tc, in_use);
	tcase_add_test(tc, quit_applies_deletions);
	tcase_add_test(tc, commit_failures);
	tcase_add_test(tc, dropped_connections_delete_nothing);
	tcase_add_test(tc, maildrop_open_failures);
	tcase_add_test(tc, snapshot_at_login);
	tcase_add_test(tc, message_gone_or_unreadable);
	tcase_add_test(tc, empty_maildrop);
	tcase_add_test(tc, pipelining);
	tcase_add_test(tc, overlong_line);
	tcase_add_test(tc, long_message_in_steps);
	tcase_add_test(tc, long_listing_in_steps);
	tcase_add_test(tc, conversion_matches_reference);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run(pop3_suite());
}
