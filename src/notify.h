/*
 * notify: systemd integration (sd_notify READY/RELOADING/STOPPING/WATCHDOG and
 * socket activation) through libsystemd when built with it; no-ops otherwise.
 */
#ifndef FLUXRELAY_NOTIFY_H
#define FLUXRELAY_NOTIFY_H

void notify_ready(void);
void notify_reloading(void);
void notify_stopping(void);
/* Watchdog interval in seconds (0 = not enabled); ping with notify_watchdog. */
double notify_watchdog_interval(void);
void notify_watchdog(void);
/* The first socket passed by socket activation, or -1. */
int notify_listen_fd(void);

#endif
