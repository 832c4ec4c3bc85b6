/*
 * import_map: Flux Alert/Provider/Secret manifests -> fluxrelay.conf text
 * (import_map.h, SPEC §14).
 *
 * Three passes over the manifests: collect the objects (documents and the
 * items of a `kind: List`; a later object of the same kind, namespace and
 * name replaces an earlier one, as `kubectl apply` would), map every
 * Provider, then every Alert (an Alert needs its Provider's outcome), then
 * write the text. Nothing here reads a file or the environment.
 *
 * Flux's semantics that the mapping keeps (notification-controller v1.x,
 * internal/server/event_handlers.go):
 *  - an event source without a namespace means the Alert's own namespace,
 *    matched exactly; kind and namespace are exact, name is exact or "*";
 *  - eventSeverity "info" (the default) passes everything, "error" errors only;
 *  - inclusionList/exclusionList are unanchored Go regexes on the message;
 *  - a suspended Alert or Provider sends nothing;
 *  - the Secret's "address" (whitespace trimmed) overrides spec.address; a
 *    Slack Provider with a "token" posts with it as a bot to the address;
 *    generic-hmac signs with the Secret's "token" bytes as stored;
 *  - commit-status updates reach generic providers but never Slack.
 */
#include "import_map.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "import_yaml.h"

#define IMPORT_MAP_GROUP "notification.toolkit.fluxcd.io/"
#define IMPORT_MAP_POST_MESSAGE "/chat.postMessage"
/* conf.c's bounds for a provider timeout, in seconds. */
#define IMPORT_MAP_TIMEOUT_MIN_NS 1000000LL
#define IMPORT_MAP_TIMEOUT_MAX_NS 3600000000000LL

enum import_map_kind { IMPORT_MAP_ALERT, IMPORT_MAP_PROVIDER, IMPORT_MAP_SECRET };

enum import_map_ptype {
	IMPORT_MAP_SLACK,
	IMPORT_MAP_SLACK_BOT,
	IMPORT_MAP_GENERIC,
	IMPORT_MAP_GENERIC_HMAC,
};

struct import_map_kv {
	char *key;
	unsigned char *value;   /* NUL-terminated; may hold NULs (len) */
	size_t len;
	unsigned line;
};

/* One Alert, Provider or Secret found in the input. */
struct import_map_obj {
	enum import_map_kind kind;
	const char *version;             /* "v1beta3"; "v1" for a Secret */
	size_t input;                    /* index into the inputs */
	size_t doc;                      /* 1-based document */
	long item;                       /* index in a List's items, or -1 */
	unsigned line;
	char *ns, *name;
	const struct import_yaml_node *node;
	bool superseded;                 /* a later object of the same kind, ns and name wins */
	struct import_map_kv *data;      /* Secret: data and stringData, decoded */
	size_t ndata;
};

/* A Provider or an Alert being mapped. */
struct import_map_entry {
	struct import_map_obj *obj;
	char *cname;                     /* name in the config */
	bool ok;                         /* imported */
	struct util_buf notes;           /* comment lines above the entry */
	struct util_buf body;            /* the settings, one per line */
	/* Provider */
	enum import_map_ptype ptype;
	bool suspend;
};

struct import_map_msg {
	size_t input;
	unsigned line;
	size_t seq;
	char *text;
};

struct import_map_env {
	char *var;
	char *what;                      /* "Secret ns/name, key \"k\"" or a placeholder's story */
	char *hint;                      /* a kubectl command that prints the value, or NULL */
};

struct import_map_ctx {
	const struct import_map_input *in;
	size_t nin;
	const char *secrets_dir;
	struct import_yaml_stream *streams;
	struct import_map_obj **objs;
	size_t nobjs, capobjs;
	struct import_map_entry *provs;
	size_t nprovs;
	struct import_map_entry *alerts;
	size_t nalerts;
	struct import_map_msg *msgs;
	size_t nmsgs, capmsgs;
	struct import_map_env *envs;
	size_t nenvs, capenvs;
	struct import_map_result *r;
	size_t capsecrets;
	/* Comments for Alerts and Providers that were skipped outright (bad version, no name). */
	struct util_buf skipped_alerts, skipped_providers;
};

/* ------------------------------------------------------------------------ */
/* Text helpers                                                             */

void
import_map_conf_string(struct util_buf *b, const char *s)
{
	util_buf_puts(b, "\"");
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '"': util_buf_puts(b, "\\\""); break;
		case '\\': util_buf_puts(b, "\\\\"); break;
		case '\n': util_buf_puts(b, "\\n"); break;
		case '\r': util_buf_puts(b, "\\r"); break;
		case '\t': util_buf_puts(b, "\\t"); break;
		case '\f': util_buf_puts(b, "\\f"); break;
		default:
			if (*p < 0x20 || *p == 0x7f)
				util_buf_printf(b, "\\x%02x", *p);
			else
				util_buf_append(b, (const char *)p, 1);
		}
	}
	util_buf_puts(b, "\"");
}

/* Text from a manifest in a message or a comment: control characters as \xNN. */
static void
import_map_clean(struct util_buf *b, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch < 0x20 || ch == 0x7f)
			util_buf_printf(b, "\\x%02x", ch);
		else
			util_buf_append(b, s + i, 1);
	}
}

bool
import_map_name_ok(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s; s++) {
		char ch = *s;
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.'))
			return false;
	}
	return true;
}

char *
import_map_name_clean(const char *s)
{
	if (*s == '\0')
		return util_strdup("unnamed");
	char *c = util_strdup(s);
	for (char *p = c; *p; p++) {
		char ch = *p;
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.'))
			*p = '-';
	}
	return c;
}

bool
import_map_setting_name_ok(const char *s)
{
	if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '*'))
		return false;
	for (s++; *s; s++) {
		char ch = *s;
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '*'))
			return false;
	}
	return true;
}

char *
import_map_env_name(const char *provider, const char *key)
{
	struct util_buf b = {0};
	util_buf_puts(&b, "FLUXRELAY_");
	for (const char *parts[2] = { provider, key }, **p = parts; p < parts + 2; p++) {
		if (p != parts)
			util_buf_puts(&b, "_");
		for (const char *s = *p; *s; s++) {
			char ch = *s;
			if (ch >= 'a' && ch <= 'z')
				ch = (char)(ch - 'a' + 'A');
			else if (!((ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')))
				ch = '_';
			util_buf_append(&b, &ch, 1);
		}
	}
	return b.data;
}

char *
import_map_glob_exact(const char *s)
{
	struct util_buf b = {0};
	util_buf_puts(&b, "");
	for (; *s; s++) {
		if (strchr("*?[]\\", *s) != NULL)
			util_buf_puts(&b, "\\");
		util_buf_append(&b, s, 1);
	}
	return b.data;
}

char *
import_map_regex(const char *re, bool *changed)
{
	struct util_buf b = {0};
	size_t n = strlen(re), depth = 0;
	/* multiline flag of each open group; [0] is the whole pattern */
	bool *ml = util_calloc(n + 2, sizeof(*ml));
	bool quoted = false;
	*changed = false;
	util_buf_puts(&b, "");
	for (size_t i = 0; i < n; i++) {
		char c = re[i];
		if (quoted) {
			if (c == '\\' && re[i + 1] == 'E') {
				util_buf_append(&b, re + i, 2);
				i++;
				quoted = false;
			} else {
				util_buf_append(&b, &c, 1);
			}
			continue;
		}
		if (c == '\\') {
			if (re[i + 1] == 'Q')
				quoted = true;
			util_buf_append(&b, re + i, re[i + 1] ? 2 : 1);
			i += re[i + 1] ? 1 : 0;
			continue;
		}
		if (c == '[') {
			/* A class: ']' right after '[' or '[^' is a member; [:name:] nests. */
			size_t j = i + 1;
			if (re[j] == '^')
				j++;
			if (re[j] == ']')
				j++;
			while (j < n && re[j] != ']') {
				if (re[j] == '\\' && j + 1 < n)
					j += 2;
				else if (re[j] == '[' && re[j + 1] == ':') {
					const char *end = strstr(re + j + 2, ":]");
					j = end ? (size_t)(end - re) + 2 : j + 1;
				} else
					j++;
			}
			size_t stop = j < n ? j + 1 : n;
			util_buf_append(&b, re + i, stop - i);
			i = stop - 1;
			continue;
		}
		if (c == '(') {
			bool inherit = ml[depth];
			util_buf_append(&b, &c, 1);
			if (re[i + 1] == '?' && re[i + 2] != 'P' && re[i + 2] != '<') {
				/* (?flags) or (?flags:...) */
				size_t j = i + 2;
				bool on = true, m = inherit;
				while (j < n && strchr("imsU-", re[j]) != NULL) {
					if (re[j] == '-')
						on = false;
					else if (re[j] == 'm')
						m = on;
					j++;
				}
				if (re[j] == ')') {
					ml[depth] = m;   /* applies to the rest of the current group */
					util_buf_append(&b, re + i + 1, j - i);
					i = j;
					continue;
				}
				if (re[j] == ':')
					inherit = m;
			}
			ml[++depth] = inherit;
			continue;
		}
		if (c == ')') {
			if (depth > 0)
				depth--;
			util_buf_append(&b, &c, 1);
			continue;
		}
		if (c == '$' && !ml[depth]) {
			util_buf_puts(&b, "\\z");
			*changed = true;
			continue;
		}
		util_buf_append(&b, &c, 1);
	}
	free(ml);
	return b.data;
}

int
import_map_duration(const char *s, long long *out)
{
	static const struct { const char *unit; uint64_t ns; } units[] = {
		{ "ns", 1 }, { "us", 1000 }, { "\xc2\xb5s", 1000 }, { "\xce\xbcs", 1000 },
		{ "ms", 1000000 }, { "s", 1000000000ULL }, { "m", 60000000000ULL },
		{ "h", 3600000000000ULL },
	};
	const uint64_t max = (uint64_t)INT64_MAX;
	uint64_t d = 0;
	bool neg = false;
	if (*s == '-' || *s == '+') {
		neg = *s == '-';
		s++;
	}
	if (strcmp(s, "0") == 0) {
		*out = 0;
		return 0;
	}
	if (*s == '\0')
		return -1;
	while (*s != '\0') {
		uint64_t v = 0, f = 0;
		double scale = 1;
		bool pre = false, post = false;
		if (!(*s == '.' || (*s >= '0' && *s <= '9')))
			return -1;
		for (; *s >= '0' && *s <= '9'; s++) {
			if (v > (max - (uint64_t)(*s - '0')) / 10)
				return -1;
			v = v * 10 + (uint64_t)(*s - '0');
			pre = true;
		}
		if (*s == '.') {
			bool overflow = false;
			for (s++; *s >= '0' && *s <= '9'; s++) {
				post = true;
				if (overflow)
					continue;
				if (f > (max - (uint64_t)(*s - '0')) / 10) {
					overflow = true;   /* Go drops the digits it cannot hold */
					continue;
				}
				f = f * 10 + (uint64_t)(*s - '0');
				scale *= 10;
			}
		}
		if (!pre && !post)
			return -1;
		const char *u = s;
		while (*s != '\0' && *s != '.' && !(*s >= '0' && *s <= '9'))
			s++;
		size_t ulen = (size_t)(s - u);
		uint64_t unit = 0;
		for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
			if (strlen(units[i].unit) == ulen && memcmp(units[i].unit, u, ulen) == 0)
				unit = units[i].ns;
		if (unit == 0)
			return -1;
		if (v > max / unit)
			return -1;
		v *= unit;
		if (f > 0) {
			double add = (double)f * ((double)unit / scale);
			if (add >= 9223372036854775808.0)
				return -1;
			v += (uint64_t)add;
			if (v > max)
				return -1;
		}
		if (d > max - v)
			return -1;
		d += v;
	}
	*out = neg ? -(long long)d : (long long)d;
	return 0;
}

char *
import_map_seconds(long long ns)
{
	bool neg = ns < 0;
	unsigned long long u = neg ? 0ULL - (unsigned long long)ns : (unsigned long long)ns;
	unsigned long long sec = u / 1000000000ULL, frac = u % 1000000000ULL;
	if (frac == 0)
		return util_printf("%s%llu", neg ? "-" : "", sec);
	char digits[16];
	snprintf(digits, sizeof(digits), "%09llu", frac);
	size_t len = strlen(digits);
	while (len > 0 && digits[len - 1] == '0')
		digits[--len] = '\0';
	return util_printf("%s%llu.%s", neg ? "-" : "", sec, digits);
}

/* ------------------------------------------------------------------------ */
/* Messages                                                                 */

/*
 * Takes text. Every message can quote a manifest's bytes (an apiVersion, a
 * kind, a key), so control characters are escaped here, once for all of them:
 * a message is one line on a terminal or in a log.
 */
static void
import_map_msg_add(struct import_map_ctx *x, size_t input, unsigned line, char *text)
{
	size_t n = strlen(text);
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)text[i];
		if (ch < 0x20 || ch == 0x7f) {
			struct util_buf b = {0};
			import_map_clean(&b, text, n);
			free(text);
			text = b.data;
			break;
		}
	}
	if (x->nmsgs == x->capmsgs) {
		x->capmsgs = x->capmsgs ? 2 * x->capmsgs : 16;
		x->msgs = util_realloc(x->msgs, x->capmsgs * sizeof(*x->msgs));
	}
	x->msgs[x->nmsgs] = (struct import_map_msg){ input, line, x->nmsgs, text };
	x->nmsgs++;
}

static const char *
import_map_kind_name(enum import_map_kind k)
{
	return k == IMPORT_MAP_ALERT ? "Alert" : k == IMPORT_MAP_PROVIDER ? "Provider" : "Secret";
}

/* "Provider flux-system/slack", control characters escaped. */
static void
import_map_obj_label(struct util_buf *b, const struct import_map_obj *o)
{
	util_buf_printf(b, "%s ", import_map_kind_name(o->kind));
	import_map_clean(b, o->ns, strlen(o->ns));
	util_buf_puts(b, "/");
	import_map_clean(b, o->name, strlen(o->name));
}

/*
 * "FILE:LINE: LEVEL: WHAT: text" on stderr; for an entry, also "# text" as
 * a comment above it in the output. line 0 = the object's own line.
 */
static void import_map_report(struct import_map_ctx *x, const struct import_map_obj *o,
    struct import_map_entry *e, const char *level, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static void
import_map_report(struct import_map_ctx *x, const struct import_map_obj *o,
    struct import_map_entry *e, const char *level, unsigned line, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *text = util_vprintf(fmt, ap);
	va_end(ap);
	struct util_buf b = {0};
	if (line == 0)
		line = o->line;
	import_map_clean(&b, x->in[o->input].name, strlen(x->in[o->input].name));
	util_buf_printf(&b, ":%u: %s: ", line, level);
	import_map_obj_label(&b, o);
	util_buf_puts(&b, ": ");
	import_map_clean(&b, text, strlen(text));
	import_map_msg_add(x, o->input, line, b.data);
	if (strcmp(level, "warning") == 0)
		x->r->nwarnings++;
	if (e != NULL) {
		util_buf_puts(&e->notes, "  # ");
		if (strcmp(level, "warning") == 0)
			util_buf_puts(&e->notes, "warning: ");
		import_map_clean(&e->notes, text, strlen(text));
		util_buf_puts(&e->notes, "\n");
	}
	free(text);
}

#define import_map_warn(x, e, line, ...) \
	import_map_report((x), (e)->obj, (e), "warning", (line), __VA_ARGS__)

/* ------------------------------------------------------------------------ */
/* Collecting objects                                                       */

static const struct import_yaml_node *
import_map_get(const struct import_yaml_node *map, const char *key)
{
	const struct import_yaml_node *v = import_yaml_get(map, key);
	return import_yaml_is_null(v) ? NULL : v;
}

/* A string from a scalar with no NUL byte in it, else NULL. */
static const char *
import_map_text(const struct import_yaml_node *n)
{
	const char *s = import_yaml_str(n);
	if (s != NULL && strlen(s) != n->len)
		return NULL;
	return s;
}

/* Base64 as Kubernetes decodes Secret data (Go's StdEncoding: padding required, CR/LF skipped). */
static int
import_map_base64(const char *in, size_t n, unsigned char **out, size_t *outlen)
{
	unsigned char *o = util_malloc(n / 4 * 3 + 4);
	size_t len = 0, q = 0, pad = 0;
	uint32_t acc = 0;
	for (size_t i = 0; i < n; i++) {
		char c = in[i];
		int v;
		if (c == '\r' || c == '\n')
			continue;
		if (c == '=') {
			pad++;
			v = 0;
		} else {
			if (pad > 0)
				goto bad;
			if (c >= 'A' && c <= 'Z')
				v = c - 'A';
			else if (c >= 'a' && c <= 'z')
				v = c - 'a' + 26;
			else if (c >= '0' && c <= '9')
				v = c - '0' + 52;
			else if (c == '+')
				v = 62;
			else if (c == '/')
				v = 63;
			else
				goto bad;
		}
		acc = acc << 6 | (uint32_t)v;
		if (++q == 4) {
			if (pad > 2)
				goto bad;
			o[len++] = (unsigned char)(acc >> 16);
			if (pad < 2)
				o[len++] = (unsigned char)(acc >> 8);
			if (pad < 1)
				o[len++] = (unsigned char)acc;
			q = 0;
			acc = 0;
			if (pad > 0) {
				/* nothing but line breaks may follow the padding */
				for (i++; i < n; i++)
					if (in[i] != '\r' && in[i] != '\n')
						goto bad;
				break;
			}
		}
	}
	if (q != 0)
		goto bad;
	o[len] = '\0';
	*out = o;
	*outlen = len;
	return 0;
bad:
	free(o);
	return -1;
}

static struct import_map_kv *
import_map_secret_find(const struct import_map_obj *s, const char *key)
{
	for (size_t i = 0; i < s->ndata; i++)
		if (strcmp(s->data[i].key, key) == 0)
			return &s->data[i];
	return NULL;
}

/* Secret data (base64) then stringData (wins on a clash, as the API server merges them). */
static void
import_map_secret_read(struct import_map_ctx *x, struct import_map_obj *o)
{
	static const char *const fields[] = { "data", "stringData" };
	for (int f = 0; f < 2; f++) {
		const struct import_yaml_node *m = import_map_get(o->node, fields[f]);
		if (m == NULL)
			continue;
		if (m->type != IMPORT_YAML_MAP) {
			import_map_report(x, o, NULL, "warning", m->line,
			    "%s is not a mapping: ignored", fields[f]);
			continue;
		}
		for (size_t i = 0; i + 1 < m->n; i += 2) {
			const char *key = import_map_text(m->items[i]);
			const struct import_yaml_node *v = m->items[i + 1];
			unsigned char *val = NULL;
			size_t len = 0;
			if (key == NULL)
				continue;
			if (import_yaml_is_null(v)) {
				val = (unsigned char *)util_strdup("");
			} else if (v->type != IMPORT_YAML_SCALAR) {
				import_map_report(x, o, NULL, "warning", v->line,
				    "%s.%s is not a string: ignored", fields[f], key);
				continue;
			} else if (f == 0) {
				if (import_map_base64(v->value, v->len, &val, &len) < 0) {
					import_map_report(x, o, NULL, "warning", v->line,
					    "data.%s is not valid base64: ignored", key);
					continue;
				}
			} else {
				len = v->len;
				val = util_malloc(len + 1);
				memcpy(val, v->value, len);
				val[len] = '\0';
			}
			struct import_map_kv *kv = import_map_secret_find(o, key);
			if (kv == NULL) {
				o->data = util_realloc(o->data, (o->ndata + 1) * sizeof(*o->data));
				kv = &o->data[o->ndata++];
				kv->key = util_strdup(key);
			} else {
				memset(kv->value, 0, kv->len);
				free(kv->value);
			}
			kv->value = val;
			kv->len = len;
			kv->line = v->line;
		}
	}
}

static void
import_map_obj_add(struct import_map_ctx *x, struct import_map_obj *o)
{
	if (x->nobjs == x->capobjs) {
		x->capobjs = x->capobjs ? 2 * x->capobjs : 16;
		x->objs = util_realloc(x->objs, x->capobjs * sizeof(*x->objs));
	}
	x->objs[x->nobjs++] = o;
}

/*
 * A note about a skipped object, named by what it says it is; a skipped
 * Alert or Provider also gets a comment at the end of its list in the output.
 */
static void
import_map_skip(struct import_map_ctx *x, size_t input, size_t doc, long item, unsigned line,
    const char *level, const char *kind, const struct import_yaml_node *obj, const char *why)
{
	const struct import_yaml_node *meta = import_map_get(obj, "metadata");
	const char *ns = import_map_text(import_map_get(meta, "namespace"));
	const char *name = import_map_text(import_map_get(meta, "name"));
	struct util_buf what = {0}, b = {0};
	import_map_clean(&what, kind, strlen(kind));
	if (name != NULL) {
		util_buf_puts(&what, " ");
		if (ns != NULL) {
			import_map_clean(&what, ns, strlen(ns));
			util_buf_puts(&what, "/");
		}
		import_map_clean(&what, name, strlen(name));
	}
	import_map_clean(&b, x->in[input].name, strlen(x->in[input].name));
	util_buf_printf(&b, ":%u: %s: skipped %s: %s", line, level, what.data, why);
	import_map_msg_add(x, input, line, b.data);
	if (strcmp(level, "warning") == 0)
		x->r->nwarnings++;
	struct util_buf *c = strcmp(kind, "Alert") == 0 ? &x->skipped_alerts
	    : strcmp(kind, "Provider") == 0 ? &x->skipped_providers : NULL;
	if (c != NULL) {
		util_buf_printf(c, "\n  # %s: ", what.data);
		import_map_clean(c, x->in[input].name, strlen(x->in[input].name));
		util_buf_printf(c, ":%u (document %zu", line, doc);
		if (item >= 0)
			util_buf_printf(c, ", items[%ld]", item);
		util_buf_printf(c, ")\n  # %s: not imported: %s\n", level, why);
	}
	util_buf_free(&what);
}

/* One Kubernetes object (a document or a List item): keep it when it is ours. */
static void
import_map_collect_obj(struct import_map_ctx *x, size_t input, size_t doc, long item,
    const struct import_yaml_node *n)
{
	const char *api = import_map_text(import_map_get(n, "apiVersion"));
	const char *kind = import_map_text(import_map_get(n, "kind"));
	enum import_map_kind k;
	const char *version;
	if (api == NULL || kind == NULL) {
		struct util_buf b = {0};
		import_map_clean(&b, x->in[input].name, strlen(x->in[input].name));
		util_buf_printf(&b, ":%u: note: skipped %s: no apiVersion or kind", n->line,
		    item < 0 ? "a document" : "a List item");
		import_map_msg_add(x, input, n->line, b.data);
		return;
	}
	if (strcmp(api, "v1") == 0 && strcmp(kind, "Secret") == 0) {
		k = IMPORT_MAP_SECRET;
		version = "v1";
	} else if (strncmp(api, IMPORT_MAP_GROUP, strlen(IMPORT_MAP_GROUP)) == 0 &&
	    (strcmp(kind, "Alert") == 0 || strcmp(kind, "Provider") == 0)) {
		version = api + strlen(IMPORT_MAP_GROUP);
		if (strcmp(version, "v1beta1") != 0 && strcmp(version, "v1beta2") != 0 &&
		    strcmp(version, "v1beta3") != 0 && strcmp(version, "v1") != 0) {
			char *why = util_printf("API version %s is not one fluxrelay knows "
			    "(v1beta1, v1beta2, v1beta3, v1)", api);
			import_map_skip(x, input, doc, item, n->line, "warning", kind, n, why);
			free(why);
			return;
		}
		k = strcmp(kind, "Alert") == 0 ? IMPORT_MAP_ALERT : IMPORT_MAP_PROVIDER;
	} else if (strncmp(api, IMPORT_MAP_GROUP, strlen(IMPORT_MAP_GROUP)) == 0 &&
	    strcmp(kind, "Receiver") == 0) {
		import_map_skip(x, input, doc, item, n->line, "note", kind, n,
		    "webhook Receivers stay with notification-controller");
		return;
	} else {
		import_map_skip(x, input, doc, item, n->line, "note", kind, n,
		    "fluxrelay imports notification.toolkit.fluxcd.io Alerts and Providers "
		    "and the Secrets they use");
		return;
	}
	const struct import_yaml_node *meta = import_map_get(n, "metadata");
	const char *name = import_map_text(import_map_get(meta, "name"));
	const char *ns = import_map_text(import_map_get(meta, "namespace"));
	if (name == NULL || *name == '\0') {
		import_map_skip(x, input, doc, item, n->line, "warning", kind, n, "no metadata.name");
		return;
	}
	struct import_map_obj *o = util_calloc(1, sizeof(*o));
	o->kind = k;
	o->version = version;
	o->input = input;
	o->doc = doc;
	o->item = item;
	o->line = n->line;
	o->name = util_strdup(name);
	o->ns = util_strdup(ns != NULL && *ns != '\0' ? ns : "default");
	o->node = n;
	if (ns == NULL || *ns == '\0')
		import_map_report(x, o, NULL, "note", 0,
		    "no metadata.namespace: taken as \"default\", as kubectl would");
	if (k == IMPORT_MAP_SECRET)
		import_map_secret_read(x, o);
	import_map_obj_add(x, o);
}

static void
import_map_collect(struct import_map_ctx *x, size_t input)
{
	const struct import_yaml_stream *s = &x->streams[input];
	for (size_t d = 0; d < s->ndocs; d++) {
		const struct import_yaml_node *root = s->docs[d].root;
		if (root == NULL || import_yaml_is_null(root))
			continue;
		if (root->type != IMPORT_YAML_MAP) {
			struct util_buf b = {0};
			import_map_clean(&b, x->in[input].name, strlen(x->in[input].name));
			util_buf_printf(&b, ":%u: note: skipped document %zu: not a Kubernetes object",
			    root->line, s->docs[d].index);
			import_map_msg_add(x, input, root->line, b.data);
			continue;
		}
		const char *kind = import_map_text(import_map_get(root, "kind"));
		const struct import_yaml_node *items = import_map_get(root, "items");
		size_t klen = kind ? strlen(kind) : 0;
		if (kind != NULL && klen >= 4 && strcmp(kind + klen - 4, "List") == 0 &&
		    (items == NULL || items->type == IMPORT_YAML_SEQ)) {
			/* kubectl get -o yaml: kind: List, items: [objects] */
			for (size_t i = 0; items != NULL && i < items->n; i++) {
				if (items->items[i]->type == IMPORT_YAML_MAP) {
					import_map_collect_obj(x, input, s->docs[d].index, (long)i,
					    items->items[i]);
				} else {
					struct util_buf b = {0};
					import_map_clean(&b, x->in[input].name, strlen(x->in[input].name));
					util_buf_printf(&b, ":%u: note: skipped items[%zu]: not a "
					    "Kubernetes object", items->items[i]->line, i);
					import_map_msg_add(x, input, items->items[i]->line, b.data);
				}
			}
			continue;
		}
		import_map_collect_obj(x, input, s->docs[d].index, -1, root);
	}
}

/* The later of two objects of one kind, namespace and name wins, as with kubectl apply. */
static void
import_map_dedup(struct import_map_ctx *x)
{
	for (size_t i = 0; i < x->nobjs; i++) {
		struct import_map_obj *a = x->objs[i];
		for (size_t j = i + 1; j < x->nobjs; j++) {
			const struct import_map_obj *b = x->objs[j];
			if (b->kind == a->kind && strcmp(b->ns, a->ns) == 0 &&
			    strcmp(b->name, a->name) == 0) {
				a->superseded = true;
				struct util_buf where = {0};
				import_map_clean(&where, x->in[b->input].name, strlen(x->in[b->input].name));
				import_map_report(x, a, NULL, "warning", 0,
				    "defined again at %s:%u: the later definition is used", where.data,
				    b->line);
				util_buf_free(&where);
				break;
			}
		}
	}
}

static struct import_map_obj *
import_map_find(struct import_map_ctx *x, enum import_map_kind k, const char *ns,
    const char *name)
{
	for (size_t i = 0; i < x->nobjs; i++) {
		struct import_map_obj *o = x->objs[i];
		if (o->kind == k && !o->superseded && strcmp(o->ns, ns) == 0 &&
		    strcmp(o->name, name) == 0)
			return o;
	}
	return NULL;
}

/*
 * Config names for the entries of one kind: the Kubernetes name, or
 * "namespace.name" when the name is used in more than one namespace; then
 * conf's name rule, then unique ("-2", "-3", ... on a collision).
 */
static void
import_map_names(struct import_map_ctx *x, struct import_map_entry *es, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct import_map_obj *o = es[i].obj;
		bool clash = false;
		for (size_t j = 0; j < n && !clash; j++)
			clash = j != i && strcmp(es[j].obj->name, o->name) == 0 &&
			    strcmp(es[j].obj->ns, o->ns) != 0;
		char *want = clash ? util_printf("%s.%s", o->ns, o->name) : util_strdup(o->name);
		char *clean = import_map_name_clean(want);
		char *name = util_strdup(clean);
		for (unsigned k = 2;; k++) {
			bool used = false;
			for (size_t j = 0; j < i && !used; j++)
				used = strcmp(es[j].cname, name) == 0;
			if (!used)
				break;
			free(name);
			name = util_printf("%s-%u", clean, k);
		}
		es[i].cname = name;
		if (strcmp(name, o->name) != 0) {
			bool cleaned = strcmp(clean, want) != 0;
			const char *why = cleaned ? "names may hold only letters, digits, '-', '_' and '.'"
			    : strcmp(name, clean) != 0 ? "the name was taken"
			    : "the name is used in more than one namespace";
			import_map_report(x, o, &es[i], cleaned ? "warning" : "note", 0,
			    "named \"%s\" in fluxrelay: %s", name, why);
		}
		free(want);
		free(clean);
	}
}

/* ------------------------------------------------------------------------ */
/* Providers                                                                */

/* Fields of a Provider's spec, per API version (what the API server keeps). */
static const char *const import_map_provider_fields_v1beta1[] = {
	"type", "channel", "username", "address", "timeout", "proxy", "secretRef",
	"certSecretRef", "suspend", NULL
};
static const char *const import_map_provider_fields_v1beta2[] = {
	"type", "interval", "channel", "username", "address", "timeout", "proxy", "secretRef",
	"certSecretRef", "suspend", NULL
};
static const char *const import_map_provider_fields_v1beta3[] = {
	"type", "interval", "channel", "username", "address", "timeout", "proxy",
	"proxySecretRef", "secretRef", "serviceAccountName", "certSecretRef", "suspend",
	"commitStatusExpr", NULL
};
static const char *const import_map_alert_fields_v1beta1[] = {
	"providerRef", "eventSeverity", "eventSources", "exclusionList", "summary", "suspend", NULL
};
static const char *const import_map_alert_fields_v1beta2[] = {
	"providerRef", "eventSeverity", "eventSources", "inclusionList", "eventMetadata",
	"exclusionList", "summary", "suspend", NULL
};

static bool
import_map_in(const char *const *list, const char *s)
{
	for (size_t i = 0; list[i] != NULL; i++)
		if (strcmp(list[i], s) == 0)
			return true;
	return false;
}

/* Warn about spec fields the API server would drop for this version. */
static void
import_map_unknown_fields(struct import_map_ctx *x, struct import_map_entry *e,
    const struct import_yaml_node *spec, const char *const *known)
{
	for (size_t i = 0; i + 1 < spec->n; i += 2) {
		const char *k = import_map_text(spec->items[i]);
		if (k == NULL || import_map_in(known, k))
			continue;
		import_map_warn(x, e, spec->items[i]->line, "spec.%s is not a field of %s %s "
		    "(Kubernetes drops it): not imported", k, import_map_kind_name(e->obj->kind),
		    e->obj->version);
	}
}

static bool
import_map_is_http_url(const char *s)
{
	return (strncmp(s, "http://", 7) == 0 && s[7] != '\0') ||
	    (strncmp(s, "https://", 8) == 0 && s[8] != '\0');
}

static bool
import_map_ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* A Secret value as text, surrounding whitespace trimmed as Flux trims the address. New string. */
static char *
import_map_trimmed(const struct import_map_kv *kv)
{
	size_t a = 0, b = kv->len;
	while (a < b && strchr(" \t\r\n\v\f", kv->value[a]) != NULL)
		a++;
	while (b > a && strchr(" \t\r\n\v\f", kv->value[b - 1]) != NULL)
		b--;
	return util_strndup((const char *)kv->value + a, b - a);
}

static bool
import_map_has_ctl(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return true;
	return false;
}

static void
import_map_env_add(struct import_map_ctx *x, char *var, char *what, char *hint)
{
	if (x->nenvs == x->capenvs) {
		x->capenvs = x->capenvs ? 2 * x->capenvs : 8;
		x->envs = util_realloc(x->envs, x->capenvs * sizeof(*x->envs));
	}
	x->envs[x->nenvs++] = (struct import_map_env){ var, what, hint };
}

static bool
import_map_shell_safe(const char *s)
{
	return *s != '\0' && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789._-") == strlen(s);
}

/*
 * A secret setting of provider e: KEY_file naming a file in the secrets
 * directory that will hold value[len] (when a directory was given and the
 * value is known), else KEY_env naming a variable listed in the header.
 * secret/skey say where the value comes from (secret NULL: a placeholder
 * for a Secret that is not in the input).
 */
static void
import_map_secret_setting(struct import_map_ctx *x, struct import_map_entry *e, const char *key,
    const struct import_map_obj *secret, const char *skey, const char *secret_name,
    const unsigned char *value, size_t len)
{
	if (x->secrets_dir != NULL && secret != NULL) {
		struct import_map_result *r = x->r;
		if (r->nsecrets == x->capsecrets) {
			x->capsecrets = x->capsecrets ? 2 * x->capsecrets : 8;
			r->secrets = util_realloc(r->secrets, x->capsecrets * sizeof(*r->secrets));
		}
		struct import_map_secret *s = &r->secrets[r->nsecrets++];
		s->file = util_printf("%s.%s", e->cname, key);
		s->data = util_malloc(len + 1);
		memcpy(s->data, value, len);
		s->data[len] = '\0';
		s->len = len;
		char *path = util_printf("%s%s%s", x->secrets_dir,
		    import_map_ends_with(x->secrets_dir, "/") ? "" : "/", s->file);
		util_buf_printf(&e->body, "    %s_file = ", key);
		import_map_conf_string(&e->body, path);
		util_buf_puts(&e->body, ";\n");
		free(path);
		return;
	}
	char *base = import_map_env_name(e->cname, key), *var = util_strdup(base);
	for (unsigned k = 2;; k++) {
		bool used = false;
		for (size_t i = 0; i < x->nenvs && !used; i++)
			used = strcmp(x->envs[i].var, var) == 0;
		if (!used)
			break;
		free(var);
		var = util_printf("%s_%u", base, k);
	}
	free(base);
	struct util_buf what = {0}, ns = {0}, nm = {0};
	import_map_clean(&ns, e->obj->ns, strlen(e->obj->ns));
	import_map_clean(&nm, secret_name, strlen(secret_name));
	util_buf_printf(&what, "Secret %s/%s, key \"%s\"%s", ns.data, nm.data, skey,
	    secret == NULL ? " (the Secret was not in the input)" : "");
	char *hint = NULL;
	if (import_map_shell_safe(e->obj->ns) && import_map_shell_safe(secret_name))
		hint = util_printf("kubectl -n %s get secret %s -o jsonpath='{.data.%s}' | base64 -d",
		    e->obj->ns, secret_name, skey);
	util_buf_printf(&e->body, "    %s_env = \"%s\";\n", key, var);
	import_map_env_add(x, var, what.data, hint);
	util_buf_free(&ns);
	util_buf_free(&nm);
}

static void
import_map_setting_str(struct util_buf *b, const char *key, const char *v)
{
	util_buf_printf(b, "    %s = ", key);
	import_map_conf_string(b, v);
	util_buf_puts(b, ";\n");
}

/* A string field of spec: NULL when absent; a warning when it is not a plain string. */
static const char *
import_map_spec_str(struct import_map_ctx *x, struct import_map_entry *e,
    const struct import_yaml_node *spec, const char *field)
{
	const struct import_yaml_node *n = import_map_get(spec, field);
	if (n == NULL)
		return NULL;
	const char *s = import_map_text(n);
	if (s == NULL)
		import_map_warn(x, e, n->line, "spec.%s is not a string without NUL bytes: ignored",
		    field);
	return s != NULL && *s != '\0' ? s : NULL;
}

static void
import_map_not_imported(struct import_map_ctx *x, struct import_map_entry *e, unsigned line,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
import_map_not_imported(struct import_map_ctx *x, struct import_map_entry *e, unsigned line,
    const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *why = util_vprintf(fmt, ap);
	va_end(ap);
	import_map_warn(x, e, line, "not imported: %s", why);
	e->ok = false;
	free(why);
}

/* Headers from a Secret's "headers" key: YAML "Name: value" pairs, as Flux reads them. */
static int
import_map_headers(struct import_map_ctx *x, struct import_map_entry *e,
    const struct import_map_kv *kv, struct util_buf *lines, struct util_buf *names)
{
	struct import_yaml_stream s = {0};
	unsigned line;
	char err[256];
	int rc = -1;
	util_buf_puts(lines, "");
	util_buf_puts(names, "");
	if (import_yaml_parse((const char *)kv->value, kv->len, &s, &line, err, sizeof(err)) < 0) {
		import_map_not_imported(x, e, kv->line, "the Secret's headers are not YAML "
		    "(line %u: %s): Flux cannot read them either, and sends nothing", line, err);
		goto out;
	}
	const struct import_yaml_node *m = s.ndocs > 0 ? s.docs[0].root : NULL;
	if (m == NULL || import_yaml_is_null(m)) {
		rc = 0;
		goto out;
	}
	if (m->type != IMPORT_YAML_MAP || s.ndocs > 1) {
		import_map_not_imported(x, e, kv->line, "the Secret's headers are not a mapping of "
		    "names to values: Flux cannot read them either, and sends nothing");
		goto out;
	}
	for (size_t i = 0; i + 1 < m->n; i += 2) {
		const struct import_yaml_node *k = m->items[i], *v = m->items[i + 1];
		if (k->type != IMPORT_YAML_SCALAR || v->type != IMPORT_YAML_SCALAR) {
			import_map_not_imported(x, e, kv->line, "the Secret's headers are not a mapping "
			    "of names to values: Flux cannot read them either, and sends nothing");
			goto out;
		}
		const char *val = import_yaml_is_null(v) ? "" : v->value;
		size_t vlen = import_yaml_is_null(v) ? 0 : v->len;
		bool token = k->len > 0;
		for (size_t j = 0; j < k->len && token; j++)
			token = strchr("!#$%&'*+-.^_`|~", k->value[j]) != NULL ||
			    (k->value[j] >= '0' && k->value[j] <= '9') ||
			    ((k->value[j] | 0x20) >= 'a' && (k->value[j] | 0x20) <= 'z');
		if (!token || import_map_has_ctl(val, vlen)) {
			struct util_buf shown = {0};
			import_map_clean(&shown, k->value, k->len);
			import_map_warn(x, e, kv->line, "header \"%s\" from the Secret: %s: left out",
			    shown.data, !token ? "not a valid header name"
			    : "its value holds a line break or control character");
			util_buf_free(&shown);
			continue;
		}
		util_buf_append(lines, k->value, k->len);
		util_buf_puts(lines, ": ");
		util_buf_append(lines, val, vlen);
		util_buf_puts(lines, "\n");
		if (names->len > 0)
			util_buf_puts(names, ", ");
		util_buf_append(names, k->value, k->len);
	}
	rc = 0;
out:
	import_yaml_free(&s);
	return rc;
}

/* The parts of a Provider every type shares: timeout, proxy, what is not imported. */
static void
import_map_provider_common(struct import_map_ctx *x, struct import_map_entry *e,
    const struct import_yaml_node *spec, const struct import_map_obj *secret)
{
	const char *timeout = import_map_spec_str(x, e, spec, "timeout");
	const char *proxy = import_map_spec_str(x, e, spec, "proxy");
	long long ns;
	if (timeout != NULL) {
		unsigned line = import_map_get(spec, "timeout")->line;
		if (import_map_duration(timeout, &ns) < 0) {
			import_map_warn(x, e, line, "spec.timeout \"%s\" is not a Go duration: "
			    "not imported (fluxrelay's default, 10 s per attempt, applies)", timeout);
		} else if (ns < IMPORT_MAP_TIMEOUT_MIN_NS) {
			import_map_warn(x, e, line, "spec.timeout \"%s\" is below 1 ms: not imported "
			    "(fluxrelay's default, 10 s per attempt, applies)", timeout);
		} else {
			if (ns > IMPORT_MAP_TIMEOUT_MAX_NS) {
				import_map_warn(x, e, line, "spec.timeout \"%s\" is above 3600 s: "
				    "written as 3600", timeout);
				ns = IMPORT_MAP_TIMEOUT_MAX_NS;
			}
			char *secs = import_map_seconds(ns);
			util_buf_printf(&e->body, "    timeout = %s;\n", secs);
			free(secs);
		}
	}
	if (proxy != NULL)
		import_map_setting_str(&e->body, "proxy", proxy);

	const struct import_yaml_node *n;
	if ((n = import_map_get(spec, "certSecretRef")) != NULL)
		import_map_warn(x, e, n->line, "spec.certSecretRef (TLS certificates) is not "
		    "imported: give the provider a ca_file for a private CA; client certificates "
		    "are not supported");
	if ((n = import_map_get(spec, "proxySecretRef")) != NULL)
		import_map_warn(x, e, n->line, "spec.proxySecretRef (proxy address and credentials) "
		    "is not imported: set the provider's proxy by hand");
	if ((n = import_map_get(spec, "serviceAccountName")) != NULL)
		import_map_warn(x, e, n->line, "spec.serviceAccountName (workload identity) is not "
		    "imported");
	if ((n = import_map_get(spec, "commitStatusExpr")) != NULL)
		import_map_warn(x, e, n->line, "spec.commitStatusExpr is not imported");
	if (secret != NULL) {
		const struct import_map_kv *kv;
		if ((kv = import_map_secret_find(secret, "proxy")) != NULL)
			import_map_warn(x, e, kv->line, "the Secret's proxy (an address that may carry "
			    "credentials) is not imported: set the provider's proxy by hand");
		if (import_map_secret_find(secret, "username") != NULL ||
		    import_map_secret_find(secret, "password") != NULL)
			import_map_warn(x, e, secret->line, "the Secret's username/password (basic "
			    "authentication) are not imported");
	}
}

static void
import_map_provider(struct import_map_ctx *x, struct import_map_entry *e)
{
	const struct import_map_obj *o = e->obj;
	const struct import_yaml_node *spec = import_map_get(o->node, "spec");
	const char *v = o->version;
	e->ok = true;
	if (spec == NULL || spec->type != IMPORT_YAML_MAP) {
		import_map_not_imported(x, e, 0, "no spec");
		return;
	}
	import_map_unknown_fields(x, e, spec, strcmp(v, "v1beta1") == 0
	    ? import_map_provider_fields_v1beta1 : strcmp(v, "v1beta2") == 0
	    ? import_map_provider_fields_v1beta2 : import_map_provider_fields_v1beta3);
	const char *type = import_map_spec_str(x, e, spec, "type");
	if (type == NULL) {
		import_map_not_imported(x, e, 0, "no spec.type");
		return;
	}
	bool slack = strcmp(type, "slack") == 0, rocket = strcmp(type, "rocket") == 0;
	bool generic = strcmp(type, "generic") == 0, hmac = strcmp(type, "generic-hmac") == 0;
	if (!slack && !rocket && !generic && !hmac) {
		import_map_not_imported(x, e, import_map_get(spec, "type")->line,
		    "type \"%s\" is not supported (fluxrelay sends to slack and rocket, and "
		    "forwards to generic and generic-hmac receivers)", type);
		return;
	}
	const struct import_yaml_node *sn = import_map_get(spec, "suspend");
	if (sn != NULL && import_yaml_bool(sn, &e->suspend) < 0) {
		import_map_not_imported(x, e, sn->line, "spec.suspend is not true or false");
		return;
	}

	/* The Secret, and the address Flux would post to. */
	const struct import_yaml_node *ref = import_map_get(spec, "secretRef");
	const char *sname = ref != NULL ? import_map_text(import_map_get(ref, "name")) : NULL;
	const struct import_map_obj *secret = NULL;
	bool missing = false;
	if (ref != NULL && (sname == NULL || *sname == '\0')) {
		import_map_not_imported(x, e, ref->line, "spec.secretRef has no name");
		return;
	}
	if (sname != NULL) {
		secret = import_map_find(x, IMPORT_MAP_SECRET, o->ns, sname);
		missing = secret == NULL;
	}
	const struct import_map_kv *kv_addr = NULL, *kv_token = NULL;
	char *addr = NULL, *token = NULL;
	bool addr_secret = false;
	if (secret != NULL) {
		kv_addr = import_map_secret_find(secret, "address");
		const struct import_map_kv *kv_url = import_map_secret_find(secret, "url");
		if (kv_addr == NULL && kv_url != NULL) {
			kv_addr = kv_url;
			import_map_warn(x, e, kv_url->line, "the Secret's key \"url\" is taken as the "
			    "address: Flux itself reads only \"address\" (rename the key there, or "
			    "Flux sends nothing)");
		} else if (kv_url != NULL) {
			import_map_warn(x, e, kv_url->line, "the Secret's key \"url\" is ignored: "
			    "\"address\" is there too");
		}
		kv_token = import_map_secret_find(secret, "token");
	}
	const char *spec_addr = import_map_spec_str(x, e, spec, "address");
	if (kv_addr != NULL) {
		addr = import_map_trimmed(kv_addr);
		addr_secret = true;
	} else if (spec_addr != NULL) {
		addr = util_strdup(spec_addr);
	}
	if (addr != NULL && !import_map_is_http_url(addr)) {
		import_map_not_imported(x, e, addr_secret ? kv_addr->line : 0,
		    "the address%s does not start with http:// or https://",
		    addr_secret ? " in the Secret" : "");
		goto out;
	}
	if (addr != NULL && (import_map_has_ctl(addr, strlen(addr)) ||
	    (addr_secret && memchr(kv_addr->value, '\0', kv_addr->len) != NULL))) {
		import_map_not_imported(x, e, addr_secret ? kv_addr->line : 0,
		    "the address%s holds a control character", addr_secret ? " in the Secret" : "");
		goto out;
	}
	bool bot = false;
	token = kv_token != NULL ? import_map_trimmed(kv_token) : NULL;
	if (slack) {
		bool api = addr == NULL || import_map_ends_with(addr, IMPORT_MAP_POST_MESSAGE);
		/* Without the Secret, only an address of the Web API says "bot". */
		bot = (token != NULL && *token != '\0' && api) || (missing && addr != NULL && api);
		if (token != NULL && *token != '\0' && !bot)
			import_map_warn(x, e, kv_token->line, "the Secret's token is not used: the "
			    "address is an incoming webhook, which ignores Flux's Authorization header");
	} else if ((rocket || generic) && kv_token != NULL) {
		import_map_warn(x, e, kv_token->line, "the Secret's token is not used: Flux does "
		    "not use it for type %s either", type);
	}
	if (missing) {
		/* What the Secret would have given is an environment placeholder
		 * (the bot's token, the HMAC key, an address spec.address lacks);
		 * with spec.address alone there is none to write, and saying so
		 * would send the user looking for a variable that is not there. */
		struct util_buf nm = {0};
		import_map_clean(&nm, sname, strlen(sname));
		if (bot || hmac || addr == NULL)
			import_map_warn(x, e, ref->line, "Secret %s/%s is not in the input: its values "
			    "are left to environment variables (see the top of the file)", o->ns, nm.data);
		else
			import_map_warn(x, e, ref->line, "Secret %s/%s is not in the input: spec.address "
			    "is used as it is (an address the Secret holds would take its place in "
			    "Flux: set it by hand)", o->ns, nm.data);
		util_buf_free(&nm);
	}

	util_buf_printf(&e->body, "    name = ");
	import_map_conf_string(&e->body, e->cname);
	util_buf_puts(&e->body, ";\n");
	const char *channel = import_map_spec_str(x, e, spec, "channel");
	const char *username = import_map_spec_str(x, e, spec, "username");
	if (bot) {
		e->ptype = IMPORT_MAP_SLACK_BOT;
		if (channel == NULL) {
			import_map_not_imported(x, e, 0, "a Slack bot needs spec.channel (Slack refuses "
			    "a chat.postMessage without one)");
			goto out;
		}
		util_buf_puts(&e->body, "    type = \"slack-bot\";\n");
		if (token != NULL && memchr(kv_token->value, '\0', kv_token->len) != NULL) {
			import_map_not_imported(x, e, kv_token->line, "the Secret's token holds a NUL byte");
			goto out;
		}
		import_map_secret_setting(x, e, "token", secret, "token", sname,
		    (const unsigned char *)(token ? token : ""), token ? strlen(token) : 0);
		/* Written even when it is Slack's own: the config says where Flux posted. */
		if (addr != NULL) {
			size_t n = strlen(addr) - strlen(IMPORT_MAP_POST_MESSAGE);
			char *api = util_strndup(addr, n);
			if (addr_secret)
				util_buf_puts(&e->body, "    # api_url: from the Secret's address\n");
			import_map_setting_str(&e->body, "api_url", api);
			free(api);
		}
	} else if (slack || rocket) {
		e->ptype = IMPORT_MAP_SLACK;
		util_buf_puts(&e->body, "    type = \"slack\";\n");
		if (rocket)
			util_buf_puts(&e->notes, "  # Flux type rocket: sent as type slack (Rocket.Chat "
			    "takes Slack's payloads)\n");
		if (addr == NULL && !missing) {
			import_map_not_imported(x, e, 0, "no address: neither spec.address nor the "
			    "Secret's address is given");
			goto out;
		}
		if (addr_secret || addr == NULL)
			import_map_secret_setting(x, e, "url", secret, kv_addr ? kv_addr->key : "address", sname,
			    (const unsigned char *)(addr ? addr : ""), addr ? strlen(addr) : 0);
		else
			import_map_setting_str(&e->body, "url", addr);
	} else {
		e->ptype = hmac ? IMPORT_MAP_GENERIC_HMAC : IMPORT_MAP_GENERIC;
		util_buf_printf(&e->body, "    type = \"%s\";\n", type);
		if (addr == NULL && !missing) {
			import_map_not_imported(x, e, 0, "no address: neither spec.address nor the "
			    "Secret's address is given");
			goto out;
		}
		if (addr_secret || addr == NULL)
			import_map_secret_setting(x, e, "address", secret, kv_addr ? kv_addr->key : "address", sname,
			    (const unsigned char *)(addr ? addr : ""), addr ? strlen(addr) : 0);
		else
			import_map_setting_str(&e->body, "address", addr);
		if (hmac) {
			if (secret == NULL && !missing) {
				import_map_not_imported(x, e, 0, "generic-hmac needs spec.secretRef with "
				    "the key in \"token\"");
				goto out;
			}
			if (secret != NULL && kv_token == NULL) {
				import_map_not_imported(x, e, secret->line, "the Secret has no \"token\": "
				    "Flux would sign with an empty key");
				goto out;
			}
			if (kv_token != NULL && x->secrets_dir == NULL && kv_token->len > 0 &&
			    (kv_token->value[kv_token->len - 1] == '\n' ||
			    memchr(kv_token->value, '\0', kv_token->len) != NULL))
				import_map_warn(x, e, kv_token->line, "the HMAC key ends in a line break "
				    "or holds a NUL byte, which an environment variable may lose: "
				    "import with --secrets-dir to keep it byte for byte");
			/* Byte for byte: Flux signs with the Secret's bytes as stored. */
			import_map_secret_setting(x, e, "hmac_key", secret, "token", sname,
			    kv_token ? kv_token->value : (const unsigned char *)"",
			    kv_token ? kv_token->len : 0);
		}
		const struct import_map_kv *kv_headers = secret ? import_map_secret_find(secret,
		    "headers") : NULL;
		if (missing)
			import_map_warn(x, e, ref->line, "headers the Secret may hold are unknown: "
			    "add them by hand (headers_file)");
		if (kv_headers != NULL) {
			struct util_buf lines = {0}, names = {0};
			if (import_map_headers(x, e, kv_headers, &lines, &names) < 0) {
				util_buf_free(&lines);
				util_buf_free(&names);
				goto out;
			}
			if (lines.len > 0 && x->secrets_dir != NULL) {
				import_map_secret_setting(x, e, "headers", secret, "headers", sname,
				    (const unsigned char *)lines.data, lines.len);
			} else if (lines.len > 0) {
				import_map_warn(x, e, kv_headers->line, "the Secret's headers (%s) are "
				    "left out: they are written only to a file (import with "
				    "--secrets-dir)", names.data);
			}
			util_buf_free(&lines);
			util_buf_free(&names);
		}
		channel = username = NULL;   /* a forwarder sends the event, not a message */
	}
	if (channel != NULL)
		import_map_setting_str(&e->body, "channel", channel);
	if (username != NULL)
		import_map_setting_str(&e->body, "username", username);
	import_map_provider_common(x, e, spec, secret);
	if (e->suspend)
		util_buf_puts(&e->body, "    suspend = true;\n");
out:
	free(addr);
	if (token != NULL) {
		memset(token, 0, strlen(token));
		free(token);
	}
}

/* ------------------------------------------------------------------------ */
/* Alerts                                                                   */

static bool
import_map_strs(struct import_map_ctx *x, struct import_map_entry *e,
    const struct import_yaml_node *spec, const char *field, const struct import_yaml_node **out)
{
	const struct import_yaml_node *n = import_map_get(spec, field);
	*out = NULL;
	if (n == NULL)
		return true;
	if (n->type != IMPORT_YAML_SEQ) {
		import_map_not_imported(x, e, n->line, "spec.%s is not a list", field);
		return false;
	}
	for (size_t i = 0; i < n->n; i++)
		if (import_map_text(n->items[i]) == NULL) {
			import_map_not_imported(x, e, n->items[i]->line, "spec.%s[%zu] is not a string",
			    field, i);
			return false;
		}
	*out = n;
	return true;
}

/* Compile as rules.c will (PCRE2_UTF); NULL when it compiles, else PCRE2's message (new). */
static char *
import_map_pcre2_problem(const char *re)
{
	int code;
	PCRE2_SIZE off;
	pcre2_code *c = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &code,
	    &off, NULL);
	if (c != NULL) {
		pcre2_code_free(c);
		return NULL;
	}
	PCRE2_UCHAR msg[256];
	if (pcre2_get_error_message(code, msg, sizeof(msg)) < 0)
		snprintf((char *)msg, sizeof(msg), "error %d", code);
	return util_printf("at offset %zu: %s", (size_t)off, (char *)msg);
}

/* A list of regexes: include = true leaves the alert out when one fails. */
static bool
import_map_regexes(struct import_map_ctx *x, struct import_map_entry *e,
    const struct import_yaml_node *list, const char *field, const char *key, bool include)
{
	struct util_buf out = {0}, notes = {0};
	size_t kept = 0;
	for (size_t i = 0; list != NULL && i < list->n; i++) {
		const struct import_yaml_node *n = list->items[i];
		bool changed;
		char *re = import_map_regex(n->value, &changed);
		char *problem = import_map_pcre2_problem(re);
		if (problem != NULL) {
			if (include) {
				import_map_not_imported(x, e, n->line, "spec.%s[%zu] \"%s\" is not a regular "
				    "expression PCRE2 accepts (%s): the alert is left out rather than "
				    "changed (without its include patterns it would match more)", field, i,
				    n->value, problem);
			} else {
				import_map_warn(x, e, n->line, "spec.%s[%zu] \"%s\" is left out: PCRE2 does "
				    "not accept it (%s)", field, i, n->value, problem);
			}
			free(problem);
			free(re);
			if (include)
				goto fail;
			continue;
		}
		if (changed) {
			util_buf_printf(&notes, "  # %s[%zu]: Go's $ matches only at the very end of the "
			    "message: written as \\z\n", key, kept);
		}
		util_buf_puts(&out, kept == 0 ? "" : ", ");
		import_map_conf_string(&out, re);
		kept++;
		free(re);
	}
	if (kept > 0) {
		util_buf_printf(&e->body, "    %s = [ %s ];\n", key, out.data);
		if (notes.len > 0)
			util_buf_puts(&e->notes, notes.data);
	}
	util_buf_free(&out);
	util_buf_free(&notes);
	return true;
fail:
	util_buf_free(&out);
	util_buf_free(&notes);
	return false;
}

/* eventSources -> sources, with the namespace made explicit. */
static bool
import_map_sources(struct import_map_ctx *x, struct import_map_entry *e,
    const struct import_yaml_node *spec)
{
	static const char *const known[] = { "kind", "name", "namespace", "matchLabels",
		"apiVersion", NULL };
	const struct import_yaml_node *l = import_map_get(spec, "eventSources");
	struct util_buf b = {0};
	if (l == NULL || l->type != IMPORT_YAML_SEQ || l->n == 0) {
		import_map_not_imported(x, e, l ? l->line : 0, "no eventSources: the alert never "
		    "matches an event");
		return false;
	}
	util_buf_puts(&b, "    sources = (\n");
	for (size_t i = 0; i < l->n; i++) {
		const struct import_yaml_node *s = l->items[i];
		if (s->type != IMPORT_YAML_MAP) {
			import_map_not_imported(x, e, s->line, "eventSources[%zu] is not a mapping", i);
			goto fail;
		}
		for (size_t k = 0; k + 1 < s->n; k += 2) {
			const char *key = import_map_text(s->items[k]);
			if (key != NULL && !import_map_in(known, key))
				import_map_warn(x, e, s->items[k]->line, "eventSources[%zu].%s is not a "
				    "field of an event source (Kubernetes drops it): not imported", i, key);
		}
		const char *kind = import_map_text(import_map_get(s, "kind"));
		const char *name = import_map_text(import_map_get(s, "name"));
		const char *ns = import_map_text(import_map_get(s, "namespace"));
		if (kind == NULL || *kind == '\0' || name == NULL || *name == '\0') {
			import_map_not_imported(x, e, s->line, "eventSources[%zu] needs a kind and a "
			    "name", i);
			goto fail;
		}
		bool defaulted = ns == NULL || *ns == '\0';
		if (defaulted)
			ns = e->obj->ns;
		if (strcmp(ns, "*") == 0)
			import_map_warn(x, e, s->line, "eventSources[%zu].namespace \"*\" is not a "
			    "wildcard in Flux (it matches a namespace named \"*\", so never): kept so; "
			    "write namespace = \"*\" unescaped to widen it", i);
		char *k = import_map_glob_exact(kind);
		char *n = strcmp(name, "*") == 0 ? util_strdup("*") : import_map_glob_exact(name);
		char *nsx = import_map_glob_exact(ns);
		util_buf_puts(&b, "      { kind = ");
		import_map_conf_string(&b, k);
		util_buf_puts(&b, "; name = ");
		import_map_conf_string(&b, n);
		util_buf_puts(&b, "; namespace = ");
		import_map_conf_string(&b, nsx);
		util_buf_printf(&b, "; }%s", i + 1 < l->n ? "," : "");
		free(k);
		free(n);
		free(nsx);
		const struct import_yaml_node *ml = import_map_get(s, "matchLabels");
		if (defaulted || ml != NULL)
			util_buf_puts(&b, "   #");
		if (defaulted)
			util_buf_puts(&b, " no namespace in Flux: the Alert's own, matched exactly "
			    "(namespace = \"*\" for every namespace)");
		if (ml != NULL) {
			import_map_warn(x, e, ml->line, "eventSources[%zu].matchLabels cannot be "
			    "evaluated without the Kubernetes API: not imported, so this source matches "
			    "every %s it names whatever its labels", i, kind);
			util_buf_printf(&b, "%s matchLabels not imported: labels are not checked",
			    defaulted ? ";" : "");
		}
		util_buf_puts(&b, "\n");
	}
	util_buf_puts(&b, "    );\n");
	util_buf_puts(&e->body, b.data);
	util_buf_free(&b);
	return true;
fail:
	util_buf_free(&b);
	return false;
}

static bool
import_map_metadata(struct import_map_ctx *x, struct import_map_entry *e,
    const struct import_yaml_node *spec, bool summary)
{
	const struct import_yaml_node *m = import_map_get(spec, "eventMetadata");
	struct util_buf b = {0};
	size_t kept = 0;
	if (m == NULL)
		return true;
	if (m->type != IMPORT_YAML_MAP) {
		import_map_not_imported(x, e, m->line, "spec.eventMetadata is not a mapping");
		return false;
	}
	for (size_t i = 0; i + 1 < m->n; i += 2) {
		const char *k = import_map_text(m->items[i]);
		const char *v = import_map_text(m->items[i + 1]);
		if (k == NULL || v == NULL) {
			if (k != NULL)
				import_map_warn(x, e, m->items[i]->line, "eventMetadata.%s is not a string "
				    "without NUL bytes: left out", k);
			else
				import_map_warn(x, e, m->items[i]->line, "an eventMetadata key is not a "
				    "string: left out");
			continue;
		}
		if (summary && strcmp(k, "summary") == 0) {
			import_map_warn(x, e, m->items[i]->line, "eventMetadata.summary is left out: "
			    "spec.summary replaces it, in Flux too");
			continue;
		}
		if (!import_map_setting_name_ok(k)) {
			import_map_warn(x, e, m->items[i]->line, "eventMetadata key \"%s\" cannot be a "
			    "libconfig setting name (a letter, then letters, digits, '-' or '_'): "
			    "left out", k);
			continue;
		}
		util_buf_printf(&b, "%s%s = ", kept ? " " : "", k);
		import_map_conf_string(&b, v);
		util_buf_puts(&b, ";");
		kept++;
	}
	if (kept > 0)
		util_buf_printf(&e->body, "    metadata = { %s };\n", b.data);
	util_buf_free(&b);
	return true;
}

static void
import_map_alert(struct import_map_ctx *x, struct import_map_entry *e)
{
	const struct import_map_obj *o = e->obj;
	const struct import_yaml_node *spec = import_map_get(o->node, "spec");
	const struct import_yaml_node *incl = NULL, *excl = NULL, *n;
	e->ok = true;
	if (spec == NULL || spec->type != IMPORT_YAML_MAP) {
		import_map_not_imported(x, e, 0, "no spec");
		return;
	}
	import_map_unknown_fields(x, e, spec, strcmp(o->version, "v1beta1") == 0
	    ? import_map_alert_fields_v1beta1 : import_map_alert_fields_v1beta2);
	bool v1beta1 = strcmp(o->version, "v1beta1") == 0;

	const char *pname = import_map_text(import_map_get(import_map_get(spec, "providerRef"),
	    "name"));
	if (pname == NULL || *pname == '\0') {
		import_map_not_imported(x, e, 0, "no spec.providerRef.name");
		return;
	}
	struct import_map_entry *p = NULL;
	for (size_t i = 0; i < x->nprovs && p == NULL; i++)
		if (strcmp(x->provs[i].obj->ns, o->ns) == 0 && strcmp(x->provs[i].obj->name, pname) == 0)
			p = &x->provs[i];
	if (p == NULL) {
		import_map_not_imported(x, e, 0, "its Provider %s/%s is not in the input", o->ns, pname);
		return;
	}
	if (!p->ok) {
		import_map_not_imported(x, e, 0, "its Provider %s/%s was not imported", o->ns, pname);
		return;
	}
	const char *sev = "info";
	if ((n = import_map_get(spec, "eventSeverity")) != NULL) {
		sev = import_map_text(n);
		if (sev == NULL || (strcmp(sev, "info") != 0 && strcmp(sev, "error") != 0)) {
			import_map_not_imported(x, e, n->line, "spec.eventSeverity must be info or error");
			return;
		}
	}
	bool suspend = false;
	if ((n = import_map_get(spec, "suspend")) != NULL && import_yaml_bool(n, &suspend) < 0) {
		import_map_not_imported(x, e, n->line, "spec.suspend is not true or false");
		return;
	}
	if (!import_map_strs(x, e, spec, "exclusionList", &excl))
		return;
	if (!v1beta1 && !import_map_strs(x, e, spec, "inclusionList", &incl))
		return;

	util_buf_puts(&e->body, "    name = ");
	import_map_conf_string(&e->body, e->cname);
	util_buf_puts(&e->body, ";\n    providers = [ ");
	import_map_conf_string(&e->body, p->cname);
	util_buf_puts(&e->body, " ];\n");
	util_buf_printf(&e->body, "    severity = \"%s\";\n", sev);
	if (import_map_get(spec, "eventSeverity") == NULL)
		util_buf_puts(&e->notes, "  # no eventSeverity in Flux: info, which passes every event\n");
	if (!import_map_sources(x, e, spec))
		return;
	if (!import_map_regexes(x, e, incl, "inclusionList", "include", true))
		return;
	import_map_regexes(x, e, excl, "exclusionList", "exclude", false);
	const char *summary = import_map_spec_str(x, e, spec, "summary");
	if (!v1beta1 && !import_map_metadata(x, e, spec, summary != NULL))
		return;
	if (summary != NULL)
		import_map_setting_str(&e->body, "summary", summary);
	if (p->ptype == IMPORT_MAP_GENERIC || p->ptype == IMPORT_MAP_GENERIC_HMAC)
		util_buf_puts(&e->body, "    commit_status_updates = true;   # Flux forwards "
		    "commit-status updates to generic providers\n");
	if (suspend)
		util_buf_puts(&e->body, "    suspend = true;\n");
}

/* ------------------------------------------------------------------------ */
/* Output                                                                   */

static void
import_map_origin(struct import_map_ctx *x, struct util_buf *b, const struct import_map_obj *o)
{
	util_buf_puts(b, "  # ");
	import_map_obj_label(b, o);
	util_buf_puts(b, ": ");
	import_map_clean(b, x->in[o->input].name, strlen(x->in[o->input].name));
	util_buf_printf(b, ":%u (document %zu", o->line, o->doc);
	if (o->item >= 0)
		util_buf_printf(b, ", items[%ld]", o->item);
	util_buf_puts(b, ")\n");
}

static void
import_map_section(struct import_map_ctx *x, struct util_buf *b, const char *what,
    struct import_map_entry *es, size_t n, const struct util_buf *skipped)
{
	size_t left = 0;
	for (size_t i = 0; i < n; i++)
		left += es[i].ok;
	util_buf_printf(b, "%s = (\n", what);
	for (size_t i = 0, done = 0; i < n; i++) {
		struct import_map_entry *e = &es[i];
		if (i > 0)
			util_buf_puts(b, "\n");
		import_map_origin(x, b, e->obj);
		if (e->notes.len > 0)
			util_buf_puts(b, e->notes.data);
		if (!e->ok)
			continue;
		util_buf_puts(b, "  {\n");
		util_buf_puts(b, e->body.data);
		done++;
		util_buf_printf(b, "  }%s\n", done < left ? "," : "");
	}
	if (skipped->len > 0)
		util_buf_puts(b, skipped->data);
	util_buf_puts(b, ");\n");
}

static char *
import_map_text_out(struct import_map_ctx *x)
{
	struct util_buf b = {0};
	util_buf_puts(&b, "# fluxrelay configuration written by `fluxrelay import` from these Flux "
	    "manifests:\n");
	for (size_t i = 0; i < x->nin; i++) {
		util_buf_puts(&b, "#   ");
		import_map_clean(&b, x->in[i].name, strlen(x->in[i].name));
		util_buf_puts(&b, "\n");
	}
	util_buf_puts(&b, "# Each provider and alert names the manifest it came from; what could not "
	    "be\n# carried over is said beside it (the import printed the same warnings).\n"
	    "# Listen address, authentication, queue: fluxrelay's defaults (fluxrelay.conf(5)).\n"
	    "# Check the file with: fluxrelay --check-config -c FILE\n");
	if (x->secrets_dir != NULL && x->r->nsecrets > 0) {
		util_buf_puts(&b, "#\n# Secrets are not in this file: each is in a file of its own "
		    "(mode 0600) in\n#   ");
		import_map_clean(&b, x->secrets_dir, strlen(x->secrets_dir));
		util_buf_puts(&b, "\n# and referenced by the *_file settings.\n");
	}
	if (x->nenvs > 0) {
		util_buf_puts(&b, "#\n# Secrets are not in this file: set these environment variables "
		    "for fluxrelay\n# before it starts");
		util_buf_puts(&b, x->secrets_dir == NULL ? " (or import with --secrets-dir DIR to "
		    "have them written to files):\n" : ":\n");
		for (size_t i = 0; i < x->nenvs; i++) {
			util_buf_printf(&b, "#   %s: %s\n", x->envs[i].var, x->envs[i].what);
			if (x->envs[i].hint != NULL)
				util_buf_printf(&b, "#     %s\n", x->envs[i].hint);
		}
	}
	util_buf_puts(&b, "\n");
	import_map_section(x, &b, "providers", x->provs, x->nprovs, &x->skipped_providers);
	util_buf_puts(&b, "\n");
	import_map_section(x, &b, "alerts", x->alerts, x->nalerts, &x->skipped_alerts);
	return b.data;
}

static int
import_map_msg_cmp(const void *pa, const void *pb)
{
	const struct import_map_msg *a = pa, *b = pb;
	if (a->input != b->input)
		return a->input < b->input ? -1 : 1;
	if (a->line != b->line)
		return a->line < b->line ? -1 : 1;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static char *
import_map_messages(struct import_map_ctx *x)
{
	struct util_buf b = {0};
	util_buf_puts(&b, "");
	if (x->nmsgs > 0)
		qsort(x->msgs, x->nmsgs, sizeof(*x->msgs), import_map_msg_cmp);
	for (size_t i = 0; i < x->nmsgs; i++) {
		util_buf_puts(&b, x->msgs[i].text);
		util_buf_puts(&b, "\n");
	}
	return b.data;
}

/* A provider left out after all: forget the secret files and variables it added. */
static void
import_map_rollback(struct import_map_ctx *x, size_t nsecrets, size_t nenvs)
{
	struct import_map_result *r = x->r;
	while (r->nsecrets > nsecrets) {
		struct import_map_secret *s = &r->secrets[--r->nsecrets];
		memset(s->data, 0, s->len);
		free(s->data);
		free(s->file);
	}
	while (x->nenvs > nenvs) {
		struct import_map_env *v = &x->envs[--x->nenvs];
		free(v->var);
		free(v->what);
		free(v->hint);
	}
}

static void
import_map_entries(struct import_map_ctx *x, enum import_map_kind k,
    struct import_map_entry **out, size_t *n)
{
	*out = util_calloc(x->nobjs, sizeof(**out));
	*n = 0;
	for (size_t i = 0; i < x->nobjs; i++)
		if (x->objs[i]->kind == k && !x->objs[i]->superseded)
			(*out)[(*n)++].obj = x->objs[i];
}

static void
import_map_entries_free(struct import_map_entry *es, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(es[i].cname);
		util_buf_free(&es[i].notes);
		util_buf_free(&es[i].body);
	}
	free(es);
}

int
import_map_convert(const struct import_map_input *in, size_t nin, const char *secrets_dir,
    struct import_map_result *r)
{
	struct import_map_ctx x = { .in = in, .nin = nin, .secrets_dir = secrets_dir, .r = r };
	int rc = IMPORT_MAP_EXIT_DATAERR;
	bool bad = false;
	memset(r, 0, sizeof(*r));
	x.streams = util_calloc(nin, sizeof(*x.streams));
	for (size_t i = 0; i < nin; i++) {
		unsigned line;
		char err[512];
		if (import_yaml_parse(in[i].data, in[i].len, &x.streams[i], &line, err,
		    sizeof(err)) < 0) {
			struct util_buf b = {0};
			import_map_clean(&b, in[i].name, strlen(in[i].name));
			if (line > 0)
				util_buf_printf(&b, ":%u", line);
			util_buf_puts(&b, ": ");
			import_map_clean(&b, err, strlen(err));
			import_map_msg_add(&x, i, line, b.data);
			bad = true;
		}
	}
	if (bad)
		goto out;
	for (size_t i = 0; i < nin; i++)
		import_map_collect(&x, i);
	import_map_dedup(&x);
	import_map_entries(&x, IMPORT_MAP_PROVIDER, &x.provs, &x.nprovs);
	import_map_entries(&x, IMPORT_MAP_ALERT, &x.alerts, &x.nalerts);
	import_map_names(&x, x.provs, x.nprovs);
	import_map_names(&x, x.alerts, x.nalerts);
	for (size_t i = 0; i < x.nprovs; i++) {
		size_t nsecrets = r->nsecrets, nenvs = x.nenvs;
		import_map_provider(&x, &x.provs[i]);
		if (!x.provs[i].ok)
			import_map_rollback(&x, nsecrets, nenvs);
	}
	for (size_t i = 0; i < x.nalerts; i++)
		import_map_alert(&x, &x.alerts[i]);
	for (size_t i = 0; i < x.nprovs; i++)
		r->nproviders += x.provs[i].ok;
	for (size_t i = 0; i < x.nalerts; i++)
		r->nalerts += x.alerts[i].ok;
	if (r->nalerts == 0) {
		rc = IMPORT_MAP_EXIT_NOTHING;
		goto out;
	}
	r->config = import_map_text_out(&x);
	rc = 0;
out:
	r->messages = import_map_messages(&x);
	if (rc != 0) {
		for (size_t i = 0; i < r->nsecrets; i++) {
			memset(r->secrets[i].data, 0, r->secrets[i].len);
			free(r->secrets[i].data);
			free(r->secrets[i].file);
		}
		free(r->secrets);
		r->secrets = NULL;
		r->nsecrets = 0;
	}
	for (size_t i = 0; i < x.nmsgs; i++)
		free(x.msgs[i].text);
	free(x.msgs);
	for (size_t i = 0; i < x.nenvs; i++) {
		free(x.envs[i].var);
		free(x.envs[i].what);
		free(x.envs[i].hint);
	}
	free(x.envs);
	util_buf_free(&x.skipped_alerts);
	util_buf_free(&x.skipped_providers);
	import_map_entries_free(x.provs, x.nprovs);
	import_map_entries_free(x.alerts, x.nalerts);
	for (size_t i = 0; i < x.nobjs; i++) {
		struct import_map_obj *o = x.objs[i];
		for (size_t j = 0; j < o->ndata; j++) {
			memset(o->data[j].value, 0, o->data[j].len);
			free(o->data[j].value);
			free(o->data[j].key);
		}
		free(o->data);
		free(o->ns);
		free(o->name);
		free(o);
	}
	free(x.objs);
	for (size_t i = 0; i < nin; i++)
		import_yaml_free(&x.streams[i]);
	free(x.streams);
	return rc;
}

void
import_map_result_free(struct import_map_result *r)
{
	if (r == NULL)
		return;
	free(r->config);
	free(r->messages);
	for (size_t i = 0; i < r->nsecrets; i++) {
		memset(r->secrets[i].data, 0, r->secrets[i].len);
		free(r->secrets[i].data);
		free(r->secrets[i].file);
	}
	free(r->secrets);
	memset(r, 0, sizeof(*r));
}
