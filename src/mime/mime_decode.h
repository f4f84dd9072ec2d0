#ifndef POSTBOTE_MIME_DECODE_H
#define POSTBOTE_MIME_DECODE_H

/*
 * Content-Transfer-Encoding decoders (RFC 2045 6.7 quoted-printable, 6.8
 * base64) for SEARCH BODY/TEXT and anything else that wants a part's
 * content. Each is a small state struct fed the encoded body in chunks of
 * any size; output goes to a struct buf. They are lenient the way mail
 * needs: base64 skips characters outside its alphabet and stops at the
 * padding; quoted-printable keeps an "=" that starts no valid escape as it
 * is, drops trailing blanks before a line end (6.7 rule 3) and joins soft
 * line breaks.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

struct mime_b64dec {
	uint32_t acc;      /* bits not yet output */
	unsigned int nbits;
	bool done;         /* '=' seen: the rest is ignored */
};

void mime_b64dec_init(struct mime_b64dec *d);
/* Decode len bytes. Returns 0, or -1 if out is full (the decoder state is
 * then undefined: start over). */
int mime_b64dec_feed(struct mime_b64dec *d, const void *in, size_t len, struct buf *out);
/* End of input: leftover bits of an incomplete quantum are dropped. */
void mime_b64dec_finish(struct mime_b64dec *d);

struct mime_qpdec {
	int state;
	char hex;              /* first digit of "=X?" */
	size_t nblank;         /* blanks held back: maybe trailing */
	char blank[64];
};

void mime_qpdec_init(struct mime_qpdec *d);
int mime_qpdec_feed(struct mime_qpdec *d, const void *in, size_t len, struct buf *out);
/* End of input: flush what was held, dropping trailing blanks. Returns 0
 * or -1 if out is full. */
int mime_qpdec_finish(struct mime_qpdec *d, struct buf *out);

/* Which decoder a Content-Transfer-Encoding value asks for (RFC 2045 6.1,
 * case-insensitive); identity for 7bit, 8bit, binary, absent or unknown. */
enum mime_cte {
	MIME_CTE_IDENTITY,
	MIME_CTE_BASE64,
	MIME_CTE_QP,
};
enum mime_cte mime_cte_parse(const char *encoding);

#endif
