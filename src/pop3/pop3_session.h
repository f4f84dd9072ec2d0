#ifndef POSTBOTE_POP3_SESSION_H
#define POSTBOTE_POP3_SESSION_H

/*
 * The POP3 server session (RFC 1939; CAPA and response codes RFC 2449;
 * STLS RFC 2595; AUTH RFC 5034 with PLAIN RFC 4616 and LOGIN; [AUTH] and
 * [SYS/...] RFC 3206) as a sans-I/O protocol for core/session. Used on the
 * pop3 (110) and pop3s (995) listeners.
 *
 * The session reaches accounts and mail only through the struct
 * pop3_backend that session_params.backend points to (pop3/pop3_backend.h);
 * without one (NULL) every login is refused with -ERR [SYS/PERM].
 *
 * States (RFC 1939 section 3):
 *  - AUTHORIZATION: CAPA, STLS, USER, PASS, AUTH, APOP (refused), QUIT.
 *    Passwords are taken only under TLS, or from loopback when
 *    allow_plaintext_auth_loopback is set (contract 7). A login that
 *    succeeds locks the maildrop; a second POP3 login of the same account
 *    gets -ERR [IN-USE].
 *  - TRANSACTION: STAT, LIST, RETR, DELE, NOOP, RSET, TOP, UIDL, CAPA, QUIT,
 *    over the INBOX as it was at login.
 *  - UPDATE: after QUIT, the messages marked by DELE are removed in one
 *    store operation, then the lock is released and the connection closed.
 *    A connection that ends any other way (dropped, timed out, too many
 *    errors, server stop) removes nothing.
 *
 * Limits: command lines of pop3_line_max octets (SASL responses may be as
 * long as the largest valid PLAIN message); max_bad_commands errors, then
 * the session closes. Message content goes out in bounded pieces as the
 * socket drains (at most POP3_PUMP_BUDGET octets are added per step), so a
 * session's memory does not grow with message or mailbox size.
 *
 * Octet counts (STAT, LIST, RETR) are the sizes with CRLF line ends from
 * the index; the content is sent with every lone LF made CRLF and with
 * lines that begin with "." stuffed (RFC 1939 section 3). UIDL is
 * "%08X%08X" of UID and UIDVALIDITY, Dovecot's default pop3_uidl_format, so
 * it survives restarts and reindex (the UIDs do) and a mailbox taken over
 * from Dovecot keeps the IDs its clients remember.
 */

#include "core/session.h"

/* Message content is read in chunks of this size... */
#define POP3_READ_CHUNK (64 * 1024)
/* ...and a long reply adds at most about this much output before it waits
 * for the socket to drain. */
#define POP3_PUMP_BUDGET (256 * 1024)

extern const struct session_proto pop3_proto;

#endif
