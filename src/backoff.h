/*
 * backoff: exponential backoff with full jitter (fluxrelay.conf(5), QUEUE).
 * Pure: the random draw is passed in so tests are deterministic.
 */
#ifndef FLUXRELAY_BACKOFF_H
#define FLUXRELAY_BACKOFF_H

/*
 * Delay in seconds before attempt number attempt+1, after `attempt` (>= 1)
 * transient failures: uniform in [0, min(max, initial * 2^(attempt-1))],
 * r01 being a uniform draw in [0, 1) (values outside are clamped to [0, 1]).
 */
double backoff_delay(double initial, double max, unsigned attempt, double r01);

/*
 * Cap without jitter: min(max, initial * 2^(attempt-1)); never overflows.
 * Attempt 0 counts as 1. Negative or NaN durations count as 0, infinite ones
 * as DBL_MAX, so the result is always finite and in [0, max].
 */
double backoff_cap(double initial, double max, unsigned attempt);

#endif
