/*
 * Unit tests for conf: valid files (every key, defaults, numbers, secrets,
 * ${VAR}, relative paths, severity masks) and every broken file in
 * tests/configs/broken-*.conf against its golden error lines in
 * tests/golden/conf-broken-*.txt (@FILE@ = the config path, @DIR@ = its
 * directory).
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "event.h"
#include "log.h"
#include "template.h"
#include "util.h"
#include "test_tmp.h"

#define CONFIGS FR_SRCDIR "/tests/configs"
#define GOLDEN FR_SRCDIR "/tests/golden"

#define SEV(s) (1u << (s))
#define SEV_ALL (SEV(EVENT_TRACE) | SEV(EVENT_INFO) | SEV(EVENT_WARNING) | SEV(EVENT_ERROR))

/* The environment every test starts with (also used by test_config.py). */
static void
test_env(void)
{
	setenv("FR_TEST_SECRETS", CONFIGS "/secrets", 1);
	setenv("FR_TEST_TLS_DIR", CONFIGS "/tls", 1);
	setenv("FR_TEST_TOKEN", "xoxb-env-token", 1);
	setenv("FR_TEST_URL", "https://hooks.example.com/env", 1);
	setenv("FR_TEST_EMPTY", "", 1);
	unsetenv("FR_TEST_UNSET");
	unsetenv("STATE_DIRECTORY");
}

static void
tmp_setup(void)
{
	test_env();
	test_tmp_make("test_conf");
}

/* Load text as test_tmpdir/fluxrelay.conf; on failure *errors (caller frees). */
static struct conf *
load_text(const char *text, char **errors)
{
	char *path = tmp_write("fluxrelay.conf", text);
	struct conf *c = conf_load(path, errors);
	free(path);
	return c;
}

/* Load text that must be valid. */
static struct conf *
load_ok(const char *text)
{
	char *err = NULL;
	struct conf *c = load_text(text, &err);
	ck_assert_msg(c != NULL, "unexpected errors:\n%s\nfor:\n%s", err ? err : "(none)", text);
	ck_assert_ptr_null(err);
	return c;
}

/* Load text that must fail; returns the errors with the path replaced by @FILE@. */
static char *
load_bad(const char *text)
{
	char *err = NULL, *path = util_printf("%s/fluxrelay.conf", test_tmpdir);
	struct conf *c = load_text(text, &err);
	ck_assert_msg(c == NULL, "accepted:\n%s", text);
	ck_assert_ptr_nonnull(err);
	struct util_buf b = {0};
	util_buf_puts(&b, "");
	for (const char *p = err; *p;) {
		if (strncmp(p, path, strlen(path)) == 0) {
			util_buf_puts(&b, "@FILE@");
			p += strlen(path);
		} else {
			util_buf_append(&b, p, 1);
			p++;
		}
	}
	free(err);
	free(path);
	return b.data;
}

/* ------------------------------------------------------------------------ */

START_TEST(test_default)
{
	struct conf *c = conf_default();
	ck_assert(c->builtin);
	ck_assert_ptr_null(c->path);
	ck_assert_str_eq(c->state_dir, geteuid() != 0 ? "./fluxrelay-state" : "/var/lib/fluxrelay");
	ck_assert_str_eq(c->listen.address, "127.0.0.1");
	ck_assert_int_eq(c->listen.port, 9292);
	ck_assert_int_eq(c->listen.max_body, 3145728);
	ck_assert_int_eq(c->listen.max_connections, 1024);
	ck_assert(c->listen.timeout == 10.0);
	ck_assert_ptr_null(c->listen.tls_cert_file);
	ck_assert_ptr_null(c->listen.metrics_address);
	ck_assert_int_eq(c->listen.metrics_port, -1);
	ck_assert_ptr_null(c->auth.hmac_key);
	ck_assert_ptr_null(c->auth.token);
	ck_assert(c->queue.sync_full);
	ck_assert_int_eq(c->queue.max_pending, 100000);
	ck_assert_int_eq(c->queue.max_attempts, 20);
	ck_assert(c->queue.max_age == 86400.0);
	ck_assert(c->queue.backoff_initial == 1.0);
	ck_assert(c->queue.backoff_max == 300.0);
	ck_assert(c->dedup.window == 300.0);
	ck_assert(c->dedup.normalize_durations);
	ck_assert_int_eq(c->log.level, LOG_LEVEL_INFO);
	ck_assert_int_eq(c->log.format, LOG_FORMAT_LOGFMT);

	ck_assert_uint_eq(c->nproviders, 1);
	ck_assert_str_eq(c->providers[0].name, "console");
	ck_assert_int_eq(c->providers[0].type, CONF_PROVIDER_CONSOLE);
	ck_assert(c->providers[0].rate == 1.0);
	ck_assert_int_eq(c->providers[0].burst, 3);
	ck_assert_int_eq(c->providers[0].batch_max, 10);
	ck_assert_int_eq(c->providers[0].max_text, 3000);
	ck_assert(!c->providers[0].suspend);

	ck_assert_uint_eq(c->nalerts, 1);
	const struct conf_alert *a = &c->alerts[0];
	ck_assert_str_eq(a->name, "all");
	ck_assert_uint_eq(a->nproviders, 1);
	ck_assert_str_eq(a->providers[0], "console");
	ck_assert_uint_eq(a->provider_idx[0], 0);
	ck_assert_uint_eq(a->severity_mask, SEV(EVENT_INFO) | SEV(EVENT_WARNING) | SEV(EVENT_ERROR));
	ck_assert_uint_eq(a->nsources, 1);
	ck_assert_str_eq(a->sources[0].kind, "*");
	ck_assert_str_eq(a->sources[0].name, "*");
	ck_assert_str_eq(a->sources[0].namespace, "*");
	ck_assert(!a->suspend && !a->commit_status_updates);
	ck_assert_uint_eq(a->nreasons + a->ninclude + a->nexclude + a->nmetadata, 0);
	conf_free(c);

	/* systemd's StateDirectory= wins; several directories: the first. */
	setenv("STATE_DIRECTORY", "/var/lib/fluxrelay-a:/var/lib/other", 1);
	c = conf_default();
	ck_assert_str_eq(c->state_dir, "/var/lib/fluxrelay-a");
	conf_free(c);
	conf_free(NULL);
}
END_TEST

START_TEST(test_minimal_defaults)
{
	char *err = NULL;
	struct conf *c = conf_load(CONFIGS "/valid-minimal.conf", &err);
	ck_assert_msg(c != NULL, "%s", err);
	ck_assert(!c->builtin);
	ck_assert_str_eq(c->path, CONFIGS "/valid-minimal.conf");
	/* Not the builtin "./fluxrelay-state": a file was read. */
	ck_assert_str_eq(c->state_dir, "/var/lib/fluxrelay");
	ck_assert_str_eq(c->listen.address, "127.0.0.1");
	ck_assert_int_eq(c->listen.port, 9292);
	ck_assert_int_eq(c->listen.max_body, 3145728);
	ck_assert_int_eq(c->listen.max_connections, 1024);
	ck_assert(c->listen.timeout == 10.0);
	ck_assert(c->queue.sync_full);
	ck_assert_int_eq(c->queue.max_pending, 100000);
	ck_assert_int_eq(c->queue.max_attempts, 20);
	ck_assert(c->queue.max_age == 86400.0);
	ck_assert(c->queue.backoff_initial == 1.0 && c->queue.backoff_max == 300.0);
	ck_assert(c->dedup.window == 300.0 && c->dedup.normalize_durations);
	ck_assert_int_eq(c->log.level, LOG_LEVEL_INFO);
	ck_assert_int_eq(c->log.format, LOG_FORMAT_LOGFMT);
	ck_assert_uint_eq(c->nproviders, 0);
	ck_assert_uint_eq(c->nalerts, 0);
	conf_free(c);

	setenv("STATE_DIRECTORY", "/run/state-from-systemd", 1);
	c = conf_load(CONFIGS "/valid-minimal.conf", &err);
	ck_assert_ptr_nonnull(c);
	ck_assert_str_eq(c->state_dir, "/run/state-from-systemd");
	conf_free(c);
}
END_TEST

START_TEST(test_full)
{
	char *err = NULL;
	struct conf *c = conf_load(CONFIGS "/valid-full.conf", &err);
	ck_assert_msg(c != NULL, "%s", err);
	ck_assert_str_eq(c->state_dir, CONFIGS "/state");
	ck_assert_str_eq(c->listen.address, "::");
	ck_assert_int_eq(c->listen.port, 8443);
	ck_assert_int_eq(c->listen.max_body, 65536);
	ck_assert_int_eq(c->listen.max_connections, 64);
	ck_assert(c->listen.timeout == 2.5);
	ck_assert_str_eq(c->listen.tls_cert_file, CONFIGS "/tls/cert.pem");
	ck_assert_str_eq(c->listen.tls_key_file, CONFIGS "/tls/key.pem");
	ck_assert_str_eq(c->listen.tls_client_ca_file, CONFIGS "/tls/ca.pem");
	/* "hmac-secret-value\r\n" in the file: line ending stripped. */
	ck_assert_uint_eq(c->auth.hmac_key_len, strlen("hmac-secret-value"));
	ck_assert_mem_eq(c->auth.hmac_key, "hmac-secret-value", c->auth.hmac_key_len);
	ck_assert_str_eq(c->auth.token, "xoxb-env-token");
	ck_assert(!c->queue.sync_full);
	ck_assert_int_eq(c->queue.max_pending, 5000);
	ck_assert_int_eq(c->queue.max_attempts, 7);
	ck_assert(c->queue.max_age == 3600.0);
	ck_assert(c->queue.backoff_initial == 0.5);
	ck_assert(c->queue.backoff_max == 60.0);
	ck_assert(c->dedup.window == 0.0);
	ck_assert(!c->dedup.normalize_durations);
	ck_assert_int_eq(c->log.level, LOG_LEVEL_DEBUG);
	ck_assert_int_eq(c->log.format, LOG_FORMAT_JSON);

	ck_assert_uint_eq(c->nproviders, 5);
	const struct conf_provider *p = &c->providers[0];
	ck_assert_str_eq(p->name, "slack");
	ck_assert_int_eq(p->type, CONF_PROVIDER_SLACK);
	ck_assert_str_eq(p->url, "https://hooks.slack.com/services/T000/B000/XXXXSECRETXXXX");
	ck_assert_ptr_null(p->token);
	ck_assert_ptr_null(p->api_url);
	ck_assert_str_eq(p->channel, "#flux");
	ck_assert_str_eq(p->username, "Flux");
	ck_assert_str_eq(p->icon_emoji, ":rocket:");
	ck_assert_ptr_null(p->icon_url);
	ck_assert(p->rate == 1.0);
	ck_assert_int_eq(p->burst, 5);
	ck_assert_int_eq(p->batch_max, 20);
	ck_assert(p->timeout == 7.5);
	ck_assert_str_eq(p->proxy, "http://proxy:3128");
	ck_assert_str_eq(p->ca_file, CONFIGS "/tls/ca.pem");
	ck_assert_int_eq(p->max_text, 2000);
	ck_assert(!p->suspend);

	p = &c->providers[1];
	ck_assert_str_eq(p->name, "bot");
	ck_assert_int_eq(p->type, CONF_PROVIDER_SLACK_BOT);
	ck_assert_str_eq(p->token, "xoxb-inline-token");
	ck_assert_ptr_null(p->url);
	ck_assert_str_eq(p->api_url, "http://127.0.0.1:9999/api");   /* trailing '/'s removed */
	ck_assert_str_eq(p->channel, "C0123");
	ck_assert_str_eq(p->icon_url, "https://example.com/icon.png");
	ck_assert_ptr_null(p->icon_emoji);
	ck_assert_ptr_null(p->username);
	ck_assert_ptr_null(p->proxy);
	ck_assert_ptr_null(p->ca_file);
	ck_assert(p->rate == 0.5);
	ck_assert_int_eq(p->burst, 3);
	ck_assert_int_eq(p->batch_max, 10);
	ck_assert(p->timeout == 10.0);
	ck_assert_int_eq(p->max_text, 3000);
	ck_assert_int_eq(p->format, CONF_FORMAT_BLOCKS);
	ck_assert(p->suspend);
	ck_assert_int_eq(c->providers[0].format, CONF_FORMAT_ATTACHMENTS);

	p = &c->providers[2];
	ck_assert_str_eq(p->name, "bot-file");
	ck_assert_str_eq(p->token, "xoxb-file-token");
	ck_assert_str_eq(p->api_url, "https://slack.com/api");
	p = &c->providers[3];
	ck_assert_str_eq(p->name, "hook.env");
	ck_assert_str_eq(p->url, "https://hooks.example.com/env");
	ck_assert(p->rate == 0.0);
	p = &c->providers[4];
	ck_assert_str_eq(p->name, "out_1");
	ck_assert_int_eq(p->type, CONF_PROVIDER_CONSOLE);
	ck_assert_ptr_null(p->url);
	ck_assert_ptr_null(p->token);
	ck_assert_ptr_null(p->api_url);
	ck_assert_ptr_null(p->channel);

	ck_assert_uint_eq(c->nalerts, 3);
	const struct conf_alert *a = &c->alerts[0];
	ck_assert_str_eq(a->name, "errors");
	ck_assert_uint_eq(a->nproviders, 2);
	ck_assert_str_eq(a->providers[0], "slack");
	ck_assert_str_eq(a->providers[1], "bot");
	ck_assert_uint_eq(a->provider_idx[0], 0);
	ck_assert_uint_eq(a->provider_idx[1], 1);
	ck_assert_uint_eq(a->severity_mask, SEV(EVENT_WARNING) | SEV(EVENT_ERROR));
	ck_assert_uint_eq(a->nsources, 2);
	ck_assert_str_eq(a->sources[0].kind, "Kustomization");
	ck_assert_str_eq(a->sources[0].name, "web*");
	ck_assert_str_eq(a->sources[0].namespace, "apps");
	ck_assert_str_eq(a->sources[1].kind, "HelmRelease");
	ck_assert_str_eq(a->sources[1].name, "*");
	ck_assert_str_eq(a->sources[1].namespace, "*");
	ck_assert_uint_eq(a->nreasons, 2);
	ck_assert_str_eq(a->reasons[0], "*Failed");
	ck_assert_str_eq(a->reasons[1], "Progressing");
	ck_assert_uint_eq(a->ninclude, 2);
	ck_assert_str_eq(a->include[1], "(?i)error");
	ck_assert_uint_eq(a->nexclude, 1);
	ck_assert_str_eq(a->exclude[0], "^Dependencies do not meet");
	ck_assert_uint_eq(a->nmetadata, 2);
	ck_assert_str_eq(a->metadata[0].key, "cluster");
	ck_assert_str_eq(a->metadata[0].value, "prod-eu-1");
	ck_assert_str_eq(a->metadata[1].key, "region");
	ck_assert_str_eq(a->metadata[1].value, "eu");
	ck_assert_str_eq(a->summary, "production");
	ck_assert_str_eq(a->channel, "#devops-alerts");
	ck_assert(a->commit_status_updates);
	ck_assert(a->suspend);

	a = &c->alerts[1];
	ck_assert_str_eq(a->name, "exact");
	ck_assert_uint_eq(a->nproviders, 3);
	ck_assert_uint_eq(a->provider_idx[0], 4);
	ck_assert_uint_eq(a->provider_idx[1], 3);
	ck_assert_uint_eq(a->provider_idx[2], 2);
	ck_assert_uint_eq(a->severity_mask, SEV(EVENT_ERROR) | SEV(EVENT_TRACE));
	ck_assert_uint_eq(a->nexclude, 0);
	ck_assert(a->title != NULL && a->text != NULL && a->nlinks == 1);
	ck_assert_str_eq(a->mention, "<!here>");

	a = &c->alerts[2];
	ck_assert_str_eq(a->name, "defaults");
	ck_assert_uint_eq(a->severity_mask, SEV(EVENT_ERROR));   /* default "error" */
	ck_assert_ptr_null(a->summary);
	ck_assert_ptr_null(a->channel);
	ck_assert(!a->suspend && !a->commit_status_updates);
	ck_assert_uint_eq(a->nreasons + a->ninclude + a->nexclude + a->nmetadata, 0);
	ck_assert(a->title == NULL && a->text == NULL && a->nlinks == 0 && a->mention == NULL);

	ck_assert_int_eq(conf_provider_find(c, "slack"), 0);
	ck_assert_int_eq(conf_provider_find(c, "out_1"), 4);
	ck_assert_int_eq(conf_provider_find(c, "nope"), -1);
	conf_free(c);
}
END_TEST

/* Durations and rate: integers and decimals alike. */
static const struct {
	const char *text;
	double rate, ptimeout, ltimeout, window, max_age, binit;
} number_cases[] = {
	{ "rate = 1; timeout = 2;", 1.0, 2.0, 10.0, 300.0, 86400.0, 1.0 },
	{ "rate = 1.0; timeout = 2.5;", 1.0, 2.5, 10.0, 300.0, 86400.0, 1.0 },
	{ "rate = 0.25; timeout = 1e1;", 0.25, 10.0, 10.0, 300.0, 86400.0, 1.0 },
	{ "rate = 0;", 0.0, 10.0, 10.0, 300.0, 86400.0, 1.0 },
	{ "rate = 3L;", 3.0, 10.0, 10.0, 300.0, 86400.0, 1.0 },
};

START_TEST(test_numbers)
{
	char *text = util_printf(
	    "listen: { timeout = %s; };\n"
	    "dedup: { window = %s; };\n"
	    "queue: { max_age = %s; backoff_initial = %s; max_pending = 7L; };\n"
	    "providers = ( { name = \"c\"; type = \"console\"; %s } );\n",
	    _i % 2 ? "3" : "0.5", _i % 2 ? "60" : "1.5", _i % 2 ? "10" : "10.25",
	    _i % 2 ? "2" : "0.125", number_cases[_i].text);
	struct conf *c = load_ok(text);
	ck_assert(c->providers[0].rate == number_cases[_i].rate);
	ck_assert(c->providers[0].timeout == number_cases[_i].ptimeout);
	ck_assert(c->listen.timeout == (_i % 2 ? 3.0 : 0.5));
	ck_assert(c->dedup.window == (_i % 2 ? 60.0 : 1.5));
	ck_assert(c->queue.max_age == (_i % 2 ? 10.0 : 10.25));
	ck_assert(c->queue.backoff_initial == (_i % 2 ? 2.0 : 0.125));
	ck_assert_int_eq(c->queue.max_pending, 7);
	conf_free(c);
	free(text);
}
END_TEST

START_TEST(test_integer_not_float)
{
	char *err = load_bad("listen: { port = 9292.0; };\nproviders = ( { name = \"c\"; type = \"console\"; burst = 2.0; } );\n");
	ck_assert_str_eq(err,
	    "@FILE@:1: listen.port: must be an integer\n"
	    "@FILE@:2: provider \"c\": burst: must be an integer\n");
	free(err);
}
END_TEST

START_TEST(test_port_zero)
{
	struct conf *c = load_ok("listen: { port = 0; address = \"0.0.0.0\"; };\n");
	ck_assert_int_eq(c->listen.port, 0);
	ck_assert_str_eq(c->listen.address, "0.0.0.0");
	conf_free(c);
}
END_TEST

START_TEST(test_secret_forms)
{
	char *f1 = tmp_write("hmac", "line1\nline2\n\n\n");
	char *f2 = tmp_write("tok", "no-newline");
	char *f3 = tmp_write("url", "https://hooks.slack.com/services/A/B/C\r\n");
	free(f1);
	free(f2);
	free(f3);
	setenv("FR_T_URL", "https://hooks.slack.com/services/ENV", 1);

	/* From files (relative to the config file), inline, and the environment. */
	struct conf *c = load_ok(
	    "auth: { hmac_key_file = \"hmac\"; token_file = \"tok\"; };\n"
	    "providers = (\n"
	    "  { name = \"f\"; type = \"slack\"; url_file = \"url\"; },\n"
	    "  { name = \"e\"; type = \"slack\"; url_env = \"FR_T_URL\"; },\n"
	    "  { name = \"i\"; type = \"slack\"; url = \"http://127.0.0.1:1/x\"; },\n"
	    "  { name = \"b\"; type = \"slack-bot\"; token_env = \"FR_TEST_TOKEN\"; channel = \"#c\"; }\n"
	    ");\n");
	ck_assert_uint_eq(c->auth.hmac_key_len, 11);
	ck_assert_mem_eq(c->auth.hmac_key, "line1\nline2", 11);   /* inner newline kept */
	ck_assert_str_eq(c->auth.token, "no-newline");
	ck_assert_str_eq(c->providers[0].url, "https://hooks.slack.com/services/A/B/C");
	ck_assert_str_eq(c->providers[1].url, "https://hooks.slack.com/services/ENV");
	ck_assert_str_eq(c->providers[2].url, "http://127.0.0.1:1/x");
	ck_assert_str_eq(c->providers[3].token, "xoxb-env-token");
	conf_free(c);

	c = load_ok("auth: { hmac_key = \"k1\"; token_env = \"FR_TEST_TOKEN\"; };\n");
	ck_assert_uint_eq(c->auth.hmac_key_len, 2);
	ck_assert_mem_eq(c->auth.hmac_key, "k1", 2);
	ck_assert_str_eq(c->auth.token, "xoxb-env-token");
	conf_free(c);

	c = load_ok("auth: { hmac_key_env = \"FR_T_URL\"; };\n");
	ck_assert_uint_eq(c->auth.hmac_key_len, strlen("https://hooks.slack.com/services/ENV"));
	ck_assert_ptr_null(c->auth.token);
	conf_free(c);
}
END_TEST

START_TEST(test_secret_errors)
{
	char *f = tmp_write("blank", "\r\n\n");
	free(f);
	char *err = load_bad(
	    "auth: {\n"
	    "  token_file = \"blank\";\n"
	    "  hmac_key = \"super-secret-1\";\n"
	    "  hmac_key_file = \"blank\";\n"
	    "};\n"
	    "providers = ( { name = \"s\"; type = \"slack\"; url = \"gopher://super-secret-2\"; } );\n");
	char *want = util_printf(
	    "@FILE@:2: auth.token_file: %s/blank is empty\n"
	    "@FILE@:4: auth.hmac_key_file: give only one of hmac_key, hmac_key_file or hmac_key_env\n"
	    "@FILE@:6: provider \"s\": url: must start with http:// or https://\n", test_tmpdir);
	ck_assert_str_eq(err, want);
	ck_assert_ptr_null(strstr(err, "super-secret"));
	free(want);
	free(err);
}
END_TEST

START_TEST(test_expand)
{
	char *sub = util_printf("%s/creds", test_tmpdir);
	ck_assert_int_eq(mkdir(sub, 0700), 0);
	char *f = tmp_write("creds/hmac-key", "from-credentials\n");
	free(f);
	setenv("CREDENTIALS_DIRECTORY", sub, 1);
	setenv("FR_T_A", "cre", 1);
	setenv("FR_T_B", "ds", 1);

	struct conf *c = load_ok(
	    "auth: { hmac_key_file = \"${CREDENTIALS_DIRECTORY}/hmac-key\";\n"
	    "        token_file = \"${FR_T_A}${FR_T_B}/hmac-key\"; };\n");
	ck_assert_mem_eq(c->auth.hmac_key, "from-credentials", 16);
	ck_assert_str_eq(c->auth.token, "from-credentials");
	conf_free(c);

	/* A '$' without '{' is literal; an undefined variable is an error. */
	f = tmp_write("a$b", "dollar\n");
	free(f);
	c = load_ok("auth: { token_file = \"a$b\"; };\n");
	ck_assert_str_eq(c->auth.token, "dollar");
	conf_free(c);

	char *err = load_bad("auth: { token_file = \"${FR_TEST_UNSET}/x\"; };\n"
	    "listen: { tls_cert_file = \"${FR_TEST_EMPTY}/c\"; tls_key_file = \"${}\"; };\n");
	ck_assert_str_eq(err,
	    "@FILE@:1: auth.token_file: environment variable FR_TEST_UNSET is not set\n"
	    "@FILE@:2: listen.tls_cert_file: environment variable FR_TEST_EMPTY is empty\n"
	    "@FILE@:2: listen.tls_key_file: invalid reference ${}\n");
	free(err);
	free(sub);
}
END_TEST

START_TEST(test_relative_paths)
{
	char *sub = util_printf("%s/etc", test_tmpdir);
	ck_assert_int_eq(mkdir(sub, 0700), 0);
	char *f = tmp_write("etc/token", "rel-token\n");
	free(f);
	/* A certificate and its key in one file: both settings may name it. */
	char err0[256];
	char *cert = util_read_file(CONFIGS "/tls/cert.pem", NULL, err0, sizeof(err0));
	char *key = util_read_file(CONFIGS "/tls/key.pem", NULL, err0, sizeof(err0));
	ck_assert_ptr_nonnull(cert);
	ck_assert_ptr_nonnull(key);
	char *both = util_printf("%s%s", cert, key);
	f = tmp_write("etc/ca.pem", both);
	free(f);
	free(both);
	free(cert);
	free(key);
	char *text = util_printf(
	    "state_dir = \"state\";\n"
	    "auth: { token_file = \"./token\"; };\n"
	    "providers = ( { name = \"c\"; type = \"console\"; ca_file = \"ca.pem\"; } );\n"
	    "listen: { tls_cert_file = \"%s/ca.pem\"; tls_key_file = \"../etc/ca.pem\"; };\n",
	    sub);
	f = tmp_write("etc/fluxrelay.conf", text);
	free(f);
	free(text);

	/* Loaded through a relative path from another working directory. */
	char *cwd = getcwd(NULL, 0);
	ck_assert_int_eq(chdir(test_tmpdir), 0);
	char *err = NULL;
	struct conf *c = conf_load("etc/fluxrelay.conf", &err);
	ck_assert_msg(c != NULL, "%s", err);
	char *want = util_printf("%s/state", sub);
	ck_assert_str_eq(c->state_dir, want);
	free(want);
	ck_assert_str_eq(c->auth.token, "rel-token");
	want = util_printf("%s/ca.pem", sub);
	ck_assert_str_eq(c->providers[0].ca_file, want);
	free(want);
	want = util_printf("%s/ca.pem", sub);   /* absolute: unchanged */
	ck_assert_str_eq(c->listen.tls_cert_file, want);
	free(want);
	want = util_printf("%s/../etc/ca.pem", sub);
	ck_assert_str_eq(c->listen.tls_key_file, want);
	free(want);
	ck_assert_str_eq(c->path, "etc/fluxrelay.conf");
	conf_free(c);

	/* Errors name the file as given. */
	f = tmp_write("etc/bad.conf", "\nlisten: { port = -1; };\n");
	free(f);
	ck_assert_ptr_null(conf_load("etc/bad.conf", &err));
	ck_assert_str_eq(err, "etc/bad.conf:2: listen.port: must be between 0 and 65535\n");
	free(err);

	ck_assert_int_eq(chdir(cwd), 0);
	free(cwd);
	free(sub);
}
END_TEST

/* @include files are read from the config file's directory; their problems name them. */
START_TEST(test_include)
{
	char *sub = util_printf("%s/conf.d", test_tmpdir);
	ck_assert_int_eq(mkdir(sub, 0700), 0);
	char *f = tmp_write("conf.d/providers.conf",
	    "providers = ( { name = \"c\"; type = \"console\"; } );\n");
	free(f);
	f = tmp_write("conf.d/bad.conf", "\nqueue: { max_attempts = 0; };\n");
	free(f);
	struct conf *c = load_ok("@include \"conf.d/providers.conf\"\n"
	    "alerts = ( { name = \"a\"; providers = [ \"c\" ]; sources = ( { kind = \"*\"; } ); } );\n");
	ck_assert_uint_eq(c->nproviders, 1);
	ck_assert_uint_eq(c->alerts[0].provider_idx[0], 0);
	conf_free(c);

	char *err = load_bad("listen: { port = -2; };\n@include \"conf.d/bad.conf\"\n");
	char *want = util_printf("@FILE@:1: listen.port: must be between 0 and 65535\n"
	    "%s/bad.conf:2: queue.max_attempts: must be between 1 and 1000000\n", sub);
	ck_assert_str_eq(err, want);
	free(want);
	free(err);
	free(sub);
}
END_TEST

/* Severity: a level means that level and above; a list exactly its members. */
static const struct {
	const char *value;
	unsigned mask;
} severity_cases[] = {
	{ "\"trace\"", SEV_ALL },
	{ "\"info\"", SEV(EVENT_INFO) | SEV(EVENT_WARNING) | SEV(EVENT_ERROR) },
	{ "\"warning\"", SEV(EVENT_WARNING) | SEV(EVENT_ERROR) },
	{ "\"warn\"", SEV(EVENT_WARNING) | SEV(EVENT_ERROR) },
	{ "\"error\"", SEV(EVENT_ERROR) },
	{ "[ \"info\" ]", SEV(EVENT_INFO) },
	{ "[ \"error\", \"trace\" ]", SEV(EVENT_ERROR) | SEV(EVENT_TRACE) },
	{ "( \"warn\", \"warning\" )", SEV(EVENT_WARNING) },
	{ "[ \"trace\", \"info\", \"warning\", \"error\" ]", SEV_ALL },
};

START_TEST(test_severity)
{
	char *text = util_printf(
	    "providers = ( { name = \"c\"; type = \"console\"; } );\n"
	    "alerts = ( { name = \"a\"; providers = [ \"c\" ]; sources = ( { kind = \"*\"; } );"
	    " severity = %s; } );\n", severity_cases[_i].value);
	struct conf *c = load_ok(text);
	ck_assert_msg(c->alerts[0].severity_mask == severity_cases[_i].mask,
	    "%s: mask %#x, want %#x", severity_cases[_i].value, c->alerts[0].severity_mask,
	    severity_cases[_i].mask);
	conf_free(c);
	free(text);
}
END_TEST

START_TEST(test_missing_file)
{
	char *err = NULL;
	ck_assert_ptr_null(conf_load(CONFIGS "/no-such-file.conf", &err));
	ck_assert_str_eq(err, CONFIGS "/no-such-file.conf: cannot open: No such file or directory\n");
	free(err);
	ck_assert_ptr_null(conf_load(CONFIGS, &err));
	ck_assert_str_eq(err, CONFIGS ": cannot open: Is a directory\n");
	free(err);
}
END_TEST

/* Templates, links, mention and format (SPEC §13): compiled at load, defaults when absent. */
START_TEST(test_templates)
{
	char *err = NULL;
	struct conf *c = conf_load(CONFIGS "/valid-templates.conf", &err);
	ck_assert_msg(c != NULL, "%s", err);
	ck_assert_int_eq(c->providers[0].format, CONF_FORMAT_BLOCKS);
	ck_assert_int_eq(c->providers[1].format, CONF_FORMAT_BLOCKS);
	ck_assert_int_eq(c->providers[2].format, CONF_FORMAT_ATTACHMENTS);
	const struct conf_alert *a = &c->alerts[0];
	ck_assert_ptr_nonnull(a->title);
	ck_assert_ptr_null(a->text);
	ck_assert_uint_eq(a->nlinks, 2);
	ck_assert_ptr_nonnull(a->links[0].text);
	ck_assert_ptr_nonnull(a->links[0].url);
	ck_assert_str_eq(a->mention, "<!subteam^S0123ABCD>");

	/* the compiled templates render what the file says */
	char buf[] = "{\"involvedObject\":{\"kind\":\"Kustomization\",\"name\":\"web\"},"
	    "\"severity\":\"error\",\"message\":\"m\",\"metadata\":{\"revision\":"
	    "\"main@sha1:731f7eaddfb6af01cb2173e18f0f75b0ba780ef1\"}}";
	char perr[128], field[64];
	struct event *ev = event_parse(buf, strlen(buf), perr, sizeof(perr), field, sizeof(field));
	ck_assert_msg(ev != NULL, "%s", perr);
	struct template_data d = { .ev = ev, .alert = a->name };
	char *t = template_render_string(a->title, &d, 0);
	ck_assert_str_eq(t, "Kustomization web at 731f7ea");
	free(t);
	t = template_render_string(a->links[0].url, &d, 0);
	ck_assert_str_eq(t, "https://github.com/acme/fleet/commit/"
	    "731f7eaddfb6af01cb2173e18f0f75b0ba780ef1");
	free(t);
	event_free(ev);
	conf_free(c);

	/* absent: nothing compiled, attachments */
	c = load_ok(
	    "providers = ( { name = \"c\"; type = \"console\"; } );\n"
	    "alerts = ( { name = \"a\"; providers = [\"c\"]; sources = ( { kind = \"*\"; } ); "
	    "links = (); mention = \"<!here> <@U012AB3CD|ann> <!subteam^S1|@ops>\"; } );\n");
	ck_assert_int_eq(c->providers[0].format, CONF_FORMAT_ATTACHMENTS);
	ck_assert_ptr_null(c->alerts[0].title);
	ck_assert_ptr_null(c->alerts[0].text);
	ck_assert_uint_eq(c->alerts[0].nlinks, 0);
	ck_assert_str_eq(c->alerts[0].mention, "<!here> <@U012AB3CD|ann> <!subteam^S1|@ops>");
	conf_free(c);
	c = conf_default();
	ck_assert_int_eq(c->providers[0].format, CONF_FORMAT_ATTACHMENTS);
	ck_assert_ptr_null(c->alerts[0].title);
	ck_assert_ptr_null(c->alerts[0].mention);
	conf_free(c);
}
END_TEST

/* Every tests/configs/broken-*.conf with its golden tests/golden/conf-broken-*.txt. */
static const char *const broken[] = {
	"broken-syntax", "broken-duplicate-setting", "broken-mixed-array",
	"broken-unknown-keys", "broken-types", "broken-types-alerts", "broken-bounds",
	"broken-backoff", "broken-backoff-default", "broken-secrets", "broken-providers",
	"broken-alerts", "broken-severity", "broken-regex", "broken-tls", "broken-tls-key",
	"broken-tls-pem", "broken-clients", "broken-templates",
	"broken-many",
};

/* s with every occurrence of from replaced by to; new string. */
static char *
replace_all(const char *s, const char *from, const char *to)
{
	struct util_buf b = {0};
	size_t n = strlen(from);
	util_buf_puts(&b, "");
	while (*s) {
		if (strncmp(s, from, n) == 0) {
			util_buf_puts(&b, to);
			s += n;
		} else {
			util_buf_append(&b, s, 1);
			s++;
		}
	}
	return b.data;
}

START_TEST(test_broken_golden)
{
	char *path = util_printf(CONFIGS "/%s.conf", broken[_i]);
	char *gpath = util_printf(GOLDEN "/conf-%s.txt", broken[_i]);
	char gerr[256], *err = NULL;
	char *golden = util_read_file(gpath, NULL, gerr, sizeof(gerr));
	ck_assert_msg(golden != NULL, "%s", gerr);

	struct conf *c = conf_load(path, &err);
	ck_assert_msg(c == NULL, "%s accepted", path);
	ck_assert_ptr_nonnull(err);
	char *t1 = replace_all(err, path, "@FILE@");
	char *got = replace_all(t1, CONFIGS, "@DIR@");
	ck_assert_msg(strcmp(got, golden) == 0, "%s:\n--- got\n%s--- want\n%s", broken[_i], got,
	    golden);

	/* One line per problem, each "FILE:LINE: ...", sorted by line. */
	long prev = 0;
	for (char *line = got; *line;) {
		char *nl = strchr(line, '\n');
		ck_assert_ptr_nonnull(nl);
		ck_assert_msg(strncmp(line, "@FILE@:", 7) == 0, "%.*s", (int)(nl - line), line);
		long ln = strtol(line + 7, NULL, 10);
		ck_assert_msg(ln > 0 && ln >= prev, "line %ld after %ld", ln, prev);
		prev = ln;
		line = nl + 1;
	}
	free(t1);
	free(got);
	free(err);
	free(golden);
	free(gpath);
	free(path);
}
END_TEST

/* No secret value from broken-secrets.conf or its secret files appears in its errors. */
START_TEST(test_secret_not_in_errors)
{
	static const char *const secrets[] = {
		"inline-hmac-secret", "INLINE-SECRET", "inline-url-secret", "not-http-secret",
		"XXXXSECRETXXXX", "xoxb-env-token", "hooks.example.com/env", "xoxb-1", "xoxb-2", "t0ken",
		"xoxb-many",
	};
	const char *files[] = { CONFIGS "/broken-secrets.conf", CONFIGS "/broken-providers.conf",
		CONFIGS "/broken-many.conf" };
	for (size_t f = 0; f < 3; f++) {
		char *err = NULL;
		ck_assert_ptr_null(conf_load(files[f], &err));
		for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
			ck_assert_msg(strstr(err, secrets[i]) == NULL, "%s leaked in:\n%s", secrets[i], err);
		free(err);
	}
}
END_TEST

START_TEST(test_unknown_key_suggestion)
{
	char *err = load_bad("alerts = ( { name = \"a\"; provider = [ \"x\" ]; sources = ( { kind = \"*\"; } ); } );\n");
	ck_assert_str_eq(err,
	    "@FILE@:1: alert \"a\": provider: unknown key (did you mean \"providers\"?)\n"
	    "@FILE@:1: alert \"a\": providers: required\n");
	free(err);
}
END_TEST

START_TEST(test_type_names)
{
	ck_assert_str_eq(conf_provider_type_name(CONF_PROVIDER_SLACK), "slack");
	ck_assert_str_eq(conf_provider_type_name(CONF_PROVIDER_SLACK_BOT), "slack-bot");
	ck_assert_str_eq(conf_provider_type_name(CONF_PROVIDER_CONSOLE), "console");
	struct conf *c = conf_default();
	ck_assert_int_eq(conf_provider_find(c, "console"), 0);
	ck_assert_int_eq(conf_provider_find(c, "Console"), -1);
	conf_free(c);
}
END_TEST

/* Reload-style use: loading the same file many times leaks nothing (valgrind). */
/* listen.metrics_address / metrics_port: both or neither, valid, not the main listener. */
START_TEST(test_metrics_listener)
{
	struct conf *c = load_ok("listen: { metrics_address = \"0.0.0.0\"; metrics_port = 9394; };\n");
	ck_assert_str_eq(c->listen.metrics_address, "0.0.0.0");
	ck_assert_int_eq(c->listen.metrics_port, 9394);
	conf_free(c);
	/* Port 0 twice: the kernel picks two different ports. */
	c = load_ok("listen: { port = 0; metrics_address = \"127.0.0.1\"; metrics_port = 0; };\n");
	ck_assert_int_eq(c->listen.metrics_port, 0);
	conf_free(c);
	/* The same port on another specific address is another socket. */
	c = load_ok("listen: { address = \"127.0.0.1\"; port = 9394;\n"
	    "  metrics_address = \"127.0.0.2\"; metrics_port = 9394; };\n");
	conf_free(c);

	static const struct { const char *text, *want; } bad[] = {
		{ "listen: {\n metrics_address = \"0.0.0.0\"; };\n",
		  "@FILE@:2: listen.metrics_address: requires metrics_port\n" },
		{ "listen: {\n metrics_port = 9394; };\n",
		  "@FILE@:2: listen.metrics_port: requires metrics_address\n" },
		{ "listen: { metrics_address = \"0.0.0.0\";\n metrics_port = 70000; };\n",
		  "@FILE@:2: listen.metrics_port: must be between 0 and 65535\n" },
		{ "listen: { metrics_address = \"localhost\";\n metrics_port = 9394; };\n",
		  "@FILE@:1: listen.metrics_address: must be a numeric IPv4 or IPv6 address "
		  "(\"127.0.0.1\", \"0.0.0.0\", \"::\")\n" },
		{ "listen: { port = 9394; metrics_address = \"127.0.0.1\";\n metrics_port = 9394; };\n",
		  "@FILE@:2: listen.metrics_port: must not be the main listener's address and port "
		  "(127.0.0.1:9394)\n" },
		/* The default port, and a wildcard that covers the main address. */
		{ "listen: { metrics_address = \"0.0.0.0\";\n metrics_port = 9292; };\n",
		  "@FILE@:2: listen.metrics_port: must not be the main listener's address and port "
		  "(127.0.0.1:9292)\n" },
		{ "listen: { address = \"::\"; metrics_address = \"127.0.0.1\";\n metrics_port = 9292; };\n",
		  "@FILE@:2: listen.metrics_port: must not be the main listener's address and port "
		  "(:::9292)\n" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *got = load_bad(bad[i].text);
		ck_assert_msg(strcmp(got, bad[i].want) == 0, "%s\n--- got\n%s--- want\n%s",
		    bad[i].text, got, bad[i].want);
		free(got);
	}
}
END_TEST

/*
 * An HMAC key file that ends in a newline: Flux signs with the Secret's bytes
 * as stored (kubectl create secret --from-file keeps the newline), so both
 * the stripped key and the stored bytes are kept.
 */
START_TEST(test_hmac_key_newline)
{
	char *f = tmp_write("nl", "k3y\n");
	free(f);
	f = tmp_write("crlf", "old\r\n");
	free(f);
	f = tmp_write("plain", "k3y");
	free(f);
	struct conf *c = load_ok("auth: { hmac_key_file = \"nl\"; hmac_key_previous_file = \"crlf\"; };\n");
	ck_assert_uint_eq(c->auth.hmac_key_len, 3);
	ck_assert_mem_eq(c->auth.hmac_key, "k3y", 3);
	ck_assert_ptr_nonnull(c->auth.hmac_key_raw);
	ck_assert_uint_eq(c->auth.hmac_key_raw_len, 4);
	ck_assert_mem_eq(c->auth.hmac_key_raw, "k3y\n", 4);
	ck_assert_uint_eq(c->auth.hmac_key_previous_len, 3);
	ck_assert_mem_eq(c->auth.hmac_key_previous, "old", 3);
	ck_assert_uint_eq(c->auth.hmac_key_previous_raw_len, 5);
	ck_assert_mem_eq(c->auth.hmac_key_previous_raw, "old\r\n", 5);
	conf_free(c);
	/* No trailing newline, inline or environment: one form only. */
	c = load_ok("auth: { hmac_key_file = \"plain\"; hmac_key_previous = \"old\\n\"; };\n");
	ck_assert_mem_eq(c->auth.hmac_key, "k3y", 3);
	ck_assert_ptr_null(c->auth.hmac_key_raw);
	ck_assert_uint_eq(c->auth.hmac_key_previous_len, 4);
	ck_assert_ptr_null(c->auth.hmac_key_previous_raw);
	conf_free(c);
	/* Token files stay stripped only. */
	c = load_ok("auth: { token_file = \"nl\"; };\n");
	ck_assert_str_eq(c->auth.token, "k3y");
	ck_assert_ptr_null(c->auth.hmac_key_raw);
	conf_free(c);
}
END_TEST

/* TLS files are loaded and matched as the server will: each problem names its file. */
START_TEST(test_tls_files)
{
	char *text = util_printf("listen: { tls_cert_file = \"%s/cert.pem\";\n"
	    " tls_key_file = \"%s/key.pem\";\n tls_client_ca_file = \"%s/ca.pem\"; };\n",
	    CONFIGS "/tls", CONFIGS "/tls", CONFIGS "/tls");
	struct conf *c = load_ok(text);
	conf_free(c);
	free(text);

	static const struct { const char *cert, *key, *ca, *want; } bad[] = {
		{ "garbage.pem", "key.pem", "ca.pem",
		  "@FILE@:1: listen.tls_cert_file: @TLS@/garbage.pem: " },
		{ "cert.pem", "garbage.pem", "ca.pem",
		  "@FILE@:2: listen.tls_key_file: @TLS@/garbage.pem: " },
		{ "cert.pem", "other-key.pem", "ca.pem",
		  "@FILE@:2: listen.tls_key_file: @TLS@/other-key.pem: " },
		{ "cert.pem", "key.pem", "garbage.pem",
		  "@FILE@:3: listen.tls_client_ca_file: @TLS@/garbage.pem: " },
		/* A key is not a certificate. */
		{ "key.pem", "key.pem", "ca.pem",
		  "@FILE@:1: listen.tls_cert_file: @TLS@/key.pem: " },
		{ "cert.pem", "key.pem", "key.pem",
		  "@FILE@:3: listen.tls_client_ca_file: @TLS@/key.pem: " },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		text = util_printf("listen: { tls_cert_file = \"%s/%s\";\n"
		    " tls_key_file = \"%s/%s\";\n tls_client_ca_file = \"%s/%s\"; };\n",
		    CONFIGS "/tls", bad[i].cert, CONFIGS "/tls", bad[i].key, CONFIGS "/tls", bad[i].ca);
		char *raw = load_bad(text), *got = replace_all(raw, CONFIGS "/tls", "@TLS@");
		/* One line: the file, then GnuTLS's reason (not checked word for word). */
		ck_assert_msg(strncmp(got, bad[i].want, strlen(bad[i].want)) == 0 &&
		    strlen(got) > strlen(bad[i].want) + 3 && strchr(got, '\n') == got + strlen(got) - 1,
		    "case %zu\n--- got\n%s--- want prefix\n%s", i, got, bad[i].want);
		free(raw);
		free(got);
		free(text);
	}
	/* The mismatch says which certificate. */
	text = util_printf("listen: { tls_cert_file = \"%s/cert.pem\";\n"
	    " tls_key_file = \"%s/other-key.pem\"; };\n", CONFIGS "/tls", CONFIGS "/tls");
	char *got = load_bad(text);
	ck_assert_msg(strstr(got, "other-key.pem: does not go with the certificate in "
	    CONFIGS "/tls/cert.pem: ") != NULL, "%s", got);
	free(got);
	free(text);

	/* Commands that never serve do not parse them. */
	text = util_printf("listen: { tls_cert_file = \"%s/garbage.pem\";\n"
	    " tls_key_file = \"%s/garbage.pem\"; };\n", CONFIGS "/tls", CONFIGS "/tls");
	char *path = tmp_write("fluxrelay.conf", text), *err = NULL;
	c = conf_load_opts(path, CONF_SKIP_SECRETS, &err);
	ck_assert_msg(c != NULL, "%s", err);
	conf_free(c);
	free(path);
	free(text);

	/* Nor do they expand the daemon's ${VAR}s in those paths. */
	unsetenv("FR_TEST_UNSET_CREDS");
	text = util_strdup("listen: { tls_cert_file = \"${FR_TEST_UNSET_CREDS}/c\";\n"
	    " tls_key_file = \"${FR_TEST_UNSET_CREDS}/k\"; };\n");
	path = tmp_write("fluxrelay.conf", text);
	c = conf_load_opts(path, CONF_SKIP_SECRETS, &err);
	ck_assert_msg(c != NULL, "%s", err);
	ck_assert_ptr_null(c->listen.tls_cert_file);
	conf_free(c);
	char *raw = load_bad(text);
	ck_assert_str_eq(raw,
	    "@FILE@:1: listen.tls_cert_file: environment variable FR_TEST_UNSET_CREDS is not set\n"
	    "@FILE@:2: listen.tls_key_file: environment variable FR_TEST_UNSET_CREDS is not set\n");
	free(raw);
	free(path);
	free(text);
}
END_TEST

/* Any form of auth counts, auth.clients alone included: the daemon warns
 * about listening beyond loopback without auth only when none is given. */
START_TEST(test_auth_configured)
{
	static const struct { const char *text; bool want; } cases[] = {
		{ "", false },
		{ "auth: { };", false },
		{ "auth: { token = \"t\"; };", true },
		{ "auth: { hmac_key = \"k\"; };", true },
		{ "auth: { clients = ( { name = \"prod\"; token = \"t\"; } ); };", true },
		{ "auth: { clients = ( { name = \"prod\"; hmac_key = \"k\"; } ); };", true },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct conf *c = load_ok(cases[i].text);
		ck_assert_msg(conf_auth_configured(c) == cases[i].want, "%s", cases[i].text);
		conf_free(c);
	}
	struct conf *c = conf_default();
	ck_assert(!conf_auth_configured(c));
	conf_free(c);
}
END_TEST

/* An empty reasons, include or exclude list is no filter, as when absent. */
START_TEST(test_empty_filter_lists)
{
	struct conf *c = load_ok("providers = ( { name = \"out\"; type = \"console\"; } );\n"
	    "alerts = ( { name = \"a\"; providers = [ \"out\" ]; sources = ( { kind = \"*\"; } );\n"
	    "  reasons = []; include = []; exclude = []; } );\n");
	ck_assert_uint_eq(c->alerts[0].nreasons, 0);
	ck_assert_uint_eq(c->alerts[0].ninclude, 0);
	ck_assert_uint_eq(c->alerts[0].nexclude, 0);
	conf_free(c);
	/* Lists that must name something still may not be empty. */
	char *err = load_bad("providers = ( { name = \"out\"; type = \"console\"; } );\n"
	    "alerts = ( { name = \"a\"; providers = []; sources = ( { kind = \"*\"; } );\n"
	    "  severity = []; } );\n");
	ck_assert_str_eq(err,
	    "@FILE@:2: alert \"a\": providers: must not be an empty list\n"
	    "@FILE@:3: alert \"a\": severity: must not be an empty list\n");
	free(err);
}
END_TEST

START_TEST(test_load_twice)
{
	for (int i = 0; i < 3; i++) {
		char *err = NULL;
		struct conf *c = conf_load(CONFIGS "/valid-full.conf", &err);
		ck_assert_ptr_nonnull(c);
		conf_free(c);
		ck_assert_ptr_null(conf_load(CONFIGS "/broken-many.conf", &err));
		free(err);
	}
}
END_TEST

/* Every TLS file that cannot be read is named in its own problem (each was
 * once reported with the last unreadable file's name). */
START_TEST(test_tls_unreadable_each_named)
{
	const char *names[] = { "cert.pem", "key.pem", "ca.pem" };
	for (size_t i = 0; i < 3; i++) {
		char *path = tmp_write(names[i], "");
		ck_assert_int_eq(truncate(path, (off_t)UTIL_READ_MAX + 1), 0);   /* sparse */
		free(path);
	}
	char *text = util_printf("listen: {\n tls_cert_file = \"%s/cert.pem\";\n"
	    " tls_key_file = \"%s/key.pem\";\n tls_client_ca_file = \"%s/ca.pem\"; };\n",
	    test_tmpdir, test_tmpdir, test_tmpdir);
	char *raw = load_bad(text), *got = replace_all(raw, test_tmpdir, "@DIR@");
	ck_assert_str_eq(got,
	    "@FILE@:2: listen.tls_cert_file: cannot read @DIR@/cert.pem: larger than 16 MiB\n"
	    "@FILE@:3: listen.tls_key_file: cannot read @DIR@/key.pem: larger than 16 MiB\n"
	    "@FILE@:4: listen.tls_client_ca_file: cannot read @DIR@/ca.pem: larger than 16 MiB\n");
	free(raw);
	free(got);
	free(text);
}
END_TEST

/* queue.dead_max_age: seconds, 30 days by default, 0 keeps dead letters forever. */
START_TEST(test_dead_max_age)
{
	struct conf *c = load_ok("queue: { max_age = 60; };\n");
	ck_assert(c->queue.dead_max_age == 2592000.0);
	conf_free(c);
	c = load_ok("queue: { dead_max_age = 0; };\n");
	ck_assert(c->queue.dead_max_age == 0.0);
	conf_free(c);
	c = load_ok("queue: { dead_max_age = 3600.5; };\n");
	ck_assert(c->queue.dead_max_age == 3600.5);
	conf_free(c);
	c = conf_default();
	ck_assert(c->queue.dead_max_age == 2592000.0);
	conf_free(c);
	char *err = load_bad("queue: {\n dead_max_age = -1; };\n");
	ck_assert_str_eq(err, "@FILE@:2: queue.dead_max_age: must be between 0 and 315360000\n");
	free(err);
	err = load_bad("queue: { dead_max_age = \"30d\"; };\n");
	ck_assert_str_eq(err, "@FILE@:1: queue.dead_max_age: must be a number\n");
	free(err);
}
END_TEST

/* Incidents and threads (notify, repeat_interval, incident_ttl, recovery_reasons;
 * threads, thread_ttl): defaults, values, and every misuse with its line. */
#define INC_PROVIDERS \
	"providers = (\n" \
	"  { name = \"hook\"; type = \"slack\"; url = \"https://hooks.example.com/x\"; },\n" \
	"  { name = \"bot\"; type = \"slack-bot\"; token = \"xoxb-1\"; channel = \"#ops\"; },\n" \
	"  { name = \"out\"; type = \"console\"; }\n" \
	");\n"

START_TEST(test_incident_keys)
{
	struct conf *c = load_ok(INC_PROVIDERS
	    "alerts = (\n"
	    "  { name = \"ev\"; providers = [ \"hook\" ]; sources = ( { kind = \"*\"; } ); },\n"
	    "  { name = \"ch\"; providers = [ \"out\" ]; sources = ( { kind = \"*\"; } );\n"
	    "    notify = \"changes\"; }\n"
	    ");\n");
	ck_assert_int_eq(c->alerts[0].notify, CONF_NOTIFY_EVENTS);
	ck_assert(c->alerts[0].repeat_interval == 0 && c->alerts[0].incident_ttl == 86400);
	ck_assert_ptr_null(c->alerts[0].recovery_reasons);
	ck_assert_uint_eq(c->alerts[0].nrecovery_reasons, 0);
	ck_assert_int_eq(c->alerts[1].notify, CONF_NOTIFY_CHANGES);
	ck_assert(c->alerts[1].repeat_interval == 0 && c->alerts[1].incident_ttl == 86400);
	ck_assert_uint_eq(c->alerts[1].nrecovery_reasons, 4);
	ck_assert_str_eq(c->alerts[1].recovery_reasons[0], "ReconciliationSucceeded");
	ck_assert_str_eq(c->alerts[1].recovery_reasons[1], "Succeeded");
	ck_assert_str_eq(c->alerts[1].recovery_reasons[2], "InstallSucceeded");
	ck_assert_str_eq(c->alerts[1].recovery_reasons[3], "UpgradeSucceeded");
	for (size_t i = 0; i < 3; i++)
		ck_assert(!c->providers[i].threads && c->providers[i].thread_ttl == 86400);
	conf_free(c);

	c = load_ok(INC_PROVIDERS
	    "alerts = ( { name = \"ch\"; providers = [ \"bot\" ]; sources = ( { kind = \"*\"; } );\n"
	    "  notify = \"changes\"; repeat_interval = 14400; incident_ttl = 3600.5;\n"
	    "  recovery_reasons = [ \"ReconciliationSucceeded\", \"Upgrade*\" ]; } );\n");
	ck_assert(c->alerts[0].repeat_interval == 14400 && c->alerts[0].incident_ttl == 3600.5);
	ck_assert_uint_eq(c->alerts[0].nrecovery_reasons, 2);
	ck_assert_str_eq(c->alerts[0].recovery_reasons[1], "Upgrade*");
	conf_free(c);

	c = load_ok("providers = ( { name = \"bot\"; type = \"slack-bot\"; token = \"t\";\n"
	    "  channel = \"#ops\"; threads = true; thread_ttl = 600; } );\n");
	ck_assert(c->providers[0].threads && c->providers[0].thread_ttl == 600);
	conf_free(c);

	/* The keys of notify = "changes" are accepted on any alert, as the
	 * example of fluxrelay.conf(5) sets them; they act only with "changes". */
	c = load_ok(INC_PROVIDERS
	    "alerts = ( { name = \"ev\"; providers = [ \"hook\" ]; sources = ( { kind = \"*\"; } );\n"
	    "  notify = \"events\"; repeat_interval = 14400; incident_ttl = 86400;\n"
	    "  recovery_reasons = [ \"ReconciliationSucceeded\" ]; },\n"
	    " { name = \"dflt\"; providers = [ \"hook\" ]; sources = ( { kind = \"*\"; } );\n"
	    "  repeat_interval = 60; } );\n");
	ck_assert_int_eq(c->alerts[0].notify, CONF_NOTIFY_EVENTS);
	ck_assert(c->alerts[0].repeat_interval == 14400 && c->alerts[0].incident_ttl == 86400);
	ck_assert_uint_eq(c->alerts[0].nrecovery_reasons, 1);
	ck_assert_int_eq(c->alerts[1].notify, CONF_NOTIFY_EVENTS);
	ck_assert_ptr_null(c->warnings);
	conf_free(c);

	/* threads on another type is an error even when false (SPEC §12). */
	char *err = load_bad("providers = ( { name = \"hook\"; type = \"slack\";\n"
	    "  url = \"https://hooks.example.com/x\"; threads = false; } );\n");
	ck_assert_msg(strstr(err, "@FILE@:2: provider \"hook\": threads: not valid for type "
	    "\"slack\"") != NULL, "%s", err);
	free(err);

	c = conf_default();
	ck_assert_int_eq(c->alerts[0].notify, CONF_NOTIFY_EVENTS);
	ck_assert(!c->providers[0].threads);
	conf_free(c);
}
END_TEST

START_TEST(test_incident_errors)
{
	char *err = load_bad(INC_PROVIDERS
	    "alerts = (\n"
	    "  { name = \"a\"; providers = [ \"hook\" ]; sources = ( { kind = \"*\"; } );\n"
	    "    notify = \"sometimes\";\n"
	    "    repeat_interval = 60; },\n"
	    "  { name = \"b\"; providers = [ \"hook\" ]; sources = ( { kind = \"*\"; } );\n"
	    "    repeat_interval = 60;\n"
	    "    incident_ttl = 60;\n"
	    "    recovery_reasons = [ \"Succeeded\" ]; },\n"
	    "  { name = \"c\"; providers = [ \"hook\" ]; sources = ( { kind = \"*\"; } );\n"
	    "    notify = \"events\"; repeat_interval = -5; },\n"
	    "  { name = \"d\"; providers = [ \"hook\" ]; sources = ( { kind = \"*\"; } );\n"
	    "    notify = \"changes\";\n"
	    "    incident_ttl = 0;\n"
	    "    repeat_interval = -1;\n"
	    "    recovery_reasons = [ ];\n"
	    "    notifiy = \"x\"; },\n"
	    "  { name = \"e\"; providers = [ \"hook\" ]; sources = ( { kind = \"*\"; } );\n"
	    "    notify = true; }\n"
	    ");\n");
	ck_assert_str_eq(err,
	    "@FILE@:8: alert \"a\": notify: must be \"events\" or \"changes\"\n"
	    "@FILE@:15: alert \"c\": repeat_interval: must be between 0 and 31536000\n"
	    "@FILE@:18: alert \"d\": incident_ttl: must be between 1 and 31536000\n"
	    "@FILE@:19: alert \"d\": repeat_interval: must be between 0 and 31536000\n"
	    "@FILE@:20: alert \"d\": recovery_reasons: must not be an empty list\n"
	    "@FILE@:21: alert \"d\": notifiy: unknown key (did you mean \"notify\"?)\n"
	    "@FILE@:23: alert \"e\": notify: must be a string\n");
	free(err);

	/* A forwarder has no messages to open, remind or close. */
	err = load_bad("providers = (\n"
	    "  { name = \"hook\"; type = \"slack\"; url = \"https://hooks.example.com/x\"; },\n"
	    "  { name = \"nc\"; type = \"generic\"; address = \"http://127.0.0.1:9/\"; }\n"
	    ");\n"
	    "alerts = (\n"
	    "  { name = \"a\"; providers = [ \"hook\", \"nc\" ]; sources = ( { kind = \"*\"; } );\n"
	    "    notify = \"changes\"; },\n"
	    "  { name = \"b\"; providers = [ \"nc\" ]; sources = ( { kind = \"*\"; } ); }\n"
	    ");\n");
	ck_assert_str_eq(err,
	    "@FILE@:7: alert \"a\": notify: notify = \"changes\" cannot deliver to provider "
	    "\"nc\" (type generic forwards events as received)\n");
	free(err);

	err = load_bad("providers = (\n"
	    "  { name = \"hook\"; type = \"slack\"; url = \"https://hooks.example.com/x\";\n"
	    "    threads = true; },\n"
	    "  { name = \"out\"; type = \"console\";\n"
	    "    thread_ttl = 60; },\n"
	    "  { name = \"bot\"; type = \"slack-bot\"; token = \"t\"; channel = \"#c\";\n"
	    "    threads = 1;\n"
	    "    thread_ttl = 0; }\n"
	    ");\n");
	ck_assert_str_eq(err,
	    "@FILE@:3: provider \"hook\": threads: not valid for type \"slack\": threads need "
	    "Slack's Web API (type \"slack-bot\"): only chat.postMessage returns the ts a reply "
	    "or an update refers to\n"
	    "@FILE@:5: provider \"out\": thread_ttl: not valid for type \"console\": threads need "
	    "Slack's Web API (type \"slack-bot\"): only chat.postMessage returns the ts a reply "
	    "or an update refers to\n"
	    "@FILE@:7: provider \"bot\": threads: must be true or false\n"
	    "@FILE@:8: provider \"bot\": thread_ttl: must be between 1 and 31536000\n");
	free(err);
}
END_TEST

static Suite *
conf_suite(void)
{
	Suite *s = suite_create("conf");
	TCase *tc = tcase_create("conf");
	tcase_add_checked_fixture(tc, tmp_setup, test_tmp_remove);
	tcase_add_test(tc, test_default);
	tcase_add_test(tc, test_minimal_defaults);
	tcase_add_test(tc, test_full);
	tcase_add_loop_test(tc, test_numbers, 0, sizeof(number_cases) / sizeof(number_cases[0]));
	tcase_add_test(tc, test_integer_not_float);
	tcase_add_test(tc, test_port_zero);
	tcase_add_test(tc, test_secret_forms);
	tcase_add_test(tc, test_secret_errors);
	tcase_add_test(tc, test_expand);
	tcase_add_test(tc, test_relative_paths);
	tcase_add_test(tc, test_include);
	tcase_add_loop_test(tc, test_severity, 0, sizeof(severity_cases) / sizeof(severity_cases[0]));
	tcase_add_test(tc, test_missing_file);
	tcase_add_test(tc, test_templates);
	tcase_add_loop_test(tc, test_broken_golden, 0, sizeof(broken) / sizeof(broken[0]));
	tcase_add_test(tc, test_secret_not_in_errors);
	tcase_add_test(tc, test_unknown_key_suggestion);
	tcase_add_test(tc, test_type_names);
	tcase_add_test(tc, test_metrics_listener);
	tcase_add_test(tc, test_hmac_key_newline);
	tcase_add_test(tc, test_tls_files);
	tcase_add_test(tc, test_load_twice);
	tcase_add_test(tc, test_auth_configured);
	tcase_add_test(tc, test_empty_filter_lists);
	tcase_add_test(tc, test_dead_max_age);
	tcase_add_test(tc, test_tls_unreadable_each_named);
	tcase_add_test(tc, test_incident_keys);
	tcase_add_test(tc, test_incident_errors);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(conf_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
