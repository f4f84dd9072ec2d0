/*
 * The mail transaction: MAIL, RCPT, DATA and BDAT, the content on its way
 * to the spool, and the reply once the backend has made it durable.
 *
 * Relay policy (DESIGN contract 7): a recipient in another domain is
 * accepted only from an authenticated session. The checks run on the
 * parsed address, so the tricks that fool string matching (source routes,
 * "user%other@ours", quoted local parts holding '@', address literals,
 * domains in odd case) meet the same rule as a plain address.
 *
 * End of data (RFC 5321 4.1.1.4, 2.3.8, and the SMTP smuggling advisories
 * of 2023): only CRLF "." CRLF ends a message. A lone LF is accepted as a
 * line end inside the message (the store keeps LF line ends anyway), but a
 * "." line next to a lone LF never ends it, so "\n.\n", "\n.\r\n" and
 * "\r.\r" are message content, never a way to smuggle commands.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/log.h"
#include "core/xalloc.h"
#include "smtp/smtp_private.h"
#include "smtp/smtp_received.h"

/* ENVID is at most 100 characters (RFC 3461 4.4). */
#define SMTP_ENVID_MAX 100

void smtp_txn_reset(struct smtp_session *sm)
{
	struct smtp_txn *t = &sm->txn;

	for (size_t i = 0; i < t->n_rcpts; i++) {
		free(t->rcpts[i].address);
		free(t->rcpts[i].orcpt);
	}
	free(t->rcpts);
	free(t->envid);
	if (t->spool != NULL)
		sm->be->spool_discard(t->spool);
	if (sm->state == SMTP_STATE_DATA)
		session_set_line_max(sm->s, session_config(sm->s)->smtp_line_max);
	memset(t, 0, sizeof(*t));
}

static bool param_is(const char *key, size_t len, const char *name)
{
	return strlen(name) == len && strncasecmp(key, name, len) == 0;
}

static bool value_is(const char *v, size_t len, const char *name)
{
	return v != NULL && strlen(name) == len && strncasecmp(v, name, len) == 0;
}

/* A decimal number of at most 19 digits. */
static bool parse_u64(const char *v, size_t len, uint64_t *out)
{
	uint64_t n = 0;

	if (v == NULL || len == 0 || len > 19)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return false;
		n = n * 10 + (uint64_t)(v[i] - '0');
	}
	*out = n;
	return true;
}

static void smtp_new_id(struct smtp_session *sm)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	snprintf(sm->txn.id, sizeof(sm->txn.id), "%" PRIx64 ".%" PRIu64 ".%lu", ms, session_id(sm->s),
		 ++sm->n_messages);
}

/* MAIL parameters: RFC 1870 SIZE, RFC 6152 BODY, RFC 6531 SMTPUTF8,
 * RFC 3461 RET and ENVID, RFC 4954 AUTH. */
static const char *smtp_mail_params(struct smtp_session *sm, const char *params)
{
	struct smtp_txn *t = &sm->txn;
	const char *key, *v;
	size_t klen, vlen;

	while (smtp_param_next(&params, &key, &klen, &v, &vlen)) {
		if (!sm->esmtp)
			return "555 5.5.4 Parameters need EHLO";
		if (param_is(key, klen, "SIZE")) {
			if (!parse_u64(v, vlen, &t->declared_size))
				return "501 5.5.4 Syntax: SIZE=octets";
		} else if (param_is(key, klen, "BODY")) {
			if (value_is(v, vlen, "8BITMIME"))
				t->eightbit = true;
			else if (!value_is(v, vlen, "7BIT"))
				return "501 5.5.4 BODY must be 7BIT or 8BITMIME";
		} else if (param_is(key, klen, "SMTPUTF8")) {
			if (v != NULL)
				return "501 5.5.4 SMTPUTF8 takes no value";
			t->smtputf8 = true;
		} else if (param_is(key, klen, "RET")) {
			if (value_is(v, vlen, "FULL"))
				t->ret = SMTP_RET_FULL;
			else if (value_is(v, vlen, "HDRS"))
				t->ret = SMTP_RET_HDRS;
			else
				return "501 5.5.4 RET must be FULL or HDRS";
		} else if (param_is(key, klen, "ENVID")) {
			char envid[SMTP_ENVID_MAX + 1];
			if (v == NULL || smtp_xtext_decode(v, vlen, envid, sizeof(envid)) < 0)
				return "501 5.5.4 ENVID must be xtext of at most 100 characters";
			free(t->envid);
			t->envid = xstrdup(envid);
		} else if (param_is(key, klen, "AUTH")) {
			/* RFC 4954 5: who sent it originally; we trust our own
			 * AUTH only, so it is checked for form and dropped. */
			char who[SMTP_PATH_MAX + 1];
			if (v == NULL || (!value_is(v, vlen, "<>") && smtp_xtext_decode(v, vlen, who, sizeof(who)) < 0))
				return "501 5.5.4 Syntax: AUTH=xtext";
		} else {
			return "555 5.5.4 Unsupported MAIL parameter";
		}
	}
	return NULL;
}

enum session_effect smtp_cmd_mail(struct smtp_session *sm, const char *args)
{
	const struct config *cfg = session_config(sm->s);
	struct smtp_txn *t = &sm->txn;
	struct smtp_path path;
	const char *params, *error;

	if (sm->state == SMTP_STATE_GREETED)
		return smtp_error(sm, "503 5.5.1 Send EHLO or HELO first");
	if (t->active)
		return smtp_error(sm, "503 5.5.1 Nested MAIL command");
	if (sm->submission && sm->auth_user == NULL)
		return smtp_error(sm, "530 5.7.0 Authentication required");
	if (sm->be == NULL)
		return smtp_error(sm, "451 4.3.0 Mail is not accepted here now");
	if (smtp_parse_path(args, "FROM:", sm->submission, true, true, &path, &params, &error) < 0) {
		char reply[128];
		snprintf(reply, sizeof(reply), "501 %s", error);
		return smtp_error(sm, reply);
	}
	error = smtp_mail_params(sm, params);
	if (error == NULL && path.utf8 && !t->smtputf8)
		error = "553 5.6.7 Non-ASCII address without SMTPUTF8";
	if (error == NULL && t->declared_size > cfg->message_size_max)
		error = "552 5.3.4 Message size exceeds fixed maximum message size";
	if (error != NULL) {
		smtp_txn_reset(sm);
		return smtp_error(sm, error);
	}
	if (sm->submission && cfg->submission_check_sender && !path.null) {
		int owned = sm->be->sender_owned(sm->be->ctx, sm->auth_user, path.address);
		if (owned <= 0) {
			smtp_txn_reset(sm);
			if (owned < 0) {
				session_reply(sm->s, "451 4.3.0 Local error in processing, try again later\r\n");
				return SESSION_EFFECT_NONE;
			}
			return smtp_error(sm, "553 5.7.1 Sender address is not owned by the authenticated user");
		}
	}
	t->active = true;
	snprintf(t->sender, sizeof(t->sender), "%s", path.null ? "" : path.address);
	smtp_new_id(sm);
	session_reply(sm->s, "250 2.1.0 Sender OK\r\n");
	return SESSION_EFFECT_NONE;
}

/* RCPT parameters: RFC 3461 NOTIFY and ORCPT. */
static const char *smtp_rcpt_params(struct smtp_session *sm, const char *params, struct smtp_rcpt *r)
{
	const char *key, *v;
	size_t klen, vlen;

	while (smtp_param_next(&params, &key, &klen, &v, &vlen)) {
		if (!sm->esmtp)
			return "555 5.5.4 Parameters need EHLO";
		if (param_is(key, klen, "NOTIFY")) {
			if (v == NULL || vlen == 0)
				return "501 5.5.4 Syntax: NOTIFY=NEVER or SUCCESS,FAILURE,DELAY";
			unsigned notify = 0;
			for (size_t i = 0; i < vlen;) {
				size_t n = 0;
				while (i + n < vlen && v[i + n] != ',')
					n++;
				if (value_is(v + i, n, "NEVER"))
					notify |= SMTP_NOTIFY_NEVER;
				else if (value_is(v + i, n, "SUCCESS"))
					notify |= SMTP_NOTIFY_SUCCESS;
				else if (value_is(v + i, n, "FAILURE"))
					notify |= SMTP_NOTIFY_FAILURE;
				else if (value_is(v + i, n, "DELAY"))
					notify |= SMTP_NOTIFY_DELAY;
				else
					return "501 5.5.4 Syntax: NOTIFY=NEVER or SUCCESS,FAILURE,DELAY";
				i += n + 1;
			}
			/* RFC 3461 4.1: NEVER stands alone. */
			if ((notify & SMTP_NOTIFY_NEVER) && notify != SMTP_NOTIFY_NEVER)
				return "501 5.5.4 NOTIFY=NEVER cannot be combined";
			r->notify = notify;
		} else if (param_is(key, klen, "ORCPT")) {
			char decoded[SMTP_PATH_MAX + 32];
			const char *semi = v ? memchr(v, ';', vlen) : NULL;
			if (semi == NULL || semi == v ||
			    smtp_xtext_decode(semi + 1, vlen - (size_t)(semi + 1 - v), decoded, sizeof(decoded)) < 0)
				return "501 5.5.4 Syntax: ORCPT=addr-type;xtext";
			free(r->orcpt);
			r->orcpt = xasprintf("%.*s;%s", (int)(semi - v), v, decoded);
		} else {
			return "555 5.5.4 Unsupported RCPT parameter";
		}
	}
	return NULL;
}

/* Decide about one parsed recipient; NULL accepts, else the reply. */
static const char *smtp_rcpt_policy(struct smtp_session *sm, struct smtp_path *path, enum smtp_rcpt_status *st_r)
{
	const char *domain = strrchr(path->address, '@');
	bool authenticated = sm->auth_user != NULL;

	/* Routing inside the local part is how relays were once abused:
	 * refuse it outright from strangers, whatever the domain. */
	if ((path->routing_chars || path->address_literal) && !authenticated)
		return "554 5.7.1 Relay access denied";
	if (domain == NULL || path->address_literal || !sm->be->domain_is_local(sm->be->ctx, domain + 1)) {
		if (!authenticated)
			return "554 5.7.1 Relay access denied";
		/* Without a running queue, never accept and drop: say
		 * "later" instead. */
		if (sm->be->can_relay == NULL || !sm->be->can_relay(sm->be->ctx))
			return "451 4.3.2 Delivery to other domains is not available now, try again later";
		*st_r = SMTP_RCPT_REMOTE;
		return NULL;
	}
	*st_r = sm->be->rcpt_check(sm->be->ctx, path->address);
	switch (*st_r) {
	case SMTP_RCPT_LOCAL:
		return NULL;
	case SMTP_RCPT_UNKNOWN:
		return "550 5.1.1 No such user here";
	case SMTP_RCPT_FORWARD:
		if (sm->be->can_relay != NULL && sm->be->can_relay(sm->be->ctx))
			return NULL;
		return "451 4.3.2 Forwarding to other domains is not available now, try again later";
	case SMTP_RCPT_FULL:
		return "452 4.2.2 Mailbox full";
	case SMTP_RCPT_REMOTE:
		return "554 5.7.1 Relay access denied";
	default:
		return "451 4.3.0 Local error in processing, try again later";
	}
}

enum session_effect smtp_cmd_rcpt(struct smtp_session *sm, const char *args)
{
	const struct config *cfg = session_config(sm->s);
	struct smtp_txn *t = &sm->txn;
	struct smtp_path path;
	struct smtp_rcpt r = { 0 };
	const char *params, *error;
	char reply[160];

	if (!t->active)
		return smtp_error(sm, "503 5.5.1 Need MAIL command first");
	if (t->bdat)
		return smtp_error(sm, "503 5.5.1 RCPT after BDAT");
	t->rcpt_tried = true;
	if (t->n_rcpts >= cfg->smtp_max_recipients) {
		/* RFC 5321 4.5.3.1.10: 452, and the client sends the rest later. */
		session_reply(sm->s, "452 4.5.3 Too many recipients\r\n");
		return SESSION_EFFECT_NONE;
	}
	if (smtp_parse_path(args, "TO:", sm->submission, false, true, &path, &params, &error) < 0) {
		snprintf(reply, sizeof(reply), "501 %s", error);
		return smtp_error(sm, reply);
	}
	if (path.postmaster && cfg->n_domains > 0)
		snprintf(path.address, sizeof(path.address), "postmaster@%s", cfg->domains[0]);
	error = smtp_rcpt_params(sm, params, &r);
	if (error == NULL && path.utf8 && !t->smtputf8)
		error = "553 5.6.7 Non-ASCII address without SMTPUTF8";
	enum smtp_rcpt_status st = SMTP_RCPT_TEMPFAIL;
	if (error == NULL)
		error = smtp_rcpt_policy(sm, &path, &st);
	if (error != NULL) {
		free(r.orcpt);
		log_info("smtp %" PRIu64 ": rcpt refused id=%s client=%s from=<%s> to=<%s>: %s", session_id(sm->s),
			 t->id, session_peer(sm->s), t->sender, path.address, error);
		/* Temporary answers are not the client's fault. */
		if (error[0] == '4') {
			session_reply(sm->s, "%s\r\n", error);
			return SESSION_EFFECT_NONE;
		}
		return smtp_error(sm, error);
	}
	for (size_t i = 0; i < t->n_rcpts; i++) {
		if (strcmp(t->rcpts[i].address, path.address) == 0) {
			free(r.orcpt); /* the same recipient twice gets one copy */
			session_reply(sm->s, "250 2.1.5 Recipient OK\r\n");
			return SESSION_EFFECT_NONE;
		}
	}
	r.address = xstrdup(path.address);
	r.status = st;
	t->rcpts = xrealloc(t->rcpts, (t->n_rcpts + 1) * sizeof(*t->rcpts));
	t->rcpts[t->n_rcpts++] = r;
	session_reply(sm->s, "250 2.1.5 Recipient OK\r\n");
	return SESSION_EFFECT_NONE;
}

/* Open the spool and write our trace headers in front of the content. */
static int smtp_content_begin(struct smtp_session *sm)
{
	struct smtp_txn *t = &sm->txn;
	struct buf hdr;

	t->spool = sm->be->spool_open(sm->be->ctx, t->id);
	if (t->spool == NULL)
		return -1;
	struct smtp_received rv = {
		.helo = sm->helo,
		.peer = session_peer(sm->s),
		.by = smtp_hostname(sm),
		.esmtp = sm->esmtp,
		.tls = session_tls_active(sm->s),
		.auth = sm->auth_user != NULL,
		.utf8 = t->smtputf8,
		.tls_version = session_tls_version(sm->s),
		.tls_cipher = session_tls_cipher(sm->s),
		.auth_user = sm->auth_user,
		.id = t->id,
		.sender = t->sender,
		.for_rcpt = t->n_rcpts == 1 ? t->rcpts[0].address : NULL,
		.when = time(NULL),
	};
	buf_init(&hdr, 4096);
	smtp_received_write(&hdr, &rv);
	int rc = sm->be->spool_write(t->spool, buf_ptr(&hdr), buf_len(&hdr));
	buf_free(&hdr);
	return rc;
}

/* Content after our headers: counted against the limit, then spooled. */
static void smtp_content(struct smtp_session *sm, const char *data, size_t len)
{
	struct smtp_txn *t = &sm->txn;

	if (t->too_big || t->spool_failed || t->line_too_long || len == 0)
		return;
	if (sm->be->spool_write(t->spool, data, len) < 0)
		t->spool_failed = true;
}

static void smtp_count(struct smtp_session *sm, uint64_t octets)
{
	struct smtp_txn *t = &sm->txn;

	t->size += octets;
	if (t->size > session_config(sm->s)->message_size_max && !t->too_big) {
		t->too_big = true;
		/* Nothing more will be written: give the disk back now. */
		sm->be->spool_discard(t->spool);
		t->spool = NULL;
	}
}

enum session_effect smtp_cmd_data(struct smtp_session *sm, const char *args)
{
	struct smtp_txn *t = &sm->txn;

	if (*args != '\0')
		return smtp_error(sm, "501 5.5.4 Syntax: DATA");
	if (!t->active)
		return smtp_error(sm, "503 5.5.1 Need MAIL command first");
	if (t->bdat)
		return smtp_error(sm, "503 5.5.1 DATA cannot follow BDAT");
	if (t->n_rcpts == 0)
		return smtp_error(sm, t->rcpt_tried ? "554 5.5.1 No valid recipients"
						    : "503 5.5.1 Need RCPT command first");
	if (smtp_content_begin(sm) < 0) {
		smtp_txn_reset(sm);
		session_reply(sm->s, "451 4.3.0 Local error in processing, try again later\r\n");
		return SESSION_EFFECT_NONE;
	}
	t->first_line = true;
	sm->state = SMTP_STATE_DATA;
	session_set_line_max(sm->s, session_config(sm->s)->smtp_data_line_max);
	session_reply(sm->s, "354 End data with <CR><LF>.<CR><LF>\r\n");
	return SESSION_EFFECT_NONE;
}

static void smtp_log_message(struct smtp_session *sm, const char *outcome, const char *const *outcomes,
			     uint64_t durable_ms)
{
	struct smtp_txn *t = &sm->txn;
	struct buf rc;
	const char *tls = session_tls_version(sm->s);

	buf_init(&rc, 64 * 1024);
	for (size_t i = 0; i < t->n_rcpts; i++)
		buf_printf(&rc, "%s<%s>=%s", i ? "," : "", t->rcpts[i].address, outcomes ? outcomes[i] : outcome);
	buf_append(&rc, "", 1);
	log_info("smtp %" PRIu64 ": message id=%s client=%s helo=%s from=<%s> rcpts=%s size=%" PRIu64
		 " tls=%s%s%s user=%s%s result=%s durable_ms=%" PRIu64,
		 session_id(sm->s), t->id, session_peer(sm->s), sm->helo, t->sender, buf_ptr(&rc), t->size,
		 tls ? tls : "no", tls ? "/" : "", tls ? session_tls_cipher(sm->s) : "",
		 sm->auth_user ? sm->auth_user : "-", t->bare_lf ? " bare_lf=yes" : "", outcome, durable_ms);
	buf_free(&rc);
}

static void smtp_deliver_done(void *arg, const struct smtp_deliver_result *r)
{
	struct smtp_session *sm = arg;
	static const char *const names[] = {
		[SMTP_DELIVERED] = "delivered", [SMTP_DELIVER_TEMPFAIL] = "tempfail",
		[SMTP_DELIVER_FULL] = "over-quota", [SMTP_DELIVER_TOO_BIG] = "too-big-for-quota",
	};

	sm->deliver_handle = NULL;
	sm->deliver_busy = false;
	smtp_log_message(sm, names[r->status], r->outcomes, r->durable_ms);
	switch (r->status) {
	case SMTP_DELIVERED:
		session_reply(sm->s, "250 2.0.0 Message accepted for delivery, id=%s\r\n", sm->txn.id);
		break;
	case SMTP_DELIVER_TEMPFAIL:
		session_reply(sm->s, "451 4.3.0 Local error in processing, try again later (id=%s)\r\n",
			      sm->txn.id);
		break;
	case SMTP_DELIVER_FULL:
		session_reply(sm->s, "452 4.2.2 Mailbox full, try again later (id=%s)\r\n", sm->txn.id);
		break;
	case SMTP_DELIVER_TOO_BIG:
		session_reply(sm->s, "552 5.2.2 Message exceeds the mailbox quota (id=%s)\r\n", sm->txn.id);
		break;
	}
	smtp_txn_reset(sm);
	sm->state = SMTP_STATE_READY;
	session_resume(sm->s, SESSION_EFFECT_NONE);
}

/* The whole message is in: refuse it, or hand it to the backend and wait
 * until it is durable (contract 3) before answering. */
static enum session_effect smtp_content_end(struct smtp_session *sm)
{
	const struct config *cfg = session_config(sm->s);
	struct smtp_txn *t = &sm->txn;
	const char *refusal = NULL;
	char reply[128];

	if (sm->state == SMTP_STATE_DATA)
		session_set_line_max(sm->s, cfg->smtp_line_max);
	sm->state = SMTP_STATE_READY;
	if (t->too_big) {
		refusal = "552 5.3.4 Message size exceeds fixed maximum message size";
	} else if (t->line_too_long) {
		snprintf(reply, sizeof(reply), "550 5.6.0 Message has a line longer than %zu octets",
			 cfg->smtp_data_line_max);
		refusal = reply;
	} else if (t->spool_failed) {
		refusal = "451 4.3.0 Local error in processing, try again later";
	}
	if (refusal != NULL) {
		smtp_log_message(sm, refusal, NULL, 0);
		session_reply(sm->s, "%s\r\n", refusal);
		smtp_txn_reset(sm);
		return SESSION_EFFECT_NONE;
	}
	struct smtp_envelope env = {
		.id = t->id,
		.sender = t->sender,
		.rcpts = t->rcpts,
		.n_rcpts = t->n_rcpts,
		.ret = t->ret,
		.envid = t->envid,
		.smtputf8 = t->smtputf8,
		.eightbit = t->eightbit,
		.auth_user = sm->auth_user,
		.size = t->size,
	};
	void *spool = t->spool;
	t->spool = NULL; /* the backend's now, whatever happens */
	/* Busy before the call: a backend may answer before it returns. */
	sm->state = SMTP_STATE_BUSY;
	sm->deliver_busy = true;
	void *handle = sm->be->deliver_start(sm->be->ctx, spool, &env, smtp_deliver_done, sm);
	if (handle == NULL) {
		sm->deliver_busy = false;
		sm->state = SMTP_STATE_READY;
		smtp_log_message(sm, "tempfail", NULL, 0);
		session_reply(sm->s, "451 4.3.0 Local error in processing, try again later\r\n");
		smtp_txn_reset(sm);
		return SESSION_EFFECT_NONE;
	}
	if (sm->deliver_busy)
		sm->deliver_handle = handle; /* else it finished already */
	return SESSION_EFFECT_WAIT;
}

enum session_effect smtp_data_line(struct smtp_session *sm, const char *line, size_t len)
{
	struct smtp_txn *t = &sm->txn;
	bool bare = session_line_bare_lf(sm->s);
	bool prev_bare = !t->first_line && session_prev_line_bare_lf(sm->s);

	session_trace_client_body(sm->s, len + 2);
	if (len == 1 && line[0] == '.' && !bare && !prev_bare)
		return smtp_content_end(sm);
	t->first_line = false;
	if (bare)
		t->bare_lf = true;
	smtp_count(sm, len + 2);
	/* RFC 5321 4.5.2: a leading dot was doubled by the client. A lone
	 * "." that did not end the message is kept as it is. */
	if (len > 1 && line[0] == '.') {
		line++;
		len--;
	}
	smtp_content(sm, line, len);
	smtp_content(sm, "\n", 1);
	return SESSION_EFFECT_NONE;
}

enum session_effect smtp_data_too_long(struct smtp_session *sm)
{
	sm->txn.line_too_long = true;
	sm->txn.first_line = false;
	return SESSION_EFFECT_NONE;
}

/* "BDAT size [LAST]" (RFC 3030 2). */
static int smtp_bdat_parse(const char *args, uint64_t *size_r, bool *last_r)
{
	size_t n = strcspn(args, " ");

	if (!parse_u64(args, n, size_r))
		return -1;
	const char *rest = args + n;
	if (*rest == '\0') {
		*last_r = false;
		return 0;
	}
	if (strcasecmp(rest, " LAST") == 0) {
		*last_r = true;
		return 0;
	}
	return -1;
}

static enum session_effect smtp_bdat_chunk_end(struct smtp_session *sm)
{
	struct smtp_txn *t = &sm->txn;

	sm->state = t->bdat_state;
	if (t->bdat_refused) {
		t->bdat_refused = false;
		if (sm->state == SMTP_STATE_GREETED)
			return smtp_error(sm, "503 5.5.1 Send EHLO or HELO first");
		return smtp_error(sm, t->active ? "503 5.5.1 Need RCPT command first"
						: "503 5.5.1 Need MAIL command first");
	}
	if (t->bdat_last) {
		if (t->bdat_cr) {
			smtp_content(sm, "\r", 1);
			t->bdat_cr = false;
		}
		return smtp_content_end(sm);
	}
	if (t->too_big) {
		/* RFC 3030 2: the transaction fails at the first refused chunk. */
		smtp_log_message(sm, "too-big", NULL, 0);
		session_reply(sm->s, "552 5.3.4 Message size exceeds fixed maximum message size\r\n");
		smtp_txn_reset(sm);
		return SESSION_EFFECT_NONE;
	}
	session_reply(sm->s, "250 2.0.0 %" PRIu64 " octets received\r\n", t->bdat_chunk);
	return SESSION_EFFECT_NONE;
}

enum session_effect smtp_cmd_bdat(struct smtp_session *sm, const char *args)
{
	struct smtp_txn *t = &sm->txn;
	uint64_t size;
	bool last;

	if (smtp_bdat_parse(args, &size, &last) < 0) {
		/* Without a size we cannot know where the chunk ends: the
		 * dialogue is lost (RFC 3030 3). */
		session_reply(sm->s, "501 5.5.4 Syntax: BDAT size [LAST]\r\n");
		session_reply(sm->s, "421 4.7.0 %s Closing connection\r\n", smtp_hostname(sm));
		return SESSION_EFFECT_CLOSE;
	}
	t->bdat_chunk = size;
	t->bdat_last = last;
	t->bdat_state = sm->state;
	if (sm->state == SMTP_STATE_GREETED || !t->active || t->n_rcpts == 0) {
		/* The chunk is read and dropped, then refused. */
		t->bdat_refused = true;
	} else if (!t->bdat) {
		if (smtp_content_begin(sm) < 0)
			t->spool_failed = true;
		t->bdat = true;
	}
	if (size == 0)
		return smtp_bdat_chunk_end(sm);
	sm->state = SMTP_STATE_BDAT;
	session_expect_bytes(sm->s, size);
	return SESSION_EFFECT_NONE;
}

enum session_effect smtp_bdat_bytes(struct smtp_session *sm, const char *data, size_t len)
{
	struct smtp_txn *t = &sm->txn;

	session_trace_client_body(sm->s, len);
	if (!t->bdat_refused) {
		smtp_count(sm, len);
		/* BDAT content is not dot-stuffed; only CRLF becomes LF for
		 * the store, also when a chunk ends between CR and LF. */
		const char *p = data, *end = data + len;
		if (t->bdat_cr && p < end) {
			if (*p != '\n')
				smtp_content(sm, "\r", 1); /* a lone CR, kept */
			t->bdat_cr = false;
		}
		while (p < end) {
			const char *cr = memchr(p, '\r', (size_t)(end - p));
			if (cr == NULL) {
				smtp_content(sm, p, (size_t)(end - p));
				break;
			}
			smtp_content(sm, p, (size_t)(cr - p));
			if (cr + 1 == end) {
				t->bdat_cr = true;
				break;
			}
			if (cr[1] != '\n')
				smtp_content(sm, "\r", 1);
			p = cr + 1;
		}
	}
	t->bdat_seen += len;
	if (t->bdat_seen < t->bdat_chunk)
		return SESSION_EFFECT_NONE;
	t->bdat_seen = 0;
	return smtp_bdat_chunk_end(sm);
}
