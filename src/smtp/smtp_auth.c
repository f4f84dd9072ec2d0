/*
 * SMTP AUTH (RFC 4954) with PLAIN and LOGIN, on the submission ports only,
 * and only under TLS unless the config allows plaintext from loopback
 * (DESIGN contract 7). The password check runs in the backend (off the
 * loop); the session waits for it with SESSION_EFFECT_WAIT.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/xalloc.h"
#include "smtp/smtp_private.h"

void smtp_auth_reset(struct smtp_session *sm)
{
	sasl_login_free(&sm->login);
	if (sm->auth_handle != NULL) {
		sm->be->auth_cancel(sm->be->ctx, sm->auth_handle);
		sm->auth_handle = NULL;
	}
}

static void smtp_auth_done(void *arg, enum auth_result result, const char *account)
{
	struct smtp_session *sm = arg;
	enum session_effect then = SESSION_EFFECT_NONE;

	sm->auth_handle = NULL;
	sm->auth_busy = false;
	sm->state = SMTP_STATE_READY;
	switch (result) {
	case AUTH_OK:
		sm->auth_user = xstrdup(account);
		session_reply(sm->s, "235 2.7.0 Authentication successful\r\n");
		break;
	case AUTH_FAIL:
		then = smtp_error(sm, "535 5.7.8 Authentication credentials invalid");
		break;
	case AUTH_LOCKED:
		then = smtp_error(sm, "454 4.7.0 Too many failed logins, try again later");
		break;
	case AUTH_TEMPFAIL:
		session_reply(sm->s, "454 4.7.0 Temporary authentication failure\r\n");
		break;
	}
	session_resume(sm->s, then);
}

/* Hand the credentials to the backend; the reply comes in smtp_auth_done. */
static enum session_effect smtp_auth_check(struct smtp_session *sm, struct sasl_credentials *cred)
{
	/* Busy before the call: a backend may answer before it returns. */
	sm->state = SMTP_STATE_BUSY;
	sm->auth_busy = true;
	void *handle = sm->be->auth_start(sm->be->ctx, cred->user, cred->password, session_peer(sm->s),
					  smtp_auth_done, sm);
	sasl_credentials_wipe(cred);
	sasl_login_free(&sm->login);
	if (handle == NULL) {
		sm->auth_busy = false;
		sm->state = SMTP_STATE_READY;
		return smtp_error(sm, "535 5.7.8 Authentication credentials invalid");
	}
	if (sm->auth_busy)
		sm->auth_handle = handle; /* else it finished already */
	return SESSION_EFFECT_WAIT;
}

static enum session_effect smtp_auth_sasl_error(struct smtp_session *sm, enum sasl_error err)
{
	sasl_login_free(&sm->login);
	sm->state = SMTP_STATE_READY;
	if (err == SASL_ERR_CANCELLED)
		return smtp_error(sm, "501 5.7.0 Authentication cancelled");
	if (err == SASL_ERR_BASE64)
		return smtp_error(sm, "501 5.5.2 Cannot decode response");
	/* A well-formed response with an empty or foreign identity is a
	 * failed login, as a wrong password is. */
	return smtp_error(sm, "535 5.7.8 Authentication credentials invalid");
}

static enum session_effect smtp_auth_plain(struct smtp_session *sm, const char *resp, size_t len)
{
	struct sasl_credentials cred;
	enum sasl_error err = sasl_plain_decode(resp, len, &cred);

	if (err != SASL_OK)
		return smtp_auth_sasl_error(sm, err);
	return smtp_auth_check(sm, &cred);
}

static enum session_effect smtp_auth_login_step(struct smtp_session *sm, enum sasl_step step,
						const char *challenge, enum sasl_error err)
{
	if (step == SASL_STEP_ERROR)
		return smtp_auth_sasl_error(sm, err);
	if (step == SASL_STEP_NEED_MORE) {
		sm->state = SMTP_STATE_AUTH;
		session_reply(sm->s, "334 %s\r\n", challenge);
		return SESSION_EFFECT_NONE;
	}
	struct sasl_credentials cred = *sasl_login_credentials(sm->login);
	return smtp_auth_check(sm, &cred);
}

enum session_effect smtp_cmd_auth(struct smtp_session *sm, const char *args)
{
	if (!sm->submission)
		return smtp_error(sm, "502 5.5.1 AUTH is offered on the submission ports only");
	if (sm->state == SMTP_STATE_GREETED || !sm->esmtp)
		return smtp_error(sm, "503 5.5.1 Send EHLO first");
	if (sm->auth_user != NULL)
		return smtp_error(sm, "503 5.5.1 Already authenticated");
	if (sm->txn.active)
		return smtp_error(sm, "503 5.5.1 AUTH is not allowed during a mail transaction");
	if (!smtp_auth_allowed(sm))
		return smtp_error(sm, "538 5.7.11 Encryption required for requested authentication mechanism");

	size_t mlen = strcspn(args, " ");
	const char *ir = args + mlen;
	while (*ir == ' ')
		ir++;
	bool has_ir = *ir != '\0';

	if (mlen == 5 && strncasecmp(args, "PLAIN", 5) == 0) {
		if (has_ir)
			return smtp_auth_plain(sm, ir, strlen(ir));
		sm->auth_plain = true;
		sm->state = SMTP_STATE_AUTH;
		session_reply(sm->s, "334 \r\n");
		return SESSION_EFFECT_NONE;
	}
	if (mlen == 5 && strncasecmp(args, "LOGIN", 5) == 0) {
		const char *challenge = NULL;
		enum sasl_error err = SASL_OK;
		sm->auth_plain = false;
		sm->login = sasl_login_new();
		enum sasl_step step = sasl_login_begin(sm->login, has_ir ? ir : NULL, has_ir ? strlen(ir) : 0,
						       &challenge, &err);
		return smtp_auth_login_step(sm, step, challenge, err);
	}
	return smtp_error(sm, "504 5.5.4 Unrecognized authentication mechanism");
}

enum session_effect smtp_auth_response(struct smtp_session *sm, const char *line, size_t len)
{
	if (sm->auth_plain)
		return smtp_auth_plain(sm, line, len);
	const char *challenge = NULL;
	enum sasl_error err = SASL_OK;
	enum sasl_step step = sasl_login_feed(sm->login, line, len, &challenge, &err);
	return smtp_auth_login_step(sm, step, challenge, err);
}
