/*
 * http: the libmicrohttpd server (fluxrelay(8), HTTP INTERFACE): routes,
 * limits, auth, status codes. Matched events are handed to the queue writer
 * and the connection is suspended until the batch is durable, so no HTTP
 * thread waits on disk.
 */
#ifndef FLUXRELAY_HTTP_H
#define FLUXRELAY_HTTP_H

#include <stdbool.h>

#include "conf.h"
#include "queue_writer.h"

struct http;

/*
 * Start serving with the listen settings of c (listen_fd >= 0: an inherited
 * socket, e.g. from systemd), and the metrics listener when c names one.
 * Requests use snapshot_acquire() for rules. The server is ready (readyz 200)
 * as soon as it starts. NULL with err ("cannot listen on ADDR:PORT: why").
 */
struct http *http_start(const struct conf *c, struct queue_writer *w, int listen_fd,
    char *err, size_t errlen);
/* The bound port (useful with port 0). */
int http_port(const struct http *h);
/* The metrics listener's bound port, -1 without one (listen.metrics_*). */
int http_metrics_port(const struct http *h);
/* Readiness: false makes /readyz 503 and new POSTs 503 (shutdown). */
void http_set_ready(struct http *h, bool ready);
/* listen.max_body from a reload: requests that begin after it (main thread). */
void http_set_max_body(struct http *h, long max_body);
/* Wait (at most timeout seconds) until no request is in progress. */
void http_drain(struct http *h, double timeout);
/* Stop accepting, finish requests in flight, free. Accepts NULL. */
void http_stop(struct http *h);

#endif
