#ifndef POSTBOTE_CORE_CONN_H
#define POSTBOTE_CORE_CONN_H

/*
 * One client connection: the libuv glue between a socket and a protocol
 * session (core/session.h), with TLS in between when it is on.
 *
 * It owns the socket, the timer, the TLS state and the write queue, and it
 * performs the effects a session returns. A connection is freed only in its
 * uv_close callbacks once its reference count is zero, so work running in the
 * thread pool (password hashing, delivery) can hold a reference and safely
 * find out afterwards that the client went away.
 */

#include <stdbool.h>
#include <stdint.h>

struct server;
struct listener;
struct conn;

/* Accept one pending connection on a listener, apply the connection limits
 * (refusing with the protocol's answer) and start the session. */
void conn_accept(struct listener *l);

/* The server is stopping: send the protocol's goodbye and close once it is
 * written. */
void conn_shutdown(struct conn *c);

/* Close at once, dropping queued output (stop deadline passed). */
void conn_abort(struct conn *c);

/* Give back the buffers of a connection that has had no input and no
 * finished wait for quiet_ms (the server calls it for every connection
 * now and then). */
void conn_trim_quiet(struct conn *c, uint64_t quiet_ms);

/* The next connection in the server's list (for iterating while closing). */
struct conn *conn_next(struct conn *c);

/* References for work that outlives a callback (thread-pool jobs). */
void conn_ref(struct conn *c);
void conn_unref(struct conn *c);

#endif
