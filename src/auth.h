/*
 * auth: request authentication (SPEC §4): generic-hmac signatures and bearer
 * tokens, compared in constant time. Pure; any thread.
 */
#ifndef FLUXRELAY_AUTH_H
#define FLUXRELAY_AUTH_H

#include <stddef.h>

enum auth_result { AUTH_OK, AUTH_MISSING, AUTH_INVALID };

/*
 * Verify "X-Signature: alg=hex[, alg=hex...]" (NULL header = missing) over the
 * exact body bytes. Any one valid signature passes.
 */
enum auth_result auth_check_hmac(const unsigned char *key, size_t keylen,
    const char *header, const void *body, size_t len);

/* Verify "Authorization: Bearer <token>" (NULL header = missing). */
enum auth_result auth_check_token(const char *token, const char *header);

#endif
