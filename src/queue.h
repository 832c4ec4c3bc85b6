/*
 * queue: the durable on-disk queue (SPEC §7, §8) in SQLite, WAL mode, at
 * STATE_DIR/queue.db. The schema and the row state machine are documented at
 * the top of queue.c.
 *
 * Two layers:
 *  - struct queue: one SQLite connection with prepared statements. Not
 *    thread-safe: each thread (writer, delivery, CLI) opens its own.
 *  - struct queue_writer: the group-commit thread. HTTP threads submit
 *    requests; the writer takes everything that has arrived (up to a cap),
 *    decides dedup, inserts in one transaction with one fsync, then calls each
 *    request's done callback (from the writer thread). It also watches the
 *    database file (readiness, faults below).
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

struct queue;

/* Bytes of an event id: util_new_id's 32 lowercase hex characters and a NUL. */
#define QUEUE_EVENT_ID_SIZE 33

#include "dedup.h"

enum queue_state { QUEUE_PENDING = 0, QUEUE_DEAD = 1 };

/* One stored delivery. Strings are owned by the row (queue_row_clear). */
struct queue_row {
	int64_t id;               /* delivery id, increasing in acceptance order */
	char event_id[33];
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
};
void queue_row_clear(struct queue_row *row);
void queue_rows_free(struct queue_row *rows, size_t n);

/*
 * Open (creating the directory's database and schema when needed). sync_full
 * selects PRAGMA synchronous=FULL, else NORMAL. busy timeout is set so the CLI
 * can run beside the daemon. NULL with err filled on failure, naming the file:
 * an SQLite file without fluxrelay's meta table is refused ("not a fluxrelay
 * queue"), never adopted; so is a file that is not an SQLite database.
 */
struct queue *queue_open(const char *state_dir, bool sync_full, char *err, size_t errlen);
void queue_close(struct queue *q);    /* accepts NULL */
const char *queue_errmsg(struct queue *q);

/*
 * Passive WAL checkpoint: copies committed pages into the database without
 * blocking writers (the writer checkpoints only as a backstop, when the WAL
 * grew past a bound that frequent passive checkpoints normally keep it
 * under). The delivery module's recorder thread calls it twice a second.
 * 0 / -1.
 */
int queue_checkpoint(struct queue *q);

/* Size of queue.db-wal in bytes (0 when absent), for tests and diagnostics. */
int64_t queue_wal_size(const char *state_dir);

/* Number of rows in a state (all providers). -1 on error. */
int64_t queue_count(struct queue *q, enum queue_state state);

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

/* Delivered: delete the rows. */
int queue_ack(struct queue *q, const int64_t *ids, size_t n);
/* Transient failure or rate limit: set next_attempt_at; attempts += add_attempt. */
int queue_defer(struct queue *q, const int64_t *ids, size_t n, int add_attempt,
    double next_attempt_at, const char *error);
/* Permanent failure: state = dead with the error, dead since now. */
int queue_kill(struct queue *q, const int64_t *ids, size_t n, const char *error);
/*
 * Every pending row of a provider not in names[] becomes dead with error
 * "provider removed", keeping its previous error after it ("provider removed;
 * last error: HTTP 500 ...").
 */
int queue_kill_missing_providers(struct queue *q, const char *const *names, size_t n,
    int64_t *killed);

/*
 * What the delivery thread decided about one row, written by queue_record.
 * The values are absolute (not increments), so writing the same outcome again
 * after a failure, or a later outcome of the same row after an earlier one,
 * is always right.
 */
enum queue_outcome_kind {
	QUEUE_OUTCOME_ACK,        /* delivered: the row is deleted */
	QUEUE_OUTCOME_DEFER,      /* pending, due again at next_attempt_at */
	QUEUE_OUTCOME_KILL,       /* dead letter (dead since the write) */
};
struct queue_outcome {
	int64_t id;
	enum queue_outcome_kind kind;
	int attempts;             /* DEFER, KILL: the row's attempts from now on */
	double next_attempt_at;   /* DEFER: wall-clock seconds */
	const char *error;        /* DEFER, KILL: last_error; NULL keeps the stored one */
};
/*
 * Write outcomes in one transaction (synchronous as the connection was
 * opened). DEFER and KILL only change pending rows. 0, or -1 with nothing
 * written.
 */
int queue_record(struct queue *q, const struct queue_outcome *o, size_t n);

/*
 * Delete at most limit dead letters that died before `before` (wall clock;
 * a dead row's next_attempt_at holds when it died, and rows killed by
 * versions that did not record it count from the later of created_at and
 * next_attempt_at). *deleted (may be NULL) gets the count. 0 / -1.
 */
int queue_expire_dead(struct queue *q, double before, size_t limit, int64_t *deleted);

/*
 * A transaction on q: BEGIN IMMEDIATE (waits for the busy timeout, never
 * fails on a read-to-write upgrade), COMMIT (a failed one is rolled back),
 * ROLLBACK (keeps the error message of what failed). 0 / -1.
 */
int queue_begin(struct queue *q);
int queue_commit(struct queue *q);
void queue_rollback(struct queue *q);

/*
 * The stored first sighting of a dedup key (SPEC §7; the decision is
 * dedup_admit's): 1 with *first_seen and event_id filled, 0 when there is
 * none, -1 on error. Sees the connection's own uncommitted writes.
 */
int queue_dedup_get(struct queue *q, const void *key, size_t keylen, double *first_seen,
    char event_id[QUEUE_EVENT_ID_SIZE]);
/* Store (or replace) the first sighting of a key, in the open transaction. 0 / -1. */
int queue_dedup_put(struct queue *q, const void *key, size_t keylen, const char *event_id,
    double first_seen);
/* Delete the first sightings older than before, in a transaction of its own. 0 / -1. */
int queue_dedup_expire(struct queue *q, double before);

/* CLI: list rows in a state, id order (all at once: tests, small queues). */
int queue_list(struct queue *q, enum queue_state state, struct queue_row **rows, size_t *n);
/*
 * CLI: at most limit rows in a state with id > after_id, id order. Each call
 * is its own short read transaction, so a long listing never holds the WAL
 * back from being checkpointed.
 */
int queue_list_page(struct queue *q, enum queue_state state, int64_t after_id, size_t limit,
    struct queue_row **rows, size_t *n);
/* CLI: dead -> pending (attempts 0, next now, created_at now). n == 0 with ids NULL = all. */
int queue_retry(struct queue *q, const int64_t *ids, size_t n, int64_t *changed);
/* CLI: delete dead rows. n == 0 with ids NULL = all. */
int queue_purge(struct queue *q, const int64_t *ids, size_t n, int64_t *changed);

/* ---- group commit ---- */

enum queue_result {
	QUEUE_RESULT_NONE = 0,
	QUEUE_RESULT_ACCEPTED,
	QUEUE_RESULT_DUPLICATE,
	QUEUE_RESULT_FULL,
	QUEUE_RESULT_ERROR,
	QUEUE_RESULT_SHUTDOWN,
};

struct queue_item {
	const char *provider;
	const char *channel;      /* NULL or "" = none */
	const char *alerts;
	const char *extra;        /* JSON object text */
};

/*
 * A request from an HTTP thread. Everything it points to stays valid until
 * done is called. The writer fills result (and, for a duplicate, event_id with
 * the first event's id) before calling done(req) from the writer thread.
 */
struct queue_req {
	char event_id[33];
	const char *event;        /* event JSON as received */
	size_t event_len;
	const struct queue_item *items;
	size_t nitems;
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
	/* Called from the writer thread after each committed batch (may be NULL). */
	void (*on_commit)(void *arg);
	void *on_commit_arg;
};

/*
 * Takes the state directory's lock (an exclusive flock on STATE/queue.lock,
 * held until stop: a second daemon on the same directory is refused with a
 * message naming the lock; the CLI never takes it), opens its own
 * connection, verifies the database (PRAGMA quick_check: a damaged file is
 * refused with a message naming it and what to do), loads the dedup index,
 * starts the thread. NULL with err filled on failure.
 */
struct queue_writer *queue_writer_start(const struct queue_writer_opts *o, char *err,
    size_t errlen);
/*
 * Never blocks on disk. After stop has begun, done is called with
 * RESULT_SHUTDOWN at once, on the calling thread, before submit returns.
 */
void queue_writer_submit(struct queue_writer *w, struct queue_req *req);
/* Commits what was submitted, stops the thread, closes. Accepts NULL. */
void queue_writer_stop(struct queue_writer *w);
/*
 * Readiness (SPEC §4: /readyz 503 when the queue is not writable): the
 * result of the writer's last commit or probe. When no commit succeeded for a
 * second, the writer probes with a write that reaches the disk (a changed
 * meta row, committed with synchronous=FULL, so the fsync happens): a
 * failing disk is noticed within about a second without traffic, and a
 * recovered one too (a not-ready pod gets no traffic). False for good after
 * a fault (see above). An atomic load: any thread, never touches the disk.
 */
bool queue_writer_healthy(struct queue_writer *w);
/* Change max_pending on reload. */
void queue_writer_set_max_pending(struct queue_writer *w, long max_pending);

/* Counters of the writer since start, for tests and diagnostics. */
struct queue_writer_stats {
	uint64_t batches;         /* groups of requests taken at once */
	uint64_t commits;         /* transactions committed (batches that inserted) */
	uint64_t requests;        /* requests answered by the writer thread */
	uint64_t accepted, duplicates, full, errors;
	size_t max_batch;         /* largest group taken at once */
	char last_error[512];     /* of the last failed transaction; "" when none */
};
void queue_writer_get_stats(struct queue_writer *w, struct queue_writer_stats *out);
/*
 * Hold (true) or release (false) the writer: while held it takes nothing, so
 * requests pile up and the next batch holds all of them. For tests; stop
 * releases it.
 */
void queue_writer_pause(struct queue_writer *w, bool paused);

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
 * Process-wide count of pending deliveries, shared by the writer (adds) and
 * the delivery thread (subtracts on ack / dead letter). Atomic.
 */
int64_t queue_pending_get(void);
void queue_pending_add(int64_t delta);
void queue_pending_set(int64_t value);

#endif
