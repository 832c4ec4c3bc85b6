/*
 * Unit tests for backoff: the cap's doubling and ceiling, full-jitter range,
 * monotonicity, and freedom from overflow / inf / NaN for any attempt count.
 */
#include <check.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>

#include "backoff.h"

static const struct {
	double initial, max;
	unsigned attempt;
	double want;
} backoff_cap_cases[] = {
	{ 1, 300, 1, 1 },
	{ 1, 300, 2, 2 },
	{ 1, 300, 3, 4 },
	{ 1, 300, 8, 128 },
	{ 1, 300, 9, 256 },
	{ 1, 300, 10, 300 },          /* 512 capped */
	{ 1, 300, 11, 300 },
	{ 1, 300, 64, 300 },
	{ 1, 300, 1025, 300 },        /* 2^1024 would overflow a double */
	{ 1, 300, 2101, 300 },
	{ 1, 300, UINT_MAX, 300 },
	{ 1, 300, 0, 1 },             /* attempt 0 counts as 1 */
	{ 0.5, 10, 1, 0.5 },
	{ 0.5, 10, 4, 4 },
	{ 0.5, 10, 5, 8 },
	{ 0.5, 10, 6, 10 },
	{ 2.5, 300, 3, 10 },
	{ 5, 3, 1, 3 },               /* initial above max: max */
	{ 0, 300, 50, 0 },
	{ 1e-300, 1e300, UINT_MAX, 1e300 },
	{ 4.9e-324, DBL_MAX, 2100, DBL_MAX },  /* 2^-1074 * 2^2099 overflows */
	{ 4.9e-324, DBL_MAX, 1075, 1 },
	{ 1, INFINITY, UINT_MAX, DBL_MAX },   /* infinite max behaves as DBL_MAX */
	{ NAN, 300, 5, 0 },
	{ 1, NAN, 5, 0 },
	{ -1, 300, 5, 0 },
	{ 1, -5, 5, 0 },
};

START_TEST(test_backoff_cap_table)
{
	double got = backoff_cap(backoff_cap_cases[_i].initial,
	    backoff_cap_cases[_i].max, backoff_cap_cases[_i].attempt);
	ck_assert_msg(got == backoff_cap_cases[_i].want,
	    "case %d: backoff_cap(%g, %g, %u) = %g, want %g", _i,
	    backoff_cap_cases[_i].initial, backoff_cap_cases[_i].max,
	    backoff_cap_cases[_i].attempt, got, backoff_cap_cases[_i].want);
}
END_TEST

/* The cap never decreases as attempts grow, and stays finite and <= max. */
START_TEST(test_backoff_cap_monotone)
{
	static const double params[][2] = {
		{ 1, 300 }, { 0.1, 7 }, { 3, 86400 }, { 1e-9, 1e12 }, { 1, DBL_MAX },
	};
	for (size_t k = 0; k < sizeof(params) / sizeof(params[0]); k++) {
		double prev = 0;
		for (unsigned a = 1; a < 3000; a++) {
			double c = backoff_cap(params[k][0], params[k][1], a);
			ck_assert_msg(isfinite(c), "inf/nan at attempt %u", a);
			ck_assert_msg(c >= prev, "cap decreased at attempt %u: %g < %g", a, c, prev);
			ck_assert(c <= params[k][1]);
			prev = c;
		}
		/* and the largest attempts of all */
		for (unsigned a = UINT_MAX - 100; a != 0; a++) {
			double c = backoff_cap(params[k][0], params[k][1], a);
			ck_assert(isfinite(c));
			ck_assert(c == params[k][1]);
		}
	}
}
END_TEST

static const struct {
	double initial, max;
	unsigned attempt;
	double r01;
	double want;
} backoff_delay_cases[] = {
	{ 1, 300, 1, 0, 0 },
	{ 1, 300, 1, 0.5, 0.5 },
	{ 1, 300, 3, 0.25, 1 },
	{ 1, 300, 3, 0.75, 3 },
	{ 1, 300, 20, 0.5, 150 },      /* jitter applies to the capped value */
	{ 1, 300, UINT_MAX, 0.5, 150 },
	{ 2, 300, 4, 0.125, 2 },
	{ 1, 300, 5, -0.5, 0 },        /* out-of-range draws are clamped */
	{ 1, 300, 5, 1.5, 16 },
	{ 1, 300, 5, NAN, 0 },
	{ 1, 300, 5, INFINITY, 16 },
	{ 0, 300, 5, INFINITY, 0 },    /* 0 * inf must not become NaN */
};

START_TEST(test_backoff_delay_table)
{
	double got = backoff_delay(backoff_delay_cases[_i].initial,
	    backoff_delay_cases[_i].max, backoff_delay_cases[_i].attempt,
	    backoff_delay_cases[_i].r01);
	ck_assert_msg(got == backoff_delay_cases[_i].want,
	    "case %d: got %g, want %g", _i, got, backoff_delay_cases[_i].want);
}
END_TEST

/*
 * Full jitter: over [0, 1) draws the delay covers [0, cap) — it reaches
 * close to both ends and never leaves the range.
 */
START_TEST(test_backoff_delay_range)
{
	static const unsigned attempts[] = { 1, 2, 5, 9, 10, 30, 1000, UINT_MAX };
	for (size_t k = 0; k < sizeof(attempts) / sizeof(attempts[0]); k++) {
		double cap = backoff_cap(1, 300, attempts[k]);
		double lo = INFINITY, hi = -INFINITY;
		for (int i = 0; i < 1000; i++) {
			double r = i / 1000.0;
			double d = backoff_delay(1, 300, attempts[k], r);
			ck_assert(isfinite(d));
			ck_assert_msg(d >= 0 && d <= cap, "delay %g outside [0, %g]", d, cap);
			ck_assert_msg(fabs(d - cap * r) <= cap * 1e-12, "delay not proportional to r");
			if (d < lo)
				lo = d;
			if (d > hi)
				hi = d;
		}
		ck_assert(lo == 0);
		ck_assert(hi >= cap * 0.99);
		/* the largest draw below 1 stays below the cap too */
		ck_assert(backoff_delay(1, 300, attempts[k], nextafter(1.0, 0.0)) <= cap);
	}
}
END_TEST

static Suite *
backoff_suite(void)
{
	Suite *s = suite_create("backoff");
	TCase *tc = tcase_create("core");
	tcase_add_loop_test(tc, test_backoff_cap_table, 0,
	    (int)(sizeof(backoff_cap_cases) / sizeof(backoff_cap_cases[0])));
	tcase_add_test(tc, test_backoff_cap_monotone);
	tcase_add_loop_test(tc, test_backoff_delay_table, 0,
	    (int)(sizeof(backoff_delay_cases) / sizeof(backoff_delay_cases[0])));
	tcase_add_test(tc, test_backoff_delay_range);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(backoff_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
