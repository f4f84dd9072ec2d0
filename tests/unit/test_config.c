/* Tests for core/config: the file format, every key, every error path with
 * its line number, the defaults and the development setup. Parser inputs
 * end at an unreadable page (guard_copy), so reading one byte past the
 * text crashes the test. */

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "testutil.h"

#define MINIMAL "domain = example.org\nlisten = smtp 0.0.0.0:25\n"

static int parse_text(const char *text, struct config *cfg, char **error_r)
{
	size_t len = strlen(text);
	char *g = guard_copy(text, len);
	int rc = config_parse("t.conf", g, len, cfg, error_r);
	guard_free(g, len);
	return rc;
}

static bool all_zero(const struct config *cfg)
{
	static const struct config zero;
	return memcmp(cfg, &zero, sizeof(zero)) == 0;
}

/* Parse text that must fail; the message must start with prefix (the
 * place) and contain what (the reason). */
static void expect_error(const char *text, const char *prefix, const char *what)
{
	struct config cfg;
	char *err = NULL;

	memset(&cfg, 0xa5, sizeof(cfg));
	int rc = parse_text(text, &cfg, &err);
	ck_assert_msg(rc == -1, "accepted: %s", text);
	ck_assert_ptr_nonnull(err);
	ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0,
		      "error \"%s\" does not start with \"%s\" for: %s", err, prefix, text);
	ck_assert_msg(strstr(err, what) != NULL,
		      "error \"%s\" does not say \"%s\" for: %s", err, what, text);
	ck_assert(all_zero(&cfg));
	config_free(&cfg); /* nothing to free, must be safe */
	free(err);
}

static void expect_ok(const char *text, struct config *cfg)
{
	char *err = NULL;
	int rc = parse_text(text, cfg, &err);
	ck_assert_msg(rc == 0, "rejected: %s\nerror: %s", text, err ? err : "(none)");
}

START_TEST(test_good_config)
{
	static const char text[] =
		"# postbote test config\n"
		"\n"
		"hostname = mail.example.org\n"
		"data_dir = /srv/mail\n"
		"domain = example.org\n"
		"domains = Example.NET example.com\n"
		"run_user = postbote\n"
		"listen = smtp 0.0.0.0:25\n"
		"listen = smtp [::]:25\n"
		"listen = submission 192.0.2.1:587\n"
		"listen = submissions [2001:db8:0::1]:465\n"
		"listen = pop3 127.0.0.1:110\n"
		"listen = pop3s [::1]:995\n"
		"listen = imap 0.0.0.0:143\n"
		"listen = imaps 0.0.0.0:993\n"
		"tls_cert = /etc/ssl/mail.pem\n"
		"tls_key = /etc/ssl/private/mail.key\n"
		"tls_ciphers = ECDHE+AESGCM:ECDHE+CHACHA20\n"
		"tls_ciphersuites = TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256\n"
		"allow_plaintext_auth_loopback = yes\n"
		"log_level = debug\n"
		"log_target = syslog\n"
		"log_facility = local3\n"
		"trace = full\n"
		"max_connections = 500\n"
		"max_connections_per_ip = 8\n"
		"write_buffer_max = 256K\n"
		"smtp_timeout = 6m\n"
		"pop3_timeout = 600\n"
		"imap_timeout = 1h\n"
		"tls_handshake_timeout = 20s\n"
		"shutdown_timeout = 0\n"
		"smtp_line_max = 4K\n"
		"pop3_line_max = 255\n"
		"imap_line_max = 1M\n"
		"max_bad_commands = 3\n";
	struct config cfg;

	expect_ok(text, &cfg);
	ck_assert_str_eq(cfg.path, "t.conf");
	ck_assert(!cfg.dev_setup);
	ck_assert_str_eq(cfg.hostname, "mail.example.org");
	ck_assert_str_eq(cfg.data_dir, "/srv/mail");
	ck_assert_uint_eq(cfg.n_domains, 3);
	ck_assert_str_eq(cfg.domains[0], "example.org");
	ck_assert_str_eq(cfg.domains[1], "example.net"); /* lower-cased */
	ck_assert_str_eq(cfg.domains[2], "example.com");
	ck_assert_str_eq(cfg.run_user, "postbote");

	ck_assert_uint_eq(cfg.n_listens, 8);
	ck_assert_int_eq(cfg.listens[0].kind, LISTENER_SMTP);
	ck_assert_str_eq(cfg.listens[0].host, "0.0.0.0");
	ck_assert_int_eq(cfg.listens[0].port, 25);
	ck_assert_int_eq(cfg.listens[1].kind, LISTENER_SMTP);
	ck_assert_str_eq(cfg.listens[1].host, "::");
	ck_assert_int_eq(cfg.listens[1].port, 25);
	ck_assert_int_eq(cfg.listens[2].kind, LISTENER_SUBMISSION);
	ck_assert_str_eq(cfg.listens[2].host, "192.0.2.1");
	ck_assert_int_eq(cfg.listens[3].kind, LISTENER_SUBMISSIONS);
	ck_assert_str_eq(cfg.listens[3].host, "2001:db8::1"); /* canonical form */
	ck_assert_int_eq(cfg.listens[3].port, 465);
	ck_assert_int_eq(cfg.listens[4].kind, LISTENER_POP3);
	ck_assert_int_eq(cfg.listens[5].kind, LISTENER_POP3S);
	ck_assert_str_eq(cfg.listens[5].host, "::1");
	ck_assert_int_eq(cfg.listens[6].kind, LISTENER_IMAP);
	ck_assert_int_eq(cfg.listens[7].kind, LISTENER_IMAPS);
	ck_assert_int_eq(cfg.listens[7].port, 993);

	ck_assert_str_eq(cfg.tls_cert, "/etc/ssl/mail.pem");
	ck_assert_str_eq(cfg.tls_key, "/etc/ssl/private/mail.key");
	ck_assert_str_eq(cfg.tls_ciphers, "ECDHE+AESGCM:ECDHE+CHACHA20");
	ck_assert_str_eq(cfg.tls_ciphersuites, "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256");
	ck_assert(cfg.allow_plaintext_auth_loopback);
	ck_assert_int_eq(cfg.log_level, LOG_LEVEL_DEBUG);
	ck_assert(cfg.log_syslog);
	ck_assert_str_eq(cfg.log_facility, "local3");
	ck_assert_int_eq(cfg.trace, TRACE_FULL);
	ck_assert_uint_eq(cfg.max_connections, 500);
	ck_assert_uint_eq(cfg.max_connections_per_ip, 8);
	ck_assert_uint_eq(cfg.write_buffer_max, 256 * 1024);
	ck_assert_uint_eq(cfg.smtp_timeout_ms, 6 * 60 * 1000);
	ck_assert_uint_eq(cfg.pop3_timeout_ms, 600 * 1000);
	ck_assert_uint_eq(cfg.imap_timeout_ms, 3600 * 1000);
	ck_assert_uint_eq(cfg.tls_handshake_timeout_ms, 20 * 1000);
	ck_assert_uint_eq(cfg.shutdown_timeout_ms, 0);
	ck_assert_uint_eq(cfg.smtp_line_max, 4096);
	ck_assert_uint_eq(cfg.pop3_line_max, 255);
	ck_assert_uint_eq(cfg.imap_line_max, 1024 * 1024);
	ck_assert_uint_eq(cfg.max_bad_commands, 3);
	config_free(&cfg);
	ck_assert(all_zero(&cfg));
}
END_TEST

START_TEST(test_defaults)
{
	struct config cfg, def;
	char host[256];

	config_defaults(&def);
	ck_assert_ptr_null(def.path);
	ck_assert(!def.dev_setup);
	ck_assert_int_eq(gethostname(host, sizeof(host)), 0);
	host[sizeof(host) - 1] = '\0';
	ck_assert_str_eq(def.hostname, host);
	ck_assert_str_eq(def.data_dir, "/var/lib/postbote");
	ck_assert_uint_eq(def.n_domains, 0);
	ck_assert_ptr_null(def.run_user);
	ck_assert_uint_eq(def.n_listens, 0);
	ck_assert_ptr_null(def.tls_cert);
	ck_assert_ptr_null(def.tls_key);
	ck_assert_ptr_null(def.tls_ciphers);
	ck_assert_ptr_null(def.tls_ciphersuites);
	ck_assert(!def.allow_plaintext_auth_loopback);
	ck_assert_int_eq(def.log_level, LOG_LEVEL_INFO);
	ck_assert(!def.log_syslog);
	ck_assert_str_eq(def.log_facility, "mail");
	ck_assert_int_eq(def.trace, TRACE_OFF);
	ck_assert_uint_eq(def.max_connections, 1000);
	ck_assert_uint_eq(def.max_connections_per_ip, 20);
	ck_assert_uint_eq(def.write_buffer_max, 1024 * 1024);
	ck_assert_uint_eq(def.smtp_timeout_ms, 300000);
	ck_assert_uint_eq(def.pop3_timeout_ms, 600000);
	ck_assert_uint_eq(def.imap_timeout_ms, 1800000);
	ck_assert_uint_eq(def.tls_handshake_timeout_ms, 30000);
	ck_assert_uint_eq(def.shutdown_timeout_ms, 10000);
	ck_assert_uint_eq(def.smtp_line_max, 1000);
	ck_assert_uint_eq(def.pop3_line_max, 1024);
	ck_assert_uint_eq(def.imap_line_max, 65536);
	ck_assert_uint_eq(def.max_bad_commands, 10);

	/* A minimal file changes nothing else. */
	expect_ok(MINIMAL, &cfg);
	ck_assert_str_eq(cfg.hostname, def.hostname);
	ck_assert_str_eq(cfg.data_dir, def.data_dir);
	ck_assert_str_eq(cfg.log_facility, def.log_facility);
	ck_assert_uint_eq(cfg.max_connections, def.max_connections);
	ck_assert_uint_eq(cfg.smtp_timeout_ms, def.smtp_timeout_ms);
	ck_assert_uint_eq(cfg.imap_line_max, def.imap_line_max);
	ck_assert_ptr_null(cfg.tls_cert);
	config_free(&cfg);
	config_free(&def);
}
END_TEST

/* Each bad file with the place and reason its error must name. */
static const struct {
	const char *text;
	const char *prefix;
	const char *what;
} bad_files[] = {
	{ MINIMAL "listne = smtp 0.0.0.0:25\n", "t.conf:3: ", "unknown key \"listne\"" },
	{ MINIMAL "listne = smtp 0.0.0.0:25\n", "t.conf:3: ", "did you mean \"listen\"" },
	{ "# c\n\nfrobnicate = 1\n" MINIMAL, "t.conf:3: ", "unknown key \"frobnicate\"" },
	{ MINIMAL "Hostname = a\n", "t.conf:3: ", "unknown key \"Hostname\"" },
	{ MINIMAL "hostname mail.example.org\n", "t.conf:3: ", "missing \"=\" after \"hostname\"" },
	{ MINIMAL "\n\nhostname\n", "t.conf:5: ", "missing \"=\"" },
	{ MINIMAL "= x\n", "t.conf:3: ", "missing key" },
	{ MINIMAL "hostname =\n", "t.conf:3: ", "hostname: empty value" },
	{ MINIMAL "hostname = # nothing\n", "t.conf:3: ", "hostname: empty value" },
	{ MINIMAL "data_dir = \"\"\n", "t.conf:3: ", "data_dir: empty value" },
	{ MINIMAL "hostname = a\nhostname = b\n", "t.conf:4: ", "already set at line 3" },
	{ MINIMAL "hostname = bad_name\n", "t.conf:3: ", "not a host name" },
	{ MINIMAL "hostname = -a.example\n", "t.conf:3: ", "not a host name" },
	{ MINIMAL "hostname = a..example\n", "t.conf:3: ", "not a host name" },
	/* listen */
	{ MINIMAL "listen = smtpx 0.0.0.0:26\n", "t.conf:3: ", "unknown kind \"smtpx\"" },
	{ MINIMAL "listen = 0.0.0.0:26\n", "t.conf:3: ", "expected KIND ADDRESS:PORT" },
	{ MINIMAL "listen = smtp 0.0.0.0:26 extra\n", "t.conf:3: ", "expected KIND ADDRESS:PORT" },
	{ MINIMAL "listen = smtp 1.2.3:25\n", "t.conf:3: ", "\"1.2.3\" is not a numeric IPv4 address" },
	{ MINIMAL "listen = smtp localhost:26\n", "t.conf:3: ", "is not a numeric IPv4 address" },
	{ MINIMAL "listen = smtp 256.0.0.1:26\n", "t.conf:3: ", "not a numeric IPv4" },
	{ MINIMAL "listen = imap [::g]:143\n", "t.conf:3: ", "not a numeric IPv6" },
	{ MINIMAL "listen = imap ::1:143\n", "t.conf:3: ", "IPv6 address goes in brackets" },
	{ MINIMAL "listen = imap [::1:143\n", "t.conf:3: ", "missing \"]\"" },
	{ MINIMAL "listen = imap [::1]143\n", "t.conf:3: ", "expected \":PORT\"" },
	{ MINIMAL "listen = imap 0.0.0.0\n", "t.conf:3: ", "missing \":PORT\"" },
	{ MINIMAL "listen = smtp 1.2.3.4:99999\n", "t.conf:3: ",
	  "listen: \"smtp 1.2.3.4:99999\": port must be 1-65535" },
	{ MINIMAL "listen = smtp 1.2.3.4:0\n", "t.conf:3: ", "port must be 1-65535" },
	{ MINIMAL "listen = smtp 1.2.3.4:\n", "t.conf:3: ", "port must be 1-65535" },
	{ MINIMAL "listen = smtp 1.2.3.4:-1\n", "t.conf:3: ", "port must be 1-65535" },
	{ MINIMAL "listen = smtp 1.2.3.4:25x\n", "t.conf:3: ", "port must be 1-65535" },
	{ MINIMAL "listen = smtp 1.2.3.4:99999999999999999999999\n", "t.conf:3: ", "port must be 1-65535" },
	{ MINIMAL "# x\nlisten = imap 0.0.0.0:25\n", "t.conf:4: ", "already used at line 2" },
	{ "listen = imap [::]:143\ndomain = a\nlisten = imaps [0:0::0]:143\n", "t.conf:3: ",
	  "already used at line 1" },
	/* durations, sizes, counts */
	{ MINIMAL "smtp_timeout = 5 m\n", "t.conf:3: ", "smtp_timeout: \"5 m\" is not a duration" },
	{ MINIMAL "smtp_timeout = 5ms\n", "t.conf:3: ", "is not a duration" },
	{ MINIMAL "smtp_timeout = -5\n", "t.conf:3: ", "is not a duration" },
	{ MINIMAL "smtp_timeout = 0\n", "t.conf:3: ", "smtp_timeout: must be at least 1s" },
	{ MINIMAL "imap_timeout = 99999999999999999999d\n", "t.conf:3: ", "is not a duration" },
	{ MINIMAL "write_buffer_max = 1T\n", "t.conf:3: ", "write_buffer_max: \"1T\" is not a size" },
	{ MINIMAL "write_buffer_max = 1.5M\n", "t.conf:3: ", "is not a size" },
	{ MINIMAL "write_buffer_max = 100\n", "t.conf:3: ", "is below 4096" },
	{ MINIMAL "max_connections = 0\n", "t.conf:3: ", "max_connections: must be at least 1" },
	{ MINIMAL "max_connections = ten\n", "t.conf:3: ", "is not a number" },
	{ MINIMAL "max_connections_per_ip = 4294967296\n", "t.conf:3: ", "is not a number" },
	{ MINIMAL "max_bad_commands = 0\n", "t.conf:3: ", "must be at least 1" },
	/* enumerations */
	{ MINIMAL "allow_plaintext_auth_loopback = maybe\n", "t.conf:3: ", "not a yes/no value" },
	{ MINIMAL "allow_plaintext_auth_loopback = 1\n", "t.conf:3: ", "not a yes/no value" },
	{ MINIMAL "log_level = verbose\n", "t.conf:3: ", "log_level: \"verbose\" is not a level" },
	{ MINIMAL "log_target = file\n", "t.conf:3: ", "expected stderr or syslog" },
	{ MINIMAL "log_facility = kern7\n", "t.conf:3: ", "not a syslog facility" },
	{ MINIMAL "trace = yes\n", "t.conf:3: ", "expected off, on or full" },
	/* TLS pair, reported at the line of the one present */
	{ MINIMAL "\ntls_cert = /a.pem\n", "t.conf:4: ", "tls_cert is set but tls_key is not" },
	{ "tls_key = /a.key\n" MINIMAL, "t.conf:1: ", "tls_key is set but tls_cert is not" },
	/* missing essentials, reported for the file */
	{ "listen = smtp 0.0.0.0:25\n", "t.conf: no domain", "at least one local domain" },
	{ "domain = example.org\n", "t.conf: no listen", "at least one listener" },
	{ "", "t.conf: no domain", "" },
	{ "# only a comment", "t.conf: no domain", "" },
	/* line limits below the RFC floors */
	{ MINIMAL "smtp_line_max = 999\n", "t.conf:3: ", "below 1000" },
	{ MINIMAL "smtp_line_max = 512\n", "t.conf:3: ", "RFC 5321" },
	{ MINIMAL "pop3_line_max = 254\n", "t.conf:3: ", "below 255" },
	{ MINIMAL "imap_line_max = 1023\n", "t.conf:3: ", "below 1024" },
	/* domains */
	{ MINIMAL "domain = not a domain\n", "t.conf:3: ", "is not a domain name" },
	{ MINIMAL "domain = ex_ample.org\n", "t.conf:3: ", "is not a domain name" },
	{ MINIMAL "domains = \"  \"\n", "t.conf:3: ", "no domain given" },
	{ MINIMAL "domains = a.org b.org\ndomain = EXAMPLE.org\n", "t.conf:4: ",
	  "\"example.org\" is already listed at line 1" },
	{ "domains = a.org b.org a.org\nlisten = smtp 0.0.0.0:25\n", "t.conf:1: ", "listed twice" },
	/* quoting and the characters of a line */
	{ MINIMAL "data_dir = \"/srv\n", "t.conf:3: ", "missing closing" },
	{ MINIMAL "data_dir = \"/srv\" x\n", "t.conf:3: ", "text after the closing" },
	{ MINIMAL "data_dir = /s\rv\n", "t.conf:3: ", "control character 0x0d" },
	{ MINIMAL "data_dir = /s\tv\x7f\n", "t.conf:3: ", "control character 0x7f" },
};

START_TEST(test_errors)
{
	expect_error(bad_files[_i].text, bad_files[_i].prefix, bad_files[_i].what);
}
END_TEST

START_TEST(test_nul_byte)
{
	static const char text[] = MINIMAL "data_dir = /a\0b\n";
	struct config cfg;
	char *err = NULL;
	char *g = guard_copy(text, sizeof(text) - 1);

	ck_assert_int_eq(config_parse("t.conf", g, sizeof(text) - 1, &cfg, &err), -1);
	guard_free(g, sizeof(text) - 1);
	ck_assert_str_eq(err, "t.conf:3: control character 0x00 in the line; the file must be plain text");
	ck_assert(all_zero(&cfg));
	free(err);

	/* error_r may be NULL when only the verdict matters (fuzz target). */
	ck_assert_int_eq(config_parse("t.conf", "x", 1, &cfg, NULL), -1);
	ck_assert(all_zero(&cfg));
}
END_TEST

START_TEST(test_comments_and_quotes)
{
	static const char text[] =
		"  # indented comment\n"
		"\t\n"
		"domain=example.org# no blank before '#': part of the value?\n";
	struct config cfg;

	/* A '#' not after a blank is part of the value: here that makes the
	 * domain invalid, which proves it was kept. */
	expect_error(text, "t.conf:3: ", "not a domain name");

	expect_ok("domain=example.org   # a comment\n"
		  "listen=smtp 0.0.0.0:25\t# tab then comment\n"
		  "tls_ciphers = HIGH:!aNULL#kept\n"
		  "tls_ciphersuites=#kept-too\n"
		  "data_dir = \"  /spaced dir # not a comment  \"   # a comment\n"
		  "run_user = \"say \\\"hi\\\" \\\\ \\n\"\n"
		  "  hostname\t=\tmx.example.org  \n", &cfg);
	ck_assert_str_eq(cfg.domains[0], "example.org");
	ck_assert_str_eq(cfg.listens[0].host, "0.0.0.0");
	ck_assert_str_eq(cfg.tls_ciphers, "HIGH:!aNULL#kept");
	ck_assert_str_eq(cfg.tls_ciphersuites, "#kept-too");
	ck_assert_str_eq(cfg.data_dir, "  /spaced dir # not a comment  ");
	ck_assert_str_eq(cfg.run_user, "say \"hi\" \\ \\n");
	ck_assert_str_eq(cfg.hostname, "mx.example.org");
	config_free(&cfg);

	/* Empty values where a key allows them reset to the default. */
	expect_ok(MINIMAL "run_user =\ntls_ciphers = \"\"\ntls_ciphersuites = # default\n", &cfg);
	ck_assert_ptr_null(cfg.run_user);
	ck_assert_ptr_null(cfg.tls_ciphers);
	ck_assert_ptr_null(cfg.tls_ciphersuites);
	config_free(&cfg);
}
END_TEST

START_TEST(test_line_ends)
{
	struct config cfg;

	/* CRLF, a BOM, and no newline after the last line. */
	expect_ok("\xEF\xBB\xBF" "domain = example.org\r\n\r\n"
		  "listen = smtp 0.0.0.0:25\r\nhostname = mx.example.org", &cfg);
	ck_assert_str_eq(cfg.domains[0], "example.org");
	ck_assert_int_eq(cfg.listens[0].port, 25);
	ck_assert_str_eq(cfg.hostname, "mx.example.org");
	config_free(&cfg);

	/* A quoted value at the very end of the input. */
	expect_ok(MINIMAL "data_dir = \"/x\"", &cfg);
	ck_assert_str_eq(cfg.data_dir, "/x");
	config_free(&cfg);

	/* An unterminated quote at the very end of the input. */
	expect_error(MINIMAL "data_dir = \"/x", "t.conf:3: ", "missing closing");
	/* A key at the very end. */
	expect_error(MINIMAL "hostname", "t.conf:3: ", "missing \"=\"");
	expect_error(MINIMAL "hostname =", "t.conf:3: ", "empty value");
}
END_TEST

START_TEST(test_bools_and_enums)
{
	static const struct { const char *v; bool b; } bools[] = {
		{ "yes", true }, { "true", true }, { "on", true },
		{ "no", false }, { "false", false }, { "off", false },
	};
	struct config cfg;
	char text[256];

	for (size_t i = 0; i < sizeof(bools) / sizeof(bools[0]); i++) {
		snprintf(text, sizeof(text), MINIMAL "allow_plaintext_auth_loopback = %s\n", bools[i].v);
		expect_ok(text, &cfg);
		ck_assert(cfg.allow_plaintext_auth_loopback == bools[i].b);
		config_free(&cfg);
	}
	expect_ok(MINIMAL "log_level = error\ntrace = on\nlog_target = stderr\nlog_facility = daemon\n", &cfg);
	ck_assert_int_eq(cfg.log_level, LOG_LEVEL_ERROR);
	ck_assert_int_eq(cfg.trace, TRACE_ON);
	ck_assert(!cfg.log_syslog);
	ck_assert_str_eq(cfg.log_facility, "daemon");
	config_free(&cfg);
	expect_ok(MINIMAL "log_level = warn\ntrace = off\n", &cfg);
	ck_assert_int_eq(cfg.log_level, LOG_LEVEL_WARN);
	ck_assert_int_eq(cfg.trace, TRACE_OFF);
	config_free(&cfg);
}
END_TEST

START_TEST(test_listen_forms)
{
	struct config cfg;

	expect_ok("domain = a.example\n"
		  "listen = smtp 0.0.0.0:25\n"
		  "listen = smtp [::]:25\n"          /* same port, other family: fine */
		  "listen = smtp 127.0.0.1:25\n"     /* same port, other address: fine */
		  "listen = submission 0.0.0.0:1\n"
		  "listen = imaps [::FFFF:10.0.0.1]:65535\n"
		  "listen =   pop3   \t 10.0.0.1:0110  \n", &cfg);
	ck_assert_uint_eq(cfg.n_listens, 6);
	ck_assert_int_eq(cfg.listens[3].port, 1);
	ck_assert_str_eq(cfg.listens[4].host, "::ffff:10.0.0.1");
	ck_assert_int_eq(cfg.listens[4].port, 65535);
	ck_assert_int_eq(cfg.listens[5].kind, LISTENER_POP3);
	ck_assert_str_eq(cfg.listens[5].host, "10.0.0.1");
	ck_assert_int_eq(cfg.listens[5].port, 110);
	config_free(&cfg);
}
END_TEST

START_TEST(test_listener_kinds)
{
	static const struct { const char *name; int port; bool tls; } kinds[LISTENER_KIND_COUNT] = {
		{ "smtp", 25, false }, { "submission", 587, false }, { "submissions", 465, true },
		{ "pop3", 110, false }, { "pop3s", 995, true }, { "imap", 143, false },
		{ "imaps", 993, true },
	};
	enum listener_kind k;

	for (int i = 0; i < LISTENER_KIND_COUNT; i++) {
		ck_assert_str_eq(listener_kind_name((enum listener_kind)i), kinds[i].name);
		ck_assert_int_eq(listener_kind_default_port((enum listener_kind)i), kinds[i].port);
		ck_assert(listener_kind_implicit_tls((enum listener_kind)i) == kinds[i].tls);
		ck_assert_int_eq(listener_kind_parse(kinds[i].name, &k), 0);
		ck_assert_int_eq(k, i);
	}
	ck_assert_int_eq(listener_kind_parse("SMTP", &k), -1);
	ck_assert_int_eq(listener_kind_parse("", &k), -1);
	ck_assert_int_eq(listener_kind_parse("imap4", &k), -1);
	ck_assert_str_eq(listener_kind_name(LISTENER_KIND_COUNT), "?");
}
END_TEST

START_TEST(test_durations)
{
	uint64_t ms;

	ck_assert_int_eq(config_parse_duration("0", &ms), 0);
	ck_assert_uint_eq(ms, 0);
	ck_assert_int_eq(config_parse_duration("300", &ms), 0);
	ck_assert_uint_eq(ms, 300000);
	ck_assert_int_eq(config_parse_duration("30s", &ms), 0);
	ck_assert_uint_eq(ms, 30000);
	ck_assert_int_eq(config_parse_duration("5m", &ms), 0);
	ck_assert_uint_eq(ms, 300000);
	ck_assert_int_eq(config_parse_duration("2h", &ms), 0);
	ck_assert_uint_eq(ms, 7200000);
	ck_assert_int_eq(config_parse_duration("1d", &ms), 0);
	ck_assert_uint_eq(ms, 86400000);
	ck_assert_int_eq(config_parse_duration("007s", &ms), 0);
	ck_assert_uint_eq(ms, 7000);
	/* The largest that fits, and one more. */
	ck_assert_int_eq(config_parse_duration("18446744073709551", &ms), 0);
	ck_assert_uint_eq(ms, 18446744073709551000u);
	ck_assert_int_eq(config_parse_duration("18446744073709552", &ms), -1);
	ck_assert_int_eq(config_parse_duration("213503982334d", &ms), 0);
	ck_assert_uint_eq(ms, 213503982334u * 86400000u);
	ck_assert_int_eq(config_parse_duration("213503982335d", &ms), -1);
	ck_assert_int_eq(config_parse_duration("5124095576030h", &ms), 0);
	ck_assert_int_eq(config_parse_duration("5124095576031h", &ms), -1);
	ck_assert_int_eq(config_parse_duration("99999999999999999999999", &ms), -1);

	static const char *const bad[] = {
		"", "s", "-1", "+1", " 1", "1 ", "1 s", "1S", "1M", "1ms", "1ss", "1x",
		"1.5h", "0x10", "5m3", "1h30m",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ms = 12345;
		ck_assert_msg(config_parse_duration(bad[i], &ms) == -1, "accepted \"%s\"", bad[i]);
		ck_assert_uint_eq(ms, 12345);
	}
}
END_TEST

START_TEST(test_sizes)
{
	uint64_t n;

	ck_assert_int_eq(config_parse_size("0", &n), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(config_parse_size("512", &n), 0);
	ck_assert_uint_eq(n, 512);
	ck_assert_int_eq(config_parse_size("64K", &n), 0);
	ck_assert_uint_eq(n, 65536);
	ck_assert_int_eq(config_parse_size("64k", &n), 0);
	ck_assert_uint_eq(n, 65536);
	ck_assert_int_eq(config_parse_size("10M", &n), 0);
	ck_assert_uint_eq(n, 10485760);
	ck_assert_int_eq(config_parse_size("10m", &n), 0);
	ck_assert_uint_eq(n, 10485760);
	ck_assert_int_eq(config_parse_size("1G", &n), 0);
	ck_assert_uint_eq(n, 1073741824);
	ck_assert_int_eq(config_parse_size("3g", &n), 0);
	ck_assert_uint_eq(n, 3221225472u);
	ck_assert_int_eq(config_parse_size("18446744073709551615", &n), 0);
	ck_assert_uint_eq(n, UINT64_MAX);
	ck_assert_int_eq(config_parse_size("18446744073709551616", &n), -1);
	ck_assert_int_eq(config_parse_size("17179869183G", &n), 0);
	ck_assert_int_eq(config_parse_size("17179869184G", &n), -1);

	static const char *const bad[] = {
		"", "K", "-1", "+1", " 1", "1 ", "1 K", "1KB", "1KiB", "1T", "1b", "1.5M",
		"0x10", "1K1",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		n = 12345;
		ck_assert_msg(config_parse_size(bad[i], &n) == -1, "accepted \"%s\"", bad[i]);
		ck_assert_uint_eq(n, 12345);
	}
}
END_TEST

START_TEST(test_line_max_floors)
{
	struct config cfg;

	expect_ok(MINIMAL "smtp_line_max = 1000\npop3_line_max = 255\nimap_line_max = 1K\n", &cfg);
	ck_assert_uint_eq(cfg.smtp_line_max, 1000);
	ck_assert_uint_eq(cfg.pop3_line_max, 255);
	ck_assert_uint_eq(cfg.imap_line_max, 1024);
	config_free(&cfg);
}
END_TEST

START_TEST(test_dev_setup)
{
	static const int ports[LISTENER_KIND_COUNT] = { 2025, 2587, 2465, 2110, 2995, 2143, 2993 };
	struct config cfg;

	config_dev_setup(&cfg);
	ck_assert(cfg.dev_setup);
	ck_assert_ptr_null(cfg.path);
	ck_assert_str_eq(cfg.hostname, "localhost");
	ck_assert_str_eq(cfg.data_dir, "./postbote-data");
	ck_assert_uint_eq(cfg.n_domains, 1);
	ck_assert_str_eq(cfg.domains[0], "localhost");
	ck_assert(cfg.allow_plaintext_auth_loopback);
	ck_assert_int_eq(cfg.log_level, LOG_LEVEL_INFO);
	ck_assert_uint_eq(cfg.n_listens, 7);
	for (int i = 0; i < LISTENER_KIND_COUNT; i++) {
		ck_assert_int_eq(cfg.listens[i].kind, i);
		ck_assert_str_eq(cfg.listens[i].host, "127.0.0.1");
		ck_assert_int_eq(cfg.listens[i].port, ports[i]);
		ck_assert_int_eq(cfg.listens[i].port,
				 listener_kind_default_port(cfg.listens[i].kind) + 2000);
	}
	ck_assert_ptr_null(cfg.tls_cert);
	ck_assert_uint_eq(cfg.smtp_line_max, 1000);
	config_free(&cfg);
}
END_TEST

START_TEST(test_free_twice)
{
	struct config cfg;

	expect_ok(MINIMAL "tls_cert = /c\ntls_key = /k\n", &cfg);
	config_free(&cfg);
	ck_assert(all_zero(&cfg));
	config_free(&cfg);
	ck_assert(all_zero(&cfg));

	/* Free, then load again into the same struct. */
	config_dev_setup(&cfg);
	config_free(&cfg);
	config_free(&cfg);
	expect_ok(MINIMAL, &cfg);
	config_free(&cfg);
}
END_TEST

static char *write_temp(const void *data, size_t len)
{
	char *path = strdup("/tmp/postbote-test-config-XXXXXX");
	int fd = mkstemp(path);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	close(fd);
	return path;
}

START_TEST(test_load)
{
	struct config cfg;
	char *err = NULL;
	char *path = write_temp(MINIMAL "hostname = mx.example.org\n",
				strlen(MINIMAL "hostname = mx.example.org\n"));

	ck_assert_int_eq(config_load(path, &cfg, &err), 0);
	ck_assert_str_eq(cfg.path, path);
	ck_assert_str_eq(cfg.hostname, "mx.example.org");
	config_free(&cfg);
	unlink(path);
	free(path);

	/* Errors name the file. */
	path = write_temp("domain = a.example\nlisten = smtp 0.0.0.0:70000\n", 48);
	ck_assert_int_eq(config_load(path, &cfg, &err), -1);
	char *want = NULL;
	ck_assert_int_ge(asprintf(&want, "%s:2: listen: \"smtp 0.0.0.0:70000\": port must be 1-65535", path), 0);
	ck_assert_str_eq(err, want);
	ck_assert(all_zero(&cfg));
	free(want);
	free(err);
	unlink(path);
	free(path);

	/* A missing file. */
	ck_assert_int_eq(config_load("/nonexistent/postbote.conf", &cfg, &err), -1);
	ck_assert_str_eq(err, "/nonexistent/postbote.conf: cannot open: No such file or directory");
	ck_assert(all_zero(&cfg));
	free(err);

	/* A directory. */
	ck_assert_int_eq(config_load("/tmp", &cfg, &err), -1);
	ck_assert_ptr_nonnull(strstr(err, "/tmp: cannot read"));
	ck_assert(all_zero(&cfg));
	free(err);

	/* Exactly 1 MiB is read (comments), one byte more is refused. */
	size_t big = 1024 * 1024;
	char *text = malloc(big + 1);
	memset(text, '#', big + 1);
	memcpy(text, MINIMAL, strlen(MINIMAL));
	path = write_temp(text, big);
	ck_assert_int_eq(config_load(path, &cfg, &err), 0);
	config_free(&cfg);
	unlink(path);
	free(path);
	path = write_temp(text, big + 1);
	ck_assert_int_eq(config_load(path, &cfg, &err), -1);
	ck_assert_ptr_nonnull(strstr(err, "larger than 1 MiB"));
	ck_assert(all_zero(&cfg));
	free(err);
	unlink(path);
	free(path);
	/* config_parse has the same bound. */
	ck_assert_int_eq(config_parse("big", text, big + 1, &cfg, &err), -1);
	ck_assert_str_eq(err, "big: larger than 1 MiB; is this the right file?");
	free(err);
	free(text);
}
END_TEST

START_TEST(test_long_values_in_errors)
{
	/* User text in a message is cut, so one bad line cannot make a huge
	 * error. */
	char text[4096];
	struct config cfg;
	char *err = NULL;

	memset(text, 0, sizeof(text));
	strcpy(text, MINIMAL "log_level = ");
	memset(text + strlen(text), 'v', 2000);
	strcat(text, "\n");
	ck_assert_int_eq(parse_text(text, &cfg, &err), -1);
	ck_assert_ptr_nonnull(strstr(err, "t.conf:3: log_level: \"vvv"));
	ck_assert_ptr_nonnull(strstr(err, "...\" is not a level"));
	ck_assert_uint_lt(strlen(err), 300);
	free(err);
}
END_TEST

START_TEST(test_many_domains)
{
	/* Many domains are fine and duplicates are found at the first line
	 * that repeats one. */
	size_t n = 5000, cap = n * 24 + 256;
	char *text = malloc(cap), *p = text;
	struct config cfg;
	char *err = NULL;

	p += sprintf(p, "listen = smtp 0.0.0.0:25\n");
	for (size_t i = 0; i < n; i++)
		p += sprintf(p, "domain = d%zu.example\n", i);
	expect_ok(text, &cfg);
	ck_assert_uint_eq(cfg.n_domains, n);
	config_free(&cfg);

	p += sprintf(p, "domain = d7.example\ndomain = d3.example\n");
	ck_assert_int_eq(parse_text(text, &cfg, &err), -1);
	char want[128];
	snprintf(want, sizeof(want), "t.conf:%zu: domain \"d7.example\" is already listed at line 9", n + 2);
	ck_assert_str_eq(err, want);
	free(err);
	free(text);
}
END_TEST

/* The repository root, from this file's path (CMake compiles with absolute
 * paths; a hand build from the root gives a relative one, which also works). */
static char *repo_path(const char *rel)
{
	const char *me = __FILE__;
	const char *tail = strstr(me, "tests/unit/test_config.c");
	char *path = NULL;

	ck_assert_ptr_nonnull(tail);
	ck_assert_int_ge(asprintf(&path, "%.*s%s", (int)(tail - me), me, rel), 0);
	return path;
}

static char *read_all(const char *path)
{
	FILE *f = fopen(path, "rb");
	static char text[256 * 1024];
	size_t n;

	ck_assert_msg(f != NULL, "cannot open %s", path);
	n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	return strdup(text);
}

START_TEST(test_example_and_docs)
{
	/* The example, this parser and the reference stay in step: the example
	 * parses, and both it and the reference mention every key. */
	char *example = repo_path("postbote.conf.example");
	char *docs = repo_path("docs/configuration.md");
	struct config cfg;
	char *err = NULL;

	ck_assert_msg(config_load(example, &cfg, &err) == 0, "%s", err ? err : "");
	ck_assert_uint_eq(cfg.n_listens, 14);
	for (size_t i = 0; i < cfg.n_listens; i++)
		ck_assert_int_eq(cfg.listens[i].port, listener_kind_default_port(cfg.listens[i].kind));
	ck_assert_ptr_nonnull(cfg.tls_cert);
	ck_assert_ptr_nonnull(cfg.run_user);
	config_free(&cfg);

	char *ex_text = read_all(example), *doc_text = read_all(docs);
	const char *key;
	for (size_t i = 0; (key = config_key_name(i)) != NULL; i++) {
		char pat[96];
		/* Optional keys may be there commented out: "#key = ...". */
		char pat2[96];
		snprintf(pat, sizeof(pat), "\n%s = ", key);
		snprintf(pat2, sizeof(pat2), "\n#%s = ", key);
		ck_assert_msg(strstr(ex_text, pat) != NULL || strstr(ex_text, pat2) != NULL, "example lacks %s", key);
		snprintf(pat, sizeof(pat), "`%s`", key);
		ck_assert_msg(strstr(doc_text, pat) != NULL, "docs lack %s", key);
		/* And the parser knows it: an unknown key would fail differently. */
		snprintf(pat, sizeof(pat), MINIMAL "%s =\n", key);
		struct config c;
		char *e = NULL;
		if (parse_text(pat, &c, &e) == 0) {
			config_free(&c);
		} else {
			ck_assert_msg(strstr(e, "unknown key") == NULL, "parser lacks %s", key);
			free(e);
		}
	}
	free(ex_text);
	free(doc_text);
	free(example);
	free(docs);
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("parse");

	tcase_add_test(tc, test_good_config);
	tcase_add_test(tc, test_defaults);
	tcase_add_loop_test(tc, test_errors, 0, (int)(sizeof(bad_files) / sizeof(bad_files[0])));
	tcase_add_test(tc, test_nul_byte);
	tcase_add_test(tc, test_comments_and_quotes);
	tcase_add_test(tc, test_line_ends);
	tcase_add_test(tc, test_bools_and_enums);
	tcase_add_test(tc, test_listen_forms);
	tcase_add_test(tc, test_line_max_floors);
	tcase_add_test(tc, test_long_values_in_errors);
	tcase_add_test(tc, test_many_domains);
	suite_add_tcase(s, tc);

	tc = tcase_create("helpers");
	tcase_add_test(tc, test_listener_kinds);
	tcase_add_test(tc, test_durations);
	tcase_add_test(tc, test_sizes);
	suite_add_tcase(s, tc);

	tc = tcase_create("setup");
	tcase_add_test(tc, test_dev_setup);
	tcase_add_test(tc, test_free_twice);
	tcase_add_test(tc, test_load);
	tcase_add_test(tc, test_example_and_docs);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run(config_suite());
}
