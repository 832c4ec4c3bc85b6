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
 *    request's done callback (from the writer thread).
 */
#ifndef FLUXRELAY_QUEUE_H
#define FLUXRELAY_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dedup.h"

struct queue;

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
 * can run beside the daemon. NULL with err filled on failure.
 */
struct queue *queue_open(const char *state_dir, bool sync_full, char *err, size_t errlen);
void queue_close(struct queue *q);    /* accepts NULL */
const char *queue_errmsg(struct queue *q);

/*
 * Passive WAL checkpoint: copies committed pages into the database without
 * blocking writers (the writer's own commits never checkpoint). The delivery
 * thread calls it periodically. 0 / -1.
 */
int queue_checkpoint(struct queue *q);

/* Number of rows in a state (all providers). -1 on error. */
int64_t queue_count(struct queue *q, enum queue_state state);

/* Per-provider counts for metrics: calls fn for each (provider, pending, dead). */
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
/* Permanent failure: state = dead with the error. */
int queue_kill(struct queue *q, const int64_t *ids, size_t n, const char *error);
/* Every pending row of a provider not in names[] becomes dead ("provider removed"). */
int queue_kill_missing_providers(struct queue *q, const char *const *names, size_t n,
    int64_t *killed);

/* CLI: list rows in a state, id order. */
int queue_list(struct queue *q, enum queue_state state, struct queue_row **rows, size_t *n);
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

/* Opens its own connection, loads the dedup index, starts the thread. */
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
 * Readiness (SPEC §4: /readyz 503 when the queue is not writable): false from
 * a failed transaction of accepted requests until a write succeeds again; the
 * writer retries a probe write every few seconds meanwhile, so it recovers
 * without traffic (a not-ready pod gets none). Any thread.
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

/*
 * Process-wide count of pending deliveries, shared by the writer (adds) and
 * the delivery thread (subtracts on ack / dead letter). Atomic.
 */
int64_t queue_pending_get(void);
void queue_pending_add(int64_t delta);
void queue_pending_set(int64_t value);

#endif
