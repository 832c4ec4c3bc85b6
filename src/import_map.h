/*
 * import_map: Flux notification-controller manifests (Alert, Provider, Secret)
 * -> the text of a fluxrelay.conf, keeping Flux's matching semantics
 * (SPEC §14). What cannot be carried over is reported as a warning and
 * repeated as a comment in the output beside the entry it concerns.
 *
 * Pure: no I/O and no logging. The caller reads the manifests, writes the
 * secret files this returns and the config text. Callable from any thread.
 */
#ifndef FLUXRELAY_IMPORT_MAP_H
#define FLUXRELAY_IMPORT_MAP_H

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

#define IMPORT_MAP_EXIT_DATAERR 65   /* EX_DATAERR: invalid YAML */
#define IMPORT_MAP_EXIT_NOTHING 1    /* valid input, but no alert could be imported */

struct import_map_input {
	const char *name;     /* as shown in messages and in the header ("<stdin>" for -) */
	const char *data;
	size_t len;
};

/* A secret value the caller writes to secrets_dir/file, mode 0600, byte for byte. */
struct import_map_secret {
	char *file;           /* a plain file name: no '/', never "." or ".." */
	unsigned char *data;
	size_t len;
};

struct import_map_result {
	char *config;         /* fluxrelay.conf text; NULL unless the status is 0 */
	char *messages;       /* one '\n'-terminated line per error, warning or note; "" when none */
	struct import_map_secret *secrets;   /* only when a secrets_dir was given */
	size_t nsecrets;
	size_t nproviders, nalerts;          /* imported */
	size_t nwarnings;
};

/*
 * Convert the manifests. secrets_dir: NULL to reference secrets as *_env
 * variables (listed in the header comment), else the absolute directory the
 * caller will write r->secrets into (referenced as *_file; it must not
 * contain "${", which the config loader would expand). Fills *r (zeroed by
 * this function; free with import_map_result_free) and returns 0 when at
 * least one alert was imported, IMPORT_MAP_EXIT_DATAERR when an input is not
 * valid YAML (messages: "NAME:LINE: problem"), IMPORT_MAP_EXIT_NOTHING when
 * no alert could be imported.
 */
int import_map_convert(const struct import_map_input *in, size_t nin, const char *secrets_dir,
    struct import_map_result *r);

/* Accepts a zeroed result; secrets are wiped before they are freed. */
void import_map_result_free(struct import_map_result *r);

/* ---- helpers, exposed for the unit tests ---- */

/*
 * A Go duration (time.ParseDuration: "15s", "1m30s", "1.5h", "500ms", "0",
 * units ns us µs ms s m h, an optional sign) -> nanoseconds. 0 / -1.
 */
int import_map_duration(const char *s, long long *ns);

/* Nanoseconds as decimal seconds without trailing zeros: "90", "1.5", "0.000001". New string. */
char *import_map_seconds(long long ns);

/*
 * Append s as a libconfig string literal: quotes, and \\ \" \n \r \t \f and
 * \xNN for other control characters; other bytes (UTF-8) as they are.
 */
void import_map_conf_string(struct util_buf *b, const char *s);

/* conf's rule for provider and alert names: letters, digits, '-', '_', '.'; not empty. */
bool import_map_name_ok(const char *s);

/* s with every byte the name rule rejects replaced by '-' ("unnamed" when empty). New string. */
char *import_map_name_clean(const char *s);

/* libconfig's rule for a group member's name: [A-Za-z*][-A-Za-z0-9_*]*. */
bool import_map_setting_name_ok(const char *s);

/* An environment variable name for a provider's secret: FLUXRELAY_<NAME>_<KEY>, upper case. New string. */
char *import_map_env_name(const char *provider, const char *key);

/* s as an fnmatch pattern matching exactly s: * ? [ ] \ escaped with '\'. New string. */
char *import_map_glob_exact(const char *s);

/*
 * A Go (RE2) regular expression as a PCRE2 one with the same matches: Go's
 * '$' outside multi-line mode matches only at the very end of the text, PCRE2's
 * also before a final newline, so it becomes \z. *changed tells whether
 * anything was rewritten. New string.
 */
char *import_map_regex(const char *re, bool *changed);

#endif
