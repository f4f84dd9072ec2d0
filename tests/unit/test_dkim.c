/*
 * DKIM: canonicalization (RFC 6376 3.4, with the example of 3.4.6),
 * signing (RFC 6376 5, RFC 8463), keys and TXT records.
 *
 * Signatures are checked three ways: here with OpenSSL against header data
 * written out by hand; against a signature another implementation made
 * (the RFC 8463 sample key and message, as dkimpy's test data has them);
 * and by python3-dkim itself when it is installed (the e2e test
 * tests/e2e/test_dkim.py does more of that, and with dkimverify).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "auth/base64.h"
#include "core/buf.h"
#include "smtp/dkim_canon.h"
#include "smtp/dkim_keys.h"
#include "smtp/dkim_sign.h"
#include "testutil.h"

/* Fixed keys, made once with `openssl genpkey`, so signatures are the
 * same on every run (RSASSA-PKCS1-v1_5 and Ed25519 are deterministic). */
static const char rsa_pem[] =
	"-----BEGIN PRIVATE KEY-----\n"
	"MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQD3IWZ+7nuA/ds5\n"
	"Iwe88DD8IAivImU3J/9w+p07oCwdHYksFSdYHyKX5ic1ndr6F6kFAGrNFAasxLPm\n"
	"AsKJHMk58jfJXJeCVIvXkYAOqxWpsElFmrbAnjf6nvgWJ/0ja6Wj1DHwRAh5w3ja\n"
	"sHO1rcGpPiRx7eqZwyn2d0YyFSIwenVsF+EPpyYp92XnUanuis4TJm+xGOVaNoAZ\n"
	"2wkl6E53LD9Hm49RG4kuOQSdfy3cJW0ERaXqIWX2EtG2u1YksPDW1rx4PyOaUlXf\n"
	"j4NaeHeS/fqhi/1I2FtKl7aJu4xzAzzegc4MoKmKfDvAS5Ocl5/8sTEiv3RokfGh\n"
	"YxTGkB5BAgMBAAECggEAEQzHXwOCFtSszsTZcFIb9xEYuEiFtif2yisoNOhokruq\n"
	"bpWpCL3hK5yv4NWauX1vZk5wj+SNT1ck2D4hgMcxJOPOsIBIXbAKk91QefKYxIPK\n"
	"klhJuoFP+GUGVbT9lHeFTofByENRWGFBkcjxuruZrF0Cs6+H64LY/s2c1LC7kp+F\n"
	"i3P7N0bY6YjWwPwFsV3bDhi971lmr+S43KmpPHY4S2tOxMeZ0aXMiRQR3sYi/G6v\n"
	"HP/Vd+881jqkJvSIB1ImUFBlOhMt5wTBFsPUdINqVa7mVEiEqeB0ceOHsw3xu+yU\n"
	"BBVCEa6VcERMhyQrCzX8EYC+CIcQDRG1M0i8PacEnwKBgQD/TMdSu4DzJ4u3YK60\n"
	"Qhpm1D4AlaKjlj74JHdQzkyioSpxj3/FMw7rBYVlljxZUqoEkR78gvZ1j93+QTK1\n"
	"A/9rhIPxhKoXtUHtXg81AgcYh0CD0rz4QT0VvAy+wQ8BN7WmAdx2jL/JFGsVK5K9\n"
	"F2og+gXrZVhcNN5bdUVD3vXMswKBgQD3zuMEpYGZU1emm/6O46OluhB9XrSet1id\n"
	"/VfWANfJEkzBdNMy/SW3uqhp5p7DhPFl638Sue6gCAXeJ49PsMbxdvjS6HZGkYsJ\n"
	"nMR9i7fXaTQp8CMhFw6ADW0Rgxw1EODUK6QsKVtdJLFkcJ3gjGxa43ungSfDLpdY\n"
	"2uarFwjLOwKBgGtfNDmEaKBbUnSmcfOYFZiHzSfbxxI7/3HHjHLswOhpFfu62Ybr\n"
	"iWuo38iw3eLHVIAlNL4IqnUZM8laTGQ7MTJcAk4SeKMN9ZNKSuUFXEyhna2TdSyH\n"
	"65P3ifi0I4Zkkr4l7D3jxklgkATQVZ+3eEg0P0cYUYg+KAKZGK+J1yDnAoGAA6Uj\n"
	"aboVge/b5jN9NxTaH2HxRCbUeVExGIHVfOxeQDLoth/Fy4Y1u9IfEA+4Xh/ifSFN\n"
	"qTTa8besfmwOi5mKE5swZcnNk5Qoe2e27DHV7nE5tzQ1EBOKvw9zf0Jyc8VfyT8r\n"
	"Fws0sNYNVfDiIZ9vKJcYBoq7zv8scr4ljna0RmkCgYEA04yrmFQifltPr9AHwfU4\n"
	"kQQuFk+pNGZ0Z1hdk/tjvevUL5RFJxc8FZIql6acuCrloTO4iB79lzup6M+kujPe\n"
	"TUjYLIpmcWUzbzLMltRNWA/mghV2kE4xaI3lU7T7LT6IUMUagYm/THpq7WLhFixU\n"
	"k45RJDJxyMdYMUeesg9xzCw=\n"
	"-----END PRIVATE KEY-----\n"
	;

static const char ed_pem[] =
	"-----BEGIN PRIVATE KEY-----\n"
	"MC4CAQAwBQYDK2VwBCIEIPsnRkl4fVR/NHcWh11apC8XR6qOWw4E3mUT6zLUMfK2\n"
	"-----END PRIVATE KEY-----\n";

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

struct sink {
	char data[1 << 16];
	size_t len;
	unsigned calls;
};

static void sink_out(void *ctx, const void *d, size_t n)
{
	struct sink *s = ctx;

	ck_assert_uint_le(s->len + n, sizeof(s->data));
	memcpy(s->data + s->len, d, n);
	s->len += n;
	s->calls++;
}

/* Canonicalize body in pieces: split = 0 whole, 1 byte by byte, else
 * two pieces cut at split - 2. Each piece is a guard-page copy. */
static void body_run(enum dkim_canon_alg alg, const char *in, size_t len, size_t split, struct sink *out)
{
	struct dkim_body_canon c;

	memset(out, 0, sizeof(*out));
	dkim_body_canon_init(&c, alg, sink_out, out);
	if (split == 0) {
		char *g = guard_copy(in, len);
		dkim_body_canon_feed(&c, g, len);
		guard_free(g, len);
	} else if (split == 1) {
		for (size_t i = 0; i < len; i++) {
			char *g = guard_copy(in + i, 1);
			dkim_body_canon_feed(&c, g, 1);
			guard_free(g, 1);
		}
	} else {
		size_t cut = split - 2;
		char *a = guard_copy(in, cut), *b = guard_copy(in + cut, len - cut);
		dkim_body_canon_feed(&c, a, cut);
		dkim_body_canon_feed(&c, b, len - cut);
		guard_free(a, cut);
		guard_free(b, len - cut);
	}
	dkim_body_canon_finish(&c);
	dkim_body_canon_feed(&c, "ignored", 7);   /* after finish: nothing */
	dkim_body_canon_finish(&c);
	ck_assert_uint_eq(dkim_body_canon_length(&c), out->len);
}

/* Check body canonicalization of in against want, whole, byte by byte and
 * cut at every position. */
static void body_expect(enum dkim_canon_alg alg, const char *in, size_t len, const char *want)
{
	struct sink *out = malloc(sizeof(*out));

	for (size_t split = 0; split <= len + 2; split++) {
		body_run(alg, in, len, split, out);
		ck_assert_msg(out->len == strlen(want) && memcmp(out->data, want, out->len) == 0,
			      "%s body of \"%.*s\" (split %zu): got \"%.*s\", want \"%s\"", dkim_canon_name(alg),
			      (int)len, in, split, (int)out->len, out->data, want);
	}
	free(out);
}

/* The same input with every lone LF made CRLF. */
static char *crlf_of(const char *in, size_t *len_r)
{
	size_t n = strlen(in);
	char *out = malloc(2 * n + 1);
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
			out[o++] = '\r';
		out[o++] = in[i];
	}
	out[o] = '\0';
	*len_r = o;
	return out;
}

static void sha256_b64(const void *data, size_t len, char out[64])
{
	unsigned char md[32];
	unsigned int n = 0;

	ck_assert_int_eq(EVP_Digest(data, len, md, &n, EVP_sha256(), NULL), 1);
	base64_encode(md, n, out);
}

static void load_key(const char *pem, const char *selector, struct dkim_key *key)
{
	char *error = NULL;

	ck_assert_msg(dkim_key_from_pem(pem, strlen(pem), selector, key, &error) == 0, "%s", error);
}

/* The n-th DKIM-Signature field of fields (with its line ends), copied. */
static char *nth_field(const char *fields, unsigned n)
{
	const char *p = fields;

	for (unsigned i = 0; ; i++) {
		ck_assert_msg(strncmp(p, "DKIM-Signature:", 15) == 0, "no field %u in %s", n, fields);
		const char *e = p;
		for (;;) {
			const char *lf = strchr(e, '\n');
			ck_assert_ptr_nonnull(lf);
			e = lf + 1;
			if (*e != ' ' && *e != '\t')
				break;
		}
		if (i == n)
			return strndup(p, (size_t)(e - p));
		p = e;
	}
}

/* A tag's value from a field, whitespace removed. */
static char *tag_value(const char *field, const char *tag)
{
	char pat[16];
	const char *p = NULL;

	for (const char *s = field; (s = strstr(s, tag)) != NULL; s++) {
		snprintf(pat, sizeof(pat), "%s=", tag);
		if (strncmp(s, pat, strlen(pat)) == 0 && (s[-1] == ' ' || s[-1] == '\t' || s[-1] == ';')) {
			p = s + strlen(pat);
			break;
		}
	}
	ck_assert_msg(p != NULL, "no %s= in %s", tag, field);
	char *v = malloc(strlen(p) + 1);
	size_t n = 0;
	for (; *p && *p != ';'; p++) {
		if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
			v[n++] = *p;
	}
	v[n] = '\0';
	return v;
}

/* Verify field (as dkim_signer_finish made it) over hdata, the canonical
 * header data written out by the test, with key's public half. Checks the
 * folding too: lines of at most 78 octets. */
static void verify_field(const char *field, const char *hdata, const struct dkim_key *key)
{
	const char *line = field;
	while (*line) {
		const char *lf = strchr(line, '\n');
		size_t n = (size_t)(lf - line);
		if (n > 0 && line[n - 1] == '\r')
			n--;
		ck_assert_msg(n <= 78, "line of %zu octets: %.*s", n, (int)n, line);
		line = lf + 1;
	}

	/* b= is the last tag: the field up to "b=" is what was signed. */
	const char *b = strstr(field, " b=");
	if (b == NULL)
		b = strstr(field, "\tb=");
	ck_assert_ptr_nonnull(b);
	size_t prefix = (size_t)(b + 3 - field);
	struct buf canon;
	buf_init(&canon, 1 << 16);
	ck_assert_int_gt(dkim_header_canon(DKIM_CANON_RELAXED, field, prefix, &canon), 2);

	unsigned char md[32];
	unsigned int mdlen = 0;
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	ck_assert_int_eq(EVP_DigestInit_ex(m, EVP_sha256(), NULL), 1);
	ck_assert_int_eq(EVP_DigestUpdate(m, hdata, strlen(hdata)), 1);
	ck_assert_int_eq(EVP_DigestUpdate(m, buf_ptr(&canon), buf_len(&canon) - 2), 1);
	ck_assert_int_eq(EVP_DigestFinal_ex(m, md, &mdlen), 1);
	EVP_MD_CTX_free(m);
	buf_free(&canon);

	char *b64 = tag_value(field, "b");
	unsigned char sig[1024];
	size_t sig_len = 0;
	ck_assert_int_eq(base64_decode(b64, strlen(b64), sig, sizeof(sig), &sig_len), 0);
	free(b64);

	int ok;
	if (key->type == DKIM_KEY_RSA) {
		EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key->pkey, NULL);
		ok = EVP_PKEY_verify_init(ctx) == 1 && EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1 &&
		     EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) == 1 &&
		     EVP_PKEY_verify(ctx, sig, sig_len, md, 32) == 1;
		EVP_PKEY_CTX_free(ctx);
	} else {
		EVP_MD_CTX *v = EVP_MD_CTX_new();
		ok = EVP_DigestVerifyInit(v, NULL, NULL, NULL, key->pkey) == 1 &&
		     EVP_DigestVerify(v, sig, sig_len, md, 32) == 1;
		EVP_MD_CTX_free(v);
	}
	ck_assert_msg(ok, "signature does not verify:\n%s\nover:\n%s", field, hdata);
}

/* Sign msg (fed in pieces of step octets; 0 = whole) and return the fields. */
static char *sign_msg(const char *msg, size_t step, const struct dkim_sign_options *opt, const char *domain,
		      const struct dkim_key *keys, size_t n_keys, const char *eol)
{
	struct dkim_signer *s = dkim_signer_new(opt);
	size_t len = strlen(msg);
	char *fields = NULL, *error = NULL;

	if (step == 0)
		step = len ? len : 1;
	for (size_t i = 0; i < len; i += step) {
		size_t n = len - i < step ? len - i : step;
		char *g = guard_copy(msg + i, n);
		dkim_signer_feed(s, g, n);
		guard_free(g, n);
	}
	ck_assert_msg(dkim_signer_finish(s, domain, keys, n_keys, 1700000000, eol, &fields, &error) == 0,
		      "%s", error);
	dkim_signer_free(&s);
	ck_assert_ptr_null(s);
	return fields;
}

/* ------------------------------------------------------------------ */
/* RFC 6376 3.4.6                                                      */

/*
 * The example of RFC 6376 3.4.6:
 *   A: <SP> X <CRLF>
 *   B <SP> : <SP> Y <HTAB><CRLF>
 *                 <HTAB> Z <SP><SP><CRLF>
 *   <CRLF>
 *   <SP> C <SP><CRLF>
 *   D <SP><HTAB><SP> E <CRLF>
 *   <CRLF>
 *   <CRLF>
 */
#define RFC_FIELD_A "A: X"
#define RFC_FIELD_B "B : Y\t\r\n\tZ  "
#define RFC_BODY " C \r\nD \t E\r\n\r\n\r\n"

START_TEST(rfc6376_346_headers)
{
	struct buf out;

	buf_init(&out, 4096);
	ck_assert_int_eq(dkim_header_canon(DKIM_CANON_RELAXED, RFC_FIELD_A, strlen(RFC_FIELD_A), &out), 5);
	ck_assert_int_eq(dkim_header_canon(DKIM_CANON_RELAXED, RFC_FIELD_B, strlen(RFC_FIELD_B), &out), 7);
	ck_assert_uint_eq(buf_len(&out), 12);
	ck_assert(memcmp(buf_ptr(&out), "a:X\r\nb:Y Z\r\n", 12) == 0);

	buf_reset(&out);
	dkim_header_canon(DKIM_CANON_SIMPLE, RFC_FIELD_A, strlen(RFC_FIELD_A), &out);
	dkim_header_canon(DKIM_CANON_SIMPLE, RFC_FIELD_B, strlen(RFC_FIELD_B), &out);
	const char *simple = "A: X\r\nB : Y\t\r\n\tZ  \r\n";
	ck_assert_uint_eq(buf_len(&out), strlen(simple));
	ck_assert(memcmp(buf_ptr(&out), simple, strlen(simple)) == 0);

	/* The same fields from our LF store. */
	buf_reset(&out);
	dkim_header_canon(DKIM_CANON_RELAXED, "B : Y\t\n\tZ  ", 11, &out);
	ck_assert_uint_eq(buf_len(&out), 7);
	ck_assert(memcmp(buf_ptr(&out), "b:Y Z\r\n", 7) == 0);
	buf_reset(&out);
	dkim_header_canon(DKIM_CANON_SIMPLE, "B : Y\t\n\tZ  ", 11, &out);
	ck_assert_uint_eq(buf_len(&out), 14);
	ck_assert(memcmp(buf_ptr(&out), "B : Y\t\r\n\tZ  \r\n", 14) == 0);
	buf_free(&out);
}
END_TEST

START_TEST(rfc6376_346_body)
{
	body_expect(DKIM_CANON_RELAXED, RFC_BODY, strlen(RFC_BODY), " C\r\nD E\r\n");
	body_expect(DKIM_CANON_SIMPLE, RFC_BODY, strlen(RFC_BODY), " C \r\nD \t E\r\n");
	/* As our store keeps it, with LF. */
	body_expect(DKIM_CANON_RELAXED, " C \nD \t E\n\n\n", 12, " C\r\nD E\r\n");
	body_expect(DKIM_CANON_SIMPLE, " C \nD \t E\n\n\n", 12, " C \r\nD \t E\r\n");
}
END_TEST

/* The whole example through the signer: the body hash and the header data
 * "a:X\r\nb:Y Z\r\n" that the signature covers. */
START_TEST(rfc6376_346_signed)
{
	static const char *const names[] = { "a", "b", NULL };
	static const char *const none[] = { NULL };
	struct dkim_sign_options opt;
	struct dkim_key key;
	char bh[64];
	const char *msg = RFC_FIELD_A "\r\n" RFC_FIELD_B "\r\n\r\n" RFC_BODY;

	dkim_sign_options_default(&opt);
	opt.headers = names;
	opt.oversign = none;
	load_key(ed_pem, "ed", &key);
	sha256_b64(" C\r\nD E\r\n", 9, bh);
	for (size_t step = 0; step <= strlen(msg); step++) {
		char *fields = sign_msg(msg, step, &opt, "example.com", &key, 1, "\r\n");
		char *h = tag_value(fields, "h"), *got_bh = tag_value(fields, "bh");
		ck_assert_str_eq(h, "from:a:b");   /* From is always in h= (RFC 6376 5.4) */
		ck_assert_str_eq(got_bh, bh);
		verify_field(fields, "a:X\r\nb:Y Z\r\n", &key);
		free(h);
		free(got_bh);
		free(fields);
	}
	dkim_key_free(&key);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Body canonicalization                                               */

static const struct {
	const char *in;         /* LF line ends; also tried with CRLF */
	const char *relaxed;
	const char *simple;
} body_cases[] = {
	/* Empty bodies: RFC 6376 3.4.3 (simple: one CRLF) and 3.4.4 with
	 * erratum 1384 (relaxed: nothing at all). */
	{ "", "", "\r\n" },
	{ "\n", "", "\r\n" },
	{ "\n\n\n\n", "", "\r\n" },
	{ " \n\t\n", "", " \r\n\t\r\n" },
	/* Trailing empty lines go, all but the line end of the last text. */
	{ "abc\n", "abc\r\n", "abc\r\n" },
	{ "abc\n\n\n", "abc\r\n", "abc\r\n" },
	{ "abc\n \n\t \n", "abc\r\n", "abc\r\n \r\n\t \r\n" },
	/* Empty lines inside the body stay. */
	{ "a\n\n\nb\n\n", "a\r\n\r\n\r\nb\r\n", "a\r\n\r\n\r\nb\r\n" },
	/* A last line without a line end gets one. */
	{ "abc", "abc\r\n", "abc\r\n" },
	{ "abc  \t", "abc\r\n", "abc  \t\r\n" },
	{ "a\n\nb", "a\r\n\r\nb\r\n", "a\r\n\r\nb\r\n" },
	/* WSP runs: one SP inside a line, nothing at its end; leading WSP is
	 * a run like any other. */
	{ "a  b\t\tc \t\n", "a b c\r\n", "a  b\t\tc \t\r\n" },
	{ "\t\tindented\n", " indented\r\n", "\t\tindented\r\n" },
	{ "x \n  \n y\n", "x\r\n\r\n y\r\n", "x \r\n  \r\n y\r\n" },
	/* A CR not followed by LF is text, not WSP and not a line end. */
	{ "a\rb\n", "a\rb\r\n", "a\rb\r\n" },
	{ "a \r \n", "a \r\r\n", "a \r \r\n" },
	{ "abc\r", "abc\r\r\n", "abc\r\r\n" },
	{ "\r", "\r\r\n", "\r\r\n" },
	{ "a\r\r\n", "a\r\r\n", "a\r\r\n" },
	/* Other octets pass through: 8-bit text, NUL-free binary. */
	{ "gr\xc3\xbc\xc3\x9f  dich\n", "gr\xc3\xbc\xc3\x9f dich\r\n", "gr\xc3\xbc\xc3\x9f  dich\r\n" },
};

START_TEST(body_table)
{
	const char *in = body_cases[_i].in;
	size_t crlf_len;
	char *crlf = crlf_of(in, &crlf_len);

	body_expect(DKIM_CANON_RELAXED, in, strlen(in), body_cases[_i].relaxed);
	body_expect(DKIM_CANON_SIMPLE, in, strlen(in), body_cases[_i].simple);
	body_expect(DKIM_CANON_RELAXED, crlf, crlf_len, body_cases[_i].relaxed);
	body_expect(DKIM_CANON_SIMPLE, crlf, crlf_len, body_cases[_i].simple);
	free(crlf);
}
END_TEST

/* Many trailing empty lines, longer than the output buffer: withheld as a
 * count, so nothing of them comes out; and many inside, which do. */
START_TEST(body_many_lines)
{
	size_t n = 10000;
	char *in = malloc(2 * n + 16);
	struct sink *out = malloc(sizeof(*out));

	strcpy(in, "x\n");
	memset(in + 2, '\n', n);
	in[2 + n] = '\0';
	body_run(DKIM_CANON_RELAXED, in, strlen(in), 0, out);
	ck_assert_uint_eq(out->len, 3);
	body_run(DKIM_CANON_SIMPLE, in, strlen(in), 1, out);
	ck_assert_uint_eq(out->len, 3);

	strcpy(in + 2 + n, "y\n");
	body_run(DKIM_CANON_RELAXED, in, strlen(in), 0, out);
	ck_assert_uint_eq(out->len, 3 + 2 * n + 3);
	ck_assert_uint_gt(out->calls, 1);   /* went out in batches */
	ck_assert(memcmp(out->data + out->len - 5, "\r\ny\r\n", 5) == 0);
	free(in);
	free(out);
}
END_TEST

/* The body hashes of RFC 6376's empty bodies. */
START_TEST(body_hash_empty)
{
	static const char *const msgs[] = {
		"From: a@example.com\n", "From: a@example.com\n\n", "From: a@example.com\r\n\r\n\r\n\r\n",
		"From: a@example.com\n\n \t \n\n",
	};
	struct dkim_key key;

	load_key(ed_pem, "ed", &key);
	for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
		struct dkim_sign_options opt;
		dkim_sign_options_default(&opt);
		for (int alg = 0; alg < 2; alg++) {
			opt.body_canon = alg ? DKIM_CANON_RELAXED : DKIM_CANON_SIMPLE;
			struct dkim_signer *s = dkim_signer_new(&opt);
			char *fields = NULL, *error = NULL;
			dkim_signer_feed(s, msgs[i], strlen(msgs[i]));
			ck_assert_int_eq(dkim_signer_finish(s, "example.com", &key, 1, 1, "\n", &fields, &error), 0);
			if (alg) {
				/* SHA-256 of "" */
				ck_assert_str_eq(dkim_signer_body_hash(s), "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
				ck_assert_uint_eq(dkim_signer_body_length(s), 0);
			} else if (i != 3) {
				/* SHA-256 of "\r\n" */
				ck_assert_str_eq(dkim_signer_body_hash(s), "frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=");
				ck_assert_uint_eq(dkim_signer_body_length(s), 2);
			}
			char *bh = tag_value(fields, "bh");
			ck_assert_str_eq(bh, dkim_signer_body_hash(s));
			ck_assert(strstr(fields, alg ? "c=relaxed/relaxed;" : "c=relaxed/simple;") != NULL);
			free(bh);
			free(fields);
			dkim_signer_free(&s);
		}
	}
	dkim_key_free(&key);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Header canonicalization                                             */

static const struct {
	const char *field;
	const char *relaxed;     /* NULL: refused */
	const char *simple;
} header_cases[] = {
	{ "Subject: Hello", "subject:Hello\r\n", "Subject: Hello\r\n" },
	{ "SUBJECT:Hello", "subject:Hello\r\n", "SUBJECT:Hello\r\n" },
	{ "Subject \t: \t Hello \t World \t", "subject:Hello World\r\n", "Subject \t: \t Hello \t World \t\r\n" },
	{ "Subject:", "subject:\r\n", "Subject:\r\n" },
	{ "Subject:   ", "subject:\r\n", "Subject:   \r\n" },
	/* Folded, with CRLF and with our store's LF; a fold right after the
	 * colon; several folds. */
	{ "Subject: a\r\n b", "subject:a b\r\n", "Subject: a\r\n b\r\n" },
	{ "Subject: a\n\tb\n  c", "subject:a b c\r\n", "Subject: a\r\n\tb\r\n  c\r\n" },
	{ "Subject:\n a", "subject:a\r\n", "Subject:\r\n a\r\n" },
	{ "References: <1@x>\n <2@x>\n\t<3@x>", "references:<1@x> <2@x> <3@x>\r\n",
	  "References: <1@x>\r\n <2@x>\r\n\t<3@x>\r\n" },
	/* A lone CR is not a line end and not WSP. */
	{ "X: a\rb", "x:a\rb\r\n", "X: a\rb\r\n" },
	/* The value's colons are text. */
	{ "Date: Mon, 1 Jan 2024 10:00:00 +0000", "date:Mon, 1 Jan 2024 10:00:00 +0000\r\n",
	  "Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n" },
	{ "no colon here", NULL, "no colon here\r\n" },
	{ ": no name", NULL, ": no name\r\n" },
};

START_TEST(header_table)
{
	const char *f = header_cases[_i].field;
	size_t len = strlen(f);
	char *g = guard_copy(f, len);
	struct buf out;

	buf_init(&out, 4096);
	int n = dkim_header_canon(DKIM_CANON_RELAXED, g, len, &out);
	if (header_cases[_i].relaxed == NULL) {
		ck_assert_int_eq(n, -1);
		ck_assert_uint_eq(buf_len(&out), 0);
	} else {
		ck_assert_int_eq(n, (int)strlen(header_cases[_i].relaxed));
		ck_assert_msg(buf_len(&out) == (size_t)n && memcmp(buf_ptr(&out), header_cases[_i].relaxed, (size_t)n) == 0,
			      "relaxed \"%s\": got \"%.*s\"", f, (int)buf_len(&out), buf_ptr(&out));
	}
	buf_reset(&out);
	n = dkim_header_canon(DKIM_CANON_SIMPLE, g, len, &out);
	ck_assert_int_eq(n, (int)strlen(header_cases[_i].simple));
	ck_assert(memcmp(buf_ptr(&out), header_cases[_i].simple, (size_t)n) == 0);
	buf_free(&out);

	/* Too little room: refused, nothing appended. */
	buf_init(&out, 8);
	buf_append(&out, "abc", 3);
	ck_assert_int_eq(dkim_header_canon(DKIM_CANON_SIMPLE, g, len, &out), -1);
	ck_assert_int_eq(dkim_header_canon(DKIM_CANON_RELAXED, g, len, &out), -1);
	ck_assert_uint_eq(buf_len(&out), 3);
	buf_free(&out);
	guard_free(g, len);
}
END_TEST

/* Verified with python3-dkim (dkim.verify) when it was recorded. */
#define GOLDEN_ED25519 \
	"DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed; d=example.org;\n" \
	"\ts=ed25519-202401; t=1700000000; h=from:from:to:subject;\n" \
	"\tbh=Ba3gj8+xBPQLJTahTfzW6RbWQ/XPgESxkCi2B66PSQg=; b=f4mOiybu0KlNUkNaunVzxwNdY4\n" \
	"\tWkbzQ1tjOTo5/aef2cvBnFhDIaGAcRXsvmh/4Ge8GSOwlVXe+4hos40COdDw==\n"

/* ------------------------------------------------------------------ */
/* Known answers from another implementation                           */

/* The example message of RFC 6376 Appendix A signed with the Ed25519
 * sample key of RFC 8032 7.1 (test 1), which RFC 8463 Appendix A uses:
 * with c=simple/simple as in dkimpy's test data (rfc6376.signed.msg), and
 * with c=relaxed/relaxed as in RFC 8463 A.3. */
#define KA_HEADERS \
	"From: Joe SixPack <joe@football.example.com>\n" \
	"To: Suzie Q <suzie@shopping.example.net>\n" \
	"Subject: Is dinner ready?\n" \
	"Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\n" \
	"Message-ID: <20030712040037.46341.5F8J@football.example.com>\n"
#define KA_BODY "Hi.\n\nWe lost the game.  Are you hungry yet?\n\nJoe.\n\n"
#define KA_SIG_FIELD \
	"DKIM-Signature: v=1; a=ed25519-sha256; c=simple/simple; \n" \
	" d=football.example.com; i=@football.example.com; \n" \
	" q=dns/txt; s=brisbane; t=1518460054; h=from : to : \n" \
	" subject : date : message-id : from : subject : date; \n" \
	" bh=4bLNXImK9drULnmePzZNEBleUanJCX5PIsDIFoH4KTQ=; \n" \
	" b="
#define KA_B "9/dsDChY0YMTtD5Eyw3wx7x22BlSJP7M5ECbJ7GWrR45nXlTCGb8l0YBo0wBLR++X5LqmsxXaOYLLJe46l10AQ=="
/* RFC 8463 Appendix A.3 itself: the same message, c=relaxed/relaxed. */
#define KA_SIG_FIELD_RELAXED \
	"DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;\n" \
	" d=football.example.com; i=@football.example.com;\n" \
	" q=dns/txt; s=brisbane; t=1528637909; h=from : to :\n" \
	" subject : date : message-id : from : subject : date;\n" \
	" bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\n" \
	" b="
#define KA_B_RELAXED "/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11BusFa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw=="
/* RFC 8032 7.1 test 1: secret key and public key. */
static const unsigned char rfc8032_secret[32] = {
	0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c, 0xc4,
	0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60,
};

START_TEST(known_answer_rfc8463)
{
	/* Body hashes: simple as in the signature above; relaxed as in
	 * RFC 8463 Appendix A.3. */
	struct dkim_sign_options opt;
	struct dkim_key key;
	char *fields = NULL, *error = NULL;

	memset(&key, 0, sizeof(key));
	key.pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, rfc8032_secret, 32);
	ck_assert_ptr_nonnull(key.pkey);
	key.type = DKIM_KEY_ED25519;
	key.bits = 256;
	key.selector = strdup("brisbane");

	for (int alg = 0; alg < 2; alg++) {
		dkim_sign_options_default(&opt);
		opt.body_canon = alg ? DKIM_CANON_RELAXED : DKIM_CANON_SIMPLE;
		struct dkim_signer *s = dkim_signer_new(&opt);
		dkim_signer_feed(s, KA_HEADERS "\n" KA_BODY, strlen(KA_HEADERS "\n" KA_BODY));
		ck_assert_int_eq(dkim_signer_finish(s, "football.example.com", &key, 1, 1528637909, "\n", &fields,
						    &error), 0);
		ck_assert_str_eq(dkim_signer_body_hash(s), alg ? "2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8="
							       : "4bLNXImK9drULnmePzZNEBleUanJCX5PIsDIFoH4KTQ=");
		free(fields);
		dkim_signer_free(&s);
	}

	/* The header hash: the h= fields from the bottom up (the second
	 * from, subject and date do not exist and add nothing), simple, then
	 * the signature field with an empty b= and no final CRLF. */
	struct buf data;
	buf_init(&data, 8192);
	const char *h[] = { "From: Joe SixPack <joe@football.example.com>", "To: Suzie Q <suzie@shopping.example.net>",
			    "Subject: Is dinner ready?", "Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)",
			    "Message-ID: <20030712040037.46341.5F8J@football.example.com>" };
	for (size_t i = 0; i < 5; i++)
		ck_assert_int_gt(dkim_header_canon(DKIM_CANON_SIMPLE, h[i], strlen(h[i]), &data), 0);
	ck_assert_int_gt(dkim_header_canon(DKIM_CANON_SIMPLE, KA_SIG_FIELD, strlen(KA_SIG_FIELD), &data), 0);
	unsigned char md[32], sig[128];
	unsigned int mdlen;
	size_t sig_len = sizeof(sig);
	ck_assert_int_eq(EVP_Digest(buf_ptr(&data), buf_len(&data) - 2, md, &mdlen, EVP_sha256(), NULL), 1);
	ck_assert_int_eq(dkim_sign_hash(&key, md, sig, &sig_len, &error), 0);
	char b64[128];
	base64_encode(sig, sig_len, b64);
	ck_assert_str_eq(b64, KA_B);

	/* And relaxed, as in RFC 8463 A.3. */
	buf_reset(&data);
	for (size_t i = 0; i < 5; i++)
		ck_assert_int_gt(dkim_header_canon(DKIM_CANON_RELAXED, h[i], strlen(h[i]), &data), 0);
	ck_assert_int_gt(dkim_header_canon(DKIM_CANON_RELAXED, KA_SIG_FIELD_RELAXED, strlen(KA_SIG_FIELD_RELAXED),
					   &data), 0);
	ck_assert_int_eq(EVP_Digest(buf_ptr(&data), buf_len(&data) - 2, md, &mdlen, EVP_sha256(), NULL), 1);
	sig_len = sizeof(sig);
	ck_assert_int_eq(dkim_sign_hash(&key, md, sig, &sig_len, &error), 0);
	base64_encode(sig, sig_len, b64);
	ck_assert_str_eq(b64, KA_B_RELAXED);

	/* The published key of RFC 8463 A.2 is what we would publish. */
	char *txt = dkim_key_txt_value(&key);
	ck_assert_str_eq(txt, "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
	free(txt);
	buf_free(&data);
	dkim_key_free(&key);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Signing                                                             */

/* A message with long folded header fields, repeated To fields, List-
 * fields, unsigned fields, and a body with trailing blank lines. */
#define MSG_HEADERS \
	"Received: from client (client [192.0.2.1]) by mx.example.org\n" \
	"\twith ESMTPSA id 1234; Mon, 1 Jan 2024 10:00:00 +0000\n" \
	"From: \"Alice Example\" <alice@Example.ORG>\n" \
	"To: bob@example.net\n" \
	"Subject: A subject that is long enough that it has to be folded over\n" \
	"   more than one line, \t with    odd   spacing\n" \
	"To: carol@example.net\n" \
	"Date: Mon, 1 Jan 2024 10:00:00 +0000\n" \
	"Message-ID: <abc@example.org>\n" \
	"References: <1@example.org>\n <2@example.org>\n <3@example.org>\n" \
	"List-Id: Test list <test.example.org>\n" \
	"List-Unsubscribe: <mailto:leave@example.org>\n" \
	"List-Bad;name: not a plain name\n" \
	"X-Mailer: test\n" \
	"MIME-Version: 1.0\n" \
	"Content-Type: text/plain; charset=utf-8\n"
#define MSG_BODY "Hello  Bob, \t\n\nsecond paragraph\n\n\n\n"

/* What a verifier hashes for h=, written out: from:from:to:to:subject:date:
 * message-id:references:mime-version:content-type:list-id:list-unsubscribe;
 * repeated To fields from the bottom up. */
#define MSG_HDATA \
	"from:\"Alice Example\" <alice@Example.ORG>\r\n" \
	"to:carol@example.net\r\n" \
	"to:bob@example.net\r\n" \
	"subject:A subject that is long enough that it has to be folded over more than one line, with odd spacing\r\n" \
	"date:Mon, 1 Jan 2024 10:00:00 +0000\r\n" \
	"message-id:<abc@example.org>\r\n" \
	"references:<1@example.org> <2@example.org> <3@example.org>\r\n" \
	"mime-version:1.0\r\n" \
	"content-type:text/plain; charset=utf-8\r\n" \
	"list-id:Test list <test.example.org>\r\n" \
	"list-unsubscribe:<mailto:leave@example.org>\r\n"
#define MSG_H "from:from:to:to:subject:date:message-id:references:mime-version:content-type:list-id:list-unsubscribe"

static void check_tag(const char *field, const char *tag, const char *want)
{
	char *v = tag_value(field, tag);
	ck_assert_msg(strcmp(v, want) == 0, "%s=%s, want %s", tag, v, want);
	free(v);
}

START_TEST(sign_and_verify)
{
	struct dkim_key keys[2];
	const char *msg = MSG_HEADERS "\n" MSG_BODY;
	char bh[64];

	load_key(rsa_pem, "rsa-test", &keys[0]);
	load_key(ed_pem, "ed25519-test", &keys[1]);
	ck_assert_int_eq(keys[0].type, DKIM_KEY_RSA);
	ck_assert_uint_eq(keys[0].bits, 2048);
	ck_assert_int_eq(keys[1].type, DKIM_KEY_ED25519);
	sha256_b64("Hello Bob,\r\n\r\nsecond paragraph\r\n", 32, bh);

	char *fields = sign_msg(msg, 0, NULL, "example.org", keys, 2, "\n");
	for (unsigned k = 0; k < 2; k++) {
		char *f = nth_field(fields, k);
		check_tag(f, "v", "1");
		check_tag(f, "a", k ? "ed25519-sha256" : "rsa-sha256");
		check_tag(f, "c", "relaxed/relaxed");
		check_tag(f, "d", "example.org");
		check_tag(f, "s", keys[k].selector);
		check_tag(f, "t", "1700000000");
		check_tag(f, "h", MSG_H);
		check_tag(f, "bh", bh);
		ck_assert(strstr(f, "\r") == NULL);   /* eol "\n" */
		verify_field(f, MSG_HDATA, &keys[k]);
		free(f);
	}

	/* The same message as it travels (CRLF), signed with CRLF eol, fed
	 * in pieces of every size: the same fields, but for the line ends. */
	size_t crlf_len;
	char *crlf = crlf_of(msg, &crlf_len);
	for (size_t step = 1; step <= crlf_len; step += step < 40 ? 1 : 97) {
		char *f2 = sign_msg(crlf, step, NULL, "example.org", keys, 2, "\r\n");
		size_t n;
		char *f2_lf = crlf_of(fields, &n);
		ck_assert_str_eq(f2, f2_lf);
		free(f2_lf);
		free(f2);
	}
	free(crlf);
	free(fields);
	dkim_key_free(&keys[0]);
	dkim_key_free(&keys[1]);
}
END_TEST

/* Ed25519 signatures are deterministic (RFC 8032 5.1.6): the exact output
 * for a fixed key, message and time, checked once with python3-dkim. */
START_TEST(sign_golden)
{
	struct dkim_key key;
	const char *msg = "From: alice@example.org\nTo: bob@example.net\nSubject: hi\n\nHello\n";

	load_key(ed_pem, "ed25519-202401", &key);
	char *fields = sign_msg(msg, 0, NULL, "example.org", &key, 1, "\n");
	ck_assert_str_eq(fields, GOLDEN_ED25519);
	free(fields);
	dkim_key_free(&key);
}
END_TEST

START_TEST(sign_no_from_no_body)
{
	struct dkim_key key;

	load_key(ed_pem, "ed", &key);
	/* No From at all: h=from still (RFC 6376 5.4), contributing nothing. */
	char *f = sign_msg("Subject: x\n", 0, NULL, "example.org", &key, 1, "\n");
	char *h = tag_value(f, "h");
	ck_assert_str_eq(h, "from:subject");
	verify_field(f, "subject:x\r\n", &key);
	free(h);
	free(f);
	/* No header section at all. */
	f = sign_msg("\nbody\n", 0, NULL, "example.org", &key, 1, "\n");
	h = tag_value(f, "h");
	ck_assert_str_eq(h, "from");
	verify_field(f, "", &key);
	free(h);
	free(f);
	/* An empty message. */
	f = sign_msg("", 0, NULL, "example.org", &key, 1, "\n");
	verify_field(f, "", &key);
	free(f);
	dkim_key_free(&key);
}
END_TEST

START_TEST(sign_errors)
{
	struct dkim_key key;
	char *fields = NULL, *error = NULL;
	size_t big = DKIM_SIGN_FIELD_MAX + 100;
	char *line = malloc(big + 32);

	load_key(ed_pem, "ed", &key);
	/* A signed field past the limit cannot be signed... */
	struct dkim_signer *s = dkim_signer_new(NULL);
	dkim_signer_feed(s, "From: a@example.org\nSubject: ", 29);
	memset(line, 'x', big);
	dkim_signer_feed(s, line, big);
	dkim_signer_feed(s, "\n\nbody\n", 7);
	ck_assert_int_eq(dkim_signer_finish(s, "example.org", &key, 1, 1, "\n", &fields, &error), -1);
	ck_assert_ptr_null(fields);
	ck_assert_ptr_nonnull(strstr(error, "subject"));
	free(error);
	dkim_signer_free(&s);

	/* ...an unsigned one is only skipped. */
	s = dkim_signer_new(NULL);
	dkim_signer_feed(s, "From: a@example.org\nX-Huge: ", 28);
	dkim_signer_feed(s, line, big);
	dkim_signer_feed(s, "\n\nbody\n", 7);
	ck_assert_int_eq(dkim_signer_finish(s, "example.org", &key, 1, 1, "\n", &fields, &error), 0);
	free(fields);
	dkim_signer_free(&s);

	/* Too many signed fields. */
	s = dkim_signer_new(NULL);
	for (int i = 0; i <= DKIM_SIGN_FIELDS_MAX; i++)
		dkim_signer_feed(s, "To: a@example.org\n", 18);
	dkim_signer_feed(s, "\n", 1);
	ck_assert_int_eq(dkim_signer_finish(s, "example.org", &key, 1, 1, "\n", &fields, &error), -1);
	free(error);
	dkim_signer_free(&s);

	/* Bad domain, no keys. */
	s = dkim_signer_new(NULL);
	dkim_signer_feed(s, "From: a@example.org\n\n", 21);
	ck_assert_int_eq(dkim_signer_finish(s, "exa mple.org", &key, 1, 1, "\n", &fields, &error), -1);
	free(error);
	dkim_signer_free(&s);
	s = dkim_signer_new(NULL);
	ck_assert_int_eq(dkim_signer_finish(s, "example.org", &key, 0, 1, "\n", &fields, &error), -1);
	free(error);
	dkim_signer_free(&s);
	dkim_signer_free(&s);   /* NULL: nothing */
	free(line);
	dkim_key_free(&key);
}
END_TEST

/* ------------------------------------------------------------------ */
/* The author's domain                                                 */

static const struct {
	const char *msg;
	const char *domain;   /* NULL: none */
} from_cases[] = {
	{ "From: alice@example.org\n\n", "example.org" },
	{ "from: Alice <alice@Example.ORG>\n\n", "example.org" },
	{ "From: alice@example.org (Alice, at work)\n\n", "example.org" },
	{ "From: \"Smith, J. <js@evil.example>\" <js@good.example>\n\n", "good.example" },
	{ "From: =?utf-8?q?a@evil.example?= <real@good.example>\n\n", "good.example" },
	{ "From: Alice\n  <alice@folded.example>\n\n", "folded.example" },
	{ "From: \"a\\\"@b\" <c@d.example>\n\n", "d.example" },
	{ "From: <alice@example.org>\r\n\r\n", "example.org" },
	{ "From: alice@[192.0.2.1]\n\n", NULL },
	{ "From: a@example.org, b@example.net\n\n", NULL },
	{ "From: undisclosed-recipients:;\n\n", NULL },
	{ "From: nobody\n\n", NULL },
	{ "From: Alice <alice@example.org\n\n", NULL },
	{ "From: a@example.org\nFrom: b@example.net\n\n", NULL },
	{ "Subject: no from\n\n", NULL },
	{ "From: a@example.org", "example.org" },   /* ends inside the headers */
};

START_TEST(from_domain)
{
	struct dkim_signer *s = dkim_signer_new(NULL);
	const char *msg = from_cases[_i].msg;

	dkim_signer_feed(s, msg, strlen(msg));
	if (strstr(msg, "\n\n") != NULL || strstr(msg, "\r\n\r\n") != NULL)
		ck_assert(dkim_signer_headers_done(s));
	else
		ck_assert(!dkim_signer_headers_done(s));
	dkim_signer_end(s);
	ck_assert(dkim_signer_headers_done(s));
	char *d = dkim_signer_from_domain(s);
	if (from_cases[_i].domain == NULL)
		ck_assert_msg(d == NULL, "%s: got %s", msg, d);
	else
		ck_assert_msg(d != NULL && strcmp(d, from_cases[_i].domain) == 0, "%s: got %s", msg, d ? d : "NULL");
	free(d);
	dkim_signer_free(&s);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Keys                                                                */

static char tmpdir[64];

static void write_file(const char *path, const char *text, size_t len)
{
	FILE *f = fopen(path, "wb");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(text, 1, len, f), len);
	ck_assert_int_eq(fclose(f), 0);
}

static void make_tmpdir(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/postbote-dkim-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void rm_tmpdir(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
}

START_TEST(keys_generate_write_load)
{
	struct dkim_key rsa, ed, k;
	char *error = NULL;
	bool exists;

	make_tmpdir();
	char *data = NULL;
	ck_assert_int_ne(asprintf(&data, "%s/data", tmpdir), -1);
	ck_assert_int_eq(dkim_key_generate(DKIM_KEY_RSA, 0, "rsa-1", &rsa, &error), 0);
	ck_assert_uint_eq(rsa.bits, 2048);
	ck_assert_int_eq(dkim_key_generate(DKIM_KEY_ED25519, 0, "ed-1", &ed, &error), 0);
	ck_assert_uint_eq(ed.bits, 256);
	ck_assert_int_eq(dkim_key_generate(DKIM_KEY_RSA, 512, "x", &k, &error), -1);
	free(error);

	char *rsa_path = dkim_key_path(data, "example.org", "rsa-1");
	char *ed_path = dkim_key_path(data, "example.org", "ed-1");
	ck_assert_int_eq(dkim_key_write(&rsa, rsa_path, false, (uid_t)-1, (gid_t)-1, &exists, &error), 0);
	ck_assert_int_eq(dkim_key_write(&ed, ed_path, false, (uid_t)-1, (gid_t)-1, &exists, &error), 0);
	struct stat st;
	ck_assert_int_eq(stat(rsa_path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0600);
	char *dir = dkim_key_dir(data, "example.org");
	ck_assert_int_eq(stat(dir, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0700);
	ck_assert_int_eq(stat(data, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0750);
	free(dir);

	/* No overwrite without asking; with asking, replaced. */
	ck_assert_int_eq(dkim_key_write(&ed, rsa_path, false, (uid_t)-1, (gid_t)-1, &exists, &error), -1);
	ck_assert(exists);
	free(error);
	ck_assert_int_eq(dkim_key_load(rsa_path, "rsa-1", &k, &error), 0);
	ck_assert_int_eq(k.type, DKIM_KEY_RSA);
	ck_assert_int_eq(EVP_PKEY_eq(k.pkey, rsa.pkey), 1);
	dkim_key_free(&k);

	/* The set: sorted by selector, junk ignored. */
	char *junk = NULL;
	ck_assert_int_ne(asprintf(&junk, "%s/dkim/example.org/README", data), -1);
	FILE *f = fopen(junk, "w");
	fputs("not a key\n", f);
	fclose(f);
	free(junk);
	struct dkim_keyset set;
	ck_assert_int_eq(dkim_keyset_load(data, "Example.ORG", &set, &error), 0);
	ck_assert_str_eq(set.domain, "example.org");
	ck_assert_uint_eq(set.n_keys, 2);
	ck_assert_str_eq(set.keys[0].selector, "ed-1");
	ck_assert_str_eq(set.keys[1].selector, "rsa-1");
	dkim_keyset_free(&set);

	/* A domain without a folder has no keys; that is no error. */
	ck_assert_int_eq(dkim_keyset_load(data, "example.net", &set, &error), 0);
	ck_assert_uint_eq(set.n_keys, 0);
	dkim_keyset_free(&set);

	/* The ring. */
	char *domains[] = { "example.org", "example.net" };
	struct dkim_keyring ring;
	ck_assert_int_eq(dkim_keyring_load(data, domains, 2, &ring, &error), 0);
	ck_assert_uint_eq(ring.n_sets, 1);
	ck_assert_ptr_nonnull(dkim_keyring_find(&ring, "EXAMPLE.org"));
	ck_assert_ptr_null(dkim_keyring_find(&ring, "example.net"));
	dkim_keyring_free(&ring);

	/* Overwrite, then a broken key file breaks the set. */
	ck_assert_int_eq(dkim_key_write(&ed, rsa_path, true, (uid_t)-1, (gid_t)-1, &exists, &error), 0);
	ck_assert_int_eq(dkim_key_load(rsa_path, "rsa-1", &k, &error), 0);
	ck_assert_int_eq(k.type, DKIM_KEY_ED25519);
	dkim_key_free(&k);
	f = fopen(rsa_path, "w");
	fputs("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", f);
	fclose(f);
	ck_assert_int_eq(dkim_keyset_load(data, "example.org", &set, &error), -1);
	ck_assert_ptr_nonnull(strstr(error, rsa_path));
	free(error);
	ck_assert_int_eq(dkim_keyring_load(data, domains, 2, &ring, &error), -1);
	ck_assert_uint_eq(ring.n_sets, 0);
	free(error);

	/* Keys that cannot sign DKIM: small RSA, EC. */
	EVP_PKEY *small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)512);
	EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	ck_assert_ptr_nonnull(small);
	ck_assert_ptr_nonnull(ec);
	struct dkim_key tmp = { .selector = (char *)"x", .pkey = small };
	ck_assert_int_eq(dkim_key_write(&tmp, rsa_path, true, (uid_t)-1, (gid_t)-1, &exists, &error), 0);
	ck_assert_int_eq(dkim_key_load(rsa_path, "x", &k, &error), -1);
	ck_assert_ptr_nonnull(strstr(error, "too small"));
	free(error);
	tmp.pkey = ec;
	ck_assert_int_eq(dkim_key_write(&tmp, rsa_path, true, (uid_t)-1, (gid_t)-1, &exists, &error), 0);
	ck_assert_int_eq(dkim_key_load(rsa_path, "x", &k, &error), -1);
	ck_assert_ptr_nonnull(strstr(error, "RSA or Ed25519"));
	free(error);
	EVP_PKEY_free(small);
	EVP_PKEY_free(ec);

	free(rsa_path);
	free(ed_path);
	free(data);
	dkim_key_free(&rsa);
	dkim_key_free(&ed);
	rm_tmpdir();
}
END_TEST

/* The helper the queue uses: a spool file with our Return-Path line in
 * front, keys from the ring, d= from the From address. */
START_TEST(sign_file)
{
	struct dkim_key ed;
	struct dkim_keyring ring;
	char *error = NULL, *fields = NULL;
	bool exists;

	make_tmpdir();
	char *data = NULL, *key_path = NULL, *spool = NULL;
	ck_assert_int_ne(asprintf(&data, "%s/data", tmpdir), -1);
	ck_assert_int_ne(asprintf(&spool, "%s/spool", tmpdir), -1);
	load_key(ed_pem, "ed25519-test", &ed);
	key_path = dkim_key_path(data, "example.org", "ed25519-test");
	ck_assert_int_eq(dkim_key_write(&ed, key_path, false, (uid_t)-1, (gid_t)-1, &exists, &error), 0);
	char *domains[] = { "example.org", "example.net" };
	ck_assert_int_eq(dkim_keyring_load(data, domains, 2, &ring, &error), 0);

	const char *prefix = "Return-Path: <alice@example.org>\n";
	const char *msg = "From: \"Alice\" <alice@example.org>\nTo: bob@example.net\nSubject: hi\n\nHello\n\n";
	char *file = NULL;
	ck_assert_int_ne(asprintf(&file, "%s%s", prefix, msg), -1);
	write_file(spool, file, strlen(file));

	/* d= from From; the same fields as signing the message itself. */
	ck_assert_int_eq(dkim_sign_file(spool, strlen(prefix), &ring, NULL, 1700000000, "\n", &fields, &error), 0);
	ck_assert_ptr_nonnull(fields);
	char *direct = sign_msg(msg, 0, NULL, "example.org", &ed, 1, "\n");
	ck_assert_str_eq(fields, direct);
	free(direct);
	free(fields);
	/* A domain without keys, or a From elsewhere: nothing to sign. */
	ck_assert_int_eq(dkim_sign_file(spool, strlen(prefix), &ring, "example.net", 1, "\n", &fields, &error), 0);
	ck_assert_ptr_null(fields);
	write_file(spool, "From: x@example.net\n\nbody\n", 26);
	ck_assert_int_eq(dkim_sign_file(spool, 0, &ring, NULL, 1, "\n", &fields, &error), 0);
	ck_assert_ptr_null(fields);
	/* Given a domain with keys, that domain signs whatever From says. */
	ck_assert_int_eq(dkim_sign_file(spool, 0, &ring, "Example.ORG", 1, "\n", &fields, &error), 0);
	ck_assert_ptr_nonnull(strstr(fields, "d=example.org;"));
	free(fields);
	/* Errors: no file; a limit passed. */
	ck_assert_int_eq(dkim_sign_file("/nonexistent/x", 0, &ring, "example.org", 1, "\n", &fields, &error), -1);
	free(error);
	FILE *f = fopen(spool, "w");
	fputs("From: a@example.org\nSubject: ", f);
	for (int i = 0; i < DKIM_SIGN_FIELD_MAX; i++)
		fputc('x', f);
	fputs("\n\nbody\n", f);
	fclose(f);
	ck_assert_int_eq(dkim_sign_file(spool, 0, &ring, NULL, 1, "\n", &fields, &error), -1);
	ck_assert_ptr_null(fields);
	free(error);

	dkim_keyring_free(&ring);
	dkim_key_free(&ed);
	free(file);
	free(key_path);
	free(spool);
	free(data);
	rm_tmpdir();
}
END_TEST

START_TEST(keys_txt_record)
{
	struct dkim_key rsa, ed;

	load_key(rsa_pem, "r", &rsa);
	load_key(ed_pem, "e", &ed);
	char *v = dkim_key_txt_value(&rsa);
	ck_assert(strncmp(v, "v=DKIM1; k=rsa; p=", 18) == 0);
	/* p= is the DER SubjectPublicKeyInfo of the key. */
	unsigned char der[1024];
	size_t der_len;
	ck_assert_int_eq(base64_decode(v + 18, strlen(v + 18), der, sizeof(der), &der_len), 0);
	const unsigned char *p = der;
	EVP_PKEY *pub = d2i_PUBKEY(NULL, &p, (long)der_len);
	ck_assert_ptr_nonnull(pub);
	ck_assert_int_eq(EVP_PKEY_eq(pub, rsa.pkey), 1);
	EVP_PKEY_free(pub);

	/* Zone strings: at most 255 octets each, joined = the value. */
	char *z = dkim_txt_zone_strings(v);
	ck_assert_uint_gt(strlen(v), 255);
	size_t joined_len = 0, strings = 0;
	char *joined = malloc(strlen(v) + 1);
	for (const char *q = z; *q;) {
		ck_assert_int_eq(*q, '"');
		const char *e = strchr(q + 1, '"');
		ck_assert_uint_le((size_t)(e - q - 1), 255);
		memcpy(joined + joined_len, q + 1, (size_t)(e - q - 1));
		joined_len += (size_t)(e - q - 1);
		strings++;
		q = e + 1;
		if (*q == ' ')
			q++;
	}
	joined[joined_len] = '\0';
	ck_assert_str_eq(joined, v);
	ck_assert_uint_eq(strings, 2);
	free(joined);
	free(z);
	free(v);

	v = dkim_key_txt_value(&ed);
	ck_assert(strncmp(v, "v=DKIM1; k=ed25519; p=", 22) == 0);
	ck_assert_uint_eq(strlen(v + 22), 44);   /* 32 octets, RFC 8463 4.2 */
	z = dkim_txt_zone_strings(v);
	ck_assert_uint_eq(strlen(z), strlen(v) + 2);
	free(z);
	free(v);

	z = dkim_txt_zone_strings("");
	ck_assert_str_eq(z, "\"\"");
	free(z);
	char long_value[600];
	memset(long_value, 'a', 510);
	long_value[510] = '\0';
	z = dkim_txt_zone_strings(long_value);
	ck_assert_uint_eq(strlen(z), 510 + 2 * 2 + 1);   /* "255" "255" */
	free(z);
	dkim_key_free(&rsa);
	dkim_key_free(&ed);
}
END_TEST

START_TEST(names)
{
	ck_assert(dkim_selector_valid("rsa-202406"));
	ck_assert(dkim_selector_valid("a.b"));
	ck_assert(dkim_selector_valid("s1"));
	ck_assert(!dkim_selector_valid(""));
	ck_assert(!dkim_selector_valid("../x"));
	ck_assert(!dkim_selector_valid(".x"));
	ck_assert(!dkim_selector_valid("x."));
	ck_assert(!dkim_selector_valid("-x"));
	ck_assert(!dkim_selector_valid("x_y"));
	ck_assert(!dkim_selector_valid("a/b"));
	char s64[65];
	memset(s64, 'a', 64);
	s64[64] = '\0';
	ck_assert(!dkim_selector_valid(s64));
	ck_assert(dkim_domain_valid("example.org"));
	ck_assert(!dkim_domain_valid("example..org"));
	ck_assert(!dkim_domain_valid("exa mple.org"));
	enum dkim_key_type t;
	ck_assert_int_eq(dkim_key_type_parse("rsa", &t), 0);
	ck_assert_int_eq(t, DKIM_KEY_RSA);
	ck_assert_int_eq(dkim_key_type_parse("ed25519", &t), 0);
	ck_assert_int_eq(t, DKIM_KEY_ED25519);
	ck_assert_int_eq(dkim_key_type_parse("dsa", &t), -1);
	ck_assert_str_eq(dkim_key_algorithm(DKIM_KEY_ED25519), "ed25519-sha256");
	ck_assert_str_eq(dkim_key_algorithm(DKIM_KEY_RSA), "rsa-sha256");
}
END_TEST

/* ------------------------------------------------------------------ */
/* python3-dkim, when installed                                        */

static const char verify_py[] =
	"import sys\n"
	"try:\n"
	"    import dkim\n"
	"except ImportError:\n"
	"    sys.exit(77)\n"
	"msg = open(sys.argv[1], 'rb').read()\n"
	"recs = {}\n"
	"for line in open(sys.argv[2], 'rb').read().splitlines():\n"
	"    name, value = line.split(b'\\t', 1)\n"
	"    recs[name] = value\n"
	"def dnsfunc(name, timeout=5):\n"
	"    return recs.get(name)\n"
	"n = sum(1 for l in msg.split(b'\\r\\n\\r\\n')[0].split(b'\\r\\n') if l.lower().startswith(b'dkim-signature:'))\n"
	"d = dkim.DKIM(msg)\n"
	"ok = n > 0 and all(d.verify(idx=i, dnsfunc=dnsfunc) for i in range(n))\n"
	"print('python3-dkim: %d signature(s) %s' % (n, 'verified' if ok else 'FAILED'))\n"
	"sys.exit(0 if ok else 1)\n";


START_TEST(python_verifies)
{
	struct dkim_key keys[2];
	const char *python = access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";

	load_key(rsa_pem, "rsa-test", &keys[0]);
	load_key(ed_pem, "ed25519-test", &keys[1]);
	make_tmpdir();
	char *path_py = NULL, *path_msg = NULL, *path_dns = NULL, *cmd = NULL;
	ck_assert_int_ne(asprintf(&path_py, "%s/verify.py", tmpdir), -1);
	ck_assert_int_ne(asprintf(&path_msg, "%s/msg", tmpdir), -1);
	ck_assert_int_ne(asprintf(&path_dns, "%s/dns", tmpdir), -1);
	write_file(path_py, verify_py, strlen(verify_py));
	char *v0 = dkim_key_txt_value(&keys[0]), *v1 = dkim_key_txt_value(&keys[1]), *dns = NULL;
	ck_assert_int_ne(asprintf(&dns, "rsa-test._domainkey.example.org.\t%s\ned25519-test._domainkey.example.org.\t%s\n",
				  v0, v1), -1);
	write_file(path_dns, dns, strlen(dns));

	static const char *const msgs[] = {
		MSG_HEADERS "\n" MSG_BODY,
		"From: alice@example.org\nSubject: empty body\n\n",
		"From: alice@example.org\nSubject: no body\n",
		"From: alice@example.org\nSubject: blank lines only\n\n\n\n\n",
		"From: alice@example.org\nSubject: lone CR\n\nline \r one\nline two\rthree  \n\n",
	};
	for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
		char *fields = sign_msg(msgs[i], 0, NULL, "example.org", keys, 2, "\n");
		/* What goes on the wire: fields + message, CRLF. */
		char *both = NULL;
		ck_assert_int_ne(asprintf(&both, "%s%s", fields, msgs[i]), -1);
		size_t len;
		char *wire = crlf_of(both, &len);
		write_file(path_msg, wire, len);
		ck_assert_int_ne(asprintf(&cmd, "%s %s %s %s", python, path_py, path_msg, path_dns), -1);
		int rc = system(cmd);
		free(cmd);
		if (WIFEXITED(rc) && (WEXITSTATUS(rc) == 77 || WEXITSTATUS(rc) == 127)) {
			fprintf(stderr, "python3-dkim is not installed: skipping the python check\n");
			free(wire);
			free(both);
			free(fields);
			break;
		}
		ck_assert_msg(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "python3-dkim rejects:\n%s", wire);
		free(wire);
		free(both);
		free(fields);
	}
	free(v0);
	free(v1);
	free(dns);
	free(path_py);
	free(path_msg);
	free(path_dns);
	rm_tmpdir();
	dkim_key_free(&keys[0]);
	dkim_key_free(&keys[1]);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("dkim");
	TCase *tc = tcase_create("canon");
	tcase_add_test(tc, rfc6376_346_headers);
	tcase_add_test(tc, rfc6376_346_body);
	tcase_add_test(tc, rfc6376_346_signed);
	tcase_add_loop_test(tc, body_table, 0, sizeof(body_cases) / sizeof(body_cases[0]));
	tcase_add_test(tc, body_many_lines);
	tcase_add_test(tc, body_hash_empty);
	tcase_add_loop_test(tc, header_table, 0, sizeof(header_cases) / sizeof(header_cases[0]));
	suite_add_tcase(s, tc);

	tc = tcase_create("sign");
	tcase_add_test(tc, known_answer_rfc8463);
	tcase_add_test(tc, sign_and_verify);
	tcase_add_test(tc, sign_golden);
	tcase_add_test(tc, sign_no_from_no_body);
	tcase_add_test(tc, sign_errors);
	tcase_add_loop_test(tc, from_domain, 0, sizeof(from_cases) / sizeof(from_cases[0]));
	tcase_add_test(tc, python_verifies);
	tcase_set_timeout(tc, 120);   /* python starts once per message */
	suite_add_tcase(s, tc);

	tc = tcase_create("keys");
	tcase_add_test(tc, keys_generate_write_load);
	tcase_add_test(tc, sign_file);
	tcase_add_test(tc, keys_txt_record);
	tcase_add_test(tc, names);
	suite_add_tcase(s, tc);
	return testutil_run(s);
}
