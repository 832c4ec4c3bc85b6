/*
 * event: parse and validate one Flux event (notification-controller's JSON)
 * into an owned struct event, normalizing metadata keys: a single-pass parser
 * for the common case, jansson for everything else. Pure; callable from any
 * thread.
 */
#ifndef FLUXRELAY_EVENT_H
#define FLUXRELAY_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

enum event_severity {
	EVENT_TRACE = 0,
	EVENT_INFO = 1,
	EVENT_WARNING = 2,
	EVENT_ERROR = 3,
};

/* Where a normalized metadata key came from; decides precedence on a clash. */
enum event_meta_origin {
	EVENT_META_ANNOTATION,   /* "event.toolkit.fluxcd.io/k" */
	EVENT_META_PLAIN,        /* "k" as received (notification-controller strips prefixes) */
	EVENT_META_CONTROLLER,   /* "<api group>/k" */
};

struct event_kv {
	char *key;
	char *value;
	enum event_meta_origin origin;
};

struct event {
	char *kind;                 /* non-empty */
	char *name;                 /* non-empty */
	char *namespace;            /* NULL when absent */
	char *api_version;          /* NULL when absent */
	char *uid;                  /* NULL when absent */
	enum event_severity severity;
	/* severity as received, for templates' .severity: "warn" stays "warn"
	 * (severity is EVENT_WARNING). A static string; NULL in an event not
	 * built by event_parse, which then shows event_severity_name(). */
	const char *severity_text;
	char *message;              /* may be "" */
	char *reason;               /* "" when absent */
	bool has_timestamp;
	time_t timestamp;           /* valid when has_timestamp */
	/* The timestamp as received (templates' .timestamp), valid RFC 3339;
	 * NULL without one, or in an event not built by event_parse. */
	char *timestamp_text;
	char *reporting_controller; /* "" when absent */
	char *reporting_instance;   /* "" when absent */
	struct event_kv *meta;      /* normalized, sorted by key, unique keys */
	size_t nmeta;
	/* The sending client's name (auth.clients), "" when none: not part of
	 * the JSON and not owned. event_parse sets ""; the HTTP layer points it
	 * at the client's name in its configuration snapshot, the delivery
	 * thread at the stored row's cluster. Part of the dedup key and of the
	 * incident object key, matched by a source's cluster glob. */
	const char *cluster;
};

/* Maximum JSON nesting accepted (jansson's own limit is higher). */
#define EVENT_MAX_DEPTH 32

/*
 * Parse len bytes of JSON (need not be NUL-terminated). Returns a new event
 * (free with event_free) or NULL with a human message in err and the JSON
 * path of the offending field in field ("" when it concerns the whole body,
 * e.g. "involvedObject.kind", "metadata.revision"). The event and all its
 * strings are ONE allocation: never free or replace a field on its own.
 * Optional string fields must be strings when present (JSON null is accepted
 * only for timestamp); duplicate object keys are rejected. err and field are
 * always NUL-terminated valid UTF-8 (bad or cut bytes become '?').
 */
struct event *event_parse(const char *buf, size_t len, char *err, size_t errlen,
    char *field, size_t fieldlen);
void event_free(struct event *ev);

/* Value of a normalized metadata key, or NULL. */
const char *event_meta_get(const struct event *ev, const char *key);
/* 1 when a metadata key is used internally but never shown (token, checksum, digest). */
int event_meta_hidden(const char *key);

/* "trace"/"info"/"warning"/"error" and back ("warn" accepted); -1 when unknown. */
const char *event_severity_name(enum event_severity s);
int event_severity_parse(const char *s);

#endif
