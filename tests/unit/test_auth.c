/* Unit tests for auth: HMAC signatures of every algorithm, lists, several keys,
 * the item limit and HMACs computed once per (key, algorithm); tokens. */
#include <check.h>
#include <gnutls/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"

static const unsigned char key[] = "s3cret-key";
static const char body[] = "{\"involvedObject\":{\"kind\":\"A\",\"name\":\"b\"}}";

static void
sign_with(const unsigned char *k, size_t klen, gnutls_mac_algorithm_t mac, size_t n,
    const char *alg, char *out, size_t outlen)
{
	unsigned char d[64];
	ck_assert_int_eq(gnutls_hmac_fast(mac, k, klen, body, strlen(body), d), 0);
	int w = snprintf(out, outlen, "%s=", alg);
	for (size_t i = 0; i < n; i++)
		w += snprintf(out + w, outlen - (size_t)w, "%02x", d[i]);
}

static void
sign(gnutls_mac_algorithm_t mac, size_t n, const char *alg, char *out, size_t outlen)
{
	sign_with(key, sizeof(key) - 1, mac, n, alg, out, outlen);
}

/* auth_check_hmac with the one key k. */
static enum auth_result
check1(const unsigned char *k, size_t klen, const char *header, const char *b, size_t len)
{
	const struct auth_key keys[] = { { k, klen } };
	return auth_check_hmac(keys, 1, header, b, len, NULL);
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
	ck_assert_int_eq(check1(key, sizeof(key) - 1, sig, body, strlen(body)), AUTH_OK);
	/* Same signature over a different body, or with another key, fails. */
	ck_assert_int_eq(check1(key, sizeof(key) - 1, sig, body, strlen(body) - 1),
	    AUTH_INVALID);
	ck_assert_int_eq(check1((const unsigned char *)"other", 5, sig, body, strlen(body)),
	    AUTH_INVALID);
	/* One flipped hex digit fails. */
	size_t last = strlen(sig) - 1;
	sig[last] = sig[last] == '0' ? '1' : '0';
	ck_assert_int_eq(check1(key, sizeof(key) - 1, sig, body, strlen(body)), AUTH_INVALID);
}
END_TEST

START_TEST(test_hmac_list_and_shapes)
{
	char good[200], list[600];
	sign(GNUTLS_MAC_SHA256, 32, "sha256", good, sizeof(good));
	snprintf(list, sizeof(list), "sha1=00, %s , sha512=zz", good);
	ck_assert_int_eq(check1(key, sizeof(key) - 1, list, body, strlen(body)), AUTH_OK);
	ck_assert_int_eq(check1(key, sizeof(key) - 1, NULL, body, strlen(body)), AUTH_MISSING);
	ck_assert_int_eq(check1(key, sizeof(key) - 1, "", body, strlen(body)), AUTH_MISSING);
	ck_assert_int_eq(check1(key, sizeof(key) - 1, "md5=abcd", body, strlen(body)),
	    AUTH_INVALID);
	ck_assert_int_eq(check1(key, sizeof(key) - 1, good + 7, body, strlen(body)),
	    AUTH_INVALID);   /* bare hex without "sha256=" */
	ck_assert_int_eq(check1(key, sizeof(key) - 1, "sha256=", body, strlen(body)),
	    AUTH_INVALID);
	/* Upper-case hex is the same bytes. */
	char upper[200];
	snprintf(upper, sizeof(upper), "%s", good);
	for (char *p = upper + 7; *p; p++)
		if (*p >= 'a' && *p <= 'f')
			*p = (char)(*p - 'a' + 'A');
	ck_assert_int_eq(check1(key, sizeof(key) - 1, upper, body, strlen(body)), AUTH_OK);
}
END_TEST

/* A header of 16 items is read; 17 is refused before any HMAC. */
START_TEST(test_hmac_item_limit)
{
	char good[200];
	sign(GNUTLS_MAC_SHA256, 32, "sha256", good, sizeof(good));
	char h16[4096], h17[4200];
	size_t n = 0;
	for (int i = 0; i < 15; i++)
		n += (size_t)snprintf(h16 + n, sizeof(h16) - n, "sha1=%040d,", i);
	snprintf(h16 + n, sizeof(h16) - n, "%s", good);
	snprintf(h17, sizeof(h17), "sha1=%040d,%s", 99, h16);
	const struct auth_key keys[] = { { key, sizeof(key) - 1 } };
	struct auth_stats st;
	ck_assert_int_eq(auth_check_hmac(keys, 1, h16, body, strlen(body), &st), AUTH_OK);
	ck_assert_int_eq(st.key, 0);
	ck_assert_uint_eq(st.hmacs, 2);   /* sha1 once for 15 items, sha256 once */
	ck_assert_int_eq(auth_check_hmac(keys, 1, h17, body, strlen(body), &st), AUTH_TOO_MANY);
	ck_assert_uint_eq(st.hmacs, 0);
	ck_assert_int_eq(st.key, -1);
	/* Empty items count too: 17 commas' worth of nothing. */
	ck_assert_int_eq(auth_check_hmac(keys, 1, ",,,,,,,,,,,,,,,,", body, strlen(body), &st),
	    AUTH_TOO_MANY);
	ck_assert_int_eq(auth_check_hmac(keys, 1, ",,,,,,,,,,,,,,,", body, strlen(body), &st),
	    AUTH_INVALID);
	ck_assert_uint_eq(st.hmacs, 0);
}
END_TEST

/*
 * The amplification of issue 10: hundreds of wrong items used to cost one
 * HMAC each. Now each (key, algorithm) is computed at most once, and only for
 * algorithms a well-formed item names.
 */
START_TEST(test_hmac_once_per_key_and_alg)
{
	static const unsigned char k2[] = "second", k3[] = "third", k4[] = "s3cret-key\n";
	const struct auth_key keys[] = {
		{ key, sizeof(key) - 1 }, { k2, sizeof(k2) - 1 }, { k3, sizeof(k3) - 1 },
		{ k4, sizeof(k4) - 1 },
	};
	char h[4096];
	size_t n = 0;
	/* 16 items: three of every algorithm (wrong), one malformed. */
	for (size_t i = 0; i < 15; i++)
		n += (size_t)snprintf(h + n, sizeof(h) - n, "%s=%0*zu,", algs[i % 5].alg,
		    (int)(2 * algs[i % 5].n), i);
	snprintf(h + n, sizeof(h) - n, "sha256=xyz");
	struct auth_stats st;
	ck_assert_int_eq(auth_check_hmac(keys, 1, h, body, strlen(body), &st), AUTH_INVALID);
	ck_assert_uint_eq(st.hmacs, 5);
	ck_assert_int_eq(auth_check_hmac(keys, 4, h, body, strlen(body), &st), AUTH_INVALID);
	ck_assert_uint_eq(st.hmacs, 20);
	/* Only sha1 items, 16 of them, four keys: four HMACs. */
	n = 0;
	for (int i = 0; i < 16; i++)
		n += (size_t)snprintf(h + n, sizeof(h) - n, "%ssha1=%040d", i ? "," : "", i);
	ck_assert_int_eq(auth_check_hmac(keys, 4, h, body, strlen(body), &st), AUTH_INVALID);
	ck_assert_uint_eq(st.hmacs, 4);
	/* Malformed items only: no HMAC at all. */
	ck_assert_int_eq(auth_check_hmac(keys, 4, "sha1=zz, md5=00, sha256, =", body, strlen(body),
	    &st), AUTH_INVALID);
	ck_assert_uint_eq(st.hmacs, 0);
}
END_TEST

/* Several keys (rotation, newline variant): the index of the one that verified. */
START_TEST(test_hmac_several_keys)
{
	static const unsigned char nl[] = "s3cret-key\n", other[] = "other";
	const struct auth_key keys[] = {
		{ other, sizeof(other) - 1 }, { nl, sizeof(nl) - 1 }, { key, sizeof(key) - 1 },
	};
	char sig[200];
	struct auth_stats st;
	sign(GNUTLS_MAC_SHA256, 32, "sha256", sig, sizeof(sig));
	ck_assert_int_eq(auth_check_hmac(keys, 3, sig, body, strlen(body), &st), AUTH_OK);
	ck_assert_int_eq(st.key, 2);
	sign_with(nl, sizeof(nl) - 1, GNUTLS_MAC_SHA256, 32, "sha256", sig, sizeof(sig));
	ck_assert_int_eq(auth_check_hmac(keys, 3, sig, body, strlen(body), &st), AUTH_OK);
	ck_assert_int_eq(st.key, 1);
	ck_assert_int_eq(auth_check_hmac(keys, 1, sig, body, strlen(body), &st), AUTH_INVALID);
	ck_assert_int_eq(st.key, -1);
	ck_assert_int_eq(auth_check_hmac(keys, 3, NULL, body, strlen(body), &st), AUTH_MISSING);
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

/* auth.clients: every token compared, the first match named. */
START_TEST(test_find_token)
{
	const char *tokens[] = { "alpha", NULL, "beta", "beta", "gamma" };
	enum auth_result a;
	ck_assert_int_eq(auth_find_token(tokens, 5, "Bearer beta", &a), 2);
	ck_assert_int_eq(a, AUTH_OK);
	ck_assert_int_eq(auth_find_token(tokens, 5, "bearer  gamma ", &a), 4);
	ck_assert_int_eq(auth_find_token(tokens, 5, "Bearer alph", &a), -1);
	ck_assert_int_eq(a, AUTH_INVALID);
	ck_assert_int_eq(auth_find_token(tokens, 5, NULL, &a), -1);
	ck_assert_int_eq(a, AUTH_MISSING);
	ck_assert_int_eq(auth_find_token(tokens, 5, "Basic YTpi", &a), -1);
	ck_assert_int_eq(a, AUTH_MISSING);
	ck_assert_int_eq(auth_find_token(tokens, 0, "Bearer alpha", &a), -1);
	ck_assert_int_eq(a, AUTH_INVALID);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("auth");
	TCase *tc = tcase_create("auth");
	tcase_add_loop_test(tc, test_hmac_each_alg, 0, sizeof(algs) / sizeof(algs[0]));
	tcase_add_test(tc, test_hmac_list_and_shapes);
	tcase_add_test(tc, test_hmac_item_limit);
	tcase_add_test(tc, test_hmac_once_per_key_and_alg);
	tcase_add_test(tc, test_hmac_several_keys);
	tcase_add_test(tc, test_token);
	tcase_add_test(tc, test_find_token);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
