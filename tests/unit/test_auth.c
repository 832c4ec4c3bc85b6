/* Unit tests for auth: HMAC signatures of every algorithm, lists, tokens. */
#include <check.h>
#include <gnutls/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"

static const unsigned char key[] = "s3cret-key";
static const char body[] = "{\"involvedObject\":{\"kind\":\"A\",\"name\":\"b\"}}";

static void
sign(gnutls_mac_algorithm_t mac, size_t n, const char *alg, char *out, size_t outlen)
{
	unsigned char d[64];
	ck_assert_int_eq(gnutls_hmac_fast(mac, key, sizeof(key) - 1, body, strlen(body), d), 0);
	int w = snprintf(out, outlen, "%s=", alg);
	for (size_t i = 0; i < n; i++)
		w += snprintf(out + w, outlen - (size_t)w, "%02x", d[i]);
}

static const struct {
	gnutls_mac_algorithm_t mac;
	size_t n;
	const char *alg;
} algs[] = {
	{ GNUTLS_MAC_SHA1, 20, "sha1" },
	{ GNUTLS_MAC_SHA224, 28, "sha224" },
	{ GNUTLS_MAC_SHA256, 32, "sha256" },
	{ GNUTLS_MAC_SHA384, 48, "sha384" },
	{ GNUTLS_MAC_SHA512, 64, "sha512" },
};

START_TEST(test_hmac_each_alg)
{
	char sig[200];
	sign(algs[_i].mac, algs[_i].n, algs[_i].alg, sig, sizeof(sig));
	ck_assert_int_eq(auth_check_hmac(key, sizeof(key) - 1, sig, body, strlen(body)), AUTH_OK);
	/* Same signature over a different body, or with another key, fails. */
	ck_assert_int_eq(auth_check_hmac(key, sizeof(key) - 1, sig, body, strlen(body) - 1),
	    AUTH_INVALID);
	ck_assert_int_eq(auth_check_hmac((const unsigned char *)"other", 5, sig, body, strlen(body)),
	    AUTH_INVALID);
	/* One flipped hex digit fails. */
	size_t last = strlen(sig) - 1;
	sig[last] = sig[last] == '0' ? '1' : '0';
	ck_assert_int_eq(auth_check_hmac(key, sizeof(key) - 1, sig, body, strlen(body)), AUTH_INVALID);
}
END_TEST

START_TEST(test_hmac_list_and_shapes)
{
	char good[200], list[600];
	sign(GNUTLS_MAC_SHA256, 32, "sha256", good, sizeof(good));
	snprintf(list, sizeof(list), "sha1=00, %s , sha512=zz", good);
	ck_assert_int_eq(auth_check_hmac(key, sizeof(key) - 1, list, body, strlen(body)), AUTH_OK);
	ck_assert_int_eq(auth_check_hmac(key, sizeof(key) - 1, NULL, body, strlen(body)), AUTH_MISSING);
	ck_assert_int_eq(auth_check_hmac(key, sizeof(key) - 1, "", body, strlen(body)), AUTH_MISSING);
	ck_assert_int_eq(auth_check_hmac(key, sizeof(key) - 1, "md5=abcd", body, strlen(body)),
	    AUTH_INVALID);
	ck_assert_int_eq(auth_check_hmac(key, sizeof(key) - 1, good + 7, body, strlen(body)),
	    AUTH_INVALID);   /* bare hex without "sha256=" */
	ck_assert_int_eq(auth_check_hmac(key, sizeof(key) - 1, "sha256=", body, strlen(body)),
	    AUTH_INVALID);
	/* Upper-case hex is the same bytes. */
	char upper[200];
	snprintf(upper, sizeof(upper), "%s", good);
	for (char *p = upper + 7; *p; p++)
		if (*p >= 'a' && *p <= 'f')
			*p = (char)(*p - 'a' + 'A');
	ck_assert_int_eq(auth_check_hmac(key, sizeof(key) - 1, upper, body, strlen(body)), AUTH_OK);
}
END_TEST

START_TEST(test_token)
{
	ck_assert_int_eq(auth_check_token("t0k", "Bearer t0k"), AUTH_OK);
	ck_assert_int_eq(auth_check_token("t0k", "bearer   t0k  "), AUTH_OK);
	ck_assert_int_eq(auth_check_token("t0k", "Bearer t0K"), AUTH_INVALID);
	ck_assert_int_eq(auth_check_token("t0k", "Bearer t0k0"), AUTH_INVALID);
	ck_assert_int_eq(auth_check_token("t0k", "Bearer "), AUTH_INVALID);
	ck_assert_int_eq(auth_check_token("t0k", "Basic dXNlcjpwdw=="), AUTH_MISSING);
	ck_assert_int_eq(auth_check_token("t0k", NULL), AUTH_MISSING);
	ck_assert_int_eq(auth_check_token("t0k", "t0k"), AUTH_MISSING);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("auth");
	TCase *tc = tcase_create("auth");
	tcase_add_loop_test(tc, test_hmac_each_alg, 0, sizeof(algs) / sizeof(algs[0]));
	tcase_add_test(tc, test_hmac_list_and_shapes);
	tcase_add_test(tc, test_token);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
