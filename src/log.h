/*
 * log: one record per line on standard error, logfmt (default) or JSON.
 * Called from every thread; each record is written with a single write(2).
 * Only boundary modules (main, http, deliver, cli) log; library modules return
 * errors to their caller instead.
 */
#ifndef FLUXRELAY_LOG_H
#define FLUXRELAY_LOG_H

enum log_level { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };
enum log_format { LOG_FORMAT_LOGFMT, LOG_FORMAT_JSON };

void log_setup(enum log_level level, enum log_format format);
/* Parse "debug|info|warn|error" / "logfmt|json"; -1 when unknown. */
int log_level_parse(const char *s);
int log_format_parse(const char *s);
int log_enabled(enum log_level level);

/*
 * log_msg(level, msg, key1, value1, key2, value2, ..., NULL): every key and
 * value is a string; a NULL value prints as empty. Values that need quoting are
 * quoted and escaped. Callers redact secrets before passing them.
 */
void log_msg(enum log_level level, const char *msg, ...) __attribute__((sentinel));
#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)

#endif
