/*
 * metrics: counters, gauges and histograms for SPEC §10, rendered in
 * Prometheus text format 0.0.4. Updates are relaxed atomics (any thread).
 * Per-provider series live in a small append-only table: a provider's slot
 * is claimed once under metrics_lock (its name written, then `used` set with
 * release order) and never moves or changes, so a reader that sees `used`
 * with acquire order reads a complete name without a lock. Providers beyond
 * METRICS_MAX_PROVIDERS share the last slot, labelled "other".
 */
#include "config.h"
#include "metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define METRICS_MAX_PROVIDERS 64
#define METRICS_NBUCKETS 14

static const double metrics_buckets[METRICS_NBUCKETS] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10
};
/* Delivery latency spans seconds to hours (retries, outages). */
static const double metrics_latency_buckets[METRICS_NBUCKETS] = {
	0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600
};

/*
 * One counter per bucket, not cumulative: an observation is two atomic adds
 * (its bucket and the sum), not one per bound it is under (up to 16 on every
 * fast HTTP request, each a locked instruction, on lines all HTTP threads
 * share: bench/README.md). Rendering adds them up; bucket[METRICS_NBUCKETS]
 * counts what is above every bound, and the count is the total.
 */
struct metrics_hist {
	atomic_uint_fast64_t bucket[METRICS_NBUCKETS + 1];
	atomic_uint_fast64_t sum_us;     /* microseconds, so the sum stays an integer atomic */
};

/*
 * A named series' slot in an append-only table (providers, clients, alerts):
 * claimed under the table's lock, name first and then `used` with release
 * order, and never moved, so a reader that sees `used` with acquire order
 * finds the name complete without the lock. It is the first member of each
 * table's struct. The table's last slot is "other", for names beyond it.
 */
struct metrics_slot {
	char name[128];
	atomic_int used;
};

struct metrics_table {
	void *slots;              /* max + 1 structs of stride bytes */
	size_t stride;
	int max;
	pthread_mutex_t *lock;
};

static struct metrics_slot *
metrics_table_at(const struct metrics_table *t, int i)
{
	return (struct metrics_slot *)((char *)t->slots + (size_t)i * t->stride);
}

/* The slot of name[0..n) (bounded to the slot's size), claimed if new. */
static void *
metrics_table_find(const struct metrics_table *t, const char *name, size_t n)
{
	char key[sizeof(((struct metrics_slot *)0)->name)];
	if (n >= sizeof(key))
		n = sizeof(key) - 1;
	memcpy(key, name, n);
	key[n] = '\0';
	for (int i = 0; i < t->max; i++) {
		struct metrics_slot *e = metrics_table_at(t, i);
		if (!atomic_load_explicit(&e->used, memory_order_acquire))
			break;
		if (strcmp(e->name, key) == 0)
			return e;
	}
	pthread_mutex_lock(t->lock);
	struct metrics_slot *found = metrics_table_at(t, t->max);
	for (int i = 0; i < t->max; i++) {
		struct metrics_slot *e = metrics_table_at(t, i);
		if (!atomic_load_explicit(&e->used, memory_order_acquire)) {
			snprintf(e->name, sizeof(e->name), "%s", key);
			atomic_store_explicit(&e->used, 1, memory_order_release);
			found = e;
			break;
		}
		if (strcmp(e->name, key) == 0) {
			found = e;
			break;
		}
	}
	if (!atomic_load_explicit(&found->used, memory_order_acquire)) {
		snprintf(found->name, sizeof(found->name), "other");
		atomic_store_explicit(&found->used, 1, memory_order_release);
	}
	pthread_mutex_unlock(t->lock);
	return found;
}

struct metrics_provider {
	struct metrics_slot s;        /* first: the table's view of it */
	atomic_uint_fast64_t result[METRICS_NRESULT];
	struct metrics_hist latency;
	_Atomic int64_t pending, dead;   /* gauges */
};

static atomic_uint_fast64_t metrics_events[METRICS_EVENT_NSTATUS];
static atomic_uint_fast64_t metrics_codes[600];
static struct metrics_hist metrics_http_duration;
/* Slot claiming is guarded by metrics_lock; slots are never freed. */
static pthread_mutex_t metrics_lock = PTHREAD_MUTEX_INITIALIZER;
static struct metrics_provider metrics_providers[METRICS_MAX_PROVIDERS + 1];

/* client_events_total: one slot per client name, claimed as metrics_provider
 * claims its; never freed, so a scrape may read them without a lock. */
struct metrics_client {
	struct metrics_slot s;        /* first: the table's view of it */
	atomic_uint_fast64_t events[METRICS_EVENT_NSTATUS];
};
static struct metrics_client metrics_clients[METRICS_MAX_CLIENTS + 1];

/* fluxrelay_connections_refused_total (SPEC §4). */
static atomic_uint_fast64_t metrics_refused;

static const char *const metrics_event_names[] = { "accepted", "ignored", "duplicate", "rejected" };
static const char *const metrics_result_names[] = { "delivered", "retried", "rate_limited", "dead" };

static void
metrics_hist_observe(struct metrics_hist *h, const double *bounds, double v)
{
	int i = 0;
	while (i < METRICS_NBUCKETS && !(v <= bounds[i]))
		i++;
	atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
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

static const struct metrics_table metrics_provider_table = {
	metrics_providers, sizeof(metrics_providers[0]), METRICS_MAX_PROVIDERS, &metrics_lock
};

static struct metrics_provider *
metrics_provider_slot(const char *name)
{
	return metrics_table_find(&metrics_provider_table, name, strlen(name));
}

/* The slot at index i when it is in use (its name complete), else NULL. */
static struct metrics_provider *
metrics_slot_used(int i)
{
	struct metrics_provider *p = &metrics_providers[i];
	return atomic_load_explicit(&p->s.used, memory_order_acquire) ? p : NULL;
}

void
metrics_provider(const char *provider)
{
	metrics_provider_slot(provider);
}

static const struct metrics_table metrics_client_table = {
	metrics_clients, sizeof(metrics_clients[0]), METRICS_MAX_CLIENTS, &metrics_lock
};

static struct metrics_client *
metrics_client_slot(const char *name)
{
	return metrics_table_find(&metrics_client_table, name, strlen(name));
}

void
metrics_client(const char *cluster)
{
	metrics_client_slot(cluster);
}

void
metrics_client_event(const char *cluster, enum metrics_event_status s)
{
	if (s < METRICS_EVENT_NSTATUS)
		atomic_fetch_add_explicit(&metrics_client_slot(cluster)->events[s], 1,
		    memory_order_relaxed);
}

void
metrics_queue_add(const char *provider, int64_t pending, int64_t dead)
{
	struct metrics_provider *p = metrics_provider_slot(provider);
	if (pending != 0)
		atomic_fetch_add_explicit(&p->pending, pending, memory_order_relaxed);
	if (dead != 0)
		atomic_fetch_add_explicit(&p->dead, dead, memory_order_relaxed);
}

void
metrics_queue_sync(const char *const *providers, const int64_t *pending,
    const int64_t *dead, size_t n)
{
	int64_t sum_p[METRICS_MAX_PROVIDERS + 1] = {0}, sum_d[METRICS_MAX_PROVIDERS + 1] = {0};
	/* Claim first, then store each slot once: a scrape never sees a gauge
	 * drop to 0 on its way to its new value. */
	for (size_t i = 0; i < n; i++) {
		struct metrics_provider *p = metrics_provider_slot(providers[i]);
		sum_p[p - metrics_providers] += pending[i];
		sum_d[p - metrics_providers] += dead[i];
	}
	for (int i = 0; i <= METRICS_MAX_PROVIDERS; i++) {
		struct metrics_provider *p = metrics_slot_used(i);
		if (p == NULL)
			continue;
		atomic_store_explicit(&p->pending, sum_p[i], memory_order_relaxed);
		atomic_store_explicit(&p->dead, sum_d[i], memory_order_relaxed);
	}
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
	unsigned long long count = 0;
	for (int i = 0; i < METRICS_NBUCKETS; i++) {
		count += atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
		util_buf_printf(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, bounds[i],
		    count);
	}
	count += atomic_load_explicit(&h->bucket[METRICS_NBUCKETS], memory_order_relaxed);
	util_buf_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep, count);
	util_buf_printf(b, "%s_sum%s%s%s %.6f\n", name, labels[0] ? "{" : "", labels,
	    labels[0] ? "}" : "",
	    (double)atomic_load_explicit(&h->sum_us, memory_order_relaxed) / 1e6);
	util_buf_printf(b, "%s_count%s%s%s %llu\n", name, labels[0] ? "{" : "", labels,
	    labels[0] ? "}" : "", count);
}

/* One gauge line per provider; a count below 0 (a transient of
 * metrics_queue_add racing a sync) shows as 0. */
static void
metrics_gauge_render(struct util_buf *b, const char *name, bool dead)
{
	for (int i = 0; i <= METRICS_MAX_PROVIDERS; i++) {
		struct metrics_provider *p = metrics_slot_used(i);
		if (p == NULL)
			continue;
		int64_t v = atomic_load_explicit(dead ? &p->dead : &p->pending,
		    memory_order_relaxed);
		util_buf_printf(b, "%s{provider=\"", name);
		metrics_label(b, p->s.name);
		util_buf_printf(b, "\"} %lld\n", (long long)(v < 0 ? 0 : v));
	}
}

/* ---- notifications_total{alert,kind} ----
 * A table of alerts of its own (every alert, not only the changes ones
 * of incidents_open), like the providers' (claimed once under
 * metrics_notif_lock, never moved; readers check `used` with acquire order);
 * alerts beyond METRICS_MAX_NOTIF_ALERTS share the last slot, labelled "other".
 */
#define METRICS_MAX_NOTIF_ALERTS 256

struct metrics_notif {
	struct metrics_slot s;        /* first: the table's view of it */
	atomic_uint_fast64_t kind[METRICS_NKIND];
};

static pthread_mutex_t metrics_notif_lock = PTHREAD_MUTEX_INITIALIZER;
static struct metrics_notif metrics_notif_alerts[METRICS_MAX_NOTIF_ALERTS + 1];
static const char *const metrics_kind_names[] = {
	"event", "opened", "reminder", "recovered", "reply",
};

static const struct metrics_table metrics_notif_table = {
	metrics_notif_alerts, sizeof(metrics_notif_alerts[0]), METRICS_MAX_NOTIF_ALERTS,
	&metrics_notif_lock
};

/* The slot of the alert named name[0..n). */
static struct metrics_notif *
metrics_notif_slot(const char *name, size_t n)
{
	return metrics_table_find(&metrics_notif_table, name, n);
}

void
metrics_alert(const char *alert)
{
	metrics_notif_slot(alert, strlen(alert));
}

void
metrics_notification(const char *alerts, int kind)
{
	if (alerts == NULL)
		return;
	if (kind < 0 || kind >= METRICS_NKIND)
		kind = METRICS_KIND_EVENT;
	for (const char *s = alerts; *s;) {
		size_t n = strcspn(s, ",");
		if (n > 0)
			atomic_fetch_add_explicit(&metrics_notif_slot(s, n)->kind[kind], 1,
			    memory_order_relaxed);
		s += n;
		if (*s == ',')
			s++;
	}
}

static void
metrics_notifications_render(struct util_buf *b)
{
	util_buf_puts(b, "# HELP fluxrelay_notifications_total Messages delivered per alert, "
	    "by kind.\n# TYPE fluxrelay_notifications_total counter\n");
	for (int i = 0; i <= METRICS_MAX_NOTIF_ALERTS; i++) {
		struct metrics_notif *a = &metrics_notif_alerts[i];
		if (!atomic_load_explicit(&a->s.used, memory_order_acquire))
			continue;
		for (int k = 0; k < METRICS_NKIND; k++) {
			util_buf_puts(b, "fluxrelay_notifications_total{alert=\"");
			metrics_label(b, a->s.name);
			util_buf_printf(b, "\",kind=\"%s\"} %llu\n", metrics_kind_names[k],
			    (unsigned long long)atomic_load_explicit(&a->kind[k],
			    memory_order_relaxed));
		}
	}
}

/* ---- incidents_open{alert} ------------------------------------------------
 * The same append-only slot table as the providers', of its own: a slot is
 * claimed under metrics_incidents_lock (name first, then `used` with release
 * order) and never moves. Alerts beyond METRICS_MAX_ALERTS share "other". */

#define METRICS_MAX_ALERTS 64

struct metrics_alert {
	struct metrics_slot s;        /* first: the table's view of it */
	_Atomic int64_t open;         /* gauge */
};

static pthread_mutex_t metrics_incidents_lock = PTHREAD_MUTEX_INITIALIZER;
static struct metrics_alert metrics_alerts[METRICS_MAX_ALERTS + 1];

static const struct metrics_table metrics_alert_table = {
	metrics_alerts, sizeof(metrics_alerts[0]), METRICS_MAX_ALERTS, &metrics_incidents_lock
};

static struct metrics_alert *
metrics_alert_slot(const char *name)
{
	return metrics_table_find(&metrics_alert_table, name, strlen(name));
}

void
metrics_incidents_alert(const char *alert)
{
	metrics_alert_slot(alert);
}

void
metrics_incidents_add(const char *alert, int64_t delta)
{
	if (delta != 0)
		atomic_fetch_add_explicit(&metrics_alert_slot(alert)->open, delta,
		    memory_order_relaxed);
}

void
metrics_incidents_sync(const char *const *alerts, const int64_t *n, size_t count)
{
	int64_t sum[METRICS_MAX_ALERTS + 1] = {0};
	for (size_t i = 0; i < count; i++)
		sum[metrics_alert_slot(alerts[i]) - metrics_alerts] += n[i];
	for (int i = 0; i <= METRICS_MAX_ALERTS; i++)
		if (atomic_load_explicit(&metrics_alerts[i].s.used, memory_order_acquire))
			atomic_store_explicit(&metrics_alerts[i].open, sum[i], memory_order_relaxed);
}

static void
metrics_incidents_render(struct util_buf *b)
{
	util_buf_puts(b, "# HELP fluxrelay_incidents_open Open incidents of notify = \"changes\" "
	    "alerts.\n# TYPE fluxrelay_incidents_open gauge\n");
	for (int i = 0; i <= METRICS_MAX_ALERTS; i++) {
		struct metrics_alert *a = &metrics_alerts[i];
		if (!atomic_load_explicit(&a->s.used, memory_order_acquire))
			continue;
		int64_t v = atomic_load_explicit(&a->open, memory_order_relaxed);
		util_buf_puts(b, "fluxrelay_incidents_open{alert=\"");
		metrics_label(b, a->s.name);
		util_buf_printf(b, "\"} %lld\n", (long long)(v < 0 ? 0 : v));
	}
}

void
metrics_render(struct util_buf *b)
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

	bool clients = false;
	for (int i = 0; i <= METRICS_MAX_CLIENTS && !clients; i++)
		clients = atomic_load_explicit(&metrics_clients[i].s.used, memory_order_acquire);
	if (clients) {
		util_buf_puts(b, "# HELP fluxrelay_client_events_total Events received from each "
		    "client of auth.clients, by outcome.\n"
		    "# TYPE fluxrelay_client_events_total counter\n");
		for (int i = 0; i <= METRICS_MAX_CLIENTS; i++) {
			struct metrics_client *c = &metrics_clients[i];
			if (!atomic_load_explicit(&c->s.used, memory_order_acquire))
				continue;
			for (int s = 0; s < METRICS_EVENT_NSTATUS; s++) {
				util_buf_puts(b, "fluxrelay_client_events_total{cluster=\"");
				metrics_label(b, c->s.name);
				util_buf_printf(b, "\",status=\"%s\"} %llu\n", metrics_event_names[s],
				    (unsigned long long)atomic_load_explicit(&c->events[s],
				    memory_order_relaxed));
			}
		}
	}

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
		struct metrics_provider *p = metrics_slot_used(i);
		if (p == NULL)
			continue;
		for (int r = 0; r < METRICS_NRESULT; r++) {
			util_buf_puts(b, "fluxrelay_deliveries_total{provider=\"");
			metrics_label(b, p->s.name);
			util_buf_printf(b, "\",result=\"%s\"} %llu\n", metrics_result_names[r],
			    (unsigned long long)atomic_load_explicit(&p->result[r], memory_order_relaxed));
		}
	}

	util_buf_puts(b, "# HELP fluxrelay_queue_pending Deliveries waiting to be sent.\n"
	    "# TYPE fluxrelay_queue_pending gauge\n");
	metrics_gauge_render(b, "fluxrelay_queue_pending", false);
	util_buf_puts(b, "# HELP fluxrelay_queue_dead Dead letters kept for inspection.\n"
	    "# TYPE fluxrelay_queue_dead gauge\n");
	metrics_gauge_render(b, "fluxrelay_queue_dead", true);

	util_buf_puts(b, "# HELP fluxrelay_delivery_latency_seconds Time from acceptance to delivery.\n"
	    "# TYPE fluxrelay_delivery_latency_seconds histogram\n");
	for (int i = 0; i <= METRICS_MAX_PROVIDERS; i++) {
		struct metrics_provider *p = metrics_slot_used(i);
		if (p == NULL)
			continue;
		struct util_buf lab = {0};
		util_buf_puts(&lab, "provider=\"");
		metrics_label(&lab, p->s.name);
		util_buf_puts(&lab, "\"");
		metrics_hist_render(b, "fluxrelay_delivery_latency_seconds", lab.data, &p->latency,
		    metrics_latency_buckets);
		util_buf_free(&lab);
	}
	metrics_notifications_render(b);
	metrics_incidents_render(b);
}
