/*
 * notify: the service manager's side channels. Built with libsystemd
 * (HAVE_SYSTEMD), the messages and the environment go through sd_notify(3),
 * sd_watchdog_enabled(3) and sd_listen_fds(3); without it, through this
 * file's own code for the same documented, stable protocols
 * (notify_native_*), so the shipped Type=notify unit with WatchdogSec= and
 * fluxrelay.socket work with either build. The native code is also compiled
 * into the unit test of a libsystemd build, which checks both side by side.
 *
 * Called from the main thread only: it reads and unsets environment
 * variables, and keeps notify_warned.
 */
#include "config.h"
#include "notify.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "unittest.h"
#include "util.h"

#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

/* The first descriptor socket activation passes (sd_listen_fds(3)). */
#define NOTIFY_LISTEN_FDS_START 3

#if !defined(HAVE_SYSTEMD) || defined(FLUXRELAY_UNITTEST)
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* A decimal number and nothing else (no sign, no blanks): 0, or -1. */
static int
notify_parse_u64(const char *s, uint64_t *out)
{
	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*out = v;
	return 0;
}

/* Whether a *_PID variable names this process. */
static bool
notify_is_me(const char *pid)
{
	uint64_t v;
	return notify_parse_u64(pid, &v) == 0 && v == (uint64_t)getpid();
}

/*
 * sd_notify(3)'s protocol: state as one datagram to the AF_UNIX socket
 * $NOTIFY_SOCKET names, a path or, after a leading '@', a name in the
 * abstract namespace (whose address length counts no trailing NUL: the name
 * is the bytes the length covers). Never blocks: a manager whose queue is
 * full loses the datagram rather than stopping the main thread, and the
 * watchdog pings again. 0 when sent or when $NOTIFY_SOCKET is unset or
 * empty; -1 with errno otherwise.
 */
UNITTEST int
notify_native_send(const char *state)
{
	const char *name = getenv("NOTIFY_SOCKET");
	if (name == NULL || name[0] == '\0')
		return 0;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len = strlen(name);
	socklen_t salen;
	if (name[0] == '@' && len >= 2 && len <= sizeof(sa.sun_path)) {
		memcpy(sa.sun_path, name, len);
		sa.sun_path[0] = '\0';
		salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	} else if (name[0] == '/' && len < sizeof(sa.sun_path)) {
		memcpy(sa.sun_path, name, len + 1);
		salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
	} else {
		/* Too long, or a form this code does not speak (systemd's
		 * "vsock:" for virtual machines). */
		errno = EAFNOSUPPORT;
		return -1;
	}
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	ssize_t n;
	do
		n = sendto(fd, state, strlen(state), MSG_DONTWAIT | MSG_NOSIGNAL,
		    (const struct sockaddr *)&sa, salen);
	while (n < 0 && errno == EINTR);
	int saved = errno;
	close(fd);
	errno = saved;
	return n < 0 ? -1 : 0;
}

/*
 * sd_watchdog_enabled(3)'s rule: $WATCHDOG_USEC, a positive number of
 * microseconds, when $WATCHDOG_PID is unset or names this process; else 0.
 * The variables stay (nothing here forks).
 */
UNITTEST uint64_t
notify_native_watchdog_usec(void)
{
	uint64_t usec;
	const char *pid = getenv("WATCHDOG_PID");
	if (notify_parse_u64(getenv("WATCHDOG_USEC"), &usec) < 0 || usec == 0)
		return 0;
	if (pid != NULL && !notify_is_me(pid))
		return 0;
	return usec;
}

/*
 * sd_listen_fds(3)'s protocol: when $LISTEN_PID is this process,
 * $LISTEN_FDS descriptors were passed from NOTIFY_LISTEN_FDS_START on. They
 * become close-on-exec, and $LISTEN_PID, $LISTEN_FDS and $LISTEN_FDNAMES
 * are unset whatever the outcome, as sd_listen_fds(1) does, so that no
 * process started later takes them for its own. Returns how many were
 * passed (0 when none are for this process), or -1 when the variables are
 * malformed or a descriptor is not open.
 */
UNITTEST int
notify_native_listen_fds(void)
{
	int n = 0;
	uint64_t fds;
	const char *pid = getenv("LISTEN_PID"), *count = getenv("LISTEN_FDS");
	if (pid == NULL || count == NULL)
		goto out;
	if (!notify_is_me(pid)) {
		uint64_t other;
		if (notify_parse_u64(pid, &other) < 0 || other == 0)
			n = -1;
		goto out;
	}
	if (notify_parse_u64(count, &fds) < 0 || fds > (uint64_t)(INT_MAX - NOTIFY_LISTEN_FDS_START)) {
		n = -1;
		goto out;
	}
	for (int fd = NOTIFY_LISTEN_FDS_START; fd < NOTIFY_LISTEN_FDS_START + (int)fds; fd++) {
		int flags = fcntl(fd, F_GETFD);
		if (flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0) {
			n = -1;
			goto out;
		}
	}
	n = (int)fds;
out:
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	return n;
}
#endif

/* Set after the first failed notification: one warning, not one per ping. */
static bool notify_warned;

/*
 * The one way out for every state. A failure only costs the manager's view
 * (a start that times out, a watchdog kill), so it is logged, once, naming
 * the socket (which is no secret); the daemon goes on.
 */
static void
notify_send(const char *state)
{
#ifdef HAVE_SYSTEMD
	int r = sd_notify(0, state);
	if (r < 0)
		errno = -r;
#else
	int r = notify_native_send(state);
#endif
	if (r < 0 && !notify_warned) {
		notify_warned = true;
		log_warn("cannot notify the service manager", "notify_socket",
		    getenv("NOTIFY_SOCKET"), "error", strerror(errno), NULL);
	}
}

void notify_ready(void) { notify_send("READY=1\nSTATUS=serving"); }
void notify_stopping(void) { notify_send("STOPPING=1"); }
void notify_watchdog(void) { notify_send("WATCHDOG=1"); }

void
notify_reloading(void)
{
	/* RELOADING=1 must carry MONOTONIC_USEC for Type=notify-reload; harmless otherwise. */
	struct timespec ts;
	char msg[64];
	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
	    (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000ULL);
	notify_send(msg);
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
	char when[32], msg[128];
	notify_now(when, sizeof(when));
	snprintf(msg, sizeof(msg), "READY=1\nSTATUS=serving; configuration reloaded at %s", when);
	notify_send(msg);
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
	/* msg holds all of first (399 bytes) and extra: the cut stays
	 * notify_first_line's, between characters. */
	char when[32], first[400], extra[64] = "", msg[640];
	notify_now(when, sizeof(when));
	size_t more = notify_first_line(problems != NULL ? problems : "", first, sizeof(first));
	if (more > 0)
		snprintf(extra, sizeof(extra), " (and %zu more, see the journal)", more);
	snprintf(msg, sizeof(msg), "READY=1\nSTATUS=serving the previous configuration: "
	    "reload failed at %s: %s%s", when, first, extra);
	notify_send(msg);
}

double
notify_watchdog_interval(void)
{
#ifdef HAVE_SYSTEMD
	uint64_t usec = 0;
	if (sd_watchdog_enabled(0, &usec) <= 0)
		usec = 0;
#else
	uint64_t usec = notify_native_watchdog_usec();
#endif
	return (double)usec / 1e6;
}

int
notify_listen_fd(void)
{
#ifdef HAVE_SYSTEMD
	int n = sd_listen_fds(1);
#else
	int n = notify_native_listen_fds();
#endif
	if (n < 0)
		log_warn("socket activation: LISTEN_PID/LISTEN_FDS malformed or a passed "
		    "descriptor is not open; listening on the configured address", NULL);
	return n >= 1 ? NOTIFY_LISTEN_FDS_START : -1;
}
