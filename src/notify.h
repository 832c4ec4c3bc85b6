/*
 * notify: systemd integration (sd_notify READY/RELOADING/STOPPING/WATCHDOG and
 * socket activation) through libsystemd when built with it, through
 * fluxrelay's own implementation of the same protocols otherwise: both
 * builds work under the shipped Type=notify unit and fluxrelay.socket.
 * Without $NOTIFY_SOCKET, $WATCHDOG_USEC or $LISTEN_PID (not started by
 * systemd) each call does nothing. Called from the main thread only.
 */
#ifndef FLUXRELAY_NOTIFY_H
#define FLUXRELAY_NOTIFY_H

void notify_ready(void);
void notify_reloading(void);
void notify_stopping(void);
/*
 * The end of a SIGHUP reload: READY=1 with a STATUS= line that `systemctl
 * status` shows until the next one. notify_reload_failed takes the problems as
 * conf_load reports them (lines ending in '\n') and shows the first one, with
 * the time and "serving the previous configuration": systemd runs ExecReload=
 * without waiting for the daemon's verdict, so this line is where an operator
 * sees it.
 */
void notify_reloaded(void);
void notify_reload_failed(const char *problems);
/* Watchdog interval in seconds (0 = not enabled); ping with notify_watchdog. */
double notify_watchdog_interval(void);
void notify_watchdog(void);
/*
 * The first socket passed by socket activation, or -1 (logged when the
 * variables are malformed). Unsets $LISTEN_PID, $LISTEN_FDS and
 * $LISTEN_FDNAMES either way.
 */
int notify_listen_fd(void);

#ifdef FLUXRELAY_UNITTEST
#include <stdint.h>
/* The native protocol code, which test_notify checks in both builds. */
int notify_native_send(const char *state);
uint64_t notify_native_watchdog_usec(void);
int notify_native_listen_fds(void);
#endif

#endif
