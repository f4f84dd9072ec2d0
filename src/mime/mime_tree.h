#ifndef POSTBOTE_MIME_TREE_H
#define POSTBOTE_MIME_TREE_H

/*
 * The computed structure of one message: a tree of parts with the byte
 * offsets and sizes that IMAP needs to serve sections from the file, and the
 * header values that ENVELOPE and BODYSTRUCTURE are built from.
 *
 * The tree is produced by the streaming parser (mime_parse.h) or read back
 * from its compact serialized form (mime_serial.h). It owns all its memory in
 * one arena: every pointer in it stays valid until mime_tree_free().
 *
 * Sizes follow what IMAP reports (RFC 3501 2.3.4, as Dovecot counts them):
 * "physical" is bytes in the file, "virtual" is bytes after every bare LF
 * has become CRLF (that is what RFC822.SIZE and section literals carry),
 * "lines" counts LFs.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bounds. A message deeper or wider than this still parses; the part that
 * crosses the line becomes a leaf flagged MIME_PART_OVERFLOW (Dovecot has the
 * same two limits with the same values). */
#define MIME_MAX_DEPTH 100          /* nested multipart / message levels */
#define MIME_MAX_PARTS 10000        /* parts in one tree, the root included */
/* RFC 2046 5.1.1 allows 70 characters; longer ones are cut to this. */
#define MIME_BOUNDARY_MAX 80
/* The most bytes of one header field's value the parser keeps. Longer values
 * are truncated (the part gets MIME_PART_TRUNCATED); offsets stay exact. */
#define MIME_HEADER_VALUE_MAX (16 * 1024)
/* The most bytes of kept strings in one tree; past it values are dropped and
 * the tree is flagged MIME_TREE_TRUNCATED. */
#define MIME_MAX_KEPT_BYTES (1024 * 1024)
/* Addresses kept per address header (From, To, ...). */
#define MIME_MAX_ADDRESSES 1000

enum mime_part_flags {
	MIME_PART_MULTIPART = 1u << 0,  /* has a boundary-delimited body */
	MIME_PART_RFC822 = 1u << 1,     /* message/rfc822: one child message */
	MIME_PART_TEXT = 1u << 2,       /* text/... or defaulted to text/plain */
	MIME_PART_IS_MIME = 1u << 3,    /* Content-* headers are to be believed */
	MIME_PART_DIGEST = 1u << 4,     /* multipart/digest: children default to message/rfc822 */
	MIME_PART_OVERFLOW = 1u << 5,   /* a depth or part limit made this a leaf */
	MIME_PART_TRUNCATED = 1u << 6,  /* a kept header value was cut short */
};

enum mime_tree_flags {
	MIME_TREE_TRUNCATED = 1u << 0,  /* MIME_MAX_KEPT_BYTES was reached */
	MIME_TREE_OVERFLOW = 1u << 1,   /* some part has MIME_PART_OVERFLOW */
};

struct mime_size {
	uint64_t physical;
	uint64_t virtual_size;
	uint32_t lines;
};

/* A Content-Type or Content-Disposition parameter as RFC 2231 leaves it
 * after merging continuations: an extended value keeps its name with the
 * trailing '*' and its raw charset'lang'%XX text (this is what IMAP
 * BODYSTRUCTURE shows; mime_params_decode() turns it into UTF-8). */
struct mime_param {
	const char *name;
	const char *value;
};

/* One ENVELOPE address (RFC 3501 7.4.2). NULL means NIL. A group start has
 * only mailbox (the group name); a group end has all four NULL. */
struct mime_address {
	const char *name;
	const char *route;
	const char *mailbox;
	const char *domain;
};

enum mime_addr_field {
	MIME_ADDR_FROM,
	MIME_ADDR_SENDER,
	MIME_ADDR_REPLY_TO,
	MIME_ADDR_TO,
	MIME_ADDR_CC,
	MIME_ADDR_BCC,
	MIME_ADDR_COUNT
};

/* The envelope headers of a message (the root, or the message inside a
 * message/rfc822 part), raw: folded lines are joined with LF, NULs became
 * U+FFFD, nothing is decoded (IMAP sends them as they are). NULL when the
 * header is absent. When a header occurs twice, the last Date, Subject,
 * In-Reply-To or Message-ID counts and address fields list the addresses
 * of all occurrences (Dovecot's behaviour, which clients compare with). */
struct mime_envelope {
	const char *date;
	const char *subject;
	const char *in_reply_to;
	const char *message_id;
	struct mime_address *addr[MIME_ADDR_COUNT];
	uint32_t naddr[MIME_ADDR_COUNT];   /* 0 = the field is NIL */
};

struct mime_part {
	struct mime_part *parent;
	struct mime_part *children;      /* first child */
	struct mime_part *next;          /* next sibling */
	uint32_t nchildren;
	uint32_t flags;                  /* enum mime_part_flags */

	uint64_t offset;                 /* first byte of the header in the message */
	struct mime_size header;         /* header including its blank line */
	struct mime_size body;           /* everything after the header */

	/* From the part's Content-* headers (first occurrence of each); all
	 * NULL for a part that is not MIME (no Content-Type, no MIME-Version,
	 * not inside a multipart). type and subtype are both set or both
	 * NULL; a broken Content-Type leaves them "" and "". */
	const char *type;
	const char *subtype;
	struct mime_param *params;
	uint32_t nparams;
	const char *encoding;            /* Content-Transfer-Encoding token */
	const char *id;
	const char *description;
	const char *md5;
	const char *location;
	const char *disposition;
	struct mime_param *disp_params;
	uint32_t ndisp_params;
	const char **languages;
	uint32_t nlanguages;

	/* Set on the root and on the child of every message/rfc822 part. */
	struct mime_envelope *envelope;
};

struct mime_arena_chunk;

struct mime_tree {
	struct mime_part *root;
	uint32_t nparts;
	uint32_t flags;                  /* enum mime_tree_flags */
	size_t kept;                     /* bytes of kept strings so far */
	struct mime_arena_chunk *chunks;
};

/* Body start and total extent of a part, as byte offsets in the message. */
static inline uint64_t mime_part_body_offset(const struct mime_part *p)
{
	return p->offset + p->header.physical;
}

static inline uint64_t mime_part_end_offset(const struct mime_part *p)
{
	return p->offset + p->header.physical + p->body.physical;
}

/* RFC822.SIZE of the message the tree describes. */
static inline uint64_t mime_tree_size(const struct mime_tree *t)
{
	return t->root->header.virtual_size + t->root->body.virtual_size;
}

/* An empty tree with a zeroed root part. Never NULL. */
struct mime_tree *mime_tree_new(void);
/* Free the tree and everything in it; sets *tree to NULL. NULL is fine. */
void mime_tree_free(struct mime_tree **tree);

/* Memory from the tree's arena, zeroed, aligned for any member of the
 * structs above. Lives as long as the tree. Aborts on allocation failure:
 * the parser bounds how much it asks for (see the limits above). */
void *mime_tree_alloc(struct mime_tree *t, size_t size);
/* Append a zeroed child to parent (or make the root's first child). */
struct mime_part *mime_tree_add_child(struct mime_tree *t, struct mime_part *parent);

/* Copy len bytes into the arena as a NUL-terminated string, turning NUL
 * bytes into U+FFFD (as Dovecot does for header values), counted against
 * MIME_MAX_KEPT_BYTES. Returns NULL (and flags the tree truncated) when the
 * budget is spent. */
const char *mime_tree_strdup(struct mime_tree *t, const void *data, size_t len);

/* The part named by an IMAP section number such as "1.2.3" (RFC 3501
 * 6.4.5: a non-multipart part's only child is 1; the numbers of a
 * message/rfc822 part continue in the message it encapsulates), or NULL when
 * there is no such part. "" names the root. len bytes of spec are read. */
const struct mime_part *mime_tree_find(const struct mime_tree *t, const char *spec, size_t len);

#endif
