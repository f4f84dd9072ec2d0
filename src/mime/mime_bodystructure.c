/*
 * BODY / BODYSTRUCTURE renderer (see mime_bodystructure.h). Recursion is
 * bounded by the tree's depth, which the parser and the deserializer keep
 * below MIME_MAX_DEPTH.
 */

#include "mime/mime_bodystructure.h"

#include <inttypes.h>
#include <string.h>
#include <strings.h>

#include "mime/imapstr.h"
#include "mime/mime_envelope.h"

#define EMPTY_BODY "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0"

static int write_str(struct buf *b, const char *s)
{
	return imapstr_write(b, s, strlen(s));
}

/* body-fld-param: NIL or ("name" "value" ...); a text part always shows a
 * charset. */
static int write_params(struct buf *b, const struct mime_param *p, uint32_t n, bool text)
{
	bool charset = false;
	int rc = 0;

	if (n == 0 && !text)
		return buf_append(b, "NIL", 3);
	rc |= buf_append(b, "(", 1);
	for (uint32_t i = 0; i < n; i++) {
		if (i > 0)
			rc |= buf_append(b, " ", 1);
		if (strcasecmp(p[i].name, "charset") == 0)
			charset = true;
		rc |= write_str(b, p[i].name);
		rc |= buf_append(b, " ", 1);
		rc |= write_str(b, p[i].value);
	}
	if (text && !charset) {
		/* RFC 2045 5.2: the default charset */
		if (n > 0)
			rc |= buf_append(b, " ", 1);
		rc |= buf_append(b, "\"charset\" \"us-ascii\"", 20);
	}
	rc |= buf_append(b, ")", 1);
	return rc;
}

/* body-fld-dsp, body-fld-lang, body-fld-loc */
static int write_ext_common(struct buf *b, const struct mime_part *part)
{
	int rc = 0;

	rc |= buf_append(b, " ", 1);
	if (part->disposition == NULL) {
		rc |= buf_append(b, "NIL", 3);
	} else {
		rc |= buf_append(b, "(", 1);
		rc |= write_str(b, part->disposition);
		rc |= buf_append(b, " ", 1);
		rc |= write_params(b, part->disp_params, part->ndisp_params, false);
		rc |= buf_append(b, ")", 1);
	}
	rc |= buf_append(b, " ", 1);
	if (part->nlanguages == 0) {
		rc |= buf_append(b, "NIL", 3);
	} else {
		rc |= buf_append(b, "(", 1);
		for (uint32_t i = 0; i < part->nlanguages; i++) {
			if (i > 0)
				rc |= buf_append(b, " ", 1);
			rc |= write_str(b, part->languages[i]);
		}
		rc |= buf_append(b, ")", 1);
	}
	rc |= buf_append(b, " ", 1);
	rc |= imapstr_write_nolf(b, part->location);
	return rc;
}

static int write_part(struct buf *b, const struct mime_part *part, bool ext);

static int write_multipart(struct buf *b, const struct mime_part *part, bool ext)
{
	int rc = 0;

	if (part->children == NULL) {
		rc |= buf_append(b, EMPTY_BODY, sizeof(EMPTY_BODY) - 1);
		if (ext)
			rc |= buf_append(b, " NIL NIL NIL NIL", 16);
		rc |= buf_append(b, ")", 1);
	}
	for (const struct mime_part *c = part->children; c != NULL; c = c->next)
		rc |= write_part(b, c, ext);
	rc |= buf_append(b, " ", 1);
	rc |= write_str(b, part->subtype != NULL ? part->subtype : "mixed");
	if (!ext)
		return rc;
	rc |= buf_append(b, " ", 1);
	rc |= write_params(b, part->params, part->nparams, false);
	rc |= write_ext_common(b, part);
	return rc;
}

static int write_single(struct buf *b, const struct mime_part *part, bool ext)
{
	bool text;
	int rc = 0;

	if (part->flags & MIME_PART_RFC822) {
		rc |= buf_append(b, "\"message\" \"rfc822\"", 18);
		text = false;
	} else if (part->type == NULL) {
		rc |= buf_append(b, "\"text\" \"plain\"", 14);
		text = true;
	} else {
		text = strcasecmp(part->type, "text") == 0;
		rc |= write_str(b, part->type);
		rc |= buf_append(b, " ", 1);
		rc |= write_str(b, part->subtype);
	}
	rc |= buf_append(b, " ", 1);
	rc |= write_params(b, part->params, part->nparams, text);
	rc |= buf_append(b, " ", 1);
	rc |= imapstr_write_nolf(b, part->id);
	rc |= buf_append(b, " ", 1);
	rc |= imapstr_write_nolf(b, part->description);
	rc |= buf_append(b, " ", 1);
	rc |= write_str(b, part->encoding != NULL ? part->encoding : "7bit");
	rc |= buf_printf(b, " %" PRIu64, part->body.virtual_size);
	if (text) {
		rc |= buf_printf(b, " %" PRIu32, part->body.lines);
	} else if ((part->flags & MIME_PART_RFC822) && part->children != NULL) {
		/* RFC 3501 7.4.2: envelope, body and size in lines of the
		 * encapsulated message */
		rc |= buf_append(b, " ", 1);
		rc |= mime_envelope_write(part->children->envelope, b);
		rc |= buf_append(b, " ", 1);
		rc |= write_part(b, part->children, ext);
		rc |= buf_printf(b, " %" PRIu32, part->body.lines);
	}
	if (!ext)
		return rc;
	rc |= buf_append(b, " ", 1);
	rc |= imapstr_write_nolf(b, part->md5);
	rc |= write_ext_common(b, part);
	return rc;
}

static int write_part(struct buf *b, const struct mime_part *part, bool ext)
{
	int rc = buf_append(b, "(", 1);

	if (part->flags & MIME_PART_MULTIPART)
		rc |= write_multipart(b, part, ext);
	else
		rc |= write_single(b, part, ext);
	rc |= buf_append(b, ")", 1);
	return rc;
}

int mime_bodystructure_write(const struct mime_part *part, bool extended, struct buf *out)
{
	struct buf b;

	buf_init(&b, buf_room(out));
	int rc = write_part(&b, part, extended);
	if (rc == 0)
		rc = buf_append(out, buf_ptr(&b), buf_len(&b));
	buf_free(&b);
	return rc < 0 ? -1 : 0;
}
