/*
 * slack_json: jansson's compact output without jansson's writer
 * (slack_json.h). What json_dumps(j, JSON_COMPACT) writes, which this must
 * match byte for byte (tests/unit/test_slack_json.c compares the two):
 *
 *   object   {"k":v,"k2":v2}   keys in the object's (insertion) order
 *   array    [v,v2]            {} and [] when empty
 *   string   "..."             \" \\ \b \f \n \r \t; other bytes < 0x20 as
 *                              \u00XX (upper-case hex); '/', DEL and
 *                              non-ASCII as they are; not UTF-8: an error
 *   integer  %lld
 *   true, false, null
 *   real     jansson's own text (no payload has one; rare enough to ask it)
 */
#include "slack_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bytes that end a run of characters copied as they are. */
static int
slack_json_special(unsigned char c)
{
	return c < 0x20 || c == '"' || c == '\\' || c >= 0x80;
}

static int
slack_json_str(struct util_buf *out, const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0, run = 0;

	util_buf_append(out, "\"", 1);
	while (i < n) {
		unsigned char c = s[i];
		if (!slack_json_special(c)) {
			i++;
			continue;
		}
		if (c >= 0x80) {
			size_t l = util_utf8_len(s + i, n - i);
			if (l == 0)
				return -1;
			i += l;
			continue;
		}
		util_buf_append(out, str + run, i - run);
		char esc[8];
		size_t len = 2;
		esc[0] = '\\';
		switch (c) {
		case '"': esc[1] = '"'; break;
		case '\\': esc[1] = '\\'; break;
		case '\b': esc[1] = 'b'; break;
		case '\f': esc[1] = 'f'; break;
		case '\n': esc[1] = 'n'; break;
		case '\r': esc[1] = 'r'; break;
		case '\t': esc[1] = 't'; break;
		default:
			snprintf(esc, sizeof(esc), "\\u%04X", (unsigned)c);
			len = 6;
			break;
		}
		util_buf_append(out, esc, len);
		i++;
		run = i;
	}
	util_buf_append(out, str + run, i - run);
	util_buf_append(out, "\"", 1);
	return 0;
}

int
slack_json_dump(struct util_buf *out, const json_t *j)
{
	switch (json_typeof(j)) {
	case JSON_OBJECT: {
		const char *key;
		json_t *v;
		int first = 1;
		util_buf_append(out, "{", 1);
		/* json_object_foreach wants a non-const object; it does not change it */
		json_object_foreach((json_t *)j, key, v) {
			if (!first)
				util_buf_append(out, ",", 1);
			first = 0;
			if (slack_json_str(out, key, strlen(key)) < 0)
				return -1;
			util_buf_append(out, ":", 1);
			if (slack_json_dump(out, v) < 0)
				return -1;
		}
		util_buf_append(out, "}", 1);
		return 0;
	}
	case JSON_ARRAY: {
		size_t n = json_array_size(j);
		util_buf_append(out, "[", 1);
		for (size_t i = 0; i < n; i++) {
			if (i > 0)
				util_buf_append(out, ",", 1);
			if (slack_json_dump(out, json_array_get(j, i)) < 0)
				return -1;
		}
		util_buf_append(out, "]", 1);
		return 0;
	}
	case JSON_STRING:
		return slack_json_str(out, json_string_value(j), json_string_length(j));
	case JSON_INTEGER: {
		char num[32];
		int len = snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(j));
		util_buf_append(out, num, (size_t)len);
		return 0;
	}
	case JSON_TRUE:
		util_buf_puts(out, "true");
		return 0;
	case JSON_FALSE:
		util_buf_puts(out, "false");
		return 0;
	case JSON_NULL:
		util_buf_puts(out, "null");
		return 0;
	case JSON_REAL: {
		char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
		if (s == NULL)
			return -1;
		util_buf_puts(out, s);
		free(s);
		return 0;
	}
	}
	return -1;
}

char *
slack_json_string(const json_t *j)
{
	struct util_buf b = { 0 };

	if (j == NULL)
		return NULL;
	/* Most payloads are 1-3 KiB: one allocation instead of six doublings. */
	b.data = util_realloc(NULL, 4096);
	b.cap = 4096;
	b.data[0] = '\0';
	if (slack_json_dump(&b, j) < 0) {
		util_buf_free(&b);
		return NULL;
	}
	return b.data;
}
