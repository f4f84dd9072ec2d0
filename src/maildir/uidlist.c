/*
 * dovecot-uidlist: the UID map of a Maildir folder in Dovecot's own format,
 * so that UIDVALIDITY and UIDs survive a move from Dovecot to postbote and
 * back (a client's cache stays valid both ways).
 *
 * Shape: a pure parser and formatter over memory (fuzzed), plus three
 * blocking file operations for the store's worker threads: read, rewrite
 * (lock file written, then renamed over the list) and append (the cheap
 * path at delivery: one write under the lock, no rename). The lock is
 * Dovecot's: "dovecot-uidlist.lock" created with O_EXCL, stale after two
 * minutes. Appends hold it too, because Dovecot may rewrite the list at
 * any time, and a line appended to the old file just before the rename
 * would be lost.
 *
 * What it must never do: reuse a UID. So next_uid only grows, a torn last
 * line still pushes it up, and a removed entry does not lower it.
 */

#include "maildir/uidlist.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/strnum.h"
#include "core/xalloc.h"

/* ------------------------------------------------------------------ */
/* Small helpers                                                        */

struct sb {
	char *s;
	size_t len, cap;
};

static void sb_reserve(struct sb *b, size_t more)
{
	if (b->len + more + 1 <= b->cap)
		return;
	size_t cap = b->cap == 0 ? 256 : b->cap;
	while (cap < b->len + more + 1)
		cap *= 2;
	b->s = xrealloc(b->s, cap);
	b->cap = cap;
}

static void sb_add(struct sb *b, const char *p, size_t n)
{
	sb_reserve(b, n);
	memcpy(b->s + b->len, p, n);
	b->len += n;
	b->s[b->len] = '\0';
}

static void sb_printf(struct sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sb *b, const char *fmt, ...)
{
	char tmp[128];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0)
		abort();
	if ((size_t)n < sizeof(tmp)) {
		sb_add(b, tmp, (size_t)n);
		return;
	}
	sb_reserve(b, (size_t)n);
	va_start(ap, fmt);
	vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

static bool parse_u32(const char *p, size_t len, uint32_t *v_r)
{
	uint64_t v;

	if (!strnum_u64(p, len, &v) || v > UINT32_MAX)
		return false;
	*v_r = (uint32_t)v;
	return true;
}

static bool is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* A base a list may hold: 1..UIDLIST_BASE_MAX octets, no '/', ':', CR, LF
 * or NUL. */
static bool base_ok(const char *base, size_t len)
{
	if (len == 0 || len > UIDLIST_BASE_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = base[i];
		if (c == '/' || c == ':' || c == '\r' || c == '\n' || c == '\0')
			return false;
	}
	return true;
}

static uint32_t last_uid(const struct uidlist *ul)
{
	return ul->n > 0 ? ul->entries[ul->n - 1].uid : 0;
}

/* max(next_uid, last uid + 1, 1) */
static uint32_t effective_next(const struct uidlist *ul)
{
	uint32_t next = ul->next_uid;
	uint32_t last = last_uid(ul);

	if (next <= last)
		next = last + 1;
	return next == 0 ? 1 : next;
}

/* ------------------------------------------------------------------ */
/* Setting up and tearing down                                          */

uint32_t uidlist_new_uidvalidity(void)
{
	uint32_t v = (uint32_t)time(NULL);
	return v == 0 ? 1 : v;
}

void uidlist_generate_guid(char guid_r[33])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char raw[16];
	size_t got = 0;

	while (got < sizeof(raw)) {
		ssize_t r = getrandom(raw + got, sizeof(raw) - got, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		got += (size_t)r;
	}
	if (got < sizeof(raw)) {
		/* No getrandom(): the GUID only has to be unique, not secret. */
		struct timespec ts;
		uint64_t x;

		clock_gettime(CLOCK_REALTIME, &ts);
		x = (uint64_t)ts.tv_sec * 1000000007u ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
		for (size_t i = 0; i < sizeof(raw); i++) {
			/* splitmix64 */
			x += 0x9e3779b97f4a7c15u;
			uint64_t z = x;
			z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
			z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
			raw[i] = (unsigned char)(z ^ (z >> 31));
		}
	}
	for (size_t i = 0; i < sizeof(raw); i++) {
		guid_r[2 * i] = hex[raw[i] >> 4];
		guid_r[2 * i + 1] = hex[raw[i] & 15];
	}
	guid_r[32] = '\0';
}

void uidlist_init(struct uidlist *ul, uint32_t uidvalidity)
{
	memset(ul, 0, sizeof(*ul));
	ul->uidvalidity = uidvalidity != 0 ? uidvalidity : uidlist_new_uidvalidity();
	ul->next_uid = 1;
	ul->version = 3;
	uidlist_generate_guid(ul->guid);
}

static void entry_free(struct uidlist_entry *e)
{
	free(e->base);
	free(e->ext);
	e->base = NULL;
	e->ext = NULL;
}

static void index_drop(struct uidlist *ul)
{
	free(ul->index);
	ul->index = NULL;
	ul->index_cap = 0;
}

void uidlist_free(struct uidlist *ul)
{
	for (size_t i = 0; i < ul->n; i++)
		entry_free(&ul->entries[i]);
	free(ul->entries);
	free(ul->extra_header);
	index_drop(ul);
	memset(ul, 0, sizeof(*ul));
}

/* ------------------------------------------------------------------ */
/* The base -> entry index: open addressing, linear probing, load <= 1/2 */

static uint64_t hash_base(const char *s, size_t len)
{
	uint64_t h = 0xcbf29ce484222325u; /* FNV-1a */

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 0x100000001b3u;
	}
	return h;
}

/* The slot holding base, or the empty slot where it would go. */
static size_t *index_slot(const struct uidlist *ul, const char *base, size_t len)
{
	size_t mask = ul->index_cap - 1;
	size_t i = (size_t)hash_base(base, len) & mask;

	for (;;) {
		size_t *slot = &ul->index[i];
		if (*slot == 0)
			return slot;
		const char *b = ul->entries[*slot - 1].base;
		if (strnlen(b, len + 1) == len && memcmp(b, base, len) == 0)
			return slot;
		i = (i + 1) & mask;
	}
}

static void index_alloc(struct uidlist *ul, size_t want)
{
	size_t cap = 16;

	while (cap < want * 2)
		cap *= 2;
	index_drop(ul);
	ul->index = xcalloc(cap, sizeof(*ul->index));
	ul->index_cap = cap;
}

/* Build the index over entries known to have distinct bases. */
static void index_build(struct uidlist *ul, size_t want)
{
	index_alloc(ul, want);
	for (size_t i = 0; i < ul->n; i++) {
		const char *b = ul->entries[i].base;
		*index_slot(ul, b, strlen(b)) = i + 1;
	}
}

/* ------------------------------------------------------------------ */
/* Parsing                                                              */

static int parse_fail(struct uidlist *ul, char **error_r, size_t lineno, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int parse_fail(struct uidlist *ul, char **error_r, size_t lineno, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	uidlist_free(ul);
	*error_r = xasprintf("line %zu: %s", lineno, msg);
	return -1;
}

/* Split off the next line; *terminated_r says whether it ended in LF. */
static bool next_line(const char **p, const char *end, const char **line_r, size_t *len_r, bool *terminated_r)
{
	const char *nl;

	if (*p >= end)
		return false;
	nl = memchr(*p, '\n', (size_t)(end - *p));
	*line_r = *p;
	if (nl != NULL) {
		*len_r = (size_t)(nl - *p);
		*terminated_r = true;
		*p = nl + 1;
	} else {
		*len_r = (size_t)(end - *p);
		*terminated_r = false;
		*p = end;
	}
	return true;
}

/* Length of the token at line[pos] up to a space or the end. */
static size_t token_len(const char *line, size_t len, size_t pos)
{
	const char *sp = memchr(line + pos, ' ', len - pos);
	return sp != NULL ? (size_t)(sp - (line + pos)) : len - pos;
}

static size_t skip_spaces(const char *line, size_t len, size_t pos)
{
	while (pos < len && line[pos] == ' ')
		pos++;
	return pos;
}

static int parse_header(const char *line, size_t len, struct uidlist *ul, char **error_r)
{
	bool have_v = false, have_n = false;
	struct sb extra = { 0 };
	size_t pos;

	if (len < 2 || line[0] < '0' || line[0] > '9' || line[1] != ' ')
		return parse_fail(ul, error_r, 1, "not a dovecot-uidlist header");
	ul->version = (unsigned)(line[0] - '0');
	pos = skip_spaces(line, len, 2);

	if (ul->version == 1) {
		/* "1 <uidvalidity> <next uid>" */
		size_t t1 = token_len(line, len, pos);
		if (!parse_u32(line + pos, t1, &ul->uidvalidity))
			return parse_fail(ul, error_r, 1, "invalid uidvalidity");
		pos = skip_spaces(line, len, pos + t1);
		size_t t2 = token_len(line, len, pos);
		if (!parse_u32(line + pos, t2, &ul->next_uid))
			return parse_fail(ul, error_r, 1, "invalid next uid");
		if (skip_spaces(line, len, pos + t2) != len)
			return parse_fail(ul, error_r, 1, "trailing data in version 1 header");
		have_v = have_n = true;
	} else if (ul->version == 3) {
		while (pos < len) {
			size_t t = token_len(line, len, pos);
			const char *v = line + pos + 1;
			size_t vlen = t - 1;

			switch (line[pos]) {
			case 'V':
				if (!parse_u32(v, vlen, &ul->uidvalidity)) {
					free(extra.s);
					return parse_fail(ul, error_r, 1, "invalid V (uidvalidity)");
				}
				have_v = true;
				break;
			case 'N':
				if (!parse_u32(v, vlen, &ul->next_uid)) {
					free(extra.s);
					return parse_fail(ul, error_r, 1, "invalid N (next uid)");
				}
				have_n = true;
				break;
			case 'G':
				if (vlen != 32) {
					free(extra.s);
					return parse_fail(ul, error_r, 1, "invalid G (mailbox GUID)");
				}
				for (size_t i = 0; i < 32; i++) {
					if (!is_hex(v[i])) {
						free(extra.s);
						return parse_fail(ul, error_r, 1, "invalid G (mailbox GUID)");
					}
				}
				memcpy(ul->guid, v, 32);
				ul->guid[32] = '\0';
				break;
			default:
				/* Unknown to us (Dovecot's P, or newer): keep. */
				if (extra.len > 0)
					sb_add(&extra, " ", 1);
				sb_add(&extra, line + pos, t);
				break;
			}
			pos = skip_spaces(line, len, pos + t);
		}
		ul->extra_header = extra.s;
	} else {
		return parse_fail(ul, error_r, 1, "unsupported version %u", ul->version);
	}

	if (!have_v || ul->uidvalidity == 0)
		return parse_fail(ul, error_r, 1, "no uidvalidity");
	if (!have_n || ul->next_uid == 0)
		return parse_fail(ul, error_r, 1, "no next uid");
	return 0;
}

/* A last line without LF is a torn append: ignore it, but never hand out
 * the uid it was about to record. */
static void parse_torn_line(const char *line, size_t len, struct uidlist *ul)
{
	size_t digits = 0;
	uint32_t uid;

	while (digits < len && line[digits] >= '0' && line[digits] <= '9')
		digits++;
	if (digits < len && line[digits] == ' ' && parse_u32(line, digits, &uid) && uid != UINT32_MAX &&
	    uid >= ul->next_uid)
		ul->next_uid = uid + 1;
}

static int parse_entry(const char *line, size_t len, size_t lineno, struct uidlist *ul, char **error_r)
{
	struct uidlist_entry e = { 0 };
	struct sb ext = { 0 };
	size_t pos = 0, name_pos;
	const char *name, *colon;
	size_t name_len;

	while (pos < len && line[pos] >= '0' && line[pos] <= '9')
		pos++;
	if (pos == 0 || pos == len || line[pos] != ' ')
		return parse_fail(ul, error_r, lineno, "invalid line (no uid)");
	if (!parse_u32(line, pos, &e.uid) || e.uid == 0 || e.uid == UINT32_MAX)
		return parse_fail(ul, error_r, lineno, "invalid uid");
	if (ul->n > 0 && e.uid <= last_uid(ul))
		return parse_fail(ul, error_r, lineno, "uids not ascending (%" PRIu32 " after %" PRIu32 ")", e.uid,
				  last_uid(ul));
	pos = skip_spaces(line, len, pos);

	if (ul->version == 3) {
		/* [<key><value> ...] :<file name> */
		for (;;) {
			if (pos == len) {
				free(ext.s);
				return parse_fail(ul, error_r, lineno, "no ':' before the file name");
			}
			if (line[pos] == ':') {
				name_pos = pos + 1;
				break;
			}
			size_t t = token_len(line, len, pos);
			char key = line[pos];
			uint64_t v;

			if (key == 'S' && !e.has_size && strnum_u64(line + pos + 1, t - 1, &v)) {
				e.size = v;
				e.has_size = true;
			} else if (key == 'W' && !e.has_vsize && strnum_u64(line + pos + 1, t - 1, &v)) {
				e.vsize = v;
				e.has_vsize = true;
			} else if (key >= 'A' && key <= 'Z' && key != 'S' && key != 'W') {
				if (ext.len > 0)
					sb_add(&ext, " ", 1);
				sb_add(&ext, line + pos, t);
			}
			/* else: an invalid key or a bad or repeated S/W;
			 * Dovecot drops those too. */
			pos = skip_spaces(line, len, pos + t);
		}
	} else {
		name_pos = pos;
	}

	name = line + name_pos;
	name_len = len - name_pos;
	colon = memchr(name, ':', name_len);
	if (colon != NULL)
		name_len = (size_t)(colon - name);  /* an old entry with its info */
	if (name_len == 0 || name_len > UIDLIST_BASE_MAX || memchr(name, '/', name_len) != NULL) {
		free(ext.s);
		return parse_fail(ul, error_r, lineno, "invalid file name");
	}

	e.base = xstrndup(name, name_len);
	e.ext = ext.s;
	if (ul->n == ul->cap) {
		ul->cap = ul->cap == 0 ? 64 : ul->cap * 2;
		ul->entries = xrealloc(ul->entries, ul->cap * sizeof(*ul->entries));
	}
	ul->entries[ul->n++] = e;
	return 0;
}

/* The same base twice: Dovecot keeps the later uid (a file that was
 * expunged and moved back got a new one). Leaves the index built. */
static void parse_drop_duplicates(struct uidlist *ul)
{
	bool dups = false;
	size_t j = 0;

	index_alloc(ul, ul->n);
	for (size_t i = 0; i < ul->n; i++) {
		const char *b = ul->entries[i].base;
		size_t *slot = index_slot(ul, b, strlen(b));

		if (*slot != 0) {
			entry_free(&ul->entries[*slot - 1]);
			dups = true;
		}
		*slot = i + 1;
	}
	if (!dups)
		return;
	for (size_t i = 0; i < ul->n; i++) {
		if (ul->entries[i].base != NULL)
			ul->entries[j++] = ul->entries[i];
	}
	ul->n = j;
	index_build(ul, ul->n);
}

int uidlist_parse(const char *text, size_t len, struct uidlist *ul, char **error_r)
{
	const char *p = text, *end = text + len;
	const char *line;
	size_t llen, lineno = 1;
	bool terminated;

	memset(ul, 0, sizeof(*ul));
	if (!next_line(&p, end, &line, &llen, &terminated))
		return parse_fail(ul, error_r, 1, "empty file");
	if (llen > UIDLIST_LINE_MAX)
		return parse_fail(ul, error_r, 1, "line too long");
	if (memchr(line, '\0', llen) != NULL || memchr(line, '\r', llen) != NULL)
		return parse_fail(ul, error_r, 1, "NUL or CR in line");
	if (parse_header(line, llen, ul, error_r) < 0)
		return -1;

	while (next_line(&p, end, &line, &llen, &terminated)) {
		lineno++;
		if (!terminated) {
			parse_torn_line(line, llen, ul);
			break;
		}
		if (llen > UIDLIST_LINE_MAX)
			return parse_fail(ul, error_r, lineno, "line too long");
		if (memchr(line, '\0', llen) != NULL || memchr(line, '\r', llen) != NULL)
			return parse_fail(ul, error_r, lineno, "NUL or CR in line");
		if (parse_entry(line, llen, lineno, ul, error_r) < 0)
			return -1;
	}

	ul->next_uid = effective_next(ul);
	parse_drop_duplicates(ul);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Formatting                                                           */

static void format_header(struct sb *b, const struct uidlist *ul)
{
	sb_printf(b, "3 V%" PRIu32 " N%" PRIu32, ul->uidvalidity, effective_next(ul));
	if (ul->guid[0] != '\0')
		sb_printf(b, " G%s", ul->guid);
	if (ul->extra_header != NULL && ul->extra_header[0] != '\0')
		sb_printf(b, " %s", ul->extra_header);
	sb_add(b, "\n", 1);
}

static void format_entry(struct sb *b, const struct uidlist_entry *e)
{
	sb_printf(b, "%" PRIu32, e->uid);
	if (e->has_size)
		sb_printf(b, " S%" PRIu64, e->size);
	if (e->has_vsize)
		sb_printf(b, " W%" PRIu64, e->vsize);
	if (e->ext != NULL && e->ext[0] != '\0') {
		sb_add(b, " ", 1);
		sb_add(b, e->ext, strlen(e->ext));
	}
	sb_add(b, " :", 2);
	sb_add(b, e->base, strlen(e->base));
	sb_add(b, "\n", 1);
}

char *uidlist_format(const struct uidlist *ul, size_t *len_r)
{
	struct sb b = { 0 };

	format_header(&b, ul);
	for (size_t i = 0; i < ul->n; i++)
		format_entry(&b, &ul->entries[i]);
	*len_r = b.len;
	return b.s;
}

/* ------------------------------------------------------------------ */
/* Lists in memory                                                      */

struct uidlist_entry *uidlist_add(struct uidlist *ul, uint32_t uid, const char *base, size_t base_len)
{
	const char *colon = memchr(base, ':', base_len);
	struct uidlist_entry *e;

	if (colon != NULL)
		base_len = (size_t)(colon - base);
	if (uid == 0)
		uid = effective_next(ul);
	if (uid == UINT32_MAX || (ul->n > 0 && uid <= last_uid(ul)) || !base_ok(base, base_len))
		return NULL;
	if (uidlist_find_base(ul, base, base_len) != NULL)
		return NULL;

	if (ul->n == ul->cap) {
		ul->cap = ul->cap == 0 ? 64 : ul->cap * 2;
		ul->entries = xrealloc(ul->entries, ul->cap * sizeof(*ul->entries));
	}
	e = &ul->entries[ul->n];
	memset(e, 0, sizeof(*e));
	e->uid = uid;
	e->base = xstrndup(base, base_len);
	ul->n++;
	if ((ul->n) * 2 > ul->index_cap)
		index_build(ul, ul->n * 2);
	else
		*index_slot(ul, e->base, base_len) = ul->n;
	if (ul->next_uid <= uid)
		ul->next_uid = uid + 1;
	return e;
}

const struct uidlist_entry *uidlist_find_base(struct uidlist *ul, const char *base, size_t base_len)
{
	const char *colon = memchr(base, ':', base_len);
	size_t *slot;

	if (colon != NULL)
		base_len = (size_t)(colon - base);
	if (ul->n == 0)
		return NULL;
	if (ul->index_cap == 0)
		index_build(ul, ul->n);
	slot = index_slot(ul, base, base_len);
	return *slot != 0 ? &ul->entries[*slot - 1] : NULL;
}

static size_t find_pos(const struct uidlist *ul, uint32_t uid)
{
	size_t lo = 0, hi = ul->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (ul->entries[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

const struct uidlist_entry *uidlist_find_uid(const struct uidlist *ul, uint32_t uid)
{
	size_t pos = find_pos(ul, uid);
	return pos < ul->n && ul->entries[pos].uid == uid ? &ul->entries[pos] : NULL;
}

int uidlist_remove_uid(struct uidlist *ul, uint32_t uid)
{
	size_t pos = find_pos(ul, uid);

	if (pos == ul->n || ul->entries[pos].uid != uid)
		return -1;
	/* next_uid must stay above the uid even when it was the last one. */
	ul->next_uid = effective_next(ul);
	entry_free(&ul->entries[pos]);
	memmove(&ul->entries[pos], &ul->entries[pos + 1], (ul->n - pos - 1) * sizeof(*ul->entries));
	ul->n--;
	index_drop(ul);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Files                                                                */

static int fsync_parent_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir = slash == NULL ? xstrdup(".") : slash == path ? xstrdup("/") :
		    xstrndup(path, (size_t)(slash - path));
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int ret = -1;

	if (fd >= 0) {
		ret = fsync(fd);
		int saved = errno;
		close(fd);
		errno = saved;
	}
	free(dir);
	return ret;
}

/* Create lock_path with O_EXCL, replacing it when it is stale. Returns the
 * fd, or -1 with *error_r (errno EWOULDBLOCK when held by someone). */
static int lock_create(const char *lock_path, char **error_r)
{
	for (int attempt = 0; attempt < 3; attempt++) {
		struct stat st;
		int fd = open(lock_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);

		if (fd >= 0)
			return fd;
		if (errno != EEXIST) {
			int saved = errno;
			*error_r = xasprintf("%s: cannot create lock: %s", lock_path, strerror(saved));
			errno = saved;
			return -1;
		}
		if (lstat(lock_path, &st) < 0) {
			if (errno == ENOENT)
				continue;  /* released meanwhile */
			int saved = errno;
			*error_r = xasprintf("%s: %s", lock_path, strerror(saved));
			errno = saved;
			return -1;
		}
		if (time(NULL) - st.st_mtime < UIDLIST_LOCK_STALE_SECS) {
			*error_r = xasprintf("%s: locked by another process", lock_path);
			errno = EWOULDBLOCK;
			return -1;
		}
		/* Stale (its holder died): take it over, as Dovecot does. */
		if (unlink(lock_path) < 0 && errno != ENOENT) {
			int saved = errno;
			*error_r = xasprintf("%s: cannot remove stale lock: %s", lock_path, strerror(saved));
			errno = saved;
			return -1;
		}
	}
	*error_r = xasprintf("%s: lock keeps changing hands", lock_path);
	errno = EWOULDBLOCK;
	return -1;
}

/* Write data to fd, fdatasync it when durable, and close it (also on
 * failure). Returns NULL, or the step that failed ("write", "fdatasync",
 * "close") with errno set. */
static const char *write_sync_close(int fd, const char *data, size_t len, bool durable)
{
	const char *what;
	int saved;

	if (fileio_write_all(fd, data, len) < 0)
		what = "write";
	else if (durable && fdatasync(fd) < 0)
		what = "fdatasync";
	else
		return close(fd) < 0 ? "close" : NULL;
	saved = errno;
	close(fd);
	errno = saved;
	return what;
}

/* Write data into the lock file fd, then rename it over path. Closes fd;
 * on failure removes the lock. */
static int lockfile_commit(int fd, const char *lock_path, const char *path, const char *data, size_t len,
			   bool durable, char **error_r)
{
	const char *what;
	int saved;

	what = write_sync_close(fd, data, len, durable);
	if (what != NULL)
		goto fail;
	if (rename(lock_path, path) < 0) {
		what = "rename";
		goto fail;
	}
	if (durable && fsync_parent_dir(path) < 0) {
		saved = errno;
		*error_r = xasprintf("%s: fsync of directory: %s", path, strerror(saved));
		errno = saved;
		return -1;
	}
	return 0;
fail:
	saved = errno;
	unlink(lock_path);
	*error_r = xasprintf("%s: %s: %s", lock_path, what, strerror(saved));
	errno = saved;
	return -1;
}

int maildir__lockfile_replace(const char *path, const char *data, size_t len, bool durable, char **error_r)
{
	char *lock_path = xasprintf("%s.lock", path);
	struct stat st;
	int fd, ret;

	fd = lock_create(lock_path, error_r);
	if (fd < 0) {
		free(lock_path);
		return -1;
	}
	if (stat(path, &st) == 0)
		(void)fchmod(fd, st.st_mode & 07777);  /* keep the old file's mode */
	ret = lockfile_commit(fd, lock_path, path, data, len, durable, error_r);
	free(lock_path);
	return ret;
}

int uidlist_read(const char *path, struct uidlist *ul, bool *missing_r, char **error_r)
{
	char *buf, *err = NULL;
	size_t len;

	memset(ul, 0, sizeof(*ul));
	if (fileio_read_file(path, UIDLIST_FILE_MAX, &buf, &len, missing_r, error_r) < 0)
		return -1;
	if (*missing_r)
		return 0;
	if (uidlist_parse(buf, len, ul, &err) < 0) {
		*error_r = xasprintf("%s: %s", path, err);
		free(err);
		free(buf);
		return -1;
	}
	free(buf);
	return 0;
}

int uidlist_write(const char *path, const struct uidlist *ul, bool durable, char **error_r)
{
	size_t len;
	char *text;
	int ret;

	if (ul->uidvalidity == 0) {
		*error_r = xasprintf("%s: no uidvalidity to write", path);
		errno = EINVAL;
		return -1;
	}
	text = uidlist_format(ul, &len);
	ret = maildir__lockfile_replace(path, text, len, durable, error_r);
	free(text);
	return ret;
}

/* An earlier append torn by a crash left a last line without LF, which
 * readers ignore. Appending after it would glue our first line to it and
 * make a wrong entry, so cut it off (under the lock, like any change). */
static int cut_torn_tail(int fd, off_t size)
{
	char buf[UIDLIST_LINE_MAX + 2];
	size_t want = (size_t)size < sizeof(buf) ? (size_t)size : sizeof(buf);
	off_t start = size - (off_t)want;
	const char *nl;

	/* EIO when it shrank under the lock: not ours to fix. */
	if (fileio_pread_all(fd, buf, want, (uint64_t)start) < 0)
		return -1;
	if (buf[want - 1] == '\n')
		return 0;
	nl = memrchr(buf, '\n', want);
	if (nl == NULL) {
		/* No header line, or a torn line longer than any we write. */
		errno = EBADMSG;
		return -1;
	}
	return ftruncate(fd, start + (off_t)(nl - buf) + 1);
}

int uidlist_append(const char *path, const struct uidlist_entry *entries, size_t n, const struct uidlist *hdr,
		   bool durable, char **error_r)
{
	struct sb lines = { 0 };
	struct sb head = { 0 };
	char *lock_path = NULL;
	const char *what;
	int lock_fd = -1, fd = -1, saved;
	struct stat st;

	for (size_t i = 0; i < n; i++) {
		const struct uidlist_entry *e = &entries[i];
		if (e->uid == 0 || e->uid == UINT32_MAX || (i > 0 && e->uid <= entries[i - 1].uid) ||
		    e->base == NULL || !base_ok(e->base, strlen(e->base)) ||
		    (e->ext != NULL && strpbrk(e->ext, ":\r\n") != NULL)) {
			*error_r = xasprintf("%s: invalid entry %zu to append", path, i);
			errno = EINVAL;
			return -1;
		}
	}
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		format_entry(&lines, &entries[i]);

	lock_path = xasprintf("%s.lock", path);
	lock_fd = lock_create(lock_path, error_r);
	if (lock_fd < 0)
		goto fail_quiet;

	fd = open(path, O_RDWR | O_APPEND | O_CLOEXEC);  /* RDWR: cut_torn_tail() reads */
	if (fd < 0 && errno != ENOENT) {
		what = "open";
		goto fail;
	}
	if (fd >= 0 && fstat(fd, &st) < 0) {
		what = "fstat";
		goto fail;
	}
	if (fd < 0 || st.st_size == 0) {
		if (hdr == NULL || hdr->uidvalidity == 0) {
			*error_r = xasprintf("%s: no file and no header to create it with", path);
			errno = EINVAL;
			goto fail_quiet;
		}
		format_header(&head, hdr);
	} else if (cut_torn_tail(fd, st.st_size) < 0) {
		what = "removing a torn last line";
		goto fail;
	}
	sb_add(&head, lines.s, lines.len);

	if (fd < 0) {
		/* New file: the lock file becomes it, so nobody ever sees
		 * it without its header. */
		int ret = lockfile_commit(lock_fd, lock_path, path, head.s, head.len, durable, error_r);
		lock_fd = -1;
		free(lock_path);
		free(lines.s);
		free(head.s);
		return ret;
	}
	what = write_sync_close(fd, head.s, head.len, durable);
	fd = -1;
	if (what != NULL)
		goto fail;
	close(lock_fd);
	unlink(lock_path);
	free(lock_path);
	free(lines.s);
	free(head.s);
	return 0;

fail:
	saved = errno;
	*error_r = xasprintf("%s: %s: %s", path, what, strerror(saved));
	errno = saved;
fail_quiet:
	saved = errno;
	if (fd >= 0)
		close(fd);
	if (lock_fd >= 0) {
		close(lock_fd);
		unlink(lock_path);
	}
	free(lock_path);
	free(lines.s);
	free(head.s);
	errno = saved;
	return -1;
}
