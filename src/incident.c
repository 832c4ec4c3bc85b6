/*
 * incident: the state machine of notify = "changes" alerts (SPEC §12), run by
 * the queue writer in the transaction that stores the deliveries it causes.
 *
 * Per request: incident_plan looks up each FAILURE/RECOVERY hit's incident by
 * the unique index (alert, cluster, kind, namespace, name), decides
 * (incident_decide) and builds the delivery rows: the targets of every alert
 * that delivers are merged per target as rules_match merges events
 * (rules_merge), each target getting the most significant kind of the alerts
 * merged into it (incident_kind_rank) and that alert's incident snapshot.
 * incident_apply then writes the decisions; nothing is written by the plan,
 * so a request refused after it (queue full) leaves the state alone.
 *
 * The snapshot (the deliveries' incident column, queue.c) is what rendering
 * needs once the incident row may be gone: {"alert", "state", "since",
 * "failures", "last_message", "reason", "revision", "duration"}.
 *
 * Housekeeping: incident_sweep (expiry; the writer calls it at least once a
 * minute) and incident_conf_apply (start and reload): the meta row
 * "alert:NAME" keeps what an alert's incidents depend on (notify and
 * sources), "threads:NAME" its threaded targets (so that its threads can be
 * dropped with its incidents once it is gone) and "provider:NAME" whether a
 * provider threads, so a change is noticed across restarts too.
 */
#include "incident.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dedup.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

/* One FAILURE/RECOVERY (or EVENT) hit of a request. */
struct incident_step {
	size_t alert;                    /* index into req->conf->alerts */
	enum rules_role role;
	struct incident_decision d;
	bool have;                       /* cur was found (open or expired) */
	bool delivers;                   /* its alert gave the event a target (incident_plan) */
	struct queue_incident cur;
	char *json;                      /* the snapshot its deliveries carry; NULL: none */
};

/* ---------------------------------------------------------------- pure */

bool
incident_expired(const struct queue_incident *in, double ttl, double now)
{
	return in->last_at + ttl <= now;
}

struct incident_decision
incident_decide(enum rules_role role, const struct queue_incident *cur, const char *norm,
    double now, double repeat_interval, double ttl)
{
	struct incident_decision d = { INCIDENT_NONE, QUEUE_KIND_EVENT, false };
	bool open = cur != NULL && !incident_expired(cur, ttl, now);
	if (role == RULES_FAILURE) {
		if (!open) {
			d.action = INCIDENT_OPEN;
			d.kind = QUEUE_KIND_OPENED;
			d.replaces = cur != NULL;
			return d;
		}
		d.action = INCIDENT_COUNT;
		/* last_notified_at: the incident's last message, reply included (SPEC §12). */
		if (repeat_interval > 0 && now - cur->last_notified_at >= repeat_interval)
			d.kind = QUEUE_KIND_REMINDER;
		else if (strcmp(norm, cur->last_norm ? cur->last_norm : "") != 0)
			d.kind = QUEUE_KIND_REPLY;
		return d;
	}
	/* An expired incident is left to the sweep: its recovery says nothing. */
	if (role == RULES_RECOVERY && open) {
		d.action = INCIDENT_CLOSE;
		d.kind = QUEUE_KIND_RECOVERED;
	}
	return d;
}

int
incident_kind_rank(enum queue_kind kind)
{
	switch (kind) {
	case QUEUE_KIND_OPENED: return 4;
	case QUEUE_KIND_RECOVERED: return 3;
	case QUEUE_KIND_REMINDER: return 2;
	case QUEUE_KIND_REPLY: return 1;
	default: return 0;
	}
}

/* The kind of a rank (the inverse of incident_kind_rank). */
static enum queue_kind
incident_rank_kind(int rank)
{
	static const enum queue_kind k[] = { QUEUE_KIND_EVENT, QUEUE_KIND_REPLY,
		QUEUE_KIND_REMINDER, QUEUE_KIND_RECOVERED, QUEUE_KIND_OPENED };
	return rank >= 0 && rank <= 4 ? k[rank] : QUEUE_KIND_EVENT;
}

const char *
incident_cluster(const struct event *ev)
{
	return ev->cluster ? ev->cluster : "";
}

char *
incident_thread_key(const char *cluster, const struct event *ev)
{
	return util_printf("%s/%s/%s/%s", cluster ? cluster : "", ev->kind,
	    ev->namespace ? ev->namespace : "", ev->name);
}

void
incident_norm(const char *message, bool normalize_durations, char norm[33])
{
	char *n = normalize_durations ? dedup_normalize(message ? message : "") :
	    util_strdup(message ? message : "");
	unsigned char h[32];
	(void)gnutls_hash_fast(GNUTLS_DIG_SHA256, n, strlen(n), h);
	free(n);
	static const char hex[] = "0123456789abcdef";
	for (int i = 0; i < 16; i++) {
		norm[2 * i] = hex[h[i] >> 4];
		norm[2 * i + 1] = hex[h[i] & 15];
	}
	norm[32] = '\0';
}

/* ---------------------------------------------------------------- plan */

static const char *
incident_revision(const struct event *ev)
{
	const char *r = event_meta_get(ev, "revision");
	return r ? r : "";
}

/* The snapshot of step s's incident for its deliveries. */
static char *
incident_snapshot(const struct conf_alert *a, const struct incident_step *s,
    const struct event *ev, double now)
{
	const struct queue_incident *cur = s->have ? &s->cur : NULL;
	double since = now;
	int64_t failures = 1;
	const char *last = ev->message, *reason = ev->reason;
	if (s->d.action == INCIDENT_COUNT) {
		since = cur->opened_at;
		failures = cur->failures + 1;
	} else if (s->d.action == INCIDENT_CLOSE) {
		since = cur->opened_at;
		failures = cur->failures;
		last = cur->last_message;
		reason = cur->last_reason;
	}
	struct util_buf b = {0};
	util_buf_puts(&b, "{\"alert\":");
	util_buf_json_string(&b, a->name);
	util_buf_puts(&b, ",\"state\":");
	util_buf_json_string(&b, queue_kind_name(s->d.kind));
	util_buf_printf(&b, ",\"since\":%.3f,\"failures\":%" PRId64 ",\"last_message\":", since,
	    failures);
	util_buf_json_string(&b, last ? last : "");
	util_buf_puts(&b, ",\"reason\":");
	util_buf_json_string(&b, reason ? reason : "");
	util_buf_puts(&b, ",\"revision\":");
	util_buf_json_string(&b, incident_revision(ev));
	if (s->d.action != INCIDENT_OPEN)
		util_buf_printf(&b, ",\"duration\":%.3f", now - since);
	util_buf_puts(&b, "}");
	return b.data;
}

/* Forget the plan (steps, merged targets, rows), keep the request. */
static void
incident_plan_clear(struct incident_req *req)
{
	for (size_t i = 0; i < req->nsteps; i++) {
		queue_incident_clear(&req->steps[i].cur);
		free(req->steps[i].json);
	}
	free(req->steps);
	req->steps = NULL;
	req->nsteps = 0;
	for (size_t i = 0; i < req->nitems; i++)
		free(req->extras[i]);
	free(req->extras);
	req->extras = NULL;
	free(req->items);
	req->items = NULL;
	req->nitems = 0;
	free(req->alerts);
	req->alerts = NULL;
	req->nalerts = 0;
	rules_result_clear(&req->merged);
	req->changes = false;
}

void
incident_req_clear(struct incident_req *req)
{
	if (req == NULL)
		return;
	incident_plan_clear(req);
	free(req->thread_key);
	req->thread_key = NULL;
}

/* Whether the writer's configuration still has alert a as a changes alert. */
static bool
incident_still_changes(const struct conf *current, const struct conf_alert *a)
{
	if (current == NULL)
		return true;
	for (size_t i = 0; i < current->nalerts; i++)
		if (strcmp(current->alerts[i].name, a->name) == 0)
			return current->alerts[i].notify == CONF_NOTIFY_CHANGES;
	return false;
}

/*
 * Whether another notify = "changes" alert on target t (not one of req's
 * steps opening now) has an incident of req's object open at now: its
 * thread is the object's, so a new incident there is a reply (SPEC §12:
 * every alert on the object shares the thread; a second parent would stay
 * red when the recovery edits one). Decided here, with the incidents as
 * this transaction sees them, not when the row goes out. 1, 0, -1.
 */
static int
incident_thread_open(struct queue *q, const struct incident_req *req,
    const struct rules_target *t, double now)
{
	const struct conf *c = req->conf;
	const struct event *ev = req->ev;
	for (size_t i = 0; i < c->nalerts; i++) {
		const struct conf_alert *a = &c->alerts[i];
		if (a->notify != CONF_NOTIFY_CHANGES)
			continue;
		bool opening = false;
		for (size_t k = 0; k < req->nsteps && !opening; k++)
			opening = req->steps[k].alert == i && req->steps[k].d.action == INCIDENT_OPEN;
		if (opening || !rules_alert_targets(c, a, c->providers[t->provider].name, t->channel))
			continue;
		struct queue_incident in;
		int rc = queue_incident_get(q, a->name, req->cluster ? req->cluster : "", ev->kind,
		    ev->namespace ? ev->namespace : "", ev->name, &in);
		if (rc < 0)
			return -1;
		if (rc == 0)
			continue;
		bool open = !incident_expired(&in, a->incident_ttl, now);
		queue_incident_clear(&in);
		if (open)
			return 1;
	}
	return 0;
}

/* Decide every hit (q NULL: no incident is open anywhere), then merge the targets. */
static int
incident_plan_with(struct queue *q, struct incident_req *req, const struct conf *current,
    double now)
{
	const struct conf *c = req->conf;
	const struct event *ev = req->ev;
	const char *cluster = req->cluster ? req->cluster : "";
	char norm[33];
	incident_plan_clear(req);
	if (req->thread_key == NULL)
		req->thread_key = incident_thread_key(cluster, ev);
	incident_norm(ev->message, c->dedup.normalize_durations, norm);

	req->steps = util_calloc(req->nhits ? req->nhits : 1, sizeof(*req->steps));
	struct rules_pick *picks = util_calloc(req->nhits ? req->nhits : 1, sizeof(*picks));
	size_t npicks = 0;
	for (size_t i = 0; i < req->nhits; i++) {
		const struct conf_alert *a = &c->alerts[req->hits[i].alert];
		struct incident_step *s = &req->steps[req->nsteps];
		s->alert = req->hits[i].alert;
		s->role = req->hits[i].role;
		if (s->role == RULES_EVENT) {
			req->nsteps++;
			picks[npicks++] = (struct rules_pick){ s->alert, 0, false };
			continue;
		}
		if (a->notify != CONF_NOTIFY_CHANGES || !incident_still_changes(current, a))
			continue;
		if (q != NULL) {
			int rc = queue_incident_get(q, a->name, cluster, ev->kind,
			    ev->namespace ? ev->namespace : "", ev->name, &s->cur);
			if (rc < 0) {
				free(picks);
				return -1;
			}
			s->have = rc == 1;
		}
		s->d = incident_decide(s->role, s->have ? &s->cur : NULL, norm, now,
		    a->repeat_interval, a->incident_ttl);
		req->nsteps++;
		if (s->d.action != INCIDENT_NONE)
			req->changes = true;
		if (s->d.kind == QUEUE_KIND_EVENT)
			continue;
		s->json = incident_snapshot(a, s, ev, now);
		picks[npicks++] = (struct rules_pick){ s->alert, incident_kind_rank(s->d.kind),
			s->d.kind == QUEUE_KIND_REPLY };
	}

	size_t n = rules_merge(c, picks, npicks, &req->merged);
	req->items = util_calloc(n ? n : 1, sizeof(*req->items));
	req->extras = util_calloc(n ? n : 1, sizeof(*req->extras));
	for (size_t i = 0; i < n; i++) {
		const struct rules_target *t = &req->merged.targets[i];
		const struct conf_provider *p = &c->providers[t->provider];
		struct queue_item *it = &req->items[i];
		req->extras[i] = rules_extra_json(t);
		it->provider = p->name;
		it->channel = t->channel;
		it->alerts = t->alerts;
		it->extra = req->extras[i];
		it->cluster = cluster;
		it->kind = incident_rank_kind(t->rank);
		it->thread_key = rules_threaded(p) ? req->thread_key : "";
		if (it->kind == QUEUE_KIND_OPENED && rules_threaded(p) && q != NULL) {
			int open = incident_thread_open(q, req, t, now);
			if (open < 0) {
				req->nitems = i + 1;   /* extras[0..i] to free */
				free(picks);
				return -1;
			}
			if (open)
				it->kind = QUEUE_KIND_REPLY;
		}
		it->incident = NULL;
		/* The snapshot of the pick that gave the target its kind. */
		for (size_t k = 0; k < req->nsteps && it->kind != QUEUE_KIND_EVENT; k++)
			if (req->steps[k].alert == picks[t->pick].alert && req->steps[k].json) {
				it->incident = req->steps[k].json;
				break;
			}
	}
	req->nitems = n;
	free(picks);

	/* The alerts that deliver or change state, config order. */
	req->alerts = util_calloc(req->nsteps ? req->nsteps : 1, sizeof(*req->alerts));
	for (size_t k = 0; k < req->nsteps; k++) {
		const struct incident_step *s = &req->steps[k];
		const char *name = c->alerts[s->alert].name;
		bool delivers = false;
		for (size_t j = 0; j < req->merged.nalerts && !delivers; j++)
			delivers = strcmp(req->merged.alerts[j], name) == 0;
		req->steps[k].delivers = delivers;
		if (delivers || s->d.action != INCIDENT_NONE)
			req->alerts[req->nalerts++] = name;
	}
	return 0;
}

int
incident_plan(struct queue *q, struct incident_req *req, const struct conf *current,
    double now)
{
	return incident_plan_with(q, req, current, now);
}

void
incident_plan_stateless(struct incident_req *req, double now)
{
	(void)incident_plan_with(NULL, req, NULL, now);
}

/* ---------------------------------------------------------------- apply */

/* Keep the handles of a failing object's threads alive (thread_ttl), per threaded target of a. */
static int
incident_touch_threads(struct queue *q, const struct conf *c, const struct conf_alert *a,
    const char *thread_key, double now)
{
	for (size_t k = 0; k < a->nproviders; k++) {
		const struct conf_provider *p = &c->providers[a->provider_idx[k]];
		if (!rules_threaded(p))
			continue;
		const char *ch = rules_channel(c, a, k);
		if (queue_thread_touch(q, p->name, ch ? ch : "", thread_key, now, -1) < 0)
			return -1;
	}
	return 0;
}

int
incident_apply(struct queue *q, struct incident_req *req, double now)
{
	const struct event *ev = req->ev;
	char norm[33];
	incident_norm(ev->message, req->conf->dedup.normalize_durations, norm);
	for (size_t i = 0; i < req->nsteps; i++) {
		struct incident_step *s = &req->steps[i];
		const struct conf_alert *a = &req->conf->alerts[s->alert];
		struct queue_incident *cur = &s->cur;
		switch (s->d.action) {
		case INCIDENT_NONE:
			break;
		case INCIDENT_OPEN: {
			if (s->d.replaces && queue_incident_delete(q, cur->id) < 0)
				return -1;
			struct queue_incident in = {
				.alert = (char *)a->name,
				.cluster = (char *)(req->cluster ? req->cluster : ""),
				.kind = ev->kind,
				.namespace = ev->namespace ? ev->namespace : "",
				.name = ev->name,
				.opened_at = now, .last_at = now, .last_notified_at = now,
				.failures = 1,
				.last_message = ev->message,
				.last_norm = norm,
				.last_reason = ev->reason,
				.last_revision = (char *)incident_revision(ev),
			};
			if (queue_incident_insert(q, &in) < 0)
				return -1;
			break;
		}
		case INCIDENT_COUNT: {
			struct queue_incident in = *cur;
			in.failures = cur->failures + 1;
			in.last_at = now;
			/* "since the last message of the incident" (SPEC §12): a
			 * reminder, or a reply that some threaded target gets (an
			 * alert without one says nothing about it). */
			if (s->d.kind == QUEUE_KIND_REMINDER ||
			    (s->d.kind == QUEUE_KIND_REPLY && s->delivers))
				in.last_notified_at = now;
			in.last_message = ev->message;
			in.last_norm = norm;
			in.last_reason = ev->reason;
			in.last_revision = (char *)incident_revision(ev);
			if (queue_incident_update(q, &in) < 0 ||
			    incident_touch_threads(q, req->conf, a, req->thread_key, now) < 0)
				return -1;
			break;
		}
		case INCIDENT_CLOSE:
			if (queue_incident_delete(q, cur->id) < 0)
				return -1;
			break;
		}
	}
	return 0;
}

void
incident_committed(const struct incident_req *req, const char *event_id)
{
	const struct event *ev = req->ev;
	char *object = NULL;
	for (size_t i = 0; i < req->nsteps; i++) {
		const struct incident_step *s = &req->steps[i];
		const char *alert = req->conf->alerts[s->alert].name;
		if (s->d.action == INCIDENT_NONE)
			continue;
		if (object == NULL)
			object = util_printf("%s/%s%s%s", ev->kind, ev->namespace ? ev->namespace : "",
			    ev->namespace ? "/" : "", ev->name);
		char failures[24];
		switch (s->d.action) {
		case INCIDENT_OPEN:
			if (!s->d.replaces)
				metrics_incidents_add(alert, 1);
			log_info("incident opened", "alert", alert, "object", object, "event_id",
			    event_id, "reason", ev->reason, NULL);
			break;
		case INCIDENT_COUNT:
			snprintf(failures, sizeof(failures), "%" PRId64, s->cur.failures + 1);
			if (s->d.kind == QUEUE_KIND_REMINDER)
				log_info("incident reminder", "alert", alert, "object", object,
				    "event_id", event_id, "failures", failures, NULL);
			else if (log_enabled(LOG_LEVEL_DEBUG))
				log_debug("incident failure counted", "alert", alert, "object", object,
				    "event_id", event_id, "failures", failures, NULL);
			break;
		case INCIDENT_CLOSE:
			metrics_incidents_add(alert, -1);
			snprintf(failures, sizeof(failures), "%" PRId64, s->cur.failures);
			log_info("incident recovered", "alert", alert, "object", object, "event_id",
			    event_id, "failures", failures, NULL);
			break;
		default:
			break;
		}
	}
	free(object);
}

/* ---------------------------------------------------------- housekeeping */

/* The alerts with incidents and their numbers, as queue_incident_counts gives them. */
struct incident_counts {
	const char **names;
	int64_t *n;
	size_t len;
};

static void
incident_counts_cb(const char *alert, int64_t n, void *arg)
{
	struct incident_counts *c = arg;
	c->names = util_realloc(c->names, (c->len + 1) * sizeof(*c->names));
	c->n = util_realloc(c->n, (c->len + 1) * sizeof(*c->n));
	c->names[c->len] = util_strdup(alert);
	c->n[c->len++] = n;
}

/* Set the incidents_open gauges from the database (which counts what the CLI closed too). */
static int
incident_sync_gauges(struct queue *q)
{
	struct incident_counts c = {0};
	int rc = queue_incident_counts(q, incident_counts_cb, &c);
	if (rc == 0)
		metrics_incidents_sync(c.names, c.n, c.len);
	for (size_t i = 0; i < c.len; i++)
		free((char *)c.names[i]);
	free(c.names);
	free(c.n);
	return rc;
}

/*
 * What a housekeeping transaction did, said once it has committed: a drop
 * that is rolled back did not happen, and a reader of the log would look for
 * incidents that are still there. name and why are copies; why may be NULL.
 */
struct incident_said {
	struct incident_line {
		enum log_level level;
		const char *msg, *key;   /* static strings */
		char *name, *why;
		int64_t count;
	} *v;
	size_t n;
};

static void
incident_said_add(struct incident_said *s, enum log_level level, const char *msg,
    const char *key, const char *name, int64_t count, const char *why)
{
	s->v = util_realloc(s->v, (s->n + 1) * sizeof(*s->v));
	s->v[s->n++] = (struct incident_line){ level, msg, key, util_strdup(name),
		why != NULL ? util_strdup(why) : NULL, count };
}

/* Log the lines: only once the transaction they tell of has committed. */
static void
incident_said_log(const struct incident_said *s)
{
	for (size_t i = 0; i < s->n; i++) {
		const struct incident_line *l = &s->v[i];
		char num[24];
		snprintf(num, sizeof(num), "%" PRId64, l->count);
		if (l->why != NULL)
			log_msg(l->level, l->msg, l->key, l->name, "count", num, "why", l->why, NULL);
		else
			log_msg(l->level, l->msg, l->key, l->name, "count", num, NULL);
	}
}

static void
incident_said_free(struct incident_said *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->v[i].name);
		free(s->v[i].why);
	}
	free(s->v);
	memset(s, 0, sizeof(*s));
}

int
incident_sweep(struct queue *q, const struct conf *c, double now)
{
	struct incident_said said = {0};
	int ret = -1;
	if (queue_schema_version(q) < 2)
		return 0;
	if (queue_begin(q) < 0)
		return -1;
	for (size_t i = 0; i < c->nalerts; i++) {
		const struct conf_alert *a = &c->alerts[i];
		int64_t n = 0;
		if (a->notify != CONF_NOTIFY_CHANGES)
			continue;
		if (queue_incident_expire(q, a->name, now - a->incident_ttl, &n) < 0)
			goto out;
		if (n > 0)
			incident_said_add(&said, LOG_LEVEL_INFO, "incidents expired: closed silently",
			    "alert", a->name, n, NULL);
	}
	for (size_t i = 0; i < c->nproviders; i++) {
		const struct conf_provider *p = &c->providers[i];
		int64_t n = 0;
		if (!rules_threaded(p))
			continue;
		if (queue_thread_expire(q, p->name, now - p->thread_ttl, &n) < 0)
			goto out;
		if (n > 0 && log_enabled(LOG_LEVEL_DEBUG))
			incident_said_add(&said, LOG_LEVEL_DEBUG, "thread handles expired", "provider",
			    p->name, n, NULL);
	}
	if (queue_commit(q) < 0)
		goto done;
	incident_said_log(&said);
	ret = incident_sync_gauges(q);
	goto done;
out:
	queue_rollback(q);
done:
	incident_said_free(&said);
	return ret;
}

/*
 * What an alert's incidents depend on: its notify and its sources (kind,
 * namespace, name and, with clusters, cluster globs: a source without one,
 * or "*", adds nothing for it). Caller frees. The rows stored since clusters
 * are part of it start with INCIDENT_FINGERPRINT_V2; an older row is
 * compared with the fingerprint without clusters.
 */
#define INCIDENT_FINGERPRINT_V2 "2 "
static char *
incident_fingerprint(const struct conf_alert *a, bool clusters)
{
	struct util_buf b = {0};
	if (clusters)
		util_buf_puts(&b, INCIDENT_FINGERPRINT_V2);
	util_buf_puts(&b, a->notify == CONF_NOTIFY_CHANGES ? "changes" : "events");
	for (size_t i = 0; i < a->nsources; i++) {
		const struct conf_source *s = &a->sources[i];
		util_buf_puts(&b, " ");
		util_buf_json_string(&b, s->kind);
		util_buf_puts(&b, "/");
		util_buf_json_string(&b, s->namespace ? s->namespace : "*");
		util_buf_puts(&b, "/");
		util_buf_json_string(&b, s->name ? s->name : "*");
		if (clusters && s->cluster != NULL && strcmp(s->cluster, "*") != 0) {
			util_buf_puts(&b, "@");
			util_buf_json_string(&b, s->cluster);
		}
	}
	return b.data;
}

/* The meta value of "provider:NAME": whether its messages are threaded. */
static const char *
incident_threads_value(const struct conf_provider *p)
{
	return rules_threaded(p) ? "threads" : "no threads";
}

static bool
incident_alert_uses(const struct conf_alert *a, size_t provider)
{
	for (size_t k = 0; k < a->nproviders; k++)
		if (a->provider_idx[k] == provider)
			return true;
	return false;
}

static const struct conf_alert *
incident_find_changes(const struct conf *c, const char *name)
{
	for (size_t i = 0; i < c->nalerts; i++)
		if (strcmp(c->alerts[i].name, name) == 0)
			return c->alerts[i].notify == CONF_NOTIFY_CHANGES ? &c->alerts[i] : NULL;
	return NULL;
}

/* A list of names collected by a queue callback. */
struct incident_names {
	char **v;
	char **values;
	size_t n;
};

static void
incident_names_add(struct incident_names *l, const char *name, const char *value)
{
	l->v = util_realloc(l->v, (l->n + 1) * sizeof(*l->v));
	l->values = util_realloc(l->values, (l->n + 1) * sizeof(*l->values));
	l->v[l->n] = util_strdup(name);
	l->values[l->n++] = util_strdup(value);
}

static void
incident_names_free(struct incident_names *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i]);
		free(l->values[i]);
	}
	free(l->v);
	free(l->values);
	memset(l, 0, sizeof(*l));
}

static void
incident_meta_cb(const char *key, const char *value, void *arg)
{
	incident_names_add(arg, key + strlen("alert:"), value);
}

static void
incident_meta_provider_cb(const char *key, const char *value, void *arg)
{
	incident_names_add(arg, key + strlen("provider:"), value);
}

static bool
incident_names_has(const struct incident_names *l, const char *name)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i], name) == 0)
			return true;
	return false;
}

static void
incident_count_cb(const char *alert, int64_t n, void *arg)
{
	(void)n;
	incident_names_add(arg, alert, "");
}

static void
incident_provider_cb(const char *provider, void *arg)
{
	incident_names_add(arg, provider, "");
}

/* The meta value of "threads:NAME": a changes alert's threaded targets, "provider\tchannel\n" each. */
static char *
incident_targets_value(const struct conf *c, const struct conf_alert *a)
{
	struct util_buf b = {0};
	util_buf_puts(&b, "");
	for (size_t k = 0; k < a->nproviders; k++) {
		const struct conf_provider *p = &c->providers[a->provider_idx[k]];
		if (!rules_threaded(p))
			continue;
		const char *ch = rules_channel(c, a, k);
		util_buf_printf(&b, "%s\t%s\n", p->name, ch ? ch : "");
	}
	return b.data;
}

/* What a reload drops, kept while it runs (incident_conf_apply). */
struct incident_apply {
	const struct conf *c;
	struct incident_names *known;    /* "provider:NAME" rows: whether each threaded */
	struct incident_said *said;
};

/*
 * Whether the handles of provider (by name) are left to the provider rules
 * of incident_conf_apply: gone, without threads, or threads toggled (then
 * all its handles go).
 */
static bool
incident_provider_dropped(const struct incident_apply *ap, const char *provider)
{
	long k = conf_provider_find(ap->c, provider);
	if (k < 0 || !rules_threaded(&ap->c->providers[k]))
		return true;
	for (size_t i = 0; i < ap->known->n; i++)
		if (strcmp(ap->known->v[i], provider) == 0)
			return strcmp(ap->known->values[i], incident_threads_value(
			    &ap->c->providers[k])) != 0;
	return false;
}

/*
 * Whether another changes alert of the configuration still has an open
 * incident on the object of key (the incident's own fields) and threads to
 * (provider, channel): the handle is its thread's parent too. 1, 0, -1.
 */
static int
incident_handle_shared(struct queue *q, const struct conf *c, const struct queue_incident *in,
    const char *provider, const char *channel)
{
	for (size_t i = 0; i < c->nalerts; i++) {
		const struct conf_alert *a = &c->alerts[i];
		if (a->notify != CONF_NOTIFY_CHANGES || strcmp(a->name, in->alert) == 0)
			continue;
		if (!rules_alert_targets(c, a, provider, channel))
			continue;
		struct queue_incident other;
		int rc = queue_incident_get(q, a->name, in->cluster, in->kind, in->namespace,
		    in->name, &other);
		if (rc != 0) {
			if (rc == 1)
				queue_incident_clear(&other);
			return rc;
		}
	}
	return 0;
}

/*
 * Drop alert's incidents and the thread handles of their objects on the
 * alert's threaded targets (SPEC §12): those it had when the stored row
 * "threads:NAME" was written, and those it has now. A handle that another
 * changes alert's open incident of the same object and target still uses
 * stays, and so do the handles of a provider whose handles all go anyway
 * (incident_provider_dropped). The lines saying so are added to said.
 * 0 / -1.
 */
static int
incident_drop(struct queue *q, const struct incident_apply *ap, const char *alert,
    const char *why)
{
	struct queue_incident *mine = NULL;
	size_t nmine = 0;
	int64_t dropped = 0, handles = 0;
	char *stored = NULL, *key = util_printf("threads:%s", alert);
	struct util_buf targets = {0};
	int ret = -1;

	/* The alert's incidents, before they go. */
	if (queue_incident_list_alert(q, alert, &mine, &nmine) < 0)
		goto out;
	if (queue_incident_drop_alert(q, alert, &dropped) < 0)
		goto out;
	if (dropped > 0)
		incident_said_add(ap->said, LOG_LEVEL_INFO, "incidents dropped", "alert", alert,
		    dropped, why);

	if (queue_meta_get(q, key, &stored) < 0)
		goto out;
	util_buf_puts(&targets, stored ? stored : "");
	for (size_t i = 0; i < ap->c->nalerts; i++)
		if (strcmp(ap->c->alerts[i].name, alert) == 0) {
			char *now = incident_targets_value(ap->c, &ap->c->alerts[i]);
			util_buf_puts(&targets, now);
			free(now);
		}
	for (char *line = targets.data; line != NULL && *line != '\0';) {
		char *end = strchr(line, '\n'), *tab = strchr(line, '\t');
		if (end == NULL)
			break;
		if (tab == NULL || tab > end) {
			line = end + 1;   /* not ours (a channel holding a line break): skip it */
			continue;
		}
		*end = *tab = '\0';
		const char *provider = line, *channel = tab + 1;
		line = end + 1;
		if (incident_provider_dropped(ap, provider))
			continue;
		for (size_t i = 0; i < nmine; i++) {
			int shared = incident_handle_shared(q, ap->c, &mine[i], provider, channel);
			if (shared < 0)
				goto out;
			if (shared)
				continue;
			char *tk = util_printf("%s/%s/%s/%s", mine[i].cluster, mine[i].kind,
			    mine[i].namespace, mine[i].name);
			struct queue_thread h;
			int rc = queue_thread_get(q, provider, channel, tk, &h);
			if (rc == 1) {
				queue_thread_clear(&h);
				rc = queue_thread_delete(q, provider, channel, tk);
				if (rc == 0)
					handles++;
			}
			free(tk);
			if (rc < 0)
				goto out;
		}
	}
	if (handles > 0)
		incident_said_add(ap->said, LOG_LEVEL_INFO, "thread handles dropped", "alert", alert,
		    handles, why);
	ret = 0;
out:
	queue_incidents_free(mine, nmine);
	util_buf_free(&targets);
	free(stored);
	free(key);
	return ret;
}

int
incident_conf_apply(struct queue *q, const struct conf *c)
{
	struct incident_names meta = {0}, counted = {0}, providers = {0}, known = {0};
	struct incident_names toggled = {0};
	struct incident_said said = {0};
	struct incident_apply ap = { c, &known, &said };
	int ret = -1;
	if (queue_schema_version(q) < 2)
		return 0;
	if (queue_begin(q) < 0)
		return -1;
	if (queue_meta_each(q, "alert:", incident_meta_cb, &meta) < 0 ||
	    queue_meta_each(q, "provider:", incident_meta_provider_cb, &known) < 0 ||
	    queue_incident_counts(q, incident_count_cb, &counted) < 0 ||
	    queue_thread_providers(q, incident_provider_cb, &providers) < 0)
		goto out;
	/* Alerts known before: gone, no longer changes, or other sources. */
	for (size_t i = 0; i < meta.n; i++) {
		const struct conf_alert *a = incident_find_changes(c, meta.v[i]);
		/* A row of an older fluxrelay: compared without the clusters it
		 * did not record (then rewritten below), not dropped for them. */
		bool v2 = strncmp(meta.values[i], INCIDENT_FINGERPRINT_V2,
		    strlen(INCIDENT_FINGERPRINT_V2)) == 0;
		char *fp = a ? incident_fingerprint(a, v2) : NULL;
		bool same = fp != NULL && strcmp(fp, meta.values[i]) == 0;
		free(fp);
		if (same)
			continue;
		char *key = util_printf("alert:%s", meta.v[i]);
		int rc = queue_meta_put(q, key, NULL);
		free(key);
		if (rc < 0 || incident_drop(q, &ap, meta.v[i], a == NULL ?
		    "alert removed, renamed or no longer notify = \"changes\"" :
		    "the alert's sources changed") < 0)
			goto out;
		key = util_printf("threads:%s", meta.v[i]);
		rc = queue_meta_put(q, key, NULL);
		free(key);
		if (rc < 0)
			goto out;
	}
	/* Incidents of an alert the configuration no longer has as changes. */
	for (size_t i = 0; i < counted.n; i++)
		if (incident_find_changes(c, counted.v[i]) == NULL &&
		    incident_drop(q, &ap, counted.v[i],
		    "alert removed, renamed or no longer notify = \"changes\"") < 0)
			goto out;
	for (size_t i = 0; i < c->nalerts; i++) {
		const struct conf_alert *a = &c->alerts[i];
		if (a->notify != CONF_NOTIFY_CHANGES)
			continue;
		char *key = util_printf("alert:%s", a->name), *fp = incident_fingerprint(a, true);
		int rc = queue_meta_put(q, key, fp);
		free(key);
		free(fp);
		/* Where its threads are, for when it goes (incident_drop). */
		key = util_printf("threads:%s", a->name);
		fp = incident_targets_value(c, a);
		if (rc == 0)
			rc = queue_meta_put(q, key, fp);
		free(key);
		free(fp);
		if (rc < 0)
			goto out;
	}
	/*
	 * A provider whose threads changed, either way: the incidents of the
	 * alerts that use it were opened with the other kind of message (a
	 * thread's parent, or a plain one), so they go. A provider known before
	 * that is gone loses its row; its handles go below.
	 */
	for (size_t i = 0; i < known.n; i++) {
		long k = conf_provider_find(c, known.v[i]);
		if (k < 0) {
			char *key = util_printf("provider:%s", known.v[i]);
			int rc = queue_meta_put(q, key, NULL);
			free(key);
			if (rc < 0)
				goto out;
			continue;
		}
		if (strcmp(known.values[i], incident_threads_value(&c->providers[k])) == 0)
			continue;
		incident_names_add(&toggled, known.v[i], "");
		char *why = util_printf("provider %s: threads turned %s", known.v[i],
		    rules_threaded(&c->providers[k]) ? "on" : "off");
		int rc = 0;
		for (size_t j = 0; j < c->nalerts && rc == 0; j++)
			if (c->alerts[j].notify == CONF_NOTIFY_CHANGES &&
			    incident_alert_uses(&c->alerts[j], (size_t)k))
				rc = incident_drop(q, &ap, c->alerts[j].name, why);
		free(why);
		if (rc < 0)
			goto out;
	}
	for (size_t i = 0; i < c->nproviders; i++) {
		char *key = util_printf("provider:%s", c->providers[i].name);
		int rc = queue_meta_put(q, key, incident_threads_value(&c->providers[i]));
		free(key);
		if (rc < 0)
			goto out;
	}
	for (size_t i = 0; i < providers.n; i++) {
		long k = conf_provider_find(c, providers.v[i]);
		bool threaded = k >= 0 && rules_threaded(&c->providers[k]);
		if (threaded && !incident_names_has(&toggled, providers.v[i]))
			continue;
		int64_t n = 0;
		if (queue_thread_drop_provider(q, providers.v[i], &n) < 0)
			goto out;
		incident_said_add(&said, LOG_LEVEL_INFO, "thread handles dropped", "provider",
		    providers.v[i], n, k < 0 ? "provider removed" : threaded ? "threads turned on" :
		    "threads turned off");
	}
	if (queue_commit(q) < 0)
		goto done;
	incident_said_log(&said);
	for (size_t i = 0; i < c->nalerts; i++)
		if (c->alerts[i].notify == CONF_NOTIFY_CHANGES)
			metrics_incidents_alert(c->alerts[i].name);
	ret = incident_sync_gauges(q);
	goto done;
out:
	queue_rollback(q);
done:
	incident_names_free(&meta);
	incident_names_free(&counted);
	incident_names_free(&providers);
	incident_names_free(&known);
	incident_names_free(&toggled);
	incident_said_free(&said);
	return ret;
}
