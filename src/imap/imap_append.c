/*
 * APPEND (RFC 3501 6.3.11) with APPENDUID (RFC 4315 3).
 *
 * The message is the command's literal, which the parser holds until the
 * command completes; the backend stores it through the writer thread and
 * answers later. An APPEND to the selected mailbox needs nothing special:
 * the backend reports the new message as a change, and imap_done() tells
 * the client its EXISTS before the tagged OK.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap/imap_mailbox.h"
#include "imap/imap_private.h"

static int imap_date_digits(const char *s, size_t n, int *v_r)
{
	int v = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*v_r = v;
	return 0;
}

/* Days from 1970-01-01 to y-m-d of the proleptic Gregorian calendar. */
static int64_t imap_days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

int imap_date_time_parse(const char *s, size_t len, int64_t *t_r)
{
	static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	static const int mdays[12] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int day, mon = -1, year, hh, mm, ss, zh, zm;
	size_t p = 0;

	/* RFC 3501 9: date-day-fixed is " d" or "dd"; "d" is taken too, as
	 * Dovecot does, since clients send it. */
	if (len > 0 && s[0] == ' ')
		p = 1;
	size_t dl = 0;
	while (p + dl < len && dl < 2 && s[p + dl] >= '0' && s[p + dl] <= '9')
		dl++;
	if (dl == 0 || (p == 1 && dl != 1) || imap_date_digits(s + p, dl, &day) < 0)
		return -1;
	p += dl;
	/* Now exactly "-Mon-yyyy hh:mm:ss +zzzz": 24 bytes. */
	if (len - p != 24 || s[p] != '-' || s[p + 4] != '-' || s[p + 9] != ' ' || s[p + 12] != ':' ||
	    s[p + 15] != ':' || s[p + 18] != ' ' || (s[p + 19] != '+' && s[p + 19] != '-'))
		return -1;
	for (int i = 0; i < 12; i++) {
		if (strncasecmp(s + p + 1, months[i], 3) == 0)
			mon = i;
	}
	if (mon < 0 || imap_date_digits(s + p + 5, 4, &year) < 0 || imap_date_digits(s + p + 10, 2, &hh) < 0 ||
	    imap_date_digits(s + p + 13, 2, &mm) < 0 || imap_date_digits(s + p + 16, 2, &ss) < 0 ||
	    imap_date_digits(s + p + 20, 2, &zh) < 0 || imap_date_digits(s + p + 22, 2, &zm) < 0)
		return -1;
	bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
	if (day < 1 || day > mdays[mon] || (mon == 1 && day == 29 && !leap))
		return -1;
	/* A leap second (:60) is allowed, as RFC 5322 allows it. */
	if (hh > 23 || mm > 59 || ss > 60 || zm > 59)
		return -1;
	int64_t zone = (int64_t)zh * 3600 + zm * 60;
	if (s[p + 19] == '-')
		zone = -zone;
	*t_r = imap_days_from_civil(year, mon + 1, day) * 86400 + hh * 3600 + mm * 60 + ss - zone;
	return 0;
}

static void imap_append_done(void *arg, enum imap_status st, uint32_t uidvalidity, const uint32_t *uids, size_t n)
{
	struct imap *im = arg;

	im->pending = NULL;
	if (st == IMAP_OK && n == 1 && uids != NULL && uids[0] != 0)
		imap_ok(im, "[APPENDUID %u %u] APPEND completed", uidvalidity, uids[0]);
	else if (st == IMAP_OK)
		imap_ok(im, "APPEND completed");
	else if (st == IMAP_NONEXISTENT)
		/* RFC 3501 6.3.11: the client may CREATE it and try again. */
		imap_no(im, "[TRYCREATE] Mailbox does not exist");
	else
		imap_no(im, "%s", imap_status_text(st));
	imap_done(im, SESSION_EFFECT_NONE);
}

enum session_effect imap_cmd_append(struct imap *im)
{
	const struct imap_arg *flags = NULL, *date = NULL;
	const char *error = NULL;
	int64_t when = 0;

	/* RFC 3501 9: "APPEND" SP mailbox [SP flag-list] [SP date-time] SP literal */
	if (im->cmd.nargs < 2 || im->cmd.nargs > 4)
		return imap_bad(im, "Syntax: APPEND mailbox [(flags)] [date-time] {literal}");
	const struct imap_arg *a = imap_arg_next(&im->cmd.args[0]);
	size_t left = im->cmd.nargs - 1;
	if (left > 1 && a->type == IMAP_ARG_LIST) {
		flags = a;
		a = imap_arg_next(a);
		left--;
	}
	if (left > 1 && a->type == IMAP_ARG_QUOTED) {
		date = a;
		a = imap_arg_next(a);
		left--;
	}
	if (left != 1 || a->type != IMAP_ARG_LITERAL)
		return imap_bad(im, "Syntax: APPEND mailbox [(flags)] [date-time] {literal}");
	if (date != NULL && imap_date_time_parse(date->str, date->len, &when) < 0)
		return imap_bad(im, "Invalid date-time");

	uint32_t sysflags = 0;
	const char **names = NULL;
	size_t nnames = 0;
	if (flags != NULL && imap_parse_flags(flags, &sysflags, &names, &nnames, &error) < 0)
		return imap_bad(im, "%s", error);
	char *name = imap_mailbox_arg(&im->cmd.args[0], &error);
	if (name == NULL) {
		free(names);
		return imap_bad(im, "%s", error);
	}
	if (a->len == 0) {
		/* Allowed by the grammar, useless as mail; Dovecot says no too. */
		free(names);
		free(name);
		return imap_no(im, "Can't save a zero byte message");
	}
	void *h = im->be->append(im->be->ctx, im->acct, name, a->str, a->len, sysflags, names, nnames, when,
				 imap_append_done, im);
	free(names);
	free(name);
	if (h == NULL)
		return imap_no(im, "%s", imap_status_text(IMAP_TEMPFAIL));
	im->pending = h;
	return SESSION_EFFECT_WAIT;
}
