#ifndef POSTBOTE_AUTH_AUTH_LOGIN_H
#define POSTBOTE_AUTH_AUTH_LOGIN_H

/*
 * A password check a session can walk away from.
 *
 * auth_verify() wants its request kept alive until its callback, even after
 * auth_cancel(); a session that closes while the hash is computed cannot
 * promise that. This wrapper owns the request, so the session only holds a
 * handle: after auth_login_cancel() its callback is never called and the
 * handle frees itself when the verifier is done with it.
 */

#include "auth/auth.h"

struct auth_login;

/* Called on the loop, once, unless cancelled. account is the verified
 * account address on AUTH_OK (valid during the call). */
typedef void (*auth_login_cb)(void *arg, enum auth_result result, const char *account);

/* Start checking user and password for the client at peer ("192.0.2.1",
 * "2001:db8::1": the throttle counts per address, IPv6 per /64). Returns
 * the handle, or NULL when the request cannot even be made (empty or
 * overlong name or password): treat that as a failed login. */
struct auth_login *auth_login_start(struct auth *a, const char *user, const char *password,
				    const char *peer, auth_login_cb cb, void *arg);

/* The session has gone: cb will not be called. */
void auth_login_cancel(struct auth_login *l);

#endif
