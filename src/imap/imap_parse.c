/*
 * IMAP4rev1 command parser (RFC 3501 9, RFC 7888 LITERAL+).
 *
 * Design: accumulation and tokenizing are separate. While lines and literal
 * bytes arrive, the parser only looks at the end of each line for a literal
 * announcement and keeps the command in its wire form (lines joined by CRLF,
 * literal bytes in place) in a buffer bounded by command_max. That keeps the
 * state machine small enough to get right under pipelining and byte-at-a-time
 * input, and the tokenizer then runs over one contiguous, complete command
 * where a literal "{n}\r\n" is self-describing.
 *
 * It must never: send a continuation for a literal it will refuse (the
 * status tells the session before), buffer more than its limits, or lose
 * step with the client (a refused non-synchronizing literal is skipped and
 * the rest of its command dropped, then answered once).
 *
 * Token strings are copied, NUL-terminated, into an arena owned by the
 * parser and sized from the command before tokenizing, so no token can
 * outgrow it.
 */

#include "imap/imap_parse.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/xalloc.h"

#define TAG_MAX 64

enum parser_state {
	PS_LINE = 0,   /* a line is due */
	PS_LITERAL,    /* literal bytes are due, kept */
	PS_SKIP,       /* literal bytes are due, dropped */
};

struct imap_parser {
	size_t literal_max;
	size_t command_max;
	enum parser_state state;
	uint64_t lit_left;
	bool started;          /* the first line of the command has come */
	bool dropping;         /* the command is refused; drop to its end */
	enum imap_parse_status drop_status;
	char tag[TAG_MAX + 1];

	char *buf;             /* the command in wire form */
	size_t len, cap;

	char *arena;           /* token strings */
	size_t arena_len, arena_cap;
	struct imap_arg *toks;
	size_t ntoks, toks_cap;
};

struct imap_parser *imap_parser_new(size_t literal_max, size_t command_max)
{
	struct imap_parser *p = xcalloc(1, sizeof(*p));
	p->literal_max = literal_max;
	p->command_max = command_max;
	strcpy(p->tag, "*");
	return p;
}

void imap_parser_free(struct imap_parser **pp)
{
	struct imap_parser *p = *pp;
	if (p == NULL)
		return;
	free(p->buf);
	free(p->arena);
	free(p->toks);
	free(p);
	*pp = NULL;
}

/* Keeps the tag: it is needed to answer a refused command. */
void imap_parser_reset(struct imap_parser *p)
{
	p->state = PS_LINE;
	p->lit_left = 0;
	p->started = false;
	p->dropping = false;
	p->len = 0;
	p->arena_len = 0;
	p->ntoks = 0;
}

const char *imap_parser_tag(const struct imap_parser *p)
{
	return p->tag;
}

uint64_t imap_parser_literal_left(const struct imap_parser *p)
{
	return p->state == PS_LINE ? 0 : p->lit_left;
}

/* ---- character classes (RFC 3501 9) ---- */

/* ATOM-CHAR: any CHAR except atom-specials ("(" ")" "{" SP CTL
 * list-wildcards quoted-specials resp-specials). */
static bool is_atom_char(unsigned char c)
{
	if (c <= 0x20 || c >= 0x7f)
		return false;
	return strchr("(){%*\"\\]", c) == NULL;
}

/* What the tokenizer reads as one atom: ATOM-CHAR plus list-wildcards and
 * resp-specials, so sequence sets ("1:*"), LIST patterns ("%") and
 * ASTRING-CHAR mailbox names come out whole; commands check them. */
static bool is_word_char(unsigned char c)
{
	return is_atom_char(c) || c == '%' || c == '*' || c == ']';
}

/* tag = 1*<any ASTRING-CHAR except "+"> */
static bool is_tag_char(unsigned char c)
{
	return (is_atom_char(c) || c == ']') && c != '+';
}

/* ---- accumulation ---- */

/* The line ends in "{n}" or "{n+}": sets *n_r (saturated), *sync_r and
 * *valid_r (n fits 32 bits, RFC 3501 9 "number"). */
static bool find_announcement(const char *line, size_t len, uint64_t *n_r, bool *sync_r, bool *valid_r)
{
	if (len < 3 || line[len - 1] != '}')
		return false;
	size_t end = len - 1;
	bool sync = true;
	if (line[end - 1] == '+') {
		sync = false;
		end--;
	}
	size_t start = end;
	while (start > 0 && line[start - 1] >= '0' && line[start - 1] <= '9')
		start--;
	if (start == end || start == 0 || line[start - 1] != '{')
		return false;
	uint64_t n = 0;
	bool valid = true;
	for (size_t i = start; i < end; i++) {
		unsigned d = (unsigned)(line[i] - '0');
		if (n > (UINT32_MAX - d) / 10) {
			valid = false;
			n = UINT64_MAX;
			break;
		}
		n = n * 10 + d;
	}
	*n_r = n;
	*sync_r = sync;
	*valid_r = valid;
	return true;
}

static void set_tag(struct imap_parser *p, const char *line, size_t len)
{
	size_t i = 0;
	while (i < len && i <= TAG_MAX && is_tag_char((unsigned char)line[i]))
		i++;
	if (i == 0 || i > TAG_MAX || i >= len || line[i] != ' ') {
		strcpy(p->tag, "*");
		return;
	}
	memcpy(p->tag, line, i);
	p->tag[i] = '\0';
}

static void append(struct imap_parser *p, const void *data, size_t len)
{
	if (len == 0)
		return;
	if (p->cap - p->len < len) {
		size_t cap = p->cap ? p->cap : 256;
		while (cap - p->len < len)
			cap *= 2;
		if (cap > p->command_max)
			cap = p->command_max;
		p->buf = xrealloc(p->buf, cap);
		p->cap = cap;
	}
	memcpy(p->buf + p->len, data, len);
	p->len += len;
}

/* Refuse the command now (no continuation goes out). */
static enum imap_parse_status refuse(struct imap_parser *p, enum imap_parse_status st)
{
	imap_parser_reset(p);
	return st;
}

/* A non-synchronizing literal of a refused command: skip its bytes, drop
 * the rest, answer with st at the end. */
static enum imap_parse_status skip(struct imap_parser *p, enum imap_parse_status st, uint64_t n,
				   uint64_t *n_r)
{
	p->dropping = true;
	p->drop_status = st;
	p->len = 0;
	p->state = n > 0 ? PS_SKIP : PS_LINE;
	p->lit_left = n;
	*n_r = n;
	return IMAP_PARSE_SKIP;
}

enum imap_parse_status imap_parser_line(struct imap_parser *p, const char *line, size_t len,
					uint64_t *n_r, bool *sync_r)
{
	uint64_t n = 0;
	bool sync = true, valid = true;
	bool lit = find_announcement(line, len, &n, &sync, &valid);

	*n_r = 0;
	*sync_r = false;
	if (!p->started) {
		set_tag(p, line, len);
		p->started = true;
	}
	if (p->dropping) {
		if (!lit || sync)
			return refuse(p, p->drop_status);
		if (!valid)
			return refuse(p, IMAP_PARSE_FATAL);
		return skip(p, p->drop_status, n, n_r);
	}

	size_t need = len + (lit ? 2 : 0);
	if (need > p->command_max - p->len) {
		if (!lit || sync)
			return refuse(p, IMAP_PARSE_TOO_LONG);
		if (!valid)
			return refuse(p, IMAP_PARSE_FATAL);
		return skip(p, IMAP_PARSE_TOO_LONG, n, n_r);
	}
	if (!lit) {
		append(p, line, len);
		return IMAP_PARSE_COMPLETE;
	}
	/* RFC 7888 4: a literal over the limit is refused before the
	 * continuation; a non-synchronizing one is already on its way. */
	enum imap_parse_status over = IMAP_PARSE_COMPLETE;
	if (!valid || n > p->literal_max)
		over = IMAP_PARSE_LITERAL_TOO_BIG;
	else if (n > p->command_max - p->len - need)
		over = IMAP_PARSE_TOO_LONG;
	if (over != IMAP_PARSE_COMPLETE) {
		if (sync)
			return refuse(p, over);
		if (!valid)
			return refuse(p, IMAP_PARSE_FATAL);
		return skip(p, over, n, n_r);
	}
	append(p, line, len);
	append(p, "\r\n", 2);
	p->state = n > 0 ? PS_LITERAL : PS_LINE;
	p->lit_left = n;
	*n_r = n;
	*sync_r = sync;
	return IMAP_PARSE_LITERAL;
}

enum imap_parse_status imap_parser_bytes(struct imap_parser *p, const void *data, size_t len)
{
	if (p->state == PS_LINE)
		return IMAP_PARSE_MORE;
	if (len > p->lit_left)
		len = (size_t)p->lit_left;
	if (p->state == PS_LITERAL)
		append(p, data, len);
	p->lit_left -= len;
	if (p->lit_left == 0)
		p->state = PS_LINE;
	return IMAP_PARSE_MORE;
}

/* ---- tokenizer ---- */

struct tok {
	struct imap_parser *p;
	const char *s;
	size_t len;
	size_t pos;
	const char *error;
};

static bool fail(struct tok *t, const char *msg)
{
	if (t->error == NULL)
		t->error = msg;
	return false;
}

static int peek(const struct tok *t)
{
	return t->pos < t->len ? (unsigned char)t->s[t->pos] : -1;
}

static char *arena_put(struct imap_parser *p, const char *src, size_t len)
{
	/* Sized in imap_parser_command() so this cannot overflow. */
	char *d = p->arena + p->arena_len;
	if (len > 0)
		memcpy(d, src, len);
	d[len] = '\0';
	p->arena_len += len + 1;
	return d;
}

static size_t new_tok(struct imap_parser *p, enum imap_arg_type type)
{
	if (p->ntoks == p->toks_cap) {
		p->toks_cap = p->toks_cap ? p->toks_cap * 2 : 16;
		p->toks = xrealloc(p->toks, p->toks_cap * sizeof(*p->toks));
	}
	struct imap_arg *a = &p->toks[p->ntoks];
	memset(a, 0, sizeof(*a));
	a->type = type;
	a->span = 1;
	a->str = "";
	a->sec_name = a->sec_part = a->sec_text = "";
	return p->ntoks++;
}

static bool parse_arg(struct tok *t, unsigned depth, bool astring_only);

static bool parse_quoted(struct tok *t)
{
	struct imap_parser *p = t->p;
	t->pos++; /* '"' */
	char *d = p->arena + p->arena_len;
	size_t n = 0;
	for (;;) {
		int c = peek(t);
		if (c < 0)
			return fail(t, "Unterminated quoted string");
		t->pos++;
		if (c == '"')
			break;
		if (c == '\\') {
			/* RFC 3501 9 quoted-specials: only \" and \\ */
			c = peek(t);
			if (c != '"' && c != '\\')
				return fail(t, "Invalid escape in quoted string");
			t->pos++;
		} else if (c == 0 || c == '\r' || c == '\n' || c >= 0x80) {
			return fail(t, "Invalid character in quoted string");
		}
		d[n++] = (char)c;
	}
	d[n] = '\0';
	p->arena_len += n + 1;
	size_t i = new_tok(p, IMAP_ARG_QUOTED);
	p->toks[i].str = d;
	p->toks[i].len = n;
	return true;
}

static bool parse_literal(struct tok *t)
{
	size_t pos = t->pos + 1;
	uint64_t n = 0;
	size_t digits = 0;
	while (pos < t->len && t->s[pos] >= '0' && t->s[pos] <= '9') {
		n = n * 10 + (uint64_t)(t->s[pos] - '0');
		if (n > UINT32_MAX)
			return fail(t, "Literal too long");
		pos++;
		digits++;
	}
	if (digits == 0)
		return fail(t, "Invalid literal");
	if (pos < t->len && t->s[pos] == '+')
		pos++;
	if (pos + 3 > t->len || t->s[pos] != '}' || t->s[pos + 1] != '\r' || t->s[pos + 2] != '\n')
		return fail(t, "Invalid literal");
	pos += 3;
	if (n > t->len - pos)
		return fail(t, "Literal too short");
	size_t i = new_tok(t->p, IMAP_ARG_LITERAL);
	t->p->toks[i].str = arena_put(t->p, t->s + pos, (size_t)n);
	t->p->toks[i].len = (size_t)n;
	t->pos = pos + (size_t)n;
	return true;
}

static bool parse_flag(struct tok *t)
{
	size_t start = t->pos++;
	if (peek(t) == '*') {
		t->pos++;
	} else {
		size_t k = t->pos;
		while (t->pos < t->len && is_atom_char((unsigned char)t->s[t->pos]))
			t->pos++;
		if (t->pos == k)
			return fail(t, "Invalid flag");
	}
	size_t i = new_tok(t->p, IMAP_ARG_FLAG);
	t->p->toks[i].str = arena_put(t->p, t->s + start, t->pos - start);
	t->p->toks[i].len = t->pos - start;
	return true;
}

static bool read_num32(struct tok *t, uint32_t *v_r, bool nz)
{
	uint64_t v = 0;
	size_t k = t->pos;
	while (t->pos < t->len && t->s[t->pos] >= '0' && t->s[t->pos] <= '9') {
		v = v * 10 + (uint64_t)(t->s[t->pos] - '0');
		if (v > UINT32_MAX)
			return fail(t, "Number too large");
		t->pos++;
	}
	if (t->pos == k || (nz && (v == 0 || t->s[k] == '0')))
		return fail(t, "Invalid number");
	*v_r = (uint32_t)v;
	return true;
}

static bool name_is(const char *s, size_t len, const char *name)
{
	return strlen(name) == len && strncasecmp(s, name, len) == 0;
}

/* RFC 3501 6.4.5 / 9 "section", RFC 3516 "section-binary"; t->pos is on
 * the '['; the name runs from start. */
static bool parse_section(struct tok *t, size_t start, unsigned depth)
{
	struct imap_parser *p = t->p;
	const char *name = t->s + start;
	size_t name_len = t->pos - start;
	bool binary = name_len >= 6 && strncasecmp(name, "BINARY", 6) == 0;
	size_t si = new_tok(p, IMAP_ARG_SECTION);
	size_t part_off = 0, part_len = 0, text_off = 0, text_len = 0;

	t->pos++; /* '[' */
	part_off = t->pos - start;
	while (peek(t) >= '0' && peek(t) <= '9') {
		uint32_t v;
		if (!read_num32(t, &v, true))
			return false;
		if (peek(t) == '.' && t->pos + 1 < t->len && t->s[t->pos + 1] >= '0' &&
		    t->s[t->pos + 1] <= '9') {
			t->pos++;
			continue;
		}
		break;
	}
	part_len = t->pos - start - part_off;
	bool dot = false;
	if (part_len > 0 && peek(t) == '.') {
		t->pos++;
		dot = true;
	} else if (part_len > 0 && peek(t) != ']')
		return fail(t, "Invalid section");
	text_off = t->pos - start;
	while (t->pos < t->len && ((t->s[t->pos] >= 'A' && t->s[t->pos] <= 'Z') ||
				   (t->s[t->pos] >= 'a' && t->s[t->pos] <= 'z') || t->s[t->pos] == '.'))
		t->pos++;
	text_len = t->pos - start - text_off;
	const char *text = t->s + start + text_off;
	if (text_len > 0 && part_len == 0 && t->s[start + text_off - 1] == '.')
		return fail(t, "Invalid section");
	if (dot && text_len == 0)
		return fail(t, "Invalid section");
	if (binary && text_len > 0)
		return fail(t, "Invalid section");
	if (name_is(text, text_len, "HEADER.FIELDS") || name_is(text, text_len, "HEADER.FIELDS.NOT")) {
		/* header-list = "(" header-fld-name *(SP header-fld-name) ")" */
		if (peek(t) != ' ' || t->pos + 1 >= t->len || t->s[t->pos + 1] != '(')
			return fail(t, "Invalid section header list");
		t->pos += 2;
		uint32_t count = 0;
		for (;;) {
			if (!parse_arg(t, depth + 1, true))
				return false;
			count++;
			if (peek(t) == ')')
				break;
			if (peek(t) != ' ')
				return fail(t, "Invalid section header list");
			t->pos++;
		}
		t->pos++;
		p->toks[si].count = count;
	} else if (text_len > 0 && !name_is(text, text_len, "HEADER") && !name_is(text, text_len, "TEXT") &&
		   !(part_len > 0 && name_is(text, text_len, "MIME"))) {
		return fail(t, "Invalid section");
	}
	if (peek(t) != ']')
		return fail(t, "Invalid section");
	t->pos++;
	bool has_partial = false, has_len = false;
	uint32_t origin = 0, plen = 0;
	if (peek(t) == '<') {
		/* "<" number ["." nz-number] ">" */
		t->pos++;
		has_partial = true;
		if (!read_num32(t, &origin, false))
			return false;
		if (peek(t) == '.') {
			t->pos++;
			has_len = true;
			if (!read_num32(t, &plen, true))
				return false;
		}
		if (peek(t) != '>')
			return fail(t, "Invalid partial");
		t->pos++;
	}
	struct imap_arg *a = &p->toks[si];
	char *copy = arena_put(p, t->s + start, t->pos - start);
	a->str = copy;
	a->len = t->pos - start;
	/* Terminated by the following '[' / ']' in the copy; lengths given. */
	a->sec_name = copy;
	a->sec_name_len = name_len;
	a->sec_part = copy + part_off;
	a->sec_part_len = part_len;
	a->sec_text = copy + text_off;
	a->sec_text_len = text_len;
	a->has_partial = has_partial;
	a->has_partial_len = has_len;
	a->partial_origin = origin;
	a->partial_len = plen;
	a->span = (uint32_t)(p->ntoks - si);
	return true;
}

static bool parse_word(struct tok *t, unsigned depth, bool astring_only)
{
	struct imap_parser *p = t->p;
	size_t start = t->pos;
	while (t->pos < t->len) {
		unsigned char c = (unsigned char)t->s[t->pos];
		if (c == '[' && !astring_only) {
			const char *w = t->s + start;
			size_t n = t->pos - start;
			if (name_is(w, n, "BODY") || name_is(w, n, "BODY.PEEK") || name_is(w, n, "BINARY") ||
			    name_is(w, n, "BINARY.PEEK") || name_is(w, n, "BINARY.SIZE"))
				return parse_section(t, start, depth);
		}
		if (!is_word_char(c))
			break;
		t->pos++;
	}
	size_t n = t->pos - start;
	if (n == 0)
		return fail(t, "Invalid characters in atom");
	const char *w = t->s + start;
	enum imap_arg_type type = IMAP_ARG_ATOM;
	uint64_t v = 0;
	if (n <= 19) {
		size_t k = 0;
		while (k < n && w[k] >= '0' && w[k] <= '9')
			v = v * 10 + (uint64_t)(w[k++] - '0');
		if (k == n)
			type = IMAP_ARG_NUMBER;
	}
	if (name_is(w, n, "NIL"))
		type = IMAP_ARG_NIL;
	size_t i = new_tok(p, type);
	p->toks[i].str = arena_put(p, w, n);
	p->toks[i].len = n;
	p->toks[i].num = type == IMAP_ARG_NUMBER ? v : 0;
	return true;
}

/* One argument at t->pos. astring_only: header-list names. */
static bool parse_arg(struct tok *t, unsigned depth, bool astring_only)
{
	struct imap_parser *p = t->p;
	int c = peek(t);
	switch (c) {
	case -1:
		return fail(t, "Missing argument");
	case '"':
		return parse_quoted(t);
	case '{':
		return parse_literal(t);
	case ' ':
		return fail(t, "Unexpected space");
	case ')':
		return fail(t, "Unexpected )");
	case '\\':
		if (astring_only)
			return fail(t, "Invalid header field name");
		return parse_flag(t);
	case '(': {
		if (astring_only)
			return fail(t, "Invalid header field name");
		if (depth >= IMAP_PARSE_MAX_DEPTH)
			return fail(t, "Lists nested too deeply");
		t->pos++;
		size_t li = new_tok(p, IMAP_ARG_LIST);
		uint32_t count = 0;
		if (peek(t) != ')') {
			for (;;) {
				if (!parse_arg(t, depth + 1, false))
					return false;
				count++;
				c = peek(t);
				if (c == ')')
					break;
				if (c != ' ')
					return fail(t, c < 0 ? "Unbalanced parentheses" : "Missing space");
				t->pos++;
			}
		}
		t->pos++;
		p->toks[li].count = count;
		p->toks[li].span = (uint32_t)(p->ntoks - li);
		return true;
	}
	default:
		if (c >= 0x80)
			return fail(t, "8-bit characters outside strings");
		return parse_word(t, depth, astring_only);
	}
}

int imap_parser_command(struct imap_parser *p, struct imap_command *cmd_r, const char **error_r)
{
	struct tok t = { .p = p, .s = p->buf ? p->buf : "", .len = p->len };

	memset(cmd_r, 0, sizeof(*cmd_r));
	*error_r = NULL;
	/* Every token's text is at most its input bytes (section header
	 * names appear twice) plus a NUL, and tokens are at most one per
	 * input byte. */
	size_t need = 3 * p->len + 16;
	if (p->arena_cap < need) {
		free(p->arena);
		p->arena = xmalloc(need);
		p->arena_cap = need;
	}
	p->arena_len = 0;
	p->ntoks = 0;

	if (t.len == 0) {
		*error_r = "Empty command line";
		return -1;
	}
	/* tag SP command */
	while (t.pos < t.len && is_tag_char((unsigned char)t.s[t.pos]))
		t.pos++;
	if (t.pos == 0 || peek(&t) != ' ') {
		*error_r = "Missing or invalid tag";
		return -1;
	}
	cmd_r->tag = arena_put(p, t.s, t.pos);
	t.pos++;
	for (int word = 0; word < 2; word++) {
		size_t k = t.pos;
		while (t.pos < t.len && is_atom_char((unsigned char)t.s[t.pos]))
			t.pos++;
		if (t.pos == k || (peek(&t) != ' ' && peek(&t) != -1)) {
			*error_r = "Missing or invalid command name";
			return -1;
		}
		cmd_r->name = arena_put(p, t.s + k, t.pos - k);
		if (word == 1 || !name_is(t.s + k, t.pos - k, "UID"))
			break;
		cmd_r->uid = true;
		if (peek(&t) != ' ') {
			*error_r = "Missing command after UID";
			return -1;
		}
		t.pos++;
	}
	size_t nargs = 0;
	while (t.pos < t.len) {
		/* SP before every argument; exactly one */
		t.pos++;
		if (!parse_arg(&t, 0, false)) {
			*error_r = t.error ? t.error : "Invalid arguments";
			return -1;
		}
		nargs++;
		int c = peek(&t);
		if (c == ')') {
			*error_r = "Unbalanced parentheses";
			return -1;
		}
		if (c != -1 && c != ' ') {
			*error_r = c >= 0x80 ? "8-bit characters outside strings" : "Missing space between arguments";
			return -1;
		}
	}
	cmd_r->args = p->toks;
	cmd_r->nargs = nargs;
	cmd_r->ntokens = p->ntoks;
	return 0;
}

bool imap_command_is(const struct imap_command *cmd, const char *name)
{
	return cmd->name != NULL && strcasecmp(cmd->name, name) == 0;
}

bool imap_arg_astring(const struct imap_arg *a, const char **s_r, size_t *len_r)
{
	switch (a->type) {
	case IMAP_ARG_ATOM:
	case IMAP_ARG_NUMBER:
	case IMAP_ARG_NIL:
	case IMAP_ARG_QUOTED:
	case IMAP_ARG_LITERAL:
		*s_r = a->str;
		*len_r = a->len;
		return true;
	default:
		return false;
	}
}
