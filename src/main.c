/*
 * main: command line, start-up order, signals, reload and shutdown.
 *
 * Start-up: config → log → queue writer (opens the database) → delivery thread
 * → HTTP server → READY. Shutdown (SIGTERM/SIGINT): readyz 503 and new POSTs
 * 503, requests in flight finish (their commits included), the writer stops,
 * the server closes, attempts in flight finish, exit 0. Signals are blocked in
 * every thread and taken synchronously here with sigtimedwait, so no work
 * happens in a signal handler.
 */
#include "config.h"

#include <errno.h>
#include <arpa/inet.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "conf.h"
#include "deliver.h"
#include "http.h"
#include "import.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "queue_writer.h"
#include "snapshot.h"
#include "util.h"

#define MAIN_DEFAULT_CONFIG SYSCONFDIR "/fluxrelay/fluxrelay.conf"

struct main_opts {
	const char *config;       /* NULL: default file if present, else built-in */
	const char *state_dir;
	const char *listen;
	const char *log_level;
	bool check_config;
};

static void
main_usage(FILE *f)
{
	fprintf(f,
	    "usage: fluxrelay [-c FILE] [-s DIR] [-l ADDR:PORT] [--log-level LEVEL]\n"
	    "       fluxrelay --check-config [-c FILE]\n"
	    "       fluxrelay match [-c FILE] [EVENT.json ...]\n"
	    "       fluxrelay queue [-c FILE] [-s DIR] list [--dead] [--json]\n"
	    "       fluxrelay queue [-c FILE] [-s DIR] retry ID... | --all\n"
	    "       fluxrelay queue [-c FILE] [-s DIR] purge ID... | --all\n"
	    "       fluxrelay incidents [-c FILE] [-s DIR] [--json]\n"
	    "       fluxrelay incidents [-c FILE] [-s DIR] close ID... | --all\n"
	    "       fluxrelay import [-o FILE] [--secrets-dir DIR] MANIFEST.yaml... | -\n"
	    "       fluxrelay --version | --help\n"
	    "\n"
	    "  -c, --config FILE      configuration file [$FLUXRELAY_CONFIG, else %s;\n"
	    "                         built-in defaults when neither exists]\n"
	    "  -s, --state-dir DIR    queue directory (overrides state_dir)\n"
	    "  -l, --listen ADDR:PORT listen address (overrides listen.address/port)\n"
	    "      --log-level LEVEL  debug, info, warn or error\n"
	    "      --check-config     validate the configuration and exit (0 OK, 78 invalid)\n",
	    MAIN_DEFAULT_CONFIG);
}

/* Split "ADDR:PORT", "[v6]:PORT" or ":PORT"; 0 / -1. addr is a new string. */
static int
main_parse_listen(const char *s, char **addr, int *port)
{
	const char *colon;
	char *a;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (close == NULL || close[1] != ':')
			return -1;
		a = util_strndup(s + 1, (size_t)(close - s - 1));
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			return -1;
		a = colon == s ? util_strdup("127.0.0.1") : util_strndup(s, (size_t)(colon - s));
	}
	char *end;
	errno = 0;
	long p = strtol(colon + 1, &end, 10);
	unsigned char buf[sizeof(struct in6_addr)];
	if (errno || end == colon + 1 || *end || p < 0 || p > 65535 ||
	    (inet_pton(AF_INET, a, buf) != 1 && inet_pton(AF_INET6, a, buf) != 1)) {
		free(a);
		return -1;
	}
	*addr = a;
	*port = (int)p;
	return 0;
}

/*
 * Load the configuration the options name and apply the command-line
 * overrides. NULL on failure: with errors NULL the problems are printed on
 * stderr, else *errors receives them (caller frees); *exit_code is
 * CONF_EXIT_INVALID for an invalid file, FLUXRELAY_EXIT_USAGE for a bad override.
 */
static struct conf *
main_load_conf_opts(const struct main_opts *o, unsigned flags, int *exit_code, char **errors)
{
	struct conf *c;
	*exit_code = CONF_EXIT_INVALID;
	if (o->config == NULL) {
		c = conf_default();
	} else {
		char *problems = NULL;
		c = conf_load_opts(o->config, flags, &problems);
		if (c == NULL) {
			if (errors != NULL) {
				*errors = problems;
				return NULL;
			}
			fputs(problems ? problems : "invalid configuration\n", stderr);
			if (problems && problems[0] && problems[strlen(problems) - 1] != '\n')
				fputc('\n', stderr);
			free(problems);
			return NULL;
		}
	}
	if (o->state_dir != NULL) {
		free(c->state_dir);
		c->state_dir = util_strdup(o->state_dir);
	}
	if (o->listen != NULL) {
		char *addr;
		int port;
		if (main_parse_listen(o->listen, &addr, &port) < 0) {
			fprintf(stderr, "fluxrelay: invalid --listen '%s' (want NUMERIC-ADDR:PORT)\n", o->listen);
			conf_free(c);
			*exit_code = FLUXRELAY_EXIT_USAGE;
			return NULL;
		}
		free(c->listen.address);
		c->listen.address = addr;
		c->listen.port = port;
	}
	if (o->log_level != NULL) {
		int lv = log_level_parse(o->log_level);
		if (lv < 0) {
			fprintf(stderr, "fluxrelay: invalid --log-level '%s' (debug, info, warn, error)\n",
			    o->log_level);
			conf_free(c);
			*exit_code = FLUXRELAY_EXIT_USAGE;
			return NULL;
		}
		c->log.level = lv;
	}
	return c;
}

static struct conf *
main_load_conf(const struct main_opts *o, int *exit_code, char **errors)
{
	return main_load_conf_opts(o, 0, exit_code, errors);
}

/* addr is numeric: listen.address and --listen are checked, and an inherited
 * socket's address comes from inet_ntop. */
static bool
main_is_loopback(const char *addr)
{
	return strncmp(addr, "127.", 4) == 0 || strcmp(addr, "::1") == 0;
}

/* The address an inherited socket is bound to, for the log and the warning. */
static void
main_socket_address(int fd, char *out, size_t n)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	snprintf(out, n, "unknown");
	if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
		return;
	if (ss.ss_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, out, (socklen_t)n);
	else if (ss.ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, out, (socklen_t)n);
}

static bool
main_same_str(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/*
 * What a configuration the daemon starts or reloads with brings besides
 * its settings: its warnings (logged), and its clients' metrics series.
 */
static void
main_conf_applied(const struct conf *c)
{
	for (size_t i = 0; i < c->auth.nclients; i++)
		metrics_client(c->auth.clients[i].name);
	for (const char *w = c->warnings; w != NULL && *w != '\0'; ) {
		const char *nl = strchr(w, '\n');
		size_t n = nl ? (size_t)(nl - w) : strlen(w);
		char *line = util_strndup(w, n);
		log_warn("configuration warning", "warning", line, NULL);
		free(line);
		w += n + (nl != NULL);
	}
}

/* SIGHUP: a valid file replaces the rules for the next event; an invalid one
 * is reported and the running configuration stays. */
static void
main_reload(const struct main_opts *o, struct http *h, struct deliver *d,
    struct queue_writer *w, struct snapshot **deliver_snap)
{
	if (o->config == NULL) {
		log_info("reload: running on built-in defaults, nothing to re-read", NULL);
		return;
	}
	notify_reloading();
	int code;
	char *errors = NULL;
	struct conf *c = main_load_conf(o, &code, &errors);
	if (c == NULL) {
		notify_reload_failed(errors);
		char *save = NULL;
		for (char *line = strtok_r(errors, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
			log_error("reload failed: configuration kept", "problem", line, NULL);
		free(errors);
		return;
	}
	const struct conf *old = (*deliver_snap)->conf;
	if (strcmp(old->listen.address, c->listen.address) != 0 ||
	    old->listen.port != c->listen.port)
		log_warn("reload: listen address change needs a restart", NULL);
	if (strcmp(old->state_dir, c->state_dir) != 0)
		log_warn("reload: state_dir change needs a restart", NULL);
	/* Fixed when the server and the queue started: say so rather than
	 * pretend the new value applies. */
	if (old->listen.max_connections != c->listen.max_connections ||
	    old->listen.timeout != c->listen.timeout ||
	    !main_same_str(old->listen.tls_cert_file, c->listen.tls_cert_file) ||
	    !main_same_str(old->listen.tls_key_file, c->listen.tls_key_file) ||
	    !main_same_str(old->listen.tls_client_ca_file, c->listen.tls_client_ca_file) ||
	    !main_same_str(old->listen.metrics_address, c->listen.metrics_address) ||
	    old->listen.metrics_port != c->listen.metrics_port)
		log_warn("reload: listen settings (max_connections, timeout, TLS, metrics "
		    "listener) change at the next restart", NULL);
	if (old->queue.sync_full != c->queue.sync_full)
		log_warn("reload: queue.sync changes at the next restart", NULL);
	char err[512];
	struct snapshot *snap = snapshot_new(c, err, sizeof(err));
	if (snap == NULL) {
		log_error("reload failed: configuration kept", "problem", err, NULL);
		notify_reload_failed(err);
		return;
	}
	log_setup(snap->conf->log.level, snap->conf->log.format);
	snapshot_install(snap);
	struct snapshot *mine = snapshot_acquire();
	main_conf_applied(mine->conf);
	deliver_set_conf(d, mine->conf);
	queue_writer_set_max_pending(w, mine->conf->queue.max_pending);
	http_set_max_body(h, mine->conf->listen.max_body);
	queue_writer_set_snapshot(w, snapshot_acquire());
	snapshot_release(*deliver_snap);
	*deliver_snap = mine;
	log_info("configuration reloaded", "config", o->config, NULL);
	notify_reloaded();
}

/* Set once the delivery thread runs; the writer may commit before that. */
static _Atomic(struct deliver *) main_deliver;

static void
main_wake_deliver(void *arg)
{
	(void)arg;
	struct deliver *d = atomic_load(&main_deliver);
	if (d != NULL)
		deliver_wake(d);
}

/* The running daemon's parts, in start-up order; NULL until started. */
struct main_run {
	struct snapshot *snap;       /* the delivery thread's reference */
	struct queue_writer *w;
	struct deliver *d;
	struct http *h;
	int listen_fd;               /* socket activation, else -1 */
};

/*
 * The queue writer, the delivery thread and the HTTP server, in this order:
 * the writer first, because it sets the pending count from the database
 * before the delivery thread starts subtracting from it. 0, or -1 after
 * logging (what started stays in *run for main_stop).
 */
static int
main_start(struct main_run *run)
{
	const struct conf *c = run->snap->conf;
	char err[512];
	/* Before any thread starts: taking the socket unsets LISTEN_* (as
	 * sd_listen_fds does), and unsetenv races with getenv in other threads
	 * (libcurl reads its proxy variables on the delivery thread). */
	run->listen_fd = notify_listen_fd();
	struct queue_writer_opts wo = {
		.state_dir = c->state_dir,
		.sync_full = c->queue.sync_full,
		.max_pending = c->queue.max_pending,
		.on_commit = main_wake_deliver,
		.on_commit_arg = NULL,
		.snap = snapshot_acquire(),
	};
	run->w = queue_writer_start(&wo, err, sizeof(err));
	if (run->w == NULL) {
		log_error("cannot open the queue", "error", err, "state_dir", c->state_dir, NULL);
		return -1;
	}
	run->d = deliver_start(c->state_dir, c, err, sizeof(err));
	if (run->d == NULL) {
		log_error("cannot start delivery", "error", err, "state_dir", c->state_dir, NULL);
		return -1;
	}
	atomic_store(&main_deliver, run->d);
	main_conf_applied(c);
	run->h = http_start(c, run->w, run->listen_fd, err, sizeof(err));
	if (run->h == NULL) {
		log_error("cannot start the HTTP server", "error", err, NULL);
		return -1;
	}
	return 0;
}

/* Where the server listens, and the warning when nothing authenticates. */
static void
main_log_listening(const struct main_run *run)
{
	const struct conf *c = run->snap->conf;
	char port[16], addr[INET6_ADDRSTRLEN];
	snprintf(port, sizeof(port), "%d", http_port(run->h));
	snprintf(addr, sizeof(addr), "%s", c->listen.address);
	if (run->listen_fd >= 0)
		main_socket_address(run->listen_fd, addr, sizeof(addr));
	log_info("listening", "address", addr, "port", port,
	    "socket_activation", run->listen_fd >= 0 ? "yes" : "no",
	    "tls", c->listen.tls_cert_file ? "on" : "off", "state_dir", c->state_dir, NULL);
	if (http_metrics_port(run->h) >= 0) {
		snprintf(port, sizeof(port), "%d", http_metrics_port(run->h));
		log_info("metrics listening", "address", c->listen.metrics_address, "port", port,
		    "serves", "/metrics /healthz /readyz", NULL);
	}
	if (!conf_auth_configured(c) && !main_is_loopback(addr))
		log_warn("listening beyond loopback without authentication: anyone who can reach "
		    "this port can post events (configure auth.hmac_key_file, auth.token_file "
		    "or auth.clients)", NULL);
}

/* Signals until SIGTERM or SIGINT (SIGHUP reloads), pinging the watchdog. */
static void
main_wait(const struct main_opts *o, struct main_run *run, const sigset_t *sigs)
{
	double wd = notify_watchdog_interval();
	for (;;) {
		struct timespec ts = { 1, 0 };
		if (wd > 0 && wd / 2 < 1) {
			ts.tv_sec = 0;
			ts.tv_nsec = (long)(wd / 2 * 1e9);
		}
		int sig = sigtimedwait(sigs, NULL, &ts);
		if (wd > 0)
			notify_watchdog();
		if (sig == SIGHUP) {
			main_reload(o, run->h, run->d, run->w, &run->snap);
		} else if (sig == SIGTERM || sig == SIGINT) {
			log_info("shutting down", "signal", sig == SIGTERM ? "TERM" : "INT", NULL);
			return;
		}
	}
}

/*
 * Stop what main_start started: readyz 503 and new POSTs 503, requests in
 * flight finish (their commits included), the writer stops, attempts in
 * flight finish, the server closes.
 */
static void
main_stop(struct main_run *run)
{
	if (run->h != NULL) {
		http_set_ready(run->h, false);
		http_drain(run->h, run->snap->conf->listen.timeout);
	}
	if (run->w != NULL) {
		struct queue_writer_stats st;
		queue_writer_get_stats(run->w, &st);
		struct queue_lock_stats ls;
		queue_get_lock_stats(&ls);
		char commits[24], requests[24], maxb[24], waits[24], waited[24], busy[24];
		snprintf(commits, sizeof(commits), "%llu", (unsigned long long)st.commits);
		snprintf(requests, sizeof(requests), "%llu", (unsigned long long)st.requests);
		snprintf(maxb, sizeof(maxb), "%zu", st.max_batch);
		snprintf(waits, sizeof(waits), "%llu", (unsigned long long)ls.lock_waits);
		snprintf(waited, sizeof(waited), "%.1f", (double)ls.lock_wait_ns / 1e6);
		snprintf(busy, sizeof(busy), "%llu", (unsigned long long)ls.busy_calls);
		/* lock_*: transactions of one thread that waited for another's (queue.c). */
		log_info("queue writer", "commits", commits, "requests", requests, "largest_batch",
		    maxb, "lock_waits", waits, "lock_wait_ms", waited, "busy_sleeps", busy, NULL);
	}
	queue_writer_halt(run->w);
	/* The server answers 503 until the end (SPEC §8: readyz and new POSTs
	 * 503), not "connection refused" while attempts in flight finish. */
	atomic_store(&main_deliver, NULL);
	deliver_stop(run->d);
	http_stop(run->h);
	queue_writer_stop(run->w);
	snapshot_release(run->snap);
	snapshot_install(NULL);
}

static int
main_daemon(const struct main_opts *o)
{
	int code, rc = EXIT_FAILURE;
	struct conf *c = main_load_conf(o, &code, NULL);
	if (c == NULL)
		return code;
	log_setup(c->log.level, c->log.format);
	if (c->builtin)
		log_info("starting on built-in defaults (no configuration file)", "version",
		    PACKAGE_VERSION, "default_config", MAIN_DEFAULT_CONFIG, NULL);
	else
		log_info("starting", "version", PACKAGE_VERSION, "config", o->config, NULL);

	char err[512];
	struct snapshot *snap = snapshot_new(c, err, sizeof(err));
	if (snap == NULL) {
		fprintf(stderr, "fluxrelay: %s\n", err);
		return CONF_EXIT_INVALID;
	}
	snapshot_install(snap);
	struct main_run run = { .snap = snapshot_acquire(), .listen_fd = -1 };

	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (main_start(&run) == 0) {
		main_log_listening(&run);
		notify_ready();
		main_wait(o, &run, &sigs);
		notify_stopping();
		rc = 0;
	}
	main_stop(&run);
	if (rc == 0)
		log_info("stopped", NULL);
	return rc;
}

/* Pull -c/-s (and their long forms) out of a subcommand's arguments. */
static int
main_sub_opts(int argc, char **argv, struct main_opts *o, int *outc, char **outv)
{
	int n = 0;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		const char **dst = NULL;
		if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0)
			dst = &o->config;
		else if (strcmp(a, "-s") == 0 || strcmp(a, "--state-dir") == 0)
			dst = &o->state_dir;
		if (dst != NULL) {
			if (i + 1 >= argc) {
				fprintf(stderr, "fluxrelay: %s needs an argument\n", a);
				return -1;
			}
			*dst = argv[++i];
			continue;
		}
		if (strncmp(a, "--config=", 9) == 0) {
			o->config = a + 9;
			continue;
		}
		if (strncmp(a, "--state-dir=", 12) == 0) {
			o->state_dir = a + 12;
			continue;
		}
		outv[n++] = argv[i];
	}
	outv[n] = NULL;
	*outc = n;
	return 0;
}

/* Decide which file to read: -c, $FLUXRELAY_CONFIG, the default if it exists. */
static void
main_pick_config(struct main_opts *o)
{
	if (o->config != NULL)
		return;
	const char *env = getenv("FLUXRELAY_CONFIG");
	if (env != NULL && *env) {
		o->config = env;
		return;
	}
	if (access(MAIN_DEFAULT_CONFIG, F_OK) == 0)
		o->config = MAIN_DEFAULT_CONFIG;
}

static int
main_subcommand(const char *cmd, int argc, char **argv)
{
	struct main_opts o = {0};
	char **rest = util_calloc((size_t)argc + 1, sizeof(char *));
	int n, rc;
	if (main_sub_opts(argc, argv, &o, &n, rest) < 0) {
		free(rest);
		return FLUXRELAY_EXIT_USAGE;
	}
	main_pick_config(&o);
	/* Neither subcommand sends anything: they run where the daemon's
	 * credentials may not be (no CREDENTIALS_DIRECTORY outside systemd). */
	struct conf *c = main_load_conf_opts(&o, CONF_SKIP_SECRETS, &rc, NULL);
	if (c == NULL) {
		free(rest);
		return rc;
	}
	if (strcmp(cmd, "match") == 0)
		rc = cli_match(c, n, rest);
	else if (strcmp(cmd, "incidents") == 0)
		rc = cli_incidents(c, n, rest);
	else
		rc = cli_queue(c, n, rest);
	conf_free(c);
	free(rest);
	return rc;
}

/* The daemon's options into *o: -1 to go on, else the exit status (after
 * --help, --version or a usage error). */
static int
main_options(int argc, char **argv, struct main_opts *o)
{
	enum { OPT_CHECK = 256, OPT_VERSION, OPT_LOGLEVEL };
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "state-dir", required_argument, NULL, 's' },
		{ "listen", required_argument, NULL, 'l' },
		{ "log-level", required_argument, NULL, OPT_LOGLEVEL },
		{ "check-config", no_argument, NULL, OPT_CHECK },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;
	while ((ch = getopt_long(argc, argv, "c:s:l:hV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c': o->config = optarg; break;
		case 's': o->state_dir = optarg; break;
		case 'l': o->listen = optarg; break;
		case OPT_LOGLEVEL: o->log_level = optarg; break;
		case OPT_CHECK: o->check_config = true; break;
		case 'V':
		case OPT_VERSION:
			printf("fluxrelay %s\n", PACKAGE_VERSION);
			return 0;
		case 'h':
			main_usage(stdout);
			return 0;
		default:
			main_usage(stderr);
			return FLUXRELAY_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "fluxrelay: unexpected argument '%s'\n", argv[optind]);
		main_usage(stderr);
		return FLUXRELAY_EXIT_USAGE;
	}
	return -1;
}

/* --check-config: the exit status. */
static int
main_check_config(const struct main_opts *o)
{
	int code;
	struct conf *c = main_load_conf(o, &code, NULL);
	if (c == NULL)
		return code;
	if (c->warnings != NULL)
		fputs(c->warnings, stderr);
	char err[512];
	struct snapshot *snap = snapshot_new(c, err, sizeof(err));
	if (snap == NULL) {
		fprintf(stderr, "%s: %s\n", o->config ? o->config : "(built-in)", err);
		return CONF_EXIT_INVALID;
	}
	snapshot_release(snap);
	if (o->config == NULL)
		printf("configuration OK (built-in defaults; no file at %s)\n", MAIN_DEFAULT_CONFIG);
	else
		printf("configuration OK\n");
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc >= 2 && (strcmp(argv[1], "match") == 0 || strcmp(argv[1], "queue") == 0 ||
	    strcmp(argv[1], "incidents") == 0))
		return main_subcommand(argv[1], argc - 2, argv + 2);
	/* No config: import writes one (from Flux manifests). */
	if (argc >= 2 && strcmp(argv[1], "import") == 0)
		return import_main(argc - 2, argv + 2);

	struct main_opts o = {0};
	int rc = main_options(argc, argv, &o);
	if (rc >= 0)
		return rc;
	main_pick_config(&o);
	if (o.check_config)
		return main_check_config(&o);
	return main_daemon(&o);
}
