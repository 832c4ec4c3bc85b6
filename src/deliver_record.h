/*
 * deliver_record: the delivery thread's outcomes on their way to disk, and
 * the recorder thread that writes them (SPEC §8: at-least-once, not
 * at-least-a-thousand).
 *
 * The delivery thread never writes the database: each outcome (delivered,
 * deferred, dead) becomes a note in memory, keyed by delivery id, that
 * overrides what the database says about the row (deliver_record_head reads
 * rows as the notes say they are). The recorder thread, on its own
 * connection, writes the notes in batches and forgets each once it is on
 * disk; while the disk refuses writes the notes stay and are written again
 * every second. So a message Slack accepted is never posted again because
 * its acknowledgement could not be written, and a slow fsync or the writer's
 * lock delays recording, never a delivery; only a restart before the notes
 * reach the disk sends those messages again. The recorder also checkpoints
 * the WAL, deletes dead letters older than queue.dead_max_age, re-counts the
 * queue per provider for the metrics gauges and the pending count (another
 * process, `fluxrelay queue retry`, changes it too), and logs a queue fault
 * (queue.h) once.
 *
 * Threads: start and stop from the main thread; note, head, the thread
 * handle functions and set_dead_max_age from the delivery thread
 * (set_dead_max_age also before it starts). The notes are shared with the
 * recorder under a lock.
 */
#ifndef FLUXRELAY_DELIVER_RECORD_H
#define FLUXRELAY_DELIVER_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "queue.h"

struct deliver_record;

/*
 * Open the recorder's connection on state_dir's queue and start its thread.
 * NULL with err filled on failure.
 */
struct deliver_record *deliver_record_start(const char *state_dir, double dead_max_age,
    char *err, size_t errlen);
/*
 * Write what is noted (a few tries, for a disk that is slow to come back;
 * what is still not written is logged), stop, close, free. Call it once the
 * delivery thread noted its last outcome. Accepts NULL.
 */
void deliver_record_stop(struct deliver_record *r);

/*
 * Note the outcome of a row (replacing an earlier note of it) and wake the
 * recorder. error (copied; NULL keeps the stored one) as in struct
 * queue_outcome.
 */
void deliver_record_note(struct deliver_record *r, int64_t id, enum queue_outcome_kind kind,
    int attempts, double next_attempt_at, const char *error);

/*
 * The first `limit` pending rows of a target, read on q (the delivery
 * thread's connection), as the notes say they are: delivered and dead rows
 * left out, deferred ones with their noted attempts, time and error.
 * *hidden_hint is the target's count of rows hidden by notes, from the last
 * call and for the next one: after the disk refused writes for a while they
 * may be many, so the query asks for that many more. 0, or -1 on a failed
 * read (queue_errmsg(q)). Caller frees the rows with queue_rows_free.
 */
int deliver_record_head(struct deliver_record *r, struct queue *q, const char *provider,
    const char *channel, size_t limit, size_t *hidden_hint, struct queue_row **rows,
    size_t *n);

/* queue.dead_max_age of a new configuration (0 = forever); expiry runs at once. */
void deliver_record_set_dead_max_age(struct deliver_record *r, double dead_max_age);

/*
 * Thread handles (SPEC §12): the parent message of a thread, per target
 * (provider, channel as configured) and thread key, stored in the threads
 * table. They go to disk like outcomes: the delivery thread notes a new
 * handle, a change of its times, or its end; the recorder writes the notes
 * it takes in the same transaction as the outcomes it takes with them; and
 * deliver_record_thread reads handles as the notes say they are. So the
 * delivery thread never writes the database, and a handle it just learned
 * is used for the next reply even while the disk refuses writes.
 */
struct deliver_thread {
	char channel_id[32];          /* as chat.postMessage answered */
	char ts[32];
	double opened_at;             /* epoch seconds the parent was posted */
	double last_at;               /* epoch seconds of the thread's last message */
	double updated_at;            /* epoch seconds of the last live count; 0: never */
};

/*
 * The handle of (provider, channel, key), read on q (the delivery thread's
 * connection) as the notes say it is: 1 with *h filled, 0 when there is
 * none, -1 on a failed read (queue_errmsg(q)).
 */
int deliver_record_thread(struct deliver_record *r, struct queue *q, const char *provider,
    const char *channel, const char *key, struct deliver_thread *h);

/* A new parent for (provider, channel, key), replacing any handle it had. */
void deliver_record_thread_put(struct deliver_record *r, const char *provider,
    const char *channel, const char *key, const struct deliver_thread *h);
/*
 * New times of a handle (updated_at < 0 keeps it); nothing when the handle
 * is gone by the time it is written (a reload dropped it).
 */
void deliver_record_thread_touch(struct deliver_record *r, const char *provider,
    const char *channel, const char *key, double last_at, double updated_at);
/* The thread of (provider, channel, key) ends: its handle is deleted. */
void deliver_record_thread_drop(struct deliver_record *r, const char *provider,
    const char *channel, const char *key);

/* One handle of a target with its key (deliver_record_threads). */
struct deliver_thread_entry {
	char *key;
	struct deliver_thread h;
};
/*
 * Every handle of a target as the notes say, for the live counts: 0 with
 * *out (free with deliver_record_threads_free) and *n, -1 on a failed read.
 */
int deliver_record_threads(struct deliver_record *r, struct queue *q, const char *provider,
    const char *channel, struct deliver_thread_entry **out, size_t *n);
void deliver_record_threads_free(struct deliver_thread_entry *v, size_t n);

#endif
