/*
 * core/tls: two tls_conn objects wired back to back in memory. The pump
 * moves ciphertext between them and drains plaintext on both sides until
 * nothing moves any more, so every test is deterministic and needs no
 * sockets. Certificates come from tls_selfsigned_ensure() in a fresh
 * temporary directory per test.
 */

#include "core/tls.h"

#include <dirent.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "testutil.h"

static char tmpdir[64];
static char certdir[128];
static char cert_path[160];
static char key_path[160];
static struct tls_ctx *server_ctx;
static struct tls_ctx *client_ctx;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void setup(void)
{
	bool created = false;
	char *error = NULL;

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_tls.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(certdir, sizeof(certdir), "%s/data/tls", tmpdir);
	snprintf(cert_path, sizeof(cert_path), "%s/cert.pem", certdir);
	snprintf(key_path, sizeof(key_path), "%s/key.pem", certdir);
	if (tls_selfsigned_ensure(certdir, "localhost", &created, &error) < 0)
		ck_abort_msg("tls_selfsigned_ensure: %s", error);
	ck_assert(created);
	if (tls_ctx_new_server(cert_path, key_path, NULL, NULL, &server_ctx, &error) < 0)
		ck_abort_msg("tls_ctx_new_server: %s", error);
	if (tls_ctx_new_client(false, NULL, &client_ctx, &error) < 0)
		ck_abort_msg("tls_ctx_new_client: %s", error);
}

static void teardown(void)
{
	tls_ctx_unref(&server_ctx);
	tls_ctx_unref(&client_ctx);
	nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	/* No connection may leave an error behind on the global queue. */
	ck_assert_uint_eq(ERR_peek_error(), 0);
}

/* One end of the wire and what it has read so far. */
struct peer {
	struct tls_conn *conn;
	unsigned char *got;
	size_t got_len, got_cap;
	bool closed, failed;
};

static void peer_init(struct peer *p, struct tls_conn *conn)
{
	memset(p, 0, sizeof(*p));
	p->conn = conn;
}

static void peer_free(struct peer *p)
{
	tls_conn_free(&p->conn);
	ck_assert_ptr_null(p->conn);
	free(p->got);
	memset(p, 0, sizeof(*p));
}

/* Read plaintext with a 4 KiB buffer until the connection wants more. */
static bool peer_drain(struct peer *p)
{
	unsigned char buf[4096];
	bool progress = false;
	size_t n;

	if (p->closed || p->failed)
		return false;
	for (;;) {
		enum tls_io io = tls_conn_read(p->conn, buf, sizeof(buf), &n);
		if (io == TLS_IO_OK) {
			ck_assert_uint_gt(n, 0);
			ck_assert_uint_le(n, sizeof(buf));
			if (p->got_len + n > p->got_cap) {
				p->got_cap = (p->got_len + n) * 2;
				p->got = realloc(p->got, p->got_cap);
				ck_assert_ptr_nonnull(p->got);
			}
			memcpy(p->got + p->got_len, buf, n);
			p->got_len += n;
			progress = true;
			continue;
		}
		ck_assert_uint_eq(n, 0);
		if (io == TLS_IO_CLOSED)
			p->closed = true;
		if (io == TLS_IO_ERROR) {
			p->failed = true;
			ck_assert_str_ne(tls_conn_error(p->conn), "");
		}
		return progress;
	}
}

/* Move all ciphertext from one side to the other, chunk bytes at a time. */
static bool move_bytes(struct tls_conn *from, struct tls_conn *to, size_t chunk)
{
	unsigned char buf[16384];
	bool moved = false;
	size_t n;

	if (chunk > sizeof(buf))
		chunk = sizeof(buf);
	while ((n = tls_conn_take_output(from, buf, chunk)) > 0) {
		tls_conn_feed(to, buf, n);
		moved = true;
	}
	ck_assert_uint_eq(tls_conn_output_pending(from), 0);
	return moved;
}

/* For byte-at-a-time runs: move one byte, let the receiver look at it. */
static bool move_trickle(struct peer *from, struct peer *to)
{
	unsigned char byte;
	bool moved = false;

	while (tls_conn_take_output(from->conn, &byte, 1) == 1) {
		tls_conn_feed(to->conn, &byte, 1);
		peer_drain(to);
		moved = true;
	}
	return moved;
}

static void pump_chunked(struct peer *a, struct peer *b, size_t chunk)
{
	for (int round = 0; round < 100000; round++) {
		bool progress = false;
		progress |= peer_drain(a);
		progress |= chunk == 1 ? move_trickle(a, b) : move_bytes(a->conn, b->conn, chunk);
		progress |= peer_drain(b);
		progress |= chunk == 1 ? move_trickle(b, a) : move_bytes(b->conn, a->conn, chunk);
		if (!progress)
			return;
	}
	ck_abort_msg("the pump never settled");
}

static void pump(struct peer *a, struct peer *b)
{
	pump_chunked(a, b, 16384);
}

/* A client/server pair with the handshake done. */
static void connect_pair(struct peer *client, struct peer *server)
{
	peer_init(client, tls_conn_new(client_ctx, "localhost"));
	peer_init(server, tls_conn_new(server_ctx, NULL));
	ck_assert_int_eq(tls_conn_handshake(client->conn), TLS_IO_WANT);
	pump(client, server);
	ck_assert_msg(tls_conn_handshake_done(client->conn), "client: %s",
		      tls_conn_error(client->conn));
	ck_assert_msg(tls_conn_handshake_done(server->conn), "server: %s",
		      tls_conn_error(server->conn));
	ck_assert(!client->failed && !server->failed);
}

static unsigned char *pattern(size_t len, unsigned seed)
{
	unsigned char *p = malloc(len);
	ck_assert_ptr_nonnull(p);
	uint32_t x = seed * 2654435761u + 1;
	for (size_t i = 0; i < len; i++) {
		x = x * 1103515245u + 12345u;
		p[i] = (unsigned char)(x >> 16);
	}
	return p;
}

/* The first flight of a new client: its ClientHello. */
static size_t client_hello(struct tls_conn *client, unsigned char *buf, size_t cap)
{
	ck_assert_int_eq(tls_conn_handshake(client), TLS_IO_WANT);
	size_t n = tls_conn_take_output(client, buf, cap);
	ck_assert_uint_gt(n, 5);
	ck_assert_uint_eq(tls_conn_output_pending(client), 0);
	ck_assert_uint_eq(buf[0], 0x16);  /* RFC 8446 5.1: handshake record */
	return n;
}

/* 1. */
START_TEST(test_handshake)
{
	struct peer client, server;

	peer_init(&client, tls_conn_new(client_ctx, "localhost"));
	peer_init(&server, tls_conn_new(server_ctx, NULL));
	ck_assert(!tls_conn_handshake_done(client.conn));
	ck_assert_ptr_null(tls_conn_version(server.conn));
	ck_assert_ptr_null(tls_conn_cipher(server.conn));
	ck_assert_str_eq(tls_conn_error(server.conn), "");
	/* A server with nothing fed wants input and says nothing. */
	unsigned char buf[16];
	size_t n = 99;
	ck_assert_int_eq(tls_conn_read(server.conn, buf, sizeof(buf), &n), TLS_IO_WANT);
	ck_assert_uint_eq(n, 0);
	ck_assert_uint_eq(tls_conn_output_pending(server.conn), 0);

	ck_assert_int_eq(tls_conn_handshake(client.conn), TLS_IO_WANT);
	ck_assert_uint_gt(tls_conn_output_pending(client.conn), 0);
	pump(&client, &server);
	ck_assert(tls_conn_handshake_done(client.conn));
	ck_assert(tls_conn_handshake_done(server.conn));
	const char *version = tls_conn_version(server.conn);
	ck_assert_ptr_nonnull(version);
	ck_assert_msg(strcmp(version, "TLSv1.3") == 0 || strcmp(version, "TLSv1.2") == 0,
		      "version %s", version);
	ck_assert_str_eq(version, tls_conn_version(client.conn));
	ck_assert_ptr_nonnull(tls_conn_cipher(server.conn));
	ck_assert_str_eq(tls_conn_cipher(server.conn), tls_conn_cipher(client.conn));
	ck_assert_uint_eq(client.got_len + server.got_len, 0);
	/* SNI arrived. */
	ck_assert_str_eq(SSL_get_servername(tls_conn_ssl(server.conn), TLSEXT_NAMETYPE_host_name),
			 "localhost");
	peer_free(&client);
	peer_free(&server);
}
END_TEST

/* The same handshake with every byte fed on its own. */
START_TEST(test_handshake_byte_at_a_time)
{
	struct peer client, server;

	peer_init(&client, tls_conn_new(client_ctx, "localhost"));
	peer_init(&server, tls_conn_new(server_ctx, NULL));
	ck_assert_int_eq(tls_conn_handshake(client.conn), TLS_IO_WANT);
	pump_chunked(&client, &server, 1);
	ck_assert(tls_conn_handshake_done(client.conn));
	ck_assert(tls_conn_handshake_done(server.conn));
	ck_assert_int_eq(tls_conn_write(client.conn, "a1 NOOP\r\n", 9), TLS_IO_OK);
	pump_chunked(&client, &server, 1);
	ck_assert_uint_eq(server.got_len, 9);
	ck_assert_mem_eq(server.got, "a1 NOOP\r\n", 9);
	peer_free(&client);
	peer_free(&server);
}
END_TEST

/* TLS 1.2 as well (clients that stop there are common among MUAs). */
START_TEST(test_handshake_tls12)
{
	struct peer client, server;

	peer_init(&client, tls_conn_new(client_ctx, "localhost"));
	peer_init(&server, tls_conn_new(server_ctx, NULL));
	ck_assert_int_eq(SSL_set_max_proto_version(tls_conn_ssl(client.conn), TLS1_2_VERSION), 1);
	tls_conn_handshake(client.conn);
	pump(&client, &server);
	ck_assert(tls_conn_handshake_done(server.conn));
	ck_assert_str_eq(tls_conn_version(server.conn), "TLSv1.2");
	const SSL_CIPHER *c = SSL_get_current_cipher(tls_conn_ssl(server.conn));
	ck_assert_int_eq(SSL_CIPHER_get_kx_nid(c), NID_kx_ecdhe);
	ck_assert(SSL_CIPHER_is_aead(c));
	peer_free(&client);
	peer_free(&server);
}
END_TEST

/* Policy: a TLS 1.2 client offering only CBC (non-AEAD) suites is refused. */
START_TEST(test_tls12_no_aead_refused)
{
	struct peer client, server;

	peer_init(&client, tls_conn_new(client_ctx, "localhost"));
	peer_init(&server, tls_conn_new(server_ctx, NULL));
	SSL *ssl = tls_conn_ssl(client.conn);
	ck_assert_int_eq(SSL_set_max_proto_version(ssl, TLS1_2_VERSION), 1);
	ck_assert_int_eq(SSL_set_cipher_list(ssl, "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384"), 1);
	tls_conn_handshake(client.conn);
	pump(&client, &server);
	ck_assert(server.failed);
	ck_assert(client.failed);
	ck_assert(!tls_conn_handshake_done(server.conn));
	ck_assert_ptr_null(tls_conn_version(server.conn));
	peer_free(&client);
	peer_free(&server);
}
END_TEST

/* 2. */
START_TEST(test_data_both_ways)
{
	struct peer client, server;
	const size_t big = 1024 * 1024;

	connect_pair(&client, &server);
	ck_assert_int_eq(tls_conn_write(server.conn, "* OK ready\r\n", 12), TLS_IO_OK);
	ck_assert_int_eq(tls_conn_write(client.conn, "a1 CAPABILITY\r\n", 15), TLS_IO_OK);
	ck_assert_int_eq(tls_conn_write(client.conn, "", 0), TLS_IO_OK);
	pump(&client, &server);
	ck_assert_uint_eq(client.got_len, 12);
	ck_assert_mem_eq(client.got, "* OK ready\r\n", 12);
	ck_assert_uint_eq(server.got_len, 15);
	ck_assert_mem_eq(server.got, "a1 CAPABILITY\r\n", 15);
	client.got_len = server.got_len = 0;

	/* 1 MiB each way: once as one write, once in odd-sized pieces. */
	unsigned char *up = pattern(big, 1), *down = pattern(big, 2);
	ck_assert_int_eq(tls_conn_write(client.conn, up, big), TLS_IO_OK);
	for (size_t off = 0; off < big;) {
		size_t n = big - off < 7777 ? big - off : 7777;
		ck_assert_int_eq(tls_conn_write(server.conn, down + off, n), TLS_IO_OK);
		off += n;
	}
	/* Records are at most 16 KiB: a megabyte is many of them. */
	ck_assert_uint_gt(tls_conn_output_pending(client.conn), big);
	pump(&client, &server);
	ck_assert_uint_eq(server.got_len, big);
	ck_assert_uint_eq(client.got_len, big);
	ck_assert(memcmp(server.got, up, big) == 0);
	ck_assert(memcmp(client.got, down, big) == 0);
	ck_assert(!client.closed && !server.closed && !client.failed && !server.failed);
	free(up);
	free(down);
	peer_free(&client);
	peer_free(&server);
}
END_TEST

/* Trimming an idle connection hands back the memory BIOs' storage and
 * leaves the connection working; with ciphertext still waiting it keeps it. */
START_TEST(test_trim_keeps_working)
{
	struct peer client, server;
	const size_t big = 256 * 1024;

	connect_pair(&client, &server);
	unsigned char *down = pattern(big, 3);
	ck_assert_int_eq(tls_conn_write(server.conn, down, big), TLS_IO_OK);
	size_t waiting = tls_conn_output_pending(server.conn);
	tls_conn_trim(server.conn);
	ck_assert_uint_eq(tls_conn_output_pending(server.conn), waiting);
	pump(&client, &server);
	ck_assert_uint_eq(client.got_len, big);
	ck_assert(memcmp(client.got, down, big) == 0);
	client.got_len = 0;

	/* Everything taken: trim, then talk again both ways, twice. */
	for (int round = 0; round < 2; round++) {
		tls_conn_trim(server.conn);
		tls_conn_trim(client.conn);
		ck_assert_int_eq(tls_conn_write(client.conn, "a2 NOOP\r\n", 9), TLS_IO_OK);
		ck_assert_int_eq(tls_conn_write(server.conn, down, 40000), TLS_IO_OK);
		pump(&client, &server);
		ck_assert_uint_eq(server.got_len, 9);
		ck_assert_mem_eq(server.got, "a2 NOOP\r\n", 9);
		ck_assert_uint_eq(client.got_len, 40000);
		ck_assert(memcmp(client.got, down, 40000) == 0);
		server.got_len = client.got_len = 0;
	}
	ck_assert(!client.failed && !server.failed);
	free(down);
	peer_free(&client);
	peer_free(&server);
}
END_TEST

/* Plaintext written before the handshake finishes (an implicit-TLS greeting)
 * waits and then goes out first, in order. */
START_TEST(test_write_before_handshake)
{
	struct peer client, server;

	peer_init(&client, tls_conn_new(client_ctx, "localhost"));
	peer_init(&server, tls_conn_new(server_ctx, NULL));
	ck_assert_int_eq(tls_conn_write(server.conn, "* OK ", 5), TLS_IO_OK);
	ck_assert_int_eq(tls_conn_write(server.conn, "IMAP4rev1\r\n", 11), TLS_IO_OK);
	ck_assert_uint_eq(tls_conn_output_pending(server.conn), 0);
	ck_assert_int_eq(tls_conn_handshake(client.conn), TLS_IO_WANT);
	ck_assert_int_eq(tls_conn_write(client.conn, "a1 NOOP\r\n", 9), TLS_IO_OK);
	pump(&client, &server);
	ck_assert(tls_conn_handshake_done(server.conn));
	ck_assert_uint_eq(client.got_len, 16);
	ck_assert_mem_eq(client.got, "* OK IMAP4rev1\r\n", 16);
	ck_assert_uint_eq(server.got_len, 9);
	ck_assert_mem_eq(server.got, "a1 NOOP\r\n", 9);
	/* And later writes follow the buffered ones. */
	ck_assert_int_eq(tls_conn_write(server.conn, "a1 OK\r\n", 7), TLS_IO_OK);
	pump(&client, &server);
	ck_assert_uint_eq(client.got_len, 23);
	ck_assert_mem_eq(client.got, "* OK IMAP4rev1\r\na1 OK\r\n", 23);
	peer_free(&client);
	peer_free(&server);
}
END_TEST

/* 3. STARTTLS command injection (CVE-2011-0411 and kin): plaintext that
 * followed STARTTLS in the same packet must never be taken as protected
 * data. Fed to the TLS layer it is a protocol error, not data. */
START_TEST(test_plaintext_is_not_tls)
{
	static const char *inputs[] = {
		"RSET\r\n",
		"EHLO evil.example\r\nMAIL FROM:<a@evil.example>\r\n",
		"a2 LOGIN user pass\r\n",
		"GET / HTTP/1.0\r\n\r\n",
	};

	for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
		struct tls_conn *server = tls_conn_new(server_ctx, NULL);
		unsigned char buf[256];
		size_t n = 99;

		tls_conn_feed(server, inputs[i], strlen(inputs[i]));
		ck_assert_int_eq(tls_conn_read(server, buf, sizeof(buf), &n), TLS_IO_ERROR);
		ck_assert_uint_eq(n, 0);
		ck_assert_str_ne(tls_conn_error(server), "");
		/* Once failed, it stays failed. */
		ck_assert_int_eq(tls_conn_read(server, buf, sizeof(buf), &n), TLS_IO_ERROR);
		ck_assert_int_eq(tls_conn_write(server, "x", 1), TLS_IO_ERROR);
		ck_assert(!tls_conn_handshake_done(server));
		tls_conn_free(&server);
	}
}
END_TEST

/* Injected plaintext ahead of a real ClientHello fails the connection; the
 * same ClientHello on a fresh tls_conn (what the server does once it has
 * discarded the buffered plaintext) completes the handshake. */
START_TEST(test_injection_then_fresh_conn)
{
	unsigned char hello[4096], buf[4096];
	struct peer client, server;
	size_t n;

	peer_init(&client, tls_conn_new(client_ctx, "localhost"));
	size_t hello_len = client_hello(client.conn, hello, sizeof(hello));

	struct tls_conn *bad = tls_conn_new(server_ctx, NULL);
	tls_conn_feed(bad, "RSET\r\n", 6);
	tls_conn_feed(bad, hello, hello_len);
	ck_assert_int_eq(tls_conn_read(bad, buf, sizeof(buf), &n), TLS_IO_ERROR);
	ck_assert_uint_eq(n, 0);
	ck_assert_str_ne(tls_conn_error(bad), "");
	tls_conn_free(&bad);

	peer_init(&server, tls_conn_new(server_ctx, NULL));
	ck_assert_str_eq(tls_conn_error(server.conn), "");
	tls_conn_feed(server.conn, hello, hello_len);
	pump(&client, &server);
	ck_assert(tls_conn_handshake_done(server.conn));
	ck_assert(tls_conn_handshake_done(client.conn));
	ck_assert_int_eq(tls_conn_write(client.conn, "RSET\r\n", 6), TLS_IO_OK);
	pump(&client, &server);
	ck_assert_uint_eq(server.got_len, 6);
	ck_assert_mem_eq(server.got, "RSET\r\n", 6);
	peer_free(&client);
	peer_free(&server);
}
END_TEST

/* 4. Half a ClientHello is "need more", not an error and not data. */
START_TEST(test_truncated_hello_wants_more)
{
	unsigned char hello[4096], buf[256];
	size_t n = 99;

	struct tls_conn *client = tls_conn_new(client_ctx, "localhost");
	size_t hello_len = client_hello(client, hello, sizeof(hello));
	struct tls_conn *server = tls_conn_new(server_ctx, NULL);

	tls_conn_feed(server, hello, hello_len / 2);
	ck_assert_int_eq(tls_conn_read(server, buf, sizeof(buf), &n), TLS_IO_WANT);
	ck_assert_uint_eq(n, 0);
	ck_assert_uint_eq(tls_conn_output_pending(server), 0);
	ck_assert(!tls_conn_handshake_done(server));
	ck_assert_str_eq(tls_conn_error(server), "");
	/* The peer goes away here: the caller frees on EOF; nothing leaks. */
	tls_conn_free(&server);

	/* The rest of the record arrives as garbage: a decode error. */
	server = tls_conn_new(server_ctx, NULL);
	tls_conn_feed(server, hello, hello_len / 2);
	ck_assert_int_eq(tls_conn_read(server, buf, sizeof(buf), &n), TLS_IO_WANT);
	memset(hello + hello_len / 2, 0xff, hello_len - hello_len / 2);
	tls_conn_feed(server, hello + hello_len / 2, hello_len - hello_len / 2);
	ck_assert_int_eq(tls_conn_read(server, buf, sizeof(buf), &n), TLS_IO_ERROR);
	ck_assert_uint_eq(n, 0);
	ck_assert_str_ne(tls_conn_error(server), "");
	/* The server answers with an alert for the peer. */
	ck_assert_uint_gt(tls_conn_output_pending(server), 0);
	tls_conn_free(&server);
	tls_conn_free(&client);
}
END_TEST

/* Record-layer garbage: a handshake record header with an impossible
 * length, and a record of an unknown content type. */
START_TEST(test_garbage_records)
{
	static const unsigned char too_long[] = { 0x16, 0x03, 0x01, 0xff, 0xff, 0x01 };
	static const unsigned char bad_type[] = { 0x42, 0x03, 0x03, 0x00, 0x02, 0x01, 0x00 };
	static const unsigned char bad_hs[] = { 0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x00, 0x00, 0x00 };
	const struct {
		const unsigned char *data;
		size_t len;
	} cases[] = {
		{ too_long, sizeof(too_long) },
		{ bad_type, sizeof(bad_type) },
		{ bad_hs, sizeof(bad_hs) },
	};
	unsigned char buf[256];
	size_t n;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct tls_conn *server = tls_conn_new(server_ctx, NULL);
		tls_conn_feed(server, cases[i].data, cases[i].len);
		ck_assert_int_eq(tls_conn_read(server, buf, sizeof(buf), &n), TLS_IO_ERROR);
		ck_assert_uint_eq(n, 0);
		ck_assert_msg(tls_conn_error(server)[0] != '\0', "case %zu: no error text", i);
		tls_conn_free(&server);
	}

	/* Garbage to a client that is waiting for the ServerHello. */
	unsigned char hello[4096];
	struct tls_conn *client = tls_conn_new(client_ctx, "localhost");
	client_hello(client, hello, sizeof(hello));
	tls_conn_feed(client, "220 mail.example ESMTP\r\n", 24);
	ck_assert_int_eq(tls_conn_read(client, buf, sizeof(buf), &n), TLS_IO_ERROR);
	ck_assert_str_ne(tls_conn_error(client), "");
	tls_conn_free(&client);
}
END_TEST

/* A record whose MAC fails after the handshake is an error, not data. */
START_TEST(test_tampered_record)
{
	struct peer client, server;
	unsigned char rec[512], buf[256];
	size_t n;

	connect_pair(&client, &server);
	ck_assert_int_eq(tls_conn_write(client.conn, "a1 LOGOUT\r\n", 11), TLS_IO_OK);
	size_t len = tls_conn_take_output(client.conn, rec, sizeof(rec));
	ck_assert_uint_gt(len, 11);
	rec[len - 1] ^= 0x01;
	tls_conn_feed(server.conn, rec, len);
	ck_assert_int_eq(tls_conn_read(server.conn, buf, sizeof(buf), &n), TLS_IO_ERROR);
	ck_assert_uint_eq(n, 0);
	ck_assert_str_ne(tls_conn_error(server.conn), "");
	peer_free(&client);
	peer_free(&server);
}
END_TEST

/* 5. A client that cannot go above TLS 1.1 is refused. */
START_TEST(test_tls11_client_refused)
{
	SSL_CTX *old = SSL_CTX_new(TLS_client_method());
	ck_assert_ptr_nonnull(old);
	/* Security level 0, or OpenSSL 3 will not even offer TLS 1.1. */
	SSL_CTX_set_security_level(old, 0);
	ck_assert_int_eq(SSL_CTX_set_min_proto_version(old, TLS1_VERSION), 1);
	ck_assert_int_eq(SSL_CTX_set_max_proto_version(old, TLS1_1_VERSION), 1);
	ck_assert_int_eq(SSL_CTX_set_cipher_list(old, "DEFAULT:@SECLEVEL=0"), 1);
	SSL *ssl = SSL_new(old);
	BIO *rbio = BIO_new(BIO_s_mem()), *wbio = BIO_new(BIO_s_mem());
	BIO_set_mem_eof_return(rbio, -1);
	SSL_set_bio(ssl, rbio, wbio);
	SSL_set_connect_state(ssl);

	struct tls_conn *server = tls_conn_new(server_ctx, NULL);
	unsigned char buf[16384];
	enum tls_io io = TLS_IO_WANT;
	int client_ret = 0, client_err = SSL_ERROR_NONE;
	bool client_sent = false;
	size_t n;

	for (int round = 0; round < 20; round++) {
		if (client_err != SSL_ERROR_SSL && client_err != SSL_ERROR_SYSCALL) {
			client_ret = SSL_do_handshake(ssl);
			client_err = SSL_get_error(ssl, client_ret);
		}
		bool moved = false;
		int got;
		while ((got = BIO_read(wbio, buf, sizeof(buf))) > 0) {
			tls_conn_feed(server, buf, (size_t)got);
			client_sent = moved = true;
		}
		if (io == TLS_IO_WANT)
			io = tls_conn_read(server, buf, sizeof(buf), &n);
		while ((n = tls_conn_take_output(server, buf, sizeof(buf))) > 0) {
			BIO_write(rbio, buf, (int)n);
			moved = true;
		}
		if (!moved)
			break;
	}
	ERR_clear_error();
	/* The old client really tried (so the refusal is the server's doing)... */
	ck_assert(client_sent);
	/* ...and the server said no, and so the client failed too. */
	ck_assert_int_eq(io, TLS_IO_ERROR);
	ck_assert_str_ne(tls_conn_error(server), "");
	ck_assert(!tls_conn_handshake_done(server));
	ck_assert_int_ne(client_ret, 1);
	ck_assert_int_eq(client_err, SSL_ERROR_SSL);
	ck_assert(!SSL_is_init_finished(ssl));

	SSL_free(ssl);
	SSL_CTX_free(old);
	tls_conn_free(&server);
}
END_TEST

/* 6. */
START_TEST(test_close_notify)
{
	struct peer client, server;

	connect_pair(&client, &server);
	ck_assert_int_eq(tls_conn_write(server.conn, "* BYE\r\n", 7), TLS_IO_OK);
	tls_conn_shutdown(server.conn);
	ck_assert_uint_gt(tls_conn_output_pending(server.conn), 0);
	pump(&client, &server);
	/* Data before the alert arrives; then the end. */
	ck_assert_uint_eq(client.got_len, 7);
	ck_assert_mem_eq(client.got, "* BYE\r\n", 7);
	ck_assert(client.closed);
	ck_assert(!client.failed);
	ck_assert(!server.closed);
	/* Reading again still says closed. */
	unsigned char buf[16];
	size_t n;
	ck_assert_int_eq(tls_conn_read(client.conn, buf, sizeof(buf), &n), TLS_IO_CLOSED);
	ck_assert_uint_eq(n, 0);

	/* The client answers in kind. */
	tls_conn_shutdown(client.conn);
	pump(&client, &server);
	ck_assert(server.closed);
	peer_free(&client);
	peer_free(&server);
}
END_TEST

START_TEST(test_shutdown_during_handshake)
{
	struct tls_conn *server = tls_conn_new(server_ctx, NULL);
	tls_conn_shutdown(server);
	ck_assert_uint_eq(tls_conn_output_pending(server), 0);
	tls_conn_free(&server);
	ck_assert_ptr_null(server);
	tls_conn_free(&server);  /* NULL is fine */
}
END_TEST

static void read_cert(const char *path, X509 **cert_r)
{
	FILE *f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	*cert_r = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	ck_assert_ptr_nonnull(*cert_r);
}

static void fingerprint_of(const char *cert, const char *key, char *out, size_t outlen)
{
	struct tls_ctx *ctx;
	char *error = NULL;

	if (tls_ctx_new_server(cert, key, NULL, NULL, &ctx, &error) < 0)
		ck_abort_msg("%s", error);
	tls_ctx_fingerprint(ctx, out, outlen);
	tls_ctx_unref(&ctx);
	ck_assert_ptr_null(ctx);
}

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, ".."))
			n++;
	}
	closedir(d);
	return n;
}

/* 7. */
START_TEST(test_selfsigned_ensure)
{
	struct stat st;
	char fp1[96], fp2[96];
	bool created = true;
	char *error = NULL;

	/* The fixture made DIR/data/tls: mkdir -p with 0700, key 0600. */
	ck_assert_int_eq(stat(certdir, &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0700);
	ck_assert_int_eq(stat(key_path, &st), 0);
	ck_assert(S_ISREG(st.st_mode));
	ck_assert_int_eq(st.st_mode & 07777, 0600);
	ck_assert_int_eq(stat(cert_path, &st), 0);
	ck_assert_int_eq(st.st_mode & 0077 & ~0044, 0);  /* no write for others */
	ck_assert_int_eq(count_entries(certdir), 2);     /* no temporary files left */

	fingerprint_of(cert_path, key_path, fp1, sizeof(fp1));
	ck_assert_int_eq(tls_selfsigned_ensure(certdir, "localhost", &created, &error), 0);
	ck_assert_ptr_null(error);
	ck_assert(!created);
	fingerprint_of(cert_path, key_path, fp2, sizeof(fp2));
	ck_assert_str_eq(fp1, fp2);

	/* The certificate: ECDSA P-256, self-signed, about ten years, names. */
	X509 *cert;
	read_cert(cert_path, &cert);
	EVP_PKEY *pub = X509_get0_pubkey(cert);
	ck_assert_int_eq(EVP_PKEY_get_base_id(pub), EVP_PKEY_EC);
	ck_assert_int_eq(EVP_PKEY_get_bits(pub), 256);
	ck_assert_int_eq(X509_verify(cert, pub), 1);
	ck_assert_int_eq(X509_check_host(cert, "localhost", 0, 0, NULL), 1);
	ck_assert_int_eq(X509_check_ip_asc(cert, "127.0.0.1", 0), 1);
	ck_assert_int_eq(X509_check_ip_asc(cert, "::1", 0), 1);
	ck_assert_int_ne(X509_check_host(cert, "mail.example.org", 0, 0, NULL), 1);
	int days, secs;
	ck_assert_int_eq(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(cert),
					X509_get0_notAfter(cert)), 1);
	ck_assert_int_ge(days, 3650);
	ck_assert_int_le(days, 3660);
	ck_assert_int_eq(X509_get_version(cert), X509_VERSION_3);
	X509_free(cert);

	/* A real hostname, in a directory that does not exist yet. */
	char dir2[256], cert2[300], key2[300];
	snprintf(dir2, sizeof(dir2), "%s/other/deeper", tmpdir);
	snprintf(cert2, sizeof(cert2), "%s/cert.pem", dir2);
	snprintf(key2, sizeof(key2), "%s/key.pem", dir2);
	ck_assert_int_eq(tls_selfsigned_ensure(dir2, "mail.example.org", &created, &error), 0);
	ck_assert(created);
	read_cert(cert2, &cert);
	ck_assert_int_eq(X509_check_host(cert, "mail.example.org", 0, 0, NULL), 1);
	ck_assert_int_ne(X509_check_host(cert, "localhost", 0, 0, NULL), 1);
	ck_assert_int_ne(X509_check_ip_asc(cert, "127.0.0.1", 0), 1);
	X509_free(cert);
	fingerprint_of(cert2, key2, fp2, sizeof(fp2));
	ck_assert_str_ne(fp1, fp2);

	/* Only the key survived an interrupted first run: a new pair is made. */
	ck_assert_int_eq(unlink(cert2), 0);
	ck_assert_int_eq(tls_selfsigned_ensure(dir2, "mail.example.org", &created, &error), 0);
	ck_assert(created);
	fingerprint_of(cert2, key2, fp1, sizeof(fp1));
	ck_assert_str_ne(fp1, fp2);

	/* A file where the directory should be. */
	char notdir[400];
	snprintf(notdir, sizeof(notdir), "%s/sub", cert2);
	ck_assert_int_eq(tls_selfsigned_ensure(notdir, "localhost", &created, &error), -1);
	ck_assert_ptr_nonnull(error);
	free(error);
	error = NULL;
	ck_assert_int_eq(tls_selfsigned_ensure(certdir, "", &created, &error), -1);
	ck_assert_ptr_nonnull(error);
	free(error);
}
END_TEST

START_TEST(test_load_errors)
{
	struct tls_ctx *ctx = (struct tls_ctx *)1;
	char *error = NULL;
	char missing[200], garbage[200], other[200];

	snprintf(missing, sizeof(missing), "%s/missing.pem", tmpdir);
	ck_assert_int_eq(tls_ctx_new_server(missing, key_path, NULL, NULL, &ctx, &error), -1);
	ck_assert_ptr_null(ctx);
	ck_assert_ptr_nonnull(error);
	ck_assert_msg(strstr(error, missing) != NULL, "error: %s", error);
	free(error);

	snprintf(garbage, sizeof(garbage), "%s/garbage.pem", tmpdir);
	FILE *f = fopen(garbage, "w");
	ck_assert_ptr_nonnull(f);
	fputs("this is not a certificate\n", f);
	fclose(f);
	ck_assert_int_eq(tls_ctx_new_server(garbage, key_path, NULL, NULL, &ctx, &error), -1);
	ck_assert_msg(strstr(error, garbage) != NULL, "error: %s", error);
	free(error);
	/* The same for the key. */
	ck_assert_int_eq(tls_ctx_new_server(cert_path, garbage, NULL, NULL, &ctx, &error), -1);
	ck_assert_msg(strstr(error, garbage) != NULL, "error: %s", error);
	free(error);
	ck_assert_int_eq(tls_ctx_new_server(cert_path, missing, NULL, NULL, &ctx, &error), -1);
	ck_assert_msg(strstr(error, missing) != NULL, "error: %s", error);
	free(error);

	/* A key that belongs to another certificate. */
	bool created;
	snprintf(other, sizeof(other), "%s/other", tmpdir);
	ck_assert_int_eq(tls_selfsigned_ensure(other, "localhost", &created, &error), 0);
	snprintf(other, sizeof(other), "%s/other/key.pem", tmpdir);
	ck_assert_int_eq(tls_ctx_new_server(cert_path, other, NULL, NULL, &ctx, &error), -1);
	ck_assert_msg(strstr(error, other) != NULL, "error: %s", error);
	free(error);

	/* Bad cipher settings name themselves. */
	ck_assert_int_eq(tls_ctx_new_server(cert_path, key_path, "NOPE-NOT-A-CIPHER", NULL, &ctx,
					    &error), -1);
	ck_assert_msg(strstr(error, "NOPE-NOT-A-CIPHER") != NULL, "error: %s", error);
	free(error);
	ck_assert_int_eq(tls_ctx_new_server(cert_path, key_path, NULL, "TLS_NOPE", &ctx, &error),
			 -1);
	ck_assert_msg(strstr(error, "TLS_NOPE") != NULL, "error: %s", error);
	free(error);
	ck_assert_int_eq(tls_ctx_new_client(true, missing, &ctx, &error), -1);
	ck_assert_msg(strstr(error, missing) != NULL, "error: %s", error);
	free(error);

	/* Explicit lists are used. */
	ck_assert_int_eq(tls_ctx_new_server(cert_path, key_path, "ECDHE-ECDSA-CHACHA20-POLY1305",
					    "TLS_CHACHA20_POLY1305_SHA256", &ctx, &error), 0);
	struct peer client, server;
	peer_init(&client, tls_conn_new(client_ctx, "localhost"));
	peer_init(&server, tls_conn_new(ctx, NULL));
	tls_ctx_unref(&ctx);  /* the connection keeps its own reference */
	tls_conn_handshake(client.conn);
	pump(&client, &server);
	ck_assert(tls_conn_handshake_done(server.conn));
	ck_assert_str_eq(tls_conn_cipher(server.conn), "TLS_CHACHA20_POLY1305_SHA256");
	peer_free(&client);
	peer_free(&server);
}
END_TEST

/* 8. */
START_TEST(test_fingerprint_format)
{
	char fp[96];
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen;

	memset(fp, 'x', sizeof(fp));
	tls_ctx_fingerprint(server_ctx, fp, sizeof(fp));
	ck_assert_uint_eq(strlen(fp), 95);
	for (size_t i = 0; i < 95; i++) {
		if (i % 3 == 2)
			ck_assert_int_eq(fp[i], ':');
		else
			ck_assert_msg(strchr("0123456789ABCDEF", fp[i]) != NULL && fp[i] != '\0',
				      "char %zu of %s", i, fp);
	}
	/* The SHA-256 of the DER certificate, independently. */
	X509 *cert;
	read_cert(cert_path, &cert);
	ck_assert_int_eq(X509_digest(cert, EVP_sha256(), md, &mdlen), 1);
	ck_assert_uint_eq(mdlen, 32);
	X509_free(cert);
	for (unsigned i = 0; i < mdlen; i++) {
		char two[3];
		snprintf(two, sizeof(two), "%02X", md[i]);
		ck_assert_mem_eq(fp + 3 * i, two, 2);
	}

	/* A short buffer gets whole bytes only, and stays terminated. */
	char small[10];
	memset(small, 'x', sizeof(small));
	tls_ctx_fingerprint(server_ctx, small, sizeof(small));
	ck_assert_uint_eq(strlen(small), 8);
	ck_assert_mem_eq(small, fp, 8);
	/* A client context has no certificate. */
	tls_ctx_fingerprint(client_ctx, small, sizeof(small));
	ck_assert_str_eq(small, "");

	/* References: two refs, two unrefs. */
	struct tls_ctx *ref = tls_ctx_ref(server_ctx);
	ck_assert_ptr_eq(ref, server_ctx);
	tls_ctx_unref(&ref);
	ck_assert_ptr_null(ref);
	tls_ctx_fingerprint(server_ctx, fp, sizeof(fp));
	ck_assert_uint_eq(strlen(fp), 95);
}
END_TEST

/* 9. */
static void check_resumption(int max_version, const char *want_version)
{
	struct peer client, server;

	peer_init(&client, tls_conn_new(client_ctx, "localhost"));
	peer_init(&server, tls_conn_new(server_ctx, NULL));
	if (max_version != 0)
		SSL_set_max_proto_version(tls_conn_ssl(client.conn), max_version);
	tls_conn_handshake(client.conn);
	pump(&client, &server);
	ck_assert(tls_conn_handshake_done(client.conn));
	ck_assert_str_eq(tls_conn_version(client.conn), want_version);
	ck_assert(!SSL_session_reused(tls_conn_ssl(client.conn)));
	/* TLS 1.3 tickets arrive after the handshake; the pump read them. */
	SSL_SESSION *sess = SSL_get1_session(tls_conn_ssl(client.conn));
	ck_assert_ptr_nonnull(sess);
	ck_assert(SSL_SESSION_is_resumable(sess));
	/* A clean close: OpenSSL forgets sessions of connections freed
	 * without a close_notify (they might have been cut off by an attacker). */
	tls_conn_shutdown(client.conn);
	pump(&client, &server);
	ck_assert(server.closed);
	ck_assert(SSL_SESSION_is_resumable(sess));
	peer_free(&client);
	peer_free(&server);

	peer_init(&client, tls_conn_new(client_ctx, "localhost"));
	peer_init(&server, tls_conn_new(server_ctx, NULL));
	if (max_version != 0)
		SSL_set_max_proto_version(tls_conn_ssl(client.conn), max_version);
	ck_assert_int_eq(SSL_set_session(tls_conn_ssl(client.conn), sess), 1);
	SSL_SESSION_free(sess);
	tls_conn_handshake(client.conn);
	pump(&client, &server);
	ck_assert(tls_conn_handshake_done(client.conn));
	ck_assert(tls_conn_handshake_done(server.conn));
	ck_assert_msg(SSL_session_reused(tls_conn_ssl(client.conn)), "client did not resume");
	ck_assert(SSL_session_reused(tls_conn_ssl(server.conn)));
	ck_assert_int_eq(tls_conn_write(client.conn, "QUIT\r\n", 6), TLS_IO_OK);
	pump(&client, &server);
	ck_assert_uint_eq(server.got_len, 6);
	peer_free(&client);
	peer_free(&server);
}

START_TEST(test_resumption_tls13)
{
	check_resumption(0, "TLSv1.3");
}
END_TEST

START_TEST(test_resumption_tls12)
{
	check_resumption(TLS1_2_VERSION, "TLSv1.2");
}
END_TEST

/* A verifying client: trusts the self-signed file as its CA, checks the
 * name it asked for. */
START_TEST(test_client_verify)
{
	struct tls_ctx *vctx;
	char *error = NULL;
	struct peer client, server;

	if (tls_ctx_new_client(true, cert_path, &vctx, &error) < 0)
		ck_abort_msg("%s", error);
	peer_init(&client, tls_conn_new(vctx, "localhost"));
	peer_init(&server, tls_conn_new(server_ctx, NULL));
	tls_conn_handshake(client.conn);
	pump(&client, &server);
	ck_assert_msg(tls_conn_handshake_done(client.conn), "%s", tls_conn_error(client.conn));
	peer_free(&client);
	peer_free(&server);

	/* By address (no SNI for literals: RFC 6066 3). */
	peer_init(&client, tls_conn_new(vctx, "127.0.0.1"));
	peer_init(&server, tls_conn_new(server_ctx, NULL));
	tls_conn_handshake(client.conn);
	pump(&client, &server);
	ck_assert_msg(tls_conn_handshake_done(client.conn), "%s", tls_conn_error(client.conn));
	ck_assert_ptr_null(SSL_get_servername(tls_conn_ssl(server.conn), TLSEXT_NAMETYPE_host_name));
	peer_free(&client);
	peer_free(&server);

	/* The wrong name fails on the client, with a reason. */
	peer_init(&client, tls_conn_new(vctx, "mail.example.org"));
	peer_init(&server, tls_conn_new(server_ctx, NULL));
	tls_conn_handshake(client.conn);
	pump(&client, &server);
	ck_assert(client.failed);
	ck_assert(!tls_conn_handshake_done(client.conn));
	ck_assert_msg(strstr(tls_conn_error(client.conn), "verify") != NULL, "%s",
		      tls_conn_error(client.conn));
	peer_free(&client);
	peer_free(&server);
	tls_ctx_unref(&vctx);

	/* The system store does not know our self-signed certificate. */
	if (tls_ctx_new_client(true, NULL, &vctx, &error) < 0)
		ck_abort_msg("%s", error);
	peer_init(&client, tls_conn_new(vctx, "localhost"));
	peer_init(&server, tls_conn_new(server_ctx, NULL));
	tls_conn_handshake(client.conn);
	pump(&client, &server);
	ck_assert(client.failed);
	peer_free(&client);
	peer_free(&server);
	tls_ctx_unref(&vctx);
}
END_TEST

/* One connection's failure leaves nothing behind for the next. */
START_TEST(test_errors_do_not_leak)
{
	unsigned char buf[64];
	size_t n;

	struct tls_conn *bad = tls_conn_new(server_ctx, NULL);
	tls_conn_feed(bad, "HELO x\r\n", 8);
	ck_assert_int_eq(tls_conn_read(bad, buf, sizeof(buf), &n), TLS_IO_ERROR);
	ck_assert_uint_eq(ERR_peek_error(), 0);
	/* Something else pushes an error onto the queue meanwhile. */
	ERR_raise(ERR_LIB_SSL, SSL_R_BAD_LENGTH);

	struct peer client, server;
	connect_pair(&client, &server);
	ck_assert_str_eq(tls_conn_error(server.conn), "");
	ck_assert_str_eq(tls_conn_error(client.conn), "");
	ck_assert_str_ne(tls_conn_error(bad), "");
	tls_conn_free(&bad);
	peer_free(&client);
	peer_free(&server);
	ERR_clear_error();
}
END_TEST

static Suite *tls_suite(void)
{
	Suite *s = suite_create("tls");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_handshake);
	tcase_add_test(tc, test_handshake_byte_at_a_time);
	tcase_add_test(tc, test_handshake_tls12);
	tcase_add_test(tc, test_tls12_no_aead_refused);
	tcase_add_test(tc, test_data_both_ways);
	tcase_add_test(tc, test_trim_keeps_working);
	tcase_add_test(tc, test_write_before_handshake);
	tcase_add_test(tc, test_plaintext_is_not_tls);
	tcase_add_test(tc, test_injection_then_fresh_conn);
	tcase_add_test(tc, test_truncated_hello_wants_more);
	tcase_add_test(tc, test_garbage_records);
	tcase_add_test(tc, test_tampered_record);
	tcase_add_test(tc, test_tls11_client_refused);
	tcase_add_test(tc, test_close_notify);
	tcase_add_test(tc, test_shutdown_during_handshake);
	tcase_add_test(tc, test_selfsigned_ensure);
	tcase_add_test(tc, test_load_errors);
	tcase_add_test(tc, test_fingerprint_format);
	tcase_add_test(tc, test_resumption_tls13);
	tcase_add_test(tc, test_resumption_tls12);
	tcase_add_test(tc, test_client_verify);
	tcase_add_test(tc, test_errors_do_not_leak);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run(tls_suite());
}
