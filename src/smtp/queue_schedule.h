#ifndef POSTBOTE_SMTP_QUEUE_SCHEDULE_H
#define POSTBOTE_SMTP_QUEUE_SCHEDULE_H

/*
 * When the outbound queue tries a message again, when it gives up, and when
 * it warns the sender about a delay.
 *
 * Why it is a pure function of (arrival, attempts, now): the queue keeps
 * those three facts per message in LMDB anyway, so nothing else has to be
 * stored or survive a restart, and the schedule can be tested without a
 * clock. The wait is measured from the end of the last attempt (now), not
 * from arrival: a server that was down for a day does not come back to a
 * burst of "overdue" attempts.
 *
 * The schedule is a list of waits, "1m 5m 15m 30m 1h": after the first
 * failed attempt wait 1 minute, after the second 5 minutes, ..., and the
 * last wait repeats (hourly) until the lifetime (default 5 days, RFC 5321
 * 4.5.4.1 suggests 4-5 days) runs out. The last attempt is placed at the
 * very end of the lifetime, so a message gets its full lifetime before it
 * bounces; a failure at or after the end means "bounce now".
 *
 * Times are Unix seconds (time_t); durations are seconds.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define SMTP_SCHEDULE_MAX 32                    /* waits in a schedule */
#define SMTP_SCHEDULE_INTERVAL_MAX (30 * 86400)  /* one wait: at most 30 days */
#define SMTP_SCHEDULE_DEFAULT "1m 5m 15m 30m 1h"
#define SMTP_SCHEDULE_LIFETIME_DEFAULT (5 * 86400)

struct smtp_schedule {
	size_t n;                                  /* >= 1 */
	uint64_t interval_s[SMTP_SCHEDULE_MAX];    /* wait after failed attempt i + 1 */
	uint64_t lifetime_s;                       /* from arrival; default 5 days */
	uint64_t delay_warning_s;                  /* after arrival; 0 = no warning (default) */
};

/* The defaults: SMTP_SCHEDULE_DEFAULT, 5 days, no delay warning. */
void smtp_schedule_default(struct smtp_schedule *s);

/* Parse waits separated by blanks or commas, each a duration as in the
 * config file ("30s", "5m", "1h", "1d"; a bare number is seconds), between
 * 1 second and SMTP_SCHEDULE_INTERVAL_MAX, at most SMTP_SCHEDULE_MAX of
 * them. Returns 0 and sets s->n and s->interval_s (lifetime and warning are
 * left alone), or -1 with *error_r (static text) and *s unchanged. */
int smtp_schedule_parse(const char *text, struct smtp_schedule *s, const char **error_r);

/* Write the waits back as text ("1m 5m 15m 30m 1h") into out[0..size),
 * NUL-terminated, truncated if need be; returns the full length. */
size_t smtp_schedule_format(const struct smtp_schedule *s, char *out, size_t size);

struct smtp_retry {
	bool expired;          /* the lifetime is over: bounce (or the final attempt failed) */
	time_t next;           /* when to try next (unless expired) */
};

/* After `attempts` attempts (0 = never tried) of a message that arrived at
 * `arrival`, the last of them ending at `now`: when is the next one, or is
 * the lifetime over? A message never tried is due at arrival and never
 * expired (it gets one attempt even if the server was off for a week).
 * Otherwise it is expired when now >= arrival + lifetime, and else due at
 * now + the wait for this attempt count, but no later than arrival +
 * lifetime. */
void smtp_schedule_next(const struct smtp_schedule *s, time_t arrival, unsigned attempts, time_t now,
			struct smtp_retry *r);

/* arrival + lifetime: the "Will-Retry-Until" of a delay DSN. */
time_t smtp_schedule_expiry(const struct smtp_schedule *s, time_t arrival);

/* When to send the delay warning (RFC 3464 Action: delayed), or 0 when
 * warnings are off or would come no earlier than the expiry. The queue
 * sends it once, with the first failed attempt at or after this time. */
time_t smtp_schedule_delay_warning(const struct smtp_schedule *s, time_t arrival);

#endif
