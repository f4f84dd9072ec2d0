#ifndef POSTBOTE_CORE_CONFIG_H
#define POSTBOTE_CORE_CONFIG_H

/*
 * The configuration file: one "key = value" per line, '#' starts a comment,
 * keys that may repeat (listen, domain) add one entry each time. Every key,
 * its default and an example are in docs/configuration.md and
 * postbote.conf.example; keep the three in step.
 *
 * Durations take a unit (30s, 5m, 1h, 2d; a bare number is seconds), sizes
 * take one too (512, 64K, 10M, 1G; a bare number is bytes).
 *
 * Errors name the place: "FILE:LINE: message".
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/log.h"

/* What a listener speaks. The name is the one used in "listen = KIND ADDR". */
enum listener_kind {
	LISTENER_SMTP = 0,     /* port 25, receipt from other servers */
	LISTENER_SUBMISSION,   /* 587, STARTTLS then AUTH (RFC 6409) */
	LISTENER_SUBMISSIONS,  /* 465, implicit TLS (RFC 8314) */
	LISTENER_POP3,         /* 110, STLS */
	LISTENER_POP3S,        /* 995, implicit TLS */
	LISTENER_IMAP,         /* 143, STARTTLS */
	LISTENER_IMAPS,        /* 993, implicit TLS */
	LISTENER_KIND_COUNT
};

const char *listener_kind_name(enum listener_kind kind);
/* Returns 0 and the kind for a name, or -1. */
int listener_kind_parse(const char *name, enum listener_kind *kind_r);
/* True for the implicit-TLS kinds (submissions, pop3s, imaps). */
bool listener_kind_implicit_tls(enum listener_kind kind);
/* The standard port of a kind (25, 587, 465, 110, 995, 143, 993). */
int listener_kind_default_port(enum listener_kind kind);

enum trace_mode {
	TRACE_OFF = 0,
	TRACE_ON,     /* dialogue, with secrets masked and message bodies summarised */
	TRACE_FULL,   /* as TRACE_ON, but message bodies in full (secrets still masked) */
};

struct config_listen {
	enum listener_kind kind;
	char *host;      /* numeric address: "127.0.0.1", "::", "0.0.0.0" */
	int port;
};

struct route;

struct config {
	char *path;              /* the file read, or NULL for the development setup */
	bool dev_setup;          /* no file: loopback, ./postbote-data, ports + 2000 */

	char *hostname;          /* our name in banners and Received; default: gethostname() */
	char *data_dir;          /* default /var/lib/postbote, dev: ./postbote-data */
	char **domains;          /* local domains; dev: "localhost" */
	size_t n_domains;
	char *run_user;          /* drop privileges to this user after binding; NULL = stay */

	struct config_listen *listens;
	size_t n_listens;

	char *tls_cert;          /* PEM chain; NULL = self-signed in DATA/tls/ */
	char *tls_key;
	char *tls_ciphers;       /* OpenSSL cipher list for TLS 1.2 */
	char *tls_ciphersuites;  /* TLS 1.3 suites */
	bool allow_plaintext_auth_loopback; /* AUTH/LOGIN without TLS from 127/8 and ::1 */

	enum log_level log_level;
	bool log_syslog;
	char *log_facility;      /* syslog facility, default "mail" */
	enum trace_mode trace;

	/* Limits (contract 5 of DESIGN.md). */
	unsigned max_connections;        /* all listeners together */
	unsigned max_connections_per_ip; /* per remote address (IPv6: per /64) */
	size_t write_buffer_max;         /* queued output before we stop reading */
	uint64_t smtp_timeout_ms;        /* RFC 5321 4.5.3.2.7: at least 5 minutes */
	uint64_t pop3_timeout_ms;        /* RFC 1939: at least 10 minutes */
	uint64_t imap_timeout_ms;        /* RFC 3501 5.4: at least 30 minutes */
	uint64_t tls_handshake_timeout_ms;
	uint64_t shutdown_timeout_ms;    /* how long in-flight work may finish on stop */
	size_t smtp_line_max;            /* RFC 5321 4.5.3.1.6: at least 1000 with CRLF */
	size_t pop3_line_max;            /* RFC 2449: 255 octets */
	size_t imap_line_max;            /* RFC 7162 3.2.1 recommends at least 8192 */
	unsigned max_bad_commands;       /* errors before a session is closed */

	/* SMTP (src/smtp). */
	size_t message_size_max;         /* SIZE, and the DATA/BDAT limit: 552 5.3.4 */
	unsigned smtp_max_recipients;    /* per transaction: 452 4.5.3 past it */
	size_t smtp_data_line_max;       /* longest message line, line end included */
	bool submission_check_sender;    /* MAIL FROM must be the user's own address */
	/* POP3 (src/pop3). */
	/* IMAP (src/imap). */
	size_t imap_literal_max;         /* largest literal (APPEND): NO [TOOBIG] past it */
	unsigned imap_max_sessions_per_account; /* NO [LIMIT] at login past it */
	/* Outbound queue and delivery (src/mta, smtp/route.c). */
	char *queue_retry;               /* "1m 5m 15m 30m 1h": waits between attempts, the last repeats */
	uint64_t queue_lifetime_ms;      /* then the message bounces */
	uint64_t queue_delay_warning_ms; /* tell the sender after this long; 0 = never */
	unsigned outbound_max_connections;  /* all destinations together */
	unsigned outbound_max_per_domain;   /* connections to one destination */
	unsigned outbound_port;          /* port of MX hosts; 25 but for tests */
	char *outbound_tls;              /* none, opportunistic, require: towards MX hosts */
	bool outbound_tls_verify;        /* check MX hosts' certificates */
	bool outbound_ipv4_only;         /* never connect over IPv6 */
	char *dns_servers;               /* "IP[:PORT] ..."; NULL = /etc/resolv.conf */
	struct route *transports;        /* transport = DOMAIN HOST[:PORT] ... */
	size_t n_transports;
	struct route *smarthosts;        /* smarthost = HOST[:PORT] ... */
	size_t n_smarthosts;

	/* Store (src/maildir). */
	size_t quota_bytes;              /* per account, 0 = no limit */
	unsigned quota_messages;         /* per account, 0 = no limit */
	size_t index_map_size;           /* LMDB map size (address space, not disk) */
	size_t delivery_log_size;        /* preallocated group-commit log */

	/* Accounts (src/auth). */
	char *password_scheme;           /* yescrypt, bcrypt, sha512crypt */
	char *recipient_delimiter;       /* "+" in user+tag@; NULL = none */
	uint64_t auth_fail_delay_ms;     /* first delay after a failed login */
	uint64_t auth_fail_delay_max_ms; /* the delay doubles up to this */
	unsigned auth_lockout_failures;  /* failures before a temporary lockout */
	uint64_t auth_lockout_ms;        /* how long the lockout lasts */
	unsigned auth_max_hashing;       /* password hashes computed at once */
};

/* Fill *cfg with the defaults of a production config (no listeners). */
void config_defaults(struct config *cfg);

/* The development setup of DESIGN.md: loopback listeners on the standard
 * ports + 2000, data in ./postbote-data, domain localhost. */
void config_dev_setup(struct config *cfg);

/* Read and check a config file into *cfg (which is first set to the
 * defaults). Returns 0, or -1 with *error_r set to "FILE:LINE: message"
 * (caller frees). On failure *cfg holds nothing to free. */
int config_load(const char *path, struct config *cfg, char **error_r);

/* As config_load, but from a string (used by tests and the fuzz target);
 * name is used in error messages. */
int config_parse(const char *name, const char *text, size_t len, struct config *cfg, char **error_r);

/* The keys the parser knows, for the test that keeps the documentation
 * and the example in step: name of key i, NULL past the last. */
const char *config_key_name(size_t i);

/* Free everything *cfg owns; it may be loaded again afterwards. */
void config_free(struct config *cfg);

/* Parse a duration ("300", "30s", "5m", "2h", "1d") into milliseconds, or a
 * size ("512", "64K", "10M", "1G") into bytes. Return 0, or -1. */
int config_parse_duration(const char *text, uint64_t *ms_r);
int config_parse_size(const char *text, uint64_t *bytes_r);

#endif
