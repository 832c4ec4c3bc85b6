/*
 * dedup: the dedup key of SPEC §7 (any thread) and the window decision (the
 * queue writer thread; storage through queue).
 */
#ifndef FLUXRELAY_DEDUP_H
#define FLUXRELAY_DEDUP_H

#include <stdbool.h>
#include <stddef.h>

#define DEDUP_KEY_LEN 32

#include "event.h"
#include "queue.h"

/* SHA-256 over the cluster (when not empty), kind, namespace, name, message
 * (durations normalized when asked), and metadata revision, originRevision,
 * token when present. */
void dedup_key(const struct event *ev, bool normalize_durations,
    unsigned char out[DEDUP_KEY_LEN]);

/* What dedup_normalize puts where a duration was. */
#define DEDUP_DURATION_PLACEHOLDER "<duration>"

/*
 * Replace durations ("2.08s", "1m30s", "150ms", "1h2m3s", "500µs", "500us",
 * "10ns") by DEDUP_DURATION_PLACEHOLDER, but only whole tokens: a duration
 * glued to letters, digits, '_' or non-ASCII text ("v1s2", "abc5s", "5sec")
 * or preceded by '.' ("1.2.5s") is left alone. Caller frees.
 */
char *dedup_normalize(const char *message);

/*
 * The window decision, made by the queue writer thread on its own connection
 * q while it builds a batch. The first sightings are stored with the queue,
 * in the same transaction as the deliveries they admit, so the window
 * survives a restart exactly as far as the acceptance did.
 */
enum dedup_verdict {
	DEDUP_NEW,          /* not seen within the window: the event goes on */
	DEDUP_DUPLICATE,    /* seen less than window seconds ago: answered, not delivered */
	DEDUP_ERROR,        /* the lookup failed (queue_errmsg) */
};

/*
 * Whether key was first seen less than window seconds before now, by the
 * first sightings stored in q, the batch's own uncommitted ones included (a
 * repeat within one batch is found like any other). The window is fixed
 * from the first sighting: a duplicate does not extend it. For a duplicate,
 * event_id gets the first event's id. window <= 0 (dedup off): DEDUP_NEW.
 */
enum dedup_verdict dedup_admit(struct queue *q, const unsigned char key[DEDUP_KEY_LEN],
    double window, double now, char event_id[UTIL_ID_SIZE]);

/*
 * Record an admitted event as the first sighting of key in q's open
 * transaction: a batch that rolls back leaves no key behind. A sighting whose
 * window has not run out stays as it is (first id, first time), so an event
 * recorded without dedup_admit (one that changes an incident, never a
 * duplicate) does not move the window; one whose window ran out is replaced.
 * Nothing for window <= 0. 0 / -1.
 */
int dedup_record(struct queue *q, const unsigned char key[DEDUP_KEY_LEN], double window,
    double now, const char *event_id);

/* Forget the first sightings that are window seconds old or more. 0 / -1. */
int dedup_prune(struct queue *q, double now, double window);

#endif
