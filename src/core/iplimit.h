#ifndef POSTBOTE_CORE_IPLIMIT_H
#define POSTBOTE_CORE_IPLIMIT_H

/*
 * Connection counts per remote address, for max_connections_per_ip. IPv4
 * addresses count one by one; IPv6 addresses count per /64, because one
 * host usually owns a whole /64 and could otherwise walk past any limit.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct iplimit;

/* The key an address counts under. */
struct iplimit_key {
	uint8_t bytes[9]; /* family tag + 4 (IPv4) or 8 (IPv6 /64) bytes */
};

void iplimit_key_from(const struct sockaddr *sa, struct iplimit_key *key_r);

struct iplimit *iplimit_new(void);
void iplimit_free(struct iplimit **t);

/* Count one more connection from key if it has fewer than max now. Returns
 * true if it was counted, false if the address is at its limit. */
bool iplimit_acquire(struct iplimit *t, const struct iplimit_key *key, unsigned max);
/* Count one connection from key less (it must have been acquired). */
void iplimit_release(struct iplimit *t, const struct iplimit_key *key);
/* Connections counted for key now. */
unsigned iplimit_count(const struct iplimit *t, const struct iplimit_key *key);

#endif
