/*
 * The sans-I/O session driver: one protocol instance, its bounded input and
 * its output, with no sockets. core/conn.c feeds it bytes from the network
 * (already decrypted) and sends what it leaves in the output buffer.
 *
 * The driver hands the protocol one line (or one run of exact bytes) at a
 * time and stops the moment the protocol returns an effect. Input that
 * arrived pipelined behind that command stays in the line reader until the
 * effect is done, with one exception that matters for security: STARTTLS
 * throws it away, because bytes sent before the handshake were never
 * protected and must not be read as if they were (CVE-2011-0411 and its
 * many relatives).
 */
#include "core/session.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/trace.h"
#include "core/xalloc.h"

/* Room in the input buffer beyond one line: a read chunk or two of pipelined
 * commands that arrive while an effect is pending. conn.c reads 64 KiB at a
 * time and stops reading while an effect is pending. */
#define SESSION_INPUT_SLACK (128 * 1024)
/* Output is our own text plus message content written in bounded chunks by
 * continuations, so this is a safety net rather than a limit. */
#define SESSION_OUTPUT_MAX (8 * 1024 * 1024)

struct session {
	const struct session_proto *proto;
	void *state;
	struct session_params params;
	char *peer;

	struct linereader in;
	struct buf out;
	uint64_t want_bytes;        /* > 0: exact-bytes mode */
	uint64_t timeout_ms;

	const char *tls_version;
	const char *tls_cipher;
	bool tls;
	bool broken;                /* output overflowed: close */

	bool in_proto;              /* inside a protocol callback from session_run */
	bool waiting;               /* the protocol returned WAIT, not resumed yet */
	bool resumed;               /* resumed; the glue has not continued yet */
	bool resume_early;          /* resumed before it even returned WAIT */
	enum session_effect resume_then;
	bool want_drain;

	size_t trace_body_in;       /* client content not yet summarised */
	size_t trace_body_out;      /* server content not yet summarised */
};

static uint64_t session_default_timeout(const struct config *cfg, enum listener_kind kind)
{
	switch (kind) {
	case LISTENER_POP3:
	case LISTENER_POP3S:
		return cfg->pop3_timeout_ms;
	case LISTENER_IMAP:
	case LISTENER_IMAPS:
		return cfg->imap_timeout_ms;
	default:
		return cfg->smtp_timeout_ms;
	}
}

static size_t session_default_line_max(const struct config *cfg, enum listener_kind kind)
{
	switch (kind) {
	case LISTENER_POP3:
	case LISTENER_POP3S:
		return cfg->pop3_line_max;
	case LISTENER_IMAP:
	case LISTENER_IMAPS:
		return cfg->imap_line_max;
	default:
		return cfg->smtp_line_max;
	}
}

struct session *session_new(const struct session_proto *proto, const struct session_params *params)
{
	struct session *s = xcalloc(1, sizeof(*s));
	size_t line_max = session_default_line_max(params->cfg, params->kind);

	s->proto = proto;
	s->params = *params;
	s->peer = xstrdup(params->peer ? params->peer : "");
	s->params.peer = s->peer;
	s->tls = params->tls;
	s->timeout_ms = session_default_timeout(params->cfg, params->kind);
	linereader_init(&s->in, line_max, line_max + SESSION_INPUT_SLACK);
	buf_init(&s->out, SESSION_OUTPUT_MAX);
	s->state = proto->create(s);
	return s;
}

void session_free(struct session **sp)
{
	struct session *s = *sp;

	if (s == NULL)
		return;
	*sp = NULL;
	if (s->state != NULL)
		s->proto->destroy(s->state);
	linereader_free(&s->in);
	buf_free(&s->out);
	free(s->peer);
	free(s);
}

/* Content is summarised once, when the dialogue moves on, not per chunk. */
static void session_trace_flush_bodies(struct session *s)
{
	if (s->trace_body_in > 0 && trace_get_mode() == TRACE_ON) {
		char note[64];
		int n = snprintf(note, sizeof(note), "<message content: %zu bytes>", s->trace_body_in);
		trace_line(s->proto->name, s->params.id, 'C', note, (size_t)n, (size_t)n);
	}
	if (s->trace_body_out > 0 && trace_get_mode() == TRACE_ON) {
		char note[64];
		int n = snprintf(note, sizeof(note), "<message content: %zu bytes>", s->trace_body_out);
		trace_line(s->proto->name, s->params.id, 'S', note, (size_t)n, (size_t)n);
	}
	s->trace_body_in = s->trace_body_out = 0;
}

static void session_trace_client_line(struct session *s, const char *line, size_t len)
{
	if (!trace_on())
		return;
	session_trace_flush_bodies(s);
	size_t visible = s->proto->trace_visible ? s->proto->trace_visible(s->state, line, len) : len;
	trace_line(s->proto->name, s->params.id, 'C', line, len, visible);
}

void session_start(struct session *s)
{
	s->proto->greet(s->state);
}

/* A protocol that returns WAIT after its work already finished (a backend
 * that answered at once) has nothing to wait for. */
static enum session_effect session_settle(struct session *s, enum session_effect effect)
{
	if (effect != SESSION_EFFECT_WAIT)
		return effect;
	if (s->resume_early) {
		s->resume_early = false;
		return s->resume_then;
	}
	s->waiting = true;
	return SESSION_EFFECT_WAIT;
}

/* Hand buffered input to the protocol until it wants something done. */
static enum session_effect session_run(struct session *s)
{
	enum session_effect effect = SESSION_EFFECT_NONE;

	while (effect == SESSION_EFFECT_NONE && !s->broken) {
		if (s->want_bytes > 0) {
			const char *data;
			size_t want = s->want_bytes > SIZE_MAX ? SIZE_MAX : (size_t)s->want_bytes;
			size_t n = linereader_take(&s->in, want, &data);
			if (n == 0)
				break;
			s->want_bytes -= n;
			s->in_proto = true;
			effect = session_settle(s, s->proto->bytes(s->state, data, n));
			s->in_proto = false;
			continue;
		}

		const char *line;
		size_t len;
		switch (linereader_next(&s->in, &line, &len)) {
		case LINEREADER_NEED_MORE:
			return s->broken ? SESSION_EFFECT_CLOSE : effect;
		case LINEREADER_TOO_LONG:
			if (trace_on())
				trace_event(s->proto->name, s->params.id,
					    "client line longer than %zu octets dropped", s->in.line_max);
			s->in_proto = true;
			effect = session_settle(s, s->proto->line_too_long(s->state));
			s->in_proto = false;
			break;
		case LINEREADER_LINE:
			session_trace_client_line(s, line, len);
			s->in_proto = true;
			effect = session_settle(s, s->proto->line(s->state, line, len));
			s->in_proto = false;
			break;
		}
	}
	if (effect == SESSION_EFFECT_STARTTLS)
		linereader_discard(&s->in);
	return s->broken ? SESSION_EFFECT_CLOSE : effect;
}

enum session_effect session_feed(struct session *s, const void *data, size_t len)
{
	if (linereader_feed(&s->in, data, len) < 0) {
		log_warn("%s %llu: input flood from %s, closing", s->proto->name,
			 (unsigned long long)s->params.id, s->peer);
		return SESSION_EFFECT_CLOSE;
	}
	if (s->waiting || s->resumed)
		return SESSION_EFFECT_NONE; /* kept for session_continue() */
	return session_run(s);
}

void session_resume(struct session *s, enum session_effect then)
{
	s->resume_then = then == SESSION_EFFECT_WAIT ? SESSION_EFFECT_NONE : then;
	if (!s->waiting) {
		/* Still inside the protocol's call that will return WAIT. */
		if (s->in_proto)
			s->resume_early = true;
		return;
	}
	s->waiting = false;
	s->resumed = true;
	session_poke(s);
}

bool session_resumed(const struct session *s)
{
	return s->resumed;
}

enum session_effect session_continue(struct session *s)
{
	if (!s->resumed)
		return s->waiting ? SESSION_EFFECT_WAIT : SESSION_EFFECT_NONE;
	s->resumed = false;
	if (s->broken)
		return SESSION_EFFECT_CLOSE;
	if (s->resume_then != SESSION_EFFECT_NONE)
		return s->resume_then;
	return session_run(s);
}

void session_wait_drain(struct session *s)
{
	s->want_drain = true;
}

bool session_wants_drain(const struct session *s)
{
	return s->want_drain;
}

void session_drained(struct session *s)
{
	if (!s->want_drain)
		return;
	s->want_drain = false;
	if (s->proto->drained)
		s->proto->drained(s->state);
}

void session_poke(struct session *s)
{
	if (s->params.poke != NULL && !s->in_proto)
		s->params.poke(s->params.poke_ctx);
}

void *session_backend(const struct session *s)
{
	return s->params.backend;
}

void session_set_tls(struct session *s, const char *version, const char *cipher)
{
	s->tls = true;
	s->tls_version = version;
	s->tls_cipher = cipher;
}

enum session_effect session_tls_started(struct session *s, const char *version, const char *cipher)
{
	session_set_tls(s, version, cipher);
	enum session_effect effect = SESSION_EFFECT_NONE;
	if (s->proto->tls_started) {
		s->in_proto = true;
		effect = session_settle(s, s->proto->tls_started(s->state));
		s->in_proto = false;
	}
	return effect != SESSION_EFFECT_NONE ? effect : session_run(s);
}

void session_timeout(struct session *s)
{
	s->proto->timeout(s->state);
}

void session_shutdown(struct session *s)
{
	s->proto->shutdown(s->state);
}

struct buf *session_output(struct session *s)
{
	session_trace_flush_bodies(s);
	return &s->out;
}

size_t session_input_pending(const struct session *s)
{
	return linereader_buffered(&s->in);
}

/* Output storage kept between replies. None: an allocation per reply costs
 * far less than encrypting it, and of 10,000 idle sessions almost none is
 * about to answer. Large replies (FETCH, RETR) go out in pieces while the
 * protocol waits, and give their storage back once they are done. */
#define SESSION_OUTPUT_KEEP 0

void session_trim(struct session *s)
{
	if (s->in_proto || s->waiting || s->resumed || s->want_drain)
		return;
	/* Only empty buffers are given back: a client that sends without
	 * reading keeps both partly full, and shrinking them to their
	 * contents after every read would only make them grow again. */
	if (buf_len(&s->out) == 0)
		buf_shrink(&s->out, SESSION_OUTPUT_KEEP);
	if (linereader_buffered(&s->in) == 0)
		linereader_trim(&s->in);
}

static void session_append(struct session *s, const void *data, size_t len)
{
	if (buf_append(&s->out, data, len) < 0) {
		log_error("%s %llu: output buffer overflow, closing", s->proto->name,
			  (unsigned long long)s->params.id);
		s->broken = true;
	}
}

void session_reply(struct session *s, const char *fmt, ...)
{
	char small[1024];
	char *text = small;
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(small)) {
		text = xmalloc((size_t)n + 1);
		va_start(ap, fmt);
		vsnprintf(text, (size_t)n + 1, fmt, ap);
		va_end(ap);
	}
	if (trace_on()) {
		session_trace_flush_bodies(s);
		const char *p = text, *end = text + n;
		while (p < end) {
			const char *lf = memchr(p, '\n', (size_t)(end - p));
			size_t ln = lf ? (size_t)(lf - p) : (size_t)(end - p);
			size_t shown = ln > 0 && p[ln - 1] == '\r' ? ln - 1 : ln;
			trace_line(s->proto->name, s->params.id, 'S', p, shown, shown);
			p += lf ? ln + 1 : ln;
		}
	}
	session_append(s, text, (size_t)n);
	if (text != small)
		free(text);
}

void session_write_body(struct session *s, const void *data, size_t len)
{
	if (trace_get_mode() == TRACE_FULL)
		trace_body(s->proto->name, s->params.id, 'S', data, len);
	else
		s->trace_body_out += len;
	session_append(s, data, len);
}

void session_trace_client_body(struct session *s, size_t len)
{
	s->trace_body_in += len;
}

void session_expect_bytes(struct session *s, uint64_t n)
{
	s->want_bytes = n;
}

bool session_line_bare_lf(const struct session *s)
{
	return s->in.line_bare_lf;
}

bool session_prev_line_bare_lf(const struct session *s)
{
	return s->in.prev_bare_lf;
}

void session_set_line_max(struct session *s, size_t line_max)
{
	linereader_set_line_max(&s->in, line_max);
}

void session_set_timeout(struct session *s, uint64_t ms)
{
	s->timeout_ms = ms;
}

uint64_t session_timeout_ms(const struct session *s) { return s->timeout_ms; }
const struct config *session_config(const struct session *s) { return s->params.cfg; }
enum listener_kind session_kind(const struct session *s) { return s->params.kind; }
uint64_t session_id(const struct session *s) { return s->params.id; }
const char *session_peer(const struct session *s) { return s->peer; }
bool session_peer_loopback(const struct session *s) { return s->params.peer_loopback; }
bool session_tls_active(const struct session *s) { return s->tls; }
const char *session_tls_version(const struct session *s) { return s->tls ? s->tls_version : NULL; }
const char *session_tls_cipher(const struct session *s) { return s->tls ? s->tls_cipher : NULL; }

bool session_starttls_allowed(const struct session *s)
{
	return !s->tls && !listener_kind_implicit_tls(s->params.kind);
}
