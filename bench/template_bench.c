/*
 * template_bench: what rendering an alert's templates costs per message.
 * Parses bench/event.json once, compiles a typical title, text and two links
 * (a commit link for GitHub and a dashboard link, as in the README's example)
 * and renders all of them N times, as one message would; prints the time per
 * message and per template, and for scale the default slack_render_string()
 * of the same event. Built only when asked: `make bench/template_bench`
 * (see bench/README.md).
 *
 *   bench/template_bench [EVENT.json [N]]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "event.h"
#include "slack.h"
#include "slack_look.h"
#include "template.h"
#include "util.h"

static const struct {
	const char *what, *src;
	size_t limit;
	unsigned flags;
} bench_templates[] = {
	{ "title",
	  "{{ .involvedObject.kind | lower }}/{{ .involvedObject.name }}"
	  "{{ with .involvedObject.namespace }}.{{ . }}{{ end }}: {{ .reason }}", 250, 0 },
	{ "text",
	  "{{ .message | trunc 200 }}{{ if .revision.sha }} (commit {{ link (printf "
	  "\"https://github.com/acme/fleet/commit/%s\" .revision.sha) .revision.short }}){{ end }}"
	  "{{ if eq .severity \"error\" }} <!here>{{ end }}", 3000, 0 },
	{ "links[0].url", "https://github.com/acme/fleet/commit/{{ .revision.sha }}", 0,
	  TEMPLATE_URL },
	{ "links[0].text", "commit {{ .revision.short }}", 250, 0 },
	{ "links[1].url",
	  "https://grafana.example.com/d/flux?var-namespace={{ .involvedObject.namespace }}"
	  "&var-name={{ .involvedObject.name }}&var-cluster={{ .metadata.cluster | default \"prod\" }}", 0,
	  TEMPLATE_URL },
};
#define BENCH_NT (sizeof(bench_templates) / sizeof(bench_templates[0]))

static double
bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
	const char *path = argc > 1 ? argv[1] : FR_SRCDIR "/bench/event.json";
	long n = argc > 2 ? strtol(argv[2], NULL, 10) : 200000;
	struct conf_kv extra[] = { { "env", "prod" }, { "summary", "Production EU" } };
	struct template *t[BENCH_NT];
	double per[BENCH_NT], t0, total = 0;
	char err[256], field[128];
	size_t len, sink = 0;
	struct conf_provider p;
	struct slack_item item = { 0 };
	struct template_data d;
	struct event *ev;
	char *buf;

	buf = util_read_file(path, &len, err, sizeof(err));
	if (buf == NULL || n <= 0) {
		fprintf(stderr, "template_bench: %s: %s\n", path, buf ? "bad N" : err);
		return 1;
	}
	ev = event_parse(buf, len, err, sizeof(err), field, sizeof(field));
	if (ev == NULL) {
		fprintf(stderr, "template_bench: %s: %s\n", path, err);
		return 1;
	}
	t0 = bench_now();
	for (size_t i = 0; i < BENCH_NT; i++) {
		t[i] = template_compile(bench_templates[i].src, bench_templates[i].flags, err,
		    sizeof(err));
		if (t[i] == NULL) {
			fprintf(stderr, "template_bench: %s: %s\n", bench_templates[i].what, err);
			return 1;
		}
	}
	printf("compile, all %zu templates: %.1f us\n", BENCH_NT, (bench_now() - t0) * 1e6);

	memset(&d, 0, sizeof(d));
	d.ev = ev;
	d.extra = extra;
	d.nextra = 2;
	d.cluster = "prod-eu-1";
	d.alert = "errors";
	for (size_t i = 0; i < BENCH_NT; i++) {
		struct util_buf b = { 0 };
		template_render(t[i], &d, bench_templates[i].limit, &b);
		printf("  %-13s -> %s\n", bench_templates[i].what, b.data ? b.data : "");
		util_buf_free(&b);
	}
	for (size_t i = 0; i < BENCH_NT; i++) {
		struct util_buf b = { 0 };
		t0 = bench_now();
		for (long k = 0; k < n; k++) {
			b.len = 0;
			template_render(t[i], &d, bench_templates[i].limit, &b);
			sink += b.len;
		}
		per[i] = (bench_now() - t0) / (double)n;
		total += per[i];
		util_buf_free(&b);
	}
	printf("render, per message (all %zu templates, %ld times): %.2f us\n", BENCH_NT, n,
	    total * 1e6);
	for (size_t i = 0; i < BENCH_NT; i++)
		printf("  %-13s %.3f us\n", bench_templates[i].what, per[i] * 1e6);

	memset(&p, 0, sizeof(p));
	p.name = "bench";
	p.type = CONF_PROVIDER_SLACK;
	p.url = "https://hooks.slack.com/services/T0/B0/x";
	p.max_text = 3000;
	memset(&item, 0, sizeof(item));
	item.ev = ev;
	item.extra = extra;
	item.nextra = 2;
	t0 = bench_now();
	for (long k = 0; k < n / 4 + 1; k++) {
		char *s = slack_render_string(&p, NULL, &item, 1);
		sink += strlen(s);
		free(s);
	}
	printf("for scale, the default slack_render_string of the same event: %.2f us\n",
	    (bench_now() - t0) / (double)(n / 4 + 1) * 1e6);

	/*
	 * Whole messages as the delivery thread builds them: the templates above
	 * as one alert's title, text and two links with a mention,
	 * slack_look_new() then slack_render_string(), as attachments and as
	 * Block Kit; and Block Kit without templates.
	 */
	struct conf_link links[2] = { { .text = t[3], .url = t[2] }, { .url = t[4] } };
	struct conf_alert a;
	struct conf c;
	memset(&a, 0, sizeof(a));
	a.name = "errors";
	a.title = t[0];
	a.text = t[1];
	a.links = links;
	a.nlinks = 2;
	a.mention = "<!here>";
	memset(&c, 0, sizeof(c));
	c.alerts = &a;
	c.nalerts = 1;
	static const char *const what[] = {
		"templated message, attachments", "templated message, Block Kit",
		"default message, Block Kit",
	};
	for (int f = 0; f < 3; f++) {
		p.format = f == 0 ? CONF_FORMAT_ATTACHMENTS : CONF_FORMAT_BLOCKS;
		t0 = bench_now();
		for (long k = 0; k < n / 4 + 1; k++) {
			struct slack_look *l = f < 2
			    ? slack_look_new(&c, "errors", &p, &item, "prod-eu-1") : NULL;
			item.look = l;
			char *s = slack_render_string(&p, NULL, &item, 1);
			sink += strlen(s);
			free(s);
			slack_look_free(l);
			item.look = NULL;
		}
		printf("%s (slack_look_new + slack_render_string): %.2f us\n", what[f],
		    (bench_now() - t0) / (double)(n / 4 + 1) * 1e6);
	}

	for (size_t i = 0; i < BENCH_NT; i++)
		template_free(t[i]);
	event_free(ev);
	free(buf);
	return sink == 0;
}
