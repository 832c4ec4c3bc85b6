/*
 * queue: the durable delivery queue of SPEC §7 and §8 in SQLite (WAL mode) at
 * STATE_DIR/queue.db: the schema, the row operations and the faults. The
 * group-commit writer thread that accepts events is queue_writer.c.
 *
 * Connections: struct queue is one SQLite connection with its prepared
 * statements, used by one thread at a time (the writer, the delivery thread,
 * its recorder and the CLI each open their own). Every statement that writes
 * runs inside BEGIN IMMEDIATE so that a busy database is waited for instead
 * of failing on a read-to-write upgrade; that is what lets `fluxrelay queue`
 * run beside the daemon.
 *
 * Waiting for the write lock (bench/README.md, "Tail latency"): SQLite's own
 * busy_timeout polls with sleeps of 1, 2, 5, 10, ... 100 ms, so an accepting
 * writer that found the recorder's transaction open slept milliseconds
 * after a transaction of a fraction of one, and the recorder slept most of
 * the time behind the writer's fsyncs. Within the process the connections
 * therefore take queue_write_lock (a mutex) before BEGIN IMMEDIATE and give
 * it back when the transaction ends: a waiter is woken the moment the
 * holder finishes. SQLite's lock then only meets other processes (the CLI),
 * for which queue_busy polls in steps of 100 us (1 ms after the first 10 ms)
 * up to QUEUE_BUSY_TIMEOUT_MS. No connection checkpoints inside its commits
 * (wal_autocheckpoint 0), which would hold the mutex through a checkpoint's
 * fsyncs: the recorder checkpoints outside any transaction (queue_checkpoint:
 * its short second pass with the mutex held lets the WAL start over), and
 * the writer's backstop (queue_wal_backstop) runs inside its own commit only.
 *
 * On-disk format (schema version 2):
 *
 *   meta(key TEXT PRIMARY KEY, value TEXT)
 *       ("schema_version", "2"); a newer version is refused at open, and an
 *       SQLite file without it is not ours: refused, never adopted.
 *       ("probe", counter): rewritten by the writer's readiness probe.
 *       ("alert:NAME", what the incidents of a notify = "changes" alert
 *       depend on in the configuration; written by the writer, which drops
 *       the alert's incidents when it changes: incident.c).
 *       ("provider:NAME", "threads" or "no threads": the same for each
 *       provider; a change drops the incidents of the alerts using it.)
 *       ("threads:NAME", a notify = "changes" alert's threaded targets,
 *       "provider\tchannel\n" each: where to drop its incidents' thread
 *       handles once the alert is gone or changed: incident.c).
 *   deliveries(
 *       id              INTEGER PRIMARY KEY AUTOINCREMENT  -- acceptance order,
 *                                                          -- never reused
 *       event_id        TEXT     32 hex chars, shared by an event's deliveries
 *       provider        TEXT     provider name from the config
 *       channel         TEXT     "" when the provider's default applies
 *       alerts          TEXT     comma-separated alert names
 *       extra           TEXT     JSON object: alert metadata and summary
 *       event           BLOB     the event JSON exactly as received
 *       state           INTEGER  0 pending, 1 dead (enum queue_state)
 *       attempts        INTEGER  transient failures so far
 *       next_attempt_at REAL     epoch seconds; 0 = due now. For a dead row:
 *                                when it died (dead_max_age counts from the
 *                                later of this and created_at, so rows that
 *                                died before this was recorded still expire)
 *       created_at      REAL     epoch seconds of acceptance (or of `retry`)
 *       last_error      TEXT     NULL when none, e.g. "HTTP 404 channel_not_found"
 *       kind            INTEGER  enum queue_kind: 0 event, 1 opened, 2 reminder,
 *                                3 recovered, 4 reply                    (v2)
 *       thread_key      TEXT     "cluster/kind/namespace/name" for a target
 *                                with threads (slack-bot, threads = true),
 *                                else ""                                  (v2)
 *       incident        TEXT     NULL for events; for the other kinds a JSON
 *                                object for rendering: {"alert", "state" (the
 *                                kind's name), "since" (epoch seconds the
 *                                incident opened), "failures", "last_message",
 *                                "reason", "revision", and for recovered
 *                                "duration" (seconds open)}               (v2)
 *       cluster         TEXT     the sending client's name (auth.clients), ""
 *                                when none                                (v2)
 *   index deliveries_by_target(state, provider, channel, id)
 *       serves the per-target FIFO head, the target list and the counts.
 *   dedup(key BLOB PRIMARY KEY, event_id TEXT, first_seen REAL) WITHOUT ROWID
 *       first sighting of each dedup key (SPEC §7); written in the same
 *       transaction as the deliveries it admits, so the window survives a
 *       restart exactly as far as the acceptance did.
 *   incidents(                                                           (v2)
 *       id INTEGER PRIMARY KEY AUTOINCREMENT, alert, cluster (the client's name, "" without
 *       auth.clients), kind, namespace ("" when absent), name, opened_at, last_at,
 *       last_notified_at (REAL epoch seconds), failures INTEGER,
 *       last_message, last_norm (hex of a hash of the normalized message),
 *       last_reason, last_revision,
 *       UNIQUE(alert, cluster, kind, namespace, name))
 *       the open incidents of notify = "changes" alerts (SPEC §12), written
 *       in the same transaction as the deliveries they cause; looked up by
 *       the unique index only.
 *   index incidents_by_age(alert, last_at): the expiry sweep.
 *   threads(provider, channel, thread_key, channel_id, ts, opened_at,       (v2)
 *       last_at, updated_at, PRIMARY KEY(provider, channel, thread_key))
 *       WITHOUT ROWID: the parent message of each thread (slack-bot with
 *       threads = true): the channel id and ts Slack answered.
 *
 * Version 1 (the first stage) had neither the three columns nor the two
 * tables. queue_upgrade adds them in place, in one transaction, at daemon
 * start; other connections read a version 1 file as it is (the columns'
 * defaults, no incidents).
 *
 * Webhook URLs and tokens are never stored: rows name the provider only.
 *
 * STATE_DIR/queue.lock (empty) carries the daemon's exclusive flock, so two
 * daemons never share a queue.
 *
 * Row state machine (the delivery module's outcomes are written by
 * queue_record, with absolute values, so a write retried after a failure is
 * still right):
 *
 *     (accepted) --> pending --(delivered: ACK)--> deleted
 *                     |  ^  \--(transient/429: DEFER)--> pending
 *                     |  |
 *   DEAD (dead letter):  | queue_retry (attempts 0, due now, created_at now)
 *   permanent error,  v  |
 *   max_attempts,     dead --(queue_purge)--> deleted
 *   max_age, provider removed
 *                     dead --(queue_expire_dead: queue.dead_max_age)--> deleted
 *
 * Delivery order per target is id order; a dead row no longer holds its target.
 */
#include "queue.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

#define QUEUE_SCHEMA_VERSION 2
#define QUEUE_STR(x) QUEUE_STR_(x)
#define QUEUE_STR_(x) #x
#define QUEUE_BUSY_TIMEOUT_MS 5000
/*
 * WAL size (pages) at which the writer checkpoints by itself, right after
 * its commit. A passive checkpoint under a steady stream of commits seldom
 * catches the WAL's end, and SQLite only starts the WAL over once every
 * frame is copied; the recorder's checkpoints (queue_checkpoint) catch it
 * with a second pass under the write lock when the disk is quick. When it is
 * not, this backstop, paid at most once per this many pages, is what bounds
 * the WAL (bench/README.md, "Faults" and "Tail latency").
 */
#ifndef QUEUE_WAL_PAGES_MAX
#define QUEUE_WAL_PAGES_MAX 2048
#endif
/*
 * Longest first pass (seconds) of queue_checkpoint after which it copies
 * the rest with the write lock held.
 */
#define QUEUE_CATCHUP_MAX 0.05
/* Bytes the WAL file is truncated to when SQLite starts it over. */
#ifndef QUEUE_JOURNAL_SIZE_LIMIT
#define QUEUE_JOURNAL_SIZE_LIMIT (8 * 1024 * 1024)
#endif

#define QUEUE_COLUMNS_V1 \
	"id, event_id, provider, channel, alerts, extra, event, state, attempts, " \
	"next_attempt_at, created_at, last_error"
#define QUEUE_COLUMNS QUEUE_COLUMNS_V1 ", kind, thread_key, incident, cluster"
/* A version 1 file's rows, with the defaults of the version 2 columns. */
#define QUEUE_COLUMNS_AS_V2 QUEUE_COLUMNS_V1 ", 0, '', NULL, ''"
#define QUEUE_INCIDENT_COLUMNS \
	"id, alert, cluster, kind, namespace, name, opened_at, last_at, last_notified_at, " \
	"failures, last_message, last_norm, last_reason, last_revision"
#define QUEUE_THREAD_COLUMNS \
	"provider, channel, thread_key, channel_id, ts, opened_at, last_at, updated_at"

enum queue_stmt_id {
	QUEUE_ST_BEGIN,
	QUEUE_ST_COMMIT,
	QUEUE_ST_ROLLBACK,
	QUEUE_ST_COUNT,
	QUEUE_ST_COUNT_BY_PROVIDER,
	QUEUE_ST_TARGETS,
	QUEUE_ST_TARGET_NEXT,
	QUEUE_ST_HEAD,
	QUEUE_ST_ACK,
	QUEUE_ST_RETRY_ONE,
	QUEUE_ST_RETRY_ALL,
	QUEUE_ST_PURGE_ONE,
	QUEUE_ST_PURGE_ALL,
	QUEUE_ST_INSERT,
	QUEUE_ST_DEDUP_GET,
	QUEUE_ST_DEDUP_PUT,
	QUEUE_ST_DEDUP_EXPIRE,
	QUEUE_ST_RECORD_DEFER,
	QUEUE_ST_RECORD_DEAD,
	QUEUE_ST_EXPIRE_DEAD,
	QUEUE_ST_LIST_PAGE,
	QUEUE_ST_PROBE,
	QUEUE_ST_INC_GET,
	QUEUE_ST_INC_INSERT,
	QUEUE_ST_INC_UPDATE,
	QUEUE_ST_INC_DELETE,
	QUEUE_ST_INC_EXPIRE,
	QUEUE_ST_INC_DROP,
	QUEUE_ST_INC_COUNTS,
	QUEUE_ST_INC_PAGE,
	QUEUE_ST_INC_OF_ALERT,
	QUEUE_ST_INC_CLOSE_ALL,
	QUEUE_ST_THR_GET,
	QUEUE_ST_THR_PUT,
	QUEUE_ST_THR_TOUCH,
	QUEUE_ST_THR_DELETE,
	QUEUE_ST_THR_EXPIRE,
	QUEUE_ST_THR_DROP,
	QUEUE_ST_THR_PROVIDERS,
	QUEUE_ST_THR_KEY,
	QUEUE_ST_THR_TARGET,
	QUEUE_ST_META_GET,
	QUEUE_ST_META_PUT,
	QUEUE_ST_META_DELETE,
	QUEUE_ST_META_EACH,
	QUEUE_ST_N
};

static const char *const queue_sql[QUEUE_ST_N] = {
	[QUEUE_ST_BEGIN] = "BEGIN IMMEDIATE",
	[QUEUE_ST_COMMIT] = "COMMIT",
	[QUEUE_ST_ROLLBACK] = "ROLLBACK",
	[QUEUE_ST_COUNT] = "SELECT count(*) FROM deliveries WHERE state = ?1",
	/* In index order: one pass, no sort. */
	[QUEUE_ST_COUNT_BY_PROVIDER] =
	    "SELECT state, provider, count(*) FROM deliveries GROUP BY state, provider",
	/* A skip scan: one index seek per target, not one step per pending row. */
	[QUEUE_ST_TARGETS] =
	    "SELECT provider, channel FROM deliveries WHERE state = 0 "
	    "ORDER BY provider, channel LIMIT 1",
	[QUEUE_ST_TARGET_NEXT] =
	    "SELECT provider, channel FROM deliveries WHERE state = 0 "
	    "AND (provider, channel) > (?1, ?2) ORDER BY provider, channel LIMIT 1",
	[QUEUE_ST_HEAD] =
	    "SELECT " QUEUE_COLUMNS " FROM deliveries "
	    "WHERE state = 0 AND provider = ?1 AND channel = ?2 ORDER BY id LIMIT ?3",
	[QUEUE_ST_ACK] = "DELETE FROM deliveries WHERE id = ?1",
	[QUEUE_ST_RETRY_ONE] =
	    "UPDATE deliveries SET state = 0, attempts = 0, next_attempt_at = 0, "
	    "created_at = ?2, last_error = NULL WHERE id = ?1 AND state = 1",
	[QUEUE_ST_RETRY_ALL] =
	    "UPDATE deliveries SET state = 0, attempts = 0, next_attempt_at = 0, "
	    "created_at = ?1, last_error = NULL WHERE state = 1",
	[QUEUE_ST_PURGE_ONE] = "DELETE FROM deliveries WHERE id = ?1 AND state = 1",
	[QUEUE_ST_PURGE_ALL] = "DELETE FROM deliveries WHERE state = 1",
	[QUEUE_ST_INSERT] =
	    "INSERT INTO deliveries (event_id, provider, channel, alerts, extra, event, "
	    "state, attempts, next_attempt_at, created_at, kind, thread_key, incident, cluster) "
	    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, 0, 0, ?7, ?8, ?9, ?10, ?11)",
	[QUEUE_ST_DEDUP_GET] = "SELECT event_id, first_seen FROM dedup WHERE key = ?1",
	/* A stored sighting is replaced only once its window ran out (the
	 * negation of dedup_admit's "now - first_seen < window"). */
	[QUEUE_ST_DEDUP_PUT] =
	    "INSERT INTO dedup (key, event_id, first_seen) VALUES (?1, ?2, ?3) "
	    "ON CONFLICT (key) DO UPDATE SET event_id = excluded.event_id, "
	    "first_seen = excluded.first_seen WHERE NOT (?3 - dedup.first_seen < ?4)",
	[QUEUE_ST_DEDUP_EXPIRE] = "DELETE FROM dedup WHERE first_seen < ?1",
	[QUEUE_ST_RECORD_DEFER] =
	    "UPDATE deliveries SET attempts = ?2, next_attempt_at = ?3, "
	    "last_error = coalesce(?4, last_error) WHERE id = ?1 AND state = 0",
	[QUEUE_ST_RECORD_DEAD] =
	    "UPDATE deliveries SET state = 1, attempts = ?2, next_attempt_at = ?3, "
	    "last_error = coalesce(?4, last_error) WHERE id = ?1 AND state = 0",
	[QUEUE_ST_EXPIRE_DEAD] =
	    "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries "
	    "WHERE state = 1 AND max(created_at, next_attempt_at) < ?1 LIMIT ?2)",
	[QUEUE_ST_LIST_PAGE] =
	    "SELECT " QUEUE_COLUMNS " FROM deliveries WHERE state = ?1 AND id > ?2 "
	    "ORDER BY id LIMIT ?3",
	[QUEUE_ST_PROBE] =
	    "INSERT OR REPLACE INTO meta (key, value) VALUES ('probe', ?1)",
	/* The unique index, whole key: one seek. */
	[QUEUE_ST_INC_GET] =
	    "SELECT " QUEUE_INCIDENT_COLUMNS " FROM incidents WHERE alert = ?1 AND cluster = ?2 "
	    "AND kind = ?3 AND namespace = ?4 AND name = ?5",
	[QUEUE_ST_INC_INSERT] =
	    "INSERT INTO incidents (alert, cluster, kind, namespace, name, opened_at, last_at, "
	    "last_notified_at, failures, last_message, last_norm, last_reason, last_revision) "
	    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
	[QUEUE_ST_INC_UPDATE] =
	    "UPDATE incidents SET opened_at = ?2, last_at = ?3, last_notified_at = ?4, "
	    "failures = ?5, last_message = ?6, last_norm = ?7, last_reason = ?8, "
	    "last_revision = ?9 WHERE id = ?1",
	[QUEUE_ST_INC_DELETE] = "DELETE FROM incidents WHERE id = ?1",
	/* incidents_by_age: a range of one alert's entries. */
	[QUEUE_ST_INC_EXPIRE] = "DELETE FROM incidents WHERE alert = ?1 AND last_at <= ?2",
	[QUEUE_ST_INC_DROP] = "DELETE FROM incidents WHERE alert = ?1",
	/* In index order: one pass, no sort. */
	[QUEUE_ST_INC_COUNTS] = "SELECT alert, count(*) FROM incidents GROUP BY alert",
	[QUEUE_ST_INC_PAGE] =
	    "SELECT " QUEUE_INCIDENT_COLUMNS " FROM incidents WHERE id > ?1 ORDER BY id LIMIT ?2",
	/* The unique index's first column: a range, no scan. */
	[QUEUE_ST_INC_OF_ALERT] =
	    "SELECT " QUEUE_INCIDENT_COLUMNS " FROM incidents WHERE alert = ?1",
	[QUEUE_ST_INC_CLOSE_ALL] = "DELETE FROM incidents",
	[QUEUE_ST_THR_GET] =
	    "SELECT " QUEUE_THREAD_COLUMNS " FROM threads WHERE provider = ?1 AND channel = ?2 "
	    "AND thread_key = ?3",
	[QUEUE_ST_THR_PUT] =
	    "INSERT OR REPLACE INTO threads (" QUEUE_THREAD_COLUMNS ") "
	    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	[QUEUE_ST_THR_TOUCH] =
	    "UPDATE threads SET last_at = ?4, updated_at = coalesce(?5, updated_at) "
	    "WHERE provider = ?1 AND channel = ?2 AND thread_key = ?3",
	[QUEUE_ST_THR_DELETE] =
	    "DELETE FROM threads WHERE provider = ?1 AND channel = ?2 AND thread_key = ?3",
	[QUEUE_ST_THR_EXPIRE] = "DELETE FROM threads WHERE provider = ?1 AND last_at <= ?2",
	[QUEUE_ST_THR_DROP] = "DELETE FROM threads WHERE provider = ?1",
	[QUEUE_ST_THR_PROVIDERS] = "SELECT DISTINCT provider FROM threads ORDER BY provider",
	[QUEUE_ST_THR_KEY] =
	    "SELECT " QUEUE_THREAD_COLUMNS " FROM threads WHERE thread_key = ?1 "
	    "ORDER BY provider, channel",
	/* A range of the primary key. */
	[QUEUE_ST_THR_TARGET] =
	    "SELECT " QUEUE_THREAD_COLUMNS " FROM threads WHERE provider = ?1 AND channel = ?2 "
	    "ORDER BY thread_key",
	[QUEUE_ST_META_GET] = "SELECT value FROM meta WHERE key = ?1",
	[QUEUE_ST_META_PUT] = "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
	[QUEUE_ST_META_DELETE] = "DELETE FROM meta WHERE key = ?1",
	/* ?1 <= key < ?1 || char(0x10FFFF): a range of the primary key. */
	[QUEUE_ST_META_EACH] =
	    "SELECT key, value FROM meta WHERE key >= ?1 AND key < ?1 || char(1114111) "
	    "ORDER BY key",
};

/* What a version 1 file needs instead (queue_open reads one as it is). */
static const char queue_v2_only[] = "";   /* no such statement on version 1 */
static const char *const queue_sql_v1[QUEUE_ST_N] = {
	[QUEUE_ST_HEAD] =
	    "SELECT " QUEUE_COLUMNS_AS_V2 " FROM deliveries "
	    "WHERE state = 0 AND provider = ?1 AND channel = ?2 ORDER BY id LIMIT ?3",
	[QUEUE_ST_LIST_PAGE] =
	    "SELECT " QUEUE_COLUMNS_AS_V2 " FROM deliveries WHERE state = ?1 AND id > ?2 "
	    "ORDER BY id LIMIT ?3",
	[QUEUE_ST_INSERT] = queue_v2_only,
	[QUEUE_ST_INC_GET] = queue_v2_only,
	[QUEUE_ST_INC_INSERT] = queue_v2_only,
	[QUEUE_ST_INC_UPDATE] = queue_v2_only,
	[QUEUE_ST_INC_DELETE] = queue_v2_only,
	[QUEUE_ST_INC_EXPIRE] = queue_v2_only,
	[QUEUE_ST_INC_DROP] = queue_v2_only,
	[QUEUE_ST_INC_COUNTS] = queue_v2_only,
	[QUEUE_ST_INC_PAGE] = queue_v2_only,
	[QUEUE_ST_INC_OF_ALERT] = queue_v2_only,
	[QUEUE_ST_INC_CLOSE_ALL] = queue_v2_only,
	[QUEUE_ST_THR_GET] = queue_v2_only,
	[QUEUE_ST_THR_PUT] = queue_v2_only,
	[QUEUE_ST_THR_TOUCH] = queue_v2_only,
	[QUEUE_ST_THR_DELETE] = queue_v2_only,
	[QUEUE_ST_THR_EXPIRE] = queue_v2_only,
	[QUEUE_ST_THR_DROP] = queue_v2_only,
	[QUEUE_ST_THR_PROVIDERS] = queue_v2_only,
	[QUEUE_ST_THR_KEY] = queue_v2_only,
	[QUEUE_ST_THR_TARGET] = queue_v2_only,
};

/* What version 2 added: created with the rest in a new file, or by queue_upgrade. */
#define QUEUE_SCHEMA_V2_TABLES \
	"CREATE TABLE IF NOT EXISTS incidents (" \
	"  id INTEGER PRIMARY KEY AUTOINCREMENT," \
	"  alert TEXT NOT NULL," \
	"  cluster TEXT NOT NULL DEFAULT ''," \
	"  kind TEXT NOT NULL," \
	"  namespace TEXT NOT NULL DEFAULT ''," \
	"  name TEXT NOT NULL," \
	"  opened_at REAL NOT NULL," \
	"  last_at REAL NOT NULL," \
	"  last_notified_at REAL NOT NULL," \
	"  failures INTEGER NOT NULL," \
	"  last_message TEXT NOT NULL DEFAULT ''," \
	"  last_norm TEXT NOT NULL DEFAULT ''," \
	"  last_reason TEXT NOT NULL DEFAULT ''," \
	"  last_revision TEXT NOT NULL DEFAULT ''," \
	"  UNIQUE (alert, cluster, kind, namespace, name));" \
	"CREATE INDEX IF NOT EXISTS incidents_by_age ON incidents (alert, last_at);" \
	"CREATE TABLE IF NOT EXISTS threads (" \
	"  provider TEXT NOT NULL," \
	"  channel TEXT NOT NULL," \
	"  thread_key TEXT NOT NULL," \
	"  channel_id TEXT NOT NULL," \
	"  ts TEXT NOT NULL," \
	"  opened_at REAL NOT NULL," \
	"  last_at REAL NOT NULL," \
	"  updated_at REAL NOT NULL DEFAULT 0," \
	"  PRIMARY KEY (provider, channel, thread_key)) WITHOUT ROWID;"

/* A new file: the current schema. The version 2 columns of deliveries come
 * last, where ALTER TABLE puts them in a migrated file. */
static const char queue_schema[] =
	"CREATE TABLE IF NOT EXISTS meta ("
	"  key TEXT PRIMARY KEY, value TEXT NOT NULL);"
	"CREATE TABLE IF NOT EXISTS deliveries ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  event_id TEXT NOT NULL,"
	"  provider TEXT NOT NULL,"
	"  channel TEXT NOT NULL DEFAULT '',"
	"  alerts TEXT NOT NULL DEFAULT '',"
	"  extra TEXT NOT NULL DEFAULT '{}',"
	"  event BLOB NOT NULL,"
	"  state INTEGER NOT NULL DEFAULT 0,"
	"  attempts INTEGER NOT NULL DEFAULT 0,"
	"  next_attempt_at REAL NOT NULL DEFAULT 0,"
	"  created_at REAL NOT NULL,"
	"  last_error TEXT,"
	"  kind INTEGER NOT NULL DEFAULT 0,"
	"  thread_key TEXT NOT NULL DEFAULT '',"
	"  incident TEXT,"
	"  cluster TEXT NOT NULL DEFAULT '');"
	"CREATE INDEX IF NOT EXISTS deliveries_by_target"
	"  ON deliveries (state, provider, channel, id);"
	"CREATE TABLE IF NOT EXISTS dedup ("
	"  key BLOB PRIMARY KEY, event_id TEXT NOT NULL, first_seen REAL NOT NULL)"
	"  WITHOUT ROWID;"
	QUEUE_SCHEMA_V2_TABLES
	"INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', '"
	QUEUE_STR(QUEUE_SCHEMA_VERSION) "');";

/* Version 1 -> 2, in place: ADD COLUMN with a constant default rewrites no row. */
static const char queue_migrate_v2[] =
	"ALTER TABLE deliveries ADD COLUMN kind INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE deliveries ADD COLUMN thread_key TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE deliveries ADD COLUMN incident TEXT;"
	"ALTER TABLE deliveries ADD COLUMN cluster TEXT NOT NULL DEFAULT '';"
	QUEUE_SCHEMA_V2_TABLES
	"UPDATE meta SET value = '2' WHERE key = 'schema_version';";

struct queue {
	sqlite3 *db;
	sqlite3_stmt *st[QUEUE_ST_N];   /* prepared on first use, kept until close */
	char err[512];
	char *path;                     /* STATE_DIR/queue.db */
	/* The files this connection opened, to notice their replacement. */
	dev_t dev, wal_dev;
	ino_t ino, wal_ino;
	bool has_wal;
	bool sync_full;                 /* opened with synchronous=FULL */
	int version;                    /* the file's schema version (queue_sql_v1) */
	bool holds_write;               /* holds queue_write_lock (a transaction is open) */
	double busy_since;              /* util_mono() of the first busy call of a wait */
};

/*
 * The process's write lock: held from before BEGIN IMMEDIATE to the end of
 * the transaction by whichever connection writes (see the top of the file).
 */
static pthread_mutex_t queue_write_lock = PTHREAD_MUTEX_INITIALIZER;
/* queue_get_lock_stats's counters. */
static _Atomic uint64_t queue_lock_waits, queue_lock_wait_ns, queue_busy_calls,
    queue_busy_sleep_ns;

/* Pending deliveries in this process; see queue_pending_get. Atomic, no lock. */
static _Atomic int64_t queue_pending_count;

/* The sticky fault of queue_fault: set once, under queue_fault_lock. */
static pthread_mutex_t queue_fault_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int queue_fault_kind;
static char queue_fault_msg[768];

/* ---------------------------------------------------------------- helpers */

static void
queue_fault_set(enum queue_fault kind, const char *msg)
{
	pthread_mutex_lock(&queue_fault_lock);
	if (atomic_load(&queue_fault_kind) == QUEUE_FAULT_NONE) {
		snprintf(queue_fault_msg, sizeof(queue_fault_msg), "%s", msg);
		atomic_store(&queue_fault_kind, (int)kind);
	}
	pthread_mutex_unlock(&queue_fault_lock);
}

enum queue_fault
queue_fault(char *msg, size_t len)
{
	enum queue_fault kind = (enum queue_fault)atomic_load(&queue_fault_kind);
	if (msg != NULL && len > 0) {
		pthread_mutex_lock(&queue_fault_lock);
		snprintf(msg, len, "%s", kind == QUEUE_FAULT_NONE ? "" : queue_fault_msg);
		pthread_mutex_unlock(&queue_fault_lock);
	}
	return kind;
}

/*
 * Record "what: sqlite's message" as the connection's last error. A malformed
 * database is a fault of the whole process (SPEC §4): a damaged file does not
 * heal by retrying.
 */
static void
queue_fail(struct queue *q, const char *what)
{
	snprintf(q->err, sizeof(q->err), "%s: %s", what,
	    q->db ? sqlite3_errmsg(q->db) : "no database");
	int rc = q->db ? sqlite3_errcode(q->db) & 0xff : SQLITE_OK;
	if (rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB) {
		char msg[768];
		snprintf(msg, sizeof(msg), "%s is malformed (%s): stop fluxrelay, move the file "
		    "aside with its -wal and -shm files (deliveries still in it are lost) or "
		    "restore it from a backup, then start again",
		    q->path ? q->path : "queue.db", sqlite3_errmsg(q->db));
		queue_fault_set(QUEUE_FAULT_MALFORMED, msg);
	}
}

/* The prepared statement for id, reset and unbound; NULL with q->err set. */
static sqlite3_stmt *
queue_stmt(struct queue *q, enum queue_stmt_id id)
{
	if (q->st[id] == NULL) {
		const char *sql = queue_sql[id];
		if (q->version < 2 && queue_sql_v1[id] != NULL) {
			if (queue_sql_v1[id] == queue_v2_only) {
				snprintf(q->err, sizeof(q->err), "%s has schema version %d: the daemon "
				    "upgrades it when it starts", q->path, q->version);
				return NULL;
			}
			sql = queue_sql_v1[id];
		}
		if (sqlite3_prepare_v3(q->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
		    &q->st[id], NULL) != SQLITE_OK) {
			queue_fail(q, "prepare");
			q->st[id] = NULL;
			return NULL;
		}
	} else {
		sqlite3_reset(q->st[id]);
		sqlite3_clear_bindings(q->st[id]);
	}
	return q->st[id];
}

/* Run a statement that returns no rows; leaves it reset. 0 / -1. */
static int
queue_exec_stmt(struct queue *q, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);
	if (rc != SQLITE_DONE) {
		queue_fail(q, what);
		sqlite3_reset(st);
		return -1;
	}
	sqlite3_reset(st);
	return 0;
}

static int
queue_simple(struct queue *q, enum queue_stmt_id id, const char *what)
{
	sqlite3_stmt *st = queue_stmt(q, id);
	if (st == NULL)
		return -1;
	return queue_exec_stmt(q, st, what);
}

static uint64_t
queue_ns(const struct timespec *ts)
{
	return (uint64_t)ts->tv_sec * 1000000000u + (uint64_t)ts->tv_nsec;
}

/*
 * Take queue_write_lock for q, waiting at most QUEUE_BUSY_TIMEOUT_MS (a
 * holder stuck that long fails the transaction, as SQLite's busy timeout
 * would). 0 / -1 with q->err set.
 */
static int
queue_write_acquire(struct queue *q)
{
	if (q->holds_write)
		return 0;
	if (pthread_mutex_trylock(&queue_write_lock) != 0) {
		struct timespec t0, t1, until;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += QUEUE_BUSY_TIMEOUT_MS / 1000;
		until.tv_nsec += (QUEUE_BUSY_TIMEOUT_MS % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		int rc = pthread_mutex_timedlock(&queue_write_lock, &until);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		atomic_fetch_add(&queue_lock_waits, 1);
		atomic_fetch_add(&queue_lock_wait_ns, queue_ns(&t1) - queue_ns(&t0));
		if (rc != 0) {
			snprintf(q->err, sizeof(q->err), "begin: the queue's write lock is held by "
			    "another thread for more than %d ms", QUEUE_BUSY_TIMEOUT_MS);
			return -1;
		}
	}
	q->holds_write = true;
	return 0;
}

static void
queue_write_release(struct queue *q)
{
	if (!q->holds_write)
		return;
	q->holds_write = false;
	pthread_mutex_unlock(&queue_write_lock);
}

/*
 * SQLite's busy handler: the database is locked by another process (within
 * this one, queue_write_lock is waited for first). Short sleeps, so the
 * wait ends soon after the lock is free; 0 (give up: SQLITE_BUSY) after
 * QUEUE_BUSY_TIMEOUT_MS.
 */
static int
queue_busy(void *arg, int count)
{
	struct queue *q = arg;
	double now = util_mono();
	if (count == 0)
		q->busy_since = now;
	else if (now - q->busy_since >= QUEUE_BUSY_TIMEOUT_MS / 1000.0)
		return 0;
	struct timespec ts = { 0, now - q->busy_since < 0.01 ? 100000L : 1000000L };
	atomic_fetch_add(&queue_busy_calls, 1);
	atomic_fetch_add(&queue_busy_sleep_ns, (uint64_t)ts.tv_nsec);
	nanosleep(&ts, NULL);
	return 1;
}

void
queue_get_lock_stats(struct queue_lock_stats *out)
{
	out->lock_waits = atomic_load(&queue_lock_waits);
	out->lock_wait_ns = atomic_load(&queue_lock_wait_ns);
	out->busy_calls = atomic_load(&queue_busy_calls);
	out->busy_sleep_ns = atomic_load(&queue_busy_sleep_ns);
}

int
queue_begin(struct queue *q)
{
	/* A begin inside an open transaction fails, and leaves it its lock. */
	bool held = q->holds_write;
	if (queue_write_acquire(q) < 0)
		return -1;
	if (queue_simple(q, QUEUE_ST_BEGIN, "begin") < 0) {
		if (!held)
			queue_write_release(q);
		return -1;
	}
	return 0;
}

int
queue_commit(struct queue *q)
{
	if (queue_simple(q, QUEUE_ST_COMMIT, "commit") < 0) {
		/* A failed COMMIT may leave the transaction open (SQLITE_BUSY). */
		if (!sqlite3_get_autocommit(q->db))
			sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
		queue_write_release(q);
		return -1;
	}
	queue_write_release(q);
	return 0;
}

/* Roll back after an error, keeping the error message of the failure. */
void
queue_rollback(struct queue *q)
{
	if (sqlite3_get_autocommit(q->db)) {
		queue_write_release(q);
		return;
	}
	char saved[sizeof(q->err)];
	memcpy(saved, q->err, sizeof(saved));
	if (queue_simple(q, QUEUE_ST_ROLLBACK, "rollback") < 0)
		sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
	memcpy(q->err, saved, sizeof(saved));
	queue_write_release(q);
}

/* Copy a text column into a new string; NULL for SQL NULL. */
static char *
queue_col_text(sqlite3_stmt *st, int col)
{
	if (sqlite3_column_type(st, col) == SQLITE_NULL)
		return NULL;
	const unsigned char *s = sqlite3_column_text(st, col);
	int n = sqlite3_column_bytes(st, col);
	return util_strndup(s ? (const char *)s : "", (size_t)n);
}

/* Fill row from the current result row of a QUEUE_COLUMNS select. */
static void
queue_read_row(sqlite3_stmt *st, struct queue_row *row)
{
	memset(row, 0, sizeof(*row));
	row->id = sqlite3_column_int64(st, 0);
	const unsigned char *eid = sqlite3_column_text(st, 1);
	snprintf(row->event_id, sizeof(row->event_id), "%s", eid ? (const char *)eid : "");
	row->provider = queue_col_text(st, 2);
	row->channel = queue_col_text(st, 3);
	if (row->channel == NULL)
		row->channel = util_strdup("");
	row->alerts = queue_col_text(st, 4);
	row->extra = queue_col_text(st, 5);
	const void *ev = sqlite3_column_blob(st, 6);
	int evlen = sqlite3_column_bytes(st, 6);
	row->event = util_strndup(ev ? ev : "", (size_t)evlen);
	row->event_len = (size_t)evlen;
	row->state = sqlite3_column_int(st, 7) == QUEUE_DEAD ? QUEUE_DEAD : QUEUE_PENDING;
	row->attempts = sqlite3_column_int(st, 8);
	row->next_attempt_at = sqlite3_column_double(st, 9);
	row->created_at = sqlite3_column_double(st, 10);
	row->last_error = queue_col_text(st, 11);
	int kind = sqlite3_column_int(st, 12);
	row->kind = kind >= 0 && kind < QUEUE_NKINDS ? (enum queue_kind)kind : QUEUE_KIND_EVENT;
	row->thread_key = queue_col_text(st, 13);
	if (row->thread_key == NULL)
		row->thread_key = util_strdup("");
	row->incident = queue_col_text(st, 14);
	row->cluster = queue_col_text(st, 15);
	if (row->cluster == NULL)
		row->cluster = util_strdup("");
}

/*
 * Step st and collect every row into a new array (*rows, *n; caller frees
 * with queue_rows_free). 0 / -1; on failure nothing is returned.
 */
static int
queue_collect_rows(struct queue *q, sqlite3_stmt *st, struct queue_row **rows, size_t *n)
{
	struct util_buf b = {0};          /* of struct queue_row */
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct queue_row row;
		queue_read_row(st, &row);
		util_buf_append(&b, (const char *)&row, sizeof(row));
	}
	if (rc != SQLITE_DONE)
		queue_fail(q, "select");
	sqlite3_reset(st);
	*rows = (struct queue_row *)b.data;
	*n = b.len / sizeof(**rows);
	if (rc == SQLITE_DONE)
		return 0;
	queue_rows_free(*rows, *n);
	*rows = NULL;
	*n = 0;
	return -1;
}

/* mkdir -p with mode 0700 for every component created; existing ones are left as they are. */
static int
queue_mkdirs(const char *dir, char *err, size_t errlen)
{
	char *path = util_strdup(dir);
	int ret = -1;
	size_t len = strlen(path);
	while (len > 1 && path[len - 1] == '/')
		path[--len] = '\0';
	for (char *p = path + 1; ; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;
		*p = '\0';
		if (mkdir(path, 0700) < 0 && errno != EEXIST) {
			snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
			goto out;
		}
		*p = c;
		if (c == '\0')
			break;
	}
	struct stat st;
	if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s is not a directory", path);
		goto out;
	}
	ret = 0;
out:
	free(path);
	return ret;
}

/* Number of objects (tables, indexes, ...) in the database; -1 on error. */
static int64_t
queue_schema_objects(struct queue *q)
{
	sqlite3_stmt *st = NULL;
	int64_t n = -1;
	if (sqlite3_prepare_v2(q->db, "SELECT count(*) FROM sqlite_master", -1, &st,
	    NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	else
		queue_fail(q, "read schema");
	sqlite3_finalize(st);
	return n;
}

/*
 * Read the schema version (*version 0: a new, empty database); refuse a
 * newer schema, and a database that has tables but not fluxrelay's meta row:
 * the state directory may point at some other program's file, which must not
 * be adopted, nor even switched to WAL mode (that rewrites its header). Reads
 * only, so opening an existing database (e.g. by the CLI beside the daemon)
 * does not take the write lock.
 */
static int
queue_schema_check(struct queue *q, int *version_out)
{
	sqlite3_stmt *st = NULL;
	int version = 0, ret = -1;
	bool has_meta = false;
	if (sqlite3_prepare_v2(q->db,
	    "SELECT value FROM meta WHERE key = 'schema_version'", -1, &st, NULL) == SQLITE_OK) {
		has_meta = true;
		int rc = sqlite3_step(st);
		if (rc == SQLITE_ROW)
			version = atoi((const char *)sqlite3_column_text(st, 0));
		else if (rc != SQLITE_DONE) {
			queue_fail(q, "read schema version");
			goto out;
		}
	} else if ((sqlite3_errcode(q->db) & 0xff) != SQLITE_ERROR) {
		/* Not "no such table": the file itself is the problem. */
		queue_fail(q, "read schema version");
		goto out;
	}
	if (version == 0) {
		int64_t objects = queue_schema_objects(q);
		if (objects < 0)
			goto out;
		if (objects > 0 || has_meta) {
			snprintf(q->err, sizeof(q->err), "not a fluxrelay queue (an SQLite database "
			    "without fluxrelay's meta table): refusing to use it; point state_dir "
			    "elsewhere or move the file aside");
			goto out;
		}
	}
	if (version > QUEUE_SCHEMA_VERSION) {
		snprintf(q->err, sizeof(q->err),
		    "queue.db has schema version %d; this fluxrelay understands up to %d",
		    version, QUEUE_SCHEMA_VERSION);
		goto out;
	}
	*version_out = version;
	ret = 0;
out:
	sqlite3_finalize(st);
	return ret;
}

/* Create the schema of a new database (concurrent creators are harmless). */
static int
queue_schema_create(struct queue *q)
{
	int ret = -1;
	if (sqlite3_exec(q->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		queue_fail(q, "create schema");
		goto out;
	}
	if (sqlite3_exec(q->db, queue_schema, NULL, NULL, NULL) != SQLITE_OK) {
		queue_fail(q, "create schema");
		sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
		goto out;
	}
	if (sqlite3_exec(q->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		queue_fail(q, "create schema");
		if (!sqlite3_get_autocommit(q->db))
			sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
		goto out;
	}
	ret = 0;
out:
	return ret;
}

/* ------------------------------------------------------------- connection */

void
queue_row_clear(struct queue_row *row)
{
	if (row == NULL)
		return;
	free(row->provider);
	free(row->channel);
	free(row->alerts);
	free(row->extra);
	free(row->event);
	free(row->last_error);
	free(row->thread_key);
	free(row->incident);
	free(row->cluster);
	memset(row, 0, sizeof(*row));
}

void
queue_rows_free(struct queue_row *rows, size_t n)
{
	if (rows == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		queue_row_clear(&rows[i]);
	free(rows);
}

/*
 * Open STATE_DIR/queue.db, creating the directory (0700) and the schema when
 * needed. The connection is in multi-thread mode: use it from one thread at a
 * time. Returns NULL with err filled on failure.
 */
/* Why q's file cannot be used, after queue_schema_check failed, into err. */
static void
queue_open_error(struct queue *q, char *err, size_t errlen)
{
	int code = sqlite3_errcode(q->db) & 0xff;
	if (code == SQLITE_NOTADB)
		snprintf(err, errlen, "%s: not an SQLite database (%s): not a fluxrelay queue, "
		    "or damaged beyond repair; move it aside (deliveries still in it are "
		    "lost) or restore it from a backup", q->path, sqlite3_errmsg(q->db));
	else if (code == SQLITE_CORRUPT)
		snprintf(err, errlen, "%s: %s: the file is damaged; move it aside with its -wal "
		    "and -shm files (deliveries still in it are lost) or restore it from a "
		    "backup, then start again", q->path, q->err);
	else
		snprintf(err, errlen, "%s: %s", q->path, q->err);
}

/* WAL mode and the pragmas of every connection. 0, or -1 with err filled. */
static int
queue_pragmas(struct queue *q, bool sync_full, char *err, size_t errlen)
{
	/* journal_mode=WAL answers the mode now in effect; anything else is a failure. */
	sqlite3_stmt *st = NULL;
	const char *mode = NULL;
	int ret = -1;
	if (sqlite3_prepare_v2(q->db, "PRAGMA journal_mode=WAL", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		mode = (const char *)sqlite3_column_text(st, 0);
	if (mode == NULL || strcmp(mode, "wal") != 0) {
		snprintf(err, errlen, "%s: cannot enable WAL mode: %s", q->path,
		    mode ? mode : sqlite3_errmsg(q->db));
		goto out;
	}
	char pragmas[128];
	snprintf(pragmas, sizeof(pragmas), "PRAGMA synchronous=%s; PRAGMA journal_size_limit=%d",
	    sync_full ? "FULL" : "NORMAL", QUEUE_JOURNAL_SIZE_LIMIT);
	if (sqlite3_exec(q->db, pragmas, NULL, NULL, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", q->path, sqlite3_errmsg(q->db));
		goto out;
	}
	ret = 0;
out:
	sqlite3_finalize(st);
	return ret;
}

/* The files as opened: queue_replaced compares the paths against them. */
static void
queue_note_files(struct queue *q)
{
	struct stat sb;
	if (stat(q->path, &sb) == 0) {
		q->dev = sb.st_dev;
		q->ino = sb.st_ino;
	}
	char *wal = util_printf("%s-wal", q->path);
	if (stat(wal, &sb) == 0) {
		q->wal_dev = sb.st_dev;
		q->wal_ino = sb.st_ino;
		q->has_wal = true;
	}
	free(wal);
}

struct queue *
queue_open(const char *state_dir, bool sync_full, char *err, size_t errlen)
{
	if (state_dir == NULL || *state_dir == '\0') {
		snprintf(err, errlen, "no state directory");
		return NULL;
	}
	if (queue_mkdirs(state_dir, err, errlen) < 0)
		return NULL;
	struct queue *q = util_calloc(1, sizeof(*q));
	q->path = util_printf("%s/queue.db", state_dir);
	q->sync_full = sync_full;
	int rc = sqlite3_open_v2(q->path, &q->db,
	    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "cannot open %s: %s", q->path,
		    q->db ? sqlite3_errmsg(q->db) : sqlite3_errstr(rc));
		goto fail;
	}
	sqlite3_extended_result_codes(q->db, 1);
	sqlite3_busy_handler(q->db, queue_busy, q);
	int version = 0;
	if (queue_schema_check(q, &version) < 0) {
		queue_open_error(q, err, errlen);
		goto fail;
	}
	if (queue_pragmas(q, sync_full, err, errlen) < 0)
		goto fail;
	/* Checkpoints outside transactions only (see the top of the file). */
	sqlite3_wal_autocheckpoint(q->db, 0);
	if (version == 0 && queue_schema_create(q) < 0) {
		snprintf(err, errlen, "%s: %s", q->path, q->err);
		goto fail;
	}
	q->version = version == 0 ? QUEUE_SCHEMA_VERSION : version;
	queue_note_files(q);
	return q;
fail:
	queue_close(q);
	return NULL;
}

/* The version the schema_version row says, inside the caller's transaction; -1 on error. */
static int
queue_read_version(struct queue *q)
{
	sqlite3_stmt *st = NULL;
	int version = -1;
	if (sqlite3_prepare_v2(q->db, "SELECT value FROM meta WHERE key = 'schema_version'", -1,
	    &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		version = atoi((const char *)sqlite3_column_text(st, 0));
	else
		queue_fail(q, "read schema version");
	sqlite3_finalize(st);
	return version;
}

/* Forget every prepared statement: the next use prepares the SQL of q->version. */
static void
queue_unprepare(struct queue *q)
{
	for (int i = 0; i < QUEUE_ST_N; i++) {
		sqlite3_finalize(q->st[i]);
		q->st[i] = NULL;
	}
}

int
queue_upgrade(struct queue *q, int *from)
{
	if (from != NULL)
		*from = q->version;
	if (q->version >= QUEUE_SCHEMA_VERSION)
		return 0;
	if (sqlite3_exec(q->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		queue_fail(q, "upgrade schema");
		return -1;
	}
	/* Read again under the write lock: what was opened may be stale. */
	int version = queue_read_version(q);
	if (version < 0)
		goto fail;
	if (version == 1 && sqlite3_exec(q->db, queue_migrate_v2, NULL, NULL, NULL) != SQLITE_OK) {
		queue_fail(q, "upgrade schema from version 1");
		goto fail;
	}
	if (version != 1 && version != QUEUE_SCHEMA_VERSION) {
		snprintf(q->err, sizeof(q->err), "cannot upgrade schema version %d", version);
		goto fail;
	}
	if (sqlite3_exec(q->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		queue_fail(q, "upgrade schema");
		goto fail;
	}
	if (from != NULL)
		*from = version;
	q->version = QUEUE_SCHEMA_VERSION;
	queue_unprepare(q);
	return 0;
fail:
	if (!sqlite3_get_autocommit(q->db)) {
		char saved[sizeof(q->err)];
		memcpy(saved, q->err, sizeof(saved));
		sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
		memcpy(q->err, saved, sizeof(saved));
	}
	return -1;
}

int
queue_schema_version(const struct queue *q)
{
	return q->version;
}

const char *
queue_kind_name(enum queue_kind k)
{
	static const char *const names[QUEUE_NKINDS] = {
		[QUEUE_KIND_EVENT] = "event",
		[QUEUE_KIND_OPENED] = "opened",
		[QUEUE_KIND_REMINDER] = "reminder",
		[QUEUE_KIND_RECOVERED] = "recovered",
		[QUEUE_KIND_REPLY] = "reply",
	};
	return (unsigned)k < QUEUE_NKINDS ? names[k] : names[QUEUE_KIND_EVENT];
}

void
queue_close(struct queue *q)
{
	if (q == NULL)
		return;
	queue_write_release(q);
	for (int i = 0; i < QUEUE_ST_N; i++)
		sqlite3_finalize(q->st[i]);
	/* close_v2 never fails on a busy connection: every statement is finalized. */
	sqlite3_close_v2(q->db);
	free(q->path);
	free(q);
}

/*
 * Whether queue.db or its WAL is no longer the file this connection opened
 * (deleted, or another file moved over it): commits would then go to a file
 * nobody will ever read again. Two stat calls.
 */
static bool
queue_replaced(const struct queue *q, char *why, size_t len)
{
	struct stat sb;
	if (stat(q->path, &sb) != 0 || sb.st_dev != q->dev || sb.st_ino != q->ino) {
		snprintf(why, len, "%s was deleted or replaced while fluxrelay runs", q->path);
		return true;
	}
	bool replaced = false;
	if (q->has_wal) {
		char *wal = util_printf("%s-wal", q->path);
		if (stat(wal, &sb) != 0 || sb.st_dev != q->wal_dev || sb.st_ino != q->wal_ino) {
			snprintf(why, len, "%s was deleted or replaced while fluxrelay runs", wal);
			replaced = true;
		}
		free(wal);
	}
	return replaced;
}

bool
queue_check(struct queue *q)
{
	char why[600];
	if (queue_fault(NULL, 0) != QUEUE_FAULT_NONE)
		return true;
	if (!queue_replaced(q, why, sizeof(why)))
		return false;
	char msg[768];
	snprintf(msg, sizeof(msg), "%s: new events are refused until fluxrelay is restarted "
	    "(a restart opens the file now at that path; deliveries pending in the old one "
	    "are lost)", why);
	queue_fault_set(QUEUE_FAULT_REPLACED, msg);
	return true;
}

int
queue_verify(struct queue *q)
{
	sqlite3_stmt *st = NULL;
	char first[256] = "";
	int rc = sqlite3_prepare_v2(q->db, "PRAGMA quick_check(1)", -1, &st, NULL);
	if (rc == SQLITE_OK) {
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			const unsigned char *t = sqlite3_column_text(st, 0);
			if (first[0] == '\0')
				snprintf(first, sizeof(first), "%s", t ? (const char *)t : "?");
		}
	}
	if (rc != SQLITE_DONE)
		snprintf(first, sizeof(first), "%s", sqlite3_errmsg(q->db));
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE && strcmp(first, "ok") == 0)
		return 0;
	snprintf(q->err, sizeof(q->err), "integrity check failed (%s): the file is damaged; "
	    "move it aside with its -wal and -shm files (deliveries still in it are lost) or "
	    "restore it from a backup, then start again", first);
	return -1;
}

const char *
queue_errmsg(struct queue *q)
{
	return q ? q->err : "no queue";
}

const char *
queue_path(const struct queue *q)
{
	return q->path;
}

/* ------------------------------------------------------------- row access */

int64_t
queue_count(struct queue *q, enum queue_state state)
{
	sqlite3_stmt *st = queue_stmt(q, QUEUE_ST_COUNT);
	if (st == NULL)
		return -1;
	sqlite3_bind_int(st, 1, (int)state);
	int64_t n = -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	else
		queue_fail(q, "count");
	sqlite3_reset(st);
	return n;
}

struct queue_provider_count {
	char *provider;
	int64_t n[2];                 /* by enum queue_state */
};

static int
queue_provider_count_cmp(const void *a, const void *b)
{
	return strcmp(((const struct queue_provider_count *)a)->provider,
	    ((const struct queue_provider_count *)b)->provider);
}

int
queue_count_by_provider(struct queue *q,
    void (*fn)(const char *provider, int64_t pending, int64_t dead, void *arg), void *arg)
{
	sqlite3_stmt *st = queue_stmt(q, QUEUE_ST_COUNT_BY_PROVIDER);
	if (st == NULL)
		return -1;
	struct util_buf b = {0};          /* of struct queue_provider_count */
	struct queue_provider_count *v = NULL;
	size_t len = 0;
	int rc, ret = -1;
	/* Rows come as (state, provider): merge the two states per provider. */
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int state = sqlite3_column_int(st, 0) == QUEUE_DEAD ? QUEUE_DEAD : QUEUE_PENDING;
		const unsigned char *p = sqlite3_column_text(st, 1);
		const char *name = p ? (const char *)p : "";
		size_t i = 0;
		while (i < len && strcmp(v[i].provider, name) != 0)
			i++;
		if (i == len) {
			struct queue_provider_count c = { util_strdup(name), { 0, 0 } };
			util_buf_append(&b, (const char *)&c, sizeof(c));
			v = (struct queue_provider_count *)b.data;
			len++;
		}
		v[i].n[state] += sqlite3_column_int64(st, 2);
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		queue_fail(q, "count by provider");
		goto out;
	}
	if (len > 1)
		qsort(v, len, sizeof(*v), queue_provider_count_cmp);
	for (size_t i = 0; i < len; i++)
		fn(v[i].provider, v[i].n[QUEUE_PENDING], v[i].n[QUEUE_DEAD], arg);
	ret = 0;
out:
	for (size_t i = 0; i < len; i++)
		free(v[i].provider);
	free(v);
	return ret;
}

int
queue_pending_targets(struct queue *q, struct queue_target **out, size_t *n)
{
	struct util_buf b = {0};          /* of struct queue_target */
	struct queue_target *v = NULL;
	size_t len = 0;
	int rc = SQLITE_OK, ret = -1;
	*out = NULL;
	*n = 0;
	for (;;) {
		sqlite3_stmt *st = queue_stmt(q, len == 0 ? QUEUE_ST_TARGETS : QUEUE_ST_TARGET_NEXT);
		if (st == NULL)
			goto out;
		if (len > 0) {
			sqlite3_bind_text(st, 1, v[len - 1].provider, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 2, v[len - 1].channel, -1, SQLITE_STATIC);
		}
		if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
			if (rc != SQLITE_DONE)
				queue_fail(q, "pending targets");
			sqlite3_reset(st);
			break;
		}
		struct queue_target t = { queue_col_text(st, 0), queue_col_text(st, 1) };
		sqlite3_reset(st);
		if (t.provider == NULL)
			t.provider = util_strdup("");
		if (t.channel == NULL)
			t.channel = util_strdup("");
		util_buf_append(&b, (const char *)&t, sizeof(t));
		v = (struct queue_target *)b.data;
		len++;
	}
	if (rc != SQLITE_DONE)
		goto out;
	*out = v;
	*n = len;
	v = NULL;
	ret = 0;
out:
	queue_targets_free(v, len);
	return ret;
}

void
queue_targets_free(struct queue_target *t, size_t n)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		free(t[i].provider);
		free(t[i].channel);
	}
	free(t);
}

int
queue_target_head(struct queue *q, const char *provider, const char *channel,
    size_t limit, struct queue_row **rows, size_t *n)
{
	*rows = NULL;
	*n = 0;
	sqlite3_stmt *st = queue_stmt(q, QUEUE_ST_HEAD);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, provider, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, channel ? channel : "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, limit > INT64_MAX ? INT64_MAX : (int64_t)limit);
	return queue_collect_rows(q, st, rows, n);
}

/*
 * Run stmt once per id inside one transaction; *changed (may be NULL) gets
 * the number of rows changed. bind_rest binds the parameters after ?1.
 */
static int
queue_each_id(struct queue *q, enum queue_stmt_id id, const int64_t *ids, size_t n,
    void (*bind_rest)(sqlite3_stmt *st, const void *arg), const void *arg,
    const char *what, int64_t *changed)
{
	int64_t total = 0;
	int ret = -1;
	if (changed)
		*changed = 0;
	if (n == 0)
		return 0;
	if (queue_begin(q) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		sqlite3_stmt *st = queue_stmt(q, id);
		if (st == NULL)
			goto out;
		sqlite3_bind_int64(st, 1, ids[i]);
		if (bind_rest)
			bind_rest(st, arg);
		if (queue_exec_stmt(q, st, what) < 0)
			goto out;
		total += sqlite3_changes(q->db);
	}
	ret = queue_commit(q);
	if (ret == 0 && changed)
		*changed = total;
out:
	if (ret < 0)
		queue_rollback(q);
	return ret;
}

/*
 * Run st (prepared and bound; NULL after a failed prepare) alone in a
 * transaction; *changed (may be NULL) gets the number of rows it changed.
 * 0 / -1.
 */
static int
queue_exec_alone(struct queue *q, sqlite3_stmt *st, const char *what, int64_t *changed)
{
	int64_t n = 0;
	int ret = -1;
	if (changed)
		*changed = 0;
	if (st == NULL || queue_begin(q) < 0)
		return -1;
	if (queue_exec_stmt(q, st, what) == 0) {
		n = sqlite3_changes(q->db);
		ret = queue_commit(q);
	}
	if (ret < 0)
		queue_rollback(q);
	else if (changed)
		*changed = n;
	return ret;
}

int
queue_record(struct queue *q, const struct queue_outcome *o, size_t n)
{
	int ret = -1;
	if (n == 0)
		return 0;
	if (queue_begin(q) < 0)
		return -1;
	if (queue_record_in(q, o, n) == 0)
		ret = queue_commit(q);
	if (ret < 0)
		queue_rollback(q);
	return ret;
}

int
queue_record_in(struct queue *q, const struct queue_outcome *o, size_t n)
{
	double now = util_now();
	for (size_t i = 0; i < n; i++) {
		enum queue_stmt_id id = o[i].kind == QUEUE_OUTCOME_ACK ? QUEUE_ST_ACK :
		    o[i].kind == QUEUE_OUTCOME_DEAD ? QUEUE_ST_RECORD_DEAD : QUEUE_ST_RECORD_DEFER;
		sqlite3_stmt *st = queue_stmt(q, id);
		if (st == NULL)
			return -1;
		sqlite3_bind_int64(st, 1, o[i].id);
		if (o[i].kind != QUEUE_OUTCOME_ACK) {
			sqlite3_bind_int(st, 2, o[i].attempts);
			sqlite3_bind_double(st, 3, o[i].kind == QUEUE_OUTCOME_DEAD ? now :
			    o[i].next_attempt_at);
			if (o[i].error != NULL)
				sqlite3_bind_text(st, 4, o[i].error, -1, SQLITE_STATIC);
			else
				sqlite3_bind_null(st, 4);
		}
		if (queue_exec_stmt(q, st, "record outcome") < 0)
			return -1;
	}
	return 0;
}

int
queue_expire_dead(struct queue *q, double before, size_t limit, int64_t *deleted)
{
	sqlite3_stmt *st = queue_stmt(q, QUEUE_ST_EXPIRE_DEAD);
	if (st != NULL) {
		sqlite3_bind_double(st, 1, before);
		sqlite3_bind_int64(st, 2, limit > INT64_MAX ? INT64_MAX : (int64_t)limit);
	}
	return queue_exec_alone(q, st, "expire dead letters", deleted);
}


int
queue_list_page(struct queue *q, enum queue_state state, int64_t after_id, size_t limit,
    struct queue_row **rows, size_t *n)
{
	*rows = NULL;
	*n = 0;
	sqlite3_stmt *st = queue_stmt(q, QUEUE_ST_LIST_PAGE);
	if (st == NULL)
		return -1;
	sqlite3_bind_int(st, 1, (int)state);
	sqlite3_bind_int64(st, 2, after_id);
	sqlite3_bind_int64(st, 3, limit > INT64_MAX ? INT64_MAX : (int64_t)limit);
	return queue_collect_rows(q, st, rows, n);
}

static void
queue_retry_bind(sqlite3_stmt *st, const void *arg)
{
	sqlite3_bind_double(st, 2, *(const double *)arg);
}

/* The "all dead letters" form of retry and purge: one statement, one transaction. */
static int
queue_all(struct queue *q, enum queue_stmt_id id, double now, const char *what,
    int64_t *changed)
{
	sqlite3_stmt *st = queue_stmt(q, id);
	if (st != NULL && id == QUEUE_ST_RETRY_ALL)
		sqlite3_bind_double(st, 1, now);
	return queue_exec_alone(q, st, what, changed);
}

int
queue_retry(struct queue *q, const int64_t *ids, size_t n, int64_t *changed)
{
	double now = util_now();
	if (ids == NULL && n == 0)
		return queue_all(q, QUEUE_ST_RETRY_ALL, now, "retry", changed);
	return queue_each_id(q, QUEUE_ST_RETRY_ONE, ids, n, queue_retry_bind, &now, "retry",
	    changed);
}

int
queue_purge(struct queue *q, const int64_t *ids, size_t n, int64_t *changed)
{
	if (ids == NULL && n == 0)
		return queue_all(q, QUEUE_ST_PURGE_ALL, 0, "purge", changed);
	return queue_each_id(q, QUEUE_ST_PURGE_ONE, ids, n, NULL, NULL, "purge", changed);
}

/* ------------------------------------------------------------- acceptance */

int
queue_insert(struct queue *q, const char *event_id, const char *event, size_t event_len,
    const struct queue_item *items, size_t n, double now)
{
	for (size_t i = 0; i < n; i++) {
		const struct queue_item *it = &items[i];
		sqlite3_stmt *st = queue_stmt(q, QUEUE_ST_INSERT);
		if (st == NULL)
			return -1;
		sqlite3_bind_text(st, 1, event_id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, it->provider ? it->provider : "", -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, it->channel ? it->channel : "", -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, it->alerts ? it->alerts : "", -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, it->extra ? it->extra : "{}", -1, SQLITE_STATIC);
		sqlite3_bind_blob64(st, 6, event ? event : "", event_len, SQLITE_STATIC);
		sqlite3_bind_double(st, 7, now);
		sqlite3_bind_int(st, 8, (int)it->kind);
		sqlite3_bind_text(st, 9, it->thread_key ? it->thread_key : "", -1, SQLITE_STATIC);
		if (it->incident != NULL)
			sqlite3_bind_text(st, 10, it->incident, -1, SQLITE_STATIC);
		else
			sqlite3_bind_null(st, 10);
		sqlite3_bind_text(st, 11, it->cluster ? it->cluster : "", -1, SQLITE_STATIC);
		if (queue_exec_stmt(q, st, "insert delivery") < 0)
			return -1;
	}
	return 0;
}

int
queue_probe(struct queue *q, uint64_t value)
{
	int ret = -1;
	if (!q->sync_full)
		sqlite3_exec(q->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
	if (queue_begin(q) == 0) {
		sqlite3_stmt *st = queue_stmt(q, QUEUE_ST_PROBE);
		char v[24];
		snprintf(v, sizeof(v), "%llu", (unsigned long long)value);
		if (st != NULL)
			sqlite3_bind_text(st, 1, v, -1, SQLITE_TRANSIENT);
		if (st != NULL && queue_exec_stmt(q, st, "probe") == 0)
			ret = queue_commit(q);
		else
			queue_rollback(q);
	}
	if (!q->sync_full)
		sqlite3_exec(q->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
	return ret;
}

/* ------------------------------------------------------------------ dedup */

int
queue_dedup_get(struct queue *q, const void *key, size_t keylen, double *first_seen,
    char event_id[UTIL_ID_SIZE])
{
	sqlite3_stmt *st = queue_stmt(q, QUEUE_ST_DEDUP_GET);
	if (st == NULL)
		return -1;
	sqlite3_bind_blob(st, 1, key, (int)keylen, SQLITE_STATIC);
	int rc = sqlite3_step(st), ret = 0;
	if (rc == SQLITE_ROW) {
		const unsigned char *eid = sqlite3_column_text(st, 0);
		snprintf(event_id, UTIL_ID_SIZE, "%s", eid ? (const char *)eid : "");
		*first_seen = sqlite3_column_double(st, 1);
		ret = 1;
	} else if (rc != SQLITE_DONE) {
		queue_fail(q, "look up dedup key");
		ret = -1;
	}
	sqlite3_reset(st);
	return ret;
}

int
queue_dedup_put(struct queue *q, const void *key, size_t keylen, const char *event_id,
    double first_seen, double window)
{
	sqlite3_stmt *st = queue_stmt(q, QUEUE_ST_DEDUP_PUT);
	if (st == NULL)
		return -1;
	sqlite3_bind_blob(st, 1, key, (int)keylen, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, event_id, -1, SQLITE_STATIC);
	sqlite3_bind_double(st, 3, first_seen);
	sqlite3_bind_double(st, 4, window);
	return queue_exec_stmt(q, st, "insert dedup key");
}

int
queue_dedup_expire(struct queue *q, double before)
{
	sqlite3_stmt *st = queue_stmt(q, QUEUE_ST_DEDUP_EXPIRE);
	if (st != NULL)
		sqlite3_bind_double(st, 1, before);
	return queue_exec_alone(q, st, "expire dedup keys", NULL);
}

/* -------------------------------------------------------------- incidents */

/* Bind text, "" for NULL (the key and text columns are NOT NULL). */
static void
queue_bind_str(sqlite3_stmt *st, int i, const char *s)
{
	sqlite3_bind_text(st, i, s ? s : "", -1, SQLITE_STATIC);
}

/* A text column as a new string, "" for NULL. */
static char *
queue_col_str(sqlite3_stmt *st, int col)
{
	char *s = queue_col_text(st, col);
	return s ? s : util_strdup("");
}

void
queue_incident_clear(struct queue_incident *in)
{
	if (in == NULL)
		return;
	free(in->alert);
	free(in->cluster);
	free(in->kind);
	free(in->namespace);
	free(in->name);
	free(in->last_message);
	free(in->last_norm);
	free(in->last_reason);
	free(in->last_revision);
	memset(in, 0, sizeof(*in));
}

void
queue_incidents_free(struct queue_incident *v, size_t n)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		queue_incident_clear(&v[i]);
	free(v);
}

/* Fill in from the current row of a QUEUE_INCIDENT_COLUMNS select. */
static void
queue_read_incident(sqlite3_stmt *st, struct queue_incident *in)
{
	memset(in, 0, sizeof(*in));
	in->id = sqlite3_column_int64(st, 0);
	in->alert = queue_col_str(st, 1);
	in->cluster = queue_col_str(st, 2);
	in->kind = queue_col_str(st, 3);
	in->namespace = queue_col_str(st, 4);
	in->name = queue_col_str(st, 5);
	in->opened_at = sqlite3_column_double(st, 6);
	in->last_at = sqlite3_column_double(st, 7);
	in->last_notified_at = sqlite3_column_double(st, 8);
	in->failures = sqlite3_column_int64(st, 9);
	in->last_message = queue_col_str(st, 10);
	in->last_norm = queue_col_str(st, 11);
	in->last_reason = queue_col_str(st, 12);
	in->last_revision = queue_col_str(st, 13);
}

int
queue_incident_get(struct queue *q, const char *alert, const char *cluster,
    const char *kind, const char *namespace, const char *name, struct queue_incident *out)
{
	sqlite3_stmt *st = queue_stmt(q, QUEUE_ST_INC_GET);
	if (st == NULL)
		return -1;
	queue_bind_str(st, 1, alert);
	queue_bind_str(st, 2, cluster);
	queue_bind_str(st, 3, kind);
	queue_bind_str(st, 4, namespace);
	queue_bind_str(st, 5, name);
	int rc = sqlite3_step(st), ret = 0;
	if (rc == SQLITE_ROW) {
		queue_read_incident(st, out);
		ret = 1;
	} else if (rc != SQLITE_DONE) {
		queue_fail(q, "look up incident");
		ret = -1;
	}
	sqlite3_reset(st);
	return ret;
}

/* The columns after the key, from ?first on, as INC_INSERT and INC_UPDATE order them. */
static void
queue_bind_incident_state(sqlite3_stmt *st, int first, const struct queue_incident *in)
{
	sqlite3_bind_double(st, first, in->opened_at);
	sqlite3_bind_double(st, first + 1, in->last_at);
	sqlite3_bind_double(st, first + 2, in->last_notified_at);
	sqlite3_bind_int64(st, first + 3, in->failures);
	queue_bind_str(st, first + 4, in->last_message);
	queue_bind_str(st, first + 5, in->last_norm);
	queue_bind_str(st, first + 6, in->last_reason);
	queue_bind_str(st, first + 7, in->last_revision);
}

int
queue_incident_insert(struct queue *q, struct queue_incident *in)
{
	sqlite3_stmt *st = queue_stmt(q, QUEUE_ST_INC_INSERT);
	if (st == NULL)
		return -1;
	queue_bind_str(st, 1, in->alert);
	queue_bind_str(st, 2, in->cluster);
	queue_bind_str(st, 3, in->kind);
	queue_bind_str(st, 4, in->namespace);
	queue_bind_str(st, 5, in->name);
	queue_bind_incident_state(st, 6, in);
	if (queue_exec_stmt(q, st, "insert incident") < 0)
		return -1;
	in->id = sqlite3_last_insert_rowid(q->db);
	return 0;
}

int
queue_incident_update(struct queue *q, const struct queue_incident *in)
{
	sqlite3_stmt *st = queue_stmt(q, QUEUE_ST_INC_UPDATE);
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, in->id);
	queue_bind_incident_state(st, 2, in);
	return queue_exec_stmt(q, st, "update incident");
}

int
queue_incident_delete(struct queue *q, int64_t id)
{
	sqlite3_stmt *st = queue_stmt(q, QUEUE_ST_INC_DELETE);
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	return queue_exec_stmt(q, st, "delete incident");
}

/* Run st (bound, or NULL after a failed prepare) in the caller's transaction; *n gets the changes. */
static int
queue_exec_count(struct queue *q, sqlite3_stmt *st, const char *what, int64_t *n)
{
	if (n != NULL)
		*n = 0;
	if (st == NULL || queue_exec_stmt(q, st, what) < 0)
		return -1;
	if (n != NULL)
		*n = sqlite3_changes(q->db);
	return 0;
}

int
queue_incident_expire(struct queue *q, const char *alert, double before, int64_t *n)
{
	sqlite3_stmt *st = queue_stmt(q, QUEUE_ST_INC_EXPIRE);
	if (st != NULL) {
		queue_bind_str(st, 1, alert);
		sqlite3_bind_double(st, 2, before);
	}
	return queue_exec_count(q, st, "expire incidents", n);
}

int
queue_incident_drop_alert(struct queue *q, const char *alert, int64_t *n)
{
	sqlite3_stmt *st = queue_stmt(q, QUEUE_ST_INC_DROP);
	if (st != NULL)
		queue_bind_str(st, 1, alert);
	return queue_exec_count(q, st, "drop incidents", n);
}

int
queue_incident_counts(struct queue *q,
    void (*fn)(const char *alert, int64_t n, void *arg), void *arg)
{
	sqlite3_stmt *st = queue_stmt(q, QUEUE_ST_INC_COUNTS);
	if (st == NULL)
		return -1;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const unsigned char *a = sqlite3_column_text(st, 0);
		fn(a ? (const char *)a : "", sqlite3_column_int64(st, 1), arg);
	}
	if (rc != SQLITE_DONE)
		queue_fail(q, "count incidents");
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* The incidents st (bound) selects into *rows, *n; st is reset. 0 / -1. */
static int
queue_incident_rows(struct queue *q, sqlite3_stmt *st, struct queue_incident **rows, size_t *n)
{
	struct util_buf b = {0};          /* of struct queue_incident */
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct queue_incident in;
		queue_read_incident(st, &in);
		util_buf_append(&b, (const char *)&in, sizeof(in));
	}
	if (rc != SQLITE_DONE)
		queue_fail(q, "list incidents");
	sqlite3_reset(st);
	*rows = (struct queue_incident *)b.data;
	*n = b.len / sizeof(**rows);
	if (rc == SQLITE_DONE)
		return 0;
	queue_incidents_free(*rows, *n);
	*rows = NULL;
	*n = 0;
	return -1;
}

int
queue_incident_list_page(struct queue *q, int64_t after_id, size_t limit,
    struct queue_incident **rows, size_t *n)
{
	*rows = NULL;
	*n = 0;
	if (q->version < 2)
		return 0;
	sqlite3_stmt *st = queue_stmt(q, QUEUE_ST_INC_PAGE);
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, after_id);
	sqlite3_bind_int64(st, 2, limit > INT64_MAX ? INT64_MAX : (int64_t)limit);
	return queue_incident_rows(q, st, rows, n);
}

int
queue_incident_list_alert(struct queue *q, const char *alert, struct queue_incident **rows,
    size_t *n)
{
	*rows = NULL;
	*n = 0;
	if (q->version < 2)
		return 0;
	sqlite3_stmt *st = queue_stmt(q, QUEUE_ST_INC_OF_ALERT);
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, alert, -1, SQLITE_STATIC);
	return queue_incident_rows(q, st, rows, n);
}

int
queue_incident_close(struct queue *q, const int64_t *ids, size_t n, int64_t *changed)
{
	if (changed != NULL)
		*changed = 0;
	if (q->version < 2)
		return 0;
	if (ids == NULL && n == 0)
		return queue_exec_alone(q, queue_stmt(q, QUEUE_ST_INC_CLOSE_ALL), "close incidents",
		    changed);
	return queue_each_id(q, QUEUE_ST_INC_DELETE, ids, n, NULL, NULL, "close incident",
	    changed);
}

/* ---------------------------------------------------------------- threads */

void
queue_thread_clear(struct queue_thread *t)
{
	if (t == NULL)
		return;
	free(t->provider);
	free(t->channel);
	free(t->thread_key);
	free(t->channel_id);
	free(t->ts);
	memset(t, 0, sizeof(*t));
}

void
queue_threads_free(struct queue_thread *v, size_t n)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		queue_thread_clear(&v[i]);
	free(v);
}

static void
queue_read_thread(sqlite3_stmt *st, struct queue_thread *t)
{
	memset(t, 0, sizeof(*t));
	t->provider = queue_col_str(st, 0);
	t->channel = queue_col_str(st, 1);
	t->thread_key = queue_col_str(st, 2);
	t->channel_id = queue_col_str(st, 3);
	t->ts = queue_col_str(st, 4);
	t->opened_at = sqlite3_column_double(st, 5);
	t->last_at = sqlite3_column_double(st, 6);
	t->updated_at = sqlite3_column_double(st, 7);
}

/* Bind (provider, channel, thread_key) as ?1..?3. */
static void
queue_bind_thread_key(sqlite3_stmt *st, const char *provider, const char *channel,
    const char *thread_key)
{
	queue_bind_str(st, 1, provider);
	queue_bind_str(st, 2, channel);
	queue_bind_str(st, 3, thread_key);
}

int
queue_thread_get(struct queue *q, const char *provider, const char *channel,
    const char *thread_key, struct queue_thread *out)
{
	sqlite3_stmt *st = queue_stmt(q, QUEUE_ST_THR_GET);
	if (st == NULL)
		return -1;
	queue_bind_thread_key(st, provider, channel, thread_key);
	int rc = sqlite3_step(st), ret = 0;
	if (rc == SQLITE_ROW) {
		queue_read_thread(st, out);
		ret = 1;
	} else if (rc != SQLITE_DONE) {
		queue_fail(q, "look up thread");
		ret = -1;
	}
	sqlite3_reset(st);
	return ret;
}

int
queue_thread_put(struct queue *q, const struct queue_thread *t)
{
	sqlite3_stmt *st = queue_stmt(q, QUEUE_ST_THR_PUT);
	if (st == NULL)
		return -1;
	queue_bind_thread_key(st, t->provider, t->channel, t->thread_key);
	queue_bind_str(st, 4, t->channel_id);
	queue_bind_str(st, 5, t->ts);
	sqlite3_bind_double(st, 6, t->opened_at);
	sqlite3_bind_double(st, 7, t->last_at);
	sqlite3_bind_double(st, 8, t->updated_at);
	return queue_exec_stmt(q, st, "store thread");
}

int
queue_thread_touch(struct queue *q, const char *provider, const char *channel,
    const char *thread_key, double last_at, double updated_at)
{
	sqlite3_stmt *st = queue_stmt(q, QUEUE_ST_THR_TOUCH);
	if (st == NULL)
		return -1;
	queue_bind_thread_key(st, provider, channel, thread_key);
	sqlite3_bind_double(st, 4, last_at);
	if (updated_at >= 0)
		sqlite3_bind_double(st, 5, updated_at);
	else
		sqlite3_bind_null(st, 5);
	return queue_exec_stmt(q, st, "touch thread");
}

int
queue_thread_delete(struct queue *q, const char *provider, const char *channel,
    const char *thread_key)
{
	sqlite3_stmt *st = queue_stmt(q, QUEUE_ST_THR_DELETE);
	if (st == NULL)
		return -1;
	queue_bind_thread_key(st, provider, channel, thread_key);
	return queue_exec_stmt(q, st, "delete thread");
}

int
queue_thread_expire(struct queue *q, const char *provider, double before, int64_t *n)
{
	sqlite3_stmt *st = queue_stmt(q, QUEUE_ST_THR_EXPIRE);
	if (st != NULL) {
		queue_bind_str(st, 1, provider);
		sqlite3_bind_double(st, 2, before);
	}
	return queue_exec_count(q, st, "expire threads", n);
}

int
queue_thread_drop_provider(struct queue *q, const char *provider, int64_t *n)
{
	sqlite3_stmt *st = queue_stmt(q, QUEUE_ST_THR_DROP);
	if (st != NULL)
		queue_bind_str(st, 1, provider);
	return queue_exec_count(q, st, "drop threads", n);
}

int
queue_thread_providers(struct queue *q, void (*fn)(const char *provider, void *arg),
    void *arg)
{
	sqlite3_stmt *st = queue_stmt(q, QUEUE_ST_THR_PROVIDERS);
	if (st == NULL)
		return -1;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const unsigned char *p = sqlite3_column_text(st, 0);
		fn(p ? (const char *)p : "", arg);
	}
	if (rc != SQLITE_DONE)
		queue_fail(q, "list thread providers");
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

int
queue_thread_list_key(struct queue *q, const char *thread_key, struct queue_thread **rows,
    size_t *n)
{
	*rows = NULL;
	*n = 0;
	if (q->version < 2)
		return 0;
	sqlite3_stmt *st = queue_stmt(q, QUEUE_ST_THR_KEY);
	if (st == NULL)
		return -1;
	queue_bind_str(st, 1, thread_key);
	struct util_buf b = {0};          /* of struct queue_thread */
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct queue_thread t;
		queue_read_thread(st, &t);
		util_buf_append(&b, (const char *)&t, sizeof(t));
	}
	if (rc != SQLITE_DONE)
		queue_fail(q, "list threads");
	sqlite3_reset(st);
	*rows = (struct queue_thread *)b.data;
	*n = b.len / sizeof(**rows);
	if (rc == SQLITE_DONE)
		return 0;
	queue_threads_free(*rows, *n);
	*rows = NULL;
	*n = 0;
	return -1;
}

int
queue_thread_list_target(struct queue *q, const char *provider, const char *channel,
    struct queue_thread **rows, size_t *n)
{
	*rows = NULL;
	*n = 0;
	if (q->version < 2)
		return 0;
	sqlite3_stmt *st = queue_stmt(q, QUEUE_ST_THR_TARGET);
	if (st == NULL)
		return -1;
	queue_bind_str(st, 1, provider);
	queue_bind_str(st, 2, channel);
	struct util_buf b = {0};          /* of struct queue_thread */
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct queue_thread t;
		queue_read_thread(st, &t);
		util_buf_append(&b, (const char *)&t, sizeof(t));
	}
	if (rc != SQLITE_DONE)
		queue_fail(q, "list threads");
	sqlite3_reset(st);
	*rows = (struct queue_thread *)b.data;
	*n = b.len / sizeof(**rows);
	if (rc == SQLITE_DONE)
		return 0;
	queue_threads_free(*rows, *n);
	*rows = NULL;
	*n = 0;
	return -1;
}

/* ------------------------------------------------------------------- meta */

int
queue_meta_get(struct queue *q, const char *key, char **value)
{
	sqlite3_stmt *st = queue_stmt(q, QUEUE_ST_META_GET);
	if (st == NULL)
		return -1;
	queue_bind_str(st, 1, key);
	int rc = sqlite3_step(st), ret = 0;
	if (rc == SQLITE_ROW) {
		*value = queue_col_str(st, 0);
		ret = 1;
	} else if (rc != SQLITE_DONE) {
		queue_fail(q, "read meta");
		ret = -1;
	}
	sqlite3_reset(st);
	return ret;
}

int
queue_meta_put(struct queue *q, const char *key, const char *value)
{
	sqlite3_stmt *st = queue_stmt(q, value ? QUEUE_ST_META_PUT : QUEUE_ST_META_DELETE);
	if (st == NULL)
		return -1;
	queue_bind_str(st, 1, key);
	if (value != NULL)
		queue_bind_str(st, 2, value);
	return queue_exec_stmt(q, st, "write meta");
}

int
queue_meta_each(struct queue *q, const char *prefix,
    void (*fn)(const char *key, const char *value, void *arg), void *arg)
{
	sqlite3_stmt *st = queue_stmt(q, QUEUE_ST_META_EACH);
	if (st == NULL)
		return -1;
	queue_bind_str(st, 1, prefix);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const unsigned char *k = sqlite3_column_text(st, 0);
		const unsigned char *v = sqlite3_column_text(st, 1);
		fn(k ? (const char *)k : "", v ? (const char *)v : "", arg);
	}
	if (rc != SQLITE_DONE)
		queue_fail(q, "read meta");
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* -------------------------------------------------------- pending counter */

/*
 * Process-wide, not database-wide: a `fluxrelay queue retry` in another
 * process is only seen once someone calls queue_pending_set from a count.
 */
int64_t
queue_pending_get(void)
{
	return atomic_load(&queue_pending_count);
}

void
queue_pending_add(int64_t delta)
{
	atomic_fetch_add(&queue_pending_count, delta);
}

void
queue_pending_set(int64_t value)
{
	atomic_store(&queue_pending_count, value);
}

static int
queue_wal_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
	(void)arg;
	if (pages >= QUEUE_WAL_PAGES_MAX)
		sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	return SQLITE_OK;
}

void
queue_wal_backstop(struct queue *q)
{
	sqlite3_wal_autocheckpoint(q->db, 0);
	sqlite3_wal_hook(q->db, queue_wal_hook, NULL);
}

int
queue_checkpoint(struct queue *q)
{
	int log = 0, copied = 0;
	double t0 = util_mono();
	int rc = sqlite3_wal_checkpoint_v2(q->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &copied);
	/*
	 * Commits that came meanwhile are left: copy them with the write lock
	 * held, so the WAL is copied to its end and the next commit starts it
	 * over. Only when the first pass was quick, as the second will be: a
	 * slow disk holds no commit back (the backstop bounds the WAL then).
	 */
	if (rc == SQLITE_OK && copied < log && util_mono() - t0 < QUEUE_CATCHUP_MAX &&
	    queue_write_acquire(q) == 0) {
		rc = sqlite3_wal_checkpoint_v2(q->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
		queue_write_release(q);
	}
	if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
		queue_fail(q, "checkpoint");
		return -1;
	}
	return 0;
}

int
queue_lock(const char *state_dir, char *err, size_t errlen)
{
	if (state_dir == NULL || *state_dir == '\0') {
		snprintf(err, errlen, "no state directory");
		return -1;
	}
	if (queue_mkdirs(state_dir, err, errlen) < 0)
		return -1;
	char *path = util_printf("%s/queue.lock", state_dir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
	} else if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK)
			snprintf(err, errlen, "%s is locked: another fluxrelay is running on this "
			    "state directory; stop it, or give this one its own state_dir", path);
		else
			snprintf(err, errlen, "cannot lock %s: %s", path, strerror(errno));
		close(fd);
		fd = -1;
	}
	free(path);
	return fd;
}

#ifdef FLUXRELAY_UNITTEST
int
queue_list(struct queue *q, enum queue_state state, struct queue_row **rows, size_t *n)
{
	return queue_list_page(q, state, 0, SIZE_MAX, rows, n);
}

char *
queue_plan(struct queue *q, const char *function)
{
	static const struct { const char *name; enum queue_stmt_id id; } map[] = {
		{ "insert", QUEUE_ST_INSERT },
		{ "dedup_get", QUEUE_ST_DEDUP_GET },
		{ "dedup_put", QUEUE_ST_DEDUP_PUT },
		{ "incident_get", QUEUE_ST_INC_GET },
		{ "incident_insert", QUEUE_ST_INC_INSERT },
		{ "incident_update", QUEUE_ST_INC_UPDATE },
		{ "incident_delete", QUEUE_ST_INC_DELETE },
		{ "incident_expire", QUEUE_ST_INC_EXPIRE },
		{ "incident_drop_alert", QUEUE_ST_INC_DROP },
		{ "incident_list_alert", QUEUE_ST_INC_OF_ALERT },
		{ "incident_counts", QUEUE_ST_INC_COUNTS },
		{ "thread_get", QUEUE_ST_THR_GET },
		{ "thread_put", QUEUE_ST_THR_PUT },
		{ "thread_touch", QUEUE_ST_THR_TOUCH },
		{ "thread_delete", QUEUE_ST_THR_DELETE },
		{ "thread_expire", QUEUE_ST_THR_EXPIRE },
		{ "thread_drop_provider", QUEUE_ST_THR_DROP },
		{ "meta_get", QUEUE_ST_META_GET },
		{ "meta_each", QUEUE_ST_META_EACH },
	};
	const char *sql = NULL;
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(map[i].name, function) == 0)
			sql = queue_sql[map[i].id];
	if (sql == NULL)
		return NULL;
	char *explain = util_printf("EXPLAIN QUERY PLAN %s", sql);
	sqlite3_stmt *st = NULL;
	struct util_buf b = {0};
	util_buf_puts(&b, "");
	int rc = sqlite3_prepare_v2(q->db, explain, -1, &st, NULL);
	free(explain);
	if (rc != SQLITE_OK) {
		util_buf_free(&b);
		return NULL;
	}
	while (sqlite3_step(st) == SQLITE_ROW) {
		const unsigned char *d = sqlite3_column_text(st, 3);
		util_buf_printf(&b, "%s\n", d ? (const char *)d : "");
	}
	sqlite3_finalize(st);
	return b.data;
}
#endif
