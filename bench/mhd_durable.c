/*
 * mhd_durable: the ceiling of (g), fluxrelay's durable accepted path. The
 * same libmicrohttpd layout as src/http.c and bench/mhd_bare.c (NDAEMONS
 * epoll daemons, each with its thread and SO_REUSEPORT socket; body read in
 * full), and nothing but what a durable answer needs: each request's
 * connection is suspended and handed to one writer thread, which takes
 * everything queued, inserts one row per request (the body, into a table
 * with two indexes, as bench/commit_floor does) in one transaction of a WAL
 * database with synchronous=FULL, commits, and resumes the connections,
 * which then answer 202. A second connection checkpoints the WAL (PASSIVE)
 * ten times a second, as fluxrelay's recorder does, so the writer never
 * checkpoints inside a commit. No parsing, no rules, no dedup, no delivery.
 *
 *   NDAEMONS=N mhd_durable PORT DIR
 *
 * bench/ratec against it at 2,000 requests/s gives the p99 that no program
 * answering only after a durable commit can beat with this library, this
 * database and this disk (bench/README.md, "Tail latency").
 */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct req {
	struct MHD_Connection *conn;
	char *body;
	size_t len;
	bool queued, done;
	struct req *next;            /* in the writer's queue */
};

static pthread_mutex_t dur_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t dur_cond = PTHREAD_COND_INITIALIZER;
static struct req *dur_head, **dur_tail = &dur_head;
static volatile sig_atomic_t dur_stop;
static const char dur_answer[] = "{\"status\":\"accepted\"}\n";

static int
dur_exec(sqlite3 *db, const char *sql)
{
	char *err = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
		fprintf(stderr, "mhd_durable: %s: %s\n", sql, err ? err : "?");
		sqlite3_free(err);
		return -1;
	}
	return 0;
}

static sqlite3 *
dur_open(const char *path)
{
	sqlite3 *db = NULL;

	if (sqlite3_open(path, &db) != SQLITE_OK) {
		fprintf(stderr, "mhd_durable: %s: %s\n", path, sqlite3_errmsg(db));
		sqlite3_close(db);
		return NULL;
	}
	sqlite3_busy_timeout(db, 5000);
	if (dur_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
	    "PRAGMA wal_autocheckpoint=0;") < 0) {
		sqlite3_close(db);
		return NULL;
	}
	return db;
}

/* Group commit: everything queued goes in one transaction, then is resumed. */
static void *
dur_writer(void *arg)
{
	sqlite3 *db = arg;
	sqlite3_stmt *ins = NULL;

	if (sqlite3_prepare_v2(db, "INSERT INTO d(provider, next, event) VALUES('sink', 0, ?)",
	    -1, &ins, NULL) != SQLITE_OK) {
		fprintf(stderr, "mhd_durable: %s\n", sqlite3_errmsg(db));
		exit(1);
	}
	for (;;) {
		pthread_mutex_lock(&dur_lock);
		while (dur_head == NULL && !dur_stop)
			pthread_cond_wait(&dur_cond, &dur_lock);
		struct req *batch = dur_head;
		dur_head = NULL;
		dur_tail = &dur_head;
		pthread_mutex_unlock(&dur_lock);
		if (batch == NULL)
			break;
		if (dur_exec(db, "BEGIN IMMEDIATE") < 0)
			exit(1);
		for (struct req *r = batch; r != NULL; r = r->next) {
			sqlite3_bind_blob(ins, 1, r->body, (int)r->len, SQLITE_STATIC);
			if (sqlite3_step(ins) != SQLITE_DONE) {
				fprintf(stderr, "mhd_durable: insert: %s\n", sqlite3_errmsg(db));
				exit(1);
			}
			sqlite3_reset(ins);
		}
		if (dur_exec(db, "COMMIT") < 0)
			exit(1);
		for (struct req *r = batch, *next; r != NULL; r = next) {
			next = r->next;   /* r may be answered and freed once resumed */
			r->done = true;
			MHD_resume_connection(r->conn);
		}
	}
	sqlite3_finalize(ins);
	return NULL;
}

static void *
dur_checkpointer(void *arg)
{
	sqlite3 *db = arg;
	struct timespec t = { 0, 100 * 1000 * 1000 };

	while (!dur_stop) {
		nanosleep(&t, NULL);
		sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	}
	return NULL;
}

static enum MHD_Result
dur_handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
    const char *version, const char *data, size_t *size, void **ctx)
{
	(void)cls; (void)url; (void)method; (void)version;
	struct req *r = *ctx;
	if (r == NULL) {
		*ctx = r = calloc(1, sizeof(*r));
		if (r == NULL)
			return MHD_NO;
		r->conn = c;
		return MHD_YES;
	}
	if (*size > 0) {
		char *b = realloc(r->body, r->len + *size + 1);
		if (b == NULL)
			return MHD_NO;
		r->body = b;
		memcpy(r->body + r->len, data, *size);
		r->len += *size;
		*size = 0;
		return MHD_YES;
	}
	if (!r->queued) {
		r->queued = true;
		MHD_suspend_connection(c);
		pthread_mutex_lock(&dur_lock);
		*dur_tail = r;
		dur_tail = &r->next;
		pthread_cond_signal(&dur_cond);
		pthread_mutex_unlock(&dur_lock);
		return MHD_YES;
	}
	if (!r->done)
		return MHD_YES;
	struct MHD_Response *resp = MHD_create_response_from_buffer(sizeof(dur_answer) - 1,
	    (void *)dur_answer, MHD_RESPMEM_PERSISTENT);
	MHD_add_response_header(resp, "Content-Type", "application/json");
	enum MHD_Result ret = MHD_queue_response(c, 202, resp);
	MHD_destroy_response(resp);
	return ret;
}

static void
dur_completed(void *cls, struct MHD_Connection *c, void **ctx, enum MHD_RequestTerminationCode t)
{
	(void)cls; (void)c; (void)t;
	struct req *r = *ctx;
	if (r != NULL) {
		free(r->body);
		free(r);
	}
	*ctx = NULL;
}

int
main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: NDAEMONS=N mhd_durable PORT DIR\n");
		return 2;
	}
	char path[4096];
	snprintf(path, sizeof(path), "%s/durable.db", argv[2]);
	sqlite3 *w = dur_open(path), *ck;
	if (w == NULL || dur_exec(w, "CREATE TABLE IF NOT EXISTS d(id INTEGER PRIMARY KEY,"
	    " provider TEXT, next REAL, event BLOB);"
	    "CREATE INDEX IF NOT EXISTS d_next ON d(provider, next);"
	    "CREATE INDEX IF NOT EXISTS d_prov ON d(provider);") < 0 ||
	    (ck = dur_open(path)) == NULL)
		return 1;
	pthread_t wt, ct;
	pthread_create(&wt, NULL, dur_writer, w);
	pthread_create(&ct, NULL, dur_checkpointer, ck);

	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1])) };
	inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
	long n = getenv("NDAEMONS") ? atol(getenv("NDAEMONS")) : 4 * sysconf(_SC_NPROCESSORS_ONLN);
	struct MHD_Daemon *d[16];
	long started = 0;
	for (long i = 0; i < n && i < 16; i++, started++) {
		d[i] = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
		    MHD_ALLOW_SUSPEND_RESUME, 0, NULL, NULL, dur_handler, NULL,
		    MHD_OPTION_SOCK_ADDR, &sin, MHD_OPTION_LISTENING_ADDRESS_REUSE, 1,
		    MHD_OPTION_NOTIFY_COMPLETED, dur_completed, NULL,
		    MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
		if (d[i] == NULL) {
			fprintf(stderr, "mhd_durable: cannot listen\n");
			return 1;
		}
	}
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGTERM);
	sigaddset(&s, SIGINT);
	sigprocmask(SIG_BLOCK, &s, NULL);
	int sig;
	sigwait(&s, &sig);
	/* The writer answers what is queued before it ends: libmicrohttpd
	 * must not be stopped with a connection still suspended. */
	pthread_mutex_lock(&dur_lock);
	dur_stop = 1;
	pthread_cond_signal(&dur_cond);
	pthread_mutex_unlock(&dur_lock);
	pthread_join(wt, NULL);
	pthread_join(ct, NULL);
	for (long i = 0; i < started; i++)
		MHD_stop_daemon(d[i]);
	sqlite3_close(ck);
	sqlite3_close(w);
	return 0;
}
