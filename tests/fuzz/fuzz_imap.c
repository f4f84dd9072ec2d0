/*
 * Fuzz the IMAP session over the in-memory backend of the unit tests
 * (tests/unit/test_imap_fake.h): arbitrary client bytes in arbitrary
 * chunks, every effect carried out as the glue would - STARTTLS completes
 * at once, waits end when the fake's callbacks run, long replies drain -
 * and deliveries arriving between feeds, so IDLE and the change reports
 * run too. INBOX starts with messages that stress FETCH and SEARCH (MIME
 * parts, no header end, lone CR and LF, 8-bit, an empty one) and a keyword.
 *
 * Byte 0: bit 0 implicit TLS (imaps), bit 1 a non-loopback peer, bit 2
 * small limits (64-octet literals, 1 KiB lines, 5 bad commands), bit 3 a
 * delivery to INBOX after every feed, bit 4 every change fails
 * (IMAP_TEMPFAIL). Byte 1: the feed chunk size minus one; 255 means the
 * input is cut once, at the offset byte 2 gives (as a fraction of it).
 *
 * Checks: no crash, leak or over-read; every LF the server sends outside
 * a literal follows a CR; once the session is gone it holds no account, mailbox or message
 * reader of the backend.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/session.h"
#include "imap/imap_session.h"
#include "../unit/test_imap_fake.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The server's output as a stream: lines end in CRLF, except inside
 * literals ("{n}" CRLF, then n octets of anything: a partial FETCH may
 * start or end between a CR and its LF). */
struct out_check {
	bool prev_cr;
	uint64_t literal_left;
	char tail[24];          /* the end of the current line */
	size_t tail_len;
};

/* Whether the line so far ends in "{digits}" CR: *n_r is the number. */
static bool literal_announced(const struct out_check *c, uint64_t *n_r)
{
	size_t i = c->tail_len;

	if (i < 4 || c->tail[i - 1] != '\r' || c->tail[i - 2] != '}')
		return false;
	uint64_t n = 0, mul = 1;
	for (i -= 3; i > 0 && c->tail[i] >= '0' && c->tail[i] <= '9'; i--) {
		n += (uint64_t)(c->tail[i] - '0') * mul;
		mul *= 10;
	}
	if (c->tail[i] != '{' || i + 3 == c->tail_len)
		return false;
	*n_r = n;
	return true;
}

static void check_output(struct session *s, struct out_check *c)
{
	struct buf *out = session_output(s);
	const char *p = buf_ptr(out), *end = p + buf_len(out);

	while (p < end) {
		if (c->literal_left > 0) {
			size_t n = (uint64_t)(end - p) < c->literal_left ? (size_t)(end - p) : (size_t)c->literal_left;
			p += n;
			c->literal_left -= n;
			c->prev_cr = false;
			continue;
		}
		/* memchr, not a byte loop: the loop's compares would be
		 * traced. */
		const char *lf = memchr(p, '\n', (size_t)(end - p));
		const char *stop = lf != NULL ? lf : end;
		size_t run = (size_t)(stop - p);
		if (run >= sizeof(c->tail)) {
			memcpy(c->tail, stop - sizeof(c->tail), sizeof(c->tail));
			c->tail_len = sizeof(c->tail);
		} else {
			size_t keep = c->tail_len + run > sizeof(c->tail) ? sizeof(c->tail) - run : c->tail_len;
			memmove(c->tail, c->tail + c->tail_len - keep, keep);
			memcpy(c->tail + keep, p, run);
			c->tail_len = keep + run;
		}
		if (run > 0)
			c->prev_cr = stop[-1] == '\r';
		if (lf == NULL)
			break;
		if (!c->prev_cr)
			abort();
		uint64_t n;
		if (literal_announced(c, &n))
			c->literal_left = n;
		c->tail_len = 0;
		c->prev_cr = false;
		p = lf + 1;
	}
	buf_reset(out);
}

static enum session_effect settle(struct fake *f, struct session *s, enum session_effect e, struct out_check *oc)
{
	for (int guard = 0; guard < 1000000; guard++) {
		if (e == SESSION_EFFECT_NONE)
			e = session_continue(s);
		check_output(s, oc);
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
		else if (!fake_run(f))
			abort(); /* waiting for nothing: the session would hang */
	}
	abort();
}

static void populate(struct fake *f)
{
	static const char *const msgs[] = {
		"From: Ann <ann@example.test>\r\nTo: bob@example.test\r\nSubject: hello\r\n"
		"Date: Mon, 6 Jan 2025 10:00:00 +0000\r\nMessage-ID: <1@example.test>\r\n\r\nHello Bob\r\n",
		"From: x@example.test\nSubject: =?utf-8?q?caf=C3=A9?=\nMIME-Version: 1.0\n"
		"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nparté one\n"
		"--b\nContent-Type: message/rfc822\n\nSubject: inner\n\ninner body\n--b--\n",
		"no header end, no final newline",
		"",
		"Subject: lone CR\r\n\r\nx\ry\n\r\n.\r\n",
	};
	for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++)
		fake_deliver(f, "bob@example.test", "INBOX", msgs[i]);
	struct fake_box *inbox = fake_box_existing(f, "bob@example.test", "INBOX");
	inbox->keywords[0] = xstrdup("$Junk");
	inbox->msgs[1].keywords = 1;
	inbox->msgs[0].flags = IMAP_SEEN;
	fake_deliver(f, "bob@example.test", "Sent", msgs[0]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct config cfg, small;
	static int ready;

	if (!ready) {
		log_setup(LOG_LEVEL_ERROR, false, NULL); /* login lines would flood */
		config_dev_setup(&cfg);
		cfg.max_bad_commands = 50;
		config_dev_setup(&small);
		small.imap_literal_max = 64;
		small.imap_line_max = 1024;
		small.max_bad_commands = 5;
		ready = 1;
	}
	if (size < 3)
		return 0;
	bool imaps = data[0] & 1, remote = data[0] & 2, deliver = data[0] & 8, one_cut = data[1] == 255;
	const struct config *c = data[0] & 4 ? &small : &cfg;
	struct fake f;
	fake_init(&f);
	populate(&f);
	if (data[0] & 16)
		f.fail = IMAP_TEMPFAIL;
	size_t chunk = (size_t)data[1] + 1, cut_at = data[2];
	data += 3;
	size -= 3;
	/* One cut, anywhere: the session must not care where. */
	size_t cut = size * cut_at / 256;

	struct session_params p = {
		.cfg = c, .kind = imaps ? LISTENER_IMAPS : LISTENER_IMAP, .id = 1,
		.peer = remote ? "192.0.2.1" : "127.0.0.1", .peer_loopback = !remote, .tls = imaps,
		.backend = &f.b,
	};
	struct session *s = session_new(&imap_proto, &p);
	struct out_check oc = { 0 };
	if (imaps)
		session_set_tls(s, "TLSv1.3", "TLS_AES_128_GCM_SHA256");
	session_start(s);
	for (size_t off = 0; off < size;) {
		size_t n = size - off < chunk ? size - off : chunk;
		if (one_cut)
			n = off == 0 && cut > 0 ? cut : size - off;
		enum session_effect e = settle(&f, s, session_feed(s, data + off, n), &oc);
		off += n;
		if (e == SESSION_EFFECT_CLOSE)
			break;
		if (deliver) {
			fake_deliver(&f, "bob@example.test", "INBOX", "Subject: new\r\n\r\nnew\r\n");
			check_output(s, &oc);
		}
	}
	session_timeout(s);
	session_shutdown(s);
	session_free(&s);
	fake_run_all(&f);
	if (f.accounts_open != 0 || f.n_mbs != 0 || f.readers_open != 0)
		abort();
	fake_free(&f);
	return 0;
}
