/*
 * runtime: see runtime.h. runtime_lock guards the current pointer and every
 * snapshot's refs; it is held for a few instructions per request.
 */
#include "runtime.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "util.h"

static pthread_mutex_t runtime_lock = PTHREAD_MUTEX_INITIALIZER;
static struct runtime *runtime_current;   /* guarded by runtime_lock */

struct runtime *
runtime_new(struct conf *c, char *err, size_t errlen)
{
	struct rules *r = rules_new(c, err, errlen);
	if (r == NULL) {
		conf_free(c);
		return NULL;
	}
	struct runtime *rt = util_calloc(1, sizeof(*rt));
	rt->conf = c;
	rt->rules = r;
	rt->refs = 1;
	return rt;
}

static void
runtime_free(struct runtime *rt)
{
	rules_free(rt->rules);
	conf_free(rt->conf);
	free(rt);
}

void
runtime_install(struct runtime *rt)
{
	pthread_mutex_lock(&runtime_lock);
	struct runtime *old = runtime_current;
	runtime_current = rt;
	pthread_mutex_unlock(&runtime_lock);
	runtime_release(old);
}

struct runtime *
runtime_acquire(void)
{
	pthread_mutex_lock(&runtime_lock);
	struct runtime *rt = runtime_current;
	if (rt != NULL)
		rt->refs++;
	pthread_mutex_unlock(&runtime_lock);
	return rt;
}

void
runtime_release(struct runtime *rt)
{
	if (rt == NULL)
		return;
	pthread_mutex_lock(&runtime_lock);
	int left = --rt->refs;
	pthread_mutex_unlock(&runtime_lock);
	if (left == 0)
		runtime_free(rt);
}
