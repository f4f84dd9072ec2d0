/*
 * Queue records (see queue_record.h). Layout, all integers little-endian:
 *   u8 version (1), u8 flags (smtputf8, eightbit, warned), u8 ret,
 *   i64 arrival, i64 next_attempt, i64 last_attempt, u32 attempts,
 *   u64 size, u64 body_offset, str sender, str envid, str auth_user,
 *   u32 n_rcpts, then per recipient: u8 state, u32 notify, str address,
 *   str orcpt, str last_reply, str remote_mta.
 * A str is u32 length + bytes; length 0xffffffff stands for NULL.
 */
#include "mta/queue_record.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/xalloc.h"

#define QUEUE_RECORD_VERSION 1
#define QUEUE_STR_NULL 0xffffffffu
#define QUEUE_STR_MAX (64 * 1024)

void queue_entry_free(struct queue_entry *e)
{
	free(e->sender);
	free(e->envid);
	free(e->auth_user);
	for (size_t i = 0; i < e->n_rcpts; i++) {
		free(e->rcpts[i].address);
		free(e->rcpts[i].orcpt);
		free(e->rcpts[i].last_reply);
		free(e->rcpts[i].remote_mta);
	}
	free(e->rcpts);
	memset(e, 0, sizeof(*e));
}

size_t queue_entry_open_rcpts(const struct queue_entry *e)
{
	size_t n = 0;
	for (size_t i = 0; i < e->n_rcpts; i++)
		n += e->rcpts[i].state == QUEUE_RCPT_PENDING || e->rcpts[i].state == QUEUE_RCPT_DEFERRED;
	return n;
}

const char *queue_rcpt_state_name(enum queue_rcpt_state st)
{
	switch (st) {
	case QUEUE_RCPT_PENDING: return "pending";
	case QUEUE_RCPT_DEFERRED: return "deferred";
	case QUEUE_RCPT_DELIVERED: return "delivered";
	case QUEUE_RCPT_FAILED: return "failed";
	}
	return "?";
}

static void put_u64(struct buf *b, uint64_t v)
{
	uint8_t x[8];
	for (int i = 0; i < 8; i++)
		x[i] = (uint8_t)(v >> (8 * i));
	buf_append(b, x, 8);
}

static void put_u32(struct buf *b, uint32_t v)
{
	uint8_t x[4];
	for (int i = 0; i < 4; i++)
		x[i] = (uint8_t)(v >> (8 * i));
	buf_append(b, x, 4);
}

static void put_u8(struct buf *b, uint8_t v)
{
	buf_append(b, &v, 1);
}

static void put_str(struct buf *b, const char *s)
{
	if (s == NULL) {
		put_u32(b, QUEUE_STR_NULL);
		return;
	}
	size_t n = strlen(s);
	if (n > QUEUE_STR_MAX)
		n = QUEUE_STR_MAX;
	put_u32(b, (uint32_t)n);
	buf_append(b, s, n);
}

void queue_record_encode(const struct queue_entry *e, struct buf *out)
{
	put_u8(out, QUEUE_RECORD_VERSION);
	put_u8(out, (uint8_t)((e->smtputf8 ? 1 : 0) | (e->eightbit ? 2 : 0) | (e->warned ? 4 : 0)));
	put_u8(out, (uint8_t)e->ret);
	put_u64(out, (uint64_t)e->arrival);
	put_u64(out, (uint64_t)e->next_attempt);
	put_u64(out, (uint64_t)e->last_attempt);
	put_u32(out, e->attempts);
	put_u64(out, e->size);
	put_u64(out, e->body_offset);
	put_str(out, e->sender);
	put_str(out, e->envid);
	put_str(out, e->auth_user);
	put_u32(out, (uint32_t)e->n_rcpts);
	for (size_t i = 0; i < e->n_rcpts; i++) {
		const struct queue_rcpt *r = &e->rcpts[i];
		put_u8(out, (uint8_t)r->state);
		put_u32(out, r->notify);
		put_str(out, r->address);
		put_str(out, r->orcpt);
		put_str(out, r->last_reply);
		put_str(out, r->remote_mta);
	}
}

struct reader {
	const uint8_t *p, *end;
	bool bad;
};

static uint64_t get_n(struct reader *r, int n)
{
	uint64_t v = 0;
	if (r->bad || r->end - r->p < n) {
		r->bad = true;
		return 0;
	}
	for (int i = 0; i < n; i++)
		v |= (uint64_t)r->p[i] << (8 * i);
	r->p += n;
	return v;
}

static char *get_str(struct reader *r)
{
	uint32_t n = (uint32_t)get_n(r, 4);
	if (r->bad || n == QUEUE_STR_NULL)
		return NULL;
	if (n > QUEUE_STR_MAX || (size_t)(r->end - r->p) < n || memchr(r->p, '\0', n) != NULL) {
		r->bad = true;
		return NULL;
	}
	char *s = xstrndup((const char *)r->p, n);
	r->p += n;
	return s;
}

int queue_record_decode(const void *data, size_t len, struct queue_entry *e)
{
	struct reader r = { data, (const uint8_t *)data + len, false };

	memset(e, 0, sizeof(*e));
	if (get_n(&r, 1) != QUEUE_RECORD_VERSION)
		return -1;
	unsigned flags = (unsigned)get_n(&r, 1);
	e->smtputf8 = flags & 1;
	e->eightbit = (flags & 2) != 0;
	e->warned = (flags & 4) != 0;
	e->ret = (int)get_n(&r, 1);
	e->arrival = (int64_t)get_n(&r, 8);
	e->next_attempt = (int64_t)get_n(&r, 8);
	e->last_attempt = (int64_t)get_n(&r, 8);
	e->attempts = (uint32_t)get_n(&r, 4);
	e->size = get_n(&r, 8);
	e->body_offset = get_n(&r, 8);
	e->sender = get_str(&r);
	e->envid = get_str(&r);
	e->auth_user = get_str(&r);
	uint32_t n = (uint32_t)get_n(&r, 4);
	if (r.bad || e->sender == NULL || n == 0 || n > QUEUE_RCPTS_MAX) {
		queue_entry_free(e);
		return -1;
	}
	e->rcpts = xcalloc(n, sizeof(*e->rcpts));
	for (uint32_t i = 0; i < n && !r.bad; i++) {
		struct queue_rcpt *q = &e->rcpts[i];
		e->n_rcpts++;
		q->state = (enum queue_rcpt_state)get_n(&r, 1);
		q->notify = (unsigned)get_n(&r, 4);
		q->address = get_str(&r);
		q->orcpt = get_str(&r);
		q->last_reply = get_str(&r);
		q->remote_mta = get_str(&r);
		if (q->address == NULL || q->state > QUEUE_RCPT_FAILED)
			r.bad = true;
	}
	if (r.bad || r.p != r.end) {
		queue_entry_free(e);
		return -1;
	}
	return 0;
}

int queue_db_put(MDB_txn *txn, struct db *db, const struct queue_entry *e, char **error_r)
{
	struct buf b;
	buf_init(&b, 64 << 20);
	queue_record_encode(e, &b);
	MDB_val k = { strlen(e->id), (void *)e->id }, v = { buf_len(&b), (void *)buf_ptr(&b) };
	int rc = mdb_put(txn, db->queue, &k, &v, 0);
	buf_free(&b);
	if (rc != 0) {
		*error_r = xasprintf("queue %s: %s", e->id, mdb_strerror(rc));
		return -1;
	}
	return 0;
}

int queue_db_get(MDB_txn *txn, struct db *db, const char *id, struct queue_entry *e, char **error_r)
{
	MDB_val k = { strlen(id), (void *)id }, v;
	int rc = mdb_get(txn, db->queue, &k, &v);

	if (rc == MDB_NOTFOUND)
		return 1;
	if (rc != 0) {
		*error_r = xasprintf("queue %s: %s", id, mdb_strerror(rc));
		return -1;
	}
	if (queue_record_decode(v.mv_data, v.mv_size, e) < 0) {
		*error_r = xasprintf("queue %s: damaged record", id);
		return -1;
	}
	snprintf(e->id, sizeof(e->id), "%s", id);
	return 0;
}

int queue_db_del(MDB_txn *txn, struct db *db, const char *id, char **error_r)
{
	MDB_val k = { strlen(id), (void *)id };
	int rc = mdb_del(txn, db->queue, &k, NULL);

	if (rc != 0 && rc != MDB_NOTFOUND) {
		*error_r = xasprintf("queue %s: %s", id, mdb_strerror(rc));
		return -1;
	}
	return 0;
}

int queue_db_each(MDB_txn *txn, struct db *db, int (*cb)(const struct queue_entry *e, void *ctx), void *ctx,
		  char **error_r)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int rc = mdb_cursor_open(txn, db->queue, &cur);

	if (rc != 0) {
		*error_r = xasprintf("queue: %s", mdb_strerror(rc));
		return -1;
	}
	int stop = 0;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && stop == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct queue_entry e;
		if (k.mv_size > QUEUE_ID_MAX || queue_record_decode(v.mv_data, v.mv_size, &e) < 0) {
			log_error("queue: damaged record %.*s skipped", (int)(k.mv_size > 64 ? 64 : k.mv_size),
				  (const char *)k.mv_data);
			continue;
		}
		memcpy(e.id, k.mv_data, k.mv_size);
		e.id[k.mv_size] = '\0';
		stop = cb(&e, ctx);
		queue_entry_free(&e);
	}
	mdb_cursor_close(cur);
	if (rc != 0 && rc != MDB_NOTFOUND && stop == 0) {
		*error_r = xasprintf("queue: %s", mdb_strerror(rc));
		return -1;
	}
	return 0;
}
