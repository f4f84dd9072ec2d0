#ifndef POSTBOTE_SMTP_SMTP_PRIVATE_H
#define POSTBOTE_SMTP_SMTP_PRIVATE_H

/*
 * The SMTP session's state, shared by its three files: smtp_session.c
 * (dispatch, greeting, EHLO, STARTTLS, the small commands), smtp_auth.c
 * (AUTH PLAIN and LOGIN) and smtp_txn.c (the mail transaction: MAIL, RCPT,
 * DATA, BDAT and delivery).
 */

#include <stdbool.h>
#include <stdint.h>

#include "auth/sasl.h"
#include "core/session.h"
#include "smtp/smtp_address.h"
#include "smtp/smtp_backend.h"

enum smtp_state {
	SMTP_STATE_GREETED = 0,   /* before EHLO/HELO */
	SMTP_STATE_READY,         /* after EHLO/HELO: commands */
	SMTP_STATE_AUTH,          /* AUTH: waiting for a response line */
	SMTP_STATE_DATA,          /* DATA: message lines until "." */
	SMTP_STATE_BDAT,          /* BDAT: exact bytes of a chunk */
	SMTP_STATE_BUSY,          /* waiting for the backend (password, delivery) */
};

/* The mail transaction (RFC 5321 3.3), from MAIL to the end of data. */
struct smtp_txn {
	bool active;                      /* MAIL was accepted */
	char id[40];                      /* our id for this message */
	char sender[SMTP_PATH_MAX + 1];   /* "" = null reverse-path */
	struct smtp_rcpt *rcpts;
	size_t n_rcpts;
	bool rcpt_tried;                  /* some RCPT was given, maybe refused */
	uint64_t declared_size;           /* MAIL SIZE=, 0 = not given */
	bool smtputf8, eightbit;
	enum smtp_ret ret;
	char *envid;

	/* The content, while it arrives. */
	void *spool;
	uint64_t size;                    /* octets as sent, CRLF line ends */
	bool first_line;                  /* DATA: nothing read yet */
	bool too_big;                     /* past message_size_max: refuse at the end */
	bool line_too_long;               /* a line past smtp_data_line_max */
	bool spool_failed;                /* a local write error: 451 at the end */
	bool bare_lf;                     /* a line ended in a lone LF (for the log) */
	bool bdat;                        /* BDAT in use (DATA no longer allowed) */
	bool bdat_last;                   /* the chunk being read is the last */
	bool bdat_cr;                     /* BDAT: a CR ended the previous piece */
	bool bdat_refused;                /* BDAT after an error: read and drop */
	uint64_t bdat_chunk;              /* size of the chunk being read */
	uint64_t bdat_seen;               /* octets of it read so far */
	enum smtp_state bdat_state;       /* the state to return to after the chunk */
};

struct smtp_session {
	struct session *s;
	const struct smtp_backend *be;
	enum smtp_state state;
	bool esmtp;
	bool submission;                  /* 587/465: AUTH required, lenient syntax */
	char helo[256];
	unsigned bad_commands;
	unsigned long n_messages;         /* transactions so far, for ids */

	/* AUTH */
	char *auth_user;                  /* the account, once authenticated */
	bool auth_plain;                  /* which mechanism the response is for */
	struct sasl_login *login;
	void *auth_handle;
	bool auth_busy;                   /* a password check is under way */

	struct smtp_txn txn;
	void *deliver_handle;
	bool deliver_busy;                /* a delivery is under way */
	uint64_t started_ms;
};

/* Count a client error (the reply is "CODE X.Y.Z text", no CRLF); past
 * max_bad_commands the session ends with 421 (contract 5). */
enum session_effect smtp_error(struct smtp_session *sm, const char *reply);
const char *smtp_hostname(struct smtp_session *sm);
/* AUTH is offered and accepted on this session now. */
bool smtp_auth_allowed(struct smtp_session *sm);

enum session_effect smtp_cmd_auth(struct smtp_session *sm, const char *args);
enum session_effect smtp_auth_response(struct smtp_session *sm, const char *line, size_t len);
void smtp_auth_reset(struct smtp_session *sm);

enum session_effect smtp_cmd_mail(struct smtp_session *sm, const char *args);
enum session_effect smtp_cmd_rcpt(struct smtp_session *sm, const char *args);
enum session_effect smtp_cmd_data(struct smtp_session *sm, const char *args);
enum session_effect smtp_cmd_bdat(struct smtp_session *sm, const char *args);
enum session_effect smtp_data_line(struct smtp_session *sm, const char *line, size_t len);
enum session_effect smtp_data_too_long(struct smtp_session *sm);
enum session_effect smtp_bdat_bytes(struct smtp_session *sm, const char *data, size_t len);
/* Forget the transaction (RSET, EHLO, after delivery), dropping any spool. */
void smtp_txn_reset(struct smtp_session *sm);

#endif
