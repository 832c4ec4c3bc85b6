/*
 * forward: the requests of the forwarding providers generic and generic-hmac
 * (fluxrelay.conf(5), FORWARDING PROVIDERS): the event's original bytes,
 * POSTed with notification-controller's headers and, for generic-hmac, its
 * signature; and the classification of the receiver's answer. Pure: no I/O,
 * no logging; any thread (the delivery thread and `fluxrelay match`).
 */
#ifndef FLUXRELAY_FORWARD_H
#define FLUXRELAY_FORWARD_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "conf.h"
#include "slack.h"

/* "sha256=" + 64 lowercase hex digits + NUL. */
#define FORWARD_SIGNATURE_SIZE (7 + 64 + 1)

/*
 * The X-Signature value notification-controller's generic-hmac provider
 * sends: "sha256=<lowercase hex HMAC-SHA256 of the exact body, keyed with
 * the key's bytes>". 0, or -1 (GnuTLS failure) with out set to "".
 */
int forward_sign(const unsigned char *key, size_t keylen, const void *body, size_t len,
    char out[FORWARD_SIGNATURE_SIZE]);

/*
 * The header lines ("Name: value") of one forwarded request, in the order
 * they are sent: Content-Type: application/json, Gotk-Component: <component>
 * (when component is non-empty; notification-controller sends the event's
 * reportingController there), the provider's headers in configuration
 * order, and for generic-hmac X-Signature over body[0..len). A new
 * NULL-terminated array (free with forward_headers_free, which wipes the
 * lines: header values may be credentials); NULL when p does not forward or
 * the signature cannot be computed.
 */
char **forward_headers(const struct conf_provider *p, const char *component, const void *body,
    size_t len);
void forward_headers_free(char **headers);

/*
 * Classify a receiver's answer:
 *   2xx                                      SLACK_DELIVERED
 *   429 with an X-RateLimit-Reset header     SLACK_DELIVERED, *duplicate = true:
 *       notification-controller's rate limiter refusing a duplicate (its
 *       429s always carry that header); retrying would never deliver it
 *   other 429                                SLACK_RATE_LIMITED (Retry-After, seconds
 *                                            or HTTP date; 1 s when absent)
 *   5xx, 408, no answer (timeout, connection, DNS, TLS)   SLACK_TRANSIENT
 *   other 4xx, 3xx, 1xx                      SLACK_PERMANENT
 * The error text is as slack_classify writes it ("HTTP 404 <body>", never
 * the address; resp->secrets redacted); oversize is always 0 (a forwarded
 * request carries one event).
 */
void forward_classify(const struct slack_response *resp, bool ratelimit_reset, time_t now,
    struct slack_result *out, bool *duplicate);

/*
 * What an error text must not show for a forwarding provider: its address
 * and the address's path, query and longer path segments (as slack_secrets
 * does for a webhook), every header value, and the HMAC key when it is text.
 * Longest first; free with slack_secrets_free. NULL when there is none.
 */
char **forward_secrets(const struct conf_provider *p);

#endif
