#ifndef POSTBOTE_POP3_SESSION_H
#define POSTBOTE_POP3_SESSION_H

/*
 * The POP3 server session (RFC 1939, CAPA RFC 2449, STLS RFC 2595) as a
 * sans-I/O protocol for core/session. Used on the pop3 (110) and pop3s (995)
 * listeners.
 *
 * This is the Foundation's session: greeting, CAPA, STLS, QUIT. Login and
 * the maildrop arrive with the POP3 issue; until then USER/PASS/AUTH are
 * refused with -ERR [SYS/PERM].
 */

#include "core/session.h"

extern const struct session_proto pop3_proto;

#endif
