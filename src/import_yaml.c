/*
 * import_yaml: libyaml's event stream -> a tree per document (import_yaml.h).
 *
 * The tree is built from events rather than with yaml_parser_load(): libyaml's
 * loader registers an anchor before its node is complete, so "&a [*a]" makes a
 * cycle, and it neither bounds alias expansion nor applies merge keys. Here an
 * anchor is registered when its node ends, every alias adds the expanded size
 * of its target to a per-stream budget, and collections are built on an
 * explicit stack (no recursion, whatever the nesting).
 */
#include "import_yaml.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "util.h"

/* Pairs one mapping may take in through merge keys. */
#define IMPORT_YAML_MAX_MERGED 10000

struct import_yaml_anchor {
	char *name;
	struct import_yaml_node *node;
};

struct import_yaml_frame {
	struct import_yaml_node *node;
	char *anchor;             /* registered when the collection ends */
	size_t cap;               /* of node->items */
};

struct import_yaml_ctx {
	struct import_yaml_stream *s;
	struct import_yaml_frame *stack;
	size_t depth, capstack;
	struct import_yaml_anchor *anchors;   /* of the current document */
	size_t nanchors, capanchors;
	size_t alias_nodes;                   /* expanded through aliases, whole stream */
	struct import_yaml_doc doc;           /* the document being read */
	size_t capdocs;
	unsigned *line;
	char *err;
	size_t errlen;
};

static size_t
import_yaml_add(size_t a, size_t b)
{
	return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

static struct import_yaml_node *
import_yaml_new(struct import_yaml_ctx *x, enum import_yaml_type type, const yaml_mark_t *m,
    const yaml_char_t *tag)
{
	struct import_yaml_stream *s = x->s;
	struct import_yaml_node *n = util_calloc(1, sizeof(*n));
	n->type = type;
	n->line = (unsigned)m->line + 1;
	n->tag = tag != NULL ? util_strdup((const char *)tag) : NULL;
	n->weight = 1;
	if (s->nnodes == s->capnodes) {
		s->capnodes = s->capnodes ? 2 * s->capnodes : 64;
		s->nodes = util_realloc(s->nodes, s->capnodes * sizeof(*s->nodes));
	}
	s->nodes[s->nnodes++] = n;
	return n;
}

static int
import_yaml_fail(struct import_yaml_ctx *x, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
import_yaml_fail(struct import_yaml_ctx *x, unsigned line, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(x->err, x->errlen, fmt, ap);
	va_end(ap);
	*x->line = line;
	return -1;
}

static void
import_yaml_push_item(struct import_yaml_frame *f, struct import_yaml_node *child)
{
	struct import_yaml_node *n = f->node;
	if (n->n == f->cap) {
		f->cap = f->cap ? 2 * f->cap : 8;
		n->items = util_realloc(n->items, f->cap * sizeof(*n->items));
	}
	n->items[n->n++] = child;
}

static struct import_yaml_node *
import_yaml_find_anchor(struct import_yaml_ctx *x, const char *name)
{
	/* The latest definition wins: YAML allows an anchor to be redefined. */
	for (size_t i = x->nanchors; i > 0; i--)
		if (strcmp(x->anchors[i - 1].name, name) == 0)
			return x->anchors[i - 1].node;
	return NULL;
}

static void
import_yaml_clear_anchors(struct import_yaml_ctx *x)
{
	for (size_t i = 0; i < x->nanchors; i++)
		free(x->anchors[i].name);
	x->nanchors = 0;
}

/* A complete node (or an alias's target) goes into its parent or becomes the root. */
static void
import_yaml_complete(struct import_yaml_ctx *x, struct import_yaml_node *n, const char *anchor)
{
	if (x->depth > 0) {
		struct import_yaml_frame *f = &x->stack[x->depth - 1];
		import_yaml_push_item(f, n);
		/* Items count twice for mappings (key and value); weight is a bound, not a count. */
		f->node->weight = import_yaml_add(f->node->weight, n->weight);
	} else {
		x->doc.root = n;
	}
	if (anchor != NULL) {
		if (x->nanchors == x->capanchors) {
			x->capanchors = x->capanchors ? 2 * x->capanchors : 8;
			x->anchors = util_realloc(x->anchors, x->capanchors * sizeof(*x->anchors));
		}
		x->anchors[x->nanchors].name = util_strdup(anchor);
		x->anchors[x->nanchors].node = n;
		x->nanchors++;
	}
}

static bool
import_yaml_same_key(const struct import_yaml_node *a, const struct import_yaml_node *b)
{
	return a->type == IMPORT_YAML_SCALAR && b->type == IMPORT_YAML_SCALAR &&
	    a->len == b->len && memcmp(a->value, b->value, a->len) == 0;
}

static bool
import_yaml_is_merge_key(const struct import_yaml_node *k)
{
	return k->type == IMPORT_YAML_SCALAR && k->len == 2 && memcmp(k->value, "<<", 2) == 0 &&
	    (k->tag == NULL ? k->plain : strcmp(k->tag, "tag:yaml.org,2002:merge") == 0);
}

/* qsort_r over key indexes of mapping m: by bytes, then by position. */
static int
import_yaml_key_cmp(const void *pa, const void *pb, void *m)
{
	size_t a = *(const size_t *)pa, b = *(const size_t *)pb;
	const struct import_yaml_node *ka = ((struct import_yaml_node *)m)->items[2 * a];
	const struct import_yaml_node *kb = ((struct import_yaml_node *)m)->items[2 * b];
	size_t n = ka->len < kb->len ? ka->len : kb->len;
	int c = memcmp(ka->value, kb->value, n);
	if (c == 0 && ka->len != kb->len)
		c = ka->len < kb->len ? -1 : 1;
	if (c == 0)
		c = a < b ? -1 : a > b;
	return c;
}

/*
 * A mapping is complete: reject a key given twice (scalar keys only; sorted,
 * so a mapping of many keys stays n log n), then apply merge keys: the
 * mapping's own pairs first, then those of each merged mapping whose key is
 * not there yet (an earlier mapping in a merge list wins over a later one).
 */
static int
import_yaml_finish_map(struct import_yaml_ctx *x, struct import_yaml_node *m)
{
	size_t npairs = m->n / 2, nkeys = 0, nmerge = 0;
	size_t *idx = util_calloc(npairs ? npairs : 1, sizeof(*idx));
	int rc = -1;
	for (size_t i = 0; i < npairs; i++) {
		if (m->items[2 * i]->type == IMPORT_YAML_SCALAR)
			idx[nkeys++] = i;
		if (import_yaml_is_merge_key(m->items[2 * i]))
			nmerge++;
	}
	qsort_r(idx, nkeys, sizeof(*idx), import_yaml_key_cmp, m);
	for (size_t i = 1; i < nkeys; i++) {
		const struct import_yaml_node *a = m->items[2 * idx[i - 1]];
		const struct import_yaml_node *b = m->items[2 * idx[i]];
		if (import_yaml_same_key(a, b)) {
			char shown[64];
			size_t n = 0;
			for (size_t j = 0; j < b->len && n + 5 < sizeof(shown); j++) {
				unsigned char ch = (unsigned char)b->value[j];
				if (ch < 0x20 || ch == 0x7f || ch == '"' || ch == '\\')
					n += (size_t)snprintf(shown + n, sizeof(shown) - n, "\\x%02x", ch);
				else
					shown[n++] = (char)ch;
			}
			shown[n] = '\0';
			import_yaml_fail(x, b->line, "duplicate key \"%s\" (first at line %u)", shown,
			    a->line);
			goto out;
		}
	}
	if (nmerge == 0) {
		rc = 0;
		goto out;
	}

	struct import_yaml_node **own = m->items;
	size_t nown = npairs, cap = 0, merged = 0;
	m->items = NULL;
	m->n = 0;
	for (size_t i = 0; i < nown; i++) {
		if (import_yaml_is_merge_key(own[2 * i]))
			continue;
		if (m->n + 2 > cap) {
			cap = cap ? 2 * cap : 16;
			m->items = util_realloc(m->items, cap * sizeof(*m->items));
		}
		m->items[m->n++] = own[2 * i];
		m->items[m->n++] = own[2 * i + 1];
	}
	for (size_t i = 0; i < nown; i++) {
		if (!import_yaml_is_merge_key(own[2 * i]))
			continue;
		const struct import_yaml_node *v = own[2 * i + 1];
		size_t nsrc = v->type == IMPORT_YAML_SEQ ? v->n : 1;
		for (size_t j = 0; j < nsrc; j++) {
			const struct import_yaml_node *src = v->type == IMPORT_YAML_SEQ ? v->items[j] : v;
			if (src->type != IMPORT_YAML_MAP) {
				unsigned l = own[2 * i]->line;
				free(own);
				import_yaml_fail(x, l,
				    "merge key \"<<\" needs a mapping or a list of mappings");
				goto out;
			}
			for (size_t k = 0; k < src->n / 2; k++) {
				bool have = false;
				for (size_t h = 0; h < m->n / 2 && !have; h++)
					have = import_yaml_same_key(m->items[2 * h], src->items[2 * k]);
				if (have)
					continue;
				if (++merged > IMPORT_YAML_MAX_MERGED) {
					unsigned l = own[2 * i]->line;
					free(own);
					import_yaml_fail(x, l, "more than %d keys merged into one mapping",
					    IMPORT_YAML_MAX_MERGED);
					goto out;
				}
				if (m->n + 2 > cap) {
					cap = cap ? 2 * cap : 16;
					m->items = util_realloc(m->items, cap * sizeof(*m->items));
				}
				m->items[m->n++] = src->items[2 * k];
				m->items[m->n++] = src->items[2 * k + 1];
			}
		}
	}
	free(own);
	rc = 0;
out:
	free(idx);
	return rc;
}

/* libyaml's error as "problem (context at line N)" with the problem's line. */
static void
import_yaml_parser_error(struct import_yaml_ctx *x, const yaml_parser_t *p, const char *data,
    size_t len)
{
	const char *problem = p->problem ? p->problem : "invalid YAML";
	unsigned line = (unsigned)p->problem_mark.line + 1;
	if (p->error == YAML_MEMORY_ERROR) {
		import_yaml_fail(x, 0, "out of memory");
		return;
	}
	if (p->error == YAML_READER_ERROR) {
		/* The reader reports a byte offset, not a mark. */
		size_t end = p->problem_offset < len ? p->problem_offset : len;
		line = 1;
		for (size_t i = 0; i < end; i++)
			line += data[i] == '\n';
		if (p->problem_value != -1)
			import_yaml_fail(x, line, "%s (byte 0x%02x)", problem, (unsigned)p->problem_value & 0xff);
		else
			import_yaml_fail(x, line, "%s", problem);
		return;
	}
	if (p->context != NULL)
		import_yaml_fail(x, line, "%s (%s at line %zu)", problem, p->context,
		    (size_t)p->context_mark.line + 1);
	else
		import_yaml_fail(x, line, "%s", problem);
}

static int
import_yaml_event(struct import_yaml_ctx *x, const yaml_event_t *ev)
{
	struct import_yaml_stream *s = x->s;
	struct import_yaml_node *n;
	switch (ev->type) {
	case YAML_DOCUMENT_START_EVENT:
		x->doc.root = NULL;
		x->doc.line = (unsigned)ev->start_mark.line + 1;
		x->doc.index++;
		import_yaml_clear_anchors(x);
		return 0;
	case YAML_DOCUMENT_END_EVENT:
		if (s->ndocs == x->capdocs) {
			x->capdocs = x->capdocs ? 2 * x->capdocs : 8;
			s->docs = util_realloc(s->docs, x->capdocs * sizeof(*s->docs));
		}
		s->docs[s->ndocs++] = x->doc;
		x->doc.root = NULL;
		return 0;
	case YAML_SCALAR_EVENT:
		n = import_yaml_new(x, IMPORT_YAML_SCALAR, &ev->start_mark, ev->data.scalar.tag);
		n->len = ev->data.scalar.length;
		n->value = util_malloc(n->len + 1);
		memcpy(n->value, ev->data.scalar.value, n->len);
		n->value[n->len] = '\0';
		n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
		import_yaml_complete(x, n, (const char *)ev->data.scalar.anchor);
		return 0;
	case YAML_ALIAS_EVENT:
		n = import_yaml_find_anchor(x, (const char *)ev->data.alias.anchor);
		if (n == NULL)
			return import_yaml_fail(x, (unsigned)ev->start_mark.line + 1,
			    "unknown alias *%s", (const char *)ev->data.alias.anchor);
		x->alias_nodes = import_yaml_add(x->alias_nodes, n->weight);
		if (x->alias_nodes > IMPORT_YAML_MAX_ALIAS_NODES)
			return import_yaml_fail(x, (unsigned)ev->start_mark.line + 1,
			    "aliases expand to more than %d nodes", IMPORT_YAML_MAX_ALIAS_NODES);
		import_yaml_complete(x, n, NULL);
		return 0;
	case YAML_SEQUENCE_START_EVENT:
	case YAML_MAPPING_START_EVENT: {
		bool seq = ev->type == YAML_SEQUENCE_START_EVENT;
		if (x->depth >= IMPORT_YAML_MAX_DEPTH)
			return import_yaml_fail(x, (unsigned)ev->start_mark.line + 1,
			    "nested more than %d levels deep", IMPORT_YAML_MAX_DEPTH);
		const yaml_char_t *tag = seq ? ev->data.sequence_start.tag : ev->data.mapping_start.tag;
		const yaml_char_t *anchor = seq ? ev->data.sequence_start.anchor
		    : ev->data.mapping_start.anchor;
		n = import_yaml_new(x, seq ? IMPORT_YAML_SEQ : IMPORT_YAML_MAP, &ev->start_mark, tag);
		if (x->depth == x->capstack) {
			x->capstack = x->capstack ? 2 * x->capstack : 16;
			x->stack = util_realloc(x->stack, x->capstack * sizeof(*x->stack));
		}
		x->stack[x->depth].node = n;
		x->stack[x->depth].anchor = anchor ? util_strdup((const char *)anchor) : NULL;
		x->stack[x->depth].cap = 0;
		x->depth++;
		return 0;
	}
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT: {
		struct import_yaml_frame f = x->stack[--x->depth];
		int rc = 0;
		if (f.node->type == IMPORT_YAML_MAP)
			rc = import_yaml_finish_map(x, f.node);
		if (rc == 0)
			import_yaml_complete(x, f.node, f.anchor);
		free(f.anchor);
		return rc;
	}
	default:
		return 0;
	}
}

int
import_yaml_parse(const char *data, size_t len, struct import_yaml_stream *s,
    unsigned *line, char *err, size_t errlen)
{
	struct import_yaml_ctx x = { .s = s, .line = line, .err = err, .errlen = errlen };
	yaml_parser_t p;
	int rc = -1;
	*line = 0;
	err[0] = '\0';
	if (!yaml_parser_initialize(&p))
		return import_yaml_fail(&x, 0, "out of memory");
	yaml_parser_set_input_string(&p, (const unsigned char *)data, len);
	for (;;) {
		yaml_event_t ev;
		if (!yaml_parser_parse(&p, &ev)) {
			import_yaml_parser_error(&x, &p, data, len);
			goto out;
		}
		bool end = ev.type == YAML_STREAM_END_EVENT;
		int r = import_yaml_event(&x, &ev);
		yaml_event_delete(&ev);
		if (r < 0)
			goto out;
		if (end)
			break;
	}
	rc = 0;
out:
	while (x.depth > 0)
		free(x.stack[--x.depth].anchor);
	free(x.stack);
	import_yaml_clear_anchors(&x);
	free(x.anchors);
	yaml_parser_delete(&p);
	return rc;
}

void
import_yaml_free(struct import_yaml_stream *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->nnodes; i++) {
		free(s->nodes[i]->tag);
		free(s->nodes[i]->value);
		free(s->nodes[i]->items);
		free(s->nodes[i]);
	}
	free(s->nodes);
	free(s->docs);
	memset(s, 0, sizeof(*s));
}

bool
import_yaml_is_null(const struct import_yaml_node *n)
{
	if (n == NULL || n->type != IMPORT_YAML_SCALAR)
		return false;
	if (n->tag != NULL)
		return strcmp(n->tag, "tag:yaml.org,2002:null") == 0;
	if (!n->plain)
		return false;
	return n->len == 0 || strcmp(n->value, "~") == 0 || strcmp(n->value, "null") == 0 ||
	    strcmp(n->value, "Null") == 0 || strcmp(n->value, "NULL") == 0;
}

const struct import_yaml_node *
import_yaml_get(const struct import_yaml_node *map, const char *key)
{
	if (map == NULL || map->type != IMPORT_YAML_MAP)
		return NULL;
	size_t klen = strlen(key);
	for (size_t i = 0; i + 1 < map->n; i += 2) {
		const struct import_yaml_node *k = map->items[i];
		if (k->type == IMPORT_YAML_SCALAR && k->len == klen && memcmp(k->value, key, klen) == 0)
			return map->items[i + 1];
	}
	return NULL;
}

const char *
import_yaml_str(const struct import_yaml_node *n)
{
	if (n == NULL || n->type != IMPORT_YAML_SCALAR || import_yaml_is_null(n))
		return NULL;
	return n->value;
}

int
import_yaml_bool(const struct import_yaml_node *n, bool *out)
{
	static const char *const yes[] = { "true", "True", "TRUE", "yes", "Yes", "YES",
		"on", "On", "ON", "y", "Y", NULL };
	static const char *const no[] = { "false", "False", "FALSE", "no", "No", "NO",
		"off", "Off", "OFF", "n", "N", NULL };
	if (n == NULL || import_yaml_is_null(n))
		return 0;
	if (n->type != IMPORT_YAML_SCALAR || !n->plain || n->len != strlen(n->value))
		return -1;
	if (n->tag != NULL && strcmp(n->tag, "tag:yaml.org,2002:bool") != 0)
		return -1;
	for (size_t i = 0; yes[i] != NULL; i++) {
		if (strcmp(n->value, yes[i]) == 0) {
			*out = true;
			return 1;
		}
		if (strcmp(n->value, no[i]) == 0) {
			*out = false;
			return 1;
		}
	}
	return -1;
}
