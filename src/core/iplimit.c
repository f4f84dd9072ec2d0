#include "core/iplimit.h"

#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>

#include "core/xalloc.h"

/* Entries live only while an address has connections, so the table holds at
 * most max_connections keys; a fixed bucket array with chains is enough. */
#define IPLIMIT_BUCKETS 1024

struct iplimit_entry {
	struct iplimit_entry *next;
	struct iplimit_key key;
	unsigned count;
};

struct iplimit {
	struct iplimit_entry *buckets[IPLIMIT_BUCKETS];
};

void iplimit_key_from(const struct sockaddr *sa, struct iplimit_key *key_r)
{
	memset(key_r, 0, sizeof(*key_r));
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
		/* An IPv4-mapped IPv6 address is the IPv4 host it maps. */
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
			key_r->bytes[0] = 4;
			memcpy(key_r->bytes + 1, sin6->sin6_addr.s6_addr + 12, 4);
			return;
		}
		key_r->bytes[0] = 6;
		memcpy(key_r->bytes + 1, sin6->sin6_addr.s6_addr, 8);
	} else if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
		key_r->bytes[0] = 4;
		memcpy(key_r->bytes + 1, &sin->sin_addr, 4);
	}
}

static unsigned iplimit_hash(const struct iplimit_key *key)
{
	/* FNV-1a: cheap and spreads the low bytes of IPv4 addresses. */
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < sizeof(key->bytes); i++)
		h = (h ^ key->bytes[i]) * 16777619u;
	return h % IPLIMIT_BUCKETS;
}

struct iplimit *iplimit_new(void)
{
	return xcalloc(1, sizeof(struct iplimit));
}

void iplimit_free(struct iplimit **tp)
{
	struct iplimit *t = *tp;

	if (t == NULL)
		return;
	*tp = NULL;
	for (size_t i = 0; i < IPLIMIT_BUCKETS; i++) {
		struct iplimit_entry *e = t->buckets[i];
		while (e != NULL) {
			struct iplimit_entry *next = e->next;
			free(e);
			e = next;
		}
	}
	free(t);
}

static struct iplimit_entry **iplimit_find(struct iplimit *t, const struct iplimit_key *key)
{
	struct iplimit_entry **ep = &t->buckets[iplimit_hash(key)];

	while (*ep != NULL && memcmp(&(*ep)->key, key, sizeof(*key)) != 0)
		ep = &(*ep)->next;
	return ep;
}

bool iplimit_acquire(struct iplimit *t, const struct iplimit_key *key, unsigned max)
{
	struct iplimit_entry **ep = iplimit_find(t, key);

	if (*ep == NULL) {
		if (max == 0)
			return false;
		struct iplimit_entry *e = xcalloc(1, sizeof(*e));
		e->key = *key;
		e->count = 1;
		*ep = e;
		return true;
	}
	if ((*ep)->count >= max)
		return false;
	(*ep)->count++;
	return true;
}

void iplimit_release(struct iplimit *t, const struct iplimit_key *key)
{
	struct iplimit_entry **ep = iplimit_find(t, key);
	struct iplimit_entry *e = *ep;

	if (e == NULL)
		return;
	if (--e->count == 0) {
		*ep = e->next;
		free(e);
	}
}

unsigned iplimit_count(const struct iplimit *t, const struct iplimit_key *key)
{
	struct iplimit_entry **ep = iplimit_find((struct iplimit *)t, key);
	return *ep ? (*ep)->count : 0;
}
