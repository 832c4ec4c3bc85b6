/*
 * conf: read a libconfig file into an owned, validated struct conf
 * (the settings: fluxrelay.conf(5)).
 *
 * The loader walks the whole tree once and never stops at the first problem:
 * each problem becomes one "FILE:LINE: PATH: problem" line, sorted by line,
 * so a user fixes a broken file in one round. PATH names what the problem
 * concerns: "listen.port", `provider "slack": rate`, `alert "errors":
 * sources[0].kind` (`provider #2` / `alert #2`, counted from 1, when the entry
 * has no usable name).
 *
 * Invariants: nothing in struct conf points into libconfig's tree (every
 * string is copied before config_destroy); secret values (url, token,
 * hmac_key) never appear in a message, only the key and, for *_file, the
 * file's path; every path in the result is absolute (relative ones are taken
 * against the config file's directory), except the built-in
 * "./fluxrelay-state".
 *
 * Pure apart from reading the config file, @include files and secret files,
 * and getenv; callable from any thread as long as nobody calls setenv
 * concurrently.
 */
#include "conf.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <libconfig.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "event.h"
#include "log.h"
#include "template.h"
#include "util.h"

/* Options every include/exclude pattern is validated with; rules uses the same. */
#define CONF_PCRE2_OPTIONS PCRE2_UTF

/* Defaults (fluxrelay.conf(5)); the numeric ones are used in conf_scalars[]. */
#define CONF_DEFAULT_STATE_DIR "/var/lib/fluxrelay"
#define CONF_DEFAULT_STATE_DIR_USER "./fluxrelay-state"   /* built-in, not root */
#define CONF_DEFAULT_ADDRESS "127.0.0.1"
#define CONF_DEFAULT_PORT 9292
#define CONF_DEFAULT_MAX_BODY 3145728          /* notification-controller's limit */
#define CONF_DEFAULT_MAX_CONNECTIONS 1024
#define CONF_DEFAULT_LISTEN_TIMEOUT 10.0
#define CONF_DEFAULT_METRICS_PORT (-1)         /* no metrics listener */
#define CONF_DEFAULT_SYNC_FULL true
#define CONF_DEFAULT_MAX_PENDING 100000
#define CONF_DEFAULT_MAX_ATTEMPTS 20
#define CONF_DEFAULT_MAX_AGE 86400.0           /* 1 day */
#define CONF_DEFAULT_DEAD_MAX_AGE 2592000.0    /* 30 days */
#define CONF_DEFAULT_BACKOFF_INITIAL 1.0
#define CONF_DEFAULT_BACKOFF_MAX 300.0
#define CONF_DEFAULT_DEDUP_WINDOW 300.0
#define CONF_DEFAULT_NORMALIZE_DURATIONS true
#define CONF_DEFAULT_API_URL "https://slack.com/api"
#define CONF_DEFAULT_RATE 1.0
#define CONF_DEFAULT_BURST 3
#define CONF_DEFAULT_BATCH_MAX 10
#define CONF_DEFAULT_TIMEOUT 10.0
#define CONF_DEFAULT_MAX_TEXT 3000
#define CONF_DEFAULT_THREAD_TTL 86400.0        /* 1 day */
#define CONF_DEFAULT_INCIDENT_TTL 86400.0      /* 1 day */
#define CONF_MAX_INTERVAL 31536000             /* 1 year: thread_ttl, repeat_interval, incident_ttl */
#define CONF_DEFAULT_SEVERITY EVENT_ERROR      /* an alert's, and above */
#define CONF_BUILTIN_SEVERITY EVENT_INFO       /* the built-in alert's, and above */

/* Which struct a scalar setting is stored in. */
enum conf_base { CONF_BASE_CONF, CONF_BASE_PROVIDER, CONF_BASE_ALERT };
enum conf_type { CONF_INT, CONF_LONG, CONF_DOUBLE, CONF_BOOL };

/*
 * One scalar setting, Redis-style: this row alone gives its key (to the
 * section's list of known keys), its bounds (every violation reads "must be
 * between MIN and MAX"), its default and where it is stored. Integer bounds
 * are exact in a double. The bounds are documented in etc/fluxrelay.conf.
 */
struct conf_scalar {
	const char *section;    /* listen, queue, dedup; provider, alert: each entry */
	const char *key;
	double min, max;        /* inclusive; unused for booleans */
	double def;
	enum conf_base base;    /* set with the two below by CONF_C/CONF_P/CONF_A */
	enum conf_type type;    /* the field's own type */
	size_t offset;          /* into the base struct */
};

#define CONF_FIELD(base, type, member) base, _Generic(((type *)0)->member, \
	int: CONF_INT, long: CONF_LONG, double: CONF_DOUBLE, bool: CONF_BOOL), \
	offsetof(type, member)
#define CONF_C(member) CONF_FIELD(CONF_BASE_CONF, struct conf, member)
#define CONF_P(member) CONF_FIELD(CONF_BASE_PROVIDER, struct conf_provider, member)
#define CONF_A(member) CONF_FIELD(CONF_BASE_ALERT, struct conf_alert, member)

/*
 * The scalar settings, each section's in the order its problems are
 * reported. A duration's minimum of 0.001 means "> 0" (at least 1 ms).
 * Strings, paths, secrets, lists and enums (queue.sync, log.level,
 * log.format, a provider's type) have their own code below: each has its
 * own checks and message, which a row could not say.
 */
static const struct conf_scalar conf_scalars[] = {
	/* port 0: the kernel picks a free one */
	{ "listen", "port", 0, 65535, CONF_DEFAULT_PORT, CONF_C(listen.port) },
	{ "listen", "max_body", 1, 1073741824, CONF_DEFAULT_MAX_BODY, CONF_C(listen.max_body) },
	{ "listen", "max_connections", 1, 1000000, CONF_DEFAULT_MAX_CONNECTIONS,
	  CONF_C(listen.max_connections) },
	{ "listen", "timeout", 0.001, 3600, CONF_DEFAULT_LISTEN_TIMEOUT, CONF_C(listen.timeout) },
	/* both or neither with metrics_address: see conf_metrics_listener */
	{ "listen", "metrics_port", 0, 65535, CONF_DEFAULT_METRICS_PORT,
	  CONF_C(listen.metrics_port) },
	{ "queue", "max_pending", 1, 1000000000, CONF_DEFAULT_MAX_PENDING,
	  CONF_C(queue.max_pending) },
	{ "queue", "max_attempts", 1, 1000000, CONF_DEFAULT_MAX_ATTEMPTS,
	  CONF_C(queue.max_attempts) },
	{ "queue", "max_age", 0.001, 31536000, CONF_DEFAULT_MAX_AGE, CONF_C(queue.max_age) },
	/* 10 years at most; 0 keeps dead letters forever */
	{ "queue", "dead_max_age", 0, 315360000, CONF_DEFAULT_DEAD_MAX_AGE,
	  CONF_C(queue.dead_max_age) },
	/* and backoff_initial <= backoff_max: see conf_queue */
	{ "queue", "backoff_initial", 0.001, 86400, CONF_DEFAULT_BACKOFF_INITIAL,
	  CONF_C(queue.backoff_initial) },
	{ "queue", "backoff_max", 0.001, 86400, CONF_DEFAULT_BACKOFF_MAX,
	  CONF_C(queue.backoff_max) },
	/* window 0 disables dedup; 30 days at most */
	{ "dedup", "window", 0, 2592000, CONF_DEFAULT_DEDUP_WINDOW, CONF_C(dedup.window) },
	{ "dedup", "normalize_durations", 0, 1, CONF_DEFAULT_NORMALIZE_DURATIONS,
	  CONF_C(dedup.normalize_durations) },
	/* rate 0: unlimited */
	{ "provider", "rate", 0, 1000, CONF_DEFAULT_RATE, CONF_P(rate) },
	{ "provider", "burst", 1, 1000, CONF_DEFAULT_BURST, CONF_P(burst) },
	/* Slack takes at most 100 attachments */
	{ "provider", "batch_max", 1, 100, CONF_DEFAULT_BATCH_MAX, CONF_P(batch_max) },
	{ "provider", "timeout", 0.001, 3600, CONF_DEFAULT_TIMEOUT, CONF_P(timeout) },
	/* Slack truncates text at 40,000 characters */
	{ "provider", "max_text", 100, 40000, CONF_DEFAULT_MAX_TEXT, CONF_P(max_text) },
	/* slack-bot only: conf_type_keys */
	{ "provider", "threads", 0, 1, false, CONF_P(threads) },
	{ "provider", "thread_ttl", 1, CONF_MAX_INTERVAL, CONF_DEFAULT_THREAD_TTL,
	  CONF_P(thread_ttl) },
	{ "provider", "suspend", 0, 1, false, CONF_P(suspend) },
	{ "alert", "commit_status_updates", 0, 1, false, CONF_A(commit_status_updates) },
	{ "alert", "suspend", 0, 1, false, CONF_A(suspend) },
	/* notify = "changes" only: conf_alert_notify; repeat_interval 0 = never */
	{ "alert", "repeat_interval", 0, CONF_MAX_INTERVAL, 0, CONF_A(repeat_interval) },
	{ "alert", "incident_ttl", 1, CONF_MAX_INTERVAL, CONF_DEFAULT_INCIDENT_TTL,
	  CONF_A(incident_ttl) },
};
#define CONF_NSCALARS (sizeof(conf_scalars) / sizeof(conf_scalars[0]))
#undef CONF_C
#undef CONF_P
#undef CONF_A
#undef CONF_FIELD

/* One reported problem; seq keeps the sort by line stable. */
struct conf_problem {
	unsigned line;
	size_t seq;
	char *text;
};

/* State of one conf_load call. */
struct conf_ctx {
	const char *path;             /* as given by the caller */
	char *dir;                    /* absolute directory of the file */
	struct conf *c;               /* being filled; freed on any problem */
	struct conf_problem *probs;
	size_t nprobs, cap;
	bool skip_secrets;            /* CONF_SKIP_SECRETS */
	/* What loading each row of conf_scalars[] found, for checks across
	 * keys: 1 set, 0 absent, -1 reported (a provider's: the last entry's). */
	signed char scalar[CONF_NSCALARS];
};

/* The keys of each group that have their own code; its scalar keys come from
 * conf_scalars[]. */
static const char *const conf_root_keys[] = {
	"state_dir", "listen", "auth", "queue", "dedup", "log", "providers", "alerts", NULL
};
static const char *const conf_listen_keys[] = {
	"address", "tls_cert_file", "tls_key_file", "tls_client_ca_file", "metrics_address", NULL
};
static const char *const conf_auth_keys[] = {
	"hmac_key", "hmac_key_file", "hmac_key_env",
	"hmac_key_previous", "hmac_key_previous_file", "hmac_key_previous_env",
	"token", "token_file", "token_env", "clients", NULL
};
static const char *const conf_client_keys[] = {
	"name", "hmac_key", "hmac_key_file", "hmac_key_env",
	"hmac_key_previous", "hmac_key_previous_file", "hmac_key_previous_env",
	"token", "token_file", "token_env", NULL
};
/* More clients than this with an HMAC key and no token is a warning: every
 * request that no token identifies tries their keys in turn. */
#define CONF_HMAC_ONLY_CLIENTS_WARN 16
static const char *const conf_queue_keys[] = { "sync", NULL };
static const char *const conf_dedup_keys[] = { NULL };
static const char *const conf_log_keys[] = { "level", "format", NULL };
static const char *const conf_provider_keys[] = {
	"name", "type", "url", "url_file", "url_env", "token", "token_file", "token_env",
	"api_url", "channel", "username", "icon_emoji", "icon_url", "proxy", "ca_file",
	"address", "address_file", "address_env", "headers", "headers_file",
	"hmac_key", "hmac_key_file", "hmac_key_env", "format", NULL
};
static const char *const conf_alert_keys[] = {
	"name", "providers", "severity", "sources", "reasons", "include", "exclude",
	"metadata", "summary", "channel", "notify", "recovery_reasons",
	"title", "text", "links", "mention", NULL
};
static const char *const conf_source_keys[] = { "kind", "name", "namespace", "cluster", NULL };
static const char *const conf_link_keys[] = { "text", "url", NULL };

/* Keys that belong to some provider types only: the types' bits. */
#define CONF_T(t) (1u << (t))
#define CONF_T_MESSAGES (CONF_T(CONF_PROVIDER_SLACK) | CONF_T(CONF_PROVIDER_SLACK_BOT) | \
	CONF_T(CONF_PROVIDER_CONSOLE))
#define CONF_T_FORWARD (CONF_T(CONF_PROVIDER_GENERIC) | CONF_T(CONF_PROVIDER_GENERIC_HMAC))
#define CONF_WHY_THREADS "threads need Slack's Web API (type \"slack-bot\"): only " \
	"chat.postMessage returns the ts a reply or an update refers to"
static const struct {
	const char *key;
	unsigned types;
	const char *why;     /* appended to "not valid for type ...", or NULL */
} conf_type_keys[] = {
	{ "url", CONF_T(CONF_PROVIDER_SLACK), NULL },
	{ "url_file", CONF_T(CONF_PROVIDER_SLACK), NULL },
	{ "url_env", CONF_T(CONF_PROVIDER_SLACK), NULL },
	{ "token", CONF_T(CONF_PROVIDER_SLACK_BOT), NULL },
	{ "token_file", CONF_T(CONF_PROVIDER_SLACK_BOT), NULL },
	{ "token_env", CONF_T(CONF_PROVIDER_SLACK_BOT), NULL },
	{ "api_url", CONF_T(CONF_PROVIDER_SLACK_BOT), NULL },
	{ "threads", CONF_T(CONF_PROVIDER_SLACK_BOT), CONF_WHY_THREADS },
	{ "thread_ttl", CONF_T(CONF_PROVIDER_SLACK_BOT), CONF_WHY_THREADS },
	/* A forwarder sends the event as received: nothing of a message applies. */
	{ "channel", CONF_T_MESSAGES, NULL },
	{ "username", CONF_T_MESSAGES, NULL },
	{ "icon_emoji", CONF_T_MESSAGES, NULL },
	{ "icon_url", CONF_T_MESSAGES, NULL },
	{ "batch_max", CONF_T_MESSAGES, NULL },
	{ "max_text", CONF_T_MESSAGES, NULL },
	{ "format", CONF_T_MESSAGES, NULL },
	{ "address", CONF_T_FORWARD, NULL },
	{ "address_file", CONF_T_FORWARD, NULL },
	{ "address_env", CONF_T_FORWARD, NULL },
	{ "headers", CONF_T_FORWARD, NULL },
	{ "headers_file", CONF_T_FORWARD, NULL },
	{ "hmac_key", CONF_T(CONF_PROVIDER_GENERIC_HMAC), NULL },
	{ "hmac_key_file", CONF_T(CONF_PROVIDER_GENERIC_HMAC), NULL },
	{ "hmac_key_env", CONF_T(CONF_PROVIDER_GENERIC_HMAC), NULL },
};

static const char *const conf_type_names[] = {
	[CONF_PROVIDER_SLACK] = "slack",
	[CONF_PROVIDER_SLACK_BOT] = "slack-bot",
	[CONF_PROVIDER_CONSOLE] = "console",
	[CONF_PROVIDER_GENERIC] = "generic",
	[CONF_PROVIDER_GENERIC_HMAC] = "generic-hmac",
};
#define CONF_NTYPES (sizeof(conf_type_names) / sizeof(conf_type_names[0]))

/* ------------------------------------------------------------------------ */
/* Problems                                                                 */

static char *conf_resolve(const struct conf_ctx *x, const char *p);
/* Lists of named groups (providers, alerts, auth.clients): see below. */
typedef char *conf_entry_fn(struct conf_ctx *x, const config_setting_t *g, size_t i,
    const config_setting_t *const *entries, char *const *names);
static char *conf_entry_scope(const char *what, const config_setting_t *g, size_t i);
static void conf_entry_name(struct conf_ctx *x, const config_setting_t *g, const char *scope,
    size_t i, const config_setting_t *const *entries, char *const *names, char **dst);
static void conf_entries(struct conf_ctx *x, const config_setting_t *l, conf_entry_fn *fn);

/* Record a problem's line (0: none) and text (taken). */
static void
conf_add_problem(struct conf_ctx *x, unsigned line, char *text)
{
	if (x->nprobs == x->cap) {
		x->cap = x->cap ? 2 * x->cap : 16;
		x->probs = util_realloc(x->probs, x->cap * sizeof(*x->probs));
	}
	x->probs[x->nprobs] = (struct conf_problem){ line, x->nprobs, text };
	x->nprobs++;
}

static void conf_vreport(struct conf_ctx *x, const config_setting_t *at, const char *scope,
    const char *key, const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));
static void conf_report(struct conf_ctx *x, const config_setting_t *at, const char *scope,
    const char *key, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/*
 * Record "FILE:LINE: SCOPEKEY: message". at gives the file and line (the
 * file of an @include'd setting is the included one); scope ends with "." or
 * ": " and key may be NULL when the problem concerns the scope itself.
 */
static void
conf_vreport(struct conf_ctx *x, const config_setting_t *at, const char *scope,
    const char *key, const char *fmt, va_list ap)
{
	struct util_buf b = {0};
	const char *file = x->path;
	char *incl = NULL;
	unsigned line = 0;
	if (at != NULL) {
		file = config_setting_source_file(at);
		if (file == NULL || strcmp(file, x->path) == 0)
			file = x->path;
		else if (file[0] != '/')
			/* libconfig keeps an @include name as written; it was read from dir. */
			file = incl = conf_resolve(x, file);
		line = config_setting_source_line(at);
	}
	if (line > 0)
		util_buf_printf(&b, "%s:%u: ", file, line);
	else
		util_buf_printf(&b, "%s: ", file);
	free(incl);
	util_buf_puts(&b, scope ? scope : "");
	if (key != NULL)
		util_buf_printf(&b, "%s: ", key);
	char *msg = util_vprintf(fmt, ap);
	/* Quoted values and paths come from the file: one problem stays one line. */
	for (const char *m = msg; *m != '\0'; m++) {
		if ((unsigned char)*m < 0x20 || *m == 0x7f)
			util_buf_printf(&b, "\\x%02x", (unsigned char)*m);
		else
			util_buf_append(&b, m, 1);
	}
	free(msg);
	conf_add_problem(x, line, b.data);
}

static void
conf_report(struct conf_ctx *x, const config_setting_t *at, const char *scope,
    const char *key, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	conf_vreport(x, at, scope, key, fmt, ap);
	va_end(ap);
}

static int
conf_problem_cmp(const void *a, const void *b)
{
	const struct conf_problem *p = a, *q = b;
	if (p->line != q->line)
		return p->line < q->line ? -1 : 1;
	return p->seq < q->seq ? -1 : p->seq > q->seq;
}

/* All problems, sorted by line, one per '\n'-terminated line; new string. */
static char *
conf_problems_text(struct conf_ctx *x)
{
	struct util_buf b = {0};
	qsort(x->probs, x->nprobs, sizeof(*x->probs), conf_problem_cmp);
	for (size_t i = 0; i < x->nprobs; i++) {
		util_buf_puts(&b, x->probs[i].text);
		util_buf_puts(&b, "\n");
	}
	return b.data;
}

/* Levenshtein distance for "did you mean"; SIZE_MAX for long strings. */
static size_t
conf_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), row[33];
	if (la > 32 || lb > 32)
		return SIZE_MAX;
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t v = diag + (a[i - 1] != b[j - 1]);
			if (up + 1 < v)
				v = up + 1;
			if (row[j - 1] + 1 < v)
				v = row[j - 1] + 1;
			row[j] = v;
			diag = up;
		}
	}
	return row[lb];
}

/* Keep key in *best when it is nearer to name than *best (*bestd: its distance). */
static void
conf_nearer(const char *name, const char *key, const char **best, size_t *bestd)
{
	size_t d = conf_distance(name, key);
	if (d < *bestd) {
		*bestd = d;
		*best = key;
	}
}

/*
 * The key of a group nearest to name (0 when it is one): one of known or of
 * section's rows of conf_scalars[] (section NULL: none). *bestd receives the
 * distance; NULL when the group has no key.
 */
static const char *
conf_nearest_key(const char *const *known, const char *section, const char *name,
    size_t *bestd)
{
	const char *best = NULL;
	*bestd = SIZE_MAX;
	for (size_t k = 0; known[k] != NULL; k++)
		conf_nearer(name, known[k], &best, bestd);
	for (size_t k = 0; section != NULL && k < CONF_NSCALARS; k++)
		if (strcmp(conf_scalars[k].section, section) == 0)
			conf_nearer(name, conf_scalars[k].key, &best, bestd);
	return best;
}

/*
 * Report every member of group g that is neither in known nor a scalar
 * setting of section, with a suggestion.
 */
static void
conf_check_keys(struct conf_ctx *x, const config_setting_t *g, const char *scope,
    const char *const *known, const char *section)
{
	int n = config_setting_length(g);
	for (int i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
		const char *name = config_setting_name(s);
		size_t bestd;
		if (name == NULL)
			continue;
		const char *best = conf_nearest_key(known, section, name, &bestd);
		if (bestd == 0)
			continue;
		if (best != NULL && bestd <= 2 && bestd < strlen(name))
			conf_report(x, s, scope, name, "unknown key (did you mean \"%s\"?)", best);
		else
			conf_report(x, s, scope, name, "unknown key");
	}
}

/* ------------------------------------------------------------------------ */
/* Typed getters: 1 = present and valid (*out set), 0 = absent, -1 = reported */

/* "1000", "0.001", "2.5": integral values without a fraction or exponent. */
static char *
conf_fmt_num(double v)
{
	if (v > -1e15 && v < 1e15 && (double)(long long)v == v)
		return util_printf("%lld", (long long)v);
	return util_printf("%g", v);
}

static int
conf_get_string(struct conf_ctx *x, const config_setting_t *g, const char *scope,
    const char *key, const char **out)
{
	const config_setting_t *s = config_setting_get_member(g, key);
	if (s == NULL)
		return 0;
	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		conf_report(x, s, scope, key, "must be a string");
		return -1;
	}
	const char *v = config_setting_get_string(s);
	if (*v == '\0') {
		conf_report(x, s, scope, key, "must not be empty");
		return -1;
	}
	*out = v;
	return 1;
}

/* A non-empty string copied into *dst (old value freed). */
static int
conf_copy_string(struct conf_ctx *x, const config_setting_t *g, const char *scope,
    const char *key, char **dst)
{
	const char *v = NULL;
	int r = conf_get_string(x, g, scope, key, &v);
	if (r == 1) {
		free(*dst);
		*dst = util_strdup(v);
	}
	return r;
}

/* The one wording of a value out of row r's bounds. */
static void
conf_report_range(struct conf_ctx *x, const config_setting_t *at, const char *scope,
    const struct conf_scalar *r)
{
	char *a = conf_fmt_num(r->min), *b = conf_fmt_num(r->max);
	conf_report(x, at, scope, r->key, "must be between %s and %s", a, b);
	free(a);
	free(b);
}

/*
 * The value of setting s for row r into dst (the field at r's offset): 1, or
 * -1 after reporting a value of the wrong type or out of bounds. Durations
 * and rates take integers and decimals alike (AUTOCONVERT).
 */
static int
conf_scalar_value(struct conf_ctx *x, const config_setting_t *s, const char *scope,
    const struct conf_scalar *r, void *dst)
{
	int t = config_setting_type(s);
	if (r->type == CONF_BOOL) {
		if (t != CONFIG_TYPE_BOOL) {
			conf_report(x, s, scope, r->key, "must be true or false");
			return -1;
		}
		*(bool *)dst = config_setting_get_bool(s) != 0;
		return 1;
	}
	if (r->type == CONF_DOUBLE) {
		if (!config_setting_is_number(s)) {
			conf_report(x, s, scope, r->key, "must be a number");
			return -1;
		}
		double v = config_setting_get_float(s);
		if (!(v >= r->min && v <= r->max)) {
			conf_report_range(x, s, scope, r);
			return -1;
		}
		*(double *)dst = v;
		return 1;
	}
	if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64) {
		conf_report(x, s, scope, r->key, "must be an integer");
		return -1;
	}
	long long v = config_setting_get_int64(s);
	if (v < (long long)r->min || v > (long long)r->max) {
		conf_report_range(x, s, scope, r);
		return -1;
	}
	if (r->type == CONF_INT)
		*(int *)dst = (int)v;
	else
		*(long *)dst = (long)v;
	return 1;
}

/*
 * Load every row of section from group g into base (a struct conf, or the
 * provider or alert being read), in table order: absent keys keep the
 * default. What each row found goes to x->scalar.
 */
static void
conf_scalars_load(struct conf_ctx *x, const config_setting_t *g, const char *scope,
    const char *section, void *base)
{
	for (size_t i = 0; i < CONF_NSCALARS; i++) {
		const struct conf_scalar *r = &conf_scalars[i];
		if (strcmp(r->section, section) != 0)
			continue;
		const config_setting_t *s = config_setting_get_member(g, r->key);
		x->scalar[i] = s == NULL ? 0 :
		    (signed char)conf_scalar_value(x, s, scope, r, (char *)base + r->offset);
	}
}

/* What loading section's key found (1 set, 0 absent, -1 reported). */
static int
conf_scalar_found(const struct conf_ctx *x, const char *section, const char *key)
{
	for (size_t i = 0; i < CONF_NSCALARS; i++)
		if (strcmp(conf_scalars[i].section, section) == 0 &&
		    strcmp(conf_scalars[i].key, key) == 0)
			return x->scalar[i];
	return 0;
}

/* The default of every scalar setting stored in base (a struct conf, conf_provider
 * or conf_alert, as kind says). */
static void
conf_scalar_defaults(enum conf_base kind, void *base)
{
	for (size_t i = 0; i < CONF_NSCALARS; i++) {
		const struct conf_scalar *r = &conf_scalars[i];
		void *dst = (char *)base + r->offset;
		if (r->base != kind)
			continue;
		switch (r->type) {
		case CONF_INT: *(int *)dst = (int)r->def; break;
		case CONF_LONG: *(long *)dst = (long)r->def; break;
		case CONF_DOUBLE: *(double *)dst = r->def; break;
		case CONF_BOOL: *(bool *)dst = r->def != 0; break;
		}
	}
}

/* A member that must be a group; NULL when absent or reported. */
static const config_setting_t *
conf_get_group(struct conf_ctx *x, const config_setting_t *g, const char *scope,
    const char *key)
{
	const config_setting_t *s = config_setting_get_member(g, key);
	if (s == NULL)
		return NULL;
	if (!config_setting_is_group(s)) {
		conf_report(x, s, scope, key, "must be a group { ... }");
		return NULL;
	}
	return s;
}

/*
 * A member that must be a list of groups "( { ... }, ... )"; an empty array
 * "[]" counts as an empty list. NULL when absent or reported.
 */
static const config_setting_t *
conf_get_group_list(struct conf_ctx *x, const config_setting_t *g, const char *scope,
    const char *key)
{
	const config_setting_t *s = config_setting_get_member(g, key);
	if (s == NULL)
		return NULL;
	if (config_setting_is_list(s) ||
	    (config_setting_is_array(s) && config_setting_length(s) == 0))
		return s;
	conf_report(x, s, scope, key, "must be a list of groups ( { ... }, ... )");
	return NULL;
}

static void
conf_strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/*
 * A list of non-empty strings, as an array [ ... ] or a list ( ... ).
 * Returns 1 with *out (new vector of copies, *n entries) when present and
 * valid, 0 when absent, -1 after reporting every bad element. An empty list
 * is reported unless allow_empty.
 */
static int
conf_get_strings(struct conf_ctx *x, const config_setting_t *g, const char *scope,
    const char *key, bool allow_empty, char ***out, size_t *n)
{
	const config_setting_t *s = config_setting_get_member(g, key);
	if (s == NULL)
		return 0;
	if (!config_setting_is_array(s) && !config_setting_is_list(s)) {
		conf_report(x, s, scope, key, "must be a list of strings [ \"...\", ... ]");
		return -1;
	}
	int len = config_setting_length(s);
	if (len == 0 && !allow_empty) {
		conf_report(x, s, scope, key, "must not be an empty list");
		return -1;
	}
	char **v = util_calloc((size_t)len, sizeof(*v));
	int bad = 0;
	for (int i = 0; i < len; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		char ekey[128];
		snprintf(ekey, sizeof(ekey), "%s[%d]", key, i);
		if (config_setting_type(e) != CONFIG_TYPE_STRING) {
			conf_report(x, e, scope, ekey, "must be a string");
			bad = 1;
		} else if (*config_setting_get_string(e) == '\0') {
			conf_report(x, e, scope, ekey, "must not be empty");
			bad = 1;
		} else {
			v[i] = util_strdup(config_setting_get_string(e));
		}
	}
	if (bad) {
		conf_strv_free(v, (size_t)len);
		return -1;
	}
	*out = v;
	*n = (size_t)len;
	return 1;
}

/* ------------------------------------------------------------------------ */
/* Paths and secrets                                                        */

/* Absolute directory of path (taken against the working directory). New string. */
static char *
conf_dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *d, *cwd = NULL, *abs;
	if (slash == NULL)
		d = util_strdup(".");
	else if (slash == path)
		d = util_strdup("/");
	else
		d = util_strndup(path, (size_t)(slash - path));
	if (d[0] == '/')
		return d;
	cwd = getcwd(NULL, 0);
	if (cwd == NULL)
		return d;   /* unreachable cwd: keep the relative directory */
	if (strcmp(d, ".") == 0)
		abs = util_strdup(cwd);
	else
		abs = util_printf("%s%s%s", cwd, strcmp(cwd, "/") == 0 ? "" : "/",
		    strncmp(d, "./", 2) == 0 ? d + 2 : d);
	free(cwd);
	free(d);
	return abs;
}

/* p taken against the config file's directory when relative. New string. */
static char *
conf_resolve(const struct conf_ctx *x, const char *p)
{
	if (p[0] == '/')
		return util_strdup(p);
	while (strncmp(p, "./", 2) == 0)
		p += 2;
	size_t n = strlen(x->dir);
	return util_printf("%s%s%s", x->dir, n > 0 && x->dir[n - 1] == '/' ? "" : "/", p);
}

/*
 * Expand ${VAR} references. Returns a new string, or NULL after reporting an
 * unset or empty variable or a malformed reference.
 */
static char *
conf_expand(struct conf_ctx *x, const config_setting_t *at, const char *scope,
    const char *key, const char *in)
{
	struct util_buf b = {0};
	util_buf_puts(&b, "");
	for (const char *p = in; *p != '\0';) {
		if (p[0] != '$' || p[1] != '{') {
			util_buf_append(&b, p, 1);
			p++;
			continue;
		}
		const char *name = p + 2, *end = strchr(name, '}');
		if (end == NULL) {
			conf_report(x, at, scope, key, "unterminated ${ reference");
			goto fail;
		}
		size_t n = (size_t)(end - name);
		int ok = n > 0 && !(name[0] >= '0' && name[0] <= '9');
		for (size_t i = 0; i < n && ok; i++)
			ok = name[i] == '_' || (name[i] >= '0' && name[i] <= '9') ||
			    ((name[i] | 0x20) >= 'a' && (name[i] | 0x20) <= 'z');
		if (!ok) {
			conf_report(x, at, scope, key, "invalid reference ${%.*s}", (int)n, name);
			goto fail;
		}
		char *var = util_strndup(name, n);
		const char *val = getenv(var);
		if (val == NULL || *val == '\0') {
			conf_report(x, at, scope, key, "environment variable %s is %s", var,
			    val == NULL ? "not set" : "empty");
			free(var);
			goto fail;
		}
		free(var);
		util_buf_puts(&b, val);
		p = end + 1;
	}
	return b.data;
fail:
	util_buf_free(&b);
	return NULL;
}

/*
 * A path setting: ${VAR} expanded when expand, made absolute. 1 with *out
 * (new string, old freed), 0 when absent, -1 when reported.
 */
static int
conf_get_path(struct conf_ctx *x, const config_setting_t *g, const char *scope,
    const char *key, bool expand, char **out)
{
	const char *v = NULL;
	int r = conf_get_string(x, g, scope, key, &v);
	if (r != 1)
		return r;
	char *e = expand ? conf_expand(x, config_setting_get_member(g, key), scope, key, v)
			 : util_strdup(v);
	if (e == NULL)
		return -1;
	free(*out);
	*out = conf_resolve(x, e);
	free(e);
	return 1;
}

/*
 * A file only the daemon reads (the TLS PEM files, a provider's ca_file and
 * headers_file): conf_get_path with ${VAR} expanded. Under CONF_SKIP_SECRETS
 * only its form is checked and 2 is returned with *out untouched: the
 * commands that load a config that way neither serve TLS nor send, and run
 * where the daemon's environment (CREDENTIALS_DIRECTORY) and files are not.
 */
static int
conf_get_daemon_file(struct conf_ctx *x, const config_setting_t *g, const char *scope,
    const char *key, char **out)
{
	if (x->skip_secrets) {
		const char *v = NULL;
		int r = conf_get_string(x, g, scope, key, &v);
		return r == 1 ? 2 : r;
	}
	return conf_get_path(x, g, scope, key, true, out);
}

/* A file the daemon will read later (TLS, CA bundle): report when it cannot. */
static int
conf_check_readable(struct conf_ctx *x, const config_setting_t *g, const char *scope,
    const char *key, const char *path)
{
	const config_setting_t *at = config_setting_get_member(g, key);
	struct stat st;
	/* Same wording as util_read_file, which reads the secret files. */
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		conf_report(x, at, scope, key, "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	int r = 0;
	if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		conf_report(x, at, scope, key, "cannot read %s: is a directory", path);
		r = -1;
	}
	close(fd);
	return r;
}

/* Overwrite a secret before freeing it. Accepts NULL. */
static void
conf_secret_free(void *p, size_t n)
{
	if (p == NULL)
		return;
	volatile unsigned char *v = p;
	for (size_t i = 0; i < n; i++)
		v[i] = 0;
	free(p);
}

static void
conf_secret_free_str(char *s)
{
	if (s != NULL)
		conf_secret_free(s, strlen(s));
}

/* The forms of a secret setting KEY, in this order. */
enum conf_secret_form { CONF_SECRET_INLINE, CONF_SECRET_FILE, CONF_SECRET_ENV };

/*
 * Which form of secret KEY g gives, with the names of all three in keys[]
 * ("KEY", "KEY_file", "KEY_env") and their settings in forms[]: the form's
 * index, -1 when none is given, -2 after reporting every form but the first
 * (in the file) when several are.
 */
static int
conf_secret_form(struct conf_ctx *x, const config_setting_t *g, const char *scope,
    const char *key, char keys[3][64], const config_setting_t *forms[3])
{
	int given = 0, first = -1;
	snprintf(keys[CONF_SECRET_INLINE], 64, "%s", key);
	snprintf(keys[CONF_SECRET_FILE], 64, "%s_file", key);
	snprintf(keys[CONF_SECRET_ENV], 64, "%s_env", key);
	for (int i = 0; i < 3; i++) {
		forms[i] = config_setting_get_member(g, keys[i]);
		if (forms[i] == NULL)
			continue;
		given++;
		if (first < 0 || config_setting_source_line(forms[i]) <
		    config_setting_source_line(forms[first]))
			first = i;
	}
	if (given <= 1)
		return first;
	for (int i = 0; i < 3; i++)
		if (forms[i] != NULL && i != first)
			conf_report(x, forms[i], scope, keys[i], "give only one of %s, %s or %s",
			    keys[0], keys[1], keys[2]);
	return -2;
}

/*
 * The secret in the file that setting kfile of g names (${VAR} expanded,
 * taken against the config's directory), trailing newlines stripped: new,
 * length in *n; NULL after reporting. stored (may be NULL): for a file whose
 * bytes end in a newline, also those bytes as stored (new, length in
 * *nstored); else left NULL.
 */
static char *
conf_secret_file(struct conf_ctx *x, const config_setting_t *g, const char *scope,
    const char *kfile, size_t *n, char **stored, size_t *nstored)
{
	const config_setting_t *at = config_setting_get_member(g, kfile);
	char *path = NULL, *data = NULL, err[512];
	if (conf_get_path(x, g, scope, kfile, true, &path) != 1)
		goto out;
	data = util_read_file(path, n, err, sizeof(err));
	if (data == NULL) {
		conf_report(x, at, scope, kfile, "%s", err);
		goto out;
	}
	if (stored != NULL && *n > 0 && data[*n - 1] == '\n') {
		*nstored = *n;
		*stored = util_malloc(*n + 1);
		memcpy(*stored, data, *n + 1);
	}
	while (*n > 0 && (data[*n - 1] == '\n' || data[*n - 1] == '\r'))
		data[--*n] = '\0';
	if (*n == 0) {
		conf_report(x, at, scope, kfile, "%s is empty", path);
		free(data);
		data = NULL;
		if (stored != NULL) {
			conf_secret_free(*stored, *nstored);
			*stored = NULL;
		}
	}
out:
	free(path);
	return data;
}

/* The secret in environment variable var (setting kenv): new, length in *n;
 * NULL after reporting an unset or empty one. */
static char *
conf_secret_env(struct conf_ctx *x, const config_setting_t *at, const char *scope,
    const char *kenv, const char *var, size_t *n)
{
	const char *e = getenv(var);
	if (e == NULL || *e == '\0') {
		conf_report(x, at, scope, kenv, "environment variable %s is %s", var,
		    e == NULL ? "not set" : "empty");
		return NULL;
	}
	*n = strlen(e);
	return util_strndup(e, *n);
}

/*
 * A secret given as KEY (inline), KEY_file (read, trailing newlines
 * stripped) or KEY_env (name of an environment variable). Returns 1 with
 * *out (new, NUL-terminated, length in *len) when given, 0 when absent, -1
 * after reporting, 2 when given as a file or variable but not read
 * (CONF_SKIP_SECRETS). Text secrets (binary false) may not contain NUL
 * bytes. raw (may be NULL): for a KEY_file whose bytes end in a newline,
 * also the bytes as stored (new, length in *rawlen); else left NULL.
 * Messages name keys, variables and files, never the value.
 */
static int
conf_get_secret(struct conf_ctx *x, const config_setting_t *g, const char *scope,
    const char *key, bool binary, char **out, size_t *len, char **raw, size_t *rawlen)
{
	char keys[3][64];
	const config_setting_t *forms[3];
	const char *v = NULL;
	char *data = NULL, *stored = NULL;
	size_t n = 0, nstored = 0;
	int form = conf_secret_form(x, g, scope, key, keys, forms);
	if (form < 0)
		return form == -1 ? 0 : -1;
	if (conf_get_string(x, g, scope, keys[form], &v) != 1)
		return -1;
	if (x->skip_secrets && form != CONF_SECRET_INLINE)
		return 2;   /* given, deliberately not read */
	if (form == CONF_SECRET_INLINE)
		data = util_strndup(v, n = strlen(v));
	else if (form == CONF_SECRET_FILE)
		data = conf_secret_file(x, g, scope, keys[form], &n, raw != NULL ? &stored : NULL,
		    &nstored);
	else
		data = conf_secret_env(x, forms[form], scope, keys[form], v, &n);
	if (data == NULL)
		return -1;
	if (!binary && memchr(data, '\0', n) != NULL) {
		conf_report(x, forms[form], scope, keys[form], "must not contain a NUL byte");
		conf_secret_free(data, n);
		conf_secret_free(stored, nstored);
		return -1;
	}
	*out = data;
	*len = n;
	if (stored != NULL) {
		*raw = stored;
		*rawlen = nstored;
	}
	return 1;
}

static int
conf_is_http_url(const char *s)
{
	return (strncmp(s, "http://", 7) == 0 && s[7] != '\0') ||
	    (strncmp(s, "https://", 8) == 0 && s[8] != '\0');
}

/* Provider and alert names: they appear in metrics labels and target keys. */
static int
conf_name_ok(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s; s++) {
		char ch = *s;
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.'))
			return 0;
	}
	return 1;
}

/* ------------------------------------------------------------------------ */
/* Sections                                                                 */

static char *
conf_default_state_dir(bool builtin)
{
	const char *sd = getenv("STATE_DIRECTORY");
	if (sd != NULL && *sd != '\0') {
		/* systemd joins several StateDirectory= entries with ':'; ours is the first. */
		const char *colon = strchr(sd, ':');
		return colon ? util_strndup(sd, (size_t)(colon - sd)) : util_strdup(sd);
	}
	if (builtin && geteuid() != 0)
		return util_strdup(CONF_DEFAULT_STATE_DIR_USER);
	return util_strdup(CONF_DEFAULT_STATE_DIR);
}

/* A numeric address into *ss (port 0); false when it is neither IPv4 nor IPv6. */
static bool
conf_parse_addr(const char *s, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, s, &((struct sockaddr_in *)ss)->sin_addr) == 1) {
		ss->ss_family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, s, &((struct sockaddr_in6 *)ss)->sin6_addr) == 1) {
		ss->ss_family = AF_INET6;
		return true;
	}
	return false;
}

static bool
conf_addr_unspecified(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
	return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

/* Would two listeners on a and b (same port) collide? Equal, or one is a wildcard. */
static bool
conf_addr_overlap(const char *a, const char *b)
{
	struct sockaddr_storage sa, sb;
	if (!conf_parse_addr(a, &sa) || !conf_parse_addr(b, &sb))
		return false;
	if (conf_addr_unspecified(&sa) || conf_addr_unspecified(&sb))
		return true;
	if (sa.ss_family != sb.ss_family)
		return false;
	if (sa.ss_family == AF_INET)
		return ((struct sockaddr_in *)&sa)->sin_addr.s_addr ==
		    ((struct sockaddr_in *)&sb)->sin_addr.s_addr;
	return memcmp(&((struct sockaddr_in6 *)&sa)->sin6_addr,
	    &((struct sockaddr_in6 *)&sb)->sin6_addr, sizeof(struct in6_addr)) == 0;
}

/* Listen's TLS file key (path) read: new, length in *n; NULL after reporting. */
static char *
conf_tls_read(struct conf_ctx *x, const config_setting_t *g, const char *scope,
    const char *key, const char *path, size_t *n)
{
	char err[512];
	char *data = util_read_file(path, n, err, sizeof(err));
	if (data == NULL)
		conf_report(x, config_setting_get_member(g, key), scope, key, "%s", err);
	return data;
}

/* The certificate chain in pem (tls_cert_file) parses: true, else reported. */
static bool
conf_tls_chain(struct conf_ctx *x, const config_setting_t *g, const char *scope,
    const char *pem, size_t n)
{
	gnutls_datum_t d = { (unsigned char *)pem, (unsigned)n };
	gnutls_x509_crt_t *crts = NULL;
	unsigned ncrts = 0;
	int rc = gnutls_x509_crt_list_import2(&crts, &ncrts, &d, GNUTLS_X509_FMT_PEM, 0);
	if (rc < 0)
		conf_report(x, config_setting_get_member(g, "tls_cert_file"), scope,
		    "tls_cert_file", "%s: cannot load the certificate chain: %s",
		    x->c->listen.tls_cert_file, gnutls_strerror(rc));
	for (unsigned i = 0; i < ncrts; i++)
		gnutls_x509_crt_deinit(crts[i]);
	gnutls_free(crts);
	return rc >= 0;
}

/* The private key in pem (tls_key_file) parses: true, else reported. */
static bool
conf_tls_key(struct conf_ctx *x, const config_setting_t *g, const char *scope,
    const char *pem, size_t n)
{
	gnutls_datum_t d = { (unsigned char *)pem, (unsigned)n };
	gnutls_x509_privkey_t pkey = NULL;
	int rc = gnutls_x509_privkey_init(&pkey);
	if (rc == 0)
		rc = gnutls_x509_privkey_import2(pkey, &d, GNUTLS_X509_FMT_PEM, NULL, 0);
	if (rc < 0)
		conf_report(x, config_setting_get_member(g, "tls_key_file"), scope,
		    "tls_key_file", "%s: cannot load the private key: %s",
		    x->c->listen.tls_key_file, gnutls_strerror(rc));
	if (pkey != NULL)
		gnutls_x509_privkey_deinit(pkey);
	return rc >= 0;
}

/* The key belongs to the certificate (both parse), else reported. */
static void
conf_tls_pair(struct conf_ctx *x, const config_setting_t *g, const char *scope,
    const char *cert, size_t ncert, const char *key, size_t nkey)
{
	gnutls_datum_t dc = { (unsigned char *)cert, (unsigned)ncert };
	gnutls_datum_t dk = { (unsigned char *)key, (unsigned)nkey };
	gnutls_certificate_credentials_t cred = NULL;
	int rc = gnutls_certificate_allocate_credentials(&cred);
	if (rc == 0)
		rc = gnutls_certificate_set_x509_key_mem2(cred, &dc, &dk, GNUTLS_X509_FMT_PEM,
		    NULL, 0);
	if (rc < 0)
		conf_report(x, config_setting_get_member(g, "tls_key_file"), scope,
		    "tls_key_file", "%s: does not go with the certificate in %s: %s",
		    x->c->listen.tls_key_file, x->c->listen.tls_cert_file, gnutls_strerror(rc));
	if (cred != NULL)
		gnutls_certificate_free_credentials(cred);
}

/* The client CA bundle (tls_client_ca_file) parses and holds a certificate. */
static void
conf_tls_client_ca(struct conf_ctx *x, const config_setting_t *g, const char *scope)
{
	const char *path = x->c->listen.tls_client_ca_file;
	const config_setting_t *at = config_setting_get_member(g, "tls_client_ca_file");
	size_t n = 0;
	char *ca = conf_tls_read(x, g, scope, "tls_client_ca_file", path, &n);
	if (ca == NULL)
		return;
	gnutls_certificate_credentials_t trust = NULL;
	gnutls_datum_t d = { (unsigned char *)ca, (unsigned)n };
	int rc = gnutls_certificate_allocate_credentials(&trust);
	if (rc == 0)
		rc = gnutls_certificate_set_x509_trust_mem(trust, &d, GNUTLS_X509_FMT_PEM);
	if (rc < 0)
		conf_report(x, at, scope, "tls_client_ca_file",
		    "%s: cannot load the CA certificates: %s", path, gnutls_strerror(rc));
	else if (rc == 0)
		conf_report(x, at, scope, "tls_client_ca_file",
		    "%s: cannot load the CA certificates: no PEM certificate in it", path);
	if (trust != NULL)
		gnutls_certificate_free_credentials(trust);
	free(ca);
}

/*
 * Load the TLS files the way libmicrohttpd will at start
 * (gnutls_certificate_set_x509_key_mem2, gnutls_certificate_set_x509_trust_mem),
 * one step at a time so the problem names the file at fault with GnuTLS's
 * reason: the certificate chain parses, the key parses, the key belongs to the
 * certificate, the client CA bundle parses and holds a certificate. A broken
 * file is a configuration error (exit 78), not a server that fails to start.
 */
static void
conf_check_tls(struct conf_ctx *x, const config_setting_t *g, const char *scope)
{
	const struct conf *c = x->c;
	size_t ncert = 0, nkey = 0;
	char *cert = conf_tls_read(x, g, scope, "tls_cert_file", c->listen.tls_cert_file, &ncert);
	bool cert_ok = cert != NULL && conf_tls_chain(x, g, scope, cert, ncert);
	char *key = conf_tls_read(x, g, scope, "tls_key_file", c->listen.tls_key_file, &nkey);
	bool key_ok = key != NULL && conf_tls_key(x, g, scope, key, nkey);
	if (cert_ok && key_ok)
		conf_tls_pair(x, g, scope, cert, ncert, key, nkey);
	if (c->listen.tls_client_ca_file != NULL)
		conf_tls_client_ca(x, g, scope);
	free(cert);
	conf_secret_free(key, nkey);
}

/* listen.metrics_address / metrics_port: both or neither, not the main listener's. */
static void
conf_metrics_listener(struct conf_ctx *x, const config_setting_t *g, const char *scope)
{
	struct conf *c = x->c;
	const char *addr = NULL;
	bool addr_ok = false;
	int ra = conf_get_string(x, g, scope, "metrics_address", &addr);
	if (ra == 1) {
		struct sockaddr_storage ss;
		addr_ok = conf_parse_addr(addr, &ss);
		if (!addr_ok)
			conf_report(x, config_setting_get_member(g, "metrics_address"), scope,
			    "metrics_address",
			    "must be a numeric IPv4 or IPv6 address (\"127.0.0.1\", \"0.0.0.0\", \"::\")");
		free(c->listen.metrics_address);
		c->listen.metrics_address = util_strdup(addr);
	}
	int rp = conf_scalar_found(x, "listen", "metrics_port");
	if (ra != 0 && rp == 0)
		conf_report(x, config_setting_get_member(g, "metrics_address"), scope,
		    "metrics_address", "requires metrics_port");
	if (rp != 0 && ra == 0)
		conf_report(x, config_setting_get_member(g, "metrics_port"), scope, "metrics_port",
		    "requires metrics_address");
	/* Port 0 on both sides: two ports the kernel picks, never the same. */
	if (addr_ok && rp == 1 && c->listen.metrics_port != 0 &&
	    c->listen.metrics_port == c->listen.port &&
	    conf_addr_overlap(c->listen.metrics_address, c->listen.address))
		conf_report(x, config_setting_get_member(g, "metrics_port"), scope, "metrics_port",
		    "must not be the main listener's address and port (%s:%d)", c->listen.address,
		    c->listen.port);
}

static void
conf_listen(struct conf_ctx *x, const config_setting_t *root)
{
	static const char scope[] = "listen.";
	struct conf *c = x->c;
	const config_setting_t *g = conf_get_group(x, root, "", "listen");
	if (g == NULL)
		return;
	conf_check_keys(x, g, scope, conf_listen_keys, "listen");

	const char *addr = NULL;
	if (conf_get_string(x, g, scope, "address", &addr) == 1) {
		unsigned char buf[sizeof(struct in6_addr)];
		if (inet_pton(AF_INET, addr, buf) != 1 && inet_pton(AF_INET6, addr, buf) != 1)
			conf_report(x, config_setting_get_member(g, "address"), scope, "address",
			    "must be a numeric IPv4 or IPv6 address (\"127.0.0.1\", \"0.0.0.0\", \"::\")");
		free(c->listen.address);
		c->listen.address = util_strdup(addr);
	}
	conf_scalars_load(x, g, scope, "listen", c);

	size_t tls_probs = x->nprobs;
	int rc = conf_get_daemon_file(x, g, scope, "tls_cert_file", &c->listen.tls_cert_file);
	int rk = conf_get_daemon_file(x, g, scope, "tls_key_file", &c->listen.tls_key_file);
	int ra = conf_get_daemon_file(x, g, scope, "tls_client_ca_file",
	    &c->listen.tls_client_ca_file);
	if (rc == 1)
		conf_check_readable(x, g, scope, "tls_cert_file", c->listen.tls_cert_file);
	if (rk == 1)
		conf_check_readable(x, g, scope, "tls_key_file", c->listen.tls_key_file);
	if (ra == 1)
		conf_check_readable(x, g, scope, "tls_client_ca_file", c->listen.tls_client_ca_file);
	if (rc != 0 && rk == 0)
		conf_report(x, config_setting_get_member(g, "tls_cert_file"), scope,
		    "tls_cert_file", "requires tls_key_file");
	if (rk != 0 && rc == 0)
		conf_report(x, config_setting_get_member(g, "tls_key_file"), scope,
		    "tls_key_file", "requires tls_cert_file");
	if (ra != 0 && (rc == 0 || rk == 0))
		conf_report(x, config_setting_get_member(g, "tls_client_ca_file"), scope,
		    "tls_client_ca_file", "requires tls_cert_file and tls_key_file");
	/* Only files that passed every check above are parsed (the problems
	 * already reported say enough); rc and rk are 2, not 1, for commands
	 * that never serve. */
	if (rc == 1 && rk == 1 && x->nprobs == tls_probs)
		conf_check_tls(x, g, scope);
	conf_metrics_listener(x, g, scope);
}

static void
conf_client_clear(struct conf_client *cl)
{
	free(cl->name);
	conf_secret_free_str(cl->token);
	conf_secret_free(cl->hmac_key, cl->hmac_key_len);
	conf_secret_free(cl->hmac_key_raw, cl->hmac_key_raw_len);
	conf_secret_free(cl->hmac_key_previous, cl->hmac_key_previous_len);
	conf_secret_free(cl->hmac_key_previous_raw, cl->hmac_key_previous_raw_len);
}

/*
 * Client i of auth.clients (a conf_entry_fn): a name, and a token and/or an
 * HMAC key given as the top-level ones are.
 */
static char *
conf_client(struct conf_ctx *x, const config_setting_t *g, size_t i,
    const config_setting_t *const *entries, char *const *names)
{
	struct conf_client *cl = &x->c->auth.clients[i];
	char *scope = conf_entry_scope("auth.clients", g, i);
	char *s = NULL, *raw = NULL;
	size_t n = 0, nraw = 0;
	if (!config_setting_is_group(g)) {
		conf_report(x, g, scope, NULL, "must be a group { name = \"...\"; ... }");
		goto out;
	}
	conf_check_keys(x, g, scope, conf_client_keys, NULL);
	conf_entry_name(x, g, scope, i, entries, names, &cl->name);
	int rk = conf_get_secret(x, g, scope, "hmac_key", true, &s, &n, &raw, &nraw);
	if (rk == 1) {
		cl->hmac_key = (unsigned char *)s;
		cl->hmac_key_len = n;
		cl->hmac_key_raw = (unsigned char *)raw;
		cl->hmac_key_raw_len = nraw;
	}
	s = raw = NULL;
	int rp = conf_get_secret(x, g, scope, "hmac_key_previous", true, &s, &n, &raw, &nraw);
	if (rp == 1) {
		cl->hmac_key_previous = (unsigned char *)s;
		cl->hmac_key_previous_len = n;
		cl->hmac_key_previous_raw = (unsigned char *)raw;
		cl->hmac_key_previous_raw_len = nraw;
	}
	if (rp != 0 && rk == 0)
		conf_report(x, g, scope, "hmac_key_previous", "needs hmac_key (the new key)");
	s = NULL;
	int rt = conf_get_secret(x, g, scope, "token", false, &s, &n, NULL, NULL);
	if (rt == 1)
		cl->token = s;
	if (rk == 0 && rt == 0 && rp == 0)
		conf_report(x, g, scope, NULL, "needs a token (token, token_file or token_env) "
		    "or an HMAC key (hmac_key, hmac_key_file or hmac_key_env)");
out:
	free(scope);
	return cl->name;
}

/* auth.clients: each client's credentials name the cluster its events come from. */
static void
conf_auth_clients(struct conf_ctx *x, const config_setting_t *g)
{
	struct conf *c = x->c;
	const config_setting_t *l = conf_get_group_list(x, g, "auth.", "clients");
	if (l == NULL)
		return;
	c->auth.nclients = (size_t)config_setting_length(l);
	c->auth.clients = util_calloc(c->auth.nclients, sizeof(*c->auth.clients));
	conf_entries(x, l, conf_client);
	/* A token or key two clients share would always name the first. */
	for (size_t i = 0; i < c->auth.nclients; i++) {
		const struct conf_client *a = &c->auth.clients[i];
		const config_setting_t *e = config_setting_get_elem(l, (unsigned)i);
		char *scope = conf_entry_scope("auth.clients", e, i);
		for (size_t j = 0; j < i; j++) {
			const struct conf_client *b = &c->auth.clients[j];
			const char *bn = b->name ? b->name : "?";
			if (a->token != NULL && b->token != NULL && strcmp(a->token, b->token) == 0)
				conf_report(x, e, scope, NULL, "same token as client \"%s\"", bn);
			else if (a->token == NULL && b->token == NULL && a->hmac_key != NULL &&
			    b->hmac_key != NULL && a->hmac_key_len == b->hmac_key_len &&
			    memcmp(a->hmac_key, b->hmac_key, a->hmac_key_len) == 0)
				conf_report(x, e, scope, NULL, "same HMAC key as client \"%s\"", bn);
		}
		if (a->token != NULL && c->auth.token != NULL && strcmp(a->token, c->auth.token) == 0)
			conf_report(x, e, scope, NULL, "same token as auth.token");
		free(scope);
	}
	size_t hmac_only = 0;
	for (size_t i = 0; i < c->auth.nclients; i++) {
		const config_setting_t *e = config_setting_get_elem(l, (unsigned)i);
		if (!config_setting_is_group(e))
			continue;
		bool key = config_setting_get_member(e, "hmac_key") ||
		    config_setting_get_member(e, "hmac_key_file") ||
		    config_setting_get_member(e, "hmac_key_env");
		bool token = config_setting_get_member(e, "token") ||
		    config_setting_get_member(e, "token_file") ||
		    config_setting_get_member(e, "token_env");
		if (key && !token)
			hmac_only++;
	}
	if (hmac_only > CONF_HMAC_ONLY_CLIENTS_WARN) {
		char *w = util_printf("%s%s:%u: auth.clients: warning: %zu clients have an HMAC key "
		    "and no token: a request that no token identifies tries their keys one after "
		    "the other (more than %d slows every such request down; give them tokens)\n",
		    c->warnings ? c->warnings : "", x->path, config_setting_source_line(l), hmac_only,
		    CONF_HMAC_ONLY_CLIENTS_WARN);
		free(c->warnings);
		c->warnings = w;
	}
}

static void
conf_auth(struct conf_ctx *x, const config_setting_t *root)
{
	static const char scope[] = "auth.";
	struct conf *c = x->c;
	const config_setting_t *g = conf_get_group(x, root, "", "auth");
	char *s = NULL, *raw = NULL;
	size_t n = 0, nraw = 0;
	if (g == NULL)
		return;
	conf_check_keys(x, g, scope, conf_auth_keys, NULL);
	/* Flux signs with a Secret's bytes as stored, and `kubectl create secret
	 * --from-file` keeps a file's trailing newline: such a key is kept both
	 * ways (raw), or every event would get a silent 401. */
	if (conf_get_secret(x, g, scope, "hmac_key", true, &s, &n, &raw, &nraw) == 1) {
		c->auth.hmac_key = (unsigned char *)s;
		c->auth.hmac_key_len = n;
		c->auth.hmac_key_raw = (unsigned char *)raw;
		c->auth.hmac_key_raw_len = nraw;
	}
	s = raw = NULL;
	/* The key being rotated out: still accepted, so a rotation drops nothing. */
	if (conf_get_secret(x, g, scope, "hmac_key_previous", true, &s, &n, &raw, &nraw) == 1) {
		c->auth.hmac_key_previous = (unsigned char *)s;
		c->auth.hmac_key_previous_len = n;
		c->auth.hmac_key_previous_raw = (unsigned char *)raw;
		c->auth.hmac_key_previous_raw_len = nraw;
		if (c->auth.hmac_key == NULL)
			conf_report(x, g, scope, "hmac_key_previous", "needs hmac_key (the new key)");
	}
	s = NULL;
	if (conf_get_secret(x, g, scope, "token", false, &s, &n, NULL, NULL) == 1)
		c->auth.token = s;
	conf_auth_clients(x, g);
}

static void
conf_queue(struct conf_ctx *x, const config_setting_t *root)
{
	static const char scope[] = "queue.";
	struct conf *c = x->c;
	const config_setting_t *g = conf_get_group(x, root, "", "queue");
	const char *sync = NULL;
	if (g == NULL)
		return;
	conf_check_keys(x, g, scope, conf_queue_keys, "queue");
	if (conf_get_string(x, g, scope, "sync", &sync) == 1) {
		if (strcmp(sync, "full") == 0)
			c->queue.sync_full = true;
		else if (strcmp(sync, "normal") == 0)
			c->queue.sync_full = false;
		else
			conf_report(x, config_setting_get_member(g, "sync"), scope, "sync",
			    "must be \"full\" or \"normal\"");
	}
	conf_scalars_load(x, g, scope, "queue", c);
	int ri = conf_scalar_found(x, "queue", "backoff_initial");
	int rm = conf_scalar_found(x, "queue", "backoff_max");
	if (ri >= 0 && rm >= 0 && c->queue.backoff_max < c->queue.backoff_initial) {
		/* Blame the key the user wrote; with both written, backoff_max. */
		const char *key = rm == 1 ? "backoff_max" : "backoff_initial";
		const char *other = rm == 1 ? "backoff_initial" : "backoff_max";
		char *o = conf_fmt_num(rm == 1 ? c->queue.backoff_initial : c->queue.backoff_max);
		conf_report(x, config_setting_get_member(g, key), scope, key,
		    "must be %s %s (%s)", rm == 1 ? "at least" : "at most", other, o);
		free(o);
	}
}

static void
conf_dedup(struct conf_ctx *x, const config_setting_t *root)
{
	static const char scope[] = "dedup.";
	const config_setting_t *g = conf_get_group(x, root, "", "dedup");
	if (g == NULL)
		return;
	conf_check_keys(x, g, scope, conf_dedup_keys, "dedup");
	conf_scalars_load(x, g, scope, "dedup", x->c);
}

static void
conf_log(struct conf_ctx *x, const config_setting_t *root)
{
	static const char scope[] = "log.";
	const config_setting_t *g = conf_get_group(x, root, "", "log");
	const char *v = NULL;
	if (g == NULL)
		return;
	conf_check_keys(x, g, scope, conf_log_keys, NULL);
	if (conf_get_string(x, g, scope, "level", &v) == 1) {
		int l = log_level_parse(v);
		if (l < 0)
			conf_report(x, config_setting_get_member(g, "level"), scope, "level",
			    "must be one of debug, info, warn, error");
		else
			x->c->log.level = l;
	}
	if (conf_get_string(x, g, scope, "format", &v) == 1) {
		int f = log_format_parse(v);
		if (f < 0)
			conf_report(x, config_setting_get_member(g, "format"), scope, "format",
			    "must be \"logfmt\" or \"json\"");
		else
			x->c->log.format = f;
	}
}

/* ------------------------------------------------------------------------ */
/* Providers                                                                */

static void
conf_provider_defaults(struct conf_provider *p)
{
	p->type = CONF_PROVIDER_CONSOLE;
	conf_scalar_defaults(CONF_BASE_PROVIDER, p);
}

static void
conf_provider_clear(struct conf_provider *p)
{
	free(p->name);
	conf_secret_free_str(p->url);
	conf_secret_free_str(p->token);
	free(p->api_url);
	free(p->channel);
	free(p->username);
	free(p->icon_emoji);
	free(p->icon_url);
	free(p->proxy);
	free(p->ca_file);
	for (size_t i = 0; i < p->nheaders; i++) {
		free(p->headers[i].name);
		conf_secret_free_str(p->headers[i].value);
	}
	free(p->headers);
	conf_secret_free(p->hmac_key, p->hmac_key_len);
}

/* Scope of a list entry: `provider "NAME": ` when it has a usable name, else `provider #N: `. */
static char *
conf_entry_scope(const char *what, const config_setting_t *g, size_t i)
{
	const config_setting_t *n = config_setting_is_group(g)
	    ? config_setting_get_member(g, "name") : NULL;
	if (n != NULL && config_setting_type(n) == CONFIG_TYPE_STRING &&
	    conf_name_ok(config_setting_get_string(n)))
		return util_printf("%s \"%s\": ", what, config_setting_get_string(n));
	return util_printf("%s #%zu: ", what, i + 1);
}

/*
 * The name of list entry g (index i) into *dst: required, a valid name, and
 * unique among names[0..i) (entries without a valid name are NULL there).
 */
static void
conf_entry_name(struct conf_ctx *x, const config_setting_t *g, const char *scope, size_t i,
    const config_setting_t *const *entries, char *const *names, char **dst)
{
	const char *v = NULL;
	int r = conf_get_string(x, g, scope, "name", &v);
	if (r == 0) {
		conf_report(x, g, scope, "name", "required");
		return;
	}
	if (r < 0)
		return;
	const config_setting_t *at = config_setting_get_member(g, "name");
	if (!conf_name_ok(v)) {
		conf_report(x, at, scope, "name",
		    "must contain only letters, digits, '-', '_' and '.'");
		return;
	}
	for (size_t j = 0; j < i; j++) {
		if (names[j] != NULL && strcmp(names[j], v) == 0) {
			conf_report(x, at, scope, "name", "duplicate name (first defined on line %u)",
			    config_setting_source_line(entries[j]));
			return;
		}
	}
	*dst = util_strdup(v);
}

/*
 * One entry of a list of named groups (providers, alerts): fill entry i from
 * group g, defaults first, its name checked against names[0..i) (entries[]
 * gives their lines). Returns the entry's name (borrowed), NULL when it has
 * no valid one.
 */
typedef char *conf_entry_fn(struct conf_ctx *x, const config_setting_t *g, size_t i,
    const config_setting_t *const *entries, char *const *names);

/* Every entry of list l through fn, in order. */
static void
conf_entries(struct conf_ctx *x, const config_setting_t *l, conf_entry_fn *fn)
{
	size_t n = (size_t)config_setting_length(l);
	const config_setting_t **entries = util_calloc(n, sizeof(*entries));
	char **names = util_calloc(n, sizeof(*names));
	for (size_t i = 0; i < n; i++) {
		entries[i] = config_setting_get_elem(l, (unsigned)i);
		names[i] = fn(x, entries[i], i, entries, names);
	}
	free(entries);
	free(names);
}

/*
 * A provider's type into p->type: the index of its name in conf_type_names,
 * or -1 when absent or wrong (reported). Keys that belong to another type
 * are reported too.
 */
static int
conf_provider_type(struct conf_ctx *x, const config_setting_t *g, const char *scope,
    struct conf_provider *p)
{
	const char *t = NULL;
	int type = -1, r = conf_get_string(x, g, scope, "type", &t);
	if (r == 0)
		conf_report(x, g, scope, "type",
		    "required (slack, slack-bot, console, generic or generic-hmac)");
	if (r != 1)
		return -1;
	for (int k = 0; k < (int)CONF_NTYPES; k++)
		if (strcmp(t, conf_type_names[k]) == 0)
			type = k;
	if (type < 0) {
		conf_report(x, config_setting_get_member(g, "type"), scope, "type",
		    "must be one of slack, slack-bot, console, generic, generic-hmac");
		return -1;
	}
	p->type = (enum conf_provider_type)type;
	for (size_t k = 0; k < sizeof(conf_type_keys) / sizeof(conf_type_keys[0]); k++) {
		const config_setting_t *s = config_setting_get_member(g, conf_type_keys[k].key);
		if (s == NULL || (conf_type_keys[k].types & CONF_T(type)) != 0)
			continue;
		conf_report(x, s, scope, conf_type_keys[k].key, "not valid for type \"%s\"%s%s",
		    conf_type_names[type], conf_type_keys[k].why ? ": " : "",
		    conf_type_keys[k].why ? conf_type_keys[k].why : "");
	}
	return type;
}

/* A slack provider's webhook URL (url, url_file or url_env). */
static void
conf_provider_webhook(struct conf_ctx *x, const config_setting_t *g, const char *scope,
    struct conf_provider *p)
{
	size_t n;
	int r = conf_get_secret(x, g, scope, "url", false, &p->url, &n, NULL, NULL);
	if (r == 0) {
		conf_report(x, g, scope, "url", "required (url, url_file or url_env)");
	} else if (r == 1 && !conf_is_http_url(p->url)) {
		const char *k = config_setting_get_member(g, "url") ? "url"
		    : config_setting_get_member(g, "url_file") ? "url_file" : "url_env";
		conf_report(x, config_setting_get_member(g, k), scope, k,
		    "must start with http:// or https://");
	}
}

/* A slack-bot provider's token, api_url (no trailing '/') and required channel. */
static void
conf_provider_bot(struct conf_ctx *x, const config_setting_t *g, const char *scope,
    struct conf_provider *p)
{
	size_t n;
	if (conf_get_secret(x, g, scope, "token", false, &p->token, &n, NULL, NULL) == 0)
		conf_report(x, g, scope, "token", "required (token, token_file or token_env)");
	p->api_url = util_strdup(CONF_DEFAULT_API_URL);
	if (conf_copy_string(x, g, scope, "api_url", &p->api_url) == 1) {
		if (!conf_is_http_url(p->api_url))
			conf_report(x, config_setting_get_member(g, "api_url"), scope, "api_url",
			    "must start with http:// or https://");
		size_t len = strlen(p->api_url);
		while (len > 0 && p->api_url[len - 1] == '/')
			p->api_url[--len] = '\0';
	}
	if (config_setting_get_member(g, "channel") == NULL)
		conf_report(x, g, scope, "channel", "required for type \"slack-bot\"");
}

/* An HTTP header name: a token (RFC 9110 §5.6.2). */
static bool
conf_header_name_ok(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s; s++)
		if (!(isalnum((unsigned char)*s) || strchr("!#$%&'*+-.^_`|~", *s) != NULL))
			return false;
	return true;
}

/*
 * Add header name: value to p, or report why not (at, key: where it was
 * given). Headers that fluxrelay sets itself, or that would change how the
 * body is framed, are refused rather than silently replaced.
 */
static void
conf_header_add(struct conf_ctx *x, const config_setting_t *at, const char *scope,
    const char *key, struct conf_provider *p, const char *name, const char *value,
    size_t vlen)
{
	static const char *const reserved[] = {
		"Content-Type", "Content-Length", "Transfer-Encoding", "Host", "Expect",
		"X-Signature", NULL
	};
	if (!conf_header_name_ok(name)) {
		conf_report(x, at, scope, key, "\"%s\" is not a valid header name", name);
		return;
	}
	for (size_t i = 0; reserved[i] != NULL; i++) {
		if (strcasecmp(name, reserved[i]) == 0) {
			conf_report(x, at, scope, key, "header %s is set by fluxrelay", reserved[i]);
			return;
		}
	}
	for (size_t i = 0; i < p->nheaders; i++) {
		if (strcasecmp(p->headers[i].name, name) == 0) {
			conf_report(x, at, scope, key, "header %s given twice", name);
			return;
		}
	}
	for (size_t i = 0; i < vlen; i++) {
		unsigned char ch = (unsigned char)value[i];
		if (ch == '\r' || ch == '\n' || ch == '\0') {
			/* Never the value: it may be a credential. */
			conf_report(x, at, scope, key, "the value of header %s holds a line break "
			    "or NUL byte", name);
			return;
		}
	}
	p->headers = util_realloc(p->headers, (p->nheaders + 1) * sizeof(*p->headers));
	p->headers[p->nheaders].name = util_strdup(name);
	p->headers[p->nheaders].value = util_strndup(value, vlen);
	p->nheaders++;
}

/* headers = { Name = "value"; ... } */
static void
conf_provider_headers_group(struct conf_ctx *x, const config_setting_t *g, const char *scope,
    struct conf_provider *p)
{
	const config_setting_t *h = config_setting_get_member(g, "headers");
	if (h == NULL)
		return;
	if (!config_setting_is_group(h)) {
		conf_report(x, h, scope, "headers", "must be a group { Name = \"value\"; ... }");
		return;
	}
	for (int i = 0; i < config_setting_length(h); i++) {
		const config_setting_t *e = config_setting_get_elem(h, (unsigned)i);
		const char *name = config_setting_name(e);
		char *key = util_printf("headers.%s", name);
		if (config_setting_type(e) != CONFIG_TYPE_STRING)
			conf_report(x, e, scope, key, "must be a string");
		else
			conf_header_add(x, e, scope, key, p, name, config_setting_get_string(e),
			    strlen(config_setting_get_string(e)));
		free(key);
	}
}

/* headers_file: lines "Name: value" (blank lines and lines starting '#' skipped). */
static void
conf_provider_headers_file(struct conf_ctx *x, const config_setting_t *g, const char *scope,
    struct conf_provider *p)
{
	const config_setting_t *at = config_setting_get_member(g, "headers_file");
	char *path = NULL, *data = NULL, err[512];
	size_t n = 0;
	if (conf_get_daemon_file(x, g, scope, "headers_file", &path) != 1)
		goto out;
	data = util_read_file(path, &n, err, sizeof(err));
	if (data == NULL) {
		conf_report(x, at, scope, "headers_file", "%s", err);
		goto out;
	}
	unsigned lineno = 0;
	for (char *line = data, *end = data + n; line < end; ) {
		char *nl = memchr(line, '\n', (size_t)(end - line));
		size_t llen = nl ? (size_t)(nl - line) : (size_t)(end - line);
		lineno++;
		if (llen > 0 && line[llen - 1] == '\r')
			llen--;
		char *stop = line + llen;
		char *colon = memchr(line, ':', llen);
		char *k = line;
		while (k < stop && (*k == ' ' || *k == '\t'))
			k++;
		if (k == stop || *k == '#') {
			line = nl ? nl + 1 : end;
			continue;
		}
		char keybuf[64];
		snprintf(keybuf, sizeof(keybuf), "headers_file line %u", lineno);
		if (colon == NULL) {
			conf_report(x, at, scope, keybuf, "%s: expected \"Name: value\"", path);
		} else {
			char *ke = colon;
			while (ke > k && (ke[-1] == ' ' || ke[-1] == '\t'))
				ke--;
			char *name = util_strndup(k, (size_t)(ke - k));
			char *v = colon + 1;
			char *ve = stop;
			while (v < ve && (*v == ' ' || *v == '\t'))
				v++;
			while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
				ve--;
			conf_header_add(x, at, scope, keybuf, p, name, v, (size_t)(ve - v));
			free(name);
		}
		line = nl ? nl + 1 : end;
	}
out:
	if (data != NULL)
		conf_secret_free(data, n);
	free(path);
}

/*
 * A forwarding provider (generic, generic-hmac): address (address_file,
 * address_env), headers and headers_file, and for generic-hmac the key.
 */
static void
conf_provider_forward(struct conf_ctx *x, const config_setting_t *g, const char *scope,
    struct conf_provider *p)
{
	size_t n;
	int r = conf_get_secret(x, g, scope, "address", false, &p->url, &n, NULL, NULL);
	if (r == 0) {
		conf_report(x, g, scope, "address", "required (address, address_file or address_env)");
	} else if (r == 1 && !conf_is_http_url(p->url)) {
		const char *k = config_setting_get_member(g, "address") ? "address"
		    : config_setting_get_member(g, "address_file") ? "address_file" : "address_env";
		conf_report(x, config_setting_get_member(g, k), scope, k,
		    "must start with http:// or https://");
	}
	conf_provider_headers_group(x, g, scope, p);
	conf_provider_headers_file(x, g, scope, p);
	if (p->type != CONF_PROVIDER_GENERIC_HMAC)
		return;
	char *key = NULL, *raw = NULL;
	size_t nraw = 0;
	r = conf_get_secret(x, g, scope, "hmac_key", true, &key, &n, &raw, &nraw);
	if (r == 0) {
		conf_report(x, g, scope, "hmac_key", "required for type \"generic-hmac\" "
		    "(hmac_key, hmac_key_file or hmac_key_env)");
	} else if (r == 1) {
		/* Flux signs with the Secret's bytes as stored: a file's own
		 * trailing newline is part of the key here. */
		if (raw != NULL) {
			conf_secret_free(key, n);
			key = raw;
			n = nraw;
		}
		p->hmac_key = (unsigned char *)key;
		p->hmac_key_len = n;
	}
}

/* The layout of a provider's messages: "attachments" [default] or "blocks". */
static void
conf_provider_format(struct conf_ctx *x, const config_setting_t *g, const char *scope,
    struct conf_provider *p)
{
	const char *v = NULL;
	if (conf_get_string(x, g, scope, "format", &v) != 1)
		return;
	if (strcmp(v, "attachments") == 0)
		p->format = CONF_FORMAT_ATTACHMENTS;
	else if (strcmp(v, "blocks") == 0)
		p->format = CONF_FORMAT_BLOCKS;
	else
		conf_report(x, config_setting_get_member(g, "format"), scope, "format",
		    "must be \"attachments\" or \"blocks\"");
}

/* Provider i, from group g: a conf_entry_fn. */
static char *
conf_provider(struct conf_ctx *x, const config_setting_t *g, size_t i,
    const config_setting_t *const *entries, char *const *names)
{
	struct conf_provider *p = &x->c->providers[i];
	char *scope = conf_entry_scope("provider", g, i);
	conf_provider_defaults(p);

	if (!config_setting_is_group(g)) {
		conf_report(x, g, scope, NULL, "must be a group { ... }");
		goto out;
	}
	conf_check_keys(x, g, scope, conf_provider_keys, "provider");
	conf_entry_name(x, g, scope, i, entries, names, &p->name);
	int type = conf_provider_type(x, g, scope, p);
	if (type == CONF_PROVIDER_SLACK)
		conf_provider_webhook(x, g, scope, p);
	else if (type == CONF_PROVIDER_SLACK_BOT)
		conf_provider_bot(x, g, scope, p);
	else if (type == CONF_PROVIDER_GENERIC || type == CONF_PROVIDER_GENERIC_HMAC)
		conf_provider_forward(x, g, scope, p);
	conf_copy_string(x, g, scope, "channel", &p->channel);
	conf_copy_string(x, g, scope, "username", &p->username);
	int re = conf_copy_string(x, g, scope, "icon_emoji", &p->icon_emoji);
	int ru = conf_copy_string(x, g, scope, "icon_url", &p->icon_url);
	if (re != 0 && ru != 0)
		conf_report(x, config_setting_get_member(g, "icon_url"), scope, "icon_url",
		    "cannot be combined with icon_emoji");
	conf_scalars_load(x, g, scope, "provider", p);
	if (conf_provider_forwards(p))
		p->batch_max = 1;     /* never coalesced: one event, one request */
	conf_provider_format(x, g, scope, p);
	conf_copy_string(x, g, scope, "proxy", &p->proxy);
	if (conf_get_daemon_file(x, g, scope, "ca_file", &p->ca_file) == 1)
		conf_check_readable(x, g, scope, "ca_file", p->ca_file);
out:
	free(scope);
	return p->name;
}

static void
conf_providers(struct conf_ctx *x, const config_setting_t *root)
{
	const config_setting_t *l = conf_get_group_list(x, root, "", "providers");
	if (l == NULL)
		return;
	x->c->nproviders = (size_t)config_setting_length(l);
	x->c->providers = util_calloc(x->c->nproviders, sizeof(*x->c->providers));
	conf_entries(x, l, conf_provider);
}

/* ------------------------------------------------------------------------ */
/* Alerts                                                                   */

/* Mask of every severity at or above level. */
static unsigned
conf_severity_from(int level)
{
	unsigned m = 0;
	for (int s = level; s <= EVENT_ERROR; s++)
		m |= 1u << s;
	return m;
}

static void
conf_alert_severity(struct conf_ctx *x, const config_setting_t *g, const char *scope,
    struct conf_alert *a)
{
	const config_setting_t *s = config_setting_get_member(g, "severity");
	if (s == NULL)
		return;
	if (config_setting_type(s) == CONFIG_TYPE_STRING) {
		const char *v = config_setting_get_string(s);
		int l = event_severity_parse(v);
		if (l < 0)
			conf_report(x, s, scope, "severity",
			    "unknown severity \"%s\" (trace, info, warning, error)", v);
		else
			a->severity_mask = conf_severity_from(l);
		return;
	}
	char **v = NULL;
	size_t n = 0;
	if (!config_setting_is_array(s) && !config_setting_is_list(s)) {
		conf_report(x, s, scope, "severity",
		    "must be a severity \"...\" or a list of them [ \"...\", ... ]");
		return;
	}
	if (conf_get_strings(x, g, scope, "severity", false, &v, &n) != 1)
		return;
	unsigned m = 0;
	int bad = 0;
	for (size_t i = 0; i < n; i++) {
		int l = event_severity_parse(v[i]);
		if (l < 0) {
			char key[32];
			snprintf(key, sizeof(key), "severity[%zu]", i);
			conf_report(x, config_setting_get_elem(s, (unsigned)i), scope, key,
			    "unknown severity \"%s\" (trace, info, warning, error)", v[i]);
			bad = 1;
		} else {
			m |= 1u << l;
		}
	}
	if (!bad)
		a->severity_mask = m;
	conf_strv_free(v, n);
}

static void
conf_alert_providers(struct conf_ctx *x, const config_setting_t *g, const char *scope,
    struct conf_alert *a)
{
	int r = conf_get_strings(x, g, scope, "providers", false, &a->providers, &a->nproviders);
	if (r == 0)
		conf_report(x, g, scope, "providers", "required");
	if (r != 1)
		return;
	const config_setting_t *s = config_setting_get_member(g, "providers");
	a->provider_idx = util_calloc(a->nproviders, sizeof(*a->provider_idx));
	for (size_t i = 0; i < a->nproviders; i++) {
		char key[48];
		snprintf(key, sizeof(key), "providers[%zu]", i);
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		long idx = conf_provider_find(x->c, a->providers[i]);
		if (idx < 0) {
			conf_report(x, e, scope, key, "unknown provider \"%s\"", a->providers[i]);
			continue;
		}
		a->provider_idx[i] = (size_t)idx;
		for (size_t j = 0; j < i; j++)
			if (strcmp(a->providers[j], a->providers[i]) == 0) {
				conf_report(x, e, scope, key, "provider \"%s\" listed twice",
				    a->providers[i]);
				break;
			}
	}
}

static void
conf_alert_sources(struct conf_ctx *x, const config_setting_t *g, const char *scope,
    struct conf_alert *a)
{
	const config_setting_t *l = conf_get_group_list(x, g, scope, "sources");
	if (l == NULL) {
		if (config_setting_get_member(g, "sources") == NULL)
			conf_report(x, g, scope, "sources", "required");
		return;
	}
	size_t n = (size_t)config_setting_length(l);
	if (n == 0) {
		conf_report(x, l, scope, "sources", "must have at least one entry");
		return;
	}
	a->sources = util_calloc(n, sizeof(*a->sources));
	a->nsources = n;
	for (size_t i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(l, (unsigned)i);
		struct conf_source *src = &a->sources[i];
		char *sub = util_printf("%ssources[%zu].", scope, i);
		src->name = util_strdup("*");
		src->namespace = util_strdup("*");
		if (!config_setting_is_group(s)) {
			char key[48];
			snprintf(key, sizeof(key), "sources[%zu]", i);
			conf_report(x, s, scope, key, "must be a group { kind = \"...\"; ... }");
			free(sub);
			continue;
		}
		conf_check_keys(x, s, sub, conf_source_keys, NULL);
		if (conf_copy_string(x, s, sub, "kind", &src->kind) == 0)
			conf_report(x, s, sub, "kind", "required");
		conf_copy_string(x, s, sub, "name", &src->name);
		conf_copy_string(x, s, sub, "namespace", &src->namespace);
		conf_copy_string(x, s, sub, "cluster", &src->cluster);
		free(sub);
	}
}

/* Compile each pattern with PCRE2 (as rules does: PCRE2_UTF) and report errors. */
static void
conf_alert_regexes(struct conf_ctx *x, const config_setting_t *g, const char *scope,
    const char *key, bool allow_empty, char ***out, size_t *n)
{
	if (conf_get_strings(x, g, scope, key, allow_empty, out, n) != 1)
		return;
	const config_setting_t *s = config_setting_get_member(g, key);
	for (size_t i = 0; i < *n; i++) {
		int code;
		PCRE2_SIZE off;
		pcre2_code *re = pcre2_compile((PCRE2_SPTR)(*out)[i], PCRE2_ZERO_TERMINATED,
		    CONF_PCRE2_OPTIONS, &code, &off, NULL);
		if (re != NULL) {
			pcre2_code_free(re);
			continue;
		}
		PCRE2_UCHAR msg[256];
		if (pcre2_get_error_message(code, msg, sizeof(msg)) < 0)
			snprintf((char *)msg, sizeof(msg), "error %d", code);
		char ekey[48];
		snprintf(ekey, sizeof(ekey), "%s[%zu]", key, i);
		conf_report(x, config_setting_get_elem(s, (unsigned)i), scope, ekey,
		    "invalid regular expression at offset %zu: %s", (size_t)off, (char *)msg);
	}
}

static void
conf_alert_metadata(struct conf_ctx *x, const config_setting_t *g, const char *scope,
    struct conf_alert *a)
{
	const config_setting_t *m = conf_get_group(x, g, scope, "metadata");
	if (m == NULL)
		return;
	size_t n = (size_t)config_setting_length(m);
	a->metadata = util_calloc(n, sizeof(*a->metadata));
	for (size_t i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(m, (unsigned)i);
		if (config_setting_type(s) != CONFIG_TYPE_STRING) {
			char *key = util_printf("metadata.%s", config_setting_name(s));
			conf_report(x, s, scope, key, "must be a string");
			free(key);
			continue;
		}
		a->metadata[a->nmetadata].key = util_strdup(config_setting_name(s));
		a->metadata[a->nmetadata].value = util_strdup(config_setting_get_string(s));
		a->nmetadata++;
	}
}

/* The reasons of info events that close an incident when an alert names none
 * (helm-controller's RollbackSucceeded and UninstallSucceeded are not: it
 * emits them while a release is still failing). */
static const char *const conf_default_recovery_reasons[] = {
	"ReconciliationSucceeded", "Succeeded", "InstallSucceeded", "UpgradeSucceeded",
};

/*
 * An alert's notify, and what only notify = "changes" uses: repeat_interval,
 * incident_ttl and recovery_reasons are accepted (and checked) on any alert,
 * as fluxrelay.conf(5)'s example sets them, but act only with "changes";
 * the default recovery_reasons are filled in for those alone. After
 * conf_scalars_load.
 */
static void
conf_alert_notify(struct conf_ctx *x, const config_setting_t *g, const char *scope,
    struct conf_alert *a)
{
	const char *v = NULL;
	int rn = conf_get_string(x, g, scope, "notify", &v);
	if (rn == 1) {
		if (strcmp(v, "events") == 0) {
			a->notify = CONF_NOTIFY_EVENTS;
		} else if (strcmp(v, "changes") == 0) {
			a->notify = CONF_NOTIFY_CHANGES;
		} else {
			conf_report(x, config_setting_get_member(g, "notify"), scope, "notify",
			    "must be \"events\" or \"changes\"");
			rn = -1;
		}
	}
	int rr = conf_get_strings(x, g, scope, "recovery_reasons", false, &a->recovery_reasons,
	    &a->nrecovery_reasons);
	if (rn < 0 || a->notify != CONF_NOTIFY_CHANGES)
		return;
	if (rr == 0) {
		size_t n = sizeof(conf_default_recovery_reasons) /
		    sizeof(conf_default_recovery_reasons[0]);
		a->recovery_reasons = util_calloc(n, sizeof(*a->recovery_reasons));
		for (size_t i = 0; i < n; i++)
			a->recovery_reasons[i] = util_strdup(conf_default_recovery_reasons[i]);
		a->nrecovery_reasons = n;
	}
	/* Forwarders pass events on as received: they have no messages to
	 * open, remind or close. */
	for (size_t i = 0; a->provider_idx != NULL && i < a->nproviders; i++) {
		const struct conf_provider *p = &x->c->providers[a->provider_idx[i]];
		if (conf_provider_forwards(p))
			conf_report(x, config_setting_get_member(g, "notify"), scope, "notify",
			    "notify = \"changes\" cannot deliver to provider \"%s\" (type %s "
			    "forwards events as received)", p->name, conf_provider_type_name(p->type));
	}
}

/*
 * Compile the template at g's member key into *dst; a compile error is
 * reported as `SCOPE KEY: column N: problem` at the setting's line.
 * 1 compiled, 0 absent, -1 reported.
 */
static int
conf_template(struct conf_ctx *x, const config_setting_t *g, const char *scope,
    const char *key, unsigned flags, struct template **dst)
{
	const char *src = NULL;
	char err[256];
	int r = conf_get_string(x, g, scope, key, &src);
	if (r != 1)
		return r;
	*dst = template_compile(src, flags, err, sizeof(err));
	if (*dst == NULL) {
		conf_report(x, config_setting_get_member(g, key), scope, key, "%s", err);
		return -1;
	}
	return 1;
}

/*
 * An alert's links: a list of { text = "…"; url = "…"; } (url required),
 * each a template, at most CONF_MAX_LINKS.
 */
static void
conf_alert_links(struct conf_ctx *x, const config_setting_t *g, const char *scope,
    unsigned flags, struct conf_alert *a)
{
	const config_setting_t *l = conf_get_group_list(x, g, scope, "links");
	if (l == NULL)
		return;
	size_t n = (size_t)config_setting_length(l);
	if (n > CONF_MAX_LINKS) {
		conf_report(x, l, scope, "links", "must have at most %d entries", CONF_MAX_LINKS);
		return;
	}
	a->links = util_calloc(n ? n : 1, sizeof(*a->links));
	for (size_t i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(l, (unsigned)i);
		struct conf_link *k = &a->links[a->nlinks];
		char *sub = util_printf("%slinks[%zu].", scope, i);
		if (!config_setting_is_group(e)) {
			char key[48];
			snprintf(key, sizeof(key), "links[%zu]", i);
			conf_report(x, e, scope, key, "must be a group { text = \"...\"; url = \"...\"; }");
			free(sub);
			continue;
		}
		conf_check_keys(x, e, sub, conf_link_keys, NULL);
		if (config_setting_get_member(e, "url") == NULL)
			conf_report(x, e, sub, "url", "required");
		conf_template(x, e, sub, "url", flags | TEMPLATE_URL, &k->url);
		conf_template(x, e, sub, "text", flags, &k->text);
		if (k->url != NULL)
			a->nlinks++;
		else {
			template_free(k->text);
			k->text = NULL;
		}
		free(sub);
	}
}

/*
 * Whether s is literal Slack mention syntax: one or more of <!here>,
 * <!channel>, <!subteam^ID>, <@USER_ID> (each "<!" or "<@", no '<' or '>'
 * inside, "|label" allowed), separated by single spaces. A plain "@here"
 * notifies nobody: it is better refused at load than silently useless.
 */
static bool
conf_mention_ok(const char *s)
{
	while (*s != '\0') {
		if (s[0] != '<' || (s[1] != '!' && s[1] != '@') || s[2] == '>' || s[2] == '\0')
			return false;
		const char *p = s + 2;
		while (*p != '\0' && *p != '>' && *p != '<' && *p != ' ' &&
		    (unsigned char)*p >= 0x20 && *p != 0x7f)
			p++;
		if (*p != '>')
			return false;
		s = p + 1;
		if (*s == ' ' && s[1] != '\0')
			s++;
		else if (*s != '\0')
			return false;
	}
	return true;
}

/*
 * An alert's title, text, links and mention (SPEC §13). Templates of a
 * notify = "changes" alert may use .incident.* (TEMPLATE_INCIDENT); until
 * the incidents work (issue 13) adds notify, no alert may.
 */
static void
conf_alert_look(struct conf_ctx *x, const config_setting_t *g, const char *scope,
    struct conf_alert *a)
{
	unsigned flags = a->notify == CONF_NOTIFY_CHANGES ? TEMPLATE_INCIDENT : 0;
	conf_template(x, g, scope, "title", flags, &a->title);
	conf_template(x, g, scope, "text", flags, &a->text);
	conf_alert_links(x, g, scope, flags, a);
	if (conf_copy_string(x, g, scope, "mention", &a->mention) == 1 &&
	    !conf_mention_ok(a->mention))
		conf_report(x, config_setting_get_member(g, "mention"), scope, "mention",
		    "must be Slack mention syntax: <!here>, <!channel>, <!subteam^ID> or "
		    "<@USER_ID>, separated by spaces");
}

/* Alert i, from group g: a conf_entry_fn. */
static char *
conf_alert(struct conf_ctx *x, const config_setting_t *g, size_t i,
    const config_setting_t *const *entries, char *const *names)
{
	struct conf_alert *a = &x->c->alerts[i];
	char *scope = conf_entry_scope("alert", g, i);
	a->severity_mask = conf_severity_from(CONF_DEFAULT_SEVERITY);
	conf_scalar_defaults(CONF_BASE_ALERT, a);

	if (!config_setting_is_group(g)) {
		conf_report(x, g, scope, NULL, "must be a group { ... }");
		goto out;
	}
	conf_check_keys(x, g, scope, conf_alert_keys, "alert");
	conf_entry_name(x, g, scope, i, entries, names, &a->name);
	conf_alert_providers(x, g, scope, a);
	conf_alert_severity(x, g, scope, a);
	conf_alert_sources(x, g, scope, a);
	/* An empty filter list filters nothing, as when absent. */
	conf_get_strings(x, g, scope, "reasons", true, &a->reasons, &a->nreasons);
	conf_alert_regexes(x, g, scope, "include", true, &a->include, &a->ninclude);
	conf_alert_regexes(x, g, scope, "exclude", true, &a->exclude, &a->nexclude);
	conf_alert_metadata(x, g, scope, a);
	conf_copy_string(x, g, scope, "summary", &a->summary);
	conf_copy_string(x, g, scope, "channel", &a->channel);
	conf_scalars_load(x, g, scope, "alert", a);
	conf_alert_notify(x, g, scope, a);
	conf_alert_look(x, g, scope, a);
out:
	free(scope);
	return a->name;
}

static void
conf_alerts(struct conf_ctx *x, const config_setting_t *root)
{
	const config_setting_t *l = conf_get_group_list(x, root, "", "alerts");
	if (l == NULL)
		return;
	x->c->nalerts = (size_t)config_setting_length(l);
	x->c->alerts = util_calloc(x->c->nalerts, sizeof(*x->c->alerts));
	conf_entries(x, l, conf_alert);
}

static void
conf_alert_clear(struct conf_alert *a)
{
	free(a->name);
	conf_strv_free(a->providers, a->nproviders);
	free(a->provider_idx);
	for (size_t i = 0; i < a->nsources; i++) {
		free(a->sources[i].kind);
		free(a->sources[i].name);
		free(a->sources[i].namespace);
		free(a->sources[i].cluster);
	}
	free(a->sources);
	conf_strv_free(a->reasons, a->nreasons);
	conf_strv_free(a->include, a->ninclude);
	conf_strv_free(a->exclude, a->nexclude);
	for (size_t i = 0; i < a->nmetadata; i++) {
		free(a->metadata[i].key);
		free(a->metadata[i].value);
	}
	free(a->metadata);
	free(a->summary);
	free(a->channel);
	conf_strv_free(a->recovery_reasons, a->nrecovery_reasons);
	template_free(a->title);
	template_free(a->text);
	for (size_t i = 0; i < a->nlinks; i++) {
		template_free(a->links[i].text);
		template_free(a->links[i].url);
	}
	free(a->links);
	free(a->mention);
}

/* ------------------------------------------------------------------------ */
/* Entry points                                                             */

/* A conf with every default of fluxrelay.conf(5) and no providers or alerts. */
static struct conf *
conf_new_defaults(bool builtin)
{
	struct conf *c = util_calloc(1, sizeof(*c));
	c->builtin = builtin;
	c->state_dir = conf_default_state_dir(builtin);
	c->listen.address = util_strdup(CONF_DEFAULT_ADDRESS);
	conf_scalar_defaults(CONF_BASE_CONF, c);
	c->queue.sync_full = CONF_DEFAULT_SYNC_FULL;
	c->log.level = LOG_LEVEL_INFO;
	c->log.format = LOG_FORMAT_LOGFMT;
	return c;
}

/*
 * libconfig 1.5 opens an @include'd name as INCLUDE_DIR "/" NAME and hands
 * the stream to its flex scanner, which calls exit(2) ("input in flex scanner
 * failed") when a read fails, as it does for a directory ("@include \"\"" or a
 * directory's name); a FIFO would block the open. So before libconfig sees the
 * file, every line that libconfig's scanner would take as an include
 * (^[ \t]*@include[ \t]+"NAME", NAME with \\ and \" escapes) is checked:
 * the target must be a regular file when it exists (a missing one is left
 * to libconfig's own error). Included files are checked the same way, to
 * libconfig's depth limit of 10. Lines inside comments or strings are checked
 * too: at worst a commented-out include of a directory is reported.
 * Returns the number of problems reported.
 */
static int conf_check_includes(struct conf_ctx *x, const char *file, const char *shown,
    int depth);

/*
 * The file name of the line [p, end) when libconfig's scanner takes it as an
 * include (^[ \t]*@include[ \t]+"NAME", NAME with \\ and \" escapes): a new
 * string; else NULL.
 */
static char *
conf_include_name(const char *p, const char *end)
{
	struct util_buf name = {0};
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	if ((size_t)(end - p) <= 8 || memcmp(p, "@include", 8) != 0 ||
	    (p[8] != ' ' && p[8] != '\t'))
		return NULL;
	p += 8;
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	if (p == end || *p != '"')
		return NULL;
	util_buf_puts(&name, "");
	for (p++; p < end && *p != '"'; p++) {
		if (*p == '\\' && p + 1 < end && (p[1] == '\\' || p[1] == '"'))
			p++;
		util_buf_append(&name, p, 1);
	}
	return name.data;
}

/* One include (line of shown) of name: problems reported, as conf_check_includes. */
static int
conf_check_include(struct conf_ctx *x, const char *name, const char *shown, unsigned line,
    int depth)
{
	char *target = util_printf("%s/%s", x->dir, name);
	struct stat st;
	int bad = 0;
	if (stat(target, &st) == 0) {
		if (!S_ISREG(st.st_mode)) {
			conf_add_problem(x, line, util_printf("%s:%u: @include \"%s\": not a regular "
			    "file", shown, line, name));
			bad = 1;
		} else {
			bad = conf_check_includes(x, target, target, depth + 1);
		}
	}
	free(target);
	return bad;
}

/* conf_check_includes over text[0..len), the contents of shown. */
static int
conf_check_includes_text(struct conf_ctx *x, const char *text, size_t len, const char *shown,
    int depth)
{
	int bad = 0;
	unsigned line = 1;
	for (const char *p = text; p < text + len; line++) {
		const char *eol = memchr(p, '\n', (size_t)(text + len - p));
		const char *end = eol ? eol : text + len;
		char *name = conf_include_name(p, end);
		if (name != NULL)
			bad += conf_check_include(x, name, shown, line, depth);
		free(name);
		p = eol ? eol + 1 : end;
	}
	return bad;
}

static int
conf_check_includes(struct conf_ctx *x, const char *file, const char *shown, int depth)
{
	size_t len = 0;
	char err[512];
	char *text = util_read_file(file, &len, err, sizeof(err));
	if (text == NULL || depth > 10) {
		free(text);
		return 0;   /* libconfig reports unreadable files and deep nesting */
	}
	int bad = conf_check_includes_text(x, text, len, shown, depth);
	free(text);
	return bad;
}

/* libconfig's complaint about the file it could not read, as the one line of
 * conf_load's *errors (new string). */
static char *
conf_read_error(const struct conf_ctx *x, const config_t *cfg)
{
	const char *file = config_error_file(cfg);
	char *incl = NULL, *msg;
	if (file == NULL || strcmp(file, x->path) == 0)
		file = x->path;
	else if (file[0] != '/')
		file = incl = conf_resolve(x, file);   /* an @include'd file */
	if (config_error_type(cfg) == CONFIG_ERR_FILE_IO)
		msg = util_printf("%s: cannot open: %s\n", x->path, config_error_text(cfg));
	else if (strcmp(config_error_text(cfg), "syntax error") == 0)
		/* libconfig's generic text: do not print "syntax error: syntax error". */
		msg = util_printf("%s:%d: syntax error\n", file, config_error_line(cfg));
	else
		msg = util_printf("%s:%d: syntax error: %s\n", file, config_error_line(cfg),
		    config_error_text(cfg));
	free(incl);
	return msg;
}

/*
 * Whether s[0..n) is a setting name libconfig takes bare:
 * [A-Za-z*][-A-Za-z0-9_*]*, and not true or false (its booleans, any case).
 */
static bool
conf_bare_name(const char *s, size_t n)
{
	if (n == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '*'))
		return false;
	if ((n == 4 && strncasecmp(s, "true", 4) == 0) || (n == 5 && strncasecmp(s, "false", 5) == 0))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '*')
			return false;
	return true;
}

/*
 * libconfig refuses quoted setting names, which a header group invites:
 * headers = { "X-Team" = "platform"; }. A copy of text (len bytes) with the
 * quotes taken off such names: a string followed (after blanks or newlines)
 * by '=' or ':' can only be a setting name, and one that is a valid bare name loses its
 * quotes. Comments and every other string are kept as they are, and so is
 * every newline, so that errors keep their lines. NULL when nothing changes.
 * A quoted name that cannot be bare is a problem of its own in *bad (new
 * string, "LINE: NAME"; NULL returned): libconfig would say "syntax error"
 * and leak the string's buffer (libconfig 1.5).
 */
static char *
conf_unquote_names(const char *text, size_t len, char **bad)
{
	struct util_buf b = { 0 };
	size_t i = 0, run = 0;
	bool changed = false;

	while (i < len) {
		char c = text[i];
		if (c == '#' || (c == '/' && i + 1 < len && text[i + 1] == '/')) {
			while (i < len && text[i] != '\n')
				i++;
		} else if (c == '/' && i + 1 < len && text[i + 1] == '*') {
			const char *end = memmem(text + i + 2, len - i - 2, "*/", 2);
			i = end != NULL ? (size_t)(end - text) + 2 : len;
		} else if (c == '"') {
			size_t j = i + 1;
			bool escaped = false;
			while (j < len && text[j] != '"') {
				if (text[j] == '\\') {
					escaped = true;
					j++;
				}
				j++;
			}
			if (j >= len)
				break;   /* unterminated: libconfig says where */
			size_t k = j + 1;
			while (k < len && strchr(" \t\r\n", text[k]) != NULL)
				k++;
			if (k < len && (text[k] == '=' || text[k] == ':')) {
				if (escaped || !conf_bare_name(text + i + 1, j - i - 1)) {
					unsigned line = 1;
					for (size_t n = 0; n < i; n++)
						line += text[n] == '\n';
					char *name = util_strndup(text + i + 1, j - i - 1);
					for (char *ch = name; *ch; ch++)
						if ((unsigned char)*ch < 0x20 || *ch == 0x7f)
							*ch = '?';
					*bad = util_printf("%u: setting name \"%s\": only letters, digits, "
					    "'-', '_' and '*' (a header of another name goes in "
					    "headers_file)", line, name);
					free(name);
					util_buf_free(&b);
					return NULL;
				}
				util_buf_append(&b, text + run, i - run);
				util_buf_append(&b, text + i + 1, j - i - 1);
				run = j + 1;
				changed = true;
			}
			i = j + 1;
		} else {
			i++;
		}
	}
	if (!changed) {
		util_buf_free(&b);
		return NULL;
	}
	util_buf_append(&b, text + run, len - run);
	return b.data;
}

/*
 * The main file into cfg, read once: as it is, or with its quoted setting
 * names unquoted (conf_unquote_names) from a copy; @include'd files as they are.
 */
static int
conf_read(config_t *cfg, const char *path, const char *text, size_t len, char **problem)
{
	char *bad = NULL;
	bool whole = text != NULL && memchr(text, '\0', len) == NULL;
	char *fixed = whole ? conf_unquote_names(text, len, &bad) : NULL;
	int rc;
	if (bad != NULL) {
		*problem = util_printf("%s:%s\n", path, bad);
		free(bad);
		rc = CONFIG_FALSE;
	} else if (whole) {
		rc = config_read_string(cfg, fixed != NULL ? fixed : text);
	} else if (text != NULL) {
		/* Not a text file; said from the text read, as a pipe has no more. */
		const char *nul = memchr(text, '\0', len);
		unsigned line = 1;
		for (const char *p = text; p < nul; p++)
			line += *p == '\n';
		*problem = util_printf("%s:%u: syntax error: NUL byte\n", path, line);
		rc = CONFIG_FALSE;
	} else {
		rc = config_read_file(cfg, path);   /* it says why it cannot */
	}
	free(fixed);
	return rc;
}

struct conf *
conf_load(const char *path, char **errors)
{
	return conf_load_opts(path, 0, errors);
}

struct conf *
conf_load_opts(const char *path, unsigned flags, char **errors)
{
	struct conf_ctx x = { .path = path, .skip_secrets = (flags & CONF_SKIP_SECRETS) != 0 };
	struct conf *ret = NULL;
	char *text = NULL;
	config_t cfg;
	struct stat st;

	*errors = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0 || S_ISDIR(st.st_mode)) {
		int e = fd < 0 ? errno : S_ISDIR(st.st_mode) ? EISDIR : errno;
		if (fd >= 0)
			close(fd);
		*errors = util_printf("%s: cannot open: %s\n", path, strerror(e));
		return NULL;
	}
	close(fd);

	x.dir = conf_dir_of(path);
	x.c = conf_new_defaults(false);
	config_init(&cfg);
	config_set_options(&cfg, CONFIG_OPTION_AUTOCONVERT);
	config_set_include_dir(&cfg, x.dir);
	/* Read once: a pipe (-c /dev/stdin, -c <(…)) has nothing left for a second read. */
	char rerr[256];
	size_t len = 0;
	text = util_read_file(path, &len, rerr, sizeof(rerr));
	if (text != NULL && conf_check_includes_text(&x, text, len, path, 0) > 0) {
		*errors = conf_problems_text(&x);
		goto out;
	}
	char *problem = NULL;
	if (conf_read(&cfg, path, text, len, &problem) != CONFIG_TRUE) {
		*errors = problem != NULL ? problem : conf_read_error(&x, &cfg);
		goto out;
	}

	const config_setting_t *root = config_root_setting(&cfg);
	conf_check_keys(&x, root, "", conf_root_keys, NULL);
	/* Absent: the default from conf_new_defaults ($STATE_DIRECTORY, else /var/lib/fluxrelay). */
	conf_get_path(&x, root, "", "state_dir", false, &x.c->state_dir);
	conf_listen(&x, root);
	conf_auth(&x, root);
	conf_queue(&x, root);
	conf_dedup(&x, root);
	conf_log(&x, root);
	conf_providers(&x, root);
	conf_alerts(&x, root);

	if (x.nprobs > 0) {
		*errors = conf_problems_text(&x);
		goto out;
	}
	x.c->path = util_strdup(path);
	ret = x.c;
	x.c = NULL;
out:
	free(text);
	config_destroy(&cfg);
	for (size_t i = 0; i < x.nprobs; i++)
		free(x.probs[i].text);
	free(x.probs);
	free(x.dir);
	conf_free(x.c);
	return ret;
}

struct conf *
conf_default(void)
{
	struct conf *c = conf_new_defaults(true);
	c->providers = util_calloc(1, sizeof(*c->providers));
	c->nproviders = 1;
	conf_provider_defaults(&c->providers[0]);
	c->providers[0].name = util_strdup("console");
	c->providers[0].type = CONF_PROVIDER_CONSOLE;

	c->alerts = util_calloc(1, sizeof(*c->alerts));
	c->nalerts = 1;
	struct conf_alert *a = &c->alerts[0];
	conf_scalar_defaults(CONF_BASE_ALERT, a);
	a->name = util_strdup("all");
	a->providers = util_calloc(1, sizeof(*a->providers));
	a->providers[0] = util_strdup("console");
	a->provider_idx = util_calloc(1, sizeof(*a->provider_idx));
	a->nproviders = 1;
	a->severity_mask = conf_severity_from(CONF_BUILTIN_SEVERITY);
	a->sources = util_calloc(1, sizeof(*a->sources));
	a->sources[0].kind = util_strdup("*");
	a->sources[0].name = util_strdup("*");
	a->sources[0].namespace = util_strdup("*");
	a->nsources = 1;
	return c;
}

void
conf_free(struct conf *c)
{
	if (c == NULL)
		return;
	free(c->path);
	free(c->state_dir);
	free(c->listen.address);
	free(c->listen.tls_cert_file);
	free(c->listen.tls_key_file);
	free(c->listen.tls_client_ca_file);
	free(c->listen.metrics_address);
	conf_secret_free(c->auth.hmac_key, c->auth.hmac_key_len);
	conf_secret_free(c->auth.hmac_key_previous, c->auth.hmac_key_previous_len);
	conf_secret_free(c->auth.hmac_key_raw, c->auth.hmac_key_raw_len);
	conf_secret_free(c->auth.hmac_key_previous_raw, c->auth.hmac_key_previous_raw_len);
	conf_secret_free_str(c->auth.token);
	for (size_t i = 0; i < c->auth.nclients; i++)
		conf_client_clear(&c->auth.clients[i]);
	free(c->auth.clients);
	free(c->warnings);
	for (size_t i = 0; i < c->nproviders; i++)
		conf_provider_clear(&c->providers[i]);
	free(c->providers);
	for (size_t i = 0; i < c->nalerts; i++)
		conf_alert_clear(&c->alerts[i]);
	free(c->alerts);
	free(c);
}

long
conf_provider_find(const struct conf *c, const char *name)
{
	for (size_t i = 0; i < c->nproviders; i++)
		if (c->providers[i].name != NULL && strcmp(c->providers[i].name, name) == 0)
			return (long)i;
	return -1;
}

const char *
conf_provider_type_name(enum conf_provider_type t)
{
	if ((unsigned)t < sizeof(conf_type_names) / sizeof(conf_type_names[0]))
		return conf_type_names[t];
	return "unknown";
}
