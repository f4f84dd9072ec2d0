/*
 * Transport and smarthost lines (see route.h).
 */
#include "smtp/route.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/xalloc.h"

const char *route_tls_name(enum route_tls tls)
{
	static const char *const names[] = { "none", "opportunistic", "require", "implicit" };
	return names[tls];
}

void route_free(struct route *r)
{
	free(r->match);
	free(r->host);
	free(r->user);
	free(r->password_file);
	memset(r, 0, sizeof(*r));
}

/* HOST[:PORT] or [IPV6]:PORT; default port 25, 465 for implicit TLS is
 * applied later by the caller when no port was given. */
static int route_hostport(const char *w, struct route *r, char **error_r)
{
	const char *host = w, *colon;
	size_t hlen;

	if (w[0] == '[') {
		const char *end = strchr(w, ']');
		if (end == NULL) {
			*error_r = xasprintf("\"%s\": missing \"]\"", w);
			return -1;
		}
		host = w + 1;
		hlen = (size_t)(end - host);
		colon = end[1] == ':' ? end + 1 : NULL;
		if (end[1] != '\0' && colon == NULL) {
			*error_r = xasprintf("\"%s\": expected \":PORT\" after \"]\"", w);
			return -1;
		}
	} else {
		colon = strchr(w, ':');
		hlen = colon ? (size_t)(colon - w) : strlen(w);
	}
	if (hlen == 0) {
		*error_r = xasprintf("\"%s\": no host", w);
		return -1;
	}
	r->host = xstrndup(host, hlen);
	r->port = 0;
	if (colon != NULL) {
		char *end;
		long port = strtol(colon + 1, &end, 10);
		if (*end != '\0' || port < 1 || port > 65535 || colon[1] == '\0') {
			*error_r = xasprintf("\"%s\": port must be 1-65535", w);
			return -1;
		}
		r->port = (int)port;
	}
	return 0;
}

static int route_option(const char *w, struct route *r, bool smarthost, char **error_r)
{
	const char *eq = strchr(w, '=');
	if (eq == NULL || eq[1] == '\0') {
		*error_r = xasprintf("\"%s\": expected NAME=VALUE", w);
		return -1;
	}
	size_t n = (size_t)(eq - w);
	const char *v = eq + 1;
	if (n == 3 && strncmp(w, "tls", 3) == 0) {
		for (int t = ROUTE_TLS_NONE; t <= ROUTE_TLS_IMPLICIT; t++) {
			if (strcmp(v, route_tls_name((enum route_tls)t)) == 0) {
				r->tls = (enum route_tls)t;
				return 0;
			}
		}
		*error_r = xasprintf("tls=%s: expected none, opportunistic, require or implicit", v);
		return -1;
	}
	if (n == 6 && strncmp(w, "verify", 6) == 0) {
		if (strcmp(v, "yes") != 0 && strcmp(v, "no") != 0) {
			*error_r = xasprintf("verify=%s: expected yes or no", v);
			return -1;
		}
		r->verify = strcmp(v, "yes") == 0;
		return 0;
	}
	if (n == 4 && strncmp(w, "user", 4) == 0) {
		free(r->user);
		r->user = xstrdup(v);
		return 0;
	}
	if (n == 13 && strncmp(w, "password_file", 13) == 0) {
		free(r->password_file);
		r->password_file = xstrdup(v);
		return 0;
	}
	if (smarthost && n == 13 && strncmp(w, "sender_domain", 13) == 0) {
		free(r->match);
		r->match = xstrdup(v);
		for (char *p = r->match; *p; p++)
			*p = (*p >= 'A' && *p <= 'Z') ? (char)(*p - 'A' + 'a') : *p;
		return 0;
	}
	*error_r = xasprintf("unknown option \"%.*s\"; expected tls, verify, user, password_file%s", (int)n, w,
			     smarthost ? " or sender_domain" : "");
	return -1;
}

int route_parse(const char *text, bool smarthost, struct route *r, char **error_r)
{
	char *copy = xstrdup(text);
	char *save = NULL;
	int i = 0, rc = 0;

	memset(r, 0, sizeof(*r));
	r->tls = ROUTE_TLS_OPPORTUNISTIC;
	for (char *w = strtok_r(copy, " \t", &save); w != NULL && rc == 0; w = strtok_r(NULL, " \t", &save), i++) {
		if (!smarthost && i == 0) {
			r->match = xstrdup(w);
			for (char *p = r->match; *p; p++)
				*p = (*p >= 'A' && *p <= 'Z') ? (char)(*p - 'A' + 'a') : *p;
		} else if (i == (smarthost ? 0 : 1)) {
			rc = route_hostport(w, r, error_r);
		} else {
			rc = route_option(w, r, smarthost, error_r);
		}
	}
	free(copy);
	if (rc == 0 && r->host == NULL) {
		*error_r = xstrdup(smarthost ? "expected HOST[:PORT] [OPTIONS]" : "expected DOMAIN HOST[:PORT] [OPTIONS]");
		rc = -1;
	}
	if (rc == 0 && (r->user == NULL) != (r->password_file == NULL)) {
		*error_r = xstrdup("user= and password_file= go together");
		rc = -1;
	}
	if (rc == 0 && r->port == 0)
		r->port = r->tls == ROUTE_TLS_IMPLICIT ? 465 : smarthost ? 587 : 25;
	if (rc < 0)
		route_free(r);
	return rc;
}

const struct route *route_choose(const struct route *transports, size_t n_transports,
				 const struct route *smarthosts, size_t n_smarthosts, const char *sender,
				 const char *domain)
{
	for (size_t i = 0; i < n_transports; i++) {
		if (strcasecmp(transports[i].match, domain) == 0)
			return &transports[i];
	}
	const char *at = strrchr(sender, '@');
	for (size_t i = 0; at != NULL && i < n_smarthosts; i++) {
		if (smarthosts[i].match != NULL && strcasecmp(smarthosts[i].match, at + 1) == 0)
			return &smarthosts[i];
	}
	for (size_t i = 0; i < n_smarthosts; i++) {
		if (smarthosts[i].match == NULL)
			return &smarthosts[i];
	}
	return NULL;
}
