/*
 * The dates of SEARCH (see imap_search_private.h): the IMAP date of
 * BEFORE/ON/SINCE and the RFC 5322 Date header that SENTBEFORE/SENTON/
 * SENTSINCE compare with, both reduced to a day number.
 */
#include "imap/imap_search_private.h"

#include <string.h>
#include <strings.h>

static const char month_names[12][4] = { "jan", "feb", "mar", "apr", "may", "jun",
					  "jul", "aug", "sep", "oct", "nov", "dec" };

static int month_index(const char *s, size_t len)
{
	if (len != 3)
		return -1;
	for (int i = 0; i < 12; i++) {
		if (strncasecmp(s, month_names[i], 3) == 0)
			return i;
	}
	return -1;
}

/* Days since 1970-01-01 of a civil date (proleptic Gregorian; Howard
 * Hinnant's well-known algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

int64_t imap__search_day_of(int64_t t)
{
	return t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
}

static bool valid_date(unsigned y, int mon, unsigned d)
{
	static const unsigned char mdays[12] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	if (mon < 0 || d < 1 || d > mdays[mon])
		return false;
	return mon != 1 || d < 29 || leap;
}

int imap__search_date(const char *s, size_t len, int64_t *day_r)
{
	size_t i = 0;
	unsigned d = 0, y = 0;

	while (i < len && i < 2 && s[i] >= '0' && s[i] <= '9')
		d = d * 10 + (unsigned)(s[i++] - '0');
	if (i == 0 || i >= len || s[i] != '-')
		return -1;
	size_t ms = ++i;
	while (i < len && s[i] != '-')
		i++;
	int mon = month_index(s + ms, i - ms);
	if (i >= len)
		return -1;
	i++;
	size_t ys = i;
	while (i < len && s[i] >= '0' && s[i] <= '9')
		y = y * 10 + (unsigned)(s[i++] - '0');
	if (i != len || i - ys != 4 || !valid_date(y, mon, d))
		return -1;
	*day_r = days_from_civil(y, (unsigned)mon + 1, d);
	return 0;
}

static void skip_cfws(const char **p, const char *end)
{
	while (*p < end) {
		if (**p == ' ' || **p == '\t' || **p == '\r' || **p == '\n' || **p == ',') {
			(*p)++;
		} else if (**p == '(') {
			int depth = 0;
			do {
				if (**p == '(')
					depth++;
				else if (**p == ')')
					depth--;
				(*p)++;
			} while (*p < end && depth > 0);
		} else {
			break;
		}
	}
}

static bool read_uint(const char **p, const char *end, unsigned *v_r, size_t *digits_r)
{
	unsigned v = 0;
	size_t n = 0;

	while (*p < end && **p >= '0' && **p <= '9' && n < 9) {
		v = v * 10 + (unsigned)(**p - '0');
		(*p)++;
		n++;
	}
	*v_r = v;
	if (digits_r != NULL)
		*digits_r = n;
	return n > 0;
}

int imap__search_sent_day(const char *s, int64_t *day_r)
{
	const char *p = s, *end = s + strlen(s);
	unsigned d, y;
	size_t ydigits;

	skip_cfws(&p, end);
	if (p < end && ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z'))) {
		while (p < end && *p != ',' && *p != ' ')
			p++;   /* day name */
		skip_cfws(&p, end);
	}
	if (!read_uint(&p, end, &d, NULL))
		return -1;
	skip_cfws(&p, end);
	const char *ms = p;
	while (p < end && ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')))
		p++;
	int mon = month_index(ms, (size_t)(p - ms));
	skip_cfws(&p, end);
	if (!read_uint(&p, end, &y, &ydigits))
		return -1;
	if (ydigits <= 2)
		y += y < 50 ? 2000 : 1900;   /* RFC 5322 4.3 */
	else if (ydigits == 3)
		y += 1900;
	if (!valid_date(y, mon, d))
		return -1;
	/* RFC 3501 6.4.4: the day as written, "disregarding time and
	 * timezone" - the day the sender saw on the calendar. */
	*day_r = days_from_civil(y, (unsigned)mon + 1, d);
	return 0;
}
