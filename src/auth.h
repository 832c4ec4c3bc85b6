/*
 * auth: request authentication (fluxrelay(8), HTTP INTERFACE): generic-hmac
 * signatures and bearer tokens, compared in constant time. Pure; any thread.
 */
#ifndef FLUXRELAY_AUTH_H
#define FLUXRELAY_AUTH_H

#include <stddef.h>

enum auth_result { AUTH_OK, AUTH_MISSING, AUTH_INVALID, AUTH_TOO_MANY };

/* At most this many comma-separated items in X-Signature (more: AUTH_TOO_MANY). */
#define AUTH_MAX_SIGNATURES 16
/* Keys one auth_check_hmac call accepts: current and previous, each with its
 * newline variant (conf.h). */
#define AUTH_MAX_KEYS 4

struct auth_key {
	const unsigned char *data;
	size_t len;
};

/* What one auth_check_hmac call did. */
struct auth_stats {
	int key;            /* index of the first key a signature verified with, else -1 */
	unsigned hmacs;     /* HMACs computed over the body */
};

/*
 * Verify "X-Signature: alg=hex[, alg=hex...]" (NULL header = missing) over the
 * exact body bytes against keys[0..nkeys) (nkeys <= AUTH_MAX_KEYS): any one
 * item that verifies with any one key passes. A header of more than
 * AUTH_MAX_SIGNATURES items is AUTH_TOO_MANY before any HMAC is computed.
 * Each (key, algorithm) HMAC is computed at most once, and only for an
 * algorithm some well-formed item names, so a hostile header costs at most
 * nkeys x 5 passes over the body. st (may be NULL) receives what was done.
 */
enum auth_result auth_check_hmac(const struct auth_key *keys, size_t nkeys,
    const char *header, const void *body, size_t len, struct auth_stats *st);

/* Verify "Authorization: Bearer <token>" (NULL header = missing). */
enum auth_result auth_check_token(const char *token, const char *header);

/*
 * Which of tokens[0..n) (NULL entries skipped) "Authorization: Bearer
 * <token>" carries (NULL header = missing): every token is compared, in
 * constant time, whatever matched before. Returns the index of the first that
 * matches, else -1; *res gets AUTH_OK, AUTH_MISSING (no bearer token in the
 * header) or AUTH_INVALID (one that matches none).
 */
long auth_find_token(const char *const *tokens, size_t n, const char *header,
    enum auth_result *res);

#endif
