/*
 * event_internal: what the event module's two parsers share (event.c, the
 * jansson reference; event_fast.c, the single-pass fast path), and the two
 * parsers themselves for the tests and fuzzers that compare them
 * (tests/unit/test_event.c, fuzz/fuzz_event_diff.c). Not part of event's
 * interface: only event_parse() (event.h) is. Pure; any thread.
 *
 * Every field of struct event that comes from the body is one row of
 * event_fields[]: both parsers find, type-check and validate fields through
 * that table, and event_build() copies them by it. A new field is a member
 * of struct event plus a row.
 */
#ifndef FLUXRELAY_EVENT_INTERNAL_H
#define FLUXRELAY_EVENT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "event.h"

/* A borrowed slice of the body or of a decoded copy; p NULL when absent. */
struct event_str {
	const char *p;
	size_t n;
};

enum event_field_type {
	EVENT_FIELD_STRING,      /* a string, kept at offset */
	EVENT_FIELD_CHECKED,     /* must be a string when present; not kept */
	EVENT_FIELD_SEVERITY,    /* a severity name -> struct event.severity */
	EVENT_FIELD_TIMESTAMP,   /* RFC 3339 string or null -> has_timestamp, timestamp */
};

enum event_field_need {
	EVENT_FIELD_OPTIONAL,
	EVENT_FIELD_REQUIRED,    /* present ("" allowed) */
	EVENT_FIELD_NONEMPTY,    /* present and not "" */
};

struct event_field {
	bool involved;           /* a member of involvedObject, else of the event */
	const char *key;         /* the member's name */
	size_t keylen;
	const char *path;        /* the JSON path in messages and `field` */
	enum event_field_type type;
	enum event_field_need need;
	bool empty_if_absent;    /* EVENT_FIELD_STRING: "" when absent, else NULL */
	size_t offset;           /* EVENT_FIELD_STRING: offsetof(struct event, member) */
};

/* Rows of event_fields[], in the order the reference checks (and reports) them. */
extern const struct event_field event_fields[];
extern const size_t event_nfields;
/* Room for the rows in per-parse arrays (event.c asserts the table fits). */
#define EVENT_MAX_FIELDS 16

/* The fields of one body, before they are copied into the event. */
struct event_values {
	struct event_str str[EVENT_MAX_FIELDS];   /* by row; p NULL when absent */
	enum event_severity severity;
	bool has_ts;
	time_t ts;
};

/* One metadata entry before copying, borrowed from the parser that found it. */
struct event_mtmp {
	const char *key;        /* raw, NUL-terminated; normalized: a suffix of it */
	const char *value;
	size_t vlen;
	enum event_meta_origin origin;
	size_t order;           /* position in the JSON object, breaks ties */
};

/* Where a parser reports a rejection: both NULL (the fast path) for none. */
struct event_err {
	char *err;
	size_t errlen;
	char *field;
	size_t fieldlen;
};

/*
 * The checks the reference makes on each value (presence, a severity name,
 * an RFC 3339 date-time), for every row, with no message: 0 when all pass
 * (severity and timestamp then set in vals), else -1.
 */
int event_values_check(struct event_values *vals);

/*
 * The event of checked values and raw metadata mt[0..nmeta) (classified,
 * sorted and deduplicated here, in place), as ONE new block (event_free).
 */
struct event *event_assemble(const struct event_values *vals, struct event_mtmp *mt,
    size_t nmeta);

/*
 * The two parsers behind event_parse(), which tries the first and falls back
 * to the second. event_parse_reference() is the jansson parser: same contract
 * as event_parse(), and the source of every rejection and error message.
 * event_parse_fast() is the single-pass parser for the common case: a new
 * event identical to what the reference builds, or NULL whenever it does not
 * handle the body (invalid or merely unusual), with no message.
 */
struct event *event_parse_reference(const char *buf, size_t len, char *err,
    size_t errlen, char *field, size_t fieldlen);
struct event *event_parse_fast(const char *buf, size_t len);

#endif
