/* Fuzz target for core/linereader.
 *
 * Input: 4 parameter bytes, then the byte stream a peer sends.
 *   byte 0-1  line_max = 2 + (b0 << 8 | b1) % 1100
 *   byte 2    buffer_max = line_max + b2 * 4 (may be raised by set_line_max)
 *   byte 3    seed of the choices: chunk sizes (low 2 bits pick the largest
 *             chunk: 1, 7, 64 or 4096), and when to take(), discard() or
 *             change the line limit instead of reading lines
 *
 * Every result is checked against a small model of the contract in
 * linereader.h that keeps its own cursor into the stream: lines come out
 * whole and in order, without their CRLF/LF, never longer than line_max - 2;
 * an overlong line is reported once and skipped to its LF; take() returns
 * the very next bytes; a feed past buffer_max is refused and changes
 * nothing. The seed corpus is real SMTP, POP3 and IMAP dialogue. */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/linereader.h"

#define CHECK(cond) do { if (!(cond)) { \
	fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
	abort(); } } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct model {
	const char *s;      /* the whole stream */
	size_t fed;         /* bytes of it fed so far */
	size_t cursor;      /* first byte the reader has not consumed */
	bool skipping;      /* inside an overlong line */
	size_t line_max;
	size_t buffer_max;
};

static uint32_t rng_next(uint32_t *st)
{
	/* xorshift32: deterministic per input, so crashes reproduce. */
	uint32_t x = *st;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *st = x;
}

static const char *find_lf(const struct model *m)
{
	return memchr(m->s + m->cursor, '\n', m->fed - m->cursor);
}

/* One linereader_next() call, checked against the model. Returns its
 * status. */
static enum linereader_status check_next(struct linereader *lr, struct model *m)
{
	const char *line = NULL;
	size_t len = 0;
	enum linereader_status st = linereader_next(lr, &line, &len);

	for (;;) {
		const char *lf = find_lf(m);
		if (m->skipping) {
			if (lf == NULL) {
				m->cursor = m->fed;
				CHECK(st == LINEREADER_NEED_MORE);
				break;
			}
			m->cursor = (size_t)(lf - m->s) + 1;
			m->skipping = false;
			continue;
		}
		if (lf == NULL) {
			size_t part = m->fed - m->cursor;
			size_t least = part + (part > 0 && m->s[m->fed - 1] == '\r' ? 1 : 2);
			if (least > m->line_max) {
				CHECK(st == LINEREADER_TOO_LONG);
				m->cursor = m->fed;
				m->skipping = true;
			} else {
				CHECK(st == LINEREADER_NEED_MORE);
			}
			break;
		}
		size_t n = (size_t)(lf - (m->s + m->cursor));
		bool cr = n > 0 && lf[-1] == '\r';
		if (cr)
			n--;
		if (n + 2 > m->line_max) {
			CHECK(st == LINEREADER_TOO_LONG);
		} else {
			CHECK(st == LINEREADER_LINE);
			CHECK(line != NULL);
			CHECK(len == n);
			CHECK(len + 2 <= m->line_max);
			CHECK(memcmp(line, m->s + m->cursor, len) == 0);
			CHECK(memchr(line, '\n', len) == NULL);
			CHECK(lr->line_bare_lf == !cr);
		}
		m->cursor = (size_t)(lf - m->s) + 1;
		break;
	}
	CHECK(lr->skipping == m->skipping);
	CHECK(linereader_buffered(lr) == m->fed - m->cursor);
	return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 4)
		return 0;

	static const size_t max_chunks[4] = { 1, 7, 64, 4096 };
	struct model m;
	struct linereader lr;
	uint32_t rng = 0x9e3779b9u ^ ((uint32_t)data[3] * 0x01000193u) ^ (uint32_t)size;
	size_t max_chunk = max_chunks[data[3] & 3];

	memset(&m, 0, sizeof(m));
	m.line_max = 2 + ((size_t)data[0] << 8 | data[1]) % 1100;
	m.buffer_max = m.line_max + (size_t)data[2] * 4;
	m.s = (const char *)data + 4;
	size -= 4;
	if (rng == 0)
		rng = 1;

	linereader_init(&lr, m.line_max, m.buffer_max);
	for (;;) {
		/* Read until the reader needs more, sometimes doing something
		 * else instead, as a protocol does between lines. */
		for (;;) {
			uint32_t r = rng_next(&rng);
			if (r % 16 == 0) {
				size_t want = (r >> 8) % 32;
				const char *got = NULL;
				size_t n = linereader_take(&lr, want, &got);
				size_t avail = m.fed - m.cursor;
				CHECK(n == (want < avail ? want : avail));
				CHECK(got != NULL);
				CHECK(memcmp(got, m.s + m.cursor, n) == 0);
				m.cursor += n;
				CHECK(linereader_buffered(&lr) == m.fed - m.cursor);
				continue;
			}
			if (r % 128 == 1) {
				linereader_discard(&lr);
				m.cursor = m.fed;
				m.skipping = false;
				CHECK(linereader_buffered(&lr) == 0);
				continue;
			}
			if (r % 128 == 2) {
				size_t lm = 2 + (r >> 8) % 1100;
				linereader_set_line_max(&lr, lm);
				m.line_max = lm;
				if (m.buffer_max < lm)
					m.buffer_max = lm;
				continue;
			}
			if (check_next(&lr, &m) == LINEREADER_NEED_MORE)
				break;
		}
		if (m.fed == size)
			break;

		/* Feed the next chunk; one that does not fit must be refused
		 * and change nothing. */
		size_t n = 1 + rng_next(&rng) % max_chunk;
		if (n > size - m.fed)
			n = size - m.fed;
		size_t buffered = m.fed - m.cursor;
		int rc = linereader_feed(&lr, m.s + m.fed, n);
		if (n > m.buffer_max - buffered) {
			CHECK(rc == -1);
			CHECK(linereader_buffered(&lr) == buffered);
			n = m.buffer_max - buffered;
			/* After the reader said "need more", a partial line
			 * shorter than line_max is all that is left. */
			CHECK(n > 0);
			rc = linereader_feed(&lr, m.s + m.fed, n);
		}
		CHECK(rc == 0);
		m.fed += n;
		CHECK(linereader_buffered(&lr) == m.fed - m.cursor);
		CHECK(linereader_buffered(&lr) <= m.buffer_max);
	}
	linereader_free(&lr);
	return 0;
}
