/*
 * http_conn: the connections of the HTTP server's main listener, over all of
 * its libmicrohttpd daemons. listen.max_connections is one limit over every
 * daemon (the kernel's reuseport hash does not spread connections evenly
 * enough for a per-daemon share of it). Flux's controllers never close their
 * responses, so keep-alive connections that sit idle after an answer would
 * fill it: when it is reached, the longest-idle one is closed to make room; a
 * new connection is refused only when none is idle, and every refusal is
 * counted (fluxrelay_connections_refused_total) and logged, rate-limited. A
 * connection marked with http_conn_linger is handed to http_linger when it
 * closes.
 *
 * Threads: http_conn_accept on any daemon's accepting thread; the other
 * callbacks and http_conn_busy/_idle/_linger on the connection's own daemon's
 * thread; new and free on the thread that starts and stops the server.
 */
#ifndef FLUXRELAY_HTTP_CONN_H
#define FLUXRELAY_HTTP_CONN_H

#include <microhttpd.h>
#include <sys/socket.h>

#include "http_linger.h"

/* Daemons (each with its pool of idle connections) one http_conns serves. */
#define HTTP_CONN_POOLS 16

struct http_conns;
struct http_conn;

/* For max_connections over every daemon; refused connections go to linger. */
struct http_conns *http_conns_new(int max_connections, struct http_linger *linger);
/* After every daemon has stopped. Accepts NULL. */
void http_conns_free(struct http_conns *cs);

/* The accept policy callback (MHD_start_daemon's apc, with cls cs). */
enum MHD_Result http_conn_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen);
/* MHD_OPTION_NOTIFY_CONNECTION's callback; cls is http_conn_pool(cs, daemon). */
void http_conn_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
    enum MHD_ConnectionNotificationCode code);
/* The pool of daemon i (< HTTP_CONN_POOLS), for http_conn_notify's cls. */
void *http_conn_pool(struct http_conns *cs, int i);

/* conn's state (NULL when it has none, e.g. on another listener). */
struct http_conn *http_conn_of(struct MHD_Connection *conn);
/* A request starts on cx: not idle. Accepts NULL. */
void http_conn_busy(struct http_conn *cx);
/* A request on cx was answered at now (util_mono): idle until the next one,
 * evictable. Accepts NULL. */
void http_conn_idle(struct http_conn *cx, double now);
/* When cx closes, linger on it (the client may still be writing). Accepts NULL. */
void http_conn_linger(struct http_conn *cx);

#endif
