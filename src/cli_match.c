/*
 * cli_match: `fluxrelay match` — a dry run of the rules on event files: which
 * alerts fire and the payload each target would receive, templates (SPEC §13)
 * rendered as the delivery thread renders them, so a template can be tried
 * without a server. Nothing is stored or sent. Main thread only.
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "event.h"
#include "incident.h"
#include "queue.h"
#include "rules.h"
#include "slack.h"
#include "slack_look.h"
#include "util.h"

static char *
cli_match_read_stdin(size_t *len)
{
	struct util_buf b = {0};
	char chunk[65536];
	ssize_t n;
	while ((n = read(0, chunk, sizeof(chunk))) > 0)
		util_buf_append(&b, chunk, (size_t)n);
	if (b.data == NULL)
		b.data = util_strdup("");
	*len = b.len;
	return b.data;
}

/*
 * A forwarding target: the request it would get. Header values other than
 * fluxrelay's own are not printed (they may be credentials), nor is the
 * address (it may be one too).
 */
static void
cli_match_forward(const struct conf_provider *p, const struct event *ev, const char *alerts,
    size_t len)
{
	printf("  target: %s (%s) alerts=%s\n  forward: POST of the event as received "
	    "(%zu bytes); headers: Content-Type: application/json", p->name,
	    conf_provider_type_name(p->type), alerts, len);
	if (ev->reporting_controller[0] != '\0')
		printf(", Gotk-Component: %s", ev->reporting_controller);
	for (size_t i = 0; i < p->nheaders; i++)
		printf(", %s", p->headers[i].name);
	if (p->type == CONF_PROVIDER_GENERIC_HMAC)
		printf(", X-Signature: sha256=<HMAC-SHA256 of the body>");
	printf("\n");
}

/*
 * One target's payload: as deliver.c renders it (templates, the client's
 * cluster), with the message kind a notify = "changes" alert gives it.
 */
static void
cli_match_target(const struct conf *c, const struct event *ev, size_t len,
    const struct rules_target *t, enum queue_kind kind, const char *incident)
{
	const struct conf_provider *p = &c->providers[t->provider];
	if (conf_provider_forwards(p)) {
		cli_match_forward(p, ev, t->alerts, len);
		return;
	}
	struct slack_incident inc;
	json_t *inc_json = slack_incident_parse(incident, &inc);
	struct slack_item item = { .ev = ev, .extra = t->extra, .nextra = t->nextra,
	    .cluster = ev->cluster, .kind = (enum slack_kind)kind,
	    .incident = inc_json != NULL ? &inc : NULL };
	struct slack_look *look = slack_look_new(c, t->alerts, p, &item, ev->cluster);
	item.look = look;
	char *payload = slack_render_string(p, t->channel, &item, 1);
	slack_look_free(look);
	json_decref(inc_json);
	printf("  target: %s (%s)%s%s alerts=%s%s%s\n  %s\n", p->name,
	    conf_provider_type_name(p->type), t->channel ? " channel=" : "",
	    t->channel ? t->channel : "", t->alerts, kind != QUEUE_KIND_EVENT ? " kind=" : "",
	    kind != QUEUE_KIND_EVENT ? queue_kind_name(kind) : "",
	    payload ? payload : "(render failed)");
	free(payload);
}

/* 1 when at least one alert matched, 0 when none, -1 when the event is bad. */
static int
cli_match_one(const struct conf *c, const struct rules *r, const char *name, const char *buf,
    size_t len)
{
	char err[512], field[256];
	struct event *ev = event_parse(buf, len, err, sizeof(err), field, sizeof(field));
	if (ev == NULL) {
		fprintf(stderr, "%s: invalid event: %s%s%s%s\n", name, err,
		    field[0] ? " (field " : "", field, field[0] ? ")" : "");
		return -1;
	}
	struct rules_result res;
	size_t n = rules_match(r, ev, &res);
	printf("%s: %s/%s%s%s severity=%s reason=%s\n", name, ev->kind,
	    ev->namespace ? ev->namespace : "", ev->namespace ? "/" : "", ev->name,
	    event_severity_name(ev->severity), ev->reason[0] ? ev->reason : "(none)");
	if (res.nchanges > 0) {
		/* notify = "changes": what the event sends with no incident open
		 * (a failure opens one, a recovery closes none); no database. */
		struct incident_req req = { .conf = c, .ev = ev, .cluster = incident_cluster(ev),
		    .hits = res.hits, .nhits = res.nhits };
		incident_plan_stateless(&req, util_now());
		if (req.nalerts == 0) {
			printf("  no alert matches (a notify = \"changes\" alert sends a recovery "
			    "only while an incident is open)\n");
		} else {
			printf("  alerts:");
			for (size_t i = 0; i < req.nalerts; i++)
				printf("%s %s", i ? "," : "", req.alerts[i]);
			printf("\n");
			for (size_t i = 0; i < req.nitems && i < req.merged.ntargets; i++)
				cli_match_target(c, ev, len, &req.merged.targets[i], req.items[i].kind,
				    req.items[i].incident);
		}
		n = req.nalerts;
		incident_req_clear(&req);
	} else if (n == 0) {
		printf("  no alert matches\n");
	} else {
		printf("  alerts:");
		for (size_t i = 0; i < res.nalerts; i++)
			printf("%s %s", i ? "," : "", res.alerts[i]);
		printf("\n");
		for (size_t i = 0; i < res.ntargets; i++)
			cli_match_target(c, ev, len, &res.targets[i], QUEUE_KIND_EVENT, NULL);
	}
	rules_result_clear(&res);
	event_free(ev);
	return n > 0;
}

int
cli_match(const struct conf *c, int argc, char **argv)
{
	char err[512];
	struct rules *r = rules_new(c, err, sizeof(err));
	if (r == NULL) {
		fprintf(stderr, "fluxrelay match: %s\n", err);
		return CONF_EXIT_INVALID;
	}
	int matched = 0;
	for (int i = 0; i < argc || (argc == 0 && i == 0); i++) {
		const char *name = argc == 0 ? "-" : argv[i];
		if (name[0] == '-' && name[1] != '\0') {
			fprintf(stderr, "fluxrelay match: unknown option '%s'\n", name);
			rules_free(r);
			return FLUXRELAY_EXIT_USAGE;
		}
		size_t len = 0;
		char *buf;
		if (strcmp(name, "-") == 0) {
			buf = cli_match_read_stdin(&len);
		} else {
			buf = util_read_file(name, &len, err, sizeof(err));
			if (buf == NULL) {
				fprintf(stderr, "fluxrelay match: %s\n", err);
				continue;
			}
		}
		if (cli_match_one(c, r, strcmp(name, "-") == 0 ? "(stdin)" : name, buf, len) > 0)
			matched = 1;
		free(buf);
	}
	rules_free(r);
	fflush(stdout);
	return matched ? 0 : 1;
}
