/*
 * event_fast: the event parser's fast path (see event.c for how it fits).
 *
 * jansson spends most of its time building a tree of allocated nodes that
 * event_parse_reference() reads a dozen strings from. The fast path instead
 * walks the body once with one small recursive-descent tokenizer (RFC 8259:
 * whitespace, objects, arrays, strings, numbers, literals), validating it as
 * jansson would, and keeps only what the event needs: slices of the body for
 * strings without escapes, decoded copies in scratch space for the others.
 *
 * Whatever it is unsure of makes it give up (return -1 here, NULL from
 * event_parse_fast), never reject: lone surrogates, bodies deeper than
 * EVENT_MAX_DEPTH, more than EVENT_FAST_MAXMETA metadata entries, a known
 * field of the wrong type, any syntax error. The reference path then decides
 * and words the error. \u0000 is decoded to U+FFFD and numbers of any
 * magnitude are skipped, as the reference does (event.c).
 *
 * Duplicate member names are taken as jansson takes them without
 * JSON_REJECT_DUPLICATES: the last one wins. A known field's later value
 * overwrites its slot (a later null timestamp clears it), a later
 * involvedObject or metadata object starts afresh, and of two metadata
 * entries with the same key the later wins in event_assemble().
 *
 * Which members it keeps and how it checks them comes from event_fields[]
 * (event_internal.h), as for the reference. Pure; any thread.
 */
#include "event_internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define EVENT_FAST_SCRATCH 1024   /* on-stack bytes for decoded strings */
#define EVENT_FAST_MAXMETA 64     /* metadata entries (Flux sends a handful) */

struct event_fast {
	const unsigned char *p;     /* cursor */
	const unsigned char *end;   /* one past the body */
	size_t len;                 /* of the body: bounds the scratch space */
	int depth;                  /* objects and arrays open at the cursor */
	char *scratch;              /* decoded strings: sbuf, then heap */
	size_t sused, scap;
	char *heap;                 /* NULL until sbuf runs out; event_parse_fast frees */
	struct event_values vals;   /* by row of event_fields[] */
	size_t nmeta;
	struct event_mtmp meta[EVENT_FAST_MAXMETA];   /* keys NUL-terminated in scratch */
	char sbuf[EVENT_FAST_SCRATCH];
};

static int event_fast_value(struct event_fast *f);

/* 1 when the (decoded) string s is exactly lit. */
static int
event_str_is(const struct event_str *s, const char *lit)
{
	size_t n = strlen(lit);

	return s->n == n && memcmp(s->p, lit, n) == 0;
}

static void
event_fast_ws(struct event_fast *f)
{
	while (f->p < f->end && (*f->p == ' ' || *f->p == '\n' || *f->p == '\r' ||
	    *f->p == '\t'))
		f->p++;
}

/* 1 when the cursor is on ch (the end of the body is never any character). */
static int
event_fast_at(const struct event_fast *f, unsigned char ch)
{
	return f->p < f->end && *f->p == ch;
}

/*
 * n bytes of scratch space for a decoded string. A string never decodes to
 * more than its raw length, a NUL takes the room of a quote, and the strings
 * of one body are disjoint, so after the on-stack buffer one heap block of
 * the body's length always suffices. NULL only if that reasoning broke.
 */
static char *
event_fast_scratch(struct event_fast *f, size_t n)
{
	char *p;

	if (f->scap - f->sused < n) {
		if (f->heap != NULL || n > f->len)
			return NULL;
		f->heap = util_malloc(f->len);
		f->scratch = f->heap;
		f->scap = f->len;
		f->sused = 0;
	}
	p = f->scratch + f->sused;
	f->sused += n;
	return p;
}


/* The value of four hex digits at p, or -1. */
static long
event_fast_hex4(const unsigned char *p, const unsigned char *end)
{
	long v = 0;

	if (end - p < 4)
		return -1;
	for (int i = 0; i < 4; i++) {
		int d = util_hex_digit(p[i]);
		if (d < 0)
			return -1;
		v = v * 16 + d;
	}
	return v;
}

/*
 * Decode the escape at p (on its backslash) into the code point *cp. Returns
 * how many bytes it spans (2, 6, or 12 for a surrogate pair), or 0 for what
 * jansson rejects (unknown escapes, bad hex, lone or reversed surrogates).
 * \u0000 decodes to U+FFFD, as the reference has it (event.c,
 * event_ref_rewrite): the decoded strings are C strings.
 */
static size_t
event_fast_escape(const unsigned char *p, const unsigned char *end, uint32_t *cp)
{
	long hi, lo;

	if (end - p < 2)
		return 0;
	switch (p[1]) {
	case '"': case '\\': case '/': *cp = p[1]; return 2;
	case 'b': *cp = '\b'; return 2;
	case 'f': *cp = '\f'; return 2;
	case 'n': *cp = '\n'; return 2;
	case 'r': *cp = '\r'; return 2;
	case 't': *cp = '\t'; return 2;
	case 'u': break;
	default: return 0;
	}
	if ((hi = event_fast_hex4(p + 2, end)) < 0)
		return 0;
	if (hi < 0xd800 || hi > 0xdfff) {
		*cp = hi == 0 ? 0xfffd : (uint32_t)hi;
		return 6;
	}
	if (hi > 0xdbff || end - p < 12 || p[6] != '\\' || p[7] != 'u')
		return 0;
	lo = event_fast_hex4(p + 8, end);
	if (lo < 0xdc00 || lo > 0xdfff)
		return 0;
	*cp = 0x10000 + (((uint32_t)hi - 0xd800) << 10) + ((uint32_t)lo - 0xdc00);
	return 12;
}

/* Write cp (at most U+10FFFF, not a surrogate) as UTF-8; returns its length. */
static size_t
event_fast_put_utf8(char *o, uint32_t cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | cp >> 6);
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | cp >> 12);
		o[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | cp >> 18);
	o[1] = (char)(0x80 | (cp >> 12 & 0x3f));
	o[2] = (char)(0x80 | (cp >> 6 & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* Decode the already validated string body [p, end) into dst; returns its length. */
static size_t
event_fast_unescape(const unsigned char *p, const unsigned char *end, char *dst)
{
	char *o = dst;

	while (p < end) {
		const unsigned char *bs = memchr(p, '\\', (size_t)(end - p));
		size_t run = (size_t)((bs != NULL ? bs : end) - p);
		uint32_t cp = 0;

		memcpy(o, p, run);
		o += run;
		p += run;
		if (p < end) {
			p += event_fast_escape(p, end, &cp);
			o += event_fast_put_utf8(o, cp);
		}
	}
	return (size_t)(o - dst);
}

/*
 * Nonzero when one of the 8 bytes of w may end a string's plain run: a
 * control character, a byte >= 0x80, '"' or '\\'. It never misses one; a
 * plain byte next to one may be flagged too (a borrow between bytes), which
 * only sends the caller to its byte loop a little early.
 */
static uint64_t
event_fast_special8(uint64_t w)
{
	const uint64_t ones = 0x0101010101010101ull;
	const uint64_t q = w ^ (ones * '"'), b = w ^ (ones * '\\');

	return ((w - ones * 0x20) | (q - ones) | (b - ones) | w) & (ones * 0x80);
}

/*
 * The string token at the cursor (on its opening quote): validate it as
 * jansson does and move past its closing quote. With out, also deliver its
 * decoded value: borrowed from the body when it has no escape and nul is
 * false, else a copy in scratch space, NUL-terminated. Returns 0 or -1.
 */
static int
event_fast_string(struct event_fast *f, struct event_str *out, bool nul)
{
	const unsigned char *start = f->p + 1, *p = start, *end = f->end;
	bool escaped = false;
	uint32_t cp;
	size_t n;
	char *dst;

	for (;;) {
		/* the common case first: a run of printable ASCII, 8 bytes at a
		 * time (a third of the ignored path's parsing time went here) */
		for (uint64_t w; end - p >= 8; p += 8) {
			memcpy(&w, p, sizeof(w));
			if (event_fast_special8(w) != 0)
				break;
		}
		while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
			p++;
		if (p == end)
			return -1;
		if (*p == '"')
			break;
		if (*p == '\\') {
			n = event_fast_escape(p, end, &cp);
			escaped = true;
		} else if (*p >= 0x80) {
			n = util_utf8_len(p, (size_t)(end - p));
		} else {
			n = 0;   /* a control character, raw NUL included */
		}
		if (n == 0)
			return -1;
		p += n;
	}
	f->p = p + 1;
	if (out == NULL)
		return 0;
	n = (size_t)(p - start);
	if (!escaped && !nul) {
		out->p = (const char *)start;
		out->n = n;
		return 0;
	}
	if ((dst = event_fast_scratch(f, n + 1)) == NULL)
		return -1;
	if (escaped) {
		n = event_fast_unescape(start, p, dst);
	} else if (n > 0) {
		memcpy(dst, start, n);
	}
	dst[n] = '\0';
	out->p = dst;
	out->n = n;
	return 0;
}

/*
 * A number token, validated and skipped. Its value is never used (no field
 * of an event is a number), so its magnitude does not matter: like Go's
 * decoder, and the reference since it loads such bodies rewritten, an
 * integer beyond long long or a real beyond double in an unknown field is
 * as good as any other number.
 */
static int
event_fast_number(struct event_fast *f)
{
	const unsigned char *p = f->p, *end = f->end, *digits;

	if (p < end && *p == '-')
		p++;
	digits = p;
	if (p < end && *p == '0')
		p++;
	else
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	if (p == digits)
		return -1;
	if (p < end && *p == '.') {
		const unsigned char *frac = ++p;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
		if (p == frac)
			return -1;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		const unsigned char *e;
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		for (e = p; p < end && *p >= '0' && *p <= '9'; p++)
			;
		if (p == e)
			return -1;
	}
	f->p = p;
	return 0;
}

/* The literal word at the cursor (true, false or null), skipped. */
static int
event_fast_literal(struct event_fast *f, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(f->end - f->p) < n || memcmp(f->p, word, n) != 0)
		return -1;
	f->p += n;
	return 0;
}

/* Enter the object or array at the cursor; gives up past EVENT_MAX_DEPTH. */
static int
event_fast_open(struct event_fast *f)
{
	if (++f->depth > EVENT_MAX_DEPTH)
		return -1;
	f->p++;
	event_fast_ws(f);
	return 0;
}

/*
 * The next member of the object entered with event_fast_open(); *nmembers
 * counts the members read so far (0 before the first). Returns 1 with its
 * decoded key in *key (a NUL-terminated copy when nul) and the cursor on its
 * value; 0 after the closing brace; -1 to give up. A key seen before in the
 * object is no error (see the top of the file).
 */
static int
event_fast_member_next(struct event_fast *f, size_t *nmembers, bool nul, struct event_str *key)
{
	event_fast_ws(f);
	if (event_fast_at(f, '}')) {
		f->p++;
		f->depth--;
		return 0;
	}
	if ((*nmembers)++ > 0) {   /* not the first member: a comma first */
		if (!event_fast_at(f, ','))
			return -1;
		f->p++;
		event_fast_ws(f);
	}
	if (!event_fast_at(f, '"') || event_fast_string(f, key, nul) < 0)
		return -1;
	event_fast_ws(f);
	if (!event_fast_at(f, ':'))
		return -1;
	f->p++;
	event_fast_ws(f);
	return f->p < f->end ? 1 : -1;
}

/* An object whose members are all ignored (validated). */
static int
event_fast_object(struct event_fast *f)
{
	size_t nmembers = 0;
	struct event_str key;
	int r;

	if (event_fast_open(f) < 0)
		return -1;
	while ((r = event_fast_member_next(f, &nmembers, false, &key)) == 1)
		if (event_fast_value(f) < 0)
			return -1;
	return r;
}

static int
event_fast_array(struct event_fast *f)
{
	if (event_fast_open(f) < 0)
		return -1;
	if (event_fast_at(f, ']'))
		goto close;
	for (;;) {
		if (event_fast_value(f) < 0)
			return -1;
		event_fast_ws(f);
		if (event_fast_at(f, ']'))
			goto close;
		if (!event_fast_at(f, ','))
			return -1;
		f->p++;
		event_fast_ws(f);
	}
close:
	f->p++;
	f->depth--;
	return 0;
}

/* Any value at the cursor, validated and skipped. */
static int
event_fast_value(struct event_fast *f)
{
	if (f->p == f->end)
		return -1;
	switch (*f->p) {
	case '{': return event_fast_object(f);
	case '[': return event_fast_array(f);
	case '"': return event_fast_string(f, NULL, false);
	case 't': return event_fast_literal(f, "true");
	case 'f': return event_fast_literal(f, "false");
	case 'n': return event_fast_literal(f, "null");
	default: return event_fast_number(f);
	}
}

/* A member that must be a string (dst NULL: validated, value unused). */
static int
event_fast_want_string(struct event_fast *f, struct event_str *dst)
{
	if (!event_fast_at(f, '"'))
		return -1;
	return event_fast_string(f, dst, false);
}

/*
 * The value at the cursor of member key of involvedObject (involved) or of
 * the event: a field of event_fields[] is type-checked and kept (a string;
 * null too for a timestamp), anything else validated and ignored.
 */
static int
event_fast_field(struct event_fast *f, bool involved, const struct event_str *key)
{
	for (size_t i = 0; i < event_nfields; i++) {
		const struct event_field *fl = &event_fields[i];
		if (fl->keylen != key->n || fl->key[0] != key->p[0] || fl->involved != involved ||
		    memcmp(fl->key, key->p, key->n) != 0)
			continue;
		if (fl->type == EVENT_FIELD_TIMESTAMP && event_fast_at(f, 'n')) {
			f->vals.str[i] = (struct event_str){ NULL, 0 };   /* a later null wins */
			return event_fast_literal(f, "null");
		}
		return event_fast_want_string(f, fl->type == EVENT_FIELD_CHECKED ? NULL :
		    &f->vals.str[i]);
	}
	return event_fast_value(f);   /* unknown: validated, ignored */
}

/* The involvedObject object; a later one replaces an earlier one whole. */
static int
event_fast_involved(struct event_fast *f)
{
	size_t nmembers = 0;
	struct event_str key;
	int r;

	if (!event_fast_at(f, '{') || event_fast_open(f) < 0)
		return -1;
	for (size_t i = 0; i < event_nfields; i++)
		if (event_fields[i].involved)
			f->vals.str[i] = (struct event_str){ NULL, 0 };
	while ((r = event_fast_member_next(f, &nmembers, false, &key)) == 1)
		if (event_fast_field(f, true, &key) < 0)
			return -1;
	return r;
}

/*
 * The metadata object: string values only; a later one replaces an earlier
 * one whole. Entries are classified later, when involvedObject.apiVersion
 * (which may come after) is known.
 */
static int
event_fast_metadata(struct event_fast *f)
{
	size_t nmembers = 0;
	struct event_str key, val;
	int r;

	if (!event_fast_at(f, '{') || event_fast_open(f) < 0)
		return -1;
	f->nmeta = 0;
	while ((r = event_fast_member_next(f, &nmembers, true, &key)) == 1) {
		struct event_mtmp *m;
		if (f->nmeta == EVENT_FAST_MAXMETA || event_fast_want_string(f, &val) < 0)
			return -1;
		m = &f->meta[f->nmeta];
		m->key = key.p;   /* NUL-terminated: event_meta_classify() needs it */
		m->value = val.p;
		m->vlen = val.n;
		m->order = f->nmeta++;
	}
	return r;
}

/* One member of the event object, the cursor on its value. */
static int
event_fast_top_member(struct event_fast *f, const struct event_str *key)
{
	if (event_str_is(key, "involvedObject"))
		return event_fast_involved(f);
	if (event_str_is(key, "metadata"))
		return event_fast_metadata(f);
	return event_fast_field(f, false, key);
}

/* The whole body: one object, whitespace around it, nothing else. */
static int
event_fast_body(struct event_fast *f)
{
	size_t nmembers = 0;
	struct event_str key;
	int r;

	event_fast_ws(f);
	if (!event_fast_at(f, '{') || event_fast_open(f) < 0)
		return -1;
	while ((r = event_fast_member_next(f, &nmembers, false, &key)) == 1)
		if (event_fast_top_member(f, &key) < 0)
			return -1;
	if (r < 0)
		return -1;
	event_fast_ws(f);
	return f->p == f->end ? 0 : -1;
}

/*
 * The checks event_parse_reference() makes on the values, in any order
 * (every failure gives up), then the same normalization and block.
 */
static struct event *
event_fast_finish(struct event_fast *f)
{
	if (event_values_check(&f->vals) < 0)
		return NULL;
	return event_assemble(&f->vals, f->meta, f->nmeta);
}

struct event *
event_parse_fast(const char *buf, size_t len)
{
	struct event_fast f;
	struct event *ev = NULL;

	/* the arrays are written before they are read: not cleared */
	f.p = (const unsigned char *)buf;
	f.end = f.p + len;
	f.len = len;
	f.depth = 0;
	f.scratch = f.sbuf;
	f.sused = 0;
	f.scap = sizeof(f.sbuf);
	f.heap = NULL;
	memset(&f.vals, 0, sizeof(f.vals));
	f.nmeta = 0;

	if (event_fast_body(&f) == 0)
		ev = event_fast_finish(&f);
	free(f.heap);
	return ev;
}

