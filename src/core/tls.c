/*
 * TLS over memory BIOs.
 *
 * Each connection owns one SSL object with two memory BIOs: ciphertext from
 * the network is written into the read BIO (tls_conn_feed), and whatever
 * OpenSSL wants to send piles up in the write BIO until the caller takes it
 * (tls_conn_take_output). Nothing here touches a socket, a timer or the
 * loop, so core/conn.c can drive it from uv_read callbacks and the tests can
 * wire two of them back to back (Dovecot's lib-ssl-iostream and h2o's
 * socket layer are shaped the same way).
 *
 * Things this file must never do:
 * - leave an OpenSSL error on the (thread-global) error queue: every SSL_*
 *   call is preceded by ERR_clear_error() and every failure drains the queue
 *   into the connection's own message, so one connection's failure cannot be
 *   reported as another's;
 * - block or fail on output: the write BIO is memory and grows; the caller
 *   bounds it by taking output and by throttling its own writes;
 * - lose plaintext written before the handshake is done: it waits in a small
 *   buffer here and goes out, in order, as soon as the handshake completes.
 *
 * Everything is single-threaded (one libuv loop), so the context reference
 * count is a plain int.
 */

#include "core/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "core/xalloc.h"

/* TLS 1.2 only: ECDHE key exchange (forward secrecy) with an AEAD cipher.
 * TLS 1.3 suites are all of that kind; OpenSSL's defaults are used. */
#define TLS_DEFAULT_CIPHERS "ECDHE+AESGCM:ECDHE+CHACHA20"

/* Ties TLS 1.2 session IDs and tickets to this application, which OpenSSL
 * requires before it resumes a server session. */
#define TLS_SESSION_ID_CONTEXT "postbote"

/* Plaintext written before the handshake is done. Only our own sessions
 * write here (a greeting, perhaps an early banner), so this is generous. */
#define TLS_PENDING_MAX (1024 * 1024)

/* Memory BIO storage an idle connection keeps: none (see tls_conn_trim). */
#define TLS_BIO_KEEP 0

struct tls_ctx {
	int refs;
	bool server;
	bool verify;
	SSL_CTX *ssl_ctx;
};

struct tls_conn {
	struct tls_ctx *ctx;
	SSL *ssl;
	BIO *rbio;  /* ciphertext from the peer; SSL reads it */
	BIO *wbio;  /* ciphertext for the peer; SSL writes it */

	/* Plaintext waiting for the handshake to finish. */
	unsigned char *pending;
	size_t pending_len, pending_cap;

	bool failed;
	char error[256];
};

/* The reason for the oldest error on the queue (the root cause; later
 * entries are the callers that passed it up), with OpenSSL's detail text
 * when there is one; then empty the queue. The result lives in buf or is
 * static. */
static const char *tls_openssl_reason(char *buf, size_t buflen)
{
	const char *data = NULL;
	int flags = 0;
	unsigned long e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags);
	const char *reason;

	if (e == 0) {
		reason = "unknown error";
	} else if (ERR_SYSTEM_ERROR(e)) {
		/* The detail is only "calling fopen(PATH, r)". */
		reason = strerror(ERR_GET_REASON(e));
	} else if ((reason = ERR_reason_error_string(e)) == NULL) {
		ERR_error_string_n(e, buf, buflen);
		reason = buf;
	} else if (data != NULL && (flags & ERR_TXT_STRING) != 0 && data[0] != '\0') {
		/* "unsupported" alone says little; the detail says what. */
		snprintf(buf, buflen, "%s (%s)", reason, data);
		reason = buf;
	}
	ERR_clear_error();  /* frees data: everything is copied by now */
	return reason;
}

static char *tls_path_error(const char *path)
{
	char buf[256];
	return xasprintf("%s: %s", path, tls_openssl_reason(buf, sizeof(buf)));
}

static void tls_ctx_set_common(SSL_CTX *ssl_ctx)
{
	SSL_CTX_set_options(ssl_ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	/* Memory BIOs never refuse a write, so a write is always taken whole;
	 * a retried write may come from a different (moved) buffer. */
	SSL_CTX_clear_mode(ssl_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE);
	SSL_CTX_set_mode(ssl_ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
}

static struct tls_ctx *tls_ctx_wrap(SSL_CTX *ssl_ctx, bool server, bool verify)
{
	struct tls_ctx *ctx = xcalloc(1, sizeof(*ctx));
	ctx->refs = 1;
	ctx->server = server;
	ctx->verify = verify;
	ctx->ssl_ctx = ssl_ctx;
	return ctx;
}

int tls_ctx_new_server(const char *cert_path, const char *key_path, const char *ciphers,
		       const char *ciphersuites, struct tls_ctx **ctx_r, char **error_r)
{
	char buf[256];

	*ctx_r = NULL;
	*error_r = NULL;
	ERR_clear_error();
	SSL_CTX *ssl_ctx = SSL_CTX_new(TLS_server_method());
	if (ssl_ctx == NULL) {
		*error_r = xasprintf("SSL_CTX_new: %s", tls_openssl_reason(buf, sizeof(buf)));
		return -1;
	}
	tls_ctx_set_common(ssl_ctx);
	SSL_CTX_set_options(ssl_ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
	if (SSL_CTX_set_min_proto_version(ssl_ctx, TLS1_2_VERSION) != 1) {
		*error_r = xasprintf("TLS 1.2 minimum: %s", tls_openssl_reason(buf, sizeof(buf)));
		goto fail;
	}
	if (ciphers == NULL)
		ciphers = TLS_DEFAULT_CIPHERS;
	if (SSL_CTX_set_cipher_list(ssl_ctx, ciphers) != 1) {
		*error_r = xasprintf("TLS 1.2 ciphers \"%s\": %s", ciphers,
				     tls_openssl_reason(buf, sizeof(buf)));
		goto fail;
	}
	if (ciphersuites != NULL && SSL_CTX_set_ciphersuites(ssl_ctx, ciphersuites) != 1) {
		*error_r = xasprintf("TLS 1.3 ciphersuites \"%s\": %s", ciphersuites,
				     tls_openssl_reason(buf, sizeof(buf)));
		goto fail;
	}
	/* Session tickets stay on (OpenSSL's default); resumption of either
	 * kind needs a session id context on the server. */
	SSL_CTX_set_session_id_context(ssl_ctx, (const unsigned char *)TLS_SESSION_ID_CONTEXT,
				       sizeof(TLS_SESSION_ID_CONTEXT) - 1);

	if (SSL_CTX_use_certificate_chain_file(ssl_ctx, cert_path) != 1) {
		*error_r = tls_path_error(cert_path);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ssl_ctx, key_path, SSL_FILETYPE_PEM) != 1) {
		*error_r = tls_path_error(key_path);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ssl_ctx) != 1) {
		*error_r = xasprintf("%s: %s (does not match %s)", key_path,
				     tls_openssl_reason(buf, sizeof(buf)), cert_path);
		goto fail;
	}
	*ctx_r = tls_ctx_wrap(ssl_ctx, true, false);
	return 0;
fail:
	SSL_CTX_free(ssl_ctx);
	ERR_clear_error();
	return -1;
}

int tls_ctx_new_client(bool verify, const char *ca_path, struct tls_ctx **ctx_r, char **error_r)
{
	char buf[256];

	*ctx_r = NULL;
	*error_r = NULL;
	ERR_clear_error();
	SSL_CTX *ssl_ctx = SSL_CTX_new(TLS_client_method());
	if (ssl_ctx == NULL) {
		*error_r = xasprintf("SSL_CTX_new: %s", tls_openssl_reason(buf, sizeof(buf)));
		return -1;
	}
	tls_ctx_set_common(ssl_ctx);
	if (SSL_CTX_set_min_proto_version(ssl_ctx, TLS1_2_VERSION) != 1) {
		*error_r = xasprintf("TLS 1.2 minimum: %s", tls_openssl_reason(buf, sizeof(buf)));
		goto fail;
	}
	if (verify) {
		SSL_CTX_set_verify(ssl_ctx, SSL_VERIFY_PEER, NULL);
		if (ca_path != NULL) {
			struct stat st;
			if (stat(ca_path, &st) < 0) {
				*error_r = xasprintf("%s: %s", ca_path, strerror(errno));
				goto fail;
			}
			int ok = S_ISDIR(st.st_mode) ? SSL_CTX_load_verify_dir(ssl_ctx, ca_path)
						     : SSL_CTX_load_verify_file(ssl_ctx, ca_path);
			if (ok != 1) {
				*error_r = tls_path_error(ca_path);
				goto fail;
			}
		} else if (SSL_CTX_set_default_verify_paths(ssl_ctx) != 1) {
			*error_r = xasprintf("system trust store: %s",
					     tls_openssl_reason(buf, sizeof(buf)));
			goto fail;
		}
	} else {
		SSL_CTX_set_verify(ssl_ctx, SSL_VERIFY_NONE, NULL);
	}
	*ctx_r = tls_ctx_wrap(ssl_ctx, false, verify);
	return 0;
fail:
	SSL_CTX_free(ssl_ctx);
	ERR_clear_error();
	return -1;
}

struct tls_ctx *tls_ctx_ref(struct tls_ctx *ctx)
{
	ctx->refs++;
	return ctx;
}

void tls_ctx_unref(struct tls_ctx **ctxp)
{
	struct tls_ctx *ctx = *ctxp;

	if (ctx == NULL)
		return;
	*ctxp = NULL;
	if (--ctx->refs > 0)
		return;
	SSL_CTX_free(ctx->ssl_ctx);
	free(ctx);
}

void tls_ctx_fingerprint(const struct tls_ctx *ctx, char *out, size_t outlen)
{
	static const char hex[] = "0123456789ABCDEF";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (outlen == 0)
		return;
	out[0] = '\0';
	X509 *cert = SSL_CTX_get0_certificate(ctx->ssl_ctx);
	if (cert == NULL)
		return;
	ERR_clear_error();
	if (X509_digest(cert, EVP_sha256(), md, &mdlen) != 1) {
		ERR_clear_error();
		return;
	}
	size_t o = 0;
	for (unsigned int i = 0; i < mdlen; i++) {
		size_t need = i == 0 ? 2 : 3;
		if (o + need + 1 > outlen)
			break;
		if (i > 0)
			out[o++] = ':';
		out[o++] = hex[md[i] >> 4];
		out[o++] = hex[md[i] & 0x0f];
	}
	out[o] = '\0';
}

static bool tls_is_ip_literal(const char *name)
{
	unsigned char addr[sizeof(struct in6_addr)];
	return inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1;
}

static void tls_die(const char *what)
{
	char buf[256];
	fprintf(stderr, "postbote: %s: %s\n", what, tls_openssl_reason(buf, sizeof(buf)));
	abort();
}

static BIO *tls_read_bio_new(void)
{
	BIO *b = BIO_new(BIO_s_mem());

	if (b == NULL)
		tls_die("BIO_new");
	/* An empty read BIO means "retry later", never end of file. */
	BIO_set_mem_eof_return(b, -1);
	return b;
}

struct tls_conn *tls_conn_new(struct tls_ctx *ctx, const char *server_name)
{
	struct tls_conn *conn = xcalloc(1, sizeof(*conn));

	ERR_clear_error();
	conn->ssl = SSL_new(ctx->ssl_ctx);
	conn->rbio = tls_read_bio_new();
	conn->wbio = BIO_new(BIO_s_mem());
	/* Like xmalloc: these fail only when memory is gone. */
	if (conn->ssl == NULL || conn->wbio == NULL)
		tls_die("SSL_new");
	SSL_set_bio(conn->ssl, conn->rbio, conn->wbio);  /* SSL owns both now */
	conn->ctx = tls_ctx_ref(ctx);

	if (ctx->server) {
		SSL_set_accept_state(conn->ssl);
		return conn;
	}
	SSL_set_connect_state(conn->ssl);
	if (server_name != NULL && server_name[0] != '\0') {
		bool ip = tls_is_ip_literal(server_name);
		/* RFC 6066 3: literal IP addresses are not permitted in SNI. */
		if (!ip && SSL_set_tlsext_host_name(conn->ssl, server_name) != 1)
			tls_die("SNI");
		if (ctx->verify) {
			int ok;
			if (ip) {
				ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(conn->ssl),
								   server_name);
			} else {
				SSL_set_hostflags(conn->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
				ok = SSL_set1_host(conn->ssl, server_name);
			}
			if (ok != 1)
				tls_die("peer name check");
		}
	}
	ERR_clear_error();
	return conn;
}

void tls_conn_free(struct tls_conn **connp)
{
	struct tls_conn *conn = *connp;

	if (conn == NULL)
		return;
	*connp = NULL;
	SSL_free(conn->ssl);  /* frees both BIOs */
	if (conn->pending != NULL) {
		explicit_bzero(conn->pending, conn->pending_cap);
		free(conn->pending);
	}
	tls_ctx_unref(&conn->ctx);
	free(conn);
}

void tls_conn_feed(struct tls_conn *conn, const void *data, size_t len)
{
	const unsigned char *p = data;

	while (len > 0) {
		int chunk = len > INT_MAX ? INT_MAX : (int)len;
		int n = BIO_write(conn->rbio, p, chunk);
		if (n <= 0)
			tls_die("BIO_write");
		p += n;
		len -= (size_t)n;
	}
}

/* Turn a failed SSL_* call into a result, saving the reason on errors. */
static enum tls_io tls_conn_result(struct tls_conn *conn, int ret)
{
	char buf[256];
	const char *reason;

	switch (SSL_get_error(conn->ssl, ret)) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		return TLS_IO_WANT;
	case SSL_ERROR_ZERO_RETURN:
		return TLS_IO_CLOSED;
	case SSL_ERROR_SYSCALL:
		if (ERR_peek_error() == 0) {
			ERR_clear_error();
			reason = SSL_is_init_finished(conn->ssl) ? "unexpected end of stream"
								 : "peer closed during handshake";
			break;
		}
		/* fall through */
	default: {
		unsigned long e = ERR_peek_error();
		reason = tls_openssl_reason(buf, sizeof(buf));
		if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
		    ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
			long v = SSL_get_verify_result(conn->ssl);
			snprintf(conn->error, sizeof(conn->error), "%s: %s", reason,
				 X509_verify_cert_error_string(v));
			conn->failed = true;
			return TLS_IO_ERROR;
		}
		break;
	}
	}
	snprintf(conn->error, sizeof(conn->error), "%s", reason);
	conn->failed = true;
	return TLS_IO_ERROR;
}

static int tls_conn_pending_add(struct tls_conn *conn, const void *data, size_t len)
{
	if (len > TLS_PENDING_MAX - conn->pending_len) {
		snprintf(conn->error, sizeof(conn->error), "too much data before the handshake");
		conn->failed = true;
		return -1;
	}
	size_t need = conn->pending_len + len;
	if (need > conn->pending_cap) {
		size_t cap = conn->pending_cap ? conn->pending_cap : 512;
		while (cap < need)
			cap *= 2;
		conn->pending = xrealloc(conn->pending, cap);
		conn->pending_cap = cap;
	}
	memcpy(conn->pending + conn->pending_len, data, len);
	conn->pending_len += len;
	return 0;
}

/* The handshake is done: send what was written while it ran. */
static enum tls_io tls_conn_flush_pending(struct tls_conn *conn)
{
	size_t n;

	if (conn->pending_len == 0)
		return TLS_IO_OK;
	ERR_clear_error();
	int ret = SSL_write_ex(conn->ssl, conn->pending, conn->pending_len, &n);
	if (ret != 1)
		return tls_conn_result(conn, ret);
	/* Without partial writes, success means all of it. */
	explicit_bzero(conn->pending, conn->pending_len);
	conn->pending_len = 0;
	return TLS_IO_OK;
}

enum tls_io tls_conn_handshake(struct tls_conn *conn)
{
	if (conn->failed)
		return TLS_IO_ERROR;
	if (!SSL_is_init_finished(conn->ssl)) {
		ERR_clear_error();
		int ret = SSL_do_handshake(conn->ssl);
		if (ret != 1)
			return tls_conn_result(conn, ret);
	}
	return tls_conn_flush_pending(conn);
}

enum tls_io tls_conn_read(struct tls_conn *conn, void *buf, size_t cap, size_t *n_r)
{
	*n_r = 0;
	enum tls_io io = tls_conn_handshake(conn);
	if (io != TLS_IO_OK)
		return io;
	if (cap == 0)
		return TLS_IO_OK;

	size_t n = 0;
	ERR_clear_error();
	int ret = SSL_read_ex(conn->ssl, buf, cap, &n);
	if (ret != 1)
		return tls_conn_result(conn, ret);
	*n_r = n;
	return TLS_IO_OK;
}

enum tls_io tls_conn_write(struct tls_conn *conn, const void *data, size_t len)
{
	size_t n;

	if (conn->failed)
		return TLS_IO_ERROR;
	if (len == 0)
		return TLS_IO_OK;
	/* Keep the order: earlier plaintext is still waiting. */
	if (conn->pending_len > 0)
		return tls_conn_pending_add(conn, data, len) == 0 ? TLS_IO_OK : TLS_IO_ERROR;

	ERR_clear_error();
	int ret = SSL_write_ex(conn->ssl, data, len, &n);
	if (ret == 1)
		return TLS_IO_OK;
	enum tls_io io = tls_conn_result(conn, ret);
	if (io == TLS_IO_WANT && !SSL_is_init_finished(conn->ssl))
		return tls_conn_pending_add(conn, data, len) == 0 ? TLS_IO_OK : TLS_IO_ERROR;
	if (io == TLS_IO_ERROR)
		return TLS_IO_ERROR;
	/* WANT after the handshake (memory BIOs should make this impossible)
	 * or CLOSED: the data cannot go out. */
	snprintf(conn->error, sizeof(conn->error), "%s",
		 io == TLS_IO_CLOSED ? "write after close_notify" : "write could not complete");
	conn->failed = true;
	return TLS_IO_ERROR;
}

void tls_conn_shutdown(struct tls_conn *conn)
{
	/* A close_notify during the handshake is not allowed by OpenSSL; the
	 * caller simply drops such a connection. */
	if (conn->failed || !SSL_is_init_finished(conn->ssl))
		return;
	ERR_clear_error();
	(void)SSL_shutdown(conn->ssl);
	ERR_clear_error();
}

size_t tls_conn_output_pending(const struct tls_conn *conn)
{
	return BIO_ctrl_pending(conn->wbio);
}

size_t tls_conn_take_output(struct tls_conn *conn, void *buf, size_t cap)
{
	if (cap == 0)
		return 0;
	int n = BIO_read(conn->wbio, buf, cap > INT_MAX ? INT_MAX : (int)cap);
	return n > 0 ? (size_t)n : 0;
}

/* A memory BIO keeps the largest size it ever grew to. */
static bool tls_bio_oversized(BIO *b)
{
	BUF_MEM *bm = NULL;

	return BIO_ctrl_pending(b) == 0 && BIO_get_mem_ptr(b, &bm) == 1 && bm != NULL &&
	       bm->max > TLS_BIO_KEEP;
}

void tls_conn_trim(struct tls_conn *conn)
{
	/* The handshake flight, a large reply or a pipelined upload grew
	 * these; an idle connection holds them empty. SSL frees the old BIO
	 * as it takes the new one. */
	if (tls_bio_oversized(conn->rbio)) {
		conn->rbio = tls_read_bio_new();
		SSL_set0_rbio(conn->ssl, conn->rbio);
	}
	if (tls_bio_oversized(conn->wbio)) {
		BIO *b = BIO_new(BIO_s_mem());
		if (b == NULL)
			tls_die("BIO_new");
		conn->wbio = b;
		SSL_set0_wbio(conn->ssl, conn->wbio);
	}
	if (conn->pending_len == 0 && conn->pending != NULL) {
		free(conn->pending);
		conn->pending = NULL;
		conn->pending_cap = 0;
	}
}

bool tls_conn_handshake_done(const struct tls_conn *conn)
{
	return SSL_is_init_finished(conn->ssl) != 0;
}

const char *tls_conn_version(const struct tls_conn *conn)
{
	if (!SSL_is_init_finished(conn->ssl))
		return NULL;
	return SSL_get_version(conn->ssl);
}

const char *tls_conn_cipher(const struct tls_conn *conn)
{
	if (!SSL_is_init_finished(conn->ssl))
		return NULL;
	return SSL_get_cipher_name(conn->ssl);
}

const char *tls_conn_error(const struct tls_conn *conn)
{
	return conn->error;
}

struct ssl_st *tls_conn_ssl(struct tls_conn *conn)
{
	return conn->ssl;
}
