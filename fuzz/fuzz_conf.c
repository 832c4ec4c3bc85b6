/*
 * fuzz_conf: libFuzzer harness for the config loader, conf_load(), and for
 * rules_new() on every config it accepts.
 *
 * conf_load() takes a path, so each input is written to FILE = DIR/fluxrelay.conf
 * in a private directory made at start-up (under $FUZZ_TMPDIR, else /dev/shm
 * when writable, else $TMPDIR, else /tmp) and removed at exit. DIR also holds
 * secrets/ and tls/ files and the environment names FR_TEST_SECRETS,
 * FR_TEST_TLS_DIR, FR_TEST_TOKEN, FR_TEST_URL and CREDENTIALS_DIRECTORY, so the
 * seeds from tests/configs/ and etc/ reach the code past their secrets.
 *
 * Checked properties (abort() when one breaks), besides ASan/UBSan/LSan:
 *   - exactly one of the conf and *errors is returned;
 *   - *errors is a non-empty sequence of non-empty '\n'-terminated lines, each
 *     starting with "DIR/" (the file, or an @include'd one, as the caller named it);
 *   - the contents of secret files never appear in *errors (they carry the
 *     marker FUZZSECRET; inputs that contain the marker themselves are not checked);
 *   - an accepted conf has absolute paths, providers resolved
 *     (provider_idx names the provider of the same name), and rules_new()
 *     accepts it (conf.c validates include/exclude with the options rules uses).
 *
 * Sandbox: secret files are read through util_read_file(), which the link
 * wraps (-Wl,--wrap=util_read_file) so that only regular files up to 1 MiB are
 * read: an input naming /dev/zero or /proc/kcore must not exhaust memory in the
 * fuzzer (the daemon has no such cap: see fuzz/README.md). Standard input is
 * /dev/null so "@include \"/dev/stdin\"" cannot block.
 * Single-threaded.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE   /* memmem, nftw */
#endif
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "rules.h"
#include "util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
char *__real_util_read_file(const char *path, size_t *len, char *err, size_t errlen);
char *__wrap_util_read_file(const char *path, size_t *len, char *err, size_t errlen);
const char *__lsan_default_suppressions(void);

/*
 * libconfig 1.5 (Debian 12) leaks a string token's buffer when a syntax error
 * follows it (hyperrealm/libconfig#142, fixed upstream in 1.7.3 by a bison
 * %destructor): not ours, and bounded by one token per failed load. Only the
 * lexer's own allocations are suppressed: a config tree that conf.c failed to
 * destroy would still show its settings (config_setting_*). Matching a function
 * name needs a symbolizer: fuzz.mk runs the harness with llvm-symbolizer
 * (ASAN_SYMBOLIZER_PATH) and refuses to run without one.
 */
const char *
__lsan_default_suppressions(void)
{
	return "leak:strbuf_append\nleak:libconfig_yylex\n";
}

#define FUZZ_CONF_MARKER "FUZZSECRET"
#define FUZZ_CONF_MAX_FILE (1024 * 1024)

/* Set once by LLVMFuzzerInitialize; read-only afterwards (one thread). */
static char *fuzz_conf_dir;    /* private directory, no trailing '/' */
static char *fuzz_conf_file;   /* fuzz_conf_dir + "/fluxrelay.conf" */

char *
__wrap_util_read_file(const char *path, size_t *len, char *err, size_t errlen)
{
	struct stat st;
	if (stat(path, &st) == 0 && (!S_ISREG(st.st_mode) || st.st_size > FUZZ_CONF_MAX_FILE)) {
		snprintf(err, errlen, "cannot read %s: not a regular file of at most 1 MiB "
		    "(fuzz harness)", path);
		return NULL;
	}
	return __real_util_read_file(path, len, err, errlen);
}

static void
fuzz_conf_fail(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_conf: property violated: %s\n%s%s", what, detail ? detail : "",
	    detail && *detail && detail[strlen(detail) - 1] != '\n' ? "\n" : "");
	abort();
}

static void
fuzz_conf_write(const char *path, const void *data, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(stderr, "fuzz_conf: cannot create %s: %s\n", path, strerror(errno));
		exit(99);
	}
	const char *p = data;
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w <= 0) {
			fprintf(stderr, "fuzz_conf: cannot write %s: %s\n", path, strerror(errno));
			exit(99);
		}
		p += w;
		n -= (size_t)w;
	}
	close(fd);
}

static void
fuzz_conf_put(const char *rel, const char *text)
{
	char *p = util_printf("%s/%s", fuzz_conf_dir, rel);
	fuzz_conf_write(p, text, strlen(text));
	free(p);
}

static int
fuzz_conf_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void
fuzz_conf_cleanup(void)
{
	if (fuzz_conf_dir != NULL)
		nftw(fuzz_conf_dir, fuzz_conf_rm, 16, FTW_DEPTH | FTW_PHYS);
}

static int
fuzz_conf_abs(const char *p)
{
	return p == NULL || p[0] == '/';
}

static void
fuzz_conf_check_conf(const struct conf *c)
{
	if (!fuzz_conf_abs(c->state_dir) || !fuzz_conf_abs(c->listen.tls_cert_file) ||
	    !fuzz_conf_abs(c->listen.tls_key_file) || !fuzz_conf_abs(c->listen.tls_client_ca_file))
		fuzz_conf_fail("a path in the conf is not absolute", c->state_dir);
	for (size_t i = 0; i < c->nproviders; i++) {
		if (c->providers[i].name == NULL)
			fuzz_conf_fail("provider without a name", NULL);
		if (!fuzz_conf_abs(c->providers[i].ca_file))
			fuzz_conf_fail("provider ca_file is not absolute", c->providers[i].ca_file);
		if (conf_provider_find(c, c->providers[i].name) != (long)i)
			fuzz_conf_fail("provider names are not unique", c->providers[i].name);
	}
	for (size_t i = 0; i < c->nalerts; i++) {
		const struct conf_alert *a = &c->alerts[i];
		if (a->name == NULL || a->nproviders == 0 || a->nsources == 0)
			fuzz_conf_fail("alert without name, providers or sources", a->name);
		for (size_t j = 0; j < a->nproviders; j++)
			if (a->provider_idx[j] >= c->nproviders ||
			    strcmp(c->providers[a->provider_idx[j]].name, a->providers[j]) != 0)
				fuzz_conf_fail("alert provider not resolved", a->providers[j]);
	}
	char err[512];
	struct rules *r = rules_new(c, err, sizeof(err));
	if (r == NULL)
		fuzz_conf_fail("conf_load accepted what rules_new rejects", err);
	rules_free(r);
}

static void
fuzz_conf_check_errors(const char *errors, int check_secrets)
{
	size_t dlen = strlen(fuzz_conf_dir);
	if (errors[0] == '\0')
		fuzz_conf_fail("empty error text", NULL);
	if (errors[strlen(errors) - 1] != '\n')
		fuzz_conf_fail("error text does not end in a newline", errors);
	for (const char *line = errors; *line != '\0';) {
		const char *nl = strchr(line, '\n');
		if (nl == line)
			fuzz_conf_fail("empty line in the error text", errors);
		if (strncmp(line, fuzz_conf_dir, dlen) != 0 || line[dlen] != '/')
			fuzz_conf_fail("error line does not start with the file name", errors);
		line = nl + 1;
	}
	if (check_secrets && strstr(errors, FUZZ_CONF_MARKER) != NULL)
		fuzz_conf_fail("a secret file's contents appear in the errors", errors);
}

/*
 * The files the seeds name, under the temporary directory: the secrets of
 * tests/configs/ (same names, so those seeds get past their secrets) and, as
 * conf.c loads TLS files with GnuTLS, tests/configs/tls/'s real ones.
 */
static const struct {
	const char *name, *text;
} fuzz_conf_files[] = {
	{ "secrets/hmac-key",
	  "hmac-" FUZZ_CONF_MARKER "-1\n" },
	{ "secrets/slack-url",
	  "https://hooks.slack.com/services/T000/B000/" FUZZ_CONF_MARKER "2\n" },
	{ "secrets/bot-token",
	  "xoxb-" FUZZ_CONF_MARKER "-3\n" },
	{ "secrets/ftp-url",
	  "ftp://" FUZZ_CONF_MARKER "-4/\n" },
	{ "secrets/empty",
	  "" },
	{ "tls/ca.pem",
	  "-----BEGIN CERTIFICATE-----\n"
	  "MIIBrDCCAVOgAwIBAgIUCvT8JxNJaaUbxJ524SL302T4mEkwCgYIKoZIzj0EAwIw\n"
	  "IzEhMB8GA1UEAwwYZmx1eHJlbGF5IGNvbmZpZy10ZXN0IENBMCAXDTI2MTIwMTEz\n"
	  "NTQ1MFoYDzIxMjYxMTA3MTM1NDUwWjAjMSEwHwYDVQQDDBhmbHV4cmVsYXkgY29u\n"
	  "ZmlnLXRlc3QgQ0EwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAARZG60mkqU4fSdM\n"
	  "BKEDXUx95wzuJwfPbv1HW2ekfCRbHq0CkbgYMCSjMStKOFIn/6TkUfTIZ3LZQqCL\n"
	  "mUGmvlvwo2MwYTAdBgNVHQ4EFgQUsprbca/TRrQf7I9s4idxDbLAbdkwHwYDVR0j\n"
	  "BBgwFoAUsprbca/TRrQf7I9s4idxDbLAbdkwDwYDVR0TAQH/BAUwAwEB/zAOBgNV\n"
	  "HQ8BAf8EBAMCAQYwCgYIKoZIzj0EAwIDRwAwRAIgH0UU0OMW7xZ55kb3Gq1HMHj6\n"
	  "XNunUe7UK9DbdCGsRxICIGaKl55cNVd6K6GAIxToX3zP8yk/OVxzJz8IhG4J+hyo\n"
	  "-----END CERTIFICATE-----\n" },
	{ "tls/cert.pem",
	  "-----BEGIN CERTIFICATE-----\n"
	  "MIIBmzCCAUGgAwIBAgIBBzAKBggqhkjOPQQDAjAjMSEwHwYDVQQDDBhmbHV4cmVs\n"
	  "YXkgY29uZmlnLXRlc3QgQ0EwIBcNMjYxMjAxMTM1NDUxWhgPMjEyNjExMDcxMzU0\n"
	  "NTFaMBQxEjAQBgNVBAMMCTEyNy4wLjAuMTBZMBMGByqGSM49AgEGCCqGSM49AwEH\n"
	  "A0IABL03qNYPW13/wwr8XNH/wZLpCuPFQKbbMlvtLPOwMnlEdoqNtQoERX4xoMRB\n"
	  "9qi0g8CYUYW3ayo5EwNPysbm1mCjczBxMA8GA1UdEQQIMAaHBH8AAAEwCQYDVR0T\n"
	  "BAIwADATBgNVHSUEDDAKBggrBgEFBQcDATAdBgNVHQ4EFgQUe/IgEjcwyFTSsSFt\n"
	  "s/G8qVGH85QwHwYDVR0jBBgwFoAUsprbca/TRrQf7I9s4idxDbLAbdkwCgYIKoZI\n"
	  "zj0EAwIDSAAwRQIgGd7F0n1Ks20ujwOlkWGaY9PF83IZTFhpVwS6L8ArtW8CIQCu\n"
	  "nlzdn4UoOoLFL4S/V7dj15V16d/Bq363rclPHs7qfA==\n"
	  "-----END CERTIFICATE-----\n" },
	{ "tls/key.pem",
	  "-----BEGIN PRIVATE KEY-----\n"
	  "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgarAeSNYBHNyf9pth\n"
	  "VYXCQmMKPoCY2y0KikqL5MdrHoyhRANCAAS9N6jWD1td/8MK/FzR/8GS6QrjxUCm\n"
	  "2zJb7SzzsDJ5RHaKjbUKBEV+MaDEQfaotIPAmFGFt2sqORMDT8rG5tZg\n"
	  "-----END PRIVATE KEY-----\n" },
};

/* A new directory under $FUZZ_TMPDIR, /dev/shm, $TMPDIR or /tmp, as an
 * absolute path (relative paths in the conf are taken against it). */
static char *
fuzz_conf_mkdtemp(void)
{
	const char *base = getenv("FUZZ_TMPDIR");
	if (base == NULL || *base == '\0')
		base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
	if (base == NULL || *base == '\0')
		base = "/tmp";
	char *tmpl = util_printf("%s/fuzz_conf-XXXXXX", base);
	if (mkdtemp(tmpl) == NULL) {
		fprintf(stderr, "fuzz_conf: mkdtemp %s: %s\n", tmpl, strerror(errno));
		exit(99);
	}
	char *dir = realpath(tmpl, NULL);
	free(tmpl);
	if (dir == NULL)
		exit(99);
	return dir;
}

/* The environment tests/configs/ expects, pointing into the directory. */
static void
fuzz_conf_env(void)
{
	char *d = util_printf("%s/secrets", fuzz_conf_dir);
	setenv("FR_TEST_SECRETS", d, 1);
	setenv("CREDENTIALS_DIRECTORY", d, 1);
	free(d);
	d = util_printf("%s/tls", fuzz_conf_dir);
	setenv("FR_TEST_TLS_DIR", d, 1);
	free(d);
	setenv("FR_TEST_TOKEN", "env-token", 1);
	setenv("FR_TEST_URL", "https://hooks.slack.com/services/T1/B1/env", 1);
	setenv("FR_TEST_EMPTY", "", 1);
	unsetenv("FR_TEST_UNSET");
	unsetenv("STATE_DIRECTORY");
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_conf_dir = fuzz_conf_mkdtemp();
	fuzz_conf_file = util_printf("%s/fluxrelay.conf", fuzz_conf_dir);
	atexit(fuzz_conf_cleanup);
	const char *subdirs[] = { "secrets", "tls" };
	for (size_t i = 0; i < 2; i++) {
		char *sub = util_printf("%s/%s", fuzz_conf_dir, subdirs[i]);
		mkdir(sub, 0700);
		free(sub);
	}
	for (size_t i = 0; i < sizeof(fuzz_conf_files) / sizeof(fuzz_conf_files[0]); i++)
		fuzz_conf_put(fuzz_conf_files[i].name, fuzz_conf_files[i].text);
	fuzz_conf_env();
	/* libconfig would read "@include \"/dev/stdin\"" from here. */
	if (freopen("/dev/null", "r", stdin) == NULL)
		exit(99);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_conf_write(fuzz_conf_file, data, size);
	char *errors = (char *)0x1;   /* conf_load must set it on every path */
	struct conf *c = conf_load(fuzz_conf_file, &errors);
	if (c != NULL) {
		if (errors != NULL)
			fuzz_conf_fail("both a conf and errors returned", errors);
		fuzz_conf_check_conf(c);
		conf_free(c);
		return 0;
	}
	if (errors == NULL || errors == (char *)0x1)
		fuzz_conf_fail("neither a conf nor errors returned", NULL);
	int marker_in_input = memmem(data, size, FUZZ_CONF_MARKER,
	    sizeof(FUZZ_CONF_MARKER) - 1) != NULL;
	fuzz_conf_check_errors(errors, !marker_in_input);
	free(errors);
	return 0;
}
