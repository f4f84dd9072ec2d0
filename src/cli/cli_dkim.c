/*
 * postbote dkim keygen DOMAIN [--selector S] [--type rsa|ed25519] [--bits N] [--force]
 * postbote dkim list [DOMAIN...]
 * postbote dkim sign [DOMAIN] [--selector S] [--timestamp T] < message > signed
 *
 * keygen writes DATA/dkim/DOMAIN/SELECTOR.key and prints the TXT record
 * to publish. The default selector names the type and the month
 * ("rsa-202406", "ed25519-202406"), so a domain can have one key of each
 * type and a key made later for a rotation gets a new name; an existing
 * key is never replaced without --force.
 *
 * sign prints the message from standard input with DKIM-Signature fields
 * in front, one per key (or only the --selector one): what the server
 * does to outgoing mail, for checking a setup by hand and for tests.
 */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#include "cli/cli.h"
#include "core/buf.h"
#include "core/xalloc.h"
#include "smtp/dkim_keys.h"
#include "smtp/dkim_sign.h"

#define CLI_DKIM_TTL 3600

static void cli_dkim_usage(void)
{
	fprintf(stderr,
		"usage: postbote dkim keygen DOMAIN [--selector S] [--type rsa|ed25519] [--bits N] [--force]\n"
		"       postbote dkim list [DOMAIN...]\n"
		"       postbote dkim sign [DOMAIN] [--selector S] [--timestamp T] < MESSAGE\n"
		"\n"
		"keygen   make a signing key in DATA/dkim/DOMAIN/SELECTOR.key and print the DNS\n"
		"         TXT record that publishes it. --type rsa (default; 2048 bits, --bits\n"
		"         1024 to 4096) or ed25519 (RFC 8463). The default selector is the type\n"
		"         and the month, e.g. rsa-202406. An existing key is kept unless --force.\n"
		"list     show the keys of the local domains (or of the domains named).\n"
		"sign     print MESSAGE with DKIM-Signature fields in front, signed with every\n"
		"         key of DOMAIN (default: the domain of its From address), or only the\n"
		"         --selector one; --timestamp sets t= (seconds since 1970).\n"
		"\n"
		"postbote signs outgoing mail from a local domain with every key in its folder.\n"
		"Publish a key's record (postbote dns DOMAIN prints them all) before the server\n"
		"starts using it. Takes -c FILE (default: the development setup).\n");
}

static void cli_dkim_lower(char *s)
{
	for (; *s; s++) {
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s + ('a' - 'A'));
	}
}

static bool cli_dkim_is_local(const struct config *cfg, const char *domain)
{
	for (size_t i = 0; i < cfg->n_domains; i++) {
		if (strcmp(cfg->domains[i], domain) == 0)
			return true;
	}
	return false;
}

/* Print the zone-file line that publishes key for domain. */
static int cli_dkim_print_record(FILE *out, const char *domain, const struct dkim_key *key)
{
	char *value = dkim_key_txt_value(key);

	if (value == NULL) {
		fprintf(stderr, "postbote: cannot encode the public key of %s\n", key->selector);
		return -1;
	}
	char *strings = dkim_txt_zone_strings(value);
	fprintf(out, "%s._domainkey.%s.\t%d\tIN\tTXT\t%s\n", key->selector, domain, CLI_DKIM_TTL, strings);
	free(strings);
	free(value);
	return 0;
}

/* Fetch an option's value: "--name VALUE" or "--name=VALUE". */
static const char *cli_dkim_optval(int argc, char **argv, int *i, const char *name)
{
	size_t n = strlen(name);
	const char *a = argv[*i];

	if (strncmp(a, name, n) != 0)
		return NULL;
	if (a[n] == '=')
		return a + n + 1;
	if (a[n] != '\0')
		return NULL;
	if (*i + 1 >= argc)
		return "";
	return argv[++*i];
}

/* ---- keygen ---- */

static int cli_dkim_keygen(struct cli *cli)
{
	const char *domain_arg = NULL, *selector = NULL, *type_name = "rsa";
	unsigned bits = 0;
	bool force = false;
	char default_selector[64];

	for (int i = 1; i < cli->argc; i++) {
		const char *a = cli->argv[i], *v;
		if ((v = cli_dkim_optval(cli->argc, cli->argv, &i, "--selector")) != NULL) {
			selector = v;
		} else if ((v = cli_dkim_optval(cli->argc, cli->argv, &i, "--type")) != NULL) {
			type_name = v;
		} else if ((v = cli_dkim_optval(cli->argc, cli->argv, &i, "--bits")) != NULL) {
			char *end;
			unsigned long b = strtoul(v, &end, 10);
			if (*v == '\0' || *end != '\0' || b < DKIM_RSA_BITS_MIN || b > DKIM_RSA_BITS_MAX) {
				fprintf(stderr, "postbote: --bits takes %d to %d\n", DKIM_RSA_BITS_MIN,
					DKIM_RSA_BITS_MAX);
				return CLI_EXIT_USAGE;
			}
			bits = (unsigned)b;
		} else if (strcmp(a, "--force") == 0) {
			force = true;
		} else if (a[0] == '-' || domain_arg != NULL) {
			cli_dkim_usage();
			return CLI_EXIT_USAGE;
		} else {
			domain_arg = a;
		}
	}
	enum dkim_key_type type;
	if (domain_arg == NULL) {
		cli_dkim_usage();
		return CLI_EXIT_USAGE;
	}
	if (dkim_key_type_parse(type_name, &type) < 0) {
		fprintf(stderr, "postbote: --type is rsa or ed25519, not \"%s\"\n", type_name);
		return CLI_EXIT_USAGE;
	}
	if (bits != 0 && type != DKIM_KEY_RSA) {
		fprintf(stderr, "postbote: --bits is for RSA keys (Ed25519 keys have one size)\n");
		return CLI_EXIT_USAGE;
	}
	if (!dkim_domain_valid(domain_arg)) {
		fprintf(stderr, "postbote: \"%s\" is not a domain name\n", domain_arg);
		return CLI_EXIT_DATAERR;
	}
	if (selector == NULL) {
		time_t now = time(NULL);
		struct tm tm;
		gmtime_r(&now, &tm);
		snprintf(default_selector, sizeof(default_selector), "%s-%04d%02d", dkim_key_type_name(type),
			 tm.tm_year + 1900, tm.tm_mon + 1);
		selector = default_selector;
	}
	if (!dkim_selector_valid(selector)) {
		fprintf(stderr, "postbote: \"%s\" is not a selector (letters, digits, '-' and '.', "
			"at most 63 characters)\n", selector);
		return CLI_EXIT_DATAERR;
	}

	char *domain = xstrdup(domain_arg);
	cli_dkim_lower(domain);
	if (!cli_dkim_is_local(&cli->cfg, domain))
		fprintf(stderr, "postbote: note: %s is not a local domain in this configuration; "
			"its key is used once it is\n", domain);

	/* Root making a key for a server that drops privileges: the server
	 * must be able to read it (it also chowns DATA at start). */
	uid_t uid = (uid_t)-1;
	gid_t gid = (gid_t)-1;
	if (geteuid() == 0 && cli->cfg.run_user != NULL && cli->cfg.run_user[0] != '\0') {
		struct passwd *pw = getpwnam(cli->cfg.run_user);
		if (pw != NULL) {
			uid = pw->pw_uid;
			gid = pw->pw_gid;
		}
	}

	struct dkim_key key;
	char *error = NULL;
	char *path = dkim_key_path(cli->cfg.data_dir, domain, selector);
	int ret = CLI_EXIT_OK;
	bool exists = false;

	if (!force && access(path, F_OK) == 0) {
		fprintf(stderr, "postbote: %s exists already; choose another --selector, or --force "
			"to replace it (mail signed with the old key then fails to verify)\n", path);
		free(path);
		free(domain);
		return CLI_EXIT_CANTCREAT;
	}
	if (dkim_key_generate(type, bits, selector, &key, &error) < 0) {
		fprintf(stderr, "postbote: %s\n", error);
		free(error);
		free(path);
		free(domain);
		return CLI_EXIT_SOFTWARE;
	}
	if (dkim_key_write(&key, path, force, uid, gid, &exists, &error) < 0) {
		fprintf(stderr, "postbote: %s\n", error);
		free(error);
		ret = exists ? CLI_EXIT_CANTCREAT : CLI_EXIT_IOERR;
		goto out;
	}
	printf("; DKIM key \"%s\" for %s (%s, %u bits), private key in %s\n", selector, domain,
	       dkim_key_type_name(type), key.bits, path);
	printf("; Publish this TXT record (postbote dns %s prints every record the domain needs).\n",
	       domain);
	printf("; postbote signs mail from %s with every key in that folder, from the next start\n"
	       "; (or reload) of the server: publish the record first.\n", domain);
	if (type == DKIM_KEY_ED25519)
		printf("; Not every receiver checks Ed25519 signatures yet (RFC 8463): keep an RSA key too.\n");
	if (cli_dkim_print_record(stdout, domain, &key) < 0) {
		ret = CLI_EXIT_SOFTWARE;
		goto out;
	}
	char *value = dkim_key_txt_value(&key);
	printf("; The same value in one piece, for DNS web forms that split it themselves:\n; %s\n",
	       value ? value : "");
	free(value);
out:
	dkim_key_free(&key);
	free(path);
	free(domain);
	return ret;
}

/* ---- list ---- */

static int cli_dkim_list_domain(const struct cli *cli, const char *domain, bool quiet_empty)
{
	struct dkim_keyset set;
	char *error = NULL;

	if (dkim_keyset_load(cli->cfg.data_dir, domain, &set, &error) < 0) {
		fprintf(stderr, "postbote: %s\n", error);
		free(error);
		return CLI_EXIT_DATAERR;
	}
	if (set.n_keys == 0 && !quiet_empty)
		printf("%s: no DKIM key (make one with: postbote dkim keygen %s)\n", domain, domain);
	for (size_t i = 0; i < set.n_keys; i++) {
		const struct dkim_key *k = &set.keys[i];
		char *path = dkim_key_path(cli->cfg.data_dir, set.domain, k->selector);
		printf("%s\t%s\t%s\t%u\t%s\n", set.domain, k->selector, dkim_key_type_name(k->type), k->bits,
		       path);
		free(path);
	}
	dkim_keyset_free(&set);
	return CLI_EXIT_OK;
}

static int cli_dkim_list(struct cli *cli)
{
	int ret = CLI_EXIT_OK;

	if (cli->argc > 1) {
		for (int i = 1; i < cli->argc; i++) {
			char *d = xstrdup(cli->argv[i]);
			cli_dkim_lower(d);
			if (!dkim_domain_valid(d)) {
				fprintf(stderr, "postbote: \"%s\" is not a domain name\n", cli->argv[i]);
				ret = CLI_EXIT_DATAERR;
			} else {
				int r = cli_dkim_list_domain(cli, d, false);
				if (r != CLI_EXIT_OK)
					ret = r;
			}
			free(d);
		}
		return ret;
	}
	for (size_t i = 0; i < cli->cfg.n_domains; i++) {
		int r = cli_dkim_list_domain(cli, cli->cfg.domains[i], false);
		if (r != CLI_EXIT_OK)
			ret = r;
	}
	/* Keys of domains that are not (or no longer) local. */
	char *dir = xasprintf("%s/dkim", cli->cfg.data_dir);
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d != NULL && (de = readdir(d)) != NULL) {
		if (!dkim_domain_valid(de->d_name) || cli_dkim_is_local(&cli->cfg, de->d_name))
			continue;
		int r = cli_dkim_list_domain(cli, de->d_name, true);
		if (r != CLI_EXIT_OK)
			ret = r;
	}
	if (d != NULL)
		closedir(d);
	free(dir);
	return ret;
}

/* ---- sign ---- */

static int cli_dkim_sign(struct cli *cli)
{
	const char *domain_arg = NULL, *selector = NULL;
	time_t t = time(NULL);

	for (int i = 1; i < cli->argc; i++) {
		const char *a = cli->argv[i], *v;
		if ((v = cli_dkim_optval(cli->argc, cli->argv, &i, "--selector")) != NULL) {
			selector = v;
		} else if ((v = cli_dkim_optval(cli->argc, cli->argv, &i, "--timestamp")) != NULL) {
			char *end;
			errno = 0;
			long long ts = strtoll(v, &end, 10);
			if (*v == '\0' || *end != '\0' || errno != 0 || ts < 0) {
				fprintf(stderr, "postbote: --timestamp takes seconds since 1970\n");
				return CLI_EXIT_USAGE;
			}
			t = (time_t)ts;
		} else if (a[0] == '-' || domain_arg != NULL) {
			cli_dkim_usage();
			return CLI_EXIT_USAGE;
		} else {
			domain_arg = a;
		}
	}

	/* The message is read whole: it is printed after the fields, which
	 * are known only at its end. Bounded like SMTP's DATA. */
	struct buf msg;
	struct dkim_signer *s = dkim_signer_new(NULL);
	char chunk[64 * 1024];
	int ret = CLI_EXIT_OK;
	char *domain = NULL, *from_domain = NULL, *fields = NULL, *error = NULL;
	struct dkim_keyset set = { 0 };

	buf_init(&msg, cli->cfg.message_size_max);
	for (;;) {
		ssize_t n = read(STDIN_FILENO, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "postbote: reading the message: %s\n", strerror(errno));
			ret = CLI_EXIT_IOERR;
			goto out;
		}
		if (n == 0)
			break;
		if (buf_append(&msg, chunk, (size_t)n) < 0) {
			fprintf(stderr, "postbote: the message is larger than message_size_max (%zu octets)\n",
				cli->cfg.message_size_max);
			ret = CLI_EXIT_DATAERR;
			goto out;
		}
		dkim_signer_feed(s, chunk, (size_t)n);
	}
	dkim_signer_end(s);
	from_domain = dkim_signer_from_domain(s);
	if (domain_arg != NULL) {
		domain = xstrdup(domain_arg);
		cli_dkim_lower(domain);
		if (!dkim_domain_valid(domain)) {
			fprintf(stderr, "postbote: \"%s\" is not a domain name\n", domain_arg);
			ret = CLI_EXIT_DATAERR;
			goto out;
		}
		if (from_domain != NULL && strcmp(from_domain, domain) != 0)
			fprintf(stderr, "postbote: note: signing for %s, but the From address is in %s "
				"(DMARC wants them to match)\n", domain, from_domain);
	} else if (from_domain != NULL) {
		domain = xstrdup(from_domain);
	} else {
		fprintf(stderr, "postbote: the message has no single From address to take the domain "
			"from; name the DOMAIN\n");
		ret = CLI_EXIT_DATAERR;
		goto out;
	}
	if (dkim_keyset_load(cli->cfg.data_dir, domain, &set, &error) < 0) {
		fprintf(stderr, "postbote: %s\n", error);
		ret = CLI_EXIT_DATAERR;
		goto out;
	}
	const struct dkim_key *keys = set.keys;
	size_t n_keys = set.n_keys;
	if (selector != NULL) {
		n_keys = 0;
		for (size_t i = 0; i < set.n_keys; i++) {
			if (strcmp(set.keys[i].selector, selector) == 0) {
				keys = &set.keys[i];
				n_keys = 1;
			}
		}
	}
	if (n_keys == 0) {
		if (selector != NULL)
			fprintf(stderr, "postbote: %s has no DKIM key %s\n", domain, selector);
		else
			fprintf(stderr, "postbote: %s has no DKIM key (make one with: postbote dkim keygen %s)\n",
				domain, domain);
		ret = CLI_EXIT_DATAERR;
		goto out;
	}
	if (n_keys > DKIM_SIGN_KEYS_MAX)
		n_keys = DKIM_SIGN_KEYS_MAX;
	/* The fields take the line ends of the message. */
	const char *text = buf_ptr(&msg);
	const char *lf = memchr(text, '\n', buf_len(&msg));
	const char *eol = lf != NULL && lf > text && lf[-1] == '\r' ? "\r\n" : "\n";
	if (dkim_signer_finish(s, domain, keys, n_keys, t, eol, &fields, &error) < 0) {
		fprintf(stderr, "postbote: cannot sign: %s\n", error);
		ret = CLI_EXIT_DATAERR;
		goto out;
	}
	if (fwrite(fields, 1, strlen(fields), stdout) != strlen(fields) ||
	    fwrite(text, 1, buf_len(&msg), stdout) != buf_len(&msg) || fflush(stdout) != 0) {
		fprintf(stderr, "postbote: writing the message: %s\n", strerror(errno));
		ret = CLI_EXIT_IOERR;
	}
out:
	free(error);
	free(fields);
	free(domain);
	free(from_domain);
	dkim_keyset_free(&set);
	dkim_signer_free(&s);
	buf_free(&msg);
	return ret;
}

int cli_dkim_main(int argc, char **argv)
{
	struct cli cli;
	int ret = cli_open(argc, argv, false, &cli);

	if (ret != 0) {
		if (ret == CLI_EXIT_USAGE)
			cli_dkim_usage();
		return ret;
	}
	const char *action = cli.argc > 0 ? cli.argv[0] : NULL;
	if (action == NULL) {
		cli_dkim_usage();
		ret = CLI_EXIT_USAGE;
	} else if (strcmp(action, "keygen") == 0) {
		ret = cli_dkim_keygen(&cli);
	} else if (strcmp(action, "list") == 0) {
		ret = cli_dkim_list(&cli);
	} else if (strcmp(action, "sign") == 0) {
		ret = cli_dkim_sign(&cli);
	} else if (strcmp(action, "help") == 0 || strcmp(action, "--help") == 0 || strcmp(action, "-h") == 0) {
		cli_dkim_usage();
		ret = CLI_EXIT_OK;
	} else {
		fprintf(stderr, "postbote: unknown action \"dkim %s\"\n", action);
		cli_dkim_usage();
		ret = CLI_EXIT_USAGE;
	}
	cli_close(&cli);
	return ret;
}
