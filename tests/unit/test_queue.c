/*
 * Unit tests for queue: schema and persistence, the group-commit writer
 * (concurrency, batching, dedup, max_pending, shutdown, failed commits), the
 * row operations used by the delivery thread and the CLI, and a second
 * connection working beside the writer. Every test uses a fresh temporary
 * state directory on disk.
 */
#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "queue.h"
#include "queue_writer.h"
#include "util.h"

#define TEST_WAIT_SECONDS 60

/* ------------------------------------------------------------- fixtures */

/* The run's root (made by main, removed by main even when tests fail) and this test's dir. */
static char test_root[256];
static char test_dir[512];

static int
test_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(path);
}

static void
test_setup(void)
{
	snprintf(test_dir, sizeof(test_dir), "%s/XXXXXX", test_root);
	ck_assert_ptr_nonnull(mkdtemp(test_dir));
}

static void
test_teardown(void)
{
	nftw(test_dir, test_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Completion of a set of requests, signalled from the writer thread. */
struct test_waiter {
	pthread_mutex_t m;
	pthread_cond_t c;
	int remaining;
};

static void
test_waiter_init(struct test_waiter *w, int n)
{
	pthread_mutex_init(&w->m, NULL);
	pthread_cond_init(&w->c, NULL);
	w->remaining = n;
}

static void
test_waiter_destroy(struct test_waiter *w)
{
	pthread_mutex_destroy(&w->m);
	pthread_cond_destroy(&w->c);
}

/* Wait until every request is done; fails the test after TEST_WAIT_SECONDS. */
static void
test_waiter_wait(struct test_waiter *w)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += TEST_WAIT_SECONDS;
	pthread_mutex_lock(&w->m);
	while (w->remaining > 0) {
		if (pthread_cond_timedwait(&w->c, &w->m, &ts) == ETIMEDOUT)
			break;
	}
	int left = w->remaining;
	pthread_mutex_unlock(&w->m);
	ck_assert_msg(left == 0, "%d requests never answered", left);
}

/* A request with its own storage. */
struct test_req {
	struct queue_req req;
	struct queue_item items[4];
	char prov[4][32], chan[4][32];
	char event[160];
	struct test_waiter *waiter;
	int done_calls;
	/* Optional: submitted from done (shutdown test). */
	struct queue_writer *chain_writer;
	struct test_req *chain;
};

static void
test_done(struct queue_req *r)
{
	struct test_req *t = r->arg;
	t->done_calls++;
	if (t->chain != NULL)
		queue_writer_submit(t->chain_writer, &t->chain->req);
	struct test_waiter *w = t->waiter;
	pthread_mutex_lock(&w->m);
	w->remaining--;
	pthread_cond_broadcast(&w->c);
	pthread_mutex_unlock(&w->m);
}

/*
 * Fill t: targets is a list like "slack", "slack#dev" (provider#channel);
 * key_byte >= 0 gives a dedup key of that byte with the window.
 */
static void
test_req_init(struct test_req *t, struct test_waiter *w, const char *name,
    const char *const *targets, size_t ntargets, int key_byte, double window)
{
	memset(t, 0, sizeof(*t));
	snprintf(t->event, sizeof(t->event),
	    "{\"involvedObject\":{\"kind\":\"Kustomization\",\"namespace\":\"apps\","
	    "\"name\":\"%s\"},\"severity\":\"error\",\"message\":\"m\"}", name);
	util_new_id(t->req.event_id);
	t->req.event = t->event;
	t->req.event_len = strlen(t->event);
	ck_assert_uint_le(ntargets, 4);
	for (size_t i = 0; i < ntargets; i++) {
		const char *hash = strchr(targets[i], '#');
		size_t plen = hash ? (size_t)(hash - targets[i]) : strlen(targets[i]);
		snprintf(t->prov[i], sizeof(t->prov[i]), "%.*s", (int)plen, targets[i]);
		snprintf(t->chan[i], sizeof(t->chan[i]), "%s", hash ? hash : "");
		t->items[i].provider = t->prov[i];
		t->items[i].channel = t->chan[i];
		t->items[i].alerts = "errors,all";
		t->items[i].extra = "{\"cluster\":\"prod\"}";
	}
	t->req.items = t->items;
	t->req.nitems = ntargets;
	if (key_byte >= 0) {
		t->req.has_dedup = true;
		memset(t->req.dedup_key, key_byte, DEDUP_KEY_LEN);
		t->req.dedup_window = window;
	}
	t->req.done = test_done;
	t->req.arg = t;
	t->waiter = w;
}

static struct queue_writer *
test_writer(long max_pending)
{
	char err[512] = "";
	struct queue_writer_opts o = {
		.state_dir = test_dir, .sync_full = true, .max_pending = max_pending,
	};
	struct queue_writer *w = queue_writer_start(&o, err, sizeof(err));
	ck_assert_msg(w != NULL, "writer: %s", err);
	return w;
}

static struct queue *
test_open(void)
{
	char err[512] = "";
	struct queue *q = queue_open(test_dir, true, err, sizeof(err));
	ck_assert_msg(q != NULL, "open: %s", err);
	return q;
}

/* Submit one request and wait for its answer. */
static enum queue_result
test_submit1(struct queue_writer *w, const char *name, const char *const *targets,
    size_t ntargets, int key_byte, double window, char event_id[UTIL_ID_SIZE])
{
	struct test_waiter wt;
	struct test_req t;
	test_waiter_init(&wt, 1);
	test_req_init(&t, &wt, name, targets, ntargets, key_byte, window);
	queue_writer_submit(w, &t.req);
	test_waiter_wait(&wt);
	test_waiter_destroy(&wt);
	ck_assert_int_eq(t.done_calls, 1);
	if (event_id)
		memcpy(event_id, t.req.event_id, 33);
	return t.req.result;
}

static int64_t
test_sql_int(const char *sql)
{
	char *path = util_printf("%s/queue.db", test_dir);
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int64_t v = -1;
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	free(path);
	return v;
}

static void
test_sql_exec(const char *sql)
{
	char *path = util_printf("%s/queue.db", test_dir);
	sqlite3 *db = NULL;
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, msg ? msg : "?");
	sqlite3_free(msg);
	sqlite3_close(db);
	free(path);
}

/* ------------------------------------------------------ open and schema */

START_TEST(t_open_creates_nested_dir)
{
	char *nested = util_printf("%s/a/b/state", test_dir);
	char err[512] = "";
	struct queue *q = queue_open(nested, true, err, sizeof(err));
	ck_assert_msg(q != NULL, "%s", err);
	struct stat st;
	char *a = util_printf("%s/a", test_dir);
	ck_assert_int_eq(stat(a, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0700);
	ck_assert_int_eq(stat(nested, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0700);
	char *db = util_printf("%s/queue.db", nested);
	ck_assert_int_eq(stat(db, &st), 0);
	ck_assert_int_eq(queue_count(q, QUEUE_PENDING), 0);
	ck_assert_int_eq(queue_count(q, QUEUE_DEAD), 0);
	queue_close(q);
	/* Reopen: schema already there. */
	q = queue_open(nested, false, err, sizeof(err));
	ck_assert_msg(q != NULL, "%s", err);
	ck_assert_int_eq(queue_count(q, QUEUE_PENDING), 0);
	queue_close(q);
	queue_close(NULL);
	free(a);
	free(db);
	free(nested);
}
END_TEST

START_TEST(t_open_wal_and_schema)
{
	struct queue *q = test_open();
	queue_close(q);
	char *path = util_printf("%s/queue.db", test_dir);
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	ck_assert_str_eq((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	sqlite3_close(db);
	free(path);
	ck_assert_int_eq(test_sql_int(
	    "SELECT value FROM meta WHERE key = 'schema_version'"), 2);
	ck_assert_int_eq(test_sql_int(
	    "SELECT count(*) FROM sqlite_master WHERE name IN ('deliveries_by_target', "
	    "'incidents', 'incidents_by_age', 'threads')"), 4);
}
END_TEST

/*
 * deliveries.cluster: stored and read back; a version 1 file gets the column
 * with the other version 2 columns (t_v1_upgrade_by_writer), its rows empty.
 */
START_TEST(t_cluster_column)
{
	struct queue *q = test_open();
	const struct queue_item items[] = {
		{ .provider = "slack", .channel = "", .alerts = "a", .extra = "{}",
		  .cluster = "prod-eu-1" },
		{ .provider = "slack", .channel = "", .alerts = "a", .extra = "{}" },
	};
	ck_assert_int_eq(queue_begin(q), 0);
	ck_assert_int_eq(queue_insert(q, "0123456789abcdef0123456789abcdef", "{}", 2, items, 2,
	    1000.0), 0);
	ck_assert_int_eq(queue_commit(q), 0);
	struct queue_row *rows = NULL;
	size_t n = 0;
	ck_assert_int_eq(queue_list(q, QUEUE_PENDING, &rows, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(rows[0].cluster, "prod-eu-1");
	ck_assert_str_eq(rows[1].cluster, "");
	queue_rows_free(rows, n);
	queue_close(q);
}
END_TEST

START_TEST(t_open_refuses_newer_schema)
{
	struct queue *q = test_open();
	queue_close(q);
	test_sql_exec("UPDATE meta SET value = '99' WHERE key = 'schema_version'");
	char err[512] = "";
	q = queue_open(test_dir, true, err, sizeof(err));
	ck_assert_ptr_null(q);
	ck_assert_msg(strstr(err, "schema version 99") != NULL, "%s", err);
}
END_TEST

START_TEST(t_open_fails_on_file_as_dir)
{
	char *file = util_printf("%s/plain", test_dir);
	FILE *f = fopen(file, "w");
	ck_assert_ptr_nonnull(f);
	fclose(f);
	char err[512] = "";
	ck_assert_ptr_null(queue_open(file, true, err, sizeof(err)));
	ck_assert_msg(strstr(err, "plain") != NULL, "%s", err);
	err[0] = '\0';
	ck_assert_ptr_null(queue_open("", true, err, sizeof(err)));
	ck_assert_str_ne(err, "");
	free(file);
}
END_TEST

START_TEST(t_persist_across_reopen)
{
	static const char *const one[] = { "slack" };
	static const char *const two[] = { "slack", "bot#ops" };
	char ids[3][UTIL_ID_SIZE];
	struct queue_writer *w = test_writer(100);
	ck_assert_int_eq(test_submit1(w, "a", one, 1, -1, 0, ids[0]), QUEUE_RESULT_ACCEPTED);
	ck_assert_int_eq(test_submit1(w, "b", two, 2, -1, 0, ids[1]), QUEUE_RESULT_ACCEPTED);
	ck_assert_int_eq(test_submit1(w, "c", one, 1, -1, 0, ids[2]), QUEUE_RESULT_ACCEPTED);
	ck_assert_int_eq(queue_pending_get(), 4);
	queue_writer_stop(w);

	double now = util_now();
	struct queue *q = test_open();
	struct queue_row *rows = NULL;
	size_t n = 0;
	ck_assert_int_eq(queue_list(q, QUEUE_PENDING, &rows, &n), 0);
	ck_assert_uint_eq(n, 4);
	ck_assert_str_eq(rows[0].event_id, ids[0]);
	ck_assert_str_eq(rows[1].event_id, ids[1]);
	ck_assert_str_eq(rows[2].event_id, ids[1]);
	ck_assert_str_eq(rows[3].event_id, ids[2]);
	for (size_t i = 1; i < n; i++)
		ck_assert_int_gt(rows[i].id, rows[i - 1].id);
	ck_assert_str_eq(rows[1].provider, "slack");
	ck_assert_str_eq(rows[1].channel, "");
	ck_assert_str_eq(rows[2].provider, "bot");
	ck_assert_str_eq(rows[2].channel, "#ops");
	ck_assert_str_eq(rows[2].alerts, "errors,all");
	ck_assert_str_eq(rows[2].extra, "{\"cluster\":\"prod\"}");
	ck_assert_ptr_nonnull(strstr(rows[2].event, "\"name\":\"b\""));
	ck_assert_uint_eq(rows[2].event_len, strlen(rows[2].event));
	ck_assert_int_eq(rows[2].state, QUEUE_PENDING);
	ck_assert_int_eq(rows[2].attempts, 0);
	ck_assert_ptr_null(rows[2].last_error);
	ck_assert(rows[2].created_at > now - 60 && rows[2].created_at <= now + 1);
	ck_assert(rows[2].next_attempt_at <= now);
	queue_rows_free(rows, n);
	queue_close(q);

	/* A new writer takes the pending count from the database. */
	queue_pending_set(0);
	w = test_writer(100);
	ck_assert_int_eq(queue_pending_get(), 4);
	queue_writer_stop(w);
	queue_writer_stop(NULL);
}
END_TEST

/* ------------------------------------------------ schema v2 and upgrade */

/* The first stage's schema, exactly as version 1 created it. */
static const char test_schema_v1[] =
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
	"  last_error TEXT);"
	"CREATE INDEX IF NOT EXISTS deliveries_by_target"
	"  ON deliveries (state, provider, channel, id);"
	"CREATE TABLE IF NOT EXISTS dedup ("
	"  key BLOB PRIMARY KEY, event_id TEXT NOT NULL, first_seen REAL NOT NULL)"
	"  WITHOUT ROWID;"
	"INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', '1');";

/* A version 1 queue.db in WAL mode, as the first stage left it: 3 pending rows
 * (two targets), 2 dead letters, a dedup key. */
static void
test_make_v1(void)
{
	char *path = util_printf("%s/queue.db", test_dir);
	sqlite3 *db = NULL;
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, test_schema_v1, NULL, NULL, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db,
	    "INSERT INTO deliveries (event_id, provider, channel, alerts, extra, event, state, "
	    "attempts, next_attempt_at, created_at, last_error) VALUES "
	    "('e1', 'slack', '', 'errors', '{}', '{\"n\":1}', 0, 0, 0, 1000, NULL),"
	    "('e2', 'slack', '', 'errors', '{}', '{\"n\":2}', 1, 3, 1100, 1001, 'HTTP 404 no_service'),"
	    "('e3', 'bot', '#ops', 'all', '{\"a\":\"b\"}', '{\"n\":3}', 0, 2, 5000, 1002, 'HTTP 500'),"
	    "('e4', 'slack', '', 'errors', '{}', '{\"n\":4}', 1, 0, 1200, 1003, 'HTTP 403 action_prohibited'),"
	    "('e5', 'slack', '', 'errors', '{}', '{\"n\":5}', 0, 0, 0, 1004, NULL);"
	    "INSERT INTO dedup (key, event_id, first_seen) VALUES (x'0102', 'e1', 1000);",
	    NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	free(path);
}

/* Rows of a state as "event_id:provider:channel:attempts:last_error:kind:thread_key:incident". */
static char *
test_rows_text(struct queue *q, enum queue_state state)
{
	struct queue_row *rows = NULL;
	size_t n = 0;
	struct util_buf b = {0};
	util_buf_puts(&b, "");
	ck_assert_int_eq(queue_list(q, state, &rows, &n), 0);
	for (size_t i = 0; i < n; i++)
		util_buf_printf(&b, "%s%s:%s:%s:%d:%s:%d:%s:%s", i ? " " : "", rows[i].event_id,
		    rows[i].provider, rows[i].channel, rows[i].attempts,
		    rows[i].last_error ? rows[i].last_error : "-", (int)rows[i].kind,
		    rows[i].thread_key, rows[i].incident ? rows[i].incident : "-");
	queue_rows_free(rows, n);
	return b.data;
}

#define TEST_V1_PENDING "e1:slack::0:-:0::- e3:bot:#ops:2:HTTP 500:0::- e5:slack::0:-:0::-"
#define TEST_V1_DEAD "e2:slack::3:HTTP 404 no_service:0::- " \
	"e4:slack::0:HTTP 403 action_prohibited:0::-"

/* The CLI's view of a version 1 file: read as it is, never changed. */
START_TEST(t_v1_read_as_is)
{
	test_make_v1();
	struct queue *q = test_open();
	ck_assert_int_eq(queue_schema_version(q), 1);
	char *t = test_rows_text(q, QUEUE_PENDING);
	ck_assert_str_eq(t, TEST_V1_PENDING);
	free(t);
	t = test_rows_text(q, QUEUE_DEAD);
	ck_assert_str_eq(t, TEST_V1_DEAD);
	free(t);
	struct queue_row *rows = NULL;
	size_t n = 0;
	ck_assert_int_eq(queue_target_head(q, "bot", "#ops", 10, &rows, &n), 0);
	ck_assert_uint_eq(n, 1);
	queue_rows_free(rows, n);
	/* No incidents, no threads; closing them changes nothing. */
	struct queue_incident *inc = NULL;
	ck_assert_int_eq(queue_incident_list_page(q, 0, 100, &inc, &n), 0);
	ck_assert_uint_eq(n, 0);
	struct queue_thread *th = NULL;
	ck_assert_int_eq(queue_thread_list_key(q, "/Kustomization/apps/web", &th, &n), 0);
	ck_assert_uint_eq(n, 0);
	int64_t changed = -1;
	ck_assert_int_eq(queue_incident_close(q, NULL, 0, &changed), 0);
	ck_assert_int_eq(changed, 0);
	/* Retry and purge work on it as before. */
	int64_t id4 = test_sql_int("SELECT id FROM deliveries WHERE event_id = 'e4'");
	ck_assert_int_eq(queue_retry(q, &id4, 1, &changed), 0);
	ck_assert_int_eq(changed, 1);
	/* Writing what version 1 has no room for is refused, with a reason. */
	struct queue_incident in = { 0 };
	ck_assert_int_eq(queue_incident_get(q, "a", "", "K", "", "n", &in), -1);
	ck_assert_msg(strstr(queue_errmsg(q), "schema version 1") != NULL, "%s", queue_errmsg(q));
	queue_close(q);
	ck_assert_int_eq(test_sql_int("SELECT value FROM meta WHERE key = 'schema_version'"), 1);
	ck_assert_int_eq(test_sql_int(
	    "SELECT count(*) FROM sqlite_master WHERE name IN ('incidents', 'threads')"), 0);
}
END_TEST

/* The daemon's writer upgrades in place: rows, dead letters and dedup keys stay. */
START_TEST(t_v1_upgrade_by_writer)
{
	test_make_v1();
	queue_pending_set(0);
	struct queue_writer *w = test_writer(100);
	ck_assert_int_eq(queue_pending_get(), 3);
	queue_writer_stop(w);
	ck_assert_int_eq(test_sql_int("SELECT value FROM meta WHERE key = 'schema_version'"), 2);
	ck_assert_int_eq(test_sql_int(
	    "SELECT count(*) FROM sqlite_master WHERE name IN ('incidents', 'incidents_by_age', "
	    "'threads')"), 3);
	ck_assert_int_eq(test_sql_int("SELECT count(*) FROM dedup WHERE event_id = 'e1'"), 1);
	ck_assert_int_eq(test_sql_int(
	    "SELECT count(*) FROM deliveries WHERE cluster = '' AND kind = 0 AND thread_key = ''"
	    " AND incident IS NULL"), test_sql_int("SELECT count(*) FROM deliveries"));

	/* Opened twice more: nothing to do, nothing lost. */
	for (int round = 0; round < 2; round++) {
		w = test_writer(100);
		queue_writer_stop(w);
		struct queue *q = test_open();
		int from = -1;
		ck_assert_int_eq(queue_upgrade(q, &from), 0);
		ck_assert_int_eq(from, 2);
		char *t = test_rows_text(q, QUEUE_PENDING);
		ck_assert_str_eq(t, TEST_V1_PENDING);
		free(t);
		t = test_rows_text(q, QUEUE_DEAD);
		ck_assert_str_eq(t, TEST_V1_DEAD);
		free(t);
		queue_close(q);
	}

	/* The new columns take the new writes beside the old rows. */
	static const char *const one[] = { "slack" };
	w = test_writer(100);
	ck_assert_int_eq(test_submit1(w, "x", one, 1, -1, 0, NULL), QUEUE_RESULT_ACCEPTED);
	queue_writer_stop(w);
	ck_assert_int_eq(test_sql_int("SELECT count(*) FROM deliveries WHERE state = 0"), 4);
}
END_TEST

/* A connection that opened version 1 keeps working while the writer upgrades. */
START_TEST(t_v1_reader_beside_upgrade)
{
	test_make_v1();
	struct queue *q = test_open();
	char *t = test_rows_text(q, QUEUE_PENDING);
	free(t);
	struct queue_writer *w = test_writer(100);
	t = test_rows_text(q, QUEUE_PENDING);
	ck_assert_str_eq(t, TEST_V1_PENDING);
	free(t);
	queue_writer_stop(w);
	queue_close(q);
}
END_TEST

START_TEST(t_upgrade_refuses_newer)
{
	test_make_v1();
	struct queue_writer *w = test_writer(100);
	queue_writer_stop(w);
	test_sql_exec("UPDATE meta SET value = '3' WHERE key = 'schema_version'");
	char err[512] = "";
	ck_assert_ptr_null(queue_open(test_dir, true, err, sizeof(err)));
	ck_assert_msg(strstr(err, "schema version 3") != NULL, "%s", err);
	struct queue_writer_opts o = { .state_dir = test_dir, .sync_full = true, .max_pending = 10 };
	err[0] = '\0';
	ck_assert_ptr_null(queue_writer_start(&o, err, sizeof(err)));
	ck_assert_msg(strstr(err, "understands up to 2") != NULL, "%s", err);
	ck_assert_int_eq(test_sql_int("SELECT value FROM meta WHERE key = 'schema_version'"), 3);
}
END_TEST

/* A migrated file and a new one have the same columns, in the same order. */
START_TEST(t_v1_upgrade_same_as_new)
{
	test_make_v1();
	struct queue_writer *w = test_writer(100);
	queue_writer_stop(w);
	char *migrated_path = util_printf("%s/queue.db", test_dir);
	char *fresh_dir = util_printf("%s/fresh", test_dir);
	char err[512] = "";
	struct queue *f = queue_open(fresh_dir, true, err, sizeof(err));
	ck_assert_msg(f != NULL, "%s", err);
	queue_close(f);
	char *fresh_path = util_printf("%s/queue.db", fresh_dir);
	const char *tables[] = { "deliveries", "incidents", "threads", "dedup", "meta" };
	for (size_t i = 0; i < 5; i++) {
		char *cols[2];
		const char *paths[2] = { migrated_path, fresh_path };
		for (int k = 0; k < 2; k++) {
			sqlite3 *db = NULL;
			sqlite3_stmt *st = NULL;
			struct util_buf b = {0};
			util_buf_puts(&b, "");
			char *sql = util_printf("SELECT name, type, \"notnull\", dflt_value, pk FROM "
			    "pragma_table_info('%s')", tables[i]);
			ck_assert_int_eq(sqlite3_open(paths[k], &db), SQLITE_OK);
			ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
			while (sqlite3_step(st) == SQLITE_ROW)
				for (int c = 0; c < 5; c++)
					util_buf_printf(&b, "%s%c", sqlite3_column_text(st, c) ?
					    (const char *)sqlite3_column_text(st, c) : "NULL",
					    c == 4 ? ';' : ',');
			sqlite3_finalize(st);
			sqlite3_close(db);
			free(sql);
			cols[k] = b.data;
		}
		ck_assert_msg(strcmp(cols[0], cols[1]) == 0, "%s: %s vs %s", tables[i], cols[0],
		    cols[1]);
		free(cols[0]);
		free(cols[1]);
	}
	free(migrated_path);
	free(fresh_path);
	free(fresh_dir);
}
END_TEST

/* kind, thread_key and the incident snapshot go in and come back out. */
START_TEST(t_insert_kinds)
{
	struct queue *q = test_open();
	struct queue_item items[2] = {
		{ .provider = "bot", .channel = "#ops", .alerts = "inc", .extra = "{}",
		  .kind = QUEUE_KIND_RECOVERED, .thread_key = "/Kustomization/apps/web",
		  .incident = "{\"state\":\"recovered\",\"failures\":3}" },
		{ .provider = "slack", .alerts = "all", .extra = "{}" },
	};
	ck_assert_int_eq(queue_begin(q), 0);
	ck_assert_int_eq(queue_insert(q, "abc", "{}", 2, items, 2, util_now()), 0);
	ck_assert_int_eq(queue_commit(q), 0);
	char *t = test_rows_text(q, QUEUE_PENDING);
	ck_assert_str_eq(t, "abc:bot:#ops:0:-:3:/Kustomization/apps/web:"
	    "{\"state\":\"recovered\",\"failures\":3} abc:slack::0:-:0::-");
	free(t);
	ck_assert_str_eq(queue_kind_name(QUEUE_KIND_OPENED), "opened");
	ck_assert_str_eq(queue_kind_name(QUEUE_KIND_REPLY), "reply");
	ck_assert_str_eq(queue_kind_name((enum queue_kind)42), "event");
	queue_close(q);
}
END_TEST

START_TEST(t_incident_rows)
{
	struct queue *q = test_open();
	struct queue_incident in = {
		.alert = "inc", .cluster = "", .kind = "Kustomization", .namespace = "apps",
		.name = "web", .opened_at = 100, .last_at = 100, .last_notified_at = 100,
		.failures = 1, .last_message = "boom", .last_norm = "n1", .last_reason = "Failed",
		.last_revision = "main@sha1:1",
	};
	struct queue_incident got;
	ck_assert_int_eq(queue_begin(q), 0);
	ck_assert_int_eq(queue_incident_get(q, "inc", "", "Kustomization", "apps", "web", &got), 0);
	ck_assert_int_eq(queue_incident_insert(q, &in), 0);
	ck_assert_int_gt(in.id, 0);
	/* Seen inside the transaction that wrote it. */
	ck_assert_int_eq(queue_incident_get(q, "inc", "", "Kustomization", "apps", "web", &got), 1);
	ck_assert_int_eq(got.id, in.id);
	ck_assert_str_eq(got.last_message, "boom");
	queue_incident_clear(&got);
	in.failures = 5;
	in.last_at = 200;
	in.last_message = "boom again";
	ck_assert_int_eq(queue_incident_update(q, &in), 0);
	struct queue_incident other = in;
	other.alert = "inc2";
	other.last_at = 50;
	ck_assert_int_eq(queue_incident_insert(q, &other), 0);
	ck_assert_int_eq(queue_commit(q), 0);

	ck_assert_int_eq(queue_incident_get(q, "inc", "", "Kustomization", "apps", "web", &got), 1);
	ck_assert_int_eq(got.failures, 5);
	ck_assert(got.last_at == 200 && got.opened_at == 100);
	ck_assert_str_eq(got.last_message, "boom again");
	ck_assert_str_eq(got.last_reason, "Failed");
	ck_assert_str_eq(got.last_revision, "main@sha1:1");
	queue_incident_clear(&got);
	/* Another object, another alert: not the same incident. */
	ck_assert_int_eq(queue_incident_get(q, "inc", "", "Kustomization", "apps", "api", &got), 0);
	ck_assert_int_eq(queue_incident_get(q, "inc", "c1", "Kustomization", "apps", "web", &got), 0);

	int64_t n = -1;
	ck_assert_int_eq(queue_begin(q), 0);
	ck_assert_int_eq(queue_incident_expire(q, "inc", 199, &n), 0);
	ck_assert_int_eq(n, 0);
	ck_assert_int_eq(queue_incident_expire(q, "inc2", 50, &n), 0);
	ck_assert_int_eq(n, 1);
	ck_assert_int_eq(queue_commit(q), 0);

	struct queue_incident *rows = NULL;
	size_t nrows = 0;
	ck_assert_int_eq(queue_incident_list_page(q, 0, 10, &rows, &nrows), 0);
	ck_assert_uint_eq(nrows, 1);
	ck_assert_str_eq(rows[0].alert, "inc");
	queue_incidents_free(rows, nrows);
	int64_t ids[2] = { in.id, 999 };
	ck_assert_int_eq(queue_incident_close(q, ids, 2, &n), 0);
	ck_assert_int_eq(n, 1);
	ck_assert_int_eq(queue_incident_list_page(q, 0, 10, &rows, &nrows), 0);
	ck_assert_uint_eq(nrows, 0);
	/* Ids are never used again: `incidents close ID` cannot hit a newer one. */
	struct queue_incident again = in;
	ck_assert_int_eq(queue_begin(q), 0);
	ck_assert_int_eq(queue_incident_insert(q, &again), 0);
	ck_assert_int_eq(queue_commit(q), 0);
	ck_assert_int_gt(again.id, other.id);
	queue_close(q);
}
END_TEST

START_TEST(t_thread_rows)
{
	struct queue *q = test_open();
	struct queue_thread t = {
		.provider = "bot", .channel = "#ops", .thread_key = "/K/apps/web",
		.channel_id = "C1", .ts = "1.0001", .opened_at = 10, .last_at = 10,
	};
	struct queue_thread got;
	ck_assert_int_eq(queue_thread_put(q, &t), 0);
	t.channel = "#dev";
	t.ts = "1.0002";
	ck_assert_int_eq(queue_thread_put(q, &t), 0);
	ck_assert_int_eq(queue_thread_get(q, "bot", "#ops", "/K/apps/web", &got), 1);
	ck_assert_str_eq(got.channel_id, "C1");
	ck_assert_str_eq(got.ts, "1.0001");
	ck_assert(got.updated_at == 0);
	queue_thread_clear(&got);
	ck_assert_int_eq(queue_thread_touch(q, "bot", "#ops", "/K/apps/web", 20, 15), 0);
	ck_assert_int_eq(queue_thread_touch(q, "bot", "#ops", "/K/apps/web", 30, -1), 0);
	ck_assert_int_eq(queue_thread_get(q, "bot", "#ops", "/K/apps/web", &got), 1);
	ck_assert(got.last_at == 30 && got.updated_at == 15);
	queue_thread_clear(&got);
	/* Replacing keeps one handle per key. */
	t.channel = "#ops";
	t.ts = "2.0000";
	ck_assert_int_eq(queue_thread_put(q, &t), 0);
	struct queue_thread *rows = NULL;
	size_t n = 0;
	ck_assert_int_eq(queue_thread_list_key(q, "/K/apps/web", &rows, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(rows[0].channel, "#dev");
	ck_assert_str_eq(rows[1].ts, "2.0000");
	queue_threads_free(rows, n);
	int64_t gone = -1;
	ck_assert_int_eq(queue_thread_expire(q, "bot", 10, &gone), 0);
	ck_assert_int_eq(gone, 2);
	ck_assert_int_eq(queue_thread_get(q, "bot", "#ops", "/K/apps/web", &got), 0);
	ck_assert_int_eq(queue_thread_put(q, &t), 0);
	ck_assert_int_eq(queue_thread_delete(q, "bot", "#ops", "/K/apps/web"), 0);
	ck_assert_int_eq(queue_thread_get(q, "bot", "#ops", "/K/apps/web", &got), 0);
	queue_close(q);
}
END_TEST

static void
test_meta_collect(const char *key, const char *value, void *arg)
{
	util_buf_printf(arg, "%s=%s;", key, value);
}

START_TEST(t_meta_rows)
{
	struct queue *q = test_open();
	ck_assert_int_eq(queue_meta_put(q, "alert:b", "2"), 0);
	ck_assert_int_eq(queue_meta_put(q, "alert:a", "1"), 0);
	ck_assert_int_eq(queue_meta_put(q, "alerts", "x"), 0);
	ck_assert_int_eq(queue_meta_put(q, "alert;", "y"), 0);
	char *v = NULL;
	ck_assert_int_eq(queue_meta_get(q, "alert:a", &v), 1);
	ck_assert_str_eq(v, "1");
	free(v);
	struct util_buf b = {0};
	util_buf_puts(&b, "");
	ck_assert_int_eq(queue_meta_each(q, "alert:", test_meta_collect, &b), 0);
	ck_assert_str_eq(b.data, "alert:a=1;alert:b=2;");
	util_buf_free(&b);
	ck_assert_int_eq(queue_meta_put(q, "alert:a", NULL), 0);
	ck_assert_int_eq(queue_meta_get(q, "alert:a", &v), 0);
	queue_close(q);
}
END_TEST

/* What is looked up per event is looked up by an index, never by a scan. */
START_TEST(t_lookups_never_scan)
{
	struct queue *q = test_open();
	static const char *const per_event[] = {
		"insert", "dedup_get", "dedup_put", "incident_get", "incident_insert",
		"incident_update", "incident_delete", "incident_expire", "incident_drop_alert",
		"incident_list_alert",
		"thread_get", "thread_put", "thread_touch", "thread_delete", "thread_expire",
		"thread_drop_provider", "meta_get", "meta_each",
	};
	for (size_t i = 0; i < sizeof(per_event) / sizeof(per_event[0]); i++) {
		char *plan = queue_plan(q, per_event[i]);
		ck_assert_msg(plan != NULL, "%s: no plan", per_event[i]);
		ck_assert_msg(strstr(plan, "SCAN") == NULL, "%s scans: %s", per_event[i], plan);
		free(plan);
	}
	char *plan = queue_plan(q, "incident_get");
	ck_assert_msg(strstr(plan, "SEARCH incidents USING INDEX sqlite_autoindex_incidents_1 "
	    "(alert=? AND cluster=? AND kind=? AND namespace=? AND name=?)") != NULL, "%s", plan);
	free(plan);
	plan = queue_plan(q, "incident_expire");
	ck_assert_msg(strstr(plan, "incidents_by_age (alert=? AND last_at<?)") != NULL, "%s", plan);
	free(plan);
	plan = queue_plan(q, "thread_touch");
	ck_assert_msg(strstr(plan, "SEARCH threads USING PRIMARY KEY (provider=? AND channel=? "
	    "AND thread_key=?)") != NULL, "%s", plan);
	free(plan);
	/* The counts read the index in order: no sort. */
	plan = queue_plan(q, "incident_counts");
	ck_assert_msg(strstr(plan, "TEMP B-TREE") == NULL, "%s", plan);
	free(plan);
	ck_assert_ptr_null(queue_plan(q, "no_such_function"));
	queue_close(q);
}
END_TEST

/* ----------------------------------------------------------- the writer */

#define TEST_THREADS 8
#define TEST_PER_THREAD 500

struct test_producer {
	struct queue_writer *w;
	struct test_req *reqs;
	int index;
};

/* Submit every request at once (as many HTTP threads would), then wait. */
static void *
test_producer_main(void *arg)
{
	struct test_producer *p = arg;
	static const char *const targets[] = { "slack", "bot#ops" };
	struct test_waiter wt;
	test_waiter_init(&wt, TEST_PER_THREAD);
	for (int i = 0; i < TEST_PER_THREAD; i++) {
		char name[32];
		snprintf(name, sizeof(name), "t%d-%d", p->index, i);
		/* Distinct dedup keys: thread and index bytes. */
		test_req_init(&p->reqs[i], &wt, name, targets, 1 + (i % 2), -1, 0);
		p->reqs[i].req.has_dedup = true;
		p->reqs[i].req.dedup_window = 300;
		memset(p->reqs[i].req.dedup_key, 0, DEDUP_KEY_LEN);
		p->reqs[i].req.dedup_key[0] = (unsigned char)p->index;
		p->reqs[i].req.dedup_key[1] = (unsigned char)(i & 0xff);
		p->reqs[i].req.dedup_key[2] = (unsigned char)(i >> 8);
	}
	for (int i = 0; i < TEST_PER_THREAD; i++)
		queue_writer_submit(p->w, &p->reqs[i].req);
	test_waiter_wait(&wt);
	test_waiter_destroy(&wt);
	return NULL;
}

static int
test_cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

START_TEST(t_writer_concurrent_exactly_once)
{
	struct queue_writer *w = test_writer(1000000);
	struct test_producer prod[TEST_THREADS];
	pthread_t th[TEST_THREADS];
	for (int i = 0; i < TEST_THREADS; i++) {
		prod[i].w = w;
		prod[i].index = i;
		prod[i].reqs = util_calloc(TEST_PER_THREAD, sizeof(struct test_req));
		ck_assert_int_eq(pthread_create(&th[i], NULL, test_producer_main, &prod[i]), 0);
	}
	for (int i = 0; i < TEST_THREADS; i++)
		pthread_join(th[i], NULL);

	const int total = TEST_THREADS * TEST_PER_THREAD;
	int64_t rows_expected = 0;
	char **ids = util_calloc((size_t)total, sizeof(char *));
	for (int i = 0; i < TEST_THREADS; i++)
		for (int j = 0; j < TEST_PER_THREAD; j++) {
			struct test_req *t = &prod[i].reqs[j];
			ck_assert_int_eq(t->done_calls, 1);
			ck_assert_int_eq(t->req.result, QUEUE_RESULT_ACCEPTED);
			rows_expected += (int64_t)t->req.nitems;
			ids[i * TEST_PER_THREAD + j] = t->req.event_id;
		}

	struct queue_writer_stats s;
	queue_writer_get_stats(w, &s);
	ck_assert_uint_eq(s.requests, (uint64_t)total);
	ck_assert_uint_eq(s.accepted, (uint64_t)total);
	ck_assert_uint_eq(s.errors, 0);
	ck_assert_msg(s.batches < (uint64_t)total, "no batching: %llu batches",
	    (unsigned long long)s.batches);
	ck_assert_uint_gt(s.max_batch, 1);
	ck_assert_uint_le(s.commits, s.batches);
	ck_assert_int_eq(queue_pending_get(), rows_expected);

	/* Exactly once on disk: every event id, with the right number of rows. */
	struct queue *q = test_open();
	struct queue_row *rows = NULL;
	size_t n = 0;
	ck_assert_int_eq(queue_list(q, QUEUE_PENDING, &rows, &n), 0);
	ck_assert_int_eq((int64_t)n, rows_expected);
	char **got = util_calloc((size_t)total, sizeof(char *));
	size_t ngot = 0;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(rows[i].provider, "slack") == 0) {
			ck_assert_uint_lt(ngot, (size_t)total);
			got[ngot++] = rows[i].event_id;
		}
	}
	ck_assert_uint_eq(ngot, (size_t)total);
	qsort(ids, (size_t)total, sizeof(char *), test_cmp_str);
	qsort(got, ngot, sizeof(char *), test_cmp_str);
	for (int i = 0; i < total; i++) {
		ck_assert_str_eq(ids[i], got[i]);
		if (i > 0)
			ck_assert_str_ne(got[i], got[i - 1]);
	}
	ck_assert_int_eq(test_sql_int("SELECT count(*) FROM dedup"), total);
	free(got);
	queue_rows_free(rows, n);
	queue_close(q);
	queue_writer_stop(w);
	free(ids);
	for (int i = 0; i < TEST_THREADS; i++)
		free(prod[i].reqs);
}
END_TEST

START_TEST(t_writer_batch_while_paused)
{
	static const char *const one[] = { "slack" };
	struct queue_writer *w = test_writer(1000);
	struct test_waiter wt;
	struct test_req t[10];
	test_waiter_init(&wt, 10);
	queue_writer_pause(w, true);
	for (int i = 0; i < 10; i++) {
		test_req_init(&t[i], &wt, "p", one, 1, -1, 0);
		queue_writer_submit(w, &t[i].req);
	}
	queue_writer_pause(w, false);
	test_waiter_wait(&wt);
	struct queue_writer_stats s;
	queue_writer_get_stats(w, &s);
	ck_assert_uint_eq(s.batches, 1);
	ck_assert_uint_eq(s.commits, 1);
	ck_assert_uint_eq(s.max_batch, 10);
	for (int i = 0; i < 10; i++)
		ck_assert_int_eq(t[i].req.result, QUEUE_RESULT_ACCEPTED);
	queue_writer_stop(w);
	test_waiter_destroy(&wt);
}
END_TEST

/* --------------------------------------------------------------- dedup */

START_TEST(t_dedup_within_window)
{
	static const char *const one[] = { "slack" };
	char a[UTIL_ID_SIZE], b[UTIL_ID_SIZE], c[UTIL_ID_SIZE], d[UTIL_ID_SIZE];
	struct queue_writer *w = test_writer(1000);
	ck_assert_int_eq(test_submit1(w, "x", one, 1, 7, 300, a), QUEUE_RESULT_ACCEPTED);
	ck_assert_int_eq(test_submit1(w, "x", one, 1, 7, 300, b), QUEUE_RESULT_DUPLICATE);
	ck_assert_str_eq(b, a);
	ck_assert_int_eq(test_submit1(w, "y", one, 1, 8, 300, c), QUEUE_RESULT_ACCEPTED);
	ck_assert_str_ne(c, a);
	/* Without has_dedup the same key is not looked at. */
	ck_assert_int_eq(test_submit1(w, "x", one, 1, -1, 0, d), QUEUE_RESULT_ACCEPTED);
	ck_assert_str_ne(d, a);
	queue_writer_stop(w);
	struct queue *q = test_open();
	ck_assert_int_eq(queue_count(q, QUEUE_PENDING), 3);
	queue_close(q);
	ck_assert_int_eq(test_sql_int("SELECT count(*) FROM dedup"), 2);
}
END_TEST

START_TEST(t_dedup_after_window)
{
	static const char *const one[] = { "slack" };
	char a[UTIL_ID_SIZE], b[UTIL_ID_SIZE], c[UTIL_ID_SIZE], d[UTIL_ID_SIZE];
	struct queue_writer *w = test_writer(1000);
	ck_assert_int_eq(test_submit1(w, "x", one, 1, 7, 300, a), QUEUE_RESULT_ACCEPTED);
	/* Bounded wait so that the first sighting is older than 0.05 s. */
	struct timespec ts = { 0, 100 * 1000 * 1000 };
	nanosleep(&ts, NULL);
	ck_assert_int_eq(test_submit1(w, "x", one, 1, 7, 0.05, b), QUEUE_RESULT_ACCEPTED);
	ck_assert_str_ne(b, a);
	/* The new sighting starts a new window, in memory and on disk. */
	ck_assert_int_eq(test_submit1(w, "x", one, 1, 7, 300, c), QUEUE_RESULT_DUPLICATE);
	ck_assert_str_eq(c, b);
	queue_writer_stop(w);
	w = test_writer(1000);
	ck_assert_int_eq(test_submit1(w, "x", one, 1, 7, 300, d), QUEUE_RESULT_DUPLICATE);
	ck_assert_str_eq(d, b);
	queue_writer_stop(w);
}
END_TEST

START_TEST(t_dedup_within_one_batch)
{
	static const char *const one[] = { "slack" };
	struct queue_writer *w = test_writer(1000);
	struct test_waiter wt;
	struct test_req t[4];
	test_waiter_init(&wt, 4);
	queue_writer_pause(w, true);
	test_req_init(&t[0], &wt, "x", one, 1, 7, 300);
	test_req_init(&t[1], &wt, "x", one, 1, 7, 300);
	test_req_init(&t[2], &wt, "y", one, 1, 9, 300);
	test_req_init(&t[3], &wt, "x", one, 1, 7, 300);
	for (int i = 0; i < 4; i++)
		queue_writer_submit(w, &t[i].req);
	queue_writer_pause(w, false);
	test_waiter_wait(&wt);
	struct queue_writer_stats s;
	queue_writer_get_stats(w, &s);
	ck_assert_uint_eq(s.batches, 1);
	ck_assert_int_eq(t[0].req.result, QUEUE_RESULT_ACCEPTED);
	ck_assert_int_eq(t[1].req.result, QUEUE_RESULT_DUPLICATE);
	ck_assert_str_eq(t[1].req.event_id, t[0].req.event_id);
	ck_assert_int_eq(t[2].req.result, QUEUE_RESULT_ACCEPTED);
	ck_assert_int_eq(t[3].req.result, QUEUE_RESULT_DUPLICATE);
	ck_assert_str_eq(t[3].req.event_id, t[0].req.event_id);
	queue_writer_stop(w);
	test_waiter_destroy(&wt);
	struct queue *q = test_open();
	ck_assert_int_eq(queue_count(q, QUEUE_PENDING), 2);
	queue_close(q);
}
END_TEST

START_TEST(t_dedup_survives_restart)
{
	static const char *const one[] = { "slack" };
	char a[UTIL_ID_SIZE], b[UTIL_ID_SIZE], c[UTIL_ID_SIZE];
	struct queue_writer *w = test_writer(1000);
	ck_assert_int_eq(test_submit1(w, "x", one, 1, 0x42, 300, a), QUEUE_RESULT_ACCEPTED);
	queue_writer_stop(w);
	w = test_writer(1000);
	ck_assert_int_eq(test_submit1(w, "x", one, 1, 0x42, 300, b), QUEUE_RESULT_DUPLICATE);
	ck_assert_str_eq(b, a);
	ck_assert_int_eq(test_submit1(w, "z", one, 1, 0x43, 300, c), QUEUE_RESULT_ACCEPTED);
	queue_writer_stop(w);
}
END_TEST

/* ------------------------------------------------- max_pending, errors */

START_TEST(t_max_pending_full)
{
	static const char *const one[] = { "slack" };
	static const char *const two[] = { "slack", "bot#ops" };
	char a[UTIL_ID_SIZE], id[UTIL_ID_SIZE];
	struct queue_writer *w = test_writer(3);
	ck_assert_int_eq(test_submit1(w, "a", two, 2, 1, 300, a), QUEUE_RESULT_ACCEPTED);
	ck_assert_int_eq(test_submit1(w, "b", two, 2, 2, 300, id), QUEUE_RESULT_FULL);
	ck_assert_int_eq(test_submit1(w, "c", one, 1, 3, 300, id), QUEUE_RESULT_ACCEPTED);
	ck_assert_int_eq(test_submit1(w, "d", one, 1, 4, 300, id), QUEUE_RESULT_FULL);
	/* A duplicate is answered as such even when full; nothing is stored for it. */
	ck_assert_int_eq(test_submit1(w, "a", two, 2, 1, 300, id), QUEUE_RESULT_DUPLICATE);
	ck_assert_str_eq(id, a);
	/* A rejected event left no dedup key behind. */
	queue_writer_set_max_pending(w, 10);
	ck_assert_int_eq(test_submit1(w, "b", two, 2, 2, 300, id), QUEUE_RESULT_ACCEPTED);
	ck_assert_int_eq(queue_pending_get(), 5);
	struct queue_writer_stats s;
	queue_writer_get_stats(w, &s);
	ck_assert_uint_eq(s.full, 2);
	queue_writer_stop(w);

	/* The limit counts rows already on disk at start. */
	w = test_writer(5);
	ck_assert_int_eq(test_submit1(w, "e", one, 1, -1, 0, id), QUEUE_RESULT_FULL);
	queue_writer_stop(w);
}
END_TEST

START_TEST(t_max_pending_within_batch)
{
	static const char *const two[] = { "slack", "bot#ops" };
	struct queue_writer *w = test_writer(3);
	struct test_waiter wt;
	struct test_req t[2];
	test_waiter_init(&wt, 2);
	queue_writer_pause(w, true);
	test_req_init(&t[0], &wt, "a", two, 2, -1, 0);
	test_req_init(&t[1], &wt, "b", two, 2, -1, 0);
	queue_writer_submit(w, &t[0].req);
	queue_writer_submit(w, &t[1].req);
	queue_writer_pause(w, false);
	test_waiter_wait(&wt);
	ck_assert_int_eq(t[0].req.result, QUEUE_RESULT_ACCEPTED);
	ck_assert_int_eq(t[1].req.result, QUEUE_RESULT_FULL);
	queue_writer_stop(w);
	test_waiter_destroy(&wt);
}
END_TEST

START_TEST(t_failed_commit_answers_error)
{
	static const char *const one[] = { "slack" };
	static const char *const boom[] = { "boom" };
	char id[UTIL_ID_SIZE];
	struct queue_writer *w = test_writer(1000);
	/* A second connection makes inserts for provider "boom" fail. */
	test_sql_exec("CREATE TRIGGER fail_boom BEFORE INSERT ON deliveries "
	    "WHEN NEW.provider = 'boom' BEGIN SELECT RAISE(ABORT, 'injected failure'); END");
	struct test_waiter wt;
	struct test_req t[3];
	test_waiter_init(&wt, 3);
	queue_writer_pause(w, true);
	test_req_init(&t[0], &wt, "a", one, 1, 5, 300);
	test_req_init(&t[1], &wt, "b", boom, 1, 6, 300);
	test_req_init(&t[2], &wt, "c", one, 1, -1, 0);
	for (int i = 0; i < 3; i++)
		queue_writer_submit(w, &t[i].req);
	queue_writer_pause(w, false);
	test_waiter_wait(&wt);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(t[i].req.result, QUEUE_RESULT_ERROR);
	struct queue_writer_stats s;
	queue_writer_get_stats(w, &s);
	ck_assert_msg(strstr(s.last_error, "injected failure") != NULL, "%s", s.last_error);
	ck_assert_int_eq(queue_pending_get(), 0);
	/* Nothing of the batch is on disk, and its dedup keys were not learnt. */
	ck_assert_int_eq(test_sql_int("SELECT count(*) FROM deliveries"), 0);
	ck_assert_int_eq(test_sql_int("SELECT count(*) FROM dedup"), 0);
	ck_assert_int_eq(test_submit1(w, "a", one, 1, 5, 300, id), QUEUE_RESULT_ACCEPTED);
	queue_writer_stop(w);
	test_waiter_destroy(&wt);
}
END_TEST

START_TEST(t_stop_commits_then_shutdown)
{
	static const char *const one[] = { "slack" };
	struct queue_writer *w = test_writer(1000);
	struct test_waiter wt;
	struct test_req a, b, c;
	test_waiter_init(&wt, 3);
	queue_writer_pause(w, true);
	test_req_init(&a, &wt, "a", one, 1, -1, 0);
	test_req_init(&b, &wt, "b", one, 1, -1, 0);
	test_req_init(&c, &wt, "c", one, 1, -1, 0);
	/* b is submitted from a's done callback, i.e. after stop has begun. */
	a.chain = &b;
	a.chain_writer = w;
	queue_writer_submit(w, &a.req);
	queue_writer_submit(w, &c.req);
	queue_writer_stop(w);   /* releases the pause, commits a and c */
	test_waiter_wait(&wt);
	ck_assert_int_eq(a.req.result, QUEUE_RESULT_ACCEPTED);
	ck_assert_int_eq(c.req.result, QUEUE_RESULT_ACCEPTED);
	ck_assert_int_eq(b.req.result, QUEUE_RESULT_SHUTDOWN);
	ck_assert_int_eq(b.done_calls, 1);
	test_waiter_destroy(&wt);
	struct queue *q = test_open();
	ck_assert_int_eq(queue_count(q, QUEUE_PENDING), 2);
	queue_close(q);
}
END_TEST

/* ------------------------------------------------------ row operations */

/* Six events; the targets of each are given by the table. */
static const struct {
	const char *name;
	const char *targets[2];
	size_t n;
} test_events[] = {
	{ "e0", { "slack" }, 1 },
	{ "e1", { "slack#dev", "bot" }, 2 },
	{ "e2", { "slack" }, 1 },
	{ "e3", { "bot", "slack#dev" }, 2 },
	{ "e4", { "slack" }, 1 },
	{ "e5", { "bot" }, 1 },
};
#define TEST_NEVENTS (sizeof(test_events) / sizeof(test_events[0]))

static void
test_fill(char ids[TEST_NEVENTS][UTIL_ID_SIZE])
{
	struct queue_writer *w = test_writer(1000);
	for (size_t i = 0; i < TEST_NEVENTS; i++)
		ck_assert_int_eq(test_submit1(w, test_events[i].name, test_events[i].targets,
		    test_events[i].n, -1, 0, ids[i]), QUEUE_RESULT_ACCEPTED);
	queue_writer_stop(w);
}

/* Ids of the rows of one target, in order, as event names. */
static char *
test_head_names(struct queue *q, const char *provider, const char *channel, size_t limit,
    char ids[TEST_NEVENTS][UTIL_ID_SIZE])
{
	struct queue_row *rows = NULL;
	size_t n = 0;
	ck_assert_int_eq(queue_target_head(q, provider, channel, limit, &rows, &n), 0);
	struct util_buf b = {0};
	util_buf_puts(&b, "");
	for (size_t i = 0; i < n; i++) {
		ck_assert_int_eq(rows[i].state, QUEUE_PENDING);
		ck_assert_str_eq(rows[i].provider, provider);
		for (size_t e = 0; e < TEST_NEVENTS; e++)
			if (strcmp(ids[e], rows[i].event_id) == 0)
				util_buf_printf(&b, "%s%s", b.len ? " " : "", test_events[e].name);
	}
	queue_rows_free(rows, n);
	return b.data;
}

static int64_t
test_row_id(struct queue *q, const char *event_id, const char *provider)
{
	struct queue_row *rows = NULL;
	size_t n = 0;
	int64_t id = -1;
	for (int s = QUEUE_PENDING; s <= QUEUE_DEAD && id < 0; s++) {
		ck_assert_int_eq(queue_list(q, (enum queue_state)s, &rows, &n), 0);
		for (size_t i = 0; i < n; i++)
			if (strcmp(rows[i].event_id, event_id) == 0 &&
			    strcmp(rows[i].provider, provider) == 0)
				id = rows[i].id;
		queue_rows_free(rows, n);
	}
	ck_assert_int_ge(id, 0);
	return id;
}

/* Fetch one row by id from a state's list; returns 0 when absent. */
static int
test_get_row(struct queue *q, enum queue_state state, int64_t id, struct queue_row *out)
{
	struct queue_row *rows = NULL;
	size_t n = 0;
	int found = 0;
	ck_assert_int_eq(queue_list(q, state, &rows, &n), 0);
	for (size_t i = 0; i < n; i++)
		if (rows[i].id == id) {
			*out = rows[i];
			memset(&rows[i], 0, sizeof(rows[i]));
			found = 1;
		}
	queue_rows_free(rows, n);
	return found;
}

/* Record the same outcome for every row of ids (queue_record). */
static void
test_record(struct queue *q, enum queue_outcome_kind kind, const int64_t *ids, size_t n,
    int attempts, double next_attempt_at, const char *error)
{
	struct queue_outcome *o = util_calloc(n ? n : 1, sizeof(*o));
	for (size_t i = 0; i < n; i++)
		o[i] = (struct queue_outcome){ ids[i], kind, attempts, next_attempt_at, error };
	ck_assert_msg(queue_record(q, o, n) == 0, "%s", queue_errmsg(q));
	free(o);
}

START_TEST(t_targets_and_head_order)
{
	char ids[TEST_NEVENTS][UTIL_ID_SIZE];
	test_fill(ids);
	struct queue *q = test_open();
	struct queue_target *t = NULL;
	size_t nt = 0;
	ck_assert_int_eq(queue_pending_targets(q, &t, &nt), 0);
	ck_assert_uint_eq(nt, 3);
	ck_assert_str_eq(t[0].provider, "bot");
	ck_assert_str_eq(t[0].channel, "");
	ck_assert_str_eq(t[1].provider, "slack");
	ck_assert_str_eq(t[1].channel, "");
	ck_assert_str_eq(t[2].provider, "slack");
	ck_assert_str_eq(t[2].channel, "#dev");
	queue_targets_free(t, nt);
	queue_targets_free(NULL, 0);

	static const struct {
		const char *provider, *channel;
		size_t limit;
		const char *want;
	} cases[] = {
		{ "slack", "", 10, "e0 e2 e4" },
		{ "slack", NULL, 10, "e0 e2 e4" },
		{ "slack", "", 2, "e0 e2" },
		{ "slack", "#dev", 10, "e1 e3" },
		{ "bot", "", 10, "e1 e3 e5" },
		{ "bot", "", 1, "e1" },
		{ "bot", "#dev", 10, "" },
		{ "nope", "", 10, "" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *got = test_head_names(q, cases[i].provider, cases[i].channel,
		    cases[i].limit, ids);
		ck_assert_msg(strcmp(got, cases[i].want) == 0, "case %zu: got '%s' want '%s'",
		    i, got, cases[i].want);
		free(got);
	}
	queue_close(q);
}
END_TEST

START_TEST(t_ack_defer_dead)
{
	char ids[TEST_NEVENTS][UTIL_ID_SIZE];
	test_fill(ids);
	struct queue *q = test_open();
	ck_assert_int_eq(queue_count(q, QUEUE_PENDING), 8);

	/* ACK removes the rows (e0 and e2 on slack). */
	int64_t ack[2] = { test_row_id(q, ids[0], "slack"), test_row_id(q, ids[2], "slack") };
	test_record(q, QUEUE_OUTCOME_ACK, ack, 2, 0, 0, NULL);
	ck_assert_int_eq(queue_count(q, QUEUE_PENDING), 6);
	char *got = test_head_names(q, "slack", "", 10, ids);
	ck_assert_str_eq(got, "e4");
	free(got);

	/* DEFER: attempts and error, then a rate-limit defer keeps the error. */
	int64_t e4 = test_row_id(q, ids[4], "slack");
	double later = util_now() + 100;
	test_record(q, QUEUE_OUTCOME_DEFER, &e4, 1, 1, later, "HTTP 500");
	test_record(q, QUEUE_OUTCOME_DEFER, &e4, 1, 2, later, "HTTP 503");
	test_record(q, QUEUE_OUTCOME_DEFER, &e4, 1, 2, later + 5, NULL);
	struct queue_row r;
	ck_assert(test_get_row(q, QUEUE_PENDING, e4, &r));
	ck_assert_int_eq(r.attempts, 2);
	ck_assert_str_eq(r.last_error, "HTTP 503");
	ck_assert(r.next_attempt_at > later + 4 && r.next_attempt_at < later + 6);
	queue_row_clear(&r);
	queue_row_clear(NULL);

	/* DEAD: dead with the error; the target no longer holds it. */
	int64_t e1bot = test_row_id(q, ids[1], "bot");
	test_record(q, QUEUE_OUTCOME_DEAD, &e1bot, 1, 0, 0, "HTTP 404 channel_not_found");
	ck_assert_int_eq(queue_count(q, QUEUE_PENDING), 5);
	ck_assert_int_eq(queue_count(q, QUEUE_DEAD), 1);
	got = test_head_names(q, "bot", "", 10, ids);
	ck_assert_str_eq(got, "e3 e5");
	free(got);
	ck_assert(test_get_row(q, QUEUE_DEAD, e1bot, &r));
	ck_assert_str_eq(r.last_error, "HTTP 404 channel_not_found");
	ck_assert_int_eq(r.state, QUEUE_DEAD);
	queue_row_clear(&r);
	/* Deferring or dead-lettering a dead row changes nothing. */
	test_record(q, QUEUE_OUTCOME_DEAD, &e1bot, 1, 3, 0, "other");
	test_record(q, QUEUE_OUTCOME_DEFER, &e1bot, 1, 1, later, "other");
	ck_assert(test_get_row(q, QUEUE_DEAD, e1bot, &r));
	ck_assert_str_eq(r.last_error, "HTTP 404 channel_not_found");
	ck_assert_int_eq(r.attempts, 0);
	queue_row_clear(&r);
	queue_close(q);
}
END_TEST

struct test_counts {
	char names[8][16];
	int64_t pending[8], dead[8];
	int n;
};

static void
test_count_cb(const char *provider, int64_t pending, int64_t dead, void *arg)
{
	struct test_counts *c = arg;
	ck_assert_int_lt(c->n, 8);
	snprintf(c->names[c->n], sizeof(c->names[0]), "%s", provider);
	c->pending[c->n] = pending;
	c->dead[c->n] = dead;
	c->n++;
}

START_TEST(t_count_by_provider)
{
	char ids[TEST_NEVENTS][UTIL_ID_SIZE];
	test_fill(ids);
	struct queue *q = test_open();
	int64_t e5 = test_row_id(q, ids[5], "bot");
	test_record(q, QUEUE_OUTCOME_DEAD, &e5, 1, 0, 0, "HTTP 410 channel_is_archived");
	struct test_counts c = {0};
	ck_assert_int_eq(queue_count_by_provider(q, test_count_cb, &c), 0);
	ck_assert_int_eq(c.n, 2);
	ck_assert_str_eq(c.names[0], "bot");
	ck_assert_int_eq(c.pending[0], 2);
	ck_assert_int_eq(c.dead[0], 1);
	ck_assert_str_eq(c.names[1], "slack");
	ck_assert_int_eq(c.pending[1], 5);
	ck_assert_int_eq(c.dead[1], 0);
	queue_close(q);
}
END_TEST

START_TEST(t_list_retry_purge)
{
	char ids[TEST_NEVENTS][UTIL_ID_SIZE];
	test_fill(ids);
	struct queue *q = test_open();
	int64_t dead[4] = {
		test_row_id(q, ids[0], "slack"), test_row_id(q, ids[1], "bot"),
		test_row_id(q, ids[3], "bot"), test_row_id(q, ids[5], "bot"),
	};
	test_record(q, QUEUE_OUTCOME_DEFER, &dead[1], 1, 1, util_now() + 1000, "HTTP 500");
	test_record(q, QUEUE_OUTCOME_DEAD, dead, 4, 1, 0, "HTTP 403 action_prohibited");

	struct queue_row *rows = NULL;
	size_t n = 0;
	ck_assert_int_eq(queue_list(q, QUEUE_DEAD, &rows, &n), 0);
	ck_assert_uint_eq(n, 4);
	for (size_t i = 0; i < n; i++) {
		ck_assert_int_eq(rows[i].id, dead[i]);   /* id order */
		ck_assert_int_eq(rows[i].state, QUEUE_DEAD);
	}
	queue_rows_free(rows, n);
	ck_assert_int_eq(queue_list(q, QUEUE_PENDING, &rows, &n), 0);
	ck_assert_uint_eq(n, 4);
	queue_rows_free(rows, n);

	/* retry by id: a pending id and an unknown id change nothing. */
	int64_t pend = test_row_id(q, ids[2], "slack");
	int64_t some[3] = { dead[1], pend, 999999 };
	int64_t changed = -1;
	double before = util_now();
	ck_assert_int_eq(queue_retry(q, some, 3, &changed), 0);
	ck_assert_int_eq(changed, 1);
	struct queue_row r;
	ck_assert(test_get_row(q, QUEUE_PENDING, dead[1], &r));
	ck_assert_int_eq(r.attempts, 0);
	ck_assert_ptr_null(r.last_error);
	ck_assert(r.next_attempt_at <= util_now());
	ck_assert(r.created_at >= before - 1);
	queue_row_clear(&r);
	/* It is a pending row again, holding its place in its target's order. */
	char *got = test_head_names(q, "bot", "", 10, ids);
	ck_assert_str_eq(got, "e1");
	free(got);

	/* retry all. */
	ck_assert_int_eq(queue_retry(q, NULL, 0, &changed), 0);
	ck_assert_int_eq(changed, 3);
	ck_assert_int_eq(queue_count(q, QUEUE_DEAD), 0);
	ck_assert_int_eq(queue_count(q, QUEUE_PENDING), 8);
	ck_assert_int_eq(queue_retry(q, NULL, 0, &changed), 0);
	ck_assert_int_eq(changed, 0);

	/* purge by id only deletes dead rows. */
	test_record(q, QUEUE_OUTCOME_DEAD, dead, 3, 0, 0, "HTTP 404 no_service");
	int64_t purge[2] = { dead[0], pend };
	ck_assert_int_eq(queue_purge(q, purge, 2, &changed), 0);
	ck_assert_int_eq(changed, 1);
	ck_assert_int_eq(queue_count(q, QUEUE_DEAD), 2);
	ck_assert_int_eq(queue_count(q, QUEUE_PENDING), 5);
	ck_assert_int_eq(queue_purge(q, NULL, 0, &changed), 0);
	ck_assert_int_eq(changed, 2);
	ck_assert_int_eq(queue_count(q, QUEUE_DEAD), 0);
	ck_assert_int_eq(queue_count(q, QUEUE_PENDING), 5);
	queue_close(q);
}
END_TEST

/* ------------------------------------------- a second connection beside */

#define TEST_SIDE_EVENTS 2000
#define TEST_SIDE_CHUNK 25

struct test_side {
	struct queue_writer *w;
	int accepted;
};

static void *
test_side_producer(void *arg)
{
	static const char *const one[] = { "slack" };
	struct test_side *s = arg;
	struct test_req *t = util_calloc(TEST_SIDE_CHUNK, sizeof(*t));
	for (int done = 0; done < TEST_SIDE_EVENTS; done += TEST_SIDE_CHUNK) {
		struct test_waiter wt;
		test_waiter_init(&wt, TEST_SIDE_CHUNK);
		for (int i = 0; i < TEST_SIDE_CHUNK; i++) {
			test_req_init(&t[i], &wt, "side", one, 1, -1, 0);
			queue_writer_submit(s->w, &t[i].req);
		}
		test_waiter_wait(&wt);
		test_waiter_destroy(&wt);
		for (int i = 0; i < TEST_SIDE_CHUNK; i++)
			if (t[i].req.result == QUEUE_RESULT_ACCEPTED)
				s->accepted++;
	}
	free(t);
	return NULL;
}

START_TEST(t_second_connection_beside_writer)
{
	struct test_side s = { .w = test_writer(1000000) };
	pthread_t th;
	ck_assert_int_eq(pthread_create(&th, NULL, test_side_producer, &s), 0);

	/* Like the delivery thread: claim heads, defer some, ack them. */
	struct queue *q = test_open();
	struct queue *cli = test_open();
	int64_t acked = 0;
	double deadline = util_mono() + TEST_WAIT_SECONDS;
	while (acked < TEST_SIDE_EVENTS && util_mono() < deadline) {
		struct queue_row *rows = NULL;
		size_t n = 0;
		ck_assert_msg(queue_target_head(q, "slack", "", 50, &rows, &n) == 0, "%s",
		    queue_errmsg(q));
		int64_t *idv = util_calloc(n ? n : 1, sizeof(*idv));
		for (size_t i = 0; i < n; i++)
			idv[i] = rows[i].id;
		if (n > 1)
			test_record(q, QUEUE_OUTCOME_DEFER, idv + n / 2, n - n / 2, 1, 0, "HTTP 500");
		test_record(q, QUEUE_OUTCOME_ACK, idv, n, 0, 0, NULL);
		acked += (int64_t)n;
		queue_rows_free(rows, n);
		free(idv);
		/* A CLI-like reader and writer on a third connection. */
		int64_t changed = -1;
		ck_assert_msg(queue_count(cli, QUEUE_PENDING) >= 0, "%s", queue_errmsg(cli));
		ck_assert_msg(queue_retry(cli, NULL, 0, &changed) == 0, "%s", queue_errmsg(cli));
		ck_assert_int_eq(changed, 0);
	}
	pthread_join(th, NULL);
	ck_assert_int_eq(s.accepted, TEST_SIDE_EVENTS);
	ck_assert_int_eq(acked, TEST_SIDE_EVENTS);
	ck_assert_int_eq(queue_count(q, QUEUE_PENDING), 0);
	struct queue_writer_stats st;
	queue_writer_get_stats(s.w, &st);
	ck_assert_uint_eq(st.errors, 0);
	queue_writer_stop(s.w);
	queue_close(cli);
	queue_close(q);
}
END_TEST

/* A transaction of another thread, held for a while on its own connection. */
struct test_holder {
	struct queue *q;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool begun;
	int rc;
};

static void *
test_holder_main(void *arg)
{
	struct test_holder *h = arg;
	h->rc = queue_begin(h->q);
	pthread_mutex_lock(&h->lock);
	h->begun = true;
	pthread_cond_signal(&h->cond);
	pthread_mutex_unlock(&h->lock);
	if (h->rc == 0) {
		struct timespec ts = { 0, 50 * 1000 * 1000 };
		nanosleep(&ts, NULL);
		h->rc = queue_commit(h->q);
	}
	return NULL;
}

/*
 * Two connections of the process (the writer and the recorder) wait for
 * each other on the process's write lock, woken when the holder ends: never
 * in SQLite's busy handler, whose sleeps (1, 2, 5, 10, ... ms with the
 * default busy timeout) outlast such a transaction many times over.
 */
START_TEST(t_write_lock_in_process)
{
	struct queue *a = test_open(), *b = test_open();
	struct queue_lock_stats s0, s1;
	queue_get_lock_stats(&s0);
	struct test_holder h = { .q = a };
	pthread_mutex_init(&h.lock, NULL);
	pthread_cond_init(&h.cond, NULL);
	pthread_t th;
	ck_assert_int_eq(pthread_create(&th, NULL, test_holder_main, &h), 0);
	pthread_mutex_lock(&h.lock);
	while (!h.begun)
		pthread_cond_wait(&h.cond, &h.lock);
	pthread_mutex_unlock(&h.lock);
	ck_assert_msg(queue_begin(b) == 0, "%s", queue_errmsg(b));
	ck_assert_msg(queue_commit(b) == 0, "%s", queue_errmsg(b));
	pthread_join(th, NULL);
	ck_assert_msg(h.rc == 0, "%s", queue_errmsg(a));
	queue_get_lock_stats(&s1);
	ck_assert_uint_eq(s1.lock_waits - s0.lock_waits, 1);
	ck_assert_uint_eq(s1.busy_calls - s0.busy_calls, 0);
	/* A rolled-back transaction and a failed begin give the lock back too. */
	ck_assert_int_eq(queue_begin(a), 0);
	queue_rollback(a);
	ck_assert_int_eq(queue_begin(b), 0);
	ck_assert_int_eq(queue_commit(b), 0);
	queue_get_lock_stats(&s0);
	ck_assert_uint_eq(s0.lock_waits, s1.lock_waits);
	pthread_mutex_destroy(&h.lock);
	pthread_cond_destroy(&h.cond);
	queue_close(a);
	queue_close(b);
}
END_TEST

/* Another process's transaction (the CLI's) is waited for in short sleeps. */
START_TEST(t_write_lock_other_process)
{
	struct queue *q = test_open();
	char *path = util_printf("%s/queue.db", test_dir);
	sqlite3 *db = NULL;
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
	struct queue_lock_stats s0, s1;
	queue_get_lock_stats(&s0);
	struct test_holder h = { .q = q };
	pthread_mutex_init(&h.lock, NULL);
	pthread_cond_init(&h.cond, NULL);
	pthread_t th;
	/* The thread's begin waits in the busy handler until the commit below. */
	ck_assert_int_eq(pthread_create(&th, NULL, test_holder_main, &h), 0);
	struct timespec ts = { 0, 30 * 1000 * 1000 };
	nanosleep(&ts, NULL);
	ck_assert_int_eq(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	pthread_join(th, NULL);
	ck_assert_msg(h.rc == 0, "%s", queue_errmsg(q));
	queue_get_lock_stats(&s1);
	ck_assert_uint_gt(s1.busy_calls - s0.busy_calls, 0);
	/* Short sleeps: 100 us, 1 ms after the first 10 ms. */
	ck_assert_uint_le(s1.busy_sleep_ns - s0.busy_sleep_ns,
	    (s1.busy_calls - s0.busy_calls) * 1000000u);
	pthread_mutex_destroy(&h.lock);
	pthread_cond_destroy(&h.cond);
	sqlite3_close(db);
	free(path);
	queue_close(q);
}
END_TEST

/* ------------------------------------------- outcomes, expiry, listing */

START_TEST(t_record_outcomes)
{
	char ids[TEST_NEVENTS][UTIL_ID_SIZE];
	test_fill(ids);
	struct queue *q = test_open();
	int64_t e0 = test_row_id(q, ids[0], "slack"), e2 = test_row_id(q, ids[2], "slack");
	int64_t e4 = test_row_id(q, ids[4], "slack"), e5 = test_row_id(q, ids[5], "bot");
	double later = util_now() + 100;
	struct queue_outcome o[] = {
		{ e0, QUEUE_OUTCOME_ACK, 0, 0, NULL },
		{ e2, QUEUE_OUTCOME_DEFER, 3, later, "HTTP 500 rollup_error" },
		{ e4, QUEUE_OUTCOME_DEAD, 7, 0, "HTTP 404 channel_not_found" },
	};
	double before = util_now();
	ck_assert_int_eq(queue_record(q, o, 3), 0);
	ck_assert_int_eq(queue_record(q, NULL, 0), 0);
	struct queue_row r;
	ck_assert(!test_get_row(q, QUEUE_PENDING, e0, &r));
	ck_assert(!test_get_row(q, QUEUE_DEAD, e0, &r));
	ck_assert(test_get_row(q, QUEUE_PENDING, e2, &r));
	ck_assert_int_eq(r.attempts, 3);
	ck_assert(r.next_attempt_at > later - 1 && r.next_attempt_at < later + 1);
	ck_assert_str_eq(r.last_error, "HTTP 500 rollup_error");
	queue_row_clear(&r);
	ck_assert(test_get_row(q, QUEUE_DEAD, e4, &r));
	ck_assert_int_eq(r.attempts, 7);
	ck_assert_str_eq(r.last_error, "HTTP 404 channel_not_found");
	ck_assert(r.next_attempt_at >= before - 1 && r.next_attempt_at <= util_now() + 1);
	queue_row_clear(&r);

	/* Absolute values: writing the same outcome again changes nothing; a
	 * DEFER without error keeps the stored one; dead rows stay as they are. */
	ck_assert_int_eq(queue_record(q, &o[1], 1), 0);
	struct queue_outcome again[] = {
		{ e2, QUEUE_OUTCOME_DEFER, 4, later + 5, NULL },
		{ e4, QUEUE_OUTCOME_DEFER, 9, 0, "other" },
		{ e4, QUEUE_OUTCOME_DEAD, 9, 0, "other" },
		{ e5, QUEUE_OUTCOME_DEAD, 0, 0, NULL },
	};
	ck_assert_int_eq(queue_record(q, again, 4), 0);
	ck_assert(test_get_row(q, QUEUE_PENDING, e2, &r));
	ck_assert_int_eq(r.attempts, 4);
	ck_assert_str_eq(r.last_error, "HTTP 500 rollup_error");
	queue_row_clear(&r);
	ck_assert(test_get_row(q, QUEUE_DEAD, e4, &r));
	ck_assert_int_eq(r.attempts, 7);
	ck_assert_str_eq(r.last_error, "HTTP 404 channel_not_found");
	queue_row_clear(&r);
	ck_assert(test_get_row(q, QUEUE_DEAD, e5, &r));
	ck_assert_ptr_null(r.last_error);
	queue_row_clear(&r);
	queue_close(q);
}
END_TEST

START_TEST(t_expire_dead)
{
	char ids[TEST_NEVENTS][UTIL_ID_SIZE];
	test_fill(ids);
	struct queue *q = test_open();
	int64_t e0 = test_row_id(q, ids[0], "slack"), e2 = test_row_id(q, ids[2], "slack");
	int64_t e4 = test_row_id(q, ids[4], "slack");
	int64_t dead[3] = { e0, e2, e4 };
	test_record(q, QUEUE_OUTCOME_DEAD, dead, 3, 0, 0, "HTTP 410 channel_is_archived");
	/* e0 died long ago; e2 is an old dead row without a time of death
	 * (next_attempt_at 0): it counts from created_at. */
	double now = util_now();
	char *sql = util_printf("UPDATE deliveries SET next_attempt_at = %f, created_at = %f "
	    "WHERE id = %lld; UPDATE deliveries SET next_attempt_at = 0, created_at = %f "
	    "WHERE id = %lld", now - 1000, now - 3000, (long long)e0, now - 2000, (long long)e2);
	test_sql_exec(sql);
	free(sql);
	int64_t deleted = -1;
	ck_assert_int_eq(queue_expire_dead(q, util_now() - 500, 1, &deleted), 0);
	ck_assert_int_eq(deleted, 1);        /* the limit */
	ck_assert_int_eq(queue_expire_dead(q, util_now() - 500, 100, &deleted), 0);
	ck_assert_int_eq(deleted, 1);
	ck_assert_int_eq(queue_expire_dead(q, util_now() - 500, 100, NULL), 0);
	ck_assert_int_eq(queue_count(q, QUEUE_DEAD), 1);       /* e4 died just now */
	struct queue_row r;
	ck_assert(test_get_row(q, QUEUE_DEAD, e4, &r));
	queue_row_clear(&r);
	/* Pending rows never expire, however old. */
	test_sql_exec("UPDATE deliveries SET created_at = 1 WHERE state = 0");
	ck_assert_int_eq(queue_expire_dead(q, util_now(), 100, &deleted), 0);
	ck_assert_int_eq(deleted, 1);
	ck_assert_int_eq(queue_count(q, QUEUE_PENDING), 5);
	queue_close(q);
}
END_TEST

START_TEST(t_list_page)
{
	char ids[TEST_NEVENTS][UTIL_ID_SIZE];
	test_fill(ids);
	struct queue *q = test_open();
	int64_t after = 0, last = 0;
	size_t total = 0, pages = 0;
	for (;;) {
		struct queue_row *rows = NULL;
		size_t n = 0;
		ck_assert_int_eq(queue_list_page(q, QUEUE_PENDING, after, 3, &rows, &n), 0);
		for (size_t i = 0; i < n; i++) {
			ck_assert_int_gt(rows[i].id, last);
			last = rows[i].id;
		}
		total += n;
		pages++;
		if (n > 0)
			after = rows[n - 1].id;
		queue_rows_free(rows, n);
		if (n < 3)
			break;
	}
	ck_assert_uint_eq(total, 8);
	ck_assert_uint_eq(pages, 3);
	struct queue_row *rows = NULL;
	size_t n = 9;
	ck_assert_int_eq(queue_list_page(q, QUEUE_DEAD, 0, 3, &rows, &n), 0);
	ck_assert_uint_eq(n, 0);
	queue_rows_free(rows, n);
	queue_close(q);
}
END_TEST

/* --------------------------------------------- foreign and damaged files */

static char *
test_db_path(void)
{
	return util_printf("%s/queue.db", test_dir);
}

START_TEST(t_open_refuses_foreign_sqlite)
{
	char *path = test_db_path();
	sqlite3 *db = NULL;
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, "CREATE TABLE accounts (id INTEGER PRIMARY KEY)",
	    NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	size_t len0 = 0, len1 = 0;
	char rerr[128];
	char *before = util_read_file(path, &len0, rerr, sizeof(rerr));
	char err[512] = "";
	ck_assert_ptr_null(queue_open(test_dir, true, err, sizeof(err)));
	ck_assert_msg(strstr(err, "not a fluxrelay queue") != NULL, "%s", err);
	ck_assert_msg(strstr(err, path) != NULL, "%s", err);
	/* Not adopted: not even switched to WAL mode. */
	char *after = util_read_file(path, &len1, rerr, sizeof(rerr));
	ck_assert_uint_eq(len0, len1);
	ck_assert(memcmp(before, after, len0) == 0);
	free(before);
	free(after);
	/* An empty SQLite file (no tables) is a new queue. */
	unlink(path);
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_close(db);
	struct queue *q = test_open();
	queue_close(q);
	free(path);
}
END_TEST

START_TEST(t_open_refuses_garbage)
{
	char *path = test_db_path();
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	for (int i = 0; i < 8192; i++)
		fputc((i * 7919) & 0xff, f);
	fclose(f);
	char err[512] = "";
	ck_assert_ptr_null(queue_open(test_dir, true, err, sizeof(err)));
	ck_assert_msg(strstr(err, "not an SQLite database") != NULL, "%s", err);
	ck_assert_msg(strstr(err, path) != NULL, "%s", err);
	free(path);
}
END_TEST

START_TEST(t_writer_refuses_damaged_file)
{
	static const char *const one[] = { "slack" };
	struct queue_writer *w = test_writer(100000);
	for (int i = 0; i < 200; i++)
		ck_assert_int_eq(test_submit1(w, "x", one, 1, -1, 0, NULL), QUEUE_RESULT_ACCEPTED);
	queue_writer_stop(w);         /* the last close checkpoints into queue.db */
	char *path = test_db_path();
	struct stat sb;
	ck_assert_int_eq(stat(path, &sb), 0);
	int64_t page_size = test_sql_int("PRAGMA page_size");
	ck_assert_int_gt(sb.st_size / page_size, 4);
	/* The third page (a b-tree page) full of garbage. */
	FILE *f = fopen(path, "r+");
	ck_assert_ptr_nonnull(f);
	fseek(f, 2 * page_size, SEEK_SET);
	for (int64_t i = 0; i < page_size; i++)
		fputc(0xa5, f);
	fclose(f);
	char err[512] = "";
	struct queue_writer_opts o = { .state_dir = test_dir, .sync_full = true, .max_pending = 10 };
	ck_assert_ptr_null(queue_writer_start(&o, err, sizeof(err)));
	ck_assert_msg(strstr(err, path) != NULL, "%s", err);
	ck_assert_msg(strstr(err, "integrity check failed") != NULL ||
	    strstr(err, "malformed") != NULL, "%s", err);
	ck_assert_msg(strstr(err, "move it aside") != NULL, "%s", err);
	free(path);
}
END_TEST

START_TEST(t_writer_lock)
{
	struct queue_writer *w = test_writer(10);
	char err[512] = "";
	struct queue_writer_opts o = { .state_dir = test_dir, .sync_full = true, .max_pending = 10 };
	ck_assert_ptr_null(queue_writer_start(&o, err, sizeof(err)));
	ck_assert_msg(strstr(err, "queue.lock") != NULL && strstr(err, "another fluxrelay"),
	    "%s", err);
	/* The CLI's kind of connection is not refused. */
	struct queue *q = test_open();
	queue_close(q);
	queue_writer_stop(w);
	w = test_writer(10);          /* released at stop */
	queue_writer_stop(w);
}
END_TEST

/* ------------------------------------------ readiness and sticky faults */

START_TEST(t_writer_probe_recovers)
{
	static const char *const one[] = { "slack" };
	static const char *const boom[] = { "boom" };
	struct queue_writer *w = test_writer(100);
	ck_assert(queue_writer_healthy(w));
	test_sql_exec("CREATE TRIGGER fail_boom BEFORE INSERT ON deliveries "
	    "WHEN NEW.provider = 'boom' BEGIN SELECT RAISE(ABORT, 'injected failure'); END");
	ck_assert_int_eq(test_submit1(w, "b", boom, 1, -1, 0, NULL), QUEUE_RESULT_ERROR);
	ck_assert(!queue_writer_healthy(w));
	/* No traffic: the probe (a real write) makes it healthy again within ~1 s. */
	double t0 = util_mono();
	while (!queue_writer_healthy(w) && util_mono() - t0 < 5) {
		struct timespec ts = { 0, 20 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	ck_assert(queue_writer_healthy(w));
	ck_assert_double_lt(util_mono() - t0, 2.5);
	/* The probe writes: its row changes. */
	int64_t p1 = test_sql_int("SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'probe'");
	struct timespec ts = { 1, 300 * 1000 * 1000 };
	nanosleep(&ts, NULL);
	int64_t p2 = test_sql_int("SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'probe'");
	ck_assert_int_gt(p2, p1);
	ck_assert_int_eq(test_submit1(w, "a", one, 1, -1, 0, NULL), QUEUE_RESULT_ACCEPTED);
	queue_writer_stop(w);
}
END_TEST

START_TEST(t_writer_deleted_file_is_a_fault)
{
	static const char *const one[] = { "slack" };
	struct queue_writer *w = test_writer(100);
	ck_assert_int_eq(test_submit1(w, "a", one, 1, -1, 0, NULL), QUEUE_RESULT_ACCEPTED);
	ck_assert_int_eq(queue_fault(NULL, 0), QUEUE_FAULT_NONE);
	char *path = test_db_path();
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(test_submit1(w, "b", one, 1, -1, 0, NULL), QUEUE_RESULT_ERROR);
	ck_assert(!queue_writer_healthy(w));
	char msg[768];
	ck_assert_int_eq(queue_fault(msg, sizeof(msg)), QUEUE_FAULT_REPLACED);
	ck_assert_msg(strstr(msg, path) && strstr(msg, "deleted or replaced"), "%s", msg);
	/* Sticky: a new file at the path does not make it healthy. */
	struct queue *q = test_open();
	queue_close(q);
	struct timespec ts = { 1, 500 * 1000 * 1000 };
	nanosleep(&ts, NULL);
	ck_assert(!queue_writer_healthy(w));
	ck_assert_int_eq(test_submit1(w, "c", one, 1, -1, 0, NULL), QUEUE_RESULT_ERROR);
	queue_writer_stop(w);
	free(path);
}
END_TEST

START_TEST(t_malformed_is_a_fault)
{
	static const char *const one[] = { "slack" };
	struct queue_writer *w = test_writer(100000);
	for (int i = 0; i < 300; i++)
		ck_assert_int_eq(test_submit1(w, "x", one, 1, -1, 0, NULL), QUEUE_RESULT_ACCEPTED);
	queue_writer_stop(w);
	w = test_writer(100000);      /* verified at start */
	/* Damage every page but the first two behind the writer's back, then
	 * make another connection commit, so the writer's cache goes. */
	char *path = test_db_path();
	int64_t page_size = test_sql_int("PRAGMA page_size");
	struct stat sb;
	ck_assert_int_eq(stat(path, &sb), 0);
	FILE *f = fopen(path, "r+");
	ck_assert_ptr_nonnull(f);
	for (int64_t p = 2; p < sb.st_size / page_size; p++) {
		fseek(f, p * page_size, SEEK_SET);
		for (int64_t i = 0; i < page_size; i++)
			fputc(0xa5, f);
	}
	fclose(f);
	test_sql_exec("CREATE TABLE IF NOT EXISTS other_connection_was_here (x)");
	enum queue_result r = QUEUE_RESULT_ACCEPTED;
	for (int i = 0; i < 20 && r == QUEUE_RESULT_ACCEPTED; i++)
		r = test_submit1(w, "y", one, 1, -1, 0, NULL);
	ck_assert_int_eq(r, QUEUE_RESULT_ERROR);
	char msg[768];
	ck_assert_int_eq(queue_fault(msg, sizeof(msg)), QUEUE_FAULT_MALFORMED);
	ck_assert_msg(strstr(msg, path) && strstr(msg, "malformed") && strstr(msg, "backup"),
	    "%s", msg);
	ck_assert(!queue_writer_healthy(w));
	queue_writer_stop(w);
	free(path);
}
END_TEST

START_TEST(t_pending_counter)
{
	queue_pending_set(10);
	queue_pending_add(5);
	queue_pending_add(-7);
	ck_assert_int_eq(queue_pending_get(), 8);
}
END_TEST

static Suite *
test_queue_suite(void)
{
	Suite *s = suite_create("queue");
	TCase *tc = tcase_create("open");
	tcase_add_checked_fixture(tc, test_setup, test_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, t_open_creates_nested_dir);
	tcase_add_test(tc, t_open_wal_and_schema);
	tcase_add_test(tc, t_cluster_column);
	tcase_add_test(tc, t_open_refuses_newer_schema);
	tcase_add_test(tc, t_open_fails_on_file_as_dir);
	tcase_add_test(tc, t_persist_across_reopen);
	suite_add_tcase(s, tc);

	tc = tcase_create("schema v2");
	tcase_add_checked_fixture(tc, test_setup, test_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, t_v1_read_as_is);
	tcase_add_test(tc, t_v1_upgrade_by_writer);
	tcase_add_test(tc, t_v1_reader_beside_upgrade);
	tcase_add_test(tc, t_upgrade_refuses_newer);
	tcase_add_test(tc, t_v1_upgrade_same_as_new);
	tcase_add_test(tc, t_insert_kinds);
	tcase_add_test(tc, t_incident_rows);
	tcase_add_test(tc, t_thread_rows);
	tcase_add_test(tc, t_meta_rows);
	tcase_add_test(tc, t_lookups_never_scan);
	suite_add_tcase(s, tc);

	tc = tcase_create("writer");
	tcase_add_checked_fixture(tc, test_setup, test_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, t_writer_concurrent_exactly_once);
	tcase_add_test(tc, t_writer_batch_while_paused);
	tcase_add_test(tc, t_dedup_within_window);
	tcase_add_test(tc, t_dedup_after_window);
	tcase_add_test(tc, t_dedup_within_one_batch);
	tcase_add_test(tc, t_dedup_survives_restart);
	tcase_add_test(tc, t_max_pending_full);
	tcase_add_test(tc, t_max_pending_within_batch);
	tcase_add_test(tc, t_failed_commit_answers_error);
	tcase_add_test(tc, t_stop_commits_then_shutdown);
	tcase_add_test(tc, t_pending_counter);
	suite_add_tcase(s, tc);

	tc = tcase_create("rows");
	tcase_add_checked_fixture(tc, test_setup, test_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, t_targets_and_head_order);
	tcase_add_test(tc, t_ack_defer_dead);
	tcase_add_test(tc, t_count_by_provider);
	tcase_add_test(tc, t_list_retry_purge);
	tcase_add_test(tc, t_second_connection_beside_writer);
	tcase_add_test(tc, t_write_lock_in_process);
	tcase_add_test(tc, t_write_lock_other_process);
	tcase_add_test(tc, t_record_outcomes);
	tcase_add_test(tc, t_expire_dead);
	tcase_add_test(tc, t_list_page);
	suite_add_tcase(s, tc);

	tc = tcase_create("files");
	tcase_add_checked_fixture(tc, test_setup, test_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, t_open_refuses_foreign_sqlite);
	tcase_add_test(tc, t_open_refuses_garbage);
	tcase_add_test(tc, t_writer_refuses_damaged_file);
	tcase_add_test(tc, t_writer_lock);
	tcase_add_test(tc, t_writer_probe_recovers);
	suite_add_tcase(s, tc);

	/* Faults are sticky for the whole process: each test runs in its own
	 * (Check forks every test unless CK_FORK=no). */
	tc = tcase_create("faults");
	tcase_add_checked_fixture(tc, test_setup, test_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, t_writer_deleted_file_is_a_fault);
	tcase_add_test(tc, t_malformed_is_a_fault);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(test_root, sizeof(test_root), "%s/fr-test-queue-XXXXXX",
	    tmp && *tmp ? tmp : "/tmp");
	if (mkdtemp(test_root) == NULL) {
		perror(test_root);
		return 99;   /* broken test setup */
	}
	SRunner *sr = srunner_create(test_queue_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	nftw(test_root, test_rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
