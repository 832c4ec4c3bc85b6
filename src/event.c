/*
 * event: parse and validate one Flux event (notification-controller's JSON)
 * into a struct event.
 *
 * This is on the request hot path, so the result costs exactly one
 * allocation: the struct, its normalized metadata array and every string live
 * in one block sized in advance, and event_free() frees that block.
 *
 * Two parsers build that block through the same event_build():
 *   - the fast path (event_parse_fast) tokenizes the body in one pass, straight
 *     from the bytes, for the bodies Flux actually sends. It is conservative:
 *     on anything it does not handle, and on every error, it gives up and
 *     returns NULL without a message.
 *   - the reference path (event_parse_reference) is the jansson parser with a
 *     linear depth pre-scan (jansson recurses). It is the authority: every
 *     rejection and every error message comes from it.
 * event_parse() tries the first and falls back to the second. The fast path
 * must never accept a body the reference rejects, nor build a different
 * event (tests/unit/test_event.c and fuzz/fuzz_event_diff.c check both).
 * Pure; no state; callable from any thread.
 */
#include "event.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define EVENT_ANNOTATION_PREFIX "event.toolkit.fluxcd.io/"
#define EVENT_TOOLKIT_SUFFIX ".toolkit.fluxcd.io/"

/* A borrowed slice of a jansson string (no NUL inside: jansson rejects \u0000). */
struct event_str {
	const char *p;
	size_t n;
};

/* One metadata entry before copying: borrowed from the jansson tree. */
struct event_mtmp {
	const char *key;        /* normalized key: a suffix of the raw key */
	const char *value;
	size_t vlen;
	enum event_meta_origin origin;
	size_t order;           /* position in the JSON object, breaks ties */
};

/* The validated parts of one event, borrowed from the parser that found them. */
struct event_fields {
	struct event_str kind, name, ns, api, uid, msg, reason, rc, ri;
	enum event_severity severity;
	bool has_ts;
	time_t ts;
};

static void event_fail(char *err, size_t errlen, char *field, size_t fieldlen,
    const char *path, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static void
event_fail(char *err, size_t errlen, char *field, size_t fieldlen,
    const char *path, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	if (field != NULL && fieldlen > 0)
		snprintf(field, fieldlen, "%s", path);
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
 * Sort by key, then strongest origin first, then document order, so the
 * first entry of each run of equal keys is the one that wins.
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
	return x->order < y->order ? -1 : x->order > y->order;
}

/*
 * Classify a raw metadata key. group/glen: the API group of the involved
 * object (glen 0 when apiVersion has none); no_api: apiVersion was absent.
 */
static void
event_meta_classify(const char *key, const char *group, size_t glen, int no_api,
    struct event_mtmp *m)
{
	static const size_t alen = sizeof(EVENT_ANNOTATION_PREFIX) - 1;
	static const size_t tlen = sizeof(EVENT_TOOLKIT_SUFFIX) - 1;

	m->key = key;
	m->origin = EVENT_META_PLAIN;
	if (glen > 0 && strncmp(key, group, glen) == 0 && key[glen] == '/' &&
	    key[glen + 1] != '\0') {
		m->key = key + glen + 1;
		m->origin = EVENT_META_CONTROLLER;
		return;
	}
	if (strncmp(key, EVENT_ANNOTATION_PREFIX, alen) == 0) {
		if (key[alen] != '\0') {
			m->key = key + alen;
			m->origin = EVENT_META_ANNOTATION;
		}
		return;
	}
	if (no_api) {
		/* "<something>.toolkit.fluxcd.io/k": the controller's own group */
		const char *slash = strchr(key, '/');
		if (slash != NULL && slash[1] != '\0' && (size_t)(slash - key) + 1 > tlen &&
		    memcmp(slash + 1 - tlen, EVENT_TOOLKIT_SUFFIX, tlen) == 0) {
			m->key = slash + 1;
			m->origin = EVENT_META_CONTROLLER;
		}
	}
}

/*
 * Fetch a string member. Returns 1 when present, 0 when absent, -1 after
 * filling the error when it is not a string (null included: Flux omits empty
 * strings rather than sending null; only timestamp may be null).
 */
static int
event_get_str(json_t *obj, const char *name, const char *path,
    struct event_str *out, char *err, size_t errlen, char *field, size_t fieldlen)
{
	json_t *v = json_object_get(obj, name);   /* borrowed */

	out->p = NULL;
	out->n = 0;
	if (v == NULL)
		return 0;
	if (!json_is_string(v)) {
		event_fail(err, errlen, field, fieldlen, path, "%s must be a string", path);
		return -1;
	}
	out->p = json_string_value(v);
	out->n = json_string_length(v);
	return 1;
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

/*
 * Copy a validated event into ONE new block: the struct, the metadata array
 * (mt[0..nmeta), already normalized, sorted and unique), then every string.
 * Both parsers end here, so an event does not depend on which one built it.
 * Returns the event (caller frees with event_free); never NULL.
 */
static struct event *
event_build(const struct event_fields *fl, const struct event_mtmp *mt, size_t nmeta)
{
	struct event *ev;
	size_t total;
	char *cur;

	total = sizeof(*ev) + nmeta * sizeof(struct event_kv);
	total += fl->kind.n + 1 + fl->name.n + 1 + fl->msg.n + 1 + fl->reason.n + 1 +
	    fl->rc.n + 1 + fl->ri.n + 1;
	if (fl->ns.p != NULL)
		total += fl->ns.n + 1;
	if (fl->api.p != NULL)
		total += fl->api.n + 1;
	if (fl->uid.p != NULL)
		total += fl->uid.n + 1;
	for (size_t i = 0; i < nmeta; i++)
		total += strlen(mt[i].key) + 1 + mt[i].vlen + 1;

	ev = util_malloc(total);
	cur = (char *)(ev + 1) + nmeta * sizeof(struct event_kv);
	ev->meta = nmeta > 0 ? (struct event_kv *)(ev + 1) : NULL;
	ev->nmeta = nmeta;
	ev->kind = event_put(&cur, fl->kind.p, fl->kind.n);
	ev->name = event_put(&cur, fl->name.p, fl->name.n);
	ev->namespace = fl->ns.p != NULL ? event_put(&cur, fl->ns.p, fl->ns.n) : NULL;
	ev->api_version = fl->api.p != NULL ? event_put(&cur, fl->api.p, fl->api.n) : NULL;
	ev->uid = fl->uid.p != NULL ? event_put(&cur, fl->uid.p, fl->uid.n) : NULL;
	ev->severity = fl->severity;
	ev->message = event_put(&cur, fl->msg.p, fl->msg.n);
	ev->reason = event_put(&cur, fl->reason.p, fl->reason.n);
	ev->has_timestamp = fl->has_ts;
	ev->timestamp = fl->ts;
	ev->reporting_controller = event_put(&cur, fl->rc.p, fl->rc.n);
	ev->reporting_instance = event_put(&cur, fl->ri.p, fl->ri.n);
	for (size_t i = 0; i < nmeta; i++) {
		ev->meta[i].key = event_put(&cur, mt[i].key, strlen(mt[i].key));
		ev->meta[i].value = event_put(&cur, mt[i].value, mt[i].vlen);
		ev->meta[i].origin = mt[i].origin;
	}
	return ev;
}

/* ---- reference path: jansson ------------------------------------------- */

struct event *
event_parse_reference(const char *buf, size_t len, char *err, size_t errlen,
    char *field, size_t fieldlen)
{
	enum { EVENT_NSTACK = 16 };
	struct event_mtmp mstack[EVENT_NSTACK];
	struct event_mtmp *mt = mstack;
	struct event *ev = NULL;
	json_t *root = NULL, *io, *meta, *ts;
	json_error_t jerr;
	struct event_fields fl = { 0 };
	struct event_str sev, unused;
	size_t bad, nm = 0, nuniq = 0;
	const char *group = NULL;
	size_t glen = 0;
	int sevv;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (field != NULL && fieldlen > 0)
		field[0] = '\0';

	if ((bad = event_depth_scan(buf, len)) != (size_t)-1) {
		event_fail(err, errlen, field, fieldlen, "",
		    "invalid JSON: nesting deeper than %d levels at byte %zu",
		    EVENT_MAX_DEPTH, bad);
		goto out;
	}
	root = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (root == NULL) {
		/* jansson's own wording names its JSON_ALLOW_NUL flag */
		if (json_error_code(&jerr) == json_error_null_character)
			event_fail(err, errlen, field, fieldlen, "",
			    "invalid JSON at line %d, column %d: \\u0000 is not allowed "
			    "in strings", jerr.line, jerr.column);
		else
			event_fail(err, errlen, field, fieldlen, "",
			    "invalid JSON at line %d, column %d: %s", jerr.line,
			    jerr.column, jerr.text);
		goto out;
	}
	if (!json_is_object(root)) {
		event_fail(err, errlen, field, fieldlen, "", "event must be a JSON object");
		goto out;
	}

	io = json_object_get(root, "involvedObject");   /* borrowed */
	if (io == NULL) {
		event_fail(err, errlen, field, fieldlen, "involvedObject",
		    "involvedObject is required");
		goto out;
	}
	if (!json_is_object(io)) {
		event_fail(err, errlen, field, fieldlen, "involvedObject",
		    "involvedObject must be an object");
		goto out;
	}
#define EVENT_STR(obj, key, path, dst) \
	if (event_get_str((obj), (key), (path), (dst), err, errlen, field, \
	    fieldlen) < 0) \
		goto out
	EVENT_STR(io, "kind", "involvedObject.kind", &fl.kind);
	if (fl.kind.n == 0) {
		event_fail(err, errlen, field, fieldlen, "involvedObject.kind",
		    "involvedObject.kind is required and must not be empty");
		goto out;
	}
	EVENT_STR(io, "name", "involvedObject.name", &fl.name);
	if (fl.name.n == 0) {
		event_fail(err, errlen, field, fieldlen, "involvedObject.name",
		    "involvedObject.name is required and must not be empty");
		goto out;
	}
	EVENT_STR(io, "namespace", "involvedObject.namespace", &fl.ns);
	EVENT_STR(io, "apiVersion", "involvedObject.apiVersion", &fl.api);
	EVENT_STR(io, "uid", "involvedObject.uid", &fl.uid);
	EVENT_STR(io, "resourceVersion", "involvedObject.resourceVersion", &unused);
	EVENT_STR(io, "fieldPath", "involvedObject.fieldPath", &unused);

	EVENT_STR(root, "severity", "severity", &sev);
	if (sev.p == NULL) {
		event_fail(err, errlen, field, fieldlen, "severity", "severity is required");
		goto out;
	}
	if ((sevv = event_severity_parse(sev.p)) < 0) {
		event_fail(err, errlen, field, fieldlen, "severity",
		    "severity must be one of trace, info, warning, error (got \"%.64s\")",
		    sev.p);
		goto out;
	}
	fl.severity = (enum event_severity)sevv;
	EVENT_STR(root, "message", "message", &fl.msg);
	if (fl.msg.p == NULL) {
		event_fail(err, errlen, field, fieldlen, "message", "message is required");
		goto out;
	}
	EVENT_STR(root, "reason", "reason", &fl.reason);

	ts = json_object_get(root, "timestamp");   /* borrowed */
	if (ts != NULL && !json_is_null(ts)) {
		if (!json_is_string(ts)) {
			event_fail(err, errlen, field, fieldlen, "timestamp",
			    "timestamp must be an RFC 3339 string or null");
			goto out;
		}
		if (event_parse_rfc3339(json_string_value(ts), json_string_length(ts),
		    &fl.ts) < 0) {
			event_fail(err, errlen, field, fieldlen, "timestamp",
			    "timestamp must be an RFC 3339 date-time (got \"%.64s\")",
			    json_string_value(ts));
			goto out;
		}
		fl.has_ts = true;
	}

	EVENT_STR(root, "reportingController", "reportingController", &fl.rc);
	EVENT_STR(root, "reportingInstance", "reportingInstance", &fl.ri);
#undef EVENT_STR

	meta = json_object_get(root, "metadata");   /* borrowed */
	if (meta != NULL && !json_is_object(meta)) {
		event_fail(err, errlen, field, fieldlen, "metadata",
		    "metadata must be an object of strings");
		goto out;
	}
	if (meta != NULL && (nm = json_object_size(meta)) > 0) {
		const char *key;
		json_t *val;   /* borrowed */
		size_t i = 0;

		event_api_group(&fl.api, &group, &glen);
		if (nm > EVENT_NSTACK)
			mt = util_malloc(nm * sizeof(*mt));
		json_object_foreach(meta, key, val) {
			if (!json_is_string(val)) {
				char path[256];
				snprintf(path, sizeof(path), "metadata.%s", key);
				event_fail(err, errlen, field, fieldlen, path,
				    "%s must be a string", path);
				goto out;
			}
			event_meta_classify(key, group, glen, fl.api.p == NULL, &mt[i]);
			mt[i].value = json_string_value(val);
			mt[i].vlen = json_string_length(val);
			mt[i].order = i;
			i++;
		}
		nuniq = event_meta_finish(mt, nm);
	}

	ev = event_build(&fl, mt, nuniq);

out:
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

/* ---- fast path: one pass over the bytes -------------------------------- */

/*
 * jansson spends most of its time building a tree of allocated nodes that
 * event_parse_reference() reads a dozen strings from. The fast path instead
 * walks the body once with one small recursive-descent tokenizer (RFC 8259:
 * whitespace, objects, arrays, strings, numbers, literals), validating it as
 * jansson would, and keeps only what the event needs: slices of the body for
 * strings without escapes, decoded copies in scratch space for the others.
 *
 * Whatever it is unsure of makes it give up (return -1 here, NULL from
 * event_parse_fast), never reject: numbers jansson might find out of range,
 * \u0000, lone surrogates, bodies deeper than EVENT_MAX_DEPTH, more than
 * EVENT_FAST_MAXMETA metadata entries or EVENT_FAST_MAXKEYS keys in open
 * objects, a known field of the wrong type, any syntax error. The reference
 * path then decides and words the error.
 */

#define EVENT_FAST_SCRATCH 1024   /* on-stack bytes for decoded strings */
#define EVENT_FAST_MAXKEYS 128    /* keys of all objects being parsed */
#define EVENT_FAST_MAXMETA 64     /* metadata entries (Flux sends a handful) */

struct event_fast {
	const unsigned char *p;     /* cursor */
	const unsigned char *end;   /* one past the body */
	size_t len;                 /* of the body: bounds the scratch space */
	int depth;                  /* objects and arrays open at the cursor */
	char *scratch;              /* decoded strings: sbuf, then heap */
	size_t sused, scap;
	char *heap;                 /* NULL until sbuf runs out; event_parse_fast frees */
	struct event_fields fl;
	struct event_str sev;       /* p NULL when absent */
	struct event_str ts;        /* p NULL when absent or null */
	size_t nmeta;
	size_t nkeys;
	struct event_mtmp meta[EVENT_FAST_MAXMETA];   /* keys NUL-terminated in scratch */
	/* members of every open object, innermost last: for duplicate checks */
	struct event_str keys[EVENT_FAST_MAXKEYS];
	char sbuf[EVENT_FAST_SCRATCH];
};

/* A known member that must be a string; dst NULL when only its type matters. */
struct event_fast_field {
	const char *name;
	struct event_str *dst;
};

static int event_fast_value(struct event_fast *f);

/* 1 when the (decoded) string s is exactly lit. */
static int
event_str_is(const struct event_str *s, const char *lit)
{
	size_t n = strlen(lit);

	return s->n == n && memcmp(s->p, lit, n) == 0;
}

static void
event_fast_ws(struct event_fast *f)
{
	while (f->p < f->end && (*f->p == ' ' || *f->p == '\n' || *f->p == '\r' ||
	    *f->p == '\t'))
		f->p++;
}

/* 1 when the cursor is on ch (the end of the body is never any character). */
static int
event_fast_at(const struct event_fast *f, unsigned char ch)
{
	return f->p < f->end && *f->p == ch;
}

/*
 * n bytes of scratch space for a decoded string. A string never decodes to
 * more than its raw length, a NUL takes the room of a quote, and the strings
 * of one body are disjoint, so after the on-stack buffer one heap block of
 * the body's length always suffices. NULL only if that reasoning broke.
 */
static char *
event_fast_scratch(struct event_fast *f, size_t n)
{
	char *p;

	if (f->scap - f->sused < n) {
		if (f->heap != NULL || n > f->len)
			return NULL;
		f->heap = util_malloc(f->len);
		f->scratch = f->heap;
		f->scap = f->len;
		f->sused = 0;
	}
	p = f->scratch + f->sused;
	f->sused += n;
	return p;
}


/* The value of four hex digits at p, or -1. */
static long
event_fast_hex4(const unsigned char *p, const unsigned char *end)
{
	long v = 0;

	if (end - p < 4)
		return -1;
	for (int i = 0; i < 4; i++) {
		int d = util_hex_digit(p[i]);
		if (d < 0)
			return -1;
		v = v * 16 + d;
	}
	return v;
}

/*
 * Decode the escape at p (on its backslash) into the code point *cp. Returns
 * how many bytes it spans (2, 6, or 12 for a surrogate pair), or 0 for what
 * jansson rejects (unknown escapes, bad hex, lone or reversed surrogates)
 * and for \u0000, which it rejects without JSON_ALLOW_NUL.
 */
static size_t
event_fast_escape(const unsigned char *p, const unsigned char *end, uint32_t *cp)
{
	long hi, lo;

	if (end - p < 2)
		return 0;
	switch (p[1]) {
	case '"': case '\\': case '/': *cp = p[1]; return 2;
	case 'b': *cp = '\b'; return 2;
	case 'f': *cp = '\f'; return 2;
	case 'n': *cp = '\n'; return 2;
	case 'r': *cp = '\r'; return 2;
	case 't': *cp = '\t'; return 2;
	case 'u': break;
	default: return 0;
	}
	if ((hi = event_fast_hex4(p + 2, end)) <= 0)
		return 0;
	if (hi < 0xd800 || hi > 0xdfff) {
		*cp = (uint32_t)hi;
		return 6;
	}
	if (hi > 0xdbff || end - p < 12 || p[6] != '\\' || p[7] != 'u')
		return 0;
	lo = event_fast_hex4(p + 8, end);
	if (lo < 0xdc00 || lo > 0xdfff)
		return 0;
	*cp = 0x10000 + (((uint32_t)hi - 0xd800) << 10) + ((uint32_t)lo - 0xdc00);
	return 12;
}

/* Write cp (at most U+10FFFF, not a surrogate) as UTF-8; returns its length. */
static size_t
event_fast_put_utf8(char *o, uint32_t cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | cp >> 6);
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | cp >> 12);
		o[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | cp >> 18);
	o[1] = (char)(0x80 | (cp >> 12 & 0x3f));
	o[2] = (char)(0x80 | (cp >> 6 & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* Decode the already validated string body [p, end) into dst; returns its length. */
static size_t
event_fast_unescape(const unsigned char *p, const unsigned char *end, char *dst)
{
	char *o = dst;

	while (p < end) {
		const unsigned char *bs = memchr(p, '\\', (size_t)(end - p));
		size_t run = (size_t)((bs != NULL ? bs : end) - p);
		uint32_t cp = 0;

		memcpy(o, p, run);
		o += run;
		p += run;
		if (p < end) {
			p += event_fast_escape(p, end, &cp);
			o += event_fast_put_utf8(o, cp);
		}
	}
	return (size_t)(o - dst);
}

/*
 * The string token at the cursor (on its opening quote): validate it as
 * jansson does and move past its closing quote. With out, also deliver its
 * decoded value: borrowed from the body when it has no escape and nul is
 * false, else a copy in scratch space, NUL-terminated. Returns 0 or -1.
 */
static int
event_fast_string(struct event_fast *f, struct event_str *out, bool nul)
{
	const unsigned char *start = f->p + 1, *p = start, *end = f->end;
	bool escaped = false;
	uint32_t cp;
	size_t n;
	char *dst;

	for (;;) {
		/* the common case first: a run of printable ASCII */
		while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
			p++;
		if (p == end)
			return -1;
		if (*p == '"')
			break;
		if (*p == '\\') {
			n = event_fast_escape(p, end, &cp);
			escaped = true;
		} else if (*p >= 0x80) {
			n = util_utf8_len(p, (size_t)(end - p));
		} else {
			n = 0;   /* a control character, raw NUL included */
		}
		if (n == 0)
			return -1;
		p += n;
	}
	f->p = p + 1;
	if (out == NULL)
		return 0;
	n = (size_t)(p - start);
	if (!escaped && !nul) {
		out->p = (const char *)start;
		out->n = n;
		return 0;
	}
	if ((dst = event_fast_scratch(f, n + 1)) == NULL)
		return -1;
	if (escaped) {
		n = event_fast_unescape(start, p, dst);
	} else if (n > 0) {
		memcpy(dst, start, n);
	}
	dst[n] = '\0';
	out->p = dst;
	out->n = n;
	return 0;
}

/*
 * A number token, validated and skipped. Its value is never used, but jansson
 * rejects integers outside long long and reals that overflow a double, so
 * give up unless it is clearly in range: integers of at most 18 digits, reals
 * below 10^300 (an underflow to 0 is accepted by jansson, so small is fine).
 */
static int
event_fast_number(struct event_fast *f)
{
	const unsigned char *p = f->p, *end = f->end, *digits;
	long long exp = 0, esign = 1;
	size_t nint;
	bool real = false;

	if (p < end && *p == '-')
		p++;
	digits = p;
	if (p < end && *p == '0')
		p++;
	else
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	if ((nint = (size_t)(p - digits)) == 0)
		return -1;
	if (p < end && *p == '.') {
		const unsigned char *frac = ++p;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
		if (p == frac)
			return -1;
		real = true;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		const unsigned char *e;
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			esign = *p++ == '-' ? -1 : 1;
		for (e = p; p < end && *p >= '0' && *p <= '9'; p++)
			if (exp < 100000)   /* saturate: only the order of magnitude matters */
				exp = exp * 10 + (*p - '0');
		if (p == e)
			return -1;
		real = true;
	}
	if (!real && nint > 18)
		return -1;
	/* a value with k integer digits is below 10^k; "0.x" has none */
	if (real && (long long)(*digits == '0' ? 0 : nint) + esign * exp > 300)
		return -1;
	f->p = p;
	return 0;
}

/* The literal word at the cursor (true, false or null), skipped. */
static int
event_fast_literal(struct event_fast *f, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(f->end - f->p) < n || memcmp(f->p, word, n) != 0)
		return -1;
	f->p += n;
	return 0;
}

/* Enter the object or array at the cursor; gives up past EVENT_MAX_DEPTH. */
static int
event_fast_open(struct event_fast *f)
{
	if (++f->depth > EVENT_MAX_DEPTH)
		return -1;
	f->p++;
	event_fast_ws(f);
	return 0;
}

/*
 * The next member of the object entered with event_fast_open(), whose keys
 * start at keys[base]. Returns 1 with its decoded key in *key (a NUL-
 * terminated copy when nul) and the cursor on its value; 0 after the closing
 * brace; -1 to give up, duplicate keys included: like jansson's
 * JSON_REJECT_DUPLICATES, keys compare decoded ("a" and "\u0061" clash).
 */
static int
event_fast_member_next(struct event_fast *f, size_t base, bool nul, struct event_str *key)
{
	event_fast_ws(f);
	if (event_fast_at(f, '}')) {
		f->p++;
		f->nkeys = base;
		f->depth--;
		return 0;
	}
	if (f->nkeys > base) {   /* not the first member: a comma first */
		if (!event_fast_at(f, ','))
			return -1;
		f->p++;
		event_fast_ws(f);
	}
	if (!event_fast_at(f, '"') || event_fast_string(f, key, nul) < 0)
		return -1;
	for (size_t i = base; i < f->nkeys; i++)
		if (f->keys[i].n == key->n && memcmp(f->keys[i].p, key->p, key->n) == 0)
			return -1;
	if (f->nkeys == EVENT_FAST_MAXKEYS)
		return -1;
	f->keys[f->nkeys++] = *key;
	event_fast_ws(f);
	if (!event_fast_at(f, ':'))
		return -1;
	f->p++;
	event_fast_ws(f);
	return f->p < f->end ? 1 : -1;
}

/* An object whose members are all ignored (validated, duplicates checked). */
static int
event_fast_object(struct event_fast *f)
{
	size_t base = f->nkeys;
	struct event_str key;
	int r;

	if (event_fast_open(f) < 0)
		return -1;
	while ((r = event_fast_member_next(f, base, false, &key)) == 1)
		if (event_fast_value(f) < 0)
			return -1;
	return r;
}

static int
event_fast_array(struct event_fast *f)
{
	if (event_fast_open(f) < 0)
		return -1;
	if (event_fast_at(f, ']'))
		goto close;
	for (;;) {
		if (event_fast_value(f) < 0)
			return -1;
		event_fast_ws(f);
		if (event_fast_at(f, ']'))
			goto close;
		if (!event_fast_at(f, ','))
			return -1;
		f->p++;
		event_fast_ws(f);
	}
close:
	f->p++;
	f->depth--;
	return 0;
}

/* Any value at the cursor, validated and skipped. */
static int
event_fast_value(struct event_fast *f)
{
	if (f->p == f->end)
		return -1;
	switch (*f->p) {
	case '{': return event_fast_object(f);
	case '[': return event_fast_array(f);
	case '"': return event_fast_string(f, NULL, false);
	case 't': return event_fast_literal(f, "true");
	case 'f': return event_fast_literal(f, "false");
	case 'n': return event_fast_literal(f, "null");
	default: return event_fast_number(f);
	}
}

/* A member that must be a string (dst NULL: validated, value unused). */
static int
event_fast_want_string(struct event_fast *f, struct event_str *dst)
{
	if (!event_fast_at(f, '"'))
		return -1;
	return event_fast_string(f, dst, false);
}

/*
 * An object of which the members named in fields[0..n) must be strings and
 * are captured, the others validated and ignored.
 */
static int
event_fast_fields(struct event_fast *f, const struct event_fast_field *fields, size_t n)
{
	size_t base = f->nkeys;
	struct event_str key;
	int r;

	if (!event_fast_at(f, '{') || event_fast_open(f) < 0)
		return -1;
	while ((r = event_fast_member_next(f, base, false, &key)) == 1) {
		size_t i;
		for (i = 0; i < n && !event_str_is(&key, fields[i].name); i++)
			continue;
		r = i < n ? event_fast_want_string(f, fields[i].dst) : event_fast_value(f);
		if (r < 0)
			return -1;
	}
	return r;
}

/*
 * The metadata object: string values only. Entries are classified later,
 * when involvedObject.apiVersion (which may come after) is known.
 */
static int
event_fast_metadata(struct event_fast *f)
{
	size_t base = f->nkeys;
	struct event_str key, val;
	int r;

	if (!event_fast_at(f, '{') || event_fast_open(f) < 0)
		return -1;
	while ((r = event_fast_member_next(f, base, true, &key)) == 1) {
		struct event_mtmp *m;
		if (f->nmeta == EVENT_FAST_MAXMETA || event_fast_want_string(f, &val) < 0)
			return -1;
		m = &f->meta[f->nmeta];
		m->key = key.p;   /* NUL-terminated: event_meta_classify() needs it */
		m->value = val.p;
		m->vlen = val.n;
		m->order = f->nmeta++;
	}
	return r;
}

/* involvedObject: the members event_parse_reference() reads must be strings. */
static int
event_fast_involved(struct event_fast *f)
{
	const struct event_fast_field io[] = {
		{ "kind", &f->fl.kind }, { "name", &f->fl.name }, { "namespace", &f->fl.ns },
		{ "apiVersion", &f->fl.api }, { "uid", &f->fl.uid },
		{ "resourceVersion", NULL }, { "fieldPath", NULL },
	};

	return event_fast_fields(f, io, sizeof(io) / sizeof(io[0]));
}

/* One member of the event object, the cursor on its value. */
static int
event_fast_top_member(struct event_fast *f, const struct event_str *key)
{
	if (event_str_is(key, "involvedObject"))
		return event_fast_involved(f);
	if (event_str_is(key, "metadata"))
		return event_fast_metadata(f);
	if (event_str_is(key, "timestamp"))   /* a string or null */
		return event_fast_at(f, 'n') ? event_fast_literal(f, "null") :
		    event_fast_want_string(f, &f->ts);
	if (event_str_is(key, "severity"))
		return event_fast_want_string(f, &f->sev);
	if (event_str_is(key, "message"))
		return event_fast_want_string(f, &f->fl.msg);
	if (event_str_is(key, "reason"))
		return event_fast_want_string(f, &f->fl.reason);
	if (event_str_is(key, "reportingController"))
		return event_fast_want_string(f, &f->fl.rc);
	if (event_str_is(key, "reportingInstance"))
		return event_fast_want_string(f, &f->fl.ri);
	return event_fast_value(f);   /* unknown: validated, ignored */
}

/* The whole body: one object, whitespace around it, nothing else. */
static int
event_fast_body(struct event_fast *f)
{
	struct event_str key;
	int r;

	event_fast_ws(f);
	if (!event_fast_at(f, '{') || event_fast_open(f) < 0)
		return -1;
	while ((r = event_fast_member_next(f, 0, false, &key)) == 1)
		if (event_fast_top_member(f, &key) < 0)
			return -1;
	if (r < 0)
		return -1;
	event_fast_ws(f);
	return f->p == f->end ? 0 : -1;
}

/*
 * The checks event_parse_reference() makes on the values, in any order
 * (every failure gives up), then the same normalization and block.
 */
static struct event *
event_fast_finish(struct event_fast *f)
{
	struct event_fields *fl = &f->fl;
	const char *group;
	size_t glen;
	char sev[8];
	int s;

	if (fl->kind.n == 0 || fl->name.n == 0 || fl->msg.p == NULL || f->sev.p == NULL ||
	    f->sev.n >= sizeof(sev))
		return NULL;
	/* decoded strings hold no NUL, so this is the reference's strcmp */
	memcpy(sev, f->sev.p, f->sev.n);
	sev[f->sev.n] = '\0';
	if ((s = event_severity_parse(sev)) < 0)
		return NULL;
	fl->severity = (enum event_severity)s;
	if (f->ts.p != NULL) {
		if (event_parse_rfc3339(f->ts.p, f->ts.n, &fl->ts) < 0)
			return NULL;
		fl->has_ts = true;
	}
	event_api_group(&fl->api, &group, &glen);
	for (size_t i = 0; i < f->nmeta; i++)
		event_meta_classify(f->meta[i].key, group, glen, fl->api.p == NULL, &f->meta[i]);
	return event_build(fl, f->meta, event_meta_finish(f->meta, f->nmeta));
}

struct event *
event_parse_fast(const char *buf, size_t len)
{
	struct event_fast f;
	struct event *ev = NULL;

	/* the arrays are written before they are read: not cleared */
	f.p = (const unsigned char *)buf;
	f.end = f.p + len;
	f.len = len;
	f.depth = 0;
	f.scratch = f.sbuf;
	f.sused = 0;
	f.scap = sizeof(f.sbuf);
	f.heap = NULL;
	memset(&f.fl, 0, sizeof(f.fl));
	f.sev.p = f.ts.p = NULL;
	f.sev.n = f.ts.n = 0;
	f.nmeta = 0;
	f.nkeys = 0;

	if (event_fast_body(&f) == 0)
		ev = event_fast_finish(&f);
	free(f.heap);
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
