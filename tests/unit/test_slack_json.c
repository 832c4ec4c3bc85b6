/*
 * Unit tests for slack_json: its output must be json_dumps(j, JSON_COMPACT)'s,
 * byte for byte (every golden payload is compared through it), so each case
 * here builds a tree and compares the two writers: every byte below 0x80 in
 * a string and in a key, valid and invalid UTF-8, every type, empty and
 * nested containers, a replaced key, and seeded random trees.
 */
#include <check.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slack_json.h"
#include "util.h"

/* Both writers on j (any value, as payloads only hold them inside a container):
 * the same text, or both fail. Takes j's reference. */
static void
t_same(json_t *j)
{
	char *want = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
	char *got = slack_json_string(j);
	if (want == NULL)
		ck_assert_msg(got == NULL, "json_dumps failed, slack_json wrote %s", got);
	else
		ck_assert_msg(got != NULL && strcmp(want, got) == 0, "want %s\n got %s", want,
		    got ? got : "(NULL)");
	free(want);
	free(got);
	json_decref(j);
}

START_TEST(t_every_ascii_byte)
{
	for (int c = 0; c < 0x80; c++) {
		char s[4] = { 'a', (char)c, 'z', 0 };
		t_same(json_stringn_nocheck(s, 3));
		json_t *o = json_object();
		json_object_set_new_nocheck(o, s[1] ? s : "k", json_string("v"));
		t_same(o);
	}
}
END_TEST

START_TEST(t_utf8)
{
	static const char *const valid[] = {
		"caf\xc3\xa9", "\xe2\x80\xa6 ellipsis", "\xef\xbf\xbd", "\xf0\x9f\x9a\x80 rocket",
		"\xe2\x80\xa8 line separator", "<https://x/y?a=1&b=2|link>", "a/b\\c\"d\te",
		"\x7f del", "",
	};
	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++)
		t_same(json_string(valid[i]));
	/* Strings a tree can hold unchecked; json_dumps refuses them, so must slack_json. */
	static const char *const invalid[] = {
		"\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "ok \xff", "\xe2\x80",
	};
	for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
		json_t *a = json_array();
		json_array_append_new(a, json_string_nocheck(invalid[i]));
		t_same(a);
	}
	/* An embedded NUL (json_stringn) is \u0000 in both. */
	t_same(json_stringn("a\0b", 3));
}
END_TEST

START_TEST(t_types)
{
	t_same(json_pack("{s:i,s:i,s:I,s:b,s:b,s:n,s:f,s:f,s:f}", "zero", 0, "neg", -42, "big",
	    (json_int_t)INT64_MIN, "t", 1, "f", 0, "null", "real", 1.5, "whole", 2.0, "tiny", 1e-300));
	t_same(json_pack("[[],{},[[]],{s:{}},[{}]]", "k"));
	json_t *o = json_pack("{s:s,s:s,s:s}", "first", "1", "second", "2", "third", "3");
	/* Replacing a key keeps its place in both. */
	json_object_set_new(o, "first", json_string("one"));
	json_object_del(o, "second");
	json_object_set_new(o, "second", json_string("two"));
	t_same(o);
}
END_TEST

/* A seeded random tree of depth at most depth. */
static json_t *
t_random(uint64_t *seed, int depth)
{
	*seed = *seed * 6364136223846793005ULL + 1442695040888963407ULL;
	unsigned r = (unsigned)(*seed >> 33);
	static const char *const pieces[] = {
		"a", "\"", "\\", "\n", "\t", "\x01", "\x1f", "/", "\xc3\xa9", "\xe2\x80\xa6",
		"&lt;", " ", "\xf0\x9f\x92\xa5", "\r", "\b", "\f",
	};
	switch (depth > 0 ? r % 7 : 3 + r % 4) {
	case 0: case 1: {
		json_t *o = json_object();
		for (unsigned i = 0; i < r % 5; i++) {
			char key[16];
			snprintf(key, sizeof(key), "k%u%s", i, pieces[(r >> 4) % 16]);
			json_object_set_new(o, key, t_random(seed, depth - 1));
		}
		return o;
	}
	case 2: {
		json_t *a = json_array();
		for (unsigned i = 0; i < r % 5; i++)
			json_array_append_new(a, t_random(seed, depth - 1));
		return a;
	}
	case 3: case 4: {
		struct util_buf b = { 0 };
		for (unsigned i = 0; i < r % 12; i++)
			util_buf_puts(&b, pieces[(r >> (i % 28)) % 16]);
		json_t *s = json_stringn(b.data ? b.data : "", b.len);
		util_buf_free(&b);
		return s;
	}
	case 5:
		return json_integer((json_int_t)r - (1 << 30));
	default:
		return r & 1 ? json_true() : json_null();
	}
}

START_TEST(t_random_trees)
{
	uint64_t seed = 20261201;
	for (int i = 0; i < 3000; i++)
		t_same(t_random(&seed, 4));
}
END_TEST

/* Every golden payload, read back and written by both. */
START_TEST(t_goldens)
{
	DIR *d = opendir(FR_SRCDIR "/tests/golden");
	ck_assert_ptr_nonnull(d);
	int n = 0;
	for (struct dirent *e; (e = readdir(d)) != NULL;) {
		size_t len = strlen(e->d_name);
		if (len < 6 || strcmp(e->d_name + len - 5, ".json") != 0)
			continue;
		char *path = util_printf("%s/tests/golden/%s", FR_SRCDIR, e->d_name);
		json_t *j = json_load_file(path, 0, NULL);
		ck_assert_msg(j != NULL, "%s", path);
		t_same(j);
		free(path);
		n++;
	}
	closedir(d);
	ck_assert_int_gt(n, 10);
}
END_TEST

START_TEST(t_null)
{
	ck_assert_ptr_null(slack_json_string(NULL));
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("slack_json");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, t_every_ascii_byte);
	tcase_add_test(tc, t_utf8);
	tcase_add_test(tc, t_types);
	tcase_add_test(tc, t_random_trees);
	tcase_add_test(tc, t_goldens);
	tcase_add_test(tc, t_null);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
