/*
 * cli_incidents: `fluxrelay incidents [--json]` and `fluxrelay incidents close
 * ID...|--all` (SPEC §12), the operator's view of the open incidents of
 * notify = "changes" alerts. Opens its own SQLite connection with the busy
 * timeout, so it works beside the running daemon; never migrates (a first
 * stage database has no incidents) and creates nothing: a state directory
 * without queue.db has no incidents.
 *
 * The listing leaves out an incident that has had no event for its alert's
 * incident_ttl: it is closed (SPEC §12) even if the daemon's sweep (once a
 * minute) has not deleted it yet, and the daemon would open a new one for
 * the next failure. An incident of an alert the configuration no longer has
 * as notify = "changes" is listed as it is (the daemon drops it when it
 * loads that configuration).
 *
 * Closing is silent (no message is sent), for an object that was deleted:
 * the daemon's incidents_open gauge follows at its next sweep (a minute).
 *
 * Exit status: 0 done; 1 runtime failure, or some ID was not an open
 * incident (the others are still closed); 2 usage error.
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

#include "incident.h"
#include "queue.h"
#include "rules.h"
#include "util.h"

#define CLI_INCIDENTS_EXIT_OK 0
#define CLI_INCIDENTS_EXIT_FAIL 1
#define CLI_INCIDENTS_EXIT_USAGE 2
#define CLI_INCIDENTS_PAGE 500

static const char cli_incidents_usage_text[] =
	"usage: fluxrelay incidents [-c FILE] [-s DIR] [list] [--json]\n"
	"       fluxrelay incidents [-c FILE] [-s DIR] close ID... | --all\n";

static int cli_incidents_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
cli_incidents_usage(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("fluxrelay: incidents: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fputs(cli_incidents_usage_text, stderr);
	return CLI_INCIDENTS_EXIT_USAGE;
}

static int
cli_incidents_flush(int rc)
{
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "fluxrelay: incidents: cannot write output: %s\n", strerror(errno));
		return CLI_INCIDENTS_EXIT_FAIL;
	}
	return rc;
}

/* The database, or *q NULL when the state directory has none. 0 / -1 (printed). */
static int
cli_incidents_open(const struct conf *c, struct queue **q)
{
	*q = NULL;
	char *path = util_printf("%s/queue.db", c->state_dir);
	struct stat st;
	int rc = 0;
	if (stat(path, &st) < 0) {
		if (errno != ENOENT && errno != ENOTDIR) {
			fprintf(stderr, "fluxrelay: incidents: cannot access %s: %s\n", path,
			    strerror(errno));
			rc = -1;
		}
	} else {
		char err[512];
		*q = queue_open(c->state_dir, c->queue.sync_full, err, sizeof(err));
		if (*q == NULL) {
			fprintf(stderr, "fluxrelay: incidents: %s\n", err);
			rc = -1;
		}
	}
	free(path);
	return rc;
}

static void
cli_incidents_rfc3339(double t, char out[32])
{
	time_t secs = (time_t)t;
	struct tm tm;
	if (gmtime_r(&secs, &tm) == NULL || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, 32, "1970-01-01T00:00:00Z");
}

/* "Kind/namespace/name" (namespace left out when empty), after "cluster:" when there is one. */
static char *
cli_incidents_object(const struct queue_incident *in)
{
	return util_printf("%s%s%s/%s%s%s", in->cluster[0] ? in->cluster : "",
	    in->cluster[0] ? ":" : "", in->kind, in->namespace, in->namespace[0] ? "/" : "",
	    in->name);
}

/* Whether provider is one of the alert's (true when the alert is not configured). */
static bool
cli_incidents_alert_has(const struct conf *c, const char *alert, const char *provider)
{
	for (size_t i = 0; i < c->nalerts; i++) {
		if (strcmp(c->alerts[i].name, alert) != 0)
			continue;
		for (size_t k = 0; k < c->alerts[i].nproviders; k++)
			if (strcmp(c->alerts[i].providers[k], provider) == 0)
				return true;
		return false;
	}
	return true;
}

/* The incident's Slack threads, [{target, channel, ts}] (new reference). */
static json_t *
cli_incidents_threads(struct queue *q, const struct conf *c, const struct queue_incident *in)
{
	json_t *threads = json_array();
	char *key = util_printf("%s/%s/%s/%s", in->cluster, in->kind, in->namespace, in->name);
	struct queue_thread *t = NULL;
	size_t nt = 0;
	if (queue_thread_list_key(q, key, &t, &nt) == 0) {
		for (size_t i = 0; i < nt; i++) {
			if (!cli_incidents_alert_has(c, in->alert, t[i].provider))
				continue;
			char *label = rules_target_label(t[i].provider, t[i].channel);
			json_array_append_new(threads, json_pack("{s:s, s:s, s:s}", "target", label,
			    "channel", t[i].channel_id ? t[i].channel_id : "", "ts",
			    t[i].ts ? t[i].ts : ""));
			free(label);
		}
		queue_threads_free(t, nt);
	}
	free(key);
	return threads;
}

/* The incident as the JSON object `incidents --json` prints (new reference). */
static json_t *
cli_incidents_json(struct queue *q, const struct conf *c, const struct queue_incident *in)
{
	char opened[32], last[32];
	cli_incidents_rfc3339(in->opened_at, opened);
	cli_incidents_rfc3339(in->last_at, last);
	json_t *threads = cli_incidents_threads(q, c, in);
	return json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:s, s:o}",
	    "id", (json_int_t)in->id, "alert", in->alert, "cluster", in->cluster,
	    "kind", in->kind, "namespace", in->namespace, "name", in->name,
	    "opened_at", opened, "last_at", last, "failures", (json_int_t)in->failures,
	    "last_message", in->last_message ? in->last_message : "", "threads", threads);
}

/* A table cell: control characters become spaces, long text is cut. */
static char *
cli_incidents_cell(const char *s, size_t max)
{
	char *p = util_strdup(s && *s ? s : "-");
	for (char *ch = p; *ch; ch++)
		if ((unsigned char)*ch < 0x20 || *ch == 0x7f)
			*ch = ' ';
	size_t n = 0;
	for (char *ch = p; *ch; ch++)
		if (((unsigned char)*ch & 0xc0) != 0x80 && ++n > max) {
			char *cut = util_printf("%.*s…", (int)(ch - p), p);
			free(p);
			return cut;
		}
	return p;
}

/*
 * The THREAD cell: the first thread as "CHANNEL/TS", "+N" after it when
 * there are more, "-" when there is none (a webhook or console target, or
 * no slack-bot target with threads).
 */
static char *
cli_incidents_thread_cell(struct queue *q, const struct conf *c, const struct queue_incident *in)
{
	json_t *threads = cli_incidents_threads(q, c, in);
	size_t n = json_array_size(threads);
	char *cell;
	if (n == 0) {
		cell = util_strdup("-");
	} else {
		json_t *t = json_array_get(threads, 0);
		char *more = n > 1 ? util_printf(" +%zu", n - 1) : util_strdup("");
		char *first = util_printf("%s/%s%s", json_string_value(json_object_get(t, "channel")),
		    json_string_value(json_object_get(t, "ts")), more);
		cell = cli_incidents_cell(first, 33);   /* and "…": the column's 34 */
		free(first);
		free(more);
	}
	json_decref(threads);
	return cell;
}

/* Whether in is past its alert's incident_ttl at now (the daemon's incident_decide test). */
static bool
cli_incidents_expired(const struct conf *c, const struct queue_incident *in, double now)
{
	for (size_t i = 0; i < c->nalerts; i++) {
		const struct conf_alert *a = &c->alerts[i];
		if (strcmp(a->name, in->alert) == 0)
			return a->notify == CONF_NOTIFY_CHANGES &&
			    incident_expired(in, a->incident_ttl, now);
	}
	return false;
}

static int
cli_incidents_list(const struct conf *c, bool json)
{
	struct queue *q = NULL;
	if (cli_incidents_open(c, &q) < 0)
		return CLI_INCIDENTS_EXIT_FAIL;
	int rc = CLI_INCIDENTS_EXIT_OK;
	int64_t after = 0;
	size_t total = 0;
	double now = util_now();
	if (json)
		fputs("[", stdout);
	else
		printf("%-6s %-20s %-40s %-20s %-20s %8s  %-34s %s\n", "ID", "ALERT", "OBJECT",
		    "OPENED", "LAST", "FAILURES", "THREAD", "LAST MESSAGE");
	while (q != NULL) {
		struct queue_incident *rows = NULL;
		size_t n = 0;
		if (queue_incident_list_page(q, after, CLI_INCIDENTS_PAGE, &rows, &n) < 0) {
			fprintf(stderr, "fluxrelay: incidents: %s\n", queue_errmsg(q));
			rc = CLI_INCIDENTS_EXIT_FAIL;
			break;
		}
		for (size_t i = 0; i < n; i++) {
			const struct queue_incident *in = &rows[i];
			after = in->id;
			if (cli_incidents_expired(c, in, now))
				continue;
			if (json) {
				json_t *o = cli_incidents_json(q, c, in);
				char *s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
				printf("%s%s", total ? ",\n" : "\n", s ? s : "{}");
				free(s);
				json_decref(o);
			} else {
				char opened[32], last[32];
				cli_incidents_rfc3339(in->opened_at, opened);
				cli_incidents_rfc3339(in->last_at, last);
				char *obj = cli_incidents_object(in), *msg = cli_incidents_cell(
				    in->last_message, 100), *thread = cli_incidents_thread_cell(q, c, in);
				printf("%-6" PRId64 " %-20s %-40s %-20s %-20s %8" PRId64 "  %-34s %s\n",
				    in->id, in->alert, obj, opened, last, in->failures, thread, msg);
				free(obj);
				free(msg);
				free(thread);
			}
			total++;
		}
		queue_incidents_free(rows, n);
		if (n < CLI_INCIDENTS_PAGE)
			break;
	}
	if (json)
		fputs(total ? "\n]\n" : "]\n", stdout);
	queue_close(q);
	return cli_incidents_flush(rc);
}

static int
cli_incidents_close(const struct conf *c, int argc, char **argv)
{
	int64_t *ids = util_calloc((size_t)argc + 1, sizeof(*ids));
	size_t nids = 0;
	bool all = false, options_done = false;
	struct queue *q = NULL;
	int64_t total = 0;
	int rc = CLI_INCIDENTS_EXIT_OK;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		char *end = NULL;
		if (!options_done && strcmp(a, "--") == 0) {
			options_done = true;
			continue;
		}
		if (!options_done && strcmp(a, "--all") == 0) {
			all = true;
			continue;
		}
		if (!options_done && a[0] == '-') {
			rc = cli_incidents_usage("close: unknown option '%s'", a);
			goto out;
		}
		errno = 0;
		long long v = strtoll(a, &end, 10);
		if (errno != 0 || end == a || *end != '\0' || v <= 0 || a[0] == '+') {
			rc = cli_incidents_usage("close: invalid ID '%s'", a);
			goto out;
		}
		ids[nids++] = v;
	}
	if (all == (nids > 0)) {
		rc = cli_incidents_usage("close: give either IDs or --all");
		goto out;
	}
	if (cli_incidents_open(c, &q) < 0) {
		rc = CLI_INCIDENTS_EXIT_FAIL;
		goto out;
	}
	if (all) {
		if (q != NULL && queue_incident_close(q, NULL, 0, &total) < 0) {
			fprintf(stderr, "fluxrelay: incidents: close: %s\n", queue_errmsg(q));
			rc = CLI_INCIDENTS_EXIT_FAIL;
			goto out;
		}
	} else {
		for (size_t i = 0; i < nids; i++) {
			int64_t changed = 0;
			if (q != NULL && queue_incident_close(q, &ids[i], 1, &changed) < 0) {
				fprintf(stderr, "fluxrelay: incidents: close: %s\n", queue_errmsg(q));
				rc = CLI_INCIDENTS_EXIT_FAIL;
				goto out;
			}
			if (changed == 0) {
				fprintf(stderr, "fluxrelay: incidents: close: %" PRId64
				    ": no such incident\n", ids[i]);
				rc = CLI_INCIDENTS_EXIT_FAIL;
			}
			total += changed;
		}
	}
	printf("closed %" PRId64 " incident%s\n", total, total == 1 ? "" : "s");
	rc = cli_incidents_flush(rc);
out:
	queue_close(q);
	free(ids);
	return rc;
}

int
cli_incidents(const struct conf *c, int argc, char **argv)
{
	for (int i = 0; i < argc && strcmp(argv[i], "--") != 0; i++)
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0 ||
		    (i == 0 && strcmp(argv[i], "help") == 0)) {
			fputs(cli_incidents_usage_text, stdout);
			return cli_incidents_flush(CLI_INCIDENTS_EXIT_OK);
		}
	if (argc >= 1 && strcmp(argv[0], "close") == 0)
		return cli_incidents_close(c, argc, argv);
	bool json = false;
	for (int i = 0; i < argc; i++) {
		if (i == 0 && strcmp(argv[i], "list") == 0)
			continue;
		if (strcmp(argv[i], "--json") == 0)
			json = true;
		else if (argv[i][0] == '-')
			return cli_incidents_usage("unknown option '%s'", argv[i]);
		else
			return cli_incidents_usage("unknown subcommand '%s'", argv[i]);
	}
	return cli_incidents_list(c, json);
}
