/*
 * dedup: the dedup key of SPEC §7 and the in-memory window index. The index is
 * owned by the queue writer thread (which persists keys in the same
 * transaction as the deliveries they admit); it is not thread-safe.
 */
#ifndef FLUXRELAY_DEDUP_H
#define FLUXRELAY_DEDUP_H

#include <stdbool.h>
#include <stddef.h>

#include "event.h"

#define DEDUP_KEY_LEN 32

/* SHA-256 over kind, namespace, name, message (durations normalized when asked),
 * and metadata revision, originRevision, token when present. */
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

struct dedup_index;
struct dedup_index *dedup_index_new(void);
void dedup_index_free(struct dedup_index *ix);
/*
 * Look a key up: returns 1 and copies the first event's id into event_id when
 * the key was first seen less than window seconds before now; else 0.
 */
int dedup_index_check(struct dedup_index *ix, const unsigned char key[DEDUP_KEY_LEN],
    double now, double window, char event_id[33]);
/* Record a first sighting (replaces an existing entry for the key: call it
 * only when check said 0, i.e. the old window ran out). event_id is copied
 * (at most 32 characters). */
void dedup_index_put(struct dedup_index *ix, const unsigned char key[DEDUP_KEY_LEN],
    double first_seen, const char *event_id);
/* Drop entries whose window has run out (now - first_seen >= window).
 * O(log n) per dropped entry; cheap enough to call per event. */
void dedup_index_expire(struct dedup_index *ix, double now, double window);
size_t dedup_index_size(const struct dedup_index *ix);

#endif
