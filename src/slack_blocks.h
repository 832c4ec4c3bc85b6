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
#include "util.h"

/* Slack's limits for one message (Block Kit reference), in characters. */
#define SLACK_BLOCKS_MAX 50            /* blocks in one message */
#define SLACK_BLOCKS_MAX_TEXT 3000     /* a section's or a context element's text */
#define SLACK_BLOCKS_MAX_FIELDS 10     /* fields in one section */
#define SLACK_BLOCKS_MAX_FIELD 2000    /* one field's text */
#define SLACK_BLOCKS_MAX_CONTEXT 10    /* elements in one context block */

/*
 * The top-level text's characters as sent: Slack's 40,000, less room for the
 * line of a live count (slack_render_count_string), which a chat.update of
 * a parent adds after its text.
 */
#define SLACK_BLOCKS_MAX_TOP (40000 - 64)

/*
 * Cut the text in b (rendered: escaped, with links and mentions) to at most
 * max code points as sent, with "… (N more characters)" (N as
 * template_chars counts what was cut), never inside a UTF-8 sequence, an
 * entity or a <…> link or mention; unchanged when it fits. max must leave
 * room for the marker (at least 40).
 */
void slack_blocks_cut(struct util_buf *b, size_t max);

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
