/*
 * ENVELOPE renderer (see mime_envelope.h). Rendered into a scratch buffer
 * and appended at once so a full output buffer never receives half a
 * response.
 */

#include "mime/mime_envelope.h"

#include <string.h>

#include "mime/imapstr.h"

static int write_addresses(struct buf *b, const struct mime_address *a, uint32_t n)
{
	int rc = 0;

	if (n == 0)
		return buf_append(b, "NIL", 3);
	rc |= buf_append(b, "(", 1);
	for (uint32_t i = 0; i < n; i++) {
		rc |= buf_append(b, "(", 1);
		if (a[i].name == NULL)
			rc |= buf_append(b, "NIL", 3);
		else
			rc |= imapstr_write_human(b, a[i].name, strlen(a[i].name));
		rc |= buf_append(b, " ", 1);
		rc |= imapstr_write_nstring(b, a[i].route);
		rc |= buf_append(b, " ", 1);
		rc |= imapstr_write_nstring(b, a[i].mailbox);
		rc |= buf_append(b, " ", 1);
		rc |= imapstr_write_nstring(b, a[i].domain);
		rc |= buf_append(b, ")", 1);
	}
	rc |= buf_append(b, ")", 1);
	return rc;
}

int mime_envelope_write(const struct mime_envelope *env, struct buf *out)
{
	struct buf b;
	int rc = 0;

	if (env == NULL)
		return buf_append(out, "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)", 41);

	buf_init(&b, buf_room(out));
	rc |= buf_append(&b, "(", 1);
	rc |= imapstr_write_nstring(&b, env->date);
	rc |= buf_append(&b, " ", 1);
	if (env->subject == NULL)
		rc |= buf_append(&b, "NIL", 3);
	else
		rc |= imapstr_write_human(&b, env->subject, strlen(env->subject));
	for (int i = 0; i < MIME_ADDR_COUNT; i++) {
		int src = i;
		/* RFC 3501 7.4.2: sender and reply-to default to from */
		if ((i == MIME_ADDR_SENDER || i == MIME_ADDR_REPLY_TO) && env->naddr[i] == 0)
			src = MIME_ADDR_FROM;
		rc |= buf_append(&b, " ", 1);
		rc |= write_addresses(&b, env->addr[src], env->naddr[src]);
	}
	rc |= buf_append(&b, " ", 1);
	rc |= imapstr_write_nstring(&b, env->in_reply_to);
	rc |= buf_append(&b, " ", 1);
	rc |= imapstr_write_nstring(&b, env->message_id);
	rc |= buf_append(&b, ")", 1);
	if (rc == 0)
		rc = buf_append(out, buf_ptr(&b), buf_len(&b));
	buf_free(&b);
	return rc < 0 ? -1 : 0;
}
