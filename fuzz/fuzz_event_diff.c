/*
 * fuzz_event_diff: differential libFuzzer harness for the event parser. For
 * every input it runs the two parsers behind event_parse() and event_parse()
 * itself, and abort()s when
 *   - event_parse_fast() accepts a body that event_parse_reference() (jansson)
 *     rejects, or builds an event that differs from the reference's in any
 *     field, metadata key, value or origin;
 *   - event_parse() differs from the reference: another accept/reject
 *     decision, another event, or on rejection another err or field text
 *     (compared byte for byte, with the same buffer sizes).
 * The fast path giving up on a body the reference accepts is allowed (it is
 * conservative by design); how often that happens is printed at exit.
 * Input: an HTTP request body, as is (seeds: tests/fixtures/events/ and
 * fuzz/corpus/event/). Single-threaded; built and run by `make fuzz-diff`
 * (fuzz/fuzz.mk, fuzz/README.md).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "event_internal.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Counters for the exit report; libFuzzer runs inputs on one thread: no lock. */
static struct {
	unsigned long inputs;     /* bodies seen */
	unsigned long accepted;   /* accepted by the reference */
	unsigned long fast;       /* of those, handled by the fast path */
} fuzz_event_diff_stats;

static void
fuzz_event_diff_report(void)
{
	fprintf(stderr, "fuzz_event_diff: %lu inputs, %lu accepted by the reference, "
	    "%lu of them by the fast path, %lu left to jansson\n",
	    fuzz_event_diff_stats.inputs, fuzz_event_diff_stats.accepted,
	    fuzz_event_diff_stats.fast,
	    fuzz_event_diff_stats.accepted - fuzz_event_diff_stats.fast);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	atexit(fuzz_event_diff_report);
	return 0;
}

static void
fuzz_event_diff_fail(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_event_diff: divergence: %s%s%s\n", what,
	    detail != NULL ? ": " : "", detail != NULL ? detail : "");
	abort();
}

/* Strings equal, NULL only equal to NULL. */
static int
fuzz_event_diff_streq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/* The string field of row f in ev. */
static const char *
fuzz_event_diff_field(const struct event *ev, const struct event_field *f)
{
	return *(char *const *)(const void *)((const char *)ev + f->offset);
}

/* abort() unless a and b hold the same event, field by field (every string
 * field of event_fields[], so a new field is compared without an edit here). */
static void
fuzz_event_diff_same(const char *what, const struct event *a, const struct event *b)
{
	for (size_t i = 0; i < event_nfields; i++)
		if (event_fields[i].type == EVENT_FIELD_STRING &&
		    !fuzz_event_diff_streq(fuzz_event_diff_field(a, &event_fields[i]),
		    fuzz_event_diff_field(b, &event_fields[i])))
			fuzz_event_diff_fail(what, event_fields[i].path);
	if (a->severity != b->severity)
		fuzz_event_diff_fail(what, "severity");
	if (!fuzz_event_diff_streq(a->severity_text, b->severity_text))
		fuzz_event_diff_fail(what, "severity_text");
	if (a->has_timestamp != b->has_timestamp || a->timestamp != b->timestamp ||
	    !fuzz_event_diff_streq(a->timestamp_text, b->timestamp_text))
		fuzz_event_diff_fail(what, "timestamp");
	if (a->nmeta != b->nmeta || (a->meta == NULL) != (b->meta == NULL))
		fuzz_event_diff_fail(what, "number of metadata entries");
	for (size_t i = 0; i < a->nmeta; i++) {
		if (!fuzz_event_diff_streq(a->meta[i].key, b->meta[i].key))
			fuzz_event_diff_fail(what, "metadata key");
		if (!fuzz_event_diff_streq(a->meta[i].value, b->meta[i].value))
			fuzz_event_diff_fail(what, "metadata value");
		if (a->meta[i].origin != b->meta[i].origin)
			fuzz_event_diff_fail(what, "metadata origin");
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* the sizes http.c uses, so its truncation paths run */
	char err[512], field[256], rerr[512], rfield[256];
	const char *buf = (const char *)data;   /* exactly size bytes: ASan sees overreads */
	struct event *ref, *fast, *ev;

	fuzz_event_diff_stats.inputs++;
	ref = event_parse_reference(buf, size, rerr, sizeof(rerr), rfield, sizeof(rfield));
	fast = event_parse_fast(buf, size);
	ev = event_parse(buf, size, err, sizeof(err), field, sizeof(field));

	if (ref == NULL) {
		if (fast != NULL)
			fuzz_event_diff_fail("fast path accepted what the reference rejects", rerr);
		if (ev != NULL)
			fuzz_event_diff_fail("event_parse accepted what the reference rejects", rerr);
		if (strcmp(err, rerr) != 0)
			fuzz_event_diff_fail("event_parse err differs", err);
		if (strcmp(field, rfield) != 0)
			fuzz_event_diff_fail("event_parse field differs", field);
	} else {
		fuzz_event_diff_stats.accepted++;
		if (ev == NULL)
			fuzz_event_diff_fail("event_parse rejected what the reference accepts", err);
		fuzz_event_diff_same("event_parse vs reference", ev, ref);
		if (fast != NULL) {
			fuzz_event_diff_stats.fast++;
			fuzz_event_diff_same("fast path vs reference", fast, ref);
		}
		if (err[0] != '\0' || field[0] != '\0')
			fuzz_event_diff_fail("event_parse left an error on success", err);
	}
	event_free(ref);
	event_free(fast);
	event_free(ev);
	return 0;
}
