/*
 * A fresh temporary directory per test, for the unit tests that load
 * configuration files (test_conf, test_forward): Check forks each test, so
 * the fixture makes the directory and removes it with what the test wrote.
 * Each test includes it once.
 */
#ifndef FLUXRELAY_TEST_TMP_H
#define FLUXRELAY_TEST_TMP_H

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static char test_tmpdir[64];

/* /tmp/<prefix>.XXXXXX, made; the test fails when it cannot be. */
static void
test_tmp_make(const char *prefix)
{
	snprintf(test_tmpdir, sizeof(test_tmpdir), "/tmp/%s.XXXXXX", prefix);
	ck_assert_ptr_nonnull(mkdtemp(test_tmpdir));
}

/* The directory and everything in it, removed. */
static void
test_tmp_remove(void)
{
	char *cmd = util_printf("rm -rf '%s'", test_tmpdir);
	int r = system(cmd);
	(void)r;
	free(cmd);
}

/* Write text to test_tmpdir/name (creating no directories); returns the new path. */
static char *
tmp_write(const char *name, const char *text)
{
	char *path = util_printf("%s/%s", test_tmpdir, name);
	FILE *f = fopen(path, "w");
	ck_assert_msg(f != NULL, "cannot create %s: %s", path, strerror(errno));
	fputs(text, f);
	fclose(f);
	return path;
}

#endif
