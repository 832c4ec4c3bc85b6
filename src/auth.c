/*
 * auth: generic-hmac signatures and bearer tokens (fluxrelay(8), HTTP
 * INTERFACE). Pure; any thread. Every comparison of secret-derived bytes is constant-time; the only early
 * exits depend on the header's shape, which the client already knows.
 */
#include "auth.h"

#include <ctype.h>
#include <gnutls/crypto.h>
#include <string.h>
#include <strings.h>

#include "util.h"

static const struct {
	const char *name;
	gnutls_mac_algorithm_t mac;
	size_t len;
} auth_algs[] = {
	{ "sha1", GNUTLS_MAC_SHA1, 20 },
	{ "sha224", GNUTLS_MAC_SHA224, 28 },
	{ "sha256", GNUTLS_MAC_SHA256, 32 },
	{ "sha384", GNUTLS_MAC_SHA384, 48 },
	{ "sha512", GNUTLS_MAC_SHA512, 64 },
};

#define AUTH_NALGS (sizeof(auth_algs) / sizeof(auth_algs[0]))

/*
 * Parse one "alg=hex" item of n bytes (spaces around it allowed): its
 * algorithm's index and the bytes it gives into given[]. -1 when malformed,
 * an unknown algorithm or the wrong length for it.
 */
static int
auth_parse_item(const char *item, size_t n, unsigned char given[64])
{
	while (n > 0 && isspace((unsigned char)*item)) {
		item++;
		n--;
	}
	while (n > 0 && isspace((unsigned char)item[n - 1]))
		n--;
	const char *eq = memchr(item, '=', n);
	if (eq == NULL)
		return -1;
	size_t alen = (size_t)(eq - item);
	const char *hex = eq + 1;
	size_t hlen = n - alen - 1;
	for (size_t i = 0; i < AUTH_NALGS; i++) {
		if (strlen(auth_algs[i].name) != alen ||
		    strncasecmp(auth_algs[i].name, item, alen) != 0)
			continue;
		if (hlen != 2 * auth_algs[i].len || util_hex_decode(hex, auth_algs[i].len, given) < 0)
			return -1;
		return (int)i;
	}
	return -1;
}

enum auth_result
auth_check_hmac(const struct auth_key *keys, size_t nkeys, const char *header,
    const void *body, size_t len, struct auth_stats *st)
{
	struct auth_stats dummy;
	if (st == NULL)
		st = &dummy;
	st->key = -1;
	st->hmacs = 0;
	if (header == NULL || *header == '\0')
		return AUTH_MISSING;
	size_t items = 1;
	for (const char *p = header; *p != '\0'; p++)
		items += *p == ',';
	if (items > AUTH_MAX_SIGNATURES)
		return AUTH_TOO_MANY;
	if (nkeys > AUTH_MAX_KEYS)
		nkeys = AUTH_MAX_KEYS;

	/* The HMAC of the body per (key, algorithm), computed when first needed. */
	unsigned char digest[AUTH_MAX_KEYS][AUTH_NALGS][64];
	unsigned char have[AUTH_MAX_KEYS][AUTH_NALGS] = {{0}};
	int ok = 0;
	const char *p = header;
	/* Check every item against every key, not just up to the first match,
	 * so timing does not reveal which one verified. */
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		unsigned char given[64];
		int alg = auth_parse_item(p, n, given);
		for (size_t k = 0; alg >= 0 && k < nkeys; k++) {
			if (!have[k][alg]) {
				if (gnutls_hmac_fast(auth_algs[alg].mac, keys[k].data, keys[k].len, body,
				    len, digest[k][alg]) != 0)
					continue;
				have[k][alg] = 1;
				st->hmacs++;
			}
			int match = util_ct_equal(given, digest[k][alg], auth_algs[alg].len);
			if (match && st->key < 0)
				st->key = (int)k;
			ok |= match;
		}
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	return ok ? AUTH_OK : AUTH_INVALID;
}

/* The token of an "Authorization: Bearer <token>" header, trimmed: NULL when missing. */
static const char *
auth_bearer(const char *header, size_t *glen)
{
	if (header == NULL || *header == '\0')
		return NULL;
	while (isspace((unsigned char)*header))
		header++;
	if (strncasecmp(header, "Bearer", 6) != 0 || !isspace((unsigned char)header[6]))
		return NULL;
	const char *given = header + 7;
	while (isspace((unsigned char)*given))
		given++;
	*glen = strlen(given);
	while (*glen > 0 && isspace((unsigned char)given[*glen - 1]))
		(*glen)--;
	return given;
}

enum auth_result
auth_check_token(const char *token, const char *header)
{
	size_t glen;
	const char *given = auth_bearer(header, &glen);
	if (given == NULL)
		return AUTH_MISSING;
	/* Compare digests, so the comparison takes the same time whatever the
	 * lengths are. */
	unsigned char a[32], b[32];
	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, given, glen, a) != 0 ||
	    gnutls_hash_fast(GNUTLS_DIG_SHA256, token, strlen(token), b) != 0)
		return AUTH_INVALID;
	return util_ct_equal(a, b, sizeof(a)) ? AUTH_OK : AUTH_INVALID;
}

long
auth_find_token(const char *const *tokens, size_t n, const char *header, enum auth_result *res)
{
	size_t glen;
	const char *given = auth_bearer(header, &glen);
	long found = -1;
	*res = AUTH_MISSING;
	if (given == NULL)
		return -1;
	*res = AUTH_INVALID;
	unsigned char a[32], b[32];
	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, given, glen, a) != 0)
		return -1;
	/* Every token is compared, whichever matched: the time taken says
	 * nothing about which one did, or how far the list was read. */
	for (size_t i = 0; i < n; i++) {
		if (tokens[i] == NULL)
			continue;
		if (gnutls_hash_fast(GNUTLS_DIG_SHA256, tokens[i], strlen(tokens[i]), b) != 0)
			continue;
		int eq = util_ct_equal(a, b, sizeof(a));
		if (eq && found < 0)
			found = (long)i;
	}
	if (found >= 0)
		*res = AUTH_OK;
	return found;
}
