/*
 * import_yaml: a YAML stream (libyaml) -> an owned tree per document, for
 * `fluxrelay import` (SPEC §14).
 *
 * The tree is read the way Kubernetes reads manifests (YAML 1.1, as
 * sigs.k8s.io/yaml does): aliases are resolved (an alias shares its anchor's
 * node; an anchor is defined once its node is complete, so no cycle can be
 * built), merge keys ("<<") are applied, a key given twice in one mapping is
 * an error. Every node keeps the line it starts on. Expansion through aliases
 * is bounded (IMPORT_YAML_MAX_ALIAS_NODES), as is nesting, so a small input
 * cannot make a huge tree ("billion laughs").
 *
 * Pure: no I/O, no logging; callable from any thread.
 */
#ifndef FLUXRELAY_IMPORT_YAML_H
#define FLUXRELAY_IMPORT_YAML_H

#include <stdbool.h>
#include <stddef.h>

/* Nodes an input may reach through aliases, summed over the stream. */
#define IMPORT_YAML_MAX_ALIAS_NODES 100000
/* Nesting depth of collections. */
#define IMPORT_YAML_MAX_DEPTH 256

enum import_yaml_type {
	IMPORT_YAML_SCALAR,
	IMPORT_YAML_SEQ,
	IMPORT_YAML_MAP,
};

struct import_yaml_node {
	enum import_yaml_type type;
	unsigned line;              /* 1-based line where the node starts */
	char *tag;                  /* NULL when the node has no explicit tag */
	/* scalar: value[len], NUL-terminated (it may also hold NULs) */
	char *value;
	size_t len;
	bool plain;                 /* an unquoted scalar: null/bool resolution applies */
	/* sequence: items[n]; mapping: items[2n] alternating key, value */
	struct import_yaml_node **items;
	size_t n;
	size_t weight;              /* nodes in the subtree, aliases expanded (saturating) */
};

struct import_yaml_doc {
	struct import_yaml_node *root;   /* NULL for an empty document */
	unsigned line;                   /* 1-based line where the document starts */
	size_t index;                    /* 1-based position in the stream */
};

struct import_yaml_stream {
	struct import_yaml_doc *docs;
	size_t ndocs;
	/* Every node, for freeing (aliases share nodes). */
	struct import_yaml_node **nodes;
	size_t nnodes, capnodes;
};

/*
 * Parse data[len] into *s (zeroed by the caller; free with import_yaml_free
 * whatever the result). Returns 0, or -1 with *line (1-based; 0 when unknown)
 * and err set to the problem ("did not find expected key (while parsing a
 * block mapping at line 3)", "duplicate key \"name\" (first at line 4)").
 */
int import_yaml_parse(const char *data, size_t len, struct import_yaml_stream *s,
    unsigned *line, char *err, size_t errlen);

void import_yaml_free(struct import_yaml_stream *s);

/* A plain scalar Kubernetes reads as null: "", "~", "null", "Null", "NULL". */
bool import_yaml_is_null(const struct import_yaml_node *n);

/* The value of a mapping's key, or NULL (also when map is not a mapping). */
const struct import_yaml_node *import_yaml_get(const struct import_yaml_node *map,
    const char *key);

/*
 * The text of a scalar that is not null, else NULL (absent, null, or a
 * collection). Numbers and booleans are returned as written.
 */
const char *import_yaml_str(const struct import_yaml_node *n);

/*
 * A boolean as YAML 1.1 reads it (true/false, yes/no, on/off, y/n, in
 * lower, Title or UPPER case; unquoted only). 1 with *out, 0 when n is NULL
 * or null, -1 when it is something else.
 */
int import_yaml_bool(const struct import_yaml_node *n, bool *out);

#endif
