/*
 * snapshot: the configuration in force, as an immutable, reference-counted
 * snapshot of conf + compiled rules. HTTP threads take a reference per
 * request; SIGHUP installs a new snapshot atomically, and the old one is freed
 * when its last request finishes.
 */
#ifndef FLUXRELAY_SNAPSHOT_H
#define FLUXRELAY_SNAPSHOT_H

#include "conf.h"
#include "rules.h"

struct snapshot {
	struct conf *conf;
	struct rules *rules;
	int refs;             /* guarded by snapshot_lock in snapshot.c */
};

/* Take ownership of c and compile its rules; NULL with err on failure (c freed). */
struct snapshot *snapshot_new(struct conf *c, char *err, size_t errlen);
/* Make snap current (takes the caller's reference). */
void snapshot_install(struct snapshot *snap);
/* A new reference to the current snapshot (NULL before the first install). */
struct snapshot *snapshot_acquire(void);
/* Drop a reference; the last one frees. Accepts NULL. */
void snapshot_release(struct snapshot *snap);

#endif
