/*
 * Unit tests for import_map's helpers (Go durations, seconds, libconfig
 * strings, names, globs, the RE2 -> PCRE2 rewrite) and for import_yaml's
 * reader (aliases, merge keys, duplicate keys, limits, scalars), plus a few
 * whole conversions through import_map_convert.
 */
#include <check.h>
#include <fnmatch.h>
#include <libconfig.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "import_map.h"
#include "import_yaml.h"
#include "util.h"

/* ---- Go durations ---- */

static const struct {
	const char *in;
	long long ns;
} duration_ok[] = {
	{ "15s", 15000000000LL },
	{ "1m30s", 90000000000LL },
	{ "500ms", 500000000LL },
	{ "1.5s", 1500000000LL },
	{ "1.5h", 5400000000000LL },
	{ "2h45m", 9900000000000LL },
	{ ".5s", 500000000LL },
	{ "1.s", 1000000000LL },
	{ "0", 0 },
	{ "0s", 0 },
	{ "+3s", 3000000000LL },
	{ "-1.5m", -90000000000LL },
	{ "100us", 100000LL },
	{ "100\xc2\xb5s", 100000LL },    /* µ, MICRO SIGN */
	{ "100\xce\xbcs", 100000LL },    /* μ, GREEK SMALL LETTER MU */
	{ "7ns", 7 },
	{ "1h1m1s1ms1us1ns", 3661001001001LL },
	{ "0.000000001s", 1 },
	{ "2562047h", 9223369200000000000LL },
};

START_TEST(test_duration_ok)
{
	long long ns = -42;
	ck_assert_msg(import_map_duration(duration_ok[_i].in, &ns) == 0, "%s", duration_ok[_i].in);
	ck_assert_msg(ns == duration_ok[_i].ns, "%s: %lld", duration_ok[_i].in, ns);
}
END_TEST

static const char *const duration_bad[] = {
	"", "s", "15", "15 s", "1m 30s", "15S", "1d", ".s", "-", "+", "1.5.5s", "abc",
	"9223372036854775808ns", "2562048h", "10000000000000000000s", "1e3s", " 15s", "15s ",
};

START_TEST(test_duration_bad)
{
	long long ns = -42;
	ck_assert_msg(import_map_duration(duration_bad[_i], &ns) == -1, "%s accepted: %lld",
	    duration_bad[_i], ns);
}
END_TEST

START_TEST(test_seconds)
{
	static const struct { long long ns; const char *want; } cases[] = {
		{ 15000000000LL, "15" }, { 90000000000LL, "90" }, { 500000000LL, "0.5" },
		{ 1500000000LL, "1.5" }, { 1000000LL, "0.001" }, { 1, "0.000000001" },
		{ 0, "0" }, { 3600000000000LL, "3600" }, { 1234567890123LL, "1234.567890123" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *s = import_map_seconds(cases[i].ns);
		ck_assert_str_eq(s, cases[i].want);
		free(s);
	}
}
END_TEST

/* ---- libconfig strings: what is written reads back as the same bytes ---- */

static const char *const conf_strings[] = {
	"plain", "", "quote \" and backslash \\", "line\nbreak\ttab\rcr\ffeed",
	"\x01\x02\x1f\x7f control", "déploiements 🚀", "C:\\Windows\\", "\\\"", "${NOT_EXPANDED}",
	"# not a comment", "ends with backslash \\",
};

START_TEST(test_conf_string_round_trip)
{
	struct util_buf b = {0};
	util_buf_puts(&b, "v = ");
	import_map_conf_string(&b, conf_strings[_i]);
	util_buf_puts(&b, ";\n");
	config_t cfg;
	config_init(&cfg);
	ck_assert_msg(config_read_string(&cfg, b.data) == CONFIG_TRUE, "%s: %s", b.data,
	    config_error_text(&cfg));
	const char *got = NULL;
	ck_assert(config_lookup_string(&cfg, "v", &got) == CONFIG_TRUE);
	ck_assert_str_eq(got, conf_strings[_i]);
	config_destroy(&cfg);
	util_buf_free(&b);
}
END_TEST

/* ---- names ---- */

START_TEST(test_names)
{
	ck_assert(import_map_name_ok("flux-system.slack_2"));
	ck_assert(!import_map_name_ok(""));
	ck_assert(!import_map_name_ok("a b"));
	ck_assert(!import_map_name_ok("a/b"));
	char *c = import_map_name_clean("odd name/with:chars");
	ck_assert_str_eq(c, "odd-name-with-chars");
	ck_assert(import_map_name_ok(c));
	free(c);
	c = import_map_name_clean("");
	ck_assert_str_eq(c, "unnamed");
	free(c);
	c = import_map_name_clean("é");   /* each byte of a non-ASCII character */
	ck_assert_str_eq(c, "--");
	free(c);

	ck_assert(import_map_setting_name_ok("cluster"));
	ck_assert(import_map_setting_name_ok("a-b_c9"));
	ck_assert(import_map_setting_name_ok("*x"));
	ck_assert(!import_map_setting_name_ok("9lives"));
	ck_assert(!import_map_setting_name_ok("app.kubernetes.io/name"));
	ck_assert(!import_map_setting_name_ok(""));
	ck_assert(!import_map_setting_name_ok("-x"));

	char *e = import_map_env_name("team-a.slack", "hmac_key");
	ck_assert_str_eq(e, "FLUXRELAY_TEAM_A_SLACK_HMAC_KEY");
	free(e);
	e = import_map_env_name("Slack9", "url");
	ck_assert_str_eq(e, "FLUXRELAY_SLACK9_URL");
	free(e);
}
END_TEST

START_TEST(test_glob_exact)
{
	static const char *const names[] = { "apps", "*", "a*b", "[x]", "q?", "back\\slash", "" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char *g = import_map_glob_exact(names[i]);
		ck_assert_msg(fnmatch(g, names[i], 0) == 0, "%s does not match itself (%s)",
		    names[i], g);
		free(g);
	}
	char *g = import_map_glob_exact("*");
	ck_assert_str_eq(g, "\\*");
	ck_assert(fnmatch(g, "flux-system", 0) != 0);
	free(g);
	g = import_map_glob_exact("a*b");
	ck_assert(fnmatch(g, "axxb", 0) != 0);
	free(g);
}
END_TEST

/* ---- Go regexes as PCRE2 ones ---- */

static const struct {
	const char *go, *pcre;
	bool changed;
} regex_cases[] = {
	{ "timed out$", "timed out\\z", true },
	{ "^a$|^b$", "^a\\z|^b\\z", true },
	{ "(?m)^a$", "(?m)^a$", false },
	{ "(?m:^a$)b$", "(?m:^a$)b\\z", true },
	{ "(?i)(x$)", "(?i)(x\\z)", true },
	{ "(?m)(x$)(?-m)y$", "(?m)(x$)(?-m)y\\z", true },
	{ "[$]\\$", "[$]\\$", false },
	{ "[]$]$", "[]$]\\z", true },
	{ "[^]$][[:alpha:]$]", "[^]$][[:alpha:]$]", false },
	{ "\\Q$\\E$", "\\Q$\\E\\z", true },
	{ "(?P<n>a$)", "(?P<n>a\\z)", true },
	{ "(?<n>a)$", "(?<n>a)\\z", true },
	{ "no anchors", "no anchors", false },
	{ "trailing\\", "trailing\\", false },
};

START_TEST(test_regex_rewrite)
{
	bool changed = !regex_cases[_i].changed;
	char *got = import_map_regex(regex_cases[_i].go, &changed);
	ck_assert_str_eq(got, regex_cases[_i].pcre);
	ck_assert_int_eq(changed, regex_cases[_i].changed);
	free(got);
}
END_TEST

static int
pcre_match(const char *re, const char *subject)
{
	int code;
	PCRE2_SIZE off;
	pcre2_code *c = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &code,
	    &off, NULL);
	ck_assert_ptr_nonnull(c);
	pcre2_match_data *md = pcre2_match_data_create_from_pattern(c, NULL);
	int rc = pcre2_match(c, (PCRE2_SPTR)subject, strlen(subject), 0, 0, md, NULL);
	pcre2_match_data_free(md);
	pcre2_code_free(c);
	return rc >= 0;
}

/* Go: regexp.MustCompile("failed$").MatchString("failed\n") is false. */
START_TEST(test_regex_dollar_semantics)
{
	bool changed;
	char *re = import_map_regex("failed$", &changed);
	ck_assert(pcre_match("failed$", "failed\n"));   /* why the rewrite exists */
	ck_assert(!pcre_match(re, "failed\n"));
	ck_assert(pcre_match(re, "upgrade failed"));
	free(re);
	re = import_map_regex("(?m)^failed$", &changed);
	ck_assert(pcre_match(re, "x\nfailed\ny"));
	free(re);
}
END_TEST

/* ---- YAML reader ---- */

static int
parse(const char *text, struct import_yaml_stream *s, unsigned *line, char *err, size_t n)
{
	memset(s, 0, sizeof(*s));
	return import_yaml_parse(text, strlen(text), s, line, err, n);
}

START_TEST(test_yaml_documents_and_scalars)
{
	struct import_yaml_stream s;
	unsigned line;
	char err[256];
	ck_assert_int_eq(parse("a: 1\n---\n---\nb: [x, ~, \"~\", '', null]\nc:\n", &s, &line, err,
	    sizeof(err)), 0);
	ck_assert_uint_eq(s.ndocs, 3);
	/* an empty document: no root, or a null one (libyaml reads an empty scalar) */
	ck_assert(s.docs[1].root == NULL || import_yaml_is_null(s.docs[1].root));
	ck_assert_uint_eq(s.docs[2].index, 3);
	const struct import_yaml_node *b = import_yaml_get(s.docs[2].root, "b");
	ck_assert_uint_eq(b->line, 4);
	ck_assert_uint_eq(b->n, 5);
	ck_assert_str_eq(import_yaml_str(b->items[0]), "x");
	ck_assert(import_yaml_is_null(b->items[1]));
	ck_assert_str_eq(import_yaml_str(b->items[2]), "~");   /* quoted: a string */
	ck_assert_str_eq(import_yaml_str(b->items[3]), "");
	ck_assert(import_yaml_is_null(b->items[4]));
	ck_assert(import_yaml_is_null(import_yaml_get(s.docs[2].root, "c")));
	ck_assert_ptr_null(import_yaml_get(s.docs[2].root, "d"));
	import_yaml_free(&s);
}
END_TEST

START_TEST(test_yaml_bool)
{
	struct import_yaml_stream s;
	unsigned line;
	char err[256];
	bool v;
	ck_assert_int_eq(parse("[true, yes, On, Y, false, NO, off, \"true\", maybe, ~]", &s, &line,
	    err, sizeof(err)), 0);
	const struct import_yaml_node *l = s.docs[0].root;
	for (int i = 0; i < 4; i++) {
		ck_assert_int_eq(import_yaml_bool(l->items[i], &v), 1);
		ck_assert(v);
	}
	for (int i = 4; i < 7; i++) {
		ck_assert_int_eq(import_yaml_bool(l->items[i], &v), 1);
		ck_assert(!v);
	}
	ck_assert_int_eq(import_yaml_bool(l->items[7], &v), -1);
	ck_assert_int_eq(import_yaml_bool(l->items[8], &v), -1);
	ck_assert_int_eq(import_yaml_bool(l->items[9], &v), 0);
	import_yaml_free(&s);
}
END_TEST

START_TEST(test_yaml_aliases_and_merge)
{
	struct import_yaml_stream s;
	unsigned line;
	char err[256];
	const char *text =
	    "base: &b {x: 1, y: 2}\n"
	    "other: &o {z: 3, x: 9}\n"
	    "m:\n"
	    "  <<: [*b, *o]\n"
	    "  y: own\n"
	    "again: *b\n";
	ck_assert_int_eq(parse(text, &s, &line, err, sizeof(err)), 0);
	const struct import_yaml_node *r = s.docs[0].root;
	const struct import_yaml_node *m = import_yaml_get(r, "m");
	ck_assert_str_eq(import_yaml_str(import_yaml_get(m, "y")), "own");   /* own key wins */
	ck_assert_str_eq(import_yaml_str(import_yaml_get(m, "x")), "1");     /* earlier map wins */
	ck_assert_str_eq(import_yaml_str(import_yaml_get(m, "z")), "3");
	ck_assert_ptr_null(import_yaml_get(m, "<<"));
	ck_assert_ptr_eq(import_yaml_get(r, "again"), import_yaml_get(r, "base"));
	import_yaml_free(&s);
}
END_TEST

static const struct {
	const char *text;
	unsigned line;
	const char *err;
} yaml_bad[] = {
	{ "a: 1\nb: 2\na: 3\n", 3, "duplicate key \"a\" (first at line 1)" },
	{ "a: *nope\n", 1, "unknown alias *nope" },
	{ "a: &x [1, *x]\n", 1, "unknown alias *x" },             /* no cycles */
	{ "a: [\n", 2, "did not find expected node content" },
	{ "a: \"open\n", 2, "found unexpected end of stream" },
	{ "m:\n  <<: 5\n", 2, "merge key \"<<\" needs a mapping or a list of mappings" },
	{ "a: 1\n\xff\n", 2, "invalid leading UTF-8 octet" },
};

START_TEST(test_yaml_errors)
{
	struct import_yaml_stream s;
	unsigned line = 99;
	char err[256];
	ck_assert_int_eq(parse(yaml_bad[_i].text, &s, &line, err, sizeof(err)), -1);
	ck_assert_msg(strncmp(err, yaml_bad[_i].err, strlen(yaml_bad[_i].err)) == 0, "%s", err);
	ck_assert_uint_eq(line, yaml_bad[_i].line);
	import_yaml_free(&s);
}
END_TEST

/* "Billion laughs": nine levels of ten aliases would be 10^9 nodes. */
START_TEST(test_yaml_alias_bomb)
{
	struct util_buf b = {0};
	util_buf_puts(&b, "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
	for (int i = 1; i < 10; i++) {
		util_buf_printf(&b, "a%d: &a%d [", i, i);
		for (int j = 0; j < 10; j++)
			util_buf_printf(&b, "%s*a%d", j ? ", " : "", i - 1);
		util_buf_puts(&b, "]\n");
	}
	struct import_yaml_stream s;
	unsigned line;
	char err[256];
	ck_assert_int_eq(parse(b.data, &s, &line, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "aliases expand to more than") != NULL, "%s", err);
	import_yaml_free(&s);
	util_buf_free(&b);
}
END_TEST

START_TEST(test_yaml_depth)
{
	struct util_buf b = {0};
	for (int i = 0; i < IMPORT_YAML_MAX_DEPTH + 1; i++)
		util_buf_puts(&b, "[");
	struct import_yaml_stream s;
	unsigned line;
	char err[256];
	ck_assert_int_eq(parse(b.data, &s, &line, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "nested more than") != NULL, "%s", err);
	import_yaml_free(&s);
	util_buf_free(&b);
}
END_TEST

/* ---- whole conversions ---- */

static int
convert(const char *yaml, const char *dir, struct import_map_result *r)
{
	struct import_map_input in = { "test.yaml", yaml, strlen(yaml) };
	return import_map_convert(&in, 1, dir, r);
}

static const char provider_and_alert[] =
    "apiVersion: notification.toolkit.fluxcd.io/v1beta3\n"
    "kind: Provider\n"
    "metadata: {name: hook, namespace: ns}\n"
    "spec: {type: generic-hmac, address: 'https://r.example/', secretRef: {name: s}}\n"
    "---\n"
    "apiVersion: v1\n"
    "kind: Secret\n"
    "metadata: {name: s, namespace: ns}\n"
    "data: {token: AAEC/w==}\n"                 /* 00 01 02 ff: binary, kept as is */
    "---\n"
    "apiVersion: notification.toolkit.fluxcd.io/v1beta3\n"
    "kind: Alert\n"
    "metadata: {name: a, namespace: ns}\n"
    "spec: {providerRef: {name: hook}, eventSources: [{kind: Bucket, name: b}]}\n";

START_TEST(test_convert_binary_hmac_key)
{
	struct import_map_result r;
	ck_assert_int_eq(convert(provider_and_alert, "/secrets", &r), 0);
	ck_assert_uint_eq(r.nsecrets, 1);
	ck_assert_str_eq(r.secrets[0].file, "hook.hmac_key");
	ck_assert_uint_eq(r.secrets[0].len, 4);
	ck_assert(memcmp(r.secrets[0].data, "\x00\x01\x02\xff", 4) == 0);
	ck_assert_ptr_nonnull(strstr(r.config, "hmac_key_file = \"/secrets/hook.hmac_key\";"));
	ck_assert_ptr_nonnull(strstr(r.config, "commit_status_updates = true;"));
	ck_assert_ptr_nonnull(strstr(r.config,
	    "{ kind = \"Bucket\"; name = \"b\"; namespace = \"ns\"; }"));
	ck_assert_uint_eq(r.nalerts, 1);
	import_map_result_free(&r);
	/* Without a directory: a variable, and a warning that a NUL byte cannot be passed in one. */
	ck_assert_int_eq(convert(provider_and_alert, NULL, &r), 0);
	ck_assert_uint_eq(r.nsecrets, 0);
	ck_assert_ptr_nonnull(strstr(r.config, "hmac_key_env = \"FLUXRELAY_HOOK_HMAC_KEY\";"));
	ck_assert_ptr_nonnull(strstr(r.config, "#   FLUXRELAY_HOOK_HMAC_KEY: Secret ns/s, key "
	    "\"token\""));
	ck_assert_ptr_nonnull(strstr(r.messages, "holds a NUL byte"));
	import_map_result_free(&r);
}
END_TEST

START_TEST(test_convert_statuses)
{
	struct import_map_result r;
	ck_assert_int_eq(convert("a: [\n", NULL, &r), IMPORT_MAP_EXIT_DATAERR);
	ck_assert_ptr_null(r.config);
	ck_assert_str_eq(r.messages, "test.yaml:2: did not find expected node content "
	    "(while parsing a flow node at line 2)\n");
	import_map_result_free(&r);
	ck_assert_int_eq(convert("", NULL, &r), IMPORT_MAP_EXIT_NOTHING);
	ck_assert_ptr_null(r.config);
	ck_assert_str_eq(r.messages, "");
	import_map_result_free(&r);
	/* The Provider alone: nothing to alert on. */
	const char *only = strstr(provider_and_alert, "---\napiVersion: notification");
	char *text = util_strndup(provider_and_alert, (size_t)(only - provider_and_alert));
	ck_assert_int_eq(convert(text, "/secrets", &r), IMPORT_MAP_EXIT_NOTHING);
	ck_assert_uint_eq(r.nsecrets, 0);   /* nothing is written when nothing is imported */
	import_map_result_free(&r);
	free(text);
}
END_TEST

/* A provider left out after its secret was queued leaves no file and no variable. */
START_TEST(test_convert_rollback)
{
	const char *yaml =
	    "apiVersion: notification.toolkit.fluxcd.io/v1beta3\n"
	    "kind: Provider\n"
	    "metadata: {name: h, namespace: ns}\n"
	    "spec: {type: generic-hmac, secretRef: {name: s}}\n"
	    "---\n"
	    "apiVersion: v1\n"
	    "kind: Secret\n"
	    "metadata: {name: s, namespace: ns}\n"
	    "stringData: {address: 'https://r.example/', token: k, headers: 'not: [a map'}\n"
	    "---\n"
	    "apiVersion: notification.toolkit.fluxcd.io/v1beta3\n"
	    "kind: Provider\n"
	    "metadata: {name: ok, namespace: ns}\n"
	    "spec: {type: slack, address: 'https://hooks.example/x'}\n"
	    "---\n"
	    "apiVersion: notification.toolkit.fluxcd.io/v1beta3\n"
	    "kind: Alert\n"
	    "metadata: {name: a, namespace: ns}\n"
	    "spec: {providerRef: {name: ok}, eventSources: [{kind: Bucket, name: '*'}]}\n";
	struct import_map_result r;
	for (int dir = 0; dir < 2; dir++) {
		ck_assert_int_eq(convert(yaml, dir ? "/d" : NULL, &r), 0);
		ck_assert_uint_eq(r.nsecrets, 0);
		ck_assert_ptr_null(strstr(r.config, "FLUXRELAY_H_"));
		ck_assert_ptr_nonnull(strstr(r.messages, "Flux cannot read them either"));
		ck_assert_uint_eq(r.nproviders, 1);
		import_map_result_free(&r);
	}
}
END_TEST

/* The text of the provider or alert named name in config (new string), from its
 * name to the end of its group. */
static char *
entry_of(const char *config, const char *name)
{
	char *needle = util_printf("    name = \"%s\";\n", name);
	const char *b = strstr(config, needle);
	ck_assert_msg(b != NULL, "no entry %s in:\n%s", name, config);
	const char *e = strstr(b, "\n  }");
	ck_assert_ptr_nonnull(e);
	free(needle);
	return util_strndup(b, (size_t)(e - b));
}

/* A bot's api_url: the Web API address without /chat.postMessage, Slack's own
 * included; left out only when Flux had no address. */
START_TEST(test_convert_bot_api_url)
{
	const char *yaml =
	    "apiVersion: v1\n"
	    "kind: Secret\n"
	    "metadata: {name: s, namespace: ns}\n"
	    "stringData: {token: xoxb-1}\n"
	    "---\n"
	    "apiVersion: notification.toolkit.fluxcd.io/v1beta3\n"
	    "kind: Provider\n"
	    "metadata: {name: std, namespace: ns}\n"
	    "spec: {type: slack, channel: C1, secretRef: {name: s},\n"
	    "  address: 'https://slack.com/api/chat.postMessage'}\n"
	    "---\n"
	    "apiVersion: notification.toolkit.fluxcd.io/v1beta3\n"
	    "kind: Provider\n"
	    "metadata: {name: none, namespace: ns}\n"
	    "spec: {type: slack, channel: C1, secretRef: {name: s}}\n"
	    "---\n"
	    "apiVersion: notification.toolkit.fluxcd.io/v1beta3\n"
	    "kind: Provider\n"
	    "metadata: {name: own, namespace: ns}\n"
	    "spec: {type: slack, channel: C1, secretRef: {name: s},\n"
	    "  address: 'https://chat.example/api/chat.postMessage'}\n"
	    "---\n"
	    "apiVersion: notification.toolkit.fluxcd.io/v1beta3\n"
	    "kind: Alert\n"
	    "metadata: {name: a, namespace: ns}\n"
	    "spec: {providerRef: {name: std}, eventSources: [{kind: Bucket, name: '*'}]}\n";
	struct import_map_result r;
	ck_assert_int_eq(convert(yaml, NULL, &r), 0);
	ck_assert_uint_eq(r.nproviders, 3);
	char *e = entry_of(r.config, "std");
	ck_assert_msg(strstr(e, "type = \"slack-bot\";") != NULL, "%s", e);
	ck_assert_msg(strstr(e, "api_url = \"https://slack.com/api\";") != NULL, "%s", e);
	free(e);
	e = entry_of(r.config, "none");
	ck_assert_msg(strstr(e, "type = \"slack-bot\";") != NULL, "%s", e);
	ck_assert_msg(strstr(e, "api_url") == NULL, "%s", e);
	free(e);
	e = entry_of(r.config, "own");
	ck_assert_msg(strstr(e, "api_url = \"https://chat.example/api\";") != NULL, "%s", e);
	free(e);
	import_map_result_free(&r);
}
END_TEST

/* A suspended Provider is imported suspended; its Alerts are not (an Alert's
 * own suspend is kept). */
START_TEST(test_convert_provider_suspend)
{
	const char *yaml =
	    "apiVersion: notification.toolkit.fluxcd.io/v1beta3\n"
	    "kind: Provider\n"
	    "metadata: {name: paused, namespace: ns}\n"
	    "spec: {type: slack, suspend: true, address: 'https://hooks.example/p'}\n"
	    "---\n"
	    "apiVersion: notification.toolkit.fluxcd.io/v1beta3\n"
	    "kind: Provider\n"
	    "metadata: {name: live, namespace: ns}\n"
	    "spec: {type: generic, suspend: false, address: 'https://r.example/'}\n"
	    "---\n"
	    "apiVersion: notification.toolkit.fluxcd.io/v1beta3\n"
	    "kind: Alert\n"
	    "metadata: {name: via-paused, namespace: ns}\n"
	    "spec: {providerRef: {name: paused}, eventSources: [{kind: Bucket, name: '*'}]}\n"
	    "---\n"
	    "apiVersion: notification.toolkit.fluxcd.io/v1beta3\n"
	    "kind: Alert\n"
	    "metadata: {name: off, namespace: ns}\n"
	    "spec: {suspend: true, providerRef: {name: live},\n"
	    "  eventSources: [{kind: Bucket, name: '*'}]}\n";
	struct import_map_result r;
	ck_assert_int_eq(convert(yaml, NULL, &r), 0);
	char *e = entry_of(r.config, "paused");
	ck_assert_msg(strstr(e, "\n    suspend = true;") != NULL, "%s", e);
	free(e);
	e = entry_of(r.config, "live");
	ck_assert_msg(strstr(e, "suspend") == NULL, "%s", e);
	free(e);
	e = entry_of(r.config, "via-paused");
	ck_assert_msg(strstr(e, "suspend") == NULL, "%s", e);
	free(e);
	e = entry_of(r.config, "off");
	ck_assert_msg(strstr(e, "\n    suspend = true;") != NULL, "%s", e);
	free(e);
	import_map_result_free(&r);
}
END_TEST

static Suite *
import_suite(void)
{
	Suite *s = suite_create("import");
	TCase *tc = tcase_create("core");
	tcase_add_loop_test(tc, test_duration_ok, 0, sizeof(duration_ok) / sizeof(duration_ok[0]));
	tcase_add_loop_test(tc, test_duration_bad, 0,
	    sizeof(duration_bad) / sizeof(duration_bad[0]));
	tcase_add_test(tc, test_seconds);
	tcase_add_loop_test(tc, test_conf_string_round_trip, 0,
	    sizeof(conf_strings) / sizeof(conf_strings[0]));
	tcase_add_test(tc, test_names);
	tcase_add_test(tc, test_glob_exact);
	tcase_add_loop_test(tc, test_regex_rewrite, 0, sizeof(regex_cases) / sizeof(regex_cases[0]));
	tcase_add_test(tc, test_regex_dollar_semantics);
	tcase_add_test(tc, test_yaml_documents_and_scalars);
	tcase_add_test(tc, test_yaml_bool);
	tcase_add_test(tc, test_yaml_aliases_and_merge);
	tcase_add_loop_test(tc, test_yaml_errors, 0, sizeof(yaml_bad) / sizeof(yaml_bad[0]));
	tcase_add_test(tc, test_yaml_alias_bomb);
	tcase_add_test(tc, test_yaml_depth);
	tcase_add_test(tc, test_convert_binary_hmac_key);
	tcase_add_test(tc, test_convert_statuses);
	tcase_add_test(tc, test_convert_rollback);
	tcase_add_test(tc, test_convert_bot_api_url);
	tcase_add_test(tc, test_convert_provider_suspend);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(import_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
