/*
 * The part tree and its arena. Everything a tree points at is carved from a
 * list of chunks owned by the tree, so freeing is one walk over the chunks
 * and the parser never has to track ownership of the strings it keeps.
 */

#include "mime/mime_tree.h"

#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"

#define ARENA_CHUNK 4096
#define ARENA_ALIGN 16

struct mime_arena_chunk {
	struct mime_arena_chunk *next;
	size_t used;
	size_t size;
	/* data follows, aligned */
};

static size_t chunk_header(void)
{
	return (sizeof(struct mime_arena_chunk) + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
}

struct mime_tree *mime_tree_new(void)
{
	struct mime_tree *t = xcalloc(1, sizeof(*t));
	t->root = mime_tree_alloc(t, sizeof(*t->root));
	t->nparts = 1;
	return t;
}

void mime_tree_free(struct mime_tree **tree)
{
	struct mime_tree *t = *tree;

	if (t == NULL)
		return;
	*tree = NULL;
	while (t->chunks != NULL) {
		struct mime_arena_chunk *c = t->chunks;
		t->chunks = c->next;
		free(c);
	}
	free(t);
}

void *mime_tree_alloc(struct mime_tree *t, size_t size)
{
	struct mime_arena_chunk *c = t->chunks;

	size = (size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
	if (size == 0)
		size = ARENA_ALIGN;
	if (c == NULL || c->size - c->used < size) {
		size_t want = size > ARENA_CHUNK / 2 ? size : ARENA_CHUNK;
		c = xmalloc(chunk_header() + want);
		c->used = 0;
		c->size = want;
		/* A big one-off allocation goes behind the current chunk
		 * so the space left in that one is not wasted. */
		if (size > ARENA_CHUNK / 2 && t->chunks != NULL) {
			c->next = t->chunks->next;
			t->chunks->next = c;
		} else {
			c->next = t->chunks;
			t->chunks = c;
		}
	}
	void *p = (char *)c + chunk_header() + c->used;
	c->used += size;
	memset(p, 0, size);
	return p;
}

struct mime_part *mime_tree_add_child(struct mime_tree *t, struct mime_part *parent)
{
	struct mime_part *p = mime_tree_alloc(t, sizeof(*p));
	struct mime_part **tail = &parent->children;

	while (*tail != NULL)
		tail = &(*tail)->next;
	*tail = p;
	p->parent = parent;
	parent->nchildren++;
	t->nparts++;
	return p;
}

const char *mime_tree_strdup(struct mime_tree *t, const void *data, size_t len)
{
	static const char repl[] = "\xef\xbf\xbd"; /* U+FFFD */
	const unsigned char *s = data;
	size_t nuls = 0, out;

	for (size_t i = 0; i < len; i++)
		nuls += s[i] == '\0';
	out = len + nuls * 2;
	if (out + 1 > MIME_MAX_KEPT_BYTES - t->kept) {
		t->flags |= MIME_TREE_TRUNCATED;
		return NULL;
	}
	t->kept += out + 1;
	char *d = mime_tree_alloc(t, out + 1);
	if (nuls == 0) {
		if (len > 0)
			memcpy(d, s, len);
	} else {
		char *w = d;
		for (size_t i = 0; i < len; i++) {
			if (s[i] == '\0') {
				memcpy(w, repl, 3);
				w += 3;
			} else {
				*w++ = (char)s[i];
			}
		}
	}
	d[out] = '\0';
	return d;
}

const struct mime_part *mime_tree_find(const struct mime_tree *t, const char *spec, size_t len)
{
	const struct mime_part *part = t->root;
	size_t i = 0;

	/* RFC 3501 6.4.5; the walk is Dovecot's so that odd numbers ("1" of
	 * a single-part message, "2.1" inside message/rfc822) name the same
	 * bytes as there. */
	while (i < len && part != NULL) {
		uint32_t num = 0;
		size_t start = i;

		while (i < len && spec[i] >= '0' && spec[i] <= '9') {
			if (num > 100000000)
				return NULL;
			num = num * 10 + (uint32_t)(spec[i] - '0');
			i++;
		}
		if (i == start)
			return NULL;
		bool more = false;
		if (i < len) {
			if (spec[i] != '.' || i + 1 == len)
				return NULL;
			i++;
			more = true;
		}
		if (part->flags & MIME_PART_MULTIPART) {
			part = part->children;
			for (; num > 1 && part != NULL; num--)
				part = part->next;
			if (num == 0)
				part = NULL;
		} else if (num != 1) {
			part = NULL;
		} else if (more && !(part->flags & MIME_PART_RFC822)) {
			part = NULL;
		}
		/* Going on inside a message/rfc822 part means going on in
		 * the message it holds. */
		if (part != NULL && more && (part->flags & MIME_PART_RFC822))
			part = part->children;
	}
	return part;
}
