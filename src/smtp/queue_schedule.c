/*
 * The retry schedule of the outbound queue (see queue_schedule.h). Plain
 * arithmetic on Unix seconds; every sum is done in 64 bits on values the
 * parser bounded, so nothing overflows.
 */
#include "smtp/queue_schedule.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/config.h"

void smtp_schedule_default(struct smtp_schedule *s)
{
	static const uint64_t waits[] = { 60, 5 * 60, 15 * 60, 30 * 60, 3600 };

	memset(s, 0, sizeof(*s));
	s->n = sizeof(waits) / sizeof(waits[0]);
	memcpy(s->interval_s, waits, sizeof(waits));
	s->lifetime_s = SMTP_SCHEDULE_LIFETIME_DEFAULT;
	s->delay_warning_s = 0;
}

static bool is_sep(char c)
{
	return c == ' ' || c == '\t' || c == ',';
}

int smtp_schedule_parse(const char *text, struct smtp_schedule *s, const char **error_r)
{
	uint64_t waits[SMTP_SCHEDULE_MAX];
	size_t n = 0;
	const char *p = text;

	for (;;) {
		while (*p != '\0' && is_sep(*p))
			p++;
		if (*p == '\0')
			break;
		const char *w = p;
		while (*p != '\0' && !is_sep(*p))
			p++;
		char tok[24];
		size_t len = (size_t)(p - w);
		uint64_t ms;
		bool ok = len < sizeof(tok);
		if (ok) {
			memcpy(tok, w, len);
			tok[len] = '\0';
			ok = config_parse_duration(tok, &ms) == 0;
		}
		if (!ok) {
			*error_r = "not a duration: expected a number with an optional unit s, m, h or d, e.g. 5m";
			return -1;
		}
		if (ms < 1000 || ms / 1000 > SMTP_SCHEDULE_INTERVAL_MAX) {
			*error_r = "a retry interval must be between 1s and 30d";
			return -1;
		}
		if (n == SMTP_SCHEDULE_MAX) {
			*error_r = "too many retry intervals (at most 32; the last one repeats)";
			return -1;
		}
		waits[n++] = ms / 1000;
	}
	if (n == 0) {
		*error_r = "empty retry schedule";
		return -1;
	}
	s->n = n;
	memcpy(s->interval_s, waits, n * sizeof(waits[0]));
	return 0;
}

size_t smtp_schedule_format(const struct smtp_schedule *s, char *out, size_t size)
{
	size_t len = 0;

	if (size > 0)
		out[0] = '\0';
	for (size_t i = 0; i < s->n; i++) {
		uint64_t v = s->interval_s[i];
		char unit = 's';
		if (v % 86400 == 0) {
			v /= 86400;
			unit = 'd';
		} else if (v % 3600 == 0) {
			v /= 3600;
			unit = 'h';
		} else if (v % 60 == 0) {
			v /= 60;
			unit = 'm';
		}
		int k = snprintf(len < size ? out + len : NULL, len < size ? size - len : 0, "%s%" PRIu64 "%c",
				 i ? " " : "", v, unit);
		if (k > 0)
			len += (size_t)k;
	}
	return len;
}

time_t smtp_schedule_expiry(const struct smtp_schedule *s, time_t arrival)
{
	return arrival + (time_t)s->lifetime_s;
}

void smtp_schedule_next(const struct smtp_schedule *s, time_t arrival, unsigned attempts, time_t now,
			struct smtp_retry *r)
{
	time_t deadline = smtp_schedule_expiry(s, arrival);

	memset(r, 0, sizeof(*r));
	if (attempts == 0) {
		r->next = arrival;
		return;
	}
	if (now >= deadline) {
		r->expired = true;
		r->next = now;
		return;
	}
	/* A zeroed struct (n == 0) waits an hour rather than spinning. */
	uint64_t wait = 3600;
	if (s->n > 0)
		wait = s->interval_s[attempts - 1 < s->n ? attempts - 1 : s->n - 1];
	time_t next = now + (time_t)wait;
	/* The last attempt comes at the very end of the lifetime. */
	r->next = next < deadline ? next : deadline;
}

time_t smtp_schedule_delay_warning(const struct smtp_schedule *s, time_t arrival)
{
	if (s->delay_warning_s == 0 || s->delay_warning_s >= s->lifetime_s)
		return 0;
	return arrival + (time_t)s->delay_warning_s;
}
