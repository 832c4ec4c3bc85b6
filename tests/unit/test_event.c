/*
 * Unit tests for event: every fixture parses with the expected fields and
 * normalized metadata; a table of malformed bodies is rejected with the right
 * `field`; RFC 3339 timestamps; metadata normalization precedence; nesting
 * limits; huge messages; severity names.
 *
 * Every body goes through parse_checked(), which runs the three entry points
 * (event_parse, event_parse_reference, event_parse_fast) and fails unless
 * they agree: event_parse gives the reference's result and error text, and
 * the fast path either gives up or builds the reference's event. A second
 * table (grammar_cases) covers the JSON grammar the fast path tokenizes
 * itself: escapes, numbers, whitespace, UTF-8, duplicates, depth.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "event_internal.h"
#include "util.h"

#define ERRLEN 512

/* ---- fixtures ----------------------------------------------------------- */

struct meta_want {
	const char *key, *value;
	enum event_meta_origin origin;
};

static const struct fixture {
	const char *file;
	const char *kind, *name, *namespace, *api_version, *uid;
	enum event_severity severity;
	const char *message, *reason;
	bool has_ts;
	long long ts;
	const char *rc, *ri;
	size_t nmeta;
	struct meta_want meta[4];
} fixtures[] = {
	{ "01-kustomization-validation-failed-generic-webhook.json",
	  "Kustomization", "webapp", "apps", "kustomize.toolkit.fluxcd.io/v1",
	  "7d0cdc51-ddcf-4743-b223-83ca5c699632", EVENT_ERROR,
	  "service/apps/webapp validation error: spec.type: Unsupported value: Ingress",
	  "ValidationFailed", true, 1666941979LL,
	  "kustomize-controller", "kustomize-controller-7c7b47f5f-8bhrp",
	  1, { { "revision", "main/731f7eaddfb6af01cb2173e18f0f75b0ba780ef1",
	         EVENT_META_CONTROLLER } } },
	{ "02-gitrepository-fetched-revision-legacy.json",
	  "GitRepository", "flux-system", "flux-system", "source.toolkit.fluxcd.io/v1beta2",
	  "cc4d0095-83f4-4f08-98f2-d2e9f3731fb9", EVENT_INFO,
	  "Fetched revision: main/731f7eaddfb6af01cb2173e18f0f75b0ba780ef1", "info",
	  true, 1136214245LL, "source-controller", "source-controller-7c7b47f5f-8bhrp",
	  0, { { NULL, NULL, 0 } } },
	{ "03-gitrepository-webapp-notifier-testevent.json",
	  "GitRepository", "webapp", "gitops-system", NULL, NULL, EVENT_INFO,
	  "message", "reason", true, 1672531200LL,
	  "source-controller", "source-controller-xyz",
	  1, { { "test", "metadata", EVENT_META_PLAIN } } },
	{ "04-bucket-event-server-test.json",
	  "Bucket", "hyacinth", "foo-ns", NULL, NULL, EVENT_INFO,
	  "well that happened", "event-happened", true, 1672531200LL,
	  "source-controller", "",
	  0, { { NULL, NULL, 0 } } },
	{ "05-kustomization-health-check-passed-with-revision.json",
	  "Kustomization", "4", "4", "kustomize.toolkit.fluxcd.io/v1", NULL, EVENT_INFO,
	  "Health check passed", "", false, 0, "", "",
	  1, { { "revision", "rev1", EVENT_META_CONTROLLER } } },
	{ "06-kustomization-health-check-timed-out-error.json",
	  "Kustomization", "1", "1", "kustomize.toolkit.fluxcd.io/v1", NULL, EVENT_ERROR,
	  "Health check timed out for [Deployment 'foo/bar']", "", false, 0, "", "",
	  0, { { NULL, NULL, 0 } } },
	{ "07-configmap-sync-with-object-annotations.json",
	  "ConfigMap", "webapp", "gitops-system", "v1", NULL, EVENT_INFO,
	  "sync object", "sync", true, 1672531200LL,
	  "test-controller", "test-controller-host",
	  3, { { "deploymentID", "e076e315-5a48-41c3-81c8-8d8bdee7d74d", EVENT_META_ANNOTATION },
	       { "image", "ghcr.io/stefanprodan/podinfo:6.5.0", EVENT_META_ANNOTATION },
	       { "test", "true", EVENT_META_PLAIN } } },
	{ "08-kustomization-configured-provider-side.json",
	  "Kustomization", "podinfo-repo", "flux-system", NULL, NULL, EVENT_INFO,
	  "Service/podinfo/podinfo configured", "", true, 1672531200LL, "", "",
	  2, { { "originRevision", "main@sha1:8a9156325322a124e55a369b59063470310ebbd8",
	         EVENT_META_PLAIN },
	       { "revision", "main@sha1:69b59063470310ebbd88a9156325322a124e55a3",
	         EVENT_META_PLAIN } } },
};

static void
check_str(const char *what, const char *got, const char *want)
{
	if (want == NULL) {
		ck_assert_msg(got == NULL, "%s: got \"%s\", want NULL", what, got);
		return;
	}
	ck_assert_msg(got != NULL, "%s: got NULL, want \"%s\"", what, want);
	ck_assert_msg(strcmp(got, want) == 0, "%s: got \"%s\", want \"%s\"", what, got, want);
}

/* ---- both parsers agree ------------------------------------------------- */

/*
 * Whether the last parse_checked() call was handled by the fast path. Each
 * test runs in one thread (Check forks a process per test): no lock.
 */
static bool last_fast;

/* Fail unless a and b hold the same event, field by field. */
static void
check_same(const char *what, const struct event *a, const struct event *b)
{
	char tag[64];

#define SAME_STR(f) do { \
	snprintf(tag, sizeof(tag), "%s: " #f, what); \
	check_str(tag, a->f, b->f); \
} while (0)
	SAME_STR(kind);
	SAME_STR(name);
	SAME_STR(namespace);
	SAME_STR(api_version);
	SAME_STR(uid);
	SAME_STR(message);
	SAME_STR(reason);
	SAME_STR(reporting_controller);
	SAME_STR(reporting_instance);
#undef SAME_STR
	ck_assert_msg(a->severity == b->severity, "%s: severity", what);
	ck_assert_msg(a->has_timestamp == b->has_timestamp, "%s: has_timestamp", what);
	ck_assert_msg(a->timestamp == b->timestamp, "%s: timestamp", what);
	snprintf(tag, sizeof(tag), "%s: timestamp_text", what);
	check_str(tag, a->timestamp_text, b->timestamp_text);
	ck_assert_msg(a->nmeta == b->nmeta, "%s: %zu metadata entries, want %zu", what,
	    a->nmeta, b->nmeta);
	ck_assert_msg((a->meta == NULL) == (b->meta == NULL), "%s: meta pointer", what);
	for (size_t i = 0; i < a->nmeta; i++) {
		snprintf(tag, sizeof(tag), "%s: meta[%zu]", what, i);
		check_str(tag, a->meta[i].key, b->meta[i].key);
		check_str(tag, a->meta[i].value, b->meta[i].value);
		ck_assert_msg(a->meta[i].origin == b->meta[i].origin, "%s: origin", tag);
	}
}

/*
 * event_parse() with the same arguments, after checking it against the two
 * parsers behind it: same accept/reject decision and event as the reference,
 * the reference's exact err and field (same buffer sizes) on rejection, and a
 * fast path that never accepts what the reference rejects nor builds another
 * event. Returns event_parse()'s result; sets last_fast.
 */
static struct event *
parse_checked(const char *buf, size_t len, char *err, size_t errlen, char *field,
    size_t fieldlen)
{
	char rerr[ERRLEN], rfield[ERRLEN];
	struct event *ev, *ref, *fast;

	ck_assert(errlen <= sizeof(rerr) && fieldlen <= sizeof(rfield));
	ev = event_parse(buf, len, err, errlen, field, fieldlen);
	ref = event_parse_reference(buf, len, err != NULL ? rerr : NULL, errlen,
	    field != NULL ? rfield : NULL, fieldlen);
	fast = event_parse_fast(buf, len);
	last_fast = fast != NULL;

	if (ref == NULL) {
		ck_assert_msg(fast == NULL, "fast path accepted what the reference rejects "
		    "(%s): %.*s", rerr, (int)(len < 300 ? len : 300), buf);
		ck_assert_msg(ev == NULL, "event_parse accepted what the reference rejects");
		if (err != NULL && errlen > 0)
			ck_assert_msg(strcmp(err, rerr) == 0, "err \"%s\", reference \"%s\"",
			    err, rerr);
		if (field != NULL && fieldlen > 0)
			ck_assert_msg(strcmp(field, rfield) == 0, "field \"%s\", reference \"%s\"",
			    field, rfield);
	} else {
		ck_assert_msg(ev != NULL, "event_parse rejected what the reference accepts: %s",
		    err != NULL ? err : "");
		check_same("event_parse vs reference", ev, ref);
		if (fast != NULL)
			check_same("fast vs reference", fast, ref);
		if (err != NULL && errlen > 0)
			ck_assert_str_eq(err, "");
		if (field != NULL && fieldlen > 0)
			ck_assert_str_eq(field, "");
	}
	event_free(ref);
	event_free(fast);
	return ev;
}

START_TEST(test_event_fixtures)
{
	const struct fixture *f = &fixtures[_i];
	char path[1024], err[ERRLEN], field[128];
	size_t len = 0;
	char *buf;
	struct event *ev;

	snprintf(path, sizeof(path), "%s/tests/fixtures/events/%s", FR_SRCDIR, f->file);
	buf = util_read_file(path, &len, err, sizeof(err));
	ck_assert_msg(buf != NULL, "%s: %s", path, err);
	ev = parse_checked(buf, len, err, sizeof(err), field, sizeof(field));
	ck_assert_msg(ev != NULL, "%s rejected: %s (field %s)", f->file, err, field);
	/* real Flux events are what the fast path is for */
	ck_assert_msg(last_fast, "%s: not handled by the fast path", f->file);

	check_str("kind", ev->kind, f->kind);
	check_str("name", ev->name, f->name);
	check_str("namespace", ev->namespace, f->namespace);
	check_str("api_version", ev->api_version, f->api_version);
	check_str("uid", ev->uid, f->uid);
	ck_assert_int_eq(ev->severity, f->severity);
	check_str("message", ev->message, f->message);
	check_str("reason", ev->reason, f->reason);
	ck_assert_int_eq(ev->has_timestamp, f->has_ts);
	if (f->has_ts)
		ck_assert_int_eq((long long)ev->timestamp, f->ts);
	check_str("reportingController", ev->reporting_controller, f->rc);
	check_str("reportingInstance", ev->reporting_instance, f->ri);
	ck_assert_uint_eq(ev->nmeta, f->nmeta);
	for (size_t i = 0; i < f->nmeta; i++) {
		check_str("meta key", ev->meta[i].key, f->meta[i].key);
		check_str("meta value", ev->meta[i].value, f->meta[i].value);
		ck_assert_int_eq(ev->meta[i].origin, f->meta[i].origin);
		check_str("event_meta_get", event_meta_get(ev, f->meta[i].key), f->meta[i].value);
	}
	ck_assert_ptr_null(event_meta_get(ev, "nonexistent"));
	event_free(ev);
	free(buf);
}
END_TEST

/* ---- malformed bodies --------------------------------------------------- */

#define IO "\"involvedObject\":{\"kind\":\"K\",\"name\":\"n\"}"
#define SEV "\"severity\":\"info\""
#define MSG "\"message\":\"m\""
#define BASE IO "," SEV "," MSG
#define WITH(extra) "{" BASE "," extra "}"
#define IOWITH(extra) "{\"involvedObject\":{\"kind\":\"K\",\"name\":\"n\"," extra "}," \
	SEV "," MSG "}"
#define TS(t) WITH("\"timestamp\":\"" t "\"")
#define A64 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"   /* 63 */

static const struct bad {
	const char *json;
	const char *field;
	const char *errpart;   /* substring the message must contain, or NULL */
} bad_cases[] = {
	/* whole-body problems */
	{ "not json", "", "invalid JSON" },
	{ "", "", "invalid JSON" },
	{ "{\"involvedObject\":{\"kind\":", "", "invalid JSON" },
	{ "{" BASE, "", "invalid JSON" },
	{ "{" BASE "}}", "", "invalid JSON" },
	{ "{" BASE ",}", "", "invalid JSON" },
	{ "{\n" BASE ",\n\"x\": }", "", "line 3" },
	{ "[1,2]", "", "must be a JSON object" },
	{ "[]", "", "must be a JSON object" },
	{ "\"string\"", "", "must be a JSON object" },
	{ "42", "", "must be a JSON object" },
	{ "null", "", "must be a JSON object" },
	{ "true", "", "must be a JSON object" },
	/* duplicate keys: the last value decides (test_event_duplicates) */
	{ WITH("\"severity\":\"fatal\""), "severity", "must be one of" },
	{ WITH("\"metadata\":{\"a\":\"1\",\"a\":2}"), "metadata.a", "must be a string" },
	{ "{" BASE ",\"involvedObject\":{\"name\":\"n\"}}", "involvedObject.kind", "required" },
	/* \u0000 is valid JSON (test_event_nul_escape), U+FFFD where it matters */
	{ WITH("\"metadata\":{\"a\\u0000\":1}"), "metadata.a\xef\xbf\xbd", "string" },
	{ "{" IO ",\"severity\":\"info\\u0000\"," MSG "}", "severity", "info\xef\xbf\xbd" },
	{ "{" IO "," SEV ",\"message\":\"\\u0000\" x}", "", "invalid JSON" },
	/* numbers jansson cannot hold are only a type error in a known field */
	{ WITH("\"reason\":99999999999999999999999"), "reason", "must be a string" },
	{ WITH("\"timestamp\":1e999"), "timestamp", "RFC 3339 string or null" },
	{ WITH("\"metadata\":{\"a\":-1e999}"), "metadata.a", "must be a string" },
	{ "{" IO ",\"severity\":1e999," MSG "}", "severity", "must be a string" },
	{ "{" IO "," SEV ",\"message\":-99999999999999999999}", "message", "must be a string" },
	{ "{\"involvedObject\":{\"kind\":\"K\",\"name\":1E+400}," SEV "," MSG "}",
	  "involvedObject.name", "must be a string" },
	{ "{\"involvedObject\":1e999," SEV "," MSG "}", "involvedObject", "object" },
	{ "99999999999999999999", "", "must be a JSON object" },
	/* and the body must still be JSON around them */
	{ WITH("\"x\":1e999,\"y\":--1"), "", "invalid JSON" },
	{ WITH("\"x\":1e999,\"y\":01"), "", "invalid JSON" },
	{ WITH("\"x\":1e999,\"y\":1."), "", "invalid JSON" },
	{ WITH("\"x\":1e999 1"), "", "invalid JSON" },
	{ WITH("\"x\":\"\\u0000\",\"y\":-"), "", "invalid JSON" },
	{ WITH("\"x\":\"\\ud800\\u0000\""), "", "invalid JSON" },
	{ WITH("\"x\":1e999,\"y\":\"\\u0000\\x\""), "", "invalid JSON" },
	/* invalid UTF-8: stray byte, overlong, surrogate, truncated sequence */
	{ "{" IO "," SEV ",\"message\":\"\xff\xfe\"}", "", "invalid JSON" },
	{ "{" IO "," SEV ",\"message\":\"\xc0\xaf\"}", "", "invalid JSON" },
	{ "{" IO "," SEV ",\"message\":\"\xed\xa0\x80\"}", "", "invalid JSON" },
	{ "{" IO "," SEV ",\"message\":\"ab\xe2\x82\"}", "", "invalid JSON" },
	{ WITH("\"metadata\":{\"k\xff\":\"1\"}"), "", "invalid JSON" },
	/* involvedObject */
	{ "{" SEV "," MSG "}", "involvedObject", "required" },
	{ "{\"involvedObject\":\"x\"," SEV "," MSG "}", "involvedObject", "object" },
	{ "{\"involvedObject\":[]," SEV "," MSG "}", "involvedObject", "object" },
	{ "{\"involvedObject\":null," SEV "," MSG "}", "involvedObject", "object" },
	{ "{\"involvedObject\":{\"name\":\"n\"}," SEV "," MSG "}", "involvedObject.kind",
	  "required" },
	{ "{\"involvedObject\":{\"kind\":\"\",\"name\":\"n\"}," SEV "," MSG "}",
	  "involvedObject.kind", "empty" },
	{ "{\"involvedObject\":{\"kind\":5,\"name\":\"n\"}," SEV "," MSG "}",
	  "involvedObject.kind", "string" },
	{ "{\"involvedObject\":{\"kind\":null,\"name\":\"n\"}," SEV "," MSG "}",
	  "involvedObject.kind", "string" },
	{ "{\"involvedObject\":{\"kind\":\"K\"}," SEV "," MSG "}", "involvedObject.name",
	  "required" },
	{ "{\"involvedObject\":{\"kind\":\"K\",\"name\":\"\"}," SEV "," MSG "}",
	  "involvedObject.name", "empty" },
	{ "{\"involvedObject\":{\"kind\":\"K\",\"name\":{}}," SEV "," MSG "}",
	  "involvedObject.name", "string" },
	{ IOWITH("\"namespace\":5"), "involvedObject.namespace", "string" },
	{ IOWITH("\"apiVersion\":true"), "involvedObject.apiVersion", "string" },
	{ IOWITH("\"uid\":[]"), "involvedObject.uid", "string" },
	{ IOWITH("\"resourceVersion\":1"), "involvedObject.resourceVersion", "string" },
	{ IOWITH("\"fieldPath\":{}"), "involvedObject.fieldPath", "string" },
	/* severity */
	{ "{" IO "," MSG "}", "severity", "required" },
	{ "{" IO ",\"severity\":\"fatal\"," MSG "}", "severity", "fatal" },
	{ "{" IO ",\"severity\":\"Info\"," MSG "}", "severity", "Info" },
	{ "{" IO ",\"severity\":\"\"," MSG "}", "severity", NULL },
	{ "{" IO ",\"severity\":3," MSG "}", "severity", "string" },
	{ "{" IO ",\"severity\":null," MSG "}", "severity", "string" },
	/* message */
	{ "{" IO "," SEV "}", "message", "required" },
	{ "{" IO "," SEV ",\"message\":7}", "message", "string" },
	{ "{" IO "," SEV ",\"message\":null}", "message", "string" },
	{ "{" IO "," SEV ",\"message\":[\"a\"]}", "message", "string" },
	/* reason, reporting* */
	{ WITH("\"reason\":5"), "reason", "string" },
	{ WITH("\"reason\":null"), "reason", "string" },
	{ WITH("\"reportingController\":5"), "reportingController", "string" },
	{ WITH("\"reportingInstance\":[]"), "reportingInstance", "string" },
	/* timestamp */
	{ WITH("\"timestamp\":5"), "timestamp", NULL },
	{ WITH("\"timestamp\":true"), "timestamp", NULL },
	{ WITH("\"timestamp\":{}"), "timestamp", NULL },
	{ TS("2022-13-01T00:00:00Z"), "timestamp", "2022-13-01" },
	{ TS("2022-00-01T00:00:00Z"), "timestamp", NULL },
	{ TS("2022-10-28 07:26:19"), "timestamp", NULL },
	{ TS("2022-10-28 07:26:19Z"), "timestamp", NULL },
	{ TS("yesterday"), "timestamp", "yesterday" },
	{ TS(""), "timestamp", NULL },
	{ TS("2022-10-28"), "timestamp", NULL },
	{ TS("2022-10-28T07:26:19"), "timestamp", NULL },
	{ TS("2022-10-28T07:26Z"), "timestamp", NULL },
	{ TS("2022-02-30T00:00:00Z"), "timestamp", NULL },
	{ TS("2023-02-29T00:00:00Z"), "timestamp", NULL },
	{ TS("1900-02-29T00:00:00Z"), "timestamp", NULL },
	{ TS("2022-04-31T00:00:00Z"), "timestamp", NULL },
	{ TS("2022-10-00T00:00:00Z"), "timestamp", NULL },
	{ TS("2022-10-28T24:00:00Z"), "timestamp", NULL },
	{ TS("2022-10-28T07:60:00Z"), "timestamp", NULL },
	{ TS("2022-10-28T07:26:61Z"), "timestamp", NULL },
	{ TS("2022-10-28T07:26:19+0200"), "timestamp", NULL },
	{ TS("2022-10-28T07:26:19+02"), "timestamp", NULL },
	{ TS("2022-10-28T07:26:19+24:00"), "timestamp", NULL },
	{ TS("2022-10-28T07:26:19+02:60"), "timestamp", NULL },
	{ TS("2022-10-28T07:26:19.Z"), "timestamp", NULL },
	{ TS("2022-10-28T07:26:19.5"), "timestamp", NULL },
	{ TS("2022-10-28T07:26:19Zjunk"), "timestamp", NULL },
	{ TS("2022-10-28T07:26:19Z "), "timestamp", NULL },
	{ TS(" 2022-10-28T07:26:19Z"), "timestamp", NULL },
	{ TS("22-10-28T07:26:19Z"), "timestamp", NULL },
	{ TS("2022-1-28T07:26:19Z"), "timestamp", NULL },
	{ TS("+2022-10-28T07:26:19Z"), "timestamp", NULL },
	{ TS("2022-10-28T07:26:19UTC"), "timestamp", NULL },
	{ TS("1666941979"), "timestamp", NULL },
	/* metadata */
	{ WITH("\"metadata\":\"x\""), "metadata", "object" },
	{ WITH("\"metadata\":[]"), "metadata", "object" },
	{ WITH("\"metadata\":5"), "metadata", "object" },
	{ WITH("\"metadata\":null"), "metadata", "object" },
	{ WITH("\"metadata\":{\"a\":1}"), "metadata.a", "string" },
	{ WITH("\"metadata\":{\"ok\":\"1\",\"revision\":null}"), "metadata.revision", "string" },
	{ WITH("\"metadata\":{\"x\":{\"y\":\"z\"}}"), "metadata.x", "string" },
	{ WITH("\"metadata\":{\"kustomize.toolkit.fluxcd.io/revision\":false}"),
	  "metadata.kustomize.toolkit.fluxcd.io/revision", "string" },
	{ WITH("\"metadata\":{\"caf\u00e9\":1}"), "metadata.caf\xc3\xa9", "string" },
	/* quoted input cut inside a UTF-8 character (fuzz/regressions/event) */
	{ "{" IO ",\"severity\":\"" A64 "aaaaa\xc3\xa9\xc3\xa9\"," MSG "}", "severity", NULL },
	{ "{" IO ",\"severity\":\"" A64 "\xe2\x9c\x93\"," MSG "}", "severity", NULL },
	{ TS("222222222222222222222222222222222222222222222222222222222222222\xc3\xa9"),
	  "timestamp", NULL },
	{ TS("2022-10-28T07:26:19\xf0\x9f\x9a\x80"), "timestamp", NULL },
	/* invalid bytes that jansson quotes in its "near" text */
	{ "{" IO "," SEV ",\"message\":\"abc\xff\"}", "", "invalid JSON" },
	{ "{" IO "," SEV ",\"message\":\"\xe2\x82\"}", "", "invalid JSON" },
	{ "{" IO "," SEV ",\"message\":\"\xf4\x90\x80\x80\"}", "", "invalid JSON" },
	{ "{\"\xc3\xa9\xc3\":1}", "", "invalid JSON" },
	{ "{" IO "," SEV ",\"message\":\"\xc3\xa9\xc3\xa9\xc3\xa9\" x}", "", "invalid JSON" },
	{ "\xc3\xa9\xe2\x9c\x93", "", "invalid JSON" },
};

/* 1 when s is well-formed UTF-8 (no overlongs, surrogates or > U+10FFFF). */
static int
utf8_ok(const char *str)
{
	const unsigned char *s = (const unsigned char *)str;

	while (*s != '\0') {
		unsigned c = *s, cp;
		size_t k;
		if (c < 0x80) {
			s++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			k = 1, cp = c & 0x1f;
		else if (c >= 0xe0 && c <= 0xef)
			k = 2, cp = c & 0x0f;
		else if (c >= 0xf0 && c <= 0xf4)
			k = 3, cp = c & 0x07;
		else
			return 0;
		for (size_t j = 1; j <= k; j++) {
			if ((s[j] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[j] & 0x3f);
		}
		if ((k == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		    (k == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return 0;
		s += k + 1;
	}
	return 1;
}

START_TEST(test_event_bad_table)
{
	const struct bad *b = &bad_cases[_i];
	char err[ERRLEN] = "", field[128] = "unset";
	struct event *ev;

	ev = parse_checked(b->json, strlen(b->json), err, sizeof(err), field, sizeof(field));
	ck_assert_msg(ev == NULL, "case %d accepted: %s", _i, b->json);
	ck_assert_msg(strcmp(field, b->field) == 0, "case %d: field \"%s\", want \"%s\" (%s)",
	    _i, field, b->field, err);
	ck_assert_msg(err[0] != '\0', "case %d: empty error", _i);
	ck_assert_msg(utf8_ok(err), "case %d: error not UTF-8: %s", _i, err);
	ck_assert_msg(utf8_ok(field), "case %d: field not UTF-8: %s", _i, field);
	if (b->errpart != NULL)
		ck_assert_msg(strstr(err, b->errpart) != NULL,
		    "case %d: error \"%s\" lacks \"%s\"", _i, err, b->errpart);
}
END_TEST

/* A raw NUL byte inside a string (the buffer has an explicit length). */
START_TEST(test_event_raw_nul)
{
	static const char body[] = "{" IO "," SEV ",\"message\":\"a\0b\"}";
	char err[ERRLEN], field[64];

	ck_assert_ptr_null(parse_checked(body, sizeof(body) - 1, err, sizeof(err), field,
	    sizeof(field)));
	ck_assert_str_eq(field, "");
	/* the same body up to the NUL is truncated JSON, also rejected */
	ck_assert_ptr_null(parse_checked(body, strlen(body), err, sizeof(err), field,
	    sizeof(field)));
}
END_TEST

/* The buffer need not be NUL-terminated: only len bytes are read. */
START_TEST(test_event_not_terminated)
{
	static const char body[] = "{" BASE "}garbage that is not JSON";
	char err[ERRLEN], field[64];
	size_t n = strlen("{" BASE "}");
	char *copy = util_malloc(n);   /* exact size: ASan catches overreads */
	struct event *ev;

	memcpy(copy, body, n);
	ev = parse_checked(copy, n, err, sizeof(err), field, sizeof(field));
	ck_assert_msg(ev != NULL, "%s", err);
	ck_assert_str_eq(ev->message, "m");
	event_free(ev);
	ck_assert_ptr_null(parse_checked(body, strlen(body), err, sizeof(err), field,
	    sizeof(field)));
	free(copy);
}
END_TEST

/* A field path longer than the caller's buffer is cut, never inside a
 * character (and so is the message). */
START_TEST(test_event_utf8_truncation)
{
	for (int pad = 0; pad < 4; pad++) {
		struct util_buf b = { 0 };
		char err[64], field[256];

		util_buf_puts(&b, "{" BASE ",\"metadata\":{\"");
		for (int i = 0; i < pad; i++)
			util_buf_puts(&b, "x");
		for (int i = 0; i < 200; i++)
			util_buf_puts(&b, "\xe2\x9c\x93");   /* 3 bytes each */
		util_buf_puts(&b, "\":5}}");
		ck_assert_ptr_null(parse_checked(b.data, b.len, err, sizeof(err), field,
		    sizeof(field)));
		ck_assert_uint_gt(strlen(field), 240);
		ck_assert_msg(strncmp(field, "metadata.", 9) == 0, "%s", field);
		ck_assert_msg(utf8_ok(field), "pad %d: field not UTF-8", pad);
		ck_assert_msg(utf8_ok(err), "pad %d: err not UTF-8", pad);
		util_buf_free(&b);
	}
}
END_TEST

/* Tiny error buffers truncate but never overflow; NULL buffers are allowed. */
START_TEST(test_event_small_buffers)
{
	static const char body[] = "{\"involvedObject\":{\"kind\":5,\"name\":\"n\"}}";
	char err[8], field[5];

	ck_assert_ptr_null(parse_checked(body, strlen(body), err, sizeof(err), field,
	    sizeof(field)));
	ck_assert_uint_eq(strlen(err), sizeof(err) - 1);
	ck_assert_str_eq(field, "invo");
	ck_assert_ptr_null(parse_checked(body, strlen(body), NULL, 0, NULL, 0));
}
END_TEST

/* ---- accepted variants -------------------------------------------------- */

static struct event *
parse_ok(const char *json)
{
	char err[ERRLEN], field[128];
	struct event *ev = parse_checked(json, strlen(json), err, sizeof(err), field,
	    sizeof(field));

	ck_assert_msg(ev != NULL, "rejected: %s (field \"%s\"): %s", err, field, json);
	return ev;
}

static const struct {
	const char *ts;
	long long want;
} ts_cases[] = {
	{ "2022-10-28T07:26:19Z", 1666941979LL },
	{ "2022-10-28t07:26:19z", 1666941979LL },
	{ "2022-10-28T07:26:19.123456789Z", 1666941979LL },
	{ "2022-10-28T07:26:19.5+00:00", 1666941979LL },
	{ "2022-10-28T09:26:19+02:00", 1666941979LL },
	{ "2022-10-28T02:26:19-05:00", 1666941979LL },
	{ "2022-10-28T07:26:19-00:00", 1666941979LL },
	{ "2022-10-27T23:56:19-07:30", 1666941979LL },
	{ "1970-01-01T00:00:00Z", 0 },
	{ "2006-01-02T15:04:05Z", 1136214245LL },
	{ "2024-02-29T00:00:00Z", 1709164800LL },
	{ "2000-02-29T00:00:00Z", 951782400LL },
	{ "2016-12-31T23:59:60Z", 1483228800LL },   /* leap second */
	{ "0001-01-01T00:00:00Z", -62135596800LL }, /* Go's zero time */
	{ "9999-12-31T23:59:59Z", 253402300799LL },
};

START_TEST(test_event_timestamp_ok)
{
	char json[512];
	struct event *ev;

	snprintf(json, sizeof(json), "{" BASE ",\"timestamp\":\"%s\"}", ts_cases[_i].ts);
	ev = parse_ok(json);
	ck_assert(ev->has_timestamp);
	ck_assert_msg((long long)ev->timestamp == ts_cases[_i].want, "%s: got %lld want %lld",
	    ts_cases[_i].ts, (long long)ev->timestamp, ts_cases[_i].want);
	ck_assert_str_eq(ev->timestamp_text, ts_cases[_i].ts);   /* as received */
	event_free(ev);
}
END_TEST

START_TEST(test_event_optional_absent)
{
	struct event *ev = parse_ok("{" BASE ",\"timestamp\":null}");

	ck_assert(!ev->has_timestamp);
	ck_assert_ptr_null(ev->timestamp_text);
	ck_assert_ptr_null(ev->namespace);
	ck_assert_ptr_null(ev->api_version);
	ck_assert_ptr_null(ev->uid);
	ck_assert_str_eq(ev->reason, "");
	ck_assert_str_eq(ev->reporting_controller, "");
	ck_assert_str_eq(ev->reporting_instance, "");
	ck_assert_uint_eq(ev->nmeta, 0);
	event_free(ev);

	ev = parse_ok("{" BASE "}");
	ck_assert(!ev->has_timestamp);
	event_free(ev);

	/* empty message and reason, empty metadata object */
	ev = parse_ok("{" IO "," SEV ",\"message\":\"\",\"reason\":\"\",\"metadata\":{}}");
	ck_assert_str_eq(ev->message, "");
	ck_assert_str_eq(ev->reason, "");
	ck_assert_uint_eq(ev->nmeta, 0);
	event_free(ev);
}
END_TEST

/* Unknown fields (top level and inside involvedObject) are ignored. */
START_TEST(test_event_unknown_fields)
{
	struct event *ev = parse_ok("{\"future\":{\"a\":[1,2,{\"b\":null}]},"
	    "\"involvedObject\":{\"kind\":\"K\",\"name\":\"n\",\"extra\":7}," SEV "," MSG
	    ",\"count\":3,\"series\":null}");

	ck_assert_str_eq(ev->kind, "K");
	event_free(ev);
}
END_TEST

/*
 * \u0000 is valid JSON and Go's json.Marshal writes it for a NUL byte (Helm
 * output in a message): accepted, and kept as U+FFFD in every field, metadata
 * key and value, so no C string stops at it. The body itself is not changed
 * (the queue stores it as received).
 */
#define FFFD "\xef\xbf\xbd"
START_TEST(test_event_nul_escape)
{
	struct event *ev = parse_ok("{\"involvedObject\":{\"kind\":\"K\",\"name\":\"n\\u0000m\","
	    "\"apiVersion\":\"kustomize.toolkit.fluxcd.io/v1\"},\"severity\":\"error\","
	    "\"message\":\"a\\u0000b\\u0000\",\"reason\":\"\\u0000\","
	    "\"metadata\":{\"kustomize.toolkit.fluxcd.io/rev\\u0000\":\"x\\u0000y\","
	    "\"k\\u0000\":\"\\u0000\"},\"x\\u0000\":[\"\\u0000\",{\"\\u0000\":\"\\u0000\"}]}");

	ck_assert(last_fast);
	ck_assert_str_eq(ev->name, "n" FFFD "m");
	ck_assert_str_eq(ev->message, "a" FFFD "b" FFFD);
	ck_assert_str_eq(ev->reason, FFFD);
	ck_assert_uint_eq(ev->nmeta, 2);
	ck_assert_str_eq(ev->meta[0].key, "k" FFFD);
	ck_assert_str_eq(ev->meta[0].value, FFFD);
	ck_assert_str_eq(ev->meta[1].key, "rev" FFFD);
	ck_assert_str_eq(ev->meta[1].value, "x" FFFD "y");
	ck_assert_int_eq(ev->meta[1].origin, EVENT_META_CONTROLLER);
	event_free(ev);

	/* the tester's probe, through the reference alone as well */
	ev = parse_ok("{\"involvedObject\":{\"kind\":\"K\",\"name\":\"n\"},\"severity\":\"error\","
	    "\"message\":\"a\\u0000b\"}");
	ck_assert_str_eq(ev->message, "a" FFFD "b");
	event_free(ev);
	/* U+FFFD sent as such is the same event */
	ev = parse_ok("{" IO "," SEV ",\"message\":\"a\\ufffdb\"}");
	ck_assert_str_eq(ev->message, "a" FFFD "b");
	event_free(ev);

	/* A raw NUL byte is not JSON, even after the value (jansson let it pass). */
	static const char raw[] = "{" IO "," SEV ",\"message\":\"m\"}\0";
	static const char inside[] = "{" IO "," SEV ",\"message\":\"m\0\"}";
	char err[ERRLEN];
	ck_assert_ptr_null(parse_checked(raw, sizeof(raw) - 1, err, sizeof(err), NULL, 0));
	ck_assert_msg(strstr(err, "NUL byte") != NULL, "%s", err);
	ck_assert_ptr_null(parse_checked(inside, sizeof(inside) - 1, err, sizeof(err), NULL, 0));
}
END_TEST

/*
 * Numbers outside long long or double in unknown fields, at any depth, are
 * ignored like any unknown value (Go's decoder never converts them). The
 * fast path handles them; the reference accepts them too.
 */
START_TEST(test_event_unknown_big_numbers)
{
	static const char *const bodies[] = {
		WITH("\"x\":99999999999999999999999"),
		WITH("\"x\":1e999"),
		WITH("\"x\":-1e999,\"y\":-99999999999999999999999"),
		WITH("\"x\":{\"a\":[1,[1e999]],\"b\":\"\\u0000\"}"),
		IOWITH("\"x\":99999999999999999999999"),
		"{\"x\":1e999," BASE ",\"metadata\":{\"k\":\"v\"},\"y\":1E+400}",
	};
	char err[ERRLEN], field[128];

	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		struct event *ev = parse_ok(bodies[i]);
		ck_assert_str_eq(ev->message, "m");
		ck_assert_msg(last_fast, "fast path gave up: %s", bodies[i]);
		event_free(ev);
		ev = event_parse_reference(bodies[i], strlen(bodies[i]), err, sizeof(err), field,
		    sizeof(field));
		ck_assert_msg(ev != NULL, "reference: %s: %s", err, bodies[i]);
		ck_assert_str_eq(ev->kind, "K");
		event_free(ev);
	}
}
END_TEST

static const struct {
	const char *sev;
	enum event_severity want;
} sev_cases[] = {
	{ "trace", EVENT_TRACE }, { "info", EVENT_INFO }, { "warning", EVENT_WARNING },
	{ "warn", EVENT_WARNING }, { "error", EVENT_ERROR },
};

START_TEST(test_event_severity)
{
	char json[256];
	struct event *ev;

	snprintf(json, sizeof(json), "{" IO ",\"severity\":\"%s\"," MSG "}", sev_cases[_i].sev);
	ev = parse_ok(json);
	ck_assert_int_eq(ev->severity, sev_cases[_i].want);
	event_free(ev);
	ck_assert_int_eq(event_severity_parse(sev_cases[_i].sev), sev_cases[_i].want);
}
END_TEST

START_TEST(test_event_severity_names)
{
	ck_assert_str_eq(event_severity_name(EVENT_TRACE), "trace");
	ck_assert_str_eq(event_severity_name(EVENT_INFO), "info");
	ck_assert_str_eq(event_severity_name(EVENT_WARNING), "warning");
	ck_assert_str_eq(event_severity_name(EVENT_ERROR), "error");
	for (int s = EVENT_TRACE; s <= EVENT_ERROR; s++)
		ck_assert_int_eq(event_severity_parse(event_severity_name(s)), s);
	ck_assert_int_eq(event_severity_parse("ERROR"), -1);
	ck_assert_int_eq(event_severity_parse(""), -1);
	ck_assert_int_eq(event_severity_parse("critical"), -1);
	ck_assert_int_eq(event_severity_parse(NULL), -1);
}
END_TEST

START_TEST(test_event_hidden)
{
	ck_assert(event_meta_hidden("token"));
	ck_assert(event_meta_hidden("checksum"));
	ck_assert(event_meta_hidden("digest"));
	ck_assert(!event_meta_hidden("revision"));
	ck_assert(!event_meta_hidden("Token"));
	ck_assert(!event_meta_hidden("tokens"));
	ck_assert(!event_meta_hidden(""));
}
END_TEST

/* ---- metadata normalization --------------------------------------------- */

static const struct norm {
	const char *api;        /* involvedObject.apiVersion, or NULL */
	const char *meta;       /* the metadata object's members */
	size_t n;
	struct meta_want want[4];
} norm_cases[] = {
	/* controller beats plain beats annotation, in any document order */
	{ "helm.toolkit.fluxcd.io/v2",
	  "\"event.toolkit.fluxcd.io/revision\":\"a\",\"revision\":\"p\","
	  "\"helm.toolkit.fluxcd.io/revision\":\"c\"",
	  1, { { "revision", "c", EVENT_META_CONTROLLER } } },
	{ "helm.toolkit.fluxcd.io/v2",
	  "\"helm.toolkit.fluxcd.io/revision\":\"c\",\"revision\":\"p\","
	  "\"event.toolkit.fluxcd.io/revision\":\"a\"",
	  1, { { "revision", "c", EVENT_META_CONTROLLER } } },
	{ NULL, "\"event.toolkit.fluxcd.io/revision\":\"a\",\"revision\":\"p\"",
	  1, { { "revision", "p", EVENT_META_PLAIN } } },
	{ NULL, "\"revision\":\"p\",\"event.toolkit.fluxcd.io/revision\":\"a\"",
	  1, { { "revision", "p", EVENT_META_PLAIN } } },
	{ "v1", "\"event.toolkit.fluxcd.io/revision\":\"a\"",
	  1, { { "revision", "a", EVENT_META_ANNOTATION } } },
	/* no apiVersion, no group: only the annotation prefix goes, a
	 * *.toolkit.fluxcd.io/ key is kept as it is */
	{ NULL, "\"revision\":\"p\",\"kustomize.toolkit.fluxcd.io/revision\":\"c\"",
	  2, { { "kustomize.toolkit.fluxcd.io/revision", "c", EVENT_META_PLAIN },
	       { "revision", "p", EVENT_META_PLAIN } } },
	{ NULL, "\"source.toolkit.fluxcd.io/digest\":\"d\",\"token\":\"t\"",
	  2, { { "source.toolkit.fluxcd.io/digest", "d", EVENT_META_PLAIN },
	       { "token", "t", EVENT_META_PLAIN } } },
	{ NULL, "\"kustomize.toolkit.fluxcd.io/revision\":\"c\","
	  "\"event.toolkit.fluxcd.io/revision\":\"a\"",
	  2, { { "kustomize.toolkit.fluxcd.io/revision", "c", EVENT_META_PLAIN },
	       { "revision", "a", EVENT_META_ANNOTATION } } },
	/* apiVersion present but of another group: kept as is */
	{ "v1", "\"kustomize.toolkit.fluxcd.io/revision\":\"c\"",
	  1, { { "kustomize.toolkit.fluxcd.io/revision", "c", EVENT_META_PLAIN } } },
	{ "source.toolkit.fluxcd.io/v1", "\"kustomize.toolkit.fluxcd.io/revision\":\"c\"",
	  1, { { "kustomize.toolkit.fluxcd.io/revision", "c", EVENT_META_PLAIN } } },
	/* a group that is only a prefix of the key's group is not the group */
	{ "helm.toolkit.fluxcd.io/v2", "\"helm.toolkit.fluxcd.io.x/k\":\"v\"",
	  1, { { "helm.toolkit.fluxcd.io.x/k", "v", EVENT_META_PLAIN } } },
	/* non-Flux prefixes and degenerate keys are kept */
	{ NULL, "\"example.com/owner\":\"o\"",
	  1, { { "example.com/owner", "o", EVENT_META_PLAIN } } },
	{ NULL, "\".toolkit.fluxcd.io/x\":\"v\"",
	  1, { { ".toolkit.fluxcd.io/x", "v", EVENT_META_PLAIN } } },
	{ NULL, "\"event.toolkit.fluxcd.io/\":\"v\"",
	  1, { { "event.toolkit.fluxcd.io/", "v", EVENT_META_PLAIN } } },
	{ "apps/v1", "\"apps/\":\"v\",\"apps/x\":\"y\"",
	  2, { { "apps/", "v", EVENT_META_PLAIN }, { "x", "y", EVENT_META_CONTROLLER } } },
	/* sorted by strcmp (uppercase before lowercase), values may be empty */
	{ NULL, "\"b\":\"2\",\"a\":\"1\",\"C\":\"\",\"c\":\"3\"",
	  4, { { "C", "", EVENT_META_PLAIN }, { "a", "1", EVENT_META_PLAIN },
	       { "b", "2", EVENT_META_PLAIN }, { "c", "3", EVENT_META_PLAIN } } },
	/* two controller-looking groups without apiVersion: both kept */
	{ NULL, "\"b.toolkit.fluxcd.io/k\":\"first\",\"a.toolkit.fluxcd.io/k\":\"second\"",
	  2, { { "a.toolkit.fluxcd.io/k", "second", EVENT_META_PLAIN },
	       { "b.toolkit.fluxcd.io/k", "first", EVENT_META_PLAIN } } },
};

START_TEST(test_event_normalize)
{
	const struct norm *c = &norm_cases[_i];
	char json[1024];
	struct event *ev;

	if (c->api != NULL)
		snprintf(json, sizeof(json), "{\"involvedObject\":{\"kind\":\"K\",\"name\":\"n\","
		    "\"apiVersion\":\"%s\"}," SEV "," MSG ",\"metadata\":{%s}}", c->api, c->meta);
	else
		snprintf(json, sizeof(json), "{" BASE ",\"metadata\":{%s}}", c->meta);
	ev = parse_ok(json);
	ck_assert_msg(ev->nmeta == c->n, "case %d: %zu entries, want %zu", _i, ev->nmeta, c->n);
	for (size_t i = 0; i < c->n; i++) {
		ck_assert_msg(strcmp(ev->meta[i].key, c->want[i].key) == 0,
		    "case %d: key %zu \"%s\", want \"%s\"", _i, i, ev->meta[i].key, c->want[i].key);
		ck_assert_msg(strcmp(ev->meta[i].value, c->want[i].value) == 0,
		    "case %d: %s = \"%s\", want \"%s\"", _i, ev->meta[i].key, ev->meta[i].value,
		    c->want[i].value);
		ck_assert_int_eq(ev->meta[i].origin, c->want[i].origin);
	}
	event_free(ev);
}
END_TEST

/* Many metadata entries (beyond the parser's on-stack scratch space). */
START_TEST(test_event_many_metadata)
{
	struct util_buf b = { 0 };
	struct event *ev;
	char key[32];

	util_buf_puts(&b, "{" BASE ",\"metadata\":{");
	for (int i = 999; i >= 0; i--)
		util_buf_printf(&b, "%s\"k%04d\":\"v%d\"", i == 999 ? "" : ",", i, i);
	util_buf_puts(&b, "}}");
	ev = parse_ok(b.data);
	ck_assert_uint_eq(ev->nmeta, 1000);
	for (size_t i = 0; i < ev->nmeta; i++) {
		snprintf(key, sizeof(key), "k%04zu", i);
		ck_assert_str_eq(ev->meta[i].key, key);
	}
	ck_assert_str_eq(event_meta_get(ev, "k0500"), "v500");
	ck_assert_ptr_null(event_meta_get(ev, "k1000"));
	event_free(ev);
	util_buf_free(&b);
}
END_TEST

/* ---- limits ------------------------------------------------------------- */

/* Depth counts every object and array; brackets inside strings do not. */
static char *
nested(int depth)
{
	struct util_buf b = { 0 };

	/* the event object is level 1, "x" holds depth - 1 arrays */
	util_buf_puts(&b, "{" BASE ",\"x\":");
	for (int i = 1; i < depth; i++)
		util_buf_puts(&b, "[");
	util_buf_puts(&b, "0");
	for (int i = 1; i < depth; i++)
		util_buf_puts(&b, "]");
	util_buf_puts(&b, "}");
	return b.data;
}

START_TEST(test_event_depth)
{
	char err[ERRLEN], field[64];
	char *s;
	struct event *ev;

	s = nested(EVENT_MAX_DEPTH);
	ev = parse_ok(s);
	event_free(ev);
	free(s);

	s = nested(EVENT_MAX_DEPTH + 1);
	ck_assert_ptr_null(parse_checked(s, strlen(s), err, sizeof(err), field, sizeof(field)));
	ck_assert_str_eq(field, "");
	ck_assert_ptr_nonnull(strstr(err, "nesting"));
	free(s);

	/* 10,000 deep, unterminated, and 10,000 deep objects: rejected, no crash */
	s = nested(10000);
	ck_assert_ptr_null(parse_checked(s, strlen(s), err, sizeof(err), field, sizeof(field)));
	s[strlen(s) / 2] = '\0';
	ck_assert_ptr_null(parse_checked(s, strlen(s), err, sizeof(err), field, sizeof(field)));
	free(s);
	{
		struct util_buf b = { 0 };
		for (int i = 0; i < 10000; i++)
			util_buf_puts(&b, "{\"a\":");
		ck_assert_ptr_null(parse_checked(b.data, b.len, err, sizeof(err), field,
		    sizeof(field)));
		ck_assert_str_eq(field, "");
		util_buf_free(&b);
	}

	/* brackets and escaped quotes inside strings do not count */
	{
		struct util_buf b = { 0 };
		util_buf_puts(&b, "{" IO "," SEV ",\"message\":\"\\\"");
		for (int i = 0; i < 1000; i++)
			util_buf_puts(&b, "[{");
		util_buf_puts(&b, "\\\\\"}");
		ev = parse_ok(b.data);
		ck_assert_uint_eq(strlen(ev->message), 1 + 2000 + 1);
		ck_assert(ev->message[0] == '"');
		event_free(ev);
		util_buf_free(&b);
	}
}
END_TEST

START_TEST(test_event_huge_message)
{
	const size_t n = 10u * 1024 * 1024;
	struct util_buf b = { 0 };
	char *big = util_malloc(n);
	struct event *ev;

	for (size_t i = 0; i < n; i++)
		big[i] = (char)('a' + i % 26);
	util_buf_puts(&b, "{" IO "," SEV ",\"message\":\"");
	util_buf_append(&b, big, n);
	util_buf_puts(&b, "\"}");
	ev = parse_ok(b.data);
	ck_assert_uint_eq(strlen(ev->message), n);
	ck_assert(memcmp(ev->message, big, n) == 0);
	event_free(ev);
	util_buf_free(&b);
	free(big);
}
END_TEST

/* Escapes and multi-byte UTF-8 come through decoded. */
START_TEST(test_event_unicode)
{
	struct event *ev = parse_ok("{" IO "," SEV ",\"message\":\"caf\\u00e9 \xe2\x9c\x93 "
	    "\\ud83d\\ude80 tab\\t\\\"q\\\"\",\"reason\":\"\xc3\xa9t\xc3\xa9\"}");

	ck_assert_str_eq(ev->message, "caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x9a\x80 tab\t\"q\"");
	ck_assert_str_eq(ev->reason, "\xc3\xa9t\xc3\xa9");
	event_free(ev);
}
END_TEST

/* ---- the grammar the fast path tokenizes -------------------------------- */

enum fast_want { FAST_ANY, FAST_YES, FAST_NO };

#define ESC(m) "{" IO "," SEV ",\"message\":\"" m "\"}"
#define UNK(v) WITH("\"x\":" v)
#define KEY(k) WITH("\"" k "\":1")
#define MKEY(k) WITH("\"metadata\":{\"" k "\":\"v\"}")

/*
 * Bodies with their expected fate: accepted or not by the reference (and so
 * by event_parse), whether the fast path must handle them (FAST_YES), must
 * give up (FAST_NO) or may do either, and for accepted ones with a message,
 * the decoded message. parse_checked() does the comparison itself.
 */
static const struct gcase {
	const char *json;
	bool ok;
	enum fast_want fast;
	const char *message;
} grammar_cases[] = {
	/* escapes, decoded */
	{ ESC("\\\""), true, FAST_YES, "\"" },
	{ ESC("\\\\"), true, FAST_YES, "\\" },
	{ ESC("\\/"), true, FAST_YES, "/" },
	{ ESC("a\\b\\f\\n\\r\\tz"), true, FAST_YES, "a\b\f\n\r\tz" },
	{ ESC("caf\\u00e9 caf\\u00E9"), true, FAST_YES, "caf\xc3\xa9 caf\xc3\xa9" },
	{ ESC("\\u0041\\u007f\\u0001"), true, FAST_YES, "A\x7f\x01" },
	{ ESC("\\u0080\\u07ff\\u0800\\u20ac\\uffff"), true, FAST_YES,
	  "\xc2\x80\xdf\xbf\xe0\xa0\x80\xe2\x82\xac\xef\xbf\xbf" },
	{ ESC("\\ud83d\\ude80\\uD83D\\uDE80"), true, FAST_YES,
	  "\xf0\x9f\x9a\x80\xf0\x9f\x9a\x80" },
	{ ESC("\\ud800\\udc00\\udbff\\udfff"), true, FAST_YES,
	  "\xf0\x90\x80\x80\xf4\x8f\xbf\xbf" },
	{ ESC("\\uD7FF\\uE000"), true, FAST_YES, "\xed\x9f\xbf\xee\x80\x80" },
	{ ESC("x\\\\u0041"), true, FAST_YES, "x\\u0041" },
	/* escapes in keys and in the known values */
	{ "{\"invol\\u0076edObject\":{\"k\\u0069nd\":\"K\",\"name\":\"n\\/m\"}," SEV "," MSG "}",
	  true, FAST_YES, "m" },
	{ "{" IO ",\"severity\":\"\\u0069nfo\"," MSG "}", true, FAST_YES, "m" },
	{ TS("2022\\u002d10-28T07:26:19Z"), true, FAST_YES, "m" },
	{ WITH("\"metadata\":{\"re\\u0076ision\":\"a\\tb\",\"event.toolkit.fluxcd.io\\/k\":\"\\u00e9\"}"),
	  true, FAST_YES, "m" },
	/* bad escapes */
	{ ESC("\\ud83d"), false, FAST_NO, NULL },
	{ ESC("\\ud83dx"), false, FAST_NO, NULL },
	{ ESC("\\ude80"), false, FAST_NO, NULL },
	{ ESC("\\ude80\\ud83d"), false, FAST_NO, NULL },
	{ ESC("\\ud83d\\u0041"), false, FAST_NO, NULL },
	{ ESC("\\ud83d\\ud83d"), false, FAST_NO, NULL },
	{ ESC("\\ud83d\\n"), false, FAST_NO, NULL },
	/* \u0000: U+FFFD, as both parsers decode it */
	{ ESC("\\u0000"), true, FAST_YES, "\xef\xbf\xbd" },
	{ ESC("a\\u0000b\\u0000"), true, FAST_YES, "a\xef\xbf\xbd" "b\xef\xbf\xbd" },
	{ ESC("a\\\\u0000"), true, FAST_YES, "a\\u0000" },
	{ KEY("k\\u0000"), true, FAST_YES, "m" },
	{ UNK("\"\\u0000\""), true, FAST_YES, "m" },
	{ UNK("{\"\\u0000\":[\"\\u0000\"]}"), true, FAST_YES, "m" },
	{ ESC("\\u00g0"), false, FAST_NO, NULL },
	{ ESC("\\u00e"), false, FAST_NO, NULL },
	{ ESC("\\U00e9"), false, FAST_NO, NULL },
	{ ESC("\\x41"), false, FAST_NO, NULL },
	{ ESC("\\'"), false, FAST_NO, NULL },
	{ ESC("\\a"), false, FAST_NO, NULL },
	{ ESC("\\ "), false, FAST_NO, NULL },
	{ "{" IO "," SEV ",\"message\":\"\\", false, FAST_NO, NULL },
	{ "{" IO "," SEV ",\"message\":\"\\u12", false, FAST_NO, NULL },
	{ "{" IO "," SEV ",\"message\":\"abc", false, FAST_NO, NULL },
	/* raw control characters; DEL is not one */
	{ ESC("a\tb"), false, FAST_NO, NULL },
	{ ESC("a\nb"), false, FAST_NO, NULL },
	{ ESC("a\x01"), false, FAST_NO, NULL },
	{ ESC("a\x1f"), false, FAST_NO, NULL },
	{ ESC("a\x7f"), true, FAST_YES, "a\x7f" },
	/* numbers, literals and nesting in unknown fields */
	{ UNK("0"), true, FAST_YES, "m" },
	{ UNK("-0"), true, FAST_YES, "m" },
	{ UNK("-0.0"), true, FAST_YES, "m" },
	{ UNK("1.5E-3"), true, FAST_YES, "m" },
	{ UNK("-12.5e+3"), true, FAST_YES, "m" },
	{ UNK("1e10"), true, FAST_YES, "m" },
	{ UNK("0.000001"), true, FAST_YES, "m" },
	{ UNK("1E-400"), true, FAST_YES, "m" },   /* underflow: jansson takes it */
	{ UNK("123456789012345678"), true, FAST_YES, "m" },
	{ UNK("-123456789012345678"), true, FAST_YES, "m" },
	{ UNK("1e299"), true, FAST_YES, "m" },
	{ UNK("1234567890123456789"), true, FAST_ANY, "m" },
	{ UNK("9223372036854775807"), true, FAST_ANY, "m" },
	{ UNK("-9223372036854775808"), true, FAST_ANY, "m" },
	{ UNK("1e308"), true, FAST_ANY, "m" },
	{ UNK("0e999999"), true, FAST_ANY, "m" },
	/* beyond long long and double: ignored like any unknown value (SPEC 5) */
	{ UNK("9223372036854775808"), true, FAST_YES, "m" },
	{ UNK("-9223372036854775809"), true, FAST_YES, "m" },
	{ UNK("99999999999999999999999"), true, FAST_YES, "m" },
	{ UNK("1e400"), true, FAST_YES, "m" },
	{ UNK("-1e400"), true, FAST_YES, "m" },
	{ UNK("1.5e309"), true, FAST_YES, "m" },
	{ UNK("1e999999999999999999999"), true, FAST_YES, "m" },
	{ UNK("[1e999,{\"a\":[-99999999999999999999]}]"), true, FAST_YES, "m" },
	{ IOWITH("\"x\":{\"y\":1e999}"), true, FAST_YES, "m" },
	{ UNK("01"), false, FAST_NO, NULL },
	{ UNK("-01"), false, FAST_NO, NULL },
	{ UNK("00"), false, FAST_NO, NULL },
	{ UNK("1."), false, FAST_NO, NULL },
	{ UNK("1.e5"), false, FAST_NO, NULL },
	{ UNK(".5"), false, FAST_NO, NULL },
	{ UNK("+1"), false, FAST_NO, NULL },
	{ UNK("-"), false, FAST_NO, NULL },
	{ UNK("1e"), false, FAST_NO, NULL },
	{ UNK("1e+"), false, FAST_NO, NULL },
	{ UNK("0x10"), false, FAST_NO, NULL },
	{ UNK("1_000"), false, FAST_NO, NULL },
	{ UNK("Infinity"), false, FAST_NO, NULL },
	{ UNK("-Infinity"), false, FAST_NO, NULL },
	{ UNK("NaN"), false, FAST_NO, NULL },
	{ UNK("true"), true, FAST_YES, "m" },
	{ UNK("false"), true, FAST_YES, "m" },
	{ UNK("null"), true, FAST_YES, "m" },
	{ UNK("tru"), false, FAST_NO, NULL },
	{ UNK("truee"), false, FAST_NO, NULL },
	{ UNK("True"), false, FAST_NO, NULL },
	{ UNK("nul"), false, FAST_NO, NULL },
	{ UNK("NULL"), false, FAST_NO, NULL },
	{ UNK("[]"), true, FAST_YES, "m" },
	{ UNK("{}"), true, FAST_YES, "m" },
	{ UNK("[1,\"a\",true,null,[],{},[[{\"k\":[-1.5e3]}]]]"), true, FAST_YES, "m" },
	{ UNK("{\"a\":{\"b\":{\"c\":[{\"d\":null}]}}}"), true, FAST_YES, "m" },
	{ UNK("[1,]"), false, FAST_NO, NULL },
	{ UNK("[,1]"), false, FAST_NO, NULL },
	{ UNK("[1 2]"), false, FAST_NO, NULL },
	{ UNK("[1"), false, FAST_NO, NULL },
	{ UNK("{\"a\":1,}"), false, FAST_NO, NULL },
	{ UNK("{,\"a\":1}"), false, FAST_NO, NULL },
	{ UNK("{\"a\":1,,\"b\":2}"), false, FAST_NO, NULL },
	{ UNK("{\"a\" 1}"), false, FAST_NO, NULL },
	{ UNK("{\"a\"}"), false, FAST_NO, NULL },
	{ UNK("{\"a\":}"), false, FAST_NO, NULL },
	{ UNK("{1:2}"), false, FAST_NO, NULL },
	{ UNK("{'a':1}"), false, FAST_NO, NULL },
	{ UNK("]"), false, FAST_NO, NULL },
	{ "{" BASE ",\"x\"}", false, FAST_NO, NULL },
	{ "{" BASE ";\"x\":1}", false, FAST_NO, NULL },
	/* whitespace */
	{ " \t\r\n{ \"involvedObject\" :\n{\t\"kind\"\r:\"K\" , \"name\":\"n\"\n}\n,"
	  "\"severity\" : \"info\",\"message\":\"m\" , \"x\" : [ 1 , { } , [ ] ] }\r\n\t ",
	  true, FAST_YES, "m" },
	{ "\f{" BASE "}", false, FAST_NO, NULL },
	{ "{" BASE "}\v", false, FAST_NO, NULL },
	{ "{" BASE ",\"x\":\f1}", false, FAST_NO, NULL },
	{ "\xc2\xa0{" BASE "}", false, FAST_NO, NULL },
	{ "   ", false, FAST_NO, NULL },
	/* a byte order mark is not whitespace to jansson; inside a string it is text */
	{ "\xef\xbb\xbf{" BASE "}", false, FAST_NO, NULL },
	{ ESC("\xef\xbb\xbfm"), true, FAST_YES, "\xef\xbb\xbfm" },
	/* trailing garbage */
	{ "{" BASE "}x", false, FAST_NO, NULL },
	{ "{" BASE "} {}", false, FAST_NO, NULL },
	{ "{" BASE "},", false, FAST_NO, NULL },
	{ "{" BASE "} // c", false, FAST_NO, NULL },
	{ "{" BASE "}\xff", false, FAST_NO, NULL },
	/* UTF-8 in values: the boundaries of each length, 4-byte characters */
	{ ESC("\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbf"
	      "\xf0\x90\x80\x80\xf0\x9f\x9a\x80\xf4\x8f\xbf\xbf"), true, FAST_YES,
	  "\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbf"
	  "\xf0\x90\x80\x80\xf0\x9f\x9a\x80\xf4\x8f\xbf\xbf" },
	{ ESC("\x80"), false, FAST_NO, NULL },
	{ ESC("\xbf"), false, FAST_NO, NULL },
	{ ESC("\xc3"), false, FAST_NO, NULL },
	{ ESC("\xc3\x28"), false, FAST_NO, NULL },
	{ ESC("\xc0\x80"), false, FAST_NO, NULL },
	{ ESC("\xc1\xbf"), false, FAST_NO, NULL },
	{ ESC("\xe0\x80\xaf"), false, FAST_NO, NULL },
	{ ESC("\xe0\x9f\xbf"), false, FAST_NO, NULL },
	{ ESC("\xed\xa0\x80"), false, FAST_NO, NULL },
	{ ESC("\xed\xbf\xbf"), false, FAST_NO, NULL },
	{ ESC("\xe2\x82"), false, FAST_NO, NULL },
	{ ESC("\xf0\x80\x80\xaf"), false, FAST_NO, NULL },
	{ ESC("\xf0\x8f\xbf\xbf"), false, FAST_NO, NULL },
	{ ESC("\xf4\x90\x80\x80"), false, FAST_NO, NULL },
	{ ESC("\xf5\x80\x80\x80"), false, FAST_NO, NULL },
	{ ESC("\xf8\x88\x80\x80\x80"), false, FAST_NO, NULL },
	{ ESC("\xfe"), false, FAST_NO, NULL },
	{ ESC("\xf0\x9f\x9a"), false, FAST_NO, NULL },
	{ "{" IO "," SEV ",\"message\":\"\xf0\x9f", false, FAST_NO, NULL },
	/* UTF-8 in keys: top level, metadata, nested */
	{ KEY("\xc3\xa9\xf0\x9f\x9a\x80"), true, FAST_YES, "m" },
	{ KEY("\xff"), false, FAST_NO, NULL },
	{ KEY("\xc0\xaf"), false, FAST_NO, NULL },
	{ KEY("\xed\xa0\x80"), false, FAST_NO, NULL },
	{ KEY("\xf4\x90\x80\x80"), false, FAST_NO, NULL },
	{ MKEY("caf\xc3\xa9"), true, FAST_YES, "m" },
	{ MKEY("caf\xc3"), false, FAST_NO, NULL },
	{ MKEY("\xe0\x80\x80"), false, FAST_NO, NULL },
	{ UNK("{\"\xf0\x9f\x9a\x80\":1}"), true, FAST_YES, "m" },
	{ UNK("{\"\xf0\x9f\x9a\":1}"), false, FAST_NO, NULL },
	{ UNK("[\"\xc1\x81\"]"), false, FAST_NO, NULL },
	/* duplicate keys at every level, compared decoded: accepted, the last
	 * value wins (as Go's encoding/json), by both parsers */
	{ "{" BASE ",\"message\":\"m2\"}", true, FAST_YES, "m2" },
	{ "{" BASE ",\"mess\\u0061ge\":\"m3\"}", true, FAST_YES, "m3" },
	{ "{" BASE ",\"x\":1,\"x\":2}", true, FAST_YES, "m" },
	{ "{" BASE ",\"x\":1,\"\\u0078\":2}", true, FAST_YES, "m" },
	{ "{" BASE ",\"\\u00e9\":1,\"\xc3\xa9\":2}", true, FAST_YES, "m" },
	{ "{" BASE ",\"involved\\u004fbject\":{}}", false, FAST_NO, NULL },
	{ IOWITH("\"name\":\"n2\""), true, FAST_YES, "m" },
	{ IOWITH("\"extra\":1,\"extra\":2"), true, FAST_YES, "m" },
	{ IOWITH("\"extra\":{\"a\":1,\"a\":1}"), true, FAST_YES, "m" },
	{ WITH("\"metadata\":{\"k\":\"1\",\"k\":\"1\"}"), true, FAST_YES, "m" },
	{ WITH("\"metadata\":{\"k\":\"1\",\"\\u006b\":\"2\"}"), true, FAST_YES, "m" },
	{ UNK("{\"a\":1,\"b\":2,\"a\":3}"), true, FAST_YES, "m" },
	{ UNK("[{\"a\":1},{\"b\":[{\"c\":1,\"c\":2}]}]"), true, FAST_YES, "m" },
	{ UNK("{\"a\":{\"b\":{\"c\":{\"d\":1,\"d\":1}}}}"), true, FAST_YES, "m" },
	{ UNK("{\"a\":{\"b\":1},\"a\":2}"), true, FAST_YES, "m" },
	{ UNK("{\"a\":1,\"b\":{\"c\":1},\"a\":2}"), true, FAST_YES, "m" },
	{ "{" BASE ",\"x\":{\"y\":[{}]},\"x\":1}", true, FAST_YES, "m" },
	/* the same key in different objects is fine */
	{ UNK("{\"a\":{\"a\":{\"a\":1}},\"b\":{\"a\":1}}"), true, FAST_YES, "m" },
	{ UNK("[{\"a\":1},{\"a\":1}]"), true, FAST_YES, "m" },
	{ "{" BASE ",\"kind\":\"top\",\"name\":{\"message\":1}}", true, FAST_YES, "m" },
	{ WITH("\"metadata\":{\"message\":\"x\"},\"x\":{\"metadata\":1}"), true, FAST_YES,
	  "m" },
	/* known fields of the wrong type: the reference rejects, the fast path gives up */
	{ TS("2022-10-28T07:26:19Z\\u0000"), false, FAST_NO, NULL },   /* ...Z\uFFFD */
	{ "{" IO ",\"severity\":\"info\\u0000\"," MSG "}", false, FAST_NO, NULL },
	{ WITH("\"timestamp\":nul"), false, FAST_NO, NULL },
	{ WITH("\"timestamp\":null"), true, FAST_YES, "m" },
	{ WITH("\"metadata\":{}"), true, FAST_YES, "m" },
	{ "{\"involvedObject\":{}}", false, FAST_NO, NULL },
	{ "{}", false, FAST_NO, NULL },
	/* a 1-byte body, empty and whitespace-only objects */
	{ "{", false, FAST_NO, NULL },
	{ "{ }", false, FAST_NO, NULL },
};

START_TEST(test_event_grammar)
{
	const struct gcase *c = &grammar_cases[_i];
	char err[ERRLEN], field[128];
	struct event *ev;

	ev = parse_checked(c->json, strlen(c->json), err, sizeof(err), field, sizeof(field));
	ck_assert_msg((ev != NULL) == c->ok, "case %d: %s (%s): %s", _i,
	    ev != NULL ? "accepted" : "rejected", err, c->json);
	if (c->fast != FAST_ANY)
		ck_assert_msg(last_fast == (c->fast == FAST_YES), "case %d: fast path %s: %s",
		    _i, last_fast ? "handled it" : "gave up", c->json);
	if (ev != NULL && c->message != NULL)
		check_str("message", ev->message, c->message);
	event_free(ev);
}
END_TEST

/* Bodies with NUL bytes or built at run time. */
START_TEST(test_event_grammar_built)
{
	static const char nul_after[] = "{" BASE "}\0";
	static const char nul_ws[] = "{" BASE "\0}";
	char err[ERRLEN], field[128];
	struct util_buf b = { 0 };
	struct event *ev;
	char *s;

	/* NUL after the object and between tokens */
	ck_assert_ptr_null(parse_checked(nul_after, sizeof(nul_after) - 1, err, sizeof(err),
	    field, sizeof(field)));
	ck_assert_ptr_null(parse_checked(nul_ws, sizeof(nul_ws) - 1, err, sizeof(err),
	    field, sizeof(field)));
	/* empty input, and a zero-length view of a valid body */
	ck_assert_ptr_null(parse_checked("", 0, err, sizeof(err), field, sizeof(field)));
	ck_assert_ptr_null(parse_checked("{" BASE "}", 0, err, sizeof(err), field,
	    sizeof(field)));

	/* nesting: EVENT_MAX_DEPTH levels are handled by the fast path, one more is not */
	s = nested(EVENT_MAX_DEPTH);
	ev = parse_checked(s, strlen(s), err, sizeof(err), field, sizeof(field));
	ck_assert_ptr_nonnull(ev);
	ck_assert(last_fast);
	event_free(ev);
	free(s);
	s = nested(EVENT_MAX_DEPTH + 1);
	ck_assert_ptr_null(parse_checked(s, strlen(s), err, sizeof(err), field, sizeof(field)));
	ck_assert_ptr_nonnull(strstr(err, "nesting"));
	free(s);
	/* the same with objects in involvedObject and metadata values */
	util_buf_puts(&b, "{" SEV "," MSG ",\"involvedObject\":{\"kind\":\"K\",\"name\":\"n\",\"x\":");
	/* levels: the event, involvedObject, 29 times {"a":, then {} */
	for (int i = 3; i < EVENT_MAX_DEPTH; i++)
		util_buf_puts(&b, "{\"a\":");
	util_buf_puts(&b, "{}");
	for (int i = 3; i < EVENT_MAX_DEPTH; i++)
		util_buf_puts(&b, "}");
	util_buf_puts(&b, "}}");
	ev = parse_checked(b.data, b.len, err, sizeof(err), field, sizeof(field));
	ck_assert_msg(ev != NULL, "%s", err);
	ck_assert(last_fast);
	event_free(ev);
	util_buf_free(&b);
	util_buf_puts(&b, "{" BASE ",\"metadata\":{\"k\":[[\"v\"]]}}");
	ck_assert_ptr_null(parse_checked(b.data, b.len, err, sizeof(err), field, sizeof(field)));
	ck_assert_str_eq(field, "metadata.k");
	util_buf_free(&b);

	/* escaped strings beyond the fast path's on-stack scratch space */
	util_buf_puts(&b, "{" IO "," SEV ",\"message\":\"");
	for (int i = 0; i < 3000; i++)
		util_buf_puts(&b, "\\n\\u00e9");
	util_buf_puts(&b, "\",\"metadata\":{");
	for (int i = 0; i < 60; i++)
		util_buf_printf(&b, "%s\"k\\u00e9%02d\":\"\\t%d\"", i ? "," : "", i, i);
	util_buf_puts(&b, "}}");
	ev = parse_checked(b.data, b.len, err, sizeof(err), field, sizeof(field));
	ck_assert_msg(ev != NULL, "%s", err);
	ck_assert(last_fast);
	ck_assert_uint_eq(strlen(ev->message), 3000 * 3);
	ck_assert_uint_eq(ev->nmeta, 60);
	ck_assert_str_eq(event_meta_get(ev, "k\xc3\xa9" "59"), "\t59");
	event_free(ev);
	util_buf_free(&b);

	/* many keys in one unknown object: equal results whoever handles it */
	util_buf_puts(&b, "{" BASE ",\"x\":{");
	for (int i = 0; i < 300; i++)
		util_buf_printf(&b, "%s\"k%d\":%d", i ? "," : "", i, i);
	util_buf_puts(&b, "}}");
	ev = parse_checked(b.data, b.len, err, sizeof(err), field, sizeof(field));
	ck_assert_msg(ev != NULL, "%s", err);
	event_free(ev);
	util_buf_puts(&b, "");
	b.data[b.len - 2] = '\0';   /* cut the closing braces: now a duplicate */
	b.len -= 2;
	util_buf_puts(&b, ",\"k299\":1}}");
	ev = parse_checked(b.data, b.len, err, sizeof(err), field, sizeof(field));
	ck_assert_msg(ev != NULL, "%s", err);
	event_free(ev);
	util_buf_free(&b);
}
END_TEST

/*
 * Duplicate keys are not an error (SPEC §4's 400 list has none, and Flux's Go
 * decoders take them): the last member of a name wins, a whole object for
 * involvedObject and metadata. parse_checked() holds both parsers to the
 * same event; fast: whether the fast path builds it too.
 */
static const struct dup {
	const char *json;
	bool fast;
	enum event_severity severity;
	const char *name, *namespace, *reason, *revision;
	bool has_ts;
	size_t nmeta;
} dup_cases[] = {
	/* severity: the last one, whichever level */
	{ WITH("\"severity\":\"error\""), true, EVENT_ERROR, "n", NULL, "", NULL, false, 0 },
	{ "{\"severity\":\"error\"," BASE "}", true, EVENT_INFO, "n", NULL, "", NULL, false, 0 },
	/* a first value the last one overrides needs no check of its own */
	{ "{\"severity\":\"fatal\"," BASE "}", true, EVENT_INFO, "n", NULL, "", NULL, false, 0 },
	{ "{\"reason\":7," BASE ",\"reason\":\"b\"}", false, EVENT_INFO, "n", NULL, "b", NULL,
	  false, 0 },
	/* reason */
	{ WITH("\"reason\":\"a\",\"reason\":\"b\""), true, EVENT_INFO, "n", NULL, "b", NULL,
	  false, 0 },
	{ WITH("\"reason\":\"a\",\"re\\u0061son\":\"\""), true, EVENT_INFO, "n", NULL, "", NULL,
	  false, 0 },
	/* timestamp: a later null clears it, a later string sets it */
	{ WITH("\"timestamp\":\"2022-10-28T07:26:19Z\",\"timestamp\":null"), true, EVENT_INFO,
	  "n", NULL, "", NULL, false, 0 },
	{ WITH("\"timestamp\":null,\"timestamp\":\"2022-10-28T07:26:19Z\""), true, EVENT_INFO,
	  "n", NULL, "", NULL, true, 0 },
	/* a metadata key, plain and controller-prefixed */
	{ WITH("\"metadata\":{\"revision\":\"a\",\"revision\":\"b\"}"), true, EVENT_INFO,
	  "n", NULL, "", "b", false, 1 },
	{ "{\"involvedObject\":{\"kind\":\"K\",\"name\":\"n\","
	  "\"apiVersion\":\"kustomize.toolkit.fluxcd.io/v1\"}," SEV "," MSG ",\"metadata\":{"
	  "\"kustomize.toolkit.fluxcd.io/revision\":\"a\",\"revision\":\"p\","
	  "\"kustomize.toolkit.fluxcd.io/revision\":\"c\"}}", true, EVENT_INFO, "n", NULL, "", "c",
	  false, 1 },
	/* whole objects: the last involvedObject, the last metadata */
	{ "{\"involvedObject\":{\"kind\":\"K\",\"name\":\"a\",\"namespace\":\"ns\"}," SEV ","
	  MSG "," IO "}", true, EVENT_INFO, "n", NULL, "", NULL, false, 0 },
	{ WITH("\"metadata\":{\"revision\":\"a\",\"x\":\"1\"},\"metadata\":{\"y\":\"2\"}"), true,
	  EVENT_INFO, "n", NULL, "", NULL, false, 1 },
};

START_TEST(test_event_duplicates)
{
	const struct dup *c = &dup_cases[_i];
	char err[ERRLEN], field[128];
	struct event *ev;

	ev = parse_checked(c->json, strlen(c->json), err, sizeof(err), field, sizeof(field));
	ck_assert_msg(ev != NULL, "case %d rejected: %s (%s): %s", _i, err, field, c->json);
	ck_assert_msg(last_fast == c->fast, "case %d: fast path %s", _i,
	    last_fast ? "handled it" : "gave up");
	ck_assert_int_eq(ev->severity, c->severity);
	check_str("name", ev->name, c->name);
	check_str("namespace", ev->namespace, c->namespace);
	check_str("reason", ev->reason, c->reason);
	check_str("revision", event_meta_get(ev, "revision"), c->revision);
	ck_assert(ev->has_timestamp == c->has_ts);
	ck_assert_uint_eq(ev->nmeta, c->nmeta);
	event_free(ev);
}
END_TEST

/* The benchmark body (bench/event.json) takes the fast path, with every field. */
START_TEST(test_event_fast_bench_body)
{
	char path[1024], err[ERRLEN], field[128];
	struct event *ev;
	size_t len = 0;
	char *buf;

	snprintf(path, sizeof(path), "%s/bench/event.json", FR_SRCDIR);
	buf = util_read_file(path, &len, err, sizeof(err));
	ck_assert_msg(buf != NULL, "%s: %s", path, err);
	ev = parse_checked(buf, len, err, sizeof(err), field, sizeof(field));
	ck_assert_msg(ev != NULL, "%s", err);
	ck_assert(last_fast);
	ck_assert_str_eq(ev->kind, "Kustomization");
	ck_assert_str_eq(ev->uid, "7d0cdc51-ddcf-4743-b223-83ca5c699632");
	ck_assert_uint_eq(ev->nmeta, 3);
	ck_assert_str_eq(event_meta_get(ev, "cluster"), "prod-eu-1");
	event_free(ev);
	free(buf);
}
END_TEST

static Suite *
event_suite(void)
{
	Suite *s = suite_create("event");
	TCase *tc = tcase_create("event");

	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_event_fixtures, 0, sizeof(fixtures) / sizeof(fixtures[0]));
	tcase_add_loop_test(tc, test_event_bad_table, 0,
	    sizeof(bad_cases) / sizeof(bad_cases[0]));
	tcase_add_test(tc, test_event_raw_nul);
	tcase_add_test(tc, test_event_not_terminated);
	tcase_add_test(tc, test_event_small_buffers);
	tcase_add_test(tc, test_event_utf8_truncation);
	tcase_add_loop_test(tc, test_event_timestamp_ok, 0,
	    sizeof(ts_cases) / sizeof(ts_cases[0]));
	tcase_add_test(tc, test_event_optional_absent);
	tcase_add_test(tc, test_event_unknown_fields);
	tcase_add_test(tc, test_event_nul_escape);
	tcase_add_test(tc, test_event_unknown_big_numbers);
	tcase_add_loop_test(tc, test_event_severity, 0, sizeof(sev_cases) / sizeof(sev_cases[0]));
	tcase_add_test(tc, test_event_severity_names);
	tcase_add_test(tc, test_event_hidden);
	tcase_add_loop_test(tc, test_event_normalize, 0,
	    sizeof(norm_cases) / sizeof(norm_cases[0]));
	tcase_add_test(tc, test_event_many_metadata);
	tcase_add_test(tc, test_event_depth);
	tcase_add_test(tc, test_event_huge_message);
	tcase_add_test(tc, test_event_unicode);
	tcase_add_loop_test(tc, test_event_grammar, 0,
	    sizeof(grammar_cases) / sizeof(grammar_cases[0]));
	tcase_add_test(tc, test_event_grammar_built);
	tcase_add_loop_test(tc, test_event_duplicates, 0, sizeof(dup_cases) / sizeof(dup_cases[0]));
	tcase_add_test(tc, test_event_fast_bench_body);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(event_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
