/*
 * slack_internal: what slack.c shares with slack_blocks.c, the two renderers
 * of one message (attachments and Block Kit), so both show an event alike:
 * the same escaping and bounds, author, fields and their order, fallback,
 * mentions and links. Not an interface for other modules. Pure, any thread.
 */
#ifndef FLUXRELAY_SLACK_INTERNAL_H
#define FLUXRELAY_SLACK_INTERNAL_H

#include <jansson.h>
#include <stddef.h>

#include "slack.h"
#include "util.h"

/* Slack truncates attachment text beyond this; we never send more in total. */
#define SLACK_MAX_TOTAL_TEXT 40000

/* How a text that exceeds its budget ends. */
enum slack_cut {
	SLACK_CUT_NONE,      /* never truncated (limit ignored) */
	SLACK_CUT_COUNT,     /* template_marker(): "… (N more characters)" */
	SLACK_CUT_ELLIPSIS,  /* "…" */
	SLACK_CUT_SILENT,    /* no marker: the caller adds one */
};

/*
 * Render the first `limit` characters of s[0..n) into out (when out is not
 * NULL): invalid UTF-8 replaced by U+FFFD, &<> escaped when escape is set,
 * and when characters remain, the `cut` marker appended. Returns the number
 * of characters (code points) the rendered text has, entities and marker
 * included, so callers can size budgets without rendering.
 */
size_t slack_text(struct util_buf *out, const char *str, size_t n, size_t limit,
    enum slack_cut cut, int escape);

/* s[0..n) into out bounded to max characters before escaping: whole, or max - 1 and "…". */
void slack_bounded(struct util_buf *out, const char *s, size_t n, size_t max, int escape);

/* New JSON strings (new references). slack_buf_json frees b. */
json_t *slack_buf_json(struct util_buf *b);
json_t *slack_json_text(const char *s, int escape);
json_t *slack_json_bounded(const char *s, size_t max, int escape);

/* json_object_set_new that steals value; -1 when value is NULL or the set fails. */
int slack_set(json_t *obj, const char *key, json_t *value);

int slack_nonempty(const char *s);

/*
 * A new payload object (new reference) with channel, username and icon set
 * as SPEC §9 says, or NULL when the arguments are invalid (see slack_render)
 * or on allocation failure.
 */
json_t *slack_root(const struct conf_provider *p, const char *channel,
    const struct slack_item *items, size_t n);

/* The provider's max_text as a budget (SLACK_MAX_TOTAL_TEXT when unset). */
size_t slack_max_text(const struct conf_provider *p);

/* author into out: lowercase(kind)/name[.namespace], bounded, escaped. */
void slack_author(struct util_buf *out, const struct event *ev);

/*
 * An item's fallback (SPEC §9) into out (may be NULL): "<author>: <first
 * line of the message>", the line cut at budget characters (before
 * escaping) with the cut's marker (attachments: "…"), except that a message
 * kind with a lead (reminder: "Failing since …", recovered: "Recovered
 * after …") shows the lead's first line instead, never cut. Block Kit's
 * top-level text of one item is the same, cut with "… (N more characters)".
 * Returns its characters as slack_text counts them.
 */
size_t slack_item_fallback(struct util_buf *out, const struct slack_item *it, size_t budget,
    enum slack_cut cut);

/*
 * The largest budget <= max for which chars(ctx, budget), a text's
 * characters when it shows budget characters of something, is at most cap;
 * else 0, unchecked (the caller makes 0 fit). A text that stops being cut
 * loses its marker, so chars need not be monotone: the result may be a
 * little below the best.
 */
size_t slack_fit_budget(size_t (*chars)(const void *ctx, size_t budget), const void *ctx,
    size_t max, size_t cap);

/*
 * What an item's message kind (SPEC §12) decides: its colour ("danger",
 * "warning", "good"), and its title when the kind has one of its own
 * ("Still failing: …", "Recovered: Kind/name"), appended to out bounded and
 * escaped (returns 1; 0 and nothing appended for events, opened and replies,
 * whose title is the reason).
 */
const char *slack_item_color(const struct slack_item *it);
int slack_item_title(struct util_buf *out, const struct slack_item *it);

/*
 * The message text of an item into out: its look's text, else the kind's
 * lead ("Failing since …", "Recovered after …", never cut) and the event's
 * message (or a recovery's last error) escaped; cut to budget characters
 * with "… (N more characters)" (a look's text by template_cut_counted, N
 * counting from its text_chars). When rest is not NULL, the marker is left
 * out and *rest gets its N (0: nothing cut), for a caller that cuts the text
 * again and says once how much is not shown.
 * Returns the characters it has (as slack_text counts them); out may be NULL.
 */
size_t slack_item_text(struct util_buf *out, const struct slack_item *it, size_t budget,
    size_t *rest);

/* The characters of a link as placed, "<url|text>" or "<url>". */
size_t slack_link_chars(const struct slack_link *l);

/*
 * The links line of a look into out (may be NULL): "<url|text> · …" in
 * order, as many as fit in cap characters. Returns its characters (0: none).
 */
size_t slack_links_line(struct util_buf *out, const struct slack_look *look, size_t cap);

/* The links line's cap for one of n items in a message. */
size_t slack_links_cap(size_t n);

/*
 * The distinct mentions (space-separated tokens, in item order) of the items
 * that notify: error events whose look has a mention. Appended to out with a
 * space between them; returns 1 when it appended anything.
 */
int slack_mentions(struct util_buf *out, const struct slack_item *items, size_t n);

/* One field as shown: the key and value, borrowed from the item. */
struct slack_field {
	const char *key;
	const char *value;
	int rank;
	size_t seq;
};

/*
 * An item's fields in key order, one per key, with the precedence of
 * slack.h (struct slack_item): a new array (caller frees) of *nshow fields
 * to show; *hidden > 0 says a last field "N more fields not shown" follows
 * (then *nshow is SLACK_MAX_FIELDS - 1). NULL when there is none.
 */
struct slack_field *slack_fields_sorted(const struct slack_item *it, size_t *nshow,
    size_t *hidden);

#endif
