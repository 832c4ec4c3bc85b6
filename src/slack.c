/*
 * slack: render Slack payloads (SPEC §9) and classify Slack's answers
 * (SPEC §8). Pure: no I/O and no global state, so the delivery thread, the
 * console provider and `fluxrelay match` all call it freely.
 *
 * Rendering invariants: every string in a payload is valid UTF-8 (invalid
 * bytes become U+FFFD); &, < and > are escaped in every text Slack renders;
 * truncation happens on code points before escaping, so neither a UTF-8
 * sequence nor an entity is ever cut; a message never carries more than
 * SLACK_MAX_ATTACHMENTS attachments nor more than SLACK_MAX_TOTAL_TEXT
 * characters of attachment text; only fields that Slack's SDK types define
 * are emitted, with their declared types (ts a string, short a boolean).
 *
 * Classification of one attempt (the response -> outcome table):
 *
 *  provider   answer                                       outcome       error text
 *  ---------  -------------------------------------------  ------------  --------------------------
 *  any        no HTTP answer (timeout, connect refused or  TRANSIENT     "transport: <msg>"
 *             reset, DNS, TLS handshake)
 *  slack      2xx, any body ("ok")                         DELIVERED     ""
 *  slack      429                                          RATE_LIMITED  "HTTP 429 <body>"
 *  slack      5xx, 408                                     TRANSIENT     "HTTP 503 <body>"
 *  slack      other 4xx, 3xx, 1xx                          PERMANENT     "HTTP 404 channel_not_found"
 *  slack-bot  2xx + JSON {"ok":true}                       DELIVERED     ""
 *  slack-bot  2xx + JSON ok:false, error "ratelimited"     RATE_LIMITED  "HTTP 200 ratelimited"
 *  slack-bot  2xx + JSON ok:false, error internal_error,   TRANSIENT     "HTTP 200 internal_error"
 *             service_unavailable, request_timeout,
 *             fatal_error
 *  slack-bot  2xx + JSON ok:false, error message_not_found PERMANENT     "HTTP 200 message_not_found"
 *             or cant_update_message (chat.update)         + repost
 *  slack-bot  2xx + JSON ok:false, any other error         PERMANENT     "HTTP 200 channel_not_found"
 *  slack-bot  2xx, body not JSON or without boolean ok     TRANSIENT     "HTTP 200 unexpected response: <body>"
 *  slack-bot  429                                          RATE_LIMITED  "HTTP 429 <error>"
 *  slack-bot  5xx, 408                                     TRANSIENT     "HTTP 500 <error>"
 *  slack-bot  other 4xx, 3xx, 1xx                          PERMANENT     "HTTP 403 <error>"
 *  (console is classified like slack; chat.update like chat.postMessage.)
 *
 * A slack-bot DELIVERED answer gives the message's "channel" id and "ts"
 * (the handle a thread's replies and chat.update need); repost says that a
 * chat.update's message is gone or not editable, so a new top-level message
 * must say what the update would have (SPEC §12).
 *
 * RATE_LIMITED waits Retry-After (delta-seconds or HTTP-date; 1 s when absent
 * or invalid; 0 when the date is past) and does not use up an attempt.
 * <body>/<error> is the JSON "error" string when the body is a JSON object
 * carrying one, else the body itself: trimmed, whitespace runs folded to one
 * space, other bytes outside printable ASCII replaced by '?', truncated with
 * "..." to fit the result's error buffer. The request URL (a secret for
 * webhooks) is never part of the text, and the provider's secrets
 * (slack_secrets) are replaced by "[redacted]" before the text is cut, so
 * no prefix of one survives either: a receiver may echo the request.
 *
 * oversize is set for a PERMANENT outcome that says the message as a whole
 * was refused: HTTP 413, or the error invalid_payload, msg_too_long or
 * invalid_blocks (the API's error string, or a webhook's plain-text body).
 * The delivery thread then sends a coalesced message's events one by one.
 */
#include "slack.h"
#include "slack_internal.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "slack_blocks.h"
#include "slack_json.h"
#include "template.h"
#include "unittest.h"
#include "util.h"

/* Retry-After delta-seconds saturate here (RFC 9110 §10.2.3 asks for 2^31). */
#define SLACK_RETRY_AFTER_MAX 2147483647.0

static const char slack_ellipsis[] = "\xe2\x80\xa6";   /* U+2026 */
static const char slack_replacement[] = "\xef\xbf\xbd"; /* U+FFFD */

/* Number of characters (code points; an invalid byte counts as one) in s[0..n). */
static size_t
slack_utf8_count(const unsigned char *s, size_t n)
{
	size_t i = 0, count = 0;

	while (i < n) {
		size_t l = util_utf8_len(s + i, n - i);
		i += l ? l : 1;
		count++;
	}
	return count;
}

/* slack_internal.h */
size_t
slack_text(struct util_buf *out, const char *str, size_t n, size_t limit,
    enum slack_cut cut, int escape)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0, kept = 0, chars = 0;

	if (cut == SLACK_CUT_NONE)
		limit = SIZE_MAX;
	/*
	 * Plain characters are copied a run at a time: one append per run, not
	 * per character, is most of what this function costs on a message.
	 */
	size_t run = 0;
	while (i < n && kept < limit) {
		size_t l;
		const char *rep = NULL;

		if (s[i] < 0x80 && s[i] != '&' && s[i] != '<' && s[i] != '>') {
			i++;
			kept++;
			chars++;
			continue;
		}
		l = util_utf8_len(s + i, n - i);
		if (l == 0) {
			rep = slack_replacement;
			l = 1;
			chars++;
		} else if (escape && s[i] == '&') {
			rep = "&amp;";
			chars += 5;
		} else if (escape && s[i] == '<') {
			rep = "&lt;";
			chars += 4;
		} else if (escape && s[i] == '>') {
			rep = "&gt;";
			chars += 4;
		} else {
			i += l;
			kept++;
			chars++;
			continue;
		}
		if (out != NULL) {
			util_buf_append(out, str + run, i - run);
			util_buf_puts(out, rep);
		}
		i += l;
		run = i;
		kept++;
	}
	if (out != NULL && i > run)
		util_buf_append(out, str + run, i - run);
	if (i < n && cut != SLACK_CUT_SILENT) {
		if (cut == SLACK_CUT_COUNT) {
			chars += template_marker(out, slack_utf8_count(s + i, n - i));
		} else {
			chars++;
			if (out != NULL)
				util_buf_puts(out, slack_ellipsis);
		}
	}
	return chars;
}

/* A new JSON string (new reference) from a util_buf, "" when it is empty. */
json_t *
slack_buf_json(struct util_buf *b)
{
	json_t *j = json_stringn_nocheck(b->data ? b->data : "", b->len);
	util_buf_free(b);
	return j;
}

/* A new JSON string (new reference): s cleaned to valid UTF-8, escaped or not. */
json_t *
slack_json_text(const char *s, int escape)
{
	struct util_buf b = { 0 };

	slack_text(&b, s, strlen(s), SIZE_MAX, SLACK_CUT_NONE, escape);
	return slack_buf_json(&b);
}

/*
 * Render s[0..n) into out bounded to max characters counted before escaping:
 * whole when it fits, else its first max - 1 characters and "…".
 */
void
slack_bounded(struct util_buf *out, const char *s, size_t n, size_t max, int escape)
{
	size_t limit = slack_utf8_count((const unsigned char *)s, n) <= max ? SIZE_MAX : max - 1;

	slack_text(out, s, n, limit, SLACK_CUT_ELLIPSIS, escape);
}

/* A new JSON string (new reference): s bounded as slack_bounded. */
json_t *
slack_json_bounded(const char *s, size_t max, int escape)
{
	struct util_buf b = { 0 };

	slack_bounded(&b, s, strlen(s), max, escape);
	return slack_buf_json(&b);
}

/* Steals value; returns -1 when value is NULL or the set fails. */
int
slack_set(json_t *obj, const char *key, json_t *value)
{
	if (value == NULL)
		return -1;
	return json_object_set_new(obj, key, value);
}

int
slack_nonempty(const char *s)
{
	return s != NULL && s[0] != '\0';
}

/* ---- kinds (SPEC §12) ---- */

static const char *slack_color(enum event_severity severity);

char *
slack_duration(double seconds, char buf[32])
{
	long long s = seconds > 0 && seconds < 1e15 ? (long long)seconds : 0;

	if (s < 60)
		snprintf(buf, 32, "%llds", s);
	else if (s < 3600)
		snprintf(buf, 32, "%lldm", s / 60);
	else if (s < 86400)
		snprintf(buf, 32, "%lldh%02lldm", s / 3600, s % 3600 / 60);
	else
		snprintf(buf, 32, "%lldd%lldh", s / 86400, s % 86400 / 3600);
	return buf;
}

/*
 * "HH:MM UTC" of epoch seconds t, "YYYY-MM-DD HH:MM UTC" when t is not on
 * the UTC day of ref (a reader cannot tell which 10:04 it was).
 */
static void
slack_clock_text(struct util_buf *out, double t, double ref)
{
	time_t tt = (time_t)t, rt = (time_t)ref;
	struct tm tm, rm;
	char buf[48];

	if (gmtime_r(&tt, &tm) == NULL || gmtime_r(&rt, &rm) == NULL) {
		util_buf_puts(out, "?");
		return;
	}
	if (tm.tm_year != rm.tm_year || tm.tm_yday != rm.tm_yday)
		strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M UTC", &tm);
	else
		strftime(buf, sizeof(buf), "%H:%M UTC", &tm);
	util_buf_puts(out, buf);
}

/*
 * What an item's kind decides in its attachment, as raw text (escaped when
 * placed): the colour; the title (has_title; else the reason); the lead of
 * the text, before the body ("" for an event); and the body, which is what
 * max_text and the total budget cut (the message; a recovery shows the last
 * error instead). Free with slack_parts_free.
 */
struct slack_parts {
	const char *color;
	bool has_title;
	struct util_buf title;
	struct util_buf lead;
	const char *body;
};

static void
slack_parts_free(struct slack_parts *k)
{
	util_buf_free(&k->title);
	util_buf_free(&k->lead);
}

/* "N failure(s)" */
static void
slack_failures(struct util_buf *out, long failures)
{
	util_buf_printf(out, "%ld failure%s", failures, failures == 1 ? "" : "s");
}

/*
 * reminder: "Still failing: <reason>"; the text starts with
 * "Failing since 10:04 UTC (3h05m), 42 failures." and goes on with the
 * message. The time open is the incident's duration, else the event's
 * time minus since (nothing when the event has no time).
 */
static void
slack_parts_reminder(const struct slack_item *it, struct slack_parts *k)
{
	const struct event *ev = it->ev;
	const struct slack_incident *inc = it->incident;

	k->color = "danger";
	k->has_title = true;
	util_buf_puts(&k->title, "Still failing");
	if (slack_nonempty(ev->reason)) {
		util_buf_puts(&k->title, ": ");
		util_buf_puts(&k->title, ev->reason);
	}
	if (inc == NULL)
		return;
	double open = inc->duration > 0 ? inc->duration :
	    ev->has_timestamp ? (double)ev->timestamp - inc->since : -1;
	util_buf_puts(&k->lead, "Failing since ");
	slack_clock_text(&k->lead, inc->since, open >= 0 ? inc->since + open : inc->since);
	if (open >= 0) {
		char d[32];
		util_buf_printf(&k->lead, " (%s)", slack_duration(open, d));
	}
	util_buf_puts(&k->lead, ", ");
	slack_failures(&k->lead, inc->failures);
	util_buf_puts(&k->lead, ".\n");
}

/*
 * recovered: "Recovered: <Kind>/<name>", colour good; the text is
 * "Recovered after 12m (5 failures)." then "Revision: <rev>" (the
 * incident's, unless the event's "revision" field shows it already) and
 * "Last error: <message>", which is the body. Without an incident:
 * "Recovered." and the event's message.
 */
static void
slack_parts_recovered(const struct slack_item *it, struct slack_parts *k)
{
	const struct event *ev = it->ev;
	const struct slack_incident *inc = it->incident;

	k->color = "good";
	k->has_title = true;
	util_buf_printf(&k->title, "Recovered: %s/%s", ev->kind ? ev->kind : "",
	    ev->name ? ev->name : "");
	if (inc == NULL) {
		util_buf_puts(&k->lead, "Recovered.\n");
		return;
	}
	char d[32];
	util_buf_printf(&k->lead, "Recovered after %s (", slack_duration(inc->duration, d));
	slack_failures(&k->lead, inc->failures);
	util_buf_puts(&k->lead, ").");
	/* The event's own revision is already a field. */
	const char *rev = inc->revision, *shown = event_meta_get(ev, "revision");
	if (slack_nonempty(rev) && (shown == NULL || strcmp(rev, shown) != 0)) {
		util_buf_puts(&k->lead, "\nRevision: ");
		slack_bounded(&k->lead, rev, strlen(rev), SLACK_MAX_NAME, 0);
	}
	k->body = "";
	if (slack_nonempty(inc->last_message)) {
		util_buf_puts(&k->lead, "\nLast error: ");
		k->body = inc->last_message;
	}
}

/* The parts of one item (see struct slack_parts). */
static void
slack_parts(const struct slack_item *it, struct slack_parts *k)
{
	memset(k, 0, sizeof(*k));
	k->color = slack_color(it->ev->severity);
	k->body = it->ev->message ? it->ev->message : "";
	switch (it->kind) {
	case SLACK_KIND_OPENED:
		k->color = "danger";
		break;
	case SLACK_KIND_REMINDER:
		slack_parts_reminder(it, k);
		break;
	case SLACK_KIND_RECOVERED:
		slack_parts_recovered(it, k);
		break;
	case SLACK_KIND_EVENT:
	case SLACK_KIND_REPLY:
		break;
	}
}

/* slack_parts' colour, without building the title and lead it would throw away */
const char *
slack_item_color(const struct slack_item *it)
{
	switch (it->kind) {
	case SLACK_KIND_OPENED:
	case SLACK_KIND_REMINDER:
		return "danger";
	case SLACK_KIND_RECOVERED:
		return "good";
	case SLACK_KIND_EVENT:
	case SLACK_KIND_REPLY:
		break;
	}
	return slack_color(it->ev->severity);
}

int
slack_item_title(struct util_buf *out, const struct slack_item *it)
{
	struct slack_parts k;
	slack_parts(it, &k);
	int has = k.has_title;
	if (has)
		slack_bounded(out, k.title.data ? k.title.data : "", k.title.len, SLACK_MAX_NAME, 1);
	slack_parts_free(&k);
	return has;
}

size_t
slack_max_text(const struct conf_provider *p)
{
	return p->max_text > 0 ? (size_t)p->max_text : SLACK_MAX_TOTAL_TEXT;
}

size_t
slack_item_text(struct util_buf *out, const struct slack_item *it, size_t budget,
    size_t *rest)
{
	const char *t = it->look != NULL ? it->look->text : NULL;
	if (t == NULL) {
		/* The kind's lead (what happened, never cut), then the body, cut
		 * to the budget. A template's text replaces both: .incident.*
		 * lets it say the same. */
		struct slack_parts k;
		slack_parts(it, &k);
		size_t bl = strlen(k.body);
		size_t n = slack_text(out, k.lead.data ? k.lead.data : "", k.lead.len, SIZE_MAX,
		    SLACK_CUT_NONE, 1);
		n += slack_text(out, k.body, bl, budget, rest ? SLACK_CUT_SILENT : SLACK_CUT_COUNT, 1);
		if (rest != NULL) {
			size_t all = slack_utf8_count((const unsigned char *)k.body, bl);
			*rest = all > budget ? all - budget : 0;
		}
		slack_parts_free(&k);
		return n;
	}
	/*
	 * A rendered template, counted and cut as the template module counts;
	 * the look keeps at most max_text characters of it (no budget is
	 * larger) and text_chars, all it rendered, for the marker's count.
	 */
	size_t len = strlen(t), chars = template_chars(t, len);
	if (it->look->text_chars > chars)
		chars = it->look->text_chars;
	if (rest == NULL)
		return template_cut_counted(out, t, len, budget, chars);
	size_t fit = chars > budget ? template_fit(t, len, budget) : len;
	size_t kept = template_chars(t, fit);
	if (out != NULL)
		util_buf_append(out, t, fit);
	*rest = chars - kept;
	return kept;
}

size_t
slack_links_cap(size_t n)
{
	size_t share = SLACK_MAX_TOTAL_TEXT / 2 / (n ? n : 1);
	return share < SLACK_MAX_LINKS_LINE ? share : SLACK_MAX_LINKS_LINE;
}

/*
 * Counted as sent, as slack_text counts (an entity is 4 or 5), so the Block
 * Kit element that holds the line never has to cut a link.
 */
size_t
slack_link_chars(const struct slack_link *l)
{
	size_t tl = strlen(l->text);

	/* "<" url ["|" text] ">" */
	return slack_utf8_count((const unsigned char *)l->url, strlen(l->url)) + 2 +
	    (tl ? 1 + slack_utf8_count((const unsigned char *)l->text, tl) : 0);
}

size_t
slack_links_line(struct util_buf *out, const struct slack_look *look, size_t cap)
{
	static const char sep[] = " \xc2\xb7 ";   /* " · ", 3 characters */
	size_t chars = 0;

	for (size_t i = 0; look != NULL && i < look->nlinks; i++) {
		const struct slack_link *l = &look->links[i];
		size_t ul = strlen(l->url), tl = strlen(l->text);
		size_t add = slack_link_chars(l) + (chars ? 3 : 0);
		if (chars + add > cap)
			break;
		if (out != NULL) {
			if (chars)
				util_buf_puts(out, sep);
			util_buf_puts(out, "<");
			util_buf_append(out, l->url, ul);
			if (tl) {
				util_buf_puts(out, "|");
				util_buf_append(out, l->text, tl);
			}
			util_buf_puts(out, ">");
		}
		chars += add;
	}
	return chars;
}

/*
 * Whether an item's mention goes out: error events, opened and reminder
 * messages; never info events or recovered ones (SPEC §13).
 */
static int
slack_item_mentions(const struct slack_item *it)
{
	if (it->look == NULL || !slack_nonempty(it->look->mention))
		return 0;
	switch (it->kind) {
	case SLACK_KIND_OPENED:
	case SLACK_KIND_REMINDER:
		return 1;
	case SLACK_KIND_RECOVERED:
		return 0;
	case SLACK_KIND_EVENT:
	case SLACK_KIND_REPLY:
		break;
	}
	return it->ev->severity == EVENT_ERROR;
}

int
slack_mentions(struct util_buf *out, const struct slack_item *items, size_t n)
{
	size_t start = out->len;

	for (size_t i = 0; i < n; i++) {
		if (!slack_item_mentions(&items[i]))
			continue;
		for (const char *m = items[i].look->mention; *m != '\0';) {
			size_t l = strcspn(m, " ");
			bool seen = false;
			/* the tokens so far, each followed by a space or the end */
			for (const char *p = out->data ? out->data + start : NULL;
			    p != NULL && p < out->data + out->len && !seen;) {
				size_t pl = strcspn(p, " ");
				seen = pl == l && memcmp(p, m, l) == 0;
				p += pl + (p[pl] == ' ');
			}
			if (l > 0 && !seen) {
				if (out->len > start)
					util_buf_puts(out, " ");
				util_buf_append(out, m, l);
			}
			m += l + (m[l] == ' ');
		}
	}
	return out->len > start;
}

/* Characters of all rendered attachment texts when each shows budget characters. */
struct slack_total {
	const struct slack_item *items;
	size_t n;
};

static size_t
slack_total_text(const void *ctx, size_t budget)
{
	const struct slack_total *t = ctx;
	size_t total = 0, cap = slack_links_cap(t->n);

	for (size_t i = 0; i < t->n; i++) {
		size_t links = slack_links_line(NULL, t->items[i].look, cap);
		total += slack_item_text(NULL, &t->items[i], budget, NULL) + (links ? links + 1 : 0);
	}
	return total;
}

/*
 * slack_internal.h. The rendered length is not monotone in the budget (a
 * text that stops being cut loses its marker), so the binary search keeps
 * only "lo fits, hi does not" as its invariant and may settle slightly below
 * the best budget.
 */
size_t
slack_fit_budget(size_t (*chars)(const void *ctx, size_t budget), const void *ctx,
    size_t max, size_t cap)
{
	size_t lo = 0, hi = max;

	if (chars(ctx, max) <= cap)
		return max;
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (chars(ctx, mid) <= cap)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

/*
 * The per-attachment text budget (characters of the raw message): max_text,
 * or less when the rendered texts of all items would exceed
 * SLACK_MAX_TOTAL_TEXT; 0 always fits, since with at most
 * SLACK_MAX_ATTACHMENTS items every text is then a marker of under 50
 * characters.
 */
static size_t
slack_budget(const struct slack_item *items, size_t n, size_t max_text)
{
	struct slack_total t = { items, n };

	return slack_fit_budget(slack_total_text, &t, max_text, SLACK_MAX_TOTAL_TEXT);
}

/* A struct slack_field is one candidate: rank orders precedence, seq breaks
 * ties (later wins). */
static int
slack_field_cmp(const void *a, const void *b)
{
	const struct slack_field *x = a, *y = b;
	int c = strcmp(x->key, y->key);

	if (c != 0)
		return c;
	if (x->rank != y->rank)
		return x->rank < y->rank ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/*
 * Precedence, low to high, as notification-controller's: annotation keys <
 * alert extra (metadata, then summary) < plain and controller keys. Hidden
 * event keys (token, checksum, digest) are dropped before merging, so an
 * alert that names such a key explicitly still shows it.
 */
struct slack_field *
slack_fields_sorted(const struct slack_item *it, size_t *nshow, size_t *hidden)
{
	const struct event *ev = it->ev;
	bool cluster = it->cluster != NULL && it->cluster[0] != '\0';
	size_t cap = ev->nmeta + it->nextra + 1, nf = 0, first = 0;
	struct slack_field *f = NULL;

	*nshow = *hidden = 0;
	if (cap == 1 && !cluster)
		return NULL;
	f = util_calloc(cap, sizeof(*f));
	if (cluster) {
		/* The client's cluster comes first and is the only "cluster". */
		f[nf].key = "cluster";
		f[nf].value = it->cluster;
		f[nf].seq = nf;
		nf++;
		first = 1;
	}
	for (size_t i = 0; i < ev->nmeta; i++) {
		if (event_meta_hidden(ev->meta[i].key))
			continue;
		/* kustomize-controller's recovery is a commit-status update:
		 * nothing a reader of "Recovered" needs */
		if (it->kind == SLACK_KIND_RECOVERED && strcmp(ev->meta[i].key, "commit_status") == 0)
			continue;
		if (cluster && strcmp(ev->meta[i].key, "cluster") == 0)
			continue;
		f[nf].key = ev->meta[i].key;
		f[nf].value = ev->meta[i].value ? ev->meta[i].value : "";
		f[nf].rank = ev->meta[i].origin == EVENT_META_ANNOTATION ? 0 : 2;
		f[nf].seq = nf;
		nf++;
	}
	for (size_t i = 0; i < it->nextra; i++) {
		if (it->extra[i].key == NULL)
			continue;
		if (cluster && strcmp(it->extra[i].key, "cluster") == 0)
			continue;
		f[nf].key = it->extra[i].key;
		f[nf].value = it->extra[i].value ? it->extra[i].value : "";
		f[nf].rank = 1;
		f[nf].seq = nf;
		nf++;
	}
	if (nf == 0) {
		free(f);
		return NULL;
	}
	qsort(f + first, nf - first, sizeof(*f), slack_field_cmp);
	/* Keep one entry per key (the last of a run has the highest precedence). */
	size_t nkeep = first;
	for (size_t i = first; i < nf; i++)
		if (i + 1 == nf || strcmp(f[i].key, f[i + 1].key) != 0)
			f[nkeep++] = f[i];
	*nshow = nkeep;
	if (nkeep > SLACK_MAX_FIELDS) {
		*nshow = SLACK_MAX_FIELDS - 1;
		*hidden = nkeep - *nshow;
	}
	return f;
}

/*
 * The "fields" array (new reference) of one item (slack_fields_sorted);
 * NULL with *err == 0 when there is nothing to show, NULL with *err == 1 on
 * allocation failure.
 */
static json_t *
slack_fields(const struct slack_item *it, int *err)
{
	size_t nshow, hidden;
	struct slack_field *f = slack_fields_sorted(it, &nshow, &hidden);
	json_t *arr = NULL;

	*err = 0;
	if (f == NULL)
		return NULL;
	arr = json_array();
	if (arr == NULL) {
		*err = 1;
		goto out;
	}
	for (size_t i = 0; i <= nshow; i++) {
		char more[64];
		const char *title = i < nshow ? f[i].key : more, *value = i < nshow ? f[i].value : "";
		if (i == nshow) {
			if (hidden == 0)
				break;
			snprintf(more, sizeof(more), "%zu more fields not shown", hidden);
		}
		json_t *o = json_object();
		int rc = o == NULL ? -1 : 0;
		rc |= slack_set(o, "title", slack_json_bounded(title, SLACK_MAX_FIELD_TITLE, 1));
		rc |= slack_set(o, "value", slack_json_bounded(value, SLACK_MAX_FIELD_VALUE, 1));
		rc |= slack_set(o, "short", json_false());
		if (rc != 0 || json_array_append_new(arr, o) != 0) {
			*err = 1;
			json_decref(arr);
			arr = NULL;
			goto out;
		}
	}
out:
	free(f);
	return arr;
}

static const char *
slack_color(enum event_severity severity)
{
	switch (severity) {
	case EVENT_ERROR:
		return "danger";
	case EVENT_WARNING:
		return "warning";
	default:
		return "good";
	}
}

/* author_name into out: lowercase(kind)/name[.namespace], bounded, escaped. */
void
slack_author(struct util_buf *out, const struct event *ev)
{
	struct util_buf raw = { 0 };

	for (const char *k = ev->kind ? ev->kind : ""; *k; k++) {
		char c = *k;
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		util_buf_append(&raw, &c, 1);
	}
	util_buf_puts(&raw, "/");
	util_buf_puts(&raw, ev->name ? ev->name : "");
	if (ev->namespace != NULL) {
		util_buf_puts(&raw, ".");
		util_buf_puts(&raw, ev->namespace);
	}
	slack_bounded(out, raw.data, raw.len, SLACK_MAX_NAME, 1);
	util_buf_free(&raw);
}

/*
 * The fallback of an item with parts k: "<author>: <first line>", the line
 * cut at budget characters (before escaping) with the cut's marker; a
 * kind's lead is its first line (it says what happened: "Failing since …",
 * "Recovered after …"), never cut. Returns its characters as slack_text
 * counts them; out may be NULL.
 */
static size_t
slack_item_fallback_parts(struct util_buf *out, const struct slack_item *it,
    const struct slack_parts *k, size_t budget, enum slack_cut cut)
{
	struct util_buf author = { 0 };
	const char *line = it->ev->message ? it->ev->message : "";
	size_t n, chars;

	if (k->lead.len > 0) {
		line = k->lead.data;
		budget = SIZE_MAX;
	}
	n = strcspn(line, "\n");
	if (n > 0 && line[n - 1] == '\r')
		n--;
	slack_author(&author, it->ev);
	util_buf_puts(&author, ": ");
	chars = slack_utf8_count((const unsigned char *)author.data, author.len);
	if (out != NULL)
		util_buf_append(out, author.data, author.len);
	util_buf_free(&author);
	return chars + slack_text(out, line, n, budget, cut, 1);
}

/* slack_internal.h */
size_t
slack_item_fallback(struct util_buf *out, const struct slack_item *it, size_t budget,
    enum slack_cut cut)
{
	struct slack_parts k;
	slack_parts(it, &k);
	size_t chars = slack_item_fallback_parts(out, it, &k, budget, cut);
	slack_parts_free(&k);
	return chars;
}

/*
 * One attachment (new reference) or NULL on allocation failure. budget is
 * the number of message characters shown in text and fallback; links_cap
 * bounds the links line under the text (a look's).
 */
static json_t *
slack_attachment(const struct slack_item *it, size_t budget, size_t links_cap)
{
	const struct event *ev = it->ev;
	const struct slack_look *look = it->look;
	struct util_buf author = { 0 }, b = { 0 };
	struct slack_parts k;
	json_t *a = json_object(), *fields = NULL;
	int rc = a == NULL ? -1 : 0, ferr = 0;

	if (rc != 0)
		return NULL;
	slack_parts(it, &k);
	rc |= slack_set(a, "color", json_string(k.color));
	slack_author(&author, ev);
	rc |= slack_set(a, "author_name", slack_buf_json(&author));

	if (look != NULL && look->title != NULL) {
		if (look->title[0] != '\0')
			rc |= slack_set(a, "title", json_string_nocheck(look->title));
	} else if (k.has_title) {
		rc |= slack_set(a, "title", slack_json_bounded(k.title.data, SLACK_MAX_NAME, 1));
	} else if (slack_nonempty(ev->reason)) {
		rc |= slack_set(a, "title", slack_json_bounded(ev->reason, SLACK_MAX_NAME, 1));
	}

	/* the text, then the links on a line of their own */
	slack_item_text(&b, it, budget, NULL);
	size_t mark = b.len;
	if (b.len > 0)
		util_buf_puts(&b, "\n");
	if (slack_links_line(&b, look, links_cap) == 0)
		b.len = mark;
	rc |= slack_set(a, "text", slack_buf_json(&b));

	slack_item_fallback_parts(&b, it, &k, budget, SLACK_CUT_ELLIPSIS);
	util_buf_free(&author);
	slack_parts_free(&k);
	rc |= slack_set(a, "fallback", slack_buf_json(&b));

	json_t *mrkdwn = json_array();
	if (mrkdwn == NULL || json_array_append_new(mrkdwn, json_string("text")) != 0)
		rc = -1;
	rc |= slack_set(a, "mrkdwn_in", mrkdwn);

	fields = slack_fields(it, &ferr);
	if (ferr)
		rc = -1;
	else if (fields != NULL)
		rc |= slack_set(a, "fields", fields);

	if (ev->has_timestamp) {
		char ts[32];
		snprintf(ts, sizeof(ts), "%lld", (long long)ev->timestamp);
		rc |= slack_set(a, "ts", json_string(ts));
	}
	if (rc != 0) {
		json_decref(a);
		return NULL;
	}
	return a;
}

json_t *
slack_root(const struct conf_provider *p, const char *channel,
    const struct slack_item *items, size_t n)
{
	json_t *root = NULL;
	int rc = 0;

	if (p == NULL || items == NULL || n == 0)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (items[i].ev == NULL)
			return NULL;
	if (!slack_nonempty(channel))
		channel = p->channel;
	if (!slack_nonempty(channel))
		channel = NULL;
	if (p->type == CONF_PROVIDER_SLACK_BOT && channel == NULL)
		return NULL;        /* chat.postMessage requires a channel */

	root = json_object();
	if (root == NULL)
		return NULL;
	if (channel != NULL)
		rc |= slack_set(root, "channel", slack_json_text(channel, 0));
	const char *user = p->username;
	if (!slack_nonempty(user))
		user = items[0].ev->reporting_controller;
	if (slack_nonempty(user))
		rc |= slack_set(root, "username", slack_json_bounded(user, SLACK_MAX_NAME, 0));
	/* the SDK types make the two icons mutually exclusive: emoji wins */
	if (slack_nonempty(p->icon_emoji))
		rc |= slack_set(root, "icon_emoji", slack_json_text(p->icon_emoji, 0));
	else if (slack_nonempty(p->icon_url))
		rc |= slack_set(root, "icon_url", slack_json_text(p->icon_url, 0));
	if (rc != 0) {
		json_decref(root);
		return NULL;
	}
	return root;
}

/* The attachments form (SPEC §9). */
static json_t *
slack_render_attachments(const struct conf_provider *p, const char *channel,
    const struct slack_item *items, size_t n)
{
	json_t *root = NULL, *atts = NULL;
	struct util_buf text = { 0 };
	int rc = 0;

	if (n > SLACK_MAX_ATTACHMENTS)
		return NULL;
	root = slack_root(p, channel, items, n);
	if (root == NULL)
		return NULL;
	/* Slack notifies from the top-level text: the mentions go there (SPEC §13) */
	slack_mentions(&text, items, n);
	if (n > 1)
		util_buf_printf(&text, "%s%zu events", text.len ? " " : "", n);
	if (text.len > 0)
		rc |= slack_set(root, "text", slack_buf_json(&text));

	size_t budget = slack_budget(items, n, slack_max_text(p));
	size_t links_cap = slack_links_cap(n);

	atts = json_array();
	if (atts == NULL)
		rc = -1;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		json_t *a = slack_attachment(&items[i], budget, links_cap);
		if (a == NULL || json_array_append_new(atts, a) != 0)
			rc = -1;
	}
	rc |= slack_set(root, "attachments", atts);
	if (rc != 0) {
		json_decref(root);
		return NULL;
	}
	return root;
}

json_t *
slack_render(const struct conf_provider *p, const char *channel,
    const struct slack_item *items, size_t n)
{
	if (p != NULL && p->format == CONF_FORMAT_BLOCKS) {
		size_t used = 0;
		json_t *j = slack_blocks_render(p, channel, items, n, &used);
		if (j != NULL && used < n) {
			json_decref(j);
			return NULL;
		}
		return j;
	}
	return slack_render_attachments(p, channel, items, n);
}

static char *
slack_dump(json_t *j)
{
	char *s;

	if (j == NULL)
		return NULL;
	s = slack_json_string(j);
	json_decref(j);
	return s;
}

/*
 * A row's incident snapshot (queue.c: the JSON of the deliveries' incident
 * column) into *inc, its strings borrowed from the returned JSON (new
 * reference; NULL when there is none or it is not an object, then the item
 * renders without an incident).
 */
json_t *
slack_incident_parse(const char *text, struct slack_incident *inc)
{
	memset(inc, 0, sizeof(*inc));
	if (text == NULL || *text == '\0')
		return NULL;
	json_t *o = json_loads(text, 0, NULL);
	if (!json_is_object(o)) {
		json_decref(o);
		return NULL;
	}
	json_t *v;                    /* borrowed */
	if (json_is_number(v = json_object_get(o, "since")))
		inc->since = json_number_value(v);
	if (json_is_number(v = json_object_get(o, "failures")))
		inc->failures = (long)json_number_value(v);
	if (json_is_number(v = json_object_get(o, "duration")))
		inc->duration = json_number_value(v);
	if (json_is_string(v = json_object_get(o, "last_message")))
		inc->last_message = json_string_value(v);
	if (json_is_string(v = json_object_get(o, "revision")))
		inc->revision = json_string_value(v);
	return o;
}

char *
slack_render_reply_string(const struct conf_provider *p, const char *channel_id,
    const char *thread_ts, bool broadcast, const struct slack_item *items, size_t n)
{
	json_t *root;
	int rc = 0;

	if (!slack_nonempty(channel_id) || !slack_nonempty(thread_ts))
		return NULL;
	root = slack_render(p, channel_id, items, n);
	if (root == NULL)
		return NULL;
	rc |= slack_set(root, "thread_ts", slack_json_text(thread_ts, 0));
	if (broadcast)
		rc |= slack_set(root, "reply_broadcast", json_true());
	if (rc != 0) {
		json_decref(root);
		return NULL;
	}
	return slack_dump(root);
}

char *
slack_render_update_string(const struct conf_provider *p, const char *channel_id,
    const char *ts, const struct slack_item *items, size_t n)
{
	json_t *full = NULL, *root = NULL, *text;
	int rc = 0;

	if (!slack_nonempty(channel_id) || !slack_nonempty(ts))
		return NULL;
	full = slack_render(p, channel_id, items, n);
	root = json_object();
	if (full == NULL || root == NULL)
		goto fail;
	rc |= slack_set(root, "channel", slack_json_text(channel_id, 0));
	rc |= slack_set(root, "ts", slack_json_text(ts, 0));
	text = json_object_get(full, "text");                      /* borrowed */
	rc |= slack_set(root, "text", text != NULL ? json_incref(text) : json_string(""));
	/* Only the content: whatever else slack_render adds (username, icons)
	 * is not chat.update's to take. */
	static const char *const content[] = { "attachments", "blocks" };
	for (size_t i = 0; i < sizeof(content) / sizeof(content[0]); i++) {
		json_t *v = json_object_get(full, content[i]);     /* borrowed */
		if (v != NULL)
			rc |= json_object_set(root, content[i], v);
	}
	if (rc != 0)
		goto fail;
	json_decref(full);
	return slack_dump(root);
fail:
	json_decref(full);
	json_decref(root);
	return NULL;
}

/*
 * The parent's blocks with the count shown (new reference), or NULL when the
 * parent has none or they cannot take it: a context block right under the
 * head section, or, in a message of SLACK_BLOCKS_MAX blocks, one more
 * element of its last block when that is a context block with room.
 */
static json_t *
slack_count_blocks(json_t *parent, const char *count)
{
	json_t *blocks = json_object_get(parent, "blocks");          /* borrowed */
	if (!json_is_array(blocks) || json_array_size(blocks) == 0)
		return NULL;
	json_t *copy = json_deep_copy(blocks);
	json_t *elem = json_pack("{s:s, s:s}", "type", "mrkdwn", "text", count);
	json_t *ctx = NULL;
	if (copy == NULL || elem == NULL)
		goto fail;
	if (json_array_size(copy) < SLACK_BLOCKS_MAX) {
		ctx = json_pack("{s:s, s:[O]}", "type", "context", "elements", elem);
		if (ctx == NULL || json_array_insert_new(copy, 1, ctx) != 0)
			goto fail;
	} else {
		json_t *last = json_array_get(copy, json_array_size(copy) - 1);
		json_t *elems = json_object_get(last, "elements");
		const char *type = json_string_value(json_object_get(last, "type"));
		if (type == NULL || strcmp(type, "context") != 0 || !json_is_array(elems) ||
		    json_array_size(elems) >= SLACK_BLOCKS_MAX_CONTEXT ||
		    json_array_append(elems, elem) != 0)
			goto fail;
	}
	json_decref(elem);
	return copy;
fail:
	json_decref(elem);
	json_decref(copy);
	return NULL;
}

char *
slack_render_count_string(const char *channel_id, const char *ts, long failures,
    double since, double now, const char *parent)
{
	struct util_buf b = { 0 };
	json_t *root, *posted = NULL, *blocks = NULL;
	int rc = 0;

	if (!slack_nonempty(channel_id) || !slack_nonempty(ts))
		return NULL;
	root = json_object();
	if (root == NULL)
		return NULL;
	slack_failures(&b, failures);
	util_buf_puts(&b, " since ");
	slack_clock_text(&b, since, now);
	if (parent != NULL && (posted = json_loads(parent, 0, NULL)) != NULL)
		blocks = slack_count_blocks(posted, b.data);
	rc |= slack_set(root, "channel", slack_json_text(channel_id, 0));
	rc |= slack_set(root, "ts", slack_json_text(ts, 0));
	if (blocks != NULL) {
		/* The notification text of the parent, the count after it: the
		 * parent's leaves room for it (SLACK_BLOCKS_MAX_TOP), unless an
		 * older version rendered it; Slack refuses more than 40,000. */
		const char *text = json_string_value(json_object_get(posted, "text"));
		struct util_buf t = { 0 };
		if (slack_nonempty(text)) {
			util_buf_puts(&t, text);
			slack_blocks_cut(&t, SLACK_MAX_TOTAL_TEXT - 1 -
			    slack_utf8_count((const unsigned char *)b.data, b.len));
			util_buf_puts(&t, "\n");
		}
		util_buf_append(&t, b.data, b.len);
		util_buf_free(&b);
		rc |= slack_set(root, "text", slack_buf_json(&t));
		rc |= slack_set(root, "blocks", blocks);
	} else {
		rc |= slack_set(root, "text", slack_buf_json(&b));
	}
	json_decref(posted);
	if (rc != 0) {
		json_decref(root);
		return NULL;
	}
	return slack_dump(root);
}

char *
slack_render_string(const struct conf_provider *p, const char *channel,
    const struct slack_item *items, size_t n)
{
	return slack_dump(slack_render(p, channel, items, n));
}

char *
slack_render_fit(const struct conf_provider *p, const char *channel,
    const struct slack_item *items, size_t n, size_t *used)
{
	*used = 0;
	if (p != NULL && p->format == CONF_FORMAT_BLOCKS)
		return slack_dump(slack_blocks_render(p, channel, items, n, used));
	char *s = slack_dump(slack_render_attachments(p, channel, items, n));
	if (s != NULL)
		*used = n;
	return s;
}

/* ---- classification ---- */

static int
slack_is_space(int c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

/*
 * Append s[0..n) to b as printable ASCII: trimmed, whitespace runs folded to
 * one space, any other control or non-ASCII byte replaced by '?'.
 */
static void
slack_printable(struct util_buf *b, const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;
	int pending_space = 0;

	while (n > 0 && slack_is_space(s[n - 1]))
		n--;
	while (i < n && slack_is_space(s[i]))
		i++;
	for (; i < n; i++) {
		char c = (char)s[i];
		if (slack_is_space(s[i])) {
			pending_space = 1;
			continue;
		}
		if (pending_space) {
			util_buf_puts(b, " ");
			pending_space = 0;
		}
		if (s[i] < 0x20 || s[i] >= 0x7f)
			c = '?';
		util_buf_append(b, &c, 1);
	}
}

/* Copy text into the result's error buffer, ending in "..." when cut. */
static void
slack_set_error(struct slack_result *out, const struct util_buf *b)
{
	size_t cap = sizeof(out->error);
	size_t len = b->len;

	if (len < cap) {
		memcpy(out->error, b->data ? b->data : "", len);
		out->error[len] = '\0';
		return;
	}
	memcpy(out->error, b->data, cap - 4);
	memcpy(out->error + cap - 4, "...", 4);
}

/* Replace every occurrence of each secret in b by "[redacted]". */
static void
slack_redact(struct util_buf *b, char *const *secrets)
{
	for (size_t k = 0; secrets != NULL && secrets[k] != NULL; k++) {
		const char *sec = secrets[k];
		size_t sl = strlen(sec);
		if (sl == 0 || b->data == NULL || strstr(b->data, sec) == NULL)
			continue;
		struct util_buf out = { 0 };
		const char *p = b->data, *hit;
		while ((hit = strstr(p, sec)) != NULL) {
			util_buf_append(&out, p, (size_t)(hit - p));
			util_buf_puts(&out, "[redacted]");
			p = hit + sl;
		}
		util_buf_puts(&out, p);
		util_buf_free(b);
		*b = out;
	}
}

/*
 * Whether an error word (an API error, or the start of a plain-text body)
 * says the message was too large or invalid as a whole.
 */
static int
slack_oversize_word(const char *w, size_t n)
{
	static const char *const words[] = { "invalid_payload", "msg_too_long", "invalid_blocks" };
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		size_t l = strlen(words[i]);
		if (n >= l && strncmp(w, words[i], l) == 0 &&
		    (n == l || !(w[l] == '_' || (w[l] >= 'a' && w[l] <= 'z') ||
		    (w[l] >= '0' && w[l] <= '9'))))
			return 1;
	}
	return 0;
}

static int
slack_api_transient(const char *e)
{
	static const char *const transient[] = {
		"internal_error", "service_unavailable", "request_timeout", "fatal_error",
	};
	for (size_t i = 0; i < sizeof(transient) / sizeof(transient[0]); i++)
		if (strcmp(e, transient[i]) == 0)
			return 1;
	return 0;
}

UNITTEST double slack_parse_retry_after(const char *value, time_t now);

static double
slack_retry_after_or_default(const char *value, time_t now)
{
	double d = slack_parse_retry_after(value, now);
	return d < 0 ? 1.0 : d;
}

/*
 * The body as a Web API answer: *ok is its boolean "ok" (-1 when the body is
 * not a JSON object with one) and *api_error its non-empty "error" string
 * (NULL when none), borrowed from the returned JSON (new reference, may be
 * NULL), which the caller frees.
 */
static json_t *
slack_body_fields(const struct slack_response *resp, int *ok, const char **api_error)
{
	json_t *body = NULL;
	*ok = -1;
	*api_error = NULL;
	if (resp->body == NULL || resp->body_len == 0)
		return NULL;
	body = json_loadb(resp->body, resp->body_len, 0, NULL);
	if (json_is_object(body)) {
		json_t *j = json_object_get(body, "ok");       /* borrowed */
		if (json_is_boolean(j))
			*ok = json_is_true(j);
		j = json_object_get(body, "error");            /* borrowed */
		if (json_is_string(j) && json_string_length(j) > 0)
			*api_error = json_string_value(j);
	}
	return body;
}

/*
 * The outcome of an HTTP answer with status st (the table at the top of
 * this file). *unexpected is set for a slack-bot 2xx that is not a Web API
 * answer: a proxy's page or a truncated answer, Slack may have posted or not.
 */
static enum slack_outcome
slack_http_outcome(enum conf_provider_type type, long st, int ok, const char *api_error,
    int *unexpected)
{
	*unexpected = 0;
	if (st >= 200 && st <= 299) {
		if (type != CONF_PROVIDER_SLACK_BOT || ok == 1)
			return SLACK_DELIVERED;
		if (ok == -1) {
			*unexpected = 1;
			return SLACK_TRANSIENT;
		}
		if (api_error == NULL)
			return SLACK_PERMANENT;
		if (strcmp(api_error, "ratelimited") == 0)
			return SLACK_RATE_LIMITED;
		return slack_api_transient(api_error) ? SLACK_TRANSIENT : SLACK_PERMANENT;
	}
	if (st == 429)
		return SLACK_RATE_LIMITED;
	if ((st >= 500 && st <= 599) || st == 408)
		return SLACK_TRANSIENT;
	return SLACK_PERMANENT;
}

/*
 * The error text of an HTTP answer into msg: "HTTP <status>" and the API
 * error, else the printable body; sets out->oversize for a PERMANENT outcome
 * that refuses the message as a whole.
 */
static void
slack_http_error(struct util_buf *msg, const struct slack_response *resp,
    const char *api_error, int unexpected, struct slack_result *out)
{
	int permanent = out->outcome == SLACK_PERMANENT;
	util_buf_printf(msg, "HTTP %ld", resp->status);
	if (api_error != NULL) {
		util_buf_puts(msg, " ");
		slack_printable(msg, api_error, strlen(api_error));
		if (permanent && slack_oversize_word(api_error, strlen(api_error)))
			out->oversize = 1;
	} else {
		struct util_buf d = { 0 };
		if (resp->body != NULL)
			slack_printable(&d, resp->body, resp->body_len);
		if (unexpected)
			util_buf_printf(msg, " unexpected response: %s",
			    d.len > 0 ? d.data : "(empty body)");
		else if (d.len > 0)
			util_buf_printf(msg, " %s", d.data);
		if (permanent && d.len > 0 && slack_oversize_word(d.data, d.len))
			out->oversize = 1;
		util_buf_free(&d);
	}
	if (permanent && resp->status == 413)
		out->oversize = 1;
}

/*
 * Copy v into dst (size 32) when it is a string of Slack's form for what it
 * names: a channel id is upper-case letters and digits; a ts is digits, a
 * dot and digits. Else dst stays "".
 */
static void
slack_handle_copy(char dst[32], json_t *v, bool is_ts)
{
	const char *s = json_is_string(v) ? json_string_value(v) : NULL;
	size_t n = s ? strlen(s) : 0, dots = 0;

	if (n == 0 || n >= 32)
		return;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (is_ts ? !(c >= '0' && c <= '9') && !(c == '.' && ++dots == 1 && i > 0 &&
		    i + 1 < n) : !(c >= 'A' && c <= 'Z') && !(c >= '0' && c <= '9'))
			return;
	}
	if (is_ts && dots != 1)
		return;
	memcpy(dst, s, n + 1);
}

/* The channel id and ts of a Web API success answer (borrowed body, may be NULL). */
static void
slack_handle(json_t *body, struct slack_result *out)
{
	if (!json_is_object(body))
		return;
	slack_handle_copy(out->channel, json_object_get(body, "channel"), false);
	slack_handle_copy(out->ts, json_object_get(body, "ts"), true);
	if (out->channel[0] == '\0' || out->ts[0] == '\0')
		out->channel[0] = out->ts[0] = '\0';
}

void
slack_classify(enum conf_provider_type type, const struct slack_response *resp,
    time_t now, struct slack_result *out)
{
	struct util_buf msg = { 0 };
	json_t *body = NULL;
	const char *api_error = NULL;
	int ok = -1, unexpected = 0;

	memset(out, 0, sizeof(*out));
	if (resp->transport_error) {
		out->outcome = SLACK_TRANSIENT;
		util_buf_puts(&msg, "transport: ");
		if (resp->transport_msg != NULL && resp->transport_msg[0] != '\0')
			slack_printable(&msg, resp->transport_msg, strlen(resp->transport_msg));
		else
			util_buf_puts(&msg, "error");
	} else {
		body = slack_body_fields(resp, &ok, &api_error);
		out->outcome = slack_http_outcome(type, resp->status, ok, api_error, &unexpected);
		if (out->outcome == SLACK_DELIVERED) {
			if (type == CONF_PROVIDER_SLACK_BOT)
				slack_handle(body, out);
			goto out;
		}
		if (unexpected)
			api_error = NULL;
		if (out->outcome == SLACK_PERMANENT && type == CONF_PROVIDER_SLACK_BOT &&
		    api_error != NULL &&
		    (strcmp(api_error, "message_not_found") == 0 ||
		    strcmp(api_error, "cant_update_message") == 0))
			out->repost = 1;
		if (out->outcome == SLACK_RATE_LIMITED)
			out->retry_after = slack_retry_after_or_default(resp->retry_after, now);
		slack_http_error(&msg, resp, api_error, unexpected, out);
	}
	slack_redact(&msg, resp->secrets);
	slack_set_error(out, &msg);
out:
	json_decref(body);
	util_buf_free(&msg);
}

/* ---- secrets ---- */

static void
slack_secret_add(char ***v, size_t *n, const char *s, size_t len)
{
	if (len == 0)
		return;
	*v = util_realloc(*v, (*n + 2) * sizeof(**v));
	(*v)[(*n)++] = util_strndup(s, len);
	(*v)[*n] = NULL;
}

static int
slack_secret_cmp(const void *a, const void *b)
{
	size_t la = strlen(*(char *const *)a), lb = strlen(*(char *const *)b);
	return la > lb ? -1 : la < lb;
}

char **
slack_secrets(const struct conf_provider *p)
{
	char **v = NULL;
	size_t n = 0;

	if (p == NULL)
		return NULL;
	if (p->token != NULL)
		slack_secret_add(&v, &n, p->token, strlen(p->token));
	const char *url = p->url;
	if (url != NULL && *url != '\0') {
		slack_secret_add(&v, &n, url, strlen(url));
		const char *scheme = strstr(url, "://");
		const char *path = strchr(scheme ? scheme + 3 : url, '/');
		if (path != NULL) {
			slack_secret_add(&v, &n, path, strlen(path));
			const char *q = strchr(path, '?');
			if (q != NULL)
				slack_secret_add(&v, &n, q + 1, strlen(q + 1));
			size_t plen = q ? (size_t)(q - path) : strlen(path);
			/* Segments after the first: "/services/T…/B…/secret". */
			const char *seg = path + 1, *end = path + plen;
			bool first = true;
			while (seg < end) {
				const char *slash = memchr(seg, '/', (size_t)(end - seg));
				size_t len = slash ? (size_t)(slash - seg) : (size_t)(end - seg);
				if (!first && len >= 4)
					slack_secret_add(&v, &n, seg, len);
				first = false;
				seg += len + 1;
			}
		}
	}
	if (n > 1)
		qsort(v, n, sizeof(*v), slack_secret_cmp);
	return v;
}

void
slack_secrets_free(char **secrets)
{
	if (secrets == NULL)
		return;
	for (size_t i = 0; secrets[i] != NULL; i++) {
		memset(secrets[i], 0, strlen(secrets[i]));
		free(secrets[i]);
	}
	free(secrets);
}

/* ---- Retry-After ---- */

/* Cursor over a header value for the HTTP-date parsers. */
struct slack_cursor {
	const char *p;
	const char *end;
};

static int
slack_lit(struct slack_cursor *c, const char *lit)
{
	size_t n = strlen(lit);

	if ((size_t)(c->end - c->p) < n || strncasecmp(c->p, lit, n) != 0)
		return -1;
	c->p += n;
	return 0;
}

/* Exactly `digits` decimal digits (a leading space allowed when space_pad). */
static int
slack_num(struct slack_cursor *c, int digits, int space_pad, int *v)
{
	int val = 0;

	if (c->end - c->p < digits)
		return -1;
	for (int i = 0; i < digits; i++) {
		char ch = c->p[i];
		if (i == 0 && space_pad && ch == ' ' && digits > 1)
			continue;
		if (ch < '0' || ch > '9')
			return -1;
		val = val * 10 + (ch - '0');
	}
	c->p += digits;
	*v = val;
	return 0;
}

static int
slack_month(struct slack_cursor *c, int *mon)
{
	static const char *const months[] = {
		"Jan", "Feb", "Mar", "Apr", "May", "Jun",
		"Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
	};
	for (int i = 0; i < 12; i++)
		if (slack_lit(c, months[i]) == 0) {
			*mon = i;
			return 0;
		}
	return -1;
}

/* A day name: short ("Sun") or, when long is set, full ("Sunday"). */
static int
slack_wday(struct slack_cursor *c, int long_name)
{
	static const char *const days[][2] = {
		{ "Mon", "Monday" }, { "Tue", "Tuesday" }, { "Wed", "Wednesday" },
		{ "Thu", "Thursday" }, { "Fri", "Friday" }, { "Sat", "Saturday" },
		{ "Sun", "Sunday" },
	};
	for (int i = 0; i < 7; i++)
		if (slack_lit(c, days[i][long_name ? 1 : 0]) == 0)
			return 0;
	return -1;
}

/* "HH:MM:SS" */
static int
slack_clock(struct slack_cursor *c, struct tm *tm)
{
	if (slack_num(c, 2, 0, &tm->tm_hour) || slack_lit(c, ":") ||
	    slack_num(c, 2, 0, &tm->tm_min) || slack_lit(c, ":") ||
	    slack_num(c, 2, 0, &tm->tm_sec))
		return -1;
	return 0;
}

/*
 * The three HTTP-date forms of RFC 9110 §5.6.7, all UTC:
 *   IMF-fixdate  "Sun, 06 Nov 1994 08:49:37 GMT"
 *   RFC 850      "Sunday, 06-Nov-94 08:49:37 GMT"   (yy < 70 -> 20yy)
 *   asctime      "Sun Nov  6 08:49:37 1994"
 * Returns 0 and *t, or -1. Impossible dates (Feb 30, 25:00) are rejected.
 * Not curl_getdate(): it accepts what the Retry-After table of test_slack.c
 * rejects (8 of its 29 dates): no zone or "UTC", text after the date, a
 * one-digit day or hour, an unpadded asctime day, a long weekday before an
 * IMF-fixdate, and Feb 31 (as Mar 3).
 */
static int
slack_http_date(const char *s, size_t n, time_t *t)
{
	struct slack_cursor c;
	struct tm tm;
	int ok = -1;

	for (int form = 0; form < 3 && ok != 0; form++) {
		c.p = s;
		c.end = s + n;
		memset(&tm, 0, sizeof(tm));
		switch (form) {
		case 0:
			ok = (slack_wday(&c, 0) || slack_lit(&c, ", ") ||
			    slack_num(&c, 2, 0, &tm.tm_mday) || slack_lit(&c, " ") ||
			    slack_month(&c, &tm.tm_mon) || slack_lit(&c, " ") ||
			    slack_num(&c, 4, 0, &tm.tm_year) || slack_lit(&c, " ") ||
			    slack_clock(&c, &tm) || slack_lit(&c, " GMT")) ? -1 : 0;
			tm.tm_year -= 1900;
			break;
		case 1:
			ok = (slack_wday(&c, 1) || slack_lit(&c, ", ") ||
			    slack_num(&c, 2, 0, &tm.tm_mday) || slack_lit(&c, "-") ||
			    slack_month(&c, &tm.tm_mon) || slack_lit(&c, "-") ||
			    slack_num(&c, 2, 0, &tm.tm_year) || slack_lit(&c, " ") ||
			    slack_clock(&c, &tm) || slack_lit(&c, " GMT")) ? -1 : 0;
			if (tm.tm_year < 70)
				tm.tm_year += 100;
			break;
		default:
			ok = (slack_wday(&c, 0) || slack_lit(&c, " ") ||
			    slack_month(&c, &tm.tm_mon) || slack_lit(&c, " ") ||
			    slack_num(&c, 2, 1, &tm.tm_mday) || slack_lit(&c, " ") ||
			    slack_clock(&c, &tm) || slack_lit(&c, " ") ||
			    slack_num(&c, 4, 0, &tm.tm_year)) ? -1 : 0;
			tm.tm_year -= 1900;
			break;
		}
		if (ok == 0 && c.p != c.end)
			ok = -1;
	}
	if (ok != 0)
		return -1;
	if (tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
	    tm.tm_sec > 60)
		return -1;
	int leap = tm.tm_sec == 60;
	if (leap)
		tm.tm_sec = 59;
	struct tm want = tm, back;
	time_t v = timegm(&tm);
	if (v == (time_t)-1 || gmtime_r(&v, &back) == NULL || back.tm_mday != want.tm_mday ||
	    back.tm_mon != want.tm_mon || back.tm_year != want.tm_year)
		return -1;          /* normalized away: the date does not exist */
	*t = v + leap;
	return 0;
}

UNITTEST double
slack_parse_retry_after(const char *value, time_t now)
{
	const char *s = value;
	size_t n;

	if (s == NULL)
		return -1;
	while (*s == ' ' || *s == '\t')
		s++;
	n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	if (n == 0)
		return -1;

	if (s[0] >= '0' && s[0] <= '9') {
		double v = 0;
		for (size_t i = 0; i < n; i++) {
			if (s[i] < '0' || s[i] > '9')
				return -1;
			if (v < SLACK_RETRY_AFTER_MAX)
				v = v * 10 + (s[i] - '0');
		}
		return v < SLACK_RETRY_AFTER_MAX ? v : SLACK_RETRY_AFTER_MAX;
	}

	time_t t;
	if (slack_http_date(s, n, &t) != 0)
		return -1;
	double d = difftime(t, now);
	return d > 0 ? d : 0;
}

#ifdef FLUXRELAY_UNITTEST
char *
slack_escape(const char *s)
{
	struct util_buf b = { 0 };

	if (s == NULL)
		return NULL;
	slack_text(&b, s, strlen(s), SIZE_MAX, SLACK_CUT_NONE, 1);
	if (b.data == NULL)
		return util_strdup("");
	return b.data;
}
#endif
