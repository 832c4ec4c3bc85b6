/*
 * template: the subset of Go's text/template in which an alert's title, text
 * and links are written (SPEC §13), over an event as Flux's JSON names it.
 * The language reference (constructs, functions, data, bounds, and where it
 * differs from Go) is at the top of template.c.
 *
 * Pure: no I/O, no logging, no mutable globals. template_compile() runs once,
 * at config load; a compiled template is immutable, so template_render() may
 * run on any thread, concurrently on the same template.
 */
#ifndef FLUXRELAY_TEMPLATE_H
#define FLUXRELAY_TEMPLATE_H

#include <stddef.h>

#include "conf.h"
#include "event.h"
#include "util.h"

struct template;

/* Flags of template_compile(). */
#define TEMPLATE_INCIDENT 1u   /* .incident.* may be used (alert notify = "changes") */
/*
 * The template is a URL (links[].url): what its actions print also has '|',
 * space and control characters percent-encoded, so the result can go between
 * Slack's < and | as it is. The template's own text is left as written.
 */
#define TEMPLATE_URL 2u

/* Bounds checked at compile time, each a compile error when exceeded. */
#define TEMPLATE_MAX_SOURCE 65536   /* bytes of template text */
#define TEMPLATE_MAX_DEPTH 32       /* nested if/with/range and parentheses */
#define TEMPLATE_MAX_ARGS 32        /* arguments of one function call */
#define TEMPLATE_MAX_VARS 256       /* variables in scope at once */

/*
 * Work one rendering may do, in units of about one byte produced or one
 * action executed. Far above any sensible template (the README's example
 * uses a few hundred); a rendering that runs out stops where it is and its
 * output ends in "…".
 */
#define TEMPLATE_MAX_WORK (4u << 20)

/*
 * Compile src (NUL-terminated). Returns a new template (free with
 * template_free) or NULL with a message in err: "column N: problem", or
 * "line L, column N: problem" when src has a newline (1-based, counted in
 * characters). err is always NUL-terminated valid UTF-8. The caller adds
 * where the template came from (`FILE:LINE: alert "NAME": title: `).
 */
struct template *template_compile(const char *src, unsigned flags, char *err,
    size_t errlen);

/* Accepts NULL. */
void template_free(struct template *t);

/* What a template sees of an incident (SPEC §12); all strings may be NULL (empty). */
struct template_incident {
	const char *state;      /* "opened", "reminder", "recovered" */
	const char *since;      /* RFC 3339 */
	const char *duration;   /* e.g. "12m" */
	long long count;        /* failures so far */
};

/*
 * The data of one rendering; everything is borrowed for the duration of the
 * call. .metadata is the event's normalized metadata (SPEC §13; hidden keys
 * dropped), not the alert's metadata and summary, which the message shows
 * as fields of its own. NULL strings render empty; incident NULL renders
 * empty strings and count 0.
 */
struct template_data {
	const struct event *ev;                    /* required */
	const char *cluster;                       /* .cluster */
	const char *alert;                         /* .alert: the alert's name */
	const struct template_incident *incident;  /* .incident */
};

/*
 * Render t for d, appending to out. Never fails (allocation failure aborts,
 * as everywhere). The appended text is valid UTF-8 with no NUL, ready for a
 * Slack text field: what actions print is escaped (& < > as entities), the
 * template's own text is not, link's result is kept as built.
 *
 * limit > 0 bounds the appended text to limit characters, counted as
 * template_cut() does, followed by template_marker() when cut; 0 means no
 * limit (TEMPLATE_MAX_WORK still applies).
 */
void template_render(const struct template *t, const struct template_data *d,
    size_t limit, struct util_buf *out);

/* Same, as a new string (caller frees). */
char *template_render_string(const struct template *t, const struct template_data *d,
    size_t limit);

/*
 * Characters of rendered text s[0..n) as the limit counts them: code points,
 * with &amp; &lt; &gt; each one character (what Slack shows; so an escaped
 * message counts as its raw characters, like max_text).
 */
size_t template_chars(const char *s, size_t n);

/*
 * Byte length of the longest prefix of rendered text s[0..n) that holds at
 * most limit characters (as template_chars counts them) without cutting a
 * UTF-8 sequence, an entity, or a <…> link or mention. For splitting a text
 * into pieces of a bounded size (Block Kit sections); n when all of it fits.
 */
size_t template_fit(const char *s, size_t n, size_t limit);

/*
 * The marker that ends every cut text, here and in Slack messages: "…
 * (N more characters)", N = rest, appended to out unless out is NULL.
 * Returns its characters (as template_chars counts them), so a caller can
 * size a text without rendering it.
 */
size_t template_marker(struct util_buf *out, size_t rest);

/*
 * Append rendered text s[0..n) to out (unless out is NULL) bounded to limit
 * characters, when s holds the first characters of a text of total_chars
 * characters: all of it, or fewer when the caller kept only a prefix (no
 * limit it uses is longer). Whole when total_chars <= limit; else cut as
 * template_cut() cuts, and template_marker() with N = total_chars minus the
 * characters kept, so N counts what s no longer holds too. limit 0 keeps
 * none of it, only the marker. Returns the characters appended (as
 * template_chars counts them), whether or not out is NULL.
 */
size_t template_cut_counted(struct util_buf *out, const char *s, size_t n, size_t limit,
    size_t total_chars);

/*
 * Cut the rendered text at b->data[start..b->len) to limit characters (as
 * template_chars counts them) and append template_marker(), N being the
 * characters cut, when anything was cut. Never cuts inside a UTF-8
 * sequence, an entity, or a <…> link or mention (those are kept or cut
 * whole). For callers that must shrink an already rendered text; limit 0
 * does nothing (unlike template_cut_counted). Returns 1 when it cut, else 0.
 */
int template_cut(struct util_buf *b, size_t start, size_t limit);

#endif
