/*
 * A password check a session can walk away from (see auth_login.h).
 */
#include "auth/auth_login.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"

struct auth_login {
	struct auth_request req;    /* zeroed by xcalloc, as auth_verify wants */
	auth_login_cb cb;
	void *arg;
};

static void auth_login_done(struct auth_request *req, enum auth_result result)
{
	struct auth_login *l = req->data;

	if (l->cb != NULL)
		l->cb(l->arg, result, req->user);
	free(l);
}

/* The throttle's key is the address (an IPv6 /64): rebuild it from the
 * text the session has. */
static void auth_login_ipkey(const char *peer, struct iplimit_key *key_r)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, peer, &s4->sin_addr) == 1)
		s4->sin_family = AF_INET;
	else if (inet_pton(AF_INET6, peer, &s6->sin6_addr) == 1)
		s6->sin6_family = AF_INET6;
	else
		s4->sin_family = AF_INET; /* 0.0.0.0: unknown peers share one key */
	iplimit_key_from((struct sockaddr *)&ss, key_r);
}

struct auth_login *auth_login_start(struct auth *a, const char *user, const char *password,
				    const char *peer, auth_login_cb cb, void *arg)
{
	struct auth_login *l = xcalloc(1, sizeof(*l));
	struct iplimit_key key;

	l->cb = cb;
	l->arg = arg;
	l->req.data = l;
	auth_login_ipkey(peer, &key);
	if (auth_verify(a, &l->req, user, password, &key, peer, auth_login_done) < 0) {
		free(l);
		return NULL;
	}
	return l;
}

void auth_login_cancel(struct auth_login *l)
{
	if (l == NULL)
		return;
	l->cb = NULL;
	auth_cancel(&l->req);
}
