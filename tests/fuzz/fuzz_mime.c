/* Fuzz target for src/mime.
 *
 * Input: a message, as it would sit in a Maildir file. Chunk sizes for the
 * streaming parse are drawn from a generator seeded by a hash of the input,
 * so every crash reproduces from the file alone and the seed corpus is
 * plain .eml files.
 *
 * Checks, beyond "no crash, leak or over-read":
 *   - the chunked parse gives the same tree as parsing the whole input at
 *     once (compared in serialized form);
 *   - the tree covers the input exactly, children lie inside their
 *     parent's body in order, virtual sizes are physical sizes plus at
 *     most one byte per line, a message/rfc822 part has one child;
 *   - ENVELOPE, BODY and BODYSTRUCTURE render, without NUL bytes;
 *   - every section of every part (and HEADER.FIELDS of the root) resolves
 *     and fetches, and byte sections are exactly as long as announced;
 *   - serialize -> deserialize -> serialize is the identity and the copy
 *     renders the same;
 *   - body bytes fed to the base64 / quoted-printable decoders (by the
 *     part's Content-Transfer-Encoding) and header values fed to the RFC
 *     2047 decoder and parameters to the RFC 2231 decoder do not fail. */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "mime/mime_bodystructure.h"
#include "mime/mime_decode.h"
#include "mime/mime_encword.h"
#include "mime/mime_envelope.h"
#include "mime/mime_params.h"
#include "mime/mime_parse.h"
#include "mime/mime_section.h"
#include "mime/mime_serial.h"

#define CHECK(cond) do { if (!(cond)) { \
	fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
	abort(); } } while (0)

#define OUT_MAX (64u * 1024 * 1024)
#define MAX_SECTION_PARTS 24

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct decode_ctx {
	const struct mime_part *part;
	struct mime_b64dec b64;
	struct mime_qpdec qp;
	struct buf out;
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

static void on_header(void *ctx, const struct mime_part *part, const char *name, size_t nlen,
		      const char *value, size_t vlen, bool truncated)
{
	struct decode_ctx *dc = ctx;

	CHECK(vlen <= MIME_HEADER_VALUE_MAX);
	CHECK(nlen > 0 || vlen == 0 || name != NULL);
	buf_reset(&dc->out);
	(void)mime_encword_decode(value, vlen, &dc->out);
}

static void on_body(void *ctx, const struct mime_part *part, const void *data, size_t len)
{
	struct decode_ctx *dc = ctx;

	CHECK(len > 0 && data != NULL);
	if (part->flags & (MIME_PART_MULTIPART | MIME_PART_RFC822))
		return;
	if (dc->part != part) {
		dc->part = part;
		mime_b64dec_init(&dc->b64);
		mime_qpdec_init(&dc->qp);
	}
	buf_reset(&dc->out);
	switch (mime_cte_parse(part->encoding)) {
	case MIME_CTE_BASE64:
		CHECK(mime_b64dec_feed(&dc->b64, data, len, &dc->out) == 0);
		break;
	case MIME_CTE_QP:
		CHECK(mime_qpdec_feed(&dc->qp, data, len, &dc->out) == 0);
		break;
	case MIME_CTE_IDENTITY:
		break;
	}
}

static void check_part(const struct mime_part *p, unsigned int depth, uint32_t *count)
{
	(*count)++;
	CHECK(depth < MIME_MAX_DEPTH);
	CHECK(p->header.virtual_size >= p->header.physical);
	CHECK(p->header.virtual_size - p->header.physical <= p->header.lines);
	CHECK(p->body.virtual_size >= p->body.physical);
	CHECK(p->body.virtual_size - p->body.physical <= p->body.lines);
	CHECK((p->type == NULL) == (p->subtype == NULL));
	if (p->flags & MIME_PART_RFC822)
		CHECK(p->nchildren == 1 && p->children->envelope != NULL);
	else if (!(p->flags & MIME_PART_MULTIPART))
		CHECK(p->nchildren == 0);

	uint64_t cursor = mime_part_body_offset(p);
	uint32_t n = 0;
	for (const struct mime_part *c = p->children; c != NULL; c = c->next, n++) {
		CHECK(c->parent == p);
		CHECK(c->offset >= cursor);
		CHECK(mime_part_end_offset(c) <= mime_part_end_offset(p));
		cursor = mime_part_end_offset(c);
		check_part(c, depth + 1, count);
	}
	CHECK(n == p->nchildren);

	struct buf b;
	buf_init(&b, 4096);
	for (uint32_t i = 0; i < p->nparams; i++) {
		buf_reset(&b);
		(void)mime_param_decode(&p->params[i], &b);
	}
	buf_free(&b);
}

static void render_all(const struct mime_tree *t, struct buf *out)
{
	CHECK(mime_envelope_write(t->root->envelope, out) == 0);
	CHECK(mime_bodystructure_write(t->root, true, out) == 0);
	CHECK(mime_bodystructure_write(t->root, false, out) == 0);
	CHECK(memchr(buf_ptr(out), '\0', buf_len(out)) == NULL);
}

static void fetch(const struct mime_tree *t, const uint8_t *msg, size_t size, const char *spec)
{
	struct mime_section sec;
	const char *error;
	struct buf out;

	CHECK(mime_section_resolve(t, spec, strlen(spec), &sec, &error) == 0);
	if (sec.kind != MIME_SECTION_EMPTY)
		CHECK(sec.offset + sec.length <= size);
	buf_init(&out, OUT_MAX);
	CHECK(mime_section_fetch(&sec, msg, size, &out) == 0);
	if (sec.kind == MIME_SECTION_BYTES)
		CHECK(buf_len(&out) == sec.size);
	CHECK(memchr(buf_ptr(&out), '\0', buf_len(&out)) == NULL);
	buf_free(&out);
	mime_section_free(&sec);
}

/* Fetch every kind of section of a part named number. */
static void fetch_part(const struct mime_tree *t, const uint8_t *msg, size_t size,
		       const char *number, int *budget)
{
	static const char *const texts[] = {
		"", ".MIME", ".HEADER", ".TEXT", ".HEADER.FIELDS (SUBJECT From)",
		".HEADER.FIELDS.NOT (Content-Type)",
	};
	char spec[128];

	if (--*budget < 0)
		return;
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		snprintf(spec, sizeof(spec), "%s%s", number, texts[i]);
		fetch(t, msg, size, spec);
	}
}

/* Walk the section numbers RFC 3501 6.4.5 gives the parts of p. */
static void walk_numbers(const struct mime_tree *t, const uint8_t *msg, size_t size,
			 const struct mime_part *p, const char *prefix, int *budget)
{
	char number[128];
	unsigned int i = 1;

	if (p->flags & MIME_PART_RFC822)
		p = p->children;
	if (!(p->flags & MIME_PART_MULTIPART)) {
		snprintf(number, sizeof(number), "%s%s1", prefix, *prefix ? "." : "");
		fetch_part(t, msg, size, number, budget);
		return;
	}
	for (const struct mime_part *c = p->children; c != NULL && *budget > 0; c = c->next, i++) {
		int n = snprintf(number, sizeof(number), "%s%s%u", prefix, *prefix ? "." : "", i);
		if (n < 0 || (size_t)n >= sizeof(number) - 16)
			return;
		fetch_part(t, msg, size, number, budget);
		if (c->flags & (MIME_PART_MULTIPART | MIME_PART_RFC822))
			walk_numbers(t, msg, size, c, number, budget);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t max_chunks[4] = { 1, 7, 64, 4096 };
	struct decode_ctx dc;
	struct mime_parse_hooks hooks = { on_header, on_body, &dc };
	uint32_t rng = 2166136261u;

	for (size_t i = 0; i < size; i++)
		rng = (rng ^ data[i]) * 16777619u;
	if (rng == 0)
		rng = 1;
	size_t max_chunk = max_chunks[rng & 3];

	/* chunked, with the decoding taps */
	memset(&dc, 0, sizeof(dc));
	buf_init(&dc.out, OUT_MAX);
	struct mime_parser *p = mime_parser_new(&hooks);
	for (size_t off = 0; off < size;) {
		size_t n = 1 + rng_next(&rng) % max_chunk;
		if (n > size - off)
			n = size - off;
		mime_parser_feed(p, data + off, n);
		off += n;
	}
	struct mime_tree *t = mime_parser_finish(&p);
	buf_free(&dc.out);

	/* whole, without taps: the same tree */
	struct mime_tree *whole = mime_parse(data, size);
	struct buf s1, s2;
	buf_init(&s1, OUT_MAX);
	buf_init(&s2, OUT_MAX);
	CHECK(mime_tree_serialize(t, &s1) == 0);
	CHECK(mime_tree_serialize(whole, &s2) == 0);
	CHECK(buf_len(&s1) == buf_len(&s2));
	CHECK(memcmp(buf_ptr(&s1), buf_ptr(&s2), buf_len(&s1)) == 0);
	mime_tree_free(&whole);

	/* structure */
	uint32_t count = 0;
	CHECK(t->root->offset == 0);
	CHECK(mime_part_end_offset(t->root) == size);
	check_part(t->root, 0, &count);
	CHECK(count == t->nparts && count <= MIME_MAX_PARTS);

	/* rendering */
	struct buf r1, r2;
	buf_init(&r1, OUT_MAX);
	buf_init(&r2, OUT_MAX);
	render_all(t, &r1);

	/* sections */
	fetch(t, data, size, "");
	fetch(t, data, size, "HEADER");
	fetch(t, data, size, "TEXT");
	fetch(t, data, size, "HEADER.FIELDS (Subject FROM to)");
	fetch(t, data, size, "HEADER.FIELDS.NOT (Subject)");
	int budget = MAX_SECTION_PARTS;
	walk_numbers(t, data, size, t->root, "", &budget);

	/* the cached form */
	const char *error;
	struct mime_tree *back = mime_tree_deserialize(buf_ptr(&s1), buf_len(&s1), &error);
	CHECK(back != NULL);
	buf_reset(&s2);
	CHECK(mime_tree_serialize(back, &s2) == 0);
	CHECK(buf_len(&s1) == buf_len(&s2));
	CHECK(memcmp(buf_ptr(&s1), buf_ptr(&s2), buf_len(&s1)) == 0);
	render_all(back, &r2);
	CHECK(buf_len(&r1) == buf_len(&r2));
	CHECK(memcmp(buf_ptr(&r1), buf_ptr(&r2), buf_len(&r1)) == 0);
	/* and a damaged copy is refused or harmless */
	if (buf_len(&s1) > 8) {
		char *damaged = malloc(buf_len(&s1));
		memcpy(damaged, buf_ptr(&s1), buf_len(&s1));
		damaged[rng_next(&rng) % buf_len(&s1)] ^= (char)(1 + rng_next(&rng) % 255);
		struct mime_tree *bad = mime_tree_deserialize(damaged, buf_len(&s1), &error);
		CHECK(bad == NULL);
		free(damaged);
	}

	mime_tree_free(&back);
	mime_tree_free(&t);
	buf_free(&s1);
	buf_free(&s2);
	buf_free(&r1);
	buf_free(&r2);
	return 0;
}
