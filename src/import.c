/*
 * import: `fluxrelay import [-o FILE] [--secrets-dir DIR] MANIFEST.yaml... | -`
 * (import.h). The conversion itself is import_map's; this file does the I/O.
 *
 * Order, so that bad input changes nothing: read every manifest, convert,
 * then (only on success) create the secrets directory (0700) and its files,
 * then the config. Every file is written under a temporary name created with
 * O_EXCL and renamed into place, so a reader never sees half a file and a
 * planted symlink is replaced rather than followed.
 */
#include "import.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "import_map.h"
#include "util.h"

static void
import_usage(FILE *f)
{
	fprintf(f,
	    "usage: fluxrelay import [-o FILE] [--secrets-dir DIR] MANIFEST.yaml... | -\n"
	    "\n"
	    "Turn Flux notification-controller Alerts, Providers and their Secrets\n"
	    "(YAML, several documents or a kind: List; '-' = standard input) into a\n"
	    "fluxrelay configuration. Warnings go to standard error.\n"
	    "\n"
	    "  -o, --output FILE      write the configuration to FILE (atomically) [stdout]\n"
	    "      --secrets-dir DIR  write each secret to a file in DIR (mode 0600; DIR\n"
	    "                         created 0700) and reference it with *_file; without\n"
	    "                         it, secrets are referenced as *_env variables\n"
	    "\n"
	    "Exit status: 0 imported, 1 no alert could be imported (or an I/O error),\n"
	    "2 usage, 65 invalid YAML.\n");
}

static int
import_write_all(int fd, const void *data, size_t n)
{
	const char *p = data;
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/*
 * Write data into dirfd/name through a fresh temporary file in the same
 * directory (O_CREAT|O_EXCL|O_NOFOLLOW, then fsync and rename). mode is set
 * with fchmod, so the umask cannot widen or narrow it. 0 / -1 with err.
 */
static int
import_write_at(int dirfd, const char *shown_dir, const char *name, const void *data,
    size_t n, mode_t mode, char *err, size_t errlen)
{
	char tmp[NAME_MAX + 1];
	int fd = -1, rc = -1;
	for (int tries = 0; fd < 0 && tries < 16; tries++) {
		char id[UTIL_ID_SIZE];
		util_new_id(id);
		snprintf(tmp, sizeof(tmp), ".fluxrelay-import-%.16s", id);
		fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0 && errno != EEXIST)
			break;
	}
	if (fd < 0) {
		snprintf(err, errlen, "cannot create a file in %s: %s", shown_dir, strerror(errno));
		return -1;
	}
	if (fchmod(fd, mode) < 0 || import_write_all(fd, data, n) < 0 || fsync(fd) < 0) {
		snprintf(err, errlen, "cannot write %s/%s: %s", shown_dir, name, strerror(errno));
		goto out;
	}
	if (close(fd) < 0) {
		fd = -1;
		snprintf(err, errlen, "cannot write %s/%s: %s", shown_dir, name, strerror(errno));
		goto out;
	}
	fd = -1;
	if (renameat(dirfd, tmp, dirfd, name) < 0) {
		snprintf(err, errlen, "cannot rename into %s/%s: %s", shown_dir, name, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	if (rc < 0)
		unlinkat(dirfd, tmp, 0);
	return rc;
}

/* The directory part of path ("." when none) and the file part. New strings. */
static void
import_split(const char *path, char **dir, char **base)
{
	const char *slash = strrchr(path, '/');
	if (slash == NULL) {
		*dir = util_strdup(".");
		*base = util_strdup(path);
	} else {
		*dir = slash == path ? util_strdup("/") : util_strndup(path, (size_t)(slash - path));
		*base = util_strdup(slash + 1);
	}
}

/*
 * The absolute path DIR will have, without creating it: realpath of DIR when
 * it exists, else realpath of its parent + its name. NULL with err.
 */
static char *
import_abs_dir(const char *dir, char *err, size_t errlen)
{
	char *abs = realpath(dir, NULL), *parent = NULL, *base = NULL, *pabs = NULL;
	if (abs != NULL)
		return abs;
	if (errno != ENOENT) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return NULL;
	}
	char *trimmed = util_strdup(dir);
	size_t n = strlen(trimmed);
	while (n > 1 && trimmed[n - 1] == '/')
		trimmed[--n] = '\0';
	import_split(trimmed, &parent, &base);
	pabs = realpath(parent, NULL);
	if (pabs == NULL)
		snprintf(err, errlen, "%s: %s", parent, strerror(errno));
	else if (strcmp(base, ".") == 0 || strcmp(base, "..") == 0 || *base == '\0')
		snprintf(err, errlen, "%s: not a directory name", dir);
	else
		abs = util_printf("%s%s%s", pabs, strcmp(pabs, "/") == 0 ? "" : "/", base);
	free(trimmed);
	free(parent);
	free(base);
	free(pabs);
	return abs;
}

/* Create DIR (0700) when absent and open it; it must resolve to abs. -1 with err. */
static int
import_open_secrets_dir(const char *dir, const char *abs, char *err, size_t errlen)
{
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
		return -1;
	}
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", dir, strerror(errno));
		return -1;
	}
	char *now = realpath(dir, NULL);
	if (now == NULL || strcmp(now, abs) != 0) {
		/* The config names abs: a directory that moved under us would not match it. */
		snprintf(err, errlen, "%s changed while the import ran", dir);
		free(now);
		close(fd);
		return -1;
	}
	free(now);
	return fd;
}

static int
import_write_secrets(const struct import_map_result *r, const char *dir, const char *abs)
{
	char err[PATH_MAX + 256];
	int fd = import_open_secrets_dir(dir, abs, err, sizeof(err));
	if (fd < 0) {
		fprintf(stderr, "fluxrelay import: %s\n", err);
		return -1;
	}
	int rc = 0;
	for (size_t i = 0; i < r->nsecrets && rc == 0; i++)
		rc = import_write_at(fd, abs, r->secrets[i].file, r->secrets[i].data,
		    r->secrets[i].len, 0600, err, sizeof(err));
	if (rc == 0 && fsync(fd) < 0) {
		snprintf(err, sizeof(err), "cannot sync %s: %s", abs, strerror(errno));
		rc = -1;
	}
	if (rc < 0)
		fprintf(stderr, "fluxrelay import: %s\n", err);
	close(fd);
	return rc;
}

/* The directory -o writes into, opened before anything is written. -1 after a message. */
static int
import_open_output_dir(const char *path)
{
	char *dir = NULL, *base = NULL;
	import_split(path, &dir, &base);
	int fd = *base == '\0' ? -1 : open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		fprintf(stderr, "fluxrelay import: -o %s: %s\n", path,
		    *base == '\0' ? "not a file name" : strerror(errno));
	free(dir);
	free(base);
	return fd;
}

/* The config to standard output, or through a temporary file into dirfd (path's directory). */
static int
import_write_config(const char *path, int dirfd, const char *text)
{
	char err[PATH_MAX + 256];
	char *dir = NULL, *base = NULL;
	int rc = -1;
	if (path == NULL) {
		if (fputs(text, stdout) == EOF || fflush(stdout) == EOF) {
			fprintf(stderr, "fluxrelay import: cannot write to standard output: %s\n",
			    strerror(errno));
			return -1;
		}
		return 0;
	}
	import_split(path, &dir, &base);
	/* The config holds no secret: readable as the umask allows, like any new file. */
	mode_t mask = umask(0);
	umask(mask);
	if (import_write_at(dirfd, dir, base, text, strlen(text), 0666 & ~mask, err,
	    sizeof(err)) < 0)
		goto out;
	if (fsync(dirfd) < 0) {
		snprintf(err, sizeof(err), "cannot sync %s: %s", dir, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	if (rc < 0)
		fprintf(stderr, "fluxrelay import: %s\n", err);
	free(dir);
	free(base);
	return rc;
}

int
import_main(int argc, char **argv)
{
	const char *output = NULL, *secrets_dir = NULL;
	const char **files = util_calloc((size_t)argc + 1, sizeof(*files));
	struct import_map_input *in = NULL;
	struct import_map_result r = {0};
	char *abs = NULL;
	size_t nfiles = 0;
	bool dashdash = false, stdin_used = false;
	int rc = 2, outfd = -1;

	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		const char **dst = NULL;
		if (dashdash || a[0] != '-' || strcmp(a, "-") == 0) {
			if (strcmp(a, "-") == 0) {
				if (stdin_used) {
					fprintf(stderr, "fluxrelay import: '-' given twice\n");
					goto out;
				}
				stdin_used = true;
			}
			files[nfiles++] = a;
			continue;
		}
		if (strcmp(a, "--") == 0) {
			dashdash = true;
			continue;
		}
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			import_usage(stdout);
			rc = 0;
			goto out;
		}
		if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0)
			dst = &output;
		else if (strcmp(a, "--secrets-dir") == 0)
			dst = &secrets_dir;
		else if (strncmp(a, "--output=", 9) == 0)
			output = a + 9;
		else if (strncmp(a, "--secrets-dir=", 14) == 0)
			secrets_dir = a + 14;
		else {
			fprintf(stderr, "fluxrelay import: unknown option '%s'\n", a);
			import_usage(stderr);
			goto out;
		}
		if (dst != NULL) {
			if (i + 1 >= argc || argv[i + 1][0] == '\0') {
				fprintf(stderr, "fluxrelay import: %s needs an argument\n", a);
				goto out;
			}
			*dst = argv[++i];
		}
	}
	if (nfiles == 0) {
		fprintf(stderr, "fluxrelay import: no manifest given (a file, or '-' for standard "
		    "input)\n");
		import_usage(stderr);
		goto out;
	}
	if ((output != NULL && *output == '\0') || (secrets_dir != NULL && *secrets_dir == '\0')) {
		fprintf(stderr, "fluxrelay import: empty file or directory name\n");
		goto out;
	}
	if (secrets_dir != NULL) {
		char err[PATH_MAX + 256];
		abs = import_abs_dir(secrets_dir, err, sizeof(err));
		if (abs == NULL) {
			fprintf(stderr, "fluxrelay import: --secrets-dir %s\n", err);
			goto out;
		}
		if (strstr(abs, "${") != NULL) {
			/* conf expands ${VAR} in *_file values. */
			fprintf(stderr, "fluxrelay import: --secrets-dir %s: a path holding \"${\" "
			    "would be read as a variable reference\n", abs);
			goto out;
		}
	}

	rc = 1;
	in = util_calloc(nfiles, sizeof(*in));
	for (size_t i = 0; i < nfiles; i++) {
		char err[PATH_MAX + 256];
		size_t len = 0;
		bool std = strcmp(files[i], "-") == 0;
		in[i].name = std ? "<stdin>" : files[i];
		in[i].data = util_read_file(std ? "/dev/stdin" : files[i], &len, err, sizeof(err));
		in[i].len = len;
		if (in[i].data == NULL) {
			fprintf(stderr, "fluxrelay import: %s\n", err);
			goto out;
		}
	}

	rc = import_map_convert(in, nfiles, abs, &r);
	fputs(r.messages, stderr);
	if (rc == IMPORT_MAP_EXIT_NOTHING) {
		fprintf(stderr, "fluxrelay import: no alert could be imported; nothing written\n");
		goto out;
	}
	if (rc != 0) {
		fprintf(stderr, "fluxrelay import: invalid YAML; nothing written\n");
		goto out;
	}
	rc = 1;
	if (output != NULL && (outfd = import_open_output_dir(output)) < 0)
		goto out;
	if (abs != NULL && r.nsecrets > 0 && import_write_secrets(&r, secrets_dir, abs) < 0)
		goto out;
	if (import_write_config(output, outfd, r.config) < 0)
		goto out;
	fprintf(stderr, "fluxrelay import: %zu provider%s and %zu alert%s imported, %zu warning%s",
	    r.nproviders, r.nproviders == 1 ? "" : "s", r.nalerts, r.nalerts == 1 ? "" : "s",
	    r.nwarnings, r.nwarnings == 1 ? "" : "s");
	if (r.nsecrets > 0)
		fprintf(stderr, "; %zu secret file%s in %s", r.nsecrets, r.nsecrets == 1 ? "" : "s",
		    abs);
	fprintf(stderr, "\n");
	rc = 0;
out:
	/* The manifests may hold Secrets. */
	for (size_t i = 0; in != NULL && i < nfiles; i++) {
		if (in[i].data != NULL)
			memset((char *)in[i].data, 0, in[i].len);
		free((char *)in[i].data);
	}
	free(in);
	free(files);
	free(abs);
	if (outfd >= 0)
		close(outfd);
	import_map_result_free(&r);
	return rc;
}
