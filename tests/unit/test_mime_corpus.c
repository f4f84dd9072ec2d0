/*
 * src/mime against a reference IMAP server, message by message.
 *
 * The reference corpus (../shared/mime-corpus next to the source tree;
 * POSTBOTE_MIME_CORPUS_DIR in the environment overrides it) holds NAME.eml
 * files and, in NAME.json, what Dovecot 2.3.19 answered for them: the
 * untagged response to UID FETCH (RFC822.SIZE ENVELOPE BODYSTRUCTURE BODY
 * INTERNALDATE) and the length and SHA-256 of BODY.PEEK[SECTION] for a list
 * of sections (see its README.md).
 *
 * For every message this suite parses it in several chunkings (whole, and
 * small odd sizes down to one byte; every chunking must give the same tree,
 * byte for byte in serialized form), renders RFC822.SIZE, ENVELOPE,
 * BODYSTRUCTURE and BODY, and compares them with the reference as IMAP data
 * rather than text: a quoted string equals a literal with the same bytes,
 * and type, subtype, disposition and parameter names compare without case
 * (as the corpus README allows). It then fetches every listed section and
 * compares length and SHA-256, and checks that the serialized tree, read
 * back, renders the same. UID and INTERNALDATE are the IMAP server's
 * business and are not compared. Any difference fails the test.
 *
 * Where the reference could be argued with it is followed anyway (none of
 * its answers contradicts an RFC requirement): ENVELOPE shows the address
 * lists of repeated To/Cc headers joined (RFC 5322 3.6 allows one of each;
 * IMAP leaves it open), and "N.MIME" of a single-part message is its
 * header (RFC 3501 6.4.5 leaves MIME of a non-multipart root undefined).
 */

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <openssl/evp.h>

#include "core/buf.h"
#include "json_mini.h"
#include "mime/mime_bodystructure.h"
#include "mime/mime_envelope.h"
#include "mime/mime_parse.h"
#include "mime/mime_section.h"
#include "mime/mime_serial.h"
#include "testutil.h"

#define MAX_MESSAGES 1000
#define OUT_MAX (16u * 1024 * 1024)

static char corpus_dir[4096];
static char *names[MAX_MESSAGES];
static int nnames;

/* ---- IMAP response tokens ---- */

enum tok_type {
	TOK_NIL,
	TOK_ATOM,
	TOK_STRING,
	TOK_LIST,
};

struct tok {
	enum tok_type type;
	char *s;            /* ATOM, STRING */
	size_t len;
	struct tok *items;  /* LIST */
	size_t n;
};

static void tok_free(struct tok *t)
{
	free(t->s);
	for (size_t i = 0; i < t->n; i++)
		tok_free(&t->items[i]);
	free(t->items);
	memset(t, 0, sizeof(*t));
}

static struct tok *tok_push(struct tok *list)
{
	list->items = realloc(list->items, (list->n + 1) * sizeof(*list->items));
	memset(&list->items[list->n], 0, sizeof(*list->items));
	return &list->items[list->n++];
}

/* Read list items up to ")" or the end into list. Returns 0 or -1. */
static int tok_parse_list(const char **pp, const char *end, struct tok *list, int depth)
{
	const char *p = *pp;

	if (depth > 200)
		return -1;
	list->type = TOK_LIST;
	for (;;) {
		while (p < end && (*p == ' ' || *p == '\r' || *p == '\n'))
			p++;
		if (p >= end || *p == ')')
			break;
		struct tok *t = tok_push(list);
		if (*p == '(') {
			p++;
			if (tok_parse_list(&p, end, t, depth + 1) < 0 || p >= end || *p != ')')
				return -1;
			p++;
		} else if (*p == '"') {
			t->type = TOK_STRING;
			t->s = malloc((size_t)(end - p) + 1);
			for (p++; p < end && *p != '"'; p++) {
				if (*p == '\\' && p + 1 < end)
					p++;
				t->s[t->len++] = *p;
			}
			if (p >= end)
				return -1;
			p++;
		} else if (*p == '{') {
			char *e;
			unsigned long n = strtoul(p + 1, &e, 10);
			if (e >= end || *e != '}')
				return -1;
			p = e + 1;
			/* The corpus generator printed some literal markers
			 * twice ("{419}{419}\r\n"); accept both forms. */
			if (p < end && *p == '{') {
				unsigned long n2 = strtoul(p + 1, &e, 10);
				if (n2 == n && e < end && *e == '}')
					p = e + 1;
			}
			if (end - p < 2 || p[0] != '\r' || p[1] != '\n' || (unsigned long)(end - p - 2) < n)
				return -1;
			p += 2;
			t->type = TOK_STRING;
			t->s = malloc(n + 1);
			memcpy(t->s, p, n);
			t->len = n;
			p += n;
		} else {
			const char *s = p;
			while (p < end && *p != ' ' && *p != '(' && *p != ')' && *p != '\r' && *p != '\n')
				p++;
			t->len = (size_t)(p - s);
			if (t->len == 3 && strncasecmp(s, "NIL", 3) == 0) {
				t->type = TOK_NIL;
				t->len = 0;
			} else {
				t->type = TOK_ATOM;
				t->s = malloc(t->len + 1);
				memcpy(t->s, s, t->len);
			}
		}
	}
	*pp = p;
	return 0;
}

static int tok_parse(const char *s, size_t len, struct tok *out)
{
	const char *p = s;

	memset(out, 0, sizeof(*out));
	if (tok_parse_list(&p, s + len, out, 0) < 0 || p != s + len) {
		tok_free(out);
		return -1;
	}
	return 0;
}

/* The value after the FETCH item name key in a parenthesized item list. */
static const struct tok *fetch_item(const struct tok *list, const char *key)
{
	for (size_t i = 0; list != NULL && i + 1 < list->n; i += 2) {
		const struct tok *k = &list->items[i];
		if (k->type == TOK_ATOM && strlen(key) == k->len && strncasecmp(k->s, key, k->len) == 0)
			return &list->items[i + 1];
	}
	return NULL;
}

static bool tok_eq(const struct tok *a, const struct tok *b, bool nocase)
{
	if (a->type != b->type)
		return false;
	switch (a->type) {
	case TOK_NIL:
		return true;
	case TOK_ATOM:
	case TOK_STRING:
		if (a->len != b->len)
			return false;
		return nocase ? strncasecmp(a->s, b->s, a->len) == 0 : memcmp(a->s, b->s, a->len) == 0;
	case TOK_LIST:
		if (a->n != b->n)
			return false;
		for (size_t i = 0; i < a->n; i++) {
			if (!tok_eq(&a->items[i], &b->items[i], nocase))
				return false;
		}
		return true;
	}
	return false;
}

/* body-fld-param: names without case, values exactly */
static bool params_eq(const struct tok *a, const struct tok *b)
{
	if (a->type != b->type || (a->type == TOK_LIST && a->n != b->n))
		return false;
	if (a->type != TOK_LIST)
		return tok_eq(a, b, false);
	for (size_t i = 0; i < a->n; i++) {
		if (!tok_eq(&a->items[i], &b->items[i], i % 2 == 0))
			return false;
	}
	return true;
}

/* body-fld-dsp: ("type" params) or NIL */
static bool disposition_eq(const struct tok *a, const struct tok *b)
{
	if (a->type != TOK_LIST || b->type != TOK_LIST || a->n != 2 || b->n != 2)
		return tok_eq(a, b, false);
	return tok_eq(&a->items[0], &b->items[0], true) && params_eq(&a->items[1], &b->items[1]);
}

static bool body_eq(const struct tok *a, const struct tok *b)
{
	if (a->type != TOK_LIST || b->type != TOK_LIST || a->n != b->n || a->n == 0)
		return false;
	if (a->items[0].type == TOK_LIST) {
		/* body-type-mpart: bodies, subtype, [params dsp lang loc] */
		size_t k = 0;
		while (k < a->n && a->items[k].type == TOK_LIST) {
			if (b->items[k].type != TOK_LIST || !body_eq(&a->items[k], &b->items[k]))
				return false;
			k++;
		}
		for (size_t i = k; i < a->n; i++) {
			bool ok;
			if (i == k)
				ok = tok_eq(&a->items[i], &b->items[i], true);
			else if (i == k + 1)
				ok = params_eq(&a->items[i], &b->items[i]);
			else if (i == k + 2)
				ok = disposition_eq(&a->items[i], &b->items[i]);
			else
				ok = tok_eq(&a->items[i], &b->items[i], false);
			if (!ok)
				return false;
		}
		return true;
	}
	/* body-type-1part */
	if (a->n < 7)
		return tok_eq(a, b, false);
	bool text = a->items[0].type == TOK_STRING && a->items[0].len == 4 &&
		strncasecmp(a->items[0].s, "text", 4) == 0;
	bool rfc822 = a->items[0].type == TOK_STRING && a->items[0].len == 7 &&
		strncasecmp(a->items[0].s, "message", 7) == 0 && a->items[1].type == TOK_STRING &&
		a->items[1].len == 6 && strncasecmp(a->items[1].s, "rfc822", 6) == 0;
	size_t dsp = text ? 9 : rfc822 ? 11 : 8;
	for (size_t i = 0; i < a->n; i++) {
		bool ok;
		if (i < 2)
			ok = tok_eq(&a->items[i], &b->items[i], true);
		else if (i == 2)
			ok = params_eq(&a->items[i], &b->items[i]);
		else if (rfc822 && i == 8)
			ok = body_eq(&a->items[i], &b->items[i]);
		else if (i == dsp)
			ok = disposition_eq(&a->items[i], &b->items[i]);
		else
			ok = tok_eq(&a->items[i], &b->items[i], false);
		if (!ok)
			return false;
	}
	return true;
}

/* ---- files ---- */

static char *read_file(const char *path, size_t *len_r)
{
	FILE *f = fopen(path, "rb");
	char *data = NULL;
	size_t len = 0, cap = 0, n;

	if (f == NULL)
		return NULL;
	do {
		if (len + 65536 > cap) {
			cap = cap ? cap * 2 : 65536 * 2;
			data = realloc(data, cap);
		}
		n = fread(data + len, 1, cap - len, f);
		len += n;
	} while (n > 0);
	fclose(f);
	*len_r = len;
	return data;
}

static void find_corpus(void)
{
	const char *env = getenv("POSTBOTE_MIME_CORPUS_DIR");

	if (env != NULL && *env != '\0') {
		snprintf(corpus_dir, sizeof(corpus_dir), "%s", env);
		return;
	}
#ifdef POSTBOTE_MIME_CORPUS_DIR
	snprintf(corpus_dir, sizeof(corpus_dir), "%s", POSTBOTE_MIME_CORPUS_DIR);
#else
	/* this file is SOURCE/tests/unit/test_mime_corpus.c (CMake compiles
	 * it by its absolute path); the corpus is SOURCE/../shared/mime-corpus */
	char cwd[2048] = "";
	if (__FILE__[0] != '/' && getcwd(cwd, sizeof(cwd)) == NULL)
		cwd[0] = '\0';
	snprintf(corpus_dir, sizeof(corpus_dir), "%s%s%s", cwd, cwd[0] ? "/" : "", __FILE__);
	for (int up = 0; up < 3; up++) {
		char *slash = strrchr(corpus_dir, '/');
		if (slash == NULL) {
			snprintf(corpus_dir, sizeof(corpus_dir), ".");
			break;
		}
		*slash = '\0';
	}
	strncat(corpus_dir, "/../shared/mime-corpus", sizeof(corpus_dir) - strlen(corpus_dir) - 1);
#endif
}

static int is_eml(const struct dirent *d)
{
	size_t n = strlen(d->d_name);
	return n > 4 && strcmp(d->d_name + n - 4, ".eml") == 0;
}

static void list_corpus(void)
{
	struct dirent **list;
	int n = scandir(corpus_dir, &list, is_eml, alphasort);

	if (n < 0)
		return;
	for (int i = 0; i < n; i++) {
		if (nnames < MAX_MESSAGES)
			names[nnames++] = strndup(list[i]->d_name, strlen(list[i]->d_name) - 4);
		free(list[i]);
	}
	free(list);
}

/* ---- rendering ---- */

static struct mime_tree *parse_chunked(const char *msg, size_t len, size_t chunk)
{
	struct mime_parser *p = mime_parser_new(NULL);

	for (size_t off = 0; off < len; off += chunk)
		mime_parser_feed(p, msg + off, len - off < chunk ? len - off : chunk);
	return mime_parser_finish(&p);
}

/* "(RFC822.SIZE n ENVELOPE (...) BODYSTRUCTURE (...) BODY (...))" */
static void render_fetch(const struct mime_tree *t, struct buf *out)
{
	ck_assert_int_eq(buf_printf(out, "(RFC822.SIZE %llu ENVELOPE ",
				    (unsigned long long)mime_tree_size(t)), 0);
	ck_assert_int_eq(mime_envelope_write(t->root->envelope, out), 0);
	ck_assert_int_eq(buf_append(out, " BODYSTRUCTURE ", 15), 0);
	ck_assert_int_eq(mime_bodystructure_write(t->root, true, out), 0);
	ck_assert_int_eq(buf_append(out, " BODY ", 6), 0);
	ck_assert_int_eq(mime_bodystructure_write(t->root, false, out), 0);
	ck_assert_int_eq(buf_append(out, ")", 1), 0);
}

static void sha256_hex(const void *data, size_t len, char hex[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	ck_assert_int_eq(EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL), 1);
	for (unsigned int i = 0; i < mdlen && i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	hex[64] = '\0';
}

static int compare_item(const char *name, const char *item, const struct tok *mine,
			const struct tok *ref, bool body)
{
	if (mine == NULL || ref == NULL) {
		fprintf(stderr, "%s: %s missing (mine %p, reference %p)\n", name, item,
			(const void *)mine, (const void *)ref);
		return 1;
	}
	if (body ? body_eq(mine, ref) : tok_eq(mine, ref, false))
		return 0;
	fprintf(stderr, "%s: %s differs from the reference\n", name, item);
	return 1;
}

START_TEST(corpus_message)
{
	static const size_t chunks[] = { 0, 1, 2, 3, 5, 7, 13, 61, 509 };
	const char *name = names[_i];
	char path[8192];
	size_t msglen, jsonlen;
	int failures = 0;

	snprintf(path, sizeof(path), "%s/%s.eml", corpus_dir, name);
	char *raw = read_file(path, &msglen);
	ck_assert_msg(raw != NULL, "cannot read %s", path);
	snprintf(path, sizeof(path), "%s/%s.json", corpus_dir, name);
	char *jtext = read_file(path, &jsonlen);
	ck_assert_msg(jtext != NULL, "cannot read %s", path);
	struct json ref;
	ck_assert_msg(json_parse(jtext, jsonlen, &ref) == 0, "%s: bad JSON", name);
	free(jtext);

	/* the parser must never look past the end of what it was given */
	char *msg = guard_copy(raw, msglen);
	free(raw);

	/* every chunking gives the same tree */
	struct mime_tree *tree = parse_chunked(msg, msglen, msglen > 0 ? msglen : 1);
	struct buf ser, ser2, out, out2;
	buf_init(&ser, OUT_MAX);
	buf_init(&ser2, OUT_MAX);
	buf_init(&out, OUT_MAX);
	buf_init(&out2, OUT_MAX);
	ck_assert_int_eq(mime_tree_serialize(tree, &ser), 0);
	for (size_t c = 1; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
		struct mime_tree *t2 = parse_chunked(msg, msglen, chunks[c]);
		buf_reset(&ser2);
		ck_assert_int_eq(mime_tree_serialize(t2, &ser2), 0);
		if (buf_len(&ser2) != buf_len(&ser) ||
		    memcmp(buf_ptr(&ser2), buf_ptr(&ser), buf_len(&ser)) != 0) {
			fprintf(stderr, "%s: parsing in %zu-byte chunks gives another tree\n",
				name, chunks[c]);
			failures++;
		}
		mime_tree_free(&t2);
	}

	/* RFC822.SIZE, ENVELOPE, BODYSTRUCTURE, BODY */
	render_fetch(tree, &out);
	const struct json *jsize = json_get(&ref, "rfc822_size");
	const struct json *jfetch = json_get(&ref, "fetch_response");
	ck_assert_msg(jsize != NULL && jfetch != NULL && jfetch->type == JSON_STRING,
		      "%s: reference lacks fields", name);
	ck_assert_msg(mime_tree_size(tree) == (uint64_t)jsize->num,
		      "%s: RFC822.SIZE %llu, reference %.0f", name,
		      (unsigned long long)mime_tree_size(tree), jsize->num);
	struct tok mine, theirs;
	ck_assert_msg(tok_parse(buf_ptr(&out), buf_len(&out), &mine) == 0,
		      "%s: our FETCH data does not parse", name);
	ck_assert_msg(tok_parse(jfetch->str, jfetch->len, &theirs) == 0,
		      "%s: the reference FETCH data does not parse", name);
	/* "1 (UID 1 ...)": the item list is the second token */
	ck_assert(mine.n == 1 && theirs.n == 2);
	const struct tok *mi = &mine.items[0], *ri = &theirs.items[1];
	failures += compare_item(name, "RFC822.SIZE", fetch_item(mi, "RFC822.SIZE"),
				 fetch_item(ri, "RFC822.SIZE"), false);
	failures += compare_item(name, "ENVELOPE", fetch_item(mi, "ENVELOPE"),
				 fetch_item(ri, "ENVELOPE"), false);
	failures += compare_item(name, "BODYSTRUCTURE", fetch_item(mi, "BODYSTRUCTURE"),
				 fetch_item(ri, "BODYSTRUCTURE"), true);
	failures += compare_item(name, "BODY", fetch_item(mi, "BODY"),
				 fetch_item(ri, "BODY"), true);
	if (failures > 0)
		fprintf(stderr, "%s: ours: %.*s\n", name, (int)buf_len(&out), buf_ptr(&out));
	tok_free(&mine);
	tok_free(&theirs);

	/* the cached form renders the same */
	const char *error;
	struct mime_tree *back = mime_tree_deserialize(buf_ptr(&ser), buf_len(&ser), &error);
	ck_assert_msg(back != NULL, "%s: deserialize: %s", name, error);
	render_fetch(back, &out2);
	if (buf_len(&out2) != buf_len(&out) || memcmp(buf_ptr(&out2), buf_ptr(&out), buf_len(&out)) != 0) {
		fprintf(stderr, "%s: the deserialized tree renders differently\n", name);
		failures++;
	}

	/* BODY[section] */
	const struct json *secs = json_get(&ref, "sections");
	ck_assert_msg(secs != NULL && secs->type == JSON_OBJECT, "%s: no sections", name);
	for (size_t i = 0; i < secs->n; i++) {
		const char *spec = secs->keys[i];
		const struct json *want = &secs->items[i];
		struct mime_section sec;
		struct buf data;
		char hex[65];

		ck_assert_msg(mime_section_resolve(back, spec, strlen(spec), &sec, &error) == 0,
			      "%s: section %s: %s", name, spec, error);
		buf_init(&data, OUT_MAX);
		ck_assert_int_eq(mime_section_fetch(&sec, msg, msglen, &data), 0);
		if (sec.kind == MIME_SECTION_BYTES && sec.size != buf_len(&data)) {
			fprintf(stderr, "%s: [%s] announced %llu bytes, sent %zu\n", name, spec,
				(unsigned long long)sec.size, buf_len(&data));
			failures++;
		}
		sha256_hex(buf_ptr(&data), buf_len(&data), hex);
		if (want->type == JSON_NULL) {
			/* the reference sent NIL: only an empty answer fits */
			if (buf_len(&data) != 0) {
				fprintf(stderr, "%s: [%s] reference NIL, ours %zu bytes\n", name,
					spec, buf_len(&data));
				failures++;
			}
		} else {
			const struct json *wl = json_get(want, "len"), *wh = json_get(want, "sha256");
			ck_assert(wl != NULL && wh != NULL && wh->type == JSON_STRING);
			if ((uint64_t)wl->num != buf_len(&data) || strcasecmp(wh->str, hex) != 0) {
				fprintf(stderr, "%s: [%s] %zu bytes %s, reference %.0f bytes %s\n",
					name, spec, buf_len(&data), hex, wl->num, wh->str);
				failures++;
			}
		}
		buf_free(&data);
		mime_section_free(&sec);
	}

	mime_tree_free(&back);
	mime_tree_free(&tree);
	buf_free(&ser);
	buf_free(&ser2);
	buf_free(&out);
	buf_free(&out2);
	json_free(&ref);
	guard_free(msg, msglen);
	ck_assert_msg(failures == 0, "%s: %d difference(s) from the reference (details above)",
		      name, failures);
}
END_TEST

START_TEST(corpus_present)
{
	/* an empty or missing corpus must not pass as "no differences" */
	ck_assert_msg(nnames > 0, "no *.eml in %s (set POSTBOTE_MIME_CORPUS_DIR)", corpus_dir);
}
END_TEST

int main(void)
{
	find_corpus();
	list_corpus();

	Suite *s = suite_create("mime_corpus");
	TCase *tc = tcase_create("corpus");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, corpus_present);
	if (nnames > 0)
		tcase_add_loop_test(tc, corpus_message, 0, nnames);
	suite_add_tcase(s, tc);
	int rc = testutil_run(s);
	for (int i = 0; i < nnames; i++)
		free(names[i]);
	return rc;
}
