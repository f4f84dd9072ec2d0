#include "core/trace.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"

/* A traced line longer than this is cut; the trace is for reading. */
#define TRACE_LINE_MAX 1024

static enum trace_mode trace_mode;

void trace_set_mode(enum trace_mode mode)
{
	trace_mode = mode;
}

enum trace_mode trace_get_mode(void)
{
	return trace_mode;
}

size_t trace_escape(const char *line, size_t len, char *out, size_t outlen)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	if (outlen == 0)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];
		char esc[4];
		size_t n;

		if (c >= 0x20 && c < 0x7f && c != '\\') {
			esc[0] = (char)c;
			n = 1;
		} else if (c == '\\' || c == '\r' || c == '\n' || c == '\t') {
			esc[0] = '\\';
			esc[1] = c == '\\' ? '\\' : c == '\r' ? 'r' : c == '\n' ? 'n' : 't';
			n = 2;
		} else {
			esc[0] = '\\';
			esc[1] = 'x';
			esc[2] = hex[c >> 4];
			esc[3] = hex[c & 15];
			n = 4;
		}
		if (o + n + 4 > outlen) {
			/* Room is kept for "..." and the NUL. */
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
		memcpy(out + o, esc, n);
		o += n;
	}
	out[o] = '\0';
	return o;
}

void trace_line(const char *proto, uint64_t id, char dir, const char *line, size_t len, size_t visible)
{
	char esc[TRACE_LINE_MAX];
	char out[TRACE_LINE_MAX + 64];

	if (trace_mode == TRACE_OFF)
		return;
	if (visible > len)
		visible = len;
	trace_escape(line, visible, esc, sizeof(esc));
	snprintf(out, sizeof(out), "[%s %llu] %c: %s%s", proto, (unsigned long long)id, dir, esc,
		 visible < len ? (visible > 0 && line[visible - 1] != ' ' ? " ***" : "***") : "");
	log_always(out);
}

void trace_body(const char *proto, uint64_t id, char dir, const char *data, size_t len)
{
	char out[128];

	if (trace_mode == TRACE_OFF || len == 0)
		return;
	if (trace_mode == TRACE_FULL) {
		/* Content line by line, so it reads like the message. */
		const char *end = data + len;
		while (data < end) {
			const char *lf = memchr(data, '\n', (size_t)(end - data));
			size_t n = lf ? (size_t)(lf - data) : (size_t)(end - data);
			size_t shown = n > 0 && data[n - 1] == '\r' ? n - 1 : n;
			trace_line(proto, id, dir, data, shown, shown);
			data += lf ? n + 1 : n;
		}
		return;
	}
	snprintf(out, sizeof(out), "[%s %llu] %c: <message content: %zu bytes>", proto,
		 (unsigned long long)id, dir, len);
	log_always(out);
}

void trace_event(const char *proto, uint64_t id, const char *fmt, ...)
{
	char text[512];
	char out[600];
	va_list ap;

	if (trace_mode == TRACE_OFF)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	snprintf(out, sizeof(out), "[%s %llu] * %s", proto, (unsigned long long)id, text);
	log_always(out);
}
