/*
 * backoff: exponential backoff with full jitter (SPEC §8): the cap doubles
 * per transient failure up to backoff_max, and the actual delay is drawn
 * uniformly below the cap so that many deliveries failing together (one
 * Slack outage) do not retry in lockstep.
 *
 * Invariants: the result is always finite and within [0, max] for any input,
 * including attempt up to UINT_MAX and nonsense (negative, NaN, infinite)
 * durations, which are clamped rather than trusted. Pure: the caller passes
 * the random draw, so any thread may call it and tests are deterministic.
 */
#include "backoff.h"

#include <float.h>
#include <math.h>

/* Clamp a duration to a finite, non-negative value (NaN and negatives -> 0). */
static double
backoff_sane(double v)
{
	if (!(v > 0))           /* also catches NaN */
		return 0;
	if (v > DBL_MAX)
		return DBL_MAX;
	return v;
}

/*
 * min(max, initial * 2^(attempt-1)). Attempt 0 is treated as 1. The doubling
 * is done with ldexp on a bounded exponent: beyond 2^2100 even the smallest
 * positive double exceeds DBL_MAX, so any larger exponent is simply "max".
 */
double
backoff_cap(double initial, double max, unsigned attempt)
{
	double init = backoff_sane(initial);
	double hi = backoff_sane(max);
	unsigned e = attempt > 0 ? attempt - 1 : 0;

	if (init >= hi)
		return hi;
	if (init == 0)
		return 0;
	if (e > 2100)
		return hi;
	double v = ldexp(init, (int)e);
	if (!(v < hi))          /* overflowed to inf, or simply above the cap */
		return hi;
	return v;
}

/*
 * Full jitter: cap * r01. r01 outside [0, 1) is clamped (NaN -> 0), so a bad
 * random source can at worst give 0 or the cap, never more.
 */
double
backoff_delay(double initial, double max, unsigned attempt, double r01)
{
	double cap = backoff_cap(initial, max, attempt);
	double r = r01;

	if (!(r > 0))
		r = 0;
	if (r > 1)
		r = 1;
	double d = cap * r;
	return d > cap ? cap : d;
}
