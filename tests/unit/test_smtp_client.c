/* Unit tests for src/smtp/client.c: the SMTP client state machine, driven
 * by scripted server dialogues. Every dialogue runs twice (a loop test):
 * each server turn fed whole, and fed one byte at a time, every byte copied
 * to end at a guard page. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/client.h"
#include "testutil.h"

#define NONE SMTP_CLIENT_ACTION_NONE
#define START_TLS SMTP_CLIENT_ACTION_START_TLS
#define NEED_BODY SMTP_CLIENT_ACTION_NEED_BODY
#define CLOSE SMTP_CLIENT_ACTION_CLOSE

#define GREETING "220 mx.example.org ESMTP ready\r\n"
#define EHLO_CMD "EHLO client.example.net\r\n"
/* ESMTP with PIPELINING and the rest. */
#define EHLO_FULL "250-mx.example.org Hello\r\n250-PIPELINING\r\n250-SIZE 10000000\r\n250-8BITMIME\r\n" \
		  "250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n"
/* ESMTP without PIPELINING. */
#define EHLO_NOPIPE "250-mx.example.org Hello\r\n250-SIZE 10000000\r\n250 8BITMIME\r\n"

static int split; /* the loop index: 0 whole, 1 byte by byte */

static const struct smtp_client_rcpt rcpt_b = { "bob@example.org", 0, NULL };
static const struct smtp_client_rcpt rcpt_c = { "carol@example.org", 0, NULL };
static const struct smtp_client_rcpt rcpt_d = { "dave@example.org", 0, NULL };

static struct smtp_client_params params(const struct smtp_client_rcpt *rcpts, size_t n)
{
	struct smtp_client_params p = {
		.ehlo_name = "client.example.net",
		.server = "mx.example.org[192.0.2.1]",
		.tls = SMTP_CLIENT_TLS_NONE,
		.sender = "alice@example.net",
		.rcpts = rcpts,
		.n_rcpts = n,
		.size = 1000,
	};
	return p;
}

static struct smtp_client *client(const struct smtp_client_params *p)
{
	const char *err = NULL;
	struct smtp_client *c = smtp_client_new(p, &err);
	ck_assert_msg(c != NULL, "smtp_client_new: %s", err ? err : "?");
	return c;
}

/* The client's output must be exactly want; it is then taken. */
static void out_is(struct smtp_client *c, const char *want)
{
	struct buf *o = smtp_client_output(c);
	ck_assert_msg(buf_len(o) == strlen(want) && memcmp(buf_ptr(o), want, buf_len(o)) == 0,
		      "output\n[%.*s]\nwant\n[%s]", (int)buf_len(o), buf_ptr(o), want);
	buf_consume(o, buf_len(o));
}

/* The server says bytes; whole or one byte at a time. The glue stops
 * feeding once START_TLS or CLOSE is asked for. */
static enum smtp_client_action srv(struct smtp_client *c, const char *bytes)
{
	size_t len = strlen(bytes);
	enum smtp_client_action a = NONE;

	if (!split) {
		char *g = guard_copy(bytes, len);
		a = smtp_client_feed(c, g, len);
		guard_free(g, len);
		return a;
	}
	for (size_t i = 0; i < len; i++) {
		char *g = guard_copy(bytes + i, 1);
		a = smtp_client_feed(c, g, 1);
		guard_free(g, 1);
		if (a == START_TLS || a == CLOSE)
			break;
	}
	return a;
}

/* Send the message body in pieces of at most `piece` octets. */
static enum smtp_client_action body(struct smtp_client *c, const char *msg, size_t piece)
{
	size_t len = strlen(msg), off = 0;
	enum smtp_client_action a;

	if (piece == 0)
		piece = SMTP_CLIENT_BODY_CHUNK;
	do {
		ck_assert_uint_eq(smtp_client_body_want(c), SMTP_CLIENT_BODY_CHUNK);
		size_t n = len - off < piece ? len - off : piece;
		char *g = guard_copy(msg + off, n);
		off += n;
		a = smtp_client_body(c, g, n, off == len);
		guard_free(g, n);
	} while (off < len && a == NEED_BODY);
	return a;
}

static void rcpt_is(struct smtp_client *c, size_t i, enum smtp_client_outcome o, unsigned code, const char *status,
		    bool remote, const char *text)
{
	const struct smtp_client_result *r = smtp_client_rcpt_result(c, i);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(r->outcome, o);
	ck_assert_uint_eq(r->code, code);
	ck_assert_str_eq(r->status, status);
	ck_assert_int_eq(r->remote, remote);
	ck_assert_ptr_nonnull(r->text);
	if (text != NULL)
		ck_assert_msg(strstr(r->text, text) != NULL, "text [%s] lacks [%s]", r->text, text);
}

/* Greeting and EHLO with the given reply. */
static enum smtp_client_action greet(struct smtp_client *c, const char *ehlo_reply)
{
	ck_assert_uint_eq(smtp_client_timeout_ms(c), 5 * 60 * 1000);
	ck_assert_int_eq(srv(c, GREETING), NONE);
	out_is(c, EHLO_CMD);
	ck_assert_str_eq(smtp_client_stage(c), "EHLO");
	return srv(c, ehlo_reply);
}

/* QUIT, 221, close. */
static void quit(struct smtp_client *c)
{
	out_is(c, "QUIT\r\n");
	ck_assert(smtp_client_done(c));
	ck_assert_int_eq(srv(c, "221 2.0.0 Bye\r\n"), CLOSE);
	ck_assert_uint_eq(smtp_client_timeout_ms(c), 0);
	ck_assert_int_eq(srv(c, "250 more?\r\n"), CLOSE);
}

static void counts(struct smtp_client *c, size_t delivered, size_t deferred, size_t failed, bool site)
{
	struct smtp_client_summary s;
	smtp_client_summary(c, &s);
	ck_assert(s.done);
	ck_assert_uint_eq(s.delivered, delivered);
	ck_assert_uint_eq(s.deferred, deferred);
	ck_assert_uint_eq(s.failed, failed);
	ck_assert_int_eq(s.site, site);
}

/* ---- ESMTP ---- */

START_TEST(esmtp_pipelining)
{
	split = _i;
	struct smtp_client_rcpt r[] = { rcpt_b, rcpt_c };
	struct smtp_client_params p = params(r, 2);
	struct smtp_client *c = client(&p);

	ck_assert_int_eq(greet(c, EHLO_FULL), NONE);
	/* RFC 2920: one group, DATA last. */
	out_is(c, "MAIL FROM:<alice@example.net> SIZE=1000\r\nRCPT TO:<bob@example.org>\r\n"
		  "RCPT TO:<carol@example.org>\r\nDATA\r\n");
	ck_assert_str_eq(smtp_client_stage(c), "MAIL");
	ck_assert_int_eq(srv(c, "250 2.1.0 Sender OK\r\n250 2.1.5 OK\r\n250 2.1.5 OK\r\n354 Go ahead\r\n"), NEED_BODY);
	ck_assert_uint_eq(smtp_client_timeout_ms(c), 3 * 60 * 1000);
	ck_assert_int_eq(body(c, "Subject: hi\n\nHello\n", 0), NONE);
	out_is(c, "Subject: hi\r\n\r\nHello\r\n.\r\n");
	ck_assert_uint_eq(smtp_client_timeout_ms(c), 10 * 60 * 1000);
	ck_assert(!smtp_client_done(c));
	ck_assert_int_eq(srv(c, "250 2.0.0 Ok: queued as 4Xyz\r\n"), NONE);
	rcpt_is(c, 0, SMTP_CLIENT_DELIVERED, 250, "2.0.0", true, "250 2.0.0 Ok: queued as 4Xyz");
	rcpt_is(c, 1, SMTP_CLIENT_DELIVERED, 250, "2.0.0", true, NULL);
	counts(c, 2, 0, 0, false);
	quit(c);
	smtp_client_free(&c);
	ck_assert_ptr_null(c);
}
END_TEST

START_TEST(esmtp_lockstep)
{
	split = _i;
	struct smtp_client_rcpt r[] = { rcpt_b, rcpt_c };
	struct smtp_client_params p = params(r, 2);
	struct smtp_client *c = client(&p);

	ck_assert_int_eq(greet(c, EHLO_NOPIPE), NONE);
	out_is(c, "MAIL FROM:<alice@example.net> SIZE=1000\r\n");
	ck_assert_uint_eq(smtp_client_timeout_ms(c), 5 * 60 * 1000);
	ck_assert_int_eq(srv(c, "250 OK\r\n"), NONE);
	out_is(c, "RCPT TO:<bob@example.org>\r\n");
	ck_assert_str_eq(smtp_client_stage(c), "RCPT");
	ck_assert_int_eq(srv(c, "250 OK\r\n"), NONE);
	out_is(c, "RCPT TO:<carol@example.org>\r\n");
	ck_assert_int_eq(srv(c, "250 OK\r\n"), NONE);
	out_is(c, "DATA\r\n");
	ck_assert_str_eq(smtp_client_stage(c), "DATA");
	ck_assert_uint_eq(smtp_client_timeout_ms(c), 2 * 60 * 1000);
	ck_assert_int_eq(srv(c, "354 End data with <CR><LF>.<CR><LF>\r\n"), NEED_BODY);
	ck_assert_int_eq(body(c, "x", 0), NONE);
	out_is(c, "x\r\n.\r\n");
	ck_assert_int_eq(srv(c, "250 queued\r\n"), NONE);
	/* No enhanced code in the reply: derived from the class. */
	rcpt_is(c, 0, SMTP_CLIENT_DELIVERED, 250, "2.0.0", true, "250 queued");
	counts(c, 2, 0, 0, false);
	quit(c);
	smtp_client_free(&c);
}
END_TEST

START_TEST(helo_fallback)
{
	split = _i;
	struct smtp_client_params p = params(&rcpt_b, 1);
	struct smtp_client *c = client(&p);

	ck_assert_int_eq(greet(c, "502 5.5.1 Command not implemented\r\n"), NONE);
	out_is(c, "HELO client.example.net\r\n");
	ck_assert_str_eq(smtp_client_stage(c), "HELO");
	ck_assert_int_eq(srv(c, "250 mx.example.org\r\n"), NONE);
	/* No extensions: no SIZE=, lock-step. */
	out_is(c, "MAIL FROM:<alice@example.net>\r\n");
	ck_assert(!smtp_client_ehlo(c)->pipelining);
	ck_assert_int_eq(srv(c, "250 OK\r\n"), NONE);
	out_is(c, "RCPT TO:<bob@example.org>\r\n");
	ck_assert_int_eq(srv(c, "250 OK\r\n"), NONE);
	out_is(c, "DATA\r\n");
	ck_assert_int_eq(srv(c, "354 go\r\n"), NEED_BODY);
	ck_assert_int_eq(body(c, "hi\n", 0), NONE);
	out_is(c, "hi\r\n.\r\n");
	ck_assert_int_eq(srv(c, "250 ok\r\n"), NONE);
	counts(c, 1, 0, 0, false);
	quit(c);
	smtp_client_free(&c);
}
END_TEST

START_TEST(helo_refused_too)
{
	split = _i;
	struct smtp_client_params p = params(&rcpt_b, 1);
	struct smtp_client *c = client(&p);

	ck_assert_int_eq(greet(c, "500 what?\r\n"), NONE);
	out_is(c, "HELO client.example.net\r\n");
	ck_assert_int_eq(srv(c, "550 go away\r\n"), NONE);
	rcpt_is(c, 0, SMTP_CLIENT_DEFERRED, 550, "4.0.0", true, "550 go away");
	counts(c, 0, 1, 0, true);
	quit(c);
	smtp_client_free(&c);

	/* A 4xx to EHLO does not fall back. */
	c = client(&p);
	ck_assert_int_eq(greet(c, "451 4.3.0 later\r\n"), NONE);
	rcpt_is(c, 0, SMTP_CLIENT_DEFERRED, 451, "4.3.0", true, NULL);
	quit(c);
	smtp_client_free(&c);
}
END_TEST

START_TEST(greeting_refused)
{
	split = _i;
	struct smtp_client_params p = params(&rcpt_b, 1);
	struct smtp_client *c = client(&p);

	/* 554 "no service": deferred here so the next MX is tried. */
	ck_assert_int_eq(srv(c, "554-5.7.1 mx.example.org\r\n554 5.7.1 Your address is listed\r\n"), NONE);
	rcpt_is(c, 0, SMTP_CLIENT_DEFERRED, 554, "4.7.1", true, "554 5.7.1 mx.example.org Your address is listed");
	counts(c, 0, 1, 0, true);
	quit(c);
	smtp_client_free(&c);

	/* 421: closed at once, no QUIT. */
	c = client(&p);
	ck_assert_int_eq(srv(c, "421 4.3.2 Too busy\r\n"), CLOSE);
	out_is(c, "");
	rcpt_is(c, 0, SMTP_CLIENT_DEFERRED, 421, "4.3.2", true, NULL);
	counts(c, 0, 1, 0, true);
	smtp_client_free(&c);

	/* Some other 2xx is not a greeting either. */
	c = client(&p);
	ck_assert_int_eq(srv(c, "250 hello?\r\n"), NONE);
	rcpt_is(c, 0, SMTP_CLIENT_DEFERRED, 250, "4.0.0", true, NULL);
	quit(c);
	smtp_client_free(&c);
}
END_TEST

/* ---- STARTTLS ---- */

#define EHLO_TLS "250-mx.example.org\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 8BITMIME\r\n"

START_TEST(starttls_opportunistic)
{
	split = _i;
	struct smtp_client_params p = params(&rcpt_b, 1);
	p.tls = SMTP_CLIENT_TLS_OPPORTUNISTIC;
	struct smtp_client *c = client(&p);

	ck_assert_int_eq(greet(c, EHLO_TLS), NONE);
	out_is(c, "STARTTLS\r\n");
	ck_assert_str_eq(smtp_client_stage(c), "STARTTLS");
	/* Bytes after the 220 were sent in plaintext: thrown away. */
	ck_assert_int_eq(srv(c, "220 2.0.0 Ready to start TLS\r\n250-injected\r\n"), START_TLS);
	out_is(c, "");
	ck_assert_int_eq(smtp_client_feed(c, "250 more\r\n", 10), START_TLS); /* ignored while pending */
	ck_assert_int_eq(smtp_client_tls_done(c), NONE);
	out_is(c, EHLO_CMD);
	/* What was learned before TLS is forgotten (RFC 3207 4.2). */
	ck_assert(!smtp_client_ehlo(c)->pipelining);
	ck_assert_int_eq(srv(c, "250-mx.example.org\r\n250 PIPELINING\r\n"), NONE);
	out_is(c, "MAIL FROM:<alice@example.net>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n");
	ck_assert_int_eq(srv(c, "250 ok\r\n250 ok\r\n354 go\r\n"), NEED_BODY);
	ck_assert_int_eq(body(c, "", 0), NONE);
	out_is(c, ".\r\n");
	ck_assert_int_eq(srv(c, "250 ok\r\n"), NONE);
	struct smtp_client_summary s;
	smtp_client_summary(c, &s);
	ck_assert(s.tls);
	ck_assert_uint_eq(s.delivered, 1);
	quit(c);
	smtp_client_free(&c);
}
END_TEST

START_TEST(starttls_opportunistic_fallbacks)
{
	split = _i;
	struct smtp_client_params p = params(&rcpt_b, 1);
	p.tls = SMTP_CLIENT_TLS_OPPORTUNISTIC;
	struct smtp_client *c = client(&p);

	/* Refused: go on in plaintext. */
	ck_assert_int_eq(greet(c, EHLO_TLS), NONE);
	out_is(c, "STARTTLS\r\n");
	ck_assert_int_eq(srv(c, "454 4.7.0 TLS not available\r\n"), NONE);
	out_is(c, "MAIL FROM:<alice@example.net>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n");
	struct smtp_client_summary s;
	smtp_client_summary(c, &s);
	ck_assert(!s.tls);
	smtp_client_free(&c);

	/* Not offered: plaintext without asking. */
	c = client(&p);
	ck_assert_int_eq(greet(c, EHLO_NOPIPE), NONE);
	out_is(c, "MAIL FROM:<alice@example.net> SIZE=1000\r\n");
	smtp_client_free(&c);

	/* The handshake fails: deferred, and the summary says so. */
	c = client(&p);
	ck_assert_int_eq(greet(c, EHLO_TLS), NONE);
	out_is(c, "STARTTLS\r\n");
	ck_assert_int_eq(srv(c, "220 go\r\n"), START_TLS);
	ck_assert_str_eq(smtp_client_stage(c), "TLS handshake");
	ck_assert_int_eq(smtp_client_fail(c, SMTP_CLIENT_FAIL_TLS, "wrong version number"), CLOSE);
	rcpt_is(c, 0, SMTP_CLIENT_DEFERRED, 451, "4.7.5", false,
		"TLS with mx.example.org[192.0.2.1] failed: wrong version number");
	smtp_client_summary(c, &s);
	ck_assert(s.tls_failed);
	ck_assert(s.site);
	ck_assert_int_eq(smtp_client_feed(c, "220 x\r\n", 7), CLOSE);
	smtp_client_free(&c);
}
END_TEST

START_TEST(starttls_require)
{
	split = _i;
	struct smtp_client_params p = params(&rcpt_b, 1);
	p.tls = SMTP_CLIENT_TLS_REQUIRE;
	struct smtp_client *c = client(&p);

	/* Not offered: deferred without sending anything. */
	ck_assert_int_eq(greet(c, EHLO_NOPIPE), NONE);
	rcpt_is(c, 0, SMTP_CLIENT_DEFERRED, 451, "4.7.4", false, "TLS is required");
	counts(c, 0, 1, 0, true);
	quit(c);
	smtp_client_free(&c);

	/* Refused: deferred with the server's words. */
	c = client(&p);
	ck_assert_int_eq(greet(c, EHLO_TLS), NONE);
	out_is(c, "STARTTLS\r\n");
	ck_assert_int_eq(srv(c, "454 4.7.0 TLS not available due to temporary reason\r\n"), NONE);
	rcpt_is(c, 0, SMTP_CLIENT_DEFERRED, 454, "4.7.0", true, "TLS not available");
	quit(c);
	smtp_client_free(&c);

	/* Offered and done: the mail goes under TLS. */
	c = client(&p);
	ck_assert_int_eq(greet(c, EHLO_TLS), NONE);
	out_is(c, "STARTTLS\r\n");
	ck_assert_int_eq(srv(c, "220 go\r\n"), START_TLS);
	ck_assert_int_eq(smtp_client_tls_done(c), NONE);
	out_is(c, EHLO_CMD);
	/* After TLS the server no longer offers STARTTLS; fine. */
	ck_assert_int_eq(srv(c, "250 mx.example.org\r\n"), NONE);
	out_is(c, "MAIL FROM:<alice@example.net>\r\n");
	smtp_client_free(&c);
}
END_TEST

START_TEST(starttls_none_and_implicit)
{
	split = _i;
	struct smtp_client_params p = params(&rcpt_b, 1);
	struct smtp_client *c = client(&p);

	/* none: STARTTLS offered but not used. */
	ck_assert_int_eq(greet(c, EHLO_TLS), NONE);
	out_is(c, "MAIL FROM:<alice@example.net>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n");
	smtp_client_free(&c);

	/* implicit: TLS runs already; never STARTTLS. */
	p.tls = SMTP_CLIENT_TLS_IMPLICIT;
	p.tls_active = true;
	c = client(&p);
	ck_assert_int_eq(greet(c, EHLO_TLS), NONE);
	out_is(c, "MAIL FROM:<alice@example.net>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n");
	struct smtp_client_summary s;
	smtp_client_summary(c, &s);
	ck_assert(s.tls);
	smtp_client_free(&c);
}
END_TEST

/* ---- AUTH ---- */

START_TEST(auth_plain)
{
	split = _i;
	struct smtp_client_params p = params(&rcpt_b, 1);
	p.tls = SMTP_CLIENT_TLS_IMPLICIT;
	p.tls_active = true;
	p.auth_user = "alice";
	p.auth_password = "secret";
	struct smtp_client *c = client(&p);

	ck_assert_int_eq(greet(c, "250-smarthost\r\n250-AUTH LOGIN PLAIN\r\n250 PIPELINING\r\n"), NONE);
	/* base64("\0alice\0secret") */
	static const char line[] = "AUTH PLAIN AGFsaWNlAHNlY3JldA==";
	ck_assert_uint_eq(smtp_client_trace_visible(c, line, strlen(line)), strlen("AUTH PLAIN "));
	out_is(c, "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n");
	ck_assert_str_eq(smtp_client_stage(c), "AUTH");
	ck_assert_int_eq(srv(c, "235 2.7.0 Authentication successful\r\n"), NONE);
	out_is(c, "MAIL FROM:<alice@example.net>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n");
	ck_assert_uint_eq(smtp_client_trace_visible(c, "MAIL FROM:<a>", 13), 13);
	struct smtp_client_summary s;
	smtp_client_summary(c, &s);
	ck_assert(s.authenticated);
	smtp_client_free(&c);
}
END_TEST

START_TEST(auth_login)
{
	split = _i;
	struct smtp_client_params p = params(&rcpt_b, 1);
	p.tls = SMTP_CLIENT_TLS_OPPORTUNISTIC;
	p.auth_user = "alice";
	p.auth_password = "secret";
	struct smtp_client *c = client(&p);

	ck_assert_int_eq(greet(c, EHLO_TLS), NONE);
	out_is(c, "STARTTLS\r\n");
	ck_assert_int_eq(srv(c, "220 go\r\n"), START_TLS);
	ck_assert_int_eq(smtp_client_tls_done(c), NONE);
	out_is(c, EHLO_CMD);
	ck_assert_int_eq(srv(c, "250-mx\r\n250 AUTH=LOGIN\r\n"), NONE);
	ck_assert_uint_eq(smtp_client_trace_visible(c, "AUTH LOGIN", 10), 10);
	out_is(c, "AUTH LOGIN\r\n");
	ck_assert_int_eq(srv(c, "334 VXNlcm5hbWU6\r\n"), NONE);
	ck_assert_uint_eq(smtp_client_trace_visible(c, "YWxpY2U=", 8), 0);
	out_is(c, "YWxpY2U=\r\n");
	ck_assert_int_eq(srv(c, "334 UGFzc3dvcmQ6\r\n"), NONE);
	ck_assert_uint_eq(smtp_client_trace_visible(c, "c2VjcmV0", 8), 0);
	out_is(c, "c2VjcmV0\r\n");
	ck_assert_int_eq(srv(c, "235 ok\r\n"), NONE);
	out_is(c, "MAIL FROM:<alice@example.net>\r\n");
	smtp_client_free(&c);
}
END_TEST

START_TEST(auth_refusals)
{
	split = _i;
	struct smtp_client_params p = params(&rcpt_b, 1);
	p.tls_active = true;
	p.tls = SMTP_CLIENT_TLS_IMPLICIT;
	p.auth_user = "alice";
	p.auth_password = "wrong";
	struct smtp_client *c = client(&p);

	/* 535: deferred (fix the config), QUIT. */
	ck_assert_int_eq(greet(c, "250-mx\r\n250 AUTH PLAIN\r\n"), NONE);
	out_is(c, "AUTH PLAIN AGFsaWNlAHdyb25n\r\n");
	ck_assert_int_eq(srv(c, "535 5.7.8 Authentication credentials invalid\r\n"), NONE);
	rcpt_is(c, 0, SMTP_CLIENT_DEFERRED, 535, "4.7.8", true, "credentials invalid");
	counts(c, 0, 1, 0, true);
	quit(c);
	smtp_client_free(&c);

	/* LOGIN cut short. */
	c = client(&p);
	ck_assert_int_eq(greet(c, "250-mx\r\n250 AUTH LOGIN\r\n"), NONE);
	out_is(c, "AUTH LOGIN\r\n");
	ck_assert_int_eq(srv(c, "504 5.5.4 Unrecognized\r\n"), NONE);
	rcpt_is(c, 0, SMTP_CLIENT_DEFERRED, 504, "4.5.4", true, NULL);
	quit(c);
	smtp_client_free(&c);

	/* No usable mechanism, or no AUTH at all. */
	c = client(&p);
	ck_assert_int_eq(greet(c, "250-mx\r\n250 AUTH CRAM-MD5 XOAUTH2\r\n"), NONE);
	rcpt_is(c, 0, SMTP_CLIENT_DEFERRED, 451, "4.7.0", false, "no AUTH PLAIN or LOGIN");
	quit(c);
	smtp_client_free(&c);
	c = client(&p);
	ck_assert_int_eq(greet(c, "250 mx\r\n"), NONE);
	rcpt_is(c, 0, SMTP_CLIENT_DEFERRED, 451, "4.7.0", false, NULL);
	quit(c);
	smtp_client_free(&c);

	/* Never over plaintext, unless allowed. */
	p.tls_active = false;
	p.tls = SMTP_CLIENT_TLS_OPPORTUNISTIC;
	c = client(&p);
	ck_assert_int_eq(greet(c, "250-mx\r\n250 AUTH PLAIN\r\n"), NONE);
	rcpt_is(c, 0, SMTP_CLIENT_DEFERRED, 451, "4.7.0", false, "without TLS");
	quit(c);
	smtp_client_free(&c);
	p.auth_plaintext = true;
	c = client(&p);
	ck_assert_int_eq(greet(c, "250-mx\r\n250 AUTH PLAIN\r\n"), NONE);
	out_is(c, "AUTH PLAIN AGFsaWNlAHdyb25n\r\n");
	smtp_client_free(&c);
}
END_TEST

/* ---- refusing to send ---- */

START_TEST(size_refusal)
{
	split = _i;
	struct smtp_client_rcpt r[] = { rcpt_b, rcpt_c };
	struct smtp_client_params p = params(r, 2);
	p.size = 20000000;
	struct smtp_client *c = client(&p);

	ck_assert_int_eq(greet(c, EHLO_FULL), NONE);
	/* RFC 1870 6.1: not sent at all; permanent. */
	rcpt_is(c, 0, SMTP_CLIENT_FAILED, 552, "5.3.4", false, "exceeds the limit of 10000000 octets");
	rcpt_is(c, 1, SMTP_CLIENT_FAILED, 552, "5.3.4", false, NULL);
	counts(c, 0, 0, 2, false);
	quit(c);
	smtp_client_free(&c);

	/* SIZE 0: no limit. */
	c = client(&p);
	ck_assert_int_eq(greet(c, "250-mx\r\n250 SIZE 0\r\n"), NONE);
	out_is(c, "MAIL FROM:<alice@example.net> SIZE=20000000\r\n");
	smtp_client_free(&c);
}
END_TEST

START_TEST(eightbit_to_7bit_server)
{
	split = _i;
	struct smtp_client_params p = params(&rcpt_b, 1);
	p.eightbit = true;
	struct smtp_client *c = client(&p);

	ck_assert_int_eq(greet(c, "250-mx\r\n250 PIPELINING\r\n"), NONE);
	rcpt_is(c, 0, SMTP_CLIENT_FAILED, 554, "5.6.3", false, "does not support 8BITMIME");
	counts(c, 0, 0, 1, false);
	quit(c);
	smtp_client_free(&c);

	/* After HELO there is no 8BITMIME either. */
	c = client(&p);
	ck_assert_int_eq(greet(c, "500 no\r\n"), NONE);
	out_is(c, "HELO client.example.net\r\n");
	ck_assert_int_eq(srv(c, "250 ok\r\n"), NONE);
	rcpt_is(c, 0, SMTP_CLIENT_FAILED, 554, "5.6.3", false, NULL);
	quit(c);
	smtp_client_free(&c);

	/* Offered: BODY=8BITMIME. */
	c = client(&p);
	ck_assert_int_eq(greet(c, EHLO_FULL), NONE);
	out_is(c, "MAIL FROM:<alice@example.net> SIZE=1000 BODY=8BITMIME\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n");
	smtp_client_free(&c);
}
END_TEST

START_TEST(smtputf8_needed)
{
	split = _i;
	struct smtp_client_rcpt r = { "jörg@example.org", 0, NULL };
	struct smtp_client_params p = params(&r, 1);
	p.smtputf8 = true;
	p.eightbit = true;
	struct smtp_client *c = client(&p);

	ck_assert_int_eq(greet(c, EHLO_NOPIPE), NONE);
	rcpt_is(c, 0, SMTP_CLIENT_FAILED, 553, "5.6.7", false, "SMTPUTF8");
	quit(c);
	smtp_client_free(&c);

	c = client(&p);
	ck_assert_int_eq(greet(c, EHLO_FULL), NONE);
	out_is(c, "MAIL FROM:<alice@example.net> SIZE=1000 BODY=8BITMIME SMTPUTF8\r\n"
		  "RCPT TO:<jörg@example.org>\r\nDATA\r\n");
	smtp_client_free(&c);
}
END_TEST

/* ---- per-recipient outcomes ---- */

START_TEST(mixed_recipients)
{
	split = _i;
	struct smtp_client_rcpt r[] = { rcpt_b, rcpt_c, rcpt_d };
	struct smtp_client_params p = params(r, 3);
	struct smtp_client *c = client(&p);

	ck_assert_int_eq(greet(c, EHLO_FULL), NONE);
	out_is(c, "MAIL FROM:<alice@example.net> SIZE=1000\r\nRCPT TO:<bob@example.org>\r\n"
		  "RCPT TO:<carol@example.org>\r\nRCPT TO:<dave@example.org>\r\nDATA\r\n");
	ck_assert_int_eq(srv(c, "250 2.1.0 OK\r\n250 2.1.5 OK\r\n450 4.2.1 Mailbox busy, try later\r\n"
				"550-5.1.1 No such user\r\n550 5.1.1 Check the address\r\n354 go\r\n"),
			 NEED_BODY);
	ck_assert_int_eq(body(c, "hi\n", 0), NONE);
	out_is(c, "hi\r\n.\r\n");
	ck_assert_int_eq(srv(c, "250 2.0.0 queued\r\n"), NONE);
	rcpt_is(c, 0, SMTP_CLIENT_DELIVERED, 250, "2.0.0", true, NULL);
	rcpt_is(c, 1, SMTP_CLIENT_DEFERRED, 450, "4.2.1", true, "450 4.2.1 Mailbox busy, try later");
	rcpt_is(c, 2, SMTP_CLIENT_FAILED, 550, "5.1.1", true, "550 5.1.1 No such user Check the address");
	counts(c, 1, 1, 1, false);
	quit(c);
	smtp_client_free(&c);
}
END_TEST

START_TEST(mixed_recipients_lockstep_and_limit)
{
	split = _i;
	struct smtp_client_rcpt r[] = { rcpt_b, rcpt_c, rcpt_d };
	struct smtp_client_params p = params(r, 3);
	struct smtp_client *c = client(&p);

	ck_assert_int_eq(greet(c, EHLO_NOPIPE), NONE);
	out_is(c, "MAIL FROM:<alice@example.net> SIZE=1000\r\n");
	ck_assert_int_eq(srv(c, "250 ok\r\n"), NONE);
	out_is(c, "RCPT TO:<bob@example.org>\r\n");
	ck_assert_int_eq(srv(c, "550 5.1.1 unknown\r\n"), NONE);
	out_is(c, "RCPT TO:<carol@example.org>\r\n");
	ck_assert_int_eq(srv(c, "250 ok\r\n"), NONE);
	out_is(c, "RCPT TO:<dave@example.org>\r\n");
	/* RFC 5321 4.5.3.1.10: too many recipients, the rest later. */
	ck_assert_int_eq(srv(c, "452 4.5.3 Too many recipients\r\n"), NONE);
	out_is(c, "DATA\r\n");
	ck_assert_int_eq(srv(c, "354 go\r\n"), NEED_BODY);
	ck_assert_int_eq(body(c, "x\n", 0), NONE);
	out_is(c, "x\r\n.\r\n");
	ck_assert_int_eq(srv(c, "250 ok\r\n"), NONE);
	rcpt_is(c, 0, SMTP_CLIENT_FAILED, 550, "5.1.1", true, NULL);
	rcpt_is(c, 1, SMTP_CLIENT_DELIVERED, 250, "2.0.0", true, NULL);
	rcpt_is(c, 2, SMTP_CLIENT_DEFERRED, 452, "4.5.3", true, NULL);
	counts(c, 1, 1, 1, false);
	quit(c);
	smtp_client_free(&c);
}
END_TEST

START_TEST(all_refused)
{
	split = _i;
	struct smtp_client_rcpt r[] = { rcpt_b, rcpt_c };
	struct smtp_client_params p = params(r, 2);
	struct smtp_client *c = client(&p);

	/* Lock-step: no DATA at all. */
	ck_assert_int_eq(greet(c, EHLO_NOPIPE), NONE);
	out_is(c, "MAIL FROM:<alice@example.net> SIZE=1000\r\n");
	ck_assert_int_eq(srv(c, "250 ok\r\n"), NONE);
	out_is(c, "RCPT TO:<bob@example.org>\r\n");
	ck_assert_int_eq(srv(c, "550 5.1.1 no\r\n"), NONE);
	out_is(c, "RCPT TO:<carol@example.org>\r\n");
	ck_assert_int_eq(srv(c, "450 4.1.1 later\r\n"), NONE);
	rcpt_is(c, 0, SMTP_CLIENT_FAILED, 550, "5.1.1", true, NULL);
	rcpt_is(c, 1, SMTP_CLIENT_DEFERRED, 450, "4.1.1", true, NULL);
	counts(c, 0, 1, 1, false);
	quit(c);
	smtp_client_free(&c);

	/* Pipelined: the DATA already sent is refused; outcomes stay the
	 * recipients' own. */
	c = client(&p);
	ck_assert_int_eq(greet(c, EHLO_FULL), NONE);
	out_is(c, "MAIL FROM:<alice@example.net> SIZE=1000\r\nRCPT TO:<bob@example.org>\r\n"
		  "RCPT TO:<carol@example.org>\r\nDATA\r\n");
	ck_assert_int_eq(srv(c, "250 ok\r\n550 5.1.1 no\r\n550 5.1.1 no\r\n554 5.5.1 No valid recipients\r\n"), NONE);
	rcpt_is(c, 0, SMTP_CLIENT_FAILED, 550, "5.1.1", true, "550 5.1.1 no");
	rcpt_is(c, 1, SMTP_CLIENT_FAILED, 550, "5.1.1", true, "550 5.1.1 no");
	quit(c);
	smtp_client_free(&c);

	/* A server that says 354 anyway gets a lone dot (RFC 2920 3.1). */
	c = client(&p);
	ck_assert_int_eq(greet(c, EHLO_FULL), NONE);
	out_is(c, "MAIL FROM:<alice@example.net> SIZE=1000\r\nRCPT TO:<bob@example.org>\r\n"
		  "RCPT TO:<carol@example.org>\r\nDATA\r\n");
	ck_assert_int_eq(srv(c, "250 ok\r\n550 no\r\n550 no\r\n354 go\r\n"), NONE);
	out_is(c, ".\r\n");
	ck_assert_int_eq(srv(c, "554 no message\r\n"), NONE);
	rcpt_is(c, 0, SMTP_CLIENT_FAILED, 550, "5.0.0", true, "550 no");
	counts(c, 0, 0, 2, false);
	quit(c);
	smtp_client_free(&c);
}
END_TEST

START_TEST(mail_refused)
{
	split = _i;
	struct smtp_client_rcpt r[] = { rcpt_b, rcpt_c };
	struct smtp_client_params p = params(r, 2);
	struct smtp_client *c = client(&p);

	/* 5xx to MAIL fails everyone; the pipelined 503s mean nothing. */
	ck_assert_int_eq(greet(c, EHLO_FULL), NONE);
	out_is(c, "MAIL FROM:<alice@example.net> SIZE=1000\r\nRCPT TO:<bob@example.org>\r\n"
		  "RCPT TO:<carol@example.org>\r\nDATA\r\n");
	ck_assert_int_eq(srv(c, "553 5.7.1 Sender rejected\r\n503 5.5.1 need MAIL\r\n503 5.5.1 need MAIL\r\n"
				"503 5.5.1 need MAIL\r\n"),
			 NONE);
	rcpt_is(c, 0, SMTP_CLIENT_FAILED, 553, "5.7.1", true, "Sender rejected");
	rcpt_is(c, 1, SMTP_CLIENT_FAILED, 553, "5.7.1", true, "Sender rejected");
	counts(c, 0, 0, 2, false);
	quit(c);
	smtp_client_free(&c);

	/* 4xx to MAIL, lock-step: deferred, site-wide. */
	c = client(&p);
	ck_assert_int_eq(greet(c, EHLO_NOPIPE), NONE);
	out_is(c, "MAIL FROM:<alice@example.net> SIZE=1000\r\n");
	ck_assert_int_eq(srv(c, "451 4.7.1 Greylisted\r\n"), NONE);
	rcpt_is(c, 1, SMTP_CLIENT_DEFERRED, 451, "4.7.1", true, "Greylisted");
	counts(c, 0, 2, 0, true);
	quit(c);
	smtp_client_free(&c);
}
END_TEST

START_TEST(data_4xx)
{
	split = _i;
	struct smtp_client_rcpt r[] = { rcpt_b, rcpt_c };
	struct smtp_client_params p = params(r, 2);
	struct smtp_client *c = client(&p);

	ck_assert_int_eq(greet(c, EHLO_FULL), NONE);
	out_is(c, "MAIL FROM:<alice@example.net> SIZE=1000\r\nRCPT TO:<bob@example.org>\r\n"
		  "RCPT TO:<carol@example.org>\r\nDATA\r\n");
	ck_assert_int_eq(srv(c, "250 ok\r\n250 ok\r\n550 5.1.1 no\r\n451 4.3.0 Try again later\r\n"), NONE);
	rcpt_is(c, 0, SMTP_CLIENT_DEFERRED, 451, "4.3.0", true, "Try again later");
	rcpt_is(c, 1, SMTP_CLIENT_FAILED, 550, "5.1.1", true, NULL);
	counts(c, 0, 1, 1, false);
	quit(c);
	smtp_client_free(&c);
}
END_TEST

START_TEST(end_of_data_5xx)
{
	split = _i;
	struct smtp_client_rcpt r[] = { rcpt_b, rcpt_c };
	struct smtp_client_params p = params(r, 2);
	struct smtp_client *c = client(&p);

	ck_assert_int_eq(greet(c, EHLO_FULL), NONE);
	out_is(c, "MAIL FROM:<alice@example.net> SIZE=1000\r\nRCPT TO:<bob@example.org>\r\n"
		  "RCPT TO:<carol@example.org>\r\nDATA\r\n");
	ck_assert_int_eq(srv(c, "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n"), NEED_BODY);
	ck_assert_int_eq(body(c, "spam\n", 0), NONE);
	out_is(c, "spam\r\n.\r\n");
	ck_assert_int_eq(srv(c, "554-5.7.1 Message rejected\r\n554 5.7.1 as spam\r\n"), NONE);
	rcpt_is(c, 0, SMTP_CLIENT_FAILED, 554, "5.7.1", true, "554 5.7.1 Message rejected as spam");
	rcpt_is(c, 1, SMTP_CLIENT_FAILED, 554, "5.7.1", true, NULL);
	counts(c, 0, 0, 2, false);
	quit(c);
	smtp_client_free(&c);

	/* And 4xx at the end of data defers them. */
	c = client(&p);
	ck_assert_int_eq(greet(c, EHLO_FULL), NONE);
	out_is(c, "MAIL FROM:<alice@example.net> SIZE=1000\r\nRCPT TO:<bob@example.org>\r\n"
		  "RCPT TO:<carol@example.org>\r\nDATA\r\n");
	ck_assert_int_eq(srv(c, "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n"), NEED_BODY);
	ck_assert_int_eq(body(c, "x", 0), NONE);
	out_is(c, "x\r\n.\r\n");
	ck_assert_int_eq(srv(c, "452 4.3.1 Insufficient system storage\r\n"), NONE);
	counts(c, 0, 2, 0, false);
	quit(c);
	smtp_client_free(&c);
}
END_TEST

/* ---- replies that break the dialogue ---- */

START_TEST(protocol_errors)
{
	split = _i;
	struct smtp_client_params p = params(&rcpt_b, 1);
	struct smtp_client *c = client(&p);

	ck_assert_int_eq(srv(c, "HTTP/1.1 400 Bad Request\r\n"), CLOSE);
	out_is(c, "");
	rcpt_is(c, 0, SMTP_CLIENT_DEFERRED, 451, "4.5.0", false, "protocol error");
	counts(c, 0, 1, 0, true);
	smtp_client_free(&c);

	/* A multi-line reply whose code changes. */
	c = client(&p);
	ck_assert_int_eq(greet(c, "250-mx\r\n251 PIPELINING\r\n"), CLOSE);
	rcpt_is(c, 0, SMTP_CLIENT_DEFERRED, 451, "4.5.0", false, "different codes");
	smtp_client_free(&c);

	/* 421 in the middle of the transaction: no QUIT. */
	c = client(&p);
	ck_assert_int_eq(greet(c, EHLO_NOPIPE), NONE);
	out_is(c, "MAIL FROM:<alice@example.net> SIZE=1000\r\n");
	ck_assert_int_eq(srv(c, "250 ok\r\n"), NONE);
	out_is(c, "RCPT TO:<bob@example.org>\r\n");
	ck_assert_int_eq(srv(c, "421 4.4.2 Timeout, closing\r\n"), CLOSE);
	out_is(c, "");
	rcpt_is(c, 0, SMTP_CLIENT_DEFERRED, 421, "4.4.2", true, NULL);
	smtp_client_free(&c);

	/* The server speaks while the body is going out. */
	c = client(&p);
	ck_assert_int_eq(greet(c, EHLO_FULL), NONE);
	out_is(c, "MAIL FROM:<alice@example.net> SIZE=1000\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n");
	ck_assert_int_eq(srv(c, "250 ok\r\n250 ok\r\n354 go\r\n"), NEED_BODY);
	ck_assert_int_eq(srv(c, "554 5.3.4 too big\r\n"), CLOSE);
	rcpt_is(c, 0, SMTP_CLIENT_DEFERRED, 554, "4.3.4", true, "too big");
	ck_assert_int_eq(smtp_client_body(c, "x", 1, true), CLOSE);
	ck_assert_uint_eq(smtp_client_body_want(c), 0);
	smtp_client_free(&c);

	/* Garbage after the results are final changes nothing. */
	c = client(&p);
	ck_assert_int_eq(greet(c, "250-mx\r\n250 SIZE 10\r\n"), NONE);
	out_is(c, "QUIT\r\n");
	ck_assert_int_eq(srv(c, "\x01\x02\r\n"), CLOSE);
	rcpt_is(c, 0, SMTP_CLIENT_FAILED, 552, "5.3.4", false, NULL);
	smtp_client_free(&c);
}
END_TEST

START_TEST(multiline_every_split)
{
	/* The EHLO reply and the pipelined answers split at every position
	 * into two feeds. */
	static const char ehlo[] = EHLO_FULL;
	static const char answers[] = "250-2.1.0 Sender\r\n250 2.1.0 OK\r\n250 2.1.5 OK\r\n354 go\r\n";
	split = 0;
	for (size_t cut = 0; cut <= strlen(ehlo); cut++) {
		struct smtp_client_params p = params(&rcpt_b, 1);
		struct smtp_client *c = client(&p);
		ck_assert_int_eq(srv(c, GREETING), NONE);
		out_is(c, EHLO_CMD);
		char *a = guard_copy(ehlo, cut);
		ck_assert_int_eq(smtp_client_feed(c, a, cut), NONE);
		guard_free(a, cut);
		if (cut < strlen(ehlo))
			out_is(c, "");
		ck_assert_int_eq(srv(c, ehlo + cut), NONE);
		out_is(c, "MAIL FROM:<alice@example.net> SIZE=1000\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n");
		size_t cut2 = cut % strlen(answers);
		a = guard_copy(answers, cut2);
		ck_assert_int_eq(smtp_client_feed(c, a, cut2), NONE);
		guard_free(a, cut2);
		ck_assert_int_eq(srv(c, answers + cut2), NEED_BODY);
		smtp_client_free(&c);
	}
}
END_TEST

/* ---- the body ---- */

static void body_case(const char *in, const char *want)
{
	size_t len = strlen(in);

	/* Whole, and cut into three pieces at every pair of positions. */
	for (size_t a = 0; a <= len; a++) {
		for (size_t b = a; b <= len; b++) {
			struct smtp_client_params p = params(&rcpt_b, 1);
			struct smtp_client *c = client(&p);
			split = 0;
			ck_assert_int_eq(greet(c, EHLO_FULL), NONE);
			buf_consume(smtp_client_output(c), buf_len(smtp_client_output(c)));
			ck_assert_int_eq(srv(c, "250 ok\r\n250 ok\r\n354 go\r\n"), NEED_BODY);
			size_t cuts[] = { 0, a, b, len };
			for (int k = 0; k < 3; k++) {
				size_t n = cuts[k + 1] - cuts[k];
				char *g = guard_copy(in + cuts[k], n);
				enum smtp_client_action act = smtp_client_body(c, g, n, k == 2);
				guard_free(g, n);
				ck_assert_int_eq(act, k == 2 ? NONE : NEED_BODY);
			}
			out_is(c, want);
			smtp_client_free(&c);
		}
	}
}

START_TEST(dot_stuffing_and_crlf)
{
	/* LF -> CRLF, leading dots doubled, a dot inside a line left alone. */
	body_case("a\n.b\n..c\nd.e\n.\n", "a\r\n..b\r\n...c\r\nd.e\r\n..\r\n.\r\n");
	/* CRLF in the file stays one line end. */
	body_case("a\r\n.b\r\n", "a\r\n..b\r\n.\r\n");
	/* A lone CR is a line break, and what follows it a line start. */
	body_case("a\r.\rb", "a\r\n..\r\nb\r\n.\r\n");
	/* "\n.\n" smuggling attempts come out stuffed. */
	body_case("x\n.\r\nMAIL FROM:<evil>\n", "x\r\n..\r\nMAIL FROM:<evil>\r\n.\r\n");
	/* No final line end: one is added. Empty: just the dot. */
	body_case("no newline", "no newline\r\n.\r\n");
	body_case("", ".\r\n");
	body_case(".", "..\r\n.\r\n");
	body_case("\n\n", "\r\n\r\n.\r\n");
	body_case("\r", "\r\n.\r\n");
	body_case("\r\r\n", "\r\n\r\n.\r\n");
}
END_TEST

START_TEST(body_chunk_limit)
{
	struct smtp_client_params p = params(&rcpt_b, 1);
	struct smtp_client *c = client(&p);
	split = 0;

	ck_assert_uint_eq(smtp_client_body_want(c), 0);
	ck_assert_int_eq(smtp_client_body(c, "x", 1, false), NONE); /* not now: ignored */
	ck_assert_int_eq(greet(c, EHLO_FULL), NONE);
	buf_consume(smtp_client_output(c), buf_len(smtp_client_output(c)));
	ck_assert_int_eq(srv(c, "250 ok\r\n250 ok\r\n354 go\r\n"), NEED_BODY);
	/* A full chunk of line ends doubles; still fits. */
	char *big = malloc(SMTP_CLIENT_BODY_CHUNK + 1);
	memset(big, '\n', SMTP_CLIENT_BODY_CHUNK + 1);
	ck_assert_int_eq(smtp_client_body(c, big, SMTP_CLIENT_BODY_CHUNK, false), NEED_BODY);
	ck_assert_uint_eq(buf_len(smtp_client_output(c)), 2 * SMTP_CLIENT_BODY_CHUNK);
	buf_consume(smtp_client_output(c), buf_len(smtp_client_output(c)));
	/* More than asked for: a local error, deferred. */
	ck_assert_int_eq(smtp_client_body(c, big, SMTP_CLIENT_BODY_CHUNK + 1, false), CLOSE);
	rcpt_is(c, 0, SMTP_CLIENT_DEFERRED, 451, "4.3.0", false, "local error");
	free(big);
	smtp_client_free(&c);
}
END_TEST

/* ---- the connection fails ---- */

START_TEST(connection_failures)
{
	split = _i;
	struct smtp_client_rcpt r[] = { rcpt_b, rcpt_c };
	struct smtp_client_params p = params(r, 2);
	struct smtp_client *c = client(&p);

	/* Refused before anything. */
	ck_assert_int_eq(smtp_client_fail(c, SMTP_CLIENT_FAIL_CONNECT, "Connection refused"), CLOSE);
	rcpt_is(c, 0, SMTP_CLIENT_DEFERRED, 451, "4.4.1", false,
		"connect to mx.example.org[192.0.2.1] failed: Connection refused");
	counts(c, 0, 2, 0, true);
	smtp_client_free(&c);

	/* Lost after one recipient was accepted: both deferred. */
	c = client(&p);
	ck_assert_int_eq(greet(c, EHLO_NOPIPE), NONE);
	out_is(c, "MAIL FROM:<alice@example.net> SIZE=1000\r\n");
	ck_assert_int_eq(srv(c, "250 ok\r\n"), NONE);
	out_is(c, "RCPT TO:<bob@example.org>\r\n");
	ck_assert_int_eq(srv(c, "250 ok\r\n"), NONE);
	out_is(c, "RCPT TO:<carol@example.org>\r\n");
	ck_assert_int_eq(smtp_client_fail(c, SMTP_CLIENT_FAIL_CLOSED, NULL), CLOSE);
	rcpt_is(c, 0, SMTP_CLIENT_DEFERRED, 451, "4.4.2", false, "lost connection with mx.example.org[192.0.2.1] after RCPT TO");
	rcpt_is(c, 1, SMTP_CLIENT_DEFERRED, 451, "4.4.2", false, NULL);
	counts(c, 0, 2, 0, false);
	ck_assert_int_eq(smtp_client_fail(c, SMTP_CLIENT_FAIL_TIMEOUT, NULL), CLOSE); /* no change */
	rcpt_is(c, 0, SMTP_CLIENT_DEFERRED, 451, "4.4.2", false, "lost connection");
	smtp_client_free(&c);

	/* A timeout after the final dot: deferred (RFC 5321 6.1 prefers a
	 * duplicate to a loss). */
	c = client(&p);
	ck_assert_int_eq(greet(c, EHLO_FULL), NONE);
	buf_consume(smtp_client_output(c), buf_len(smtp_client_output(c)));
	ck_assert_int_eq(srv(c, "250 ok\r\n250 ok\r\n550 no\r\n354 go\r\n"), NEED_BODY);
	ck_assert_int_eq(body(c, "x\n", 0), NONE);
	ck_assert_int_eq(smtp_client_fail(c, SMTP_CLIENT_FAIL_TIMEOUT, NULL), CLOSE);
	rcpt_is(c, 0, SMTP_CLIENT_DEFERRED, 451, "4.4.2", false, "timeout after end of data");
	rcpt_is(c, 1, SMTP_CLIENT_FAILED, 550, "5.0.0", true, NULL);
	smtp_client_free(&c);

	/* After the results are final, a failure (during QUIT) changes nothing. */
	c = client(&p);
	ck_assert_int_eq(greet(c, EHLO_FULL), NONE);
	buf_consume(smtp_client_output(c), buf_len(smtp_client_output(c)));
	ck_assert_int_eq(srv(c, "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n"), NEED_BODY);
	ck_assert_int_eq(body(c, "x\n", 0), NONE);
	ck_assert_int_eq(srv(c, "250 ok\r\n"), NONE);
	ck_assert_int_eq(smtp_client_fail(c, SMTP_CLIENT_FAIL_CLOSED, "reset"), CLOSE);
	counts(c, 2, 0, 0, false);
	smtp_client_free(&c);
}
END_TEST

START_TEST(timeouts)
{
	struct smtp_client_params p = params(&rcpt_b, 1);
	p.timeouts.greeting_ms = 1000;
	p.timeouts.data_term_ms = 7000;
	struct smtp_client *c = client(&p);
	split = 0;

	ck_assert_uint_eq(smtp_client_timeout_ms(c), 1000);
	ck_assert_int_eq(srv(c, GREETING), NONE);
	ck_assert_uint_eq(smtp_client_timeout_ms(c), 5 * 60 * 1000); /* EHLO: command_ms default */
	ck_assert_int_eq(srv(c, EHLO_FULL), NONE);
	ck_assert_uint_eq(smtp_client_timeout_ms(c), 5 * 60 * 1000); /* MAIL */
	ck_assert_int_eq(srv(c, "250 ok\r\n"), NONE);
	ck_assert_uint_eq(smtp_client_timeout_ms(c), 5 * 60 * 1000); /* RCPT */
	ck_assert_int_eq(srv(c, "250 ok\r\n"), NONE);
	ck_assert_uint_eq(smtp_client_timeout_ms(c), 2 * 60 * 1000); /* DATA */
	ck_assert_int_eq(smtp_client_fail(c, SMTP_CLIENT_FAIL_TIMEOUT, NULL), CLOSE);
	rcpt_is(c, 0, SMTP_CLIENT_DEFERRED, 451, "4.4.2", false, "timeout after DATA");
	smtp_client_free(&c);

	c = client(&p);
	ck_assert_int_eq(srv(c, GREETING EHLO_FULL "250 ok\r\n250 ok\r\n354 go\r\n"), NEED_BODY);
	ck_assert_int_eq(body(c, "x", 0), NONE);
	ck_assert_uint_eq(smtp_client_timeout_ms(c), 7000);
	smtp_client_free(&c);

	struct smtp_client_timeouts t;
	smtp_client_timeouts_default(&t);
	ck_assert_uint_eq(t.greeting_ms, 300000);
	ck_assert_uint_eq(t.mail_ms, 300000);
	ck_assert_uint_eq(t.rcpt_ms, 300000);
	ck_assert_uint_eq(t.data_init_ms, 120000);
	ck_assert_uint_eq(t.data_block_ms, 180000);
	ck_assert_uint_eq(t.data_term_ms, 600000);
}
END_TEST

/* ---- DSN parameters ---- */

START_TEST(dsn_parameters)
{
	split = _i;
	struct smtp_client_rcpt r[] = {
		{ "bob@example.org", SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY, "rfc822;Bob+x=y@example.org" },
		{ "carol@example.org", SMTP_NOTIFY_NEVER, NULL },
		{ "dave@example.org", SMTP_NOTIFY_SUCCESS, "rfc822;dave@example.org" },
	};
	struct smtp_client_params p = params(r, 3);
	p.ret = SMTP_RET_HDRS;
	p.envid = "QQ 123+=";
	struct smtp_client *c = client(&p);

	ck_assert_int_eq(greet(c, "250-mx\r\n250-DSN\r\n250 PIPELINING\r\n"), NONE);
	out_is(c, "MAIL FROM:<alice@example.net> RET=HDRS ENVID=QQ+20123+2B+3D\r\n"
		  "RCPT TO:<bob@example.org> NOTIFY=FAILURE,DELAY ORCPT=rfc822;Bob+2Bx+3Dy@example.org\r\n"
		  "RCPT TO:<carol@example.org> NOTIFY=NEVER\r\n"
		  "RCPT TO:<dave@example.org> NOTIFY=SUCCESS ORCPT=rfc822;dave@example.org\r\n"
		  "DATA\r\n");
	smtp_client_free(&c);

	/* Without DSN they are left out. */
	c = client(&p);
	ck_assert_int_eq(greet(c, "250-mx\r\n250 PIPELINING\r\n"), NONE);
	out_is(c, "MAIL FROM:<alice@example.net>\r\nRCPT TO:<bob@example.org>\r\nRCPT TO:<carol@example.org>\r\n"
		  "RCPT TO:<dave@example.org>\r\nDATA\r\n");
	smtp_client_free(&c);

	/* The null sender. */
	p.sender = "";
	p.ret = SMTP_RET_FULL;
	p.envid = NULL;
	c = client(&p);
	ck_assert_int_eq(greet(c, "250-mx\r\n250-DSN\r\n250 PIPELINING\r\n"), NONE);
	struct buf *o = smtp_client_output(c);
	ck_assert(buf_len(o) > 30 && memcmp(buf_ptr(o), "MAIL FROM:<> RET=FULL\r\n", 23) == 0);
	smtp_client_free(&c);
}
END_TEST

START_TEST(bad_parameters)
{
	struct smtp_client_rcpt good = rcpt_b;
	struct smtp_client_rcpt bad_addr[] = {
		{ "bob@example.org\r\nRSET", 0, NULL },
		{ "bob@example.org> SIZE=1", 0, NULL },
		{ "bob @example.org", 0, NULL },
		{ "", 0, NULL },
		{ "bob@example.org", 0, "noSemicolon" },
		{ "bob@example.org", 0, ";empty-type" },
		{ "bob@example.org", 0, "bad type;x" },
	};
	const char *err = NULL;

	for (size_t i = 0; i < sizeof(bad_addr) / sizeof(bad_addr[0]); i++) {
		struct smtp_client_params p = params(&bad_addr[i], 1);
		ck_assert_ptr_null(smtp_client_new(&p, &err));
		ck_assert_ptr_nonnull(err);
	}
	struct smtp_client_params p = params(&good, 1);
	p.sender = "a\nb";
	ck_assert_ptr_null(smtp_client_new(&p, &err));
	p = params(&good, 0);
	ck_assert_ptr_null(smtp_client_new(&p, &err));
	ck_assert_str_eq(err, "no recipients");
	p = params(&good, 1);
	p.ehlo_name = "two words";
	ck_assert_ptr_null(smtp_client_new(&p, &err));
	p = params(&good, 1);
	char envid[102];
	memset(envid, 'e', 101);
	envid[101] = '\0';
	p.envid = envid;
	ck_assert_ptr_null(smtp_client_new(&p, &err));
	envid[100] = '\0'; /* 100 is the limit (RFC 3461 4.4) */
	struct smtp_client *c = smtp_client_new(&p, &err);
	ck_assert_ptr_nonnull(c);
	smtp_client_free(&c);
	p = params(&good, 1);
	p.auth_user = "alice";
	ck_assert_ptr_null(smtp_client_new(&p, &err));
	p.auth_password = "";
	c = smtp_client_new(&p, &err); /* an empty password is the server's to refuse */
	ck_assert_ptr_nonnull(c);
	smtp_client_free(&c);
	smtp_client_free(&c); /* twice is fine */
}
END_TEST

static Suite *smtp_client_suite(void)
{
	Suite *s = suite_create("smtp_client");
	TCase *tc = tcase_create("dialogues");

	tcase_add_loop_test(tc, esmtp_pipelining, 0, 2);
	tcase_add_loop_test(tc, esmtp_lockstep, 0, 2);
	tcase_add_loop_test(tc, helo_fallback, 0, 2);
	tcase_add_loop_test(tc, helo_refused_too, 0, 2);
	tcase_add_loop_test(tc, greeting_refused, 0, 2);
	tcase_add_loop_test(tc, starttls_opportunistic, 0, 2);
	tcase_add_loop_test(tc, starttls_opportunistic_fallbacks, 0, 2);
	tcase_add_loop_test(tc, starttls_require, 0, 2);
	tcase_add_loop_test(tc, starttls_none_and_implicit, 0, 2);
	tcase_add_loop_test(tc, auth_plain, 0, 2);
	tcase_add_loop_test(tc, auth_login, 0, 2);
	tcase_add_loop_test(tc, auth_refusals, 0, 2);
	tcase_add_loop_test(tc, size_refusal, 0, 2);
	tcase_add_loop_test(tc, eightbit_to_7bit_server, 0, 2);
	tcase_add_loop_test(tc, smtputf8_needed, 0, 2);
	tcase_add_loop_test(tc, mixed_recipients, 0, 2);
	tcase_add_loop_test(tc, mixed_recipients_lockstep_and_limit, 0, 2);
	tcase_add_loop_test(tc, all_refused, 0, 2);
	tcase_add_loop_test(tc, mail_refused, 0, 2);
	tcase_add_loop_test(tc, data_4xx, 0, 2);
	tcase_add_loop_test(tc, end_of_data_5xx, 0, 2);
	tcase_add_loop_test(tc, protocol_errors, 0, 2);
	tcase_add_test(tc, multiline_every_split);
	tcase_add_loop_test(tc, connection_failures, 0, 2);
	tcase_add_test(tc, timeouts);
	tcase_add_loop_test(tc, dsn_parameters, 0, 2);
	tcase_add_test(tc, bad_parameters);
	suite_add_tcase(s, tc);
	tc = tcase_create("body");
	tcase_add_test(tc, dot_stuffing_and_crlf);
	tcase_add_test(tc, body_chunk_limit);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run(smtp_client_suite());
}
