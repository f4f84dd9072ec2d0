/* The sans-I/O session driver and the Foundation's protocol sessions, fed
 * bytes with no network: whole, and one byte at a time. */
#include <stdlib.h>
#include <string.h>

#include "core/session.h"
#include "imap/imap_session.h"
#include "pop3/pop3_session.h"
#include "smtp/smtp_session.h"
#include "testutil.h"

static struct config cfg;

static void setup(void)
{
	config_dev_setup(&cfg);
}

static void teardown(void)
{
	config_free(&cfg);
}

static struct session *new_session(const struct session_proto *proto, enum listener_kind kind)
{
	struct session_params p = {
		.cfg = &cfg, .kind = kind, .id = 1, .peer = "127.0.0.1", .peer_loopback = true,
	};
	struct session *s = session_new(proto, &p);
	session_start(s);
	return s;
}

/* Take all output as a string (caller frees). */
static char *take_output(struct session *s)
{
	struct buf *out = session_output(s);
	char *text = strndup(buf_ptr(out), buf_len(out));
	buf_reset(out);
	return text;
}

/* Feed input whole or bytewise; stop at the first effect and report it. */
static enum session_effect feed_n(struct session *s, const char *in, size_t len, bool bytewise, size_t *used_r)
{
	char *g = guard_copy(in, len);
	enum session_effect e = SESSION_EFFECT_NONE;
	size_t i = 0;

	if (!bytewise) {
		e = session_feed(s, g, len);
		i = len;
	} else {
		for (i = 0; i < len && e == SESSION_EFFECT_NONE; i++)
			e = session_feed(s, g + i, 1);
	}
	guard_free(g, len);
	if (used_r)
		*used_r = i;
	return e;
}

static enum session_effect feed(struct session *s, const char *in, bool bytewise, size_t *used_r)
{
	return feed_n(s, in, strlen(in), bytewise, used_r);
}

static void check_dialogue_n(const struct session_proto *proto, enum listener_kind kind, const char *greeting,
			     const char *in, size_t inlen, const char *expect, enum session_effect expect_effect)
{
	for (int bytewise = 0; bytewise < 2; bytewise++) {
		struct session *s = new_session(proto, kind);
		char *g = take_output(s);
		ck_assert_str_eq(g, greeting);
		free(g);
		enum session_effect e = feed_n(s, in, inlen, bytewise, NULL);
		char *out = take_output(s);
		ck_assert_msg(strcmp(out, expect) == 0, "bytewise=%d\ngot:\n%s\nwant:\n%s", bytewise, out, expect);
		ck_assert_int_eq(e, expect_effect);
		free(out);
		session_free(&s);
		ck_assert_ptr_null(s);
	}
}

static void check_dialogue(const struct session_proto *proto, enum listener_kind kind, const char *greeting,
			   const char *in, const char *expect, enum session_effect expect_effect)
{
	check_dialogue_n(proto, kind, greeting, in, strlen(in), expect, expect_effect);
}

START_TEST(smtp_greeting_ehlo_quit)
{
	check_dialogue(&smtp_proto, LISTENER_SMTP, "220 localhost ESMTP postbote\r\n",
		       "EHLO client.example\r\nNOOP\r\nQUIT\r\n",
		       "250-localhost Hello client.example [127.0.0.1]\r\n250-PIPELINING\r\n250-SIZE 52428800\r\n250-STARTTLS\r\n" \
		       "250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n250 DSN\r\n"
		       "250 2.0.0 OK\r\n221 2.0.0 localhost Bye\r\n",
		       SESSION_EFFECT_CLOSE);
}
END_TEST

START_TEST(smtp_errors_keep_session)
{
	static const char in[] = "FOO\r\nEHLO\r\nMAIL FROM:<a@b>\r\nN\x00OP\r\nhelo x\r\n";
	check_dialogue_n(&smtp_proto, LISTENER_SMTP, "220 localhost ESMTP postbote\r\n", in, sizeof(in) - 1,
		       "500 5.5.2 Syntax error, command unrecognized\r\n501 5.5.4 Syntax: EHLO hostname\r\n"
		       "503 5.5.1 Send EHLO or HELO first\r\n500 5.5.2 Syntax error, NUL byte in command\r\n"
		       "250 localhost\r\n",
		       SESSION_EFFECT_NONE);
}
END_TEST

START_TEST(smtp_too_many_errors_close)
{
	struct session *s = new_session(&smtp_proto, LISTENER_SMTP);
	enum session_effect e = SESSION_EFFECT_NONE;
	unsigned n;

	free(take_output(s));
	for (n = 0; n < 100 && e == SESSION_EFFECT_NONE; n++)
		e = session_feed(s, "BOGUS\r\n", 7);
	ck_assert_int_eq(e, SESSION_EFFECT_CLOSE);
	ck_assert_uint_eq(n, cfg.max_bad_commands);
	char *out = take_output(s);
	ck_assert_ptr_nonnull(strstr(out, "421 4.7.0"));
	free(out);
	session_free(&s);
}
END_TEST

START_TEST(smtp_overlong_line)
{
	size_t n = cfg.smtp_line_max + 10;
	char *line = malloc(n + 16);
	memset(line, 'A', n);
	strcpy(line + n, "\r\nNOOP\r\n");

	struct session *s = new_session(&smtp_proto, LISTENER_SMTP);
	free(take_output(s));
	ck_assert_int_eq(session_feed(s, line, strlen(line)), SESSION_EFFECT_NONE);
	char *out = take_output(s);
	ck_assert_str_eq(out, "500 5.5.2 Line too long\r\n250 2.0.0 OK\r\n");
	free(out);
	free(line);
	session_free(&s);
}
END_TEST

/* STARTTLS: the command stops the driver, and whatever the client
 * pipelined behind it is thrown away, never answered. */
START_TEST(smtp_starttls_discards_pipelined_plaintext)
{
	for (int bytewise = 0; bytewise < 2; bytewise++) {
		struct session *s = new_session(&smtp_proto, LISTENER_SUBMISSION);
		free(take_output(s));
		size_t used;
		enum session_effect e = feed(s, "EHLO x\r\nSTARTTLS\r\nRSET\r\nMAIL FROM:<evil>\r\n", bytewise, &used);
		ck_assert_int_eq(e, SESSION_EFFECT_STARTTLS);
		ck_assert_uint_eq(session_input_pending(s), 0);
		char *out = take_output(s);
		ck_assert_ptr_nonnull(strstr(out, "220 2.0.0 Ready to start TLS\r\n"));
		ck_assert_ptr_null(strstr(out, "250 2.0.0 OK"));
		free(out);

		e = session_tls_started(s, "TLSv1.3", "TLS_AES_128_GCM_SHA256");
		ck_assert_int_eq(e, SESSION_EFFECT_NONE);
		out = take_output(s);
		ck_assert_str_eq(out, ""); /* nothing left to answer */
		free(out);
		ck_assert(session_tls_active(s));
		ck_assert_str_eq(session_tls_version(s), "TLSv1.3");

		/* After TLS, EHLO no longer offers STARTTLS. */
		e = session_feed(s, "EHLO x\r\nSTARTTLS\r\n", 18);
		out = take_output(s);
		ck_assert_ptr_null(strstr(out, "STARTTLS\r\n"));
		ck_assert_ptr_nonnull(strstr(out, "250 DSN\r\n503 5.5.1 TLS already active\r\n"));
		free(out);
		session_free(&s);
	}
}
END_TEST

START_TEST(smtp_implicit_tls_no_starttls)
{
	check_dialogue(&smtp_proto, LISTENER_SUBMISSIONS, "220 localhost ESMTP postbote\r\n",
		       "EHLO x\r\nSTARTTLS\r\n",
		       "250-localhost Hello x [127.0.0.1]\r\n250-PIPELINING\r\n250-SIZE 52428800\r\n"
		       "250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n250 DSN\r\n"
		       "503 5.5.1 TLS already active\r\n",
		       SESSION_EFFECT_NONE);
}
END_TEST

START_TEST(pop3_capa_stls_quit)
{
	check_dialogue(&pop3_proto, LISTENER_POP3, "+OK postbote POP3 server ready\r\n",
		       "capa\r\nXYZW\r\nUSER bob\r\nPASS x\r\nQUIT\r\n",
		       "+OK Capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n"
		       "PIPELINING\r\nUSER\r\nSASL PLAIN LOGIN\r\nSTLS\r\nIMPLEMENTATION postbote-"
		       POSTBOTE_VERSION "\r\n.\r\n-ERR Unknown command\r\n+OK Send your password\r\n"
		       "-ERR [SYS/PERM] Mailbox access is not available on this server\r\n"
		       "+OK postbote signing off\r\n",
		       SESSION_EFFECT_CLOSE);
	check_dialogue(&pop3_proto, LISTENER_POP3, "+OK postbote POP3 server ready\r\n",
		       "STLS\r\nCAPA\r\n", "+OK Begin TLS negotiation\r\n", SESSION_EFFECT_STARTTLS);
	check_dialogue(&pop3_proto, LISTENER_POP3S, "+OK postbote POP3 server ready\r\n",
		       "STLS\r\n", "-ERR Command not permitted when TLS active\r\n", SESSION_EFFECT_NONE);
}
END_TEST

/* What the IMAP session offers before login on a loopback peer of the
 * development setup (plaintext AUTH allowed there). */
#define IMAP_CAPS "IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE UIDPLUS MOVE SPECIAL-USE CHILDREN UNSELECT"
#define IMAP_AUTH " AUTH=PLAIN AUTH=LOGIN"

START_TEST(imap_capability_starttls_logout)
{
	check_dialogue(&imap_proto, LISTENER_IMAP, "* OK [CAPABILITY " IMAP_CAPS " STARTTLS" IMAP_AUTH "] postbote ready\r\n",
		       "a1 capability\r\n\r\n* NOOP\r\na2 FROB\r\na3 NOOP\r\na4 LOGOUT\r\n",
		       "* CAPABILITY " IMAP_CAPS " STARTTLS" IMAP_AUTH "\r\na1 OK CAPABILITY completed\r\n"
		       "* BAD Empty command line\r\n* BAD Missing or invalid tag\r\n"
		       "a2 BAD Unknown command\r\na3 OK NOOP completed\r\n"
		       "* BYE postbote logging out\r\na4 OK LOGOUT completed\r\n",
		       SESSION_EFFECT_CLOSE);
	check_dialogue(&imap_proto, LISTENER_IMAP, "* OK [CAPABILITY " IMAP_CAPS " STARTTLS" IMAP_AUTH "] postbote ready\r\n",
		       "t STARTTLS\r\nt2 NOOP\r\n", "t OK Begin TLS negotiation now\r\n", SESSION_EFFECT_STARTTLS);
	check_dialogue(&imap_proto, LISTENER_IMAPS, "* OK [CAPABILITY " IMAP_CAPS IMAP_AUTH "] postbote ready\r\n",
		       "t STARTTLS\r\n", "t BAD STARTTLS is not offered here\r\n", SESSION_EFFECT_NONE);
}
END_TEST

START_TEST(goodbyes_and_refusals)
{
	const struct { const struct session_proto *p; enum listener_kind k; const char *timeout, *shutdown, *refuse; } t[] = {
		{ &smtp_proto, LISTENER_SMTP, "421 4.4.2", "421 4.3.2", "421 4.7.0" },
		{ &pop3_proto, LISTENER_POP3, "-ERR", "-ERR [SYS/TEMP]", "-ERR [SYS/TEMP]" },
		{ &imap_proto, LISTENER_IMAP, "* BYE", "* BYE", "* BYE" },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct session *s = new_session(t[i].p, t[i].k);
		free(take_output(s));
		session_timeout(s);
		char *out = take_output(s);
		ck_assert_msg(strncmp(out, t[i].timeout, strlen(t[i].timeout)) == 0, "%s", out);
		free(out);
		session_shutdown(s);
		out = take_output(s);
		ck_assert_msg(strncmp(out, t[i].shutdown, strlen(t[i].shutdown)) == 0, "%s", out);
		free(out);
		session_free(&s);

		struct buf b;
		buf_init(&b, 1024);
		t[i].p->refuse(&b, SESSION_REFUSE_TOO_MANY_FROM_IP, "localhost");
		ck_assert(buf_len(&b) > 2 && memcmp(buf_ptr(&b), t[i].refuse, strlen(t[i].refuse)) == 0);
		ck_assert(memcmp(buf_ptr(&b) + buf_len(&b) - 2, "\r\n", 2) == 0);
		buf_free(&b);
	}
}
END_TEST

/* Secrets never reach the trace: the protocols say how much is visible. */
START_TEST(trace_masks_secrets)
{
	const struct { const struct session_proto *p; const char *line; size_t visible; } t[] = {
		{ &smtp_proto, "AUTH PLAIN AGJvYgBzZWNyZXQ=", 11 },
		{ &smtp_proto, "auth login", 10 },
		{ &smtp_proto, "EHLO x", 6 },
		{ &pop3_proto, "PASS hunter2", 5 },
		{ &pop3_proto, "AUTH PLAIN AGJvYgBzZWNyZXQ=", 11 },
		{ &imap_proto, "a1 LOGIN bob hunter2", 13 },
		{ &imap_proto, "a1 login bob hunter2", 13 },
		{ &imap_proto, "a2 AUTHENTICATE PLAIN AGJvYgBzZWNyZXQ=", 22 },
		{ &imap_proto, "a3 SELECT INBOX", 15 },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct session *s = new_session(t[i].p, LISTENER_SMTP);
		void *state = NULL;
		/* The protocol state is private; trace_visible ignores it for
		 * these commands, so NULL stands in. */
		size_t v = t[i].p->trace_visible(state, t[i].line, strlen(t[i].line));
		ck_assert_msg(v == t[i].visible, "%s: %zu != %zu", t[i].line, v, t[i].visible);
		session_free(&s);
	}
}
END_TEST

/* A protocol that asks for exact bytes (as IMAP literals and BDAT will). */
struct bytes_state {
	struct session *s;
	char got[64];
	size_t n;
};

static void *bp_create(struct session *s)
{
	struct bytes_state *b = calloc(1, sizeof(*b));
	b->s = s;
	return b;
}
static void bp_destroy(void *st) { free(st); }
static void bp_greet(void *st) { (void)st; }
static enum session_effect bp_line(void *st, const char *line, size_t len)
{
	struct bytes_state *b = st;
	if (len > 1 && line[0] == '{') {
		session_expect_bytes(b->s, strtoul(line + 1, NULL, 10));
		return SESSION_EFFECT_NONE;
	}
	session_reply(b->s, "line %.*s\r\n", (int)len, line);
	return SESSION_EFFECT_NONE;
}
static enum session_effect bp_bytes(void *st, const char *data, size_t len)
{
	struct bytes_state *b = st;
	memcpy(b->got + b->n, data, len);
	b->n += len;
	return SESSION_EFFECT_NONE;
}
static enum session_effect bp_too_long(void *st) { (void)st; return SESSION_EFFECT_NONE; }
static void bp_void(void *st) { (void)st; }

static const struct session_proto bytes_proto = {
	.name = "test", .create = bp_create, .destroy = bp_destroy, .greet = bp_greet, .line = bp_line,
	.line_too_long = bp_too_long, .bytes = bp_bytes, .timeout = bp_void, .shutdown = bp_void,
};

START_TEST(exact_bytes_after_line)
{
	for (int bytewise = 0; bytewise < 2; bytewise++) {
		struct session *s = new_session(&bytes_proto, LISTENER_IMAP);
		/* The literal arrives in the same packet as its line, with CRLF
		 * inside it that must not split it. */
		feed(s, "{7}\r\nab\r\ncdeNEXT\r\n", bytewise, NULL);
		char *out = take_output(s);
		ck_assert_str_eq(out, "line NEXT\r\n");
		free(out);
		session_free(&s);
	}
}
END_TEST

START_TEST(trim_between_reads)
{
	/* Trimming while a literal and a line are half there loses nothing;
	 * once the output is taken its storage is given back. */
	struct session *s = new_session(&bytes_proto, LISTENER_IMAP);
	feed(s, "{7}\r\nab", false, NULL);
	session_trim(s);
	feed(s, "\r\ncdeNE", false, NULL);
	session_trim(s);
	feed(s, "XT\r\n", false, NULL);
	char *out = take_output(s);
	ck_assert_str_eq(out, "line NEXT\r\n");
	free(out);
	ck_assert_ptr_nonnull(session_output(s)->data);
	session_trim(s);
	ck_assert_ptr_null(session_output(s)->data);
	ck_assert_uint_eq(session_input_pending(s), 0);
	feed(s, "AGAIN\r\n", false, NULL);
	out = take_output(s);
	ck_assert_str_eq(out, "line AGAIN\r\n");
	free(out);
	session_free(&s);
}
END_TEST

START_TEST(input_flood_closes)
{
	struct session *s = new_session(&bytes_proto, LISTENER_IMAP);
	char *big = malloc(1 << 20);
	memset(big, 'x', 1 << 20);
	/* Overlong lines are skipped, so a flood only overflows when the
	 * glue keeps feeding while the buffer is full: simulate with one
	 * huge feed. */
	ck_assert_int_eq(session_feed(s, big, 1 << 20), SESSION_EFFECT_CLOSE);
	free(big);
	session_free(&s);
}
END_TEST

/* A protocol whose "work" line waits until the test resumes it, and whose
 * "now" line resumes before it even returns WAIT (a backend that answered
 * at once). */
struct wait_state {
	struct session *s;
	int pokes;
};

static void *wp_create(struct session *s)
{
	struct wait_state *w = calloc(1, sizeof(*w));
	w->s = s;
	return w;
}
static enum session_effect wp_line(void *st, const char *line, size_t len)
{
	struct wait_state *w = st;
	session_reply(w->s, "got %.*s\r\n", (int)len, line);
	if (len == 4 && memcmp(line, "work", 4) == 0)
		return SESSION_EFFECT_WAIT;
	if (len == 3 && memcmp(line, "now", 3) == 0) {
		session_resume(w->s, SESSION_EFFECT_NONE);
		return SESSION_EFFECT_WAIT;
	}
	return SESSION_EFFECT_NONE;
}
static void wp_poke(void *ctx)
{
	((struct wait_state *)ctx)->pokes++;
}

static const struct session_proto wait_proto = {
	.name = "test", .create = wp_create, .destroy = bp_destroy, .greet = bp_greet, .line = wp_line,
	.line_too_long = bp_too_long, .timeout = bp_void, .shutdown = bp_void,
};

START_TEST(wait_holds_input_until_resume)
{
	struct wait_state poked = { 0 };
	struct session_params p = {
		.cfg = &cfg, .kind = LISTENER_IMAP, .id = 1, .peer = "127.0.0.1",
		.poke = wp_poke, .poke_ctx = &poked,
	};
	struct session *s = session_new(&wait_proto, &p);
	session_start(s);

	ck_assert_int_eq(session_feed(s, "a\r\nwork\r\nb\r\n", 12), SESSION_EFFECT_WAIT);
	ck_assert_int_eq(session_feed(s, "c\r\n", 3), SESSION_EFFECT_NONE); /* only buffered */
	char *out = take_output(s);
	ck_assert_str_eq(out, "got a\r\ngot work\r\n");
	free(out);
	ck_assert(!session_resumed(s));
	ck_assert_int_eq(session_continue(s), SESSION_EFFECT_WAIT);

	session_resume(s, SESSION_EFFECT_NONE);
	ck_assert_int_eq(poked.pokes, 1);
	ck_assert(session_resumed(s));
	ck_assert_int_eq(session_continue(s), SESSION_EFFECT_NONE);
	out = take_output(s);
	ck_assert_str_eq(out, "got b\r\ngot c\r\n");
	free(out);

	/* Resumed before returning: no wait at all, no poke. */
	ck_assert_int_eq(session_feed(s, "now\r\nd\r\n", 8), SESSION_EFFECT_NONE);
	out = take_output(s);
	ck_assert_str_eq(out, "got now\r\ngot d\r\n");
	free(out);
	ck_assert_int_eq(poked.pokes, 1);

	/* A wait may end in a close. */
	ck_assert_int_eq(session_feed(s, "work\r\ne\r\n", 9), SESSION_EFFECT_WAIT);
	session_resume(s, SESSION_EFFECT_CLOSE);
	ck_assert_int_eq(session_continue(s), SESSION_EFFECT_CLOSE);
	session_free(&s);
}
END_TEST

static Suite *session_suite(void)
{
	Suite *s = suite_create("session");
	TCase *tc = tcase_create("core");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, smtp_greeting_ehlo_quit);
	tcase_add_test(tc, smtp_errors_keep_session);
	tcase_add_test(tc, smtp_too_many_errors_close);
	tcase_add_test(tc, smtp_overlong_line);
	tcase_add_test(tc, smtp_starttls_discards_pipelined_plaintext);
	tcase_add_test(tc, smtp_implicit_tls_no_starttls);
	tcase_add_test(tc, pop3_capa_stls_quit);
	tcase_add_test(tc, imap_capability_starttls_logout);
	tcase_add_test(tc, goodbyes_and_refusals);
	tcase_add_test(tc, trace_masks_secrets);
	tcase_add_test(tc, exact_bytes_after_line);
	tcase_add_test(tc, trim_between_reads);
	tcase_add_test(tc, input_flood_closes);
	tcase_add_test(tc, wait_holds_input_until_resume);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run(session_suite());
}
