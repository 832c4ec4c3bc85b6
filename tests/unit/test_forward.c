/*
 * Unit tests for forward: the X-Signature of generic-hmac against HMAC-SHA256
 * values computed independently (Python's hmac module, RFC 4231-style
 * vectors), the header lines, the classification of a receiver's answers,
 * the secrets kept out of error texts; and the forwarding providers' settings
 * in conf (headers, headers_file, the key file's bytes as stored).
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "forward.h"
#include "util.h"
#include "test_tmp.h"

static void
tmp_setup(void)
{
	test_tmp_make("test_forward");
}

START_TEST(test_sign_vectors)
{
	char sig[FORWARD_SIGNATURE_SIZE];
	static const char fox[] = "The quick brown fox jumps over the lazy dog";
	ck_assert_int_eq(forward_sign((const unsigned char *)"key", 3, fox, strlen(fox), sig), 0);
	ck_assert_str_eq(sig,
	    "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8");
	/* The key's bytes exactly: a trailing newline changes the signature. */
	ck_assert_int_eq(forward_sign((const unsigned char *)"k3y\n", 4, "{\"a\":1}", 7, sig), 0);
	ck_assert_str_eq(sig,
	    "sha256=ac0c454d777b6590a83af70237edac2c3ee7c7d0bb191184c42d19009cd40b85");
	ck_assert_int_eq(forward_sign((const unsigned char *)"k3y", 3, "{\"a\":1}", 7, sig), 0);
	ck_assert_str_eq(sig,
	    "sha256=32db719f172c48e89dbfa56ed20d9e19cdbfdbe9f652ccdf5fa03494d2444853");
}
END_TEST

static struct conf *
load(const char *text, char **errors)
{
	char *path = tmp_write("fluxrelay.conf", text);
	struct conf *c = conf_load(path, errors);
	free(path);
	return c;
}

/*
 * headers = { "X-Team" = "platform"; }: libconfig takes names bare only, so
 * the quotes of such names are taken off before it reads the file; strings
 * that are values, and comments, are kept; errors keep their lines.
 */
START_TEST(test_quoted_header_names)
{
	char *errors = NULL;
	struct conf *c = load(
	    "# a comment with \"Not-A\" = \"name\";\n"
	    "providers = ( { name = \"f\"; type = \"generic\"; address = \"https://r/x\";\n"
	    "  headers = { \"X-Team\" = \"platform\"; \"X-Quoted\" : \"\\\"a\\\" = b\";\n"
	    "              /* \"X-Not\" = \"c\"; */ X-Bare = \"d\"; }; } );\n"
	    "alerts = ( { name = \"a\"; providers = [ \"f\" ];\n"
	    "  sources = ( { kind = \"*\"; } ); } );\n", &errors);
	ck_assert_msg(c != NULL, "%s", errors ? errors : "");
	const struct conf_provider *p = &c->providers[0];
	ck_assert_uint_eq(p->nheaders, 3);
	ck_assert_str_eq(p->headers[0].name, "X-Team");
	ck_assert_str_eq(p->headers[0].value, "platform");
	ck_assert_str_eq(p->headers[1].name, "X-Quoted");
	ck_assert_str_eq(p->headers[1].value, "\"a\" = b");
	ck_assert_str_eq(p->headers[2].name, "X-Bare");
	conf_free(c);

	/* A quoted name libconfig cannot take bare is an error of its own, on its line. */
	c = load("providers = ( { name = \"f\"; type = \"generic\"; address = \"https://r/x\";\n"
	    "  headers = { \"X-Team\" = \"platform\";\n"
	    "    \"X.Dotted\" = \"no\"; }; } );\n", &errors);
	ck_assert_ptr_null(c);
	char *want = util_printf("%s/fluxrelay.conf:3: setting name \"X.Dotted\": only letters, "
	    "digits, '-', '_' and '*' (a header of another name goes in headers_file)\n",
	    test_tmpdir);
	ck_assert_str_eq(errors, want);
	free(want);
	free(errors);

	/* So are libconfig's booleans and a name with an escape, '=' on the next line. */
	static const char *const bad[] = { "\"True\" = \"x\";", "\"X\\\"Y\"\n    = \"x\";" };
	static const char *const name[] = { "True", "X\\\"Y" };
	for (size_t i = 0; i < 2; i++) {
		char *text = util_printf("providers = ( { name = \"f\"; type = \"generic\";\n"
		    "  address = \"https://r/x\"; headers = { %s }; } );\n", bad[i]);
		c = load(text, &errors);
		ck_assert_ptr_null(c);
		want = util_printf("%s/fluxrelay.conf:2: setting name \"%s\": only letters, "
		    "digits, '-', '_' and '*' (a header of another name goes in headers_file)\n",
		    test_tmpdir, name[i]);
		ck_assert_str_eq(errors, want);
		free(want);
		free(errors);
		free(text);
	}
	/* A name and its '=' on two lines is still a name. */
	c = load("providers = ( { name = \"f\"; type = \"generic\"; address = \"https://r/x\";\n"
	    "  headers = { \"X-Team\"\n = \"platform\"; }; } );\n"
	    "alerts = ( { name = \"a\"; providers = [ \"f\" ]; sources = ( { kind = \"*\"; } ); } );\n",
	    &errors);
	ck_assert_msg(c != NULL, "%s", errors ? errors : "");
	ck_assert_str_eq(c->providers[0].headers[0].name, "X-Team");
	conf_free(c);
}
END_TEST

START_TEST(test_conf_and_headers)
{
	char *key = tmp_write("key", "k3y\n");
	char *hdrs = tmp_write("headers", "# comment\nX-From-File: a b \r\n\nX-Other:c\n");
	char *text = util_printf(
	    "providers = ( { name = \"f\"; type = \"generic-hmac\"; address = \"https://r/x\";\n"
	    "  hmac_key_file = \"%s\"; headers = { X-Team = \"platform\"; };\n"
	    "  headers_file = \"%s\"; },\n"
	    "  { name = \"g\"; type = \"generic\"; address = \"http://r/y\"; rate = 0; } );\n"
	    "alerts = ( { name = \"a\"; providers = [ \"f\", \"g\" ]; channel = \"#c\";\n"
	    "  sources = ( { kind = \"*\"; } ); } );\n", key, hdrs);
	char *errors = NULL;
	struct conf *c = load(text, &errors);
	ck_assert_msg(c != NULL, "%s", errors ? errors : "");
	const struct conf_provider *p = &c->providers[0];
	ck_assert_int_eq(p->type, CONF_PROVIDER_GENERIC_HMAC);
	ck_assert(conf_provider_forwards(p));
	ck_assert_str_eq(p->url, "https://r/x");
	ck_assert_int_eq(p->batch_max, 1);
	/* Signed with the file's bytes as stored, as Flux signs with a Secret's. */
	ck_assert_uint_eq(p->hmac_key_len, 4);
	ck_assert_mem_eq(p->hmac_key, "k3y\n", 4);
	ck_assert_uint_eq(p->nheaders, 3);
	ck_assert_str_eq(p->headers[0].name, "X-Team");
	ck_assert_str_eq(p->headers[1].name, "X-From-File");
	ck_assert_str_eq(p->headers[1].value, "a b");
	ck_assert_str_eq(p->headers[2].value, "c");
	ck_assert_int_eq(c->providers[1].type, CONF_PROVIDER_GENERIC);
	ck_assert_str_eq(conf_provider_type_name(CONF_PROVIDER_GENERIC_HMAC), "generic-hmac");

	char **h = forward_headers(p, "kustomize-controller", "{\"a\":1}", 7);
	ck_assert_ptr_nonnull(h);
	ck_assert_str_eq(h[0], "Content-Type: application/json");
	ck_assert_str_eq(h[1], "Gotk-Component: kustomize-controller");
	ck_assert_str_eq(h[2], "X-Team: platform");
	ck_assert_str_eq(h[3], "X-From-File: a b");
	ck_assert_str_eq(h[4], "X-Other: c");
	ck_assert_str_eq(h[5],
	    "X-Signature: sha256=ac0c454d777b6590a83af70237edac2c3ee7c7d0bb191184c42d19009cd40b85");
	ck_assert_ptr_null(h[6]);
	forward_headers_free(h);
	h = forward_headers(&c->providers[1], "", "{}", 2);
	ck_assert_str_eq(h[0], "Content-Type: application/json");
	ck_assert_ptr_null(h[1]);
	forward_headers_free(h);
	conf_free(c);
	free(text);
	free(key);
	free(hdrs);
}
END_TEST

/* Each broken forwarding setting, with the one line it must produce. */
static const struct {
	const char *provider;
	const char *want;
} broken[] = {
	{ "type = \"generic\";", "address: required (address, address_file or address_env)" },
	{ "type = \"generic\"; address = \"ftp://x\";", "address: must start with http:// or https://" },
	{ "type = \"generic-hmac\"; address = \"http://x\";",
	  "hmac_key: required for type \"generic-hmac\" (hmac_key, hmac_key_file or hmac_key_env)" },
	{ "type = \"generic\"; address = \"http://x\"; hmac_key = \"k\";",
	  "hmac_key: not valid for type \"generic\"" },
	{ "type = \"generic\"; address = \"http://x\"; channel = \"#c\";",
	  "channel: not valid for type \"generic\"" },
	{ "type = \"generic-hmac\"; address = \"http://x\"; hmac_key = \"k\"; batch_max = 5;",
	  "batch_max: not valid for type \"generic-hmac\"" },
	{ "type = \"slack\"; url = \"http://x\"; address = \"http://y\";",
	  "address: not valid for type \"slack\"" },
	{ "type = \"generic\"; address = \"http://x\"; headers = { Content-Type = \"text/plain\"; };",
	  "headers.Content-Type: header Content-Type is set by fluxrelay" },
	{ "type = \"generic\"; address = \"http://x\"; headers = { X-A = \"1\"; x-a = \"2\"; };",
	  "headers.x-a: header x-a given twice" },
	{ "type = \"generic\"; address = \"http://x\"; headers = { X-A = 1; };",
	  "headers.X-A: must be a string" },
	{ "type = \"generic\"; address = \"http://x\"; headers = [ \"X-A: 1\" ];",
	  "headers: must be a group { Name = \"value\"; ... }" },
	{ "type = \"generic\"; address = \"http://x\"; address_env = \"X\";",
	  "address_env: give only one of address, address_file or address_env" },
};

START_TEST(test_conf_broken)
{
	char *text = util_printf("providers = ( { name = \"f\"; %s } );\n"
	    "alerts = ( { name = \"a\"; providers = [ \"f\" ]; sources = ( { kind = \"*\"; } ); } );\n",
	    broken[_i].provider);
	char *errors = NULL;
	struct conf *c = load(text, &errors);
	ck_assert_ptr_null(c);
	char *want = util_printf("%s/fluxrelay.conf:1: provider \"f\": %s\n", test_tmpdir,
	    broken[_i].want);
	ck_assert_str_eq(errors, want);
	free(want);
	free(errors);
	free(text);
}
END_TEST

START_TEST(test_headers_file_broken)
{
	char *hdrs = tmp_write("headers", "X-Ok: 1\nno colon here\nBad Name: 2\n");
	char *text = util_printf("providers = ( { name = \"f\"; type = \"generic\";\n"
	    " address = \"http://x\"; headers_file = \"%s\"; } );\n"
	    "alerts = ( { name = \"a\"; providers = [ \"f\" ]; sources = ( { kind = \"*\"; } ); } );\n",
	    hdrs);
	char *errors = NULL;
	struct conf *c = load(text, &errors);
	ck_assert_ptr_null(c);
	char *want = util_printf(
	    "%s/fluxrelay.conf:2: provider \"f\": headers_file line 2: %s: expected \"Name: value\"\n"
	    "%s/fluxrelay.conf:2: provider \"f\": headers_file line 3: \"Bad Name\" is not a valid "
	    "header name\n", test_tmpdir, hdrs, test_tmpdir);
	ck_assert_str_eq(errors, want);
	free(want);
	free(errors);
	free(text);
	free(hdrs);
}
END_TEST

START_TEST(test_classify)
{
	struct slack_result res;
	bool dup;
	struct slack_response r = { .status = 202, .body = "", .body_len = 0 };
	forward_classify(&r, false, 1000, &res, &dup);
	ck_assert_int_eq(res.outcome, SLACK_DELIVERED);
	ck_assert(!dup);
	/* notification-controller's duplicate: delivered, not retried. */
	r.status = 429;
	r.retry_after = "Wed, 01 May 2024 10:05:00 GMT";
	forward_classify(&r, true, 1000, &res, &dup);
	ck_assert_int_eq(res.outcome, SLACK_DELIVERED);
	ck_assert(dup);
	/* Any other 429: wait Retry-After. */
	r.retry_after = "7";
	forward_classify(&r, false, 1000, &res, &dup);
	ck_assert_int_eq(res.outcome, SLACK_RATE_LIMITED);
	ck_assert(!dup);
	ck_assert(res.retry_after == 7.0);
	r.retry_after = NULL;
	r.status = 503;
	forward_classify(&r, false, 1000, &res, &dup);
	ck_assert_int_eq(res.outcome, SLACK_TRANSIENT);
	r.status = 501;
	forward_classify(&r, false, 1000, &res, &dup);
	ck_assert_int_eq(res.outcome, SLACK_TRANSIENT);
	/* A 5xx with the reset header is still transient: only 429 means duplicate. */
	r.status = 500;
	forward_classify(&r, true, 1000, &res, &dup);
	ck_assert_int_eq(res.outcome, SLACK_TRANSIENT);
	ck_assert(!dup);
	r.status = 404;
	r.body = "not here";
	r.body_len = 8;
	forward_classify(&r, false, 1000, &res, &dup);
	ck_assert_int_eq(res.outcome, SLACK_PERMANENT);
	ck_assert_str_eq(res.error, "HTTP 404 not here");
	r.status = 413;
	forward_classify(&r, false, 1000, &res, &dup);
	ck_assert_int_eq(res.outcome, SLACK_PERMANENT);
	ck_assert_int_eq(res.oversize, 0);
	struct slack_response t = { .transport_error = 28, .transport_msg = "timed out" };
	forward_classify(&t, false, 1000, &res, &dup);
	ck_assert_int_eq(res.outcome, SLACK_TRANSIENT);
}
END_TEST

START_TEST(test_secrets_redacted)
{
	struct conf_header h[] = { { "Authorization", "Bearer hdr-secret-1" } };
	struct conf_provider p = { .name = "f", .type = CONF_PROVIDER_GENERIC_HMAC,
	    .url = "https://r.example/hook/seg-secret-2?tok=q-secret-3",
	    .headers = h, .nheaders = 1,
	    .hmac_key = (unsigned char *)"key-secret-4", .hmac_key_len = 12 };
	char **sec = forward_secrets(&p);
	ck_assert_ptr_nonnull(sec);
	struct slack_result res;
	bool dup;
	char *body = util_printf("echo %s %s %s", "Bearer hdr-secret-1", "key-secret-4",
	    "/hook/seg-secret-2?tok=q-secret-3");
	struct slack_response r = { .status = 400, .body = body, .body_len = strlen(body),
	    .secrets = sec };
	forward_classify(&r, false, 1000, &res, &dup);
	ck_assert_ptr_null(strstr(res.error, "secret"));
	ck_assert_ptr_nonnull(strstr(res.error, "[redacted]"));
	slack_secrets_free(sec);
	free(body);
}
END_TEST

static Suite *
forward_suite(void)
{
	Suite *s = suite_create("forward");
	TCase *tc = tcase_create("forward");
	tcase_add_checked_fixture(tc, tmp_setup, test_tmp_remove);
	tcase_add_test(tc, test_sign_vectors);
	tcase_add_test(tc, test_conf_and_headers);
	tcase_add_test(tc, test_quoted_header_names);
	tcase_add_loop_test(tc, test_conf_broken, 0, sizeof(broken) / sizeof(broken[0]));
	tcase_add_test(tc, test_headers_file_broken);
	tcase_add_test(tc, test_classify);
	tcase_add_test(tc, test_secrets_redacted);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(forward_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
