/*
 * event: parse and validate one Flux event (SPEC §5) into a struct event.
 *
 * This is on the request hot path, so besides jansson's own tree the result
 * costs exactly one allocation: the struct, its normalized metadata array and
 * every string live in one block sized in advance, and event_free() frees that
 * block. Nesting depth is checked by a linear pre-scan before jansson (which
 * recurses) sees the body. Pure; no state; callable from any thread.
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

	while (*s != '\0') {
		unsigned c = *s, cp;
		size_t k, j;

		if (c < 0x80) {
			s++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			k = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			k = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			k = 3;
			cp = c & 0x07;
		} else {
			*s++ = '?';
			continue;
		}
		/* the NUL terminator is not a continuation byte: no overrun */
		for (j = 1; j <= k && (s[j] & 0xc0) == 0x80; j++)
			cp = cp << 6 | (s[j] & 0x3f);
		if (j <= k || (k == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		    (k == 3 && (cp < 0x10000 || cp > 0x10ffff))) {
			*s++ = '?';
			continue;
		}
		s += k + 1;
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

struct event *
event_parse(const char *buf, size_t len, char *err, size_t errlen, char *field,
    size_t fieldlen)
{
	enum { EVENT_NSTACK = 16 };
	struct event_mtmp mstack[EVENT_NSTACK];
	struct event_mtmp *mt = mstack;
	struct event *ev = NULL;
	json_t *root = NULL, *io, *meta, *ts;
	json_error_t jerr;
	struct event_str kind, name, ns, api, uid, sev, msg, reason, rc, ri, unused;
	char *cur;
	size_t bad, nm = 0, nuniq = 0, total;
	const char *group = NULL;
	size_t glen = 0;
	int sevv, has_ts = 0;
	time_t tsv = 0;

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
	EVENT_STR(io, "kind", "involvedObject.kind", &kind);
	if (kind.n == 0) {
		event_fail(err, errlen, field, fieldlen, "involvedObject.kind",
		    "involvedObject.kind is required and must not be empty");
		goto out;
	}
	EVENT_STR(io, "name", "involvedObject.name", &name);
	if (name.n == 0) {
		event_fail(err, errlen, field, fieldlen, "involvedObject.name",
		    "involvedObject.name is required and must not be empty");
		goto out;
	}
	EVENT_STR(io, "namespace", "involvedObject.namespace", &ns);
	EVENT_STR(io, "apiVersion", "involvedObject.apiVersion", &api);
	EVENT_STR(io, "uid", "involvedObject.uid", &uid);
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
	EVENT_STR(root, "message", "message", &msg);
	if (msg.p == NULL) {
		event_fail(err, errlen, field, fieldlen, "message", "message is required");
		goto out;
	}
	EVENT_STR(root, "reason", "reason", &reason);

	ts = json_object_get(root, "timestamp");   /* borrowed */
	if (ts != NULL && !json_is_null(ts)) {
		if (!json_is_string(ts)) {
			event_fail(err, errlen, field, fieldlen, "timestamp",
			    "timestamp must be an RFC 3339 string or null");
			goto out;
		}
		if (event_parse_rfc3339(json_string_value(ts), json_string_length(ts),
		    &tsv) < 0) {
			event_fail(err, errlen, field, fieldlen, "timestamp",
			    "timestamp must be an RFC 3339 date-time (got \"%.64s\")",
			    json_string_value(ts));
			goto out;
		}
		has_ts = 1;
	}

	EVENT_STR(root, "reportingController", "reportingController", &rc);
	EVENT_STR(root, "reportingInstance", "reportingInstance", &ri);
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

		if (api.p != NULL) {
			const char *slash = memchr(api.p, '/', api.n);
			if (slash != NULL) {
				group = api.p;
				glen = (size_t)(slash - api.p);
			}
		}
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
			event_meta_classify(key, group, glen, api.p == NULL, &mt[i]);
			mt[i].value = json_string_value(val);
			mt[i].vlen = json_string_length(val);
			mt[i].order = i;
			i++;
		}
		qsort(mt, nm, sizeof(*mt), event_meta_cmp);
		/* keep the winner of each run of equal keys, compacting in place */
		for (i = 0; i < nm; i++) {
			if (nuniq > 0 && strcmp(mt[nuniq - 1].key, mt[i].key) == 0)
				continue;
			mt[nuniq++] = mt[i];
		}
	}

	/* one block: struct, metadata array, then every string */
	total = sizeof(*ev) + nuniq * sizeof(struct event_kv);
	total += kind.n + 1 + name.n + 1 + msg.n + 1 + reason.n + 1 + rc.n + 1 + ri.n + 1;
	if (ns.p != NULL)
		total += ns.n + 1;
	if (api.p != NULL)
		total += api.n + 1;
	if (uid.p != NULL)
		total += uid.n + 1;
	for (size_t i = 0; i < nuniq; i++)
		total += strlen(mt[i].key) + 1 + mt[i].vlen + 1;

	ev = util_malloc(total);
	cur = (char *)(ev + 1) + nuniq * sizeof(struct event_kv);
	ev->meta = nuniq > 0 ? (struct event_kv *)(ev + 1) : NULL;
	ev->nmeta = nuniq;
	ev->kind = event_put(&cur, kind.p, kind.n);
	ev->name = event_put(&cur, name.p, name.n);
	ev->namespace = ns.p != NULL ? event_put(&cur, ns.p, ns.n) : NULL;
	ev->api_version = api.p != NULL ? event_put(&cur, api.p, api.n) : NULL;
	ev->uid = uid.p != NULL ? event_put(&cur, uid.p, uid.n) : NULL;
	ev->severity = (enum event_severity)sevv;
	ev->message = event_put(&cur, msg.p, msg.n);
	ev->reason = event_put(&cur, reason.p, reason.n);
	ev->has_timestamp = has_ts;
	ev->timestamp = tsv;
	ev->reporting_controller = event_put(&cur, rc.p, rc.n);
	ev->reporting_instance = event_put(&cur, ri.p, ri.n);
	for (size_t i = 0; i < nuniq; i++) {
		ev->meta[i].key = event_put(&cur, mt[i].key, strlen(mt[i].key));
		ev->meta[i].value = event_put(&cur, mt[i].value, mt[i].vlen);
		ev->meta[i].origin = mt[i].origin;
	}

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

void
event_free(struct event *ev)
{
	/* one block: see event_parse */
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
