/*
 * util: small allocation, string, time and file helpers shared by every module.
 * Allocation failures abort: a daemon that cannot allocate 100 bytes cannot do
 * anything useful, and checking every strdup would hide the real error paths.
 * Thread-safe: no state.
 */
#ifndef FLUXRELAY_UTIL_H
#define FLUXRELAY_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sysexits.h>

/*
 * Exit statuses (fluxrelay(8), EXIT STATUS): sysexits.h's where fluxrelay(8)
 * documents one (EX_CONFIG, EX_DATAERR); a usage error is 2, as for getopt
 * tools, not EX_USAGE (64).
 */
#define FLUXRELAY_EXIT_USAGE 2

void *util_malloc(size_t n);
void *util_calloc(size_t n, size_t size);
void *util_realloc(void *p, size_t n);
char *util_strdup(const char *s);          /* NULL in, NULL out */
char *util_strndup(const char *s, size_t n);
char *util_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *util_vprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

/* Growable string buffer; always NUL-terminated once anything is appended. */
struct util_buf {
	char *data;
	size_t len;
	size_t cap;
};
void util_buf_append(struct util_buf *b, const char *s, size_t n);
void util_buf_puts(struct util_buf *b, const char *s);
void util_buf_printf(struct util_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void util_buf_free(struct util_buf *b);
/* Append s as a JSON string literal (quotes included; control characters escaped). */
void util_buf_json_string(struct util_buf *b, const char *s);

/* Seconds since the epoch (wall clock, sub-second precision). */
double util_now(void);
/* Monotonic seconds, for timeouts and pacing. */
double util_mono(void);

/*
 * Read a whole file into a new NUL-terminated buffer (caller frees).
 * Returns NULL and fills err on failure, including for files larger than
 * UTIL_READ_MAX bytes.
 */
#define UTIL_READ_MAX (16 << 20)
char *util_read_file(const char *path, size_t *len, char *err, size_t errlen);

/*
 * Length of the UTF-8 sequence at s (n > 0 bytes available): 1..4 for a
 * well-formed sequence (RFC 3629, as jansson checks it: no overlongs, no
 * surrogates, nothing past U+10FFFF), 0 for an invalid or truncated one.
 */
size_t util_utf8_len(const unsigned char *s, size_t n);

/*
 * Length of the Slack escape entity at s ("&amp;" 5, "&lt;" or "&gt;" 4; n
 * bytes available), 0 when s does not start with one. Slack shows each as
 * one character.
 */
size_t util_entity_len(const char *s, size_t n);

/* The value of one hex digit (either case), or -1. */
int util_hex_digit(int c);
/*
 * Decode the 2 * n hex digits at hex into out[0..n); 0, or -1 at the first
 * character that is not a hex digit (out is then partly written).
 */
int util_hex_decode(const char *hex, size_t n, unsigned char *out);

/* Fill buf with n random bytes from the kernel; 0 / -1. */
int util_random(void *buf, size_t n);
/* A new random event id: 32 lowercase hex characters + NUL. */
/* An event id: 32 lowercase hex characters and the NUL. */
#define UTIL_ID_SIZE 33
void util_new_id(char out[UTIL_ID_SIZE]);

/* Constant-time comparison of equal-length buffers: 1 when equal. */
int util_ct_equal(const void *a, const void *b, size_t n);

/*
 * Redact a URL for logs: keep the scheme, host and first character of each
 * path segment ("https://hooks.slack.com/services/T…/B…/…"). Caller frees.
 */
char *util_redact_url(const char *url);

#endif
