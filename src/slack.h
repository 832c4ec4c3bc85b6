/*
 * slack: render Slack payloads (SPEC §9) and classify Slack's answers (SPEC §8).
 * Pure: no I/O, callable from any thread. The response -> outcome table is at
 * the top of slack.c.
 */
#ifndef FLUXRELAY_SLACK_H
#define FLUXRELAY_SLACK_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "conf.h"
#include "event.h"

/* A link under a message; both parts rendered (Slack-escaped, valid UTF-8). */
struct slack_link {
	char *url;                     /* never empty */
	char *text;                    /* "" : the link shows its URL */
};

/*
 * What an alert's templates make of one event (SPEC §13), rendered before
 * slack_render (slack_look.h) so that this module only places strings. Each
 * part replaces its default; NULL (or no links) keeps it. Every string is
 * already Slack-escaped valid UTF-8 and is placed as it is, never escaped
 * again; title is bounded by SLACK_MAX_NAME, text by the provider's max_text
 * (with the truncation marker of SPEC §9).
 */
struct slack_look {
	char *title;                   /* "" : no title */
	char *text;
	struct slack_link *links;
	size_t nlinks;
	/* Literal Slack mentions, space-separated: in the message's top-level
	 * text (where Slack notifies from) for error events only. */
	char *mention;
	size_t text_chars;             /* all of text rendered (text keeps max_text at most) */
};

/*
 * What a message says about the object's health (SPEC §12); the values are
 * the queue's delivery kinds. A plain event, and a reply (a differing failure
 * in a thread), render as today; opened, reminder and recovered have their
 * own colour, title and text (slack.c, "kinds").
 */
enum slack_kind {
	SLACK_KIND_EVENT = 0,
	SLACK_KIND_OPENED = 1,
	SLACK_KIND_REMINDER = 2,
	SLACK_KIND_RECOVERED = 3,
	SLACK_KIND_REPLY = 4,
};

/* The incident a message of kind opened, reminder or recovered is about. */
struct slack_incident {
	double since;                 /* epoch seconds it opened */
	long failures;                /* failures counted, the first included */
	double duration;              /* seconds open: recovered (and reminder; 0 = from
	                                 the event's time) */
	const char *last_message;     /* the last failure's message; NULL when unknown */
	const char *revision;         /* recovered: the recovery's revision, shown unless
	                                 the event's "revision" field is the same; may be NULL */
};

/*
 * One event in a message, with what the matching alerts add to it. The extra
 * pairs are shown as fields next to the event's metadata; on a clash they
 * beat annotation-origin keys and lose to plain and controller keys (Flux's
 * precedence), and a later pair beats an earlier one with the same key.
 * kind and incident are zero for a plain event (an item initialized with
 * { ev, extra, nextra } is one); a kind other than event or reply without
 * an incident renders as an event of that kind's colour and title.
 */
struct slack_item {
	const struct event *ev;
	const struct conf_kv *extra;   /* alert metadata + summary; may be NULL */
	size_t nextra;
	enum slack_kind kind;                       /* issue 13: SLACK_KIND_EVENT (0) … */
	const struct slack_incident *incident;      /* issue 13: NULL for plain events */
	/* The sending client's name (auth.clients); NULL or "" = none. Shown
	 * as the first field, "cluster"; it hides any other "cluster" key. */
	const char *cluster;
	const struct slack_look *look; /* issue 14: templates; NULL = defaults */
};

/* Most attachments in one message (Slack's limit is 100). */
#define SLACK_MAX_ATTACHMENTS 100

/*
 * Bounds of the other rendered parts (SPEC §9), in characters (code points)
 * counted before escaping; a longer text is cut to one less and ends in "…".
 */
#define SLACK_MAX_NAME 250          /* author_name, title, username */
#define SLACK_MAX_FIELDS 50         /* per event, the "N more fields not shown" one included */
#define SLACK_MAX_FIELD_TITLE 100
#define SLACK_MAX_FIELD_VALUE 2000

/*
 * Render n (1..SLACK_MAX_ATTACHMENTS) events for one provider and channel
 * (NULL or "" = the provider's; omitted when neither is set) into a new JSON
 * object (new reference). n == 1 gives the single form, n > 1 the coalesced
 * form with text "<n> events" and one attachment per item, in order.
 *
 * Each attachment's text is the message truncated to p->max_text characters
 * (code points of the raw message; <= 0: only the total limit applies) followed
 * by "… (N more characters)" when cut, then escaped. When the texts of all
 * attachments would exceed 40,000 characters (counted as rendered, entities
 * and markers included), every attachment gets the same smaller budget so
 * the total fits. The fallback's first line is bounded by the same budget.
 * author_name, title and username are bounded by SLACK_MAX_NAME; an event
 * shows at most SLACK_MAX_FIELDS fields: beyond that, the first
 * SLACK_MAX_FIELDS - 1 (in key order) and a last one titled "N more fields
 * not shown"; a field's title and value are bounded by SLACK_MAX_FIELD_TITLE
 * and SLACK_MAX_FIELD_VALUE.
 *
 * Returns NULL when n is 0 or above SLACK_MAX_ATTACHMENTS, an item has no
 * event, a slack-bot provider has no channel at all (chat.postMessage needs
 * one; for slack-bot the channel is otherwise always set), or on allocation
 * failure. Items and provider are only borrowed.
 */
json_t *slack_render(const struct conf_provider *p, const char *channel,
    const struct slack_item *items, size_t n);

/*
 * Same, serialized as compact one-line JSON, valid UTF-8, keys in insertion
 * order (channel, username, icon_emoji|icon_url, text, attachments; in an
 * attachment: color, author_name, title, text, fallback, mrkdwn_in, fields,
 * ts). Caller frees with free(); NULL as for slack_render.
 */
char *slack_render_string(const struct conf_provider *p, const char *channel,
    const struct slack_item *items, size_t n);

/*
 * A provider with format = "blocks" gets Block Kit instead (slack_blocks.h),
 * from the same three functions; its payload must hold every item in at most
 * SLACK_BLOCKS_MAX blocks, else NULL. slack_render_fit renders the first
 * *used items (1..n) that one message holds: all of them for attachments, as
 * many as fit for blocks; the rest go in a later message (SPEC §13:
 * coalescing splits rather than drops). NULL as for slack_render.
 */
char *slack_render_fit(const struct conf_provider *p, const char *channel,
    const struct slack_item *items, size_t n, size_t *used);

/*
 * Links with a look: under the message text, "<url|text> · <url|text>" on
 * one line; the links that would take the line beyond this many characters
 * (and beyond a coalesced message's share of the total) are left out.
 */
#define SLACK_MAX_LINKS_LINE 3000

/*
 * A reply in the thread of the parent (channel_id, thread_ts): the payload
 * of slack_render for channel_id, then "thread_ts" and, when broadcast,
 * "reply_broadcast": true (the channel sees it too). chat.postMessage;
 * type-checks as ChatPostMessageArguments. NULL as for slack_render, or
 * when channel_id or thread_ts is empty. Caller frees with free().
 */
char *slack_render_reply_string(const struct conf_provider *p, const char *channel_id,
    const char *thread_ts, bool broadcast, const struct slack_item *items, size_t n);

/*
 * A chat.update of the message (channel_id, ts) to the rendering of items:
 * "channel", "ts", "text" (slack_render's, "" when it has none) and its
 * "attachments" (or "blocks") only: no username, icons, thread_ts or unfurl
 * fields, which chat.update does not take (ChatUpdateArguments). NULL as for
 * slack_render, or when channel_id or ts is empty. Caller frees.
 */
char *slack_render_update_string(const struct conf_provider *p, const char *channel_id,
    const char *ts, const struct slack_item *items, size_t n);

/*
 * The live count of a parent: a chat.update of (channel_id, ts) with
 * "channel", "ts" and "text" = "<failures> failures since HH:MM UTC" (the
 * date too when since is not the same UTC day as now); Slack keeps the
 * attachments of a message when an update does not give them. parent is
 * NULL or the parent's chat.postMessage payload as it was posted: when it
 * has blocks (format = "blocks"), a Block Kit message shows its blocks and
 * not its text, so the update gives them again with the count as a context
 * block under the first one (in a message of 50 blocks, as one more element
 * of a last context block that has room, else not at all), and "text" is
 * the parent's, the count on a line after it. NULL when channel_id or ts is
 * empty. Caller frees.
 */
char *slack_render_count_string(const char *channel_id, const char *ts, long failures,
    double since, double now, const char *parent);

/*
 * A delivery row's incident snapshot (the JSON the queue keeps: "since",
 * "failures", "duration", "last_message", "revision") into *inc, its strings
 * borrowed from the returned JSON (new reference, the caller decrefs); NULL
 * when text is NULL, empty or not an object (then *inc is zero).
 */
json_t *slack_incident_parse(const char *text, struct slack_incident *inc);

/*
 * A duration as messages show it: "45s", "12m", "3h05m", "2d4h" (rounded
 * down; negative is "0s"). Returns buf.
 */
char *slack_duration(double seconds, char buf[32]);

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
	/* NULL-terminated, may be NULL: texts that must never appear in the error
	 * (the provider's own secrets, see slack_secrets): a receiver may echo
	 * the request, Authorization header and URL included. */
	char *const *secrets;
};

struct slack_result {
	enum slack_outcome outcome;
	double retry_after;       /* seconds, for SLACK_RATE_LIMITED */
	/* SLACK_PERMANENT because the message was too large or invalid (HTTP 413,
	 * invalid_payload, msg_too_long, invalid_blocks): a coalesced message
	 * is worth sending again one event per message (SPEC §8). */
	int oversize;
	char error[256];          /* "HTTP 404 channel_not_found", "transport: ..."; "" when
	                             delivered; printable ASCII, never the request URL, every
	                             secret replaced by "[redacted]" before it is cut to fit */
	/* SLACK_PERMANENT with the Web API error message_not_found or
	 * cant_update_message: a chat.update whose message is gone or not
	 * editable; post a new top-level message instead (SPEC §12). */
	int repost;
	/* slack-bot SLACK_DELIVERED: the posted message's channel id and ts from
	 * the answer; "" when absent or not of Slack's form (then the message
	 * cannot be a thread's parent). */
	char channel[32];
	char ts[32];
};

/*
 * Classify one attempt's answer for a provider type (table at the top of
 * slack.c). now is wall-clock (for HTTP dates). Fills every field of *out;
 * retry_after is >= 0 for SLACK_RATE_LIMITED (1 when Retry-After is absent
 * or invalid) and 0 otherwise.
 */
void slack_classify(enum conf_provider_type type, const struct slack_response *resp,
    time_t now, struct slack_result *out);

/*
 * The secrets of a provider that an error text must not show: the slack-bot
 * token; the webhook URL, its path and query, and each path segment after
 * the first that has at least 4 characters (Slack's T…/B…/secret parts; the
 * first, "services", is not secret). A new NULL-terminated array, longest
 * first (so a whole URL is redacted before its parts); NULL when there is
 * none. Free with slack_secrets_free, which wipes the copies.
 */
char **slack_secrets(const struct conf_provider *p);
void slack_secrets_free(char **secrets);

#ifdef FLUXRELAY_UNITTEST
/*
 * Escape &, <, > for Slack as &amp; &lt; &gt;; invalid UTF-8 bytes become
 * U+FFFD, as in every rendered text. Caller frees; NULL in, NULL out.
 */
char *slack_escape(const char *s);

/*
 * Parse Retry-After: delta-seconds (digits only; saturating at 2^31-1) or an
 * HTTP-date (IMF-fixdate, RFC 850 or asctime form). Returns seconds from now,
 * 0 for a date in the past, -1 when NULL or invalid.
 */
double slack_parse_retry_after(const char *value, time_t now);
#endif

#endif
