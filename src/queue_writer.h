/*
 * queue_writer: the group-commit writer thread (SPEC §8: an event is answered
 * 202 only once its deliveries are on disk). HTTP threads submit requests; the
 * writer takes everything that has arrived (up to a cap), decides each one
 * (dedup, max_pending), inserts the accepted ones in one transaction with one
 * fsync, then calls each request's done callback from the writer thread. It
 * also holds the state directory's lock and watches the database (readiness,
 * faults: queue.h).
 *
 * Threads: start, halt, stop, set_max_pending, set_snapshot and get_stats
 * from the main thread;
 * submit and healthy from any thread.
 */
#ifndef FLUXRELAY_QUEUE_WRITER_H
#define FLUXRELAY_QUEUE_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dedup.h"
#include "incident.h"
#include "queue.h"

struct snapshot;

enum queue_result {
	QUEUE_RESULT_NONE = 0,
	QUEUE_RESULT_ACCEPTED,
	QUEUE_RESULT_DUPLICATE,
	QUEUE_RESULT_FULL,
	QUEUE_RESULT_ERROR,
	QUEUE_RESULT_SHUTDOWN,
	QUEUE_RESULT_IGNORED,     /* nothing to deliver and no incident changed */
};

/*
 * A request from an HTTP thread. Everything it points to stays valid until
 * done is called. The writer fills result (and, for a duplicate, event_id with
 * the first event's id) before calling done(req) from the writer thread.
 */
struct queue_req {
	char event_id[UTIL_ID_SIZE];   /* "" = the writer makes one */
	const char *event;        /* event JSON as received */
	size_t event_len;
	const struct queue_item *items;   /* one delivery row each */
	size_t nitems;
	/*
	 * An event with FAILURE/RECOVERY hits (notify = "changes" alerts), else
	 * NULL. The writer decides it (incident.h) and replaces items and nitems
	 * by the plan's rows: an event that changes an incident is never a
	 * duplicate (its dedup key is still recorded when it delivers); one
	 * that neither delivers nor changes anything is IGNORED.
	 */
	struct incident_req *incident;
	bool has_dedup;
	unsigned char dedup_key[DEDUP_KEY_LEN];
	double dedup_window;
	enum queue_result result;
	void (*done)(struct queue_req *req);
	void *arg;                /* for the submitter */
	struct queue_req *next;   /* writer's list link */
};

struct queue_writer;

struct queue_writer_opts {
	const char *state_dir;
	bool sync_full;
	long max_pending;
	/*
	 * The configuration in force (a reference the writer takes over; may be
	 * NULL in tests): incidents are checked against it at start
	 * (incident_conf_apply) and swept by its alerts' incident_ttl.
	 */
	struct snapshot *snap;
	/* Called from the writer thread after each committed batch (may be NULL). */
	void (*on_commit)(void *arg);
	void *on_commit_arg;
};

/*
 * Takes the state directory's lock (queue_lock: a second daemon on the same
 * directory is refused; the CLI never takes it), opens its own connection,
 * verifies the database (queue_verify: a damaged file is refused with a
 * message naming it and what to do), upgrades an older schema in place
 * (queue_upgrade, logged), starts the thread. NULL with err filled on
 * failure.
 */
struct queue_writer *queue_writer_start(const struct queue_writer_opts *o, char *err,
    size_t errlen);
/*
 * Never blocks on disk. After stop has begun, done is called with
 * RESULT_SHUTDOWN at once, on the calling thread, before submit returns.
 */
void queue_writer_submit(struct queue_writer *w, struct queue_req *req);
/*
 * Commits what was submitted, stops the thread and closes the queue; w stays
 * valid (submit ends at once, healthy is false) for the threads that may
 * still call it until queue_writer_stop. Accepts NULL and a halted w.
 */
void queue_writer_halt(struct queue_writer *w);
/* queue_writer_halt if not done yet, then frees w. Accepts NULL. */
void queue_writer_stop(struct queue_writer *w);
/*
 * Readiness (SPEC §4: /readyz 503 when the queue is not writable): the
 * result of the writer's last commit or probe. When no commit succeeded for a
 * second, the writer probes with a write that reaches the disk (queue_probe):
 * a failing disk is noticed within about a second without traffic, and a
 * recovered one too (a not-ready pod gets no traffic). False for good after
 * a fault (queue.h). An atomic load: any thread, never touches the disk.
 */
bool queue_writer_healthy(struct queue_writer *w);
/* Change max_pending on reload. */
void queue_writer_set_max_pending(struct queue_writer *w, long max_pending);
/*
 * A reload's configuration (takes the caller's reference): the writer
 * thread applies it to the stored incidents and thread handles
 * (incident_conf_apply: dropped when their alert or provider changed)
 * before it takes the next request.
 */
void queue_writer_set_snapshot(struct queue_writer *w, struct snapshot *snap);

/* Counters of the writer since start, for tests and diagnostics. */
struct queue_writer_stats {
	uint64_t batches;         /* groups of requests taken at once */
	uint64_t commits;         /* transactions committed (batches that inserted) */
	uint64_t requests;        /* requests answered by the writer thread */
	uint64_t accepted, duplicates, full, errors, ignored;
	size_t max_batch;         /* largest group taken at once */
	char last_error[512];     /* of the last failed transaction; "" when none */
};
void queue_writer_get_stats(struct queue_writer *w, struct queue_writer_stats *out);

#ifdef FLUXRELAY_UNITTEST
/*
 * Hold (true) or release (false) the writer: while held it takes nothing, so
 * requests pile up and the next batch holds all of them. stop releases it.
 */
void queue_writer_pause(struct queue_writer *w, bool paused);
#endif

#endif
