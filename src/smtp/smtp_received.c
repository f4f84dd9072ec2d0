/*
 * Return-Path and Received (see smtp_received.h).
 */
#include "smtp/smtp_received.h"

#include <stdio.h>
#include <string.h>

const char *smtp_received_protocol(const struct smtp_received *r)
{
	/* RFC 3848 2 and RFC 6531 3.7.3: S for TLS, A for AUTH. */
	static const char *const esmtp[] = { "ESMTP", "ESMTPA", "ESMTPS", "ESMTPSA" };
	static const char *const utf8[] = { "UTF8SMTP", "UTF8SMTPA", "UTF8SMTPS", "UTF8SMTPSA" };
	int i = (r->tls ? 2 : 0) + (r->auth ? 1 : 0);

	if (!r->esmtp)
		return "SMTP";
	return r->utf8 ? utf8[i] : esmtp[i];
}

/* What the client calls itself goes into a header: keep it to printable
 * ASCII without the characters that would end a comment or the header. */
static void clean_copy(char *out, size_t size, const char *in)
{
	size_t o = 0;

	for (const char *p = in; *p != '\0' && o + 1 < size; p++) {
		unsigned char c = (unsigned char)*p;
		out[o++] = (c > ' ' && c < 0x7f && c != '(' && c != ')' && c != '\\' && c != ';') ? (char)c : '?';
	}
	out[o] = '\0';
}

void smtp_received_write(struct buf *out, const struct smtp_received *r)
{
	char helo[128], date[64];
	struct tm tm;

	clean_copy(helo, sizeof(helo), r->helo && *r->helo ? r->helo : "unknown");
	localtime_r(&r->when, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);

	buf_printf(out, "Return-Path: <%s>\n", r->sender);
	buf_printf(out, "Received: from %s ([%s])\n\tby %s (postbote) with %s", helo, r->peer, r->by,
		   smtp_received_protocol(r));
	if (r->tls_version != NULL)
		buf_printf(out, "\n\t(version=%s cipher=%s)", r->tls_version, r->tls_cipher);
	if (r->auth_user != NULL) {
		char user[300];
		clean_copy(user, sizeof(user), r->auth_user);
		buf_printf(out, "\n\t(authenticated user %s)", user);
	}
	buf_printf(out, "\n\tid %s", r->id);
	if (r->for_rcpt != NULL)
		buf_printf(out, "\n\tfor <%s>", r->for_rcpt);
	buf_printf(out, ";\n\t%s\n", date);
}
