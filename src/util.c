/*
 * util: see util.h. Allocation failure aborts (documented there).
 */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void
util_oom(void)
{
	static const char msg[] = "fluxrelay: out of memory\n";
	ssize_t r = write(2, msg, sizeof(msg) - 1);
	(void)r;
	abort();
}

void *
util_malloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (p == NULL)
		util_oom();
	return p;
}

void *
util_calloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (p == NULL)
		util_oom();
	return p;
}

void *
util_realloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (q == NULL)
		util_oom();
	return q;
}

char *
util_strdup(const char *s)
{
	if (s == NULL)
		return NULL;
	return util_strndup(s, strlen(s));
}

char *
util_strndup(const char *s, size_t n)
{
	char *p = util_malloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *
util_vprintf(const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	int n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		util_oom();
	char *p = util_malloc((size_t)n + 1);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	return p;
}

char *
util_printf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *p = util_vprintf(fmt, ap);
	va_end(ap);
	return p;
}

void
util_buf_append(struct util_buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		while (cap < b->len + n + 1)
			cap *= 2;
		b->data = util_realloc(b->data, cap);
		b->cap = cap;
	}
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void
util_buf_puts(struct util_buf *b, const char *s)
{
	util_buf_append(b, s, strlen(s));
}

void
util_buf_printf(struct util_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *p = util_vprintf(fmt, ap);
	va_end(ap);
	util_buf_puts(b, p);
	free(p);
}

void
util_buf_json_string(struct util_buf *b, const char *s)
{
	util_buf_puts(b, "\"");
	const char *run = s;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p >= 0x20 && *p != '"' && *p != '\\')
			continue;
		util_buf_append(b, run, (size_t)((const char *)p - run));
		if (*p == '"' || *p == '\\') {
			char esc[2] = { '\\', (char)*p };
			util_buf_append(b, esc, 2);
		} else if (*p == '\n') {
			util_buf_puts(b, "\\n");
		} else {
			util_buf_printf(b, "\\u%04x", *p);
		}
		run = (const char *)p + 1;
	}
	util_buf_puts(b, run);
	util_buf_puts(b, "\"");
}

void
util_buf_free(struct util_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

double
util_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double
util_mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

char *
util_read_file(const char *path, size_t *len, char *err, size_t errlen)
{
	char *data = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return NULL;
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		snprintf(err, errlen, "cannot stat %s: %s", path, strerror(errno));
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "cannot read %s: is a directory", path);
		goto out;
	}
	size_t cap = st.st_size > 0 && st.st_size <= UTIL_READ_MAX ? (size_t)st.st_size + 1 : 4096;
	size_t n = 0;
	data = util_malloc(cap);
	for (;;) {
		if (n + 1 >= cap) {
			cap *= 2;
			data = util_realloc(data, cap);
		}
		ssize_t r = read(fd, data + n, cap - n - 1);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
			free(data);
			data = NULL;
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > UTIL_READ_MAX) {
			/* A config or secret naming /dev/zero must not exhaust memory. */
			snprintf(err, errlen, "cannot read %s: larger than %d MiB", path,
			    UTIL_READ_MAX >> 20);
			free(data);
			data = NULL;
			goto out;
		}
	}
	data[n] = '\0';
	if (len)
		*len = n;
out:
	close(fd);
	return data;
}

size_t
util_entity_len(const char *s, size_t n)
{
	if (n >= 5 && memcmp(s, "&amp;", 5) == 0)
		return 5;
	if (n >= 4 && (memcmp(s, "&lt;", 4) == 0 || memcmp(s, "&gt;", 4) == 0))
		return 4;
	return 0;
}

size_t
util_utf8_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len;
	unsigned char lo = 0x80, hi = 0xbf;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		if (c == 0xe0)
			lo = 0xa0;          /* overlong */
		else if (c == 0xed)
			hi = 0x9f;          /* U+D800..U+DFFF */
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		if (c == 0xf0)
			lo = 0x90;          /* overlong */
		else if (c == 0xf4)
			hi = 0x8f;          /* past U+10FFFF */
	} else {
		return 0;
	}
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return len;
}

int
util_hex_digit(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
util_hex_decode(const char *hex, size_t n, unsigned char *out)
{
	for (size_t i = 0; i < n; i++) {
		int hi = util_hex_digit((unsigned char)hex[2 * i]);
		int lo = util_hex_digit((unsigned char)hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

int
util_random(void *buf, size_t n)
{
	unsigned char *p = buf;
	while (n > 0) {
		ssize_t r = getrandom(p, n, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

void
util_new_id(char out[UTIL_ID_SIZE])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char raw[16];
	if (util_random(raw, sizeof(raw)) < 0) {
		/* getrandom cannot fail for 16 bytes once the pool is seeded; fall back anyway. */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		for (size_t i = 0; i < sizeof(raw); i++)
			raw[i] = (unsigned char)((ts.tv_nsec >> (i % 8)) ^ (i * 131) ^ getpid());
	}
	for (size_t i = 0; i < 16; i++) {
		out[2 * i] = hex[raw[i] >> 4];
		out[2 * i + 1] = hex[raw[i] & 15];
	}
	out[32] = '\0';
}

int
util_ct_equal(const void *a, const void *b, size_t n)
{
	const volatile unsigned char *x = a, *y = b;
	unsigned char d = 0;
	for (size_t i = 0; i < n; i++)
		d |= x[i] ^ y[i];
	return d == 0;
}

char *
util_redact_url(const char *url)
{
	if (url == NULL)
		return util_strdup("(none)");
	const char *p = strstr(url, "://");
	if (p == NULL)
		return util_strdup("…");
	p += 3;
	const char *slash = strchr(p, '/');
	struct util_buf b = {0};
	/* Drop any userinfo: it is a credential. */
	const char *at = memchr(p, '@', slash ? (size_t)(slash - p) : strlen(p));
	util_buf_append(&b, url, (size_t)(p - url));
	if (at != NULL)
		p = at + 1;
	if (slash == NULL) {
		util_buf_puts(&b, p);
		return b.data;
	}
	util_buf_append(&b, p, (size_t)(slash - p));
	const char *s = slash;
	int seg = 0;
	while (*s == '/') {
		const char *e = strchr(s + 1, '/');
		size_t n = e ? (size_t)(e - s - 1) : strlen(s + 1);
		util_buf_puts(&b, "/");
		/* Keep the first segment (e.g. "services", "api") whole; mask the rest. */
		if (seg == 0 && n > 0 && n <= 16)
			util_buf_append(&b, s + 1, n);
		else if (n > 0 && e != NULL)
			util_buf_printf(&b, "%c…", s[1]);
		else if (n > 0)
			util_buf_puts(&b, "…");
		seg++;
		if (e == NULL)
			break;
		s = e;
	}
	return b.data;
}
