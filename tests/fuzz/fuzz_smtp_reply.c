/*
 * Fuzz target for the SMTP client: its reply parser (smtp/client_reply.c)
 * and its state machine (smtp/client.c) fed arbitrary server bytes.
 *
 * Input: two option bytes, then what the server sends.
 *   byte 0 bit 0     0: the reply parser alone; 1: the whole client
 *          bits 1-2  TLS mode: none, opportunistic, require, implicit
 *          bit 3     AUTH with a user and password
 *          bit 4     AUTH allowed without TLS
 *          bit 5     the message is 8-bit
 *          bit 6     the message needs SMTPUTF8
 *          bit 7     the message is 20 MB (meets SIZE limits)
 *   byte 1 bits 0-5  chunk size - 1 (the server's bytes arrive in pieces)
 *          bit 6     the TLS handshake fails when asked for
 *          bit 7     three recipients with DSN parameters, else one
 *
 * Parser mode checks every reply against the contract in client_reply.h
 * (codes 2-5/0-5/0-9, line and reply limits, lines are C strings of their
 * length, enhanced codes agree with the reply's class, summaries are
 * printable ASCII) and that parsing in pieces gives the very replies and
 * the very error of parsing whole. Client mode performs every action the
 * way the glue would (STARTTLS: handshake done or failed; NEED_BODY: the
 * message in pieces) and checks that the output is CRLF-only, that the
 * client ends with every recipient decided exactly once, and that the
 * counts add up. Every piece is copied to a buffer of its exact size, so
 * AddressSanitizer catches an over-read.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/client.h"
#include "smtp/client_reply.h"

#define CHECK(cond) do { if (!(cond)) { \
	fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
	abort(); } } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_REPLIES 4096

struct seen {
	size_t n;
	unsigned codes[MAX_REPLIES];
	uint32_t sums[MAX_REPLIES];  /* a hash of each reply's summary */
	const char *error;
};

static uint32_t fnv(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h;
}

static void check_reply(const struct smtp_reply *r)
{
	size_t text = 0;
	char sum[SMTP_REPLY_TEXT_MAX + 8];

	CHECK(r->code >= 200 && r->code <= 559);
	CHECK(r->code / 10 % 10 <= 5);
	CHECK(r->n_lines >= 1 && r->n_lines <= SMTP_REPLY_LINES_MAX);
	CHECK(r->esc.cls == 0 || r->esc.cls == r->code / 100);
	for (size_t i = 0; i < r->n_lines; i++) {
		const struct smtp_reply_line *l = &r->lines[i];
		CHECK(strlen(l->text) == l->len);
		CHECK(l->len + 4 + 1 <= SMTP_REPLY_LINE_MAX);
		CHECK(memchr(l->text, '\n', l->len) == NULL);
		CHECK(l->esc_len <= l->len);
		CHECK(l->esc.cls == 0 || l->esc.cls == r->code / 100);
		CHECK((l->esc.cls == 0) == (l->esc_len == 0));
		CHECK(l->esc.subject <= 999 && l->esc.detail <= 999);
		text += l->len;
	}
	CHECK(text <= SMTP_REPLY_TEXT_MAX);
	size_t n = smtp_reply_summary(r, sum, sizeof(sum));
	CHECK(n == strlen(sum) && n >= 3);
	for (size_t i = 0; i < n; i++)
		CHECK(sum[i] >= ' ' && sum[i] < 0x7f);
	struct smtp_ehlo e;
	smtp_ehlo_parse(r, &e);
	CHECK(e.auth_mechs == 0 || e.auth);
	char esc[12];
	smtp_esc_format(&r->esc, esc);
	CHECK(strlen(esc) < 12);
}

/* Parse data in pieces of `chunk`, recording what comes out. */
static void parse_run(const uint8_t *data, size_t size, size_t chunk, struct seen *s)
{
	struct smtp_reply_parser *p = smtp_reply_parser_new();

	memset(s, 0, sizeof(*s));
	for (size_t off = 0; off < size && s->error == NULL;) {
		size_t n = size - off < chunk ? size - off : chunk;
		char *piece = malloc(n ? n : 1);
		memcpy(piece, data + off, n);
		size_t pos = 0;
		while (pos < n) {
			struct smtp_reply r;
			size_t used = 0;
			const char *err = NULL;
			enum smtp_reply_status st = smtp_reply_parse(p, piece + pos, n - pos, &used, &r, &err);
			CHECK(used <= n - pos);
			pos += used;
			if (st == SMTP_REPLY_ERROR) {
				CHECK(err != NULL);
				s->error = err;
				/* sticky */
				CHECK(smtp_reply_parse(p, "250 x\r\n", 7, &used, &r, NULL) == SMTP_REPLY_ERROR);
				break;
			}
			if (st == SMTP_REPLY_NEED_MORE) {
				CHECK(pos == n);
				break;
			}
			CHECK(used > 0);
			check_reply(&r);
			char sum[256];
			smtp_reply_summary(&r, sum, sizeof(sum));
			if (s->n < MAX_REPLIES) {
				s->codes[s->n] = r.code;
				s->sums[s->n] = fnv(sum);
			}
			s->n++;
		}
		free(piece);
		off += n;
	}
	smtp_reply_parser_free(&p);
	CHECK(p == NULL);
}

static void fuzz_parser(const uint8_t *data, size_t size, size_t chunk)
{
	static struct seen whole, pieces;

	parse_run(data, size, size ? size : 1, &whole);
	parse_run(data, size, chunk, &pieces);
	CHECK(whole.n == pieces.n);
	CHECK((whole.error == NULL) == (pieces.error == NULL));
	if (whole.error != NULL)
		CHECK(strcmp(whole.error, pieces.error) == 0);
	for (size_t i = 0; i < whole.n && i < MAX_REPLIES; i++) {
		CHECK(whole.codes[i] == pieces.codes[i]);
		CHECK(whole.sums[i] == pieces.sums[i]);
	}
}

/* Our output is commands and CRLF-terminated body lines: every LF has a
 * CR before it and no CR stands alone; take it and check the trace hook. */
static void drain(struct smtp_client *c, bool *cr_pending)
{
	struct buf *o = smtp_client_output(c);
	const char *p = buf_ptr(o);
	size_t len = buf_len(o);

	for (size_t i = 0; i < len; i++) {
		if (*cr_pending)
			CHECK(p[i] == '\n');
		else
			CHECK(p[i] != '\n');
		*cr_pending = p[i] == '\r';
	}
	for (size_t i = 0; i < len;) {
		const char *eol = memchr(p + i, '\n', len - i);
		size_t n = eol ? (size_t)(eol - (p + i)) : len - i;
		CHECK(smtp_client_trace_visible(c, p + i, n) <= n);
		i += n + 1;
	}
	buf_consume(o, len);
}

static const char BODY[] = "From: a@example.net\nSubject: fuzz\n\n.leading dot\r\n..two\n\rlone cr\n.\nend";

static void fuzz_client(const uint8_t *data, size_t size, uint8_t f0, uint8_t f1, size_t chunk)
{
	static const struct smtp_client_rcpt one[] = { { "bob@example.org", 0, NULL } };
	static const struct smtp_client_rcpt three[] = {
		{ "bob@example.org", SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY, "rfc822;Bob+=@example.org" },
		{ "carol@example.org", SMTP_NOTIFY_NEVER, NULL },
		{ "d\xc3\xa9@example.org", SMTP_NOTIFY_SUCCESS, "utf-8;d\xc3\xa9@example.org" },
	};
	struct smtp_client_params p = {
		.ehlo_name = "client.example.net",
		.server = "mx.example.org[192.0.2.1]",
		.tls = (enum smtp_client_tls)((f0 >> 1) & 3),
		.tls_active = ((f0 >> 1) & 3) == SMTP_CLIENT_TLS_IMPLICIT,
		.auth_user = (f0 & 0x08) ? "alice" : NULL,
		.auth_password = (f0 & 0x08) ? "secret" : NULL,
		.auth_plaintext = (f0 & 0x10) != 0,
		.eightbit = (f0 & 0x20) != 0,
		.smtputf8 = (f0 & 0x40) != 0,
		.size = (f0 & 0x80) ? 20000000 : sizeof(BODY),
		.sender = (f1 & 0x80) ? "" : "alice@example.net",
		.rcpts = (f1 & 0x80) ? three : one,
		.n_rcpts = (f1 & 0x80) ? 3 : 1,
		.ret = (f1 & 0x80) ? SMTP_RET_HDRS : SMTP_RET_UNSET,
		.envid = (f1 & 0x80) ? "env id+1" : NULL,
	};
	const char *err = NULL;
	struct smtp_client *c = smtp_client_new(&p, &err);
	CHECK(c != NULL);
	bool cr_pending = false, closed = false, tls_failed = false;
	enum smtp_client_action a = SMTP_CLIENT_ACTION_NONE;

	CHECK(smtp_client_timeout_ms(c) > 0);
	for (size_t off = 0; off < size && !closed;) {
		size_t n = size - off < chunk ? size - off : chunk;
		char *piece = malloc(n);
		memcpy(piece, data + off, n);
		a = smtp_client_feed(c, piece, n);
		free(piece);
		off += n;
		for (;;) {
			drain(c, &cr_pending);
			if (a == SMTP_CLIENT_ACTION_START_TLS) {
				if (f1 & 0x40) {
					a = smtp_client_fail(c, SMTP_CLIENT_FAIL_TLS, "handshake failure");
					CHECK(a == SMTP_CLIENT_ACTION_CLOSE);
					tls_failed = true;
				} else {
					a = smtp_client_tls_done(c);
				}
				continue;
			}
			if (a == SMTP_CLIENT_ACTION_NEED_BODY) {
				size_t want = smtp_client_body_want(c);
				CHECK(want > 0);
				size_t bo = 0;
				while (a == SMTP_CLIENT_ACTION_NEED_BODY) {
					size_t left = sizeof(BODY) - 1 - bo;
					size_t k = left < 7 ? left : 7;
					a = smtp_client_body(c, BODY + bo, k, bo + k == sizeof(BODY) - 1);
					bo += k;
					drain(c, &cr_pending);
				}
				continue;
			}
			break;
		}
		if (a == SMTP_CLIENT_ACTION_CLOSE)
			closed = true;
		else
			CHECK(smtp_client_timeout_ms(c) > 0);
	}
	if (!closed) {
		/* The server stopped talking: the glue's timer or a close. */
		a = smtp_client_fail(c, (size & 1) ? SMTP_CLIENT_FAIL_TIMEOUT : SMTP_CLIENT_FAIL_CLOSED, NULL);
		CHECK(a == SMTP_CLIENT_ACTION_CLOSE);
	}
	CHECK(smtp_client_done(c));
	CHECK(smtp_client_timeout_ms(c) == 0);
	struct smtp_client_summary s;
	smtp_client_summary(c, &s);
	CHECK(s.done);
	CHECK(s.delivered + s.deferred + s.failed == p.n_rcpts);
	CHECK(!s.site || s.deferred > 0);
	CHECK(!tls_failed || s.tls_failed);
	for (size_t i = 0; i < p.n_rcpts; i++) {
		const struct smtp_client_result *r = smtp_client_rcpt_result(c, i);
		CHECK(r != NULL && r->outcome != SMTP_CLIENT_PENDING && r->text != NULL);
		CHECK(strlen(r->text) <= SMTP_CLIENT_TEXT_MAX);
		CHECK(strlen(r->status) >= 5 && r->status[1] == '.');
		char want = r->outcome == SMTP_CLIENT_DELIVERED ? '2' : r->outcome == SMTP_CLIENT_FAILED ? '5' : '4';
		CHECK(r->status[0] == want);
		CHECK(r->code >= 200 && r->code <= 559);
		/* Delivered only on a 2xx from the server. */
		CHECK(r->outcome != SMTP_CLIENT_DELIVERED || (r->remote && r->code / 100 == 2));
	}
	CHECK(smtp_client_rcpt_result(c, p.n_rcpts) == NULL);
	/* Late calls change nothing. */
	CHECK(smtp_client_feed(c, "250 ok\r\n", 8) != SMTP_CLIENT_ACTION_NEED_BODY);
	CHECK(smtp_client_body(c, "x", 1, true) != SMTP_CLIENT_ACTION_NEED_BODY);
	struct smtp_client_summary s2;
	smtp_client_summary(c, &s2);
	CHECK(s2.delivered == s.delivered && s2.deferred == s.deferred && s2.failed == s.failed);
	smtp_client_free(&c);
	CHECK(c == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	uint8_t f0 = data[0], f1 = data[1];
	size_t chunk = (size_t)(f1 & 0x3f) + 1;
	data += 2;
	size -= 2;
	if (f0 & 1)
		fuzz_client(data, size, f0, f1, chunk);
	else
		fuzz_parser(data, size, chunk);
	return 0;
}
