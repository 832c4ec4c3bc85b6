/*
 * notify: sd_notify and socket activation through libsystemd, or no-ops when
 * built without it (HAVE_SYSTEMD). Called from the main thread only.
 */
#include "config.h"
#include "notify.h"

#include <stdlib.h>

#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#include <time.h>

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
double notify_watchdog_interval(void) { return 0; }
int notify_listen_fd(void) { return -1; }
#endif
