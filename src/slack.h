/*
 * slack: render Slack payloads (SPEC §9) and classify Slack's answers (SPEC §8).
 * Pure: no I/O, callable from any thread. The response -> outcome table is at
 * the top of slack.c.
 */
#ifndef FLUXRELAY_SLACK_H
#define FLUXRELAY_SLACK_H

#include <jansson.h>
#include <stddef.h>
#include <time.h>

#include "conf.h"
#include "event.h"

/* One event in a message, with what the matching alerts add to it. */
struct slack_item {
	const struct event *ev;
	const struct conf_kv *extra;   /* alert metadata + summary; may be NULL */
	size_t nextra;
};

/* Most attachments in one message (Slack's limit is 100). */
#define SLACK_MAX_ATTACHMENTS 100

/*
 * Render n (>= 1) events for one provider and channel (NULL = provider's /
 * none) into a new JSON object (new reference). n == 1 gives the single form,
 * n > 1 the coalesced form with text "<n> events". For slack-bot the channel is
 * always set (provider channel when channel is NULL).
 */
json_t *slack_render(const struct conf_provider *p, const char *channel,
    const struct slack_item *items, size_t n);

/* Same, serialized compactly with sorted keys; caller frees. */
char *slack_render_string(const struct conf_provider *p, const char *channel,
    const struct slack_item *items, size_t n);

/* Escape &, <, > for Slack (caller frees). */
char *slack_escape(const char *s);

enum slack_outcome {
	SLACK_DELIVERED,
	SLACK_RATE_LIMITED,   /* wait retry_after, attempt not counted */
	SLACK_TRANSIENT,      /* backoff, attempt counted */
	SLACK_PERMANENT,      /* dead letter now */
};

struct slack_response {
	int transport_error;      /* non-zero: no HTTP answer (timeout, connect, DNS, TLS) */
	const char *transport_msg;/* description for transport errors */
	long status;              /* HTTP status when transport_error == 0 */
	const char *retry_after;  /* Retry-After header value or NULL */
	const char *body;         /* may be NULL */
	size_t body_len;
};

struct slack_result {
	enum slack_outcome outcome;
	double retry_after;       /* seconds, for SLACK_RATE_LIMITED */
	char error[256];          /* "HTTP 404 channel_not_found", "timeout: ..." ; "" when delivered */
};

/* Classify one attempt's answer for a provider type. now is wall-clock (for HTTP dates). */
void slack_classify(enum conf_provider_type type, const struct slack_response *resp,
    time_t now, struct slack_result *out);

/* Parse Retry-After (delta-seconds or HTTP-date); seconds from now, -1 if invalid. */
double slack_parse_retry_after(const char *value, time_t now);

#endif
