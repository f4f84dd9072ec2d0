/*
 * The configuration file parser.
 *
 * The file is small, written by an administrator, and read once at start
 * (and on check-config), so the parser favours clear errors over speed: it
 * stops at the first problem and says where it is and what was expected,
 * "FILE:LINE: message". It never reads past the bytes it was given (the
 * text need not be NUL-terminated), never keeps a half-parsed config (on
 * failure the struct is zeroed), and bounds its input (1 MiB, 1024 listen
 * lines) so that a wrong path such as a mailbox file fails fast.
 *
 * Format, line by line:
 *   - blank lines and lines whose first non-blank is '#' are ignored;
 *   - "key = value", blanks around '=' optional; keys are lower case;
 *   - '#' starts a comment where it begins a line or follows a blank, so
 *     "tls_ciphers = HIGH:!aNULL#x" keeps its '#';
 *   - a value in double quotes keeps leading/trailing blanks and '#';
 *     inside quotes \" is a quote and \\ a backslash;
 *   - control characters (NUL, bare CR, ...) are refused anywhere; a CR
 *     directly before LF is a line end; a UTF-8 BOM at the start is skipped.
 * Keys that are not repeatable may appear once: a second one is an error
 * that names the first line, since silently taking either is a trap.
 */

#include "core/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/xalloc.h"
#include "smtp/route.h"

#define CONFIG_FILE_MAX     (1024 * 1024) /* bytes: refuse bigger files */
#define CONFIG_LISTENS_MAX  1024
#define CONFIG_QUOTE_MAX    80            /* bytes of user text quoted in errors */

/* ------------------------------------------------------------------ */
/* Listener kinds                                                      */

static const struct {
	const char *name;
	int port;
	bool implicit_tls;
} listener_kinds[LISTENER_KIND_COUNT] = {
	[LISTENER_SMTP]        = { "smtp",        25,  false },
	[LISTENER_SUBMISSION]  = { "submission",  587, false },
	[LISTENER_SUBMISSIONS] = { "submissions", 465, true },
	[LISTENER_POP3]        = { "pop3",        110, false },
	[LISTENER_POP3S]       = { "pop3s",       995, true },
	[LISTENER_IMAP]        = { "imap",        143, false },
	[LISTENER_IMAPS]       = { "imaps",       993, true },
};

const char *listener_kind_name(enum listener_kind kind)
{
	return (unsigned)kind < LISTENER_KIND_COUNT ? listener_kinds[kind].name : "?";
}

int listener_kind_parse(const char *name, enum listener_kind *kind_r)
{
	for (int i = 0; i < LISTENER_KIND_COUNT; i++) {
		if (strcmp(name, listener_kinds[i].name) == 0) {
			*kind_r = (enum listener_kind)i;
			return 0;
		}
	}
	return -1;
}

bool listener_kind_implicit_tls(enum listener_kind kind)
{
	return (unsigned)kind < LISTENER_KIND_COUNT && listener_kinds[kind].implicit_tls;
}

int listener_kind_default_port(enum listener_kind kind)
{
	return (unsigned)kind < LISTENER_KIND_COUNT ? listener_kinds[kind].port : 0;
}

/* ------------------------------------------------------------------ */
/* Durations and sizes                                                 */

/* Leading decimal digits of text into *n_r; returns the first byte after
 * them, or NULL when there are none or the number overflows. */
static const char *parse_u64(const char *text, uint64_t *n_r)
{
	uint64_t n = 0;
	const char *p = text;

	if (*p < '0' || *p > '9')
		return NULL;
	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');
		if (n > (UINT64_MAX - d) / 10)
			return NULL;
		n = n * 10 + d;
	}
	*n_r = n;
	return p;
}

int config_parse_duration(const char *text, uint64_t *ms_r)
{
	uint64_t n, secs;
	const char *p = parse_u64(text, &n);

	if (p == NULL)
		return -1;
	switch (*p) {
	case '\0':
	case 's': secs = 1; break;
	case 'm': secs = 60; break;
	case 'h': secs = 3600; break;
	case 'd': secs = 86400; break;
	default: return -1;
	}
	if (*p != '\0' && p[1] != '\0')
		return -1;
	if (n > UINT64_MAX / (secs * 1000))
		return -1;
	*ms_r = n * secs * 1000;
	return 0;
}

int config_parse_size(const char *text, uint64_t *bytes_r)
{
	uint64_t n, mult;
	const char *p = parse_u64(text, &n);

	if (p == NULL)
		return -1;
	switch (*p) {
	case '\0': mult = 1; break;
	case 'k': case 'K': mult = 1024; break;
	case 'm': case 'M': mult = 1024 * 1024; break;
	case 'g': case 'G': mult = 1024 * 1024 * 1024; break;
	default: return -1;
	}
	if (*p != '\0' && p[1] != '\0')
		return -1;
	if (n > UINT64_MAX / mult)
		return -1;
	*bytes_r = n * mult;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Defaults                                                            */

void config_defaults(struct config *cfg)
{
	char host[256];

	memset(cfg, 0, sizeof(*cfg));
	if (gethostname(host, sizeof(host)) < 0 || host[0] == '\0')
		strcpy(host, "localhost");
	host[sizeof(host) - 1] = '\0';
	cfg->hostname = xstrdup(host);
	cfg->data_dir = xstrdup("/var/lib/postbote");
	cfg->log_level = LOG_LEVEL_INFO;
	cfg->log_facility = xstrdup("mail");
	cfg->trace = TRACE_OFF;
	cfg->max_connections = 1000;
	cfg->max_connections_per_ip = 20;
	cfg->write_buffer_max = 1024 * 1024;
	cfg->smtp_timeout_ms = 5 * 60 * 1000;   /* RFC 5321 4.5.3.2.7 */
	cfg->pop3_timeout_ms = 10 * 60 * 1000;  /* RFC 1939 3 */
	cfg->imap_timeout_ms = 30 * 60 * 1000;  /* RFC 3501 5.4 */
	cfg->tls_handshake_timeout_ms = 30 * 1000;
	cfg->shutdown_timeout_ms = 10 * 1000;
	cfg->smtp_line_max = 1000;              /* RFC 5321 4.5.3.1.6 */
	cfg->pop3_line_max = 1024;              /* RFC 2449 4 asks for 255 */
	cfg->imap_line_max = 65536;
	cfg->max_bad_commands = 10;
	cfg->imap_literal_max = 50 << 20;
	cfg->imap_max_sessions_per_account = 20;
	cfg->message_size_max = 50 << 20;
	cfg->smtp_max_recipients = 100;
	cfg->smtp_data_line_max = 64 << 10;
	cfg->submission_check_sender = true;
	cfg->queue_retry = xstrdup("1m 5m 15m 30m 1h");
	cfg->queue_lifetime_ms = 5ULL * 24 * 3600 * 1000;
	cfg->queue_delay_warning_ms = 0;
	cfg->outbound_max_connections = 20;
	cfg->outbound_max_per_domain = 4;
	cfg->outbound_port = 25;
	cfg->outbound_tls = xstrdup("opportunistic");
	cfg->outbound_tls_verify = false;
	cfg->outbound_ipv4_only = false;
	cfg->quota_bytes = 0;
	cfg->quota_messages = 0;
	cfg->index_map_size = (size_t)4 << 30;
	cfg->delivery_log_size = 64 << 20;
	cfg->password_scheme = xstrdup("yescrypt");
	cfg->recipient_delimiter = xstrdup("+");
	cfg->auth_fail_delay_ms = 1000;
	cfg->auth_fail_delay_max_ms = 16 * 1000;
	cfg->auth_lockout_failures = 10;
	cfg->auth_lockout_ms = 15 * 60 * 1000;
	cfg->auth_max_hashing = 2;
}

void config_dev_setup(struct config *cfg)
{
	config_defaults(cfg);
	cfg->dev_setup = true;
	free(cfg->hostname);
	cfg->hostname = xstrdup("localhost");
	free(cfg->data_dir);
	cfg->data_dir = xstrdup("./postbote-data");
	cfg->domains = xmalloc(sizeof(*cfg->domains));
	cfg->domains[0] = xstrdup("localhost");
	cfg->n_domains = 1;
	cfg->allow_plaintext_auth_loopback = true;
	/* IPv4 loopback only: it exists everywhere, ::1 does not. */
	cfg->listens = xcalloc(LISTENER_KIND_COUNT, sizeof(*cfg->listens));
	for (int i = 0; i < LISTENER_KIND_COUNT; i++) {
		cfg->listens[i].kind = (enum listener_kind)i;
		cfg->listens[i].host = xstrdup("127.0.0.1");
		cfg->listens[i].port = listener_kinds[i].port + 2000;
	}
	cfg->n_listens = LISTENER_KIND_COUNT;
}

void config_free(struct config *cfg)
{
	free(cfg->path);
	free(cfg->hostname);
	free(cfg->data_dir);
	for (size_t i = 0; i < cfg->n_domains; i++)
		free(cfg->domains[i]);
	free(cfg->domains);
	free(cfg->run_user);
	for (size_t i = 0; i < cfg->n_listens; i++)
		free(cfg->listens[i].host);
	free(cfg->listens);
	free(cfg->tls_cert);
	free(cfg->tls_key);
	free(cfg->tls_ciphers);
	free(cfg->tls_ciphersuites);
	free(cfg->log_facility);
	free(cfg->password_scheme);
	free(cfg->recipient_delimiter);
	free(cfg->queue_retry);
	free(cfg->outbound_tls);
	free(cfg->dns_servers);
	for (size_t i = 0; i < cfg->n_transports; i++)
		route_free(&cfg->transports[i]);
	free(cfg->transports);
	for (size_t i = 0; i < cfg->n_smarthosts; i++)
		route_free(&cfg->smarthosts[i]);
	free(cfg->smarthosts);
	memset(cfg, 0, sizeof(*cfg));
}

/* ------------------------------------------------------------------ */
/* The parser                                                          */

enum key_type {
	KEY_STRING,     /* char *, any text */
	KEY_HOSTNAME,   /* char *, a domain name */
	KEY_DOMAIN,     /* one local domain (repeatable) */
	KEY_DOMAINS,    /* several local domains, blank-separated (repeatable) */
	KEY_LISTEN,     /* KIND ADDRESS:PORT (repeatable) */
	KEY_BOOL,       /* bool */
	KEY_LOG_LEVEL,
	KEY_LOG_TARGET,
	KEY_LOG_FACILITY,
	KEY_TRACE,
	KEY_COUNT,      /* unsigned, >= min */
	KEY_SIZE,       /* size_t, >= min */
	KEY_DURATION,   /* uint64_t milliseconds, >= min */
	KEY_TRANSPORT,  /* DOMAIN HOST[:PORT] OPTIONS (repeatable), smtp/route.h */
	KEY_SMARTHOST,  /* HOST[:PORT] OPTIONS (repeatable), smtp/route.h */
};

#define KEY_REPEAT    0x1  /* may appear more than once */
#define KEY_EMPTY_OK  0x2  /* an empty value resets to the default (NULL) */

struct key_def {
	const char *name;
	enum key_type type;
	unsigned flags;
	size_t offset;      /* into struct config */
	uint64_t min;       /* KEY_COUNT, KEY_SIZE, KEY_DURATION (ms) */
	const char *why;    /* where min comes from, for the error */
};

#define OFF(field) offsetof(struct config, field)

static const struct key_def key_defs[] = {
	{ "hostname", KEY_HOSTNAME, 0, OFF(hostname), 0, NULL },
	{ "data_dir", KEY_STRING, 0, OFF(data_dir), 0, NULL },
	{ "domain", KEY_DOMAIN, KEY_REPEAT, 0, 0, NULL },
	{ "domains", KEY_DOMAINS, KEY_REPEAT, 0, 0, NULL },
	{ "run_user", KEY_STRING, KEY_EMPTY_OK, OFF(run_user), 0, NULL },
	{ "listen", KEY_LISTEN, KEY_REPEAT, 0, 0, NULL },
	{ "tls_cert", KEY_STRING, 0, OFF(tls_cert), 0, NULL },
	{ "tls_key", KEY_STRING, 0, OFF(tls_key), 0, NULL },
	{ "tls_ciphers", KEY_STRING, KEY_EMPTY_OK, OFF(tls_ciphers), 0, NULL },
	{ "tls_ciphersuites", KEY_STRING, KEY_EMPTY_OK, OFF(tls_ciphersuites), 0, NULL },
	{ "allow_plaintext_auth_loopback", KEY_BOOL, 0, OFF(allow_plaintext_auth_loopback), 0, NULL },
	{ "log_level", KEY_LOG_LEVEL, 0, OFF(log_level), 0, NULL },
	{ "log_target", KEY_LOG_TARGET, 0, OFF(log_syslog), 0, NULL },
	{ "log_facility", KEY_LOG_FACILITY, 0, OFF(log_facility), 0, NULL },
	{ "trace", KEY_TRACE, 0, OFF(trace), 0, NULL },
	{ "max_connections", KEY_COUNT, 0, OFF(max_connections), 1, NULL },
	{ "max_connections_per_ip", KEY_COUNT, 0, OFF(max_connections_per_ip), 1, NULL },
	{ "write_buffer_max", KEY_SIZE, 0, OFF(write_buffer_max), 4096,
	  "room for at least one reply" },
	{ "smtp_timeout", KEY_DURATION, 0, OFF(smtp_timeout_ms), 1000, NULL },
	{ "pop3_timeout", KEY_DURATION, 0, OFF(pop3_timeout_ms), 1000, NULL },
	{ "imap_timeout", KEY_DURATION, 0, OFF(imap_timeout_ms), 1000, NULL },
	{ "tls_handshake_timeout", KEY_DURATION, 0, OFF(tls_handshake_timeout_ms), 1000, NULL },
	{ "shutdown_timeout", KEY_DURATION, 0, OFF(shutdown_timeout_ms), 0, NULL },
	/* RFC 5321 4.5.3.1.6: a text line is at most 1000 octets with CRLF,
	 * and a server must accept that much. */
	{ "smtp_line_max", KEY_SIZE, 0, OFF(smtp_line_max), 1000, "RFC 5321 4.5.3.1.6" },
	/* RFC 2449 4: commands up to 255 octets including CRLF. */
	{ "pop3_line_max", KEY_SIZE, 0, OFF(pop3_line_max), 255, "RFC 2449 4" },
	/* RFC 7162 3.2.1 recommends 8192; below 1024 real clients break. */
	{ "imap_line_max", KEY_SIZE, 0, OFF(imap_line_max), 1024, "what real IMAP clients send" },
	{ "max_bad_commands", KEY_COUNT, 0, OFF(max_bad_commands), 1, NULL },
	/* An APPEND carries a whole message in one literal. */
	{ "imap_literal_max", KEY_SIZE, 0, OFF(imap_literal_max), 64 << 10, "room for an ordinary message" },
	/* Apple clients open about seven sessions per account at once. */
	{ "imap_max_sessions_per_account", KEY_COUNT, 0, OFF(imap_max_sessions_per_account), 10,
	  "what Apple clients open at once" },
	{ "message_size_max", KEY_SIZE, 0, OFF(message_size_max), 64 << 10, "room for an ordinary message" },
	{ "smtp_max_recipients", KEY_COUNT, 0, OFF(smtp_max_recipients), 1, NULL },
	/* RFC 5321 4.5.3.1.6: 1000 octets with CRLF; real mail has longer. */
	{ "smtp_data_line_max", KEY_SIZE, 0, OFF(smtp_data_line_max), 1000, "RFC 5321 4.5.3.1.6" },
	{ "submission_check_sender", KEY_BOOL, 0, OFF(submission_check_sender), 0, NULL },
	{ "queue_retry", KEY_STRING, 0, OFF(queue_retry), 0, NULL },
	{ "queue_lifetime", KEY_DURATION, 0, OFF(queue_lifetime_ms), 1000, NULL },
	{ "queue_delay_warning", KEY_DURATION, 0, OFF(queue_delay_warning_ms), 0, NULL },
	{ "outbound_max_connections", KEY_COUNT, 0, OFF(outbound_max_connections), 1, NULL },
	{ "outbound_max_per_domain", KEY_COUNT, 0, OFF(outbound_max_per_domain), 1, NULL },
	{ "outbound_port", KEY_COUNT, 0, OFF(outbound_port), 1, NULL },
	{ "outbound_tls", KEY_STRING, 0, OFF(outbound_tls), 0, NULL },
	{ "outbound_tls_verify", KEY_BOOL, 0, OFF(outbound_tls_verify), 0, NULL },
	{ "outbound_ipv4_only", KEY_BOOL, 0, OFF(outbound_ipv4_only), 0, NULL },
	{ "dns_servers", KEY_STRING, KEY_EMPTY_OK, OFF(dns_servers), 0, NULL },
	{ "transport", KEY_TRANSPORT, KEY_REPEAT, 0, 0, NULL },
	{ "smarthost", KEY_SMARTHOST, KEY_REPEAT, 0, 0, NULL },
	{ "quota_bytes", KEY_SIZE, 0, OFF(quota_bytes), 0, NULL },
	{ "quota_messages", KEY_COUNT, 0, OFF(quota_messages), 0, NULL },
	{ "index_map_size", KEY_SIZE, 0, OFF(index_map_size), 16 << 20, "room for a small index" },
	/* Must hold the largest message that goes through the log; bigger
	 * ones are written straight to the Maildir with their own fsync. */
	{ "delivery_log_size", KEY_SIZE, 0, OFF(delivery_log_size), 1 << 20, "one batch of messages" },
	{ "password_scheme", KEY_STRING, 0, OFF(password_scheme), 0, NULL },
	{ "recipient_delimiter", KEY_STRING, KEY_EMPTY_OK, OFF(recipient_delimiter), 0, NULL },
	{ "auth_fail_delay", KEY_DURATION, 0, OFF(auth_fail_delay_ms), 0, NULL },
	{ "auth_fail_delay_max", KEY_DURATION, 0, OFF(auth_fail_delay_max_ms), 0, NULL },
	{ "auth_lockout_failures", KEY_COUNT, 0, OFF(auth_lockout_failures), 1, NULL },
	{ "auth_lockout_time", KEY_DURATION, 0, OFF(auth_lockout_ms), 0, NULL },
	{ "auth_max_hashing", KEY_COUNT, 0, OFF(auth_max_hashing), 1, NULL },
};

#define KEY_COUNT_ALL (sizeof(key_defs) / sizeof(key_defs[0]))

const char *config_key_name(size_t i)
{
	return i < KEY_COUNT_ALL ? key_defs[i].name : NULL;
}

struct listen_addr {
	int family;
	unsigned char addr[16];
	int port;
	unsigned line;
};

struct domain_line {
	const char *name;
	unsigned line;
};

struct parser {
	const char *name;           /* file name for errors */
	struct config *cfg;
	unsigned line;              /* current line, 1-based */
	unsigned seen[KEY_COUNT_ALL]; /* line where each key was last set, 0 = never */
	char *error;                /* the first error, "FILE:LINE: message" */

	unsigned *domain_lines;     /* parallel to cfg->domains */
	size_t domains_cap;
	struct listen_addr *addrs;  /* parallel to cfg->listens */
	size_t listens_cap;
};

static int fail_at(struct parser *p, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail_at(struct parser *p, unsigned line, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	if (p->error != NULL)
		return -1;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	if (line > 0)
		p->error = xasprintf("%s:%u: %s", p->name, line, msg ? msg : "error");
	else
		p->error = xasprintf("%s: %s", p->name, msg ? msg : "error");
	free(msg);
	return -1;
}

/* Put user text into an error, cut to CONFIG_QUOTE_MAX bytes. The text has
 * no control characters (lines with them are refused first). */
#define QFMT "\"%.*s%s\""
#define QARG(s) (int)(strlen(s) > CONFIG_QUOTE_MAX ? CONFIG_QUOTE_MAX : strlen(s)), (s), \
	(strlen(s) > CONFIG_QUOTE_MAX ? "..." : "")

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* A domain name as DNS allows it for hosts: labels of letters, digits and
 * '-' (not at either end), 1-63 octets each, 253 in all. */
static bool valid_domain(const char *s)
{
	size_t len = strlen(s), label = 0;

	if (len == 0 || len > 253)
		return false;
	for (size_t i = 0; i <= len; i++) {
		char c = s[i];
		if (c == '.' || c == '\0') {
			if (label == 0 || label > 63 || s[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-'))
			return false;
		if (c == '-' && label == 0)
			return false;
		label++;
	}
	return true;
}

static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	size_t row[64];

	if (la >= 63 || lb >= 63)
		return SIZE_MAX;
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t best = diag + (a[i - 1] != b[j - 1]);
			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

static int unknown_key(struct parser *p, const char *key)
{
	const char *best = NULL;
	size_t best_d = 3; /* suggest only close misspellings */

	for (size_t i = 0; i < KEY_COUNT_ALL; i++) {
		size_t d = edit_distance(key, key_defs[i].name);
		if (d < best_d) {
			best_d = d;
			best = key_defs[i].name;
		}
	}
	if (best != NULL)
		return fail_at(p, p->line, "unknown key " QFMT " (did you mean \"%s\"?)",
			       QARG(key), best);
	return fail_at(p, p->line, "unknown key " QFMT, QARG(key));
}

static int add_domain(struct parser *p, const char *name)
{
	struct config *cfg = p->cfg;

	if (!valid_domain(name))
		return fail_at(p, p->line, "domain: " QFMT " is not a domain name "
			       "(letters, digits, '-' and '.', e.g. example.org)", QARG(name));
	if (cfg->n_domains == p->domains_cap) {
		p->domains_cap = p->domains_cap ? p->domains_cap * 2 : 8;
		cfg->domains = xrealloc(cfg->domains, p->domains_cap * sizeof(*cfg->domains));
		p->domain_lines = xrealloc(p->domain_lines, p->domains_cap * sizeof(*p->domain_lines));
	}
	char *d = xstrdup(name);
	for (char *c = d; *c; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c - 'A' + 'a');
	cfg->domains[cfg->n_domains] = d;
	p->domain_lines[cfg->n_domains] = p->line;
	cfg->n_domains++;
	return 0;
}

static int cmp_domain_line(const void *a, const void *b)
{
	const struct domain_line *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c != 0)
		return c;
	return x->line < y->line ? -1 : x->line > y->line;
}

/* Duplicates are found once at the end, by sorting, so that a file with
 * thousands of domains is not quadratic. The error is reported at the
 * earliest line that repeats a domain. */
static int check_domains(struct parser *p)
{
	struct config *cfg = p->cfg;
	size_t n = cfg->n_domains;
	struct domain_line *v;
	unsigned bad_line = 0, first_line = 0;
	const char *bad = NULL;

	if (n < 2)
		return 0;
	v = xmalloc(n * sizeof(*v));
	for (size_t i = 0; i < n; i++) {
		v[i].name = cfg->domains[i];
		v[i].line = p->domain_lines[i];
	}
	qsort(v, n, sizeof(*v), cmp_domain_line);
	for (size_t i = 1; i < n; i++) {
		if (strcmp(v[i].name, v[i - 1].name) != 0)
			continue;
		if (bad == NULL || v[i].line < bad_line) {
			size_t j = i - 1;
			while (j > 0 && strcmp(v[j - 1].name, v[i].name) == 0)
				j--;
			bad = v[i].name;
			bad_line = v[i].line;
			first_line = v[j].line;
		}
	}
	int rc = 0;
	if (bad != NULL) {
		if (bad_line == first_line)
			rc = fail_at(p, bad_line, "domain " QFMT " is listed twice on this line",
				     QARG(bad));
		else
			rc = fail_at(p, bad_line, "domain " QFMT " is already listed at line %u",
				     QARG(bad), first_line);
	}
	free(v);
	return rc;
}

/* Split s in place at blanks; returns the number of words (at most max). */
static size_t split_words(char *s, char **words, size_t max)
{
	size_t n = 0;

	for (;;) {
		while (is_blank(*s))
			s++;
		if (*s == '\0')
			return n;
		if (n == max)
			return max + 1;
		words[n++] = s;
		while (*s != '\0' && !is_blank(*s))
			s++;
		if (*s != '\0')
			*s++ = '\0';
	}
}

static int parse_domains(struct parser *p, char *value)
{
	char *s = value;
	size_t words = 0;

	for (;;) {
		while (is_blank(*s))
			s++;
		if (*s == '\0')
			break;
		char *w = s;
		while (*s != '\0' && !is_blank(*s))
			s++;
		if (*s != '\0')
			*s++ = '\0';
		if (add_domain(p, w) < 0)
			return -1;
		words++;
	}
	if (words == 0)
		return fail_at(p, p->line, "domains: no domain given; expected e.g. "
			       "\"domains = example.org example.net\"");
	return 0;
}

/* "KIND ADDRESS:PORT": ADDRESS is numeric IPv4 or bracketed IPv6. */
static int parse_listen(struct parser *p, const char *value)
{
	struct config *cfg = p->cfg;
	char *copy = xstrdup(value);
	char *words[2];
	enum listener_kind kind;
	struct listen_addr la;
	char *host, *port_s, canon[INET6_ADDRSTRLEN];
	int rc = -1;

	memset(&la, 0, sizeof(la));
	if (split_words(copy, words, 2) != 2) {
		fail_at(p, p->line, "listen: " QFMT ": expected KIND ADDRESS:PORT, "
			"e.g. \"smtp 0.0.0.0:25\" or \"imaps [::]:993\"", QARG(value));
		goto out;
	}
	if (listener_kind_parse(words[0], &kind) < 0) {
		fail_at(p, p->line, "listen: " QFMT ": unknown kind " QFMT "; expected smtp, "
			"submission, submissions, pop3, pop3s, imap or imaps",
			QARG(value), QARG(words[0]));
		goto out;
	}
	host = words[1];
	if (host[0] == '[') {
		char *end = strchr(host, ']');
		if (end == NULL) {
			fail_at(p, p->line, "listen: " QFMT ": missing \"]\" after the IPv6 address",
				QARG(value));
			goto out;
		}
		*end = '\0';
		host++;
		if (end[1] != ':') {
			fail_at(p, p->line, "listen: " QFMT ": expected \":PORT\" after \"]\"",
				QARG(value));
			goto out;
		}
		port_s = end + 2;
		la.family = AF_INET6;
	} else {
		char *colon = strrchr(host, ':');
		if (colon == NULL) {
			fail_at(p, p->line, "listen: " QFMT ": missing \":PORT\" after the address",
				QARG(value));
			goto out;
		}
		*colon = '\0';
		port_s = colon + 1;
		if (strchr(host, ':') != NULL) {
			fail_at(p, p->line, "listen: " QFMT ": an IPv6 address goes in brackets, "
				"e.g. \"[::1]:%d\"", QARG(value), listener_kinds[kind].port);
			goto out;
		}
		la.family = AF_INET;
	}
	if (inet_pton(la.family, host, la.addr) != 1) {
		fail_at(p, p->line, "listen: " QFMT ": " QFMT " is not a numeric %s address%s",
			QARG(value), QARG(host), la.family == AF_INET ? "IPv4" : "IPv6",
			la.family == AF_INET ? " (such as 0.0.0.0 or 127.0.0.1; "
			"IPv6 in brackets, such as [::])" : " (such as [::] or [::1])");
		goto out;
	}
	uint64_t port;
	const char *end = parse_u64(port_s, &port);
	if (end == NULL || *end != '\0' || port < 1 || port > 65535) {
		fail_at(p, p->line, "listen: " QFMT ": port must be 1-65535", QARG(value));
		goto out;
	}
	la.port = (int)port;
	la.line = p->line;

	for (size_t i = 0; i < cfg->n_listens; i++) {
		const struct listen_addr *o = &p->addrs[i];
		if (o->family == la.family && o->port == la.port &&
		    memcmp(o->addr, la.addr, sizeof(la.addr)) == 0) {
			fail_at(p, p->line, "listen: " QFMT ": this address and port are "
				"already used at line %u", QARG(value), o->line);
			goto out;
		}
	}
	if (cfg->n_listens >= CONFIG_LISTENS_MAX) {
		fail_at(p, p->line, "listen: too many listeners (at most %d)", CONFIG_LISTENS_MAX);
		goto out;
	}
	if (cfg->n_listens == p->listens_cap) {
		p->listens_cap = p->listens_cap ? p->listens_cap * 2 : 8;
		cfg->listens = xrealloc(cfg->listens, p->listens_cap * sizeof(*cfg->listens));
		p->addrs = xrealloc(p->addrs, p->listens_cap * sizeof(*p->addrs));
	}
	inet_ntop(la.family, la.addr, canon, sizeof(canon));
	cfg->listens[cfg->n_listens].kind = kind;
	cfg->listens[cfg->n_listens].host = xstrdup(canon);
	cfg->listens[cfg->n_listens].port = la.port;
	p->addrs[cfg->n_listens] = la;
	cfg->n_listens++;
	rc = 0;
out:
	free(copy);
	return rc;
}

/* transport = ... and smarthost = ..., parsed by smtp/route.c. */
static int parse_route_line(struct parser *p, const struct key_def *k, const char *value)
{
	struct config *cfg = p->cfg;
	bool smarthost = k->type == KEY_SMARTHOST;
	struct route r;
	char *error = NULL;

	if (route_parse(value, smarthost, &r, &error) < 0) {
		int rc = fail_at(p, p->line, "%s: " QFMT ": %s", k->name, QARG(value), error);
		free(error);
		return rc;
	}
	r.line = p->line;
	struct route **list = smarthost ? &cfg->smarthosts : &cfg->transports;
	size_t *n = smarthost ? &cfg->n_smarthosts : &cfg->n_transports;
	*list = xrealloc(*list, (*n + 1) * sizeof(**list));
	(*list)[(*n)++] = r;
	return 0;
}

static int parse_bool(const char *s, bool *b_r)
{
	if (strcmp(s, "yes") == 0 || strcmp(s, "true") == 0 || strcmp(s, "on") == 0) {
		*b_r = true;
		return 0;
	}
	if (strcmp(s, "no") == 0 || strcmp(s, "false") == 0 || strcmp(s, "off") == 0) {
		*b_r = false;
		return 0;
	}
	return -1;
}

static int set_value(struct parser *p, const struct key_def *k, char *value)
{
	char *base = (char *)p->cfg;
	uint64_t n;

	switch (k->type) {
	case KEY_STRING:
	case KEY_HOSTNAME: {
		char **field = (char **)(void *)(base + k->offset);
		if (k->type == KEY_HOSTNAME && !valid_domain(value))
			return fail_at(p, p->line, "%s: " QFMT " is not a host name "
				       "(letters, digits, '-' and '.', e.g. mail.example.org)",
				       k->name, QARG(value));
		free(*field);
		*field = value[0] != '\0' ? xstrdup(value) : NULL;
		return 0;
	}
	case KEY_DOMAIN:
		return add_domain(p, value);
	case KEY_DOMAINS:
		return parse_domains(p, value);
	case KEY_LISTEN:
		return parse_listen(p, value);
	case KEY_BOOL:
		if (parse_bool(value, (bool *)(void *)(base + k->offset)) < 0)
			return fail_at(p, p->line, "%s: " QFMT " is not a yes/no value; "
				       "expected yes, no, true, false, on or off", k->name, QARG(value));
		return 0;
	case KEY_LOG_LEVEL:
		if (log_level_parse(value, &p->cfg->log_level) < 0)
			return fail_at(p, p->line, "log_level: " QFMT " is not a level; "
				       "expected error, warn, info or debug", QARG(value));
		return 0;
	case KEY_LOG_TARGET:
		if (strcmp(value, "stderr") == 0)
			p->cfg->log_syslog = false;
		else if (strcmp(value, "syslog") == 0)
			p->cfg->log_syslog = true;
		else
			return fail_at(p, p->line, "log_target: " QFMT " is not a target; "
				       "expected stderr or syslog", QARG(value));
		return 0;
	case KEY_LOG_FACILITY: {
		int fac;
		if (log_facility_parse(value, &fac) < 0)
			return fail_at(p, p->line, "log_facility: " QFMT " is not a syslog facility; "
				       "expected mail, daemon, user or local0-local7", QARG(value));
		free(p->cfg->log_facility);
		p->cfg->log_facility = xstrdup(value);
		return 0;
	}
	case KEY_TRACE:
		if (strcmp(value, "off") == 0)
			p->cfg->trace = TRACE_OFF;
		else if (strcmp(value, "on") == 0)
			p->cfg->trace = TRACE_ON;
		else if (strcmp(value, "full") == 0)
			p->cfg->trace = TRACE_FULL;
		else
			return fail_at(p, p->line, "trace: " QFMT " is not a trace mode; "
				       "expected off, on or full", QARG(value));
		return 0;
	case KEY_COUNT: {
		const char *end = parse_u64(value, &n);
		if (end == NULL || *end != '\0' || n > UINT_MAX)
			return fail_at(p, p->line, "%s: " QFMT " is not a number; expected "
				       "a whole number from %llu to %u", k->name, QARG(value),
				       (unsigned long long)k->min, UINT_MAX);
		if (n < k->min)
			return fail_at(p, p->line, "%s: must be at least %llu", k->name,
				       (unsigned long long)k->min);
		*(unsigned *)(void *)(base + k->offset) = (unsigned)n;
		return 0;
	}
	case KEY_SIZE:
		if (config_parse_size(value, &n) < 0 || n > SIZE_MAX)
			return fail_at(p, p->line, "%s: " QFMT " is not a size; expected a number "
				       "with an optional unit K, M or G (1024-based), e.g. 64K",
				       k->name, QARG(value));
		if (n < k->min)
			return fail_at(p, p->line, "%s: " QFMT " is below %llu, the minimum (%s)",
				       k->name, QARG(value), (unsigned long long)k->min, k->why);
		*(size_t *)(void *)(base + k->offset) = (size_t)n;
		return 0;
	case KEY_DURATION:
		if (config_parse_duration(value, &n) < 0)
			return fail_at(p, p->line, "%s: " QFMT " is not a duration; expected a number "
				       "with an optional unit s, m, h or d (bare = seconds), e.g. 5m",
				       k->name, QARG(value));
		if (n < k->min)
			return fail_at(p, p->line, "%s: must be at least 1s", k->name);
		*(uint64_t *)(void *)(base + k->offset) = n;
		return 0;
	case KEY_TRANSPORT:
	case KEY_SMARTHOST:
		return parse_route_line(p, k, value);
	}
	return fail_at(p, p->line, "%s: internal error", k->name);
}

/* Read the value that starts at s (blanks after '=' already skipped) and
 * ends before end. Returns a fresh string, or NULL after an error. */
static char *read_value(struct parser *p, const char *s, const char *end)
{
	if (s < end && *s == '"') {
		char *out = xmalloc((size_t)(end - s));
		size_t n = 0;
		const char *q = s + 1;
		for (;;) {
			if (q == end) {
				free(out);
				fail_at(p, p->line, "missing closing '\"' in the value");
				return NULL;
			}
			if (*q == '"')
				break;
			if (*q == '\\' && q + 1 < end && (q[1] == '"' || q[1] == '\\'))
				q++;
			out[n++] = *q++;
		}
		out[n] = '\0';
		q++;
		while (q < end && is_blank(*q))
			q++;
		if (q < end && *q != '#') {
			free(out);
			fail_at(p, p->line, "text after the closing '\"' of the value; "
				"put a comment after a blank and '#'");
			return NULL;
		}
		return out;
	}
	/* Unquoted: up to a '#' that follows a blank, then trim blanks. */
	const char *v = s, *e = s;
	for (const char *q = s; q < end; q++) {
		/* q[-1] is readable: the key and '=' come before s. */
		if (*q == '#' && is_blank(q[-1]))
			break;
		e = q + 1;
	}
	while (e > v && is_blank(e[-1]))
		e--;
	return xstrndup(v, (size_t)(e - v));
}

/* One line without its line end. */
static int parse_line(struct parser *p, const char *s, const char *end)
{
	for (const char *q = s; q < end; q++) {
		unsigned char c = (unsigned char)*q;
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return fail_at(p, p->line, "control character 0x%02x in the line; "
				       "the file must be plain text", c);
	}
	while (s < end && is_blank(*s))
		s++;
	if (s == end || *s == '#')
		return 0;

	const char *k = s;
	while (s < end && !is_blank(*s) && *s != '=')
		s++;
	char *key = xstrndup(k, (size_t)(s - k));
	while (s < end && is_blank(*s))
		s++;
	if (key[0] == '\0') {
		free(key);
		return fail_at(p, p->line, "missing key before \"=\"; expected \"key = value\"");
	}
	if (s == end || *s != '=') {
		fail_at(p, p->line, "missing \"=\" after " QFMT "; expected \"key = value\"",
			QARG(key));
		free(key);
		return -1;
	}
	s++;
	while (s < end && is_blank(*s))
		s++;

	size_t i;
	for (i = 0; i < KEY_COUNT_ALL; i++)
		if (strcmp(key, key_defs[i].name) == 0)
			break;
	if (i == KEY_COUNT_ALL) {
		unknown_key(p, key);
		free(key);
		return -1;
	}
	free(key);
	const struct key_def *kd = &key_defs[i];

	if (!(kd->flags & KEY_REPEAT) && p->seen[i] != 0)
		return fail_at(p, p->line, "%s is already set at line %u; give it once",
			       kd->name, p->seen[i]);

	char *value = read_value(p, s, end);
	if (value == NULL)
		return -1;
	if (value[0] == '\0' && !(kd->flags & KEY_EMPTY_OK)) {
		free(value);
		return fail_at(p, p->line, "%s: empty value", kd->name);
	}
	int rc = set_value(p, kd, value);
	free(value);
	if (rc == 0)
		p->seen[i] = p->line;
	return rc;
}

static unsigned seen_line(const struct parser *p, const char *name)
{
	for (size_t i = 0; i < KEY_COUNT_ALL; i++)
		if (strcmp(key_defs[i].name, name) == 0)
			return p->seen[i];
	return 0;
}

/* Checks that need the whole file. */
static int check_all(struct parser *p)
{
	struct config *cfg = p->cfg;
	unsigned cert = seen_line(p, "tls_cert"), key = seen_line(p, "tls_key");

	if (cert != 0 && key == 0)
		return fail_at(p, cert, "tls_cert is set but tls_key is not; give both or neither "
			       "(neither: a self-signed certificate is made in DATA/tls/)");
	if (key != 0 && cert == 0)
		return fail_at(p, key, "tls_key is set but tls_cert is not; give both or neither "
			       "(neither: a self-signed certificate is made in DATA/tls/)");
	if (check_domains(p) < 0)
		return -1;
	if (cfg->n_domains == 0)
		return fail_at(p, 0, "no domain = line; at least one local domain is needed");
	const char *scheme = p->cfg->password_scheme;
	if (strcmp(scheme, "yescrypt") != 0 && strcmp(scheme, "bcrypt") != 0 &&
	    strcmp(scheme, "sha512crypt") != 0)
		return fail_at(p, seen_line(p, "password_scheme"), "password_scheme: \"%.40s\" is not "
			       "one of yescrypt, bcrypt, sha512crypt", scheme);
	if (p->cfg->recipient_delimiter != NULL && strlen(p->cfg->recipient_delimiter) != 1)
		return fail_at(p, seen_line(p, "recipient_delimiter"), "recipient_delimiter: "
			       "expected one character such as + or -, or an empty value for none");
	if (cfg->queue_retry == NULL)
		return fail_at(p, seen_line(p, "queue_retry"), "queue_retry: expected waits such as \"1m 5m 1h\"");
	if (cfg->outbound_tls == NULL || (strcmp(cfg->outbound_tls, "none") != 0 && strcmp(cfg->outbound_tls, "opportunistic") != 0 &&
	    strcmp(cfg->outbound_tls, "require") != 0))
		return fail_at(p, seen_line(p, "outbound_tls"), "outbound_tls: expected none, opportunistic "
			       "or require");
	if (cfg->outbound_port > 65535)
		return fail_at(p, seen_line(p, "outbound_port"), "outbound_port: must be 1-65535");
	for (char *q = cfg->queue_retry, *end; *q != '\0'; q = end) {
		char word[32];
		uint64_t ms;
		while (*q == ' ')
			q++;
		end = q;
		while (*end != '\0' && *end != ' ')
			end++;
		size_t len = (size_t)(end - q);
		if (len == 0)
			break;
		snprintf(word, sizeof(word), "%.*s", (int)(len < sizeof(word) ? len : sizeof(word) - 1), q);
		if (len >= sizeof(word) || config_parse_duration(word, &ms) < 0 || ms < 1000)
			return fail_at(p, seen_line(p, "queue_retry"), "queue_retry: \"%s\" is not a duration of "
				       "at least 1s; expected e.g. \"1m 5m 15m 30m 1h\"", word);
	}
	if (cfg->n_listens == 0)
		return fail_at(p, 0, "no listen = line; at least one listener is needed, "
			       "e.g. \"listen = smtp 0.0.0.0:25\"");
	return 0;
}

int config_parse(const char *name, const char *text, size_t len, struct config *cfg, char **error_r)
{
	struct parser p;
	const char *s = text, *end = text + len;

	memset(&p, 0, sizeof(p));
	p.name = name != NULL ? name : "(config)";
	p.cfg = cfg;
	config_defaults(cfg);
	cfg->path = xstrdup(p.name);

	if (len > CONFIG_FILE_MAX) {
		fail_at(&p, 0, "larger than 1 MiB; is this the right file?");
		goto done;
	}
	if (len >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0)
		s += 3; /* a UTF-8 BOM some editors add */
	while (s < end) {
		const char *lf = memchr(s, '\n', (size_t)(end - s));
		const char *eol = lf != NULL ? lf : end;
		const char *next = lf != NULL ? lf + 1 : end;
		if (eol > s && eol[-1] == '\r' && lf != NULL)
			eol--;
		p.line++;
		if (parse_line(&p, s, eol) < 0)
			goto done;
		s = next;
	}
	check_all(&p);
done:
	free(p.domain_lines);
	free(p.addrs);
	if (p.error != NULL) {
		config_free(cfg);
		if (error_r != NULL)
			*error_r = p.error;
		else
			free(p.error);
		return -1;
	}
	return 0;
}

int config_load(const char *path, struct config *cfg, char **error_r)
{
	FILE *f = fopen(path, "rb");
	char *text;
	size_t len;

	memset(cfg, 0, sizeof(*cfg));
	if (f == NULL) {
		*error_r = xasprintf("%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	/* Read one byte past the limit to tell "exactly 1 MiB" from "more". */
	text = xmalloc(CONFIG_FILE_MAX + 1);
	len = fread(text, 1, CONFIG_FILE_MAX + 1, f);
	if (ferror(f)) {
		int err = errno;
		*error_r = xasprintf("%s: cannot read: %s", path, strerror(err));
		fclose(f);
		free(text);
		return -1;
	}
	fclose(f);
	if (len > CONFIG_FILE_MAX) {
		*error_r = xasprintf("%s: larger than 1 MiB; is this the right file?", path);
		free(text);
		return -1;
	}
	int rc = config_parse(path, text, len, cfg, error_r);
	free(text);
	return rc;
}
