#ifndef POSTBOTE_IMAP_SESSION_H
#define POSTBOTE_IMAP_SESSION_H

/*
 * The IMAP server session (RFC 3501) as a sans-I/O protocol for
 * core/session. Used on the imap (143) and imaps (993) listeners.
 *
 * This is the Foundation's session: greeting, CAPABILITY, NOOP, STARTTLS,
 * LOGOUT. The parser with literals and the mailbox commands arrive with the
 * IMAP issue; until then LOGIN/AUTHENTICATE are answered NO [UNAVAILABLE]
 * (RFC 5530) and other commands BAD.
 */

#include "core/session.h"

extern const struct session_proto imap_proto;

#endif
