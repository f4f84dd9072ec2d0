#ifndef POSTBOTE_CORE_TRACE_H
#define POSTBOTE_CORE_TRACE_H

/*
 * The protocol trace: every session's dialogue as it happens, for people
 * learning how mail moves and for debugging a client.
 *
 *   [smtp 7] C: EHLO laptop.example
 *   [smtp 7] S: 250-mail.example.org
 *   [smtp 7] C: AUTH PLAIN ***
 *   [smtp 7] C: <message: 2318 bytes>
 *   [imap 9] S: * 1 FETCH (BODY[] {2318}
 *   [imap 9] S: <message: 2318 bytes>
 *
 * Lines are escaped so control bytes are visible and cannot mess up the
 * terminal. Secrets are masked by the protocol's trace_visible(); bodies are
 * counted, not shown, unless the mode is TRACE_FULL.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"

void trace_set_mode(enum trace_mode mode);
enum trace_mode trace_get_mode(void);
static inline bool trace_on(void) { return trace_get_mode() != TRACE_OFF; }

/* One line of dialogue, dir 'C' (client) or 'S' (server), without its line
 * end. Only the first visible bytes are printed, then " ***" when visible <
 * len. */
void trace_line(const char *proto, uint64_t id, char dir, const char *line, size_t len, size_t visible);
/* Message content: a summary line, or the content itself line by line in
 * full mode. */
void trace_body(const char *proto, uint64_t id, char dir, const char *data, size_t len);
/* An event in the session (connected, TLS started, closed). */
void trace_event(const char *proto, uint64_t id, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Escape len bytes of line into out (printable ASCII as is, others as \xHH,
 * \r \n \t by name). Returns the length written; out is NUL-terminated and
 * truncated with "..." past outlen. */
size_t trace_escape(const char *line, size_t len, char *out, size_t outlen);

#endif
