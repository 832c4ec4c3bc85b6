/*
 * Unit tests for slack: golden payloads for every event fixture, the
 * coalesced and slack-bot forms, channel / username / icon rules, escaping of
 * every rendered text, truncation on code points with its marker, the
 * 40,000-character total, hidden keys, field order and precedence; then the
 * response classification table for both provider types and Retry-After;
 * then the kinds of SPEC §12 (opened, reminder, recovered, reply), thread
 * replies, chat.update payloads and the answers of chat.update.
 */
#include <check.h>
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "slack.h"
#include "util.h"
#include "test_files.h"

/* ---- helpers ---- */

static struct conf_provider
t_provider(enum conf_provider_type type)
{
	struct conf_provider p;

	memset(&p, 0, sizeof(p));
	p.name = "test";
	p.type = type;
	p.channel = "#flux";
	p.max_text = 3000;
	p.rate = 1;
	p.burst = 3;
	p.batch_max = 10;
	p.timeout = 10;
	if (type == CONF_PROVIDER_SLACK_BOT) {
		p.token = "xoxb-test";
		p.api_url = "https://slack.com/api";
	} else if (type == CONF_PROVIDER_SLACK)
		p.url = "https://hooks.slack.com/services/T0/B0/secret";
	return p;
}

/* A hand-built event; strings are borrowed literals, no metadata. */
static struct event
t_event(const char *kind, const char *name, const char *ns, enum event_severity sev,
    const char *reason, const char *msg)
{
	struct event ev;

	memset(&ev, 0, sizeof(ev));
	ev.kind = (char *)kind;
	ev.name = (char *)name;
	ev.namespace = (char *)ns;
	ev.severity = sev;
	ev.reason = (char *)reason;
	ev.message = (char *)msg;
	ev.reporting_controller = "kustomize-controller";
	ev.reporting_instance = "";
	return ev;
}


static struct event *
t_fixture(const char *name)
{
	return test_fixture("tests/fixtures/events", name);
}

/* Compare a rendering with tests/golden/<name> byte for byte; a payload is one line. */
static void
t_golden(const char *name, const char *got)
{
	test_golden(name, got);
	ck_assert_msg(strchr(got, '\n') == NULL, "%s: not one line", name);
}

/* Render and parse back (new reference). */
static json_t *
t_render(const struct conf_provider *p, const char *channel, const struct slack_item *items,
    size_t n)
{
	char *s = slack_render_string(p, channel, items, n);
	json_error_t jerr;
	json_t *j;

	ck_assert_msg(s != NULL, "render failed");
	ck_assert_msg(strchr(s, '\n') == NULL, "not one line: %s", s);
	j = json_loads(s, 0, &jerr);      /* also proves the output is valid UTF-8 */
	ck_assert_msg(j != NULL, "invalid JSON (%s): %s", jerr.text, s);
	free(s);
	return j;
}

static json_t *
t_render1(const struct conf_provider *p, const struct event *ev)
{
	struct slack_item it = { .ev = ev, .extra = NULL, .nextra = 0 };
	return t_render(p, NULL, &it, 1);
}

static json_t *
t_att(json_t *root, size_t i)
{
	json_t *a = json_array_get(json_object_get(root, "attachments"), i);
	ck_assert_msg(a != NULL, "no attachment %zu", i);
	return a;
}

/* String member or NULL when absent; fails when present with another type. */
static const char *
t_str(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	if (v == NULL)
		return NULL;
	ck_assert_msg(json_is_string(v), "%s is not a string", key);
	return json_string_value(v);
}

static size_t
t_codepoints(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	return n;
}

/* ---- golden payloads ---- */

static const char *const t_fixtures[] = {
	"01-kustomization-validation-failed-generic-webhook",
	"02-gitrepository-fetched-revision-legacy",
	"03-gitrepository-webapp-notifier-testevent",
	"04-bucket-event-server-test",
	"05-kustomization-health-check-passed-with-revision",
	"06-kustomization-health-check-timed-out-error",
	"07-configmap-sync-with-object-annotations",
	"08-kustomization-configured-provider-side",
	"11-kustomization-reconciliation-succeeded-recovery",
	"12-helmrelease-rollback-succeeded-still-failing",
};

START_TEST(test_golden_fixture)
{
	struct conf_provider p = t_provider(CONF_PROVIDER_SLACK);
	char *fixture = util_printf("%s.json", t_fixtures[_i]);
	char *golden = util_printf("payload-%s.json", t_fixtures[_i]);
	struct event *ev = t_fixture(fixture);
	struct slack_item it = { .ev = ev, .extra = NULL, .nextra = 0 };
	char *got = slack_render_string(&p, NULL, &it, 1);

	t_golden(golden, got);
	/* the console provider renders the same payload */
	p.type = CONF_PROVIDER_CONSOLE;
	char *console = slack_render_string(&p, NULL, &it, 1);
	ck_assert_str_eq(console, got);
	free(console);
	free(got);
	event_free(ev);
	free(fixture);
	free(golden);
}
END_TEST

/* Every fixture has a golden payload: a new fixture must come with one. */
START_TEST(test_golden_complete)
{
	char *path = util_printf("%s/tests/fixtures/events", FR_SRCDIR);
	DIR *d = opendir(path);
	struct dirent *de;
	size_t seen = 0;

	ck_assert_msg(d != NULL, "%s", path);
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		if (len < 5 || strcmp(de->d_name + len - 5, ".json") != 0)
			continue;
		int found = 0;
		for (size_t i = 0; i < sizeof(t_fixtures) / sizeof(t_fixtures[0]); i++)
			if (strncmp(de->d_name, t_fixtures[i], len - 5) == 0 &&
			    t_fixtures[i][len - 5] == '\0')
				found = 1;
		ck_assert_msg(found, "fixture %s has no golden test", de->d_name);
		seen++;
	}
	closedir(d);
	free(path);
	ck_assert_uint_eq(seen, sizeof(t_fixtures) / sizeof(t_fixtures[0]));
}
END_TEST

START_TEST(test_golden_coalesced)
{
	struct conf_provider p = t_provider(CONF_PROVIDER_SLACK);
	struct conf_kv extra[] = { { "cluster", "prod-eu-1" }, { "summary", "production" } };
	struct event *e1 = t_fixture("01-kustomization-validation-failed-generic-webhook.json");
	struct event *e6 = t_fixture("06-kustomization-health-check-timed-out-error.json");
	struct event *e7 = t_fixture("07-configmap-sync-with-object-annotations.json");
	struct slack_item items[] = { { .ev = e1, .extra = extra, .nextra = 2 }, { .ev = e6, .extra = extra, .nextra = 2 }, { .ev = e7, .extra = extra, .nextra = 2 } };

	p.username = "Flux";
	p.icon_emoji = ":rocket:";
	char *got = slack_render_string(&p, "#devops-alerts", items, 3);
	t_golden("payload-coalesced.json", got);
	free(got);
	event_free(e1);
	event_free(e6);
	event_free(e7);
}
END_TEST

START_TEST(test_golden_bot)
{
	struct conf_provider p = t_provider(CONF_PROVIDER_SLACK_BOT);
	struct event *e1 = t_fixture("01-kustomization-validation-failed-generic-webhook.json");
	struct slack_item it = { .ev = e1, .extra = NULL, .nextra = 0 };

	p.channel = "#flux-bot";
	p.icon_url = "https://example.com/flux.png";
	char *got = slack_render_string(&p, NULL, &it, 1);
	t_golden("payload-bot.json", got);
	free(got);
	event_free(e1);
}
END_TEST

/* ---- structure ---- */

START_TEST(test_coalesced_order)
{
	struct conf_provider p = t_provider(CONF_PROVIDER_SLACK);
	struct event ev[3] = {
		t_event("Kustomization", "a", "ns", EVENT_ERROR, "R1", "first"),
		t_event("HelmRelease", "b", "ns", EVENT_INFO, "R2", "second"),
		t_event("GitRepository", "c", NULL, EVENT_WARNING, "R3", "third"),
	};
	struct slack_item items[3] = { { .ev = &ev[0], .extra = NULL, .nextra = 0 }, { .ev = &ev[1], .extra = NULL, .nextra = 0 }, { .ev = &ev[2], .extra = NULL, .nextra = 0 } };
	static const char *const msgs[] = { "first", "second", "third" };
	static const char *const authors[] = { "kustomization/a.ns", "helmrelease/b.ns", "gitrepository/c" };
	static const char *const colors[] = { "danger", "good", "warning" };

	json_t *j = t_render(&p, NULL, items, 3);
	ck_assert_str_eq(t_str(j, "text"), "3 events");
	ck_assert_uint_eq(json_array_size(json_object_get(j, "attachments")), 3);
	for (size_t i = 0; i < 3; i++) {
		json_t *a = t_att(j, i);
		ck_assert_str_eq(t_str(a, "text"), msgs[i]);
		ck_assert_str_eq(t_str(a, "author_name"), authors[i]);
		ck_assert_str_eq(t_str(a, "color"), colors[i]);
	}
	json_decref(j);

	j = t_render(&p, NULL, items, 2);
	ck_assert_str_eq(t_str(j, "text"), "2 events");
	json_decref(j);

	j = t_render(&p, NULL, items + 1, 1);
	ck_assert_ptr_null(json_object_get(j, "text"));     /* single form: no text */
	ck_assert_str_eq(t_str(t_att(j, 0), "text"), "second");
	json_decref(j);
}
END_TEST

START_TEST(test_attachment_shape)
{
	struct conf_provider p = t_provider(CONF_PROVIDER_SLACK);
	struct event ev = t_event("Kustomization", "webapp", NULL, EVENT_TRACE, "", "hello");
	json_t *j, *a;

	/* no namespace, no reason, no timestamp, no metadata */
	j = t_render1(&p, &ev);
	a = t_att(j, 0);
	ck_assert_str_eq(t_str(a, "author_name"), "kustomization/webapp");
	ck_assert_str_eq(t_str(a, "color"), "good");
	ck_assert_ptr_null(json_object_get(a, "title"));
	ck_assert_ptr_null(json_object_get(a, "ts"));
	ck_assert_ptr_null(json_object_get(a, "fields"));
	ck_assert_str_eq(t_str(a, "fallback"), "kustomization/webapp: hello");
	json_t *m = json_object_get(a, "mrkdwn_in");
	ck_assert(json_is_array(m) && json_array_size(m) == 1);
	ck_assert_str_eq(json_string_value(json_array_get(m, 0)), "text");
	/* exactly the keys Slack defines, in order */
	static const char *const keys[] = { "color", "author_name", "text", "fallback", "mrkdwn_in" };
	size_t k = 0;
	const char *key;
	json_t *v;
	json_object_foreach(a, key, v) {
		ck_assert_msg(k < 5, "extra key %s", key);
		ck_assert_str_eq(key, keys[k]);
		k++;
	}
	ck_assert_uint_eq(k, 5);
	json_decref(j);

	/* timestamp: a string of epoch seconds, after fields */
	ev.has_timestamp = true;
	ev.timestamp = 1666941979;
	ev.reason = "Progressing";
	j = t_render1(&p, &ev);
	a = t_att(j, 0);
	ck_assert_str_eq(t_str(a, "ts"), "1666941979");
	ck_assert_str_eq(t_str(a, "title"), "Progressing");
	json_decref(j);

	/* severities */
	static const struct { enum event_severity s; const char *color; } sev[] = {
		{ EVENT_TRACE, "good" }, { EVENT_INFO, "good" },
		{ EVENT_WARNING, "warning" }, { EVENT_ERROR, "danger" },
	};
	for (size_t i = 0; i < 4; i++) {
		ev.severity = sev[i].s;
		j = t_render1(&p, &ev);
		ck_assert_str_eq(t_str(t_att(j, 0), "color"), sev[i].color);
		json_decref(j);
	}

	/* top-level key order */
	p.username = "Flux";
	p.icon_emoji = ":x:";
	struct slack_item items[2] = { { .ev = &ev, .extra = NULL, .nextra = 0 }, { .ev = &ev, .extra = NULL, .nextra = 0 } };
	j = t_render(&p, NULL, items, 2);
	static const char *const top[] = { "channel", "username", "icon_emoji", "text", "attachments" };
	k = 0;
	json_object_foreach(j, key, v) {
		ck_assert_msg(k < 5, "extra key %s", key);
		ck_assert_str_eq(key, top[k]);
		k++;
	}
	ck_assert_uint_eq(k, 5);
	json_decref(j);
}
END_TEST

static const struct {
	enum conf_provider_type type;
	const char *provider_channel;
	const char *channel_arg;
	const char *want;       /* NULL: omitted */
} t_channel_cases[] = {
	{ CONF_PROVIDER_SLACK, "#flux", NULL, "#flux" },
	{ CONF_PROVIDER_SLACK, "#flux", "#alerts", "#alerts" },
	{ CONF_PROVIDER_SLACK, NULL, "#alerts", "#alerts" },
	{ CONF_PROVIDER_SLACK, NULL, NULL, NULL },
	{ CONF_PROVIDER_SLACK, "", NULL, NULL },
	{ CONF_PROVIDER_SLACK, "#flux", "", "#flux" },
	{ CONF_PROVIDER_CONSOLE, NULL, NULL, NULL },
	{ CONF_PROVIDER_CONSOLE, "#c", NULL, "#c" },
	{ CONF_PROVIDER_SLACK_BOT, "#flux", NULL, "#flux" },
	{ CONF_PROVIDER_SLACK_BOT, "#flux", "#alerts", "#alerts" },
	{ CONF_PROVIDER_SLACK_BOT, "C0123", "", "C0123" },
	{ CONF_PROVIDER_SLACK_BOT, NULL, "#alerts", "#alerts" },
};

START_TEST(test_channel)
{
	struct conf_provider p = t_provider(t_channel_cases[_i].type);
	struct event ev = t_event("Kustomization", "a", "b", EVENT_INFO, "", "m");

	p.channel = (char *)t_channel_cases[_i].provider_channel;
	struct slack_item it = { .ev = &ev, .extra = NULL, .nextra = 0 };
	json_t *j = t_render(&p, t_channel_cases[_i].channel_arg, &it, 1);
	const char *got = t_str(j, "channel");
	if (t_channel_cases[_i].want == NULL)
		ck_assert_msg(got == NULL, "case %d: channel %s, want none", _i, got);
	else {
		ck_assert_msg(got != NULL, "case %d: no channel", _i);
		ck_assert_str_eq(got, t_channel_cases[_i].want);
	}
	json_decref(j);
}
END_TEST

/* slack-bot without any channel cannot be rendered: chat.postMessage needs one. */
START_TEST(test_bot_without_channel)
{
	struct conf_provider p = t_provider(CONF_PROVIDER_SLACK_BOT);
	struct event ev = t_event("Kustomization", "a", "b", EVENT_INFO, "", "m");
	struct slack_item it = { .ev = &ev, .extra = NULL, .nextra = 0 };

	p.channel = NULL;
	ck_assert_ptr_null(slack_render(&p, NULL, &it, 1));
	ck_assert_ptr_null(slack_render_string(&p, "", &it, 1));
}
END_TEST

START_TEST(test_username)
{
	struct conf_provider p = t_provider(CONF_PROVIDER_SLACK);
	struct event ev[2] = {
		t_event("Kustomization", "a", "b", EVENT_INFO, "", "m"),
		t_event("HelmRelease", "a", "b", EVENT_INFO, "", "m"),
	};
	struct slack_item items[2] = { { .ev = &ev[0], .extra = NULL, .nextra = 0 }, { .ev = &ev[1], .extra = NULL, .nextra = 0 } };
	json_t *j;

	ev[0].reporting_controller = "kustomize-controller";
	ev[1].reporting_controller = "helm-controller";
	/* fallback: the first event's reportingController */
	j = t_render(&p, NULL, items, 2);
	ck_assert_str_eq(t_str(j, "username"), "kustomize-controller");
	json_decref(j);
	j = t_render(&p, NULL, items + 1, 1);
	ck_assert_str_eq(t_str(j, "username"), "helm-controller");
	json_decref(j);
	/* provider username wins */
	p.username = "Flux";
	j = t_render(&p, NULL, items, 2);
	ck_assert_str_eq(t_str(j, "username"), "Flux");
	json_decref(j);
	/* an empty provider username counts as unset */
	p.username = "";
	j = t_render(&p, NULL, items, 1);
	ck_assert_str_eq(t_str(j, "username"), "kustomize-controller");
	json_decref(j);
	/* omitted when both are empty, even if a later event has a controller */
	p.username = NULL;
	ev[0].reporting_controller = "";
	j = t_render(&p, NULL, items, 2);
	ck_assert_ptr_null(json_object_get(j, "username"));
	json_decref(j);
	/* not escaped: it is not rendered as mrkdwn */
	p.username = "a&b";
	j = t_render(&p, NULL, items, 1);
	ck_assert_str_eq(t_str(j, "username"), "a&b");
	json_decref(j);
}
END_TEST

START_TEST(test_icons)
{
	static const struct {
		const char *emoji, *url;
		const char *want_emoji, *want_url;
	} cases[] = {
		{ NULL, NULL, NULL, NULL },
		{ ":rocket:", NULL, ":rocket:", NULL },
		{ NULL, "https://example.com/i.png", NULL, "https://example.com/i.png" },
		{ ":rocket:", "https://example.com/i.png", ":rocket:", NULL },  /* SDK: one or the other */
		{ "", "https://example.com/i.png", NULL, "https://example.com/i.png" },
		{ "", "", NULL, NULL },
	};
	struct event ev = t_event("Kustomization", "a", "b", EVENT_INFO, "", "m");

	for (int t = 0; t < 2; t++) {
		struct conf_provider p = t_provider(t ? CONF_PROVIDER_SLACK_BOT : CONF_PROVIDER_SLACK);
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			p.icon_emoji = (char *)cases[i].emoji;
			p.icon_url = (char *)cases[i].url;
			json_t *j = t_render1(&p, &ev);
			const char *e = t_str(j, "icon_emoji"), *u = t_str(j, "icon_url");
			if (cases[i].want_emoji)
				ck_assert_str_eq(e, cases[i].want_emoji);
			else
				ck_assert_msg(e == NULL, "case %zu: unexpected icon_emoji", i);
			if (cases[i].want_url)
				ck_assert_str_eq(u, cases[i].want_url);
			else
				ck_assert_msg(u == NULL, "case %zu: unexpected icon_url", i);
			json_decref(j);
		}
	}
}
END_TEST

/* ---- escaping ---- */

static const struct {
	const char *in, *want;
} t_escape_cases[] = {
	{ "", "" },
	{ "plain", "plain" },
	{ "a & b", "a &amp; b" },
	{ "<@U123>", "&lt;@U123&gt;" },
	{ "&amp;", "&amp;amp;" },        /* already-escaped text is escaped again */
	{ "<<>>&&", "&lt;&lt;&gt;&gt;&amp;&amp;" },
	{ "caf\xc3\xa9 <b>", "caf\xc3\xa9 &lt;b&gt;" },
	{ "bad\xff byte", "bad\xef\xbf\xbd byte" },
	/* overlong '/' and a UTF-16 surrogate are not valid UTF-8 */
	{ "\xe0\x80\xaf", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },
	{ "\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd" },
	{ "\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },
	{ "\xf4\x8f\xbf\xbf", "\xf4\x8f\xbf\xbf" },     /* U+10FFFF is fine */
	{ "\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80" },
	{ "\"quotes\" 'x'", "\"quotes\" 'x'" },
};

START_TEST(test_escape_table)
{
	char *got = slack_escape(t_escape_cases[_i].in);
	ck_assert_str_eq(got, t_escape_cases[_i].want);
	free(got);
	ck_assert_ptr_null(slack_escape(NULL));
}
END_TEST

/*
 * A client's cluster is the first field and the only "cluster": an alert's
 * metadata cluster (and an event's) is shown only without one.
 */
START_TEST(test_cluster_field_first)
{
	struct conf_provider p = t_provider(CONF_PROVIDER_SLACK);
	struct event ev = t_event("Kustomization", "app", "apps", EVENT_ERROR, "R", "m");
	struct event_kv meta[] = { { "cluster", "from-event", EVENT_META_PLAIN },
		{ "a", "1", EVENT_META_PLAIN } };
	struct conf_kv extra[] = { { "cluster", "from-alert" } };
	struct slack_item it = { .ev = &ev, .extra = extra, .nextra = 1, .cluster = "prod-eu-1" };

	ev.meta = meta;
	ev.nmeta = 2;
	json_t *j = t_render(&p, NULL, &it, 1);
	json_t *f = json_object_get(t_att(j, 0), "fields");
	ck_assert_uint_eq(json_array_size(f), 2);
	ck_assert_str_eq(t_str(json_array_get(f, 0), "title"), "cluster");
	ck_assert_str_eq(t_str(json_array_get(f, 0), "value"), "prod-eu-1");
	ck_assert_str_eq(t_str(json_array_get(f, 1), "title"), "a");
	json_decref(j);
	/* Without a client: the metadata's cluster, sorted with the rest. */
	it.cluster = "";
	j = t_render(&p, NULL, &it, 1);
	f = json_object_get(t_att(j, 0), "fields");
	ck_assert_uint_eq(json_array_size(f), 2);
	ck_assert_str_eq(t_str(json_array_get(f, 0), "title"), "a");
	ck_assert_str_eq(t_str(json_array_get(f, 1), "value"), "from-event");
	json_decref(j);
}
END_TEST

/* Every text Slack renders is escaped: author, title, text, fallback, fields. */
START_TEST(test_escape_everywhere)
{
	struct conf_provider p = t_provider(CONF_PROVIDER_SLACK);
	struct event ev = t_event("A&B", "<n>", "x>y", EVENT_ERROR, "R&D <b>",
	    "a & b < c > d\nsecond <line>");
	struct event_kv meta[] = { { "k<1>", "v&1", EVENT_META_PLAIN } };
	struct conf_kv extra[] = { { "s&t", "<u>" } };
	struct slack_item it = { .ev = &ev, .extra = extra, .nextra = 1 };

	ev.meta = meta;
	ev.nmeta = 1;
	json_t *j = t_render(&p, NULL, &it, 1);
	json_t *a = t_att(j, 0);
	ck_assert_str_eq(t_str(a, "author_name"), "a&amp;b/&lt;n&gt;.x&gt;y");
	ck_assert_str_eq(t_str(a, "title"), "R&amp;D &lt;b&gt;");
	ck_assert_str_eq(t_str(a, "text"), "a &amp; b &lt; c &gt; d\nsecond &lt;line&gt;");
	ck_assert_str_eq(t_str(a, "fallback"), "a&amp;b/&lt;n&gt;.x&gt;y: a &amp; b &lt; c &gt; d");
	json_t *f = json_object_get(a, "fields");
	ck_assert_uint_eq(json_array_size(f), 2);
	ck_assert_str_eq(t_str(json_array_get(f, 0), "title"), "k&lt;1&gt;");
	ck_assert_str_eq(t_str(json_array_get(f, 0), "value"), "v&amp;1");
	ck_assert_str_eq(t_str(json_array_get(f, 1), "title"), "s&amp;t");
	ck_assert_str_eq(t_str(json_array_get(f, 1), "value"), "&lt;u&gt;");
	json_decref(j);
}
END_TEST

/* Invalid UTF-8 anywhere (hand-built events) still yields valid JSON. */
START_TEST(test_invalid_utf8)
{
	struct conf_provider p = t_provider(CONF_PROVIDER_SLACK);
	struct event ev = t_event("K\xc0", "n\xed\xa0\x80", "ns", EVENT_INFO, "r\xfe",
	    "m\xf4\x90\x80\x80 \xe2\x82");
	struct event_kv meta[] = { { "k\xff", "v\xc3", EVENT_META_PLAIN } };

	ev.meta = meta;
	ev.nmeta = 1;
	ev.reporting_controller = "c\x80";
	json_t *j = t_render1(&p, &ev);
	json_t *a = t_att(j, 0);
	ck_assert_str_eq(t_str(j, "username"), "c\xef\xbf\xbd");
	ck_assert_str_eq(t_str(a, "author_name"), "k\xef\xbf\xbd/n\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd.ns");
	ck_assert_str_eq(t_str(a, "title"), "r\xef\xbf\xbd");
	/* an out-of-range 4-byte lead and a truncated sequence: one U+FFFD per bad byte */
	ck_assert_str_eq(t_str(a, "text"),
	    "m\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd");
	json_decref(j);
}
END_TEST

/* ---- truncation ---- */

static const struct {
	int max_text;
	const char *msg;
	const char *want_text;
	const char *want_fallback_line;
} t_trunc_cases[] = {
	{ 5, "abcde", "abcde", "abcde" },
	{ 5, "abcdef", "abcde\xe2\x80\xa6 (1 more characters)", "abcde\xe2\x80\xa6" },
	{ 5, "abcdefghijkl", "abcde\xe2\x80\xa6 (7 more characters)", "abcde\xe2\x80\xa6" },
	{ 5, "", "", "" },
	/* two-byte characters: cut after 5 characters, i.e. 10 bytes */
	{ 5, "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9",
	  "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xe2\x80\xa6 (2 more characters)",
	  "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xe2\x80\xa6" },
	/* a three-byte character is the last one kept */
	{ 5, "abcd\xe2\x82\xacuvw", "abcd\xe2\x82\xac\xe2\x80\xa6 (3 more characters)",
	  "abcd\xe2\x82\xac\xe2\x80\xa6" },
	/* a three-byte character is the first one dropped */
	{ 4, "abcd\xe2\x82\xacuvw", "abcd\xe2\x80\xa6 (4 more characters)", "abcd\xe2\x80\xa6" },
	/* a four-byte emoji straddling the byte boundary of a naive cut */
	{ 5, "abcd\xf0\x9f\x98\x80x", "abcd\xf0\x9f\x98\x80\xe2\x80\xa6 (1 more characters)",
	  "abcd\xf0\x9f\x98\x80\xe2\x80\xa6" },
	{ 1, "\xf0\x9f\x98\x80\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80\xe2\x80\xa6 (1 more characters)",
	  "\xf0\x9f\x98\x80\xe2\x80\xa6" },
	/* entities are never cut and count as one message character */
	{ 5, "abcd&efg", "abcd&amp;\xe2\x80\xa6 (3 more characters)", "abcd&amp;\xe2\x80\xa6" },
	{ 4, "abcd&efg", "abcd\xe2\x80\xa6 (4 more characters)", "abcd\xe2\x80\xa6" },
	{ 5, "abc<<<<", "abc&lt;&lt;\xe2\x80\xa6 (2 more characters)", "abc&lt;&lt;\xe2\x80\xa6" },
	/* the fallback is the first line only, bounded the same way */
	{ 100, "line one\nline two", "line one\nline two", "line one" },
	{ 100, "crlf\r\nnext", "crlf\r\nnext", "crlf" },
	{ 3, "ab\ncdef", "ab\n\xe2\x80\xa6 (4 more characters)", "ab" },
	{ 2, "abcd\nef", "ab\xe2\x80\xa6 (5 more characters)", "ab\xe2\x80\xa6" },
	/* count is of characters, not bytes */
	{ 1, "a\xc3\xa9\xc3\xa9\xc3\xa9", "a\xe2\x80\xa6 (3 more characters)", "a\xe2\x80\xa6" },
};

START_TEST(test_truncation_table)
{
	struct conf_provider p = t_provider(CONF_PROVIDER_SLACK);
	struct event ev = t_event("Kustomization", "w", "ns", EVENT_INFO, "", t_trunc_cases[_i].msg);

	p.max_text = t_trunc_cases[_i].max_text;
	json_t *j = t_render1(&p, &ev);
	json_t *a = t_att(j, 0);
	ck_assert_str_eq(t_str(a, "text"), t_trunc_cases[_i].want_text);
	char *fb = util_printf("kustomization/w.ns: %s", t_trunc_cases[_i].want_fallback_line);
	ck_assert_str_eq(t_str(a, "fallback"), fb);
	free(fb);
	json_decref(j);
}
END_TEST

/* The default max_text (3000) with a 39,000-character message (Flux's maximum). */
START_TEST(test_truncation_default)
{
	struct conf_provider p = t_provider(CONF_PROVIDER_SLACK);
	char *msg = util_malloc(39001);
	memset(msg, 'x', 39000);
	msg[39000] = '\0';
	struct event ev = t_event("Kustomization", "w", "ns", EVENT_INFO, "", msg);

	json_t *j = t_render1(&p, &ev);
	const char *text = t_str(t_att(j, 0), "text");
	const char *marker = "\xe2\x80\xa6 (36000 more characters)";
	ck_assert_uint_eq(strlen(text), 3000 + strlen(marker));
	ck_assert(strspn(text, "x") == 3000);
	ck_assert_str_eq(text + 3000, marker);
	json_decref(j);
	free(msg);
}
END_TEST

static size_t
t_total_text(json_t *root)
{
	size_t total = 0;
	json_t *atts = json_object_get(root, "attachments");
	for (size_t i = 0; i < json_array_size(atts); i++)
		total += t_codepoints(t_str(json_array_get(atts, i), "text"));
	return total;
}

/* 100 attachments of 39,000-character messages stay within 40,000 characters. */
START_TEST(test_total_limit)
{
	static const struct { char fill; const char *unit; } fills[] = {
		{ 'x', "x" }, { '&', "&amp;" },
	};
	for (size_t f = 0; f < 2; f++) {
		struct conf_provider p = t_provider(CONF_PROVIDER_SLACK);
		char *msg = util_malloc(39001);
		memset(msg, fills[f].fill, 39000);
		msg[39000] = '\0';
		struct event *ev = util_calloc(SLACK_MAX_ATTACHMENTS, sizeof(*ev));
		struct slack_item *items = util_calloc(SLACK_MAX_ATTACHMENTS, sizeof(*items));
		for (size_t i = 0; i < SLACK_MAX_ATTACHMENTS; i++) {
			ev[i] = t_event("Kustomization", "w", "ns", EVENT_ERROR, "", msg);
			items[i].ev = &ev[i];
		}
		json_t *j = t_render(&p, NULL, items, SLACK_MAX_ATTACHMENTS);
		size_t total = t_total_text(j);
		ck_assert_msg(total <= 40000, "total %zu > 40000", total);
		ck_assert_uint_eq(json_array_size(json_object_get(j, "attachments")), 100);
		size_t ulen = strlen(fills[f].unit);
		for (size_t i = 0; i < SLACK_MAX_ATTACHMENTS; i++) {
			const char *text = t_str(t_att(j, i), "text");
			/* each text: k units, then the marker counting 39000 - k */
			size_t k = 0;
			while (strncmp(text + k * ulen, fills[f].unit, ulen) == 0)
				k++;
			char *marker = util_printf("\xe2\x80\xa6 (%zu more characters)", 39000 - k);
			ck_assert_str_eq(text + k * ulen, marker);
			free(marker);
			/* the budget is shared fairly and not needlessly small */
			ck_assert_msg(k * (f ? 5 : 1) >= 300, "only %zu characters kept", k);
		}
		json_decref(j);
		free(items);
		free(ev);
		free(msg);
	}
}
END_TEST

/* Below the total nothing shrinks; just above, each text shrinks to fit. */
START_TEST(test_total_limit_edges)
{
	struct conf_provider p = t_provider(CONF_PROVIDER_SLACK);
	char *msg = util_malloc(3001);
	memset(msg, 'y', 3000);
	msg[3000] = '\0';
	struct event ev[14];
	struct slack_item items[14];
	for (size_t i = 0; i < 14; i++) {
		ev[i] = t_event("Kustomization", "w", "ns", EVENT_ERROR, "", msg);
		items[i] = (struct slack_item){ .ev = &ev[i], .extra = NULL, .nextra = 0 };
	}
	/* 13 × 3000 = 39,000: untouched */
	json_t *j = t_render(&p, NULL, items, 13);
	for (size_t i = 0; i < 13; i++)
		ck_assert_str_eq(t_str(t_att(j, i), "text"), msg);
	json_decref(j);
	/* 14 × 3000 = 42,000: cut, total within the limit */
	j = t_render(&p, NULL, items, 14);
	size_t total = t_total_text(j);
	ck_assert_msg(total <= 40000 && total > 39000, "total %zu", total);
	for (size_t i = 0; i < 14; i++)
		ck_assert_ptr_nonnull(strstr(t_str(t_att(j, i), "text"), " more characters)"));
	json_decref(j);
	free(msg);
}
END_TEST

START_TEST(test_attachment_count)
{
	struct conf_provider p = t_provider(CONF_PROVIDER_SLACK);
	struct event ev = t_event("Kustomization", "w", "ns", EVENT_ERROR, "", "m");
	struct slack_item items[SLACK_MAX_ATTACHMENTS + 1];

	for (size_t i = 0; i < SLACK_MAX_ATTACHMENTS + 1; i++)
		items[i] = (struct slack_item){ .ev = &ev, .extra = NULL, .nextra = 0 };
	ck_assert_ptr_null(slack_render(&p, NULL, items, SLACK_MAX_ATTACHMENTS + 1));
	ck_assert_ptr_null(slack_render(&p, NULL, items, 0));
	json_t *j = slack_render(&p, NULL, items, SLACK_MAX_ATTACHMENTS);
	ck_assert_ptr_nonnull(j);
	ck_assert_uint_eq(json_array_size(json_object_get(j, "attachments")), 100);
	ck_assert_str_eq(t_str(j, "text"), "100 events");
	json_decref(j);
}
END_TEST

/* ---- fields ---- */

START_TEST(test_hidden_keys)
{
	struct conf_provider p = t_provider(CONF_PROVIDER_SLACK);
	struct event ev = t_event("Kustomization", "w", "ns", EVENT_INFO, "", "m");
	struct event_kv meta[] = {
		{ "checksum", "abc", EVENT_META_CONTROLLER },
		{ "digest", "sha256:1", EVENT_META_PLAIN },
		{ "revision", "main@sha1:1", EVENT_META_CONTROLLER },
		{ "token", "t", EVENT_META_ANNOTATION },
	};
	json_t *j, *f;

	ev.meta = meta;
	ev.nmeta = 4;
	j = t_render1(&p, &ev);
	f = json_object_get(t_att(j, 0), "fields");
	ck_assert_uint_eq(json_array_size(f), 1);
	ck_assert_str_eq(t_str(json_array_get(f, 0), "title"), "revision");
	ck_assert_str_eq(t_str(json_array_get(f, 0), "value"), "main@sha1:1");
	ck_assert(json_is_false(json_object_get(json_array_get(f, 0), "short")));
	json_decref(j);

	/* only hidden keys: no "fields" at all */
	struct event_kv only_hidden[] = { { "token", "t", EVENT_META_CONTROLLER } };
	ev.meta = only_hidden;
	ev.nmeta = 1;
	j = t_render1(&p, &ev);
	ck_assert_ptr_null(json_object_get(t_att(j, 0), "fields"));
	json_decref(j);

	/* the same from a fixture-like event parsed for real */
	const char *body = "{\"involvedObject\":{\"kind\":\"HelmRelease\",\"name\":\"p\","
	    "\"namespace\":\"n\",\"apiVersion\":\"helm.toolkit.fluxcd.io/v2\"},"
	    "\"severity\":\"info\",\"message\":\"m\",\"metadata\":{"
	    "\"helm.toolkit.fluxcd.io/token\":\"x\",\"helm.toolkit.fluxcd.io/revision\":\"1.2.3\","
	    "\"event.toolkit.fluxcd.io/checksum\":\"c\",\"helm.toolkit.fluxcd.io/digest\":\"d\"}}";
	char err[128], field[64];
	struct event *pev = event_parse(body, strlen(body), err, sizeof(err), field, sizeof(field));
	ck_assert_msg(pev != NULL, "%s", err);
	j = t_render1(&p, pev);
	char *fs = json_dumps(json_object_get(t_att(j, 0), "fields"), JSON_COMPACT);
	ck_assert_str_eq(fs, "[{\"title\":\"revision\",\"value\":\"1.2.3\",\"short\":false}]");
	free(fs);
	json_decref(j);
	event_free(pev);
}
END_TEST

START_TEST(test_field_precedence)
{
	struct conf_provider p = t_provider(CONF_PROVIDER_SLACK);
	struct event ev = t_event("Kustomization", "w", "ns", EVENT_INFO, "", "m");
	/* as event_parse leaves them: sorted by key, unique */
	struct event_kv meta[] = {
		{ "Zeta", "ev-Z", EVENT_META_PLAIN },
		{ "a", "ev-a", EVENT_META_ANNOTATION },
		{ "b", "ev-b", EVENT_META_PLAIN },
		{ "c", "ev-c", EVENT_META_CONTROLLER },
		{ "e", "ev-e", EVENT_META_ANNOTATION },
		{ "summary", "ev-summary", EVENT_META_ANNOTATION },
	};
	struct conf_kv extra[] = {
		{ "d", "x-d" }, { "c", "x-c" }, { "b", "x-b" }, { "a", "x-a" },
		{ "d", "x-d2" },                      /* a later duplicate wins */
		{ "summary", "production" },
	};
	struct slack_item it = { .ev = &ev, .extra = extra, .nextra = 6 };
	static const char *const want[][2] = {
		{ "Zeta", "ev-Z" },        /* strcmp order: upper case first */
		{ "a", "x-a" },            /* alert extra beats annotations */
		{ "b", "ev-b" },           /* plain keys beat alert extra */
		{ "c", "ev-c" },           /* controller keys beat alert extra */
		{ "d", "x-d2" },
		{ "e", "ev-e" },
		{ "summary", "production" },
	};

	ev.meta = meta;
	ev.nmeta = 6;
	json_t *j = t_render(&p, NULL, &it, 1);
	json_t *f = json_object_get(t_att(j, 0), "fields");
	ck_assert_uint_eq(json_array_size(f), 7);
	for (size_t i = 0; i < 7; i++) {
		json_t *o = json_array_get(f, i);
		ck_assert_str_eq(t_str(o, "title"), want[i][0]);
		ck_assert_str_eq(t_str(o, "value"), want[i][1]);
		ck_assert(json_is_boolean(json_object_get(o, "short")));
		ck_assert_uint_eq(json_object_size(o), 3);
	}
	json_decref(j);

	/* extra alone, no event metadata */
	ev.nmeta = 0;
	struct conf_kv ex2[] = { { "summary", "s" }, { "cluster", "c1" } };
	it.extra = ex2;
	it.nextra = 2;
	j = t_render(&p, NULL, &it, 1);
	f = json_object_get(t_att(j, 0), "fields");
	ck_assert_uint_eq(json_array_size(f), 2);
	ck_assert_str_eq(t_str(json_array_get(f, 0), "title"), "cluster");
	ck_assert_str_eq(t_str(json_array_get(f, 1), "title"), "summary");
	json_decref(j);
}
END_TEST

/* ---- classification ---- */

#define T_BOT CONF_PROVIDER_SLACK_BOT
#define T_HOOK CONF_PROVIDER_SLACK

static const struct {
	enum conf_provider_type type;
	int transport;
	const char *tmsg;
	long status;
	const char *retry_after;
	const char *body;
	enum slack_outcome want;
	double want_retry;
	const char *want_error;
} t_class_cases[] = {
	/* no HTTP answer */
	{ T_HOOK, 1, "Connection refused", 0, NULL, NULL, SLACK_TRANSIENT, 0, "transport: Connection refused" },
	{ T_HOOK, 1, "Operation timed out after 10000 milliseconds", 0, NULL, NULL, SLACK_TRANSIENT, 0,
	  "transport: Operation timed out after 10000 milliseconds" },
	{ T_HOOK, 1, "Could not resolve host: hooks.slack.com", 0, NULL, NULL, SLACK_TRANSIENT, 0,
	  "transport: Could not resolve host: hooks.slack.com" },
	{ T_BOT, 1, "SSL connect error\n", 0, NULL, NULL, SLACK_TRANSIENT, 0, "transport: SSL connect error" },
	{ T_BOT, 1, "Connection reset by peer", 0, NULL, NULL, SLACK_TRANSIENT, 0,
	  "transport: Connection reset by peer" },
	{ T_HOOK, 1, NULL, 0, NULL, NULL, SLACK_TRANSIENT, 0, "transport: error" },

	/* incoming webhook */
	{ T_HOOK, 0, NULL, 200, NULL, "ok", SLACK_DELIVERED, 0, "" },
	{ T_HOOK, 0, NULL, 200, NULL, NULL, SLACK_DELIVERED, 0, "" },
	{ T_HOOK, 0, NULL, 204, NULL, "", SLACK_DELIVERED, 0, "" },
	{ T_HOOK, 0, NULL, 201, NULL, "{\"ok\":false}", SLACK_DELIVERED, 0, "" },
	{ T_HOOK, 0, NULL, 429, NULL, "rate_limited", SLACK_RATE_LIMITED, 1, "HTTP 429 rate_limited" },
	{ T_HOOK, 0, NULL, 429, "30", NULL, SLACK_RATE_LIMITED, 30, "HTTP 429" },
	{ T_HOOK, 0, NULL, 429, "soon", NULL, SLACK_RATE_LIMITED, 1, "HTTP 429" },
	{ T_HOOK, 0, NULL, 429, "-3", NULL, SLACK_RATE_LIMITED, 1, "HTTP 429" },
	{ T_HOOK, 0, NULL, 429, "Sun, 06 Nov 1994 08:50:07 GMT", NULL, SLACK_RATE_LIMITED, 30, "HTTP 429" },
	{ T_HOOK, 0, NULL, 429, "Sun, 06 Nov 1994 08:00:00 GMT", NULL, SLACK_RATE_LIMITED, 0, "HTTP 429" },
	{ T_HOOK, 0, NULL, 500, NULL, "rollup_error", SLACK_TRANSIENT, 0, "HTTP 500 rollup_error" },
	{ T_HOOK, 0, NULL, 501, NULL, NULL, SLACK_TRANSIENT, 0, "HTTP 501" },
	{ T_HOOK, 0, NULL, 502, NULL, "<html>\r\n  <body>Bad Gateway</body>\n</html>\n", SLACK_TRANSIENT, 0,
	  "HTTP 502 <html> <body>Bad Gateway</body> </html>" },
	{ T_HOOK, 0, NULL, 503, NULL, "", SLACK_TRANSIENT, 0, "HTTP 503" },
	{ T_HOOK, 0, NULL, 599, NULL, NULL, SLACK_TRANSIENT, 0, "HTTP 599" },
	{ T_HOOK, 0, NULL, 408, NULL, NULL, SLACK_TRANSIENT, 0, "HTTP 408" },
	{ T_HOOK, 0, NULL, 400, NULL, "invalid_payload", SLACK_PERMANENT, 0, "HTTP 400 invalid_payload" },
	{ T_HOOK, 0, NULL, 400, NULL, "no_text", SLACK_PERMANENT, 0, "HTTP 400 no_text" },
	{ T_HOOK, 0, NULL, 400, NULL, "too_many_attachments", SLACK_PERMANENT, 0,
	  "HTTP 400 too_many_attachments" },
	{ T_HOOK, 0, NULL, 403, NULL, "action_prohibited", SLACK_PERMANENT, 0, "HTTP 403 action_prohibited" },
	{ T_HOOK, 0, NULL, 403, NULL, "invalid_token", SLACK_PERMANENT, 0, "HTTP 403 invalid_token" },
	{ T_HOOK, 0, NULL, 404, NULL, "no_service", SLACK_PERMANENT, 0, "HTTP 404 no_service" },
	{ T_HOOK, 0, NULL, 404, NULL, "channel_not_found\n", SLACK_PERMANENT, 0, "HTTP 404 channel_not_found" },
	{ T_HOOK, 0, NULL, 410, NULL, "channel_is_archived", SLACK_PERMANENT, 0, "HTTP 410 channel_is_archived" },
	{ T_HOOK, 0, NULL, 404, NULL, "{\"ok\":false,\"error\":\"no_team\"}", SLACK_PERMANENT, 0,
	  "HTTP 404 no_team" },
	{ T_HOOK, 0, NULL, 401, NULL, NULL, SLACK_PERMANENT, 0, "HTTP 401" },
	{ T_HOOK, 0, NULL, 301, NULL, NULL, SLACK_PERMANENT, 0, "HTTP 301" },
	{ T_HOOK, 0, NULL, 101, NULL, NULL, SLACK_PERMANENT, 0, "HTTP 101" },
	{ CONF_PROVIDER_CONSOLE, 0, NULL, 200, NULL, NULL, SLACK_DELIVERED, 0, "" },

	/* Web API */
	{ T_BOT, 0, NULL, 200, NULL, "{\"ok\":true,\"channel\":\"C1\",\"ts\":\"1.2\"}", SLACK_DELIVERED, 0, "" },
	{ T_BOT, 0, NULL, 200, NULL, "{\"ok\":true,\"warning\":\"missing_charset\"}", SLACK_DELIVERED, 0, "" },
	{ T_BOT, 0, NULL, 200, "7", "{\"ok\":false,\"error\":\"ratelimited\"}", SLACK_RATE_LIMITED, 7,
	  "HTTP 200 ratelimited" },
	{ T_BOT, 0, NULL, 200, NULL, "{\"ok\":false,\"error\":\"ratelimited\"}", SLACK_RATE_LIMITED, 1,
	  "HTTP 200 ratelimited" },
	{ T_BOT, 0, NULL, 200, NULL, "{\"ok\":false,\"error\":\"internal_error\"}", SLACK_TRANSIENT, 0,
	  "HTTP 200 internal_error" },
	{ T_BOT, 0, NULL, 200, NULL, "{\"ok\":false,\"error\":\"service_unavailable\"}", SLACK_TRANSIENT, 0,
	  "HTTP 200 service_unavailable" },
	{ T_BOT, 0, NULL, 200, NULL, "{\"ok\":false,\"error\":\"request_timeout\"}", SLACK_TRANSIENT, 0,
	  "HTTP 200 request_timeout" },
	{ T_BOT, 0, NULL, 200, NULL, "{\"ok\":false,\"error\":\"fatal_error\"}", SLACK_TRANSIENT, 0,
	  "HTTP 200 fatal_error" },
	{ T_BOT, 0, NULL, 200, NULL, "{\"ok\":false,\"error\":\"channel_not_found\"}", SLACK_PERMANENT, 0,
	  "HTTP 200 channel_not_found" },
	{ T_BOT, 0, NULL, 200, NULL, "{\"ok\":false,\"error\":\"invalid_auth\"}", SLACK_PERMANENT, 0,
	  "HTTP 200 invalid_auth" },
	{ T_BOT, 0, NULL, 200, NULL, "{\"ok\":false,\"error\":\"not_in_channel\"}", SLACK_PERMANENT, 0,
	  "HTTP 200 not_in_channel" },
	{ T_BOT, 0, NULL, 200, NULL, "{\"ok\":false,\"error\":\"is_archived\"}", SLACK_PERMANENT, 0,
	  "HTTP 200 is_archived" },
	{ T_BOT, 0, NULL, 200, NULL, "{\"ok\":false,\"error\":\"msg_too_long\"}", SLACK_PERMANENT, 0,
	  "HTTP 200 msg_too_long" },
	{ T_BOT, 0, NULL, 200, NULL, "{\"ok\":false,\"error\":\"internal_errorx\"}", SLACK_PERMANENT, 0,
	  "HTTP 200 internal_errorx" },
	{ T_BOT, 0, NULL, 200, NULL, "{\"ok\":false}", SLACK_PERMANENT, 0, "HTTP 200 {\"ok\":false}" },
	{ T_BOT, 0, NULL, 200, NULL, "ok", SLACK_TRANSIENT, 0, "HTTP 200 unexpected response: ok" },
	{ T_BOT, 0, NULL, 200, NULL, NULL, SLACK_TRANSIENT, 0, "HTTP 200 unexpected response: (empty body)" },
	{ T_BOT, 0, NULL, 200, NULL, "  \n", SLACK_TRANSIENT, 0, "HTTP 200 unexpected response: (empty body)" },
	{ T_BOT, 0, NULL, 200, NULL, "{\"ok\":\"true\"}", SLACK_TRANSIENT, 0,
	  "HTTP 200 unexpected response: {\"ok\":\"true\"}" },
	{ T_BOT, 0, NULL, 200, NULL, "[true]", SLACK_TRANSIENT, 0, "HTTP 200 unexpected response: [true]" },
	{ T_BOT, 0, NULL, 200, NULL, "{\"ok\":tru", SLACK_TRANSIENT, 0, "HTTP 200 unexpected response: {\"ok\":tru" },
	{ T_BOT, 0, NULL, 429, "12", NULL, SLACK_RATE_LIMITED, 12, "HTTP 429" },
	{ T_BOT, 0, NULL, 429, NULL, "{\"ok\":false,\"error\":\"ratelimited\"}", SLACK_RATE_LIMITED, 1,
	  "HTTP 429 ratelimited" },
	{ T_BOT, 0, NULL, 500, NULL, NULL, SLACK_TRANSIENT, 0, "HTTP 500" },
	{ T_BOT, 0, NULL, 503, NULL, "{\"ok\":false,\"error\":\"service_unavailable\"}", SLACK_TRANSIENT, 0,
	  "HTTP 503 service_unavailable" },
	{ T_BOT, 0, NULL, 408, NULL, NULL, SLACK_TRANSIENT, 0, "HTTP 408" },
	{ T_BOT, 0, NULL, 403, NULL, "{\"ok\":false,\"error\":\"invalid_auth\"}", SLACK_PERMANENT, 0,
	  "HTTP 403 invalid_auth" },
	{ T_BOT, 0, NULL, 400, NULL, "{\"ok\":false,\"error\":\"invalid_blocks\"}", SLACK_PERMANENT, 0,
	  "HTTP 400 invalid_blocks" },
	{ T_BOT, 0, NULL, 404, NULL, "not found", SLACK_PERMANENT, 0, "HTTP 404 not found" },
	{ T_BOT, 0, NULL, 302, NULL, NULL, SLACK_PERMANENT, 0, "HTTP 302" },
};

/* Sun, 06 Nov 1994 08:49:37 GMT */
#define T_NOW ((time_t)784111777)

START_TEST(test_classify_table)
{
	struct slack_response r;
	struct slack_result out;

	memset(&r, 0, sizeof(r));
	r.transport_error = t_class_cases[_i].transport;
	r.transport_msg = t_class_cases[_i].tmsg;
	r.status = t_class_cases[_i].status;
	r.retry_after = t_class_cases[_i].retry_after;
	r.body = t_class_cases[_i].body;
	r.body_len = r.body ? strlen(r.body) : 0;
	memset(&out, 0x5a, sizeof(out));      /* everything must be set */
	slack_classify(t_class_cases[_i].type, &r, T_NOW, &out);
	ck_assert_msg(out.outcome == t_class_cases[_i].want, "case %d: outcome %d, want %d",
	    _i, out.outcome, t_class_cases[_i].want);
	ck_assert_msg(out.retry_after == t_class_cases[_i].want_retry,
	    "case %d: retry_after %g, want %g", _i, out.retry_after, t_class_cases[_i].want_retry);
	ck_assert_msg(memchr(out.error, '\0', sizeof(out.error)) != NULL, "case %d: unterminated", _i);
	ck_assert_msg(strcmp(out.error, t_class_cases[_i].want_error) == 0,
	    "case %d: error \"%s\", want \"%s\"", _i, out.error, t_class_cases[_i].want_error);
}
END_TEST

/* Error text: non-printable bytes replaced, long bodies cut to fit, never the URL. */
START_TEST(test_classify_error_text)
{
	struct slack_response r;
	struct slack_result out;
	static const char body[] = "\x01" "bad\x7f\xc3\xa9\0x";

	memset(&r, 0, sizeof(r));
	r.status = 400;
	r.body = body;
	r.body_len = sizeof(body) - 1;        /* includes the NUL byte */
	slack_classify(T_HOOK, &r, T_NOW, &out);
	ck_assert_str_eq(out.error, "HTTP 400 ?bad????x");

	char *big = util_malloc(5001);
	memset(big, 'a', 5000);
	big[5000] = '\0';
	r.body = big;
	r.body_len = 5000;
	slack_classify(T_HOOK, &r, T_NOW, &out);
	ck_assert_uint_eq(strlen(out.error), sizeof(out.error) - 1);
	ck_assert(strncmp(out.error, "HTTP 400 aaaa", 13) == 0);
	ck_assert_str_eq(out.error + sizeof(out.error) - 4, "...");
	/* a long JSON error string is cut the same way */
	char *js = util_printf("{\"ok\":false,\"error\":\"%s\"}", big);
	r.body = js;
	r.body_len = strlen(js);
	slack_classify(T_BOT, &r, T_NOW, &out);
	ck_assert_int_eq(out.outcome, SLACK_PERMANENT);
	ck_assert_uint_eq(strlen(out.error), sizeof(out.error) - 1);
	ck_assert(strncmp(out.error, "HTTP 400 aaaa", 13) == 0);
	free(js);
	/* exactly fitting text is not cut */
	size_t fit = sizeof(out.error) - 1 - strlen("HTTP 400 ");
	r.body = big;
	r.body_len = fit;
	slack_classify(T_HOOK, &r, T_NOW, &out);
	ck_assert_uint_eq(strlen(out.error), sizeof(out.error) - 1);
	ck_assert_ptr_null(strstr(out.error, "..."));
	free(big);
}
END_TEST

/* ---- Retry-After ---- */

static const struct {
	const char *value;
	time_t now;
	double want;
} t_retry_cases[] = {
	{ NULL, T_NOW, -1 },
	{ "", T_NOW, -1 },
	{ "   ", T_NOW, -1 },
	{ "0", T_NOW, 0 },
	{ "1", T_NOW, 1 },
	{ "120", T_NOW, 120 },
	{ " 5\t", T_NOW, 5 },
	{ "007", T_NOW, 7 },
	{ "99999999999999999999999", T_NOW, 2147483647 },
	{ "-5", T_NOW, -1 },
	{ "+5", T_NOW, -1 },
	{ "1.5", T_NOW, -1 },
	{ "5s", T_NOW, -1 },
	{ "5 6", T_NOW, -1 },
	{ "abc", T_NOW, -1 },
	{ "0x10", T_NOW, -1 },
	/* IMF-fixdate */
	{ "Sun, 06 Nov 1994 08:49:37 GMT", T_NOW, 0 },
	{ "Sun, 06 Nov 1994 08:49:37 GMT", T_NOW - 100, 100 },
	{ "Sun, 06 Nov 1994 08:50:37 GMT", T_NOW, 60 },
	{ "Mon, 07 Nov 1994 08:49:37 GMT", T_NOW, 86400 },
	{ "Sun, 06 Nov 1994 08:49:36 GMT", T_NOW, 0 },            /* past: 0, never negative */
	{ "Thu, 01 Jan 1970 00:00:00 GMT", T_NOW, 0 },
	{ "Sun, 06 Nov 1994 08:49:60 GMT", T_NOW, 23 },           /* leap second */
	{ "Tue, 19 Jan 2038 03:14:08 GMT", (time_t)2147483600, 48 },   /* past 2^31 */
	{ "Thu, 29 Feb 1996 00:00:00 GMT", (time_t)825552000 - 10, 10 },
	{ "sun, 06 nov 1994 08:49:47 gmt", T_NOW, 10 },           /* case-insensitive */
	/* RFC 850 and asctime */
	{ "Sunday, 06-Nov-94 08:49:47 GMT", T_NOW, 10 },
	{ "Friday, 01-Jan-27 00:00:00 GMT", (time_t)1798761600 - 5, 5 },   /* yy < 70: 20yy */
	{ "Sun Nov  6 08:49:57 1994", T_NOW, 20 },
	{ "Sun Nov 16 08:49:37 1994", T_NOW, 864000 },
	/* garbage dates */
	{ "Sun, 06 Nov 1994 08:49:37 UTC", T_NOW, -1 },
	{ "Sun, 06 Nov 1994 08:49:37", T_NOW, -1 },
	{ "Sun, 06 Nov 1994 08:49:37 GMT x", T_NOW, -1 },
	{ "Sun, 6 Nov 1994 08:49:37 GMT", T_NOW, -1 },
	{ "Xyz, 06 Nov 1994 08:49:37 GMT", T_NOW, -1 },
	{ "Sun, 06 Foo 1994 08:49:37 GMT", T_NOW, -1 },
	{ "Sun, 31 Feb 1994 08:49:37 GMT", T_NOW, -1 },
	{ "Sun, 00 Nov 1994 08:49:37 GMT", T_NOW, -1 },
	{ "Sun, 06 Nov 1994 24:00:00 GMT", T_NOW, -1 },
	{ "Sun, 06 Nov 1994 08:60:00 GMT", T_NOW, -1 },
	{ "Sun, 06 Nov 1994 08:49:61 GMT", T_NOW, -1 },
	{ "Sun, 06 Nov 1994 8:49:37 GMT", T_NOW, -1 },
	{ "Sun Nov 6 08:49:57 1994", T_NOW, -1 },
	{ "Sunday, 06 Nov 1994 08:49:37 GMT", T_NOW, -1 },
	{ "2022-10-28T07:26:19Z", T_NOW, -1 },
};

START_TEST(test_retry_after_table)
{
	double got = slack_parse_retry_after(t_retry_cases[_i].value, t_retry_cases[_i].now);
	ck_assert_msg(got == t_retry_cases[_i].want, "case %d \"%s\": got %g, want %g", _i,
	    t_retry_cases[_i].value ? t_retry_cases[_i].value : "(null)", got,
	    t_retry_cases[_i].want);
}
END_TEST

/* ---- bounds of every rendered part (SPEC §9) ---- */

/* A new string of n copies of the UTF-8 character c. */
static char *
t_repeat(const char *c, size_t n)
{
	struct util_buf b = { 0 };
	for (size_t i = 0; i < n; i++)
		util_buf_puts(&b, c);
	return b.data ? b.data : util_strdup("");
}

START_TEST(test_bounds_names)
{
	struct conf_provider p = t_provider(CONF_PROVIDER_SLACK);
	char *longname = t_repeat("n", 600);
	char *longreason = t_repeat("\xc3\xa9", 600);      /* é: counted as characters */
	char *exact = t_repeat("&", SLACK_MAX_NAME);        /* fits: counted before escaping */
	struct event ev = t_event("Kustomization", longname, NULL, EVENT_ERROR, longreason, "m");
	ev.reporting_controller = longname;
	json_t *j = t_render1(&p, &ev), *a = t_att(j, 0);

	const char *author = t_str(a, "author_name"), *title = t_str(a, "title");
	const char *user = t_str(j, "username");
	ck_assert_uint_eq(t_codepoints(author), SLACK_MAX_NAME);
	ck_assert_uint_eq(t_codepoints(title), SLACK_MAX_NAME);
	ck_assert_uint_eq(t_codepoints(user), SLACK_MAX_NAME);
	ck_assert(strncmp(author, "kustomization/nnn", 17) == 0);
	ck_assert_str_eq(author + strlen(author) - 3, "\xe2\x80\xa6");
	ck_assert_str_eq(title + strlen(title) - 3, "\xe2\x80\xa6");
	ck_assert_str_eq(user + strlen(user) - 3, "\xe2\x80\xa6");
	/* the fallback starts with the bounded author, not the whole name */
	ck_assert(strncmp(t_str(a, "fallback"), author, strlen(author)) == 0);
	ck_assert_uint_lt(strlen(t_str(a, "fallback")), 1000);
	json_decref(j);

	/* The provider's username is bounded the same way; a part that fits is kept whole. */
	p.username = longname;
	ev.reason = exact;
	j = t_render1(&p, &ev);
	ck_assert_uint_eq(t_codepoints(t_str(j, "username")), SLACK_MAX_NAME);
	char *want = t_repeat("&amp;", SLACK_MAX_NAME);
	ck_assert_str_eq(t_str(t_att(j, 0), "title"), want);
	free(want);
	json_decref(j);
	free(longname);
	free(longreason);
	free(exact);
}
END_TEST

START_TEST(test_bounds_fields)
{
	struct conf_provider p = t_provider(CONF_PROVIDER_SLACK);
	struct event ev = t_event("Kustomization", "w", "ns", EVENT_INFO, "", "m");
	enum { NKEYS = 120 };
	struct event_kv meta[NKEYS];
	char keys[NKEYS][8];
	char *longkey = t_repeat("k", 150), *longval = t_repeat("<", 5000);

	for (int i = 0; i < NKEYS; i++) {
		snprintf(keys[i], sizeof(keys[i]), "k%03d", i);
		meta[i].key = keys[i];
		meta[i].value = "v";
		meta[i].origin = EVENT_META_CONTROLLER;
	}
	ev.meta = meta;
	ev.nmeta = NKEYS;
	json_t *j = t_render1(&p, &ev);
	json_t *f = json_object_get(t_att(j, 0), "fields");
	ck_assert_uint_eq(json_array_size(f), SLACK_MAX_FIELDS);
	ck_assert_str_eq(t_str(json_array_get(f, 0), "title"), "k000");
	ck_assert_str_eq(t_str(json_array_get(f, SLACK_MAX_FIELDS - 2), "title"), "k048");
	json_t *more = json_array_get(f, SLACK_MAX_FIELDS - 1);
	ck_assert_str_eq(t_str(more, "title"), "71 more fields not shown");
	ck_assert_str_eq(t_str(more, "value"), "");
	ck_assert(json_is_false(json_object_get(more, "short")));
	json_decref(j);

	/* exactly SLACK_MAX_FIELDS: all shown, no marker */
	ev.nmeta = SLACK_MAX_FIELDS;
	j = t_render1(&p, &ev);
	f = json_object_get(t_att(j, 0), "fields");
	ck_assert_uint_eq(json_array_size(f), SLACK_MAX_FIELDS);
	ck_assert_str_eq(t_str(json_array_get(f, SLACK_MAX_FIELDS - 1), "title"), "k049");
	json_decref(j);

	/* a field's title and value are bounded, counted before escaping */
	struct event_kv one[] = { { longkey, longval, EVENT_META_CONTROLLER } };
	ev.meta = one;
	ev.nmeta = 1;
	j = t_render1(&p, &ev);
	f = json_array_get(json_object_get(t_att(j, 0), "fields"), 0);
	ck_assert_uint_eq(t_codepoints(t_str(f, "title")), SLACK_MAX_FIELD_TITLE);
	const char *v = t_str(f, "value");
	ck_assert(strncmp(v, "&lt;&lt;", 8) == 0);
	ck_assert_uint_eq(strlen(v), (SLACK_MAX_FIELD_VALUE - 1) * 4 + 3);
	json_decref(j);
	free(longkey);
	free(longval);
}
END_TEST

/* A 4.6 MB payload came from 100,000 metadata keys: now it stays small. */
START_TEST(test_bounds_huge_event)
{
	struct conf_provider p = t_provider(CONF_PROVIDER_SLACK);
	enum { NKEYS = 100000 };
	struct event_kv *meta = util_calloc(NKEYS, sizeof(*meta));
	char (*keys)[12] = util_calloc(NKEYS, sizeof(*keys));
	char *name = t_repeat("x", 1000000);
	for (int i = 0; i < NKEYS; i++) {
		snprintf(keys[i], sizeof(keys[i]), "key%06d", i);
		meta[i].key = keys[i];
		meta[i].value = "some value of forty characters or so....";
		meta[i].origin = EVENT_META_PLAIN;
	}
	struct event ev = t_event("Kustomization", name, name, EVENT_ERROR, name, name);
	ev.reporting_controller = name;
	ev.meta = meta;
	ev.nmeta = NKEYS;
	struct slack_item it = { .ev = &ev, .extra = NULL, .nextra = 0 };
	char *s = slack_render_string(&p, NULL, &it, 1);
	ck_assert_ptr_nonnull(s);
	ck_assert_msg(strlen(s) < 20000, "payload of %zu bytes", strlen(s));
	free(s);
	free(name);
	free(keys);
	free(meta);
}
END_TEST

/* ---- refused as too large or invalid: worth splitting a coalesced message ---- */

static const struct {
	enum conf_provider_type type;
	long status;
	const char *body;
	int oversize;
} t_oversize_cases[] = {
	{ CONF_PROVIDER_SLACK, 413, NULL, 1 },
	{ CONF_PROVIDER_SLACK, 413, "Request Entity Too Large", 1 },
	{ CONF_PROVIDER_SLACK, 400, "invalid_payload", 1 },
	{ CONF_PROVIDER_SLACK, 400, "invalid_payload\n", 1 },
	{ CONF_PROVIDER_SLACK, 400, "msg_too_long", 1 },
	{ CONF_PROVIDER_SLACK, 400, "invalid_blocks", 1 },
	{ CONF_PROVIDER_SLACK, 400, "invalid_payloads", 0 },
	{ CONF_PROVIDER_SLACK, 400, "no_text", 0 },
	{ CONF_PROVIDER_SLACK, 404, "channel_not_found", 0 },
	{ CONF_PROVIDER_SLACK, 500, "invalid_payload", 0 },   /* transient, not split */
	{ CONF_PROVIDER_SLACK_BOT, 200, "{\"ok\":false,\"error\":\"msg_too_long\"}", 1 },
	{ CONF_PROVIDER_SLACK_BOT, 200, "{\"ok\":false,\"error\":\"invalid_blocks\"}", 1 },
	{ CONF_PROVIDER_SLACK_BOT, 200, "{\"ok\":false,\"error\":\"channel_not_found\"}", 0 },
	{ CONF_PROVIDER_SLACK_BOT, 200, "{\"ok\":true}", 0 },
};

START_TEST(test_classify_oversize)
{
	struct slack_response r;
	struct slack_result out;

	memset(&r, 0, sizeof(r));
	r.status = t_oversize_cases[_i].status;
	r.body = t_oversize_cases[_i].body;
	r.body_len = r.body ? strlen(r.body) : 0;
	slack_classify(t_oversize_cases[_i].type, &r, T_NOW, &out);
	ck_assert_msg(out.oversize == t_oversize_cases[_i].oversize, "case %d (%s): oversize %d",
	    _i, out.error, out.oversize);
}
END_TEST

/* ---- the provider's secrets never appear in an error text ---- */

START_TEST(test_secrets_of_provider)
{
	struct conf_provider p = t_provider(CONF_PROVIDER_SLACK);
	p.url = "https://hooks.slack.com/services/T0123ABCD/B0456EFGH/abcdefSECRET?x=y";
	char **s = slack_secrets(&p);
	ck_assert_ptr_nonnull(s);
	static const char *const want[] = {
		"https://hooks.slack.com/services/T0123ABCD/B0456EFGH/abcdefSECRET?x=y",
		"/services/T0123ABCD/B0456EFGH/abcdefSECRET?x=y", "abcdefSECRET", "T0123ABCD",
		"B0456EFGH", "x=y",
	};
	size_t n = 0;
	while (s[n] != NULL) {
		ck_assert_str_ne(s[n], "services");
		if (n > 0)
			ck_assert_uint_ge(strlen(s[n - 1]), strlen(s[n]));   /* longest first */
		n++;
	}
	ck_assert_uint_eq(n, sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < n; i++) {
		bool found = false;
		for (size_t k = 0; k < n; k++)
			found = found || strcmp(s[k], want[i]) == 0;
		ck_assert_msg(found, "%s not among the secrets", want[i]);
	}
	slack_secrets_free(s);
	slack_secrets_free(NULL);

	struct conf_provider bot = t_provider(CONF_PROVIDER_SLACK_BOT);
	s = slack_secrets(&bot);
	ck_assert_str_eq(s[0], "xoxb-test");
	ck_assert_ptr_null(s[1]);
	slack_secrets_free(s);
	struct conf_provider console = t_provider(CONF_PROVIDER_CONSOLE);
	ck_assert_ptr_null(slack_secrets(&console));
}
END_TEST

START_TEST(test_classify_redacts_secrets)
{
	struct conf_provider p = t_provider(CONF_PROVIDER_SLACK_BOT);
	p.token = "xoxb-1234567890-abcdefghijkl";
	char **secrets = slack_secrets(&p);
	struct slack_response r;
	struct slack_result out;

	memset(&r, 0, sizeof(r));
	r.secrets = secrets;
	r.status = 403;
	r.body = "denied: Authorization: Bearer xoxb-1234567890-abcdefghijkl (twice: "
	    "xoxb-1234567890-abcdefghijkl)";
	r.body_len = strlen(r.body);
	slack_classify(CONF_PROVIDER_SLACK_BOT, &r, T_NOW, &out);
	ck_assert_str_eq(out.error, "HTTP 403 denied: Authorization: Bearer [redacted] (twice: "
	    "[redacted])");

	/* Redacted before it is cut to fit: no prefix of the token survives a cut. */
	char *pad = t_repeat("x", 230);
	char *body = util_printf("%s Bearer %s", pad, p.token);
	free(pad);
	r.body = body;
	r.body_len = strlen(body);
	slack_classify(CONF_PROVIDER_SLACK_BOT, &r, T_NOW, &out);
	ck_assert_ptr_null(strstr(out.error, "xoxb-"));
	free(body);

	/* transport errors too, and the JSON error string of the Web API */
	r.body = NULL;
	r.body_len = 0;
	r.transport_error = 7;
	r.transport_msg = "proxy said xoxb-1234567890-abcdefghijkl";
	slack_classify(CONF_PROVIDER_SLACK_BOT, &r, T_NOW, &out);
	ck_assert_str_eq(out.error, "transport: proxy said [redacted]");
	r.transport_error = 0;
	r.status = 200;
	r.body = "{\"ok\":false,\"error\":\"bad token xoxb-1234567890-abcdefghijkl\"}";
	r.body_len = strlen(r.body);
	slack_classify(CONF_PROVIDER_SLACK_BOT, &r, T_NOW, &out);
	ck_assert_str_eq(out.error, "HTTP 200 bad token [redacted]");
	slack_secrets_free(secrets);
}
END_TEST

/* ---- kinds, replies and updates (SPEC §12) ---- */

/* Fixture 01's time (2022-10-28T07:26:19Z). */
#define T_EV01 1666941979.0

/* shared/fixtures/events/11: the recovery of fixture 01's object. */
static const char t_recovery_json[] =
    "{\"involvedObject\":{\"apiVersion\":\"kustomize.toolkit.fluxcd.io/v1\","
    "\"kind\":\"Kustomization\",\"name\":\"webapp\",\"namespace\":\"apps\","
    "\"uid\":\"7d0cdc51-ddcf-4743-b223-83ca5c699632\"},\"metadata\":{"
    "\"kustomize.toolkit.fluxcd.io/revision\":\"main@sha1:9b1e4c7d2a5f8e3b6c0d1a4e7f2b5c8d9e0a3f6b\","
    "\"kustomize.toolkit.fluxcd.io/commit_status\":\"update\","
    "\"kustomize.toolkit.fluxcd.io/token\":\"4c8a2e7f0d1b3a5c\"},\"severity\":\"info\","
    "\"reason\":\"ReconciliationSucceeded\",\"message\":\"Reconciliation finished in 2.08s, "
    "next run in 10m0s\",\"reportingController\":\"kustomize-controller\","
    "\"reportingInstance\":\"kustomize-controller-7c7b47f5f-8bhrp\","
    "\"timestamp\":\"2022-10-28T07:41:03Z\"}";

static struct event *
t_recovery_event(void)
{
	char err[256], field[64];
	struct event *ev = event_parse(t_recovery_json, strlen(t_recovery_json), err, sizeof(err),
	    field, sizeof(field));
	ck_assert_msg(ev != NULL, "%s (%s)", err, field);
	return ev;
}

/* The last error of the recovered goldens: fixture 01's message. */
static const char t_last_error[] =
    "service/apps/webapp validation error: spec.type: Unsupported value: Ingress";

/* opened (webhook): fixture 01 as the first failure of an incident. */
START_TEST(test_golden_kind_opened)
{
	struct conf_provider p = t_provider(CONF_PROVIDER_SLACK);
	struct event *e1 = t_fixture("01-kustomization-validation-failed-generic-webhook.json");
	struct slack_incident inc = { .since = T_EV01, .failures = 1 };
	struct slack_item it = { .ev = e1, .kind = SLACK_KIND_OPENED, .incident = &inc };

	char *got = slack_render_string(&p, NULL, &it, 1);
	t_golden("payload-kind-opened.json", got);
	/* console prints exactly what a webhook gets */
	p.type = CONF_PROVIDER_CONSOLE;
	char *console = slack_render_string(&p, NULL, &it, 1);
	ck_assert_str_eq(console, got);
	free(console);
	free(got);
	event_free(e1);
}
END_TEST

/* reminder (webhook): 42 failures, open for 3h05m at fixture 01's time. */
START_TEST(test_golden_kind_reminder)
{
	struct conf_provider p = t_provider(CONF_PROVIDER_SLACK);
	struct event *e1 = t_fixture("01-kustomization-validation-failed-generic-webhook.json");
	struct slack_incident inc = { .since = T_EV01 - 11100, .failures = 42 };
	struct slack_item it = { .ev = e1, .kind = SLACK_KIND_REMINDER, .incident = &inc };

	char *got = slack_render_string(&p, NULL, &it, 1);
	t_golden("payload-kind-reminder.json", got);
	free(got);
	event_free(e1);
}
END_TEST

/* recovered (webhook): fixture 11 closes an incident open 14m with 5 failures. */
START_TEST(test_golden_kind_recovered)
{
	struct conf_provider p = t_provider(CONF_PROVIDER_SLACK);
	struct event *ev = t_recovery_event();
	struct slack_incident inc = { .since = T_EV01, .failures = 5, .duration = 884,
	    .last_message = t_last_error };
	struct slack_item it = { .ev = ev, .kind = SLACK_KIND_RECOVERED, .incident = &inc };

	char *got = slack_render_string(&p, NULL, &it, 1);
	t_golden("payload-kind-recovered.json", got);
	free(got);
	event_free(ev);
}
END_TEST

/* A webhook's coalesced message of the three transition kinds. */
START_TEST(test_golden_kinds_coalesced)
{
	struct conf_provider p = t_provider(CONF_PROVIDER_SLACK);
	struct event *e1 = t_fixture("01-kustomization-validation-failed-generic-webhook.json");
	struct event *e6 = t_fixture("06-kustomization-health-check-timed-out-error.json");
	struct event *rec = t_recovery_event();
	struct slack_incident opened = { .since = T_EV01, .failures = 1 };
	struct slack_incident reminder = { .since = T_EV01 - 90000, .failures = 310,
	    .duration = 90000 };
	struct slack_incident recovered = { .since = T_EV01, .failures = 5, .duration = 884,
	    .last_message = t_last_error };
	struct slack_item items[] = {
		{ .ev = e1, .kind = SLACK_KIND_OPENED, .incident = &opened },
		{ .ev = e6, .kind = SLACK_KIND_REMINDER, .incident = &reminder },
		{ .ev = rec, .kind = SLACK_KIND_RECOVERED, .incident = &recovered },
	};

	char *got = slack_render_string(&p, "#devops-alerts", items, 3);
	t_golden("payload-kinds-coalesced.json", got);
	free(got);
	event_free(e1);
	event_free(e6);
	event_free(rec);
}
END_TEST

/* A reply in a thread (slack-bot): an error event broadcast to the channel. */
START_TEST(test_golden_bot_reply)
{
	struct conf_provider p = t_provider(CONF_PROVIDER_SLACK_BOT);
	struct event *e1 = t_fixture("01-kustomization-validation-failed-generic-webhook.json");
	struct slack_item it = { .ev = e1, .kind = SLACK_KIND_REPLY };

	p.channel = "#flux-bot";
	p.icon_emoji = ":rocket:";
	char *got = slack_render_reply_string(&p, "C0123ABCDEF", "1666941979.000100", true, &it, 1);
	t_golden("payload-bot-reply.json", got);
	free(got);
	event_free(e1);
}
END_TEST

/* chat.update of a parent to its recovered state. */
START_TEST(test_golden_update_recovered)
{
	struct conf_provider p = t_provider(CONF_PROVIDER_SLACK_BOT);
	struct event *ev = t_recovery_event();
	struct slack_incident inc = { .since = T_EV01, .failures = 5, .duration = 884,
	    .last_message = t_last_error };
	struct slack_item it = { .ev = ev, .kind = SLACK_KIND_RECOVERED, .incident = &inc };

	p.channel = "#flux-bot";
	p.username = "Flux";
	p.icon_url = "https://example.com/flux.png";
	char *got = slack_render_update_string(&p, "C0123ABCDEF", "1666941979.000100", &it, 1);
	t_golden("payload-update-recovered.json", got);
	free(got);
	event_free(ev);
}
END_TEST

/* The live count of a parent. */
START_TEST(test_golden_update_count)
{
	char *got = slack_render_count_string("C0123ABCDEF", "1666941979.000100", 12, T_EV01,
	    T_EV01 + 720, NULL);
	t_golden("payload-update-count.json", got);
	free(got);
}
END_TEST

static const struct {
	double seconds;
	const char *want;
} t_duration_cases[] = {
	{ 0, "0s" }, { 0.9, "0s" }, { 45, "45s" }, { 59.99, "59s" }, { 60, "1m" },
	{ 720, "12m" }, { 3599, "59m" }, { 3600, "1h00m" }, { 11100, "3h05m" },
	{ 86399, "23h59m" }, { 86400, "1d0h" }, { 187200, "2d4h" }, { 190799, "2d4h" },
	{ 3650.0 * 86400, "3650d0h" }, { -5, "0s" }, { 1e300, "0s" },
};

START_TEST(test_duration_table)
{
	char buf[32];
	ck_assert_str_eq(slack_duration(t_duration_cases[_i].seconds, buf), t_duration_cases[_i].want);
}
END_TEST

/*
 * What each kind renders: colour, title, text and fallback of one item.
 * since/duration are relative to the event's time (T_EV01); has_inc 0
 * renders the kind without an incident.
 */
static const struct {
	enum slack_kind kind;
	enum event_severity sev;
	const char *reason;
	const char *msg;
	int has_inc;
	double since_ago;
	long failures;
	double duration;
	const char *last;
	const char *rev;
	const char *color, *title, *text, *fallback;
} t_kind_cases[] = {
	/* event and reply render alike, by severity */
	{ SLACK_KIND_EVENT, EVENT_ERROR, "Failed", "boom", 0, 0, 0, 0, NULL, NULL,
	  "danger", "Failed", "boom", "kustomization/w.ns: boom" },
	{ SLACK_KIND_REPLY, EVENT_WARNING, "Slow", "slow", 0, 0, 0, 0, NULL, NULL,
	  "warning", "Slow", "slow", "kustomization/w.ns: slow" },
	{ SLACK_KIND_REPLY, EVENT_INFO, "", "fine", 1, 60, 3, 0, "x", NULL,
	  "good", NULL, "fine", "kustomization/w.ns: fine" },
	/* opened: danger whatever the severity, title the reason */
	{ SLACK_KIND_OPENED, EVENT_INFO, "Failed", "boom", 1, 0, 1, 0, NULL, NULL,
	  "danger", "Failed", "boom", "kustomization/w.ns: boom" },
	{ SLACK_KIND_OPENED, EVENT_ERROR, "", "boom", 0, 0, 0, 0, NULL, NULL,
	  "danger", NULL, "boom", "kustomization/w.ns: boom" },
	/* reminder */
	{ SLACK_KIND_REMINDER, EVENT_ERROR, "Failed", "boom\nmore", 1, 11100, 42, 0, NULL, NULL,
	  "danger", "Still failing: Failed",
	  "Failing since 04:21 UTC (3h05m), 42 failures.\nboom\nmore",
	  "kustomization/w.ns: Failing since 04:21 UTC (3h05m), 42 failures." },
	{ SLACK_KIND_REMINDER, EVENT_ERROR, "", "boom", 1, 60, 1, 0, NULL, NULL,
	  "danger", "Still failing", "Failing since 07:25 UTC (1m), 1 failure.\nboom",
	  "kustomization/w.ns: Failing since 07:25 UTC (1m), 1 failure." },
	/* the incident's duration wins over the event's time; another day shows the date */
	{ SLACK_KIND_REMINDER, EVENT_ERROR, "F", "boom", 1, 90000, 300, 90000, NULL, NULL,
	  "danger", "Still failing: F",
	  "Failing since 2022-10-27 06:26 UTC (1d1h), 300 failures.\nboom",
	  "kustomization/w.ns: Failing since 2022-10-27 06:26 UTC (1d1h), 300 failures." },
	{ SLACK_KIND_REMINDER, EVENT_ERROR, "F", "boom", 0, 0, 0, 0, NULL, NULL,
	  "danger", "Still failing: F", "boom", "kustomization/w.ns: boom" },
	{ SLACK_KIND_REMINDER, EVENT_ERROR, "<F&>", "a<b", 1, 30, 2, 0, NULL, NULL,
	  "danger", "Still failing: &lt;F&amp;&gt;",
	  "Failing since 07:25 UTC (30s), 2 failures.\na&lt;b",
	  "kustomization/w.ns: Failing since 07:25 UTC (30s), 2 failures." },
	/* recovered */
	{ SLACK_KIND_RECOVERED, EVENT_INFO, "ReconciliationSucceeded", "done", 1, 720, 5, 720,
	  "was broken", NULL, "good", "Recovered: Kustomization/w",
	  "Recovered after 12m (5 failures).\nLast error: was broken",
	  "kustomization/w.ns: Recovered after 12m (5 failures)." },
	{ SLACK_KIND_RECOVERED, EVENT_INFO, "R", "done", 1, 45, 1, 45, "", "main@sha1:<abc>",
	  "good", "Recovered: Kustomization/w",
	  "Recovered after 45s (1 failure).\nRevision: main@sha1:&lt;abc&gt;",
	  "kustomization/w.ns: Recovered after 45s (1 failure)." },
	{ SLACK_KIND_RECOVERED, EVENT_INFO, "R", "done", 1, 45, 1, 45, NULL, "",
	  "good", "Recovered: Kustomization/w", "Recovered after 45s (1 failure).",
	  "kustomization/w.ns: Recovered after 45s (1 failure)." },
	{ SLACK_KIND_RECOVERED, EVENT_INFO, "R", "done", 0, 0, 0, 0, NULL, NULL,
	  "good", "Recovered: Kustomization/w", "Recovered.\ndone", "kustomization/w.ns: Recovered." },
};

START_TEST(test_kind_table)
{
	struct conf_provider p = t_provider(CONF_PROVIDER_SLACK);
	struct event ev = t_event("Kustomization", "w", "ns", t_kind_cases[_i].sev,
	    t_kind_cases[_i].reason, t_kind_cases[_i].msg);
	ev.has_timestamp = true;
	ev.timestamp = (time_t)T_EV01;
	struct slack_incident inc = { .since = T_EV01 - t_kind_cases[_i].since_ago,
	    .failures = t_kind_cases[_i].failures, .duration = t_kind_cases[_i].duration,
	    .last_message = t_kind_cases[_i].last, .revision = t_kind_cases[_i].rev };
	struct slack_item it = { .ev = &ev, .kind = t_kind_cases[_i].kind,
	    .incident = t_kind_cases[_i].has_inc ? &inc : NULL };
	json_t *j = t_render(&p, NULL, &it, 1);
	json_t *a = t_att(j, 0);

	ck_assert_str_eq(t_str(a, "color"), t_kind_cases[_i].color);
	if (t_kind_cases[_i].title == NULL)
		ck_assert_ptr_null(t_str(a, "title"));
	else
		ck_assert_str_eq(t_str(a, "title"), t_kind_cases[_i].title);
	ck_assert_str_eq(t_str(a, "text"), t_kind_cases[_i].text);
	ck_assert_str_eq(t_str(a, "fallback"), t_kind_cases[_i].fallback);
	ck_assert_str_eq(t_str(a, "ts"), "1666941979");
	ck_assert_str_eq(t_str(a, "author_name"), "kustomization/w.ns");
	json_decref(j);
}
END_TEST

/* A reply renders byte for byte as the same event would. */
START_TEST(test_reply_like_event)
{
	struct conf_provider p = t_provider(CONF_PROVIDER_SLACK);
	struct event *e7 = t_fixture("07-configmap-sync-with-object-annotations.json");
	struct slack_incident inc = { .since = 1, .failures = 9, .last_message = "x" };
	struct slack_item ev = { .ev = e7 };
	struct slack_item reply = { .ev = e7, .kind = SLACK_KIND_REPLY, .incident = &inc };
	char *a = slack_render_string(&p, NULL, &ev, 1), *b = slack_render_string(&p, NULL, &reply, 1);
	ck_assert_str_eq(a, b);
	free(a);
	free(b);
	event_free(e7);
}
END_TEST

/* max_text cuts a recovery's last error, with its marker, after the lead. */
START_TEST(test_kind_truncation)
{
	struct conf_provider p = t_provider(CONF_PROVIDER_SLACK);
	struct event ev = t_event("Kustomization", "w", "ns", EVENT_INFO, "R", "done");
	struct slack_incident inc = { .since = 0, .failures = 2, .duration = 60,
	    .last_message = "0123456789&&" };
	struct slack_item it = { .ev = &ev, .kind = SLACK_KIND_RECOVERED, .incident = &inc };
	p.max_text = 10;
	json_t *j = t_render(&p, NULL, &it, 1);
	ck_assert_str_eq(t_str(t_att(j, 0), "text"),
	    "Recovered after 1m (2 failures).\nLast error: 0123456789\xe2\x80\xa6 (2 more characters)");
	json_decref(j);

	/* a revision is bounded like a name */
	char rev[400];
	memset(rev, 'r', sizeof(rev) - 1);
	rev[sizeof(rev) - 1] = '\0';
	inc.revision = rev;
	inc.last_message = NULL;
	j = t_render(&p, NULL, &it, 1);
	const char *text = t_str(t_att(j, 0), "text");
	const char *r = strstr(text, "Revision: ");
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(t_codepoints(r + strlen("Revision: ")), SLACK_MAX_NAME);
	json_decref(j);
}
END_TEST

/* 100 recoveries with 39,000-character last errors stay within 40,000 characters. */
START_TEST(test_kind_total_limit)
{
	struct conf_provider p = t_provider(CONF_PROVIDER_SLACK);
	char *msg = util_malloc(39001);
	memset(msg, '<', 39000);
	msg[39000] = '\0';
	struct event ev = t_event("Kustomization", "w", "ns", EVENT_INFO, "R", msg);
	struct slack_incident inc = { .since = 0, .failures = 7, .duration = 99999,
	    .last_message = msg, .revision = "main@sha1:9b1e4c7d2a5f8e3b6c0d1a4e7f2b5c8d9e0a3f6b" };
	struct slack_item *items = util_calloc(SLACK_MAX_ATTACHMENTS, sizeof(*items));
	for (size_t i = 0; i < SLACK_MAX_ATTACHMENTS; i++)
		items[i] = (struct slack_item){ .ev = &ev, .kind = i % 2 ? SLACK_KIND_RECOVERED :
		    SLACK_KIND_REMINDER, .incident = &inc };
	json_t *j = t_render(&p, NULL, items, SLACK_MAX_ATTACHMENTS);
	size_t total = t_total_text(j);
	ck_assert_msg(total <= 40000, "total %zu > 40000", total);
	ck_assert_msg(total > 30000, "total %zu: the budget is far too small", total);
	json_decref(j);
	free(items);
	free(msg);
}
END_TEST

/* Keys of a JSON object, comma-separated, in order (new string). */
static char *
t_keys(json_t *o)
{
	struct util_buf b = { 0 };
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v) {
		(void)v;
		util_buf_printf(&b, "%s%s", b.len ? "," : "", k);
	}
	return b.data ? b.data : util_strdup("");
}

START_TEST(test_reply_payload)
{
	struct conf_provider p = t_provider(CONF_PROVIDER_SLACK_BOT);
	struct event ev = t_event("Kustomization", "w", "ns", EVENT_INFO, "R", "m");
	struct slack_item it = { .ev = &ev, .kind = SLACK_KIND_EVENT };
	p.username = "Flux";

	char *s = slack_render_reply_string(&p, "C1", "1.5", false, &it, 1);
	json_t *j = json_loads(s, 0, NULL);
	char *keys = t_keys(j);
	ck_assert_str_eq(keys, "channel,username,attachments,thread_ts");
	ck_assert_str_eq(t_str(j, "channel"), "C1");   /* the id, not the provider's #flux */
	ck_assert_str_eq(t_str(j, "thread_ts"), "1.5");
	free(keys);
	json_decref(j);
	free(s);

	s = slack_render_reply_string(&p, "C1", "1.5", true, &it, 1);
	j = json_loads(s, 0, NULL);
	ck_assert(json_is_true(json_object_get(j, "reply_broadcast")));
	json_decref(j);
	free(s);

	ck_assert_ptr_null(slack_render_reply_string(&p, "", "1.5", true, &it, 1));
	ck_assert_ptr_null(slack_render_reply_string(&p, "C1", NULL, true, &it, 1));
	ck_assert_ptr_null(slack_render_reply_string(&p, "C1", "1.5", true, &it, 0));
}
END_TEST

START_TEST(test_update_payload)
{
	struct conf_provider p = t_provider(CONF_PROVIDER_SLACK_BOT);
	struct event ev = t_event("Kustomization", "w", "ns", EVENT_INFO, "R", "m");
	struct slack_incident inc = { .since = 0, .failures = 2, .duration = 60 };
	struct slack_item it[2] = { { .ev = &ev, .kind = SLACK_KIND_RECOVERED, .incident = &inc },
	    { .ev = &ev } };
	p.username = "Flux";
	p.icon_emoji = ":x:";

	char *s = slack_render_update_string(&p, "C1", "1.5", it, 1);
	json_t *j = json_loads(s, 0, NULL);
	char *keys = t_keys(j);
	ck_assert_str_eq(keys, "channel,ts,text,attachments");
	ck_assert_str_eq(t_str(j, "channel"), "C1");
	ck_assert_str_eq(t_str(j, "ts"), "1.5");
	ck_assert_str_eq(t_str(j, "text"), "");
	ck_assert_str_eq(t_str(t_att(j, 0), "color"), "good");
	free(keys);
	json_decref(j);
	free(s);

	/* a coalesced rendering keeps its text */
	s = slack_render_update_string(&p, "C1", "1.5", it, 2);
	j = json_loads(s, 0, NULL);
	ck_assert_str_eq(t_str(j, "text"), "2 events");
	json_decref(j);
	free(s);

	ck_assert_ptr_null(slack_render_update_string(&p, "C1", "", it, 1));
	ck_assert_ptr_null(slack_render_update_string(&p, NULL, "1.5", it, 1));
}
END_TEST

START_TEST(test_count_payload)
{
	char *s = slack_render_count_string("C1", "1.5", 1, T_EV01, T_EV01 + 5, NULL);
	ck_assert_str_eq(s, "{\"channel\":\"C1\",\"ts\":\"1.5\",\"text\":\"1 failure since 07:26 UTC\"}");
	free(s);
	s = slack_render_count_string("C1", "1.5", 1200, T_EV01, T_EV01 + 86400, NULL);
	ck_assert_str_eq(s, "{\"channel\":\"C1\",\"ts\":\"1.5\",\"text\":"
	    "\"1200 failures since 2022-10-28 07:26 UTC\"}");
	free(s);
	ck_assert_ptr_null(slack_render_count_string("", "1.5", 1, 0, 0, NULL));
	ck_assert_ptr_null(slack_render_count_string("C1", NULL, 1, 0, 0, NULL));
}
END_TEST

/*
 * chat.update and chat.postMessage answers: classification (as §8), repost
 * for an update whose message is gone, the handle of a posted message.
 */
static const struct {
	enum conf_provider_type type;
	long status;
	const char *body;
	enum slack_outcome want;
	int repost;
	const char *channel, *ts;
} t_update_cases[] = {
	{ T_BOT, 200, "{\"ok\":true,\"channel\":\"C024BE91L\",\"ts\":\"1401383885.000061\"}",
	  SLACK_DELIVERED, 0, "C024BE91L", "1401383885.000061" },
	{ T_BOT, 200, "{\"ok\":true,\"channel\":\"C024BE91L\",\"ts\":\"1401383885.000061\","
	  "\"message\":{\"text\":\"x\"}}", SLACK_DELIVERED, 0, "C024BE91L", "1401383885.000061" },
	{ T_BOT, 200, "{\"ok\":true}", SLACK_DELIVERED, 0, "", "" },
	{ T_BOT, 200, "{\"ok\":true,\"channel\":\"C1\"}", SLACK_DELIVERED, 0, "", "" },
	{ T_BOT, 200, "{\"ok\":true,\"ts\":\"1.2\"}", SLACK_DELIVERED, 0, "", "" },
	{ T_BOT, 200, "{\"ok\":true,\"channel\":\"#flux\",\"ts\":\"1.2\"}", SLACK_DELIVERED, 0, "", "" },
	{ T_BOT, 200, "{\"ok\":true,\"channel\":\"c1\",\"ts\":\"1.2\"}", SLACK_DELIVERED, 0, "", "" },
	{ T_BOT, 200, "{\"ok\":true,\"channel\":\"C1\",\"ts\":1.2}", SLACK_DELIVERED, 0, "", "" },
	{ T_BOT, 200, "{\"ok\":true,\"channel\":\"C1\",\"ts\":\"12\"}", SLACK_DELIVERED, 0, "", "" },
	{ T_BOT, 200, "{\"ok\":true,\"channel\":\"C1\",\"ts\":\"1.2.3\"}", SLACK_DELIVERED, 0, "", "" },
	{ T_BOT, 200, "{\"ok\":true,\"channel\":\"C1\",\"ts\":\".2\"}", SLACK_DELIVERED, 0, "", "" },
	{ T_BOT, 200, "{\"ok\":true,\"channel\":\"C1\",\"ts\":\"2.\"}", SLACK_DELIVERED, 0, "", "" },
	{ T_BOT, 200, "{\"ok\":true,\"channel\":\"C1\",\"ts\":\"1.2\\n\"}", SLACK_DELIVERED, 0, "", "" },
	{ T_BOT, 200, "{\"ok\":true,\"channel\":\"C1234567890123456789012345678901\",\"ts\":\"1.2\"}",
	  SLACK_DELIVERED, 0, "", "" },
	{ T_HOOK, 200, "{\"ok\":true,\"channel\":\"C1\",\"ts\":\"1.2\"}", SLACK_DELIVERED, 0, "", "" },
	{ T_BOT, 200, "{\"ok\":false,\"error\":\"message_not_found\"}", SLACK_PERMANENT, 1, "", "" },
	{ T_BOT, 200, "{\"ok\":false,\"error\":\"cant_update_message\"}", SLACK_PERMANENT, 1, "", "" },
	{ T_BOT, 404, "{\"ok\":false,\"error\":\"message_not_found\"}", SLACK_PERMANENT, 1, "", "" },
	{ T_BOT, 200, "{\"ok\":false,\"error\":\"edit_window_closed\"}", SLACK_PERMANENT, 0, "", "" },
	{ T_BOT, 200, "{\"ok\":false,\"error\":\"channel_not_found\"}", SLACK_PERMANENT, 0, "", "" },
	{ T_BOT, 200, "{\"ok\":false,\"error\":\"message_not_found_x\"}", SLACK_PERMANENT, 0, "", "" },
	{ T_BOT, 429, "{\"ok\":false,\"error\":\"ratelimited\"}", SLACK_RATE_LIMITED, 0, "", "" },
	{ T_BOT, 200, "{\"ok\":false,\"error\":\"internal_error\"}", SLACK_TRANSIENT, 0, "", "" },
	{ T_BOT, 503, "{\"ok\":false,\"error\":\"message_not_found\"}", SLACK_TRANSIENT, 0, "", "" },
	{ T_HOOK, 404, "{\"ok\":false,\"error\":\"message_not_found\"}", SLACK_PERMANENT, 0, "", "" },
};

START_TEST(test_classify_update_table)
{
	struct slack_response r = { 0 };
	struct slack_result out;
	r.status = t_update_cases[_i].status;
	r.body = t_update_cases[_i].body;
	r.body_len = strlen(r.body);
	slack_classify(t_update_cases[_i].type, &r, T_NOW, &out);
	ck_assert_int_eq(out.outcome, t_update_cases[_i].want);
	ck_assert_int_eq(out.repost, t_update_cases[_i].repost);
	ck_assert_str_eq(out.channel, t_update_cases[_i].channel);
	ck_assert_str_eq(out.ts, t_update_cases[_i].ts);
}
END_TEST

#define T_N(a) ((int)(sizeof(a) / sizeof((a)[0])))

static Suite *
slack_suite(void)
{
	Suite *s = suite_create("slack");
	TCase *tc = tcase_create("render");
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_golden_fixture, 0, T_N(t_fixtures));
	tcase_add_test(tc, test_golden_complete);
	tcase_add_test(tc, test_golden_coalesced);
	tcase_add_test(tc, test_golden_bot);
	tcase_add_test(tc, test_coalesced_order);
	tcase_add_test(tc, test_attachment_shape);
	tcase_add_loop_test(tc, test_channel, 0, T_N(t_channel_cases));
	tcase_add_test(tc, test_bot_without_channel);
	tcase_add_test(tc, test_username);
	tcase_add_test(tc, test_icons);
	tcase_add_loop_test(tc, test_escape_table, 0, T_N(t_escape_cases));
	tcase_add_test(tc, test_escape_everywhere);
	tcase_add_test(tc, test_cluster_field_first);
	tcase_add_test(tc, test_invalid_utf8);
	tcase_add_loop_test(tc, test_truncation_table, 0, T_N(t_trunc_cases));
	tcase_add_test(tc, test_truncation_default);
	tcase_add_test(tc, test_total_limit);
	tcase_add_test(tc, test_total_limit_edges);
	tcase_add_test(tc, test_attachment_count);
	tcase_add_test(tc, test_hidden_keys);
	tcase_add_test(tc, test_field_precedence);
	tcase_add_test(tc, test_bounds_names);
	tcase_add_test(tc, test_bounds_fields);
	tcase_add_test(tc, test_bounds_huge_event);
	suite_add_tcase(s, tc);

	tc = tcase_create("kinds");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_golden_kind_opened);
	tcase_add_test(tc, test_golden_kind_reminder);
	tcase_add_test(tc, test_golden_kind_recovered);
	tcase_add_test(tc, test_golden_kinds_coalesced);
	tcase_add_test(tc, test_golden_bot_reply);
	tcase_add_test(tc, test_golden_update_recovered);
	tcase_add_test(tc, test_golden_update_count);
	tcase_add_loop_test(tc, test_duration_table, 0, T_N(t_duration_cases));
	tcase_add_loop_test(tc, test_kind_table, 0, T_N(t_kind_cases));
	tcase_add_test(tc, test_reply_like_event);
	tcase_add_test(tc, test_kind_truncation);
	tcase_add_test(tc, test_kind_total_limit);
	tcase_add_test(tc, test_reply_payload);
	tcase_add_test(tc, test_update_payload);
	tcase_add_test(tc, test_count_payload);
	tcase_add_loop_test(tc, test_classify_update_table, 0, T_N(t_update_cases));
	suite_add_tcase(s, tc);

	tc = tcase_create("classify");
	tcase_add_loop_test(tc, test_classify_table, 0, T_N(t_class_cases));
	tcase_add_test(tc, test_classify_error_text);
	tcase_add_loop_test(tc, test_classify_oversize, 0, T_N(t_oversize_cases));
	tcase_add_test(tc, test_secrets_of_provider);
	tcase_add_test(tc, test_classify_redacts_secrets);
	tcase_add_loop_test(tc, test_retry_after_table, 0, T_N(t_retry_cases));
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(slack_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
