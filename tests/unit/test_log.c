/* Unit tests for log: logfmt quoting, JSON records, level filtering, and
 * log_setup on reload while other threads log (a data race before level and
 * format were atomics: the ThreadSanitizer step of scripts/test reports it). */
#include <check.h>
#include <pthread.h>
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

/* What main_reload does on SIGHUP while HTTP and delivery threads log. */
static void *
reload_loop(void *arg)
{
	(void)arg;
	for (int i = 0; i < 20000; i++)
		log_setup(i % 2 ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARN,
		    i % 3 ? LOG_FORMAT_JSON : LOG_FORMAT_LOGFMT);
	return NULL;
}

static void
log_while_reloading(void)
{
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, reload_loop, NULL), 0);
	int shown = 0;
	for (int i = 0; i < 20000; i++) {
		shown += log_enabled(LOG_LEVEL_INFO);
		if (i % 100 == 0)
			log_warn("while reloading", "i", "x", NULL);
	}
	pthread_join(t, NULL);
	log_setup(LOG_LEVEL_INFO, LOG_FORMAT_LOGFMT);
	(void)shown;
}

START_TEST(test_setup_while_logging)
{
	char *out = capture(log_while_reloading);
	/* Every record is whole, in one format or the other. */
	for (char *line = out; *line != '\0';) {
		char *nl = strchr(line, '\n');
		ck_assert_ptr_nonnull(nl);
		ck_assert_msg(strncmp(line, "time=", 5) == 0 || strncmp(line, "{\"time\":", 8) == 0,
		    "%.*s", (int)(nl - line), line);
		line = nl + 1;
	}
	free(out);
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
	tcase_add_test(tc, test_setup_while_logging);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
