/*
 * Fuzz the SMTP session (src/smtp) through the session driver with a small
 * fake backend: arbitrary client bytes on any of the three SMTP listeners,
 * cut into feeds at places the input decides, password checks and
 * deliveries finished as soon as the session waits for them (the callback,
 * then session_continue, as the glue does), STARTTLS completed at once.
 *
 * Byte 0 picks the setting:  kind = b0 % 3 (smtp, submission, submissions),
 * loopback peer = (b0 / 3) % 2, variant = (b0 / 6) % 4 (0: default limits,
 * 1: tiny limits, 2: a failing spool and deliveries that cannot start,
 * 3: no plaintext AUTH on loopback and no sender check; in 1 and 3 the
 * outbound queue runs, so relaying and forwarding are possible), and
 * (b0 / 24) % 2 = 1 leaves the first wait unfinished and frees the session
 * with the work still running (the cancel paths).
 * Byte 1 seeds the cuts: the largest feed is 1 << (b1 % 8) bytes, except
 * 7, which feeds everything at once; the rest of b1 seeds a generator.
 * The remaining bytes are what the client sends.
 *
 * Checks: no crash, leak or over-read; every reply line is "DDD" + ' ' or
 * '-' + text + CRLF with a 2xx-5xx code; the backend never sees a cancel for
 * work it is not doing, a spool write after discard, or a spool left open.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "core/session.h"
#include "smtp/smtp_backend.h"
#include "smtp/smtp_session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FAKE_SPOOL_KEEP 4096  /* bytes of each spool kept, so writes touch memory */

struct fz_spool {
	size_t len;
	char keep[FAKE_SPOOL_KEEP];
};

struct fz {
	struct smtp_backend be;
	int variant;
	unsigned seq;
	int spools_open;
	char token_auth, token_deliver;  /* their addresses are the handles */
	bool auth_pending, deliver_pending;
	auth_login_cb auth_cb;
	void *auth_arg;
	enum auth_result auth_result;
	smtp_deliver_cb deliver_cb;
	void *deliver_arg;
	size_t deliver_rcpts;
};

static struct fz fz;

/* The outbound queue "runs" in variants 1 and 3. */
static bool fz_can_relay(void *ctx)
{
	struct fz *f = ctx;
	return f->variant == 1 || f->variant == 3;
}

static bool fz_domain_is_local(void *ctx, const char *domain)
{
	(void)ctx;
	return strcasecmp(domain, "example.test") == 0 || strcasecmp(domain, "localhost") == 0;
}

/* A digit 1-5 at the end of the local part picks the other statuses
 * (user1@ remote, user2@ unknown, 3 forward, 4 full, 5 tempfail). */
static enum smtp_rcpt_status fz_rcpt_check(void *ctx, const char *address)
{
	(void)ctx;
	const char *at = address ? strrchr(address, '@') : NULL;
	if (at == NULL || at == address)
		abort();
	unsigned char c = (unsigned char)at[-1];
	return c >= '1' && c <= '5' ? (enum smtp_rcpt_status)(c - '0') : SMTP_RCPT_LOCAL;
}

static int fz_sender_owned(void *ctx, const char *account, const char *address)
{
	(void)ctx;
	if (account == NULL || address == NULL)
		abort();
	return address[0] == 'x' ? -1 : address[0] == 'z' ? 0 : 1;
}

static void *fz_auth_start(void *ctx, const char *user, const char *password, const char *peer, auth_login_cb cb,
			   void *arg)
{
	struct fz *f = ctx;
	(void)peer;
	if (f->auth_pending || f->deliver_pending || user[0] == '\0' || password[0] == '\0')
		abort();
	if (user[0] == 'n')
		return NULL;
	f->auth_result = password[0] == 'l' ? AUTH_LOCKED : password[0] == 't' ? AUTH_TEMPFAIL :
			 password[0] == 'w' ? AUTH_FAIL : AUTH_OK;
	f->auth_pending = true;
	f->auth_cb = cb;
	f->auth_arg = arg;
	return &f->token_auth;
}

static void fz_auth_cancel(void *ctx, void *handle)
{
	struct fz *f = ctx;
	if (!f->auth_pending || handle != &f->token_auth)
		abort();
	f->auth_pending = false;
}

static void *fz_spool_open(void *ctx, const char *id)
{
	struct fz *f = ctx;
	if (id == NULL || id[0] == '\0')
		abort();
	if (f->variant == 2 && (f->seq++ % 3) == 0)
		return NULL;
	f->spools_open++;
	return calloc(1, sizeof(struct fz_spool));
}

static int fz_spool_write(void *spool, const void *data, size_t len)
{
	struct fz_spool *sp = spool;
	if (sp == NULL)
		abort();
	if (fz.variant == 2 && sp->len > 300)
		return -1;
	size_t room = FAKE_SPOOL_KEEP - (sp->len < FAKE_SPOOL_KEEP ? sp->len : FAKE_SPOOL_KEEP);
	memcpy(sp->keep + (FAKE_SPOOL_KEEP - room), data, len < room ? len : room);
	sp->len += len;
	return 0;
}

static void fz_spool_discard(void *spool)
{
	if (spool == NULL)
		return;
	fz.spools_open--;
	free(spool);
}

static void *fz_deliver_start(void *ctx, void *spool, const struct smtp_envelope *env, smtp_deliver_cb cb,
			      void *arg)
{
	struct fz *f = ctx;
	if (spool == NULL || f->auth_pending || f->deliver_pending || env->n_rcpts == 0 || env->sender == NULL)
		abort();
	for (size_t i = 0; i < env->n_rcpts; i++) {
		if (env->rcpts[i].address == NULL || strlen(env->rcpts[i].address) > 256)
			abort();
	}
	fz_spool_discard(spool); /* ours now, also on failure */
	if (f->variant == 2 && (f->seq++ % 2) == 0)
		return NULL;
	f->deliver_pending = true;
	f->deliver_cb = cb;
	f->deliver_arg = arg;
	f->deliver_rcpts = env->n_rcpts;
	return &f->token_deliver;
}

static void fz_deliver_cancel(void *ctx, void *handle)
{
	struct fz *f = ctx;
	if (!f->deliver_pending || handle != &f->token_deliver)
		abort();
	f->deliver_pending = false;
}

/* Finish whatever the session waits for. */
static void fz_finish(void)
{
	if (fz.auth_pending) {
		fz.auth_pending = false;
		fz.auth_cb(fz.auth_arg, fz.auth_result, fz.auth_result == AUTH_OK ? "user@example.test" : NULL);
	} else if (fz.deliver_pending) {
		static const char *const names[] = { "delivered", "tempfail", "over-quota", "too-big-for-quota" };
		const char *outcomes[128];
		enum smtp_deliver_status st = (enum smtp_deliver_status)(fz.seq++ % 4);
		for (size_t i = 0; i < fz.deliver_rcpts && i < 128; i++)
			outcomes[i] = names[st];
		struct smtp_deliver_result r = { .status = st, .durable_ms = 1, .outcomes = outcomes };
		fz.deliver_pending = false;
		fz.deliver_cb(fz.deliver_arg, &r);
	} else {
		abort(); /* WAIT with nothing to wait for */
	}
}

/* Every reply line: three digits 2xx-5xx, ' ' or '-', text, CRLF. */
static void fz_check_output(struct session *s)
{
	struct buf *out = session_output(s);
	const char *p = buf_ptr(out), *end = p + buf_len(out);

#ifdef FUZZ_SMTP_ECHO
	/* Build with -DFUZZ_SMTP_ECHO to watch the replies to an input. */
	fwrite(p, 1, buf_len(out), stderr);
#endif
	while (p < end) {
		const char *lf = memchr(p, '\n', (size_t)(end - p));
		if (lf == NULL || lf - p < 5 || lf[-1] != '\r')
			abort();
		if (p[0] < '2' || p[0] > '5' || p[1] < '0' || p[1] > '9' || p[2] < '0' || p[2] > '9' ||
		    (p[3] != ' ' && p[3] != '-'))
			abort();
		for (const char *q = p; q < lf - 1; q++) {
			if (*q == '\r' || *q == '\0')
				abort();
		}
		p = lf + 1;
	}
	buf_reset(out);
}

static struct config cfgs[4];

static void fz_init(void)
{
	log_setup(LOG_LEVEL_ERROR, false, NULL);
	for (int i = 0; i < 4; i++) {
		config_dev_setup(&cfgs[i]);
		free(cfgs[i].domains[0]);
		cfgs[i].domains[0] = strdup("example.test");
	}
	/* Tiny limits: the size, recipient, line and error limits are hit. */
	cfgs[1].message_size_max = 200;
	cfgs[1].smtp_max_recipients = 2;
	cfgs[1].smtp_data_line_max = 1000;
	cfgs[1].max_bad_commands = 4;
	cfgs[3].allow_plaintext_auth_loopback = false;
	cfgs[3].submission_check_sender = false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	static const enum listener_kind kinds[] = { LISTENER_SMTP, LISTENER_SUBMISSION, LISTENER_SUBMISSIONS };

	if (!ready) {
		fz_init();
		ready = true;
	}
	if (size < 2)
		return 0;
	enum listener_kind kind = kinds[data[0] % 3];
	bool loopback = (data[0] / 3) % 2;
	int variant = (data[0] / 6) % 4;
	bool leave_pending = (data[0] / 24) % 2;
	unsigned cut = data[1] % 8;
	uint32_t rng = 0x9e3779b9u ^ ((uint32_t)data[1] << 16) ^ (uint32_t)size;
	data += 2;
	size -= 2;

	memset(&fz, 0, sizeof(fz));
	fz.variant = variant;
	fz.be = (struct smtp_backend){
		.ctx = &fz,
		.can_relay = fz_can_relay,
		.domain_is_local = fz_domain_is_local,
		.rcpt_check = fz_rcpt_check,
		.sender_owned = fz_sender_owned,
		.auth_start = fz_auth_start,
		.auth_cancel = fz_auth_cancel,
		.spool_open = fz_spool_open,
		.spool_write = fz_spool_write,
		.spool_discard = fz_spool_discard,
		.deliver_start = fz_deliver_start,
		.deliver_cancel = fz_deliver_cancel,
	};
	struct session_params p = {
		.cfg = &cfgs[variant], .kind = kind, .id = 1,
		.peer = loopback ? "127.0.0.1" : "192.0.2.1", .peer_loopback = loopback,
		.tls = listener_kind_implicit_tls(kind), .backend = &fz.be,
	};
	struct session *s = session_new(&smtp_proto, &p);
	if (p.tls)
		session_set_tls(s, "TLSv1.3", "TLS_AES_256_GCM_SHA384");
	session_start(s);
	fz_check_output(s);

	bool stop = false;
	for (size_t off = 0; off < size && !stop;) {
		size_t n = size - off;
		if (cut != 7) {
			rng ^= rng << 13;
			rng ^= rng >> 17;
			rng ^= rng << 5;
			size_t max = (size_t)1 << cut;
			size_t want = 1 + rng % max;
			if (want < n)
				n = want;
		}
		/* A copy of exactly n bytes, so ASan sees an over-read of the feed. */
		uint8_t *chunk = malloc(n);
		memcpy(chunk, data + off, n);
		enum session_effect e = session_feed(s, chunk, n);
		free(chunk);
		off += n;
		for (;;) {
			fz_check_output(s);
			if (e == SESSION_EFFECT_STARTTLS) {
				e = session_tls_started(s, "TLSv1.3", "TLS_AES_128_GCM_SHA256");
				continue;
			}
			if (e == SESSION_EFFECT_WAIT) {
				if (leave_pending) {
					stop = true;
					break;
				}
				fz_finish();
				if (!session_resumed(s))
					abort();
				e = session_continue(s);
				continue;
			}
			if (e == SESSION_EFFECT_CLOSE)
				stop = true;
			break;
		}
	}
	if (!stop) {
		session_timeout(s);
		session_shutdown(s);
		fz_check_output(s);
	}
	session_free(&s);
	if (fz.auth_pending || fz.deliver_pending || fz.spools_open != 0)
		abort();
	return 0;
}
