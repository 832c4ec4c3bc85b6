/*
 * template: compile and render alert templates (SPEC §13); the interface is
 * in template.h. This comment is the language reference.
 *
 * Syntax: Go's text/template with {{ and }} as delimiters.
 *   text                  copied as written, not escaped: <https://x|label> stays a link
 *   {{ PIPELINE }}        its value printed, escaped for Slack (& < > as entities)
 *   comments              "{{" directly followed by slash-star, closed by star-slash
 *                         directly before "}}" (or " -}}"); may span lines
 *   {{- and -}}           "{{-" followed by a space, tab, CR or LF trims all such
 *                         whitespace before the action; a space, tab, CR or LF followed
 *                         by "-}}" trims it after the action (exactly Go's rules)
 *   {{ if P }} … {{ else if P }} … {{ else }} … {{ end }}
 *   {{ with P }} … {{ else with P }} … {{ else }} … {{ end }}   dot = P's value
 *   {{ range .metadata }} / {{ range $v := .metadata }} / {{ range $k, $v := .metadata }}
 *     … {{ else }} … {{ end }}   in key order, dot = the value; {{ break }}, {{ continue }}
 *   {{ $x := P }} declares (until the end of the enclosing branch or block),
 *   {{ $x = P }} assigns, $ is the data; an action that declares prints nothing.
 *   A pipeline is commands joined by "|"; each command's value becomes the LAST
 *   argument of the next. Arguments: .a.b field chains, . (dot), $x and $x.a.b,
 *   "strings" with Go's escapes, `raw strings`, integers (decimal, 0x, 0o, 0b, _),
 *   true, false, ( PIPELINE ) and (PIPELINE).a.b.
 *
 * Data (dot at the top, and $): as Flux's event JSON names it.
 *   .involvedObject.kind .name .namespace .apiVersion .uid
 *   .severity .reason .message (as received: "warn" stays "warn")
 *   .timestamp (RFC 3339 as received, "" when none)
 *   .reportingController .reportingInstance .cluster .alert
 *   .metadata.KEY, index .metadata "KEY": the event's normalized metadata (SPEC §5;
 *     token, checksum and digest are hidden; the alert's metadata and summary are
 *     the message's fields, not the event's); missing = ""
 *   .revision.ref .sha .short .digest, from metadata "revision":
 *     REF@ALG:HEX -> ref, sha HEX, digest ALG:HEX;  ALG:HEX -> sha, digest;
 *     REF/HEX (at least 7 hex digits after the last '/') -> ref, sha;
 *     short = the first 7 characters of sha; anything else: all four empty
 *   .incident.state .since .duration (strings) .count (integer): only when compiled
 *     with TEMPLATE_INCIDENT, else a compile error
 * Values are strings, integers, booleans, .metadata (a map) and the objects above.
 * Truth (if, with, and, or, not, default): "", 0, false, empty .metadata and a
 * function's failed value are false; everything else is true.
 * Printing: strings as they are, integers in decimal, true/false, maps and
 * objects as Go prints maps (map[k:v k:v], keys sorted).
 *
 * Functions. Go's: eq (true when the first argument equals any other), ne, lt,
 * le, gt, ge (strings or integers; both of one type), and, or (short-circuit;
 * the deciding argument's value), not, len (bytes of a string, entries of
 * .metadata), index (.metadata by key, a string by byte position), printf
 * (%s %d %v and %%; other cases print as Go does, e.g. %!d(string=x)).
 * Sprig's, value piped in last: lower upper title (Go's strings.Title: each
 * word's first letter) trim (Unicode white space) trimPrefix P S, trimSuffix
 * P S, replace OLD NEW S (every occurrence), contains SUB S, hasPrefix P S,
 * hasSuffix P S, default D V (V unless it is false-ish, then D), trunc N S
 * (the first N characters; N < 0: the last -N), join SEP V (V = .metadata: its
 * values in key order; a scalar: its text). Ours: shortsha S (first 7
 * characters), link URL TEXT (Slack's <URL|TEXT>, both parts escaped, "|" in
 * the URL as %7C, spaces and control characters too; <URL> when TEXT is
 * empty; just TEXT when URL is empty). Compiled with TEMPLATE_URL, a
 * template's actions percent-encode those characters the same way.
 * Integers and booleans given where text is expected are used as printed.
 *
 * Escaping: a string from the data or from a function is escaped when printed;
 * link's value is already fit for Slack and printed as is, also when passed
 * through a variable, and, or, default or with; any other function makes
 * ordinary text of it (printf "%s" (link …) is escaped).
 *
 * Differences from Go. Compile errors: define, template, block, nil, floating-
 * point and character constants, method calls (arguments after a field),
 * range over anything but .metadata, {{ else with }} after if or {{ else if }}
 * after with/range, a variable used outside the branch that declared it, an
 * argument of the wrong type where its type is known (lt .incident.count "3"),
 * printf verbs other than %s %d %v %% in a literal format. At render time a
 * type mismatch Go would report as an execution error gives that function an
 * empty, false value instead: rendering never fails. lower/upper/title map
 * ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic letters and leave other
 * characters as they are; trunc and shortsha count characters, not bytes.
 *
 * Bounds (template.h): source size, nesting depth, arguments per call and
 * variables are compile errors; rendering stops after TEMPLATE_MAX_WORK units
 * (its output then ends in "…"); the caller's limit cuts the output with
 * template_marker(), "… (N more characters)", which Slack messages end in
 * too. Errors name the first problem only, with its line (when the template
 * has several) and column.
 *
 * Structure: a hand-written lexer and recursive-descent parser (Go's
 * text/template/parse, simplified) build a tree in one arena, checking
 * functions, arities, fields and known types as they go; the static type of
 * every expression is a set of value kinds. Rendering walks the tree with a
 * value stack on the C stack (depth bounded by TEMPLATE_MAX_DEPTH), strings
 * borrowed from the event, the template or blocks freed when it ends.
 */
#include "template.h"

#include <stdarg.h>
#include <stdbool.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------------ */
/* Value kinds: one bit each, so a static type is a set of them.      */

enum {
	TP_NIL = 1u << 0,    /* a function's failed value: empty and false */
	TP_STR = 1u << 1,
	TP_INT = 1u << 2,
	TP_BOOL = 1u << 3,
	TP_MAP = 1u << 4,    /* .metadata */
	TP_ROOT = 1u << 5,   /* the data, $ */
	TP_OBJ = 1u << 6,    /* .involvedObject */
	TP_REV = 1u << 7,    /* .revision */
	TP_INC = 1u << 8,    /* .incident */
};
#define TP_OBJECTS (TP_ROOT | TP_OBJ | TP_REV | TP_INC)
#define TP_ANY (TP_STR | TP_INT | TP_BOOL | TP_MAP | TP_OBJECTS)
#define TP_TEXT (TP_STR | TP_INT | TP_BOOL)     /* usable as text */

/* The objects, in the order of their field tables. */
enum tp_objk { TO_ROOT, TO_OBJ, TO_REV, TO_INC, TP_NOBJ };

enum tp_fid {
	TF_ALERT, TF_CLUSTER, TF_INCIDENT, TF_INVOLVED, TF_MESSAGE, TF_METADATA,
	TF_REASON, TF_RCONTROLLER, TF_RINSTANCE, TF_REVISION, TF_SEVERITY, TF_TIMESTAMP,
	TF_APIVERSION, TF_KIND, TF_NAME, TF_NAMESPACE, TF_UID,
	TF_DIGEST, TF_REF, TF_SHA, TF_SHORT,
	TF_COUNT, TF_DURATION, TF_SINCE, TF_STATE,
};

struct tp_fielddef {
	const char *name;
	enum tp_fid id;
	unsigned type;
};

/* Each table sorted by name (strcmp): printing follows it. */
static const struct tp_fielddef tp_root_fields[] = {
	{ "alert", TF_ALERT, TP_STR },
	{ "cluster", TF_CLUSTER, TP_STR },
	{ "incident", TF_INCIDENT, TP_INC },
	{ "involvedObject", TF_INVOLVED, TP_OBJ },
	{ "message", TF_MESSAGE, TP_STR },
	{ "metadata", TF_METADATA, TP_MAP },
	{ "reason", TF_REASON, TP_STR },
	{ "reportingController", TF_RCONTROLLER, TP_STR },
	{ "reportingInstance", TF_RINSTANCE, TP_STR },
	{ "revision", TF_REVISION, TP_REV },
	{ "severity", TF_SEVERITY, TP_STR },
	{ "timestamp", TF_TIMESTAMP, TP_STR },
};
static const struct tp_fielddef tp_obj_fields[] = {
	{ "apiVersion", TF_APIVERSION, TP_STR },
	{ "kind", TF_KIND, TP_STR },
	{ "name", TF_NAME, TP_STR },
	{ "namespace", TF_NAMESPACE, TP_STR },
	{ "uid", TF_UID, TP_STR },
};
static const struct tp_fielddef tp_rev_fields[] = {
	{ "digest", TF_DIGEST, TP_STR },
	{ "ref", TF_REF, TP_STR },
	{ "sha", TF_SHA, TP_STR },
	{ "short", TF_SHORT, TP_STR },
};
static const struct tp_fielddef tp_inc_fields[] = {
	{ "count", TF_COUNT, TP_INT },
	{ "duration", TF_DURATION, TP_STR },
	{ "since", TF_SINCE, TP_STR },
	{ "state", TF_STATE, TP_STR },
};

#define TP_NELEM(a) (sizeof(a) / sizeof((a)[0]))

static const struct {
	const char *name;           /* for messages */
	unsigned bit;
	const struct tp_fielddef *fields;
	size_t n;
} tp_objs[TP_NOBJ] = {
	{ "the data", TP_ROOT, tp_root_fields, TP_NELEM(tp_root_fields) },
	{ ".involvedObject", TP_OBJ, tp_obj_fields, TP_NELEM(tp_obj_fields) },
	{ ".revision", TP_REV, tp_rev_fields, TP_NELEM(tp_rev_fields) },
	{ ".incident", TP_INC, tp_inc_fields, TP_NELEM(tp_inc_fields) },
};

static int
tp_objk_of(unsigned bit)
{
	for (int k = 0; k < TP_NOBJ; k++)
		if (tp_objs[k].bit == bit)
			return k;
	return -1;
}

/* Index of a field in object k's table, or -1. */
static int
tp_field_find(int k, const char *name, size_t len)
{
	for (size_t i = 0; i < tp_objs[k].n; i++) {
		const char *f = tp_objs[k].fields[i].name;
		if (strncmp(f, name, len) == 0 && f[len] == '\0')
			return (int)i;
	}
	return -1;
}

/* ------------------------------------------------------------------ */
/* Functions                                                          */

enum tp_fn {
	FN_AND, FN_CONTAINS, FN_DEFAULT, FN_EQ, FN_GE, FN_GT, FN_HASPREFIX, FN_HASSUFFIX,
	FN_INDEX, FN_JOIN, FN_LE, FN_LEN, FN_LINK, FN_LOWER, FN_LT, FN_NE, FN_NOT, FN_OR,
	FN_PRINTF, FN_REPLACE, FN_SHORTSHA, FN_TITLE, FN_TRIM, FN_TRIMPREFIX, FN_TRIMSUFFIX,
	FN_TRUNC, FN_UPPER,
};

#define TP_BASIC (TP_STR | TP_INT | TP_BOOL)
#define TP_ORDERED (TP_STR | TP_INT)

struct tp_func {
	const char *name;
	enum tp_fn id;
	int min, max;          /* arguments, the piped value included; max -1: any */
	unsigned arg[3];       /* types accepted by the 1st, 2nd, and every later argument */
};

static const struct tp_func tp_funcs[] = {
	{ "and", FN_AND, 1, -1, { TP_ANY, TP_ANY, TP_ANY } },
	{ "contains", FN_CONTAINS, 2, 2, { TP_TEXT, TP_TEXT, 0 } },
	{ "default", FN_DEFAULT, 1, 2, { TP_ANY, TP_ANY, 0 } },
	{ "eq", FN_EQ, 2, -1, { TP_BASIC, TP_BASIC, TP_BASIC } },
	{ "ge", FN_GE, 2, 2, { TP_ORDERED, TP_ORDERED, 0 } },
	{ "gt", FN_GT, 2, 2, { TP_ORDERED, TP_ORDERED, 0 } },
	{ "hasPrefix", FN_HASPREFIX, 2, 2, { TP_TEXT, TP_TEXT, 0 } },
	{ "hasSuffix", FN_HASSUFFIX, 2, 2, { TP_TEXT, TP_TEXT, 0 } },
	{ "index", FN_INDEX, 1, -1, { TP_STR | TP_MAP | TP_OBJECTS, TP_STR | TP_INT,
	    TP_STR | TP_INT } },
	{ "join", FN_JOIN, 2, 2, { TP_TEXT, TP_ANY, 0 } },
	{ "le", FN_LE, 2, 2, { TP_ORDERED, TP_ORDERED, 0 } },
	{ "len", FN_LEN, 1, 1, { TP_STR | TP_MAP | TP_OBJECTS, 0, 0 } },
	{ "link", FN_LINK, 2, 2, { TP_TEXT, TP_TEXT, 0 } },
	{ "lower", FN_LOWER, 1, 1, { TP_TEXT, 0, 0 } },
	{ "lt", FN_LT, 2, 2, { TP_ORDERED, TP_ORDERED, 0 } },
	{ "ne", FN_NE, 2, 2, { TP_BASIC, TP_BASIC, 0 } },
	{ "not", FN_NOT, 1, 1, { TP_ANY, 0, 0 } },
	{ "or", FN_OR, 1, -1, { TP_ANY, TP_ANY, TP_ANY } },
	{ "printf", FN_PRINTF, 1, -1, { TP_TEXT, TP_ANY, TP_ANY } },
	{ "replace", FN_REPLACE, 3, 3, { TP_TEXT, TP_TEXT, TP_TEXT } },
	{ "shortsha", FN_SHORTSHA, 1, 1, { TP_TEXT, 0, 0 } },
	{ "title", FN_TITLE, 1, 1, { TP_TEXT, 0, 0 } },
	{ "trim", FN_TRIM, 1, 1, { TP_TEXT, 0, 0 } },
	{ "trimPrefix", FN_TRIMPREFIX, 2, 2, { TP_TEXT, TP_TEXT, 0 } },
	{ "trimSuffix", FN_TRIMSUFFIX, 2, 2, { TP_TEXT, TP_TEXT, 0 } },
	{ "trunc", FN_TRUNC, 2, 2, { TP_INT, TP_TEXT, 0 } },
	{ "upper", FN_UPPER, 1, 1, { TP_TEXT, 0, 0 } },
};

static const struct tp_func *
tp_func_find(const char *name, size_t len)
{
	for (size_t i = 0; i < TP_NELEM(tp_funcs); i++)
		if (strncmp(tp_funcs[i].name, name, len) == 0 && tp_funcs[i].name[len] == '\0')
			return &tp_funcs[i];
	return NULL;
}

/* ------------------------------------------------------------------ */
/* The tree                                                           */

enum tp_argk { TA_DOT, TA_FIELD, TA_VAR, TA_STR, TA_INT, TA_BOOL, TA_PIPE, TA_FUNC };

/* One .name of a chain, resolved for every object kind it may be applied to. */
struct tp_field {
	struct tp_field *next;
	const char *name;            /* NUL-terminated */
	size_t len;
	signed char idx[TP_NOBJ];    /* index in each object's table, -1 when absent */
};

struct tp_pipe;

struct tp_arg {
	struct tp_arg *next;
	enum tp_argk kind;
	size_t pos, srclen;          /* where in the source (for messages) */
	unsigned type;               /* static type, fields applied */
	const char *s;               /* TA_STR (may hold NUL bytes) */
	size_t len;
	long long i;                 /* TA_INT, TA_BOOL */
	int var;                     /* TA_VAR: slot */
	const struct tp_func *fn;    /* TA_FUNC */
	struct tp_pipe *pipe;        /* TA_PIPE */
	struct tp_field *fields;     /* applied to the value in order */
};

struct tp_cmd {
	struct tp_cmd *next;
	struct tp_arg *args;         /* args->kind == TA_FUNC: a call */
	size_t nargs;
};

struct tp_pipe {
	struct tp_cmd *cmds;
	int decl;                    /* slot the value is stored in, -1 none */
	unsigned type;
};

enum tp_nodek { TN_TEXT, TN_ACTION, TN_IF, TN_RANGE, TN_BREAK, TN_CONTINUE };

struct tp_node;

struct tp_branch {
	struct tp_branch *next;
	bool with;
	struct tp_pipe *cond;
	struct tp_node *body;
};

struct tp_node {
	struct tp_node *next;
	enum tp_nodek kind;
	const char *text;            /* TN_TEXT: valid UTF-8, no NUL */
	size_t len;
	struct tp_pipe *pipe;        /* TN_ACTION; TN_RANGE: what it ranges over */
	struct tp_branch *branches;  /* TN_IF: if/with and its else-ifs */
	struct tp_node *body;        /* TN_RANGE */
	struct tp_node *else_body;   /* TN_IF, TN_RANGE */
	int kvar, vvar;              /* TN_RANGE: key and value slots, -1 none */
};

struct tp_block {
	struct tp_block *next;
	size_t used, cap;
	max_align_t data[];
};

struct template {
	struct tp_block *blocks;     /* every node and string */
	struct tp_node *root;
	size_t nvars;                /* variable slots, $ included */
	unsigned flags;
};

/* Zeroed memory from the template's arena, aligned for any type. */
static void *
tp_new(struct template *t, size_t n)
{
	struct tp_block *b = t->blocks;
	void *p;

	n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
	if (b == NULL || b->cap - b->used < n) {
		size_t cap = n > 4096 ? n : 4096;
		b = util_malloc(sizeof(*b) + cap);
		b->used = 0;
		b->cap = cap;
		b->next = t->blocks;
		t->blocks = b;
	}
	p = (char *)b->data + b->used;
	b->used += n;
	memset(p, 0, n);
	return p;
}

void
template_free(struct template *t)
{
	if (t == NULL)
		return;
	while (t->blocks != NULL) {
		struct tp_block *b = t->blocks;
		t->blocks = b->next;
		free(b);
	}
	free(t);
}

/* ------------------------------------------------------------------ */
/* Lexer                                                              */

enum tp_tok {
	TK_ERROR, TK_EOF, TK_TEXT, TK_LDELIM, TK_RDELIM, TK_SPACE,
	TK_FIELD, TK_DOT, TK_VAR, TK_IDENT, TK_STRING, TK_RAW, TK_NUMBER,
	TK_LPAREN, TK_RPAREN, TK_PIPE, TK_DECLARE, TK_ASSIGN, TK_COMMA, TK_CHAR,
	TK_IF, TK_ELSE, TK_END, TK_RANGE, TK_WITH, TK_BREAK, TK_CONTINUE,
	TK_TRUE, TK_FALSE, TK_NIL, TK_DEFINE, TK_TEMPLATE, TK_BLOCK,
};

static const struct {
	const char *word;
	enum tp_tok type;
} tp_keywords[] = {
	{ "if", TK_IF }, { "else", TK_ELSE }, { "end", TK_END }, { "range", TK_RANGE },
	{ "with", TK_WITH }, { "break", TK_BREAK }, { "continue", TK_CONTINUE },
	{ "true", TK_TRUE }, { "false", TK_FALSE }, { "nil", TK_NIL },
	{ "define", TK_DEFINE }, { "template", TK_TEMPLATE }, { "block", TK_BLOCK },
};

struct tp_token {
	enum tp_tok type;
	size_t pos;                  /* byte offset in the source */
	size_t len;                  /* bytes (TK_TEXT: after trimming) */
};

struct tp_var {
	const char *name;            /* in the source, "$" included */
	size_t len;
	unsigned type;
};

struct tp_parser {
	const char *src;
	size_t n, pos;
	bool in_action;
	int paren;
	size_t action_pos;           /* the "{{" of the current action */
	struct tp_token peek[3];     /* pushed-back tokens, last out first */
	int npeek;
	struct template *t;
	unsigned flags;
	bool failed;
	size_t err_pos;
	char msg[384];
	unsigned dot;                /* static type of dot */
	struct tp_var vars[TEMPLATE_MAX_VARS];
	size_t nvars, maxvars;
	int depth, in_range;
};

/* Record the first error; returns -1 for the caller to pass on. */
static int tp_error(struct tp_parser *p, size_t pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
tp_error(struct tp_parser *p, size_t pos, const char *fmt, ...)
{
	va_list ap;

	if (p->failed)
		return -1;
	p->failed = true;
	p->err_pos = pos;
	va_start(ap, fmt);
	vsnprintf(p->msg, sizeof(p->msg), fmt, ap);
	va_end(ap);
	return -1;
}

/*
 * s[0..n) as a quoted string for a message: printable ASCII and well-formed
 * UTF-8 kept, '"' and '\' escaped, other bytes as \xNN, at most 40 bytes of
 * input (then "…"). out (>= 200 bytes) is always valid UTF-8.
 */
static const char *
tp_quote(char *out, size_t cap, const char *s, size_t n)
{
	size_t o = 0, i = 0;

	out[o++] = '"';
	while (i < n && o + 12 < cap) {
		unsigned char c = (unsigned char)s[i];
		size_t l = c >= 0x80 ? util_utf8_len((const unsigned char *)s + i, n - i) : 1;
		if (i >= 40) {
			memcpy(out + o, "\xe2\x80\xa6", 3);
			o += 3;
			break;
		}
		if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else if (c >= 0x20 && c < 0x7f) {
			out[o++] = (char)c;
		} else if (c >= 0x80 && l > 0) {
			memcpy(out + o, s + i, l);
			o += l;
			i += l;
			continue;
		} else
			o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
		i++;
	}
	out[o++] = '"';
	out[o] = '\0';
	return out;
}

static const char *
tp_token_desc(struct tp_parser *p, const struct tp_token *tk, char *buf, size_t cap)
{
	switch (tk->type) {
	case TK_EOF:
		return "end of template";
	case TK_RDELIM:
		return "\"}}\"";
	case TK_TEXT:
		return "text";
	default:
		return tp_quote(buf, cap, p->src + tk->pos, tk->len);
	}
}

static bool
tp_is_space(int c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/*
 * Letters, digits and '_' as Go's lexer takes them for names; every
 * non-ASCII character counts as a letter. Returns the byte length of the
 * character at i, 0 when it is not one.
 */
static size_t
tp_alnum(const struct tp_parser *p, size_t i)
{
	unsigned char c;

	if (i >= p->n)
		return 0;
	c = (unsigned char)p->src[i];
	if (c >= 0x80)
		return util_utf8_len((const unsigned char *)p->src + i, p->n - i);
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	    c == '_')
		return 1;
	return 0;
}

/* "{{-" + space: s[i] is just after "{{". */
static bool
tp_left_trim(const struct tp_parser *p, size_t i)
{
	return i + 1 < p->n && p->src[i] == '-' && tp_is_space(p->src[i + 1]);
}

/* At "}}" or at space + "-}}" (then *trim). */
static bool
tp_at_right(const struct tp_parser *p, size_t i, bool *trim)
{
	const char *s = p->src;

	*trim = false;
	if (i + 3 < p->n && tp_is_space(s[i]) && s[i + 1] == '-' && s[i + 2] == '}' &&
	    s[i + 3] == '}') {
		*trim = true;
		return true;
	}
	return i + 1 < p->n && s[i] == '}' && s[i + 1] == '}';
}

static bool
tp_at_terminator(const struct tp_parser *p, size_t i)
{
	bool trim;

	if (i >= p->n || tp_is_space(p->src[i]))
		return true;
	switch (p->src[i]) {
	case '.': case ',': case '|': case ':': case ')': case '(':
		return true;
	}
	return tp_at_right(p, i, &trim);
}

static int
tp_bad_char(struct tp_parser *p, size_t i, const char *what)
{
	unsigned char c = (unsigned char)p->src[i];
	size_t l = c >= 0x80 ? util_utf8_len((const unsigned char *)p->src + i, p->n - i) : 1;
	char q[200];

	if (c > 0x20 && c < 0x7f)
		return tp_error(p, i, "%s '%c'", what, c);
	return tp_error(p, i, "%s %s", what, tp_quote(q, sizeof(q), p->src + i, l ? l : 1));
}

/* The text (or end) at p->pos, outside actions; comments are skipped here. */
static int
tp_lex_text(struct tp_parser *p, struct tp_token *tk)
{
	const char *s = p->src;

	for (;;) {
		const char *d;
		size_t x, end, open;
		bool after, rtrim;

		tk->pos = p->pos;
		tk->len = 0;
		if (p->pos >= p->n) {
			tk->type = TK_EOF;
			return 0;
		}
		d = memmem(s + p->pos, p->n - p->pos, "{{", 2);
		x = d != NULL ? (size_t)(d - s) : p->n;
		if (x > p->pos) {
			end = x;
			if (x < p->n && tp_left_trim(p, x + 2))
				while (end > p->pos && tp_is_space(s[end - 1]))
					end--;
			tk->type = TK_TEXT;
			tk->len = end - p->pos;
			p->pos = x;
			if (tk->len > 0)
				return 0;
			continue;
		}
		open = p->pos;
		p->pos += 2;
		after = tp_left_trim(p, p->pos);
		if (p->pos + (after ? 2 : 0) + 1 < p->n && s[p->pos + (after ? 2 : 0)] == '/' &&
		    s[p->pos + (after ? 2 : 0) + 1] == '*') {
			p->pos += (after ? 2 : 0) + 2;
			d = memmem(s + p->pos, p->n - p->pos, "*/", 2);
			if (d == NULL)
				return tp_error(p, open, "unclosed comment");
			p->pos = (size_t)(d - s) + 2;
			if (!tp_at_right(p, p->pos, &rtrim))
				return tp_error(p, open, "comment ends before closing delimiter");
			p->pos += rtrim ? 4 : 2;
			if (rtrim)
				while (p->pos < p->n && tp_is_space(s[p->pos]))
					p->pos++;
			continue;
		}
		tk->type = TK_LDELIM;
		tk->pos = open;
		tk->len = 2;
		p->pos += after ? 2 : 0;
		p->in_action = true;
		p->paren = 0;
		p->action_pos = open;
		return 0;
	}
}

/* Go's scanNumber, then a check that no letter follows. */
static int
tp_lex_number(struct tp_parser *p, struct tp_token *tk)
{
	const char *s = p->src;
	const char *digits = "0123456789_";
	size_t i = p->pos;
	char q[200];

	if (i < p->n && (s[i] == '+' || s[i] == '-'))
		i++;
	if (i < p->n && s[i] == '0') {
		i++;
		if (i < p->n && (s[i] == 'x' || s[i] == 'X')) {
			digits = "0123456789abcdefABCDEF_";
			i++;
		} else if (i < p->n && (s[i] == 'o' || s[i] == 'O')) {
			digits = "01234567_";
			i++;
		} else if (i < p->n && (s[i] == 'b' || s[i] == 'B')) {
			digits = "01_";
			i++;
		}
	}
	while (i < p->n && s[i] != '\0' && strchr(digits, s[i]) != NULL)
		i++;
	if (i < p->n && s[i] == '.') {
		i++;
		while (i < p->n && s[i] != '\0' && strchr(digits, s[i]) != NULL)
			i++;
	}
	if (strlen(digits) == 11 && i < p->n && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < p->n && (s[i] == '+' || s[i] == '-'))
			i++;
		while (i < p->n && ((s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			i++;
	}
	if (strlen(digits) == 23 && i < p->n && (s[i] == 'p' || s[i] == 'P')) {
		i++;
		if (i < p->n && (s[i] == '+' || s[i] == '-'))
			i++;
		while (i < p->n && ((s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			i++;
	}
	if (i < p->n && s[i] == 'i')
		i++;
	if (tp_alnum(p, i) > 0) {
		i += tp_alnum(p, i);
		return tp_error(p, p->pos, "bad number syntax: %s",
		    tp_quote(q, sizeof(q), s + p->pos, i - p->pos));
	}
	tk->type = TK_NUMBER;
	tk->len = i - p->pos;
	p->pos = i;
	return 0;
}

/* .field or $var (or . and $ alone) at p->pos. */
static int
tp_lex_name(struct tp_parser *p, struct tp_token *tk, bool var)
{
	size_t i = p->pos + 1, l;

	if (tp_at_terminator(p, i)) {
		tk->type = var ? TK_VAR : TK_DOT;
		tk->len = 1;
		p->pos = i;
		return 0;
	}
	while ((l = tp_alnum(p, i)) > 0)
		i += l;
	if (!tp_at_terminator(p, i))
		return tp_bad_char(p, i, "bad character");
	tk->type = var ? TK_VAR : TK_FIELD;
	tk->len = i - p->pos;
	p->pos = i;
	return 0;
}

/* "…" (escapes are checked by tp_unquote) or `…` at p->pos. */
static int
tp_lex_quote(struct tp_parser *p, struct tp_token *tk)
{
	const char *s = p->src;
	char q = s[p->pos];
	size_t i;

	for (i = p->pos + 1; i < p->n && s[i] != q; i++) {
		if (q == '`')
			continue;
		if (s[i] == '\\' && i + 1 < p->n && s[i + 1] != '\n')
			i++;
		else if (s[i] == '\n' || s[i] == '\\')
			break;
	}
	if (i >= p->n || s[i] != q)
		return tp_error(p, p->pos, q == '`' ? "unterminated raw quoted string" :
		    "unterminated quoted string");
	tk->type = q == '`' ? TK_RAW : TK_STRING;
	tk->len = i + 1 - p->pos;
	p->pos = i + 1;
	return 0;
}

/* A function name or keyword at p->pos. */
static int
tp_lex_ident(struct tp_parser *p, struct tp_token *tk)
{
	size_t i = p->pos, l;

	while ((l = tp_alnum(p, i)) > 0)
		i += l;
	if (!tp_at_terminator(p, i))
		return tp_bad_char(p, i, "bad character");
	tk->type = TK_IDENT;
	tk->len = i - p->pos;
	for (size_t k = 0; k < TP_NELEM(tp_keywords); k++)
		if (strlen(tp_keywords[k].word) == tk->len &&
		    memcmp(tp_keywords[k].word, p->src + p->pos, tk->len) == 0)
			tk->type = tp_keywords[k].type;
	p->pos = i;
	return 0;
}

static int
tp_lex_action(struct tp_parser *p, struct tp_token *tk)
{
	const char *s = p->src;
	bool trim;
	size_t i;
	unsigned char c;

	tk->pos = p->pos;
	tk->len = 1;
	if (tp_at_right(p, p->pos, &trim)) {
		if (p->paren > 0)
			return tp_error(p, p->pos, "unclosed left parenthesis");
		if (trim)
			p->pos += 2;
		tk->type = TK_RDELIM;
		tk->pos = p->pos;
		tk->len = 2;
		p->pos += 2;
		if (trim)
			while (p->pos < p->n && tp_is_space(s[p->pos]))
				p->pos++;
		p->in_action = false;
		return 0;
	}
	if (p->pos >= p->n)
		return tp_error(p, p->action_pos, "unclosed action");
	c = (unsigned char)s[p->pos];
	if (tp_is_space(c)) {
		i = p->pos;
		while (i < p->n && tp_is_space(s[i]))
			i++;
		/* the space of " -}}" belongs to the delimiter */
		if (i < p->n && s[i] == '-' && tp_at_right(p, i - 1, &trim) && trim) {
			i--;
			if (i == p->pos)
				return tp_lex_action(p, tk);
		}
		tk->type = TK_SPACE;
		tk->len = i - p->pos;
		p->pos = i;
		return 0;
	}
	switch (c) {
	case '=':
		tk->type = TK_ASSIGN;
		p->pos++;
		return 0;
	case ':':
		if (p->pos + 1 >= p->n || s[p->pos + 1] != '=')
			return tp_error(p, p->pos, "expected :=");
		tk->type = TK_DECLARE;
		tk->len = 2;
		p->pos += 2;
		return 0;
	case '|':
		tk->type = TK_PIPE;
		p->pos++;
		return 0;
	case ',':
		tk->type = TK_COMMA;
		p->pos++;
		return 0;
	case '(':
		tk->type = TK_LPAREN;
		p->paren++;
		p->pos++;
		return 0;
	case ')':
		if (--p->paren < 0)
			return tp_error(p, p->pos, "unexpected right parenthesis");
		tk->type = TK_RPAREN;
		p->pos++;
		return 0;
	case '"':
	case '`':
		return tp_lex_quote(p, tk);
	case '\'':
		return tp_error(p, p->pos, "character constants are not supported");
	case '$':
		return tp_lex_name(p, tk, true);
	case '.':
		if (p->pos + 1 < p->n && s[p->pos + 1] >= '0' && s[p->pos + 1] <= '9')
			return tp_lex_number(p, tk);
		return tp_lex_name(p, tk, false);
	case '+': case '-':
	case '0': case '1': case '2': case '3': case '4':
	case '5': case '6': case '7': case '8': case '9':
		return tp_lex_number(p, tk);
	}
	if (tp_alnum(p, p->pos) > 0)
		return tp_lex_ident(p, tk);
	if (c > 0x20 && c < 0x7f) {
		tk->type = TK_CHAR;
		p->pos++;
		return 0;
	}
	return tp_bad_char(p, p->pos, "unexpected character in action:");
}

static void
tp_next(struct tp_parser *p, struct tp_token *tk)
{
	int rc;

	if (p->npeek > 0) {
		*tk = p->peek[--p->npeek];
		return;
	}
	if (p->failed) {
		tk->type = TK_ERROR;
		tk->pos = p->pos;
		tk->len = 0;
		return;
	}
	rc = p->in_action ? tp_lex_action(p, tk) : tp_lex_text(p, tk);
	if (rc != 0)
		tk->type = TK_ERROR;
}

static void
tp_backup(struct tp_parser *p, const struct tp_token *tk)
{
	p->peek[p->npeek++] = *tk;   /* never more than 3: see tp_parse_pipeline */
}

static void
tp_next_nonspace(struct tp_parser *p, struct tp_token *tk)
{
	do
		tp_next(p, tk);
	while (tk->type == TK_SPACE);
}

static void
tp_peek_nonspace(struct tp_parser *p, struct tp_token *tk)
{
	tp_next_nonspace(p, tk);
	tp_backup(p, tk);
}

/* ------------------------------------------------------------------ */
/* Parser                                                             */

enum tp_stop {
	TP_STOP_NONE, TP_STOP_EOF, TP_STOP_END, TP_STOP_ELSE, TP_STOP_ELSE_IF,
	TP_STOP_ELSE_WITH,
};

enum tp_decl { TP_DECL_NONE, TP_DECL_ONE, TP_DECL_RANGE };

static struct tp_pipe *tp_parse_pipeline(struct tp_parser *p, const char *ctx,
    enum tp_tok end, enum tp_decl mode, int rvars[2]);
static int tp_parse_list(struct tp_parser *p, struct tp_node **head, int *stop,
    size_t *stop_pos);

static const char *
tp_type_name(unsigned type)
{
	static const struct {
		unsigned bit;
		const char *name;
	} names[] = {
		{ TP_STR, "string" }, { TP_INT, "integer" }, { TP_BOOL, "boolean" },
		{ TP_MAP, ".metadata" }, { TP_ROOT, "the data" }, { TP_OBJ, ".involvedObject" },
		{ TP_REV, ".revision" }, { TP_INC, ".incident" },
	};

	for (size_t i = 0; i < TP_NELEM(names); i++)
		if (type & names[i].bit)
			return names[i].name;
	return "nothing";
}

static bool
tp_single(unsigned type)
{
	return type != 0 && (type & (type - 1)) == 0;
}

static char *
tp_copy(struct template *t, const char *s, size_t n)
{
	char *c = tp_new(t, n + 1);
	memcpy(c, s, n);
	return c;
}

static int
tp_var_find(struct tp_parser *p, const char *name, size_t len)
{
	for (size_t i = p->nvars; i-- > 0;)
		if (p->vars[i].len == len && memcmp(p->vars[i].name, name, len) == 0)
			return (int)i;
	return -1;
}

static int
tp_var_push(struct tp_parser *p, const struct tp_token *tk, unsigned type)
{
	if (p->nvars >= TEMPLATE_MAX_VARS)
		return tp_error(p, tk->pos, "more than %d variables", TEMPLATE_MAX_VARS);
	if (tk->len == 1)
		return tp_error(p, tk->pos, "cannot declare $");
	p->vars[p->nvars].name = p->src + tk->pos;
	p->vars[p->nvars].len = tk->len;
	p->vars[p->nvars].type = type;
	if (++p->nvars > p->maxvars)
		p->maxvars = p->nvars;
	return (int)p->nvars - 1;
}

static void
tp_var_pop(struct tp_parser *p, size_t mark)
{
	p->nvars = mark;
}

/* "a, b and c" of object k's fields, for messages. */
static void
tp_field_list(const struct tp_parser *p, int k, char *buf, size_t cap)
{
	size_t o = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < tp_objs[k].n && o < cap; i++) {
		if (tp_objs[k].fields[i].id == TF_INCIDENT && !(p->flags & TEMPLATE_INCIDENT))
			continue;
		o += (size_t)snprintf(buf + o, cap - o, "%s%s", o ? ", " : "",
		    tp_objs[k].fields[i].name);
	}
}

/*
 * Apply field f (at pos) to a value of static type *type: resolve it for
 * every object kind the value may be, check it exists and that .incident is
 * allowed, and set *type to the result's type.
 */
static int
tp_resolve(struct tp_parser *p, unsigned *type, struct tp_field *f, size_t pos)
{
	unsigned in = *type, out = 0;
	int nobj = 0, lastk = -1;
	char q[200], list[256];

	for (int k = 0; k < TP_NOBJ; k++) {
		int idx;

		f->idx[k] = -1;
		if (!(in & tp_objs[k].bit))
			continue;
		nobj++;
		lastk = k;
		idx = tp_field_find(k, f->name, f->len);
		if (idx < 0)
			continue;
		if (tp_objs[k].fields[idx].id == TF_INCIDENT && !(p->flags & TEMPLATE_INCIDENT))
			return tp_error(p, pos,
			    ".incident is only available with notify = \"changes\"");
		f->idx[k] = (signed char)idx;
		out |= tp_objs[k].fields[idx].type;
	}
	if (in & TP_MAP)
		out |= TP_STR;
	if (out == 0) {
		tp_quote(q, sizeof(q), f->name, f->len);
		if (nobj == 1) {
			tp_field_list(p, lastk, list, sizeof(list));
			return tp_error(p, pos, "unknown field %s of %s (it has %s)", q,
			    tp_objs[lastk].name, list);
		}
		if (nobj > 1)
			return tp_error(p, pos, "unknown field %s", q);
		return tp_error(p, pos, "can't evaluate field %s in type %s", q, tp_type_name(in));
	}
	*type = out;
	return 0;
}

/* Go's strconv.ParseInt(s, 0, 64) on a number token; floats are refused. */
static int
tp_parse_int(struct tp_parser *p, const struct tp_token *tk, long long *out)
{
	const char *s = p->src + tk->pos;
	size_t n = tk->len, i = 0;
	bool neg = false, any = false;
	unsigned base = 10;
	unsigned long long v = 0, lim;
	char q[200];

	if (i < n && (s[i] == '+' || s[i] == '-'))
		neg = s[i++] == '-';
	for (size_t k = i; k < n; k++)
		if (s[k] == '.' || s[k] == 'i' ||
		    ((s[k] == 'e' || s[k] == 'E') && !(n > i + 1 && (s[i + 1] == 'x' ||
		    s[i + 1] == 'X'))) || s[k] == 'p' || s[k] == 'P')
			return tp_error(p, tk->pos,
			    "%s: only integer numbers are supported",
			    tp_quote(q, sizeof(q), s, n));
	if (n - i > 1 && s[i] == '0') {
		char b = s[i + 1];
		if (b == 'x' || b == 'X')
			base = 16, i += 2;
		else if (b == 'o' || b == 'O')
			base = 8, i += 2;
		else if (b == 'b' || b == 'B')
			base = 2, i += 2;
		else {
			base = 8;
			for (size_t k = i; k < n; k++)
				if (s[k] == '8' || s[k] == '9')
					base = 10;   /* Go reads "08" as the float 8 */
		}
	}
	lim = neg ? (unsigned long long)LLONG_MAX + 1 : (unsigned long long)LLONG_MAX;
	for (; i < n; i++) {
		unsigned d;
		char c = s[i];

		if (c == '_') {
			if (i + 1 >= n || s[i + 1] == '_')
				goto bad;
			continue;
		}
		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			d = (unsigned)(c - 'A' + 10);
		else
			goto bad;
		if (d >= base)
			goto bad;
		if (v > (lim - d) / base)
			return tp_error(p, tk->pos, "number %s out of range",
			    tp_quote(q, sizeof(q), s, n));
		v = v * base + d;
		any = true;
	}
	if (!any)
		goto bad;
	if (neg)
		*out = v == (unsigned long long)LLONG_MAX + 1 ? LLONG_MIN : -(long long)v;
	else
		*out = (long long)v;
	return 0;
bad:
	return tp_error(p, tk->pos, "bad number syntax: %s", tp_quote(q, sizeof(q), s, n));
}

static size_t
tp_utf8_put(uint32_t c, char *out)
{
	if (c < 0x80) {
		out[0] = (char)c;
		return 1;
	}
	if (c < 0x800) {
		out[0] = (char)(0xc0 | (c >> 6));
		out[1] = (char)(0x80 | (c & 0x3f));
		return 2;
	}
	if (c < 0x10000) {
		out[0] = (char)(0xe0 | (c >> 12));
		out[1] = (char)(0x80 | ((c >> 6) & 0x3f));
		out[2] = (char)(0x80 | (c & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | (c >> 18));
	out[1] = (char)(0x80 | ((c >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((c >> 6) & 0x3f));
	out[3] = (char)(0x80 | (c & 0x3f));
	return 4;
}

/* Go's strconv.Unquote of a "…" or `…` token into the arena. */
static int
tp_unquote(struct tp_parser *p, const struct tp_token *tk, struct tp_arg *a)
{
	const char *s = p->src + tk->pos + 1;
	size_t n = tk->len - 2, o = 0;
	char *out = tp_new(p->t, n + 1);

	if (p->src[tk->pos] == '`') {
		for (size_t i = 0; i < n; i++)
			if (s[i] != '\r')
				out[o++] = s[i];
		a->s = out;
		a->len = o;
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		uint32_t v = 0;
		int digits = 0, h;

		if (s[i] != '\\') {
			out[o++] = s[i];
			continue;
		}
		i++;
		switch (s[i]) {
		case 'a': out[o++] = '\a'; continue;
		case 'b': out[o++] = '\b'; continue;
		case 'f': out[o++] = '\f'; continue;
		case 'n': out[o++] = '\n'; continue;
		case 'r': out[o++] = '\r'; continue;
		case 't': out[o++] = '\t'; continue;
		case 'v': out[o++] = '\v'; continue;
		case '\\': out[o++] = '\\'; continue;
		case '"': out[o++] = '"'; continue;
		case 'x': digits = 2; break;
		case 'u': digits = 4; break;
		case 'U': digits = 8; break;
		case '0': case '1': case '2': case '3':
		case '4': case '5': case '6': case '7':
			for (int k = 0; k < 3; k++, i++) {
				if (i >= n || s[i] < '0' || s[i] > '7')
					goto bad;
				v = v * 8 + (uint32_t)(s[i] - '0');
			}
			i--;
			if (v > 255)
				goto bad;
			out[o++] = (char)v;
			continue;
		default:
			goto bad;
		}
		for (int k = 0; k < digits; k++) {
			if (++i >= n || (h = util_hex_digit((unsigned char)s[i])) < 0)
				goto bad;
			v = v * 16 + (uint32_t)h;
		}
		if (digits == 2)
			out[o++] = (char)v;
		else if (v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
			goto bad;
		else
			o += tp_utf8_put(v, out + o);
	}
	a->s = out;
	a->len = o;
	return 0;
bad:
	return tp_error(p, tk->pos, "invalid escape sequence in string");
}

static struct tp_arg *
tp_new_arg(struct tp_parser *p, enum tp_argk kind, const struct tp_token *tk)
{
	struct tp_arg *a = tp_new(p->t, sizeof(*a));

	a->kind = kind;
	a->pos = tk->pos;
	a->srclen = tk->len;
	a->var = -1;
	return a;
}

/* One term: a literal, field, variable, function name or ( pipeline ); NULL: none or error. */
static struct tp_arg *
tp_parse_term(struct tp_parser *p)
{
	struct tp_token tk;
	struct tp_arg *a = NULL;
	char q[200];
	int v;

	tp_next_nonspace(p, &tk);
	switch (tk.type) {
	case TK_IDENT:
		a = tp_new_arg(p, TA_FUNC, &tk);
		a->fn = tp_func_find(p->src + tk.pos, tk.len);
		if (a->fn == NULL) {
			tp_error(p, tk.pos, "unknown function %s",
			    tp_quote(q, sizeof(q), p->src + tk.pos, tk.len));
			return NULL;
		}
		return a;
	case TK_DOT:
		a = tp_new_arg(p, TA_DOT, &tk);
		a->type = p->dot;
		return a;
	case TK_NIL:
		tp_error(p, tk.pos, "nil is not supported");
		return NULL;
	case TK_VAR:
		v = tp_var_find(p, p->src + tk.pos, tk.len);
		if (v < 0) {
			tp_error(p, tk.pos, "undefined variable %s",
			    tp_quote(q, sizeof(q), p->src + tk.pos, tk.len));
			return NULL;
		}
		a = tp_new_arg(p, TA_VAR, &tk);
		a->var = v;
		a->type = p->vars[v].type;
		return a;
	case TK_FIELD:
		/* the field itself is applied by tp_parse_operand */
		a = tp_new_arg(p, TA_FIELD, &tk);
		a->type = p->dot;
		a->srclen = 0;
		tp_backup(p, &tk);
		return a;
	case TK_TRUE:
	case TK_FALSE:
		a = tp_new_arg(p, TA_BOOL, &tk);
		a->i = tk.type == TK_TRUE;
		a->type = TP_BOOL;
		return a;
	case TK_NUMBER:
		a = tp_new_arg(p, TA_INT, &tk);
		a->type = TP_INT;
		return tp_parse_int(p, &tk, &a->i) == 0 ? a : NULL;
	case TK_STRING:
	case TK_RAW:
		a = tp_new_arg(p, TA_STR, &tk);
		a->type = TP_STR;
		return tp_unquote(p, &tk, a) == 0 ? a : NULL;
	case TK_LPAREN:
		if (++p->depth > TEMPLATE_MAX_DEPTH) {
			tp_error(p, tk.pos, "nesting deeper than %d levels", TEMPLATE_MAX_DEPTH);
			return NULL;
		}
		a = tp_new_arg(p, TA_PIPE, &tk);
		a->pipe = tp_parse_pipeline(p, "parenthesized pipeline", TK_RPAREN,
		    TP_DECL_ONE, NULL);
		p->depth--;
		if (a->pipe == NULL)
			return NULL;
		a->type = a->pipe->type;
		a->srclen = p->pos - tk.pos;
		return a;
	case TK_ERROR:
		return NULL;
	default:
		tp_backup(p, &tk);
		return NULL;
	}
}

/* A term and the .field chain right after it. */
static struct tp_arg *
tp_parse_operand(struct tp_parser *p)
{
	struct tp_arg *a = tp_parse_term(p);
	struct tp_field **ft;
	struct tp_token tk;

	if (a == NULL)
		return NULL;
	ft = &a->fields;
	for (;;) {
		struct tp_field *f;

		tp_next(p, &tk);
		if (tk.type != TK_FIELD) {
			tp_backup(p, &tk);
			break;
		}
		if (a->kind != TA_FIELD && a->kind != TA_VAR && a->kind != TA_PIPE &&
		    a->kind != TA_DOT) {
			tp_error(p, tk.pos, "unexpected . after term");
			return NULL;
		}
		if (a->kind == TA_DOT) {
			tp_error(p, tk.pos, "unexpected . after term \".\"");
			return NULL;
		}
		f = tp_new(p->t, sizeof(*f));
		f->name = tp_copy(p->t, p->src + tk.pos + 1, tk.len - 1);
		f->len = tk.len - 1;
		if (tp_resolve(p, &a->type, f, tk.pos) < 0)
			return NULL;
		*ft = f;
		ft = &f->next;
		a->srclen = tk.pos + tk.len - a->pos;
	}
	return a;
}

static struct tp_cmd *
tp_parse_command(struct tp_parser *p, bool *piped)
{
	struct tp_cmd *c = tp_new(p->t, sizeof(*c));
	struct tp_arg **at = &c->args;
	struct tp_token tk;
	char q[200];

	*piped = false;
	for (;;) {
		struct tp_arg *a = tp_parse_operand(p);

		if (p->failed)
			return NULL;
		if (a != NULL) {
			if (c->nargs > TEMPLATE_MAX_ARGS) {
				tp_error(p, a->pos, "more than %d arguments", TEMPLATE_MAX_ARGS);
				return NULL;
			}
			*at = a;
			at = &a->next;
			c->nargs++;
		}
		tp_next(p, &tk);
		switch (tk.type) {
		case TK_SPACE:
			continue;
		case TK_RDELIM:
		case TK_RPAREN:
			tp_backup(p, &tk);
			break;
		case TK_PIPE:
			*piped = true;
			break;
		case TK_ERROR:
			return NULL;
		default:
			tp_error(p, tk.pos, "unexpected %s in operand",
			    tp_token_desc(p, &tk, q, sizeof(q)));
			return NULL;
		}
		break;
	}
	if (c->nargs == 0) {
		tp_error(p, tk.pos, "empty command");
		return NULL;
	}
	return c;
}

static const char *
tp_arity(const struct tp_func *fn, char *buf, size_t cap)
{
	if (fn->max < 0)
		snprintf(buf, cap, "at least %d", fn->min);
	else if (fn->max == fn->min)
		snprintf(buf, cap, "%d", fn->min);
	else
		snprintf(buf, cap, "%d or %d", fn->min, fn->max);
	return buf;
}

static const char *
tp_type_list(unsigned type, char *buf, size_t cap)
{
	if ((type & TP_TEXT) == TP_TEXT)
		return "text";
	if (type == (TP_STR | TP_INT))
		return "a string or an integer";
	if (type == TP_BASIC)
		return "a string, integer or boolean";
	if (type & TP_MAP)
		return "a string or .metadata";
	snprintf(buf, cap, "%s", tp_type_name(type));
	return buf;
}

/* printf's format, when it is a literal: only %s %d %v and %%. */
static int
tp_check_format(struct tp_parser *p, const struct tp_arg *f)
{
	char q[200];

	for (size_t i = 0; i < f->len; i++) {
		size_t l;

		if (f->s[i] != '%')
			continue;
		if (i + 1 >= f->len)
			return tp_error(p, f->pos, "printf: format ends with a lone %%");
		i++;
		if (strchr("sdv%", f->s[i]) != NULL && f->s[i] != '\0')
			continue;
		l = (unsigned char)f->s[i] >= 0x80 ?
		    util_utf8_len((const unsigned char *)f->s + i, f->len - i) : 1;
		return tp_error(p, f->pos, "printf: unsupported verb %s (only %%s, %%d, %%v and %%%%)",
		    tp_quote(q, sizeof(q), f->s + i - 1, (l ? l : 1) + 1));
	}
	return 0;
}

/*
 * Check a call of fn with n arguments (types[i]; nodes[i] NULL for the
 * piped value) and give its result type.
 */
static int
tp_check_call(struct tp_parser *p, const struct tp_func *fn, size_t pos,
    const unsigned *types, struct tp_arg *const *nodes, size_t n, unsigned *result)
{
	char want[64];
	unsigned r = 0;

	if ((int)n < fn->min || (fn->max >= 0 && (int)n > fn->max))
		return tp_error(p, pos, "wrong number of args for %s: want %s got %zu",
		    fn->name, tp_arity(fn, want, sizeof(want)), n);
	for (size_t i = 0; i < n; i++) {
		unsigned allowed = fn->arg[i < 2 ? i : 2];
		if ((types[i] & allowed) == 0)
			return tp_error(p, nodes[i] ? nodes[i]->pos : pos,
			    "wrong type for argument %zu of %s: want %s, got %s", i + 1, fn->name,
			    tp_type_list(allowed, want, sizeof(want)), tp_type_name(types[i]));
	}
	switch (fn->id) {
	case FN_EQ: case FN_NE: case FN_LT: case FN_LE: case FN_GT: case FN_GE:
		for (size_t i = 1; i < n; i++)
			if (tp_single(types[0]) && tp_single(types[i]) && types[0] != types[i])
				return tp_error(p, nodes[i] ? nodes[i]->pos : pos,
				    "incompatible types for comparison: %s and %s",
				    tp_type_name(types[0]), tp_type_name(types[i]));
		r = TP_BOOL;
		break;
	case FN_NOT: case FN_CONTAINS: case FN_HASPREFIX: case FN_HASSUFFIX:
		r = TP_BOOL;
		break;
	case FN_LEN:
		r = TP_INT;
		break;
	case FN_AND: case FN_OR: case FN_DEFAULT:
		for (size_t i = 0; i < n; i++)
			r |= types[i];
		break;
	case FN_INDEX:
		r = types[0];
		for (size_t i = 1; i < n; i++) {
			unsigned next = 0;
			if (r & TP_MAP)
				next |= TP_STR;
			if (r & TP_STR)
				next |= TP_INT;
			if (r & TP_OBJECTS) {
				if (nodes[i] != NULL && nodes[i]->kind == TA_STR &&
				    nodes[i]->fields == NULL && memchr(nodes[i]->s, 0, nodes[i]->len) == NULL) {
					struct tp_field f;
					unsigned objs = r & TP_OBJECTS;
					memset(&f, 0, sizeof(f));
					f.name = nodes[i]->s;
					f.len = nodes[i]->len;
					if (tp_resolve(p, &objs, &f, nodes[i]->pos) < 0)
						return -1;
					next |= objs;
				} else
					next |= TP_ANY;
			}
			if (next == 0)
				return tp_error(p, nodes[i] ? nodes[i]->pos : pos,
				    "can't index item of type %s", tp_type_name(r));
			r = next;
		}
		break;
	case FN_PRINTF:
		if (nodes[0] != NULL && nodes[0]->kind == TA_STR && nodes[0]->fields == NULL &&
		    tp_check_format(p, nodes[0]) < 0)
			return -1;
		r = TP_STR;
		break;
	default:
		r = TP_STR;
		break;
	}
	*result = r;
	return 0;
}

/*
 * Check one command of a pipeline (stage 0 is the first; later stages get
 * the previous value, of type prev, as their last argument) and give its type.
 */
static int
tp_check_cmd(struct tp_parser *p, struct tp_cmd *c, int stage, unsigned prev,
    unsigned *type)
{
	struct tp_arg *a0 = c->args;
	unsigned types[TEMPLATE_MAX_ARGS + 1];
	struct tp_arg *nodes[TEMPLATE_MAX_ARGS + 1];
	size_t n = 0;
	char q[200];

	if (a0->kind != TA_FUNC) {
		if (stage > 0 && (a0->kind == TA_STR || a0->kind == TA_INT ||
		    a0->kind == TA_BOOL || a0->kind == TA_DOT))
			return tp_error(p, a0->pos, "non executable command in pipeline stage %d",
			    stage + 1);
		if (c->nargs > 1 || stage > 0)
			return tp_error(p, a0->pos, "%s is not a function: it takes no arguments",
			    tp_quote(q, sizeof(q), p->src + a0->pos, a0->srclen ? a0->srclen : 1));
		*type = a0->type;
		return 0;
	}
	if (a0->fields != NULL)
		return tp_error(p, a0->pos, "unexpected . after function %s", a0->fn->name);
	for (struct tp_arg *a = a0->next; a != NULL; a = a->next) {
		if (a->kind == TA_FUNC) {
			/* Go calls a bare function name with no arguments */
			char want[64];
			return tp_error(p, a->pos, "wrong number of args for %s: want %s got 0",
			    a->fn->name, tp_arity(a->fn, want, sizeof(want)));
		}
		types[n] = a->type;
		nodes[n++] = a;
	}
	if (stage > 0) {
		types[n] = prev;
		nodes[n++] = NULL;
	}
	return tp_check_call(p, a0->fn, a0->pos, types, nodes, n, type);
}

static bool
tp_operand_start(enum tp_tok t)
{
	switch (t) {
	case TK_TRUE: case TK_FALSE: case TK_DOT: case TK_FIELD: case TK_IDENT:
	case TK_NUMBER: case TK_NIL: case TK_STRING: case TK_RAW: case TK_VAR:
	case TK_LPAREN:
		return true;
	default:
		return false;
	}
}

/*
 * A pipeline up to the token end (consumed). mode says which declarations
 * may start it; for TP_DECL_RANGE the declared variables' slots go to
 * rvars[0] (key, -1 when none) and rvars[1] (value, -1 when none) and are
 * not the pipeline's decl. Declared variables come into scope after it.
 */
/*
 * The declaration a pipeline may start with: "$x :=", "$x =" or (range)
 * "$k, $v :=". Gives the variables' tokens in v and their number (0 when
 * the pipeline starts otherwise: what was read is put back), -1 on error.
 */
static int
tp_parse_decl(struct tp_parser *p, const char *ctx, enum tp_decl mode, struct tp_token v[2],
    bool *assign)
{
	struct tp_token after, nx, tk;

	*assign = false;
	tp_peek_nonspace(p, &tk);
	if (tk.type == TK_ERROR)
		return -1;
	if (tk.type != TK_VAR || mode == TP_DECL_NONE)
		return 0;
	tp_next(p, &v[0]);
	tp_next(p, &after);
	nx = after;
	if (after.type == TK_SPACE)
		tp_next_nonspace(p, &nx);
	if (nx.type == TK_ERROR)
		return -1;
	if (nx.type == TK_DECLARE || nx.type == TK_ASSIGN) {
		*assign = nx.type == TK_ASSIGN;
		if (*assign && mode == TP_DECL_RANGE)
			return tp_error(p, nx.pos, "range variables must be declared with :=");
		return 1;
	}
	if (nx.type != TK_COMMA) {
		/* $x was an operand: put back what was read */
		tp_backup(p, &nx);
		if (after.type == TK_SPACE)
			tp_backup(p, &after);
		tp_backup(p, &v[0]);
		return 0;
	}
	if (mode != TP_DECL_RANGE)
		return tp_error(p, nx.pos, "too many declarations in %s", ctx);
	tp_next_nonspace(p, &v[1]);
	if (v[1].type != TK_VAR)
		return v[1].type == TK_ERROR ? -1 :
		    tp_error(p, v[1].pos, "range can only initialize variables");
	tp_next_nonspace(p, &nx);
	if (nx.type != TK_DECLARE)
		return nx.type == TK_ERROR ? -1 :
		    tp_error(p, nx.pos, "expected := after the range variables");
	return 2;
}

static struct tp_pipe *
tp_parse_pipeline(struct tp_parser *p, const char *ctx, enum tp_tok end, enum tp_decl mode,
    int rvars[2])
{
	struct tp_pipe *pp = tp_new(p->t, sizeof(*pp));
	struct tp_cmd **ct = &pp->cmds;
	struct tp_token v[2], tk;
	int ndecl, stage = 0;
	bool assign, piped = false;
	unsigned prev = 0;
	char q[200];

	pp->decl = -1;
	if (rvars != NULL)
		rvars[0] = rvars[1] = -1;
	if ((ndecl = tp_parse_decl(p, ctx, mode, v, &assign)) < 0)
		return NULL;
	for (;;) {
		struct tp_cmd *c;

		tp_next_nonspace(p, &tk);
		if (tk.type == TK_ERROR)
			return NULL;
		if (tk.type == end) {
			if (stage == 0) {
				tp_error(p, tk.pos, "missing value for %s", ctx);
				return NULL;
			}
			if (piped) {
				tp_error(p, tk.pos, "missing command after |");
				return NULL;
			}
			break;
		}
		if (!tp_operand_start(tk.type)) {
			tp_error(p, tk.pos, "unexpected %s in %s", tp_token_desc(p, &tk, q, sizeof(q)),
			    ctx);
			return NULL;
		}
		tp_backup(p, &tk);
		c = tp_parse_command(p, &piped);
		if (c == NULL || tp_check_cmd(p, c, stage, prev, &prev) < 0)
			return NULL;
		stage++;
		*ct = c;
		ct = &c->next;
	}
	pp->type = prev;
	if (ndecl == 1 && mode == TP_DECL_ONE) {
		if (assign) {
			int slot = tp_var_find(p, p->src + v[0].pos, v[0].len);
			if (slot < 0) {
				tp_error(p, v[0].pos, "undefined variable %s",
				    tp_quote(q, sizeof(q), p->src + v[0].pos, v[0].len));
				return NULL;
			}
			if (slot == 0) {
				tp_error(p, v[0].pos, "cannot assign to $");
				return NULL;
			}
			p->vars[slot].type |= prev;
			pp->decl = slot;
		} else if ((pp->decl = tp_var_push(p, &v[0], prev)) < 0)
			return NULL;
	} else if (ndecl > 0) {
		if (ndecl == 2 && (rvars[0] = tp_var_push(p, &v[0], TP_STR)) < 0)
			return NULL;
		if ((rvars[1] = tp_var_push(p, &v[ndecl - 1], TP_STR)) < 0)
			return NULL;
	}
	return pp;
}

static int
tp_expect_rdelim(struct tp_parser *p, const char *what)
{
	struct tp_token tk;
	char q[200];

	tp_next_nonspace(p, &tk);
	if (tk.type == TK_RDELIM)
		return 0;
	if (tk.type == TK_ERROR)
		return -1;
	return tp_error(p, tk.pos, "unexpected %s in {{ %s }}", tp_token_desc(p, &tk, q, sizeof(q)),
	    what);
}

/* {{ if }} / {{ with }} after its keyword, through its {{ end }}. */
static int
tp_parse_if(struct tp_parser *p, const struct tp_token *kw, struct tp_node **out)
{
	bool with = kw->type == TK_WITH;
	const char *name = with ? "with" : "if";
	struct tp_node *n = tp_new(p->t, sizeof(*n));
	struct tp_branch **bt = &n->branches;
	size_t mark = p->nvars, spos;
	unsigned dot = p->dot;
	int stop;

	if (++p->depth > TEMPLATE_MAX_DEPTH)
		return tp_error(p, kw->pos, "nesting deeper than %d levels", TEMPLATE_MAX_DEPTH);
	n->kind = TN_IF;
	for (;;) {
		struct tp_branch *br = tp_new(p->t, sizeof(*br));
		size_t body_mark;
		int rc;

		br->with = with;
		br->cond = tp_parse_pipeline(p, name, TK_RDELIM, TP_DECL_ONE, NULL);
		if (br->cond == NULL)
			return -1;
		body_mark = p->nvars;
		if (with)
			p->dot = br->cond->type;
		rc = tp_parse_list(p, &br->body, &stop, &spos);
		p->dot = dot;
		tp_var_pop(p, body_mark);
		if (rc < 0)
			return -1;
		*bt = br;
		bt = &br->next;
		if (stop == TP_STOP_END)
			break;
		if (stop == TP_STOP_EOF)
			return tp_error(p, kw->pos, "{{ %s }} has no {{ end }}", name);
		if (stop == (with ? TP_STOP_ELSE_WITH : TP_STOP_ELSE_IF))
			continue;
		if (stop != TP_STOP_ELSE)
			return tp_error(p, spos, "{{ else %s }} cannot follow {{ %s }}",
			    stop == TP_STOP_ELSE_IF ? "if" : "with", name);
		rc = tp_parse_list(p, &n->else_body, &stop, &spos);
		tp_var_pop(p, body_mark);
		if (rc < 0)
			return -1;
		if (stop == TP_STOP_END)
			break;
		if (stop == TP_STOP_EOF)
			return tp_error(p, kw->pos, "{{ %s }} has no {{ end }}", name);
		return tp_error(p, spos, "{{ else }} after {{ else }} in {{ %s }}", name);
	}
	tp_var_pop(p, mark);
	p->depth--;
	*out = n;
	return 0;
}

static int
tp_parse_range(struct tp_parser *p, const struct tp_token *kw, struct tp_node **out)
{
	struct tp_node *n = tp_new(p->t, sizeof(*n));
	size_t mark = p->nvars, spos;
	unsigned dot = p->dot;
	int rvars[2], stop, rc;

	if (++p->depth > TEMPLATE_MAX_DEPTH)
		return tp_error(p, kw->pos, "nesting deeper than %d levels", TEMPLATE_MAX_DEPTH);
	n->kind = TN_RANGE;
	n->pipe = tp_parse_pipeline(p, "range", TK_RDELIM, TP_DECL_RANGE, rvars);
	if (n->pipe == NULL)
		return -1;
	if (!(n->pipe->type & TP_MAP))
		return tp_error(p, kw->pos, "range can only iterate over .metadata, not %s",
		    tp_type_name(n->pipe->type));
	n->kvar = rvars[0];
	n->vvar = rvars[1];
	p->dot = TP_STR;
	p->in_range++;
	rc = tp_parse_list(p, &n->body, &stop, &spos);
	p->in_range--;
	p->dot = dot;
	tp_var_pop(p, mark);
	if (rc < 0)
		return -1;
	if (stop == TP_STOP_ELSE) {
		rc = tp_parse_list(p, &n->else_body, &stop, &spos);
		tp_var_pop(p, mark);
		if (rc < 0)
			return -1;
		if (stop != TP_STOP_END && stop != TP_STOP_EOF)
			return tp_error(p, spos, "{{ else }} after {{ else }} in {{ range }}");
	} else if (stop == TP_STOP_ELSE_IF || stop == TP_STOP_ELSE_WITH)
		return tp_error(p, spos, "{{ else %s }} cannot follow {{ range }}",
		    stop == TP_STOP_ELSE_IF ? "if" : "with");
	if (stop == TP_STOP_EOF)
		return tp_error(p, kw->pos, "{{ range }} has no {{ end }}");
	p->depth--;
	*out = n;
	return 0;
}

/*
 * After "{{": a node in *out (NULL for none) and TP_STOP_NONE, or the
 * TP_STOP_* of an {{ end }} / {{ else … }}, or -1.
 */
static int
tp_parse_action(struct tp_parser *p, struct tp_node **out)
{
	struct tp_token tk, nx;
	struct tp_node *n;

	*out = NULL;
	tp_next_nonspace(p, &tk);
	switch (tk.type) {
	case TK_ERROR:
		return -1;
	case TK_END:
		return tp_expect_rdelim(p, "end") < 0 ? -1 : TP_STOP_END;
	case TK_ELSE:
		tp_peek_nonspace(p, &nx);
		if (nx.type == TK_IF || nx.type == TK_WITH) {
			tp_next_nonspace(p, &nx);
			return nx.type == TK_IF ? TP_STOP_ELSE_IF : TP_STOP_ELSE_WITH;
		}
		return tp_expect_rdelim(p, "else") < 0 ? -1 : TP_STOP_ELSE;
	case TK_IF:
	case TK_WITH:
		return tp_parse_if(p, &tk, out) < 0 ? -1 : TP_STOP_NONE;
	case TK_RANGE:
		return tp_parse_range(p, &tk, out) < 0 ? -1 : TP_STOP_NONE;
	case TK_BREAK:
	case TK_CONTINUE:
		if (p->in_range == 0)
			return tp_error(p, tk.pos, "{{ %s }} outside {{ range }}",
			    tk.type == TK_BREAK ? "break" : "continue");
		if (tp_expect_rdelim(p, tk.type == TK_BREAK ? "break" : "continue") < 0)
			return -1;
		n = tp_new(p->t, sizeof(*n));
		n->kind = tk.type == TK_BREAK ? TN_BREAK : TN_CONTINUE;
		*out = n;
		return TP_STOP_NONE;
	case TK_DEFINE:
	case TK_TEMPLATE:
	case TK_BLOCK:
		return tp_error(p, tk.pos, "\"%.*s\" is not supported: a template cannot define "
		    "or call other templates", (int)tk.len, p->src + tk.pos);
	default:
		tp_backup(p, &tk);
		n = tp_new(p->t, sizeof(*n));
		n->kind = TN_ACTION;
		n->pipe = tp_parse_pipeline(p, "command", TK_RDELIM, TP_DECL_ONE, NULL);
		if (n->pipe == NULL)
			return -1;
		*out = n;
		return TP_STOP_NONE;
	}
}

/* Template text as a node: invalid UTF-8 (and NUL) become U+FFFD. */
static struct tp_node *
tp_text_node(struct tp_parser *p, const struct tp_token *tk)
{
	struct tp_node *n = tp_new(p->t, sizeof(*n));
	const unsigned char *s = (const unsigned char *)p->src + tk->pos;
	size_t o = 0;
	char *out = tp_new(p->t, tk->len * 3 + 1);

	for (size_t i = 0; i < tk->len;) {
		size_t l = util_utf8_len(s + i, tk->len - i);
		if (l == 0 || s[i] == 0) {
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
			continue;
		}
		memcpy(out + o, s + i, l);
		o += l;
		i += l;
	}
	n->kind = TN_TEXT;
	n->text = out;
	n->len = o;
	return n;
}

/*
 * Nodes until the end of the template, an {{ end }} or an {{ else … }}
 * (*stop says which; *stop_pos is where its "{{" is). 0 or -1.
 */
static int
tp_parse_list(struct tp_parser *p, struct tp_node **head, int *stop, size_t *stop_pos)
{
	struct tp_node **tail = head;
	struct tp_token tk;
	char q[200];

	*head = NULL;
	for (;;) {
		struct tp_node *n = NULL;
		int st;

		tp_next(p, &tk);
		switch (tk.type) {
		case TK_ERROR:
			return -1;
		case TK_EOF:
			*stop = TP_STOP_EOF;
			*stop_pos = tk.pos;
			return 0;
		case TK_TEXT:
			n = tp_text_node(p, &tk);
			break;
		case TK_LDELIM:
			st = tp_parse_action(p, &n);
			if (st < 0)
				return -1;
			if (st != TP_STOP_NONE) {
				*stop = st;
				*stop_pos = tk.pos;
				return 0;
			}
			break;
		default:
			return tp_error(p, tk.pos, "unexpected %s", tp_token_desc(p, &tk, q, sizeof(q)));
		}
		if (n != NULL) {
			*tail = n;
			tail = &n->next;
		}
	}
}

/* "line L, column C: " or "column C: " + the parser's message into err. */
static void
tp_format_error(const struct tp_parser *p, char *err, size_t errlen)
{
	size_t line = 1, col = 1, ls = 0;
	bool multi = memchr(p->src, '\n', p->n) != NULL;
	size_t pos = p->err_pos < p->n ? p->err_pos : p->n;

	for (size_t i = 0; i < pos; i++)
		if (p->src[i] == '\n') {
			line++;
			ls = i + 1;
		}
	for (size_t i = ls; i < pos;) {
		size_t l = util_utf8_len((const unsigned char *)p->src + i, p->n - i);
		i += l ? l : 1;
		col++;
	}
	if (errlen == 0)
		return;
	if (multi)
		snprintf(err, errlen, "line %zu, column %zu: %s", line, col, p->msg);
	else
		snprintf(err, errlen, "column %zu: %s", col, p->msg);
	/* a cut message must not end inside a UTF-8 sequence */
	for (size_t n = strlen(err), i = 0; i < n;) {
		size_t l = util_utf8_len((const unsigned char *)err + i, n - i);
		if (l == 0) {
			err[i] = '\0';
			break;
		}
		i += l;
	}
}

struct template *
template_compile(const char *src, unsigned flags, char *err, size_t errlen)
{
	struct tp_parser *p;
	struct template *t;
	size_t spos = 0;
	int stop = TP_STOP_EOF;

	if (errlen > 0)
		err[0] = '\0';
	if (src == NULL)
		src = "";
	if (strlen(src) > TEMPLATE_MAX_SOURCE) {
		if (errlen > 0)
			snprintf(err, errlen, "template longer than %d bytes", TEMPLATE_MAX_SOURCE);
		return NULL;
	}
	t = util_calloc(1, sizeof(*t));
	t->flags = flags;
	p = util_calloc(1, sizeof(*p));
	p->src = src;
	p->n = strlen(src);
	p->t = t;
	p->flags = flags;
	p->dot = TP_ROOT;
	p->vars[0].name = "$";
	p->vars[0].len = 1;
	p->vars[0].type = TP_ROOT;
	p->nvars = p->maxvars = 1;
	if (tp_parse_list(p, &t->root, &stop, &spos) == 0) {
		if (stop == TP_STOP_END)
			tp_error(p, spos, "{{ end }} without {{ if }}, {{ with }} or {{ range }}");
		else if (stop != TP_STOP_EOF)
			tp_error(p, spos, "{{ else }} without {{ if }}, {{ with }} or {{ range }}");
	}
	if (p->failed) {
		tp_format_error(p, err, errlen);
		free(p);
		template_free(t);
		return NULL;
	}
	t->nvars = p->maxvars;
	free(p);
	return t;
}

/* ------------------------------------------------------------------ */
/* Rendering                                                          */

struct tp_value {
	unsigned kind;               /* one TP_ bit */
	bool safe;                   /* TP_STR already fit for Slack (link's value) */
	size_t len;                  /* TP_STR */
	union {
		const char *s;       /* TP_STR: not NUL-terminated, may hold NUL */
		long long i;         /* TP_INT */
		bool b;              /* TP_BOOL */
	} u;
};

struct tp_kv {
	const char *key, *value;
};

/* The parts of metadata "revision"; pointers into it, lengths in bytes. */
struct tp_rev {
	const char *ref, *sha, *digest;
	size_t nref, nsha, ndigest;
};

enum { TP_JUMP_NONE, TP_JUMP_BREAK, TP_JUMP_CONTINUE };

struct tp_run {
	const struct template *t;
	const struct template_data *d;
	const struct event *ev;
	struct util_buf *out;
	size_t work;                 /* units left */
	bool stop;                   /* out of work: unwind */
	int jump;                    /* pending break / continue */
	struct tp_value *vars;
	void **kept;                 /* blocks freed when the rendering ends */
	size_t nkept, capkept;
	bool rev_done, ts_done, meta_done;
	struct tp_rev rev;
	char ts[40];
	size_t tslen;
	struct tp_kv *meta;          /* .metadata, sorted by key */
	size_t nmeta;
};

static const struct tp_value tp_nil = { TP_NIL, false, 0, { NULL } };

static struct tp_value
tp_strv(const char *s, size_t len)
{
	struct tp_value v = { TP_STR, false, len, { s } };
	return v;
}

static struct tp_value
tp_cstrv(const char *s)
{
	return s != NULL ? tp_strv(s, strlen(s)) : tp_strv("", 0);
}

static struct tp_value
tp_intv(long long i)
{
	struct tp_value v = { TP_INT, false, 0, { NULL } };
	v.u.i = i;
	return v;
}

static struct tp_value
tp_boolv(bool b)
{
	struct tp_value v = { TP_BOOL, false, 0, { NULL } };
	v.u.b = b;
	return v;
}

static struct tp_value
tp_objv(unsigned kind)
{
	struct tp_value v = { kind, false, 0, { NULL } };
	return v;
}

/* Take work units; false (and stop) when there are not that many left. */
static bool
tp_charge(struct tp_run *r, size_t n)
{
	if (r->stop)
		return false;
	if (n > r->work) {
		r->work = 0;
		r->stop = true;
		return false;
	}
	r->work -= n;
	return true;
}

/* Free p when the rendering ends. */
static void
tp_keep(struct tp_run *r, void *p)
{
	if (r->nkept == r->capkept) {
		r->capkept = r->capkept ? r->capkept * 2 : 8;
		r->kept = util_realloc(r->kept, r->capkept * sizeof(*r->kept));
	}
	r->kept[r->nkept++] = p;
}

/* Append, charging the work; nothing once out of work. */
static void
tp_put(struct tp_run *r, struct util_buf *b, const char *s, size_t n)
{
	if (tp_charge(r, n))
		util_buf_append(b, s, n);
}

/* A buffer built by a function as its (string) value. */
static struct tp_value
tp_result(struct tp_run *r, struct util_buf *b)
{
	if (r->stop) {
		util_buf_free(b);
		return tp_nil;
	}
	if (b->data == NULL)
		return tp_strv("", 0);
	tp_keep(r, b->data);
	return tp_strv(b->data, b->len);
}

/*
 * Append s[0..n) fit for Slack: invalid UTF-8 and NUL as U+FFFD, and when
 * escape, & < > as entities; url also percent-encodes '|', space and other
 * control characters (a URL between Slack's < and |). Charges n.
 */
static void
tp_put_clean(struct tp_run *r, struct util_buf *b, const char *str, size_t n, bool escape,
    bool url)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0, run = 0;
	char pct[4];

	if (!tp_charge(r, n))
		return;
	while (i < n) {
		const char *rep;
		unsigned char c = s[i];
		size_t l;

		if (c >= 0x80) {
			l = util_utf8_len(s + i, n - i);
			if (l > 0) {
				i += l;
				continue;
			}
			rep = "\xef\xbf\xbd";
		} else if (url && c != 0 && (c <= ' ' || c == '|' || c == 0x7f)) {
			snprintf(pct, sizeof(pct), "%%%02X", c);
			rep = pct;
		} else if (c == 0)
			rep = "\xef\xbf\xbd";
		else if (escape && c == '&')
			rep = "&amp;";
		else if (escape && c == '<')
			rep = "&lt;";
		else if (escape && c == '>')
			rep = "&gt;";
		else {
			i++;
			continue;
		}
		util_buf_append(b, str + run, i - run);
		util_buf_puts(b, rep);
		run = ++i;
	}
	util_buf_append(b, str + run, n - run);
}

/* ---- the data ---- */

static bool
tp_is_hex(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (util_hex_digit((unsigned char)s[i]) < 0)
			return false;
	return true;
}

/* "ALG:HEX" exactly: ALG a lower-case letter then letters and digits. */
static bool
tp_is_alg_hex(const char *s, size_t n)
{
	const char *colon = memchr(s, ':', n);
	size_t alen;

	if (colon == NULL)
		return false;
	alen = (size_t)(colon - s);
	if (alen == 0 || !(s[0] >= 'a' && s[0] <= 'z'))
		return false;
	for (size_t i = 1; i < alen; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')))
			return false;
	return tp_is_hex(colon + 1, n - alen - 1);
}

/* The forms of SPEC §13 (see the reference at the top); all empty otherwise. */
static void
tp_rev_parse(const char *s, struct tp_rev *rv)
{
	const char *at, *slash;
	size_t n;

	memset(rv, 0, sizeof(*rv));
	rv->ref = rv->sha = rv->digest = "";
	if (s == NULL)
		return;
	n = strlen(s);
	at = strrchr(s, '@');
	if (at != NULL) {
		size_t rest = n - (size_t)(at - s) - 1;
		if (!tp_is_alg_hex(at + 1, rest))
			return;
		rv->ref = s;
		rv->nref = (size_t)(at - s);
		rv->digest = at + 1;
		rv->ndigest = rest;
	} else if (tp_is_alg_hex(s, n)) {
		rv->digest = s;
		rv->ndigest = n;
	} else {
		slash = strrchr(s, '/');
		if (slash == NULL || n - (size_t)(slash - s) - 1 < 7 ||
		    !tp_is_hex(slash + 1, n - (size_t)(slash - s) - 1))
			return;
		rv->ref = s;
		rv->nref = (size_t)(slash - s);
		rv->sha = slash + 1;
		rv->nsha = n - rv->nref - 1;
		return;
	}
	rv->sha = (const char *)memchr(rv->digest, ':', rv->ndigest) + 1;
	rv->nsha = rv->ndigest - (size_t)(rv->sha - rv->digest);
}

/* strcmp(key, k) for a key of len bytes holding no NUL. */
static int
tp_keycmp(const char *key, size_t len, const char *k)
{
	int c = strncmp(key, k, len);

	if (c != 0)
		return c;
	return k[len] == '\0' ? 0 : -1;
}

/* Value of the event's metadata key[0..len) (hidden keys dropped), or NULL. */
static const char *
tp_meta_find(struct tp_run *r, const char *key, size_t len)
{
	const struct event *ev = r->ev;
	size_t lo = 0, hi = ev->nmeta;

	if (memchr(key, '\0', len) != NULL)
		return NULL;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = tp_keycmp(key, len, ev->meta[mid].key);
		if (c == 0) {
			const struct event_kv *e = &ev->meta[mid];
			if (event_meta_hidden(e->key))
				return NULL;
			return e->value ? e->value : "";
		}
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

static int
tp_strptr_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Build r->meta, .metadata as a sorted list, once per rendering. */
static void
tp_meta_all(struct tp_run *r)
{
	const struct event *ev = r->ev;
	size_t cap = ev->nmeta, n = 0, u = 0;
	const char **keys;

	if (r->meta_done)
		return;
	r->meta_done = true;
	if (cap == 0 || !tp_charge(r, cap))
		return;
	keys = util_malloc(cap * sizeof(*keys));
	for (size_t i = 0; i < ev->nmeta; i++)
		if (!event_meta_hidden(ev->meta[i].key))
			keys[n++] = ev->meta[i].key;
	qsort(keys, n, sizeof(*keys), tp_strptr_cmp);
	r->meta = util_malloc((n ? n : 1) * sizeof(*r->meta));
	tp_keep(r, r->meta);
	for (size_t i = 0; i < n; i++) {
		if (u > 0 && strcmp(r->meta[u - 1].key, keys[i]) == 0)
			continue;
		r->meta[u].key = keys[i];
		r->meta[u].value = tp_meta_find(r, keys[i], strlen(keys[i]));
		u++;
	}
	r->nmeta = u;
	free(keys);
}

static const struct tp_rev *
tp_rev(struct tp_run *r)
{
	if (!r->rev_done) {
		r->rev_done = true;
		tp_rev_parse(tp_meta_find(r, "revision", 8), &r->rev);
	}
	return &r->rev;
}

static struct tp_value
tp_timestamp(struct tp_run *r)
{
	if (r->ev->has_timestamp && r->ev->timestamp_text != NULL)   /* as received */
		return tp_strv(r->ev->timestamp_text, strlen(r->ev->timestamp_text));
	if (!r->ts_done) {
		struct tm tm;
		r->ts_done = true;
		if (r->ev->has_timestamp && gmtime_r(&r->ev->timestamp, &tm) != NULL)
			r->tslen = strftime(r->ts, sizeof(r->ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
	}
	return tp_strv(r->ts, r->tslen);
}

static struct tp_value
tp_get(struct tp_run *r, enum tp_fid id)
{
	const struct event *ev = r->ev;
	const struct template_incident *inc = r->d->incident;
	const struct tp_rev *rv;

	switch (id) {
	case TF_ALERT: return tp_cstrv(r->d->alert);
	case TF_CLUSTER: return tp_cstrv(r->d->cluster);
	case TF_INCIDENT:
		return (r->t->flags & TEMPLATE_INCIDENT) ? tp_objv(TP_INC) : tp_nil;
	case TF_INVOLVED: return tp_objv(TP_OBJ);
	case TF_MESSAGE: return tp_cstrv(ev->message);
	case TF_METADATA: return tp_objv(TP_MAP);
	case TF_REASON: return tp_cstrv(ev->reason);
	case TF_RCONTROLLER: return tp_cstrv(ev->reporting_controller);
	case TF_RINSTANCE: return tp_cstrv(ev->reporting_instance);
	case TF_REVISION: return tp_objv(TP_REV);
	case TF_SEVERITY:
		return tp_cstrv(ev->severity_text != NULL ? ev->severity_text :
		    event_severity_name(ev->severity));
	case TF_TIMESTAMP: return tp_timestamp(r);
	case TF_APIVERSION: return tp_cstrv(ev->api_version);
	case TF_KIND: return tp_cstrv(ev->kind);
	case TF_NAME: return tp_cstrv(ev->name);
	case TF_NAMESPACE: return tp_cstrv(ev->namespace);
	case TF_UID: return tp_cstrv(ev->uid);
	case TF_DIGEST: rv = tp_rev(r); return tp_strv(rv->digest, rv->ndigest);
	case TF_REF: rv = tp_rev(r); return tp_strv(rv->ref, rv->nref);
	case TF_SHA: rv = tp_rev(r); return tp_strv(rv->sha, rv->nsha);
	case TF_SHORT: rv = tp_rev(r); return tp_strv(rv->sha, rv->nsha < 7 ? rv->nsha : 7);
	case TF_COUNT: return tp_intv(inc != NULL ? inc->count : 0);
	case TF_DURATION: return tp_cstrv(inc != NULL ? inc->duration : NULL);
	case TF_SINCE: return tp_cstrv(inc != NULL ? inc->since : NULL);
	case TF_STATE: return tp_cstrv(inc != NULL ? inc->state : NULL);
	}
	return tp_nil;
}

/* Whether field i of object k exists in this rendering (.incident may not). */
static bool
tp_field_visible(const struct tp_run *r, int k, size_t i)
{
	return tp_objs[k].fields[i].id != TF_INCIDENT || (r->t->flags & TEMPLATE_INCIDENT);
}

/* v.name for a name known only now (index); NIL when there is none. */
static struct tp_value
tp_get_by_name(struct tp_run *r, struct tp_value v, const char *name, size_t len)
{
	int k, i;

	if (v.kind == TP_MAP) {
		const char *s = tp_meta_find(r, name, len);
		return tp_cstrv(s);
	}
	k = tp_objk_of(v.kind);
	if (k < 0 || memchr(name, '\0', len) != NULL)
		return tp_nil;
	i = tp_field_find(k, name, len);
	if (i < 0 || !tp_field_visible(r, k, (size_t)i))
		return tp_nil;
	return tp_get(r, tp_objs[k].fields[i].id);
}

static struct tp_value
tp_field_step(struct tp_run *r, struct tp_value v, const struct tp_field *f)
{
	int k;

	if (v.kind == TP_MAP)
		return tp_cstrv(tp_meta_find(r, f->name, f->len));
	k = tp_objk_of(v.kind);
	if (k < 0 || f->idx[k] < 0)
		return tp_nil;
	return tp_get(r, tp_objs[k].fields[f->idx[k]].id);
}

static bool
tp_truth(struct tp_run *r, struct tp_value v)
{
	switch (v.kind) {
	case TP_NIL: return false;
	case TP_STR: return v.len > 0;
	case TP_INT: return v.u.i != 0;
	case TP_BOOL: return v.u.b;
	case TP_MAP:
		tp_meta_all(r);
		return r->nmeta > 0;
	default: return true;
	}
}

/* ---- printing ---- */

static const char *
tp_go_type(unsigned kind)
{
	switch (kind) {
	case TP_STR: return "string";
	case TP_INT: return "int";
	case TP_BOOL: return "bool";
	case TP_MAP: return "map[string]string";
	default: return "map[string]interface {}";
	}
}

/*
 * Append v formatted with a printf verb (verb[0..vlen): "s", "d", "v" or any
 * other character, which prints as Go prints a bad verb: %!x(type=value)).
 * Maps and objects print as Go prints maps, the verb applied to keys and
 * values. NIL prints nothing.
 */
static void
tp_fmt(struct tp_run *r, struct util_buf *b, struct tp_value v, const char *verb, size_t vlen)
{
	char num[32];
	int k;
	char c = vlen == 1 ? verb[0] : '?';
	bool good = vlen == 1 && (c == 's' || c == 'd' || c == 'v');

	if (v.kind == TP_NIL || r->stop)
		return;
	if (!good) {
		tp_put(r, b, "%!", 2);
		tp_put(r, b, verb, vlen);
		tp_put(r, b, "(", 1);
		tp_put(r, b, tp_go_type(v.kind), strlen(tp_go_type(v.kind)));
		tp_put(r, b, "=", 1);
		tp_fmt(r, b, v, "v", 1);
		tp_put(r, b, ")", 1);
		return;
	}
	switch (v.kind) {
	case TP_STR:
		if (c == 'd')
			tp_put(r, b, "%!d(string=", 11);
		tp_put(r, b, v.u.s, v.len);
		if (c == 'd')
			tp_put(r, b, ")", 1);
		return;
	case TP_INT:
		if (c == 's')
			tp_put(r, b, "%!s(int=", 8);
		tp_put(r, b, num, (size_t)snprintf(num, sizeof(num), "%lld", v.u.i));
		if (c == 's')
			tp_put(r, b, ")", 1);
		return;
	case TP_BOOL:
		if (c != 'v') {
			tp_put(r, b, c == 's' ? "%!s(bool=" : "%!d(bool=", 9);
		}
		tp_put(r, b, v.u.b ? "true" : "false", v.u.b ? 4 : 5);
		if (c != 'v')
			tp_put(r, b, ")", 1);
		return;
	case TP_MAP:
		tp_meta_all(r);
		tp_put(r, b, "map[", 4);
		for (size_t i = 0; i < r->nmeta; i++) {
			if (i > 0)
				tp_put(r, b, " ", 1);
			tp_fmt(r, b, tp_cstrv(r->meta[i].key), verb, vlen);
			tp_put(r, b, ":", 1);
			tp_fmt(r, b, tp_cstrv(r->meta[i].value), verb, vlen);
		}
		tp_put(r, b, "]", 1);
		return;
	default:
		k = tp_objk_of(v.kind);
		if (k < 0)
			return;
		tp_put(r, b, "map[", 4);
		for (size_t i = 0, shown = 0; i < tp_objs[k].n; i++) {
			if (!tp_field_visible(r, k, i))
				continue;
			if (shown++ > 0)
				tp_put(r, b, " ", 1);
			tp_fmt(r, b, tp_cstrv(tp_objs[k].fields[i].name), verb, vlen);
			tp_put(r, b, ":", 1);
			tp_fmt(r, b, tp_get(r, tp_objs[k].fields[i].id), verb, vlen);
		}
		tp_put(r, b, "]", 1);
		return;
	}
}

/* What an action prints: escaped, unless it is link's value. */
static void
tp_print(struct tp_run *r, struct tp_value v)
{
	struct util_buf b = { 0 };
	bool url = (r->t->flags & TEMPLATE_URL) != 0;

	switch (v.kind) {
	case TP_NIL:
		return;
	case TP_STR:
		if (v.safe) {
			if (tp_charge(r, v.len))
				util_buf_append(r->out, v.u.s, v.len);
		} else
			tp_put_clean(r, r->out, v.u.s, v.len, true, url);
		return;
	default:
		tp_fmt(r, &b, v, "v", 1);
		if (b.len > 0)
			tp_put_clean(r, r->out, b.data, b.len, true, url);
		util_buf_free(&b);
		return;
	}
}

/*
 * The text of a value given where text is expected: strings as they are,
 * integers and booleans as printed, NIL empty. -1 for maps and objects.
 */
static int
tp_text(struct tp_run *r, struct tp_value v, const char **s, size_t *n)
{
	char num[32];

	switch (v.kind) {
	case TP_STR:
		*s = v.u.s;
		*n = v.len;
		return 0;
	case TP_INT:
		*n = (size_t)snprintf(num, sizeof(num), "%lld", v.u.i);
		*s = util_strndup(num, *n);
		tp_keep(r, (void *)*s);
		return 0;
	case TP_BOOL:
		*s = v.u.b ? "true" : "false";
		*n = strlen(*s);
		return 0;
	case TP_NIL:
		*s = "";
		*n = 0;
		return 0;
	default:
		return -1;
	}
}

/* ---- functions ---- */

/* Code point at s[0..n) (l = its util_utf8_len, > 0). */
static uint32_t
tp_utf8_get(const unsigned char *s, size_t l)
{
	switch (l) {
	case 1: return s[0];
	case 2: return ((uint32_t)(s[0] & 0x1f) << 6) | (s[1] & 0x3f);
	case 3: return ((uint32_t)(s[0] & 0x0f) << 12) | ((uint32_t)(s[1] & 0x3f) << 6) |
	    (s[2] & 0x3f);
	default: return ((uint32_t)(s[0] & 0x07) << 18) | ((uint32_t)(s[1] & 0x3f) << 12) |
	    ((uint32_t)(s[2] & 0x3f) << 6) | (s[3] & 0x3f);
	}
}

/* Go's unicode.ToUpper for Latin, Greek and Cyrillic; other characters unchanged. */
static uint32_t
tp_toupper(uint32_t c)
{
	if (c >= 'a' && c <= 'z')
		return c - 32;
	if (c < 0x80)
		return c;
	if ((c >= 0xe0 && c <= 0xfe && c != 0xf7))
		return c - 0x20;
	if (c == 0xb5)
		return 0x39c;
	if (c == 0xff)
		return 0x178;
	if (c == 0x131)
		return 'I';
	if (c == 0x17f)
		return 'S';
	if (((c >= 0x100 && c <= 0x137) || (c >= 0x14a && c <= 0x177)) && (c & 1))
		return c - 1;
	if (((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17e)) && !(c & 1))
		return c - 1;
	if (c >= 0x3b1 && c <= 0x3c9 && c != 0x3c2)
		return c - 0x20;
	if (c == 0x3c2)
		return 0x3a3;
	if (c == 0x3ac)
		return 0x386;
	if (c >= 0x3ad && c <= 0x3af)
		return c - 0x25;
	if (c == 0x3cc)
		return 0x38c;
	if (c == 0x3cd || c == 0x3ce)
		return c - 0x3f;
	if (c >= 0x430 && c <= 0x44f)
		return c - 0x20;
	if (c >= 0x450 && c <= 0x45f)
		return c - 0x50;
	return c;
}

static uint32_t
tp_tolower(uint32_t c)
{
	if (c >= 'A' && c <= 'Z')
		return c + 32;
	if (c < 0x80)
		return c;
	if (c >= 0xc0 && c <= 0xde && c != 0xd7)
		return c + 0x20;
	if (c == 0x178)
		return 0xff;
	if (c == 0x130)
		return 'i';
	if (((c >= 0x100 && c <= 0x137) || (c >= 0x14a && c <= 0x177)) && !(c & 1))
		return c + 1;
	if (((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17e)) && (c & 1))
		return c + 1;
	if (c >= 0x391 && c <= 0x3a9 && c != 0x3a2)
		return c + 0x20;
	if (c == 0x386)
		return 0x3ac;
	if (c >= 0x388 && c <= 0x38a)
		return c + 0x25;
	if (c == 0x38c)
		return 0x3cc;
	if (c == 0x38e || c == 0x38f)
		return c + 0x3f;
	if (c >= 0x410 && c <= 0x42f)
		return c + 0x20;
	if (c >= 0x400 && c <= 0x40f)
		return c + 0x50;
	return c;
}

/* Go's unicode.IsSpace. */
static bool
tp_uspace(uint32_t c)
{
	switch (c) {
	case '\t': case '\n': case '\v': case '\f': case '\r': case ' ':
	case 0x85: case 0xa0: case 0x1680: case 0x2028: case 0x2029: case 0x202f:
	case 0x205f: case 0x3000:
		return true;
	}
	return c >= 0x2000 && c <= 0x200a;
}

enum tp_case { TP_LOWER, TP_UPPER, TP_TITLE };

/* lower, upper, title (Go's strings.Title: upper-case each word's first letter). */
static struct tp_value
tp_case(struct tp_run *r, const char *str, size_t n, enum tp_case how)
{
	const unsigned char *s = (const unsigned char *)str;
	struct util_buf b = { 0 };
	bool sep = true;

	if (!tp_charge(r, n))
		return tp_nil;
	for (size_t i = 0; i < n;) {
		size_t l = util_utf8_len(s + i, n - i);
		uint32_t c;
		char enc[4];

		if (l == 0) {
			/* invalid byte: kept (cleaned when printed), not a separator */
			util_buf_append(&b, str + i, 1);
			i++;
			sep = false;
			continue;
		}
		c = tp_utf8_get(s + i, l);
		if (how == TP_LOWER)
			c = tp_tolower(c);
		else if (how == TP_UPPER || sep)
			c = tp_toupper(c);
		if (how == TP_TITLE) {
			if (c < 0x80)
				sep = !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
				    (c >= '0' && c <= '9') || c == '_');
			else
				sep = tp_uspace(c);
		}
		util_buf_append(&b, enc, tp_utf8_put(c, enc));
		i += l;
	}
	return tp_result(r, &b);
}

/* Byte length of the first count characters of s[0..n). */
static size_t
tp_chars_prefix(const char *s, size_t n, size_t count)
{
	size_t i = 0;

	while (i < n && count-- > 0) {
		size_t l = util_utf8_len((const unsigned char *)s + i, n - i);
		i += l ? l : 1;
	}
	return i;
}

static size_t
tp_count_chars(const char *s, size_t n)
{
	size_t i = 0, c = 0;

	while (i < n) {
		size_t l = util_utf8_len((const unsigned char *)s + i, n - i);
		i += l ? l : 1;
		c++;
	}
	return c;
}

static struct tp_value
tp_trim(const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t start = 0, end = n;

	while (start < n) {
		size_t l = util_utf8_len(s + start, n - start);
		if (l == 0 || !tp_uspace(tp_utf8_get(s + start, l)))
			break;
		start += l;
	}
	while (end > start) {
		size_t b = end - 1, l;
		while (b > start && (s[b] & 0xc0) == 0x80 && end - b < 4)
			b--;
		l = util_utf8_len(s + b, end - b);
		if (l != end - b || !tp_uspace(tp_utf8_get(s + b, l)))
			break;
		end = b;
	}
	return tp_strv(str + start, end - start);
}

/* strings.Replace(s, old, new, -1) */
static struct tp_value
tp_replace(struct tp_run *r, const char *old, size_t on, const char *rep, size_t rn,
    const char *s, size_t n)
{
	struct util_buf b = { 0 };
	size_t count = 0, i;

	if (on == 0)
		count = tp_count_chars(s, n) + 1;
	else
		for (i = 0; i + on <= n;) {
			const char *hit = memmem(s + i, n - i, old, on);
			if (hit == NULL)
				break;
			count++;
			i = (size_t)(hit - s) + on;
		}
	if (count == 0)
		return tp_strv(s, n);
	if ((rn > 0 && count > (SIZE_MAX - n) / rn) || !tp_charge(r, n + count * rn))
		return r->stop = true, tp_nil;
	if (on == 0) {
		util_buf_append(&b, rep, rn);
		for (i = 0; i < n;) {
			size_t l = util_utf8_len((const unsigned char *)s + i, n - i);
			l = l ? l : 1;
			util_buf_append(&b, s + i, l);
			util_buf_append(&b, rep, rn);
			i += l;
		}
	} else {
		for (i = 0;;) {
			const char *hit = i + on <= n ? memmem(s + i, n - i, old, on) : NULL;
			if (hit == NULL)
				break;
			util_buf_append(&b, s + i, (size_t)(hit - s) - i);
			util_buf_append(&b, rep, rn);
			i = (size_t)(hit - s) + on;
		}
		util_buf_append(&b, s + i, n - i);
	}
	return tp_result(r, &b);
}

static struct tp_value
tp_printf(struct tp_run *r, const struct tp_value *argv, size_t n)
{
	struct util_buf b = { 0 };
	const char *f;
	size_t fl, ai = 1, i = 0;

	if (tp_text(r, argv[0], &f, &fl) < 0)
		return tp_nil;
	while (i < fl && !r->stop) {
		const char *pct = memchr(f + i, '%', fl - i);
		size_t run = pct != NULL ? (size_t)(pct - f) - i : fl - i, vl;

		tp_put(r, &b, f + i, run);
		i += run;
		if (i >= fl)
			break;
		if (i + 1 >= fl) {
			tp_put(r, &b, "%!(NOVERB)", 10);
			break;
		}
		vl = util_utf8_len((const unsigned char *)f + i + 1, fl - i - 1);
		vl = vl ? vl : 1;
		if (vl == 1 && f[i + 1] == '%')
			tp_put(r, &b, "%", 1);
		else if (ai >= n) {
			tp_put(r, &b, "%!", 2);
			tp_put(r, &b, f + i + 1, vl);
			tp_put(r, &b, "(MISSING)", 9);
		} else
			tp_fmt(r, &b, argv[ai++], f + i + 1, vl);
		i += 1 + vl;
	}
	if (ai < n) {
		tp_put(r, &b, "%!(EXTRA ", 9);
		for (size_t k = ai; k < n; k++) {
			const char *ty = argv[k].kind == TP_NIL ? "<nil>" : tp_go_type(argv[k].kind);
			if (k > ai)
				tp_put(r, &b, ", ", 2);
			tp_put(r, &b, ty, strlen(ty));
			if (argv[k].kind != TP_NIL) {
				tp_put(r, &b, "=", 1);
				tp_fmt(r, &b, argv[k], "v", 1);
			}
		}
		tp_put(r, &b, ")", 1);
	}
	return tp_result(r, &b);
}

static struct tp_value
tp_join(struct tp_run *r, const char *sep, size_t sn, struct tp_value v)
{
	struct util_buf b = { 0 };
	const char *s;
	size_t n;
	int k;

	if (v.kind == TP_MAP) {
		tp_meta_all(r);
		for (size_t i = 0; i < r->nmeta; i++) {
			if (i > 0)
				tp_put(r, &b, sep, sn);
			tp_put(r, &b, r->meta[i].value, strlen(r->meta[i].value));
		}
		return tp_result(r, &b);
	}
	if ((k = tp_objk_of(v.kind)) >= 0) {
		for (size_t i = 0, shown = 0; i < tp_objs[k].n; i++) {
			if (!tp_field_visible(r, k, i))
				continue;
			if (shown++ > 0)
				tp_put(r, &b, sep, sn);
			tp_fmt(r, &b, tp_get(r, tp_objs[k].fields[i].id), "v", 1);
		}
		return tp_result(r, &b);
	}
	if (tp_text(r, v, &s, &n) < 0)
		return tp_nil;
	return tp_strv(s, n);
}

/* Slack's <url|text>, both escaped; <url> without text; just text without url. */
static struct tp_value
tp_link(struct tp_run *r, const char *url, size_t un, const char *text, size_t tn)
{
	struct util_buf b = { 0 };
	struct tp_value v;

	if (un > 0) {
		tp_put(r, &b, "<", 1);
		tp_put_clean(r, &b, url, un, true, true);
		if (tn > 0)
			tp_put(r, &b, "|", 1);
	}
	tp_put_clean(r, &b, text, tn, true, false);
	if (un > 0)
		tp_put(r, &b, ">", 1);
	v = tp_result(r, &b);
	v.safe = v.kind == TP_STR;
	return v;
}

/* Go's basic comparison: 0, <0, >0; *ok false when the kinds differ or do not order. */
static int
tp_compare(struct tp_value a, struct tp_value b, bool ordered, bool *ok)
{
	*ok = a.kind == b.kind && (a.kind == TP_STR || a.kind == TP_INT ||
	    (a.kind == TP_BOOL && !ordered));
	if (!*ok)
		return 0;
	switch (a.kind) {
	case TP_STR: {
		int c = memcmp(a.u.s, b.u.s, a.len < b.len ? a.len : b.len);
		if (c != 0)
			return c;
		return a.len < b.len ? -1 : a.len > b.len;
	}
	case TP_INT:
		return a.u.i < b.u.i ? -1 : a.u.i > b.u.i;
	default:
		return a.u.b != b.u.b;
	}
}

static struct tp_value
tp_index(struct tp_run *r, const struct tp_value *argv, size_t n)
{
	struct tp_value v = argv[0];

	for (size_t i = 1; i < n && v.kind != TP_NIL; i++) {
		struct tp_value k = argv[i];
		if ((v.kind == TP_MAP || tp_objk_of(v.kind) >= 0) && k.kind == TP_STR)
			v = tp_get_by_name(r, v, k.u.s, k.len);
		else if (v.kind == TP_STR && k.kind == TP_INT)
			v = k.u.i >= 0 && (unsigned long long)k.u.i < v.len ?
			    tp_intv((unsigned char)v.u.s[k.u.i]) : tp_nil;
		else
			v = tp_nil;
	}
	return v;
}

/* Apply a function (not and/or) to its evaluated arguments. */
static struct tp_value tp_apply_text(struct tp_run *r, enum tp_fn id,
    const struct tp_value *argv, size_t n);

static struct tp_value
tp_apply(struct tp_run *r, enum tp_fn id, const struct tp_value *argv, size_t n)
{
	const char *s;
	size_t l;
	bool ok = true;
	int c = 0;

	switch (id) {
	case FN_EQ:
		for (size_t i = 1; i < n; i++) {
			c = tp_compare(argv[0], argv[i], false, &ok);
			if (!ok)
				return tp_nil;
			if (c == 0)
				return tp_boolv(true);
		}
		return tp_boolv(false);
	case FN_NE:
		c = tp_compare(argv[0], argv[1], false, &ok);
		return ok ? tp_boolv(c != 0) : tp_nil;
	case FN_LT: case FN_LE: case FN_GT: case FN_GE:
		c = tp_compare(argv[0], argv[1], true, &ok);
		if (!ok)
			return tp_nil;
		return tp_boolv(id == FN_LT ? c < 0 : id == FN_LE ? c <= 0 : id == FN_GT ? c > 0 :
		    c >= 0);
	case FN_NOT:
		return tp_boolv(!tp_truth(r, argv[0]));
	case FN_LEN:
		if (argv[0].kind == TP_STR)
			return tp_intv((long long)argv[0].len);
		if (argv[0].kind == TP_MAP) {
			tp_meta_all(r);
			return tp_intv((long long)r->nmeta);
		}
		if ((c = tp_objk_of(argv[0].kind)) >= 0) {
			long long count = 0;
			for (size_t i = 0; i < tp_objs[c].n; i++)
				count += tp_field_visible(r, c, i);
			return tp_intv(count);
		}
		return tp_nil;
	case FN_INDEX:
		return tp_index(r, argv, n);
	case FN_PRINTF:
		return tp_printf(r, argv, n);
	case FN_DEFAULT:
		return n < 2 || !tp_truth(r, argv[1]) ? argv[0] : argv[1];
	case FN_JOIN:
		if (tp_text(r, argv[0], &s, &l) < 0)
			return tp_nil;
		return tp_join(r, s, l, argv[1]);
	default:
		return tp_apply_text(r, id, argv, n);
	}
}

/* The functions of text (Sprig's, shortsha, link). */
static struct tp_value
tp_apply_text(struct tp_run *r, enum tp_fn id, const struct tp_value *argv, size_t n)
{
	const char *s[3] = { "", "", "" };
	size_t l[3] = { 0, 0, 0 };
	long long cut, chars;

	for (size_t i = 0; i < n && i < 3; i++)
		if (tp_text(r, argv[i], &s[i], &l[i]) < 0 && !(id == FN_TRUNC && i == 0))
			return tp_nil;
	switch (id) {
	case FN_LOWER: return tp_case(r, s[0], l[0], TP_LOWER);
	case FN_UPPER: return tp_case(r, s[0], l[0], TP_UPPER);
	case FN_TITLE: return tp_case(r, s[0], l[0], TP_TITLE);
	case FN_TRIM: return tp_trim(s[0], l[0]);
	case FN_TRIMPREFIX:
		if (l[1] >= l[0] && memcmp(s[1], s[0], l[0]) == 0)
			return tp_strv(s[1] + l[0], l[1] - l[0]);
		return tp_strv(s[1], l[1]);
	case FN_TRIMSUFFIX:
		if (l[1] >= l[0] && memcmp(s[1] + l[1] - l[0], s[0], l[0]) == 0)
			return tp_strv(s[1], l[1] - l[0]);
		return tp_strv(s[1], l[1]);
	case FN_CONTAINS:
		return tp_boolv(l[0] == 0 || (l[1] >= l[0] && memmem(s[1], l[1], s[0], l[0]) != NULL));
	case FN_HASPREFIX:
		return tp_boolv(l[1] >= l[0] && memcmp(s[1], s[0], l[0]) == 0);
	case FN_HASSUFFIX:
		return tp_boolv(l[1] >= l[0] && memcmp(s[1] + l[1] - l[0], s[0], l[0]) == 0);
	case FN_REPLACE:
		return tp_replace(r, s[0], l[0], s[1], l[1], s[2], l[2]);
	case FN_SHORTSHA:
		return tp_strv(s[0], tp_chars_prefix(s[0], l[0], 7));
	case FN_LINK:
		return tp_link(r, s[0], l[0], s[1], l[1]);
	case FN_TRUNC:
		if (argv[0].kind != TP_INT)
			return tp_nil;
		/* Sprig: the first N characters; N < 0: the last -N */
		cut = argv[0].u.i;
		chars = (long long)tp_count_chars(s[1], l[1]);
		if (cut >= 0 && chars > cut)
			return tp_strv(s[1], tp_chars_prefix(s[1], l[1], (size_t)cut));
		if (cut < 0 && chars + cut > 0) {
			size_t skip = tp_chars_prefix(s[1], l[1], (size_t)(chars + cut));
			return tp_strv(s[1] + skip, l[1] - skip);
		}
		return tp_strv(s[1], l[1]);
	default:
		return tp_nil;
	}
}

static struct tp_value tp_eval_pipe(struct tp_run *r, const struct tp_pipe *pp,
    struct tp_value dot);

static struct tp_value
tp_eval_arg(struct tp_run *r, const struct tp_arg *a, struct tp_value dot)
{
	struct tp_value v;

	switch (a->kind) {
	case TA_DOT:
	case TA_FIELD:
		v = dot;
		break;
	case TA_VAR:
		v = r->vars[a->var];
		break;
	case TA_STR:
		v = tp_strv(a->s, a->len);
		break;
	case TA_INT:
		v = tp_intv(a->i);
		break;
	case TA_BOOL:
		v = tp_boolv(a->i != 0);
		break;
	case TA_PIPE:
		v = tp_eval_pipe(r, a->pipe, dot);
		break;
	default:
		return tp_nil;       /* a bare function name: refused at compile time */
	}
	for (const struct tp_field *f = a->fields; f != NULL && v.kind != TP_NIL; f = f->next)
		v = tp_field_step(r, v, f);
	return v;
}

static struct tp_value
tp_eval_cmd(struct tp_run *r, const struct tp_cmd *c, struct tp_value dot,
    const struct tp_value *final)
{
	const struct tp_arg *a0 = c->args;
	struct tp_value argv[TEMPLATE_MAX_ARGS + 1], v = tp_nil;
	size_t n = 0;

	if (!tp_charge(r, 1))
		return tp_nil;
	if (a0->kind != TA_FUNC)
		return tp_eval_arg(r, a0, dot);
	if (a0->fn->id == FN_AND || a0->fn->id == FN_OR) {
		bool and = a0->fn->id == FN_AND;
		for (const struct tp_arg *a = a0->next; a != NULL; a = a->next) {
			v = tp_eval_arg(r, a, dot);
			if (r->stop)
				return tp_nil;
			if (tp_truth(r, v) != and)
				return v;
		}
		return final != NULL ? *final : v;
	}
	for (const struct tp_arg *a = a0->next; a != NULL; a = a->next) {
		argv[n++] = tp_eval_arg(r, a, dot);
		if (r->stop)
			return tp_nil;
	}
	if (final != NULL)
		argv[n++] = *final;
	return tp_apply(r, a0->fn->id, argv, n);
}

static struct tp_value
tp_eval_pipe(struct tp_run *r, const struct tp_pipe *pp, struct tp_value dot)
{
	struct tp_value v = tp_nil, prev;
	bool have = false;

	for (const struct tp_cmd *c = pp->cmds; c != NULL && !r->stop; c = c->next) {
		prev = v;
		v = tp_eval_cmd(r, c, dot, have ? &prev : NULL);
		have = true;
	}
	if (r->stop)
		v = tp_nil;
	if (pp->decl >= 0)
		r->vars[pp->decl] = v;
	return v;
}

static void tp_exec(struct tp_run *r, const struct tp_node *n, struct tp_value dot);

static void
tp_exec_if(struct tp_run *r, const struct tp_node *n, struct tp_value dot)
{
	for (const struct tp_branch *br = n->branches; br != NULL; br = br->next) {
		struct tp_value v = tp_eval_pipe(r, br->cond, dot);
		if (r->stop)
			return;
		if (tp_truth(r, v)) {
			tp_exec(r, br->body, br->with ? v : dot);
			return;
		}
	}
	tp_exec(r, n->else_body, dot);
}

static void
tp_exec_range(struct tp_run *r, const struct tp_node *n, struct tp_value dot)
{
	struct tp_value v = tp_eval_pipe(r, n->pipe, dot);

	if (r->stop)
		return;
	if (v.kind == TP_MAP) {
		tp_meta_all(r);
		if (r->nmeta > 0) {
			for (size_t i = 0; i < r->nmeta && tp_charge(r, 1); i++) {
				struct tp_value val = tp_cstrv(r->meta[i].value);
				if (n->kvar >= 0)
					r->vars[n->kvar] = tp_cstrv(r->meta[i].key);
				if (n->vvar >= 0)
					r->vars[n->vvar] = val;
				tp_exec(r, n->body, val);
				if (r->jump == TP_JUMP_BREAK) {
					r->jump = TP_JUMP_NONE;
					break;
				}
				r->jump = TP_JUMP_NONE;
			}
			return;
		}
	}
	tp_exec(r, n->else_body, dot);
}

static void
tp_exec(struct tp_run *r, const struct tp_node *n, struct tp_value dot)
{
	for (; n != NULL && !r->stop && r->jump == TP_JUMP_NONE; n = n->next) {
		struct tp_value v;

		if (!tp_charge(r, 1))
			return;
		switch (n->kind) {
		case TN_TEXT:
			if (tp_charge(r, n->len))
				util_buf_append(r->out, n->text, n->len);
			break;
		case TN_ACTION:
			v = tp_eval_pipe(r, n->pipe, dot);
			if (n->pipe->decl < 0)
				tp_print(r, v);
			break;
		case TN_IF:
			tp_exec_if(r, n, dot);
			break;
		case TN_RANGE:
			tp_exec_range(r, n, dot);
			break;
		case TN_BREAK:
			r->jump = TP_JUMP_BREAK;
			break;
		case TN_CONTINUE:
			r->jump = TP_JUMP_CONTINUE;
			break;
		}
	}
}

/* ---- output bounds ---- */

static const char tp_ellipsis[] = "\xe2\x80\xa6";   /* U+2026 */

/* Bytes of the unit at s[i]: a <…> span, an entity or one character; *chars its count. */
static size_t
tp_unit(const char *s, size_t n, size_t i, size_t *chars)
{
	size_t l;

	if (s[i] == '<') {
		for (size_t j = i + 1; j < n && s[j] != '<'; j++)
			if (s[j] == '>') {
				*chars = template_chars(s + i, j + 1 - i);
				return j + 1 - i;
			}
	} else if (s[i] == '&') {
		*chars = 1;
		l = util_entity_len(s + i, n - i);
		return l ? l : 1;
	}
	*chars = 1;
	l = util_utf8_len((const unsigned char *)s + i, n - i);
	return l ? l : 1;
}

size_t
template_chars(const char *s, size_t n)
{
	size_t i = 0, c = 0;

	while (i < n) {
		size_t l = 1;
		if (s[i] == '&') {
			size_t e = util_entity_len(s + i, n - i);
			l = e ? e : 1;
		} else if ((unsigned char)s[i] >= 0x80) {
			l = util_utf8_len((const unsigned char *)s + i, n - i);
			l = l ? l : 1;
		}
		i += l;
		c++;
	}
	return c;
}

size_t
template_fit(const char *s, size_t n, size_t limit)
{
	size_t i = 0, kept = 0;

	if (n <= limit)
		return n;
	while (i < n) {
		size_t ch, l = tp_unit(s, n, i, &ch);
		if (kept + ch > limit)
			break;
		kept += ch;
		i += l;
	}
	return i;
}

size_t
template_marker(struct util_buf *out, size_t rest)
{
	char marker[64];
	int m = snprintf(marker, sizeof(marker), "%s (%zu more characters)", tp_ellipsis, rest);
	size_t len = m < 0 ? 0 : (size_t)m;

	if (out != NULL)
		util_buf_append(out, marker, len);
	return template_chars(marker, len);
}

size_t
template_cut_counted(struct util_buf *out, const char *s, size_t n, size_t limit,
    size_t total_chars)
{
	if (total_chars <= limit) {
		if (out != NULL)
			util_buf_append(out, s, n);
		return total_chars;
	}
	size_t fit = template_fit(s, n, limit), kept = template_chars(s, fit);
	if (out != NULL)
		util_buf_append(out, s, fit);
	return kept + template_marker(out, total_chars - kept);
}

/*
 * Cut b->data[start..) to limit characters (0: no limit). The end marker is
 * template_marker's, or just "…" when exhausted (the rendering stopped
 * early, so N is unknown; then "…" is appended even when nothing was cut).
 */
static int
tp_cut(struct util_buf *b, size_t start, size_t limit, bool exhausted)
{
	size_t cut = SIZE_MAX;

	if (b->len > start && limit > 0 && b->len - start > limit) {
		cut = template_fit(b->data + start, b->len - start, limit);
		if (cut == b->len - start)
			cut = SIZE_MAX;
	}
	if (cut == SIZE_MAX) {
		if (exhausted)
			util_buf_puts(b, tp_ellipsis);
		return 0;
	}
	size_t rest = exhausted ? 0 : template_chars(b->data + start + cut, b->len - start - cut);
	b->len = start + cut;
	b->data[b->len] = '\0';
	if (exhausted)
		util_buf_puts(b, tp_ellipsis);
	else
		template_marker(b, rest);
	return 1;
}

int
template_cut(struct util_buf *b, size_t start, size_t limit)
{
	return tp_cut(b, start, limit, false);
}

void
template_render(const struct template *t, const struct template_data *d, size_t limit,
    struct util_buf *out)
{
	struct tp_value stackvars[16];
	struct tp_run r;
	size_t start = out->len;

	if (t == NULL || d == NULL || d->ev == NULL)
		return;
	memset(&r, 0, sizeof(r));
	r.t = t;
	r.d = d;
	r.ev = d->ev;
	r.out = out;
	r.work = TEMPLATE_MAX_WORK;
	r.vars = t->nvars <= TP_NELEM(stackvars) ? stackvars :
	    util_malloc(t->nvars * sizeof(*r.vars));
	for (size_t i = 0; i < t->nvars; i++)
		r.vars[i] = tp_nil;
	r.vars[0] = tp_objv(TP_ROOT);
	tp_exec(&r, t->root, r.vars[0]);
	tp_cut(out, start, limit, r.stop);
	for (size_t i = 0; i < r.nkept; i++)
		free(r.kept[i]);
	free(r.kept);
	if (r.vars != stackvars)
		free(r.vars);
}

char *
template_render_string(const struct template *t, const struct template_data *d, size_t limit)
{
	struct util_buf b = { 0 };

	template_render(t, d, limit, &b);
	return b.data != NULL ? b.data : util_strdup("");
}
