#ifndef POSTBOTE_IMAP_FETCH_PRIVATE_H
#define POSTBOTE_IMAP_FETCH_PRIVATE_H

/*
 * FETCH's state, shared by imap_fetch.c (items, the response pump,
 * completion) and imap_fetch_body.c (BODY[section] literals streamed from
 * the message file).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "imap/imap_private.h"
#include "mime/mime_crlf.h"
#include "mime/mime_tree.h"

/* Raw message bytes read at once; converted they are at most twice that. */
#define FETCH_READ_CHUNK (32 * 1024)
/* HEADER.FIELDS output is built in memory: bounded by this. */
#define FETCH_FIELDS_MAX (4 * 1024 * 1024)

enum fetch_kind {
	FETCH_UID,
	FETCH_FLAGS,
	FETCH_INTERNALDATE,
	FETCH_RFC822_SIZE,
	FETCH_ENVELOPE,
	FETCH_BODY,            /* BODY without a section: the structure */
	FETCH_BODYSTRUCTURE,
	FETCH_SECTION,         /* BODY[...], BODY.PEEK[...], RFC822, RFC822.HEADER/TEXT */
};

struct fetch_item {
	enum fetch_kind kind;
	const char *spec;      /* between "[" and "]", into the command */
	size_t spec_len;
	char *label;           /* "BODY[1.2]<0>", "RFC822.TEXT" (allocated) */
	bool peek;
	bool partial;
	uint32_t origin;
	uint32_t plen;         /* UINT32_MAX: to the end */
};

/* A literal being streamed. */
struct fetch_stream {
	bool active;
	bool from_mem;         /* HEADER.FIELDS: the filtered bytes in mem */
	uint64_t file_off;     /* next raw byte to read */
	uint64_t file_end;
	uint64_t vpos;         /* converted bytes of the section produced so far */
	uint64_t win_start;    /* the partial window, in converted bytes */
	uint64_t win_end;
	uint64_t sent;         /* literal bytes written */
	uint64_t lit_len;      /* announced literal length */
	struct mime_crlf crlf;
};

struct imap_fetch {
	struct fetch_item *items;
	size_t nitems;
	bool need_info, need_tree, need_reader;
	bool sets_seen;        /* a non-PEEK body item */
	bool has_flags;

	uint32_t *idx;         /* view indexes, ascending */
	size_t n;
	size_t cur;            /* message being written */
	size_t item;           /* next item of it */
	bool in_msg;           /* its response was started */
	bool add_flags;        /* it gained \Seen: append FLAGS */

	struct imap_msg_info info;
	struct mime_tree *tree;
	void *reader;
	struct fetch_stream st;

	struct buf scratch;    /* protocol text not yet handed to the session */
	struct buf conv;       /* converted message bytes */
	struct buf mem;        /* HEADER.FIELDS result */
	char *raw;             /* FETCH_READ_CHUNK bytes */
	size_t since_drain;
	size_t budget;
	size_t chunk;          /* raw bytes read at once while streaming */
	size_t flush_at;       /* scratch text this long goes out mid-response */

	uint32_t *seen;        /* uids that gained \Seen */
	size_t n_seen;
	bool gone;             /* some message was expunged meanwhile */
	bool tempfail;
};

/* Resolve the section of item it for the current message, set up its
 * literal in f->st and append "LABEL {n}\r\n" to the scratch text. */
void imap__fetch_section_start(struct imap *im, const struct fetch_item *it);
/* Write literal bytes while there is room and budget. Returns true when
 * the literal is complete, false when the output must drain first. */
bool imap__fetch_section_pump(struct imap *im);

#endif
