#ifndef POSTBOTE_IMAP_SESSION_H
#define POSTBOTE_IMAP_SESSION_H

/*
 * The IMAP server session (RFC 3501 IMAP4rev1 with IDLE, LITERAL+, SASL-IR,
 * ID, ENABLE, NAMESPACE, UIDPLUS, MOVE, SPECIAL-USE, CHILDREN, UNSELECT)
 * as a sans-I/O protocol for core/session. Used on the imap (143) and imaps
 * (993) listeners.
 *
 * The session reaches accounts and mailboxes through the struct
 * imap_backend (imap/imap_backend.h) given as session_params.backend; the
 * server passes core/imap_glue.c's, tests an in-memory fake. Without a
 * backend LOGIN and AUTHENTICATE are answered NO [UNAVAILABLE].
 *
 * Limits: a literal may hold cfg->imap_literal_max octets (NO [TOOBIG]
 * past it), a whole command that plus 1 MiB (BAD past it), a line
 * cfg->imap_line_max; cfg->max_bad_commands BAD responses end the session
 * with BYE.
 */

#include "core/session.h"

extern const struct session_proto imap_proto;

#endif
