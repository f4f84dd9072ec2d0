/*
 * One outgoing SMTP connection (see outbound_conn.h): socket <-> (TLS) <->
 * struct smtp_client, with the queue file as the source of the body.
 *
 * Why it is shaped so: the client decides everything and this file only
 * moves bytes, so every failure on the wire is turned into one
 * smtp_client_fail() call and every path ends the same way - the client
 * says CLOSE, the handles are closed, and the owner hears about it once,
 * from the last close callback. The struct lives until libuv has let go
 * of everything that points at it (two handles, the connect request, one
 * file read, the writes in flight): `pending` counts them.
 *
 * What it must never do: call the owner's callback from inside
 * outbound_conn_start() or outbound_conn_abort(); read the queue file on
 * the loop (uv_fs_read runs in the thread pool); read more of the message
 * while the socket's write queue is past the high-water mark.
 */
#include "mta/outbound_conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/tls.h"
#include "core/trace.h"
#include "core/xalloc.h"

#define OC_TRACE "smtp-out"
#define OC_TLS_CHUNK (16 * 1024)

struct outbound_conn {
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_connect_t connect_req;
	uv_fs_t fs_req;
	uv_loop_t *loop;

	struct sockaddr_storage addr;
	struct tls_ctx *tls_ctx;
	char *tls_name;
	bool implicit_tls;
	uint64_t connect_timeout_ms;
	uv_file fd;
	uint64_t body_offset, body_size, body_done;
	char *log_name;

	struct smtp_client *client;
	struct tls_conn *tls;
	bool tls_handshaking;

	outbound_conn_cb cb;         /* NULL once aborted */
	void *arg;

	int pending;                 /* handles open + requests in flight */
	bool connected;
	bool closing;                /* uv_close called */
	bool close_after_flush;      /* waiting for writes to drain, then close */
	bool body_wanted;            /* the client is in NEED_BODY */
	bool fs_busy;
	size_t queued;               /* octets handed to uv_write, not yet written */
	uint64_t bytes_in, bytes_out;
	uint64_t trace_id;
	char *chunk;                 /* SMTP_CLIENT_BODY_CHUNK octets for file reads */
};

struct oc_write {
	uv_write_t req;
	struct outbound_conn *oc;
	size_t len;
	char data[];
};

static char oc_readbuf[64 * 1024];   /* one thread: every read is handled at once */
static uint64_t oc_next_trace_id;

static void oc_act(struct outbound_conn *oc, enum smtp_client_action a);
static void oc_fail(struct outbound_conn *oc, enum smtp_client_failure why, const char *detail);
static void oc_pump_body(struct outbound_conn *oc);

static void oc_maybe_free(struct outbound_conn *oc)
{
	if (oc->pending > 0)
		return;
	if (oc->cb != NULL) {
		struct outbound_conn_info info = {
			.connected = oc->connected,
			.bytes_in = oc->bytes_in,
			.bytes_out = oc->bytes_out,
		};
		if (oc->tls != NULL && tls_conn_handshake_done(oc->tls)) {
			info.tls_version = tls_conn_version(oc->tls);
			info.tls_cipher = tls_conn_cipher(oc->tls);
		}
		oc->cb(oc->arg, oc->client, &info);
	}
	if (trace_on())
		trace_event(OC_TRACE, oc->trace_id, "connection closed");
	smtp_client_free(&oc->client);
	tls_conn_free(&oc->tls);
	tls_ctx_unref(&oc->tls_ctx);
	if (oc->fd >= 0)
		close(oc->fd);
	free(oc->tls_name);
	free(oc->log_name);
	free(oc->chunk);
	free(oc);
}

static void oc_handle_closed(uv_handle_t *h)
{
	struct outbound_conn *oc = h->data;

	oc->pending--;
	oc_maybe_free(oc);
}

static void oc_close_now(struct outbound_conn *oc)
{
	if (oc->closing)
		return;
	oc->closing = true;
	uv_close((uv_handle_t *)&oc->tcp, oc_handle_closed);
	uv_close((uv_handle_t *)&oc->timer, oc_handle_closed);
}

static void oc_timer_fired(uv_timer_t *t);

static void oc_arm(struct outbound_conn *oc, uint64_t ms)
{
	if (!oc->closing)
		uv_timer_start(&oc->timer, oc_timer_fired, ms > 0 ? ms : 1, 0);
}

/* The limit for what the client waits for now. */
static void oc_arm_client(struct outbound_conn *oc)
{
	uint64_t ms = smtp_client_timeout_ms(oc->client);

	if (smtp_client_done(oc->client) && (ms == 0 || ms > OUTBOUND_CONN_QUIT_MS))
		ms = OUTBOUND_CONN_QUIT_MS;
	oc_arm(oc, ms);
}

/* ---- writing ---- */

static void oc_write_done(uv_write_t *req, int status)
{
	struct oc_write *w = (struct oc_write *)req;
	struct outbound_conn *oc = w->oc;

	oc->queued -= w->len;
	oc->pending--;
	free(w);
	if (oc->closing) {
		oc_maybe_free(oc);
		return;
	}
	if (status < 0) {
		oc_fail(oc, SMTP_CLIENT_FAIL_CLOSED, uv_strerror(status));
		return;
	}
	if (oc->close_after_flush) {
		if (oc->queued == 0)
			oc_close_now(oc);
		return;
	}
	if (oc->body_wanted) {
		/* RFC 5321 4.5.3.2.5: the server is taking data, so the
		 * per-block limit starts again. */
		oc_arm_client(oc);
		oc_pump_body(oc);
	}
}

static void oc_write_raw(struct outbound_conn *oc, const void *data, size_t len)
{
	if (len == 0 || oc->closing)
		return;
	struct oc_write *w = xmalloc(sizeof(*w) + len);
	w->oc = oc;
	w->len = len;
	memcpy(w->data, data, len);
	uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
	int rc = uv_write(&w->req, (uv_stream_t *)&oc->tcp, &b, 1, oc_write_done);
	if (rc < 0) {
		free(w);
		oc_fail(oc, SMTP_CLIENT_FAIL_CLOSED, uv_strerror(rc));
		return;
	}
	oc->pending++;
	oc->queued += len;
	oc->bytes_out += len;
}

static void oc_flush_tls(struct outbound_conn *oc)
{
	char chunk[16 * 1024];
	size_t n;

	while (!oc->closing && (n = tls_conn_take_output(oc->tls, chunk, sizeof(chunk))) > 0)
		oc_write_raw(oc, chunk, n);
}

static void oc_trace_output(struct outbound_conn *oc, const char *data, size_t len, bool body)
{
	if (body) {
		trace_body(OC_TRACE, oc->trace_id, 'C', data, len);
		return;
	}
	while (len > 0) {
		const char *lf = memchr(data, '\n', len);
		size_t n = lf ? (size_t)(lf - data) + 1 : len;
		size_t l = n;
		while (l > 0 && (data[l - 1] == '\n' || data[l - 1] == '\r'))
			l--;
		trace_line(OC_TRACE, oc->trace_id, 'C', data, l, smtp_client_trace_visible(oc->client, data, l));
		data += n;
		len -= n;
	}
}

/* Send what the client has produced. */
static void oc_send_output(struct outbound_conn *oc, bool body)
{
	struct buf *out = smtp_client_output(oc->client);

	if (buf_len(out) == 0)
		return;
	if (oc->closing || oc->close_after_flush) {
		buf_reset(out);
		return;
	}
	if (trace_on())
		oc_trace_output(oc, buf_ptr(out), buf_len(out), body);
	if (oc->tls != NULL) {
		if (tls_conn_write(oc->tls, buf_ptr(out), buf_len(out)) != TLS_IO_OK) {
			buf_reset(out);
			oc_fail(oc, SMTP_CLIENT_FAIL_CLOSED, tls_conn_error(oc->tls));
			return;
		}
		oc_flush_tls(oc);
	} else {
		oc_write_raw(oc, buf_ptr(out), buf_len(out));
	}
	buf_reset(out);
}

/* ---- ending ---- */

/* The client said CLOSE after a proper end: say goodbye under TLS, let the
 * writes drain, close. */
static void oc_close_graceful(struct outbound_conn *oc)
{
	if (oc->closing || oc->close_after_flush)
		return;
	oc->body_wanted = false;
	if (oc->tls != NULL && tls_conn_handshake_done(oc->tls)) {
		tls_conn_shutdown(oc->tls);
		oc_flush_tls(oc);
	}
	if (oc->closing)
		return;
	oc->close_after_flush = true;
	if (oc->queued == 0) {
		oc_close_now(oc);
		return;
	}
	uv_read_stop((uv_stream_t *)&oc->tcp);
	oc_arm(oc, OUTBOUND_CONN_QUIT_MS);
}

static void oc_fail(struct outbound_conn *oc, enum smtp_client_failure why, const char *detail)
{
	if (oc->closing)
		return;
	smtp_client_fail(oc->client, why, detail);
	buf_reset(smtp_client_output(oc->client));
	oc->body_wanted = false;
	oc_close_now(oc);
}

/* ---- TLS ---- */

static void oc_start_tls(struct outbound_conn *oc)
{
	if (oc->tls_ctx == NULL) {
		oc_fail(oc, SMTP_CLIENT_FAIL_TLS, "no TLS context");
		return;
	}
	oc->tls = tls_conn_new(oc->tls_ctx, oc->tls_name);
	oc->tls_handshaking = true;
	if (tls_conn_handshake(oc->tls) == TLS_IO_ERROR) {
		oc_fail(oc, SMTP_CLIENT_FAIL_TLS, tls_conn_error(oc->tls));
		return;
	}
	oc_flush_tls(oc);
	oc_arm_client(oc);
}

static void oc_tls_ready(struct outbound_conn *oc)
{
	oc->tls_handshaking = false;
	log_debug("outbound %s: TLS %s %s", oc->log_name, tls_conn_version(oc->tls), tls_conn_cipher(oc->tls));
	if (trace_on())
		trace_event(OC_TRACE, oc->trace_id, "TLS started: %s, %s", tls_conn_version(oc->tls),
			    tls_conn_cipher(oc->tls));
	if (oc->implicit_tls)
		oc_arm_client(oc); /* the greeting comes next */
	else
		oc_act(oc, smtp_client_tls_done(oc->client));
}

static void oc_trace_input(struct outbound_conn *oc, const char *data, size_t len)
{
	while (len > 0) {
		const char *lf = memchr(data, '\n', len);
		size_t n = lf ? (size_t)(lf - data) + 1 : len;
		size_t l = n;
		while (l > 0 && (data[l - 1] == '\n' || data[l - 1] == '\r'))
			l--;
		trace_line(OC_TRACE, oc->trace_id, 'S', data, l, l);
		data += n;
		len -= n;
	}
}

static void oc_feed(struct outbound_conn *oc, const char *data, size_t len)
{
	if (trace_on())
		oc_trace_input(oc, data, len);
	oc_act(oc, smtp_client_feed(oc->client, data, len));
}

/* Pull plaintext out of TLS and feed it to the client. */
static void oc_pump_tls(struct outbound_conn *oc)
{
	char plain[OC_TLS_CHUNK];

	while (!oc->closing && !oc->close_after_flush && oc->tls != NULL) {
		size_t n = 0;
		enum tls_io r = tls_conn_read(oc->tls, plain, sizeof(plain), &n);

		if (r == TLS_IO_ERROR) {
			oc_flush_tls(oc); /* the alert, if any */
			oc_fail(oc, oc->tls_handshaking ? SMTP_CLIENT_FAIL_TLS : SMTP_CLIENT_FAIL_CLOSED,
				tls_conn_error(oc->tls));
			return;
		}
		bool became_ready = oc->tls_handshaking && tls_conn_handshake_done(oc->tls);
		if (became_ready)
			oc_tls_ready(oc);
		if (r == TLS_IO_CLOSED) {
			oc_fail(oc, SMTP_CLIENT_FAIL_CLOSED, "the server ended TLS");
			return;
		}
		if (n > 0 && !oc->closing && !oc->close_after_flush)
			oc_feed(oc, plain, n);
		if (became_ready)
			continue; /* records after the handshake may be waiting */
		if (r != TLS_IO_OK || n == 0)
			break;
	}
	if (oc->tls != NULL && !oc->closing)
		oc_flush_tls(oc);
}

/* ---- reading ---- */

static void oc_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)h;
	(void)suggested;
	*buf = uv_buf_init(oc_readbuf, sizeof(oc_readbuf));
}

static void oc_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	struct outbound_conn *oc = stream->data;

	if (nread == 0 || oc->closing)
		return;
	if (nread < 0) {
		if (oc->close_after_flush)
			oc_close_now(oc);
		else
			oc_fail(oc, oc->tls_handshaking ? SMTP_CLIENT_FAIL_TLS : SMTP_CLIENT_FAIL_CLOSED,
				nread == UV_EOF ? "connection closed by the server" : uv_strerror((int)nread));
		return;
	}
	oc->bytes_in += (uint64_t)nread;
	if (oc->close_after_flush)
		return;
	if (oc->tls != NULL) {
		tls_conn_feed(oc->tls, buf->base, (size_t)nread);
		oc_pump_tls(oc);
	} else {
		oc_feed(oc, buf->base, (size_t)nread);
	}
}

/* ---- the body ---- */

static void oc_fs_read_done(uv_fs_t *req)
{
	struct outbound_conn *oc = req->data;
	ssize_t n = req->result;

	uv_fs_req_cleanup(req);
	oc->fs_busy = false;
	oc->pending--;
	if (oc->closing || oc->close_after_flush || !oc->body_wanted) {
		oc_maybe_free(oc);
		return;
	}
	if (n < 0) {
		char detail[128];
		snprintf(detail, sizeof(detail), "reading the queue file: %s", uv_strerror((int)n));
		oc_fail(oc, SMTP_CLIENT_FAIL_CLOSED, detail);
		return;
	}
	if (n == 0) {
		oc_fail(oc, SMTP_CLIENT_FAIL_CLOSED, "the queue file is shorter than its record says");
		return;
	}
	oc->body_done += (uint64_t)n;
	bool eof = oc->body_done >= oc->body_size;
	oc->body_wanted = false;
	enum smtp_client_action a = smtp_client_body(oc->client, oc->chunk, (size_t)n, eof);
	oc_send_output(oc, true);
	oc_act(oc, a);
}

/* Hand the client its next chunk once the socket has room. */
static void oc_pump_body(struct outbound_conn *oc)
{
	if (!oc->body_wanted || oc->fs_busy || oc->closing || oc->close_after_flush ||
	    oc->queued > OUTBOUND_CONN_HIGH_WATER)
		return;
	size_t want = smtp_client_body_want(oc->client);
	if (want == 0) {
		oc->body_wanted = false;
		return;
	}
	uint64_t left = oc->body_size - oc->body_done;
	if (left == 0) {
		/* An empty message, or one that ended on a chunk boundary:
		 * only the end remains. */
		oc->body_wanted = false;
		enum smtp_client_action a = smtp_client_body(oc->client, "", 0, true);
		oc_send_output(oc, true);
		oc_act(oc, a);
		return;
	}
	size_t n = left < want ? (size_t)left : want;
	uv_buf_t b = uv_buf_init(oc->chunk, (unsigned)n);
	oc->fs_req.data = oc;
	int rc = uv_fs_read(oc->loop, &oc->fs_req, oc->fd, &b, 1, (int64_t)(oc->body_offset + oc->body_done),
			    oc_fs_read_done);
	if (rc < 0) {
		char detail[128];
		snprintf(detail, sizeof(detail), "reading the queue file: %s", uv_strerror(rc));
		oc_fail(oc, SMTP_CLIENT_FAIL_CLOSED, detail);
		return;
	}
	oc->fs_busy = true;
	oc->pending++;
}

/* ---- the client's actions ---- */

static void oc_act(struct outbound_conn *oc, enum smtp_client_action a)
{
	if (oc->closing || oc->close_after_flush)
		return;
	oc_send_output(oc, false);
	if (oc->closing)
		return;
	switch (a) {
	case SMTP_CLIENT_ACTION_NONE:
		oc_arm_client(oc);
		break;
	case SMTP_CLIENT_ACTION_START_TLS:
		oc_start_tls(oc);
		break;
	case SMTP_CLIENT_ACTION_NEED_BODY:
		oc->body_wanted = true;
		oc_arm_client(oc);
		oc_pump_body(oc);
		break;
	case SMTP_CLIENT_ACTION_CLOSE:
		oc_close_graceful(oc);
		break;
	}
}

static void oc_timer_fired(uv_timer_t *t)
{
	struct outbound_conn *oc = t->data;

	if (oc->closing)
		return;
	if (oc->close_after_flush || smtp_client_done(oc->client)) {
		/* No answer to QUIT, or a goodbye nobody reads: the results
		 * are final already. */
		smtp_client_fail(oc->client, SMTP_CLIENT_FAIL_TIMEOUT, NULL);
		oc_close_now(oc);
	} else if (!oc->connected) {
		oc_fail(oc, SMTP_CLIENT_FAIL_CONNECT, "connection timed out");
	} else if (oc->tls_handshaking) {
		oc_fail(oc, SMTP_CLIENT_FAIL_TLS, "handshake timed out");
	} else {
		oc_fail(oc, SMTP_CLIENT_FAIL_TIMEOUT, NULL);
	}
}

static void oc_connected(uv_connect_t *req, int status)
{
	struct outbound_conn *oc = req->data;

	oc->pending--;
	if (oc->closing) {
		oc_maybe_free(oc);
		return;
	}
	if (status < 0) {
		oc_fail(oc, SMTP_CLIENT_FAIL_CONNECT, uv_strerror(status));
		return;
	}
	oc->connected = true;
	if (trace_on())
		trace_event(OC_TRACE, oc->trace_id, "connected (%s)", oc->log_name);
	uv_tcp_nodelay(&oc->tcp, 1);
	int rc = uv_read_start((uv_stream_t *)&oc->tcp, oc_alloc, oc_read);
	if (rc < 0) {
		oc_fail(oc, SMTP_CLIENT_FAIL_CLOSED, uv_strerror(rc));
		return;
	}
	if (oc->implicit_tls)
		oc_start_tls(oc);
	else
		oc_arm_client(oc);
}

struct outbound_conn *outbound_conn_start(const struct outbound_conn_params *p, outbound_conn_cb cb, void *arg,
					  const char **error_r)
{
	struct smtp_client *client = smtp_client_new(p->client, error_r);

	if (client == NULL) {
		errno = EINVAL;
		return NULL;
	}
	/* Our own descriptor: a read in flight after an abort must not meet
	 * a number the owner has closed and the kernel has given out again. */
	int fd = dup(p->fd);
	if (fd < 0) {
		int saved = errno;
		smtp_client_free(&client);
		errno = saved;
		*error_r = errno == EMFILE || errno == ENFILE ? "too many open files" : "cannot duplicate the queue file";
		return NULL;
	}
	struct outbound_conn *oc = xcalloc(1, sizeof(*oc));
	oc->loop = p->loop;
	oc->addr = p->addr;
	oc->tls_ctx = p->tls_ctx != NULL ? tls_ctx_ref(p->tls_ctx) : NULL;
	oc->tls_name = p->tls_name != NULL ? xstrdup(p->tls_name) : NULL;
	oc->implicit_tls = p->implicit_tls;
	oc->connect_timeout_ms = p->connect_timeout_ms ? p->connect_timeout_ms : 30000;
	oc->fd = fd;
	oc->body_offset = p->body_offset;
	oc->body_size = p->body_size;
	oc->log_name = xstrdup(p->log_name != NULL ? p->log_name : "-");
	oc->client = client;
	oc->cb = cb;
	oc->arg = arg;
	oc->chunk = xmalloc(SMTP_CLIENT_BODY_CHUNK);
	oc->trace_id = ++oc_next_trace_id;

	uv_tcp_init(oc->loop, &oc->tcp);
	uv_timer_init(oc->loop, &oc->timer);
	oc->tcp.data = oc;
	oc->timer.data = oc;
	oc->pending = 2;
	oc->connect_req.data = oc;
	int rc = uv_tcp_connect(&oc->connect_req, &oc->tcp, (const struct sockaddr *)&oc->addr, oc_connected);
	if (rc < 0) {
		/* Reported like any failed connect, from the close callbacks. */
		oc_fail(oc, SMTP_CLIENT_FAIL_CONNECT, uv_strerror(rc));
		return oc;
	}
	oc->pending++;
	oc_arm(oc, oc->connect_timeout_ms);
	return oc;
}

void outbound_conn_abort(struct outbound_conn **ocp)
{
	struct outbound_conn *oc = *ocp;

	if (oc == NULL)
		return;
	*ocp = NULL;
	oc->cb = NULL;
	oc->body_wanted = false;
	oc_close_now(oc);
}
