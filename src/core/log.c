#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <sys/time.h>

static enum log_level log_min = LOG_LEVEL_INFO;
static bool log_syslog;

static const char *const log_names[] = { "error", "warn", "info", "debug" };

int log_level_parse(const char *name, enum log_level *level_r)
{
	for (size_t i = 0; i < sizeof(log_names) / sizeof(log_names[0]); i++) {
		if (strcmp(name, log_names[i]) == 0) {
			*level_r = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

const char *log_level_name(enum log_level level)
{
	return (unsigned)level < 4 ? log_names[level] : "?";
}

static const struct { const char *name; int value; } log_facilities[] = {
	{ "mail", LOG_MAIL }, { "daemon", LOG_DAEMON }, { "user", LOG_USER },
	{ "local0", LOG_LOCAL0 }, { "local1", LOG_LOCAL1 }, { "local2", LOG_LOCAL2 },
	{ "local3", LOG_LOCAL3 }, { "local4", LOG_LOCAL4 }, { "local5", LOG_LOCAL5 },
	{ "local6", LOG_LOCAL6 }, { "local7", LOG_LOCAL7 },
};

int log_facility_parse(const char *name, int *facility_r)
{
	for (size_t i = 0; i < sizeof(log_facilities) / sizeof(log_facilities[0]); i++) {
		if (strcmp(name, log_facilities[i].name) == 0) {
			*facility_r = log_facilities[i].value;
			return 0;
		}
	}
	return -1;
}

int log_setup(enum log_level level, bool to_syslog, const char *facility)
{
	int fac = LOG_MAIL;

	if (to_syslog && facility != NULL && log_facility_parse(facility, &fac) < 0)
		return -1;
	if (log_syslog && !to_syslog)
		closelog();
	if (to_syslog)
		openlog("postbote", LOG_PID | LOG_NDELAY, fac);
	log_syslog = to_syslog;
	log_min = level;
	return 0;
}

bool log_enabled(enum log_level level)
{
	return level <= log_min;
}

static void log_write(enum log_level level, const char *line)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };

	if (log_syslog) {
		syslog(prio[level], "%s", line);
		return;
	}
	struct timeval tv;
	struct tm tm;
	char stamp[32];
	gettimeofday(&tv, NULL);
	localtime_r(&tv.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
	fprintf(stderr, "%s.%03d %-5s %s\n", stamp, (int)(tv.tv_usec / 1000),
		log_level_name(level), line);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	char line[2048];
	va_list ap;

	if (!log_enabled(level))
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	log_write(level, line);
}

void log_always(const char *line)
{
	log_write(LOG_LEVEL_INFO, line);
}
