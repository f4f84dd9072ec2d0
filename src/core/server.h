#ifndef POSTBOTE_CORE_SERVER_H
#define POSTBOTE_CORE_SERVER_H

/*
 * The running server: listeners, connections, the TLS context and signal
 * handling on one libuv loop.
 *
 * Lifecycle: server_new() binds every listener (so a port in use is a
 * start-up error naming the address) and loads TLS; server_run() runs the
 * loop until SIGTERM/SIGINT, then says goodbye to each session, lets
 * in-flight work finish for at most shutdown_timeout, and returns.
 * SIGHUP re-reads the config file and the TLS certificate; a broken file is
 * logged and the old settings stay.
 */

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "core/config.h"
#include "core/db.h"
#include "core/iplimit.h"
#include "core/services.h"
#include "core/session.h"
#include "core/tls.h"

struct auth;
struct conn;
struct store;
struct smtp_backend;
struct pop3_backend;
struct imap_backend;
struct queue;
struct outbound;

struct listener {
	uv_tcp_t tcp;                       /* first: the handle's address is the listener's */
	struct server *srv;
	enum listener_kind kind;
	const struct session_proto *proto;
	char name[96];                      /* "imaps 127.0.0.1:2993", for logs */
};

struct server {
	uv_loop_t *loop;
	struct config *cfg;                 /* owned; scalar settings change on SIGHUP */
	struct tls_ctx *tls;                /* for new connections; swapped on SIGHUP */
	struct db *db;                      /* accounts and the mailbox index */
	struct store *store;                /* Maildirs, delivery, notifications */
	struct auth *auth;                  /* password checks off the loop, throttling */
	struct services svc;                /* the above, for the protocols' backends */
	struct smtp_backend *smtp_backend;  /* how SMTP sessions reach accounts and the store */
	struct pop3_backend *pop3_backend;  /* how POP3 sessions reach accounts and the store */
	struct imap_backend *imap_backend;  /* how IMAP sessions reach accounts and the store */
	struct queue *queue;                /* outbound messages, durable (DATA/queue + LMDB) */
	struct outbound *outbound;          /* makes queued mail leave */
	char *tls_cert_path;                /* the files the context was loaded from */
	char *tls_key_path;

	struct listener **listeners;
	size_t n_listeners;

	struct conn *conns;                 /* every open connection, for shutdown */
	unsigned n_conns;                   /* accepted and counted against the limits */
	unsigned n_refusing;                /* being turned away (sending the refusal) */
	unsigned n_handles_open;            /* conns not yet freed, counted or not */
	struct iplimit *iplimit;

	uv_signal_t sig_term, sig_int, sig_hup;
	uv_timer_t stop_timer;
	uv_timer_t trim_timer;              /* gives quiet connections' buffers back */
	bool signals_started;
	bool stopping;
	uint64_t next_id;

	char readbuf[64 * 1024];            /* every read lands here; handled at once */
};

/* The protocol spoken on a kind of listener. */
const struct session_proto *server_proto_for(enum listener_kind kind);
/* The backend its sessions use (session_params.backend). */
void *server_backend_for(struct server *srv, enum listener_kind kind);

/* Make the data directory and TLS material, bind every listener. Takes
 * ownership of cfg (also on failure). Returns 0, or -1 with *error_r
 * (caller frees) and *exit_r the sysexits code to exit with. */
int server_new(uv_loop_t *loop, struct config *cfg, struct server **srv_r, char **error_r, int *exit_r);

/* Open the index and the store, recovering from the delivery log (after
 * privileges were dropped, so what it creates belongs to the run user), and
 * the password verifier the protocols share. Returns 0, or -1 with
 * *error_r. */
int server_open_store(struct server *srv, char **error_r);

/* Drop root privileges to cfg->run_user (after binding). Returns 0 or -1
 * with *error_r. Does nothing when no run_user is set. */
int server_drop_privileges(struct server *srv, char **error_r);

/* Run until stopped by a signal (or server_stop). Returns 0. */
int server_run(struct server *srv);

/* Begin a graceful stop: close listeners, say goodbye to every session. */
void server_stop(struct server *srv);

/* Re-read the config file and TLS certificate (what SIGHUP does). Returns 0,
 * or -1 (logged) when the new config or certificate was refused and the old
 * ones kept. */
int server_reload(struct server *srv);

/* Free a server whose loop has finished. */
void server_free(struct server **srv);

/* For conn.c: a connection has gone; when stopping and none are left, the
 * loop is allowed to end. */
void server__conn_gone(struct server *srv);

#endif
