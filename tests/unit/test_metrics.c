/* Unit tests for metrics: counters, histograms and the text exposition. */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "util.h"

static char *
render(void)
{
	struct util_buf b = {0};
	metrics_render(&b);
	return b.data;
}

START_TEST(test_counters)
{
	metrics_event(METRICS_EVENT_ACCEPTED);
	metrics_event(METRICS_EVENT_ACCEPTED);
	metrics_event(METRICS_EVENT_IGNORED);
	metrics_http(202, 0.0007);
	metrics_http(202, 0.2);
	metrics_http(400, 20);
	metrics_delivery("slack", METRICS_DELIVERED, 3);
	metrics_delivery("slack", METRICS_DEAD, 1);
	metrics_delivery("we\"ird", METRICS_RETRIED, 2);
	metrics_delivery_latency("slack", 0.3);
	char *out = render();
	ck_assert_ptr_nonnull(strstr(out, "# TYPE fluxrelay_events_received_total counter\n"));
	ck_assert_ptr_nonnull(strstr(out, "fluxrelay_events_received_total{status=\"accepted\"} 2\n"));
	ck_assert_ptr_nonnull(strstr(out, "fluxrelay_events_received_total{status=\"ignored\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(out, "fluxrelay_events_received_total{status=\"rejected\"} 0\n"));
	ck_assert_ptr_nonnull(strstr(out, "fluxrelay_http_requests_total{code=\"202\"} 2\n"));
	ck_assert_ptr_nonnull(strstr(out, "fluxrelay_http_requests_total{code=\"400\"} 1\n"));
	/* Buckets are cumulative: 0.0007 is under 0.001, 0.2 under 0.25, 20 only in +Inf. */
	ck_assert_ptr_nonnull(strstr(out, "fluxrelay_http_request_duration_seconds_bucket{le=\"0.0005\"} 0\n"));
	ck_assert_ptr_nonnull(strstr(out, "fluxrelay_http_request_duration_seconds_bucket{le=\"0.001\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(out, "fluxrelay_http_request_duration_seconds_bucket{le=\"0.25\"} 2\n"));
	ck_assert_ptr_nonnull(strstr(out, "fluxrelay_http_request_duration_seconds_bucket{le=\"10\"} 2\n"));
	ck_assert_ptr_nonnull(strstr(out, "fluxrelay_http_request_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
	ck_assert_ptr_nonnull(strstr(out, "fluxrelay_http_request_duration_seconds_count 3\n"));
	ck_assert_ptr_nonnull(strstr(out, "fluxrelay_http_request_duration_seconds_sum 20.200700\n"));
	ck_assert_ptr_nonnull(strstr(out, "fluxrelay_deliveries_total{provider=\"slack\",result=\"delivered\"} 3\n"));
	ck_assert_ptr_nonnull(strstr(out, "fluxrelay_deliveries_total{provider=\"slack\",result=\"dead\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(out, "fluxrelay_deliveries_total{provider=\"we\\\"ird\",result=\"retried\"} 2\n"));
	ck_assert_ptr_nonnull(strstr(out, "fluxrelay_delivery_latency_seconds_bucket{provider=\"slack\",le=\"0.5\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(out, "fluxrelay_build_info{version=\""));
	ck_assert_ptr_nonnull(strstr(out, "# TYPE fluxrelay_queue_pending gauge\n"));
	/* Every metric family has HELP and TYPE. */
	const char *names[] = { "build_info", "events_received_total", "http_requests_total",
		"http_request_duration_seconds", "deliveries_total", "queue_pending", "queue_dead",
		"delivery_latency_seconds" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char help[128], type[128];
		snprintf(help, sizeof(help), "# HELP fluxrelay_%s ", names[i]);
		snprintf(type, sizeof(type), "# TYPE fluxrelay_%s ", names[i]);
		ck_assert_msg(strstr(out, help) != NULL, "no HELP for %s", names[i]);
		ck_assert_msg(strstr(out, type) != NULL, "no TYPE for %s", names[i]);
	}
	free(out);
}
END_TEST

/* SPEC §10: every configured provider's series exist at 0 from start-up. */
/* notifications_total: every kind at 0 once an alert is known; merged counts once per alert. */
START_TEST(test_notifications)
{
	metrics_alert("errors");
	metrics_alert("we\"ird");
	char *out = render();
	const char *kinds[] = { "event", "opened", "reminder", "recovered", "reply" };
	ck_assert_ptr_nonnull(strstr(out, "# TYPE fluxrelay_notifications_total counter\n"));
	ck_assert_ptr_nonnull(strstr(out, "# HELP fluxrelay_notifications_total "));
	for (size_t k = 0; k < 5; k++) {
		char line[128];
		snprintf(line, sizeof(line), "fluxrelay_notifications_total{alert=\"errors\",kind=\"%s\"} 0\n",
		    kinds[k]);
		ck_assert_msg(strstr(out, line) != NULL, "no %s", line);
		snprintf(line, sizeof(line), "fluxrelay_notifications_total{alert=\"we\\\"ird\",kind=\"%s\"} 0\n",
		    kinds[k]);
		ck_assert_msg(strstr(out, line) != NULL, "no %s", line);
	}
	free(out);

	metrics_notification("errors,changes", METRICS_KIND_OPENED);
	metrics_notification("errors", METRICS_KIND_OPENED);
	metrics_notification("changes", METRICS_KIND_RECOVERED);
	metrics_notification("errors,,", 99);          /* out of range: an event */
	metrics_notification(NULL, METRICS_KIND_REPLY);
	metrics_notification("changes", METRICS_KIND_REPLY);   /* a reply in a thread */
	out = render();
	ck_assert_ptr_nonnull(strstr(out, "fluxrelay_notifications_total{alert=\"errors\",kind=\"opened\"} 2\n"));
	ck_assert_ptr_nonnull(strstr(out, "fluxrelay_notifications_total{alert=\"errors\",kind=\"event\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(out, "fluxrelay_notifications_total{alert=\"changes\",kind=\"opened\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(out, "fluxrelay_notifications_total{alert=\"changes\",kind=\"recovered\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(out, "fluxrelay_notifications_total{alert=\"changes\",kind=\"event\"} 0\n"));
	ck_assert_ptr_nonnull(strstr(out, "fluxrelay_notifications_total{alert=\"changes\",kind=\"reply\"} 1\n"));
	ck_assert_ptr_null(strstr(out, "alert=\"\""));
	free(out);
}
END_TEST

START_TEST(test_provider_series_at_zero)
{
	metrics_provider("quiet");
	char *out = render();
	static const char *const want[] = {
		"fluxrelay_queue_pending{provider=\"quiet\"} 0\n",
		"fluxrelay_queue_dead{provider=\"quiet\"} 0\n",
		"fluxrelay_deliveries_total{provider=\"quiet\",result=\"delivered\"} 0\n",
		"fluxrelay_deliveries_total{provider=\"quiet\",result=\"retried\"} 0\n",
		"fluxrelay_deliveries_total{provider=\"quiet\",result=\"rate_limited\"} 0\n",
		"fluxrelay_deliveries_total{provider=\"quiet\",result=\"dead\"} 0\n",
		"fluxrelay_delivery_latency_seconds_count{provider=\"quiet\"} 0\n",
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		ck_assert_msg(strstr(out, want[i]) != NULL, "missing %s", want[i]);
	free(out);
}
END_TEST

/* The gauges live in memory: added to by the queue's threads, re-synced
 * from a count of the database; rendering reads no database. */
START_TEST(test_queue_gauges)
{
	metrics_provider("a");
	metrics_queue_add("a", 5, 0);
	metrics_queue_add("a", -2, 2);
	metrics_queue_add("b", 1, 0);
	char *out = render();
	ck_assert_ptr_nonnull(strstr(out, "fluxrelay_queue_pending{provider=\"a\"} 3\n"));
	ck_assert_ptr_nonnull(strstr(out, "fluxrelay_queue_dead{provider=\"a\"} 2\n"));
	ck_assert_ptr_nonnull(strstr(out, "fluxrelay_queue_pending{provider=\"b\"} 1\n"));
	free(out);
	/* A sync sets every known provider: absent from the count means 0. */
	const char *names[] = { "b", "c\"q" };
	int64_t pending[] = { 7, 1 }, dead[] = { 0, 4 };
	metrics_queue_sync(names, pending, dead, 2);
	out = render();
	ck_assert_ptr_nonnull(strstr(out, "fluxrelay_queue_pending{provider=\"a\"} 0\n"));
	ck_assert_ptr_nonnull(strstr(out, "fluxrelay_queue_dead{provider=\"a\"} 0\n"));
	ck_assert_ptr_nonnull(strstr(out, "fluxrelay_queue_pending{provider=\"b\"} 7\n"));
	ck_assert_ptr_nonnull(strstr(out, "fluxrelay_queue_dead{provider=\"c\\\"q\"} 4\n"));
	free(out);
	/* Never negative on the page (an add racing a sync). */
	metrics_queue_add("a", -3, 0);
	out = render();
	ck_assert_ptr_nonnull(strstr(out, "fluxrelay_queue_pending{provider=\"a\"} 0\n"));
	free(out);
}
END_TEST

/* Slots are claimed by some threads while others render (no lock on the
 * render path): names are complete whenever seen (run under TSan to see
 * the race this used to be). Beyond the table, providers share "other". */
static void *
test_claimer(void *arg)
{
	int base = *(int *)arg;
	for (int i = 0; i < 40; i++) {
		char name[32];
		snprintf(name, sizeof(name), "provider-%02d-%02d", base, i);
		metrics_provider(name);
		metrics_queue_add(name, 1, 0);
	}
	return NULL;
}

START_TEST(test_concurrent_claims)
{
	pthread_t th[2];
	int base[2] = { 1, 2 };
	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, test_claimer, &base[i]);
	for (int k = 0; k < 50; k++) {
		char *out = render();
		/* every provider label seen is a whole name */
		for (const char *p = out; (p = strstr(p, "provider=\"provider-")) != NULL; p++)
			ck_assert_msg(p[strlen("provider=\"provider-00-00")] == '"', "torn name");
		free(out);
	}
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	char *out = render();
	ck_assert_ptr_nonnull(strstr(out, "{provider=\"other\"}"));
	free(out);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("metrics");
	tcase_add_test(tc, test_counters);
	tcase_add_test(tc, test_notifications);
	tcase_add_test(tc, test_provider_series_at_zero);
	tcase_add_test(tc, test_queue_gauges);
	tcase_add_test(tc, test_concurrent_claims);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
