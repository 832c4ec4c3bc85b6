/*
 * thread: a condition variable on the monotonic clock, a bounded wait on it,
 * a named thread's start (thread.h).
 */
#include "thread.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

void
thread_cond_init(pthread_cond_t *cond)
{
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(cond, &ca);
	pthread_condattr_destroy(&ca);
}

void
thread_cond_wait(pthread_cond_t *cond, pthread_mutex_t *lock, double seconds)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	double end = (double)ts.tv_nsec / 1e9 + seconds;
	ts.tv_sec += (time_t)end;
	ts.tv_nsec = (long)((end - floor(end)) * 1e9);
	pthread_cond_timedwait(cond, lock, &ts);
}

int
thread_start(pthread_t *thread, void *(*main)(void *), void *arg, const char *name,
    const char *what, char *err, size_t errlen)
{
	int rc = pthread_create(thread, NULL, main, arg);
	if (rc != 0) {
		snprintf(err, errlen, "cannot start %s: %s", what, strerror(rc));
		return -1;
	}
	pthread_setname_np(*thread, name);
	return 0;
}
