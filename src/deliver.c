/*
 * deliver: the delivery thread (SPEC §8). One thread owns its own queue
 * connection and one curl multi handle; it turns pending rows into Slack
 * messages and the answers into queue transitions.
 *
 * Per target (provider + channel):
 *  - strict FIFO: the rows go out in id order; a head that is deferred
 *    (next_attempt_at in the future) holds the rows behind it;
 *  - at most one request in flight, so order survives failures; different
 *    targets have requests in flight at the same time on the multi handle, so
 *    one slow or broken webhook never delays another;
 *  - a token bucket (provider rate and burst; rate 0 = unlimited);
 *  - coalescing: the due rows at the head (up to batch_max, at most
 *    SLACK_MAX_ATTACHMENTS) go out as one message.
 * The console provider has no pacing and no coalescing: each row is printed
 * as one JSON line on standard output and acknowledged.
 *
 * When the thread looks at the database: after deliver_wake (the writer
 * committed rows), when the earliest known deadline (backoff, Retry-After,
 * token bucket) passes, and at least once a second, so rows changed by
 * `fluxrelay queue retry` in another process are picked up quickly. Scans
 * caused by wake-ups are spaced by four times the last scan's duration, so a
 * flood of commits cannot keep the thread scanning. When an attempt
 * finishes, only its own target is looked at again (one indexed query), at
 * once.
 *
 * Outcomes: the delivery thread never writes the database. Each outcome
 * (delivered, deferred, dead) is a note for the recorder thread
 * (deliver_record.h), which writes it; rows are read as the notes say they
 * are (deliver_record_head), so a delivered row is not read back as pending,
 * a deferred one waits its backoff, counted attempts stay counted.
 *
 * Threads: deliver_start, deliver_set_conf and deliver_stop are called from
 * the main thread, deliver_wake from any thread. Everything else runs on the
 * delivery thread. The configuration is handed over under d->lock with a
 * generation number; the thread copies what an attempt in
 * flight needs (provider name, type, secrets to redact), so an old
 * configuration is not touched once the swap is acknowledged.
 *
 * Secrets: webhook URLs and tokens go to libcurl only; they are never logged
 * (targets are named "provider" or "provider #channel"), and any response
 * text that is logged or stored has them redacted (a receiver may echo the
 * request).
 */
#include "config.h"
#include "deliver.h"

#include <curl/curl.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "backoff.h"
#include "deliver_record.h"
#include "event.h"
#include "forward.h"
#include "incident.h"
#include "log.h"
#include "metrics.h"
#include "queue.h"
#include "rules.h"
#include "slack.h"
#include "slack_look.h"
#include "thread.h"
#include "util.h"

/* Longest response body kept for classification (Slack's answers are tiny). */
#define DELIVER_BODY_MAX (64 * 1024)
/* Longest gap between two looks at the database. */
#define DELIVER_SCAN_INTERVAL 1.0
/* Longest Retry-After honoured (SPEC §8; also at most queue.max_age). */
#define DELIVER_RETRY_AFTER_MAX 3600.0
/* Rows printed per pass for the console provider. */
#define DELIVER_CONSOLE_BATCH 100
/* Rows examined per pass for a provider that no longer exists. */
#define DELIVER_ORPHAN_BATCH 100
/* A target without pending rows is forgotten after this long (seconds). */
#define DELIVER_TARGET_IDLE 60.0
/* Shortest gap between two live counts of one parent (SPEC §12: chat.update is Tier 3). */
#define DELIVER_COUNT_EVERY 60.0
/* How often an idle threaded target is looked at for live counts (seconds). */
#define DELIVER_COUNT_LOOK 5.0

/*
 * What an attempt is (SPEC §12). A plain message is one request; a row of a
 * threaded target (slack-bot, threads = true) is a top-level message that
 * becomes its thread's parent, a reply, or a recovery: chat.update of the
 * parent and then a reply (or, when the parent cannot be edited, a new
 * top-level message). A live count is a chat.update without rows.
 */
enum deliver_step {
	DELIVER_STEP_SEND,            /* no thread involved */
	DELIVER_STEP_PARENT,          /* top-level; its handle is stored */
	DELIVER_STEP_TOP,             /* top-level, not a parent (a recovery); the handle ends */
	DELIVER_STEP_REPLY,           /* in the thread; the thread's last_at moves */
	DELIVER_STEP_UPDATE,          /* recovery: chat.update of the parent, then RECOVERED */
	DELIVER_STEP_RECOVERED,       /* recovery: the reply after the update; the handle ends */
	DELIVER_STEP_COUNT,           /* live count: chat.update of the parent, no rows */
};

static const char *const deliver_step_names[] = {
	"send", "parent", "top-level", "reply", "update", "recovered", "count",
};

struct deliver_target {
	char *provider;
	char *channel;                /* "" when none */
	char *label;                  /* for logs: "provider" or "provider channel" */
	struct deliver_target *next;
	double last_seen;             /* monotonic time the queue last had rows for it */
	double blocked_until;         /* monotonic: head deferred until then (a hint) */

	/* Token bucket on the monotonic clock; stamp may lie in the future
	 * after a Retry-After, meaning "nothing before then". */
	double tokens;
	double stamp;

	/* Rows up to this id go one per message: a coalesced message of them was
	 * refused as too large or invalid (SPEC §8). */
	int64_t single_through;
	/* Rows at its head last found hidden by notes (deliver_record_head). */
	size_t hidden_hint;

	/* The attempt in flight (busy) and what its completion needs. */
	CURL *easy;                   /* kept between attempts */
	bool busy;
	enum conf_provider_type type;
	char **secrets;               /* of its provider, redacted from answers */
	struct queue_row *rows;       /* the rows in the message, id order */
	size_t nrows;
	char *payload;
	size_t payload_len;           /* forwarding: the event's bytes; 0 = strlen(payload) */
	char *component;              /* forwarding: Gotk-Component (reportingController) */
	bool ratelimit_reset;         /* the answer carried X-RateLimit-Reset */
	struct curl_slist *headers;
	struct util_buf body;         /* response body, at most DELIVER_BODY_MAX */
	char retry_after[128];
	char errbuf[CURL_ERROR_SIZE];
	double started;               /* monotonic */

	/* Threads (SPEC §12): what the attempt is; a recovery's next payloads;
	 * the thread's handle for replies, updates and counts. */
	enum deliver_step step;
	char *reply_payload;          /* STEP_UPDATE: the reply that follows */
	char *top_payload;            /* STEP_UPDATE: the message when the parent cannot be edited */
	struct deliver_thread handle;
	char *count_key;              /* STEP_COUNT: the thread key */
	double count_after;           /* monotonic: next look for live counts */
};

struct deliver {
	CURLM *multi;
	pthread_t thread;
	atomic_bool stopping;
	atomic_bool dirty;            /* the database may hold new due rows */

	/* Configuration hand-over: next_conf, gen_req, gen_done, exited are
	 * guarded by lock; cond signals gen_done changes. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	const struct conf *next_conf;
	unsigned long gen_req;
	unsigned long gen_done;
	bool exited;

	/* Delivery thread only. */
	const struct conf *conf;
	struct queue *q;              /* reads only */
	struct deliver_parent *parents;   /* Block Kit parents, newest first (deliver_parent_keep) */
	size_t nparents, parent_bytes;
	struct deliver_target *targets;
	size_t inflight;
	double next_due;              /* monotonic: earliest reason to look again */
	double scan_after;            /* monotonic: earliest wake-triggered scan */
	uint64_t rng;

	struct deliver_record *rec;   /* outcomes go there (any call: delivery thread) */
};

/* ------------------------------------------------------------------ helpers */

/* xorshift64*: jitter only needs to spread retries, not to be unpredictable. */
static double
deliver_random(struct deliver *d)
{
	uint64_t x = d->rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	d->rng = x;
	return (double)((x * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

static const struct conf_provider *
deliver_provider(const struct deliver *d, const char *name)
{
	long i = conf_provider_find(d->conf, name);
	return i < 0 ? NULL : &d->conf->providers[i];
}

/* Comma-separated event ids of rows (new string, caller frees). */
static char *
deliver_event_ids(const struct queue_row *rows, size_t n)
{
	struct util_buf b = {0};
	for (size_t i = 0; i < n; i++) {
		if (i)
			util_buf_puts(&b, ",");
		util_buf_puts(&b, rows[i].event_id);
	}
	if (b.data == NULL)
		return util_strdup("");
	return b.data;
}

/* Comma-separated delivery ids (new string, caller frees). */
static char *
deliver_row_ids(const struct queue_row *rows, size_t n)
{
	struct util_buf b = {0};
	for (size_t i = 0; i < n; i++)
		util_buf_printf(&b, "%s%lld", i ? "," : "", (long long)rows[i].id);
	if (b.data == NULL)
		return util_strdup("");
	return b.data;
}

/*
 * One log record for an outcome concerning rows of target t. attempts is the
 * count after this outcome; error and extra (key, value) may be NULL.
 */
static void
deliver_log(enum log_level level, const char *msg, const struct deliver_target *t,
    const struct queue_row *rows, size_t n, int attempts, const char *error,
    const char *key, const char *value)
{
	if (!log_enabled(level))
		return;
	char *eids = deliver_event_ids(rows, n);
	char *dids = deliver_row_ids(rows, n);
	char nbuf[32], abuf[32];
	snprintf(nbuf, sizeof(nbuf), "%zu", n);
	snprintf(abuf, sizeof(abuf), "%d", attempts);
	if (error != NULL)
		log_msg(level, msg, "event_id", eids, "delivery_id", dids, "target", t->label,
		    "provider", t->provider, "events", nbuf, "attempts", abuf, "error", error,
		    key, value, NULL);
	else
		log_msg(level, msg, "event_id", eids, "delivery_id", dids, "target", t->label,
		    "provider", t->provider, "events", nbuf, "attempts", abuf, key, value, NULL);
	free(eids);
	free(dids);
}

/* ------------------------------------------------------------ target table */

static struct deliver_target *
deliver_target_get(struct deliver *d, const char *provider, const char *channel)
{
	for (struct deliver_target *t = d->targets; t; t = t->next)
		if (strcmp(t->provider, provider) == 0 && strcmp(t->channel, channel) == 0)
			return t;
	struct deliver_target *t = util_calloc(1, sizeof(*t));
	t->provider = util_strdup(provider);
	t->channel = util_strdup(channel);
	t->label = rules_target_label(provider, channel);
	t->stamp = util_mono();
	t->tokens = -1;               /* filled from the provider's burst on first use */
	t->next = d->targets;
	d->targets = t;
	return t;
}

/* Free what the attempt in flight holds (not the easy handle). */
static void
deliver_target_reset(struct deliver_target *t)
{
	queue_rows_free(t->rows, t->nrows);
	t->rows = NULL;
	t->nrows = 0;
	free(t->payload);
	t->payload = NULL;
	t->payload_len = 0;
	free(t->component);
	t->component = NULL;
	t->ratelimit_reset = false;
	curl_slist_free_all(t->headers);
	t->headers = NULL;
	util_buf_free(&t->body);
	t->retry_after[0] = '\0';
	t->errbuf[0] = '\0';
	slack_secrets_free(t->secrets);
	t->secrets = NULL;
	t->step = DELIVER_STEP_SEND;
	free(t->reply_payload);
	t->reply_payload = NULL;
	free(t->top_payload);
	t->top_payload = NULL;
	free(t->count_key);
	t->count_key = NULL;
	memset(&t->handle, 0, sizeof(t->handle));
}

static void
deliver_target_free(struct deliver *d, struct deliver_target *t)
{
	if (t == NULL)
		return;
	if (t->easy != NULL) {
		if (t->busy)
			curl_multi_remove_handle(d->multi, t->easy);
		curl_easy_cleanup(t->easy);
	}
	deliver_target_reset(t);
	free(t->provider);
	free(t->channel);
	free(t->label);
	free(t);
}

/* Forget idle targets (their bucket would be full again anyway). */
static void
deliver_targets_gc(struct deliver *d, double now_m)
{
	struct deliver_target **pp = &d->targets;
	while (*pp) {
		struct deliver_target *t = *pp;
		if (!t->busy && now_m - t->last_seen > DELIVER_TARGET_IDLE) {
			*pp = t->next;
			deliver_target_free(d, t);
		} else {
			pp = &t->next;
		}
	}
}

/* ------------------------------------------------------------ token bucket */

/*
 * 0 when t may send a message now, else the monotonic time it may. Refills
 * the bucket as a side effect.
 */
static double
deliver_bucket_ready(struct deliver_target *t, const struct conf_provider *p, double now_m)
{
	if (p->rate <= 0)
		return 0;
	double burst = p->burst;
	if (t->tokens < 0) {
		t->tokens = burst;
		t->stamp = now_m;
	}
	if (now_m < t->stamp)
		return t->stamp;
	t->tokens = fmin(burst, t->tokens + (now_m - t->stamp) * p->rate);
	t->stamp = now_m;
	if (t->tokens >= 1.0 - 1e-9)
		return 0;
	return now_m + (1.0 - t->tokens) / p->rate;
}

static void
deliver_bucket_take(struct deliver_target *t, const struct conf_provider *p)
{
	if (p->rate > 0)
		t->tokens -= 1.0;
}

static void
deliver_due_at(struct deliver *d, double when_m)
{
	if (when_m < d->next_due)
		d->next_due = when_m;
}

/* -------------------------------------------------------- queue transitions */

/*
 * What a dead letter does with the error of the attempt before it (the row's
 * last_error), when its own cause is not an answer.
 */
enum deliver_last {
	DELIVER_LAST_NONE,            /* error says it all (an answer, or nothing was tried) */
	DELIVER_LAST_STORE,           /* stored after error: "max_age exceeded; last error: …" */
	DELIVER_LAST_LOG,             /* logged only: the stored error stays exactly error
	                               * (SPEC §3: "provider removed") */
};

/* "max_age exceeded; last error: HTTP 500 …" (new string). */
static char *
deliver_error_with_last(const char *error, const struct queue_row *r)
{
	if (r->last_error == NULL || r->last_error[0] == '\0')
		return util_strdup(error);
	return util_printf("%s; last error: %s", error, r->last_error);
}

/* The first of rows' earlier errors, for the log line; NULL when none had one. */
static const char *
deliver_first_last_error(const struct queue_row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (rows[i].last_error != NULL && rows[i].last_error[0] != '\0')
			return rows[i].last_error;
	return NULL;
}

/*
 * Dead-letter rows of t with error. attempts: each row's count from now on
 * (NULL: unchanged). last: what becomes of each row's previous error (SPEC
 * §8: a dead letter keeps its last HTTP status and Slack error).
 */
static void
deliver_dead_letter(struct deliver *d, struct deliver_target *t, const struct queue_row *rows,
    size_t n, const int *attempts, const char *error, enum deliver_last last)
{
	if (n == 0)
		return;
	int most = 0;
	char *first = NULL;
	for (size_t i = 0; i < n; i++) {
		int a = attempts ? attempts[i] : rows[i].attempts;
		char *e = last == DELIVER_LAST_STORE ? deliver_error_with_last(error, &rows[i]) : NULL;
		/* A new incident's parent that never made it: its replies must not
		 * go to an older thread of the object (SPEC §12: top-level instead). */
		if (rows[i].kind == QUEUE_KIND_OPENED && rows[i].thread_key != NULL &&
		    rows[i].thread_key[0] != '\0')
			deliver_record_thread_drop(d->rec, t->provider, t->channel, rows[i].thread_key);
		deliver_record_note(d->rec, rows[i].id, QUEUE_OUTCOME_DEAD, a, 0, e ? e : error);
		if (a > most)
			most = a;
		if (i == 0)
			first = e;
		else
			free(e);
	}
	queue_pending_add(-(int64_t)n);
	metrics_queue_add(t->provider, -(int64_t)n, (int64_t)n);
	metrics_delivery(t->provider, METRICS_DEAD, n);
	const char *before = last == DELIVER_LAST_LOG ? deliver_first_last_error(rows, n) : NULL;
	deliver_log(LOG_LEVEL_WARN, "dead letter", t, rows, n, most, first ? first : error,
	    before ? "last_error" : NULL, before);
	free(first);
}

static void
deliver_ack_msg(struct deliver *d, struct deliver_target *t, const struct queue_row *rows,
    size_t n, const char *msg, const char *status)
{
	if (n == 0)
		return;
	for (size_t i = 0; i < n; i++)
		deliver_record_note(d->rec, rows[i].id, QUEUE_OUTCOME_ACK, rows[i].attempts, 0, NULL);
	queue_pending_add(-(int64_t)n);
	metrics_queue_add(t->provider, -(int64_t)n, 0);
	metrics_delivery(t->provider, METRICS_DELIVERED, n);
	double now = util_now();
	int attempts = 0;
	for (size_t i = 0; i < n; i++) {
		metrics_delivery_latency(t->provider, now - rows[i].created_at);
		metrics_notification(rows[i].alerts, (int)rows[i].kind);
		if (rows[i].attempts > attempts)
			attempts = rows[i].attempts;
	}
	deliver_log(LOG_LEVEL_INFO, msg, t, rows, n, attempts, NULL, "status", status);
}

static void
deliver_ack(struct deliver *d, struct deliver_target *t, const struct queue_row *rows,
    size_t n, const char *status)
{
	deliver_ack_msg(d, t, rows, n, "delivered", status);
}

/* Rows stay pending, due again at next_w (wall clock), each with its attempts. */
static void
deliver_defer(struct deliver *d, const struct queue_row *rows, size_t n, const int *attempts,
    double next_w, const char *error)
{
	for (size_t i = 0; i < n; i++)
		deliver_record_note(d->rec, rows[i].id, QUEUE_OUTCOME_DEFER,
		    attempts ? attempts[i] : rows[i].attempts, next_w, error);
}

/* A failed read of the queue: logged unless a queue fault explains it (the
 * recorder logs that once). */
static void
deliver_read_failed(struct deliver *d, const struct deliver_target *t)
{
	if (queue_fault(NULL, 0) != QUEUE_FAULT_NONE)
		return;
	if (t != NULL)
		log_error("cannot read queue", "target", t->label, "error", queue_errmsg(d->q), NULL);
	else
		log_error("cannot read queue", "error", queue_errmsg(d->q), NULL);
}

/* ---------------------------------------------------------------- rendering */

/* Parse a row's extra JSON object into owned key/value pairs (strings only). */
static struct conf_kv *
deliver_extra_parse(const char *extra, size_t *n)
{
	*n = 0;
	if (extra == NULL || *extra == '\0')
		return NULL;
	json_t *o = json_loads(extra, 0, NULL);
	if (!json_is_object(o)) {
		json_decref(o);
		return NULL;
	}
	struct conf_kv *kv = util_calloc(json_object_size(o) + 1, sizeof(*kv));
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v) {
		if (!json_is_string(v))
			continue;
		kv[*n].key = util_strdup(k);
		kv[*n].value = util_strdup(json_string_value(v));
		(*n)++;
	}
	json_decref(o);
	return kv;
}

static void
deliver_extra_free(struct conf_kv *kv, size_t n)
{
	if (kv == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		free(kv[i].key);
		free(kv[i].value);
	}
	free(kv);
}

/* The events, alert extras, incidents and looks of the rows in one message, parallel arrays. */
struct deliver_parsed {
	struct slack_item *items;
	struct event **events;
	struct conf_kv **extras;
	struct slack_incident *incidents;
	json_t **incident_json;       /* owns the incidents' strings */
	struct slack_look **looks;    /* NULL entries: the default rendering */
	size_t n;
};

static void
deliver_parsed_free(struct deliver_parsed *ps)
{
	for (size_t i = 0; i < ps->n; i++) {
		event_free(ps->events[i]);
		deliver_extra_free(ps->extras[i], ps->items[i].nextra);
		json_decref(ps->incident_json[i]);
		slack_look_free(ps->looks[i]);
	}
	free(ps->items);
	free(ps->events);
	free(ps->extras);
	free(ps->incidents);
	free(ps->incident_json);
	free(ps->looks);
	memset(ps, 0, sizeof(*ps));
}

/* ------------------------------------------------------------------ sending */

static size_t
deliver_write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	struct deliver_target *t = arg;
	size_t n = size * nmemb;
	if (t->body.len < DELIVER_BODY_MAX) {
		size_t keep = n;
		if (keep > DELIVER_BODY_MAX - t->body.len)
			keep = DELIVER_BODY_MAX - t->body.len;
		util_buf_append(&t->body, data, keep);
	}
	return n;                     /* the rest is discarded, not an error */
}

static size_t
deliver_header_cb(char *data, size_t size, size_t nitems, void *arg)
{
	struct deliver_target *t = arg;
	size_t n = size * nitems;
	/* A new status line (e.g. after "100 Continue") starts a new response. */
	if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
		t->retry_after[0] = '\0';
		t->ratelimit_reset = false;
		return n;
	}
	/* notification-controller's rate limiter marks its duplicate 429s so. */
	static const char reset[] = "x-ratelimit-reset:";
	if (n >= sizeof(reset) - 1 && strncasecmp(data, reset, sizeof(reset) - 1) == 0)
		t->ratelimit_reset = true;
	static const char name[] = "retry-after:";
	if (n > sizeof(name) - 1 && strncasecmp(data, name, sizeof(name) - 1) == 0) {
		const char *v = data + sizeof(name) - 1;
		const char *end = data + n;
		while (v < end && (*v == ' ' || *v == '\t'))
			v++;
		while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' ||
		    end[-1] == '\t'))
			end--;
		size_t len = (size_t)(end - v);
		if (len >= sizeof(t->retry_after))
			len = sizeof(t->retry_after) - 1;
		memcpy(t->retry_after, v, len);
		t->retry_after[len] = '\0';
	}
	return n;
}

/*
 * Start the HTTP attempt for t with its rows and payload (both already in t).
 * 0 / -1 (then t is reset and the rows stay pending for a later pass).
 */
static int
deliver_post(struct deliver *d, struct deliver_target *t, const struct conf_provider *p)
{
	char *url = NULL;
	int ret = -1;
	if (t->easy == NULL)
		t->easy = curl_easy_init();
	else
		curl_easy_reset(t->easy);     /* keeps the connection and DNS caches */
	if (t->easy == NULL)
		goto out;
	/* What an earlier request of the same attempt (a recovery's update) left. */
	curl_slist_free_all(t->headers);
	t->headers = NULL;
	util_buf_free(&t->body);
	t->retry_after[0] = '\0';
	slack_secrets_free(t->secrets);
	t->secrets = NULL;

	if (p->type == CONF_PROVIDER_SLACK_BOT) {
		bool update = t->step == DELIVER_STEP_UPDATE || t->step == DELIVER_STEP_COUNT;
		url = util_printf("%s/%s", p->api_url, update ? "chat.update" : "chat.postMessage");
		t->headers = curl_slist_append(t->headers,
		    "Content-Type: application/json; charset=utf-8");
		char *auth = util_printf("Authorization: Bearer %s", p->token);
		t->headers = curl_slist_append(t->headers, auth);
		memset(auth, 0, strlen(auth));
		free(auth);
	} else if (conf_provider_forwards(p)) {
		url = util_strdup(p->url);
		char **h = forward_headers(p, t->component, t->payload, t->payload_len);
		if (h == NULL)
			goto out;
		for (size_t i = 0; h[i] != NULL; i++)
			t->headers = curl_slist_append(t->headers, h[i]);
		forward_headers_free(h);
	} else {
		url = util_strdup(p->url);
		t->headers = curl_slist_append(t->headers, "Content-Type: application/json");
	}
	/* No "Expect: 100-continue" round trip for bodies above 1 KiB. */
	t->headers = curl_slist_append(t->headers, "Expect:");

	CURL *e = t->easy;
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "fluxrelay/" PACKAGE_VERSION);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
	curl_easy_setopt(e, CURLOPT_POST, 1L);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, t->payload);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
	    (curl_off_t)(t->payload_len ? t->payload_len : strlen(t->payload)));
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(p->timeout * 1000.0));
	if (p->proxy != NULL)
		curl_easy_setopt(e, CURLOPT_PROXY, p->proxy);
	if (p->ca_file != NULL)
		curl_easy_setopt(e, CURLOPT_CAINFO, p->ca_file);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, deliver_write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, deliver_header_cb);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, t);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);
	curl_easy_setopt(e, CURLOPT_PRIVATE, t);
	t->errbuf[0] = '\0';

	if (curl_multi_add_handle(d->multi, e) != CURLM_OK)
		goto out;
	t->busy = true;
	t->type = p->type;
	t->secrets = conf_provider_forwards(p) ? forward_secrets(p) : slack_secrets(p);
	t->started = util_mono();
	d->inflight++;
	ret = 0;
out:
	if (url != NULL) {
		memset(url, 0, strlen(url));
		free(url);
	}
	if (ret < 0) {
		log_error("cannot start delivery attempt", "target", t->label, NULL);
		deliver_target_reset(t);
	}
	return ret;
}

/* ---------------------------------------------------------------- the pass */

/*
 * Rows of a target whose provider left the configuration: dead letters
 * ("provider removed"), a batch per pass. Target by target rather than with
 * one bulk UPDATE, so that each is logged with its event ids and target
 * (SPEC §10) and counted in deliveries_total{result="dead"}. A new
 * configuration asks for a timed scan at once (deliver_apply_conf), which
 * visits every target with pending rows, deferred ones included, and never
 * one with an attempt in flight, so no row is both dead-lettered and
 * acknowledged by its own completion. Returns true when more may be left.
 */
static bool
deliver_orphans(struct deliver *d, struct deliver_target *t)
{
	struct queue_row *rows = NULL;
	size_t n = 0;
	if (deliver_record_head(d->rec, d->q, t->provider, t->channel, DELIVER_ORPHAN_BATCH,
	    &t->hidden_hint, &rows, &n) < 0) {
		deliver_read_failed(d, t);
		return false;
	}
	deliver_dead_letter(d, t, rows, n, NULL, "provider removed", DELIVER_LAST_LOG);
	queue_rows_free(rows, n);
	return n == DELIVER_ORPHAN_BATCH;
}

/* What one pass over a target found at its head, and what it does with it. */
struct deliver_pass {
	struct queue_row *rows;       /* the head as read; taken rows are zeroed */
	size_t n;
	struct queue_row *send;       /* due and readable: they go out now */
	size_t nsend;
	struct deliver_parsed parsed; /* send[]'s events, parallel */
	struct queue_row *dead;       /* past max_age */
	size_t ndead;
	bool again;                   /* more may be due at once */
};

static void
deliver_pass_free(struct deliver_pass *ps)
{
	deliver_parsed_free(&ps->parsed);
	queue_rows_free(ps->send, ps->nsend);
	queue_rows_free(ps->dead, ps->ndead);
	queue_rows_free(ps->rows, ps->n);
}

/*
 * Parse a due row's stored event into the pass and move the row to send[];
 * an event that cannot be parsed (the HTTP layer accepted it, so this cannot
 * happen) makes the row a dead letter instead of blocking its target.
 */
static void
deliver_pass_take(struct deliver *d, struct deliver_target *t, struct deliver_pass *ps,
    struct queue_row *r)
{
	char err[256], field[64];
	struct deliver_parsed *pp = &ps->parsed;
	struct event *ev = event_parse(r->event, r->event_len, err, sizeof(err), field,
	    sizeof(field));
	if (ev == NULL) {
		char bad_event[300];
		struct queue_row bad = *r;
		memset(r, 0, sizeof(*r));
		snprintf(bad_event, sizeof(bad_event), "invalid stored event: %s", err);
		deliver_dead_letter(d, t, &bad, 1, NULL, bad_event, DELIVER_LAST_NONE);
		ps->again = true;
		queue_row_clear(&bad);
		return;
	}
	/* The row's strings move to send[] with it: the cluster stays valid. */
	ev->cluster = r->cluster ? r->cluster : "";
	pp->events[pp->n] = ev;
	pp->extras[pp->n] = deliver_extra_parse(r->extra, &pp->items[pp->n].nextra);
	pp->items[pp->n].ev = ev;
	pp->items[pp->n].cluster = ev->cluster;
	pp->items[pp->n].extra = pp->extras[pp->n];
	pp->items[pp->n].kind = (enum slack_kind)r->kind;
	pp->incident_json[pp->n] = slack_incident_parse(r->incident, &pp->incidents[pp->n]);
	if (pp->incident_json[pp->n] != NULL)
		pp->items[pp->n].incident = &pp->incidents[pp->n];
	/* The alerts' templates, rendered here on the delivery thread with the
	 * configuration in force now (SPEC §13), after the kind and incident
	 * they may show; never on an HTTP thread. A forwarder renders nothing. */
	const struct conf_provider *p = deliver_provider(d, t->provider);
	if (p != NULL && !conf_provider_forwards(p))
		pp->looks[pp->n] = slack_look_new(d->conf, r->alerts, p, &pp->items[pp->n],
		    ev->cluster);
	pp->items[pp->n].look = pp->looks[pp->n];
	pp->n++;
	ps->send[ps->nsend++] = *r;
	memset(r, 0, sizeof(*r));
}

/*
 * Triage the head in id order: rows past max_age become dead wherever they
 * are; the due rows from the head on are taken to be sent, up to the first
 * one that is still waiting (a deferred head holds everything behind it).
 * Nothing is taken while the bucket is not ready (sending > 0).
 */
static void
deliver_pass_triage(struct deliver *d, struct deliver_target *t, struct deliver_pass *ps,
    double sending, double now_w, double now_m)
{
	double max_age = d->conf->queue.max_age;
	bool holding = sending > 0;
	ps->send = util_calloc(ps->n, sizeof(*ps->send));
	ps->dead = util_calloc(ps->n, sizeof(*ps->dead));
	ps->parsed.items = util_calloc(ps->n, sizeof(*ps->parsed.items));
	ps->parsed.events = util_calloc(ps->n, sizeof(*ps->parsed.events));
	ps->parsed.extras = util_calloc(ps->n, sizeof(*ps->parsed.extras));
	ps->parsed.incidents = util_calloc(ps->n, sizeof(*ps->parsed.incidents));
	ps->parsed.incident_json = util_calloc(ps->n, sizeof(*ps->parsed.incident_json));
	ps->parsed.looks = util_calloc(ps->n, sizeof(*ps->parsed.looks));
	for (size_t i = 0; i < ps->n; i++) {
		struct queue_row *r = &ps->rows[i];
		if (now_w - r->created_at >= max_age) {
			ps->dead[ps->ndead++] = *r;
			memset(r, 0, sizeof(*r));
		} else if (holding) {
			continue;
		} else if (r->next_attempt_at > now_w) {
			holding = true;
			if (ps->nsend == 0) {
				/* Back when it is due or when it expires, whichever
				 * comes first: a backoff (up to backoff_max) must not
				 * make max_age late. The head is the oldest row. */
				double due = fmin(r->next_attempt_at, r->created_at + max_age);
				t->blocked_until = now_m + (due - now_w);
				deliver_due_at(d, t->blocked_until);
			}
		} else if (ps->nsend == 1 && ps->send[0].id <= t->single_through) {
			/* Rows of a refused coalesced message go one per message. */
			holding = true;
		} else {
			deliver_pass_take(d, t, ps, r);
		}
	}
	if (ps->ndead > 0) {
		deliver_dead_letter(d, t, ps->dead, ps->ndead, NULL, "max_age exceeded",
		    DELIVER_LAST_STORE);
		if (ps->nsend == 0)
			ps->again = true;         /* rows behind them may be due */
	}
}

/*
 * Console: print each row to be sent as one JSON line and acknowledge it; a
 * row that cannot be rendered is moved behind the printed ones and becomes a
 * dead letter.
 */
static void
deliver_pass_print(struct deliver *d, struct deliver_target *t,
    const struct conf_provider *p, struct deliver_pass *ps)
{
	const char *channel = t->channel[0] ? t->channel : NULL;
	size_t printed = 0;
	for (size_t i = 0; i < ps->nsend; i++) {
		char *line = slack_render_string(p, channel, &ps->parsed.items[i], 1);
		if (line == NULL) {
			deliver_dead_letter(d, t, &ps->send[i], 1, NULL, "cannot render payload",
			    DELIVER_LAST_NONE);
			continue;
		}
		fputs(line, stdout);
		fputc('\n', stdout);
		free(line);
		if (printed != i) {
			struct queue_row tmp = ps->send[printed];
			ps->send[printed] = ps->send[i];
			ps->send[i] = tmp;
		}
		printed++;
	}
	fflush(stdout);
	deliver_ack(d, t, ps->send, printed, "console");
	if (ps->n == DELIVER_CONSOLE_BATCH)
		ps->again = true;
}

/*
 * Render the rows to be sent as one message and start its attempt; t takes
 * the rows the message holds. A Block Kit message holds at most 50 blocks:
 * the rows that did not fit stay pending, untouched, and go in the next
 * message once this one is answered (SPEC §13: coalescing splits rather than
 * drops).
 */
static void
deliver_pass_post(struct deliver *d, struct deliver_target *t, const struct conf_provider *p,
    struct deliver_pass *ps, double now_m)
{
	const char *channel = t->channel[0] ? t->channel : NULL;
	size_t used = 1;
	if (conf_provider_forwards(p)) {
		/* The event as received, one per request (batch_max is 1). */
		t->payload = util_strndup(ps->send[0].event, ps->send[0].event_len);
		t->payload_len = ps->send[0].event_len;
		t->component = util_strdup(ps->parsed.events[0]->reporting_controller);
	} else {
		t->payload = slack_render_fit(p, channel, ps->parsed.items, ps->nsend, &used);
	}
	if (t->payload == NULL) {
		deliver_dead_letter(d, t, ps->send, ps->nsend, NULL, "cannot render payload",
		    DELIVER_LAST_NONE);
		return;
	}
	for (size_t i = used; i < ps->nsend; i++)
		queue_row_clear(&ps->send[i]);
	t->rows = ps->send;
	t->nrows = used;
	ps->send = NULL;
	ps->nsend = 0;
	if (deliver_post(d, t, p) == 0)
		deliver_bucket_take(t, p);
	else
		deliver_due_at(d, now_m + 1.0);
}

/* ------------------------------------------------------------------ threads */

/* Whether p's messages go in threads (SPEC §12). */
static bool
deliver_threaded(const struct conf_provider *p)
{
	return p->type == CONF_PROVIDER_SLACK_BOT && p->threads;
}

/*
 * Start the attempt of t (rows and payloads already in t) for step; false
 * when it could not start (t is reset, its rows stay pending for a later pass).
 */
static bool
deliver_start_step(struct deliver *d, struct deliver_target *t, const struct conf_provider *p,
    enum deliver_step step)
{
	t->step = step;
	if (log_enabled(LOG_LEVEL_DEBUG))
		log_debug("thread request", "target", t->label, "step", deliver_step_names[step],
		    "thread", t->count_key ? t->count_key : t->rows ? t->rows[0].thread_key : "",
		    NULL);
	if (deliver_post(d, t, p) == 0)
		return true;
	deliver_due_at(d, util_mono() + 1.0);
	return false;
}

/*
 * The Block Kit parents' payloads, for their live counts (SPEC §12): a
 * chat.update that leaves out "blocks" keeps the old ones, and a Block Kit
 * message shows its blocks, not its text, so a count must give the parent's
 * blocks again (slack_render_count_string). The payload of each parent
 * posted to a format = "blocks" threaded target is kept here, per target
 * and thread key, in memory only: the count is best effort, and a parent
 * posted before a restart (or pushed out beyond DELIVER_PARENTS_MAX entries
 * or DELIVER_PARENTS_BYTES of payloads, oldest first) gets none. An entry
 * goes when its thread recovers or its handle is gone
 * (deliver_parents_prune). Delivery thread only.
 */
#define DELIVER_PARENTS_MAX 1000
/* A payload can be 100 KiB and more (max_text 40,000 escaped): bound the bytes too. */
#define DELIVER_PARENTS_BYTES (8u << 20)
struct deliver_parent {
	char *provider, *channel, *key;
	char *payload;                /* the chat.postMessage body as posted */
	size_t size;                  /* bytes of payload */
	struct deliver_parent *next;  /* newest first */
};

/* Unlink *pp, free it and count it out. */
static void
deliver_parent_drop(struct deliver *d, struct deliver_parent **pp)
{
	struct deliver_parent *e = *pp;
	*pp = e->next;
	d->nparents--;
	d->parent_bytes -= e->size;
	free(e->provider);
	free(e->channel);
	free(e->key);
	free(e->payload);
	free(e);
}

/* The link that points at the entry of (provider, channel, key), or at the list's end. */
static struct deliver_parent **
deliver_parent_at(struct deliver *d, const char *provider, const char *channel,
    const char *key)
{
	struct deliver_parent **pp = &d->parents;
	for (; *pp != NULL; pp = &(*pp)->next)
		if (strcmp((*pp)->key, key) == 0 && strcmp((*pp)->provider, provider) == 0 &&
		    strcmp((*pp)->channel, channel) == 0)
			break;
	return pp;
}

static void
deliver_parent_forget(struct deliver *d, const char *provider, const char *channel,
    const char *key)
{
	struct deliver_parent **pp = deliver_parent_at(d, provider, channel, key);
	if (*pp != NULL)
		deliver_parent_drop(d, pp);
}

/* Keep a copy of payload as the parent of (provider, channel, key), the oldest going beyond the bound. */
static void
deliver_parent_keep(struct deliver *d, const char *provider, const char *channel,
    const char *key, const char *payload)
{
	deliver_parent_forget(d, provider, channel, key);
	struct deliver_parent *e = util_calloc(1, sizeof(*e));
	e->provider = util_strdup(provider);
	e->channel = util_strdup(channel);
	e->key = util_strdup(key);
	e->payload = util_strdup(payload);
	e->size = strlen(payload);
	e->next = d->parents;
	d->parents = e;
	d->nparents++;
	d->parent_bytes += e->size;
	while (d->nparents > DELIVER_PARENTS_MAX || d->parent_bytes > DELIVER_PARENTS_BYTES) {
		struct deliver_parent **pp = &d->parents;
		while ((*pp)->next != NULL)
			pp = &(*pp)->next;
		deliver_parent_drop(d, pp);   /* the oldest; the newest, e, last of all */
	}
}

/* The kept parent payload of (provider, channel, key), or NULL. */
static const char *
deliver_parent_find(struct deliver *d, const char *provider, const char *channel,
    const char *key)
{
	struct deliver_parent *e = *deliver_parent_at(d, provider, channel, key);
	return e != NULL ? e->payload : NULL;
}

/* Forget the parents of target t that no longer have a handle (v[0..n), the target's). */
static void
deliver_parents_prune(struct deliver *d, const struct deliver_target *t,
    const struct deliver_thread_entry *v, size_t n)
{
	for (struct deliver_parent **pp = &d->parents; *pp != NULL;) {
		struct deliver_parent *e = *pp;
		bool keep = strcmp(e->provider, t->provider) != 0 ||
		    strcmp(e->channel, t->channel) != 0;
		for (size_t i = 0; i < n && !keep; i++)
			keep = strcmp(v[i].key, e->key) == 0;
		if (keep) {
			pp = &e->next;
			continue;
		}
		deliver_parent_drop(d, pp);
	}
}

/* Whether row r was made for the alert named name (its comma-separated alerts). */
static bool
deliver_row_names(const struct queue_row *r, const char *name)
{
	size_t want = strlen(name);
	for (const char *n = r->alerts; n != NULL && *n != '\0';) {
		size_t len = strcspn(n, ",");
		if (len == want && memcmp(n, name, len) == 0)
			return true;
		n += len + (n[len] == ',');
	}
	return false;
}

/*
 * Whether a reply of row r is broadcast (SPEC §12): an error event of a
 * notify = "events" alert is, so that the channel still sees it; alone the
 * row is of kind event, merged with a changes alert's reply or reminder on
 * the same target it takes that kind, and the row's alerts name it.
 */
static bool
deliver_thread_broadcast(const struct deliver *d, const struct queue_row *r,
    const struct event *ev)
{
	if (ev->severity != EVENT_ERROR)
		return false;
	if (r->kind == QUEUE_KIND_EVENT)
		return true;
	for (size_t i = 0; i < d->conf->nalerts; i++) {
		const struct conf_alert *a = &d->conf->alerts[i];
		if (a->notify == CONF_NOTIFY_EVENTS && deliver_row_names(r, a->name))
			return true;
	}
	return false;
}

/*
 * The one row of a threaded target (ps->send[0], SPEC §12), by kind:
 * opened goes top-level and becomes the parent (the writer made it a
 * reply when another alert's incident of the object was open:
 * incident.c); reminder, reply and event
 * are replies when the thread is known (an event only while the thread had
 * a message less than thread_ttl ago; an error event of a notify = "events"
 * alert is broadcast: deliver_thread_broadcast), else
 * top-level and the new parent; recovered edits the parent and replies, or
 * is one top-level message when there is no parent. t takes the row.
 */
static void
deliver_thread_post(struct deliver *d, struct deliver_target *t, const struct conf_provider *p,
    struct deliver_pass *ps, double now_w, double now_m)
{
	const struct queue_row *r = &ps->send[0];
	const struct slack_item *it = &ps->parsed.items[0];
	const char *channel = t->channel[0] ? t->channel : NULL;
	struct deliver_thread h;
	enum deliver_step step;

	int known = deliver_record_thread(d->rec, d->q, t->provider, t->channel, r->thread_key, &h);
	if (known < 0) {
		deliver_read_failed(d, t);
		deliver_due_at(d, now_m + DELIVER_SCAN_INTERVAL);
		return;                   /* the row stays pending */
	}
	if (known && r->kind == QUEUE_KIND_EVENT && now_w - h.last_at >= p->thread_ttl)
		known = 0;                /* the object's events thread closed */
	if (r->kind == QUEUE_KIND_OPENED) {
		step = DELIVER_STEP_PARENT;
		t->payload = slack_render_string(p, channel, it, 1);
	} else if (r->kind == QUEUE_KIND_RECOVERED && known) {
		step = DELIVER_STEP_UPDATE;
		t->payload = slack_render_update_string(p, h.channel_id, h.ts, it, 1);
		t->reply_payload = slack_render_reply_string(p, h.channel_id, h.ts, false, it, 1);
		t->top_payload = slack_render_string(p, channel, it, 1);
		if (t->reply_payload == NULL || t->top_payload == NULL) {
			free(t->payload);
			t->payload = NULL;
		}
	} else if (r->kind == QUEUE_KIND_RECOVERED) {
		step = DELIVER_STEP_TOP;
		t->payload = slack_render_string(p, channel, it, 1);
	} else if (known) {
		step = DELIVER_STEP_REPLY;
		bool broadcast = deliver_thread_broadcast(d, r, it->ev);
		t->payload = slack_render_reply_string(p, h.channel_id, h.ts, broadcast, it, 1);
	} else {
		step = DELIVER_STEP_PARENT;
		t->payload = slack_render_string(p, channel, it, 1);
	}
	if (t->payload == NULL) {
		deliver_dead_letter(d, t, ps->send, ps->nsend, NULL, "cannot render payload",
		    DELIVER_LAST_NONE);
		deliver_target_reset(t);
		return;
	}
	/* A recovery ends the thread. (A new parent's payload is kept once
	 * Slack has taken it: deliver_thread_delivered.) */
	if (r->kind == QUEUE_KIND_RECOVERED)
		deliver_parent_forget(d, t->provider, t->channel, r->thread_key);
	if (known)
		t->handle = h;
	t->rows = ps->send;
	t->nrows = ps->nsend;
	ps->send = NULL;
	ps->nsend = 0;
	if (deliver_start_step(d, t, p, step))
		deliver_bucket_take(t, p);
}

/*
 * The object of a thread key, "cluster/kind/namespace/name" (queue.c):
 * four borrowed pieces cut in place in key (a copy). -1 when malformed.
 */
static int
deliver_thread_object(char *key, char *part[4])
{
	part[0] = key;
	for (int i = 1; i < 4; i++) {
		char *slash = strchr(part[i - 1], '/');
		if (slash == NULL)
			return -1;
		*slash = '\0';
		part[i] = slash + 1;
	}
	return 0;
}

/*
 * The incident shown by a thread of target t: over the notify = "changes"
 * alerts that deliver to t, the most failures, the earliest opening and
 * the latest failure of the incidents open at now_w (one indexed lookup per
 * alert). 1 when one is open, 0 when none, -1 on a failed read.
 */
static int
deliver_thread_incident(struct deliver *d, const struct deliver_target *t, const char *key,
    double now_w, int64_t *failures, double *since, double *last_at)
{
	char *copy = util_strdup(key), *obj[4];
	int found = 0;
	if (deliver_thread_object(copy, obj) < 0)
		goto out;
	for (size_t i = 0; i < d->conf->nalerts; i++) {
		const struct conf_alert *a = &d->conf->alerts[i];
		if (a->notify != CONF_NOTIFY_CHANGES)
			continue;
		if (!rules_alert_targets(d->conf, a, t->provider, t->channel))
			continue;
		struct queue_incident in = { 0 };
		int rc = queue_incident_get(d->q, a->name, obj[0], obj[1], obj[2], obj[3], &in);
		if (rc < 0) {
			found = -1;
			goto out;
		}
		if (rc == 1 && !incident_expired(&in, a->incident_ttl, now_w)) {
			if (!found || in.failures > *failures)
				*failures = in.failures;
			if (!found || in.opened_at < *since)
				*since = in.opened_at;
			if (!found || in.last_at > *last_at)
				*last_at = in.last_at;
			found = 1;
		}
		queue_incident_clear(&in);
	}
out:
	free(copy);
	return found;
}

/*
 * Best-effort live count (SPEC §12) on idle threaded target t: the first
 * parent whose incident has more than one failure and counted one since
 * the parent's last count (if any), which was DELIVER_COUNT_EVERY ago or
 * more, gets "N failures since HH:MM" (a Block Kit parent in its blocks,
 * when its payload is kept: deliver_parent_keep). Not queued: a count that
 * fails is tried again a minute later, one lost in a restart is simply not
 * shown. Returns true when an attempt started.
 */
static bool
deliver_count_pass(struct deliver *d, struct deliver_target *t, const struct conf_provider *p,
    double now_w, double now_m)
{
	struct deliver_thread_entry *v = NULL;
	size_t n = 0;
	bool started = false;

	/* A suspended provider gets nothing new, live counts included. */
	if (!deliver_threaded(p) || p->suspend || t->busy || now_m < t->count_after ||
	    deliver_bucket_ready(t, p, now_m) > 0)
		return false;
	t->count_after = now_m + DELIVER_COUNT_LOOK;
	if (deliver_record_threads(d->rec, d->q, t->provider, t->channel, &v, &n) < 0) {
		deliver_read_failed(d, t);
		return false;
	}
	bool blocks = p->format == CONF_FORMAT_BLOCKS;
	deliver_parents_prune(d, t, v, n);
	for (size_t i = 0; i < n && !started; i++) {
		const struct deliver_thread *h = &v[i].h;
		int64_t failures = 0;
		double since = 0, last_at = 0;
		if (now_w - h->updated_at < DELIVER_COUNT_EVERY)
			continue;
		/* A Block Kit parent posted before a restart: its blocks are not known. */
		const char *parent = blocks ? deliver_parent_find(d, t->provider, t->channel, v[i].key) :
		    NULL;
		if (blocks && parent == NULL)
			continue;
		int rc = deliver_thread_incident(d, t, v[i].key, now_w, &failures, &since, &last_at);
		if (rc < 0) {
			deliver_read_failed(d, t);
			break;
		}
		/* The parent says 1 failure; a count says more only when there was one since. */
		if (rc == 0 || failures < 2 || last_at <= h->updated_at)
			continue;
		t->payload = slack_render_count_string(h->channel_id, h->ts, (long)failures, since,
		    now_w, parent);
		if (t->payload == NULL)
			continue;
		t->handle = *h;
		t->count_key = util_strdup(v[i].key);
		started = deliver_start_step(d, t, p, DELIVER_STEP_COUNT);
		if (started) {
			deliver_bucket_take(t, p);
			t->count_after = now_m;   /* the next parent right after this one */
		}
	}
	deliver_record_threads_free(v, n);
	return started;
}

/*
 * Look at one idle target: dead-letter what is too old or unreadable, then
 * print (console) or start one attempt with the due rows at its head.
 * Returns true when the target is still idle and more rows may be due now
 * (console batch full, rows dead-lettered ahead of others).
 */
static bool
deliver_target_pass(struct deliver *d, struct deliver_target *t, double now_w, double now_m)
{
	const struct conf_provider *p = deliver_provider(d, t->provider);
	struct deliver_pass ps = {0};
	if (p == NULL)
		return deliver_orphans(d, t);
	bool console = p->type == CONF_PROVIDER_CONSOLE;
	/* Coalescing: conf bounds batch_max to 1..SLACK_MAX_ATTACHMENTS; a
	 * threaded target sends its rows one at a time (SPEC §12). */
	size_t limit = console ? DELIVER_CONSOLE_BATCH : deliver_threaded(p) ? 1 :
	    (size_t)p->batch_max;
	/* A bucket that is not ready (pacing, or a long Retry-After) must not
	 * keep max_age from dead-lettering the rows it holds: the triage still
	 * runs, only sending waits. */
	double sending = console ? 0 : deliver_bucket_ready(t, p, now_m);
	if (deliver_record_head(d->rec, d->q, t->provider, t->channel, limit, &t->hidden_hint,
	    &ps.rows, &ps.n) < 0) {
		deliver_read_failed(d, t);
		deliver_due_at(d, now_m + DELIVER_SCAN_INTERVAL);
		return false;
	}
	t->blocked_until = 0;
	if (ps.n > 0) {
		deliver_pass_triage(d, t, &ps, sending, now_w, now_m);
		if (sending > 0) {
			t->blocked_until = sending;   /* wake-up scans need not look before */
			deliver_due_at(d, sending);
		} else if (ps.nsend > 0 && console) {
			deliver_pass_print(d, t, p, &ps);
		} else if (ps.nsend > 0 && deliver_threaded(p) && ps.send[0].thread_key[0] != '\0') {
			deliver_thread_post(d, t, p, &ps, now_w, now_m);
		} else if (ps.nsend > 0) {
			deliver_pass_post(d, t, p, &ps, now_m);
		}
	} else {
		deliver_count_pass(d, t, p, now_w, now_m);
	}
	deliver_pass_free(&ps);
	return ps.again;
}

/*
 * Pass over an idle target until it has nothing more to do right now; a
 * target that still has work after a few passes (a long console backlog)
 * yields to the others and asks for another scan.
 */
static void
deliver_target_run(struct deliver *d, struct deliver_target *t)
{
	for (int i = 0; i < 16; i++)
		if (t->busy || !deliver_target_pass(d, t, util_now(), util_mono()))
			return;
	atomic_store(&d->dirty, true);
}

/*
 * The live counts of threaded targets that have nothing pending (tv: the
 * targets that have): the targets of notify = "changes" alerts on threaded
 * providers, each looked at every DELIVER_COUNT_LOOK at most.
 */
static void
deliver_counts(struct deliver *d, const struct queue_target *tv, size_t nt, double now_m)
{
	double now_w = util_now();
	for (size_t i = 0; i < d->conf->nalerts; i++) {
		const struct conf_alert *a = &d->conf->alerts[i];
		if (a->notify != CONF_NOTIFY_CHANGES)
			continue;
		for (size_t k = 0; k < a->nproviders; k++) {
			const struct conf_provider *p = &d->conf->providers[a->provider_idx[k]];
			if (!deliver_threaded(p))
				continue;
			const char *ch = rules_channel(d->conf, a, k);
			ch = ch ? ch : "";
			bool pending = false;
			for (size_t j = 0; j < nt && !pending; j++)
				pending = strcmp(tv[j].provider, p->name) == 0 &&
				    strcmp(tv[j].channel ? tv[j].channel : "", ch) == 0;
			if (pending)
				continue;
			struct deliver_target *t = deliver_target_get(d, p->name, ch);
			t->last_seen = now_m;
			deliver_count_pass(d, t, p, now_w, now_m);
		}
	}
}

/*
 * One look at the database: every target with pending rows that is idle.
 * A scan caused by a wake-up (new rows) skips targets whose head is known to
 * be deferred; a timed scan checks them all, since another process may have
 * changed their rows, and looks for live counts to show.
 */
static void
deliver_scan(struct deliver *d, bool woken)
{
	struct queue_target *tv = NULL;
	size_t nt = 0;
	double now_m = util_mono();
	double next_due = d->next_due;
	d->next_due = now_m + DELIVER_SCAN_INTERVAL;
	if (queue_pending_targets(d->q, &tv, &nt) < 0) {
		deliver_read_failed(d, NULL);
		goto out;
	}
	for (size_t i = 0; i < nt; i++) {
		struct deliver_target *t = deliver_target_get(d, tv[i].provider,
		    tv[i].channel ? tv[i].channel : "");
		t->last_seen = now_m;
		if (t->busy)
			continue;
		if (woken && now_m < t->blocked_until) {
			deliver_due_at(d, t->blocked_until);
			continue;
		}
		deliver_target_run(d, t);
	}
	if (!woken)
		deliver_counts(d, tv, nt, now_m);
	queue_targets_free(tv, nt);
	deliver_targets_gc(d, now_m);
out:
	/* A wake-up scan must not push back a deadline it did not look at. */
	if (woken && next_due < d->next_due)
		d->next_due = next_due;
	double end = util_mono();
	d->scan_after = end + 4.0 * (end - now_m);
}

/* Tell every provider and alert of c to metrics, and the recorder c's dead_max_age. */
static void
deliver_conf_changed(struct deliver *d, const struct conf *c)
{
	for (size_t i = 0; i < c->nproviders; i++)
		metrics_provider(c->providers[i].name);
	for (size_t i = 0; i < c->nalerts; i++)
		metrics_alert(c->alerts[i].name);
	deliver_record_set_dead_max_age(d->rec, c->queue.dead_max_age);
}

/* ------------------------------------------------------------- completions */

/* The most attempts among rows (for the log line of an outcome of them all). */
static int
deliver_most_attempts(const struct queue_row *rows, size_t n)
{
	int most = 0;
	for (size_t i = 0; i < n; i++)
		if (rows[i].attempts > most)
			most = rows[i].attempts;
	return most;
}

/*
 * Classify t's finished attempt (libcurl's result rc, wall clock now_w for
 * HTTP dates) into *res; status gets the HTTP status ("" without one).
 */
static void
deliver_classify(const struct deliver_target *t, CURLcode rc, double now_w, char status[16],
    struct slack_result *res, bool *duplicate)
{
	struct slack_response resp = {0};
	char transport[CURL_ERROR_SIZE + 64];
	status[0] = '\0';
	if (rc != CURLE_OK) {
		resp.transport_error = (int)rc;
		snprintf(transport, sizeof(transport), "%s", t->errbuf[0] ? t->errbuf :
		    curl_easy_strerror(rc));
		resp.transport_msg = transport;
	} else {
		long code = 0;
		curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &code);
		resp.status = code;
		resp.retry_after = t->retry_after[0] ? t->retry_after : NULL;
		resp.body = t->body.data ? t->body.data : "";
		resp.body_len = t->body.len;
		snprintf(status, 16, "%ld", code);
	}
	resp.secrets = t->secrets;
	*duplicate = false;
	if (t->type == CONF_PROVIDER_GENERIC || t->type == CONF_PROVIDER_GENERIC_HMAC)
		forward_classify(&resp, t->ratelimit_reset, (time_t)now_w, res, duplicate);
	else
		slack_classify(t->type, &resp, (time_t)now_w, res);
}

/* Rate limited: the rows and the bucket wait Retry-After (capped); no attempt counted. */
static void
deliver_rate_limited(struct deliver *d, struct deliver_target *t, const struct slack_result *res,
    double now_w)
{
	double wait = res->retry_after > 0 ? res->retry_after : 1.0;
	/* An absurd Retry-After must not park the target for decades. */
	double cap = fmin(DELIVER_RETRY_AFTER_MAX, d->conf->queue.max_age);
	if (wait > cap) {
		char got[32], capped[32];
		snprintf(got, sizeof(got), "%.0f", wait);
		snprintf(capped, sizeof(capped), "%.0f", cap);
		log_warn("Retry-After capped", "target", t->label, "retry_after", got,
		    "capped_to", capped, NULL);
		wait = cap;
	}
	deliver_defer(d, t->rows, t->nrows, NULL, now_w + wait, res->error);
	/* The bucket waits too: one message at the end of the wait, then the
	 * configured rate, no burst. */
	t->stamp = util_mono() + wait;
	t->tokens = 1.0;
	metrics_delivery(t->provider, METRICS_RATE_LIMITED, t->nrows);
	char wbuf[32];
	snprintf(wbuf, sizeof(wbuf), "%.3f", wait);
	deliver_log(LOG_LEVEL_WARN, "rate limited", t, t->rows, t->nrows,
	    deliver_most_attempts(t->rows, t->nrows), res->error, "retry_in", wbuf);
}

/* Rows with the attempts they count from now on; shallow copies (strings not owned). */
struct deliver_counted {
	struct queue_row *rows;
	int *attempts;
	size_t n;
};

static void
deliver_counted_add(struct deliver_counted *c, const struct queue_row *r, int attempts)
{
	c->rows[c->n] = *r;
	c->attempts[c->n++] = attempts;
}

/*
 * A transient failure. Each row counts its own failures: a row that joined
 * the batch late is not dead-lettered for the head's history. The rows that
 * reach max_attempts die of it (counting it, so the dead letter shows the
 * count its log line gives); the others wait their backoff.
 */
static void
deliver_transient(struct deliver *d, struct deliver_target *t, const struct slack_result *res,
    double now_w)
{
	struct deliver_counted dead = { util_calloc(t->nrows, sizeof(*dead.rows)),
	    util_calloc(t->nrows, sizeof(*dead.attempts)), 0 };
	struct deliver_counted keep = { util_calloc(t->nrows, sizeof(*keep.rows)),
	    util_calloc(t->nrows, sizeof(*keep.attempts)), 0 };
	unsigned worst = 1;
	for (size_t i = 0; i < t->nrows; i++) {
		int a = t->rows[i].attempts + 1;
		bool dies = a >= d->conf->queue.max_attempts;
		deliver_counted_add(dies ? &dead : &keep, &t->rows[i], a);
		if (!dies && (unsigned)a > worst)
			worst = (unsigned)a;
	}
	if (keep.n > 0) {
		double delay = backoff_delay(d->conf->queue.backoff_initial,
		    d->conf->queue.backoff_max, worst, deliver_random(d));
		deliver_defer(d, keep.rows, keep.n, keep.attempts, now_w + delay, res->error);
		metrics_delivery(t->provider, METRICS_RETRIED, keep.n);
		char dbuf[32];
		snprintf(dbuf, sizeof(dbuf), "%.3f", delay);
		/* Log the rows that stay, with their new count. */
		deliver_log(LOG_LEVEL_WARN, "delivery failed, will retry", t, keep.rows, keep.n,
		    (int)worst, res->error, "retry_in", dbuf);
	}
	deliver_dead_letter(d, t, dead.rows, dead.n, dead.attempts, res->error,
	    DELIVER_LAST_NONE);
	free(dead.rows);
	free(dead.attempts);
	free(keep.rows);
	free(keep.attempts);
}

/*
 * A permanent failure: the rows are dead letters, counting the attempt just
 * refused (as a transient failure would), unless a coalesced message was
 * refused as too large or invalid; that is not its events' fault, maybe only
 * one's: they go again one per message, uncounted, so only an offending
 * event dies.
 */
static void
deliver_permanent(struct deliver *d, struct deliver_target *t, const struct slack_result *res)
{
	if (res->oversize && t->nrows > 1) {
		t->single_through = t->rows[t->nrows - 1].id;
		deliver_log(LOG_LEVEL_WARN, "message refused as too large or invalid: sending "
		    "its events one per message", t, t->rows, t->nrows,
		    deliver_most_attempts(t->rows, t->nrows), res->error, NULL, NULL);
		return;
	}
	int *attempts = util_calloc(t->nrows, sizeof(*attempts));
	for (size_t i = 0; i < t->nrows; i++)
		attempts[i] = t->rows[i].attempts + 1;
	deliver_dead_letter(d, t, t->rows, t->nrows, attempts, res->error, DELIVER_LAST_NONE);
	free(attempts);
}

/*
 * A delivered request of a threaded row: what it means for the thread's
 * handle. The handle is noted before the row's acknowledgement (see
 * deliver_record.c).
 */
static void
deliver_thread_delivered(struct deliver *d, struct deliver_target *t,
    const struct slack_result *res, double now_w)
{
	const char *key = t->rows[0].thread_key;
	switch (t->step) {
	case DELIVER_STEP_PARENT:
		if (res->channel[0] != '\0' && res->ts[0] != '\0') {
			struct deliver_thread h = { .opened_at = now_w, .last_at = now_w };
			snprintf(h.channel_id, sizeof(h.channel_id), "%s", res->channel);
			snprintf(h.ts, sizeof(h.ts), "%s", res->ts);
			deliver_record_thread_put(d->rec, t->provider, t->channel, key, &h);
			log_debug("thread parent", "target", t->label, "thread", key, "channel_id",
			    h.channel_id, "ts", h.ts, NULL);
			/* A Block Kit parent's live count gives its blocks again;
			 * kept only now, so that a parent that failed never lends
			 * its blocks to the older message whose handle stays. */
			const struct conf_provider *p = deliver_provider(d, t->provider);
			if (p != NULL && p->format == CONF_FORMAT_BLOCKS)
				deliver_parent_keep(d, t->provider, t->channel, key, t->payload);
			else
				deliver_parent_forget(d, t->provider, t->channel, key);
		} else {
			/* Slack answered without a handle: the next reply is top-level. */
			deliver_record_thread_drop(d->rec, t->provider, t->channel, key);
			deliver_parent_forget(d, t->provider, t->channel, key);
		}
		break;
	case DELIVER_STEP_REPLY:
		deliver_record_thread_touch(d->rec, t->provider, t->channel, key, now_w, -1);
		break;
	case DELIVER_STEP_RECOVERED:
		/* The thread stays the object's: a notify = "events" alert on it
		 * goes on replying there within thread_ttl (SPEC §12); the next
		 * incident opens a new parent. */
		deliver_record_thread_touch(d->rec, t->provider, t->channel, key, now_w, now_w);
		break;
	case DELIVER_STEP_TOP:
		deliver_record_thread_drop(d->rec, t->provider, t->channel, key);
		break;
	default:
		break;
	}
}

/*
 * After a request of a recovery (SPEC §12): the parent's update was done,
 * so the reply follows; or it cannot be done (message_not_found,
 * cant_update_message), so a new top-level message says it instead. Returns
 * true when the row is still in the hands of the next request (or of a
 * later pass, when it could not start).
 */
static bool
deliver_thread_next(struct deliver *d, struct deliver_target *t, const struct slack_result *res)
{
	const struct conf_provider *p = deliver_provider(d, t->provider);
	char **next = NULL;
	enum deliver_step step;
	if (t->step != DELIVER_STEP_UPDATE)
		return false;
	if (res->outcome == SLACK_DELIVERED) {
		next = &t->reply_payload;
		step = DELIVER_STEP_RECOVERED;
	} else if (res->repost) {
		next = &t->top_payload;
		step = DELIVER_STEP_TOP;
	} else {
		return false;
	}
	/* Stopping, or the provider left with a reload: the row stays pending,
	 * and the next pass does the recovery again (chat.update is idempotent). */
	if (p == NULL || atomic_load(&d->stopping)) {
		deliver_target_reset(t);
		return true;
	}
	if (step == DELIVER_STEP_TOP)
		deliver_log(LOG_LEVEL_INFO, "thread parent cannot be edited: posting the recovery "
		    "as a new message", t, t->rows, t->nrows, t->rows[0].attempts, res->error,
		    NULL, NULL);
	free(t->payload);
	t->payload = *next;
	*next = NULL;
	deliver_start_step(d, t, p, step);
	return true;
}

/*
 * A live count's answer: the parent is counted again a minute later,
 * whatever happened (it is best effort), unless Slack asks to wait or the
 * parent is gone (then the thread ends: the next reply is a new parent).
 */
static void
deliver_count_done(struct deliver *d, struct deliver_target *t, const struct slack_result *res,
    double now_w)
{
	const struct deliver_thread *h = &t->handle;
	if (res->outcome == SLACK_RATE_LIMITED) {
		double wait = fmin(res->retry_after > 0 ? res->retry_after : 1.0,
		    DELIVER_RETRY_AFTER_MAX);
		t->stamp = util_mono() + wait;
		t->tokens = 1.0;
		return;
	}
	if (res->repost) {
		deliver_record_thread_drop(d->rec, t->provider, t->channel, t->count_key);
		log_info("thread parent gone: the next message of its object starts a new thread",
		    "target", t->label, "thread", t->count_key, "error", res->error, NULL);
		return;
	}
	deliver_record_thread_touch(d->rec, t->provider, t->channel, t->count_key, h->last_at,
	    now_w);
	if (res->outcome != SLACK_DELIVERED)
		log_warn("live count not shown", "target", t->label, "thread", t->count_key,
		    "error", res->error, NULL);
}

/* Classify the finished attempt of t and move its rows on. */
static void
deliver_complete(struct deliver *d, struct deliver_target *t, CURLcode rc)
{
	struct slack_result res;
	char status[16];
	double now_w = util_now();
	bool duplicate;

	deliver_classify(t, rc, now_w, status, &res, &duplicate);
	curl_multi_remove_handle(d->multi, t->easy);
	t->busy = false;
	d->inflight--;
	if (t->step == DELIVER_STEP_COUNT) {
		deliver_count_done(d, t, &res, now_w);
		goto out;
	}
	if (deliver_thread_next(d, t, &res))
		return;
	switch (res.outcome) {
	case SLACK_DELIVERED:
		if (t->step != DELIVER_STEP_SEND)
			deliver_thread_delivered(d, t, &res, now_w);
		/* A forwarding receiver's rate limiter (notification-controller)
		 * already has this event: done, and said so. */
		deliver_ack_msg(d, t, t->rows, t->nrows, duplicate ?
		    "delivered: duplicate dropped by the receiver" : "delivered", status);
		break;
	case SLACK_RATE_LIMITED:
		deliver_rate_limited(d, t, &res, now_w);
		break;
	case SLACK_TRANSIENT:
		deliver_transient(d, t, &res, now_w);
		break;
	case SLACK_PERMANENT:
		deliver_permanent(d, t, &res);
		break;
	}
out:
	deliver_target_reset(t);
	/* The target is free: its next rows may go now (or it learns when). */
	if (!atomic_load(&d->stopping))
		deliver_target_run(d, t);
}

/* Handle every finished transfer; returns how many finished. */
static int
deliver_collect(struct deliver *d)
{
	int done = 0, left;
	CURLMsg *m;
	while ((m = curl_multi_info_read(d->multi, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE)
			continue;
		struct deliver_target *t = NULL;
		CURL *e = m->easy_handle;
		CURLcode rc = m->data.result;
		curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&t);
		if (t == NULL || !t->busy) {
			curl_multi_remove_handle(d->multi, e);
			continue;
		}
		deliver_complete(d, t, rc);
		done++;
	}
	return done;
}

/* ------------------------------------------------------------ configuration */

static void
deliver_apply_conf(struct deliver *d)
{
	pthread_mutex_lock(&d->lock);
	if (d->gen_done != d->gen_req) {
		d->conf = d->next_conf;
		d->gen_done = d->gen_req;
		/* A timed scan at once: see deliver_orphans. */
		d->next_due = 0;
		pthread_cond_broadcast(&d->cond);
		atomic_store(&d->dirty, true);
		deliver_conf_changed(d, d->conf);
	}
	pthread_mutex_unlock(&d->lock);
}

/* ------------------------------------------------------------------- thread */

static void *
deliver_main(void *arg)
{
	struct deliver *d = arg;
	d->next_due = 0;
	for (;;) {
		deliver_apply_conf(d);
		bool stopping = atomic_load(&d->stopping);
		if (stopping && d->inflight == 0)
			break;
		if (!stopping) {
			double now_m = util_mono();
			if (now_m >= d->next_due) {
				atomic_store(&d->dirty, false);
				deliver_scan(d, false);
			} else if (atomic_load(&d->dirty)) {
				if (now_m >= d->scan_after) {
					atomic_store(&d->dirty, false);
					deliver_scan(d, true);
				} else {
					deliver_due_at(d, d->scan_after);
				}
			}
		}
		int running = 0;
		if (curl_multi_perform(d->multi, &running) != CURLM_OK)
			log_error("curl_multi_perform failed", NULL);
		if (deliver_collect(d) > 0)
			continue;

		double wait = d->next_due - util_mono();
		int ms = wait <= 0 ? 0 : wait >= DELIVER_SCAN_INTERVAL ?
		    (int)(DELIVER_SCAN_INTERVAL * 1000) : (int)ceil(wait * 1000.0);
		if (stopping)
			ms = 100;
		curl_multi_poll(d->multi, NULL, 0, ms, NULL);
	}
	pthread_mutex_lock(&d->lock);
	d->exited = true;
	if (d->gen_done != d->gen_req) {
		d->conf = d->next_conf;
		d->gen_done = d->gen_req;
	}
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	return NULL;
}

/* ---------------------------------------------------------------- interface */

struct deliver *
deliver_start(const char *state_dir, const struct conf *c, char *err, size_t errlen)
{
	struct deliver *d = util_calloc(1, sizeof(*d));
	bool global = false;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		snprintf(err, errlen, "cannot initialize libcurl");
		goto fail;
	}
	global = true;
	d->q = queue_open(state_dir, false, err, errlen);
	if (d->q == NULL)
		goto fail;
	d->rec = deliver_record_start(state_dir, c->queue.dead_max_age, err, errlen);
	if (d->rec == NULL)
		goto fail;
	d->multi = curl_multi_init();
	if (d->multi == NULL) {
		snprintf(err, errlen, "cannot create a curl multi handle");
		goto fail;
	}
	pthread_mutex_init(&d->lock, NULL);
	pthread_cond_init(&d->cond, NULL);
	d->conf = c;
	atomic_init(&d->stopping, false);
	atomic_init(&d->dirty, true);
	deliver_conf_changed(d, c);
	if (util_random(&d->rng, sizeof(d->rng)) < 0 || d->rng == 0)
		d->rng = (uint64_t)time(NULL) * 2654435761ULL + 1;
	if (thread_start(&d->thread, deliver_main, d, "fr-deliver", "the delivery thread", err,
	    errlen) < 0) {
		pthread_mutex_destroy(&d->lock);
		pthread_cond_destroy(&d->cond);
		goto fail;
	}
	return d;
fail:
	if (d->multi)
		curl_multi_cleanup(d->multi);
	deliver_record_stop(d->rec);
	queue_close(d->q);
	if (global)
		curl_global_cleanup();
	free(d);
	return NULL;
}

void
deliver_wake(struct deliver *d)
{
	if (d == NULL)
		return;
	atomic_store(&d->dirty, true);
	curl_multi_wakeup(d->multi);
}

void
deliver_set_conf(struct deliver *d, const struct conf *c)
{
	if (d == NULL)
		return;
	pthread_mutex_lock(&d->lock);
	unsigned long gen = ++d->gen_req;
	d->next_conf = c;
	curl_multi_wakeup(d->multi);
	while (d->gen_done < gen && !d->exited)
		pthread_cond_wait(&d->cond, &d->lock);
	if (d->exited)
		d->conf = c;
	pthread_mutex_unlock(&d->lock);
}

void
deliver_stop(struct deliver *d)
{
	if (d == NULL)
		return;
	atomic_store(&d->stopping, true);
	curl_multi_wakeup(d->multi);
	pthread_join(d->thread, NULL);
	/* Then the recorder, which writes what the delivery thread noted last. */
	deliver_record_stop(d->rec);
	while (d->targets) {
		struct deliver_target *t = d->targets;
		d->targets = t->next;
		deliver_target_free(d, t);
	}
	while (d->parents)
		deliver_parent_drop(d, &d->parents);
	curl_multi_cleanup(d->multi);
	queue_close(d->q);
	pthread_mutex_destroy(&d->lock);
	pthread_cond_destroy(&d->cond);
	free(d);
	curl_global_cleanup();
}
