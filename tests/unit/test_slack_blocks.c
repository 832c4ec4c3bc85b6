/*
 * Unit tests for slack_blocks (format = "blocks"): golden payloads
 * (tests/golden/payload-blocks-*.json, type-checked by tests/slack-types),
 * the layout (markers, head, code block, fields, context, top-level text and
 * mentions, no header block, unfurl off) and Slack's limits: sections of at
 * most 3,000 characters that never split an entity, fields of at most 2,000
 * and 10 per section, at most 50 blocks with the rest left for the next
 * message.
 *
 * FR_UPDATE_GOLDEN=1 rewrites the goldens from the output instead of
 * comparing (then check the diff by eye).
 */
#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "slack.h"
#include "slack_blocks.h"
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
	p.batch_max = 10;
	p.format = CONF_FORMAT_BLOCKS;
	if (type == CONF_PROVIDER_SLACK_BOT) {
		p.token = "xoxb-test";
		p.api_url = "https://slack.com/api";
	} else if (type == CONF_PROVIDER_SLACK)
		p.url = "https://hooks.slack.com/services/T0/B0/secret";
	return p;
}

/* A hand-built event; strings are borrowed, no metadata. */
static struct event
t_event(enum event_severity sev, const char *reason, const char *msg)
{
	struct event ev;

	memset(&ev, 0, sizeof(ev));
	ev.kind = "Kustomization";
	ev.name = "webapp";
	ev.namespace = "apps";
	ev.severity = sev;
	ev.reason = (char *)reason;
	ev.message = (char *)msg;
	ev.reporting_controller = "kustomize-controller";
	ev.reporting_instance = "";
	return ev;
}




/* Render all items and parse back (new reference); also checks the limits. */
static json_t *
t_render(const struct conf_provider *p, const struct slack_item *items, size_t n)
{
	char *s = slack_render_string(p, NULL, items, n);
	json_error_t jerr;

	ck_assert_msg(s != NULL, "render failed");
	json_t *j = json_loads(s, 0, &jerr);
	ck_assert_msg(j != NULL, "invalid JSON (%s): %s", jerr.text, s);
	free(s);
	return j;
}

static json_t *
t_blocks(json_t *j)
{
	json_t *b = json_object_get(j, "blocks");
	ck_assert(json_is_array(b));
	return b;
}

/* The mrkdwn text of block i (a section with text). */
static const char *
t_section(json_t *j, size_t i)
{
	json_t *b = json_array_get(t_blocks(j), i);
	ck_assert_str_eq(json_string_value(json_object_get(b, "type")), "section");
	json_t *t = json_object_get(b, "text");
	ck_assert_str_eq(json_string_value(json_object_get(t, "type")), "mrkdwn");
	return json_string_value(json_object_get(t, "text"));
}

/* Code points of s. */
static size_t
t_cps(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	return n;
}

/* Every block within Slack's limits (the reference's, counted in code points). */
static void
t_check_limits(json_t *j)
{
	json_t *blocks = t_blocks(j), *b;
	size_t i;

	ck_assert_uint_le(json_array_size(blocks), SLACK_BLOCKS_MAX);
	ck_assert_uint_ge(json_array_size(blocks), 1);
	json_array_foreach(blocks, i, b) {
		const char *type = json_string_value(json_object_get(b, "type"));
		ck_assert_str_ne(type, "header");
		json_t *t = json_object_get(b, "text"), *f = json_object_get(b, "fields");
		if (t != NULL) {
			const char *s = json_string_value(json_object_get(t, "text"));
			ck_assert_uint_ge(strlen(s), 1);
			ck_assert_uint_le(t_cps(s), SLACK_BLOCKS_MAX_TEXT);
		}
		if (f != NULL) {
			size_t k;
			json_t *e;
			ck_assert_uint_le(json_array_size(f), SLACK_BLOCKS_MAX_FIELDS);
			ck_assert_uint_ge(json_array_size(f), 1);
			json_array_foreach(f, k, e)
				ck_assert_uint_le(t_cps(json_string_value(json_object_get(e, "text"))),
				    SLACK_BLOCKS_MAX_FIELD);
		}
		json_t *el = json_object_get(b, "elements");
		if (el != NULL) {
			size_t k;
			json_t *e;
			ck_assert_uint_le(json_array_size(el), 10);
			json_array_foreach(el, k, e)
				ck_assert_uint_le(t_cps(json_string_value(json_object_get(e, "text"))),
				    SLACK_BLOCKS_MAX_TEXT);
		}
	}
	ck_assert(json_is_false(json_object_get(j, "unfurl_links")));
	ck_assert(json_is_false(json_object_get(j, "unfurl_media")));
	ck_assert(json_string_length(json_object_get(j, "text")) > 0);
}

/* ---- golden payloads ---- */

START_TEST(test_golden_webhook)
{
	struct conf_provider p = t_provider(CONF_PROVIDER_SLACK);
	struct event *ev = test_fixture("tests/fixtures/events",
	    "01-kustomization-validation-failed-generic-webhook.json");
	struct slack_item it = { .ev = ev };
	char *got = slack_render_string(&p, NULL, &it, 1);
	test_golden("payload-blocks-webhook.json", got);
	/* the console provider prints what the webhook gets */
	p.type = CONF_PROVIDER_CONSOLE;
	char *console = slack_render_string(&p, NULL, &it, 1);
	ck_assert_str_eq(console, got);
	free(console);
	free(got);
	event_free(ev);
}
END_TEST

START_TEST(test_golden_bot)
{
	struct conf_provider p = t_provider(CONF_PROVIDER_SLACK_BOT);
	struct event *ev = test_fixture("tests/fixtures/events",
	    "06-kustomization-health-check-timed-out-error.json");
	struct slack_item it = { .ev = ev };
	p.channel = "#flux-bot";
	p.icon_url = "https://example.com/flux.png";
	char *got = slack_render_string(&p, NULL, &it, 1);
	test_golden("payload-blocks-bot.json", got);
	free(got);
	event_free(ev);
}
END_TEST

START_TEST(test_golden_coalesced)
{
	struct conf_provider p = t_provider(CONF_PROVIDER_SLACK);
	struct conf_kv extra[] = { { "cluster", "prod-eu-1" }, { "summary", "production" } };
	struct event *e1 = test_fixture("tests/fixtures/events",
	    "01-kustomization-validation-failed-generic-webhook.json");
	struct event *e6 = test_fixture("tests/fixtures/events",
	    "06-kustomization-health-check-timed-out-error.json");
	struct event *e7 = test_fixture("tests/fixtures/events",
	    "07-configmap-sync-with-object-annotations.json");
	struct slack_item items[] = { { .ev = e1, .extra = extra, .nextra = 2 },
	    { .ev = e6, .extra = extra, .nextra = 2 },
	    { .ev = e7, .extra = extra, .nextra = 2 } };
	p.username = "Flux";
	p.icon_emoji = ":rocket:";
	char *got = slack_render_string(&p, "#devops-alerts", items, 3);
	test_golden("payload-blocks-coalesced.json", got);
	free(got);
	event_free(e1);
	event_free(e6);
	event_free(e7);
}
END_TEST

START_TEST(test_golden_multiline)
{
	struct conf_provider p = t_provider(CONF_PROVIDER_SLACK);
	struct event *ev = test_fixture("tests/fixtures/templates", "helmrelease-upgrade-failed.json");
	struct slack_item it = { .ev = ev };
	char *got = slack_render_string(&p, NULL, &it, 1);
	test_golden("payload-blocks-multiline.json", got);
	free(got);
	event_free(ev);
}
END_TEST

/* Every fixture renders within the limits, for each provider type. */
START_TEST(test_fixtures_within_limits)
{
	static const char *const fixtures[] = {
		"01-kustomization-validation-failed-generic-webhook.json",
		"02-gitrepository-fetched-revision-legacy.json",
		"03-gitrepository-webapp-notifier-testevent.json",
		"04-bucket-event-server-test.json",
		"05-kustomization-health-check-passed-with-revision.json",
		"06-kustomization-health-check-timed-out-error.json",
		"07-configmap-sync-with-object-annotations.json",
		"08-kustomization-configured-provider-side.json",
	};
	for (int type = 0; type < 3; type++) {
		struct conf_provider p = t_provider((enum conf_provider_type)type);
		for (size_t i = 0; i < sizeof(fixtures) / sizeof(fixtures[0]); i++) {
			struct event *ev = test_fixture("tests/fixtures/events", fixtures[i]);
			struct slack_item it = { .ev = ev };
			json_t *j = t_render(&p, &it, 1);
			t_check_limits(j);
			ck_assert(json_object_get(j, "attachments") == NULL);
			json_decref(j);
			event_free(ev);
		}
	}
}
END_TEST

/* ---- layout ---- */

static const struct {
	enum event_severity sev;
	const char *marker;
} t_markers[] = {
	{ EVENT_ERROR, ":red_circle: *" },
	{ EVENT_WARNING, ":large_yellow_circle: *" },
	{ EVENT_INFO, ":large_green_circle: *" },
	{ EVENT_TRACE, ":large_green_circle: *" },
};

START_TEST(test_marker)
{
	struct conf_provider p = t_provider(CONF_PROVIDER_CONSOLE);
	struct event ev = t_event(t_markers[_i].sev, "Progressing", "m");
	struct slack_item it = { .ev = &ev };
	json_t *j = t_render(&p, &it, 1);
	const char *head = t_section(j, 0);
	ck_assert_msg(strncmp(head, t_markers[_i].marker, strlen(t_markers[_i].marker)) == 0,
	    "%s", head);
	ck_assert_str_eq(strchr(head, '*'), "*Progressing*\nkustomization/webapp.apps");
	json_decref(j);
}
END_TEST

START_TEST(test_head)
{
	struct conf_provider p = t_provider(CONF_PROVIDER_CONSOLE);
	struct event ev = t_event(EVENT_ERROR, "", "m");
	struct slack_item it = { .ev = &ev };
	/* no reason: the author is the title, said once */
	json_t *j = t_render(&p, &it, 1);
	ck_assert_str_eq(t_section(j, 0), ":red_circle: *kustomization/webapp.apps*");
	json_decref(j);
	/* a templated title: author and reason on the second line */
	struct slack_look look = { "Web &amp; app", NULL, NULL, 0, NULL, 0 };
	ev.reason = "Failed&";
	it.look = &look;
	j = t_render(&p, &it, 1);
	ck_assert_str_eq(t_section(j, 0),
	    ":red_circle: *Web &amp; app*\nkustomization/webapp.apps \xc2\xb7 Failed&amp;");
	json_decref(j);
	/* a pathological head stays within one section's limit */
	struct util_buf amp = { 0 };
	for (int i = 0; i < 300; i++)
		util_buf_puts(&amp, "&");
	ev.name = amp.data;
	ev.reason = amp.data;
	it.look = NULL;
	j = t_render(&p, &it, 1);
	t_check_limits(j);
	const char *head = t_section(j, 0);
	ck_assert(strcmp(head + strlen(head) - 3, "\xe2\x80\xa6") == 0);
	ck_assert_ptr_null(strstr(head, "&amp\xe2\x80\xa6"));
	json_decref(j);
	util_buf_free(&amp);
}
END_TEST

START_TEST(test_code_block)
{
	struct conf_provider p = t_provider(CONF_PROVIDER_CONSOLE);
	struct event ev = t_event(EVENT_ERROR, "UpgradeFailed", "upgrade failed:\n<x> & y");
	struct slack_item it = { .ev = &ev };
	json_t *j = t_render(&p, &it, 1);
	ck_assert_str_eq(t_section(j, 1), "```upgrade failed:\n&lt;x&gt; &amp; y```");
	json_decref(j);
	/* one line: plain mrkdwn */
	ev.message = "upgrade failed: <x>";
	j = t_render(&p, &it, 1);
	ck_assert_str_eq(t_section(j, 1), "upgrade failed: &lt;x&gt;");
	json_decref(j);
	/* a templated text is placed as written, never in a code block */
	struct slack_look look = { NULL, "*bold*\n<https://x|link>", NULL, 0, NULL, 0 };
	ev.message = "a\nb";
	it.look = &look;
	j = t_render(&p, &it, 1);
	ck_assert_str_eq(t_section(j, 1), "*bold*\n<https://x|link>");
	json_decref(j);
}
END_TEST

START_TEST(test_empty_message)
{
	struct conf_provider p = t_provider(CONF_PROVIDER_CONSOLE);
	struct event ev = t_event(EVENT_INFO, "R", "");
	struct slack_item it = { .ev = &ev };
	ev.reporting_controller = "";
	/* head only: no message section (Slack refuses empty text), no context */
	json_t *j = t_render(&p, &it, 1);
	ck_assert_uint_eq(json_array_size(t_blocks(j)), 1);
	t_check_limits(j);
	json_decref(j);
	ev.message = " \n\t ";
	j = t_render(&p, &it, 1);
	ck_assert_uint_eq(json_array_size(t_blocks(j)), 1);
	json_decref(j);
}
END_TEST

/* Sections of at most 3,000 characters, entities whole, the text complete. */
START_TEST(test_split_sections)
{
	struct conf_provider p = t_provider(CONF_PROVIDER_CONSOLE);
	struct util_buf m = { 0 }, want = { 0 }, got = { 0 };
	for (int i = 0; i < 2000; i++)
		util_buf_puts(&m, "ab&cd<\xc3\xa9 ");     /* 8 characters, 15 escaped */
	struct event ev = t_event(EVENT_ERROR, "R", m.data);
	struct slack_item it = { .ev = &ev };
	p.max_text = 40000;
	json_t *j = t_render(&p, &it, 1);
	t_check_limits(j);
	size_t n = json_array_size(t_blocks(j));
	/* 2000 * 15 = 30,000 characters as sent: 10 full sections */
	ck_assert_uint_eq(n, 1 + 10 + 1);
	for (size_t i = 1; i + 1 < n; i++) {
		const char *s = t_section(j, i);
		util_buf_puts(&got, s);
		/* never ends inside an entity */
		size_t l = strlen(s);
		const char *amp = strrchr(s, '&');
		ck_assert(amp == NULL || strchr(amp, ';') != NULL);
		ck_assert_uint_gt(l, 0);
	}
	for (int i = 0; i < 2000; i++)
		util_buf_puts(&want, "ab&amp;cd&lt;\xc3\xa9 ");
	ck_assert_str_eq(got.data, want.data);
	json_decref(j);

	/* the marker of max_text, after the last piece */
	p.max_text = 5000;
	j = t_render(&p, &it, 1);
	n = json_array_size(t_blocks(j));
	ck_assert_ptr_nonnull(strstr(t_section(j, n - 2), "\xe2\x80\xa6 (11000 more characters)"));
	json_decref(j);
	util_buf_free(&m);
	util_buf_free(&want);
	util_buf_free(&got);
}
END_TEST

/* A code block is split after whole lines, each piece fenced. */
START_TEST(test_split_lines)
{
	struct conf_provider p = t_provider(CONF_PROVIDER_CONSOLE);
	struct util_buf m = { 0 };
	for (int i = 0; i < 100; i++)
		util_buf_printf(&m, "%03d %s\n", i,
		    "0123456789012345678901234567890123456789012345678901234567890123456789");
	struct event ev = t_event(EVENT_ERROR, "R", m.data);
	struct slack_item it = { .ev = &ev };
	p.max_text = 40000;
	json_t *j = t_render(&p, &it, 1);
	t_check_limits(j);
	size_t n = json_array_size(t_blocks(j));
	ck_assert_uint_eq(n, 1 + 3 + 1);
	for (size_t i = 1; i < n - 1; i++) {
		const char *s = t_section(j, i);
		size_t l = strlen(s);
		ck_assert(strncmp(s, "```", 3) == 0 && strcmp(s + l - 3, "```") == 0);
		ck_assert_msg(s[l - 4] == '\n', "piece %zu does not end a line", i);
		ck_assert_msg(s[3] != '\n' && (i == 1 || strncmp(s + 3, "0", 1) == 0), "%.10s", s);
	}
	json_decref(j);
	util_buf_free(&m);
}
END_TEST

START_TEST(test_fields)
{
	struct conf_provider p = t_provider(CONF_PROVIDER_CONSOLE);
	struct event ev = t_event(EVENT_INFO, "R", "m");
	struct conf_kv extra[60];
	char keys[60][8];
	struct util_buf big = { 0 };
	for (int i = 0; i < 3000; i++)
		util_buf_puts(&big, "&");
	for (int i = 0; i < 60; i++) {
		snprintf(keys[i], sizeof(keys[i]), "k%02d", 59 - i);
		extra[i].key = keys[i];
		extra[i].value = i == 0 ? big.data : "v";
	}
	struct slack_item it = { .ev = &ev, .extra = extra, .nextra = 60 };
	json_t *j = t_render(&p, &it, 1);
	t_check_limits(j);
	/* 49 fields and "11 more fields not shown": 5 sections of 10 */
	for (size_t s = 0; s < 5; s++) {
		json_t *f = json_object_get(json_array_get(t_blocks(j), 2 + s), "fields");
		ck_assert_uint_eq(json_array_size(f), 10);
	}
	json_t *f0 = json_object_get(json_array_get(t_blocks(j), 2), "fields");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(f0, 0), "text")),
	    "*k00*\nv");
	json_t *f4 = json_object_get(json_array_get(t_blocks(j), 6), "fields");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(f4, 9), "text")),
	    "*11 more fields not shown*");
	json_decref(j);

	/* the huge value, shown: bounded to one field's limit, entities whole */
	extra[0].key = "a";
	it.nextra = 1;
	j = t_render(&p, &it, 1);
	json_t *f = json_object_get(json_array_get(t_blocks(j), 2), "fields");
	const char *text = json_string_value(json_object_get(json_array_get(f, 0), "text"));
	ck_assert_uint_le(t_cps(text), SLACK_BLOCKS_MAX_FIELD);
	ck_assert_uint_ge(t_cps(text), SLACK_BLOCKS_MAX_FIELD - 5);
	ck_assert(strcmp(text + strlen(text) - 8, "&amp;\xe2\x80\xa6") == 0);
	json_decref(j);
	util_buf_free(&big);
}
END_TEST

START_TEST(test_context)
{
	struct conf_provider p = t_provider(CONF_PROVIDER_CONSOLE);
	struct event ev = t_event(EVENT_INFO, "R", "m");
	struct slack_link links[] = { { "https://a", "A" }, { "https://b", "" } };
	struct slack_look look = { NULL, NULL, links, 2, NULL, 0 };
	struct slack_item it = { .ev = &ev, .look = &look };
	ev.has_timestamp = true;
	ev.timestamp = 1666941979;
	json_t *j = t_render(&p, &it, 1);
	json_t *ctx = json_array_get(t_blocks(j), 2);
	ck_assert_str_eq(json_string_value(json_object_get(ctx, "type")), "context");
	json_t *el = json_object_get(ctx, "elements");
	ck_assert_uint_eq(json_array_size(el), 3);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(el, 0), "text")),
	    "kustomize-controller");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(el, 1), "text")),
	    "<!date^1666941979^{date_short_pretty} {time_secs}|2022-10-28T07:26:19Z>");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(el, 2), "text")),
	    "<https://a|A> \xc2\xb7 <https://b>");
	json_decref(j);

	/* The sending client's cluster follows the controller, escaped. */
	it.cluster = "prod<eu>";
	j = t_render(&p, &it, 1);
	json_t *blocks = t_blocks(j);
	ctx = json_array_get(blocks, json_array_size(blocks) - 1);
	ck_assert_str_eq(json_string_value(json_object_get(ctx, "type")), "context");
	el = json_object_get(ctx, "elements");
	ck_assert_uint_eq(json_array_size(el), 4);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(el, 1), "text")),
	    "cluster: prod&lt;eu&gt;");
	json_decref(j);
}
END_TEST

/*
 * Without a client's cluster, the context shows the alert's "cluster"
 * metadata, also when it is among the fields not shown (it sorts after 60
 * others here); none when no field is a cluster.
 */
START_TEST(test_context_cluster_field)
{
	struct conf_provider p = t_provider(CONF_PROVIDER_CONSOLE);
	struct event ev = t_event(EVENT_INFO, "R", "m");
	struct conf_kv extra[61];
	char keys[60][8];
	struct slack_item it = { .ev = &ev, .extra = extra };

	for (size_t i = 0; i < 60; i++) {
		snprintf(keys[i], sizeof(keys[i]), "a%02zu", i);
		extra[i].key = keys[i];
		extra[i].value = "v";
	}
	extra[60].key = "cluster";
	extra[60].value = "prod-eu-1";
	for (int hidden = 0; hidden < 2; hidden++) {
		it.extra = hidden ? extra : &extra[60];
		it.nextra = hidden ? 61 : 1;
		json_t *j = t_render(&p, &it, 1);
		json_t *blocks = t_blocks(j);
		json_t *ctx = json_array_get(blocks, json_array_size(blocks) - 1);
		ck_assert_str_eq(json_string_value(json_object_get(ctx, "type")), "context");
		json_t *el = json_object_get(ctx, "elements");
		ck_assert_uint_eq(json_array_size(el), 2);
		ck_assert_str_eq(json_string_value(json_object_get(json_array_get(el, 1), "text")),
		    "cluster: prod-eu-1");
		json_decref(j);
	}
	it.nextra = 60;
	json_t *j = t_render(&p, &it, 1);
	json_t *blocks = t_blocks(j);
	json_t *ctx = json_array_get(blocks, json_array_size(blocks) - 1);
	ck_assert_uint_eq(json_array_size(json_object_get(ctx, "elements")), 1);
	json_decref(j);
}
END_TEST

START_TEST(test_text_and_mentions)
{
	struct conf_provider p = t_provider(CONF_PROVIDER_SLACK);
	struct event err = t_event(EVENT_ERROR, "R", "first line\nsecond");
	struct event info = t_event(EVENT_INFO, "R", "fine");
	struct slack_look a = { NULL, NULL, NULL, 0, "<!here> <@U1>", 0 };
	struct slack_look b = { NULL, NULL, NULL, 0, "<@U1> <!subteam^S1>", 0 };
	struct slack_item items[] = { { .ev = &err, .look = &a }, { .ev = &info, .look = &a },
	    { .ev = &err, .look = &b } };

	json_t *j = t_render(&p, items, 1);
	ck_assert_str_eq(json_string_value(json_object_get(j, "text")),
	    "<!here> <@U1> kustomization/webapp.apps: first line");
	json_decref(j);
	/* never on info */
	j = t_render(&p, &items[1], 1);
	ck_assert_str_eq(json_string_value(json_object_get(j, "text")),
	    "kustomization/webapp.apps: fine");
	json_decref(j);
	/* coalesced: each distinct mention of the error events once, then "N events" */
	j = t_render(&p, items, 3);
	ck_assert_str_eq(json_string_value(json_object_get(j, "text")),
	    "<!here> <@U1> <!subteam^S1> 3 events");
	/* one divider between events */
	size_t i;
	json_t *blk;
	int dividers = 0;
	json_array_foreach(t_blocks(j), i, blk)
		dividers += strcmp(json_string_value(json_object_get(blk, "type")), "divider") == 0;
	ck_assert_int_eq(dividers, 2);
	json_decref(j);
}
END_TEST

/*
 * The "… (N more characters)" that s ends in: N, or -1 when s does not end
 * in one. *at gets where the marker starts.
 */
static long
t_marker_n(const char *s, const char **at)
{
	const char *m = NULL;
	long n = -1;
	int end = -1;

	for (const char *p = strstr(s, "\xe2\x80\xa6 ("); p != NULL; p = strstr(p + 1, "\xe2\x80\xa6 ("))
		m = p;
	if (m == NULL || sscanf(m, "\xe2\x80\xa6 (%ld more characters)%n", &n, &end) != 1 ||
	    end < 0 || m[end] != '\0')
		return -1;
	*at = m;
	return n;
}

/* A message of n copies of c (caller frees). */
static char *
t_repeat(char c, size_t n)
{
	char *s = malloc(n + 1);
	ck_assert_ptr_nonnull(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

/*
 * The top-level text as sent stays within Slack's 40,000 characters
 * (msg_too_long otherwise: a dead letter), mention and escaping included,
 * with max_text = 40000: a 39,990-character line and a mention gave 40,045;
 * 39,000 '<' gave 156,020 (each is "&lt;" as sent). The line is cut there
 * with "… (N more characters)", N counting all of the line not shown; the
 * blocks keep their own limits.
 */
START_TEST(test_top_text_bound)
{
	struct conf_provider p = t_provider(CONF_PROVIDER_SLACK_BOT);
	struct slack_look look = { NULL, NULL, NULL, 0, "<!here>", 0 };
	char *ascii = t_repeat('a', 39990), *lt = t_repeat('<', 39000);
	struct event e1 = t_event(EVENT_ERROR, "R", ascii), e2 = t_event(EVENT_ERROR, "R", lt);
	struct slack_incident opened = { .since = 1666941979.0, .failures = 1 };
	struct slack_item items[] = {
		{ .ev = &e1, .look = &look },
		{ .ev = &e2, .look = &look },
		{ .ev = &e2, .look = &look, .kind = SLACK_KIND_OPENED, .incident = &opened },
	};
	static const char *const unit[] = { "a", "&lt;", "&lt;" };
	static const char head[] = "<!here> kustomization/webapp.apps: ";

	p.max_text = 40000;
	for (size_t i = 0; i < 3; i++) {
		json_t *j = t_render(&p, &items[i], 1);
		t_check_limits(j);
		const char *text = json_string_value(json_object_get(j, "text")), *m = NULL;
		ck_assert_uint_le(t_cps(text), SLACK_BLOCKS_MAX_TOP);
		ck_assert_uint_gt(t_cps(text), SLACK_BLOCKS_MAX_TOP - 10);
		ck_assert(strncmp(text, head, strlen(head)) == 0);
		/* whole entities, then the marker */
		const char *s = text + strlen(head);
		size_t kept = 0, ul = strlen(unit[i]);
		for (; strncmp(s, unit[i], ul) == 0; s += ul)
			kept++;
		long n = t_marker_n(s, &m);
		ck_assert_msg(n >= 0 && m == s, "no marker after the line: %.80s", s);
		ck_assert_uint_eq(kept + (size_t)n, strlen(items[i].ev->message));
		json_decref(j);
	}

	/* coalesced: the mention once and "N events", as many events as fit */
	size_t used = 0;
	char *got = slack_render_fit(&p, NULL, items, 3, &used);
	ck_assert_ptr_nonnull(got);
	json_t *j = json_loads(got, 0, NULL);
	free(got);
	ck_assert_uint_eq(used, 2);
	t_check_limits(j);
	ck_assert_str_eq(json_string_value(json_object_get(j, "text")), "<!here> 2 events");
	json_decref(j);

	/* mentions beyond all reason are cut too, never inside one */
	struct util_buf many = { 0 };
	for (int i = 0; i < 3200; i++)
		util_buf_printf(&many, "%s<@U%08d>", i ? " " : "", i);
	look.mention = many.data;
	j = t_render(&p, &items[0], 1);
	t_check_limits(j);
	const char *text = json_string_value(json_object_get(j, "text")), *m = NULL;
	ck_assert_uint_le(t_cps(text), SLACK_BLOCKS_MAX_TOP);
	ck_assert_int_gt(t_marker_n(text, &m), 0);
	size_t opened_at = 0, closed = 0;
	for (const char *c = text; c < m; c++) {
		opened_at += *c == '<';
		closed += *c == '>';
	}
	ck_assert_uint_eq(opened_at, closed);
	ck_assert(m[-1] == '>' || m[-1] == ' ');
	json_decref(j);
	util_buf_free(&many);
	free(ascii);
	free(lt);
}
END_TEST

/*
 * The message sections under the same inputs: the last of them says how
 * much of the message is not shown, also when max_text cut it first.
 */
START_TEST(test_sections_marker_count)
{
	struct conf_provider p = t_provider(CONF_PROVIDER_SLACK_BOT);
	char *lt = t_repeat('<', 50000);
	struct event ev = t_event(EVENT_ERROR, "R", lt);
	struct slack_item it = { .ev = &ev };

	p.max_text = 40000;
	json_t *j = t_render(&p, &it, 1);
	t_check_limits(j);
	size_t shown = 0, i;
	long n = -1;
	json_t *b;
	json_array_foreach(t_blocks(j), i, b) {
		json_t *t = json_object_get(b, "text");
		const char *s = json_string_value(json_object_get(t, "text")), *m = NULL;
		if (i == 0 || s == NULL)
			continue;
		for (; strncmp(s, "&lt;", 4) == 0; s += 4)
			shown++;
		if (*s != '\0')
			n = t_marker_n(s, &m);
	}
	ck_assert_uint_eq(json_array_size(t_blocks(j)), 22);
	ck_assert_int_gt(n, 0);
	ck_assert_uint_eq(shown + (size_t)n, 50000);
	json_decref(j);
	free(lt);
}
END_TEST

/*
 * A live count adds a line after the parent's text: the parent leaves room
 * for it, and a text that does not (an older version's) is cut so the
 * update stays within 40,000 characters.
 */
START_TEST(test_count_text_bound)
{
	struct conf_provider p = t_provider(CONF_PROVIDER_SLACK_BOT);
	char *lt = t_repeat('<', 39000), *ascii = t_repeat('a', 39990);
	struct event ev = t_event(EVENT_ERROR, "R", lt);
	struct slack_look look = { NULL, NULL, NULL, 0, "<!here>", 0 };
	struct slack_item it = { .ev = &ev, .look = &look };
	const double t0 = 1666941979.0;
	static const char count[] = "\n12 failures since 07:26 UTC";

	p.max_text = 40000;
	json_t *pj = t_render(&p, &it, 1);
	char *parent = json_dumps(pj, 0);
	char *got = slack_render_count_string("C0123ABCDEF", "1666941979.000100", 12, t0,
	    t0 + 720, parent);
	json_t *j = json_loads(got, 0, NULL);
	ck_assert_ptr_nonnull(j);
	char *want = util_printf("%s%s", json_string_value(json_object_get(pj, "text")), count);
	ck_assert_str_eq(json_string_value(json_object_get(j, "text")), want);
	ck_assert_uint_le(t_cps(want), 40000);
	free(want);
	json_decref(j);
	free(got);
	free(parent);
	json_decref(pj);

	pj = json_pack("{s:s, s:[{s:s, s:{s:s, s:s}}]}", "text", ascii, "blocks", "type",
	    "section", "text", "type", "mrkdwn", "text", "a");
	parent = json_dumps(pj, 0);
	got = slack_render_count_string("C0123ABCDEF", "1666941979.000100", 12, t0, t0 + 720,
	    parent);
	j = json_loads(got, 0, NULL);
	ck_assert_ptr_nonnull(j);
	const char *text = json_string_value(json_object_get(j, "text"));
	ck_assert_uint_le(t_cps(text), 40000);
	ck_assert_uint_gt(t_cps(text), 39990);
	size_t tl = strlen(text), cl = strlen(count), kept = strspn(text, "a");
	ck_assert(tl > cl && strcmp(text + tl - cl, count) == 0);
	char *line = util_strndup(text + kept, tl - cl - kept), *m = NULL;
	long n = t_marker_n(line, (const char **)&m);
	ck_assert_msg(n >= 0 && m == line, "no marker: %s", line);
	ck_assert_uint_eq(kept + (size_t)n, 39990);
	free(line);
	json_decref(j);
	free(got);
	free(parent);
	json_decref(pj);
	free(lt);
	free(ascii);
}
END_TEST

/*
 * Reminder and recovered (SPEC §12, §13): the top-level text, where Slack
 * notifies from, says what the kind says, as the attachments' fallback does
 * ("Failing since …", "Recovered after …"), not the event's first line.
 */
START_TEST(test_golden_kinds)
{
	struct conf_provider p = t_provider(CONF_PROVIDER_SLACK);
	struct event *e1 = test_fixture("tests/fixtures/events",
	    "01-kustomization-validation-failed-generic-webhook.json");
	struct event *rec = test_fixture("tests/fixtures/events",
	    "11-kustomization-reconciliation-succeeded-recovery.json");
	const double t01 = 1666941979.0;     /* fixture 01's time */
	struct slack_incident reminder = { .since = t01 - 11100, .failures = 42 };
	struct slack_incident recovered = { .since = t01, .failures = 5, .duration = 884,
	    .last_message = "service/apps/webapp validation error: spec.type: Unsupported value" };
	struct slack_incident opened = { .since = t01, .failures = 1 };
	struct slack_item items[] = {
		{ .ev = e1, .kind = SLACK_KIND_REMINDER, .incident = &reminder },
		{ .ev = rec, .kind = SLACK_KIND_RECOVERED, .incident = &recovered },
		{ .ev = e1, .kind = SLACK_KIND_OPENED, .incident = &opened },
	};
	static const char *const golden[] = { "payload-blocks-kind-reminder.json",
		"payload-blocks-kind-recovered.json", NULL };
	static const char *const want[] = {
		"kustomization/webapp.apps: Failing since 04:21 UTC (3h05m), 42 failures.",
		"kustomization/webapp.apps: Recovered after 14m (5 failures).",
		"kustomization/webapp.apps: service/apps/webapp validation error: spec.type: "
		    "Unsupported value: Ingress",
	};

	for (size_t i = 0; i < 3; i++) {
		json_t *j = t_render(&p, &items[i], 1);
		t_check_limits(j);
		ck_assert_str_eq(json_string_value(json_object_get(j, "text")), want[i]);
		if (golden[i] != NULL) {
			char *got = slack_render_string(&p, NULL, &items[i], 1);
			test_golden(golden[i], got);
			free(got);
		}
		/* the attachments' fallback says the same */
		p.format = CONF_FORMAT_ATTACHMENTS;
		char *as = slack_render_string(&p, NULL, &items[i], 1);
		json_t *a = json_loads(as, 0, NULL);
		free(as);
		p.format = CONF_FORMAT_BLOCKS;
		ck_assert_ptr_nonnull(a);
		ck_assert_str_eq(json_string_value(json_object_get(json_array_get(
		    json_object_get(a, "attachments"), 0), "fallback")), want[i]);
		json_decref(a);
		json_decref(j);
	}
	event_free(e1);
	event_free(rec);
}
END_TEST

/*
 * The live count of a Block Kit parent (SPEC §12): the parent's blocks again
 * with the count as a context block under the head, since Slack shows the
 * blocks, not the text; within the limits at 50 blocks too.
 */
START_TEST(test_count_blocks)
{
	struct conf_provider p = t_provider(CONF_PROVIDER_SLACK_BOT);
	struct event *ev = test_fixture("tests/fixtures/events",
	    "01-kustomization-validation-failed-generic-webhook.json");
	struct slack_incident opened = { .since = 1666941979.0, .failures = 1 };
	struct slack_item it = { .ev = ev, .kind = SLACK_KIND_OPENED, .incident = &opened };
	p.channel = "#flux-bot";
	char *parent = slack_render_string(&p, NULL, &it, 1);
	ck_assert_ptr_nonnull(parent);
	json_t *pj = json_loads(parent, 0, NULL);
	size_t nparent = json_array_size(json_object_get(pj, "blocks"));

	char *got = slack_render_count_string("C0123ABCDEF", "1666941979.000100", 12,
	    1666941979.0, 1666941979.0 + 720, parent);
	test_golden("payload-blocks-update-count.json", got);
	json_t *j = json_loads(got, 0, NULL);
	ck_assert_ptr_nonnull(j);
	ck_assert_str_eq(json_string_value(json_object_get(j, "channel")), "C0123ABCDEF");
	ck_assert_str_eq(json_string_value(json_object_get(j, "ts")), "1666941979.000100");
	ck_assert_ptr_null(json_object_get(j, "username"));
	ck_assert_ptr_null(json_object_get(j, "unfurl_links"));
	json_t *blocks = json_object_get(j, "blocks");
	ck_assert_uint_eq(json_array_size(blocks), nparent + 1);
	ck_assert(json_equal(json_array_get(blocks, 0),
	    json_array_get(json_object_get(pj, "blocks"), 0)));
	json_t *ctx = json_array_get(blocks, 1);
	ck_assert_str_eq(json_string_value(json_object_get(ctx, "type")), "context");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(
	    json_object_get(ctx, "elements"), 0), "text")), "12 failures since 07:26 UTC");
	char *text = util_printf("%s\n12 failures since 07:26 UTC",
	    json_string_value(json_object_get(pj, "text")));
	ck_assert_str_eq(json_string_value(json_object_get(j, "text")), text);
	free(text);
	json_decref(j);
	free(got);

	/* 50 blocks: one more element of the last context block when it has room */
	json_t *full = json_array();
	for (int i = 0; i < SLACK_BLOCKS_MAX - 1; i++)
		json_array_append_new(full, json_pack("{s:s}", "type", "divider"));
	json_t *elems = json_array();
	json_array_append_new(full, json_pack("{s:s, s:o}", "type", "context", "elements", elems));
	for (int i = 0; i < 9; i++)
		json_array_append_new(elems, json_pack("{s:s, s:s}", "type", "mrkdwn", "text", "x"));
	json_t *fp = json_pack("{s:s, s:O}", "text", "t", "blocks", full);
	char *fs = json_dumps(fp, 0);
	got = slack_render_count_string("C1", "1.5", 3, 1666941979.0, 1666941979.0, fs);
	j = json_loads(got, 0, NULL);
	blocks = json_object_get(j, "blocks");
	ck_assert_uint_eq(json_array_size(blocks), SLACK_BLOCKS_MAX);
	json_t *last = json_object_get(json_array_get(blocks, SLACK_BLOCKS_MAX - 1), "elements");
	ck_assert_uint_eq(json_array_size(last), 10);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(last, 9), "text")),
	    "3 failures since 07:26 UTC");
	json_decref(j);
	free(got);
	free(fs);
	/* ... and no blocks at all when it has none (ten elements already) */
	json_array_append_new(elems, json_pack("{s:s, s:s}", "type", "mrkdwn", "text", "x"));
	json_object_set(fp, "blocks", full);
	fs = json_dumps(fp, 0);
	got = slack_render_count_string("C1", "1.5", 3, 1666941979.0, 1666941979.0, fs);
	ck_assert_str_eq(got, "{\"channel\":\"C1\",\"ts\":\"1.5\",\"text\":"
	    "\"3 failures since 07:26 UTC\"}");
	free(got);
	free(fs);
	json_decref(fp);
	json_decref(full);
	/* an attachments parent, or none: the text only, as before */
	p.format = CONF_FORMAT_ATTACHMENTS;
	char *att = slack_render_string(&p, NULL, &it, 1);
	got = slack_render_count_string("C1", "1.5", 3, 1666941979.0, 1666941979.0, att);
	ck_assert_str_eq(got, "{\"channel\":\"C1\",\"ts\":\"1.5\",\"text\":"
	    "\"3 failures since 07:26 UTC\"}");
	free(got);
	free(att);
	json_decref(pj);
	free(parent);
	event_free(ev);
}
END_TEST

/* At most 50 blocks: the events that do not fit are left for the next message. */
START_TEST(test_fifty_blocks)
{
	struct conf_provider p = t_provider(CONF_PROVIDER_SLACK);
	struct event ev = t_event(EVENT_ERROR, "R", "m");
	struct conf_kv extra[45];
	char keys[45][8];
	for (int i = 0; i < 45; i++) {
		snprintf(keys[i], sizeof(keys[i]), "k%02d", i);
		extra[i].key = keys[i];
		extra[i].value = "v";
	}
	struct slack_item items[10];
	for (int i = 0; i < 10; i++)
		items[i] = (struct slack_item){ .ev = &ev, .extra = extra, .nextra = 45 };
	/* each event: head, message, 5 field sections, context = 8 blocks */
	size_t used = 0;
	char *s = slack_render_fit(&p, NULL, items, 10, &used);
	ck_assert_ptr_nonnull(s);
	ck_assert_uint_eq(used, 5);                      /* 5 * 8 + 4 dividers = 44 */
	json_t *j = json_loads(s, 0, NULL);
	free(s);
	t_check_limits(j);
	ck_assert_uint_eq(json_array_size(t_blocks(j)), 44);
	ck_assert_str_eq(json_string_value(json_object_get(j, "text")), "5 events");
	json_decref(j);
	/* the rest, next: all of them fit */
	s = slack_render_fit(&p, NULL, items + 5, 5, &used);
	ck_assert_uint_eq(used, 5);
	free(s);
	/* all of them at once do not: slack_render refuses */
	ck_assert_ptr_null(slack_render(&p, NULL, items, 10));
	/* attachments hold them all */
	p.format = CONF_FORMAT_ATTACHMENTS;
	s = slack_render_fit(&p, NULL, items, 10, &used);
	ck_assert_uint_eq(used, 10);
	free(s);
	/* the largest single event fits alone */
	struct util_buf m = { 0 };
	for (int i = 0; i < 40000; i++)
		util_buf_puts(&m, i % 100 == 99 ? "\n" : "&");
	struct conf_kv many[60];
	char mkeys[60][8];
	for (int i = 0; i < 60; i++) {
		snprintf(mkeys[i], sizeof(mkeys[i]), "m%02d", i);
		many[i].key = mkeys[i];
		many[i].value = "v";
	}
	struct event huge = t_event(EVENT_ERROR, "R", m.data);
	struct slack_item h = { .ev = &huge, .extra = many, .nextra = 60 };
	p.format = CONF_FORMAT_BLOCKS;
	p.max_text = 40000;
	j = t_render(&p, &h, 1);
	t_check_limits(j);
	json_decref(j);
	util_buf_free(&m);
}
END_TEST

START_TEST(test_invalid)
{
	struct conf_provider p = t_provider(CONF_PROVIDER_SLACK_BOT);
	struct event ev = t_event(EVENT_ERROR, "R", "m");
	struct slack_item it = { .ev = &ev };
	size_t used = 7;
	p.channel = NULL;
	ck_assert_ptr_null(slack_render_fit(&p, NULL, &it, 1, &used));
	ck_assert_uint_eq(used, 0);
	ck_assert_ptr_null(slack_render(&p, NULL, &it, 1));
	json_t *j = slack_render(&p, "C0123", &it, 1);
	ck_assert_ptr_nonnull(j);
	json_decref(j);
	ck_assert_ptr_null(slack_render(&p, "C0123", &it, 0));
	it.ev = NULL;
	ck_assert_ptr_null(slack_render(&p, "C0123", &it, 1));
}
END_TEST

#define T_N(a) ((int)(sizeof(a) / sizeof((a)[0])))

static Suite *
blocks_suite(void)
{
	Suite *s = suite_create("slack_blocks");
	TCase *tc = tcase_create("blocks");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_golden_webhook);
	tcase_add_test(tc, test_golden_bot);
	tcase_add_test(tc, test_golden_coalesced);
	tcase_add_test(tc, test_golden_multiline);
	tcase_add_test(tc, test_fixtures_within_limits);
	tcase_add_loop_test(tc, test_marker, 0, T_N(t_markers));
	tcase_add_test(tc, test_head);
	tcase_add_test(tc, test_code_block);
	tcase_add_test(tc, test_empty_message);
	tcase_add_test(tc, test_split_sections);
	tcase_add_test(tc, test_split_lines);
	tcase_add_test(tc, test_fields);
	tcase_add_test(tc, test_context);
	tcase_add_test(tc, test_context_cluster_field);
	tcase_add_test(tc, test_text_and_mentions);
	tcase_add_test(tc, test_top_text_bound);
	tcase_add_test(tc, test_sections_marker_count);
	tcase_add_test(tc, test_count_text_bound);
	tcase_add_test(tc, test_golden_kinds);
	tcase_add_test(tc, test_count_blocks);
	tcase_add_test(tc, test_fifty_blocks);
	tcase_add_test(tc, test_invalid);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(blocks_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
