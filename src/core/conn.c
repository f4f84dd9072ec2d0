/*
 * Connection glue: socket <-> (TLS) <-> session.
 *
 * Reading: every read lands in the server's shared buffer and is handed on
 * before the callback returns (one thread, so one buffer is enough). With TLS
 * the ciphertext goes into the connection's memory BIO and the plaintext that
 * comes out is fed to the session.
 *
 * Writing: session output is copied into a write request per flush; the
 * number of bytes in flight is the back-pressure signal. Past
 * write_buffer_max we stop reading from the peer (a client that pipelines
 * commands but never reads the replies cannot make us buffer without end),
 * and start again below half of it.
 *
 * Reading is also off while a session effect is pending, while a goodbye is
 * being flushed, and once closing has begun. conn_update_reading() is the one
 * place that decides, so the rules cannot drift apart.
 *
 * Lifetime: uv_close() on the socket and the timer; the struct is freed when
 * both close callbacks have run and no reference is left.
 */
#include "core/conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <uv.h>

#include "core/log.h"
#include "core/server.h"
#include "core/trace.h"
#include "core/xalloc.h"

/* After a goodbye, how long a peer that does not read may keep us waiting. */
#define CONN_LINGER_MS 10000
/* Refusals in progress at once (each may need a TLS handshake); past this a
 * new connection is simply closed. */
#define CONN_REFUSING_MAX 64
/* Plaintext is pulled out of TLS this much at a time. */
#define CONN_TLS_CHUNK (16 * 1024)

struct conn {
	uv_tcp_t tcp;                 /* first, so the handle address is the conn's */
	uv_timer_t timer;
	struct server *srv;
	/* Copied from the listener, which is freed when the server stops
	 * while this connection may still be saying goodbye. */
	const struct session_proto *proto;
	char listener_name[96];
	struct conn *prev, *next;
	struct session *session;
	struct tls_conn *tls;

	struct iplimit_key ipkey;
	bool counted;                 /* holds a place in n_conns and the IP table */
	bool refusing;                /* only here to be told "too many" */
	enum session_refusal refusal;

	int refs;                     /* the handles count as one until both closed */
	int handles_open;
	bool closing;                 /* uv_close has been called */
	bool close_after_flush;       /* goodbye sent: close when writes drain */
	bool effect_pending;          /* the session is in SESSION_EFFECT_WAIT */
	bool settling;                /* inside conn_settle() */
	bool settle_again;            /* poked while settling: go round again */
	bool shutdown_deferred;       /* stop requested while the session waited */
	bool tls_handshaking;
	bool tls_starttls;            /* upgrade of a plain session, not implicit */
	bool backpressured;
	bool reading;

	size_t queued;                /* bytes handed to uv_write, not yet done */
	uint64_t bytes_in, bytes_out;
	uint64_t started_ms;
	uint64_t active_ms;           /* last read or finished wait (for conn_trim_quiet) */
	uint64_t id;
	char peer[INET6_ADDRSTRLEN];
	int peer_port;
	bool peer_loopback;
};

struct conn_write {
	uv_write_t req;
	struct conn *c;
	size_t len;
	char data[];
};

static void conn_flush(struct conn *c);
static void conn_close_graceful(struct conn *c);
static void conn_update_reading(struct conn *c);
static void conn_timer_fired(uv_timer_t *t);
static void conn_settle(struct conn *c);
static void conn_pump_tls(struct conn *c);
static void conn_timer_start(struct conn *c, uint64_t ms);
static void conn_trim(struct conn *c);

struct conn *conn_next(struct conn *c)
{
	return c->next;
}

void conn_ref(struct conn *c)
{
	c->refs++;
}

static void conn_free(struct conn *c)
{
	struct server *srv = c->srv;

	if (c->prev)
		c->prev->next = c->next;
	else
		srv->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	if (c->counted) {
		srv->n_conns--;
		iplimit_release(srv->iplimit, &c->ipkey);
	}
	if (c->refusing)
		srv->n_refusing--;
	session_free(&c->session);
	tls_conn_free(&c->tls);
	free(c);
	server__conn_gone(srv);
}

void conn_unref(struct conn *c)
{
	if (--c->refs == 0)
		conn_free(c);
}

static void conn_handle_closed(uv_handle_t *h)
{
	struct conn *c = h->data;

	if (--c->handles_open == 0)
		conn_unref(c);
}

static void conn_log_close(struct conn *c)
{
	uint64_t ms = uv_now(c->srv->loop) - c->started_ms;
	const char *ver = c->tls && tls_conn_handshake_done(c->tls) ? tls_conn_version(c->tls) : NULL;

	log_info("conn %llu close: peer=%s:%d listener=%s tls=%s%s%s in=%llu out=%llu duration=%llu.%03llus",
		 (unsigned long long)c->id, c->peer, c->peer_port, c->listener_name,
		 ver ? ver : "no", ver ? "/" : "", ver ? tls_conn_cipher(c->tls) : "",
		 (unsigned long long)c->bytes_in, (unsigned long long)c->bytes_out,
		 (unsigned long long)(ms / 1000), (unsigned long long)(ms % 1000));
	trace_event(c->proto->name, c->id, "connection closed");
}

void conn_abort(struct conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	conn_log_close(c);
	uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
	uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
}

static void conn_write_done(uv_write_t *req, int status)
{
	struct conn_write *w = (struct conn_write *)req;
	struct conn *c = w->c;

	c->queued -= w->len;
	free(w);
	if (status < 0 && status != UV_ECANCELED) {
		log_debug("conn %llu: write failed: %s", (unsigned long long)c->id, uv_strerror(status));
		conn_abort(c);
	} else if (!c->closing) {
		if (c->close_after_flush && c->queued == 0) {
			conn_abort(c);
		} else if (c->effect_pending) {
			/* A reply going out in pieces: the client is reading,
			 * so it is not idle. */
			if (session_wants_drain(c->session))
				conn_timer_start(c, session_timeout_ms(c->session));
			conn_settle(c);
		} else {
			conn_update_reading(c);
		}
	}
	conn_unref(c);
}

static void conn_write_raw(struct conn *c, const void *data, size_t len)
{
	if (len == 0 || c->closing)
		return;
	struct conn_write *w = xmalloc(sizeof(*w) + len);
	w->c = c;
	w->len = len;
	memcpy(w->data, data, len);
	uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
	int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, conn_write_done);
	if (rc < 0) {
		free(w);
		log_debug("conn %llu: write: %s", (unsigned long long)c->id, uv_strerror(rc));
		conn_abort(c);
		return;
	}
	conn_ref(c);
	c->queued += len;
	c->bytes_out += len;
	if (c->queued > c->srv->cfg->write_buffer_max)
		c->backpressured = true;
}

/* Move ciphertext the TLS layer produced onto the socket. */
static void conn_flush_tls(struct conn *c)
{
	char chunk[16 * 1024];
	size_t n;

	while ((n = tls_conn_take_output(c->tls, chunk, sizeof(chunk))) > 0)
		conn_write_raw(c, chunk, n);
}

/* Send what the session (or a refusal) left in its output buffer. */
static void conn_send(struct conn *c, struct buf *out)
{
	if (buf_len(out) == 0)
		return;
	if (c->tls != NULL) {
		if (tls_conn_write(c->tls, buf_ptr(out), buf_len(out)) != TLS_IO_OK) {
			log_debug("conn %llu: TLS write: %s", (unsigned long long)c->id, tls_conn_error(c->tls));
			buf_reset(out);
			conn_abort(c);
			return;
		}
		conn_flush_tls(c);
	} else {
		conn_write_raw(c, buf_ptr(out), buf_len(out));
	}
	buf_reset(out);
}

static void conn_flush(struct conn *c)
{
	if (c->session != NULL && !c->closing)
		conn_send(c, session_output(c->session));
}

static void conn_timer_start(struct conn *c, uint64_t ms)
{
	if (!c->closing)
		uv_timer_start(&c->timer, conn_timer_fired, ms, 0);
}

/* Close once the goodbye has been written; a TLS session gets close_notify
 * first so the client can tell our close from a truncation attack. */
static void conn_close_graceful(struct conn *c)
{
	if (c->closing || c->close_after_flush)
		return;
	conn_flush(c);
	if (c->tls != NULL && tls_conn_handshake_done(c->tls)) {
		tls_conn_shutdown(c->tls);
		conn_flush_tls(c);
	}
	c->close_after_flush = true;
	if (c->closing)
		return;
	if (c->queued == 0) {
		conn_abort(c);
		return;
	}
	conn_timer_start(c, CONN_LINGER_MS);
	conn_update_reading(c);
}

static void conn_start_tls(struct conn *c, bool starttls)
{
	c->tls = tls_conn_new(c->srv->tls, NULL);
	c->tls_handshaking = true;
	c->tls_starttls = starttls;
	conn_timer_start(c, c->srv->cfg->tls_handshake_timeout_ms);
}

static void conn_handle_effect(struct conn *c, enum session_effect effect)
{
	switch (effect) {
	case SESSION_EFFECT_NONE:
		break;
	case SESSION_EFFECT_CLOSE:
		conn_close_graceful(c);
		break;
	case SESSION_EFFECT_STARTTLS:
		/* The "ready to start TLS" reply goes out in plaintext, then
		 * every byte after it is TLS. The session has already
		 * discarded input pipelined behind the command. */
		conn_flush(c);
		conn_start_tls(c, true);
		break;
	case SESSION_EFFECT_WAIT:
		c->effect_pending = true;
		conn_settle(c);
		break;
	}
}

/*
 * The session may move on by itself while it waits: its backend finished
 * (session_resume), it wants to write more as the socket drains, or it has
 * unsolicited output. Sending, continuing and draining can each lead to
 * the others, and to this function again through session_poke(), so one
 * loop runs until nothing is left to do.
 */
static void conn_settle(struct conn *c)
{
	if (c->settling) {
		c->settle_again = true;
		return;
	}
	c->settling = true;
	conn_ref(c);
	do {
		c->settle_again = false;
		if (c->closing || c->close_after_flush || c->session == NULL)
			break;
		conn_flush(c);
		if (!c->effect_pending)
			break;
		if (session_resumed(c->session)) {
			c->effect_pending = false;
			conn_handle_effect(c, session_continue(c->session));
			c->settle_again = true;
		} else if (session_wants_drain(c->session) &&
			   c->queued <= c->srv->cfg->write_buffer_max / 2) {
			session_drained(c->session);
			c->settle_again = true;
		}
	} while (c->settle_again);
	c->settling = false;
	if (!c->closing && !c->close_after_flush && !c->effect_pending) {
		if (c->shutdown_deferred) {
			session_shutdown(c->session);
			conn_close_graceful(c);
		} else if (c->tls != NULL && !c->tls_handshaking) {
			/* Plaintext may be waiting inside TLS, read before the
			 * wait began. */
			conn_pump_tls(c);
			if (c->effect_pending)
				conn_settle(c);
		}
		c->active_ms = uv_now(c->srv->loop);
	}
	conn_update_reading(c);
	conn_unref(c);
}

static void conn_poke(void *ctx)
{
	conn_settle(ctx);
}

static void conn_input(struct conn *c, const char *data, size_t len)
{
	enum session_effect effect = session_feed(c->session, data, len);
	conn_handle_effect(c, effect);
}

static void conn_tls_ready(struct conn *c)
{
	const char *ver = tls_conn_version(c->tls), *cipher = tls_conn_cipher(c->tls);

	c->tls_handshaking = false;
	log_debug("conn %llu: TLS %s %s", (unsigned long long)c->id, ver, cipher);
	trace_event(c->proto->name, c->id, "TLS started: %s, %s", ver, cipher);
	if (c->refusing) {
		struct buf out;
		buf_init(&out, 1024);
		c->proto->refuse(&out, c->refusal, c->srv->cfg->hostname);
		conn_send(c, &out);
		buf_free(&out);
		conn_close_graceful(c);
		return;
	}
	conn_timer_start(c, session_timeout_ms(c->session));
	if (c->tls_starttls) {
		conn_handle_effect(c, session_tls_started(c->session, ver, cipher));
	} else {
		session_set_tls(c->session, ver, cipher);
		session_start(c->session);
	}
}

/* Pull plaintext out of TLS and feed it on, until TLS needs more
 * ciphertext or the session is busy. */
static void conn_pump_tls(struct conn *c)
{
	char plain[CONN_TLS_CHUNK];

	while (!c->closing && !c->close_after_flush && !c->effect_pending && c->tls != NULL) {
		size_t n = 0;
		enum tls_io r = tls_conn_read(c->tls, plain, sizeof(plain), &n);

		if (r == TLS_IO_ERROR) {
			log_info("conn %llu: TLS failure from %s: %s", (unsigned long long)c->id, c->peer,
				 tls_conn_error(c->tls));
			conn_flush_tls(c); /* the alert, if any */
			c->close_after_flush = true;
			if (c->queued == 0)
				conn_abort(c);
			return;
		}
		if (c->tls_handshaking && tls_conn_handshake_done(c->tls))
			conn_tls_ready(c);
		if (r == TLS_IO_CLOSED) {
			conn_close_graceful(c);
			return;
		}
		if (n > 0 && !c->refusing)
			conn_input(c, plain, n);
		if (r != TLS_IO_OK || n == 0)
			break;
	}
	if (c->tls != NULL && !c->closing)
		conn_flush_tls(c);
}

static void conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct conn *c = h->data;
	*buf = uv_buf_init(c->srv->readbuf, sizeof(c->srv->readbuf));
}

static void conn_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = stream->data;

	if (nread == 0)
		return;
	if (nread < 0) {
		if (nread != UV_EOF)
			log_debug("conn %llu: read: %s", (unsigned long long)c->id, uv_strerror((int)nread));
		conn_abort(c);
		return;
	}
	c->bytes_in += (uint64_t)nread;
	conn_ref(c); /* the session may close us while we are in here */
	if (!c->close_after_flush) {
		if (c->tls != NULL) {
			tls_conn_feed(c->tls, buf->base, (size_t)nread);
			conn_pump_tls(c);
		} else if (!c->refusing) {
			conn_input(c, buf->base, (size_t)nread);
		}
		if (!c->closing && !c->close_after_flush && !c->tls_handshaking)
			conn_timer_start(c, session_timeout_ms(c->session));
		conn_flush(c);
		c->active_ms = uv_now(c->srv->loop);
	}
	conn_update_reading(c);
	conn_unref(c);
}

/* Between commands a connection should hold little more than its TLS
 * state: the buffers that a long command, a large reply or the handshake
 * grew are given back (contract 5 in memory: 10,000 idle IMAP clients must
 * fit). Only connections that have been quiet for a while are trimmed: one
 * that is busy would grow its buffers again at once, and freeing them
 * after every read costs more than it saves. */
void conn_trim_quiet(struct conn *c, uint64_t quiet_ms)
{
	if (uv_now(c->srv->loop) - c->active_ms >= quiet_ms)
		conn_trim(c);
}

static void conn_trim(struct conn *c)
{
	if (c->closing || c->effect_pending)
		return;
	if (c->session != NULL)
		session_trim(c->session);
	if (c->tls != NULL)
		tls_conn_trim(c->tls);
}

static void conn_update_reading(struct conn *c)
{
	if (c->closing)
		return;
	if (c->backpressured && c->queued <= c->srv->cfg->write_buffer_max / 2)
		c->backpressured = false;
	bool want = !c->close_after_flush && !c->effect_pending && !c->backpressured;

	if (want && !c->reading) {
		if (uv_read_start((uv_stream_t *)&c->tcp, conn_alloc, conn_read) == 0)
			c->reading = true;
	} else if (!want && c->reading) {
		uv_read_stop((uv_stream_t *)&c->tcp);
		c->reading = false;
	}
}

static void conn_timer_fired(uv_timer_t *t)
{
	struct conn *c = t->data;

	if (c->close_after_flush || c->refusing) {
		conn_abort(c);
	} else if (c->tls_handshaking) {
		log_info("conn %llu: TLS handshake timeout from %s", (unsigned long long)c->id, c->peer);
		conn_abort(c);
	} else if (c->effect_pending && !session_wants_drain(c->session)) {
		/* Our own work is slow, not the client: keep waiting. */
		conn_timer_start(c, session_timeout_ms(c->session));
	} else {
		log_info("conn %llu: idle timeout from %s", (unsigned long long)c->id, c->peer);
		session_timeout(c->session);
		conn_close_graceful(c);
	}
}

void conn_shutdown(struct conn *c)
{
	if (c->closing || c->close_after_flush)
		return;
	if (c->refusing || c->tls_handshaking || c->session == NULL) {
		conn_abort(c);
		return;
	}
	if (c->effect_pending) {
		/* Let the work finish and its reply go out (a delivery that
		 * became durable is acknowledged); the stop deadline still
		 * bounds the wait. */
		c->shutdown_deferred = true;
		return;
	}
	session_shutdown(c->session);
	conn_close_graceful(c);
}

static void conn_peer_name(struct conn *c)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);

	memset(&ss, 0, sizeof(ss));
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0) {
		snprintf(c->peer, sizeof(c->peer), "unknown");
		return;
	}
	iplimit_key_from((struct sockaddr *)&ss, &c->ipkey);
	if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			inet_ntop(AF_INET, s6->sin6_addr.s6_addr + 12, c->peer, sizeof(c->peer));
			c->peer_loopback = s6->sin6_addr.s6_addr[12] == 127;
		} else {
			inet_ntop(AF_INET6, &s6->sin6_addr, c->peer, sizeof(c->peer));
			c->peer_loopback = IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr);
		}
		c->peer_port = ntohs(s6->sin6_port);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &s4->sin_addr, c->peer, sizeof(c->peer));
		c->peer_port = ntohs(s4->sin_port);
		c->peer_loopback = (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
	}
}

void conn_accept(struct listener *l)
{
	struct server *srv = l->srv;
	const struct config *cfg = srv->cfg;
	struct conn *c = xcalloc(1, sizeof(*c));

	c->srv = srv;
	c->proto = l->proto;
	snprintf(c->listener_name, sizeof(c->listener_name), "%s", l->name);
	c->refs = 1;
	c->id = ++srv->next_id;
	c->started_ms = c->active_ms = uv_now(srv->loop);
	uv_tcp_init(srv->loop, &c->tcp);
	uv_timer_init(srv->loop, &c->timer);
	c->tcp.data = c;
	c->timer.data = c;
	c->handles_open = 2;
	c->next = srv->conns;
	if (srv->conns)
		srv->conns->prev = c;
	srv->conns = c;
	srv->n_handles_open++;

	if (uv_accept((uv_stream_t *)&l->tcp, (uv_stream_t *)&c->tcp) != 0) {
		conn_abort(c);
		return;
	}
	if (srv->stopping) {
		conn_abort(c);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	conn_peer_name(c);

	/* Contract 5: global and per-address limits, answered in the
	 * protocol's own words rather than by a silent close. */
	if (srv->n_conns >= cfg->max_connections) {
		c->refusing = true;
		c->refusal = SESSION_REFUSE_TOO_MANY;
	} else if (!iplimit_acquire(srv->iplimit, &c->ipkey, cfg->max_connections_per_ip)) {
		c->refusing = true;
		c->refusal = SESSION_REFUSE_TOO_MANY_FROM_IP;
	} else {
		c->counted = true;
		srv->n_conns++;
	}
	bool implicit_tls = listener_kind_implicit_tls(l->kind);

	if (c->refusing) {
		log_warn("conn %llu: refusing %s on %s: too many connections%s", (unsigned long long)c->id,
			 c->peer, l->name, c->refusal == SESSION_REFUSE_TOO_MANY_FROM_IP ? " from this address" : "");
		if (srv->n_refusing >= CONN_REFUSING_MAX) {
			c->refusing = false;
			conn_abort(c);
			return;
		}
		srv->n_refusing++;
		if (implicit_tls) {
			conn_start_tls(c, false);
		} else {
			struct buf out;
			buf_init(&out, 1024);
			l->proto->refuse(&out, c->refusal, cfg->hostname);
			conn_send(c, &out);
			buf_free(&out);
			c->close_after_flush = true;
			conn_timer_start(c, CONN_LINGER_MS);
			if (c->queued == 0 && !c->closing)
				conn_abort(c);
			return;
		}
		conn_update_reading(c);
		return;
	}

	struct session_params params = {
		.cfg = cfg,
		.kind = l->kind,
		.id = c->id,
		.peer = c->peer,
		.peer_loopback = c->peer_loopback,
		.tls = implicit_tls,
		.backend = server_backend_for(srv, l->kind),
		.poke = conn_poke,
		.poke_ctx = c,
	};
	c->session = session_new(l->proto, &params);
	log_info("conn %llu open: peer=%s:%d listener=%s", (unsigned long long)c->id, c->peer,
		 c->peer_port, l->name);
	trace_event(l->proto->name, c->id, "connection from %s:%d to %s", c->peer, c->peer_port, l->name);
	if (implicit_tls) {
		conn_start_tls(c, false);
	} else {
		session_start(c->session);
		conn_flush(c);
		conn_timer_start(c, session_timeout_ms(c->session));
	}
	conn_update_reading(c);
}
