/*
 * Unit tests for slack_look and the templated payloads: the README's
 * example (tests/configs/valid-templates.conf) on the fixtures of
 * tests/fixtures/templates against golden payloads (tests/golden/
 * payload-templated-*.json, type-checked by tests/slack-types); the merge
 * rule of several alerts; bounds of titles, link texts and URLs; escaping;
 * where a look's parts land in the attachments form (title, text, links,
 * mention in the top-level text of error events only).
 *
 * FR_UPDATE_GOLDEN=1 rewrites the goldens from the output instead of
 * comparing (then check the diff by eye).
 */
#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "event.h"
#include "slack.h"
#include "slack_look.h"
#include "template.h"
#include "util.h"
#include "test_files.h"

/* ---- helpers ---- */


static struct event *
t_fixture(const char *name)
{
	return test_fixture("tests/fixtures/templates", name);
}


static struct conf *
t_conf_file(const char *path)
{
	char *err = NULL;
	struct conf *c = conf_load(path, &err);
	ck_assert_msg(c != NULL, "%s: %s", path, err ? err : "");
	return c;
}

/* Load a config from text (a temporary file, removed at once). */
static struct conf *
t_conf_text(const char *text)
{
	char path[] = "/tmp/test_slack_look.XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	char *err = NULL;
	struct conf *c = conf_load(path, &err);
	unlink(path);
	ck_assert_msg(c != NULL, "%s", err ? err : "");
	return c;
}

static const struct conf_provider *
t_provider(const struct conf *c, const char *name)
{
	long i = conf_provider_find(c, name);
	ck_assert_int_ge(i, 0);
	return &c->providers[i];
}

/* The payload of one fixture for one provider of c, for the alerts named. */
static char *
t_payload(const struct conf *c, const char *provider, const char *alerts, const char *fixture)
{
	const struct conf_provider *p = t_provider(c, provider);
	struct event *ev = t_fixture(fixture);
	struct slack_item it = { .ev = ev };
	struct slack_look *look = slack_look_new(c, alerts, p, &it, NULL);
	it.look = look;
	char *s = slack_render_string(p, NULL, &it, 1);
	slack_look_free(look);
	event_free(ev);
	return s;
}

static json_t *
t_json(char *s)
{
	json_error_t jerr;
	json_t *j = json_loads(s, 0, &jerr);
	ck_assert_msg(j != NULL, "%s: %s", jerr.text, s);
	free(s);
	return j;
}

/* ---- the README's example: golden payloads ---- */

static const struct {
	const char *golden, *provider, *fixture;
} t_readme[] = {
	{ "payload-templated-blocks.json", "slack", "kustomization-health-failed.json" },
	{ "payload-templated-blocks-bot.json", "bot", "kustomization-health-failed.json" },
	{ "payload-templated-blocks-helm.json", "slack", "helmrelease-upgrade-failed.json" },
	{ "payload-templated-blocks-info.json", "slack", "kustomization-reconciled.json" },
	{ "payload-templated-attachments.json", "legacy", "kustomization-health-failed.json" },
	{ "payload-templated-attachments-info.json", "legacy", "kustomization-reconciled.json" },
};

START_TEST(test_readme_golden)
{
	struct conf *c = t_conf_file(FR_SRCDIR "/tests/configs/valid-templates.conf");
	char *got = t_payload(c, t_readme[_i].provider, "production", t_readme[_i].fixture);
	test_golden(t_readme[_i].golden, got);
	free(got);
	conf_free(c);
}
END_TEST

/* What the "done when" of the issue asks of the README's example, spelled out. */
START_TEST(test_readme_example)
{
	struct conf *c = t_conf_file(FR_SRCDIR "/tests/configs/valid-templates.conf");
	json_t *j = t_json(t_payload(c, "slack", "production", "kustomization-health-failed.json"));
	const char *text = json_string_value(json_object_get(j, "text"));
	ck_assert_msg(strncmp(text, "<!subteam^S0123ABCD> ", 21) == 0, "%s", text);
	json_t *blocks = json_object_get(j, "blocks");
	char *dump = json_dumps(blocks, 0);
	ck_assert_msg(strstr(dump, "<https://github.com/acme/fleet/commit/"
	    "731f7eaddfb6af01cb2173e18f0f75b0ba780ef1|Commit 731f7ea>") != NULL, "%s", dump);
	ck_assert_msg(strstr(dump, "Kustomization webapp at 731f7ea") != NULL, "%s", dump);
	free(dump);
	/* fields sorted by key: env, originRevision, revision (token hidden) */
	json_t *fields = json_object_get(json_array_get(blocks, 2), "fields");
	ck_assert_uint_eq(json_array_size(fields), 3);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(fields, 0), "text")),
	    "*env*\nproduction");
	ck_assert(strncmp(json_string_value(json_object_get(json_array_get(fields, 2), "text")),
	    "*revision*\n", 11) == 0);
	json_decref(j);

	/* no mention on an info event; no commit link without a revision sha */
	j = t_json(t_payload(c, "slack", "production", "kustomization-reconciled.json"));
	ck_assert_ptr_null(strstr(json_string_value(json_object_get(j, "text")), "<!"));
	json_decref(j);
	j = t_json(t_payload(c, "slack", "production", "helmrelease-upgrade-failed.json"));
	dump = json_dumps(j, 0);
	ck_assert_ptr_null(strstr(dump, "github.com"));
	ck_assert_ptr_nonnull(strstr(dump, "|Dashboard>"));
	free(dump);
	json_decref(j);
	conf_free(c);
}
END_TEST

/* ---- merging several alerts ---- */

static const char t_merge_conf[] =
    "providers = ( { name = \"c\"; type = \"console\"; } );\n"
    "alerts = (\n"
    "  { name = \"plain\"; providers = [\"c\"]; sources = ( { kind = \"*\"; } ); },\n"
    "  { name = \"a\"; providers = [\"c\"]; sources = ( { kind = \"*\"; } );\n"
    "    title = \"A {{ .alert }}\"; mention = \"<!here>\"; },\n"
    "  { name = \"b\"; providers = [\"c\"]; sources = ( { kind = \"*\"; } );\n"
    "    title = \"B\"; text = \"text of {{ .alert }}\"; mention = \"<@U1> <!here>\";\n"
    "    links = ( { text = \"one\"; url = \"https://b/1\"; } ); },\n"
    "  { name = \"c\"; providers = [\"c\"]; sources = ( { kind = \"*\"; } );\n"
    "    links = ( { url = \"https://c/1\"; } ); mention = \"<!channel>\"; }\n"
    ");\n";

START_TEST(test_merge_first_in_config_order)
{
	struct conf *c = t_conf_text(t_merge_conf);
	struct event *ev = t_fixture("kustomization-health-failed.json");
	struct slack_item it = { .ev = ev };
	const struct conf_provider *p = t_provider(c, "c");

	/* the order of the names does not matter: config order does */
	struct slack_look *l = slack_look_new(c, "c,b,a,plain", p, &it, NULL);
	ck_assert_ptr_nonnull(l);
	ck_assert_str_eq(l->title, "A a");
	ck_assert_str_eq(l->text, "text of b");
	ck_assert_uint_eq(l->nlinks, 1);
	ck_assert_str_eq(l->links[0].url, "https://b/1");
	ck_assert_str_eq(l->links[0].text, "one");
	ck_assert_str_eq(l->mention, "<!here> <@U1> <!here> <!channel>");
	/* placed once each, in config order */
	it.look = l;
	json_t *j = t_json(slack_render_string(p, NULL, &it, 1));
	ck_assert_str_eq(json_string_value(json_object_get(j, "text")),
	    "<!here> <@U1> <!channel>");
	json_decref(j);
	slack_look_free(l);

	l = slack_look_new(c, "c", p, &it, NULL);
	ck_assert_ptr_null(l->title);
	ck_assert_ptr_null(l->text);
	ck_assert_str_eq(l->links[0].url, "https://c/1");
	ck_assert_str_eq(l->links[0].text, "");
	slack_look_free(l);

	/* no template among the alerts, or none of them known: the defaults */
	ck_assert_ptr_null(slack_look_new(c, "plain", p, &it, NULL));
	ck_assert_ptr_null(slack_look_new(c, "removed,gone", p, &it, NULL));
	ck_assert_ptr_null(slack_look_new(c, "", p, &it, NULL));
	/* a name is matched whole, not as a prefix */
	ck_assert_ptr_null(slack_look_new(c, "aa,bb", p, &it, NULL));
	event_free(ev);
	conf_free(c);
}
END_TEST

/* ---- bounds and escaping ---- */

START_TEST(test_bounds)
{
	struct conf *c = t_conf_text(
	    "providers = ( { name = \"c\"; type = \"console\"; max_text = 100; } );\n"
	    "alerts = ( { name = \"x\"; providers = [\"c\"]; sources = ( { kind = \"*\"; } );\n"
	    "  title = \"{{ printf \\\"%s%s%s\\\" .message .message .message }}\";\n"
	    "  text = \"{{ .message }}{{ .message }}\";\n"
	    "  links = ( { text = \"{{ .message }}{{ .message }}{{ .message }}\"; url = \"https://x/\"; },\n"
	    "            { text = \"empty\"; url = \"{{ .metadata.nosuch }}\"; },\n"
	    "            { text = \"long\"; url = \"https://x/{{ .message }}{{ .message }}"
	    "{{ .message }}{{ .message }}{{ .message }}{{ .message }}{{ .message }}\"; },\n"
	    "            { text = \"last\"; url = \"https://x/{{ .involvedObject.name }}\"; } ); } );\n");
	const struct conf_provider *p = t_provider(c, "c");
	struct event *ev = t_fixture("helmrelease-upgrade-failed.json");   /* > 300 characters */
	struct conf_kv extra[] = { { "big", NULL } };
	struct util_buf big = { 0 };
	for (int i = 0; i < 100; i++)
		util_buf_puts(&big, "0123456789");
	extra[0].value = big.data;
	struct slack_item it = { .ev = ev, .extra = extra, .nextra = 1 };
	struct slack_look *l = slack_look_new(c, "x", p, &it, NULL);

	/* a title is cut to 249 characters and "…"; so is a link text */
	ck_assert_uint_eq(template_chars(l->title, strlen(l->title)), SLACK_MAX_NAME);
	ck_assert(strcmp(l->title + strlen(l->title) - 3, "\xe2\x80\xa6") == 0);
	ck_assert_uint_eq(template_chars(l->links[0].text, strlen(l->links[0].text)),
	    SLACK_MAX_NAME);
	/*
	 * The look keeps max_text characters of the text, with no marker, and
	 * the count of all of it; a message cuts it once, at max_text, and its
	 * marker counts every character cut (it was cut twice, and said 23 where
	 * 133 were cut), as attachments and as Block Kit.
	 */
	size_t tlen = strlen(l->text), total = l->text_chars;
	ck_assert_uint_gt(total, 200);
	ck_assert_uint_eq(template_chars(l->text, tlen), 100);
	ck_assert_ptr_null(strstr(l->text, " more characters)"));
	size_t kept = template_chars(l->text, template_fit(l->text, tlen, 100));
	char *marker = util_printf("\xe2\x80\xa6 (%zu more characters)", total - kept);
	struct conf_provider bp = *p;
	it.look = l;
	for (int f = 0; f < 2; f++) {
		bp.format = f ? CONF_FORMAT_BLOCKS : CONF_FORMAT_ATTACHMENTS;
		char *payload = slack_render_string(&bp, NULL, &it, 1);
		ck_assert_ptr_nonnull(payload);
		ck_assert_msg(strstr(payload, marker) != NULL, "no %s in %s", marker, payload);
		free(payload);
	}
	it.look = NULL;
	free(marker);
	/* an empty URL and a link of over 3,000 characters are left out */
	ck_assert_uint_eq(l->nlinks, 2);
	ck_assert_str_eq(l->links[0].url, "https://x/");
	ck_assert_str_eq(l->links[1].url, "https://x/podinfo");
	ck_assert_str_eq(l->links[1].text, "last");
	slack_look_free(l);
	util_buf_free(&big);
	event_free(ev);
	conf_free(c);
}
END_TEST

/*
 * A link is left out only when it cannot be placed whole: "<url|text>" of
 * more than 3,000 characters as sent (Slack's bound on the Block Kit text
 * that shows it; an entity counts as its 4 or 5). Links with URLs of 2,001
 * to 2,986 characters disappeared although they fit.
 */
START_TEST(test_link_bound)
{
	struct conf *c = t_conf_text(
	    "providers = ( { name = \"c\"; type = \"console\"; format = \"blocks\"; } );\n"
	    "alerts = ( { name = \"x\"; providers = [\"c\"]; sources = ( { kind = \"*\"; } );\n"
	    "  links = ( { text = \"t\"; url = \"https://x/{{ .metadata.u }}\"; } ); } );\n");
	const struct conf_provider *p = t_provider(c, "c");
	/* "<https://x/" u "|t>": 14 characters more than u */
	static const struct { size_t n; const char *last; size_t nlinks; } cases[] = {
		{ 2001, "", 1 }, { 2986, "", 1 }, { 2987, "", 0 },
		{ 2981, "&", 1 }, { 2982, "&", 0 },     /* "&amp;" as sent */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct util_buf json = { 0 };
		util_buf_puts(&json, "{\"involvedObject\":{\"kind\":\"Kustomization\","
		    "\"name\":\"webapp\"},\"severity\":\"info\",\"message\":\"m\","
		    "\"metadata\":{\"u\":\"");
		for (size_t k = 0; k < cases[i].n; k++)
			util_buf_puts(&json, "a");
		util_buf_printf(&json, "%s\"}}", cases[i].last);
		char err[256], field[64];
		struct event *ev = event_parse(json.data, json.len, err, sizeof(err), field,
		    sizeof(field));
		ck_assert_msg(ev != NULL, "%s", err);
		struct slack_item it = { .ev = ev };
		struct slack_look *l = slack_look_new(c, "x", p, &it, NULL);
		ck_assert_ptr_nonnull(l);
		ck_assert_uint_eq(l->nlinks, cases[i].nlinks);
		if (l->nlinks > 0) {
			/* placed whole in the context block, within its 3,000 */
			it.look = l;
			char *payload = slack_render_string(p, NULL, &it, 1);
			ck_assert_ptr_nonnull(payload);
			char *want = util_printf("<%s|t>", l->links[0].url);
			ck_assert_uint_le(strlen(want), 3000);
			ck_assert_ptr_nonnull(strstr(payload, want));
			free(want);
			free(payload);
		}
		slack_look_free(l);
		event_free(ev);
		util_buf_free(&json);
	}
	conf_free(c);
}
END_TEST

START_TEST(test_escaping)
{
	struct conf *c = t_conf_text(
	    "providers = ( { name = \"c\"; type = \"console\"; } );\n"
	    "alerts = ( { name = \"x\"; providers = [\"c\"]; sources = ( { kind = \"*\"; } );\n"
	    "  title = \"<!here> {{ .metadata.t }}\";\n"
	    "  links = ( { text = \"{{ .metadata.t }}\"; url = \"https://x/?q={{ index .metadata \\\"t\\\" }}&a=1\"; } );\n"
	    "} );\n");
	const struct conf_provider *p = t_provider(c, "c");
	static const char json[] = "{\"involvedObject\":{\"kind\":\"Kustomization\","
	    "\"name\":\"webapp\"},\"severity\":\"info\",\"message\":\"m\","
	    "\"metadata\":{\"t\":\"a<b>&c|d e\"}}";
	char err[256], field[64];
	struct event *ev = event_parse(json, strlen(json), err, sizeof(err), field, sizeof(field));
	ck_assert_msg(ev != NULL, "%s", err);
	struct slack_item it = { .ev = ev };
	struct slack_look *l = slack_look_new(c, "x", p, &it, NULL);

	/* what actions print is escaped; the template's own text is not */
	ck_assert_str_eq(l->title, "<!here> a&lt;b&gt;&amp;c|d e");
	ck_assert_str_eq(l->links[0].text, "a&lt;b&gt;&amp;c|d e");
	/* a URL's actions also percent-encode '|' and spaces */
	ck_assert_str_eq(l->links[0].url, "https://x/?q=a&lt;b&gt;&amp;c%7Cd%20e&a=1");
	/* placed as they are: never escaped twice */
	it.look = l;
	char *s = slack_render_string(p, NULL, &it, 1);
	ck_assert_msg(strstr(s, "\"title\":\"<!here> a&lt;b&gt;&amp;c|d e\"") != NULL, "%s", s);
	ck_assert_msg(strstr(s, "<https://x/?q=a&lt;b&gt;&amp;c%7Cd%20e&a=1|a&lt;b&gt;&amp;c|d e>")
	    != NULL, "%s", s);
	free(s);
	slack_look_free(l);
	event_free(ev);
	conf_free(c);
}
END_TEST

/*
 * .alert is the name of the alert whose template renders; .metadata is the
 * event's normalized metadata (SPEC §13), without the alert's metadata and
 * summary, which the message shows as fields of their own.
 */
START_TEST(test_data)
{
	struct conf *c = t_conf_text(
	    "providers = ( { name = \"c\"; type = \"console\"; } );\n"
	    "alerts = ( { name = \"prod-errors\"; providers = [\"c\"]; sources = ( { kind = \"*\"; } );\n"
	    "  metadata = { team = \"web\"; }; summary = \"Production\";\n"
	    "  text = \"{{ .alert }} [{{ .metadata.team }}{{ .metadata.summary }}] {{ len .metadata }} "
	    "{{ range $k, $v := .metadata }}{{ $k }} {{ end }}"
	    "{{ .metadata.env }} {{ .revision.ref }} {{ .revision.short }} {{ .metadata.token }}.\";\n"
	    "} );\n");
	const struct conf_provider *p = t_provider(c, "c");
	struct event *ev = t_fixture("kustomization-health-failed.json");
	struct conf_kv extra[] = { { "team", "web" }, { "summary", "Production" } };
	struct slack_item it = { .ev = ev, .extra = extra, .nextra = 2 };
	struct slack_look *l = slack_look_new(c, "prod-errors", p, &it, NULL);
	ck_assert_str_eq(l->text,
	    "prod-errors [] 3 env originRevision revision production main 731f7ea .");
	/* the alert's metadata and summary are still the message's fields */
	it.look = l;
	char *s = slack_render_string(p, NULL, &it, 1);
	ck_assert_msg(strstr(s, "{\"title\":\"summary\",\"value\":\"Production\"") != NULL, "%s", s);
	ck_assert_msg(strstr(s, "{\"title\":\"team\",\"value\":\"web\"") != NULL, "%s", s);
	free(s);
	slack_look_free(l);
	event_free(ev);
	conf_free(c);
}
END_TEST

/*
 * notify = "changes": .incident.* from the message kind and the incident
 * snapshot; the mention goes out on opened and reminder messages, never on
 * recovered ones (SPEC §13); Block Kit shows the kind's marker and title.
 */
START_TEST(test_incident_kinds)
{
	struct conf *c = t_conf_text(
	    "providers = ( { name = \"c\"; type = \"console\"; },\n"
	    "  { name = \"k\"; type = \"console\"; format = \"blocks\"; } );\n"
	    "alerts = ( { name = \"inc\"; providers = [\"c\", \"k\"]; notify = \"changes\";\n"
	    "  sources = ( { kind = \"*\"; } ); mention = \"<!here>\";\n"
	    "  text = \"{{ .incident.state }} since {{ .incident.since }} for "
	    "{{ .incident.duration }}, {{ .incident.count }} failures\"; } );\n");
	const struct conf_provider *p = t_provider(c, "c"), *k = t_provider(c, "k");
	struct event *err = t_fixture("kustomization-health-failed.json");
	struct event *info = t_fixture("kustomization-reconciled.json");
	struct slack_incident si = { .since = 1666941000, .failures = 7, .duration = 750,
		.last_message = "health check failed", .revision = "main@sha1:731f7ea" };
	static const struct {
		enum slack_kind kind;
		int error;
		const char *text, *mention;
	} cases[] = {
		{ SLACK_KIND_OPENED, 1, "opened since 2022-10-28T07:10:00Z for 12m, 7 failures", "<!here>" },
		{ SLACK_KIND_REMINDER, 1, "reminder since 2022-10-28T07:10:00Z for 12m, 7 failures",
		  "<!here>" },
		{ SLACK_KIND_RECOVERED, 0, "recovered since 2022-10-28T07:10:00Z for 12m, 7 failures",
		  NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct slack_item it = { .ev = cases[i].error ? err : info, .kind = cases[i].kind,
			.incident = &si };
		struct slack_look *l = slack_look_new(c, "inc", p, &it, NULL);
		ck_assert_ptr_nonnull(l);
		ck_assert_str_eq(l->text, cases[i].text);
		it.look = l;
		json_t *j = t_json(slack_render_string(p, NULL, &it, 1));
		json_t *top = json_object_get(j, "text");
		if (cases[i].mention != NULL)
			ck_assert_str_eq(json_string_value(top), cases[i].mention);
		else
			ck_assert_ptr_null(top);
		json_decref(j);

		/* Block Kit: the kind's colour as the marker, its title first */
		j = t_json(slack_render_string(k, NULL, &it, 1));
		json_t *b0 = json_array_get(json_object_get(j, "blocks"), 0);
		const char *head = json_string_value(json_object_get(json_object_get(b0, "text"),
		    "text"));
		ck_assert_ptr_nonnull(head);
		if (cases[i].kind == SLACK_KIND_RECOVERED)
			ck_assert_msg(strncmp(head, ":large_green_circle: *Recovered: Kustomization/",
			    47) == 0, "%s", head);
		else if (cases[i].kind == SLACK_KIND_REMINDER)
			ck_assert_msg(strncmp(head, ":red_circle: *Still failing", 27) == 0, "%s", head);
		else
			ck_assert_msg(strncmp(head, ":red_circle: *", 14) == 0, "%s", head);
		json_decref(j);
		slack_look_free(l);
	}
	/* a plain event of the same alert: no incident, empty values */
	struct slack_item plain = { .ev = err };
	struct slack_look *l = slack_look_new(c, "inc", p, &plain, NULL);
	ck_assert_str_eq(l->text, " since  for , 0 failures");
	slack_look_free(l);
	event_free(err);
	event_free(info);
	conf_free(c);
}
END_TEST

/* ---- where the parts land in attachments ---- */

START_TEST(test_attachments_placement)
{
	struct conf *c = t_conf_text(
	    "providers = ( { name = \"c\"; type = \"console\"; } );\n"
	    "alerts = ( { name = \"x\"; providers = [\"c\"]; sources = ( { kind = \"*\"; } ); } );\n");
	const struct conf_provider *p = t_provider(c, "c");
	struct event *err = t_fixture("kustomization-health-failed.json");
	struct event *info = t_fixture("kustomization-reconciled.json");
	struct slack_link links[] = { { "https://a", "A" }, { "https://b", "" } };
	struct slack_look look = { "T", "some *text*", links, 2, "<!here>", 0 };
	struct slack_item items[] = { { .ev = err, .look = &look }, { .ev = info, .look = &look },
	    { .ev = err, .look = &look } };

	json_t *j = t_json(slack_render_string(p, NULL, items, 1));
	json_t *a = json_array_get(json_object_get(j, "attachments"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(j, "text")), "<!here>");
	ck_assert_str_eq(json_string_value(json_object_get(a, "title")), "T");
	ck_assert_str_eq(json_string_value(json_object_get(a, "text")),
	    "some *text*\n<https://a|A> \xc2\xb7 <https://b>");
	/* the fallback stays the event's */
	ck_assert(strncmp(json_string_value(json_object_get(a, "fallback")),
	    "kustomization/webapp.flux-system: health check failed", 53) == 0);
	json_decref(j);

	/* info: no mention, so no top-level text at all */
	j = t_json(slack_render_string(p, NULL, &items[1], 1));
	ck_assert_ptr_null(json_object_get(j, "text"));
	json_decref(j);

	/* coalesced: the mention, then "N events" */
	j = t_json(slack_render_string(p, NULL, items, 3));
	ck_assert_str_eq(json_string_value(json_object_get(j, "text")), "<!here> 3 events");
	json_decref(j);

	/* an empty title leaves the title out; an empty text leaves the links alone */
	look.title = "";
	look.text = "";
	j = t_json(slack_render_string(p, NULL, &items[1], 1));
	a = json_array_get(json_object_get(j, "attachments"), 0);
	ck_assert_ptr_null(json_object_get(a, "title"));
	ck_assert_str_eq(json_string_value(json_object_get(a, "text")),
	    "<https://a|A> \xc2\xb7 <https://b>");
	json_decref(j);

	/* NULL parts keep the defaults */
	struct slack_look none = { 0 };
	items[1].look = &none;
	struct slack_item plain = { .ev = info };
	char *s1 = slack_render_string(p, NULL, &items[1], 1);
	char *s2 = slack_render_string(p, NULL, &plain, 1);
	ck_assert_str_eq(s1, s2);
	free(s1);
	free(s2);
	event_free(err);
	event_free(info);
	conf_free(c);
}
END_TEST

/* A templated text is cut like a message when a coalesced message needs room. */
START_TEST(test_attachments_total)
{
	struct conf_provider p;
	struct event *ev = t_fixture("kustomization-health-failed.json");
	struct util_buf t = { 0 }, u = { 0 };
	memset(&p, 0, sizeof(p));
	p.name = "p";
	p.type = CONF_PROVIDER_CONSOLE;
	p.max_text = 40000;
	for (int i = 0; i < 4000; i++)
		util_buf_puts(&t, "abc&amp;def ");   /* 8 characters as counted */
	util_buf_puts(&u, "https://x/");
	for (int i = 0; i < 2900; i++)
		util_buf_puts(&u, "a");
	struct slack_link links[] = { { "https://short", "s" }, { u.data, "long" } };
	struct slack_look look = { NULL, t.data, links, 2, NULL, 0 };
	struct slack_item items[10];
	for (int i = 0; i < 10; i++)
		items[i] = (struct slack_item){ .ev = ev, .look = &look };
	json_t *j = t_json(slack_render_string(&p, NULL, items, 10));
	size_t total = 0;
	for (size_t i = 0; i < 10; i++) {
		const char *text = json_string_value(json_object_get(
		    json_array_get(json_object_get(j, "attachments"), i), "text"));
		total += template_chars(text, strlen(text));
		ck_assert_ptr_nonnull(strstr(text, " more characters)\n<https://short|s>"));
		/* the long link does not fit a tenth of the room for links */
		ck_assert_ptr_null(strstr(text, "|long>"));
	}
	ck_assert_uint_le(total, 40000);
	ck_assert_uint_ge(total, 39000);
	json_decref(j);
	/* alone, both links fit (3,000 characters at most for the line) */
	j = t_json(slack_render_string(&p, NULL, items, 1));
	const char *text = json_string_value(json_object_get(
	    json_array_get(json_object_get(j, "attachments"), 0), "text"));
	ck_assert_ptr_nonnull(strstr(text, "|long>"));
	json_decref(j);
	util_buf_free(&t);
	util_buf_free(&u);
	event_free(ev);
}
END_TEST

#define T_N(a) ((int)(sizeof(a) / sizeof((a)[0])))

static Suite *
look_suite(void)
{
	Suite *s = suite_create("slack_look");
	TCase *tc = tcase_create("look");
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_readme_golden, 0, T_N(t_readme));
	tcase_add_test(tc, test_readme_example);
	tcase_add_test(tc, test_merge_first_in_config_order);
	tcase_add_test(tc, test_bounds);
	tcase_add_test(tc, test_link_bound);
	tcase_add_test(tc, test_escaping);
	tcase_add_test(tc, test_data);
	tcase_add_test(tc, test_incident_kinds);
	tcase_add_test(tc, test_attachments_placement);
	tcase_add_test(tc, test_attachments_total);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(look_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
