/*
 * incident: the state of notify = "changes" alerts (SPEC §12). For each alert
 * and object (cluster, kind, namespace, name) an incident is open while the
 * object fails: the first matching error opens it (a message of kind
 * "opened"), later ones are counted (a "reminder" after repeat_interval; a
 * "reply" to threaded targets when the normalized message differs), an info
 * event with a recovery reason closes it ("recovered"), and incident_ttl
 * seconds without an event close it silently.
 *
 * The queue writer thread decides each event in its transaction, before the
 * 202 (incident_plan: lookups by the unique index only, then
 * incident_apply), so the state and the deliveries it causes commit
 * together; it sweeps expired incidents and thread handles
 * (incident_sweep) and applies a new configuration (incident_conf_apply).
 * incident_decide and incident_kind_rank are pure (any thread); the
 * stateless form for `fluxrelay match` is incident_plan_stateless (main
 * thread). Everything else runs on the writer thread, on its connection.
 */
#ifndef FLUXRELAY_INCIDENT_H
#define FLUXRELAY_INCIDENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "event.h"
#include "queue.h"
#include "rules.h"

/* ---- the decision (pure) ---- */

enum incident_action {
	INCIDENT_NONE,            /* nothing changes */
	INCIDENT_OPEN,            /* insert (over an expired one: replace it) */
	INCIDENT_COUNT,           /* failures + 1, last_* updated */
	INCIDENT_CLOSE,           /* delete */
};

struct incident_decision {
	enum incident_action action;
	enum queue_kind kind;     /* what it delivers; QUEUE_KIND_EVENT: nothing */
	bool replaces;            /* OPEN over an expired incident */
};

/*
 * What a FAILURE or RECOVERY (role) does to the open incident cur (NULL:
 * none), now, given the alert's repeat_interval and incident_ttl; norm is
 * the event's normalized-message hash (incident_norm). An incident whose
 * last_at + ttl <= now is treated as closed. A reminder is due
 * repeat_interval after cur->last_notified_at, the incident's last message
 * (opened, reminder, or a reply that was delivered: incident_apply). Any
 * other role: nothing.
 */
struct incident_decision incident_decide(enum rules_role role, const struct queue_incident *cur,
    const char *norm, double now, double repeat_interval, double ttl);

/* Whether in is past its alert's incident_ttl at now: the daemon then treats
 * it as closed and `fluxrelay incidents` leaves it out, by this one test. */
bool incident_expired(const struct queue_incident *in, double ttl, double now);

/* Significance of a kind when alerts merge per target: opened > recovered >
 * reminder > reply > event. */
int incident_kind_rank(enum queue_kind kind);

/*
 * The cluster of an event's object, the first part of the object key: the
 * sending client's name (auth.clients, SPEC §14), "" for other senders.
 */
const char *incident_cluster(const struct event *ev);

/* The thread key of an event's object: "cluster/kind/namespace/name". Caller frees. */
char *incident_thread_key(const char *cluster, const struct event *ev);

/* The hash incidents keep of a message, normalized as dedup does when
 * normalize_durations: 32 hex characters (norm must hold 33). */
void incident_norm(const char *message, bool normalize_durations, char norm[33]);

/* ---- one event (the writer thread) ---- */

struct incident_step;

/*
 * An event with FAILURE or RECOVERY hits, as the HTTP thread hands it to the
 * writer (queue_req.incident). conf, ev and hits stay valid until the
 * request is answered. The writer fills the rest; incident_req_clear frees
 * it.
 */
struct incident_req {
	const struct conf *conf;          /* the configuration the event was matched with */
	const struct event *ev;
	const char *cluster;              /* the client's name (auth.clients), or "" */
	const struct rules_hit *hits;     /* every hit, config order (rules_match) */
	size_t nhits;

	/* Filled by incident_plan: */
	struct queue_item *items;         /* one delivery per target */
	size_t nitems;
	const char **alerts;              /* alerts that deliver or change state, config order */
	size_t nalerts;
	bool changes;                     /* some incident opens, counts or closes */
	/* private to incident.c */
	struct incident_step *steps;
	size_t nsteps;
	struct rules_result merged;
	char **extras;                    /* parallel to items */
	char *thread_key;
};

/*
 * Decide, in q's open transaction, what the event does to each incident
 * (reads only) and build its delivery rows (per target, the most
 * significant kind; a reply only for threaded targets). current is the
 * writer's configuration: a hit of an alert that is no longer a notify =
 * "changes" alert there (a request matched just before a reload) does
 * nothing. Planning again discards the previous plan. 0, or -1 with
 * queue_errmsg(q).
 */
int incident_plan(struct queue *q, struct incident_req *req, const struct conf *current,
    double now);
/* Write the plan in q's open transaction. 0 / -1. */
int incident_apply(struct queue *q, struct incident_req *req, double now);
/* The plan committed: the incidents_open gauges follow, transitions are logged. */
void incident_committed(const struct incident_req *req, const char *event_id);
void incident_req_clear(struct incident_req *req);

/*
 * `fluxrelay match`: what the event would send with no incident open (a
 * failure opens one, a recovery closes none). Fills req's items and alerts
 * as incident_plan does, without a database. Main thread.
 */
void incident_plan_stateless(struct incident_req *req, double now);

/* ---- housekeeping (the writer thread, each in a transaction of its own) ---- */

/*
 * Delete the incidents of c's changes alerts idle for incident_ttl and the
 * thread handles of c's threaded providers idle for thread_ttl (logged when
 * any, once committed), then set the incidents_open gauges from the database (which also
 * counts what `fluxrelay incidents close` did). 0 / -1.
 */
int incident_sweep(struct queue *q, const struct conf *c, double now);

/*
 * Make the stored state fit c (daemon start and every reload): drop the
 * incidents of an alert that is gone, no longer notify = "changes", or
 * whose sources (kind, namespace, name, cluster) changed since they were
 * opened, and of every changes alert that uses a provider whose threads
 * changed (either way), with the thread handles of their objects on the
 * alert's threaded targets (those stored in the meta row "threads:NAME" and
 * its current ones) unless another changes alert's open incident of the
 * object uses the same target; drop the thread handles of a provider that
 * is gone, has no threads, or whose threads changed. Each alert's sources and each
 * provider's threads are kept in the meta table, so a change made while the
 * daemon was stopped counts too. Each drop is logged once the transaction
 * has committed (nothing is when it fails). Then every changes alert's
 * incidents_open gauge is exported. 0 / -1.
 */
int incident_conf_apply(struct queue *q, const struct conf *c);

#endif
