/*
 * rules: compile the alerts of a conf once (PCRE2, JIT when available) and
 * match events against them (fluxrelay.conf(5), ALERTS). Pure, no I/O. A
 * compiled struct rules is immutable and may be shared by any number of
 * threads; match data is allocated per call.
 */
#ifndef FLUXRELAY_RULES_H
#define FLUXRELAY_RULES_H

#include <stddef.h>

#include "conf.h"
#include "event.h"

struct rules;

/*
 * One delivery target: a provider plus the channel the message goes to.
 * Several alerts selecting the same target are merged into one.
 */
struct rules_target {
	size_t provider;          /* index into conf->providers */
	char *channel;            /* alert channel, else provider channel, else NULL */
	char *alerts;             /* matched alert names, comma-separated, config order */
	struct conf_kv *extra;    /* alert metadata + "summary", first alert wins on a clash */
	size_t nextra;
};

struct rules_result {
	struct rules_target *targets;   /* in config order of first selecting alert */
	size_t ntargets;
	char **alerts;                  /* every matched alert name, config order, unique */
	size_t nalerts;
};

/* The conf must outlive the rules. NULL with err filled on failure. */
struct rules *rules_new(const struct conf *c, char *err, size_t errlen);
void rules_free(struct rules *r);   /* accepts NULL */

/*
 * Fill out (zeroed by the callee) with the targets this event must be
 * delivered to. Returns the number of targets (0 = ignored). Free with
 * rules_result_clear.
 */
size_t rules_match(const struct rules *r, const struct event *ev, struct rules_result *out);
void rules_result_clear(struct rules_result *res);

/*
 * The one spelling of a target (provider + channel) in logs, metrics and the
 * CLI: "provider" without a channel, else "provider channel" (e.g.
 * "slack #flux", "bot C0123"). Caller frees.
 */
char *rules_target_label(const char *provider, const char *channel);

#endif
