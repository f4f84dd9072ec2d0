/*
 * The server: listeners, TLS material, signals, reload and graceful stop.
 *
 * Everything here runs on the loop thread. The only blocking work is at
 * start-up (binding, creating the data directory, generating a self-signed
 * certificate) and on SIGHUP (reading a config file and a certificate, both
 * small local files, which is what every daemon does on reload).
 */
#include "core/server.h"

#include <errno.h>
#include <ftw.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/auth.h"
#include "auth/throttle.h"
#include "core/conn.h"
#include "core/imap_glue.h"
#include "core/log.h"
#include "core/pop3_glue.h"
#include "core/smtp_glue.h"
#include "core/trace.h"
#include "core/xalloc.h"
#include "imap/imap_session.h"
#include "maildir/store.h"
#include "mta/outbound.h"
#include "mta/queue.h"
#include "pop3/pop3_session.h"
#include "smtp/smtp_session.h"

/* sysexits.h values, spelled out so the CLI and the server agree. */
#define EXIT_CONFIG 78
#define EXIT_UNAVAILABLE 69
#define EXIT_CANTCREAT 73
/* How often connections that have been quiet this long give back their
 * buffers (see conn_trim_quiet). */
#define SERVER_TRIM_PERIOD_MS 1000

static void server_trim_quiet(uv_timer_t *t);

const struct session_proto *server_proto_for(enum listener_kind kind)
{
	switch (kind) {
	case LISTENER_SMTP:
	case LISTENER_SUBMISSION:
	case LISTENER_SUBMISSIONS:
		return &smtp_proto;
	case LISTENER_POP3:
	case LISTENER_POP3S:
		return &pop3_proto;
	case LISTENER_IMAP:
	case LISTENER_IMAPS:
	default:
		return &imap_proto;
	}
}

void *server_backend_for(struct server *srv, enum listener_kind kind)
{
	switch (kind) {
	case LISTENER_SMTP:
	case LISTENER_SUBMISSION:
	case LISTENER_SUBMISSIONS:
		return srv->smtp_backend;
	case LISTENER_POP3:
	case LISTENER_POP3S:
		return srv->pop3_backend;
	case LISTENER_IMAP:
	case LISTENER_IMAPS:
		return srv->imap_backend;
	default:
		return NULL;
	}
}

/* mkdir -p with a mode for the directories it creates. */
static int server_mkdirs(const char *path, mode_t mode)
{
	char *p = xstrdup(path);

	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, mode) < 0 && errno != EEXIST) {
			free(p);
			return -1;
		}
		*s = '/';
	}
	int rc = mkdir(p, mode) < 0 && errno != EEXIST ? -1 : 0;
	free(p);
	return rc;
}

/* Load the certificate the config names, or the self-signed one in
 * DATA/tls/ (made on first start). */
static int server_load_tls(struct server *srv, const struct config *cfg, struct tls_ctx **ctx_r,
			   char **cert_r, char **key_r, char **error_r)
{
	char *cert, *key;

	if (cfg->tls_cert != NULL) {
		cert = xstrdup(cfg->tls_cert);
		key = xstrdup(cfg->tls_key);
	} else {
		char *dir = xasprintf("%s/tls", cfg->data_dir);
		bool created = false;
		if (tls_selfsigned_ensure(dir, cfg->hostname, &created, error_r) < 0) {
			free(dir);
			return -1;
		}
		cert = xasprintf("%s/cert.pem", dir);
		key = xasprintf("%s/key.pem", dir);
		if (created)
			log_info("generated a self-signed certificate for %s in %s", cfg->hostname, dir);
		free(dir);
	}
	if (tls_ctx_new_server(cert, key, cfg->tls_ciphers, cfg->tls_ciphersuites, ctx_r, error_r) < 0) {
		free(cert);
		free(key);
		return -1;
	}
	char fp[128];
	tls_ctx_fingerprint(*ctx_r, fp, sizeof(fp));
	log_info("TLS certificate %s, SHA-256 fingerprint %s", cert, fp);
	*cert_r = cert;
	*key_r = key;
	return 0;
}

static void server_on_connection(uv_stream_t *stream, int status)
{
	struct listener *l = (struct listener *)stream;

	if (status < 0) {
		log_warn("accept on %s: %s", l->name, uv_strerror(status));
		return;
	}
	conn_accept(l);
}

static int server_listen(struct server *srv, const struct config_listen *cl, char **error_r)
{
	struct listener *l = xcalloc(1, sizeof(*l));
	struct sockaddr_storage ss;
	bool v6 = strchr(cl->host, ':') != NULL;
	int rc;

	l->srv = srv;
	l->kind = cl->kind;
	l->proto = server_proto_for(cl->kind);
	snprintf(l->name, sizeof(l->name), v6 ? "%s [%s]:%d" : "%s %s:%d", listener_kind_name(cl->kind),
		 cl->host, cl->port);
	uv_tcp_init(srv->loop, &l->tcp);
	l->tcp.data = l;
	srv->listeners = xrealloc(srv->listeners, (srv->n_listeners + 1) * sizeof(*srv->listeners));
	srv->listeners[srv->n_listeners++] = l;

	rc = v6 ? uv_ip6_addr(cl->host, cl->port, (struct sockaddr_in6 *)&ss) :
		  uv_ip4_addr(cl->host, cl->port, (struct sockaddr_in *)&ss);
	if (rc == 0)
		rc = uv_tcp_bind(&l->tcp, (struct sockaddr *)&ss, v6 ? UV_TCP_IPV6ONLY : 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&l->tcp, 511, server_on_connection);
	if (rc < 0) {
		*error_r = xasprintf("cannot listen on %s%s%s:%d (%s): %s", v6 ? "[" : "", cl->host,
				     v6 ? "]" : "", cl->port, listener_kind_name(cl->kind), uv_strerror(rc));
		return -1;
	}
	log_info("listening on %s", l->name);
	return 0;
}

static void server_on_signal(uv_signal_t *h, int signum)
{
	struct server *srv = h->data;

	if (signum == SIGHUP) {
		log_info("SIGHUP: reloading configuration and TLS certificate");
		server_reload(srv);
		return;
	}
	log_info("%s: stopping", signum == SIGTERM ? "SIGTERM" : "SIGINT");
	server_stop(srv);
}

int server_new(uv_loop_t *loop, struct config *cfg, struct server **srv_r, char **error_r, int *exit_r)
{
	struct server *srv = xcalloc(1, sizeof(*srv));

	*srv_r = srv;
	srv->loop = loop;
	srv->cfg = cfg;
	srv->iplimit = iplimit_new();
	uv_timer_init(loop, &srv->stop_timer);
	srv->stop_timer.data = srv;
	uv_timer_init(loop, &srv->trim_timer);
	srv->trim_timer.data = srv;
	/* It never keeps the loop alive by itself. */
	uv_unref((uv_handle_t *)&srv->trim_timer);
	srv->n_handles_open = 0;

	if (server_mkdirs(cfg->data_dir, 0750) < 0) {
		*error_r = xasprintf("cannot create data directory %s: %s", cfg->data_dir, strerror(errno));
		*exit_r = EXIT_CANTCREAT;
		return -1;
	}
	if (server_load_tls(srv, cfg, &srv->tls, &srv->tls_cert_path, &srv->tls_key_path, error_r) < 0) {
		*exit_r = EXIT_CONFIG;
		return -1;
	}

	for (size_t i = 0; i < cfg->n_listens; i++) {
		if (server_listen(srv, &cfg->listens[i], error_r) < 0) {
			*exit_r = EXIT_UNAVAILABLE;
			return -1;
		}
	}
	return 0;
}

int server_open_store(struct server *srv, char **error_r)
{
	if (db_open(srv->cfg->data_dir, srv->cfg->index_map_size, &srv->db, error_r) < 0 ||
	    store_open(srv->loop, srv->cfg, srv->db, &srv->store, error_r) < 0)
		return -1;
	srv->auth = auth_new(srv->loop, srv->cfg, srv->db);
	srv->svc = (struct services){
		.loop = srv->loop, .cfg = srv->cfg, .db = srv->db, .store = srv->store, .auth = srv->auth,
	};
	srv->smtp_backend = smtp_backend_new(&srv->svc);
	srv->pop3_backend = pop3_backend_new(&srv->svc);
	srv->imap_backend = imap_backend_new(&srv->svc);
	if (queue_open(&srv->svc, &srv->queue, error_r) < 0 ||
	    outbound_new(&srv->svc, srv->queue, &srv->outbound, error_r) < 0)
		return -1;
	smtp_backend_set_queue(srv->smtp_backend, srv->queue, outbound_queued, srv->outbound);
	return 0;
}

static uid_t server_chown_uid;
static gid_t server_chown_gid;

static int server_chown_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)type;
	(void)ftw;
	if ((sb->st_uid != server_chown_uid || sb->st_gid != server_chown_gid) &&
	    lchown(path, server_chown_uid, server_chown_gid) < 0)
		return -1;
	return 0;
}

int server_drop_privileges(struct server *srv, char **error_r)
{
	const char *user = srv->cfg->run_user;

	if (user == NULL || getuid() != 0)
		return 0;
	struct passwd *pw = getpwnam(user);
	if (pw == NULL) {
		*error_r = xasprintf("run_user %s: no such user", user);
		return -1;
	}
	/* Everything in the data directory (index, delivery log, mail, the
	 * self-signed key) belongs to the user the server runs as; files a
	 * root-run CLI made are handed over too. */
	server_chown_uid = pw->pw_uid;
	server_chown_gid = pw->pw_gid;
	if (nftw(srv->cfg->data_dir, server_chown_one, 32, FTW_PHYS) != 0) {
		*error_r = xasprintf("cannot hand %s to %s: %s", srv->cfg->data_dir, user, strerror(errno));
		return -1;
	}
	if (setgroups(1, &pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0) {
		*error_r = xasprintf("cannot switch to user %s: %s", user, strerror(errno));
		return -1;
	}
	log_info("running as user %s", user);
	return 0;
}

int server_run(struct server *srv)
{
	/* A peer that resets the connection must not kill us with SIGPIPE;
	 * libuv reports EPIPE instead. */
	signal(SIGPIPE, SIG_IGN);
	uv_signal_init(srv->loop, &srv->sig_term);
	uv_signal_init(srv->loop, &srv->sig_int);
	uv_signal_init(srv->loop, &srv->sig_hup);
	srv->sig_term.data = srv->sig_int.data = srv->sig_hup.data = srv;
	uv_signal_start(&srv->sig_term, server_on_signal, SIGTERM);
	uv_signal_start(&srv->sig_int, server_on_signal, SIGINT);
	uv_signal_start(&srv->sig_hup, server_on_signal, SIGHUP);
	srv->signals_started = true;
	uv_timer_start(&srv->trim_timer, server_trim_quiet, SERVER_TRIM_PERIOD_MS, SERVER_TRIM_PERIOD_MS);

	uv_run(srv->loop, UV_RUN_DEFAULT);
	return 0;
}

static void server_trim_quiet(uv_timer_t *t)
{
	struct server *srv = t->data;

	for (struct conn *c = srv->conns; c != NULL; c = conn_next(c))
		conn_trim_quiet(c, SERVER_TRIM_PERIOD_MS);
}

static void server_stop_deadline(uv_timer_t *t)
{
	struct server *srv = t->data;

	log_warn("stop: %u connection(s) still busy after %llu ms, closing them", srv->n_handles_open,
		 (unsigned long long)srv->cfg->shutdown_timeout_ms);
	for (struct conn *c = srv->conns, *next; c != NULL; c = next) {
		next = conn_next(c);
		conn_abort(c);
	}
}

static void server_handle_closed(uv_handle_t *h)
{
	(void)h;
}

static void server_listener_closed(uv_handle_t *h)
{
	free(h->data);
}

/* Once stopping and nothing is left, close the last handles so uv_run
 * returns. */
static void server_maybe_finish(struct server *srv)
{
	if (!srv->stopping || srv->n_handles_open > 0)
		return;
	if (!uv_is_closing((uv_handle_t *)&srv->stop_timer))
		uv_close((uv_handle_t *)&srv->stop_timer, server_handle_closed);
	if (!uv_is_closing((uv_handle_t *)&srv->trim_timer))
		uv_close((uv_handle_t *)&srv->trim_timer, server_handle_closed);
}

void server__conn_gone(struct server *srv)
{
	srv->n_handles_open--;
	server_maybe_finish(srv);
}

void server_stop(struct server *srv)
{
	if (srv->stopping)
		return;
	srv->stopping = true;
	/* Attempts under way are abandoned (tried again after a restart);
	 * record updates and bounces already started finish. */
	outbound_stop(srv->outbound);
	for (size_t i = 0; i < srv->n_listeners; i++)
		uv_close((uv_handle_t *)&srv->listeners[i]->tcp, server_listener_closed);
	srv->n_listeners = 0;
	/* Signals stay handled (a second SIGTERM must not kill us mid-way)
	 * but no longer keep the loop alive. */
	uv_unref((uv_handle_t *)&srv->sig_term);
	uv_unref((uv_handle_t *)&srv->sig_int);
	uv_unref((uv_handle_t *)&srv->sig_hup);
	for (struct conn *c = srv->conns, *next; c != NULL; c = next) {
		next = conn_next(c);
		conn_shutdown(c);
	}
	uv_timer_start(&srv->stop_timer, server_stop_deadline, srv->cfg->shutdown_timeout_ms, 0);
	server_maybe_finish(srv);
}

static bool server_listens_equal(const struct config *a, const struct config *b)
{
	if (a->n_listens != b->n_listens)
		return false;
	for (size_t i = 0; i < a->n_listens; i++) {
		if (a->listens[i].kind != b->listens[i].kind || a->listens[i].port != b->listens[i].port ||
		    strcmp(a->listens[i].host, b->listens[i].host) != 0)
			return false;
	}
	return true;
}

static void server_swap_str(char **a, char **b)
{
	char *t = *a;
	*a = *b;
	*b = t;
}

int server_reload(struct server *srv)
{
	struct config *cfg = srv->cfg;
	struct config next;
	char *error = NULL;

	if (cfg->path != NULL) {
		if (config_load(cfg->path, &next, &error) < 0) {
			log_error("reload: %s; keeping the running configuration", error);
			free(error);
			return -1;
		}
	} else {
		config_dev_setup(&next);
	}

	/* TLS first: if the new certificate is broken, nothing changes. */
	struct tls_ctx *tls = NULL;
	char *cert = NULL, *key = NULL;
	if (server_load_tls(srv, &next, &tls, &cert, &key, &error) < 0) {
		log_error("reload: TLS: %s; keeping the running certificate", error);
		free(error);
		config_free(&next);
		return -1;
	}
	tls_ctx_unref(&srv->tls);
	srv->tls = tls;
	free(srv->tls_cert_path);
	free(srv->tls_key_path);
	srv->tls_cert_path = cert;
	srv->tls_key_path = key;

	/* Settings that sessions read through cfg change in place; the
	 * pointer they hold stays valid. What needs sockets or paths reopened
	 * waits for a restart. */
	if (!server_listens_equal(cfg, &next))
		log_warn("reload: listen = lines changed; restart postbote to apply them");
	if (strcmp(cfg->data_dir, next.data_dir) != 0 || strcmp(cfg->hostname, next.hostname) != 0)
		log_warn("reload: data_dir and hostname changes need a restart");
	server_swap_str(&cfg->tls_cert, &next.tls_cert);
	server_swap_str(&cfg->tls_key, &next.tls_key);
	server_swap_str(&cfg->tls_ciphers, &next.tls_ciphers);
	server_swap_str(&cfg->tls_ciphersuites, &next.tls_ciphersuites);
	server_swap_str(&cfg->log_facility, &next.log_facility);
	cfg->allow_plaintext_auth_loopback = next.allow_plaintext_auth_loopback;
	cfg->log_level = next.log_level;
	cfg->log_syslog = next.log_syslog;
	if (trace_get_mode() == cfg->trace)
		trace_set_mode(next.trace); /* --trace on the command line wins */
	cfg->trace = next.trace;
	cfg->max_connections = next.max_connections;
	cfg->max_connections_per_ip = next.max_connections_per_ip;
	cfg->write_buffer_max = next.write_buffer_max;
	cfg->smtp_timeout_ms = next.smtp_timeout_ms;
	cfg->pop3_timeout_ms = next.pop3_timeout_ms;
	cfg->imap_timeout_ms = next.imap_timeout_ms;
	cfg->tls_handshake_timeout_ms = next.tls_handshake_timeout_ms;
	cfg->shutdown_timeout_ms = next.shutdown_timeout_ms;
	cfg->max_bad_commands = next.max_bad_commands;
	/* SMTP limits are read when used, so a session picks them up at its
	 * next command. */
	cfg->message_size_max = next.message_size_max;
	cfg->smtp_max_recipients = next.smtp_max_recipients;
	cfg->smtp_data_line_max = next.smtp_data_line_max;
	cfg->submission_check_sender = next.submission_check_sender;
	/* The outbound engine reads these on the loop for each attempt. Its
	 * retry schedule is also read by record updates in the thread pool,
	 * and routes are held by attempts: those stay until a restart. */
	cfg->outbound_max_connections = next.outbound_max_connections;
	cfg->outbound_max_per_domain = next.outbound_max_per_domain;
	cfg->outbound_tls_verify = next.outbound_tls_verify;
	cfg->outbound_ipv4_only = next.outbound_ipv4_only;
	cfg->outbound_port = next.outbound_port;
	if (strcmp(cfg->queue_retry, next.queue_retry) != 0 || strcmp(cfg->outbound_tls, next.outbound_tls) != 0 ||
	    cfg->queue_lifetime_ms != next.queue_lifetime_ms ||
	    cfg->queue_delay_warning_ms != next.queue_delay_warning_ms ||
	    (cfg->dns_servers == NULL) != (next.dns_servers == NULL) ||
	    (cfg->dns_servers != NULL && strcmp(cfg->dns_servers, next.dns_servers) != 0) ||
	    cfg->n_transports != next.n_transports || cfg->n_smarthosts != next.n_smarthosts)
		log_warn("reload: queue_retry, queue_lifetime, queue_delay_warning, outbound_tls, dns_servers, "
			 "transport and smarthost changes need a restart");
	/* Local domains are looked up afresh for each recipient, never kept
	 * by a session, so the list can be swapped. */
	char **domains = cfg->domains;
	size_t n_domains = cfg->n_domains;
	cfg->domains = next.domains;
	cfg->n_domains = next.n_domains;
	next.domains = domains;
	next.n_domains = n_domains;
	cfg->quota_bytes = next.quota_bytes;
	cfg->quota_messages = next.quota_messages;
	server_swap_str(&cfg->password_scheme, &next.password_scheme);
	server_swap_str(&cfg->recipient_delimiter, &next.recipient_delimiter);
	cfg->auth_fail_delay_ms = next.auth_fail_delay_ms;
	cfg->auth_fail_delay_max_ms = next.auth_fail_delay_max_ms;
	cfg->auth_lockout_failures = next.auth_lockout_failures;
	cfg->auth_lockout_ms = next.auth_lockout_ms;
	cfg->auth_max_hashing = next.auth_max_hashing;
	if (cfg->index_map_size != next.index_map_size || cfg->delivery_log_size != next.delivery_log_size)
		log_warn("reload: index_map_size and delivery_log_size changes need a restart");
	log_setup(cfg->log_level, cfg->log_syslog, cfg->log_facility);
	if (srv->auth != NULL)
		throttle_configure(auth_throttle(srv->auth), cfg);
	if (srv->queue != NULL)
		queue_reload_keys(srv->queue);
	config_free(&next);
	log_info("reload: done");
	return 0;
}

void server_free(struct server **srvp)
{
	struct server *srv = *srvp;

	if (srv == NULL)
		return;
	*srvp = NULL;
	/* Listeners that never got to uv_close (start-up failure). */
	for (size_t i = 0; i < srv->n_listeners; i++)
		uv_close((uv_handle_t *)&srv->listeners[i]->tcp, server_listener_closed);
	if (!uv_is_closing((uv_handle_t *)&srv->stop_timer))
		uv_close((uv_handle_t *)&srv->stop_timer, server_handle_closed);
	if (!uv_is_closing((uv_handle_t *)&srv->trim_timer))
		uv_close((uv_handle_t *)&srv->trim_timer, server_handle_closed);
	if (srv->signals_started) {
		/* Once the handlers go, a late second SIGTERM would kill us
		 * with the default action instead of the exit 0 we are about
		 * to give: keep those signals blocked until exit. */
		sigset_t set;
		sigemptyset(&set);
		sigaddset(&set, SIGTERM);
		sigaddset(&set, SIGINT);
		sigprocmask(SIG_BLOCK, &set, NULL);
		uv_close((uv_handle_t *)&srv->sig_term, server_handle_closed);
		uv_close((uv_handle_t *)&srv->sig_int, server_handle_closed);
		uv_close((uv_handle_t *)&srv->sig_hup, server_handle_closed);
	}
	uv_run(srv->loop, UV_RUN_DEFAULT);
	/* Every session is gone, so no password check is pending. */
	if (srv->auth != NULL) {
		auth_free(&srv->auth);
		uv_run(srv->loop, UV_RUN_DEFAULT);
	}
	/* The outbound engine's own work (record updates, bounces into the
	 * store or the queue) finishes before the store closes. */
	outbound_free(&srv->outbound);
	/* Deliveries still queued finish here; their callbacks run. */
	store_close(&srv->store);
	queue_close(&srv->queue);
	smtp_backend_free(&srv->smtp_backend);
	pop3_backend_free(&srv->pop3_backend);
	imap_backend_free(&srv->imap_backend);
	db_close(&srv->db);
	free(srv->listeners);
	tls_ctx_unref(&srv->tls);
	free(srv->tls_cert_path);
	free(srv->tls_key_path);
	iplimit_free(&srv->iplimit);
	config_free(srv->cfg);
	free(srv->cfg);
	free(srv);
}
