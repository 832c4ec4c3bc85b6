/*
 * http_linger: see http_linger.h. The thread sleeps in poll(2) on every
 * lingering socket and a wake-up pipe until a socket has data, goes quiet or
 * expires; what arrives is read into a scratch buffer and dropped. lock
 * guards the socket list and stop; only the thread removes sockets, others
 * only append.
 */
#include "http_linger.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util.h"

/* A lingering socket is closed after this long without a byte (seconds). */
#define HTTP_LINGER_QUIET 2.0
/* Bytes read and dropped per recv(2). */
#define HTTP_LINGER_SINK 65536
/* recv(2) calls per socket and round, so one fast sender cannot hold the lock. */
#define HTTP_LINGER_READS 4

struct http_linger_sock {
	int fd;
	double deadline, quiet_until;    /* util_mono() */
};

struct http_linger {
	pthread_mutex_t lock;
	pthread_t thread;
	bool stop;                       /* lock */
	int pipe[2];                     /* a byte in [1] wakes the thread */
	struct http_linger_sock *socks;  /* lock */
	size_t n, cap;                   /* lock */
	size_t max_sockets;
	double max;
	char *sink;                      /* the thread's; written, never read */
};

/*
 * The poll set for the sockets lingering now: pfd[0] the wake-up pipe,
 * pfd[i + 1] socket i, grown as needed. Returns how many sockets, with the
 * wait until the first one is due in *wait. Called with the lock held.
 */
static size_t
http_linger_pollset(struct http_linger *l, struct pollfd **pfd, size_t *pcap, double *wait)
{
	size_t n = l->n;
	double now = util_mono();
	if (*pcap < n + 1) {
		*pcap = 2 * (n + 1);
		*pfd = util_realloc(*pfd, *pcap * sizeof(**pfd));
	}
	(*pfd)[0] = (struct pollfd){ .fd = l->pipe[0], .events = POLLIN };
	*wait = 1.0;
	for (size_t i = 0; i < n; i++) {
		const struct http_linger_sock *s = &l->socks[i];
		(*pfd)[i + 1] = (struct pollfd){ .fd = s->fd, .events = POLLIN };
		double until = (s->quiet_until < s->deadline ? s->quiet_until : s->deadline) - now;
		if (until < *wait)
			*wait = until < 0 ? 0 : until;
	}
	return n;
}

/* Read and drop what s has; true when the peer is done (or the socket broke). */
static bool
http_linger_drain(struct http_linger *l, struct http_linger_sock *s, double now)
{
	for (int k = 0; k < HTTP_LINGER_READS; k++) {
		ssize_t got = recv(s->fd, l->sink, HTTP_LINGER_SINK, MSG_DONTWAIT);
		if (got > 0) {
			s->quiet_until = now + HTTP_LINGER_QUIET;
			/* ACK at once: the sender is waiting to free its buffer, and
			 * delayed ACKs on this half-closed socket would pace it at one
			 * buffer per 40 ms. */
			int one = 1;
			setsockopt(s->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
			continue;
		}
		return got == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
	}
	return false;
}

/*
 * After a poll over the first n sockets: drain those with data, close those
 * done, quiet or expired. Called with the lock held. Only this thread
 * removes sockets and others only append, so the first n are the polled
 * ones; backwards, so a swap-remove moves a handled or a new socket into i.
 */
static void
http_linger_sweep(struct http_linger *l, const struct pollfd *pfd, size_t n)
{
	double now = util_mono();
	for (size_t i = n; i-- > 0;) {
		struct http_linger_sock *s = &l->socks[i];
		bool done = pfd[i + 1].revents != 0 && http_linger_drain(l, s, now);
		if (done || now >= s->deadline || now >= s->quiet_until) {
			close(s->fd);
			l->socks[i] = l->socks[--l->n];
		}
	}
}

static void *
http_linger_main(void *arg)
{
	struct http_linger *l = arg;
	struct pollfd *pfd = NULL;
	size_t pcap = 0;
	pthread_mutex_lock(&l->lock);
	while (!l->stop) {
		double wait;
		size_t n = http_linger_pollset(l, &pfd, &pcap, &wait);
		pthread_mutex_unlock(&l->lock);
		poll(pfd, (nfds_t)(n + 1), (int)(wait * 1000) + 1);
		if (pfd[0].revents & POLLIN) {
			char b[64];
			while (read(l->pipe[0], b, sizeof(b)) > 0)
				;
		}
		pthread_mutex_lock(&l->lock);
		http_linger_sweep(l, pfd, n);
	}
	for (size_t i = 0; i < l->n; i++)
		close(l->socks[i].fd);
	l->n = 0;
	pthread_mutex_unlock(&l->lock);
	free(pfd);
	return NULL;
}

static void
http_linger_wake(struct http_linger *l)
{
	ssize_t w = write(l->pipe[1], "", 1);   /* full pipe: a wake-up is pending */
	(void)w;
}

struct http_linger *
http_linger_start(double max, size_t max_sockets)
{
	struct http_linger *l = util_calloc(1, sizeof(*l));
	l->max = max;
	l->max_sockets = max_sockets;
	pthread_mutex_init(&l->lock, NULL);
	l->sink = util_malloc(HTTP_LINGER_SINK);
	if (pipe2(l->pipe, O_CLOEXEC | O_NONBLOCK) != 0)
		goto fail;
	int e = pthread_create(&l->thread, NULL, http_linger_main, l);
	if (e == 0)
		return l;
	close(l->pipe[0]);
	close(l->pipe[1]);
	errno = e;
fail:
	pthread_mutex_destroy(&l->lock);
	free(l->sink);
	free(l);
	return NULL;
}

void
http_linger_add(struct http_linger *l, int fd)
{
	pthread_mutex_lock(&l->lock);
	if (l->stop || l->n >= l->max_sockets) {
		pthread_mutex_unlock(&l->lock);
		close(fd);
		return;
	}
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 16;
		l->socks = util_realloc(l->socks, l->cap * sizeof(*l->socks));
	}
	double now = util_mono();
	l->socks[l->n++] = (struct http_linger_sock){
		.fd = fd, .deadline = now + l->max, .quiet_until = now + HTTP_LINGER_QUIET,
	};
	pthread_mutex_unlock(&l->lock);
	http_linger_wake(l);
}

void
http_linger_stop(struct http_linger *l)
{
	if (l == NULL)
		return;
	pthread_mutex_lock(&l->lock);
	l->stop = true;
	pthread_mutex_unlock(&l->lock);
	http_linger_wake(l);
	pthread_join(l->thread, NULL);
	close(l->pipe[0]);
	close(l->pipe[1]);
	pthread_mutex_destroy(&l->lock);
	free(l->socks);
	free(l->sink);
	free(l);
}
