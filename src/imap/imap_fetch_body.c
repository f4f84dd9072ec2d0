/*
 * BODY[section]<partial> literals for FETCH (RFC 3501 6.4.5): the bytes
 * of the section are read from the message file in bounded chunks, bare
 * LFs become CRLF and NULs 0x80 (mime_crlf), and only the partial window
 * is sent. HEADER.FIELDS is filtered into memory first because a literal
 * needs its length before its bytes. A file shorter than its index record
 * is padded: the announced length is a promise the dialogue depends on.
 */
#include "imap/imap_fetch_private.h"

#include <string.h>

#include "mime/mime_hdrfilter.h"
#include "mime/mime_section.h"

static void mem_no_nul(struct buf *b)
{
	char *p = b->data ? b->data + b->off : NULL;

	for (size_t i = 0; p != NULL && i < b->len; i++) {
		if (p[i] == '\0')
			p[i] = (char)0x80;
	}
}

void imap__fetch_section_start(struct imap *im, const struct fetch_item *it)
{
	struct imap_fetch *f = im->fetch;
	struct fetch_stream *st = &f->st;
	struct mime_section sec;
	const char *error;
	uint64_t size = 0;

	memset(st, 0, sizeof(*st));
	mime_crlf_init(&st->crlf);
	buf_reset(&f->mem);
	if (mime_section_resolve(f->tree, it->spec, it->spec_len, &sec, &error) < 0)
		sec.kind = MIME_SECTION_EMPTY;
	if (sec.kind == MIME_SECTION_BYTES) {
		size = sec.size;
		st->file_off = sec.offset;
		st->file_end = sec.offset + sec.length;
	} else if (sec.kind == MIME_SECTION_HEADER_FIELDS) {
		/* A literal needs its length first: filter into memory. */
		struct mime_hdrfilter hf;
		uint64_t off = sec.offset, end = sec.offset + sec.length;
		bool ok = true;
		mime_hdrfilter_init(&hf, sec.fields, sec.nfields, sec.text == MIME_SECTION_TEXT_FIELDS_NOT);
		while (ok && off < end) {
			size_t want = end - off < FETCH_READ_CHUNK ? (size_t)(end - off) : FETCH_READ_CHUNK;
			ssize_t got = im->be->message_pread(f->reader, f->raw, want, off);
			if (got <= 0)
				break;
			ok = mime_hdrfilter_feed(&hf, f->raw, (size_t)got, &f->mem) == 0;
			off += (uint64_t)got;
		}
		if (ok)
			ok = mime_hdrfilter_finish(&hf, &f->mem) == 0;
		if (!ok)
			buf_reset(&f->mem);
		mem_no_nul(&f->mem);
		st->from_mem = true;
		size = buf_len(&f->mem);
	}
	mime_section_free(&sec);

	st->win_start = 0;
	st->win_end = size;
	if (it->partial) {
		st->win_start = it->origin < size ? it->origin : size;
		uint64_t left = size - st->win_start;
		if (it->plen < left)
			left = it->plen;
		st->win_end = st->win_start + left;
	}
	/* Without bare LFs the converted bytes are the raw ones one to one,
	 * so a partial can start reading at its origin. */
	if (!st->from_mem && size == st->file_end - st->file_off && st->win_start > 0) {
		st->file_off += st->win_start;
		st->vpos = st->win_start;
		/* Every LF of such a section follows a CR: one at the origin
		 * must not become CRLF. */
		st->crlf.last = '\r';
	}
	st->lit_len = st->win_end - st->win_start;
	st->active = true;
	buf_printf(&f->scratch, "%s {%llu}\r\n", it->label, (unsigned long long)st->lit_len);
}

bool imap__fetch_section_pump(struct imap *im)
{
	struct imap_fetch *f = im->fetch;
	struct fetch_stream *st = &f->st;
	struct buf *out = session_output(im->s);

	while (st->sent < st->lit_len) {
		size_t room = buf_room(out);
		if (f->since_drain >= f->budget || room < 2 * f->chunk + 64)
			return false;
		const char *p;
		size_t len;
		uint64_t chunk_pos;
		if (st->from_mem) {
			p = buf_ptr(&f->mem) + st->win_start + st->sent;
			len = (size_t)(st->lit_len - st->sent);
			if (len > 2 * f->chunk)
				len = 2 * f->chunk;
			chunk_pos = st->win_start + st->sent;
		} else {
			ssize_t got = -1;
			if (st->file_off < st->file_end) {
				size_t want = st->file_end - st->file_off < f->chunk
						      ? (size_t)(st->file_end - st->file_off)
						      : f->chunk;
				got = im->be->message_pread(f->reader, f->raw, want, st->file_off);
			}
			buf_reset(&f->conv);
			if (got <= 0) {
				/* The file is shorter than its index record
				 * says: pad, the announced length is a
				 * promise. */
				size_t pad = (size_t)(st->lit_len - st->sent);
				if (pad > f->chunk)
					pad = f->chunk;
				memset(f->raw, ' ', pad);
				session_write_body(im->s, f->raw, pad);
				st->sent += pad;
				f->since_drain += pad;
				continue;
			}
			st->file_off += (uint64_t)got;
			mime_crlf_convert(&st->crlf, f->raw, (size_t)got, &f->conv);
			p = buf_ptr(&f->conv);
			len = buf_len(&f->conv);
			chunk_pos = st->vpos;
			st->vpos += len;
		}
		/* The part of [chunk_pos, chunk_pos+len) inside the window
		 * that is not sent yet. */
		uint64_t from = st->win_start + st->sent;
		uint64_t to = st->win_end;
		if (chunk_pos + len <= from || chunk_pos >= to)
			continue;
		uint64_t a = from > chunk_pos ? from - chunk_pos : 0;
		uint64_t b = to < chunk_pos + len ? to - chunk_pos : len;
		session_write_body(im->s, p + a, (size_t)(b - a));
		st->sent += b - a;
		f->since_drain += (size_t)(b - a);
	}
	st->active = false;
	return true;
}

/* Look up what the message's items need. Returns IMAP_OK, or the status
 * that makes the message left out. */
