#ifndef POSTBOTE_CORE_SERVICES_H
#define POSTBOTE_CORE_SERVICES_H

/*
 * What the protocols' backends are built from: the parts of the running
 * server that sessions reach through their backend (see session_params
 * .backend), never directly. Kept in one struct so a backend constructor
 * takes one argument and a test can assemble one from a temporary store.
 */

#include <uv.h>

#include "core/config.h"
#include "core/db.h"

struct auth;
struct store;

struct services {
	uv_loop_t *loop;
	const struct config *cfg;   /* the server's; scalar settings change on SIGHUP */
	struct db *db;
	struct store *store;
	struct auth *auth;
};

#endif
