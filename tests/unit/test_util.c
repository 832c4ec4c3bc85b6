/* Unit tests for util: buffers, redaction, ids, hex, constant-time compare, files. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

START_TEST(test_buf)
{
	struct util_buf b = {0};
	for (int i = 0; i < 1000; i++)
		util_buf_printf(&b, "%d,", i);
	ck_assert_uint_eq(b.len, strlen(b.data));
	ck_assert(strncmp(b.data, "0,1,2,", 6) == 0);
	ck_assert(strcmp(b.data + b.len - 4, "999,") == 0);
	util_buf_free(&b);
	ck_assert_ptr_null(b.data);
}
END_TEST

static const struct {
	const char *url, *want;
} redact_cases[] = {
	{ "https://hooks.slack.com/services/T000/B000/XXXXSECRET",
	  "https://hooks.slack.com/services/T…/B…/…" },
	{ "http://127.0.0.1:8080/hook/abc", "http://127.0.0.1:8080/hook/…" },
	{ "https://user:pw@example.com/x/y", "https://example.com/x/…" },
	{ "https://slack.com/api", "https://slack.com/api" },
	{ "not a url", "…" },
};

START_TEST(test_redact)
{
	char *got = util_redact_url(redact_cases[_i].url);
	ck_assert_str_eq(got, redact_cases[_i].want);
	free(got);
}
END_TEST

START_TEST(test_redact_hides_secret)
{
	const char *url = "https://hooks.slack.com/services/TABCDEF/BGHIJKL/supersecretvalue";
	char *got = util_redact_url(url);
	ck_assert_ptr_null(strstr(got, "supersecret"));
	ck_assert_ptr_null(strstr(got, "ABCDEF"));
	free(got);
}
END_TEST

START_TEST(test_ids)
{
	char a[33], b[33];
	util_new_id(a);
	util_new_id(b);
	ck_assert_uint_eq(strlen(a), 32);
	ck_assert_str_ne(a, b);
	ck_assert_uint_eq(strspn(a, "0123456789abcdef"), 32);
}
END_TEST

START_TEST(test_ct_equal)
{
	ck_assert(util_ct_equal("abcd", "abcd", 4));
	ck_assert(!util_ct_equal("abcd", "abce", 4));
	ck_assert(!util_ct_equal("xbcd", "abcd", 4));
	ck_assert(util_ct_equal("", "", 0));
}
END_TEST

START_TEST(test_read_file)
{
	char path[] = "/tmp/frtest-util-XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	char big[10000];
	memset(big, 'x', sizeof(big));
	ck_assert_int_eq(write(fd, big, sizeof(big)), (int)sizeof(big));
	close(fd);
	char err[256];
	size_t len = 0;
	char *data = util_read_file(path, &len, err, sizeof(err));
	ck_assert_ptr_nonnull(data);
	ck_assert_uint_eq(len, sizeof(big));
	ck_assert_int_eq(data[len], '\0');
	free(data);
	unlink(path);
	ck_assert_ptr_null(util_read_file(path, &len, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "cannot open"));
	ck_assert_ptr_null(util_read_file("/tmp", &len, err, sizeof(err)));
}
END_TEST

static const struct {
	const char *s;
	size_t n, want;
} utf8_cases[] = {
	{ "a", 1, 1 },
	{ "\xc3\xa9", 2, 2 },               /* é */
	{ "\xe2\x82\xac", 3, 3 },           /* € */
	{ "\xf0\x9f\x9a\x80", 4, 4 },       /* 🚀 */
	{ "\xf4\x8f\xbf\xbf", 4, 4 },       /* U+10FFFF */
	{ "\xc3", 1, 0 },                   /* truncated */
	{ "\xe2\x82", 2, 0 },
	{ "\xc0\xaf", 2, 0 },               /* overlong '/' */
	{ "\xc1\xbf", 2, 0 },
	{ "\xe0\x80\xaf", 3, 0 },           /* overlong */
	{ "\xf0\x80\x80\xaf", 4, 0 },       /* overlong */
	{ "\xed\xa0\x80", 3, 0 },           /* U+D800 surrogate */
	{ "\xed\x9f\xbf", 3, 3 },           /* U+D7FF */
	{ "\xf4\x90\x80\x80", 4, 0 },       /* U+110000 */
	{ "\xf5\x80\x80\x80", 4, 0 },
	{ "\x80", 1, 0 },                   /* lone continuation */
	{ "\xc3\x28", 2, 0 },               /* bad continuation */
	{ "\xff", 1, 0 },
};

START_TEST(test_utf8_len)
{
	ck_assert_uint_eq(util_utf8_len((const unsigned char *)utf8_cases[_i].s, utf8_cases[_i].n),
	    utf8_cases[_i].want);
}
END_TEST

static const struct {
	const char *hex;
	int rc;
	const char *want;   /* the bytes decoded, when rc is 0 */
} hex_cases[] = {
	{ "", 0, "" },
	{ "00ff7F", 0, "\x00\xff\x7f" },
	{ "AbCd", 0, "\xab\xcd" },
	{ "0g", -1, NULL },
	{ "g0", -1, NULL },
	{ "12 4", -1, NULL },
	{ "-1", -1, NULL },
};

START_TEST(test_hex_decode)
{
	unsigned char out[8];
	size_t n = strlen(hex_cases[_i].hex) / 2;
	ck_assert_int_eq(util_hex_decode(hex_cases[_i].hex, n, out), hex_cases[_i].rc);
	if (hex_cases[_i].rc == 0)
		ck_assert_mem_eq(out, hex_cases[_i].want, n);
}
END_TEST

START_TEST(test_entity_len)
{
	ck_assert_uint_eq(util_entity_len("&amp;x", 6), 5);
	ck_assert_uint_eq(util_entity_len("&lt;", 4), 4);
	ck_assert_uint_eq(util_entity_len("&gt;", 4), 4);
	ck_assert_uint_eq(util_entity_len("&amp", 4), 0);      /* cut short */
	ck_assert_uint_eq(util_entity_len("&amp;", 4), 0);     /* only n bytes count */
	ck_assert_uint_eq(util_entity_len("&quot;", 6), 0);    /* not Slack's */
	ck_assert_uint_eq(util_entity_len("a&lt;", 5), 0);
}
END_TEST

START_TEST(test_hex_digit)
{
	for (int c = 0; c < 256; c++) {
		const char *digits = "0123456789abcdef";
		const char *at = c != 0 ? strchr(digits, c | (c >= 'A' && c <= 'F' ? 0x20 : 0)) : NULL;
		ck_assert_int_eq(util_hex_digit(c), at != NULL ? (int)(at - digits) : -1);
	}
}
END_TEST

START_TEST(test_json_string)
{
	struct util_buf b = {0};
	util_buf_json_string(&b, "a\"b\\c\nd\x01\te");
	ck_assert_str_eq(b.data, "\"a\\\"b\\\\c\\nd\\u0001\\u0009e\"");
	util_buf_free(&b);
}
END_TEST

START_TEST(test_clocks)
{
	double a = util_mono(), b = util_mono();
	ck_assert(b >= a);
	ck_assert(util_now() > 1.6e9);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("util");
	TCase *tc = tcase_create("util");
	tcase_add_test(tc, test_buf);
	tcase_add_loop_test(tc, test_redact, 0, sizeof(redact_cases) / sizeof(redact_cases[0]));
	tcase_add_test(tc, test_redact_hides_secret);
	tcase_add_test(tc, test_ids);
	tcase_add_test(tc, test_ct_equal);
	tcase_add_test(tc, test_read_file);
	tcase_add_test(tc, test_clocks);
	tcase_add_loop_test(tc, test_utf8_len, 0, sizeof(utf8_cases) / sizeof(utf8_cases[0]));
	tcase_add_test(tc, test_json_string);
	tcase_add_loop_test(tc, test_hex_decode, 0, sizeof(hex_cases) / sizeof(hex_cases[0]));
	tcase_add_test(tc, test_hex_digit);
	tcase_add_test(tc, test_entity_len);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
