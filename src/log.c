/*
 * log: see log.h. Level and format are set at start-up and again on reload
 * (main thread) while HTTP, writer and delivery threads log: they are atomics
 * (relaxed: a record may use the old or the new setting, never a torn one,
 * and no data race for ThreadSanitizer to report). Each record is assembled
 * in memory and written with one write(2) so lines from different threads
 * never interleave.
 */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

static atomic_int log_level = LOG_LEVEL_INFO;
static atomic_int log_format = LOG_FORMAT_LOGFMT;

static const char *const log_level_names[] = { "debug", "info", "warn", "error" };

void
log_setup(enum log_level level, enum log_format format)
{
	atomic_store_explicit(&log_level, (int)level, memory_order_relaxed);
	atomic_store_explicit(&log_format, (int)format, memory_order_relaxed);
}

int
log_level_parse(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(s, log_level_names[i]) == 0)
			return i;
	return -1;
}

int
log_format_parse(const char *s)
{
	if (strcmp(s, "logfmt") == 0)
		return LOG_FORMAT_LOGFMT;
	if (strcmp(s, "json") == 0)
		return LOG_FORMAT_JSON;
	return -1;
}

int
log_enabled(enum log_level level)
{
	return (int)level >= atomic_load_explicit(&log_level, memory_order_relaxed);
}

static void
log_logfmt_value(struct util_buf *b, const char *s)
{
	int quote = *s == '\0';
	for (const char *p = s; *p && !quote; p++)
		if (*p == ' ' || *p == '"' || *p == '=' || (unsigned char)*p < 0x20)
			quote = 1;
	if (!quote) {
		util_buf_puts(b, s);
		return;
	}
	util_buf_json_string(b, s);
}

void
log_msg(enum log_level level, const char *msg, ...)
{
	if (!log_enabled(level))
		return;
	struct util_buf b = {0};
	char ts[40];
	struct timespec now;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	size_t n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + n, sizeof(ts) - n, ".%03ldZ", now.tv_nsec / 1000000);

	va_list ap;
	va_start(ap, msg);
	if (atomic_load_explicit(&log_format, memory_order_relaxed) == LOG_FORMAT_JSON) {
		util_buf_puts(&b, "{\"time\":\"");
		util_buf_puts(&b, ts);
		util_buf_printf(&b, "\",\"level\":\"%s\",\"msg\":", log_level_names[level]);
		util_buf_json_string(&b, msg);
		const char *k;
		while ((k = va_arg(ap, const char *)) != NULL) {
			const char *v = va_arg(ap, const char *);
			util_buf_puts(&b, ",");
			util_buf_json_string(&b, k);
			util_buf_puts(&b, ":");
			util_buf_json_string(&b, v ? v : "");
		}
		util_buf_puts(&b, "}\n");
	} else {
		util_buf_printf(&b, "time=%s level=%s msg=", ts, log_level_names[level]);
		util_buf_json_string(&b, msg);
		const char *k;
		while ((k = va_arg(ap, const char *)) != NULL) {
			const char *v = va_arg(ap, const char *);
			util_buf_printf(&b, " %s=", k);
			log_logfmt_value(&b, v ? v : "");
		}
		util_buf_puts(&b, "\n");
	}
	va_end(ap);
	const char *p = b.data;
	size_t left = b.len;
	while (left > 0) {
		ssize_t w = write(2, p, left);
		if (w <= 0)
			break;
		p += w;
		left -= (size_t)w;
	}
	util_buf_free(&b);
}
