/*
 * MAIL FROM / RCPT TO paths and their parameters (see smtp_address.h).
 * Every function reads only within the NUL-terminated argument string.
 */
#include "smtp/smtp_address.h"

#include <string.h>
#include <strings.h>

/* RFC 5322 atext, plus UTF-8 when SMTPUTF8 was given (RFC 6531 3.3). */
static bool is_atext(unsigned char c, bool utf8)
{
	if (c >= 0x80)
		return utf8;
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

static bool is_letdig(unsigned char c, bool utf8)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (utf8 && c >= 0x80);
}

/* Domain = sub-domain *("." sub-domain); sub-domain = Let-dig [Ldh-str].
 * Returns the length parsed, 0 when there is no valid domain here. */
static size_t parse_domain(const char *p, bool utf8)
{
	size_t n = 0;

	for (;;) {
		size_t start = n;
		if (!is_letdig((unsigned char)p[n], utf8))
			return 0;
		while (is_letdig((unsigned char)p[n], utf8) || p[n] == '-')
			n++;
		if (p[n - 1] == '-' || n - start > 63)
			return 0;
		if (p[n] != '.')
			return n;
		n++; /* a trailing dot leaves nothing after it: invalid */
	}
}

/* address-literal = "[" ... "]": an IPv4 dotted quad, "IPv6:" followed by
 * hex digits, colons and dots, or a General-address-literal tag. Only the
 * characters are checked: such an address is never ours anyway. */
static size_t parse_address_literal(const char *p)
{
	size_t n = 1;

	if (p[0] != '[')
		return 0;
	while (p[n] != ']' && p[n] != '\0') {
		unsigned char c = (unsigned char)p[n];
		if (c <= ' ' || c >= 0x7f || c == '[' || c == '\\')
			return 0;
		n++;
	}
	return p[n] == ']' && n > 1 ? n + 1 : 0;
}

/* Local-part = Dot-string / Quoted-string, copied into out (with quotes
 * only if the content is not a valid dot-string). Returns the length
 * parsed or 0. */
static size_t parse_local(const char *p, bool utf8, struct smtp_path *path, char *out, size_t *out_len)
{
	size_t n = 0, o = 0;

	if (p[0] == '"') {
		char content[SMTP_LOCAL_MAX * 2 + 1];
		size_t c = 0;
		n = 1;
		while (p[n] != '"') {
			unsigned char ch = (unsigned char)p[n];
			if (ch == '\\') {
				unsigned char next = (unsigned char)p[n + 1];
				if (next < 32 || next > 126)
					return 0;
				ch = next;
				n++;
			} else if (ch < 32 || ch == 127 || (ch >= 0x80 && !utf8)) {
				return 0;
			}
			if (c >= sizeof(content) - 1)
				return 0;
			content[c++] = (char)ch;
			n++;
		}
		n++;
		/* Longer can never fit; out holds 2 * SMTP_LOCAL_MAX + 2 at most then. */
		if (c > SMTP_LOCAL_MAX)
			return 0;
		content[c] = '\0';
		/* "john.doe" is john.doe (RFC 5321 4.1.2: prefer the plain form). */
		bool dot_string = c > 0 && content[0] != '.' && content[c - 1] != '.';
		for (size_t i = 0; i < c && dot_string; i++)
			dot_string = is_atext((unsigned char)content[i], utf8) ||
				     (content[i] == '.' && content[i + 1] != '.');
		if (dot_string) {
			memcpy(out, content, c);
			o = c;
		} else {
			path->quoted = true;
			out[o++] = '"';
			for (size_t i = 0; i < c; i++) {
				if (content[i] == '"' || content[i] == '\\')
					out[o++] = '\\';
				out[o++] = content[i];
			}
			out[o++] = '"';
		}
		for (size_t i = 0; i < c; i++) {
			if (content[i] == '@' || content[i] == '%' || content[i] == '!')
				path->routing_chars = true;
		}
	} else {
		for (;;) {
			size_t start = n;
			while (is_atext((unsigned char)p[n], utf8))
				n++;
			if (n == start)
				return 0;
			if (p[n] != '.')
				break;
			n++;
		}
		if (n > SMTP_LOCAL_MAX)
			return 0; /* before the copy: out is not much bigger */
		memcpy(out, p, n);
		o = n;
		for (size_t i = 0; i < n; i++) {
			if (p[i] == '%' || p[i] == '!')
				path->routing_chars = true;
		}
	}
	if (o > SMTP_LOCAL_MAX)
		return 0;
	*out_len = o;
	return n;
}

/* A-d-l = At-domain *( "," At-domain ) ":" — parsed and thrown away. */
static size_t parse_route(const char *p)
{
	size_t n = 0;

	for (;;) {
		if (p[n] != '@')
			return 0;
		n++;
		size_t d = p[n] == '[' ? parse_address_literal(p + n) : parse_domain(p + n, true);
		if (d == 0)
			return 0;
		n += d;
		if (p[n] == ':')
			return n + 1;
		if (p[n] != ',')
			return 0;
		n++;
	}
}

int smtp_parse_path(const char *args, const char *keyword, bool lenient, bool allow_null, bool smtputf8,
		    struct smtp_path *path_r, const char **params_r, const char **error_r)
{
	size_t klen = strlen(keyword);
	const char *p = args;

	memset(path_r, 0, sizeof(*path_r));
	if (strncasecmp(p, keyword, klen) != 0) {
		*error_r = strcmp(keyword, "FROM:") == 0 ? "5.5.4 Syntax: MAIL FROM:<address>"
							  : "5.5.4 Syntax: RCPT TO:<address>";
		return -1;
	}
	p += klen;
	if (lenient) {
		while (*p == ' ')
			p++;
	}
	bool bracketed = *p == '<';
	if (!bracketed && !lenient) {
		*error_r = "5.5.4 Syntax: the address must be in angle brackets";
		return -1;
	}
	if (bracketed)
		p++;
	const char *bad = strcmp(keyword, "FROM:") == 0 ? "5.1.7 Bad sender address syntax"
							 : "5.1.3 Bad recipient address syntax";
	if (bracketed && *p == '>') {
		if (!allow_null) {
			*error_r = bad;
			return -1;
		}
		path_r->null = true;
		p++;
	} else {
		p += parse_route(p);
		char local[SMTP_LOCAL_MAX * 3 + 3];
		size_t local_len = 0;
		size_t n = parse_local(p, smtputf8, path_r, local, &local_len);
		if (n == 0) {
			*error_r = bad;
			return -1;
		}
		p += n;
		if (*p != '@') {
			/* RFC 5321 4.1.1.3: "Postmaster" alone must be accepted. */
			if (local_len == 10 && strncasecmp(local, "postmaster", 10) == 0 && !allow_null &&
			    (*p == '>' || !bracketed)) {
				path_r->postmaster = true;
				memcpy(path_r->address, local, local_len);
				path_r->local_len = local_len;
				p += bracketed;
				goto params;
			}
			*error_r = bad;
			return -1;
		}
		p++;
		size_t d = *p == '[' ? parse_address_literal(p) : parse_domain(p, smtputf8);
		if (d == 0 || d > SMTP_DOMAIN_MAX || local_len + 1 + d > SMTP_PATH_MAX - 2) {
			*error_r = bad;
			return -1;
		}
		path_r->address_literal = *p == '[';
		memcpy(path_r->address, local, local_len);
		path_r->address[local_len] = '@';
		for (size_t i = 0; i < d; i++) {
			char c = p[i];
			path_r->address[local_len + 1 + i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
		}
		path_r->address[local_len + 1 + d] = '\0';
		path_r->local_len = local_len;
		p += d;
		if (bracketed) {
			if (*p != '>') {
				*error_r = bad;
				return -1;
			}
			p++;
		}
	}
params:
	for (const char *q = path_r->address; *q; q++) {
		if ((unsigned char)*q >= 0x80)
			path_r->utf8 = true;
	}
	if (*p != '\0' && *p != ' ') {
		*error_r = bad;
		return -1;
	}
	while (*p == ' ')
		p++;
	*params_r = p;
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1; /* RFC 3461 4: hexchar uses upper case only */
}

int smtp_xtext_decode(const char *in, size_t len, char *out, size_t size)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c == '+') {
			if (i + 2 >= len)
				return -1;
			int hi = hexval(in[i + 1]), lo = hexval(in[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			c = (unsigned char)(hi * 16 + lo);
			i += 2;
		} else if (c < 33 || c > 126 || c == '=') {
			return -1;
		}
		if (o + 1 >= size)
			return -1;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return 0;
}

bool smtp_param_next(const char **rest, const char **key_r, size_t *key_len_r, const char **value_r,
		     size_t *value_len_r)
{
	const char *p = *rest;

	while (*p == ' ')
		p++;
	if (*p == '\0') {
		*rest = p;
		return false;
	}
	const char *end = p;
	while (*end != '\0' && *end != ' ')
		end++;
	const char *eq = memchr(p, '=', (size_t)(end - p));
	*key_r = p;
	*key_len_r = (size_t)((eq ? eq : end) - p);
	*value_r = eq ? eq + 1 : NULL;
	*value_len_r = eq ? (size_t)(end - eq - 1) : 0;
	*rest = end;
	return true;
}
