/*
 * Unit tests for template: every construct and function against a fixed
 * event, Go's whitespace trimming, escaping (actions escaped, literal text
 * not, link kept), the output limit with its marker, template_cut and
 * template_cut_counted (a text held in part), the work bound, deep nesting
 * and other compile-time bounds, every compile error with its position, the
 * revision forms, hidden metadata keys, range order and precedence, and
 * concurrent rendering of one template.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "template.h"
#include "util.h"

#define SHA "731f7eaddfb6af01cb2173e18f0f75b0ba780ef1"
#define SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* ---- the data ---- */

/*
 * E0: an error with controller, annotation and plain metadata (two of them
 * hidden). .metadata is the event's normalized metadata only: an alert's
 * metadata and summary are not part of it (test_slack_look.c, test_data).
 */
static const char t_e0_json[] =
	"{\"involvedObject\":{\"apiVersion\":\"kustomize.toolkit.fluxcd.io/v1\","
	"\"kind\":\"Kustomization\",\"name\":\"webapp-frontend\",\"namespace\":\"apps\","
	"\"uid\":\"7d0cdc51-ddcf-4743-b223-83ca5c699632\"},"
	"\"metadata\":{\"kustomize.toolkit.fluxcd.io/revision\":\"main@sha1:" SHA "\","
	"\"kustomize.toolkit.fluxcd.io/originRevision\":\"main@sha1:69b5906\","
	"\"event.toolkit.fluxcd.io/cluster\":\"prod-eu-1\",\"token\":\"s3cret\","
	"\"checksum\":\"abc123\",\"env\":\"prod\",\"summary\":\"Production <EU> & co\"},"
	"\"severity\":\"error\",\"reason\":\"HealthCheckFailed\","
	"\"message\":\"health check failed after 2m0.012s: timeout\","
	"\"reportingController\":\"kustomize-controller\","
	"\"reportingInstance\":\"kustomize-controller-7c7b47f5f-8bhrp\","
	"\"timestamp\":\"2022-10-28T07:26:19Z\"}";

/* E1: no namespace, reason, timestamp or metadata; text that needs escaping. */
static const char t_e1_json[] =
	"{\"involvedObject\":{\"kind\":\"GitRepository\",\"name\":\"a<b>&c\"},"
	"\"severity\":\"info\",\"message\":\"\\u00dcn\\u00efc\\u00f6d\\u00e9 <tag> & \\\"q\\\"\"}";

static struct template_incident t_inc = { "opened", "2022-10-28T07:20:00Z", "6m19s", 3 };

static struct event *t_ev[2];

static struct event *
t_parse(const char *json)
{
	char err[256], field[128];
	struct event *ev = event_parse(json, strlen(json), err, sizeof(err), field, sizeof(field));

	ck_assert_msg(ev != NULL, "test event: %s (%s)", err, field);
	return ev;
}

static void
t_setup(void)
{
	t_ev[0] = t_parse(t_e0_json);
	t_ev[1] = t_parse(t_e1_json);
}

static void
t_teardown(void)
{
	event_free(t_ev[0]);
	event_free(t_ev[1]);
}

static struct template_data
t_data(int e)
{
	struct template_data d;

	memset(&d, 0, sizeof(d));
	d.ev = t_ev[e];
	if (e == 0)
		d.incident = &t_inc;
	d.cluster = "eu-1";
	d.alert = "errors";
	return d;
}

/* Compile (failing the test on an error), render, free the template. */
static char *
t_render(const char *src, unsigned flags, const struct template_data *d, size_t limit)
{
	char err[512];
	struct template *t = template_compile(src, flags, err, sizeof(err));
	char *out;

	ck_assert_msg(t != NULL, "compile %s: %s", src, err);
	ck_assert_msg(err[0] == '\0', "compile %s left a message: %s", src, err);
	out = template_render_string(t, d, limit);
	template_free(t);
	return out;
}

/* ---- rendering: every construct and function ---- */

static const struct {
	int ev;                     /* t_ev index */
	const char *src, *want;
} t_cases[] = {
	/* data */
	{ 0, "{{ .involvedObject.kind }}/{{ .involvedObject.name }}.{{ .involvedObject.namespace }}",
	  "Kustomization/webapp-frontend.apps" },
	{ 0, "{{ .involvedObject.apiVersion }} {{ .involvedObject.uid }}",
	  "kustomize.toolkit.fluxcd.io/v1 7d0cdc51-ddcf-4743-b223-83ca5c699632" },
	{ 0, "{{ .severity }} {{ .reason }} {{ .timestamp }}",
	  "error HealthCheckFailed 2022-10-28T07:26:19Z" },
	{ 0, "{{ .message }}", "health check failed after 2m0.012s: timeout" },
	{ 0, "{{ .reportingController }}/{{ .reportingInstance }}",
	  "kustomize-controller/kustomize-controller-7c7b47f5f-8bhrp" },
	{ 0, "{{ .cluster }} {{ .alert }}", "eu-1 errors" },
	{ 0, "{{ .incident.state }} {{ .incident.since }} {{ .incident.duration }} {{ .incident.count }}",
	  "opened 2022-10-28T07:20:00Z 6m19s 3" },
	{ 0, "{{ .revision.ref }} {{ .revision.sha }} {{ .revision.short }} {{ .revision.digest }}",
	  "main " SHA " 731f7ea sha1:" SHA },
	{ 1, "[{{ .involvedObject.namespace }}|{{ .timestamp }}|{{ .reason }}|{{ .revision.sha }}"
	  "|{{ .involvedObject.apiVersion }}|{{ .involvedObject.uid }}|{{ .metadata.x }}]", "[||||||]" },
	{ 1, "{{ .severity }}", "info" },
	/* metadata: precedence, missing keys, hidden keys, order */
	{ 0, "{{ .metadata.env }}|{{ .metadata.nope }}|{{ index .metadata \"env\" }}|"
	  "{{ index .metadata \"nope\" }}", "prod||prod|" },
	{ 0, "{{ .metadata.cluster }}", "prod-eu-1" },
	{ 0, "{{ .metadata.revision }}", "main@sha1:" SHA },
	{ 0, "[{{ .metadata.token }}{{ .metadata.checksum }}{{ index .metadata \"token\" }}]", "[]" },
	{ 0, "{{ range $k, $v := .metadata }}{{ $k }}={{ $v }};{{ end }}",
	  "cluster=prod-eu-1;env=prod;originRevision=main@sha1:69b5906;revision=main@sha1:" SHA
	  ";summary=Production &lt;EU&gt; &amp; co;" },
	{ 0, "{{ range .metadata }}[{{ . | len }}]{{ end }}", "[9][4][17][50][20]" },
	{ 0, "{{ range $v := .metadata }}{{ $v | trunc 3 }},{{ end }}", "pro,pro,mai,mai,Pro," },
	{ 0, "{{ len .metadata }}", "5" },
	{ 0, "{{ .metadata }}",
	  "map[cluster:prod-eu-1 env:prod originRevision:main@sha1:69b5906 revision:main@sha1:" SHA
	  " summary:Production &lt;EU&gt; &amp; co]" },
	{ 1, "{{ range .metadata }}x{{ else }}none{{ end }}|{{ len .metadata }}|{{ .metadata }}",
	  "none|0|map[]" },
	{ 0, "{{ range $k, $v := .metadata }}{{ if eq $k \"env\" }}{{ continue }}{{ end }}"
	  "{{ if eq $k \"revision\" }}{{ break }}{{ end }}{{ $k }},{{ end }}", "cluster,originRevision," },
	{ 0, "{{ range .metadata }}{{ range $.metadata }}.{{ end }}|{{ end }}",
	  ".....|.....|.....|.....|.....|" },
	/* variables and scope */
	{ 0, "{{ $x := .reason }}{{ $x = printf \"%s!\" $x }}{{ $x }}", "HealthCheckFailed!" },
	{ 0, "{{ $x := 1 }}{{ range .metadata }}{{ $x = 2 }}{{ end }}{{ $x }}", "2" },
	{ 0, "{{ $x := 1 }}{{ if true }}{{ $x := 2 }}{{ $x }}{{ end }}{{ $x }}", "21" },
	{ 0, "{{ with $o := .involvedObject }}{{ $o.kind }} {{ .name }}{{ end }}",
	  "Kustomization webapp-frontend" },
	{ 0, "{{ range .metadata }}{{ $.reason }}{{ break }}{{ end }}", "HealthCheckFailed" },
	{ 0, "{{ if $n := len .metadata }}{{ $n }} keys{{ end }}", "5 keys" },
	{ 0, "{{ $o := .involvedObject }}{{ $o.name }} {{ $.involvedObject.kind }}",
	  "webapp-frontend Kustomization" },
	/* if / else if / else, with / else with */
	{ 0, "{{ if eq .severity \"info\" }}i{{ else if eq .severity \"error\" }}e{{ else }}o{{ end }}", "e" },
	{ 0, "{{ if .metadata.nope }}a{{ else if .metadata.nope2 }}b{{ else }}c{{ end }}", "c" },
	{ 0, "{{ if .metadata }}has{{ end }}{{ if .incident }}inc{{ end }}", "hasinc" },
	{ 0, "{{ with .metadata.nope }}yes{{ else }}no{{ end }}", "no" },
	{ 0, "{{ with .metadata.env }}{{ . }}{{ end }}", "prod" },
	{ 0, "{{ with .metadata.nope }}a{{ else with .metadata.env }}b{{ . }}{{ else }}c{{ end }}", "bprod" },
	{ 0, "{{ with .involvedObject }}{{ with .namespace }}ns={{ . }}{{ end }}{{ end }}", "ns=apps" },
	/* whitespace trimming, exactly as Go */
	{ 0, "a  {{- .severity -}}  b", "aerrorb" },
	{ 0, "a \n {{- .severity }} \n b", "aerror \n b" },
	{ 0, "a {{ .severity -}} \n\t b", "a errorb" },
	{ 0, "a\r\n{{- .severity }}", "aerror" },
	{ 0, "a {{-\n.severity\n-}} b", "aerrorb" },
	{ 0, "a {{ .severity\t-}} b", "a errorb" },
	{ 0, "a{{-3}}", "a-3" },
	{ 0, "a {{ 3 }} {{- 4 }} b", "a 34 b" },
	{ 0, "a {{- /* c */ -}} b", "ab" },
	{ 0, "a {{/* c */}} b", "a  b" },
	{ 0, "{{/* a\nmulti-line\ncomment */}}x", "x" },
	{ 0, "a\xc2\xa0{{- 1 }}", "a\xc2\xa0" "1" },
	{ 0, "{{ if true -}}\n  yes\n{{- end }}", "yes" },
	{ 0, "{{- 1 -}}", "1" },
	/* literals */
	{ 0, "{{ \"a\\tb\\x41\\u00e9\\U0001F600\\101\\\\\\\"\" }}", "a\tbA\xc3\xa9\xf0\x9f\x98\x80" "A\\\"" },
	{ 0, "{{ `raw\\n \"q\"` }}", "raw\\n \"q\"" },
	{ 0, "{{ 0x1F }} {{ -0o17 }} {{ 0b101 }} {{ 1_000 }} {{ 017 }} {{ 08 }} {{ +5 }} {{ -9223372036854775808 }}",
	  "31 -15 5 1000 15 8 5 -9223372036854775808" },
	{ 0, "{{ true }} {{ false }}", "true false" },
	{ 0, "{{ (.involvedObject).kind }} {{ (printf \"%s-%s\" .reason .severity | lower) }}",
	  "Kustomization healthcheckfailed-error" },
	{ 0, "{{ . | len }} {{ .involvedObject | len }}", "12 5" },
	{ 0, "{{ .revision }}", "map[digest:sha1:" SHA " ref:main sha:" SHA " short:731f7ea]" },
	{ 0, "{{ .incident }}", "map[count:3 duration:6m19s since:2022-10-28T07:20:00Z state:opened]" },
	/* Go's functions */
	{ 0, "{{ eq .severity \"info\" \"error\" }} {{ eq 1 2 }} {{ ne .reason \"x\" }} {{ eq true true }}",
	  "true false true true" },
	{ 0, "{{ lt 1 2 }} {{ le 2 2 }} {{ gt \"b\" \"a\" }} {{ ge \"a\" \"b\" }} {{ lt .incident.count 5 }}",
	  "true true true false true" },
	{ 0, "{{ and 1 0 2 }}|{{ and 1 2 }}|{{ or 0 \"\" }}|{{ or 0 \"x\" 3 }}|{{ .reason | and 1 }}|{{ or .metadata.nope \"d\" }}",
	  "0|2||x|HealthCheckFailed|d" },
	{ 0, "{{ and .metadata .involvedObject.kind }} {{ or .metadata.nope .involvedObject }}",
	  "Kustomization map[apiVersion:kustomize.toolkit.fluxcd.io/v1 kind:Kustomization "
	  "name:webapp-frontend namespace:apps uid:7d0cdc51-ddcf-4743-b223-83ca5c699632]" },
	{ 0, "{{ not .metadata.nope }} {{ not 1 }} {{ not .metadata }}", "true false false" },
	{ 0, "{{ len .reason }} {{ len \"\xc3\xa9\" }}", "17 2" },
	{ 0, "{{ index .metadata \"env\" }} {{ index \"abc\" 1 }} {{ index .involvedObject \"kind\" }} "
	  "{{ index $ \"involvedObject\" \"name\" }} {{ index .reason }} [{{ index \"abc\" 5 }}]",
	  "prod 98 Kustomization webapp-frontend HealthCheckFailed []" },
	{ 0, "{{ printf \"%s|%d|%v|%v|%%\" .reason .incident.count true .incident.count }}",
	  "HealthCheckFailed|3|true|3|%" },
	{ 0, "{{ printf \"%d\" .reason }} {{ printf \"%s\" 5 }} {{ printf \"%s %s\" \"a\" }} {{ printf \"x\" 1 \"y\" }}",
	  "%!d(string=HealthCheckFailed) %!s(int=5) a %!s(MISSING) x%!(EXTRA int=1, string=y)" },
	{ 0, "{{ $f := \"%x|%\" }}{{ printf $f 1 }}", "%!x(int=1)|%!(NOVERB)" },
	{ 0, "{{ printf \"%v\" .revision }}", "map[digest:sha1:" SHA " ref:main sha:" SHA " short:731f7ea]" },
	/* Sprig's functions: the piped value is the last argument */
	{ 0, "{{ .reason | lower }} {{ .reason | upper }} {{ \"hello wORLD-foo_bar x.y\" | title }}",
	  "healthcheckfailed HEALTHCHECKFAILED Hello WORLD-Foo_bar X.Y" },
	{ 0, "{{ \"stra\xc3\x9f" "e \xc4\xb1i \xc3\xbf \xce\xb1\xcf\x82 \xd0\xbf\xd1\x80\" | upper }}|"
	  "{{ \"\xc3\x80\xc3\x89 \xce\xa3\xce\x91 \xd0\x9f\xd0\xa0 \xc4\xb0\" | lower }}",
	  "STRA\xc3\x9f" "E II \xc5\xb8 \xce\x91\xce\xa3 \xd0\x9f\xd0\xa0|\xc3\xa0\xc3\xa9 \xcf\x83\xce\xb1 \xd0\xbf\xd1\x80 i" },
	{ 0, "[{{ \" \\t x y \\n\\u00a0\" | trim }}]", "[x y]" },
	{ 0, "{{ .reason | trimPrefix \"Health\" }} {{ .reason | trimSuffix \"Failed\" }} "
	  "{{ .reason | trimPrefix \"x\" }}", "CheckFailed HealthCheck HealthCheckFailed" },
	{ 0, "{{ .reason | replace \"Failed\" \"failed\" }} {{ \"banana\" | replace \"a\" \"o\" }} "
	  "{{ \"ab\" | replace \"\" \"-\" }} {{ \"aaa\" | replace \"aa\" \"b\" }}",
	  "HealthCheckfailed bonono -a-b- ba" },
	{ 0, "{{ .message | contains \"timeout\" }} {{ .message | hasPrefix \"health\" }} "
	  "{{ .message | hasSuffix \"x\" }} {{ contains \"\" \"\" }}", "true true false true" },
	{ 0, "{{ .metadata.nope | default \"dev\" }} {{ .metadata.env | default \"dev\" }} "
	  "{{ 0 | default 5 }} {{ default \"d\" }} {{ false | default true }}", "dev prod 5 d true" },
	{ 0, "{{ .reason | trunc 6 }}|{{ .reason | trunc -6 }}|{{ .reason | trunc 100 }}|"
	  "{{ .reason | trunc 0 }}|{{ .reason | trunc -100 }}|{{ \"\xc3\xa9\xc3\xa9\xc3\xa9\" | trunc 2 }}",
	  "Health|Failed|HealthCheckFailed||HealthCheckFailed|\xc3\xa9\xc3\xa9" },
	{ 0, "{{ .metadata | join \", \" }}",
	  "prod-eu-1, prod, main@sha1:69b5906, main@sha1:" SHA ", Production &lt;EU&gt; &amp; co" },
	{ 0, "{{ \"x\" | join \",\" }} {{ 3 | join \",\" }} {{ .revision | join \"/\" }}",
	  "x 3 sha1:" SHA "/main/" SHA "/731f7ea" },
	{ 0, "{{ .metadata.revision | trimPrefix \"main@sha1:\" | shortsha }} {{ \"abc\" | shortsha }}",
	  "731f7ea abc" },
	{ 0, "{{ link (printf \"https://github.com/acme/fleet/commit/%s\" .revision.sha) .revision.short }}",
	  "<https://github.com/acme/fleet/commit/" SHA "|731f7ea>" },
	{ 0, "{{ .revision.short | link \"https://x/c\" }}", "<https://x/c|731f7ea>" },
	/* escaping: actions escaped, literal text not, link kept */
	{ 0, "{{ .metadata.summary }}", "Production &lt;EU&gt; &amp; co" },
	{ 0, "<https://x|label> & <!here> {{ \"<b>&\" }}", "<https://x|label> & <!here> &lt;b&gt;&amp;" },
	{ 0, "{{ link \"https://x/?a=1&b=<2>|3\" .metadata.summary }}",
	  "<https://x/?a=1&amp;b=&lt;2&gt;%7C3|Production &lt;EU&gt; &amp; co>" },
	{ 0, "{{ link \"https://x\" \"\" }} {{ link \"\" \"t<\" }}", "<https://x> t&lt;" },
	{ 0, "{{ link \"https://x/a b|c\\n\" \"t | u\" }}", "<https://x/a%20b%7Cc%0A|t | u>" },
	{ 0, "{{ $l := link \"https://x\" \"y\" }}{{ $l }} {{ or \"\" $l }} {{ default $l \"\" }} "
	  "{{ with $l }}{{ . }}{{ end }}", "<https://x|y> <https://x|y> <https://x|y> <https://x|y>" },
	{ 0, "{{ link \"https://x\" \"y\" | upper }} {{ printf \"%s\" (link \"https://x\" \"y\") }}",
	  "&lt;HTTPS://X|Y&gt; &lt;https://x|y&gt;" },
	{ 1, "{{ .involvedObject.name }}", "a&lt;b&gt;&amp;c" },
	{ 1, "{{ .message }}|{{ .message | upper }}|{{ .message | trunc 3 }}",
	  "\xc3\x9cn\xc3\xaf" "c\xc3\xb6" "d\xc3\xa9 &lt;tag&gt; &amp; \"q\"|"
	  "\xc3\x9cN\xc3\x8f" "C\xc3\x96" "D\xc3\x89 &lt;TAG&gt; &amp; \"Q\"|\xc3\x9cn\xc3\xaf" },
	{ 0, "x\xfe{{ \"\\xff\\x00\" }}y", "x\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdy" },
	{ 0, "", "" },
	{ 0, "plain text only", "plain text only" },
};

START_TEST(test_template_render_table)
{
	struct template_data d = t_data(t_cases[_i].ev);
	char *got = t_render(t_cases[_i].src, TEMPLATE_INCIDENT, &d, 0);

	ck_assert_msg(strcmp(got, t_cases[_i].want) == 0, "case %d: %s\n got: %s\nwant: %s", _i,
	    t_cases[_i].src, got, t_cases[_i].want);
	free(got);
}
END_TEST

/* ---- compile errors, each with its position ---- */

static const struct {
	unsigned flags;
	const char *src, *want;
} t_errors[] = {
	{ 0, "{{ .reason | lowr }}", "column 14: unknown function \"lowr\"" },
	{ 0, "{{ \"\xc3\xa9\" | lowr }}", "column 10: unknown function \"lowr\"" },
	{ 0, "title: {{ .foo }}", "column 11: unknown field \"foo\" of the data (it has alert, cluster, "
	  "involvedObject, message, metadata, reason, reportingController, reportingInstance, "
	  "revision, severity, timestamp)" },
	{ 0, "{{ .involvedObject.knd }}", "column 19: unknown field \"knd\" of .involvedObject "
	  "(it has apiVersion, kind, name, namespace, uid)" },
	{ 0, "{{ .revision.long }}", "column 13: unknown field \"long\" of .revision "
	  "(it has digest, ref, sha, short)" },
	{ TEMPLATE_INCIDENT, "{{ .incident.cnt }}", "column 13: unknown field \"cnt\" of .incident "
	  "(it has count, duration, since, state)" },
	{ 0, "{{ .reason.x }}", "column 11: can't evaluate field \"x\" in type string" },
	{ 0, "{{ with .reason }}{{ .kind }}{{ end }}", "column 22: can't evaluate field \"kind\" in type string" },
	{ 0, "{{ range .metadata }}{{ .x }}{{ end }}", "column 25: can't evaluate field \"x\" in type string" },
	{ 0, "{{ .incident.state }}", "column 4: .incident is only available with notify = \"changes\"" },
	{ 0, "{{ $.incident }}", "column 5: .incident is only available with notify = \"changes\"" },
	{ 0, "{{ index $ \"incident\" }}", "column 12: .incident is only available with notify = \"changes\"" },
	{ 0, "{{ .reason | trunc }}", "column 14: wrong number of args for trunc: want 2 got 1" },
	{ 0, "{{ eq .reason }}", "column 4: wrong number of args for eq: want at least 2 got 1" },
	{ 0, "{{ default 1 2 3 }}", "column 4: wrong number of args for default: want 1 or 2 got 3" },
	{ 0, "{{ lower }}", "column 4: wrong number of args for lower: want 1 got 0" },
	{ 0, "{{ printf \"%s\" lower }}", "column 16: wrong number of args for lower: want 1 got 0" },
	{ 0, "{{ .reason | trunc \"3\" }}", "column 20: wrong type for argument 1 of trunc: want integer, got string" },
	{ 0, "{{ upper .metadata }}", "column 10: wrong type for argument 1 of upper: want text, got .metadata" },
	{ TEMPLATE_INCIDENT, "{{ lt .incident.count \"3\" }}",
	  "column 23: incompatible types for comparison: integer and string" },
	{ 0, "{{ lt true false }}", "column 7: wrong type for argument 1 of lt: want a string or an integer, got boolean" },
	{ 0, "{{ printf \"%x\" 1 }}", "column 11: printf: unsupported verb \"%x\" (only %s, %d, %v and %%)" },
	{ 0, "{{ printf \"%5d\" 1 }}", "column 11: printf: unsupported verb \"%5\" (only %s, %d, %v and %%)" },
	{ 0, "{{ printf \"50%\" }}", "column 11: printf: format ends with a lone %" },
	{ 0, "{{ range .reason }}{{ end }}", "column 4: range can only iterate over .metadata, not string" },
	{ 0, "x {{ if .reason }}y", "column 6: {{ if }} has no {{ end }}" },
	{ 0, "{{ with .reason }}{{ else }}", "column 4: {{ with }} has no {{ end }}" },
	{ 0, "{{ range .metadata }}", "column 4: {{ range }} has no {{ end }}" },
	{ 0, "a {{ end }}", "column 3: {{ end }} without {{ if }}, {{ with }} or {{ range }}" },
	{ 0, "{{ else }}", "column 1: {{ else }} without {{ if }}, {{ with }} or {{ range }}" },
	{ 0, "{{ if 1 }}{{ else }}{{ else }}{{ end }}", "column 21: {{ else }} after {{ else }} in {{ if }}" },
	{ 0, "{{ with 1 }}{{ else if 2 }}{{ end }}", "column 13: {{ else if }} cannot follow {{ with }}" },
	{ 0, "{{ if 1 }}{{ else with 2 }}{{ end }}", "column 11: {{ else with }} cannot follow {{ if }}" },
	{ 0, "{{ range .metadata }}{{ else if 1 }}{{ end }}", "column 22: {{ else if }} cannot follow {{ range }}" },
	{ 0, "{{ end 1 }}", "column 8: unexpected \"1\" in {{ end }}" },
	{ 0, "ab {{ .reason ", "column 4: unclosed action" },
	{ 0, "{{/* x }}", "column 1: unclosed comment" },
	{ 0, "{{/* x */ }}", "column 1: comment ends before closing delimiter" },
	{ 0, "{{ \"abc }}", "column 4: unterminated quoted string" },
	{ 0, "{{ `abc }}", "column 4: unterminated raw quoted string" },
	{ 0, "{{ \"\\q\" }}", "column 4: invalid escape sequence in string" },
	{ 0, "{{ 'a' }}", "column 4: character constants are not supported" },
	{ 0, "{{ 1.5 }}", "column 4: \"1.5\": only integer numbers are supported" },
	{ 0, "{{ 12ab }}", "column 4: bad number syntax: \"12a\"" },
	{ 0, "{{ 99999999999999999999 }}", "column 4: number \"99999999999999999999\" out of range" },
	{ 0, "{{ nil }}", "column 4: nil is not supported" },
	{ 0, "{{ $y }}", "column 4: undefined variable \"$y\"" },
	{ 0, "{{ $y = 1 }}", "column 4: undefined variable \"$y\"" },
	{ 0, "{{ if 1 }}{{ $y := 1 }}{{ else }}{{ $y }}{{ end }}", "column 37: undefined variable \"$y\"" },
	{ 0, "{{ range $k, $v := .metadata }}{{ end }}{{ $k }}", "column 44: undefined variable \"$k\"" },
	{ 0, "{{ $ := 1 }}", "column 4: cannot declare $" },
	{ 0, "{{ $ = 1 }}", "column 4: cannot assign to $" },
	{ 0, "{{ $a, $b := 1 }}", "column 6: too many declarations in command" },
	{ 0, "{{ range $k, $v = .metadata }}{{ end }}", "column 17: expected := after the range variables" },
	{ 0, "{{ range $k = .metadata }}{{ end }}", "column 13: range variables must be declared with :=" },
	{ 0, "{{ break }}", "column 4: {{ break }} outside {{ range }}" },
	{ 0, "{{ range .metadata }}{{ else }}{{ continue }}{{ end }}", "column 35: {{ continue }} outside {{ range }}" },
	{ 0, "{{ template \"x\" }}", "column 4: \"template\" is not supported: a template cannot define "
	  "or call other templates" },
	{ 0, "{{ define \"x\" }}{{ end }}", "column 4: \"define\" is not supported: a template cannot define "
	  "or call other templates" },
	{ 0, "{{ .reason | \"x\" }}", "column 14: non executable command in pipeline stage 2" },
	{ 0, "{{ .reason 1 }}", "column 4: \".reason\" is not a function: it takes no arguments" },
	{ 0, "{{ .reason | .message }}", "column 14: \".message\" is not a function: it takes no arguments" },
	{ 0, "{{ ( .reason }}", "column 14: unclosed left parenthesis" },
	{ 0, "{{ ) }}", "column 4: unexpected right parenthesis" },
	{ 0, "{{ @ }}", "column 4: unexpected \"@\" in command" },
	{ 0, "{{ }}", "column 4: missing value for command" },
	{ 0, "{{ if }}{{ end }}", "column 7: missing value for if" },
	{ 0, "{{ .reason | }}", "column 14: missing command after |" },
	{ 0, "{{ .reason\"x\" }}", "column 11: bad character '\"'" },
	{ 0, "{{ .reason-}}", "column 11: bad character '-'" },
	{ 0, "{{ \"a\".b }}", "column 7: unexpected . after term" },
	{ 0, "{{ $x:y }}", "column 6: expected :=" },
	{ 0, "{{ .a\x01 }}", "column 6: bad character \"\\x01\"" },
	{ 0, "line one\n  two {{ lower }}\n", "line 2, column 10: wrong number of args for lower: want 1 got 0" },
	{ 0, "{{ if 1 }}\n{{ .x }}{{ end }}", "line 2, column 4: unknown field \"x\" of the data (it has alert, "
	  "cluster, involvedObject, message, metadata, reason, reportingController, reportingInstance, "
	  "revision, severity, timestamp)" },
	{ 0, "{{ \"a\" |\n\tlowr }}", "line 2, column 2: unknown function \"lowr\"" },
};

START_TEST(test_template_error_table)
{
	char err[512];
	struct template *t = template_compile(t_errors[_i].src, t_errors[_i].flags, err, sizeof(err));

	ck_assert_msg(t == NULL, "case %d: %s compiled", _i, t_errors[_i].src);
	ck_assert_msg(strcmp(err, t_errors[_i].want) == 0, "case %d: %s\n got: %s\nwant: %s", _i,
	    t_errors[_i].src, err, t_errors[_i].want);
}
END_TEST

/* The error text fits any buffer, stays valid UTF-8, and NULL compiles as empty. */
START_TEST(test_template_error_buffer)
{
	char err[24];
	struct template *t = template_compile("{{ \"\xc3\xa9\xc3\xa9\xc3\xa9\" | lowr }}", 0, err, sizeof(err));
	struct template_data d = t_data(0);
	char *out;

	ck_assert_ptr_null(t);
	ck_assert_str_eq(err, "column 12: unknown func");
	t = template_compile("{{ lowr \"\xc3\xa9\xc3\xa9\xc3\xa9\" }}", 0, err, 0);
	ck_assert_ptr_null(t);
	t = template_compile(NULL, 0, err, sizeof(err));
	ck_assert_ptr_nonnull(t);
	out = template_render_string(t, &d, 0);
	ck_assert_str_eq(out, "");
	free(out);
	template_free(t);
	template_free(NULL);
}
END_TEST

/* ---- bounds ---- */

/* n nested ifs (or parentheses) around "x". */
static char *
t_nest(int n, bool parens)
{
	struct util_buf b = { 0 };

	if (parens) {
		util_buf_puts(&b, "{{ ");
		for (int i = 0; i < n; i++)
			util_buf_puts(&b, "(");
		util_buf_puts(&b, "1");
		for (int i = 0; i < n; i++)
			util_buf_puts(&b, ")");
		util_buf_puts(&b, " }}");
		return b.data;
	}
	for (int i = 0; i < n; i++)
		util_buf_puts(&b, "{{ if 1 }}");
	util_buf_puts(&b, "x");
	for (int i = 0; i < n; i++)
		util_buf_puts(&b, "{{ end }}");
	return b.data;
}

START_TEST(test_template_depth)
{
	struct template_data d = t_data(0);
	char err[256];
	char *src, *out;

	src = t_nest(TEMPLATE_MAX_DEPTH, false);
	out = t_render(src, 0, &d, 0);
	ck_assert_str_eq(out, "x");
	free(out);
	free(src);
	src = t_nest(TEMPLATE_MAX_DEPTH + 1, false);
	ck_assert_ptr_null(template_compile(src, 0, err, sizeof(err)));
	ck_assert_str_eq(err, "column 324: nesting deeper than 32 levels");   /* the 33rd if */
	free(src);

	src = t_nest(TEMPLATE_MAX_DEPTH, true);
	out = t_render(src, 0, &d, 0);
	ck_assert_str_eq(out, "1");
	free(out);
	free(src);
	src = t_nest(TEMPLATE_MAX_DEPTH + 1, true);
	ck_assert_ptr_null(template_compile(src, 0, err, sizeof(err)));
	ck_assert_str_eq(err, "column 36: nesting deeper than 32 levels");    /* the 33rd '(' */
	free(src);

	/* 30,000 parentheses: refused without a deep recursion */
	src = t_nest(30000, true);
	ck_assert_ptr_null(template_compile(src, 0, err, sizeof(err)));
	ck_assert_str_eq(err, "column 36: nesting deeper than 32 levels");
	free(src);
}
END_TEST

START_TEST(test_template_size_and_variables)
{
	struct util_buf b = { 0 };
	struct template *t;
	char err[256];

	for (int i = 0; i <= TEMPLATE_MAX_SOURCE; i++)
		util_buf_append(&b, "x", 1);
	ck_assert_ptr_null(template_compile(b.data, 0, err, sizeof(err)));
	ck_assert_str_eq(err, "template longer than 65536 bytes");
	b.data[--b.len] = '\0';
	t = template_compile(b.data, 0, err, sizeof(err));
	ck_assert_ptr_nonnull(t);
	template_free(t);
	util_buf_free(&b);

	/* $ takes one slot: 255 more fit, the 256th does not */
	for (int i = 0; i < TEMPLATE_MAX_VARS - 1; i++)
		util_buf_printf(&b, "{{ $v%d := %d }}", i, i);
	util_buf_puts(&b, "{{ $v254 }}");
	t = template_compile(b.data, 0, err, sizeof(err));
	ck_assert_msg(t != NULL, "%s", err);
	{
		struct template_data d = t_data(0);
		char *out = template_render_string(t, &d, 0);
		ck_assert_str_eq(out, "254");
		free(out);
	}
	template_free(t);
	util_buf_puts(&b, "{{ $last := 1 }}");
	ck_assert_ptr_null(template_compile(b.data, 0, err, sizeof(err)));
	ck_assert_msg(strstr(err, ": more than 256 variables") != NULL, "%s", err);
	util_buf_free(&b);

	/* arguments */
	util_buf_puts(&b, "{{ eq 1");
	for (int i = 0; i < TEMPLATE_MAX_ARGS - 1; i++)
		util_buf_puts(&b, " 1");
	util_buf_puts(&b, " }}");
	t = template_compile(b.data, 0, err, sizeof(err));
	ck_assert_msg(t != NULL, "%s", err);
	template_free(t);
	b.len -= 3;
	util_buf_puts(&b, " 1 }}");
	ck_assert_ptr_null(template_compile(b.data, 0, err, sizeof(err)));
	ck_assert_msg(strstr(err, ": more than 32 arguments") != NULL, "%s", err);
	util_buf_free(&b);
}
END_TEST

static const struct {
	const char *src;
	size_t limit;
	const char *want;
} t_limits[] = {
	{ "{{ .reason }}", 6, "Health\xe2\x80\xa6 (11 more characters)" },
	{ "{{ .reason }}", 17, "HealthCheckFailed" },
	{ "{{ .reason }}", 16, "HealthCheckFaile\xe2\x80\xa6 (1 more characters)" },
	{ "{{ .reason }}", 0, "HealthCheckFailed" },
	/* entities count as the character they show and are never cut */
	{ "{{ .metadata.summary }}", 12, "Production &lt;\xe2\x80\xa6 (8 more characters)" },
	{ "{{ .metadata.summary }}", 11, "Production \xe2\x80\xa6 (9 more characters)" },
	{ "{{ .metadata.summary }}", 20, "Production &lt;EU&gt; &amp; co" },
	/* a link (or any <…> of the literal text) is kept or cut whole */
	{ "ab {{ link \"https://x\" \"label\" }} cd", 5, "ab \xe2\x80\xa6 (20 more characters)" },
	{ "ab {{ link \"https://x\" \"label\" }} cd", 20, "ab <https://x|label>\xe2\x80\xa6 (3 more characters)" },
	{ "<!here> {{ .reason }}", 3, "\xe2\x80\xa6 (25 more characters)" },
	{ "a < b {{ .reason }}", 3, "a <\xe2\x80\xa6 (20 more characters)" },
	/* characters, not bytes */
	{ "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 2, "\xc3\xa9\xc3\xa9\xe2\x80\xa6 (3 more characters)" },
	{ "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 5, "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9" },
};

START_TEST(test_template_limit_table)
{
	struct template_data d = t_data(0);
	char *got = t_render(t_limits[_i].src, 0, &d, t_limits[_i].limit);

	ck_assert_msg(strcmp(got, t_limits[_i].want) == 0, "case %d: %s limit %zu\n got: %s\nwant: %s",
	    _i, t_limits[_i].src, t_limits[_i].limit, got, t_limits[_i].want);
	free(got);
}
END_TEST

/* Rendering appends: what was in the buffer stays and is not counted. */
START_TEST(test_template_render_appends)
{
	struct template_data d = t_data(0);
	struct template *t = template_compile("{{ .reason }}", 0, NULL, 0);
	struct util_buf b = { 0 };

	util_buf_puts(&b, "<prefix & > ");
	template_render(t, &d, 6, &b);
	ck_assert_str_eq(b.data, "<prefix & > Health\xe2\x80\xa6 (11 more characters)");
	template_free(t);
	util_buf_free(&b);
}
END_TEST

/* TEMPLATE_URL: action output percent-encodes what would end Slack's <url|; text stays. */
START_TEST(test_template_url_flag)
{
	struct template_data d = t_data(0);
	char *got = t_render("https://g/d?a b|c={{ .metadata.summary }}&r={{ .revision.short }}"
	    "&m={{ \"x|y\\tz\" }}", TEMPLATE_URL, &d, 0);

	ck_assert_str_eq(got, "https://g/d?a b|c=Production%20&lt;EU&gt;%20&amp;%20co&r=731f7ea"
	    "&m=x%7Cy%09z");
	free(got);
	got = t_render("{{ \"a b\" }}", 0, &d, 0);
	ck_assert_str_eq(got, "a b");
	free(got);
}
END_TEST

START_TEST(test_template_cut_and_chars)
{
	struct util_buf b = { 0 };

	ck_assert_uint_eq(template_fit("abc", 3, 3), 3);
	ck_assert_uint_eq(template_fit("abc", 3, 2), 2);
	ck_assert_uint_eq(template_fit("a&amp;b", 7, 2), 6);
	ck_assert_uint_eq(template_fit("a&amp;b", 7, 1), 1);
	ck_assert_uint_eq(template_fit("\xc3\xa9\xc3\xa9", 4, 1), 2);
	ck_assert_uint_eq(template_fit("x <https://y|z> w", 17, 5), 2);
	ck_assert_uint_eq(template_fit("x <https://y|z> w", 17, 15), 15);
	ck_assert_uint_eq(template_fit("", 0, 0), 0);

	ck_assert_uint_eq(template_chars("a&amp;b<c>\xc3\xa9&lt;&gt;&x", 22), 11);
	ck_assert_uint_eq(template_chars("", 0), 0);

	util_buf_puts(&b, "keep|0123456789");
	ck_assert_int_eq(template_cut(&b, 5, 10), 0);
	ck_assert_str_eq(b.data, "keep|0123456789");
	ck_assert_int_eq(template_cut(&b, 5, 0), 0);
	ck_assert_int_eq(template_cut(&b, 5, 4), 1);
	ck_assert_str_eq(b.data, "keep|0123\xe2\x80\xa6 (6 more characters)");
	util_buf_free(&b);

	/* an unclosed '<' is an ordinary character; '<' '<' ... '>' spans only the last */
	util_buf_puts(&b, "a<b<c|d>e");
	ck_assert_int_eq(template_cut(&b, 0, 3), 1);
	ck_assert_str_eq(b.data, "a<b\xe2\x80\xa6 (6 more characters)");
	util_buf_free(&b);

	/* empty buffer: nothing to do */
	ck_assert_int_eq(template_cut(&b, 0, 3), 0);
	ck_assert_ptr_null(b.data);
}
END_TEST

/*
 * The marker, and the cut of a text held in part: s holds the first
 * characters of a longer text (as a look keeps max_text of a rendered
 * text), and the marker counts every character cut from the total.
 */
START_TEST(test_template_cut_counted)
{
	struct util_buf b = { 0 };

	/* "… (12 more characters)": the ellipsis is one character */
	ck_assert_uint_eq(template_marker(&b, 12), 22);
	ck_assert_str_eq(b.data, "\xe2\x80\xa6 (12 more characters)");
	ck_assert_uint_eq(template_marker(NULL, 12), 22);
	util_buf_free(&b);

	/* 10 of 100 characters held, 4 kept: 96 cut, not 6 */
	util_buf_puts(&b, "keep|");
	ck_assert_uint_eq(template_cut_counted(&b, "0123456789", 10, 4, 100), 4 + 22);
	ck_assert_str_eq(b.data, "keep|0123\xe2\x80\xa6 (96 more characters)");
	ck_assert_uint_eq(template_cut_counted(NULL, "0123456789", 10, 4, 100), 4 + 22);
	util_buf_free(&b);

	/* counted as template_chars counts (an entity is one), never cut inside one */
	ck_assert_uint_eq(template_cut_counted(&b, "a&amp;bcdef", 11, 3, 50), 3 + 22);
	ck_assert_str_eq(b.data, "a&amp;b\xe2\x80\xa6 (47 more characters)");
	util_buf_free(&b);
	ck_assert_uint_eq(template_cut_counted(&b, "a&amp;bcdef", 11, 2, 50), 2 + 22);
	ck_assert_str_eq(b.data, "a&amp;\xe2\x80\xa6 (48 more characters)");
	util_buf_free(&b);

	/* the total fits: all of s, no marker */
	ck_assert_uint_eq(template_cut_counted(&b, "a&amp;b", 7, 3, 3), 3);
	ck_assert_str_eq(b.data, "a&amp;b");
	util_buf_free(&b);

	/* limit 0: only the marker */
	ck_assert_uint_eq(template_cut_counted(&b, "abc", 3, 0, 50), 22);
	ck_assert_str_eq(b.data, "\xe2\x80\xa6 (50 more characters)");
	util_buf_free(&b);

	/* holding all of it, the same as template_cut */
	util_buf_puts(&b, "keep|0123456789");
	ck_assert_int_eq(template_cut(&b, 5, 4), 1);
	struct util_buf c = { 0 };
	util_buf_puts(&c, "keep|");
	template_cut_counted(&c, "0123456789", 10, 4, 10);
	ck_assert_str_eq(b.data, c.data);
	util_buf_free(&b);
	util_buf_free(&c);
}
END_TEST

/*
 * A template whose output would be far above TEMPLATE_MAX_WORK (5^8 passes
 * over the message) stops, ends in "…" and stays bounded; so does one
 * whose strings double at every step.
 */
START_TEST(test_template_work_bound)
{
	struct template_data d = t_data(0);
	struct util_buf src = { 0 };
	char *out;
	size_t n;

	for (int i = 0; i < 8; i++)
		util_buf_puts(&src, "{{ range $.metadata }}");
	util_buf_puts(&src, "{{ $.message }}");
	for (int i = 0; i < 8; i++)
		util_buf_puts(&src, "{{ end }}");
	out = t_render(src.data, 0, &d, 0);
	n = strlen(out);
	ck_assert_uint_le(n, TEMPLATE_MAX_WORK);
	ck_assert_uint_gt(n, TEMPLATE_MAX_WORK / 2);
	ck_assert_str_eq(out + n - 3, "\xe2\x80\xa6");
	free(out);

	/* with a limit: cut there, "…" without a count (the rest is unknown) */
	out = t_render(src.data, 0, &d, 10);
	ck_assert_str_eq(out, "health che\xe2\x80\xa6");
	free(out);
	util_buf_free(&src);

	util_buf_puts(&src, "{{ $x := .message }}");
	for (int i = 0; i < 6; i++)
		util_buf_puts(&src, "{{ range $.metadata }}");
	util_buf_puts(&src, "{{ $x = printf \"%s%s\" $x $x }}{{ $x = replace \"\" $x \"ab\" }}");
	for (int i = 0; i < 6; i++)
		util_buf_puts(&src, "{{ end }}");
	util_buf_puts(&src, "{{ $x | len }}");
	out = t_render(src.data, 0, &d, 0);
	ck_assert_str_eq(out, "\xe2\x80\xa6");
	free(out);
	util_buf_free(&src);
}
END_TEST

/* ---- revision parsing ---- */

static const struct {
	const char *revision;       /* NULL: no such key */
	const char *want;           /* ref|sha|short|digest */
} t_revisions[] = {
	{ "main@sha1:" SHA, "main|" SHA "|731f7ea|sha1:" SHA },
	{ "main/" SHA, "main|" SHA "|731f7ea|" },
	{ "sha1:" SHA, "|" SHA "|731f7ea|sha1:" SHA },
	{ "v1.2.3@sha256:" SHA256, "v1.2.3|" SHA256 "|e3b0c44|sha256:" SHA256 },
	{ "sha256:" SHA256, "|" SHA256 "|e3b0c44|sha256:" SHA256 },
	{ "refs/heads/feature/x/" SHA, "refs/heads/feature/x|" SHA "|731f7ea|" },
	{ "user@host@sha1:abc1234", "user@host|abc1234|abc1234|sha1:abc1234" },
	{ "@sha1:abc", "|abc|abc|sha1:abc" },
	{ "sha1:ABCDEF0123", "|ABCDEF0123|ABCDEF0|sha1:ABCDEF0123" },
	/* garbage: every part empty */
	{ "6.5.4", "|||" },
	{ "main", "|||" },
	{ "main@notanalg", "|||" },
	{ "main@sha1:", "|||" },
	{ "main@SHA1:abc", "|||" },
	{ "main@sha1:xyz", "|||" },
	{ "main/abc", "|||" },
	{ "main/" SHA "x", "|||" },
	{ "1sha:abc", "|||" },
	{ ":abc", "|||" },
	{ "", "|||" },
	{ NULL, "|||" },
};

START_TEST(test_template_revision_table)
{
	struct event_kv kv = { "revision", (char *)t_revisions[_i].revision, EVENT_META_PLAIN };
	struct event ev;
	struct template_data d;
	char *got;

	memset(&ev, 0, sizeof(ev));
	ev.kind = "Kustomization";
	ev.name = "x";
	ev.message = "";
	ev.reason = "";
	ev.reporting_controller = ev.reporting_instance = "";
	if (t_revisions[_i].revision != NULL) {
		ev.meta = &kv;
		ev.nmeta = 1;
	}
	memset(&d, 0, sizeof(d));
	d.ev = &ev;
	got = t_render("{{ .revision.ref }}|{{ .revision.sha }}|{{ .revision.short }}|"
	    "{{ .revision.digest }}", 0, &d, 0);
	ck_assert_msg(strcmp(got, t_revisions[_i].want) == 0, "%s:\n got: %s\nwant: %s",
	    t_revisions[_i].revision ? t_revisions[_i].revision : "(none)", got, t_revisions[_i].want);
	free(got);
}
END_TEST

/* ---- data corner cases ---- */

/*
 * Hidden keys of the event stay hidden everywhere; an alert that names one
 * shows it (as the default fields do). Invalid UTF-8 and NUL-free data.
 */
START_TEST(test_template_hidden_and_raw_data)
{
	struct event_kv kv[] = {
		{ "checksum", "c", EVENT_META_PLAIN },
		{ "digest", "d", EVENT_META_CONTROLLER },
		{ "env", "e\xff", EVENT_META_PLAIN },
		{ "token", "t", EVENT_META_ANNOTATION },
	};
	struct event ev;
	struct template_data d;
	char *got;

	memset(&ev, 0, sizeof(ev));
	ev.kind = "K";
	ev.name = "n";
	ev.message = "a\xff" "b";
	ev.reason = "";
	ev.reporting_controller = ev.reporting_instance = "";
	ev.meta = kv;
	ev.nmeta = 4;
	memset(&d, 0, sizeof(d));
	d.ev = &ev;
	got = t_render("{{ .metadata }}|{{ .metadata.checksum }}{{ .metadata.digest }}|{{ len .metadata }}|"
	    "{{ .message }}|{{ .message | upper }}|{{ .metadata.token }}", 0, &d, 0);
	ck_assert_str_eq(got, "map[env:e\xef\xbf\xbd]||1|a\xef\xbf\xbd" "b|A\xef\xbf\xbd" "B|");
	free(got);
	got = t_render("{{ range $k, $v := .metadata }}{{ $k }}={{ $v }} {{ end }}", 0, &d, 0);
	ck_assert_str_eq(got, "env=e\xef\xbf\xbd ");
	free(got);
	/* incidents allowed but none given: empty strings and 0 */
	got = t_render("[{{ .incident.state }}|{{ .incident.count }}]", TEMPLATE_INCIDENT, &d, 0);
	ck_assert_str_eq(got, "[|0]");
	free(got);
	/* a key with a NUL never matches */
	got = t_render("[{{ index .metadata \"env\\x00\" }}]", 0, &d, 0);
	ck_assert_str_eq(got, "[]");
	free(got);
}
END_TEST

/*
 * .timestamp is the timestamp as received (SPEC §13): an offset and a
 * fraction stay; a hand-built event shows its time in UTC.
 */
START_TEST(test_template_timestamp_as_received)
{
	static const char *const cases[] = {
		"2024-05-14T09:12:03.123+02:00", "2022-10-28T07:26:19Z", "2022-10-28t07:26:19z",
	};
	struct template_data d;
	char *got;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *json = util_printf("{\"involvedObject\":{\"kind\":\"K\",\"name\":\"n\"},"
		    "\"severity\":\"info\",\"message\":\"m\",\"timestamp\":\"%s\"}", cases[i]);
		struct event *ev = t_parse(json);
		memset(&d, 0, sizeof(d));
		d.ev = ev;
		got = t_render("{{ .timestamp }}", 0, &d, 0);
		ck_assert_str_eq(got, cases[i]);
		free(got);
		event_free(ev);
		free(json);
	}

	struct event ev;
	memset(&ev, 0, sizeof(ev));
	ev.kind = "K";
	ev.name = "n";
	ev.has_timestamp = true;
	ev.timestamp = 1715670723;
	memset(&d, 0, sizeof(d));
	d.ev = &ev;
	got = t_render("{{ .timestamp }}", 0, &d, 0);
	ck_assert_str_eq(got, "2024-05-14T07:12:03Z");
	free(got);
}
END_TEST

/*
 * .severity is the event's severity as received: "warn" (an alias matching
 * takes as warning) stays "warn", also when the body escapes it; the other
 * names are themselves. A hand-built event shows its level's name.
 */
START_TEST(test_template_severity_as_received)
{
	static const struct {
		const char *json, *want;
	} cases[] = {
		{ "warn", "warn" }, { "w\\u0061rn", "warn" }, { "warning", "warning" },
		{ "trace", "trace" }, { "info", "info" }, { "error", "error" },
	};
	struct template_data d;
	char *got;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *json = util_printf("{\"involvedObject\":{\"kind\":\"K\",\"name\":\"n\"},"
		    "\"severity\":\"%s\",\"message\":\"m\"}", cases[i].json);
		struct event *ev = t_parse(json);
		memset(&d, 0, sizeof(d));
		d.ev = ev;
		got = t_render("{{ .severity }}|{{ eq .severity \"warn\" }}", 0, &d, 0);
		char *want = util_printf("%s|%s", cases[i].want,
		    strcmp(cases[i].want, "warn") == 0 ? "true" : "false");
		ck_assert_msg(strcmp(got, want) == 0, "%s: %s", cases[i].json, got);
		free(want);
		free(got);
		event_free(ev);
		free(json);
	}

	struct event ev;
	memset(&ev, 0, sizeof(ev));
	ev.kind = "K";
	ev.name = "n";
	ev.severity = EVENT_WARNING;
	memset(&d, 0, sizeof(d));
	d.ev = &ev;
	got = t_render("{{ .severity }}", 0, &d, 0);
	ck_assert_str_eq(got, "warning");
	free(got);
}
END_TEST

/* ---- threads ---- */

struct t_thread {
	const struct template *t;
	const struct template_data *d;
	const char *want;
	int bad;
};

static void *
t_thread_main(void *arg)
{
	struct t_thread *th = arg;

	for (int i = 0; i < 2000; i++) {
		char *got = template_render_string(th->t, th->d, 40);
		if (strcmp(got, th->want) != 0)
			th->bad++;
		free(got);
	}
	return NULL;
}

/* One compiled template rendered from four threads at once gives one answer. */
START_TEST(test_template_threads)
{
	struct template_data d = t_data(0);
	struct template *t = template_compile(
	    "{{ range $k, $v := .metadata }}{{ $k | upper }}={{ $v | trunc 4 }} {{ end }}"
	    "{{ .revision.short }}", 0, NULL, 0);
	struct t_thread th[4];
	pthread_t tid[4];
	char *want;

	ck_assert_ptr_nonnull(t);
	want = template_render_string(t, &d, 40);
	ck_assert_str_eq(want, "CLUSTER=prod ENV=prod ORIGINREVISION=mai\xe2\x80\xa6 (36 more characters)");
	for (int i = 0; i < 4; i++) {
		th[i].t = t;
		th[i].d = &d;
		th[i].want = want;
		th[i].bad = 0;
		ck_assert_int_eq(pthread_create(&tid[i], NULL, t_thread_main, &th[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(tid[i], NULL);
		ck_assert_int_eq(th[i].bad, 0);
	}
	free(want);
	template_free(t);
}
END_TEST

static Suite *
template_suite(void)
{
	Suite *s = suite_create("template");
	TCase *tc = tcase_create("core");

	tcase_add_unchecked_fixture(tc, t_setup, t_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(tc, test_template_render_table, 0, sizeof(t_cases) / sizeof(t_cases[0]));
	tcase_add_loop_test(tc, test_template_error_table, 0, sizeof(t_errors) / sizeof(t_errors[0]));
	tcase_add_test(tc, test_template_error_buffer);
	tcase_add_test(tc, test_template_depth);
	tcase_add_test(tc, test_template_size_and_variables);
	tcase_add_loop_test(tc, test_template_limit_table, 0, sizeof(t_limits) / sizeof(t_limits[0]));
	tcase_add_test(tc, test_template_render_appends);
	tcase_add_test(tc, test_template_url_flag);
	tcase_add_test(tc, test_template_cut_and_chars);
	tcase_add_test(tc, test_template_cut_counted);
	tcase_add_test(tc, test_template_work_bound);
	tcase_add_loop_test(tc, test_template_revision_table, 0,
	    sizeof(t_revisions) / sizeof(t_revisions[0]));
	tcase_add_test(tc, test_template_hidden_and_raw_data);
	tcase_add_test(tc, test_template_severity_as_received);
	tcase_add_test(tc, test_template_timestamp_as_received);
	tcase_add_test(tc, test_template_threads);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(template_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
