/*
 * commit_floor: the latency of one durable SQLite commit on this disk, with
 * nothing else running: the floor under (g)'s p99 (bench/README.md, "Tail
 * latency"). One thread, one connection, WAL with synchronous=FULL as the
 * queue's writer uses with queue.sync = "full"; at RATE transactions a second
 * it inserts one row of the bench event's size into a table with two
 * indexes (the deliveries table's shape, smaller) and commits; the WAL is
 * checkpointed (TRUNCATE) every second from the same thread between two
 * transactions, so it never grows. Prints p50/p99/p999/max of BEGIN..COMMIT.
 * No HTTP, no other thread, no waiting behind another commit.
 *
 * Then what those commit times alone make of a request's latency: a
 * group-committing writer that costs nothing but its commits (each one a
 * commit time drawn from those measured, whatever the batch's size) fed at
 * -s requests a second at fixed intervals, as bench/ratec sends; a request
 * waits for the commit in progress, then its own. Prints that simulated
 * writer's p50/p99/p999: fluxrelay's accepted path, which adds HTTP and a
 * hand-off each way, cannot answer faster than that on this disk.
 *
 *   bench/commit_floor [-r RATE] [-d SECONDS] [-s ARRIVALS] [DIR]
 *                                               (default 500, 8, 2000, .)
 *
 * Built only when asked: `make bench/commit_floor`.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double
floor_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
floor_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int
floor_exec(sqlite3 *db, const char *sql)
{
	char *err = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
		fprintf(stderr, "commit_floor: %s: %s\n", sql, err ? err : "?");
		sqlite3_free(err);
		return -1;
	}
	return 0;
}

/*
 * n requests arriving every 1/arrivals s to a writer that, when free, commits
 * all that arrived in one commit of a duration drawn from lat[0..k) (ms);
 * returns each request's latency (ms), sorted (caller frees).
 */
static double *
floor_simulate(const double *lat, size_t k, double arrivals, size_t n)
{
	double *out = malloc(n * sizeof(*out)), free_at = 0, gap = 1e3 / arrivals;
	unsigned long long seed = 20261201;
	size_t i = 0;

	while (i < n) {
		double arrive = (double)i * gap, start = free_at > arrive ? free_at : arrive;
		size_t last = i;
		while (last + 1 < n && (double)(last + 1) * gap <= start)
			last++;
		seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
		free_at = start + lat[(seed >> 33) % k];
		for (; i <= last; i++)
			out[i] = free_at - (double)i * gap;
	}
	qsort(out, n, sizeof(*out), floor_cmp);
	return out;
}

int
main(int argc, char **argv)
{
	double rate = 500, secs = 8, arrivals = 2000;
	const char *dir = ".";
	int opt;

	while ((opt = getopt(argc, argv, "r:d:s:")) != -1) {
		if (opt == 'r')
			rate = atof(optarg);
		else if (opt == 's')
			arrivals = atof(optarg);
		else if (opt == 'd')
			secs = atof(optarg);
		else
			return 2;
	}
	if (optind < argc)
		dir = argv[optind];
	if (rate <= 0 || secs <= 0 || arrivals <= 0)
		return 2;

	char path[4096];
	snprintf(path, sizeof(path), "%s/commit_floor.db", dir);
	sqlite3 *db;
	if (sqlite3_open(path, &db) != SQLITE_OK ||
	    floor_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
	    "PRAGMA wal_autocheckpoint=0;"
	    "CREATE TABLE IF NOT EXISTS d(id INTEGER PRIMARY KEY, provider TEXT,"
	    " next REAL, event TEXT);"
	    "CREATE INDEX IF NOT EXISTS d_next ON d(provider, next);"
	    "CREATE INDEX IF NOT EXISTS d_prov ON d(provider);") < 0)
		return 1;
	sqlite3_stmt *ins;
	if (sqlite3_prepare_v2(db, "INSERT INTO d(provider, next, event) VALUES('sink', ?, ?)", -1,
	    &ins, NULL) != SQLITE_OK)
		return 1;

	char event[910];
	memset(event, 'x', sizeof(event) - 1);
	event[sizeof(event) - 1] = '\0';
	size_t n = (size_t)(rate * secs), k = 0;
	double *lat = malloc(n * sizeof(*lat));
	double start = floor_now(), next_ckpt = start + 1;
	for (size_t i = 0; i < n; i++) {
		double due = start + (double)i / rate, now = floor_now();
		if (due > now)
			usleep((useconds_t)((due - now) * 1e6));
		double t0 = floor_now();
		if (floor_exec(db, "BEGIN IMMEDIATE") < 0)
			return 1;
		sqlite3_bind_double(ins, 1, t0);
		sqlite3_bind_text(ins, 2, event, -1, SQLITE_STATIC);
		if (sqlite3_step(ins) != SQLITE_DONE)
			return 1;
		sqlite3_reset(ins);
		if (floor_exec(db, "COMMIT") < 0)
			return 1;
		lat[k++] = (floor_now() - t0) * 1e3;
		if (floor_now() >= next_ckpt) {
			sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
			next_ckpt += 1;
		}
	}
	double *sim = floor_simulate(lat, k, arrivals, 200000);
	qsort(lat, k, sizeof(*lat), floor_cmp);
	printf("commits=%zu rate=%.0f/s p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f\n", k,
	    rate, lat[k / 2], lat[k * 99 / 100], lat[k * 999 / 1000], lat[k - 1]);
	printf("simulated writer, %.0f requests/s: p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f\n",
	    arrivals, sim[100000], sim[198000], sim[199800]);
	free(sim);
	sqlite3_finalize(ins);
	sqlite3_close(db);
	unlink(path);
	snprintf(path, sizeof(path), "%s/commit_floor.db-wal", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/commit_floor.db-shm", dir);
	unlink(path);
	free(lat);
	return 0;
}
