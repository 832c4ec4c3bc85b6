/*
 * dedup: the dedup key of SPEC §7 and the window decision.
 *
 * Key = SHA-256 of an unambiguous serialization (see dedup_key); the format is
 * versioned by a leading tag because keys are persisted with the queue and
 * must stay stable across releases. dedup_key/dedup_normalize are pure and
 * callable from any thread.
 *
 * The window: the first sighting of each key is a row of the queue's dedup
 * table, looked up by its primary key in the writer's open transaction, so
 * sightings earlier in the same batch (not committed yet) count too, and a
 * batch that rolls back leaves none. No copy in memory (what a lookup costs:
 * bench/README.md, "Dedup in the writer").
 */
#include "dedup.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define DEDUP_TAG "fluxrelay-dedup-v1"
#define DEDUP_TAG_CLUSTER "fluxrelay-dedup-v1-cluster"

/* ---- key ---------------------------------------------------------------- */

static void
dedup_put_u64(unsigned char *dst, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		dst[i] = (unsigned char)(v & 0xff);
		v >>= 8;
	}
}

/* Append s ("" for NULL) as a 64-bit big-endian length and its bytes. */
static void
dedup_put_field(struct util_buf *b, const char *s)
{
	unsigned char len[8];
	size_t n;

	if (s == NULL)
		s = "";
	n = strlen(s);

	dedup_put_u64(len, n);
	util_buf_append(b, (const char *)len, sizeof(len));
	util_buf_append(b, s, n);
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
dedup_normalize_into(struct util_buf *b, const char *message)
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
		util_buf_append(b, message + copied, i - copied);
		util_buf_append(b, ph, sizeof(ph) - 1);
		i += dl;
		copied = i;
	}
	util_buf_append(b, message + copied, n - copied);
}

char *
dedup_normalize(const char *message)
{
	struct util_buf b = { 0 };

	dedup_normalize_into(&b, message);
	return b.data != NULL ? b.data : util_strdup("");
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
	struct util_buf b = { 0 };

	/* An event from a client (auth.clients) has its cluster in the key,
	 * under a tag of its own; without one the key is what it always was,
	 * so the windows stored before clients existed still hold. */
	if (ev->cluster != NULL && ev->cluster[0] != '\0') {
		util_buf_append(&b, DEDUP_TAG_CLUSTER, sizeof(DEDUP_TAG_CLUSTER));
		dedup_put_field(&b, ev->cluster);
	} else {
		util_buf_append(&b, DEDUP_TAG, sizeof(DEDUP_TAG));
	}
	dedup_put_field(&b, ev->kind);
	dedup_put_field(&b, ev->namespace);
	dedup_put_field(&b, ev->name);
	if (normalize_durations) {
		char len[8] = { 0 };
		size_t at = b.len;
		util_buf_append(&b, len, sizeof(len));
		dedup_normalize_into(&b, ev->message);
		dedup_put_u64((unsigned char *)b.data + at, b.len - at - sizeof(len));
	} else {
		dedup_put_field(&b, ev->message);
	}
	for (size_t i = 0; i < sizeof(metakeys) / sizeof(metakeys[0]); i++) {
		const char *v = event_meta_get(ev, metakeys[i]);
		char present = v != NULL;
		util_buf_append(&b, &present, 1);
		if (v != NULL)
			dedup_put_field(&b, v);
	}
	/* SHA-256 cannot fail once the library is loaded */
	(void)gnutls_hash_fast(GNUTLS_DIG_SHA256, b.data, b.len, out);
	util_buf_free(&b);
}

/* ---- window ------------------------------------------------------------ */

enum dedup_verdict
dedup_admit(struct queue *q, const unsigned char key[DEDUP_KEY_LEN], double window,
    double now, char event_id[UTIL_ID_SIZE])
{
	char first_id[UTIL_ID_SIZE];
	double first_seen = 0;

	if (!(window > 0))
		return DEDUP_NEW;
	switch (queue_dedup_get(q, key, DEDUP_KEY_LEN, &first_seen, first_id)) {
	case 1:
		break;
	case 0:
		return DEDUP_NEW;
	default:
		return DEDUP_ERROR;
	}
	if (!(now - first_seen < window))
		return DEDUP_NEW;
	memcpy(event_id, first_id, sizeof(first_id));
	return DEDUP_DUPLICATE;
}

int
dedup_record(struct queue *q, const unsigned char key[DEDUP_KEY_LEN], double window,
    double now, const char *event_id)
{
	if (!(window > 0))
		return 0;
	return queue_dedup_put(q, key, DEDUP_KEY_LEN, event_id, now, window);
}

int
dedup_prune(struct queue *q, double now, double window)
{
	/* Exactly the keys dedup_admit no longer calls duplicates, and older. */
	return queue_dedup_expire(q, now - window);
}
