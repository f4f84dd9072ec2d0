/*
 * postbote dns [DOMAIN...]
 *
 * Print, in zone-file syntax, every DNS record a local domain needs for
 * this server: MX, SPF, one DKIM TXT record per key in DATA/dkim/DOMAIN/,
 * a suggested DMARC policy, the autoconfig/autodiscover names, and the
 * RFC 6186 SRV records that let mail clients find the submission, IMAP and
 * POP3 ports. Without DOMAIN: every local domain. Explanations are zone
 * file comments (';'), so the output can be pasted into a zone as it is.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/xalloc.h"
#include "smtp/dkim_keys.h"

#define CLI_DNS_TTL 3600

static void cli_dns_usage(void)
{
	fprintf(stderr,
		"usage: postbote dns [DOMAIN...]\n"
		"\n"
		"Print the DNS records a domain needs (MX, SPF, DKIM, DMARC, autoconfig and\n"
		"the SRV records of RFC 6186) in zone-file syntax; without DOMAIN, for every\n"
		"local domain. The MX and SRV targets are the configured hostname, the SRV\n"
		"ports those of the configured listeners. Takes -c FILE.\n");
}

/* A public address worth an A/AAAA record: not a wildcard, loopback,
 * private, link-local or shared (CGNAT) address. */
static bool cli_dns_public(const struct config_listen *l, int *family_r)
{
	unsigned char a[16];

	if (inet_pton(AF_INET, l->host, a) == 1) {
		*family_r = AF_INET;
		return !(a[0] == 0 || a[0] == 10 || a[0] == 127 || (a[0] == 169 && a[1] == 254) ||
			 (a[0] == 172 && (a[1] & 0xf0) == 16) || (a[0] == 192 && a[1] == 168) ||
			 (a[0] == 100 && (a[1] & 0xc0) == 64) || a[0] >= 224);
	}
	if (inet_pton(AF_INET6, l->host, a) == 1) {
		static const unsigned char zero[16];
		*family_r = AF_INET6;
		if (memcmp(a, zero, 15) == 0 && (a[15] == 0 || a[15] == 1))
			return false;                     /* :: and ::1 */
		if ((a[0] & 0xfe) == 0xfc || (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) || a[0] == 0xff)
			return false;                     /* ULA, link-local, multicast */
		return true;
	}
	return false;
}

static void cli_dns_addresses(const struct config *cfg)
{
	bool any = false;

	for (size_t i = 0; i < cfg->n_listens; i++) {
		int family;
		bool seen = false;
		if (!cli_dns_public(&cfg->listens[i], &family))
			continue;
		for (size_t j = 0; j < i; j++)
			seen |= strcmp(cfg->listens[j].host, cfg->listens[i].host) == 0;
		if (seen)
			continue;
		printf("%s.\t%d\tIN\t%s\t%s\n", cfg->hostname, CLI_DNS_TTL, family == AF_INET ? "A" : "AAAA",
		       cfg->listens[i].host);
		any = true;
	}
	if (!any)
		printf("; %s. needs A and/or AAAA records with this server's public addresses\n"
		       "; (the listeners bind wildcard or private addresses, so they are not known here).\n",
		       cfg->hostname);
	printf("; The PTR record of each of those addresses should name %s.\n", cfg->hostname);
}

/* The port of the first listener of kind, or 0. */
static int cli_dns_port(const struct config *cfg, enum listener_kind kind)
{
	for (size_t i = 0; i < cfg->n_listens; i++) {
		if (cfg->listens[i].kind == kind)
			return cfg->listens[i].port;
	}
	return 0;
}

static int cli_dns_domain(const struct cli *cli, const char *domain)
{
	const struct config *cfg = &cli->cfg;
	const char *host = cfg->hostname;
	int ret = CLI_EXIT_OK;

	printf("; ---- DNS records for %s (postbote on %s) ----\n", domain, host);
	bool local = false;
	for (size_t i = 0; i < cfg->n_domains; i++)
		local |= strcmp(cfg->domains[i], domain) == 0;
	if (!local)
		printf("; Note: %s is not a local domain in this configuration.\n", domain);
	if (strchr(host, '.') == NULL)
		printf("; Note: hostname is \"%s\"; set hostname in the configuration to the server's\n"
		       "; public name (the name of its certificate) before publishing these.\n", host);

	printf("\n; Mail for %s is delivered to this host (RFC 5321 5.1).\n", domain);
	printf("%s.\t%d\tIN\tMX\t10 %s.\n", domain, CLI_DNS_TTL, host);
	cli_dns_addresses(cfg);
	int smtp_port = cli_dns_port(cfg, LISTENER_SMTP);
	if (smtp_port != 25)
		printf("; Note: other servers deliver to port 25 only; %s.\n",
		       smtp_port == 0 ? "no smtp listener is configured" : "the smtp listener is elsewhere");

	printf("\n; SPF (RFC 7208): mail from %s comes only from its MX hosts.\n", domain);
	printf("%s.\t%d\tIN\tTXT\t\"v=spf1 mx -all\"\n", domain, CLI_DNS_TTL);

	printf("\n; DKIM (RFC 6376): one record per key in %s/dkim/%s/.\n", cfg->data_dir, domain);
	struct dkim_keyset set;
	char *error = NULL;
	if (dkim_keyset_load(cfg->data_dir, domain, &set, &error) < 0) {
		printf("; Cannot read the keys: %s\n", error);
		fprintf(stderr, "postbote: %s\n", error);
		free(error);
		ret = CLI_EXIT_DATAERR;
	} else {
		if (set.n_keys == 0)
			printf("; No key yet, so mail from %s goes out unsigned. Make one with\n"
			       ";   postbote dkim keygen %s                  (RSA, 2048 bits)\n"
			       ";   postbote dkim keygen %s --type ed25519   (RFC 8463, in addition)\n"
			       "; and run postbote dns again.\n", domain, domain, domain);
		for (size_t i = 0; i < set.n_keys; i++) {
			const struct dkim_key *k = &set.keys[i];
			char *value = dkim_key_txt_value(k);
			if (value == NULL) {
				printf("; Cannot encode the public key of %s.\n", k->selector);
				ret = CLI_EXIT_SOFTWARE;
				continue;
			}
			char *strings = dkim_txt_zone_strings(value);
			printf("%s._domainkey.%s.\t%d\tIN\tTXT\t%s\n", k->selector, domain, CLI_DNS_TTL, strings);
			free(strings);
			free(value);
		}
		dkim_keyset_free(&set);
	}

	printf("\n; DMARC (RFC 7489), a suggestion: receivers quarantine mail that fails both SPF\n"
	       "; and DKIM, and send aggregate reports to postmaster@%s. Start with p=none\n"
	       "; to watch the reports first if other services send mail as %s.\n", domain, domain);
	printf("_dmarc.%s.\t%d\tIN\tTXT\t\"v=DMARC1; p=quarantine; rua=mailto:postmaster@%s\"\n", domain,
	       CLI_DNS_TTL, domain);

	printf("\n; Client set-up names that Thunderbird (autoconfig) and Outlook (autodiscover)\n"
	       "; look up; they need a web server there that answers with the settings\n"
	       "; (postbote itself does not serve HTTP).\n");
	printf("autoconfig.%s.\t%d\tIN\tCNAME\t%s.\n", domain, CLI_DNS_TTL, host);
	printf("autodiscover.%s.\t%d\tIN\tCNAME\t%s.\n", domain, CLI_DNS_TTL, host);

	/* RFC 6186: priority orders the services, lower first; RFC 8314 5.1
	 * prefers implicit TLS, and IMAP is preferred over POP3. Target "."
	 * says a service is not offered (RFC 2782, RFC 6186 3). */
	static const struct {
		const char *service;
		enum listener_kind kind;
		int priority;
	} srv[] = {
		{ "_submissions", LISTENER_SUBMISSIONS, 0 },
		{ "_submission", LISTENER_SUBMISSION, 10 },
		{ "_imaps", LISTENER_IMAPS, 0 },
		{ "_imap", LISTENER_IMAP, 10 },
		{ "_pop3s", LISTENER_POP3S, 20 },
		{ "_pop3", LISTENER_POP3, 30 },
	};
	printf("\n; Where mail clients find submission, IMAP and POP3 (RFC 6186, RFC 8314).\n");
	for (size_t i = 0; i < sizeof(srv) / sizeof(srv[0]); i++) {
		int port = cli_dns_port(cfg, srv[i].kind);
		if (port == 0)
			printf("%s._tcp.%s.\t%d\tIN\tSRV\t0 0 0 .\t; not offered\n", srv[i].service, domain,
			       CLI_DNS_TTL);
		else
			printf("%s._tcp.%s.\t%d\tIN\tSRV\t%d 1 %d %s.\n", srv[i].service, domain, CLI_DNS_TTL,
			       srv[i].priority, port, host);
	}
	return ret;
}

int cli_dns_main(int argc, char **argv)
{
	struct cli cli;
	int ret = cli_open(argc, argv, false, &cli);

	if (ret != 0) {
		if (ret == CLI_EXIT_USAGE)
			cli_dns_usage();
		return ret;
	}
	for (int i = 0; i < cli.argc; i++) {
		const char *a = cli.argv[i];
		if (strcmp(a, "help") == 0 || strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			cli_dns_usage();
			cli_close(&cli);
			return CLI_EXIT_OK;
		}
		if (a[0] == '-') {
			cli_dns_usage();
			cli_close(&cli);
			return CLI_EXIT_USAGE;
		}
		if (!dkim_domain_valid(a)) {
			fprintf(stderr, "postbote: \"%s\" is not a domain name\n", a);
			cli_close(&cli);
			return CLI_EXIT_DATAERR;
		}
	}
	if (cli.argc == 0) {
		for (size_t i = 0; i < cli.cfg.n_domains; i++) {
			if (i > 0)
				printf("\n");
			int r = cli_dns_domain(&cli, cli.cfg.domains[i]);
			if (r != CLI_EXIT_OK)
				ret = r;
		}
	} else {
		for (int i = 0; i < cli.argc; i++) {
			char *d = xstrdup(cli.argv[i]);
			for (char *p = d; *p; p++) {
				if (*p >= 'A' && *p <= 'Z')
					*p = (char)(*p + ('a' - 'A'));
			}
			if (i > 0)
				printf("\n");
			int r = cli_dns_domain(&cli, d);
			if (r != CLI_EXIT_OK)
				ret = r;
			free(d);
		}
	}
	cli_close(&cli);
	return ret;
}
