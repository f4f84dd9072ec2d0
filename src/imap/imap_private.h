#ifndef POSTBOTE_IMAP_IMAP_PRIVATE_H
#define POSTBOTE_IMAP_IMAP_PRIVATE_H

/*
 * The IMAP session's state, shared by the files of src/imap/ that each hold
 * one group of commands:
 *
 *   imap_session.c  the session_proto: lines and literals into commands,
 *                   dispatch by state, completion responses, bad-command
 *                   count, CAPABILITY NOOP LOGOUT STARTTLS ID ENABLE
 *                   NAMESPACE IDLE
 *   imap_auth.c     LOGIN, AUTHENTICATE PLAIN/LOGIN (SASL-IR)
 *   imap_view.c     the selected mailbox as the client knows it: sequence
 *                   numbers, flags, recorded changes and when to tell them
 *   imap_mailbox.c  SELECT EXAMINE CLOSE UNSELECT CHECK CREATE DELETE RENAME
 *                   SUBSCRIBE UNSUBSCRIBE LIST LSUB STATUS APPEND
 *   imap_modify.c   STORE COPY MOVE EXPUNGE, UID EXPUNGE
 *   imap_fetch.c    FETCH, UID FETCH
 *   imap_search.c   SEARCH, UID SEARCH
 *
 * Command lifetime: a command's struct imap_command (and every string in
 * it) stays valid until the command completes, also across
 * SESSION_EFFECT_WAIT, because the parser is only reset when the next
 * command's first line arrives. A command that waits keeps what it needs in
 * struct imap and finishes with imap_done(), which sends the pending
 * untagged updates its kind allows and then resumes the session.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/session.h"
#include "imap/imap_backend.h"
#include "imap/imap_parse.h"
#include "imap/imap_seqset.h"

enum imap_state {
	IMAP_STATE_NOT_AUTH,
	IMAP_STATE_AUTH,
	IMAP_STATE_SELECTED,
	IMAP_STATE_LOGOUT,
};

/* Which untagged updates a command allows at its end (RFC 3501 7.4.1: no
 * EXPUNGE after FETCH, STORE or SEARCH, since the client may be using
 * sequence numbers to match the results; UID versions are fine). */
enum imap_report {
	IMAP_REPORT_ALL,
	IMAP_REPORT_NO_EXPUNGE,
	IMAP_REPORT_NONE,          /* not in the selected state */
};

/* The selected mailbox as this session's client knows it. msgs[i] is
 * message sequence number i+1. Changes recorded by imap_view_changed() are
 * folded in only by imap_view_report(), so the numbers the client uses stay
 * right until it is told otherwise. */
struct imap_view {
	struct imap_mailbox *mb;   /* backend handle; NULL when none selected */
	char *name;                /* as the backend named it ("INBOX") */
	bool read_only;            /* EXAMINE */
	uint32_t uidvalidity;
	uint32_t uidnext;
	struct imap_msg *msgs;
	size_t n, cap;

	/* Recorded, not yet told. */
	uint32_t new_first, new_last;   /* CHANGE_NEW range (0 = none) */
	uint32_t *expunged;             /* uids, any order */
	size_t n_expunged, cap_expunged;
	uint32_t *changed;              /* uids whose flags changed */
	size_t n_changed, cap_changed;
	bool gone;                      /* the mailbox went away: BYE */
	size_t keywords_told;           /* keyword names in the last FLAGS */
	size_t recent;                  /* \Recent count last told */
};

struct imap_fetch;     /* imap_fetch.c */
struct imap_search;    /* imap_search.c */

struct imap {
	struct session *s;
	const struct imap_backend *be;
	struct imap_parser *parser;
	enum imap_state state;
	unsigned bad_commands;

	/* The command being run. cmd is valid from dispatch to imap_done(). */
	bool have_cmd;             /* the parser holds a complete command */
	struct imap_command cmd;
	const char *tag;           /* cmd.tag, or "*" */
	void *pending;             /* backend handle to cancel on destroy */
	void *auth_handle;         /* auth_start handle to cancel */
	enum imap_report report;   /* what imap_done() may tell */

	/* Authenticated. */
	char *account;
	struct imap_account *acct;

	/* Selected. */
	struct imap_view view;

	/* IDLE (RFC 2177): the tag of the IDLE command, NULL when not idling. */
	char *idle_tag;

	/* AUTHENTICATE in progress: the mechanism waits for a client line. */
	int sasl_step;             /* 0 = none */
	char *sasl_user;           /* AUTHENTICATE LOGIN: the user name given */

	/* Commands with more output than fits at once. */
	struct imap_fetch *fetch;
	struct imap_search *search;

	/* Temporary per-command storage (uid lists for STORE/COPY/...). */
	uint32_t *uids;
	size_t n_uids;
	bool silent;               /* STORE .SILENT */
	bool uid_cmd;              /* a UID command: FETCH responses carry UID */
	bool move;                 /* MOVE rather than COPY */
};

/* ---- imap_session.c ---- */

/* Complete the command: tagged "OK"/"NO"/"BAD" + text (code included in
 * text, e.g. "[TRYCREATE] No such mailbox"). NO and BAD count towards
 * max_bad_commands (BAD always, NO never: a NO is a normal answer);
 * returns CLOSE once there were too many. */
enum session_effect imap_ok(struct imap *im, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
enum session_effect imap_no(struct imap *im, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
enum session_effect imap_bad(struct imap *im, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The response code and text for a backend status that is not IMAP_OK:
 * "[NONEXISTENT] No such mailbox". */
const char *imap_status_text(enum imap_status st);
/* A waiting command is done (from a backend callback): im->pending is
 * cleared, untagged updates im->report allows are sent, the tagged
 * response already written stays last, and the session resumes with then.
 * The tagged response must be appended with imap_ok/no/bad before this
 * call; imap_done() puts the untagged updates before it. */
void imap_done(struct imap *im, enum session_effect then);
/* The capability list for CAPABILITY and the greeting's code. */
void imap_capabilities(struct imap *im, struct buf *out);

/* ---- imap_auth.c ---- */

enum session_effect imap_cmd_login(struct imap *im);
enum session_effect imap_cmd_authenticate(struct imap *im);
/* A client line while AUTHENTICATE waits for one (sasl_step > 0). */
enum session_effect imap_auth_line(struct imap *im, const char *line, size_t len);
/* The password was right: account_open, state AUTH, "OK [CAPABILITY ...]". */

/* ---- imap_view.c ---- */

/* Start viewing a selected mailbox (takes over info->msgs). */
void imap_view_open(struct imap *im, struct imap_mailbox *mb, const char *name, bool read_only,
		    struct imap_select_info *info);
/* Stop (mailbox_close, free). */
void imap_view_close(struct imap *im);
/* The backend's on_change: record; in IDLE, report at once and poke. */
void imap_view_changed(void *arg, enum imap_change what, uint32_t first, uint32_t last);
/* Tell the client what was recorded: "* n EXPUNGE" (when allowed),
 * "* n EXISTS", "* n RECENT", "* FLAGS" when keywords were added, and
 * "* n FETCH (FLAGS (...))" (with UID when uid is set). Appends to the
 * session output before the tagged response that follows. */
void imap_view_report(struct imap *im, enum imap_report allowed);
/* The sequence number of uid in the view, 0 if it is not there. */
uint32_t imap_view_seq(const struct imap_view *v, uint32_t uid);
/* Resolve a sequence set argument (message numbers, or UIDs when uid)
 * against the view into the ascending, duplicate-free list of view
 * indexes (0-based) it names. Message numbers past the end are an error
 * ("BAD Invalid message number"); UIDs that are not there are skipped.
 * Returns 0 with *idx_r (allocated, may be NULL when *n_r is 0), or -1
 * with *error_r. */
int imap_view_resolve(const struct imap_view *v, const char *set, size_t len, bool uid, uint32_t **idx_r,
		      size_t *n_r, const char **error_r);
/* "(\Seen \Flagged $label1)" for a message, \Recent included. */
void imap_write_flags(struct imap *im, struct buf *out, const struct imap_msg *m);
/* Parse a flag list argument (LIST or single FLAG/ATOM) into system flags
 * and keyword names (pointers into the command; *names_r allocated).
 * \Recent and unknown \X flags are an error. Returns 0 or -1 with
 * *error_r. */
int imap_parse_flags(const struct imap_arg *a, uint32_t *flags_r, const char ***names_r, size_t *n_r,
		     const char **error_r);

/* ---- imap_mailbox.c ---- */

enum session_effect imap_cmd_select(struct imap *im);      /* and EXAMINE */
enum session_effect imap_cmd_close(struct imap *im);       /* and UNSELECT */
enum session_effect imap_cmd_check(struct imap *im);
enum session_effect imap_cmd_create(struct imap *im);
enum session_effect imap_cmd_delete(struct imap *im);
enum session_effect imap_cmd_rename(struct imap *im);
enum session_effect imap_cmd_subscribe(struct imap *im);   /* and UNSUBSCRIBE */
enum session_effect imap_cmd_list(struct imap *im);        /* and LSUB */
enum session_effect imap_cmd_status(struct imap *im);
enum session_effect imap_cmd_append(struct imap *im);
/* Mailbox name argument as IMAP names it: "inbox" in any case is "INBOX";
 * modified UTF-7 is kept as sent. NULL (and *error_r) when it is not an
 * astring or is empty. Allocated. */
char *imap_mailbox_arg(const struct imap_arg *a, const char **error_r);

/* ---- imap_modify.c ---- */

enum session_effect imap_cmd_store(struct imap *im);
enum session_effect imap_cmd_copy(struct imap *im);        /* and MOVE */
enum session_effect imap_cmd_expunge(struct imap *im);     /* and UID EXPUNGE */

/* ---- imap_fetch.c ---- */

enum session_effect imap_cmd_fetch(struct imap *im);
/* proto->drained while a FETCH waits for its output to go. */
void imap_fetch_drained(struct imap *im);
void imap_fetch_free(struct imap *im);

/* ---- imap_search.c ---- */

enum session_effect imap_cmd_search(struct imap *im);
void imap_search_drained(struct imap *im);
void imap_search_free(struct imap *im);

#endif
