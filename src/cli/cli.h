#ifndef POSTBOTE_CLI_H
#define POSTBOTE_CLI_H

/*
 * The admin subcommands (user, alias, quota, reindex). Each is an ordinary
 * blocking program: it opens the configuration and the LMDB environment,
 * does its work in short transactions (LMDB lets it run beside a live
 * server), and returns a sysexits(3) code.
 */

#include <stdbool.h>
#include <stddef.h>

#include "core/config.h"
#include "core/db.h"

#define CLI_EXIT_OK 0
#define CLI_EXIT_USAGE 64
#define CLI_EXIT_DATAERR 65     /* bad input: malformed address, unknown user */
#define CLI_EXIT_NOUSER 67
#define CLI_EXIT_UNAVAILABLE 69
#define CLI_EXIT_SOFTWARE 70
#define CLI_EXIT_CANTCREAT 73
#define CLI_EXIT_IOERR 74
#define CLI_EXIT_CONFIG 78

struct cli {
	struct config cfg;
	struct db *db;
	int argc;                  /* arguments left after the common options */
	char **argv;
	bool password_stdin;       /* --password-stdin was given */
};

/* Parse the common options (-c FILE, --config FILE, --password-stdin) out
 * of argv, load the config (or the development setup), and open the
 * database when need_db. Returns 0, or an exit code after printing why. */
int cli_open(int argc, char **argv, bool need_db, struct cli *cli);
void cli_close(struct cli *cli);

/* Read a password: from standard input (one line) with --password-stdin,
 * else prompt twice on the terminal without echo when confirm. Returns 0 and
 * a string the caller wipes with explicit_bzero and frees, or -1. */
int cli_read_password(const struct cli *cli, const char *prompt, bool confirm, char **password_r);

/* The subcommands: argv[0] is the subcommand's own name ("user", ...). */
int cli_user_main(int argc, char **argv);
int cli_alias_main(int argc, char **argv);
int cli_quota_main(int argc, char **argv);
int cli_reindex_main(int argc, char **argv);
int cli_dkim_main(int argc, char **argv);   /* cli_dkim.c */
int cli_dns_main(int argc, char **argv);    /* cli_dns.c */
int cli_queue_main(int argc, char **argv);

#endif
