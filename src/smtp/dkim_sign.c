/*
 * DKIM signing, RFC 6376 5 (RSA-SHA256) and RFC 8463 (Ed25519-SHA256).
 *
 * Shape: one pass over the message. The header section is split into
 * fields as it arrives (a field is a line not starting with WSP plus the
 * WSP-led lines after it, RFC 5322 2.2.3); fields whose names will be
 * signed are kept, the rest are only counted past. After the empty line,
 * the body goes through the streaming canonicalizer straight into
 * SHA-256, so memory use does not depend on the body's size. The signed
 * header data is then built once and signed with each key - the h= list
 * and the canonical fields are the same for every key.
 *
 * What it must never do: sign a header field other than the one a
 * verifier will pick. RFC 6376 5.4.2 has verifiers take repeated fields
 * from the bottom up, so the header data is assembled that way too, and a
 * name listed more often than it occurs (oversigning) contributes nothing,
 * exactly as in the verifier.
 *
 * No I/O except dkim_sign_file(), which is for worker threads and the CLI.
 */
#include "smtp/dkim_sign.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "auth/base64.h"
#include "core/xalloc.h"

/* RFC 5322 2.1.1: lines SHOULD be at most 78 characters. */
#define DKIM_LINE_WIDTH 78

const char *const dkim_sign_default_headers[] = {
	"from", "to", "cc", "subject", "date", "message-id", "reply-to", "in-reply-to",
	"references", "mime-version", "content-type", "content-transfer-encoding", "list-*",
	NULL,
};

static const char *const dkim_sign_default_oversign[] = { "from", NULL };
static const char *const dkim_sign_from_only[] = { "from", NULL };

struct dkim_field {
	char *lname;     /* the name in lower case */
	char *text;      /* the whole field without its final line end */
	size_t len;
};

struct dkim_signer {
	struct dkim_sign_options opt;

	/* The header section. */
	bool headers_done;
	bool line_start;         /* the next octet begins a line */
	bool cr_at_start;        /* a line began with CR: an empty line if LF follows */
	bool in_field;           /* cur holds (the start of) a field */
	bool cur_overflow;       /* cur passed DKIM_SIGN_FIELD_MAX */
	struct buf cur;
	struct dkim_field *fields;
	size_t n_fields, fields_cap;
	size_t kept;             /* octets of kept fields */
	unsigned from_count;     /* From fields seen */
	char *error;             /* the first error; then everything is ignored */

	/* The body. */
	EVP_MD_CTX *body_md;
	bool body_md_failed;
	struct dkim_body_canon body;
	bool finished;
	char bh[64];             /* base64 SHA-256 of the canonical body */
};

void dkim_sign_options_default(struct dkim_sign_options *opt)
{
	opt->header_canon = DKIM_CANON_RELAXED;
	opt->body_canon = DKIM_CANON_RELAXED;
	opt->headers = dkim_sign_default_headers;
	opt->oversign = dkim_sign_default_oversign;
}

static void dkim_signer_fail(struct dkim_signer *s, char *error)
{
	if (s->error == NULL)
		s->error = error;
	else
		free(error);
}

static void dkim_body_out(void *ctx, const void *data, size_t len)
{
	struct dkim_signer *s = ctx;

	if (!s->body_md_failed && EVP_DigestUpdate(s->body_md, data, len) != 1)
		s->body_md_failed = true;
}

struct dkim_signer *dkim_signer_new(const struct dkim_sign_options *opt)
{
	struct dkim_signer *s = xcalloc(1, sizeof(*s));

	if (opt != NULL)
		s->opt = *opt;
	else
		dkim_sign_options_default(&s->opt);
	if (s->opt.headers == NULL)
		s->opt.headers = dkim_sign_default_headers;
	if (s->opt.oversign == NULL)
		s->opt.oversign = dkim_sign_default_oversign;
	s->line_start = true;
	buf_init(&s->cur, DKIM_SIGN_FIELD_MAX);
	dkim_body_canon_init(&s->body, s->opt.body_canon, dkim_body_out, s);
	s->body_md = EVP_MD_CTX_new();
	if (s->body_md == NULL || EVP_DigestInit_ex(s->body_md, EVP_sha256(), NULL) != 1)
		s->body_md_failed = true;
	ERR_clear_error();
	return s;
}

void dkim_signer_free(struct dkim_signer **sp)
{
	struct dkim_signer *s = *sp;

	if (s == NULL)
		return;
	for (size_t i = 0; i < s->n_fields; i++) {
		free(s->fields[i].lname);
		free(s->fields[i].text);
	}
	free(s->fields);
	buf_free(&s->cur);
	free(s->error);
	EVP_MD_CTX_free(s->body_md);
	free(s);
	*sp = NULL;
}

/* ------------------------------------------------------------------ */
/* Which fields are signed                                             */

static bool dkim_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

/* Does the lower-case name lname match entry ("subject", "list-*")? */
static bool dkim_entry_matches(const char *entry, const char *lname)
{
	size_t n = strlen(entry);

	if (n > 0 && entry[n - 1] == '*') {
		if (strncmp(lname, entry, n - 1) != 0 || lname[n - 1] == '\0' || strlen(lname) > 64)
			return false;
		/* Only plain names go into h= by prefix: a name with ';' or
		 * '=' would break the tag list. */
		for (const char *p = lname + n - 1; *p; p++) {
			if (!dkim_name_char(*p))
				return false;
		}
		return true;
	}
	return strcmp(entry, lname) == 0;
}

static bool dkim_list_has(const char *const *list, const char *lname)
{
	for (size_t i = 0; list[i] != NULL; i++) {
		if (dkim_entry_matches(list[i], lname))
			return true;
	}
	return false;
}

static bool dkim_signer_wants(const struct dkim_signer *s, const char *lname)
{
	return strcmp(lname, "from") == 0 || dkim_list_has(s->opt.headers, lname) ||
	       dkim_list_has(s->opt.oversign, lname);
}

/* ------------------------------------------------------------------ */
/* The header section                                                  */

static void dkim_field_end(struct dkim_signer *s)
{
	const char *text = buf_ptr(&s->cur), *name;
	size_t len = buf_len(&s->cur), name_len;

	s->in_field = false;
	/* The line end that terminates the field is not part of it. */
	if (len > 0 && text[len - 1] == '\n') {
		len--;
		if (len > 0 && text[len - 1] == '\r')
			len--;
	}
	if (dkim_header_name(text, len, &name, &name_len) < 0)
		return;   /* no colon: not a field anyone can sign */
	char *lname = xstrndup(name, name_len);
	for (char *p = lname; *p; p++) {
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p + ('a' - 'A'));
	}
	if (strcmp(lname, "from") == 0)
		s->from_count++;
	if (!dkim_signer_wants(s, lname)) {
		free(lname);
		return;
	}
	if (s->cur_overflow) {
		dkim_signer_fail(s, xasprintf("the %s header field is longer than %d octets", lname,
					      DKIM_SIGN_FIELD_MAX));
		free(lname);
		return;
	}
	if (s->n_fields >= DKIM_SIGN_FIELDS_MAX || s->kept + len > DKIM_SIGN_KEPT_MAX) {
		dkim_signer_fail(s, xasprintf("more than %d header fields or %d octets to sign",
					      DKIM_SIGN_FIELDS_MAX, DKIM_SIGN_KEPT_MAX));
		free(lname);
		return;
	}
	if (s->n_fields == s->fields_cap) {
		s->fields_cap = s->fields_cap ? s->fields_cap * 2 : 16;
		s->fields = xrealloc(s->fields, s->fields_cap * sizeof(*s->fields));
	}
	struct dkim_field *f = &s->fields[s->n_fields++];
	f->lname = lname;
	f->text = xstrndup(text, len);
	f->len = len;
	s->kept += len;
}

static void dkim_field_start(struct dkim_signer *s)
{
	if (s->in_field)
		dkim_field_end(s);
	buf_reset(&s->cur);
	s->in_field = true;
	s->cur_overflow = false;
}

static void dkim_field_append(struct dkim_signer *s, const void *data, size_t len)
{
	if (s->cur_overflow)
		return;
	if (buf_append(&s->cur, data, len) < 0)
		s->cur_overflow = true;
}

static void dkim_headers_end(struct dkim_signer *s)
{
	if (s->in_field)
		dkim_field_end(s);
	s->headers_done = true;
	s->cr_at_start = false;
	buf_free(&s->cur);
}

void dkim_signer_feed(struct dkim_signer *s, const void *data, size_t len)
{
	const unsigned char *p = data;
	size_t i = 0;

	if (s->finished || s->error != NULL)
		return;
	while (i < len && !s->headers_done) {
		unsigned char c = p[i];
		if (s->cr_at_start) {
			s->cr_at_start = false;
			if (c == '\n') {
				/* CRLF alone: the end of the header section. */
				dkim_headers_end(s);
				i++;
				break;
			}
			/* A line that starts with a lone CR: not WSP, so it
			 * starts a field (without a name anyone signs). */
			dkim_field_start(s);
			dkim_field_append(s, "\r", 1);
			s->line_start = false;
			continue;
		}
		if (s->line_start) {
			if (c == '\n') {
				dkim_headers_end(s);
				i++;
				break;
			}
			if (c == '\r') {
				s->cr_at_start = true;
				i++;
				continue;
			}
			/* RFC 5322 2.2.3: a line starting with WSP continues
			 * the field before it. */
			if ((c != ' ' && c != '\t') || !s->in_field)
				dkim_field_start(s);
			s->line_start = false;
		}
		const unsigned char *lf = memchr(p + i, '\n', len - i);
		size_t n = lf ? (size_t)(lf - (p + i)) + 1 : len - i;
		dkim_field_append(s, p + i, n);
		i += n;
		if (lf != NULL)
			s->line_start = true;
	}
	if (i < len && s->headers_done)
		dkim_body_canon_feed(&s->body, p + i, len - i);
}

bool dkim_signer_headers_done(const struct dkim_signer *s)
{
	return s->headers_done;
}

/* ------------------------------------------------------------------ */
/* The author's domain                                                 */

/* The domain of the one address in a From field's value, or NULL. Comments
 * are dropped, quoted strings cannot contribute '@', ',' or '<' (RFC 5322
 * 3.2.4, 3.2.2). */
static char *dkim_from_value_domain(const char *v, size_t len)
{
	char *clean = xmalloc(len + 1);
	size_t n = 0;
	int depth = 0;
	bool quoted = false;

	for (size_t i = 0; i < len; i++) {
		char c = v[i];
		if (c == '\r' || c == '\n')
			continue;
		if (c == '\\' && (quoted || depth > 0) && i + 1 < len) {
			i++;
			if (quoted)
				clean[n++] = 'q';
			continue;
		}
		if (depth > 0) {
			if (c == '(')
				depth++;
			else if (c == ')')
				depth--;
			continue;
		}
		if (quoted) {
			if (c == '"')
				quoted = false;
			else
				clean[n++] = 'q';
			continue;
		}
		if (c == '(') {
			depth = 1;
			clean[n++] = ' ';
			continue;
		}
		if (c == '"') {
			quoted = true;
			continue;
		}
		clean[n++] = c;
	}
	clean[n] = '\0';

	char *domain = NULL;
	const char *spec = clean, *end = clean + n;
	/* A group (display-name ":" ... ";") or a list: not one author. */
	if (quoted || depth > 0 || strchr(clean, ',') != NULL || strchr(clean, ':') != NULL)
		goto out;
	const char *lt = strchr(clean, '<');
	if (lt != NULL) {
		const char *gt = strchr(lt, '>');
		if (gt == NULL)
			goto out;
		spec = lt + 1;
		end = gt;
	}
	const char *at = NULL;
	for (const char *p = spec; p < end; p++) {
		if (*p == '@')
			at = p;
	}
	if (at == NULL)
		goto out;
	const char *d = at + 1;
	while (d < end && (*d == ' ' || *d == '\t'))
		d++;
	const char *e = d;
	while (e < end && *e != ' ' && *e != '\t' && *e != '>')
		e++;
	const char *rest = e;
	while (rest < end && (*rest == ' ' || *rest == '\t'))
		rest++;
	if (rest != end || e == d)
		goto out;
	domain = xstrndup(d, (size_t)(e - d));
	for (char *p = domain; *p; p++) {
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p + ('a' - 'A'));
	}
	if (!dkim_domain_valid(domain)) {
		free(domain);
		domain = NULL;
	}
out:
	free(clean);
	return domain;
}

char *dkim_signer_from_domain(const struct dkim_signer *s)
{
	if (s->from_count != 1)
		return NULL;
	for (size_t i = 0; i < s->n_fields; i++) {
		const struct dkim_field *f = &s->fields[i];
		if (strcmp(f->lname, "from") != 0)
			continue;
		const char *colon = memchr(f->text, ':', f->len);
		return dkim_from_value_domain(colon + 1, f->len - (size_t)(colon + 1 - f->text));
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Signing                                                             */

static size_t dkim_field_count(const struct dkim_signer *s, const char *lname)
{
	size_t n = 0;

	for (size_t i = 0; i < s->n_fields; i++)
		n += strcmp(s->fields[i].lname, lname) == 0;
	return n;
}

/* Append name to the h= list count times. */
static void dkim_hlist_add(const char ***names, size_t *n, size_t *cap, const char *name, size_t count)
{
	for (size_t k = 0; k < count; k++) {
		if (*n == *cap) {
			*cap = *cap ? *cap * 2 : 16;
			*names = xrealloc(*names, *cap * sizeof(**names));
		}
		(*names)[(*n)++] = name;
	}
}

static bool dkim_hlist_has(const char **names, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(names[i], name) == 0)
			return true;
	}
	return false;
}

/* The h= names in order (pointing into the options or the kept fields):
 * "from" first, then the configured names as they occur. */
static const char **dkim_hlist_build(const struct dkim_signer *s, size_t *n_r)
{
	const char **names = NULL;
	size_t n = 0, cap = 0;

	for (size_t pass = 0; pass < 2; pass++) {
		const char *const *list = pass == 0 ? dkim_sign_from_only : s->opt.headers;
		for (size_t i = 0; list[i] != NULL; i++) {
			const char *entry = list[i];
			size_t len = strlen(entry);
			if (len > 0 && entry[len - 1] == '*') {
				for (size_t f = 0; f < s->n_fields; f++) {
					const char *lname = s->fields[f].lname;
					if (!dkim_entry_matches(entry, lname) || dkim_hlist_has(names, n, lname))
						continue;
					size_t count = dkim_field_count(s, lname);
					if (dkim_list_has(s->opt.oversign, lname))
						count++;
					dkim_hlist_add(&names, &n, &cap, lname, count);
				}
				continue;
			}
			if (dkim_hlist_has(names, n, entry))
				continue;
			size_t count = dkim_field_count(s, entry);
			/* Oversign (RFC 6376 8.15); From always (5.4). */
			if (dkim_list_has(s->opt.oversign, entry) || (count == 0 && strcmp(entry, "from") == 0))
				count++;
			dkim_hlist_add(&names, &n, &cap, entry, count);
		}
	}
	*n_r = n;
	return names;
}

/* The canonical header data for the h= names: for each name the last
 * field of that name not yet taken, bottom up (RFC 6376 5.4.2); none left
 * = nothing. */
static int dkim_header_data(const struct dkim_signer *s, const char **names, size_t n_names,
			    struct buf *out)
{
	bool *used = xcalloc(s->n_fields + 1, sizeof(*used));
	int rc = 0;

	for (size_t i = 0; i < n_names && rc == 0; i++) {
		for (size_t f = s->n_fields; f-- > 0;) {
			if (used[f] || strcmp(s->fields[f].lname, names[i]) != 0)
				continue;
			used[f] = true;
			if (dkim_header_canon(s->opt.header_canon, s->fields[f].text, s->fields[f].len, out) < 0)
				rc = -1;
			break;
		}
	}
	free(used);
	return rc;
}

/* Folding writer for the DKIM-Signature field (RFC 6376 3.5: FWS may
 * appear around tags; 3.2: inside base64 values and around ':' in h=). */
struct dkim_folder {
	struct buf *b;
	size_t col;
};

static void dkim_fold_put(struct dkim_folder *fo, const char *s, size_t len)
{
	buf_append(fo->b, s, len);
	fo->col += len;
}

static void dkim_fold_break(struct dkim_folder *fo)
{
	buf_append(fo->b, "\r\n\t", 3);
	fo->col = 1;
}

/* A tag, after a blank or on a new line when it would not fit. */
static void dkim_fold_tag(struct dkim_folder *fo, const char *tag)
{
	size_t len = strlen(tag);

	if (fo->col + 1 + len > DKIM_LINE_WIDTH)
		dkim_fold_break(fo);
	else
		dkim_fold_put(fo, " ", 1);
	dkim_fold_put(fo, tag, len);
}

/* Build the field up to and including "b=" (the value follows once it is
 * known), with CRLF line ends. Returns the column after "b=". */
static size_t dkim_sig_field_prefix(struct buf *b, const struct dkim_signer *s, const char *domain,
				  const struct dkim_key *key, time_t t, const char **names, size_t n_names)
{
	struct dkim_folder fo = { b, 0 };
	char tag[512];

	dkim_fold_put(&fo, "DKIM-Signature:", 15);
	dkim_fold_tag(&fo, "v=1;");
	snprintf(tag, sizeof(tag), "a=%s;", dkim_key_algorithm(key->type));
	dkim_fold_tag(&fo, tag);
	snprintf(tag, sizeof(tag), "c=%s/%s;", dkim_canon_name(s->opt.header_canon),
		 dkim_canon_name(s->opt.body_canon));
	dkim_fold_tag(&fo, tag);
	snprintf(tag, sizeof(tag), "d=%s;", domain);
	dkim_fold_tag(&fo, tag);
	snprintf(tag, sizeof(tag), "s=%s;", key->selector);
	dkim_fold_tag(&fo, tag);
	snprintf(tag, sizeof(tag), "t=%lld;", (long long)t);
	dkim_fold_tag(&fo, tag);
	/* h=from:from:to:... with breaks after a colon where needed. */
	for (size_t i = 0; i < n_names; i++) {
		snprintf(tag, sizeof(tag), "%s%s%s", i == 0 ? "h=" : "", names[i],
			 i + 1 < n_names ? ":" : ";");
		if (i == 0) {
			dkim_fold_tag(&fo, tag);
			continue;
		}
		if (fo.col + strlen(tag) > DKIM_LINE_WIDTH)
			dkim_fold_break(&fo);
		dkim_fold_put(&fo, tag, strlen(tag));
	}
	snprintf(tag, sizeof(tag), "bh=%s;", s->bh);
	dkim_fold_tag(&fo, tag);
	/* Leave room on the line for a few characters of the signature. */
	if (fo.col + 1 + 2 + 8 > DKIM_LINE_WIDTH)
		dkim_fold_break(&fo);
	else
		dkim_fold_put(&fo, " ", 1);
	dkim_fold_put(&fo, "b=", 2);
	return fo.col;
}

/* Append the base64 signature, folded, after "b=" at column col. */
static void dkim_sig_field_value(struct buf *b, size_t col, const char *b64)
{
	struct dkim_folder fo = { b, col };
	size_t len = strlen(b64), i = 0;

	while (i < len) {
		if (fo.col >= DKIM_LINE_WIDTH)
			dkim_fold_break(&fo);
		size_t n = DKIM_LINE_WIDTH - fo.col;
		if (n > len - i)
			n = len - i;
		dkim_fold_put(&fo, b64 + i, n);
		i += n;
	}
}

int dkim_sign_hash(const struct dkim_key *key, const unsigned char digest[32], unsigned char *sig,
		   size_t *sig_len, char **error_r)
{
	int ok = 0;

	if (key->pkey == NULL || EVP_PKEY_get_size(key->pkey) <= 0 ||
	    (size_t)EVP_PKEY_get_size(key->pkey) > *sig_len) {
		*error_r = xasprintf("key %s cannot sign into %zu octets", key->selector ? key->selector : "?",
				     *sig_len);
		return -1;
	}
	ERR_clear_error();
	if (key->type == DKIM_KEY_RSA) {
		/* RFC 6376 3.3.1: RSASSA-PKCS1-v1_5 with SHA-256 (the
		 * DigestInfo is added by the padding). */
		EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key->pkey, NULL);
		ok = ctx != NULL && EVP_PKEY_sign_init(ctx) == 1 &&
		     EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1 &&
		     EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) == 1 &&
		     EVP_PKEY_sign(ctx, sig, sig_len, digest, 32) == 1;
		EVP_PKEY_CTX_free(ctx);
	} else {
		/* RFC 8463 3: PureEdDSA over the SHA-256 hash (no prehash
		 * variant, no context). */
		EVP_MD_CTX *md = EVP_MD_CTX_new();
		ok = md != NULL && EVP_DigestSignInit_ex(md, NULL, NULL, NULL, NULL, key->pkey, NULL) == 1 &&
		     EVP_DigestSign(md, sig, sig_len, digest, 32) == 1;
		EVP_MD_CTX_free(md);
	}
	if (!ok) {
		unsigned long e = ERR_get_error();
		char reason[256] = "unknown error";
		if (e != 0)
			ERR_error_string_n(e, reason, sizeof(reason));
		*error_r = xasprintf("signing with %s key %s: %s", dkim_key_type_name(key->type),
				     key->selector, reason);
		ERR_clear_error();
		return -1;
	}
	return 0;
}

/* Append text to out with every CRLF made eol. */
static void dkim_append_eol(struct buf *out, const char *text, size_t len, const char *eol)
{
	size_t eol_len = strlen(eol);

	for (size_t i = 0; i < len; i++) {
		if (text[i] == '\r' && i + 1 < len && text[i + 1] == '\n') {
			buf_append(out, eol, eol_len);
			i++;
		} else {
			buf_append(out, text + i, 1);
		}
	}
}

void dkim_signer_end(struct dkim_signer *s)
{
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int dlen = 0;

	if (s->finished)
		return;
	if (!s->headers_done)
		dkim_headers_end(s);
	dkim_body_canon_finish(&s->body);
	s->finished = true;
	if (s->body_md_failed || EVP_DigestFinal_ex(s->body_md, digest, &dlen) != 1 || dlen != 32) {
		dkim_signer_fail(s, xstrdup("SHA-256 of the body failed"));
		ERR_clear_error();
		return;
	}
	base64_encode(digest, dlen, s->bh);
}

int dkim_signer_finish(struct dkim_signer *s, const char *domain, const struct dkim_key *keys,
		       size_t n_keys, time_t t, const char *eol, char **fields_r, char **error_r)
{
	struct buf hdata, field, out;
	const char **names = NULL;
	size_t n_names = 0;
	int rc = -1;

	*fields_r = NULL;
	dkim_signer_end(s);
	if (s->error != NULL) {
		*error_r = xstrdup(s->error);
		return -1;
	}
	if (n_keys == 0 || n_keys > DKIM_SIGN_KEYS_MAX) {
		*error_r = xasprintf("%zu keys: 1 to %d can sign one message", n_keys, DKIM_SIGN_KEYS_MAX);
		return -1;
	}
	if (domain == NULL || !dkim_domain_valid(domain)) {
		*error_r = xasprintf("\"%s\" is not a domain name to sign for", domain ? domain : "");
		return -1;
	}
	/* Canonical fields are at most 2x their size (LF -> CRLF, simple). */
	buf_init(&hdata, 2 * DKIM_SIGN_KEPT_MAX + 4096);
	buf_init(&field, 64 * 1024);
	buf_init(&out, (size_t)DKIM_SIGN_KEYS_MAX * 64 * 1024);
	names = dkim_hlist_build(s, &n_names);
	if (dkim_header_data(s, names, n_names, &hdata) < 0) {
		*error_r = xstrdup("the header fields to sign are too large");
		goto out;
	}
	for (size_t k = 0; k < n_keys; k++) {
		const struct dkim_key *key = &keys[k];
		struct buf canon;
		unsigned char digest[32], sig[1024];
		size_t sig_len = sizeof(sig);

		buf_reset(&field);
		size_t col = dkim_sig_field_prefix(&field, s, domain, key, t, names, n_names);
		/* RFC 6376 3.7: the header data, then this field with an empty
		 * b= value, canonicalized, without its final CRLF. */
		buf_init(&canon, buf_len(&field) * 2 + 16);
		if (dkim_header_canon(s->opt.header_canon, buf_ptr(&field), buf_len(&field), &canon) < 2) {
			buf_free(&canon);
			*error_r = xstrdup("cannot canonicalize the DKIM-Signature field");
			goto out;
		}
		EVP_MD_CTX *md = EVP_MD_CTX_new();
		unsigned int dlen = 0;
		int ok = md != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
			 EVP_DigestUpdate(md, buf_ptr(&hdata), buf_len(&hdata)) == 1 &&
			 EVP_DigestUpdate(md, buf_ptr(&canon), buf_len(&canon) - 2) == 1 &&
			 EVP_DigestFinal_ex(md, digest, &dlen) == 1 && dlen == 32;
		EVP_MD_CTX_free(md);
		buf_free(&canon);
		if (!ok) {
			ERR_clear_error();
			*error_r = xstrdup("SHA-256 of the header failed");
			goto out;
		}
		if (dkim_sign_hash(key, digest, sig, &sig_len, error_r) < 0)
			goto out;
		char *b64 = xmalloc(base64_encoded_len(sig_len) + 1);
		base64_encode(sig, sig_len, b64);
		dkim_sig_field_value(&field, col, b64);
		free(b64);
		buf_append(&field, "\r\n", 2);
		dkim_append_eol(&out, buf_ptr(&field), buf_len(&field), eol ? eol : "\r\n");
	}
	*fields_r = xstrndup(buf_ptr(&out), buf_len(&out));
	rc = 0;
out:
	free(names);
	buf_free(&hdata);
	buf_free(&field);
	buf_free(&out);
	return rc;
}

uint64_t dkim_signer_body_length(const struct dkim_signer *s)
{
	return dkim_body_canon_length(&s->body);
}

const char *dkim_signer_body_hash(const struct dkim_signer *s)
{
	return s->bh;
}

/* ------------------------------------------------------------------ */
/* A file                                                              */

int dkim_sign_file(const char *path, uint64_t offset, const struct dkim_keyring *ring, const char *domain,
		   time_t t, const char *eol, char **fields_r, char **error_r)
{
	const struct dkim_keyset *set = NULL;
	char *from_domain = NULL;
	char chunk[64 * 1024];
	int rc = -1;

	*fields_r = NULL;
	if (domain != NULL && (set = dkim_keyring_find(ring, domain)) == NULL)
		return 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		*error_r = xasprintf("%s: %s", path, strerror(errno));
		return -1;
	}
	if (offset > (uint64_t)INT64_MAX || lseek(fd, (off_t)offset, SEEK_SET) < 0) {
		*error_r = xasprintf("%s: seek: %s", path, strerror(errno ? errno : EINVAL));
		close(fd);
		return -1;
	}
	struct dkim_signer *s = dkim_signer_new(NULL);
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*error_r = xasprintf("%s: read: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		dkim_signer_feed(s, chunk, (size_t)n);
		/* Without a domain, the From field decides; without keys for
		 * it there is no need to read the body. */
		if (set == NULL && dkim_signer_headers_done(s)) {
			from_domain = dkim_signer_from_domain(s);
			if (from_domain == NULL || (set = dkim_keyring_find(ring, from_domain)) == NULL) {
				rc = 0;
				goto out;
			}
		}
	}
	if (set == NULL) {
		/* The file ended inside the header section. */
		dkim_signer_end(s);
		from_domain = dkim_signer_from_domain(s);
		if (from_domain == NULL || (set = dkim_keyring_find(ring, from_domain)) == NULL) {
			rc = 0;
			goto out;
		}
	}
	size_t n_keys = set->n_keys < DKIM_SIGN_KEYS_MAX ? set->n_keys : DKIM_SIGN_KEYS_MAX;
	rc = dkim_signer_finish(s, set->domain, set->keys, n_keys, t, eol, fields_r, error_r);
out:
	close(fd);
	free(from_domain);
	dkim_signer_free(&s);
	return rc;
}
