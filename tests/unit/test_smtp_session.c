/* The SMTP session (src/smtp) as a state machine: every command and reply
 * path, driven through the sans-I/O session driver with a fake backend that
 * keeps the spool in memory and answers lookups from small tables.
 *
 * Dialogues are fed whole, split in two at every byte boundary, and one byte
 * at a time; the replies and the stored message must not depend on how the
 * bytes arrived. Message ids contain the time, so replies are compared with
 * every "id=..." replaced by "id=ID". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "auth/base64.h"
#include "core/log.h"
#include "core/session.h"
#include "core/trace.h"
#include "core/xalloc.h"
#include "smtp/smtp_backend.h"
#include "smtp/smtp_session.h"
#include "testutil.h"

static struct config cfg;

/* ------------------------------------------------------------------ */
/* The fake backend                                                    */

#define FAKE_MAX_MSGS 8

/* One message as deliver_start saw it: the envelope copied, the spool's
 * bytes exactly as the session wrote them. */
struct fake_msg {
	char *id, *sender, *envid, *auth_user;
	struct smtp_rcpt *rcpts;
	size_t n_rcpts;
	enum smtp_ret ret;
	bool smtputf8, eightbit;
	uint64_t size;
	char *data;
	size_t len;
};

struct fake_spool {
	char *data;
	size_t len;
};

/* How the fake behaves; kept across fake_clear(). */
struct fake_knobs {
	bool auto_complete;                    /* drive(): finish every wait at once */
	enum smtp_deliver_status auto_status;  /* ... with this delivery status */
	bool auth_sync;                        /* call the auth callback inside auth_start */
	bool deliver_sync;                     /* call the delivery callback inside deliver_start */
	bool spool_open_fail;
	size_t spool_write_limit;              /* > 0: writes past this many bytes fail */
	bool deliver_start_fail;
	bool can_relay;                        /* the outbound queue runs */
};

struct fake {
	struct smtp_backend be;
	struct fake_knobs k;

	int spools_open, spools_opened, spools_discarded;
	int rcpt_checks;
	char last_rcpt[600];
	int owned_calls;
	char owned_account[300], owned_address[600];

	int auth_calls, auth_cancels, stale_cancels;
	char auth_user[300], auth_password[1100];
	bool auth_pending;
	auth_login_cb auth_cb;
	void *auth_arg;
	void *auth_handle;
	enum auth_result auth_result;

	int deliver_calls, deliver_cancels;
	bool deliver_pending;
	smtp_deliver_cb deliver_cb;
	void *deliver_arg;
	void *deliver_handle;
	struct fake_msg msgs[FAKE_MAX_MSGS];
	size_t n_msgs;

	char handles[64];
	unsigned next_handle;
};

static struct fake fk;

static const struct {
	const char *address;
	enum smtp_rcpt_status status;
} fake_rcpts[] = {
	{ "alice@example.test", SMTP_RCPT_LOCAL },
	{ "bob@example.test", SMTP_RCPT_LOCAL },
	{ "carol@example.test", SMTP_RCPT_LOCAL },
	{ "user@example.test", SMTP_RCPT_LOCAL },
	{ "postmaster@example.test", SMTP_RCPT_LOCAL },
	{ "j\xc3\xb6rg@example.test", SMTP_RCPT_LOCAL },
	{ "full@example.test", SMTP_RCPT_FULL },
	{ "fwd@example.test", SMTP_RCPT_FORWARD },
	{ "tempfail@example.test", SMTP_RCPT_TEMPFAIL },
};

static const struct {
	const char *account, *address;
} fake_owned[] = {
	{ "alice@example.test", "alice@example.test" },
	{ "alice@example.test", "alias@example.test" },
	{ "alice@example.test", "j\xc3\xb6rg@example.test" },
};

static void *fake_handle(struct fake *f)
{
	return &f->handles[f->next_handle++ % sizeof(f->handles)];
}

static bool fake_can_relay(void *ctx)
{
	struct fake *f = ctx;
	return f->k.can_relay;
}

static bool fake_domain_is_local(void *ctx, const char *domain)
{
	(void)ctx;
	return strcasecmp(domain, "example.test") == 0;
}

static enum smtp_rcpt_status fake_rcpt_check(void *ctx, const char *address)
{
	struct fake *f = ctx;
	f->rcpt_checks++;
	snprintf(f->last_rcpt, sizeof(f->last_rcpt), "%s", address);
	for (size_t i = 0; i < sizeof(fake_rcpts) / sizeof(fake_rcpts[0]); i++) {
		if (strcasecmp(address, fake_rcpts[i].address) == 0)
			return fake_rcpts[i].status;
	}
	const char *at = strrchr(address, '@');
	return at != NULL && fake_domain_is_local(ctx, at + 1) ? SMTP_RCPT_UNKNOWN : SMTP_RCPT_REMOTE;
}

static int fake_sender_owned(void *ctx, const char *account, const char *address)
{
	struct fake *f = ctx;
	f->owned_calls++;
	snprintf(f->owned_account, sizeof(f->owned_account), "%s", account);
	snprintf(f->owned_address, sizeof(f->owned_address), "%s", address);
	if (strcmp(address, "dberror@example.test") == 0)
		return -1;
	for (size_t i = 0; i < sizeof(fake_owned) / sizeof(fake_owned[0]); i++) {
		if (strcmp(account, fake_owned[i].account) == 0 && strcasecmp(address, fake_owned[i].address) == 0)
			return 1;
	}
	return 0;
}

static void fake_auth_finish(struct fake *f)
{
	ck_assert(f->auth_pending);
	f->auth_pending = false;
	f->auth_handle = NULL;
	f->auth_cb(f->auth_arg, f->auth_result, f->auth_result == AUTH_OK ? "alice@example.test" : NULL);
}

/* alice@example.test / secret logs in; locked@ and tempfail@ answer so;
 * null@ cannot even start (NULL); anything else is a wrong password. */
static void *fake_auth_start(void *ctx, const char *user, const char *password, const char *peer,
			     auth_login_cb cb, void *arg)
{
	struct fake *f = ctx;
	(void)peer;
	ck_assert(!f->auth_pending);
	f->auth_calls++;
	snprintf(f->auth_user, sizeof(f->auth_user), "%s", user);
	snprintf(f->auth_password, sizeof(f->auth_password), "%s", password);
	if (strcmp(user, "null@example.test") == 0)
		return NULL;
	if (strcasecmp(user, "alice@example.test") == 0 && strcmp(password, "secret") == 0)
		f->auth_result = AUTH_OK;
	else if (strcmp(user, "locked@example.test") == 0)
		f->auth_result = AUTH_LOCKED;
	else if (strcmp(user, "tempfail@example.test") == 0)
		f->auth_result = AUTH_TEMPFAIL;
	else
		f->auth_result = AUTH_FAIL;
	f->auth_pending = true;
	f->auth_cb = cb;
	f->auth_arg = arg;
	void *h = fake_handle(f);
	f->auth_handle = h;
	if (f->k.auth_sync)
		fake_auth_finish(f);
	return h;
}

static void fake_auth_cancel(void *ctx, void *handle)
{
	struct fake *f = ctx;
	f->auth_cancels++;
	if (!f->auth_pending || handle != f->auth_handle) {
		f->stale_cancels++;
		return;
	}
	f->auth_pending = false;
	f->auth_handle = NULL;
}

static void *fake_spool_open(void *ctx, const char *id)
{
	struct fake *f = ctx;
	ck_assert(id != NULL && *id != '\0');
	if (f->k.spool_open_fail)
		return NULL;
	f->spools_open++;
	f->spools_opened++;
	return xcalloc(1, sizeof(struct fake_spool));
}

static int fake_spool_write(void *spool, const void *data, size_t len)
{
	struct fake_spool *sp = spool;
	ck_assert_ptr_nonnull(sp);
	if (fk.k.spool_write_limit > 0 && sp->len + len > fk.k.spool_write_limit)
		return -1;
	sp->data = xrealloc(sp->data, sp->len + len + 1);
	memcpy(sp->data + sp->len, data, len);
	sp->len += len;
	sp->data[sp->len] = '\0';
	return 0;
}

static void fake_spool_free(struct fake *f, struct fake_spool *sp)
{
	if (sp == NULL)
		return;
	f->spools_open--;
	free(sp->data);
	free(sp);
}

static void fake_spool_discard(void *spool)
{
	if (spool == NULL)
		return;
	fk.spools_discarded++;
	fake_spool_free(&fk, spool);
}

static void fake_deliver_finish(struct fake *f, enum smtp_deliver_status status)
{
	static const char *const outcome[] = {
		[SMTP_DELIVERED] = "delivered", [SMTP_DELIVER_TEMPFAIL] = "tempfail",
		[SMTP_DELIVER_FULL] = "over-quota", [SMTP_DELIVER_TOO_BIG] = "too-big-for-quota",
	};
	const char *outcomes[128];
	ck_assert(f->deliver_pending);
	ck_assert(f->n_msgs > 0 && f->msgs[f->n_msgs - 1].n_rcpts <= 128);
	for (size_t i = 0; i < f->msgs[f->n_msgs - 1].n_rcpts; i++)
		outcomes[i] = outcome[status];
	struct smtp_deliver_result r = { .status = status, .durable_ms = 3, .outcomes = outcomes };
	f->deliver_pending = false;
	f->deliver_handle = NULL;
	f->deliver_cb(f->deliver_arg, &r);
}

static char *dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

static void *fake_deliver_start(void *ctx, void *spool, const struct smtp_envelope *env, smtp_deliver_cb cb,
				void *arg)
{
	struct fake *f = ctx;
	struct fake_spool *sp = spool;

	ck_assert(!f->deliver_pending);
	ck_assert_ptr_nonnull(sp);
	ck_assert_uint_lt(f->n_msgs, FAKE_MAX_MSGS);
	f->deliver_calls++;
	struct fake_msg *m = &f->msgs[f->n_msgs++];
	m->id = dup_or_null(env->id);
	m->sender = dup_or_null(env->sender);
	m->envid = dup_or_null(env->envid);
	m->auth_user = dup_or_null(env->auth_user);
	m->ret = env->ret;
	m->smtputf8 = env->smtputf8;
	m->eightbit = env->eightbit;
	m->size = env->size;
	m->n_rcpts = env->n_rcpts;
	m->rcpts = xcalloc(env->n_rcpts + 1, sizeof(*m->rcpts));
	for (size_t i = 0; i < env->n_rcpts; i++) {
		m->rcpts[i] = env->rcpts[i];
		m->rcpts[i].address = xstrdup(env->rcpts[i].address);
		m->rcpts[i].orcpt = dup_or_null(env->rcpts[i].orcpt);
	}
	m->data = xmalloc(sp->len + 1);
	if (sp->len > 0)
		memcpy(m->data, sp->data, sp->len);
	m->data[sp->len] = '\0';
	m->len = sp->len;
	fake_spool_free(f, sp); /* the backend takes the spool, also on failure */
	if (f->k.deliver_start_fail)
		return NULL;
	f->deliver_pending = true;
	f->deliver_cb = cb;
	f->deliver_arg = arg;
	void *h = fake_handle(f);
	f->deliver_handle = h;
	if (f->k.deliver_sync)
		fake_deliver_finish(f, f->k.auto_status);
	return h;
}

static void fake_deliver_cancel(void *ctx, void *handle)
{
	struct fake *f = ctx;
	f->deliver_cancels++;
	if (!f->deliver_pending || handle != f->deliver_handle) {
		f->stale_cancels++;
		return;
	}
	f->deliver_pending = false;
	f->deliver_handle = NULL;
}

static void fake_msg_free(struct fake_msg *m)
{
	free(m->id);
	free(m->sender);
	free(m->envid);
	free(m->auth_user);
	for (size_t i = 0; i < m->n_rcpts; i++) {
		free(m->rcpts[i].address);
		free(m->rcpts[i].orcpt);
	}
	free(m->rcpts);
	free(m->data);
	memset(m, 0, sizeof(*m));
}

/* Forget what happened; keep the knobs. */
static void fake_clear(void)
{
	struct fake_knobs k = fk.k;
	for (size_t i = 0; i < fk.n_msgs; i++)
		fake_msg_free(&fk.msgs[i]);
	memset(&fk, 0, sizeof(fk));
	fk.k = k;
	fk.be = (struct smtp_backend){
		.ctx = &fk,
		.can_relay = fake_can_relay,
		.domain_is_local = fake_domain_is_local,
		.rcpt_check = fake_rcpt_check,
		.sender_owned = fake_sender_owned,
		.auth_start = fake_auth_start,
		.auth_cancel = fake_auth_cancel,
		.spool_open = fake_spool_open,
		.spool_write = fake_spool_write,
		.spool_discard = fake_spool_discard,
		.deliver_start = fake_deliver_start,
		.deliver_cancel = fake_deliver_cancel,
	};
}

/* The message content after our Return-Path and Received headers. */
static const char *msg_body(const struct fake_msg *m, size_t *len_r)
{
	const char *p = strstr(m->data, ";\n\t");
	ck_assert_msg(p != NULL, "no Received header end in the spool");
	p = strchr(p + 3, '\n');
	ck_assert_ptr_nonnull(p);
	p++;
	*len_r = m->len - (size_t)(p - m->data);
	return p;
}

/* ------------------------------------------------------------------ */
/* Driving sessions                                                    */

static void setup(void)
{
	config_dev_setup(&cfg);
	free(cfg.domains[0]);
	cfg.domains[0] = xstrdup("example.test");
	log_setup(LOG_LEVEL_ERROR, false, NULL);
	memset(&fk, 0, sizeof(fk));
	fk.k.auto_complete = true;
	fk.k.auto_status = SMTP_DELIVERED;
	fake_clear();
}

static void teardown(void)
{
	fake_clear();
	config_free(&cfg);
}

#define PEER_REMOTE "192.0.2.10"
#define PEER_LOOP "127.0.0.1"
#define TLS_VERSION "TLSv1.3"
#define TLS_CIPHER "TLS_AES_128_GCM_SHA256"

static struct session *smtp_open(enum listener_kind kind, bool loopback)
{
	struct session_params p = {
		.cfg = &cfg, .kind = kind, .id = 42, .peer = loopback ? PEER_LOOP : PEER_REMOTE,
		.peer_loopback = loopback, .tls = listener_kind_implicit_tls(kind), .backend = &fk.be,
	};
	struct session *s = session_new(&smtp_proto, &p);
	if (p.tls)
		session_set_tls(s, TLS_VERSION, TLS_CIPHER);
	session_start(s);
	return s;
}

/* Free the session and check that it left nothing behind in the backend:
 * no spool open, no cancel of a handle that was not running. */
static void smtp_close(struct session **s)
{
	session_free(s);
	ck_assert_ptr_null(*s);
	ck_assert_msg(fk.spools_open == 0, "%d spool(s) left open", fk.spools_open);
	ck_assert_msg(fk.stale_cancels == 0, "%d cancel(s) of a finished or unknown handle", fk.stale_cancels);
	ck_assert_msg(!fk.auth_pending && !fk.deliver_pending, "backend work left running after free");
}

/* Replace every "id=<hex and dots and digits>" by "id=ID". */
static void normalize_ids(char *text)
{
	char *p = text;
	while ((p = strstr(p, "id=")) != NULL) {
		p += 3;
		size_t n = strspn(p, "0123456789abcdef.");
		if (n > 0) {
			memmove(p + 2, p + n, strlen(p + n) + 1);
			memcpy(p, "ID", 2);
		}
	}
}

/* All output so far (caller frees), ids normalized. */
static char *take_output(struct session *s)
{
	struct buf *out = session_output(s);
	char *text = xstrndup(buf_ptr(out), buf_len(out));
	buf_reset(out);
	normalize_ids(text);
	return text;
}

/* A readable copy for failure messages (caller frees; tests that fail
 * leak it, which is fine in a forked test). */
static char *esc(const char *text, size_t len)
{
	char *out = xmalloc(len * 4 + 8);
	trace_escape(text, len, out, len * 4 + 8);
	return out;
}

/* Finish backend work whenever the session waits for it (as the glue's
 * callbacks would), when the knobs say so. */
static enum session_effect settle(struct session *s, enum session_effect e)
{
	while (e == SESSION_EFFECT_WAIT && fk.k.auto_complete) {
		if (fk.auth_pending)
			fake_auth_finish(&fk);
		else if (fk.deliver_pending)
			fake_deliver_finish(&fk, fk.k.auto_status);
		else
			ck_abort_msg("WAIT with no backend work pending");
		ck_assert(session_resumed(s));
		e = session_continue(s);
	}
	return e;
}

static enum session_effect feed_piece(struct session *s, const char *p, size_t n)
{
	char *g = guard_copy(p, n);
	enum session_effect e = session_feed(s, g, n);
	guard_free(g, n);
	return settle(s, e);
}

/* Feed in[0..len) in pieces of at most chunk bytes with an extra cut at
 * split; stop at CLOSE or STARTTLS (the glue stops reading plaintext). */
static enum session_effect feed_chunks(struct session *s, const char *in, size_t len, size_t chunk, size_t split)
{
	enum session_effect e = SESSION_EFFECT_NONE;
	size_t off = 0;

	while (off < len && e != SESSION_EFFECT_CLOSE && e != SESSION_EFFECT_STARTTLS) {
		size_t n = len - off < chunk ? len - off : chunk;
		if (off < split && off + n > split)
			n = split - off;
		e = feed_piece(s, in + off, n);
		off += n;
	}
	return e;
}

static enum session_effect last_e;

/* Feed in whole and return the replies (caller frees); the effect is in last_e. */
static char *io_n(struct session *s, const char *in, size_t len)
{
	last_e = feed_chunks(s, in, len, len ? len : 1, 0);
	return take_output(s);
}

static char *io(struct session *s, const char *in)
{
	return io_n(s, in, strlen(in));
}

#define expect_io(s, in, want) expect_io_at(__LINE__, s, in, want)
static void expect_io_at(int line, struct session *s, const char *in, const char *want)
{
	char *got = io(s, in);
	ck_assert_msg(strcmp(got, want) == 0, "line %d: in %s\n got: %s\nwant: %s", line, esc(in, strlen(in)),
		      esc(got, strlen(got)), esc(want, strlen(want)));
	free(got);
}

static struct session *opened(enum listener_kind kind, bool loopback)
{
	struct session *s = smtp_open(kind, loopback);
	free(take_output(s));
	return s;
}

static char *ehlo_reply(const char *helo, const char *peer, bool starttls, bool auth)
{
	return xasprintf("250-localhost Hello %s [%s]\r\n250-PIPELINING\r\n250-SIZE %zu\r\n%s%s"
			 "250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n250 DSN\r\n",
			 helo, peer, cfg.message_size_max, starttls ? "250-STARTTLS\r\n" : "",
			 auth ? "250-AUTH PLAIN LOGIN\r\n" : "");
}

static void b64(const char *data, size_t len, char *out)
{
	if (base64_encoded_len(len) >= 512)
		abort(); /* called before the tests run: no ck_assert here */
	base64_encode(data, len, out);
}

/* PLAIN for alice@example.test / secret, and LOGIN's two answers. */
static char plain_ok[512], plain_bad[512], login_user[512], login_pass[512];

static void make_secrets(void)
{
	b64("\0alice@example.test\0secret", 26, plain_ok);
	b64("\0alice@example.test\0wrong", 25, plain_bad);
	b64("alice@example.test", 18, login_user);
	b64("secret", 6, login_pass);
}

static char *plain_for(const char *user, const char *pass)
{
	char raw[600], *out = xmalloc(1024);
	size_t u = strlen(user), p = strlen(pass);
	raw[0] = '\0';
	memcpy(raw + 1, user, u);
	raw[1 + u] = '\0';
	memcpy(raw + 2 + u, pass, p);
	base64_encode(raw, 2 + u + p, out);
	return out;
}

/* A session on submission (loopback, plaintext AUTH allowed) or
 * submissions, after EHLO and a successful AUTH PLAIN; output taken. */
static struct session *authed(enum listener_kind kind)
{
	struct session *s = opened(kind, kind == LISTENER_SUBMISSION);
	free(io(s, "EHLO client.test\r\n"));
	char *cmd = xasprintf("AUTH PLAIN %s\r\n", plain_ok);
	expect_io(s, cmd, "235 2.7.0 Authentication successful\r\n");
	free(cmd);
	return s;
}

#define GREETING "220 localhost ESMTP postbote\r\n"
#define R_MAIL "250 2.1.0 Sender OK\r\n"
#define R_RCPT "250 2.1.5 Recipient OK\r\n"
#define R_DATA "354 End data with <CR><LF>.<CR><LF>\r\n"
#define R_QUEUED "250 2.0.0 Message accepted for delivery, id=ID\r\n"
#define R_OKAY "250 2.0.0 OK\r\n"
#define R_BYE "221 2.0.0 localhost Bye\r\n"
#define R_RELAY "554 5.7.1 Relay access denied\r\n"
#define R_LOCAL_ERR "451 4.3.0 Local error in processing, try again later\r\n"

/* Port 25 from a remote client, up to a transaction with one recipient. */
#define EHLO_25 "EHLO client.test\r\n"
#define R_EHLO_25                                                                                            \
	"250-localhost Hello client.test [" PEER_REMOTE "]\r\n250-PIPELINING\r\n250-SIZE 52428800\r\n"       \
	"250-STARTTLS\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n250 DSN\r\n"
#define TXN_25 EHLO_25 "MAIL FROM:<sender@other.test>\r\nRCPT TO:<alice@example.test>\r\n"
#define R_TXN_25 R_EHLO_25 R_MAIL R_RCPT

/* Run a dialogue on a fresh session (after the greeting) whole, split in
 * two at every byte, and bytewise: the replies must be want and the effect
 * at the end want_e every time; with body, exactly one message was handed
 * over and its content (after our headers) is body. */
static void check_splits_n(enum listener_kind kind, bool loopback, const char *in, size_t len, const char *want,
			   enum session_effect want_e, const char *body, size_t body_len)
{
	for (size_t mode = 0; mode <= len; mode++) {
		/* mode 0: whole; 1..len-1: split there; len: bytewise. */
		size_t chunk = mode == len ? 1 : len, split = mode == 0 || mode == len ? 0 : mode;
		fake_clear();
		struct session *s = opened(kind, loopback);
		enum session_effect e = feed_chunks(s, in, len, chunk, split);
		char *got = take_output(s);
		ck_assert_msg(strcmp(got, want) == 0, "in: %s\nmode %zu (0 whole, %zu bytewise, else split)\n got: %s\nwant: %s",
			      esc(in, len), mode, len, esc(got, strlen(got)), esc(want, strlen(want)));
		ck_assert_msg(e == want_e, "mode %zu: effect %d, want %d", mode, e, want_e);
		if (body != NULL) {
			ck_assert_msg(fk.n_msgs == 1, "mode %zu: %zu messages", mode, fk.n_msgs);
			size_t n;
			const char *b = msg_body(&fk.msgs[0], &n);
			ck_assert_msg(n == body_len && memcmp(b, body, n) == 0, "in: %s\nmode %zu\n got: %s\nwant: %s",
				      esc(in, len), mode, esc(b, n), esc(body, body_len));
		}
		free(got);
		smtp_close(&s);
	}
}

static void check_splits(enum listener_kind kind, bool loopback, const char *in, const char *want,
			 enum session_effect want_e, const char *body)
{
	check_splits_n(kind, loopback, in, strlen(in), want, want_e, body, body ? strlen(body) : 0);
}

/* ------------------------------------------------------------------ */
/* Greeting, EHLO and the small commands                               */

START_TEST(greeting_all_kinds)
{
	const enum listener_kind kinds[] = { LISTENER_SMTP, LISTENER_SUBMISSION, LISTENER_SUBMISSIONS };
	for (size_t i = 0; i < 3; i++) {
		struct session *s = smtp_open(kinds[i], false);
		char *g = take_output(s);
		ck_assert_str_eq(g, GREETING);
		free(g);
		smtp_close(&s);
	}
}
END_TEST

START_TEST(ehlo_extensions)
{
	const struct {
		enum listener_kind kind;
		bool loopback, plaintext_loopback, starttls_first;
		bool want_starttls, want_auth;
	} t[] = {
		{ LISTENER_SMTP, false, true, false, true, false },
		{ LISTENER_SMTP, true, true, false, true, false },       /* AUTH never on 25 */
		{ LISTENER_SMTP, false, true, true, false, false },
		{ LISTENER_SUBMISSION, false, true, false, true, false }, /* no AUTH before TLS */
		{ LISTENER_SUBMISSION, true, true, false, true, true },   /* loopback allowed */
		{ LISTENER_SUBMISSION, true, false, false, true, false }, /* ... unless configured off */
		{ LISTENER_SUBMISSION, false, true, true, false, true },
		{ LISTENER_SUBMISSION, false, false, true, false, true },
		{ LISTENER_SUBMISSIONS, false, false, false, false, true },
		{ LISTENER_SUBMISSIONS, true, true, false, false, true },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		cfg.allow_plaintext_auth_loopback = t[i].plaintext_loopback;
		struct session *s = opened(t[i].kind, t[i].loopback);
		if (t[i].starttls_first) {
			expect_io(s, "STARTTLS\r\n", "220 2.0.0 Ready to start TLS\r\n");
			ck_assert_int_eq(last_e, SESSION_EFFECT_STARTTLS);
			ck_assert_int_eq(session_tls_started(s, TLS_VERSION, TLS_CIPHER), SESSION_EFFECT_NONE);
		}
		char *want = ehlo_reply("client.test", t[i].loopback ? PEER_LOOP : PEER_REMOTE, t[i].want_starttls,
					t[i].want_auth);
		char *got = io(s, "EHLO client.test\r\n");
		ck_assert_msg(strcmp(got, want) == 0, "case %zu\n got: %s\nwant: %s", i, got, want);
		free(got);
		free(want);
		smtp_close(&s);
	}
}
END_TEST

START_TEST(ehlo_after_auth_drops_auth)
{
	struct session *s = authed(LISTENER_SUBMISSIONS);
	char *want = ehlo_reply("again.test", PEER_REMOTE, false, false);
	expect_io(s, "EHLO again.test\r\n", want);
	free(want);
	/* Still authenticated after the new EHLO. */
	expect_io(s, "MAIL FROM:<alice@example.test>\r\n", R_MAIL);
	smtp_close(&s);
}
END_TEST

START_TEST(ehlo_helo_syntax)
{
	struct session *s = opened(LISTENER_SMTP, false);
	expect_io(s, "EHLO\r\n", "501 5.5.4 Syntax: EHLO hostname\r\n");
	expect_io(s, "EHLO \r\n", "501 5.5.4 Syntax: EHLO hostname\r\n");
	expect_io(s, "EHLO a\tb\r\n", "501 5.5.4 Syntax: EHLO hostname\r\n");
	expect_io(s, "EHLO h\xc3\xa9llo\r\n", "501 5.5.4 Syntax: EHLO hostname\r\n");
	expect_io(s, "HELO\r\n", "501 5.5.4 Syntax: HELO hostname\r\n");
	/* Still greeted only: MAIL wants EHLO or HELO. */
	expect_io(s, "MAIL FROM:<a@other.test>\r\n", "503 5.5.1 Send EHLO or HELO first\r\n");
	char *want = ehlo_reply("[192.0.2.10]", PEER_REMOTE, true, false);
	expect_io(s, "ehlo [192.0.2.10] trailing words\r\n", want);
	free(want);
	smtp_close(&s);
}
END_TEST

START_TEST(helo_plain_smtp)
{
	struct session *s = opened(LISTENER_SMTP, false);
	expect_io(s, "HELO client.test\r\n", "250 localhost\r\n");
	expect_io(s, "MAIL FROM:<a@other.test> BODY=8BITMIME\r\n", "555 5.5.4 Parameters need EHLO\r\n");
	expect_io(s, "MAIL FROM:<a@other.test>\r\n", R_MAIL);
	expect_io(s, "RCPT TO:<alice@example.test> NOTIFY=NEVER\r\n", "555 5.5.4 Parameters need EHLO\r\n");
	expect_io(s, "RCPT TO:<alice@example.test>\r\nDATA\r\nhi\r\n.\r\n", R_RCPT R_DATA R_QUEUED);
	ck_assert_uint_eq(fk.n_msgs, 1);
	ck_assert_ptr_nonnull(strstr(fk.msgs[0].data, "with SMTP\n"));
	/* AUTH wants EHLO, not HELO. */
	smtp_close(&s);
	s = opened(LISTENER_SUBMISSION, true);
	expect_io(s, "HELO client.test\r\n", "250 localhost\r\n");
	char *cmd = xasprintf("AUTH PLAIN %s\r\n", plain_ok);
	expect_io(s, cmd, "503 5.5.1 Send EHLO first\r\n");
	free(cmd);
	ck_assert_int_eq(fk.auth_calls, 0);
	smtp_close(&s);
}
END_TEST

START_TEST(small_commands)
{
	struct session *s = opened(LISTENER_SMTP, false);
	expect_io(s, "NOOP\r\n", R_OKAY);
	expect_io(s, "noop with args\r\n", R_OKAY);
	expect_io(s, "HELP\r\n", "214-2.0.0 This is postbote " POSTBOTE_VERSION "\r\n"
				 "214-2.0.0 Commands: EHLO HELO STARTTLS AUTH MAIL RCPT DATA BDAT\r\n"
				 "214 2.0.0 RSET NOOP VRFY HELP QUIT\r\n");
	expect_io(s, "VRFY alice\r\n",
		  "252 2.1.5 Cannot VRFY user, but will accept message and attempt delivery\r\n");
	expect_io(s, "VRFY nobody@example.test\r\n",
		  "252 2.1.5 Cannot VRFY user, but will accept message and attempt delivery\r\n");
	expect_io(s, "VRFY\r\n", "501 5.5.4 Syntax: VRFY address\r\n");
	expect_io(s, "EXPN staff\r\n", "502 5.5.1 EXPN not available\r\n");
	expect_io(s, "RSET\r\n", R_OKAY);
	expect_io(s, "RSET now\r\n", "501 5.5.4 Syntax: RSET\r\n");
	ck_assert_int_eq(fk.rcpt_checks, 0); /* VRFY looks nothing up */
	expect_io(s, "QUIT\r\nNOOP\r\n", R_BYE);
	ck_assert_int_eq(last_e, SESSION_EFFECT_CLOSE);
	smtp_close(&s);
}
END_TEST

START_TEST(rset_resets_transaction)
{
	struct session *s = opened(LISTENER_SMTP, false);
	expect_io(s, TXN_25 "RSET\r\nDATA\r\nRCPT TO:<alice@example.test>\r\nMAIL FROM:<b@other.test>\r\n",
		  R_TXN_25 R_OKAY "503 5.5.1 Need MAIL command first\r\n503 5.5.1 Need MAIL command first\r\n" R_MAIL);
	/* RSET keeps the EHLO. */
	expect_io(s, "RSET\r\nMAIL FROM:<c@other.test> SIZE=10\r\n", R_OKAY R_MAIL);
	smtp_close(&s);
}
END_TEST

START_TEST(unknown_nul_and_odd_commands)
{
	static const char in[] = "FOO\r\nN\0OP\r\n NOOP\r\nABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n\r\nNOOP\r\n";
	static const char want[] = "500 5.5.2 Syntax error, command unrecognized\r\n"
				   "500 5.5.2 Syntax error, NUL byte in command\r\n"
				   "500 5.5.2 Syntax error, command unrecognized\r\n"
				   "500 5.5.2 Syntax error, command unrecognized\r\n"
				   "500 5.5.2 Syntax error, command unrecognized\r\n" R_OKAY;
	check_splits_n(LISTENER_SMTP, false, in, sizeof(in) - 1, want, SESSION_EFFECT_NONE, NULL, 0);
}
END_TEST

START_TEST(overlong_command_line)
{
	/* RFC 5321 4.5.3.1.4: 1000 octets with CRLF are fine, 1001 are not. */
	char *line = xmalloc(4000);
	memset(line, 'x', 4000);
	memcpy(line, "NOOP ", 5);
	struct session *s = opened(LISTENER_SMTP, false);

	memcpy(line + 998, "\r\n", 3);
	expect_io(s, line, R_OKAY);
	memcpy(line + 999, "\r\n", 3);
	expect_io(s, line, "500 5.5.2 Line too long\r\n");
	/* Long enough to be refused before its end arrives; what follows the
	 * LF is a command again. */
	memset(line + 5, 'y', 3000);
	memcpy(line + 3005, "\r\nNOOP\r\n", 9);
	expect_io(s, line, "500 5.5.2 Line too long\r\n" R_OKAY);
	free(line);
	smtp_close(&s);
}
END_TEST

START_TEST(too_many_errors_close)
{
	struct session *s = opened(LISTENER_SMTP, false);
	char *out = NULL;
	for (unsigned i = 1; i < cfg.max_bad_commands; i++) {
		expect_io(s, "BOGUS\r\n", "500 5.5.2 Syntax error, command unrecognized\r\n");
		ck_assert_int_eq(last_e, SESSION_EFFECT_NONE);
	}
	out = io(s, "EXPN x\r\nNOOP\r\n");
	ck_assert_str_eq(out, "502 5.5.1 EXPN not available\r\n"
			      "421 4.7.0 localhost Too many errors, closing connection\r\n");
	ck_assert_int_eq(last_e, SESSION_EFFECT_CLOSE);
	free(out);
	smtp_close(&s);
}
END_TEST

/* ------------------------------------------------------------------ */
/* MAIL                                                                */

START_TEST(mail_order)
{
	struct session *s = opened(LISTENER_SMTP, false);
	expect_io(s, "MAIL FROM:<a@other.test>\r\n", "503 5.5.1 Send EHLO or HELO first\r\n");
	free(io(s, "EHLO client.test\r\n"));
	expect_io(s, "MAIL FROM:<a@other.test>\r\n", R_MAIL);
	expect_io(s, "MAIL FROM:<b@other.test>\r\n", "503 5.5.1 Nested MAIL command\r\n");
	/* The first transaction is still there. */
	expect_io(s, "RCPT TO:<alice@example.test>\r\nDATA\r\nx\r\n.\r\n", R_RCPT R_DATA R_QUEUED);
	ck_assert_str_eq(fk.msgs[0].sender, "a@other.test");
	smtp_close(&s);
}
END_TEST

START_TEST(mail_submission_needs_auth)
{
	const enum listener_kind kinds[] = { LISTENER_SUBMISSION, LISTENER_SUBMISSIONS };
	for (size_t i = 0; i < 2; i++) {
		struct session *s = opened(kinds[i], true);
		free(io(s, "EHLO client.test\r\n"));
		expect_io(s, "MAIL FROM:<alice@example.test>\r\n", "530 5.7.0 Authentication required\r\n");
		expect_io(s, "RCPT TO:<alice@example.test>\r\n", "503 5.5.1 Need MAIL command first\r\n");
		smtp_close(&s);
	}
}
END_TEST

START_TEST(mail_syntax_strict_on_25)
{
	const struct { const char *cmd, *reply; } t[] = {
		{ "MAIL FROM: <a@other.test>", "501 5.5.4 Syntax: the address must be in angle brackets" },
		{ "MAIL FROM:a@other.test", "501 5.5.4 Syntax: the address must be in angle brackets" },
		{ "MAIL FROM:<a@other.test", "501 5.1.7 Bad sender address syntax" },
		{ "MAIL FROM:<a@other.test>x", "501 5.1.7 Bad sender address syntax" },
		{ "MAIL FROM:<a@>", "501 5.1.7 Bad sender address syntax" },
		{ "MAIL FROM:<@other.test>", "501 5.1.7 Bad sender address syntax" },
		{ "MAIL FROM:<a b@other.test>", "501 5.1.7 Bad sender address syntax" },
		{ "MAIL FROM:<a..b@other.test>", "501 5.1.7 Bad sender address syntax" },
		{ "MAIL FROM:<a@-other.test>", "501 5.1.7 Bad sender address syntax" },
		{ "MAIL FROM <a@other.test>", "501 5.5.4 Syntax: MAIL FROM:<address>" },
		{ "MAIL TO:<a@other.test>", "501 5.5.4 Syntax: MAIL FROM:<address>" },
		{ "MAIL", "501 5.5.4 Syntax: MAIL FROM:<address>" },
		{ "MAIL  FROM:<a@other.test>", "501 5.5.4 Syntax: MAIL FROM:<address>" },
		{ "MAIL FROM:<a@other.test> AUTH=<>", "250 2.1.0 Sender OK" },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct session *s = opened(LISTENER_SMTP, false);
		free(io(s, "EHLO client.test\r\n"));
		char *cmd = xasprintf("%s\r\n", t[i].cmd), *want = xasprintf("%s\r\n", t[i].reply);
		expect_io(s, cmd, want);
		free(cmd);
		free(want);
		smtp_close(&s);
	}
}
END_TEST

START_TEST(mail_syntax_lenient_on_submission)
{
	const char *const ok[] = {
		"MAIL FROM: <alice@example.test>",
		"MAIL FROM:alice@example.test",
		"MAIL FROM: alice@example.test",
		"MAIL  FROM:<alice@example.test>",
		"mail from:<alice@example.test> AUTH=<>",
		"MAIL FROM:<alice@example.test> AUTH=alice+40example.test",
		"MAIL FROM:<ALICE@Example.Test>",
		"MAIL FROM:<\"alice\"@example.test>",
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct session *s = authed(LISTENER_SUBMISSION);
		char *cmd = xasprintf("%s\r\n", ok[i]);
		expect_io(s, cmd, R_MAIL);
		free(cmd);
		ck_assert_str_eq(fk.owned_account, "alice@example.test");
		smtp_close(&s);
	}
	struct session *s = authed(LISTENER_SUBMISSION);
	expect_io(s, "MAIL FROM:<alice@example.test> AUTH=a=b\r\n", "501 5.5.4 Syntax: AUTH=xtext\r\n");
	expect_io(s, "MAIL FROM:<alice@example.test> AUTH\r\n", "501 5.5.4 Syntax: AUTH=xtext\r\n");
	smtp_close(&s);
}
END_TEST

START_TEST(mail_size)
{
	struct session *s = opened(LISTENER_SMTP, false);
	free(io(s, "EHLO client.test\r\n"));
	expect_io(s, "MAIL FROM:<a@other.test> SIZE=52428801\r\n",
		  "552 5.3.4 Message size exceeds fixed maximum message size\r\n");
	expect_io(s, "RCPT TO:<alice@example.test>\r\n", "503 5.5.1 Need MAIL command first\r\n");
	expect_io(s, "MAIL FROM:<a@other.test> SIZE=99999999999999999999\r\n", "501 5.5.4 Syntax: SIZE=octets\r\n");
	expect_io(s, "MAIL FROM:<a@other.test> SIZE=12k\r\n", "501 5.5.4 Syntax: SIZE=octets\r\n");
	expect_io(s, "MAIL FROM:<a@other.test> SIZE\r\n", "501 5.5.4 Syntax: SIZE=octets\r\n");
	expect_io(s, "MAIL FROM:<a@other.test> SIZE=52428800\r\n", R_MAIL);
	smtp_close(&s);
}
END_TEST

START_TEST(mail_body_param)
{
	struct session *s = opened(LISTENER_SMTP, false);
	free(io(s, "EHLO client.test\r\n"));
	expect_io(s, "MAIL FROM:<a@other.test> BODY=BINARYMIME\r\n", "501 5.5.4 BODY must be 7BIT or 8BITMIME\r\n");
	expect_io(s, "MAIL FROM:<a@other.test> BODY=7bit\r\nRCPT TO:<alice@example.test>\r\nDATA\r\nx\r\n.\r\n",
		  R_MAIL R_RCPT R_DATA R_QUEUED);
	expect_io(s, "MAIL FROM:<a@other.test> body=8bitmime\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n\xc3\xa4\r\n.\r\n",
		  R_MAIL R_RCPT R_DATA R_QUEUED);
	ck_assert_uint_eq(fk.n_msgs, 2);
	ck_assert(!fk.msgs[0].eightbit);
	ck_assert(fk.msgs[1].eightbit);
	smtp_close(&s);
}
END_TEST

START_TEST(mail_smtputf8)
{
	struct session *s = opened(LISTENER_SMTP, false);
	free(io(s, "EHLO client.test\r\n"));
	expect_io(s, "MAIL FROM:<j\xc3\xb6rg@other.test>\r\n", "553 5.6.7 Non-ASCII address without SMTPUTF8\r\n");
	expect_io(s, "MAIL FROM:<a@other.test> SMTPUTF8=yes\r\n", "501 5.5.4 SMTPUTF8 takes no value\r\n");
	expect_io(s, "MAIL FROM:<a@other.test>\r\n", R_MAIL);
	expect_io(s, "RCPT TO:<j\xc3\xb6rg@example.test>\r\n", "553 5.6.7 Non-ASCII address without SMTPUTF8\r\n");
	expect_io(s, "RSET\r\n", R_OKAY);
	expect_io(s, "MAIL FROM:<j\xc3\xb6rg@\xc3\xa9xample.other> SMTPUTF8 BODY=8BITMIME\r\n"
		     "RCPT TO:<j\xc3\xb6rg@example.test>\r\nDATA\r\nx\r\n.\r\n",
		  R_MAIL R_RCPT R_DATA R_QUEUED);
	ck_assert_uint_eq(fk.n_msgs, 1);
	ck_assert(fk.msgs[0].smtputf8);
	ck_assert_str_eq(fk.msgs[0].sender, "j\xc3\xb6rg@\xc3\xa9xample.other");
	ck_assert_str_eq(fk.msgs[0].rcpts[0].address, "j\xc3\xb6rg@example.test");
	ck_assert_ptr_nonnull(strstr(fk.msgs[0].data, "with UTF8SMTP\n"));
	smtp_close(&s);
}
END_TEST

START_TEST(mail_ret_envid_kept)
{
	struct session *s = opened(LISTENER_SMTP, false);
	free(io(s, "EHLO client.test\r\n"));
	expect_io(s, "MAIL FROM:<a@other.test> RET=NONE\r\n", "501 5.5.4 RET must be FULL or HDRS\r\n");
	expect_io(s, "MAIL FROM:<a@other.test> ENVID=a=b\r\n",
		  "501 5.5.4 ENVID must be xtext of at most 100 characters\r\n");
	expect_io(s, "MAIL FROM:<a@other.test> ENVID=+zz\r\n",
		  "501 5.5.4 ENVID must be xtext of at most 100 characters\r\n");
	expect_io(s, "MAIL FROM:<a@other.test> RET=HDRS ENVID=QQ+2B123\r\nRCPT TO:<alice@example.test>\r\n"
		     "DATA\r\nx\r\n.\r\n",
		  R_MAIL R_RCPT R_DATA R_QUEUED);
	expect_io(s, "MAIL FROM:<a@other.test> ret=full\r\nRCPT TO:<alice@example.test>\r\nDATA\r\nx\r\n.\r\n",
		  R_MAIL R_RCPT R_DATA R_QUEUED);
	ck_assert_uint_eq(fk.n_msgs, 2);
	ck_assert_int_eq(fk.msgs[0].ret, SMTP_RET_HDRS);
	ck_assert_str_eq(fk.msgs[0].envid, "QQ+123");
	ck_assert_int_eq(fk.msgs[1].ret, SMTP_RET_FULL);
	ck_assert_ptr_null(fk.msgs[1].envid); /* not carried over from the first */
	smtp_close(&s);
}
END_TEST

START_TEST(mail_unknown_param)
{
	struct session *s = opened(LISTENER_SMTP, false);
	free(io(s, "EHLO client.test\r\n"));
	expect_io(s, "MAIL FROM:<a@other.test> FROB=1\r\n", "555 5.5.4 Unsupported MAIL parameter\r\n");
	expect_io(s, "MAIL FROM:<a@other.test> SIZE=10 XYZ\r\n", "555 5.5.4 Unsupported MAIL parameter\r\n");
	expect_io(s, "MAIL FROM:<a@other.test>  SIZE=10\r\n", R_MAIL);
	smtp_close(&s);
}
END_TEST

START_TEST(mail_sender_owned)
{
	struct session *s = authed(LISTENER_SUBMISSION);
	expect_io(s, "MAIL FROM:<bob@example.test>\r\n",
		  "553 5.7.1 Sender address is not owned by the authenticated user\r\n");
	ck_assert_str_eq(fk.owned_account, "alice@example.test");
	ck_assert_str_eq(fk.owned_address, "bob@example.test");
	expect_io(s, "MAIL FROM:<dberror@example.test>\r\n", R_LOCAL_ERR);
	expect_io(s, "RCPT TO:<bob@example.test>\r\n", "503 5.5.1 Need MAIL command first\r\n");
	expect_io(s, "MAIL FROM:<alias@Example.TEST>\r\n", R_MAIL);
	ck_assert_str_eq(fk.owned_address, "alias@example.test");
	smtp_close(&s);

	/* Not checked when the config says so. */
	cfg.submission_check_sender = false;
	s = authed(LISTENER_SUBMISSIONS);
	int calls = fk.owned_calls;
	expect_io(s, "MAIL FROM:<bob@example.test>\r\n", R_MAIL);
	ck_assert_int_eq(fk.owned_calls, calls);
	smtp_close(&s);
}
END_TEST

START_TEST(mail_null_sender)
{
	struct session *s = opened(LISTENER_SMTP, false);
	free(io(s, "EHLO client.test\r\n"));
	expect_io(s, "MAIL FROM:<>\r\nRCPT TO:<>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\nbounce\r\n.\r\n",
		  R_MAIL "501 5.1.3 Bad recipient address syntax\r\n" R_RCPT R_DATA R_QUEUED);
	ck_assert_uint_eq(fk.n_msgs, 1);
	ck_assert_str_eq(fk.msgs[0].sender, "");
	ck_assert(strncmp(fk.msgs[0].data, "Return-Path: <>\n", 16) == 0);
	smtp_close(&s);

	/* On submission the null sender is not an address anybody owns. */
	s = authed(LISTENER_SUBMISSION);
	int calls = fk.owned_calls;
	expect_io(s, "MAIL FROM:<>\r\n", R_MAIL);
	ck_assert_int_eq(fk.owned_calls, calls);
	smtp_close(&s);
}
END_TEST

/* ------------------------------------------------------------------ */
/* RCPT                                                                */

static struct session *in_txn(void)
{
	struct session *s = opened(LISTENER_SMTP, false);
	expect_io(s, "EHLO client.test\r\nMAIL FROM:<sender@other.test>\r\n",
		  "250-localhost Hello client.test [" PEER_REMOTE "]\r\n250-PIPELINING\r\n250-SIZE 52428800\r\n"
		  "250-STARTTLS\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n"
		  "250 DSN\r\n" R_MAIL);
	return s;
}

START_TEST(rcpt_before_mail)
{
	struct session *s = opened(LISTENER_SMTP, false);
	expect_io(s, "RCPT TO:<alice@example.test>\r\n", "503 5.5.1 Need MAIL command first\r\n");
	free(io(s, "EHLO client.test\r\n"));
	expect_io(s, "RCPT TO:<alice@example.test>\r\n", "503 5.5.1 Need MAIL command first\r\n");
	smtp_close(&s);
}
END_TEST

START_TEST(rcpt_statuses)
{
	struct session *s = in_txn();
	expect_io(s, "RCPT TO:<alice@example.test>\r\n", R_RCPT);
	expect_io(s, "RCPT TO:<nobody@example.test>\r\n", "550 5.1.1 No such user here\r\n");
	expect_io(s, "RCPT TO:<full@example.test>\r\n", "452 4.2.2 Mailbox full\r\n");
	expect_io(s, "RCPT TO:<fwd@example.test>\r\n",
		  "451 4.3.2 Forwarding to other domains is not available now, try again later\r\n");
	expect_io(s, "RCPT TO:<tempfail@example.test>\r\n", R_LOCAL_ERR);
	expect_io(s, "RCPT TO:<bob@example.test>\r\n", R_RCPT);
	expect_io(s, "RCPT TO:<alice@example.test\r\n", "501 5.1.3 Bad recipient address syntax\r\n");
	expect_io(s, "RCPT TO <alice@example.test>\r\n", "501 5.5.4 Syntax: RCPT TO:<address>\r\n");
	expect_io(s, "RCPT TO:<alice@example.test> FROB=1\r\n", "555 5.5.4 Unsupported RCPT parameter\r\n");
	expect_io(s, "DATA\r\nx\r\n.\r\n", R_DATA R_QUEUED);
	ck_assert_uint_eq(fk.n_msgs, 1);
	ck_assert_uint_eq(fk.msgs[0].n_rcpts, 2);
	ck_assert_str_eq(fk.msgs[0].rcpts[0].address, "alice@example.test");
	ck_assert_str_eq(fk.msgs[0].rcpts[1].address, "bob@example.test");
	ck_assert_int_eq(fk.msgs[0].rcpts[0].status, SMTP_RCPT_LOCAL);
	smtp_close(&s);
}
END_TEST

START_TEST(rcpt_temporary_refusals_not_counted)
{
	/* 4xx answers are not the client's fault and never close the session. */
	cfg.max_bad_commands = 2;
	struct session *s = in_txn();
	for (int i = 0; i < 5; i++) {
		expect_io(s, "RCPT TO:<full@example.test>\r\n", "452 4.2.2 Mailbox full\r\n");
		expect_io(s, "RCPT TO:<tempfail@example.test>\r\n", R_LOCAL_ERR);
	}
	ck_assert_int_eq(last_e, SESSION_EFFECT_NONE);
	smtp_close(&s);
}
END_TEST

START_TEST(rcpt_too_many)
{
	cfg.smtp_max_recipients = 3;
	struct session *s = in_txn();
	expect_io(s, "RCPT TO:<alice@example.test>\r\nRCPT TO:<bob@example.test>\r\nRCPT TO:<carol@example.test>\r\n"
		     "RCPT TO:<user@example.test>\r\nRCPT TO:<postmaster@example.test>\r\nDATA\r\nx\r\n.\r\n",
		  R_RCPT R_RCPT R_RCPT "452 4.5.3 Too many recipients\r\n452 4.5.3 Too many recipients\r\n" R_DATA
			  R_QUEUED);
	ck_assert_uint_eq(fk.msgs[0].n_rcpts, 3);
	ck_assert_ptr_null(strstr(fk.msgs[0].data, "\tfor <")); /* several recipients: no "for" */
	smtp_close(&s);
}
END_TEST

START_TEST(rcpt_notify_orcpt_kept)
{
	struct session *s = in_txn();
	expect_io(s, "RCPT TO:<alice@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;alice+40example.test\r\n",
		  R_RCPT);
	expect_io(s, "RCPT TO:<bob@example.test> NOTIFY=never\r\n", R_RCPT);
	expect_io(s, "RCPT TO:<carol@example.test> NOTIFY=NEVER,DELAY\r\n",
		  "501 5.5.4 NOTIFY=NEVER cannot be combined\r\n");
	expect_io(s, "RCPT TO:<carol@example.test> NOTIFY=SOMETIMES\r\n",
		  "501 5.5.4 Syntax: NOTIFY=NEVER or SUCCESS,FAILURE,DELAY\r\n");
	expect_io(s, "RCPT TO:<carol@example.test> NOTIFY=\r\n",
		  "501 5.5.4 Syntax: NOTIFY=NEVER or SUCCESS,FAILURE,DELAY\r\n");
	expect_io(s, "RCPT TO:<carol@example.test> ORCPT=alice@example.test\r\n",
		  "501 5.5.4 Syntax: ORCPT=addr-type;xtext\r\n");
	expect_io(s, "RCPT TO:<carol@example.test> ORCPT=;x\r\n", "501 5.5.4 Syntax: ORCPT=addr-type;xtext\r\n");
	expect_io(s, "RCPT TO:<carol@example.test> NOTIFY=DELAY\r\n", R_RCPT);
	expect_io(s, "DATA\r\nx\r\n.\r\n", R_DATA R_QUEUED);
	ck_assert_uint_eq(fk.msgs[0].n_rcpts, 3);
	ck_assert_uint_eq(fk.msgs[0].rcpts[0].notify, SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE);
	ck_assert_str_eq(fk.msgs[0].rcpts[0].orcpt, "rfc822;alice@example.test");
	ck_assert_uint_eq(fk.msgs[0].rcpts[1].notify, SMTP_NOTIFY_NEVER);
	ck_assert_ptr_null(fk.msgs[0].rcpts[1].orcpt);
	ck_assert_uint_eq(fk.msgs[0].rcpts[2].notify, SMTP_NOTIFY_DELAY);
	smtp_close(&s);
}
END_TEST

START_TEST(rcpt_duplicates_collapse)
{
	struct session *s = in_txn();
	expect_io(s, "RCPT TO:<alice@example.test> ORCPT=rfc822;first\r\nRCPT TO:<alice@EXAMPLE.test>\r\n"
		     "RCPT TO:<alice@example.test> ORCPT=rfc822;second\r\nDATA\r\nx\r\n.\r\n",
		  R_RCPT R_RCPT R_RCPT R_DATA R_QUEUED);
	ck_assert_uint_eq(fk.msgs[0].n_rcpts, 1);
	ck_assert_str_eq(fk.msgs[0].rcpts[0].orcpt, "rfc822;first");
	ck_assert_ptr_nonnull(strstr(fk.msgs[0].data, "\n\tfor <alice@example.test>;\n"));
	smtp_close(&s);
}
END_TEST

/* The open-relay battery: from an unauthenticated client on port 25 none of
 * these may become a recipient, and none may even be looked up as ours
 * when its real destination is elsewhere. */
START_TEST(rcpt_open_relay_battery)
{
	const struct { const char *arg, *reply; bool lookup_ok; } t[] = {
		{ "<user@other.test>", "554 5.7.1 ", false },
		{ "<user%other.test@example.test>", "554 5.7.1 ", false },
		{ "<\"user@other.test\"@example.test>", "554 5.7.1 ", false },
		{ "<\"user%other.test\"@example.test>", "554 5.7.1 ", false },
		{ "<\"user!other\"@example.test>", "554 5.7.1 ", false },
		{ "<@example.test:user@other.test>", "554 5.7.1 ", false },
		{ "<@a,@b:user@other.test>", "554 5.7.1 ", false },
		{ "<@[127.0.0.1]:user@other.test>", "554 5.7.1 ", false },
		{ "<other.test!user@example.test>", "554 5.7.1 ", false },
		{ "<user@[127.0.0.1]>", "554 5.7.1 ", false },
		{ "<user@[IPv6:::1]>", "554 5.7.1 ", false },
		{ "<user@[192.0.2.1]>", "554 5.7.1 ", false },
		{ "<postmaster@other.test>", "554 5.7.1 ", false },
		{ "<user@example.test.other.test>", "554 5.7.1 ", false },
		{ "<user@other-example.test>", "554 5.7.1 ", false },
		{ "<user@localhost>", "554 5.7.1 ", false },
		{ "<user@other.test.>", "501 5.1.3 ", false },
		{ "<user@EXAMPLE.TEST.>", "501 5.1.3 ", false },
		{ "<user@example.test@other.test>", "501 5.1.3 ", false },
		{ "<user@other.test>garbage", "501 5.1.3 ", false },
		{ "<user@example.test>garbage", "501 5.1.3 ", false },
		{ "<user@other.test> garbage", "555 5.5.4 ", false },
		{ "<user@other.test >", "501 5.1.3 ", false },
		{ "< user@other.test>", "501 5.1.3 ", false },
		{ "<user@other.test\\@example.test>", "501 5.1.3 ", false },
		{ "<user@example.test\r@other.test>", "501 5.1.3 ", false },
		{ "user@other.test", "501 5.5.4 ", false },
		{ " <user@other.test>", "501 5.5.4 ", false },
		{ "<<user@other.test>>", "501 5.1.3 ", false },
		{ "<user@\xc3\xa9xample.test>", "553 5.6.7 ", false },
		{ "<user@other.test,user@example.test>", "501 5.1.3 ", false },
	};
	for (int mode = 0; mode < 4; mode++) {
		bool loopback = mode & 1;
		fk.k.can_relay = mode & 2; /* a running outbound queue changes nothing here */
		for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
			fake_clear();
			struct session *s = opened(LISTENER_SMTP, loopback);
			free(io(s, "EHLO client.test\r\nMAIL FROM:<sender@other.test>\r\n"));
			char *cmd = xasprintf("RCPT TO:%s\r\n", t[i].arg);
			char *got = io(s, cmd);
			ck_assert_msg(strncmp(got, t[i].reply, strlen(t[i].reply)) == 0, "RCPT TO:%s\n got: %s\nwant: %s",
				      esc(t[i].arg, strlen(t[i].arg)), esc(got, strlen(got)), t[i].reply);
			ck_assert_msg(fk.rcpt_checks == 0 || t[i].lookup_ok, "RCPT TO:%s looked up <%s>", t[i].arg,
				      fk.last_rcpt);
			free(got);
			free(cmd);
			/* Never added: DATA finds no valid recipient. */
			expect_io(s, "DATA\r\n", "554 5.5.1 No valid recipients\r\n");
			smtp_close(&s);
		}
	}
}
END_TEST

START_TEST(rcpt_local_domain_any_case)
{
	struct session *s = in_txn();
	expect_io(s, "RCPT TO:<user@EXAMPLE.TEST>\r\nRCPT TO:<BOB@Example.Test>\r\n"
		     "RCPT TO:<@other.test:carol@example.test>\r\nDATA\r\nx\r\n.\r\n",
		  R_RCPT R_RCPT R_RCPT R_DATA R_QUEUED);
	ck_assert_uint_eq(fk.msgs[0].n_rcpts, 3);
	ck_assert_str_eq(fk.msgs[0].rcpts[0].address, "user@example.test");
	ck_assert_str_eq(fk.msgs[0].rcpts[1].address, "BOB@example.test");
	/* RFC 5321 C: the source route is ignored, the mailbox is ours. */
	ck_assert_str_eq(fk.msgs[0].rcpts[2].address, "carol@example.test");
	smtp_close(&s);
}
END_TEST

START_TEST(rcpt_postmaster)
{
	struct session *s = in_txn();
	expect_io(s, "RCPT TO:<Postmaster>\r\nDATA\r\nx\r\n.\r\n", R_RCPT R_DATA R_QUEUED);
	ck_assert_str_eq(fk.msgs[0].rcpts[0].address, "postmaster@example.test");
	smtp_close(&s);
	s = in_txn();
	expect_io(s, "RCPT TO:<alice>\r\n", "501 5.1.3 Bad recipient address syntax\r\n");
	expect_io(s, "MAIL FROM:<Postmaster>\r\n", "503 5.5.1 Nested MAIL command\r\n");
	smtp_close(&s);
}
END_TEST

START_TEST(rcpt_authenticated_remote)
{
	const enum listener_kind kinds[] = { LISTENER_SUBMISSION, LISTENER_SUBMISSIONS };
	for (size_t i = 0; i < 2; i++) {
		struct session *s = authed(kinds[i]);
		expect_io(s, "MAIL FROM:<alice@example.test>\r\n", R_MAIL);
		expect_io(s, "RCPT TO:<bob@other.test>\r\n",
			  "451 4.3.2 Delivery to other domains is not available now, try again later\r\n");
		expect_io(s, "RCPT TO:<bob@[192.0.2.1]>\r\n",
			  "451 4.3.2 Delivery to other domains is not available now, try again later\r\n");
		expect_io(s, "RCPT TO:bob@example.test\r\n", R_RCPT); /* lenient */
		/* Routing characters to our domain are looked up as they are. */
		expect_io(s, "RCPT TO:<bob%other.test@example.test>\r\n", "550 5.1.1 No such user here\r\n");
		ck_assert_str_eq(fk.last_rcpt, "bob%other.test@example.test");
		expect_io(s, "DATA\r\nx\r\n.\r\n", R_DATA R_QUEUED);
		ck_assert_uint_eq(fk.msgs[0].n_rcpts, 1);
		ck_assert_str_eq(fk.msgs[0].auth_user, "alice@example.test");
		smtp_close(&s);
		fake_clear();
	}
}
END_TEST

/* With the outbound queue running, authenticated users may send anywhere
 * and aliases may forward; strangers still may not relay. */
START_TEST(rcpt_queue_running)
{
	fk.k.can_relay = true;
	struct session *s = authed(LISTENER_SUBMISSIONS);
	expect_io(s, "MAIL FROM:<alice@example.test>\r\nRCPT TO:<bob@other.test>\r\nRCPT TO:<fwd@example.test>\r\n"
		     "RCPT TO:<alice@example.test>\r\nRCPT TO:<nobody@example.test>\r\nDATA\r\nx\r\n.\r\n",
		  R_MAIL R_RCPT R_RCPT R_RCPT "550 5.1.1 No such user here\r\n" R_DATA R_QUEUED);
	ck_assert_uint_eq(fk.msgs[0].n_rcpts, 3);
	ck_assert_str_eq(fk.msgs[0].rcpts[0].address, "bob@other.test");
	ck_assert_int_eq(fk.msgs[0].rcpts[0].status, SMTP_RCPT_REMOTE);
	ck_assert_int_eq(fk.msgs[0].rcpts[1].status, SMTP_RCPT_FORWARD);
	ck_assert_int_eq(fk.msgs[0].rcpts[2].status, SMTP_RCPT_LOCAL);
	smtp_close(&s);

	fake_clear();
	s = in_txn();
	expect_io(s, "RCPT TO:<bob@other.test>\r\nRCPT TO:<fwd@example.test>\r\nDATA\r\nx\r\n.\r\n",
		  R_RELAY R_RCPT R_DATA R_QUEUED);
	ck_assert_uint_eq(fk.msgs[0].n_rcpts, 1);
	ck_assert_int_eq(fk.msgs[0].rcpts[0].status, SMTP_RCPT_FORWARD);
	smtp_close(&s);
}
END_TEST

START_TEST(rcpt_errors_count)
{
	/* Unknown users and relay attempts are client errors: enough of them
	 * end the session. */
	cfg.max_bad_commands = 3;
	struct session *s = in_txn();
	expect_io(s, "RCPT TO:<nobody@example.test>\r\nRCPT TO:<x@other.test>\r\nRCPT TO:<y@example.test>\r\nNOOP\r\n",
		  "550 5.1.1 No such user here\r\n" R_RELAY "550 5.1.1 No such user here\r\n"
		  "421 4.7.0 localhost Too many errors, closing connection\r\n");
	ck_assert_int_eq(last_e, SESSION_EFFECT_CLOSE);
	smtp_close(&s);
}
END_TEST

/* ------------------------------------------------------------------ */
/* DATA                                                                */


START_TEST(data_needs_rcpt)
{
	struct session *s = opened(LISTENER_SMTP, false);
	expect_io(s, "DATA\r\n", "503 5.5.1 Need MAIL command first\r\n");
	free(io(s, "EHLO client.test\r\n"));
	expect_io(s, "DATA\r\n", "503 5.5.1 Need MAIL command first\r\n");
	expect_io(s, "MAIL FROM:<a@other.test>\r\nDATA\r\n", R_MAIL "503 5.5.1 Need RCPT command first\r\n");
	expect_io(s, "RCPT TO:<nobody@example.test>\r\nDATA\r\n",
		  "550 5.1.1 No such user here\r\n554 5.5.1 No valid recipients\r\n");
	expect_io(s, "RCPT TO:<alice@example.test>\r\nDATA now\r\n", R_RCPT "501 5.5.4 Syntax: DATA\r\n");
	ck_assert_int_eq(fk.spools_opened, 0);
	smtp_close(&s);
}
END_TEST

START_TEST(data_dot_unstuffing)
{
	check_splits(LISTENER_SMTP, false,
		     TXN_25 "DATA\r\nSubject: dots\r\n\r\n..x\r\n..\r\n...\r\n. \r\n.x\r\nend.\r\n.\r\nQUIT\r\n",
		     R_TXN_25 R_DATA R_QUEUED R_BYE, SESSION_EFFECT_CLOSE,
		     "Subject: dots\n\n.x\n.\n..\n \nx\nend.\n");
}
END_TEST

START_TEST(data_empty_message)
{
	check_splits(LISTENER_SMTP, false, TXN_25 "DATA\r\n.\r\nNOOP\r\n", R_TXN_25 R_DATA R_QUEUED R_OKAY,
		     SESSION_EFFECT_NONE, "");
	ck_assert_uint_eq(fk.msgs[0].size, 0);
}
END_TEST

START_TEST(data_end_split_everywhere)
{
	/* The terminating sequence arrives cut at every position (check_splits
	 * cuts the whole dialogue at every byte, the end of data included). */
	check_splits(LISTENER_SMTP, false, TXN_25 "DATA\r\nline 1\r\nline 2\r\n.\r\nRSET\r\n",
		     R_TXN_25 R_DATA R_QUEUED R_OKAY, SESSION_EFFECT_NONE, "line 1\nline 2\n");
	ck_assert_uint_eq(fk.msgs[0].size, 16);
}
END_TEST

START_TEST(data_nul_and_8bit_kept)
{
	static const char in[] = TXN_25 "DATA\r\na\0b\r\n\xff\xfe\r\n.\r\n";
	static const char body[] = "a\0b\n\xff\xfe\n";
	check_splits_n(LISTENER_SMTP, false, in, sizeof(in) - 1, R_TXN_25 R_DATA R_QUEUED, SESSION_EFFECT_NONE, body,
		       sizeof(body) - 1);
}
END_TEST

/* SMTP smuggling (2023): a lone LF or CR next to a dot never ends the
 * message, so the commands after it are content, not a second message. A
 * bare LF is a line end for the store (LF line ends); a bare CR is content. */
START_TEST(data_smuggling_is_content)
{
	const struct { const char *pattern, *stored; } t[] = {
		{ "a\n.\nMAIL FROM:<evil@other.test>\r\n", "a\n.\nMAIL FROM:<evil@other.test>\n" },
		{ "a\r.\rMAIL FROM:<evil@other.test>\r\n", "a\r.\rMAIL FROM:<evil@other.test>\n" },
		{ "a\n.\r\nMAIL FROM:<evil@other.test>\r\n", "a\n.\nMAIL FROM:<evil@other.test>\n" },
		{ "a\r\n.\nMAIL FROM:<evil@other.test>\r\n", "a\n.\nMAIL FROM:<evil@other.test>\n" },
		{ "a\r\n\n.\r\nMAIL FROM:<evil@other.test>\r\n", "a\n\n.\nMAIL FROM:<evil@other.test>\n" },
		/* A dot with more on its line is unstuffed, whatever follows it. */
		{ "a\r\n.\r\rMAIL FROM:<evil@other.test>\r\n", "a\n\r\rMAIL FROM:<evil@other.test>\n" },
		{ "a\r.\r\nMAIL FROM:<evil@other.test>\r\n", "a\r.\nMAIL FROM:<evil@other.test>\n" },
		{ ".\nMAIL FROM:<evil@other.test>\r\n", ".\nMAIL FROM:<evil@other.test>\n" },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char *in = xasprintf(TXN_25 "DATA\r\n%sRCPT TO:<bob@example.test>\r\nDATA\r\nevil\r\n.\r\nQUIT\r\n",
				     t[i].pattern);
		char *body = xasprintf("%sRCPT TO:<bob@example.test>\nDATA\nevil\n", t[i].stored);
		check_splits(LISTENER_SMTP, false, in, R_TXN_25 R_DATA R_QUEUED R_BYE, SESSION_EFFECT_CLOSE, body);
		ck_assert_uint_eq(fk.msgs[0].n_rcpts, 1);
		ck_assert_str_eq(fk.msgs[0].sender, "sender@other.test");
		free(in);
		free(body);
	}
}
END_TEST

START_TEST(data_size_limit)
{
	cfg.message_size_max = 100;
	char *ehlo = ehlo_reply("client.test", PEER_REMOTE, true, false);
	char *want = xasprintf("%s" R_MAIL R_RCPT R_DATA "552 5.3.4 Message size exceeds fixed maximum message size\r\n"
			       R_MAIL R_RCPT R_DATA R_QUEUED, ehlo);
	/* 3 x 50 octets as sent is over 100; then the next message of exactly
	 * 100 octets fits. */
	const char *line48 = "012345678901234567890123456789012345678901234567";
	char *in = xasprintf(TXN_25 "DATA\r\n%s\r\n%s\r\n%s\r\n.\r\n"
				    "MAIL FROM:<sender@other.test>\r\nRCPT TO:<alice@example.test>\r\n"
				    "DATA\r\n%s\r\n%s\r\n.\r\n",
			     line48, line48, line48, line48, line48);
	char *body = xasprintf("%s\n%s\n", line48, line48);
	check_splits(LISTENER_SMTP, false, in, want, SESSION_EFFECT_NONE, body);
	ck_assert_uint_eq(fk.deliver_calls, 1);
	ck_assert_uint_eq(fk.msgs[0].size, 100);
	ck_assert_int_eq(fk.spools_discarded, 1);
	free(ehlo);
	free(want);
	free(in);
	free(body);
}
END_TEST

START_TEST(data_line_too_long)
{
	cfg.smtp_data_line_max = 1000;
	size_t n = 3000;
	char *big = xmalloc(n + 1);
	memset(big, 'z', n);
	big[n] = '\0';
	char *in = xasprintf(TXN_25 "DATA\r\nshort\r\n%s\r\nafter\r\n.\r\nNOOP\r\n", big);
	struct session *s = opened(LISTENER_SMTP, false);
	expect_io(s, in, R_TXN_25 R_DATA "550 5.6.0 Message has a line longer than 1000 octets\r\n" R_OKAY);
	ck_assert_int_eq(fk.deliver_calls, 0);
	/* A line of exactly 1000 octets with its CRLF is fine. */
	big[998] = '\0';
	free(in);
	in = xasprintf("MAIL FROM:<sender@other.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n%s\r\n.\r\n", big);
	expect_io(s, in, R_MAIL R_RCPT R_DATA R_QUEUED);
	ck_assert_uint_eq(fk.n_msgs, 1);
	size_t len;
	msg_body(&fk.msgs[0], &len);
	ck_assert_uint_eq(len, 999);
	/* After the data the command limit is back. */
	free(in);
	big[998] = 'z';
	big[1200] = '\0';
	in = xasprintf("NOOP %s\r\nNOOP\r\n", big);
	expect_io(s, in, "500 5.5.2 Line too long\r\n" R_OKAY);
	free(in);
	free(big);
	smtp_close(&s);
}
END_TEST

START_TEST(data_spool_open_fails)
{
	fk.k.spool_open_fail = true;
	struct session *s = opened(LISTENER_SMTP, false);
	expect_io(s, TXN_25 "DATA\r\nRCPT TO:<bob@example.test>\r\n",
		  R_TXN_25 R_LOCAL_ERR "503 5.5.1 Need MAIL command first\r\n");
	smtp_close(&s);
}
END_TEST

START_TEST(data_spool_write_fails)
{
	/* The headers fit, the content does not: read to the end, then 451. */
	fk.k.spool_write_limit = 400;
	struct session *s = opened(LISTENER_SMTP, false);
	char *big = xmalloc(600);
	memset(big, 'q', 599);
	big[599] = '\0';
	char *in = xasprintf(TXN_25 "DATA\r\n%s\r\nmore\r\n.\r\nNOOP\r\n", big);
	expect_io(s, in, R_TXN_25 R_DATA R_LOCAL_ERR R_OKAY);
	ck_assert_int_eq(fk.deliver_calls, 0);
	free(in);
	free(big);
	smtp_close(&s);
}
END_TEST

/* What the store receives: Return-Path, Received, then the content. */
static void check_headers(const struct fake_msg *m, const char *want_prefix, const char *rcpt_for)
{
	size_t plen = strlen(want_prefix);
	ck_assert_msg(strncmp(m->data, want_prefix, plen) == 0, "\n got: %s\nwant: %s...", esc(m->data, m->len),
		      esc(want_prefix, plen));
	const char *p = m->data + plen;
	ck_assert_msg(strncmp(p, "\n\tid ", 5) == 0, "%s", esc(p, strlen(p)));
	p += 5;
	ck_assert(strncmp(p, m->id, strlen(m->id)) == 0);
	p += strlen(m->id);
	if (rcpt_for != NULL) {
		char *f = xasprintf("\n\tfor <%s>", rcpt_for);
		ck_assert_msg(strncmp(p, f, strlen(f)) == 0, "%s", esc(p, strlen(p)));
		p += strlen(f);
		free(f);
	}
	ck_assert_msg(strncmp(p, ";\n\t", 3) == 0, "%s", esc(p, strlen(p)));
	ck_assert_ptr_null(strstr(m->data, "secret"));
	ck_assert_ptr_null(strstr(m->data, plain_ok));
	ck_assert_ptr_null(strstr(m->data, login_pass));
}

START_TEST(received_headers)
{
	/* Port 25, plaintext, one recipient. */
	struct session *s = opened(LISTENER_SMTP, false);
	expect_io(s, TXN_25 "DATA\r\nSubject: hi\r\n\r\nbody\r\n.\r\n", R_TXN_25 R_DATA R_QUEUED);
	check_headers(&fk.msgs[0],
		      "Return-Path: <sender@other.test>\nReceived: from client.test ([" PEER_REMOTE "])\n"
		      "\tby localhost (postbote) with ESMTP",
		      "alice@example.test");
	size_t len;
	const char *b = msg_body(&fk.msgs[0], &len);
	ck_assert_uint_eq(len, 18);
	ck_assert(memcmp(b, "Subject: hi\n\nbody\n", 18) == 0);
	ck_assert_uint_eq(fk.msgs[0].size, 21); /* as sent, CRLF */
	/* Two recipients: nobody learns the other. */
	expect_io(s, "MAIL FROM:<sender@other.test>\r\nRCPT TO:<alice@example.test>\r\nRCPT TO:<bob@example.test>\r\n"
		     "DATA\r\nx\r\n.\r\n",
		  R_MAIL R_RCPT R_RCPT R_DATA R_QUEUED);
	check_headers(&fk.msgs[1],
		      "Return-Path: <sender@other.test>\nReceived: from client.test ([" PEER_REMOTE "])\n"
		      "\tby localhost (postbote) with ESMTP",
		      NULL);
	smtp_close(&s);
}
END_TEST

START_TEST(received_headers_tls)
{
	/* Port 25 after STARTTLS: ESMTPS with version and cipher; the HELO
	 * name is cleaned up for the header. */
	struct session *s = opened(LISTENER_SMTP, false);
	char *out = io(s, "EHLO client.test\r\nSTARTTLS\r\n");
	ck_assert_int_eq(last_e, SESSION_EFFECT_STARTTLS);
	free(out);
	ck_assert_int_eq(session_tls_started(s, TLS_VERSION, TLS_CIPHER), SESSION_EFFECT_NONE);
	expect_io(s, "EHLO evil(host);x\r\nMAIL FROM:<sender@other.test>\r\nRCPT TO:<alice@example.test>\r\n"
		     "DATA\r\nx\r\n.\r\n",
		  "250-localhost Hello evil(host);x [" PEER_REMOTE "]\r\n250-PIPELINING\r\n250-SIZE 52428800\r\n"
		  "250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n250 DSN\r\n" R_MAIL
			  R_RCPT R_DATA R_QUEUED);
	check_headers(&fk.msgs[0],
		      "Return-Path: <sender@other.test>\nReceived: from evil?host??x ([" PEER_REMOTE "])\n"
		      "\tby localhost (postbote) with ESMTPS\n\t(version=" TLS_VERSION " cipher=" TLS_CIPHER ")",
		      "alice@example.test");
	smtp_close(&s);

	/* Submissions with AUTH: ESMTPSA and the user, never the password. */
	fake_clear();
	s = authed(LISTENER_SUBMISSIONS);
	expect_io(s, "MAIL FROM:<alice@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nx\r\n.\r\n",
		  R_MAIL R_RCPT R_DATA R_QUEUED);
	check_headers(&fk.msgs[0],
		      "Return-Path: <alice@example.test>\nReceived: from client.test ([" PEER_REMOTE "])\n"
		      "\tby localhost (postbote) with ESMTPSA\n\t(version=" TLS_VERSION " cipher=" TLS_CIPHER ")\n"
		      "\t(authenticated user alice@example.test)",
		      "bob@example.test");
	smtp_close(&s);

	/* Submission over loopback without TLS: ESMTPA. */
	fake_clear();
	s = authed(LISTENER_SUBMISSION);
	expect_io(s, "MAIL FROM:<alice@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nx\r\n.\r\n",
		  R_MAIL R_RCPT R_DATA R_QUEUED);
	check_headers(&fk.msgs[0],
		      "Return-Path: <alice@example.test>\nReceived: from client.test ([" PEER_LOOP "])\n"
		      "\tby localhost (postbote) with ESMTPA\n\t(authenticated user alice@example.test)",
		      "bob@example.test");
	smtp_close(&s);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Delivery                                                            */

START_TEST(deliver_reply_waits)
{
	fk.k.auto_complete = false;
	struct session *s = opened(LISTENER_SMTP, false);
	const char *in = TXN_25 "DATA\r\nhello\r\n.\r\nNOOP\r\n";
	enum session_effect e = feed_chunks(s, in, strlen(in), strlen(in), 0);
	ck_assert_int_eq(e, SESSION_EFFECT_WAIT);
	char *out = take_output(s);
	ck_assert_str_eq(out, R_TXN_25 R_DATA); /* no 250 yet, NOOP not answered */
	free(out);
	ck_assert(fk.deliver_pending);
	ck_assert(!session_resumed(s));
	ck_assert_int_eq(session_continue(s), SESSION_EFFECT_WAIT);
	/* More input while waiting is only buffered. */
	ck_assert_int_eq(session_feed(s, "QUIT\r\n", 6), SESSION_EFFECT_NONE);
	out = take_output(s);
	ck_assert_str_eq(out, "");
	free(out);

	fake_deliver_finish(&fk, SMTP_DELIVERED);
	ck_assert(session_resumed(s));
	out = take_output(s);
	ck_assert_str_eq(out, R_QUEUED);
	free(out);
	ck_assert_int_eq(session_continue(s), SESSION_EFFECT_CLOSE);
	out = take_output(s);
	ck_assert_str_eq(out, R_OKAY R_BYE);
	free(out);
	ck_assert_uint_eq(fk.n_msgs, 1);
	smtp_close(&s);
}
END_TEST

START_TEST(deliver_reply_has_message_id)
{
	struct session *s = opened(LISTENER_SMTP, false);
	const char *in = TXN_25 "DATA\r\nhello\r\n.\r\n";
	ck_assert_int_eq(feed_chunks(s, in, strlen(in), strlen(in), 0), SESSION_EFFECT_NONE);
	struct buf *o = session_output(s);
	char *raw = xstrndup(buf_ptr(o), buf_len(o));
	char *want = xasprintf("250 2.0.0 Message accepted for delivery, id=%s\r\n", fk.msgs[0].id);
	ck_assert_ptr_nonnull(strstr(raw, want));
	free(raw);
	free(want);
	smtp_close(&s);
}
END_TEST

START_TEST(deliver_statuses)
{
	const struct { enum smtp_deliver_status st; const char *reply; } t[] = {
		{ SMTP_DELIVERED, R_QUEUED },
		{ SMTP_DELIVER_TEMPFAIL, "451 4.3.0 Local error in processing, try again later (id=ID)\r\n" },
		{ SMTP_DELIVER_FULL, "452 4.2.2 Mailbox full, try again later (id=ID)\r\n" },
		{ SMTP_DELIVER_TOO_BIG, "552 5.2.2 Message exceeds the mailbox quota (id=ID)\r\n" },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		fake_clear();
		fk.k.auto_status = t[i].st;
		struct session *s = opened(LISTENER_SMTP, false);
		char *want = xasprintf(R_TXN_25 R_DATA "%s503 5.5.1 Need MAIL command first\r\n", t[i].reply);
		expect_io(s, TXN_25 "DATA\r\nhello\r\n.\r\nRCPT TO:<bob@example.test>\r\n", want);
		free(want);
		ck_assert_int_eq(fk.deliver_calls, 1);
		smtp_close(&s);
	}
}
END_TEST

START_TEST(deliver_start_fails)
{
	fk.k.deliver_start_fail = true;
	struct session *s = opened(LISTENER_SMTP, false);
	expect_io(s, TXN_25 "DATA\r\nhello\r\n.\r\nRCPT TO:<bob@example.test>\r\n",
		  R_TXN_25 R_DATA R_LOCAL_ERR "503 5.5.1 Need MAIL command first\r\n");
	ck_assert_int_eq(last_e, SESSION_EFFECT_NONE);
	ck_assert_int_eq(fk.deliver_calls, 1);
	smtp_close(&s);
}
END_TEST

START_TEST(deliver_cancelled_when_session_goes)
{
	fk.k.auto_complete = false;
	struct session *s = opened(LISTENER_SMTP, false);
	const char *in = TXN_25 "DATA\r\nhello\r\n.\r\n";
	ck_assert_int_eq(feed_chunks(s, in, strlen(in), strlen(in), 0), SESSION_EFFECT_WAIT);
	void *h = fk.deliver_handle;
	ck_assert_ptr_nonnull(h);
	session_free(&s);
	ck_assert_int_eq(fk.deliver_cancels, 1);
	ck_assert(!fk.deliver_pending);
	ck_assert_int_eq(fk.stale_cancels, 0);
	ck_assert_int_eq(fk.spools_open, 0);
}
END_TEST

/* The backend may finish before deliver_start even returns (session.h
 * allows session_resume before WAIT): the reply is the same, nothing waits,
 * and the finished handle is never cancelled later. */
START_TEST(deliver_completes_synchronously)
{
	fk.k.auto_complete = false;
	fk.k.deliver_sync = true;
	struct session *s = opened(LISTENER_SMTP, false);
	const char *in = TXN_25 "DATA\r\nhello\r\n.\r\nNOOP\r\n";
	ck_assert_int_eq(feed_chunks(s, in, strlen(in), strlen(in), 0), SESSION_EFFECT_NONE);
	char *out = take_output(s);
	ck_assert_str_eq(out, R_TXN_25 R_DATA R_QUEUED R_OKAY);
	free(out);
	expect_io(s, "MAIL FROM:<sender@other.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nx\r\n.\r\n",
		  R_MAIL R_RCPT R_DATA R_QUEUED);
	ck_assert_uint_eq(fk.n_msgs, 2);
	smtp_close(&s);
}
END_TEST

/* ------------------------------------------------------------------ */
/* BDAT (RFC 3030)                                                     */

START_TEST(bdat_chunks)
{
	check_splits(LISTENER_SMTP, false,
		     TXN_25 "BDAT 5\r\nHelloBDAT 8\r\n world\r\nBDAT 0 LAST\r\nNOOP\r\n",
		     R_TXN_25 "250 2.0.0 5 octets received\r\n250 2.0.0 8 octets received\r\n" R_QUEUED R_OKAY,
		     SESSION_EFFECT_NONE, "Hello world\n");
	ck_assert_uint_eq(fk.msgs[0].size, 13);
	/* Not dot-stuffed: a "." line is content, a CRLF inside is a line end. */
	check_splits(LISTENER_SMTP, false, TXN_25 "BDAT 14 LAST\r\nab\r\n.\r\n..\r\nc\r\nQUIT\r\n",
		     R_TXN_25 R_QUEUED R_BYE, SESSION_EFFECT_CLOSE, "ab\n.\n..\nc\n");
}
END_TEST

START_TEST(bdat_zero_last)
{
	check_splits(LISTENER_SMTP, false, TXN_25 "BDAT 0 LAST\r\nNOOP\r\n", R_TXN_25 R_QUEUED R_OKAY,
		     SESSION_EFFECT_NONE, "");
	check_splits(LISTENER_SMTP, false, TXN_25 "bdat 3 last\r\nabc", R_TXN_25 R_QUEUED, SESSION_EFFECT_NONE, "abc");
}
END_TEST

/* A CR that ends a chunk belongs with what follows: CRLF across chunks is
 * a line end, a CR followed by anything else is content. */
START_TEST(bdat_cr_at_chunk_boundary)
{
	const struct { const char *in, *replies, *body; } t[] = {
		{ "BDAT 2\r\na\rBDAT 2 LAST\r\n\nb", "250 2.0.0 2 octets received\r\n" R_QUEUED, "a\nb" },
		{ "BDAT 3 LAST\r\na\rb", R_QUEUED, "a\rb" },
		{ "BDAT 2 LAST\r\na\r", R_QUEUED, "a\r" },
		{ "BDAT 2\r\na\rBDAT 1 LAST\r\nb", "250 2.0.0 2 octets received\r\n" R_QUEUED, "a\rb" },
		{ "BDAT 2\r\na\rBDAT 0 LAST\r\n", "250 2.0.0 2 octets received\r\n" R_QUEUED, "a\r" },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char *in = xasprintf(TXN_25 "%s", t[i].in);
		char *want = xasprintf(R_TXN_25 "%s", t[i].replies);
		check_splits(LISTENER_SMTP, false, in, want, SESSION_EFFECT_NONE, t[i].body);
		free(in);
		free(want);
	}
}
END_TEST

START_TEST(bdat_without_transaction)
{
	/* The chunk is read and dropped (it is not a command), then refused. */
	check_splits(LISTENER_SMTP, false, EHLO_25 "BDAT 6\r\nNOOP\r\nRSET\r\n",
		     R_EHLO_25 "503 5.5.1 Need MAIL command first\r\n" R_OKAY, SESSION_EFFECT_NONE, NULL);
	check_splits(LISTENER_SMTP, false,
		     EHLO_25 "MAIL FROM:<a@other.test>\r\nBDAT 6 LAST\r\nNOOP\r\nRSET\r\n",
		     R_EHLO_25 R_MAIL "503 5.5.1 Need RCPT command first\r\n" R_OKAY, SESSION_EFFECT_NONE, NULL);
	ck_assert_int_eq(fk.spools_opened, 0);
}
END_TEST

START_TEST(bdat_before_ehlo_keeps_state)
{
	/* A refused chunk must not stand in for EHLO. */
	struct session *s = opened(LISTENER_SMTP, false);
	expect_io(s, "BDAT 4\r\nabcdMAIL FROM:<a@other.test>\r\n",
		  "503 5.5.1 Send EHLO or HELO first\r\n503 5.5.1 Send EHLO or HELO first\r\n");
	smtp_close(&s);
	s = opened(LISTENER_SMTP, false);
	expect_io(s, "BDAT 0\r\nMAIL FROM:<a@other.test>\r\n",
		  "503 5.5.1 Send EHLO or HELO first\r\n503 5.5.1 Send EHLO or HELO first\r\n");
	smtp_close(&s);
}
END_TEST

START_TEST(bdat_then_data_or_rcpt)
{
	struct session *s = opened(LISTENER_SMTP, false);
	expect_io(s, TXN_25 "BDAT 3\r\nabcDATA\r\nRCPT TO:<bob@example.test>\r\nBDAT 3 LAST\r\ndef",
		  R_TXN_25 "250 2.0.0 3 octets received\r\n503 5.5.1 DATA cannot follow BDAT\r\n"
			   "503 5.5.1 RCPT after BDAT\r\n" R_QUEUED);
	size_t len;
	const char *b = msg_body(&fk.msgs[0], &len);
	ck_assert_uint_eq(len, 6);
	ck_assert(memcmp(b, "abcdef", 6) == 0);
	ck_assert_uint_eq(fk.msgs[0].n_rcpts, 1);
	smtp_close(&s);
}
END_TEST

START_TEST(bdat_size_limit)
{
	cfg.message_size_max = 10;
	char *ehlo = ehlo_reply("client.test", PEER_REMOTE, true, false);
	char *want = xasprintf("%s" R_MAIL R_RCPT "250 2.0.0 6 octets received\r\n"
			       "552 5.3.4 Message size exceeds fixed maximum message size\r\n"
			       "503 5.5.1 Need MAIL command first\r\n" R_OKAY,
			       ehlo);
	check_splits(LISTENER_SMTP, false, TXN_25 "BDAT 6\r\nabcdefBDAT 6\r\nghijklBDAT 2 LAST\r\nmnNOOP\r\n", want,
		     SESSION_EFFECT_NONE, NULL);
	ck_assert_int_eq(fk.deliver_calls, 0);
	free(want);
	/* One last chunk over the limit; exactly at the limit is fine. */
	want = xasprintf("%s" R_MAIL R_RCPT "552 5.3.4 Message size exceeds fixed maximum message size\r\n" R_MAIL
			 R_RCPT R_QUEUED,
			 ehlo);
	check_splits(LISTENER_SMTP, false,
		     TXN_25 "BDAT 11 LAST\r\n0123456789a"
			    "MAIL FROM:<b@other.test>\r\nRCPT TO:<bob@example.test>\r\nBDAT 10 LAST\r\n0123456789",
		     want, SESSION_EFFECT_NONE, "0123456789");
	free(want);
	free(ehlo);
}
END_TEST

START_TEST(bdat_bad_syntax_closes)
{
	const char *const bad[] = {
		"BDAT", "BDAT x", "BDAT 5 FIRST", "BDAT -1", "BDAT 5  LAST", "BDAT 5 LAST x", "BDAT 99999999999999999999",
		"BDAT  5", "BDAT 0x10",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct session *s = opened(LISTENER_SMTP, false);
		char *in = xasprintf(TXN_25 "%s\r\nNOOP\r\n", bad[i]);
		char *out = io(s, in);
		ck_assert_msg(strcmp(out, R_TXN_25 "501 5.5.4 Syntax: BDAT size [LAST]\r\n"
						   "421 4.7.0 localhost Closing connection\r\n") == 0,
			      "%s: %s", bad[i], esc(out, strlen(out)));
		ck_assert_int_eq(last_e, SESSION_EFFECT_CLOSE);
		free(out);
		free(in);
		smtp_close(&s);
	}
}
END_TEST

/* ------------------------------------------------------------------ */
/* AUTH                                                                */

START_TEST(auth_plain_initial_response)
{
	struct session *s = opened(LISTENER_SUBMISSION, true);
	free(io(s, "EHLO client.test\r\n"));
	char *cmd = xasprintf("AUTH PLAIN %s\r\n", plain_ok);
	expect_io(s, cmd, "235 2.7.0 Authentication successful\r\n");
	ck_assert_str_eq(fk.auth_user, "alice@example.test");
	ck_assert_str_eq(fk.auth_password, "secret");
	expect_io(s, "MAIL FROM:<alice@example.test>\r\n", R_MAIL);
	free(cmd);
	smtp_close(&s);
}
END_TEST

START_TEST(auth_plain_empty_challenge)
{
	struct session *s = opened(LISTENER_SUBMISSIONS, false);
	free(io(s, "EHLO client.test\r\n"));
	expect_io(s, "auth plain\r\n", "334 \r\n");
	char *resp = xasprintf("%s\r\n", plain_ok);
	expect_io(s, resp, "235 2.7.0 Authentication successful\r\n");
	free(resp);
	smtp_close(&s);
}
END_TEST

START_TEST(auth_extra_spaces_on_submission)
{
	const char *const fmt[][2] = { { "AUTH PLAIN  ", "" }, { "AUTH  PLAIN ", "" }, { "AUTH   PLAIN   ", "" } };
	for (size_t i = 0; i < 3; i++) {
		struct session *s = opened(LISTENER_SUBMISSION, true);
		free(io(s, "EHLO client.test\r\n"));
		char *cmd = xasprintf("%s%s%s\r\n", fmt[i][0], plain_ok, fmt[i][1]);
		expect_io(s, cmd, "235 2.7.0 Authentication successful\r\n");
		free(cmd);
		smtp_close(&s);
	}
}
END_TEST

START_TEST(auth_login)
{
	struct session *s = opened(LISTENER_SUBMISSION, true);
	free(io(s, "EHLO client.test\r\n"));
	expect_io(s, "AUTH LOGIN\r\n", "334 VXNlcm5hbWU6\r\n");
	char *u = xasprintf("%s\r\n", login_user), *p = xasprintf("%s\r\n", login_pass);
	expect_io(s, u, "334 UGFzc3dvcmQ6\r\n");
	expect_io(s, p, "235 2.7.0 Authentication successful\r\n");
	ck_assert_str_eq(fk.auth_user, "alice@example.test");
	ck_assert_str_eq(fk.auth_password, "secret");
	smtp_close(&s);

	/* With the user name as initial response. */
	s = opened(LISTENER_SUBMISSIONS, false);
	free(io(s, "EHLO client.test\r\n"));
	char *cmd = xasprintf("AUTH LOGIN %s\r\n", login_user);
	expect_io(s, cmd, "334 UGFzc3dvcmQ6\r\n");
	expect_io(s, p, "235 2.7.0 Authentication successful\r\n");
	free(cmd);
	free(u);
	free(p);
	smtp_close(&s);
}
END_TEST

START_TEST(auth_cancel_and_bad_base64)
{
	struct session *s = opened(LISTENER_SUBMISSION, true);
	free(io(s, "EHLO client.test\r\n"));
	expect_io(s, "AUTH PLAIN\r\n*\r\n", "334 \r\n501 5.7.0 Authentication cancelled\r\n");
	expect_io(s, "AUTH LOGIN\r\n*\r\n", "334 VXNlcm5hbWU6\r\n501 5.7.0 Authentication cancelled\r\n");
	char *u = xasprintf("AUTH LOGIN %s\r\n*\r\n", login_user);
	expect_io(s, u, "334 UGFzc3dvcmQ6\r\n501 5.7.0 Authentication cancelled\r\n");
	free(u);
	expect_io(s, "AUTH PLAIN !!!!\r\n", "501 5.5.2 Cannot decode response\r\n");
	expect_io(s, "AUTH PLAIN\r\nAGFsaWNl=\r\n", "334 \r\n501 5.5.2 Cannot decode response\r\n");
	expect_io(s, "AUTH LOGIN\r\n@@@@\r\n", "334 VXNlcm5hbWU6\r\n501 5.5.2 Cannot decode response\r\n");
	expect_io(s, "AUTH PLAIN =\r\n", "535 5.7.8 Authentication credentials invalid\r\n");
	expect_io(s, "AUTH CRAM-MD5\r\n", "504 5.5.4 Unrecognized authentication mechanism\r\n");
	ck_assert_int_eq(fk.auth_calls, 0);
	/* Back to commands after each: */
	expect_io(s, "NOOP\r\n", R_OKAY);
	smtp_close(&s);
}
END_TEST

START_TEST(auth_results)
{
	const struct { const char *user, *pass, *reply; } t[] = {
		{ "alice@example.test", "wrong", "535 5.7.8 Authentication credentials invalid\r\n" },
		{ "nobody@example.test", "secret", "535 5.7.8 Authentication credentials invalid\r\n" },
		{ "locked@example.test", "secret", "454 4.7.0 Too many failed logins, try again later\r\n" },
		{ "tempfail@example.test", "secret", "454 4.7.0 Temporary authentication failure\r\n" },
		{ "null@example.test", "secret", "535 5.7.8 Authentication credentials invalid\r\n" },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		fake_clear();
		struct session *s = opened(LISTENER_SUBMISSIONS, false);
		free(io(s, "EHLO client.test\r\n"));
		char *b = plain_for(t[i].user, t[i].pass);
		char *cmd = xasprintf("AUTH PLAIN %s\r\n", b);
		expect_io(s, cmd, t[i].reply);
		ck_assert_int_eq(fk.auth_calls, 1);
		/* Not logged in: MAIL is refused, AUTH may be tried again. */
		expect_io(s, "MAIL FROM:<alice@example.test>\r\n", "530 5.7.0 Authentication required\r\n");
		free(cmd);
		cmd = xasprintf("AUTH PLAIN %s\r\n", plain_ok);
		expect_io(s, cmd, "235 2.7.0 Authentication successful\r\n");
		free(cmd);
		free(b);
		smtp_close(&s);
	}
}
END_TEST

START_TEST(auth_failures_close_session)
{
	cfg.max_bad_commands = 2;
	struct session *s = opened(LISTENER_SUBMISSIONS, false);
	free(io(s, "EHLO client.test\r\n"));
	char *cmd = xasprintf("AUTH PLAIN %s\r\nAUTH PLAIN %s\r\nNOOP\r\n", plain_bad, plain_bad);
	expect_io(s, cmd, "535 5.7.8 Authentication credentials invalid\r\n"
			  "535 5.7.8 Authentication credentials invalid\r\n"
			  "421 4.7.0 localhost Too many errors, closing connection\r\n");
	ck_assert_int_eq(last_e, SESSION_EFFECT_CLOSE);
	free(cmd);
	smtp_close(&s);
}
END_TEST

START_TEST(auth_where_not_allowed)
{
	char *cmd = xasprintf("AUTH PLAIN %s\r\n", plain_ok);

	struct session *s = opened(LISTENER_SMTP, true);
	free(io(s, "EHLO client.test\r\n"));
	expect_io(s, cmd, "502 5.5.1 AUTH is offered on the submission ports only\r\n");
	smtp_close(&s);

	s = opened(LISTENER_SUBMISSION, false);
	expect_io(s, cmd, "503 5.5.1 Send EHLO first\r\n");
	free(io(s, "EHLO client.test\r\n"));
	expect_io(s, cmd, "538 5.7.11 Encryption required for requested authentication mechanism\r\n");
	expect_io(s, "AUTH LOGIN\r\n", "538 5.7.11 Encryption required for requested authentication mechanism\r\n");
	ck_assert_int_eq(fk.auth_calls, 0);
	/* After STARTTLS it works. */
	expect_io(s, "STARTTLS\r\n", "220 2.0.0 Ready to start TLS\r\n");
	ck_assert_int_eq(session_tls_started(s, TLS_VERSION, TLS_CIPHER), SESSION_EFFECT_NONE);
	free(io(s, "EHLO client.test\r\n"));
	expect_io(s, cmd, "235 2.7.0 Authentication successful\r\n");
	expect_io(s, cmd, "503 5.5.1 Already authenticated\r\n");
	expect_io(s, "MAIL FROM:<alice@example.test>\r\n", R_MAIL);
	expect_io(s, cmd, "503 5.5.1 Already authenticated\r\n");
	smtp_close(&s);

	/* Loopback without the plaintext allowance. */
	cfg.allow_plaintext_auth_loopback = false;
	s = opened(LISTENER_SUBMISSION, true);
	free(io(s, "EHLO client.test\r\n"));
	expect_io(s, cmd, "538 5.7.11 Encryption required for requested authentication mechanism\r\n");
	smtp_close(&s);
	free(cmd);
}
END_TEST

START_TEST(auth_during_transaction)
{
	/* On submission a transaction needs AUTH, so the answer is 503 either
	 * way; what matters is that the transaction survives. */
	struct session *s = authed(LISTENER_SUBMISSIONS);
	expect_io(s, "MAIL FROM:<alice@example.test>\r\nRCPT TO:<bob@example.test>\r\n", R_MAIL R_RCPT);
	char *got = io(s, "AUTH LOGIN\r\n");
	ck_assert_msg(strncmp(got, "503 5.5.1 ", 10) == 0, "%s", got);
	free(got);
	expect_io(s, "DATA\r\nx\r\n.\r\n", R_DATA R_QUEUED);
	smtp_close(&s);
}
END_TEST

/* The password check runs in the backend: the session waits, keeps what
 * the client pipelined behind AUTH, and answers it after the result. */
START_TEST(auth_wait_and_resume)
{
	fk.k.auto_complete = false;
	struct session *s = opened(LISTENER_SUBMISSIONS, false);
	free(io(s, "EHLO client.test\r\n"));
	char *cmd = xasprintf("AUTH PLAIN %s\r\nMAIL FROM:<alice@example.test>\r\n", plain_ok);
	ck_assert_int_eq(feed_chunks(s, cmd, strlen(cmd), strlen(cmd), 0), SESSION_EFFECT_WAIT);
	free(cmd);
	char *out = take_output(s);
	ck_assert_str_eq(out, "");
	free(out);
	ck_assert(fk.auth_pending);
	ck_assert_int_eq(session_feed(s, "RCPT TO:<bob@example.test>\r\n", 28), SESSION_EFFECT_NONE);
	ck_assert(!session_resumed(s));
	ck_assert_int_eq(session_continue(s), SESSION_EFFECT_WAIT);
	fake_auth_finish(&fk);
	ck_assert(session_resumed(s));
	out = take_output(s);
	ck_assert_str_eq(out, "235 2.7.0 Authentication successful\r\n");
	free(out);
	ck_assert_int_eq(session_continue(s), SESSION_EFFECT_NONE);
	out = take_output(s);
	ck_assert_str_eq(out, R_MAIL R_RCPT);
	free(out);

	/* A failure also arrives later. */
	smtp_close(&s);
	s = opened(LISTENER_SUBMISSIONS, false);
	free(io(s, "EHLO client.test\r\n"));
	cmd = xasprintf("AUTH PLAIN %s\r\nNOOP\r\n", plain_bad);
	ck_assert_int_eq(feed_chunks(s, cmd, strlen(cmd), strlen(cmd), 0), SESSION_EFFECT_WAIT);
	free(cmd);
	fake_auth_finish(&fk);
	ck_assert_int_eq(session_continue(s), SESSION_EFFECT_NONE);
	out = take_output(s);
	ck_assert_str_eq(out, "535 5.7.8 Authentication credentials invalid\r\n" R_OKAY);
	free(out);
	smtp_close(&s);
}
END_TEST

START_TEST(auth_cancelled_when_session_goes)
{
	fk.k.auto_complete = false;
	struct session *s = opened(LISTENER_SUBMISSIONS, false);
	free(io(s, "EHLO client.test\r\n"));
	char *cmd = xasprintf("AUTH LOGIN %s\r\n%s\r\n", login_user, login_pass);
	ck_assert_int_eq(feed_chunks(s, cmd, strlen(cmd), strlen(cmd), 0), SESSION_EFFECT_WAIT);
	free(cmd);
	session_free(&s);
	ck_assert_int_eq(fk.auth_cancels, 1);
	ck_assert_int_eq(fk.stale_cancels, 0);
	ck_assert(!fk.auth_pending);
}
END_TEST

START_TEST(auth_completes_synchronously)
{
	fk.k.auto_complete = false;
	fk.k.auth_sync = true;
	struct session *s = opened(LISTENER_SUBMISSIONS, false);
	free(io(s, "EHLO client.test\r\n"));
	char *cmd = xasprintf("AUTH PLAIN %s\r\nMAIL FROM:<alice@example.test>\r\n", plain_ok);
	ck_assert_int_eq(feed_chunks(s, cmd, strlen(cmd), strlen(cmd), 0), SESSION_EFFECT_NONE);
	free(cmd);
	char *out = take_output(s);
	ck_assert_str_eq(out, "235 2.7.0 Authentication successful\r\n" R_MAIL);
	free(out);
	smtp_close(&s);
}
END_TEST

/* Secrets never reach the trace, whichever way they are sent. */
START_TEST(auth_trace_hides_secrets)
{
	fflush(stderr);
	int saved = dup(2);
	FILE *tmp = tmpfile();
	ck_assert_ptr_nonnull(tmp);
	dup2(fileno(tmp), 2);
	trace_set_mode(TRACE_FULL);

	struct session *s = opened(LISTENER_SUBMISSIONS, false);
	char *in = xasprintf("EHLO client.test\r\nAUTH PLAIN  %s\r\n", plain_bad);
	free(io(s, in));
	free(in);
	in = xasprintf("AUTH PLAIN\r\n%s\r\nAUTH LOGIN\r\n%s\r\n%s\r\n", plain_bad, login_user, login_pass);
	free(io(s, in));
	free(in);
	smtp_close(&s);

	trace_set_mode(TRACE_OFF);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	fseek(tmp, 0, SEEK_END);
	long n = ftell(tmp);
	fseek(tmp, 0, SEEK_SET);
	char *log = xmalloc((size_t)n + 1);
	ck_assert_uint_eq(fread(log, 1, (size_t)n, tmp), (size_t)n);
	log[n] = '\0';
	fclose(tmp);

	ck_assert_msg(strstr(log, "C: AUTH PLAIN  ***") != NULL || strstr(log, "C: AUTH PLAIN ***") != NULL, "%s",
		      log);
	ck_assert_msg(strstr(log, "C: ***") != NULL, "%s", log);
	ck_assert_msg(strstr(log, plain_bad) == NULL, "PLAIN response in the trace:\n%s", log);
	ck_assert_msg(strstr(log, login_user) == NULL, "LOGIN user in the trace:\n%s", log);
	ck_assert_msg(strstr(log, login_pass) == NULL, "LOGIN password in the trace:\n%s", log);
	ck_assert_ptr_nonnull(strstr(log, "S: 334 VXNlcm5hbWU6"));
	free(log);

	/* Without a session state, the command line itself. */
	ck_assert_uint_eq(smtp_proto.trace_visible(NULL, "AUTH PLAIN  AGJvYgBz", 20), 11);
	ck_assert_uint_eq(smtp_proto.trace_visible(NULL, "auth login dXNlcg==", 19), 11);
	ck_assert_uint_eq(smtp_proto.trace_visible(NULL, "AUTH PLAIN", 10), 10);
	ck_assert_uint_eq(smtp_proto.trace_visible(NULL, "MAIL FROM:<a@b>", 15), 15);
}
END_TEST

/* RFC 3207 4.2: after STARTTLS the server forgets what it learned before,
 * a login made over plaintext included. */
START_TEST(starttls_forgets_auth)
{
	struct session *s = authed(LISTENER_SUBMISSION); /* loopback, plaintext AUTH allowed */
	expect_io(s, "STARTTLS\r\n", "220 2.0.0 Ready to start TLS\r\n");
	ck_assert_int_eq(session_tls_started(s, TLS_VERSION, TLS_CIPHER), SESSION_EFFECT_NONE);
	char *want = ehlo_reply("client.test", PEER_LOOP, false, true);
	expect_io(s, "EHLO client.test\r\n", want);
	free(want);
	expect_io(s, "MAIL FROM:<alice@example.test>\r\n", "530 5.7.0 Authentication required\r\n");
	smtp_close(&s);
}
END_TEST

/* ------------------------------------------------------------------ */
/* STARTTLS                                                            */

START_TEST(starttls_injection)
{
	for (int bytewise = 0; bytewise < 2; bytewise++) {
		struct session *s = opened(LISTENER_SMTP, false);
		const char *in = "EHLO client.test\r\nSTARTTLS\r\nRSET\r\nMAIL FROM:<evil@other.test>\r\n";
		enum session_effect e = feed_chunks(s, in, strlen(in), bytewise ? 1 : strlen(in), 0);
		ck_assert_int_eq(e, SESSION_EFFECT_STARTTLS);
		ck_assert_uint_eq(session_input_pending(s), 0);
		char *out = take_output(s);
		ck_assert_str_eq(out, R_EHLO_25 "220 2.0.0 Ready to start TLS\r\n");
		free(out);
		ck_assert_int_eq(session_tls_started(s, TLS_VERSION, TLS_CIPHER), SESSION_EFFECT_NONE);
		out = take_output(s);
		ck_assert_str_eq(out, ""); /* RSET is never answered */
		free(out);
		/* Everything from before is forgotten: EHLO again first. */
		expect_io(s, "MAIL FROM:<a@other.test>\r\n", "503 5.5.1 Send EHLO or HELO first\r\n");
		char *want = ehlo_reply("client.test", PEER_REMOTE, false, false);
		expect_io(s, "EHLO client.test\r\n", want);
		free(want);
		expect_io(s, "STARTTLS\r\n", "503 5.5.1 TLS already active\r\n");
		smtp_close(&s);
	}
}
END_TEST

START_TEST(starttls_resets_transaction)
{
	struct session *s = opened(LISTENER_SMTP, false);
	expect_io(s, TXN_25 "STARTTLS now\r\nSTARTTLS\r\n",
		  R_TXN_25 "501 5.5.4 Syntax: STARTTLS\r\n220 2.0.0 Ready to start TLS\r\n");
	ck_assert_int_eq(last_e, SESSION_EFFECT_STARTTLS);
	ck_assert_int_eq(session_tls_started(s, TLS_VERSION, TLS_CIPHER), SESSION_EFFECT_NONE);
	free(io(s, "EHLO client.test\r\n"));
	expect_io(s, "DATA\r\n", "503 5.5.1 Need MAIL command first\r\n");
	smtp_close(&s);

	s = opened(LISTENER_SUBMISSIONS, false);
	expect_io(s, "STARTTLS\r\n", "503 5.5.1 TLS already active\r\n");
	smtp_close(&s);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Pipelining                                                          */

START_TEST(pipelined_dialogue_any_split)
{
	check_splits(LISTENER_SMTP, false,
		     "EHLO client.test\r\nMAIL FROM:<sender@other.test> SIZE=100 BODY=8BITMIME\r\n"
		     "RCPT TO:<alice@example.test>\r\nRCPT TO:<nobody@example.test>\r\nRCPT TO:<bob@example.test>\r\n"
		     "RCPT TO:<carol@example.test> NOTIFY=FAILURE\r\nDATA\r\nSubject: pipelined\r\n\r\nline\r\n..dot\r\n"
		     ".\r\nQUIT\r\n",
		     R_EHLO_25 R_MAIL R_RCPT "550 5.1.1 No such user here\r\n" R_RCPT R_RCPT R_DATA R_QUEUED R_BYE,
		     SESSION_EFFECT_CLOSE, "Subject: pipelined\n\nline\n.dot\n");
	ck_assert_uint_eq(fk.msgs[0].n_rcpts, 3);
}
END_TEST

START_TEST(pipelined_two_messages_any_split)
{
	check_splits(LISTENER_SMTP, false,
		     TXN_25 "DATA\r\none\r\n.\r\nMAIL FROM:<x@other.test>\r\nRCPT TO:<bob@example.test>\r\n"
			    "BDAT 4 LAST\r\ntwo\nNOOP\r\n",
		     R_TXN_25 R_DATA R_QUEUED R_MAIL R_RCPT R_QUEUED R_OKAY, SESSION_EFFECT_NONE, NULL);
	ck_assert_uint_eq(fk.n_msgs, 2);
}
END_TEST

START_TEST(pipelined_submission_any_split)
{
	char *in = xasprintf("EHLO client.test\r\nAUTH PLAIN %s\r\nMAIL FROM:<alice@example.test>\r\n"
			     "RCPT TO:<bob@example.test>\r\nBDAT 6\r\nHello\nBDAT 0 LAST\r\nQUIT\r\n",
			     plain_ok);
	char *ehlo = ehlo_reply("client.test", PEER_REMOTE, false, true);
	char *want = xasprintf("%s235 2.7.0 Authentication successful\r\n" R_MAIL R_RCPT
			       "250 2.0.0 6 octets received\r\n" R_QUEUED R_BYE,
			       ehlo);
	check_splits(LISTENER_SUBMISSIONS, false, in, want, SESSION_EFFECT_CLOSE, "Hello\n");
	free(in);
	free(ehlo);
	free(want);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Address parsing limits                                              */

START_TEST(long_addresses_refused)
{
	/* Local parts past 64 octets, in every form, are refused without
	 * harm (this runs under ASan in the sanitizer build). */
	char local[1000];
	struct session *s = in_txn();
	const size_t sizes[] = { 64, 65, 200, 400, 900 };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		memset(local, 'a', sizes[i]);
		local[sizes[i]] = '\0';
		char *cmd = xasprintf("RCPT TO:<%s@example.test>\r\n", local);
		char *got = io(s, cmd);
		if (sizes[i] <= 64)
			ck_assert_str_eq(got, "550 5.1.1 No such user here\r\n");
		else
			ck_assert_str_eq(got, "501 5.1.3 Bad recipient address syntax\r\n");
		free(got);
		free(cmd);
	}
	smtp_close(&s);

	/* Quoted, with every character escaped. */
	s = in_txn();
	char q[800];
	size_t o = 0;
	q[o++] = '"';
	for (int i = 0; i < 128; i++) {
		q[o++] = '\\';
		q[o++] = '"';
	}
	q[o++] = '"';
	q[o] = '\0';
	char *cmd = xasprintf("RCPT TO:<%s@example.test>\r\n", q);
	expect_io(s, cmd, "501 5.1.3 Bad recipient address syntax\r\n");
	free(cmd);
	smtp_close(&s);

	s = opened(LISTENER_SMTP, false);
	free(io(s, "EHLO client.test\r\n"));
	memset(local, 'b', 700);
	local[700] = '\0';
	cmd = xasprintf("MAIL FROM:<%s@other.test>\r\n", local);
	expect_io(s, cmd, "501 5.1.7 Bad sender address syntax\r\n");
	free(cmd);
	smtp_close(&s);
}
END_TEST

static Suite *smtp_session_suite(void)
{
	Suite *s = suite_create("smtp_session");
	TCase *tc;

	make_secrets();

	tc = tcase_create("commands");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, greeting_all_kinds);
	tcase_add_test(tc, ehlo_extensions);
	tcase_add_test(tc, ehlo_after_auth_drops_auth);
	tcase_add_test(tc, ehlo_helo_syntax);
	tcase_add_test(tc, helo_plain_smtp);
	tcase_add_test(tc, small_commands);
	tcase_add_test(tc, rset_resets_transaction);
	tcase_add_test(tc, unknown_nul_and_odd_commands);
	tcase_add_test(tc, overlong_command_line);
	tcase_add_test(tc, too_many_errors_close);
	suite_add_tcase(s, tc);

	tc = tcase_create("mail");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, mail_order);
	tcase_add_test(tc, mail_submission_needs_auth);
	tcase_add_test(tc, mail_syntax_strict_on_25);
	tcase_add_test(tc, mail_syntax_lenient_on_submission);
	tcase_add_test(tc, mail_size);
	tcase_add_test(tc, mail_body_param);
	tcase_add_test(tc, mail_smtputf8);
	tcase_add_test(tc, mail_ret_envid_kept);
	tcase_add_test(tc, mail_unknown_param);
	tcase_add_test(tc, mail_sender_owned);
	tcase_add_test(tc, mail_null_sender);
	tcase_add_test(tc, long_addresses_refused);
	suite_add_tcase(s, tc);

	tc = tcase_create("rcpt");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, rcpt_before_mail);
	tcase_add_test(tc, rcpt_statuses);
	tcase_add_test(tc, rcpt_temporary_refusals_not_counted);
	tcase_add_test(tc, rcpt_too_many);
	tcase_add_test(tc, rcpt_notify_orcpt_kept);
	tcase_add_test(tc, rcpt_duplicates_collapse);
	tcase_add_test(tc, rcpt_open_relay_battery);
	tcase_add_test(tc, rcpt_local_domain_any_case);
	tcase_add_test(tc, rcpt_postmaster);
	tcase_add_test(tc, rcpt_authenticated_remote);
	tcase_add_test(tc, rcpt_queue_running);
	tcase_add_test(tc, rcpt_errors_count);
	suite_add_tcase(s, tc);

	tc = tcase_create("data");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, data_needs_rcpt);
	tcase_add_test(tc, data_dot_unstuffing);
	tcase_add_test(tc, data_empty_message);
	tcase_add_test(tc, data_end_split_everywhere);
	tcase_add_test(tc, data_nul_and_8bit_kept);
	tcase_add_test(tc, data_smuggling_is_content);
	tcase_add_test(tc, data_size_limit);
	tcase_add_test(tc, data_line_too_long);
	tcase_add_test(tc, data_spool_open_fails);
	tcase_add_test(tc, data_spool_write_fails);
	tcase_add_test(tc, received_headers);
	tcase_add_test(tc, received_headers_tls);
	suite_add_tcase(s, tc);

	tc = tcase_create("deliver");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, deliver_reply_waits);
	tcase_add_test(tc, deliver_reply_has_message_id);
	tcase_add_test(tc, deliver_statuses);
	tcase_add_test(tc, deliver_start_fails);
	tcase_add_test(tc, deliver_cancelled_when_session_goes);
	tcase_add_test(tc, deliver_completes_synchronously);
	suite_add_tcase(s, tc);

	tc = tcase_create("bdat");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, bdat_chunks);
	tcase_add_test(tc, bdat_zero_last);
	tcase_add_test(tc, bdat_cr_at_chunk_boundary);
	tcase_add_test(tc, bdat_without_transaction);
	tcase_add_test(tc, bdat_before_ehlo_keeps_state);
	tcase_add_test(tc, bdat_then_data_or_rcpt);
	tcase_add_test(tc, bdat_size_limit);
	tcase_add_test(tc, bdat_bad_syntax_closes);
	suite_add_tcase(s, tc);

	tc = tcase_create("auth");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, auth_plain_initial_response);
	tcase_add_test(tc, auth_plain_empty_challenge);
	tcase_add_test(tc, auth_extra_spaces_on_submission);
	tcase_add_test(tc, auth_login);
	tcase_add_test(tc, auth_cancel_and_bad_base64);
	tcase_add_test(tc, auth_results);
	tcase_add_test(tc, auth_failures_close_session);
	tcase_add_test(tc, auth_where_not_allowed);
	tcase_add_test(tc, auth_during_transaction);
	tcase_add_test(tc, auth_wait_and_resume);
	tcase_add_test(tc, auth_cancelled_when_session_goes);
	tcase_add_test(tc, auth_completes_synchronously);
	tcase_add_test(tc, auth_trace_hides_secrets);
	tcase_add_test(tc, starttls_forgets_auth);
	suite_add_tcase(s, tc);

	tc = tcase_create("starttls");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, starttls_injection);
	tcase_add_test(tc, starttls_resets_transaction);
	suite_add_tcase(s, tc);

	tc = tcase_create("pipelining");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, pipelined_dialogue_any_split);
	tcase_add_test(tc, pipelined_two_messages_any_split);
	tcase_add_test(tc, pipelined_submission_any_split);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run(smtp_session_suite());
}
