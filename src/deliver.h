/*
 * deliver: the delivery thread (SPEC §8). Owns its own queue connection and a
 * curl multi handle; per target: FIFO order, token bucket, coalescing,
 * classification, backoff, dead letters. The console provider prints each
 * payload as one JSON line on standard output.
 */
#ifndef FLUXRELAY_DELIVER_H
#define FLUXRELAY_DELIVER_H

#include "conf.h"

struct deliver;

/*
 * Start the thread on state_dir's queue with the given configuration (which
 * must stay alive until replaced by deliver_set_conf or deliver_stop).
 */
struct deliver *deliver_start(const char *state_dir, const struct conf *c, char *err,
    size_t errlen);
/* New rows may be due: wake the thread. Any thread; never blocks. */
void deliver_wake(struct deliver *d);
/* Swap the configuration (reload). Returns once the thread no longer uses the old one. */
void deliver_set_conf(struct deliver *d, const struct conf *c);
/* Let attempts in flight finish (within their timeout), stop, free. Accepts NULL. */
void deliver_stop(struct deliver *d);

#endif
