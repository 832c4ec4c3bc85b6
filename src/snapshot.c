/*
 * snapshot: see snapshot.h.
 *
 * Why no lock: every HTTP thread acquires and releases a snapshot once per
 * request. Under a mutex (as before), a thread preempted while holding it
 * for its few instructions stalled every other HTTP thread that asked for
 * it, for as long as the holder waited for a CPU: milliseconds on a loaded
 * 2-core machine, on every connection those threads serve (bench/README.md,
 * issue 12). Now acquire and release are a few atomic instructions that
 * never wait.
 *
 * The one hazard of a lock-free acquire is the gap between reading the
 * current pointer and counting the new reference: an install in that gap
 * could drop the last reference and free the snapshot before the count is
 * taken. A grace period closes it, in the manner of RCU:
 *
 *   acquire:  readers++ ; s = current ; s->refs++ ; readers--
 *   install:  old = exchange(current, new) ; wait until readers == 0 ;
 *             release(old)
 *
 * After the exchange no acquire can read old any more; an acquire that did
 * read it is inside its readers++ ... readers-- window, so once readers has
 * been seen at 0 every such acquire has counted its reference, and dropping
 * the installer's own reference can no longer free a snapshot in use. The
 * window is four instructions, so the wait is short; only the main thread,
 * on SIGHUP, ever waits (yielding the CPU, so that a reader preempted in the
 * window can finish). All these operations are sequentially consistent
 * atomics, and on x86 they cost what the old lock/unlock did, minus the
 * sleeping.
 *
 * The last release frees, whichever thread it is on; a request holds its
 * reference from its headers to its completion, so no request ever sees a
 * freed configuration, and a request that began before a reload finishes
 * with the configuration it began with.
 */
#include "snapshot.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>

#include "util.h"

/*
 * current: the current snapshot (holding one reference), read by every
 * request. readers: the acquires between their readers++ and readers--,
 * written twice per request. Each on a cache line of its own, so that the
 * writes to readers do not evict current (or anything else) from the other
 * cores' caches.
 */
static struct {
	_Alignas(64) _Atomic(struct snapshot *) current;
	_Alignas(64) atomic_long readers;
	_Alignas(64) char end;
} snapshot_g;
/* Installs one at a time (main only, in practice). */
static pthread_mutex_t snapshot_install_lock = PTHREAD_MUTEX_INITIALIZER;

struct snapshot *
snapshot_new(struct conf *c, char *err, size_t errlen)
{
	struct rules *r = rules_new(c, err, errlen);
	if (r == NULL) {
		conf_free(c);
		return NULL;
	}
	struct snapshot *snap = util_calloc(1, sizeof(*snap));
	snap->conf = c;
	snap->rules = r;
	atomic_init(&snap->refs, 1);
	return snap;
}

static void
snapshot_free(struct snapshot *snap)
{
	rules_free(snap->rules);
	conf_free(snap->conf);
	free(snap);
}

void
snapshot_install(struct snapshot *snap)
{
	pthread_mutex_lock(&snapshot_install_lock);
	struct snapshot *old = atomic_exchange(&snapshot_g.current, snap);
	/* The grace period: every acquire that may have read old has counted it. */
	while (atomic_load(&snapshot_g.readers) != 0)
		sched_yield();
	pthread_mutex_unlock(&snapshot_install_lock);
	snapshot_release(old);
}

struct snapshot *
snapshot_acquire(void)
{
	atomic_fetch_add(&snapshot_g.readers, 1);
	struct snapshot *snap = atomic_load(&snapshot_g.current);
	if (snap != NULL)
		atomic_fetch_add_explicit(&snap->refs, 1, memory_order_relaxed);
	atomic_fetch_sub(&snapshot_g.readers, 1);
	return snap;
}

void
snapshot_release(struct snapshot *snap)
{
	if (snap == NULL)
		return;
	if (atomic_fetch_sub_explicit(&snap->refs, 1, memory_order_acq_rel) == 1)
		snapshot_free(snap);
}
