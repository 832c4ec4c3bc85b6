/*
 * writer_bench: what the group-commit writer costs per accepted event for a
 * fixed workload (bench/README.md, "Dedup in the writer"). Without HTTP: one
 * thread submits batches of B requests while the writer is held, releases
 * it and waits for the answers, so every run gives the writer the same
 * batches. Each request has one delivery row (the 909-byte bench/event.json)
 * and a dedup key (window -w, 300 s): every tenth repeats a key of the
 * previous batch and every tenth, one of its own batch (both duplicates);
 * the others are new. Before the writer starts, the dedup table is filled
 * with P keys first seen just now (a busy window's worth of earlier
 * events). synchronous=NORMAL, so the figure is the writer's CPU, not the
 * disk's fsync.
 *
 *   bench/writer_bench [-n REQUESTS] [-b BATCH] [-p PREFILL] [-w WINDOW] [-r RUNS]
 *       [EVENT.json]
 *
 * -w 0 turns dedup off (no key, no lookup), as bench/run's accepted-path row.
 *
 * Prints the writer's counters and the wall-clock time per request of each
 * run. For instruction counts (the machine is shared: wall clock is noisy),
 * run one run under callgrind and read the writer thread's total:
 *
 *   valgrind --tool=callgrind --toggle-collect=queue_writer_main \
 *       bench/writer_bench -n 5000 -p 100000 -r 1
 *
 * Built only when asked: `make bench/writer_bench`.
 */
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "queue.h"
#include "queue_writer.h"
#include "util.h"

struct bench_wait {
	pthread_mutex_t m;
	pthread_cond_t c;
	size_t left;
};

struct bench_req {
	struct queue_req req;
	struct queue_item item;
	struct bench_wait *wait;
};

static void
bench_done(struct queue_req *r)
{
	struct bench_req *b = r->arg;
	pthread_mutex_lock(&b->wait->m);
	b->wait->left--;
	pthread_cond_signal(&b->wait->c);
	pthread_mutex_unlock(&b->wait->m);
}

/* A dedup key that is a function of n alone (uniform bytes, like SHA-256's). */
static void
bench_key(uint64_t n, unsigned char key[DEDUP_KEY_LEN])
{
	uint64_t x = n * 0x9E3779B97F4A7C15ULL + 1;
	for (size_t i = 0; i < DEDUP_KEY_LEN; i++) {
		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		key[i] = (unsigned char)((x * 2685821657736338717ULL) >> 56);
	}
}

/* P keys first seen now, numbered from 1u << 40 up (never a request's key). */
static int
bench_prefill(const char *dir, size_t p)
{
	char err[512];
	struct queue *q = queue_open(dir, false, err, sizeof(err));
	if (q == NULL) {
		fprintf(stderr, "writer_bench: %s\n", err);
		return -1;
	}
	queue_close(q);
	char *path = util_printf("%s/queue.db", dir);
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_open(path, &db);
	free(path);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db, "INSERT INTO dedup (key, event_id, first_seen) "
		    "VALUES (?1, ?2, ?3)", -1, &st, NULL);
	double now = util_now();
	for (size_t i = 0; rc == SQLITE_OK && i < p; i++) {
		unsigned char key[DEDUP_KEY_LEN];
		char id[33];
		bench_key((1ULL << 40) + i, key);
		util_new_id(id);
		sqlite3_bind_blob(st, 1, key, DEDUP_KEY_LEN, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 2, id, -1, SQLITE_TRANSIENT);
		sqlite3_bind_double(st, 3, now);
		rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		fprintf(stderr, "writer_bench: prefill: %s\n", sqlite3_errmsg(db));
	sqlite3_close(db);
	return rc == SQLITE_OK ? 0 : -1;
}

static int
bench_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(path);
}

/* One run on a new state directory; the wall-clock seconds per request, or -1. */
static double
bench_run(const char *event, size_t event_len, size_t n, size_t batch, size_t prefill,
    double window)
{
	char dir[] = "/tmp/writer_bench.XXXXXX";
	char err[512];
	double per = -1;
	if (mkdtemp(dir) == NULL) {
		fprintf(stderr, "writer_bench: mkdtemp: %s\n", strerror(errno));
		return -1;
	}
	if (bench_prefill(dir, prefill) < 0)
		goto out;
	struct queue_writer_opts o = { .state_dir = dir, .sync_full = false, .max_pending = -1 };
	struct queue_writer *w = queue_writer_start(&o, err, sizeof(err));
	if (w == NULL) {
		fprintf(stderr, "writer_bench: %s\n", err);
		goto out;
	}
	struct bench_wait wait = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0 };
	struct bench_req *reqs = util_calloc(batch, sizeof(*reqs));
	double busy = 0;
	for (size_t done = 0; done < n; done += batch) {
		size_t k = n - done < batch ? n - done : batch;
		queue_writer_pause(w, true);
		wait.left = k;
		for (size_t i = 0; i < k; i++) {
			struct bench_req *b = &reqs[i];
			uint64_t num = done + i;
			memset(b, 0, sizeof(*b));
			b->item = (struct queue_item){ "slack", "", "errors", "{}" };
			b->req.event = event;
			b->req.event_len = event_len;
			b->req.items = &b->item;
			b->req.nitems = 1;
			b->req.has_dedup = window > 0;
			b->req.dedup_window = window;
			if (i % 10 == 3 && done >= batch)
				num -= batch - 1;     /* a key of the previous batch */
			else if (i % 10 == 7)
				num -= 5;             /* a key of this batch */
			bench_key(num, b->req.dedup_key);
			b->req.done = bench_done;
			b->req.arg = b;
			b->wait = &wait;
			queue_writer_submit(w, &b->req);
		}
		double t0 = util_mono();
		queue_writer_pause(w, false);
		pthread_mutex_lock(&wait.m);
		while (wait.left > 0)
			pthread_cond_wait(&wait.c, &wait.m);
		pthread_mutex_unlock(&wait.m);
		busy += util_mono() - t0;
	}
	struct queue_writer_stats s;
	queue_writer_get_stats(w, &s);
	queue_writer_stop(w);
	free(reqs);
	printf("requests=%llu accepted=%llu duplicates=%llu errors=%llu batches=%llu "
	    "commits=%llu: %.2f us/request\n", (unsigned long long)s.requests,
	    (unsigned long long)s.accepted, (unsigned long long)s.duplicates,
	    (unsigned long long)s.errors, (unsigned long long)s.batches,
	    (unsigned long long)s.commits, busy / (double)n * 1e6);
	per = busy / (double)n;
out:
	nftw(dir, bench_rm, 16, FTW_DEPTH | FTW_PHYS);
	return per;
}

static int
bench_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
	size_t n = 20000, batch = 32, prefill = 0, runs = 5;
	double window = 300;
	int opt;
	while ((opt = getopt(argc, argv, "n:b:p:r:w:")) != -1) {
		switch (opt) {
		case 'n': n = strtoul(optarg, NULL, 10); break;
		case 'b': batch = strtoul(optarg, NULL, 10); break;
		case 'p': prefill = strtoul(optarg, NULL, 10); break;
		case 'r': runs = strtoul(optarg, NULL, 10); break;
		case 'w': window = strtod(optarg, NULL); break;
		default:
			fprintf(stderr, "usage: writer_bench [-n REQUESTS] [-b BATCH] [-p PREFILL] "
			    "[-w WINDOW] [-r RUNS] [EVENT.json]\n");
			return 2;
		}
	}
	if (n == 0 || batch == 0 || runs == 0 || runs > 1000)
		return 2;
	char err[512];
	size_t len = 0;
	const char *path = optind < argc ? argv[optind] : FR_SRCDIR "/bench/event.json";
	char *event = util_read_file(path, &len, err, sizeof(err));
	if (event == NULL) {
		fprintf(stderr, "writer_bench: %s\n", err);
		return 1;
	}
	double *t = util_calloc(runs, sizeof(*t));
	for (size_t r = 0; r < runs; r++)
		if ((t[r] = bench_run(event, len, n, batch, prefill, window)) < 0)
			return 1;
	qsort(t, runs, sizeof(*t), bench_cmp);
	printf("%zu runs, %zu requests in batches of %zu, %zu keys before: "
	    "median %.2f us/request, min %.2f\n", runs, n, batch, prefill,
	    t[runs / 2] * 1e6, t[0] * 1e6);
	free(t);
	free(event);
	return 0;
}
