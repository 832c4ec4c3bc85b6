/*
 * slack_blocks: render a message as Block Kit (SPEC §13). Pure, any thread.
 *
 * Layout, per event (a divider block between events of a coalesced message):
 *
 *   section   ":red_circle: *TITLE*\nkind/name.namespace · REASON"
 *             marker by severity (:red_circle: error, :large_yellow_circle:
 *             warning, :large_green_circle: info and trace); TITLE is the
 *             look's title, else the reason, else the author line (which
 *             then is not repeated); " · REASON" only when a template made
 *             the title (else the title is the reason)
 *   section…  the message: the look's text as rendered, else the event's
 *             message escaped and cut at max_text with "… (N more
 *             characters)"; a default message with a newline in it is a
 *             code block (```…```). Split into sections of at most
 *             SLACK_BLOCKS_MAX_TEXT characters, preferably after a newline,
 *             at most SLACK_BLOCKS_MAX_MESSAGE of them (the last then ends
 *             in "… (N more characters)"); none when the text is blank
 *   section…  the fields, "*key*\nvalue", in the order and with the bounds of
 *             the attachments (slack_fields_sorted), at most
 *             SLACK_BLOCKS_MAX_FIELDS per section
 *   context   the reporting controller, "cluster: NAME" (the "cluster"
 *             field: the sending client's, else the metadata's), the event time as
 *             Slack's <!date^…|RFC 3339> (each reader's time zone), and the
 *             look's links "<url|text> · …"; omitted when all are empty
 *
 * Top level: text (required for notifications) is the attachments'
 * fallback for one event ("author: first line", or the first line of what
 * a reminder or recovery says: "author: Recovered after 7s (4 failures)."),
 * "N events" for several,
 * after the mentions of the error events (SPEC §13), at most
 * SLACK_BLOCKS_MAX_TOP characters as sent (Slack refuses a text over
 * 40,000: msg_too_long), the line cut with "… (N more characters)"
 * where it would exceed them or max_text; unfurl_links and
 * unfurl_media are false, so a commit link does not unfurl into a preview.
 * No header block: it cannot carry links or mrkdwn.
 *
 * Characters are counted as Slack counts the text it receives: code points
 * of the escaped text (an entity is 4 or 5), and a cut never splits a
 * UTF-8 sequence, an entity or a <…> link or mention (slack_blocks_prefix).
 * An event takes at most 1 + 20 + 5 + 1 = 27 blocks (50 fields: 5
 * sections), so one always fits in 50. max_text counts characters before
 * escaping (SPEC §9), so its 40,000 may need 200,000 as sent (all '&'):
 * hence the cap on message sections rather than on max_text alone.
 */
#include "slack_blocks.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "event.h"
#include "slack_internal.h"
#include "template.h"
#include "util.h"

static const char slack_blocks_ellipsis[] = "\xe2\x80\xa6";   /* U+2026 */
static const char slack_blocks_fence[] = "```";

/* Most sections of one message text; room kept in the last for its marker. */
#define SLACK_BLOCKS_MAX_MESSAGE 20
#define SLACK_BLOCKS_MARKER_ROOM 40

/* The marker of an item's colour (its severity, or its message kind's). */
static const char *
slack_blocks_marker(const struct slack_item *it)
{
	const char *color = slack_item_color(it);
	if (strcmp(color, "danger") == 0)
		return ":red_circle:";
	if (strcmp(color, "warning") == 0)
		return ":large_yellow_circle:";
	return ":large_green_circle:";
}
/* Bytes and code points of the unit at s[i]: a <…> span, an entity or one character. */
static size_t
slack_blocks_unit(const char *s, size_t n, size_t i, size_t *cps)
{
	size_t l;

	if (s[i] == '<') {
		size_t c = 1;
		for (size_t j = i + 1; j < n && s[j] != '<'; j++) {
			if (((unsigned char)s[j] & 0xc0) != 0x80)
				c++;
			if (s[j] == '>') {
				*cps = c;
				return j + 1 - i;
			}
		}
	}
	*cps = 1;
	l = util_utf8_len((const unsigned char *)s + i, n - i);
	if (s[i] == '&') {
		size_t e = util_entity_len(s + i, n - i);
		if (e > 0)
			l = e;
		*cps = l;
	}
	return l ? l : 1;
}

/*
 * Byte length of the longest prefix of s[0..n) with at most max code points
 * that ends between units (slack_blocks_unit); when the first unit alone is
 * longer, a prefix that ends between code points. *cps gets its code points.
 */
static size_t
slack_blocks_prefix(const char *s, size_t n, size_t max, size_t *cps)
{
	size_t i = 0, c = 0;

	while (i < n) {
		size_t uc, l = slack_blocks_unit(s, n, i, &uc);
		if (c + uc > max)
			break;
		c += uc;
		i += l;
	}
	if (i == 0 && n > 0) {
		/* one unit longer than max (a huge <…>): cut it between code points */
		while (i < n && c < max) {
			size_t l = util_utf8_len((const unsigned char *)s + i, n - i);
			i += l ? l : 1;
			c++;
		}
	}
	*cps = c;
	return i;
}

/* Code points of s[0..n) (an invalid byte counts as one). */
static size_t
slack_blocks_cps(const char *s, size_t n)
{
	size_t c = 0;

	for (size_t i = 0; i < n; i++)
		if (((unsigned char)s[i] & 0xc0) != 0x80)
			c++;
	return c;
}

/* Bound b->data[start..) to max code points: whole, or a prefix and "…". */
static void
slack_blocks_bound(struct util_buf *b, size_t start, size_t max)
{
	size_t cps;

	if (b->len <= start || slack_blocks_cps(b->data + start, b->len - start) <= max)
		return;
	b->len = start + slack_blocks_prefix(b->data + start, b->len - start, max - 1, &cps);
	b->data[b->len] = '\0';
	util_buf_puts(b, slack_blocks_ellipsis);
}

/* A mrkdwn text object (new reference) from b, which it frees. */
static json_t *
slack_blocks_mrkdwn(struct util_buf *b)
{
	json_t *o = json_object(), *text = slack_buf_json(b);

	if (o == NULL || slack_set(o, "type", json_string("mrkdwn")) != 0) {
		json_decref(text);
		json_decref(o);
		return NULL;
	}
	if (slack_set(o, "text", text) != 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* Append a block of type, with member key = value (stolen) unless key is NULL. */
static int
slack_blocks_add(json_t *blocks, const char *type, const char *key, json_t *value)
{
	json_t *o = json_object();

	if (o == NULL || slack_set(o, "type", json_string(type)) != 0) {
		json_decref(value);
		json_decref(o);
		return -1;
	}
	if (key != NULL && slack_set(o, key, value) != 0) {
		json_decref(o);
		return -1;
	}
	return json_array_append_new(blocks, o) == 0 ? 0 : -1;
}

/* A section with b as its text (b freed). */
static int
slack_blocks_section(json_t *blocks, struct util_buf *b)
{
	return slack_blocks_add(blocks, "section", "text", slack_blocks_mrkdwn(b));
}

/* The first section: marker, title, author and reason. */
static int
slack_blocks_head(json_t *blocks, const struct slack_item *it)
{
	const struct event *ev = it->ev;
	const char *look_title = it->look != NULL ? it->look->title : NULL;
	struct util_buf b = { 0 }, author = { 0 };
	bool templated = slack_nonempty(look_title);

	slack_author(&author, ev);
	util_buf_printf(&b, "%s *", slack_blocks_marker(it));
	/* a message kind's own title ("Still failing: …", "Recovered: …")
	 * stands in for the reason, which then follows the author */
	bool titled = templated;
	if (templated)
		util_buf_puts(&b, look_title);
	else if (slack_item_title(&b, it))
		titled = true;
	else if (slack_nonempty(ev->reason))
		slack_bounded(&b, ev->reason, strlen(ev->reason), SLACK_MAX_NAME, 1);
	else
		util_buf_append(&b, author.data, author.len);
	util_buf_puts(&b, "*");
	if (titled || slack_nonempty(ev->reason)) {
		util_buf_puts(&b, "\n");
		util_buf_append(&b, author.data, author.len);
		if (titled && slack_nonempty(ev->reason)) {
			util_buf_puts(&b, " \xc2\xb7 ");
			slack_bounded(&b, ev->reason, strlen(ev->reason), SLACK_MAX_NAME, 1);
		}
	}
	util_buf_free(&author);
	slack_blocks_bound(&b, 0, SLACK_BLOCKS_MAX_TEXT);
	return slack_blocks_section(blocks, &b);
}

static bool
slack_blocks_blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
			return false;
	return true;
}

/*
 * The message in sections of at most SLACK_BLOCKS_MAX_TEXT characters, each
 * a code block of its own when code is set. A piece ends after its last
 * newline when that keeps at least half of it, so lines stay whole. The
 * last of SLACK_BLOCKS_MAX_MESSAGE sections says how much is left out.
 */
static int
slack_blocks_message(json_t *blocks, const struct slack_item *it, size_t max_text)
{
	struct util_buf text = { 0 };
	size_t rest, end;
	bool code;
	int rc = 0;

	/* the message, then its marker when max_text cut it: the marker of a
	 * last section that cuts it again counts both cuts */
	slack_item_text(&text, it, max_text, &rest);
	end = text.len;
	if (rest > 0)
		template_marker(&text, rest);
	code = (it->look == NULL || it->look->text == NULL) && it->ev->message != NULL &&
	    strchr(it->ev->message, '\n') != NULL;
	size_t room = SLACK_BLOCKS_MAX_TEXT - (code ? 2 * strlen(slack_blocks_fence) : 0);
	const char *s = text.data;
	size_t n = text.len;
	for (int k = 1; rc == 0 && n > 0 && !slack_blocks_blank(s, n); k++) {
		bool last = k == SLACK_BLOCKS_MAX_MESSAGE;
		size_t cps, cut = slack_blocks_prefix(s, n,
		    room - (last ? SLACK_BLOCKS_MARKER_ROOM : 0), &cps);
		if (cut < n && !last) {
			const char *nl = memrchr(s, '\n', cut);
			if (nl != NULL && (size_t)(nl - s) + 1 >= cut / 2)
				cut = (size_t)(nl - s) + 1;
		}
		/* the marker stays whole, in the section after the message's end,
		 * or replaced by the last section's, which says it all */
		size_t left = (size_t)(text.data + end - s);
		if (cut < n && cut > left && left > 0)
			cut = left;
		struct util_buf b = { 0 };
		if (code)
			util_buf_puts(&b, slack_blocks_fence);
		util_buf_append(&b, s, cut);
		if (last && cut < n)
			template_marker(&b, template_chars(s + cut, left - cut) + rest);
		if (code)
			util_buf_puts(&b, slack_blocks_fence);
		rc = slack_blocks_section(blocks, &b);
		s += cut;
		n -= cut;
		if (last)
			break;
	}
	util_buf_free(&text);
	return rc;
}

/* One field's text object (new reference): "*key*\nvalue", bounded. */
static json_t *
slack_blocks_field(const char *key, const char *value)
{
	struct util_buf b = { 0 };

	util_buf_puts(&b, "*");
	slack_bounded(&b, key, strlen(key), SLACK_MAX_FIELD_TITLE, 1);
	util_buf_puts(&b, "*");
	if (value[0] != '\0') {
		util_buf_puts(&b, "\n");
		slack_bounded(&b, value, strlen(value), SLACK_MAX_FIELD_VALUE, 1);
	}
	slack_blocks_bound(&b, 0, SLACK_BLOCKS_MAX_FIELD);
	return slack_blocks_mrkdwn(&b);
}

/*
 * The fields, SLACK_BLOCKS_MAX_FIELDS per section. *cluster gets the
 * "cluster" the fields have (the sending client's, else the alert's
 * metadata or the event's, with the fields' precedence; shown or among the
 * hidden), borrowed from the item, or NULL when there is none: the context
 * block shows it, and sorting the fields once per item serves both.
 */
static int
slack_blocks_fields(json_t *blocks, const struct slack_item *it, const char **cluster)
{
	size_t nshow, hidden;
	struct slack_field *f = slack_fields_sorted(it, &nshow, &hidden);
	size_t total = nshow + (hidden > 0);
	json_t *arr = NULL;
	int rc = 0;

	*cluster = NULL;
	for (size_t i = 0; f != NULL && i < nshow + hidden && *cluster == NULL; i++)
		if (strcmp(f[i].key, "cluster") == 0 && slack_nonempty(f[i].value))
			*cluster = f[i].value;

	for (size_t i = 0; rc == 0 && i < total; i++) {
		char more[64];
		const char *key = more, *value = "";
		if (i < nshow) {
			key = f[i].key;
			value = f[i].value;
		} else {
			snprintf(more, sizeof(more), "%zu more fields not shown", hidden);
		}
		if (arr == NULL && (arr = json_array()) == NULL) {
			rc = -1;
			break;
		}
		json_t *o = slack_blocks_field(key, value);
		if (o == NULL || json_array_append_new(arr, o) != 0)
			rc = -1;
		if (rc == 0 && (json_array_size(arr) == SLACK_BLOCKS_MAX_FIELDS || i + 1 == total)) {
			rc = slack_blocks_add(blocks, "section", "fields", arr);
			arr = NULL;
		}
	}
	json_decref(arr);
	free(f);
	return rc;
}

/*
 * The context block: controller, cluster (slack_blocks_fields' or NULL),
 * time, links; links_cap bounds the links.
 */
static int
slack_blocks_context(json_t *blocks, const struct slack_item *it, const char *cluster,
    size_t links_cap)
{
	const struct event *ev = it->ev;
	json_t *elems = json_array();
	struct util_buf b = { 0 };
	int rc = elems == NULL ? -1 : 0;

	if (rc == 0 && slack_nonempty(ev->reporting_controller)) {
		slack_bounded(&b, ev->reporting_controller, strlen(ev->reporting_controller),
		    SLACK_MAX_NAME, 1);
		rc |= json_array_append_new(elems, slack_blocks_mrkdwn(&b));
	}
	if (rc == 0 && cluster != NULL) {
		util_buf_puts(&b, "cluster: ");
		slack_bounded(&b, cluster, strlen(cluster), SLACK_MAX_NAME, 1);
		rc |= json_array_append_new(elems, slack_blocks_mrkdwn(&b));
	}
	if (rc == 0 && ev->has_timestamp) {
		char iso[32] = "";
		struct tm tm;
		time_t ts = ev->timestamp;
		if (gmtime_r(&ts, &tm) != NULL)
			strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%SZ", &tm);
		util_buf_printf(&b, "<!date^%lld^{date_short_pretty} {time_secs}|%s>",
		    (long long)ev->timestamp, iso);
		rc |= json_array_append_new(elems, slack_blocks_mrkdwn(&b));
	}
	if (rc == 0 && slack_links_line(&b, it->look, links_cap) > 0) {
		slack_blocks_bound(&b, 0, SLACK_BLOCKS_MAX_TEXT);
		rc |= json_array_append_new(elems, slack_blocks_mrkdwn(&b));
	}
	util_buf_free(&b);
	if (rc == 0 && json_array_size(elems) > 0)
		return slack_blocks_add(blocks, "context", "elements", elems);
	json_decref(elems);
	return rc;
}

/* The blocks of one item (new reference), or NULL on allocation failure. */
static json_t *
slack_blocks_item(const struct slack_item *it, size_t max_text)
{
	json_t *blocks = json_array();
	const char *cluster = NULL;

	if (blocks == NULL || slack_blocks_head(blocks, it) != 0 ||
	    slack_blocks_message(blocks, it, max_text) != 0 ||
	    slack_blocks_fields(blocks, it, &cluster) != 0 ||
	    slack_blocks_context(blocks, it, cluster, SLACK_BLOCKS_MAX_TEXT) != 0) {
		json_decref(blocks);
		return NULL;
	}
	return blocks;
}

/* slack_blocks.h */
void
slack_blocks_cut(struct util_buf *b, size_t max)
{
	if (slack_blocks_cps(b->data, b->len) <= max)
		return;
	/* the marker of all b holds is at least as long as the one it gets */
	size_t cps, room = max - template_marker(NULL, template_chars(b->data, b->len));
	size_t cut = slack_blocks_prefix(b->data, b->len, room, &cps);
	size_t rest = template_chars(b->data + cut, b->len - cut);
	b->len = cut;
	b->data[cut] = '\0';
	template_marker(b, rest);
}

/* The characters of the top-level text of one item when its fallback shows budget. */
struct slack_blocks_top {
	const struct slack_item *it;
	size_t head;                   /* the mentions before it */
};

static size_t
slack_blocks_top_chars(const void *ctx, size_t budget)
{
	const struct slack_blocks_top *t = ctx;

	return t->head + slack_item_fallback(NULL, t->it, budget, SLACK_CUT_COUNT);
}

/*
 * Top-level text: the mentions, then the fallback of one event or "N events",
 * at most SLACK_BLOCKS_MAX_TOP characters as sent, as Slack counts them
 * (max_text counts before escaping: an escaped line may be 5 times longer).
 * The fallback's line takes what the mentions leave, cut with "… (N more
 * characters)"; only mentions beyond all reason are cut themselves.
 */
static json_t *
slack_blocks_text(const struct slack_item *items, size_t n, size_t max_text)
{
	struct util_buf b = { 0 };

	if (slack_mentions(&b, items, n))
		util_buf_puts(&b, " ");
	if (n > 1) {
		util_buf_printf(&b, "%zu events", n);
	} else {
		struct slack_blocks_top t = { &items[0], slack_blocks_cps(b.data, b.len) };
		size_t budget = slack_fit_budget(slack_blocks_top_chars, &t, max_text,
		    SLACK_BLOCKS_MAX_TOP);
		slack_item_fallback(&b, &items[0], budget, SLACK_CUT_COUNT);
	}
	slack_blocks_cut(&b, SLACK_BLOCKS_MAX_TOP);
	return slack_buf_json(&b);
}

json_t *
slack_blocks_render(const struct conf_provider *p, const char *channel,
    const struct slack_item *items, size_t n, size_t *used)
{
	json_t *root, *blocks = NULL;
	size_t max_text, k = 0;
	int rc = 0;

	*used = 0;
	root = slack_root(p, channel, items, n);
	if (root == NULL)
		return NULL;
	max_text = slack_max_text(p);
	blocks = json_array();
	if (blocks == NULL)
		rc = -1;
	for (; rc == 0 && k < n; k++) {
		json_t *b = slack_blocks_item(&items[k], max_text);
		if (b == NULL) {
			rc = -1;
			break;
		}
		size_t have = json_array_size(blocks), add = json_array_size(b) + (k > 0);
		if (k > 0 && have + add > SLACK_BLOCKS_MAX) {
			json_decref(b);
			break;          /* the rest go in the next message */
		}
		if (k > 0 && slack_blocks_add(blocks, "divider", NULL, NULL) != 0)
			rc = -1;
		if (rc == 0 && json_array_extend(blocks, b) != 0)
			rc = -1;
		json_decref(b);
	}
	if (rc == 0) {
		rc |= slack_set(root, "text", slack_blocks_text(items, k, max_text));
		rc |= slack_set(root, "blocks", blocks);
		blocks = NULL;
		rc |= slack_set(root, "unfurl_links", json_false());
		rc |= slack_set(root, "unfurl_media", json_false());
	}
	json_decref(blocks);
	if (rc != 0) {
		json_decref(root);
		return NULL;
	}
	*used = k;
	return root;
}
