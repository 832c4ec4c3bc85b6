/*
 * ratec: an open-loop, constant-rate HTTP client for latency at a fixed,
 * realistic load (bench/README.md, row (g)). Each request is a POST of the
 * body file on a NEW connection, as Flux's notification clients do, and the
 * next one never waits for an answer: sends follow a fixed timetable
 * (start + i / rate), and each latency is measured from the request's
 * scheduled time to the end of its answer, so a stall of the server shows as
 * the delay of every request scheduled during it (no coordinated omission).
 *
 *   ratec [-r RATE] [-d SECONDS] [-w WARMUP] [-p PATH] BODY.json HOST PORT
 *
 * Prints one line: rate=… sent=… ok=… failed=… p50_ms=… p99_ms=… p999_ms=…
 * max_ms=… lag_p99_ms=… (lag: how late the client itself sent, which must
 * stay far below the latencies for them to mean anything). Exit 0 when every
 * measured request got a 2xx answer, 1 otherwise, 2 on usage errors.
 *
 * One thread, non-blocking sockets, epoll and a periodic timerfd. IPv4 only.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define RATEC_MAX_INFLIGHT 16384
#define RATEC_RESP_MAX 4096

struct ratec_conn {
	int fd;
	bool measured;          /* scheduled after the warm-up */
	double scheduled;       /* seconds on CLOCK_MONOTONIC */
	size_t sent;            /* bytes of the request written */
	char resp[RATEC_RESP_MAX];
	size_t got;
};

static char *ratec_req;
static size_t ratec_req_len;
static double *ratec_lat, *ratec_lag;
static size_t ratec_nlat, ratec_nlag;
static unsigned long ratec_ok, ratec_failed, ratec_inflight, ratec_inflight_measured;

static double
ratec_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
ratec_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double
ratec_pct(const double *v, size_t n, double p)
{
	if (n == 0)
		return 0;
	size_t i = (size_t)(p * (double)n);
	return v[i < n ? i : n - 1];
}

static void
ratec_done(int ep, struct ratec_conn *c, bool ok)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	ratec_inflight--;
	if (c->measured) {
		ratec_inflight_measured--;
		if (ok) {
			ratec_ok++;
			ratec_lat[ratec_nlat++] = ratec_now() - c->scheduled;
		} else {
			ratec_failed++;
		}
	}
	free(c);
}

/* The answer is complete: status line, headers and Content-Length bytes. */
static int
ratec_complete(const struct ratec_conn *c, bool *ok)
{
	const char *end = memmem(c->resp, c->got, "\r\n\r\n", 4);
	if (end == NULL)
		return 0;
	size_t head = (size_t)(end - c->resp) + 4, clen = 0;
	for (const char *p = c->resp; p < end; p++) {
		if ((p == c->resp || p[-1] == '\n') && strncasecmp(p, "content-length:", 15) == 0) {
			clen = strtoul(p + 15, NULL, 10);
			break;
		}
	}
	if (c->got < head + clen)
		return 0;
	*ok = c->got > 12 && memcmp(c->resp, "HTTP/1.", 7) == 0 && c->resp[9] == '2';
	return 1;
}

static void
ratec_start(int ep, const struct sockaddr_in *sa, double scheduled, bool measured)
{
	if (ratec_inflight >= RATEC_MAX_INFLIGHT) {
		if (measured)
			ratec_failed++;
		return;
	}
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		if (measured)
			ratec_failed++;
		return;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0 && errno != EINPROGRESS) {
		close(fd);
		if (measured)
			ratec_failed++;
		return;
	}
	struct ratec_conn *c = calloc(1, sizeof(*c));
	if (c == NULL) {
		close(fd);
		if (measured)
			ratec_failed++;
		return;
	}
	c->fd = fd;
	c->scheduled = scheduled;
	c->measured = measured;
	struct epoll_event ev = { .events = EPOLLOUT | EPOLLIN, .data.ptr = c };
	epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
	ratec_inflight++;
	if (measured)
		ratec_inflight_measured++;
}

static void
ratec_io(int ep, struct ratec_conn *c, uint32_t events)
{
	if (c->sent < ratec_req_len && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
		ssize_t n = send(c->fd, ratec_req + c->sent, ratec_req_len - c->sent, MSG_NOSIGNAL);
		if (n < 0 && errno != EAGAIN) {
			ratec_done(ep, c, false);
			return;
		}
		if (n > 0)
			c->sent += (size_t)n;
		if (c->sent == ratec_req_len) {
			struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
			epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
		}
		return;
	}
	if (!(events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
		return;
	for (;;) {
		if (c->got == sizeof(c->resp)) {
			ratec_done(ep, c, false);
			return;
		}
		ssize_t n = recv(c->fd, c->resp + c->got, sizeof(c->resp) - c->got, 0);
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			bool ok = false;
			ratec_done(ep, c, ratec_complete(c, &ok) && ok);
			return;
		}
		c->got += (size_t)n;
		bool ok = false;
		if (ratec_complete(c, &ok)) {
			ratec_done(ep, c, ok);
			return;
		}
	}
}

static char *
ratec_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return NULL;
	struct stat st;
	if (fstat(fileno(f), &st) < 0) {
		fclose(f);
		return NULL;
	}
	char *buf = malloc((size_t)st.st_size + 1);
	*len = buf ? fread(buf, 1, (size_t)st.st_size, f) : 0;
	fclose(f);
	return buf;
}

static void
ratec_usage(void)
{
	fprintf(stderr, "usage: ratec [-r RATE] [-d SECONDS] [-w WARMUP] [-p PATH] BODY.json HOST PORT\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	double rate = 2000, duration = 10, warmup = 1;
	const char *path = "/";
	int opt;
	while ((opt = getopt(argc, argv, "r:d:w:p:")) != -1) {
		switch (opt) {
		case 'r': rate = atof(optarg); break;
		case 'd': duration = atof(optarg); break;
		case 'w': warmup = atof(optarg); break;
		case 'p': path = optarg; break;
		default: ratec_usage();
		}
	}
	if (argc - optind != 3 || rate <= 0 || duration <= 0 || warmup < 0)
		ratec_usage();
	size_t blen;
	char *body = ratec_read_file(argv[optind], &blen);
	if (body == NULL) {
		perror(argv[optind]);
		return 2;
	}
	struct sockaddr_in sa = { .sin_family = AF_INET,
		.sin_port = htons((uint16_t)atoi(argv[optind + 2])) };
	if (inet_pton(AF_INET, argv[optind + 1], &sa.sin_addr) != 1)
		ratec_usage();
	char head[512];
	int hlen = snprintf(head, sizeof(head), "POST %s HTTP/1.1\r\nHost: %s:%s\r\n"
	    "User-Agent: ratec\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
	    path, argv[optind + 1], argv[optind + 2], blen);
	ratec_req_len = (size_t)hlen + blen;
	ratec_req = malloc(ratec_req_len);
	memcpy(ratec_req, head, (size_t)hlen);
	memcpy(ratec_req + hlen, body, blen);
	free(body);

	size_t total = (size_t)((warmup + duration) * rate) + 1;
	ratec_lat = calloc(total, sizeof(double));
	ratec_lag = calloc(total, sizeof(double));
	int ep = epoll_create1(EPOLL_CLOEXEC);
	int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (ratec_lat == NULL || ratec_lag == NULL || ep < 0 || tfd < 0) {
		perror("ratec");
		return 2;
	}
	/* The timetable: request i is due at t0 + i / rate; the timer only
	 * wakes this loop, the timetable decides what is due. */
	long interval_ns = (long)(1e9 / rate);
	struct itimerspec its = { .it_interval = { interval_ns / 1000000000L, interval_ns % 1000000000L },
		.it_value = { 0, 1 } };
	timerfd_settime(tfd, 0, &its, NULL);
	struct epoll_event tev = { .events = EPOLLIN, .data.ptr = NULL };
	epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &tev);

	double t0 = ratec_now(), measure_from = t0 + warmup, end = measure_from + duration;
	size_t next = 0, last = (size_t)((warmup + duration) * rate);
	struct epoll_event evs[256];
	for (;;) {
		double now = ratec_now();
		while (next < last && t0 + (double)next / rate <= now) {
			double due = t0 + (double)next / rate;
			bool measured = due >= measure_from;
			if (measured)
				ratec_lag[ratec_nlag++] = now - due;
			ratec_start(ep, &sa, due, measured);
			next++;
		}
		/* Done when everything was sent and answered, or 5 s after the end. */
		if (next >= last && (ratec_inflight == 0 || now > end + 5))
			break;
		int n = epoll_wait(ep, evs, 256, 100);
		for (int i = 0; i < n; i++) {
			if (evs[i].data.ptr == NULL) {
				uint64_t exp;
				if (read(tfd, &exp, sizeof(exp)) < 0 && errno != EAGAIN)
					perror("timerfd");
				continue;
			}
			ratec_io(ep, evs[i].data.ptr, evs[i].events);
		}
	}
	ratec_failed += ratec_inflight_measured;   /* never answered */
	qsort(ratec_lat, ratec_nlat, sizeof(double), ratec_cmp);
	qsort(ratec_lag, ratec_nlag, sizeof(double), ratec_cmp);
	printf("rate=%.0f duration=%.0f sent=%zu ok=%lu failed=%lu p50_ms=%.3f p99_ms=%.3f "
	    "p999_ms=%.3f max_ms=%.3f lag_p99_ms=%.3f lag_max_ms=%.3f\n", rate, duration, ratec_nlag,
	    ratec_ok, ratec_failed, ratec_pct(ratec_lat, ratec_nlat, 0.5) * 1e3,
	    ratec_pct(ratec_lat, ratec_nlat, 0.99) * 1e3, ratec_pct(ratec_lat, ratec_nlat, 0.999) * 1e3,
	    ratec_nlat ? ratec_lat[ratec_nlat - 1] * 1e3 : 0, ratec_pct(ratec_lag, ratec_nlag, 0.99) * 1e3,
	    ratec_nlag ? ratec_lag[ratec_nlag - 1] * 1e3 : 0);
	return ratec_failed == 0 ? 0 : 1;
}
