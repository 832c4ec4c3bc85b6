/*
 * slack_blocks: the Block Kit form of a message (SPEC §13), for providers
 * with format = "blocks"; slack_render and slack_render_fit (slack.h) call it.
 * Pure: no I/O, no logging, any thread. The layout is at the top of
 * slack_blocks.c.
 */
#ifndef FLUXRELAY_SLACK_BLOCKS_H
#define FLUXRELAY_SLACK_BLOCKS_H

#include <jansson.h>
#include <stddef.h>

#include "conf.h"
#include "slack.h"

/* Slack's limits for one message (Block Kit reference), in characters. */
#define SLACK_BLOCKS_MAX 50            /* blocks in one message */
#define SLACK_BLOCKS_MAX_TEXT 3000     /* a section's or a context element's text */
#define SLACK_BLOCKS_MAX_FIELDS 10     /* fields in one section */
#define SLACK_BLOCKS_MAX_FIELD 2000    /* one field's text */
#define SLACK_BLOCKS_MAX_CONTEXT 10    /* elements in one context block */

/*
 * The payload (new reference) of the first *used items of items[0..n) that
 * fit in SLACK_BLOCKS_MAX blocks (at least one: an event takes at most 27),
 * in order, or NULL as slack_render says (no item, an item without an
 * event, a slack-bot provider without a channel) or on allocation failure.
 * Keys in order: channel, username, icon_emoji|icon_url, text, blocks,
 * unfurl_links, unfurl_media.
 */
json_t *slack_blocks_render(const struct conf_provider *p, const char *channel,
    const struct slack_item *items, size_t n, size_t *used);

#endif
