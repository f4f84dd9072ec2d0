#ifndef POSTBOTE_SMTP_SMTP_RECEIVED_H
#define POSTBOTE_SMTP_SMTP_RECEIVED_H

/*
 * The trace headers put in front of every message received (RFC 5321
 * 4.4): Return-Path with the envelope sender, and a Received line saying
 * from whom, by whom, how (RFC 3848 protocol names, the TLS version and
 * cipher, the authenticated user - never anything secret), our id, for
 * whom (only with a single recipient, so one Bcc does not learn the rest)
 * and when.
 */

#include <stdbool.h>
#include <time.h>

#include "core/buf.h"

struct smtp_received {
	const char *helo;          /* as the client said it; cleaned up here */
	const char *peer;          /* its address */
	const char *by;            /* our host name */
	bool esmtp, tls, auth, utf8;
	const char *tls_version;   /* NULL without TLS */
	const char *tls_cipher;
	const char *auth_user;     /* NULL unless authenticated */
	const char *id;
	const char *sender;        /* "" for the null reverse-path */
	const char *for_rcpt;      /* NULL with several recipients */
	time_t when;
};

/* Append both headers, with LF line ends (the store keeps LF). */
void smtp_received_write(struct buf *out, const struct smtp_received *r);

/* The RFC 3848 / RFC 6531 name for the "with" clause: ESMTPSA etc. */
const char *smtp_received_protocol(const struct smtp_received *r);

#endif
