/*
 * Fuzz the POP3 session over the in-memory backend of the unit tests
 * (tests/unit/test_pop3_fake.h): arbitrary client bytes in arbitrary
 * chunks, with every effect carried out as the glue would - STARTTLS
 * completes at once, waits end when the fake's callbacks run, long replies
 * drain. The INBOX holds messages that stress the CRLF conversion and
 * dot-stuffing (lone CR, lines of ".", no final line end, an empty
 * message, a long one).
 *
 * Byte 0: bit 0 implicit TLS (pop3s), bit 1 a non-loopback peer, bits 2-7
 * the feed chunk size. Byte 1: how many bytes one message_read returns
 * (0 = as many as asked), bit 7 makes deletions fail.
 *
 * Checks: no crash, leak or over-read; every LF the server sends follows a
 * CR; nothing is removed unless the client sent QUIT; no lock or reader
 * is left once the session is gone.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/session.h"
#include "pop3/pop3_session.h"
#include "../unit/test_pop3_fake.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_crlf(struct session *s, bool *prev_cr)
{
	struct buf *out = session_output(s);
	const char *p = buf_ptr(out), *end = p + buf_len(out), *lf;

	if (p == end)
		return;
	/* memchr, not a byte loop: the loop's compares would be traced. */
	for (const char *q = p; (lf = memchr(q, '\n', (size_t)(end - q))) != NULL; q = lf + 1) {
		if (lf == p ? !*prev_cr : lf[-1] != '\r')
			abort();
	}
	*prev_cr = end[-1] == '\r';
	buf_reset(out);
}

static enum session_effect settle(struct fake *f, struct session *s, enum session_effect e, bool *prev_cr)
{
	for (int guard = 0; guard < 100000; guard++) {
		if (e == SESSION_EFFECT_NONE)
			e = session_continue(s);
		check_crlf(s, prev_cr);
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

static bool has_quit(const uint8_t *data, size_t size)
{
	for (size_t i = 0; i + 4 <= size; i++) {
		if ((data[i] | 0x20) == 'q' && (data[i + 1] | 0x20) == 'u' && (data[i + 2] | 0x20) == 'i' &&
		    (data[i + 3] | 0x20) == 't')
			return true;
	}
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct config cfg;
	static char *longmsg;
	static int ready;

	if (!ready) {
		log_setup(LOG_LEVEL_ERROR, false, NULL); /* login lines would flood */
		config_dev_setup(&cfg);
		cfg.pop3_line_max = 255;
		cfg.max_bad_commands = 20;
		longmsg = malloc(300000);
		for (size_t i = 0; i < 300000; i++)
			longmsg[i] = i % 61 == 60 ? '\n' : i % 61 == 0 ? '.' : 'm';
		ready = 1;
	}
	if (size < 2)
		return 0;
	bool pop3s = data[0] & 1, remote = data[0] & 2;
	size_t chunk = (size_t)(data[0] >> 2) + 1;
	struct fake f;
	fake_init(&f);
	f.read_chunk = data[1] & 0x7f;
	f.commit_status = data[1] & 0x80 ? POP3_TEMPFAIL : POP3_OK;
	data += 2;
	size -= 2;

	static const char *const msgs[] = {
		"Subject: one\n\nHello\n.\n..\n.x\n",
		"Subject: two\r\n\r\nCRLF\r\nlone CR\rhere\r\n\r\n",
		"no headers, no final newline",
		"",
		"\n\n.\n",
		"Subject: cr at end\n\nx\r",
	};
	for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++)
		fake_add(&f, msgs[i], strlen(msgs[i]));
	fake_add(&f, longmsg, 300000);

	struct session_params p = {
		.cfg = &cfg, .kind = pop3s ? LISTENER_POP3S : LISTENER_POP3, .id = 1,
		.peer = remote ? "192.0.2.1" : "127.0.0.1", .peer_loopback = !remote, .tls = pop3s,
		.backend = &f.b,
	};
	struct session *s = session_new(&pop3_proto, &p);
	bool prev_cr = false;
	if (pop3s)
		session_set_tls(s, "TLSv1.3", "TLS_AES_128_GCM_SHA256");
	session_start(s);
	for (size_t off = 0; off < size;) {
		size_t n = size - off < chunk ? size - off : chunk;
		enum session_effect e = settle(&f, s, session_feed(s, data + off, n), &prev_cr);
		off += n;
		if (e == SESSION_EFFECT_CLOSE)
			break;
	}
	session_timeout(s);
	session_shutdown(s);
	session_free(&s);
	if (f.commits > 0 && !has_quit(data, size))
		abort();
	while (fake_run(&f))
		;
	if (f.n_mds != 0 || f.readers != 0)
		abort();
	fake_free(&f);
	return 0;
}
