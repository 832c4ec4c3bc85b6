/*
 * queue_writer: the group-commit writer thread. Requests pile up on a list
 * under w->lock; the thread takes all of them at once (at most
 * QUEUE_WRITER_BATCH_CAP) and, without the lock, decides each one in order,
 * inserts the accepted ones in one transaction, commits (one fsync for the
 * whole batch), then answers every request. A request's decision, in order:
 *
 *   (an event of notify = "changes" alerts: incident_plan decides it first,
 *    in the transaction; nothing to deliver and no incident changed ->
 *    IGNORED; an incident changed -> no dedup check)
 *   dedup_admit says duplicate        -> DUPLICATE (nothing stored; answered
 *                                        even when the queue is full)
 *   max_pending would be exceeded     -> FULL (nothing stored, no dedup key)
 *   otherwise                         -> its rows and its dedup key are
 *                                        inserted (and the incidents
 *                                        changed: incident_apply);
 *                                        ACCEPTED once committed
 *
 * A failure anywhere in the transaction (or a queue fault, queue.h) rolls the
 * batch back and answers every request of it ERROR. Between batches the
 * thread prunes old dedup keys and sweeps expired incidents and thread
 * handles (every QUEUE_WRITER_CLEANUP_INTERVAL), applies a reloaded
 * configuration to the stored incidents (incident_conf_apply) and,
 * when nothing committed for QUEUE_WRITER_PROBE_INTERVAL, probes the disk
 * for readiness.
 *
 * The writer's connection is the only one that accepts events; the delivery
 * module's recorder writes outcomes on its own (queue.h). At start, before
 * its thread runs, it upgrades an older schema in place (queue_upgrade).
 */
#include "queue_writer.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "snapshot.h"
#include "thread.h"
#include "util.h"

/* Requests taken by the writer per transaction. */
#define QUEUE_WRITER_BATCH_CAP 1024
/* The writer probes when it has not committed for this long (seconds). */
#define QUEUE_WRITER_PROBE_INTERVAL 1.0
/* How often the writer deletes dedup keys older than the window (seconds). */
#define QUEUE_WRITER_CLEANUP_INTERVAL 60.0

struct queue_writer {
	struct queue *q;                 /* writer thread only (after start) */
	pthread_t thread;
	void (*on_commit)(void *arg);
	void *on_commit_arg;
	_Atomic long max_pending;
	atomic_bool healthy;             /* see queue_writer_healthy */
	int lock_fd;                     /* queue_lock's descriptor; -1 none */

	pthread_mutex_t lock;
	pthread_cond_t cond;             /* signalled on submit, pause change and stop */
	/* Guarded by lock: */
	struct queue_req *head, *tail;   /* submitted, not yet taken */
	bool stopping;
	bool paused;
	struct snapshot *next_snap;      /* set_snapshot's, not yet applied */
	struct queue_writer_stats stats;

	/* Writer thread only: */
	struct snapshot *snap;           /* the configuration in force; may be NULL */
	double dedup_window;             /* window of the latest dedup request; < 0 none yet */
	double last_cleanup;             /* util_mono() */
	double last_probe;               /* util_mono() */
	double last_ok;                  /* util_mono() of the last durable write */
	uint64_t probes;                 /* the probe row's value */
};

/* One batch on its way through queue_writer_process. */
struct queue_writer_batch {
	struct queue_req *head;          /* linked by next */
	size_t n;
	double now;                      /* wall clock: created_at, first sightings */
	long max_pending;                /* < 0: no limit */
	int64_t pending;                 /* pending rows before this batch */
	int64_t added;                   /* rows it inserted */
	bool in_txn;                     /* a transaction is open */
	bool failed;                     /* everything is answered ERROR */
};

/* ------------------------------------------------------------ one batch */

/* Open the batch's transaction unless it is open. 0, or -1 with the batch failed. */
static int
queue_writer_begin(struct queue_writer *w, struct queue_writer_batch *b)
{
	if (b->in_txn)
		return 0;
	if (queue_begin(w->q) < 0) {
		b->failed = true;
		return -1;
	}
	b->in_txn = true;
	return 0;
}

/*
 * Decide one request and, when it is accepted, insert it into the batch's
 * transaction (begun by the first insert). Sets r->result, except when the
 * batch has failed: then the caller answers everything ERROR.
 */
static void
queue_writer_take(struct queue_writer *w, struct queue_writer_batch *b, struct queue_req *r)
{
	r->result = QUEUE_RESULT_NONE;
	if (r->event_id[0] == '\0')
		util_new_id(r->event_id);
	if (r->has_dedup)
		w->dedup_window = r->dedup_window;
	bool changes = false;
	if (r->incident != NULL) {
		/* Planned in the transaction, so it sees the batch's own changes
		 * and nobody else's write comes between the plan and its apply. */
		if (b->failed || queue_writer_begin(w, b) < 0)
			return;
		if (incident_plan(w->q, r->incident, w->snap ? w->snap->conf : NULL, b->now) < 0) {
			b->failed = true;
			return;
		}
		r->items = r->incident->items;
		r->nitems = r->incident->nitems;
		changes = r->incident->changes;
		if (!changes && r->nitems == 0) {
			r->result = QUEUE_RESULT_IGNORED;
			return;
		}
	}
	/* A failed batch looks nothing up: the file may be the problem. */
	if (r->has_dedup && !b->failed && !changes) {
		switch (dedup_admit(w->q, r->dedup_key, r->dedup_window, b->now, r->event_id)) {
		case DEDUP_DUPLICATE:
			r->result = QUEUE_RESULT_DUPLICATE;
			return;
		case DEDUP_ERROR:
			b->failed = true;
			break;
		case DEDUP_NEW:
			break;
		}
	}
	if (b->max_pending >= 0 &&
	    b->pending + b->added + (int64_t)r->nitems > (int64_t)b->max_pending) {
		r->result = QUEUE_RESULT_FULL;
		return;
	}
	if (b->failed || queue_writer_begin(w, b) < 0)
		return;
	if ((changes && incident_apply(w->q, r->incident, b->now) < 0) ||
	    (r->nitems > 0 && queue_insert(w->q, r->event_id, r->event, r->event_len, r->items,
	    r->nitems, b->now) < 0) || (r->has_dedup && r->nitems > 0 &&
	    dedup_record(w->q, r->dedup_key, r->dedup_window, b->now, r->event_id) < 0)) {
		b->failed = true;
		return;
	}
	b->added += (int64_t)r->nitems;
	r->result = QUEUE_RESULT_ACCEPTED;
}

/*
 * Commit what the batch inserted, or roll all of it back and answer every
 * request ERROR. Readiness follows: a failed batch is not ready, a
 * committed one is.
 */
static void
queue_writer_finish(struct queue_writer *w, struct queue_writer_batch *b)
{
	/*
	 * The rows join the pending count before the commit, while the write
	 * lock is held: the recorder's periodic re-count (deliver_record.c) takes
	 * the lock too, so it sees the rows both added and committed or neither.
	 */
	bool added = b->in_txn && !b->failed && b->added > 0;
	if (added)
		queue_pending_add(b->added);
	if (b->in_txn && !b->failed && queue_commit(w->q) < 0)
		b->failed = true;
	/* A fault SQLite found during this batch (queue_fault) answers it too. */
	if (queue_fault(NULL, 0) != QUEUE_FAULT_NONE)
		b->failed = true;
	if (b->failed) {
		atomic_store(&w->healthy, false);
		queue_rollback(w->q);
		for (struct queue_req *r = b->head; r != NULL; r = r->next)
			r->result = QUEUE_RESULT_ERROR;
		if (added)
			queue_pending_add(-b->added);
		b->added = 0;
	} else if (b->in_txn) {
		atomic_store(&w->healthy, true);
		w->last_ok = util_mono();
	}
}

/* The committed rows join the gauges (the pending count: queue_writer_finish); the batch joins the stats. */
static void
queue_writer_count(struct queue_writer *w, const struct queue_writer_batch *b)
{
	uint64_t n[QUEUE_RESULT_IGNORED + 1] = { 0 };
	for (struct queue_req *r = b->head; r != NULL; r = r->next) {
		n[r->result]++;
		if (r->result != QUEUE_RESULT_ACCEPTED)
			continue;
		if (r->incident != NULL)
			incident_committed(r->incident, r->event_id);
		for (size_t i = 0; i < r->nitems; i++)
			metrics_queue_add(r->items[i].provider ? r->items[i].provider : "", 1, 0);
	}

	pthread_mutex_lock(&w->lock);
	w->stats.batches++;
	w->stats.requests += b->n;
	w->stats.accepted += n[QUEUE_RESULT_ACCEPTED];
	w->stats.duplicates += n[QUEUE_RESULT_DUPLICATE];
	w->stats.full += n[QUEUE_RESULT_FULL];
	w->stats.ignored += n[QUEUE_RESULT_IGNORED];
	w->stats.errors += b->n - n[QUEUE_RESULT_ACCEPTED] - n[QUEUE_RESULT_DUPLICATE] -
	    n[QUEUE_RESULT_FULL] - n[QUEUE_RESULT_IGNORED];
	if (b->in_txn && !b->failed)
		w->stats.commits++;
	if (b->n > w->stats.max_batch)
		w->stats.max_batch = b->n;
	if (b->failed)
		snprintf(w->stats.last_error, sizeof(w->stats.last_error), "%s",
		    queue_errmsg(w->q));
	pthread_mutex_unlock(&w->lock);
}

/* Call every request's done, then on_commit when rows were added. */
static void
queue_writer_answer(struct queue_writer *w, const struct queue_writer_batch *b)
{
	/* After done, the owner may free the request: read next first. */
	for (struct queue_req *r = b->head, *next; r != NULL; r = next) {
		next = r->next;
		r->next = NULL;
		r->done(r);
	}
	if (b->added > 0 && w->on_commit)
		w->on_commit(w->on_commit_arg);
}

/* Decide, insert and commit one batch, then answer it. Writer thread, lock not held. */
static void
queue_writer_process(struct queue_writer *w, struct queue_req *batch, size_t n)
{
	struct queue_writer_batch b = {
		.head = batch,
		.n = n,
		.now = util_now(),
		.max_pending = atomic_load(&w->max_pending),
		.pending = queue_pending_get(),
		/* At most one batch can land in a deleted file (queue_check). */
		.failed = queue_check(w->q),
	};
	for (struct queue_req *r = batch; r != NULL; r = r->next)
		queue_writer_take(w, &b, r);
	queue_writer_finish(w, &b);
	queue_writer_count(w, &b);
	queue_writer_answer(w, &b);
}

/* ---------------------------------------------------------- housekeeping */

/* Delete the dedup keys whose window (the latest one) ran out; sweep expired incidents. */
static void
queue_writer_cleanup(struct queue_writer *w)
{
	w->last_cleanup = util_mono();
	/* A failure only leaves old keys (or incidents) for the next round. */
	if (w->dedup_window >= 0)
		dedup_prune(w->q, util_now(), w->dedup_window);
	if (w->snap != NULL && incident_sweep(w->q, w->snap->conf, util_now()) < 0)
		log_warn("incident sweep failed", "error", queue_errmsg(w->q), NULL);
}

/* A reloaded configuration: the stored state follows it, then it is the one in force. */
static void
queue_writer_apply_snapshot(struct queue_writer *w, struct snapshot *snap)
{
	if (incident_conf_apply(w->q, snap->conf) < 0)
		log_warn("incidents not adjusted to the new configuration", "error",
		    queue_errmsg(w->q), NULL);
	snapshot_release(w->snap);
	w->snap = snap;
}

/*
 * The readiness probe (queue_probe: a small write that reaches the disk)
 * when nothing else committed for QUEUE_WRITER_PROBE_INTERVAL: readiness
 * follows the disk without traffic, both ways. No request waits for it.
 */
static void
queue_writer_probe(struct queue_writer *w)
{
	w->last_probe = util_mono();
	if (queue_check(w->q)) {
		atomic_store(&w->healthy, false);
		return;
	}
	if (queue_probe(w->q, ++w->probes) == 0 && queue_fault(NULL, 0) == QUEUE_FAULT_NONE) {
		w->last_ok = util_mono();
		atomic_store(&w->healthy, true);
	} else {
		atomic_store(&w->healthy, false);
		pthread_mutex_lock(&w->lock);
		snprintf(w->stats.last_error, sizeof(w->stats.last_error), "%s",
		    queue_errmsg(w->q));
		pthread_mutex_unlock(&w->lock);
	}
}

/* When the next probe is due (util_mono()). */
static double
queue_writer_probe_due(const struct queue_writer *w)
{
	double since = w->last_ok > w->last_probe ? w->last_ok : w->last_probe;
	return since + QUEUE_WRITER_PROBE_INTERVAL;
}

/* ---------------------------------------------------------------- thread */

/* Wait, lock held, until there is something to take, stop, or a timer is due. */
static void
queue_writer_wait(struct queue_writer *w)
{
	while (!w->stopping && (w->head == NULL || w->paused) && w->next_snap == NULL) {
		double now_m = util_mono();
		double wait = QUEUE_WRITER_CLEANUP_INTERVAL - (now_m - w->last_cleanup);
		if (!w->paused && queue_writer_probe_due(w) - now_m < wait)
			wait = queue_writer_probe_due(w) - now_m;
		if (wait <= 0)
			return;
		thread_cond_wait(&w->cond, &w->lock, wait);
	}
}

/* Detach, lock held, up to QUEUE_WRITER_BATCH_CAP submitted requests; *n gets how many. */
static struct queue_req *
queue_writer_detach(struct queue_writer *w, size_t *n)
{
	struct queue_req *batch = w->head, *last = NULL;
	*n = 0;
	for (struct queue_req *r = batch; r != NULL && *n < QUEUE_WRITER_BATCH_CAP; r = r->next) {
		last = r;
		(*n)++;
	}
	if (last == NULL)
		return NULL;
	w->head = last->next;
	if (w->head == NULL)
		w->tail = NULL;
	last->next = NULL;
	return batch;
}

static void *
queue_writer_main(void *arg)
{
	struct queue_writer *w = arg;
	for (;;) {
		struct queue_req *batch = NULL;
		size_t n = 0;
		pthread_mutex_lock(&w->lock);
		queue_writer_wait(w);
		if (!w->paused || w->stopping)
			batch = queue_writer_detach(w, &n);
		struct snapshot *snap = w->next_snap;
		w->next_snap = NULL;
		bool stop = w->stopping && batch == NULL;
		pthread_mutex_unlock(&w->lock);
		if (snap != NULL)
			queue_writer_apply_snapshot(w, snap);
		if (stop)
			break;
		if (batch != NULL)
			queue_writer_process(w, batch, n);
		if (util_mono() - w->last_cleanup >= QUEUE_WRITER_CLEANUP_INTERVAL)
			queue_writer_cleanup(w);
		pthread_mutex_lock(&w->lock);
		bool paused = w->paused && !w->stopping;
		pthread_mutex_unlock(&w->lock);
		if (!paused && util_mono() >= queue_writer_probe_due(w))
			queue_writer_probe(w);
	}
	return NULL;
}

/* ------------------------------------------------------------- interface */

/* Lock the state directory, open and check the database, count what is pending. */
static int
queue_writer_open(struct queue_writer *w, const struct queue_writer_opts *o, char *err,
    size_t errlen)
{
	w->lock_fd = queue_lock(o->state_dir, err, errlen);
	if (w->lock_fd < 0)
		return -1;
	w->q = queue_open(o->state_dir, o->sync_full, err, errlen);
	if (w->q == NULL)
		return -1;
	int64_t pending = -1;
	int from = 0;
	/* The upgrade after the check: a damaged file is not migrated. */
	if (queue_verify(w->q) < 0 || queue_upgrade(w->q, &from) < 0 ||
	    (pending = queue_count(w->q, QUEUE_PENDING)) < 0) {
		snprintf(err, errlen, "%s: %s", queue_path(w->q), queue_errmsg(w->q));
		return -1;
	}
	if (from != queue_schema_version(w->q)) {
		char v0[16], v1[16];
		snprintf(v0, sizeof(v0), "%d", from);
		snprintf(v1, sizeof(v1), "%d", queue_schema_version(w->q));
		log_info("queue upgraded in place", "path", queue_path(w->q), "from_version", v0,
		    "to_version", v1, NULL);
	}
	queue_pending_set(pending);
	if (o->snap != NULL && incident_conf_apply(w->q, o->snap->conf) < 0) {
		snprintf(err, errlen, "%s: %s", queue_path(w->q), queue_errmsg(w->q));
		return -1;
	}
	/* No checkpoint inside the writer's commits (queue_wal_backstop). */
	queue_wal_backstop(w->q);
	return 0;
}

struct queue_writer *
queue_writer_start(const struct queue_writer_opts *o, char *err, size_t errlen)
{
	struct queue_writer *w = util_calloc(1, sizeof(*w));
	w->lock_fd = -1;
	w->snap = o->snap;
	if (queue_writer_open(w, o, err, errlen) < 0)
		goto fail;
	w->on_commit = o->on_commit;
	w->on_commit_arg = o->on_commit_arg;
	atomic_store(&w->max_pending, o->max_pending);
	w->dedup_window = -1;
	w->last_cleanup = w->last_probe = w->last_ok = util_mono();
	atomic_store(&w->healthy, true);

	pthread_mutex_init(&w->lock, NULL);
	thread_cond_init(&w->cond);
	if (thread_start(&w->thread, queue_writer_main, w, "fr-writer", "the queue writer", err,
	    errlen) < 0) {
		pthread_mutex_destroy(&w->lock);
		pthread_cond_destroy(&w->cond);
		goto fail;
	}
	return w;
fail:
	snapshot_release(w->snap);
	queue_close(w->q);
	if (w->lock_fd >= 0)
		close(w->lock_fd);
	free(w);
	return NULL;
}

/*
 * Hand req to the writer; never touches the disk. Once stop has begun the
 * request is answered at once: done(req) runs with QUEUE_RESULT_SHUTDOWN on
 * the calling thread, before submit returns.
 */
void
queue_writer_submit(struct queue_writer *w, struct queue_req *req)
{
	req->result = QUEUE_RESULT_NONE;
	req->next = NULL;
	pthread_mutex_lock(&w->lock);
	if (w->stopping) {
		pthread_mutex_unlock(&w->lock);
		req->result = QUEUE_RESULT_SHUTDOWN;
		req->done(req);
		return;
	}
	if (w->tail)
		w->tail->next = req;
	else
		w->head = req;
	w->tail = req;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

void
queue_writer_halt(struct queue_writer *w)
{
	if (w == NULL)
		return;
	pthread_mutex_lock(&w->lock);
	bool halted = w->stopping;
	w->stopping = true;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
	if (halted)
		return;
	pthread_join(w->thread, NULL);
	atomic_store(&w->healthy, false);
	snapshot_release(w->snap);
	w->snap = NULL;
	queue_close(w->q);
	w->q = NULL;
	close(w->lock_fd);            /* after the last commit: releases the lock */
	w->lock_fd = -1;
}

void
queue_writer_stop(struct queue_writer *w)
{
	if (w == NULL)
		return;
	queue_writer_halt(w);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cond);
	snapshot_release(w->next_snap);
	free(w);
}

bool
queue_writer_healthy(struct queue_writer *w)
{
	return atomic_load(&w->healthy) && queue_fault(NULL, 0) == QUEUE_FAULT_NONE;
}

void
queue_writer_set_max_pending(struct queue_writer *w, long max_pending)
{
	atomic_store(&w->max_pending, max_pending);
}

void
queue_writer_set_snapshot(struct queue_writer *w, struct snapshot *snap)
{
	pthread_mutex_lock(&w->lock);
	struct snapshot *old = w->next_snap;
	w->next_snap = snap;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
	snapshot_release(old);
}

void
queue_writer_get_stats(struct queue_writer *w, struct queue_writer_stats *out)
{
	pthread_mutex_lock(&w->lock);
	*out = w->stats;
	pthread_mutex_unlock(&w->lock);
}

#ifdef FLUXRELAY_UNITTEST
void
queue_writer_pause(struct queue_writer *w, bool paused)
{
	pthread_mutex_lock(&w->lock);
	w->paused = paused;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}
#endif
