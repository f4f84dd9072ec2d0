#ifndef POSTBOTE_SMTP_CLIENT_H
#define POSTBOTE_SMTP_CLIENT_H

/*
 * The SMTP client (RFC 5321) as a sans-I/O state machine: one message, one
 * server connection, N recipients. It is fed the server's bytes and answers
 * with bytes to send (smtp_client_output()) and at most one action for the
 * glue (start TLS, stream the body, close). It never touches a socket, a
 * timer, TLS or a file: the glue connects, reads the spooled message, runs
 * the TLS handshake and arms the timer with smtp_client_timeout_ms(), and
 * reports what went wrong on the wire with smtp_client_fail(). That is what
 * makes every dialogue testable from a script and fuzzable (contract 1).
 *
 * The dialogue:
 *   greeting 220 -> EHLO (5xx: HELO) -> [STARTTLS -> handshake -> EHLO]
 *   -> checks (SIZE, 8BITMIME, SMTPUTF8) -> [AUTH PLAIN | LOGIN]
 *   -> MAIL, RCPT..., DATA (one write with PIPELINING, else lock-step)
 *   -> 354 -> body, dot-stuffed, CRLF line ends -> "." -> reply -> QUIT.
 *
 * Outcomes are per recipient (RFC 5321 4.2.5, 6.1): a 2xx to RCPT and to the
 * end of data delivers; a 4xx defers that recipient (the queue retries); a
 * 5xx fails it (the queue bounces). A reply to MAIL, DATA or the end of data
 * applies to every recipient still in play.
 *
 * Decisions (the lead: see also the report):
 *  - Greeting other than 220 (a 4xx, or 554 "no service here", RFC 5321
 *    3.1): every recipient is deferred, and the summary says site=true so
 *    the queue tries the next MX now. A 554 greeting is usually one host
 *    refusing us (blocklist, rate limit), not a verdict on the recipients;
 *    if every MX keeps refusing, the lifetime runs out and the bounce says
 *    why. The same holds for EHLO and HELO both refused, STARTTLS refused
 *    under "require", AUTH refused, and a 4xx to MAIL.
 *  - An 8-bit message (eightbit) to a server without 8BITMIME fails with
 *    5.6.3 and is bounced; we do not downgrade to quoted-printable (RFC 6152
 *    3 allows either). Rewriting a message breaks DKIM signatures and needs
 *    a MIME rewriter in the delivery path; a bounce is honest and rare
 *    (8BITMIME is nearly universal). eightbit must mean "the content has
 *    octets >= 0x80", not merely "the submitter said BODY=8BITMIME"; many
 *    mail clients declare 8BITMIME for plain ASCII.
 *  - A message that needs SMTPUTF8 (smtputf8) to a server without it fails
 *    with 5.6.7 (RFC 6531 3.2; no downgrade).
 *  - A message larger than the server's SIZE fails with 5.3.4 without being
 *    sent (RFC 1870 6.1). SIZE 0 or none: no check.
 *  - AUTH is used only under TLS unless auth_plaintext; credentials with no
 *    usable mechanism (PLAIN, then LOGIN), AUTH not offered, or a refused
 *    AUTH defer every recipient: a smarthost that will not take our login
 *    is a configuration problem to fix, not a reason to bounce.
 *  - All recipients refused: no DATA (without PIPELINING), or the DATA the
 *    pipeline already sent is refused by the server; then QUIT. If a server
 *    answers 354 anyway, we send a lone "." (RFC 2920 3.1).
 *  - The recipient limit (452 4.5.3 to some RCPTs, RFC 5321 4.5.3.1.10)
 *    defers the rest; the queue sends them in a later attempt.
 *  - A reply other than 421 while the body is being sent, garbage, or a
 *    reply that breaks the rules of client_reply.h defers every recipient
 *    still in play and closes at once (no QUIT). A 421 at any point does the
 *    same (RFC 5321 3.8).
 *  - Any failure after "." was sent and before its reply defers: the
 *    message may arrive twice, which RFC 5321 6.1 prefers to losing it.
 *  - DSN parameters (NOTIFY, ORCPT, RET, ENVID) are passed on only when the
 *    server offers DSN; otherwise they are dropped silently (we do not send
 *    "relayed" notices).
 *
 * Timeouts (RFC 5321 4.5.3.2): smtp_client_timeout_ms() is the limit for the
 * wait the client is in now: greeting 5 min, MAIL 5 min, RCPT 5 min, DATA
 * (the 354) 2 min, each block of body data 3 min, the reply to the final "."
 * 10 min; EHLO, HELO, STARTTLS, the TLS handshake, AUTH and QUIT use
 * command_ms (5 min). The
 * glue (re)arms its timer with it after every call into the client and
 * whenever a write of body data completes; when it fires, it calls
 * smtp_client_fail(SMTP_CLIENT_FAIL_TIMEOUT).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "smtp/client_reply.h"
#include "smtp/smtp_backend.h"

/* How much message content smtp_client_body() takes per call. */
#define SMTP_CLIENT_BODY_CHUNK (16 * 1024)
/* The longest reply text kept per recipient (smtp_reply_summary()). */
#define SMTP_CLIENT_TEXT_MAX 1000

enum smtp_client_tls {
	SMTP_CLIENT_TLS_NONE = 0,       /* never STARTTLS */
	SMTP_CLIENT_TLS_OPPORTUNISTIC,  /* STARTTLS when offered; plaintext when not or refused */
	SMTP_CLIENT_TLS_REQUIRE,        /* STARTTLS or defer (4.7.4) */
	SMTP_CLIENT_TLS_IMPLICIT,       /* the glue runs TLS before the greeting (port 465) */
};

/* RFC 5321 4.5.3.2. A zero field takes its default. */
struct smtp_client_timeouts {
	uint64_t greeting_ms;    /* 4.5.3.2.1: 5 min */
	uint64_t command_ms;     /* EHLO, HELO, STARTTLS, AUTH, QUIT: 5 min */
	uint64_t mail_ms;        /* 4.5.3.2.2: 5 min */
	uint64_t rcpt_ms;        /* 4.5.3.2.3: 5 min */
	uint64_t data_init_ms;   /* 4.5.3.2.4: 2 min */
	uint64_t data_block_ms;  /* 4.5.3.2.5: 3 min */
	uint64_t data_term_ms;   /* 4.5.3.2.6: 10 min */
};

/* Fill in the RFC defaults. */
void smtp_client_timeouts_default(struct smtp_client_timeouts *t);

struct smtp_client_rcpt {
	const char *address;     /* local@domain, without angle brackets */
	unsigned notify;         /* SMTP_NOTIFY_* (smtp_backend.h), 0 = not given */
	const char *orcpt;       /* "rfc822;user@example.org" (decoded), or NULL */
};

/*
 * What one delivery attempt needs: the route's options and the envelope.
 * Strings and the recipient array are borrowed: they must stay valid until
 * smtp_client_free(). Nothing here is copied except into the output.
 */
struct smtp_client_params {
	const char *ehlo_name;         /* our host name for EHLO/HELO */
	const char *server;            /* whom we talk to, for our own texts: "mx.example.org[192.0.2.1]" */

	enum smtp_client_tls tls;
	/* Verify the server's certificate (name and chain). Not used by the
	 * state machine: the glue reads it when it runs the handshake, so a
	 * route's options stay in one struct. Off by default: most MX hosts
	 * have certificates that do not match their MX name (RFC 7435). */
	bool tls_verify;
	bool tls_active;               /* TLS already runs (TLS_IMPLICIT after its handshake) */

	/* AUTH (RFC 4954): both NULL for none. Wiped from our output buffer
	 * on free; the caller owns and wipes its copies. */
	const char *auth_user;
	const char *auth_password;
	bool auth_plaintext;           /* allow AUTH without TLS (default: no) */

	const char *sender;            /* "" for the null reverse-path */
	const struct smtp_client_rcpt *rcpts;
	size_t n_rcpts;                /* 1 or more */
	/* The message size in octets as sent, with CRLF line ends (the stored
	 * size plus one octet per line is exact enough, RFC 1870 3). */
	uint64_t size;
	bool eightbit;                 /* the content has octets >= 0x80: needs 8BITMIME */
	bool smtputf8;                 /* needs SMTPUTF8 (UTF-8 addresses or headers) */
	enum smtp_ret ret;             /* RFC 3461 RET, passed on with DSN */
	const char *envid;             /* RFC 3461 ENVID (decoded) or NULL */

	struct smtp_client_timeouts timeouts;
};

enum smtp_client_action {
	/* Send the pending output (may be none) and keep reading. */
	SMTP_CLIENT_ACTION_NONE = 0,
	/* Send the pending output, then run the TLS handshake as a client
	 * (verifying per tls_verify) and call smtp_client_tls_done(), or
	 * smtp_client_fail(SMTP_CLIENT_FAIL_TLS). Bytes the server sent after
	 * its 220 have been thrown away (RFC 3207 5); feed nothing until the
	 * handshake is done. */
	SMTP_CLIENT_ACTION_START_TLS,
	/* Send the pending output; then read at most smtp_client_body_want()
	 * octets of the message and hand them to smtp_client_body(). Call it
	 * again each time the write queue has drained (back-pressure). */
	SMTP_CLIENT_ACTION_NEED_BODY,
	/* Send the pending output, then close the connection. The results are
	 * final. */
	SMTP_CLIENT_ACTION_CLOSE,
};

enum smtp_client_outcome {
	SMTP_CLIENT_PENDING = 0,       /* not decided yet (only before the end) */
	SMTP_CLIENT_DELIVERED,         /* the server took responsibility */
	SMTP_CLIENT_DEFERRED,          /* transient: try again later */
	SMTP_CLIENT_FAILED,            /* permanent: bounce */
};

/* What happened to one recipient. */
struct smtp_client_result {
	enum smtp_client_outcome outcome;
	unsigned code;                 /* the server's reply code, or the one we chose */
	char status[12];               /* "5.1.1": the reply's enhanced code, else "C.0.0" */
	/* true: text is the server's reply (smtp_reply_summary(), for the
	 * DSN's Diagnostic-Code "smtp; ..."); false: text is our own
	 * explanation (no connection, SIZE too small, ...). */
	bool remote;
	const char *text;              /* NULL while pending; owned by the client */
};

/* The attempt as a whole. */
struct smtp_client_summary {
	bool done;                     /* every recipient has an outcome */
	size_t delivered, deferred, failed;
	/* Deferred before the server said anything about a single recipient
	 * (connection, greeting, EHLO, TLS, AUTH, MAIL): the queue should try
	 * the next MX host now (RFC 5321 5.1). */
	bool site;
	bool tls;                      /* the mail went (or would have gone) under TLS */
	bool tls_failed;               /* the handshake failed: an opportunistic route may retry in plaintext */
	bool authenticated;
	const char *text;              /* the last message-wide reason, or NULL */
};

/* Why the connection failed, as the glue saw it. */
enum smtp_client_failure {
	SMTP_CLIENT_FAIL_CONNECT,      /* refused, unreachable, DNS for the host: 4.4.1 */
	SMTP_CLIENT_FAIL_TIMEOUT,      /* smtp_client_timeout_ms() ran out: 4.4.2 */
	SMTP_CLIENT_FAIL_TLS,          /* handshake or certificate check failed: 4.7.5 */
	SMTP_CLIENT_FAIL_CLOSED,       /* the server closed or reset the connection: 4.4.2 */
};

struct smtp_client;

/* A client for one attempt, waiting for the greeting. Returns NULL with
 * *error_r (static text) when the parameters cannot be sent safely: no
 * recipient, an empty EHLO name, control characters, spaces or angle
 * brackets in an address, an over-long address, ENVID or ORCPT. */
struct smtp_client *smtp_client_new(const struct smtp_client_params *params, const char **error_r);
/* Free the client, wiping its output buffer (it may have held AUTH). */
void smtp_client_free(struct smtp_client **c);

/* Bytes from the server (plaintext, after TLS where it runs). Returns what
 * the glue does next. After CLOSE, further input is ignored. */
enum smtp_client_action smtp_client_feed(struct smtp_client *c, const void *data, size_t len);

/* The handshake after START_TLS succeeded: the client says EHLO again and
 * forgets what it learned before (RFC 3207 4.2). */
enum smtp_client_action smtp_client_tls_done(struct smtp_client *c);

/* How many octets of message content smtp_client_body() wants now: 0
 * unless the client is sending the body, else SMTP_CLIENT_BODY_CHUNK. */
size_t smtp_client_body_want(const struct smtp_client *c);

/* The next len octets of the message as stored (LF line ends; a CRLF or a
 * lone CR is also understood), len <= smtp_client_body_want(); eof once
 * the message ends (with or without data). The client converts line ends
 * to CRLF, sends a lone CR as a line break (so no receiver can see a line
 * start we did not dot-stuff: the SMTP smuggling advisories of 2023),
 * doubles a leading dot (RFC 5321 4.5.2), ends the last line and appends
 * "." CRLF. The glue must have taken the previous output first. Returns
 * NEED_BODY (more, once the output has drained), NONE after eof (waiting
 * for the final reply) or CLOSE. */
enum smtp_client_action smtp_client_body(struct smtp_client *c, const void *data, size_t len, bool eof);

/* The connection failed. Every recipient not yet decided (or accepted at
 * RCPT and waiting for the end of data) is deferred, with a text naming
 * the stage; detail (may be NULL) is the glue's words ("connection
 * refused", an OpenSSL reason). Connection failures are always transient.
 * Returns CLOSE. After the results are final (waiting for QUIT's reply) it
 * changes nothing. */
enum smtp_client_action smtp_client_fail(struct smtp_client *c, enum smtp_client_failure why,
					 const char *detail);

/* Bytes to send; the glue consumes what it has taken. */
struct buf *smtp_client_output(struct smtp_client *c);

/* How long the server may take for what the client waits for now, in
 * milliseconds; 0 once the client is closed. */
uint64_t smtp_client_timeout_ms(const struct smtp_client *c);

/* True once every recipient has its outcome (QUIT may still be under way). */
bool smtp_client_done(const struct smtp_client *c);

/* Recipient i (as in params->rcpts); valid until smtp_client_free(). */
const struct smtp_client_result *smtp_client_rcpt_result(const struct smtp_client *c, size_t i);

void smtp_client_summary(const struct smtp_client *c, struct smtp_client_summary *s_r);

/* What the server announced in its last EHLO (all false after HELO). */
const struct smtp_ehlo *smtp_client_ehlo(const struct smtp_client *c);

/* A short name of the stage, for logs: "greeting", "EHLO", "RCPT", ... */
const char *smtp_client_stage(const struct smtp_client *c);

/* For the protocol trace: how many leading octets of this line of our
 * output may be shown ("AUTH PLAIN " of "AUTH PLAIN <secret>", nothing of a
 * LOGIN response); the rest is printed as "***". Call it before the next
 * call into the client, since it depends on the stage. */
size_t smtp_client_trace_visible(const struct smtp_client *c, const char *line, size_t len);

#endif
