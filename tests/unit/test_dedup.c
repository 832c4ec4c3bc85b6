/*
 * Unit tests for dedup: which events share a key (table of equal / unequal
 * pairs, with and without duration normalization), a known-answer key, the
 * duration normalization table, and the window decision on a queue in a
 * temporary directory (fixed window, replacement, transactions, pruning).
 */
#include <check.h>
#include <ftw.h>
#include <gnutls/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dedup.h"
#include "event.h"
#include "queue.h"
#include "util.h"

static struct event *
parse_event(const char *json)
{
	char err[256], field[64];
	struct event *ev = event_parse(json, strlen(json), err, sizeof(err), field,
	    sizeof(field));

	ck_assert_msg(ev != NULL, "bad test event: %s: %s", err, json);
	return ev;
}

/* ---- normalization ------------------------------------------------------ */

#define D DEDUP_DURATION_PLACEHOLDER

static const struct {
	const char *in, *want;
} norm_cases[] = {
	{ "", "" },
	{ "no durations here", "no durations here" },
	{ "finished in 2.08s", "finished in " D },
	{ "finished in 3.1s", "finished in " D },
	{ "took 1m30s.", "took " D "." },
	{ "took 150ms, then 10ns", "took " D ", then " D },
	{ "1h2m3s", D },
	{ "1h2m3.5s elapsed", D " elapsed" },
	{ "500\xc2\xb5s", D },             /* micro sign */
	{ "500\xce\xbcs", D },             /* Greek mu */
	{ "500us", D },
	{ "5m", D },
	{ "2h", D },
	{ "0s", D },
	{ "(2.5s)", "(" D ")" },
	{ "timeout=30s,retry=5s", "timeout=" D ",retry=" D },
	{ "[5s]", "[" D "]" },
	{ "-1.5s", "-" D },
	{ "line\n10s\n", "line\n" D "\n" },
	/* not durations */
	{ "v1s2", "v1s2" },
	{ "abc5s", "abc5s" },
	{ "5sec", "5sec" },
	{ "5 s", "5 s" },
	{ "10mins", "10mins" },
	{ "3months", "3months" },
	{ "12", "12" },
	{ "1.5", "1.5" },
	{ "2.s", "2.s" },
	{ "s5", "s5" },
	{ "5s_x", "5s_x" },
	{ "x_5s", "x_5s" },
	{ "5sé", "5sé" },
	{ "é5s", "é5s" },
	{ "1.2.5s", "1.2.5s" },
	{ "podinfo:6.5.0", "podinfo:6.5.0" },
	{ "main@sha1:731f7eaddfb6af01cb2173e18f0f75b0ba780ef1",
	  "main@sha1:731f7eaddfb6af01cb2173e18f0f75b0ba780ef1" },
	{ "1m30", "1m30" },
	{ "5ms3", "5ms3" },
	{ "12abc5s", "12abc5s" },
	{ "10x 5s", "10x " D },
	{ "5s5s", D },                     /* a sequence of components, like 1m30s */
	{ "Health check timed out after 5m0s for [Deployment 'a/b']",
	  "Health check timed out after " D " for [Deployment 'a/b']" },
	{ "Reconciliation finished in 2.083458s, next run in 10m0s",
	  "Reconciliation finished in " D ", next run in " D },
};

START_TEST(test_dedup_normalize_table)
{
	char *got = dedup_normalize(norm_cases[_i].in);

	ck_assert_msg(strcmp(got, norm_cases[_i].want) == 0, "\"%s\" -> \"%s\", want \"%s\"",
	    norm_cases[_i].in, got, norm_cases[_i].want);
	free(got);
}
END_TEST

/* Longer than any internal stack buffer, durations everywhere. */
START_TEST(test_dedup_normalize_long)
{
	struct util_buf in = { 0 }, want = { 0 };
	char *got;

	for (int i = 0; i < 5000; i++) {
		util_buf_printf(&in, "step %d took %d.%02ds; ", i, i % 7, i % 100);
		util_buf_printf(&want, "step %d took " D "; ", i);
	}
	got = dedup_normalize(in.data);
	ck_assert_str_eq(got, want.data);
	free(got);
	util_buf_free(&in);
	util_buf_free(&want);
}
END_TEST

/* ---- keys --------------------------------------------------------------- */

#define EVN(kind, name, nsf, msg, meta) \
	"{\"involvedObject\":{\"kind\":\"" kind "\",\"name\":\"" name "\"" nsf "}," \
	"\"severity\":\"error\",\"message\":\"" msg "\"" meta "}"
#define NS(ns) ",\"namespace\":\"" ns "\""
#define META(m) ",\"metadata\":{" m "}"
#define API ",\"apiVersion\":\"kustomize.toolkit.fluxcd.io/v1\""
#define BASE EVN("Kustomization", "webapp", NS("apps"), "finished in 2.08s", "")

static const struct {
	const char *desc, *a, *b;
	bool normalize;
	bool equal;
} key_cases[] = {
	{ "identical", BASE, BASE, true, true },
	{ "durations normalized", BASE,
	  EVN("Kustomization", "webapp", NS("apps"), "finished in 3.1s", ""), true, true },
	{ "durations not normalized", BASE,
	  EVN("Kustomization", "webapp", NS("apps"), "finished in 3.1s", ""), false, false },
	{ "same durations, not normalized", BASE, BASE, false, true },
	{ "other message", BASE,
	  EVN("Kustomization", "webapp", NS("apps"), "finished", ""), true, false },
	{ "other kind", BASE,
	  EVN("HelmRelease", "webapp", NS("apps"), "finished in 2.08s", ""), true, false },
	{ "other name", BASE,
	  EVN("Kustomization", "webap", NS("apps"), "finished in 2.08s", ""), true, false },
	{ "other namespace", BASE,
	  EVN("Kustomization", "webapp", NS("app"), "finished in 2.08s", ""), true, false },
	{ "absent namespace equals empty",
	  EVN("Kustomization", "webapp", "", "m", ""),
	  EVN("Kustomization", "webapp", NS(""), "m", ""), true, true },
	/* length prefixes keep field boundaries apart */
	{ "boundary shift name/namespace",
	  EVN("K", "ab", NS("c"), "m", ""), EVN("K", "a", NS("bc"), "m", ""), true, false },
	{ "boundary shift kind/namespace",
	  EVN("Ka", "n", NS("b"), "m", ""), EVN("K", "n", NS("ab"), "m", ""), true, false },
	{ "severity ignored", BASE,
	  "{\"involvedObject\":{\"kind\":\"Kustomization\",\"name\":\"webapp\","
	  "\"namespace\":\"apps\"},\"severity\":\"info\",\"message\":\"finished in 2.08s\"}",
	  true, true },
	{ "reason, timestamp, controller ignored", BASE,
	  EVN("Kustomization", "webapp", NS("apps"), "finished in 2.08s",
	      ",\"reason\":\"X\",\"timestamp\":\"2023-01-01T00:00:00Z\","
	      "\"reportingController\":\"c\""), true, true },
	{ "revision differs",
	  EVN("K", "n", "", "m", META("\"revision\":\"r1\"")),
	  EVN("K", "n", "", "m", META("\"revision\":\"r2\"")), true, false },
	{ "revision present vs absent",
	  EVN("K", "n", "", "m", META("\"revision\":\"\"")),
	  EVN("K", "n", "", "m", ""), true, false },
	{ "revision prefixed equals stripped",
	  EVN("K", "n", API, "m", META("\"kustomize.toolkit.fluxcd.io/revision\":\"r1\"")),
	  EVN("K", "n", API, "m", META("\"revision\":\"r1\"")), true, true },
	/* without apiVersion there is no group: the prefixed key is not a revision */
	{ "revision prefixed without apiVersion",
	  EVN("K", "n", "", "m", META("\"kustomize.toolkit.fluxcd.io/revision\":\"r1\"")),
	  EVN("K", "n", "", "m", META("\"revision\":\"r1\"")), true, false },
	{ "originRevision differs",
	  EVN("K", "n", "", "m", META("\"originRevision\":\"a\"")),
	  EVN("K", "n", "", "m", META("\"originRevision\":\"b\"")), true, false },
	{ "token differs",
	  EVN("K", "n", "", "m", META("\"token\":\"t1\"")),
	  EVN("K", "n", "", "m", META("\"token\":\"t2\"")), true, false },
	{ "value moved between revision and originRevision",
	  EVN("K", "n", "", "m", META("\"revision\":\"x\"")),
	  EVN("K", "n", "", "m", META("\"originRevision\":\"x\"")), true, false },
	{ "other metadata ignored",
	  EVN("K", "n", "", "m", META("\"revision\":\"r\",\"cluster\":\"a\"")),
	  EVN("K", "n", "", "m", META("\"revision\":\"r\",\"digest\":\"d\"")), true, true },
};

START_TEST(test_dedup_key_table)
{
	struct event *a = parse_event(key_cases[_i].a), *b = parse_event(key_cases[_i].b);
	unsigned char ka[DEDUP_KEY_LEN], kb[DEDUP_KEY_LEN], ka2[DEDUP_KEY_LEN];

	dedup_key(a, key_cases[_i].normalize, ka);
	dedup_key(b, key_cases[_i].normalize, kb);
	dedup_key(a, key_cases[_i].normalize, ka2);
	ck_assert_msg(memcmp(ka, ka2, DEDUP_KEY_LEN) == 0, "%s: not deterministic",
	    key_cases[_i].desc);
	ck_assert_msg((memcmp(ka, kb, DEDUP_KEY_LEN) == 0) == key_cases[_i].equal,
	    "%s: keys %s", key_cases[_i].desc, key_cases[_i].equal ? "differ" : "equal");
	event_free(a);
	event_free(b);
}
END_TEST

static void
put_u64(struct util_buf *b, size_t n)
{
	unsigned char be[8];

	for (int i = 7; i >= 0; i--) {
		be[i] = (unsigned char)(n & 0xff);
		n >>= 8;
	}
	util_buf_append(b, (const char *)be, 8);
}

static void
put_field(struct util_buf *b, const char *s)
{
	put_u64(b, strlen(s));
	util_buf_append(b, s, strlen(s));
}

/* The documented serialization, rebuilt independently: keys persist in the
 * queue database, so the format must not drift. */
START_TEST(test_dedup_key_format)
{
	struct event *ev = parse_event(EVN("Kustomization", "webapp", NS("apps"),
	    "done in 2.5s", META("\"token\":\"tok\",\"revision\":\"main@sha1:abc\"")));
	struct util_buf b = { 0 };
	unsigned char want[DEDUP_KEY_LEN], got[DEDUP_KEY_LEN];

	util_buf_append(&b, "fluxrelay-dedup-v1", sizeof("fluxrelay-dedup-v1"));
	put_field(&b, "Kustomization");
	put_field(&b, "apps");
	put_field(&b, "webapp");
	put_field(&b, "done in " D);
	util_buf_append(&b, "\1", 1);
	put_field(&b, "main@sha1:abc");
	util_buf_append(&b, "\0", 1);
	util_buf_append(&b, "\1", 1);
	put_field(&b, "tok");
	ck_assert_int_eq(gnutls_hash_fast(GNUTLS_DIG_SHA256, b.data, b.len, want), 0);
	dedup_key(ev, true, got);
	ck_assert(memcmp(got, want, DEDUP_KEY_LEN) == 0);
	util_buf_free(&b);
	event_free(ev);
}
END_TEST

/*
 * The cluster (auth.clients) is part of the key when there is one, under a
 * tag of its own; without one the key is the one above (stored windows from
 * before clients existed still hold).
 */
START_TEST(test_dedup_key_cluster)
{
	struct event *ev = parse_event(EVN("Kustomization", "webapp", NS("apps"), "failed", ""));
	unsigned char none[DEDUP_KEY_LEN], a[DEDUP_KEY_LEN], a2[DEDUP_KEY_LEN], b[DEDUP_KEY_LEN];
	unsigned char want[DEDUP_KEY_LEN];
	struct util_buf buf = { 0 };

	ck_assert_str_eq(ev->cluster, "");
	dedup_key(ev, true, none);
	ev->cluster = "prod-eu-1";
	dedup_key(ev, true, a);
	dedup_key(ev, true, a2);
	ev->cluster = "staging";
	dedup_key(ev, true, b);
	ck_assert(memcmp(a, a2, DEDUP_KEY_LEN) == 0);
	ck_assert(memcmp(a, b, DEDUP_KEY_LEN) != 0);
	ck_assert(memcmp(a, none, DEDUP_KEY_LEN) != 0);
	util_buf_append(&buf, "fluxrelay-dedup-v1", sizeof("fluxrelay-dedup-v1"));
	put_field(&buf, "Kustomization");
	put_field(&buf, "apps");
	put_field(&buf, "webapp");
	put_field(&buf, "failed");
	util_buf_append(&buf, "\0\0\0", 3);
	ck_assert_int_eq(gnutls_hash_fast(GNUTLS_DIG_SHA256, buf.data, buf.len, want), 0);
	ck_assert(memcmp(none, want, DEDUP_KEY_LEN) == 0);
	util_buf_free(&buf);
	ev->cluster = "";
	event_free(ev);
}
END_TEST

/* A message past any internal stack buffer hashes like a short one would. */
START_TEST(test_dedup_key_long_message)
{
	struct util_buf j1 = { 0 }, j2 = { 0 };
	struct event *a, *b;
	unsigned char ka[DEDUP_KEY_LEN], kb[DEDUP_KEY_LEN];

	for (struct util_buf *j = &j1; j != NULL; j = j == &j1 ? &j2 : NULL) {
		util_buf_puts(j, "{\"involvedObject\":{\"kind\":\"K\",\"name\":\"n\"},"
		    "\"severity\":\"error\",\"message\":\"");
		for (int i = 0; i < 20000; i++)
			util_buf_printf(j, "t=%ds ", j == &j1 ? i % 10 : i % 3);
		util_buf_puts(j, "\"}");
	}
	a = parse_event(j1.data);
	b = parse_event(j2.data);
	dedup_key(a, true, ka);
	dedup_key(b, true, kb);
	ck_assert(memcmp(ka, kb, DEDUP_KEY_LEN) == 0);
	dedup_key(a, false, ka);
	dedup_key(b, false, kb);
	ck_assert(memcmp(ka, kb, DEDUP_KEY_LEN) != 0);
	event_free(a);
	event_free(b);
	util_buf_free(&j1);
	util_buf_free(&j2);
}
END_TEST

/* ---- window ------------------------------------------------------------- */

/* The run's root (made and removed by main) and this test's directory. */
static char t_root[] = "/tmp/test_dedup.XXXXXX";
static char t_dir[sizeof(t_root) + 8];

static int
t_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(path);
}

static void
t_setup(void)
{
	snprintf(t_dir, sizeof(t_dir), "%s/XXXXXX", t_root);
	ck_assert_ptr_nonnull(mkdtemp(t_dir));
}

static void
t_teardown(void)
{
	nftw(t_dir, t_rm, 16, FTW_DEPTH | FTW_PHYS);
}

static struct queue *
t_open(void)
{
	char err[512];
	struct queue *q = queue_open(t_dir, false, err, sizeof(err));

	ck_assert_msg(q != NULL, "open: %s", err);
	return q;
}

static void
mkkey(unsigned char key[DEDUP_KEY_LEN], unsigned n)
{
	/* structured on purpose: only the last bytes vary */
	memset(key, 0, DEDUP_KEY_LEN);
	key[DEDUP_KEY_LEN - 4] = (unsigned char)(n >> 24);
	key[DEDUP_KEY_LEN - 3] = (unsigned char)(n >> 16);
	key[DEDUP_KEY_LEN - 2] = (unsigned char)(n >> 8);
	key[DEDUP_KEY_LEN - 1] = (unsigned char)n;
}

/* Record key as first seen at t (a transaction of its own). */
static void
t_record(struct queue *q, unsigned n, double t, const char *id)
{
	unsigned char k[DEDUP_KEY_LEN];

	mkkey(k, n);
	ck_assert_int_eq(queue_begin(q), 0);
	ck_assert_int_eq(dedup_record(q, k, 300, t, id), 0);
	ck_assert_int_eq(queue_commit(q), 0);
}

/* dedup_admit of key n at now with window; the id when a duplicate, else "". */
static enum dedup_verdict
t_admit(struct queue *q, unsigned n, double now, double window, char id[UTIL_ID_SIZE])
{
	unsigned char k[DEDUP_KEY_LEN];

	mkkey(k, n);
	strcpy(id, "");
	return dedup_admit(q, k, window, now, id);
}

START_TEST(test_dedup_window)
{
	struct queue *q = t_open();
	char id[UTIL_ID_SIZE];

	ck_assert_int_eq(t_admit(q, 1, 1000, 300, id), DEDUP_NEW);
	t_record(q, 1, 1000, "0123456789abcdef0123456789abcdef");

	/* inside the window: duplicate, with the first event's id */
	ck_assert_int_eq(t_admit(q, 1, 1000, 300, id), DEDUP_DUPLICATE);
	ck_assert_str_eq(id, "0123456789abcdef0123456789abcdef");
	ck_assert_int_eq(t_admit(q, 1, 1299.9, 300, id), DEDUP_DUPLICATE);
	/* the window is fixed from the first sighting: checks do not extend it */
	ck_assert_int_eq(t_admit(q, 1, 1300, 300, id), DEDUP_NEW);
	ck_assert_str_eq(id, "");
	ck_assert_int_eq(t_admit(q, 1, 5000, 300, id), DEDUP_NEW);
	/* other keys are unaffected; window 0 never reports duplicates */
	ck_assert_int_eq(t_admit(q, 2, 1000, 300, id), DEDUP_NEW);
	ck_assert_int_eq(t_admit(q, 1, 1000, 0, id), DEDUP_NEW);

	/* a new first sighting after expiry replaces the old one */
	t_record(q, 1, 1400, "ffffffffffffffffffffffffffffffff");
	ck_assert_int_eq(t_admit(q, 1, 1500, 300, id), DEDUP_DUPLICATE);
	ck_assert_str_eq(id, "ffffffffffffffffffffffffffffffff");
	ck_assert_int_eq(t_admit(q, 1, 1700, 300, id), DEDUP_NEW);

	/* window 0 records nothing */
	unsigned char k[DEDUP_KEY_LEN];
	mkkey(k, 3);
	ck_assert_int_eq(dedup_record(q, k, 0, 1000, "x"), 0);
	ck_assert_int_eq(t_admit(q, 3, 1000, 300, id), DEDUP_NEW);
	queue_close(q);
}
END_TEST

/* A sighting counts in its own transaction at once, and not after a rollback. */
START_TEST(test_dedup_transaction)
{
	struct queue *q = t_open();
	unsigned char k[DEDUP_KEY_LEN];
	char id[UTIL_ID_SIZE];

	mkkey(k, 7);
	ck_assert_int_eq(queue_begin(q), 0);
	ck_assert_int_eq(dedup_record(q, k, 300, 1000, "seven"), 0);
	ck_assert_int_eq(t_admit(q, 7, 1001, 300, id), DEDUP_DUPLICATE);
	ck_assert_str_eq(id, "seven");
	queue_rollback(q);
	ck_assert_int_eq(t_admit(q, 7, 1001, 300, id), DEDUP_NEW);

	/* and it survives reopening once committed */
	t_record(q, 7, 1000, "seven");
	queue_close(q);
	q = t_open();
	ck_assert_int_eq(t_admit(q, 7, 1001, 300, id), DEDUP_DUPLICATE);
	ck_assert_str_eq(id, "seven");
	queue_close(q);
}
END_TEST

/*
 * Recording keeps an unexpired first sighting (SPEC §7: the window is fixed
 * from the first sighting). The writer records without asking dedup_admit
 * when an event opens, counts or closes an incident, so a record inside the
 * window must not move it; the first record after it ran out starts a new one.
 */
START_TEST(test_dedup_record_keeps_window)
{
	struct queue *q = t_open();
	char id[UTIL_ID_SIZE];

	t_record(q, 4, 1000, "first");
	/* incident events of the same key at 1100 and 1299: no new window */
	t_record(q, 4, 1100, "second");
	t_record(q, 4, 1299, "third");
	ck_assert_int_eq(t_admit(q, 4, 1299.9, 300, id), DEDUP_DUPLICATE);
	ck_assert_str_eq(id, "first");
	ck_assert_int_eq(t_admit(q, 4, 1300, 300, id), DEDUP_NEW);

	/* the normal path: a duplicate at 1200 is answered, not recorded, and
	 * the window still ends at 1300 */
	ck_assert_int_eq(t_admit(q, 5, 1000, 300, id), DEDUP_NEW);
	t_record(q, 5, 1000, "five");
	ck_assert_int_eq(t_admit(q, 5, 1200, 300, id), DEDUP_DUPLICATE);
	ck_assert_int_eq(t_admit(q, 5, 1300, 300, id), DEDUP_NEW);

	/* after the window: the first record starts a new one from its time */
	t_record(q, 4, 1300, "fourth");
	t_record(q, 4, 1450, "fifth");
	ck_assert_int_eq(t_admit(q, 4, 1599, 300, id), DEDUP_DUPLICATE);
	ck_assert_str_eq(id, "fourth");
	ck_assert_int_eq(t_admit(q, 4, 1600, 300, id), DEDUP_NEW);

	/* within one transaction (one writer batch) too */
	unsigned char k[DEDUP_KEY_LEN];
	mkkey(k, 6);
	ck_assert_int_eq(queue_begin(q), 0);
	ck_assert_int_eq(dedup_record(q, k, 300, 2000, "six"), 0);
	ck_assert_int_eq(dedup_record(q, k, 300, 2001, "six-again"), 0);
	ck_assert_int_eq(queue_commit(q), 0);
	ck_assert_int_eq(t_admit(q, 6, 2299.5, 300, id), DEDUP_DUPLICATE);
	ck_assert_str_eq(id, "six");
	ck_assert_int_eq(t_admit(q, 6, 2300, 300, id), DEDUP_NEW);
	queue_close(q);
}
END_TEST

START_TEST(test_dedup_prune)
{
	struct queue *q = t_open();
	char id[UTIL_ID_SIZE];

	/* first_seen 100, 110, ..., 190, recorded out of order */
	for (unsigned i = 0; i < 10; i++) {
		unsigned n = (i * 7) % 10;
		t_record(q, n, 100 + 10 * n, "id");
	}
	ck_assert_int_eq(dedup_prune(q, 150, 100), 0);     /* nothing is 100 s old */
	for (unsigned n = 0; n < 10; n++)
		ck_assert_int_eq(t_admit(q, n, 150, 1e9, id), DEDUP_DUPLICATE);
	ck_assert_int_eq(dedup_prune(q, 235, 100), 0);     /* drops 100..130 */
	for (unsigned n = 0; n < 10; n++)
		ck_assert_int_eq(t_admit(q, n, 235, 1e9, id),
		    n >= 4 ? DEDUP_DUPLICATE : DEDUP_NEW);
	/* a replaced sighting is pruned by its new time */
	t_record(q, 5, 1000, "new");
	ck_assert_int_eq(dedup_prune(q, 1099, 100), 0);    /* everything but key 5 */
	ck_assert_int_eq(t_admit(q, 5, 1099, 1e9, id), DEDUP_DUPLICATE);
	ck_assert_str_eq(id, "new");
	ck_assert_int_eq(t_admit(q, 6, 1099, 1e9, id), DEDUP_NEW);
	queue_close(q);
}
END_TEST

static Suite *
dedup_suite(void)
{
	Suite *s = suite_create("dedup");
	TCase *tc = tcase_create("dedup");

	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_dedup_normalize_table, 0,
	    sizeof(norm_cases) / sizeof(norm_cases[0]));
	tcase_add_test(tc, test_dedup_normalize_long);
	tcase_add_loop_test(tc, test_dedup_key_table, 0,
	    sizeof(key_cases) / sizeof(key_cases[0]));
	tcase_add_test(tc, test_dedup_key_format);
	tcase_add_test(tc, test_dedup_key_cluster);
	tcase_add_test(tc, test_dedup_key_long_message);
	suite_add_tcase(s, tc);

	tc = tcase_create("window");
	tcase_add_checked_fixture(tc, t_setup, t_teardown);
	tcase_add_test(tc, test_dedup_window);
	tcase_add_test(tc, test_dedup_transaction);
	tcase_add_test(tc, test_dedup_record_keeps_window);
	tcase_add_test(tc, test_dedup_prune);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(dedup_suite());
	int failed;

	if (mkdtemp(t_root) == NULL)
		return 99;
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	nftw(t_root, t_rm, 16, FTW_DEPTH | FTW_PHYS);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
