/*
 * faultfs: an LD_PRELOAD shim that makes the disk misbehave for fluxrelay's
 * fault-injection tests (tests/integration/test_faults.py). Test code only:
 * it is built by `make check` and never installed.
 *
 * Faults are read from the control file named by $FR_FAULT_CTL (no variable
 * or no file: no fault), one "key=value" per line, re-read whenever the file
 * changes, so a test turns faults on and off while the daemon runs:
 *
 *   match=queue.db      faults apply to files whose path contains this
 *                       [queue.db: the database, its -wal and -shm files]
 *   fsync=eio           fsync/fdatasync fail with EIO
 *   fsync=delay:1.5     fsync/fdatasync take 1.5 s longer, then succeed
 *   write=enospc        write/pwrite/pwrite64/writev fail with ENOSPC (disk full)
 *   write=eio           ... fail with EIO
 *
 * The path of a descriptor comes from /proc/self/fd, so a file deleted while
 * open still matches ("… (deleted)"). Every intercepted call stats the
 * control file, so a change applies to the very next call: cheap enough for
 * tests, never for use.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

enum faultfs_fsync { FAULTFS_FSYNC_OK, FAULTFS_FSYNC_EIO, FAULTFS_FSYNC_DELAY };

struct faultfs_state {
	char match[256];
	enum faultfs_fsync fsync;
	double delay;
	int write_errno;          /* 0: writes succeed */
};

static pthread_mutex_t faultfs_lock = PTHREAD_MUTEX_INITIALIZER;
static struct faultfs_state faultfs_cur = { "queue.db", FAULTFS_FSYNC_OK, 0, 0 };
static struct timespec faultfs_mtime;
static off_t faultfs_size = -1;

static void
faultfs_parse(FILE *f, struct faultfs_state *s)
{
	char line[512];
	while (fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\r\n")] = '\0';
		char *eq = strchr(line, '=');
		if (eq == NULL)
			continue;
		*eq = '\0';
		const char *k = line, *v = eq + 1;
		if (strcmp(k, "match") == 0) {
			snprintf(s->match, sizeof(s->match), "%s", v);
		} else if (strcmp(k, "fsync") == 0) {
			if (strcmp(v, "eio") == 0) {
				s->fsync = FAULTFS_FSYNC_EIO;
			} else if (strncmp(v, "delay:", 6) == 0) {
				s->fsync = FAULTFS_FSYNC_DELAY;
				s->delay = atof(v + 6);
			}
		} else if (strcmp(k, "write") == 0) {
			if (strcmp(v, "enospc") == 0)
				s->write_errno = ENOSPC;
			else if (strcmp(v, "eio") == 0)
				s->write_errno = EIO;
		}
	}
}

/* The faults in force now (the control file re-read when it changed). */
static struct faultfs_state
faultfs_get(void)
{
	struct faultfs_state s;
	const char *ctl = getenv("FR_FAULT_CTL");
	pthread_mutex_lock(&faultfs_lock);
	if (ctl != NULL) {
		struct stat st;
		if (stat(ctl, &st) != 0) {
			struct faultfs_state none = { "queue.db", FAULTFS_FSYNC_OK, 0, 0 };
			faultfs_cur = none;
			faultfs_size = -1;
		} else if (st.st_size != faultfs_size ||
		    st.st_mtim.tv_sec != faultfs_mtime.tv_sec ||
		    st.st_mtim.tv_nsec != faultfs_mtime.tv_nsec) {
			FILE *f = fopen(ctl, "re");
			if (f != NULL) {
				struct faultfs_state n = { "queue.db", FAULTFS_FSYNC_OK, 0, 0 };
				faultfs_parse(f, &n);
				fclose(f);
				faultfs_cur = n;
				faultfs_size = st.st_size;
				faultfs_mtime = st.st_mtim;
			}
		}
	}
	s = faultfs_cur;
	pthread_mutex_unlock(&faultfs_lock);
	return s;
}

/* Whether fd names a file the faults apply to. */
static int
faultfs_matches(int fd, const struct faultfs_state *s)
{
	char link[64], path[4096];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, path, sizeof(path) - 1);
	if (n <= 0)
		return 0;
	path[n] = '\0';
	return strstr(path, s->match) != NULL;
}

/* 0 to go on with the real call, -1 (errno set) to fail it. */
static int
faultfs_sync(int fd)
{
	struct faultfs_state s = faultfs_get();
	if (s.fsync == FAULTFS_FSYNC_OK || !faultfs_matches(fd, &s))
		return 0;
	if (s.fsync == FAULTFS_FSYNC_EIO) {
		errno = EIO;
		return -1;
	}
	struct timespec ts = { (time_t)s.delay, (long)((s.delay - (double)(time_t)s.delay) * 1e9) };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
	return 0;
}

static int
faultfs_write(int fd)
{
	struct faultfs_state s = faultfs_get();
	if (s.write_errno == 0 || !faultfs_matches(fd, &s))
		return 0;
	errno = s.write_errno;
	return -1;
}

#define FAULTFS_REAL(name) \
	static __typeof__(name) *real; \
	if (real == NULL) \
		real = (__typeof__(name) *)dlsym(RTLD_NEXT, #name)

int
fsync(int fd)
{
	FAULTFS_REAL(fsync);
	if (faultfs_sync(fd) < 0)
		return -1;
	return real(fd);
}

int
fdatasync(int fd)
{
	FAULTFS_REAL(fdatasync);
	if (faultfs_sync(fd) < 0)
		return -1;
	return real(fd);
}

ssize_t
write(int fd, const void *buf, size_t n)
{
	FAULTFS_REAL(write);
	/* stdout and stderr (logs) never fail: only the queue's files do. */
	if (fd > 2 && faultfs_write(fd) < 0)
		return -1;
	return real(fd, buf, n);
}

ssize_t
pwrite(int fd, const void *buf, size_t n, off_t off)
{
	FAULTFS_REAL(pwrite);
	if (faultfs_write(fd) < 0)
		return -1;
	return real(fd, buf, n, off);
}

ssize_t
pwrite64(int fd, const void *buf, size_t n, off64_t off)
{
	FAULTFS_REAL(pwrite64);
	if (faultfs_write(fd) < 0)
		return -1;
	return real(fd, buf, n, off);
}

ssize_t
writev(int fd, const struct iovec *iov, int cnt)
{
	FAULTFS_REAL(writev);
	if (fd > 2 && faultfs_write(fd) < 0)
		return -1;
	return real(fd, iov, cnt);
}
