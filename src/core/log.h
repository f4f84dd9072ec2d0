#ifndef POSTBOTE_CORE_LOG_H
#define POSTBOTE_CORE_LOG_H

/*
 * Logging: one line per event, to stderr (default) or syslog. Messages must
 * never contain secrets; protocol dialogue goes to the trace (trace.h), not
 * here.
 */

#include <stdbool.h>

enum log_level {
	LOG_LEVEL_ERROR = 0,
	LOG_LEVEL_WARN,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
};

/* Parse "error", "warn", "info", "debug". Returns 0, or -1 if unknown. */
int log_level_parse(const char *name, enum log_level *level_r);
const char *log_level_name(enum log_level level);

/* Choose where lines go and the lowest level written. With to_syslog, lines
 * go to syslog(3) with the given facility name ("mail", "daemon", "local0"
 * ...); otherwise to stderr with a timestamp. Returns -1 on an unknown
 * facility. May be called again (SIGHUP). */
int log_setup(enum log_level level, bool to_syslog, const char *facility);
/* Parse a syslog facility name; returns 0 and the LOG_* value, or -1. */
int log_facility_parse(const char *name, int *facility_r);

bool log_enabled(enum log_level level);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Write a line whatever the level (the protocol trace, which is switched on
 * by its own setting). */
void log_always(const char *line);

#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) do { if (log_enabled(LOG_LEVEL_DEBUG)) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__); } while (0)

#endif
