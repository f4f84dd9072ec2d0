#ifndef POSTBOTE_SMTP_SESSION_H
#define POSTBOTE_SMTP_SESSION_H

/*
 * The SMTP server session (RFC 5321) as a sans-I/O protocol for core/session.
 * Used on the smtp (25), submission (587) and submissions (465) listeners.
 *
 * This is the Foundation's session: greeting, EHLO/HELO, STARTTLS (RFC 3207),
 * NOOP, RSET, HELP, QUIT, and protocol-correct refusals for everything the
 * mail transaction issue adds (MAIL, RCPT, DATA, AUTH ...).
 */

#include "core/session.h"

extern const struct session_proto smtp_proto;

#endif
