/*
 * metrics: process-wide counters, gauges and histograms, and their Prometheus
 * text exposition (SPEC §10). Updates are lock-free atomics, callable from
 * any thread.
 */
#ifndef FLUXRELAY_METRICS_H
#define FLUXRELAY_METRICS_H

#include "util.h"

enum metrics_event_status {
	METRICS_EVENT_ACCEPTED,
	METRICS_EVENT_IGNORED,
	METRICS_EVENT_DUPLICATE,
	METRICS_EVENT_REJECTED,
	METRICS_EVENT_NSTATUS
};

enum metrics_delivery_result {
	METRICS_DELIVERED,
	METRICS_RETRIED,
	METRICS_RATE_LIMITED,
	METRICS_DEAD,
	METRICS_NRESULT
};

void metrics_event(enum metrics_event_status s);
void metrics_http(int code, double seconds);
void metrics_delivery(const char *provider, enum metrics_delivery_result r, size_t n);
void metrics_delivery_latency(const char *provider, double seconds);
/* A connection refused at listen.max_connections (none idle to close). */
void metrics_connection_refused(void);

/* Append the exposition to b; pending/dead gauges come from the callback. */
struct queue;
void metrics_render(struct util_buf *b, struct queue *q);

#endif
