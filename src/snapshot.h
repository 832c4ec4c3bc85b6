/*
 * snapshot: the configuration in force, as an immutable, reference-counted
 * snapshot of conf + compiled rules. HTTP threads take a reference per
 * request; SIGHUP installs a new snapshot atomically (every acquire that
 * starts after snapshot_install returns gets the new one), and the old one is
 * freed when its last reference is dropped.
 *
 * Threads: snapshot_acquire and snapshot_release from any thread, without a
 * lock (HTTP threads call them once per request each); snapshot_new and
 * snapshot_install from the main thread (install waits, briefly, for the
 * acquires in progress: see snapshot.c).
 */
#ifndef FLUXRELAY_SNAPSHOT_H
#define FLUXRELAY_SNAPSHOT_H

#include <stdatomic.h>

#include "conf.h"
#include "rules.h"

struct snapshot {
	struct conf *conf;
	struct rules *rules;
	/* Written twice per request by every HTTP thread: kept off the cache
	 * line of conf and rules, which every request reads. */
	char pad[64];
	atomic_long refs;
};

/* Take ownership of c and compile its rules; NULL with err on failure (c freed). */
struct snapshot *snapshot_new(struct conf *c, char *err, size_t errlen);
/* Make snap current (takes the caller's reference); NULL at shutdown. */
void snapshot_install(struct snapshot *snap);
/* A new reference to the current snapshot (NULL before the first install). */
struct snapshot *snapshot_acquire(void);
/* Drop a reference; the last one frees. Accepts NULL. */
void snapshot_release(struct snapshot *snap);

#endif
