/*
 * runtime: the configuration in force, as an immutable, reference-counted
 * snapshot of conf + compiled rules. HTTP threads take a reference per
 * request; SIGHUP installs a new snapshot atomically, and the old one is freed
 * when its last request finishes.
 */
#ifndef FLUXRELAY_RUNTIME_H
#define FLUXRELAY_RUNTIME_H

#include "conf.h"
#include "rules.h"

struct runtime {
	struct conf *conf;
	struct rules *rules;
	int refs;             /* guarded by the runtime lock in runtime.c */
};

/* Take ownership of c and compile its rules; NULL with err on failure (c freed). */
struct runtime *runtime_new(struct conf *c, char *err, size_t errlen);
/* Make rt current (takes the caller's reference). */
void runtime_install(struct runtime *rt);
/* A new reference to the current snapshot (NULL before the first install). */
struct runtime *runtime_acquire(void);
/* Drop a reference; the last one frees. Accepts NULL. */
void runtime_release(struct runtime *rt);

#endif
