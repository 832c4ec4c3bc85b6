/*
 * metrics: counters and histograms for SPEC §10, rendered in Prometheus text
 * format 0.0.4. Updates are relaxed atomics (any thread). Per-provider series
 * live in a small append-only table: a provider's slot is claimed once under
 * metrics_lock and never moves, so readers and updaters need no lock after
 * lookup. Providers beyond METRICS_MAX_PROVIDERS share the label "other".
 */
#include "config.h"
#include "metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "queue.h"

#define METRICS_MAX_PROVIDERS 64
#define METRICS_NBUCKETS 14

static const double metrics_buckets[METRICS_NBUCKETS] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10
};
/* Delivery latency spans seconds to hours (retries, outages). */
static const double metrics_latency_buckets[METRICS_NBUCKETS] = {
	0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600
};

struct metrics_hist {
	atomic_uint_fast64_t bucket[METRICS_NBUCKETS];
	atomic_uint_fast64_t count;
	atomic_uint_fast64_t sum_us;     /* microseconds, so the sum stays an integer atomic */
};

struct metrics_provider {
	char name[128];
	atomic_int used;
	atomic_uint_fast64_t result[METRICS_NRESULT];
	struct metrics_hist latency;
};

static atomic_uint_fast64_t metrics_events[METRICS_EVENT_NSTATUS];
static atomic_uint_fast64_t metrics_codes[600];
static struct metrics_hist metrics_http_duration;
/* Slot claiming is guarded by metrics_lock; slots are never freed. */
static pthread_mutex_t metrics_lock = PTHREAD_MUTEX_INITIALIZER;
static struct metrics_provider metrics_providers[METRICS_MAX_PROVIDERS + 1];
/* The last queue scan for the gauges; guarded by metrics_lock. */
static struct util_buf metrics_pending_text, metrics_dead_text;
static double metrics_gauges_at;
static int64_t metrics_gauges_pending;

/* fluxrelay_connections_refused_total (SPEC §4). */
static atomic_uint_fast64_t metrics_refused;

static const char *const metrics_event_names[] = { "accepted", "ignored", "duplicate", "rejected" };
static const char *const metrics_result_names[] = { "delivered", "retried", "rate_limited", "dead" };

static void
metrics_hist_observe(struct metrics_hist *h, const double *bounds, double v)
{
	for (int i = 0; i < METRICS_NBUCKETS; i++)
		if (v <= bounds[i])
			atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
	if (v < 0)
		v = 0;
	atomic_fetch_add_explicit(&h->sum_us, (uint_fast64_t)(v * 1e6), memory_order_relaxed);
}

void
metrics_event(enum metrics_event_status s)
{
	if (s < METRICS_EVENT_NSTATUS)
		atomic_fetch_add_explicit(&metrics_events[s], 1, memory_order_relaxed);
}

void
metrics_http(int code, double seconds)
{
	if (code >= 100 && code < 600)
		atomic_fetch_add_explicit(&metrics_codes[code], 1, memory_order_relaxed);
	metrics_hist_observe(&metrics_http_duration, metrics_buckets, seconds);
}

void
metrics_connection_refused(void)
{
	atomic_fetch_add_explicit(&metrics_refused, 1, memory_order_relaxed);
}

static struct metrics_provider *
metrics_provider_slot(const char *name)
{
	for (int i = 0; i < METRICS_MAX_PROVIDERS; i++) {
		struct metrics_provider *p = &metrics_providers[i];
		if (!atomic_load_explicit(&p->used, memory_order_acquire))
			break;
		if (strcmp(p->name, name) == 0)
			return p;
	}
	pthread_mutex_lock(&metrics_lock);
	struct metrics_provider *found = &metrics_providers[METRICS_MAX_PROVIDERS];
	for (int i = 0; i < METRICS_MAX_PROVIDERS; i++) {
		struct metrics_provider *p = &metrics_providers[i];
		if (!atomic_load_explicit(&p->used, memory_order_acquire)) {
			snprintf(p->name, sizeof(p->name), "%s", name);
			atomic_store_explicit(&p->used, 1, memory_order_release);
			found = p;
			break;
		}
		if (strcmp(p->name, name) == 0) {
			found = p;
			break;
		}
	}
	if (found == &metrics_providers[METRICS_MAX_PROVIDERS] && found->name[0] == '\0')
		snprintf(found->name, sizeof(found->name), "other");
	pthread_mutex_unlock(&metrics_lock);
	return found;
}

void
metrics_delivery(const char *provider, enum metrics_delivery_result r, size_t n)
{
	if (r >= METRICS_NRESULT || n == 0)
		return;
	struct metrics_provider *p = metrics_provider_slot(provider);
	atomic_fetch_add_explicit(&p->result[r], n, memory_order_relaxed);
}

void
metrics_delivery_latency(const char *provider, double seconds)
{
	struct metrics_provider *p = metrics_provider_slot(provider);
	metrics_hist_observe(&p->latency, metrics_latency_buckets, seconds);
}

/* Label values are provider names from the config: escape \ " and newline. */
static void
metrics_label(struct util_buf *b, const char *v)
{
	for (const char *s = v; *s; s++) {
		if (*s == '\\' || *s == '"')
			util_buf_printf(b, "\\%c", *s);
		else if (*s == '\n')
			util_buf_puts(b, "\\n");
		else
			util_buf_append(b, s, 1);
	}
}

static void
metrics_hist_render(struct util_buf *b, const char *name, const char *labels,
    struct metrics_hist *h, const double *bounds)
{
	const char *sep = labels[0] ? "," : "";
	for (int i = 0; i < METRICS_NBUCKETS; i++)
		util_buf_printf(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, bounds[i],
		    (unsigned long long)atomic_load_explicit(&h->bucket[i], memory_order_relaxed));
	unsigned long long count = atomic_load_explicit(&h->count, memory_order_relaxed);
	util_buf_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep, count);
	util_buf_printf(b, "%s_sum%s%s%s %.6f\n", name, labels[0] ? "{" : "", labels,
	    labels[0] ? "}" : "",
	    (double)atomic_load_explicit(&h->sum_us, memory_order_relaxed) / 1e6);
	util_buf_printf(b, "%s_count%s%s%s %llu\n", name, labels[0] ? "{" : "", labels,
	    labels[0] ? "}" : "", count);
}

struct metrics_gauges {
	struct util_buf pending, dead;
};

static void
metrics_gauge_cb(const char *provider, int64_t pending, int64_t dead, void *arg)
{
	struct metrics_gauges *g = arg;
	util_buf_puts(&g->pending, "fluxrelay_queue_pending{provider=\"");
	metrics_label(&g->pending, provider);
	util_buf_printf(&g->pending, "\"} %lld\n", (long long)pending);
	util_buf_puts(&g->dead, "fluxrelay_queue_dead{provider=\"");
	metrics_label(&g->dead, provider);
	util_buf_printf(&g->dead, "\"} %lld\n", (long long)dead);
}

void
metrics_render(struct util_buf *b, struct queue *q)
{
	util_buf_puts(b, "# HELP fluxrelay_build_info Build information.\n"
	    "# TYPE fluxrelay_build_info gauge\n");
	util_buf_printf(b, "fluxrelay_build_info{version=\"%s\"} 1\n", PACKAGE_VERSION);

	util_buf_puts(b, "# HELP fluxrelay_events_received_total Events received, by outcome.\n"
	    "# TYPE fluxrelay_events_received_total counter\n");
	for (int i = 0; i < METRICS_EVENT_NSTATUS; i++)
		util_buf_printf(b, "fluxrelay_events_received_total{status=\"%s\"} %llu\n",
		    metrics_event_names[i],
		    (unsigned long long)atomic_load_explicit(&metrics_events[i], memory_order_relaxed));

	util_buf_puts(b, "# HELP fluxrelay_http_requests_total HTTP requests answered, by status code.\n"
	    "# TYPE fluxrelay_http_requests_total counter\n");
	for (int c = 100; c < 600; c++) {
		unsigned long long v = atomic_load_explicit(&metrics_codes[c], memory_order_relaxed);
		if (v)
			util_buf_printf(b, "fluxrelay_http_requests_total{code=\"%d\"} %llu\n", c, v);
	}
	util_buf_puts(b, "# HELP fluxrelay_http_request_duration_seconds Time from request headers to response.\n"
	    "# TYPE fluxrelay_http_request_duration_seconds histogram\n");
	metrics_hist_render(b, "fluxrelay_http_request_duration_seconds", "",
	    &metrics_http_duration, metrics_buckets);

	util_buf_puts(b, "# HELP fluxrelay_connections_refused_total Connections refused at "
	    "listen.max_connections, none idle to close.\n"
	    "# TYPE fluxrelay_connections_refused_total counter\n");
	util_buf_printf(b, "fluxrelay_connections_refused_total %llu\n",
	    (unsigned long long)atomic_load_explicit(&metrics_refused, memory_order_relaxed));

	util_buf_puts(b, "# HELP fluxrelay_deliveries_total Delivery attempts' outcomes, in events.\n"
	    "# TYPE fluxrelay_deliveries_total counter\n");
	for (int i = 0; i <= METRICS_MAX_PROVIDERS; i++) {
		struct metrics_provider *p = &metrics_providers[i];
		if (p->name[0] == '\0')
			continue;
		for (int r = 0; r < METRICS_NRESULT; r++) {
			util_buf_puts(b, "fluxrelay_deliveries_total{provider=\"");
			metrics_label(b, p->name);
			util_buf_printf(b, "\",result=\"%s\"} %llu\n", metrics_result_names[r],
			    (unsigned long long)atomic_load_explicit(&p->result[r], memory_order_relaxed));
		}
	}

	/*
	 * The gauges need a scan of the queue table. Scrapes hammered by a client
	 * (metrics need no auth) reuse the last scan: for up to a second while the
	 * pending count has not moved, and for 100 ms in any case.
	 */
	pthread_mutex_lock(&metrics_lock);
	double now = util_mono();
	int64_t pending = queue_pending_get();
	bool fresh = metrics_gauges_at > 0 && (now - metrics_gauges_at < 0.1 ||
	    (now - metrics_gauges_at < 1.0 && pending == metrics_gauges_pending));
	if (!fresh && q != NULL) {
		struct metrics_gauges g = {0};
		queue_count_by_provider(q, metrics_gauge_cb, &g);
		util_buf_free(&metrics_pending_text);
		util_buf_free(&metrics_dead_text);
		metrics_pending_text = g.pending;
		metrics_dead_text = g.dead;
		metrics_gauges_at = now;
		metrics_gauges_pending = pending;
	}
	util_buf_puts(b, "# HELP fluxrelay_queue_pending Deliveries waiting to be sent.\n"
	    "# TYPE fluxrelay_queue_pending gauge\n");
	if (metrics_pending_text.len)
		util_buf_puts(b, metrics_pending_text.data);
	util_buf_puts(b, "# HELP fluxrelay_queue_dead Dead letters kept for inspection.\n"
	    "# TYPE fluxrelay_queue_dead gauge\n");
	if (metrics_dead_text.len)
		util_buf_puts(b, metrics_dead_text.data);
	pthread_mutex_unlock(&metrics_lock);

	util_buf_puts(b, "# HELP fluxrelay_delivery_latency_seconds Time from acceptance to delivery.\n"
	    "# TYPE fluxrelay_delivery_latency_seconds histogram\n");
	for (int i = 0; i <= METRICS_MAX_PROVIDERS; i++) {
		struct metrics_provider *p = &metrics_providers[i];
		if (p->name[0] == '\0')
			continue;
		struct util_buf lab = {0};
		util_buf_puts(&lab, "provider=\"");
		metrics_label(&lab, p->name);
		util_buf_puts(&lab, "\"");
		metrics_hist_render(b, "fluxrelay_delivery_latency_seconds", lab.data, &p->latency,
		    metrics_latency_buckets);
		util_buf_free(&lab);
	}
}
