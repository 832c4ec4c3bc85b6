/*
 * deliver_record: the notes (outcomes not yet on disk) and the recorder
 * thread that writes them (deliver_record.h).
 *
 * A note is the row's state as it should be stored. Its seq changes with
 * every change; taken is the seq the recorder is writing (0: none), so a
 * note that changed while its older state was being written stays to be
 * written again, and one whose write failed is taken again. The notes are a
 * hash table shared by the delivery thread and the recorder under r->lock;
 * the recorder forgets a note (under the lock) only after its write
 * committed, and deliver_record_head reads rows under the same lock, so a
 * row read before that commit still finds its note and one read after it
 * shows the written state: read and notes are never out of step (a
 * delivered row read back as pending would be sent again).
 *
 * Thread handle notes (deliver_record.h) live in a list beside the row
 * notes, under the same lock and with the same seq/taken rule, and are
 * written in the same transaction as the row notes taken with them; a
 * handle is noted before the acknowledgement of the row that made it, so a
 * crash between the two writes can at worst send that row again, never
 * lose the thread of an acknowledged parent.
 *
 * The recorder's connection is opened with synchronous=NORMAL: what it
 * writes (acks, deferrals, dead letters) may be lost by a power cut, which
 * at worst sends a message again or retries it early (at-least-once holds).
 * Acceptance commits keep queue.sync on the writer's own connection, and its
 * next fsync makes these earlier WAL frames durable too.
 */
#include "deliver_record.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "metrics.h"
#include "thread.h"
#include "util.h"

/*
 * How often the recorder checkpoints the WAL (seconds). The checkpoint's
 * second pass holds the write lock (queue_checkpoint), so the whole WAL is
 * copied and the writer's next commit starts it over: the WAL stays small
 * and is rewritten in place, and the writer's own checkpoint
 * (queue_wal_backstop, tens of milliseconds inside a commit) is not
 * reached. Often, so that each pass copies little and holds the writer for
 * little.
 */
#define DELIVER_RECORD_CHECKPOINT_INTERVAL 0.1
/*
 * How long a note waits for others before the recorder writes (seconds):
 * every write holds the writer's lock for a moment, and one write of a few
 * dozen outcomes holds it for hardly longer than one of a single outcome.
 */
#define DELIVER_RECORD_GATHER 0.02
/* How long the recorder waits before writing notes again after a failure. */
#define DELIVER_RECORD_RETRY 1.0
/* How often the recorder looks for a queue fault to report (seconds). */
#define DELIVER_RECORD_FAULT_INTERVAL 1.0
/* Shortest gap between two counts of the queue (seconds). */
#define DELIVER_RECORD_COUNT_INTERVAL 1.0
/* Dead letters deleted per transaction by dead_max_age. */
#define DELIVER_RECORD_EXPIRE_BATCH 1000
/* Writes tried at stop for a disk that is slow to come back, half a second apart. */
#define DELIVER_RECORD_FINAL_TRIES 3

struct deliver_record_note {
	int64_t id;                   /* 0: empty slot */
	enum queue_outcome_kind kind;
	int attempts;
	double next_attempt_at;       /* DEFER: wall clock */
	char *error;                  /* NULL keeps the stored one */
	uint64_t seq, taken;
};

/* Open addressing with linear probing; cap is a power of two, at most half full. */
struct deliver_record_notes {
	struct deliver_record_note *slot;
	size_t cap, n;
	uint64_t seq;
};

/*
 * A note of a thread handle (deliver_record.h), with seq/taken as a row's.
 * They are few (one per thread that changed since the last write), so a
 * list does.
 */
enum deliver_record_op {
	DELIVER_RECORD_PUT,           /* h is the new handle */
	DELIVER_RECORD_TOUCH,         /* h.last_at, h.updated_at (< 0: kept) of the stored one */
	DELIVER_RECORD_DROP,          /* no handle */
};

struct deliver_record_tnote {
	struct deliver_record_tnote *next;
	char *provider, *channel, *key;
	enum deliver_record_op op;
	struct deliver_thread h;
	uint64_t seq, taken;
};

struct deliver_record {
	pthread_t thread;
	/* Guarded by lock; cond wakes the recorder. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct deliver_record_notes notes;
	struct deliver_record_tnote *tnotes;   /* thread handle notes; seq from notes.seq */
	bool dirty;                   /* some note has seq != taken */
	double dirty_since;           /* util_mono() when dirty was last set by a note */
	bool stop;
	bool expire_now;              /* a new dead_max_age: expire at once */
	_Atomic double dead_max_age;  /* queue.dead_max_age of the current configuration */

	/* Recorder thread only. */
	struct queue *q;              /* its own connection */
	bool failing;                 /* the last write of notes failed */
	bool fault_logged;
	double retry_at, next_checkpoint, next_counts, next_expire, next_fault;
};

/* ------------------------------------------------------------------ notes */

static size_t
deliver_record_hash(const struct deliver_record_notes *ns, int64_t id)
{
	return (size_t)(((uint64_t)id * 0x9E3779B97F4A7C15ULL) >> 17) & (ns->cap - 1);
}

/* The note of id, or NULL. Under the lock. */
static struct deliver_record_note *
deliver_record_find(struct deliver_record_notes *ns, int64_t id)
{
	if (ns->n == 0)
		return NULL;
	for (size_t i = deliver_record_hash(ns, id); ns->slot[i].id != 0;
	    i = (i + 1) & (ns->cap - 1))
		if (ns->slot[i].id == id)
			return &ns->slot[i];
	return NULL;
}

/* The note of id, a new empty one (kind ACK, no error) if there is none. Under the lock. */
static struct deliver_record_note *
deliver_record_get(struct deliver_record_notes *ns, int64_t id)
{
	struct deliver_record_note *e = deliver_record_find(ns, id);
	if (e != NULL)
		return e;
	if (2 * (ns->n + 1) > ns->cap) {
		struct deliver_record_notes grown = { NULL, ns->cap ? ns->cap * 2 : 64, 0, ns->seq };
		grown.slot = util_calloc(grown.cap, sizeof(*grown.slot));
		for (size_t i = 0; i < ns->cap; i++) {
			if (ns->slot[i].id == 0)
				continue;
			size_t j = deliver_record_hash(&grown, ns->slot[i].id);
			while (grown.slot[j].id != 0)
				j = (j + 1) & (grown.cap - 1);
			grown.slot[j] = ns->slot[i];
			grown.n++;
		}
		free(ns->slot);
		*ns = grown;
	}
	size_t i = deliver_record_hash(ns, id);
	while (ns->slot[i].id != 0)
		i = (i + 1) & (ns->cap - 1);
	memset(&ns->slot[i], 0, sizeof(ns->slot[i]));
	ns->slot[i].id = id;
	ns->n++;
	return &ns->slot[i];
}

/* Remove e (a slot of ns), shifting back the entries of its probe run. Under the lock. */
static void
deliver_record_del(struct deliver_record_notes *ns, struct deliver_record_note *e)
{
	size_t mask = ns->cap - 1, i = (size_t)(e - ns->slot);
	free(ns->slot[i].error);
	ns->slot[i].id = 0;
	ns->slot[i].error = NULL;
	ns->n--;
	for (size_t j = (i + 1) & mask; ns->slot[j].id != 0; j = (j + 1) & mask) {
		size_t home = deliver_record_hash(ns, ns->slot[j].id);
		/* Move j into the hole at i unless its home lies cyclically in (i, j]. */
		if (((j - home) & mask) >= ((j - i) & mask)) {
			ns->slot[i] = ns->slot[j];
			ns->slot[j].id = 0;
			ns->slot[j].error = NULL;
			i = j;
		}
	}
}

static void
deliver_record_notes_free(struct deliver_record_notes *ns)
{
	for (size_t i = 0; i < ns->cap; i++)
		free(ns->slot[i].error);
	free(ns->slot);
	memset(ns, 0, sizeof(*ns));
}

void
deliver_record_note(struct deliver_record *r, int64_t id, enum queue_outcome_kind kind,
    int attempts, double next_attempt_at, const char *error)
{
	pthread_mutex_lock(&r->lock);
	struct deliver_record_note *e = deliver_record_get(&r->notes, id);
	e->kind = kind;
	e->attempts = attempts;
	e->next_attempt_at = next_attempt_at;
	free(e->error);
	e->error = error ? util_strdup(error) : NULL;
	e->seq = ++r->notes.seq;
	if (!r->dirty) {
		r->dirty = true;
		r->dirty_since = util_mono();
		pthread_cond_signal(&r->cond);
	}
	pthread_mutex_unlock(&r->lock);
}

/*
 * Apply the notes to rows[0..n) read under the lock: rows delivered or dead
 * are cleared, deferred ones take their noted state; the first `limit` left
 * are moved to the front. Returns how many are there (at most limit);
 * *hidden gets how many notes hid.
 */
static size_t
deliver_record_apply(struct deliver_record *r, struct queue_row *rows, size_t n, size_t limit,
    size_t *hidden)
{
	size_t kept = 0;
	*hidden = 0;
	for (size_t i = 0; i < n; i++) {
		struct deliver_record_note *e = deliver_record_find(&r->notes, rows[i].id);
		if (e != NULL && e->kind != QUEUE_OUTCOME_DEFER) {
			queue_row_clear(&rows[i]);
			(*hidden)++;
			continue;
		}
		if (e != NULL) {
			rows[i].attempts = e->attempts;
			rows[i].next_attempt_at = e->next_attempt_at;
			if (e->error != NULL) {
				free(rows[i].last_error);
				rows[i].last_error = util_strdup(e->error);
			}
		}
		if (kept < limit) {
			rows[kept++] = rows[i];
			if (kept - 1 != i)
				memset(&rows[i], 0, sizeof(rows[i]));
		} else {
			queue_row_clear(&rows[i]);
		}
	}
	return kept;
}

int
deliver_record_head(struct deliver_record *r, struct queue *q, const char *provider,
    const char *channel, size_t limit, size_t *hidden_hint, struct queue_row **out,
    size_t *nout)
{
	size_t want = limit + *hidden_hint;
	*out = NULL;
	*nout = 0;
	for (;;) {
		struct queue_row *rows = NULL;
		size_t n = 0, kept = 0, hidden = 0;
		pthread_mutex_lock(&r->lock);
		if (queue_target_head(q, provider, channel, want, &rows, &n) < 0) {
			pthread_mutex_unlock(&r->lock);
			return -1;
		}
		kept = deliver_record_apply(r, rows, n, limit, &hidden);
		pthread_mutex_unlock(&r->lock);
		*hidden_hint = hidden;
		if (kept >= limit || n < want) {
			*out = rows;
			*nout = kept;
			return 0;
		}
		queue_rows_free(rows, n);
		want = want * 2 + hidden;
	}
}

void
deliver_record_set_dead_max_age(struct deliver_record *r, double dead_max_age)
{
	atomic_store(&r->dead_max_age, dead_max_age);
	pthread_mutex_lock(&r->lock);
	r->expire_now = true;
	pthread_cond_signal(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

/* ------------------------------------------------------------ thread notes */

static bool
deliver_record_tnote_is(const struct deliver_record_tnote *t, const char *provider,
    const char *channel, const char *key)
{
	return strcmp(t->provider, provider) == 0 && strcmp(t->channel, channel) == 0 &&
	    strcmp(t->key, key) == 0;
}

/* The note of a handle, or NULL. Under the lock. */
static struct deliver_record_tnote *
deliver_record_tnote_find(struct deliver_record *r, const char *provider, const char *channel,
    const char *key)
{
	for (struct deliver_record_tnote *t = r->tnotes; t != NULL; t = t->next)
		if (deliver_record_tnote_is(t, provider, channel, key))
			return t;
	return NULL;
}

static void
deliver_record_tnote_free(struct deliver_record_tnote *t)
{
	free(t->provider);
	free(t->channel);
	free(t->key);
	free(t);
}

/*
 * Note op for a handle (h as the op says; may be NULL for DROP), merged
 * with an earlier note of it: a touch changes a new handle's times, and
 * touches nothing once it ended. Wakes the recorder.
 */
static void
deliver_record_tnote(struct deliver_record *r, const char *provider, const char *channel,
    const char *key, enum deliver_record_op op, const struct deliver_thread *h)
{
	pthread_mutex_lock(&r->lock);
	struct deliver_record_tnote *t = deliver_record_tnote_find(r, provider, channel, key);
	if (t == NULL) {
		t = util_calloc(1, sizeof(*t));
		t->provider = util_strdup(provider);
		t->channel = util_strdup(channel);
		t->key = util_strdup(key);
		t->op = DELIVER_RECORD_DROP;
		t->next = r->tnotes;
		r->tnotes = t;
		if (op == DELIVER_RECORD_TOUCH) {
			t->op = DELIVER_RECORD_TOUCH;
			t->h.updated_at = -1;
		}
	}
	if (op == DELIVER_RECORD_TOUCH) {
		if (t->op == DELIVER_RECORD_DROP)
			goto out;                 /* nothing to touch */
		t->h.last_at = h->last_at;
		if (h->updated_at >= 0)
			t->h.updated_at = h->updated_at;
	} else {
		t->op = op;
		if (h != NULL)
			t->h = *h;
	}
	t->seq = ++r->notes.seq;
	r->dirty = true;
	pthread_cond_signal(&r->cond);
out:
	pthread_mutex_unlock(&r->lock);
}

void
deliver_record_thread_put(struct deliver_record *r, const char *provider,
    const char *channel, const char *key, const struct deliver_thread *h)
{
	deliver_record_tnote(r, provider, channel, key, DELIVER_RECORD_PUT, h);
}

void
deliver_record_thread_touch(struct deliver_record *r, const char *provider,
    const char *channel, const char *key, double last_at, double updated_at)
{
	struct deliver_thread h = { .last_at = last_at, .updated_at = updated_at };
	deliver_record_tnote(r, provider, channel, key, DELIVER_RECORD_TOUCH, &h);
}

void
deliver_record_thread_drop(struct deliver_record *r, const char *provider,
    const char *channel, const char *key)
{
	deliver_record_tnote(r, provider, channel, key, DELIVER_RECORD_DROP, NULL);
}

/* A stored handle as a struct deliver_thread (ids that do not fit are cut: Slack's are short). */
static void
deliver_record_from_queue(const struct queue_thread *qt, struct deliver_thread *h)
{
	memset(h, 0, sizeof(*h));
	snprintf(h->channel_id, sizeof(h->channel_id), "%s", qt->channel_id ? qt->channel_id : "");
	snprintf(h->ts, sizeof(h->ts), "%s", qt->ts ? qt->ts : "");
	h->opened_at = qt->opened_at;
	h->last_at = qt->last_at;
	h->updated_at = qt->updated_at;
}

/* A touch note's times applied to a handle read from the database. */
static void
deliver_record_touch_apply(const struct deliver_record_tnote *t, struct deliver_thread *h)
{
	h->last_at = t->h.last_at;
	if (t->h.updated_at >= 0)
		h->updated_at = t->h.updated_at;
}

int
deliver_record_thread(struct deliver_record *r, struct queue *q, const char *provider,
    const char *channel, const char *key, struct deliver_thread *h)
{
	struct queue_thread qt = { 0 };
	int found;

	/* Read under the lock, as deliver_record_head: a note is forgotten only
	 * once its write committed, so notes and reads never disagree. */
	pthread_mutex_lock(&r->lock);
	struct deliver_record_tnote *t = deliver_record_tnote_find(r, provider, channel, key);
	if (t != NULL && t->op != DELIVER_RECORD_TOUCH) {
		found = t->op == DELIVER_RECORD_PUT;
		if (found)
			*h = t->h;
		goto out;
	}
	found = queue_thread_get(q, provider, channel, key, &qt);
	if (found == 1) {
		deliver_record_from_queue(&qt, h);
		if (t != NULL)
			deliver_record_touch_apply(t, h);
	}
	queue_thread_clear(&qt);
out:
	pthread_mutex_unlock(&r->lock);
	return found;
}

int
deliver_record_threads(struct deliver_record *r, struct queue *q, const char *provider,
    const char *channel, struct deliver_thread_entry **out, size_t *n)
{
	struct queue_thread *rows = NULL;
	size_t nrows = 0, len = 0, cap = 0;
	struct deliver_thread_entry *v = NULL;

	*out = NULL;
	*n = 0;
	pthread_mutex_lock(&r->lock);
	if (queue_thread_list_target(q, provider, channel, &rows, &nrows) < 0) {
		pthread_mutex_unlock(&r->lock);
		return -1;
	}
	cap = nrows;
	for (struct deliver_record_tnote *t = r->tnotes; t != NULL; t = t->next)
		cap++;
	v = util_calloc(cap + 1, sizeof(*v));
	for (size_t i = 0; i < nrows; i++) {
		struct deliver_record_tnote *t = deliver_record_tnote_find(r, provider, channel,
		    rows[i].thread_key);
		if (t != NULL && t->op != DELIVER_RECORD_TOUCH)
			continue;                 /* the note says (below) */
		v[len].key = util_strdup(rows[i].thread_key);
		deliver_record_from_queue(&rows[i], &v[len].h);
		if (t != NULL)
			deliver_record_touch_apply(t, &v[len].h);
		len++;
	}
	for (struct deliver_record_tnote *t = r->tnotes; t != NULL; t = t->next) {
		if (t->op != DELIVER_RECORD_PUT || strcmp(t->provider, provider) != 0 ||
		    strcmp(t->channel, channel) != 0)
			continue;
		v[len].key = util_strdup(t->key);
		v[len].h = t->h;
		len++;
	}
	pthread_mutex_unlock(&r->lock);
	queue_threads_free(rows, nrows);
	*out = v;
	*n = len;
	return 0;
}

void
deliver_record_threads_free(struct deliver_thread_entry *v, size_t n)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i].key);
	free(v);
}

/* ------------------------------------------------------------------ writing */

/* The notes not written yet, as outcomes (errors copied); seqs gets their seq. Under the lock. */
static size_t
deliver_record_take(struct deliver_record *r, struct queue_outcome **out, uint64_t **seqs)
{
	struct queue_outcome *o = NULL;
	size_t n = 0;
	*seqs = NULL;
	if (r->notes.n > 0) {
		o = util_calloc(r->notes.n, sizeof(*o));
		*seqs = util_calloc(r->notes.n, sizeof(**seqs));
	}
	for (size_t i = 0; i < r->notes.cap; i++) {
		struct deliver_record_note *e = &r->notes.slot[i];
		if (e->id == 0 || e->taken == e->seq)
			continue;
		o[n] = (struct queue_outcome){ e->id, e->kind, e->attempts, e->next_attempt_at,
		    e->error ? util_strdup(e->error) : NULL };
		(*seqs)[n++] = e->seq;
		e->taken = e->seq;
	}
	*out = o;
	return n;
}

/* Log the first failed write of a spell, and the first success after one. */
static void
deliver_record_report(struct deliver_record *r, int rc, size_t written, size_t left)
{
	char nbuf[24];
	snprintf(nbuf, sizeof(nbuf), "%zu", rc == 0 ? written : left);
	if (rc != 0) {
		r->retry_at = util_mono() + DELIVER_RECORD_RETRY;
		/* Once per failing spell; a queue fault is reported on its own. */
		if (!r->failing && queue_fault(NULL, 0) == QUEUE_FAULT_NONE)
			log_error("cannot record delivery outcomes: kept in memory (delivered messages "
			    "are not sent again) and written again every second", "outcomes", nbuf,
			    "error", queue_errmsg(r->q), NULL);
		r->failing = true;
	} else if (r->failing) {
		r->failing = false;
		log_info("delivery outcomes recorded again", "outcomes", nbuf, NULL);
	}
}

/*
 * The thread notes not written yet, as copies (a list in *out, newest
 * first; the seq of each is the one taken). Under the lock.
 */
static size_t
deliver_record_take_threads(struct deliver_record *r, struct deliver_record_tnote **out)
{
	size_t n = 0;
	*out = NULL;
	for (struct deliver_record_tnote *t = r->tnotes; t != NULL; t = t->next) {
		if (t->taken == t->seq)
			continue;
		struct deliver_record_tnote *c = util_calloc(1, sizeof(*c));
		*c = *t;
		c->provider = util_strdup(t->provider);
		c->channel = util_strdup(t->channel);
		c->key = util_strdup(t->key);
		c->next = *out;
		*out = c;
		t->taken = t->seq;
		n++;
	}
	return n;
}

/* Write one thread note in the open transaction. 0 / -1. */
static int
deliver_record_store_thread(struct queue *q, const struct deliver_record_tnote *t)
{
	if (t->op == DELIVER_RECORD_DROP)
		return queue_thread_delete(q, t->provider, t->channel, t->key);
	if (t->op == DELIVER_RECORD_TOUCH)
		return queue_thread_touch(q, t->provider, t->channel, t->key, t->h.last_at,
		    t->h.updated_at);
	struct queue_thread qt = {
		.provider = t->provider, .channel = t->channel, .thread_key = t->key,
		.channel_id = (char *)t->h.channel_id, .ts = (char *)t->h.ts,
		.opened_at = t->h.opened_at, .last_at = t->h.last_at, .updated_at = t->h.updated_at,
	};
	return queue_thread_put(q, &qt);
}

/* Outcomes and thread notes in one transaction. 0 / -1 (nothing written). */
static int
deliver_record_store(struct deliver_record *r, const struct queue_outcome *o, size_t n,
    const struct deliver_record_tnote *th)
{
	if (th == NULL)
		return queue_record(r->q, o, n);
	if (queue_begin(r->q) < 0)
		return -1;
	if (queue_record_in(r->q, o, n) < 0)
		goto fail;
	for (const struct deliver_record_tnote *t = th; t != NULL; t = t->next)
		if (deliver_record_store_thread(r->q, t) < 0)
			goto fail;
	return queue_commit(r->q);
fail:
	queue_rollback(r->q);
	return -1;
}

/* After a write (rc) of thread notes th: forget those on disk, or take them again. Under the lock. */
static void
deliver_record_written_threads(struct deliver_record *r, int rc,
    const struct deliver_record_tnote *th)
{
	for (const struct deliver_record_tnote *c = th; c != NULL; c = c->next) {
		struct deliver_record_tnote **pp = &r->tnotes;
		while (*pp != NULL && !deliver_record_tnote_is(*pp, c->provider, c->channel, c->key))
			pp = &(*pp)->next;
		struct deliver_record_tnote *t = *pp;
		if (t == NULL)
			continue;
		if (rc == 0 && t->seq == c->seq) {
			*pp = t->next;
			deliver_record_tnote_free(t);
		} else if (rc != 0 && t->taken == c->seq) {
			t->taken = 0;
			r->dirty = true;
		}
	}
}

static void
deliver_record_tnotes_free(struct deliver_record_tnote *t)
{
	while (t != NULL) {
		struct deliver_record_tnote *next = t->next;
		deliver_record_tnote_free(t);
		t = next;
	}
}

/* Write every dirty note in one transaction; forget what is now on disk. */
static void
deliver_record_write(struct deliver_record *r)
{
	struct queue_outcome *o = NULL;
	struct deliver_record_tnote *th = NULL;
	uint64_t *seqs = NULL;

	pthread_mutex_lock(&r->lock);
	r->dirty = false;
	size_t n = deliver_record_take(r, &o, &seqs);
	size_t m = deliver_record_take_threads(r, &th);
	pthread_mutex_unlock(&r->lock);
	if (n == 0 && m == 0)
		goto out;

	int rc = deliver_record_store(r, o, n, th);
	pthread_mutex_lock(&r->lock);
	for (size_t i = 0; i < n; i++) {
		struct deliver_record_note *e = deliver_record_find(&r->notes, o[i].id);
		if (e == NULL)
			continue;
		if (rc == 0 && e->seq == seqs[i]) {
			deliver_record_del(&r->notes, e);
		} else if (rc != 0 && e->taken == seqs[i]) {
			e->taken = 0;             /* to be written again */
			r->dirty = true;
		}
	}
	deliver_record_written_threads(r, rc, th);
	size_t left = r->notes.n;
	for (struct deliver_record_tnote *t = r->tnotes; t != NULL; t = t->next)
		left++;
	pthread_mutex_unlock(&r->lock);
	deliver_record_report(r, rc, n + m, left);
out:
	for (size_t i = 0; i < n; i++)
		free((char *)o[i].error);
	free(o);
	free(seqs);
	deliver_record_tnotes_free(th);
}

/* ------------------------------------------------------------ housekeeping */

/* Per-provider counts, parallel arrays for metrics_queue_sync. */
struct deliver_record_counts {
	struct util_buf names, pending, dead;   /* of char *, int64_t, int64_t */
	int64_t total;
	size_t n;
};

static void
deliver_record_count_cb(const char *provider, int64_t pending, int64_t dead, void *arg)
{
	struct deliver_record_counts *c = arg;
	char *name = util_strdup(provider);
	util_buf_append(&c->names, (const char *)&name, sizeof(name));
	util_buf_append(&c->pending, (const char *)&pending, sizeof(pending));
	util_buf_append(&c->dead, (const char *)&dead, sizeof(dead));
	c->total += pending;
	c->n++;
}

/*
 * Re-count the queue per provider for the gauges and the pending count:
 * `fluxrelay queue retry` in another process adds rows this process never
 * counted.
 * Spaced by fifty times its own duration (a long queue costs a pass over its
 * index), at least DELIVER_RECORD_COUNT_INTERVAL.
 */
static void
deliver_record_count(struct deliver_record *r)
{
	struct deliver_record_counts c = {0};
	double t0 = util_mono();
	/*
	 * Under the write lock: the writer adds its rows to the pending count
	 * and commits them in one hold of the lock (queue_writer_finish), so the
	 * count sees both or neither. Without it, a count between the two was
	 * off by a batch until the next count: "queue full" with room left, or
	 * an event past max_pending.
	 */
	if (queue_begin(r->q) == 0) {
		if (queue_count_by_provider(r->q, deliver_record_count_cb, &c) == 0) {
			metrics_queue_sync((const char *const *)c.names.data,
			    (const int64_t *)c.pending.data, (const int64_t *)c.dead.data, c.n);
			queue_pending_set(c.total);
		}
		queue_rollback(r->q);
	}
	for (size_t i = 0; i < c.n; i++)
		free(((char **)c.names.data)[i]);
	util_buf_free(&c.names);
	util_buf_free(&c.pending);
	util_buf_free(&c.dead);
	double t1 = util_mono();
	r->next_counts = t1 + fmax(DELIVER_RECORD_COUNT_INTERVAL, 50.0 * (t1 - t0));
}

/* queue.dead_max_age: delete dead letters that have been dead longer. */
static void
deliver_record_expire(struct deliver_record *r)
{
	double age = atomic_load(&r->dead_max_age);
	double now_m = util_mono();
	/* Often enough to keep to the age, rarely enough to cost nothing. */
	r->next_expire = now_m + fmin(60.0, fmax(1.0, age / 10.0));
	if (age <= 0)
		return;
	int64_t deleted = 0, total = 0;
	do {
		if (queue_expire_dead(r->q, util_now() - age, DELIVER_RECORD_EXPIRE_BATCH,
		    &deleted) < 0)
			break;
		total += deleted;
	} while (deleted == DELIVER_RECORD_EXPIRE_BATCH && util_mono() - now_m < 0.5);
	if (deleted == DELIVER_RECORD_EXPIRE_BATCH)
		r->next_expire = now_m;       /* more next round */
	if (total > 0) {
		char nbuf[24], abuf[32];
		snprintf(nbuf, sizeof(nbuf), "%lld", (long long)total);
		snprintf(abuf, sizeof(abuf), "%.0f", age);
		log_info("dead letters expired", "count", nbuf, "dead_max_age", abuf, NULL);
		r->next_counts = now_m;       /* the gauges follow at once */
	}
}

/* A queue fault (queue.h) is logged once, with what to do. */
static void
deliver_record_fault(struct deliver_record *r)
{
	char msg[768];
	r->next_fault = util_mono() + DELIVER_RECORD_FAULT_INTERVAL;
	if (r->fault_logged || queue_fault(msg, sizeof(msg)) == QUEUE_FAULT_NONE)
		return;
	r->fault_logged = true;
	log_error("queue database unusable: new events are refused (503) and readyz fails",
	    "problem", msg, NULL);
}

/* Whatever of the housekeeping is due. */
static void
deliver_record_housekeeping(struct deliver_record *r)
{
	double now_m = util_mono();
	if (now_m >= r->next_fault)
		deliver_record_fault(r);
	if (now_m >= r->next_checkpoint) {
		/* The writer leaves checkpoints to this thread (queue_wal_backstop). */
		queue_checkpoint(r->q);
		r->next_checkpoint = util_mono() + DELIVER_RECORD_CHECKPOINT_INTERVAL;
	}
	if (now_m >= r->next_expire)
		deliver_record_expire(r);
	if (util_mono() >= r->next_counts)
		deliver_record_count(r);
}

/* ------------------------------------------------------------------ thread */

/* When the dirty notes are to be written (util_mono()). Lock held. */
static double
deliver_record_write_at(const struct deliver_record *r)
{
	return fmax(r->retry_at, r->dirty_since + DELIVER_RECORD_GATHER);
}

/* Wait, lock held, until stop, notes to write, or housekeeping is due. */
static void
deliver_record_wait(struct deliver_record *r)
{
	for (;;) {
		double now_m = util_mono();
		if (r->expire_now) {
			r->expire_now = false;
			r->next_expire = 0;
		}
		double write_at = deliver_record_write_at(r);
		if (r->stop || (r->dirty && now_m >= write_at))
			return;
		double due = fmin(fmin(r->next_checkpoint, r->next_counts),
		    fmin(r->next_expire, r->next_fault));
		if (r->dirty && write_at < due)
			due = write_at;
		if (now_m >= due)
			return;
		thread_cond_wait(&r->cond, &r->lock, due - now_m);
	}
}

/*
 * At stop, after a write: whether to try again. The delivery thread is done,
 * so what it noted is all there is; a disk slow to come back gets a few more
 * tries, then what is left is logged.
 */
static bool
deliver_record_final(struct deliver_record *r, int *tries)
{
	pthread_mutex_lock(&r->lock);
	size_t left = r->notes.n;
	for (struct deliver_record_tnote *t = r->tnotes; t != NULL; t = t->next)
		left++;
	pthread_mutex_unlock(&r->lock);
	if (left == 0)
		return false;
	if (++*tries >= DELIVER_RECORD_FINAL_TRIES) {
		char nbuf[24];
		snprintf(nbuf, sizeof(nbuf), "%zu", left);
		log_error("delivery outcomes not recorded: those messages may be sent "
		    "again after the next start", "outcomes", nbuf, NULL);
		return false;
	}
	struct timespec ts = { 0, 500 * 1000 * 1000 };
	nanosleep(&ts, NULL);
	pthread_mutex_lock(&r->lock);
	r->dirty = true;
	pthread_mutex_unlock(&r->lock);
	return true;
}

static void *
deliver_record_main(void *arg)
{
	struct deliver_record *r = arg;
	int final_tries = 0;
	for (;;) {
		pthread_mutex_lock(&r->lock);
		deliver_record_wait(r);
		bool stop = r->stop;
		bool write = r->dirty && (stop || util_mono() >= deliver_record_write_at(r));
		pthread_mutex_unlock(&r->lock);

		if (write)
			deliver_record_write(r);
		if (stop) {
			if (deliver_record_final(r, &final_tries))
				continue;
			break;
		}
		deliver_record_housekeeping(r);
	}
	return NULL;
}

/* --------------------------------------------------------------- interface */

struct deliver_record *
deliver_record_start(const char *state_dir, double dead_max_age, char *err, size_t errlen)
{
	struct deliver_record *r = util_calloc(1, sizeof(*r));
	r->q = queue_open(state_dir, false, err, errlen);
	if (r->q == NULL)
		goto fail;
	atomic_init(&r->dead_max_age, dead_max_age);
	pthread_mutex_init(&r->lock, NULL);
	thread_cond_init(&r->cond);
	if (thread_start(&r->thread, deliver_record_main, r, "fr-record", "the recorder thread",
	    err, errlen) < 0) {
		pthread_mutex_destroy(&r->lock);
		pthread_cond_destroy(&r->cond);
		goto fail;
	}
	return r;
fail:
	queue_close(r->q);
	free(r);
	return NULL;
}

void
deliver_record_stop(struct deliver_record *r)
{
	if (r == NULL)
		return;
	pthread_mutex_lock(&r->lock);
	r->stop = true;
	pthread_cond_signal(&r->cond);
	pthread_mutex_unlock(&r->lock);
	pthread_join(r->thread, NULL);
	queue_close(r->q);
	deliver_record_notes_free(&r->notes);
	deliver_record_tnotes_free(r->tnotes);
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->cond);
	free(r);
}
