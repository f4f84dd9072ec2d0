/*
 * postbote: the command line. One binary, one subcommand per job; each
 * subcommand takes -c FILE and otherwise uses the development setup in the
 * current directory (see docs/configuration.md).
 *
 * Exit codes follow sysexits(3) so scripts can tell what went wrong.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "cli/cli.h"
#include "core/config.h"
#include "core/log.h"
#include "core/server.h"
#include "core/trace.h"
#include "core/xalloc.h"

#define EXIT_USAGE 64
#define EXIT_SOFTWARE 70
#define EXIT_CANTCREAT 73
#define EXIT_CONFIG 78

static void usage(FILE *f)
{
	fprintf(f,
		"usage: postbote COMMAND [OPTIONS]\n"
		"\n"
		"Commands:\n"
		"  serve [-c FILE] [--trace[=full]]   run the mail server\n"
		"  check-config [-c FILE]             read the configuration and report errors\n"
		"  user add|del|passwd|list|enable|disable|import ...   manage accounts\n"
		"  alias add|del|list ...             manage aliases (@domain = catch-all)\n"
		"  quota ADDRESS [SIZE [MESSAGES]]    show or set an account's limits\n"
		"  queue list|show|flush|del [ID]     look at and manage the outbound queue\n"
		"  reindex [ADDRESS...]               rebuild the mailbox index from the Maildirs\n"
		"  dkim keygen|list ...               DKIM signing keys (dkim help for more)\n"
		"  dns [DOMAIN...]                    print the DNS records a domain needs\n"
		"  version                            print the version\n"
		"  help                               print this text\n"
		"\n"
		"Options:\n"
		"  -c, --config FILE   configuration file; without one, the development setup is\n"
		"                      used: loopback only, data in ./postbote-data, domain\n"
		"                      localhost, ports 2025 2587 2465 2110 2995 2143 2993\n"
		"  --trace             log every session's dialogue (secrets masked, message\n"
		"                      content summarised); --trace=full shows content too\n"
		"  --password-stdin    (user add, user passwd) read the password from standard\n"
		"                      input instead of prompting\n"
		"\n"
		"Exit codes: 0 ok, 64 usage error, 65 bad input, 67 no such user, 69 a port\n"
		"cannot be bound, 70 internal error, 73 the data directory cannot be created,\n"
		"74 database error, 78 configuration error.\n");
}

struct options {
	const char *config_path;
	int trace;          /* -1 = as configured */
};

/* Parse the options after the command name. Returns 0, or -1 after printing
 * what is wrong. */
static int parse_options(int argc, char **argv, bool allow_trace, struct options *o)
{
	o->config_path = NULL;
	o->trace = -1;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
			if (i + 1 >= argc) {
				fprintf(stderr, "postbote: %s needs a file name\n", a);
				return -1;
			}
			o->config_path = argv[++i];
		} else if (strncmp(a, "--config=", 9) == 0) {
			o->config_path = a + 9;
		} else if (allow_trace && strcmp(a, "--trace") == 0) {
			o->trace = TRACE_ON;
		} else if (allow_trace && strcmp(a, "--trace=full") == 0) {
			o->trace = TRACE_FULL;
		} else if (allow_trace && strcmp(a, "--trace=on") == 0) {
			o->trace = TRACE_ON;
		} else if (allow_trace && strcmp(a, "--trace=off") == 0) {
			o->trace = TRACE_OFF;
		} else {
			fprintf(stderr, "postbote: unknown option %s\n", a);
			return -1;
		}
	}
	return 0;
}

static int load_config(const struct options *o, struct config *cfg)
{
	char *error = NULL;

	if (o->config_path == NULL) {
		config_dev_setup(cfg);
		return 0;
	}
	if (config_load(o->config_path, cfg, &error) < 0) {
		fprintf(stderr, "postbote: %s\n", error);
		free(error);
		return -1;
	}
	return 0;
}

static int cmd_check_config(int argc, char **argv)
{
	struct options o;
	struct config cfg;

	if (parse_options(argc, argv, false, &o) < 0) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (load_config(&o, &cfg) < 0)
		return EXIT_CONFIG;
	printf("%s: configuration OK (%zu listener%s, %zu domain%s)\n",
	       o.config_path ? o.config_path : "development setup", cfg.n_listens,
	       cfg.n_listens == 1 ? "" : "s", cfg.n_domains, cfg.n_domains == 1 ? "" : "s");
	config_free(&cfg);
	return 0;
}

static void print_dev_hint(const struct config *cfg)
{
	fprintf(stderr,
		"\npostbote development server for domain %s, data in %s\n"
		"  SMTP 127.0.0.1:2025  submission :2587 (STARTTLS)  submissions :2465 (TLS)\n"
		"  POP3 :2110 (STLS)  POP3S :2995   IMAP :2143 (STARTTLS)  IMAPS :2993\n"
		"  Add a first user next to it with:  postbote user add alice@localhost\n\n",
		cfg->domains && cfg->n_domains ? cfg->domains[0] : "localhost", cfg->data_dir);
}

static int cmd_serve(int argc, char **argv)
{
	struct options o;
	struct config *cfg = xcalloc(1, sizeof(*cfg));
	struct server *srv = NULL;
	char *error = NULL;
	int exit_code = 0;

	if (parse_options(argc, argv, true, &o) < 0) {
		free(cfg);
		usage(stderr);
		return EXIT_USAGE;
	}
	if (load_config(&o, cfg) < 0) {
		free(cfg);
		return EXIT_CONFIG;
	}
	if (log_setup(cfg->log_level, cfg->log_syslog, cfg->log_facility) < 0) {
		fprintf(stderr, "postbote: unknown syslog facility %s\n", cfg->log_facility);
		config_free(cfg);
		free(cfg);
		return EXIT_CONFIG;
	}
	trace_set_mode(o.trace >= 0 ? (enum trace_mode)o.trace : cfg->trace);
	if (o.trace >= 0)
		cfg->trace = (enum trace_mode)o.trace;
	bool dev = cfg->dev_setup;

	uv_loop_t *loop = uv_default_loop();
	int rc = server_new(loop, cfg, &srv, &error, &exit_code);
	if (rc == 0)
		rc = server_drop_privileges(srv, &error);
	if (rc == 0 && server_open_store(srv, &error) < 0) {
		exit_code = EXIT_CANTCREAT;
		rc = -1;
	}
	if (rc < 0) {
		log_error("%s", error);
		fprintf(stderr, "postbote: %s\n", error);
		free(error);
		server_free(&srv);
		uv_loop_close(loop);
		return exit_code ? exit_code : EXIT_SOFTWARE;
	}
	log_info("postbote %s ready", POSTBOTE_VERSION);
	if (dev)
		print_dev_hint(srv->cfg);
	server_run(srv);
	server_free(&srv);
	uv_loop_close(loop);
	log_info("postbote stopped");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	const char *cmd = argv[1];
	if (strcmp(cmd, "serve") == 0)
		return cmd_serve(argc - 2, argv + 2);
	if (strcmp(cmd, "check-config") == 0)
		return cmd_check_config(argc - 2, argv + 2);
	if (strcmp(cmd, "user") == 0)
		return cli_user_main(argc - 1, argv + 1);
	if (strcmp(cmd, "alias") == 0)
		return cli_alias_main(argc - 1, argv + 1);
	if (strcmp(cmd, "quota") == 0)
		return cli_quota_main(argc - 1, argv + 1);
	if (strcmp(cmd, "queue") == 0)
		return cli_queue_main(argc - 1, argv + 1);
	if (strcmp(cmd, "reindex") == 0)
		return cli_reindex_main(argc - 1, argv + 1);
	if (strcmp(cmd, "dkim") == 0)
		return cli_dkim_main(argc - 1, argv + 1);
	if (strcmp(cmd, "dns") == 0)
		return cli_dns_main(argc - 1, argv + 1);
	if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
		printf("postbote %s\n", POSTBOTE_VERSION);
		return 0;
	}
	if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "postbote: unknown command %s\n", cmd);
	usage(stderr);
	return EXIT_USAGE;
}
