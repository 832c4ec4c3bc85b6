/*
 * snapshot: see snapshot.h. snapshot_lock guards the current pointer and every
 * snapshot's refs; it is held for a few instructions per request.
 */
#include "snapshot.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "util.h"

static pthread_mutex_t snapshot_lock = PTHREAD_MUTEX_INITIALIZER;
static struct snapshot *snapshot_current;   /* guarded by snapshot_lock */

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
	snap->refs = 1;
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
	pthread_mutex_lock(&snapshot_lock);
	struct snapshot *old = snapshot_current;
	snapshot_current = snap;
	pthread_mutex_unlock(&snapshot_lock);
	snapshot_release(old);
}

struct snapshot *
snapshot_acquire(void)
{
	pthread_mutex_lock(&snapshot_lock);
	struct snapshot *snap = snapshot_current;
	if (snap != NULL)
		snap->refs++;
	pthread_mutex_unlock(&snapshot_lock);
	return snap;
}

void
snapshot_release(struct snapshot *snap)
{
	if (snap == NULL)
		return;
	pthread_mutex_lock(&snapshot_lock);
	int left = --snap->refs;
	pthread_mutex_unlock(&snapshot_lock);
	if (left == 0)
		snapshot_free(snap);
}
