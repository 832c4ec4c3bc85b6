/*
 * dedup: the dedup key of SPEC §7 and the in-memory window index.
 *
 * Key = SHA-256 of an unambiguous serialization (see dedup_key); the format is
 * versioned by a leading tag because keys are persisted with the queue and
 * must stay stable across releases. dedup_key/dedup_normalize are pure and
 * callable from any thread.
 *
 * The index (owned by the queue writer thread, not thread-safe) is a chained
 * hash table over a pool of entries plus a binary min-heap on first_seen, so
 * check/put are O(1) and expire costs O(log n) per dropped entry no matter
 * how often it is called.
 */
#include "dedup.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define DEDUP_TAG "fluxrelay-dedup-v1"

/* ---- key ---------------------------------------------------------------- */

/* Append-only byte buffer that starts on the caller's stack. */
struct dedup_buf {
	unsigned char *p;
	size_t len, cap;
	unsigned char *stack;   /* initial storage; p != stack once grown */
};

static void
dedup_buf_put(struct dedup_buf *b, const void *data, size_t n)
{
	if (n == 0)
		return;
	if (b->len + n > b->cap) {
		size_t cap = b->cap * 2;
		while (cap < b->len + n)
			cap *= 2;
		if (b->p == b->stack) {
			unsigned char *q = util_malloc(cap);
			memcpy(q, b->p, b->len);
			b->p = q;
		} else {
			b->p = util_realloc(b->p, cap);
		}
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
}

static void
dedup_buf_release(struct dedup_buf *b)
{
	if (b->p != b->stack)
		free(b->p);
}

static void
dedup_put_u64(unsigned char *dst, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		dst[i] = (unsigned char)(v & 0xff);
		v >>= 8;
	}
}

static void
dedup_buf_field(struct dedup_buf *b, const char *s)
{
	unsigned char len[8];
	size_t n;

	if (s == NULL)
		s = "";
	n = strlen(s);

	dedup_put_u64(len, n);
	dedup_buf_put(b, len, sizeof(len));
	dedup_buf_put(b, s, n);
}

/* Letters, digits, '_' and any non-ASCII byte glue a duration into a word. */
static int
dedup_wordchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	    (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

static int
dedup_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/*
 * Length of the Go-style duration ("2.08s", "1m30s", "1h2m3s", "150ms",
 * "500µs", "10ns") starting at s[i], or 0 when there is none. A duration is a
 * sequence of number+unit components; the caller checks word boundaries.
 */
static size_t
dedup_duration_len(const unsigned char *s, size_t n, size_t i)
{
	size_t start = i;

	for (;;) {
		size_t d = i;
		while (i < n && dedup_digit(s[i]))
			i++;
		if (i == d)
			return 0;
		if (i < n && s[i] == '.') {
			d = ++i;
			while (i < n && dedup_digit(s[i]))
				i++;
			if (i == d)
				return 0;
		}
		if (i + 1 < n && s[i + 1] == 's' &&
		    (s[i] == 'n' || s[i] == 'u' || s[i] == 'm'))
			i += 2;
		else if (i + 2 < n && s[i + 2] == 's' &&
		    ((s[i] == 0xc2 && s[i + 1] == 0xb5) ||      /* U+00B5 micro sign */
		    (s[i] == 0xce && s[i + 1] == 0xbc)))        /* U+03BC mu */
			i += 3;
		else if (i < n && (s[i] == 's' || s[i] == 'm' || s[i] == 'h'))
			i++;
		else
			return 0;
		if (i >= n || !dedup_digit(s[i]))
			return i - start;
	}
}

/* Append message with durations replaced by DEDUP_DURATION_PLACEHOLDER. */
static void
dedup_normalize_into(struct dedup_buf *b, const char *message)
{
	static const char ph[] = DEDUP_DURATION_PLACEHOLDER;
	const unsigned char *s = (const unsigned char *)message;
	size_t n = strlen(message);
	size_t i = 0, copied = 0;

	while (i < n) {
		size_t dl;
		if (!dedup_digit(s[i]) ||
		    (i > 0 && (dedup_wordchar(s[i - 1]) || s[i - 1] == '.'))) {
			i++;
			continue;
		}
		dl = dedup_duration_len(s, n, i);
		if (dl == 0 || (i + dl < n && dedup_wordchar(s[i + dl]))) {
			/* not a duration: skip the rest of this run of digits */
			while (i < n && (dedup_digit(s[i]) || s[i] == '.'))
				i++;
			continue;
		}
		dedup_buf_put(b, s + copied, i - copied);
		dedup_buf_put(b, ph, sizeof(ph) - 1);
		i += dl;
		copied = i;
	}
	dedup_buf_put(b, s + copied, n - copied);
}

char *
dedup_normalize(const char *message)
{
	unsigned char stack[512];
	struct dedup_buf b = { stack, 0, sizeof(stack), stack };
	char *res;

	dedup_normalize_into(&b, message);
	res = util_strndup((const char *)b.p, b.len);
	dedup_buf_release(&b);
	return res;
}

/*
 * The hashed bytes: tag NUL, then kind, namespace ("" when absent), name and
 * message each as a 64-bit big-endian length plus bytes, then for revision,
 * originRevision and token a byte 0 (absent) or 1 followed by the value as a
 * length-prefixed field.
 */
void
dedup_key(const struct event *ev, bool normalize_durations,
    unsigned char out[DEDUP_KEY_LEN])
{
	static const char *const metakeys[] = { "revision", "originRevision", "token" };
	unsigned char stack[2048];
	struct dedup_buf b = { stack, 0, sizeof(stack), stack };

	dedup_buf_put(&b, DEDUP_TAG, sizeof(DEDUP_TAG));
	dedup_buf_field(&b, ev->kind);
	dedup_buf_field(&b, ev->namespace);
	dedup_buf_field(&b, ev->name);
	if (normalize_durations) {
		unsigned char len[8] = { 0 };
		size_t at = b.len;
		dedup_buf_put(&b, len, sizeof(len));
		dedup_normalize_into(&b, ev->message);
		dedup_put_u64(b.p + at, b.len - at - sizeof(len));
	} else {
		dedup_buf_field(&b, ev->message);
	}
	for (size_t i = 0; i < sizeof(metakeys) / sizeof(metakeys[0]); i++) {
		const char *v = event_meta_get(ev, metakeys[i]);
		unsigned char present = v != NULL;
		dedup_buf_put(&b, &present, 1);
		if (v != NULL)
			dedup_buf_field(&b, v);
	}
	/* SHA-256 cannot fail once the library is loaded */
	(void)gnutls_hash_fast(GNUTLS_DIG_SHA256, b.p, b.len, out);
	dedup_buf_release(&b);
}

/* ---- index -------------------------------------------------------------- */

#define DEDUP_NONE UINT32_MAX

struct dedup_entry {
	unsigned char key[DEDUP_KEY_LEN];
	double first_seen;
	uint32_t next;          /* bucket chain, or free list when unused */
	uint32_t heap_pos;      /* index in heap */
	char event_id[33];
};

struct dedup_index {
	struct dedup_entry *e;  /* pool */
	size_t ecap;
	uint32_t free_list;
	uint32_t *buckets;      /* heads of chains; power-of-two count */
	size_t nbuckets;
	uint32_t *heap;         /* entry indices, min-heap on first_seen */
	size_t count;           /* live entries == heap size */
};

/* Keys are SHA-256 output in production, but tests and callers may use any
 * bytes: fold all of them and mix so structured keys spread too. */
static size_t
dedup_hash(const unsigned char key[DEDUP_KEY_LEN])
{
	uint64_t h = 0, w;

	for (size_t i = 0; i < DEDUP_KEY_LEN; i += 8) {
		memcpy(&w, key + i, 8);
		h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
		h ^= h >> 31;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return (size_t)h;
}

struct dedup_index *
dedup_index_new(void)
{
	struct dedup_index *ix = util_calloc(1, sizeof(*ix));

	ix->nbuckets = 64;
	ix->buckets = util_malloc(ix->nbuckets * sizeof(*ix->buckets));
	memset(ix->buckets, 0xff, ix->nbuckets * sizeof(*ix->buckets));
	ix->free_list = DEDUP_NONE;
	return ix;
}

void
dedup_index_free(struct dedup_index *ix)
{
	if (ix == NULL)
		return;
	free(ix->e);
	free(ix->buckets);
	free(ix->heap);
	free(ix);
}

size_t
dedup_index_size(const struct dedup_index *ix)
{
	return ix->count;
}

static uint32_t
dedup_find(const struct dedup_index *ix, const unsigned char key[DEDUP_KEY_LEN])
{
	uint32_t i = ix->buckets[dedup_hash(key) & (ix->nbuckets - 1)];

	while (i != DEDUP_NONE && memcmp(ix->e[i].key, key, DEDUP_KEY_LEN) != 0)
		i = ix->e[i].next;
	return i;
}

static void
dedup_heap_swap(struct dedup_index *ix, size_t a, size_t b)
{
	uint32_t t = ix->heap[a];

	ix->heap[a] = ix->heap[b];
	ix->heap[b] = t;
	ix->e[ix->heap[a]].heap_pos = (uint32_t)a;
	ix->e[ix->heap[b]].heap_pos = (uint32_t)b;
}

static double
dedup_heap_val(const struct dedup_index *ix, size_t pos)
{
	return ix->e[ix->heap[pos]].first_seen;
}

static void
dedup_heap_up(struct dedup_index *ix, size_t pos)
{
	while (pos > 0) {
		size_t parent = (pos - 1) / 2;
		if (dedup_heap_val(ix, parent) <= dedup_heap_val(ix, pos))
			break;
		dedup_heap_swap(ix, parent, pos);
		pos = parent;
	}
}

static void
dedup_heap_down(struct dedup_index *ix, size_t pos)
{
	for (;;) {
		size_t l = 2 * pos + 1, r = l + 1, m = pos;
		if (l < ix->count && dedup_heap_val(ix, l) < dedup_heap_val(ix, m))
			m = l;
		if (r < ix->count && dedup_heap_val(ix, r) < dedup_heap_val(ix, m))
			m = r;
		if (m == pos)
			return;
		dedup_heap_swap(ix, pos, m);
		pos = m;
	}
}

static void
dedup_rehash(struct dedup_index *ix, size_t nbuckets)
{
	free(ix->buckets);
	ix->nbuckets = nbuckets;
	ix->buckets = util_malloc(nbuckets * sizeof(*ix->buckets));
	memset(ix->buckets, 0xff, nbuckets * sizeof(*ix->buckets));
	/* every live entry is in the heap */
	for (size_t h = 0; h < ix->count; h++) {
		uint32_t i = ix->heap[h];
		size_t b = dedup_hash(ix->e[i].key) & (nbuckets - 1);
		ix->e[i].next = ix->buckets[b];
		ix->buckets[b] = i;
	}
}

static void
dedup_set_id(struct dedup_entry *e, const char *event_id)
{
	size_t n = event_id != NULL ? strnlen(event_id, sizeof(e->event_id) - 1) : 0;

	memcpy(e->event_id, event_id != NULL ? event_id : "", n);
	e->event_id[n] = '\0';
}

int
dedup_index_check(struct dedup_index *ix, const unsigned char key[DEDUP_KEY_LEN],
    double now, double window, char event_id[33])
{
	uint32_t i = dedup_find(ix, key);

	if (i == DEDUP_NONE || !(now - ix->e[i].first_seen < window))
		return 0;
	if (event_id != NULL)
		memcpy(event_id, ix->e[i].event_id, sizeof(ix->e[i].event_id));
	return 1;
}

void
dedup_index_put(struct dedup_index *ix, const unsigned char key[DEDUP_KEY_LEN],
    double first_seen, const char *event_id)
{
	uint32_t i = dedup_find(ix, key);
	size_t b;

	if (i != DEDUP_NONE) {
		/* a new first sighting of a key whose window ran out */
		double old = ix->e[i].first_seen;
		ix->e[i].first_seen = first_seen;
		dedup_set_id(&ix->e[i], event_id);
		if (first_seen < old)
			dedup_heap_up(ix, ix->e[i].heap_pos);
		else
			dedup_heap_down(ix, ix->e[i].heap_pos);
		return;
	}

	if (ix->count + 1 > ix->nbuckets - ix->nbuckets / 4)
		dedup_rehash(ix, ix->nbuckets * 2);
	if (ix->free_list != DEDUP_NONE) {
		i = ix->free_list;
		ix->free_list = ix->e[i].next;
	} else {
		if (ix->count == ix->ecap) {
			ix->ecap = ix->ecap ? ix->ecap * 2 : 64;
			ix->e = util_realloc(ix->e, ix->ecap * sizeof(*ix->e));
			ix->heap = util_realloc(ix->heap, ix->ecap * sizeof(*ix->heap));
		}
		/* with an empty free list, the pool is dense: count == used slots */
		i = (uint32_t)ix->count;
	}
	memcpy(ix->e[i].key, key, DEDUP_KEY_LEN);
	ix->e[i].first_seen = first_seen;
	dedup_set_id(&ix->e[i], event_id);
	b = dedup_hash(key) & (ix->nbuckets - 1);
	ix->e[i].next = ix->buckets[b];
	ix->buckets[b] = i;
	ix->heap[ix->count] = i;
	ix->e[i].heap_pos = (uint32_t)ix->count;
	ix->count++;
	dedup_heap_up(ix, ix->count - 1);
}

/* Unlink entry i from its chain and return it to the free list. */
static void
dedup_remove(struct dedup_index *ix, uint32_t i)
{
	uint32_t *pp = &ix->buckets[dedup_hash(ix->e[i].key) & (ix->nbuckets - 1)];

	while (*pp != i)
		pp = &ix->e[*pp].next;
	*pp = ix->e[i].next;
	ix->e[i].next = ix->free_list;
	ix->free_list = i;
}

void
dedup_index_expire(struct dedup_index *ix, double now, double window)
{
	/* expired exactly when check would no longer call it a duplicate */
	while (ix->count > 0 && !(now - dedup_heap_val(ix, 0) < window)) {
		uint32_t i = ix->heap[0];
		dedup_heap_swap(ix, 0, ix->count - 1);
		ix->count--;
		dedup_heap_down(ix, 0);
		dedup_remove(ix, i);
	}
}
