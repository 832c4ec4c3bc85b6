/*
 * rules: the alerts of a conf compiled for matching (fluxrelay.conf(5), ALERTS).
 *
 * rules_new() compiles every include/exclude pattern once (PCRE2_UTF, JIT when
 * the library supports it); afterwards a struct rules is immutable and shared
 * by every HTTP thread without locking. rules_match() allocates nothing for an
 * event no alert selects (the common "ignored" path): the PCRE2 match data is
 * created lazily, per call, only when a regex has to run, and the result is
 * built only for matching alerts. Clauses are tested cheapest first; the
 * regexes last.
 *
 * A suspended provider gets nothing: its targets are left out of every
 * result (rules_match and rules_merge alike), and an alert whose providers
 * are all suspended has no role, as a suspended alert.
 *
 * Each alert has a role (rules.h): notify = "events" alerts fire as §6 says;
 * notify = "changes" alerts report failures and recoveries, whose targets
 * the queue writer merges once it knows the incident's state (rules_merge,
 * the same merge rules_match does for events).
 */
#define PCRE2_CODE_UNIT_WIDTH 8

#include "rules.h"
#include "rules_internal.h"

#include <fnmatch.h>
#include <pcre2.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

struct rules_alert {
	pcre2_code **include;   /* parallel to conf_alert.include */
	pcre2_code **exclude;   /* parallel to conf_alert.exclude */
	/* The alert is suspended, or every one of its providers is: it has no
	 * role, as no alert at all (nothing may be sent for it). */
	bool off;
};

struct rules {
	const struct conf *conf;        /* borrowed; outlives the rules */
	struct rules_alert *alerts;     /* parallel to conf->alerts */
};

/* Per-call matching state: both members are computed only when a regex runs. */
struct rules_ctx {
	const struct event *ev;
	size_t msglen;           /* (size_t)-1 until known */
	pcre2_match_data *md;    /* NULL until needed; freed by rules_match */
};

/* Compile one pattern; NULL with err filled on failure. */
static pcre2_code *
rules_compile(const char *alert, const char *what, size_t idx, const char *pattern,
    char *err, size_t errlen)
{
	PCRE2_UCHAR msg[256];
	PCRE2_SIZE off = 0;
	pcre2_code *re;
	int code = 0;

	re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &code,
	    &off, NULL);
	if (re == NULL) {
		pcre2_get_error_message(code, msg, sizeof(msg));
		snprintf(err, errlen, "alert \"%s\": %s[%zu] \"%s\": %s at offset %zu",
		    alert, what, idx, pattern, (const char *)msg, (size_t)off);
		return NULL;
	}
	/* JIT is an optimization only: without it pcre2_match interprets */
	(void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
	return re;
}

static void
rules_free_patterns(pcre2_code **v, size_t n)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		pcre2_code_free(v[i]);
	free(v);
}

void
rules_free(struct rules *r)
{
	if (r == NULL)
		return;
	if (r->alerts != NULL) {
		for (size_t i = 0; i < r->conf->nalerts; i++) {
			rules_free_patterns(r->alerts[i].include, r->conf->alerts[i].ninclude);
			rules_free_patterns(r->alerts[i].exclude, r->conf->alerts[i].nexclude);
		}
		free(r->alerts);
	}
	free(r);
}

struct rules *
rules_new(const struct conf *c, char *err, size_t errlen)
{
	struct rules *r = util_calloc(1, sizeof(*r));
	char dummy[1];

	if (err == NULL || errlen == 0) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	err[0] = '\0';
	r->conf = c;
	r->alerts = util_calloc(c->nalerts ? c->nalerts : 1, sizeof(*r->alerts));
	for (size_t i = 0; i < c->nalerts; i++) {
		const struct conf_alert *a = &c->alerts[i];
		struct rules_alert *ra = &r->alerts[i];

		ra->off = true;
		for (size_t k = 0; k < a->nproviders; k++) {
			if (a->provider_idx[k] >= c->nproviders) {
				snprintf(err, errlen, "alert \"%s\": provider index %zu out of range",
				    a->name, a->provider_idx[k]);
				goto fail;
			}
			if (!c->providers[a->provider_idx[k]].suspend)
				ra->off = false;
		}
		if (a->suspend)
			ra->off = true;
		/* calloc: a partially compiled array frees cleanly */
		ra->include = util_calloc(a->ninclude ? a->ninclude : 1, sizeof(*ra->include));
		ra->exclude = util_calloc(a->nexclude ? a->nexclude : 1, sizeof(*ra->exclude));
		for (size_t k = 0; k < a->ninclude; k++)
			if ((ra->include[k] = rules_compile(a->name, "include", k, a->include[k],
			    err, errlen)) == NULL)
				goto fail;
		for (size_t k = 0; k < a->nexclude; k++)
			if ((ra->exclude[k] = rules_compile(a->name, "exclude", k, a->exclude[k],
			    err, errlen)) == NULL)
				goto fail;
	}
	return r;
fail:
	rules_free(r);
	return NULL;
}

const struct conf *
rules_conf(const struct rules *r)
{
	return r->conf;
}

/* An unset glob (NULL) means "*". */
static bool
rules_glob(const char *pattern, const char *value)
{
	if (pattern == NULL)
		return true;
	return fnmatch(pattern, value, 0) == 0;
}

static bool
rules_source_match(const struct conf_source *src, const struct event *ev)
{
	if (!rules_glob(src->kind, ev->kind) || !rules_glob(src->name, ev->name))
		return false;
	if (src->cluster != NULL && !rules_glob(src->cluster, ev->cluster ? ev->cluster : ""))
		return false;
	if (ev->namespace == NULL)
		return src->namespace == NULL || strcmp(src->namespace, "*") == 0;
	return rules_glob(src->namespace, ev->namespace);
}

/*
 * 1 when the pattern matches somewhere in the message, 0 otherwise. A match
 * error (resource limits) counts as no match.
 */
static int
rules_regex(pcre2_code *re, struct rules_ctx *ctx)
{
	int rc;

	if (ctx->md == NULL)
		ctx->md = pcre2_match_data_create(1, NULL);
	if (ctx->md == NULL)
		return 0;
	if (ctx->msglen == (size_t)-1)
		ctx->msglen = strlen(ctx->ev->message);
	rc = pcre2_match(re, (PCRE2_SPTR)ctx->ev->message, ctx->msglen, 0, 0, ctx->md,
	    NULL);
	if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
		rc = pcre2_match(re, (PCRE2_SPTR)ctx->ev->message, ctx->msglen, 0,
		    PCRE2_NO_JIT, ctx->md, NULL);
	return rc >= 0;
}

static bool
rules_alert_fires(const struct conf_alert *a, const struct rules_alert *ra,
    struct rules_ctx *ctx)
{
	const struct event *ev = ctx->ev;
	bool ok = false;

	if (ra->off)
		return false;
	if ((a->severity_mask & (1u << ev->severity)) == 0)
		return false;
	for (size_t i = 0; i < a->nsources && !ok; i++)
		ok = rules_source_match(&a->sources[i], ev);
	if (!ok)
		return false;
	if (a->nreasons > 0) {
		ok = false;
		for (size_t i = 0; i < a->nreasons && !ok; i++)
			ok = rules_glob(a->reasons[i], ev->reason);
		if (!ok)
			return false;
	}
	if (!a->commit_status_updates) {
		const char *cs = event_meta_get(ev, "commit_status");
		if (cs != NULL && strcmp(cs, "update") == 0)
			return false;
	}
	if (a->ninclude > 0) {
		ok = false;
		for (size_t i = 0; i < a->ninclude && !ok; i++)
			ok = rules_regex(ra->include[i], ctx);
		if (!ok)
			return false;
	}
	for (size_t i = 0; i < a->nexclude; i++)
		if (rules_regex(ra->exclude[i], ctx))
			return false;
	return true;
}

static bool
rules_streq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/* rules.h */
const char *
rules_channel(const struct conf *c, const struct conf_alert *a, size_t k)
{
	/* A forwarder sends the event itself: no channel, one target. */
	if (conf_provider_forwards(&c->providers[a->provider_idx[k]]))
		return NULL;
	if (a->channel != NULL)
		return a->channel;
	return c->providers[a->provider_idx[k]].channel;
}

/* rules.h */
bool
rules_alert_targets(const struct conf *c, const struct conf_alert *a, const char *provider,
    const char *channel)
{
	for (size_t k = 0; k < a->nproviders; k++) {
		const char *ch = rules_channel(c, a, k);
		if (strcmp(c->providers[a->provider_idx[k]].name, provider) == 0 &&
		    strcmp(ch ? ch : "", channel ? channel : "") == 0)
			return true;
	}
	return false;
}

/* Append key=value to a target's extra unless the key is already there. */
static void
rules_extra_add(struct rules_target *t, const char *key, const char *value)
{
	for (size_t i = 0; i < t->nextra; i++)
		if (strcmp(t->extra[i].key, key) == 0)
			return;
	t->extra = util_realloc(t->extra, (t->nextra + 1) * sizeof(*t->extra));
	t->extra[t->nextra].key = util_strdup(key);
	t->extra[t->nextra].value = util_strdup(value);
	t->nextra++;
}

bool
rules_threaded(const struct conf_provider *p)
{
	return p->type == CONF_PROVIDER_SLACK_BOT && p->threads;
}

static void
rules_add_name(struct rules_result *out, const char *name)
{
	out->alerts = util_realloc(out->alerts, (out->nalerts + 1) * sizeof(*out->alerts));
	out->alerts[out->nalerts++] = util_strdup(name);
}

/*
 * Merge the targets of alert a into the result (pick: its index among the
 * picks, rank: its rank; threaded_only: only targets with threads). Returns
 * how many targets it joined.
 */
static size_t
rules_result_add(const struct conf *c, const struct conf_alert *a, size_t pick, int rank,
    bool threaded_only, struct rules_result *out)
{
	size_t joined = 0;
	for (size_t k = 0; k < a->nproviders; k++) {
		const char *ch = rules_channel(c, a, k);
		struct rules_target *t = NULL;
		bool seen = false;

		/* the same provider listed twice in one alert is one target */
		for (size_t j = 0; j < k && !seen; j++)
			seen = a->provider_idx[j] == a->provider_idx[k];
		if (seen)
			continue;
		/* nothing is sent to a suspended provider, incident messages included */
		if (c->providers[a->provider_idx[k]].suspend)
			continue;
		if (threaded_only && !rules_threaded(&c->providers[a->provider_idx[k]]))
			continue;

		for (size_t i = 0; i < out->ntargets && t == NULL; i++)
			if (out->targets[i].provider == a->provider_idx[k] &&
			    rules_streq(out->targets[i].channel, ch))
				t = &out->targets[i];
		if (t == NULL) {
			out->targets = util_realloc(out->targets,
			    (out->ntargets + 1) * sizeof(*out->targets));
			t = &out->targets[out->ntargets++];
			memset(t, 0, sizeof(*t));
			t->provider = a->provider_idx[k];
			t->channel = util_strdup(ch);
			t->alerts = util_strdup(a->name);
			t->rank = rank;
			t->pick = pick;
		} else {
			char *s = util_printf("%s,%s", t->alerts, a->name);
			free(t->alerts);
			t->alerts = s;
			if (rank > t->rank) {
				t->rank = rank;
				t->pick = pick;
			}
		}
		joined++;
		/* the alert's own summary beats its metadata key "summary" */
		for (size_t m = 0; m < a->nmetadata; m++) {
			if (a->summary != NULL && strcmp(a->metadata[m].key, "summary") == 0)
				continue;
			rules_extra_add(t, a->metadata[m].key, a->metadata[m].value);
		}
		if (a->summary != NULL)
			rules_extra_add(t, "summary", a->summary);
	}
	return joined;
}

/*
 * RECOVERY (rules.h): judged by the sources only, and the severity and
 * reason a recovery has. kustomize-controller's per-reconcile success is a
 * commit-status update, which must still close the incident.
 */
static bool
rules_alert_recovers(const struct conf_alert *a, const struct rules_alert *ra,
    const struct event *ev)
{
	bool ok = false;
	if (ra->off || ev->severity != EVENT_INFO)
		return false;
	for (size_t i = 0; i < a->nrecovery_reasons && !ok; i++)
		ok = rules_glob(a->recovery_reasons[i], ev->reason);
	if (!ok)
		return false;
	for (size_t i = 0; i < a->nsources; i++)
		if (rules_source_match(&a->sources[i], ev))
			return true;
	return false;
}

/* The role of alert a for the event, or -1 when it has none. */
static int
rules_role(const struct conf_alert *a, const struct rules_alert *ra, struct rules_ctx *ctx)
{
	if (a->notify == CONF_NOTIFY_EVENTS)
		return rules_alert_fires(a, ra, ctx) ? RULES_EVENT : -1;
	if (ctx->ev->severity == EVENT_ERROR)
		return rules_alert_fires(a, ra, ctx) ? RULES_FAILURE : -1;
	return rules_alert_recovers(a, ra, ctx->ev) ? RULES_RECOVERY : -1;
}

size_t
rules_match(const struct rules *r, const struct event *ev, struct rules_result *out)
{
	const struct conf *c = r->conf;
	struct rules_ctx ctx = { .ev = ev, .msglen = (size_t)-1, .md = NULL };

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < c->nalerts; i++) {
		int role = rules_role(&c->alerts[i], &r->alerts[i], &ctx);
		if (role < 0)
			continue;
		rules_add_name(out, c->alerts[i].name);
		out->hits = util_realloc(out->hits, (out->nhits + 1) * sizeof(*out->hits));
		out->hits[out->nhits++] = (struct rules_hit){ i, (enum rules_role)role };
		if (role == RULES_EVENT)
			rules_result_add(c, &c->alerts[i], 0, 0, false, out);
		else
			out->nchanges++;
	}
	if (ctx.md != NULL)
		pcre2_match_data_free(ctx.md);
	return out->ntargets;
}

size_t
rules_merge(const struct conf *c, const struct rules_pick *picks, size_t n,
    struct rules_result *out)
{
	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < n; i++) {
		const struct conf_alert *a = &c->alerts[picks[i].alert];
		if (rules_result_add(c, a, i, picks[i].rank, picks[i].threaded_only, out) > 0)
			rules_add_name(out, a->name);
	}
	return out->ntargets;
}

char *
rules_extra_json(const struct rules_target *t)
{
	struct util_buf b = {0};
	util_buf_puts(&b, "{");
	for (size_t i = 0; i < t->nextra; i++) {
		if (i > 0)
			util_buf_puts(&b, ",");
		util_buf_json_string(&b, t->extra[i].key);
		util_buf_puts(&b, ":");
		util_buf_json_string(&b, t->extra[i].value);
	}
	util_buf_puts(&b, "}");
	return b.data;
}

void
rules_result_clear(struct rules_result *res)
{
	if (res == NULL)
		return;
	for (size_t i = 0; i < res->ntargets; i++) {
		struct rules_target *t = &res->targets[i];
		free(t->channel);
		free(t->alerts);
		for (size_t k = 0; k < t->nextra; k++) {
			free(t->extra[k].key);
			free(t->extra[k].value);
		}
		free(t->extra);
	}
	free(res->targets);
	for (size_t i = 0; i < res->nalerts; i++)
		free(res->alerts[i]);
	free(res->alerts);
	free(res->hits);
	memset(res, 0, sizeof(*res));
}

char *
rules_target_label(const char *provider, const char *channel)
{
	if (channel == NULL || channel[0] == '\0')
		return util_strdup(provider);
	return util_printf("%s %s", provider, channel);
}
