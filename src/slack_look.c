/*
 * slack_look: the templates of a delivery's alerts rendered into a struct
 * slack_look (interface and merge rule in slack_look.h). Pure, any thread.
 */
#include "slack_look.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "slack_internal.h"
#include "template.h"
#include "util.h"

static const char slack_look_ellipsis[] = "\xe2\x80\xa6";   /* U+2026 */

/* Whether name is one of the comma-separated names in list. */
static bool
slack_look_listed(const char *list, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = list; p != NULL && *p != '\0';) {
		size_t l = strcspn(p, ",");
		if (l == n && memcmp(p, name, n) == 0)
			return true;
		p += l + (p[l] == ',');
	}
	return false;
}

/*
 * t rendered for d, bounded to max characters as SLACK_MAX_NAME bounds a
 * name: whole, or its first max - 1 and "…". New string.
 */
static char *
slack_look_name(const struct template *t, const struct template_data *d, size_t max)
{
	struct util_buf b = { 0 };

	template_render(t, d, max, &b);
	if (b.data == NULL)
		return util_strdup("");
	if (template_chars(b.data, b.len) > max) {
		b.len = template_fit(b.data, b.len, max - 1);
		b.data[b.len] = '\0';
		util_buf_puts(&b, slack_look_ellipsis);
	}
	return b.data;
}

/* The links of alert a into l (at least one URL renders, or l->nlinks stays 0). */
static void
slack_look_links(struct slack_look *l, const struct conf_alert *a,
    const struct template_data *d)
{
	l->links = util_calloc(a->nlinks, sizeof(*l->links));
	for (size_t i = 0; i < a->nlinks; i++) {
		char *url = template_render_string(a->links[i].url, d, 0);
		if (url[0] == '\0') {
			free(url);
			continue;
		}
		struct slack_link *k = &l->links[l->nlinks];
		k->url = url;
		k->text = a->links[i].text != NULL
		    ? slack_look_name(a->links[i].text, d, SLACK_MAX_NAME) : util_strdup("");
		if (slack_link_chars(k) > SLACK_MAX_LINKS_LINE) {
			free(k->url);
			free(k->text);
			continue;
		}
		l->nlinks++;
	}
	if (l->nlinks == 0) {
		free(l->links);
		l->links = NULL;
	}
}

/*
 * What .incident.* shows of an item's incident (SPEC §12, §13): the state
 * of its message kind, since (RFC 3339), the time open and the failures.
 * 0 when the item carries no incident (a plain event).
 */
static int
slack_look_incident(const struct slack_item *it, struct template_incident *inc,
    char since[32], char duration[32])
{
	const struct slack_incident *si = it->incident;
	memset(inc, 0, sizeof(*inc));
	if (si == NULL)
		return 0;
	switch (it->kind) {
	case SLACK_KIND_REMINDER:
		inc->state = "reminder";
		break;
	case SLACK_KIND_RECOVERED:
		inc->state = "recovered";
		break;
	case SLACK_KIND_OPENED:
	case SLACK_KIND_REPLY:       /* a failure of an open incident */
	case SLACK_KIND_EVENT:
		inc->state = "opened";
		break;
	}
	time_t t = (time_t)si->since;
	struct tm tm;
	since[0] = '\0';
	if (si->since > 0 && gmtime_r(&t, &tm) != NULL)
		strftime(since, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
	inc->since = since;
	double open = si->duration > 0 ? si->duration :
	    it->ev->has_timestamp ? (double)it->ev->timestamp - si->since : 0;
	inc->duration = slack_duration(open, duration);
	inc->count = si->failures;
	return 1;
}

struct slack_look *
slack_look_new(const struct conf *c, const char *alerts, const struct conf_provider *p,
    const struct slack_item *it, const char *cluster)
{
	struct slack_look *l = NULL;
	struct util_buf mention = { 0 };
	bool links_done = false;
	struct template_incident inc;
	char since[32], duration[32];
	struct template_data d = {
		.ev = it->ev, .cluster = cluster,
	};

	if (c == NULL || alerts == NULL || it->ev == NULL)
		return NULL;
	if (slack_look_incident(it, &inc, since, duration))
		d.incident = &inc;
	for (size_t i = 0; i < c->nalerts; i++) {
		const struct conf_alert *a = &c->alerts[i];
		if (a->title == NULL && a->text == NULL && a->nlinks == 0 && a->mention == NULL)
			continue;
		if (a->name == NULL || !slack_look_listed(alerts, a->name))
			continue;
		if (l == NULL)
			l = util_calloc(1, sizeof(*l));
		d.alert = a->name;
		if (a->title != NULL && l->title == NULL)
			l->title = slack_look_name(a->title, &d, SLACK_MAX_NAME);
		/* The message cuts it once, to its budget (slack_item_text), and its
		 * marker counts every character cut, from text_chars; no budget is
		 * over max_text, so no more is kept (a 3 MiB message would be held
		 * and scanned whole for each budget tried). */
		if (a->text != NULL && l->text == NULL) {
			l->text = template_render_string(a->text, &d, 0);
			size_t len = strlen(l->text), max = p != NULL ? slack_max_text(p) : 0;
			l->text_chars = template_chars(l->text, len);
			if (max > 0 && l->text_chars > max)
				l->text[template_fit(l->text, len, max)] = '\0';
		}
		if (a->nlinks > 0 && !links_done) {
			slack_look_links(l, a, &d);
			links_done = true;
		}
		/* slack_render keeps each distinct mention once */
		if (a->mention != NULL)
			util_buf_printf(&mention, "%s%s", mention.len ? " " : "", a->mention);
	}
	if (l != NULL)
		l->mention = mention.data;
	else
		util_buf_free(&mention);
	return l;
}

void
slack_look_free(struct slack_look *l)
{
	if (l == NULL)
		return;
	free(l->title);
	free(l->text);
	for (size_t i = 0; i < l->nlinks; i++) {
		free(l->links[i].url);
		free(l->links[i].text);
	}
	free(l->links);
	free(l->mention);
	free(l);
}
