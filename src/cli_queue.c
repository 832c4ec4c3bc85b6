/*
 * cli_queue: `fluxrelay queue list|retry|purge` (SPEC §2), the operator's view of
 * the queue. Opens its own SQLite connection with the busy timeout, so it
 * works while the daemon runs. A state directory without queue.db is treated
 * as an empty queue and nothing is created: `list` prints an empty list,
 * `retry`/`purge --all` change nothing. Rows never hold webhook URLs or
 * tokens, so nothing printed here is secret. Main thread only.
 *
 * `list` streams: rows are read a page at a time (each page its own short
 * read transaction, so the daemon's WAL checkpoints are never held back) and
 * printed as they come, so memory does not grow with the queue
 * (bench/README.md, "Faults"). The table reads the rows twice: once for the
 * column widths, once to print.
 *
 * Exit status: 0 done; 1 runtime failure, or some ID was not a dead letter
 * (the others are still processed); 2 usage error.
 */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "event.h"
#include "queue.h"
#include "util.h"

#define CLI_QUEUE_EXIT_OK 0
#define CLI_QUEUE_EXIT_FAIL 1
#define CLI_QUEUE_EXIT_USAGE 2
/* Rows read per page by `list`. */
#define CLI_QUEUE_PAGE 500

static const char cli_queue_usage_text[] =
	"usage: fluxrelay queue [-c FILE] [-s DIR] list [--dead] [--json]\n"
	"       fluxrelay queue [-c FILE] [-s DIR] retry ID... | --all\n"
	"       fluxrelay queue [-c FILE] [-s DIR] purge ID... | --all\n";

/* Print "fluxrelay: queue: <message>" and the usage on stderr; returns 2. */
static int cli_queue_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
cli_queue_usage(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("fluxrelay: queue: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fputs(cli_queue_usage_text, stderr);
	return CLI_QUEUE_EXIT_USAGE;
}

/* 1 when STATE_DIR/queue.db exists, 0 when not, -1 (message printed) on error. */
static int
cli_queue_db_exists(const char *state_dir)
{
	char *path = util_printf("%s/queue.db", state_dir);
	struct stat st;
	int ret = 1;
	if (stat(path, &st) < 0) {
		if (errno == ENOENT || errno == ENOTDIR) {
			ret = 0;
		} else {
			fprintf(stderr, "fluxrelay: queue: cannot access %s: %s\n", path,
			    strerror(errno));
			ret = -1;
		}
	}
	free(path);
	return ret;
}

static struct queue *
cli_queue_open(const struct conf *c)
{
	char err[512];
	struct queue *q = queue_open(c->state_dir, c->queue.sync_full, err, sizeof(err));
	if (q == NULL)
		fprintf(stderr, "fluxrelay: queue: %s\n", err);
	return q;
}

/* Flush stdout; a failed write (full disk, closed pipe) is a runtime failure. */
static int
cli_queue_flush(int rc)
{
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "fluxrelay: queue: cannot write output: %s\n", strerror(errno));
		return CLI_QUEUE_EXIT_FAIL;
	}
	return rc;
}

/* ------------------------------------------------------------------ list */

/* What `list` shows about the event of a row, parsed from the stored JSON
 * by the daemon's own parser (a body it took, \u0000 and all, parses). */
struct cli_queue_event {
	struct event *ev;         /* NULL when the stored body does not parse */
	const char *kind, *namespace, *name, *reason, *message, *severity;
};

static void
cli_queue_event_parse(const struct queue_row *row, struct cli_queue_event *e)
{
	char err[256], field[64];
	memset(e, 0, sizeof(*e));
	e->ev = event_parse(row->event, row->event_len, err, sizeof(err), field, sizeof(field));
	if (e->ev == NULL)
		return;
	e->kind = e->ev->kind;
	e->namespace = e->ev->namespace;
	e->name = e->ev->name;
	e->reason = e->ev->reason;
	e->message = e->ev->message;
	e->severity = e->ev->severity_text ? e->ev->severity_text :
	    event_severity_name(e->ev->severity);
}

/* "Kind/namespace/name", or "Kind/name" without a namespace. Caller frees. */
static char *
cli_queue_object(const struct cli_queue_event *e)
{
	if (e->kind == NULL && e->name == NULL)
		return util_strdup("?");
	if (e->namespace != NULL && *e->namespace)
		return util_printf("%s/%s/%s", e->kind ? e->kind : "?", e->namespace,
		    e->name ? e->name : "?");
	return util_printf("%s/%s", e->kind ? e->kind : "?", e->name ? e->name : "?");
}

/* A compact duration: 42s, 3m12s, 2h5m, 3d4h. Caller frees. */
static char *
cli_queue_duration(double seconds)
{
	long s = seconds < 0 ? 0 : (long)seconds;
	if (s < 60)
		return util_printf("%lds", s);
	if (s < 3600)
		return util_printf("%ldm%lds", s / 60, s % 60);
	if (s < 86400)
		return util_printf("%ldh%ldm", s / 3600, (s % 3600) / 60);
	return util_printf("%ldd%ldh", s / 86400, (s % 86400) / 3600);
}

/* RFC 3339 UTC with second precision. */
static void
cli_queue_rfc3339(double t, char out[32])
{
	time_t secs = (time_t)t;
	struct tm tm;
	if (gmtime_r(&secs, &tm) == NULL || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, 32, "1970-01-01T00:00:00Z");
}

/* A table cell: a copy with control characters (newlines in errors) turned into spaces. */
static char *
cli_queue_cell(const char *s)
{
	char *p = util_strdup(s && *s ? s : "-");
	for (char *c = p; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = ' ';
	return p;
}

/* Display width of UTF-8 text, counted in code points. */
static size_t
cli_queue_width(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	return n;
}

enum {
	CLI_QUEUE_COL_ID, CLI_QUEUE_COL_EVENT, CLI_QUEUE_COL_OBJECT, CLI_QUEUE_COL_PROVIDER, CLI_QUEUE_COL_CHANNEL,
	CLI_QUEUE_COL_ALERTS, CLI_QUEUE_COL_ATTEMPTS, CLI_QUEUE_COL_AGE, CLI_QUEUE_COL_NEXT, CLI_QUEUE_COL_ERROR, CLI_QUEUE_NCOLS
};

static const char *const cli_queue_headers[CLI_QUEUE_NCOLS] = {
	"ID", "EVENT", "OBJECT", "PROVIDER", "CHANNEL", "ALERTS", "ATTEMPTS", "AGE",
	"NEXT ATTEMPT", "LAST ERROR",
};

/* The cells of one row (CLI_QUEUE_NCOLS new strings). */
static void
cli_queue_row_cells(const struct queue_row *r, double now, char **row)
{
	struct cli_queue_event e;
	cli_queue_event_parse(r, &e);
	char *obj = cli_queue_object(&e);
	row[CLI_QUEUE_COL_ID] = util_printf("%" PRId64, r->id);
	row[CLI_QUEUE_COL_EVENT] = cli_queue_cell(r->event_id);
	row[CLI_QUEUE_COL_OBJECT] = cli_queue_cell(obj);
	row[CLI_QUEUE_COL_PROVIDER] = cli_queue_cell(r->provider);
	row[CLI_QUEUE_COL_CHANNEL] = cli_queue_cell(r->channel);
	row[CLI_QUEUE_COL_ALERTS] = cli_queue_cell(r->alerts);
	row[CLI_QUEUE_COL_ATTEMPTS] = util_printf("%d", r->attempts);
	row[CLI_QUEUE_COL_AGE] = cli_queue_duration(now - r->created_at);
	if (r->next_attempt_at <= now) {
		row[CLI_QUEUE_COL_NEXT] = util_strdup("now");
	} else {
		char *d = cli_queue_duration(r->next_attempt_at - now + 0.999);
		row[CLI_QUEUE_COL_NEXT] = util_printf("in %s", d);
		free(d);
	}
	row[CLI_QUEUE_COL_ERROR] = cli_queue_cell(r->last_error);
	free(obj);
	event_free(e.ev);
}

static void
cli_queue_cells_free(char **row)
{
	for (int c = 0; c < CLI_QUEUE_NCOLS; c++) {
		free(row[c]);
		row[c] = NULL;
	}
}

/* Print one table line; dead letters have no NEXT ATTEMPT column. */
static void
cli_queue_print_line(char *const *row, const size_t *width, enum queue_state state)
{
	for (int c = 0; c < CLI_QUEUE_NCOLS; c++) {
		if (c == CLI_QUEUE_COL_NEXT && state == QUEUE_DEAD)
			continue;
		const char *s = row[c];
		if (c == CLI_QUEUE_COL_ERROR) {
			fputs(s, stdout);
			break;
		}
		bool right = c == CLI_QUEUE_COL_ID || c == CLI_QUEUE_COL_ATTEMPTS;
		size_t w = cli_queue_width(s);
		size_t pad = width[c] > w ? width[c] - w : 0;
		if (right)
			printf("%*s%s  ", (int)pad, "", s);
		else
			printf("%s%*s  ", s, (int)pad, "");
	}
	putchar('\n');
}

/* One row of a listing, from cli_queue_each. 0 to go on, -1 to stop. */
typedef int (*cli_queue_row_fn)(const struct queue_row *r, void *arg);

/* Call fn for every row in a state, id order, a page at a time. 0 / -1 (printed). */
static int
cli_queue_each(struct queue *q, enum queue_state state, cli_queue_row_fn fn, void *arg)
{
	int64_t after = 0;
	for (;;) {
		struct queue_row *rows = NULL;
		size_t n = 0;
		if (queue_list_page(q, state, after, CLI_QUEUE_PAGE, &rows, &n) < 0) {
			fprintf(stderr, "fluxrelay: queue: list: %s\n", queue_errmsg(q));
			return -1;
		}
		int rc = 0;
		for (size_t i = 0; i < n && rc == 0; i++)
			rc = fn(&rows[i], arg);
		if (n > 0)
			after = rows[n - 1].id;
		queue_rows_free(rows, n);
		if (rc != 0)
			return -1;
		if (n < CLI_QUEUE_PAGE)
			return 0;
	}
}

struct cli_queue_table {
	size_t width[CLI_QUEUE_NCOLS];
	size_t rows;
	double now;
	enum queue_state state;
};

static int
cli_queue_measure_row(const struct queue_row *r, void *arg)
{
	struct cli_queue_table *t = arg;
	char *row[CLI_QUEUE_NCOLS];
	cli_queue_row_cells(r, t->now, row);
	for (int c = 0; c < CLI_QUEUE_NCOLS; c++) {
		size_t w = cli_queue_width(row[c]);
		if (w > t->width[c])
			t->width[c] = w;
	}
	cli_queue_cells_free(row);
	t->rows++;
	return 0;
}

static int
cli_queue_print_row(const struct queue_row *r, void *arg)
{
	struct cli_queue_table *t = arg;
	char *row[CLI_QUEUE_NCOLS];
	cli_queue_row_cells(r, t->now, row);
	cli_queue_print_line(row, t->width, t->state);
	cli_queue_cells_free(row);
	return ferror(stdout) ? -1 : 0;
}

/* Print the rows as an aligned table (q NULL: no database, no rows). 0 / -1. */
static int
cli_queue_print_table(struct queue *q, enum queue_state state)
{
	struct cli_queue_table t = { .now = util_now(), .state = state };
	for (int c = 0; c < CLI_QUEUE_NCOLS; c++)
		t.width[c] = cli_queue_width(cli_queue_headers[c]);
	if (q != NULL && cli_queue_each(q, state, cli_queue_measure_row, &t) < 0)
		return -1;
	if (t.rows == 0) {
		puts(state == QUEUE_DEAD ? "no dead letters" : "no pending deliveries");
		return 0;
	}
	cli_queue_print_line((char *const *)cli_queue_headers, t.width, state);
	return cli_queue_each(q, state, cli_queue_print_row, &t);
}

/* A JSON string, null for NULL; text that is not UTF-8 gets '?' for each high byte. */
static json_t *
cli_queue_jstr(const char *s)
{
	if (s == NULL)
		return json_null();
	json_t *j = json_string(s);
	if (j != NULL)
		return j;
	char *copy = util_strdup(s);
	for (char *c = copy; *c; c++)
		if ((unsigned char)*c >= 0x80)
			*c = '?';
	j = json_string(copy);
	free(copy);
	return j ? j : json_string("");
}

/* The JSON object of one row (see `list --json` in fluxrelay(8)); new reference. */
static json_t *
cli_queue_row_json(const struct queue_row *r)
{
	struct cli_queue_event e;
	cli_queue_event_parse(r, &e);
	json_t *o = json_object();
	json_object_set_new(o, "id", json_integer(r->id));
	json_object_set_new(o, "event_id", cli_queue_jstr(r->event_id));
	json_object_set_new(o, "state", json_string(r->state == QUEUE_DEAD ? "dead" : "pending"));
	json_object_set_new(o, "provider", cli_queue_jstr(r->provider));
	json_object_set_new(o, "channel",
	    cli_queue_jstr(r->channel && *r->channel ? r->channel : NULL));
	/* The sending client (auth.clients), null when the event came without one. */
	json_object_set_new(o, "cluster",
	    cli_queue_jstr(r->cluster && *r->cluster ? r->cluster : NULL));
	json_t *alerts = json_array();
	const char *a = r->alerts ? r->alerts : "";
	while (*a) {
		const char *comma = strchr(a, ',');
		size_t len = comma ? (size_t)(comma - a) : strlen(a);
		char *name = util_strndup(a, len);
		if (len > 0)
			json_array_append_new(alerts, cli_queue_jstr(name));
		free(name);
		a += len + (comma ? 1 : 0);
	}
	json_object_set_new(o, "alerts", alerts);
	json_object_set_new(o, "attempts", json_integer(r->attempts));
	char ts[32];
	cli_queue_rfc3339(r->created_at, ts);
	json_object_set_new(o, "created_at", json_string(ts));
	if (r->state == QUEUE_PENDING) {
		/* next_attempt_at 0 means "due since acceptance". */
		cli_queue_rfc3339(r->next_attempt_at > r->created_at ?
		    r->next_attempt_at : r->created_at, ts);
		json_object_set_new(o, "next_attempt_at", json_string(ts));
	} else {
		json_object_set_new(o, "next_attempt_at", json_null());
	}
	json_object_set_new(o, "last_error", cli_queue_jstr(r->last_error));
	json_t *obj = json_object();
	json_object_set_new(obj, "kind", cli_queue_jstr(e.kind));
	json_object_set_new(obj, "namespace", cli_queue_jstr(e.namespace));
	json_object_set_new(obj, "name", cli_queue_jstr(e.name));
	json_object_set_new(o, "object", obj);
	json_object_set_new(o, "severity", cli_queue_jstr(e.severity));
	json_object_set_new(o, "reason", cli_queue_jstr(e.reason ? e.reason : ""));
	json_object_set_new(o, "message", cli_queue_jstr(e.message ? e.message : ""));
	event_free(e.ev);
	return o;
}

/*
 * One element of the streamed array, laid out as json_dumpf(JSON_INDENT(2))
 * lays out the whole array: the output is the same as dumping it at once.
 */
static int
cli_queue_json_row(const struct queue_row *r, void *arg)
{
	size_t *count = arg;
	json_t *o = cli_queue_row_json(r);
	char *text = json_dumps(o, JSON_INDENT(2));
	json_decref(o);
	if (text == NULL)
		return -1;
	fputs(*count == 0 ? "[\n  " : ",\n  ", stdout);
	for (const char *p = text; *p; p++) {
		putchar(*p);
		if (*p == '\n')
			fputs("  ", stdout);
	}
	free(text);
	(*count)++;
	return ferror(stdout) ? -1 : 0;
}

/* Print the rows as a JSON array (q NULL: no database, no rows). 0 / -1. */
static int
cli_queue_print_json(struct queue *q, enum queue_state state)
{
	size_t count = 0;
	int rc = q != NULL ? cli_queue_each(q, state, cli_queue_json_row, &count) : 0;
	fputs(count == 0 ? "[]" : "\n]", stdout);
	putchar('\n');
	return rc;
}

static int
cli_queue_list(const struct conf *c, int argc, char **argv)
{
	bool dead = false, as_json = false;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--dead") == 0)
			dead = true;
		else if (strcmp(argv[i], "--json") == 0)
			as_json = true;
		else if (argv[i][0] == '-')
			return cli_queue_usage("list: unknown option '%s'", argv[i]);
		else
			return cli_queue_usage("list: unexpected argument '%s'", argv[i]);
	}
	enum queue_state state = dead ? QUEUE_DEAD : QUEUE_PENDING;
	struct queue *q = NULL;
	int exists = cli_queue_db_exists(c->state_dir);
	if (exists < 0)
		return CLI_QUEUE_EXIT_FAIL;
	if (exists) {
		q = cli_queue_open(c);
		if (q == NULL)
			return CLI_QUEUE_EXIT_FAIL;
	}
	int rc = as_json ? cli_queue_print_json(q, state) : cli_queue_print_table(q, state);
	queue_close(q);
	return cli_queue_flush(rc < 0 ? CLI_QUEUE_EXIT_FAIL : CLI_QUEUE_EXIT_OK);
}

/* ----------------------------------------------------------- retry, purge */

/* A delivery id: a positive decimal integer. */
static int
cli_queue_parse_id(const char *s, int64_t *id)
{
	if (*s < '0' || *s > '9')
		return -1;
	char *end = NULL;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v <= 0)
		return -1;
	*id = (int64_t)v;
	return 0;
}

/*
 * The arguments of retry and purge: IDs (into ids, *nids) or --all. 0, or
 * the usage exit status (message printed).
 */
static int
cli_queue_change_args(int argc, char **argv, const char *verb, int64_t *ids, size_t *nids,
    bool *all)
{
	bool options_done = false;
	*nids = 0;
	*all = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!options_done && strcmp(a, "--") == 0) {
			options_done = true;
		} else if (!options_done && strcmp(a, "--all") == 0) {
			*all = true;
		} else if (!options_done && a[0] == '-') {
			fprintf(stderr, "fluxrelay: queue: %s: unknown option '%s'\n%s", verb, a,
			    cli_queue_usage_text);
			return CLI_QUEUE_EXIT_USAGE;
		} else if (cli_queue_parse_id(a, &ids[*nids]) < 0) {
			fprintf(stderr, "fluxrelay: queue: %s: invalid ID '%s'\n%s", verb, a,
			    cli_queue_usage_text);
			return CLI_QUEUE_EXIT_USAGE;
		} else {
			(*nids)++;
		}
	}
	if (*all == (*nids > 0)) {
		fprintf(stderr, "fluxrelay: queue: %s: give either IDs or --all\n%s", verb,
		    cli_queue_usage_text);
		return CLI_QUEUE_EXIT_USAGE;
	}
	return 0;
}

/* Retry (or purge) the dead letters ids[0..n), or all of them (ids NULL); 0 / -1. */
static int
cli_queue_change_rows(struct queue *q, bool retry, const int64_t *ids, size_t n,
    int64_t *changed)
{
	return retry ? queue_retry(q, ids, n, changed) : queue_purge(q, ids, n, changed);
}

/*
 * Change the dead letters ids[0..n), one transaction each so that each is
 * reported on its own (q NULL: no database, none is a dead letter); *total
 * gets how many changed. An ID that is not a dead letter is reported and
 * makes the status CLI_QUEUE_EXIT_FAIL; the others are still changed.
 */
static int
cli_queue_change_ids(struct queue *q, bool retry, const int64_t *ids, size_t n,
    int64_t *total)
{
	const char *verb = retry ? "retry" : "purge";
	int rc = CLI_QUEUE_EXIT_OK;
	for (size_t i = 0; i < n; i++) {
		int64_t changed = 0;
		if (q != NULL && cli_queue_change_rows(q, retry, &ids[i], 1, &changed) < 0) {
			fprintf(stderr, "fluxrelay: queue: %s: %s\n", verb, queue_errmsg(q));
			return CLI_QUEUE_EXIT_FAIL;
		}
		if (changed == 0) {
			fprintf(stderr, "fluxrelay: queue: %s: %" PRId64 ": no such dead letter\n",
			    verb, ids[i]);
			rc = CLI_QUEUE_EXIT_FAIL;
		}
		*total += changed;
	}
	return rc;
}

/* retry and purge: the same shape, one verb apart. */
static int
cli_queue_change(const struct conf *c, int argc, char **argv, bool retry)
{
	int64_t *ids = util_calloc((size_t)argc, sizeof(*ids));
	size_t nids = 0;
	bool all = false;
	struct queue *q = NULL;
	int64_t total = 0;
	int rc = cli_queue_change_args(argc, argv, retry ? "retry" : "purge", ids, &nids, &all);
	if (rc != 0)
		goto out;
	int exists = cli_queue_db_exists(c->state_dir);
	if (exists < 0 || (exists && (q = cli_queue_open(c)) == NULL)) {
		rc = CLI_QUEUE_EXIT_FAIL;
		goto out;
	}
	if (!all) {
		rc = cli_queue_change_ids(q, retry, ids, nids, &total);
	} else if (q != NULL && cli_queue_change_rows(q, retry, NULL, 0, &total) < 0) {
		fprintf(stderr, "fluxrelay: queue: %s: %s\n", retry ? "retry" : "purge",
		    queue_errmsg(q));
		rc = CLI_QUEUE_EXIT_FAIL;
		goto out;
	}
	printf("%s %" PRId64 " dead letter%s\n", retry ? "retried" : "purged", total,
	    total == 1 ? "" : "s");
	rc = cli_queue_flush(rc);
out:
	queue_close(q);
	free(ids);
	return rc;
}

int
cli_queue(const struct conf *c, int argc, char **argv)
{
	if (argc < 1 || argv[0] == NULL)
		return cli_queue_usage("missing subcommand (list, retry or purge)");
	const char *cmd = argv[0];
	bool help = strcmp(cmd, "help") == 0;
	for (int i = 0; i < argc && !help && strcmp(argv[i], "--") != 0; i++)
		help = strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0;
	if (help) {
		fputs(cli_queue_usage_text, stdout);
		return cli_queue_flush(CLI_QUEUE_EXIT_OK);
	}
	if (strcmp(cmd, "list") == 0)
		return cli_queue_list(c, argc, argv);
	if (strcmp(cmd, "retry") == 0)
		return cli_queue_change(c, argc, argv, true);
	if (strcmp(cmd, "purge") == 0)
		return cli_queue_change(c, argc, argv, false);
	if (cmd[0] == '-')
		return cli_queue_usage("unknown option '%s'", cmd);
	return cli_queue_usage("unknown subcommand '%s'", cmd);
}
