/*
 * Header fields the tree keeps (see mime_header.h). Each value is parsed
 * once, here, into the form ENVELOPE and BODYSTRUCTURE print, so rendering
 * and the serialized cache never need the raw header again.
 */

#include "mime/mime_header.h"

#include <string.h>
#include <strings.h>

#include "mime/mime_address.h"
#include "mime/mime_params.h"
#include "mime/mime_rfc822.h"

static const struct {
	const char *name;
	enum mime__hdr hdr;
} known[] = {
	{ "Content-Type", MIME__HDR_CONTENT_TYPE },
	{ "Content-Transfer-Encoding", MIME__HDR_CONTENT_TRANSFER_ENCODING },
	{ "Content-ID", MIME__HDR_CONTENT_ID },
	{ "Content-Description", MIME__HDR_CONTENT_DESCRIPTION },
	{ "Content-Disposition", MIME__HDR_CONTENT_DISPOSITION },
	{ "Content-Language", MIME__HDR_CONTENT_LANGUAGE },
	{ "Content-Location", MIME__HDR_CONTENT_LOCATION },
	{ "Content-MD5", MIME__HDR_CONTENT_MD5 },
	{ "MIME-Version", MIME__HDR_MIME_VERSION },
	{ "Date", MIME__HDR_DATE },
	{ "Subject", MIME__HDR_SUBJECT },
	{ "From", MIME__HDR_FROM },
	{ "Sender", MIME__HDR_SENDER },
	{ "Reply-To", MIME__HDR_REPLY_TO },
	{ "To", MIME__HDR_TO },
	{ "Cc", MIME__HDR_CC },
	{ "Bcc", MIME__HDR_BCC },
	{ "In-Reply-To", MIME__HDR_IN_REPLY_TO },
	{ "Message-ID", MIME__HDR_MESSAGE_ID },
};

enum mime__hdr mime__hdr_lookup(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
		if (strlen(known[i].name) == len && strncasecmp(known[i].name, name, len) == 0)
			return known[i].hdr;
	}
	return MIME__HDR_OTHER;
}

static struct mime_param *copy_params(struct mime_tree *t, const struct mime__params *src,
				      uint32_t *count_r)
{
	*count_r = 0;
	if (src->n == 0)
		return NULL;
	struct mime_param *dst = mime_tree_alloc(t, src->n * sizeof(*dst));
	uint32_t n = 0;
	for (size_t i = 0; i < src->n; i++) {
		dst[n].name = mime_tree_strdup(t, src->v[i].name, strlen(src->v[i].name));
		dst[n].value = mime_tree_strdup(t, src->v[i].value, strlen(src->v[i].value));
		if (dst[n].name == NULL || dst[n].value == NULL)
			break;  /* out of budget: keep what fitted */
		n++;
	}
	*count_r = n;
	return n > 0 ? dst : NULL;
}

static void apply_content_type(struct mime_tree *t, struct mime_part *part,
			       struct mime__hdrstate *st, const char *value, size_t len)
{
	struct mime__ctype ct;

	/* RFC 2045 5: a Content-Type makes the part MIME even without
	 * MIME-Version, as every server treats it. Only the first counts. */
	part->flags |= MIME_PART_IS_MIME;
	if (st->seen_ct)
		return;
	st->seen_ct = true;

	mime__ctype_parse(value, len, &ct);
	const char *type = mime__str_c(&ct.type), *sub = mime__str_c(&ct.subtype);
	if (strcasecmp(type, "message") == 0 && strcasecmp(sub, "rfc822") == 0 && ct.ok) {
		part->flags |= MIME_PART_RFC822;
	} else if (strcasecmp(type, "text") == 0) {
		part->flags |= MIME_PART_TEXT;
	} else if (strcasecmp(type, "multipart") == 0 && ct.ok) {
		part->flags |= MIME_PART_MULTIPART;
		if (strcasecmp(sub, "digest") == 0)
			part->flags |= MIME_PART_DIGEST;
		/* RFC 2046 5.1.1: the boundary delimits the body parts */
		const char *b = mime__params_get(&ct.params, "boundary");
		if (b != NULL) {
			size_t blen = strlen(b);
			if (blen > MIME_BOUNDARY_MAX)
				blen = MIME_BOUNDARY_MAX;
			memcpy(st->boundary, b, blen);
			st->boundary_len = blen;
			st->have_boundary = true;
		}
	}

	part->type = mime_tree_strdup(t, type, strlen(type));
	part->subtype = mime_tree_strdup(t, sub, strlen(sub));
	if (part->type == NULL || part->subtype == NULL) {
		/* out of budget: keep the pair consistent */
		part->type = part->subtype = NULL;
	}
	part->params = copy_params(t, &ct.params, &part->nparams);
	mime__ctype_free(&ct);
}

static void apply_cte(struct mime_tree *t, struct mime_part *part, const char *value, size_t len)
{
	struct mime__lex lx;
	struct mime__str tok = { 0 };

	if (part->encoding != NULL)
		return;
	/* RFC 2045 6.1: a single token; anything after it voids the field */
	mime__lex_init(&lx, value, len);
	mime__skip_lwsp(&lx);
	if (mime__parse_token(&lx, &tok) >= 0 && mime__skip_lwsp(&lx) == 0 && tok.len > 0)
		part->encoding = mime_tree_strdup(t, tok.data, tok.len);
	mime__str_free(&tok);
}

static void apply_disposition(struct mime_tree *t, struct mime_part *part,
			      const char *value, size_t len)
{
	struct mime__str disp = { 0 };
	struct mime__params params = { 0 };

	/* A first Content-Disposition without parameters may be followed by
	 * one with them; the fuller one is shown (as Dovecot does). */
	if (part->ndisp_params > 0)
		return;
	if (mime__disposition_parse(value, len, &disp, &params) == 0) {
		part->disposition = mime_tree_strdup(t, mime__str_c(&disp), disp.len);
		part->disp_params = copy_params(t, &params, &part->ndisp_params);
	}
	mime__str_free(&disp);
	mime__params_free(&params);
}

static void apply_language(struct mime_tree *t, struct mime_part *part,
			   const char *value, size_t len)
{
	struct mime__lex lx;
	struct mime__str tok = { 0 };
	const char *langs[64];
	size_t n = 0;

	if (part->languages != NULL)
		return;
	/* RFC 3282 2: 1#Language-tag, tags being atoms */
	mime__lex_init(&lx, value, len);
	mime__skip_lwsp(&lx);
	while (n < sizeof(langs) / sizeof(langs[0])) {
		mime__str_truncate(&tok, 0);
		if (mime__parse_atom(&lx, &tok) < 0)
			break;
		langs[n] = mime_tree_strdup(t, mime__str_c(&tok), tok.len);
		if (langs[n] == NULL)
			break;
		n++;
		if (lx.p >= lx.end || *lx.p != ',')
			break;
		lx.p++;
		mime__skip_lwsp(&lx);
	}
	mime__str_free(&tok);
	if (n == 0)
		return;
	part->languages = mime_tree_alloc(t, n * sizeof(*part->languages));
	memcpy(part->languages, langs, n * sizeof(*langs));
	part->nlanguages = (uint32_t)n;
}

static void apply_envelope(struct mime_tree *t, struct mime_envelope *env,
			   enum mime__hdr h, const char *value, size_t len)
{
	/* RFC 3501 7.4.2. A repeated Subject replaces the earlier one; a
	 * repeated address field adds its addresses (mime_address.h). */
	switch (h) {
	case MIME__HDR_DATE:
		env->date = mime_tree_strdup(t, value, len);
		break;
	case MIME__HDR_SUBJECT:
		env->subject = mime_tree_strdup(t, value, len);
		break;
	case MIME__HDR_IN_REPLY_TO:
		env->in_reply_to = mime_tree_strdup(t, value, len);
		break;
	case MIME__HDR_MESSAGE_ID:
		env->message_id = mime_tree_strdup(t, value, len);
		break;
	default: {
		int i = MIME_ADDR_FROM + (int)(h - MIME__HDR_FROM);
		mime_address_parse(t, value, len, &env->addr[i], &env->naddr[i]);
		break;
	}
	}
}

void mime__hdr_apply(struct mime_tree *t, struct mime_part *part, struct mime__hdrstate *st,
		     enum mime__hdr h, const char *value, size_t len)
{
	switch (h) {
	case MIME__HDR_OTHER:
		break;
	case MIME__HDR_CONTENT_TYPE:
		apply_content_type(t, part, st, value, len);
		break;
	case MIME__HDR_CONTENT_TRANSFER_ENCODING:
		apply_cte(t, part, value, len);
		break;
	case MIME__HDR_CONTENT_ID:
		if (part->id == NULL)
			part->id = mime_tree_strdup(t, value, len);
		break;
	case MIME__HDR_CONTENT_DESCRIPTION:
		if (part->description == NULL)
			part->description = mime_tree_strdup(t, value, len);
		break;
	case MIME__HDR_CONTENT_DISPOSITION:
		apply_disposition(t, part, value, len);
		break;
	case MIME__HDR_CONTENT_LANGUAGE:
		apply_language(t, part, value, len);
		break;
	case MIME__HDR_CONTENT_LOCATION:
		if (part->location == NULL)
			part->location = mime_tree_strdup(t, value, len);
		break;
	case MIME__HDR_CONTENT_MD5:
		if (part->md5 == NULL)
			part->md5 = mime_tree_strdup(t, value, len);
		break;
	case MIME__HDR_MIME_VERSION:
		part->flags |= MIME_PART_IS_MIME;
		break;
	default:
		if (part->envelope != NULL)
			apply_envelope(t, part->envelope, h, value, len);
		break;
	}
}

void mime__hdr_forget_content(struct mime_part *part)
{
	part->type = part->subtype = NULL;
	part->params = NULL;
	part->nparams = 0;
	part->encoding = part->id = part->description = NULL;
	part->md5 = part->location = part->disposition = NULL;
	part->disp_params = NULL;
	part->ndisp_params = 0;
	part->languages = NULL;
	part->nlanguages = 0;
}
