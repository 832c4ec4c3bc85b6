/* Unit tests for metrics: counters, histograms and the text exposition. */
#include <check.h>
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

int
main(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("metrics");
	tcase_add_test(tc, test_counters);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
