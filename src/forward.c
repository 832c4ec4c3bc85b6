/*
 * forward: requests and answers of the forwarding providers (forward.h).
 *
 * What notification-controller's generic and generic-hmac providers send,
 * and so what a receiver written for them expects: a POST of the event JSON
 * with Content-Type: application/json, Gotk-Component: <reportingController>,
 * the Secret's headers, and for generic-hmac X-Signature: sha256=<hex>,
 * the HMAC-SHA256 of the exact body keyed with the Secret's token bytes.
 * fluxrelay forwards the bytes it received, so a receiver sees the event as
 * the controller wrote it and a signature over exactly those bytes.
 */
#include "config.h"
#include "forward.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

int
forward_sign(const unsigned char *key, size_t keylen, const void *body, size_t len,
    char out[FORWARD_SIGNATURE_SIZE])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char mac[32];
	out[0] = '\0';
	if (gnutls_hmac_fast(GNUTLS_MAC_SHA256, key, keylen, body, len, mac) < 0)
		return -1;
	memcpy(out, "sha256=", 7);
	for (size_t i = 0; i < sizeof(mac); i++) {
		out[7 + 2 * i] = hex[mac[i] >> 4];
		out[7 + 2 * i + 1] = hex[mac[i] & 15];
	}
	out[FORWARD_SIGNATURE_SIZE - 1] = '\0';
	return 0;
}

char **
forward_headers(const struct conf_provider *p, const char *component, const void *body,
    size_t len)
{
	if (!conf_provider_forwards(p))
		return NULL;
	char **h = util_calloc(p->nheaders + 4, sizeof(*h));
	size_t n = 0;
	h[n++] = util_strdup("Content-Type: application/json");
	if (component != NULL && component[0] != '\0')
		h[n++] = util_printf("Gotk-Component: %s", component);
	for (size_t i = 0; i < p->nheaders; i++)
		h[n++] = util_printf("%s: %s", p->headers[i].name, p->headers[i].value);
	if (p->type == CONF_PROVIDER_GENERIC_HMAC) {
		char sig[FORWARD_SIGNATURE_SIZE];
		if (p->hmac_key == NULL ||
		    forward_sign(p->hmac_key, p->hmac_key_len, body, len, sig) < 0) {
			forward_headers_free(h);
			return NULL;
		}
		h[n++] = util_printf("X-Signature: %s", sig);
	}
	return h;
}

void
forward_headers_free(char **headers)
{
	slack_secrets_free(headers);   /* the same: wipe each line, free */
}

void
forward_classify(const struct slack_response *resp, bool ratelimit_reset, time_t now,
    struct slack_result *out, bool *duplicate)
{
	*duplicate = false;
	if (resp->transport_error == 0 && resp->status == 429 && ratelimit_reset) {
		memset(out, 0, sizeof(*out));
		out->outcome = SLACK_DELIVERED;
		*duplicate = true;
		return;
	}
	/* Everything else is what a webhook's answer means: 2xx with any body
	 * delivered, 429 waits, 5xx and 408 transient, the rest permanent. */
	slack_classify(CONF_PROVIDER_SLACK, resp, now, out);
	out->oversize = 0;
}

static int
forward_secret_cmp(const void *a, const void *b)
{
	size_t la = strlen(*(char *const *)a), lb = strlen(*(char *const *)b);
	return la < lb ? 1 : la > lb ? -1 : 0;
}

char **
forward_secrets(const struct conf_provider *p)
{
	if (p == NULL)
		return NULL;
	char **base = slack_secrets(p);   /* the address, as a webhook URL */
	size_t n = 0;
	while (base != NULL && base[n] != NULL)
		n++;
	char **v = util_calloc(n + p->nheaders + 2, sizeof(*v));
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		v[k++] = base[i];
	free(base);
	for (size_t i = 0; i < p->nheaders; i++)
		if (p->headers[i].value[0] != '\0')
			v[k++] = util_strdup(p->headers[i].value);
	if (p->hmac_key != NULL && p->hmac_key_len > 0 &&
	    memchr(p->hmac_key, '\0', p->hmac_key_len) == NULL)
		v[k++] = util_strndup((const char *)p->hmac_key, p->hmac_key_len);
	if (k == 0) {
		free(v);
		return NULL;
	}
	qsort(v, k, sizeof(*v), forward_secret_cmp);
	return v;
}
