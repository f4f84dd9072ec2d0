#ifndef POSTBOTE_CORE_TLS_H
#define POSTBOTE_CORE_TLS_H

/*
 * TLS as a layer over memory, with no sockets: ciphertext from the network is
 * pushed in with tls_conn_feed(), plaintext comes out of tls_conn_read();
 * plaintext to send goes in with tls_conn_write() and the ciphertext to put on
 * the wire comes out of tls_conn_take_output(). core/conn.c moves the bytes
 * between this and libuv; tests connect two of these directly.
 *
 * Policy: TLS 1.2 minimum, forward-secret AEAD ciphers only for 1.2, the
 * OpenSSL defaults for 1.3, session tickets on (stateless resumption),
 * compression and renegotiation off.
 */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct tls_ctx;
struct tls_conn;

/* A server context from a PEM certificate chain and key. ciphers and
 * ciphersuites may be NULL for the built-in modern lists. Returns 0, or -1
 * with *error_r (caller frees) naming the file and OpenSSL's reason. The new
 * context has one reference. */
int tls_ctx_new_server(const char *cert_path, const char *key_path, const char *ciphers,
		       const char *ciphersuites, struct tls_ctx **ctx_r, char **error_r);

/* A client context (tests, and later the outbound SMTP client). With verify,
 * the peer certificate is checked against the system store (or ca_path when
 * not NULL). Returns 0, or -1 with *error_r (caller frees). */
int tls_ctx_new_client(bool verify, const char *ca_path, struct tls_ctx **ctx_r, char **error_r);

/* Contexts are reference counted: a SIGHUP swaps in a new one for new
 * connections while open connections keep the old one until they close. */
struct tls_ctx *tls_ctx_ref(struct tls_ctx *ctx);
void tls_ctx_unref(struct tls_ctx **ctx);

/* SHA-256 fingerprint of the context's certificate as "AB:CD:...", into a
 * buffer of at least 96 bytes. */
void tls_ctx_fingerprint(const struct tls_ctx *ctx, char *out, size_t outlen);

/* Make sure DIR/cert.pem and DIR/key.pem exist, generating a self-signed
 * certificate for hostname (ECDSA P-256, ten years) when they do not. The
 * key file is written with mode 0600. *created_r says whether a new one was
 * made. Returns 0, or -1 with *error_r (caller frees). Blocking; call it at
 * start-up only. */
int tls_selfsigned_ensure(const char *dir, const char *hostname, bool *created_r, char **error_r);

/* A connection in the server role (or client role for a client context).
 * Holds a reference on ctx. server_name is sent as SNI by clients (may be
 * NULL). */
struct tls_conn *tls_conn_new(struct tls_ctx *ctx, const char *server_name);
void tls_conn_free(struct tls_conn **conn);

/* Push ciphertext received from the peer. Never fails: memory BIOs grow;
 * the caller bounds how much it reads before it drains tls_conn_read(). */
void tls_conn_feed(struct tls_conn *conn, const void *data, size_t len);

enum tls_io {
	TLS_IO_OK = 0,      /* progress: bytes read, or the write was taken whole */
	TLS_IO_WANT,        /* nothing to do until more ciphertext is fed */
	TLS_IO_CLOSED,      /* the peer sent close_notify */
	TLS_IO_ERROR,       /* handshake or record failure: close the connection */
};

/* Drive the handshake and read decrypted bytes into buf. *n_r is the count
 * read (0 while the handshake is still running). Call again while it returns
 * TLS_IO_OK with *n_r > 0: records may hold more than one buffer's worth. */
enum tls_io tls_conn_read(struct tls_conn *conn, void *buf, size_t cap, size_t *n_r);

/* Encrypt len bytes of application data; the whole buffer is taken. Before
 * the handshake finishes the data waits inside conn (up to 1 MiB; beyond
 * that the write fails) and goes out, in order, from the tls_conn_read or
 * tls_conn_handshake call that completes it. Returns TLS_IO_OK or
 * TLS_IO_ERROR. */
enum tls_io tls_conn_write(struct tls_conn *conn, const void *data, size_t len);

/* Start the handshake (clients must call this once; servers need not). */
enum tls_io tls_conn_handshake(struct tls_conn *conn);

/* Queue a close_notify alert (its bytes come out of tls_conn_take_output).
 * Does nothing before the handshake is done. A connection freed without
 * sending one loses its session: OpenSSL will not resume it. */
void tls_conn_shutdown(struct tls_conn *conn);

/* Ciphertext waiting to be sent, and taking it: copies up to cap bytes into
 * buf and returns how many. */
size_t tls_conn_output_pending(const struct tls_conn *conn);
size_t tls_conn_take_output(struct tls_conn *conn, void *buf, size_t cap);

/* Give back buffer memory that is not holding data (the handshake's
 * flight, earlier large writes or reads). For connections going idle; the
 * connection works on as before. */
void tls_conn_trim(struct tls_conn *conn);

bool tls_conn_handshake_done(const struct tls_conn *conn);
/* "TLSv1.3", and the cipher name; valid while conn lives. NULL before the
 * handshake is done. */
const char *tls_conn_version(const struct tls_conn *conn);
const char *tls_conn_cipher(const struct tls_conn *conn);
/* A short reason for the last TLS_IO_ERROR, for the log ("" when there was
 * none); valid until the next call on conn. */
const char *tls_conn_error(const struct tls_conn *conn);

/* The OpenSSL object underneath (an SSL *), for tests and logging only:
 * protocol code must not touch it. Owned by conn. */
struct ssl_st;
struct ssl_st *tls_conn_ssl(struct tls_conn *conn);

#endif
