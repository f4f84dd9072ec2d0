#ifndef POSTBOTE_MTA_OUTBOUND_CONN_H
#define POSTBOTE_MTA_OUTBOUND_CONN_H

/*
 * One outgoing SMTP connection: the socket, TLS and timer glue around the
 * sans-I/O client (client.h), as core/conn.c is for server sessions.
 *
 *   uv_tcp_connect (bounded by connect_timeout_ms)
 *   -> [implicit TLS handshake] -> greeting, EHLO ... as the client says
 *   -> START_TLS: a client TLS session over memory BIOs (tls.h)
 *   -> NEED_BODY: the message read from the queue file with uv_fs_read,
 *      one chunk at a time, the next only when the socket's write queue is
 *      below OUTBOUND_CONN_HIGH_WATER (back-pressure)
 *   -> CLOSE: close_notify under TLS, then close.
 *
 * The timer is re-armed with smtp_client_timeout_ms() after every call into
 * the client and whenever a write of body data completes; when it fires
 * the client hears SMTP_CLIENT_FAIL_TIMEOUT. A refused or unreachable
 * connect is SMTP_CLIENT_FAIL_CONNECT, a failed handshake
 * SMTP_CLIENT_FAIL_TLS, a close or reset by the server
 * SMTP_CLIENT_FAIL_CLOSED; the client turns each into per-recipient
 * outcomes (deferred), so every path ends in the same callback.
 *
 * Once the results are final (the client is waiting only for QUIT's
 * reply) the wait is cut to OUTBOUND_CONN_QUIT_MS: a server that never
 * answers QUIT does not hold a connection slot for the RFC's 5 minutes.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "smtp/client.h"

struct tls_ctx;
struct outbound_conn;

/* Body data in the socket's write queue above which no more is read. */
#define OUTBOUND_CONN_HIGH_WATER (256 * 1024)
#define OUTBOUND_CONN_QUIT_MS 10000

struct outbound_conn_params {
	uv_loop_t *loop;
	struct sockaddr_storage addr;      /* where to connect, port included */
	/* For STARTTLS or implicit TLS (referenced while the connection
	 * lives); NULL when the client never asks for TLS. */
	struct tls_ctx *tls_ctx;
	const char *tls_name;              /* SNI, and the name verified when the context verifies */
	bool implicit_tls;                 /* handshake before the greeting (client params tls_active) */
	uint64_t connect_timeout_ms;
	/* The message: octets [body_offset, body_offset + body_size) of the
	 * open file fd (duplicated: the caller may close its own at once). */
	uv_file fd;
	uint64_t body_offset;
	uint64_t body_size;
	/* Borrowed until the callback, as smtp_client_new() requires. */
	const struct smtp_client_params *client;
	const char *log_name;              /* "ID domain" in log and trace lines */
};

struct outbound_conn_info {
	bool connected;                    /* the TCP connection was made */
	const char *tls_version;           /* "TLSv1.3" or NULL without TLS */
	const char *tls_cipher;
	uint64_t bytes_out, bytes_in;
};

/* The client holds the outcomes; both pointers are valid only during the
 * call. The connection is gone after it returns. */
typedef void (*outbound_conn_cb)(void *arg, const struct smtp_client *client, const struct outbound_conn_info *info);

/* Start connecting. Returns the connection, or NULL with *error_r (static
 * text) and errno: EINVAL when smtp_client_new() refuses the parameters
 * (they can never be sent), another value when the file cannot be
 * duplicated (too many open files: try later); then cb is not
 * called. Otherwise cb runs exactly once, on the loop, never inside this
 * call, after the socket is closed. */
struct outbound_conn *outbound_conn_start(const struct outbound_conn_params *p, outbound_conn_cb cb, void *arg,
					  const char **error_r);

/* Give up at once: cb will not be called. The memory is freed once libuv
 * has let go of the handles and requests (the loop must run). *oc = NULL. */
void outbound_conn_abort(struct outbound_conn **oc);

#endif
