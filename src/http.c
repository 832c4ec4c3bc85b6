/*
 * http: the libmicrohttpd server (fluxrelay(8), HTTP INTERFACE).
 *
 * Request flow (libmicrohttpd calls http_access several times per request):
 *   1st call   headers only: route, method, readiness, Content-Type, declared
 *              Content-Length against max_body, bearer token. A failure is
 *              decided here, before the body is read (http_refuse).
 *   next calls body chunks, copied into the request's buffer up to max_body
 *              (chunked bodies have no declared length: counted here).
 *   last call  (*upload_size == 0) signature, parse, match. Ignored events are
 *              answered now (503 when the writer is not healthy, as /readyz).
 *              Matched ones are handed to the queue writer and the
 *              connection is suspended; the writer resumes it once the batch is
 *              durable, and the call after that answers 202 / 503 (and logs
 *              "event accepted" only for what was stored).
 * So no HTTP thread ever waits on disk: a slow fsync delays only its own
 * requests. Per-request state is freed in the completion callback only.
 *
 * Refusing before the body: Flux's clients (Go) and Python's write the whole
 * body before they read the answer. libmicrohttpd closes a connection whose
 * answer was queued before its body was read, and closing a socket with
 * unread data makes the kernel reset it: the client sees "broken pipe", never
 * the answer, and retries a permanent error. So a refusal waits for a body of
 * up to HTTP_DISCARD_FACTOR x max_body (read and discarded, then answered; the
 * connection may stay open); beyond that, or when the client waits for
 * "100 Continue", the answer goes at once and the closed connection lingers
 * (http_linger.c: its FIN is sent, what the client still sends is read and
 * dropped for a while, then the socket is closed).
 *
 * Connections (main listener): listen.max_connections is one limit over
 * every libmicrohttpd daemon; at the limit an idle keep-alive connection is
 * closed to make room, else the new one is refused (http_conn.c).
 *
 * The optional metrics listener (listen.metrics_address/metrics_port) is a
 * separate plain-HTTP daemon serving only GET /metrics, /healthz, /readyz.
 *
 * Threads: libmicrohttpd's internal threads call everything here except
 * http_on_committed (writer thread) and http_start/stop/set_ready/drain
 * (main).
 */
#include "config.h"
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <limits.h>
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
#include "http_conn.h"
#include "http_linger.h"
#include "incident.h"
#include "log.h"
#include "metrics.h"
#include "rules.h"
#include "snapshot.h"
#include "util.h"

/* libmicrohttpd daemons started per core, and at most (see http_start).
 * bench/run's (b0) runs the same layout; -DHTTP_DAEMONS_PER_CPU=N to measure
 * another. */
#ifndef HTTP_DAEMONS_PER_CPU
#define HTTP_DAEMONS_PER_CPU 4
#endif
#define HTTP_MAX_DAEMONS HTTP_CONN_POOLS

/* A refused request's body is read to its end up to this many times max_body
 * (fluxrelay(8)); a larger one is not worth reading just to say no. */
#define HTTP_DISCARD_FACTOR 4
/* The metrics listener serves a scraper or two and probes. */
#define HTTP_METRICS_CONNECTIONS 64
/* libmicrohttpd's memory per connection: a request line and headers beyond
 * it are answered 431 (or 414). */
#define HTTP_CONNECTION_MEMORY (32 * 1024)

struct http;

/* Which listener a libmicrohttpd daemon serves. */
struct http_listener {
	struct http *h;
	bool metrics_only;
};

struct http {
	struct MHD_Daemon *mhd[HTTP_MAX_DAEMONS];
	int nmhd;
	struct MHD_Daemon *metrics_mhd;
	struct http_listener main_listener, metrics_listener;
	struct queue_writer *writer;
	atomic_bool ready;
	_Atomic long max_body;       /* listen.max_body; a reload changes it */
	int port, metrics_port;
	char *tls_cert, *tls_key, *tls_trust;   /* PEM contents; MHD keeps pointers */
	bool need_client_cert;
	/* Closed connections still read from, for listen.timeout at most. */
	struct http_linger *linger;
	/* The main listener's connections: the limit, idle ones, refusals. */
	struct http_conns *conns;
	/* libmicrohttpd's first complaint while http_start runs; log_lock. */
	pthread_mutex_t log_lock;
	bool starting;
	char start_err[256];
	/* A socket passed by socket activation, else -1: systemd keeps listening
	 * on it after we exit, so http_stop must not shut it down (see there). */
	int inherited_fd;
	/* Requests between first call and completion: written twice per request
	 * by every HTTP thread, so kept off the cache lines of the fields above,
	 * which every request reads. */
	char pad_active[64];
	atomic_int active;
	char pad_end[64];
};

enum http_route { HTTP_ROUTE_EVENT, HTTP_ROUTE_HEALTHZ, HTTP_ROUTE_READYZ, HTTP_ROUTE_METRICS };

enum http_phase {
	HTTP_PHASE_BODY,       /* reading the body */
	HTTP_PHASE_DISCARD,    /* refused: read and drop the body, then answer pending_* */
	HTTP_PHASE_QUEUED,     /* suspended, waiting for the writer */
	HTTP_PHASE_COMMITTED,  /* resumed: answer from req.result */
	HTTP_PHASE_ANSWERED,
};

/* Per-request state, freed by http_completed. */
struct http_req {
	struct http *h;
	struct MHD_Connection *conn;
	struct http_conn *cx;          /* NULL on the metrics listener */
	bool metrics_only;
	double started;
	int code;
	enum http_phase phase;
	char *body;
	size_t len, cap, discarded;
	long max_body;                 /* h->max_body when the request began */
	/* The refusal sent once a discarded body is read (HTTP_PHASE_DISCARD). */
	int pending_code;
	char *pending_msg;
	const char *const *pending_headers;
	struct snapshot *snap;
	/* auth.clients: the client the request comes from (index), else
	 * HTTP_CLIENT_NONE (no client: the top-level credentials or none), or
	 * HTTP_CLIENT_BY_SIGNATURE while its X-Signature is to decide. */
	long client;
	/* With HTTP_CLIENT_BY_SIGNATURE: what the bearer token check found
	 * (AUTH_MISSING: none sent; AUTH_INVALID: one no client has), and
	 * whether any token is configured (a refusal then challenges Bearer). */
	enum auth_result token_result;
	bool token_possible;
	struct event *ev;              /* kept until answered, for the "accepted" line */
	struct rules_result match;
	struct queue_item *items;
	char **extras;
	size_t nextras;
	char *thread_key;              /* of the event's object, when a target has threads */
	struct incident_req *inc;      /* notify = "changes" hits: the writer plans the rows */
	struct queue_req qreq;
	char peer[64];
};

#define HTTP_CLIENT_NONE (-1)
#define HTTP_CLIENT_BY_SIGNATURE (-2)

static const char *const http_allow_get[] = { "Allow", "GET, HEAD", NULL };
static const char *const http_allow_post[] = { "Allow", "POST", NULL };
static const char *const http_www_bearer[] = { "WWW-Authenticate", "Bearer", NULL };

/* Answer with body, which this takes (allocated). */
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

/*
 * The constant answers (ignored, and the probes), each built once per HTTP
 * thread and queued again and again: libmicrohttpd counts a response's uses,
 * under a mutex of the response's own, so one per thread shares no lock.
 * Building one per request cost five allocations and frees (the response,
 * its mutex, the Content-Type header) on the hottest path. A thread's
 * responses are dropped when it exits (the key's destructor); a connection
 * still holding one keeps it alive until it is done.
 */
enum http_const { HTTP_CONST_IGNORED, HTTP_CONST_OK, HTTP_CONST_READY, HTTP_NCONST };

static const char *const http_const_body[HTTP_NCONST] = {
	[HTTP_CONST_IGNORED] = "{\"status\":\"ignored\"}\n",
	[HTTP_CONST_OK] = "{\"status\":\"ok\"}\n",
	[HTTP_CONST_READY] = "{\"status\":\"ready\"}\n",
};

struct http_const_set {
	struct MHD_Response *resp[HTTP_NCONST];
};

static pthread_once_t http_const_once = PTHREAD_ONCE_INIT;
static pthread_key_t http_const_key;
static bool http_const_keyed;   /* written once, under http_const_once */

static void
http_const_free(void *arg)
{
	struct http_const_set *set = arg;
	for (int i = 0; i < HTTP_NCONST; i++)
		if (set->resp[i] != NULL)
			MHD_destroy_response(set->resp[i]);
	free(set);
}

static void
http_const_key_init(void)
{
	http_const_keyed = pthread_key_create(&http_const_key, http_const_free) == 0;
}

static struct MHD_Response *
http_const_new(enum http_const c)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(http_const_body[c]),
	    (void *)http_const_body[c], MHD_RESPMEM_PERSISTENT);
	if (resp != NULL)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	return resp;
}

/* This thread's response with the constant body c; *own when it is a new
 * one for this answer only (the thread cannot keep one). NULL without memory. */
static struct MHD_Response *
http_const_response(enum http_const c, bool *own)
{
	pthread_once(&http_const_once, http_const_key_init);
	struct http_const_set *set = http_const_keyed ? pthread_getspecific(http_const_key) : NULL;
	if (set == NULL && http_const_keyed) {
		set = util_calloc(1, sizeof(*set));
		if (pthread_setspecific(http_const_key, set) != 0) {
			free(set);
			set = NULL;
		}
	}
	*own = set == NULL;
	if (set == NULL)
		return http_const_new(c);
	if (set->resp[c] == NULL)
		set->resp[c] = http_const_new(c);
	return set->resp[c];
}

/* Answer with a constant body (ending with a newline for curl users). */
static enum MHD_Result
http_respond_const(struct http_req *r, int code, enum http_const c)
{
	bool own;
	struct MHD_Response *resp = http_const_response(c, &own);
	if (resp == NULL)
		return MHD_NO;
	r->code = code;
	r->phase = HTTP_PHASE_ANSWERED;
	enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)code, resp);
	if (own)
		MHD_destroy_response(resp);
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

/* The request's cluster: its client's name, "" without one. */
static const char *
http_cluster(const struct http_req *r)
{
	if (r->snap == NULL || r->client < 0)
		return "";
	return r->snap->conf->auth.clients[r->client].name;
}

/* events_received_total, and client_events_total when a client sent it. */
static void
http_count(const struct http_req *r, enum metrics_event_status s)
{
	metrics_event(s);
	if (r->snap != NULL && r->client >= 0)
		metrics_client_event(http_cluster(r), s);
}

static void
http_reject(struct http_req *r, const char *why, const char *detail)
{
	http_count(r, METRICS_EVENT_REJECTED);
	log_info("event rejected", "remote", http_remote(r), "error", why,
	    detail ? "field" : NULL, detail, NULL);
}

/* ------------------------------------------------------------------------ */
/* Refusals before the body and lingering closes                             */

enum http_body { HTTP_BODY_NONE, HTTP_BODY_READ, HTTP_BODY_LINGER };

/*
 * What to do with the body of a request refused from its headers: none
 * comes; read it (chunked, or a declared length up to HTTP_DISCARD_FACTOR x
 * max_body); or do not wait for it (a larger declared length, or
 * "Expect: 100-continue", whose client sends nothing before it hears 100).
 */
static enum http_body
http_body_expected(struct http_req *r)
{
	const char *te = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_TRANSFER_ENCODING);
	const char *cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_CONTENT_LENGTH);
	unsigned long long declared = 0;
	if (cl != NULL) {
		char *end;
		errno = 0;
		declared = strtoull(cl, &end, 10);
		if (errno != 0 || end == cl)
			declared = ULLONG_MAX;   /* libmicrohttpd refuses such requests itself */
	}
	if (te == NULL && declared == 0)
		return HTTP_BODY_NONE;
	const char *expect = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_EXPECT);
	if (expect != NULL && strcasecmp(expect, "100-continue") == 0)
		return HTTP_BODY_LINGER;
	if (te == NULL && declared > (unsigned long long)r->max_body * HTTP_DISCARD_FACTOR)
		return HTTP_BODY_LINGER;
	return HTTP_BODY_READ;
}

/*
 * Refuse a request from its headers alone (code, msg, extra headers) so that
 * the answer reaches a client that writes its whole body before reading: see
 * the top of this file. headers must be static.
 */
static enum MHD_Result
http_refuse(struct http_req *r, int code, const char *msg, const char *const *headers)
{
	switch (http_body_expected(r)) {
	case HTTP_BODY_READ:
		r->pending_code = code;
		r->pending_msg = util_strdup(msg);
		r->pending_headers = headers;
		r->phase = HTTP_PHASE_DISCARD;
		return MHD_YES;
	case HTTP_BODY_LINGER:
		http_conn_linger(r->cx);
		break;
	case HTTP_BODY_NONE:
		break;
	}
	return http_error(r, code, msg, NULL, headers);
}

/* The request line is parsed: the connection is busy from here (earlier
 * than the first access call, which waits for every header). Returns the
 * initial con_cls: none. */
static void *
http_uri_log(void *cls, const char *uri, struct MHD_Connection *conn)
{
	(void)cls;
	(void)uri;
	http_conn_busy(http_conn_of(conn));
	return NULL;
}

/* ------------------------------------------------------------------------ */
/* Events                                                                   */

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

static void
http_log_accepted(struct http_req *r, const struct event *ev)
{
	/*
	 * SPEC §10: one "event accepted" line per target, with event_id and
	 * target spelled as the delivery outcomes spell them, so `grep
	 * event_id=` and `grep target=` find the acceptance next to what became
	 * of it. An event that delivers nothing gets one line without a target.
	 */
	if (!log_enabled(LOG_LEVEL_INFO))
		return;
	struct util_buf alerts = {0};
	size_t nalerts = r->inc ? r->inc->nalerts : r->match.nalerts;
	for (size_t i = 0; i < nalerts; i++)
		util_buf_printf(&alerts, "%s%s", i ? "," : "",
		    r->inc ? r->inc->alerts[i] : r->match.alerts[i]);
	char *object = util_printf("%s/%s%s%s", ev->kind, ev->namespace ? ev->namespace : "",
	    ev->namespace ? "/" : "", ev->name);
	const char *alist = alerts.data ? alerts.data : "";
	const char *severity = event_severity_name(ev->severity);
	for (size_t i = 0; i < r->qreq.nitems; i++) {
		const struct queue_item *it = &r->qreq.items[i];
		char *label = rules_target_label(it->provider, it->channel);
		/* The alerts of this target, as its queue row has them. */
		log_info("event accepted", "event_id", r->qreq.event_id, "target", label,
		    "object", object, "severity", severity, "reason", ev->reason, "alerts",
		    it->alerts && it->alerts[0] ? it->alerts : alist, "kind",
		    queue_kind_name(it->kind), NULL);
		free(label);
	}
	/* Accepted with no delivery: only an incident's state changed (a
	 * failure counted, or a change whose providers are all suspended). */
	if (r->qreq.nitems == 0)
		log_info("event accepted", "event_id", r->qreq.event_id, "object", object,
		    "severity", severity, "reason", ev->reason, "alerts", alist,
		    "deliveries", "0", NULL);
	free(object);
	util_buf_free(&alerts);
}

/* 503 answers carry no Retry-After: Flux's clients then use their own
 * backoff, the longest retry window they allow. */
static enum MHD_Result
http_answer_committed(struct http_req *r)
{
	switch (r->qreq.result) {
	case QUEUE_RESULT_ACCEPTED: {
		http_count(r, METRICS_EVENT_ACCEPTED);
		http_log_accepted(r, r->ev);
		struct util_buf b = {0};
		util_buf_printf(&b, "{\"status\":\"accepted\",\"id\":\"%s\",\"alerts\":[",
		    r->qreq.event_id);
		size_t nalerts = r->inc ? r->inc->nalerts : r->match.nalerts;
		for (size_t i = 0; i < nalerts; i++) {
			if (i > 0)
				util_buf_puts(&b, ",");
			util_buf_json_string(&b, r->inc ? r->inc->alerts[i] : r->match.alerts[i]);
		}
		util_buf_puts(&b, "]}");
		return http_respond_buf(r, MHD_HTTP_ACCEPTED, &b, NULL);
	}
	case QUEUE_RESULT_DUPLICATE: {
		http_count(r, METRICS_EVENT_DUPLICATE);
		log_info("event duplicate", "event_id", r->qreq.event_id, "remote", http_remote(r), NULL);
		struct util_buf b = {0};
		util_buf_printf(&b, "{\"status\":\"duplicate\",\"id\":\"%s\"}", r->qreq.event_id);
		return http_respond_buf(r, MHD_HTTP_ACCEPTED, &b, NULL);
	}
	case QUEUE_RESULT_IGNORED:
		/* notify = "changes" alerts only, with nothing to say (SPEC §12). */
		http_count(r, METRICS_EVENT_IGNORED);
		if (log_enabled(LOG_LEVEL_DEBUG))
			log_debug("event ignored", "kind", r->ev->kind, "name", r->ev->name, NULL);
		return http_respond_const(r, MHD_HTTP_ACCEPTED, HTTP_CONST_IGNORED);
	case QUEUE_RESULT_FULL:
		http_count(r, METRICS_EVENT_REJECTED);
		log_warn("event refused: queue full", "remote", http_remote(r), NULL);
		return http_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "queue full", NULL, NULL);
	case QUEUE_RESULT_SHUTDOWN:
		http_count(r, METRICS_EVENT_REJECTED);
		return http_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "shutting down", NULL, NULL);
	default:
		http_count(r, METRICS_EVENT_REJECTED);
		log_error("event not stored: queue write failed", "remote", http_remote(r), NULL);
		return http_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "queue write failed", NULL, NULL);
	}
}

/*
 * X-Signature against one credential's keys in one pass, so each
 * algorithm's HMAC is computed once per key: the current key, the
 * previous one during a rotation, and each one's bytes as stored when its
 * file ended in a newline. k and klen: those four, in that order (NULL
 * when absent).
 */
static enum auth_result
http_check_keys(struct http_req *r, const unsigned char *const k[AUTH_MAX_KEYS],
    const size_t klen[AUTH_MAX_KEYS])
{
	struct auth_key keys[AUTH_MAX_KEYS];
	bool previous[AUTH_MAX_KEYS];
	size_t n = 0;
	for (size_t i = 0; i < AUTH_MAX_KEYS; i++) {
		if (k[i] == NULL)
			continue;
		keys[n] = (struct auth_key){ k[i], klen[i] };
		previous[n++] = i >= 2;
	}
	const char *sig = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "X-Signature");
	struct auth_stats st;
	enum auth_result a = auth_check_hmac(keys, n, sig, r->body ? r->body : "", r->len, &st);
	if (a == AUTH_OK && previous[st.key])
		log_debug("signature made with hmac_key_previous", "remote", http_remote(r),
		    "cluster", http_cluster(r), NULL);
	return a;
}

/* The top-level auth.hmac_key*. */
static enum auth_result
http_check_signature(struct http_req *r, const struct conf *c)
{
	const unsigned char *const k[] = { c->auth.hmac_key, c->auth.hmac_key_raw,
		c->auth.hmac_key_previous, c->auth.hmac_key_previous_raw };
	const size_t klen[] = { c->auth.hmac_key_len, c->auth.hmac_key_raw_len,
		c->auth.hmac_key_previous_len, c->auth.hmac_key_previous_raw_len };
	return http_check_keys(r, k, klen);
}

/* The hmac_key* of client i. */
static enum auth_result
http_check_client_signature(struct http_req *r, const struct conf *c, size_t i)
{
	const struct conf_client *cl = &c->auth.clients[i];
	const unsigned char *const k[] = { cl->hmac_key, cl->hmac_key_raw,
		cl->hmac_key_previous, cl->hmac_key_previous_raw };
	const size_t klen[] = { cl->hmac_key_len, cl->hmac_key_raw_len,
		cl->hmac_key_previous_len, cl->hmac_key_previous_raw_len };
	return http_check_keys(r, k, klen);
}

/*
 * The signature step of authentication, once the body is here. A client a
 * token identified has only its own key tried; a request no token
 * identified tries the keys of the clients that have no token, in
 * configuration order (the first that verifies names the client), then the
 * top-level key when it has no token of its own. Each key costs at most one
 * HMAC per algorithm the header names (auth_check_hmac), and a header of
 * too many items is refused before any. AUTH_OK, or the reason to refuse.
 */
static enum auth_result
http_authenticate_body(struct http_req *r, const struct conf *c)
{
	if (r->client >= 0) {
		if (c->auth.clients[r->client].hmac_key == NULL)
			return AUTH_OK;
		return http_check_client_signature(r, c, (size_t)r->client);
	}
	if (r->client == HTTP_CLIENT_NONE)
		return c->auth.hmac_key != NULL ? http_check_signature(r, c) : AUTH_OK;
	enum auth_result a = AUTH_MISSING;
	for (size_t i = 0; i < c->auth.nclients; i++) {
		const struct conf_client *cl = &c->auth.clients[i];
		if (cl->token != NULL || cl->hmac_key == NULL)
			continue;
		a = http_check_client_signature(r, c, i);
		if (a == AUTH_OK) {
			r->client = (long)i;
			return AUTH_OK;
		}
		if (a != AUTH_INVALID)
			return a;     /* missing, or too many items: no key can help */
	}
	if (c->auth.token == NULL && c->auth.hmac_key != NULL) {
		r->client = HTTP_CLIENT_NONE;
		a = http_check_signature(r, c);
	}
	return a;
}

/* The whole body is here: authenticate, parse, match, and answer or enqueue. */
static enum MHD_Result
http_process_event(struct http_req *r)
{
	const struct conf *c = r->snap->conf;
	{
		bool by_signature = r->client == HTTP_CLIENT_BY_SIGNATURE;
		enum auth_result a = http_authenticate_body(r, c);
		if (a != AUTH_OK) {
			char msg[64];
			if (a == AUTH_TOO_MANY)
				snprintf(msg, sizeof(msg), "more than %d signatures", AUTH_MAX_SIGNATURES);
			else if (a == AUTH_MISSING && by_signature && r->token_result == AUTH_INVALID)
				snprintf(msg, sizeof(msg), "invalid bearer token");   /* no signature to try */
			else
				snprintf(msg, sizeof(msg), "%s", a == AUTH_MISSING ? "missing signature" :
				    "invalid signature");
			http_reject(r, msg, NULL);
			/* No token verified, and one could have (SPEC §4: Bearer for tokens). */
			return http_error(r, MHD_HTTP_UNAUTHORIZED, msg, NULL,
			    by_signature && r->token_possible ? http_www_bearer : NULL);
		}
	}
	char err[512], field[256];
	struct event *ev = event_parse(r->body ? r->body : "", r->len, err, sizeof(err),
	    field, sizeof(field));
	if (ev == NULL) {
		http_reject(r, err, field[0] ? field : NULL);
		return http_error(r, MHD_HTTP_BAD_REQUEST, err, field[0] ? field : NULL, NULL);
	}
	ev->cluster = http_cluster(r);   /* lives as long as r->snap */
	size_t n = rules_match(r->snap->rules, ev, &r->match);
	bool ignored = n == 0 && r->match.nchanges == 0;
	/* No readiness check here: a request in flight at SIGTERM (headers
	 * before it, body after) is finished like any other (SPEC §8), and a
	 * writer already stopped answers it 503 (QUEUE_RESULT_SHUTDOWN). An
	 * ignored event is never seen by the writer, yet refused under the
	 * conditions that refuse stored events and make /readyz 503 (SPEC §4):
	 * a client must not hear "ignored" from a daemon that could not have
	 * stored it. Atomic loads only: this path takes no lock. */
	if (ignored && !queue_writer_healthy(r->h->writer)) {
		event_free(ev);
		if (!atomic_load(&r->h->ready)) {   /* the writer stopped: shutdown */
			http_count(r, METRICS_EVENT_REJECTED);
			return http_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "shutting down", NULL,
			    NULL);
		}
		http_reject(r, "queue not writable", NULL);
		return http_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "queue not writable", NULL,
		    NULL);
	}
	if (ignored) {
		http_count(r, METRICS_EVENT_IGNORED);
		if (log_enabled(LOG_LEVEL_DEBUG))
			log_debug("event ignored", "kind", ev->kind, "name", ev->name, NULL);
		event_free(ev);
		return http_respond_const(r, MHD_HTTP_ACCEPTED, HTTP_CONST_IGNORED);
	}
	r->ev = ev;
	struct queue_req *q = &r->qreq;
	const char *cluster = incident_cluster(ev);
	if (r->match.nchanges > 0) {
		/* Whether and where it delivers depends on the stored incidents:
		 * the writer plans the rows, EVENT hits' included (incident.h). */
		r->inc = util_calloc(1, sizeof(*r->inc));
		r->inc->conf = c;
		r->inc->ev = ev;
		r->inc->cluster = cluster;
		r->inc->hits = r->match.hits;
		r->inc->nhits = r->match.nhits;
		n = 0;
	}
	r->items = util_calloc(n ? n : 1, sizeof(*r->items));
	r->extras = util_calloc(n ? n : 1, sizeof(*r->extras));
	r->nextras = n;
	for (size_t i = 0; i < n; i++) {
		const struct rules_target *t = &r->match.targets[i];
		const struct conf_provider *p = &c->providers[t->provider];
		r->extras[i] = rules_extra_json(t);
		r->items[i].provider = p->name;
		r->items[i].channel = t->channel;
		r->items[i].alerts = t->alerts;
		r->items[i].extra = r->extras[i];
		/* notify = "events" threads are per object too (SPEC §12). */
		if (rules_threaded(p)) {
			if (r->thread_key == NULL)
				r->thread_key = incident_thread_key(cluster, ev);
			r->items[i].thread_key = r->thread_key;
		}
		r->items[i].cluster = ev->cluster;
	}
	q->incident = r->inc;
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
		return http_respond_const(r, MHD_HTTP_OK, HTTP_CONST_OK);
	case HTTP_ROUTE_READYZ:
		if (!atomic_load(&h->ready))
			return http_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "not ready", NULL, NULL);
		if (!queue_writer_healthy(h->writer))
			return http_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "queue not writable", NULL,
			    NULL);
		return http_respond_const(r, MHD_HTTP_OK, HTTP_CONST_READY);
	case HTTP_ROUTE_METRICS: {
		struct util_buf b = {0};
		metrics_render(&b);   /* memory only: no disk on an HTTP thread */
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

static enum http_route
http_route_of(const char *url)
{
	if (strcmp(url, "/healthz") == 0)
		return HTTP_ROUTE_HEALTHZ;
	if (strcmp(url, "/readyz") == 0)
		return HTTP_ROUTE_READYZ;
	if (strcmp(url, "/metrics") == 0)
		return HTTP_ROUTE_METRICS;
	return HTTP_ROUTE_EVENT;
}

/*
 * The Content-Length of r against max_body: 0 with the declared length in
 * *declared (0 when there is none, or one libmicrohttpd refuses itself), -1
 * when it is larger.
 */
static int
http_declared_length(const struct http_req *r, size_t *declared)
{
	const char *cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_CONTENT_LENGTH);
	char *end;
	*declared = 0;
	if (cl == NULL)
		return 0;
	errno = 0;
	unsigned long long v = strtoull(cl, &end, 10);
	if (errno != 0 || end == cl)
		return 0;
	if (v > (unsigned long long)r->max_body)
		return -1;
	*declared = (size_t)v;
	return 0;
}

/*
 * The token step of authentication, before the body: sets r->client.
 * Without auth.clients, the top-level token when there is one. With them,
 * the bearer token is compared with every client's token and the top-level
 * one, each in constant time: a match names the client (or none, for the
 * top-level token). Without a match the request may still be signed by a
 * client that has only an HMAC key, or with a top-level key that has no
 * token: the signature decides once the body is here; when no such key
 * exists, the request is refused now. AUTH_OK, or why it is refused.
 */
static enum auth_result
http_authenticate_headers(struct http_req *r, const struct conf *c)
{
	const char *hdr = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_AUTHORIZATION);
	r->client = HTTP_CLIENT_NONE;
	if (c->auth.nclients == 0)
		return c->auth.token == NULL ? AUTH_OK : auth_check_token(c->auth.token, hdr);
	const char **tokens = util_calloc(c->auth.nclients + 1, sizeof(*tokens));
	bool by_signature = c->auth.token == NULL && c->auth.hmac_key != NULL;
	bool any_token = c->auth.token != NULL;
	for (size_t i = 0; i < c->auth.nclients; i++) {
		tokens[i] = c->auth.clients[i].token;
		if (tokens[i] == NULL && c->auth.clients[i].hmac_key != NULL)
			by_signature = true;
		any_token = any_token || tokens[i] != NULL;
	}
	tokens[c->auth.nclients] = c->auth.token;
	enum auth_result a;
	long found = auth_find_token(tokens, c->auth.nclients + 1, hdr, &a);
	free(tokens);
	if (found >= 0) {
		r->client = found < (long)c->auth.nclients ? found : HTTP_CLIENT_NONE;
		return AUTH_OK;
	}
	if (by_signature) {
		r->client = HTTP_CLIENT_BY_SIGNATURE;
		r->token_result = a;
		r->token_possible = any_token;
		return AUTH_OK;
	}
	return a;
}

/*
 * An event's headers are in: client certificate, readiness, Content-Type,
 * Content-Length, bearer token, in this order, each refused before the body.
 * The token comes before anything that costs: no HMAC, no buffer for a
 * client without it.
 */
static enum MHD_Result
http_event_headers(struct http_req *r)
{
	struct http *h = r->h;
	size_t declared;
	if (h->need_client_cert && http_verify_client(r->conn) != 0) {
		http_reject(r, "client certificate missing or not trusted", NULL);
		return http_refuse(r, MHD_HTTP_UNAUTHORIZED, "client certificate required", NULL);
	}
	if (!atomic_load(&h->ready)) {
		http_count(r, METRICS_EVENT_REJECTED);
		return http_refuse(r, MHD_HTTP_SERVICE_UNAVAILABLE, "shutting down", NULL);
	}
	if (!http_is_json(MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_CONTENT_TYPE))) {
		http_reject(r, "unsupported content type", NULL);
		return http_refuse(r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
		    "Content-Type must be application/json", NULL);
	}
	if (http_declared_length(r, &declared) < 0) {
		http_reject(r, "body too large", NULL);
		char *msg = util_printf("body larger than %ld bytes", r->max_body);
		enum MHD_Result ret = http_refuse(r, MHD_HTTP_CONTENT_TOO_LARGE, msg, NULL);
		free(msg);
		return ret;
	}
	r->snap = snapshot_acquire();
	enum auth_result a = http_authenticate_headers(r, r->snap->conf);
	if (a != AUTH_OK) {
		const char *msg = a == AUTH_MISSING ? "missing bearer token" : "invalid bearer token";
		http_reject(r, msg, NULL);
		return http_refuse(r, MHD_HTTP_UNAUTHORIZED, msg, http_www_bearer);
	}
	/* Only an authenticated client gets its declared body allocated up front. */
	if (declared > 0) {
		r->cap = declared + 1;
		r->body = util_malloc(r->cap);
	}
	r->phase = HTTP_PHASE_BODY;
	return MHD_YES;
}

/* Headers are in: everything that can be decided without the body. */
static enum MHD_Result
http_first_call(struct http_req *r, const char *url, const char *method)
{
	enum http_route route = http_route_of(url);
	bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;

	if (route != HTTP_ROUTE_EVENT) {
		if (!get)
			return http_refuse(r, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed",
			    http_allow_get);
		return http_get(r, route);
	}
	if (r->metrics_only)
		return http_refuse(r, MHD_HTTP_NOT_FOUND, "not found", NULL);
	/* Events are taken on any path, as notification-controller does: a
	 * Provider address with a path must not lose every event. */
	if (strcmp(method, "POST") != 0) {
		if (get && strcmp(url, "/") != 0)
			return http_refuse(r, MHD_HTTP_NOT_FOUND, "not found", NULL);
		return http_refuse(r, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed",
		    http_allow_post);
	}
	return http_event_headers(r);
}

/* The state of a request at libmicrohttpd's first call for it. */
static struct http_req *
http_req_new(struct http_listener *l, struct MHD_Connection *conn)
{
	struct http_req *r = util_calloc(1, sizeof(*r));
	r->h = l->h;
	r->conn = conn;
	r->metrics_only = l->metrics_only;
	r->client = HTTP_CLIENT_NONE;
	r->started = util_mono();
	r->max_body = atomic_load_explicit(&l->h->max_body, memory_order_relaxed);
	if (!l->metrics_only) {
		r->cx = http_conn_of(conn);
		http_conn_busy(r->cx);
	}
	atomic_fetch_add(&l->h->active, 1);
	return r;
}

/*
 * A chunk of an event's body. Not util_buf: the buffer never grows past
 * max_body + 1 bytes, the per-request memory bound.
 */
static void
http_body_chunk(struct http_req *r, const char *data, size_t n)
{
	if (r->len + n > (size_t)r->max_body) {
		/* A chunked body, or one longer than declared: drop what came, read
		 * the rest, answer 413 at its end. */
		http_reject(r, "body too large", NULL);
		r->pending_code = MHD_HTTP_CONTENT_TOO_LARGE;
		r->pending_msg = util_printf("body larger than %ld bytes", r->max_body);
		r->phase = HTTP_PHASE_DISCARD;
		r->discarded = r->len + n;
		free(r->body);
		r->body = NULL;
		r->len = r->cap = 0;
		return;
	}
	if (r->len + n + 1 > r->cap) {
		size_t cap = r->cap ? r->cap : 4096;
		while (cap < r->len + n + 1)
			cap *= 2;
		if (cap > (size_t)r->max_body + 1)
			cap = (size_t)r->max_body + 1;
		r->body = util_realloc(r->body, cap);
		r->cap = cap;
	}
	memcpy(r->body + r->len, data, n);
	r->len += n;
}

/* A chunk of a refused request's body: MHD_NO to close past the discard limit. */
static enum MHD_Result
http_discard_chunk(struct http_req *r, size_t n)
{
	r->discarded += n;
	if (r->discarded <= (size_t)r->max_body * HTTP_DISCARD_FACTOR)
		return MHD_YES;
	/* Not worth reading on: close, gracefully, without an answer
	 * (libmicrohttpd cannot answer in the middle of a body). */
	r->code = r->pending_code;
	http_conn_linger(r->cx);
	return MHD_NO;
}

static enum MHD_Result
http_access(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
    const char *version, const char *upload_data, size_t *upload_size, void **con_cls)
{
	struct http_req *r = *con_cls;
	size_t n = *upload_size;
	if (r == NULL) {
		*con_cls = r = http_req_new(cls, conn);
		return http_first_call(r, url, method);
	}
	*upload_size = 0;   /* every chunk is taken (or dropped) whole */
	switch (r->phase) {
	case HTTP_PHASE_BODY:
		if (n > 0) {
			http_body_chunk(r, upload_data, n);
			return MHD_YES;
		}
		if (r->body != NULL)
			r->body[r->len] = '\0';
		return http_process_event(r);
	case HTTP_PHASE_DISCARD:
		if (n > 0)
			return http_discard_chunk(r, n);
		return http_error(r, r->pending_code, r->pending_msg, NULL, r->pending_headers);
	case HTTP_PHASE_QUEUED:
		/* Spurious call while suspended cannot happen; be safe. */
		return MHD_YES;
	case HTTP_PHASE_COMMITTED:
		return http_answer_committed(r);
	case HTTP_PHASE_ANSWERED:
		return MHD_YES;   /* body after an early answer: dropped */
	}
	return MHD_NO;
}

static void
http_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct http_listener *l = cls;
	struct http_req *r = *con_cls;
	double now = util_mono();
	/* Answered and kept alive: idle until the next request, evictable. */
	if (!l->metrics_only && toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
		http_conn_idle(r != NULL ? r->cx : http_conn_of(conn), now);
	if (r == NULL)
		return;
	if (r->code != 0)
		metrics_http(r->code, now - r->started);
	rules_result_clear(&r->match);
	if (r->extras != NULL) {
		for (size_t i = 0; i < r->nextras; i++)
			free(r->extras[i]);
		free(r->extras);
	}
	free(r->items);
	free(r->thread_key);
	incident_req_clear(r->inc);
	free(r->inc);
	free(r->body);
	free(r->pending_msg);
	event_free(r->ev);
	snapshot_release(r->snap);
	atomic_fetch_sub(&r->h->active, 1);
	free(r);
	*con_cls = NULL;
}

static void
http_mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct http *h = cls;
	char *msg = util_vprintf(fmt, ap);
	size_t n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' ' || msg[n - 1] == '.'))
		msg[--n] = '\0';
	pthread_mutex_lock(&h->log_lock);
	if (h->starting && h->start_err[0] == '\0')
		snprintf(h->start_err, sizeof(h->start_err), "%s", msg);
	pthread_mutex_unlock(&h->log_lock);
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

/* A numeric address and port into *ss; sets MHD_USE_IPv6 / DUAL_STACK in *flags. */
static int
http_sockaddr(const char *address, int port, struct sockaddr_storage *ss, unsigned *flags,
    char *err, size_t errlen)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, address, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		return 0;
	}
	if (inet_pton(AF_INET6, address, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*flags |= MHD_USE_IPv6;
		/* "::" means every address, IPv4 included (fluxrelay.conf(5)). */
		if (IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr))
			*flags |= MHD_USE_DUAL_STACK;
		return 0;
	}
	snprintf(err, errlen, "listen address %s is not an IPv4 or IPv6 address", address);
	return -1;
}

/* "cannot listen on ADDR:PORT: <libmicrohttpd's reason>". */
static void
http_start_error(struct http *h, const char *address, int port, char *err, size_t errlen)
{
	pthread_mutex_lock(&h->log_lock);
	snprintf(err, errlen, "cannot listen on %s:%d: %s", address, port,
	    h->start_err[0] ? h->start_err : "address in use, or not allowed");
	pthread_mutex_unlock(&h->log_lock);
}

/* libmicrohttpd's best event loop here: MHD_USE_EPOLL, else MHD_USE_POLL. */
static unsigned
http_poll_flag(void)
{
	return MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES ? MHD_USE_EPOLL :
	    MHD_USE_POLL;
}

/* The plain-HTTP listener for /metrics, /healthz and /readyz only. */
static int
http_start_metrics(struct http *h, const struct conf *c, unsigned timeout, char *err,
    size_t errlen)
{
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG | http_poll_flag();
	struct sockaddr_storage ss;
	if (http_sockaddr(c->listen.metrics_address, c->listen.metrics_port, &ss, &flags, err,
	    errlen) < 0)
		return -1;
	h->metrics_listener = (struct http_listener){ h, true };
	h->metrics_mhd = MHD_start_daemon(flags, 0, NULL, NULL, http_access, &h->metrics_listener,
	    MHD_OPTION_EXTERNAL_LOGGER, http_mhd_log, h,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_METRICS_CONNECTIONS,
	    MHD_OPTION_CONNECTION_TIMEOUT, timeout,
	    MHD_OPTION_NOTIFY_COMPLETED, http_completed, &h->metrics_listener,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_CONNECTION_MEMORY,
	    MHD_OPTION_SOCK_ADDR, &ss,
	    MHD_OPTION_END);
	if (h->metrics_mhd == NULL) {
		http_start_error(h, c->listen.metrics_address, c->listen.metrics_port, err, errlen);
		return -1;
	}
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->metrics_mhd,
	    MHD_DAEMON_INFO_BIND_PORT);
	h->metrics_port = di ? di->port : c->listen.metrics_port;
	return 0;
}

static void
http_free(struct http *h)
{
	http_conns_free(h->conns);
	pthread_mutex_destroy(&h->log_lock);
	free(h->tls_cert);
	free(h->tls_key);
	free(h->tls_trust);
	free(h);
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

/* How the main listener's daemons start (http_start and its steps). */
struct http_setup {
	unsigned flags;              /* MHD_USE_* for MHD_start_daemon */
	int listen_fd;               /* an inherited socket, else -1 */
	struct sockaddr_storage ss;  /* the address to bind, without listen_fd */
	int ndaemons;                /* daemons, each with its own SO_REUSEPORT socket */
	int pool;                    /* threads of each daemon */
	unsigned timeout;            /* idle connection timeout, seconds */
	unsigned limit;              /* connections per daemon (libmicrohttpd's own limit) */
};

/* A server with nothing started yet; ready, so that a connection an
 * inherited socket queued before the start is served, not refused. */
static struct http *
http_new(const struct conf *c, struct queue_writer *w)
{
	struct http *h = util_calloc(1, sizeof(*h));
	h->writer = w;
	h->max_body = c->listen.max_body;
	h->metrics_port = -1;
	h->main_listener = (struct http_listener){ h, false };
	pthread_mutex_init(&h->log_lock, NULL);
	h->starting = true;   /* no daemon thread runs yet */
	atomic_store(&h->ready, true);
	return h;
}

/* The TLS files' contents (libmicrohttpd keeps pointers to them) and MHD_USE_TLS. */
static int
http_load_tls(struct http *h, const struct conf *c, unsigned *flags, char *err,
    size_t errlen)
{
	if (c->listen.tls_cert_file == NULL)
		return 0;
	h->tls_cert = http_read_pem(c->listen.tls_cert_file, err, errlen);
	if (h->tls_cert == NULL)
		return -1;
	h->tls_key = http_read_pem(c->listen.tls_key_file, err, errlen);
	if (h->tls_key == NULL)
		return -1;
	if (c->listen.tls_client_ca_file != NULL) {
		h->tls_trust = http_read_pem(c->listen.tls_client_ca_file, err, errlen);
		if (h->tls_trust == NULL)
			return -1;
		h->need_client_cert = true;
	}
	*flags |= MHD_USE_TLS;
	return 0;
}

/*
 * How many daemons, and threads each, into s. Several daemons per core, each
 * with its own epoll thread and its own SO_REUSEPORT listening socket:
 * libmicrohttpd's internal thread pool tends to put every keep-alive
 * connection on one thread, and the kernel's reuseport hash spreads
 * connections only statistically: with one daemon per core a run could leave
 * one core idle; with four per core the scheduler evens the load out
 * (bench/README.md has the figures). An inherited socket is one socket: one
 * daemon with a thread pool serves it.
 *
 * SO_REUSEPORT also lets another process of the same user join a port that
 * is already in use, silently splitting the traffic between two instances:
 * that is refused here (http_port_free).
 */
static int
http_plan_daemons(const struct conf *c, struct http_setup *s, char *err, size_t errlen)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	long want = HTTP_DAEMONS_PER_CPU * (ncpu < 1 ? 1 : ncpu);
	s->ndaemons = want > HTTP_MAX_DAEMONS ? HTTP_MAX_DAEMONS : (int)want;
	s->pool = 1;
	if (s->listen_fd >= 0) {
		s->pool = s->ndaemons;
		s->ndaemons = 1;
	}
	if (s->listen_fd < 0 && s->ndaemons > 1 && c->listen.port != 0 &&
	    !http_port_free(&s->ss, (s->flags & MHD_USE_DUAL_STACK) == MHD_USE_DUAL_STACK)) {
		snprintf(err, errlen, "cannot listen on %s:%d (address in use)", c->listen.address,
		    c->listen.port);
		return -1;
	}
	s->timeout = (unsigned)ceil(c->listen.timeout);
	/* http_accept enforces max_connections over all daemons. Each daemon's
	 * own limit is above it, so that libmicrohttpd never refuses silently
	 * while an eviction (which lets the count pass the limit until the
	 * evicted connection closes) is under way. */
	s->limit = c->listen.max_connections > 500000 ? 1000000u :
	    2u * (unsigned)c->listen.max_connections;
	return 0;
}

/* The options of main-listener daemon i into opts (room for 20); returns their number. */
static int
http_daemon_options(struct http *h, struct http_setup *s, int i, struct MHD_OptionItem *opts)
{
	int n = 0;
#define HTTP_OPT(option, value, ptr) \
	opts[n++] = (struct MHD_OptionItem){ (option), (intptr_t)(value), (ptr) }
	/* First, so that libmicrohttpd's messages about later options reach it. */
	HTTP_OPT(MHD_OPTION_EXTERNAL_LOGGER, http_mhd_log, h);
	HTTP_OPT(MHD_OPTION_CONNECTION_LIMIT, s->limit, NULL);
	HTTP_OPT(MHD_OPTION_CONNECTION_TIMEOUT, s->timeout, NULL);
	HTTP_OPT(MHD_OPTION_NOTIFY_COMPLETED, http_completed, &h->main_listener);
	HTTP_OPT(MHD_OPTION_NOTIFY_CONNECTION, http_conn_notify, http_conn_pool(h->conns, i));
	HTTP_OPT(MHD_OPTION_URI_LOG_CALLBACK, http_uri_log, NULL);
	if (s->pool > 1)
		HTTP_OPT(MHD_OPTION_THREAD_POOL_SIZE, s->pool, NULL);
	/* Headers beyond this are answered 431: bounds per-connection memory. */
	HTTP_OPT(MHD_OPTION_CONNECTION_MEMORY_LIMIT, HTTP_CONNECTION_MEMORY, NULL);
	if (s->listen_fd >= 0) {
		HTTP_OPT(MHD_OPTION_LISTEN_SOCKET, s->listen_fd, NULL);
	} else {
		HTTP_OPT(MHD_OPTION_SOCK_ADDR, 0, &s->ss);
		if (s->ndaemons > 1)
			HTTP_OPT(MHD_OPTION_LISTENING_ADDRESS_REUSE, 1, NULL);
	}
	if (h->tls_cert != NULL) {
		HTTP_OPT(MHD_OPTION_HTTPS_MEM_CERT, 0, h->tls_cert);
		HTTP_OPT(MHD_OPTION_HTTPS_MEM_KEY, 0, h->tls_key);
		if (h->tls_trust != NULL)
			HTTP_OPT(MHD_OPTION_HTTPS_MEM_TRUST, 0, h->tls_trust);
	}
	HTTP_OPT(MHD_OPTION_END, 0, NULL);
#undef HTTP_OPT
	return n;
}

/*
 * Start the main listener's daemons. The first one's bound port is the
 * server's (listen.port may be 0); the others join it.
 */
static int
http_start_daemons(struct http *h, const struct conf *c, struct http_setup *s, char *err,
    size_t errlen)
{
	for (int i = 0; i < s->ndaemons; i++) {
		struct MHD_OptionItem opts[20];
		http_daemon_options(h, s, i, opts);
		struct MHD_Daemon *mhd = MHD_start_daemon(s->flags, 0, http_conn_accept, h->conns,
		    http_access, &h->main_listener, MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
		if (mhd == NULL && s->listen_fd >= 0) {
			pthread_mutex_lock(&h->log_lock);
			snprintf(err, errlen, "cannot serve on the inherited socket%s%s",
			    h->start_err[0] ? ": " : "", h->start_err);
			pthread_mutex_unlock(&h->log_lock);
			return -1;
		}
		if (mhd == NULL) {
			http_start_error(h, c->listen.address, c->listen.port, err, errlen);
			return -1;
		}
		h->mhd[h->nmhd++] = mhd;
		if (i > 0)
			continue;
		const union MHD_DaemonInfo *di = MHD_get_daemon_info(mhd, MHD_DAEMON_INFO_BIND_PORT);
		h->port = di ? di->port : c->listen.port;
		if (s->ss.ss_family == AF_INET)
			((struct sockaddr_in *)&s->ss)->sin_port = htons((uint16_t)h->port);
		else if (s->ss.ss_family == AF_INET6)
			((struct sockaddr_in6 *)&s->ss)->sin6_port = htons((uint16_t)h->port);
	}
	return 0;
}

struct http *
http_start(const struct conf *c, struct queue_writer *w, int listen_fd, char *err, size_t errlen)
{
	struct http *h = http_new(c, w);
	h->inherited_fd = listen_fd;
	/* MHD_USE_ERROR_LOG: without it libmicrohttpd never calls http_mhd_log. */
	struct http_setup s = {
		.flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_ALLOW_SUSPEND_RESUME |
		    MHD_USE_ERROR_LOG | http_poll_flag(),
		.listen_fd = listen_fd,
	};
	if (listen_fd < 0 &&
	    http_sockaddr(c->listen.address, c->listen.port, &s.ss, &s.flags, err, errlen) < 0)
		goto fail;
	if (http_load_tls(h, c, &s.flags, err, errlen) < 0)
		goto fail;
	h->linger = http_linger_start(c->listen.timeout, (size_t)c->listen.max_connections);
	if (h->linger == NULL) {
		snprintf(err, errlen, "cannot start a thread: %s", strerror(errno));
		goto fail;
	}
	h->conns = http_conns_new(c->listen.max_connections, h->linger);
	if (http_plan_daemons(c, &s, err, errlen) < 0 ||
	    http_start_daemons(h, c, &s, err, errlen) < 0)
		goto fail;
	if (c->listen.metrics_address != NULL &&
	    http_start_metrics(h, c, s.timeout, err, errlen) < 0)
		goto fail;
	pthread_mutex_lock(&h->log_lock);
	h->starting = false;
	pthread_mutex_unlock(&h->log_lock);
	return h;
fail:
	for (int i = 0; i < h->nmhd; i++)
		http_stop_daemon(h, h->mhd[i]);
	http_linger_stop(h->linger);
	http_free(h);
	return NULL;
}

int
http_port(const struct http *h)
{
	return h->port;
}

int
http_metrics_port(const struct http *h)
{
	return h->metrics_port;
}

void
http_set_ready(struct http *h, bool ready)
{
	atomic_store(&h->ready, ready);
}

void
http_set_max_body(struct http *h, long max_body)
{
	atomic_store(&h->max_body, max_body);
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
	if (h->metrics_mhd != NULL)
		MHD_stop_daemon(h->metrics_mhd);
	for (int i = 0; i < h->nmhd; i++)
		http_stop_daemon(h, h->mhd[i]);
	/* After the daemons: closing their connections may add lingering ones. */
	http_linger_stop(h->linger);
	http_free(h);
}
