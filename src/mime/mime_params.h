#ifndef POSTBOTE_MIME_PARAMS_H
#define POSTBOTE_MIME_PARAMS_H

/*
 * MIME parameters (RFC 2045 5.1) with RFC 2231 continuations, and the
 * Content-Type / Content-Disposition values they belong to.
 *
 * Merging follows RFC 2231 3-4 the way IMAP servers present it in
 * BODYSTRUCTURE: name*0, name*1... are joined in index order; if any
 * segment is extended (name*0*) the result is named "name*" and keeps the
 * charset'language'%XX form (unextended segments get their '%' escaped so
 * the whole value stays decodable); a set with a missing index is left as
 * separate name*N parameters. Decoding to UTF-8 is a separate step
 * (mime_param_decode) for SEARCH and filenames.
 */

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "mime/mime_rfc822.h"
#include "mime/mime_tree.h"

/* A parsed parameter list, heap-allocated, owned by the caller. */
struct mime__params {
	struct mime__param {
		char *name;
		char *value;
	} *v;
	size_t n;
	size_t cap;
};

/* Parse "; name=value ..." from the cursor to the end of the value into
 * out (which must be zeroed or freed before). Returns 0, or -1 when some
 * parameter was broken (the good ones are still in out, as servers
 * show them). */
int mime__params_parse(struct mime__lex *lx, struct mime__params *out);
void mime__params_free(struct mime__params *p);
/* The value of the first parameter named name (ASCII case-insensitive). */
const char *mime__params_get(const struct mime__params *p, const char *name);

/* A parsed Content-Type value. type/subtype are "" and "" when the value is
 * not "token/token" followed by nothing or ";"; then params is empty. */
struct mime__ctype {
	struct mime__str type;
	struct mime__str subtype;
	struct mime__params params;
	bool ok;
};

void mime__ctype_parse(const void *value, size_t len, struct mime__ctype *out);
void mime__ctype_free(struct mime__ctype *ct);

/* Content-Disposition: the disposition token (possibly ""), then params.
 * Returns -1 when there is no usable token (out is then empty). */
int mime__disposition_parse(const void *value, size_t len, struct mime__str *disp,
			    struct mime__params *params);

/* The raw value of a Content-Type parameter of a part, or NULL. */
const char *mime_part_param(const struct mime_part *part, const char *name);

/* Append the value of a parameter as UTF-8 to out: an RFC 2231 extended
 * value (name ending in '*') is percent-decoded and converted from its
 * charset; a plain value containing RFC 2047 encoded words (a common
 * mistake in filenames) is decoded as those. Bytes that cannot be
 * converted are kept. Returns 0, or -1 if out is full. */
int mime_param_decode(const struct mime_param *p, struct buf *out);

#endif
