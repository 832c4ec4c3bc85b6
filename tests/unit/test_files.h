/*
 * Files of the source tree for the unit tests that render payloads
 * (test_slack, test_slack_blocks, test_slack_look): reading fixtures and
 * comparing with golden files. Each test includes it once; FR_SRCDIR is the
 * source tree (Makefile.am).
 *
 * FR_UPDATE_GOLDEN=1 makes test_golden write the golden file from the
 * output instead of comparing (then check the diff by eye).
 */
#ifndef FLUXRELAY_TEST_FILES_H
#define FLUXRELAY_TEST_FILES_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "util.h"

/* FR_SRCDIR/dir/name, whole; the test fails when it cannot be read. */
static char *
test_read(const char *dir, const char *name, size_t *len)
{
	char err[256];
	char *path = util_printf("%s/%s/%s", FR_SRCDIR, dir, name);
	char *buf = util_read_file(path, len, err, sizeof(err));

	ck_assert_msg(buf != NULL, "%s: %s", path, err);
	free(path);
	return buf;
}

/* The event in FR_SRCDIR/dir/name; the test fails when it does not parse. */
static struct event *
test_fixture(const char *dir, const char *name)
{
	size_t len;
	char err[256], field[128];
	char *buf = test_read(dir, name, &len);
	struct event *ev = event_parse(buf, len, err, sizeof(err), field, sizeof(field));

	ck_assert_msg(ev != NULL, "%s: %s (%s)", name, err, field);
	free(buf);
	return ev;
}

/* got against tests/golden/name byte for byte (one trailing newline), or written. */
static void
test_golden(const char *name, const char *got)
{
	ck_assert_msg(got != NULL, "%s: render failed", name);
	if (getenv("FR_UPDATE_GOLDEN") != NULL) {
		char *path = util_printf("%s/tests/golden/%s", FR_SRCDIR, name);
		FILE *f = fopen(path, "w");
		ck_assert_msg(f != NULL, "%s", path);
		fprintf(f, "%s\n", got);
		fclose(f);
		free(path);
		return;
	}
	size_t len;
	char *want = test_read("tests/golden", name, &len);
	if (len > 0 && want[len - 1] == '\n')
		want[--len] = '\0';
	ck_assert_msg(strcmp(got, want) == 0, "%s differs:\n got: %s\nwant: %s", name, got, want);
	free(want);
}

#endif
