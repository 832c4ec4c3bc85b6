/*
 * event: parse and validate one Flux event (notification-controller's JSON)
 * into a struct event.
 *
 * This is on the request hot path, so the result costs exactly one
 * allocation: the struct, its normalized metadata array and every string live
 * in one block sized in advance, and event_free() frees that block.
 *
 * Two parsers find the fields named in event_fields[] below, check each with
 * event_field_check() and build the block through event_assemble():
 *   - the fast path (event_fast.c) tokenizes the body in one pass, straight
 *     from the bytes, for the bodies Flux actually sends. It is conservative:
 *     on anything it does not handle, and on every error, it gives up and
 *     returns NULL without a message.
 *   - the reference path (event_parse_reference, here) is the jansson parser
 *     with a linear depth pre-scan (jansson recurses). It is the authority:
 *     every rejection and every error message comes from it.
 * event_parse() tries the first and falls back to the second. The fast path
 * must never accept a body the reference rejects, nor build a different
 * event (tests/unit/test_event.c and fuzz/fuzz_event_diff.c check both).
 *
 * Valid JSON is never refused for what jansson cannot hold: \u0000 is
 * decoded to U+FFFD (U+0000 cannot live in a C string; it shows where the
 * NUL was, as an invalid byte would be shown), and a number beyond long long
 * or double is skipped like any other in an unknown field, as Go's decoder
 * does (event_ref_rewrite; the fast path does the same itself). Only the
 * parsed fields change: the body stored and forwarded keeps its bytes.
 *
 * Duplicate member names are not an error: the last member of a name wins,
 * as with Go's encoding/json, which Flux's clients and notification-controller
 * use (a duplicated involvedObject or metadata is replaced whole, where Go
 * would merge the two objects). The body stored and forwarded is the bytes
 * as received, duplicates included.
 * Pure; no state; callable from any thread.
 */
#include "event.h"
#include "event_internal.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define EVENT_ANNOTATION_PREFIX "event.toolkit.fluxcd.io/"

/*
 * The fields of an event, in the order the reference checks them (so a body
 * with several problems is reported by the first one in this order).
 * involvedObject and metadata themselves are containers, parsed by each
 * parser's own code.
 */
#define EVENT_IO(key) true, key, sizeof(key) - 1, "involvedObject." key
#define EVENT_TOP(key) false, key, sizeof(key) - 1, key
#define EVENT_AT(member) offsetof(struct event, member)
const struct event_field event_fields[] = {
	{ EVENT_IO("kind"), EVENT_FIELD_STRING, EVENT_FIELD_NONEMPTY, false, EVENT_AT(kind) },
	{ EVENT_IO("name"), EVENT_FIELD_STRING, EVENT_FIELD_NONEMPTY, false, EVENT_AT(name) },
	{ EVENT_IO("namespace"), EVENT_FIELD_STRING, EVENT_FIELD_OPTIONAL, false,
	  EVENT_AT(namespace) },
	{ EVENT_IO("apiVersion"), EVENT_FIELD_STRING, EVENT_FIELD_OPTIONAL, false,
	  EVENT_AT(api_version) },
	{ EVENT_IO("uid"), EVENT_FIELD_STRING, EVENT_FIELD_OPTIONAL, false, EVENT_AT(uid) },
	{ EVENT_IO("resourceVersion"), EVENT_FIELD_CHECKED, EVENT_FIELD_OPTIONAL, false, 0 },
	{ EVENT_IO("fieldPath"), EVENT_FIELD_CHECKED, EVENT_FIELD_OPTIONAL, false, 0 },
	{ EVENT_TOP("severity"), EVENT_FIELD_SEVERITY, EVENT_FIELD_REQUIRED, false, 0 },
	{ EVENT_TOP("message"), EVENT_FIELD_STRING, EVENT_FIELD_REQUIRED, false,
	  EVENT_AT(message) },
	{ EVENT_TOP("reason"), EVENT_FIELD_STRING, EVENT_FIELD_OPTIONAL, true, EVENT_AT(reason) },
	{ EVENT_TOP("timestamp"), EVENT_FIELD_TIMESTAMP, EVENT_FIELD_OPTIONAL, false, 0 },
	{ EVENT_TOP("reportingController"), EVENT_FIELD_STRING, EVENT_FIELD_OPTIONAL, true,
	  EVENT_AT(reporting_controller) },
	{ EVENT_TOP("reportingInstance"), EVENT_FIELD_STRING, EVENT_FIELD_OPTIONAL, true,
	  EVENT_AT(reporting_instance) },
};
#undef EVENT_IO
#undef EVENT_TOP
#undef EVENT_AT
const size_t event_nfields = sizeof(event_fields) / sizeof(event_fields[0]);
_Static_assert(sizeof(event_fields) / sizeof(event_fields[0]) <= EVENT_MAX_FIELDS,
    "raise EVENT_MAX_FIELDS");

static int event_fail(struct event_err *e, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Report a rejection to e (nothing when e is NULL: the fast path); returns -1. */
static int
event_fail(struct event_err *e, const char *path, const char *fmt, ...)
{
	va_list ap;

	if (e == NULL)
		return -1;
	if (e->err != NULL && e->errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(e->err, e->errlen, fmt, ap);
		va_end(ap);
	}
	if (e->field != NULL && e->fieldlen > 0)
		snprintf(e->field, e->fieldlen, "%s", path);
	return -1;
}

/*
 * Replace every byte that does not belong to a well-formed UTF-8 sequence
 * (overlongs, surrogates and code points past U+10FFFF included) by '?', in
 * place. Error texts quote input and are truncated to the caller's buffer,
 * which can split a character; jansson's "near '...'" can hold raw invalid
 * bytes. The HTTP layer puts both into a JSON answer, so they must be UTF-8.
 */
static void
event_utf8_scrub(char *str)
{
	unsigned char *s = (unsigned char *)str;
	size_t n = strlen(str);

	for (size_t i = 0; i < n;) {
		size_t l = util_utf8_len(s + i, n - i);
		if (l == 0)
			s[i++] = '?';
		else
			i += l;
	}
}

/*
 * Reject bodies nested deeper than EVENT_MAX_DEPTH before jansson parses them
 * recursively. Only brackets outside strings count; malformed input is left
 * for jansson to report. Returns the offset of the offending bracket, or
 * (size_t)-1 when the depth is fine.
 */
static size_t
event_depth_scan(const char *buf, size_t len)
{
	size_t depth = 0;
	size_t i = 0;

	while (i < len) {
		char ch = buf[i];
		if (ch == '"') {
			/* skip the string, honouring backslash escapes */
			for (i++; i < len; i++) {
				if (buf[i] == '\\')
					i++;
				else if (buf[i] == '"')
					break;
			}
		} else if (ch == '{' || ch == '[') {
			if (++depth > EVENT_MAX_DEPTH)
				return i;
		} else if ((ch == '}' || ch == ']') && depth > 0) {
			depth--;
		}
		i++;
	}
	return (size_t)-1;
}

static int
event_digits(const char *s, int n)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
static int64_t
event_days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/*
 * Parse an RFC 3339 date-time ("2022-10-28T07:26:19Z", "…T07:26:19.5+02:00").
 * Fractional seconds are accepted and dropped. Returns 0 and the epoch time in
 * *out, or -1 when s is anything else.
 */
static int
event_parse_rfc3339(const char *s, size_t n, time_t *out)
{
	static const int mdays[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int y, mo, d, h, mi, sec, dim;
	long off = 0;
	size_t i;

	if (n < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
	    s[13] != ':' || s[16] != ':')
		return -1;
	if ((y = event_digits(s, 4)) < 0 || (mo = event_digits(s + 5, 2)) < 0 ||
	    (d = event_digits(s + 8, 2)) < 0 || (h = event_digits(s + 11, 2)) < 0 ||
	    (mi = event_digits(s + 14, 2)) < 0 || (sec = event_digits(s + 17, 2)) < 0)
		return -1;
	if (mo < 1 || mo > 12 || h > 23 || mi > 59 || sec > 60)
		return -1;
	dim = mdays[mo - 1];
	if (mo == 2 && (y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
		dim = 29;
	if (d < 1 || d > dim)
		return -1;

	i = 19;
	if (s[i] == '.') {
		size_t start = ++i;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
		if (i == start)
			return -1;
	}
	if (i >= n)
		return -1;
	if (s[i] == 'Z' || s[i] == 'z') {
		i++;
	} else if (s[i] == '+' || s[i] == '-') {
		int oh, om;
		if (n - i != 6 || s[i + 3] != ':')
			return -1;
		if ((oh = event_digits(s + i + 1, 2)) < 0 ||
		    (om = event_digits(s + i + 4, 2)) < 0 || oh > 23 || om > 59)
			return -1;
		off = (long)oh * 3600 + om * 60;
		if (s[i] == '-')
			off = -off;
		i += 6;
	} else {
		return -1;
	}
	if (i != n)
		return -1;

	*out = (time_t)(event_days_from_civil(y, mo, d) * 86400 +
	    (int64_t)h * 3600 + mi * 60 + sec - off);
	return 0;
}

int
event_severity_parse(const char *s)
{
	if (s == NULL)
		return -1;
	if (strcmp(s, "trace") == 0)
		return EVENT_TRACE;
	if (strcmp(s, "info") == 0)
		return EVENT_INFO;
	if (strcmp(s, "warning") == 0 || strcmp(s, "warn") == 0)
		return EVENT_WARNING;
	if (strcmp(s, "error") == 0)
		return EVENT_ERROR;
	return -1;
}

const char *
event_severity_name(enum event_severity s)
{
	switch (s) {
	case EVENT_TRACE: return "trace";
	case EVENT_INFO: return "info";
	case EVENT_WARNING: return "warning";
	case EVENT_ERROR: return "error";
	}
	return "unknown";
}

int
event_meta_hidden(const char *key)
{
	return strcmp(key, "token") == 0 || strcmp(key, "checksum") == 0 ||
	    strcmp(key, "digest") == 0;
}

/*
 * Sort by key, then strongest origin first, then the later in the document
 * first, so the first entry of each run of equal keys is the one that wins.
 * Equal keys of one origin come from one raw key given twice (the fast path
 * keeps each member; jansson only the last): the last one wins.
 */
static int
event_meta_cmp(const void *a, const void *b)
{
	const struct event_mtmp *x = a, *y = b;
	int c = strcmp(x->key, y->key);

	if (c != 0)
		return c;
	if (x->origin != y->origin)
		return x->origin > y->origin ? -1 : 1;
	return x->order > y->order ? -1 : x->order < y->order;
}

/*
 * Classify a raw metadata key. group/glen: the API group of the involved
 * object (glen 0 when apiVersion is absent or has none). Without a group only
 * the annotation prefix is stripped: "kustomize.toolkit.fluxcd.io/k" of an
 * event that names no apiVersion is nobody's controller key, and is kept.
 */
static void
event_meta_classify(const char *key, const char *group, size_t glen, struct event_mtmp *m)
{
	static const size_t alen = sizeof(EVENT_ANNOTATION_PREFIX) - 1;

	m->key = key;
	m->origin = EVENT_META_PLAIN;
	if (glen > 0 && strncmp(key, group, glen) == 0 && key[glen] == '/' &&
	    key[glen + 1] != '\0') {
		m->key = key + glen + 1;
		m->origin = EVENT_META_CONTROLLER;
		return;
	}
	if (strncmp(key, EVENT_ANNOTATION_PREFIX, alen) == 0 && key[alen] != '\0') {
		m->key = key + alen;
		m->origin = EVENT_META_ANNOTATION;
	}
}

/* Copy n bytes plus a NUL into the block at *cur; returns the copy. */
static char *
event_put(char **cur, const char *p, size_t n)
{
	char *dst = *cur;

	if (n > 0)
		memcpy(dst, p, n);
	dst[n] = '\0';
	*cur += n + 1;
	return dst;
}

/*
 * The API group of involvedObject.apiVersion ("kustomize.toolkit.fluxcd.io"
 * of "kustomize.toolkit.fluxcd.io/v1"): *group NULL and *glen 0 when absent
 * or without a slash. Borrowed from api.
 */
static void
event_api_group(const struct event_str *api, const char **group, size_t *glen)
{
	const char *slash = api->p != NULL ? memchr(api->p, '/', api->n) : NULL;

	*group = NULL;
	*glen = 0;
	if (slash != NULL) {
		*group = api->p;
		*glen = (size_t)(slash - api->p);
	}
}

/*
 * Sort classified metadata mt[0..n) and keep the winner of each run of equal
 * keys, compacting in place. Returns how many entries are left.
 */
static size_t
event_meta_finish(struct event_mtmp *mt, size_t n)
{
	size_t nuniq = 0;

	if (n == 0)
		return 0;
	qsort(mt, n, sizeof(*mt), event_meta_cmp);
	for (size_t i = 0; i < n; i++) {
		if (nuniq > 0 && strcmp(mt[nuniq - 1].key, mt[i].key) == 0)
			continue;
		mt[nuniq++] = mt[i];
	}
	return nuniq;
}

/* How much of a rejected value a message quotes. */
static int
event_quoted(const struct event_str *v)
{
	return v->n < 64 ? (int)v->n : 64;
}

/* event_severity_parse() of a slice (decoded strings hold no NUL). */
static int
event_severity_parse_n(const char *p, size_t n)
{
	char s[8];

	if (n >= sizeof(s))
		return -1;
	memcpy(s, p, n);
	s[n] = '\0';
	return event_severity_parse(s);
}

/* A missing field that must be there: -1 after reporting to e (may be NULL). */
static int
event_field_missing(const struct event_field *f, struct event_err *e)
{
	if (f->need == EVENT_FIELD_NONEMPTY)
		return event_fail(e, f->path, "%s is required and must not be empty", f->path);
	return event_fail(e, f->path, "%s is required", f->path);
}

/* The value of a severity or timestamp field into vals: 0, or -1 after reporting. */
static int
event_field_parse(const struct event_field *f, const struct event_str *v,
    struct event_values *vals, struct event_err *e)
{
	int s;

	if (f->type == EVENT_FIELD_SEVERITY) {
		if ((s = event_severity_parse_n(v->p, v->n)) < 0)
			return event_fail(e, f->path, "%s must be one of trace, info, warning, "
			    "error (got \"%.*s\")", f->path, event_quoted(v), v->p);
		vals->severity = (enum event_severity)s;
		return 0;
	}
	if (event_parse_rfc3339(v->p, v->n, &vals->ts) < 0)
		return event_fail(e, f->path, "%s must be an RFC 3339 date-time (got \"%.*s\")",
		    f->path, event_quoted(v), v->p);
	vals->has_ts = true;
	return 0;
}

/*
 * Validate field f's value v (p NULL when absent): presence, a severity
 * name, an RFC 3339 date-time; store severity and timestamp in vals. 0, or
 * -1 after reporting to e (which may be NULL). Small, so that the fast
 * path's loop (event_values_check) inlines it.
 */
static int
event_field_check(const struct event_field *f, const struct event_str *v,
    struct event_values *vals, struct event_err *e)
{
	if (v->p == NULL || (f->need == EVENT_FIELD_NONEMPTY && v->n == 0))
		return f->need == EVENT_FIELD_OPTIONAL ? 0 : event_field_missing(f, e);
	if (f->type == EVENT_FIELD_SEVERITY || f->type == EVENT_FIELD_TIMESTAMP)
		return event_field_parse(f, v, vals, e);
	return 0;
}

int
event_values_check(struct event_values *vals)
{
	for (size_t i = 0; i < event_nfields; i++)
		if (event_field_check(&event_fields[i], &vals->str[i], vals, NULL) < 0)
			return -1;
	return 0;
}

/*
 * Copy a validated event into ONE new block: the struct, the metadata array
 * (mt[0..nmeta), already normalized, sorted and unique), then every string
 * field of event_fields[]. Both parsers end here, so an event does not
 * depend on which one built it. Returns the event (caller frees with
 * event_free); never NULL.
 */
static struct event *
event_build(const struct event_values *vals, const struct event_mtmp *mt, size_t nmeta)
{
	struct event *ev;
	size_t total;
	char *cur;

	total = sizeof(*ev) + nmeta * sizeof(struct event_kv);
	for (size_t i = 0; i < event_nfields; i++)
		if ((event_fields[i].type == EVENT_FIELD_STRING &&
		    (vals->str[i].p != NULL || event_fields[i].empty_if_absent)) ||
		    (event_fields[i].type == EVENT_FIELD_TIMESTAMP && vals->has_ts))
			total += vals->str[i].n + 1;
	for (size_t i = 0; i < nmeta; i++)
		total += strlen(mt[i].key) + 1 + mt[i].vlen + 1;

	ev = util_malloc(total);
	cur = (char *)(ev + 1) + nmeta * sizeof(struct event_kv);
	ev->meta = nmeta > 0 ? (struct event_kv *)(ev + 1) : NULL;
	ev->nmeta = nmeta;
	for (size_t i = 0; i < event_nfields; i++) {
		const struct event_field *f = &event_fields[i];
		const struct event_str *v = &vals->str[i];
		/* checked: one of event_severity_name()'s, or the alias "warn" */
		if (f->type == EVENT_FIELD_SEVERITY)
			ev->severity_text = v->n == 4 && memcmp(v->p, "warn", 4) == 0 ? "warn" :
			    event_severity_name(vals->severity);
		if (f->type == EVENT_FIELD_TIMESTAMP)
			ev->timestamp_text = vals->has_ts ? event_put(&cur, v->p, v->n) : NULL;
		if (f->type != EVENT_FIELD_STRING)
			continue;
		*(char **)(void *)((char *)ev + f->offset) =
		    v->p != NULL || f->empty_if_absent ? event_put(&cur, v->p, v->n) : NULL;
	}
	ev->severity = vals->severity;
	ev->cluster = "";
	ev->has_timestamp = vals->has_ts;
	ev->timestamp = vals->ts;
	for (size_t i = 0; i < nmeta; i++) {
		ev->meta[i].key = event_put(&cur, mt[i].key, strlen(mt[i].key));
		ev->meta[i].value = event_put(&cur, mt[i].value, mt[i].vlen);
		ev->meta[i].origin = mt[i].origin;
	}
	return ev;
}

struct event *
event_assemble(const struct event_values *vals, struct event_mtmp *mt, size_t nmeta)
{
	const struct event_str *api = NULL;
	const char *group;
	size_t glen;

	for (size_t i = 0; i < event_nfields && api == NULL; i++)
		if (event_fields[i].type == EVENT_FIELD_STRING &&
		    event_fields[i].offset == offsetof(struct event, api_version))
			api = &vals->str[i];
	event_api_group(api, &group, &glen);
	for (size_t i = 0; i < nmeta; i++)
		event_meta_classify(mt[i].key, group, glen, &mt[i]);
	return event_build(vals, mt, event_meta_finish(mt, nmeta));
}

/* ---- reference path: jansson ------------------------------------------- */

/* 1 when p[i] is within p[0..n) and a digit. */
static int
event_digit_at(const char *p, size_t n, size_t i)
{
	return i < n && p[i] >= '0' && p[i] <= '9';
}

/*
 * The length of the number token at p as jansson's lexer reads it (a minus,
 * an integer part without leading zeros, an optional fraction and exponent,
 * each with at least one digit), or 0 where jansson sees an invalid token.
 */
static size_t
event_number_len(const char *p, size_t n)
{
	size_t i = 0;

	if (i < n && p[i] == '-')
		i++;
	if (i < n && p[i] == '0') {
		i++;
		if (event_digit_at(p, n, i))
			return 0;
	} else if (event_digit_at(p, n, i)) {
		while (event_digit_at(p, n, i))
			i++;
	} else {
		return 0;
	}
	if (i < n && p[i] == '.') {
		i++;
		if (!event_digit_at(p, n, i))
			return 0;
		while (event_digit_at(p, n, i))
			i++;
	}
	if (i < n && (p[i] == 'e' || p[i] == 'E')) {
		i++;
		if (i < n && (p[i] == '+' || p[i] == '-'))
			i++;
		if (!event_digit_at(p, n, i))
			return 0;
		while (event_digit_at(p, n, i))
			i++;
	}
	return i;
}

/*
 * A copy of the body that jansson can load where the body itself stopped it
 * on valid JSON (caller frees): each \u0000 escape becomes \ufffd (jansson
 * refuses it in keys even with JSON_ALLOW_NUL, and a C string cannot hold
 * NUL; the fast path decodes it to U+FFFD too), and each number becomes 0
 * padded with spaces (jansson refuses integers beyond long long and reals
 * beyond double, even with JSON_DECODE_INT_AS_REAL; no field of an event is
 * a number, so its value is never read and a known field still gets its
 * type error). Same length, so later errors keep their line and column.
 *
 * Only tokens jansson would read the same way are rewritten: the scan stops
 * rewriting at the first number-like text jansson calls invalid ("--1"
 * would become the valid "-0 "), so invalid JSON stays invalid.
 */
static char *
event_ref_rewrite(const char *buf, size_t len)
{
	char *out = util_malloc(len > 0 ? len : 1);
	size_t i = 0, n;

	memcpy(out, buf, len);
	while (i < len) {
		char ch = out[i];
		if (ch == '"') {
			for (i++; i < len && out[i] != '"'; i++) {
				if (out[i] != '\\')
					continue;
				if (len - i >= 6 && memcmp(out + i + 1, "u0000", 5) == 0)
					memcpy(out + i + 2, "fffd", 4);
				i++;   /* skip the escaped character: \" ends no string */
			}
			i++;
		} else if (ch == '-' || (ch >= '0' && ch <= '9')) {
			if ((n = event_number_len(out + i, len - i)) == 0)
				break;
			out[i] = '0';
			memset(out + i + 1, ' ', n - 1);
			i += n;
		} else {
			i++;
		}
	}
	return out;
}

/* Report jansson's error, as an invalid-JSON answer. */
static void
event_ref_jerror(const json_error_t *jerr, struct event_err *e)
{
	event_fail(e, "", "invalid JSON at line %d, column %d: %s", jerr->line,
	    jerr->column, jerr->text);
}

/* The body as a jansson object (new reference), or NULL after reporting. */
static json_t *
event_ref_load(const char *buf, size_t len, struct event_err *e)
{
	json_error_t jerr;
	json_t *root;
	size_t bad;

	if ((bad = event_depth_scan(buf, len)) != (size_t)-1) {
		event_fail(e, "", "invalid JSON: nesting deeper than %d levels at byte %zu",
		    EVENT_MAX_DEPTH, bad);
		return NULL;
	}
	/* A raw NUL is never JSON; jansson lets one through after a value. */
	const char *nul = memchr(buf, '\0', len);
	if (nul != NULL) {
		event_fail(e, "", "invalid JSON: NUL byte at byte %zu", (size_t)(nul - buf));
		return NULL;
	}
	/* without JSON_REJECT_DUPLICATES jansson keeps the last value of a key */
	root = json_loadb(buf, len, JSON_DECODE_ANY, &jerr);
	if (root == NULL) {
		enum json_error_code code = json_error_code(&jerr);
		char *copy;
		/* valid JSON that jansson will not hold: load it rewritten */
		if (code != json_error_null_character && code != json_error_null_byte_in_key &&
		    code != json_error_numeric_overflow) {
			event_ref_jerror(&jerr, e);
			return NULL;
		}
		copy = event_ref_rewrite(buf, len);
		root = json_loadb(copy, len, JSON_DECODE_ANY, &jerr);
		free(copy);
		if (root == NULL) {
			event_ref_jerror(&jerr, e);
			return NULL;
		}
	}
	if (!json_is_object(root)) {
		event_fail(e, "", "event must be a JSON object");
		json_decref(root);
		return NULL;
	}
	return root;
}

/*
 * Every row of event_fields[] from root and its involvedObject: type,
 * presence and value, in table order. 0, or -1 after reporting the first
 * problem. The strings are borrowed from root.
 */
static int
event_ref_fields(json_t *root, struct event_values *vals, struct event_err *e)
{
	json_t *io = json_object_get(root, "involvedObject");   /* borrowed */

	if (io == NULL)
		return event_fail(e, "involvedObject", "involvedObject is required");
	if (!json_is_object(io))
		return event_fail(e, "involvedObject", "involvedObject must be an object");
	for (size_t i = 0; i < event_nfields; i++) {
		const struct event_field *f = &event_fields[i];
		json_t *v = json_object_get(f->involved ? io : root, f->key);   /* borrowed */
		struct event_str *s = &vals->str[i];

		s->p = NULL;
		s->n = 0;
		/* Flux omits empty strings rather than sending null: only timestamp may be null. */
		if (v != NULL && !(f->type == EVENT_FIELD_TIMESTAMP && json_is_null(v))) {
			if (!json_is_string(v))
				return event_fail(e, f->path, f->type == EVENT_FIELD_TIMESTAMP ?
				    "%s must be an RFC 3339 string or null" : "%s must be a string",
				    f->path);
			s->p = json_string_value(v);
			s->n = json_string_length(v);
		}
		if (event_field_check(f, s, vals, e) < 0)
			return -1;
	}
	return 0;
}

/*
 * The metadata object of root into *mt (raw keys; values borrowed from
 * root), which is replaced by a new array when it has more than nstack
 * entries (the caller frees it then, failure included). 0 with *n set, or
 * -1 after reporting.
 */
static int
event_ref_metadata(json_t *root, struct event_mtmp **mt, size_t nstack, size_t *n,
    struct event_err *e)
{
	json_t *meta = json_object_get(root, "metadata");   /* borrowed */
	const char *key;
	json_t *val;   /* borrowed */
	size_t i = 0;

	*n = 0;
	if (meta == NULL)
		return 0;
	if (!json_is_object(meta))
		return event_fail(e, "metadata", "metadata must be an object of strings");
	if (json_object_size(meta) > nstack)
		*mt = util_malloc(json_object_size(meta) * sizeof(**mt));
	json_object_foreach(meta, key, val) {
		if (!json_is_string(val)) {
			char path[256];
			snprintf(path, sizeof(path), "metadata.%s", key);
			return event_fail(e, path, "%s must be a string", path);
		}
		(*mt)[i] = (struct event_mtmp){ .key = key, .value = json_string_value(val),
			.vlen = json_string_length(val), .order = i };
		i++;
	}
	*n = i;
	return 0;
}

struct event *
event_parse_reference(const char *buf, size_t len, char *err, size_t errlen,
    char *field, size_t fieldlen)
{
	enum { EVENT_NSTACK = 16 };
	struct event_err e = { err, errlen, field, fieldlen };
	struct event_mtmp mstack[EVENT_NSTACK];
	struct event_mtmp *mt = mstack;
	struct event_values vals = { .has_ts = false };
	struct event *ev = NULL;
	json_t *root;
	size_t nm = 0;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (field != NULL && fieldlen > 0)
		field[0] = '\0';
	root = event_ref_load(buf, len, &e);
	if (root != NULL && event_ref_fields(root, &vals, &e) == 0 &&
	    event_ref_metadata(root, &mt, EVENT_NSTACK, &nm, &e) == 0)
		ev = event_assemble(&vals, mt, nm);
	if (ev == NULL) {
		if (err != NULL && errlen > 0)
			event_utf8_scrub(err);
		if (field != NULL && fieldlen > 0)
			event_utf8_scrub(field);
	}
	if (mt != mstack)
		free(mt);
	json_decref(root);
	return ev;
}

/* ---- entry point -------------------------------------------------------- */

struct event *
event_parse(const char *buf, size_t len, char *err, size_t errlen, char *field,
    size_t fieldlen)
{
	struct event *ev = event_parse_fast(buf, len);

	if (ev == NULL)   /* invalid, or not for the fast path: the reference decides */
		return event_parse_reference(buf, len, err, errlen, field, fieldlen);
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (field != NULL && fieldlen > 0)
		field[0] = '\0';
	return ev;
}

void
event_free(struct event *ev)
{
	/* one block: see event_build */
	free(ev);
}

static int
event_kv_cmp(const void *k, const void *e)
{
	return strcmp(k, ((const struct event_kv *)e)->key);
}

const char *
event_meta_get(const struct event *ev, const char *key)
{
	const struct event_kv *kv;

	if (ev == NULL || ev->nmeta == 0)
		return NULL;
	kv = bsearch(key, ev->meta, ev->nmeta, sizeof(*ev->meta), event_kv_cmp);
	return kv != NULL ? kv->value : NULL;
}
