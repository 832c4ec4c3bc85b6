/*
 * conf: libconfig file -> an owned, validated, immutable struct conf
 * (the settings: fluxrelay.conf(5)).
 * Every string is copied before config_destroy. Every problem in a file is
 * reported, each as "FILE:LINE: path: problem", sorted by line; path is
 * "listen.port", `provider "slack": rate`, `alert "errors": sources[0].kind`,
 * or `provider #2: ...` / `alert #2: ...` (counted from 1) for an entry
 * without a usable name. FILE is the path as given (or the @include'd file).
 * Pure apart from reading the config file, secret files and TLS PEM files
 * (parsed with GnuTLS: certificate chain, key, key matching the certificate,
 * client CA) and getenv; callable from any thread.
 *
 * Numeric bounds are listed in etc/fluxrelay.conf. Provider and alert names
 * contain only letters, digits, '-', '_' and '.'. include/exclude patterns
 * are validated with PCRE2_UTF: rules must compile them with PCRE2_UTF too.
 */
#ifndef FLUXRELAY_CONF_H
#define FLUXRELAY_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <sysexits.h>

/* The exit status for an invalid configuration (fluxrelay(8)): 78. */
#define CONF_EXIT_INVALID EX_CONFIG

enum conf_provider_type {
	CONF_PROVIDER_SLACK,
	CONF_PROVIDER_SLACK_BOT,
	CONF_PROVIDER_CONSOLE,
	CONF_PROVIDER_GENERIC,        /* forwards the event as received (SPEC: forwarding) */
	CONF_PROVIDER_GENERIC_HMAC,   /* the same, signed with X-Signature */
};

/* One custom header of a forwarding provider. */
struct conf_header {
	char *name;           /* an HTTP token; unique, case-insensitively */
	char *value;          /* no CR, LF or NUL; may be a secret (never logged) */
};

/* What an alert delivers (SPEC §12): every matching event, or incident transitions. */
enum conf_notify {
	CONF_NOTIFY_EVENTS,
	CONF_NOTIFY_CHANGES,
};

/* How a provider's messages are laid out (SPEC §9, §13). */
enum conf_format {
	CONF_FORMAT_ATTACHMENTS,   /* ["attachments"] legacy attachments */
	CONF_FORMAT_BLOCKS,        /* "blocks": Block Kit (slack_blocks.h) */
};

/* A compiled alert template (template.h). */
struct template;

struct conf_provider {
	char *name;
	enum conf_provider_type type;
	char *url;            /* slack: webhook URL; generic*: address (secret), else NULL */
	char *token;          /* slack-bot: bearer token (secret), else NULL */
	char *api_url;        /* slack-bot: ["https://slack.com/api"], no trailing '/' */
	char *channel;        /* NULL when unset */
	char *username;       /* NULL when unset */
	char *icon_emoji;     /* NULL when unset */
	char *icon_url;       /* NULL when unset */
	double rate;          /* messages/s per target [1.0]; 0 = unlimited */
	int burst;            /* [3] */
	int batch_max;        /* [10] */
	double timeout;       /* seconds per attempt [10] */
	char *proxy;          /* NULL = libcurl's environment proxies */
	char *ca_file;        /* NULL = system bundle (or CONF_SKIP_SECRETS); absolute path */
	int max_text;         /* [3000] */
	/* Threads and in-place updates (slack-bot only; true, or a thread_ttl, is
	 * an error on other types). */
	bool threads;         /* [false] */
	double thread_ttl;    /* seconds an events thread stays open between events [86400] */
	/* [false] Nothing new is sent to a suspended provider: rules drops its
	 * targets, so an alert whose providers are all suspended does not fire.
	 * Rows already queued for it (accepted before a reload) still deliver. */
	bool suspend;
	/* generic, generic-hmac: headers = { ... } or headers_file, in that order
	 * of the file; NULL when none. */
	struct conf_header *headers; size_t nheaders;
	/* generic-hmac: the signing key (secret), bytes exactly as given: a
	 * hmac_key_file is NOT stripped of its trailing newline, as Flux signs
	 * with a Secret's bytes as stored. NULL otherwise. */
	unsigned char *hmac_key; size_t hmac_key_len;
	enum conf_format format;   /* [CONF_FORMAT_ATTACHMENTS] */
};

/* generic and generic-hmac: the event is forwarded, not rendered, and never
 * coalesced (batch 1); they have no channel. */
static inline bool
conf_provider_forwards(const struct conf_provider *p)
{
	return p->type == CONF_PROVIDER_GENERIC || p->type == CONF_PROVIDER_GENERIC_HMAC;
}

struct conf_source {
	char *kind;           /* glob, required */
	char *name;           /* glob ["*"] */
	char *namespace;      /* glob ["*"] */
	char *cluster;        /* glob on the sending client's name (auth.clients); NULL = "*" */
};

struct conf_kv {
	char *key;
	char *value;
};

/* One of an alert's links (SPEC §13): two compiled templates. */
struct conf_link {
	struct template *text;   /* NULL when unset: the link shows its URL */
	struct template *url;    /* compiled with TEMPLATE_URL */
};

/* Most links an alert may have. */
#define CONF_MAX_LINKS 10

struct conf_alert {
	char *name;
	char **providers;     /* names, each defined */
	size_t *provider_idx; /* index into conf.providers, parallel to providers */
	size_t nproviders;
	/* bit (1 << enum event_severity) set for every severity that matches */
	unsigned severity_mask;
	struct conf_source *sources;
	size_t nsources;
	char **reasons;  size_t nreasons;   /* globs */
	char **include;  size_t ninclude;   /* PCRE2 patterns (validated) */
	char **exclude;  size_t nexclude;
	struct conf_kv *metadata; size_t nmetadata;   /* in file order */
	char *summary;        /* NULL when unset */
	char *channel;        /* NULL when unset: provider's channel */
	bool commit_status_updates;
	bool suspend;
	/* Incidents (notify = "changes"; the three below are accepted on any
	 * alert but used only with "changes"). */
	enum conf_notify notify;   /* [events] */
	double repeat_interval;    /* seconds between reminders; 0 = never [0] */
	double incident_ttl;       /* seconds without an event before closing silently [86400] */
	/* Globs on the reason of info events that close an incident: for
	 * notify = "changes" at least one (defaults: conf.c); for "events" as
	 * given, else NULL (unused). */
	char **recovery_reasons; size_t nrecovery_reasons;
	/* Templates (SPEC §13), compiled at load; NULL / 0 when unset (the
	 * default rendering). Immutable: any thread may render them. */
	struct template *title;
	struct template *text;
	struct conf_link *links; size_t nlinks;
	char *mention;        /* literal Slack mentions, space-separated; NULL when unset */
};

/*
 * One client of auth.clients: a name (the events' cluster), a token and/or an
 * HMAC key (with its rotation and newline variants, as the top-level keys).
 * With CONF_SKIP_SECRETS the secrets given by file or environment stay NULL.
 */
struct conf_client {
	char *name;
	char *token;                                    /* NULL when none */
	unsigned char *hmac_key; size_t hmac_key_len;   /* NULL when none */
	unsigned char *hmac_key_raw; size_t hmac_key_raw_len;
	unsigned char *hmac_key_previous; size_t hmac_key_previous_len;
	unsigned char *hmac_key_previous_raw; size_t hmac_key_previous_raw_len;
};

struct conf {
	char *path;           /* NULL for the built-in defaults */
	bool builtin;         /* true when no file was read */
	char *state_dir;
	struct {
		char *address;
		int port;
		long max_body;
		int max_connections;
		double timeout;
		/* NULL when unset (and under CONF_SKIP_SECRETS) */
		char *tls_cert_file, *tls_key_file, *tls_client_ca_file;
		/* The second, plain-HTTP listener for /metrics, /healthz and /readyz
		 * only: NULL and -1 when unset (both or neither). */
		char *metrics_address;
		int metrics_port;
	} listen;
	struct {
		unsigned char *hmac_key; size_t hmac_key_len;   /* NULL when unset */
		/* Also accepted while a rotation is under way; NULL when unset. */
		unsigned char *hmac_key_previous; size_t hmac_key_previous_len;
		/* A key read from a *_file whose bytes end in a newline: hmac_key*
		 * holds it without the trailing newlines, *_raw the bytes as stored
		 * (what Flux signs with when a Secret was made --from-file). Both
		 * verify. NULL when the file has no trailing newline or the key was
		 * given inline or by environment. */
		unsigned char *hmac_key_raw; size_t hmac_key_raw_len;
		unsigned char *hmac_key_previous_raw; size_t hmac_key_previous_raw_len;
		char *token;                                     /* NULL when unset */
		/* auth.clients in file order (names unique); NULL when none. */
		struct conf_client *clients; size_t nclients;
	} auth;
	struct {
		bool sync_full;   /* "full" [true] / "normal" */
		long max_pending;
		int max_attempts;
		double max_age;
		double backoff_initial;
		double backoff_max;
		double dead_max_age;  /* seconds a dead letter is kept [30 days]; 0 = forever */
	} queue;
	struct {
		double window;    /* 0 disables */
		bool normalize_durations;
	} dedup;
	struct {
		int level;        /* enum log_level */
		int format;       /* enum log_format */
	} log;
	struct conf_provider *providers; size_t nproviders;
	struct conf_alert *alerts;       size_t nalerts;
	/* What is valid but worth a word: "FILE:LINE: path: warning: text" lines,
	 * each ending in '\n'; NULL when none. */
	char *warnings;
};

/*
 * Whether events must authenticate: a top-level token or HMAC key, or any
 * auth.clients entry (fluxrelay.conf(5), AUTHENTICATION). Meaningful for a
 * conf loaded without CONF_SKIP_SECRETS (which leaves file secrets NULL).
 */
static inline bool
conf_auth_configured(const struct conf *c)
{
	return c->auth.hmac_key != NULL || c->auth.token != NULL || c->auth.nclients > 0;
}

/*
 * Load and validate a file. Returns a new conf (free with conf_free) or NULL
 * with *errors set to a new string of one "FILE:LINE: path: problem" line per
 * problem, each ending in '\n' (caller frees). A file that cannot be opened
 * is the single line "FILE: cannot open: <strerror>"; a libconfig syntax
 * error the single line "FILE:LINE: syntax error: <libconfig's text>" (just
 * "FILE:LINE: syntax error" when that text is libconfig's bare "syntax error").
 * Secret values never appear in *errors.
 */
struct conf *conf_load(const char *path, char **errors);

/*
 * conf_load with options. CONF_SKIP_SECRETS: secrets given as *_file or *_env,
 * and the files only the daemon reads (listen.tls_*_file, a provider's
 * ca_file and headers_file), are checked for form but neither ${VAR}-expanded
 * nor read (the fields stay NULL, nheaders counts the inline headers only),
 * for commands that serve and send nothing (`fluxrelay queue`, `match`,
 * `incidents`) and may run where the daemon's credentials are not, e.g.
 * without CREDENTIALS_DIRECTORY.
 */
#define CONF_SKIP_SECRETS 1u
struct conf *conf_load_opts(const char *path, unsigned flags, char **errors);

/*
 * The built-in defaults (fluxrelay.conf(5), BUILT-IN DEFAULTS): provider "console" (type console), alert
 * "all" (severity info and above, every source), builtin = true, path NULL,
 * state_dir $STATE_DIRECTORY, else "./fluxrelay-state" when not root, else
 * /var/lib/fluxrelay.
 */
struct conf *conf_default(void);

/* Accepts NULL. */
void conf_free(struct conf *c);

/* Index of the provider with this name, or -1. */
long conf_provider_find(const struct conf *c, const char *name);

const char *conf_provider_type_name(enum conf_provider_type t);

#endif
