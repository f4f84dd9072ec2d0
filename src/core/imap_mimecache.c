/*
 * message_tree for the server's IMAP backend: a message's MIME structure
 * from the index's cache ("mimecache", maildir/index.h), or parsed from its
 * file and then cached.
 *
 * Parsing happens on the loop, in 64 KiB preads, like any other read of a
 * message file; the writing goes through the store's writer, batched: the
 * first miss submits at once, and the misses that come while that batch
 * is in the writer's hands pile up and go together when it is done, so a
 * FETCH of 100,000 uncached messages makes a few hundred transactions, not
 * 100,000 (group commit, as for deliveries). The writer skips entries
 * whose message was expunged meanwhile; an expunge deletes the entry in
 * its own transaction (idx_message_del), so the cache never outlives a
 * message.
 *
 * A cached form that does not read back (an older MIME_SERIAL_VERSION, a
 * damaged record) counts as a miss and is replaced.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/imap_glue_private.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "maildir/index.h"
#include "mime/mime_parse.h"
#include "mime/mime_serial.h"

#define CACHE_CHUNK (64 * 1024)
/* Largest serialized tree kept (the parser bounds a tree well below). */
#define CACHE_RECORD_MAX (16u * 1024 * 1024)
/* Entries waiting for the writer past this are dropped, not queued: a
 * writer that far behind is busy with deliveries, which matter more, and
 * the next FETCH caches them. */
#define CACHE_PENDING_MAX 20000

struct imap_glue_cache {
	struct imap_glue *be;
	char *chunk;
	struct store_cache_entry *pending;
	size_t n_pending, cap_pending;
	struct store_cache_put *inflight;
};

static void cache_entries_free(struct store_cache_entry *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].data);
	free(v);
}

static void cache_put_free(struct store_cache_put *r)
{
	if (r == NULL)
		return;
	cache_entries_free(r->entries, r->n);
	free(r);
}

static void cache_submit(struct imap_glue_cache *c);

static void cache_written(struct store_cache_put *r)
{
	struct imap_glue_cache *c = r->ctx;

	c->inflight = NULL;
	cache_put_free(r);
	if (c->n_pending > 0)
		cache_submit(c);
}

static void cache_submit(struct imap_glue_cache *c)
{
	struct store_cache_put *r = xcalloc(1, sizeof(*r));

	r->entries = c->pending;
	r->n = c->n_pending;
	r->cb = cache_written;
	r->ctx = c;
	c->pending = NULL;
	c->n_pending = c->cap_pending = 0;
	c->inflight = r;
	store_cache_put(c->be->svc.store, r);
}

static void cache_queue(struct imap_glue_cache *c, uint64_t mailbox_id, uint32_t uid, const void *data, size_t len)
{
	if (c->n_pending >= CACHE_PENDING_MAX)
		return;
	if (c->n_pending == c->cap_pending) {
		c->cap_pending = c->cap_pending ? c->cap_pending * 2 : 64;
		c->pending = xrealloc(c->pending, c->cap_pending * sizeof(*c->pending));
	}
	void *copy = xmalloc(len ? len : 1);
	memcpy(copy, data, len);
	c->pending[c->n_pending++] = (struct store_cache_entry){
		.mailbox_id = mailbox_id, .uid = uid, .data = copy, .len = len,
	};
	if (c->inflight == NULL)
		cache_submit(c);
}

/* The cached tree, NULL on a miss. -1 in *rc_r on an index error. */
static struct mime_tree *cache_lookup(struct imap_mailbox *mb, uint32_t uid, int *rc_r)
{
	struct db *db = mb->be->svc.db;
	struct mime_tree *t = NULL;
	char *error = NULL;
	MDB_txn *txn;
	MDB_val val;
	int rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn);

	*rc_r = 0;
	if (rc != 0) {
		log_error("imap: %s: reading the index: %s", mb->account, db_strerror(rc));
		*rc_r = -1;
		return NULL;
	}
	rc = idx_mimecache_get(txn, db, mb->mailbox_id, uid, &val, &error);
	if (rc < 0) {
		log_error("imap: %s: %s", mb->account, error);
		free(error);
		*rc_r = -1;
	} else if (rc == 0) {
		const char *why = NULL;
		t = mime_tree_deserialize(val.mv_data, val.mv_size, &why);
		if (t == NULL)
			log_info("imap: %s: cached structure of uid %u not usable (%s); parsing again", mb->account,
				 uid, why);
	}
	mdb_txn_abort(txn);
	return t;
}

/* A tree parsed moments ago and not yet written: Thunderbird asks for
 * BODY[n.MIME] right after BODYSTRUCTURE, before the writer got to it.
 * Only the newest few entries are looked at; older ones are in the index
 * by the time a client comes back for them, or were worth a reparse. */
#define CACHE_RECENT_LOOKUP 64

static struct mime_tree *cache_recent(const struct store_cache_entry *v, size_t n, uint64_t mailbox_id,
				      uint32_t uid)
{
	for (size_t i = n, k = 0; i-- > 0 && k < CACHE_RECENT_LOOKUP; k++) {
		if (v[i].mailbox_id == mailbox_id && v[i].uid == uid) {
			const char *why;
			return mime_tree_deserialize(v[i].data, v[i].len, &why);
		}
	}
	return NULL;
}

/* Parse the file of uid: the tree, or NULL with *status_r. */
static struct mime_tree *cache_parse(struct imap_glue_cache *c, struct imap_mailbox *mb, uint32_t uid,
				     enum imap_status *status_r)
{
	int fd = imap_glue__message_fd(mb, uid, status_r);
	if (fd < 0)
		return NULL;
	struct mime_parser *p = mime_parser_new(NULL);
	uint64_t off = 0;
	for (;;) {
		ssize_t n = pread(fd, c->chunk, CACHE_CHUNK, (off_t)off);
		if (n == 0)
			break;
		if (n < 0) {
			log_error("imap: %s: reading uid %u: %s", mb->account, uid, strerror(errno));
			mime_parser_free(&p);
			close(fd);
			*status_r = IMAP_TEMPFAIL;
			return NULL;
		}
		mime_parser_feed(p, c->chunk, (size_t)n);
		off += (uint64_t)n;
	}
	close(fd);
	return mime_parser_finish(&p);
}

struct mime_tree *imap_glue__message_tree(void *ctx, struct imap_mailbox *mb, uint32_t uid, enum imap_status *status_r)
{
	struct imap_glue *be = ctx;
	struct imap_glue_cache *c = be->cache;
	int rc;
	struct mime_tree *t = cache_lookup(mb, uid, &rc);

	if (t != NULL)
		return t;
	if (rc < 0) {
		*status_r = IMAP_TEMPFAIL;
		return NULL;
	}
	t = cache_recent(c->pending, c->n_pending, mb->mailbox_id, uid);
	if (t == NULL && c->inflight != NULL)
		t = cache_recent(c->inflight->entries, c->inflight->n, mb->mailbox_id, uid);
	if (t != NULL)
		return t;
	t = cache_parse(c, mb, uid, status_r);
	if (t == NULL)
		return NULL;
	struct buf out;
	buf_init(&out, CACHE_RECORD_MAX);
	if (mime_tree_serialize(t, &out) == 0)
		cache_queue(c, mb->mailbox_id, uid, buf_ptr(&out), buf_len(&out));
	buf_free(&out);
	*status_r = IMAP_OK;
	return t;
}

void imap_glue__cache_init(struct imap_glue *be)
{
	struct imap_glue_cache *c = xcalloc(1, sizeof(*c));
	c->be = be;
	c->chunk = xmalloc(CACHE_CHUNK);
	be->cache = c;
}

void imap_glue__cache_free(struct imap_glue *be)
{
	struct imap_glue_cache *c = be->cache;

	if (c == NULL)
		return;
	be->cache = NULL;
	/* After store_close: a batch submitted by the last callback never
	 * ran (the writer had stopped); its entries are dropped with it. */
	cache_put_free(c->inflight);
	cache_entries_free(c->pending, c->n_pending);
	free(c->chunk);
	free(c);
}
