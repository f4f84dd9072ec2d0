#ifndef POSTBOTE_SMTP_DSN_H
#define POSTBOTE_SMTP_DSN_H

/*
 * Delivery status notifications (RFC 3464, RFC 3461, RFC 6522): the bounce
 * for recipients that failed for good, and the optional "still trying"
 * warning.
 *
 *   From: Mail Delivery System <MAILER-DAEMON@hostname>
 *   To: <original envelope sender>
 *   Auto-Submitted: auto-replied                      (RFC 3834 5)
 *   Content-Type: multipart/report; report-type=delivery-status
 *     1. text/plain: what happened, per recipient with the server's reply
 *     2. message/delivery-status: Reporting-MTA, Arrival-Date, and per
 *        recipient Original-Recipient, Final-Recipient, Action, Status,
 *        Remote-MTA, Diagnostic-Code, Last-Attempt-Date, Will-Retry-Until
 *     3. the original: message/rfc822 with RET=FULL, text/rfc822-headers
 *        with RET=HDRS or no RET (RFC 3461 4.3 leaves that to us; we
 *        choose headers, the original sender has the message)
 *
 * Why it is shaped so:
 *  - The original message is never held in memory (contract 5): it is read
 *    through a callback in chunks and written through another, so the same
 *    code renders into a struct buf (tests) or a queue file (the queue, in
 *    a worker thread: the fd variant blocks).
 *  - The MIME boundary cannot collide: the part we copy from the original
 *    is read once before writing to make sure no line of it starts with
 *    "--" and the boundary; if one does, another boundary is picked.
 *    Everything else in the report we write ourselves, and no line of it
 *    starts with "--" (reply texts are indented or folded).
 *  - A RET=FULL original larger than full_max (default 10 MiB) is not
 *    truncated (a cut message is a broken message) but returned as its
 *    header, and the text part says so.
 *  - Whatever the remote server said goes into headers only as printable
 *    ASCII (other octets become '?') and folded, so a hostile reply cannot
 *    add header fields or MIME structure.
 *  - Line ends are LF, the store's format; the SMTP client makes CRLF.
 *  - With UTF-8 addresses (SMTPUTF8 mail) the report uses RFC 6533's
 *    message/global-delivery-status, "utf-8;" address types and
 *    message/global(-headers), and info->smtputf8 says it needs SMTPUTF8.
 *
 * The queue sends the DSN with the null reverse-path (MAIL FROM:<>), so a
 * DSN never causes another (RFC 3461 6.1, RFC 5321 4.5.5).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "core/buf.h"
#include "smtp/smtp_backend.h"

#define SMTP_DSN_FULL_MAX_DEFAULT (10u * 1024 * 1024)
/* The original's header section returned at most (cut at a line end). */
#define SMTP_DSN_HEADERS_MAX (256u * 1024)

enum smtp_dsn_action {
	SMTP_DSN_FAILED = 0,      /* Action: failed */
	SMTP_DSN_DELAYED,         /* Action: delayed (a warning; the queue keeps trying) */
};

struct smtp_dsn_rcpt {
	const char *address;      /* Final-Recipient: the address we tried */
	const char *orcpt;        /* ORCPT "addr-type;address" (decoded), or NULL */
	enum smtp_dsn_action action;
	const char *status;       /* "5.1.1"; NULL: "5.0.0" / "4.0.0" by action */
	const char *remote_mta;   /* the server that answered (Remote-MTA), or NULL */
	const char *diagnostic;   /* its reply, "550 5.1.1 ..." (Diagnostic-Code: smtp;), or NULL */
	const char *text;         /* our own reason when there is no reply ("connect to ... failed"), or NULL */
	time_t last_attempt;      /* Last-Attempt-Date; 0: left out */
	time_t retry_until;       /* Will-Retry-Until (delayed only); 0: left out */
};

struct smtp_dsn {
	const char *reporting_mta;  /* our host name */
	const char *sender;         /* the original envelope sender: To: */
	const char *unique;         /* unique per DSN (the queue id and a counter): Message-ID, boundary */
	time_t now;                 /* Date */
	time_t arrival;             /* Arrival-Date; 0: left out */
	const char *envid;          /* ENVID (decoded): Original-Envelope-Id, or NULL */
	enum smtp_ret ret;          /* RET of the original */
	const struct smtp_dsn_rcpt *rcpts;
	size_t n_rcpts;             /* >= 1 */
	uint64_t original_size;     /* octets of the original as stored */
	uint64_t full_max;          /* RET=FULL up to this size; 0: SMTP_DSN_FULL_MAX_DEFAULT */
};

enum smtp_dsn_returned {
	SMTP_DSN_RETURNED_NONE = 0, /* no original was available */
	SMTP_DSN_RETURNED_HEADERS,
	SMTP_DSN_RETURNED_FULL,
};

struct smtp_dsn_info {
	uint64_t size;              /* octets written */
	bool eightbit;              /* octets >= 0x80 in the output: send with BODY=8BITMIME */
	bool smtputf8;              /* UTF-8 addresses: send with SMTPUTF8 */
	enum smtp_dsn_returned returned;
	bool full_too_big;          /* RET=FULL, but over full_max: headers returned */
	bool headers_cut;           /* the header section was over SMTP_DSN_HEADERS_MAX */
};

/* Read up to len octets of the original starting at offset off into buf.
 * Returns how many (0 at the end), or -1. */
typedef ssize_t (*smtp_dsn_read_fn)(void *ctx, uint64_t off, void *buf, size_t len);
/* Write all len octets; 0, or -1. */
typedef int (*smtp_dsn_write_fn)(void *ctx, const void *data, size_t len);

/* Must a DSN with this action be sent for a recipient whose original had
 * this envelope sender and NOTIFY (SMTP_NOTIFY_* bits, 0 = not given)?
 * Never for the null sender "" (or NULL): that is how bounce loops are
 * avoided (RFC 5321 4.5.5, 6.1). NOTIFY=NEVER: never. NOTIFY given: only
 * if it names FAILURE (failed) or DELAY (delayed). NOTIFY not given: yes
 * for both (RFC 3461 4.1 leaves it to the MTA; delay warnings are off
 * unless configured, see queue_schedule.h). */
bool smtp_dsn_wanted(const char *sender, unsigned notify, enum smtp_dsn_action action);

/* Render the DSN. rd reads the original (NULL: not available, no third
 * part); wr receives the output in pieces. Returns 0 with *info_r filled
 * (info_r may be NULL), or -1 with *error_r (static text) when a read or
 * a write failed or d is unusable (no recipient, no sender); whatever was
 * written by then is garbage to the caller. */
int smtp_dsn_render(const struct smtp_dsn *d, smtp_dsn_read_fn rd, void *rd_ctx, smtp_dsn_write_fn wr,
		    void *wr_ctx, struct smtp_dsn_info *info_r, const char **error_r);

/* Render into out (appending; -1 if its maximum is reached). The original
 * is read from original_fd with pread(), -1 for none. Blocks on the file:
 * call from a worker thread, never on the loop. */
int smtp_dsn_render_buf(const struct smtp_dsn *d, int original_fd, struct buf *out, struct smtp_dsn_info *info_r,
			const char **error_r);

/* Render into the file out_fd (write() from its current offset), the
 * original read from original_fd (-1 for none). Blocks: a worker thread's
 * job. The caller fsyncs and renames as the queue requires. */
int smtp_dsn_render_fd(const struct smtp_dsn *d, int original_fd, int out_fd, struct smtp_dsn_info *info_r,
		       const char **error_r);

/* An RFC 5322 date in UTC, "Tue, 01 Jul 2025 12:00:00 +0000", into out
 * (at least 32 octets); independent of the locale. Returns out. */
char *smtp_dsn_date(time_t t, char out[32]);

#endif
