/*
 * http_conn: see http_conn.h. Each daemon has a pool: the list of its idle
 * keep-alive connections, oldest first, under the pool's lock. Their own
 * daemon's thread adds and removes them; http_conn_evict_idle (any daemon's
 * accepting thread) takes one out and shuts its socket down.
 */
#include "http_conn.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "util.h"

/* One log line about refused connections at most this often (seconds). */
#define HTTP_CONN_REFUSED_LOG_INTERVAL 10.0

struct http_pool {
	struct http_conns *cs;
	pthread_mutex_t lock;
	struct http_conn *head, *tail;     /* guarded by lock */
};

/* Per-connection state (libmicrohttpd's socket_context). */
struct http_conn {
	struct http_pool *pool;
	int fd;
	bool linger;                 /* its daemon's thread only */
	atomic_bool idle;            /* in pool's list; changed under pool->lock */
	bool evicted;                /* guarded by pool->lock */
	double idle_since;           /* guarded by pool->lock */
	struct http_conn *prev, *next;   /* guarded by pool->lock */
};

struct http_conns {
	struct http_pool pools[HTTP_CONN_POOLS];
	/* Connections open or being set up, over every daemon: reserved in
	 * http_conn_accept, given back when one closes. */
	atomic_int connections;
	int max_connections;
	struct http_linger *linger;
	/* Refusals not yet logged and when the last line was; refused_lock. */
	pthread_mutex_t refused_lock;
	unsigned long refused_unlogged;
	double refused_logged_at;
	bool refused_logged;
};

struct http_conns *
http_conns_new(int max_connections, struct http_linger *linger)
{
	struct http_conns *cs = util_calloc(1, sizeof(*cs));
	cs->max_connections = max_connections;
	cs->linger = linger;
	atomic_init(&cs->connections, 0);
	pthread_mutex_init(&cs->refused_lock, NULL);
	for (int i = 0; i < HTTP_CONN_POOLS; i++) {
		cs->pools[i].cs = cs;
		pthread_mutex_init(&cs->pools[i].lock, NULL);
	}
	return cs;
}

void
http_conns_free(struct http_conns *cs)
{
	if (cs == NULL)
		return;
	for (int i = 0; i < HTTP_CONN_POOLS; i++)
		pthread_mutex_destroy(&cs->pools[i].lock);
	pthread_mutex_destroy(&cs->refused_lock);
	free(cs);
}

void *
http_conn_pool(struct http_conns *cs, int i)
{
	return &cs->pools[i];
}

void
http_conn_linger(struct http_conn *cx)
{
	if (cx != NULL)
		cx->linger = true;
}

struct http_conn *
http_conn_of(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn,
	    MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return ci != NULL ? ci->socket_context : NULL;
}

static void
http_pool_unlink(struct http_pool *p, struct http_conn *cx)
{
	if (cx->prev != NULL)
		cx->prev->next = cx->next;
	else
		p->head = cx->next;
	if (cx->next != NULL)
		cx->next->prev = cx->prev;
	else
		p->tail = cx->prev;
	cx->prev = cx->next = NULL;
	atomic_store_explicit(&cx->idle, false, memory_order_relaxed);
}

void
http_conn_busy(struct http_conn *cx)
{
	/* Only this thread sets idle, so false here is the truth; the lock is
	 * taken only when there is something to undo. */
	if (cx == NULL || !atomic_load_explicit(&cx->idle, memory_order_relaxed))
		return;
	struct http_pool *p = cx->pool;
	pthread_mutex_lock(&p->lock);
	if (atomic_load_explicit(&cx->idle, memory_order_relaxed))
		http_pool_unlink(p, cx);
	pthread_mutex_unlock(&p->lock);
}

void
http_conn_idle(struct http_conn *cx, double now)
{
	if (cx == NULL)
		return;
	struct http_pool *p = cx->pool;
	pthread_mutex_lock(&p->lock);
	if (!cx->evicted && !atomic_load_explicit(&cx->idle, memory_order_relaxed)) {
		cx->idle_since = now;
		cx->prev = p->tail;
		cx->next = NULL;
		if (p->tail != NULL)
			p->tail->next = cx;
		else
			p->head = cx;
		p->tail = cx;
		atomic_store_explicit(&cx->idle, true, memory_order_relaxed);
	}
	pthread_mutex_unlock(&p->lock);
}

/*
 * Close the longest-idle keep-alive connection to make room for a new one:
 * true when one was found. The socket is shut down under its pool's lock,
 * where it cannot be closed (http_conn_notify takes the lock before
 * libmicrohttpd closes the descriptor); its own thread then sees the end of
 * the stream and closes the connection, which frees its slot.
 */
static bool
http_conn_evict_idle(struct http_conns *cs)
{
	int best = -1;
	double oldest = 0;
	/* Every pool, not as many as daemons run: main may still be starting
	 * daemons while the first ones accept. Unused pools are empty. */
	for (int i = 0; i < HTTP_CONN_POOLS; i++) {
		struct http_pool *p = &cs->pools[i];
		pthread_mutex_lock(&p->lock);
		if (p->head != NULL && (best < 0 || p->head->idle_since < oldest)) {
			best = i;
			oldest = p->head->idle_since;
		}
		pthread_mutex_unlock(&p->lock);
	}
	for (int k = 0; best >= 0 && k < HTTP_CONN_POOLS; k++) {
		struct http_pool *p = &cs->pools[(best + k) % HTTP_CONN_POOLS];
		pthread_mutex_lock(&p->lock);
		struct http_conn *cx = p->head;
		if (cx != NULL) {
			http_pool_unlink(p, cx);
			cx->evicted = true;
			shutdown(cx->fd, SHUT_RDWR);
		}
		pthread_mutex_unlock(&p->lock);
		if (cx != NULL)
			return true;
	}
	return false;
}

/* One more connection refused: counted, and logged at most every
 * HTTP_CONN_REFUSED_LOG_INTERVAL with how many since the last line. */
static void
http_conn_refused(struct http_conns *cs)
{
	metrics_connection_refused();
	unsigned long n = 0;
	double now = util_mono();
	pthread_mutex_lock(&cs->refused_lock);
	cs->refused_unlogged++;
	if (!cs->refused_logged || now - cs->refused_logged_at >= HTTP_CONN_REFUSED_LOG_INTERVAL) {
		n = cs->refused_unlogged;
		cs->refused_unlogged = 0;
		cs->refused_logged_at = now;
		cs->refused_logged = true;
	}
	pthread_mutex_unlock(&cs->refused_lock);
	if (n > 0) {
		char count[24], max[24];
		snprintf(count, sizeof(count), "%lu", n);
		snprintf(max, sizeof(max), "%d", cs->max_connections);
		log_warn("connections refused: listen.max_connections reached and none idle",
		    "refused", count, "max_connections", max, NULL);
	}
}

/*
 * Accept policy: a connection beyond listen.max_connections takes the place
 * of an idle one, else it is refused (closed). The slot is reserved here,
 * atomically, because several daemons accept at the same time: a check here
 * and a count at NOTIFY_STARTED let two of them pass on the last slot.
 * NOTIFY_CLOSED gives it back; an evicted connection gives its slot back when
 * it closes, so the count may pass the limit by the evictions in progress.
 * (If libmicrohttpd fails to set up a connection after this point, out of
 * memory, it logs the error and the slot stays taken: one fewer connection
 * until restart.)
 */
enum MHD_Result
http_conn_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
	(void)addr;
	(void)addrlen;
	struct http_conns *cs = cls;
	if (atomic_fetch_add(&cs->connections, 1) < cs->max_connections)
		return MHD_YES;
	if (http_conn_evict_idle(cs))
		return MHD_YES;
	atomic_fetch_sub(&cs->connections, 1);
	http_conn_refused(cs);
	return MHD_NO;
}

void
http_conn_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
    enum MHD_ConnectionNotificationCode code)
{
	struct http_pool *p = cls;
	struct http_conns *cs = p->cs;
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		struct http_conn *cx = util_calloc(1, sizeof(*cx));
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn,
		    MHD_CONNECTION_INFO_CONNECTION_FD);
		cx->pool = p;
		cx->fd = ci != NULL ? ci->connect_fd : -1;
		atomic_init(&cx->idle, false);
		*socket_context = cx;
		return;
	}
	if (code != MHD_CONNECTION_NOTIFY_CLOSED)
		return;
	struct http_conn *cx = *socket_context;
	if (cx != NULL) {
		pthread_mutex_lock(&p->lock);
		if (atomic_load_explicit(&cx->idle, memory_order_relaxed))
			http_pool_unlink(p, cx);
		pthread_mutex_unlock(&p->lock);
		/* libmicrohttpd has sent the answer and shut down its side; it closes
		 * the descriptor after this returns. A duplicate keeps the socket
		 * open, and reading it lets the client finish writing. */
		if (cx->linger && cx->fd >= 0) {
			int fd = fcntl(cx->fd, F_DUPFD_CLOEXEC, 0);
			if (fd >= 0)
				http_linger_add(cs->linger, fd);
		}
		free(cx);
		*socket_context = NULL;
	}
	atomic_fetch_sub(&cs->connections, 1);
}
