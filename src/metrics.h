/*
 * metrics: process-wide counters, gauges and histograms, and their Prometheus
 * text exposition (SPEC §10). Updates are lock-free atomics, callable from
 * any thread. Rendering reads only memory (never the disk), so /metrics
 * costs an HTTP thread no I/O: the queue gauges are kept here by the threads
 * that change the queue (metrics_queue_add) and re-synced from the database
 * by the delivery module (metrics_queue_sync).
 */
#ifndef FLUXRELAY_METRICS_H
#define FLUXRELAY_METRICS_H

#include <stddef.h>
#include <stdint.h>

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

/*
 * A configured provider: its per-provider series (deliveries_total for every
 * result, queue_pending, queue_dead, delivery_latency_seconds) are exported
 * from now on, at 0 until something happens, so sum() is 0, not empty.
 * Series are never removed (a provider dropped by a reload keeps its counts).
 */
void metrics_provider(const char *provider);

/* Gauges queue_pending/queue_dead of a provider change by these amounts. */
void metrics_queue_add(const char *provider, int64_t pending, int64_t dead);

/*
 * Set the gauges from a count of the database: n providers with their rows;
 * every other known provider has none (0).
 */
void metrics_queue_sync(const char *const *providers, const int64_t *pending,
    const int64_t *dead, size_t n);

/* ---- notifications_total{alert,kind} (SPEC §10, §12) ---- */

/* The kinds, numbered as the queue's delivery kinds (enum slack_kind). */
enum metrics_kind {
	METRICS_KIND_EVENT,
	METRICS_KIND_OPENED,
	METRICS_KIND_REMINDER,
	METRICS_KIND_RECOVERED,
	METRICS_KIND_REPLY,
	METRICS_NKIND
};

/*
 * A configured alert: notifications_total of every kind is exported for it
 * from now on, at 0 until something is delivered. Series are never removed.
 */
void metrics_alert(const char *alert);

/*
 * A delivered message for the comma-separated alerts of one delivery: each
 * alert counts it once under kind (a kind out of range counts as event).
 */
void metrics_notification(const char *alerts, int kind);

/*
 * incidents_open{alert} (SPEC §12), kept by the queue writer: an alert's
 * series is exported from metrics_incidents_alert on (at 0 until it has
 * incidents) and never removed; sync sets every known alert from a count of
 * the database (those not listed: 0).
 */
void metrics_incidents_alert(const char *alert);
void metrics_incidents_add(const char *alert, int64_t delta);
void metrics_incidents_sync(const char *const *alerts, const int64_t *n, size_t count);
/*
 * A client of auth.clients: client_events_total{cluster,status} is exported
 * for it from now on, at 0 for every status (and the family only once some
 * client exists). At most METRICS_MAX_CLIENTS names; beyond, "other".
 */
#define METRICS_MAX_CLIENTS 1024
void metrics_client(const char *cluster);
/* An event from a client, by outcome (events_received_total counts it too). */
void metrics_client_event(const char *cluster, enum metrics_event_status s);

/* Append the exposition to b. Memory only: never blocks on disk. */
void metrics_render(struct util_buf *b);

#endif
