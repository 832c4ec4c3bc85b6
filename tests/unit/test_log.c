/* Unit tests for log: logfmt quoting, JSON records, level filtering. */
#include <check.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

/* Run fn with stderr redirected to a temp file; return what was written. */
static char *
capture(void (*fn)(void))
{
	char path[] = "/tmp/frtest-log-XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	int saved = dup(2);
	dup2(fd, 2);
	fn();
	dup2(saved, 2);
	close(saved);
	close(fd);
	char err[256];
	char *out = util_read_file(path, NULL, err, sizeof(err));
	unlink(path);
	ck_assert_ptr_nonnull(out);
	return out;
}

static void
emit_logfmt(void)
{
	log_setup(LOG_LEVEL_INFO, LOG_FORMAT_LOGFMT);
	log_info("event accepted", "id", "abc", "msg2", "has space", "q", "a\"b", "empty", "", NULL);
	log_debug("hidden", NULL);
}

START_TEST(test_logfmt)
{
	char *out = capture(emit_logfmt);
	ck_assert_ptr_nonnull(strstr(out, " level=info msg=\"event accepted\" id=abc "
	    "msg2=\"has space\" q=\"a\\\"b\" empty=\"\"\n"));
	ck_assert_ptr_nonnull(strstr(out, "time="));
	ck_assert_ptr_null(strstr(out, "hidden"));
	ck_assert_ptr_null(strchr(strchr(out, '\n') + 1, '\n'));   /* exactly one line */
	free(out);
}
END_TEST

static void
emit_json(void)
{
	log_setup(LOG_LEVEL_DEBUG, LOG_FORMAT_JSON);
	log_debug("shown", "k", "line1\nline2", "ctl", "\x01", NULL);
	log_setup(LOG_LEVEL_INFO, LOG_FORMAT_LOGFMT);
}

START_TEST(test_json)
{
	char *out = capture(emit_json);
	json_error_t e;
	json_t *doc = json_loads(out, JSON_DISABLE_EOF_CHECK, &e);
	ck_assert_msg(doc != NULL, "not JSON: %s", out);
	ck_assert_str_eq(json_string_value(json_object_get(doc, "level")), "debug");
	ck_assert_str_eq(json_string_value(json_object_get(doc, "msg")), "shown");
	ck_assert_str_eq(json_string_value(json_object_get(doc, "k")), "line1\nline2");
	ck_assert_str_eq(json_string_value(json_object_get(doc, "ctl")), "\x01");
	json_decref(doc);
	free(out);
}
END_TEST

START_TEST(test_parse)
{
	ck_assert_int_eq(log_level_parse("debug"), LOG_LEVEL_DEBUG);
	ck_assert_int_eq(log_level_parse("warn"), LOG_LEVEL_WARN);
	ck_assert_int_eq(log_level_parse("error"), LOG_LEVEL_ERROR);
	ck_assert_int_eq(log_level_parse("verbose"), -1);
	ck_assert_int_eq(log_format_parse("json"), LOG_FORMAT_JSON);
	ck_assert_int_eq(log_format_parse("logfmt"), LOG_FORMAT_LOGFMT);
	ck_assert_int_eq(log_format_parse("xml"), -1);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("log");
	tcase_add_test(tc, test_logfmt);
	tcase_add_test(tc, test_json);
	tcase_add_test(tc, test_parse);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
