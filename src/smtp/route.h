#ifndef POSTBOTE_SMTP_ROUTE_H
#define POSTBOTE_SMTP_ROUTE_H

/*
 * Where outbound mail goes when not simply to the recipient domain's MX:
 *
 *   transport = DOMAIN HOST[:PORT] [OPTIONS]    mail for DOMAIN goes to HOST
 *   smarthost = HOST[:PORT] [OPTIONS]           everything goes through HOST
 *   smarthost = HOST[:PORT] sender_domain=D ... mail from D goes through HOST
 *
 * OPTIONS: tls=none|opportunistic|require|implicit, verify=yes|no,
 * user=NAME, password_file=PATH (the password never sits in the config).
 * Many VPS providers block outbound port 25; a smarthost on 465 (implicit
 * TLS) or 587/2525 (STARTTLS) with AUTH is how such a server sends at all.
 */

#include <stdbool.h>
#include <stddef.h>

enum route_tls {
	ROUTE_TLS_NONE = 0,
	ROUTE_TLS_OPPORTUNISTIC,    /* STARTTLS when offered (the default) */
	ROUTE_TLS_REQUIRE,          /* STARTTLS or no delivery */
	ROUTE_TLS_IMPLICIT,         /* TLS from the first byte (port 465) */
};

struct route {
	char *match;                /* transport: recipient domain; smarthost: sender domain or NULL */
	char *host;                 /* name or numeric address */
	int port;
	enum route_tls tls;
	bool verify;                /* check the certificate against host */
	char *user;                 /* AUTH PLAIN/LOGIN as this user, or NULL */
	char *password_file;
	unsigned line;              /* in the config file, for messages */
};

/* Parse the value of a transport (smarthost = false) or smarthost line.
 * Returns 0, or -1 with *error_r (caller frees). */
int route_parse(const char *text, bool smarthost, struct route *r, char **error_r);
void route_free(struct route *r);

/* The route for mail from sender to a recipient in domain: a transport
 * for the domain, else a smarthost for the sender's domain, else a
 * smarthost for everything, else NULL (use the MX records). */
const struct route *route_choose(const struct route *transports, size_t n_transports,
				 const struct route *smarthosts, size_t n_smarthosts, const char *sender,
				 const char *domain);

const char *route_tls_name(enum route_tls tls);

#endif
