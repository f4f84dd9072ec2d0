#ifndef POSTBOTE_SMTP_DKIM_CANON_H
#define POSTBOTE_SMTP_DKIM_CANON_H

/*
 * DKIM canonicalization (RFC 6376 3.4): the "simple" and "relaxed" forms of
 * header fields and of the body, which is what a DKIM signature actually
 * covers.
 *
 * Input may have CRLF or bare LF line ends: messages in our store have LF
 * (README, "Line ends inside a message") and are sent with CRLF, so a lone
 * LF is canonicalized exactly as CRLF would be. A CR that is not directly
 * followed by LF is an ordinary character (it is not WSP), which is also
 * how the message travels. Output always has CRLF line ends.
 *
 * Nothing here allocates except dkim_header_canon() (into a bounded
 * buffer), and nothing does I/O.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

enum dkim_canon_alg {
	DKIM_CANON_SIMPLE = 0,
	DKIM_CANON_RELAXED,
};

/* "simple" or "relaxed". */
const char *dkim_canon_name(enum dkim_canon_alg alg);

/* ---- Header fields (RFC 6376 3.4.1, 3.4.2) ---- */

/* Append the canonical form of one header field to out: field holds the
 * whole field as it appears in the message (name, colon, value and any
 * folding line ends), without the line end that terminates it.
 *
 *   simple:  the field unchanged, its line ends made CRLF, then CRLF;
 *   relaxed: the name in lower case without WSP before the colon, ":",
 *            the value unfolded, every WSP run made one SP, WSP at either
 *            end removed, then CRLF.
 *
 * Returns the number of octets appended, or -1 (out unchanged) when out
 * has less room than the result needs (relaxed: len + 2, the most it can
 * need) or, for relaxed, when the field has no colon (it has no name to
 * canonicalize). field need not be NUL-terminated and is read only within
 * [field, field + len). */
int dkim_header_canon(enum dkim_canon_alg alg, const char *field, size_t len, struct buf *out);

/* The field's name (the octets before the colon, WSP before the colon
 * excluded) as a pointer into field and a length; -1 when there is no
 * colon or the name is empty. */
int dkim_header_name(const char *field, size_t len, const char **name_r, size_t *name_len_r);

/* ---- The body (RFC 6376 3.4.3, 3.4.4) ---- */

/* Receives canonical body octets, in order, in pieces of any size. */
typedef void dkim_canon_out_fn(void *ctx, const void *data, size_t len);

#define DKIM_CANON_OUTBUF 2048

/* Streaming body canonicalization. Feed the body (everything after the
 * empty line that ends the header section) in chunks split anywhere, then
 * call dkim_body_canon_finish() once.
 *
 * Empty lines at the end of the body are withheld until it is known that
 * text follows them, so a body of any length needs only this struct. What
 * comes out:
 *
 *   simple:  every line as it is; trailing empty lines removed; a body
 *            that is empty (or only empty lines) becomes one CRLF; a last
 *            line without a line end gets one.
 *   relaxed: WSP at the end of each line removed, every other WSP run made
 *            one SP; trailing empty lines removed (a line of only WSP is
 *            empty); an empty body stays empty (RFC 6376 3.4.4, erratum
 *            1384: the hash of the empty string, not of CRLF); a last line
 *            without a line end gets one.
 *
 * The struct holds no pointers the caller must free. */
struct dkim_body_canon {
	enum dkim_canon_alg alg;
	dkim_canon_out_fn *out;
	void *ctx;
	uint64_t length;       /* canonical octets passed to out so far */
	uint64_t pending_crlf; /* line ends withheld: empty lines that may be trailing */
	bool pending_wsp;      /* relaxed: a WSP run withheld (dropped at a line end) */
	bool pending_cr;       /* the last octet fed was a CR; an LF may follow */
	bool finished;
	size_t olen;
	char obuf[DKIM_CANON_OUTBUF];
};

void dkim_body_canon_init(struct dkim_body_canon *c, enum dkim_canon_alg alg, dkim_canon_out_fn *out,
			  void *ctx);
/* Feed len octets of the body. Canonical output is passed to out in
 * batches of up to DKIM_CANON_OUTBUF octets, before this returns or later. */
void dkim_body_canon_feed(struct dkim_body_canon *c, const void *data, size_t len);
/* The body has ended: emit what is left (the final CRLF, or for simple the
 * CRLF of an empty body). Further feeds are ignored. */
void dkim_body_canon_finish(struct dkim_body_canon *c);
/* Canonical octets emitted so far (the whole canonical body after finish;
 * what an l= tag would state). */
static inline uint64_t dkim_body_canon_length(const struct dkim_body_canon *c) { return c->length; }

#endif
