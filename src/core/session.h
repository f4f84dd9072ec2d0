#ifndef POSTBOTE_CORE_SESSION_H
#define POSTBOTE_CORE_SESSION_H

/*
 * The seam between core/ and the protocols.
 *
 * A protocol (smtp, pop3, imap) is a struct session_proto: a table of
 * functions that are given complete lines (or exact byte runs) and answer by
 * appending to the session's output with session_reply(). They never touch a
 * socket, a timer, TLS or the file system. When a protocol needs something
 * done that is not just "send these bytes" (start TLS, close, and in later
 * issues: verify a password, store a message) it returns an effect; the glue
 * in core/conn.c performs it and reports back, and no further input reaches
 * the protocol until then.
 *
 * struct session is the sans-I/O driver around one protocol instance: it owns
 * the bounded line reader and the output buffer, traces the dialogue, and
 * keeps pipelined input waiting while an effect is pending. Unit tests and
 * fuzz targets drive a session with session_feed() and read
 * session_output() without any network.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/linereader.h"

struct session;

enum session_effect {
	SESSION_EFFECT_NONE = 0,
	/* Send the pending output in plaintext, then run a TLS handshake as
	 * server; proto->tls_started follows once it completes. Input
	 * buffered after the command has already been thrown away. */
	SESSION_EFFECT_STARTTLS,
	/* Send the pending output, then close the connection. */
	SESSION_EFFECT_CLOSE,
	/* The protocol has started work that completes later (a password
	 * check, a delivery, a large reply sent as the socket drains). Send
	 * the pending output and give the protocol no input until it calls
	 * session_resume(). */
	SESSION_EFFECT_WAIT,
};

/* Why a connection is turned away before a session exists. */
enum session_refusal {
	SESSION_REFUSE_TOO_MANY,        /* global connection limit */
	SESSION_REFUSE_TOO_MANY_FROM_IP /* per-address limit */
};

struct session_proto {
	const char *name;              /* "smtp", "pop3", "imap" */

	/* Make the protocol state for a new session. May call
	 * session_set_line_max() and session_set_timeout(). */
	void *(*create)(struct session *s);
	void (*destroy)(void *state);

	/* Append the greeting (after the TLS handshake on implicit-TLS
	 * listeners). */
	void (*greet)(void *state);
	/* One complete line from the client, without its line end; it may
	 * contain NUL bytes. */
	enum session_effect (*line)(void *state, const char *line, size_t len);
	/* A line longer than the limit arrived; its bytes are being dropped. */
	enum session_effect (*line_too_long)(void *state);
	/* In exact-bytes mode (session_expect_bytes): the next run of bytes.
	 * May be NULL for protocols that never ask for exact bytes. */
	enum session_effect (*bytes)(void *state, const char *data, size_t len);
	/* STARTTLS completed: forget everything learned before (RFC 3207 4.2,
	 * RFC 2595 3.1, RFC 3501 6.2.1). */
	enum session_effect (*tls_started)(void *state);

	/* The client was silent too long: append the goodbye. The connection
	 * is closed after it is sent. */
	void (*timeout)(void *state);
	/* The server is stopping: append the goodbye (SMTP 421, IMAP BYE,
	 * POP3 -ERR). */
	void (*shutdown)(void *state);
	/* A connection refused at accept time: append the protocol's refusal
	 * to out. No session exists; hostname is ours. */
	void (*refuse)(struct buf *out, enum session_refusal why, const char *hostname);

	/* After session_wait_drain(): most of the output has been sent and
	 * the protocol may write more (a long RETR or FETCH goes out in
	 * bounded pieces). NULL for protocols that never ask. */
	void (*drained)(void *state);

	/* For the trace: how many leading bytes of this client line may be
	 * shown; the rest is printed as "***" (AUTH payloads, passwords).
	 * NULL means every line may be shown in full. */
	size_t (*trace_visible)(void *state, const char *line, size_t len);
};

/* What the glue knows about the connection, copied into the session. */
struct session_params {
	const struct config *cfg;      /* lives as long as the server */
	enum listener_kind kind;
	uint64_t id;                   /* unique per process run, for logs and trace */
	const char *peer;              /* "192.0.2.1" or "2001:db8::1" */
	bool peer_loopback;
	bool tls;                      /* already under TLS (implicit-TLS listener) */

	/* The protocol's way to the rest of the server (accounts, store,
	 * queue): a struct the protocol defines, so tests can give it a
	 * fake. NULL where the protocol needs none. */
	void *backend;
	/* Called when the session changed outside session_feed(): it resumed
	 * after a wait, or has output to send that nobody asked for (IMAP
	 * IDLE updates). The glue sends the output and, after a resume,
	 * carries on with the next effect. NULL in tests that poll. */
	void (*poke)(void *ctx);
	void *poke_ctx;
};

/* Create the session and the protocol state. Nothing is sent until
 * session_start(). */
struct session *session_new(const struct session_proto *proto, const struct session_params *params);
void session_free(struct session **s);

/* Ask the protocol for its greeting. */
void session_start(struct session *s);

/* Bytes from the peer (plaintext). Lines are handed to the protocol until it
 * returns an effect or the input runs out. Returns the effect to perform, or
 * SESSION_EFFECT_CLOSE if the input overflowed the buffer (the glue must stop
 * reading while an effect is pending, so only a flood does that). */
enum session_effect session_feed(struct session *s, const void *data, size_t len);

/* The glue finished the pending effect; carry on with buffered input.
 * Returns the next effect, if any. For STARTTLS, version and cipher name the
 * new TLS session (strings must outlive the session; OpenSSL's static names
 * do). */
enum session_effect session_tls_started(struct session *s, const char *version, const char *cipher);

/* Record the TLS version and cipher of an implicit-TLS session once its
 * handshake is done (before session_start). */
void session_set_tls(struct session *s, const char *version, const char *cipher);

/* The idle timer fired / the server is stopping: the goodbye is appended and
 * the glue closes after sending it. */
void session_timeout(struct session *s);
void session_shutdown(struct session *s);

/* After SESSION_EFFECT_WAIT: true once the protocol has resumed. The glue
 * then calls session_continue(). */
bool session_resumed(const struct session *s);
/* Carry on with buffered input after a wait; returns the next effect. */
enum session_effect session_continue(struct session *s);
/* True while the protocol waits for its output to drain; the glue calls
 * session_drained() once most of it has been sent. */
bool session_wants_drain(const struct session *s);
void session_drained(struct session *s);

/* Output waiting to be sent; the glue consumes what it has taken. */
struct buf *session_output(struct session *s);

/* Bytes the client has buffered that were not yet handed to the protocol. */
size_t session_input_pending(const struct session *s);

/* The connection has gone quiet (its output was taken): give back the
 * memory the input and output buffers grew to for earlier commands. Does
 * nothing while the protocol is busy. */
void session_trim(struct session *s);

/* ---- For protocols ---- */

/* Append one or more complete reply lines (the format includes "\r\n").
 * They are traced line by line as "S: ...". If the output buffer is full the
 * session is marked broken and closes (output is ours; only a protocol bug
 * gets here). */
void session_reply(struct session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append raw bytes that are message content (RETR, FETCH BODY[]); traced as
 * a summary unless the trace mode is full. */
void session_write_body(struct session *s, const void *data, size_t len);

/* The work behind a SESSION_EFFECT_WAIT is done (called on the loop, from
 * a callback of the protocol's backend; calling it before the protocol has
 * even returned WAIT is fine too: the wait then ends at once). then is the
 * effect the wait turns into: NONE to go on reading, CLOSE to close after
 * the output. */
void session_resume(struct session *s, enum session_effect then);
/* Ask for proto->drained once the output has mostly gone; use with
 * SESSION_EFFECT_WAIT. */
void session_wait_drain(struct session *s);
/* Output was appended outside a feed (an IDLE update): have it sent. */
void session_poke(struct session *s);
/* The protocol's backend from session_params. */
void *session_backend(const struct session *s);

/* Switch to exact-bytes mode: the next n bytes go to proto->bytes (in one or
 * more calls) instead of being split into lines. */
void session_expect_bytes(struct session *s, uint64_t n);
/* How the line just handed to proto->line ended, and the one before it
 * (returned or skipped as too long): true for a lone LF. SMTP needs both
 * to find the end of DATA (RFC 5321 2.3.8, 4.1.1.4). */
bool session_line_bare_lf(const struct session *s);
bool session_prev_line_bare_lf(const struct session *s);
/* Set the line limit (octets including CRLF) for lines from now on. */
void session_set_line_max(struct session *s, size_t line_max);
/* Set how long the client may stay silent from now on. */
void session_set_timeout(struct session *s, uint64_t ms);
uint64_t session_timeout_ms(const struct session *s);
/* Trace message content from the client (DATA): summarised unless full. */
void session_trace_client_body(struct session *s, size_t len);

const struct config *session_config(const struct session *s);
enum listener_kind session_kind(const struct session *s);
uint64_t session_id(const struct session *s);
const char *session_peer(const struct session *s);
bool session_peer_loopback(const struct session *s);
bool session_tls_active(const struct session *s);
const char *session_tls_version(const struct session *s);  /* NULL without TLS */
const char *session_tls_cipher(const struct session *s);
/* STARTTLS may be offered: a plain session on a listener that has it. */
bool session_starttls_allowed(const struct session *s);

#endif
