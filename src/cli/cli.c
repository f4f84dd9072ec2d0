/*
 * Common ground of the admin subcommands: the options every one of them
 * takes, the configuration and database, and reading a password.
 *
 * A password never passes through stdio buffers or a growing heap buffer:
 * it is read with read(2) one byte at a time into a fixed buffer that is
 * wiped afterwards. On a terminal, echo is switched off for the prompt and
 * restored even when the user interrupts with ^C.
 */
#include "cli/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>
#include <sys/stat.h>

#include "core/xalloc.h"

/* libxcrypt refuses longer passphrases (CRYPT_MAX_PASSPHRASE_SIZE - 1). */
#define CLI_PASSWORD_MAX 511

/* mkdir -p for the data directory (DATA/postbote.mdb is made by db_open). */
static int cli_mkdirs(const char *path)
{
	char *p = xstrdup(path);
	int ret = 0;

	for (char *s = p + 1; ; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char c = *s;
		*s = '\0';
		if (mkdir(p, 0750) < 0 && errno != EEXIST) {
			ret = -1;
			break;
		}
		*s = c;
		if (c == '\0')
			break;
	}
	free(p);
	return ret;
}

int cli_open(int argc, char **argv, bool need_db, struct cli *cli)
{
	const char *config_path = NULL;
	char *error = NULL;
	bool options_done = false;

	memset(cli, 0, sizeof(*cli));
	cli->argv = xcalloc((size_t)(argc > 0 ? argc : 1) + 1, sizeof(*cli->argv));
	/* argv[0] is the subcommand's name; options may come anywhere after. */
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (options_done) {
			cli->argv[cli->argc++] = argv[i];
		} else if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
			if (i + 1 >= argc) {
				fprintf(stderr, "postbote: %s needs a file name\n", a);
				goto usage;
			}
			config_path = argv[++i];
		} else if (strncmp(a, "--config=", 9) == 0) {
			config_path = a + 9;
		} else if (strcmp(a, "--password-stdin") == 0) {
			cli->password_stdin = true;
		} else {
			if (strcmp(a, "--") == 0)
				options_done = true;
			cli->argv[cli->argc++] = argv[i];
		}
	}

	if (config_path == NULL) {
		config_dev_setup(&cli->cfg);
	} else if (config_load(config_path, &cli->cfg, &error) < 0) {
		fprintf(stderr, "postbote: %s\n", error);
		free(error);
		free(cli->argv);
		memset(cli, 0, sizeof(*cli));
		return CLI_EXIT_CONFIG;
	}
	if (!need_db)
		return 0;
	if (cli_mkdirs(cli->cfg.data_dir) < 0) {
		fprintf(stderr, "postbote: cannot create the data directory %s: %s\n", cli->cfg.data_dir,
			strerror(errno));
		cli_close(cli);
		return CLI_EXIT_CANTCREAT;
	}
	if (db_open(cli->cfg.data_dir, cli->cfg.index_map_size, &cli->db, &error) < 0) {
		fprintf(stderr, "postbote: cannot open the database: %s\n", error);
		free(error);
		cli_close(cli);
		return CLI_EXIT_IOERR;
	}
	return 0;
usage:
	free(cli->argv);
	memset(cli, 0, sizeof(*cli));
	return CLI_EXIT_USAGE;
}

void cli_close(struct cli *cli)
{
	db_close(&cli->db);
	config_free(&cli->cfg);
	free(cli->argv);
	memset(cli, 0, sizeof(*cli));
}

/* ---- Passwords ---- */

/* Read one line from fd into buf (size bytes) without the line end.
 * Returns its length, -1 on a read error or EOF before any byte, -2 when
 * it is too long (the rest of the line is consumed). */
static ssize_t cli_read_line(int fd, char *buf, size_t size)
{
	size_t n = 0;
	bool too_long = false, any = false;
	char c;

	for (;;) {
		ssize_t r = read(fd, &c, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		any = true;
		if (c == '\n')
			break;
		if (n + 1 >= size)
			too_long = true;
		else
			buf[n++] = c;
	}
	c = 0;
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	buf[n] = '\0';
	if (!any)
		return -1;
	return too_long ? -2 : (ssize_t)n;
}

static int cli_tty_fd = -1;
static struct termios cli_tty_saved;
static struct sigaction cli_old_int, cli_old_term, cli_old_hup;

static void cli_tty_restore(void)
{
	if (cli_tty_fd >= 0)
		tcsetattr(cli_tty_fd, TCSAFLUSH, &cli_tty_saved);
}

static void cli_tty_signal(int sig)
{
	cli_tty_restore();
	/* Back to the previous disposition, then die of the same signal. */
	sigaction(SIGINT, &cli_old_int, NULL);
	sigaction(SIGTERM, &cli_old_term, NULL);
	sigaction(SIGHUP, &cli_old_hup, NULL);
	raise(sig);
}

/* Prompt on the terminal with echo off; 0 and the line in buf, or -1. */
static int cli_tty_ask(int fd, const char *prompt, char *buf, size_t size)
{
	struct termios t;
	struct sigaction sa;

	if (tcgetattr(fd, &cli_tty_saved) < 0) {
		fprintf(stderr, "postbote: cannot switch off echo on the terminal: %s\n", strerror(errno));
		return -1;
	}
	cli_tty_fd = fd;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = cli_tty_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &cli_old_int);
	sigaction(SIGTERM, &sa, &cli_old_term);
	sigaction(SIGHUP, &sa, &cli_old_hup);
	t = cli_tty_saved;
	t.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK | ECHONL);
	t.c_lflag |= ICANON;
	tcsetattr(fd, TCSAFLUSH, &t);
	if (write(fd, prompt, strlen(prompt)) < 0) {
		/* the prompt is a courtesy */
	}
	ssize_t n = cli_read_line(fd, buf, size);
	cli_tty_restore();
	cli_tty_fd = -1;
	sigaction(SIGINT, &cli_old_int, NULL);
	sigaction(SIGTERM, &cli_old_term, NULL);
	sigaction(SIGHUP, &cli_old_hup, NULL);
	if (write(fd, "\n", 1) < 0) {
		/* nothing to do */
	}
	if (n == -2) {
		fprintf(stderr, "postbote: password too long (at most %d octets)\n", CLI_PASSWORD_MAX);
		return -1;
	}
	if (n < 0) {
		fprintf(stderr, "postbote: no password given\n");
		return -1;
	}
	return 0;
}

int cli_read_password(const struct cli *cli, const char *prompt, bool confirm, char **password_r)
{
	char first[CLI_PASSWORD_MAX + 2];
	char second[CLI_PASSWORD_MAX + 2];
	int ret = -1;

	*password_r = NULL;
	if (cli->password_stdin) {
		ssize_t n = cli_read_line(STDIN_FILENO, first, sizeof(first));
		if (n == -2)
			fprintf(stderr, "postbote: password too long (at most %d octets)\n", CLI_PASSWORD_MAX);
		else if (n < 0)
			fprintf(stderr, "postbote: no password on standard input\n");
		else
			ret = 0;
	} else {
		int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
		if (fd < 0) {
			fprintf(stderr, "postbote: no terminal to ask for the password (%s); "
				"give it on standard input with --password-stdin\n", strerror(errno));
			return -1;
		}
		if (cli_tty_ask(fd, prompt, first, sizeof(first)) == 0) {
			if (!confirm) {
				ret = 0;
			} else if (cli_tty_ask(fd, "Retype the password: ", second, sizeof(second)) == 0) {
				if (strcmp(first, second) == 0)
					ret = 0;
				else
					fprintf(stderr, "postbote: the passwords do not match\n");
			}
		}
		close(fd);
	}
	if (ret == 0 && first[0] == '\0') {
		fprintf(stderr, "postbote: empty password\n");
		ret = -1;
	}
	if (ret == 0)
		*password_r = xstrdup(first);
	explicit_bzero(first, sizeof(first));
	explicit_bzero(second, sizeof(second));
	return ret;
}
