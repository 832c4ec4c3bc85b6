/*
 * Unit tests for incident: the decision table (every transition, reminder
 * timing, expiry at the boundary), the rank of kinds, then the state machine
 * on a real queue database with explicit clocks (open, count, reminder,
 * reply for threaded targets only, recovery judged by sources only with
 * fixtures 11 and 12, silent expiry and the sweep, merge with a notify =
 * "events" alert, the snapshot JSON), the reload rules
 * (incident_conf_apply: a source's cluster glob counts, a summary does not;
 * a provider's threads toggled either way), and the writer's answers: a state change is never
 * a duplicate, nothing to say is IGNORED.
 */
#include <check.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "conf.h"
#include "event.h"
#include "incident.h"
#include "queue.h"
#include "queue_writer.h"
#include "rules.h"
#include "snapshot.h"
#include "util.h"

/* ---- the decision table ---------------------------------------------------- */

struct decide_case {
	const char *what;
	enum rules_role role;
	bool have;                  /* an incident row exists */
	double last_at, last_notified_at;
	const char *last_norm;
	const char *norm;
	double now, repeat, ttl;
	enum incident_action action;
	enum queue_kind kind;
	bool replaces;
};

static const struct decide_case decide_cases[] = {
	{ "failure, none open: opens", RULES_FAILURE, false, 0, 0, "", "a", 100, 0, 60,
	  INCIDENT_OPEN, QUEUE_KIND_OPENED, false },
	{ "failure, open, same message: counted, nothing sent", RULES_FAILURE, true, 90, 90, "a",
	  "a", 100, 0, 60, INCIDENT_COUNT, QUEUE_KIND_EVENT, false },
	{ "failure, open, other message: a reply", RULES_FAILURE, true, 90, 90, "a", "b", 100, 0,
	  60, INCIDENT_COUNT, QUEUE_KIND_REPLY, false },
	{ "failure before repeat_interval: counted", RULES_FAILURE, true, 99, 41, "a", "a", 100,
	  60, 600, INCIDENT_COUNT, QUEUE_KIND_EVENT, false },
	{ "failure at repeat_interval: a reminder", RULES_FAILURE, true, 99, 40, "a", "a", 100, 60,
	  600, INCIDENT_COUNT, QUEUE_KIND_REMINDER, false },
	{ "a due reminder beats a reply", RULES_FAILURE, true, 99, 10, "a", "b", 100, 60, 600,
	  INCIDENT_COUNT, QUEUE_KIND_REMINDER, false },
	{ "repeat_interval 0: never a reminder", RULES_FAILURE, true, 99, 0, "a", "a", 1e6, 0, 1e7,
	  INCIDENT_COUNT, QUEUE_KIND_EVENT, false },
	{ "failure after incident_ttl: a new incident", RULES_FAILURE, true, 40, 40, "a", "a", 100,
	  0, 60, INCIDENT_OPEN, QUEUE_KIND_OPENED, true },
	{ "failure 1 s before incident_ttl: counted", RULES_FAILURE, true, 41, 41, "a", "a", 100, 0,
	  60, INCIDENT_COUNT, QUEUE_KIND_EVENT, false },
	{ "recovery, open: closes", RULES_RECOVERY, true, 90, 90, "a", "z", 100, 0, 60,
	  INCIDENT_CLOSE, QUEUE_KIND_RECOVERED, false },
	{ "recovery, none open: nothing", RULES_RECOVERY, false, 0, 0, "", "z", 100, 0, 60,
	  INCIDENT_NONE, QUEUE_KIND_EVENT, false },
	{ "recovery of an expired incident: nothing (the sweep closes it)", RULES_RECOVERY, true,
	  40, 40, "a", "z", 100, 0, 60, INCIDENT_NONE, QUEUE_KIND_EVENT, false },
	{ "an events alert: nothing", RULES_EVENT, true, 90, 90, "a", "b", 100, 0, 60,
	  INCIDENT_NONE, QUEUE_KIND_EVENT, false },
};

START_TEST(test_decide)
{
	const struct decide_case *c = &decide_cases[_i];
	struct queue_incident cur = {
		.id = 1, .opened_at = 1, .last_at = c->last_at,
		.last_notified_at = c->last_notified_at, .failures = 3,
		.last_norm = (char *)c->last_norm,
	};
	struct incident_decision d = incident_decide(c->role, c->have ? &cur : NULL, c->norm,
	    c->now, c->repeat, c->ttl);
	ck_assert_msg(d.action == c->action, "%s: action %d", c->what, d.action);
	ck_assert_msg(d.kind == c->kind, "%s: kind %d", c->what, d.kind);
	ck_assert_msg(d.replaces == c->replaces, "%s: replaces", c->what);
}
END_TEST

START_TEST(test_rank)
{
	ck_assert_int_gt(incident_kind_rank(QUEUE_KIND_OPENED), incident_kind_rank(QUEUE_KIND_RECOVERED));
	ck_assert_int_gt(incident_kind_rank(QUEUE_KIND_RECOVERED), incident_kind_rank(QUEUE_KIND_REMINDER));
	ck_assert_int_gt(incident_kind_rank(QUEUE_KIND_REMINDER), incident_kind_rank(QUEUE_KIND_REPLY));
	ck_assert_int_gt(incident_kind_rank(QUEUE_KIND_REPLY), incident_kind_rank(QUEUE_KIND_EVENT));
}
END_TEST

START_TEST(test_norm)
{
	char a[33], b[33], c[33];
	incident_norm("Reconciliation failed after 2.08s", true, a);
	incident_norm("Reconciliation failed after 3.5s", true, b);
	ck_assert_str_eq(a, b);
	incident_norm("Reconciliation failed after 3.5s", false, c);
	ck_assert_str_ne(a, c);
	ck_assert_int_eq(strlen(a), 32);
}
END_TEST

/* ---- the state machine on a database -------------------------------------- */

static const char fix_conf[] =
	"providers = (\n"
	"  { name = \"hook\"; type = \"slack\"; url = \"https://hooks.slack.com/services/T/B/X\"; },\n"
	"  { name = \"bot\"; type = \"slack-bot\"; token = \"xoxb-1\"; channel = \"C1\"; threads = true; },\n"
	"  { name = \"con\"; type = \"console\"; }\n"
	");\n"
	"dedup = { window = 600; };\n"
	"alerts = (\n"
	"  { name = \"changes\"; providers = [ \"hook\", \"bot\" ]; notify = \"changes\";\n"
	"    repeat_interval = 3600; incident_ttl = 7200;\n"
	"    sources = ( { kind = \"HelmRelease\"; }, { kind = \"Kustomization\"; } ); },\n"
	"  { name = \"events\"; providers = [ \"hook\", \"con\" ]; severity = [ \"info\" ];\n"
	"    sources = ( { kind = \"HelmRelease\"; } ); }\n"
	");\n";

struct fix {
	char dir[64];
	char path[96];
	struct conf *c;
	struct rules *r;
	struct queue *q;
};
static struct fix F;

static void
fix_write_conf(const char *text)
{
	FILE *f = fopen(F.path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

static struct conf *
fix_load(const char *text)
{
	char *errors = NULL;
	fix_write_conf(text);
	struct conf *c = conf_load(F.path, &errors);
	ck_assert_msg(c != NULL, "conf: %s", errors ? errors : "?");
	free(c->state_dir);
	c->state_dir = util_strdup(F.dir);
	return c;
}

static void
fix_setup(void)
{
	char err[256];
	snprintf(F.dir, sizeof(F.dir), "/tmp/fr-incident-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(F.dir));
	snprintf(F.path, sizeof(F.path), "%s/fluxrelay.conf", F.dir);
	F.c = fix_load(fix_conf);
	F.r = rules_new(F.c, err, sizeof(err));
	ck_assert_ptr_nonnull(F.r);
	F.q = queue_open(F.dir, false, err, sizeof(err));
	ck_assert_msg(F.q != NULL, "%s", err);
	ck_assert_int_eq(queue_upgrade(F.q, NULL), 0);
}

static void
fix_teardown(void)
{
	queue_close(F.q);
	rules_free(F.r);
	conf_free(F.c);
	char *cmd = util_printf("rm -rf '%s'", F.dir);
	ck_assert_int_eq(system(cmd), 0);
	free(cmd);
}

/* One event through plan + apply at time now, committed. */
struct step {
	struct event *ev;
	struct rules_result m;
	struct incident_req req;
};

static const char *
helm_event(const char *severity, const char *reason, const char *message)
{
	static char buf[1024];
	snprintf(buf, sizeof(buf),
	    "{\"involvedObject\":{\"kind\":\"HelmRelease\",\"name\":\"podinfo\",\"namespace\":\"apps\","
	    "\"apiVersion\":\"helm.toolkit.fluxcd.io/v2\"},"
	    "\"severity\":\"%s\",\"reason\":\"%s\",\"message\":\"%s\","
	    "\"metadata\":{\"helm.toolkit.fluxcd.io/revision\":\"6.5.4\"}}", severity, reason,
	    message);
	return buf;
}

static void
step_run(struct step *s, const char *json, double now)
{
	char err[256], field[128];
	memset(s, 0, sizeof(*s));
	s->ev = event_parse(json, strlen(json), err, sizeof(err), field, sizeof(field));
	ck_assert_msg(s->ev != NULL, "%s", err);
	rules_match(F.r, s->ev, &s->m);
	s->req.conf = F.c;
	s->req.ev = s->ev;
	s->req.cluster = incident_cluster(s->ev);
	s->req.hits = s->m.hits;
	s->req.nhits = s->m.nhits;
	ck_assert_int_eq(queue_begin(F.q), 0);
	ck_assert_int_eq(incident_plan(F.q, &s->req, F.c, now), 0);
	ck_assert_int_eq(incident_apply(F.q, &s->req, now), 0);
	ck_assert_int_eq(queue_commit(F.q), 0);
}

static void
step_free(struct step *s)
{
	incident_req_clear(&s->req);
	rules_result_clear(&s->m);
	event_free(s->ev);
}

/* The item for provider (NULL when the step has none). */
static const struct queue_item *
step_item(const struct step *s, const char *provider)
{
	for (size_t i = 0; i < s->req.nitems; i++)
		if (strcmp(s->req.items[i].provider, provider) == 0)
			return &s->req.items[i];
	return NULL;
}

static int
get_incident(struct queue_incident *in)
{
	return queue_incident_get(F.q, "changes", "", "HelmRelease", "apps", "podinfo", in);
}

START_TEST(test_open_count_remind_recover)
{
	struct step s;
	struct queue_incident in;
	const double t0 = 1700000000;

	/* The first failure opens: "opened" to both targets, the bot's threaded. */
	step_run(&s, helm_event("error", "UpgradeFailed", "install retries exhausted"), t0);
	ck_assert(s.req.changes);
	ck_assert_int_eq(s.req.nitems, 2);
	const struct queue_item *hook = step_item(&s, "hook"), *bot = step_item(&s, "bot");
	ck_assert_ptr_nonnull(hook);
	ck_assert_ptr_nonnull(bot);
	ck_assert_int_eq(hook->kind, QUEUE_KIND_OPENED);
	ck_assert_int_eq(bot->kind, QUEUE_KIND_OPENED);
	ck_assert_str_eq(hook->thread_key, "");
	ck_assert_str_eq(bot->thread_key, "/HelmRelease/apps/podinfo");
	json_t *j = json_loads(hook->incident, 0, NULL);
	ck_assert_ptr_nonnull(j);
	ck_assert_str_eq(json_string_value(json_object_get(j, "state")), "opened");
	ck_assert_int_eq(json_integer_value(json_object_get(j, "failures")), 1);
	ck_assert(json_real_value(json_object_get(j, "since")) == t0);
	ck_assert_str_eq(json_string_value(json_object_get(j, "last_message")),
	    "install retries exhausted");
	json_decref(j);
	ck_assert_int_eq(s.req.nalerts, 1);
	ck_assert_str_eq(s.req.alerts[0], "changes");
	step_free(&s);
	ck_assert_int_eq(get_incident(&in), 1);
	ck_assert_int_eq(in.failures, 1);
	queue_incident_clear(&in);

	/* The same failure: counted, nothing delivered, still a state change. */
	step_run(&s, helm_event("error", "UpgradeFailed", "install retries exhausted"), t0 + 60);
	ck_assert(s.req.changes);
	ck_assert_int_eq(s.req.nitems, 0);
	ck_assert_int_eq(s.req.nalerts, 1);
	step_free(&s);

	/* Another message: a reply, to the threaded target only. */
	step_run(&s, helm_event("error", "UpgradeFailed", "timed out waiting for the condition"),
	    t0 + 120);
	ck_assert_int_eq(s.req.nitems, 1);
	ck_assert_str_eq(s.req.items[0].provider, "bot");
	ck_assert_int_eq(s.req.items[0].kind, QUEUE_KIND_REPLY);
	step_free(&s);

	/* repeat_interval (3600 s) after the incident's last message, the
	 * reply (SPEC §12: not after the opened one): a reminder to both. */
	step_run(&s, helm_event("error", "UpgradeFailed", "timed out waiting for the condition"),
	    t0 + 3600);
	ck_assert_int_eq(s.req.nitems, 0);
	step_free(&s);
	step_run(&s, helm_event("error", "UpgradeFailed", "timed out waiting for the condition"),
	    t0 + 120 + 3599);
	ck_assert_int_eq(s.req.nitems, 0);
	step_free(&s);
	step_run(&s, helm_event("error", "UpgradeFailed", "timed out waiting for the condition"),
	    t0 + 120 + 3600);
	ck_assert_int_eq(s.req.nitems, 2);
	ck_assert_int_eq(step_item(&s, "hook")->kind, QUEUE_KIND_REMINDER);
	j = json_loads(step_item(&s, "hook")->incident, 0, NULL);
	ck_assert_int_eq(json_integer_value(json_object_get(j, "failures")), 6);
	ck_assert(json_real_value(json_object_get(j, "since")) == t0);
	json_decref(j);
	step_free(&s);
	ck_assert_int_eq(get_incident(&in), 1);
	ck_assert_int_eq(in.failures, 6);
	ck_assert(in.last_notified_at == t0 + 3720);
	queue_incident_clear(&in);
	/* The next reminder counts from that one. */
	step_run(&s, helm_event("error", "UpgradeFailed", "timed out waiting for the condition"),
	    t0 + 3720 + 3599);
	ck_assert_int_eq(s.req.nitems, 0);
	step_free(&s);

	/* Recovery: "recovered" with the duration, the revision, the last error; the
	 * notify = "events" alert on hook merges into the same row, which keeps the
	 * recovered kind; con gets the plain event. */
	step_run(&s, helm_event("info", "UpgradeSucceeded", "Helm upgrade succeeded"), t0 + 7300);
	ck_assert(s.req.changes);
	ck_assert_int_eq(s.req.nitems, 3);
	hook = step_item(&s, "hook");
	ck_assert_int_eq(hook->kind, QUEUE_KIND_RECOVERED);
	ck_assert_str_eq(hook->alerts, "changes,events");
	ck_assert_int_eq(step_item(&s, "bot")->kind, QUEUE_KIND_RECOVERED);
	ck_assert_int_eq(step_item(&s, "con")->kind, QUEUE_KIND_EVENT);
	ck_assert_ptr_null(step_item(&s, "con")->incident);
	j = json_loads(hook->incident, 0, NULL);
	ck_assert_str_eq(json_string_value(json_object_get(j, "state")), "recovered");
	ck_assert(json_real_value(json_object_get(j, "duration")) == 7300);
	ck_assert_int_eq(json_integer_value(json_object_get(j, "failures")), 7);
	ck_assert_str_eq(json_string_value(json_object_get(j, "revision")), "6.5.4");
	ck_assert_str_eq(json_string_value(json_object_get(j, "last_message")),
	    "timed out waiting for the condition");
	json_decref(j);
	step_free(&s);
	ck_assert_int_eq(get_incident(&in), 0);

	/* Recovery again: no incident, only the events alert. */
	step_run(&s, helm_event("info", "UpgradeSucceeded", "Helm upgrade succeeded"), t0 + 7400);
	ck_assert(!s.req.changes);
	ck_assert_int_eq(s.req.nitems, 2);
	ck_assert_int_eq(step_item(&s, "hook")->kind, QUEUE_KIND_EVENT);
	ck_assert_str_eq(step_item(&s, "hook")->alerts, "events");
	step_free(&s);
}
END_TEST

static char *
read_fixture(const char *name)
{
	char *path = util_printf("%s/tests/fixtures/events/%s", FR_SRCDIR, name);
	char err[256];
	size_t len;
	char *s = util_read_file(path, &len, err, sizeof(err));
	ck_assert_msg(s != NULL, "%s", err);
	free(path);
	return s;
}

/*
 * A reply is a message of the incident only where it is delivered: an alert
 * without a threaded target sends nothing for a differing failure, so its
 * reminder still counts from the opened message.
 */
START_TEST(test_reply_not_delivered_keeps_reminder)
{
	static const char text[] =
	    "providers = (\n"
	    "  { name = \"hook\"; type = \"slack\"; url = \"https://hooks.slack.com/services/T/B/X\"; }\n"
	    ");\n"
	    "alerts = (\n"
	    "  { name = \"changes\"; providers = [ \"hook\" ]; notify = \"changes\";\n"
	    "    repeat_interval = 3600; sources = ( { kind = \"HelmRelease\"; } ); }\n"
	    ");\n";
	char err[256];
	struct step s;
	struct queue_incident in;
	const double t0 = 1700000000;
	rules_free(F.r);
	conf_free(F.c);
	F.c = fix_load(text);
	F.r = rules_new(F.c, err, sizeof(err));
	ck_assert_ptr_nonnull(F.r);

	step_run(&s, helm_event("error", "UpgradeFailed", "boom"), t0);
	step_free(&s);
	step_run(&s, helm_event("error", "UpgradeFailed", "something else"), t0 + 120);
	ck_assert_int_eq(s.req.nitems, 0);     /* a reply, but no threaded target */
	step_free(&s);
	ck_assert_int_eq(get_incident(&in), 1);
	ck_assert(in.last_notified_at == t0);
	queue_incident_clear(&in);
	step_run(&s, helm_event("error", "UpgradeFailed", "something else"), t0 + 3600);
	ck_assert_int_eq(s.req.nitems, 1);
	ck_assert_int_eq(s.req.items[0].kind, QUEUE_KIND_REMINDER);
	step_free(&s);
}
END_TEST

/* Fixtures 11 and 12: sources alone judge a recovery. */
START_TEST(test_recovery_by_sources)
{
	struct step s;
	struct queue_incident in;
	const double t0 = 1700000000;
	char *ks = read_fixture("11-kustomization-reconciliation-succeeded-recovery.json");
	char *helm = read_fixture("12-helmrelease-rollback-succeeded-still-failing.json");

	step_run(&s, "{\"involvedObject\":{\"kind\":\"Kustomization\",\"name\":\"webapp\","
	    "\"namespace\":\"apps\"},\"severity\":\"error\",\"reason\":\"HealthCheckFailed\","
	    "\"message\":\"timeout\"}", t0);
	ck_assert_int_eq(step_item(&s, "hook")->kind, QUEUE_KIND_OPENED);
	step_free(&s);
	/* A commit-status update with ReconciliationSucceeded closes it. */
	step_run(&s, ks, t0 + 10);
	ck_assert(s.req.changes);
	ck_assert_int_eq(step_item(&s, "hook")->kind, QUEUE_KIND_RECOVERED);
	step_free(&s);
	ck_assert_int_eq(queue_incident_get(F.q, "changes", "", "Kustomization", "apps", "webapp",
	    &in), 0);

	step_run(&s, helm_event("error", "UpgradeFailed", "upgrade failed"), t0);
	step_free(&s);
	/* RollbackSucceeded is no recovery reason: still open. */
	step_run(&s, helm, t0 + 10);
	ck_assert(!s.req.changes);
	ck_assert_ptr_null(step_item(&s, "bot"));
	step_free(&s);
	ck_assert_int_eq(queue_incident_get(F.q, "changes", "", "HelmRelease", "apps", "podinfo",
	    &in), 1);
	queue_incident_clear(&in);
	free(ks);
	free(helm);
}
END_TEST

START_TEST(test_expiry_and_sweep)
{
	struct step s;
	struct queue_incident in;
	const double t0 = 1700000000;

	step_run(&s, helm_event("error", "UpgradeFailed", "boom"), t0);
	step_free(&s);
	ck_assert_int_eq(get_incident(&in), 1);
	queue_incident_clear(&in);
	/* After incident_ttl (7200 s) without an event: a new incident opens. */
	step_run(&s, helm_event("error", "UpgradeFailed", "boom"), t0 + 7200);
	ck_assert_int_eq(step_item(&s, "hook")->kind, QUEUE_KIND_OPENED);
	step_free(&s);
	ck_assert_int_eq(get_incident(&in), 1);
	ck_assert(in.opened_at == t0 + 7200);
	ck_assert_int_eq(in.failures, 1);
	queue_incident_clear(&in);

	/* The sweep closes it silently once idle for incident_ttl, not before. */
	ck_assert_int_eq(incident_sweep(F.q, F.c, t0 + 7200 + 7199), 0);
	ck_assert_int_eq(get_incident(&in), 1);
	queue_incident_clear(&in);
	ck_assert_int_eq(incident_sweep(F.q, F.c, t0 + 7200 + 7200), 0);
	ck_assert_int_eq(get_incident(&in), 0);

	/* Thread handles: idle past thread_ttl (86400) go, fresh ones stay. */
	struct queue_thread old = { "bot", "C1", "/HelmRelease/apps/a", "C1", "1.1", t0, t0, 0 };
	struct queue_thread fresh = { "bot", "C1", "/HelmRelease/apps/b", "C1", "1.2", t0,
		t0 + 86400, 0 };
	ck_assert_int_eq(queue_begin(F.q), 0);
	ck_assert_int_eq(queue_thread_put(F.q, &old), 0);
	ck_assert_int_eq(queue_thread_put(F.q, &fresh), 0);
	ck_assert_int_eq(queue_commit(F.q), 0);
	ck_assert_int_eq(incident_sweep(F.q, F.c, t0 + 86400 + 1), 0);
	struct queue_thread t;
	ck_assert_int_eq(queue_thread_get(F.q, "bot", "C1", "/HelmRelease/apps/a", &t), 0);
	ck_assert_int_eq(queue_thread_get(F.q, "bot", "C1", "/HelmRelease/apps/b", &t), 1);
	queue_thread_clear(&t);
}
END_TEST

/* A failure counted on an open incident keeps its thread's handle from expiring. */
START_TEST(test_count_touches_thread)
{
	struct step s;
	const double t0 = 1700000000;
	step_run(&s, helm_event("error", "UpgradeFailed", "boom"), t0);
	step_free(&s);
	struct queue_thread h = { "bot", "C1", "/HelmRelease/apps/podinfo", "C1", "1.1", t0, t0,
		0 };
	ck_assert_int_eq(queue_begin(F.q), 0);
	ck_assert_int_eq(queue_thread_put(F.q, &h), 0);
	ck_assert_int_eq(queue_commit(F.q), 0);
	step_run(&s, helm_event("error", "UpgradeFailed", "boom"), t0 + 5000);
	step_free(&s);
	struct queue_thread t;
	ck_assert_int_eq(queue_thread_get(F.q, "bot", "C1", "/HelmRelease/apps/podinfo", &t), 1);
	ck_assert(t.last_at == t0 + 5000);
	queue_thread_clear(&t);
}
END_TEST

/* Reload: removed, renamed, re-sourced or events-only alerts lose their incidents. */
START_TEST(test_conf_apply)
{
	struct step s;
	struct queue_incident in;
	const double t0 = 1700000000;
	ck_assert_int_eq(incident_conf_apply(F.q, F.c), 0);
	step_run(&s, helm_event("error", "UpgradeFailed", "boom"), t0);
	step_free(&s);
	struct queue_thread h = { "bot", "C1", "/HelmRelease/apps/podinfo", "C1", "1.1", t0, t0,
		0 };
	ck_assert_int_eq(queue_begin(F.q), 0);
	ck_assert_int_eq(queue_thread_put(F.q, &h), 0);
	ck_assert_int_eq(queue_commit(F.q), 0);

	/* The same configuration again (a restart): kept. */
	ck_assert_int_eq(incident_conf_apply(F.q, F.c), 0);
	ck_assert_int_eq(get_incident(&in), 1);
	queue_incident_clear(&in);

	/* Other metadata or repeat_interval: kept. */
	char *text = util_strdup(fix_conf);
	char *p = strstr(text, "repeat_interval = 3600");
	memcpy(p, "repeat_interval = 1800", 22);
	struct conf *c2 = fix_load(text);
	ck_assert_int_eq(incident_conf_apply(F.q, c2), 0);
	ck_assert_int_eq(get_incident(&in), 1);
	queue_incident_clear(&in);
	conf_free(c2);

	/* Sources changed: dropped. threads off: handles dropped. */
	p = strstr(text, "{ kind = \"Kustomization\"; }");
	memcpy(p, "{ kind = \"Kustomizatio*\"; }", 27);
	p = strstr(text, "threads = true");
	memcpy(p, "threads =false", 14);
	c2 = fix_load(text);
	ck_assert_int_eq(incident_conf_apply(F.q, c2), 0);
	ck_assert_int_eq(get_incident(&in), 0);
	struct queue_thread t;
	ck_assert_int_eq(queue_thread_get(F.q, "bot", "C1", "/HelmRelease/apps/podinfo", &t), 0);
	conf_free(c2);

	/* Removed (back to the fixture's conf with the alert renamed): dropped. */
	ck_assert_int_eq(incident_conf_apply(F.q, F.c), 0);
	step_run(&s, helm_event("error", "UpgradeFailed", "boom"), t0);
	step_free(&s);
	free(text);
	text = util_strdup(fix_conf);
	p = strstr(text, "name = \"changes\"");
	memcpy(p, "name = \"changez\"", 16);
	c2 = fix_load(text);
	ck_assert_int_eq(incident_conf_apply(F.q, c2), 0);
	ck_assert_int_eq(get_incident(&in), 0);
	conf_free(c2);
	free(text);
}
END_TEST

/* text with its only occurrence of from replaced by to. Caller frees. */
static char *
text_replace(const char *text, const char *from, const char *to)
{
	const char *p = strstr(text, from);
	ck_assert_msg(p != NULL, "no %s", from);
	ck_assert_ptr_null(strstr(p + 1, from));
	return util_printf("%.*s%s%s", (int)(p - text), text, to, p + strlen(from));
}

/* Make text the fixture's configuration (F.c, F.r) and apply it, as a reload does. */
static void
fix_reload(const char *text)
{
	char err[256];
	rules_free(F.r);
	conf_free(F.c);
	F.c = fix_load(text);
	F.r = rules_new(F.c, err, sizeof(err));
	ck_assert_msg(F.r != NULL, "%s", err);
	ck_assert_int_eq(incident_conf_apply(F.q, F.c), 0);
}

/* 1 when alert has podinfo's incident open, else 0. */
static int
alert_open(const char *alert)
{
	struct queue_incident in;
	int rc = queue_incident_get(F.q, alert, "", "HelmRelease", "apps", "podinfo", &in);
	ck_assert_int_ge(rc, 0);
	if (rc == 1)
		queue_incident_clear(&in);
	return rc;
}

static void
fail_podinfo(double now)
{
	struct step s;
	step_run(&s, helm_event("error", "UpgradeFailed", "boom"), now);
	step_free(&s);
}

/* A source's cluster glob is part of the sources: changing only it drops the
 * alert's incidents; a reworded summary does not. */
START_TEST(test_conf_apply_cluster)
{
	const double t0 = 1700000000;
	char *base = text_replace(fix_conf, "repeat_interval = 3600;",
	    "repeat_interval = 3600; summary = \"Release failing\";");
	fix_reload(base);
	fail_podinfo(t0);
	ck_assert_int_eq(alert_open("changes"), 1);

	char *reworded = text_replace(base, "\"Release failing\"", "\"Release broken\"");
	fix_reload(reworded);
	ck_assert_int_eq(alert_open("changes"), 1);

	/* cluster = "*" is what no cluster means: kept. */
	char *star = text_replace(reworded, "{ kind = \"Kustomization\"; }",
	    "{ kind = \"Kustomization\"; cluster = \"*\"; }");
	fix_reload(star);
	ck_assert_int_eq(alert_open("changes"), 1);

	char *prod = text_replace(reworded, "{ kind = \"Kustomization\"; }",
	    "{ kind = \"Kustomization\"; cluster = \"prod-*\"; }");
	fix_reload(prod);
	ck_assert_int_eq(alert_open("changes"), 0);

	/* Another glob: dropped again; the same one (a restart): kept. */
	fail_podinfo(t0 + 10);
	fix_reload(prod);
	ck_assert_int_eq(alert_open("changes"), 1);
	char *stage = text_replace(prod, "\"prod-*\"", "\"stage-*\"");
	fix_reload(stage);
	ck_assert_int_eq(alert_open("changes"), 0);
	free(base);
	free(reworded);
	free(star);
	free(prod);
	free(stage);
}
END_TEST

/*
 * A row written by the fluxrelay before clusters were part of the
 * fingerprint, for an alert that already had a cluster glob: the upgrade
 * keeps its incidents (compared without clusters), then rewrites the row,
 * and a later change of the glob drops them.
 */
START_TEST(test_conf_apply_cluster_upgrade)
{
	const double t0 = 1700000000;
	char *prod = text_replace(fix_conf, "{ kind = \"Kustomization\"; }",
	    "{ kind = \"Kustomization\"; cluster = \"prod-*\"; }");
	fix_reload(prod);
	fail_podinfo(t0);
	ck_assert_int_eq(alert_open("changes"), 1);
	/* What the previous version stored for this alert. */
	ck_assert_int_eq(queue_meta_put(F.q, "alert:changes",
	    "changes \"HelmRelease\"/\"*\"/\"*\" \"Kustomization\"/\"*\"/\"*\""), 0);
	fix_reload(prod);
	ck_assert_int_eq(alert_open("changes"), 1);
	char *fp = NULL;
	ck_assert_int_eq(queue_meta_get(F.q, "alert:changes", &fp), 1);
	ck_assert_msg(strncmp(fp, "2 ", 2) == 0 && strstr(fp, "prod-*") != NULL, "%s", fp);
	free(fp);
	char *stage = text_replace(prod, "\"prod-*\"", "\"stage-*\"");
	fix_reload(stage);
	ck_assert_int_eq(alert_open("changes"), 0);
	free(prod);
	free(stage);
}
END_TEST

static const char threads_conf[] =
	"providers = (\n"
	"  { name = \"hook\"; type = \"slack\"; url = \"https://hooks.slack.com/services/T/B/X\"; },\n"
	"  { name = \"bot\"; type = \"slack-bot\"; token = \"xoxb-1\"; channel = \"C1\"; threads = %s; },\n"
	"  { name = \"bot2\"; type = \"slack-bot\"; token = \"xoxb-2\"; channel = \"C2\"; threads = %s; }\n"
	");\n"
	"alerts = (\n"
	"  { name = \"a1\"; providers = [ \"hook\", \"bot\" ]; notify = \"changes\";\n"
	"    sources = ( { kind = \"HelmRelease\"; } ); },\n"
	"  { name = \"a2\"; providers = [ \"hook\" ]; notify = \"changes\";\n"
	"    sources = ( { kind = \"HelmRelease\"; } ); },\n"
	"  { name = \"a3\"; providers = [ \"bot2\" ]; notify = \"changes\";\n"
	"    sources = ( { kind = \"HelmRelease\"; } ); }\n"
	");\n";

static void
threads_reload(const char *bot, const char *bot2)
{
	char *text = util_printf(threads_conf, bot, bot2);
	fix_reload(text);
	free(text);
}

static void
put_handle(const char *provider, const char *channel, double t)
{
	struct queue_thread h = { (char *)provider, (char *)channel,
		(char *)"/HelmRelease/apps/podinfo", (char *)channel, (char *)"1.1", t, t, 0 };
	ck_assert_int_eq(queue_begin(F.q), 0);
	ck_assert_int_eq(queue_thread_put(F.q, &h), 0);
	ck_assert_int_eq(queue_commit(F.q), 0);
}

static int
have_handle(const char *provider, const char *channel)
{
	struct queue_thread t;
	int rc = queue_thread_get(F.q, provider, channel, "/HelmRelease/apps/podinfo", &t);
	ck_assert_int_ge(rc, 0);
	if (rc == 1)
		queue_thread_clear(&t);
	return rc;
}

/* A provider's threads changed, either way: the incidents of the alerts that
 * use it go, with its handles; other alerts keep theirs. */
START_TEST(test_conf_apply_threads)
{
	const double t0 = 1700000000;
	threads_reload("true", "false");
	fail_podinfo(t0);
	put_handle("bot", "C1", t0);
	ck_assert_int_eq(alert_open("a1") + alert_open("a2") + alert_open("a3"), 3);

	/* The same again (a restart): kept. */
	threads_reload("true", "false");
	ck_assert_int_eq(alert_open("a1") + alert_open("a2") + alert_open("a3"), 3);
	ck_assert_int_eq(have_handle("bot", "C1"), 1);

	/* bot: on -> off. */
	threads_reload("false", "false");
	ck_assert_int_eq(alert_open("a1"), 0);
	ck_assert_int_eq(alert_open("a2"), 1);
	ck_assert_int_eq(alert_open("a3"), 1);
	ck_assert_int_eq(have_handle("bot", "C1"), 0);

	/* bot2: off -> on. */
	fail_podinfo(t0 + 10);
	ck_assert_int_eq(alert_open("a1"), 1);
	threads_reload("false", "true");
	ck_assert_int_eq(alert_open("a1"), 1);
	ck_assert_int_eq(alert_open("a2"), 1);
	ck_assert_int_eq(alert_open("a3"), 0);

	/* bot: off -> on; bot2's handle stays. */
	fail_podinfo(t0 + 20);
	put_handle("bot2", "C2", t0 + 20);
	threads_reload("true", "true");
	ck_assert_int_eq(alert_open("a1"), 0);
	ck_assert_int_eq(alert_open("a2"), 1);
	ck_assert_int_eq(alert_open("a3"), 1);
	ck_assert_int_eq(have_handle("bot2", "C2"), 1);
}
END_TEST

/* ---- logged once committed ---------------------------------------------------- */

/* fd 2 (where log.c writes) into a pipe, so a test reads what was logged. */
struct capture {
	int saved;
	int rd;
};

static void
capture_start(struct capture *c)
{
	int p[2];
	ck_assert_int_eq(pipe(p), 0);
	c->saved = dup(2);
	ck_assert_int_ge(c->saved, 0);
	ck_assert_int_eq(dup2(p[1], 2), 2);
	close(p[1]);
	c->rd = p[0];
}

/* fd 2 back as it was; what was logged meanwhile, also copied there (caller frees). */
static char *
capture_end(struct capture *c)
{
	struct util_buf b = {0};
	char buf[4096];
	ssize_t n;
	ck_assert_int_eq(dup2(c->saved, 2), 2);
	close(c->saved);
	/* fd 2 held the pipe's only write end: read to EOF */
	while ((n = read(c->rd, buf, sizeof(buf))) > 0)
		util_buf_append(&b, buf, (size_t)n);
	close(c->rd);
	if (b.len > 0)
		fputs(b.data, stderr);
	return b.data != NULL ? b.data : util_strdup("");
}

/*
 * A reload that drops an alert's incidents drops their thread handles on
 * the alert's targets too (SPEC §12), even once the alert is gone from the
 * configuration; a handle another changes alert's open incident of the
 * same object still uses stays, and so do other objects' handles.
 */
static const char drop_conf_head[] =
	"providers = (\n"
	"  { name = \"bot\"; type = \"slack-bot\"; token = \"xoxb-1\"; channel = \"C1\"; threads = true; },\n"
	"  { name = \"bot2\"; type = \"slack-bot\"; token = \"xoxb-2\"; channel = \"C2\"; threads = true; }\n"
	");\n"
	"alerts = (\n";
static const char drop_a1[] = "  { name = \"a1\"; providers = [ \"bot\" ]; notify = \"changes\";\n"
	"    sources = ( { kind = \"HelmRelease\"; } ); },\n";
static const char drop_a2[] = "  { name = \"a2\"; providers = [ \"bot2\" ]; notify = \"changes\";\n"
	"    sources = ( { kind = \"HelmRelease\"; } ); },\n";
static const char drop_a3[] = "  { name = \"a3\"; providers = [ \"bot\" ]; notify = \"changes\";\n"
	"    sources = ( { kind = \"HelmRelease\"; } ); },\n";
static const char drop_ev[] = "  { name = \"ev\"; providers = [ \"bot\", \"bot2\" ];\n"
	"    sources = ( { kind = \"GitRepository\"; } ); }\n";

static void
drop_reload(const char *a1, const char *a2, const char *a3)
{
	char *text = util_printf("%s%s%s%s%s);\n", drop_conf_head, a1, a2, a3, drop_ev);
	fix_reload(text);
	free(text);
}

static int
have_key(const char *provider, const char *channel, const char *key)
{
	struct queue_thread t;
	int rc = queue_thread_get(F.q, provider, channel, key, &t);
	ck_assert_int_ge(rc, 0);
	if (rc == 1)
		queue_thread_clear(&t);
	return rc;
}

START_TEST(test_conf_apply_drops_handles)
{
	const double t0 = 1700000000;
	drop_reload(drop_a1, drop_a2, drop_a3);
	fail_podinfo(t0);
	ck_assert_int_eq(alert_open("a1") + alert_open("a2") + alert_open("a3"), 3);
	put_handle("bot", "C1", t0);
	put_handle("bot2", "C2", t0);
	struct queue_thread other = { "bot2", "C2", "/GitRepository/flux-system/fleet", "C2",
		"1.9", t0, t0, 0 };
	ck_assert_int_eq(queue_begin(F.q), 0);
	ck_assert_int_eq(queue_thread_put(F.q, &other), 0);
	ck_assert_int_eq(queue_commit(F.q), 0);

	/* The same again (a restart): everything stays. */
	drop_reload(drop_a1, drop_a2, drop_a3);
	ck_assert_int_eq(have_handle("bot", "C1") + have_handle("bot2", "C2"), 2);

	/* a2 removed: its incident and its thread on bot2 go; the events thread stays. */
	struct capture cap;
	capture_start(&cap);
	drop_reload(drop_a1, "", drop_a3);
	char *said = capture_end(&cap);
	ck_assert_int_eq(alert_open("a2"), 0);
	ck_assert_int_eq(have_handle("bot2", "C2"), 0);
	ck_assert_int_eq(have_key("bot2", "C2", "/GitRepository/flux-system/fleet"), 1);
	ck_assert_int_eq(have_handle("bot", "C1"), 1);
	ck_assert_ptr_nonnull(strstr(said, "msg=\"thread handles dropped\" alert=a2 count=1 "));
	free(said);

	/* a1 removed: a3's open incident of podinfo still threads on bot C1. */
	drop_reload("", "", drop_a3);
	ck_assert_int_eq(alert_open("a1"), 0);
	ck_assert_int_eq(alert_open("a3"), 1);
	ck_assert_int_eq(have_handle("bot", "C1"), 1);

	/* a3 no longer notify = "changes": now the handle goes. */
	drop_reload("", "", "  { name = \"a3\"; providers = [ \"bot\" ];\n"
	    "    sources = ( { kind = \"HelmRelease\"; } ); },\n");
	ck_assert_int_eq(alert_open("a3"), 0);
	ck_assert_int_eq(have_handle("bot", "C1"), 0);
	ck_assert_int_eq(have_key("bot2", "C2", "/GitRepository/flux-system/fleet"), 1);
}
END_TEST

/*
 * Run a housekeeping call with no file allowed to grow (RLIMIT_FSIZE 0; the
 * write then fails with EFBIG instead of raising SIGXFSZ): SQLite keeps a
 * transaction's changes in its cache and writes them to the WAL at COMMIT,
 * so the commit is what fails. Returns what the call logged (caller frees).
 */
static char *
no_room(int (*call)(const struct conf *, double), const struct conf *c, double now, int *rc)
{
	struct capture cap;
	struct rlimit old, none;
	ck_assert(signal(SIGXFSZ, SIG_IGN) != SIG_ERR);
	ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
	none = old;
	none.rlim_cur = 0;
	capture_start(&cap);
	int set = setrlimit(RLIMIT_FSIZE, &none);
	*rc = set == 0 ? call(c, now) : 0;
	setrlimit(RLIMIT_FSIZE, &old);
	char *said = capture_end(&cap);
	ck_assert_int_eq(set, 0);
	return said;
}

static int
call_conf_apply(const struct conf *c, double now)
{
	(void)now;
	return incident_conf_apply(F.q, c);
}

static int
call_sweep(const struct conf *c, double now)
{
	return incident_sweep(F.q, c, now);
}

/*
 * A reload's drops are logged once its transaction has committed: when the
 * commit fails, nothing was dropped and no line says so (a reader of the log
 * would look for incidents that are still there); the next reload drops and
 * says it.
 */
START_TEST(test_conf_apply_logged_after_commit)
{
	const double t0 = 1700000000;
	ck_assert_int_eq(incident_conf_apply(F.q, F.c), 0);
	fail_podinfo(t0);
	put_handle("bot", "C1", t0);
	char *text = text_replace(fix_conf, "threads = true", "threads = false");
	struct conf *c2 = fix_load(text);

	int rc;
	char *said = no_room(call_conf_apply, c2, 0, &rc);
	ck_assert_int_eq(rc, -1);
	ck_assert_msg(strncmp(queue_errmsg(F.q), "commit: ", 8) == 0, "%s", queue_errmsg(F.q));
	ck_assert_msg(strstr(said, "dropped") == NULL, "logged, then not committed: %s", said);
	free(said);
	ck_assert_int_eq(alert_open("changes"), 1);
	ck_assert_int_eq(have_handle("bot", "C1"), 1);

	struct capture cap;
	capture_start(&cap);
	rc = incident_conf_apply(F.q, c2);
	said = capture_end(&cap);
	ck_assert_int_eq(rc, 0);
	ck_assert_msg(strstr(said, "msg=\"incidents dropped\" alert=changes count=1 "
	    "why=\"provider bot: threads turned off\"") != NULL, "%s", said);
	ck_assert_msg(strstr(said, "msg=\"thread handles dropped\" provider=bot count=1 "
	    "why=\"threads turned off\"") != NULL, "%s", said);
	free(said);
	ck_assert_int_eq(alert_open("changes"), 0);
	ck_assert_int_eq(have_handle("bot", "C1"), 0);
	conf_free(c2);
	free(text);
}
END_TEST

/* So are the sweep's: an expiry that did not commit is not logged. */
START_TEST(test_sweep_logged_after_commit)
{
	const double t0 = 1700000000;
	fail_podinfo(t0);
	int rc;
	char *said = no_room(call_sweep, F.c, t0 + 7200, &rc);
	ck_assert_int_eq(rc, -1);
	ck_assert_msg(strncmp(queue_errmsg(F.q), "commit: ", 8) == 0, "%s", queue_errmsg(F.q));
	ck_assert_msg(strstr(said, "expired") == NULL, "logged, then not committed: %s", said);
	free(said);
	ck_assert_int_eq(alert_open("changes"), 1);

	struct capture cap;
	capture_start(&cap);
	rc = incident_sweep(F.q, F.c, t0 + 7200);
	said = capture_end(&cap);
	ck_assert_int_eq(rc, 0);
	ck_assert_msg(strstr(said, "msg=\"incidents expired: closed silently\" alert=changes "
	    "count=1") != NULL, "%s", said);
	free(said);
	ck_assert_int_eq(alert_open("changes"), 0);
}
END_TEST

/* ---- the writer's answers ---------------------------------------------------- */

struct wreq {
	struct queue_req q;
	struct incident_req inc;
	struct event *ev;
	struct rules_result m;
	char **extras;
	struct queue_item *items;
	int done;
	pthread_mutex_t mu;
	pthread_cond_t cv;
};

static void
wreq_done(struct queue_req *q)
{
	struct wreq *w = q->arg;
	pthread_mutex_lock(&w->mu);
	w->done = 1;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

/* Submit an event as http.c does; returns the writer's result. */
static enum queue_result
wsubmit(struct queue_writer *qw, struct snapshot *snap, const char *json)
{
	struct wreq w;
	char err[256], field[128];
	memset(&w, 0, sizeof(w));
	pthread_mutex_init(&w.mu, NULL);
	pthread_cond_init(&w.cv, NULL);
	w.ev = event_parse(json, strlen(json), err, sizeof(err), field, sizeof(field));
	ck_assert_ptr_nonnull(w.ev);
	size_t n = rules_match(snap->rules, w.ev, &w.m);
	if (w.m.nchanges > 0) {
		w.inc.conf = snap->conf;
		w.inc.ev = w.ev;
		w.inc.cluster = "";
		w.inc.hits = w.m.hits;
		w.inc.nhits = w.m.nhits;
		w.q.incident = &w.inc;
		n = 0;
	}
	w.items = util_calloc(n + 1, sizeof(*w.items));
	w.extras = util_calloc(n + 1, sizeof(*w.extras));
	for (size_t i = 0; i < n; i++) {
		w.extras[i] = rules_extra_json(&w.m.targets[i]);
		w.items[i].provider = snap->conf->providers[w.m.targets[i].provider].name;
		w.items[i].channel = w.m.targets[i].channel;
		w.items[i].alerts = w.m.targets[i].alerts;
		w.items[i].extra = w.extras[i];
	}
	w.q.event = json;
	w.q.event_len = strlen(json);
	w.q.items = w.items;
	w.q.nitems = n;
	w.q.has_dedup = true;
	dedup_key(w.ev, true, w.q.dedup_key);
	w.q.dedup_window = 600;
	w.q.done = wreq_done;
	w.q.arg = &w;
	queue_writer_submit(qw, &w.q);
	pthread_mutex_lock(&w.mu);
	while (!w.done)
		pthread_cond_wait(&w.cv, &w.mu);
	pthread_mutex_unlock(&w.mu);
	enum queue_result r = w.q.result;
	for (size_t i = 0; i < n; i++)
		free(w.extras[i]);
	free(w.extras);
	free(w.items);
	incident_req_clear(&w.inc);
	rules_result_clear(&w.m);
	event_free(w.ev);
	pthread_mutex_destroy(&w.mu);
	pthread_cond_destroy(&w.cv);
	return r;
}

START_TEST(test_writer_results)
{
	char err[256];
	queue_close(F.q);
	F.q = NULL;
	struct conf *c = fix_load(fix_conf);
	struct snapshot *snap = snapshot_new(c, err, sizeof(err));
	ck_assert_ptr_nonnull(snap);
	snap->refs++;                                  /* one for the writer */
	struct queue_writer_opts o = { .state_dir = F.dir, .max_pending = -1, .snap = snap };
	struct queue_writer *qw = queue_writer_start(&o, err, sizeof(err));
	ck_assert_msg(qw != NULL, "%s", err);
	const char *fail = helm_event("error", "UpgradeFailed", "boom");
	char *failcopy = util_strdup(fail);
	/* The same failure twice within the dedup window: both change the
	 * incident (open, count), so neither is a duplicate. */
	ck_assert_int_eq(wsubmit(qw, snap, failcopy), QUEUE_RESULT_ACCEPTED);
	ck_assert_int_eq(wsubmit(qw, snap, failcopy), QUEUE_RESULT_ACCEPTED);
	/* A rollback (no recovery reason): the events alert delivers it once,
	 * its repeat is a duplicate (no incident changed). */
	char *rb = util_strdup(helm_event("info", "RollbackSucceeded", "rolled back"));
	ck_assert_int_eq(wsubmit(qw, snap, rb), QUEUE_RESULT_ACCEPTED);
	ck_assert_int_eq(wsubmit(qw, snap, rb), QUEUE_RESULT_DUPLICATE);
	/* A Kustomization recovery with nothing open: nothing to say, IGNORED. */
	char *ks = util_strdup("{\"involvedObject\":{\"kind\":\"Kustomization\",\"name\":\"w\"},"
	    "\"severity\":\"info\",\"reason\":\"ReconciliationSucceeded\",\"message\":\"ok\"}");
	ck_assert_int_eq(wsubmit(qw, snap, ks), QUEUE_RESULT_IGNORED);
	/* The recovery closes the incident. */
	char *rec = util_strdup(helm_event("info", "UpgradeSucceeded", "upgraded"));
	ck_assert_int_eq(wsubmit(qw, snap, rec), QUEUE_RESULT_ACCEPTED);
	struct queue_writer_stats st;
	queue_writer_get_stats(qw, &st);
	ck_assert_int_eq(st.ignored, 1);
	ck_assert_int_eq(st.duplicates, 1);
	ck_assert_int_eq(st.errors, 0);
	queue_writer_stop(qw);
	/* Rows: opened x2 (hook, bot), rollback x2 (hook, con), recovered x3. */
	F.q = queue_open(F.dir, false, err, sizeof(err));
	ck_assert_int_eq(queue_count(F.q, QUEUE_PENDING), 7);
	free(failcopy);
	free(rb);
	free(ks);
	free(rec);
	snapshot_release(snap);
}
END_TEST

static Suite *
incident_suite(void)
{
	Suite *s = suite_create("incident");
	TCase *tc = tcase_create("pure");
	tcase_add_loop_test(tc, test_decide, 0, (int)(sizeof(decide_cases) / sizeof(decide_cases[0])));
	tcase_add_test(tc, test_rank);
	tcase_add_test(tc, test_norm);
	suite_add_tcase(s, tc);
	tc = tcase_create("database");
	tcase_add_checked_fixture(tc, fix_setup, fix_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_open_count_remind_recover);
	tcase_add_test(tc, test_reply_not_delivered_keeps_reminder);
	tcase_add_test(tc, test_recovery_by_sources);
	tcase_add_test(tc, test_expiry_and_sweep);
	tcase_add_test(tc, test_count_touches_thread);
	tcase_add_test(tc, test_conf_apply);
	tcase_add_test(tc, test_conf_apply_cluster);
	tcase_add_test(tc, test_conf_apply_cluster_upgrade);
	tcase_add_test(tc, test_conf_apply_threads);
	tcase_add_test(tc, test_conf_apply_drops_handles);
	tcase_add_test(tc, test_conf_apply_logged_after_commit);
	tcase_add_test(tc, test_sweep_logged_after_commit);
	tcase_add_test(tc, test_writer_results);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(incident_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
