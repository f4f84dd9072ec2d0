#ifndef POSTBOTE_AUTH_THROTTLE_H
#define POSTBOTE_AUTH_THROTTLE_H

/*
 * Failed-login throttling, kept in memory on the loop (one thread; no
 * locking). Failures are counted per remote address (IPv6 per /64, the
 * keys of core/iplimit.h) and per account name, separately:
 *
 *  - after n counted failures an attempt waits
 *    min(auth_fail_delay << (n - 1), auth_fail_delay_max) before it is
 *    answered (the larger of the address's and the account's delay);
 *  - at auth_lockout_failures the address or account is locked for
 *    auth_lockout_time: every attempt is refused at once, whatever the
 *    password, and one line is logged at warn level:
 *      auth: lockout ip=ADDRESS user=ADDRESS failures=N until=YYYY-MM-DDTHH:MM:SSZ
 *    When the lockout ends the count starts again from zero;
 *  - the same wrong password again (a client retrying a stale saved
 *    password) counts once: each entry remembers the fingerprints of its
 *    last THROTTLE_FINGERPRINTS wrong passwords. A fingerprint is
 *    HMAC-SHA256 of the password under a random key made by throttle_new,
 *    truncated to 8 bytes; the password itself is never kept. For an
 *    address the fingerprint is bound to the account name, so one password
 *    sprayed over many accounts counts once per account, not once;
 *  - a successful login forgets the address and the account.
 *
 * Memory is bounded: an entry with no failure for the forget time (the
 * lockout time, at least a minute) that is not locked is dropped lazily by
 * later calls, and past THROTTLE_ENTRIES_MAX entries the one with the
 * oldest failure is dropped. Hash buckets use a keyed hash, so crafted
 * names cannot make long chains.
 *
 * Times are the caller's monotonic milliseconds (uv_now), so tests can
 * pass any clock.
 */

#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/iplimit.h"

#define THROTTLE_FINGERPRINT_LEN 8
#define THROTTLE_FINGERPRINTS 4
#define THROTTLE_ENTRIES_MAX 100000

struct throttle;

enum throttle_verdict {
	THROTTLE_OK = 0,   /* go on, after *delay_ms_r */
	THROTTLE_LOCKED,   /* refuse now, temporarily */
};

/* A throttle with the settings of cfg (copied; see throttle_configure). */
struct throttle *throttle_new(const struct config *cfg);
void throttle_free(struct throttle **t);

/* Take the auth_* settings of cfg again (after a reload). */
void throttle_configure(struct throttle *t, const struct config *cfg);

/* Change the entry cap (at least 2; default THROTTLE_ENTRIES_MAX). */
void throttle_set_max_entries(struct throttle *t, size_t max);

/* Before verifying a password: THROTTLE_LOCKED when the address or the
 * account (user may be NULL) is locked now, else THROTTLE_OK and the delay
 * to wait before answering (0 when neither has failed lately). */
enum throttle_verdict throttle_check(struct throttle *t, const struct iplimit_key *ip, const char *user,
				     uint64_t now_ms, uint64_t *delay_ms_r);

/* The fingerprint of a password for throttle_failure(). */
void throttle_fingerprint(const struct throttle *t, const char *password, size_t len,
			  uint8_t fp_r[THROTTLE_FINGERPRINT_LEN]);

/* Count a failed login from ip for user (NULL when there was none to
 * name). peer is the address as text for the lockout log line (NULL: the
 * key is printed, an IPv6 key as its /64). */
void throttle_failure(struct throttle *t, const struct iplimit_key *ip, const char *peer, const char *user,
		      const uint8_t fp[THROTTLE_FINGERPRINT_LEN], uint64_t now_ms);

/* A successful login: forget ip and user. */
void throttle_success(struct throttle *t, const struct iplimit_key *ip, const char *user);

/* Entries held now (for tests and statistics). */
size_t throttle_count(const struct throttle *t);

#endif
