/*
 * Failed-login throttling: a hash table of entries (one per address, one
 * per account name) threaded on a list in order of their last failure, so
 * that the oldest is always at the head: pruning stale entries and
 * dropping the oldest at the cap are both O(1) per entry. Everything runs
 * on the loop; there is no locking and nothing here blocks.
 *
 * What this must never do: keep a password (only keyed fingerprints), or
 * grow without bound (THROTTLE_ENTRIES_MAX), or let a peer choose which
 * bucket its names land in (SipHash with a random key).
 */
#include "auth/throttle.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "auth/auth.h"
#include "core/log.h"
#include "core/xalloc.h"

#define THROTTLE_BUCKETS (1u << 16)
#define THROTTLE_FORGET_MIN_MS (60 * 1000)
/* Entries pruned per call at most, so one call never does much work. */
#define THROTTLE_PRUNE_BATCH 16

enum throttle_kind {
	THROTTLE_KIND_IP = 1,
	THROTTLE_KIND_USER = 2,
};

struct throttle_entry {
	struct throttle_entry *hnext;           /* bucket chain */
	struct throttle_entry *prev, *next;     /* age list: head = oldest failure */
	uint64_t hash;
	uint64_t last_ms;                       /* last failure */
	uint64_t locked_until;                  /* 0 = not locked */
	unsigned failures;
	uint8_t n_fps, fp_next;
	uint8_t fps[THROTTLE_FINGERPRINTS][THROTTLE_FINGERPRINT_LEN];
	uint16_t key_len;
	uint8_t key[];                          /* kind byte, then the address key or name */
};

struct throttle {
	struct throttle_entry **buckets;
	struct throttle_entry *head, *tail;
	size_t count;
	size_t max_entries;
	uint64_t delay_ms, delay_max_ms, lockout_ms, forget_ms;
	unsigned lockout_failures;
	uint8_t sip_key[16];
	uint8_t hmac_key[32];
};

/* ---- SipHash-2-4 (Aumasson and Bernstein), for bucket selection ---- */

#define SIP_ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIP_ROUND(v0, v1, v2, v3) do { \
	v0 += v1; v1 = SIP_ROTL(v1, 13); v1 ^= v0; v0 = SIP_ROTL(v0, 32); \
	v2 += v3; v3 = SIP_ROTL(v3, 16); v3 ^= v2; \
	v0 += v3; v3 = SIP_ROTL(v3, 21); v3 ^= v0; \
	v2 += v1; v1 = SIP_ROTL(v1, 17); v1 ^= v2; v2 = SIP_ROTL(v2, 32); \
} while (0)

static uint64_t sip_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint64_t throttle_siphash(const uint8_t key[16], const uint8_t *in, size_t len)
{
	uint64_t k0 = sip_le64(key), k1 = sip_le64(key + 8);
	uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
	uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
	uint64_t b = (uint64_t)len << 56;
	size_t i = 0;

	for (; i + 8 <= len; i += 8) {
		uint64_t m = sip_le64(in + i);
		v3 ^= m;
		SIP_ROUND(v0, v1, v2, v3);
		SIP_ROUND(v0, v1, v2, v3);
		v0 ^= m;
	}
	for (size_t k = 0; i + k < len; k++)
		b |= (uint64_t)in[i + k] << (8 * k);
	v3 ^= b;
	SIP_ROUND(v0, v1, v2, v3);
	SIP_ROUND(v0, v1, v2, v3);
	v0 ^= b;
	v2 ^= 0xff;
	for (int r = 0; r < 4; r++)
		SIP_ROUND(v0, v1, v2, v3);
	return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- Setup ---- */

void throttle_configure(struct throttle *t, const struct config *cfg)
{
	t->delay_ms = cfg->auth_fail_delay_ms;
	t->delay_max_ms = cfg->auth_fail_delay_max_ms;
	t->lockout_failures = cfg->auth_lockout_failures ? cfg->auth_lockout_failures : 1;
	t->lockout_ms = cfg->auth_lockout_ms;
	t->forget_ms = t->lockout_ms > THROTTLE_FORGET_MIN_MS ? t->lockout_ms : THROTTLE_FORGET_MIN_MS;
}

struct throttle *throttle_new(const struct config *cfg)
{
	struct throttle *t = xcalloc(1, sizeof(*t));

	t->buckets = xcalloc(THROTTLE_BUCKETS, sizeof(*t->buckets));
	t->max_entries = THROTTLE_ENTRIES_MAX;
	throttle_configure(t, cfg);
	if (RAND_bytes(t->sip_key, sizeof(t->sip_key)) != 1 ||
	    RAND_bytes(t->hmac_key, sizeof(t->hmac_key)) != 1) {
		/* Without OpenSSL's RNG nothing else (TLS) works either. */
		log_error("throttle: no random bytes from OpenSSL");
		abort();
	}
	return t;
}

void throttle_free(struct throttle **tp)
{
	struct throttle *t = *tp;

	if (t == NULL)
		return;
	*tp = NULL;
	struct throttle_entry *e = t->head;
	while (e != NULL) {
		struct throttle_entry *next = e->next;
		free(e);
		e = next;
	}
	free(t->buckets);
	explicit_bzero(t, sizeof(*t));
	free(t);
}

void throttle_set_max_entries(struct throttle *t, size_t max)
{
	t->max_entries = max < 2 ? 2 : max;
}

size_t throttle_count(const struct throttle *t)
{
	return t->count;
}

void throttle_fingerprint(const struct throttle *t, const char *password, size_t len,
			  uint8_t fp_r[THROTTLE_FINGERPRINT_LEN])
{
	uint8_t mac[EVP_MAX_MD_SIZE];
	unsigned mac_len = 0;

	if (HMAC(EVP_sha256(), t->hmac_key, sizeof(t->hmac_key), (const unsigned char *)password, len,
		 mac, &mac_len) == NULL || mac_len < THROTTLE_FINGERPRINT_LEN) {
		/* Cannot happen with a working libcrypto; all-zero makes every
		 * password count once, which errs on the strict side. */
		memset(fp_r, 0, THROTTLE_FINGERPRINT_LEN);
		return;
	}
	memcpy(fp_r, mac, THROTTLE_FINGERPRINT_LEN);
	explicit_bzero(mac, sizeof(mac));
}

/* ---- Entries ---- */

/* The lookup key of an address or account name in buf; returns its length
 * (0 when there is nothing to look up). */
static size_t throttle_key(enum throttle_kind kind, const struct iplimit_key *ip, const char *user,
			   uint8_t *buf)
{
	buf[0] = (uint8_t)kind;
	if (kind == THROTTLE_KIND_IP) {
		memcpy(buf + 1, ip->bytes, sizeof(ip->bytes));
		return 1 + sizeof(ip->bytes);
	}
	if (user == NULL || user[0] == '\0')
		return 0;
	/* Names are compared case-insensitively, as accounts are looked up. */
	size_t n = 0;
	for (; user[n] != '\0' && n < AUTH_USER_MAX; n++) {
		char c = user[n];
		buf[1 + n] = (uint8_t)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
	}
	return 1 + n;
}

static struct throttle_entry **throttle_find(struct throttle *t, const uint8_t *key, size_t len,
					     uint64_t *hash_r)
{
	uint64_t h = throttle_siphash(t->sip_key, key, len);
	struct throttle_entry **ep = &t->buckets[h & (THROTTLE_BUCKETS - 1)];

	*hash_r = h;
	while (*ep != NULL &&
	       !((*ep)->hash == h && (*ep)->key_len == len && memcmp((*ep)->key, key, len) == 0))
		ep = &(*ep)->hnext;
	return ep;
}

/* The existing entry of one kind for ip and user, or NULL (also when that
 * kind has nothing to look up, e.g. no user name yet). */
static struct throttle_entry *throttle_lookup(struct throttle *t, enum throttle_kind kind,
					      const struct iplimit_key *ip, const char *user)
{
	uint8_t key[1 + AUTH_USER_MAX];
	size_t len = throttle_key(kind, ip, user, key);
	uint64_t h;

	return len == 0 ? NULL : *throttle_find(t, key, len, &h);
}

static void throttle_unlink_age(struct throttle *t, struct throttle_entry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		t->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		t->tail = e->prev;
	e->prev = e->next = NULL;
}

static void throttle_append_age(struct throttle *t, struct throttle_entry *e)
{
	e->prev = t->tail;
	e->next = NULL;
	if (t->tail)
		t->tail->next = e;
	else
		t->head = e;
	t->tail = e;
}

static void throttle_remove(struct throttle *t, struct throttle_entry *e)
{
	struct throttle_entry **ep = &t->buckets[e->hash & (THROTTLE_BUCKETS - 1)];

	while (*ep != e)
		ep = &(*ep)->hnext;
	*ep = e->hnext;
	throttle_unlink_age(t, e);
	t->count--;
	free(e);
}

static bool throttle_stale(const struct throttle *t, const struct throttle_entry *e, uint64_t now_ms)
{
	if (e->locked_until != 0 && now_ms < e->locked_until)
		return false;
	return now_ms >= e->last_ms && now_ms - e->last_ms >= t->forget_ms;
}

/* Drop a few stale entries from the old end. The list is ordered by last
 * failure, so the first fresh one ends the search (a locked entry stops it
 * too, which only delays pruning; the cap still holds). */
static void throttle_prune(struct throttle *t, uint64_t now_ms)
{
	for (int i = 0; i < THROTTLE_PRUNE_BATCH; i++) {
		if (t->head == NULL || !throttle_stale(t, t->head, now_ms))
			break;
		throttle_remove(t, t->head);
	}
}

/* A lockout that has run out: start counting again. */
static void throttle_unlock_expired(struct throttle_entry *e, uint64_t now_ms)
{
	if (e->locked_until != 0 && now_ms >= e->locked_until) {
		e->locked_until = 0;
		e->failures = 0;
		e->n_fps = e->fp_next = 0;
		memset(e->fps, 0, sizeof(e->fps));
	}
}

static uint64_t throttle_delay(const struct throttle *t, unsigned failures)
{
	if (failures == 0 || t->delay_ms == 0)
		return 0;
	uint64_t d = t->delay_ms;
	for (unsigned i = 1; i < failures && d < t->delay_max_ms; i++)
		d = d > UINT64_MAX / 2 ? UINT64_MAX : d * 2;
	return d < t->delay_max_ms ? d : t->delay_max_ms;
}

/* ---- The API ---- */

enum throttle_verdict throttle_check(struct throttle *t, const struct iplimit_key *ip, const char *user,
				     uint64_t now_ms, uint64_t *delay_ms_r)
{
	enum throttle_verdict verdict = THROTTLE_OK;
	uint64_t delay = 0;

	throttle_prune(t, now_ms);
	for (int kind = THROTTLE_KIND_IP; kind <= THROTTLE_KIND_USER; kind++) {
		struct throttle_entry *e = throttle_lookup(t, (enum throttle_kind)kind, ip, user);
		if (e == NULL)
			continue;
		if (e->locked_until != 0 && now_ms < e->locked_until) {
			verdict = THROTTLE_LOCKED;
			continue;
		}
		throttle_unlock_expired(e, now_ms);
		if (throttle_stale(t, e, now_ms)) {
			throttle_remove(t, e);
			continue;
		}
		uint64_t d = throttle_delay(t, e->failures);
		if (d > delay)
			delay = d;
	}
	*delay_ms_r = verdict == THROTTLE_LOCKED ? 0 : delay;
	return verdict;
}

/* Count one failure on the entry for key; returns it. */
static struct throttle_entry *throttle_count_failure(struct throttle *t, const uint8_t *key, size_t len,
						     const uint8_t fp[THROTTLE_FINGERPRINT_LEN], uint64_t now_ms,
						     bool *locked_now_r)
{
	uint64_t h;
	struct throttle_entry **ep = throttle_find(t, key, len, &h);
	struct throttle_entry *e = *ep;

	if (e == NULL) {
		if (t->count >= t->max_entries) {
			throttle_remove(t, t->head);
			ep = throttle_find(t, key, len, &h);
		}
		e = xcalloc(1, sizeof(*e) + len);
		e->hash = h;
		e->key_len = (uint16_t)len;
		memcpy(e->key, key, len);
		*ep = e;
		t->count++;
	} else {
		throttle_unlink_age(t, e);
		throttle_unlock_expired(e, now_ms);
	}
	e->last_ms = now_ms;
	throttle_append_age(t, e);
	if (e->locked_until != 0)
		return e; /* verified before the lockout began: already counted */

	for (unsigned i = 0; i < e->n_fps; i++) {
		if (memcmp(e->fps[i], fp, THROTTLE_FINGERPRINT_LEN) == 0)
			return e; /* the same wrong password again */
	}
	memcpy(e->fps[e->fp_next], fp, THROTTLE_FINGERPRINT_LEN);
	e->fp_next = (uint8_t)((e->fp_next + 1) % THROTTLE_FINGERPRINTS);
	if (e->n_fps < THROTTLE_FINGERPRINTS)
		e->n_fps++;
	e->failures++;
	if (e->failures >= t->lockout_failures && t->lockout_ms > 0) {
		e->locked_until = now_ms + t->lockout_ms;
		*locked_now_r = true;
	}
	return e;
}

static void throttle_format_key(const struct iplimit_key *ip, char *buf, size_t size)
{
	if (ip->bytes[0] == 4) {
		inet_ntop(AF_INET, ip->bytes + 1, buf, (socklen_t)size);
	} else if (ip->bytes[0] == 6) {
		uint8_t a[16] = { 0 };
		char tmp[INET6_ADDRSTRLEN];
		memcpy(a, ip->bytes + 1, 8);
		inet_ntop(AF_INET6, a, tmp, sizeof(tmp));
		snprintf(buf, size, "%s/64", tmp);
	} else {
		snprintf(buf, size, "unknown");
	}
}

/* The password's fingerprint bound to the account name. */
static void throttle_ip_fingerprint(const struct throttle *t, const uint8_t fp[THROTTLE_FINGERPRINT_LEN],
				    const char *user, uint8_t out[THROTTLE_FINGERPRINT_LEN])
{
	uint8_t buf[THROTTLE_FINGERPRINT_LEN + 1 + AUTH_USER_MAX];
	size_t n = throttle_key(THROTTLE_KIND_USER, NULL, user, buf + THROTTLE_FINGERPRINT_LEN);

	memcpy(buf, fp, THROTTLE_FINGERPRINT_LEN);
	uint64_t h = throttle_siphash(t->sip_key, buf, THROTTLE_FINGERPRINT_LEN + n);
	for (int i = 0; i < THROTTLE_FINGERPRINT_LEN; i++)
		out[i] = (uint8_t)(h >> (8 * i));
}

void throttle_failure(struct throttle *t, const struct iplimit_key *ip, const char *peer, const char *user,
		      const uint8_t fp[THROTTLE_FINGERPRINT_LEN], uint64_t now_ms)
{
	uint8_t key[1 + AUTH_USER_MAX];
	bool locked_now = false;
	unsigned failures = 0;
	uint64_t until = 0;

	/* For the address, "the same attempt" is the same password for the
	 * same account: one password tried against many accounts (spraying)
	 * counts once per account. */
	uint8_t ip_fp[THROTTLE_FINGERPRINT_LEN];
	throttle_ip_fingerprint(t, fp, user, ip_fp);

	throttle_prune(t, now_ms);
	for (int kind = THROTTLE_KIND_IP; kind <= THROTTLE_KIND_USER; kind++) {
		size_t len = throttle_key((enum throttle_kind)kind, ip, user, key);
		if (len == 0)
			continue;
		bool locked = false;
		struct throttle_entry *e = throttle_count_failure(t, key, len, kind == THROTTLE_KIND_IP ? ip_fp : fp,
								  now_ms, &locked);
		if (locked) {
			locked_now = true;
			if (e->failures > failures)
				failures = e->failures;
			if (e->locked_until > until)
				until = e->locked_until;
		}
	}
	if (!locked_now)
		return;

	char ipbuf[INET6_ADDRSTRLEN + 8];
	char userbuf[AUTH_LOG_USER_MAX];
	char stamp[32];
	struct tm tm;
	time_t wall = time(NULL) + (time_t)((until - now_ms + 999) / 1000);
	gmtime_r(&wall, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (peer == NULL)
		throttle_format_key(ip, ipbuf, sizeof(ipbuf));
	auth_log_escape(user ? user : "", userbuf, sizeof(userbuf));
	log_warn("auth: lockout ip=%s user=%s failures=%u until=%s", peer ? peer : ipbuf, userbuf, failures,
		 stamp);
}

void throttle_success(struct throttle *t, const struct iplimit_key *ip, const char *user)
{
	for (int kind = THROTTLE_KIND_IP; kind <= THROTTLE_KIND_USER; kind++) {
		struct throttle_entry *e = throttle_lookup(t, (enum throttle_kind)kind, ip, user);
		if (e != NULL)
			throttle_remove(t, e);
	}
}
