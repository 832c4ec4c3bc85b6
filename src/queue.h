/*
 * queue: the durable on-disk queue (SPEC §7, §8) in SQLite, WAL mode, at
 * STATE_DIR/queue.db. The schema and the row state machine are documented at
 * the top of queue.c.
 *
 * struct queue is one SQLite connection with its prepared statements. Not
 * thread-safe: each thread opens its own: the writer (queue_writer.h, which
 * accepts events), the delivery thread (reads), its recorder (outcomes) and
 * the CLI.
 *
 * Faults (SPEC §4): a database that SQLite reports malformed, or whose file
 * was deleted or replaced under the daemon, is a sticky, process-wide fault:
 * from then on the writer refuses every request and is not healthy, until a
 * restart. Library code does not log: the delivery module reports it.
 */
#ifndef FLUXRELAY_QUEUE_H
#define FLUXRELAY_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

struct queue;

enum queue_state { QUEUE_PENDING = 0, QUEUE_DEAD = 1 };

/*
 * What a delivery says (SPEC §12): a plain event, or a transition of an
 * incident of a notify = "changes" alert. Stored as these numbers.
 */
enum queue_kind {
	QUEUE_KIND_EVENT = 0,
	QUEUE_KIND_OPENED = 1,
	QUEUE_KIND_REMINDER = 2,
	QUEUE_KIND_RECOVERED = 3,
	QUEUE_KIND_REPLY = 4,     /* a differing failure, for threaded targets only */
};
#define QUEUE_NKINDS 5
/* "event", "opened", "reminder", "recovered", "reply" ("event" for anything else). */
const char *queue_kind_name(enum queue_kind k);

/* One stored delivery. Strings are owned by the row (queue_row_clear). */
struct queue_row {
	int64_t id;               /* delivery id, increasing in acceptance order */
	char event_id[UTIL_ID_SIZE];
	char *provider;           /* provider name */
	char *channel;            /* "" when none */
	char *alerts;             /* comma-separated alert names */
	char *extra;              /* JSON object of alert metadata + summary */
	char *event;              /* the event JSON as received */
	size_t event_len;
	enum queue_state state;
	int attempts;             /* transient failures so far */
	double next_attempt_at;   /* wall-clock seconds; 0 = now */
	double created_at;        /* wall-clock seconds of acceptance */
	char *last_error;         /* NULL when none */
	enum queue_kind kind;
	char *thread_key;         /* "" when the target has no threads */
	char *incident;           /* JSON snapshot of the incident (queue.c); NULL for events */
	char *cluster;            /* the sending client (auth.clients), "" when none */
};
void queue_row_clear(struct queue_row *row);
void queue_rows_free(struct queue_row *rows, size_t n);

/*
 * Open (creating the directory's database and schema when needed). sync_full
 * selects PRAGMA synchronous=FULL, else NORMAL. A busy database is waited for
 * (up to 5 s) so the CLI can run beside the daemon; no automatic checkpoints
 * (the daemon's recorder and writer checkpoint, and SQLite checkpoints when
 * the last connection closes). NULL with err filled on failure, naming the file:
 * an SQLite file without fluxrelay's meta table is refused ("not a fluxrelay
 * queue"), never adopted; so is a file that is not an SQLite database, and
 * one with a newer schema than this build knows.
 *
 * An older schema is opened as it is, never changed (only queue_upgrade
 * changes it): rows read from it have the defaults of the newer columns,
 * and it has no incidents or thread handles.
 */
struct queue *queue_open(const char *state_dir, bool sync_full, char *err, size_t errlen);
/*
 * Migrate an older schema in place to the current one, in one transaction
 * (pending deliveries and dead letters are kept). The queue writer calls it
 * at daemon start, on its connection; the CLI never does. *from (may be
 * NULL) gets the version found. 0, or -1 with nothing changed.
 */
int queue_upgrade(struct queue *q, int *from);
/* The schema version of q's database as last opened or upgraded. */
int queue_schema_version(const struct queue *q);
void queue_close(struct queue *q);    /* accepts NULL */
const char *queue_errmsg(struct queue *q);

/*
 * Passive WAL checkpoint: copies committed pages into the database without
 * blocking writers; then, when commits came meanwhile and this pass was
 * quick (under 50 ms), copies those too with the process's write lock held,
 * so that the WAL is copied to its end and the next commit starts it over
 * (the writer checkpoints only as a backstop, when the WAL grew past a bound
 * that these checkpoints normally keep it far under). The delivery module's
 * recorder thread calls it ten times a second. 0 / -1.
 */
int queue_checkpoint(struct queue *q);

/* Number of rows in a state (all providers). -1 on error. */
int64_t queue_count(struct queue *q, enum queue_state state);

/* ---- delivery: the delivery thread (reads) and its recorder (writes) ---- */

/*
 * Per-provider counts for metrics: calls fn for each provider with rows, in
 * provider order (provider, pending, dead). One pass over the index.
 */
int queue_count_by_provider(struct queue *q,
    void (*fn)(const char *provider, int64_t pending, int64_t dead, void *arg), void *arg);

/* Distinct (provider, channel) pairs that have pending rows. */
struct queue_target { char *provider; char *channel; };
int queue_pending_targets(struct queue *q, struct queue_target **out, size_t *n);
void queue_targets_free(struct queue_target *t, size_t n);

/* The first `limit` pending rows of one target in id order. */
int queue_target_head(struct queue *q, const char *provider, const char *channel,
    size_t limit, struct queue_row **rows, size_t *n);

/*
 * What the delivery thread decided about one row, written by queue_record.
 * The values are absolute (not increments), so writing the same outcome again
 * after a failure, or a later outcome of the same row after an earlier one,
 * is always right.
 */
enum queue_outcome_kind {
	QUEUE_OUTCOME_ACK,        /* delivered: the row is deleted */
	QUEUE_OUTCOME_DEFER,      /* pending, due again at next_attempt_at */
	QUEUE_OUTCOME_DEAD,       /* dead letter (dead since the write) */
};
struct queue_outcome {
	int64_t id;
	enum queue_outcome_kind kind;
	int attempts;             /* DEFER, DEAD: the row's attempts from now on */
	double next_attempt_at;   /* DEFER: wall-clock seconds */
	const char *error;        /* DEFER, DEAD: last_error; NULL keeps the stored one */
};
/*
 * Write outcomes in one transaction (synchronous as the connection was
 * opened). DEFER and DEAD only change pending rows. 0, or -1 with nothing
 * written.
 */
int queue_record(struct queue *q, const struct queue_outcome *o, size_t n);
/* The same in the caller's open transaction (the recorder writes thread handles with them). */
int queue_record_in(struct queue *q, const struct queue_outcome *o, size_t n);

/*
 * Delete at most limit dead letters that died before `before` (wall clock;
 * a dead row's next_attempt_at holds when it died, and rows that died under
 * versions that did not record it count from the later of created_at and
 * next_attempt_at). *deleted (may be NULL) gets the count. 0 / -1.
 */
int queue_expire_dead(struct queue *q, double before, size_t limit, int64_t *deleted);

/* ---- the CLI (`fluxrelay queue`) ---- */

/*
 * At most limit rows in a state with id > after_id, id order. Each call
 * is its own short read transaction, so a long listing never holds the WAL
 * back from being checkpointed.
 */
int queue_list_page(struct queue *q, enum queue_state state, int64_t after_id, size_t limit,
    struct queue_row **rows, size_t *n);
/* Dead -> pending (attempts 0, next now, created_at now). n == 0 with ids NULL = all. */
int queue_retry(struct queue *q, const int64_t *ids, size_t n, int64_t *changed);
/* Delete dead rows. n == 0 with ids NULL = all. */
int queue_purge(struct queue *q, const int64_t *ids, size_t n, int64_t *changed);

/* ---- acceptance: the writer thread (queue_writer.c) on its connection ---- */

/* One delivery of an accepted event: the target and what the alerts add. */
struct queue_item {
	const char *provider;
	const char *channel;      /* NULL or "" = none */
	const char *alerts;       /* comma-separated alert names */
	const char *extra;        /* JSON object text */
	enum queue_kind kind;     /* 0: QUEUE_KIND_EVENT */
	const char *thread_key;   /* NULL or "" = none */
	const char *incident;     /* JSON object text; NULL for events */
	const char *cluster;      /* the sending client's name; NULL or "" = none */
};

/*
 * A transaction on q: BEGIN IMMEDIATE (waits up to 5 s for the process's
 * write lock, then for other processes', never fails on a read-to-write
 * upgrade), COMMIT (a failed one is rolled back), ROLLBACK (keeps the error
 * message of what failed); the lock is held from begin to commit or
 * rollback. 0 / -1.
 */
int queue_begin(struct queue *q);
int queue_commit(struct queue *q);
void queue_rollback(struct queue *q);

/*
 * Waits for the write lock since start, of every connection in the process
 * (queue.c: the process's write lock, then SQLite's busy handler for other
 * processes), for the writer's summary at exit and for tests. Any thread.
 */
struct queue_lock_stats {
	uint64_t lock_waits;      /* transactions that waited for another thread's */
	uint64_t lock_wait_ns;    /* total time they waited */
	uint64_t busy_calls;      /* busy handler sleeps (another process held the lock) */
	uint64_t busy_sleep_ns;   /* total time asked of those sleeps */
};
void queue_get_lock_stats(struct queue_lock_stats *out);

/* One pending row per item, due now, in the open transaction. 0 / -1. */
int queue_insert(struct queue *q, const char *event_id, const char *event, size_t event_len,
    const struct queue_item *items, size_t n, double now);

/*
 * The stored first sighting of a dedup key (SPEC §7; the decision is
 * dedup_admit's): 1 with *first_seen and event_id filled, 0 when there is
 * none, -1 on error. Sees the connection's own uncommitted writes.
 */
int queue_dedup_get(struct queue *q, const void *key, size_t keylen, double *first_seen,
    char event_id[UTIL_ID_SIZE]);
/*
 * Store the first sighting of a key at first_seen, in the open transaction,
 * unless one is stored that is less than window seconds older (SPEC §7: the
 * window stays fixed from the first sighting); an older one is replaced. 0 / -1.
 */
int queue_dedup_put(struct queue *q, const void *key, size_t keylen, const char *event_id,
    double first_seen, double window);
/* Delete the first sightings older than before, in a transaction of its own. 0 / -1. */
int queue_dedup_expire(struct queue *q, double before);

/*
 * The readiness probe: rewrite the meta row "probe" with value, in a
 * transaction of its own committed with synchronous=FULL whatever the
 * connection was opened with, so that the fsync happens. 0 / -1.
 */
int queue_probe(struct queue *q, uint64_t value);

/*
 * PRAGMA quick_check: every page's structure, without the index-to-table
 * cross-check of integrity_check (bench/README.md has its cost). 0, or -1
 * with queue_errmsg saying what is wrong and what to do.
 */
int queue_verify(struct queue *q);

/*
 * No automatic checkpoint inside q's commits; instead a passive one right
 * after a commit that leaves the WAL past a bound (queue.c): the recorder's
 * frequent passive checkpoints normally keep it under, but seldom catch up
 * with a steady stream of commits.
 */
void queue_wal_backstop(struct queue *q);

/*
 * The state directory's lock: an exclusive flock on STATE_DIR/queue.lock,
 * held (and released by the kernel at exit, even after kill -9) for the
 * writer's life; a second daemon on the directory is refused with a message
 * naming the lock. Returns the descriptor, or -1 with err filled.
 */
int queue_lock(const char *state_dir, char *err, size_t errlen);

/* The database file's path (for messages). */
const char *queue_path(const struct queue *q);

/* ---- incidents (SPEC §12): the writer, in its open transaction ---- */

/*
 * One open incident of a notify = "changes" alert, keyed by the alert and the
 * object (cluster, kind, namespace, name). Strings are owned
 * (queue_incident_clear); namespace and cluster are "" when absent.
 */
struct queue_incident {
	int64_t id;
	char *alert, *cluster, *kind, *namespace, *name;
	double opened_at, last_at, last_notified_at;   /* epoch seconds */
	int64_t failures;
	char *last_message;       /* as received */
	char *last_norm;          /* dedup_normalize of it */
	char *last_reason, *last_revision;   /* "" when absent */
};
void queue_incident_clear(struct queue_incident *in);
void queue_incidents_free(struct queue_incident *v, size_t n);

/*
 * The incident of (alert, object): 1 with *out filled, 0 when there is none,
 * -1 on error. A lookup by the unique index, never a scan; sees the
 * connection's own uncommitted writes.
 */
int queue_incident_get(struct queue *q, const char *alert, const char *cluster,
    const char *kind, const char *namespace, const char *name, struct queue_incident *out);
/* Insert in (its id is set), update every column but the key of in->id, delete by id. 0 / -1. */
int queue_incident_insert(struct queue *q, struct queue_incident *in);
int queue_incident_update(struct queue *q, const struct queue_incident *in);
int queue_incident_delete(struct queue *q, int64_t id);
/* Delete an alert's incidents whose last_at <= before (expiry), or all of them. *n (may be NULL) gets how many. 0 / -1. */
int queue_incident_expire(struct queue *q, const char *alert, double before, int64_t *n);
int queue_incident_drop_alert(struct queue *q, const char *alert, int64_t *n);
/* Every incident of alert, in the caller's transaction (none on a version 1 database). 0 / -1. */
int queue_incident_list_alert(struct queue *q, const char *alert, struct queue_incident **rows,
    size_t *n);
/* fn for each alert that has incidents, with their number, in alert order. 0 / -1. */
int queue_incident_counts(struct queue *q,
    void (*fn)(const char *alert, int64_t n, void *arg), void *arg);

/* ---- thread handles (SPEC §12): in the caller's open transaction ---- */

/*
 * The Slack message that is the parent of a thread: per target (provider,
 * channel as configured) and thread key (queue_item.thread_key), the
 * channel id and ts chat.postMessage answered. Strings owned
 * (queue_thread_clear).
 */
struct queue_thread {
	char *provider, *channel, *thread_key;
	char *channel_id, *ts;
	double opened_at, last_at, updated_at;   /* epoch seconds; updated_at 0: never */
};
void queue_thread_clear(struct queue_thread *t);
void queue_threads_free(struct queue_thread *v, size_t n);
/* By the primary key: 1 with *out, 0 when none, -1 on error. */
int queue_thread_get(struct queue *q, const char *provider, const char *channel,
    const char *thread_key, struct queue_thread *out);
/* Store t, replacing the handle of its key. 0 / -1. */
int queue_thread_put(struct queue *q, const struct queue_thread *t);
/* Set last_at (and updated_at when >= 0) of a handle, if there is one. 0 / -1. */
int queue_thread_touch(struct queue *q, const char *provider, const char *channel,
    const char *thread_key, double last_at, double updated_at);
int queue_thread_delete(struct queue *q, const char *provider, const char *channel,
    const char *thread_key);
/* Delete a provider's handles with last_at <= before, or all of them. *n (may be NULL) gets how many. 0 / -1. */
int queue_thread_expire(struct queue *q, const char *provider, double before, int64_t *n);
int queue_thread_drop_provider(struct queue *q, const char *provider, int64_t *n);
/* fn for each provider that has handles, in provider order. 0 / -1. */
int queue_thread_providers(struct queue *q, void (*fn)(const char *provider, void *arg),
    void *arg);

/* ---- meta rows (key, value): in the caller's open transaction ---- */

/* 1 with *value (new string), 0 when absent, -1 on error. */
int queue_meta_get(struct queue *q, const char *key, char **value);
/* value NULL deletes the row. 0 / -1. */
int queue_meta_put(struct queue *q, const char *key, const char *value);
/* fn for each row whose key starts with prefix, in key order. 0 / -1. */
int queue_meta_each(struct queue *q, const char *prefix,
    void (*fn)(const char *key, const char *value, void *arg), void *arg);

/* ---- the CLI (`fluxrelay incidents`): each call its own transaction ---- */

/* At most limit incidents with id > after_id, id order (none on a version 1 database). */
int queue_incident_list_page(struct queue *q, int64_t after_id, size_t limit,
    struct queue_incident **rows, size_t *n);
/* Every thread handle of a target (provider, channel), thread key order: a key range. */
int queue_thread_list_target(struct queue *q, const char *provider, const char *channel,
    struct queue_thread **rows, size_t *n);
/* Every thread handle of thread_key, provider and channel order. */
int queue_thread_list_key(struct queue *q, const char *thread_key, struct queue_thread **rows,
    size_t *n);
/* Delete incidents (silently). n == 0 with ids NULL = all. *changed gets how many. */
int queue_incident_close(struct queue *q, const int64_t *ids, size_t n, int64_t *changed);

/* ---- faults (see the top of this file) ---- */

enum queue_fault {
	QUEUE_FAULT_NONE = 0,
	QUEUE_FAULT_MALFORMED,    /* SQLite said SQLITE_CORRUPT or SQLITE_NOTADB */
	QUEUE_FAULT_REPLACED,     /* queue.db or its WAL deleted or replaced */
};
/*
 * The process's fault, NONE when there is none; msg (may be NULL) gets what
 * happened, naming the file, and what to do. Any thread.
 */
enum queue_fault queue_fault(char *msg, size_t len);
/*
 * Whether there is a fault, after checking that q's files are still the
 * ones it opened (two stat calls): a deleted or replaced one becomes
 * QUEUE_FAULT_REPLACED, so at most one more batch can land in it.
 */
bool queue_check(struct queue *q);

/*
 * Process-wide count of pending deliveries, shared by the writer (adds) and
 * the delivery thread (subtracts on ack / dead letter). Atomic.
 */
int64_t queue_pending_get(void);
void queue_pending_add(int64_t delta);
void queue_pending_set(int64_t value);

#ifdef FLUXRELAY_UNITTEST
/* Every row in a state, id order, all at once. */
int queue_list(struct queue *q, enum queue_state state, struct queue_row **rows, size_t *n);
/*
 * EXPLAIN QUERY PLAN of the statement behind a function, by the function's
 * name without "queue_" ("incident_get", "thread_touch", ...): the plan's
 * steps, one per line. New string; NULL for an unknown name or an error.
 */
char *queue_plan(struct queue *q, const char *function);
#endif

#endif
