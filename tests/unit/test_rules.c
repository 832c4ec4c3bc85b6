/*
 * Unit tests for rules: a table of alert sets and events covering every
 * clause of an alert (source globs, absent namespace, severity levels and
 * lists, reasons, include/exclude, commit-status updates, suspend, suspended
 * providers) and the result's shape (targets merged per provider+channel,
 * alert names merged, channel override, extra metadata precedence). Confs
 * are built by hand so these tests do not depend on the config parser. Also:
 * regex compile errors, target keys, the built-in default conf, and
 * concurrent matching.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "event.h"
#include "rules.h"
#include "rules_internal.h"
#include "util.h"

/* ---- building confs by hand --------------------------------------------- */

/* An alert written compactly; lists are separated by '\n' so patterns may
 * contain ',', '|' and ';'. */
struct talert {
	const char *name;
	const char *providers;   /* "slack\nbot" */
	const char *severity;    /* "info" = level, "=error,warn" = exact list */
	const char *sources;     /* "Kind|name|ns|cluster\n..." ("Kind" alone: name, ns "*") */
	const char *reasons;
	const char *include;
	const char *exclude;
	const char *metadata;    /* "k=v\nk2=v2" */
	const char *summary;
	const char *channel;
	bool csu;
	bool suspend;
	bool changes;            /* notify = "changes" */
	const char *recovery;    /* recovery_reasons ("\n"-separated); NULL: conf's defaults */
};

static const char *const provider_names[] = { "slack", "bot", "console" };
static const char *const provider_channels[] = { "#flux", "#bot", NULL };

/* Split s on sep into a new NULL-terminated array of new strings. */
static char **
split(const char *s, char sep, size_t *n)
{
	char **v = NULL;

	*n = 0;
	if (s == NULL)
		return NULL;
	for (;;) {
		const char *e = strchr(s, sep);
		size_t len = e ? (size_t)(e - s) : strlen(s);
		v = util_realloc(v, (*n + 2) * sizeof(*v));
		v[(*n)++] = util_strndup(s, len);
		v[*n] = NULL;
		if (e == NULL)
			return v;
		s = e + 1;
	}
}

static void
free_strv(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Severity spec → mask, through event_severity_parse (so "warn" works). */
static unsigned
sev_mask(const char *spec)
{
	unsigned m = 0;
	size_t n;
	char **v;

	if (spec[0] != '=') {
		int lvl = event_severity_parse(spec);
		ck_assert_int_ge(lvl, 0);
		for (int s = lvl; s <= EVENT_ERROR; s++)
			m |= 1u << s;
		return m;
	}
	v = split(spec + 1, ',', &n);
	for (size_t i = 0; i < n; i++) {
		int s = event_severity_parse(v[i]);
		ck_assert_int_ge(s, 0);
		m |= 1u << s;
	}
	free_strv(v, n);
	return m;
}

static void
build_alert(struct conf_alert *a, const struct talert *t)
{
	size_t n;
	char **v;

	memset(a, 0, sizeof(*a));
	a->name = util_strdup(t->name);
	a->providers = split(t->providers, '\n', &a->nproviders);
	a->provider_idx = util_calloc(a->nproviders, sizeof(*a->provider_idx));
	for (size_t k = 0; k < a->nproviders; k++) {
		size_t p = 0;
		while (strcmp(provider_names[p], a->providers[k]) != 0)
			p++;
		a->provider_idx[k] = p;
	}
	a->severity_mask = sev_mask(t->severity ? t->severity : "error");
	v = split(t->sources, '\n', &n);
	a->sources = util_calloc(n, sizeof(*a->sources));
	a->nsources = n;
	for (size_t i = 0; i < n; i++) {
		size_t nf;
		char **f = split(v[i], '|', &nf);
		a->sources[i].kind = util_strdup(f[0]);
		a->sources[i].name = util_strdup(nf > 1 ? f[1] : "*");
		a->sources[i].namespace = util_strdup(nf > 2 ? f[2] : "*");
		a->sources[i].cluster = nf > 3 ? util_strdup(f[3]) : NULL;
		free_strv(f, nf);
	}
	free_strv(v, n);
	a->reasons = split(t->reasons, '\n', &a->nreasons);
	a->include = split(t->include, '\n', &a->ninclude);
	a->exclude = split(t->exclude, '\n', &a->nexclude);
	v = split(t->metadata, '\n', &n);
	a->metadata = util_calloc(n ? n : 1, sizeof(*a->metadata));
	a->nmetadata = n;
	for (size_t i = 0; i < n; i++) {
		const char *eq = strchr(v[i], '=');
		a->metadata[i].key = util_strndup(v[i], (size_t)(eq - v[i]));
		a->metadata[i].value = util_strdup(eq + 1);
	}
	free_strv(v, n);
	a->summary = util_strdup(t->summary);
	a->channel = util_strdup(t->channel);
	a->commit_status_updates = t->csu;
	a->suspend = t->suspend;
	if (t->changes) {
		a->notify = CONF_NOTIFY_CHANGES;
		a->recovery_reasons = split(t->recovery ? t->recovery :
		    "ReconciliationSucceeded\nSucceeded\nInstallSucceeded\nUpgradeSucceeded", '\n',
		    &a->nrecovery_reasons);
	}
}

#define MAXALERTS 4

static struct conf *
build_conf(const struct talert *alerts)
{
	struct conf *c = util_calloc(1, sizeof(*c));

	c->nproviders = 3;
	c->providers = util_calloc(3, sizeof(*c->providers));
	for (size_t p = 0; p < 3; p++) {
		c->providers[p].name = util_strdup(provider_names[p]);
		c->providers[p].channel = util_strdup(provider_channels[p]);
		c->providers[p].type = p == 2 ? CONF_PROVIDER_CONSOLE : CONF_PROVIDER_SLACK;
	}
	while (c->nalerts < MAXALERTS && alerts[c->nalerts].name != NULL)
		c->nalerts++;
	c->alerts = util_calloc(c->nalerts ? c->nalerts : 1, sizeof(*c->alerts));
	for (size_t i = 0; i < c->nalerts; i++)
		build_alert(&c->alerts[i], &alerts[i]);
	return c;
}

static struct event *
parse_event(const char *json)
{
	char err[256], field[64];
	struct event *ev = event_parse(json, strlen(json), err, sizeof(err), field,
	    sizeof(field));

	ck_assert_msg(ev != NULL, "bad test event: %s: %s", err, json);
	return ev;
}

/*
 * The result as one line: targets separated by ' ', each
 * "<target key>:<alerts>{k=v;k=v}", then " | " and the matched alert names.
 */
static char *
render(const struct conf *c, const struct rules_result *res)
{
	struct util_buf b = { 0 };

	util_buf_puts(&b, "");
	for (size_t i = 0; i < res->ntargets; i++) {
		const struct rules_target *t = &res->targets[i];
		/* The table's own spelling, "provider#channel": a label has a space. */
		const char *ch = t->channel != NULL ? t->channel : "";
		util_buf_printf(&b, "%s%s%s%s:%s{", i ? " " : "", c->providers[t->provider].name,
		    ch[0] ? "#" : "", ch, t->alerts);
		for (size_t k = 0; k < t->nextra; k++)
			util_buf_printf(&b, "%s%s=%s", k ? ";" : "", t->extra[k].key,
			    t->extra[k].value);
		util_buf_puts(&b, "}");
	}
	util_buf_puts(&b, " |");
	for (size_t i = 0; i < res->nalerts; i++)
		util_buf_printf(&b, " %s", res->alerts[i]);
	/* The hits of notify = "changes" alerts, with their role. */
	for (size_t i = 0; i < res->nhits; i++)
		if (res->hits[i].role != RULES_EVENT)
			util_buf_printf(&b, " %s=%s", c->alerts[res->hits[i].alert].name,
			    res->hits[i].role == RULES_FAILURE ? "failure" : "recovery");
	return b.data;
}

/* ---- the table ---------------------------------------------------------- */

#define EV(kind, name, nsfield, sev, reason, msg, extra) \
	"{\"involvedObject\":{\"kind\":\"" kind "\",\"name\":\"" name "\"" nsfield "}," \
	"\"severity\":\"" sev "\",\"reason\":\"" reason "\",\"message\":\"" msg "\"" \
	extra "}"
#define NS(ns) ",\"namespace\":\"" ns "\""
/* The everyday event: an error about Kustomization apps/webapp. */
#define KS_ERR EV("Kustomization", "webapp", NS("apps"), "error", "ValidationFailed", \
	"Health check timed out for [Deployment 'foo/bar']", "")
#define KS(sev, reason, msg) EV("Kustomization", "webapp", NS("apps"), sev, reason, msg, "")
/* Metadata keys of the controller's group are stripped for an event that
 * names its apiVersion, as Flux's do. */
#define KS_API ",\"apiVersion\":\"kustomize.toolkit.fluxcd.io/v1\""
#define KS_META(meta) EV("Kustomization", "webapp", NS("apps") KS_API, "error", "R", "m", \
	",\"metadata\":{" meta "}")

/* One alert "a" → slack with the given clause set; matches give this line. */
#define HIT_A "slack##flux:a{} | a"
#define MISS " |"

static const struct rcase {
	const char *desc;
	struct talert alerts[MAXALERTS];
	const char *event;
	const char *want;
} cases[] = {
	/* ---- sources: kind, name, namespace globs ---- */
	{ "kind exact", { { .name = "a", .providers = "slack", .sources = "Kustomization" } },
	  KS_ERR, HIT_A },
	{ "kind other", { { .name = "a", .providers = "slack", .sources = "HelmRelease" } },
	  KS_ERR, MISS },
	{ "kind case-sensitive",
	  { { .name = "a", .providers = "slack", .sources = "kustomization" } }, KS_ERR, MISS },
	{ "kind is not a substring",
	  { { .name = "a", .providers = "slack", .sources = "Kustom" } }, KS_ERR, MISS },
	{ "name star", { { .name = "a", .providers = "slack", .sources = "*|web*|*" } },
	  KS_ERR, HIT_A },
	{ "name star miss", { { .name = "a", .providers = "slack", .sources = "*|api*|*" } },
	  KS_ERR, MISS },
	{ "name question", { { .name = "a", .providers = "slack", .sources = "*|webap?|*" } },
	  KS_ERR, HIT_A },
	{ "name question counts",
	  { { .name = "a", .providers = "slack", .sources = "*|web?|*" } }, KS_ERR, MISS },
	{ "kind bracket",
	  { { .name = "a", .providers = "slack", .sources = "Kustomi[sz]ation" } },
	  KS_ERR, HIT_A },
	{ "kind negated bracket",
	  { { .name = "a", .providers = "slack", .sources = "[!K]*" } }, KS_ERR, MISS },
	{ "kind range", { { .name = "a", .providers = "slack", .sources = "[J-L]*" } },
	  KS_ERR, HIT_A },
	{ "namespace glob", { { .name = "a", .providers = "slack", .sources = "*|*|ap?s" } },
	  KS_ERR, HIT_A },
	{ "namespace miss", { { .name = "a", .providers = "slack", .sources = "*|*|prod-*" } },
	  KS_ERR, MISS },
	{ "star crosses '/' (flags 0)",
	  { { .name = "a", .providers = "slack", .sources = "*|a*|*" } },
	  EV("Kustomization", "a/b", NS("apps"), "error", "R", "m", ""), HIT_A },
	{ "second source matches",
	  { { .name = "a", .providers = "slack",
	      .sources = "HelmRelease\nKustomization|webapp|apps" } }, KS_ERR, HIT_A },
	{ "all source fields must match",
	  { { .name = "a", .providers = "slack",
	      .sources = "Kustomization|webapp|other\nKustomization|other|apps" } },
	  KS_ERR, MISS },
	/* absent namespace matches only "*" */
	{ "absent namespace, star",
	  { { .name = "a", .providers = "slack", .sources = "*|*|*" } },
	  EV("Kustomization", "webapp", "", "error", "R", "m", ""), HIT_A },
	{ "absent namespace, glob",
	  { { .name = "a", .providers = "slack", .sources = "*|*|?*" } },
	  EV("Kustomization", "webapp", "", "error", "R", "m", ""), MISS },
	{ "absent namespace, star-star",
	  { { .name = "a", .providers = "slack", .sources = "*|*|**" } },
	  EV("Kustomization", "webapp", "", "error", "R", "m", ""), MISS },
	{ "absent namespace, default",
	  { { .name = "a", .providers = "slack", .sources = "*|*|default" } },
	  EV("Kustomization", "webapp", "", "error", "R", "m", ""), MISS },
	{ "empty namespace is a namespace",
	  { { .name = "a", .providers = "slack", .sources = "*|*|*" } },
	  EV("Kustomization", "webapp", NS(""), "error", "R", "m", ""), HIT_A },

	/* ---- severity: levels are thresholds, lists exact ---- */
	{ "level info, trace event",
	  { { .name = "a", .providers = "slack", .severity = "info", .sources = "*" } },
	  KS("trace", "R", "m"), MISS },
	{ "level info, info event",
	  { { .name = "a", .providers = "slack", .severity = "info", .sources = "*" } },
	  KS("info", "R", "m"), HIT_A },
	{ "level info, error event",
	  { { .name = "a", .providers = "slack", .severity = "info", .sources = "*" } },
	  KS("error", "R", "m"), HIT_A },
	{ "level trace, trace event",
	  { { .name = "a", .providers = "slack", .severity = "trace", .sources = "*" } },
	  KS("trace", "R", "m"), HIT_A },
	{ "level error, warning event",
	  { { .name = "a", .providers = "slack", .severity = "error", .sources = "*" } },
	  KS("warning", "R", "m"), MISS },
	{ "level error, info event",
	  { { .name = "a", .providers = "slack", .severity = "error", .sources = "*" } },
	  KS("info", "R", "m"), MISS },
	{ "level warning, warn event",
	  { { .name = "a", .providers = "slack", .severity = "warning", .sources = "*" } },
	  KS("warn", "R", "m"), HIT_A },
	{ "level warn, error event",
	  { { .name = "a", .providers = "slack", .severity = "warn", .sources = "*" } },
	  KS("error", "R", "m"), HIT_A },
	{ "level warning, info event",
	  { { .name = "a", .providers = "slack", .severity = "warning", .sources = "*" } },
	  KS("info", "R", "m"), MISS },
	{ "list error+trace, info event",
	  { { .name = "a", .providers = "slack", .severity = "=error,trace", .sources = "*" } },
	  KS("info", "R", "m"), MISS },
	{ "list error+trace, trace event",
	  { { .name = "a", .providers = "slack", .severity = "=error,trace", .sources = "*" } },
	  KS("trace", "R", "m"), HIT_A },
	{ "list info, error event (exact, not a threshold)",
	  { { .name = "a", .providers = "slack", .severity = "=info", .sources = "*" } },
	  KS("error", "R", "m"), MISS },
	{ "list warn, warning event",
	  { { .name = "a", .providers = "slack", .severity = "=warn", .sources = "*" } },
	  KS("warning", "R", "m"), HIT_A },

	/* ---- reasons ---- */
	{ "reason glob",
	  { { .name = "a", .providers = "slack", .sources = "*", .reasons = "*Failed" } },
	  KS("error", "ValidationFailed", "m"), HIT_A },
	{ "reason glob miss",
	  { { .name = "a", .providers = "slack", .sources = "*", .reasons = "*Failed" } },
	  KS("error", "Progressing", "m"), MISS },
	{ "reason glob vs empty reason",
	  { { .name = "a", .providers = "slack", .sources = "*", .reasons = "*Failed" } },
	  KS("error", "", "m"), MISS },
	{ "reason star matches empty reason",
	  { { .name = "a", .providers = "slack", .sources = "*", .reasons = "*" } },
	  KS("error", "", "m"), HIT_A },
	{ "reason absent from event",
	  { { .name = "a", .providers = "slack", .sources = "*", .reasons = "R*" } },
	  "{\"involvedObject\":{\"kind\":\"K\",\"name\":\"n\"},\"severity\":\"error\","
	  "\"message\":\"m\"}", MISS },
	{ "second reason matches",
	  { { .name = "a", .providers = "slack", .sources = "*",
	      .reasons = "Health?heck*\nReconciliation[SF]*" } },
	  KS("error", "ReconciliationFailed", "m"), HIT_A },
	{ "reason is anchored (a glob, not a substring)",
	  { { .name = "a", .providers = "slack", .sources = "*", .reasons = "Failed" } },
	  KS("error", "ValidationFailed", "m"), MISS },

	/* ---- include / exclude ---- */
	{ "include hit",
	  { { .name = "a", .providers = "slack", .sources = "*", .include = "timed out" } },
	  KS_ERR, HIT_A },
	{ "include miss",
	  { { .name = "a", .providers = "slack", .sources = "*", .include = "succeeded" } },
	  KS_ERR, MISS },
	{ "include unanchored in the middle",
	  { { .name = "a", .providers = "slack", .sources = "*", .include = "\\[Deployment" } },
	  KS_ERR, HIT_A },
	{ "include anchored",
	  { { .name = "a", .providers = "slack", .sources = "*", .include = "^timed" } },
	  KS_ERR, MISS },
	{ "any include suffices",
	  { { .name = "a", .providers = "slack", .sources = "*",
	      .include = "nope\n^Health\nalso nope" } }, KS_ERR, HIT_A },
	{ "include case-insensitive flag",
	  { { .name = "a", .providers = "slack", .sources = "*", .include = "(?i)TIMED OUT" } },
	  KS_ERR, HIT_A },
	{ "include is UTF-8 aware",
	  { { .name = "a", .providers = "slack", .sources = "*", .include = "^caf.$" } },
	  KS("error", "R", "caf\xc3\xa9"), HIT_A },
	{ "include is not on the reason",
	  { { .name = "a", .providers = "slack", .sources = "*", .include = "Validation" } },
	  KS_ERR, MISS },
	{ "exclude hit",
	  { { .name = "a", .providers = "slack", .sources = "*",
	      .exclude = "^Dependencies do not meet" } },
	  KS("error", "R", "Dependencies do not meet ready condition"), MISS },
	{ "exclude miss",
	  { { .name = "a", .providers = "slack", .sources = "*",
	      .exclude = "^Dependencies do not meet" } }, KS_ERR, HIT_A },
	{ "any exclude excludes",
	  { { .name = "a", .providers = "slack", .sources = "*", .exclude = "zzz\nfoo/bar" } },
	  KS_ERR, MISS },
	{ "exclusion wins over inclusion",
	  { { .name = "a", .providers = "slack", .sources = "*", .include = "timed out",
	      .exclude = "Deployment" } }, KS_ERR, MISS },
	{ "include and a non-matching exclude",
	  { { .name = "a", .providers = "slack", .sources = "*", .include = "timed out",
	      .exclude = "HelmRelease" } }, KS_ERR, HIT_A },
	{ "include on empty message",
	  { { .name = "a", .providers = "slack", .sources = "*", .include = "^$" } },
	  KS("error", "R", ""), HIT_A },

	/* ---- commit-status updates ---- */
	{ "commit_status update dropped",
	  { { .name = "a", .providers = "slack", .sources = "*" } },
	  KS_META("\"commit_status\":\"update\""), MISS },
	{ "commit_status update allowed",
	  { { .name = "a", .providers = "slack", .sources = "*", .csu = true } },
	  KS_META("\"commit_status\":\"update\""), HIT_A },
	{ "commit_status other value",
	  { { .name = "a", .providers = "slack", .sources = "*" } },
	  KS_META("\"commit_status\":\"create\""), HIT_A },
	{ "commit_status from the controller prefix",
	  { { .name = "a", .providers = "slack", .sources = "*" } },
	  KS_META("\"kustomize.toolkit.fluxcd.io/commit_status\":\"update\""), MISS },
	{ "commit_status from an annotation",
	  { { .name = "a", .providers = "slack", .sources = "*" } },
	  KS_META("\"event.toolkit.fluxcd.io/commit_status\":\"update\""), MISS },
	{ "commit_status normalized: controller beats annotation",
	  { { .name = "a", .providers = "slack", .sources = "*" } },
	  KS_META("\"event.toolkit.fluxcd.io/commit_status\":\"update\","
	      "\"kustomize.toolkit.fluxcd.io/commit_status\":\"create\""), HIT_A },

	/* ---- suspend ---- */
	{ "suspended", { { .name = "a", .providers = "slack", .sources = "*", .suspend = true } },
	  KS_ERR, MISS },
	{ "suspended alert skipped, other fires",
	  { { .name = "a", .providers = "slack", .sources = "*", .suspend = true },
	    { .name = "b", .providers = "slack", .sources = "*" } },
	  KS_ERR, "slack##flux:b{} | b" },

	/* ---- targets ---- */
	{ "two alerts, one target, names merged in config order",
	  { { .name = "a", .providers = "slack", .sources = "*" },
	    { .name = "b", .providers = "slack", .sources = "Kustomization" } },
	  KS_ERR, "slack##flux:a,b{} | a b" },
	{ "non-matching alert in between",
	  { { .name = "a", .providers = "slack", .sources = "*" },
	    { .name = "b", .providers = "slack", .sources = "HelmRelease" },
	    { .name = "c", .providers = "slack", .sources = "*" } },
	  KS_ERR, "slack##flux:a,c{} | a c" },
	{ "channel override",
	  { { .name = "a", .providers = "slack", .sources = "*", .channel = "#alerts" } },
	  KS_ERR, "slack##alerts:a{} | a" },
	{ "different channels, different targets",
	  { { .name = "a", .providers = "slack", .sources = "*", .channel = "#one" },
	    { .name = "b", .providers = "slack", .sources = "*" } },
	  KS_ERR, "slack##one:a{} slack##flux:b{} | a b" },
	{ "same effective channel merges",
	  { { .name = "a", .providers = "slack", .sources = "*", .channel = "#flux" },
	    { .name = "b", .providers = "slack", .sources = "*" } },
	  KS_ERR, "slack##flux:a,b{} | a b" },
	{ "provider without channel",
	  { { .name = "a", .providers = "console", .sources = "*" } },
	  KS_ERR, "console:a{} | a" },
	{ "provider without channel, alert channel",
	  { { .name = "a", .providers = "console", .sources = "*", .channel = "#c" } },
	  KS_ERR, "console##c:a{} | a" },
	{ "several providers in provider order",
	  { { .name = "a", .providers = "bot\nslack\nconsole", .sources = "*" } },
	  KS_ERR, "bot##bot:a{} slack##flux:a{} console:a{} | a" },
	{ "targets in order of the first selecting alert",
	  { { .name = "a", .providers = "bot", .sources = "*" },
	    { .name = "b", .providers = "slack\nbot", .sources = "*" } },
	  KS_ERR, "bot##bot:a,b{} slack##flux:b{} | a b" },
	{ "alert channel applies to every provider of the alert",
	  { { .name = "a", .providers = "slack\nbot", .sources = "*", .channel = "#x" } },
	  KS_ERR, "slack##x:a{} bot##x:a{} | a" },
	{ "provider listed twice in one alert",
	  { { .name = "a", .providers = "slack\nslack", .sources = "*" },
	    { .name = "b", .providers = "slack", .sources = "*" } },
	  KS_ERR, "slack##flux:a,b{} | a b" },
	{ "no alerts at all", { { .name = NULL } }, KS_ERR, MISS },

	/* ---- notify = "changes": roles (SPEC §12) ---- */
	{ "changes: a matching error is a failure, no targets yet",
	  { { .name = "a", .providers = "slack", .sources = "*", .changes = true } },
	  KS_ERR, " | a a=failure" },
	{ "changes: every clause still holds for a failure",
	  { { .name = "a", .providers = "slack", .sources = "*", .changes = true,
	      .reasons = "*Failed", .exclude = "Deployment" } }, KS_ERR, MISS },
	{ "changes: a warning is no failure, even at level warning",
	  { { .name = "a", .providers = "slack", .sources = "*", .changes = true,
	      .severity = "warning" } }, KS("warning", "Progressing", "m"), MISS },
	{ "changes: an info event that is not a recovery does nothing",
	  { { .name = "a", .providers = "slack", .sources = "*", .changes = true,
	      .severity = "info" } }, KS("info", "Progressing", "m"), MISS },
	{ "changes: recovery",
	  { { .name = "a", .providers = "slack", .sources = "*", .changes = true } },
	  KS("info", "ReconciliationSucceeded", "Reconciliation finished in 2.08s"),
	  " | a a=recovery" },
	{ "changes: severity, reasons, include, exclude do not hide a recovery",
	  { { .name = "a", .providers = "slack", .sources = "Kustomization|web*|apps",
	      .changes = true, .severity = "error", .reasons = "*Failed",
	      .include = "^never$", .exclude = "finished" } },
	  KS("info", "ReconciliationSucceeded", "Reconciliation finished in 2.08s"),
	  " | a a=recovery" },
	{ "changes: a commit-status update still recovers",
	  { { .name = "a", .providers = "slack", .sources = "*", .changes = true } },
	  EV("Kustomization", "webapp", NS("apps") KS_API, "info", "ReconciliationSucceeded", "ok",
	      ",\"metadata\":{\"kustomize.toolkit.fluxcd.io/commit_status\":\"update\"}"),
	  " | a a=recovery" },
	{ "changes: recovery judged by sources",
	  { { .name = "a", .providers = "slack", .sources = "HelmRelease", .changes = true } },
	  KS("info", "ReconciliationSucceeded", "ok"), MISS },
	{ "changes: RollbackSucceeded is no recovery by default",
	  { { .name = "a", .providers = "slack", .sources = "*", .changes = true } },
	  KS("info", "RollbackSucceeded", "ok"), MISS },
	{ "changes: own recovery reasons",
	  { { .name = "a", .providers = "slack", .sources = "*", .changes = true,
	      .recovery = "Upgrade*\nRollback*" } }, KS("info", "RollbackSucceeded", "ok"),
	  " | a a=recovery" },
	{ "changes: a recovery is info, not trace",
	  { { .name = "a", .providers = "slack", .sources = "*", .changes = true,
	      .severity = "trace" } }, KS("trace", "ReconciliationSucceeded", "ok"), MISS },
	{ "changes: a recovery is info, not error",
	  { { .name = "a", .providers = "slack", .sources = "*", .changes = true,
	      .reasons = "Nope" } }, KS("error", "ReconciliationSucceeded", "ok"), MISS },
	{ "changes: suspended, no failure",
	  { { .name = "a", .providers = "slack", .sources = "*", .changes = true,
	      .suspend = true } }, KS_ERR, MISS },
	{ "changes: suspended, no recovery",
	  { { .name = "a", .providers = "slack", .sources = "*", .changes = true,
	      .suspend = true } }, KS("info", "ReconciliationSucceeded", "ok"), MISS },
	{ "changes beside events: only events give targets here",
	  { { .name = "a", .providers = "slack", .sources = "*" },
	    { .name = "b", .providers = "slack\nbot", .sources = "*", .changes = true },
	    { .name = "c", .providers = "bot", .sources = "*", .severity = "info" } },
	  KS_ERR, "slack##flux:a{} bot##bot:c{} | a b c b=failure" },
	{ "changes beside events: recovery",
	  { { .name = "a", .providers = "slack", .sources = "*", .severity = "info" },
	    { .name = "b", .providers = "slack", .sources = "*", .changes = true } },
	  KS("info", "UpgradeSucceeded", "ok"), "slack##flux:a{} | a b b=recovery" },

	/* ---- extra metadata ---- */
	{ "metadata in file order, then summary",
	  { { .name = "a", .providers = "slack", .sources = "*",
	      .metadata = "cluster=prod-eu-1\nenv=prod", .summary = "production" } },
	  KS_ERR, "slack##flux:a{cluster=prod-eu-1;env=prod;summary=production} | a" },
	{ "metadata not sorted",
	  { { .name = "a", .providers = "slack", .sources = "*", .metadata = "z=1\na=2" } },
	  KS_ERR, "slack##flux:a{z=1;a=2} | a" },
	{ "summary wins over metadata key summary",
	  { { .name = "a", .providers = "slack", .sources = "*",
	      .metadata = "summary=meta\nk=v", .summary = "real" } },
	  KS_ERR, "slack##flux:a{k=v;summary=real} | a" },
	{ "metadata key summary without a summary",
	  { { .name = "a", .providers = "slack", .sources = "*", .metadata = "summary=meta" } },
	  KS_ERR, "slack##flux:a{summary=meta} | a" },
	{ "first alert wins across alerts",
	  { { .name = "a", .providers = "slack", .sources = "*", .metadata = "cluster=one" },
	    { .name = "b", .providers = "slack", .sources = "*",
	      .metadata = "cluster=two\nregion=r", .summary = "sb" } },
	  KS_ERR, "slack##flux:a,b{cluster=one;region=r;summary=sb} | a b" },
	{ "first summary wins",
	  { { .name = "a", .providers = "slack", .sources = "*", .summary = "sa" },
	    { .name = "b", .providers = "slack", .sources = "*", .summary = "sb" } },
	  KS_ERR, "slack##flux:a,b{summary=sa} | a b" },
	{ "first alert's metadata summary beats a later summary",
	  { { .name = "a", .providers = "slack", .sources = "*", .metadata = "summary=m" },
	    { .name = "b", .providers = "slack", .sources = "*", .summary = "sb" } },
	  KS_ERR, "slack##flux:a,b{summary=m} | a b" },
	{ "extra is per target",
	  { { .name = "a", .providers = "slack", .sources = "*", .metadata = "k=a" },
	    { .name = "b", .providers = "bot", .sources = "*", .metadata = "k=b" } },
	  KS_ERR, "slack##flux:a{k=a} bot##bot:b{k=b} | a b" },
	{ "unmatched alert adds no extra",
	  { { .name = "a", .providers = "slack", .sources = "HelmRelease", .summary = "sa" },
	    { .name = "b", .providers = "slack", .sources = "*", .summary = "sb" } },
	  KS_ERR, "slack##flux:b{summary=sb} | b" },
};

/*
 * Suspended providers: the same table, with these providers suspended. Their
 * targets are dropped; an alert left with no provider is not hit at all.
 */
static const struct pcase {
	const char *suspended;   /* "slack\nbot" */
	struct rcase c;
} pcases[] = {
	{ "slack", { "provider suspended: the alert does not fire",
	    { { .name = "a", .providers = "slack", .sources = "*" } }, KS_ERR, MISS } },
	{ "slack", { "provider suspended, the other provider delivers",
	    { { .name = "a", .providers = "slack\nbot", .sources = "*" } }, KS_ERR,
	    "bot##bot:a{} | a" } },
	{ "slack\nbot", { "every provider suspended: no match",
	    { { .name = "a", .providers = "slack\nbot", .sources = "*" } }, KS_ERR, MISS } },
	{ "slack", { "provider suspended: another alert's target is dropped too",
	    { { .name = "a", .providers = "slack\nbot", .sources = "*" },
	      { .name = "b", .providers = "slack", .sources = "*" },
	      { .name = "c", .providers = "console", .sources = "*" } },
	    KS_ERR, "bot##bot:a{} console:c{} | a c" } },
	{ "console", { "provider not suspended: unchanged",
	    { { .name = "a", .providers = "slack\nbot", .sources = "*" } }, KS_ERR,
	    "slack##flux:a{} bot##bot:a{} | a" } },
	{ "slack", { "changes: provider suspended, no failure",
	    { { .name = "a", .providers = "slack", .sources = "*", .changes = true } }, KS_ERR,
	    MISS } },
	{ "slack", { "changes: provider suspended, no recovery",
	    { { .name = "a", .providers = "slack", .sources = "*", .changes = true } },
	    KS("info", "ReconciliationSucceeded", "ok"), MISS } },
	{ "slack", { "changes: one provider suspended, the alert still fails",
	    { { .name = "a", .providers = "slack\nbot", .sources = "*", .changes = true } },
	    KS_ERR, " | a a=failure" } },
};

/* Match tc's event against its alerts, the providers named in suspended
 * ("\n"-separated, or NULL) suspended. */
static void
check_case(const struct rcase *tc, const char *suspended)
{
	struct conf *c = build_conf(tc->alerts);
	size_t nsusp;
	char **susp = split(suspended, '\n', &nsusp);
	for (size_t k = 0; k < nsusp; k++)
		for (size_t p = 0; p < c->nproviders; p++)
			if (strcmp(c->providers[p].name, susp[k]) == 0)
				c->providers[p].suspend = true;
	free_strv(susp, nsusp);
	char err[256];
	struct rules *r = rules_new(c, err, sizeof(err));
	struct event *ev = parse_event(tc->event);
	struct rules_result res;
	size_t n;
	char *got;

	ck_assert_msg(r != NULL, "%s: %s", tc->desc, err);
	ck_assert_ptr_eq(rules_conf(r), c);
	n = rules_match(r, ev, &res);
	ck_assert_uint_eq(n, res.ntargets);
	got = render(c, &res);
	ck_assert_msg(strcmp(got, tc->want) == 0, "%s: got \"%s\", want \"%s\"", tc->desc, got,
	    tc->want);
	free(got);
	rules_result_clear(&res);
	ck_assert_ptr_null(res.targets);
	ck_assert_uint_eq(res.ntargets, 0);
	ck_assert_uint_eq(res.nalerts, 0);

	/* a compiled rules object gives the same answer every time */
	rules_match(r, ev, &res);
	got = render(c, &res);
	ck_assert_str_eq(got, tc->want);
	free(got);
	rules_result_clear(&res);

	event_free(ev);
	rules_free(r);
	conf_free(c);
}

START_TEST(test_rules_table)
{
	check_case(&cases[_i], NULL);
}
END_TEST

START_TEST(test_rules_suspended_providers)
{
	check_case(&pcases[_i].c, pcases[_i].suspended);
}
END_TEST

/* ---- the rest ----------------------------------------------------------- */

static const struct {
	struct talert alert;
	const char *errpart;
} bad_regex[] = {
	{ { .name = "broken", .providers = "slack", .sources = "*", .include = "ok\n(unclosed" },
	  "include[1]" },
	{ { .name = "broken", .providers = "slack", .sources = "*", .exclude = "[z-a]" },
	  "exclude[0]" },
	{ { .name = "broken", .providers = "slack", .sources = "*", .include = "a{2,1}" },
	  "include[0]" },
};

START_TEST(test_rules_bad_regex)
{
	struct talert alerts[2] = { bad_regex[_i].alert, { .name = NULL } };
	struct conf *c = build_conf(alerts);
	char err[256] = "";

	ck_assert_ptr_null(rules_new(c, err, sizeof(err)));
	ck_assert_msg(strstr(err, "\"broken\"") != NULL, "err: %s", err);
	ck_assert_msg(strstr(err, bad_regex[_i].errpart) != NULL, "err: %s", err);
	ck_assert_ptr_null(rules_new(c, NULL, 0));
	conf_free(c);
	rules_free(NULL);
}
END_TEST

/*
 * A source's cluster glob against the sender's cluster (auth.clients; "" for
 * none, which only "*" matches); and a forwarding provider gets no channel,
 * whatever the alert's.
 */
START_TEST(test_rules_cluster)
{
	static const struct talert alerts[] = {
		{ .name = "prod", .providers = "slack", .severity = "info",
		  .sources = "Kustomization|*|*|prod-*" },
		{ .name = "any", .providers = "bot", .severity = "info",
		  .sources = "Kustomization|*|*|*", .channel = "#x" },
		{ 0 },
	};
	struct conf *c = build_conf(alerts);
	c->providers[1].type = CONF_PROVIDER_GENERIC;
	char err[256];
	struct rules *r = rules_new(c, err, sizeof(err));
	ck_assert_msg(r != NULL, "%s", err);
	struct event *ev = parse_event("{\"involvedObject\":{\"kind\":\"Kustomization\","
	    "\"name\":\"a\"},\"severity\":\"error\",\"message\":\"m\"}");
	static const struct { const char *cluster, *want; } ccases[] = {
		{ "", "bot:any{} | any" },
		{ "prod-eu-1", "slack##flux:prod{} bot:any{} | prod any" },
		{ "staging", "bot:any{} | any" },
	};
	for (size_t i = 0; i < sizeof(ccases) / sizeof(ccases[0]); i++) {
		struct rules_result res;
		ev->cluster = ccases[i].cluster;
		rules_match(r, ev, &res);
		char *got = render(c, &res);
		ck_assert_msg(strcmp(got, ccases[i].want) == 0, "cluster \"%s\": got \"%s\"",
		    ccases[i].cluster, got);
		free(got);
		rules_result_clear(&res);
	}
	event_free(ev);
	rules_free(r);
	conf_free(c);
}
END_TEST

START_TEST(test_rules_target_label)
{
	static const struct { const char *p, *ch, *want; } kc[] = {
		{ "slack", NULL, "slack" },
		{ "slack", "", "slack" },
		{ "slack", "#flux", "slack #flux" },
		{ "bot", "C0123", "bot C0123" },
	};
	for (size_t i = 0; i < sizeof(kc) / sizeof(kc[0]); i++) {
		char *k = rules_target_label(kc[i].p, kc[i].ch);
		ck_assert_str_eq(k, kc[i].want);
		free(k);
	}
}
END_TEST

/* The built-in defaults: one alert "all" at info for every source. */
START_TEST(test_rules_default_conf)
{
	struct conf *c = conf_default();
	char err[256];
	struct rules *r;
	struct rules_result res;
	struct event *ev;

	ck_assert_ptr_nonnull(c);
	r = rules_new(c, err, sizeof(err));
	ck_assert_msg(r != NULL, "%s", err);

	ev = parse_event(EV("Bucket", "b", "", "info", "", "hello", ""));
	ck_assert_uint_eq(rules_match(r, ev, &res), 1);
	ck_assert_uint_eq(res.nalerts, 1);
	ck_assert_str_eq(res.alerts[0], "all");
	ck_assert_str_eq(res.targets[0].alerts, "all");
	ck_assert_uint_eq(res.targets[0].provider, 0);
	ck_assert_uint_eq(res.targets[0].nextra, 0);
	rules_result_clear(&res);
	event_free(ev);

	ev = parse_event(EV("Bucket", "b", "", "trace", "", "hello", ""));
	ck_assert_uint_eq(rules_match(r, ev, &res), 0);
	ck_assert_uint_eq(res.nalerts, 0);
	ck_assert_ptr_null(res.targets);
	rules_result_clear(&res);
	event_free(ev);

	rules_free(r);
	conf_free(c);
}
END_TEST

/* One struct rules shared by several threads gives every thread the right answers. */
struct rules_thread {
	const struct rules *r;
	const struct conf *c;
	struct event *hit, *miss;
	int failures;
};

static void *
rules_thread_main(void *arg)
{
	struct rules_thread *t = arg;
	struct rules_result res;

	for (int i = 0; i < 2000; i++) {
		char *got;
		rules_match(t->r, t->hit, &res);
		got = render(t->c, &res);
		if (strcmp(got, "slack##flux:inc,exc{summary=s} | inc exc") != 0)
			t->failures++;
		free(got);
		rules_result_clear(&res);
		if (rules_match(t->r, t->miss, &res) != 0)
			t->failures++;
		rules_result_clear(&res);
	}
	return NULL;
}

START_TEST(test_rules_threads)
{
	const struct talert alerts[] = {
		{ .name = "inc", .providers = "slack", .sources = "*", .summary = "s",
		  .include = "time[d]? out\n^never" },
		{ .name = "exc", .providers = "slack", .sources = "*", .exclude = "succe+ded" },
		{ .name = NULL },
	};
	struct conf *c = build_conf(alerts);
	struct rules *r = rules_new(c, NULL, 0);
	struct rules_thread t[4];
	pthread_t tid[4];

	ck_assert_ptr_nonnull(r);
	for (int i = 0; i < 4; i++) {
		t[i] = (struct rules_thread){ r, c, parse_event(KS_ERR),
		    parse_event(KS("error", "R", "reconciliation succeeded")), 0 };
		ck_assert_int_eq(pthread_create(&tid[i], NULL, rules_thread_main, &t[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(tid[i], NULL);
		ck_assert_int_eq(t[i].failures, 0);
		event_free(t[i].hit);
		event_free(t[i].miss);
	}
	rules_free(r);
	conf_free(c);
}
END_TEST

/* rules_alert_targets: the alert's channel, else each provider's; none is "" or NULL. */
START_TEST(test_rules_alert_targets)
{
	const struct talert alerts[] = {
		{ .name = "own", .providers = "slack\nbot", .sources = "*", .channel = "#own" },
		{ .name = "theirs", .providers = "slack\nconsole", .sources = "*" },
		{ .name = NULL },
	};
	struct conf *c = build_conf(alerts);

	ck_assert(rules_alert_targets(c, &c->alerts[0], "slack", "#own"));
	ck_assert(rules_alert_targets(c, &c->alerts[0], "bot", "#own"));
	ck_assert(!rules_alert_targets(c, &c->alerts[0], "slack", "#flux"));
	ck_assert(!rules_alert_targets(c, &c->alerts[0], "console", "#own"));
	ck_assert(rules_alert_targets(c, &c->alerts[1], "slack", "#flux"));
	ck_assert(!rules_alert_targets(c, &c->alerts[1], "bot", "#bot"));
	ck_assert(rules_alert_targets(c, &c->alerts[1], "console", ""));
	ck_assert(rules_alert_targets(c, &c->alerts[1], "console", NULL));
	ck_assert(!rules_alert_targets(c, &c->alerts[1], "console", "#flux"));
	conf_free(c);
}
END_TEST

/* A huge message through include and exclude regexes. */
START_TEST(test_rules_huge_message)
{
	const struct talert alerts[] = {
		{ .name = "a", .providers = "slack", .sources = "*", .include = "needle$",
		  .exclude = "^x{5}y" },
		{ .name = NULL },
	};
	struct conf *c = build_conf(alerts);
	struct rules *r = rules_new(c, NULL, 0);
	struct util_buf b = { 0 };
	struct rules_result res;
	struct event *ev;

	util_buf_puts(&b, "{\"involvedObject\":{\"kind\":\"K\",\"name\":\"n\"},"
	    "\"severity\":\"error\",\"message\":\"");
	for (int i = 0; i < 4 * 1024 * 1024 / 8; i++)
		util_buf_puts(&b, "xxxxxxx ");
	util_buf_puts(&b, "needle\"}");
	ev = parse_event(b.data);
	ck_assert_uint_eq(rules_match(r, ev, &res), 1);
	rules_result_clear(&res);
	event_free(ev);
	util_buf_free(&b);
	rules_free(r);
	conf_free(c);
}
END_TEST

/* Fixtures 11 and 12 (SPEC §12): kustomize-controller's per-reconcile success
 * (a commit-status update) closes an incident; helm-controller's
 * RollbackSucceeded does not. 01 (an error) opens one. */
static struct event *
fixture_event(const char *name)
{
	char err[256], field[64];
	size_t len = 0;
	char *path = util_printf("%s/tests/fixtures/events/%s", FR_SRCDIR, name);
	char *buf = util_read_file(path, &len, err, sizeof(err));
	ck_assert_msg(buf != NULL, "%s: %s", path, err);
	struct event *ev = event_parse(buf, len, err, sizeof(err), field, sizeof(field));
	ck_assert_msg(ev != NULL, "%s: %s", name, err);
	free(buf);
	free(path);
	return ev;
}

START_TEST(test_rules_recovery_fixtures)
{
	static const struct { const char *file; const char *want; } fx[] = {
		{ "01-kustomization-validation-failed-generic-webhook.json", " | inc inc=failure" },
		{ "11-kustomization-reconciliation-succeeded-recovery.json", " | inc inc=recovery" },
		{ "12-helmrelease-rollback-succeeded-still-failing.json", MISS },
	};
	const struct talert alerts[] = {
		{ .name = "inc", .providers = "slack", .sources = "Kustomization\nHelmRelease",
		  .changes = true },
		{ .name = NULL },
	};
	struct conf *c = build_conf(alerts);
	struct rules *r = rules_new(c, NULL, 0);
	ck_assert_ptr_nonnull(r);
	for (size_t i = 0; i < sizeof(fx) / sizeof(fx[0]); i++) {
		struct event *ev = fixture_event(fx[i].file);
		struct rules_result res;
		rules_match(r, ev, &res);
		char *got = render(c, &res);
		ck_assert_msg(strcmp(got, fx[i].want) == 0, "%s: got \"%s\"", fx[i].file, got);
		free(got);
		rules_result_clear(&res);
		event_free(ev);
	}
	rules_free(r);
	conf_free(c);
}
END_TEST

/* rules_merge: picks in order, ranks per target, threaded-only picks, names of
 * the picks that gave a target. "bot" has threads here. */
START_TEST(test_rules_merge)
{
	const struct talert alerts[] = {
		{ .name = "ev", .providers = "slack", .sources = "*", .metadata = "k=ev" },
		{ .name = "inc", .providers = "slack\nbot", .sources = "*", .changes = true,
		  .metadata = "k=inc\nj=inc" },
		{ .name = "rep", .providers = "slack\nbot\nconsole", .sources = "*",
		  .changes = true },
		{ .name = NULL },
	};
	struct conf *c = build_conf(alerts);
	c->providers[1].type = CONF_PROVIDER_SLACK_BOT;
	c->providers[1].threads = true;
	ck_assert(rules_threaded(&c->providers[1]));
	ck_assert(!rules_threaded(&c->providers[0]));
	c->providers[0].threads = true;   /* threads count on slack-bot only */
	ck_assert(!rules_threaded(&c->providers[0]));
	c->providers[0].threads = false;

	struct rules_result res;
	const struct rules_pick picks[] = {
		{ .alert = 0, .rank = 0 },
		{ .alert = 1, .rank = 4 },
		{ .alert = 2, .rank = 1, .threaded_only = true },
	};
	ck_assert_uint_eq(rules_merge(c, picks, 3, &res), 2);
	char *got = render(c, &res);
	ck_assert_str_eq(got, "slack##flux:ev,inc{k=ev;j=inc} bot##bot:inc,rep{k=inc;j=inc} "
	    "| ev inc rep");
	free(got);
	ck_assert_int_eq(res.targets[0].rank, 4);
	ck_assert_uint_eq(res.targets[0].pick, 1);
	ck_assert_int_eq(res.targets[1].rank, 4);
	ck_assert_uint_eq(res.targets[1].pick, 1);
	char *json = rules_extra_json(&res.targets[0]);
	ck_assert_str_eq(json, "{\"k\":\"ev\",\"j\":\"inc\"}");
	free(json);
	rules_result_clear(&res);

	/* A higher rank later wins the target; a threaded-only pick with no
	 * threaded target gives nothing and is not named. */
	const struct rules_pick later[] = {
		{ .alert = 2, .rank = 1, .threaded_only = true },
		{ .alert = 0, .rank = 0, .threaded_only = true },
		{ .alert = 1, .rank = 3 },
	};
	ck_assert_uint_eq(rules_merge(c, later, 3, &res), 2);
	got = render(c, &res);
	ck_assert_str_eq(got, "bot##bot:rep,inc{k=inc;j=inc} slack##flux:inc{k=inc;j=inc} "
	    "| rep inc");
	free(got);
	ck_assert_int_eq(res.targets[0].rank, 3);
	ck_assert_uint_eq(res.targets[0].pick, 2);
	rules_result_clear(&res);
	ck_assert_uint_eq(rules_merge(c, NULL, 0, &res), 0);
	rules_result_clear(&res);

	/* A suspended provider gets no opened/recovered message either: its
	 * targets leave the merge, and a pick left with none is not named. */
	c->providers[1].suspend = true;
	ck_assert_uint_eq(rules_merge(c, picks, 3, &res), 1);
	got = render(c, &res);
	ck_assert_str_eq(got, "slack##flux:ev,inc{k=ev;j=inc} | ev inc");
	free(got);
	rules_result_clear(&res);
	conf_free(c);
}
END_TEST

static Suite *
rules_suite(void)
{
	Suite *s = suite_create("rules");
	TCase *tc = tcase_create("rules");

	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_rules_table, 0, sizeof(cases) / sizeof(cases[0]));
	tcase_add_loop_test(tc, test_rules_suspended_providers, 0,
	    sizeof(pcases) / sizeof(pcases[0]));
	tcase_add_loop_test(tc, test_rules_bad_regex, 0,
	    sizeof(bad_regex) / sizeof(bad_regex[0]));
	tcase_add_test(tc, test_rules_target_label);
	tcase_add_test(tc, test_rules_cluster);
	tcase_add_test(tc, test_rules_default_conf);
	tcase_add_test(tc, test_rules_threads);
	tcase_add_test(tc, test_rules_alert_targets);
	tcase_add_test(tc, test_rules_huge_message);
	tcase_add_test(tc, test_rules_recovery_fixtures);
	tcase_add_test(tc, test_rules_merge);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(rules_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
