/*
 * http: the libmicrohttpd server of SPEC §4.
 *
 * Request flow (libmicrohttpd calls http_access several times per request):
 *   1st call   headers only: route, method, readiness, Content-Type, declared
 *              Content-Length against max_body, bearer token. Any failure is
 *              answered at once, before the body is read.
 *   next calls body chunks, copied into the request's buffer up to max_body
 *              (chunked bodies have no declared length: counted here).
 *   last call  (*upload_size == 0) signature, parse, match. Ignored events are
 *              answered now. Matched ones are handed to the queue writer and the
 *              connection is suspended; the writer resumes it once the batch is
 *              durable, and the call after that answers 202 / 503.
 * So no HTTP thread ever waits on disk: a slow fsync delays only its own
 * requests. Per-request state is freed in the completion callback only.
 *
 * Threads: libmicrohttpd's internal threads call everything here except
 * http_on_committed (writer thread) and http_start/stop/set_ready (main).
 */
#include "config.h"
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "dedup.h"
#include "event.h"
#include "log.h"
#include "metrics.h"
#include "rules.h"
#include "runtime.h"
#include "util.h"

/* libmicrohttpd daemons started per core, and at most (see http_start). */
#define HTTP_DAEMONS_PER_CPU 4
#define HTTP_MAX_DAEMONS 16

struct http {
	struct MHD_Daemon *mhd[HTTP_MAX_DAEMONS];
	int nmhd;
	struct queue_writer *writer;
	atomic_bool ready;
	long max_body;
	int port;
	char *tls_cert, *tls_key, *tls_trust;   /* PEM contents; MHD keeps pointers */
	/* A read connection for /metrics gauges; guarded by metrics_lock. */
	pthread_mutex_t metrics_lock;
	struct queue *metrics_queue;
	char *state_dir;
	bool need_client_cert;
	atomic_int active;       /* requests between first call and completion */
	/* listen.max_connections is one limit over every daemon: the kernel's
	 * reuseport hash does not spread connections evenly enough for a
	 * per-daemon share of it. */
	atomic_int connections;
	int max_connections;
	/* A socket passed by socket activation, else -1: systemd keeps listening
	 * on it after we exit, so http_stop must not shut it down (see there). */
	int inherited_fd;
};

enum http_route { HTTP_ROUTE_EVENT, HTTP_ROUTE_HEALTHZ, HTTP_ROUTE_READYZ, HTTP_ROUTE_METRICS };

enum http_phase {
	HTTP_PHASE_BODY,       /* reading the body */
	HTTP_PHASE_DISCARD,    /* body over max_body: answer 413 at the end */
	HTTP_PHASE_QUEUED,     /* suspended, waiting for the writer */
	HTTP_PHASE_COMMITTED,  /* resumed: answer from req.result */
	HTTP_PHASE_ANSWERED,
};

/* Per-request state, freed by http_completed. */
struct http_req {
	struct http *h;
	struct MHD_Connection *conn;
	double started;
	int code;
	enum http_phase phase;
	char *body;
	size_t len, cap, discarded;
	struct runtime *rt;
	struct rules_result match;
	struct queue_item *items;
	char **extras;
	struct queue_req qreq;
	char peer[64];
};

/* Bodies beyond this many times max_body are not worth reading to the end just
 * to say 413: the connection is closed instead. */
#define HTTP_DISCARD_FACTOR 4

static enum MHD_Result
http_respond(struct http_req *r, int code, char *body, const char *const *headers)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(body), body,
	    MHD_RESPMEM_MUST_FREE);
	if (resp == NULL) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	for (size_t i = 0; headers && headers[i]; i += 2)
		MHD_add_response_header(resp, headers[i], headers[i + 1]);
	r->code = code;
	enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)code, resp);
	MHD_destroy_response(resp);
	r->phase = HTTP_PHASE_ANSWERED;
	return ret;
}

/* Takes b's buffer; a body always ends with a newline for curl users. */
static enum MHD_Result
http_respond_buf(struct http_req *r, int code, struct util_buf *b, const char *const *headers)
{
	util_buf_puts(b, "\n");
	return http_respond(r, code, b->data, headers);
}

static enum MHD_Result
http_error(struct http_req *r, int code, const char *msg, const char *field,
    const char *const *headers)
{
	struct util_buf b = {0};
	util_buf_puts(&b, "{\"error\":");
	util_buf_json_string(&b, msg);
	if (field != NULL) {
		util_buf_puts(&b, ",\"field\":");
		util_buf_json_string(&b, field);
	}
	util_buf_puts(&b, "}");
	return http_respond_buf(r, code, &b, headers);
}

/* The client's address for a log line, looked up the first time one needs it
 * (most requests never log it). */
static const char *
http_remote(struct http_req *r)
{
	if (r->peer[0] != '\0')
		return r->peer;
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(r->conn,
	    MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci == NULL || ci->client_addr == NULL)
		return "";
	const struct sockaddr *sa = ci->client_addr;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, r->peer,
		    (socklen_t)sizeof(r->peer));
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
		    r->peer, (socklen_t)sizeof(r->peer));
	return r->peer;
}

static void
http_reject(struct http_req *r, const char *why, const char *detail)
{
	metrics_event(METRICS_EVENT_REJECTED);
	log_info("event rejected", "remote", http_remote(r), "error", why,
	    detail ? "field" : NULL, detail, NULL);
}

static const char *const http_retry_after[] = { "Retry-After", "5", NULL };

static bool
http_is_json(const char *ct)
{
	if (ct == NULL)
		return false;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	static const char want[] = "application/json";
	if (strncasecmp(ct, want, sizeof(want) - 1) != 0)
		return false;
	const char *rest = ct + sizeof(want) - 1;
	while (*rest == ' ' || *rest == '\t')
		rest++;
	return *rest == '\0' || *rest == ';';
}

/* Called from the queue writer thread once req's batch is durable (or failed). */
static void
http_on_committed(struct queue_req *q)
{
	struct http_req *r = q->arg;
	r->phase = HTTP_PHASE_COMMITTED;
	MHD_resume_connection(r->conn);
}

static enum MHD_Result
http_answer_committed(struct http_req *r)
{
	switch (r->qreq.result) {
	case QUEUE_RESULT_ACCEPTED: {
		metrics_event(METRICS_EVENT_ACCEPTED);
		struct util_buf b = {0};
		util_buf_printf(&b, "{\"status\":\"accepted\",\"id\":\"%s\",\"alerts\":[",
		    r->qreq.event_id);
		for (size_t i = 0; i < r->match.nalerts; i++) {
			if (i > 0)
				util_buf_puts(&b, ",");
			util_buf_json_string(&b, r->match.alerts[i]);
		}
		util_buf_puts(&b, "]}");
		return http_respond_buf(r, MHD_HTTP_ACCEPTED, &b, NULL);
	}
	case QUEUE_RESULT_DUPLICATE: {
		metrics_event(METRICS_EVENT_DUPLICATE);
		log_info("event duplicate", "event_id", r->qreq.event_id, "remote", http_remote(r), NULL);
		struct util_buf b = {0};
		util_buf_printf(&b, "{\"status\":\"duplicate\",\"id\":\"%s\"}", r->qreq.event_id);
		return http_respond_buf(r, MHD_HTTP_ACCEPTED, &b, NULL);
	}
	case QUEUE_RESULT_FULL:
		metrics_event(METRICS_EVENT_REJECTED);
		log_warn("event refused: queue full", "remote", http_remote(r), NULL);
		return http_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "queue full", NULL,
		    http_retry_after);
	case QUEUE_RESULT_SHUTDOWN:
		metrics_event(METRICS_EVENT_REJECTED);
		return http_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "shutting down", NULL,
		    http_retry_after);
	default:
		metrics_event(METRICS_EVENT_REJECTED);
		log_error("event not stored: queue write failed", "remote", http_remote(r), NULL);
		return http_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "queue write failed", NULL,
		    http_retry_after);
	}
}

/* The alert metadata of a target as the JSON object the queue stores. */
static char *
http_extra_json(const struct rules_target *t)
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

static void
http_log_accepted(struct http_req *r, const struct event *ev)
{
	if (!log_enabled(LOG_LEVEL_INFO))
		return;
	struct util_buf targets = {0}, alerts = {0};
	for (size_t i = 0; i < r->match.ntargets; i++) {
		const struct queue_item *it = &r->items[i];
		char *label = rules_target_label(it->provider, it->channel);
		util_buf_printf(&targets, "%s%s", i ? "," : "", label);
		free(label);
	}
	for (size_t i = 0; i < r->match.nalerts; i++)
		util_buf_printf(&alerts, "%s%s", i ? "," : "", r->match.alerts[i]);
	char *object = util_printf("%s/%s%s%s", ev->kind, ev->namespace ? ev->namespace : "",
	    ev->namespace ? "/" : "", ev->name);
	log_info("event accepted", "event_id", r->qreq.event_id, "object", object,
	    "severity", event_severity_name(ev->severity), "reason", ev->reason,
	    "alerts", alerts.data, "targets", targets.data, NULL);
	free(object);
	util_buf_free(&targets);
	util_buf_free(&alerts);
}

/* The whole body is here: authenticate, parse, match, and answer or enqueue. */
static enum MHD_Result
http_process_event(struct http_req *r)
{
	const struct conf *c = r->rt->conf;
	if (c->auth.hmac_key != NULL) {
		const char *sig = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "X-Signature");
		enum auth_result a = auth_check_hmac(c->auth.hmac_key, c->auth.hmac_key_len, sig,
		    r->body ? r->body : "", r->len);
		if (a == AUTH_INVALID && c->auth.hmac_key_previous != NULL &&
		    auth_check_hmac(c->auth.hmac_key_previous, c->auth.hmac_key_previous_len, sig,
		    r->body ? r->body : "", r->len) == AUTH_OK) {
			a = AUTH_OK;
			log_debug("signature made with auth.hmac_key_previous", "remote",
			    http_remote(r), NULL);
		}
		if (a != AUTH_OK) {
			const char *msg = a == AUTH_MISSING ? "missing signature" : "invalid signature";
			http_reject(r, msg, NULL);
			return http_error(r, MHD_HTTP_UNAUTHORIZED, msg, NULL, NULL);
		}
	}
	char err[512], field[256];
	struct event *ev = event_parse(r->body ? r->body : "", r->len, err, sizeof(err),
	    field, sizeof(field));
	if (ev == NULL) {
		http_reject(r, err, field[0] ? field : NULL);
		return http_error(r, MHD_HTTP_BAD_REQUEST, err, field[0] ? field : NULL, NULL);
	}
	size_t n = rules_match(r->rt->rules, ev, &r->match);
	if (n == 0) {
		metrics_event(METRICS_EVENT_IGNORED);
		if (log_enabled(LOG_LEVEL_DEBUG))
			log_debug("event ignored", "kind", ev->kind, "name", ev->name, NULL);
		event_free(ev);
		return http_respond(r, MHD_HTTP_ACCEPTED, util_strdup("{\"status\":\"ignored\"}\n"),
		    NULL);
	}
	r->items = util_calloc(n, sizeof(*r->items));
	r->extras = util_calloc(n, sizeof(*r->extras));
	for (size_t i = 0; i < n; i++) {
		const struct rules_target *t = &r->match.targets[i];
		r->extras[i] = http_extra_json(t);
		r->items[i].provider = c->providers[t->provider].name;
		r->items[i].channel = t->channel;
		r->items[i].alerts = t->alerts;
		r->items[i].extra = r->extras[i];
	}
	struct queue_req *q = &r->qreq;
	util_new_id(q->event_id);
	q->event = r->body ? r->body : "";
	q->event_len = r->len;
	q->items = r->items;
	q->nitems = n;
	q->has_dedup = c->dedup.window > 0;
	if (q->has_dedup)
		dedup_key(ev, c->dedup.normalize_durations, q->dedup_key);
	q->dedup_window = c->dedup.window;
	q->done = http_on_committed;
	q->arg = r;
	if (!atomic_load(&r->h->ready)) {
		event_free(ev);
		metrics_event(METRICS_EVENT_REJECTED);
		return http_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "shutting down", NULL,
		    http_retry_after);
	}
	http_log_accepted(r, ev);
	event_free(ev);
	r->phase = HTTP_PHASE_QUEUED;
	/* Suspend before submitting: the writer may resume at once. */
	MHD_suspend_connection(r->conn);
	queue_writer_submit(r->h->writer, q);
	return MHD_YES;
}

static enum MHD_Result
http_get(struct http_req *r, enum http_route route)
{
	struct http *h = r->h;
	switch (route) {
	case HTTP_ROUTE_HEALTHZ:
		return http_respond(r, MHD_HTTP_OK, util_strdup("{\"status\":\"ok\"}\n"), NULL);
	case HTTP_ROUTE_READYZ:
		if (!atomic_load(&h->ready))
			return http_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "not ready", NULL,
			    http_retry_after);
		if (!queue_writer_healthy(h->writer))
			return http_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "queue not writable", NULL,
			    http_retry_after);
		return http_respond(r, MHD_HTTP_OK, util_strdup("{\"status\":\"ready\"}\n"), NULL);
	case HTTP_ROUTE_METRICS: {
		struct util_buf b = {0};
		pthread_mutex_lock(&h->metrics_lock);
		if (h->metrics_queue == NULL) {
			char err[256];
			h->metrics_queue = queue_open(h->state_dir, false, err, sizeof(err));
		}
		metrics_render(&b, h->metrics_queue);
		pthread_mutex_unlock(&h->metrics_lock);
		struct MHD_Response *resp = MHD_create_response_from_buffer(b.len, b.data,
		    MHD_RESPMEM_MUST_FREE);
		if (resp == NULL) {
			util_buf_free(&b);
			return MHD_NO;
		}
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
		    "text/plain; version=0.0.4; charset=utf-8");
		r->code = MHD_HTTP_OK;
		r->phase = HTTP_PHASE_ANSWERED;
		enum MHD_Result ret = MHD_queue_response(r->conn, MHD_HTTP_OK, resp);
		MHD_destroy_response(resp);
		return ret;
	}
	default:
		return MHD_NO;
	}
}


/* mTLS: 0 when the client presented a certificate that the trusted CA signed. */
static int
http_verify_client(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn,
	    MHD_CONNECTION_INFO_GNUTLS_SESSION);
	if (ci == NULL || ci->tls_session == NULL)
		return -1;
	gnutls_session_t session = (gnutls_session_t)ci->tls_session;
	unsigned status = 0;
	if (gnutls_certificate_get_peers(session, NULL) == NULL)
		return -1;
	/* The chain must lead to the trusted CA and allow TLS client use: a
	 * certificate issued for servers only (EKU serverAuth) is not a client's. */
	gnutls_typed_vdata_st purpose = {
		.type = GNUTLS_DT_KEY_PURPOSE_OID,
		.data = (unsigned char *)GNUTLS_KP_TLS_WWW_CLIENT,
	};
	if (gnutls_certificate_verify_peers(session, &purpose, 1, &status) != GNUTLS_E_SUCCESS ||
	    status != 0)
		return -1;
	return 0;
}

/* Headers are in: everything that can be decided without the body. */
static enum MHD_Result
http_first_call(struct http_req *r, const char *url, const char *method)
{
	struct http *h = r->h;
	enum http_route route;
	if (strcmp(url, "/") == 0)
		route = HTTP_ROUTE_EVENT;
	else if (strcmp(url, "/healthz") == 0)
		route = HTTP_ROUTE_HEALTHZ;
	else if (strcmp(url, "/readyz") == 0)
		route = HTTP_ROUTE_READYZ;
	else if (strcmp(url, "/metrics") == 0)
		route = HTTP_ROUTE_METRICS;
	else
		return http_error(r, MHD_HTTP_NOT_FOUND, "not found", NULL, NULL);

	if (route != HTTP_ROUTE_EVENT) {
		if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
			static const char *const allow[] = { "Allow", "GET, HEAD", NULL };
			return http_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed", NULL,
			    allow);
		}
		return http_get(r, route);
	}
	if (strcmp(method, "POST") != 0) {
		static const char *const allow[] = { "Allow", "POST", NULL };
		return http_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed", NULL, allow);
	}
	if (h->need_client_cert && http_verify_client(r->conn) != 0) {
		http_reject(r, "client certificate missing or not trusted", NULL);
		return http_error(r, MHD_HTTP_UNAUTHORIZED, "client certificate required", NULL, NULL);
	}
	if (!atomic_load(&h->ready)) {
		metrics_event(METRICS_EVENT_REJECTED);
		return http_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "shutting down", NULL,
		    http_retry_after);
	}
	const char *ct = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_CONTENT_TYPE);
	if (!http_is_json(ct)) {
		http_reject(r, "unsupported content type", NULL);
		return http_error(r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
		    "Content-Type must be application/json", NULL, NULL);
	}
	const char *cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_CONTENT_LENGTH);
	size_t declared = 0;
	if (cl != NULL) {
		char *end;
		errno = 0;
		unsigned long long v = strtoull(cl, &end, 10);
		if (errno == 0 && end != cl && v > (unsigned long long)h->max_body) {
			http_reject(r, "body too large", NULL);
			char *msg = util_printf("body larger than %ld bytes", h->max_body);
			enum MHD_Result ret = http_error(r, MHD_HTTP_CONTENT_TOO_LARGE, msg, NULL, NULL);
			free(msg);
			return ret;
		}
		if (errno == 0 && end != cl && v > 0)
			declared = (size_t)v;
	}
	r->rt = runtime_acquire();
	const struct conf *c = r->rt->conf;
	if (c->auth.token != NULL) {
		const char *authz = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
		    MHD_HTTP_HEADER_AUTHORIZATION);
		enum auth_result a = auth_check_token(c->auth.token, authz);
		if (a != AUTH_OK) {
			static const char *const www[] = { "WWW-Authenticate", "Bearer", NULL };
			const char *msg = a == AUTH_MISSING ? "missing bearer token" :
			    "invalid bearer token";
			http_reject(r, msg, NULL);
			return http_error(r, MHD_HTTP_UNAUTHORIZED, msg, NULL, www);
		}
	}
	/* Only an authenticated client gets its declared body allocated up front. */
	if (declared > 0) {
		r->cap = declared + 1;
		r->body = util_malloc(r->cap);
	}
	r->phase = HTTP_PHASE_BODY;
	return MHD_YES;
}

static enum MHD_Result
http_access(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
    const char *version, const char *upload_data, size_t *upload_size, void **con_cls)
{
	struct http *h = cls;
	struct http_req *r = *con_cls;
	if (r == NULL) {
		r = util_calloc(1, sizeof(*r));
		r->h = h;
		r->conn = conn;
		r->started = util_mono();
		atomic_fetch_add(&h->active, 1);
		*con_cls = r;
		return http_first_call(r, url, method);
	}
	switch (r->phase) {
	case HTTP_PHASE_BODY:
		if (*upload_size > 0) {
			size_t n = *upload_size;
			*upload_size = 0;
			if (r->len + n > (size_t)h->max_body) {
				r->phase = HTTP_PHASE_DISCARD;
				r->discarded = r->len + n;
				free(r->body);
				r->body = NULL;
				r->len = r->cap = 0;
				return MHD_YES;
			}
			if (r->len + n + 1 > r->cap) {
				size_t cap = r->cap ? r->cap : 4096;
				while (cap < r->len + n + 1)
					cap *= 2;
				if (cap > (size_t)h->max_body + 1)
					cap = (size_t)h->max_body + 1;
				r->body = util_realloc(r->body, cap);
				r->cap = cap;
			}
			memcpy(r->body + r->len, upload_data, n);
			r->len += n;
			return MHD_YES;
		}
		if (r->body != NULL)
			r->body[r->len] = '\0';
		return http_process_event(r);
	case HTTP_PHASE_DISCARD:
		if (*upload_size > 0) {
			r->discarded += *upload_size;
			*upload_size = 0;
			if (r->discarded > (size_t)h->max_body * HTTP_DISCARD_FACTOR) {
				r->code = MHD_HTTP_CONTENT_TOO_LARGE;
				return MHD_NO;   /* close: not worth reading further */
			}
			return MHD_YES;
		}
		http_reject(r, "body too large", NULL);
		{
			char *msg = util_printf("body larger than %ld bytes", h->max_body);
			enum MHD_Result ret = http_error(r, MHD_HTTP_CONTENT_TOO_LARGE, msg, NULL, NULL);
			free(msg);
			return ret;
		}
	case HTTP_PHASE_QUEUED:
		/* Spurious call while suspended cannot happen; be safe. */
		*upload_size = 0;
		return MHD_YES;
	case HTTP_PHASE_COMMITTED:
		return http_answer_committed(r);
	case HTTP_PHASE_ANSWERED:
		*upload_size = 0;   /* body after an early answer: drop it */
		return MHD_YES;
	}
	return MHD_NO;
}

static void
http_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct http_req *r = *con_cls;
	if (r == NULL)
		return;
	if (r->code != 0)
		metrics_http(r->code, util_mono() - r->started);
	rules_result_clear(&r->match);
	if (r->extras != NULL) {
		for (size_t i = 0; i < r->qreq.nitems; i++)
			free(r->extras[i]);
		free(r->extras);
	}
	free(r->items);
	free(r->body);
	runtime_release(r->rt);
	atomic_fetch_sub(&r->h->active, 1);
	free(r);
	*con_cls = NULL;
}

/*
 * Accept policy: refuse (close) a connection beyond listen.max_connections.
 * The slot is reserved here, atomically, because several daemons accept at
 * the same time: a check here and a count at NOTIFY_STARTED let two of them
 * pass on the last slot. NOTIFY_CLOSED gives it back. (If libmicrohttpd fails
 * to set up a connection after this point, out of memory, it logs the error
 * and the slot stays taken: one fewer connection until restart.)
 */
static enum MHD_Result
http_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
	(void)addr;
	(void)addrlen;
	struct http *h = cls;
	if (atomic_fetch_add(&h->connections, 1) < h->max_connections)
		return MHD_YES;
	atomic_fetch_sub(&h->connections, 1);
	return MHD_NO;
}

static void
http_connection_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
    enum MHD_ConnectionNotificationCode code)
{
	(void)conn;
	(void)socket_context;
	struct http *h = cls;
	if (code == MHD_CONNECTION_NOTIFY_CLOSED)
		atomic_fetch_sub(&h->connections, 1);
}

static void
http_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char *msg = util_vprintf(fmt, ap);
	size_t n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		msg[--n] = '\0';
	log_debug("libmicrohttpd", "detail", msg, NULL);
	free(msg);
}

/*
 * SO_REUSEPORT (several daemons, see http_start) also lets another process of
 * the same user join a port that is already in use, silently splitting the
 * traffic between two instances. Probe with a plain bind first: it fails with
 * EADDRINUSE while anyone listens there. Returns false only for that case.
 */
static bool
http_port_free(const struct sockaddr_storage *ss, bool dual)
{
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return true;            /* libmicrohttpd reports the real problem */
	int one = 1, v6only = dual ? 0 : 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));   /* ignore TIME_WAIT */
	if (ss->ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only));
	socklen_t len = ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
	    sizeof(struct sockaddr_in);
	int rc = bind(fd, (const struct sockaddr *)ss, len), e = errno;
	close(fd);
	return !(rc < 0 && e == EADDRINUSE);
}

static char *
http_read_pem(const char *path, char *err, size_t errlen)
{
	if (path == NULL)
		return NULL;
	return util_read_file(path, NULL, err, errlen);
}

/*
 * MHD_stop_daemon() calls shutdown(SHUT_RDWR) on its listening socket. On a
 * socket inherited from systemd that socket is systemd's too: shut down, it
 * stops listening, systemd marks fluxrelay.socket failed and the next
 * connection is refused instead of starting the service again. Quiescing first
 * makes libmicrohttpd forget the socket (no shutdown, no close); connections
 * still in its backlog wait there for the next instance. Only our copy of the
 * descriptor is closed.
 */
static void
http_stop_daemon(struct http *h, struct MHD_Daemon *mhd)
{
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(mhd, MHD_DAEMON_INFO_LISTEN_FD);
	int fd = -1;
	if (h->inherited_fd >= 0 && di != NULL && di->listen_fd == h->inherited_fd)
		fd = MHD_quiesce_daemon(mhd);
	MHD_stop_daemon(mhd);
	if (fd >= 0)
		close(fd);
}

struct http *
http_start(const struct conf *c, struct queue_writer *w, int listen_fd, char *err, size_t errlen)
{
	struct http *h = util_calloc(1, sizeof(*h));
	h->writer = w;
	h->inherited_fd = listen_fd;
	h->max_body = c->listen.max_body;
	h->state_dir = util_strdup(c->state_dir);
	pthread_mutex_init(&h->metrics_lock, NULL);
	/* Everything else is up when the server starts: a connection that an
	 * inherited socket queued before now is served, not refused. */
	atomic_store(&h->ready, true);

	/* MHD_USE_ERROR_LOG: without it libmicrohttpd never calls http_mhd_log. */
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_ALLOW_SUSPEND_RESUME |
	    MHD_USE_ERROR_LOG;
	if (MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES)
		flags |= MHD_USE_EPOLL;
	else
		flags |= MHD_USE_POLL;

	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	if (listen_fd < 0) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
		if (inet_pton(AF_INET, c->listen.address, &sin->sin_addr) == 1) {
			sin->sin_family = AF_INET;
			sin->sin_port = htons((uint16_t)c->listen.port);
		} else if (inet_pton(AF_INET6, c->listen.address, &sin6->sin6_addr) == 1) {
			sin6->sin6_family = AF_INET6;
			sin6->sin6_port = htons((uint16_t)c->listen.port);
			flags |= MHD_USE_IPv6;
			/* SPEC §3: "::" means every address, IPv4 included. */
			if (IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr))
				flags |= MHD_USE_DUAL_STACK;
		} else {
			snprintf(err, errlen, "listen address %s is not an IPv4 or IPv6 address",
			    c->listen.address);
			goto fail;
		}
	}

	if (c->listen.tls_cert_file != NULL) {
		h->tls_cert = http_read_pem(c->listen.tls_cert_file, err, errlen);
		if (h->tls_cert == NULL)
			goto fail;
		h->tls_key = http_read_pem(c->listen.tls_key_file, err, errlen);
		if (h->tls_key == NULL)
			goto fail;
		if (c->listen.tls_client_ca_file != NULL) {
			h->tls_trust = http_read_pem(c->listen.tls_client_ca_file, err, errlen);
			if (h->tls_trust == NULL)
				goto fail;
			h->need_client_cert = true;
		}
		flags |= MHD_USE_TLS;
	}

	/*
	 * Several daemons per core, each with its own epoll thread and its own
	 * SO_REUSEPORT listening socket: libmicrohttpd's internal thread pool
	 * tends to put every keep-alive connection on one thread (DESIGN-NOTES.md),
	 * and the kernel's reuseport hash spreads connections only statistically:
	 * with one daemon per core a run could leave one core idle (measured
	 * 50k-87k requests/s from run to run); with four per core the scheduler
	 * evens the load out (66k-80k, lower p99; bench/README.md). An inherited socket is one
	 * socket: one daemon with a thread pool serves it.
	 */
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	long want = HTTP_DAEMONS_PER_CPU * (ncpu < 1 ? 1 : ncpu);
	int ndaemons = want > HTTP_MAX_DAEMONS ? HTTP_MAX_DAEMONS : (int)want;
	int pool = 1;
	if (listen_fd >= 0) {
		pool = ndaemons;
		ndaemons = 1;
	}
	if (listen_fd < 0 && ndaemons > 1 && c->listen.port != 0 &&
	    !http_port_free(&ss, (flags & MHD_USE_DUAL_STACK) == MHD_USE_DUAL_STACK)) {
		snprintf(err, errlen, "cannot listen on %s:%d (address in use)", c->listen.address,
		    c->listen.port);
		goto fail;
	}
	unsigned timeout = (unsigned)ceil(c->listen.timeout);
	/* Each daemon may take them all; http_accept enforces the sum. */
	h->max_connections = c->listen.max_connections;
	unsigned limit = (unsigned)c->listen.max_connections;
	for (int i = 0; i < ndaemons; i++) {
		struct MHD_OptionItem opts[16];
		int n = 0;
		/* First, so that libmicrohttpd's messages about later options reach it. */
		opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_EXTERNAL_LOGGER,
			(intptr_t)http_mhd_log, h };
		opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_LIMIT, (intptr_t)limit, NULL };
		opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)timeout,
			NULL };
		opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_NOTIFY_COMPLETED,
			(intptr_t)http_completed, NULL };
		opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_NOTIFY_CONNECTION,
			(intptr_t)http_connection_notify, h };
		if (pool > 1)
			opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_THREAD_POOL_SIZE, pool, NULL };
		/* Headers beyond this are answered 431: bounds per-connection memory. */
		opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_MEMORY_LIMIT, 32 * 1024,
			NULL };
		if (listen_fd >= 0) {
			opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_LISTEN_SOCKET, listen_fd, NULL };
		} else {
			opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_SOCK_ADDR, 0, &ss };
			if (ndaemons > 1)
				opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_LISTENING_ADDRESS_REUSE,
					1, NULL };
		}
		if (h->tls_cert != NULL) {
			opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_CERT, 0, h->tls_cert };
			opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_KEY, 0, h->tls_key };
			if (h->tls_trust != NULL)
				opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_TRUST, 0,
					h->tls_trust };
		}
		opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_END, 0, NULL };

		struct MHD_Daemon *mhd = MHD_start_daemon(flags, 0, http_accept, h, http_access, h,
		    MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
		if (mhd == NULL) {
			if (listen_fd >= 0)
				snprintf(err, errlen, "cannot serve on the inherited socket");
			else
				snprintf(err, errlen,
				    "cannot listen on %s:%d (address in use, or not allowed)",
				    c->listen.address, c->listen.port);
			goto fail;
		}
		h->mhd[h->nmhd++] = mhd;
		if (i == 0) {
			const union MHD_DaemonInfo *di = MHD_get_daemon_info(mhd,
			    MHD_DAEMON_INFO_BIND_PORT);
			h->port = di ? di->port : c->listen.port;
			/* The others join the port the first one got (it may have been 0). */
			if (ss.ss_family == AF_INET)
				((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)h->port);
			else if (ss.ss_family == AF_INET6)
				((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)h->port);
		}
	}
	return h;
fail:
	for (int i = 0; i < h->nmhd; i++)
		http_stop_daemon(h, h->mhd[i]);
	free(h->tls_cert);
	free(h->tls_key);
	free(h->tls_trust);
	free(h->state_dir);
	pthread_mutex_destroy(&h->metrics_lock);
	free(h);
	return NULL;
}

int
http_port(const struct http *h)
{
	return h->port;
}

void
http_set_ready(struct http *h, bool ready)
{
	atomic_store(&h->ready, ready);
}

void
http_drain(struct http *h, double timeout)
{
	double deadline = util_mono() + timeout;
	while (atomic_load(&h->active) > 0 && util_mono() < deadline) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}

void
http_stop(struct http *h)
{
	if (h == NULL)
		return;
	for (int i = 0; i < h->nmhd; i++)
		http_stop_daemon(h, h->mhd[i]);
	queue_close(h->metrics_queue);
	pthread_mutex_destroy(&h->metrics_lock);
	free(h->tls_cert);
	free(h->tls_key);
	free(h->tls_trust);
	free(h->state_dir);
	free(h);
}
