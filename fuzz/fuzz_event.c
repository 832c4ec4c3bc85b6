/*
 * fuzz_event: libFuzzer harness for the request path that an unauthenticated
 * network peer reaches: event_parse() on the raw body, then everything that
 * follows a successful parse without I/O — rules_match() against a fixed
 * rule set (globs, PCRE2 include/exclude, severity lists, channels, alert
 * metadata), dedup_key()/dedup_normalize(), the alerts' templates
 * (slack_look_new) and slack_render_string() in the single and coalesced
 * forms, as attachments and as Block Kit. auth_check_hmac() also sees the
 * input as its signature header.
 *
 * Besides "no crash, no leak, no UB" (ASan/UBSan/LeakSanitizer), it checks the
 * properties other modules rely on, and abort()s when one breaks:
 *   - a payload is written as json_dumps(JSON_COMPACT) writes it (slack_json);
 *   - a failed parse leaves err non-empty and err/field NUL-terminated valid
 *     UTF-8 (http.c hands both to json_string(), which returns NULL for
 *     invalid UTF-8: the 400 answer would then lose its "error" member);
 *   - a parsed event has non-empty kind and name, a known severity, metadata
 *     sorted by key with unique keys, each found by event_meta_get();
 *   - every rendered Slack payload is valid JSON with one attachment per
 *     event (it goes to Slack verbatim); a Block Kit one holds at least one
 *     event in at most 50 blocks, each text within Slack's limits (3,000
 *     characters a section or context element, 2,000 a field, 10 fields).
 * Input: the HTTP body, as is (seeds: tests/fixtures/events/ and fuzz/corpus/event/).
 * Single-threaded; see fuzz/README.md for how it is built and run.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "conf.h"
#include "dedup.h"
#include "event.h"
#include "rules.h"
#include "slack.h"
#include "slack_blocks.h"
#include "slack_look.h"
#include "util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Set once by LLVMFuzzerInitialize; read-only afterwards (one thread). */
static struct conf *fuzz_event_conf;
static struct rules *fuzz_event_rules;

/*
 * The rule set events are matched against: every clause type of an alert, a
 * small max_text so truncation runs, and all three provider types.
 */
static const char fuzz_event_conf_text[] =
	"providers = (\n"
	"  { name = \"hook\"; type = \"slack\";\n"
	"    url = \"https://hooks.slack.com/services/T000/B000/fuzz\";\n"
	"    channel = \"#flux\"; username = \"Flux\"; icon_emoji = \":rocket:\";\n"
	"    max_text = 100; },\n"
	"  { name = \"bot\"; type = \"slack-bot\"; token = \"xoxb-fuzz\"; channel = \"C0123\";\n"
	"    icon_url = \"https://example.com/i.png\"; },\n"
	"  { name = \"out\"; type = \"console\"; },\n"
	"  { name = \"kit\"; type = \"console\"; format = \"blocks\"; max_text = 40000; }\n"
	");\n"
	"alerts = (\n"
	"  { name = \"all\"; providers = [ \"out\" ]; severity = \"trace\";\n"
	"    sources = ( { kind = \"*\"; } ); commit_status_updates = true; },\n"
	"  { name = \"errors\"; providers = [ \"hook\", \"bot\" ]; severity = \"error\";\n"
	"    sources = ( { kind = \"Kustomization\"; name = \"*\"; namespace = \"*\"; },\n"
	"                { kind = \"HelmRelease\"; } );\n"
	"    reasons = [ \"*Failed\", \"Progress?ng\", \"[A-Z]*\" ];\n"
	"    include = [ \"timed out\", \"(?i)error\", \"\\\\d+\\\\.\\\\d+s\" ];\n"
	"    exclude = [ \"^Dependencies do not meet\" ];\n"
	"    metadata = { cluster = \"prod-eu-1\"; revision = \"alert-side\"; };\n"
	"    summary = \"production\"; channel = \"#devops-alerts\"; },\n"
	"  { name = \"templated\"; providers = [ \"hook\", \"kit\" ]; severity = \"trace\";\n"
	"    sources = ( { kind = \"*\"; } );\n"
	"    title = \"{{ .involvedObject.kind | lower }} {{ .reason | trunc 300 }}\";\n"
	"    text = \"{{ .message }}{{ range $k, $v := .metadata }}\\n{{ $k }}={{ $v }}{{ end }}\";\n"
	"    links = ( { text = \"{{ .revision.short }}\"; url = \"https://x/{{ .revision.sha }}\"; },\n"
	"              { text = \"{{ .message }}\"; url = \"{{ .metadata.url }}\"; } );\n"
	"    mention = \"<!here>\"; },\n"
	"  { name = \"mixed\"; providers = [ \"hook\", \"out\" ]; severity = [ \"warning\", \"info\" ];\n"
	"    sources = ( { kind = \"Git*\"; namespace = \"flux-[a-z]*\"; },\n"
	"                { kind = \"?*\"; name = \"web*\"; } );\n"
	"    include = [ \"^.\" ]; }\n"
	");\n";

/* 1 when s[0..n) is well-formed UTF-8 (no overlongs, surrogates or > U+10FFFF). */
static int
fuzz_event_utf8_ok(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned c = s[i];
		size_t k;
		unsigned cp;
		if (c < 0x80) {
			i++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			k = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			k = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			k = 3;
			cp = c & 0x07;
		} else {
			return 0;
		}
		if (n - i <= k)
			return 0;
		for (size_t j = 1; j <= k; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + j] & 0x3f);
		}
		if ((k == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		    (k == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return 0;
		i += k + 1;
	}
	return 1;
}

static void
fuzz_event_fail(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_event: property violated: %s%s%s\n", what,
	    detail ? ": " : "", detail ? detail : "");
	abort();
}

/* A NUL-terminated message buffer of cap bytes must hold valid UTF-8. */
static void
fuzz_event_check_text(const char *buf, size_t cap, const char *what)
{
	const char *nul = memchr(buf, '\0', cap);
	if (nul == NULL)
		fuzz_event_fail(what, "not NUL-terminated");
	if (!fuzz_event_utf8_ok((const unsigned char *)buf, (size_t)(nul - buf)))
		fuzz_event_fail(what, "invalid UTF-8 (json_string() would return NULL)");
}

static void
fuzz_event_check_event(const struct event *ev)
{
	if (ev->kind == NULL || ev->kind[0] == '\0' || ev->name == NULL || ev->name[0] == '\0')
		fuzz_event_fail("kind and name must be non-empty", NULL);
	if ((int)ev->severity < EVENT_TRACE || (int)ev->severity > EVENT_ERROR)
		fuzz_event_fail("severity out of range", NULL);
	if (ev->message == NULL || ev->reason == NULL || ev->reporting_controller == NULL ||
	    ev->reporting_instance == NULL)
		fuzz_event_fail("required strings must be set", NULL);
	for (size_t i = 0; i < ev->nmeta; i++) {
		if (i > 0 && strcmp(ev->meta[i - 1].key, ev->meta[i].key) >= 0)
			fuzz_event_fail("metadata not sorted by unique key", ev->meta[i].key);
		if (event_meta_get(ev, ev->meta[i].key) != ev->meta[i].value)
			fuzz_event_fail("event_meta_get misses a key", ev->meta[i].key);
	}
}

/* Code points of a JSON string member (0 when absent). */
static size_t
fuzz_event_cps(json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));
	size_t n = 0;
	for (; s != NULL && *s; s++)
		n += ((unsigned char)*s & 0xc0) != 0x80;
	return n;
}

/* Slack's Block Kit limits, for every block of a payload. */
static void
fuzz_event_check_blocks(json_t *blocks)
{
	size_t i, k;
	json_t *b, *e;
	if (!json_is_array(blocks) || json_array_size(blocks) == 0 ||
	    json_array_size(blocks) > SLACK_BLOCKS_MAX)
		fuzz_event_fail("Block Kit payload without 1..50 blocks", NULL);
	json_array_foreach(blocks, i, b) {
		json_t *t = json_object_get(b, "text"), *f = json_object_get(b, "fields");
		json_t *el = json_object_get(b, "elements");
		if (t != NULL && (fuzz_event_cps(t, "text") == 0 ||
		    fuzz_event_cps(t, "text") > SLACK_BLOCKS_MAX_TEXT))
			fuzz_event_fail("section text empty or beyond 3,000 characters", NULL);
		if (f != NULL && json_array_size(f) > SLACK_BLOCKS_MAX_FIELDS)
			fuzz_event_fail("more than 10 fields in a section", NULL);
		json_array_foreach(f, k, e)
			if (fuzz_event_cps(e, "text") > SLACK_BLOCKS_MAX_FIELD)
				fuzz_event_fail("field beyond 2,000 characters", NULL);
		json_array_foreach(el, k, e)
			if (fuzz_event_cps(e, "text") > SLACK_BLOCKS_MAX_TEXT)
				fuzz_event_fail("context element beyond 3,000 characters", NULL);
	}
}

/* A payload must parse as a JSON object with n attachments (or valid blocks). */
static void
fuzz_event_check_payload(char *s, size_t n, enum conf_format format)
{
	if (s == NULL)
		fuzz_event_fail("slack_render_string returned NULL", NULL);
	json_error_t e;
	json_t *doc = json_loads(s, 0, &e);
	if (doc == NULL)
		fuzz_event_fail("payload is not valid JSON", e.text);
	if (format == CONF_FORMAT_BLOCKS) {
		fuzz_event_check_blocks(json_object_get(doc, "blocks"));
	} else {
		json_t *att = json_object_get(doc, "attachments");
		if (!json_is_array(att) || json_array_size(att) != n)
			fuzz_event_fail("payload does not carry one attachment per event", NULL);
	}
	/* slack_json writes what json_dumps(JSON_COMPACT) writes, byte for byte. */
	char *again = json_dumps(doc, JSON_COMPACT);
	if (again == NULL || strcmp(again, s) != 0)
		fuzz_event_fail("payload differs from json_dumps of itself", NULL);
	free(again);
	json_decref(doc);
	free(s);
}

static void
fuzz_event_render(const struct event *ev)
{
	struct rules_result res;
	size_t n = rules_match(fuzz_event_rules, ev, &res);
	if (n != res.ntargets)
		fuzz_event_fail("rules_match count differs from ntargets", NULL);
	for (size_t i = 0; i < res.ntargets; i++) {
		const struct rules_target *t = &res.targets[i];
		const struct conf_provider *p = &fuzz_event_conf->providers[t->provider];
		struct slack_item items[3] = { { .ev = ev, .extra = t->extra, .nextra = t->nextra } };
		struct slack_look *look = slack_look_new(fuzz_event_conf, t->alerts, p, items, NULL);
		for (size_t k = 0; k < 3; k++)
			items[k] = (struct slack_item){ .ev = ev, .extra = t->extra,
			    .nextra = t->nextra, .look = look };
		size_t used = 0;
		fuzz_event_check_payload(slack_render_fit(p, t->channel, items, 1, &used), 1,
		    p->format);
		if (used != 1)
			fuzz_event_fail("a message does not hold one event", NULL);
		fuzz_event_check_payload(slack_render_fit(p, t->channel, items, 3, &used), used,
		    p->format);
		if (used < 1 || used > 3 || (p->format != CONF_FORMAT_BLOCKS && used != 3))
			fuzz_event_fail("slack_render_fit used a wrong count", NULL);
		slack_look_free(look);
		free(rules_target_label(p->name, t->channel));
	}
	rules_result_clear(&res);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	const char *base = getenv("FUZZ_TMPDIR");
	if (base == NULL || *base == '\0')
		base = getenv("TMPDIR");
	if (base == NULL || *base == '\0')
		base = "/tmp";
	char *path = util_printf("%s/fuzz_event-XXXXXX", base);
	int fd = mkstemp(path);
	if (fd < 0 || write(fd, fuzz_event_conf_text, sizeof(fuzz_event_conf_text) - 1) !=
	    (ssize_t)(sizeof(fuzz_event_conf_text) - 1)) {
		fprintf(stderr, "fuzz_event: cannot write %s\n", path);
		exit(99);
	}
	close(fd);
	char *errors = NULL;
	fuzz_event_conf = conf_load(path, &errors);
	unlink(path);
	free(path);
	if (fuzz_event_conf == NULL) {
		fprintf(stderr, "fuzz_event: built-in rules rejected:\n%s", errors);
		exit(99);
	}
	char err[256];
	fuzz_event_rules = rules_new(fuzz_event_conf, err, sizeof(err));
	if (fuzz_event_rules == NULL) {
		fprintf(stderr, "fuzz_event: rules_new: %s\n", err);
		exit(99);
	}
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512], field[256];
	/* The daemon's buffers are these sizes too (http_process_event). */
	memset(err, 'X', sizeof(err));
	memset(field, 'X', sizeof(field));
	struct event *ev = event_parse((const char *)data, size, err, sizeof(err), field,
	    sizeof(field));

	/* The signature header is attacker-controlled too: a NUL-free prefix. */
	size_t hlen = size < 300 ? size : 300;
	const char *nul = memchr(data, '\0', hlen);
	char *header = util_strndup((const char *)data, nul ? (size_t)(nul - (const char *)data)
	    : hlen);
	static const unsigned char key[] = "fuzz-hmac-key", key_nl[] = "fuzz-hmac-key\n";
	const struct auth_key keys[] = { { key, sizeof(key) - 1 }, { key_nl, sizeof(key_nl) - 1 } };
	struct auth_stats st;
	if (auth_check_hmac(keys, 2, header, data, size, &st) != AUTH_TOO_MANY &&
	    st.hmacs > 2 * 5)
		fuzz_event_fail("more than one HMAC per key and algorithm", NULL);
	(void)auth_check_token("fuzz-token", header);
	free(header);

	if (ev == NULL) {
		fuzz_event_check_text(err, sizeof(err), "err");
		fuzz_event_check_text(field, sizeof(field), "field");
		if (err[0] == '\0')
			fuzz_event_fail("rejected without a message", NULL);
		return 0;
	}
	fuzz_event_check_event(ev);
	unsigned char k1[DEDUP_KEY_LEN], k2[DEDUP_KEY_LEN];
	dedup_key(ev, true, k1);
	dedup_key(ev, false, k2);
	free(dedup_normalize(ev->message));
	fuzz_event_render(ev);
	event_free(ev);
	return 0;
}
