/*
 * fuzz_template: libFuzzer harness for the template language (src/template.c):
 * template_compile() on arbitrary text, then template_render() of what
 * compiles against two fixed events (one with metadata of every origin,
 * hidden keys, an incident and text that needs escaping; one
 * with almost nothing), and template_cut() and template_cut_counted() of the
 * result.
 *
 * Input: the first byte chooses the flags (bit 0: TEMPLATE_INCIDENT, bit 3:
 * TEMPLATE_URL) and the output limit (bits 1-2: 0, 7, 60 or 3000
 * characters); the rest is the
 * template text (up to its first NUL, as a config string would be).
 *
 * Besides "no crash, no leak, no UB" and libFuzzer's time limit (rendering is
 * bounded by TEMPLATE_MAX_WORK), it checks and abort()s when broken:
 *   - a refused template has a non-empty, valid UTF-8 message that starts
 *     with "column ", "line " or "template longer";
 *   - a rendering is valid UTF-8 without NUL (it goes into Slack JSON), the
 *     same twice, at most limit characters plus the "… (N more characters)"
 *     marker, and at most 5 × TEMPLATE_MAX_WORK bytes without a limit;
 *   - template_cut() to a smaller limit keeps its own bound; so does
 *     template_cut_counted() of the rendering held only to 60 characters,
 *     and it returns the characters it appended, also when counting only.
 * Single-threaded; see fuzz/README.md for how it is built and run.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "template.h"
#include "util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Set once by LLVMFuzzerInitialize; read-only afterwards (one thread). */
static struct event *fuzz_template_ev[2];

static const char fuzz_template_e0[] =
	"{\"involvedObject\":{\"apiVersion\":\"kustomize.toolkit.fluxcd.io/v1\","
	"\"kind\":\"Kustomization\",\"name\":\"web<app>&co\",\"namespace\":\"apps\","
	"\"uid\":\"7d0cdc51-ddcf-4743-b223-83ca5c699632\"},"
	"\"metadata\":{\"kustomize.toolkit.fluxcd.io/revision\":"
	"\"main@sha1:731f7eaddfb6af01cb2173e18f0f75b0ba780ef1\","
	"\"event.toolkit.fluxcd.io/cluster\":\"prod-eu-1\",\"token\":\"s3cret\","
	"\"checksum\":\"abc\",\"digest\":\"sha256:00\",\"env\":\"<!here> & \\u00e9\\u2028\"},"
	"\"severity\":\"error\",\"reason\":\"HealthCheckFailed\","
	"\"message\":\"line one <b>&amp;</b>\\nline two \\u00dcn\\u00efc\\u00f6d\\u00e9 \\ud83d\\ude00\","
	"\"reportingController\":\"kustomize-controller\",\"reportingInstance\":\"i\","
	"\"timestamp\":\"2022-10-28T07:26:19Z\"}";

static const char fuzz_template_e1[] =
	"{\"involvedObject\":{\"kind\":\"GitRepository\",\"name\":\"x\"},"
	"\"severity\":\"info\",\"message\":\"\"}";

static const struct template_incident fuzz_template_inc = {
	"reminder", "2022-10-28T07:20:00Z", "6m19s", 12,
};

static int
fuzz_template_utf8_ok(const char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t l = util_utf8_len((const unsigned char *)s + i, n - i);
		if (l == 0 || s[i] == '\0')
			return 0;
		i += l;
	}
	return 1;
}

static struct event *
fuzz_template_parse(const char *json)
{
	char err[256], field[128];
	struct event *ev = event_parse(json, strlen(json), err, sizeof(err), field, sizeof(field));

	if (ev == NULL) {
		fprintf(stderr, "fuzz_template: fixed event: %s (%s)\n", err, field);
		abort();
	}
	return ev;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_template_ev[0] = fuzz_template_parse(fuzz_template_e0);
	fuzz_template_ev[1] = fuzz_template_parse(fuzz_template_e1);
	return 0;
}

/* The characters of a rendering minus its end marker must not exceed limit. */
static void
fuzz_template_check(const char *what, const char *out, size_t len, size_t limit)
{
	size_t chars;

	if (strlen(out) != len || !fuzz_template_utf8_ok(out, len)) {
		fprintf(stderr, "fuzz_template: %s: not valid UTF-8 without NUL\n", what);
		abort();
	}
	chars = template_chars(out, len);
	if (limit > 0 && chars > limit + 40) {
		fprintf(stderr, "fuzz_template: %s: %zu characters for limit %zu\n", what, chars,
		    limit);
		abort();
	}
	if (limit == 0 && len > 5 * (size_t)TEMPLATE_MAX_WORK + 3) {
		fprintf(stderr, "fuzz_template: %s: %zu bytes unbounded\n", what, len);
		abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t limits[] = { 0, 7, 60, 3000 };
	char err[512];
	char *src;
	unsigned flags;
	size_t limit;
	struct template *t;

	if (size == 0)
		return 0;
	flags = ((data[0] & 1) ? TEMPLATE_INCIDENT : 0) | ((data[0] & 8) ? TEMPLATE_URL : 0);
	limit = limits[(data[0] >> 1) & 3];
	src = util_strndup((const char *)data + 1, size - 1);

	memset(err, 'x', sizeof(err));
	t = template_compile(src, flags, err, sizeof(err));
	if (t == NULL) {
		size_t n = strnlen(err, sizeof(err));
		if (n == 0 || n == sizeof(err) || !fuzz_template_utf8_ok(err, n) ||
		    (strncmp(err, "column ", 7) != 0 && strncmp(err, "line ", 5) != 0 &&
		    strncmp(err, "template longer", 15) != 0)) {
			fprintf(stderr, "fuzz_template: bad compile error: %.*s\n", (int)n, err);
			abort();
		}
		free(src);
		return 0;
	}
	for (int e = 0; e < 2; e++) {
		struct template_data d;
		struct util_buf b = { 0 };
		char *again;

		memset(&d, 0, sizeof(d));
		d.ev = fuzz_template_ev[e];
		d.alert = "errors";
		if (e == 0) {
			d.cluster = "eu-1";
			d.incident = &fuzz_template_inc;
		}
		util_buf_puts(&b, "prefix|");
		template_render(t, &d, limit, &b);
		if (strncmp(b.data, "prefix|", 7) != 0)
			abort();
		fuzz_template_check("render", b.data + 7, b.len - 7, limit);
		again = template_render_string(t, &d, limit);
		if (strcmp(again, b.data + 7) != 0) {
			fprintf(stderr, "fuzz_template: two renderings differ\n");
			abort();
		}
		free(again);
		const char *s = b.data + 7;
		size_t n = b.len - 7, total = template_chars(s, n), held = template_fit(s, n, 60);
		struct util_buf c = { 0 };
		size_t got = template_cut_counted(&c, s, held, 7, total);
		if (got != template_cut_counted(NULL, s, held, 7, total) ||
		    got != template_chars(c.data ? c.data : "", c.len)) {
			fprintf(stderr, "fuzz_template: template_cut_counted counts %zu\n", got);
			abort();
		}
		fuzz_template_check("cut_counted", c.data ? c.data : "", c.len, 7);
		util_buf_free(&c);
		if (b.len > 7 + 3) {
			template_cut(&b, 7, 3);
			fuzz_template_check("cut", b.data + 7, b.len - 7, 3);
		}
		util_buf_free(&b);
	}
	template_free(t);
	free(src);
	return 0;
}
