/*
 * slack_look: render the templates of a delivery's alerts (SPEC §13) into the
 * struct slack_look of one message item, which slack_render then places.
 * Called where payloads are built: the delivery thread (deliver.c, for the
 * console provider too) and `fluxrelay match` (cli_match.c); never on an
 * HTTP thread. Pure: no I/O, no logging; the conf's compiled templates are
 * immutable, so any thread may call it.
 */
#ifndef FLUXRELAY_SLACK_LOOK_H
#define FLUXRELAY_SLACK_LOOK_H

#include "conf.h"
#include "slack.h"

/*
 * The look of item it (its event and alert extras; its look is ignored) in
 * a message of provider p, for the delivery of the alerts named in alerts
 * (comma-separated, as rules_target.alerts and queue_row.alerts; names not
 * in c are skipped: an alert removed by a reload renders the defaults).
 *
 * When one delivery merges several alerts, each part comes from the first
 * alert in config order that sets it: title, text and links each on their
 * own; mention is every distinct mention of all of them, in config order.
 * Title and link texts are bounded by SLACK_MAX_NAME characters (cut to one
 * less and "…"); the text is kept up to p->max_text characters with the
 * count of all it rendered (text_chars): the message cuts it to its budget,
 * max_text at most, with "… (N more characters)" counting all that was cut
 * (slack_render); a link
 * whose URL renders empty is left out, and so is one that takes more than
 * SLACK_MAX_LINKS_LINE characters as placed, "<url|text>" with its
 * entities (slack_link_chars): Slack takes at most 3,000 in the Block Kit
 * text that shows the links, and a link cut to fit would be broken.
 * cluster is the sender's cluster (.cluster; NULL: empty).
 *
 * Returns a new look (free with slack_look_free) or NULL when none of the
 * alerts sets any part: the defaults apply.
 */
struct slack_look *slack_look_new(const struct conf *c, const char *alerts,
    const struct conf_provider *p, const struct slack_item *it, const char *cluster);

/* Accepts NULL. */
void slack_look_free(struct slack_look *l);

#endif
