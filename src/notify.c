/*
 * notify: sd_notify and socket activation through libsystemd, or no-ops when
 * built without it (HAVE_SYSTEMD). Called from the main thread only.
 */
#include "config.h"
#include "notify.h"

#include <stdlib.h>

#ifdef HAVE_SYSTEMD
#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "util.h"

void notify_ready(void) { sd_notify(0, "READY=1\nSTATUS=serving"); }
void notify_stopping(void) { sd_notify(0, "STOPPING=1"); }
void notify_watchdog(void) { sd_notify(0, "WATCHDOG=1"); }

void
notify_reloading(void)
{
	/* RELOADING=1 must carry MONOTONIC_USEC for Type=notify-reload; harmless otherwise. */
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu",
	    (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000ULL);
}

/* "HH:MM:SS" in UTC, the clock journalctl shows with --utc. */
static void
notify_now(char *buf, size_t len)
{
	time_t t = time(NULL);
	struct tm tm;
	if (gmtime_r(&t, &tm) == NULL || strftime(buf, len, "%H:%M:%S UTC", &tm) == 0)
		snprintf(buf, len, "?");
}

void
notify_reloaded(void)
{
	char when[32];
	notify_now(when, sizeof(when));
	sd_notifyf(0, "READY=1\nSTATUS=serving; configuration reloaded at %s", when);
}

/*
 * The first line of problems, at most len - 1 bytes, into buf: systemd ignores
 * a STATUS= that is not valid UTF-8 (and would leave the previous one on
 * show), so invalid bytes and control characters become '?' and the cut falls
 * between characters. Returns how many more lines follow.
 */
static size_t
notify_first_line(const char *problems, char *buf, size_t len)
{
	const unsigned char *p = (const unsigned char *)problems;
	size_t n = strcspn(problems, "\n"), o = 0;
	for (size_t i = 0; i < n;) {
		size_t k = util_utf8_len(p + i, n - i);
		if (k == 0 || (k == 1 && p[i] < 0x20)) {
			if (o + 1 >= len)
				break;
			buf[o++] = '?';
			i += k == 0 ? 1 : k;
			continue;
		}
		if (o + k >= len)
			break;
		memcpy(buf + o, p + i, k);
		o += k;
		i += k;
	}
	buf[o] = '\0';
	size_t more = 0;
	for (const char *q = problems + n; *q != '\0'; q++)
		if (*q == '\n' && q[1] != '\0')
			more++;
	return more;
}

void
notify_reload_failed(const char *problems)
{
	char when[32], first[400], extra[64] = "";
	notify_now(when, sizeof(when));
	size_t more = notify_first_line(problems != NULL ? problems : "", first, sizeof(first));
	if (more > 0)
		snprintf(extra, sizeof(extra), " (and %zu more, see the journal)", more);
	sd_notifyf(0, "READY=1\nSTATUS=serving the previous configuration: reload failed at %s: "
	    "%s%s", when, first, extra);
}

double
notify_watchdog_interval(void)
{
	uint64_t usec = 0;
	if (sd_watchdog_enabled(0, &usec) > 0)
		return (double)usec / 1e6;
	return 0;
}

int
notify_listen_fd(void)
{
	int n = sd_listen_fds(1);
	return n >= 1 ? SD_LISTEN_FDS_START : -1;
}
#else
void notify_ready(void) {}
void notify_stopping(void) {}
void notify_watchdog(void) {}
void notify_reloading(void) {}
void notify_reloaded(void) {}
void notify_reload_failed(const char *problems) { (void)problems; }
double notify_watchdog_interval(void) { return 0; }
int notify_listen_fd(void) { return -1; }
#endif
