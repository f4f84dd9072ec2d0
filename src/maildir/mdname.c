/*
 * Maildir file names: build new ones, read the size fields and flags out of
 * names that any Maildir program wrote, and rewrite the info when flags
 * change.
 *
 * Names come from directory listings that other programs (Dovecot, Courier,
 * mutt, mbsync, offlineimap) share with us, so the parser takes a pointer
 * and a length, reads nothing past it, and is liberal in what it accepts:
 * the only names it refuses are ones no Maildir writer makes and that would
 * break a path or a dovecot-uidlist line ('/', NUL, CR, LF, a leading '.').
 * It never drops a letter it does not understand (mdname_info.other).
 */

#include "maildir/mdname.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/strnum.h"

/* The system flag letters in ASCII order, the order they are written in. */
static const struct {
	char letter;
	unsigned flag;
} flag_letters[] = {
	{ 'D', MDNAME_DRAFT },
	{ 'F', MDNAME_FLAGGED },
	{ 'P', MDNAME_PASSED },
	{ 'R', MDNAME_ANSWERED },
	{ 'S', MDNAME_SEEN },
	{ 'T', MDNAME_DELETED },
};
#define N_FLAG_LETTERS (sizeof(flag_letters) / sizeof(flag_letters[0]))

static unsigned flag_of(unsigned char c)
{
	for (size_t i = 0; i < N_FLAG_LETTERS; i++) {
		if ((unsigned char)flag_letters[i].letter == c)
			return flag_letters[i].flag;
	}
	return 0;
}

/* A byte that may stand for itself in the host part of a new name. */
static bool host_byte_plain(unsigned char c)
{
	if (c <= 0x20 || c >= 0x7f)
		return false;
	return c != '/' && c != ':' && c != ',' && c != '\\';
}

/* Escape host into out (MDNAME_HOST_MAX + 1 octets), cut at a whole escape. */
static size_t escape_host(const char *host, char *out)
{
	size_t n = 0;

	if (host == NULL || host[0] == '\0')
		host = "localhost";
	for (const unsigned char *p = (const unsigned char *)host; *p != '\0'; p++) {
		if (host_byte_plain(*p)) {
			if (n + 1 > MDNAME_HOST_MAX)
				break;
			out[n++] = (char)*p;
		} else {
			/* Maildir spec: '/' -> "\057", ':' -> "\072"; the same
			 * octal form for everything else we escape. */
			if (n + 4 > MDNAME_HOST_MAX)
				break;
			out[n++] = '\\';
			out[n++] = (char)('0' + ((*p >> 6) & 7));
			out[n++] = (char)('0' + ((*p >> 3) & 7));
			out[n++] = (char)('0' + (*p & 7));
		}
	}
	out[n] = '\0';
	return n;
}

int mdname_new(char *out, size_t outlen, const struct mdname_unique *u, uint64_t size, uint64_t vsize)
{
	char host[MDNAME_HOST_MAX + 1];
	int n;

	escape_host(u->host, host);
	n = snprintf(out, outlen, "%" PRIu64 ".M%" PRIu32 "P%" PRIu32 "Q%" PRIu64 ".%s,S=%" PRIu64 ",W=%" PRIu64,
		     u->sec, u->usec, u->pid, u->counter, host, size, vsize);
	if (n < 0 || (size_t)n >= outlen || n > MDNAME_MAX) {
		if (outlen > 0)
			out[0] = '\0';
		return -1;
	}
	return n;
}

/* The ",KEY=VALUE" fields of the base; the first S= and W= count. */
static void parse_fields(const char *base, size_t base_len, struct mdname_info *r)
{
	const char *end = base + base_len;
	const char *p = memchr(base, ',', base_len);

	while (p != NULL) {
		const char *f = p + 1;
		const char *next = memchr(f, ',', (size_t)(end - f));
		const char *fend = next != NULL ? next : end;
		size_t flen = (size_t)(fend - f);

		if (flen >= 2 && f[1] == '=') {
			if (f[0] == 'S' && !r->has_size)
				r->has_size = strnum_u64(f + 2, flen - 2, &r->size);
			else if (f[0] == 'W' && !r->has_vsize)
				r->has_vsize = strnum_u64(f + 2, flen - 2, &r->vsize);
		}
		p = next;
	}
	if (!r->has_size)
		r->size = 0;
	if (!r->has_vsize)
		r->vsize = 0;
}

/* The letters after ":2,". */
static void parse_letters(const char *p, size_t len, struct mdname_info *r)
{
	bool other[256] = { false };
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];
		unsigned flag = flag_of(c);

		if (flag != 0)
			r->flags |= flag;
		else if (c >= 'a' && c <= 'z')
			r->keywords |= 1u << (c - 'a');
		else
			other[c] = true;
	}
	for (unsigned c = 1; c < 256; c++) {
		if (!other[c])
			continue;
		if (n == MDNAME_OTHER_MAX) {
			r->other_overflow = true;
			break;
		}
		r->other[n++] = (char)c;
	}
	r->other[n] = '\0';
}

int mdname_parse(const char *name, size_t len, struct mdname_info *r)
{
	const char *colon;

	memset(r, 0, sizeof(*r));
	if (len == 0 || len > MDNAME_MAX || name[0] == '.')
		return -1;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		if (c == '/' || c == '\0' || c == '\r' || c == '\n')
			return -1;
	}

	colon = memchr(name, ':', len);
	r->base_len = colon != NULL ? (size_t)(colon - name) : len;
	if (r->base_len == 0)
		return -1;
	parse_fields(name, r->base_len, r);

	if (colon == NULL) {
		r->info = MDNAME_INFO_NONE;
	} else {
		const char *info = colon + 1;
		size_t ilen = len - r->base_len - 1;

		if (ilen >= 2 && info[0] == '2' && info[1] == ',') {
			r->info = MDNAME_INFO_2;
			parse_letters(info + 2, ilen - 2, r);
		} else if (ilen >= 2 && info[0] == '1' && info[1] == ',') {
			r->info = MDNAME_INFO_1;
		} else {
			r->info = MDNAME_INFO_OTHER;
		}
	}
	return 0;
}

int mdname_with_info(char *out, size_t outlen, const char *name, size_t base_len, unsigned flags,
		     uint32_t keywords, const char *other)
{
	bool set[256] = { false };
	size_t n_letters = 0, total, pos;

	if (base_len == 0 || memchr(name, ':', base_len) != NULL || memchr(name, '/', base_len) != NULL ||
	    memchr(name, '\0', base_len) != NULL)
		goto fail;

	for (size_t i = 0; i < N_FLAG_LETTERS; i++) {
		if ((flags & flag_letters[i].flag) != 0)
			set[(unsigned char)flag_letters[i].letter] = true;
	}
	for (unsigned i = 0; i < 26; i++) {
		if ((keywords & (1u << i)) != 0)
			set['a' + i] = true;
	}
	if (other != NULL) {
		for (const unsigned char *p = (const unsigned char *)other; *p != '\0'; p++) {
			if (*p != '/' && *p != '\r' && *p != '\n')
				set[*p] = true;
		}
	}
	for (unsigned c = 1; c < 256; c++)
		n_letters += set[c];

	total = base_len + 3 + n_letters;
	if (total > MDNAME_MAX || total >= outlen)
		goto fail;

	memmove(out, name, base_len);
	pos = base_len;
	out[pos++] = ':';
	out[pos++] = '2';
	out[pos++] = ',';
	for (unsigned c = 1; c < 256; c++) {
		if (set[c])
			out[pos++] = (char)c;
	}
	out[pos] = '\0';
	return (int)pos;
fail:
	if (outlen > 0 && out != name)
		out[0] = '\0';
	return -1;
}

unsigned mdname_flags_from_chars(const char *chars, size_t len)
{
	unsigned flags = 0;

	for (size_t i = 0; i < len; i++)
		flags |= flag_of((unsigned char)chars[i]);
	return flags;
}

size_t mdname_flags_to_chars(unsigned flags, char *out)
{
	size_t n = 0;

	for (size_t i = 0; i < N_FLAG_LETTERS; i++) {
		if ((flags & flag_letters[i].flag) != 0)
			out[n++] = flag_letters[i].letter;
	}
	out[n] = '\0';
	return n;
}
