/*
 * thread: what the daemon's threads share: a condition variable on the
 * monotonic clock, a bounded wait on it, a named thread's start. The queue
 * writer, the delivery thread and its recorder use it. Any thread.
 */
#ifndef FLUXRELAY_THREAD_H
#define FLUXRELAY_THREAD_H

#include <pthread.h>
#include <stddef.h>

/* pthread_cond_init on CLOCK_MONOTONIC, so waits ignore wall-clock steps. */
void thread_cond_init(pthread_cond_t *cond);

/*
 * Wait on cond (lock held, cond made by thread_cond_init) until signalled or
 * for at most seconds (> 0); spurious wake-ups return too.
 */
void thread_cond_wait(pthread_cond_t *cond, pthread_mutex_t *lock, double seconds);

/*
 * Start main(arg) as a thread named name (at most 15 characters: top -H,
 * perf). 0, or -1 with err "cannot start <what>: <reason>".
 */
int thread_start(pthread_t *thread, void *(*main)(void *), void *arg, const char *name,
    const char *what, char *err, size_t errlen);

#endif
