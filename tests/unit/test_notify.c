/*
 * Unit tests for notify: the messages a service manager reads from
 * $NOTIFY_SOCKET (a socket of the test's own, by path and in the abstract
 * namespace), the watchdog interval from $WATCHDOG_USEC / $WATCHDOG_PID, and
 * the listening socket of socket activation from $LISTEN_PID / $LISTEN_FDS.
 * The public functions are tested in either build (libsystemd or fluxrelay's
 * own protocol code), so the same expectations hold for both; the native
 * code (notify_native_*) is compiled in with FLUXRELAY_UNITTEST and tested
 * directly, so a libsystemd build checks it too.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "notify.h"

/* ---- a notification socket of the test's own ---- */

/* A fresh directory per test (Check forks each one), and the socket in it. */
static char t_dir[64];
static int t_sock = -1;

/*
 * Bind a datagram socket where $NOTIFY_SOCKET says: a path in the test's
 * directory (i == 0) or a name in the abstract namespace (i == 1), whose
 * address has no trailing NUL, as systemd binds its own.
 */
static void
t_listen(int i)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char env[sizeof(sa.sun_path) + 1];
	socklen_t len;
	if (i == 0) {
		snprintf(env, sizeof(env), "%s/notify", t_dir);
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", env);
		len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(env) + 1);
	} else {
		/* The abstract name is unique per directory, hence per test. */
		snprintf(env, sizeof(env), "@fluxrelay-test%s", t_dir);
		memcpy(sa.sun_path, env, strlen(env));
		sa.sun_path[0] = '\0';
		len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(env));
	}
	t_sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(t_sock, 0);
	ck_assert_msg(bind(t_sock, (struct sockaddr *)&sa, len) == 0, "bind %s: %s", env,
	    strerror(errno));
	ck_assert_int_eq(setenv("NOTIFY_SOCKET", env, 1), 0);
}

/* The next datagram, NUL-terminated in buf (waits up to 5 s; fails without one). */
static const char *
t_recv(char *buf, size_t size)
{
	struct pollfd p = { .fd = t_sock, .events = POLLIN };
	ck_assert_msg(poll(&p, 1, 5000) == 1, "no datagram on $NOTIFY_SOCKET");
	ssize_t n = recv(t_sock, buf, size - 1, MSG_DONTWAIT);
	ck_assert_int_ge(n, 0);
	ck_assert_msg(memchr(buf, '\0', (size_t)n) == NULL, "NUL byte in the datagram");
	buf[n] = '\0';
	return buf;
}

/* True when no datagram waits. */
static int
t_none(void)
{
	struct pollfd p = { .fd = t_sock, .events = POLLIN };
	return poll(&p, 1, 0) == 0;
}

static void
t_setup(void)
{
	snprintf(t_dir, sizeof(t_dir), "/tmp/frnotify.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(t_dir));
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
}

static void
t_teardown(void)
{
	if (t_sock >= 0)
		close(t_sock);
	t_sock = -1;
	char path[128];
	snprintf(path, sizeof(path), "%s/notify", t_dir);
	unlink(path);
	rmdir(t_dir);
}

/* "HH:MM:SS UTC" at s, the form notify_reloaded's STATUS= carries. */
static int
t_is_clock(const char *s)
{
	unsigned h, m, sec;
	int end = 0;
	return sscanf(s, "%2u:%2u:%2u UTC%n", &h, &m, &sec, &end) == 3 && end == 12 &&
	    h < 24 && m < 60 && sec < 61;
}

static uint64_t
t_monotonic_usec(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ---- the states, through the module's interface ---- */

START_TEST(test_states)
{
	char buf[2048];
	t_listen(_i);

	notify_ready();
	ck_assert_str_eq(t_recv(buf, sizeof(buf)), "READY=1\nSTATUS=serving");
	notify_watchdog();
	ck_assert_str_eq(t_recv(buf, sizeof(buf)), "WATCHDOG=1");
	notify_stopping();
	ck_assert_str_eq(t_recv(buf, sizeof(buf)), "STOPPING=1");

	/* RELOADING=1 with the monotonic clock of the moment (Type=notify-reload). */
	uint64_t before = t_monotonic_usec();
	notify_reloading();
	uint64_t after = t_monotonic_usec();
	unsigned long long usec = 0;
	int end = 0;
	ck_assert_msg(sscanf(t_recv(buf, sizeof(buf)), "RELOADING=1\nMONOTONIC_USEC=%llu%n",
	    &usec, &end) == 1 && buf[end] == '\0', "reloading: %s", buf);
	ck_assert_msg(usec >= before && usec <= after, "MONOTONIC_USEC=%llu outside [%llu, %llu]",
	    usec, (unsigned long long)before, (unsigned long long)after);
	ck_assert(t_none());
}
END_TEST

START_TEST(test_reload_status)
{
	char buf[2048];
	t_listen(_i);

	static const char ok[] = "READY=1\nSTATUS=serving; configuration reloaded at ";
	notify_reloaded();
	t_recv(buf, sizeof(buf));
	ck_assert_msg(strncmp(buf, ok, strlen(ok)) == 0 && t_is_clock(buf + strlen(ok)) &&
	    strlen(buf) == strlen(ok) + 12, "reloaded: %s", buf);

	/* The first problem, the count of the others; a control character and
	 * a byte that is not UTF-8 shown as '?' (systemd ignores such a STATUS=). */
	static const char failed[] = "READY=1\nSTATUS=serving the previous configuration: "
	    "reload failed at ";
	notify_reload_failed("/etc/f.conf:3: listen.port: caf\xc3\xa9\t\xff\n"
	    "/etc/f.conf:9: second\n/etc/f.conf:12: third\n");
	t_recv(buf, sizeof(buf));
	ck_assert_msg(strncmp(buf, failed, strlen(failed)) == 0 &&
	    t_is_clock(buf + strlen(failed)), "reload failed: %s", buf);
	ck_assert_str_eq(buf + strlen(failed) + 12,
	    ": /etc/f.conf:3: listen.port: caf\xc3\xa9??"
	    " (and 2 more, see the journal)");

	notify_reload_failed("one problem\n");
	t_recv(buf, sizeof(buf));
	ck_assert_str_eq(buf + strlen(failed) + 12, ": one problem");
	ck_assert(t_none());
}
END_TEST

/* Without $NOTIFY_SOCKET nothing is sent, and nothing fails. */
START_TEST(test_no_socket)
{
	t_listen(0);
	unsetenv("NOTIFY_SOCKET");
	notify_ready();
	notify_reloading();
	notify_reloaded();
	notify_reload_failed("x\n");
	notify_watchdog();
	notify_stopping();
	ck_assert(t_none());
}
END_TEST

/* ---- the watchdog interval ---- */

static const struct {
	const char *usec, *pid;   /* pid: NULL unset, "self", "parent" or a value */
	double want;
} watchdog_cases[] = {
	{ NULL, NULL, 0 },
	{ "30000000", NULL, 30 },
	{ "1500000", "self", 1.5 },
	{ "30000000", "parent", 0 },     /* for another process */
	{ "30000000", "x", 0 },
	{ "0", NULL, 0 },
	{ "", NULL, 0 },
	{ "abc", NULL, 0 },
	{ "30s", NULL, 0 },
	{ "-5", NULL, 0 },
};

/* The environment of watchdog_cases[i]: "self" and "parent" name those pids. */
static void
watchdog_case_env(int i)
{
	char pid[32];
	if (watchdog_cases[i].usec != NULL)
		setenv("WATCHDOG_USEC", watchdog_cases[i].usec, 1);
	if (watchdog_cases[i].pid != NULL) {
		if (strcmp(watchdog_cases[i].pid, "self") == 0)
			snprintf(pid, sizeof(pid), "%ld", (long)getpid());
		else if (strcmp(watchdog_cases[i].pid, "parent") == 0)
			snprintf(pid, sizeof(pid), "%ld", (long)getppid());
		else
			snprintf(pid, sizeof(pid), "%s", watchdog_cases[i].pid);
		setenv("WATCHDOG_PID", pid, 1);
	}
}

START_TEST(test_watchdog_interval)
{
	watchdog_case_env(_i);
	ck_assert_msg(notify_watchdog_interval() == watchdog_cases[_i].want,
	    "WATCHDOG_USEC=%s WATCHDOG_PID=%s: %g, want %g",
	    watchdog_cases[_i].usec ? watchdog_cases[_i].usec : "(unset)",
	    watchdog_cases[_i].pid ? watchdog_cases[_i].pid : "(unset)",
	    notify_watchdog_interval(), watchdog_cases[_i].want);
}
END_TEST

/* ---- socket activation ---- */

/*
 * Each case runs in a child process of its own, which may put a socket on
 * descriptor 3 (Check's own descriptors stay untouched in the test process)
 * and set LISTEN_PID to its own pid, as systemd does for the daemon.
 */
enum t_pid { T_PID_UNSET, T_PID_SELF, T_PID_PARENT, T_PID_BAD };

static const struct {
	enum t_pid pid;
	const char *fds, *names;  /* NULL: unset */
	int open;                 /* descriptors made from 3 on */
	int n;                    /* notify_native_listen_fds(); notify_listen_fd()
	                             gives 3 when n >= 1, else -1 */
} listen_cases[] = {
	{ T_PID_SELF, "1", "fluxrelay", 1, 1 },
	{ T_PID_SELF, "1", NULL, 1, 1 },
	{ T_PID_SELF, "2", "a:b", 2, 2 },
	{ T_PID_PARENT, "1", NULL, 1, 0 },    /* meant for another process */
	{ T_PID_UNSET, "1", NULL, 1, 0 },
	{ T_PID_BAD, "1", NULL, 1, -1 },
	{ T_PID_SELF, NULL, NULL, 1, 0 },
	{ T_PID_SELF, "0", NULL, 0, 0 },
	{ T_PID_SELF, "1x", NULL, 1, -1 },
	{ T_PID_SELF, "-1", NULL, 1, -1 },
	{ T_PID_SELF, "1", NULL, 0, -1 },     /* descriptor 3 not open */
};

#define T_CHILD_CHECK(c) do { \
	if (!(c)) { \
		fprintf(stderr, "listen case %d: failed: %s\n", i, #c); \
		return 1; \
	} \
} while (0)

/* The child's half: 0 when the case holds, else 1 after saying why. */
static int
t_listen_child(int i, int native)
{
	int s[2] = { -1, -1 };
	char pid[32];
	/* Two listening sockets with addresses of their own, kept above the
	 * descriptors the case fills. */
	for (int k = 0; k < 2; k++) {
		struct sockaddr_in sin = { .sin_family = AF_INET,
		    .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		int raw = socket(AF_INET, SOCK_STREAM, 0);
		T_CHILD_CHECK(raw >= 0);
		T_CHILD_CHECK(bind(raw, (struct sockaddr *)&sin, sizeof(sin)) == 0);
		T_CHILD_CHECK(listen(raw, 1) == 0);
		s[k] = fcntl(raw, F_DUPFD, 10);
		T_CHILD_CHECK(s[k] >= 10);
		close(raw);
	}
	for (int k = 0; k < listen_cases[i].open; k++) {
		T_CHILD_CHECK(dup2(s[k], 3 + k) == 3 + k);
		T_CHILD_CHECK(fcntl(3 + k, F_GETFD) == 0);   /* inherited, not CLOEXEC */
	}
	for (int k = listen_cases[i].open; k < 2; k++)
		close(3 + k);
	switch (listen_cases[i].pid) {
	case T_PID_UNSET:
		break;
	case T_PID_SELF:
		snprintf(pid, sizeof(pid), "%ld", (long)getpid());
		setenv("LISTEN_PID", pid, 1);
		break;
	case T_PID_PARENT:
		snprintf(pid, sizeof(pid), "%ld", (long)getppid());
		setenv("LISTEN_PID", pid, 1);
		break;
	case T_PID_BAD:
		setenv("LISTEN_PID", "self", 1);
		break;
	}
	if (listen_cases[i].fds != NULL)
		setenv("LISTEN_FDS", listen_cases[i].fds, 1);
	if (listen_cases[i].names != NULL)
		setenv("LISTEN_FDNAMES", listen_cases[i].names, 1);

	int fd;
	if (native) {
		int n = notify_native_listen_fds();
		T_CHILD_CHECK(n == listen_cases[i].n);
		fd = n >= 1 ? 3 : -1;
	} else {
		fd = notify_listen_fd();
		T_CHILD_CHECK(fd == (listen_cases[i].n >= 1 ? 3 : -1));
	}
	/* Unset either way, so no child process takes them for its own. */
	T_CHILD_CHECK(getenv("LISTEN_PID") == NULL);
	T_CHILD_CHECK(getenv("LISTEN_FDS") == NULL);
	T_CHILD_CHECK(getenv("LISTEN_FDNAMES") == NULL);
	if (fd >= 0) {
		/* Every passed descriptor is now close-on-exec. */
		for (int k = 0; k < listen_cases[i].open; k++)
			T_CHILD_CHECK((fcntl(3 + k, F_GETFD) & FD_CLOEXEC) != 0);
		struct sockaddr_storage a, b;
		socklen_t la = sizeof(a), lb = sizeof(b);
		T_CHILD_CHECK(getsockname(fd, (struct sockaddr *)&a, &la) == 0);
		T_CHILD_CHECK(getsockname(s[0], (struct sockaddr *)&b, &lb) == 0);
		T_CHILD_CHECK(la == lb && memcmp(&a, &b, la) == 0);
	}
	return 0;
}

static void
t_listen_case(int i, int native)
{
	fflush(NULL);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(t_listen_child(i, native));
	int status = 0;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "listen case %d (%s) failed (see above)", i, native ? "native" : "notify_listen_fd");
}

START_TEST(test_listen_fd)
{
	t_listen_case(_i, 0);
}
END_TEST

START_TEST(test_native_listen_fds)
{
	t_listen_case(_i, 1);
}
END_TEST

/* ---- the native protocol code, in either build ---- */

START_TEST(test_native_send)
{
	static const char *const states[] = {
		"READY=1",
		"READY=1\nSTATUS=serving",
		"STATUS=caf\xc3\xa9 \xe2\x80\x94 reload failed at 12:00:00 UTC",
		"WATCHDOG=1",
	};
	char buf[8192], big[4001];
	t_listen(_i);
	for (size_t k = 0; k < sizeof(states) / sizeof(states[0]); k++) {
		ck_assert_int_eq(notify_native_send(states[k]), 0);
		ck_assert_str_eq(t_recv(buf, sizeof(buf)), states[k]);
	}
	/* One datagram, however long the STATUS= line. */
	memset(big, 'x', sizeof(big) - 1);
	memcpy(big, "STATUS=", 7);
	big[sizeof(big) - 1] = '\0';
	ck_assert_int_eq(notify_native_send(big), 0);
	ck_assert_str_eq(t_recv(buf, sizeof(buf)), big);
	ck_assert(t_none());
}
END_TEST

START_TEST(test_native_send_errors)
{
	char name[200];
	/* Nothing asked: nothing sent, no error. */
	ck_assert_int_eq(notify_native_send("READY=1"), 0);
	setenv("NOTIFY_SOCKET", "", 1);
	ck_assert_int_eq(notify_native_send("READY=1"), 0);

	static const char *const bad[] = { "relative/notify", "@", "vsock:2:1234" };
	for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		setenv("NOTIFY_SOCKET", bad[k], 1);
		errno = 0;
		ck_assert_msg(notify_native_send("READY=1") == -1 && errno == EAFNOSUPPORT,
		    "NOTIFY_SOCKET=%s: errno %d", bad[k], errno);
	}
	/* Longer than sun_path: refused, not cut to another name. */
	memset(name, 'a', sizeof(name) - 1);
	name[0] = '/';
	name[sizeof(name) - 1] = '\0';
	setenv("NOTIFY_SOCKET", name, 1);
	ck_assert_int_eq(notify_native_send("READY=1"), -1);
	name[0] = '@';
	setenv("NOTIFY_SOCKET", name, 1);
	ck_assert_int_eq(notify_native_send("READY=1"), -1);

	/* Nobody there. */
	snprintf(name, sizeof(name), "%s/missing", t_dir);
	setenv("NOTIFY_SOCKET", name, 1);
	errno = 0;
	ck_assert_int_eq(notify_native_send("READY=1"), -1);
	ck_assert_int_eq(errno, ENOENT);

	/* The public functions carry on (and log once). */
	notify_ready();
	notify_watchdog();
}
END_TEST

/*
 * A manager that does not read: the queue fills and sends fail with EAGAIN
 * at once rather than blocking the main thread (Check's timeout ends a
 * test that would block).
 */
START_TEST(test_native_never_blocks)
{
	t_listen(_i);
	int r = 0, k;
	for (k = 0; k < 100000 && r == 0; k++)
		r = notify_native_send("WATCHDOG=1");
	ck_assert_msg(r == -1 && errno == EAGAIN, "after %d datagrams: %d, errno %d", k, r, errno);
	ck_assert_int_gt(k, 1);
}
END_TEST

START_TEST(test_native_watchdog)
{
	watchdog_case_env(_i);
	ck_assert_uint_eq(notify_native_watchdog_usec(),
	    (uint64_t)(watchdog_cases[_i].want * 1e6));
	/* Left for a later look. */
	ck_assert_int_eq(getenv("WATCHDOG_USEC") != NULL, watchdog_cases[_i].usec != NULL);
}
END_TEST

static Suite *
notify_suite(void)
{
	Suite *s = suite_create("notify");
	TCase *tc = tcase_create("notify");
	tcase_add_checked_fixture(tc, t_setup, t_teardown);
	tcase_add_loop_test(tc, test_states, 0, 2);
	tcase_add_loop_test(tc, test_reload_status, 0, 2);
	tcase_add_test(tc, test_no_socket);
	tcase_add_loop_test(tc, test_watchdog_interval, 0,
	    (int)(sizeof(watchdog_cases) / sizeof(watchdog_cases[0])));
	tcase_add_loop_test(tc, test_listen_fd, 0,
	    (int)(sizeof(listen_cases) / sizeof(listen_cases[0])));
	tcase_add_loop_test(tc, test_native_send, 0, 2);
	tcase_add_test(tc, test_native_send_errors);
	tcase_add_loop_test(tc, test_native_never_blocks, 0, 2);
	tcase_add_loop_test(tc, test_native_watchdog, 0,
	    (int)(sizeof(watchdog_cases) / sizeof(watchdog_cases[0])));
	tcase_add_loop_test(tc, test_native_listen_fds, 0,
	    (int)(sizeof(listen_cases) / sizeof(listen_cases[0])));
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(notify_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
