/*
 * RFC 5322 3.4 address-list parser for ENVELOPE (see mime_address.h).
 *
 * The shape is the grammar's: address = group / mailbox, mailbox =
 * name-addr / addr-spec, each tried in that order with the cursor rewound
 * when an alternative does not fit. The lenient corners (a bare word is a
 * mailbox without domain, a word followed by more words is a display name
 * without address, the last comment names an addr-spec) are where real mail
 * needs them; they are spelled out next to the code.
 */

#include "mime/mime_address.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"
#include "mime/mime_rfc822.h"

struct entry {
	char *name;
	char *route;
	char *mailbox;
	char *domain;
};

struct aparser {
	struct mime__lex lx;
	struct mime__str comment;   /* last comment seen */
	struct mime__str s;         /* scratch for the token being read */
	struct entry cur;           /* the address being built */
	bool invalid;
	struct entry *list;
	size_t n;
	size_t cap;
	size_t max;
};

static void set_field(char **field, const char *value)
{
	free(*field);
	*field = value != NULL ? xstrdup(value) : NULL;
}

static void entry_free(struct entry *e)
{
	free(e->name);
	free(e->route);
	free(e->mailbox);
	free(e->domain);
	memset(e, 0, sizeof(*e));
}

/* Move the current address to the list, as it is. */
static void add_address(struct aparser *ap)
{
	if (ap->n == ap->max) {
		entry_free(&ap->cur);
	} else {
		if (ap->n == ap->cap) {
			ap->cap = ap->cap ? ap->cap * 2 : 8;
			ap->list = xrealloc(ap->list, ap->cap * sizeof(*ap->list));
		}
		ap->list[ap->n++] = ap->cur;
		memset(&ap->cur, 0, sizeof(ap->cur));
	}
	ap->invalid = false;
}

/* A mailbox must show a mailbox and a domain in ENVELOPE; fill the gaps
 * with markers a human can recognise. */
static void add_fixed_address(struct aparser *ap)
{
	if (ap->cur.mailbox == NULL)
		set_field(&ap->cur.mailbox, "MISSING_MAILBOX");
	if (ap->cur.domain == NULL || ap->cur.domain[0] == '\0')
		set_field(&ap->cur.domain, "MISSING_DOMAIN");
	add_address(ap);
}

/* local-part, allowing the dots real mail puts where RFC 5322 does not
 * ("first..last", "trailing.") */
static int parse_loose_dot_atom(struct aparser *ap)
{
	struct mime__lex *lx = &ap->lx;
	int ret = -1;

	do {
		while (*lx->p == '.') {
			mime__str_addc(&ap->s, '.');
			lx->p++;
			if (lx->p == lx->end)
				return 0;
			ret = 1;
		}
		if (*lx->p == '@')
			break;
		ret = mime__parse_atom(lx, &ap->s);
	} while (ret > 0 && *lx->p == '.');
	return ret;
}

static int parse_local_part(struct aparser *ap)
{
	int ret;

	mime__str_truncate(&ap->s, 0);
	if (*ap->lx.p == '"')
		ret = mime__parse_quoted(&ap->lx, &ap->s);
	else
		ret = parse_loose_dot_atom(ap);
	if (ret < 0)
		return -1;
	set_field(&ap->cur.mailbox, mime__str_c(&ap->s));
	return ret;
}

static int parse_domain(struct aparser *ap)
{
	int ret;

	mime__str_truncate(&ap->s, 0);
	if ((ret = mime__parse_domain(&ap->lx, &ap->s)) < 0)
		return -1;
	set_field(&ap->cur.domain, mime__str_c(&ap->s));
	return ret;
}

/* obs-domain-list (RFC 5322 4.4): "@a,@b" before the ':' of a route */
static int parse_domain_list(struct aparser *ap)
{
	struct mime__lex *lx = &ap->lx;
	int ret;

	mime__str_truncate(&ap->s, 0);
	for (;;) {
		if (lx->p >= lx->end)
			return 0;
		if (*lx->p != '@')
			break;
		if (ap->s.len > 0)
			mime__str_addc(&ap->s, ',');
		mime__str_addc(&ap->s, '@');
		if ((ret = mime__parse_domain(lx, &ap->s)) <= 0)
			return ret;
		while (mime__skip_lwsp(lx) > 0 && *lx->p == ',')
			lx->p++;
	}
	set_field(&ap->cur.route, mime__str_c(&ap->s));
	return 1;
}

static int parse_angle_addr(struct aparser *ap)
{
	struct mime__lex *lx = &ap->lx;

	lx->p++; /* '<' */
	if (mime__skip_lwsp(lx) <= 0)
		return -1;
	if (*lx->p == '@') {
		if (parse_domain_list(ap) > 0 && *lx->p == ':') {
			lx->p++;
		} else {
			set_field(&ap->cur.route, "INVALID_ROUTE");
			if (lx->p >= lx->end)
				return -1;
			/* go on: the address after a bad route may be fine */
		}
		if (mime__skip_lwsp(lx) <= 0)
			return -1;
	}
	if (*lx->p != '>') {
		/* "<>" (the null path) leaves mailbox and domain unset */
		if (parse_local_part(ap) <= 0)
			return -1;
		if (*lx->p == '@' && parse_domain(ap) <= 0)
			return -1;
	}
	if (*lx->p != '>')
		return -1;
	lx->p++;
	return mime__skip_lwsp(lx);
}

/* name-addr = [display-name] angle-addr */
static int parse_name_addr(struct aparser *ap)
{
	struct mime__lex *lx = &ap->lx;

	mime__str_truncate(&ap->s, 0);
	if (mime__parse_phrase(lx, &ap->s) <= 0 || *lx->p != '<')
		return -1;
	set_field(&ap->cur.name, ap->s.len > 0 ? mime__str_c(&ap->s) : NULL);
	if (parse_angle_addr(ap) < 0) {
		set_field(&ap->cur.domain, "SYNTAX_ERROR");
		ap->invalid = true;
	}
	return lx->p < lx->end ? 1 : 0;
}

/* addr-spec = local-part "@" domain, with the lenient readings of what
 * real headers put there instead */
static int parse_addr_spec(struct aparser *ap)
{
	struct mime__lex *lx = &ap->lx;
	int ret, ret2 = -2;

	mime__str_truncate(&ap->comment, 0);
	bool quoted = *lx->p == '"';
	ret = parse_local_part(ap);
	if (ret <= 0)
		ap->invalid = true;
	if (ret != 0 && lx->p < lx->end && *lx->p == '@') {
		ret2 = parse_domain(ap);
		if (ret2 <= 0)
			ret = ret2;
	}
	if (ap->comment.len > 0) {
		/* "user@host (Full Name)" */
		set_field(&ap->cur.name, mime__str_c(&ap->comment));
	} else if (ret2 == -2) {
		/* No "@domain" and no comment: a lone word is a mailbox
		 * without a domain, but words that go on are a display
		 * name without an address ("Undisclosed recipients"). */
		mime__str_addc(&ap->s, ' ');
		size_t before = ap->s.len;
		(void)mime__parse_phrase(lx, &ap->s);
		if (ap->s.len != before) {
			set_field(&ap->cur.mailbox, NULL);
			set_field(&ap->cur.name, mime__str_c(&ap->s));
		} else if (!quoted) {
			set_field(&ap->cur.domain, "");
		}
		ap->invalid = true;
		ret = -1;
	}
	return ret;
}

static int parse_mailbox(struct aparser *ap)
{
	const unsigned char *start = ap->lx.p;
	int ret;

	if ((ret = parse_name_addr(ap)) < 0) {
		ap->lx.p = start;
		ret = parse_addr_spec(ap);
		if (ap->invalid && ap->cur.name == NULL &&
		    ap->cur.mailbox != NULL && ap->cur.domain == NULL) {
			/* what was read as a mailbox is really a name */
			ap->cur.name = ap->cur.mailbox;
			ap->cur.mailbox = NULL;
		}
	}
	if (ret < 0)
		ap->invalid = true;
	add_fixed_address(ap);
	return ret;
}

/* group = display-name ":" [mailbox-list / CFWS] ";" [CFWS] */
static int parse_group(struct aparser *ap)
{
	struct mime__lex *lx = &ap->lx;
	int ret;

	mime__str_truncate(&ap->s, 0);
	if (mime__parse_phrase(lx, &ap->s) <= 0 || *lx->p != ':')
		return -1;
	/* from here on it is a group, however broken */
	lx->p++;
	if ((ret = mime__skip_lwsp(lx)) <= 0)
		ap->invalid = true;
	set_field(&ap->cur.mailbox, mime__str_c(&ap->s));
	add_address(ap);

	if (ret > 0 && *lx->p != ';') {
		for (;;) {
			(void)parse_mailbox(ap);
			if (lx->p >= lx->end || *lx->p != ',')
				break;
			lx->p++;
			if (mime__skip_lwsp(lx) <= 0) {
				ret = -1;
				break;
			}
		}
	}
	if (ret >= 0) {
		if (lx->p >= lx->end || *lx->p != ';') {
			ret = -1;
		} else {
			lx->p++;
			ret = mime__skip_lwsp(lx);
		}
	}
	add_address(ap); /* the group end: all four fields NIL */
	return ret == 0 ? 0 : 1;
}

static int parse_address(struct aparser *ap)
{
	const unsigned char *start = ap->lx.p;
	int ret;

	if ((ret = parse_group(ap)) < 0) {
		ap->lx.p = start;
		entry_free(&ap->cur);
		ret = parse_mailbox(ap);
	}
	return ret;
}

static void parse_address_list(struct aparser *ap)
{
	struct mime__lex *lx = &ap->lx;
	int ret;

	while (ap->n < ap->max) {
		if (parse_address(ap) == 0)
			break;
		if (lx->p >= lx->end || *lx->p != ',')
			break;
		lx->p++;
		if ((ret = mime__skip_lwsp(lx)) <= 0) {
			if (ret < 0)
				add_fixed_address(ap); /* ends in garbage */
			break;
		}
	}
}

/* The room an address array of n entries was allocated with. */
static size_t capacity(size_t n)
{
	size_t cap = 4;

	if (n == 0)
		return 0;
	while (cap < n)
		cap *= 2;
	return cap;
}

void mime_address_parse(struct mime_tree *t, const void *value, size_t len,
			struct mime_address **list, uint32_t *count)
{
	struct aparser ap;

	memset(&ap, 0, sizeof(ap));
	mime__lex_init(&ap.lx, value, len);
	ap.lx.comment = &ap.comment;
	ap.lx.nul_repl = true;
	ap.max = MIME_MAX_ADDRESSES - *count;

	if (mime__skip_lwsp(&ap.lx) > 0)
		parse_address_list(&ap);
	entry_free(&ap.cur);

	if (ap.n > 0) {
		/* Arrays are sized in powers of two, so a field repeated many
		 * times (one Cc: line per address) costs linear, not
		 * quadratic, arena space. */
		struct mime_address *out = *list;
		if (capacity(*count) < *count + ap.n) {
			out = mime_tree_alloc(t, capacity(*count + ap.n) * sizeof(*out));
			if (*count > 0)
				memcpy(out, *list, *count * sizeof(*out));
		}
		for (size_t i = *count, k = 0; k < ap.n; i++, k++) {
			struct entry *e = &ap.list[k];
#define COPY(f) out[i].f = e->f != NULL ? mime_tree_strdup(t, e->f, strlen(e->f)) : NULL
			COPY(name);
			COPY(route);
			COPY(mailbox);
			COPY(domain);
#undef COPY
			entry_free(e);
		}
		*list = out;
		*count += (uint32_t)ap.n;
	}
	free(ap.list);
	mime__str_free(&ap.comment);
	mime__str_free(&ap.s);
}
