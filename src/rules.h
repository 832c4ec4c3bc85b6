/*
 * rules: compile the alerts of a conf once (PCRE2, JIT when available) and
 * match events against them (fluxrelay.conf(5), ALERTS). Pure, no I/O. A
 * compiled struct rules is immutable and may be shared by any number of
 * threads; match data is allocated per call.
 */
#ifndef FLUXRELAY_RULES_H
#define FLUXRELAY_RULES_H

#include <stdbool.h>
#include <stddef.h>

#include "conf.h"
#include "event.h"

struct rules;

/*
 * What a matched alert does with an event (SPEC §6, §12):
 *   EVENT     a notify = "events" alert fires (every clause of §6 holds);
 *   FAILURE   a notify = "changes" alert fires and the severity is error: it
 *             opens or counts an incident;
 *   RECOVERY  a notify = "changes" alert, not suspended, some source matches,
 *             the severity is info and the reason matches a recovery_reasons
 *             glob (severity, reasons, include/exclude and
 *             commit_status_updates do not hide it): it closes an incident.
 * A changes alert whose event is neither does nothing. An alert whose
 * providers are all suspended has no role, as a suspended alert has none;
 * a suspended provider is never a target (rules_match, rules_merge).
 */
enum rules_role { RULES_EVENT, RULES_FAILURE, RULES_RECOVERY };

struct rules_hit {
	size_t alert;             /* index into conf->alerts */
	enum rules_role role;
};

/*
 * One delivery target: a provider plus the channel the message goes to.
 * Several alerts selecting the same target are merged into one.
 */
struct rules_target {
	size_t provider;          /* index into conf->providers */
	char *channel;            /* alert channel, else provider channel, else NULL */
	char *alerts;             /* merged alert names, comma-separated, config order */
	struct conf_kv *extra;    /* alert metadata + "summary", first alert wins on a clash */
	size_t nextra;
	int rank;                 /* rules_merge: the highest rank of its picks (else 0) */
	size_t pick;              /* rules_merge: the first pick with that rank */
};

struct rules_result {
	/* The targets of the EVENT hits, merged, in config order of the first
	 * selecting alert (rules_match); or of the picks (rules_merge). */
	struct rules_target *targets;
	size_t ntargets;
	char **alerts;                  /* every hit's alert name, config order, unique */
	size_t nalerts;
	struct rules_hit *hits;         /* rules_match: every alert with a role, config order */
	size_t nhits;
	size_t nchanges;                /* how many of the hits are FAILURE or RECOVERY */
};

/* The conf must outlive the rules. NULL with err filled on failure. */
struct rules *rules_new(const struct conf *c, char *err, size_t errlen);
void rules_free(struct rules *r);   /* accepts NULL */

/*
 * Fill out (zeroed by the callee) with the alerts the event hits and the
 * targets of its EVENT hits. Returns the number of those targets; the event
 * is ignored when out->nhits is 0. The targets of FAILURE and RECOVERY hits
 * depend on the incidents' state: the queue writer merges them
 * (rules_merge). Free with rules_result_clear.
 */
size_t rules_match(const struct rules *r, const struct event *ev, struct rules_result *out);
void rules_result_clear(struct rules_result *res);

/*
 * One alert given to rules_merge: its targets join the result (only those
 * whose provider has threads when threaded_only), each target keeping the
 * highest rank of the picks merged into it.
 */
struct rules_pick {
	size_t alert;             /* index into c->alerts */
	int rank;
	bool threaded_only;
};
/*
 * Merge the targets of the picks, in the order given (config order), as
 * rules_match merges its EVENT hits: one target per provider and channel,
 * alert names and metadata merged. out->alerts gets the names of the picks
 * that gave at least one target; hits are left empty. Returns ntargets.
 * Free with rules_result_clear.
 */
size_t rules_merge(const struct conf *c, const struct rules_pick *picks, size_t n,
    struct rules_result *out);

/* Whether messages to p go in threads (slack-bot with threads = true). */
bool rules_threaded(const struct conf_provider *p);

/*
 * The channel alert a's k-th provider delivers to: the alert's, else the
 * provider's; NULL for none or for a forwarder (borrowed from c).
 */
const char *rules_channel(const struct conf *c, const struct conf_alert *a, size_t k);

/* Whether alert a delivers to the target (provider, channel); NULL or "" is no channel. */
bool rules_alert_targets(const struct conf *c, const struct conf_alert *a, const char *provider,
    const char *channel);

/* A target's extra (alert metadata and summary) as the JSON object the queue stores. Caller frees. */
char *rules_extra_json(const struct rules_target *t);

/*
 * The one spelling of a target (provider + channel) in logs, metrics and the
 * CLI: "provider" without a channel, else "provider channel" (e.g.
 * "slack #flux", "bot C0123"). Caller frees.
 */
char *rules_target_label(const char *provider, const char *channel);

#endif
